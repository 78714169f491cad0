using FastInval.Reference.Uapi;
using FastInval.Uapi;

namespace FastInval.Tests.Uapi;

/// <summary>
/// The v9 selftest steps of the per-entry hw_error series (spec/iommufd-uapi.md §6.6; "iommufd/selftest: Add coverage
/// for IOMMU_HWPT_INVALIDATE ioctl", Dec 2023) in <see cref="VtdErrorReporting.PerEntryHwError"/> mode: the selftest
/// HWPT entry is the 16-byte v8 layout {flags, iotlb_id, hw_error, __reserved}. The core is the merged one, so the
/// first step (a paging parent) is EINVAL where v9 said ENOENT.
/// </summary>
public class SelftestHwErrorTests
{
    private const uint D = MockSelftest.IotlbDefault;
    private const uint Trigger = MockSelftest.FlagTriggerError;
    private const uint All = MockSelftest.FlagAll;

    private static (Ufd U, uint Parent, uint Nested0, uint Nested1) Setup()
    {
        var u = new Ufd(new IommufdOptions { Selftest = true, VtdErrorReporting = VtdErrorReporting.PerEntryHwError });
        Assert.Equal(0, u.IoasAlloc(out uint ioas));
        Assert.Equal(0, u.MockDomain(ioas, out _, out _, out uint dev));
        Assert.Equal(0, u.HwptAlloc(dev, ioas, (uint)HwptAllocFlags.NestParent, out uint parent));
        Assert.Equal(0, u.HwptAllocSelftest(dev, parent, 0, out uint nested0));
        Assert.Equal(0, u.HwptAllocSelftest(dev, parent, 0, out uint nested1));
        return (u, parent, nested0, nested1);
    }

    [Fact]
    public void HwptInvalidateV9_KernelSelftestSteps_SameErrnoEntryNumHwErrorAndIotlb()
    {
        (Ufd u, uint parent, uint nested0, uint nested1) = Setup();
        using Ufd owner = u;
        var reqs = new MockHwptEntries(u, 2, v8: true);
        const uint Selftest = InvalidateDataType.Selftest;
        uint n;

        n = 1;
        Assert.Equal(-Errno.EINVAL, u.Invalidate(parent, reqs.Address, Selftest, 16, ref n));
        Assert.Equal(0u, n);
        n = 0;
        Assert.Equal(0, u.Invalidate(nested0, reqs.Address, Selftest, 16, ref n));
        Assert.Equal(0u, n);
        n = 1;
        Assert.Equal(-Errno.EINVAL, u.Invalidate(nested0, reqs.Address, InvalidateDataType.SelftestInvalid, 16, ref n));
        Assert.Equal(0u, n);
        n = 1;
        Assert.Equal(-Errno.EINVAL, u.Invalidate(nested0, reqs.Address, Selftest, 17, ref n));
        Assert.Equal(0u, n);
        n = 1;
        Assert.Equal(-Errno.EINVAL, u.Invalidate(nested0, reqs.Address, Selftest, 1, ref n));
        Assert.Equal(0u, n);
        n = 1;
        reqs.Set(0, flags: 0xffffffff);
        Assert.Equal(-Errno.EOPNOTSUPP, u.Invalidate(nested0, reqs.Address, Selftest, 16, ref n));
        Assert.Equal(0u, n);
        n = 1;
        reqs.Set(0, flags: 0, reserved: 0x1234);
        Assert.Equal(-Errno.EOPNOTSUPP, u.Invalidate(nested0, reqs.Address, Selftest, 16, ref n));
        Assert.Equal(0u, n);
        n = 1;
        reqs.Set(0, flags: 0);
        Assert.Equal(-Errno.EINVAL, u.Invalidate(nested0, 0, Selftest, 16, ref n));
        Assert.Equal(0u, n);
        n = 1;
        Assert.Equal(-Errno.EINVAL, u.Invalidate(nested0, reqs.Address, Selftest, 0, ref n));
        Assert.Equal(0u, n);
        n = 1;
        reqs.Set(0, flags: 0, reserved: 0, iotlbId: 4);
        Assert.Equal(-Errno.EINVAL, u.Invalidate(nested0, reqs.Address, Selftest, 16, ref n));
        Assert.Equal(0u, n);
        u.AssertIotlb(nested0, D, D, D, D);

        n = 1; // trigger error: handled, hw_error reported, the IOTLB untouched
        reqs.Set(0, flags: Trigger, iotlbId: 0);
        Assert.Equal(0, u.Invalidate(nested0, reqs.Address, Selftest, 16, ref n));
        Assert.Equal(1u, n);
        Assert.Equal(MockSelftest.FakeError, reqs.HwError(0));
        u.AssertIotlb(nested0, D, D, D, D);

        n = 1; // trigger error with ALL
        reqs.Set(0, flags: Trigger | All, iotlbId: 0);
        Assert.Equal(0, u.Invalidate(nested0, reqs.Address, Selftest, 16, ref n));
        Assert.Equal(1u, n);
        Assert.Equal(MockSelftest.FakeError, reqs.HwError(0));
        u.AssertIotlb(nested0, D, D, D, D);

        n = 2; // the first invalidates, the second reports a hardware error: the ioctl succeeds
        reqs.Set(0, flags: 0, iotlbId: 0);
        reqs.Set(1, flags: Trigger, iotlbId: 1);
        Assert.Equal(0, u.Invalidate(nested0, reqs.Address, Selftest, 16, ref n));
        Assert.Equal(2u, n);
        Assert.Equal(0u, reqs.HwError(0));
        Assert.Equal(MockSelftest.FakeError, reqs.HwError(1));
        u.AssertIotlb(nested0, 0, D, D, D);

        n = 2; // the first invalidates, the second is an ioctl error
        reqs.Set(0, flags: 0, iotlbId: 0);
        reqs.Set(1, flags: 0, iotlbId: 4);
        Assert.Equal(-Errno.EINVAL, u.Invalidate(nested0, reqs.Address, Selftest, 16, ref n));
        Assert.Equal(1u, n);
        Assert.Equal(0u, reqs.HwError(0));
        u.AssertIotlb(nested0, 0, D, D, D);

        n = 1;
        reqs.Set(0, flags: 0, iotlbId: 1);
        Assert.Equal(0, u.Invalidate(nested0, reqs.Address, Selftest, 16, ref n));
        Assert.Equal(0u, reqs.HwError(0));
        u.AssertIotlb(nested0, 0, 0, D, D);

        n = 2;
        reqs.Set(0, flags: 0, iotlbId: 2);
        reqs.Set(1, flags: 0, iotlbId: 3);
        Assert.Equal(0, u.Invalidate(nested0, reqs.Address, Selftest, 16, ref n));
        Assert.Equal(2u, n);
        Assert.Equal((0u, 0u), (reqs.HwError(0), reqs.HwError(1)));
        u.AssertIotlb(nested0, 0, 0, 0, 0);

        n = 1;
        reqs.Set(0, flags: All);
        Assert.Equal(0, u.Invalidate(nested1, reqs.Address, Selftest, 16, ref n));
        Assert.Equal(1u, n);
        Assert.Equal(0u, reqs.HwError(0));
        u.AssertIotlb(nested1, 0, 0, 0, 0);
    }

