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

/* ==== VT-d, SMMUv3 and AMD-Vi units =============================================================================== */
/*
 * A unit is one emulated IOMMU as its guest driver sees it through MMIO: a VT-d remapping unit (invalidation queue,
 * wait descriptors, IQE / ITE / ICE in FSTS), an SMMUv3 (command queue, CMD_SYNC, GERROR, CERROR_*) or an AMD-Vi IOMMU
 * (command buffer, COMPLETION_WAIT, event log with ILLEGAL_COMMAND_ERROR, COMMAND_HARDWARE_ERROR, IOTLB_INV_TIMEOUT).
 * The guest's queue (AMD-Vi: its command buffer and event log) lives in guest memory, reached through a guest-memory handle. A unit runs its invalidations on an engine: its
 * own (the default) or a caller's engine handle, which several units may then share.
 *
 * HANDLES AND LIFETIMES
 *   fastinval_guest_memory_t  valid from create until destroy returns 0. A unit made over it keeps its own reference to
 *                             the address space: destroying the handle ends the handle only, the unit goes on. The host
 *                             memory behind a mapped range must stay valid until the range is unmapped or every unit
 *                             over the address space is destroyed. The callbacks and their user pointer likewise.
 *   fastinval_vtd_t,          valid from create until destroy returns 0. A unit's handle may be passed wherever an
 *   fastinval_smmu_t,         engine handle is taken (fills, lookups, fastinval_execute, counts, fault plan, notifier
 *   fastinval_amdvi_t         subscribe): it names the unit's engine (fastinval_engine_destroy refuses it: -EBADF).
 *                             A unit made over a caller's engine handle keeps that handle from being destroyed
 *                             (fastinval_engine_destroy gives -EBUSY) until the unit is destroyed.
 *   fastinval_notifier_t      valid from subscribe until unsubscribe returns 0. Destroying the unit or engine does not
 *                             end it: after that it receives nothing, and must still be unsubscribed to free its slot.
 *
 * THREADING
 *   Every function may be called from any thread. The calls on one unit (register read and write, save, restore, reset,
 *   destroy) are serialized inside the library by one lock per unit; units made over one caller's engine share one lock.
 *   Lookups on a unit's engine never wait for that lock. A register write that lets the queue run processes it before
 *   it returns, on the calling thread.
 *
 * CALLBACKS (guest-memory read/write, interrupt, notifier, device-TLB request)
 *   Every callback runs synchronously on the thread whose call caused it (a register write, for the notifier also a
 *   fastinval_execute; with a device-TLB sink also a fastinval_device_tlb_complete, or the library's time-out timer
 *   thread, which runs the queue on when a request times out), inside that call, holding the unit's lock. It must return (it must not longjmp or throw a C++
 *   exception across the library). It may call: lookups and fills on any engine; register reads of the same unit;
 *   register writes of the same unit (applied, but they start no processing: the queue runs on in the outer call);
 *   fastinval_notifier_unsubscribe (also of the notifier being called: no later call of it starts); any call on other
 *   handles that does not wait for a thread that waits for this unit's lock. It must not destroy, save, restore or reset
 *   the unit whose call is running (-EBUSY) and must not execute invalidations on the engine that is notifying (a
 *   notifier's fastinval_execute on that engine is refused with -EINVAL).
 */

typedef uint64_t fastinval_guest_memory_t;
typedef uint64_t fastinval_vtd_t;
typedef uint64_t fastinval_smmu_t;
typedef uint64_t fastinval_amdvi_t;
typedef uint64_t fastinval_notifier_t;

/*
 * Guest-memory callbacks: copy @len bytes (never 0, never crossing 2^64) between guest-physical @gpa and the library's
 * buffer. Return 0 when every byte was accessible, any other value for a guest fault - and then write nothing. The
 * library turns a fault into the architected error (VT-d IQE, SMMUv3 CERROR_ABT / GERROR.MSI_CMDQ_ABT_ERR, AMD-Vi
 * COMMAND_HARDWARE_ERROR).
 */
typedef int (*fastinval_guest_read_fn)(void *user, uint64_t gpa, void *dst, size_t len);
typedef int (*fastinval_guest_write_fn)(void *user, uint64_t gpa, const void *src, size_t len);

/* Kinds of fastinval_interrupt_fn calls. An MSI carries (address, data); the SMMUv3 wired outputs and the AMD-Vi
 * interrupt carry 0, 0 (the AMD-Vi unit models no MSI capability: the VMM delivers the interrupt it programmed). */
