using FastInval.Reference.Uapi;
using FastInval.Uapi;

namespace FastInval.Tests.Uapi;

/// <summary>
/// TEST_F(iommufd_ioas, alloc_hwpt_nested) of tools/testing/selftests/iommu/iommufd.c, step by step through
/// <see cref="Iommufd.Ioctl"/> with the selftest's inputs and expectations (notes §7.2; the HWPT_INVALIDATE steps are
/// spec/iommufd-uapi.md §5.3 H1–H14). The fault-queue steps (IOMMU_FAULT_QUEUE_ALLOC, the iopf HWPT, TRIGGER_IOPF) are
/// not modelled and left out; the ids that follow shift down accordingly.
/// </summary>
public class SelftestHwptNestedTests
{
    private const uint D = MockSelftest.IotlbDefault;
    private const uint Ioas = 1;

    public enum Variant
    {
        MockDomain,
        TwoMockDomain,
        MockDomainLimit,
    }

    /// <summary>FIXTURE_SETUP(iommufd_ioas): IOAS 1, the variant's mock devices (each checked to have 4 cache slots of
    /// 0x00baddad), returning the ids the test body uses.</summary>
    private static (uint Stdev, uint Device, uint Hwpt) Setup(Ufd u, Variant variant)
    {
        Assert.Equal(0, u.IoasAlloc(out uint ioas));
        Assert.Equal(Ioas, ioas);
        Assert.Equal(0, u.MockDomain(Ioas, out uint stdev, out uint hwpt, out uint idev));
        Assert.Equal((2u, 4u, 3u), (stdev, hwpt, idev));
        u.AssertDevCache(idev, MockSelftest.DevCacheDefault, MockSelftest.DevCacheDefault, MockSelftest.DevCacheDefault,
            MockSelftest.DevCacheDefault);
        switch (variant)
        {
            case Variant.MockDomain:
                Assert.Equal(0, u.MockDomain(Ioas, out uint s2, out uint h2, out uint d2, MockSelftest.DevicePasid));
                Assert.Equal((5u, 4u, 6u), (s2, h2, d2)); // the PASID-capable device reuses the automatic domain
                return (stdev, idev, hwpt);
            case Variant.TwoMockDomain:
                Assert.Equal(0, u.MockDomain(Ioas, out stdev, out hwpt, out idev));
                Assert.Equal((5u, 4u, 6u), (stdev, hwpt, idev));
                u.AssertDevCache(idev, MockSelftest.DevCacheDefault, MockSelftest.DevCacheDefault, MockSelftest.DevCacheDefault,
                    MockSelftest.DevCacheDefault);
                return (stdev, idev, hwpt);
            default:
                return (stdev, idev, hwpt);
        }
    }

