/*
 * iommufd migration state and reset through the C ABI: a saved table restores into a fresh context that then answers
 * with the same ids; bad handles, NULL pointers, short buffers, truncated and foreign images, a context that is not
 * fresh; reset gives the state of a new context; a fault object's fresh descriptor (fastinval_iommufd_fault_fd).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fastinval.h"
#include "check.h"
#include "iommufd_structs.h"

#define FORGED ((uint64_t)0x0000000501000007ull) /* a plausible-looking handle nobody issued */

static fastinval_iommufd_t open_ctx(uint32_t flags)
{
    struct fastinval_iommufd_options o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.flags = flags;
    fastinval_iommufd_t fd = 0;
    CHECK_EQ(fastinval_iommufd_create(&o, &fd), 0);
    return fd;
}

static uint32_t ioas_alloc(fastinval_iommufd_t fd)
{
    struct iommu_ioas_alloc a = { sizeof a, 0, 0 };
    CHECK_EQ(fastinval_iommufd_ioctl(fd, IOMMU_IOAS_ALLOC, &a), 0);
    return a.out_ioas_id;
}

/* The image of @fd in a malloc'd buffer; its size in *size. */
static uint8_t *save(fastinval_iommufd_t fd, size_t *size)
{
    *size = 0;
    CHECK_EQ(fastinval_iommufd_save_state(fd, NULL, 0, size), 0);
    CHECK(*size >= 32);
    uint8_t *buf = malloc(*size);
    CHECK(buf != NULL);
    size_t written = 0;
    CHECK_EQ(fastinval_iommufd_save_state(fd, buf, *size, &written), 0);
    CHECK_EQ(written, *size);
    return buf;
}

static void test_round_trip(void)
{
    fastinval_iommufd_t src = open_ctx(FASTINVAL_IOMMUFD_SELFTEST);
    uint32_t ioas = ioas_alloc(src);
    uint32_t dev = 0;
    CHECK_EQ(fastinval_iommufd_add_device(src, FASTINVAL_IOMMU_INTEL_VTD, 0x10, 1, &dev), 0);
    CHECK_EQ(fastinval_iommufd_attach_device(src, dev, ioas), 0); /* an automatic domain, id 3 */
    uint32_t spare = ioas_alloc(src);
    struct iommu_destroy d = { sizeof d, spare };
    CHECK_EQ(fastinval_iommufd_ioctl(src, IOMMU_DESTROY, &d), 0); /* a hole at id 4 */

    size_t size = 0;
    uint8_t *image = save(src, &size);
    CHECK(memcmp(image, "FIUF", 4) == 0);

    fastinval_iommufd_t dst = open_ctx(FASTINVAL_IOMMUFD_SELFTEST);
    CHECK_EQ(fastinval_iommufd_restore_state(dst, image, size), 0);
    size_t again_size = 0;
    uint8_t *again = save(dst, &again_size);
    CHECK_EQ(again_size, size);
    CHECK(memcmp(again, image, size) == 0);

    /* Both give the same next ids and the same errnos. */
    CHECK_EQ(ioas_alloc(src), 4);
    CHECK_EQ(ioas_alloc(dst), 4);
    CHECK_EQ(fastinval_iommufd_add_device(dst, FASTINVAL_IOMMU_INTEL_VTD, 0x10, 1, &dev), -EEXIST);
    struct iommu_destroy busy = { sizeof busy, ioas };
    CHECK_EQ(fastinval_iommufd_ioctl(dst, IOMMU_DESTROY, &busy), -EBUSY);

    /* Not fresh any more: refused, nothing changed. */
    CHECK_EQ(fastinval_iommufd_restore_state(dst, image, size), -EEXIST);
    CHECK_EQ(ioas_alloc(dst), 5);

    /* Reset: a new context's state; then a restore works again. */
    CHECK_EQ(fastinval_iommufd_reset(dst), 0);
    size_t empty = 0;
    CHECK_EQ(fastinval_iommufd_save_state(dst, NULL, 0, &empty), 0);
    CHECK_EQ(empty, 32);
    CHECK_EQ(ioas_alloc(dst), 1);
    CHECK_EQ(fastinval_iommufd_reset(dst), 0);
    CHECK_EQ(fastinval_iommufd_restore_state(dst, image, size), 0);
    CHECK_EQ(ioas_alloc(dst), 4); /* the hole again */

    free(again);
    free(image);
    CHECK_EQ(fastinval_iommufd_destroy(dst), 0);
    CHECK_EQ(fastinval_iommufd_destroy(src), 0);
}

