"""A client for `fastinval serve` (protocol 1.1, see docs/protocol.md). Standard library only.

    with Client("/run/fastinval.sock") as c:
        unit = c.create_engine(iotlb_capacity=4096)
        c.fill_iotlb(unit, [IotlbEntry(stage=STAGE2, domain_id=1, input_address=0x1000, output_address=0x9000)])
        hit = c.lookup_iotlb(unit, [IotlbQuery(stage=STAGE2, domain_id=1, address=0x1234)])[0]

        ram = GuestRam(64 * 1024)                        # a memfd, mapped shared here too
        vtd = c.create_vtd([Region(0x80000000, ram.size, 0, ram.fd)])
        c.reg_write(vtd, VTD_IQA, 8, 0x80001000)         # events the write caused: in the returned RegWrite

Every reply is checked against the protocol before it is used: its length, type, request id and unit id, its payload
length against its type and counts, every value that has a range and every reserved field. A reply that breaks the
protocol raises ``ProtocolViolation`` and breaks the connection (later calls raise ``ConnectionError`` at once); an
error reply raises ``ProtocolError`` and the connection goes on (a FRAME_ERROR's ``ProtocolError`` breaks it too).
A client serves one call at a time.
"""
import mmap
import os
import socket
import struct
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

PROTOCOL_MAJOR, PROTOCOL_MINOR = 1, 1
HEADER = struct.Struct("<IHHII")  # length, type, status, request_id, unit_id
HEADER_SIZE = 16
REPLY_BIT = 0x8000
FRAME_ERROR = 0xFFFF
FIRST_EVENT, LAST_EVENT = 0x4000, 0x7FFE
DEFAULT_MAX_REPLY_BYTES = 16 * 1024 * 1024 + HEADER_SIZE

HELLO, CREATE, DESTROY = 0x0001, 0x0002, 0x0003
FILL, LOOKUP, EXECUTE, FAULT_PLAN, STATS = 0x0010, 0x0011, 0x0012, 0x0013, 0x0014
REG_READ, REG_WRITE, IOMMUFD_IOCTL = 0x0020, 0x0021, 0x0030

KIND_ENGINE, KIND_IOMMUFD, KIND_VTD, KIND_SMMUV3 = 1, 2, 3, 4
SERVER_SHARED_MEMORY_UNITS = 1
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

# Events (protocol §4.12) and their delivery.
EVENT_VTD_COMPLETION, EVENT_VTD_FAULT = 0x4001, 0x4002
EVENT_SMMU_CMD_SYNC, EVENT_SMMU_GERROR, EVENT_DEVICE_TLB_TIMEOUT = 0x4003, 0x4004, 0x4005
DELIVERY_NONE, DELIVERY_MSI, DELIVERY_WIRED, DELIVERY_WAKE_UP = 0, 1, 2, 3
EVENT_NAMES = {EVENT_VTD_COMPLETION: "VTD_COMPLETION", EVENT_VTD_FAULT: "VTD_FAULT", EVENT_SMMU_CMD_SYNC: "SMMU_CMD_SYNC",
               EVENT_SMMU_GERROR: "SMMU_GERROR", EVENT_DEVICE_TLB_TIMEOUT: "DEVICE_TLB_TIMEOUT"}

# VT-d registers (Intel VT-d specification, chapter 11) and bits.
VTD_VER, VTD_CAP, VTD_ECAP, VTD_GCMD, VTD_GSTS = 0x00, 0x08, 0x10, 0x18, 0x1C
VTD_FSTS, VTD_FECTL, VTD_FEDATA, VTD_FEADDR = 0x34, 0x38, 0x3C, 0x40
VTD_IQH, VTD_IQT, VTD_IQA, VTD_ICS, VTD_IECTL, VTD_IEDATA, VTD_IEADDR, VTD_IQERCD = \
    0x80, 0x88, 0x90, 0x9C, 0xA0, 0xA4, 0xA8, 0xB0
