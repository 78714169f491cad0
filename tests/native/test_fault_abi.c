/*
 * test_fault_abi.c - the fault-queue entry points of libfastinval.so (fastinval_iommufd_fault_read / _write / _close)
 * called directly: bad handles and handles of another kind, ids that name no fault file, NULL and unmapped buffers,
 * wrong lengths, and a fault delivered by IOMMU_TEST_OP_TRIGGER_IOPF read, answered and closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "fastinval.h"
#include "iommufd_structs.h"

static fastinval_iommufd_t ctx;

static int io(unsigned long request, void *arg) { return fastinval_iommufd_ioctl(ctx, (uint32_t)request, arg); }

int main(void)
{
    uint8_t buf[80];
    CHECK_EQ(fastinval_iommufd_fault_read(0, 1, buf, 40), -EBADF);
    CHECK_EQ(fastinval_iommufd_fault_write(0, 1, buf, 8), -EBADF);
    CHECK_EQ(fastinval_iommufd_fault_close(0, 1), -EBADF);
    fastinval_engine_t engine = 0;
    CHECK_EQ(fastinval_engine_create(NULL, &engine), 0);
    CHECK_EQ(fastinval_iommufd_fault_read(engine, 1, buf, 40), -EBADF); /* a handle of another kind */
    CHECK_EQ(fastinval_engine_destroy(engine), 0);

    CHECK_EQ(fastinval_iommufd_create(NULL, &ctx), 0);
    CHECK_EQ(fastinval_iommufd_fault_read(ctx, 1, buf, 40), -EBADF);     /* no object 1 */
    struct iommu_ioas_alloc ioas = { .size = sizeof ioas };
    CHECK_EQ(io(IOMMU_IOAS_ALLOC, &ioas), 0);
    CHECK_EQ(fastinval_iommufd_fault_read(ctx, ioas.out_ioas_id, buf, 40), -EBADF); /* not a fault object */
    struct iommu_test_cmd mock = { .size = sizeof mock, .op = IOMMU_TEST_OP_MOCK_DOMAIN, .id = ioas.out_ioas_id };
    CHECK_EQ(io(IOMMU_TEST_CMD, &mock), 0);
    uint32_t dev = mock.mock_domain.out_idev_id;
    struct iommu_hwpt_alloc parent = { .size = sizeof parent, .flags = IOMMU_HWPT_ALLOC_NEST_PARENT, .dev_id = dev, .pt_id = ioas.out_ioas_id };
    CHECK_EQ(io(IOMMU_HWPT_ALLOC, &parent), 0);
    struct iommu_fault_alloc fa = { .size = sizeof fa };
    CHECK_EQ(io(IOMMU_FAULT_QUEUE_ALLOC, &fa), 0);
    CHECK(fcntl((int)fa.out_fault_fd, F_GETFD) & FD_CLOEXEC);
    struct iommu_hwpt_selftest data = { .iotlb = IOMMU_TEST_IOTLB_DEFAULT };
    struct iommu_hwpt_alloc nested = { .size = sizeof nested, .flags = IOMMU_HWPT_FAULT_ID_VALID, .dev_id = dev,
                                       .pt_id = parent.out_hwpt_id, .data_type = IOMMU_HWPT_DATA_SELFTEST,
                                       .data_len = sizeof data, .data_uptr = (uintptr_t)&data, .fault_id = fa.out_fault_id };
    CHECK_EQ(io(IOMMU_HWPT_ALLOC, &nested), 0);
    struct iommu_test_cmd rep = { .size = sizeof rep, .op = IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, .id = mock.mock_domain.out_stdev_id };
    rep.mock_domain_replace.pt_id = nested.out_hwpt_id;
    CHECK_EQ(io(IOMMU_TEST_CMD, &rep), 0);
    struct iommu_test_cmd trig = { .size = sizeof trig, .op = IOMMU_TEST_OP_TRIGGER_IOPF };
    trig.trigger_iopf.dev_id = dev;
    trig.trigger_iopf.addr = 0x1000;
    CHECK_EQ(io(IOMMU_TEST_CMD, &trig), 0);
    CHECK_EQ(io(IOMMU_TEST_CMD, &trig), 0);

    uint32_t f = fa.out_fault_id;
    CHECK_EQ(fastinval_iommufd_fault_read(ctx, f, NULL, 40), -EFAULT);
    void *gone = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0); /* no access: a fault */
    CHECK(gone != MAP_FAILED);
    CHECK_EQ(fastinval_iommufd_fault_read(ctx, f, gone, 40), -EFAULT);
    void *ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK_EQ(fastinval_iommufd_fault_read(ctx, f, ro, 40), -EFAULT);      /* read-only: nothing delivered */
    CHECK_EQ(fastinval_iommufd_fault_read(ctx, f, buf, 41), -ESPIPE);
    CHECK_EQ(fastinval_iommufd_fault_read(ctx, f, (uint8_t *)ro + 4096 - 40, 80), -EFAULT);
    CHECK_EQ(fastinval_iommufd_fault_read(ctx, f, buf, 0), 0);
    errno = 4321;
    CHECK_EQ(fastinval_iommufd_fault_read(ctx, f, buf, 80), 80);          /* both records */
    CHECK_EQ(errno, 4321);
    struct iommu_hwpt_pgfault recs[2];
    memcpy(recs, buf, sizeof recs);
    CHECK_EQ(recs[0].dev_id, dev);
    CHECK_EQ(recs[1].addr, 0x1000);
    CHECK(recs[0].cookie != recs[1].cookie);

    struct iommu_hwpt_page_response resp[2] = { { recs[0].cookie, 0 }, { recs[1].cookie, 1 } };
    CHECK_EQ(fastinval_iommufd_fault_write(ctx, f, NULL, 8), -EFAULT);
    CHECK_EQ(fastinval_iommufd_fault_write(ctx, f, gone, 8), -EFAULT);
    CHECK_EQ(fastinval_iommufd_fault_write(ctx, f, resp, 9), -ESPIPE);
    CHECK_EQ(fastinval_iommufd_fault_write(ctx, f, resp, 16), 16);
    CHECK_EQ(fastinval_iommufd_fault_write(ctx, f, resp, 8), -EINVAL);    /* answered already */

    int fd = (int)fa.out_fault_fd;
    CHECK_EQ(fastinval_iommufd_fault_close(ctx, f), 0);
    CHECK_EQ(fcntl(fd, F_GETFD), -1);                                     /* the library closed the descriptor */
    CHECK_EQ(fastinval_iommufd_fault_close(ctx, f), -EBADF);
    CHECK_EQ(fastinval_iommufd_fault_read(ctx, f, buf, 40), -EBADF);
    CHECK_EQ(fastinval_iommufd_destroy(ctx), 0);
    CHECK_EQ(fastinval_iommufd_fault_read(ctx, f, buf, 40), -EBADF);      /* stale handle */
    munmap(ro, 4096);
    munmap(gone, 4096);
    return check_report("test_fault_abi");
}
