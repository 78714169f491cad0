/* Every entry point of libfastinval.so: happy paths, and bad handles, NULL pointers, wrong sizes, reserved fields. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "fastinval.h"
#include "check.h"

#define FORGED ((uint64_t)0x0000000501000007ull) /* a plausible-looking engine handle nobody issued */

static fastinval_engine_t new_engine(void)
{
    struct fastinval_engine_options o = { sizeof o, 1024, 256, 256, FASTINVAL_KERNEL_BEST, 0 };
    fastinval_engine_t e = 0;
    CHECK_EQ(fastinval_engine_create(&o, &e), 0);
    CHECK(e != 0);
    return e;
}

static struct fastinval_iotlb_entry leaf(uint16_t did, uint32_t pasid, uint64_t iova, uint64_t pa)
{
    struct fastinval_iotlb_entry x;
    memset(&x, 0, sizeof x);
    x.input_address = iova;
    x.output_address = pa;
    x.address_space_id = pasid;
    x.domain_id = did;
    x.rights = FASTINVAL_ACCESS_READ | FASTINVAL_ACCESS_WRITE;
    x.stage = FASTINVAL_STAGE1;
    x.granule = FASTINVAL_GRANULE_4K;
    x.size_log2 = 12;
    return x;
}

static void test_version(void)
{
    CHECK_EQ(fastinval_abi_version(), FASTINVAL_ABI_VERSION);
    const char *s = fastinval_version_string();
    CHECK(s != NULL && strncmp(s, "FastInval ", 10) == 0);
}

static void test_engine_create(void)
{
    struct fastinval_engine_options o = { sizeof o, 64, 64, 64, FASTINVAL_KERNEL_SCALAR, 0 };
    fastinval_engine_t e = 99;
    CHECK_EQ(fastinval_engine_create(&o, NULL), -EFAULT);
    o.size = sizeof o - 4;
    CHECK_EQ(fastinval_engine_create(&o, &e), -EINVAL);
    CHECK_EQ(e, 0);
    o.size = sizeof o;
    o.reserved = 1;
    CHECK_EQ(fastinval_engine_create(&o, &e), -EINVAL);
    o.reserved = 0;
    o.kernel = 4;
    CHECK_EQ(fastinval_engine_create(&o, &e), -EINVAL);
    o.kernel = -2;
    CHECK_EQ(fastinval_engine_create(&o, &e), -EINVAL);
    o.kernel = FASTINVAL_KERNEL_SCALAR;
    o.iotlb_capacity = 0x80000000u;
    CHECK_EQ(fastinval_engine_create(&o, &e), -EINVAL);
    o.iotlb_capacity = 64;
    CHECK_EQ(fastinval_engine_create(&o, &e), 0);
    struct fastinval_engine_counts c;
    CHECK_EQ(fastinval_engine_counts(e, &c), 0);
    CHECK_EQ(c.kernel, FASTINVAL_KERNEL_SCALAR);
    CHECK_EQ(c.iotlb_count, 0);
    CHECK_EQ(fastinval_engine_counts(e, NULL), -EFAULT);
    CHECK_EQ(fastinval_engine_destroy(e), 0);

    fastinval_engine_t d = 0;
    CHECK_EQ(fastinval_engine_create(NULL, &d), 0); /* defaults */
    CHECK_EQ(fastinval_engine_counts(d, &c), 0);
    CHECK(c.kernel >= FASTINVAL_KERNEL_SCALAR && c.kernel <= FASTINVAL_KERNEL_VECTOR512);
    CHECK_EQ(fastinval_engine_destroy(d), 0);
}

