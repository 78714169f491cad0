using System.Buffers.Binary;
using System.Runtime.InteropServices;
using static FastInval.AmdVi.AmdViCommandLayout;

namespace FastInval.AmdVi;

/// <summary>Event codes of the AMD-Vi event log (QW0 bits 63:60) that this unit records.</summary>
public enum AmdViEventCode : byte
{
    /// <summary>ILLEGAL_COMMAND_ERROR: QW1 = the SPA of the illegal command; QW0 bits 59:0 are 0.</summary>
    IllegalCommandError = 0x5,

    /// <summary>COMMAND_HARDWARE_ERROR: QW0 bits 58:57 = Type, QW1 = the SPA the IOMMU failed to access.</summary>
    CommandHardwareError = 0x6,

    /// <summary>IOTLB_INV_TIMEOUT: QW0 bits 15:0 = DeviceID, QW1 bits 63:4 = the SPA of the timed-out command.</summary>
    IotlbInvalidationTimeout = 0x7,
}

/// <summary>Type of a COMMAND_HARDWARE_ERROR (QW0 bits 58:57).</summary>
public enum AmdViHardwareErrorType : byte
{
    /// <summary>01b: master abort (this unit: nothing backs the address).</summary>
    MasterAbort = 1,

    /// <summary>10b: target abort.</summary>
    TargetAbort = 2,

    /// <summary>11b: data error (this unit: a fetch the fault plan fails).</summary>
    DataError = 3,
}

/// <summary>One 16-byte event-log entry: two little-endian quadwords laid out as <see cref="AmdViCommandLayout"/>'s
/// event fields say.</summary>
[StructLayout(LayoutKind.Sequential, Size = AmdViCommandLayout.Size)]
public readonly record struct AmdViEvent(ulong Qword0, ulong Qword1)
{
    /// <summary>The event code (QW0 bits 63:60).</summary>
    public AmdViEventCode Code => (AmdViEventCode)((Qword0 & EventCodeMask) >> EventCodeShift);

    /// <summary>DeviceID (QW0 bits 15:0; IOTLB_INV_TIMEOUT).</summary>
    public ushort DeviceId => (ushort)((Qword0 & EventDeviceIdMask) >> EventDeviceIdShift);

    /// <summary>Type of a COMMAND_HARDWARE_ERROR.</summary>
    public AmdViHardwareErrorType HardwareErrorType => (AmdViHardwareErrorType)((Qword0 & HardwareErrorTypeMask) >> HardwareErrorTypeShift);

    /// <summary>The address the event reports (QW1; bits 3:0 cleared for IOTLB_INV_TIMEOUT).</summary>
    public ulong Address => Code == AmdViEventCode.IotlbInvalidationTimeout ? Qword1 & TimeoutAddressMask : Qword1;

    /// <summary>ILLEGAL_COMMAND_ERROR for the command at <paramref name="commandAddress"/>.</summary>
    public static AmdViEvent IllegalCommand(ulong commandAddress) =>
        new((ulong)AmdViEventCode.IllegalCommandError << EventCodeShift, commandAddress);

    /// <summary>COMMAND_HARDWARE_ERROR of <paramref name="type"/> at <paramref name="address"/>.</summary>
    public static AmdViEvent CommandHardwareError(AmdViHardwareErrorType type, ulong address) =>
        new(((ulong)AmdViEventCode.CommandHardwareError << EventCodeShift) | (((ulong)type << HardwareErrorTypeShift) & HardwareErrorTypeMask), address);

    /// <summary>IOTLB_INV_TIMEOUT of <paramref name="deviceId"/> for the command at <paramref name="commandAddress"/>.</summary>
    public static AmdViEvent IotlbInvalidationTimeout(ushort deviceId, ulong commandAddress) =>
        new(((ulong)AmdViEventCode.IotlbInvalidationTimeout << EventCodeShift) | deviceId, commandAddress & TimeoutAddressMask);

    /// <summary>Reads an entry from 16 little-endian bytes.</summary>
    /// <exception cref="ArgumentException"><paramref name="source"/> is shorter than 16 bytes.</exception>
    public static AmdViEvent Read(ReadOnlySpan<byte> source)
    {
        if (source.Length < Size)
        {
            Internals.ThrowHelper.Argument(nameof(source), "an event is 16 bytes");
        }

        return new(BinaryPrimitives.ReadUInt64LittleEndian(source), BinaryPrimitives.ReadUInt64LittleEndian(source[8..]));
    }

    /// <summary>Writes the entry as 16 little-endian bytes.</summary>
    /// <exception cref="ArgumentException"><paramref name="destination"/> is shorter than 16 bytes.</exception>
    public void Write(Span<byte> destination)
    {
        if (destination.Length < Size)
        {
            Internals.ThrowHelper.Argument(nameof(destination), "an event is 16 bytes");
        }

        BinaryPrimitives.WriteUInt64LittleEndian(destination, Qword0);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[8..], Qword1);
    }

    /// <inheritdoc/>
    public override string ToString() => $"event {Code} [0x{Qword0:x16} 0x{Qword1:x16}]";
}
