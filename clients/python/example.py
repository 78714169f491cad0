#!/usr/bin/env python3
"""Drives a `fastinval serve` server: creates an engine unit, fills its caches, looks up, executes descriptors and
checks every reply. Exits 0 when all held, 1 otherwise.

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", required=True, help="the server's socket path")
    args = parser.parse_args()

    with fi.Client(args.socket) as c:
        print(f"connected: protocol {c.limits.major}.{c.limits.minor}, frames up to {c.limits.max_frame_bytes} bytes, "
              f"{c.limits.max_units_per_connection} units per connection")
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

    print(f"python example: {'all checks held' if failures == 0 else f'{failures} check(s) FAILED'}")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
