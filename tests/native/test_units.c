/* SPDX-License-Identifier: MIT */
/*
 * The units' section of the C ABI, called from C: guest memory (pointer ranges and callbacks), VT-d and SMMUv3 units
 * (MMIO registers, queue processing, interrupts, errors), notifiers, save / restore / reset, the re-entrancy rules of
 * callbacks, and every entry point with a bad handle, a NULL pointer, a wrong size or a bad struct.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "check.h"
#include "fastinval.h"

/* VT-d registers and fields used here (Intel VT-d spec, chapter 11). */
#define VTD_VER 0x00
#define VTD_CAP 0x08
#define VTD_ECAP 0x10
#define VTD_GCMD 0x18
#define VTD_GSTS 0x1C
#define VTD_FSTS 0x34
#define VTD_FECTL 0x38
#define VTD_FEDATA 0x3C
#define VTD_FEADDR 0x40
#define VTD_IQH 0x80
#define VTD_IQT 0x88
#define VTD_IQA 0x90
#define VTD_ICS 0x9C
#define VTD_IECTL 0xA0
#define VTD_IEDATA 0xA4
#define VTD_IEADDR 0xA8
#define VTD_IQERCD 0xB0
#define VTD_QIE (1u << 26)
#define VTD_FSTS_IQE (1u << 4)
#define VTD_FSTS_ITE (1u << 6)

/* SMMUv3 registers (Arm IHI 0070). */
#define SMMU_IDR0 0x00
#define SMMU_CR0 0x20
#define SMMU_CR0ACK 0x24
#define SMMU_GERROR 0x60
#define SMMU_GERRORN 0x64
#define SMMU_CMDQ_BASE 0x90
#define SMMU_CMDQ_PROD 0x98
#define SMMU_CMDQ_CONS 0x9C
#define SMMU_CR0_CMDQEN (1u << 3)

#define RAM_SIZE (1u << 20)
#define QUEUE_GPA 0x10000u
#define STATUS_GPA 0x20000u
#define MSI_GPA 0x30000u

static uint8_t *ram;

/* ---- descriptor builders (128-bit VT-d descriptors, 16-byte SMMUv3 commands) ---- */

static void vtd_put(uint32_t slot, uint64_t lo, uint64_t hi)
{
    memcpy(ram + QUEUE_GPA + slot * 16, &lo, 8);
    memcpy(ram + QUEUE_GPA + slot * 16 + 8, &hi, 8);
}

static void vtd_iotlb_domain(uint32_t slot, uint16_t did) { vtd_put(slot, 0x2 | (2u << 4) | ((uint64_t)did << 16), 0); }
static void vtd_devtlb(uint32_t slot, uint16_t sid, uint64_t addr) { vtd_put(slot, 0x3 | ((uint64_t)sid << 32), addr & ~0xFFFull); }
static void vtd_wait(uint32_t slot, uint32_t data, uint64_t addr, int irq)
{
    vtd_put(slot, 0x5 | (irq ? 1u << 4 : 0) | (1u << 5) | ((uint64_t)data << 32), addr);
}

static uint64_t rd(fastinval_vtd_t u, uint32_t off, uint32_t size)
{
    uint64_t v = 0xdeadbeef;
    CHECK_EQ(fastinval_vtd_read(u, off, size, &v), 0);
    return v;
}

static void wr(fastinval_vtd_t u, uint32_t off, uint32_t size, uint64_t v) { CHECK_EQ(fastinval_vtd_write(u, off, size, v), 0); }

static uint32_t ram32(uint64_t gpa)
{
    uint32_t v;
    memcpy(&v, ram + gpa, 4);
    return v;
}

/* ---- callbacks ---- */

struct irq_log {
    int calls;
    uint32_t kind;
    uint64_t address;
    uint32_t data;
    uint64_t msi_address; /* of the latest FASTINVAL_INTERRUPT_MSI */
    fastinval_vtd_t unit; /* when set: re-entrancy probes run inside the callback */
    int destroy_rc, save_rc, read_rc, reset_rc;
    uint64_t read_value;
};

static void on_irq(void *user, uint32_t kind, uint64_t address, uint32_t data)
{
    struct irq_log *log = user;
    log->calls++;
    log->kind = kind;
    log->address = address;
    log->data = data;
    if (kind == FASTINVAL_INTERRUPT_MSI) log->msi_address = address;
    if (log->unit != 0) {
        uint8_t image[FASTINVAL_VTD_STATE_SIZE];
        log->destroy_rc = fastinval_vtd_destroy(log->unit);
        log->save_rc = fastinval_vtd_save_state(log->unit, image, sizeof image);
        log->reset_rc = fastinval_vtd_reset(log->unit);
        log->read_rc = fastinval_vtd_read(log->unit, VTD_ICS, 4, &log->read_value);
    }
}

struct notify_log {
    int calls;
    size_t records;
    struct fastinval_invalidation_record last;
    fastinval_notifier_t self; /* when set: unsubscribes itself from inside its first call */
    int unsubscribe_rc;
};

static void on_notify(void *user, const struct fastinval_invalidation_record *records, size_t count)
{
    struct notify_log *log = user;
    log->calls++;
    log->records += count;
    log->last = records[count - 1];
    if (log->self != 0) {
        log->unsubscribe_rc = fastinval_notifier_unsubscribe(log->self);
        log->self = 0;
    }
}

