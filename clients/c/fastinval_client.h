/* SPDX-License-Identifier: MIT */
/*
 * fastinval_client.h - a C client of `fastinval serve`, the FastInval wire protocol 1.1 (docs/protocol.md).
 *
 * C11 and libc only (plus the struct definitions of fastinval.h, the C ABI header: descriptors, cache entries and the
 * fault plan travel on the wire in exactly those layouts; no symbol of libfastinval.so is used, so a program using this
 * client does not link that library).
 *
 *   struct fic_client *c;
 *   int rc = fic_connect("/run/fastinval.sock", NULL, &c);      // connect + HELLO (version 1.1)
 *   uint32_t unit;
 *   rc = fic_create_engine(c, NULL, &unit);                     // default capacities
 *   ...
 *   fic_close(c);                                               // the server destroys the connection's units
 *
 * RETURN VALUES
 *   Every function that can fail returns an int: 0 (or, where documented, a non-negative count) on success, and on
 *   failure a negative value of one of two kinds:
 *
 *   - a negative errno, for what happened on this side of the socket:
 *       -EINVAL      an argument is wrong (NULL pointer, count out of range, a region without a file descriptor...);
 *                    nothing was sent.
 *       -EMSGSIZE    the request would be larger than the server's max_frame_bytes, or its reply (LOOKUP,
 *                    IOMMUFD_IOCTL) larger than fic_options.max_reply_bytes (nothing was sent); or a frame from the
 *                    server is longer than max_reply_bytes (refused before anything is allocated for it; the
 *                    connection is then broken).
 *       -ENOMEM      an allocation failed; nothing was sent.
 *       -EPROTO      the server sent a frame that breaks the protocol: a length below 16, a reply of another type
 *                    or request id, a payload shorter than its type and counts say, counts or status bytes out of
 *                    range, an event frame outside a register write or of a unit kind that cannot raise it, ...
 *                    (never a crash: every byte is checked before it is used). The connection is broken.
 *       -ECONNRESET  the server closed the connection (possibly in the middle of a frame). Broken.
 *       -ETIMEDOUT   no whole reply within fic_options.timeout_ms. Broken (the reply may still arrive later, so
 *                    the byte stream cannot be trusted).
 *       -EBUSY       a request was made from inside the event handler, on the same client; nothing was sent.
 *       -ENOTCONN    the connection is broken (by any of the above, or a FRAME_ERROR): nothing is sent any more.
 *       other        a socket error (sendmsg, recv, poll) as errno reports it; the connection is broken.
 *
 *   - a typed protocol error, the error reply's status code (docs/protocol.md §5): FIC_ERROR(code), i.e.
 *     -(FIC_ERROR_BASE + code), e.g. FIC_E_UNKNOWN_UNIT. The request had no effect. fic_last_error() gives the code,
 *     its `detail` (the offset of the bad field, a limit, ...) and the request type. The connection goes on, except
 *     after FIC_E_FRAME_TOO_LARGE, FIC_E_BAD_LENGTH and FIC_E_CONNECTION_LIMIT (a FRAME_ERROR reply: the server
 *     closes the connection and this client marks it broken). FIC_ERROR_BASE is above every errno value, so the
 *     two kinds never collide: FIC_IS_PROTOCOL_ERROR(rc) tells them apart. A status code this client does not know
 *     (a later version's) is a typed error too.
 *
 *   fic_strerror() names any of these values.
 *
 * THREADING
 *   A struct fic_client is not thread-safe: one request at a time. Calls on one client must not overlap (serialize
 *   them with a lock of your own if several threads share a connection); different clients are independent and may
 *   be used from different threads at once. The event handler runs on the thread that made the call, inside that
 *   call, before the call returns; it must not make requests on the same client (such a call returns -EBUSY); the
 *   read-only functions (fic_limits, fic_last_error, fic_unit_kind...) may be called from it.
 *
 * LIFETIME
 *   fic_connect / fic_attach_fd create a client; fic_close frees it and closes its socket; the server then destroys
 *   every unit the connection held and unmaps their shared memory. Unit ids belong to the connection that created
 *   them. Pointers passed to a function are used only during the call (nothing is retained), except the event
 *   handler's `user` pointer, kept until replaced. File descriptors passed to a CREATE stay the caller's: the client
 *   never closes them, and once the call returned (success or not) the caller may close them; the server keeps its
 *   own mapping of the memory. The pointer fic_limits() returns lives as long as the client.
 *
 * EVENTS
 *   A VT-d or SMMUv3 unit raises interrupts while it handles a register write (fic_reg_write); the server sends each
 *   as an event frame before the write's reply. The client checks each one and either passes it to the handler set
 *   with fic_set_event_handler (at once, in order) or, without a handler, queues it (up to
 *   fic_options.event_queue_capacity; further ones are counted in fic_events_dropped) for fic_poll_event. An event
 *   frame is checked like a reply: its length, status 0, request id 0, the unit of the register write that caused it,
 *   a type that unit's kind raises, its delivery value, and the write's reply counting exactly the events received
 *   (anything else is -EPROTO). Event types this client does not know (0x4000-0x7FFE) are skipped by their length,
 *   as the protocol says, and counted in fic_unknown_events.
 *
 * Requests are sent one at a time, with no pipelining; integers on the wire are little-endian whatever the host's
 * byte order (this client encodes every field itself).
 */
