// The device-TLB sink through the crate against the real libfastinval.so: a VT-d wait held until the VMM answers (from
// another thread, out of order, from inside the callback), the unit's own time-out as ITE, a completion error as ICE,
// stale and forged tickets refused, a panicking sink, and the SMMUv3 CMD_SYNC and AMD-Vi COMPLETION_WAIT held the same way.
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use fastinval::units::record_source;
use fastinval::*;

const IQA: u32 = 0x90;
const IQT: u32 = 0x88;
const IQH: u32 = 0x80;
const GCMD: u32 = 0x18;
const FSTS: u32 = 0x34;
const FECTL: u32 = 0x38;
const IQERCD: u32 = 0xB0;
const QIE: u64 = 1 << 26;
const FSTS_ICE: u64 = 1 << 5;
const FSTS_ITE: u64 = 1 << 6;
const QUEUE: u64 = 0x10000;
const STATUS: u64 = 0x20000;

/// Keeps every request with its completion, for the test to answer; optionally answers from inside `submit`.
#[derive(Default)]
struct Recorder {
    requests: Mutex<Vec<(DeviceTlbRequest, DeviceTlbCompletion)>>,
    answer_inside: Option<DeviceTlbOutcome>,
    inside_result: Mutex<Vec<Result<()>>>,
}

impl DeviceTlbSink for Recorder {
    fn submit(&self, request: &DeviceTlbRequest, completion: DeviceTlbCompletion) {
        assert_eq!(request.ticket(), completion.ticket());
        self.requests.lock().unwrap().push((*request, completion));
        if let Some(outcome) = self.answer_inside {
            self.inside_result.lock().unwrap().push(completion.complete(outcome));
        }
    }
}

impl Recorder {
    fn taken(&self) -> Vec<(DeviceTlbRequest, DeviceTlbCompletion)> {
        self.requests.lock().unwrap().clone()
    }
}

fn put(mem: &GuestMemory, slot: u64, lo: u64, hi: u64) {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&lo.to_le_bytes());
    b[8..].copy_from_slice(&hi.to_le_bytes());
    mem.write(QUEUE + slot * 16, &b).unwrap();
}

/// A device-TLB invalidation (type 3) of one page for requester `sid`.
fn devtlb(mem: &GuestMemory, slot: u64, sid: u16, page: u64) {
    put(mem, slot, 0x3 | ((sid as u64) << 32), page & !0xFFF);
}

/// A wait descriptor writing `data` to STATUS.
fn wait(mem: &GuestMemory, slot: u64, data: u32) {
    put(mem, slot, 0x5 | (1 << 5) | ((data as u64) << 32), STATUS);
}

fn fill(unit: &mut Unit, sid: u32, page: u64) {
    let e = DeviceTlbEntry { input_address: page, output_address: page, source_id: sid, pasid: ADDRESS_SPACE_NONE, rights: 3, size_log2: 12,
                             ..Default::default() };
    assert_eq!(unit.engine_mut().fill_device_tlb(&e).unwrap(), FillResult::Inserted);
}

fn cached(unit: &Unit, sid: u32, page: u64) -> bool {
    unit.engine().lookup_device_tlb(sid, ADDRESS_SPACE_NONE, page).unwrap().is_some()
}

fn vtd<'a>(mem: &GuestMemory<'a>, sink: Arc<Recorder>, timeout: Option<Duration>) -> Unit<'a> {
    let device_tlb = DeviceTlbOptions { sink, timeout, max_outstanding: 0 };
    let unit = Unit::vtd(mem, VtdOptions { device_tlb: Some(device_tlb), ..Default::default() }).unwrap();
    unit.write(FECTL, 4, 0).unwrap();
    unit.write(IQA, 8, QUEUE).unwrap();
    unit.write(GCMD, 4, QIE).unwrap();
    unit
}

