/*
 * preload_fork.c - /dev/iommu across fork(), under LD_PRELOAD=libiommufd-preload.so:
 *   1. a child forked before anything opened /dev/iommu opens it (the runtime starts in the child), as the kselftest
 *      harness's test processes do;
 *   2. the parent opens it (the runtime starts in the parent), then forks: the child still answers on the inherited
 *      descriptor (on its own copy of the context: the parent does not see what the child does there), opens a new
 *      context of its own, and runs enough ioctls to go through several garbage collections in the child, whose
 *      runtime lost every thread but the forking one; a grandchild does the same;
 *   3. the parent's context is untouched by all of it.
 * Every child has an alarm: a hang is a failure, not a stuck CI job.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "iommufd_structs.h"

static uint32_t ioas_alloc(int fd)
{
    struct iommu_ioas_alloc cmd = { .size = sizeof cmd };
    CHECK_EQ(ioctl(fd, IOMMU_IOAS_ALLOC, &cmd), 0);
    return cmd.out_ioas_id;
}

static int destroy(int fd, uint32_t id)
{
    struct iommu_destroy cmd = { .size = sizeof cmd, .id = id };
    return ioctl(fd, IOMMU_DESTROY, &cmd);
}

/* IOAS, mock device, nested HWPT, one invalidation; then `churn` create/destroy pairs (objects on the managed heap). */
static void work(int fd, int churn)
{
    uint32_t ioas = ioas_alloc(fd);
    struct iommu_test_cmd mock = { .size = sizeof mock, .op = IOMMU_TEST_OP_MOCK_DOMAIN, .id = ioas };
    CHECK_EQ(ioctl(fd, IOMMU_TEST_CMD, &mock), 0);
    struct iommu_hwpt_alloc parent = { .size = sizeof parent, .flags = IOMMU_HWPT_ALLOC_NEST_PARENT,
                                       .dev_id = mock.mock_domain.out_idev_id, .pt_id = ioas };
    CHECK_EQ(ioctl(fd, IOMMU_HWPT_ALLOC, &parent), 0);
    struct iommu_hwpt_selftest data = { .iotlb = IOMMU_TEST_IOTLB_DEFAULT };
    struct iommu_hwpt_alloc nested = { .size = sizeof nested, .dev_id = mock.mock_domain.out_idev_id, .pt_id = parent.out_hwpt_id,
                                       .data_type = IOMMU_HWPT_DATA_SELFTEST, .data_len = sizeof data, .data_uptr = (uintptr_t)&data };
    CHECK_EQ(ioctl(fd, IOMMU_HWPT_ALLOC, &nested), 0);
    struct iommu_hwpt_invalidate_selftest entry = { IOMMU_TEST_INVALIDATE_FLAG_ALL, 0 };
    struct iommu_hwpt_invalidate inv = { .size = sizeof inv, .hwpt_id = nested.out_hwpt_id, .data_uptr = (uintptr_t)&entry,
                                         .data_type = IOMMU_HWPT_INVALIDATE_DATA_SELFTEST, .entry_len = sizeof entry, .entry_num = 1 };
    CHECK_EQ(ioctl(fd, IOMMU_HWPT_INVALIDATE, &inv), 0);
    CHECK_EQ(inv.entry_num, 1);
    struct iommu_test_cmd check = { .size = sizeof check, .op = IOMMU_TEST_OP_MD_CHECK_IOTLB, .id = nested.out_hwpt_id };
    check.check_iotlb.id = 3;
    CHECK_EQ(ioctl(fd, IOMMU_TEST_CMD, &check), 0);
    for (int i = 0; i < churn; i++) {
        uint32_t id = ioas_alloc(fd);
        CHECK_EQ(destroy(fd, id), 0);
        int other = open("/dev/iommu", O_RDWR);
        if (i % 64 == 0) {
            CHECK(other >= 0);
        }
        close(other);
    }
}

/* Runs `body` in a child (alarm: 120 s) and returns 1 when it exited 0. */
static int in_child(void (*body)(void *), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(120);
        body(arg);
        _exit(check_failures == 0 && check_count > 0 ? 0 : 1);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return 0;
    if (WIFSIGNALED(status))
        fprintf(stderr, "child killed by signal %d\n", WTERMSIG(status));
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void fresh_child(void *arg)
{
    (void)arg;
    int fd = open("/dev/iommu", O_RDWR);
    CHECK(fd >= 0);
    CHECK_EQ(ioas_alloc(fd), 1);
    work(fd, 2000);
    CHECK_EQ(close(fd), 0);
}

static void grandchild(void *arg)
{
    int inherited = *(int *)arg;
    int fd = open("/dev/iommu", O_RDWR);
    CHECK(fd >= 0);
    CHECK_EQ(ioas_alloc(fd), 1);
    work(fd, 2000);
    CHECK_EQ(close(fd), 0);
    CHECK(ioas_alloc(inherited) > 1);
}

static uint32_t probe; /* the id the parent's next IOAS gets */

static void forked_child(void *arg)
{
    int inherited = *(int *)arg;
    /* The inherited descriptor answers on the child's copy of the parent's context. */
    CHECK_EQ(ioas_alloc(inherited), probe);
    int fd = open("/dev/iommu", O_RDWR);
    CHECK(fd >= 0);
    CHECK_EQ(ioas_alloc(fd), 1);
    work(fd, 20000);
    CHECK(in_child(grandchild, &inherited));
    CHECK_EQ(close(fd), 0);
    CHECK_EQ(close(inherited), 0);
}

int main(void)
{
    CHECK(in_child(fresh_child, NULL));

    int fd = open("/dev/iommu", O_RDWR);
    CHECK(fd >= 0);
    CHECK_EQ(ioas_alloc(fd), 1);
    work(fd, 100);
    probe = ioas_alloc(fd);
    CHECK_EQ(destroy(fd, probe), 0);
    CHECK(in_child(forked_child, &fd));
    CHECK(in_child(forked_child, &fd)); /* twice: the parent's context is as it was */
    /* What the children did went with their copies: the parent's next IOAS still gets the probed id. */
    CHECK_EQ(ioas_alloc(fd), probe);
    CHECK_EQ(close(fd), 0);
    return check_report("preload_fork");
}
