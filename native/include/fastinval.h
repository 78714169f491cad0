/* SPDX-License-Identifier: MIT */
/*
 * fastinval.h - C interface of libfastinval.so, the FastInval IOMMU cache-invalidation engine.
 *
 * OVERVIEW
 *   An engine models the translation caches of one physical IOMMU: the IOTLB, the device TLBs (ATCs) of the devices
 *   behind it and its configuration caches. A VMM fills them (as the hardware would cache) and executes invalidation
 *   descriptors against them; lookups then show what is left. An iommufd context is an emulated open /dev/iommu: its
 *   fastinval_iommufd_ioctl() takes the kernel's request codes and argument structs (<linux/iommufd.h> layouts) and
 *   answers as the kernel does, with the caller's own pointers.
 *
 * RETURN VALUES
 *   Every function returning int returns 0 (or a documented non-negative result) on success and a negative errno on
 *   failure. Common codes:
 *     -EBADF   the handle is 0, was destroyed, was never issued, or names an object of another kind;
 *     -EFAULT  a required pointer is NULL (and, for fastinval_iommufd_ioctl only, any pointer that does not resolve);
 *     -EINVAL  a struct's size field is not sizeof the struct, a reserved field or unknown flag is set, a value is out
 *              of range;
 *     -ENOMEM  memory for the object could not be allocated;
 *     -EMFILE  the handle table is full (65,536 live handles);
 *     -EBUSY   destroy was called while another thread is inside a call on the same handle (the handle stays valid);
 *     -ENOSYS  the platform cannot support the call (fastinval_iommufd_create where process_vm_readv is forbidden);
 *     -EIO     an internal error (never expected; reported rather than crashing).
 *   No function aborts the process or raises a signal for any argument value, except that the engine calls below read
 *   and write the memory their non-NULL pointers name without checking it (as memcpy does): those pointers must be
 *   valid for the documented size. fastinval_iommufd_ioctl() is the exception: it checks every byte it touches.
 *
 * HANDLES
 *   Handles are opaque 64-bit values, never 0 when valid. Each carries a generation, so a destroyed handle (and any
 *   forged value, with overwhelming probability) is refused with -EBADF forever after, even once its slot is reused.
 *   A handle is valid from its create call until its destroy call returns 0.
 *
 * THREADING
 *   Every function may be called from any thread. Per engine, the writers (fastinval_*_fill, fastinval_execute,
 *   fastinval_engine_set_fault_plan) must be serialized by the caller (one thread, or a lock); the lookups may run on
 *   other threads at any time and never return an entry removed by an execute that returned before the lookup started.
 *   Calls on one iommufd context are serialized inside the library. Destroying a handle while another thread is
 *   inside a call on it returns -EBUSY instead of freeing anything under that call.
 *
 * ALLOCATION
 *   Fills, lookups, execute and the iommufd ioctl (once the context has warmed up) allocate nothing per call.
 */
#ifndef FASTINVAL_H
#define FASTINVAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ABI version: (major << 16) | (minor << 8) | patch. Structs may grow only with a new major version. */
#define FASTINVAL_ABI_VERSION_MAJOR 0
#define FASTINVAL_ABI_VERSION_MINOR 1
#define FASTINVAL_ABI_VERSION_PATCH 0
#define FASTINVAL_ABI_VERSION \
    ((FASTINVAL_ABI_VERSION_MAJOR << 16) | (FASTINVAL_ABI_VERSION_MINOR << 8) | FASTINVAL_ABI_VERSION_PATCH)

/* Opaque handles (see HANDLES above). */
typedef uint64_t fastinval_engine_t;
typedef uint64_t fastinval_iommufd_t;

/* ---- Vocabulary (values of the engine's enums) ------------------------------------------------------- */

/* Translation stage of an IOTLB entry (one-hot). */
enum fastinval_stage {
    FASTINVAL_STAGE1 = 1,   /* first stage (guest): tagged with a PASID / ASID */
    FASTINVAL_STAGE2 = 2,   /* second stage: tagged with the domain only */
    FASTINVAL_NESTED = 4    /* combined stage-1 + stage-2 entry */
};

