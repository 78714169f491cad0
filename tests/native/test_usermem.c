/*
 * The iommufd ioctl over this process's real memory: pointers that do not resolve (an unmapped page, a read-only page
 * for a write-back, NULL, a kernel address) are EFAULT, never a signal; everything that resolves works in place.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fastinval.h"
#include "check.h"
#include "iommufd_structs.h"

static long page;

/* Three pages: [0] read-write, [1] read-only, [2] unmapped. */
static uint8_t *three_pages(void)
{
    uint8_t *p = mmap(NULL, 3 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED);
    memset(p, 0, 2 * page);
    CHECK_EQ(munmap(p + 2 * page, page), 0);
    return p;
}

static void make_read_only(uint8_t *p) { CHECK_EQ(mprotect(p + page, page, PROT_READ), 0); }

static int test_cmd(fastinval_iommufd_t fd, struct iommu_test_cmd *c) { return fastinval_iommufd_ioctl(fd, IOMMU_TEST_CMD, c); }

static int check_iotlb(fastinval_iommufd_t fd, uint32_t hwpt, uint32_t slot, uint32_t value)
{
    struct iommu_test_cmd c;
    memset(&c, 0, sizeof c);
    c.size = sizeof c;
    c.op = IOMMU_TEST_OP_MD_CHECK_IOTLB;
    c.id = hwpt;
    c.check_iotlb.id = slot;
    c.check_iotlb.iotlb = value;
    return test_cmd(fd, &c);
}

static void test_argument_struct(fastinval_iommufd_t fd)
{
    uint8_t *p = three_pages();
    /* The whole struct in the unmapped page: nothing is read. */
    CHECK_EQ(fastinval_iommufd_ioctl(fd, IOMMU_IOAS_ALLOC, p + 2 * page), -EFAULT);
    /* size readable, the rest not: the struct straddles into the unmapped page. */
    uint8_t *tail = p + 2 * page - 4;
    *(uint32_t *)tail = 12;
    CHECK_EQ(fastinval_iommufd_ioctl(fd, IOMMU_IOAS_ALLOC, tail), -EFAULT);
    /* A longer user struct: its tail must be zero (E2BIG) and readable (EFAULT), checked in address order. */
    struct iommu_ioas_alloc *a = (struct iommu_ioas_alloc *)(p + 2 * page - 16);
    memset(a, 0, 16);
    a->size = 16;
    CHECK_EQ(fastinval_iommufd_ioctl(fd, IOMMU_IOAS_ALLOC, a), 0); /* 4 zero bytes of tail, all mapped */
    a->size = 20;
    CHECK_EQ(fastinval_iommufd_ioctl(fd, IOMMU_IOAS_ALLOC, a), -EFAULT); /* the tail runs into the unmapped page */
    ((uint8_t *)a)[15] = 1;
    CHECK_EQ(fastinval_iommufd_ioctl(fd, IOMMU_IOAS_ALLOC, a), -E2BIG); /* non-zero byte met before the fault */
    /* An answer that cannot be written back: a read-only argument struct. */
    struct iommu_ioas_alloc *ro = (struct iommu_ioas_alloc *)(p + page);
    ro->size = sizeof *ro;
    make_read_only(p);
    CHECK_EQ(fastinval_iommufd_ioctl(fd, IOMMU_IOAS_ALLOC, ro), -EFAULT);
    CHECK_EQ(ro->out_ioas_id, 0);
    /* NULL and a kernel-half address. */
    CHECK_EQ(fastinval_iommufd_ioctl(fd, IOMMU_IOAS_ALLOC, NULL), -EFAULT);
    CHECK_EQ(fastinval_iommufd_ioctl(fd, IOMMU_IOAS_ALLOC, (void *)(uintptr_t)0xffff888000000000ull), -EFAULT);
    CHECK_EQ(munmap(p, 2 * page), 0);
}