#ifndef FASTINVAL_CLIENT_H
#define FASTINVAL_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "fastinval.h" /* struct fastinval_descriptor, _iotlb_entry, _devtlb_entry, _config_entry, _fault_plan */

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Protocol numbers (docs/protocol.md §3, §5) ------------------------------------------------------------ */

#define FIC_PROTOCOL_MAJOR 1
#define FIC_PROTOCOL_MINOR 1 /* the highest minor version this client speaks */

#define FIC_HEADER_SIZE 16u
#define FIC_REPLY_BIT 0x8000u

enum fic_message_type {
    FIC_HELLO = 0x0001,
    FIC_CREATE = 0x0002,
    FIC_DESTROY = 0x0003,
    FIC_FILL = 0x0010,
    FIC_LOOKUP = 0x0011,
    FIC_EXECUTE = 0x0012,
    FIC_FAULT_PLAN = 0x0013,
    FIC_STATS = 0x0014,
    FIC_REG_READ = 0x0020,
    FIC_REG_WRITE = 0x0021,
    FIC_IOMMUFD_IOCTL = 0x0030,
    FIC_EVENT_VTD_COMPLETION = 0x4001,
    FIC_EVENT_VTD_FAULT = 0x4002,
    FIC_EVENT_SMMU_CMD_SYNC = 0x4003,
    FIC_EVENT_SMMU_GERROR = 0x4004,
    FIC_EVENT_DEVICE_TLB_TIMEOUT = 0x4005,
    FIC_FRAME_ERROR = 0xFFFF
};
#define FIC_FIRST_EVENT 0x4000u
#define FIC_LAST_EVENT 0x7FFEu

/* The status codes of error replies. */
enum fic_status {
    FIC_STATUS_MALFORMED = 1,
    FIC_STATUS_UNKNOWN_TYPE = 2,
    FIC_STATUS_VERSION = 3,
    FIC_STATUS_HELLO_STATE = 4,
    FIC_STATUS_UNKNOWN_UNIT = 5,
    FIC_STATUS_UNIT_LIMIT = 6,
    FIC_STATUS_INVALID_ARGUMENT = 7,
    FIC_STATUS_UNSUPPORTED_KIND = 8,
    FIC_STATUS_FRAME_TOO_LARGE = 9,
    FIC_STATUS_BAD_LENGTH = 10,
    FIC_STATUS_CONNECTION_LIMIT = 11,
    FIC_STATUS_INTERNAL = 12,
    FIC_STATUS_BAD_FD = 13,
    FIC_STATUS_SHORT_FILE = 14,
    FIC_STATUS_OVERLAP = 15,
    FIC_STATUS_WRONG_KIND = 16
};

