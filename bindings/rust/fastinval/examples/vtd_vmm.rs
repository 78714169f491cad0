//! What a rust-vmm VMM does with an emulated VT-d unit from libfastinval.so: guest RAM is a slice the VMM owns, the
//! unit runs over it, the guest driver's MMIO accesses go to `Unit::read` / `Unit::write`, descriptors are posted to the
//! invalidation queue in guest RAM and the doorbell (IQT) runs them; the wait status comes back in guest RAM, and a
//! device that never answers its device-TLB invalidation shows as ITE in the fault registers until the guest clears it.
//!
//! `native/build.sh`, then
//! `FASTINVAL_LIB_DIR=$PWD/artifacts/native cargo run --offline --manifest-path bindings/rust/fastinval/Cargo.toml --example vtd_vmm`.
//! Exits 0 when every check holds.
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use fastinval::*;

// VT-d registers (Intel VT-d specification, chapter 11).
const GCMD: u32 = 0x18;
const GSTS: u32 = 0x1C;
const FSTS: u32 = 0x34;
const FECTL: u32 = 0x38;
const FEDATA: u32 = 0x3C;
const FEADDR: u32 = 0x40;
const IQH: u32 = 0x80;
const IQT: u32 = 0x88;
const IQA: u32 = 0x90;
const IECTL: u32 = 0xA0;
const IEDATA: u32 = 0xA4;
const IEADDR: u32 = 0xA8;
const IQERCD: u32 = 0xB0;
const QIE: u64 = 1 << 26;
const ITE: u64 = 1 << 6;

const QUEUE_GPA: u64 = 0x10_0000;
const STATUS_GPA: u64 = 0x20_0000;
const NIC: u16 = 0x0300; // 03:00.0, with ATS
const DOMAIN: u16 = 7;

/// The guest driver's side of the queue: 128-bit descriptors in guest RAM and its copy of the tail.
struct Driver<'m, 'a> {
    ram: &'m GuestMemory<'a>,
    tail: u64,
}

impl Driver<'_, '_> {
    fn post(&mut self, lo: u64, hi: u64) {
        let mut d = [0u8; 16];
        d[..8].copy_from_slice(&lo.to_le_bytes());
        d[8..].copy_from_slice(&hi.to_le_bytes());
        self.ram.write(QUEUE_GPA + (self.tail % 256) * 16, &d).expect("queue is in guest RAM");
        self.tail += 1;
    }
    fn iotlb_page(&mut self, did: u16, iova: u64) {
        self.post(0x2 | (3 << 4) | ((did as u64) << 16), iova & !0xFFF);
    }
    fn device_tlb(&mut self, sid: u16, iova: u64) {
        self.post(0x3 | ((sid as u64) << 32), iova & !0xFFF);
    }
    fn wait(&mut self, data: u32) {
        self.post(0x5 | (1 << 4) | (1 << 5) | ((data as u64) << 32), STATUS_GPA);
    }
    fn doorbell(&self, iommu: &Unit) -> Result<()> {
        iommu.write(IQT, 8, (self.tail % 256) * 16)
    }
}

