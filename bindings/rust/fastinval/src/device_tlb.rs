//! The device-TLB sink: device-TLB invalidations a unit's guest queues (VT-d types 3 and 8, SMMUv3 `CMD_ATC_INV`,
//! AMD-Vi `INVALIDATE_IOTLB_PAGES`) handed to the VMM, which forwards each to the device and answers later.
//!
//! Without a sink the unit's fault plan answers device-TLB invalidations at once. With one (the `device_tlb` field of
//! [`VtdOptions`](crate::VtdOptions), [`SmmuOptions`](crate::SmmuOptions) or [`AmdViOptions`](crate::AmdViOptions)),
//! each becomes a call of [`DeviceTlbSink::submit`] with a [`DeviceTlbRequest`] and a [`DeviceTlbCompletion`]; the VMM
//! answers it with [`DeviceTlbCompletion::complete`], from any thread, or from inside `submit`. Until every earlier
//! request is answered the unit holds the guest's next VT-d wait descriptor, SMMUv3 `CMD_SYNC` or AMD-Vi
//! `COMPLETION_WAIT`, as hardware does. A [`DeviceTlbOutcome::Timeout`] answer, or silence longer than
//! [`DeviceTlbOptions::timeout`], is the architected time-out (VT-d ITE, SMMUv3 `CERROR_ATC_INV_SYNC`, AMD-Vi
//! `IOTLB_INV_TIMEOUT`); [`DeviceTlbOutcome::CompletionError`] is a VT-d ICE. While requests are unanswered,
//! [`Unit::save_state`](crate::Unit::save_state) fails with `EBUSY`; reset and restore drop them.
//!
//! ```no_run
//! use std::sync::{Arc, Mutex};
//! use fastinval::{DeviceTlbCompletion, DeviceTlbOptions, DeviceTlbOutcome, DeviceTlbRequest, DeviceTlbSink};
//!
//! /// Queues the requests for the device model's thread, which answers them when the device has invalidated.
//! struct Forward(Mutex<Vec<(u32, DeviceTlbCompletion)>>);
//!
//! impl DeviceTlbSink for Forward {
//!     fn submit(&self, request: &DeviceTlbRequest, completion: DeviceTlbCompletion) {
//!         self.0.lock().unwrap().push((request.source_id(), completion));
//!     }
//! }
//!
//! let sink = Arc::new(Forward(Mutex::new(Vec::new())));
//! let options = DeviceTlbOptions::new(sink.clone());
//! // ... VtdOptions { device_tlb: Some(options), ..Default::default() }, and later, on the device thread:
//! for (_device, completion) in sink.0.lock().unwrap().drain(..) {
//!     completion.complete(DeviceTlbOutcome::Ok).unwrap();
//! }
//! ```

use std::os::raw::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::{check, Descriptor, Result};

/// Raw declarations of the device-TLB sink section of fastinval.h.
pub mod sys {
    #![allow(non_camel_case_types)]
    use std::os::raw::{c_int, c_void};

    use crate::sys::fastinval_descriptor;

    /// struct fastinval_device_tlb_request (64 bytes).
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct fastinval_device_tlb_request {
        /// Pass to fastinval_device_tlb_complete; never 0, never reused by the unit.
        pub ticket: u64,
        /// Scope FASTINVAL_SCOPE_DEVICE_TLB: source_id = the device, first..last, address_space_id = the PASID.
        pub descriptor: fastinval_descriptor,
        /// The guest descriptor's queue slot.
        pub index: u64,
        /// The engine's device-TLB ordinal.
        pub ordinal: u64,
        /// enum fastinval_record_source.
        pub source: u8,
        /// 0.
        pub reserved: [u8; 7],
    }

    /// fastinval_device_tlb_fn: called once per request, in queue order, holding the unit's lock.
    pub type fastinval_device_tlb_fn = unsafe extern "C" fn(*mut c_void, *const fastinval_device_tlb_request);

