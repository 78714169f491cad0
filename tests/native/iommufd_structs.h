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
        struct { uint32_t id, iotlb; } check_iotlb;
        uint8_t raw[56];
    };
};

_Static_assert(sizeof(struct iommu_hwpt_alloc) == 48, "iommu_hwpt_alloc");
_Static_assert(sizeof(struct iommu_hwpt_invalidate) == 32, "iommu_hwpt_invalidate");
_Static_assert(sizeof(struct iommu_test_cmd) == 72, "iommu_test_cmd");

#endif