VTD_GCMD_QIE = 1 << 26
VTD_FSTS_IQE, VTD_FSTS_ICE, VTD_FSTS_ITE = 1 << 4, 1 << 5, 1 << 6
VTD_ICS_IWC = 1

# SMMUv3 registers (page 0; Arm IHI 0070) and bits.
SMMU_CR0, SMMU_CR0ACK, SMMU_IRQ_CTRL, SMMU_GERROR, SMMU_GERRORN = 0x20, 0x24, 0x50, 0x60, 0x64
SMMU_CMDQ_BASE, SMMU_CMDQ_PROD, SMMU_CMDQ_CONS = 0x90, 0x98, 0x9C
SMMU_CR0_SMMUEN, SMMU_CR0_CMDQEN = 1, 1 << 3
SMMU_IRQ_GERROR_EN = 1
SMMU_GERROR_CMDQ_ERR = 1

# iommufd ioctl numbers (Linux include/uapi/linux/iommufd.h).
IOMMU_DESTROY, IOMMU_IOAS_ALLOC, IOMMU_HWPT_ALLOC, IOMMU_HWPT_INVALIDATE = 0x3B80, 0x3B81, 0x3B89, 0x3B8D
IOMMU_VIOMMU_ALLOC, IOMMU_VDEVICE_ALLOC, IOMMU_TEST_CMD = 0x3B90, 0x3B91, 0x3BA0

ERRORS = {
    1: "MALFORMED", 2: "UNKNOWN_TYPE", 3: "VERSION", 4: "HELLO_STATE", 5: "UNKNOWN_UNIT", 6: "UNIT_LIMIT",
    7: "INVALID_ARGUMENT", 8: "UNSUPPORTED_KIND", 9: "FRAME_TOO_LARGE", 10: "BAD_LENGTH", 11: "CONNECTION_LIMIT",
    12: "INTERNAL", 13: "BAD_FD", 14: "SHORT_FILE", 15: "OVERLAP", 16: "WRONG_KIND",
}
E_MALFORMED, E_UNKNOWN_TYPE, E_UNKNOWN_UNIT, E_INVALID_ARGUMENT = 1, 2, 5, 7
E_BAD_FD, E_SHORT_FILE, E_OVERLAP, E_WRONG_KIND = 13, 14, 15, 16
_FRAME_ERROR_CODES = (9, 10, 11)
_MAX_REGIONS, _MAX_IOMMUFD_DEVICES = 8, 64


class ProtocolError(Exception):
    """The server answered with an error reply (``code``, ``detail``); after a FRAME_ERROR the connection is broken."""

    def __init__(self, code: int, detail: int, request_type: int):
        self.code, self.detail, self.request_type = code, detail, request_type
        super().__init__(f"{ERRORS.get(code, code)} (detail {detail}) for request type 0x{request_type:04x}")


class ProtocolViolation(ConnectionError):
    """A frame from the server broke docs/protocol.md; the connection is broken."""


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
    flags: int = 0           # the raw flags byte (bit 0: global)

    @staticmethod
    def unpack(b: bytes) -> "LookupResult":
        hit, size, flags, kind, rights, domain, output, base, sid, asid = struct.unpack("<BBBBHHQQII", b)
        return LookupResult(hit == 1, size, bool(flags & 1), kind, rights, domain, output, base, sid, asid, flags)


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
    server_flags: int = 0
    max_events_per_request: int = 0   # 1.1
    max_fds_per_frame: int = 0        # 1.1


@dataclass
class Region:
    """Guest memory shared with a VTD / SMMUV3 unit (``guest_base``: its guest-physical base) or an IOMMUFD unit
    (``guest_base`` must be 0: the server places it): ``length`` bytes of ``fd`` from ``file_offset``."""
    guest_base: int
    length: int
    file_offset: int
    fd: int


@dataclass
class IommufdDevice:
    iommu: int               # 1 VT-d, 2 SMMUv3
    stream_id: int
    ats: bool = False


