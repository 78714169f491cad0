//! VT-d, SMMUv3 and AMD-Vi units over guest memory: the units' section of `fastinval.h`.
//!
//! * [`GuestMemory`]: a guest-physical address space over RAM slices the VMM owns ([`GuestMemory::map`] borrows them
//!   for the memory's lifetime `'a`) or over a [`GuestAccess`] implementation (the VMM's own DMA accessors).
//! * [`Unit`]: a VT-d remapping unit ([`Unit::vtd`]), an SMMUv3 ([`Unit::smmu`]) or an AMD-Vi IOMMU ([`Unit::amdvi`]) driven by MMIO
//!   ([`Unit::read`] / [`Unit::write`]); its caches are an [`Engine`] ([`Unit::engine`], [`Unit::engine_mut`]).
//!   Interrupts go to a closure; [`Unit::save_state`] / [`Unit::restore_state`] / [`Unit::reset`] for migration.
//! * [`Subscription`]: an invalidation notifier; dropping it unsubscribes.
//!
//! A unit cannot outlive the guest RAM it was made over (`Unit<'a>`), nor a caller's engine it runs on. Callbacks run
//! on the thread whose call caused them, inside that call (see the header's CALLBACKS rules); a panic inside one is
//! caught at the boundary (a memory callback then reports a guest fault) and never unwinds into the library.

use std::marker::PhantomData;
use std::mem::{size_of, ManuallyDrop};
use std::os::raw::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::device_tlb::{DeviceTlbOptions, SinkState};
use crate::{check, errno, Engine, EngineOptions, Error, FaultPlan, Result};

/// Raw declarations of the units' section of fastinval.h.
pub mod sys {
    #![allow(non_camel_case_types)]
    use super::*;
    use crate::device_tlb::sys::fastinval_device_tlb_sink;
    use crate::sys::{fastinval_descriptor, fastinval_engine_options, fastinval_fault_plan};

    pub type fastinval_guest_read_fn = unsafe extern "C" fn(*mut c_void, u64, *mut c_void, usize) -> c_int;
    pub type fastinval_guest_write_fn = unsafe extern "C" fn(*mut c_void, u64, *const c_void, usize) -> c_int;
    pub type fastinval_interrupt_fn = unsafe extern "C" fn(*mut c_void, u32, u64, u32);
    pub type fastinval_notify_fn = unsafe extern "C" fn(*mut c_void, *const fastinval_invalidation_record, usize);

    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct fastinval_vtd_options {
        pub size: u32,
        pub flags: u32,
        pub host_address_width: u8,
        pub max_address_mask: u8,
        pub max_handle_mask: u8,
        pub reserved0: u8,
        pub reserved1: u32,
        pub engine: fastinval_engine_options,
        pub fault_plan: *const fastinval_fault_plan,
        pub interrupt: Option<fastinval_interrupt_fn>,
        pub interrupt_user: *mut c_void,
        pub device_tlb: fastinval_device_tlb_sink,
    }

    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct fastinval_smmu_options {
        pub size: u32,
        pub flags: u32,
        pub substream_id_bits: u8,
        pub stream_id_bits: u8,
        pub max_cmdq_log2: u8,
        pub output_address_bits: u8,
        pub reserved: u32,
        pub engine: fastinval_engine_options,
        pub fault_plan: *const fastinval_fault_plan,
        pub interrupt: Option<fastinval_interrupt_fn>,
        pub interrupt_user: *mut c_void,
        pub device_tlb: fastinval_device_tlb_sink,
    }

