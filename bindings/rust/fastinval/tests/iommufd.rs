// The iommufd context through the safe wrapper: ioctls with real pointers, device binding, EFAULT for a bad pointer.
use fastinval::*;

const IOMMU_IOAS_ALLOC: u32 = 0x3B81;
const IOMMU_DESTROY: u32 = 0x3B80;

#[repr(C)]
#[derive(Default)]
struct IoasAlloc {
    size: u32,
    flags: u32,
    out_ioas_id: u32,
}

#[test]
fn ioas_alloc_destroy_and_devices() {
    let fd = Iommufd::new(iommufd_flags::SELFTEST).unwrap();
    let mut a = IoasAlloc { size: 12, ..Default::default() };
    unsafe { fd.ioctl_struct(IOMMU_IOAS_ALLOC, &mut a) }.unwrap();
    assert_eq!(a.out_ioas_id, 1);
    let dev = fd.add_device(IommuKind::IntelVtd, 0x10, true).unwrap();
    assert_eq!(fd.add_device(IommuKind::IntelVtd, 0x10, true), Err(Error(errno::EEXIST)));
    fd.attach_device(dev, a.out_ioas_id).unwrap();
    assert_eq!(fd.attach_device(dev, 999), Err(Error(errno::ENOENT)));
    fd.detach_device(dev).unwrap();
    fd.remove_device(dev).unwrap();
    let mut d = [8u32, a.out_ioas_id];
    unsafe { fd.ioctl(IOMMU_DESTROY, d.as_mut_ptr().cast()) }.unwrap();
    assert_eq!(unsafe { fd.ioctl(IOMMU_DESTROY, d.as_mut_ptr().cast()) }, Err(Error(errno::ENOENT)));
}

#[test]
fn bad_pointers_are_efault_not_a_signal() {
    let fd = Iommufd::new(iommufd_flags::SELFTEST).unwrap();
    assert_eq!(unsafe { fd.ioctl(IOMMU_IOAS_ALLOC, std::ptr::null_mut()) }, Err(Error(errno::EFAULT)));
    let kernel = 0xffff_8880_0000_0000u64 as *mut std::os::raw::c_void;
    assert_eq!(unsafe { fd.ioctl(IOMMU_IOAS_ALLOC, kernel) }, Err(Error(errno::EFAULT)));
    let mut a = IoasAlloc { size: 12, ..Default::default() };
    assert_eq!(unsafe { fd.ioctl_struct(0x1234, &mut a) }, Err(Error(errno::ENOTTY)));
}
