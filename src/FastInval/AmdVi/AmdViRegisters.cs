namespace FastInval.AmdVi;

/// <summary>
/// The command-buffer part of the AMD-Vi MMIO register map: offsets, fields and bits (AMD I/O Virtualization
/// Technology specification, MMIO registers; the same offsets and bits as Linux's <c>amd_iommu_types.h</c> and QEMU's
/// <c>amd_iommu.h</c>). Every register is 64 bits wide, naturally aligned and little-endian; a 4-byte access reaches
/// one half.
/// </summary>
public static class AmdViRegisters
{
    /// <summary>Size of the register window this unit decodes (16 KiB; performance counters beyond are not modelled).</summary>
    public const uint WindowSize = 0x4000;

    // ---- offsets ----

    /// <summary>Device Table Base (stored; this unit walks no device table).</summary>
    public const uint DeviceTableBase = 0x0000;

    /// <summary>Command Buffer Base: ComBase [51:12], ComLen [59:56].</summary>
    public const uint CommandBufferBase = 0x0008;

    /// <summary>Event Log Base: EventBase [51:12], EventLen [59:56].</summary>
    public const uint EventLogBase = 0x0010;

    /// <summary>IOMMU Control.</summary>
    public const uint Control = 0x0018;

    /// <summary>Exclusion Range Base (stored, not used).</summary>
    public const uint ExclusionBase = 0x0020;

    /// <summary>Exclusion Range Limit (stored, not used).</summary>
    public const uint ExclusionLimit = 0x0028;

    /// <summary>Extended Feature Register (read-only).</summary>
    public const uint ExtendedFeatures = 0x0030;

    /// <summary>Command Buffer Head Pointer: CmdHdPtr [18:4].</summary>
    public const uint CommandBufferHead = 0x2000;

    /// <summary>Command Buffer Tail Pointer: CmdTailPtr [18:4].</summary>
    public const uint CommandBufferTail = 0x2008;

    /// <summary>Event Log Head Pointer: EventHdPtr [18:4] (software consumes from here).</summary>
    public const uint EventLogHead = 0x2010;

    /// <summary>Event Log Tail Pointer: EventTailPtr [18:4] (the IOMMU writes here).</summary>
    public const uint EventLogTail = 0x2018;

    /// <summary>IOMMU Status.</summary>
    public const uint Status = 0x2020;

    // ---- ring base registers (Command Buffer Base, Event Log Base) ----

    /// <summary>Base address bits [51:12] of a ring, in place.</summary>
    public const ulong RingBaseAddressMask = 0x000F_FFFF_FFFF_F000UL;

    /// <summary>ComLen / EventLen [59:56]: log2 of the number of 16-byte entries.</summary>
    public const int RingLengthShift = 56;

    /// <summary>ComLen / EventLen [59:56].</summary>
    public const ulong RingLengthMask = 0xFUL << RingLengthShift;

    /// <summary>The smallest defined ring length (8h: 256 entries, 4 KiB); 0h–7h are reserved and count as 8h here.</summary>
    public const int MinRingLength = 8;

    /// <summary>Every implemented bit of a ring base register.</summary>
    public const ulong RingBaseMask = RingBaseAddressMask | RingLengthMask;

    /// <summary>Device Table Base: address [51:12] and Size [8:0].</summary>
    public const ulong DeviceTableBaseMask = RingBaseAddressMask | 0x1FFUL;

    /// <summary>Exclusion Base: address [51:12], Allow [1], ExEn [0].</summary>
    public const ulong ExclusionBaseMask = RingBaseAddressMask | 0x3UL;

    /// <summary>Exclusion Limit: address [51:12].</summary>
    public const ulong ExclusionLimitMask = RingBaseAddressMask;

    // ---- head and tail pointers ----

    /// <summary>Pointer field [18:4] of the head and tail registers: a byte offset in 16-byte units.</summary>
    public const ulong RingPointerMask = 0x7_FFF0UL;

    // ---- Control ----

    /// <summary>IommuEn: the IOMMU is enabled.</summary>
    public const ulong ControlIommuEn = 1UL << 0;

    /// <summary>HtTunEn.</summary>
    public const ulong ControlHtTunEn = 1UL << 1;

