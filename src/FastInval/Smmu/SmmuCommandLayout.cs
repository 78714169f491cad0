namespace FastInval.Smmu;

/// <summary>
/// The one definition of the SMMUv3 command-queue entry layout (Arm IHI 0070 §4.1–4.7): a Shift and an in-place Mask per
/// field, for DW0 (bits [63:0]) and DW1 (bits [127:64]). <see cref="SmmuCommand"/>'s accessors and builders and
/// <see cref="SmmuCommandDecoder"/>'s reserved-field checks are written against these constants only. Which fields a
/// command has depends on its opcode, so fields of different commands overlap (NUM and SubstreamID, VMID and StreamID).
/// </summary>
public static class SmmuCommandLayout
{
    /// <summary>Size of one command in bytes (two little-endian 64-bit words).</summary>
    public const int Size = 16;

    // ---- DW0 ----

    /// <summary>DW0 [7:0]: the opcode.</summary>
    public const int OpcodeShift = 0;

    /// <summary>DW0 [7:0]: the opcode.</summary>
    public const ulong OpcodeMask = 0xFFUL;

    /// <summary>DW0 [9]: ATC_INV Global.</summary>
    public const int GlobalShift = 9;

    /// <summary>DW0 [9]: ATC_INV Global.</summary>
    public const ulong GlobalMask = 1UL << GlobalShift;

    /// <summary>DW0 [10]: SSec (Secure stream; 0 on the Non-secure queue).</summary>
    public const int SSecShift = 10;

    /// <summary>DW0 [10]: SSec.</summary>
    public const ulong SSecMask = 1UL << SSecShift;

    /// <summary>DW0 [11]: SSV, SubstreamID valid.</summary>
    public const int SsvShift = 11;

    /// <summary>DW0 [11]: SSV.</summary>
    public const ulong SsvMask = 1UL << SsvShift;

    /// <summary>DW0 [31:12]: SubstreamID.</summary>
    public const int SubstreamIdShift = 12;

    /// <summary>DW0 [31:12]: SubstreamID.</summary>
    public const ulong SubstreamIdMask = 0xF_FFFFUL << SubstreamIdShift;

    /// <summary>DW0 [16:12]: range multiplier NUM of TLBI_*.</summary>
    public const int NumShift = 12;

    /// <summary>DW0 [16:12]: NUM.</summary>
    public const ulong NumMask = 0x1FUL << NumShift;

    /// <summary>DW0 [24:20]: range SCALE of TLBI_* (bit 25 only with IDR5.DS, not implemented).</summary>
    public const int ScaleShift = 20;

    /// <summary>DW0 [24:20]: SCALE.</summary>
    public const ulong ScaleMask = 0x1FUL << ScaleShift;

    /// <summary>DW0 [13:12]: CMD_SYNC completion signal CS, and RESUME's Action.</summary>
    public const int CompletionSignalShift = 12;

    /// <summary>DW0 [13:12]: CS (and RESUME Action).</summary>
    public const ulong CompletionSignalMask = 3UL << CompletionSignalShift;

    /// <summary>DW0 [23:22]: CMD_SYNC MSI shareability MSH.</summary>
    public const int MsiShareabilityShift = 22;

    /// <summary>DW0 [23:22]: MSH.</summary>
    public const ulong MsiShareabilityMask = 3UL << MsiShareabilityShift;

    /// <summary>DW0 [27:24]: CMD_SYNC MSI attributes MSIAttr.</summary>
    public const int MsiAttributesShift = 24;

    /// <summary>DW0 [27:24]: MSIAttr.</summary>
    public const ulong MsiAttributesMask = 0xFUL << MsiAttributesShift;

    /// <summary>DW0 [47:32]: VMID.</summary>
    public const int VmidShift = 32;

    /// <summary>DW0 [47:32]: VMID.</summary>
    public const ulong VmidMask = 0xFFFFUL << VmidShift;

