//! Safe bindings to `libfastinval.so`, the C ABI of the FastInval IOMMU cache-invalidation engine.
//!
//! * [`Engine`]: an IOTLB, device TLBs and configuration caches; fill them as the hardware would cache, execute
//!   invalidation [`Descriptor`] batches against them, look up what is left. Dropping it destroys it.
//! * [`Iommufd`]: an emulated open `/dev/iommu` whose [`Iommufd::ioctl`] answers the kernel's iommufd requests with
//!   this process's own pointers (a bad pointer is `EFAULT`, never a signal).
//!
//! * [`Unit`]: a VT-d, SMMUv3 or AMD-Vi unit over [`GuestMemory`] (the VMM's RAM slices or its own accessor), driven by
//!   MMIO, with interrupt and invalidation-notifier closures and migration state (see [`units`]).
//! * [`DeviceTlbSink`]: the VMM's receiver of a unit's device-TLB invalidations ([`DeviceTlbOptions`] in the unit options);
//!   each [`DeviceTlbRequest`] is answered later, from any thread, through its [`DeviceTlbCompletion`] while the unit
//!   holds the guest's next wait (see [`device_tlb`]).
//!
//! Every failure is an [`Error`] carrying the library's errno. Threading follows the C ABI: lookups take `&self` and may
//! run on several threads; fills, execute and the fault plan take `&mut self` (the C ABI requires them serialized).
//! No dependencies; link with `native/build.sh`'s `artifacts/native` (or set `FASTINVAL_LIB_DIR`).

pub mod device_tlb;
pub mod sys;
pub mod units;

pub use device_tlb::{DeviceTlbCompletion, DeviceTlbOptions, DeviceTlbOutcome, DeviceTlbRequest, DeviceTlbSink};

pub use units::{AmdViOptions, GuestAccess, GuestMemory, Interrupt, InvalidationRecord, NotifierFilter, SmmuOptions, Subscription, Unit, VtdOptions};

use std::ffi::CStr;
use std::fmt;
use std::os::raw::c_void;

pub use sys::fastinval_descriptor as Descriptor;
pub use sys::fastinval_iotlb_entry as IotlbEntry;
pub use sys::fastinval_devtlb_entry as DeviceTlbEntry;
pub use sys::fastinval_config_entry as ConfigEntry;
pub use sys::fastinval_translation as Translation;
pub use sys::fastinval_batch_result as BatchResult;
pub use sys::fastinval_engine_counts as EngineCounts;

/// A negative errno returned by the library, stored positive (`Error(libc::EBADF)` style).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error(pub i32);

/// errno values the library returns (Linux numbers).
pub mod errno {
    pub const EIO: i32 = 5;
    pub const EBADF: i32 = 9;
    pub const ENOMEM: i32 = 12;
    pub const EFAULT: i32 = 14;
    pub const EBUSY: i32 = 16;
    pub const EEXIST: i32 = 17;
    pub const EINVAL: i32 = 22;
    pub const ENOTTY: i32 = 25;
    pub const ENOENT: i32 = 2;
    pub const ERANGE: i32 = 34;
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "libfastinval error: errno {}", self.0)
    }
}

impl std::error::Error for Error {}

/// Result of the crate's calls.
pub type Result<T> = std::result::Result<T, Error>;

fn check(rc: i32) -> Result<i32> {
    if rc < 0 {
        Err(Error(-rc))
    } else {
        Ok(rc)
    }
}

/// Stage values (enum fastinval_stage).
pub mod stage {
    pub const STAGE1: u8 = 1;
    pub const STAGE2: u8 = 2;
    pub const NESTED: u8 = 4;
    pub const FIRST: u8 = STAGE1 | NESTED;
    pub const ALL: u8 = STAGE1 | STAGE2 | NESTED;
}

/// Descriptor scopes and flags (enum fastinval_scope, FASTINVAL_MATCH_*).
pub mod scope {
    pub const IOTLB: u8 = 1;
    pub const IOTLB_RANGE: u8 = 2;
    pub const DEVICE_TLB: u8 = 3;
    pub const CONFIG: u8 = 4;
    pub const MATCH_DOMAIN: u8 = 0x01;
    pub const MATCH_ADDRESS_SPACE: u8 = 0x02;
    pub const INCLUDE_GLOBAL: u8 = 0x04;
    pub const LEAF_ONLY: u8 = 0x08;
    pub const MATCH_SOURCE: u8 = 0x10;
}