/// Answers from a thread of its own and waits for it.
fn answer_elsewhere(completion: DeviceTlbCompletion, outcome: DeviceTlbOutcome) -> Result<()> {
    thread::spawn(move || completion.complete(outcome)).join().unwrap()
}

/// Guest memory with `ram` mapped at guest-physical 0.
fn guest(ram: &mut [u8]) -> GuestMemory<'_> {
    let mut mem = GuestMemory::new().unwrap();
    mem.map(0, ram).unwrap();
    mem
}

#[test]
fn vtd_wait_is_held_until_another_thread_answers() {
    let mut ram = vec![0u8; 1 << 20];
    let mem = guest(&mut ram);
    let sink = Arc::new(Recorder::default());
    let mut unit = vtd(&mem, sink.clone(), None);
    fill(&mut unit, 0x10, 0x4000);
    devtlb(&mem, 0, 0x10, 0x4000);
    wait(&mem, 1, 0x77);
    unit.write(IQT, 8, 2 * 16).unwrap();

    let requests = sink.taken();
    assert_eq!(requests.len(), 1);
    let (request, completion) = requests[0];
    assert_eq!(request.source_id(), 0x10);
    assert_eq!(request.pasid(), ADDRESS_SPACE_NONE);
    assert!(request.first() <= 0x4000 && request.last() >= 0x4FFF);
    assert_eq!(request.descriptor().scope, scope::DEVICE_TLB);
    assert_eq!(request.source(), record_source::VTD_QUEUE);
    assert_eq!(request.index(), 0);
    assert_ne!(request.ticket(), 0);
    assert_eq!(completion.unit(), unit.handle());
    assert_eq!(unit.read(IQH, 8).unwrap(), 16); // on the wait
    assert_eq!(mem.read_u32(STATUS).unwrap(), 0);
    assert!(cached(&unit, 0x10, 0x4000));
    assert_eq!(unit.save_state(), Err(Error(errno::EBUSY)));

    answer_elsewhere(completion, DeviceTlbOutcome::Ok).unwrap();
    assert_eq!(unit.read(IQH, 8).unwrap(), 2 * 16);
    assert_eq!(mem.read_u32(STATUS).unwrap(), 0x77);
    assert!(!cached(&unit, 0x10, 0x4000));
    assert_eq!(unit.read(FSTS, 4).unwrap() & (FSTS_ICE | FSTS_ITE), 0);
    assert!(!unit.save_state().unwrap().is_empty());
}

#[test]
fn vtd_requests_answered_out_of_order_release_the_wait_after_the_last() {
    let mut ram = vec![0u8; 1 << 20];
    let mem = guest(&mut ram);
    let sink = Arc::new(Recorder::default());
    let mut unit = vtd(&mem, sink.clone(), None);
    fill(&mut unit, 0x10, 0x4000);
    fill(&mut unit, 0x20, 0x8000);
    devtlb(&mem, 0, 0x10, 0x4000);
    devtlb(&mem, 1, 0x20, 0x8000);
    wait(&mem, 2, 0x55);
    unit.write(IQT, 8, 3 * 16).unwrap();

    let requests = sink.taken();
    assert_eq!(requests.len(), 2);
    let ((first, first_done), (second, second_done)) = (requests[0], requests[1]);
    assert_eq!((first.source_id(), second.source_id()), (0x10, 0x20)); // queue order
    assert_eq!(second.index(), 1);
    assert_eq!(second.ordinal(), first.ordinal() + 1);
    assert_ne!(first.ticket(), second.ticket());

    answer_elsewhere(second_done, DeviceTlbOutcome::Ok).unwrap();
    assert_eq!(unit.read(IQH, 8).unwrap(), 2 * 16); // still held: the first is unanswered
    assert_eq!(mem.read_u32(STATUS).unwrap(), 0);
    assert!(!cached(&unit, 0x20, 0x8000));
    assert!(cached(&unit, 0x10, 0x4000));
    answer_elsewhere(first_done, DeviceTlbOutcome::Ok).unwrap();
    assert_eq!(unit.read(IQH, 8).unwrap(), 3 * 16);
    assert_eq!(mem.read_u32(STATUS).unwrap(), 0x55);
    assert!(!cached(&unit, 0x10, 0x4000));
}