    /// <summary>DW0 [63:48]: ASID.</summary>
    public const int AsidShift = 48;

    /// <summary>DW0 [63:48]: ASID.</summary>
    public const ulong AsidMask = 0xFFFFUL << AsidShift;

    /// <summary>DW0 [63:32]: StreamID.</summary>
    public const int StreamIdShift = 32;

    /// <summary>DW0 [63:32]: StreamID.</summary>
    public const ulong StreamIdMask = 0xFFFF_FFFFUL << StreamIdShift;

    /// <summary>DW0 [63:32]: CMD_SYNC MSIData.</summary>
    public const int MsiDataShift = 32;

    /// <summary>DW0 [63:32]: MSIData.</summary>
    public const ulong MsiDataMask = 0xFFFF_FFFFUL << MsiDataShift;

    // ---- DW1 ----

    /// <summary>DW1 [0] (bit 64): Leaf.</summary>
    public const int LeafShift = 0;

    /// <summary>DW1 [0]: Leaf.</summary>
    public const ulong LeafMask = 1UL << LeafShift;

    /// <summary>DW1 [4:0] (bits [68:64]): CFGI_STE_RANGE Range.</summary>
    public const int RangeShift = 0;

    /// <summary>DW1 [4:0]: Range.</summary>
    public const ulong RangeMask = 0x1FUL << RangeShift;

    /// <summary>DW1 [5:0] (bits [69:64]): ATC_INV Size.</summary>
    public const int AtcSizeShift = 0;

    /// <summary>DW1 [5:0]: ATC_INV Size.</summary>
    public const ulong AtcSizeMask = 0x3FUL << AtcSizeShift;

    /// <summary>DW1 [7] (bit 71): TTL128.</summary>
    public const int Ttl128Shift = 7;

    /// <summary>DW1 [7]: TTL128.</summary>
    public const ulong Ttl128Mask = 1UL << Ttl128Shift;

    /// <summary>DW1 [9:8] (bits [73:72]): level hint TTL.</summary>
    public const int TtlShift = 8;

    /// <summary>DW1 [9:8]: TTL.</summary>
    public const ulong TtlMask = 3UL << TtlShift;

    /// <summary>DW1 [11:10] (bits [75:74]): translation granule TG.</summary>
    public const int TranslationGranuleShift = 10;

    /// <summary>DW1 [11:10]: TG.</summary>
    public const ulong TranslationGranuleMask = 3UL << TranslationGranuleShift;

    /// <summary>DW1 [63:12] (bits [127:76]): Address[63:12] of TLBI_NH_VA/VAA and ATC_INV, in place.</summary>
    public const ulong AddressMask = ~0xFFFUL;

    /// <summary>DW1 [55:12]: IPA[55:12] of TLBI_S2_IPA, in place.</summary>
    public const ulong IpaAddressMask = 0x00FF_FFFF_FFFF_F000UL;

    /// <summary>DW1 [55:2] (bits [119:66]): CMD_SYNC MSIAddress[55:2], in place.</summary>
    public const ulong MsiAddressMask = 0x00FF_FFFF_FFFF_FFFCUL;

    /// <summary>DW1 [8:0] (bits [72:64]): PRI_RESP PRG index.</summary>
    public const int PrgIndexShift = 0;

    /// <summary>DW1 [8:0]: PRG index.</summary>
    public const ulong PrgIndexMask = 0x1FFUL << PrgIndexShift;

    /// <summary>DW1 [13:12] (bits [77:76]): PRI_RESP Resp.</summary>
    public const int PriResponseShift = 12;

    /// <summary>DW1 [13:12]: Resp.</summary>
    public const ulong PriResponseMask = 3UL << PriResponseShift;

    /// <summary>DW1 [15:0] (bits [79:64]): RESUME stall tag STAG.</summary>
    public const int StallTagShift = 0;

    /// <summary>DW1 [15:0]: STAG.</summary>
    public const ulong StallTagMask = 0xFFFFUL << StallTagShift;
}