/* Typed errors as return values: FIC_ERROR(status). */
#define FIC_ERROR_BASE 0x10000
#define FIC_ERROR(status) (-(FIC_ERROR_BASE + (int)(status)))
#define FIC_IS_PROTOCOL_ERROR(rc) ((rc) <= -FIC_ERROR_BASE - 1 && (rc) >= -FIC_ERROR_BASE - 0xFFFF)
#define FIC_PROTOCOL_STATUS(rc) ((uint16_t)(-(rc) - FIC_ERROR_BASE))
#define FIC_E_MALFORMED FIC_ERROR(FIC_STATUS_MALFORMED)
#define FIC_E_UNKNOWN_TYPE FIC_ERROR(FIC_STATUS_UNKNOWN_TYPE)
#define FIC_E_VERSION FIC_ERROR(FIC_STATUS_VERSION)
#define FIC_E_HELLO_STATE FIC_ERROR(FIC_STATUS_HELLO_STATE)
#define FIC_E_UNKNOWN_UNIT FIC_ERROR(FIC_STATUS_UNKNOWN_UNIT)
#define FIC_E_UNIT_LIMIT FIC_ERROR(FIC_STATUS_UNIT_LIMIT)
#define FIC_E_INVALID_ARGUMENT FIC_ERROR(FIC_STATUS_INVALID_ARGUMENT)
#define FIC_E_UNSUPPORTED_KIND FIC_ERROR(FIC_STATUS_UNSUPPORTED_KIND)
#define FIC_E_FRAME_TOO_LARGE FIC_ERROR(FIC_STATUS_FRAME_TOO_LARGE)
#define FIC_E_BAD_LENGTH FIC_ERROR(FIC_STATUS_BAD_LENGTH)
#define FIC_E_CONNECTION_LIMIT FIC_ERROR(FIC_STATUS_CONNECTION_LIMIT)
#define FIC_E_INTERNAL FIC_ERROR(FIC_STATUS_INTERNAL)
#define FIC_E_BAD_FD FIC_ERROR(FIC_STATUS_BAD_FD)
#define FIC_E_SHORT_FILE FIC_ERROR(FIC_STATUS_SHORT_FILE)
#define FIC_E_OVERLAP FIC_ERROR(FIC_STATUS_OVERLAP)
#define FIC_E_WRONG_KIND FIC_ERROR(FIC_STATUS_WRONG_KIND)

/* Unit kinds of CREATE. */
enum fic_unit_kind { FIC_KIND_ENGINE = 1, FIC_KIND_IOMMUFD = 2, FIC_KIND_VTD = 3, FIC_KIND_SMMUV3 = 4 };

/* Cache selectors of FILL and LOOKUP. */
enum fic_cache { FIC_CACHE_IOTLB = 1, FIC_CACHE_DEVICE_TLB = 2, FIC_CACHE_CONFIG = 3 };

/* Event delivery (struct fic_event.delivery). */
enum fic_delivery { FIC_DELIVERY_NONE = 0, FIC_DELIVERY_MSI = 1, FIC_DELIVERY_WIRED = 2, FIC_DELIVERY_WAKE_UP = 3 };

/* HELLO server_flags bit 0: VT-d, SMMUv3 and iommufd units over shared memory are served. */
#define FIC_SERVER_SHARED_MEMORY_UNITS 0x1u

/* Most regions of one CREATE, most devices of an iommufd CREATE. */
#define FIC_MAX_REGIONS 8u
#define FIC_MAX_IOMMUFD_DEVICES 64u

/* ---- Connecting ---------------------------------------------------------------------------------------------- */

/* fic_options.flags */
#define FIC_CONNECT_NO_HELLO 0x1u /* do not send HELLO (call fic_hello yourself; for tests of the server's rules) */

/*
 * struct fic_options - how to connect. size must be sizeof(struct fic_options); a zeroed struct with size set (or a
 * NULL pointer) gives the defaults.
 */
struct fic_options {
    uint32_t size;
    uint32_t flags;                /* FIC_CONNECT_* */
    uint16_t minor;                /* with FIC_CONNECT_MINOR: the minor version HELLO offers (0 = 1.0) */
    uint16_t reserved;             /* must be 0 */
    int32_t timeout_ms;            /* wait for a reply at most this long; 0 = default 10,000; < 0 = forever */
    uint32_t max_reply_bytes;      /* the longest frame accepted from the server; 0 = default 16 MiB + 16 */
    uint32_t event_queue_capacity; /* events kept for fic_poll_event without a handler; 0 = default 1,024 */
};
/* fic_options.flags: offer exactly fic_options.minor in HELLO. Without it, HELLO offers FIC_PROTOCOL_MINOR (1.1). */
#define FIC_CONNECT_MINOR 0x2u

