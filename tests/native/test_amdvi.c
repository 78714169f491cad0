/* SPDX-License-Identifier: MIT */
/*
 * The AMD-Vi unit through the C ABI: bad options, pointers and handles get their error codes; a command buffer in guest
 * RAM runs INVALIDATE_IOMMU_PAGES on the unit's IOTLB and a COMPLETION_WAIT store with its interrupt; an illegal command
 * writes ILLEGAL_COMMAND_ERROR to the event log and stops the buffer; save / restore / reset; the device-TLB sink holds a
 * COMPLETION_WAIT until a pthread answers; no handle is leaked.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "check.h"
#include "fastinval.h"

#define AMDVI_CMD_BASE 0x0008
#define AMDVI_EVT_BASE 0x0010
#define AMDVI_CONTROL 0x0018
#define AMDVI_EFR 0x0030
#define AMDVI_CMD_HEAD 0x2000
#define AMDVI_CMD_TAIL 0x2008
#define AMDVI_EVT_TAIL 0x2018
#define AMDVI_STATUS 0x2020

#define CTL_IOMMU_EN (1ull << 0)
#define CTL_EVENT_LOG_EN (1ull << 2)
#define CTL_EVENT_INT_EN (1ull << 3)
#define CTL_COM_WAIT_INT_EN (1ull << 4)
#define CTL_CMD_BUF_EN (1ull << 12)
#define ST_EVENT_LOG_INT (1ull << 1)
#define ST_COM_WAIT_INT (1ull << 2)
#define ST_CMD_BUF_RUN (1ull << 4)

#define RAM_SIZE (1u << 20)
#define CMD_GPA 0x10000u
#define EVT_GPA 0x20000u
#define STORE_GPA 0x30000u
#define LEN_256 (8ull << 56) /* ComLen / EventLen 8h: 256 entries, 4 KiB */

static uint8_t *ram;

struct irq_log {
    int count;
    uint32_t kind;
    uint64_t address;
    uint32_t data;
};

static void on_irq(void *user, uint32_t kind, uint64_t address, uint32_t data)
{
    struct irq_log *log = user;
    log->count++;
    log->kind = kind;
    log->address = address;
    log->data = data;
}

static uint64_t rd(fastinval_amdvi_t u, uint32_t offset)
{
    uint64_t v = 0xDEAD;
    CHECK_EQ(fastinval_amdvi_read(u, offset, 8, &v), 0);
    return v;
}

static void wr(fastinval_amdvi_t u, uint32_t offset, uint32_t size, uint64_t value)
{
    CHECK_EQ(fastinval_amdvi_write(u, offset, size, value), 0);
}

static uint64_t load64(uint64_t gpa)
{
    uint64_t v;
    memcpy(&v, ram + gpa, 8);
    return v;
}

/* Writes a command at the tail and publishes it. */
static void submit(fastinval_amdvi_t u, uint64_t qw0, uint64_t qw1)
{
    uint64_t tail = rd(u, AMDVI_CMD_TAIL);
    memcpy(ram + CMD_GPA + tail, &qw0, 8);
    memcpy(ram + CMD_GPA + tail + 8, &qw1, 8);
    wr(u, AMDVI_CMD_TAIL, 4, (tail + 16) % 4096);
}

static uint64_t completion_wait(uint64_t store_gpa, int interrupt) { return (1ull << 60) | store_gpa | 1u | (interrupt ? 2u : 0u); }

static uint64_t invalidate_iommu_pages(uint16_t domain) { return (3ull << 60) | ((uint64_t)domain << 32); }

static uint64_t invalidate_iotlb_pages(uint16_t device) { return (4ull << 60) | device; }

static void start(fastinval_amdvi_t u)
{
    memset(ram + CMD_GPA, 0, 4096);
    memset(ram + EVT_GPA, 0, 4096);
    wr(u, AMDVI_CMD_BASE, 8, CMD_GPA | LEN_256);
    wr(u, AMDVI_EVT_BASE, 8, EVT_GPA | LEN_256);
    wr(u, AMDVI_CONTROL, 8, CTL_IOMMU_EN | CTL_CMD_BUF_EN | CTL_EVENT_LOG_EN | CTL_EVENT_INT_EN | CTL_COM_WAIT_INT_EN);
}