    [Theory]
    [InlineData(Variant.MockDomain, 7u)]
    [InlineData(Variant.TwoMockDomain, 7u)]
    [InlineData(Variant.MockDomainLimit, 5u)]
    public void AllocHwptNested_KernelSelftestSteps_SameErrnoEntryNumAndMockIotlb(Variant variant, uint firstNewId)
    {
        using var u = new Ufd();
        (uint stdev, uint dev, _) = Setup(u, variant);

        // Negative allocations.
        Assert.Equal(-Errno.ENOENT, u.HwptAlloc(Ioas, dev, 0, out _));                               // dev_id is an IOAS
        Assert.Equal(-Errno.EINVAL, u.HwptAlloc(dev, dev, 0, out _));                                // pt_id is a device
        Assert.Equal(-Errno.EOPNOTSUPP, u.HwptAlloc(dev, Ioas, (uint)(HwptAllocFlags.NestParent | HwptAllocFlags.FaultIdValid), out _));
        Assert.Equal(0, u.HwptAlloc(dev, Ioas, (uint)HwptAllocFlags.NestParent, out uint parent));
        Assert.Equal(0, u.HwptAlloc(dev, Ioas, 0, out uint parentNotWork));
        Assert.Equal((firstNewId, firstNewId + 1), (parent, parentNotWork));
        Assert.Equal(-Errno.EINVAL, u.HwptAllocSelftest(dev, parent, 0, out _, dataType: HwptDataType.None, dataLen: 8));
        Assert.Equal(-Errno.EOPNOTSUPP, u.HwptAllocSelftest(dev, parent, 0, out _, dataType: HwptDataType.Selftest + 1, dataLen: 8));
        Assert.Equal(-Errno.EINVAL, u.HwptAllocSelftest(dev, parent, 0, out _, dataLen: 3));
        Assert.Equal(-Errno.EFAULT, u.HwptAllocSelftest(dev, parent, 0, out _, dataLen: 8, nullData: true));
        Assert.Equal(-Errno.EOPNOTSUPP, u.HwptAllocSelftest(dev, parent, (uint)HwptAllocFlags.NestParent, out _, dataLen: 8));
        Assert.Equal(-Errno.EINVAL, u.HwptAllocSelftest(dev, parentNotWork, 0, out _, dataLen: 8));

        // Two nested HWPTs, each with every IOTLB slot at IOMMU_TEST_IOTLB_DEFAULT.
        Assert.Equal(0, u.HwptAllocSelftest(dev, parent, 0, out uint nested0, dataLen: 8));
        Assert.Equal(0, u.HwptAllocSelftest(dev, parent, 0, out uint nested1, dataLen: 8));
        Assert.Equal((firstNewId + 2, firstNewId + 3), (nested0, nested1));
        u.AssertIotlb(nested0, D, D, D, D);
        u.AssertIotlb(nested1, D, D, D, D);

        Assert.Equal(-Errno.EINVAL, u.HwptAllocSelftest(dev, nested0, 0, out _, dataLen: 8));     // nested on nested
        Assert.Equal(-Errno.EBUSY, u.Destroy(parent));                                            // the nested HWPTs hold it

        InvalidateSteps(u, parent, nested0, nested1);

        // Attach to a nested HWPT makes it busy; replacing away frees it.
        Assert.Equal(0, u.MockDomainReplace(stdev, nested0));
        Assert.Equal(-Errno.EBUSY, u.Destroy(nested0));
        Assert.Equal(0, u.MockDomainReplace(stdev, nested1));
        Assert.Equal(-Errno.EBUSY, u.Destroy(nested1));
        Assert.Equal(0, u.Destroy(nested0));
        Assert.Equal(0, u.MockDomainReplace(stdev, parent));
        Assert.Equal(0, u.Destroy(nested1));
        Assert.Equal(0, u.MockDomainReplace(stdev, Ioas));
        Assert.Equal(0, u.Destroy(parent));
        Assert.Equal(0, u.Destroy(parentNotWork));
    }