/* What HELLO agreed (docs/protocol.md §4.1). The 1.1-only fields are 0 when 1.0 was agreed. */
struct fic_limits {
    uint16_t major;
    uint16_t minor;                     /* the version both sides now speak */
    uint32_t max_frame_bytes;
    uint32_t max_units_per_connection;
    uint32_t max_outstanding_requests;
    uint32_t max_connections;
    uint32_t max_cache_entries;
    uint32_t server_flags;              /* FIC_SERVER_* */
    uint32_t max_events_per_request;    /* 1.1 */
    uint32_t max_fds_per_frame;         /* 1.1 */
};

struct fic_client;

/*
 * fic_connect - connects to the server's Unix socket at @path and (unless FIC_CONNECT_NO_HELLO) sends HELLO.
 * @options: NULL for the defaults.
 * @out:     the new client on success; untouched on failure.
 * Returns 0; -EINVAL (NULL, path too long, bad options), -ENOMEM, connect's errno (-ENOENT, -ECONNREFUSED,
 * -EACCES...), or HELLO's errors (FIC_E_VERSION, FIC_E_CONNECTION_LIMIT, -EPROTO...). On failure nothing is left open.
 */
int fic_connect(const char *path, const struct fic_options *options, struct fic_client **out);

/*
 * fic_attach_fd - makes a client of an already connected stream socket @fd (a socketpair end, an accepted or
 * inherited connection), then sends HELLO as fic_connect does. The client owns @fd from the call on (even on failure:
 * then it is closed). The socket is switched to non-blocking mode.
 */
int fic_attach_fd(int fd, const struct fic_options *options, struct fic_client **out);

/*
 * fic_hello - sends HELLO offering version @major.@minor and fills @limits (may be NULL) with the reply. fic_connect
 * does this; call it only after FIC_CONNECT_NO_HELLO. A second HELLO is FIC_E_HELLO_STATE; a major the server does
 * not speak FIC_E_VERSION (fic_last_error's detail is the server's major). A reply with another major, a minor above
 * the offer, shorter than the agreed version's layout, or with max_frame_bytes < 24, max_outstanding_requests 0 or
 * max_connections 0 is -EPROTO.
 */
int fic_hello(struct fic_client *client, uint16_t major, uint16_t minor, struct fic_limits *limits);

/* fic_close - closes the connection and frees @client (NULL is allowed). */
void fic_close(struct fic_client *client);

/* fic_limits - what HELLO agreed; all zero before HELLO. */
const struct fic_limits *fic_limits(const struct fic_client *client);

/* fic_fd - the socket (for poll/epoll in an event loop; do not read or write it yourself). */
int fic_fd(const struct fic_client *client);

/* fic_is_broken - 1 when the connection can no longer be used (every request then returns -ENOTCONN), else 0. */
int fic_is_broken(const struct fic_client *client);

/* The last typed error reply (also set by a FRAME_ERROR). */
struct fic_error {
    uint16_t status;       /* enum fic_status; 0 when no error reply was received yet */
    uint16_t request_type; /* the type of the request it answered */
    uint32_t detail;       /* the reply's detail field */
    uint32_t request_id;
    uint32_t unit_id;
};

/* fic_last_error - copies the last error reply into @out. Returns 0, or -EINVAL for NULL pointers. */
int fic_last_error(const struct fic_client *client, struct fic_error *out);

/* fic_strerror - a static English name of a return value (0, a negative errno, or a typed error). Never NULL. */
const char *fic_strerror(int rc);

/* fic_status_name - the protocol's name of a status code ("UNKNOWN_UNIT"), or "?" for one this client does not know. */
const char *fic_status_name(uint16_t status);

/* ---- Units ------------------------------------------------------------------------------------------------- */