/// Descriptor outcomes (enum fastinval_status).
pub mod status {
    pub const OK: u8 = 0;
    pub const TIMED_OUT: u8 = 1;
    pub const COMPLETION_ERROR: u8 = 2;
    pub const INVALID: u8 = 3;
}

/// "No address space" (requests without PASID, stage-2 entries).
pub const ADDRESS_SPACE_NONE: u32 = 0xFFFF_FFFF;

/// What a fill did (enum fastinval_fill_result).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FillResult {
    Inserted,
    Replaced,
    InsertedAfterEviction,
    Rejected,
}

impl FillResult {
    fn from(rc: i32) -> Result<FillResult> {
        match rc {
            0 => Ok(FillResult::Inserted),
            1 => Ok(FillResult::Replaced),
            2 => Ok(FillResult::InsertedAfterEviction),
            3 => Ok(FillResult::Rejected),
            _ => Err(Error(errno::EIO)),
        }
    }
}

/// The ABI version of the loaded library: (major << 16) | (minor << 8) | patch.
pub fn abi_version() -> u32 {
    unsafe { sys::fastinval_abi_version() }
}

/// The library's version string.
pub fn version_string() -> String {
    unsafe { CStr::from_ptr(sys::fastinval_version_string()) }.to_string_lossy().into_owned()
}

/// Live handles in the library (a leak check).
pub fn handle_count() -> Result<i32> {
    check(unsafe { sys::fastinval_handle_count() })
}

/// Capacities and scan kernel of an [`Engine`]; 0 capacities take the library's defaults, `kernel` -1 the best one.
#[derive(Clone, Copy, Debug)]
pub struct EngineOptions {
    pub iotlb_capacity: u32,
    pub device_tlb_capacity: u32,
    pub config_cache_capacity: u32,
    pub kernel: i32,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions { iotlb_capacity: 0, device_tlb_capacity: 0, config_cache_capacity: 0, kernel: -1 }
    }
}

/// Injected device-TLB failures (deterministic).
#[derive(Clone, Debug, Default)]
pub struct FaultPlan {
    pub seed: u64,
    pub timeout_per_million: u32,
    pub completion_error_per_million: u32,
    pub timeout_source_ids: Vec<u32>,
    pub timeout_ordinals: Vec<u64>,
    pub completion_error_ordinals: Vec<u64>,
}

/// An engine: the caches of one IOMMU. Destroyed on drop.
#[derive(Debug)]
pub struct Engine {
    handle: u64,
}

// Lookups are safe from any thread (&self); writers need &mut self, which Rust serializes.
unsafe impl Send for Engine {}
unsafe impl Sync for Engine {}

impl Engine {
    /// Creates an engine with empty caches.
    pub fn new(options: &EngineOptions) -> Result<Engine> {
        let o = sys::fastinval_engine_options {
            size: std::mem::size_of::<sys::fastinval_engine_options>() as u32,
            iotlb_capacity: options.iotlb_capacity,
            device_tlb_capacity: options.device_tlb_capacity,
            config_cache_capacity: options.config_cache_capacity,
            kernel: options.kernel,
            reserved: 0,
        };
        let mut handle = 0u64;
        check(unsafe { sys::fastinval_engine_create(&o, &mut handle) })?;
        Ok(Engine { handle })
    }

    /// The raw handle (for calls this crate does not wrap).
    pub fn handle(&self) -> u64 {
        self.handle
    }

    /// Entries in each cache and the kernel in use.
    pub fn counts(&self) -> Result<EngineCounts> {
        let mut c = EngineCounts::default();
        check(unsafe { sys::fastinval_engine_counts(self.handle, &mut c) })?;
        Ok(c)
    }

    /// Replaces the fault plan (`None`: no failures).
    pub fn set_fault_plan(&mut self, plan: Option<&FaultPlan>) -> Result<()> {
        let rc = match plan {
            None => unsafe { sys::fastinval_engine_set_fault_plan(self.handle, std::ptr::null()) },
            Some(p) => {
                let raw = raw_fault_plan(p)?;
                unsafe { sys::fastinval_engine_set_fault_plan(self.handle, &raw) }
            }
        };
        check(rc).map(|_| ())
    }