    /// struct fastinval_amdvi_options (96 bytes; `device_tlb` zeroed: no sink).
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub struct fastinval_amdvi_options {
        pub size: u32,
        pub flags: u32,
        pub reserved: u64,
        pub engine: fastinval_engine_options,
        pub fault_plan: *const fastinval_fault_plan,
        pub interrupt: Option<fastinval_interrupt_fn>,
        pub interrupt_user: *mut c_void,
        pub device_tlb: fastinval_device_tlb_sink,
    }

    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct fastinval_invalidation_record {
        pub descriptor: fastinval_descriptor,
        pub source_index: u64,
        pub source: u8,
        pub status: u8,
        pub reserved: [u8; 6],
    }

    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default)]
    pub struct fastinval_notifier_filter {
        pub size: u32,
        pub scopes: u8,
        pub flags: u8,
        pub domain_id: u16,
        pub address_space_id: u32,
        pub source_id: u32,
        pub first: u64,
        pub last: u64,
    }

    extern "C" {
        pub fn fastinval_guest_memory_create(out: *mut u64) -> c_int;
        pub fn fastinval_guest_memory_create_callbacks(read: Option<fastinval_guest_read_fn>, write: Option<fastinval_guest_write_fn>,
            user: *mut c_void, out: *mut u64) -> c_int;
        pub fn fastinval_guest_memory_destroy(mem: u64) -> c_int;
        pub fn fastinval_guest_memory_map(mem: u64, gpa: u64, host: *mut c_void, length: u64) -> c_int;
        pub fn fastinval_guest_memory_unmap(mem: u64, gpa: u64) -> c_int;
        pub fn fastinval_guest_memory_read(mem: u64, gpa: u64, buf: *mut c_void, len: usize) -> c_int;
        pub fn fastinval_guest_memory_write(mem: u64, gpa: u64, buf: *const c_void, len: usize) -> c_int;
        pub fn fastinval_vtd_create(mem: u64, options: *const fastinval_vtd_options, engine: u64, out: *mut u64) -> c_int;
        pub fn fastinval_smmu_create(mem: u64, options: *const fastinval_smmu_options, engine: u64, out: *mut u64) -> c_int;
        pub fn fastinval_vtd_destroy(unit: u64) -> c_int;
        pub fn fastinval_smmu_destroy(unit: u64) -> c_int;
        pub fn fastinval_vtd_read(unit: u64, offset: u32, size: u32, value: *mut u64) -> c_int;
        pub fn fastinval_vtd_write(unit: u64, offset: u32, size: u32, value: u64) -> c_int;
        pub fn fastinval_smmu_read(unit: u64, offset: u32, size: u32, value: *mut u64) -> c_int;
        pub fn fastinval_smmu_write(unit: u64, offset: u32, size: u32, value: u64) -> c_int;
        pub fn fastinval_vtd_save_state(unit: u64, buf: *mut c_void, size: usize) -> c_int;
        pub fn fastinval_smmu_save_state(unit: u64, buf: *mut c_void, size: usize) -> c_int;
        pub fn fastinval_vtd_restore_state(unit: u64, image: *const c_void, size: usize) -> c_int;
        pub fn fastinval_smmu_restore_state(unit: u64, image: *const c_void, size: usize) -> c_int;
        pub fn fastinval_vtd_reset(unit: u64) -> c_int;
        pub fn fastinval_smmu_reset(unit: u64) -> c_int;
        pub fn fastinval_amdvi_create(mem: u64, options: *const fastinval_amdvi_options, engine: u64, out: *mut u64) -> c_int;
        pub fn fastinval_amdvi_destroy(unit: u64) -> c_int;
        pub fn fastinval_amdvi_read(unit: u64, offset: u32, size: u32, value: *mut u64) -> c_int;
        pub fn fastinval_amdvi_write(unit: u64, offset: u32, size: u32, value: u64) -> c_int;
        pub fn fastinval_amdvi_save_state(unit: u64, buf: *mut c_void, size: usize) -> c_int;
        pub fn fastinval_amdvi_restore_state(unit: u64, image: *const c_void, size: usize) -> c_int;
        pub fn fastinval_amdvi_reset(unit: u64) -> c_int;
        pub fn fastinval_notifier_subscribe(target: u64, filter: *const fastinval_notifier_filter, fn_: Option<fastinval_notify_fn>,
            user: *mut c_void, out: *mut u64) -> c_int;
        pub fn fastinval_notifier_unsubscribe(notifier: u64) -> c_int;
    }
}

pub use sys::fastinval_invalidation_record as InvalidationRecord;

/// VT-d capability flags of [`VtdOptions::flags`] (FASTINVAL_VTD_*); 0 is the default part, everything on.
pub mod vtd_flags {
    pub const NO_SCALABLE_MODE: u32 = 0x001;
    pub const NO_PASID: u32 = 0x002;
    pub const NO_DEVICE_TLB: u32 = 0x004;
    pub const NO_THROTTLING: u32 = 0x008;
    pub const NO_PAGE_REQUEST_DRAIN: u32 = 0x010;
    pub const NO_INTERRUPT_REMAPPING: u32 = 0x020;
    pub const NO_DRAIN_READS: u32 = 0x040;
    pub const NO_DRAIN_WRITES: u32 = 0x080;
    pub const CACHING_MODE: u32 = 0x100;
    pub const MAMV_ZERO: u32 = 0x200;
    pub const MHMV_ZERO: u32 = 0x400;
}

/// SMMUv3 capability flags of [`SmmuOptions::flags`] (FASTINVAL_SMMU_*); 0 is the default part.
pub mod smmu_flags {
    pub const NO_STAGE1: u32 = 0x001;
    pub const NO_STAGE2: u32 = 0x002;
    pub const NO_RANGE_INVALIDATION: u32 = 0x004;
    pub const NO_ATS: u32 = 0x008;
    pub const PRI: u32 = 0x010;
    pub const STALL: u32 = 0x020;
    pub const NO_MSI: u32 = 0x040;
    pub const NO_SEV: u32 = 0x080;
    pub const NO_ASID16: u32 = 0x100;
    pub const NO_VMID16: u32 = 0x200;
    pub const LAX_RESERVED: u32 = 0x400;
    pub const NO_SUBSTREAMS: u32 = 0x800;
}

