/*
 * preload_iommufd.c - a plain iommufd program (open("/dev/iommu"), ioctl, read, write, close; no FastInval header, not
 * linked with libfastinval.so), run by native/test.sh under LD_PRELOAD=libiommufd-preload.so. Checks:
 *   - other paths and descriptors pass straight through, and the runtime is not loaded before /dev/iommu is opened;
 *   - each open is a fresh context; ioctl(2) conventions (-1 + errno, errno untouched on success);
 *   - the dispatcher's errno paths (ENOTTY, EFAULT, EINVAL, E2BIG, ENOENT) and the size rules of every command;
 *   - IOAS_ALLOC, MOCK_DOMAIN(_FLAGS), HWPT_ALLOC nested, HWPT_INVALIDATE (entry_num write-back with a bad entry in
 *     the middle, EFAULT on an unmapped data_uptr), GET_HW_INFO, MD_CHECK_REFS, SET_TEMP_MEMORY_LIMIT;
 *   - the fault queue: FAULT_QUEUE_ALLOC, HWPT_ALLOC with FAULT_ID_VALID, TRIGGER_IOPF, read() of the 40-byte record,
 *     write() of the 8-byte response, their errno paths, close;
 *   - dup/fcntl(F_DUPFD_CLOEXEC) name the same context; a closed descriptor is EBADF.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "iommufd_structs.h"

#define EXPECT_ERRNO(expected, call)            \
    do {                                        \
        errno = 0;                              \
        int rc_ = (call);                       \
        int e_ = errno;                         \
        CHECK_EQ(rc_, -1);                      \
        CHECK_EQ(e_, expected);                 \
    } while (0)

static long page_size;

static int runtime_loaded(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return -1;
    char line[512];
    int found = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "libfastinval.so"))
            found = 1;
    fclose(f);
    return found;
}

static uint32_t ioas_alloc(int fd)
{
    struct iommu_ioas_alloc cmd = { .size = sizeof cmd };
    CHECK_EQ(ioctl(fd, IOMMU_IOAS_ALLOC, &cmd), 0);
    return cmd.out_ioas_id;
}

static void mock_domain(int fd, uint32_t pt, uint32_t flags, uint32_t *stdev, uint32_t *hwpt, uint32_t *dev)
{
    struct iommu_test_cmd cmd = { .size = sizeof cmd, .op = flags ? IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS : IOMMU_TEST_OP_MOCK_DOMAIN, .id = pt };
    cmd.mock_domain_flags.dev_flags = flags;
    CHECK_EQ(ioctl(fd, IOMMU_TEST_CMD, &cmd), 0);
    *stdev = cmd.mock_domain.out_stdev_id;
    *hwpt = cmd.mock_domain.out_hwpt_id;
    *dev = cmd.mock_domain.out_idev_id;
}

static int check_iotlb(int fd, uint32_t hwpt, uint32_t slot, uint32_t value)
{
    struct iommu_test_cmd cmd = { .size = sizeof cmd, .op = IOMMU_TEST_OP_MD_CHECK_IOTLB, .id = hwpt };
    cmd.check_iotlb.id = slot;
    cmd.check_iotlb.iotlb = value;
    return ioctl(fd, IOMMU_TEST_CMD, &cmd);
}

static int hwpt_alloc(int fd, uint32_t flags, uint32_t dev, uint32_t pt, uint32_t fault_id, int nested, uint32_t *out)
{
    struct iommu_hwpt_selftest data = { .iotlb = IOMMU_TEST_IOTLB_DEFAULT };
    struct iommu_hwpt_alloc cmd = { .size = sizeof cmd, .flags = flags, .dev_id = dev, .pt_id = pt, .fault_id = fault_id };
    if (nested) {
        cmd.data_type = IOMMU_HWPT_DATA_SELFTEST;
        cmd.data_len = sizeof data;
        cmd.data_uptr = (uintptr_t)&data;
    }
    int rc = ioctl(fd, IOMMU_HWPT_ALLOC, &cmd);
    if (rc == 0)
        *out = cmd.out_hwpt_id;
    return rc;
}

static int destroy(int fd, uint32_t id)
{
    struct iommu_destroy cmd = { .size = sizeof cmd, .id = id };
    return ioctl(fd, IOMMU_DESTROY, &cmd);
}

static int replace(int fd, uint32_t stdev, uint32_t pt)
{
    struct iommu_test_cmd cmd = { .size = sizeof cmd, .op = IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, .id = stdev };
    cmd.mock_domain_replace.pt_id = pt;
    return ioctl(fd, IOMMU_TEST_CMD, &cmd);
}

/* A page no access reaches (PROT_NONE, kept mapped so that no later mapping can land on it while a call runs). */
static void *unmapped_page(void)
{
    static void *p;
    if (!p) {
        p = mmap(NULL, (size_t)page_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(p != MAP_FAILED);
    }
    return p;
}

/* Every command of the table: size below the minimum is EINVAL, a longer struct with a non-zero tail E2BIG, and the
 * longer struct with a zero tail answers as the exact one (the rule of the kernel's selftest cmd_length). */
static void size_rules(int fd)
{
    static const struct { uint32_t nr, min, size; } table[] = {
        { 0x80, 8, 8 },   { 0x81, 12, 12 }, { 0x82, 24, 24 }, { 0x83, 40, 40 }, { 0x84, 32, 32 }, { 0x85, 40, 40 },
        { 0x86, 24, 24 }, { 0x87, 24, 24 }, { 0x88, 12, 12 }, { 0x89, 24, 48 }, { 0x8a, 32, 40 }, { 0x8b, 16, 16 },
        { 0x8c, 48, 48 }, { 0x8d, 32, 32 }, { 0x8e, 16, 16 }, { 0x8f, 40, 40 }, { 0x90, 24, 40 }, { 0x91, 24, 24 },
        { 0x92, 8, 8 },   { 0x93, 28, 32 }, { 0x94, 40, 40 }, { 0xa0, 68, 72 },
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        unsigned long request = _IO(IOMMUFD_TYPE, table[i].nr);
        uint8_t buf[96];
        memset(buf, 0, sizeof buf);
        uint32_t size = table[i].min - 1;
        memcpy(buf, &size, 4);
        buf[table[i].size] = 0xff;
        EXPECT_ERRNO(EINVAL, ioctl(fd, request, buf));
        size = table[i].size + 1;
        memcpy(buf, &size, 4);
        EXPECT_ERRNO(E2BIG, ioctl(fd, request, buf));
        size = table[i].size;
        memcpy(buf, &size, 4);
        errno = 0;
        int rc = ioctl(fd, request, buf);
        int first = errno;
        size = table[i].size + 1;
        memset(buf, 0, sizeof buf);
        memcpy(buf, &size, 4);
        errno = 0;
        int rc2 = ioctl(fd, request, buf);
        if (rc != 0) {
            CHECK_EQ(rc2, -1);
            CHECK_EQ(errno, first);
        } else {
            CHECK_EQ(rc2, 0);
        }
    }
}

static void hw_info(int fd, uint32_t dev, uint32_t pasid_dev, uint32_t no_dirty_dev)
{
    struct { struct iommu_test_hw_info info; uint64_t trailing; } larger;
    memset(&larger, 0xaa, sizeof larger);
    struct iommu_hw_info cmd = { .size = sizeof cmd, .dev_id = dev, .data_len = sizeof larger, .data_uptr = (uintptr_t)&larger };
    CHECK_EQ(ioctl(fd, IOMMU_GET_HW_INFO, &cmd), 0);
    CHECK_EQ(cmd.data_len, sizeof(struct iommu_test_hw_info));
    CHECK_EQ(cmd.in_data_type, IOMMU_HW_INFO_TYPE_SELFTEST);
    CHECK_EQ(larger.info.test_reg, IOMMU_HW_INFO_SELFTEST_REGVAL);
    CHECK_EQ(larger.info.flags, 0);
    CHECK_EQ(larger.trailing, 0); /* the rest of a larger buffer is zeroed */
    CHECK_EQ(cmd.out_capabilities, IOMMU_HW_CAP_DIRTY_TRACKING);
    CHECK_EQ(cmd.out_max_pasid_log2, 0);

    uint32_t smaller = 0xaaaaaaaa; /* only the fields inside the size are written */
    cmd = (struct iommu_hw_info){ .size = sizeof cmd, .dev_id = dev, .data_len = sizeof smaller, .data_uptr = (uintptr_t)&smaller };
    CHECK_EQ(ioctl(fd, IOMMU_GET_HW_INFO, &cmd), 0);
    CHECK_EQ(smaller, 0);
    CHECK_EQ(cmd.data_len, sizeof(struct iommu_test_hw_info));

    cmd = (struct iommu_hw_info){ .size = sizeof cmd, .dev_id = dev };
    CHECK_EQ(ioctl(fd, IOMMU_GET_HW_INFO, &cmd), 0); /* a zero-size buffer */
    CHECK_EQ(cmd.data_len, sizeof(struct iommu_test_hw_info));

    struct iommu_test_hw_info exact;
    cmd = (struct iommu_hw_info){ .size = sizeof cmd, .flags = IOMMU_HW_INFO_FLAG_INPUT_TYPE, .dev_id = dev,
                                  .data_len = sizeof exact, .data_uptr = (uintptr_t)&exact, .in_data_type = IOMMU_HW_INFO_TYPE_SELFTEST };
    CHECK_EQ(ioctl(fd, IOMMU_GET_HW_INFO, &cmd), 0);
    cmd.in_data_type = IOMMU_HW_INFO_TYPE_SELFTEST + 1;
    EXPECT_ERRNO(EOPNOTSUPP, ioctl(fd, IOMMU_GET_HW_INFO, &cmd));
    cmd.flags = 2;
    EXPECT_ERRNO(EOPNOTSUPP, ioctl(fd, IOMMU_GET_HW_INFO, &cmd));
    cmd = (struct iommu_hw_info){ .size = sizeof cmd, .dev_id = 0 };
    EXPECT_ERRNO(ENOENT, ioctl(fd, IOMMU_GET_HW_INFO, &cmd));
    cmd = (struct iommu_hw_info){ .size = sizeof cmd, .dev_id = dev, .data_len = 8, .data_uptr = (uintptr_t)unmapped_page() };
    EXPECT_ERRNO(EFAULT, ioctl(fd, IOMMU_GET_HW_INFO, &cmd));

    cmd = (struct iommu_hw_info){ .size = sizeof cmd, .dev_id = pasid_dev };
    CHECK_EQ(ioctl(fd, IOMMU_GET_HW_INFO, &cmd), 0);
    CHECK_EQ(cmd.out_max_pasid_log2, 20);
    cmd = (struct iommu_hw_info){ .size = sizeof cmd, .dev_id = no_dirty_dev };
    CHECK_EQ(ioctl(fd, IOMMU_GET_HW_INFO, &cmd), 0);
    CHECK_EQ(cmd.out_capabilities, 0);
}

static void invalidate(int fd, uint32_t nested)
{
    struct iommu_hwpt_invalidate_selftest entries[3] = { { 0, 1 }, { 0, 9 }, { 0, 2 } };
    struct iommu_hwpt_invalidate inv = {
        .size = sizeof inv, .hwpt_id = nested, .data_uptr = (uintptr_t)entries,
        .data_type = IOMMU_HWPT_INVALIDATE_DATA_SELFTEST, .entry_len = sizeof entries[0], .entry_num = 3,
    };
    EXPECT_ERRNO(EINVAL, ioctl(fd, IOMMU_HWPT_INVALIDATE, &inv));
    CHECK_EQ(inv.entry_num, 1);
    CHECK_EQ(check_iotlb(fd, nested, 1, 0), 0);
    CHECK_EQ(check_iotlb(fd, nested, 2, IOMMU_TEST_IOTLB_DEFAULT), 0);
    EXPECT_ERRNO(EINVAL, check_iotlb(fd, nested, 2, 0));

    entries[1].iotlb_id = 3;
    entries[1].flags = 0xffffffffu;
    inv.entry_num = 3;
    EXPECT_ERRNO(EOPNOTSUPP, ioctl(fd, IOMMU_HWPT_INVALIDATE, &inv));
    CHECK_EQ(inv.entry_num, 1);

    entries[1].flags = 0;
    inv.entry_num = 3;
    errno = 1234;
    CHECK_EQ(ioctl(fd, IOMMU_HWPT_INVALIDATE, &inv), 0);
    CHECK_EQ(errno, 1234); /* success leaves errno alone */
    CHECK_EQ(inv.entry_num, 3);
    CHECK_EQ(check_iotlb(fd, nested, 3, 0), 0);

    inv.data_uptr = (uintptr_t)unmapped_page();
    inv.entry_num = 2;
    EXPECT_ERRNO(EFAULT, ioctl(fd, IOMMU_HWPT_INVALIDATE, &inv));
    CHECK_EQ(inv.entry_num, 0);
    EXPECT_ERRNO(EFAULT, ioctl(fd, IOMMU_HWPT_INVALIDATE, unmapped_page()));
}

static void fault_queue(int fd, uint32_t stdev, uint32_t dev, uint32_t parent, uint32_t ioas)
{
    struct iommu_fault_alloc fa = { .size = sizeof fa, .flags = 1 };
    EXPECT_ERRNO(EOPNOTSUPP, ioctl(fd, IOMMU_FAULT_QUEUE_ALLOC, &fa));
    fa.flags = 0;
    CHECK_EQ(ioctl(fd, IOMMU_FAULT_QUEUE_ALLOC, &fa), 0);
    int ffd = (int)fa.out_fault_fd;
    CHECK(ffd > 2);
    CHECK(fcntl(ffd, F_GETFD) >= 0); /* a real descriptor */

    uint32_t iopf_hwpt = 0, unused;
    EXPECT_ERRNO(ENOENT, hwpt_alloc(fd, IOMMU_HWPT_FAULT_ID_VALID, dev, parent, fa.out_fault_id + 100, 1, &unused));
    EXPECT_ERRNO(EOPNOTSUPP, hwpt_alloc(fd, IOMMU_HWPT_FAULT_ID_VALID | IOMMU_HWPT_ALLOC_NEST_PARENT, dev, ioas, fa.out_fault_id, 0, &unused));
    CHECK_EQ(hwpt_alloc(fd, IOMMU_HWPT_FAULT_ID_VALID, dev, parent, fa.out_fault_id, 1, &iopf_hwpt), 0);
    CHECK_EQ(replace(fd, stdev, iopf_hwpt), 0);

    struct iommu_hwpt_pgfault fault;
    CHECK_EQ(read(ffd, &fault, sizeof fault), 0); /* nothing queued: 0, never blocks */
    struct iommu_test_cmd trig = { .size = sizeof trig, .op = IOMMU_TEST_OP_TRIGGER_IOPF };
    trig.trigger_iopf.dev_id = dev;
    trig.trigger_iopf.grpid = 2;
    trig.trigger_iopf.perm = IOMMU_PGFAULT_PERM_READ | IOMMU_PGFAULT_PERM_WRITE;
    trig.trigger_iopf.addr = 0xdeadbeaf;
    CHECK_EQ(ioctl(fd, IOMMU_TEST_CMD, &trig), 0);
    EXPECT_ERRNO(ESPIPE, read(ffd, &fault, sizeof fault - 1));
    EXPECT_ERRNO(EFAULT, read(ffd, unmapped_page(), sizeof fault));
    memset(&fault, 0xaa, sizeof fault);
    CHECK_EQ(read(ffd, &fault, sizeof fault), 40);
    CHECK_EQ(fault.flags, IOMMU_PGFAULT_FLAGS_LAST_PAGE);
    CHECK_EQ(fault.dev_id, dev);
    CHECK_EQ(fault.pasid, 0);
    CHECK_EQ(fault.grpid, 2);
    CHECK_EQ(fault.perm, IOMMU_PGFAULT_PERM_READ | IOMMU_PGFAULT_PERM_WRITE);
    CHECK_EQ(fault.__reserved, 0);
    CHECK_EQ(fault.addr, 0xdeadbeaf);
    CHECK_EQ(fault.length, 0);
    CHECK_EQ(fault.cookie, 1); /* cookies are allocated from 1 */
    CHECK_EQ(read(ffd, &fault, sizeof fault), 0);

    struct iommu_hwpt_page_response resp = { .cookie = fault.cookie + 1, .code = IOMMUFD_PAGE_RESP_SUCCESS };
    EXPECT_ERRNO(ESPIPE, write(ffd, &resp, sizeof resp - 1));
    EXPECT_ERRNO(EINVAL, write(ffd, &resp, sizeof resp)); /* no such cookie */
    resp.cookie = fault.cookie;
    resp.code = 7;
    EXPECT_ERRNO(EINVAL, write(ffd, &resp, sizeof resp)); /* no such code */
    resp.code = IOMMUFD_PAGE_RESP_SUCCESS;
    CHECK_EQ(write(ffd, &resp, sizeof resp), 8);
    EXPECT_ERRNO(EINVAL, write(ffd, &resp, sizeof resp)); /* answered already */

    /* A request with a PASID and no PASID attachment: the mock IOMMU keeps the PASID table in user space, so the nested
     * HWPT on the RID takes it, and the record says PASID_VALID. */
    trig.trigger_iopf.pasid = 1;
    CHECK_EQ(ioctl(fd, IOMMU_TEST_CMD, &trig), 0);
    CHECK_EQ(read(ffd, &fault, sizeof fault), 40);
    CHECK_EQ(fault.flags, IOMMU_PGFAULT_FLAGS_PASID_VALID | IOMMU_PGFAULT_FLAGS_LAST_PAGE);
    CHECK_EQ(fault.pasid, 1);
    resp.cookie = fault.cookie;
    CHECK_EQ(write(ffd, &resp, sizeof resp), 8);

    /* A device attached to a HWPT without a fault queue: the fault is dropped, the op still succeeds; a PASID request
     * is dropped too when the RID's HWPT is not a nested one. */
    CHECK_EQ(replace(fd, stdev, parent), 0);
    CHECK_EQ(ioctl(fd, IOMMU_TEST_CMD, &trig), 0);
    trig.trigger_iopf.pasid = 0;
    CHECK_EQ(ioctl(fd, IOMMU_TEST_CMD, &trig), 0);
    CHECK_EQ(read(ffd, &fault, sizeof fault), 0);
    trig.trigger_iopf.dev_id = 0;
    EXPECT_ERRNO(ENOENT, ioctl(fd, IOMMU_TEST_CMD, &trig));

    EXPECT_ERRNO(EBUSY, destroy(fd, fa.out_fault_id)); /* the descriptor and the HWPT hold it */
    CHECK_EQ(close(ffd), 0);
    EXPECT_ERRNO(EBADF, read(ffd, &fault, sizeof fault));
    EXPECT_ERRNO(EBUSY, destroy(fd, fa.out_fault_id)); /* the HWPT still holds it */
    CHECK_EQ(destroy(fd, iopf_hwpt), 0);
    CHECK_EQ(destroy(fd, fa.out_fault_id), 0);
}

static void selftest_ops(int fd)
{
    size_t length = 4 * (size_t)page_size;
    void *buf = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(buf != MAP_FAILED);
    struct iommu_test_cmd cmd = { .size = sizeof cmd, .op = IOMMU_TEST_OP_MD_CHECK_REFS };
    cmd.check_refs.length = length;
    cmd.check_refs.uptr = (uintptr_t)buf;
    CHECK_EQ(ioctl(fd, IOMMU_TEST_CMD, &cmd), 0);
    cmd.check_refs.refs = 1;
    EXPECT_ERRNO(EIO, ioctl(fd, IOMMU_TEST_CMD, &cmd)); /* nothing is pinned */
    cmd.check_refs.refs = 0;
    cmd.check_refs.uptr += 1;
    EXPECT_ERRNO(EINVAL, ioctl(fd, IOMMU_TEST_CMD, &cmd));
    cmd.check_refs.uptr = (uintptr_t)unmapped_page();
    cmd.check_refs.length = (uint64_t)page_size;
    EXPECT_ERRNO(EFAULT, ioctl(fd, IOMMU_TEST_CMD, &cmd));
    munmap(buf, length);

    struct iommu_test_cmd limit = { .size = sizeof limit, .op = IOMMU_TEST_OP_SET_TEMP_MEMORY_LIMIT };
    limit.memory_limit.limit = 16;
    CHECK_EQ(ioctl(fd, IOMMU_TEST_CMD, &limit), 0);
    struct iommu_test_cmd unknown = { .size = sizeof unknown, .op = 1000 };
    EXPECT_ERRNO(EOPNOTSUPP, ioctl(fd, IOMMU_TEST_CMD, &unknown));
}

int main(void)
{
    page_size = sysconf(_SC_PAGESIZE);

    /* Pass-through, before any /dev/iommu: the runtime stays unloaded. */
    int devnull = open("/dev/null", O_RDWR);
    CHECK(devnull >= 0);
    CHECK_EQ(write(devnull, "x", 1), 1);
    char c;
    CHECK_EQ(read(devnull, &c, 1), 0);
    EXPECT_ERRNO(ENOTTY, ioctl(devnull, IOMMU_IOAS_ALLOC, &c));
    EXPECT_ERRNO(ENOENT, open("/nonexistent/dev/iommu", O_RDONLY));
    int dirfd = openat(AT_FDCWD, "/proc/self", O_RDONLY | O_DIRECTORY);
    CHECK(dirfd >= 0);
    int statfd = openat(dirfd, "stat", O_RDONLY);
    CHECK(statfd >= 0);
    CHECK(read(statfd, &c, 1) == 1);
    CHECK_EQ(close(statfd), 0);
    CHECK_EQ(close(dirfd), 0);
    CHECK_EQ(runtime_loaded(), 0);

    int fd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
    CHECK(fd >= 0);
    CHECK_EQ(runtime_loaded(), 1);
    CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    char link[64], target[128] = { 0 };
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    CHECK(readlink(link, target, sizeof target - 1) > 0);
    CHECK(strstr(target, "memfd:fastinval-iommufd") != NULL);
    EXPECT_ERRNO(ENOTTY, ioctl(devnull, IOMMU_IOAS_ALLOC, &c)); /* still passes through */
    CHECK_EQ(close(devnull), 0);

    /* The dispatcher (the selftest's cmd_fail and cmd_ex_fail). */
    EXPECT_ERRNO(ENOENT, destroy(fd, 0));
    EXPECT_ERRNO(EFAULT, ioctl(fd, IOMMU_DESTROY, NULL));
    struct iommu_destroy d = { .size = sizeof d };
    EXPECT_ERRNO(ENOTTY, ioctl(fd, _IO(IOMMUFD_TYPE, 0x7f), &d));
    EXPECT_ERRNO(ENOTTY, ioctl(fd, _IO(IOMMUFD_TYPE, 0xa1), &d));
    struct { struct iommu_destroy cmd; uint64_t future; } ex = { .cmd = { .size = sizeof ex } };
    EXPECT_ERRNO(ENOENT, ioctl(fd, IOMMU_DESTROY, &ex));
    ex.future = 1;
    EXPECT_ERRNO(E2BIG, ioctl(fd, IOMMU_DESTROY, &ex));
    ex.cmd.size = sizeof ex.cmd - 1;
    EXPECT_ERRNO(EINVAL, ioctl(fd, IOMMU_DESTROY, &ex));
    size_rules(fd);

    /* A fresh context per open: both start at id 1. */
    int fd2 = open("/dev/iommu", O_RDWR);
    CHECK(fd2 >= 0 && fd2 != fd);
    CHECK(!(fcntl(fd2, F_GETFD) & FD_CLOEXEC));
    uint32_t a = ioas_alloc(fd2);
    CHECK_EQ(close(fd2), 0);
    EXPECT_ERRNO(EBADF, ioctl(fd2, IOMMU_IOAS_ALLOC, &d));

    int fd3 = open("/dev/iommu", O_RDWR);
    uint32_t ioas = ioas_alloc(fd3);
    CHECK_EQ(ioas, a);
    uint32_t stdev, hwpt, dev, stdev_p, hwpt_p, dev_p, stdev_n, hwpt_n, dev_n;
    mock_domain(fd3, ioas, 0, &stdev, &hwpt, &dev);
    mock_domain(fd3, ioas, MOCK_FLAGS_DEVICE_PASID, &stdev_p, &hwpt_p, &dev_p);
    mock_domain(fd3, ioas, MOCK_FLAGS_DEVICE_NO_DIRTY, &stdev_n, &hwpt_n, &dev_n);
    struct iommu_test_cmd badflags = { .size = sizeof badflags, .op = IOMMU_TEST_OP_MOCK_DOMAIN_FLAGS, .id = ioas };
    badflags.mock_domain_flags.dev_flags = 1u << 9;
    EXPECT_ERRNO(EINVAL, ioctl(fd3, IOMMU_TEST_CMD, &badflags));
    hw_info(fd3, dev, dev_p, dev_n);

    uint32_t parent = 0, nested = 0;
    CHECK_EQ(hwpt_alloc(fd3, IOMMU_HWPT_ALLOC_NEST_PARENT, dev, ioas, 0, 0, &parent), 0);
    CHECK_EQ(hwpt_alloc(fd3, 0, dev, parent, 0, 1, &nested), 0);
    for (uint32_t i = 0; i < 4; i++)
        CHECK_EQ(check_iotlb(fd3, nested, i, IOMMU_TEST_IOTLB_DEFAULT), 0);
    invalidate(fd3, nested);
    fault_queue(fd3, stdev, dev, parent, ioas);
    selftest_ops(fd3);

    /* dup and fcntl(F_DUPFD_CLOEXEC) name the same context, which lives until its last descriptor closes. */
    int dupfd = dup(fd3);
    int dupfd2 = fcntl(fd3, F_DUPFD_CLOEXEC, 100);
    CHECK(dupfd >= 0 && dupfd2 >= 100);
    CHECK_EQ(close(fd3), 0);
    CHECK_EQ(check_iotlb(dupfd, nested, 1, 0), 0);
    CHECK_EQ(close(dupfd), 0);
    CHECK_EQ(check_iotlb(dupfd2, nested, 1, 0), 0);
    int moved = dup2(dupfd2, 200);
    CHECK_EQ(moved, 200);
    CHECK_EQ(close(dupfd2), 0);
    CHECK_EQ(check_iotlb(200, nested, 1, 0), 0);
    CHECK_EQ(close(200), 0);
    EXPECT_ERRNO(EBADF, check_iotlb(200, nested, 1, 0));
    CHECK_EQ(close(fd), 0);

    /* The environment: no selftest mock. */
    setenv("FASTINVAL_IOMMUFD_SELFTEST", "0", 1);
    int plain = open("/dev/iommu", O_RDWR);
    struct iommu_test_cmd mock = { .size = sizeof mock, .op = IOMMU_TEST_OP_MOCK_DOMAIN, .id = ioas_alloc(plain) };
    EXPECT_ERRNO(ENOTTY, ioctl(plain, IOMMU_TEST_CMD, &mock));
    CHECK_EQ(close(plain), 0);
    unsetenv("FASTINVAL_IOMMUFD_SELFTEST");

    /* A VT-d device bound at open (FASTINVAL_IOMMUFD_DEVICES): object id 1; a malformed list fails the open. */
    setenv("FASTINVAL_IOMMUFD_DEVICES", "vtd:0x10:ats,smmuv3:8", 1);
    int vtd = open("/dev/iommu", O_RDWR);
    CHECK(vtd >= 0);
    uint32_t vioas = ioas_alloc(vtd);
    CHECK_EQ(vioas, 3);
    uint32_t vparent = 0;
    CHECK_EQ(hwpt_alloc(vtd, IOMMU_HWPT_ALLOC_NEST_PARENT, 1, vioas, 0, 0, &vparent), 0);
    struct iommu_hw_info vinfo = { .size = sizeof vinfo, .dev_id = 1 };
    EXPECT_ERRNO(EOPNOTSUPP, ioctl(vtd, IOMMU_GET_HW_INFO, &vinfo));
    CHECK_EQ(close(vtd), 0);
    setenv("FASTINVAL_IOMMUFD_DEVICES", "vtd:0x10,bogus:1", 1);
    EXPECT_ERRNO(EINVAL, open("/dev/iommu", O_RDWR));
    unsetenv("FASTINVAL_IOMMUFD_DEVICES");

    return check_report("preload_iommufd");
}