fn run() -> std::result::Result<(), String> {
    let mut guest_ram = vec![0u8; 64 << 20]; // 64 MiB at guest-physical 0
    let mut memory = GuestMemory::new().map_err(|e| e.to_string())?;
    memory.map(0, &mut guest_ram).map_err(|e| e.to_string())?;

    let msis = Arc::new(Mutex::new(Vec::new()));
    let sink = msis.clone();
    let options = VtdOptions {
        fault_plan: Some(FaultPlan { timeout_source_ids: vec![NIC as u32], ..Default::default() }),
        interrupt: Some(Box::new(move |irq| sink.lock().unwrap().push(irq))),
        ..Default::default()
    };
    let mut iommu = Unit::vtd(&memory, options).map_err(|e| e.to_string())?;
    let e = |e: Error| e.to_string();

    // What the VMM's page walks cached: an IOTLB entry of domain 7 and the NIC's ATC entry.
    let entry = IotlbEntry { input_address: 0x400_0000, output_address: 0x123_4000, address_space_id: ADDRESS_SPACE_NONE, domain_id: DOMAIN,
                             rights: 3, stage: stage::STAGE2, granule: 1, size_log2: 12, ..Default::default() };
    let atc = DeviceTlbEntry { input_address: 0x400_0000, output_address: 0x123_4000, source_id: NIC as u32, pasid: ADDRESS_SPACE_NONE,
                               rights: 1, size_log2: 12, ..Default::default() };
    iommu.engine_mut().fill_iotlb(&entry).map_err(e)?;
    iommu.engine_mut().fill_device_tlb(&atc).map_err(e)?;

    // The guest driver enables queued invalidation with unmasked event interrupts.
    for (reg, value) in [(IEDATA, 0x40), (IEADDR, 0xFEE0_0000), (IECTL, 0), (FEDATA, 0x41), (FEADDR, 0xFEE0_0000), (FECTL, 0)] {
        iommu.write(reg, 4, value).map_err(e)?;
    }
    iommu.write(IQA, 8, QUEUE_GPA).map_err(e)?;
    iommu.write(GCMD, 4, QIE).map_err(e)?;
    check(iommu.read(GSTS, 4).map_err(e)? & QIE != 0, "GSTS.QIES")?;

    let mut driver = Driver { ram: &memory, tail: 0 };
    // 1. Unmap a page: IOTLB invalidation and a wait.
    driver.iotlb_page(DOMAIN, 0x400_0000);
    driver.wait(1);
    driver.doorbell(&iommu).map_err(e)?;
    check(memory.read_u32(STATUS_GPA).map_err(e)? == 1, "wait status 1")?;
    check(iommu.read(IQH, 8).map_err(e)? == iommu.read(IQT, 8).map_err(e)?, "queue drained")?;
    check(iommu.engine().lookup_iotlb(stage::STAGE2, DOMAIN, ADDRESS_SPACE_NONE, 0x400_0000).map_err(e)?.is_none(), "IOTLB entry gone")?;
    check(msis.lock().unwrap().as_slice() == [Interrupt::Msi { address: 0xFEE0_0000, data: 0x40 }], "completion MSI")?;

    // 2. The NIC's device TLB: the device never answers. ITE, ITESID, the wait after it aborted.
    driver.device_tlb(NIC, 0x400_0000);
    driver.wait(2);
    driver.doorbell(&iommu).map_err(e)?;
    let fsts = iommu.read(FSTS, 4).map_err(e)?;
    let itesid = (iommu.read(IQERCD, 8).map_err(e)? >> 32) & 0xFFFF;
    check(fsts & ITE != 0, "FSTS.ITE")?;
    check(itesid == NIC as u64, "IQERCD.ITESID is the NIC")?;
    check(memory.read_u32(STATUS_GPA).map_err(e)? == 1, "the aborted wait wrote nothing")?;
    check(msis.lock().unwrap().last() == Some(&Interrupt::Msi { address: 0xFEE0_0000, data: 0x41 }), "fault MSI")?;
    println!("vtd_vmm: FSTS {fsts:#x}, ITESID {itesid:04x} after the NIC's device-TLB invalidation timed out");

    // 3. Recovery: clear ITE, wait again.
    iommu.write(FSTS, 4, ITE).map_err(e)?;
    driver.wait(3);
    driver.doorbell(&iommu).map_err(e)?;
    check(memory.read_u32(STATUS_GPA).map_err(e)? == 3, "wait status 3 after recovery")?;
    check(iommu.read(FSTS, 4).map_err(e)? & ITE == 0, "ITE cleared")?;
    Ok(())
}

fn check(ok: bool, what: &str) -> std::result::Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!("check failed: {what}"))
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => {
            println!("vtd_vmm: ok");
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("vtd_vmm: {msg}");
            ExitCode::FAILURE
        }
    }
}