@dataclass
class IommufdUnit:
    unit: int
    user_addresses: List[int]   # per region, where the server's iommufd context sees it
    device_ids: List[int]       # per device, its dev_id


@dataclass
class Event:
    """A server-initiated event frame (protocol §4.12)."""
    type: int
    unit: int
    address: int
    data: int
    delivery: int
    a: int
    b: int
    c: int

    @property
    def name(self) -> str:
        return EVENT_NAMES.get(self.type, f"0x{self.type:04x}")


@dataclass
class RegWrite:
    """What a REG_WRITE's reply says, and the events that came before it."""
    events: List[Event] = field(default_factory=list)
    sent: int = 0
    dropped: int = 0


@dataclass
class IoctlResult:
    result: int              # 0 or a negative errno
    arg: bytes               # the argument struct as the ioctl left it


class GuestRam:
    """Zeroed guest RAM in a memfd, mapped shared here (``mem``, a writable ``mmap``); pass ``fd`` in a Region."""

    def __init__(self, size: int, name: str = "fastinval-guest-ram"):
        self.size = size
        self.fd = os.memfd_create(name, os.MFD_CLOEXEC)
        try:
            os.ftruncate(self.fd, size)
            self.mem = mmap.mmap(self.fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            os.close(self.fd)
            raise

    def write64(self, offset: int, value: int) -> None:
        struct.pack_into("<Q", self.mem, offset, value)

    def read32(self, offset: int) -> int:
        return struct.unpack_from("<I", self.mem, offset)[0]

    def clear(self) -> None:
        self.mem[:] = bytes(self.size)

    def close(self) -> None:
        self.mem.close()
        os.close(self.fd)

    def __enter__(self) -> "GuestRam":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _violation(what: str) -> ProtocolViolation:
    return ProtocolViolation(f"malformed frame from the server: {what}")


def _zero(body: bytes, start: int, end: int, what: str) -> None:
    if any(body[start:end]):
        raise _violation(f"{what}: reserved bytes {start}..{end - 1} are not zero")


class Client:
    """One connection to a server. Requests are sent one at a time and their replies checked.

    ``minor`` is the highest minor version offered in HELLO (1; 0 gets exactly the 1.0 server). ``sock`` attaches a
    connected socket instead of ``path`` (``hello=False``: HELLO is left to the caller)."""

    def __init__(self, path: Optional[str] = None, timeout: Optional[float] = 10.0, minor: int = PROTOCOL_MINOR,
                 sock: Optional[socket.socket] = None, hello: bool = True,
                 max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES):
        if sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect(path)
            except BaseException:
                sock.close()
                raise
        else:
            sock.settimeout(timeout)
        self._sock = sock
        self._next_id = 1
        self._minor_offered = minor
        self._broken: Optional[str] = None
        self.max_reply_bytes = max_reply_bytes
        self.units = {}                  # unit id -> kind, for the units this connection holds
        self.unknown_events = 0          # event frames of types this client does not know, skipped
        self.limits: Optional[Limits] = None
        self._events: List[Event] = []
        self._reply_unit = 0
        if hello:
            self.hello()

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def broken(self) -> bool:
        return self._broken is not None

    # -- framing ---------------------------------------------------------------------------------------------------
    def _break(self, e: Exception) -> Exception:
        if self._broken is None:
            self._broken = str(e)
        return e

    def _recv_exact(self, n: int) -> bytes:
        chunks, got = [], 0
        while got < n:
            chunk = self._sock.recv(min(n - got, 1 << 20))
            if not chunk:
                raise ConnectionError("the server closed the connection" if got == 0 and not chunks
                                      else "the server closed the connection inside a frame")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _send(self, frame: bytes, fds: Sequence[int]) -> None:
        if fds:
            # The descriptors travel with the frame's first byte (protocol §6.1): one sendmsg, then the rest.
            sent = socket.send_fds(self._sock, [frame], list(fds))
            if sent < len(frame):
                self._sock.sendall(frame[sent:])
        else:
            self._sock.sendall(frame)

    def request(self, msg_type: int, unit_id: int = 0, payload: bytes = b"", fds: Sequence[int] = ()) -> bytes:
        """Sends one request and returns the reply payload after the header checks; raises ProtocolError on an error
        reply and ProtocolViolation on a frame that breaks the protocol. Event frames before the reply are checked
        and kept for the REG_WRITE that caused them."""
        if self._broken is not None:
            raise ConnectionError(f"the connection is broken ({self._broken})")
        if self.limits is not None and HEADER_SIZE + len(payload) > self.limits.max_frame_bytes:
            raise ValueError(f"a {HEADER_SIZE + len(payload)}-byte request is past max_frame_bytes "
                             f"{self.limits.max_frame_bytes}: not sent")
        request_id = self._next_id
        self._next_id = (self._next_id + 1) & 0xFFFFFFFF or 1
        self._events = []
        try:
            self._send(HEADER.pack(HEADER_SIZE + len(payload), msg_type, 0, request_id, unit_id) + payload, fds)
            return self._reply(msg_type, request_id, unit_id)
        except ProtocolError as e:
            if e.code in _FRAME_ERROR_CODES:
                self._break(e)
            raise
        except (OSError, ValueError, struct.error) as e:
            raise self._break(e)

    def _reply(self, msg_type: int, request_id: int, unit_id: int) -> bytes:
        while True:
            length, rtype, status, rid, runit = HEADER.unpack(self._recv_exact(HEADER_SIZE))
            if length < HEADER_SIZE:
                raise _violation(f"frame length {length} is below 16")
            if length > self.max_reply_bytes:
                raise _violation(f"frame length {length} is past the client's limit {self.max_reply_bytes}")
            body = self._recv_exact(length - HEADER_SIZE)
            if FIRST_EVENT <= rtype <= LAST_EVENT:
                self._event(rtype, status, rid, runit, body, msg_type, unit_id)
                continue
            if rtype == FRAME_ERROR:
                if status not in _FRAME_ERROR_CODES or len(body) < 8 or runit != 0 or rid not in (request_id, 0):
                    raise _violation(f"FRAME_ERROR with status {status}, request id {rid}, unit {runit}, "
                                     f"{len(body)} payload bytes")
                _zero(body, 4, 8, "FRAME_ERROR")
                raise ProtocolError(status, struct.unpack_from("<I", body)[0], msg_type)
            if rtype != (msg_type | REPLY_BIT) or rid != request_id:
                raise _violation(f"reply type 0x{rtype:04x} id {rid} to request 0x{msg_type:04x} id {request_id}")
            if status != 0:
                if len(body) < 8 or runit != unit_id or status in _FRAME_ERROR_CODES or status not in ERRORS:
                    raise _violation(f"error reply with status {status}, unit {runit}, {len(body)} payload bytes")
                _zero(body, 4, 8, "error reply")
                if self._events:
                    raise _violation("events before an error reply (a request answered with an error had no effect)")
                raise ProtocolError(status, struct.unpack_from("<I", body)[0], msg_type)
            if msg_type == CREATE:
                if runit == 0 or runit in self.units:
                    raise _violation(f"CREATE reply names unit {runit}, not a new unit")
            elif runit != unit_id:
                raise _violation(f"reply to unit {unit_id} names unit {runit}")
            if msg_type != REG_WRITE and self._events:
                raise _violation("events before the reply of a request that is not a REG_WRITE")
            self._reply_unit = runit
            return body

    def _event(self, rtype: int, status: int, rid: int, runit: int, body: bytes, msg_type: int, unit_id: int) -> None:
        known = self.limits is not None and self.limits.minor >= 1 and rtype in EVENT_NAMES
        if not known:
            self.unknown_events += 1  # a later minor version's event: skipped by its length (protocol §7)
            return
        if status != 0 or rid != 0:
            raise _violation(f"event 0x{rtype:04x} with status {status}, request id {rid}")
        if msg_type != REG_WRITE or runit != unit_id:
            raise _violation(f"event 0x{rtype:04x} of unit {runit} during request 0x{msg_type:04x} on unit {unit_id}: "
                             "events are effects of that unit's register writes")
        if len(body) < 32:
            raise _violation(f"event 0x{rtype:04x} with {len(body)} payload bytes (32)")
        address, data, delivery, a, b, c = struct.unpack_from("<QIB3xIIQ", body)
        _zero(body, 13, 16, "event")
        kind = self.units.get(runit)
        if rtype in (EVENT_VTD_COMPLETION, EVENT_VTD_FAULT):
            good = kind == KIND_VTD and delivery == DELIVERY_MSI
        elif rtype == EVENT_SMMU_CMD_SYNC:
            good = kind == KIND_SMMUV3 and delivery in (DELIVERY_MSI, DELIVERY_WIRED, DELIVERY_WAKE_UP)
        elif rtype == EVENT_SMMU_GERROR:
            good = kind == KIND_SMMUV3 and delivery in (DELIVERY_MSI, DELIVERY_WIRED)
        else:  # EVENT_DEVICE_TLB_TIMEOUT
            good = kind in (KIND_VTD, KIND_SMMUV3) and delivery == DELIVERY_NONE and b == 0 and c == 0
        if not good:
            raise _violation(f"event {EVENT_NAMES[rtype]} with delivery {delivery} from a unit of kind {kind}")
        if delivery != DELIVERY_MSI and (address != 0 or data != 0):
            raise _violation(f"event {EVENT_NAMES[rtype]} not delivered as an MSI carries an MSI address or data")
        if len(self._events) >= self.limits.max_events_per_request:
            raise _violation(f"more than max_events_per_request ({self.limits.max_events_per_request}) events")
        self._events.append(Event(rtype, runit, address, data, delivery, a, b, c))

    @staticmethod
    def _need(body: bytes, n: int, what: str) -> None:
        if len(body) < n:
            raise _violation(f"{what} reply of {len(body)} payload bytes (at least {n})")

    def _checked(self, fn):
        try:
            return fn()
        except (ProtocolViolation, struct.error) as e:
            raise self._break(e if isinstance(e, ProtocolViolation) else _violation(str(e)))

    # -- messages --------------------------------------------------------------------------------------------------
    def hello(self) -> Limits:
        offered = self._minor_offered
        body = self.request(HELLO, 0, struct.pack("<HHI", PROTOCOL_MAJOR, offered, 0))

        def parse() -> Limits:
            self._need(body, 32, "HELLO")
            limits = Limits(*struct.unpack_from("<HHIIIIII", body))
            if limits.major != PROTOCOL_MAJOR or limits.minor > offered:
                raise _violation(f"HELLO agreed on {limits.major}.{limits.minor}, {PROTOCOL_MAJOR}.{offered} was offered")
            _zero(body, 28, 32, "HELLO")
            if limits.max_frame_bytes < HEADER_SIZE + 8 or limits.max_units_per_connection == 0 or \
                    limits.max_outstanding_requests == 0 or limits.max_connections == 0 or limits.max_cache_entries == 0:
                raise _violation("HELLO reply with impossible limits")
            if limits.minor >= 1:
                self._need(body, 40, "HELLO (1.1)")
                limits.max_events_per_request, limits.max_fds_per_frame = struct.unpack_from("<II", body, 32)
                if limits.server_flags & ~SERVER_SHARED_MEMORY_UNITS:
                    raise _violation(f"HELLO server_flags 0x{limits.server_flags:x} has unknown bits")
            elif limits.server_flags != 0:
                raise _violation("HELLO at 1.0 with non-zero server_flags")
            return limits

        self.limits = self._checked(parse)
        return self.limits

    def _create(self, kind: int, capacities: Tuple[int, int, int], options: bytes, fds: Sequence[int]) -> Tuple[int, bytes]:
        payload = struct.pack("<HHIIIII", kind, 0, len(fds), *capacities, len(options)) + options
        body = self.request(CREATE, 0, payload, fds)

        def parse() -> int:
            self._need(body, 8, "CREATE")
            unit, reserved = struct.unpack_from("<II", body)
            if unit != self._reply_unit:
                raise _violation(f"CREATE reply names unit {self._reply_unit} in its header, {unit} in its payload")
            if reserved != 0:
                raise _violation("CREATE reply: reserved bytes 4..7 are not zero")
            return unit

        unit = self._checked(parse)
        self.units[unit] = kind
        return unit, body

    def create_engine(self, iotlb_capacity: int = 0, device_tlb_capacity: int = 0, config_cache_capacity: int = 0) -> int:
        return self._create(KIND_ENGINE, (iotlb_capacity, device_tlb_capacity, config_cache_capacity), b"", ())[0]

    @staticmethod
    def _regions(regions: Sequence[Region]) -> bytes:
        return b"".join(struct.pack("<QQQ", r.guest_base, r.length, r.file_offset) for r in regions)

    def _create_shared(self, kind: int, regions: Sequence[Region], feature_flags: int, params: bytes,
                       capacities: Tuple[int, int, int]) -> int:
        if len(params) != 4:
            raise ValueError("params are 4 bytes")
        options = struct.pack("<II4sI", len(regions), feature_flags, params, 0) + self._regions(regions)
        return self._create(kind, capacities, options, [r.fd for r in regions])[0]

    def create_vtd(self, regions: Sequence[Region], feature_flags: int = 0, params: bytes = bytes(4),
                   capacities: Tuple[int, int, int] = (0, 0, 0)) -> int:
        """A VT-d unit over guest RAM (protocol §6.2); the regions' descriptors go with the frame (SCM_RIGHTS)."""
        return self._create_shared(KIND_VTD, regions, feature_flags, params, capacities)

    def create_smmu(self, regions: Sequence[Region], feature_flags: int = 0, params: bytes = bytes(4),
                    capacities: Tuple[int, int, int] = (0, 0, 0)) -> int:
        """An SMMUv3 unit over guest RAM (protocol §6.2)."""
        return self._create_shared(KIND_SMMUV3, regions, feature_flags, params, capacities)

    def create_iommufd(self, regions: Sequence[Region], devices: Sequence[IommufdDevice] = (), flags: int = 0,
                       engine_kind: int = 1, capacities: Tuple[int, int, int] = (0, 0, 0)) -> IommufdUnit:
        """An iommufd context over user memory (protocol §6.3, §6.4): the regions' user addresses and the devices' ids."""
        options = struct.pack("<IIIB3x", len(regions), flags, len(devices), engine_kind) + self._regions(regions)
        options += b"".join(struct.pack("<BBHI", d.iommu, 1 if d.ats else 0, 0, d.stream_id) for d in devices)
        unit, body = self._create(KIND_IOMMUFD, capacities, options, [r.fd for r in regions])

        def parse() -> IommufdUnit:
            n, m = len(regions), len(devices)
            self._need(body, 8 + 8 * n + 4 * m, "IOMMUFD CREATE")
            addresses = list(struct.unpack_from(f"<{n}Q", body, 8))
            ids = list(struct.unpack_from(f"<{m}I", body, 8 + 8 * n))
            end = 0x10000
            for address, region in zip(addresses, regions):
                if address & 0xFFF or address < end:
                    raise _violation(f"iommufd user address 0x{address:x}: not 4 KiB aligned, ascending from 0x10000 "
                                     "with a guard page between regions")
                end = address + region.length + 0x1000
            return IommufdUnit(unit, addresses, ids)

        try:
            return self._checked(parse)
        except ProtocolViolation:
            self.units.pop(unit, None)
            raise

    def destroy(self, unit: int) -> None:
        self.request(DESTROY, unit)
        self.units.pop(unit, None)

    def _fill(self, unit: int, cache: int, entries: Sequence) -> List[int]:
        payload = struct.pack("<HHI", cache, 0, len(entries)) + b"".join(e.pack() for e in entries)
        body = self.request(FILL, unit, payload)

        def parse() -> List[int]:
            self._need(body, 8, "FILL")
            count, reserved = struct.unpack_from("<II", body)
            if count != len(entries) or reserved != 0 or len(body) < 8 + count:
                raise _violation(f"FILL reply counts {count} results ({len(entries)} entries sent), reserved {reserved}, "
                                 f"{len(body)} payload bytes")
            results = list(body[8:8 + count])
            if any(r > FILL_REJECTED for r in results):
                raise _violation(f"FILL result codes {results} (0..3)")
            return results

        return self._checked(parse)

    def fill_iotlb(self, unit: int, entries: Sequence[IotlbEntry]) -> List[int]:
        return self._fill(unit, CACHE_IOTLB, entries)

    def fill_device_tlb(self, unit: int, entries: Sequence[DeviceTlbEntry]) -> List[int]:
        return self._fill(unit, CACHE_DEVICE_TLB, entries)

    def fill_config(self, unit: int, entries: Sequence[ConfigEntry]) -> List[int]:
        return self._fill(unit, CACHE_CONFIG, entries)

    def _lookup(self, unit: int, cache: int, queries: Sequence) -> List[LookupResult]:
        payload = struct.pack("<HHI", cache, 0, len(queries)) + b"".join(q.pack() for q in queries)
        body = self.request(LOOKUP, unit, payload)

        def parse() -> List[LookupResult]:
            self._need(body, 8, "LOOKUP")
            count, hits = struct.unpack_from("<II", body)
            if count != len(queries) or len(body) < 8 + 32 * count:
                raise _violation(f"LOOKUP reply counts {count} results ({len(queries)} queries sent), "
                                 f"{len(body)} payload bytes")
            results, seen = [], 0
            for i in range(count):
                raw = body[8 + 32 * i:40 + 32 * i]
                if raw[0] > 1:
                    raise _violation(f"LOOKUP result {i}: hit byte {raw[0]} (0 or 1)")
                if raw[0] == 0 and any(raw):
                    raise _violation(f"LOOKUP result {i}: a miss is 32 zero bytes")
                if raw[2] & ~1:
                    raise _violation(f"LOOKUP result {i}: unknown flag bits 0x{raw[2]:x}")
                seen += raw[0]
                results.append(LookupResult.unpack(raw))
            if seen != hits:
                raise _violation(f"LOOKUP reply says {hits} hits, its results hold {seen}")
            return results

        return self._checked(parse)

    def lookup_iotlb(self, unit: int, queries: Sequence[IotlbQuery]) -> List[LookupResult]:
        return self._lookup(unit, CACHE_IOTLB, queries)

    def lookup_device_tlb(self, unit: int, queries: Sequence[DeviceTlbQuery]) -> List[LookupResult]:
        return self._lookup(unit, CACHE_DEVICE_TLB, queries)

    def lookup_config(self, unit: int, queries: Sequence[ConfigQuery]) -> List[LookupResult]:
        return self._lookup(unit, CACHE_CONFIG, queries)

    def execute(self, unit: int, descriptors: Sequence[Descriptor]) -> ExecuteResult:
        payload = struct.pack("<II", len(descriptors), 0) + b"".join(d.pack() for d in descriptors)
        body = self.request(EXECUTE, unit, payload)

        def parse() -> ExecuteResult:
            self._need(body, 24, "EXECUTE")
            ok, timed_out, errors, invalid, first, count = struct.unpack_from("<IIIIiI", body)
            if count != len(descriptors) or len(body) < 24 + count:
                raise _violation(f"EXECUTE reply counts {count} statuses ({len(descriptors)} descriptors sent)")
            statuses = list(body[24:24 + count])
            if any(s > STATUS_INVALID for s in statuses):
                raise _violation(f"EXECUTE statuses {statuses} (0..3)")
            expected_first = next((i for i, s in enumerate(statuses) if s != STATUS_OK), -1)
            counts = [statuses.count(s) for s in (STATUS_OK, STATUS_TIMED_OUT, STATUS_COMPLETION_ERROR, STATUS_INVALID)]
            if [ok, timed_out, errors, invalid] != counts or first != expected_first:
                raise _violation(f"EXECUTE counts {[ok, timed_out, errors, invalid]} and first failure {first} disagree "
                                 f"with the statuses {statuses}")
            return ExecuteResult(ok, timed_out, errors, invalid, first, statuses)

        return self._checked(parse)

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

        def parse() -> dict:
            self._need(body, 64, "STATS")
            names = ["iotlb_capacity", "iotlb_count", "device_tlb_capacity", "device_tlb_count", "config_capacity",
                     "config_count", "device_tlb_invalidations", "requests", "descriptors", "fills", "memory_bytes"]
            s = dict(zip(names, struct.unpack_from("<IIIIIIQQQQQ", body)))
            if s["iotlb_count"] > s["iotlb_capacity"] or s["device_tlb_count"] > s["device_tlb_capacity"] or \
                    s["config_count"] > s["config_capacity"] or s["requests"] == 0:
                raise _violation(f"STATS reply with impossible figures {s}")
            return s

        return self._checked(parse)

    def server_stats(self) -> dict:
        body = self.request(STATS, 0)

        def parse() -> dict:
            self._need(body, 32, "server STATS")
            connections, units, frames, errors = struct.unpack_from("<IIQQ", body)
            _zero(body, 24, 32, "server STATS")
            if connections == 0 or frames == 0:
                raise _violation("server STATS with no connection or no frame (this connection is one)")
            return {"connections": connections, "units": units, "frames": frames, "error_replies": errors}

        return self._checked(parse)

    def reg_read(self, unit: int, offset: int, size: int = 4) -> int:
        """The unit's MMIO read (REG_READ, §4.9)."""
        body = self.request(REG_READ, unit, struct.pack("<IB3x", offset, size))

        def parse() -> int:
            self._need(body, 8, "REG_READ")
            value = struct.unpack_from("<Q", body)[0]
            if size == 4 and value >> 32:
                raise _violation(f"a 4-byte REG_READ returned 0x{value:x}")
            return value

        return self._checked(parse)

    def reg_write(self, unit: int, offset: int, size: int, value: int) -> RegWrite:
        """The unit's MMIO write (REG_WRITE, §4.10), with the events it caused, in arrival order."""
        body = self.request(REG_WRITE, unit, struct.pack("<IB3xQ", offset, size, value))

        def parse() -> RegWrite:
            self._need(body, 8, "REG_WRITE")
            sent, dropped = struct.unpack_from("<II", body)
            if sent != len(self._events):
                raise _violation(f"REG_WRITE reply counts {sent} events, {len(self._events)} came")
            return RegWrite(list(self._events), sent, dropped)

        return self._checked(parse)

    def iommufd_ioctl(self, unit: int, request: int, arg: bytes) -> IoctlResult:
        """An ioctl on the unit's iommufd context (§4.11): the result and the argument struct as it was left."""
        body = self.request(IOMMUFD_IOCTL, unit, struct.pack("<II", request, len(arg)) + bytes(arg))

        def parse() -> IoctlResult:
            self._need(body, 8, "IOMMUFD_IOCTL")
            result, length = struct.unpack_from("<iI", body)
            if length != len(arg) or len(body) < 8 + length or result > 0 or result < -4095:
                raise _violation(f"IOMMUFD_IOCTL reply: result {result}, arg_length {length} ({len(arg)} sent)")
            return IoctlResult(result, body[8:8 + length])

        return self._checked(parse)