static void test_invalidate_arrays(fastinval_iommufd_t fd)
{
    struct iommu_ioas_alloc ioas = { sizeof ioas, 0, 0 };
    CHECK_EQ(fastinval_iommufd_ioctl(fd, IOMMU_IOAS_ALLOC, &ioas), 0);
    struct iommu_test_cmd md;
    memset(&md, 0, sizeof md);
    md.size = sizeof md;
    md.op = IOMMU_TEST_OP_MOCK_DOMAIN;
    md.id = ioas.out_ioas_id;
    CHECK_EQ(test_cmd(fd, &md), 0);
    uint32_t idev = md.mock_domain.out_idev_id;

    struct iommu_hwpt_alloc parent;
    memset(&parent, 0, sizeof parent);
    parent.size = sizeof parent;
    parent.flags = IOMMU_HWPT_ALLOC_NEST_PARENT;
    parent.dev_id = idev;
    parent.pt_id = ioas.out_ioas_id;
    CHECK_EQ(fastinval_iommufd_ioctl(fd, IOMMU_HWPT_ALLOC, &parent), 0);

    uint8_t *p = three_pages();
    struct iommu_hwpt_selftest data = { IOMMU_TEST_IOTLB_DEFAULT };
    struct iommu_hwpt_alloc nested;
    memset(&nested, 0, sizeof nested);
    nested.size = sizeof nested;
    nested.dev_id = idev;
    nested.pt_id = parent.out_hwpt_id;
    nested.data_type = IOMMU_HWPT_DATA_SELFTEST;
    nested.data_len = sizeof data;
    nested.data_uptr = (uintptr_t)(p + 2 * page); /* data_uptr unmapped */
    CHECK_EQ(fastinval_iommufd_ioctl(fd, IOMMU_HWPT_ALLOC, &nested), -EFAULT);
    nested.data_uptr = (uintptr_t)&data;
    CHECK_EQ(fastinval_iommufd_ioctl(fd, IOMMU_HWPT_ALLOC, &nested), 0);
    uint32_t hwpt = nested.out_hwpt_id;
    for (uint32_t i = 0; i < 4; i++) CHECK_EQ(check_iotlb(fd, hwpt, i, IOMMU_TEST_IOTLB_DEFAULT), 0);

    /* An entry array whose second entry lies in the unmapped page: the first is done and counted. */
    struct iommu_hwpt_invalidate_selftest *e = (struct iommu_hwpt_invalidate_selftest *)(p + 2 * page - sizeof *e);
    e[0].flags = 0;
    e[0].iotlb_id = 1;
    struct iommu_hwpt_invalidate inv;
    memset(&inv, 0, sizeof inv);
    inv.size = sizeof inv;
    inv.hwpt_id = hwpt;
    inv.data_uptr = (uintptr_t)e;
    inv.data_type = IOMMU_HWPT_INVALIDATE_DATA_SELFTEST;
    inv.entry_len = sizeof *e;
    inv.entry_num = 2;
    CHECK_EQ(fastinval_iommufd_ioctl(fd, IOMMU_HWPT_INVALIDATE, &inv), -EFAULT);
    CHECK_EQ(inv.entry_num, 1);
    CHECK_EQ(check_iotlb(fd, hwpt, 1, 0), 0);
    CHECK_EQ(check_iotlb(fd, hwpt, 2, IOMMU_TEST_IOTLB_DEFAULT), 0);

    /* data_uptr entirely unmapped: nothing handled. */
    inv.data_uptr = (uintptr_t)(p + 2 * page);
    inv.entry_num = 1;
    CHECK_EQ(fastinval_iommufd_ioctl(fd, IOMMU_HWPT_INVALIDATE, &inv), -EFAULT);
    CHECK_EQ(inv.entry_num, 0);

    /* A read-only entry array is fine when nothing is written back into it (mainline layout) ... */
    struct iommu_hwpt_invalidate_selftest *roe = (struct iommu_hwpt_invalidate_selftest *)(p + page);
    roe[0].flags = 0;
    roe[0].iotlb_id = 2;
    make_read_only(p);
    inv.data_uptr = (uintptr_t)roe;
    inv.entry_num = 1;
    CHECK_EQ(fastinval_iommufd_ioctl(fd, IOMMU_HWPT_INVALIDATE, &inv), 0);
    CHECK_EQ(inv.entry_num, 1);
    CHECK_EQ(check_iotlb(fd, hwpt, 2, 0), 0);

    /* ... but the invalidate struct itself gets entry_num written back: read-only is EFAULT after the work is done. */
    struct iommu_hwpt_invalidate *roinv = (struct iommu_hwpt_invalidate *)(p + page + 64);
    CHECK_EQ(check_iotlb(fd, hwpt, 3, IOMMU_TEST_IOTLB_DEFAULT), 0);
    CHECK_EQ(mprotect(p + page, page, PROT_READ | PROT_WRITE), 0);
    memcpy(roinv, &inv, sizeof inv);
    roe[0].iotlb_id = 3;
    make_read_only(p);
    CHECK_EQ(fastinval_iommufd_ioctl(fd, IOMMU_HWPT_INVALIDATE, roinv), -EFAULT);
    CHECK_EQ(check_iotlb(fd, hwpt, 3, 0), 0);
    CHECK_EQ(munmap(p, 2 * page), 0);
}