enum fastinval_interrupt_kind {
    FASTINVAL_INTERRUPT_MSI = 0,          /* VT-d fault / completion events, SMMUv3 CMD_SYNC and GERROR MSIs */
    FASTINVAL_INTERRUPT_SMMU_GERROR = 1,  /* SMMUv3 global-error wired interrupt (IRQ_CTRL.GERROR_IRQEN, no MSI) */
    FASTINVAL_INTERRUPT_SMMU_CMD_SYNC = 2,/* SMMUv3 CMD_SYNC with CS = SIG_IRQ */
    FASTINVAL_INTERRUPT_SMMU_EVENT = 3,   /* SMMUv3 CMD_SYNC with CS = SIG_SEV: a wake-up event */
    FASTINVAL_INTERRUPT_AMDVI = 4         /* AMD-Vi: an event recorded or the log overflowing with Control.EventIntEn, or a
                                             COMPLETION_WAIT with I = 1 completing with Control.ComWaitIntEn; address 0,
                                             data 0 (Status says which) */
};
typedef void (*fastinval_interrupt_fn)(void *user, uint32_t kind, uint64_t address, uint32_t data);

/*
 * Device-TLB sink. Without one, a device-TLB invalidation (VT-d types 3 and 8, SMMUv3 CMD_ATC_INV, AMD-Vi
 * INVALIDATE_IOTLB_PAGES) is answered at once
 * by the fault plan. With one, each becomes a request to the VMM, which forwards it to the device (its ATS invalidation
 * path, a vhost device IOTLB, a passthrough device's IOMMU_HWPT_INVALIDATE) and answers later, from any thread, with
 * fastinval_device_tlb_complete. Until every earlier request is answered the unit holds the guest's next VT-d wait (IQH
 * on it, no status write), SMMUv3 CMD_SYNC (CONS on it, no signal) or AMD-Vi COMPLETION_WAIT (head on it, no store, no
 * interrupt), as hardware does. A time-out (the VMM's answer or the unit's own timer) is an ITE (VT-d: the held wait is
 * aborted at once), CERROR_ATC_INV_SYNC (SMMUv3) or an IOTLB_INV_TIMEOUT event (AMD-Vi: the command counts as
 * completed; its timer is the one Control.InvTimeOut programs, not timeout_ns); a
 * completion error an ICE (VT-d; SMMUv3 has no error for it). The engine removes the entries a request covers when it is
 * answered (not when it times out); notifiers hear of it then.
 */
struct fastinval_device_tlb_request {
    uint64_t ticket;                        /* pass to fastinval_device_tlb_complete; never 0, never reused by the unit */
    struct fastinval_descriptor descriptor; /* scope FASTINVAL_SCOPE_DEVICE_TLB: source_id = the device, first..last, pasid */
    uint64_t index;                         /* the guest descriptor's queue slot */
    uint64_t ordinal;                       /* the engine's device-TLB ordinal (the question a fault plan answers) */
    uint8_t source;                         /* enum fastinval_record_source: VTD_QUEUE, SMMU_CMDQ or AMDVI_CMDBUF */
    uint8_t reserved[7];                    /* 0 */
};

/* Called once per request, in queue order, holding the unit's lock. It must not wait for the answer (the answer may
 * come from inside it: fastinval_device_tlb_complete may be called in the callback). @request is valid only during
 * the call. */
typedef void (*fastinval_device_tlb_fn)(void *user, const struct fastinval_device_tlb_request *request);

struct fastinval_device_tlb_sink {
    fastinval_device_tlb_fn request;        /* NULL (with the whole struct zeroed): no sink */
    void *user;                             /* passed to request */
    uint64_t timeout_ns;                    /* silence that becomes a time-out; 0 = 1 s; UINT64_MAX = never */
    uint32_t max_outstanding;               /* requests in flight, a power of two 16-65536; 0 = 256. When all are out
                                               the queue stops before the next device-TLB invalidation until one is
                                               answered */
    uint32_t reserved;                      /* 0 */
};

/* Answers of fastinval_device_tlb_complete. */
enum fastinval_device_tlb_outcome {
    FASTINVAL_DEVICE_TLB_OK = 0,               /* the device invalidated and answered */
    FASTINVAL_DEVICE_TLB_TIMEOUT = 1,          /* the VMM gives up on the device (as the unit's own time-out) */
    FASTINVAL_DEVICE_TLB_COMPLETION_ERROR = 2  /* the device invalidated, its completion message was malformed */
};

