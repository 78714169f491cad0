using FastInval.Reference.Uapi;
using FastInval.Uapi;

namespace FastInval.Tests.Uapi;

/// <summary>
/// FIXTURE(iommufd_viommu) tests of tools/testing/selftests/iommu/iommufd.c through <see cref="Iommufd.Ioctl"/>:
/// viommu_negative_tests, vdevice_alloc (without the vEVENTQ steps), vdevice_cache (spec/iommufd-uapi.md §5.5 V1–V14)
/// and vdevice_tombstone, with the ids the newest kernel hands out (notes §7.4).
/// </summary>
public class SelftestViommuTests
{
    private const uint C = MockSelftest.DevCacheDefault;

    /// <summary>The mock_viommu variant: IOAS 1, mock device (stdev 2, idev 3, automatic HWPT 4), nest parent 5, vIOMMU 6,
    /// nested HWPT 7 allocated from the vIOMMU.</summary>
    private static (uint Stdev, uint Device, uint Parent, uint Viommu, uint Nested) Setup(Ufd u)
    {
        Assert.Equal(0, u.IoasAlloc(out uint ioas));
        Assert.Equal(0, u.MockDomain(ioas, out uint stdev, out _, out uint dev));
        Assert.Equal(0, u.HwptAlloc(dev, ioas, (uint)HwptAllocFlags.NestParent, out uint parent));
        Assert.Equal(0, u.ViommuAlloc(dev, parent, ViommuType.Selftest, out uint viommu));
        Assert.Equal(0, u.HwptAllocSelftest(dev, viommu, 0, out uint nested, dataLen: 8));
        Assert.Equal((2u, 3u, 5u, 6u, 7u), (stdev, dev, parent, viommu, nested));
        return (stdev, dev, parent, viommu, nested);
    }

    [Fact]
    public void ViommuNegativeTests_KernelSelftestSteps_SameErrno()
    {
        using var u = new Ufd();
        (_, uint dev, uint parent, uint viommu, _) = Setup(u);
        Assert.Equal(-Errno.ENOENT, u.ViommuAlloc(dev, 0, ViommuType.Selftest, out _));
        Assert.Equal(0, u.HwptAlloc(dev, 1, 0, out uint notParent));
        Assert.Equal(8u, notParent);
        Assert.Equal(-Errno.EINVAL, u.ViommuAlloc(dev, notParent, ViommuType.Selftest, out _));
        Assert.Equal(0, u.Destroy(notParent));
        Assert.Equal(-Errno.EOPNOTSUPP, u.ViommuAlloc(dev, parent, 0xdead, out _));
        Assert.Equal(-Errno.EBUSY, u.Destroy(parent));   // the vIOMMU holds its parent
        Assert.Equal(-Errno.EBUSY, u.Destroy(viommu));   // the nested HWPT holds the vIOMMU
    }

    [Fact]
    public void ViommuNegativeTests_NoViommuVariant_DeviceLookupFirst()
    {
        using var u = new Ufd();
        Assert.Equal(0, u.IoasAlloc(out _));
        Assert.Equal(-Errno.ENOENT, u.ViommuAlloc(0, 0, ViommuType.Selftest, out _));
        Assert.Equal(-Errno.ENOENT, u.VdeviceAlloc(0, 0, 0x99, out _));
    }

    [Fact]
    public void ViommuAlloc_TypeCheckedBeforeHwpt_NewestOrder()
    {
        using var u = new Ufd();
        (_, uint dev, _, _, _) = Setup(u);
        Assert.Equal(-Errno.EOPNOTSUPP, u.ViommuAlloc(dev, 0, 0xdead, out _));          // v6.13–6.16 gave ENOENT here
        Assert.Equal(-Errno.EOPNOTSUPP, u.ViommuAlloc(dev, 5, ViommuType.Default, out _));
        Assert.Equal(-Errno.EOPNOTSUPP, u.ViommuAlloc(dev, 5, ViommuType.Selftest, out _, flags: 1));
        Assert.Equal(-Errno.EOPNOTSUPP, u.ViommuAlloc(dev, 5, ViommuType.ArmSmmuV3, out _));
        Assert.Equal(-Errno.ENOENT, u.ViommuAlloc(dev, 7, ViommuType.Selftest, out _));    // a nested HWPT is no paging HWPT
    }

