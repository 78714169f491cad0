using System.Buffers.Binary;
using System.Runtime.InteropServices;
using static FastInval.Queues.WireBits;
using static FastInval.Smmu.SmmuCommandLayout;

namespace FastInval.Smmu;

/// <summary>SMMUv3 command opcodes (bits [7:0] of every command; spec/smmuv3-command-queue.md §1.2).</summary>
public enum SmmuOpcode : byte
{
    /// <summary>CMD_PREFETCH_CONFIG.</summary>
    PrefetchConfig = 0x01,

    /// <summary>CMD_PREFETCH_ADDR.</summary>
    PrefetchAddr = 0x02,

    /// <summary>CMD_CFGI_STE.</summary>
    CfgiSte = 0x03,

    /// <summary>CMD_CFGI_STE_RANGE (CMD_CFGI_ALL when Range = 31).</summary>
    CfgiSteRange = 0x04,

    /// <summary>CMD_CFGI_CD.</summary>
    CfgiCd = 0x05,

    /// <summary>CMD_CFGI_CD_ALL.</summary>
    CfgiCdAll = 0x06,

    /// <summary>CMD_CFGI_VMS_PIDM (needs MPAM).</summary>
    CfgiVmsPidm = 0x07,

    /// <summary>CMD_TLBI_NH_ALL.</summary>
    TlbiNhAll = 0x10,

    /// <summary>CMD_TLBI_NH_ASID.</summary>
    TlbiNhAsid = 0x11,

    /// <summary>CMD_TLBI_NH_VA.</summary>
    TlbiNhVa = 0x12,

    /// <summary>CMD_TLBI_NH_VAA.</summary>
    TlbiNhVaa = 0x13,

    /// <summary>CMD_TLBI_EL3_ALL (Secure queue only).</summary>
    TlbiEl3All = 0x18,

    /// <summary>CMD_TLBI_EL3_VA (Secure queue only).</summary>
    TlbiEl3Va = 0x1A,

    /// <summary>CMD_TLBI_EL2_ALL (needs IDR0.HYP).</summary>
    TlbiEl2All = 0x20,

    /// <summary>CMD_TLBI_EL2_ASID.</summary>
    TlbiEl2Asid = 0x21,

    /// <summary>CMD_TLBI_EL2_VA.</summary>
    TlbiEl2Va = 0x22,

    /// <summary>CMD_TLBI_EL2_VAA.</summary>
    TlbiEl2Vaa = 0x23,

    /// <summary>CMD_TLBI_S12_VMALL.</summary>
    TlbiS12Vmall = 0x28,

    /// <summary>CMD_TLBI_S2_IPA.</summary>
    TlbiS2Ipa = 0x2A,

    /// <summary>CMD_TLBI_NSNH_ALL.</summary>
    TlbiNsnhAll = 0x30,

    /// <summary>CMD_ATC_INV.</summary>
    AtcInv = 0x40,

    /// <summary>CMD_PRI_RESP.</summary>
    PriResp = 0x41,

    /// <summary>CMD_RESUME.</summary>
    Resume = 0x44,

    /// <summary>CMD_STALL_TERM.</summary>
    StallTerm = 0x45,

    /// <summary>CMD_SYNC.</summary>
    Sync = 0x46,
}