    /// <summary>EventLogEn.</summary>
    public const ulong ControlEventLogEn = 1UL << 2;

    /// <summary>EventIntEn: signal the interrupt when an event is recorded or the log overflows.</summary>
    public const ulong ControlEventIntEn = 1UL << 3;

    /// <summary>ComWaitIntEn: signal the interrupt when a COMPLETION_WAIT with I = 1 completes.</summary>
    public const ulong ControlComWaitIntEn = 1UL << 4;

    /// <summary>InvTimeOut [7:5]: device-TLB invalidation time-out (0 none, 1 = 1 ms … 6 = 100 s, 7 reserved).</summary>
    public const int ControlInvTimeOutShift = 5;

    /// <summary>InvTimeOut [7:5].</summary>
    public const ulong ControlInvTimeOutMask = 7UL << ControlInvTimeOutShift;

    /// <summary>CmdBufEn: the command buffer is enabled.</summary>
    public const ulong ControlCmdBufEn = 1UL << 12;

    /// <summary>PPRLogEn (no PPR log here: stored only).</summary>
    public const ulong ControlPprLogEn = 1UL << 13;

    /// <summary>GTEn: guest translation enabled (stored only).</summary>
    public const ulong ControlGtEn = 1UL << 16;

    /// <summary>Bits of Control this unit stores: [17:0] (IommuEn … GAEn); the rest read 0.</summary>
    public const ulong ControlMask = 0x3_FFFFUL;

    // ---- Status ----

    /// <summary>EventOverflow (RW1C): an event was discarded because the log was full.</summary>
    public const ulong StatusEventOverflow = 1UL << 0;

    /// <summary>EventLogInt (RW1C): an event was written to the log.</summary>
    public const ulong StatusEventLogInt = 1UL << 1;

    /// <summary>ComWaitInt (RW1C): a COMPLETION_WAIT with I = 1 completed.</summary>
    public const ulong StatusComWaitInt = 1UL << 2;

    /// <summary>EventLogRun (RO): events are being recorded.</summary>
    public const ulong StatusEventLogRun = 1UL << 3;

    /// <summary>CmdBufRun (RO): commands are being fetched.</summary>
    public const ulong StatusCmdBufRun = 1UL << 4;

    /// <summary>The RW1C bits this unit implements.</summary>
    public const ulong StatusWriteOneToClear = StatusEventOverflow | StatusEventLogInt | StatusComWaitInt;

    // ---- Extended Feature Register ----

    /// <summary>PreFSup: PREFETCH_IOMMU_PAGES (not set: this unit walks no tables).</summary>
    public const ulong FeaturePrefetch = 1UL << 0;

    /// <summary>PPRSup: the PPR log and COMPLETE_PPR_REQUEST (not set: no PPR log).</summary>
    public const ulong FeaturePpr = 1UL << 1;

    /// <summary>XTSup: x2APIC interrupts (not set).</summary>
    public const ulong FeatureXt = 1UL << 2;

    /// <summary>NXSup: no-execute protection.</summary>
    public const ulong FeatureNx = 1UL << 3;

    /// <summary>GTSup: guest translation (the GN = 1 forms of the invalidation commands, with PASID).</summary>
    public const ulong FeatureGuestTranslation = 1UL << 4;

    /// <summary>IASup: INVALIDATE_IOMMU_ALL.</summary>
    public const ulong FeatureInvalidateAll = 1UL << 6;

    /// <summary>GLXSup [15:14]: guest CR3 table levels supported (1: two levels).</summary>
    public const int FeatureGlxShift = 14;

    /// <summary>GLXSup [15:14].</summary>
    public const ulong FeatureGlxMask = 3UL << FeatureGlxShift;

    /// <summary>PASMax [36:32]: PASID width − 1 (19: 20-bit PASIDs).</summary>
    public const int FeaturePasMaxShift = 32;

    /// <summary>PASMax [36:32].</summary>
    public const ulong FeaturePasMaxMask = 0x1FUL << FeaturePasMaxShift;

    /// <summary>InvIotlbTypeSup [54]: the Type field of INVALIDATE_IOTLB_PAGES (not set: Type is reserved).</summary>
    public const ulong FeatureInvIotlbType = 1UL << 54;
}
