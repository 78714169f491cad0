namespace FastInval.Uapi;

/// <summary>The physical IOMMU a device added with <see cref="Iommufd.AddDevice"/> sits behind.</summary>
public enum IommuKind
{
    /// <summary>An Intel VT-d remapping unit (scalable mode, nesting, ATS): nested HWPTs of type VTD_S1.</summary>
    IntelVtd = 0,

    /// <summary>An ARM SMMUv3 (both stages, nesting, ATS): vIOMMUs of type ARM_SMMUV3, vDEVICEs, nested vSTEs.</summary>
    ArmSmmuV3 = 1,
}

/// <summary>How hardware failures of a handled VT-d invalidation entry are reported.</summary>
public enum VtdErrorReporting
{
    /// <summary>Merged Linux (v6.8+): the entry's last u32 is <c>__reserved</c> and must be 0 (else EOPNOTSUPP); device-TLB
    /// failures are not reported to user space.</summary>
    Mainline = 0,

    /// <summary>The v8–v10 review series: the entry's last u32 is <c>hw_error</c> (ICE = 1&lt;&lt;0, ITE = 1&lt;&lt;1), written back
    /// into every handled entry; a hardware failure does not stop the batch. The selftest HWPT entry becomes the 16-byte
    /// v8 layout with TRIGGER_ERROR.</summary>
    PerEntryHwError = 1,
}

/// <summary>Options of an <see cref="Iommufd"/>.</summary>
public sealed class IommufdOptions
{
    /// <summary>Enables IOMMU_TEST_CMD and the selftest data types (the mock IOMMU driver), as CONFIG_IOMMUFD_TEST does.</summary>
    public bool Selftest { get; init; }

    /// <summary>Mainline (default) or PerEntryHwError.</summary>
    public VtdErrorReporting VtdErrorReporting { get; init; }

    /// <summary>Capacities, kernel and fault plan of the engines that model the physical IOMMUs' caches (one engine per
    /// IOMMU kind, created on first use). Default: <see cref="FastInval.EngineOptions"/>'s defaults.</summary>
    public EngineOptions? EngineOptions { get; init; }
}

/// <summary>The type of an object in an <see cref="Iommufd"/>'s object table.</summary>
public enum IommufdObjectType
{
    /// <summary>An I/O address space (IOMMU_IOAS_ALLOC).</summary>
    Ioas = 1,

    /// <summary>A paging HWPT (IOMMU_HWPT_ALLOC on an IOAS, or an automatic domain).</summary>
    HwptPaging = 2,

    /// <summary>A nested HWPT (IOMMU_HWPT_ALLOC on a nest-parent HWPT or a vIOMMU).</summary>
    HwptNested = 3,

    /// <summary>A bound device (<see cref="Iommufd.AddDevice"/> or a selftest mock device).</summary>
    Device = 4,

    /// <summary>A vIOMMU (IOMMU_VIOMMU_ALLOC).</summary>
    Viommu = 5,

    /// <summary>A vDEVICE (IOMMU_VDEVICE_ALLOC).</summary>
    Vdevice = 6,

    /// <summary>A selftest object owning a mock device (IOMMU_TEST_OP_MOCK_DOMAIN's out_stdev_id).</summary>
    Selftest = 7,

    /// <summary>A fault queue (IOMMU_FAULT_QUEUE_ALLOC).</summary>
    Fault = 8,
}