    /// Caches an IOTLB entry.
    pub fn fill_iotlb(&mut self, entry: &IotlbEntry) -> Result<FillResult> {
        FillResult::from(check(unsafe { sys::fastinval_iotlb_fill(self.handle, entry) })?)
    }

    /// Caches a device-TLB entry.
    pub fn fill_device_tlb(&mut self, entry: &DeviceTlbEntry) -> Result<FillResult> {
        FillResult::from(check(unsafe { sys::fastinval_devtlb_fill(self.handle, entry) })?)
    }

    /// Caches a configuration entry.
    pub fn fill_config(&mut self, entry: &ConfigEntry) -> Result<FillResult> {
        FillResult::from(check(unsafe { sys::fastinval_config_fill(self.handle, entry) })?)
    }

    /// The leaf translation of `address` for (stage, domain, address space), if cached.
    pub fn lookup_iotlb(&self, stage: u8, domain_id: u16, address_space_id: u32, address: u64) -> Result<Option<Translation>> {
        let mut t = Translation::default();
        let hit = check(unsafe { sys::fastinval_iotlb_lookup(self.handle, stage, domain_id, address_space_id, address, &mut t) })?;
        Ok(if hit == 1 { Some(t) } else { None })
    }

    /// The device-TLB translation of `address` for (source id, PASID), if cached.
    pub fn lookup_device_tlb(&self, source_id: u32, pasid: u32, address: u64) -> Result<Option<Translation>> {
        let mut t = Translation::default();
        let hit = check(unsafe { sys::fastinval_devtlb_lookup(self.handle, source_id, pasid, address, &mut t) })?;
        Ok(if hit == 1 { Some(t) } else { None })
    }

    /// The configuration entry of (kind, source id, address space), if cached.
    pub fn lookup_config(&self, kind: u8, source_id: u32, address_space_id: u32) -> Result<Option<ConfigEntry>> {
        let mut c = ConfigEntry::default();
        let hit = check(unsafe { sys::fastinval_config_lookup(self.handle, kind, source_id, address_space_id, &mut c) })?;
        Ok(if hit == 1 { Some(c) } else { None })
    }

    /// Executes `batch` in order; `statuses[i]` receives descriptor i's status. `statuses` shorter than the batch is
    /// `EINVAL` (nothing executed).
    pub fn execute(&mut self, batch: &[Descriptor], statuses: &mut [u8]) -> Result<BatchResult> {
        if statuses.len() < batch.len() {
            return Err(Error(errno::EINVAL));
        }
        let mut r = BatchResult::default();
        check(unsafe { sys::fastinval_execute(self.handle, batch.as_ptr(), batch.len(), statuses.as_mut_ptr(), &mut r) })?;
        Ok(r)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // -EBUSY cannot happen: &mut self means no call of ours is in flight.
        unsafe { sys::fastinval_engine_destroy(self.handle) };
    }
}

/// The C struct of `p`; its pointers borrow `p`'s vectors (the library copies them during the call).
fn raw_fault_plan(p: &FaultPlan) -> Result<sys::fastinval_fault_plan> {
    Ok(sys::fastinval_fault_plan {
        size: std::mem::size_of::<sys::fastinval_fault_plan>() as u32,
        reserved: 0,
        seed: p.seed,
        timeout_per_million: p.timeout_per_million,
        completion_error_per_million: p.completion_error_per_million,
        timeout_source_ids: p.timeout_source_ids.as_ptr(),
        timeout_ordinals: p.timeout_ordinals.as_ptr(),
        completion_error_ordinals: p.completion_error_ordinals.as_ptr(),
        timeout_source_id_count: len32(p.timeout_source_ids.len())?,
        timeout_ordinal_count: len32(p.timeout_ordinals.len())?,
        completion_error_ordinal_count: len32(p.completion_error_ordinals.len())?,
        reserved2: 0,
    })
}

fn len32(n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error(errno::EINVAL))
}

/// Options flags of [`Iommufd::new`].
pub mod iommufd_flags {
    /// Offer IOMMU_TEST_CMD (a kernel built with CONFIG_IOMMUFD_TEST).
    pub const SELFTEST: u32 = 1;
    /// VT-d invalidation entries carry hw_error, written back in place.
    pub const VTD_HW_ERROR: u32 = 2;
}

/// IOMMU kinds of [`Iommufd::add_device`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IommuKind {
    IntelVtd = 0,
    ArmSmmuV3 = 1,
}

