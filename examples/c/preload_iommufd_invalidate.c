/*
 * preload_iommufd_invalidate.c - a plain iommufd program: it opens /dev/iommu and calls ioctl(2), and knows nothing of
 * FastInval. Run under the preload it talks to FastInval's user-space /dev/iommu (on a kernel built with
 * CONFIG_IOMMUFD_TEST it would talk to the kernel's):
 *
 *   LD_PRELOAD=artifacts/native/libiommufd-preload.so artifacts/native/examples/preload_iommufd_invalidate
 *
 *   1. open("/dev/iommu"), IOMMU_IOAS_ALLOC      an I/O address space
 *   2. IOMMU_TEST_CMD / MOCK_DOMAIN               the selftest mock device, attached to it
 *   3. IOMMU_HWPT_ALLOC (NEST_PARENT)             a stage-2 parent, then a nested (stage-1) HWPT over it
 *   4. IOMMU_HWPT_INVALIDATE                      three entries, the middle one bad: -1 with errno EINVAL, entry_num 1,
 *                                                 and only the first entry's IOTLB slot was cleared
 *   5. IOMMU_HWPT_INVALIDATE                      an entry array on an unmapped page: EFAULT, entry_num 0, no signal
 *   6. close()
 *
 * Exits 0 when every check holds. The structs are written out from the kernel's documented layouts (<linux/iommufd.h>
 * of v6.13+ and the selftest's iommufd_test.h) because the build machine's linux-libc-dev has no <linux/iommufd.h>.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- <linux/iommufd.h> ---- */
#define IOMMUFD_TYPE (';')
#define IOMMU_IOAS_ALLOC _IO(IOMMUFD_TYPE, 0x81)
#define IOMMU_HWPT_ALLOC _IO(IOMMUFD_TYPE, 0x89)
#define IOMMU_HWPT_INVALIDATE _IO(IOMMUFD_TYPE, 0x8d)
#define IOMMU_HWPT_ALLOC_NEST_PARENT (1u << 0)

struct iommu_ioas_alloc {
    uint32_t size;
    uint32_t flags;
    uint32_t out_ioas_id;
};

struct iommu_hwpt_alloc {
    uint32_t size;
    uint32_t flags;
    uint32_t dev_id;
    uint32_t pt_id;
    uint32_t out_hwpt_id;
    uint32_t __reserved;
    uint32_t data_type;
    uint32_t data_len;
    uint64_t data_uptr;
    uint32_t fault_id;
    uint8_t __reserved2[4];
};

struct iommu_hwpt_invalidate {
    uint32_t size;
    uint32_t hwpt_id;
    uint64_t data_uptr;
    uint32_t data_type;
    uint32_t entry_len;
    uint32_t entry_num;
    uint32_t __reserved;
};

/* ---- tools/testing/selftests/iommu/iommufd_test.h (CONFIG_IOMMUFD_TEST) ---- */
#define IOMMU_TEST_CMD _IO(IOMMUFD_TYPE, 0xa0)
#define IOMMU_TEST_OP_MOCK_DOMAIN 2
#define IOMMU_TEST_OP_MD_CHECK_IOTLB 14
#define IOMMU_HWPT_DATA_SELFTEST 0xdead
#define IOMMU_HWPT_INVALIDATE_DATA_SELFTEST 0xdeadbeef
#define IOMMU_TEST_IOTLB_DEFAULT 0xbadbeef
#define MOCK_NESTED_DOMAIN_IOTLB_NUM 4

struct iommu_test_cmd {
    uint32_t size;
    uint32_t op;
    uint32_t id;
    uint32_t __reserved;
    union {
        struct { uint32_t out_stdev_id, out_hwpt_id, out_idev_id; } mock_domain;
        struct { uint32_t id, iotlb; } check_iotlb;
        uint8_t pad[56];
    };
};

struct iommu_hwpt_selftest {
    uint32_t iotlb;
};

struct iommu_hwpt_invalidate_selftest {
    uint32_t flags;
    uint32_t iotlb_id;
};

static int iommufd = -1;

static int do_ioctl(unsigned long request, void *arg)
{
    return ioctl(iommufd, request, arg);
}

static int failures;
#define EXPECT(cond)                                                               \
    do {                                                                           \
        if (!(cond)) {                                                             \
            fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #cond);    \
            failures++;                                                            \
        }                                                                          \
    } while (0)

