"""A client for `fastinval serve` (protocol 1.0, see docs/protocol.md). Standard library only.

    with Client("/run/fastinval.sock") as c:
        unit = c.create_engine(iotlb_capacity=4096)
        c.fill_iotlb(unit, [IotlbEntry(stage=STAGE2, domain_id=1, input_address=0x1000, output_address=0x9000)])
        hit = c.lookup_iotlb(unit, [IotlbQuery(stage=STAGE2, domain_id=1, address=0x1234)])[0]
"""
import socket
import struct
from dataclasses import dataclass
from typing import List, Optional, Sequence

PROTOCOL_MAJOR, PROTOCOL_MINOR = 1, 0
HEADER = struct.Struct("<IHHII")  # length, type, status, request_id, unit_id
HEADER_SIZE = 16
REPLY_BIT = 0x8000
FRAME_ERROR = 0xFFFF

HELLO, CREATE, DESTROY = 0x0001, 0x0002, 0x0003
FILL, LOOKUP, EXECUTE, FAULT_PLAN, STATS = 0x0010, 0x0011, 0x0012, 0x0013, 0x0014

KIND_ENGINE = 1
CACHE_IOTLB, CACHE_DEVICE_TLB, CACHE_CONFIG = 1, 2, 3
NO_ADDRESS_SPACE = 0xFFFFFFFF

STAGE1, STAGE2, NESTED = 1, 2, 4
STAGES_ALL = STAGE1 | STAGE2 | NESTED
GRANULE_4K, GRANULE_16K, GRANULE_64K = 1, 2, 3
READ, WRITE, EXECUTE_RIGHT, PRIVILEGED = 1, 2, 4, 8

FILL_INSERTED, FILL_REPLACED, FILL_INSERTED_AFTER_EVICTION, FILL_REJECTED = 0, 1, 2, 3

SCOPE_IOTLB, SCOPE_IOTLB_RANGE, SCOPE_DEVICE_TLB, SCOPE_CONFIG = 1, 2, 3, 4
MATCH_DOMAIN, MATCH_ADDRESS_SPACE, INCLUDE_GLOBAL, LEAF_ONLY, MATCH_SOURCE = 1, 2, 4, 8, 16
STATUS_OK, STATUS_TIMED_OUT, STATUS_COMPLETION_ERROR, STATUS_INVALID = 0, 1, 2, 3

ERRORS = {
    1: "MALFORMED", 2: "UNKNOWN_TYPE", 3: "VERSION", 4: "HELLO_STATE", 5: "UNKNOWN_UNIT", 6: "UNIT_LIMIT",
    7: "INVALID_ARGUMENT", 8: "UNSUPPORTED_KIND", 9: "FRAME_TOO_LARGE", 10: "BAD_LENGTH", 11: "CONNECTION_LIMIT",
    12: "INTERNAL",
}


class ProtocolError(Exception):
    """The server answered with an error reply."""

    def __init__(self, code: int, detail: int, request_type: int):
        self.code, self.detail, self.request_type = code, detail, request_type
        super().__init__(f"{ERRORS.get(code, code)} (detail {detail}) for request type 0x{request_type:04x}")


@dataclass
class IotlbEntry:
    stage: int
    domain_id: int
    input_address: int
    output_address: int
    address_space_id: int = NO_ADDRESS_SPACE
    size_log2: int = 12
    rights: int = READ | WRITE
    granule: int = GRANULE_4K
    global_: bool = False
    table: bool = False

    def pack(self) -> bytes:
        flags = (1 if self.global_ else 0) | (2 if self.table else 0)
        return struct.pack("<QQIHHBBBBI", self.input_address, self.output_address, self.address_space_id,
                           self.domain_id, self.rights, self.stage, self.granule, self.size_log2, flags, 0)


@dataclass
class DeviceTlbEntry:
    source_id: int
    input_address: int
    output_address: int
    pasid: int = NO_ADDRESS_SPACE
    size_log2: int = 12
    rights: int = READ | WRITE
    global_: bool = False

    def pack(self) -> bytes:
        return struct.pack("<QQIIHBBI", self.input_address, self.output_address, self.source_id, self.pasid,
                           self.rights, self.size_log2, 1 if self.global_ else 0, 0)


@dataclass
class ConfigEntry:
    kind: int
    source_id: int
    value: int
    address_space_id: int = NO_ADDRESS_SPACE
    domain_id: int = 0

    def pack(self) -> bytes:
        return struct.pack("<QIIHBBIQ", self.value, self.source_id, self.address_space_id, self.domain_id,
                           self.kind, 0, 0, 0)


@dataclass
class IotlbQuery:
    stage: int
    domain_id: int
    address: int
    address_space_id: int = NO_ADDRESS_SPACE
    table_span_log2: int = 0

    def pack(self) -> bytes:
        return struct.pack("<QIHBB16x", self.address, self.address_space_id, self.domain_id, self.stage,
                           self.table_span_log2)


