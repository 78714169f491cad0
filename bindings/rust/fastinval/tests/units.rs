// The unit wrappers (guest memory, VT-d, SMMUv3, notifiers, state images) against the real libfastinval.so.
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use fastinval::units::{record_source, vtd_flags};
use fastinval::*;

const IQA: u32 = 0x90;
const IQT: u32 = 0x88;
const IQH: u32 = 0x80;
const GCMD: u32 = 0x18;
const FSTS: u32 = 0x34;
const FECTL: u32 = 0x38;
const IECTL: u32 = 0xA0;
const IEADDR: u32 = 0xA8;
const IEDATA: u32 = 0xA4;
const IQERCD: u32 = 0xB0;
const QIE: u64 = 1 << 26;
const QUEUE: u64 = 0x10000;
const STATUS: u64 = 0x20000;

fn desc(mem: &GuestMemory, slot: u64, lo: u64, hi: u64) {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&lo.to_le_bytes());
    b[8..].copy_from_slice(&hi.to_le_bytes());
    mem.write(QUEUE + slot * 16, &b).unwrap();
}

fn wait(data: u32, irq: bool) -> (u64, u64) {
    (0x5 | if irq { 1 << 4 } else { 0 } | (1 << 5) | ((data as u64) << 32), STATUS)
}

fn start(u: &Unit) {
    u.write(IQA, 8, QUEUE).unwrap();
    u.write(GCMD, 4, QIE).unwrap();
}

#[test]
fn guest_memory_maps_slices_and_answers_faults() {
    let mut a = vec![0u8; 4096];
    let mut b = vec![0u8; 4096];
    let mut mem = GuestMemory::new().unwrap();
    mem.map(0x1000, &mut a).unwrap();
    mem.map(0x2000, &mut b).unwrap();
    let data: Vec<u8> = (1..=32).collect();
    mem.write(0x2000 - 16, &data).unwrap(); // spans the two slices
    let mut back = [0u8; 32];
    mem.read(0x2000 - 16, &mut back).unwrap();
    assert_eq!(&back[..], &data[..]);
    assert_eq!(mem.read(0x3000 - 8, &mut back), Err(Error(errno::EFAULT)));
    assert_eq!(mem.unmap(0x5000), Err(Error(errno::ENOENT)));
    mem.unmap(0x2000).unwrap();
    assert_eq!(mem.read(0x2000, &mut back[..4]), Err(Error(errno::EFAULT)));
    drop(mem);
    assert_eq!(a[4096 - 16], 1);
    assert_eq!(b[15], 32);
}

#[test]
fn vtd_queue_runs_from_registers_with_interrupts_and_notifier() {
    let mut ram = vec![0u8; 1 << 20];
    let mut mem = GuestMemory::new().unwrap();
    mem.map(0, &mut ram).unwrap();
    let msis = Arc::new(Mutex::new(Vec::new()));
    let log = msis.clone();
    let mut unit = Unit::vtd(&mem, VtdOptions { interrupt: Some(Box::new(move |i| log.lock().unwrap().push(i))), ..Default::default() }).unwrap();
    let entry = IotlbEntry { input_address: 0x40000, output_address: 0x80000, address_space_id: ADDRESS_SPACE_NONE, domain_id: 5, rights: 3,
                             stage: stage::STAGE2, granule: 1, size_log2: 12, ..Default::default() };
    assert_eq!(unit.engine_mut().fill_iotlb(&entry).unwrap(), FillResult::Inserted);
    let seen = Arc::new(AtomicUsize::new(0));
    let domain = Arc::new(AtomicU32::new(0));
    let (s, d) = (seen.clone(), domain.clone());
    let sub = unit.subscribe(&NotifierFilter::default(), move |records| {
        s.fetch_add(records.len(), Ordering::SeqCst);
        assert_eq!(records[0].source, record_source::VTD_QUEUE);
        d.store(records[0].descriptor.domain_id as u32, Ordering::SeqCst);
    }).unwrap();
    unit.write(IEDATA, 4, 0x40).unwrap();
    unit.write(IEADDR, 4, 0xFEE0_0000).unwrap();
    unit.write(IECTL, 4, 0).unwrap();
    start(&unit);
    desc(&mem, 0, 0x2 | (2 << 4) | (5 << 16), 0); // IOTLB, domain 5
    let (lo, hi) = wait(0x600d, true);
    desc(&mem, 1, lo, hi);
    unit.write(IQT, 8, 32).unwrap();
    assert_eq!(unit.read(IQH, 8).unwrap(), 32);
    assert_eq!(mem.read_u32(STATUS).unwrap(), 0x600d);
    assert!(unit.engine().lookup_iotlb(stage::STAGE2, 5, ADDRESS_SPACE_NONE, 0x40000).unwrap().is_none());
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    assert_eq!(domain.load(Ordering::SeqCst), 5);
    assert_eq!(*msis.lock().unwrap(), vec![Interrupt::Msi { address: 0xFEE0_0000, data: 0x40 }]);
    drop(sub);
    assert_eq!(unit.read(IQH, 2), Err(Error(errno::EINVAL)));
    assert_eq!(unit.read(IQH + 2, 4).unwrap(), 0); // a misaligned guest access reads 0

    // Migration: the image restores into a second unit that continues the queue.
    let image = unit.save_state().unwrap();
    assert_eq!(image.len(), unit.state_size().unwrap());
    let mut short = [0u8; 8];
    assert_eq!(unit.save_state_into(&mut short), Err(Error(errno::ERANGE)));
    let copy = Unit::vtd(&mem, VtdOptions::default()).unwrap();
    assert_eq!(copy.restore_state(&image[..10]), Err(Error(errno::EINVAL)));
    copy.restore_state(&image).unwrap();
    assert_eq!(copy.read(IQH, 8).unwrap(), 32);
    let (lo, hi) = wait(0x2222, false);
    desc(&mem, 2, lo, hi);
    copy.write(IQT, 8, 48).unwrap();
    assert_eq!(mem.read_u32(STATUS).unwrap(), 0x2222);
    copy.reset().unwrap();
    assert_eq!(copy.read(IQA, 8).unwrap(), 0);
}

