/* SPDX-License-Identifier: MIT */
/*
 * The device-TLB sink through the C ABI: requests reach the VMM's callback in queue order, the VT-d wait and the SMMUv3
 * CMD_SYNC are held until every earlier request is answered with fastinval_device_tlb_complete from another thread (in
 * any order), the library's own time-out turns silence into an ITE, save_state is refused while requests are
 * unanswered, and every bad call gets its error code: a bad handle, an unknown outcome, a stale ticket, a bad sink
 * struct, the first (64-byte) options struct still accepted.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "check.h"
#include "fastinval.h"

#define VTD_FSTS 0x34
#define VTD_FECTL 0x38
#define VTD_IQH 0x80
#define VTD_IQT 0x88
#define VTD_IQA 0x90
#define VTD_IQERCD 0xB0
#define VTD_GCMD 0x18
#define VTD_QIE (1u << 26)
#define VTD_FSTS_ICE (1u << 5)
#define VTD_FSTS_ITE (1u << 6)

#define SMMU_CR0 0x20
#define SMMU_GERROR 0x60
#define SMMU_CMDQ_BASE 0x90
#define SMMU_CMDQ_PROD 0x98
#define SMMU_CMDQ_CONS 0x9C

#define RAM_SIZE (1u << 20)
#define QUEUE_GPA 0x10000u
#define STATUS_GPA 0x20000u
#define MSI_GPA 0x30000u

static uint8_t *ram;

struct requests {
    struct fastinval_device_tlb_request r[64];
    int count;
    uint64_t answer_inside; /* unit to answer from inside the callback (0: none) */
    int inside_rc;
};

static void on_request(void *user, const struct fastinval_device_tlb_request *request)
{
    struct requests *log = user;
    if (log->count < 64) log->r[log->count] = *request;
    log->count++;
    if (log->answer_inside != 0) log->inside_rc = fastinval_device_tlb_complete(log->answer_inside, request->ticket, FASTINVAL_DEVICE_TLB_OK);
}

struct answer {
    uint64_t unit, ticket;
    uint32_t outcome;
    int rc;
};

static void *answer_thread(void *arg)
{
    struct answer *a = arg;
    a->rc = fastinval_device_tlb_complete(a->unit, a->ticket, a->outcome);
    return NULL;
}

/* Answers from a thread of its own, and waits for it. */
static int answer_elsewhere(uint64_t unit, uint64_t ticket, uint32_t outcome)
{
    struct answer a = {unit, ticket, outcome, -1};
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, answer_thread, &a), 0);
    CHECK_EQ(pthread_join(t, NULL), 0);
    return a.rc;
}