#[test]
fn vtd_silent_device_times_out_as_ite() {
    let mut ram = vec![0u8; 1 << 20];
    let mem = guest(&mut ram);
    let sink = Arc::new(Recorder::default());
    let mut unit = vtd(&mem, sink.clone(), Some(Duration::from_millis(20)));
    fill(&mut unit, 0x40, 0x4000);
    devtlb(&mem, 0, 0x40, 0x4000);
    wait(&mem, 1, 0x66);
    unit.write(IQT, 8, 2 * 16).unwrap();
    assert_eq!(unit.read(IQH, 8).unwrap(), 16);
    let started = Instant::now();
    while unit.read(FSTS, 4).unwrap() & FSTS_ITE == 0 && started.elapsed() < Duration::from_secs(5) {
        thread::sleep(Duration::from_millis(5));
    }
    assert_ne!(unit.read(FSTS, 4).unwrap() & FSTS_ITE, 0);
    assert_eq!((unit.read(IQERCD, 8).unwrap() >> 32) & 0xFFFF, 0x40); // ITESID
    assert_eq!(unit.read(IQH, 8).unwrap(), 2 * 16); // the wait was aborted
    assert_eq!(mem.read_u32(STATUS).unwrap(), 0);
    assert!(cached(&unit, 0x40, 0x4000)); // a silent device keeps its entries
    let (_, completion) = sink.taken()[0];
    assert_eq!(completion.complete(DeviceTlbOutcome::Ok), Err(Error(errno::ENOENT))); // too late
}

#[test]
fn vtd_timeout_answer_is_ite_at_once() {
    let mut ram = vec![0u8; 1 << 20];
    let mem = guest(&mut ram);
    let sink = Arc::new(Recorder::default());
    let mut unit = vtd(&mem, sink.clone(), None);
    fill(&mut unit, 0x41, 0x4000);
    devtlb(&mem, 0, 0x41, 0x4000);
    wait(&mem, 1, 0x67);
    unit.write(IQT, 8, 2 * 16).unwrap();
    assert_eq!(unit.read(FSTS, 4).unwrap() & FSTS_ITE, 0);
    answer_elsewhere(sink.taken()[0].1, DeviceTlbOutcome::Timeout).unwrap();
    assert_ne!(unit.read(FSTS, 4).unwrap() & FSTS_ITE, 0);
    assert_eq!((unit.read(IQERCD, 8).unwrap() >> 32) & 0xFFFF, 0x41);
    assert_eq!(mem.read_u32(STATUS).unwrap(), 0);
    assert!(cached(&unit, 0x41, 0x4000));
}

#[test]
fn vtd_completion_error_answer_is_ice() {
    let mut ram = vec![0u8; 1 << 20];
    let mem = guest(&mut ram);
    let sink = Arc::new(Recorder::default());
    let mut unit = vtd(&mem, sink.clone(), None);
    fill(&mut unit, 0x30, 0xC000);
    devtlb(&mem, 0, 0x30, 0xC000);
    wait(&mem, 1, 0x99);
    unit.write(IQT, 8, 2 * 16).unwrap();
    answer_elsewhere(sink.taken()[0].1, DeviceTlbOutcome::CompletionError).unwrap();
    let fsts = unit.read(FSTS, 4).unwrap();
    assert_ne!(fsts & FSTS_ICE, 0);
    assert_eq!(fsts & FSTS_ITE, 0);
    assert_eq!((unit.read(IQERCD, 8).unwrap() >> 48) & 0xFFFF, 0x30); // ICESID
    assert_eq!(mem.read_u32(STATUS).unwrap(), 0x99); // the wait completes
    assert!(!cached(&unit, 0x30, 0xC000)); // the device did invalidate
}