static void test_bad_images(void)
{
    fastinval_iommufd_t src = open_ctx(FASTINVAL_IOMMUFD_SELFTEST);
    ioas_alloc(src);
    size_t size = 0;
    uint8_t *image = save(src, &size);
    fastinval_iommufd_t dst = open_ctx(FASTINVAL_IOMMUFD_SELFTEST);

    for (size_t n = 0; n < size; n++) {
        CHECK_EQ(fastinval_iommufd_restore_state(dst, image, n), -EINVAL); /* every truncation */
    }

    uint8_t *bad = malloc(size);
    CHECK(bad != NULL);
    memcpy(bad, image, size);
    bad[4] ^= 1; /* the version */
    CHECK_EQ(fastinval_iommufd_restore_state(dst, bad, size), -EINVAL);
    memcpy(bad, image, size);
    bad[size - 1] ^= 0x40; /* a payload byte: the checksum no longer matches */
    CHECK_EQ(fastinval_iommufd_restore_state(dst, bad, size), -EINVAL);

    /* Another context's options. */
    fastinval_iommufd_t plain = open_ctx(0);
    CHECK_EQ(fastinval_iommufd_restore_state(plain, image, size), -EINVAL);

    /* Nothing was restored by any of these: the destination is still fresh. */
    size_t empty = 0;
    CHECK_EQ(fastinval_iommufd_save_state(dst, NULL, 0, &empty), 0);
    CHECK_EQ(empty, 32);
    CHECK_EQ(fastinval_iommufd_restore_state(dst, image, size), 0);

    free(bad);
    free(image);
    CHECK_EQ(fastinval_iommufd_destroy(plain), 0);
    CHECK_EQ(fastinval_iommufd_destroy(dst), 0);
    CHECK_EQ(fastinval_iommufd_destroy(src), 0);
}

static void test_bad_arguments(void)
{
    fastinval_iommufd_t fd = open_ctx(FASTINVAL_IOMMUFD_SELFTEST);
    ioas_alloc(fd);
    size_t needed = 0;
    uint8_t small[16];
    memset(small, 0xAA, sizeof small);

    CHECK_EQ(fastinval_iommufd_save_state(fd, NULL, 0, NULL), -EFAULT);
    CHECK_EQ(fastinval_iommufd_save_state(fd, NULL, 64, &needed), -EFAULT);
    CHECK_EQ(fastinval_iommufd_save_state(fd, small, sizeof small, &needed), -ERANGE);
    CHECK_EQ(needed, 32 + 12 + 4); /* the header and one IOAS record with an empty list */
    for (size_t i = 0; i < sizeof small; i++) {
        CHECK_EQ(small[i], 0xAA);
    }

    CHECK_EQ(fastinval_iommufd_restore_state(fd, NULL, 8), -EFAULT);
    CHECK_EQ(fastinval_iommufd_restore_state(fd, NULL, 0), -EEXIST); /* fd is not fresh: checked first */
    fastinval_iommufd_t fresh = open_ctx(0);
    CHECK_EQ(fastinval_iommufd_restore_state(fresh, NULL, 0), -EINVAL); /* an empty image */
    CHECK_EQ(fastinval_iommufd_destroy(fresh), 0);

    /* Bad handles: 0, forged, destroyed, and a handle of another kind. */
    fastinval_engine_t engine = 0;
    CHECK_EQ(fastinval_engine_create(NULL, &engine), 0);
    fastinval_iommufd_t gone = open_ctx(0);
    CHECK_EQ(fastinval_iommufd_destroy(gone), 0);
    uint64_t handles[] = { 0, FORGED, gone, engine };
    for (size_t i = 0; i < sizeof handles / sizeof handles[0]; i++) {
        CHECK_EQ(fastinval_iommufd_save_state(handles[i], NULL, 0, &needed), -EBADF);
        CHECK_EQ(fastinval_iommufd_restore_state(handles[i], small, sizeof small), -EBADF);
        CHECK_EQ(fastinval_iommufd_reset(handles[i]), -EBADF);
    }

    CHECK_EQ(fastinval_engine_destroy(engine), 0);
    CHECK_EQ(fastinval_iommufd_destroy(fd), 0);
}

/* A fault object with a fault awaiting a response and one to deliver: after the restore the fresh descriptor comes
 * from fastinval_iommufd_fault_fd, the read gives the same record, the response answers the fault read before the save. */