/* Stage masks of a descriptor. */
#define FASTINVAL_STAGES_FIRST (FASTINVAL_STAGE1 | FASTINVAL_NESTED)
#define FASTINVAL_STAGES_ALL   (FASTINVAL_STAGE1 | FASTINVAL_STAGE2 | FASTINVAL_NESTED)

/* Granule in the SMMUv3 TG encoding. */
enum fastinval_granule {
    FASTINVAL_GRANULE_ANY = 0,  /* descriptors only: any granule */
    FASTINVAL_GRANULE_4K = 1,
    FASTINVAL_GRANULE_16K = 2,
    FASTINVAL_GRANULE_64K = 3
};

/* Access rights (12 bits). */
#define FASTINVAL_ACCESS_READ       0x1u
#define FASTINVAL_ACCESS_WRITE      0x2u
#define FASTINVAL_ACCESS_EXECUTE    0x4u
#define FASTINVAL_ACCESS_PRIVILEGED 0x8u

/* Configuration-cache kinds (one-hot). */
enum fastinval_config_kind {
    FASTINVAL_CONFIG_CONTEXT = 1,
    FASTINVAL_CONFIG_PASID_ENTRY = 2,
    FASTINVAL_CONFIG_STE = 4,
    FASTINVAL_CONFIG_CD = 8,
    FASTINVAL_CONFIG_INTERRUPT_ENTRY = 16
};
#define FASTINVAL_CONFIG_ALL 0x1Fu

/* "No address space": requests without PASID, stage-2 entries. Real ids are at most FASTINVAL_ADDRESS_SPACE_MAX. */
#define FASTINVAL_ADDRESS_SPACE_NONE 0xFFFFFFFFu
#define FASTINVAL_ADDRESS_SPACE_MAX  0xFFFFFu

/* Scan kernels (fastinval_engine_options.kernel); -1 chooses the widest one the CPU accelerates. */
enum fastinval_kernel {
    FASTINVAL_KERNEL_BEST = -1,
    FASTINVAL_KERNEL_SCALAR = 0,
    FASTINVAL_KERNEL_VECTOR128 = 1,
    FASTINVAL_KERNEL_VECTOR256 = 2,
    FASTINVAL_KERNEL_VECTOR512 = 3
};

/* ---- The invalidation descriptor ----------------------------------------------------------------------- */

/* Descriptor scopes. */
enum fastinval_scope {
    FASTINVAL_SCOPE_NONE = 0,        /* not a descriptor: reports FASTINVAL_STATUS_INVALID */
    FASTINVAL_SCOPE_IOTLB = 1,       /* IOTLB entries selected by tags only */
    FASTINVAL_SCOPE_IOTLB_RANGE = 2, /* IOTLB entries selected by tags and [first, last] */
    FASTINVAL_SCOPE_DEVICE_TLB = 3,  /* device-TLB entries by source id, PASID and [first, last] */
    FASTINVAL_SCOPE_CONFIG = 4       /* configuration entries by kind, source-id range, domain, PASID */
};

/* Descriptor flags. */
#define FASTINVAL_MATCH_DOMAIN        0x01u /* only entries of domain_id */
#define FASTINVAL_MATCH_ADDRESS_SPACE 0x02u /* only entries of address_space_id (globals need INCLUDE_GLOBAL) */
#define FASTINVAL_INCLUDE_GLOBAL      0x04u /* with MATCH_ADDRESS_SPACE: global entries too */
#define FASTINVAL_LEAF_ONLY           0x08u /* keep paging-structure (table) entries */
#define FASTINVAL_MATCH_SOURCE        0x10u /* device TLB: only source_id; config: source id in [first, last] */

/*
 * struct fastinval_descriptor - one invalidation, 32 bytes, little-endian, the engine's own layout (no copy is made).
 * The matching and validity rules are those of the engine's InvalidationDescriptor (see docs/engine.md); a malformed
 * descriptor reports FASTINVAL_STATUS_INVALID and changes nothing.
 */