static void test_errors(fastinval_guest_memory_t mem)
{
    struct fastinval_amdvi_options o;
    fastinval_amdvi_t u = 0;
    memset(&o, 0, sizeof o);
    CHECK_EQ(fastinval_amdvi_create(mem, &o, 0, &u), -EINVAL); /* size 0 */
    o.size = 64;
    CHECK_EQ(fastinval_amdvi_create(mem, &o, 0, &u), -EINVAL); /* no first version of this struct */
    o.size = sizeof o;
    o.flags = 0x8;
    CHECK_EQ(fastinval_amdvi_create(mem, &o, 0, &u), -EINVAL); /* unknown flag */
    o.flags = 0;
    o.reserved = 1;
    CHECK_EQ(fastinval_amdvi_create(mem, &o, 0, &u), -EINVAL);
    o.reserved = 0;
    o.interrupt_user = &o;
    CHECK_EQ(fastinval_amdvi_create(mem, &o, 0, &u), -EINVAL); /* a user pointer without a callback */
    o.interrupt_user = NULL;
    o.device_tlb.max_outstanding = 3;
    CHECK_EQ(fastinval_amdvi_create(mem, &o, 0, &u), -EINVAL); /* a sink without a callback, not a power of two */
    o.device_tlb.max_outstanding = 0;
    CHECK_EQ(u, 0);
    CHECK_EQ(fastinval_amdvi_create(mem, &o, 0, NULL), -EFAULT);
    CHECK_EQ(fastinval_amdvi_create(0, &o, 0, &u), -EBADF);
    CHECK_EQ(fastinval_amdvi_create(mem, &o, mem, &u), -EBADF); /* not an engine */

    /* A caller's engine: engine options or a fault plan with it are refused. */
    fastinval_engine_t e = 0;
    CHECK_EQ(fastinval_engine_create(NULL, &e), 0);
    o.engine.size = sizeof o.engine;
    CHECK_EQ(fastinval_amdvi_create(mem, &o, e, &u), -EINVAL);
    o.engine.size = 0;
    CHECK_EQ(fastinval_amdvi_create(mem, &o, e, &u), 0);
    CHECK_EQ(fastinval_engine_destroy(e), -EBUSY);
    CHECK_EQ(fastinval_engine_destroy(u), -EBADF);
    CHECK_EQ(fastinval_amdvi_destroy(u), 0);
    CHECK_EQ(fastinval_engine_destroy(e), 0);

    CHECK_EQ(fastinval_amdvi_create(mem, NULL, 0, &u), 0);
    uint64_t v = 0;
    CHECK_EQ(fastinval_amdvi_read(u, AMDVI_EFR, 8, NULL), -EFAULT);
    CHECK_EQ(fastinval_amdvi_read(u, AMDVI_EFR, 2, &v), -EINVAL);
    CHECK_EQ(fastinval_amdvi_write(u, AMDVI_CONTROL, 16, 0), -EINVAL);
    CHECK_EQ(fastinval_amdvi_save_state(u, NULL, FASTINVAL_AMDVI_STATE_SIZE), -EFAULT);
    CHECK_EQ(fastinval_amdvi_restore_state(u, NULL, FASTINVAL_AMDVI_STATE_SIZE), -EFAULT);
    uint8_t small[8];
    CHECK_EQ(fastinval_amdvi_save_state(u, small, sizeof small), -ERANGE);
    CHECK_EQ(fastinval_amdvi_save_state(u, NULL, 0), FASTINVAL_AMDVI_STATE_SIZE);
    CHECK_EQ(rd(u, AMDVI_EFR) & (1ull << 6), 1ull << 6); /* IASup by default */
    /* A handle of another kind is no AMD-Vi unit. */
    fastinval_vtd_t vtd = 0;
    CHECK_EQ(fastinval_vtd_create(mem, NULL, 0, &vtd), 0);
    CHECK_EQ(fastinval_amdvi_read(vtd, AMDVI_EFR, 8, &v), -EBADF);
    CHECK_EQ(fastinval_vtd_read(u, 0, 4, &v), -EBADF);
    CHECK_EQ(fastinval_vtd_destroy(vtd), 0);
    CHECK_EQ(fastinval_amdvi_destroy(u), 0);
    /* A destroyed handle. */
    CHECK_EQ(fastinval_amdvi_read(u, AMDVI_EFR, 8, &v), -EBADF);
    CHECK_EQ(fastinval_amdvi_write(u, AMDVI_CONTROL, 8, 0), -EBADF);
    CHECK_EQ(fastinval_amdvi_save_state(u, NULL, 0), -EBADF);
    CHECK_EQ(fastinval_amdvi_reset(u), -EBADF);
    CHECK_EQ(fastinval_amdvi_destroy(u), -EBADF);
    CHECK_EQ(fastinval_device_tlb_complete(u, 1, FASTINVAL_DEVICE_TLB_OK), -EBADF);

    /* Capability flags reach the EFR. */
    o.flags = FASTINVAL_AMDVI_NO_INVALIDATE_ALL | FASTINVAL_AMDVI_NO_GUEST_TRANSLATION;
    CHECK_EQ(fastinval_amdvi_create(mem, &o, 0, &u), 0);
    CHECK_EQ(rd(u, AMDVI_EFR) & ((1ull << 6) | (1ull << 4)), 0);
    CHECK_EQ(fastinval_amdvi_destroy(u), 0);
}

