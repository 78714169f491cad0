using System.Buffers.Binary;
using System.Runtime.InteropServices;
using static FastInval.Queues.WireBits;

namespace FastInval.Vtd;

/// <summary>VT-d invalidation descriptor types (the 7-bit type: QW0 bits 11:9 above bits 3:0).</summary>
public enum VtdDescriptorType : byte
{
    /// <summary>Context-cache invalidate (cc_inv_dsc).</summary>
    ContextCache = 0x1,

    /// <summary>IOTLB invalidate (iotlb_inv_dsc).</summary>
    Iotlb = 0x2,

    /// <summary>Device-TLB invalidate (dev_tlb_inv_dsc), a request without PASID.</summary>
    DeviceTlb = 0x3,

    /// <summary>Interrupt-entry-cache invalidate (iec_inv_dsc).</summary>
    InterruptEntryCache = 0x4,

    /// <summary>Invalidation wait (inv_wait_dsc).</summary>
    Wait = 0x5,

    /// <summary>PASID-based IOTLB invalidate (p_iotlb_inv_dsc).</summary>
    PasidIotlb = 0x6,

    /// <summary>PASID-cache invalidate (pc_inv_dsc).</summary>
    PasidCache = 0x7,

    /// <summary>PASID-based device-TLB invalidate (p_dev_tlb_inv_dsc).</summary>
    PasidDeviceTlb = 0x8,
}