/* VT-d capability flags (fastinval_vtd_options.flags). 0 gives the default part: everything on, caching mode off. */
#define FASTINVAL_VTD_NO_SCALABLE_MODE       0x001u /* ECAP.SMTS off: 128-bit descriptors only */
#define FASTINVAL_VTD_NO_PASID               0x002u /* ECAP.PASID off */
#define FASTINVAL_VTD_NO_DEVICE_TLB          0x004u /* ECAP.DT off: device-TLB descriptors are invalid types */
#define FASTINVAL_VTD_NO_THROTTLING          0x008u /* ECAP.DIT off: PFSID fields reserved */
#define FASTINVAL_VTD_NO_PAGE_REQUEST_DRAIN  0x010u /* ECAP.PDS off: the wait descriptor's PD bit reserved */
#define FASTINVAL_VTD_NO_INTERRUPT_REMAPPING 0x020u /* ECAP.IR off: the IEC descriptor is an invalid type */
#define FASTINVAL_VTD_NO_DRAIN_READS         0x040u /* CAP.DRD off */
#define FASTINVAL_VTD_NO_DRAIN_WRITES        0x080u /* CAP.DWD off */
#define FASTINVAL_VTD_CACHING_MODE           0x100u /* CAP.CM on */
#define FASTINVAL_VTD_MAMV_ZERO              0x200u /* CAP.MAMV = 0 (max_address_mask must then be 0) */
#define FASTINVAL_VTD_MHMV_ZERO              0x400u /* ECAP.MHMV = 0 (max_handle_mask must then be 0) */

/* VT-d unit options. size must be sizeof(struct fastinval_vtd_options), or 64 (the first version of the struct, which
 * ended before device_tlb); a zeroed struct with size set (or NULL) is the default part. With an engine handle given to
 * fastinval_vtd_create, engine.size must be 0 and fault_plan NULL. */
struct fastinval_vtd_options {
    uint32_t size;
    uint32_t flags;                             /* FASTINVAL_VTD_* */
    uint8_t host_address_width;                 /* HAW 32-64; 0 = 48 */
    uint8_t max_address_mask;                   /* CAP.MAMV 1-63; 0 = 18 */
    uint8_t max_handle_mask;                    /* ECAP.MHMV 1-15; 0 = 15 */
    uint8_t reserved0;                          /* must be 0 */
    uint32_t reserved1;                         /* must be 0 */
    struct fastinval_engine_options engine;     /* the unit's own engine; size 0 = defaults */
    const struct fastinval_fault_plan *fault_plan; /* copied; NULL = none. Also decides descriptor-fetch errors */
    fastinval_interrupt_fn interrupt;           /* every MSI the unit sends (FEUADDR:FEADDR/FEDATA, IEUADDR:IEADDR/IEDATA); NULL = none */
    void *interrupt_user;                       /* passed to interrupt; must be NULL without it */
    struct fastinval_device_tlb_sink device_tlb; /* zeroed = none: the fault plan answers device-TLB invalidations */
};

/* SMMUv3 capability flags (fastinval_smmu_options.flags). 0 gives the default part (SMMUv3.1 with RIL, both stages,
 * ATS, MSI, SEV, 16-bit ASID and VMID, 20-bit SubstreamIDs, strict RES0 checks; no PRI, no stall). */
#define FASTINVAL_SMMU_NO_STAGE1             0x001u
#define FASTINVAL_SMMU_NO_STAGE2             0x002u
#define FASTINVAL_SMMU_NO_RANGE_INVALIDATION 0x004u /* IDR3.RIL off */
#define FASTINVAL_SMMU_NO_ATS                0x008u /* CMD_ATC_INV is CERROR_ILL */
#define FASTINVAL_SMMU_PRI                   0x010u /* IDR0.PRI on */
#define FASTINVAL_SMMU_STALL                 0x020u /* stall model allows stalling */
#define FASTINVAL_SMMU_NO_MSI                0x040u
#define FASTINVAL_SMMU_NO_SEV                0x080u
#define FASTINVAL_SMMU_NO_ASID16             0x100u
#define FASTINVAL_SMMU_NO_VMID16             0x200u
#define FASTINVAL_SMMU_LAX_RESERVED          0x400u /* ignore non-zero RES0 command fields (as QEMU) */
#define FASTINVAL_SMMU_NO_SUBSTREAMS         0x800u /* IDR1.SSIDSIZE = 0 (substream_id_bits must then be 0) */