@dataclass
class DeviceTlbQuery:
    source_id: int
    address: int
    pasid: int = NO_ADDRESS_SPACE

    def pack(self) -> bytes:
        return struct.pack("<QII16x", self.address, self.source_id, self.pasid)


@dataclass
class ConfigQuery:
    kind: int
    source_id: int
    address_space_id: int = NO_ADDRESS_SPACE

    def pack(self) -> bytes:
        return struct.pack("<B3xII20x", self.kind, self.source_id, self.address_space_id)


@dataclass
class LookupResult:
    hit: bool
    size_log2: int = 0
    global_: bool = False
    kind: int = 0
    rights: int = 0
    domain_id: int = 0
    output: int = 0          # translated address (IOTLB, device TLB) or value (config)
    input_base: int = 0
    source_id: int = 0
    address_space_id: int = 0

    @staticmethod
    def unpack(b: bytes) -> "LookupResult":
        hit, size, flags, kind, rights, domain, output, base, sid, asid = struct.unpack("<BBBBHHQQII", b)
        return LookupResult(hit == 1, size, bool(flags & 1), kind, rights, domain, output, base, sid, asid)


@dataclass
class Descriptor:
    """The engine's 32-byte InvalidationDescriptor, as is."""
    scope: int
    flags: int = 0
    stages: int = 0
    level_hint: int = 0
    granule_hint: int = 0
    config_kinds: int = 0
    domain_id: int = 0
    address_space_id: int = NO_ADDRESS_SPACE
    source_id: int = 0
    first: int = 0
    last: int = 0

    def pack(self) -> bytes:
        return struct.pack("<BBBBBBHIIQQ", self.scope, self.flags, self.stages, self.level_hint, self.granule_hint,
                           self.config_kinds, self.domain_id, self.address_space_id, self.source_id, self.first,
                           self.last)

    @staticmethod
    def iotlb_range(domain_id: int, first: int, last: int, stages: int = STAGES_ALL) -> "Descriptor":
        """Every entry of the domain (all address spaces, globals too) overlapping [first, last]."""
        return Descriptor(SCOPE_IOTLB_RANGE, MATCH_DOMAIN, stages, domain_id=domain_id, first=first, last=last)

    @staticmethod
    def iotlb_domain(domain_id: int, stages: int = STAGES_ALL) -> "Descriptor":
        return Descriptor(SCOPE_IOTLB, MATCH_DOMAIN, stages, domain_id=domain_id)

    @staticmethod
    def device_tlb(source_id: int, pasid: int = NO_ADDRESS_SPACE, first: int = 0, last: int = 2**64 - 1) -> "Descriptor":
        return Descriptor(SCOPE_DEVICE_TLB, MATCH_SOURCE | MATCH_ADDRESS_SPACE, address_space_id=pasid,
                          source_id=source_id, first=first, last=last)


@dataclass
class ExecuteResult:
    ok: int
    timed_out: int
    completion_errors: int
    invalid: int
    first_failure_index: int
    statuses: List[int]


@dataclass
class Limits:
    major: int
    minor: int
    max_frame_bytes: int
    max_units_per_connection: int
    max_outstanding_requests: int
    max_connections: int
    max_cache_entries: int