/* Every engine entry point with a handle that must be refused. */
static void expect_bad_engine(uint64_t h)
{
    struct fastinval_iotlb_entry ie = leaf(1, 1, 0x1000, 0x2000);
    struct fastinval_devtlb_entry de;
    struct fastinval_config_entry ce;
    struct fastinval_translation t;
    struct fastinval_engine_counts c;
    struct fastinval_descriptor d;
    uint8_t st[1];
    memset(&de, 0, sizeof de);
    memset(&ce, 0, sizeof ce);
    memset(&d, 0, sizeof d);
    CHECK_EQ(fastinval_engine_counts(h, &c), -EBADF);
    CHECK_EQ(fastinval_engine_set_fault_plan(h, NULL), -EBADF);
    CHECK_EQ(fastinval_iotlb_fill(h, &ie), -EBADF);
    CHECK_EQ(fastinval_devtlb_fill(h, &de), -EBADF);
    CHECK_EQ(fastinval_config_fill(h, &ce), -EBADF);
    CHECK_EQ(fastinval_iotlb_lookup(h, FASTINVAL_STAGE1, 1, 1, 0x1000, &t), -EBADF);
    CHECK_EQ(fastinval_devtlb_lookup(h, 1, 1, 0x1000, &t), -EBADF);
    CHECK_EQ(fastinval_config_lookup(h, FASTINVAL_CONFIG_CONTEXT, 1, 1, &ce), -EBADF);
    CHECK_EQ(fastinval_execute(h, &d, 1, st, NULL), -EBADF);
    CHECK_EQ(fastinval_engine_destroy(h), -EBADF);
}

static void test_bad_handles(void)
{
    int live = fastinval_handle_count();
    expect_bad_engine(0);
    expect_bad_engine(FORGED);
    expect_bad_engine(~(uint64_t)0);

    fastinval_engine_t e = new_engine();
    CHECK_EQ(fastinval_handle_count(), live + 1);
    CHECK_EQ(fastinval_engine_destroy(e), 0);
    CHECK_EQ(fastinval_handle_count(), live);
    expect_bad_engine(e); /* destroyed */

    fastinval_engine_t again = new_engine(); /* reuses the slot with a new generation */
    CHECK(again != e);
    CHECK_EQ((uint32_t)again & 0xFFFFFF, (uint32_t)e & 0xFFFFFF);
    expect_bad_engine(e);
    struct fastinval_engine_counts c;
    CHECK_EQ(fastinval_engine_counts(again, &c), 0);

    fastinval_iommufd_t fd = 0;
    CHECK_EQ(fastinval_iommufd_create(NULL, &fd), 0);
    expect_bad_engine(fd);                         /* an iommufd is not an engine */
    CHECK_EQ(fastinval_iommufd_destroy(again), -EBADF); /* nor the other way round */
    CHECK_EQ(fastinval_iommufd_destroy(fd), 0);
    CHECK_EQ(fastinval_engine_destroy(again), 0);
    CHECK_EQ(fastinval_handle_count(), live);
}

