namespace FastInval.Smmu;

/// <summary>Offsets and fields of the SMMUv3 page-0 registers FastInval models (Arm IHI 0070 §6.3; Linux arm-smmu-v3.h).</summary>
public static class SmmuRegisters
{
    /// <summary>SMMU_IDR0..IDR5, IIDR, AIDR (32-bit, read-only).</summary>
    public const uint Idr0 = 0x00, Idr1 = 0x04, Idr2 = 0x08, Idr3 = 0x0C, Idr4 = 0x10, Idr5 = 0x14, Iidr = 0x18, Aidr = 0x1C;

    /// <summary>SMMU_CR0, CR0ACK, CR1, CR2.</summary>
    public const uint Cr0 = 0x20, Cr0Ack = 0x24, Cr1 = 0x28, Cr2 = 0x2C;

    /// <summary>SMMU_GBPA (global bypass attributes).</summary>
    public const uint Gbpa = 0x44;

    /// <summary>SMMU_IRQ_CTRL and IRQ_CTRLACK.</summary>
    public const uint IrqCtrl = 0x50, IrqCtrlAck = 0x54;

    /// <summary>SMMU_GERROR (read-only) and GERRORN.</summary>
    public const uint Gerror = 0x60, Gerrorn = 0x64;

    /// <summary>SMMU_GERROR_IRQ_CFG0 (64-bit MSI address), CFG1 (data), CFG2 (attributes).</summary>
    public const uint GerrorIrqCfg0 = 0x68, GerrorIrqCfg1 = 0x70, GerrorIrqCfg2 = 0x74;

    /// <summary>SMMU_STRTAB_BASE (64-bit) and STRTAB_BASE_CFG.</summary>
    public const uint StrtabBase = 0x80, StrtabBaseCfg = 0x88;

    /// <summary>SMMU_CMDQ_BASE (64-bit), CMDQ_PROD, CMDQ_CONS.</summary>
    public const uint CmdqBase = 0x90, CmdqProd = 0x98, CmdqCons = 0x9C;

    /// <summary>SMMU_AIDR of this model: ArchMajorRev 0 (SMMUv3.x), ArchMinorRev 1 (SMMUv3.1). The unit carries v3.2's
    /// range invalidation (permitted in a v3.1 part) but not HYP (EL2 contexts), which v3.2 makes mandatory for a part with
    /// both stages.</summary>
    public const uint AidrSmmuV31 = 0x1;

    /// <summary>IDR3 bits: HAD [2], XNX [4], FWB [8], RIL [10].</summary>
    public const uint Idr3Had = 1u << 2, Idr3Xnx = 1u << 4, Idr3Fwb = 1u << 8, Idr3Ril = 1u << 10;

    /// <summary>CR0 bits.</summary>
    public const uint Cr0SmmuEn = 1u << 0, Cr0PriqEn = 1u << 1, Cr0EvtqEn = 1u << 2, Cr0CmdqEn = 1u << 3, Cr0AtsChk = 1u << 4;

    /// <summary>IRQ_CTRL bits.</summary>
    public const uint IrqGerrorEn = 1u << 0, IrqPriqEn = 1u << 1, IrqEvtqEn = 1u << 2;

    /// <summary>GERROR / GERRORN bits.</summary>
    public const uint GerrorCmdqErr = 1u << 0, GerrorEvtqAbtErr = 1u << 2, GerrorPriqAbtErr = 1u << 3, GerrorMsiCmdqAbtErr = 1u << 4,
        GerrorMsiEvtqAbtErr = 1u << 5, GerrorMsiPriqAbtErr = 1u << 6, GerrorMsiGerrorAbtErr = 1u << 7, GerrorSfmErr = 1u << 8;

    /// <summary>Every GERROR bit an SMMUv3.2 without a DPT or CMDQ_P defines (bits 0, 2–8).</summary>
    public const uint GerrorDefined = 0x1FD;

    /// <summary>CMDQ_CONS.ERR, bits [30:24].</summary>
    public const int ConsErrShift = 24;

    /// <summary>CMDQ_CONS.ERR mask.</summary>
    public const uint ConsErrMask = 0x7Fu << ConsErrShift;

    /// <summary>CMDQ_BASE writable fields: RA [62], ADDR [55:5], LOG2SIZE [4:0].</summary>
    public const ulong CmdqBaseMask = (1UL << 62) | 0x00FF_FFFF_FFFF_FFE0UL | 0x1FUL;

    /// <summary>STRTAB_BASE writable fields: RA [62], ADDR [55:6].</summary>
    public const ulong StrtabBaseMask = (1UL << 62) | 0x00FF_FFFF_FFFF_FFC0UL;

    /// <summary>GERROR_IRQ_CFG0 ADDR [55:2].</summary>
    public const ulong MsiAddressMask = 0x00FF_FFFF_FFFF_FFFCUL;
}