struct cb_space {
    uint8_t bytes[4096];
    int reads, writes;
};

static int cb_read(void *user, uint64_t gpa, void *dst, size_t len)
{
    struct cb_space *s = user;
    s->reads++;
    if (gpa >= sizeof s->bytes || len > sizeof s->bytes - gpa) return -1;
    memcpy(dst, s->bytes + gpa, len);
    return 0;
}

static int cb_write(void *user, uint64_t gpa, const void *src, size_t len)
{
    struct cb_space *s = user;
    s->writes++;
    if (gpa >= sizeof s->bytes || len > sizeof s->bytes - gpa) return -1;
    memcpy(s->bytes + gpa, src, len);
    return 0;
}

/* ---- tests ---- */

static void test_guest_memory(void)
{
    fastinval_guest_memory_t mem = 0;
    uint8_t a[64], b[64];
    CHECK_EQ(fastinval_guest_memory_create(NULL), -EFAULT);
    CHECK_EQ(fastinval_guest_memory_create(&mem), 0);
    CHECK(mem != 0);

    /* Two adjacent ranges from two host blocks: one access may span them. */
    static uint8_t lo[4096], hi[4096];
    CHECK_EQ(fastinval_guest_memory_map(mem, 0x1000, lo, sizeof lo), 0);
    CHECK_EQ(fastinval_guest_memory_map(mem, 0x2000, hi, sizeof hi), 0);
    CHECK_EQ(fastinval_guest_memory_map(mem, 0x1800, a, sizeof a), -EINVAL);        /* overlap */
    CHECK_EQ(fastinval_guest_memory_map(mem, 0x9000, NULL, 4096), -EFAULT);
    CHECK_EQ(fastinval_guest_memory_map(mem, 0x9000, a, 0), -EINVAL);
    CHECK_EQ(fastinval_guest_memory_map(mem, UINT64_MAX - 10, a, sizeof a), -EINVAL); /* wraps past 2^64 */
    for (int i = 0; i < 64; i++) a[i] = (uint8_t)(i + 1);
    CHECK_EQ(fastinval_guest_memory_write(mem, 0x2000 - 32, a, sizeof a), 0);
    CHECK_EQ(lo[4096 - 32], 1);
    CHECK_EQ(hi[31], 64);
    memset(b, 0, sizeof b);
    CHECK_EQ(fastinval_guest_memory_read(mem, 0x2000 - 32, b, sizeof b), 0);
    CHECK(memcmp(a, b, sizeof a) == 0);
    /* All or nothing: an access running past the mapped ranges faults and writes nothing. */
    memset(hi, 0, sizeof hi);
    CHECK_EQ(fastinval_guest_memory_write(mem, 0x3000 - 16, a, sizeof a), -EFAULT);
    CHECK_EQ(hi[4096 - 16], 0);
    CHECK_EQ(fastinval_guest_memory_read(mem, 0x8000, b, 4), -EFAULT);
    CHECK_EQ(fastinval_guest_memory_read(mem, 0x1000, NULL, 4), -EFAULT);
    CHECK_EQ(fastinval_guest_memory_read(mem, 0x8000, NULL, 0), 0); /* empty access: always fine */
    CHECK_EQ(fastinval_guest_memory_read(mem, 0x1000, b, (size_t)INT32_MAX + 1), -EINVAL);
    CHECK_EQ(fastinval_guest_memory_unmap(mem, 0x2000), 0);
    CHECK_EQ(fastinval_guest_memory_unmap(mem, 0x2000), -ENOENT);
    CHECK_EQ(fastinval_guest_memory_read(mem, 0x2000, b, 4), -EFAULT);

    /* Callback memory. */
    static struct cb_space space;
    fastinval_guest_memory_t cbm = 0;
    CHECK_EQ(fastinval_guest_memory_create_callbacks(NULL, cb_write, &space, &cbm), -EFAULT);
    CHECK_EQ(cbm, 0);
    CHECK_EQ(fastinval_guest_memory_create_callbacks(cb_read, NULL, &space, &cbm), -EFAULT);
    CHECK_EQ(fastinval_guest_memory_create_callbacks(cb_read, cb_write, &space, NULL), -EFAULT);
    CHECK_EQ(fastinval_guest_memory_create_callbacks(cb_read, cb_write, &space, &cbm), 0);
    CHECK_EQ(fastinval_guest_memory_write(cbm, 100, a, 8), 0);
    CHECK_EQ(space.writes, 1);
    CHECK_EQ(space.bytes[100], 1);
    CHECK_EQ(fastinval_guest_memory_read(cbm, 100, b, 8), 0);
    CHECK_EQ(b[7], 8);
    CHECK_EQ(fastinval_guest_memory_read(cbm, 4090, b, 8), -EFAULT); /* the callback said no */
    CHECK_EQ(fastinval_guest_memory_map(cbm, 0, a, sizeof a), -EINVAL);
    CHECK_EQ(fastinval_guest_memory_unmap(cbm, 0), -EINVAL);

    /* Stale and wrong-kind handles. */
    CHECK_EQ(fastinval_guest_memory_destroy(mem), 0);
    CHECK_EQ(fastinval_guest_memory_destroy(mem), -EBADF);
    CHECK_EQ(fastinval_guest_memory_read(mem, 0x1000, b, 4), -EBADF);
    CHECK_EQ(fastinval_guest_memory_map(mem, 0x1000, lo, sizeof lo), -EBADF);
    CHECK_EQ(fastinval_guest_memory_unmap(mem, 0x1000), -EBADF);
    CHECK_EQ(fastinval_guest_memory_write(0, 0, a, 1), -EBADF);
    CHECK_EQ(fastinval_guest_memory_destroy(cbm), 0);
}