static int check_iotlb(uint32_t hwpt_id, uint32_t slot, uint32_t value)
{
    struct iommu_test_cmd cmd;
    memset(&cmd, 0, sizeof cmd);
    cmd.size = sizeof cmd;
    cmd.op = IOMMU_TEST_OP_MD_CHECK_IOTLB;
    cmd.id = hwpt_id;
    cmd.check_iotlb.id = slot;
    cmd.check_iotlb.iotlb = value;
    return do_ioctl(IOMMU_TEST_CMD, &cmd);
}

int main(void)
{
    iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
    if (iommufd < 0) {
        perror("open /dev/iommu (run under LD_PRELOAD=libiommufd-preload.so)");
        return 1;
    }

    struct iommu_ioas_alloc ioas = { .size = sizeof ioas };
    EXPECT(do_ioctl(IOMMU_IOAS_ALLOC, &ioas) == 0);

    struct iommu_test_cmd mock = { .size = sizeof mock, .op = IOMMU_TEST_OP_MOCK_DOMAIN, .id = ioas.out_ioas_id };
    EXPECT(do_ioctl(IOMMU_TEST_CMD, &mock) == 0);
    uint32_t dev_id = mock.mock_domain.out_idev_id;

    struct iommu_hwpt_alloc parent = {
        .size = sizeof parent, .flags = IOMMU_HWPT_ALLOC_NEST_PARENT, .dev_id = dev_id, .pt_id = ioas.out_ioas_id,
    };
    EXPECT(do_ioctl(IOMMU_HWPT_ALLOC, &parent) == 0);

    struct iommu_hwpt_selftest data = { .iotlb = IOMMU_TEST_IOTLB_DEFAULT };
    struct iommu_hwpt_alloc nested = {
        .size = sizeof nested, .dev_id = dev_id, .pt_id = parent.out_hwpt_id,
        .data_type = IOMMU_HWPT_DATA_SELFTEST, .data_len = sizeof data, .data_uptr = (uintptr_t)&data,
    };
    EXPECT(do_ioctl(IOMMU_HWPT_ALLOC, &nested) == 0);
    for (uint32_t i = 0; i < MOCK_NESTED_DOMAIN_IOTLB_NUM; i++)
        EXPECT(check_iotlb(nested.out_hwpt_id, i, IOMMU_TEST_IOTLB_DEFAULT) == 0);

    /* Three entries; the middle one names IOTLB slot 9, beyond the mock's last slot (3). */
    struct iommu_hwpt_invalidate_selftest entries[3] = { { 0, 1 }, { 0, 9 }, { 0, 2 } };
    struct iommu_hwpt_invalidate inv = {
        .size = sizeof inv, .hwpt_id = nested.out_hwpt_id, .data_uptr = (uintptr_t)entries,
        .data_type = IOMMU_HWPT_INVALIDATE_DATA_SELFTEST, .entry_len = sizeof entries[0], .entry_num = 3,
    };
    errno = 0;
    int rc = do_ioctl(IOMMU_HWPT_INVALIDATE, &inv);
    int err = errno;
    EXPECT(rc == -1);
    EXPECT(err == EINVAL);
    EXPECT(inv.entry_num == 1);
    EXPECT(check_iotlb(nested.out_hwpt_id, 0, IOMMU_TEST_IOTLB_DEFAULT) == 0);
    EXPECT(check_iotlb(nested.out_hwpt_id, 1, 0) == 0); /* the entry before the bad one was carried out */
    EXPECT(check_iotlb(nested.out_hwpt_id, 2, IOMMU_TEST_IOTLB_DEFAULT) == 0); /* the one after it was not */
    EXPECT(errno == EINVAL); /* successful calls leave errno alone, as ioctl(2) does */
    printf("HWPT_INVALIDATE with a bad middle entry: rc=%d errno=%s entry_num=%u\n", rc, strerror(err), inv.entry_num);

    /* The entry array on a page that was unmapped: EFAULT, nothing handled, and no SIGSEGV. */
    long page = sysconf(_SC_PAGESIZE);
    void *gone = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    EXPECT(gone != MAP_FAILED);
    EXPECT(munmap(gone, (size_t)page) == 0);
    inv.data_uptr = (uintptr_t)gone;
    inv.entry_num = 1;
    errno = 0;
    rc = do_ioctl(IOMMU_HWPT_INVALIDATE, &inv);
    EXPECT(rc == -1);
    EXPECT(errno == EFAULT);
    EXPECT(inv.entry_num == 0);
    printf("HWPT_INVALIDATE with an unmapped array:  rc=%d errno=%s entry_num=%u\n", rc, strerror(errno), inv.entry_num);

    EXPECT(close(iommufd) == 0);
    if (failures != 0) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