    [Fact]
    public void TriggerError_FollowedByPlainEntry_OnlyTheTriggeredEntryReportsIt()
    {
        (Ufd u, _, uint nested0, _) = Setup();
        using Ufd owner = u;
        var reqs = new MockHwptEntries(u, 2, v8: true);
        reqs.Set(0, flags: Trigger, iotlbId: 0);
        reqs.Set(1, flags: 0, iotlbId: 1, hwError: 0xAAAA);
        uint n = 2;
        Assert.Equal(0, u.Invalidate(nested0, reqs.Address, InvalidateDataType.Selftest, 16, ref n));
        Assert.Equal(2u, n);
        Assert.Equal(MockSelftest.FakeError, reqs.HwError(0));
        Assert.Equal(0u, reqs.HwError(1)); // the v9 mock kept its local error and reported 1 here too
        u.AssertIotlb(nested0, D, 0, D, D);
    }

    [Fact]
    public void MainlineMode_TriggerErrorFlagAndSixteenByteEntries_Rejected()
    {
        using var u = new Ufd();
        Assert.Equal(0, u.IoasAlloc(out uint ioas));
        Assert.Equal(0, u.MockDomain(ioas, out _, out _, out uint dev));
        Assert.Equal(0, u.HwptAlloc(dev, ioas, (uint)HwptAllocFlags.NestParent, out uint parent));
        Assert.Equal(0, u.HwptAllocSelftest(dev, parent, 0, out uint nested));
        var reqs = new MockHwptEntries(u, 1);
        reqs.Set(0, flags: Trigger);
        uint n = 1;
        Assert.Equal(-Errno.EOPNOTSUPP, u.Invalidate(nested, reqs.Address, InvalidateDataType.Selftest, 8, ref n));
        Assert.Equal(0u, n);
        n = 1;
        Assert.Equal(-Errno.EINVAL, u.Invalidate(nested, reqs.Address, InvalidateDataType.Selftest, 16, ref n));
        Assert.Equal(0u, n);
    }
}