    /// <summary>spec §5.3 H1–H14: inv_reqs[2] starts zeroed and keeps its field values between steps.</summary>
    private static void InvalidateSteps(Ufd u, uint parent, uint nested0, uint nested1)
    {
        var reqs = new MockHwptEntries(u, 2);
        uint n;

        n = 1; // H1: hwpt_invalidate only supports a user-managed HWPT (v6.13+: EINVAL for the paging parent)
        Assert.Equal(-Errno.EINVAL, u.Invalidate(parent, reqs.Address, InvalidateDataType.Selftest, 8, ref n));
        Assert.Equal(0u, n);

        n = 0; // H2: a zero-length array checks data_type
        Assert.Equal(0, u.Invalidate(nested0, reqs.Address, InvalidateDataType.Selftest, 8, ref n));
        Assert.Equal(0u, n);
        u.AssertIotlb(nested0, D, D, D, D);

        n = 1; // H3: invalid data_type
        Assert.Equal(-Errno.EINVAL, u.Invalidate(nested0, reqs.Address, InvalidateDataType.SelftestInvalid, 8, ref n));
        Assert.Equal(0u, n);
        u.AssertIotlb(nested0, D, D, D, D);

        n = 1; // H4, H5: structure size sanity
        Assert.Equal(-Errno.EINVAL, u.Invalidate(nested0, reqs.Address, InvalidateDataType.Selftest, 9, ref n));
        Assert.Equal(0u, n);
        n = 1;
        Assert.Equal(-Errno.EINVAL, u.Invalidate(nested0, reqs.Address, InvalidateDataType.Selftest, 1, ref n));
        Assert.Equal(0u, n);
        u.AssertIotlb(nested0, D, D, D, D);

        n = 1; // H6: invalid flag
        reqs.Set(0, flags: 0xffffffff);
        Assert.Equal(-Errno.EOPNOTSUPP, u.Invalidate(nested0, reqs.Address, InvalidateDataType.Selftest, 8, ref n));
        Assert.Equal(0u, n);
        u.AssertIotlb(nested0, D, D, D, D);

        n = 1; // H7: NULL data_uptr with a non-empty array
        reqs.Set(0, flags: 0);
        Assert.Equal(-Errno.EINVAL, u.Invalidate(nested0, 0, InvalidateDataType.Selftest, 8, ref n));
        Assert.Equal(0u, n);

        n = 1; // H8: entry_len 0 with a non-empty array
        Assert.Equal(-Errno.EINVAL, u.Invalidate(nested0, reqs.Address, InvalidateDataType.Selftest, 0, ref n));
        Assert.Equal(0u, n);
        u.AssertIotlb(nested0, D, D, D, D);

        n = 1; // H9: iotlb_id above MOCK_NESTED_DOMAIN_IOTLB_ID_MAX
        reqs.Set(0, flags: 0, iotlbId: 4);
        Assert.Equal(-Errno.EINVAL, u.Invalidate(nested0, reqs.Address, InvalidateDataType.Selftest, 8, ref n));
        Assert.Equal(0u, n);
        u.AssertIotlb(nested0, D, D, D, D);

        n = 2; // H10: the first entry is handled, the second has a bad flag
        reqs.Set(0, flags: 0, iotlbId: 0);
        reqs.Set(1, flags: 0xffffffff, iotlbId: 1);
        Assert.Equal(-Errno.EOPNOTSUPP, u.Invalidate(nested0, reqs.Address, InvalidateDataType.Selftest, 8, ref n));
        Assert.Equal(1u, n);
        u.AssertIotlb(nested0, 0, D, D, D);

        n = 2; // H11: the first entry is handled, the second has a bad iotlb_id
        reqs.Set(0, flags: 0, iotlbId: 0);
        reqs.Set(1, flags: 0, iotlbId: 4);
        Assert.Equal(-Errno.EINVAL, u.Invalidate(nested0, reqs.Address, InvalidateDataType.Selftest, 8, ref n));
        Assert.Equal(1u, n);
        u.AssertIotlb(nested0, 0, D, D, D);

        n = 1; // H12: the second IOTLB slot
        reqs.Set(0, flags: 0, iotlbId: 1);
        Assert.Equal(0, u.Invalidate(nested0, reqs.Address, InvalidateDataType.Selftest, 8, ref n));
        Assert.Equal(1u, n);
        u.AssertIotlb(nested0, 0, 0, D, D);

        n = 2; // H13: the third and fourth
        reqs.Set(0, flags: 0, iotlbId: 2);
        reqs.Set(1, flags: 0, iotlbId: 3);
        Assert.Equal(0, u.Invalidate(nested0, reqs.Address, InvalidateDataType.Selftest, 8, ref n));
        Assert.Equal(2u, n);
        u.AssertIotlb(nested0, 0, 0, 0, 0);

        n = 1; // H14: FLAG_ALL on nested[1] (iotlb_id 2 is ignored)
        reqs.Set(0, flags: MockSelftest.FlagAll, iotlbId: 2);
        Assert.Equal(0, u.Invalidate(nested1, reqs.Address, InvalidateDataType.Selftest, 8, ref n));
        Assert.Equal(1u, n);
        u.AssertIotlb(nested1, 0, 0, 0, 0);
    }

    [Fact]
    public void AllocHwptNested_NoDomainVariant_EveryCallIsEnoent()
    {
        using var u = new Ufd();
        Assert.Equal(0, u.IoasAlloc(out _));
        Assert.Equal(-Errno.ENOENT, u.HwptAlloc(0, Ioas, 0, out _));
        Assert.Equal(-Errno.ENOENT, u.HwptAllocSelftest(0, 0, 0, out _, dataLen: 8));
        Assert.Equal(-Errno.ENOENT, u.HwptAllocSelftest(0, 0, 0, out _, dataLen: 8));
        Assert.Equal(-Errno.ENOENT, u.MockDomainReplace(0, 0));
        Assert.Equal(-Errno.ENOENT, u.MockDomainReplace(0, 0));
    }

    [Fact]
    public void AllocHwptNested_SelftestDataOfFourToEightBytes_Accepted_NineRejected()
    {
        using var u = new Ufd();
        Assert.Equal(0, u.IoasAlloc(out _));
        Assert.Equal(0, u.MockDomain(Ioas, out _, out _, out uint dev));
        Assert.Equal(0, u.HwptAlloc(dev, Ioas, (uint)HwptAllocFlags.NestParent, out uint parent));
        Assert.Equal(0, u.HwptAllocSelftest(dev, parent, 0, out uint four, iotlb: 7, dataLen: 4));
        Assert.Equal(0, u.HwptAllocSelftest(dev, parent, 0, out uint eight, iotlb: 9, dataLen: 8));
        Assert.Equal(-Errno.EINVAL, u.HwptAllocSelftest(dev, parent, 0, out _, dataLen: 9));
        u.AssertIotlb(four, 7, 7, 7, 7);
        u.AssertIotlb(eight, 9, 9, 9, 9);
    }