/* Cache capacities of CREATE; 0 = the server's default (65,536 / 16,384 / 4,096). At most max_cache_entries. */
struct fic_capacities {
    uint32_t iotlb;
    uint32_t device_tlb;
    uint32_t config;
};

/*
 * A region of shared memory for a CREATE (docs/protocol.md §6): @length bytes of the file @fd from @file_offset,
 * at @guest_physical_base (VT-d, SMMUv3; for iommufd units the server places it and the field must be 0). The
 * client sends the descriptors in one SCM_RIGHTS message with the frame's first byte. Offsets and lengths are 4 KiB
 * multiples; the server checks them (FIC_E_INVALID_ARGUMENT, FIC_E_SHORT_FILE, FIC_E_OVERLAP, FIC_E_BAD_FD).
 */
struct fic_region {
    uint64_t guest_physical_base;
    uint64_t length;
    uint64_t file_offset;
    int fd;
};

/* VT-d and SMMUv3 options (docs/protocol.md §6.2): the feature flags and parameter bytes, passed as they are. */
struct fic_unit_options {
    uint32_t feature_flags; /* FIC_VTD_* or FIC_SMMU_* */
    uint8_t params[4];      /* VT-d: HAW, MAMV, MHMV, 0. SMMUv3 (with FIC_SMMU_PARAMS): SID bits, SSID bits, CMDQ log2, OAS */
};
#define FIC_VTD_NO_SCALABLE_MODE 0x001u
#define FIC_VTD_NO_PASID 0x002u
#define FIC_VTD_NO_DEVICE_TLB 0x004u
#define FIC_VTD_NO_DIT 0x008u
#define FIC_VTD_NO_PDS 0x010u
#define FIC_VTD_NO_INTERRUPT_REMAPPING 0x020u
#define FIC_VTD_NO_READ_DRAINING 0x040u
#define FIC_VTD_NO_WRITE_DRAINING 0x080u
#define FIC_VTD_CACHING_MODE 0x100u
#define FIC_VTD_PARAMS 0x200u /* params[1] (MAMV) and params[2] (MHMV) are given */
#define FIC_SMMU_NO_STAGE1 0x001u
#define FIC_SMMU_NO_STAGE2 0x002u
#define FIC_SMMU_NO_RANGE_INVALIDATION 0x004u
#define FIC_SMMU_NO_ATS 0x008u
#define FIC_SMMU_NO_MSI 0x010u
#define FIC_SMMU_NO_SEV 0x020u
#define FIC_SMMU_ASID8 0x040u
#define FIC_SMMU_VMID8 0x080u
#define FIC_SMMU_LAX_RESERVED 0x100u
#define FIC_SMMU_PRI 0x200u
#define FIC_SMMU_STALL 0x400u
#define FIC_SMMU_PARAMS 0x800u

/* iommufd context options (docs/protocol.md §6.3). */
#define FIC_IOMMUFD_SELFTEST 0x1u
#define FIC_IOMMUFD_VTD_HW_ERROR 0x2u
#define FIC_IOMMUFD_ENGINE_VTD 1u
#define FIC_IOMMUFD_ENGINE_SMMUV3 2u
#define FIC_IOMMUFD_DEVICE_ATS 0x1u
struct fic_iommufd_options {
    uint32_t flags;      /* FIC_IOMMUFD_SELFTEST | FIC_IOMMUFD_VTD_HW_ERROR */
    uint8_t engine_kind; /* FIC_IOMMUFD_ENGINE_*: the engine FILL, LOOKUP, EXECUTE, FAULT_PLAN, STATS address */
};
struct fic_iommufd_device {
    uint8_t iommu;       /* FIC_IOMMUFD_ENGINE_VTD or _SMMUV3 */
    uint8_t flags;       /* FIC_IOMMUFD_DEVICE_ATS */
    uint32_t stream_id;  /* PCI requester id (VT-d, at most 0xFFFF) or SMMU StreamID */
};
/* What an iommufd CREATE returns: the user address of each region and the object id of each device. */
struct fic_iommufd_unit {
    uint32_t unit;
    uint32_t region_count;
    uint32_t device_count;
    uint64_t user_address[FIC_MAX_REGIONS];
    uint32_t device_id[FIC_MAX_IOMMUFD_DEVICES];
};