/* SMMUv3 options. size must be sizeof(struct fastinval_smmu_options) or 64; the other rules are those of the VT-d
 * options. */
struct fastinval_smmu_options {
    uint32_t size;
    uint32_t flags;                             /* FASTINVAL_SMMU_* */
    uint8_t substream_id_bits;                  /* IDR1.SSIDSIZE 1-20; 0 = 20 */
    uint8_t stream_id_bits;                     /* IDR1.SIDSIZE 1-32; 0 = 16 */
    uint8_t max_cmdq_log2;                      /* IDR1.CMDQS 1-19; 0 = 19 */
    uint8_t output_address_bits;                /* IDR5.OAS: 32, 36, 40, 42, 44, 48 or 52; 0 = 48 */
    uint32_t reserved;                          /* must be 0 */
    struct fastinval_engine_options engine;
    const struct fastinval_fault_plan *fault_plan; /* also decides command-fetch errors */
    fastinval_interrupt_fn interrupt;           /* MSIs (CMD_SYNC, GERROR) and the wired outputs; NULL = none */
    void *interrupt_user;
    struct fastinval_device_tlb_sink device_tlb; /* CMD_ATC_INV as requests; zeroed = none */
};

/* AMD-Vi capability flags (fastinval_amdvi_options.flags). 0 gives the default part: guest translation with 20-bit
 * PASIDs (EFR.GTSup, PASMax 19, GLXSup 1), remote IOTLBs (IotlbSup), INVALIDATE_IOMMU_ALL (EFR.IASup), NXSup. */
#define FASTINVAL_AMDVI_NO_GUEST_TRANSLATION 0x1u /* EFR.GTSup off: GN is a reserved bit */
#define FASTINVAL_AMDVI_NO_DEVICE_TLB        0x2u /* IotlbSup off: INVALIDATE_IOTLB_PAGES is illegal */
#define FASTINVAL_AMDVI_NO_INVALIDATE_ALL    0x4u /* EFR.IASup off: INVALIDATE_IOMMU_ALL is illegal */

/* AMD-Vi options. size must be sizeof(struct fastinval_amdvi_options); the other rules are those of the VT-d options. */
struct fastinval_amdvi_options {
    uint32_t size;
    uint32_t flags;                             /* FASTINVAL_AMDVI_* */
    uint64_t reserved;                          /* must be 0 */
    struct fastinval_engine_options engine;
    const struct fastinval_fault_plan *fault_plan; /* also decides command-fetch errors */
    fastinval_interrupt_fn interrupt;           /* called with FASTINVAL_INTERRUPT_AMDVI, 0, 0; NULL = none */
    void *interrupt_user;
    struct fastinval_device_tlb_sink device_tlb; /* INVALIDATE_IOTLB_PAGES as requests; zeroed = none */
};

/* Sources of a notifier record (where its descriptor came from, and what source_index counts). */
enum fastinval_record_source {
    FASTINVAL_SOURCE_ENGINE = 0,      /* fastinval_execute: the position in the batch */
    FASTINVAL_SOURCE_VTD_QUEUE = 1,   /* a VT-d invalidation queue: the descriptor's slot (IQH / descriptor width) */
    FASTINVAL_SOURCE_SMMU_CMDQ = 2,   /* an SMMUv3 command queue: the CONS index the command was consumed at */
    FASTINVAL_SOURCE_IOMMUFD = 3,     /* an IOMMU_HWPT_INVALIDATE entry: its position in the request array */
    FASTINVAL_SOURCE_AMDVI_CMDBUF = 4 /* an AMD-Vi command buffer: the command's slot (head offset / 16) */
};

/*
 * struct fastinval_invalidation_record - what an engine really invalidated: the executed descriptor (exactly the
 * entries it removed), its outcome (FASTINVAL_STATUS_OK or _COMPLETION_ERROR: timed-out and invalid descriptors changed
 * nothing and give no record) and its source. 48 bytes, the engine's own layout (no copy is made for the callback).
 */
struct fastinval_invalidation_record {
    struct fastinval_descriptor descriptor;
    uint64_t source_index;
    uint8_t source;                   /* enum fastinval_record_source */
    uint8_t status;                   /* enum fastinval_status */
    uint8_t reserved[6];              /* 0 */
};

