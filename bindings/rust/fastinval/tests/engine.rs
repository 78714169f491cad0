// The safe wrappers against the real libfastinval.so.
use fastinval::*;

fn leaf(did: u16, pasid: u32, iova: u64, pa: u64) -> IotlbEntry {
    IotlbEntry {
        input_address: iova,
        output_address: pa,
        address_space_id: pasid,
        domain_id: did,
        rights: 3,
        stage: stage::STAGE1,
        granule: 1,
        size_log2: 12,
        ..Default::default()
    }
}

fn small() -> EngineOptions {
    EngineOptions { iotlb_capacity: 256, device_tlb_capacity: 64, config_cache_capacity: 64, kernel: -1 }
}

#[test]
fn version_matches_the_header() {
    assert_eq!(abi_version() >> 16, 0);
    assert!(version_string().starts_with("FastInval "));
}

#[test]
fn fill_lookup_execute_and_drop() {
    let mut e = Engine::new(&small()).unwrap();
    for p in 0..8u64 {
        assert_eq!(e.fill_iotlb(&leaf(1, 2, p << 12, 0x10_0000 + (p << 12))).unwrap(), FillResult::Inserted);
    }
    assert_eq!(e.fill_iotlb(&leaf(1, 2, 0, 0x20_0000)).unwrap(), FillResult::Replaced);
    let bad = IotlbEntry { reserved: 1, ..leaf(1, 2, 0, 0) };
    assert_eq!(e.fill_iotlb(&bad), Err(Error(errno::EINVAL)));
    let t = e.lookup_iotlb(stage::STAGE1, 1, 2, 0x3010).unwrap().unwrap();
    assert_eq!(t.output_address, 0x10_3010);

    let range = Descriptor {
        scope: scope::IOTLB_RANGE,
        flags: scope::MATCH_DOMAIN | scope::MATCH_ADDRESS_SPACE | scope::INCLUDE_GLOBAL,
        stages: stage::FIRST,
        domain_id: 1,
        address_space_id: 2,
        first: 0x2000,
        last: 0x3FFF,
        ..Default::default()
    };
    let invalid = Descriptor { scope: 9, ..Default::default() };
    let mut statuses = [0xEEu8; 2];
    let r = e.execute(&[range, invalid], &mut statuses).unwrap();
    assert_eq!(statuses, [status::OK, status::INVALID]);
    assert_eq!((r.ok, r.invalid, r.first_failure_index), (1, 1, 1));
    for p in 0..8u64 {
        let hit = e.lookup_iotlb(stage::STAGE1, 1, 2, p << 12).unwrap().is_some();
        assert_eq!(hit, !(p == 2 || p == 3), "page {p}");
    }
    assert_eq!(e.counts().unwrap().iotlb_count, 6);
    let mut short = [0u8; 1];
    assert_eq!(e.execute(&[range, range], &mut short), Err(Error(errno::EINVAL)));
}

#[test]
fn fault_plan_times_out_the_first_device_tlb_invalidation() {
    let mut e = Engine::new(&small()).unwrap();
    let entry = DeviceTlbEntry { input_address: 0x1000, output_address: 0x5000, source_id: 0x42, pasid: ADDRESS_SPACE_NONE, rights: 1, size_log2: 12, ..Default::default() };
    e.fill_device_tlb(&entry).unwrap();
    e.set_fault_plan(Some(&FaultPlan { timeout_ordinals: vec![0], ..Default::default() })).unwrap();
    let d = Descriptor { scope: scope::DEVICE_TLB, flags: scope::MATCH_SOURCE, source_id: 0x42, last: u64::MAX, ..Default::default() };
    let mut st = [0u8; 1];
    e.execute(&[d], &mut st).unwrap();
    assert_eq!(st[0], status::TIMED_OUT);
    assert!(e.lookup_device_tlb(0x42, ADDRESS_SPACE_NONE, 0x1000).unwrap().is_some());
    e.set_fault_plan(None).unwrap();
    e.execute(&[d], &mut st).unwrap();
    assert_eq!(st[0], status::OK);
    assert!(e.lookup_device_tlb(0x42, ADDRESS_SPACE_NONE, 0x1000).unwrap().is_none());
}

#[test]
fn config_cache_round_trip() {
    let mut e = Engine::new(&small()).unwrap();
    let c = ConfigEntry { value: 0x1234, source_id: 3, address_space_id: ADDRESS_SPACE_NONE, domain_id: 7, kind: 1, ..Default::default() };
    assert_eq!(e.fill_config(&c).unwrap(), FillResult::Inserted);
    assert_eq!(e.lookup_config(1, 3, ADDRESS_SPACE_NONE).unwrap().unwrap().value, 0x1234);
    assert!(e.lookup_config(4, 3, ADDRESS_SPACE_NONE).unwrap().is_none());
}

#[test]
fn bad_engine_options_are_errors() {
    let o = EngineOptions { kernel: 9, ..small() };
    assert_eq!(Engine::new(&o).unwrap_err(), Error(errno::EINVAL));
}