/* fic_create_engine - an engine unit. @capacities NULL = defaults. *@unit = its id (never 0). */
int fic_create_engine(struct fic_client *client, const struct fic_capacities *capacities, uint32_t *unit);

/*
 * fic_create_vtd / fic_create_smmu - a VT-d / SMMUv3 unit over guest RAM shared as @region_count (1-8) regions.
 * @options NULL = the default part. Needs 1.1 agreed (else FIC_E_UNSUPPORTED_KIND, as the server answers).
 */
int fic_create_vtd(struct fic_client *client, const struct fic_capacities *capacities, const struct fic_unit_options *options,
                   const struct fic_region *regions, uint32_t region_count, uint32_t *unit);
int fic_create_smmu(struct fic_client *client, const struct fic_capacities *capacities, const struct fic_unit_options *options,
                    const struct fic_region *regions, uint32_t region_count, uint32_t *unit);

/*
 * fic_create_iommufd - an iommufd context over 0-8 regions of user memory (guest_physical_base must be 0) with
 * 0-64 bound devices. @options must not be NULL (engine_kind is required). Fills @out (the reply's addresses and ids).
 */
int fic_create_iommufd(struct fic_client *client, const struct fic_capacities *capacities, const struct fic_iommufd_options *options,
                       const struct fic_region *regions, uint32_t region_count, const struct fic_iommufd_device *devices,
                       uint32_t device_count, struct fic_iommufd_unit *out);

/* fic_destroy - destroys @unit (its caches freed, its shared memory unmapped by the server). */
int fic_destroy(struct fic_client *client, uint32_t unit);

/* fic_unit_kind - the kind of a unit this client created and did not destroy (enum fic_unit_kind), or 0. */
int fic_unit_kind(const struct fic_client *client, uint32_t unit);

/* ---- Caches ------------------------------------------------------------------------------------------------ */

/* Per-entry results of a fill (fastinval.h's enum fastinval_fill_result: INSERTED, REPLACED, ..._AFTER_EVICTION,
 * REJECTED). */

/*
 * fic_fill_iotlb / fic_fill_device_tlb / fic_fill_config - caches @count entries (in the fastinval.h layouts; the
 * config entry's 8 trailing reserved wire bytes are sent as zero). @results (may be NULL) receives @count result bytes.
 * A reserved byte or unknown flag bit set is FIC_E_INVALID_ARGUMENT (detail = the payload offset) and fills nothing;
 * an entry the engine finds malformed is FASTINVAL_FILL_REJECTED in its own result.
 * Returns the number of entries not rejected (0..count).
 */
int fic_fill_iotlb(struct fic_client *client, uint32_t unit, const struct fastinval_iotlb_entry *entries, uint32_t count,
                   uint8_t *results);
int fic_fill_device_tlb(struct fic_client *client, uint32_t unit, const struct fastinval_devtlb_entry *entries, uint32_t count,
                        uint8_t *results);
int fic_fill_config(struct fic_client *client, uint32_t unit, const struct fastinval_config_entry *entries, uint32_t count,
                    uint8_t *results);

/* Lookup queries (docs/protocol.md §4.5). */
struct fic_iotlb_query {
    uint64_t address;
    uint32_t address_space_id; /* or FASTINVAL_ADDRESS_SPACE_NONE */
    uint16_t domain_id;
    uint8_t stage;             /* one enum fastinval_stage */
    uint8_t table_span_log2;   /* 0 = the leaf translation, else the paging-structure entry of that span */
};
struct fic_devtlb_query {
    uint64_t address;
    uint32_t source_id;
    uint32_t pasid;            /* or FASTINVAL_ADDRESS_SPACE_NONE */
};
struct fic_config_query {
    uint8_t kind;              /* one enum fastinval_config_kind */
    uint32_t source_id;
    uint32_t address_space_id;
};
/* One lookup's answer; a miss is all zero. */
struct fic_lookup_result {
    uint8_t hit;               /* 1 hit, 0 miss */
    uint8_t size_log2;         /* IOTLB, device TLB */
    uint8_t global;            /* 1: the answering entry is global */
    uint8_t kind;              /* CONFIG */
    uint16_t rights;           /* IOTLB, device TLB */
    uint16_t domain_id;        /* CONFIG */
    uint64_t output;           /* the translated address (or table address), or the CONFIG value */
    uint64_t input_base;       /* IOTLB, device TLB */
    uint32_t source_id;        /* CONFIG */
    uint32_t address_space_id; /* CONFIG */
};