struct fastinval_descriptor {
    uint8_t scope;            /* enum fastinval_scope */
    uint8_t flags;            /* FASTINVAL_MATCH_* | FASTINVAL_INCLUDE_GLOBAL | FASTINVAL_LEAF_ONLY */
    uint8_t stages;           /* enum fastinval_stage mask (IOTLB scopes) */
    uint8_t level_hint;       /* SMMU TTL 0-3 (IOTLB_RANGE only) */
    uint8_t granule_hint;     /* enum fastinval_granule (IOTLB_RANGE only) */
    uint8_t config_kinds;     /* enum fastinval_config_kind mask (CONFIG only) */
    uint16_t domain_id;       /* VT-d DID / SMMU VMID */
    uint32_t address_space_id;/* PASID / ASID / SSID, or FASTINVAL_ADDRESS_SPACE_NONE */
    uint32_t source_id;       /* device source id / StreamID (DEVICE_TLB) */
    uint64_t first;           /* first byte of the range, or first source id (CONFIG) */
    uint64_t last;            /* last byte (inclusive), or last source id (CONFIG) */
};

/* Outcome of one descriptor (the statuses array of fastinval_execute). */
enum fastinval_status {
    FASTINVAL_STATUS_OK = 0,
    FASTINVAL_STATUS_TIMED_OUT = 1,        /* device-TLB invalidation timed out: entries NOT invalidated */
    FASTINVAL_STATUS_COMPLETION_ERROR = 2, /* device-TLB invalidation completed with an error: entries invalidated */
    FASTINVAL_STATUS_INVALID = 3           /* malformed descriptor: nothing changed */
};

/* ---- Other structs --------------------------------------------------------------------------------------- */

/* Engine capacities and kernel. size must be sizeof(struct fastinval_engine_options); 0 capacities take the defaults
 * (IOTLB 65,536, device TLB 16,384, configuration cache 4,096 entries). */
struct fastinval_engine_options {
    uint32_t size;
    uint32_t iotlb_capacity;
    uint32_t device_tlb_capacity;
    uint32_t config_cache_capacity;
    int32_t kernel;           /* enum fastinval_kernel */
    uint32_t reserved;        /* must be 0 */
};

/* Flags of fastinval_iotlb_entry.flags / fastinval_devtlb_entry.flags. */
#define FASTINVAL_ENTRY_GLOBAL 0x1u /* global (nG = 0 / VT-d G = 1) */
#define FASTINVAL_ENTRY_TABLE  0x2u /* IOTLB only: a paging-structure entry; output_address is the next table */

/* An IOTLB entry to fill (the engine's TranslationEntry validity rules apply: a malformed one is REJECTED). */
struct fastinval_iotlb_entry {
    uint64_t input_address;
    uint64_t output_address;
    uint32_t address_space_id;
    uint16_t domain_id;
    uint16_t rights;          /* FASTINVAL_ACCESS_* */
    uint8_t stage;            /* enum fastinval_stage */
    uint8_t granule;          /* enum fastinval_granule (not ANY) */
    uint8_t size_log2;        /* log2 of the span in bytes */
    uint8_t flags;            /* FASTINVAL_ENTRY_* */
    uint32_t reserved;        /* must be 0 */
};

/* A device-TLB (ATC) entry to fill. */
struct fastinval_devtlb_entry {
    uint64_t input_address;
    uint64_t output_address;
    uint32_t source_id;
    uint32_t pasid;           /* or FASTINVAL_ADDRESS_SPACE_NONE for a request without PASID */
    uint16_t rights;
    uint8_t size_log2;
    uint8_t flags;            /* FASTINVAL_ENTRY_GLOBAL only */
    uint32_t reserved;        /* must be 0 */
};

/* A configuration-cache entry (fill input, lookup output). */
struct fastinval_config_entry {
    uint64_t value;
    uint32_t source_id;
    uint32_t address_space_id;
    uint16_t domain_id;
    uint8_t kind;             /* one enum fastinval_config_kind */
    uint8_t reserved0;        /* must be 0 */
    uint32_t reserved1;       /* must be 0 */
};

