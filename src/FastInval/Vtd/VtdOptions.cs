namespace FastInval.Vtd;

/// <summary>
/// Capabilities, fault plan, interrupt sink and cache capacities of a <see cref="VtdIommu"/>. The defaults model a
/// current server part with everything on (DESIGN §2.4): scalable mode with 256-bit descriptors, PASID, device TLBs
/// with PASID and throttling (DIT), page-request drain (PDS), interrupt remapping, read/write draining, MAMV 18.
/// Each capability can be turned off; the unit then gives the architected answer of a part that lacks it
/// (see <see cref="VtdIommu"/> for the rules). Immutable once built; may be shared between units.
/// </summary>
public sealed class VtdOptions
{
    /// <summary>ECAP.SMTS: scalable-mode translation. Allows IQA.DW = 1 (256-bit descriptors), RTADDR.TTM = 01b and the
    /// PASID-based descriptors (types 6, 7, 8). Without it a 256-bit queue is an IQE with IQEI 5.</summary>
    public bool ScalableMode { get; init; } = true;

    /// <summary>ECAP.PASID (PSS = 19: 20-bit PASIDs). Without it the PASID-based device-TLB descriptor (type 8) is an
    /// invalid type; PASID-based IOTLB and PASID-cache descriptors stay legal (first-stage translation still uses
    /// RID_PASID).</summary>
    public bool Pasid { get; init; } = true;

    /// <summary>ECAP.DT: device TLBs (ATS). Without it the device-TLB descriptors (types 3 and 8) are invalid types.</summary>
    public bool DeviceTlb { get; init; } = true;

    /// <summary>ECAP.DIT: device-TLB invalidation throttling. With it the PFSID fields of types 3 and 8 are fields;
    /// without it they are reserved.</summary>
    public bool DeviceTlbThrottling { get; init; } = true;

    /// <summary>ECAP.PDS: page-request drain. With it the wait descriptor's PD bit is a field (a no-op here: the unit has
    /// no page requests outstanding); without it PD is reserved.</summary>
    public bool PageRequestDrain { get; init; } = true;

    /// <summary>ECAP.IR (and EIM): interrupt remapping. Without it the interrupt-entry-cache descriptor (type 4) is an
    /// invalid type.</summary>
    public bool InterruptRemapping { get; init; } = true;

    /// <summary>CAP.DRD: read draining (the IOTLB descriptor's DR bit). Reported only: DR is never reserved, and there
    /// are no DMA reads in flight to drain.</summary>
    public bool DrainReads { get; init; } = true;

    /// <summary>CAP.DWD: write draining (the IOTLB descriptor's DW bit). Reported only, as <see cref="DrainReads"/>.</summary>
    public bool DrainWrites { get; init; } = true;

    /// <summary>CAP.CM: caching mode (not-present entries may be cached, so the guest invalidates on map too). Reported
    /// only: it changes what a guest sends, not how a descriptor is executed.</summary>
    public bool CachingMode { get; init; }

    /// <summary>CAP.MAMV: the largest AM an IOTLB (type 2) page-selective descriptor may carry, 0–63 (default 18, QEMU's).
    /// A larger AM is a reserved-field IQE (IQEI 4).</summary>
    public int MaxAddressMask { get; init; } = 18;

    /// <summary>ECAP.MHMV: the largest IM an index-selective interrupt-entry-cache descriptor may carry, 0–15 (default 15).
    /// A larger IM is a reserved-field IQE (IQEI 4).</summary>
    public int MaxHandleMask { get; init; } = 15;

    /// <summary>The host address width (HAW, from the ACPI DMAR table), 32–64 (default 48). Queue base and wait-status
    /// addresses are taken modulo 2^HAW: bits at and above HAW are ignored.</summary>
    public int HostAddressWidth { get; init; } = 48;

    /// <summary>Every MSI the unit sends, as (address, data): fault events (FEUADDR:FEADDR, FEDATA) and
    /// invalidation-completion events (IEUADDR:IEADDR, IEDATA). Called synchronously from the register write that
    /// caused it; it must not write the unit's registers (such writes are applied, but start no processing).</summary>
    public Action<ulong, uint>? Msi { get; init; }

    /// <summary>Injected failures: descriptor-fetch errors (IQE, IQEI 2), device-TLB time-outs (ITE) and completion errors
    /// (ICE). Null (the default) uses <see cref="EngineOptions.FaultPlan"/> of <see cref="Engine"/>.</summary>
    public FaultPlan? FaultPlan { get; init; }

    /// <summary>Capacities and scan kernel of the unit's caches (default <see cref="EngineOptions"/>'s defaults).</summary>
    public EngineOptions? Engine { get; init; }

    /// <summary>Where device-TLB invalidations (types 3 and 8) go: each becomes a request to the sink, answered later by
    /// the device, and a wait after it is held (IQH on it, no status write) until every earlier request is answered. A
    /// time-out (the sink's answer or <see cref="DeviceTlbSinkOptions.Timeout"/>) is an ITE, a completion error an ICE,
    /// and the fault plan no longer decides them. Null (the default): the fault plan answers at once, inside the batch.</summary>
    public DeviceTlbSinkOptions? DeviceTlbSink { get; init; }
}