/* fic_lookup_* - looks up @count queries; @results (not NULL when count > 0) receives @count answers. Returns the
 * number of hits. The reply's hit count must agree with its results (else -EPROTO). */
int fic_lookup_iotlb(struct fic_client *client, uint32_t unit, const struct fic_iotlb_query *queries, uint32_t count,
                     struct fic_lookup_result *results);
int fic_lookup_device_tlb(struct fic_client *client, uint32_t unit, const struct fic_devtlb_query *queries, uint32_t count,
                          struct fic_lookup_result *results);
int fic_lookup_config(struct fic_client *client, uint32_t unit, const struct fic_config_query *queries, uint32_t count,
                      struct fic_lookup_result *results);

/* ---- Descriptors, fault plan, figures ----------------------------------------------------------------------------- */

/* The counts of an EXECUTE; first_failure_index is -1 when every status is FASTINVAL_STATUS_OK. */
struct fic_execute_result {
    uint32_t ok;
    uint32_t timed_out;
    uint32_t completion_errors;
    uint32_t invalid;
    int32_t first_failure_index;
};

/*
 * fic_execute - executes @count descriptors (fastinval.h's struct fastinval_descriptor, the engine's layout) in order.
 * @statuses (may be NULL) receives @count enum fastinval_status bytes; @result (may be NULL) the counts. The reply is
 * checked: statuses in 0-3, the counts equal to the statuses, first_failure_index the first non-OK one.
 */
int fic_execute(struct fic_client *client, uint32_t unit, const struct fastinval_descriptor *descriptors, uint32_t count,
                uint8_t *statuses, struct fic_execute_result *result);

/*
 * fic_set_fault_plan - replaces the unit's injected device-TLB failures with @plan (fastinval.h's struct
 * fastinval_fault_plan; plan->size must be sizeof it, its reserved fields 0; NULL = no failures).
 */
int fic_set_fault_plan(struct fic_client *client, uint32_t unit, const struct fastinval_fault_plan *plan);

/* A unit's figures (docs/protocol.md §4.8). */
struct fic_unit_stats {
    uint32_t iotlb_capacity, iotlb_count;
    uint32_t device_tlb_capacity, device_tlb_count;
    uint32_t config_capacity, config_count;
    uint64_t device_tlb_invalidations; /* the next fault-plan ordinal */
    uint64_t requests;                 /* requests on the unit before this one, CREATE included */
    uint64_t descriptors;
    uint64_t fills;
    uint64_t memory_bytes;
};
/* The server's figures. */
struct fic_server_stats {
    uint32_t connections;
    uint32_t units;
    uint64_t frames;
    uint64_t error_replies;
};

/* fic_unit_stats / fic_server_stats - STATS of a unit / of the server (unit id 0). A unit reply counting more entries
 * than a cache's capacity, or a server reply with 0 connections (this one is one), is -EPROTO. */
int fic_unit_stats(struct fic_client *client, uint32_t unit, struct fic_unit_stats *out);
int fic_server_stats(struct fic_client *client, struct fic_server_stats *out);

/* ---- Registers and iommufd (1.1) ------------------------------------------------------------------------------- */

/*
 * fic_reg_read - the unit's own MMIO read of @size (4 or 8) bytes at @offset (VT-d: the register page; SMMUv3: page
 * 0). A 4-byte read whose reply has a non-zero high half is -EPROTO. FIC_E_WRONG_KIND on another kind of unit.
 */
int fic_reg_read(struct fic_client *client, uint32_t unit, uint32_t offset, uint8_t size, uint64_t *value);

/*
 * fic_reg_write - the unit's MMIO write, with all its effects (queue fetches, invalidations, status writes into the
 * shared memory, interrupts) done before it returns. The interrupts' event frames are delivered (handler or queue)
 * before it returns. @events_sent / @events_dropped (may be NULL) receive the reply's counts; the client checks that
 * events_sent equals the event frames it received for the write.
 */