static uint64_t rd(fastinval_vtd_t u, uint32_t off, uint32_t size)
{
    uint64_t v = 0;
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

static void vtd_put(uint32_t slot, uint64_t lo, uint64_t hi)
{
    memcpy(ram + QUEUE_GPA + slot * 16, &lo, 8);
    memcpy(ram + QUEUE_GPA + slot * 16 + 8, &hi, 8);
}

static void vtd_devtlb(uint32_t slot, uint16_t sid, uint64_t addr) { vtd_put(slot, 0x3 | ((uint64_t)sid << 32), addr & ~0xFFFull); }

static void vtd_wait(uint32_t slot, uint32_t data) { vtd_put(slot, 0x5 | (1u << 5) | ((uint64_t)data << 32), STATUS_GPA); }

static void fill(uint64_t unit, uint32_t sid, uint64_t page)
{
    struct fastinval_devtlb_entry d = {.input_address = page, .output_address = page, .source_id = sid,
                                       .pasid = FASTINVAL_ADDRESS_SPACE_NONE, .rights = 3, .size_log2 = 12};
    CHECK_EQ(fastinval_devtlb_fill(unit, &d), FASTINVAL_FILL_INSERTED);
}

static int cached(uint64_t unit, uint32_t sid, uint64_t page)
{
    struct fastinval_translation t;
    return fastinval_devtlb_lookup(unit, sid, FASTINVAL_ADDRESS_SPACE_NONE, page, &t);
}

static fastinval_vtd_t vtd_with_sink(fastinval_guest_memory_t mem, struct requests *log, uint64_t timeout_ns)
{
    struct fastinval_vtd_options o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.device_tlb.request = on_request;
    o.device_tlb.user = log;
    o.device_tlb.timeout_ns = timeout_ns;
    fastinval_vtd_t u = 0;
    CHECK_EQ(fastinval_vtd_create(mem, &o, 0, &u), 0);
    wr(u, VTD_FECTL, 4, 0);
    wr(u, VTD_IQA, 8, QUEUE_GPA);
    wr(u, VTD_GCMD, 4, VTD_QIE);
    return u;
}

static void test_vtd_held_wait(fastinval_guest_memory_t mem)
{
    static struct requests log;
    memset(&log, 0, sizeof log);
    fastinval_vtd_t u = vtd_with_sink(mem, &log, UINT64_MAX);
    fill(u, 0x10, 0x4000);
    fill(u, 0x20, 0x8000);
    memset(ram + STATUS_GPA, 0, 4);
    vtd_devtlb(0, 0x10, 0x4000);
    vtd_devtlb(1, 0x20, 0x8000);
    vtd_wait(2, 0x77);
    wr(u, VTD_IQT, 8, 3 * 16);

    CHECK_EQ(log.count, 2);
    CHECK_EQ(log.r[0].descriptor.source_id, 0x10);
    CHECK_EQ(log.r[1].descriptor.source_id, 0x20);
    CHECK_EQ(log.r[0].descriptor.scope, FASTINVAL_SCOPE_DEVICE_TLB);
    CHECK_EQ(log.r[0].source, FASTINVAL_SOURCE_VTD_QUEUE);
    CHECK_EQ(log.r[1].index, 1);
    CHECK(log.r[0].ticket != 0 && log.r[0].ticket != log.r[1].ticket);
    CHECK_EQ(log.r[1].ordinal, log.r[0].ordinal + 1);
    CHECK_EQ(rd(u, VTD_IQH, 8), 2 * 16); /* on the wait */
    CHECK_EQ(ram32(STATUS_GPA), 0);
    CHECK_EQ(cached(u, 0x10, 0x4000), 1);
    uint8_t image[256];
    CHECK_EQ(fastinval_vtd_save_state(u, image, sizeof image), -EBUSY);

    CHECK_EQ(answer_elsewhere(u, log.r[1].ticket, FASTINVAL_DEVICE_TLB_OK), 0); /* out of order */
    CHECK_EQ(rd(u, VTD_IQH, 8), 2 * 16);
    CHECK_EQ(cached(u, 0x20, 0x8000), 0);
    CHECK_EQ(answer_elsewhere(u, log.r[0].ticket, FASTINVAL_DEVICE_TLB_COMPLETION_ERROR), 0);
    CHECK_EQ(rd(u, VTD_IQH, 8), 3 * 16);
    CHECK_EQ(ram32(STATUS_GPA), 0x77);
    CHECK((rd(u, VTD_FSTS, 4) & VTD_FSTS_ICE) != 0);
    CHECK_EQ((rd(u, VTD_IQERCD, 8) >> 48) & 0xFFFF, 0x10); /* ICESID */
    CHECK_EQ(cached(u, 0x10, 0x4000), 0);
    CHECK(fastinval_vtd_save_state(u, image, sizeof image) > 0);

    /* Misuse: answered twice, never issued, an unknown outcome, not a unit handle, a destroyed unit. */
    CHECK_EQ(fastinval_device_tlb_complete(u, log.r[0].ticket, FASTINVAL_DEVICE_TLB_OK), -ENOENT);
    CHECK_EQ(fastinval_device_tlb_complete(u, 0, FASTINVAL_DEVICE_TLB_OK), -ENOENT);
    CHECK_EQ(fastinval_device_tlb_complete(u, ~0ull, FASTINVAL_DEVICE_TLB_OK), -ENOENT);
    CHECK_EQ(fastinval_device_tlb_complete(u, log.r[0].ticket, 3), -EINVAL);
    CHECK_EQ(fastinval_device_tlb_complete(0, log.r[0].ticket, 0), -EBADF);
    CHECK_EQ(fastinval_device_tlb_complete(0xDEADBEEF, 1, 0), -EBADF);
    fastinval_guest_memory_t other = 0;
    CHECK_EQ(fastinval_guest_memory_create(&other), 0);
    CHECK_EQ(fastinval_device_tlb_complete(other, 1, 0), -EBADF); /* a handle of another kind */
    CHECK_EQ(fastinval_guest_memory_destroy(other), 0);

    /* Reset drops a request: its entries go and its ticket is refused. */
    fill(u, 0x30, 0xC000);
    vtd_devtlb(3, 0x30, 0xC000);
    wr(u, VTD_IQT, 8, 4 * 16);
    CHECK_EQ(log.count, 3);
    CHECK_EQ(fastinval_vtd_reset(u), 0);
    CHECK_EQ(cached(u, 0x30, 0xC000), 0);
    CHECK_EQ(fastinval_device_tlb_complete(u, log.r[2].ticket, FASTINVAL_DEVICE_TLB_OK), -ENOENT);
    CHECK_EQ(fastinval_vtd_destroy(u), 0);
    CHECK_EQ(fastinval_device_tlb_complete(u, log.r[2].ticket, FASTINVAL_DEVICE_TLB_OK), -EBADF);
}

static void test_vtd_timeout_and_inline_answers(fastinval_guest_memory_t mem)
{
    static struct requests log;
    memset(&log, 0, sizeof log);
    fastinval_vtd_t u = vtd_with_sink(mem, &log, 20ull * 1000 * 1000); /* 20 ms */
    fill(u, 0x40, 0x4000);
    memset(ram + STATUS_GPA, 0, 4);
    vtd_devtlb(0, 0x40, 0x4000);
    vtd_wait(1, 0x55);
    wr(u, VTD_IQT, 8, 2 * 16);
    CHECK_EQ(rd(u, VTD_IQH, 8), 16);
    int ite = 0;
    for (int i = 0; i < 500 && !ite; i++) { /* up to 5 s for the library's timer */
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        ite = (rd(u, VTD_FSTS, 4) & VTD_FSTS_ITE) != 0;
    }
    CHECK(ite);
    CHECK_EQ((rd(u, VTD_IQERCD, 8) >> 32) & 0xFFFF, 0x40); /* ITESID */
    CHECK_EQ(rd(u, VTD_IQH, 8), 2 * 16);                   /* the wait was aborted */
    CHECK_EQ(ram32(STATUS_GPA), 0);
    CHECK_EQ(cached(u, 0x40, 0x4000), 1);                  /* the silent device keeps its entries */
    CHECK_EQ(fastinval_device_tlb_complete(u, log.r[0].ticket, FASTINVAL_DEVICE_TLB_OK), -ENOENT); /* too late */
    wr(u, VTD_FSTS, 4, VTD_FSTS_ITE);

    /* A sink that answers from inside its callback: the wait completes within the doorbell write. */
    log.answer_inside = u;
    vtd_devtlb(2, 0x40, 0x4000);
    vtd_wait(3, 0x66);
    wr(u, VTD_IQT, 8, 4 * 16);
    CHECK_EQ(log.inside_rc, 0);
    CHECK_EQ(ram32(STATUS_GPA), 0x66);
    CHECK_EQ(rd(u, VTD_IQH, 8), 4 * 16);
    CHECK_EQ(cached(u, 0x40, 0x4000), 0);
    CHECK_EQ(fastinval_vtd_destroy(u), 0);
}

static void test_options(fastinval_guest_memory_t mem)
{
    struct requests log;
    memset(&log, 0, sizeof log);
    struct fastinval_vtd_options o;
    fastinval_vtd_t u = 0;

    memset(&o, 0, sizeof o);
    o.size = 64; /* the first version of the struct, without device_tlb: still accepted */
    CHECK_EQ(fastinval_vtd_create(mem, &o, 0, &u), 0);
    CHECK_EQ(fastinval_vtd_destroy(u), 0);

    memset(&o, 0, sizeof o);
    o.size = 80;
    CHECK_EQ(fastinval_vtd_create(mem, &o, 0, &u), -EINVAL);

    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.device_tlb.user = &log; /* a user pointer without a callback */
    CHECK_EQ(fastinval_vtd_create(mem, &o, 0, &u), -EINVAL);
    o.device_tlb.user = NULL;
    o.device_tlb.timeout_ns = 1000;
    CHECK_EQ(fastinval_vtd_create(mem, &o, 0, &u), -EINVAL);
    o.device_tlb.timeout_ns = 0;
    o.device_tlb.request = on_request;
    o.device_tlb.max_outstanding = 100; /* not a power of two */
    CHECK_EQ(fastinval_vtd_create(mem, &o, 0, &u), -EINVAL);
    o.device_tlb.max_outstanding = 8;
    CHECK_EQ(fastinval_vtd_create(mem, &o, 0, &u), -EINVAL);
    o.device_tlb.max_outstanding = 16;
    o.device_tlb.reserved = 1;
    CHECK_EQ(fastinval_vtd_create(mem, &o, 0, &u), -EINVAL);
    o.device_tlb.reserved = 0;
    CHECK_EQ(fastinval_vtd_create(mem, &o, 0, &u), 0);
    CHECK_EQ(fastinval_vtd_destroy(u), 0);

    /* A unit without a sink answers nothing through fastinval_device_tlb_complete. */
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    CHECK_EQ(fastinval_vtd_create(mem, &o, 0, &u), 0);
    CHECK_EQ(fastinval_device_tlb_complete(u, 1, FASTINVAL_DEVICE_TLB_OK), -ENOENT);
    CHECK_EQ(fastinval_vtd_destroy(u), 0);
}

static void smmu_put(uint32_t slot, uint64_t lo, uint64_t hi)
{
    memcpy(ram + QUEUE_GPA + slot * 16, &lo, 8);
    memcpy(ram + QUEUE_GPA + slot * 16 + 8, &hi, 8);
}

static void test_smmu_held_sync(fastinval_guest_memory_t mem)
{
    static struct requests log;
    memset(&log, 0, sizeof log);
    struct fastinval_smmu_options o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.device_tlb.request = on_request;
    o.device_tlb.user = &log;
    fastinval_smmu_t u = 0;
    CHECK_EQ(fastinval_smmu_create(mem, &o, 0, &u), 0);
    CHECK_EQ(fastinval_smmu_write(u, SMMU_CMDQ_BASE, 8, QUEUE_GPA | 4), 0); /* 16 entries */
    CHECK_EQ(fastinval_smmu_write(u, SMMU_CR0, 4, (1u << 3) | 1u), 0);      /* CMDQEN, SMMUEN */
    fill(u, 0x50, 0x4000);
    /* CMD_ATC_INV (0x40): StreamID [63:32], Size [69:64] = 0, Address [127:76]; CMD_SYNC (0x46) with CS = SIG_IRQ and an MSI. */
    smmu_put(0, 0x40 | ((uint64_t)0x50 << 32), (uint64_t)(0x4000 >> 12) << 12);
    smmu_put(1, 0x46 | (1u << 12) | ((uint64_t)0xABCD << 32), MSI_GPA);
    memset(ram + MSI_GPA, 0, 4);
    CHECK_EQ(fastinval_smmu_write(u, SMMU_CMDQ_PROD, 4, 2), 0);
    CHECK_EQ(log.count, 1);
    CHECK_EQ(log.r[0].source, FASTINVAL_SOURCE_SMMU_CMDQ);
    CHECK_EQ(log.r[0].descriptor.source_id, 0x50);
    uint64_t cons = 0;
    CHECK_EQ(fastinval_smmu_read(u, SMMU_CMDQ_CONS, 4, &cons), 0);
    CHECK_EQ(cons & 0x1F, 1); /* on the CMD_SYNC */
    CHECK_EQ(ram32(MSI_GPA), 0);
    CHECK_EQ(answer_elsewhere(u, log.r[0].ticket, FASTINVAL_DEVICE_TLB_OK), 0);
    CHECK_EQ(fastinval_smmu_read(u, SMMU_CMDQ_CONS, 4, &cons), 0);
    CHECK_EQ(cons & 0x1F, 2);
    CHECK_EQ(ram32(MSI_GPA), 0xABCD);
    CHECK_EQ(cached(u, 0x50, 0x4000), 0);

    /* A time-out answer: CERROR_ATC_INV_SYNC (3) in CONS.ERR, CONS stays on the sync. */
    smmu_put(2, 0x40 | ((uint64_t)0x50 << 32), 0);
    smmu_put(3, 0x46, 0);
    CHECK_EQ(fastinval_smmu_write(u, SMMU_CMDQ_PROD, 4, 4), 0);
    CHECK_EQ(answer_elsewhere(u, log.r[1].ticket, FASTINVAL_DEVICE_TLB_TIMEOUT), 0);
    CHECK_EQ(fastinval_smmu_read(u, SMMU_CMDQ_CONS, 4, &cons), 0);
    CHECK_EQ((cons >> 24) & 0x7F, 3);
    CHECK_EQ(cons & 0x1F, 3);
    uint64_t gerror = 0;
    CHECK_EQ(fastinval_smmu_read(u, SMMU_GERROR, 4, &gerror), 0);
    CHECK((gerror & 1) != 0); /* CMDQ_ERR */
    CHECK_EQ(fastinval_smmu_destroy(u), 0);
}

int main(void)
{
    int handles_at_start = fastinval_handle_count();
    ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(ram != MAP_FAILED);
    if (ram == MAP_FAILED) return check_report("test_devtlb_sink");
    fastinval_guest_memory_t mem = 0;
    CHECK_EQ(fastinval_guest_memory_create(&mem), 0);
    CHECK_EQ(fastinval_guest_memory_map(mem, 0, ram, RAM_SIZE), 0);
    test_vtd_held_wait(mem);
    test_vtd_timeout_and_inline_answers(mem);
    test_options(mem);
    test_smmu_held_sync(mem);
    CHECK_EQ(fastinval_guest_memory_destroy(mem), 0);
    CHECK_EQ(fastinval_handle_count(), handles_at_start);
    munmap(ram, RAM_SIZE);
    return check_report("test_devtlb_sink");
}