/* Notifier filter: which records a subscriber receives. scopes 0 = every cache; a criterion applies only when its
 * FASTINVAL_FILTER_* flag is set. A record is delivered unless it provably removes no entry the filter selects (the
 * rules of docs/notifiers.md). size must be sizeof(struct fastinval_notifier_filter). */
#define FASTINVAL_NOTIFY_IOTLB      0x1u
#define FASTINVAL_NOTIFY_DEVICE_TLB 0x2u
#define FASTINVAL_NOTIFY_CONFIG     0x4u
#define FASTINVAL_FILTER_DOMAIN        0x1u /* domain_id */
#define FASTINVAL_FILTER_ADDRESS_SPACE 0x2u /* address_space_id (at most FASTINVAL_ADDRESS_SPACE_MAX, or _NONE) */
#define FASTINVAL_FILTER_SOURCE        0x4u /* source_id */
#define FASTINVAL_FILTER_RANGE         0x8u /* [first, last], first <= last */
struct fastinval_notifier_filter {
    uint32_t size;
    uint8_t scopes;                   /* FASTINVAL_NOTIFY_* */
    uint8_t flags;                    /* FASTINVAL_FILTER_* */
    uint16_t domain_id;
    uint32_t address_space_id;
    uint32_t source_id;
    uint64_t first;
    uint64_t last;
};

/* Called once per executed batch (a fastinval_execute, a VT-d queue run between two waits, an SMMUv3 run between two
 * CMD_SYNCs, an AMD-Vi run between two COMPLETION_WAITs, an iommufd chunk) with that batch's records that pass the filter, in execution order, count >= 1; after the
 * whole batch was applied and before the wait / CMD_SYNC that follows completes. @records is valid only during the call. */
typedef void (*fastinval_notify_fn)(void *user, const struct fastinval_invalidation_record *records, size_t count);

FASTINVAL_STATIC_ASSERT(sizeof(struct fastinval_device_tlb_request) == 64, "device-TLB request is 64 bytes");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_device_tlb_request, descriptor) == 8, "request descriptor at 8");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_device_tlb_request, index) == 40, "request index at 40");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_device_tlb_request, ordinal) == 48, "request ordinal at 48");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_device_tlb_request, source) == 56, "request source at 56");
FASTINVAL_STATIC_ASSERT(sizeof(struct fastinval_device_tlb_sink) == 32, "device-TLB sink is 32 bytes (LP64)");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_device_tlb_sink, timeout_ns) == 16, "sink timeout at 16");
FASTINVAL_STATIC_ASSERT(sizeof(struct fastinval_vtd_options) == 96, "VT-d options are 96 bytes (LP64)");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_vtd_options, device_tlb) == 64, "VT-d device-TLB sink at 64");
FASTINVAL_STATIC_ASSERT(sizeof(struct fastinval_smmu_options) == 96, "SMMU options are 96 bytes (LP64)");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_smmu_options, device_tlb) == 64, "SMMU device-TLB sink at 64");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_vtd_options, host_address_width) == 8, "VT-d HAW at 8");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_vtd_options, engine) == 16, "VT-d engine options at 16");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_vtd_options, fault_plan) == 40, "VT-d fault plan at 40");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_vtd_options, interrupt) == 48, "VT-d interrupt at 48");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_vtd_options, interrupt_user) == 56, "VT-d interrupt user at 56");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_smmu_options, substream_id_bits) == 8, "SMMU SSID bits at 8");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_smmu_options, engine) == 16, "SMMU engine options at 16");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_smmu_options, interrupt) == 48, "SMMU interrupt at 48");
FASTINVAL_STATIC_ASSERT(sizeof(struct fastinval_amdvi_options) == 96, "AMD-Vi options are 96 bytes (LP64)");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_amdvi_options, reserved) == 8, "AMD-Vi reserved at 8");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_amdvi_options, engine) == 16, "AMD-Vi engine options at 16");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_amdvi_options, fault_plan) == 40, "AMD-Vi fault plan at 40");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_amdvi_options, interrupt) == 48, "AMD-Vi interrupt at 48");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_amdvi_options, interrupt_user) == 56, "AMD-Vi interrupt user at 56");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_amdvi_options, device_tlb) == 64, "AMD-Vi device-TLB sink at 64");
FASTINVAL_STATIC_ASSERT(sizeof(struct fastinval_invalidation_record) == 48, "record is 48 bytes");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_invalidation_record, descriptor) == 0, "record descriptor at 0");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_invalidation_record, source_index) == 32, "record source_index at 32");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_invalidation_record, source) == 40, "record source at 40");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_invalidation_record, status) == 41, "record status at 41");
FASTINVAL_STATIC_ASSERT(sizeof(struct fastinval_notifier_filter) == 32, "notifier filter is 32 bytes");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_notifier_filter, address_space_id) == 8, "filter address space at 8");
FASTINVAL_STATIC_ASSERT(offsetof(struct fastinval_notifier_filter, first) == 16, "filter first at 16");