static void test_vtd_create_errors(fastinval_guest_memory_t mem)
{
    fastinval_vtd_t u = 77;
    struct fastinval_vtd_options o;
    CHECK_EQ(fastinval_vtd_create(mem, NULL, 0, NULL), -EFAULT);
    CHECK_EQ(fastinval_vtd_create(0, NULL, 0, &u), -EBADF);
    CHECK_EQ(u, 0);
    memset(&o, 0, sizeof o);
    CHECK_EQ(fastinval_vtd_create(mem, &o, 0, &u), -EINVAL); /* size 0 */
    o.size = sizeof o + 8;
    CHECK_EQ(fastinval_vtd_create(mem, &o, 0, &u), -EINVAL);
    o.size = sizeof o;
    o.flags = 0x800; /* unknown */
    CHECK_EQ(fastinval_vtd_create(mem, &o, 0, &u), -EINVAL);
    o.flags = 0;
    o.reserved1 = 1;
    CHECK_EQ(fastinval_vtd_create(mem, &o, 0, &u), -EINVAL);
    o.reserved1 = 0;
    o.host_address_width = 31;
    CHECK_EQ(fastinval_vtd_create(mem, &o, 0, &u), -EINVAL);
    o.host_address_width = 0;
    o.max_address_mask = 64;
    CHECK_EQ(fastinval_vtd_create(mem, &o, 0, &u), -EINVAL);
    o.max_address_mask = 5;
    o.flags = FASTINVAL_VTD_MAMV_ZERO;
    CHECK_EQ(fastinval_vtd_create(mem, &o, 0, &u), -EINVAL);
    o.flags = 0;
    o.max_address_mask = 0;
    o.interrupt_user = &o; /* a user pointer without a callback */
    CHECK_EQ(fastinval_vtd_create(mem, &o, 0, &u), -EINVAL);
    o.interrupt_user = NULL;
    o.engine.size = 3; /* a bad engine struct */
    CHECK_EQ(fastinval_vtd_create(mem, &o, 0, &u), -EINVAL);
    o.engine.size = 0;
    struct fastinval_fault_plan plan;
    memset(&plan, 0, sizeof plan);
    plan.size = sizeof plan;
    plan.timeout_source_id_count = 1; /* NULL array with a count */
    o.fault_plan = &plan;
    CHECK_EQ(fastinval_vtd_create(mem, &o, 0, &u), -EFAULT);
    o.fault_plan = NULL;

    /* Over a caller's engine: engine options must be unset; a unit's handle is not an engine handle here. */
    fastinval_engine_t e = 0;
    CHECK_EQ(fastinval_engine_create(NULL, &e), 0);
    plan.timeout_source_id_count = 0;
    o.fault_plan = &plan;
    CHECK_EQ(fastinval_vtd_create(mem, &o, e, &u), -EINVAL);
    o.fault_plan = NULL;
    CHECK_EQ(fastinval_vtd_create(mem, &o, e, &u), 0);
    fastinval_vtd_t u2 = 0;
    CHECK_EQ(fastinval_vtd_create(mem, NULL, u, &u2), -EBADF);
    CHECK_EQ(fastinval_engine_destroy(e), -EBUSY); /* a unit runs on it */
    CHECK_EQ(fastinval_engine_destroy(u), -EBADF);  /* a unit is no engine to destroy */
    /* Two units over one engine share its caches. */
    CHECK_EQ(fastinval_vtd_create(mem, NULL, e, &u2), 0);
    struct fastinval_iotlb_entry entry = {.input_address = 0x5000, .output_address = 0x9000, .address_space_id = FASTINVAL_ADDRESS_SPACE_NONE,
                                          .domain_id = 3, .rights = 3, .stage = FASTINVAL_STAGE2, .granule = FASTINVAL_GRANULE_4K, .size_log2 = 12};
    CHECK_EQ(fastinval_iotlb_fill(e, &entry), FASTINVAL_FILL_INSERTED);
    struct fastinval_translation t;
    CHECK_EQ(fastinval_iotlb_lookup(u2, FASTINVAL_STAGE2, 3, FASTINVAL_ADDRESS_SPACE_NONE, 0x5000, &t), 1);
    CHECK_EQ(t.output_address, 0x9000);
    CHECK_EQ(fastinval_vtd_destroy(u), 0);
    CHECK_EQ(fastinval_engine_destroy(e), -EBUSY);
    CHECK_EQ(fastinval_vtd_destroy(u2), 0);
    CHECK_EQ(fastinval_engine_destroy(e), 0);
}