#[test]
fn vtd_answer_from_inside_the_callback_completes_within_the_doorbell_write() {
    let mut ram = vec![0u8; 1 << 20];
    let mem = guest(&mut ram);
    let sink = Arc::new(Recorder { answer_inside: Some(DeviceTlbOutcome::Ok), ..Default::default() });
    let mut unit = vtd(&mem, sink.clone(), None);
    fill(&mut unit, 0x50, 0x4000);
    devtlb(&mem, 0, 0x50, 0x4000);
    wait(&mem, 1, 0x44);
    unit.write(IQT, 8, 2 * 16).unwrap();
    assert_eq!(*sink.inside_result.lock().unwrap(), vec![Ok(())]);
    assert_eq!(unit.read(IQH, 8).unwrap(), 2 * 16);
    assert_eq!(mem.read_u32(STATUS).unwrap(), 0x44);
    assert!(!cached(&unit, 0x50, 0x4000));
    assert_eq!(sink.taken()[0].1.complete(DeviceTlbOutcome::Ok), Err(Error(errno::ENOENT))); // answered already
}

#[test]
fn stale_forged_and_orphaned_tickets_are_refused() {
    let mut ram = vec![0u8; 1 << 20];
    let mem = guest(&mut ram);
    let sink = Arc::new(Recorder::default());
    let mut unit = vtd(&mem, sink.clone(), None);
    fill(&mut unit, 0x60, 0x4000);
    devtlb(&mem, 0, 0x60, 0x4000);
    unit.write(IQT, 8, 16).unwrap();
    let (_, completion) = sink.taken()[0];
    assert_eq!(DeviceTlbCompletion::from_raw(unit.handle(), 0).complete(DeviceTlbOutcome::Ok), Err(Error(errno::ENOENT)));
    assert_eq!(DeviceTlbCompletion::from_raw(unit.handle(), !0).complete(DeviceTlbOutcome::Ok), Err(Error(errno::ENOENT)));
    assert_eq!(DeviceTlbCompletion::from_raw(0, completion.ticket()).complete(DeviceTlbOutcome::Ok), Err(Error(errno::EBADF)));
    assert_eq!(DeviceTlbCompletion::from_raw(mem.handle(), completion.ticket()).complete(DeviceTlbOutcome::Ok), Err(Error(errno::EBADF)));
    completion.complete(DeviceTlbOutcome::Ok).unwrap();
    assert_eq!(completion.clone().complete(DeviceTlbOutcome::Ok), Err(Error(errno::ENOENT))); // answered twice

    // A reset drops an unanswered request: its entries go, its ticket is refused.
    fill(&mut unit, 0x61, 0x8000);
    devtlb(&mem, 1, 0x61, 0x8000);
    unit.write(IQT, 8, 2 * 16).unwrap();
    let (_, dropped) = sink.taken()[1];
    unit.reset().unwrap();
    assert!(!cached(&unit, 0x61, 0x8000));
    assert_eq!(dropped.complete(DeviceTlbOutcome::Ok), Err(Error(errno::ENOENT)));

    // A unit without a sink has no tickets; a completion outliving its unit gets EBADF, and the unit let go of the sink.
    let plain = Unit::vtd(&mem, VtdOptions::default()).unwrap();
    assert_eq!(DeviceTlbCompletion::from_raw(plain.handle(), 1).complete(DeviceTlbOutcome::Ok), Err(Error(errno::ENOENT)));
    assert_eq!(Arc::strong_count(&sink), 2);
    drop(unit);
    assert_eq!(Arc::strong_count(&sink), 1);
    assert_eq!(dropped.complete(DeviceTlbOutcome::Ok), Err(Error(errno::EBADF)));
}