    [Fact]
    public void ViommuAllocWithData_OutDataEchoesInData_BadLengthsRejected()
    {
        using var u = new Ufd();
        (_, uint dev, uint parent, _, _) = Setup(u);
        byte[] data = new byte[24];
        Ufd.Put32(data, 0, 0xbeef);
        ulong uptr = u.Map(data);
        Assert.Equal(0, u.ViommuAlloc(dev, parent, ViommuType.Selftest, out _, dataUptr: uptr, dataLen: 24));
        Assert.Equal(0xbeefu, Ufd.U32(data, 4));
        Assert.Equal(-Errno.EINVAL, u.ViommuAlloc(dev, parent, ViommuType.Selftest, out _, dataUptr: uptr, dataLen: 7));
        Assert.Equal(-Errno.EINVAL, u.ViommuAlloc(dev, parent, ViommuType.Selftest, out _, dataUptr: uptr, dataLen: 25));
        Assert.Equal(-Errno.EFAULT, u.ViommuAlloc(dev, parent, ViommuType.Selftest, out _, dataUptr: 0, dataLen: 8));
    }

    [Fact]
    public void VdeviceAlloc_KernelSelftestStepsWithoutVeventq_SameErrnoAndIds()
    {
        using var u = new Ufd();
        (uint stdev, uint dev, _, uint viommu, uint nested) = Setup(u);
        Assert.Equal(-Errno.ENOENT, u.MockDomainReplace(stdev, nested));    // must allocate a vDEVICE before attaching
        Assert.Equal(0, u.VdeviceAlloc(viommu, dev, 0x99, out uint vdev));
        Assert.Equal(8u, vdev);
        Assert.Equal(0, u.MockDomainReplace(stdev, nested));
        Assert.Equal(-Errno.EEXIST, u.VdeviceAlloc(viommu, dev, 0x99, out _)); // the device already has a vDEVICE
        Assert.Equal(-Errno.EEXIST, u.VdeviceAlloc(viommu, dev, 0x88, out _));
        Assert.Equal(0, u.MockDomainReplace(stdev, 1));
        Assert.Equal(-Errno.EBUSY, u.Destroy(viommu));                      // the vDEVICE and the nested HWPT hold it
        Assert.Equal(0, u.Destroy(vdev));
        Assert.Equal(0, u.VdeviceAlloc(viommu, dev, 0x88, out uint again));
        Assert.Equal(8u, again);                                          // ids are reused
        Assert.Equal(0, u.MockDomainReplace(stdev, nested));
        Assert.Equal(0, u.MockDomainReplace(stdev, 1));
        Assert.Equal(0, u.Destroy(again));
    }

    [Fact]
    public void VdeviceAlloc_DuplicateVirtualIdInOneViommu_Eexist()
    {
        using var u = new Ufd();
        (_, _, uint parent, uint viommu, _) = Setup(u);
        Assert.Equal(0, u.MockDomain(1, out _, out _, out uint dev2));
        Assert.Equal(0, u.VdeviceAlloc(viommu, 3, 0x99, out _));
        Assert.Equal(-Errno.EEXIST, u.VdeviceAlloc(viommu, dev2, 0x99, out _));
        Assert.Equal(-Errno.ENOENT, u.VdeviceAlloc(parent, dev2, 0x98, out _)); // not a vIOMMU
        Assert.Equal(-Errno.ENOENT, u.VdeviceAlloc(viommu, parent, 0x98, out _)); // not a device
        Assert.Equal(0, u.VdeviceAlloc(viommu, dev2, ulong.MaxValue, out _)); // virt_id is not range-checked
    }

    [Fact]
    public void VdeviceTombstone_StdevDestroyed_VdeviceIdStaysEnoentAndUnused()
    {
        using var u = new Ufd();
        (uint stdev, uint dev, _, uint viommu, _) = Setup(u);
        Assert.Equal(0, u.VdeviceAlloc(viommu, dev, 0x99, out uint vdev));
        Assert.Equal(0, u.Destroy(stdev));
        Assert.Equal(-Errno.ENOENT, u.Destroy(vdev));
        Assert.Equal(0, u.IoasAlloc(out uint next));
        Assert.NotEqual(vdev, next);
        Assert.Equal(stdev, next); // the lowest free id, the tombstone skipped
    }

