namespace FastInval.Uapi;

/// <summary>Which IOMMU driver owns a device or a domain. Domains of one driver only attach to that driver's devices.</summary>
internal enum Driver : byte
{
    IntelVtd = IommuKind.IntelVtd,
    ArmSmmuV3 = IommuKind.ArmSmmuV3,
    Mock = 2,
}

/// <summary>
/// An object of the table. <see cref="Users"/> counts the table's own reference (1) plus one per holder, as iommufd's
/// <c>users</c> refcount does: DESTROY succeeds only at exactly 1.
/// </summary>
internal abstract class IommufdObject
{
    public uint Id;
    public int Users = 1;

    public abstract IommufdObjectType Type { get; }
}

internal sealed class IoasObject : IommufdObject
{
    /// <summary>Paging HWPTs on this IOAS, in creation order (auto-domains are searched in this order).</summary>
    public readonly List<HwptPagingObject> Hwpts = [];

    public override IommufdObjectType Type => IommufdObjectType.Ioas;
}

internal abstract class HwptObject : IommufdObject
{
    public Driver Driver;

    /// <summary>Devices attached (RID) to this HWPT, in attach order.</summary>
    public readonly List<DeviceObject> Devices = [];

    /// <summary>The fault object of IOMMU_HWPT_FAULT_ID_VALID (held), or null.</summary>
    public FaultObject? Fault;
}

internal sealed class HwptPagingObject : HwptObject
{
    public IoasObject Ioas = null!;
    public bool NestParent;
    public bool AutoDomain;
    public bool DirtyTracking;

    /// <summary>ARM SMMUv3 stage-2 VMID of a nest parent (allocated at creation, lowest free from 1).</summary>
    public ushort Vmid;

    public override IommufdObjectType Type => IommufdObjectType.HwptPaging;
}

internal sealed class HwptNestedObject : HwptObject
{
    /// <summary>The stage-2 parent (directly, or the vIOMMU's).</summary>
    public HwptPagingObject Parent = null!;

    /// <summary>The vIOMMU the HWPT was allocated from, or null for a parent-path allocation.</summary>
    public ViommuObject? Viommu;

    // VT-d stage 1 (Driver == IntelVtd).
    public ushort DomainId;
    public ulong VtdFlags;
    public ulong VtdPageTable;
    public uint VtdAddressWidth;

    /// <summary>ATS-enabled devices attached, in attach order: the device TLBs an invalidation reaches.</summary>
    public uint[] AtsSourceIds = [];
    public int AtsCount;

    // Mock (Driver == Mock).
    public readonly uint[] MockIotlb = new uint[MockSelftest.Slots];

    // ARM vSTE (Driver == ArmSmmuV3).
    public ulong Ste0;
    public ulong Ste1;
    public uint SteConfig;

    public override IommufdObjectType Type => IommufdObjectType.HwptNested;

    public void RebuildAtsList()
    {
        int n = 0;
        foreach (DeviceObject d in Devices)
        {
            n += d.Ats ? 1 : 0;
        }

        if (AtsSourceIds.Length < n)
        {
            AtsSourceIds = new uint[n];
        }

        AtsCount = 0;
        foreach (DeviceObject d in Devices)
        {
            if (d.Ats)
            {
                AtsSourceIds[AtsCount++] = d.StreamId;
            }
        }
    }
}

internal sealed class DeviceObject : IommufdObject
{
    public Driver Driver;
    public uint StreamId;
    public bool Ats;

    /// <summary>The HWPT the device is attached to (RID), or null.</summary>
    public HwptObject? Attached;

    /// <summary>The device's vDEVICE, or null (newest kernels: at most one).</summary>
    public VdeviceObject? Vdevice;

    /// <summary>The selftest object that owns a mock device (null for host-bound devices).</summary>
    public SelftestObject? Owner;

    // Mock device.
    public uint MockFlags;
    public readonly uint[] MockCache = new uint[MockSelftest.Slots];

    public override IommufdObjectType Type => IommufdObjectType.Device;
}

internal sealed class ViommuObject : IommufdObject
{
    public Driver Driver;
    public HwptPagingObject Parent = null!;
    public ushort Vmid;

    /// <summary>vDEVICEs by virtual id (vSID for SMMUv3).</summary>
    public readonly Dictionary<ulong, VdeviceObject> Vdevices = [];

    public override IommufdObjectType Type => IommufdObjectType.Viommu;
}

internal sealed class VdeviceObject : IommufdObject
{
    public ViommuObject Viommu = null!;
    public DeviceObject Device = null!;
    public ulong VirtualId;

    public override IommufdObjectType Type => IommufdObjectType.Vdevice;
}

internal sealed class SelftestObject : IommufdObject
{
    public DeviceObject Device = null!;

    public override IommufdObjectType Type => IommufdObjectType.Selftest;
}

/// <summary>A slot that holds no object but is not free: an id reserved while an ioctl builds its object, or the tombstone of a
/// vDEVICE whose device went away (newest kernels: never reused until the fd closes).</summary>
internal sealed class PlaceholderObject : IommufdObject
{
    public static readonly PlaceholderObject Reserved = new();
    public static readonly PlaceholderObject Tombstone = new();

    public override IommufdObjectType Type => 0;
}