#[test]
fn vtd_device_tlb_timeout_is_ite_and_recovers() {
    let mut ram = vec![0u8; 1 << 20];
    let mut mem = GuestMemory::new().unwrap();
    mem.map(0, &mut ram).unwrap();
    let plan = FaultPlan { timeout_source_ids: vec![0x100], ..Default::default() };
    let mut unit = Unit::vtd(&mem, VtdOptions { fault_plan: Some(plan), ..Default::default() }).unwrap();
    let atc = DeviceTlbEntry { input_address: 0x7000, output_address: 0x8000, source_id: 0x100, pasid: ADDRESS_SPACE_NONE, rights: 3,
                               size_log2: 12, ..Default::default() };
    unit.engine_mut().fill_device_tlb(&atc).unwrap();
    unit.write(FECTL, 4, 0).unwrap();
    start(&unit);
    desc(&mem, 0, 0x3 | (0x100 << 32), 0x7000);
    let (lo, hi) = wait(7, false);
    desc(&mem, 1, lo, hi);
    unit.write(IQT, 8, 32).unwrap();
    assert_ne!(unit.read(FSTS, 4).unwrap() & (1 << 6), 0); // ITE
    assert_eq!((unit.read(IQERCD, 8).unwrap() >> 32) & 0xFFFF, 0x100);
    assert_eq!(mem.read_u32(STATUS).unwrap(), 0);
    assert!(unit.engine().lookup_device_tlb(0x100, ADDRESS_SPACE_NONE, 0x7000).unwrap().is_some());
    unit.write(FSTS, 4, 1 << 6).unwrap();
    let (lo, hi) = wait(8, false);
    desc(&mem, 2, lo, hi);
    unit.write(IQT, 8, 48).unwrap();
    assert_eq!(mem.read_u32(STATUS).unwrap(), 8);

    // Without device TLBs the same descriptor is an invalid type: IQE.
    let off = Unit::vtd(&mem, VtdOptions { flags: vtd_flags::NO_DEVICE_TLB, ..Default::default() }).unwrap();
    start(&off);
    off.write(IQT, 8, 16).unwrap();
    assert_ne!(off.read(FSTS, 4).unwrap() & (1 << 4), 0);
}

#[test]
fn units_share_a_callers_engine_and_options_are_checked() {
    let mut ram = vec![0u8; 1 << 16];
    let mut mem = GuestMemory::new().unwrap();
    mem.map(0, &mut ram).unwrap();
    let engine = Engine::new(&EngineOptions::default()).unwrap();
    let a = Unit::vtd_on(&mem, &engine, VtdOptions::default()).unwrap();
    let b = Unit::smmu_on(&mem, &engine, SmmuOptions::default()).unwrap();
    assert_eq!(a.engine().counts().unwrap().iotlb_count, b.engine().counts().unwrap().iotlb_count);
    let bad = Unit::vtd_on(&mem, &engine, VtdOptions { engine: Some(EngineOptions::default()), ..Default::default() });
    assert_eq!(bad.err(), Some(Error(errno::EINVAL)));
    assert_eq!(Unit::vtd(&mem, VtdOptions { host_address_width: 20, ..Default::default() }).err(), Some(Error(errno::EINVAL)));
    assert_eq!(Unit::smmu(&mem, SmmuOptions { output_address_bits: 33, ..Default::default() }).err(), Some(Error(errno::EINVAL)));
}