static void start_queue(fastinval_vtd_t u)
{
    wr(u, VTD_IQA, 8, QUEUE_GPA); /* 128-bit descriptors, one 4 KiB page (256 slots) */
    wr(u, VTD_GCMD, 4, VTD_QIE);
    CHECK((rd(u, VTD_GSTS, 4) & VTD_QIE) != 0);
}

static void test_vtd_queue(fastinval_guest_memory_t mem)
{
    static struct irq_log irq;
    struct fastinval_vtd_options o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.interrupt = on_irq;
    o.interrupt_user = &irq;
    fastinval_vtd_t u = 0;
    CHECK_EQ(fastinval_vtd_create(mem, &o, 0, &u), 0);

    /* Registers: sizes, alignment, identity. */
    uint64_t v = 0;
    CHECK_EQ(fastinval_vtd_read(u, VTD_VER, 2, &v), -EINVAL);
    CHECK_EQ(fastinval_vtd_read(u, VTD_VER, 4, NULL), -EFAULT);
    CHECK_EQ(fastinval_vtd_write(u, VTD_IQT, 1, 0x10), -EINVAL);
    CHECK_EQ(fastinval_vtd_write(u, VTD_IQT, 16, 0x10), -EINVAL);
    CHECK_EQ(rd(u, VTD_VER + 2, 4), 0);              /* misaligned guest access: reads 0 */
    CHECK_EQ(rd(u, 0x2000, 4), 0);                   /* outside the window */
    CHECK_EQ((rd(u, VTD_CAP, 8) >> 48) & 0x3F, 18);  /* MAMV default */
    CHECK(((rd(u, VTD_ECAP, 8) >> 2) & 1) == 1);     /* ECAP.DT */

    /* Cache an IOTLB entry through the unit's handle, then invalidate it from the guest's queue. */
    struct fastinval_iotlb_entry entry = {.input_address = 0x40000, .output_address = 0x80000, .address_space_id = FASTINVAL_ADDRESS_SPACE_NONE,
                                          .domain_id = 5, .rights = 3, .stage = FASTINVAL_STAGE2, .granule = FASTINVAL_GRANULE_4K, .size_log2 = 12};
    CHECK_EQ(fastinval_iotlb_fill(u, &entry), FASTINVAL_FILL_INSERTED);
    entry.domain_id = 6;
    CHECK_EQ(fastinval_iotlb_fill(u, &entry), FASTINVAL_FILL_INSERTED);

    static struct notify_log all, other, self;
    fastinval_notifier_t n_all = 0, n_other = 0, n_self = 0;
    struct fastinval_notifier_filter f;
    memset(&f, 0, sizeof f);
    f.size = sizeof f;
    f.flags = FASTINVAL_FILTER_DOMAIN;
    f.domain_id = 9; /* a domain this queue never touches */
    CHECK_EQ(fastinval_notifier_subscribe(u, NULL, on_notify, &all, &n_all), 0);
    CHECK_EQ(fastinval_notifier_subscribe(u, &f, on_notify, &other, &n_other), 0);
    CHECK_EQ(fastinval_notifier_subscribe(u, NULL, on_notify, &self, &n_self), 0);
    self.self = n_self;

    start_queue(u);
    vtd_iotlb_domain(0, 5);
    vtd_wait(1, 0x600d, STATUS_GPA, 1);
    wr(u, VTD_IQT, 8, 2 * 16);
    CHECK_EQ(rd(u, VTD_IQH, 8), 2 * 16);
    CHECK_EQ(ram32(STATUS_GPA), 0x600d);
    CHECK_EQ(rd(u, VTD_ICS, 4), 1); /* IWC */
    struct fastinval_translation t;
    CHECK_EQ(fastinval_iotlb_lookup(u, FASTINVAL_STAGE2, 5, FASTINVAL_ADDRESS_SPACE_NONE, 0x40000, &t), 0);
    CHECK_EQ(fastinval_iotlb_lookup(u, FASTINVAL_STAGE2, 6, FASTINVAL_ADDRESS_SPACE_NONE, 0x40000, &t), 1);
    CHECK_EQ(all.calls, 1);
    CHECK_EQ(all.records, 1);
    CHECK_EQ(all.last.source, FASTINVAL_SOURCE_VTD_QUEUE);
    CHECK_EQ(all.last.source_index, 0);
    CHECK_EQ(all.last.status, FASTINVAL_STATUS_OK);
    CHECK_EQ(all.last.descriptor.domain_id, 5);
    CHECK_EQ(other.calls, 0);
    CHECK_EQ(self.calls, 1);
    CHECK_EQ(self.unsubscribe_rc, 0);
    CHECK_EQ(fastinval_notifier_unsubscribe(n_self), -EBADF);

    /* The completion event was masked (IECTL.IM at reset): pending, sent when unmasked. */
    CHECK_EQ(irq.calls, 0);
    wr(u, VTD_IEDATA, 4, 0x41);
    wr(u, VTD_IEADDR, 4, 0xFEE00000u);
    irq.unit = u; /* probe the re-entrancy rules inside the callback */
    wr(u, VTD_IECTL, 4, 0);
    CHECK_EQ(irq.calls, 1);
    CHECK_EQ(irq.kind, FASTINVAL_INTERRUPT_MSI);
    CHECK_EQ(irq.address, 0xFEE00000u);
    CHECK_EQ(irq.data, 0x41);
    CHECK_EQ(irq.destroy_rc, -EBUSY);
    CHECK_EQ(irq.save_rc, -EBUSY);
    CHECK_EQ(irq.reset_rc, -EBUSY);
    CHECK_EQ(irq.read_rc, 0);
    CHECK_EQ(irq.read_value, 1);
    irq.unit = 0;
    wr(u, VTD_ICS, 4, 1); /* RW1C */
    CHECK_EQ(rd(u, VTD_ICS, 4), 0);

    /* IQE: an invalid descriptor type halts the queue with IQH on it; the fault event is an MSI. */
    wr(u, VTD_FEDATA, 4, 0x42);
    wr(u, VTD_FEADDR, 4, 0xFEE01000u);
    wr(u, VTD_FECTL, 4, 0);
    vtd_put(2, 0xF, 0);
    wr(u, VTD_IQT, 8, 3 * 16);
    CHECK((rd(u, VTD_FSTS, 4) & VTD_FSTS_IQE) != 0);
    CHECK_EQ(rd(u, VTD_IQH, 8), 2 * 16);
    CHECK_EQ(irq.calls, 2);
    CHECK_EQ(irq.data, 0x42);
    vtd_wait(2, 0x1111, STATUS_GPA, 0); /* software's recovery: rewrite the slot, clear IQE */
    wr(u, VTD_FSTS, 4, VTD_FSTS_IQE);
    CHECK_EQ(rd(u, VTD_IQH, 8), 3 * 16);
    CHECK_EQ(ram32(STATUS_GPA), 0x1111);

    /* Save, restore into a second unit with the same options, reset. */
    uint8_t image[512];
    CHECK_EQ(fastinval_vtd_save_state(u, NULL, 0), FASTINVAL_VTD_STATE_SIZE);
    CHECK_EQ(fastinval_vtd_save_state(u, image, FASTINVAL_VTD_STATE_SIZE - 1), -ERANGE);
    CHECK_EQ(fastinval_vtd_save_state(u, NULL, sizeof image), -EFAULT);
    CHECK_EQ(fastinval_vtd_save_state(u, image, sizeof image), FASTINVAL_VTD_STATE_SIZE);
    fastinval_vtd_t copy = 0;
    CHECK_EQ(fastinval_vtd_create(mem, &o, 0, &copy), 0);
    CHECK_EQ(fastinval_vtd_restore_state(copy, NULL, 10), -EFAULT);
    CHECK_EQ(fastinval_vtd_restore_state(copy, image, 10), -EINVAL);
    image[0] ^= 0xFF;
    CHECK_EQ(fastinval_vtd_restore_state(copy, image, FASTINVAL_VTD_STATE_SIZE), -EINVAL);
    image[0] ^= 0xFF;
    CHECK_EQ(fastinval_vtd_restore_state(copy, image, FASTINVAL_VTD_STATE_SIZE), 0);
    CHECK_EQ(rd(copy, VTD_IQH, 8), 3 * 16);
    CHECK_EQ(rd(copy, VTD_IQA, 8), QUEUE_GPA);
    CHECK_EQ(rd(copy, VTD_FEDATA, 4), 0x42);
    /* The restored queue continues where the source stopped. */
    vtd_wait(3, 0x2222, STATUS_GPA, 0);
    wr(copy, VTD_IQT, 8, 4 * 16);
    CHECK_EQ(ram32(STATUS_GPA), 0x2222);
    CHECK_EQ(fastinval_vtd_reset(copy), 0);
    CHECK_EQ(rd(copy, VTD_IQA, 8), 0);
    CHECK_EQ(rd(copy, VTD_GSTS, 4), 0);
    CHECK_EQ(fastinval_vtd_destroy(copy), 0);

    /* Stale handles everywhere; the notifiers of a destroyed unit must still be unsubscribed. */
    CHECK_EQ(fastinval_vtd_destroy(u), 0);
    CHECK_EQ(fastinval_vtd_destroy(u), -EBADF);
    CHECK_EQ(fastinval_vtd_read(u, VTD_VER, 4, &v), -EBADF);
    CHECK_EQ(fastinval_vtd_write(u, VTD_IQT, 4, 0), -EBADF);
    CHECK_EQ(fastinval_vtd_save_state(u, NULL, 0), -EBADF);
    CHECK_EQ(fastinval_vtd_restore_state(u, image, FASTINVAL_VTD_STATE_SIZE), -EBADF);
    CHECK_EQ(fastinval_vtd_reset(u), -EBADF);
    CHECK_EQ(fastinval_iotlb_lookup(u, FASTINVAL_STAGE2, 6, FASTINVAL_ADDRESS_SPACE_NONE, 0x40000, &t), -EBADF);
    CHECK_EQ(fastinval_notifier_subscribe(u, NULL, on_notify, &all, &n_self), -EBADF);
    CHECK_EQ(fastinval_notifier_unsubscribe(n_all), 0);
    CHECK_EQ(fastinval_notifier_unsubscribe(n_other), 0);
    CHECK_EQ(fastinval_smmu_read(u, 0, 4, &v), -EBADF); /* a VT-d handle is no SMMU handle */
}