/* Sizes of the state images (fastinval_vtd_save_state / fastinval_smmu_save_state / fastinval_amdvi_save_state of this
 * library version). */
#define FASTINVAL_VTD_STATE_SIZE   136
#define FASTINVAL_SMMU_STATE_SIZE  128
#define FASTINVAL_AMDVI_STATE_SIZE 144

/* ---- Guest memory ---- */

/* fastinval_guest_memory_create - an empty guest-physical address space over pointer ranges (fastinval_guest_memory_map).
 * Returns 0, -EFAULT (out NULL), -ENOMEM, -EMFILE. */
int fastinval_guest_memory_create(fastinval_guest_memory_t *out);

/* fastinval_guest_memory_create_callbacks - an address space reached through @read and @write (the VMM's own DMA
 * accessors), called with @user. Returns 0, -EFAULT (a callback or out NULL), -ENOMEM, -EMFILE. */
int fastinval_guest_memory_create_callbacks(fastinval_guest_read_fn read, fastinval_guest_write_fn write, void *user,
                                            fastinval_guest_memory_t *out);

/* fastinval_guest_memory_destroy - end the handle (units made over it keep the address space). Returns 0, -EBADF, -EBUSY. */
int fastinval_guest_memory_destroy(fastinval_guest_memory_t mem);

/*
 * fastinval_guest_memory_map - map @length bytes of this process's memory at @host (an mmap'd RAM block, any size) at
 * guest-physical @gpa. The library never frees or pins it; accesses copy to and from it directly. Ranges may not
 * overlap; an access may span adjacent ranges. May run while units use the address space.
 * Returns 0, -EBADF, -EFAULT (host NULL), -EINVAL (length 0, wraps past 2^64, overlaps a mapping, or a callback space).
 */
int fastinval_guest_memory_map(fastinval_guest_memory_t mem, uint64_t gpa, void *host, uint64_t length);

/* fastinval_guest_memory_unmap - remove the range that starts at @gpa. It does not wait for accesses already under way on
 * other threads. Returns 0, -EBADF, -ENOENT (no range starts there), -EINVAL (a callback space). */
int fastinval_guest_memory_unmap(fastinval_guest_memory_t mem, uint64_t gpa);

/* fastinval_guest_memory_read / _write - copy @len bytes between guest-physical @gpa and @buf, all or nothing (as a unit
 * does). Returns 0, -EBADF, -EFAULT (buf NULL with len > 0, or a guest fault: some byte unmapped), -EINVAL (len > INT32_MAX). */
int fastinval_guest_memory_read(fastinval_guest_memory_t mem, uint64_t gpa, void *buf, size_t len);
int fastinval_guest_memory_write(fastinval_guest_memory_t mem, uint64_t gpa, const void *buf, size_t len);

/* ---- Units ---- */

/*
 * fastinval_vtd_create / fastinval_smmu_create / fastinval_amdvi_create - a unit at power-on state over the address
 * space @mem.
 * @options: NULL for the default part.
 * @engine:  0 for the unit's own engine (from options->engine and ->fault_plan, destroyed with the unit), or an engine
 *           handle (not a unit's) whose caches the unit then shares with the engine's other users.
 * Returns 0, -EFAULT (out NULL), -EBADF (mem or engine), -EINVAL (size, reserved field, unknown flag, value out of range,
 * engine options or fault plan given with an engine handle), -ENOMEM, -EMFILE.
 */
int fastinval_vtd_create(fastinval_guest_memory_t mem, const struct fastinval_vtd_options *options,
                         fastinval_engine_t engine, fastinval_vtd_t *out);
int fastinval_smmu_create(fastinval_guest_memory_t mem, const struct fastinval_smmu_options *options,
                          fastinval_engine_t engine, fastinval_smmu_t *out);
int fastinval_amdvi_create(fastinval_guest_memory_t mem, const struct fastinval_amdvi_options *options,
                           fastinval_engine_t engine, fastinval_amdvi_t *out);