/// <summary>
/// One 16-byte SMMUv3 command-queue entry: two little-endian 64-bit words, DW0 = bits [63:0], DW1 = bits [127:64].
/// Accessors and builders are written against <see cref="SmmuCommandLayout"/>, the one definition of the fields
/// (absolute bit numbers):
/// <code>
/// DW0: [7:0] opcode  [9] Global(ATC)  [10] SSec  [11] SSV  [31:12] SubstreamID  [16:12] NUM  [25:20] SCALE
///      [13:12] CS(SYNC)  [23:22] MSH  [27:24] MSIAttr  [47:32] VMID  [63:48] ASID  [63:32] StreamID / MSIData
/// DW1: [64] Leaf  [68:64] Range  [69:64] ATC Size  [71] TTL128  [73:72] TTL  [75:74] TG  [127:76] Address[63:12]
///      [119:66] MSIAddress[55:2]  [72:64] PRGIndex  [77:76] Resp  [79:64] STAG
/// </code>
/// Which field a command has depends on its opcode; the decoder checks the rest are zero.
/// </summary>
[StructLayout(LayoutKind.Sequential, Size = 16)]
public readonly struct SmmuCommand : IEquatable<SmmuCommand>
{
    /// <summary>Bits [63:0].</summary>
    public readonly ulong Dword0;

    /// <summary>Bits [127:64].</summary>
    public readonly ulong Dword1;

    /// <summary>Creates a command from its two words.</summary>
    public SmmuCommand(ulong dword0, ulong dword1)
    {
        Dword0 = dword0;
        Dword1 = dword1;
    }

    /// <summary>Reads a command from 16 little-endian bytes.</summary>
    public static SmmuCommand Read(ReadOnlySpan<byte> bytes) =>
        new(BinaryPrimitives.ReadUInt64LittleEndian(bytes), BinaryPrimitives.ReadUInt64LittleEndian(bytes[8..]));

    /// <summary>Writes the command as 16 little-endian bytes.</summary>
    public void Write(Span<byte> bytes)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, Dword0);
        BinaryPrimitives.WriteUInt64LittleEndian(bytes[8..], Dword1);
    }

    /// <summary>Opcode, bits [7:0].</summary>
    public byte Opcode => (byte)Get(Dword0, OpcodeMask, OpcodeShift);

    /// <summary>ATC_INV Global, bit 9.</summary>
    public bool Global => (Dword0 & GlobalMask) != 0;

    /// <summary>SSec, bit 10 (must be 0 on the Non-secure queue).</summary>
    public bool SSec => (Dword0 & SSecMask) != 0;

    /// <summary>SubstreamID valid, bit 11.</summary>
    public bool SubstreamValid => (Dword0 & SsvMask) != 0;

    /// <summary>SubstreamID, bits [31:12].</summary>
    public uint SubstreamId => (uint)Get(Dword0, SubstreamIdMask, SubstreamIdShift);

    /// <summary>Range multiplier NUM, bits [16:12].</summary>
    public int Num => (int)Get(Dword0, NumMask, NumShift);

    /// <summary>Range SCALE, bits [24:20] (bit 25 extends it only with IDR5.DS, which FastInval does not implement).</summary>
    public int Scale => (int)Get(Dword0, ScaleMask, ScaleShift);

    /// <summary>CMD_SYNC completion signal CS, bits [13:12].</summary>
    public int CompletionSignal => (int)Get(Dword0, CompletionSignalMask, CompletionSignalShift);

    /// <summary>CMD_SYNC MSI shareability, bits [23:22].</summary>
    public int MsiShareability => (int)Get(Dword0, MsiShareabilityMask, MsiShareabilityShift);

    /// <summary>CMD_SYNC MSI attributes, bits [27:24].</summary>
    public int MsiAttributes => (int)Get(Dword0, MsiAttributesMask, MsiAttributesShift);

    /// <summary>VMID, bits [47:32].</summary>
    public ushort Vmid => (ushort)Get(Dword0, VmidMask, VmidShift);

    /// <summary>ASID, bits [63:48].</summary>
    public ushort Asid => (ushort)Get(Dword0, AsidMask, AsidShift);

    /// <summary>StreamID, bits [63:32].</summary>
    public uint StreamId => (uint)Get(Dword0, StreamIdMask, StreamIdShift);

    /// <summary>CMD_SYNC MSI data, bits [63:32].</summary>
    public uint MsiData => (uint)Get(Dword0, MsiDataMask, MsiDataShift);

    /// <summary>Leaf, bit 64.</summary>
    public bool Leaf => (Dword1 & LeafMask) != 0;

    /// <summary>CFGI_STE_RANGE Range, bits [68:64].</summary>
    public int Range => (int)Get(Dword1, RangeMask, RangeShift);

    /// <summary>ATC_INV Size, bits [69:64].</summary>
    public int AtcSize => (int)Get(Dword1, AtcSizeMask, AtcSizeShift);

    /// <summary>TTL128, bit 71.</summary>
    public bool Ttl128 => (Dword1 & Ttl128Mask) != 0;

    /// <summary>Level hint TTL, bits [73:72].</summary>
    public int Ttl => (int)Get(Dword1, TtlMask, TtlShift);

    /// <summary>Translation granule TG, bits [75:74].</summary>
    public int TranslationGranule => (int)Get(Dword1, TranslationGranuleMask, TranslationGranuleShift);

    /// <summary>Address[63:12] from bits [127:76] (VA, IPA and ATC addresses).</summary>
    public ulong Address => Dword1 & AddressMask;

    /// <summary>CMD_SYNC MSI address[55:2] from bits [119:66].</summary>
    public ulong MsiAddress => Dword1 & SmmuCommandLayout.MsiAddressMask;

    /// <summary>PRI_RESP PRG index, bits [72:64].</summary>
    public int PrgIndex => (int)Get(Dword1, PrgIndexMask, PrgIndexShift);

    /// <summary>PRI_RESP response, bits [77:76].</summary>
    public int PriResponse => (int)Get(Dword1, PriResponseMask, PriResponseShift);

    /// <summary>RESUME stall tag, bits [79:64].</summary>
    public ushort StallTag => (ushort)Get(Dword1, StallTagMask, StallTagShift);

    // ---- builders: the encoders tests, benchmarks, fuzz seeds and docs use instead of hand-encoding ----

    /// <summary>Any command: <paramref name="opcode"/> with extra DW0/DW1 bits (for reserved-field and raw cases).</summary>
    public static SmmuCommand Of(SmmuOpcode opcode, ulong dword0 = 0, ulong dword1 = 0) => new((byte)opcode | dword0, dword1);

    /// <summary>CMD_CFGI_STE of <paramref name="streamId"/> (Leaf as given).</summary>
    public static SmmuCommand CfgiSte(uint streamId, bool leaf = true) =>
        Of(SmmuOpcode.CfgiSte, Put(streamId, StreamIdMask, StreamIdShift), leaf ? LeafMask : 0);

    /// <summary>CMD_CFGI_STE_RANGE: 2^(<paramref name="range"/>+1) StreamIDs around <paramref name="streamId"/>
    /// (Range 31 is CMD_CFGI_ALL).</summary>
    public static SmmuCommand CfgiSteRange(uint streamId, int range) =>
        Of(SmmuOpcode.CfgiSteRange, Put(streamId, StreamIdMask, StreamIdShift), Put((ulong)range, RangeMask, RangeShift));

    /// <summary>CMD_CFGI_ALL (CFGI_STE_RANGE with Range 31).</summary>
    public static SmmuCommand CfgiAll() => CfgiSteRange(0, 31);

    /// <summary>CMD_CFGI_CD of (<paramref name="streamId"/>, <paramref name="substreamId"/>).</summary>
    public static SmmuCommand CfgiCd(uint streamId, uint substreamId, bool leaf = true) =>
        Of(SmmuOpcode.CfgiCd, Put(streamId, StreamIdMask, StreamIdShift) | Put(substreamId, SubstreamIdMask, SubstreamIdShift),
            leaf ? LeafMask : 0);

    /// <summary>CMD_CFGI_CD_ALL of <paramref name="streamId"/>.</summary>
    public static SmmuCommand CfgiCdAll(uint streamId) => Of(SmmuOpcode.CfgiCdAll, Put(streamId, StreamIdMask, StreamIdShift));

    /// <summary>CMD_TLBI_NH_ALL of <paramref name="vmid"/>.</summary>
    public static SmmuCommand TlbiNhAll(ushort vmid) => Of(SmmuOpcode.TlbiNhAll, Put(vmid, VmidMask, VmidShift));

    /// <summary>CMD_TLBI_NH_ASID of (<paramref name="vmid"/>, <paramref name="asid"/>).</summary>
    public static SmmuCommand TlbiNhAsid(ushort vmid, ushort asid) =>
        Of(SmmuOpcode.TlbiNhAsid, Put(vmid, VmidMask, VmidShift) | Put(asid, AsidMask, AsidShift));

    /// <summary>CMD_TLBI_NH_VA of (<paramref name="vmid"/>, <paramref name="asid"/>) at <paramref name="va"/>, with the
    /// range fields NUM, SCALE, TTL and TG (all 0: the page at VA).</summary>
    public static SmmuCommand TlbiNhVa(ushort vmid, ushort asid, ulong va, bool leaf = false, int num = 0, int scale = 0, int ttl = 0, int tg = 0) =>
        Of(SmmuOpcode.TlbiNhVa, Put(vmid, VmidMask, VmidShift) | Put(asid, AsidMask, AsidShift) | RangeDword0(num, scale),
            (va & AddressMask) | RangeDword1(leaf, ttl, tg));

    /// <summary>CMD_TLBI_NH_VAA of <paramref name="vmid"/> (every ASID) at <paramref name="va"/>, with the range fields.</summary>
    public static SmmuCommand TlbiNhVaa(ushort vmid, ulong va, bool leaf = false, int num = 0, int scale = 0, int ttl = 0, int tg = 0) =>
        Of(SmmuOpcode.TlbiNhVaa, Put(vmid, VmidMask, VmidShift) | RangeDword0(num, scale), (va & AddressMask) | RangeDword1(leaf, ttl, tg));

    /// <summary>CMD_TLBI_S2_IPA of <paramref name="vmid"/> at <paramref name="ipa"/> (bits [55:12]), with the range fields.</summary>
    public static SmmuCommand TlbiS2Ipa(ushort vmid, ulong ipa, bool leaf = false, int num = 0, int scale = 0, int ttl = 0, int tg = 0) =>
        Of(SmmuOpcode.TlbiS2Ipa, Put(vmid, VmidMask, VmidShift) | RangeDword0(num, scale), (ipa & IpaAddressMask) | RangeDword1(leaf, ttl, tg));

    /// <summary>CMD_TLBI_S12_VMALL of <paramref name="vmid"/>.</summary>
    public static SmmuCommand TlbiS12Vmall(ushort vmid) => Of(SmmuOpcode.TlbiS12Vmall, Put(vmid, VmidMask, VmidShift));

    /// <summary>CMD_TLBI_NSNH_ALL.</summary>
    public static SmmuCommand TlbiNsnhAll() => Of(SmmuOpcode.TlbiNsnhAll);

    /// <summary>CMD_ATC_INV of <paramref name="streamId"/> over the 4 KiB·2^<paramref name="size"/> block at
    /// <paramref name="address"/> (Size 52: everything); with <paramref name="substreamId"/> SSV = 1.</summary>
    public static SmmuCommand AtcInv(uint streamId, ulong address, int size, uint? substreamId = null, bool global = false) =>
        Of(SmmuOpcode.AtcInv, Put(streamId, StreamIdMask, StreamIdShift) | (global ? GlobalMask : 0) |
                              (substreamId is uint ssid ? SsvMask | Put(ssid, SubstreamIdMask, SubstreamIdShift) : 0),
            (address & AddressMask) | Put((ulong)size, AtcSizeMask, AtcSizeShift));

    /// <summary>CMD_SYNC signalling as <paramref name="completionSignal"/> says (0 SIG_NONE, 1 SIG_IRQ, 2 SIG_SEV), with
    /// the MSI fields Linux uses: MSH Inner Shareable (3), MSIAttr Inner+Outer write-back (0xF).</summary>
    public static SmmuCommand Sync(int completionSignal, ulong msiAddress = 0, uint msiData = 0) =>
        Of(SmmuOpcode.Sync, Put((ulong)completionSignal, CompletionSignalMask, CompletionSignalShift) |
                            Put(3, MsiShareabilityMask, MsiShareabilityShift) | Put(0xF, MsiAttributesMask, MsiAttributesShift) |
                            Put(msiData, MsiDataMask, MsiDataShift),
            msiAddress & SmmuCommandLayout.MsiAddressMask);

    private static ulong RangeDword0(int num, int scale) =>
        Put((ulong)(uint)num, NumMask, NumShift) | Put((ulong)(uint)scale, ScaleMask, ScaleShift);

    private static ulong RangeDword1(bool leaf, int ttl, int tg) =>
        (leaf ? LeafMask : 0) | Put((ulong)(uint)ttl, TtlMask, TtlShift) | Put((ulong)(uint)tg, TranslationGranuleMask, TranslationGranuleShift);

    /// <inheritdoc/>
    public bool Equals(SmmuCommand other) => Dword0 == other.Dword0 && Dword1 == other.Dword1;

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is SmmuCommand c && Equals(c);

    /// <summary>Field-wise equality.</summary>
    public static bool operator ==(SmmuCommand left, SmmuCommand right) => left.Equals(right);

    /// <summary>Field-wise inequality.</summary>
    public static bool operator !=(SmmuCommand left, SmmuCommand right) => !left.Equals(right);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Dword0, Dword1);

    /// <inheritdoc/>
    public override string ToString() => $"cmd 0x{Opcode:x2} [0x{Dword0:x16} 0x{Dword1:x16}]";
}