static void test_vtd_timeout(fastinval_guest_memory_t mem)
{
    static struct irq_log irq;
    static const uint32_t slow[] = {0x0100};
    struct fastinval_fault_plan plan;
    memset(&plan, 0, sizeof plan);
    plan.size = sizeof plan;
    plan.timeout_source_ids = slow;
    plan.timeout_source_id_count = 1;
    struct fastinval_vtd_options o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.fault_plan = &plan;
    o.interrupt = on_irq;
    o.interrupt_user = &irq;
    fastinval_vtd_t u = 0;
    CHECK_EQ(fastinval_vtd_create(mem, &o, 0, &u), 0);
    struct fastinval_devtlb_entry d = {.input_address = 0x7000, .output_address = 0x8000, .source_id = 0x0100,
                                       .pasid = FASTINVAL_ADDRESS_SPACE_NONE, .rights = 3, .size_log2 = 12};
    CHECK_EQ(fastinval_devtlb_fill(u, &d), FASTINVAL_FILL_INSERTED);
    wr(u, VTD_FECTL, 4, 0);
    start_queue(u);
    memset(ram + STATUS_GPA, 0, 4);
    vtd_devtlb(0, 0x0100, 0x7000);
    vtd_wait(1, 0x3333, STATUS_GPA, 0);
    wr(u, VTD_IQT, 8, 2 * 16);
    uint64_t fsts = rd(u, VTD_FSTS, 4);
    CHECK((fsts & VTD_FSTS_ITE) != 0);
    CHECK_EQ((rd(u, VTD_IQERCD, 8) >> 32) & 0xFFFF, 0x0100); /* ITESID */
    CHECK_EQ(ram32(STATUS_GPA), 0);                          /* the wait was aborted */
    CHECK_EQ(rd(u, VTD_IQH, 8), 2 * 16);
    CHECK_EQ(irq.calls, 1);
    struct fastinval_translation t;
    CHECK_EQ(fastinval_devtlb_lookup(u, 0x0100, FASTINVAL_ADDRESS_SPACE_NONE, 0x7000, &t), 1); /* still cached */
    wr(u, VTD_FSTS, 4, VTD_FSTS_ITE);
    CHECK_EQ(rd(u, VTD_FSTS, 4) & VTD_FSTS_ITE, 0);
    CHECK_EQ(fastinval_vtd_destroy(u), 0);

    /* Capabilities off: no device TLB means type 3 is an invalid type (IQE). */
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.flags = FASTINVAL_VTD_NO_DEVICE_TLB;
    CHECK_EQ(fastinval_vtd_create(mem, &o, 0, &u), 0);
    CHECK_EQ((rd(u, VTD_ECAP, 8) >> 2) & 1, 0);
    start_queue(u);
    vtd_devtlb(0, 0x0100, 0x7000);
    wr(u, VTD_IQT, 8, 16);
    CHECK((rd(u, VTD_FSTS, 4) & VTD_FSTS_IQE) != 0);
    CHECK_EQ(fastinval_vtd_destroy(u), 0);
}