/// An emulated `/dev/iommu` over this process's memory. Closed on drop.
#[derive(Debug)]
pub struct Iommufd {
    handle: u64,
}

unsafe impl Send for Iommufd {}
unsafe impl Sync for Iommufd {} // the library serializes calls on one context

impl Iommufd {
    /// Opens a context with the given `iommufd_flags` and default engines.
    pub fn new(flags: u32) -> Result<Iommufd> {
        let o = sys::fastinval_iommufd_options {
            size: std::mem::size_of::<sys::fastinval_iommufd_options>() as u32,
            flags,
            engine: sys::fastinval_engine_options::default(),
        };
        let mut handle = 0u64;
        check(unsafe { sys::fastinval_iommufd_create(&o, &mut handle) })?;
        Ok(Iommufd { handle })
    }

    /// `ioctl(fd, request, arg)` as the kernel answers it; `Err` carries the kernel's errno.
    ///
    /// # Safety
    /// The library checks every byte it touches (an unmapped or read-only page is `EFAULT`), but it writes the answer
    /// into `arg` and into the arrays its pointers name: those must not be memory Rust borrows elsewhere.
    pub unsafe fn ioctl(&self, request: u32, arg: *mut c_void) -> Result<()> {
        check(sys::fastinval_iommufd_ioctl(self.handle, request, arg)).map(|_| ())
    }

    /// [`Iommufd::ioctl`] with a `#[repr(C)]` argument struct.
    ///
    /// # Safety
    /// As for [`Iommufd::ioctl`]: the pointers inside `arg` must name memory that may be read and written.
    pub unsafe fn ioctl_struct<T>(&self, request: u32, arg: &mut T) -> Result<()> {
        self.ioctl(request, arg as *mut T as *mut c_void)
    }

    /// Binds a device (VFIO_DEVICE_BIND_IOMMUFD) and returns its object id.
    pub fn add_device(&self, kind: IommuKind, stream_id: u32, ats: bool) -> Result<u32> {
        let mut id = 0u32;
        check(unsafe { sys::fastinval_iommufd_add_device(self.handle, kind as u32, stream_id, ats as i32, &mut id) })?;
        Ok(id)
    }

    /// VFIO_DEVICE_ATTACH_IOMMUFD_PT.
    pub fn attach_device(&self, dev_id: u32, pt_id: u32) -> Result<()> {
        check(unsafe { sys::fastinval_iommufd_attach_device(self.handle, dev_id, pt_id) }).map(|_| ())
    }

    /// VFIO_DEVICE_DETACH_IOMMUFD_PT.
    pub fn detach_device(&self, dev_id: u32) -> Result<()> {
        check(unsafe { sys::fastinval_iommufd_detach_device(self.handle, dev_id) }).map(|_| ())
    }

    /// Unbinds a device (closing its VFIO file).
    pub fn remove_device(&self, dev_id: u32) -> Result<()> {
        check(unsafe { sys::fastinval_iommufd_remove_device(self.handle, dev_id) }).map(|_| ())
    }
}

impl Drop for Iommufd {
    fn drop(&mut self) {
        unsafe { sys::fastinval_iommufd_destroy(self.handle) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_the_header() {
        assert_eq!(std::mem::size_of::<Descriptor>(), 32);
        assert_eq!(std::mem::size_of::<IotlbEntry>(), 32);
        assert_eq!(std::mem::size_of::<DeviceTlbEntry>(), 32);
        assert_eq!(std::mem::size_of::<ConfigEntry>(), 24);
        assert_eq!(std::mem::size_of::<Translation>(), 24);
        assert_eq!(std::mem::size_of::<BatchResult>(), 24);
        assert_eq!(std::mem::size_of::<EngineCounts>(), 32);
        assert_eq!(std::mem::size_of::<sys::fastinval_fault_plan>(), 64);
        assert_eq!(std::mem::size_of::<sys::fastinval_iommufd_options>(), 32);
        let d = Descriptor::default();
        let base = &d as *const _ as usize;
        assert_eq!(&d.domain_id as *const _ as usize - base, 6);
        assert_eq!(&d.address_space_id as *const _ as usize - base, 8);
        assert_eq!(&d.source_id as *const _ as usize - base, 12);
        assert_eq!(&d.first as *const _ as usize - base, 16);
        assert_eq!(&d.last as *const _ as usize - base, 24);
    }
}
