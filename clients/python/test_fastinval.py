#!/usr/bin/env python3
"""Tests of clients/python/fastinval.py against a fake server on a socketpair: the bytes of its requests (descriptors
included), and its strictness with replies — every truncation and every single-byte corruption of good replies is
either refused (an exception) or visible in what the call returns, never silently accepted; oversized lengths, random
garbage, unknown events, a FRAME_ERROR. One "ok"/"FAIL" line per check; exits 0 only when all held.

    python3 clients/python/test_fastinval.py
"""
import os
import random
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fastinval as fi  # noqa: E402

failures = 0
checks = 0


def check(what: str, condition: bool) -> None:
    global failures, checks
    checks += 1
    print(f"  {'ok  ' if condition else 'FAIL'} {what}")
    if not condition:
        failures += 1


def frame(msg_type: int, rid: int, unit: int, payload: bytes, status: int = 0) -> bytes:
    return fi.HEADER.pack(fi.HEADER_SIZE + len(payload), msg_type, status, rid, unit) + payload


def reply(msg_type: int, rid: int, unit: int, payload: bytes, status: int = 0) -> bytes:
    return frame(msg_type | fi.REPLY_BIT, rid, unit, payload, status)


def hello_reply(minor: int = 1) -> bytes:
    payload = struct.pack("<HHIIIIIII", 1, minor, 1 << 20, 16, 64, 64, 1 << 20, 1 if minor else 0, 0)
    if minor >= 1:
        payload += struct.pack("<II", 64, 8)
    return reply(fi.HELLO, 1, 0, payload)


def event(msg_type: int, unit: int, address: int, data: int, delivery: int, a: int, b: int = 0, c: int = 0) -> bytes:
    return frame(msg_type, 0, unit, struct.pack("<QIB3xIIQ", address, data, delivery, a, b, c))


def run(server_bytes: bytes, call, minor: int = 1):
    """Connects a client to a fake server that sends HELLO's reply and then `server_bytes` and closes its side; returns
    ("ok", value) or ("error", code, detail) or ("refused", exception type name)."""
    a, b = socket.socketpair()
    try:
        b.sendall(hello_reply(minor))
        b.sendall(server_bytes)
        b.shutdown(socket.SHUT_WR)
        client = fi.Client(sock=a, minor=minor, timeout=5)
        try:
            return ("ok", call(client), client.unknown_events)
        except fi.ProtocolError as e:
            return ("error", e.code, e.detail)
        except (ConnectionError, OSError) as e:
            return ("refused", type(e).__name__)
    finally:
        a.close()
        b.close()


def strict(name: str, setup: bytes, target: bytes, call, expect: str = "ok") -> None:
    """`call` against `setup` + `target` holds; every truncation of `target` is refused, and every single-byte change
    of it (three values per byte) is refused or changes what the call returns."""
    good = run(setup + target, call)
    check(f"{name}: the good reply gives {'its value' if expect == 'ok' else 'its error'}", good[0] == expect)
    truncations = [n for n in range(len(target)) if run(setup + target[:n], call)[0] != "refused"]
    check(f"{name}: all {len(target)} truncations refused" + (f" (accepted at {truncations[:5]})" if truncations else ""),
          not truncations)
    silent = []
    for i in range(len(target)):
        for x in (0x01, 0x80, 0xFF):
            damaged = bytearray(target)
            damaged[i] ^= x
            result = run(setup + bytes(damaged), call)
            if result == good:
                silent.append((i, x))
    check(f"{name}: all {3 * len(target)} single-byte corruptions refused or visible" +
          (f" (silent at byte, xor {silent[:6]})" if silent else ""), not silent)


def memfd(size: int = 0x10000) -> int:
    fd = os.memfd_create("fastinval-test", os.MFD_CLOEXEC)
    os.ftruncate(fd, size)
    return fd