static void smmu_put(uint32_t slot, uint64_t lo, uint64_t hi)
{
    memcpy(ram + QUEUE_GPA + slot * 16, &lo, 8);
    memcpy(ram + QUEUE_GPA + slot * 16 + 8, &hi, 8);
}

static void test_smmu(fastinval_guest_memory_t mem)
{
    static struct irq_log irq;
    struct fastinval_smmu_options o;
    fastinval_smmu_t s = 0;
    memset(&o, 0, sizeof o);
    CHECK_EQ(fastinval_smmu_create(mem, &o, 0, &s), -EINVAL);
    o.size = sizeof o;
    o.output_address_bits = 47;
    CHECK_EQ(fastinval_smmu_create(mem, &o, 0, &s), -EINVAL);
    o.output_address_bits = 0;
    o.flags = 0x1000;
    CHECK_EQ(fastinval_smmu_create(mem, &o, 0, &s), -EINVAL);
    o.flags = FASTINVAL_SMMU_NO_SUBSTREAMS;
    o.substream_id_bits = 4;
    CHECK_EQ(fastinval_smmu_create(mem, &o, 0, &s), -EINVAL);
    o.flags = 0;
    o.substream_id_bits = 0;
    o.interrupt = on_irq;
    o.interrupt_user = &irq;
    CHECK_EQ(fastinval_smmu_create(mem, &o, 0, NULL), -EFAULT);
    CHECK_EQ(fastinval_smmu_create(mem, &o, 0, &s), 0);

    uint64_t v = 0;
    CHECK_EQ(fastinval_smmu_read(s, SMMU_IDR0, 3, &v), -EINVAL);
    CHECK_EQ(fastinval_smmu_read(s, SMMU_IDR0, 4, NULL), -EFAULT);
    CHECK_EQ(fastinval_smmu_read(s, SMMU_IDR0, 4, &v), 0);
    CHECK((v & (1u << 10)) != 0); /* IDR0.ATS */

    struct fastinval_iotlb_entry entry = {.input_address = 0x40000, .output_address = 0x80000, .address_space_id = 7,
                                          .domain_id = 2, .rights = 3, .stage = FASTINVAL_STAGE1, .granule = FASTINVAL_GRANULE_4K, .size_log2 = 12};
    CHECK_EQ(fastinval_iotlb_fill(s, &entry), FASTINVAL_FILL_INSERTED);

    /* A queue of 2^4 commands; CMD_TLBI_NH_ASID (VMID 2, ASID 7), CMD_SYNC with an MSI into guest RAM, an illegal opcode. */
    CHECK_EQ(fastinval_smmu_write(s, SMMU_CMDQ_BASE, 8, QUEUE_GPA | 4), 0);
    CHECK_EQ(fastinval_smmu_write(s, SMMU_CR0, 4, SMMU_CR0_CMDQEN), 0);
    CHECK_EQ(fastinval_smmu_read(s, SMMU_CR0ACK, 4, &v), 0);
    CHECK_EQ(v & SMMU_CR0_CMDQEN, SMMU_CR0_CMDQEN);
    smmu_put(0, 0x11 | (2ull << 32) | (7ull << 48), 0);
    smmu_put(1, 0x46 | (1ull << 12) | (0xabcdull << 32), MSI_GPA);
    CHECK_EQ(fastinval_smmu_write(s, SMMU_CMDQ_PROD, 4, 2), 0);
    CHECK_EQ(fastinval_smmu_read(s, SMMU_CMDQ_CONS, 4, &v), 0);
    CHECK_EQ(v, 2);
    CHECK_EQ(ram32(MSI_GPA), 0xabcd);
    CHECK_EQ(irq.calls, 2); /* the MSI, then the CMD_SYNC wired output */
    CHECK_EQ(irq.msi_address, MSI_GPA);
    CHECK_EQ(irq.kind, FASTINVAL_INTERRUPT_SMMU_CMD_SYNC);
    struct fastinval_translation t;
    CHECK_EQ(fastinval_iotlb_lookup(s, FASTINVAL_STAGE1, 2, 7, 0x40000, &t), 0);

    smmu_put(2, 0xFF, 0);
    CHECK_EQ(fastinval_smmu_write(s, SMMU_CMDQ_PROD, 4, 3), 0);
    CHECK_EQ(fastinval_smmu_read(s, SMMU_CMDQ_CONS, 4, &v), 0);
    CHECK_EQ((v >> 24) & 0x7F, 1); /* CERROR_ILL */
    CHECK_EQ(v & 0xFFFFF, 2);      /* CONS on the bad command */
    uint64_t gerror = 0;
    CHECK_EQ(fastinval_smmu_read(s, SMMU_GERROR, 4, &gerror), 0);
    CHECK_EQ(gerror & 1, 1); /* CMDQ_ERR */

    uint8_t image[FASTINVAL_SMMU_STATE_SIZE];
    CHECK_EQ(fastinval_smmu_save_state(s, NULL, 0), FASTINVAL_SMMU_STATE_SIZE);
    CHECK_EQ(fastinval_smmu_save_state(s, image, 16), -ERANGE);
    CHECK_EQ(fastinval_smmu_save_state(s, image, sizeof image), FASTINVAL_SMMU_STATE_SIZE);
    CHECK_EQ(fastinval_smmu_reset(s), 0);
    CHECK_EQ(fastinval_smmu_read(s, SMMU_CR0ACK, 4, &v), 0);
    CHECK_EQ(v, 0);
    CHECK_EQ(fastinval_smmu_restore_state(s, image, sizeof image), 0);
    CHECK_EQ(fastinval_smmu_read(s, SMMU_GERROR, 4, &v), 0);
    CHECK_EQ(v, gerror);
    /* Recovery: acknowledge GERROR, replace the bad command with CMD_SYNC; the queue runs on. */
    smmu_put(2, 0x46, 0);
    CHECK_EQ(fastinval_smmu_write(s, SMMU_GERRORN, 4, gerror), 0);
    CHECK_EQ(fastinval_smmu_read(s, SMMU_CMDQ_CONS, 4, &v), 0);
    CHECK_EQ(v & 0xFFFFF, 3);
    CHECK_EQ(fastinval_smmu_restore_state(s, image, 3), -EINVAL);

    CHECK_EQ(fastinval_smmu_destroy(s), 0);
    CHECK_EQ(fastinval_smmu_destroy(s), -EBADF);
    CHECK_EQ(fastinval_smmu_write(s, SMMU_CMDQ_PROD, 4, 0), -EBADF);
    CHECK_EQ(fastinval_smmu_save_state(s, image, sizeof image), -EBADF);
    CHECK_EQ(fastinval_smmu_restore_state(s, image, sizeof image), -EBADF);
    CHECK_EQ(fastinval_smmu_reset(s), -EBADF);
    CHECK_EQ(fastinval_vtd_destroy(s), -EBADF);
}