int fic_reg_write(struct fic_client *client, uint32_t unit, uint32_t offset, uint8_t size, uint64_t value,
                  uint32_t *events_sent, uint32_t *events_dropped);

/*
 * fic_iommufd_ioctl - an iommufd ioctl (@request: the Linux number, e.g. 0x3B81 IOMMU_IOAS_ALLOC) with the
 * argument struct @arg of @arg_length bytes (kernel layout; pointers inside are user addresses of the unit's
 * regions). @arg is overwritten with the struct as the ioctl left it. *@result = 0 or the ioctl's negative errno
 * (a failing ioctl is still a successful request). Returns 0 or a client / protocol error.
 */
int fic_iommufd_ioctl(struct fic_client *client, uint32_t unit, uint32_t request, void *arg, uint32_t arg_length,
                      int32_t *result);

/* ---- Events (1.1) ------------------------------------------------------------------------------------------- */

/* An event frame (docs/protocol.md §4.12). */
struct fic_event {
    uint16_t type;     /* FIC_EVENT_* */
    uint8_t delivery;  /* enum fic_delivery */
    uint8_t reserved;
    uint32_t unit;     /* the unit that raised it */
    uint64_t address;  /* the MSI's address, 0 when not an MSI */
    uint32_t data;     /* the MSI's data */
    uint32_t a;        /* per type: ICS / FSTS / CMDQ_CONS / GERROR / the timed-out source id */
    uint32_t b;        /* IECTL / FECTL / CMDQ_PROD / GERRORN / 0 */
    uint32_t reserved2;
    uint64_t c;        /* 0 / IQERCD / 0 / CMDQ_CONS / 0 */
};

typedef void (*fic_event_fn)(void *user, const struct fic_event *event);

/* fic_set_event_handler - events go to @handler (NULL: queued for fic_poll_event). Events already queued stay queued. */
void fic_set_event_handler(struct fic_client *client, fic_event_fn handler, void *user);

/*
 * fic_poll_event - takes the oldest queued event (events are queued only while no handler is set) into @event.
 * Returns 1 (an event), 0 (the queue is empty) or -EINVAL (NULL pointers). It does not read the socket: the server
 * sends events only while it handles a register write, and fic_reg_write reads them all before it returns.
 */
int fic_poll_event(struct fic_client *client, struct fic_event *event);

/* fic_events_dropped - events not queued because the queue was full. fic_unknown_events - event frames of types this
 * client does not know, skipped. */
uint64_t fic_events_dropped(const struct fic_client *client);
uint64_t fic_unknown_events(const struct fic_client *client);

/* ---- Raw requests and guest RAM ------------------------------------------------------------------------------------- */

/*
 * fic_request - sends any request: @type, @unit_id, @payload (@payload_length bytes, sent as is, with @fds (may be
 * NULL with @fd_count 0, at most FIC_MAX_REGIONS) as SCM_RIGHTS with its first byte), and copies the success reply's
 * payload into @reply (up to @reply_capacity bytes; *@reply_length = the payload's whole length, which may be larger).
 * Error replies are typed errors as everywhere; the reply's type, request id and unit id are checked. For requests
 * this header has no function for, and for testing a server with requests it must refuse.
 */
int fic_request(struct fic_client *client, uint16_t type, uint32_t unit_id, const void *payload, uint32_t payload_length,
                const int *fds, uint32_t fd_count, void *reply, uint32_t reply_capacity, uint32_t *reply_length);

/*
 * fic_guest_ram_create - guest RAM to share: a memfd of @size bytes (a multiple of 4 KiB), named @name (for
 * /proc/PID/maps), mapped shared and read-write. On success *@fd is the memfd and *@memory its mapping, zero-filled;
 * release them with munmap(*memory, size) and close(*fd). Returns 0 or a negative errno.
 */
int fic_guest_ram_create(const char *name, size_t size, int *fd, void **memory);

#ifdef __cplusplus
}
#endif

#endif /* FASTINVAL_CLIENT_H */