def main() -> int:
    ram = memfd()
    region = [fi.Region(0x80000000, 0x10000, 0, ram)]

    # -- requests, byte for byte ----------------------------------------------------------------------------------
    a, b = socket.socketpair()
    b.sendall(hello_reply() + reply(fi.CREATE, 2, 9, struct.pack("<II", 9, 0)))
    c = fi.Client(sock=a, timeout=5)
    got = b.recv(24)
    check("HELLO offers 1.1: 18 00 00 00 01 00 00 00 01 00 00 00 00 00 00 00 01 00 01 00 00 00 00 00",
          got == bytes.fromhex("18000000 0100 0000 01000000 00000000 0100 0100 00000000".replace(" ", "")))
    unit = c.create_vtd(region, feature_flags=0x100, params=bytes([39, 0, 0, 0]))
    data, fds, _flags, _addr = socket.recv_fds(b, 1 << 16, 4)
    expected = struct.pack("<IHHII", 16 + 24 + 16 + 24, fi.CREATE, 0, 2, 0) + \
        struct.pack("<HHIIIII", fi.KIND_VTD, 0, 1, 0, 0, 0, 16 + 24) + struct.pack("<IIBBBBI", 1, 0x100, 39, 0, 0, 0, 0) + \
        struct.pack("<QQQ", 0x80000000, 0x10000, 0)
    check("CREATE VTD: the frame byte for byte, one descriptor with its first byte (SCM_RIGHTS)",
          data == expected and len(fds) == 1 and unit == 9 and c.units == {9: fi.KIND_VTD})
    if len(fds) == 1:
        check("the descriptor received is the memfd (same size)", os.fstat(fds[0]).st_size == 0x10000)
        for fd in fds:
            os.close(fd)
    c.close()
    b.close()

    def sent_by(replies: bytes, call) -> bytes:
        """The bytes the client sends for `call` after HELLO (the fake server answers with `replies`)."""
        a, b = socket.socketpair()
        try:
            b.sendall(hello_reply() + replies)
            client = fi.Client(sock=a, timeout=5)
            b.recv(24)
            call(client)
            b.setblocking(False)
            data = b""
            while True:
                try:
                    chunk, fds, _f, _a = socket.recv_fds(b, 1 << 16, 8)
                except BlockingIOError:
                    return data
                for fd in fds:
                    os.close(fd)
                if not chunk:
                    return data
                data += chunk
        finally:
            a.close()
            b.close()

    sent = sent_by(reply(fi.CREATE, 2, 3, struct.pack("<II", 3, 0)) + reply(fi.REG_WRITE, 3, 3, bytes(8)),
                   lambda c: c.reg_write(c.create_vtd(region), fi.VTD_IQT, 8, 0x20))
    check("REG_WRITE: offset, size, 3 reserved bytes, value",
          sent[-32:] == struct.pack("<IHHII", 32, fi.REG_WRITE, 0, 3, 3) + struct.pack("<IB3xQ", 0x88, 8, 0x20))
    sent = sent_by(reply(fi.CREATE, 2, 3, struct.pack("<II", 3, 0)) + reply(fi.REG_READ, 3, 3, bytes(8)),
                   lambda c: c.reg_read(c.create_vtd(region), fi.VTD_FSTS, 4))
    check("REG_READ: offset, size, 3 reserved bytes", sent[-24:] == struct.pack("<IHHII", 24, fi.REG_READ, 0, 3, 3) + struct.pack("<IB3x", 0x34, 4))
    iommufd_reply = reply(fi.CREATE, 2, 6, struct.pack("<IIQI", 6, 0, 0x10000, 1))
    sent = sent_by(iommufd_reply + reply(fi.IOMMUFD_IOCTL, 3, 6, struct.pack("<iI", 0, 12) + bytes(12)),
                   lambda c: c.iommufd_ioctl(c.create_iommufd([fi.Region(0, 0x10000, 0, ram)], [fi.IommufdDevice(2, 0x20, True)],
                                                             flags=1, engine_kind=2).unit, fi.IOMMU_IOAS_ALLOC, struct.pack("<III", 12, 0, 0)))
    create = struct.pack("<IHHII", 16 + 24 + 16 + 24 + 8, fi.CREATE, 0, 2, 0) + struct.pack("<HHIIIII", fi.KIND_IOMMUFD, 0, 1, 0, 0, 0, 48) + \
        struct.pack("<IIIB3x", 1, 1, 1, 2) + struct.pack("<QQQ", 0, 0x10000, 0) + struct.pack("<BBHI", 2, 1, 0, 0x20)
    ioctl = struct.pack("<IHHII", 16 + 8 + 12, fi.IOMMUFD_IOCTL, 0, 3, 6) + struct.pack("<II", 0x3B81, 12) + struct.pack("<III", 12, 0, 0)
    check("CREATE IOMMUFD and IOMMUFD_IOCTL: the frames byte for byte", sent == create + ioctl)

    # -- strictness: every truncation and corruption of the replies of each request type --------------------------
    vtd = reply(fi.CREATE, 2, 3, struct.pack("<II", 3, 0))
    smmu = reply(fi.CREATE, 2, 4, struct.pack("<II", 4, 0))
    engine = reply(fi.CREATE, 2, 5, struct.pack("<II", 5, 0))
    strict("CREATE engine", b"", engine, lambda c: c.create_engine())
    strict("CREATE VTD", b"", vtd, lambda c: c.create_vtd(region))
    iommufd = reply(fi.CREATE, 2, 6, struct.pack("<IIQQII", 6, 0, 0x10000, 0x30000, 1, 2))
    strict("CREATE IOMMUFD (user addresses, device ids)", b"", iommufd,
           lambda c: c.create_iommufd([fi.Region(0, 0x10000, 0, ram), fi.Region(0, 0x1000, 0, ram)],
                                      [fi.IommufdDevice(1, 0x10), fi.IommufdDevice(2, 0x20)]))
    strict("FILL", engine, reply(fi.FILL, 3, 5, struct.pack("<II", 3, 0) + bytes([0, 1, 3])),
           lambda c: c.fill_iotlb(c.create_engine(), [fi.IotlbEntry(fi.STAGE2, 1, 0x1000 * i, 0x9000) for i in range(3)]))
    hit = struct.pack("<BBBBHHQQII", 1, 12, 1, 0, 3, 0, 0x9234, 0x1000, 0, 0)
    strict("LOOKUP", engine, reply(fi.LOOKUP, 3, 5, struct.pack("<II", 2, 1) + hit + bytes(32)),
           lambda c: c.lookup_iotlb(c.create_engine(), [fi.IotlbQuery(fi.STAGE2, 1, 0x1234), fi.IotlbQuery(fi.STAGE2, 1, 0)]))
    strict("EXECUTE", engine, reply(fi.EXECUTE, 3, 5, struct.pack("<IIIIiI", 1, 1, 0, 1, 1, 3) + bytes([0, 3, 1])),
           lambda c: c.execute(c.create_engine(), [fi.Descriptor(fi.SCOPE_IOTLB)] * 3))
    stats = struct.pack("<IIIIIIQQQQQ", 64, 3, 64, 0, 64, 1, 7, 5, 4, 3, 12345)
    strict("STATS", engine, reply(fi.STATS, 3, 5, stats), lambda c: c.stats(c.create_engine()))
    strict("server STATS", b"", reply(fi.STATS, 2, 0, struct.pack("<IIQQQ", 2, 3, 40, 1, 0)), lambda c: c.server_stats())
    strict("REG_READ (4 bytes)", vtd, reply(fi.REG_READ, 3, 3, struct.pack("<Q", 0x60)),
           lambda c: c.reg_read(c.create_vtd(region), fi.VTD_VER, 4))
    completion = event(fi.EVENT_VTD_COMPLETION, 3, 0xFEE00000, 0x55, fi.DELIVERY_MSI, 1, 0)
    strict("REG_WRITE with a completion event", vtd, completion + reply(fi.REG_WRITE, 3, 3, struct.pack("<II", 1, 0)),
           lambda c: c.reg_write(c.create_vtd(region), fi.VTD_IQT, 8, 0x20))
    gerror = event(fi.EVENT_SMMU_GERROR, 4, 0, 0, fi.DELIVERY_WIRED, 1, 0, 0x01000003)
    sync = event(fi.EVENT_SMMU_CMD_SYNC, 4, 0x80003000, 0xABCD, fi.DELIVERY_MSI, 2, 2)
    strict("REG_WRITE with CMD_SYNC and GERROR events", smmu,
           sync + gerror + reply(fi.REG_WRITE, 3, 4, struct.pack("<II", 2, 0)),
           lambda c: c.reg_write(c.create_smmu(region), fi.SMMU_CMDQ_PROD, 4, 3))
    iommufd_one = reply(fi.CREATE, 2, 6, struct.pack("<IIQ", 6, 0, 0x10000))
    strict("IOMMUFD_IOCTL", iommufd_one, reply(fi.IOMMUFD_IOCTL, 3, 6, struct.pack("<iI", 0, 12) + struct.pack("<III", 12, 0, 7)),
           lambda c: c.iommufd_ioctl(c.create_iommufd([fi.Region(0, 0x10000, 0, ram)]).unit, fi.IOMMU_IOAS_ALLOC,
                                     struct.pack("<III", 12, 0, 0)))
    strict("an error reply (UNKNOWN_UNIT)", b"", reply(fi.DESTROY, 2, 77, struct.pack("<II", 0, 0), status=5),
           lambda c: c.destroy(77), expect="error")

    # HELLO's own reply: every truncation and corruption.
    def hello_only(data: bytes):
        a, b = socket.socketpair()
        try:
            b.sendall(data)
            b.shutdown(socket.SHUT_WR)
            try:
                return ("ok", fi.Client(sock=a, timeout=5).limits)
            except fi.ProtocolError as e:
                return ("error", e.code, e.detail)
            except (ConnectionError, OSError) as e:
                return ("refused", type(e).__name__)
        finally:
            a.close()
            b.close()

    good_hello = hello_reply()
    good = hello_only(good_hello)
    check("HELLO reply 1.1: limits, server_flags, max_events_per_request, max_fds_per_frame",
          good[0] == "ok" and (good[1].minor, good[1].server_flags, good[1].max_events_per_request, good[1].max_fds_per_frame) == (1, 1, 64, 8))
    check("HELLO reply: every truncation refused", all(hello_only(good_hello[:n])[0] == "refused" for n in range(len(good_hello))))
    silent = [(i, x) for i in range(len(good_hello)) for x in (0x01, 0x80, 0xFF)
              if hello_only(good_hello[:i] + bytes([good_hello[i] ^ x]) + good_hello[i + 1:]) == good]
    check(f"HELLO reply: every single-byte corruption refused or visible{f' (silent {silent[:6]})' if silent else ''}", not silent)
    check("HELLO agreeing on a minor above the one offered is refused",
          hello_only(reply(fi.HELLO, 1, 0, struct.pack("<HHIIIIIIIII", 1, 2, 1 << 20, 16, 64, 64, 1 << 20, 1, 0, 64, 8)))[0] == "refused")

    # -- hostile frames -------------------------------------------------------------------------------------------
    result = run(fi.HEADER.pack(0xFFFFFFFF, fi.STATS | fi.REPLY_BIT, 0, 2, 0), lambda c: c.server_stats())
    check("a 4 GiB reply length is refused before any body is read (ProtocolViolation)", result == ("refused", "ProtocolViolation"))
    check("a reply length below 16 is refused", run(fi.HEADER.pack(15, fi.STATS | fi.REPLY_BIT, 0, 2, 0), lambda c: c.server_stats())[0] == "refused")
    rng = random.Random(13)
    outcomes = [run(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))), lambda c: c.stats(1))[0] for _ in range(300)]
    check("300 random garbage replies: each refused, none accepted, none hung", all(o == "refused" for o in outcomes))

    # Values in range-checked fields that the byte-corruption property cannot tell from real values.
    cases = {
        "a FILL result code 4": (engine + reply(fi.FILL, 3, 5, struct.pack("<II", 1, 0) + bytes([4])),
                                 lambda c: c.fill_iotlb(c.create_engine(), [fi.IotlbEntry(fi.STAGE2, 1, 0, 0)])),
        "an EXECUTE status 4": (engine + reply(fi.EXECUTE, 3, 5, struct.pack("<IIIIiI", 0, 0, 0, 0, 0, 1) + bytes([4])),
                                lambda c: c.execute(c.create_engine(), [fi.Descriptor(fi.SCOPE_IOTLB)])),
        "a LOOKUP hit byte 2": (engine + reply(fi.LOOKUP, 3, 5, struct.pack("<II", 1, 1) + bytes([2]) + bytes(31)),
                                lambda c: c.lookup_iotlb(c.create_engine(), [fi.IotlbQuery(fi.STAGE2, 1, 0)])),
        "a LOOKUP miss with a non-zero byte": (engine + reply(fi.LOOKUP, 3, 5, struct.pack("<II", 1, 0) + bytes(31) + b"\1"),
                                               lambda c: c.lookup_iotlb(c.create_engine(), [fi.IotlbQuery(fi.STAGE2, 1, 0)])),
        "a 4-byte REG_READ with its high half set": (vtd + reply(fi.REG_READ, 3, 3, struct.pack("<Q", 1 << 32)),
                                                     lambda c: c.reg_read(c.create_vtd(region), 0, 4)),
        "an ioctl result above 0": (iommufd_one + reply(fi.IOMMUFD_IOCTL, 3, 6, struct.pack("<iI", 1, 4) + bytes(4)),
                                    lambda c: c.iommufd_ioctl(c.create_iommufd([fi.Region(0, 0x10000, 0, ram)]).unit, 1, bytes(4))),
        "an ioctl result below -4095": (iommufd_one + reply(fi.IOMMUFD_IOCTL, 3, 6, struct.pack("<iI", -4096, 4) + bytes(4)),
                                        lambda c: c.iommufd_ioctl(c.create_iommufd([fi.Region(0, 0x10000, 0, ram)]).unit, 1, bytes(4))),
        "iommufd user addresses without a guard page": (
            reply(fi.CREATE, 2, 6, struct.pack("<IIQQ", 6, 0, 0x10000, 0x11000)),
            lambda c: c.create_iommufd([fi.Region(0, 0x1000, 0, ram), fi.Region(0, 0x1000, 0, ram)])),
        "a STATS count above its capacity": (engine + reply(fi.STATS, 3, 5, struct.pack("<IIIIIIQQQQQ", 4, 5, 4, 0, 4, 0, 0, 1, 0, 0, 0)),
                                             lambda c: c.stats(c.create_engine())),
        "a CMD_SYNC event wired with an MSI address": (
            smmu + event(fi.EVENT_SMMU_CMD_SYNC, 4, 0x1000, 1, fi.DELIVERY_WIRED, 1) + reply(fi.REG_WRITE, 3, 4, struct.pack("<II", 1, 0)),
            lambda c: c.reg_write(c.create_smmu(region), fi.SMMU_CMDQ_PROD, 4, 1)),
        "a CREATE reply naming a unit the connection holds": (engine + reply(fi.CREATE, 3, 5, struct.pack("<II", 5, 0)),
                                                              lambda c: (c.create_engine(), c.create_engine())),
        "a reply to another request id": (reply(fi.STATS, 7, 0, struct.pack("<IIQQQ", 1, 0, 2, 0, 0)), lambda c: c.server_stats()),
        "an error reply with an unknown code": (reply(fi.STATS, 2, 0, bytes(8), status=99), lambda c: c.server_stats()),
    }
    for what, (data, call) in cases.items():
        result = run(data, call)
        check(f"{what} is refused", result[0] == "refused")

    unknown = frame(0x4100, 0, 5, bytes(32))
    result = run(engine + unknown + reply(fi.FILL, 3, 5, struct.pack("<II", 0, 0)), lambda c: c.fill_iotlb(c.create_engine(), []))
    check("an event type this client does not know is skipped by its length and counted", result == ("ok", [], 1))
    early = event(fi.EVENT_VTD_COMPLETION, 3, 0xFEE00000, 0x55, fi.DELIVERY_MSI, 1)
    result = run(vtd + early + reply(fi.REG_READ, 3, 3, struct.pack("<Q", 0)), lambda c: c.reg_read(c.create_vtd(region), 0))
    check("a VT-d event during a REG_READ (not a register write) is refused", result[0] == "refused")
    result = run(smmu + event(fi.EVENT_VTD_COMPLETION, 4, 0xFEE00000, 0x55, fi.DELIVERY_MSI, 1)
                 + reply(fi.REG_WRITE, 3, 4, struct.pack("<II", 1, 0)), lambda c: c.reg_write(c.create_smmu(region), 0x98, 4, 1))
    check("a VT-d event from an SMMUv3 unit is refused", result[0] == "refused")
    result = run(vtd + reply(fi.REG_WRITE, 3, 3, struct.pack("<II", 1, 0)), lambda c: c.reg_write(c.create_vtd(region), fi.VTD_IQT, 8, 0))
    check("a REG_WRITE reply counting an event that never came is refused", result[0] == "refused")
    many = b"".join([completion] * 65) + reply(fi.REG_WRITE, 3, 3, struct.pack("<II", 65, 0))
    check("more events than max_events_per_request are refused",
          run(vtd + many, lambda c: c.reg_write(c.create_vtd(region), fi.VTD_IQT, 8, 0))[0] == "refused")
    old = run(completion + reply(fi.STATS, 2, 0, struct.pack("<IIQQQ", 1, 0, 2, 0, 0)), lambda c: c.server_stats(), minor=0)
    check("at 1.0 every event type is unknown: skipped and counted", old[0] == "ok" and old[2] == 1)

    # A FRAME_ERROR is a ProtocolError and breaks the connection; later calls fail without sending.
    a, b = socket.socketpair()
    b.sendall(hello_reply() + frame(fi.FRAME_ERROR, 2, 0, struct.pack("<II", 1 << 20, 0), status=9))
    c = fi.Client(sock=a, timeout=5)
    try:
        c.server_stats()
        check("a FRAME_ERROR raises ProtocolError", False)
    except fi.ProtocolError as e:
        check("a FRAME_ERROR raises ProtocolError FRAME_TOO_LARGE with its detail", (e.code, e.detail) == (9, 1 << 20))
    b.recv(1 << 16)
    try:
        c.server_stats()
        check("a broken connection refuses further calls", False)
    except ConnectionError:
        b.setblocking(False)
        try:
            sent = b.recv(1 << 16)
        except BlockingIOError:
            sent = b""
        check("a broken connection refuses further calls without sending anything", sent == b"")
    c.close()
    b.close()

    a, b = socket.socketpair()
    b.sendall(hello_reply())
    c = fi.Client(sock=a, timeout=5)
    b.recv(1 << 16)
    try:
        c.execute(1, [fi.Descriptor(fi.SCOPE_IOTLB)] * ((1 << 20) // 32))
        check("a request past max_frame_bytes is refused", False)
    except ValueError:
        b.setblocking(False)
        try:
            sent = b.recv(1 << 16)
        except BlockingIOError:
            sent = b""
        check("a request past max_frame_bytes is refused before anything is sent", sent == b"" and not c.broken)
    c.close()
    b.close()
    os.close(ram)

    print(f"python client tests: {f'all {checks} checks held' if failures == 0 else f'{failures} of {checks} check(s) FAILED'}")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
