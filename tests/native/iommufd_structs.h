/*
 * The iommufd uAPI structs the C tests use, written from the kernel's documented layouts (<linux/iommufd.h> of v6.13+
 * and the selftest's iommufd_test.h). Defined here because the build machine's linux-libc-dev (6.1) has no iommufd.h
 * and no uapi header carries the selftest structs.
 */
#ifndef FASTINVAL_TEST_IOMMUFD_STRUCTS_H
#define FASTINVAL_TEST_IOMMUFD_STRUCTS_H

#include <stdint.h>
#include <sys/ioctl.h>

#define IOMMUFD_TYPE (';')
#define IOMMU_DESTROY _IO(IOMMUFD_TYPE, 0x80)
#define IOMMU_IOAS_ALLOC _IO(IOMMUFD_TYPE, 0x81)
#define IOMMU_HWPT_ALLOC _IO(IOMMUFD_TYPE, 0x89)
#define IOMMU_HWPT_INVALIDATE _IO(IOMMUFD_TYPE, 0x8d)
#define IOMMU_TEST_CMD _IO(IOMMUFD_TYPE, 0xa0)

#define IOMMU_HWPT_ALLOC_NEST_PARENT 1u
#define IOMMU_HWPT_DATA_SELFTEST 0xdeadu
#define IOMMU_HWPT_INVALIDATE_DATA_SELFTEST 0xdeadbeefu
#define IOMMU_TEST_OP_MOCK_DOMAIN 2u
#define IOMMU_TEST_OP_MD_CHECK_IOTLB 14u
#define IOMMU_TEST_IOTLB_DEFAULT 0xbadbeefu
#define IOMMU_TEST_INVALIDATE_FLAG_ALL 1u

struct iommu_ioas_alloc { uint32_t size, flags, out_ioas_id; };
struct iommu_destroy { uint32_t size, id; };
struct iommu_hwpt_alloc {
    uint32_t size, flags, dev_id, pt_id, out_hwpt_id, __reserved, data_type, data_len;
    uint64_t data_uptr;
    uint32_t fault_id;
    uint8_t __reserved2[4];
};
struct iommu_hwpt_invalidate {
    uint32_t size, hwpt_id;
    uint64_t data_uptr;
    uint32_t data_type, entry_len, entry_num, __reserved;
};
struct iommu_hwpt_selftest { uint32_t iotlb; };
struct iommu_hwpt_invalidate_selftest { uint32_t flags, iotlb_id; };
struct iommu_test_cmd {
    uint32_t size, op, id, __reserved;
    union {
        struct { uint32_t out_stdev_id, out_hwpt_id, out_idev_id; } mock_domain;
        struct { uint32_t out_stdev_id, out_hwpt_id, out_idev_id, dev_flags; } mock_domain_flags;
        struct { uint32_t pt_id; } mock_domain_replace;
        struct { uint32_t id, iotlb; } check_iotlb;
        struct { uint64_t length, uptr; uint32_t refs; } check_refs;
        struct { uint32_t limit; } memory_limit;
        struct { uint32_t dev_id, pasid, grpid, perm; uint64_t addr; } trigger_iopf;
        uint8_t raw[56];
    };
};

/* ---- the rest the preload tests use (<linux/iommufd.h> v6.17, iommufd_test.h) ---- */
#define IOMMU_GET_HW_INFO _IO(IOMMUFD_TYPE, 0x8a)
#define IOMMU_FAULT_QUEUE_ALLOC _IO(IOMMUFD_TYPE, 0x8e)
#define IOMMU_HWPT_FAULT_ID_VALID (1u << 2)
#define IOMMU_HW_INFO_FLAG_INPUT_TYPE 1u
#define IOMMU_HW_INFO_TYPE_DEFAULT 0u
#define IOMMU_HW_INFO_TYPE_SELFTEST 0xfeedbeefu
#define IOMMU_HW_INFO_SELFTEST_REGVAL 0xdeadbeefu
#define IOMMU_HW_CAP_DIRTY_TRACKING 1u
#define IOMMU_TEST_OP_MD_CHECK_REFS 4u
#define IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT 9u
#define IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE 10u
#define IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS 12u
#define IOMMU_TEST_OP_TRIGGER_IOPF 15u
#define MOCK_FLAGS_DEVICE_NO_DIRTY (1u << 0)
#define MOCK_FLAGS_DEVICE_PASID (1u << 2)
#define IOMMU_PGFAULT_FLAGS_PASID_VALID (1u << 0)
#define IOMMU_PGFAULT_FLAGS_LAST_PAGE (1u << 1)
#define IOMMU_PGFAULT_PERM_READ (1u << 0)
#define IOMMU_PGFAULT_PERM_WRITE (1u << 1)
#define IOMMUFD_PAGE_RESP_SUCCESS 0u
#define IOMMUFD_PAGE_RESP_INVALID 1u

struct iommu_hw_info {
    uint32_t size, flags, dev_id, data_len;
    uint64_t data_uptr;
    uint32_t in_data_type; /* out_data_type on return */
    uint8_t out_max_pasid_log2;
    uint8_t __reserved[3];
    uint64_t out_capabilities;
};
struct iommu_test_hw_info { uint32_t flags, test_reg; };
struct iommu_fault_alloc { uint32_t size, flags, out_fault_id, out_fault_fd; };
struct iommu_hwpt_pgfault {
    uint32_t flags, dev_id, pasid, grpid, perm, __reserved;
    uint64_t addr;
    uint32_t length, cookie;
};
struct iommu_hwpt_page_response { uint32_t cookie, code; };

_Static_assert(sizeof(struct iommu_hw_info) == 40, "iommu_hw_info");
_Static_assert(sizeof(struct iommu_hwpt_pgfault) == 40, "iommu_hwpt_pgfault");
_Static_assert(sizeof(struct iommu_hwpt_alloc) == 48, "iommu_hwpt_alloc");
_Static_assert(sizeof(struct iommu_hwpt_invalidate) == 32, "iommu_hwpt_invalidate");
_Static_assert(sizeof(struct iommu_test_cmd) == 72, "iommu_test_cmd");

#endif