    /// <summary>TEST_F(iommufd_viommu, vdevice_cache): spec §5.5 V1–V14. inv_reqs[2] of 12-byte entries starts zeroed and
    /// keeps its field values between steps.</summary>
    [Fact]
    public void VdeviceCache_KernelSelftestSteps_SameErrnoEntryNumAndDeviceCache()
    {
        using var u = new Ufd();
        (_, uint dev, _, uint viommu, _) = Setup(u);
        Assert.Equal(0, u.VdeviceAlloc(viommu, dev, 0x99, out uint vdev));
        u.AssertDevCache(dev, C, C, C, C);
        byte[] reqs = new byte[2 * 12];
        ulong uptr = u.Map(reqs);
        void Set(int i, uint flags, uint vdevId, uint cacheId)
        {
            Ufd.Put32(reqs, i * 12, flags);
            Ufd.Put32(reqs, (i * 12) + 4, vdevId);
            Ufd.Put32(reqs, (i * 12) + 8, cacheId);
        }

        uint n = 0; // V1: zero-length probe
        Assert.Equal(0, u.Invalidate(viommu, uptr, InvalidateDataType.Selftest, 12, ref n));
        Assert.Equal(0u, n);

        n = 1; // V2: invalid data_type
        Assert.Equal(-Errno.EINVAL, u.Invalidate(viommu, uptr, InvalidateDataType.SelftestInvalid, 12, ref n));
        Assert.Equal(0u, n);
        u.AssertDevCache(dev, C, C, C, C);

        n = 1; // V3: entry_len 13 (the trailing byte is zero, so the copy succeeds; vdev_id 0 has no vDEVICE)
        Assert.Equal(-Errno.EINVAL, u.Invalidate(viommu, uptr, InvalidateDataType.Selftest, 13, ref n));
        Assert.Equal(0u, n);
        n = 1; // V4: entry_len 1 (zero-extended)
        Assert.Equal(-Errno.EINVAL, u.Invalidate(viommu, uptr, InvalidateDataType.Selftest, 1, ref n));
        Assert.Equal(0u, n);
        u.AssertDevCache(dev, C, C, C, C);

        n = 1; // V5: invalid flag
        Set(0, 0xffffffff, 0x99, 0);
        Assert.Equal(-Errno.EOPNOTSUPP, u.Invalidate(viommu, uptr, InvalidateDataType.Selftest, 12, ref n));
        Assert.Equal(0u, n);
        u.AssertDevCache(dev, C, C, C, C);

        n = 1; // V6: NULL data_uptr
        Set(0, 0, 0x99, 0);
        Assert.Equal(-Errno.EINVAL, u.Invalidate(viommu, 0, InvalidateDataType.Selftest, 12, ref n));
        Assert.Equal(0u, n);
        n = 1; // V7: entry_len 0
        Assert.Equal(-Errno.EINVAL, u.Invalidate(viommu, uptr, InvalidateDataType.Selftest, 0, ref n));
        Assert.Equal(0u, n);
        u.AssertDevCache(dev, C, C, C, C);

        n = 1; // V8: cache_id above MOCK_DEV_CACHE_ID_MAX
        Set(0, 0, 0x99, 4);
        Assert.Equal(-Errno.EINVAL, u.Invalidate(viommu, uptr, InvalidateDataType.Selftest, 12, ref n));
        Assert.Equal(0u, n);
        u.AssertDevCache(dev, C, C, C, C);

        n = 1; // V9: unknown vdev_id
        Set(0, 0, 0x9, 0);
        Assert.Equal(-Errno.EINVAL, u.Invalidate(viommu, uptr, InvalidateDataType.Selftest, 12, ref n));
        Assert.Equal(0u, n);
        u.AssertDevCache(dev, C, C, C, C);

        n = 2; // V10: the first entry is handled, the second has a bad flag
        Set(0, 0, 0x99, 0);
        Set(1, 0xffffffff, 0x99, 1);
        Assert.Equal(-Errno.EOPNOTSUPP, u.Invalidate(viommu, uptr, InvalidateDataType.Selftest, 12, ref n));
        Assert.Equal(1u, n);
        u.AssertDevCache(dev, 0, C, C, C);

        n = 2; // V11: the first entry is handled, the second has a bad cache_id
        Set(0, 0, 0x99, 0);
        Set(1, 0, 0x99, 4);
        Assert.Equal(-Errno.EINVAL, u.Invalidate(viommu, uptr, InvalidateDataType.Selftest, 12, ref n));
        Assert.Equal(1u, n);
        u.AssertDevCache(dev, 0, C, C, C);

        n = 1; // V12
        Set(0, 0, 0x99, 1);
        Assert.Equal(0, u.Invalidate(viommu, uptr, InvalidateDataType.Selftest, 12, ref n));
        Assert.Equal(1u, n);
        u.AssertDevCache(dev, 0, 0, C, C);

        n = 2; // V13
        Set(0, 0, 0x99, 2);
        Set(1, 0, 0x99, 3);
        Assert.Equal(0, u.Invalidate(viommu, uptr, InvalidateDataType.Selftest, 12, ref n));
        Assert.Equal(2u, n);
        u.AssertDevCache(dev, 0, 0, 0, 0);

        n = 1; // V14: FLAG_ALL (cache_id ignored)
        Set(0, MockSelftest.FlagAll, 0x99, 2);
        Assert.Equal(0, u.Invalidate(viommu, uptr, InvalidateDataType.Selftest, 12, ref n));
        Assert.Equal(1u, n);
        u.AssertDevCache(dev, 0, 0, 0, 0);

        Assert.Equal(0, u.Destroy(vdev));
    }
}