    /// struct fastinval_device_tlb_sink (32 bytes); zeroed: no sink.
    #[repr(C)]
    #[derive(Clone, Copy, Debug)]
    pub struct fastinval_device_tlb_sink {
        /// The request callback; None (with the whole struct zeroed): no sink.
        pub request: Option<fastinval_device_tlb_fn>,
        /// Passed to `request`.
        pub user: *mut c_void,
        /// Silence that becomes a time-out; 0 = 1 s; u64::MAX = never.
        pub timeout_ns: u64,
        /// Requests in flight, a power of two 16-65536; 0 = 256.
        pub max_outstanding: u32,
        /// 0.
        pub reserved: u32,
    }

    impl Default for fastinval_device_tlb_sink {
        fn default() -> Self {
            fastinval_device_tlb_sink { request: None, user: std::ptr::null_mut(), timeout_ns: 0, max_outstanding: 0, reserved: 0 }
        }
    }

    /// enum fastinval_device_tlb_outcome.
    pub const FASTINVAL_DEVICE_TLB_OK: u32 = 0;
    /// enum fastinval_device_tlb_outcome.
    pub const FASTINVAL_DEVICE_TLB_TIMEOUT: u32 = 1;
    /// enum fastinval_device_tlb_outcome.
    pub const FASTINVAL_DEVICE_TLB_COMPLETION_ERROR: u32 = 2;

    extern "C" {
        /// Answers request `ticket` of `unit`: 0, -EBADF, -EINVAL (unknown outcome), -ENOENT (ticket not outstanding).
        pub fn fastinval_device_tlb_complete(unit: u64, ticket: u64, outcome: u32) -> c_int;
    }
}

/// How the device answered a request (enum fastinval_device_tlb_outcome).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum DeviceTlbOutcome {
    /// The device invalidated and answered: the engine removes the entries the request covers.
    Ok = sys::FASTINVAL_DEVICE_TLB_OK,
    /// The VMM gives up on the device, as the unit's own time-out does (VT-d ITE, SMMUv3 `CERROR_ATC_INV_SYNC`, AMD-Vi
    /// `IOTLB_INV_TIMEOUT`); the entries stay cached.
    Timeout = sys::FASTINVAL_DEVICE_TLB_TIMEOUT,
    /// The device invalidated but its completion message was malformed: the entries go, and VT-d raises an ICE
    /// (SMMUv3 and AMD-Vi have no error for it).
    CompletionError = sys::FASTINVAL_DEVICE_TLB_COMPLETION_ERROR,
}

/// One device-TLB invalidation for the VMM to forward: a safe view of struct fastinval_device_tlb_request, valid for the
/// [`DeviceTlbSink::submit`] call it is passed to (copy it to keep it: it is `Copy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct DeviceTlbRequest(sys::fastinval_device_tlb_request);

impl DeviceTlbRequest {
    /// The unit's ticket of this request (never 0, never reused by the unit); [`DeviceTlbCompletion::ticket`] is the same.
    pub fn ticket(&self) -> u64 {
        self.0.ticket
    }

    /// The invalidation as an engine descriptor (scope [`scope::DEVICE_TLB`](crate::scope::DEVICE_TLB)).
    pub fn descriptor(&self) -> &Descriptor {
        &self.0.descriptor
    }

    /// The device: its PCI requester id (VT-d, AMD-Vi) or StreamID (SMMUv3).
    pub fn source_id(&self) -> u32 {
        self.0.descriptor.source_id
    }

    /// The PASID / SubstreamID, or [`ADDRESS_SPACE_NONE`](crate::ADDRESS_SPACE_NONE) for a request without one.
    pub fn pasid(&self) -> u32 {
        self.0.descriptor.address_space_id
    }

    /// The first input address the invalidation covers.
    pub fn first(&self) -> u64 {
        self.0.descriptor.first
    }

    /// The last input address the invalidation covers (inclusive).
    pub fn last(&self) -> u64 {
        self.0.descriptor.last
    }

    /// The guest descriptor's queue slot.
    pub fn index(&self) -> u64 {
        self.0.index
    }

    /// The engine's device-TLB ordinal (counts device-TLB invalidations; the question a fault plan answers).
    pub fn ordinal(&self) -> u64 {
        self.0.ordinal
    }

    /// Which queue the descriptor came from ([`record_source`](crate::units::record_source): `VTD_QUEUE`, `SMMU_CMDQ` or
    /// `AMDVI_CMDBUF`).
    pub fn source(&self) -> u8 {
        self.0.source
    }

