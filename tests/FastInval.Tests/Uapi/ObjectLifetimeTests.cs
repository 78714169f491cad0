using FastInval.Reference.Uapi;
using FastInval.Uapi;

namespace FastInval.Tests.Uapi;

/// <summary>The object table (lowest free id from 1, reuse, EBUSY while held, ENOENT once gone) and the host-side device
/// API (<see cref="Iommufd.AddDevice"/>, AttachDevice, DetachDevice, RemoveDevice).</summary>
public class ObjectLifetimeTests
{
    [Fact]
    public void Ids_LowestFreeFromOne_ReusedAfterDestroy()
    {
        using var u = new Ufd();
        Assert.Equal(0, u.IoasAlloc(out uint a));
        Assert.Equal(0, u.IoasAlloc(out uint b));
        Assert.Equal(0, u.IoasAlloc(out uint c));
        Assert.Equal((1u, 2u, 3u), (a, b, c));
        Assert.Equal(0, u.Destroy(b));
        Assert.Equal(-Errno.ENOENT, u.Destroy(b));
        Assert.Equal(0, u.IoasAlloc(out uint again));
        Assert.Equal(2u, again);
        Assert.Equal(4u, u.Fd.AddDevice(IommuKind.IntelVtd, 1, ats: false));
    }

    [Fact]
    public void IoasAlloc_NonZeroFlags_Eopnotsupp()
    {
        using var u = new Ufd();
        Assert.Equal(-Errno.EOPNOTSUPP, u.IoasAlloc(out _, flags: 1));
        Assert.False(u.Fd.TryGetObjectType(1, out _));
    }

    [Fact]
    public void FailedAllocation_IdFreedAgain()
    {
        using var u = new Ufd();
        Assert.Equal(0, u.IoasAlloc(out uint ioas));
        uint dev = u.Fd.AddDevice(IommuKind.IntelVtd, 1, ats: false);
        Assert.Equal(0, u.HwptAlloc(dev, ioas, (uint)HwptAllocFlags.NestParent, out uint parent));
        Assert.Equal(-Errno.ENOENT, u.HwptAllocVtd(dev, parent, out _, flags: (uint)HwptAllocFlags.FaultIdValid)); // no fault objects
        Assert.Equal(-Errno.EINVAL, u.HwptAllocVtd(dev, parent, out _, dataLen: 16));
        Assert.Equal(0, u.IoasAlloc(out uint next));
        Assert.Equal(parent + 1, next);
    }

    [Fact]
    public void DeviceObject_NeverDestroyable_RemoveDeviceUnbindsIt()
    {
        using var u = new Ufd();
        Assert.Equal(0, u.IoasAlloc(out uint ioas));
        uint dev = u.Fd.AddDevice(IommuKind.ArmSmmuV3, 0x100, ats: true);
        Assert.Equal(-Errno.EBUSY, u.Destroy(dev));
        Assert.Equal(0, u.Fd.AttachDevice(dev, ioas));
        Assert.True(u.Fd.TryGetObjectType(dev + 1, out IommufdObjectType auto));
        Assert.Equal(IommufdObjectType.HwptPaging, auto);
        Assert.Equal(0, u.Fd.RemoveDevice(dev));
        Assert.False(u.Fd.TryGetObjectType(dev, out _));
        Assert.False(u.Fd.TryGetObjectType(dev + 1, out _)); // its automatic domain went with it
        Assert.Equal(-Errno.ENOENT, u.Fd.RemoveDevice(dev));
        Assert.Equal(0, u.Destroy(ioas));
    }

    [Fact]
    public void RemoveDevice_WithVdevice_VdeviceTombstonedViommuFreed()
    {
        using var s = new SmmuSetup();
        Assert.Equal(-Errno.EBUSY, s.U.Destroy(s.Viommu));
        Assert.Equal(0, s.U.Fd.RemoveDevice(s.Device1));
        Assert.Equal(0, s.U.Fd.RemoveDevice(s.Device2));
        Assert.Equal(0, s.U.Destroy(s.Viommu));          // its vDEVICEs are gone
        Assert.Equal(0, s.U.Destroy(s.Parent));
    }