/// AMD-Vi capability flags of [`AmdViOptions::flags`] (FASTINVAL_AMDVI_*); 0 is the default part, everything on.
pub mod amdvi_flags {
    /// EFR.GTSup off: GN is a reserved bit.
    pub const NO_GUEST_TRANSLATION: u32 = 0x1;
    /// IotlbSup off: INVALIDATE_IOTLB_PAGES is illegal.
    pub const NO_DEVICE_TLB: u32 = 0x2;
    /// EFR.IASup off: INVALIDATE_IOMMU_ALL is illegal.
    pub const NO_INVALIDATE_ALL: u32 = 0x4;
}

/// Where a notifier record came from (enum fastinval_record_source).
pub mod record_source {
    pub const ENGINE: u8 = 0;
    pub const VTD_QUEUE: u8 = 1;
    pub const SMMU_CMDQ: u8 = 2;
    pub const IOMMUFD: u8 = 3;
    pub const AMDVI_CMDBUF: u8 = 4;
}

/// An interrupt a unit raises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interrupt {
    /// A message-signalled interrupt: VT-d fault and completion events, SMMUv3 CMD_SYNC and GERROR MSIs.
    Msi { address: u64, data: u32 },
    /// SMMUv3 global-error wired interrupt.
    SmmuGlobalError,
    /// SMMUv3 CMD_SYNC completion (CS = SIG_IRQ).
    SmmuCommandSync,
    /// SMMUv3 wake-up event (CS = SIG_SEV).
    SmmuEvent,
    /// The AMD-Vi interrupt (an event recorded, the event log overflowing, a COMPLETION_WAIT with I = 1): no address or
    /// data, Status says which.
    AmdVi,
}

/// The closure that receives a unit's interrupts (on the thread of the register write that raised them).
pub type InterruptHandler = Box<dyn Fn(Interrupt) + Send + Sync>;

/// A VMM's own accessor of guest-physical memory. Each call reads or writes every byte (and returns true) or none
/// (false: a guest fault). Calls may come from several threads at once when units on several threads share it.
pub trait GuestAccess: Send + Sync {
    fn read(&self, gpa: u64, dst: &mut [u8]) -> bool;
    fn write(&self, gpa: u64, src: &[u8]) -> bool;
}

type AccessBox = Box<dyn GuestAccess>;

/// A guest-physical address space. `'a` is how long the RAM slices it maps stay borrowed: a [`Unit`] made over it
/// cannot outlive them. Destroyed on drop (units made over it keep working).
pub struct GuestMemory<'a> {
    handle: u64,
    access: Option<Arc<AccessBox>>,
    _ram: PhantomData<&'a mut [u8]>,
}

unsafe impl Send for GuestMemory<'_> {}
unsafe impl Sync for GuestMemory<'_> {}

unsafe extern "C" fn access_read(user: *mut c_void, gpa: u64, dst: *mut c_void, len: usize) -> c_int {
    let access = &*(user as *const AccessBox);
    let dst = std::slice::from_raw_parts_mut(dst as *mut u8, len);
    match catch_unwind(AssertUnwindSafe(|| access.read(gpa, dst))) {
        Ok(true) => 0,
        _ => -1,
    }
}

unsafe extern "C" fn access_write(user: *mut c_void, gpa: u64, src: *const c_void, len: usize) -> c_int {
    let access = &*(user as *const AccessBox);
    let src = std::slice::from_raw_parts(src as *const u8, len);
    match catch_unwind(AssertUnwindSafe(|| access.write(gpa, src))) {
        Ok(true) => 0,
        _ => -1,
    }
}

