#!/usr/bin/env python3
"""Drives a `fastinval serve` server and checks every reply. Exits 0 when all held, 1 otherwise.

An engine unit: fills, lookups, descriptors, a dead device, figures. A VT-d unit over guest RAM shared as a memfd:
the guest driver's invalidation queue in that memory (mapped here with mmap), the IQT doorbell, the wait's status
write and the completion event; an undefined descriptor's IQE, IQERCD and fault event, and the recovery. An SMMUv3
unit over the same memfd: CMD_SYNC with its MSI written into guest memory, and an illegal command's GERROR. Typed
errors of bad requests. One "ok"/"FAIL" line per check.

    fastinval serve --socket /tmp/fastinval.sock &
    python3 clients/python/example.py --socket /tmp/fastinval.sock
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fastinval as fi  # noqa: E402

failures = 0


def check(what: str, condition: bool) -> None:
    global failures
    print(f"  {'ok  ' if condition else 'FAIL'} {what}")
    if not condition:
        failures += 1


GUEST_BASE = 0x80000000
RAM_BYTES = 64 * 1024
QUEUE_OFFSET = 0x1000    # the queue's page in guest RAM
STATUS_OFFSET = 0x3000   # where waits and CMD_SYNC MSIs write


def engine_round(c: fi.Client) -> None:
    unit = c.create_engine(iotlb_capacity=4096, device_tlb_capacity=1024, config_cache_capacity=256)
    check(f"created engine unit {unit}", unit != 0)

    # A guest maps 16 pages of domain 7 (second stage) and a 2 MiB block; device 0x0100 caches one ATS translation.
    pages = [fi.IotlbEntry(fi.STAGE2, 7, 0x10000 + 0x1000 * i, 0x80000000 + 0x1000 * i) for i in range(16)]
    block = fi.IotlbEntry(fi.STAGE2, 7, 0x40000000, 0xC0000000, size_log2=21)
    results = c.fill_iotlb(unit, pages + [block])
    check("17 IOTLB entries inserted", results == [fi.FILL_INSERTED] * 17)
    bad = fi.IotlbEntry(fi.STAGE2, 7, 0x10001, 0x1000)  # not aligned to its span
    check("a misaligned entry is rejected, not an error", c.fill_iotlb(unit, [bad]) == [fi.FILL_REJECTED])
    check("device-TLB entry inserted",
          c.fill_device_tlb(unit, [fi.DeviceTlbEntry(0x0100, 0x10000, 0x80000000)]) == [fi.FILL_INSERTED])

    hits = c.lookup_iotlb(unit, [fi.IotlbQuery(fi.STAGE2, 7, 0x10234), fi.IotlbQuery(fi.STAGE2, 7, 0x40012345),
                                 fi.IotlbQuery(fi.STAGE2, 8, 0x10234)])
    check("page lookup translates 0x10234 -> 0x80000234", hits[0].hit and hits[0].output == 0x80000234)
    check("block lookup translates 0x40012345 -> 0xc0012345",
          hits[1].hit and hits[1].output == 0xC0012345 and hits[1].size_log2 == 21)
    check("another domain misses", not hits[2].hit)

    # The guest unmaps pages 4..7 and invalidates the device's ATC; a malformed descriptor is reported, not applied.
    result = c.execute(unit, [fi.Descriptor.iotlb_range(7, 0x14000, 0x17FFF), fi.Descriptor.device_tlb(0x0100),
                              fi.Descriptor(scope=99)])
    check("execute: 2 ok, 1 invalid, first failure at 2",
          (result.ok, result.invalid, result.first_failure_index) == (2, 1, 2)
          and result.statuses == [fi.STATUS_OK, fi.STATUS_OK, fi.STATUS_INVALID])
    after = c.lookup_iotlb(unit, [fi.IotlbQuery(fi.STAGE2, 7, 0x10000 + 0x1000 * i) for i in range(16)])
    check("pages 4..7 are gone, the other 12 still hit",
          [r.hit for r in after] == [not (4 <= i <= 7) for i in range(16)])
    check("the device-TLB entry is gone", not c.lookup_device_tlb(unit, [fi.DeviceTlbQuery(0x0100, 0x10000)])[0].hit)

    # A dead device: its invalidation times out and its entry stays.
    c.fill_device_tlb(unit, [fi.DeviceTlbEntry(0x0200, 0x20000, 0x90000000)])
    c.set_fault_plan(unit, timeout_sources=[0x0200])
    result = c.execute(unit, [fi.Descriptor.device_tlb(0x0200)])
    check("dead device times out", result.statuses == [fi.STATUS_TIMED_OUT] and result.timed_out == 1)
    check("its entry stays cached", c.lookup_device_tlb(unit, [fi.DeviceTlbQuery(0x0200, 0x20000)])[0].hit)

    stats = c.stats(unit)
    check(f"stats: {stats['iotlb_count']} IOTLB entries, {stats['descriptors']} descriptors executed",
          stats["iotlb_count"] == 13 and stats["descriptors"] == 4 and stats["iotlb_capacity"] == 4096)

    try:
        c.request(fi.EXECUTE, unit + 1000, b"\0" * 8)
        check("a unit that is not ours is refused", False)
    except fi.ProtocolError as e:
        check("a unit that is not ours is refused with UNKNOWN_UNIT", e.code == 5)
    c.destroy(unit)
    try:
        c.stats(unit)
        check("a destroyed unit is gone", False)
    except fi.ProtocolError as e:
        check("a destroyed unit is gone (UNKNOWN_UNIT)", e.code == 5)


def expect_error(what: str, call, code: int, detail=None) -> None:
    """A request the server must refuse with error `code` (and `detail`); the connection goes on."""
    try:
        call()
        check(f"{what} (no error came)", False)
    except fi.ProtocolError as e:
        check(what, e.code == code and (detail is None or e.detail == detail))


def vtd_descriptor(ram: fi.GuestRam, slot: int, lo: int, hi: int) -> None:
    ram.write64(QUEUE_OFFSET + 16 * slot, lo)
    ram.write64(QUEUE_OFFSET + 16 * slot + 8, hi)


def vtd_round(c: fi.Client, ram: fi.GuestRam) -> None:
    unit = c.create_vtd([fi.Region(GUEST_BASE, RAM_BYTES, 0, ram.fd)])
    check(f"created VT-d unit {unit} over a memfd of guest RAM", unit != 0 and c.units.get(unit) == fi.KIND_VTD)
    check("VER reads 0x60 (VT-d 6.0)", c.reg_read(unit, fi.VTD_VER, 4) == 0x60)

    # The guest driver brings up queued invalidation: event MSIs, the queue base (one page of 128-bit descriptors), QIE.
    c.reg_write(unit, fi.VTD_IEDATA, 4, 0x55)
    c.reg_write(unit, fi.VTD_IEADDR, 4, 0xFEE00000)
    c.reg_write(unit, fi.VTD_IECTL, 4, 0)  # unmask the completion event
    c.reg_write(unit, fi.VTD_FEDATA, 4, 0x77)
    c.reg_write(unit, fi.VTD_FEADDR, 4, 0xFEE01000)
    c.reg_write(unit, fi.VTD_FECTL, 4, 0)  # unmask the fault event
    c.reg_write(unit, fi.VTD_IQA, 8, GUEST_BASE + QUEUE_OFFSET)
    w = c.reg_write(unit, fi.VTD_GCMD, 4, fi.VTD_GCMD_QIE)
    check("GCMD.QIE: queued invalidation on", w.sent == 0 and c.reg_read(unit, fi.VTD_GSTS, 4) & fi.VTD_GCMD_QIE != 0)

    # The host cached a translation of domain 1; the guest invalidates the domain and waits (status write + interrupt).
    check("filled an IOTLB entry of domain 1",
          c.fill_iotlb(unit, [fi.IotlbEntry(fi.STAGE2, 1, 0x4000, 0x9000, rights=fi.READ)]) == [fi.FILL_INSERTED])
    vtd_descriptor(ram, 0, 0x2 | (2 << 4) | (1 << 16), 0)                               # IOTLB, domain-selective, DID 1
    vtd_descriptor(ram, 1, 0x5 | (1 << 4) | (1 << 5) | (0xC0FFEE << 32), GUEST_BASE + STATUS_OFFSET)  # wait: IF, SW
    w = c.reg_write(unit, fi.VTD_IQT, 8, 0x20)  # the doorbell: two descriptors
    check("the wait's status 0xc0ffee landed in the memfd", ram.read32(STATUS_OFFSET) == 0xC0FFEE)
    e = w.events[0] if w.events else None
    check("one completion MSI event (0xfee00000, 0x55, ICS.IWC set)",
          w.sent == 1 and len(w.events) == 1 and e.type == fi.EVENT_VTD_COMPLETION and e.unit == unit
          and e.address == 0xFEE00000 and e.data == 0x55 and e.delivery == fi.DELIVERY_MSI and e.a & fi.VTD_ICS_IWC != 0)
    check("IQH caught up with IQT", c.reg_read(unit, fi.VTD_IQH, 8) == 0x20)
    check("the descriptor in guest memory removed the entry",
          not c.lookup_iotlb(unit, [fi.IotlbQuery(fi.STAGE2, 1, 0x4000)])[0].hit)

    # An undefined descriptor type: IQE, IQERCD.IQEI = 3 (invalid type), the fault MSI; the queue stops at it.
    vtd_descriptor(ram, 2, 0xF, 0)
    w = c.reg_write(unit, fi.VTD_IQT, 8, 0x30)
    check("a bad descriptor sets FSTS.IQE", c.reg_read(unit, fi.VTD_FSTS, 4) & fi.VTD_FSTS_IQE != 0)
    check("IQERCD.IQEI = 3 (invalid descriptor type)", c.reg_read(unit, fi.VTD_IQERCD, 8) & 0xF == 3)
    e = w.events[0] if w.events else None
    check("one fault MSI event (0xfee01000, 0x77, FSTS.IQE set)",
          w.sent == 1 and len(w.events) == 1 and e.type == fi.EVENT_VTD_FAULT and e.address == 0xFEE01000
          and e.data == 0x77 and e.a & fi.VTD_FSTS_IQE != 0)
    check("IQH stays at the bad descriptor", c.reg_read(unit, fi.VTD_IQH, 8) == 0x20)
    # Recovery: the driver replaces it with a wait and clears IQE (RW1C); the queue resumes at IQH.
    vtd_descriptor(ram, 2, 0x5 | (1 << 5) | (2 << 32), GUEST_BASE + STATUS_OFFSET)
    c.reg_write(unit, fi.VTD_FSTS, 4, fi.VTD_FSTS_IQE)
    check("after clearing IQE the queue resumes: status 2 written, IQH = IQT",
          ram.read32(STATUS_OFFSET) == 2 and c.reg_read(unit, fi.VTD_FSTS, 4) & fi.VTD_FSTS_IQE == 0
          and c.reg_read(unit, fi.VTD_IQH, 8) == 0x30)

    # Bad requests get typed errors, and the connection goes on.
    expect_error("REG_READ of size 2: INVALID_ARGUMENT, detail 4 (the size field)",
                 lambda: c.reg_read(unit, fi.VTD_FSTS, 2), fi.E_INVALID_ARGUMENT, 4)
    expect_error("a 4-byte write of a 33-bit value: INVALID_ARGUMENT, detail 12",
                 lambda: c.reg_write(unit, fi.VTD_IQT, 4, 1 << 32), fi.E_INVALID_ARGUMENT, 12)
    expect_error("an iommufd ioctl on a VT-d unit: WRONG_KIND, detail 3",
                 lambda: c.iommufd_ioctl(unit, fi.IOMMU_IOAS_ALLOC, bytes([12]) + bytes(11)), fi.E_WRONG_KIND, fi.KIND_VTD)
    expect_error("overlapping regions: OVERLAP, detail 1",
                 lambda: c.create_vtd([fi.Region(GUEST_BASE, 0x8000, 0, ram.fd),
                                       fi.Region(GUEST_BASE + 0x7000, 0x8000, 0x8000, ram.fd)]), fi.E_OVERLAP, 1)
    expect_error("a region past the file's end: SHORT_FILE",
                 lambda: c.create_vtd([fi.Region(GUEST_BASE, RAM_BYTES, 0x1000, ram.fd)]), fi.E_SHORT_FILE, 0)
    check("the connection still serves after the errors", not c.broken and c.reg_read(unit, fi.VTD_VER, 4) == 0x60)
    c.destroy(unit)
    check("destroyed the VT-d unit", unit not in c.units)


def smmu_round(c: fi.Client, ram: fi.GuestRam) -> None:
    ram.clear()
    unit = c.create_smmu([fi.Region(GUEST_BASE, RAM_BYTES, 0, ram.fd)])
    check(f"created SMMUv3 unit {unit} over a memfd of guest RAM", unit != 0 and c.units.get(unit) == fi.KIND_SMMUV3)
    c.reg_write(unit, fi.SMMU_CMDQ_BASE, 8, (GUEST_BASE + QUEUE_OFFSET) | 8)  # 2^8 commands
    c.reg_write(unit, fi.SMMU_IRQ_CTRL, 4, fi.SMMU_IRQ_GERROR_EN)
    c.reg_write(unit, fi.SMMU_CR0, 4, fi.SMMU_CR0_CMDQEN | fi.SMMU_CR0_SMMUEN)
    check("CR0ACK: command queue and SMMU enabled",
          c.reg_read(unit, fi.SMMU_CR0ACK, 4) == fi.SMMU_CR0_CMDQEN | fi.SMMU_CR0_SMMUEN)

    # Stage-1 entries of VMID 3 are cached; the guest posts CMD_TLBI_NH_ALL(3) and CMD_SYNC with an MSI to its memory.
    check("filled a stage-1 entry of VMID 3, ASID 5",
          c.fill_iotlb(unit, [fi.IotlbEntry(fi.STAGE1, 3, 0x4000, 0x9000, address_space_id=5, rights=fi.READ)])
          == [fi.FILL_INSERTED])
    ram.write64(QUEUE_OFFSET, 0x10 | (3 << 32))  # CMD_TLBI_NH_ALL, VMID 3
    ram.write64(QUEUE_OFFSET + 8, 0)
    ram.write64(QUEUE_OFFSET + 16, 0x46 | (1 << 12) | (3 << 22) | (0xF << 24) | (0xABCD << 32))  # CMD_SYNC, CS=SIG_IRQ
    ram.write64(QUEUE_OFFSET + 24, GUEST_BASE + STATUS_OFFSET)
    w = c.reg_write(unit, fi.SMMU_CMDQ_PROD, 4, 2)
    check("CMD_SYNC's MSI wrote 0xabcd into the memfd", ram.read32(STATUS_OFFSET) == 0xABCD)
    e = w.events[0] if w.events else None
    check("one CMD_SYNC MSI event, CMDQ_CONS = 2",
          w.sent == 1 and len(w.events) == 1 and e.type == fi.EVENT_SMMU_CMD_SYNC and e.delivery == fi.DELIVERY_MSI
          and e.address == GUEST_BASE + STATUS_OFFSET and e.data == 0xABCD and e.a & 0xFFFFF == 2)
    check("CMDQ_CONS consumed both commands", c.reg_read(unit, fi.SMMU_CMDQ_CONS, 4) & 0xFF == 2)
    check("CMD_TLBI_NH_ALL removed the entry",
          not c.lookup_iotlb(unit, [fi.IotlbQuery(fi.STAGE1, 3, 0x4000, address_space_id=5)])[0].hit)

    # An illegal command: CMDQ_ERR with CERROR_ILL, the wired GERROR interrupt (no GERROR MSI configured).
    ram.write64(QUEUE_OFFSET + 32, 0xFF)
    ram.write64(QUEUE_OFFSET + 40, 0)
    w = c.reg_write(unit, fi.SMMU_CMDQ_PROD, 4, 3)
    active = c.reg_read(unit, fi.SMMU_GERROR, 4) ^ c.reg_read(unit, fi.SMMU_GERRORN, 4)
    check("an illegal command: GERROR.CMDQ_ERR active, CMDQ_CONS.ERR = CERROR_ILL",
          active & fi.SMMU_GERROR_CMDQ_ERR != 0 and (c.reg_read(unit, fi.SMMU_CMDQ_CONS, 4) >> 24) & 0x7F == 1)
    e = w.events[0] if w.events else None
    check("one wired GERROR event",
          w.sent == 1 and len(w.events) == 1 and e.type == fi.EVENT_SMMU_GERROR and e.delivery == fi.DELIVERY_WIRED
          and (e.a ^ e.b) & fi.SMMU_GERROR_CMDQ_ERR != 0)
    engine = c.create_engine()
    expect_error("a register read of an engine unit: WRONG_KIND", lambda: c.reg_read(engine, 0, 4), fi.E_WRONG_KIND,
                 fi.KIND_ENGINE)
    c.destroy(unit)
    c.destroy(engine)
    check("destroyed the SMMUv3 and engine units", not c.units)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", required=True, help="the server's socket path")
    args = parser.parse_args()

    with fi.Client(args.socket) as c:
        print(f"connected: protocol {c.limits.major}.{c.limits.minor}, frames up to {c.limits.max_frame_bytes} bytes, "
              f"{c.limits.max_units_per_connection} units per connection")
        check("HELLO agreed on 1.1 with shared-memory units",
              (c.limits.major, c.limits.minor) == (1, 1) and c.limits.server_flags & fi.SERVER_SHARED_MEMORY_UNITS != 0)
        engine_round(c)
        with fi.GuestRam(RAM_BYTES, "fastinval-example-ram") as ram:
            vtd_round(c, ram)
            smmu_round(c, ram)
        check("server stats: no unit of ours left", c.server_stats()["units"] == 0)

    print(f"python example: {'all checks held' if failures == 0 else f'{failures} check(s) FAILED'}")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
