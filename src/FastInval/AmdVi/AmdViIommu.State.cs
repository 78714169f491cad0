using System.Buffers.Binary;
using FastInval.Internals;
using static FastInval.AmdVi.AmdViRegisters;

namespace FastInval.AmdVi;

// Migration state and reset. State image (also in docs/migration.md), version 1, StateSize = 144 bytes, every field little-endian:
//   0 u32 magic 0x56414946 ("FIAV")    4 u16 version = 1      6 u16 image size = 144
//   8 u64 Extended Features (must equal the target's)
//  16 u32 capabilities outside the EFR: bit 0 IotlbSup (must equal the target's)
//  20 u32 flags: bit 0 the command buffer is stopped by an error; bit 1 an invalidation failed inside FastInval (the
//     next COMPLETION_WAIT is ILLEGAL_COMMAND_ERROR); bit 2 a COMPLETION_WAIT at the head was fetched and held for
//     device-TLB answers that have all come (it completes, from the bytes at 120, when the buffer next runs)
//  24 u64 Device Table Base   32 u64 Command Buffer Base   40 u64 Event Log Base   48 u64 Control
//  56 u64 Exclusion Base      64 u64 Exclusion Limit       72 u64 Command Buffer Head  80 u64 Command Buffer Tail
//  88 u64 Event Log Head      96 u64 Event Log Tail       104 u64 Status (the RW1C bits; the run bits are computed)
// 112 u64 command fetches (the fault plan's fetch ordinal)  120 u64 × 2 the held COMPLETION_WAIT (0 unless flag bit 2)
// 136 u64 reserved (0)
// Between two register accesses every command up to the tail has been processed (or the buffer is stopped on one,
// recorded in the flags), so nothing else is pending. The caches are not in the image: the destination starts with what
// its engine holds and the host fills it again.
public sealed partial class AmdViIommu
{
    /// <summary>Bytes of a state image of this version.</summary>
    public const int StateSize = 144;

    private const uint StateMagic = 0x56414946; // "FIAV"
    private const ushort StateVersion = 1;
    private const uint FlagStopped = 1, FlagInternalFailed = 2, FlagHolding = 4;
    private const uint CapabilityIotlb = 1;

    /// <summary>Device-TLB requests sent to <see cref="AmdViOptions.DeviceTlbSink"/> and not yet answered or timed out
    /// (0 without a sink). While it is not 0 the state cannot be saved.</summary>
    /// <exception cref="ObjectDisposedException">The unit is disposed.</exception>
    public int OutstandingDeviceTlbRequests
    {
        get
        {
            using Lock.Scope gate = _core.Gate.EnterScope();
            _core.ThrowIfDisposed(this);
            return _core.Tickets?.Outstanding ?? 0;
        }
    }