/* What a lookup found. */
struct fastinval_translation {
    uint64_t output_address;  /* the translation of the address looked up (entry output + offset in the span) */
    uint64_t input_base;      /* first input address of the entry's span */
    uint16_t rights;
    uint8_t size_log2;
    uint8_t global;           /* 1 for a global entry */
    uint32_t reserved;
};

/* Results of fastinval_*_fill (non-negative return values). */
enum fastinval_fill_result {
    FASTINVAL_FILL_INSERTED = 0,
    FASTINVAL_FILL_REPLACED = 1,
    FASTINVAL_FILL_INSERTED_AFTER_EVICTION = 2,
    FASTINVAL_FILL_REJECTED = 3       /* malformed entry: the cache is unchanged */
};

/* Counts of a batch's outcomes; first_failure_index is -1 when every status is OK. */
struct fastinval_batch_result {
    uint32_t ok;
    uint32_t timed_out;
    uint32_t completion_errors;
    uint32_t invalid;
    int32_t first_failure_index;
    uint32_t reserved;
};

/* Cache occupancy of an engine. */
struct fastinval_engine_counts {
    uint32_t iotlb_count;
    uint32_t device_tlb_count;
    uint32_t config_count;
    int32_t kernel;                    /* enum fastinval_kernel actually used */
    uint64_t device_tlb_invalidations; /* device-TLB descriptors executed: the next fault-plan ordinal */
    uint64_t reserved;
};

/* Injected device-TLB failures (deterministic: a pure function of these fields and the ordinal / source id asked).
 * size must be sizeof(struct fastinval_fault_plan). The arrays are copied; NULL is allowed with a zero count. */
struct fastinval_fault_plan {
    uint32_t size;
    uint32_t reserved;                     /* must be 0 */
    uint64_t seed;
    uint32_t timeout_per_million;          /* at most 1,000,000 */
    uint32_t completion_error_per_million; /* at most 1,000,000 */
    const uint32_t *timeout_source_ids;    /* devices whose every invalidation times out */
    const uint64_t *timeout_ordinals;
    const uint64_t *completion_error_ordinals;
    uint32_t timeout_source_id_count;
    uint32_t timeout_ordinal_count;
    uint32_t completion_error_ordinal_count;
    uint32_t reserved2;                    /* must be 0 */
};

/* iommufd context options. size must be sizeof(struct fastinval_iommufd_options); engine.size 0 = engine defaults. */
#define FASTINVAL_IOMMUFD_SELFTEST     0x1u /* offer IOMMU_TEST_CMD (a kernel built with CONFIG_IOMMUFD_TEST) */
#define FASTINVAL_IOMMUFD_VTD_HW_ERROR 0x2u /* VT-d invalidation entries carry hw_error (written back in place) */
struct fastinval_iommufd_options {
    uint32_t size;
    uint32_t flags;                        /* FASTINVAL_IOMMUFD_* */
    struct fastinval_engine_options engine;
};

/* IOMMU kinds of fastinval_iommufd_add_device. */
enum fastinval_iommu_kind {
    FASTINVAL_IOMMU_INTEL_VTD = 0,
    FASTINVAL_IOMMU_ARM_SMMUV3 = 1
};

/* ---- Layout checks (the library reads these structs in place) ---------------------------------------------- */

#ifdef __cplusplus
#define FASTINVAL_STATIC_ASSERT(c, m) static_assert(c, m)
#else
#define FASTINVAL_STATIC_ASSERT(c, m) _Static_assert(c, m)
#endif

