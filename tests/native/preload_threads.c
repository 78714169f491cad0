/*
 * preload_threads.c - /dev/iommu from several threads, under LD_PRELOAD=libiommufd-preload.so: two threads each open
 * their own context and run IOAS/mock-domain/nested-HWPT/invalidate rounds, while a third pair shares one descriptor
 * (calls on one context are serialized inside the library); the first open races between the threads (the library is
 * loaded once). Every round checks its own answers.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "check.h"
#include "iommufd_structs.h"

#define ROUNDS 300

static atomic_int failures;
static int shared_fd = -1;
static pthread_barrier_t start;

static int round_trip(int fd)
{
    int bad = 0;
    struct iommu_ioas_alloc ioas = { .size = sizeof ioas };
    bad += ioctl(fd, IOMMU_IOAS_ALLOC, &ioas) != 0;
    struct iommu_test_cmd mock = { .size = sizeof mock, .op = IOMMU_TEST_OP_MOCK_DOMAIN, .id = ioas.out_ioas_id };
    bad += ioctl(fd, IOMMU_TEST_CMD, &mock) != 0;
    struct iommu_hwpt_alloc parent = { .size = sizeof parent, .flags = IOMMU_HWPT_ALLOC_NEST_PARENT,
                                       .dev_id = mock.mock_domain.out_idev_id, .pt_id = ioas.out_ioas_id };
    bad += ioctl(fd, IOMMU_HWPT_ALLOC, &parent) != 0;
    struct iommu_hwpt_selftest data = { .iotlb = IOMMU_TEST_IOTLB_DEFAULT };
    struct iommu_hwpt_alloc nested = { .size = sizeof nested, .dev_id = mock.mock_domain.out_idev_id, .pt_id = parent.out_hwpt_id,
                                       .data_type = IOMMU_HWPT_DATA_SELFTEST, .data_len = sizeof data, .data_uptr = (uintptr_t)&data };
    bad += ioctl(fd, IOMMU_HWPT_ALLOC, &nested) != 0;
    struct iommu_hwpt_invalidate_selftest entries[2] = { { 0, 0 }, { 0, 9 } };
    struct iommu_hwpt_invalidate inv = { .size = sizeof inv, .hwpt_id = nested.out_hwpt_id, .data_uptr = (uintptr_t)entries,
                                         .data_type = IOMMU_HWPT_INVALIDATE_DATA_SELFTEST, .entry_len = sizeof entries[0], .entry_num = 2 };
    errno = 0;
    bad += ioctl(fd, IOMMU_HWPT_INVALIDATE, &inv) != -1 || errno != EINVAL || inv.entry_num != 1;
    struct iommu_test_cmd check = { .size = sizeof check, .op = IOMMU_TEST_OP_MD_CHECK_IOTLB, .id = nested.out_hwpt_id };
    bad += ioctl(fd, IOMMU_TEST_CMD, &check) != 0; /* slot 0 is 0 now */
    struct iommu_destroy d = { .size = sizeof d, .id = nested.out_hwpt_id };
    bad += ioctl(fd, IOMMU_DESTROY, &d) != 0;
    d.id = mock.mock_domain.out_stdev_id;
    bad += ioctl(fd, IOMMU_DESTROY, &d) != 0;
    d.id = parent.out_hwpt_id;
    bad += ioctl(fd, IOMMU_DESTROY, &d) != 0;
    d.id = ioas.out_ioas_id;
    bad += ioctl(fd, IOMMU_DESTROY, &d) != 0;
    return bad;
}

static void *own_context(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&start);
    int fd = open("/dev/iommu", O_RDWR);
    if (fd < 0) {
        atomic_fetch_add(&failures, 1000);
        return NULL;
    }
    for (int i = 0; i < ROUNDS; i++)
        atomic_fetch_add(&failures, round_trip(fd));
    if (close(fd) != 0)
        atomic_fetch_add(&failures, 1);
    return NULL;
}

static void *shared_context(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&start);
    for (int i = 0; i < ROUNDS; i++)
        atomic_fetch_add(&failures, round_trip(shared_fd));
    return NULL;
}

int main(void)
{
    pthread_t t[4];
    pthread_barrier_init(&start, NULL, 2);
    CHECK_EQ(pthread_create(&t[0], NULL, own_context, NULL), 0);
    CHECK_EQ(pthread_create(&t[1], NULL, own_context, NULL), 0);
    CHECK_EQ(pthread_join(t[0], NULL), 0);
    CHECK_EQ(pthread_join(t[1], NULL), 0);
    CHECK_EQ(atomic_load(&failures), 0);

    shared_fd = open("/dev/iommu", O_RDWR);
    CHECK(shared_fd >= 0);
    pthread_barrier_destroy(&start);
    pthread_barrier_init(&start, NULL, 2);
    CHECK_EQ(pthread_create(&t[2], NULL, shared_context, NULL), 0);
    CHECK_EQ(pthread_create(&t[3], NULL, shared_context, NULL), 0);
    CHECK_EQ(pthread_join(t[2], NULL), 0);
    CHECK_EQ(pthread_join(t[3], NULL), 0);
    CHECK_EQ(atomic_load(&failures), 0);
    /* Every object the rounds made was destroyed again: the next IOAS gets id 1. */
    struct iommu_ioas_alloc ioas = { .size = sizeof ioas };
    CHECK_EQ(ioctl(shared_fd, IOMMU_IOAS_ALLOC, &ioas), 0);
    CHECK_EQ(ioas.out_ioas_id, 1);
    CHECK_EQ(close(shared_fd), 0);
    return check_report("preload_threads");
}