static void test_fault_object(void)
{
    fastinval_iommufd_t src = open_ctx(FASTINVAL_IOMMUFD_SELFTEST);
    uint32_t ioas = ioas_alloc(src);
    struct iommu_test_cmd mock = { .size = sizeof mock, .op = IOMMU_TEST_OP_MOCK_DOMAIN, .id = ioas };
    CHECK_EQ(fastinval_iommufd_ioctl(src, IOMMU_TEST_CMD, &mock), 0);
    uint32_t dev = mock.mock_domain.out_idev_id;
    struct iommu_fault_alloc fa = { .size = sizeof fa };
    CHECK_EQ(fastinval_iommufd_ioctl(src, IOMMU_FAULT_QUEUE_ALLOC, &fa), 0);
    CHECK_EQ(fastinval_iommufd_fault_fd(src, fa.out_fault_id), (int)fa.out_fault_fd);
    CHECK_EQ(fastinval_iommufd_fault_fd(src, ioas), -ENOENT);
    CHECK_EQ(fastinval_iommufd_fault_fd(src, 999), -ENOENT);
    CHECK_EQ(fastinval_iommufd_fault_fd(0, fa.out_fault_id), -EBADF);
    CHECK_EQ(fastinval_iommufd_fault_fd(FORGED, fa.out_fault_id), -EBADF);
    struct iommu_hwpt_alloc paging = { .size = sizeof paging, .flags = IOMMU_HWPT_FAULT_ID_VALID, .dev_id = dev,
                                       .pt_id = ioas, .fault_id = fa.out_fault_id };
    CHECK_EQ(fastinval_iommufd_ioctl(src, IOMMU_HWPT_ALLOC, &paging), 0);
    struct iommu_test_cmd rep = { .size = sizeof rep, .op = IOMMU_TEST_OP_MOCK_DOMAIN_REPLACE, .id = mock.mock_domain.out_stdev_id };
    rep.mock_domain_replace.pt_id = paging.out_hwpt_id;
    CHECK_EQ(fastinval_iommufd_ioctl(src, IOMMU_TEST_CMD, &rep), 0);
    struct iommu_test_cmd trig = { .size = sizeof trig, .op = IOMMU_TEST_OP_TRIGGER_IOPF };
    trig.trigger_iopf.dev_id = dev;
    trig.trigger_iopf.addr = 0x1000;
    CHECK_EQ(fastinval_iommufd_ioctl(src, IOMMU_TEST_CMD, &trig), 0);
    trig.trigger_iopf.addr = 0x2000;
    CHECK_EQ(fastinval_iommufd_ioctl(src, IOMMU_TEST_CMD, &trig), 0);
    uint8_t rec[40], rec2[40];
    CHECK_EQ(fastinval_iommufd_fault_read(src, fa.out_fault_id, rec, 40), 40); /* cookie 1 awaits a response */

    size_t size = 0;
    uint8_t *image = save(src, &size);
    fastinval_iommufd_t dst = open_ctx(FASTINVAL_IOMMUFD_SELFTEST);
    CHECK_EQ(fastinval_iommufd_restore_state(dst, image, size), 0);
    int restored = fastinval_iommufd_fault_fd(dst, fa.out_fault_id);
    CHECK(restored > 2);
    CHECK(restored != (int)fa.out_fault_fd); /* both are open */
    CHECK_EQ(fastinval_iommufd_fault_read(src, fa.out_fault_id, rec, 40), 40);
    CHECK_EQ(fastinval_iommufd_fault_read(dst, fa.out_fault_id, rec2, 40), 40);
    CHECK(memcmp(rec, rec2, 40) == 0); /* the 0x2000 fault, cookie 2 */
    uint32_t response[2] = { 1, 0 };   /* the fault read before the save */
    CHECK_EQ(fastinval_iommufd_fault_write(dst, fa.out_fault_id, response, 8), 8);
    CHECK_EQ(fastinval_iommufd_fault_write(dst, fa.out_fault_id, response, 8), -EINVAL);
    CHECK_EQ(fastinval_iommufd_fault_close(dst, fa.out_fault_id), 0);
    CHECK_EQ(fastinval_iommufd_fault_fd(dst, fa.out_fault_id), -ENOENT);

    free(image);
    CHECK_EQ(fastinval_iommufd_destroy(dst), 0);
    CHECK_EQ(fastinval_iommufd_destroy(src), 0);
}

int main(void)
{
    test_round_trip();
    test_bad_images();
    test_bad_arguments();
    test_fault_object();
    CHECK_EQ(fastinval_handle_count(), 0);
    return check_report("test_iommufd_state");
}