static void test_fill_lookup(void)
{
    fastinval_engine_t e = new_engine();
    struct fastinval_iotlb_entry ie = leaf(5, 7, 0x40000, 0x9000);
    struct fastinval_translation t;
    CHECK_EQ(fastinval_iotlb_fill(e, NULL), -EFAULT);
    CHECK_EQ(fastinval_iotlb_fill(e, &ie), FASTINVAL_FILL_INSERTED);
    ie.output_address = 0xA000;
    CHECK_EQ(fastinval_iotlb_fill(e, &ie), FASTINVAL_FILL_REPLACED);
    CHECK_EQ(fastinval_iotlb_lookup(e, FASTINVAL_STAGE1, 5, 7, 0x40123, &t), 1);
    CHECK_EQ(t.output_address, 0xA123); /* the translation of the address looked up */
    CHECK_EQ(t.input_base, 0x40000);
    CHECK_EQ(t.size_log2, 12);
    CHECK_EQ(t.rights, 3);
    CHECK_EQ(t.global, 0);
    CHECK_EQ(fastinval_iotlb_lookup(e, FASTINVAL_STAGE1, 5, 8, 0x40123, &t), 0);
    CHECK_EQ(t.output_address, 0);
    CHECK_EQ(fastinval_iotlb_lookup(e, FASTINVAL_STAGE1, 5, 7, 0x40123, NULL), -EFAULT);
    ie.reserved = 1;
    CHECK_EQ(fastinval_iotlb_fill(e, &ie), -EINVAL);
    ie.reserved = 0;
    ie.flags = 0x80;
    CHECK_EQ(fastinval_iotlb_fill(e, &ie), -EINVAL);
    ie.flags = 0;
    ie.granule = FASTINVAL_GRANULE_ANY; /* malformed for an entry */
    CHECK_EQ(fastinval_iotlb_fill(e, &ie), FASTINVAL_FILL_REJECTED);

    struct fastinval_devtlb_entry de;
    memset(&de, 0, sizeof de);
    de.input_address = 0x7000;
    de.output_address = 0x8000;
    de.source_id = 0x10;
    de.pasid = FASTINVAL_ADDRESS_SPACE_NONE;
    de.rights = 1;
    de.size_log2 = 12;
    CHECK_EQ(fastinval_devtlb_fill(e, NULL), -EFAULT);
    CHECK_EQ(fastinval_devtlb_fill(e, &de), FASTINVAL_FILL_INSERTED);
    CHECK_EQ(fastinval_devtlb_lookup(e, 0x10, FASTINVAL_ADDRESS_SPACE_NONE, 0x7FFF, &t), 1);
    CHECK_EQ(t.output_address, 0x8FFF);
    CHECK_EQ(fastinval_devtlb_lookup(e, 0x11, FASTINVAL_ADDRESS_SPACE_NONE, 0x7FFF, &t), 0);
    CHECK_EQ(fastinval_devtlb_lookup(e, 0x10, FASTINVAL_ADDRESS_SPACE_NONE, 0x7FFF, NULL), -EFAULT);
    de.flags = 2; /* TABLE is not a device-TLB flag */
    CHECK_EQ(fastinval_devtlb_fill(e, &de), -EINVAL);
    de.flags = 0;
    de.reserved = 5;
    CHECK_EQ(fastinval_devtlb_fill(e, &de), -EINVAL);

    struct fastinval_config_entry ce, got;
    memset(&ce, 0, sizeof ce);
    ce.value = 0x1234;
    ce.source_id = 0x20;
    ce.address_space_id = FASTINVAL_ADDRESS_SPACE_NONE;
    ce.domain_id = 3;
    ce.kind = FASTINVAL_CONFIG_CONTEXT;
    CHECK_EQ(fastinval_config_fill(e, NULL), -EFAULT);
    CHECK_EQ(fastinval_config_fill(e, &ce), FASTINVAL_FILL_INSERTED);
    CHECK_EQ(fastinval_config_lookup(e, FASTINVAL_CONFIG_CONTEXT, 0x20, FASTINVAL_ADDRESS_SPACE_NONE, &got), 1);
    CHECK_EQ(got.value, 0x1234);
    CHECK_EQ(got.domain_id, 3);
    CHECK_EQ(got.kind, FASTINVAL_CONFIG_CONTEXT);
    CHECK_EQ(fastinval_config_lookup(e, FASTINVAL_CONFIG_STE, 0x20, FASTINVAL_ADDRESS_SPACE_NONE, &got), 0);
    CHECK_EQ(fastinval_config_lookup(e, FASTINVAL_CONFIG_CONTEXT, 0x20, FASTINVAL_ADDRESS_SPACE_NONE, NULL), -EFAULT);
    ce.reserved1 = 1;
    CHECK_EQ(fastinval_config_fill(e, &ce), -EINVAL);

    struct fastinval_engine_counts c;
    CHECK_EQ(fastinval_engine_counts(e, &c), 0);
    CHECK_EQ(c.iotlb_count, 1);
    CHECK_EQ(c.device_tlb_count, 1);
    CHECK_EQ(c.config_count, 1);
    CHECK_EQ(fastinval_engine_destroy(e), 0);
}