FASTINVAL_STATIC_ASSERT(sizeof(struct fastinval_descriptor) == 32, "descriptor is 32 bytes");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_descriptor, scope) == 0, "scope at 0");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_descriptor, flags) == 1, "flags at 1");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_descriptor, stages) == 2, "stages at 2");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_descriptor, level_hint) == 3, "level_hint at 3");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_descriptor, granule_hint) == 4, "granule_hint at 4");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_descriptor, config_kinds) == 5, "config_kinds at 5");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_descriptor, domain_id) == 6, "domain_id at 6");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_descriptor, address_space_id) == 8, "address_space_id at 8");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_descriptor, source_id) == 12, "source_id at 12");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_descriptor, first) == 16, "first at 16");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_descriptor, last) == 24, "last at 24");
FASTINVAL_STATIC_ASSERT(sizeof(struct fastinval_engine_options) == 24, "engine options are 24 bytes");
FASTINVAL_STATIC_ASSERT(sizeof(struct fastinval_iotlb_entry) == 32, "IOTLB entry is 32 bytes");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_iotlb_entry, stage) == 24, "IOTLB entry stage at 24");
FASTINVAL_STATIC_ASSERT(sizeof(struct fastinval_devtlb_entry) == 32, "device-TLB entry is 32 bytes");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_devtlb_entry, rights) == 24, "device-TLB entry rights at 24");
FASTINVAL_STATIC_ASSERT(sizeof(struct fastinval_config_entry) == 24, "config entry is 24 bytes");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_config_entry, kind) == 18, "config entry kind at 18");
FASTINVAL_STATIC_ASSERT(sizeof(struct fastinval_translation) == 24, "translation is 24 bytes");
FASTINVAL_STATIC_ASSERT(sizeof(struct fastinval_batch_result) == 24, "batch result is 24 bytes");
FASTINVAL_STATIC_ASSERT(sizeof(struct fastinval_engine_counts) == 32, "engine counts are 32 bytes");
FASTINVAL_STATIC_ASSERT(sizeof(struct fastinval_fault_plan) == 64, "fault plan is 64 bytes (LP64)");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_fault_plan, timeout_source_id_count) == 48, "fault plan counts at 48");
FASTINVAL_STATIC_ASSERT(sizeof(struct fastinval_iommufd_options) == 32, "iommufd options are 32 bytes");

/* ---- Library ------------------------------------------------------------------------------------------------ */

/* Returns FASTINVAL_ABI_VERSION of the loaded library. Compare its major number with the header's before other calls. */
uint32_t fastinval_abi_version(void);

/* Returns a static NUL-terminated version string; never NULL, never to be freed. */
const char *fastinval_version_string(void);

/* Returns the number of live handles of every kind (a leak check), or a negative errno. */
int fastinval_handle_count(void);

/* ---- Engine ------------------------------------------------------------------------------------------------- */

/*
 * fastinval_engine_create - create an engine with empty caches.
 * @options: capacities and kernel, or NULL for the defaults.
 * @out:     receives the handle (0 on failure).
 * Returns 0, -EFAULT (out is NULL), -EINVAL (size, reserved, kernel or capacity out of range), -ENOMEM, -EMFILE.
 */
int fastinval_engine_create(const struct fastinval_engine_options *options, fastinval_engine_t *out);

/*
 * fastinval_engine_destroy - free an engine and its caches; the handle becomes invalid (-EBADF from then on).
 * Returns 0, -EBADF, -EBUSY (a call on it is in flight on another thread).
 */
int fastinval_engine_destroy(fastinval_engine_t engine);

/* fastinval_engine_counts - entries in each cache and the kernel in use. Returns 0, -EBADF, -EFAULT. */
int fastinval_engine_counts(fastinval_engine_t engine, struct fastinval_engine_counts *out);

/*
 * fastinval_engine_set_fault_plan - replace the device-TLB fault plan (a writer: serialize with execute).
 * @plan: the plan, or NULL for none. Returns 0, -EBADF, -EFAULT (an array NULL with a count), -EINVAL.
 */
int fastinval_engine_set_fault_plan(fastinval_engine_t engine, const struct fastinval_fault_plan *plan);

/*
 * fastinval_iotlb_fill / fastinval_devtlb_fill / fastinval_config_fill - cache an entry (writers).
 * Returns an enum fastinval_fill_result (>= 0), or -EBADF, -EFAULT (entry NULL), -EINVAL (reserved or unknown flags).
 */