impl<'a> GuestMemory<'a> {
    /// An empty address space over pointer ranges: every access faults until [`GuestMemory::map`].
    pub fn new() -> Result<GuestMemory<'a>> {
        let mut handle = 0;
        check(unsafe { sys::fastinval_guest_memory_create(&mut handle) })?;
        Ok(GuestMemory { handle, access: None, _ram: PhantomData })
    }

    /// An address space reached through `access` (kept alive as long as any unit made over it).
    pub fn with_access(access: impl GuestAccess + 'static) -> Result<GuestMemory<'static>> {
        let access: Arc<AccessBox> = Arc::new(Box::new(access));
        let user = Arc::as_ptr(&access) as *mut c_void;
        let mut handle = 0;
        check(unsafe { sys::fastinval_guest_memory_create_callbacks(Some(access_read), Some(access_write), user, &mut handle) })?;
        Ok(GuestMemory { handle, access: Some(access), _ram: PhantomData })
    }

    /// Maps `ram` at guest-physical `gpa`. The slice stays borrowed for `'a`; reach it through
    /// [`GuestMemory::read`] / [`GuestMemory::write`] meanwhile (the units read and write it too).
    pub fn map(&mut self, gpa: u64, ram: &'a mut [u8]) -> Result<()> {
        check(unsafe { sys::fastinval_guest_memory_map(self.handle, gpa, ram.as_mut_ptr() as *mut c_void, ram.len() as u64) }).map(|_| ())
    }

    /// Maps `length` bytes at `host` (an mmap'd RAM block of any size) at `gpa`.
    ///
    /// # Safety
    /// The memory must stay valid, and not be accessed as a Rust reference, until every unit made over this address space
    /// is dropped or the range is unmapped.
    pub unsafe fn map_raw(&mut self, gpa: u64, host: *mut u8, length: u64) -> Result<()> {
        check(sys::fastinval_guest_memory_map(self.handle, gpa, host as *mut c_void, length)).map(|_| ())
    }

    /// Removes the range that starts at `gpa` (`ENOENT` if none does).
    pub fn unmap(&mut self, gpa: u64) -> Result<()> {
        check(unsafe { sys::fastinval_guest_memory_unmap(self.handle, gpa) }).map(|_| ())
    }

    /// Copies guest memory at `gpa` into `buf`, all or nothing (`EFAULT` on a guest fault).
    pub fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<()> {
        check(unsafe { sys::fastinval_guest_memory_read(self.handle, gpa, buf.as_mut_ptr() as *mut c_void, buf.len()) }).map(|_| ())
    }

    /// Copies `buf` into guest memory at `gpa`, all or nothing.
    pub fn write(&self, gpa: u64, buf: &[u8]) -> Result<()> {
        check(unsafe { sys::fastinval_guest_memory_write(self.handle, gpa, buf.as_ptr() as *const c_void, buf.len()) }).map(|_| ())
    }

    /// Reads a little-endian u32.
    pub fn read_u32(&self, gpa: u64) -> Result<u32> {
        let mut b = [0u8; 4];
        self.read(gpa, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// The raw handle.
    pub fn handle(&self) -> u64 {
        self.handle
    }
}

impl Drop for GuestMemory<'_> {
    fn drop(&mut self) {
        unsafe { sys::fastinval_guest_memory_destroy(self.handle) };
    }
}

/// Options of a VT-d unit: FASTINVAL_VTD_* flags, field values (0 = default), the unit's own engine and fault plan,
/// and the interrupt closure.
#[derive(Default)]
pub struct VtdOptions {
    /// Capability flags ([`vtd_flags`]); 0: the default part, everything on, caching mode off.
    pub flags: u32,
    /// Host address width (HAW) 32-64; 0 = 48.
    pub host_address_width: u8,
    /// CAP.MAMV 1-63; 0 = 18.
    pub max_address_mask: u8,
    /// ECAP.MHMV 1-15; 0 = 15.
    pub max_handle_mask: u8,
    /// The unit's own engine's capacities; `None`: the defaults (must be `None` with [`Unit::vtd_on`]).
    pub engine: Option<EngineOptions>,
    /// Injected device-TLB failures and descriptor-fetch errors; `None`: none (must be `None` with [`Unit::vtd_on`]).
    pub fault_plan: Option<FaultPlan>,
    /// Receives every MSI the unit sends (fault and completion events); `None`: none.
    pub interrupt: Option<InterruptHandler>,
    /// The device-TLB sink ([`crate::device_tlb`]): device-TLB invalidations go to the VMM, which answers them; `None`:
    /// the fault plan answers them at once.
    pub device_tlb: Option<DeviceTlbOptions>,
}

/// Options of an SMMUv3: FASTINVAL_SMMU_* flags, field values (0 = default), engine, fault plan and interrupts.
#[derive(Default)]
pub struct SmmuOptions {
    /// Capability flags ([`smmu_flags`]); 0: the default part.
    pub flags: u32,
    /// IDR1.SSIDSIZE 1-20; 0 = 20.
    pub substream_id_bits: u8,
    /// IDR1.SIDSIZE 1-32; 0 = 16.
    pub stream_id_bits: u8,
    /// IDR1.CMDQS 1-19; 0 = 19.
    pub max_cmdq_log2: u8,
    /// IDR5.OAS: 32, 36, 40, 42, 44, 48 or 52; 0 = 48.
    pub output_address_bits: u8,
    /// The unit's own engine's capacities; `None`: the defaults (must be `None` with [`Unit::smmu_on`]).
    pub engine: Option<EngineOptions>,
    /// Injected device-TLB failures and command-fetch errors; `None`: none (must be `None` with [`Unit::smmu_on`]).
    pub fault_plan: Option<FaultPlan>,
    /// Receives the MSIs (CMD_SYNC, GERROR) and the wired outputs; `None`: none.
    pub interrupt: Option<InterruptHandler>,
    /// The device-TLB sink ([`crate::device_tlb`]): device-TLB invalidations go to the VMM, which answers them; `None`:
    /// the fault plan answers them at once.
    pub device_tlb: Option<DeviceTlbOptions>,
}

/// Options of an AMD-Vi unit: FASTINVAL_AMDVI_* flags ([`amdvi_flags`]), engine, fault plan (it also decides
/// command-fetch errors), the interrupt closure ([`Interrupt::AmdVi`]) and the device-TLB sink (INVALIDATE_IOTLB_PAGES as
/// requests; without one the fault plan answers them).
#[derive(Default)]
pub struct AmdViOptions {
    /// Capability flags ([`amdvi_flags`]); 0: the default part, everything on.
    pub flags: u32,
    /// The unit's own engine's capacities; `None`: the defaults (must be `None` with [`Unit::amdvi_on`]).
    pub engine: Option<EngineOptions>,
    /// Injected device-TLB failures and command-fetch errors; `None`: none (must be `None` with [`Unit::amdvi_on`]).
    pub fault_plan: Option<FaultPlan>,
    /// Receives [`Interrupt::AmdVi`]; `None`: none.
    pub interrupt: Option<InterruptHandler>,
    /// The device-TLB sink ([`crate::device_tlb`]): device-TLB invalidations go to the VMM, which answers them; `None`:
    /// the fault plan answers them at once.
    pub device_tlb: Option<DeviceTlbOptions>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Vtd,
    Smmu,
    AmdVi,
}

/// A VT-d, SMMUv3 or AMD-Vi unit. Register calls take `&self` (the library serializes the calls on one unit); the unit's caches
/// are reached through [`Unit::engine`] / [`Unit::engine_mut`]. Destroyed on drop.
pub struct Unit<'a> {
    handle: u64,
    kind: Kind,
    engine: ManuallyDrop<Engine>, // the unit's handle used as an engine handle: never destroyed as one
    interrupt: Option<Box<InterruptHandler>>,
    sink: Option<Box<SinkState>>, // named by the unit's device_tlb.user: dropped only once destroy returned 0
    _access: Option<Arc<AccessBox>>,
    _borrows: PhantomData<&'a ()>,
}