static void test_execute(void)
{
    fastinval_engine_t e = new_engine();
    for (uint64_t p = 0; p < 8; p++) {
        struct fastinval_iotlb_entry ie = leaf(1, 2, p << 12, 0x100000 + (p << 12));
        CHECK_EQ(fastinval_iotlb_fill(e, &ie), FASTINVAL_FILL_INSERTED);
    }
    struct fastinval_descriptor d[3];
    memset(d, 0, sizeof d);
    d[0].scope = FASTINVAL_SCOPE_IOTLB_RANGE; /* pages 2 and 3 of domain 1, PASID 2 */
    d[0].flags = FASTINVAL_MATCH_DOMAIN | FASTINVAL_MATCH_ADDRESS_SPACE | FASTINVAL_INCLUDE_GLOBAL;
    d[0].stages = FASTINVAL_STAGES_FIRST;
    d[0].domain_id = 1;
    d[0].address_space_id = 2;
    d[0].first = 0x2000;
    d[0].last = 0x3FFF;
    d[1].scope = 9; /* malformed */
    d[2].scope = FASTINVAL_SCOPE_IOTLB_RANGE;
    d[2].flags = FASTINVAL_MATCH_DOMAIN;
    d[2].stages = FASTINVAL_STAGES_ALL;
    d[2].domain_id = 1;
    d[2].first = 0x7000;
    d[2].last = 0x7000;
    uint8_t st[3] = { 0xEE, 0xEE, 0xEE };
    struct fastinval_batch_result r;
    CHECK_EQ(fastinval_execute(e, NULL, 1, st, &r), -EFAULT);
    CHECK_EQ(fastinval_execute(e, d, 1, NULL, &r), -EFAULT);
    CHECK_EQ(fastinval_execute(e, NULL, 0, NULL, NULL), 0);
    CHECK_EQ(fastinval_execute(e, d, (size_t)0x80000000u, st, &r), -EINVAL);
    CHECK_EQ(fastinval_execute(e, d, 3, st, &r), 0);
    CHECK_EQ(st[0], FASTINVAL_STATUS_OK);
    CHECK_EQ(st[1], FASTINVAL_STATUS_INVALID);
    CHECK_EQ(st[2], FASTINVAL_STATUS_OK);
    CHECK_EQ(r.ok, 2);
    CHECK_EQ(r.invalid, 1);
    CHECK_EQ(r.first_failure_index, 1);
    struct fastinval_translation t;
    for (uint64_t p = 0; p < 8; p++) {
        int expect = (p == 2 || p == 3 || p == 7) ? 0 : 1;
        CHECK_EQ(fastinval_iotlb_lookup(e, FASTINVAL_STAGE1, 1, 2, p << 12, &t), expect);
    }
    CHECK_EQ(fastinval_execute(e, d, 1, st, NULL), 0); /* result may be NULL */
    CHECK_EQ(fastinval_engine_destroy(e), 0);
}