    /// The C struct.
    pub fn raw(&self) -> &sys::fastinval_device_tlb_request {
        &self.0
    }
}

/// The answer handle of one request: the unit's handle and the ticket. Cheap to clone, `Send + Sync`, usable on any
/// thread and from inside [`DeviceTlbSink::submit`]. A handle outliving its unit is harmless: its calls then give
/// `EBADF` (the library's handles carry a generation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DeviceTlbCompletion {
    unit: u64,
    ticket: u64,
}

impl DeviceTlbCompletion {
    /// A handle for `ticket` of the unit whose raw handle is `unit` ([`Unit::handle`](crate::Unit::handle)), e.g. one
    /// rebuilt from a log. The library checks both: a wrong pair only makes [`DeviceTlbCompletion::complete`] fail.
    pub fn from_raw(unit: u64, ticket: u64) -> DeviceTlbCompletion {
        DeviceTlbCompletion { unit, ticket }
    }

    /// The raw handle of the unit the request came from.
    pub fn unit(&self) -> u64 {
        self.unit
    }

    /// The request's ticket.
    pub fn ticket(&self) -> u64 {
        self.ticket
    }

    /// Answers the request with `outcome` (fastinval_device_tlb_complete). The answer is applied on the calling thread:
    /// the entries are removed, the error raised, a held wait released and the queue run on (interrupt and notifier
    /// callbacks then run on this thread). Errors: `ENOENT` when the ticket is not outstanding (answered already,
    /// timed out, dropped by a reset or restore, never issued), `EBADF` when the unit is gone.
    pub fn complete(&self, outcome: DeviceTlbOutcome) -> Result<()> {
        check(unsafe { sys::fastinval_device_tlb_complete(self.unit, self.ticket, outcome as u32) }).map(|_| ())
    }
}

/// The VMM's receiver of device-TLB requests (the rust-vmm way: a shared trait object).
///
/// `submit` is called once per request, in queue order, on the thread whose call ran the queue (a register write, a
/// [`DeviceTlbCompletion::complete`], or the library's time-out timer thread), holding the unit's lock. It must not
/// wait for the answer: hand the request to the device and return; it may answer at once through `completion`. It
/// follows the unit callback rules (no destroy, save, restore or reset of the unit from inside it). A panic in `submit`
/// is caught at the boundary and the request answered as [`DeviceTlbOutcome::Timeout`] (the unit gives up on the
/// device) unless it was answered before the panic.
pub trait DeviceTlbSink: Send + Sync {
    /// Forwards `request` to its device; `completion` answers it, now or later, from any thread.
    fn submit(&self, request: &DeviceTlbRequest, completion: DeviceTlbCompletion);
}

/// A unit's device-TLB sink and its limits (the `device_tlb` field of the unit options; `None` there: no sink).
#[derive(Clone)]
pub struct DeviceTlbOptions {
    /// Receives the requests; the unit keeps a reference until it is destroyed.
    pub sink: Arc<dyn DeviceTlbSink>,
    /// Silence after which the unit itself times a request out (VT-d and SMMUv3); `None`: never. AMD-Vi ignores it (its
    /// time-out is the one the guest programs in Control.InvTimeOut). Sub-nanosecond values round up to 1 ns.
    pub timeout: Option<Duration>,
    /// Requests in flight at most, a power of two 16-65536 (another value is `EINVAL` at unit creation); 0 = 256. When
    /// all are out, the queue stops before the next device-TLB invalidation until one is answered.
    pub max_outstanding: u32,
}

impl DeviceTlbOptions {
    /// `sink` with the library's defaults: a 1 s time-out and 256 requests in flight.
    pub fn new(sink: Arc<dyn DeviceTlbSink>) -> DeviceTlbOptions {
        DeviceTlbOptions { sink, timeout: Some(Duration::from_secs(1)), max_outstanding: 0 }
    }

    fn timeout_ns(&self) -> u64 {
        match self.timeout {
            None => u64::MAX,
            Some(d) => u64::try_from(d.as_nanos()).unwrap_or(u64::MAX - 1).clamp(1, u64::MAX - 1),
        }
    }
}