static void test_buffer(fastinval_guest_memory_t mem)
{
    static struct irq_log irq;
    struct fastinval_amdvi_options o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.interrupt = on_irq;
    o.interrupt_user = &irq;
    fastinval_amdvi_t u = 0, v = 0;
    CHECK_EQ(fastinval_amdvi_create(mem, &o, 0, &u), 0);
    start(u);
    CHECK((rd(u, AMDVI_STATUS) & ST_CMD_BUF_RUN) != 0);

    /* INVALIDATE_IOMMU_PAGES on an entry cached through the unit's handle, then a COMPLETION_WAIT store. */
    struct fastinval_iotlb_entry entry = {.input_address = 0x5000, .output_address = 0x9000, .address_space_id = FASTINVAL_ADDRESS_SPACE_NONE,
                                          .domain_id = 3, .rights = 3, .stage = FASTINVAL_STAGE2, .granule = FASTINVAL_GRANULE_4K, .size_log2 = 12};
    CHECK_EQ(fastinval_iotlb_fill(u, &entry), FASTINVAL_FILL_INSERTED);
    entry.domain_id = 4;
    CHECK_EQ(fastinval_iotlb_fill(u, &entry), FASTINVAL_FILL_INSERTED);
    struct fastinval_translation t;
    CHECK_EQ(fastinval_iotlb_lookup(u, FASTINVAL_STAGE2, 3, FASTINVAL_ADDRESS_SPACE_NONE, 0x5000, &t), 1);
    submit(u, invalidate_iommu_pages(3), 0x5000 | 2u /* PDE */);
    submit(u, completion_wait(STORE_GPA, 1), 0x1122334455667788ull);
    CHECK_EQ(fastinval_iotlb_lookup(u, FASTINVAL_STAGE2, 3, FASTINVAL_ADDRESS_SPACE_NONE, 0x5000, &t), 0);
    CHECK_EQ(fastinval_iotlb_lookup(u, FASTINVAL_STAGE2, 4, FASTINVAL_ADDRESS_SPACE_NONE, 0x5000, &t), 1);
    CHECK_EQ(load64(STORE_GPA), 0x1122334455667788ull);
    CHECK_EQ(rd(u, AMDVI_CMD_HEAD), 32);
    CHECK_EQ(irq.count, 1);
    CHECK_EQ(irq.kind, FASTINVAL_INTERRUPT_AMDVI);
    CHECK_EQ(irq.address, 0);
    CHECK_EQ(irq.data, 0);
    CHECK((rd(u, AMDVI_STATUS) & ST_COM_WAIT_INT) != 0);
    wr(u, AMDVI_STATUS, 4, ST_COM_WAIT_INT);

    /* An illegal command (opcode 0Fh): ILLEGAL_COMMAND_ERROR with its address, the head on it, the buffer stopped. */
    submit(u, 0xFull << 60, 0);
    CHECK_EQ(rd(u, AMDVI_CMD_HEAD), 32);
    CHECK_EQ(rd(u, AMDVI_STATUS) & ST_CMD_BUF_RUN, 0);
    CHECK_EQ(rd(u, AMDVI_EVT_TAIL), 16);
    CHECK_EQ(load64(EVT_GPA) >> 60, 5);
    CHECK_EQ(load64(EVT_GPA + 8), CMD_GPA + 32);
    CHECK_EQ(irq.count, 2);
    CHECK((rd(u, AMDVI_STATUS) & ST_EVENT_LOG_INT) != 0);

    /* Save the stopped unit, restore it into a second one, which continues after the guest's restart. */
    uint8_t image[FASTINVAL_AMDVI_STATE_SIZE];
    CHECK_EQ(fastinval_amdvi_save_state(u, image, sizeof image), FASTINVAL_AMDVI_STATE_SIZE);
    uint32_t magic;
    memcpy(&magic, image, 4);
    CHECK_EQ(magic, 0x56414946u);
    CHECK_EQ(fastinval_amdvi_create(mem, &o, 0, &v), 0);
    CHECK_EQ(fastinval_amdvi_restore_state(v, image, sizeof image - 1), -EINVAL);
    uint8_t bad[FASTINVAL_AMDVI_STATE_SIZE];
    memcpy(bad, image, sizeof bad);
    bad[8] ^= 1; /* another EFR */
    CHECK_EQ(fastinval_amdvi_restore_state(v, bad, sizeof bad), -EINVAL);
    CHECK_EQ(rd(v, AMDVI_CONTROL), 0); /* unchanged */
    int before = irq.count;
    CHECK_EQ(fastinval_amdvi_restore_state(v, image, sizeof image), 0);
    CHECK_EQ(irq.count, before);        /* the restore sends nothing */
    CHECK_EQ(rd(v, AMDVI_CMD_HEAD), 32);
    CHECK_EQ(rd(v, AMDVI_STATUS) & ST_CMD_BUF_RUN, 0);
    uint64_t control = rd(v, AMDVI_CONTROL);
    wr(v, AMDVI_CONTROL, 8, control & ~CTL_CMD_BUF_EN);
    wr(v, AMDVI_CMD_HEAD, 4, 48);        /* past the illegal command */
    wr(v, AMDVI_CONTROL, 8, control);
    CHECK((rd(v, AMDVI_STATUS) & ST_CMD_BUF_RUN) != 0);
    submit(v, completion_wait(STORE_GPA + 8, 0), 77);
    CHECK_EQ(load64(STORE_GPA + 8), 77);
    CHECK_EQ(rd(v, AMDVI_CMD_HEAD), 64);

    /* Reset: power-on registers, the unit's own caches emptied. */
    CHECK_EQ(fastinval_iotlb_fill(v, &entry), FASTINVAL_FILL_INSERTED);
    CHECK_EQ(fastinval_amdvi_reset(v), 0);
    CHECK_EQ(rd(v, AMDVI_CONTROL), 0);
    CHECK_EQ(rd(v, AMDVI_CMD_HEAD), 0);
    CHECK_EQ(rd(v, AMDVI_STATUS), 0);
    struct fastinval_engine_counts counts;
    CHECK_EQ(fastinval_engine_counts(v, &counts), 0);
    CHECK_EQ(counts.iotlb_count, 0);
    CHECK_EQ(rd(v, AMDVI_EFR), rd(u, AMDVI_EFR));
    CHECK_EQ(fastinval_amdvi_destroy(v), 0);
    CHECK_EQ(fastinval_amdvi_destroy(u), 0);
}