    /// <summary>Writes the unit's state image to <paramref name="destination"/> and returns its size,
    /// <see cref="StateSize"/>. The format is documented in docs/migration.md (a magic, a version, the image size, the
    /// capabilities the destination must match, then the registers, ring positions and pending errors). Take it between
    /// register accesses, with the VMM's MMIO path stopped.</summary>
    /// <exception cref="ArgumentException"><paramref name="destination"/> is shorter than <see cref="StateSize"/>.</exception>
    /// <exception cref="InvalidOperationException">Called from inside a register write (an interrupt callback), or while a
    /// request to <see cref="AmdViOptions.DeviceTlbSink"/> is unanswered (the requests are not in the image: wait for the
    /// answers or their time-out).</exception>
    /// <exception cref="ObjectDisposedException">The unit is disposed.</exception>
    public int SaveState(Span<byte> destination)
    {
        using Lock.Scope gate = _core.Gate.EnterScope();
        _core.ThrowIfDisposed(this);
        StateImage.CheckDestination(destination, StateSize, "AMD-Vi");

        _core.ThrowIfRunning();
        _core.ThrowIfDeviceTlbOutstanding();
        Span<byte> s = destination[..StateSize];
        s.Clear();
        StateImage.WriteHeader(s, StateMagic, StateVersion, StateSize);
        BinaryPrimitives.WriteUInt64LittleEndian(s[8..], _efr);
        BinaryPrimitives.WriteUInt32LittleEndian(s[16..], _caps.DeviceTlb ? CapabilityIotlb : 0);
        BinaryPrimitives.WriteUInt32LittleEndian(s[20..], (_stopped ? FlagStopped : 0) | (_internalFailed ? FlagInternalFailed : 0) | (_holding ? FlagHolding : 0));
        BinaryPrimitives.WriteUInt64LittleEndian(s[24..], _deviceTableBase);
        BinaryPrimitives.WriteUInt64LittleEndian(s[32..], _commandBase);
        BinaryPrimitives.WriteUInt64LittleEndian(s[40..], _eventBase);
        BinaryPrimitives.WriteUInt64LittleEndian(s[48..], _control);
        BinaryPrimitives.WriteUInt64LittleEndian(s[56..], _exclusionBase);
        BinaryPrimitives.WriteUInt64LittleEndian(s[64..], _exclusionLimit);
        BinaryPrimitives.WriteUInt64LittleEndian(s[72..], _commandHead);
        BinaryPrimitives.WriteUInt64LittleEndian(s[80..], _commandTail);
        BinaryPrimitives.WriteUInt64LittleEndian(s[88..], _eventHead);
        BinaryPrimitives.WriteUInt64LittleEndian(s[96..], _eventTail);
        BinaryPrimitives.WriteUInt64LittleEndian(s[104..], _status);
        BinaryPrimitives.WriteUInt64LittleEndian(s[112..], _core.Fetches);
        if (_holding)
        {
            _heldWait.Write(s[120..]);
        }

        return StateSize;
    }