impl std::fmt::Debug for DeviceTlbOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceTlbOptions").field("timeout", &self.timeout).field("max_outstanding", &self.max_outstanding).finish_non_exhaustive()
    }
}

/// What the unit's `user` pointer names: the sink and the unit's handle (known once create returned; no request can
/// come before, since only the unit's own calls run its queue).
pub(crate) struct SinkState {
    sink: Arc<dyn DeviceTlbSink>,
    unit: AtomicU64,
}

impl SinkState {
    /// The boxed state for `options` and the C struct naming it (the box must outlive the unit).
    pub(crate) fn new(options: Option<&DeviceTlbOptions>) -> (Option<Box<SinkState>>, sys::fastinval_device_tlb_sink) {
        match options {
            None => (None, sys::fastinval_device_tlb_sink::default()),
            Some(o) => {
                let state = Box::new(SinkState { sink: o.sink.clone(), unit: AtomicU64::new(0) });
                let raw = sys::fastinval_device_tlb_sink {
                    request: Some(on_device_tlb_request),
                    user: &*state as *const SinkState as *mut c_void,
                    timeout_ns: o.timeout_ns(),
                    max_outstanding: o.max_outstanding,
                    reserved: 0,
                };
                (Some(state), raw)
            }
        }
    }

    /// Records the unit's handle once create returned it.
    pub(crate) fn set_unit(&self, unit: u64) {
        self.unit.store(unit, Ordering::Release);
    }
}

unsafe extern "C" fn on_device_tlb_request(user: *mut c_void, request: *const sys::fastinval_device_tlb_request) {
    if user.is_null() || request.is_null() {
        return;
    }
    let state = &*(user as *const SinkState);
    // repr(transparent): the C struct is the view.
    let request = &*(request as *const DeviceTlbRequest);
    let completion = DeviceTlbCompletion { unit: state.unit.load(Ordering::Acquire), ticket: request.ticket() };
    if catch_unwind(AssertUnwindSafe(|| state.sink.submit(request, completion))).is_err() {
        // The sink will never answer: give up on the device now rather than hold the guest's wait (ENOENT if the sink
        // had answered before panicking).
        let _ = completion.complete(DeviceTlbOutcome::Timeout);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn device_tlb_layouts_match_the_header() {
        assert_eq!(size_of::<sys::fastinval_device_tlb_request>(), 64);
        assert_eq!(offset_of!(sys::fastinval_device_tlb_request, descriptor), 8);
        assert_eq!(offset_of!(sys::fastinval_device_tlb_request, index), 40);
        assert_eq!(offset_of!(sys::fastinval_device_tlb_request, ordinal), 48);
        assert_eq!(offset_of!(sys::fastinval_device_tlb_request, source), 56);
        assert_eq!(size_of::<sys::fastinval_device_tlb_sink>(), 32);
        assert_eq!(offset_of!(sys::fastinval_device_tlb_sink, timeout_ns), 16);
        assert_eq!(size_of::<DeviceTlbRequest>(), 64);
    }

    struct Nothing;
    impl DeviceTlbSink for Nothing {
        fn submit(&self, _: &DeviceTlbRequest, _: DeviceTlbCompletion) {}
    }

    #[test]
    fn device_tlb_timeouts_map_to_the_header_values() {
        let mut o = DeviceTlbOptions::new(Arc::new(Nothing));
        assert_eq!(o.timeout_ns(), 1_000_000_000);
        o.timeout = None;
        assert_eq!(o.timeout_ns(), u64::MAX);
        o.timeout = Some(Duration::ZERO);
        assert_eq!(o.timeout_ns(), 1);
        o.timeout = Some(Duration::from_millis(20));
        assert_eq!(o.timeout_ns(), 20_000_000);
        o.timeout = Some(Duration::MAX);
        assert_eq!(o.timeout_ns(), u64::MAX - 1);
        let (state, raw) = SinkState::new(None);
        assert!(state.is_none() && raw.request.is_none() && raw.user.is_null() && raw.timeout_ns == 0);
    }

    fn _completion_is_send_sync_clone<T: Send + Sync + Clone>() {}
    const _: fn() = _completion_is_send_sync_clone::<DeviceTlbCompletion>;
}