/* fastinval_vtd_destroy / fastinval_smmu_destroy / fastinval_amdvi_destroy - destroy the unit (and its own engine). Returns 0, -EBADF, -EBUSY (a
 * call on the unit, or on its handle used as an engine handle, is in flight: also from inside its own callbacks). */
int fastinval_vtd_destroy(fastinval_vtd_t unit);
int fastinval_smmu_destroy(fastinval_smmu_t unit);
int fastinval_amdvi_destroy(fastinval_amdvi_t unit);

/*
 * fastinval_vtd_read / _write, fastinval_smmu_read / _write, fastinval_amdvi_read / _write - an MMIO access of @size 4
 * or 8 bytes at @offset in the unit's register window (VT-d: 4 KiB; SMMUv3: page 0, 64 KiB; AMD-Vi: 16 KiB, 64-bit
 * registers of which a 4-byte access reaches one half). An 8-byte access to a pair of 32-bit registers is the
 * low one then the high one. A guest access the unit does not claim (misaligned, outside the window, unimplemented)
 * reads 0 and ignores the write, and still returns 0: it is the guest's business. A write that lets the queue run (VT-d
 * IQT, GCMD.QIE, FSTS clearing IQE / ITE; SMMUv3 CMDQ_PROD, CR0.CMDQEN, GERRORN; AMD-Vi Command Buffer Tail, Control)
 * processes it before returning.
 * Returns 0, -EBADF, -EFAULT (value NULL), -EINVAL (size not 4 or 8: a VMM answers other guest sizes itself).
 */
int fastinval_vtd_read(fastinval_vtd_t unit, uint32_t offset, uint32_t size, uint64_t *value);
int fastinval_vtd_write(fastinval_vtd_t unit, uint32_t offset, uint32_t size, uint64_t value);
int fastinval_smmu_read(fastinval_smmu_t unit, uint32_t offset, uint32_t size, uint64_t *value);
int fastinval_smmu_write(fastinval_smmu_t unit, uint32_t offset, uint32_t size, uint64_t value);
int fastinval_amdvi_read(fastinval_amdvi_t unit, uint32_t offset, uint32_t size, uint64_t *value);
int fastinval_amdvi_write(fastinval_amdvi_t unit, uint32_t offset, uint32_t size, uint64_t value);

/*
 * fastinval_vtd_save_state / fastinval_smmu_save_state / fastinval_amdvi_save_state - write the unit's versioned state image (registers, queue
 * positions, pending errors; not the caches) into @buf. With @size 0 (buf may be NULL) only the image size is returned.
 * Take it between register accesses, with the guest stopped.
 * Returns the image size (> 0), -EBADF, -EFAULT (buf NULL with size > 0), -ERANGE (size too small: nothing written),
 * -EBUSY (from inside the unit's callback, or while a device-TLB request is unanswered: wait for the answers or their
 * time-out).
 */
int fastinval_vtd_save_state(fastinval_vtd_t unit, void *buf, size_t size);
int fastinval_smmu_save_state(fastinval_smmu_t unit, void *buf, size_t size);
int fastinval_amdvi_save_state(fastinval_amdvi_t unit, void *buf, size_t size);

/* fastinval_vtd_restore_state / fastinval_smmu_restore_state / fastinval_amdvi_restore_state - replace the registers and queue state with an image saved
 * by a unit with the same options; nothing is processed and no interrupt sent by the restore itself. The image is checked
 * whole first: a bad one changes nothing. Returns 0, -EBADF, -EFAULT (image NULL), -EINVAL (short, wrong magic, version,
 * size or capabilities, impossible values), -EBUSY (from inside the unit's callback). */
int fastinval_vtd_restore_state(fastinval_vtd_t unit, const void *image, size_t size);
int fastinval_smmu_restore_state(fastinval_smmu_t unit, const void *image, size_t size);
int fastinval_amdvi_restore_state(fastinval_amdvi_t unit, const void *image, size_t size);

/* fastinval_vtd_reset / fastinval_smmu_reset / fastinval_amdvi_reset - power-on state; the unit's own engine is emptied too (a caller's engine is
 * left to its owner). Returns 0, -EBADF, -EBUSY (from inside the unit's callback). */
int fastinval_vtd_reset(fastinval_vtd_t unit);
int fastinval_smmu_reset(fastinval_smmu_t unit);
int fastinval_amdvi_reset(fastinval_amdvi_t unit);