    /// <summary>Replaces the unit's registers and ring state with the image in <paramref name="image"/> (from
    /// <see cref="SaveState"/> of a unit with the same options), so that the guest's command buffer continues exactly
    /// where the source stopped. Nothing is processed and no interrupt is sent by the restore itself; the caches are not
    /// touched. The image is checked whole before anything changes: a bad image leaves the unit as it was. Outstanding
    /// device-TLB requests of this unit are dropped.</summary>
    /// <exception cref="ArgumentException">The image is short, has another magic, version or size, was saved by a unit
    /// with other capabilities (the Extended Feature Register, IotlbSup), or holds a value no unit can be in (a bit
    /// outside a register's implemented bits, a head or tail beyond its ring, an error stop or a held COMPLETION_WAIT
    /// without the buffer enabled, a held command that is not a valid COMPLETION_WAIT, a non-zero reserved field).</exception>
    /// <exception cref="InvalidOperationException">Called from inside a register write (an interrupt callback).</exception>
    /// <exception cref="ObjectDisposedException">The unit is disposed.</exception>
    public void RestoreState(ReadOnlySpan<byte> image)
    {
        using Lock.Scope gate = _core.Gate.EnterScope();
        _core.ThrowIfDisposed(this);
        _core.ThrowIfRunning();
        StateImage.CheckHeader(image, StateMagic, StateVersion, StateSize, "AMD-Vi");

        ulong efr = StateImage.U64(image, 8);
        uint caps = StateImage.U32(image, 16);
        uint ownCaps = _caps.DeviceTlb ? CapabilityIotlb : 0;
        if (efr != _efr || caps != ownCaps)
        {
            ThrowHelper.Argument(nameof(image), $"the image is from a unit with EFR 0x{efr:x}, capabilities 0x{caps:x}; this one has EFR 0x{_efr:x}, capabilities 0x{ownCaps:x}");
        }

        uint flags = StateImage.U32(image, 20);
        ulong deviceTable = StateImage.U64(image, 24), commandBase = StateImage.U64(image, 32), eventBase = StateImage.U64(image, 40);
        ulong control = StateImage.U64(image, 48), exclusionBase = StateImage.U64(image, 56), exclusionLimit = StateImage.U64(image, 64);
        ulong commandHead = StateImage.U64(image, 72), commandTail = StateImage.U64(image, 80);
        ulong eventHead = StateImage.U64(image, 88), eventTail = StateImage.U64(image, 96), status = StateImage.U64(image, 104);
        var held = AmdViCommand.Read(image[120..136]);
        bool enabled = (control & (ControlIommuEn | ControlCmdBufEn)) == (ControlIommuEn | ControlCmdBufEn);
        ulong commandPointer = RingPointerMask & (RingBytes(commandBase) - 1), eventPointer = RingPointerMask & (RingBytes(eventBase) - 1);
        bool holding = (flags & FlagHolding) != 0;
        bool valid = (flags & ~(FlagStopped | FlagInternalFailed | FlagHolding)) == 0 &&
                     (deviceTable & ~DeviceTableBaseMask) == 0 && (commandBase & ~RingBaseMask) == 0 && (eventBase & ~RingBaseMask) == 0 &&
                     (control & ~ControlMask) == 0 && (exclusionBase & ~ExclusionBaseMask) == 0 && (exclusionLimit & ~ExclusionLimitMask) == 0 &&
                     (commandHead & ~commandPointer) == 0 && (commandTail & ~commandPointer) == 0 &&
                     (eventHead & ~eventPointer) == 0 && (eventTail & ~eventPointer) == 0 && (status & ~StatusWriteOneToClear) == 0 &&
                     ((flags & FlagStopped) == 0 || enabled) && (!holding || (enabled && (flags & FlagStopped) == 0 && IsWait(held))) &&
                     (holding || (held.Qword0 == 0 && held.Qword1 == 0)) && StateImage.U64(image, 136) == 0;
        if (!valid)
        {
            ThrowHelper.Argument(nameof(image), "the AMD-Vi state image holds a value no unit can be in");
        }

        _deviceTableBase = deviceTable;
        _commandBase = commandBase;
        _eventBase = eventBase;
        _control = control;
        _exclusionBase = exclusionBase;
        _exclusionLimit = exclusionLimit;
        _commandHead = commandHead;
        _commandTail = commandTail;
        _eventHead = eventHead;
        _eventTail = eventTail;
        _status = status;
        _stopped = (flags & FlagStopped) != 0;
        _internalFailed = (flags & FlagInternalFailed) != 0;
        _core.Fetches = StateImage.U64(image, 112);
        _holding = holding;
        _heldWait = holding ? held : default;
        _stalled = false;
        _core.DropDeviceTlbRequests();
    }

    /// <summary>Returns the unit to its power-on state: every register 0 (the Extended Feature Register keeps its
    /// read-only value), the command buffer and the event log disabled, no error stop or pending error, the fetch ordinal
    /// at 0, outstanding device-TLB requests dropped. With its own engine the unit also empties the caches; a caller's
    /// engine, which other units may share, is left to its owner. <see cref="InternalErrors"/> is a host diagnostic and is
    /// kept.</summary>
    /// <exception cref="InvalidOperationException">Called from inside a register write (an interrupt callback).</exception>
    /// <exception cref="ObjectDisposedException">The unit is disposed.</exception>
    public void Reset()
    {
        using Lock.Scope gate = _core.Gate.EnterScope();
        _core.ThrowIfDisposed(this);
        _core.ThrowIfRunning();
        _deviceTableBase = _commandBase = _eventBase = _control = 0;
        _exclusionBase = _exclusionLimit = 0;
        _commandHead = _commandTail = _eventHead = _eventTail = 0;
        _status = 0;
        _stopped = _internalFailed = false;
        _holding = _stalled = false;
        _heldWait = default;
        _core.Reset();
    }

    private bool IsWait(in AmdViCommand command)
    {
        Span<InvalidationDescriptor> scratch = stackalloc InvalidationDescriptor[AmdViCommandDecoder.MaxOutput];
        return AmdViCommandDecoder.Decode(command, _caps, scratch, out _) == AmdViDecodeOutcome.Wait;
    }
}