/* The per-entry hw_error layout writes into the entry array: a read-only array is EFAULT there. */
static void test_hw_error_write_back(void)
{
    struct fastinval_iommufd_options o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.flags = FASTINVAL_IOMMUFD_SELFTEST | FASTINVAL_IOMMUFD_VTD_HW_ERROR;
    fastinval_iommufd_t fd = 0;
    CHECK_EQ(fastinval_iommufd_create(&o, &fd), 0);
    struct iommu_ioas_alloc ioas = { sizeof ioas, 0, 0 };
    CHECK_EQ(fastinval_iommufd_ioctl(fd, IOMMU_IOAS_ALLOC, &ioas), 0);
    struct iommu_test_cmd md;
    memset(&md, 0, sizeof md);
    md.size = sizeof md;
    md.op = IOMMU_TEST_OP_MOCK_DOMAIN;
    md.id = ioas.out_ioas_id;
    CHECK_EQ(test_cmd(fd, &md), 0);
    struct iommu_hwpt_alloc parent;
    memset(&parent, 0, sizeof parent);
    parent.size = sizeof parent;
    parent.flags = IOMMU_HWPT_ALLOC_NEST_PARENT;
    parent.dev_id = md.mock_domain.out_idev_id;
    parent.pt_id = ioas.out_ioas_id;
    CHECK_EQ(fastinval_iommufd_ioctl(fd, IOMMU_HWPT_ALLOC, &parent), 0);
    struct iommu_hwpt_selftest data = { IOMMU_TEST_IOTLB_DEFAULT };
    struct iommu_hwpt_alloc nested;
    memset(&nested, 0, sizeof nested);
    nested.size = sizeof nested;
    nested.dev_id = md.mock_domain.out_idev_id;
    nested.pt_id = parent.out_hwpt_id;
    nested.data_type = IOMMU_HWPT_DATA_SELFTEST;
    nested.data_len = sizeof data;
    nested.data_uptr = (uintptr_t)&data;
    CHECK_EQ(fastinval_iommufd_ioctl(fd, IOMMU_HWPT_ALLOC, &nested), 0);

    uint8_t *p = three_pages();
    uint32_t *entry = (uint32_t *)p; /* { flags, iotlb_id, hw_error, __reserved }: 16 bytes */
    entry[0] = 2;                    /* TRIGGER_ERROR: hw_error comes back as FAKE_ERROR */
    entry[1] = 0;
    entry[2] = 0x55;
    struct iommu_hwpt_invalidate inv;
    memset(&inv, 0, sizeof inv);
    inv.size = sizeof inv;
    inv.hwpt_id = nested.out_hwpt_id;
    inv.data_uptr = (uintptr_t)entry;
    inv.data_type = IOMMU_HWPT_INVALIDATE_DATA_SELFTEST;
    inv.entry_len = 16;
    inv.entry_num = 1;
    CHECK_EQ(fastinval_iommufd_ioctl(fd, IOMMU_HWPT_INVALIDATE, &inv), 0);
    CHECK_EQ(entry[2], 1); /* written back in place */
    uint32_t *ro = (uint32_t *)(p + page);
    memcpy(ro, entry, 16);
    ro[2] = 0x55;
    make_read_only(p);
    inv.data_uptr = (uintptr_t)ro;
    CHECK_EQ(fastinval_iommufd_ioctl(fd, IOMMU_HWPT_INVALIDATE, &inv), -EFAULT);
    CHECK_EQ(ro[2], 0x55);
    CHECK_EQ(munmap(p, 2 * page), 0);
    CHECK_EQ(fastinval_iommufd_destroy(fd), 0);
}

int main(void)
{
    page = sysconf(_SC_PAGESIZE);
    fastinval_iommufd_t fd = 0;
    CHECK_EQ(fastinval_iommufd_create(NULL, &fd), 0);
    test_argument_struct(fd);
    test_invalidate_arrays(fd);
    CHECK_EQ(fastinval_iommufd_destroy(fd), 0);
    test_hw_error_write_back();
    CHECK_EQ(fastinval_handle_count(), 0);
    return check_report("test_usermem");
}
