using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

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
/// Accessors follow the field dictionary of spec/smmuv3-command-queue.md §1.3 (absolute bit numbers):
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
    public byte Opcode => (byte)Dword0;

    /// <summary>ATC_INV Global, bit 9.</summary>
    public bool Global => Bit(Dword0, 9);

    /// <summary>SSec, bit 10 (must be 0 on the Non-secure queue).</summary>
    public bool SSec => Bit(Dword0, 10);

    /// <summary>SubstreamID valid, bit 11.</summary>
    public bool SubstreamValid => Bit(Dword0, 11);

    /// <summary>SubstreamID, bits [31:12].</summary>
    public uint SubstreamId => (uint)Field(Dword0, 12, 20);

    /// <summary>Range multiplier NUM, bits [16:12].</summary>
    public int Num => (int)Field(Dword0, 12, 5);

    /// <summary>Range SCALE, bits [24:20] (bit 25 extends it only with IDR5.DS, which FastInval does not implement).</summary>
    public int Scale => (int)Field(Dword0, 20, 5);

    /// <summary>CMD_SYNC completion signal CS, bits [13:12].</summary>
    public int CompletionSignal => (int)Field(Dword0, 12, 2);

    /// <summary>CMD_SYNC MSI shareability, bits [23:22].</summary>
    public int MsiShareability => (int)Field(Dword0, 22, 2);

    /// <summary>CMD_SYNC MSI attributes, bits [27:24].</summary>
    public int MsiAttributes => (int)Field(Dword0, 24, 4);

    /// <summary>VMID, bits [47:32].</summary>
    public ushort Vmid => (ushort)Field(Dword0, 32, 16);

    /// <summary>ASID, bits [63:48].</summary>
    public ushort Asid => (ushort)(Dword0 >> 48);

    /// <summary>StreamID, bits [63:32].</summary>
    public uint StreamId => (uint)(Dword0 >> 32);

    /// <summary>CMD_SYNC MSI data, bits [63:32].</summary>
    public uint MsiData => (uint)(Dword0 >> 32);

    /// <summary>Leaf, bit 64.</summary>
    public bool Leaf => Bit(Dword1, 0);

    /// <summary>CFGI_STE_RANGE Range, bits [68:64].</summary>
    public int Range => (int)Field(Dword1, 0, 5);

    /// <summary>ATC_INV Size, bits [69:64].</summary>
    public int AtcSize => (int)Field(Dword1, 0, 6);

    /// <summary>TTL128, bit 71.</summary>
    public bool Ttl128 => Bit(Dword1, 7);

    /// <summary>Level hint TTL, bits [73:72].</summary>
    public int Ttl => (int)Field(Dword1, 8, 2);

    /// <summary>Translation granule TG, bits [75:74].</summary>
    public int TranslationGranule => (int)Field(Dword1, 10, 2);

    /// <summary>Address[63:12] from bits [127:76] (VA, IPA and ATC addresses).</summary>
    public ulong Address => Dword1 & ~0xFFFUL;

    /// <summary>CMD_SYNC MSI address[55:2] from bits [119:66].</summary>
    public ulong MsiAddress => Dword1 & 0x00FF_FFFF_FFFF_FFFCUL;

    /// <summary>PRI_RESP PRG index, bits [72:64].</summary>
    public int PrgIndex => (int)Field(Dword1, 0, 9);

    /// <summary>PRI_RESP response, bits [77:76].</summary>
    public int PriResponse => (int)Field(Dword1, 12, 2);

    /// <summary>RESUME stall tag, bits [79:64].</summary>
    public ushort StallTag => (ushort)Dword1;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool Bit(ulong word, int bit) => ((word >> bit) & 1) != 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Field(ulong word, int shift, int width) => (word >> shift) & ((1UL << width) - 1);

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