    /// <summary>TEST_F(iommufd_ioas, ioas_destroy) and (iommufd_mock_domain, alloc_hwpt): busy objects and automatic domains.</summary>
    [Fact]
    public void MockDomainAllocHwpt_ReplaceAndDestroy_BusyWhileAttachedFreedAfter()
    {
        using var u = new Ufd();
        Assert.Equal(0, u.IoasAlloc(out _));
        Assert.Equal(0, u.MockDomain(Ioas, out uint stdev, out uint auto, out uint dev));
        Assert.Equal(-Errno.EBUSY, u.Destroy(Ioas));                       // the automatic domain uses the IOAS
        Assert.Equal(-Errno.EBUSY, u.Destroy(dev));                        // the selftest object binds the device
        Assert.Equal(-Errno.EOPNOTSUPP, u.HwptAlloc(dev, Ioas, ~(uint)HwptAllocFlags.NestParent, out _));
        Assert.Equal(0, u.HwptAlloc(dev, Ioas, 0, out uint h0));
        Assert.Equal(0, u.HwptAlloc(dev, Ioas, (uint)HwptAllocFlags.NestParent, out uint h1));
        Assert.Equal(0, u.MockDomainReplace(stdev, h0));
        Assert.False(u.Fd.TryGetObjectType(auto, out _));                    // the only device left: the automatic domain is gone
        Assert.Equal(-Errno.EBUSY, u.Destroy(h0));
        Assert.Equal(0, u.MockDomainReplace(stdev, h1));
        Assert.Equal(-Errno.EBUSY, u.Destroy(h1));
        Assert.Equal(0, u.MockDomainReplace(stdev, Ioas, out uint newAuto));
        Assert.Equal(auto, newAuto);                                        // lowest free id again
        Assert.Equal(0, u.Destroy(h1));
        Assert.Equal(0, u.MockDomain(h0, out uint stdev2, out uint attached, out _));
        Assert.Equal(h0, attached);
        Assert.Equal(0, u.Destroy(stdev2));
        Assert.Equal(0, u.Destroy(h0));
        Assert.Equal(0, u.Destroy(stdev));
        Assert.Equal(0, u.Destroy(Ioas));                                  // nothing uses it any more
        Assert.Equal(-Errno.ENOENT, u.Destroy(Ioas));
    }

    [Fact]
    public void EnforceDirty_NoDirtyDevice_AllocAndAttachRejected()
    {
        using var u = new Ufd();
        Assert.Equal(0, u.IoasAlloc(out _));
        Assert.Equal(0, u.MockDomain(Ioas, out _, out _, out uint dev));
        Assert.Equal(0, u.HwptAlloc(dev, Ioas, (uint)HwptAllocFlags.DirtyTracking, out uint dirty));
        Assert.Equal(0, u.MockDomain(dirty, out _, out _, out _));
        Assert.Equal(-Errno.EINVAL, u.MockDomain(dirty, out _, out _, out _, MockSelftest.DeviceNoDirty));
        Assert.Equal(0, u.IoasAlloc(out uint ioas2));
        Assert.Equal(0, u.MockDomain(ioas2, out _, out _, out uint noDirty, MockSelftest.DeviceNoDirty));
        Assert.Equal(-Errno.EOPNOTSUPP, u.HwptAlloc(noDirty, ioas2, (uint)HwptAllocFlags.DirtyTracking, out _));
        Assert.Equal(-Errno.EINVAL, u.MockDomain(Ioas, out _, out _, out _, 0x2)); // HUGE_IOVA is gone in the newest kernels
    }
}

/// <summary>The selftest's <c>inv_reqs[]</c> array of struct iommu_hwpt_invalidate_selftest (8 bytes) or its v8 form
/// (16 bytes: flags, iotlb_id, hw_error, __reserved), mapped in user memory; fields keep their values between calls.</summary>
internal sealed class MockHwptEntries
{
    private readonly byte[] _bytes;
    private readonly int _size;

    public MockHwptEntries(Ufd u, int count, bool v8 = false)
    {
        _size = v8 ? 16 : 8;
        _bytes = new byte[count * _size];
        Address = u.Map(_bytes);
    }

    public ulong Address { get; }

    public void Set(int index, uint? flags = null, uint? iotlbId = null, uint? hwError = null, uint? reserved = null)
    {
        if (flags is uint f)
        {
            Ufd.Put32(_bytes, index * _size, f);
        }

        if (iotlbId is uint id)
        {
            Ufd.Put32(_bytes, (index * _size) + 4, id);
        }

        if (hwError is uint e)
        {
            Ufd.Put32(_bytes, (index * _size) + 8, e);
        }

        if (reserved is uint r)
        {
            Ufd.Put32(_bytes, (index * _size) + 12, r);
        }
    }

    public uint HwError(int index) => Ufd.U32(_bytes, (index * _size) + 8);
}