class Client:
    """One connection to a server. Requests are sent one at a time and their replies checked."""

    def __init__(self, path: str, timeout: Optional[float] = 10.0):
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        self._sock.connect(path)
        self._next_id = 1
        self.limits = self.hello()

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- framing ---------------------------------------------------------------------------------------------------
    def _recv_exact(self, n: int) -> bytes:
        chunks, got = [], 0
        while got < n:
            chunk = self._sock.recv(n - got)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def request(self, msg_type: int, unit_id: int = 0, payload: bytes = b"") -> bytes:
        """Sends one request and returns the reply payload; raises ProtocolError on an error reply."""
        request_id = self._next_id
        self._next_id = (self._next_id + 1) & 0xFFFFFFFF or 1
        self._sock.sendall(HEADER.pack(HEADER_SIZE + len(payload), msg_type, 0, request_id, unit_id) + payload)
        while True:
            length, rtype, status, rid, _unit = HEADER.unpack(self._recv_exact(HEADER_SIZE))
            if length < HEADER_SIZE:
                raise ConnectionError(f"reply with a bad length {length}")
            body = self._recv_exact(length - HEADER_SIZE)
            if 0x4000 <= rtype <= 0x7FFE:
                continue  # an event frame: 1.0 defines none to act on; skip it by its length
            if rtype == FRAME_ERROR:
                detail = struct.unpack_from("<I", body)[0] if len(body) >= 4 else 0
                raise ProtocolError(status, detail, msg_type)  # the server closes the connection after it
            if rtype != (msg_type | REPLY_BIT) or rid != request_id:
                raise ConnectionError(f"unexpected reply type 0x{rtype:04x} id {rid} to 0x{msg_type:04x} id {request_id}")
            if status != 0:
                detail = struct.unpack_from("<I", body)[0] if len(body) >= 4 else 0
                raise ProtocolError(status, detail, msg_type)
            return body

    # -- messages --------------------------------------------------------------------------------------------------
    def hello(self) -> Limits:
        body = self.request(HELLO, 0, struct.pack("<HHI", PROTOCOL_MAJOR, PROTOCOL_MINOR, 0))
        return Limits(*struct.unpack_from("<HHIIIII", body))

    def create_engine(self, iotlb_capacity: int = 0, device_tlb_capacity: int = 0, config_cache_capacity: int = 0) -> int:
        body = self.request(CREATE, 0, struct.pack("<HHIIIII", KIND_ENGINE, 0, 0, iotlb_capacity,
                                                   device_tlb_capacity, config_cache_capacity, 0))
        return struct.unpack_from("<I", body)[0]

    def destroy(self, unit: int) -> None:
        self.request(DESTROY, unit)

    def _fill(self, unit: int, cache: int, entries: Sequence) -> List[int]:
        payload = struct.pack("<HHI", cache, 0, len(entries)) + b"".join(e.pack() for e in entries)
        body = self.request(FILL, unit, payload)
        count = struct.unpack_from("<I", body)[0]
        return list(body[8:8 + count])

    def fill_iotlb(self, unit: int, entries: Sequence[IotlbEntry]) -> List[int]:
        return self._fill(unit, CACHE_IOTLB, entries)

    def fill_device_tlb(self, unit: int, entries: Sequence[DeviceTlbEntry]) -> List[int]:
        return self._fill(unit, CACHE_DEVICE_TLB, entries)

    def fill_config(self, unit: int, entries: Sequence[ConfigEntry]) -> List[int]:
        return self._fill(unit, CACHE_CONFIG, entries)

    def _lookup(self, unit: int, cache: int, queries: Sequence) -> List[LookupResult]:
        payload = struct.pack("<HHI", cache, 0, len(queries)) + b"".join(q.pack() for q in queries)
        body = self.request(LOOKUP, unit, payload)
        count = struct.unpack_from("<I", body)[0]
        return [LookupResult.unpack(body[8 + 32 * i:40 + 32 * i]) for i in range(count)]

    def lookup_iotlb(self, unit: int, queries: Sequence[IotlbQuery]) -> List[LookupResult]:
        return self._lookup(unit, CACHE_IOTLB, queries)

    def lookup_device_tlb(self, unit: int, queries: Sequence[DeviceTlbQuery]) -> List[LookupResult]:
        return self._lookup(unit, CACHE_DEVICE_TLB, queries)

    def lookup_config(self, unit: int, queries: Sequence[ConfigQuery]) -> List[LookupResult]:
        return self._lookup(unit, CACHE_CONFIG, queries)

    def execute(self, unit: int, descriptors: Sequence[Descriptor]) -> ExecuteResult:
        payload = struct.pack("<II", len(descriptors), 0) + b"".join(d.pack() for d in descriptors)
        body = self.request(EXECUTE, unit, payload)
        ok, timed_out, errors, invalid, first, count = struct.unpack_from("<IIIIiI", body)
        return ExecuteResult(ok, timed_out, errors, invalid, first, list(body[24:24 + count]))

    def set_fault_plan(self, unit: int, seed: int = 0, timeout_per_million: int = 0,
                       completion_error_per_million: int = 0, timeout_sources: Sequence[int] = (),
                       timeout_ordinals: Sequence[int] = (), completion_error_ordinals: Sequence[int] = ()) -> None:
        payload = struct.pack("<QIIIIII", seed, timeout_per_million, completion_error_per_million,
                              len(timeout_sources), len(timeout_ordinals), len(completion_error_ordinals), 0)
        payload += b"".join(struct.pack("<I", s) for s in timeout_sources)
        payload += b"".join(struct.pack("<Q", o) for o in timeout_ordinals)
        payload += b"".join(struct.pack("<Q", o) for o in completion_error_ordinals)
        self.request(FAULT_PLAN, unit, payload)

    def stats(self, unit: int) -> dict:
        body = self.request(STATS, unit)
        names = ["iotlb_capacity", "iotlb_count", "device_tlb_capacity", "device_tlb_count", "config_capacity",
                 "config_count", "device_tlb_invalidations", "requests", "descriptors", "fills", "memory_bytes"]
        return dict(zip(names, struct.unpack_from("<IIIIIIQQQQQ", body)))