static void test_fault_plan(void)
{
    fastinval_engine_t e = new_engine();
    struct fastinval_devtlb_entry de;
    memset(&de, 0, sizeof de);
    de.input_address = 0x1000;
    de.output_address = 0x5000;
    de.source_id = 0x42;
    de.pasid = FASTINVAL_ADDRESS_SPACE_NONE;
    de.rights = 1;
    de.size_log2 = 12;
    CHECK_EQ(fastinval_devtlb_fill(e, &de), FASTINVAL_FILL_INSERTED);

    uint64_t timeouts[1] = { 0 };
    uint64_t errors[1] = { 1 };
    struct fastinval_fault_plan plan;
    memset(&plan, 0, sizeof plan);
    plan.size = sizeof plan;
    plan.timeout_ordinals = timeouts;
    plan.timeout_ordinal_count = 1;
    plan.completion_error_ordinals = errors;
    plan.completion_error_ordinal_count = 1;
    plan.size = 8;
    CHECK_EQ(fastinval_engine_set_fault_plan(e, &plan), -EINVAL);
    plan.size = sizeof plan;
    plan.reserved2 = 1;
    CHECK_EQ(fastinval_engine_set_fault_plan(e, &plan), -EINVAL);
    plan.reserved2 = 0;
    plan.timeout_per_million = 1000001;
    CHECK_EQ(fastinval_engine_set_fault_plan(e, &plan), -EINVAL);
    plan.timeout_per_million = 0;
    plan.timeout_source_id_count = 1; /* with a NULL array */
    CHECK_EQ(fastinval_engine_set_fault_plan(e, &plan), -EFAULT);
    plan.timeout_source_id_count = 0;
    CHECK_EQ(fastinval_engine_set_fault_plan(e, &plan), 0);

    struct fastinval_descriptor d;
    memset(&d, 0, sizeof d);
    d.scope = FASTINVAL_SCOPE_DEVICE_TLB;
    d.flags = FASTINVAL_MATCH_SOURCE;
    d.source_id = 0x42;
    d.last = ~(uint64_t)0;
    uint8_t st;
    struct fastinval_translation t;
    struct fastinval_batch_result r;
    CHECK_EQ(fastinval_execute(e, &d, 1, &st, &r), 0); /* ordinal 0: times out, the entry stays */
    CHECK_EQ(st, FASTINVAL_STATUS_TIMED_OUT);
    CHECK_EQ(r.timed_out, 1);
    CHECK_EQ(fastinval_devtlb_lookup(e, 0x42, FASTINVAL_ADDRESS_SPACE_NONE, 0x1000, &t), 1);
    CHECK_EQ(fastinval_execute(e, &d, 1, &st, &r), 0); /* ordinal 1: completion error, the entry goes */
    CHECK_EQ(st, FASTINVAL_STATUS_COMPLETION_ERROR);
    CHECK_EQ(fastinval_devtlb_lookup(e, 0x42, FASTINVAL_ADDRESS_SPACE_NONE, 0x1000, &t), 0);
    struct fastinval_engine_counts c;
    CHECK_EQ(fastinval_engine_counts(e, &c), 0);
    CHECK_EQ(c.device_tlb_invalidations, 2);

    CHECK_EQ(fastinval_devtlb_fill(e, &de), FASTINVAL_FILL_INSERTED);
    CHECK_EQ(fastinval_engine_set_fault_plan(e, NULL), 0); /* none */
    CHECK_EQ(fastinval_execute(e, &d, 1, &st, &r), 0);
    CHECK_EQ(st, FASTINVAL_STATUS_OK);
    CHECK_EQ(fastinval_engine_destroy(e), 0);
}