struct Window {
    bytes: Mutex<Vec<u8>>,
}

impl GuestAccess for Window {
    fn read(&self, gpa: u64, dst: &mut [u8]) -> bool {
        let b = self.bytes.lock().unwrap();
        match b.get(gpa as usize..gpa as usize + dst.len()) {
            Some(s) => {
                dst.copy_from_slice(s);
                true
            }
            None => false,
        }
    }

    fn write(&self, gpa: u64, src: &[u8]) -> bool {
        let mut b = self.bytes.lock().unwrap();
        match b.get_mut(gpa as usize..gpa as usize + src.len()) {
            Some(s) => {
                s.copy_from_slice(src);
                true
            }
            None => false,
        }
    }
}

#[test]
fn smmu_over_an_accessor_runs_cmd_sync() {
    let mem = GuestMemory::with_access(Window { bytes: Mutex::new(vec![0u8; 8192]) }).unwrap();
    let irqs = Arc::new(Mutex::new(Vec::new()));
    let log = irqs.clone();
    let smmu = Unit::smmu(&mem, SmmuOptions { interrupt: Some(Box::new(move |i| log.lock().unwrap().push(i))), ..Default::default() }).unwrap();
    let mut cmds = [0u8; 32];
    cmds[..8].copy_from_slice(&0x30u64.to_le_bytes()); // CMD_TLBI_NSNH_ALL
    cmds[16..24].copy_from_slice(&(0x46u64 | (1 << 12) | (0x77 << 32)).to_le_bytes()); // CMD_SYNC, SIG_IRQ, MSI data 0x77
    cmds[24..].copy_from_slice(&0x1800u64.to_le_bytes());
    mem.write(0x1000, &cmds).unwrap();
    smmu.write(0x90, 8, 0x1000 | 4).unwrap(); // CMDQ_BASE, 2^4 entries
    smmu.write(0x20, 4, 1 << 3).unwrap(); // CR0.CMDQEN
    smmu.write(0x98, 4, 2).unwrap(); // CMDQ_PROD
    assert_eq!(smmu.read(0x9C, 4).unwrap(), 2);
    assert_eq!(mem.read_u32(0x1800).unwrap(), 0x77);
    assert_eq!(*irqs.lock().unwrap(), vec![Interrupt::Msi { address: 0x1800, data: 0x77 }, Interrupt::SmmuCommandSync]);
    // Two more commands, posted before the memory handle goes: the unit keeps the accessor and still fetches them.
    let mut more = [0u8; 32];
    more[..8].copy_from_slice(&(0x46u64 | (1 << 12) | (0x78 << 32)).to_le_bytes());
    more[8..16].copy_from_slice(&0x1800u64.to_le_bytes());
    more[16..24].copy_from_slice(&0xFFu64.to_le_bytes()); // an illegal opcode: CERROR_ILL
    mem.write(0x1020, &more).unwrap();
    drop(mem);
    smmu.write(0x98, 4, 4).unwrap();
    let cons = smmu.read(0x9C, 4).unwrap();
    assert_eq!(cons & 0xFFFFF, 3);
    assert_eq!((cons >> 24) & 0x7F, 1);
    assert_eq!(irqs.lock().unwrap()[2], Interrupt::Msi { address: 0x1800, data: 0x78 });
}