int fastinval_iotlb_fill(fastinval_engine_t engine, const struct fastinval_iotlb_entry *entry);
int fastinval_devtlb_fill(fastinval_engine_t engine, const struct fastinval_devtlb_entry *entry);
int fastinval_config_fill(fastinval_engine_t engine, const struct fastinval_config_entry *entry);

/*
 * fastinval_iotlb_lookup - find the leaf translation of @address for (stage, domain, address space); a global entry of
 * the domain answers for every address space; the smallest covering span wins.
 * Returns 1 (hit, *out filled), 0 (miss, *out zeroed), -EBADF, -EFAULT (out NULL).
 */
int fastinval_iotlb_lookup(fastinval_engine_t engine, uint8_t stage, uint16_t domain_id, uint32_t address_space_id,
                           uint64_t address, struct fastinval_translation *out);

/* fastinval_devtlb_lookup - the device-TLB entry of (source id, PASID) covering @address. Returns 1, 0, -EBADF, -EFAULT. */
int fastinval_devtlb_lookup(fastinval_engine_t engine, uint32_t source_id, uint32_t pasid, uint64_t address,
                            struct fastinval_translation *out);

/* fastinval_config_lookup - the configuration entry of (kind, source id, address space). Returns 1, 0, -EBADF, -EFAULT. */
int fastinval_config_lookup(fastinval_engine_t engine, uint8_t kind, uint32_t source_id, uint32_t address_space_id,
                            struct fastinval_config_entry *out);

/*
 * fastinval_execute - execute @count descriptors in order, with exactly the effect of executing them one by one.
 * @batch:    caller-owned array of @count descriptors, read in place (not retained).
 * @statuses: caller-owned array of @count bytes, receives each descriptor's enum fastinval_status.
 * @result:   receives the counts, or NULL.
 * A malformed descriptor is not an error of the call: it gets FASTINVAL_STATUS_INVALID and the rest still run.
 * Returns 0, -EBADF, -EFAULT (batch or statuses NULL with count > 0), -EINVAL (count > INT32_MAX).
 */
int fastinval_execute(fastinval_engine_t engine, const struct fastinval_descriptor *batch, size_t count,
                      uint8_t *statuses, struct fastinval_batch_result *result);

/* ---- iommufd -------------------------------------------------------------------------------------------------- */

/*
 * fastinval_iommufd_create - open an emulated /dev/iommu whose user pointers are this process's own addresses.
 * @options: NULL for the defaults (selftest on, mainline VT-d reporting, default engines).
 * Returns 0, -EFAULT, -EINVAL, -ENOMEM, -EMFILE, -ENOSYS (process_vm_readv is not permitted, e.g. by seccomp).
 */
int fastinval_iommufd_create(const struct fastinval_iommufd_options *options, fastinval_iommufd_t *out);

/* fastinval_iommufd_destroy - close the context (every object in it goes). Returns 0, -EBADF, -EBUSY. */
int fastinval_iommufd_destroy(fastinval_iommufd_t ctx);

/*
 * fastinval_iommufd_ioctl - ioctl(fd, request, arg) as the kernel answers it.
 * @request: an IOMMU_* request code (IOMMU_IOAS_ALLOC, IOMMU_HWPT_ALLOC, IOMMU_HWPT_INVALIDATE, IOMMU_DESTROY,
 *           IOMMU_VIOMMU_ALLOC, IOMMU_VDEVICE_ALLOC, and IOMMU_TEST_CMD with FASTINVAL_IOMMUFD_SELFTEST).
 * @arg:     the argument struct, whose first u32 is its size; read and written in place.
 * Every pointer (arg itself, data_uptr, entry arrays) is checked: an unmapped or unreadable byte is -EFAULT, and so is
 * a write-back (the struct's answer, entry_num, hw_error) into memory that is not writable - never a signal.
 * Returns 0 or the kernel's negative errno for the request (ENOTTY, EINVAL, EFAULT, E2BIG, ENOENT, EOPNOTSUPP, ...),
 * or -EBADF for a bad handle. Unlike ioctl(2) it does not set errno: the code is the return value.
 */