static void test_iommufd_entry_points(void)
{
    fastinval_iommufd_t fd = 0;
    struct fastinval_iommufd_options o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.flags = FASTINVAL_IOMMUFD_SELFTEST;
    CHECK_EQ(fastinval_iommufd_create(&o, NULL), -EFAULT);
    o.size = 16;
    CHECK_EQ(fastinval_iommufd_create(&o, &fd), -EINVAL);
    o.size = sizeof o;
    o.flags = 0x100;
    CHECK_EQ(fastinval_iommufd_create(&o, &fd), -EINVAL);
    o.flags = FASTINVAL_IOMMUFD_SELFTEST;
    o.engine.size = 3; /* a nested engine options struct is checked too */
    CHECK_EQ(fastinval_iommufd_create(&o, &fd), -EINVAL);
    o.engine.size = sizeof o.engine;
    o.engine.iotlb_capacity = 512;
    o.engine.kernel = FASTINVAL_KERNEL_BEST;
    CHECK_EQ(fastinval_iommufd_create(&o, &fd), 0);

    uint32_t ioas_alloc[3] = { 12, 0, 0 }; /* struct iommu_ioas_alloc: size, flags, out_ioas_id */
    CHECK_EQ(fastinval_iommufd_ioctl(0, 0x3B81, ioas_alloc), -EBADF);
    CHECK_EQ(fastinval_iommufd_ioctl(FORGED, 0x3B81, ioas_alloc), -EBADF);
    CHECK_EQ(fastinval_iommufd_ioctl(fd, 0x3B81, NULL), -EFAULT);
    CHECK_EQ(fastinval_iommufd_ioctl(fd, 0x1234, ioas_alloc), -ENOTTY);
    CHECK_EQ(fastinval_iommufd_ioctl(fd, 0x3B81, ioas_alloc), 0);
    CHECK_EQ(ioas_alloc[2], 1);
    uint32_t ioas = ioas_alloc[2];

    uint32_t dev = 0;
    CHECK_EQ(fastinval_iommufd_add_device(fd, FASTINVAL_IOMMU_INTEL_VTD, 0x10, 1, NULL), -EFAULT);
    CHECK_EQ(fastinval_iommufd_add_device(fd, 7, 0x10, 1, &dev), -EINVAL);
    CHECK_EQ(fastinval_iommufd_add_device(fd, FASTINVAL_IOMMU_INTEL_VTD, 0x10000, 1, &dev), -EINVAL);
    CHECK_EQ(fastinval_iommufd_add_device(0, FASTINVAL_IOMMU_INTEL_VTD, 0x10, 1, &dev), -EBADF);
    CHECK_EQ(fastinval_iommufd_add_device(fd, FASTINVAL_IOMMU_INTEL_VTD, 0x10, 1, &dev), 0);
    CHECK_EQ(dev, 2);
    uint32_t dup = 0;
    CHECK_EQ(fastinval_iommufd_add_device(fd, FASTINVAL_IOMMU_INTEL_VTD, 0x10, 0, &dup), -EEXIST);
    CHECK_EQ(fastinval_iommufd_add_device(fd, FASTINVAL_IOMMU_ARM_SMMUV3, 0x10, 0, &dup), 0); /* another IOMMU */

    CHECK_EQ(fastinval_iommufd_attach_device(fd, dev, 999), -ENOENT);
    CHECK_EQ(fastinval_iommufd_attach_device(fd, 999, ioas), -ENOENT);
    CHECK_EQ(fastinval_iommufd_attach_device(0, dev, ioas), -EBADF);
    CHECK_EQ(fastinval_iommufd_attach_device(fd, dev, ioas), 0);
    CHECK_EQ(fastinval_iommufd_detach_device(fd, dev), 0);
    CHECK_EQ(fastinval_iommufd_detach_device(fd, 999), -ENOENT);
    CHECK_EQ(fastinval_iommufd_detach_device(0, dev), -EBADF);
    CHECK_EQ(fastinval_iommufd_remove_device(fd, dev), 0);
    CHECK_EQ(fastinval_iommufd_remove_device(fd, dev), -ENOENT);
    CHECK_EQ(fastinval_iommufd_remove_device(0, dev), -EBADF);

    uint32_t destroy[2] = { 8, ioas }; /* struct iommu_destroy */
    CHECK_EQ(fastinval_iommufd_ioctl(fd, 0x3B80, destroy), 0);
    CHECK_EQ(fastinval_iommufd_ioctl(fd, 0x3B80, destroy), -ENOENT);

    CHECK_EQ(fastinval_iommufd_destroy(fd), 0);
    CHECK_EQ(fastinval_iommufd_destroy(fd), -EBADF);
    CHECK_EQ(fastinval_iommufd_ioctl(fd, 0x3B81, ioas_alloc), -EBADF);
    CHECK_EQ(fastinval_iommufd_add_device(fd, FASTINVAL_IOMMU_INTEL_VTD, 0x11, 1, &dev), -EBADF);

    fastinval_iommufd_t plain = 0; /* without the selftest, IOMMU_TEST_CMD is not a command */
    o.flags = 0;
    CHECK_EQ(fastinval_iommufd_create(&o, &plain), 0);
    uint32_t test_cmd[18];
    memset(test_cmd, 0, sizeof test_cmd);
    test_cmd[0] = sizeof test_cmd;
    CHECK_EQ(fastinval_iommufd_ioctl(plain, 0x3BA0, test_cmd), -ENOTTY);
    CHECK_EQ(fastinval_iommufd_destroy(plain), 0);
}

int main(void)
{
    int live = fastinval_handle_count();
    CHECK_EQ(live, 0);
    test_version();
    test_engine_create();
    test_bad_handles();
    test_fill_lookup();
    test_execute();
    test_fault_plan();
    test_iommufd_entry_points();
    CHECK_EQ(fastinval_handle_count(), live); /* nothing leaked */
    return check_report("test_abi");
}
