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

    /// <summary>IDR0 single-bit fields: S2P [0], S1P [1], COHACC [4], ATS [10], ASID16 [12], MSI [13], SEV [14], PRI [16],
    /// VMID16 [18], CD2L [19], TERM_MODEL [26].</summary>
    public const uint Idr0S2p = 1u << 0, Idr0S1p = 1u << 1, Idr0CohAcc = 1u << 4, Idr0Ats = 1u << 10, Idr0Asid16 = 1u << 12,
        Idr0Msi = 1u << 13, Idr0Sev = 1u << 14, Idr0Pri = 1u << 16, Idr0Vmid16 = 1u << 18, Idr0Cd2l = 1u << 19,
        Idr0TermModel = 1u << 26;

    /// <summary>IDR0 multi-bit fields: TTF [3:2], TTENDIAN [22:21], STALL_MODEL [25:24], ST_LEVEL [28:27].</summary>
    public const int Idr0TtfShift = 2, Idr0TtEndianShift = 21, Idr0StallModelShift = 24, Idr0StLevelShift = 27;

    /// <summary>IDR1 fields: SIDSIZE [5:0], SSIDSIZE [10:6], PRIQS [15:11], EVENTQS [20:16], CMDQS [25:21].</summary>
    public const int Idr1SidSizeShift = 0, Idr1SsidSizeShift = 6, Idr1PriqsShift = 11, Idr1EventqsShift = 16, Idr1CmdqsShift = 21;

    /// <summary>IDR5 fields: OAS [2:0]; GRAN4K [4], GRAN16K [5], GRAN64K [6].</summary>
    public const uint Idr5Gran4K = 1u << 4, Idr5Gran16K = 1u << 5, Idr5Gran64K = 1u << 6;

    /// <summary>CMDQ_BASE.LOG2SIZE [4:0], and CMDQ_PROD / CMDQ_CONS RD/WR (index and wrap bit) [19:0].</summary>
    public const uint CmdqLog2SizeMask = 0x1F, QueuePointerMask = 0xF_FFFF;

    /// <summary>SMMU_AIDR of this model: ArchMajorRev 0 (SMMUv3.x), ArchMinorRev 1 (SMMUv3.1). The unit carries v3.2's
    /// range invalidation (permitted in a v3.1 part) but not HYP (EL2 contexts), which v3.2 makes mandatory for a part with
    /// both stages.</summary>
    public const uint AidrSmmuV31 = 0x1;

    /// <summary>IDR3 bits: HAD [2], XNX [4], FWB [8], RIL [10].</summary>
    public const uint Idr3Had = 1u << 2, Idr3Xnx = 1u << 4, Idr3Fwb = 1u << 8, Idr3Ril = 1u << 10;

    /// <summary>CR0 bits.</summary>
    public const uint Cr0SmmuEn = 1u << 0, Cr0PriqEn = 1u << 1, Cr0EvtqEn = 1u << 2, Cr0CmdqEn = 1u << 3, Cr0AtsChk = 1u << 4;

    /// <summary>CR1 writable fields (queue and table cacheability/shareability, [11:0]); CR2 (E2H, RECINVSID, PTM, [2:0]).</summary>
    public const uint Cr1Mask = 0xFFF, Cr2Mask = 0x7;

    /// <summary>GBPA.Update [31], and the fields an update stores: ABORT [20] and the attribute overrides [13:0].</summary>
    public const uint GbpaUpdate = 1u << 31, GbpaMask = 0x0010_3FFF;

    /// <summary>GERROR_IRQ_CFG2 (MSI shareability and memory attributes, [5:0]); STRTAB_BASE_CFG (FMT [17:16], SPLIT [10:6],
    /// LOG2SIZE [5:0]).</summary>
    public const uint GerrorIrqCfg2Mask = 0x3F, StrtabBaseCfgMask = 0x3_07FF;

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

    /// <summary>CMDQ_BASE.ADDR [55:5].</summary>
    public const ulong CmdqBaseAddressMask = 0x00FF_FFFF_FFFF_FFE0UL;

    /// <summary>CMDQ_BASE writable fields: RA [62], ADDR [55:5], LOG2SIZE [4:0].</summary>
    public const ulong CmdqBaseMask = (1UL << 62) | CmdqBaseAddressMask | CmdqLog2SizeMask;

    /// <summary>STRTAB_BASE writable fields: RA [62], ADDR [55:6].</summary>
    public const ulong StrtabBaseMask = (1UL << 62) | 0x00FF_FFFF_FFFF_FFC0UL;

    /// <summary>GERROR_IRQ_CFG0 ADDR [55:2].</summary>
    public const ulong MsiAddressMask = 0x00FF_FFFF_FFFF_FFFCUL;
}