/// <summary>
/// One VT-d invalidation descriptor as it sits in the invalidation queue: four little-endian 64-bit words, QW0 = bits
/// 63:0, QW1 = bits 127:64, QW2/QW3 = bits 255:128 (present only in a 256-bit queue, IQA.DW = 1; zero when read from a
/// 128-bit queue). Absolute bit numbers, per type:
/// <code>
/// all   QW0 [3:0] Type[3:0]  [11:9] Type[6:4]                                         QW2, QW3 reserved (256-bit)
/// 0x1   QW0 [5:4] G  [31:16] DID  [47:32] SID  [49:48] FM                              QW1 reserved
/// 0x2   QW0 [5:4] G  [6] DW  [7] DR  [31:16] DID      QW1 [5:0] AM  [6] IH  [63:12] ADDR
/// 0x3   QW0 [15:12] PFSID[3:0]  [20:16] MIP  [47:32] SID  [63:52] PFSID[15:4]        QW1 [0] S  [63:12] ADDR
/// 0x4   QW0 [4] G  [31:27] IM  [47:32] IIDX                                           QW1 reserved
/// 0x5   QW0 [4] IF  [5] SW  [6] FN  [7] PD  [63:32] status data                      QW1 [63:2] status address
/// 0x6   QW0 [5:4] G  [31:16] DID  [51:32] PASID          QW1 [5:0] AM  [6] IH  [63:12] ADDR
/// 0x7   QW0 [5:4] G  [31:16] DID  [51:32] PASID                                       QW1 reserved
/// 0x8   QW0 [8:4] MIP  [15:12] PFSID[3:0]  [31:16] SID  [51:32] PASID  [63:52] PFSID[15:4]
///                                                        QW1 [0] G  [11] S  [63:12] ADDR
/// </code>
/// Accessors read a field whatever the type; the decoder decides which fields a type has. The static builders
/// (<see cref="ContextCacheGlobal"/> and the others) encode every valid form of every type.
/// </summary>
[StructLayout(LayoutKind.Sequential, Size = 32)]
public readonly partial struct VtdDescriptor : IEquatable<VtdDescriptor>
{
    private const int TypeHighShift = 9;
    private const int GranularityShift = 4;
    private const int DomainShift = 16;
    private const int SourceShift = 32;
    private const int FunctionMaskShift = 48;
    private const int PasidShift = 32;
    private const ulong PasidMask = 0xF_FFFF;
    private const int AddressMaskBits = 6;
    private const int InvalidationHintBit = 6;
    private const int DeviceSourceShift = 16;       // type 0x8
    private const int IndexMaskShift = 27;          // type 0x4
    private const int StatusDataShift = 32;         // type 0x5
    private const ulong PageAddressMask = ~0xFFFUL; // QW1 63:12
    private const ulong StatusAddressMask = ~3UL;   // QW1 63:2

    /// <summary>Bits 63:0.</summary>
    public readonly ulong Qw0;

    /// <summary>Bits 127:64.</summary>
    public readonly ulong Qw1;

    /// <summary>Bits 191:128 (256-bit queue only).</summary>
    public readonly ulong Qw2;

    /// <summary>Bits 255:192 (256-bit queue only).</summary>
    public readonly ulong Qw3;

    /// <summary>Creates a descriptor from its words.</summary>
    public VtdDescriptor(ulong qw0, ulong qw1, ulong qw2 = 0, ulong qw3 = 0)
    {
        Qw0 = qw0;
        Qw1 = qw1;
        Qw2 = qw2;
        Qw3 = qw3;
    }

    /// <summary>Reads a descriptor from 16 or 32 little-endian bytes (a 16-byte read leaves QW2 and QW3 zero).</summary>
    public static VtdDescriptor Read(ReadOnlySpan<byte> bytes) => bytes.Length >= 32
        ? new(BinaryPrimitives.ReadUInt64LittleEndian(bytes), BinaryPrimitives.ReadUInt64LittleEndian(bytes[8..]),
            BinaryPrimitives.ReadUInt64LittleEndian(bytes[16..]), BinaryPrimitives.ReadUInt64LittleEndian(bytes[24..]))
        : new(BinaryPrimitives.ReadUInt64LittleEndian(bytes), BinaryPrimitives.ReadUInt64LittleEndian(bytes[8..]));

    /// <summary>Writes the descriptor as 16 (a 128-bit queue slot) or 32 little-endian bytes, as many as
    /// <paramref name="bytes"/> holds.</summary>
    public void Write(Span<byte> bytes)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, Qw0);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes[8..], Qw1);
        if (bytes.Length >= 32)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(bytes[16..], Qw2);
            BinaryPrimitives.WriteUInt64LittleEndian(bytes[24..], Qw3);
        }
    }

    /// <summary>The 7-bit type: QW0 bits 11:9 (Type[6:4]) above bits 3:0 (Type[3:0]).</summary>
    public int Type => (int)(((Qw0 >> TypeHighShift) & 0x7) << 4 | (Qw0 & 0xF));

    /// <summary>G, QW0 bits 5:4 (types 0x1, 0x2, 0x6, 0x7); bit 4 alone is type 0x4's G and type 0x5's IF.</summary>
    public int Granularity => (int)Field(Qw0, GranularityShift, 2);

    /// <summary>DID, QW0 bits 31:16 (types 0x1, 0x2, 0x6, 0x7).</summary>
    public ushort DomainId => (ushort)(Qw0 >> DomainShift);

    /// <summary>SID, QW0 bits 47:32 (types 0x1, 0x3); IIDX of type 0x4.</summary>
    public ushort SourceId => (ushort)(Qw0 >> SourceShift);

    /// <summary>FM, QW0 bits 49:48 (type 0x1).</summary>
    public int FunctionMask => (int)Field(Qw0, FunctionMaskShift, 2);

    /// <summary>PASID, QW0 bits 51:32 (types 0x6, 0x7, 0x8).</summary>
    public uint Pasid => (uint)((Qw0 >> PasidShift) & PasidMask);

    /// <summary>SID of the PASID-based device-TLB descriptor, QW0 bits 31:16 (type 0x8).</summary>
    public ushort PasidDeviceSourceId => (ushort)(Qw0 >> DeviceSourceShift);

    /// <summary>IM, QW0 bits 31:27 (type 0x4).</summary>
    public int IndexMask => (int)Field(Qw0, IndexMaskShift, 5);

    /// <summary>IF, QW0 bit 4 (type 0x5).</summary>
    public bool InterruptFlag => Bit(Qw0, 4);

    /// <summary>SW, QW0 bit 5 (type 0x5).</summary>
    public bool StatusWrite => Bit(Qw0, 5);

    /// <summary>FN, QW0 bit 6 (type 0x5).</summary>
    public bool Fence => Bit(Qw0, 6);

    /// <summary>PD, QW0 bit 7 (type 0x5).</summary>
    public bool PageRequestDrain => Bit(Qw0, 7);

    /// <summary>Status data, QW0 bits 63:32 (type 0x5).</summary>
    public uint StatusData => (uint)(Qw0 >> StatusDataShift);

    /// <summary>Status address, QW1 bits 63:2 (type 0x5).</summary>
    public ulong StatusAddress => Qw1 & StatusAddressMask;

    /// <summary>AM, QW1 bits 5:0 (types 0x2, 0x6).</summary>
    public int AddressMask => (int)Field(Qw1, 0, AddressMaskBits);

    /// <summary>IH, QW1 bit 6 (types 0x2, 0x6).</summary>
    public bool InvalidationHint => Bit(Qw1, InvalidationHintBit);

    /// <summary>ADDR, QW1 bits 63:12 (types 0x2, 0x3, 0x6, 0x8), as a byte address.</summary>
    public ulong PageAddress => Qw1 & PageAddressMask;

    /// <summary>S, QW1 bit 0 (type 0x3) — the same bit is G of type 0x8.</summary>
    public bool SizeBit => Bit(Qw1, 0);

    /// <summary>G, QW1 bit 0 (type 0x8): every PASID of the device.</summary>
    public bool GlobalInvalidate => Bit(Qw1, 0);

    /// <summary>S, QW1 bit 11 (type 0x8).</summary>
    public bool PasidSizeBit => Bit(Qw1, 11);

    /// <inheritdoc/>
    public bool Equals(VtdDescriptor other) => Qw0 == other.Qw0 && Qw1 == other.Qw1 && Qw2 == other.Qw2 && Qw3 == other.Qw3;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is VtdDescriptor d && Equals(d);

    /// <summary>Word-wise equality.</summary>
    public static bool operator ==(VtdDescriptor left, VtdDescriptor right) => left.Equals(right);

    /// <summary>Word-wise inequality.</summary>
    public static bool operator !=(VtdDescriptor left, VtdDescriptor right) => !left.Equals(right);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Qw0, Qw1, Qw2, Qw3);

    /// <inheritdoc/>
    public override string ToString() => $"vtd type 0x{Type:x} [0x{Qw0:x16} 0x{Qw1:x16} 0x{Qw2:x16} 0x{Qw3:x16}]";
}
