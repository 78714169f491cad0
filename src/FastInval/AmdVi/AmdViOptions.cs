namespace FastInval.AmdVi;

/// <summary>Capabilities, fault plan, engine and interrupt sink of an <see cref="AmdViIommu"/>.</summary>
/// <remarks>The defaults model a current server part with every capability this unit implements on: guest translation
/// with 20-bit PASIDs (EFR.GTSup, PASMax = 19, GLXSup = 1), remote IOTLBs (the PCI capability's IotlbSup:
/// INVALIDATE_IOTLB_PAGES), INVALIDATE_IOMMU_ALL (EFR.IASup) and NXSup. PREFETCH_IOMMU_PAGES, the PPR log, the GA log
/// and the hardware vIOMMU are not modelled, so their feature bits read 0 and their commands are illegal.</remarks>
public sealed class AmdViOptions
{
    /// <summary>Called whenever the unit signals its interrupt: an event recorded or the event log overflowing with
    /// Control.EventIntEn = 1, or a COMPLETION_WAIT with I = 1 completing with Control.ComWaitIntEn = 1. The callback may
    /// read and write the unit's registers (an interrupt handler's status clear and event-log consumption).</summary>
    public Action? Interrupt { get; init; }

    /// <summary>EFR.GTSup (with PASMax and GLXSup): the GN = 1 forms of INVALIDATE_IOMMU_PAGES and INVALIDATE_IOTLB_PAGES.
    /// Without it GN is a reserved bit.</summary>
    public bool GuestTranslation { get; init; } = true;

    /// <summary>IotlbSup (PCI capability header bit 24): INVALIDATE_IOTLB_PAGES to devices' ATS IOTLBs. Without it the
    /// command is illegal.</summary>
    public bool DeviceTlb { get; init; } = true;

    /// <summary>EFR.IASup: INVALIDATE_IOMMU_ALL. Without it the command is illegal.</summary>
    public bool InvalidateAll { get; init; } = true;

    /// <summary>Injected failures: device-TLB time-outs (decided by the engine) and command-fetch errors (decided by the
    /// unit with its own fetch ordinal). Null: the engine options' plan.</summary>
    public FaultPlan? FaultPlan { get; init; }

    /// <summary>Capacities and kernel of the unit's engine (default capacities when null).</summary>
    public EngineOptions? Engine { get; init; }

    /// <summary>Where INVALIDATE_IOTLB_PAGES goes: each becomes a request to the sink, answered later by the device, and a
    /// COMPLETION_WAIT after it is held (the head on it, no store, no interrupt) until every earlier request is answered.
    /// A request times out after the time Control.InvTimeOut programs (1 ms to 100 s; 0: never), as the guest set it when
    /// the request went out, not after <see cref="DeviceTlbSinkOptions.Timeout"/>; a time-out (the sink's answer or the
    /// timer) logs IOTLB_INV_TIMEOUT and counts as the command's completion. Null (the default): the fault plan answers
    /// at once, inside the batch.</summary>
    public DeviceTlbSinkOptions? DeviceTlbSink { get; init; }
}
