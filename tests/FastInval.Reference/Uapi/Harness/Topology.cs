using FastInval.Reference;
using FastInval.Reference.Uapi;
using FastInval.Uapi;

namespace FastInval.Reference.Uapi;

/// <summary>
/// A fixed object topology built through the ioctls, and its twin description for <see cref="ReferenceIommufd"/>:
/// VT-d nested HWPTs A (ATS 0x10 and plain 0x20 attached), B (ATS 0x18), C (nothing attached); an SMMUv3 vIOMMU with
/// vSIDs 1 → 0x100, 2 → 0x101 and a nested vSTE HWPT; a mock nested HWPT, a mock vIOMMU with vDEVICE 0x99 and its
/// nested HWPT. The ids come out the same every time (lowest free id).
/// </summary>
public sealed class Topology : IDisposable
{
    public const uint MockVirtualId = 0x99;

    public Topology(VtdErrorReporting reporting, FaultPlan plan, int capacity = 128)
    {
        Memory = new UserMemory();
        Fd = new Iommufd(Memory, new IommufdOptions
        {
            Selftest = true,
            VtdErrorReporting = reporting,
            EngineOptions = new EngineOptions { IotlbCapacity = capacity, DeviceTlbCapacity = capacity, ConfigCacheCapacity = capacity, FaultPlan = plan },
        });
        var u = new Ufd(Fd, Memory);
        Ioas = Must(u.IoasAlloc(out uint ioas), ioas);
        uint i1 = Fd.AddDevice(IommuKind.IntelVtd, 0x10, ats: true);
        uint i2 = Fd.AddDevice(IommuKind.IntelVtd, 0x18, ats: true);
        uint i3 = Fd.AddDevice(IommuKind.IntelVtd, 0x20, ats: false);
        IntelParent = Must(u.HwptAlloc(i1, ioas, (uint)HwptAllocFlags.NestParent, out uint intelParent), intelParent);
        VtdA = Must(u.HwptAllocVtd(i1, intelParent, out uint a), a);
        VtdB = Must(u.HwptAllocVtd(i1, intelParent, out uint b), b);
        VtdC = Must(u.HwptAllocVtd(i1, intelParent, out uint c), c);
        Must(Fd.AttachDevice(i1, a), 0u);
        Must(Fd.AttachDevice(i3, a), 0u);
        Must(Fd.AttachDevice(i2, b), 0u);
        uint a1 = Fd.AddDevice(IommuKind.ArmSmmuV3, 0x100, ats: true);
        uint a2 = Fd.AddDevice(IommuKind.ArmSmmuV3, 0x101, ats: true);
        uint armParent = Must(u.HwptAlloc(a1, ioas, (uint)HwptAllocFlags.NestParent, out uint ap), ap);
        SmmuViommu = Must(u.ViommuAlloc(a1, armParent, ViommuType.ArmSmmuV3, out uint v), v);
        Vdevice = Must(u.VdeviceAlloc(v, a1, 1, out uint vd1), vd1);
        Must(u.VdeviceAlloc(v, a2, 2, out uint vd2), vd2);
        byte[] ste = new byte[16];
        ste[0] = 1 | (4 << 1); // V, bypass
        SmmuNested = Must(u.HwptAlloc(a1, v, 0, out uint sn, HwptDataType.ArmSmmuV3, Memory.Map(ste), 16), sn);
        Must(u.MockDomain(ioas, out uint stdev, out _, out uint mockDev), stdev);
        MockDevice = mockDev;
        uint mockParent = Must(u.HwptAlloc(mockDev, ioas, (uint)HwptAllocFlags.NestParent, out uint mp), mp);
        MockNested = Must(u.HwptAllocSelftest(mockDev, mockParent, 0, out uint mn), mn);
        MockViommu = Must(u.ViommuAlloc(mockDev, mockParent, ViommuType.Selftest, out uint mv), mv);
        MockNested2 = Must(u.HwptAllocSelftest(mockDev, mv, 0, out uint mn2), mn2);
        Must(u.VdeviceAlloc(mv, mockDev, MockVirtualId, out uint mvd), mvd);
        Fd.TryGetDomainId(a, out DidA);
        Fd.TryGetDomainId(b, out DidB);
        Fd.TryGetDomainId(c, out DidC);
        Fd.TryGetDomainId(v, out Vmid);
        Others = [ioas, intelParent, i1, i3, armParent, vd1, stdev, mockDev, mockParent];
    }

    public readonly UserMemory Memory;
    public readonly Iommufd Fd;
    public readonly uint Ioas;
    public readonly uint IntelParent;
    public readonly uint VtdA;
    public readonly uint VtdB;
    public readonly uint VtdC;
    public readonly uint SmmuViommu;
    public readonly uint SmmuNested;
    public readonly uint Vdevice;
    public readonly uint MockDevice;
    public readonly uint MockNested;
    public readonly uint MockViommu;
    public readonly uint MockNested2;
    public readonly ushort DidA;
    public readonly ushort DidB;
    public readonly ushort DidC;
    public readonly ushort Vmid;
    public readonly uint[] Others;

    public InvalidationEngine VtdEngine => Fd.Engine(IommuKind.IntelVtd);

    public InvalidationEngine SmmuEngine => Fd.Engine(IommuKind.ArmSmmuV3);

    /// <summary>Every invalidation target of the topology, then objects of other types, then free ids.</summary>
    public uint[] Targets => [VtdA, VtdB, VtdC, MockNested, MockNested2, SmmuNested, SmmuViommu, MockViommu, .. Others, 0, 500];

    /// <summary>The reference's view of the same topology, with its own copies of the mock slots.</summary>
    public ReferenceIommufd Reference(ReferenceUserMemory memory, FaultPlan plan, bool hwError)
    {
        var r = new ReferenceIommufd(memory, new ReferenceEngine(plan), new ReferenceEngine(plan), hwError);
        r.Objects[VtdA] = new VtdNestedTarget(DidA, [0x10]);
        r.Objects[VtdB] = new VtdNestedTarget(DidB, [0x18]);
        r.Objects[VtdC] = new VtdNestedTarget(DidC, []);
        var mockCache = new uint[] { MockSelftest.DevCacheDefault, MockSelftest.DevCacheDefault, MockSelftest.DevCacheDefault, MockSelftest.DevCacheDefault };
        r.Objects[MockNested] = new MockNestedTarget([MockSelftest.IotlbDefault, MockSelftest.IotlbDefault, MockSelftest.IotlbDefault, MockSelftest.IotlbDefault]);
        r.Objects[MockNested2] = new MockNestedTarget([MockSelftest.IotlbDefault, MockSelftest.IotlbDefault, MockSelftest.IotlbDefault, MockSelftest.IotlbDefault]);
        r.Objects[SmmuNested] = new SmmuNestedTarget();
        r.Objects[SmmuViommu] = new SmmuViommuTarget(Vmid, new Dictionary<ulong, uint> { [1] = 0x100, [2] = 0x101 });
        r.Objects[MockViommu] = new MockViommuTarget(new Dictionary<ulong, uint[]> { [MockVirtualId] = mockCache });
        foreach (uint id in Others)
        {
            r.Objects[id] = new OtherTarget();
        }

        return r;
    }

    public void Dispose() => Fd.Dispose();

    private static uint Must(int rc, uint value) => rc == 0 ? value : throw new InvalidOperationException($"topology setup failed: {Errno.Name(rc)}");
}