unsafe impl Send for Unit<'_> {}
unsafe impl Sync for Unit<'_> {}

unsafe extern "C" fn on_interrupt(user: *mut c_void, kind: u32, address: u64, data: u32) {
    let handler = &*(user as *const InterruptHandler);
    let interrupt = match kind {
        1 => Interrupt::SmmuGlobalError,
        2 => Interrupt::SmmuCommandSync,
        3 => Interrupt::SmmuEvent,
        4 => Interrupt::AmdVi,
        _ => Interrupt::Msi { address, data },
    };
    let _ = catch_unwind(AssertUnwindSafe(|| handler(interrupt)));
}

fn raw_engine_options(o: &Option<EngineOptions>) -> crate::sys::fastinval_engine_options {
    match o {
        None => crate::sys::fastinval_engine_options::default(),
        Some(e) => crate::sys::fastinval_engine_options {
            size: size_of::<crate::sys::fastinval_engine_options>() as u32,
            iotlb_capacity: e.iotlb_capacity,
            device_tlb_capacity: e.device_tlb_capacity,
            config_cache_capacity: e.config_cache_capacity,
            kernel: e.kernel,
            reserved: 0,
        },
    }
}

impl<'a> Unit<'a> {
    /// A VT-d unit at power-on state over `memory`, with its own engine.
    pub fn vtd(memory: &GuestMemory<'a>, options: VtdOptions) -> Result<Unit<'a>> {
        Self::new_vtd(memory, options, 0)
    }

    /// A VT-d unit over `memory` running on the caller's `engine` (whose caches it then shares); `engine` stays borrowed
    /// while the unit lives. `options.engine` and `options.fault_plan` must be `None` (`EINVAL`).
    pub fn vtd_on(memory: &GuestMemory<'a>, engine: &'a Engine, options: VtdOptions) -> Result<Unit<'a>> {
        Self::new_vtd(memory, options, engine.handle)
    }

    /// An SMMUv3 at power-on state over `memory`, with its own engine.
    pub fn smmu(memory: &GuestMemory<'a>, options: SmmuOptions) -> Result<Unit<'a>> {
        Self::new_smmu(memory, options, 0)
    }

    /// An SMMUv3 over `memory` running on the caller's `engine`.
    pub fn smmu_on(memory: &GuestMemory<'a>, engine: &'a Engine, options: SmmuOptions) -> Result<Unit<'a>> {
        Self::new_smmu(memory, options, engine.handle)
    }