#[test]
fn amdvi_command_buffer_runs_with_event_log_interrupts_and_migration() {
    const CMD_BASE: u32 = 0x0008;
    const EVT_BASE: u32 = 0x0010;
    const CONTROL: u32 = 0x0018;
    const EFR: u32 = 0x0030;
    const HEAD: u32 = 0x2000;
    const TAIL: u32 = 0x2008;
    const EVT_TAIL: u32 = 0x2018;
    const STATUS_REG: u32 = 0x2020;
    const CMD: u64 = 0x10000;
    const EVT: u64 = 0x20000;
    const STORE: u64 = 0x30000;
    const LEN_256: u64 = 8 << 56;
    let enable = 1 | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 12); // IommuEn, EventLogEn, EventIntEn, ComWaitIntEn, CmdBufEn
    let put = |mem: &GuestMemory, slot: u64, qw0: u64, qw1: u64| {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&qw0.to_le_bytes());
        b[8..].copy_from_slice(&qw1.to_le_bytes());
        mem.write(CMD + slot * 16, &b).unwrap();
    };
    let read_u64 = |mem: &GuestMemory, gpa: u64| {
        let mut b = [0u8; 8];
        mem.read(gpa, &mut b).unwrap();
        u64::from_le_bytes(b)
    };

    let mut ram = vec![0u8; 1 << 20];
    let mut mem = GuestMemory::new().unwrap();
    mem.map(0, &mut ram).unwrap();
    let irqs = Arc::new(Mutex::new(Vec::new()));
    let log = irqs.clone();
    let mut unit = Unit::amdvi(&mem, AmdViOptions { interrupt: Some(Box::new(move |i| log.lock().unwrap().push(i))), ..Default::default() }).unwrap();
    assert_eq!(unit.read(EFR, 8).unwrap() & (1 << 6), 1 << 6); // IASup
    let entry = IotlbEntry { input_address: 0x5000, output_address: 0x9000, address_space_id: ADDRESS_SPACE_NONE, domain_id: 3, rights: 3,
                             stage: stage::STAGE2, granule: 1, size_log2: 12, ..Default::default() };
    assert_eq!(unit.engine_mut().fill_iotlb(&entry).unwrap(), FillResult::Inserted);
    let sources = Arc::new(Mutex::new(Vec::new()));
    let s = sources.clone();
    let sub = unit.subscribe(&NotifierFilter::default(), move |records| s.lock().unwrap().extend(records.iter().map(|r| r.source))).unwrap();
    unit.write(CMD_BASE, 8, CMD | LEN_256).unwrap();
    unit.write(EVT_BASE, 8, EVT | LEN_256).unwrap();
    unit.write(CONTROL, 8, enable).unwrap();
    put(&mem, 0, (3 << 60) | (3 << 32), 0x5000 | 2); // INVALIDATE_IOMMU_PAGES, domain 3, PDE
    put(&mem, 1, (1 << 60) | STORE | 0b11, 0xABCD); // COMPLETION_WAIT, S and I
    unit.write(TAIL, 4, 32).unwrap();
    assert_eq!(unit.read(HEAD, 8).unwrap(), 32);
    assert_eq!(read_u64(&mem, STORE), 0xABCD);
    assert!(unit.engine().lookup_iotlb(stage::STAGE2, 3, ADDRESS_SPACE_NONE, 0x5000).unwrap().is_none());
    let seen = sources.lock().unwrap().clone();
    assert!(!seen.is_empty() && seen.iter().all(|&s| s == record_source::AMDVI_CMDBUF)); // one command may be several descriptors
    assert_eq!(*irqs.lock().unwrap(), vec![Interrupt::AmdVi]);
    drop(sub);

    // An illegal command: ILLEGAL_COMMAND_ERROR in the event log, the buffer stopped on it.
    put(&mem, 2, 0xF << 60, 0);
    unit.write(TAIL, 4, 48).unwrap();
    assert_eq!(unit.read(HEAD, 8).unwrap(), 32);
    assert_eq!(unit.read(EVT_TAIL, 8).unwrap(), 16);
    assert_eq!(read_u64(&mem, EVT) >> 60, 5);
    assert_eq!(read_u64(&mem, EVT + 8), CMD + 32);
    assert_eq!(irqs.lock().unwrap().len(), 2);
    assert_eq!(unit.read(STATUS_REG, 8).unwrap() & (1 << 4), 0); // CmdBufRun = 0

    // Migration into a second unit, which continues after the guest's restart; then reset.
    let image = unit.save_state().unwrap();
    assert_eq!(image.len(), 144);
    let copy = Unit::amdvi(&mem, AmdViOptions::default()).unwrap();
    let other = Unit::amdvi(&mem, AmdViOptions { flags: units::amdvi_flags::NO_INVALIDATE_ALL, ..Default::default() }).unwrap();
    assert_eq!(other.restore_state(&image), Err(Error(errno::EINVAL))); // another EFR
    copy.restore_state(&image).unwrap();
    assert_eq!(copy.read(HEAD, 8).unwrap(), 32);
    copy.write(CONTROL, 8, enable & !(1 << 12)).unwrap();
    copy.write(HEAD, 4, 48).unwrap();
    copy.write(CONTROL, 8, enable).unwrap();
    put(&mem, 3, (1 << 60) | (STORE + 8) | 1, 0x77);
    copy.write(TAIL, 4, 64).unwrap();
    assert_eq!(read_u64(&mem, STORE + 8), 0x77);
    copy.reset().unwrap();
    assert_eq!(copy.read(CONTROL, 8).unwrap(), 0);
    assert_eq!(copy.read(HEAD, 8).unwrap(), 0);
}
