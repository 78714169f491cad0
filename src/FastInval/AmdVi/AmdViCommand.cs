using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using static FastInval.AmdVi.AmdViCommandLayout;

namespace FastInval.AmdVi;

/// <summary>AMD-Vi command opcodes (QW0 bits 63:60). 0h and 0Bh–0Fh are not defined.</summary>
public enum AmdViOpcode : byte
{
    /// <summary>COMPLETION_WAIT.</summary>
    CompletionWait = 0x1,

    /// <summary>INVALIDATE_DEVTAB_ENTRY.</summary>
    InvalidateDevTabEntry = 0x2,

    /// <summary>INVALIDATE_IOMMU_PAGES.</summary>
    InvalidateIommuPages = 0x3,

    /// <summary>INVALIDATE_IOTLB_PAGES (a device's ATS IOTLB).</summary>
    InvalidateIotlbPages = 0x4,

    /// <summary>INVALIDATE_INTERRUPT_TABLE.</summary>
    InvalidateInterruptTable = 0x5,

    /// <summary>PREFETCH_IOMMU_PAGES (needs EFR.PreFSup).</summary>
    PrefetchIommuPages = 0x6,

    /// <summary>COMPLETE_PPR_REQUEST (needs EFR.PPRSup).</summary>
    CompletePprRequest = 0x7,

    /// <summary>INVALIDATE_IOMMU_ALL (needs EFR.IASup).</summary>
    InvalidateIommuAll = 0x8,

    /// <summary>INSERT_GUEST_EVENT (hardware vIOMMU only).</summary>
    InsertGuestEvent = 0x9,

    /// <summary>RESET_VMMIO (hardware vIOMMU only).</summary>
    ResetVmmio = 0xA,
}