    /// An AMD-Vi unit at power-on state over `memory`, with its own engine.
    pub fn amdvi(memory: &GuestMemory<'a>, options: AmdViOptions) -> Result<Unit<'a>> {
        Self::new_amdvi(memory, options, 0)
    }

    /// An AMD-Vi unit over `memory` running on the caller's `engine`.
    pub fn amdvi_on(memory: &GuestMemory<'a>, engine: &'a Engine, options: AmdViOptions) -> Result<Unit<'a>> {
        Self::new_amdvi(memory, options, engine.handle)
    }

    fn new_amdvi(memory: &GuestMemory<'a>, options: AmdViOptions, engine: u64) -> Result<Unit<'a>> {
        let interrupt = options.interrupt.map(Box::new);
        let (sink, sink_raw) = SinkState::new(options.device_tlb.as_ref());
        let plan = options.fault_plan.as_ref().map(crate::raw_fault_plan).transpose()?;
        let raw = sys::fastinval_amdvi_options {
            size: size_of::<sys::fastinval_amdvi_options>() as u32,
            flags: options.flags,
            reserved: 0,
            engine: raw_engine_options(&options.engine),
            fault_plan: plan.as_ref().map_or(std::ptr::null(), |p| p as *const _),
            interrupt: interrupt.as_ref().map(|_| on_interrupt as sys::fastinval_interrupt_fn),
            interrupt_user: interrupt.as_ref().map_or(std::ptr::null_mut(), |b| &**b as *const InterruptHandler as *mut c_void),
            device_tlb: sink_raw,
        };
        let mut handle = 0;
        check(unsafe { sys::fastinval_amdvi_create(memory.handle, &raw, engine, &mut handle) })?;
        Ok(Unit::wrap(handle, Kind::AmdVi, interrupt, sink, memory))
    }

    fn new_vtd(memory: &GuestMemory<'a>, options: VtdOptions, engine: u64) -> Result<Unit<'a>> {
        let interrupt = options.interrupt.map(Box::new);
        let (sink, sink_raw) = SinkState::new(options.device_tlb.as_ref());
        let plan = options.fault_plan.as_ref().map(crate::raw_fault_plan).transpose()?;
        let raw = sys::fastinval_vtd_options {
            size: size_of::<sys::fastinval_vtd_options>() as u32,
            flags: options.flags,
            host_address_width: options.host_address_width,
            max_address_mask: options.max_address_mask,
            max_handle_mask: options.max_handle_mask,
            reserved0: 0,
            reserved1: 0,
            engine: raw_engine_options(&options.engine),
            fault_plan: plan.as_ref().map_or(std::ptr::null(), |p| p as *const _),
            interrupt: interrupt.as_ref().map(|_| on_interrupt as sys::fastinval_interrupt_fn),
            interrupt_user: interrupt.as_ref().map_or(std::ptr::null_mut(), |b| &**b as *const InterruptHandler as *mut c_void),
            device_tlb: sink_raw,
        };
        let mut handle = 0;
        check(unsafe { sys::fastinval_vtd_create(memory.handle, &raw, engine, &mut handle) })?;
        Ok(Unit::wrap(handle, Kind::Vtd, interrupt, sink, memory))
    }

    fn new_smmu(memory: &GuestMemory<'a>, options: SmmuOptions, engine: u64) -> Result<Unit<'a>> {
        let interrupt = options.interrupt.map(Box::new);
        let (sink, sink_raw) = SinkState::new(options.device_tlb.as_ref());
        let plan = options.fault_plan.as_ref().map(crate::raw_fault_plan).transpose()?;
        let raw = sys::fastinval_smmu_options {
            size: size_of::<sys::fastinval_smmu_options>() as u32,
            flags: options.flags,
            substream_id_bits: options.substream_id_bits,
            stream_id_bits: options.stream_id_bits,
            max_cmdq_log2: options.max_cmdq_log2,
            output_address_bits: options.output_address_bits,
            reserved: 0,
            engine: raw_engine_options(&options.engine),
            fault_plan: plan.as_ref().map_or(std::ptr::null(), |p| p as *const _),
            interrupt: interrupt.as_ref().map(|_| on_interrupt as sys::fastinval_interrupt_fn),
            interrupt_user: interrupt.as_ref().map_or(std::ptr::null_mut(), |b| &**b as *const InterruptHandler as *mut c_void),
            device_tlb: sink_raw,
        };
        let mut handle = 0;
        check(unsafe { sys::fastinval_smmu_create(memory.handle, &raw, engine, &mut handle) })?;
        Ok(Unit::wrap(handle, Kind::Smmu, interrupt, sink, memory))
    }

    fn wrap(handle: u64, kind: Kind, interrupt: Option<Box<InterruptHandler>>, sink: Option<Box<SinkState>>, memory: &GuestMemory<'a>) -> Unit<'a> {
        if let Some(s) = &sink {
            s.set_unit(handle);
        }
        Unit {
            handle,
            kind,
            engine: ManuallyDrop::new(Engine { handle }),
            interrupt,
            sink,
            _access: memory.access.clone(),
            _borrows: PhantomData,
        }
    }

    /// The raw handle (also valid as an engine handle).
    pub fn handle(&self) -> u64 {
        self.handle
    }

    /// The unit's caches, for lookups (on any thread).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The unit's caches, for fills and host-side execute.
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// An MMIO read of `size` 4 or 8 bytes at `offset` (`EINVAL` for another size).
    pub fn read(&self, offset: u32, size: u32) -> Result<u64> {
        let mut v = 0;
        let rc = match self.kind {
            Kind::Vtd => unsafe { sys::fastinval_vtd_read(self.handle, offset, size, &mut v) },
            Kind::Smmu => unsafe { sys::fastinval_smmu_read(self.handle, offset, size, &mut v) },
            Kind::AmdVi => unsafe { sys::fastinval_amdvi_read(self.handle, offset, size, &mut v) },
        };
        check(rc).map(|_| v)
    }

    /// An MMIO write; a write that lets the queue run processes it before returning.
    pub fn write(&self, offset: u32, size: u32, value: u64) -> Result<()> {
        let rc = match self.kind {
            Kind::Vtd => unsafe { sys::fastinval_vtd_write(self.handle, offset, size, value) },
            Kind::Smmu => unsafe { sys::fastinval_smmu_write(self.handle, offset, size, value) },
            Kind::AmdVi => unsafe { sys::fastinval_amdvi_write(self.handle, offset, size, value) },
        };
        check(rc).map(|_| ())
    }

    /// Size of the unit's state image.
    pub fn state_size(&self) -> Result<usize> {
        self.save_state_into(&mut [])
    }

    /// Writes the state image into `buf` (`ERANGE` if too small); with an empty `buf`, returns the size only.
    pub fn save_state_into(&self, buf: &mut [u8]) -> Result<usize> {
        let p = if buf.is_empty() { std::ptr::null_mut() } else { buf.as_mut_ptr() as *mut c_void };
        let rc = match self.kind {
            Kind::Vtd => unsafe { sys::fastinval_vtd_save_state(self.handle, p, buf.len()) },
            Kind::Smmu => unsafe { sys::fastinval_smmu_save_state(self.handle, p, buf.len()) },
            Kind::AmdVi => unsafe { sys::fastinval_amdvi_save_state(self.handle, p, buf.len()) },
        };
        check(rc).map(|n| n as usize)
    }

    /// The state image.
    pub fn save_state(&self) -> Result<Vec<u8>> {
        let mut image = vec![0u8; self.state_size()?];
        let n = self.save_state_into(&mut image)?;
        image.truncate(n);
        Ok(image)
    }

    /// Restores an image saved by a unit with the same options (`EINVAL` for a bad one: nothing changes).
    pub fn restore_state(&self, image: &[u8]) -> Result<()> {
        if image.is_empty() {
            return Err(Error(errno::EINVAL));
        }
        let rc = match self.kind {
            Kind::Vtd => unsafe { sys::fastinval_vtd_restore_state(self.handle, image.as_ptr() as *const c_void, image.len()) },
            Kind::Smmu => unsafe { sys::fastinval_smmu_restore_state(self.handle, image.as_ptr() as *const c_void, image.len()) },
            Kind::AmdVi => unsafe { sys::fastinval_amdvi_restore_state(self.handle, image.as_ptr() as *const c_void, image.len()) },
        };
        check(rc).map(|_| ())
    }

    /// Power-on state (the unit's own engine is emptied too).
    pub fn reset(&self) -> Result<()> {
        let rc = match self.kind {
            Kind::Vtd => unsafe { sys::fastinval_vtd_reset(self.handle) },
            Kind::Smmu => unsafe { sys::fastinval_smmu_reset(self.handle) },
            Kind::AmdVi => unsafe { sys::fastinval_amdvi_reset(self.handle) },
        };
        check(rc).map(|_| ())
    }

    /// Subscribes `callback` to the records of the batches this unit's engine executes.
    pub fn subscribe(&self, filter: &NotifierFilter, callback: impl Fn(&[InvalidationRecord]) + Send + Sync + 'static) -> Result<Subscription> {
        Subscription::new(self.handle, filter, callback)
    }
}

impl Drop for Unit<'_> {
    fn drop(&mut self) {
        // -EBUSY means a call on this unit is in flight on another thread: a DeviceTlbCompletion::complete (which needs no
        // borrow of the unit) or the library's time-out timer. Such a call ends, so retry for a while. If the unit cannot
        // be destroyed (a drop from inside one of its own callbacks), leak what the library may still call rather than
        // free it under the library.
        let mut rc = 0;
        for attempt in 0..2000 {
            rc = match self.kind {
                Kind::Vtd => unsafe { sys::fastinval_vtd_destroy(self.handle) },
                Kind::Smmu => unsafe { sys::fastinval_smmu_destroy(self.handle) },
                Kind::AmdVi => unsafe { sys::fastinval_amdvi_destroy(self.handle) },
            };
            if rc != -(errno::EBUSY) {
                break;
            }
            if attempt < 100 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        if rc != 0 {
            std::mem::forget(self.interrupt.take());
            std::mem::forget(self.sink.take());
        }
    }
}

/// Which records a [`Subscription`] receives; the default is everything. `scopes` is a mask of 1 (IOTLB), 2 (device
/// TLB), 4 (configuration caches); 0 = all.
#[derive(Clone, Copy, Debug, Default)]
pub struct NotifierFilter {
    pub scopes: u8,
    pub domain_id: Option<u16>,
    pub address_space_id: Option<u32>,
    pub source_id: Option<u32>,
    pub range: Option<(u64, u64)>,
}

type NotifyBox = Box<dyn Fn(&[InvalidationRecord]) + Send + Sync>;

/// A live invalidation notifier; dropping it unsubscribes (waiting for a call of it running on another thread).
pub struct Subscription {
    handle: u64,
    _callback: Box<NotifyBox>,
}

unsafe impl Send for Subscription {}
unsafe impl Sync for Subscription {}

unsafe extern "C" fn on_records(user: *mut c_void, records: *const InvalidationRecord, count: usize) {
    let callback = &*(user as *const NotifyBox);
    let records = std::slice::from_raw_parts(records, count);
    let _ = catch_unwind(AssertUnwindSafe(|| callback(records)));
}

impl Subscription {
    fn new(target: u64, filter: &NotifierFilter, callback: impl Fn(&[InvalidationRecord]) + Send + Sync + 'static) -> Result<Subscription> {
        let callback: Box<NotifyBox> = Box::new(Box::new(callback));
        let mut raw = sys::fastinval_notifier_filter { size: size_of::<sys::fastinval_notifier_filter>() as u32, scopes: filter.scopes, ..Default::default() };
        if let Some(d) = filter.domain_id {
            raw.flags |= 1;
            raw.domain_id = d;
        }
        if let Some(a) = filter.address_space_id {
            raw.flags |= 2;
            raw.address_space_id = a;
        }
        if let Some(s) = filter.source_id {
            raw.flags |= 4;
            raw.source_id = s;
        }
        if let Some((first, last)) = filter.range {
            raw.flags |= 8;
            raw.first = first;
            raw.last = last;
        }
        let user = &*callback as *const NotifyBox as *mut c_void;
        let mut handle = 0;
        check(unsafe { sys::fastinval_notifier_subscribe(target, &raw, Some(on_records), user, &mut handle) })?;
        Ok(Subscription { handle, _callback: callback })
    }
}

impl Engine {
    /// Subscribes `callback` to the records of the batches this engine executes (see [`Unit::subscribe`]).
    pub fn subscribe(&self, filter: &NotifierFilter, callback: impl Fn(&[InvalidationRecord]) + Send + Sync + 'static) -> Result<Subscription> {
        Subscription::new(self.handle, filter, callback)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        unsafe { sys::fastinval_notifier_unsubscribe(self.handle) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_layouts_match_the_header() {
        assert_eq!(size_of::<sys::fastinval_vtd_options>(), 96);
        assert_eq!(size_of::<sys::fastinval_smmu_options>(), 96);
        assert_eq!(std::mem::offset_of!(sys::fastinval_vtd_options, device_tlb), 64);
        assert_eq!(std::mem::offset_of!(sys::fastinval_smmu_options, device_tlb), 64);
        assert_eq!(size_of::<sys::fastinval_amdvi_options>(), 96);
        let a = std::mem::MaybeUninit::<sys::fastinval_amdvi_options>::uninit();
        let base = a.as_ptr() as usize;
        assert_eq!(unsafe { std::ptr::addr_of!((*a.as_ptr()).engine) } as usize - base, 16);
        assert_eq!(unsafe { std::ptr::addr_of!((*a.as_ptr()).interrupt) } as usize - base, 48);
        assert_eq!(unsafe { std::ptr::addr_of!((*a.as_ptr()).device_tlb) } as usize - base, 64);
        assert_eq!(size_of::<InvalidationRecord>(), 48);
        assert_eq!(size_of::<sys::fastinval_notifier_filter>(), 32);
        let r = InvalidationRecord::default();
        let base = &r as *const _ as usize;
        assert_eq!(&r.source_index as *const _ as usize - base, 32);
        assert_eq!(&r.source as *const _ as usize - base, 40);
        assert_eq!(&r.status as *const _ as usize - base, 41);
    }
}