    [Fact]
    public void AttachDevice_Errors_EnoentEinval()
    {
        using var u = new Ufd();
        Assert.Equal(0, u.IoasAlloc(out uint ioas));
        uint intel = u.Fd.AddDevice(IommuKind.IntelVtd, 0x10, ats: true);
        uint arm = u.Fd.AddDevice(IommuKind.ArmSmmuV3, 0x10, ats: true); // another IOMMU: the same stream id is another device
        Assert.Equal(-Errno.ENOENT, u.Fd.AttachDevice(99, ioas));
        Assert.Equal(-Errno.ENOENT, u.Fd.AttachDevice(intel, 99));
        Assert.Equal(-Errno.EINVAL, u.Fd.AttachDevice(intel, arm));            // not an IOAS or HWPT
        Assert.Equal(0, u.HwptAlloc(arm, ioas, (uint)HwptAllocFlags.NestParent, out uint armParent));
        Assert.Equal(-Errno.EINVAL, u.Fd.AttachDevice(intel, armParent));      // another IOMMU's domain
        Assert.Equal(0, u.HwptAlloc(intel, ioas, (uint)HwptAllocFlags.NestParent, out uint parent));
        Assert.Equal(0, u.HwptAllocVtd(intel, parent, out uint wide, addressWidth: 57));
        Assert.Equal(0, u.HwptAllocVtd(intel, parent, out uint odd, addressWidth: 39));  // not checked until attach
        Assert.Equal(0, u.Fd.AttachDevice(intel, wide));
        Assert.Equal(-Errno.EINVAL, u.Fd.AttachDevice(intel, odd));
        Assert.Equal(-Errno.EBUSY, u.Destroy(wide));
        Assert.Equal(0, u.Fd.DetachDevice(intel));
        Assert.Equal(0, u.Destroy(wide));
        Assert.Equal(-Errno.ENOENT, u.Fd.DetachDevice(99));
    }

    [Fact]
    public void AttachDevice_ToIoasTwice_SameAutomaticDomainPerIommu()
    {
        using var u = new Ufd();
        Assert.Equal(0, u.IoasAlloc(out uint ioas));
        uint i1 = u.Fd.AddDevice(IommuKind.IntelVtd, 1, ats: false);
        uint i2 = u.Fd.AddDevice(IommuKind.IntelVtd, 2, ats: false);
        uint a1 = u.Fd.AddDevice(IommuKind.ArmSmmuV3, 1, ats: false);
        Assert.Equal(0, u.Fd.AttachDevice(i1, ioas));
        Assert.Equal(0, u.Fd.AttachDevice(i2, ioas));
        Assert.Equal(0, u.Fd.AttachDevice(a1, ioas));
        Assert.Equal(0, u.Fd.AttachDevice(i1, ioas));   // already there
        Assert.True(u.Fd.TryGetObjectType(5, out IommufdObjectType t5));
        Assert.True(u.Fd.TryGetObjectType(6, out IommufdObjectType t6));
        Assert.Equal((IommufdObjectType.HwptPaging, IommufdObjectType.HwptPaging), (t5, t6)); // one per IOMMU
        Assert.False(u.Fd.TryGetObjectType(7, out _));
        Assert.Equal(-Errno.EBUSY, u.Destroy(ioas));
        Assert.Null(u.Fd.CheckReferenceCounts());
    }

    [Fact]
    public void AddDevice_HostErrors_Throw()
    {
        using var u = new Ufd();
        u.Fd.AddDevice(IommuKind.IntelVtd, 0x10, ats: true);
        Assert.Throws<ArgumentException>(() => u.Fd.AddDevice(IommuKind.IntelVtd, 0x10, ats: false));
        Assert.Throws<ArgumentOutOfRangeException>(() => u.Fd.AddDevice(IommuKind.IntelVtd, 0x1_0000, ats: false));
        Assert.Throws<ArgumentOutOfRangeException>(() => u.Fd.AddDevice((IommuKind)7, 1, ats: false));
        u.Fd.Dispose();
        Assert.Throws<ObjectDisposedException>(() => u.Fd.Ioctl(IommufdRequest.Destroy, new byte[8]));
    }

    [Fact]
    public void TryGetDomainId_OnlyVtdNestedAndSmmuStage2Objects()
    {
        using var s = new VtdSetup();
        Assert.True(s.U.Fd.TryGetDomainId(s.Nested, out _));
        Assert.False(s.U.Fd.TryGetDomainId(s.Parent, out _));
        Assert.False(s.U.Fd.TryGetDomainId(s.Ioas, out _));
        Assert.False(s.U.Fd.TryGetDomainId(999, out _));
    }
}