#[test]
fn bad_sink_options_are_einval() {
    let mut ram = vec![0u8; 1 << 16];
    let mem = guest(&mut ram);
    for (max, ok) in [(100, false), (8, false), (1 << 17, false), (16, true), (65536, true), (0, true)] {
        let device_tlb = DeviceTlbOptions { max_outstanding: max, ..DeviceTlbOptions::new(Arc::new(Recorder::default())) };
        let r = Unit::vtd(&mem, VtdOptions { device_tlb: Some(device_tlb), ..Default::default() });
        assert_eq!(r.is_ok(), ok, "max_outstanding {max}");
        if !ok {
            assert_eq!(r.err(), Some(Error(errno::EINVAL)));
        }
    }
}

/// A sink that panics: the crate catches it and answers the request as a time-out.
struct Panics(AtomicI32);

impl DeviceTlbSink for Panics {
    fn submit(&self, _: &DeviceTlbRequest, _: DeviceTlbCompletion) {
        self.0.fetch_add(1, Ordering::SeqCst);
        panic!("device model bug");
    }
}

#[test]
fn panicking_sink_is_caught_and_answered_as_a_timeout() {
    let mut ram = vec![0u8; 1 << 20];
    let mem = guest(&mut ram);
    let sink = Arc::new(Panics(AtomicI32::new(0)));
    let device_tlb = DeviceTlbOptions { sink: sink.clone(), timeout: None, max_outstanding: 0 };
    let mut unit = Unit::vtd(&mem, VtdOptions { device_tlb: Some(device_tlb), ..Default::default() }).unwrap();
    unit.write(FECTL, 4, 0).unwrap();
    unit.write(IQA, 8, QUEUE).unwrap();
    unit.write(GCMD, 4, QIE).unwrap();
    fill(&mut unit, 0x70, 0x4000);
    devtlb(&mem, 0, 0x70, 0x4000);
    wait(&mem, 1, 0x11);
    unit.write(IQT, 8, 2 * 16).unwrap();
    assert_eq!(sink.0.load(Ordering::SeqCst), 1);
    assert_ne!(unit.read(FSTS, 4).unwrap() & FSTS_ITE, 0);
    assert_eq!(mem.read_u32(STATUS).unwrap(), 0);
    assert!(unit.save_state().is_ok()); // nothing left unanswered
}

#[test]
fn smmu_cmd_sync_is_held_until_the_atc_invalidation_is_answered() {
    const CR0: u32 = 0x20;
    const CMDQ_BASE: u32 = 0x90;
    const CMDQ_PROD: u32 = 0x98;
    const CMDQ_CONS: u32 = 0x9C;
    const MSI: u64 = 0x30000;
    let mut ram = vec![0u8; 1 << 20];
    let mem = guest(&mut ram);
    let sink = Arc::new(Recorder::default());
    let mut unit = Unit::smmu(&mem, SmmuOptions { device_tlb: Some(DeviceTlbOptions::new(sink.clone())), ..Default::default() }).unwrap();
    unit.write(CMDQ_BASE, 8, QUEUE | 4).unwrap(); // 16 entries
    unit.write(CR0, 4, (1 << 3) | 1).unwrap(); // CMDQEN, SMMUEN
    fill(&mut unit, 0x50, 0x4000);
    put(&mem, 0, 0x40 | (0x50 << 32), (0x4000 >> 12) << 12); // CMD_ATC_INV, StreamID 0x50
    put(&mem, 1, 0x46 | (1 << 12) | (0xABCD << 32), MSI); // CMD_SYNC, SIG_IRQ with an MSI write
    unit.write(CMDQ_PROD, 4, 2).unwrap();
    let requests = sink.taken();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].0.source(), record_source::SMMU_CMDQ);
    assert_eq!(requests[0].0.source_id(), 0x50);
    assert_eq!(unit.read(CMDQ_CONS, 4).unwrap() & 0x1F, 1); // on the CMD_SYNC
    assert_eq!(mem.read_u32(MSI).unwrap(), 0);
    answer_elsewhere(requests[0].1, DeviceTlbOutcome::Ok).unwrap();
    assert_eq!(unit.read(CMDQ_CONS, 4).unwrap() & 0x1F, 2);
    assert_eq!(mem.read_u32(MSI).unwrap(), 0xABCD);
    assert!(!cached(&unit, 0x50, 0x4000));
}