/// <summary>
/// One 16-byte AMD-Vi command as it sits in the command buffer: two little-endian quadwords, QW0 = bits 63:0 and
/// QW1 = bits 127:64 (dword n of the Linux <c>struct iommu_cmd</c> is bits 32n+31:32n). Accessors read the fields of
/// <see cref="AmdViCommandLayout"/>; which of them mean something depends on <see cref="Opcode"/>.
/// </summary>
[StructLayout(LayoutKind.Sequential, Size = AmdViCommandLayout.Size)]
public readonly struct AmdViCommand : IEquatable<AmdViCommand>
{
    /// <summary>Bits 63:0.</summary>
    public readonly ulong Qword0;

    /// <summary>Bits 127:64.</summary>
    public readonly ulong Qword1;

    /// <summary>A command from its two quadwords.</summary>
    public AmdViCommand(ulong qword0, ulong qword1)
    {
        Qword0 = qword0;
        Qword1 = qword1;
    }

    /// <summary>Reads a command from 16 little-endian bytes.</summary>
    /// <exception cref="ArgumentException"><paramref name="source"/> is shorter than 16 bytes.</exception>
    public static AmdViCommand Read(ReadOnlySpan<byte> source)
    {
        if (source.Length < Size)
        {
            Internals.ThrowHelper.Argument(nameof(source), "a command is 16 bytes");
        }

        return new(BinaryPrimitives.ReadUInt64LittleEndian(source), BinaryPrimitives.ReadUInt64LittleEndian(source[8..]));
    }

    /// <summary>Writes the command as 16 little-endian bytes.</summary>
    /// <exception cref="ArgumentException"><paramref name="destination"/> is shorter than 16 bytes.</exception>
    public void Write(Span<byte> destination)
    {
        if (destination.Length < Size)
        {
            Internals.ThrowHelper.Argument(nameof(destination), "a command is 16 bytes");
        }

        BinaryPrimitives.WriteUInt64LittleEndian(destination, Qword0);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[8..], Qword1);
    }

    /// <summary>The opcode, QW0 bits 63:60.</summary>
    public byte Opcode => (byte)Get(Qword0, OpcodeMask, OpcodeShift);

    /// <summary>COMPLETION_WAIT S.</summary>
    public bool Store => (Qword0 & StoreMask) != 0;

    /// <summary>COMPLETION_WAIT I.</summary>
    public bool Interrupt => (Qword0 & InterruptMask) != 0;

    /// <summary>COMPLETION_WAIT F.</summary>
    public bool Flush => (Qword0 & FlushMask) != 0;

    /// <summary>COMPLETION_WAIT Store Address (bits 51:3 of QW0, in place).</summary>
    public ulong StoreAddress => Qword0 & StoreAddressMask;

    /// <summary>COMPLETION_WAIT Store Data (QW1).</summary>
    public ulong StoreData => Qword1;

    /// <summary>DeviceID of INVALIDATE_DEVTAB_ENTRY, INVALIDATE_INTERRUPT_TABLE and INVALIDATE_IOTLB_PAGES.</summary>
    public ushort DeviceId => (ushort)Get(Qword0, DeviceIdMask, DeviceIdShift);

    /// <summary>DomainID of INVALIDATE_IOMMU_PAGES.</summary>
    public ushort DomainId => (ushort)Get(Qword0, DomainIdMask, DomainIdShift);

    /// <summary>PASID of INVALIDATE_IOMMU_PAGES (QW0 bits 19:0).</summary>
    public uint PagesPasid => (uint)Get(Qword0, PasidMask, PasidShift);

    /// <summary>PASID of INVALIDATE_IOTLB_PAGES, gathered from its three pieces (QW0 bits 59:56, 23:16, 55:48).</summary>
    public uint IotlbPasid => (uint)((Get(Qword0, IotlbPasidHighMask, IotlbPasidHighShift) << 16) |
                                     (Get(Qword0, IotlbPasidMiddleMask, IotlbPasidMiddleShift) << 8) |
                                     Get(Qword0, IotlbPasidLowMask, IotlbPasidLowShift));

    /// <summary>Maxpend of INVALIDATE_IOTLB_PAGES.</summary>
    public byte MaxPending => (byte)Get(Qword0, MaxPendingMask, MaxPendingShift);

    /// <summary>QueueID of INVALIDATE_IOTLB_PAGES.</summary>
    public ushort QueueId => (ushort)Get(Qword0, QueueIdMask, QueueIdShift);

    /// <summary>S of the page invalidations (QW1 bit 0).</summary>
    public bool SizeBit => (Qword1 & SizeMask) != 0;

    /// <summary>PDE of INVALIDATE_IOMMU_PAGES (QW1 bit 1).</summary>
    public bool Pde => (Qword1 & PdeMask) != 0;

    /// <summary>GN of the page invalidations (QW1 bit 2).</summary>
    public bool Guest => (Qword1 & GuestMask) != 0;

    /// <summary>Type of INVALIDATE_IOTLB_PAGES (QW1 bits 5:4).</summary>
    public int IotlbType => (int)Get(Qword1, IotlbTypeMask, IotlbTypeShift);

    /// <summary>Address[63:12] of the page invalidations, in place.</summary>
    public ulong Address => Qword1 & AddressMask;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Get(ulong word, ulong mask, int shift) => (word & mask) >> shift;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Put(ulong value, ulong mask, int shift) => (value << shift) & mask;

    // ---- builders: the encoders tests, benchmarks, fuzz seeds and docs use instead of hand-encoding ----

    /// <summary>Any command: <paramref name="opcode"/> with extra QW0/QW1 bits (for reserved-bit and raw cases).</summary>
    public static AmdViCommand Of(AmdViOpcode opcode, ulong qword0 = 0, ulong qword1 = 0) =>
        new(Put((byte)opcode, OpcodeMask, OpcodeShift) | (qword0 & ~OpcodeMask), qword1);

    /// <summary>COMPLETION_WAIT: with <paramref name="store"/> the IOMMU writes <paramref name="data"/> (64-bit) at
    /// <paramref name="storeAddress"/> (bits 51:3); with <paramref name="interrupt"/> it sets ComWaitInt.</summary>
    public static AmdViCommand CompletionWait(ulong storeAddress = 0, ulong data = 0, bool store = true, bool interrupt = false, bool flush = false) =>
        Of(AmdViOpcode.CompletionWait,
            (store ? StoreMask : 0) | (interrupt ? InterruptMask : 0) | (flush ? FlushMask : 0) | (storeAddress & StoreAddressMask),
            store ? data : 0);

    /// <summary>INVALIDATE_DEVTAB_ENTRY of <paramref name="deviceId"/>.</summary>
    public static AmdViCommand InvalidateDevTabEntry(ushort deviceId) =>
        Of(AmdViOpcode.InvalidateDevTabEntry, Put(deviceId, DeviceIdMask, DeviceIdShift));

    /// <summary>INVALIDATE_IOMMU_PAGES of <paramref name="domainId"/> at <paramref name="address"/> (bits 63:12) with the
    /// S, PDE and GN bits as given; the PASID is encoded only with GN.</summary>
    public static AmdViCommand InvalidateIommuPages(ushort domainId, ulong address, bool size = false, bool pde = true, uint? pasid = null) =>
        Of(AmdViOpcode.InvalidateIommuPages,
            Put(domainId, DomainIdMask, DomainIdShift) | (pasid is uint p ? Put(p, PasidMask, PasidShift) : 0),
            (address & AddressMask) | (size ? SizeMask : 0) | (pde ? PdeMask : 0) | (pasid is not null ? GuestMask : 0));

    /// <summary>INVALIDATE_IOMMU_PAGES of every page of <paramref name="domainId"/> (Linux's encoding: S = 1 with
    /// address 0x7FFF_FFFF_FFFF_F000).</summary>
    public static AmdViCommand InvalidateIommuPagesAll(ushort domainId, uint? pasid = null) =>
        InvalidateIommuPages(domainId, AllPagesAddress, size: true, pde: true, pasid);

    /// <summary>The address Linux sends with S = 1 to mean "every page".</summary>
    public const ulong AllPagesAddress = 0x7FFF_FFFF_FFFF_F000UL;

    /// <summary>INVALIDATE_IOTLB_PAGES to <paramref name="deviceId"/> at <paramref name="address"/> with the S bit; with
    /// <paramref name="pasid"/> GN = 1. QueueID and Maxpend as Linux fills them unless given.</summary>
    public static AmdViCommand InvalidateIotlbPages(ushort deviceId, ulong address, bool size = false, uint? pasid = null,
        byte maxPending = 0, ushort? queueId = null)
    {
        ulong qw0 = Put(deviceId, DeviceIdMask, DeviceIdShift) | Put(maxPending, MaxPendingMask, MaxPendingShift) |
                    Put(queueId ?? deviceId, QueueIdMask, QueueIdShift);
        if (pasid is uint p)
        {
            qw0 |= Put(p >> 16, IotlbPasidHighMask, IotlbPasidHighShift) | Put((p >> 8) & 0xFF, IotlbPasidMiddleMask, IotlbPasidMiddleShift) |
                   Put(p & 0xFF, IotlbPasidLowMask, IotlbPasidLowShift);
        }

        return Of(AmdViOpcode.InvalidateIotlbPages, qw0, (address & AddressMask) | (size ? SizeMask : 0) | (pasid is not null ? GuestMask : 0));
    }

    /// <summary>INVALIDATE_INTERRUPT_TABLE of <paramref name="deviceId"/>.</summary>
    public static AmdViCommand InvalidateInterruptTable(ushort deviceId) =>
        Of(AmdViOpcode.InvalidateInterruptTable, Put(deviceId, DeviceIdMask, DeviceIdShift));

    /// <summary>INVALIDATE_IOMMU_ALL.</summary>
    public static AmdViCommand InvalidateIommuAll() => Of(AmdViOpcode.InvalidateIommuAll);

    /// <summary>The S-bit address encoding of the naturally aligned range that covers [<paramref name="address"/>,
    /// <paramref name="address"/> + <paramref name="bytes"/> − 1], the way Linux builds it: a single page is S = 0,
    /// anything larger sets every address bit below the highest bit that differs between start and end (everything
    /// when that bit is above 51). Returns the QW1 address and S bit.</summary>
    public static (ulong Address, bool Size) EncodeRange(ulong address, ulong bytes)
    {
        ulong end = address + Math.Max(bytes, 1) - 1;
        if ((address >> 12) == (end >> 12))
        {
            return (address & AddressMask, false);
        }

        int msb = 63 - System.Numerics.BitOperations.LeadingZeroCount(end ^ address);
        ulong encoded = msb > 51 ? AllPagesAddress : address | ((1UL << msb) - 1);
        return (encoded & AddressMask, true);
    }

    /// <inheritdoc/>
    public bool Equals(AmdViCommand other) => Qword0 == other.Qword0 && Qword1 == other.Qword1;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is AmdViCommand c && Equals(c);

    /// <summary>Field-wise equality.</summary>
    public static bool operator ==(AmdViCommand left, AmdViCommand right) => left.Equals(right);

    /// <summary>Field-wise inequality.</summary>
    public static bool operator !=(AmdViCommand left, AmdViCommand right) => !left.Equals(right);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Qword0, Qword1);

    /// <inheritdoc/>
    public override string ToString() => $"cmd 0x{Opcode:x} [0x{Qword0:x16} 0x{Qword1:x16}]";
}