static void test_notifier_errors(void)
{
    fastinval_engine_t e = 0;
    fastinval_notifier_t n = 0;
    struct notify_log log;
    memset(&log, 0, sizeof log);
    CHECK_EQ(fastinval_engine_create(NULL, &e), 0);
    CHECK_EQ(fastinval_notifier_subscribe(e, NULL, NULL, &log, &n), -EFAULT);
    CHECK_EQ(fastinval_notifier_subscribe(e, NULL, on_notify, &log, NULL), -EFAULT);
    CHECK_EQ(fastinval_notifier_subscribe(0, NULL, on_notify, &log, &n), -EBADF);
    struct fastinval_notifier_filter f;
    memset(&f, 0, sizeof f);
    CHECK_EQ(fastinval_notifier_subscribe(e, &f, on_notify, &log, &n), -EINVAL); /* size 0 */
    f.size = sizeof f;
    f.scopes = 0x8;
    CHECK_EQ(fastinval_notifier_subscribe(e, &f, on_notify, &log, &n), -EINVAL);
    f.scopes = FASTINVAL_NOTIFY_IOTLB;
    f.flags = FASTINVAL_FILTER_RANGE;
    f.first = 10;
    f.last = 9;
    CHECK_EQ(fastinval_notifier_subscribe(e, &f, on_notify, &log, &n), -EINVAL);
    f.flags = FASTINVAL_FILTER_ADDRESS_SPACE;
    f.address_space_id = 0x100000; /* neither an id nor NONE */
    CHECK_EQ(fastinval_notifier_subscribe(e, &f, on_notify, &log, &n), -EINVAL);
    CHECK_EQ(n, 0);
    f.address_space_id = 4;
    CHECK_EQ(fastinval_notifier_subscribe(e, &f, on_notify, &log, &n), 0);
    /* fastinval_execute notifies too: an IOTLB flush of PASID 4 passes, one of PASID 5 does not. */
    struct fastinval_descriptor d[2];
    uint8_t st[2];
    memset(d, 0, sizeof d);
    d[0].scope = FASTINVAL_SCOPE_IOTLB;
    d[0].flags = FASTINVAL_MATCH_ADDRESS_SPACE;
    d[0].stages = FASTINVAL_STAGES_ALL;
    d[0].address_space_id = 5;
    d[1] = d[0];
    d[1].address_space_id = 4;
    CHECK_EQ(fastinval_execute(e, d, 2, st, NULL), 0);
    CHECK_EQ(log.calls, 1);
    CHECK_EQ(log.records, 1);
    CHECK_EQ(log.last.source, FASTINVAL_SOURCE_ENGINE);
    CHECK_EQ(log.last.source_index, 1);
    CHECK_EQ(log.last.descriptor.address_space_id, 4);
    CHECK_EQ(fastinval_notifier_unsubscribe(e), -EBADF); /* an engine is no notifier */
    CHECK_EQ(fastinval_notifier_unsubscribe(n), 0);
    CHECK_EQ(fastinval_execute(e, d, 2, st, NULL), 0);
    CHECK_EQ(log.calls, 1);
    CHECK_EQ(fastinval_engine_destroy(e), 0);
}