#[test]
fn amdvi_completion_wait_is_held_until_the_iotlb_invalidation_is_answered() {
    const CMD_BASE: u32 = 0x0008;
    const EVT_BASE: u32 = 0x0010;
    const CONTROL: u32 = 0x0018;
    const HEAD: u32 = 0x2000;
    const TAIL: u32 = 0x2008;
    const EVT: u64 = 0x40000;
    const STORE: u64 = 0x30000;
    const LEN_256: u64 = 8 << 56;
    let mut ram = vec![0u8; 1 << 20];
    let mem = guest(&mut ram);
    let sink = Arc::new(Recorder::default());
    let mut unit = Unit::amdvi(&mem, AmdViOptions { device_tlb: Some(DeviceTlbOptions::new(sink.clone())), ..Default::default() }).unwrap();
    unit.write(CMD_BASE, 8, QUEUE | LEN_256).unwrap();
    unit.write(EVT_BASE, 8, EVT | LEN_256).unwrap();
    unit.write(CONTROL, 8, 1 | (1 << 2) | (1 << 12)).unwrap(); // IommuEn, EventLogEn, CmdBufEn
    fill(&mut unit, 0x10, 0x7000);
    put(&mem, 0, (4 << 60) | 0x10, 0x7000); // INVALIDATE_IOTLB_PAGES, device 0x10
    put(&mem, 1, (1 << 60) | STORE | 1, 99); // COMPLETION_WAIT with a store
    unit.write(TAIL, 4, 32).unwrap();
    let requests = sink.taken();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].0.source(), record_source::AMDVI_CMDBUF);
    assert_eq!(requests[0].0.source_id(), 0x10);
    assert_eq!(unit.read(HEAD, 8).unwrap(), 16); // the COMPLETION_WAIT is held
    assert_eq!(mem.read_u32(STORE).unwrap(), 0);
    assert_eq!(unit.save_state(), Err(Error(errno::EBUSY)));
    answer_elsewhere(requests[0].1, DeviceTlbOutcome::Ok).unwrap();
    assert_eq!(unit.read(HEAD, 8).unwrap(), 32);
    assert_eq!(mem.read_u32(STORE).unwrap(), 99);
    assert!(!cached(&unit, 0x10, 0x7000));
    assert!(unit.save_state().is_ok());
}

#[test]
fn dropping_a_unit_while_another_thread_answers_destroys_it_and_releases_the_sink() {
    use std::sync::atomic::{AtomicBool, AtomicU64};
    let mut ram = vec![0u8; 1 << 16];
    let mem = guest(&mut ram);
    let sink = Arc::new(Recorder::default());
    let current = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (c, s) = (current.clone(), stop.clone());
    // Answers a forged ticket of the current unit without pause: each call is in flight on the unit while drop runs.
    let answerer = thread::spawn(move || {
        let mut calls = 0u64;
        while !s.load(Ordering::SeqCst) {
            let _ = DeviceTlbCompletion::from_raw(c.load(Ordering::SeqCst), 1).complete(DeviceTlbOutcome::Ok);
            calls += 1;
        }
        calls
    });
    for _ in 0..200 {
        let unit = vtd(&mem, sink.clone(), None);
        let handle = unit.handle();
        current.store(handle, Ordering::SeqCst);
        thread::yield_now();
        drop(unit);
        assert_eq!(Arc::strong_count(&sink), 1); // destroyed, not leaked
        assert_eq!(DeviceTlbCompletion::from_raw(handle, 1).complete(DeviceTlbOutcome::Ok), Err(Error(errno::EBADF)));
    }
    stop.store(true, Ordering::SeqCst);
    assert!(answerer.join().unwrap() > 0);
}