struct sink_log {
    struct fastinval_device_tlb_request r[8];
    int count;
};

static void on_request(void *user, const struct fastinval_device_tlb_request *request)
{
    struct sink_log *log = user;
    if (log->count < 8) log->r[log->count] = *request;
    log->count++;
}

struct answer {
    uint64_t unit, ticket;
    int rc;
};

static void *answer_thread(void *arg)
{
    struct answer *a = arg;
    a->rc = fastinval_device_tlb_complete(a->unit, a->ticket, FASTINVAL_DEVICE_TLB_OK);
    return NULL;
}

static void test_sink(fastinval_guest_memory_t mem)
{
    static struct sink_log log;
    static struct irq_log irq;
    struct fastinval_amdvi_options o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.interrupt = on_irq;
    o.interrupt_user = &irq;
    o.device_tlb.request = on_request;
    o.device_tlb.user = &log;
    fastinval_amdvi_t u = 0;
    CHECK_EQ(fastinval_amdvi_create(mem, &o, 0, &u), 0);
    start(u);
    struct fastinval_devtlb_entry d = {.input_address = 0x7000, .output_address = 0x7000, .source_id = 0x10,
                                       .pasid = FASTINVAL_ADDRESS_SPACE_NONE, .rights = 3, .size_log2 = 12};
    CHECK_EQ(fastinval_devtlb_fill(u, &d), FASTINVAL_FILL_INSERTED);
    memset(ram + STORE_GPA, 0, 16);
    submit(u, invalidate_iotlb_pages(0x10), 0x7000);
    submit(u, completion_wait(STORE_GPA, 1), 99);
    CHECK_EQ(log.count, 1);
    CHECK_EQ(log.r[0].source, FASTINVAL_SOURCE_AMDVI_CMDBUF);
    CHECK_EQ(log.r[0].descriptor.source_id, 0x10);
    CHECK_EQ(log.r[0].index, 0);
    CHECK_EQ(rd(u, AMDVI_CMD_HEAD), 16); /* the COMPLETION_WAIT is held */
    CHECK_EQ(load64(STORE_GPA), 0);
    CHECK_EQ(irq.count, 0);
    uint8_t image[FASTINVAL_AMDVI_STATE_SIZE];
    CHECK_EQ(fastinval_amdvi_save_state(u, image, sizeof image), -EBUSY);
    CHECK_EQ(fastinval_device_tlb_complete(u, log.r[0].ticket, 9), -EINVAL);
    CHECK_EQ(fastinval_device_tlb_complete(u, log.r[0].ticket + 1000, FASTINVAL_DEVICE_TLB_OK), -ENOENT);

    struct answer a = {u, log.r[0].ticket, -1};
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, answer_thread, &a), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK_EQ(a.rc, 0);
    CHECK_EQ(load64(STORE_GPA), 99);     /* released on the answering thread */
    CHECK_EQ(rd(u, AMDVI_CMD_HEAD), 32);
    CHECK_EQ(irq.count, 1);
    struct fastinval_engine_counts counts;
    CHECK_EQ(fastinval_engine_counts(u, &counts), 0);
    CHECK_EQ(counts.device_tlb_count, 0);
    CHECK_EQ(fastinval_device_tlb_complete(u, log.r[0].ticket, FASTINVAL_DEVICE_TLB_OK), -ENOENT); /* answered already */
    CHECK_EQ(fastinval_amdvi_save_state(u, image, sizeof image), FASTINVAL_AMDVI_STATE_SIZE);

    /* Reset drops an outstanding request: its ticket is refused afterwards. */
    submit(u, invalidate_iotlb_pages(0x10), 0x7000);
    CHECK_EQ(log.count, 2);
    CHECK_EQ(fastinval_amdvi_reset(u), 0);
    CHECK_EQ(fastinval_device_tlb_complete(u, log.r[1].ticket, FASTINVAL_DEVICE_TLB_OK), -ENOENT);
    CHECK_EQ(fastinval_amdvi_save_state(u, image, sizeof image), FASTINVAL_AMDVI_STATE_SIZE);
    CHECK_EQ(fastinval_amdvi_destroy(u), 0);
}

int main(void)
{
    int handles = fastinval_handle_count();
    ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(ram != MAP_FAILED);
    fastinval_guest_memory_t mem = 0;
    CHECK_EQ(fastinval_guest_memory_create(&mem), 0);
    CHECK_EQ(fastinval_guest_memory_map(mem, 0, ram, RAM_SIZE), 0);
    test_errors(mem);
    test_buffer(mem);
    test_sink(mem);
    CHECK_EQ(fastinval_guest_memory_destroy(mem), 0);
    CHECK_EQ(fastinval_handle_count(), handles); /* no handle leaked */
    munmap(ram, RAM_SIZE);
    return check_report("test_amdvi");
}