/* A unit over callback guest memory: descriptor fetches and the wait's status write go through the callbacks. */
static void test_vtd_over_callbacks(void)
{
    static struct cb_space space;
    fastinval_guest_memory_t cbm = 0;
    CHECK_EQ(fastinval_guest_memory_create_callbacks(cb_read, cb_write, &space, &cbm), 0);
    fastinval_vtd_t u = 0;
    CHECK_EQ(fastinval_vtd_create(cbm, NULL, 0, &u), 0);
    CHECK_EQ(fastinval_guest_memory_destroy(cbm), 0); /* the unit keeps the address space */
    uint64_t wait_lo = 0x5 | (1u << 5) | (0x4444ull << 32), wait_hi = 0x800;
    memcpy(space.bytes, &wait_lo, 8);
    memcpy(space.bytes + 8, &wait_hi, 8);
    wr(u, VTD_IQA, 8, 0);
    wr(u, VTD_GCMD, 4, VTD_QIE);
    wr(u, VTD_IQT, 8, 16);
    uint32_t status;
    memcpy(&status, space.bytes + 0x800, 4);
    CHECK_EQ(status, 0x4444);
    CHECK(space.reads >= 1);
    CHECK(space.writes >= 1);
    /* A fetch the callback refuses is IQE (IQEI 2, fetch error). */
    wr(u, VTD_GCMD, 4, 0);
    wr(u, VTD_IQA, 8, 0x10000); /* beyond the 4 KiB the callbacks serve */
    wr(u, VTD_GCMD, 4, VTD_QIE);
    wr(u, VTD_IQT, 8, 16);
    CHECK((rd(u, VTD_FSTS, 4) & VTD_FSTS_IQE) != 0);
    CHECK_EQ(rd(u, VTD_IQERCD, 8) & 0xF, 2);
    CHECK_EQ(fastinval_vtd_destroy(u), 0);
}

int main(void)
{
    int handles_at_start = fastinval_handle_count();
    ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(ram != MAP_FAILED);
    if (ram == MAP_FAILED) return check_report("test_units");

    test_guest_memory();
    fastinval_guest_memory_t mem = 0;
    CHECK_EQ(fastinval_guest_memory_create(&mem), 0);
    CHECK_EQ(fastinval_guest_memory_map(mem, 0, ram, RAM_SIZE), 0);
    test_vtd_create_errors(mem);
    test_vtd_queue(mem);
    test_vtd_timeout(mem);
    test_smmu(mem);
    test_notifier_errors();
    test_vtd_over_callbacks();
    CHECK_EQ(fastinval_guest_memory_destroy(mem), 0);
    CHECK_EQ(fastinval_handle_count(), handles_at_start); /* nothing leaked */
    munmap(ram, RAM_SIZE);
    return check_report("test_units");
}