/*
 * fastinval_device_tlb_complete - answer device-TLB request @ticket of @unit (a VT-d, SMMUv3 or AMD-Vi unit handle) with
 * @outcome (enum fastinval_device_tlb_outcome). From any thread, also from inside the request callback. The answer is
 * applied on the calling thread: the entries are removed, the error raised, and a held wait, CMD_SYNC or COMPLETION_WAIT
 * released, which runs the queue on (interrupt and notifier callbacks then run on this thread). While requests are unanswered, save_state gives
 * -EBUSY; reset and restore_state drop them (their entries are removed, their tickets refused from then on).
 * Returns 0, -EBADF (not a live unit handle), -EINVAL (unknown outcome), -ENOENT (the ticket is not outstanding:
 * never issued, answered already, timed out, dropped, or the unit has no sink).
 */
int fastinval_device_tlb_complete(uint64_t unit, uint64_t ticket, uint32_t outcome);

/* ---- Notifiers ---- */

/*
 * fastinval_notifier_subscribe - call @fn(@user, records, count) for the records of every batch @target's engine
 * executes from now on that pass @filter (NULL = everything). @target: an engine handle, or a unit's handle (its engine).
 * Returns 0, -EBADF, -EFAULT (fn or out NULL), -EINVAL (filter size, unknown bits, an address space that is no id, an
 * empty range), -ENOMEM, -EMFILE.
 */
int fastinval_notifier_subscribe(fastinval_engine_t target, const struct fastinval_notifier_filter *filter,
                                 fastinval_notify_fn fn, void *user, fastinval_notifier_t *out);

/*
 * fastinval_notifier_unsubscribe - from any thread. From another thread than a running call of this notifier, it
 * returns once that call has returned; from inside it, at once. Either way no call of it starts afterwards.
 * Returns 0, -EBADF.
 */
int fastinval_notifier_unsubscribe(fastinval_notifier_t notifier);

/* ==== end of VT-d, SMMUv3 and AMD-Vi units ======================================================================= */
/* ---- iommufd state: migration and reset ------------------------------------------------------------------------ */

/*
 * fastinval_iommufd_save_state - write the context's state image (its object table: every object with its id and
 * links, tombstoned ids, the options that change answers; format in docs/migration.md) into @buf.
 * @buf:    the caller's buffer of @size bytes; NULL with @size 0 asks for the size only.
 * @needed: receives the image size in bytes (also when the buffer is too small).
 * Call it between ioctls on the context. The image holds user addresses, never user memory, and no cached entries.
 * Returns 0, -EBADF, -EFAULT (@needed NULL, or @buf NULL with @size > 0), -ERANGE (@size below the image size:
 * nothing written).
 */
int fastinval_iommufd_save_state(fastinval_iommufd_t ctx, void *buf, size_t size, size_t *needed);

/*
 * fastinval_iommufd_restore_state - fill a fresh context (just created, or after fastinval_iommufd_reset) with the
 * object table of an image from fastinval_iommufd_save_state of a context with the same options: later ioctls answer
 * with the ids and errnos the source would have given. The image is checked whole first: on any error nothing changes.
 * Returns 0, -EBADF, -EFAULT (@image NULL with @size > 0), -EINVAL (a truncated, corrupt or foreign image, or one from
 * a context with other options), -EEXIST (the context is not fresh: it holds objects or tombstoned ids; checked first).
 */
int fastinval_iommufd_restore_state(fastinval_iommufd_t ctx, const void *image, size_t size);

/*
 * fastinval_iommufd_reset - return the context to the state of a freshly created one: every object destroyed (bound
 * devices too), ids restarting at 1, the engines' caches emptied. Returns 0, -EBADF.
 */
int fastinval_iommufd_reset(fastinval_iommufd_t ctx);

/*
 * fastinval_iommufd_fault_fd - the descriptor of fault object @fault_id: what IOMMU_FAULT_QUEUE_ALLOC answered in
 * out_fault_fd or, after fastinval_iommufd_restore_state, the fresh descriptor the restore opened for a fault object whose
 * descriptor was open in the image (descriptor numbers are not in the image). Returns the descriptor (>= 0), -ENOENT
 * (no fault object with that id, or its descriptor is closed), -EBADF (bad handle).
 */
int fastinval_iommufd_fault_fd(fastinval_iommufd_t ctx, uint32_t fault_id);
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