int fastinval_iommufd_ioctl(fastinval_iommufd_t ctx, uint32_t request, void *arg);

/*
 * fastinval_iommufd_add_device - bind a device behind the @kind IOMMU, as VFIO_DEVICE_BIND_IOMMUFD does.
 * @stream_id: PCI requester id (VT-d, 16 bits) or SMMUv3 StreamID.  @ats: non-zero when the device has a device TLB.
 * @dev_id:    receives the device's object id (dev_id of IOMMU_HWPT_ALLOC, IOMMU_VIOMMU_ALLOC, IOMMU_VDEVICE_ALLOC).
 * Returns 0, -EBADF, -EFAULT, -EINVAL (unknown kind, VT-d id above 0xFFFF), -EEXIST (stream id already bound), -ENOSPC.
 */
int fastinval_iommufd_add_device(fastinval_iommufd_t ctx, uint32_t kind, uint32_t stream_id, int ats, uint32_t *dev_id);

/* fastinval_iommufd_attach_device - VFIO_DEVICE_ATTACH_IOMMUFD_PT: attach (or re-attach) to an IOAS or HWPT.
 * Returns 0, -EBADF, -ENOENT, -EINVAL. */
int fastinval_iommufd_attach_device(fastinval_iommufd_t ctx, uint32_t dev_id, uint32_t pt_id);

/* fastinval_iommufd_detach_device - VFIO_DEVICE_DETACH_IOMMUFD_PT. Returns 0, -EBADF, -ENOENT. */
int fastinval_iommufd_detach_device(fastinval_iommufd_t ctx, uint32_t dev_id);

/* fastinval_iommufd_remove_device - unbind (close the VFIO device): detach, destroy its vDEVICE, free the id.
 * Returns 0, -EBADF, -ENOENT. */
int fastinval_iommufd_remove_device(fastinval_iommufd_t ctx, uint32_t dev_id);

/* ---- iommufd fault queues (the files of IOMMU_FAULT_QUEUE_ALLOC; used by libiommufd-preload.so) ------------- */

/*
 * IOMMU_FAULT_QUEUE_ALLOC answers out_fault_id and out_fault_fd, a real descriptor of this process (a memfd used as a
 * token) that holds a reference on the fault object until fastinval_iommufd_fault_close(). read(2)/write(2) on it are
 * these calls (libiommufd-preload.so routes them here); on the bare descriptor they would reach the memfd.
 *
 * fastinval_iommufd_fault_read - read(fault_fd, buf, count): @count must be a multiple of 40 (else -ESPIPE); writes as
 *   many queued struct iommu_hwpt_pgfault records as fit, each with a cookie for its response. Returns the bytes written
 *   (0 when none is queued: never blocks), -EFAULT (first record unwritable), -EBADF (bad handle, or @fault_id names no
 *   fault object with an open descriptor).
 * fastinval_iommufd_fault_write - write(fault_fd, buf, count): @count a multiple of 8 (else -ESPIPE); each struct
 *   iommu_hwpt_page_response must have code 0 (SUCCESS) or 1 (INVALID) and name an unanswered cookie (else -EINVAL).
 *   Returns the bytes taken before the first bad response, or its errno when it is the first (-EINVAL, -EFAULT), -EBADF.
 * fastinval_iommufd_fault_close - close(fault_fd): faults still pending are answered, the descriptor is closed (do not
 *   close(2) it as well) and its reference dropped. Returns 0, -EBADF.
 * None of them sets errno.
 */
int64_t fastinval_iommufd_fault_read(fastinval_iommufd_t ctx, uint32_t fault_id, void *buf, size_t count);
int64_t fastinval_iommufd_fault_write(fastinval_iommufd_t ctx, uint32_t fault_id, const void *buf, size_t count);
int fastinval_iommufd_fault_close(fastinval_iommufd_t ctx, uint32_t fault_id);

#ifdef __cplusplus
}
#endif

#endif /* FASTINVAL_H */
