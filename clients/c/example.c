/* SPDX-License-Identifier: MIT */
/*
 * example.c - drives `fastinval serve` with the C client: an engine unit (fills, lookups, descriptors, a dead device,
 * figures), a VT-d unit over guest RAM shared as a memfd (the guest driver's queue in that memory, the doorbell, the
 * wait's status write, the completion MSI; a bad descriptor's IQE, its fault MSI and the recovery), an SMMUv3 unit's
 * CMD_SYNC round and its GERROR, and typed errors of bad requests. Prints one "ok"/"FAIL" line per check and exits 0
 * only when every check held.
 *
 *   fastinval serve --socket /tmp/fastinval.sock &
 *   clients/c/build.sh && artifacts/clients/c/example --socket /tmp/fastinval.sock
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fastinval_client.h"

static int failures, checks;

static void check(int condition, const char *what)
{
    checks++;
    printf("  %s %s\n", condition ? "ok  " : "FAIL", what);
    if (!condition) failures++;
}

/* ---- events: the handler keeps them for the checks ---- */

static struct fic_event events[64];
static int event_count;

static void on_event(void *user, const struct fic_event *e)
{
    (void)user;
    if (event_count < 64) events[event_count] = *e;
    event_count++;
}

/* ---- guest memory, written as the guest would (little-endian) ---- */

static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24); }

/* VT-d registers and bits (Intel VT-d specification, chapter 11). */
enum { VER = 0x00, GCMD = 0x18, GSTS = 0x1C, FSTS = 0x34, FECTL = 0x38, FEDATA = 0x3C, FEADDR = 0x40, IQH = 0x80, IQT = 0x88,
       IQA = 0x90, ICS = 0x9C, IECTL = 0xA0, IEDATA = 0xA4, IEADDR = 0xA8, IQERCD = 0xB0 };
#define GCMD_QIE (1u << 26)
#define FSTS_IQE (1u << 4)
#define ICS_IWC 1u

/* SMMUv3 registers (page 0) and bits (Arm IHI 0070). */
enum { CR0 = 0x20, CR0ACK = 0x24, IRQ_CTRL = 0x50, GERROR = 0x60, GERRORN = 0x64, CMDQ_BASE = 0x90, CMDQ_PROD = 0x98,
       CMDQ_CONS = 0x9C };
#define CR0_SMMUEN 1u
#define CR0_CMDQEN (1u << 3)
#define IRQ_GERROR_EN 1u
#define GERROR_CMDQ_ERR 1u

#define RAM_BYTES (64u * 1024)
#define GUEST_BASE 0x80000000ull
#define QUEUE_OFFSET 0x1000u  /* the queue's page in guest RAM */
#define STATUS_OFFSET 0x3000u /* where waits / CMD_SYNC MSIs write */

static void vtd_descriptor(uint8_t *ram, uint32_t slot, uint64_t lo, uint64_t hi)
{
    put64(ram + QUEUE_OFFSET + 16 * slot, lo);
    put64(ram + QUEUE_OFFSET + 16 * slot + 8, hi);
}

static uint64_t reg(struct fic_client *c, uint32_t unit, uint32_t offset, uint8_t size)
{
    uint64_t v = 0;
    int rc = fic_reg_read(c, unit, offset, size, &v);
    if (rc < 0) printf("  (REG_READ 0x%x: %s)\n", offset, fic_strerror(rc));
    return v;
}

static int write_reg(struct fic_client *c, uint32_t unit, uint32_t offset, uint8_t size, uint64_t value)
{
    event_count = 0;
    uint32_t sent = 0;
    int rc = fic_reg_write(c, unit, offset, size, value, &sent, NULL);
    if (rc < 0) printf("  (REG_WRITE 0x%x: %s)\n", offset, fic_strerror(rc));
    return rc < 0 ? rc : (int)sent;
}

static void engine_round(struct fic_client *c)
{
    struct fic_capacities caps = {4096, 1024, 256};
    uint32_t unit = 0;
    check(fic_create_engine(c, &caps, &unit) == 0 && unit != 0, "created an engine unit");

    /* A guest maps 16 pages of domain 7 (second stage) and a 2 MiB block; a device 0x0100 caches one ATS translation. */
    struct fastinval_iotlb_entry pages[17];
    memset(pages, 0, sizeof pages);
    for (int i = 0; i < 17; i++) {
        pages[i].input_address = i < 16 ? 0x10000u + 0x1000u * (unsigned)i : 0x40000000u;
        pages[i].output_address = i < 16 ? 0x80000000u + 0x1000u * (unsigned)i : 0xC0000000u;
        pages[i].address_space_id = FASTINVAL_ADDRESS_SPACE_NONE;
        pages[i].domain_id = 7;
        pages[i].rights = FASTINVAL_ACCESS_READ | FASTINVAL_ACCESS_WRITE;
        pages[i].stage = FASTINVAL_STAGE2;
        pages[i].granule = FASTINVAL_GRANULE_4K;
        pages[i].size_log2 = i < 16 ? 12 : 21;
    }
    uint8_t results[17];
    int accepted = fic_fill_iotlb(c, unit, pages, 17, results);
    int all = accepted == 17;
    for (int i = 0; i < 17; i++) all &= results[i] == FASTINVAL_FILL_INSERTED;
    check(all, "17 IOTLB entries inserted");
    struct fastinval_iotlb_entry bad = pages[0];
    bad.input_address = 0x10001; /* not aligned to its span */
    check(fic_fill_iotlb(c, unit, &bad, 1, results) == 0 && results[0] == FASTINVAL_FILL_REJECTED,
          "a misaligned entry is rejected, not an error");
    struct fastinval_devtlb_entry atc = {.input_address = 0x10000, .output_address = 0x80000000, .source_id = 0x0100,
                                         .pasid = FASTINVAL_ADDRESS_SPACE_NONE, .rights = FASTINVAL_ACCESS_READ, .size_log2 = 12};
    check(fic_fill_device_tlb(c, unit, &atc, 1, results) == 1 && results[0] == FASTINVAL_FILL_INSERTED, "device-TLB entry inserted");

    struct fic_iotlb_query q[3] = {{0x10234, FASTINVAL_ADDRESS_SPACE_NONE, 7, FASTINVAL_STAGE2, 0},
                                   {0x40012345, FASTINVAL_ADDRESS_SPACE_NONE, 7, FASTINVAL_STAGE2, 0},
                                   {0x10234, FASTINVAL_ADDRESS_SPACE_NONE, 8, FASTINVAL_STAGE2, 0}};
    struct fic_lookup_result r[16];
    int hits = fic_lookup_iotlb(c, unit, q, 3, r);
    check(hits == 2 && r[0].hit && r[0].output == 0x80000234, "page lookup translates 0x10234 -> 0x80000234");
    check(r[1].hit && r[1].output == 0xC0012345 && r[1].size_log2 == 21, "block lookup translates 0x40012345 -> 0xc0012345");
    check(!r[2].hit, "another domain misses");

    /* The guest unmaps pages 4..7 and invalidates the device's ATC; a malformed descriptor is reported, not applied. */
    struct fastinval_descriptor d[3];
    memset(d, 0, sizeof d);
    d[0] = (struct fastinval_descriptor){.scope = FASTINVAL_SCOPE_IOTLB_RANGE, .flags = FASTINVAL_MATCH_DOMAIN,
                                         .stages = FASTINVAL_STAGES_ALL, .domain_id = 7,
                                         .address_space_id = FASTINVAL_ADDRESS_SPACE_NONE, .first = 0x14000, .last = 0x17FFF};
    d[1] = (struct fastinval_descriptor){.scope = FASTINVAL_SCOPE_DEVICE_TLB, .flags = FASTINVAL_MATCH_SOURCE | FASTINVAL_MATCH_ADDRESS_SPACE,
                                         .address_space_id = FASTINVAL_ADDRESS_SPACE_NONE, .source_id = 0x0100, .last = UINT64_MAX};
    d[2] = (struct fastinval_descriptor){.scope = 99, .address_space_id = FASTINVAL_ADDRESS_SPACE_NONE};
    uint8_t st[3] = {9, 9, 9};
    struct fic_execute_result x;
    int rc = fic_execute(c, unit, d, 3, st, &x);
    check(rc == 0 && x.ok == 2 && x.invalid == 1 && x.first_failure_index == 2 && st[0] == FASTINVAL_STATUS_OK &&
              st[1] == FASTINVAL_STATUS_OK && st[2] == FASTINVAL_STATUS_INVALID,
          "execute: 2 ok, 1 invalid, first failure at 2");
    struct fic_iotlb_query q16[16];
    for (int i = 0; i < 16; i++) q16[i] = (struct fic_iotlb_query){0x10000u + 0x1000u * (unsigned)i, FASTINVAL_ADDRESS_SPACE_NONE, 7, FASTINVAL_STAGE2, 0};
    hits = fic_lookup_iotlb(c, unit, q16, 16, r);
    all = hits == 12;
    for (int i = 0; i < 16; i++) all &= r[i].hit == !(i >= 4 && i <= 7);
    check(all, "pages 4..7 are gone, the other 12 still hit");
    struct fic_devtlb_query dq = {0x10000, 0x0100, FASTINVAL_ADDRESS_SPACE_NONE};
    check(fic_lookup_device_tlb(c, unit, &dq, 1, r) == 0 && !r[0].hit, "the device-TLB entry is gone");

    /* A dead device: its invalidation times out and its entry stays. */
    atc.source_id = 0x0200;
    atc.input_address = 0x20000;
    atc.output_address = 0x90000000;
    fic_fill_device_tlb(c, unit, &atc, 1, NULL);
    static const uint32_t dead[] = {0x0200};
    struct fastinval_fault_plan plan = {.size = sizeof plan, .timeout_source_ids = dead, .timeout_source_id_count = 1};
    check(fic_set_fault_plan(c, unit, &plan) == 0, "fault plan set");
    d[1].source_id = 0x0200;
    rc = fic_execute(c, unit, &d[1], 1, st, &x);
    check(rc == 0 && st[0] == FASTINVAL_STATUS_TIMED_OUT && x.timed_out == 1, "dead device times out");
    dq.source_id = 0x0200;
    dq.address = 0x20000;
    check(fic_lookup_device_tlb(c, unit, &dq, 1, r) == 1, "its entry stays cached");

    struct fic_unit_stats s;
    rc = fic_unit_stats(c, unit, &s);
    char line[160];
    snprintf(line, sizeof line, "stats: %u IOTLB entries, %llu descriptors executed", s.iotlb_count, (unsigned long long)s.descriptors);
    check(rc == 0 && s.iotlb_count == 13 && s.descriptors == 4 && s.iotlb_capacity == 4096, line);

    rc = fic_execute(c, unit + 1000, NULL, 0, NULL, NULL);
    check(rc == FIC_E_UNKNOWN_UNIT, "a unit that is not ours is refused with UNKNOWN_UNIT");
    check(fic_destroy(c, unit) == 0, "destroyed the engine unit");
    check(fic_unit_stats(c, unit, &s) == FIC_E_UNKNOWN_UNIT, "a destroyed unit is gone (UNKNOWN_UNIT)");
}

static void vtd_round(struct fic_client *c, uint8_t *ram, int fd)
{
    struct fic_region region = {GUEST_BASE, RAM_BYTES, 0, fd};
    uint32_t unit = 0;
    int rc = fic_create_vtd(c, NULL, NULL, &region, 1, &unit);
    check(rc == 0 && unit != 0 && fic_unit_kind(c, unit) == FIC_KIND_VTD, "created a VT-d unit over a memfd of guest RAM");
    if (rc < 0) return;
    check(reg(c, unit, VER, 4) == 0x60, "VER reads 0x60 (VT-d 6.0)");

    /* The guest driver brings up queued invalidation: event MSIs, the queue base (one page of 128-bit descriptors), QIE. */
    write_reg(c, unit, IEDATA, 4, 0x55);
    write_reg(c, unit, IEADDR, 4, 0xFEE00000u);
    write_reg(c, unit, IECTL, 4, 0); /* unmask the completion event */
    write_reg(c, unit, FEDATA, 4, 0x77);
    write_reg(c, unit, FEADDR, 4, 0xFEE01000u);
    write_reg(c, unit, FECTL, 4, 0); /* unmask the fault event */
    write_reg(c, unit, IQA, 8, GUEST_BASE + QUEUE_OFFSET);
    check(write_reg(c, unit, GCMD, 4, GCMD_QIE) == 0 && (reg(c, unit, GSTS, 4) & GCMD_QIE) != 0, "GCMD.QIE: queued invalidation on");

    /* The host cached a translation of domain 1; the guest invalidates the domain and waits (status write + interrupt). */
    struct fastinval_iotlb_entry e = {.input_address = 0x4000, .output_address = 0x9000, .address_space_id = FASTINVAL_ADDRESS_SPACE_NONE,
                                      .domain_id = 1, .rights = FASTINVAL_ACCESS_READ, .stage = FASTINVAL_STAGE2,
                                      .granule = FASTINVAL_GRANULE_4K, .size_log2 = 12};
    check(fic_fill_iotlb(c, unit, &e, 1, NULL) == 1, "filled an IOTLB entry of domain 1");
    vtd_descriptor(ram, 0, 0x2 | (2u << 4) | (1ull << 16), 0);                                   /* IOTLB, domain-selective, DID 1 */
    vtd_descriptor(ram, 1, 0x5 | (1u << 4) | (1u << 5) | (0xC0FFEEull << 32), GUEST_BASE + STATUS_OFFSET); /* wait: IF, SW */
    int sent = write_reg(c, unit, IQT, 8, 0x20); /* the doorbell: two descriptors */
    check(get32(ram + STATUS_OFFSET) == 0xC0FFEE, "the wait's status 0xc0ffee landed in the memfd");
    check(sent == 1 && event_count == 1 && events[0].type == FIC_EVENT_VTD_COMPLETION && events[0].unit == unit &&
              events[0].address == 0xFEE00000u && events[0].data == 0x55 && events[0].delivery == FIC_DELIVERY_MSI &&
              (events[0].a & ICS_IWC) != 0,
          "one completion MSI event (0xfee00000, 0x55, ICS.IWC set)");
    check(reg(c, unit, IQH, 8) == 0x20, "IQH caught up with IQT");
    struct fic_iotlb_query q = {0x4000, FASTINVAL_ADDRESS_SPACE_NONE, 1, FASTINVAL_STAGE2, 0};
    struct fic_lookup_result r;
    check(fic_lookup_iotlb(c, unit, &q, 1, &r) == 0 && !r.hit, "the descriptor in guest memory removed the entry");

    /* An undefined descriptor type: IQE, IQERCD.IQEI = 3 (invalid type), the fault MSI; the queue stops at it. */
    vtd_descriptor(ram, 2, 0xF, 0);
    sent = write_reg(c, unit, IQT, 8, 0x30);
    uint32_t fsts = (uint32_t)reg(c, unit, FSTS, 4);
    check((fsts & FSTS_IQE) != 0, "a bad descriptor sets FSTS.IQE");
    check((reg(c, unit, IQERCD, 8) & 0xF) == 3, "IQERCD.IQEI = 3 (invalid descriptor type)");
    check(sent == 1 && event_count == 1 && events[0].type == FIC_EVENT_VTD_FAULT && events[0].address == 0xFEE01000u &&
              events[0].data == 0x77 && (events[0].a & FSTS_IQE) != 0,
          "one fault MSI event (0xfee01000, 0x77, FSTS.IQE set)");
    check(reg(c, unit, IQH, 8) == 0x20, "IQH stays at the bad descriptor");
    /* Recovery: the driver replaces it with a wait and clears IQE (RW1C); the queue resumes at IQH. */
    vtd_descriptor(ram, 2, 0x5 | (1u << 5) | (2ull << 32), GUEST_BASE + STATUS_OFFSET);
    write_reg(c, unit, FSTS, 4, FSTS_IQE);
    check(get32(ram + STATUS_OFFSET) == 2 && (reg(c, unit, FSTS, 4) & FSTS_IQE) == 0 && reg(c, unit, IQH, 8) == 0x30,
          "after clearing IQE the queue resumes: status 2 written, IQH = IQT");

    /* Bad requests get typed errors, and the connection goes on. */
    uint64_t v;
    rc = fic_reg_read(c, unit, FSTS, 2, &v);
    struct fic_error err;
    fic_last_error(c, &err);
    check(rc == FIC_E_INVALID_ARGUMENT && err.detail == 4 && err.request_type == FIC_REG_READ,
          "REG_READ of size 2: INVALID_ARGUMENT, detail 4 (the size field)");
    rc = fic_reg_write(c, unit, IQT, 4, 1ull << 32, NULL, NULL);
    fic_last_error(c, &err);
    check(rc == FIC_E_INVALID_ARGUMENT && err.detail == 12, "a 4-byte write of a 33-bit value: INVALID_ARGUMENT, detail 12");
    int32_t result;
    uint8_t arg[12] = {12};
    rc = fic_iommufd_ioctl(c, unit, 0x3B81, arg, sizeof arg, &result);
    fic_last_error(c, &err);
    check(rc == FIC_E_WRONG_KIND && err.detail == FIC_KIND_VTD, "an iommufd ioctl on a VT-d unit: WRONG_KIND, detail 3");
    rc = fic_request(c, 0x0077, 0, NULL, 0, NULL, 0, NULL, 0, NULL);
    fic_last_error(c, &err);
    check(rc == FIC_E_UNKNOWN_TYPE && err.detail == 0x77, "request type 0x77: UNKNOWN_TYPE, detail 0x77");
    struct fic_region overlapping[2] = {{GUEST_BASE, 0x8000, 0, fd}, {GUEST_BASE + 0x7000, 0x8000, 0x8000, fd}};
    uint32_t other = 0;
    rc = fic_create_vtd(c, NULL, NULL, overlapping, 2, &other);
    fic_last_error(c, &err);
    check(rc == FIC_E_OVERLAP && err.detail == 1, "overlapping regions: OVERLAP, detail 1");
    struct fic_region too_long = {GUEST_BASE, RAM_BYTES, 0x1000, fd};
    rc = fic_create_vtd(c, NULL, NULL, &too_long, 1, &other);
    check(rc == FIC_E_SHORT_FILE, "a region past the file's end: SHORT_FILE");
    check(!fic_is_broken(c) && reg(c, unit, VER, 4) == 0x60, "the connection still serves after the errors");
    check(fic_destroy(c, unit) == 0, "destroyed the VT-d unit");
}

static void smmu_round(struct fic_client *c, uint8_t *ram, int fd)
{
    memset(ram, 0, RAM_BYTES);
    struct fic_region region = {GUEST_BASE, RAM_BYTES, 0, fd};
    uint32_t unit = 0;
    int rc = fic_create_smmu(c, NULL, NULL, &region, 1, &unit);
    check(rc == 0 && unit != 0 && fic_unit_kind(c, unit) == FIC_KIND_SMMUV3, "created an SMMUv3 unit over a memfd of guest RAM");
    if (rc < 0) return;
    write_reg(c, unit, CMDQ_BASE, 8, (GUEST_BASE + QUEUE_OFFSET) | 8); /* 2^8 commands */
    write_reg(c, unit, IRQ_CTRL, 4, IRQ_GERROR_EN);
    write_reg(c, unit, CR0, 4, CR0_CMDQEN | CR0_SMMUEN);
    check(reg(c, unit, CR0ACK, 4) == (CR0_CMDQEN | CR0_SMMUEN), "CR0ACK: command queue and SMMU enabled");

    /* Stage-1 entries of VMID 3 are cached; the guest posts CMD_TLBI_NH_ALL(3) and CMD_SYNC with an MSI to its memory. */
    struct fastinval_iotlb_entry e = {.input_address = 0x4000, .output_address = 0x9000, .address_space_id = 5, .domain_id = 3,
                                      .rights = FASTINVAL_ACCESS_READ, .stage = FASTINVAL_STAGE1, .granule = FASTINVAL_GRANULE_4K,
                                      .size_log2 = 12};
    check(fic_fill_iotlb(c, unit, &e, 1, NULL) == 1, "filled a stage-1 entry of VMID 3, ASID 5");
    put64(ram + QUEUE_OFFSET, 0x10 | (3ull << 32)); /* CMD_TLBI_NH_ALL, VMID 3 */
    put64(ram + QUEUE_OFFSET + 8, 0);
    put64(ram + QUEUE_OFFSET + 16, 0x46 | (1u << 12) | (3u << 22) | (0xFu << 24) | (0xABCDull << 32)); /* CMD_SYNC, CS=SIG_IRQ */
    put64(ram + QUEUE_OFFSET + 24, GUEST_BASE + STATUS_OFFSET);
    int sent = write_reg(c, unit, CMDQ_PROD, 4, 2);
    check(get32(ram + STATUS_OFFSET) == 0xABCD, "CMD_SYNC's MSI wrote 0xabcd into the memfd");
    check(sent == 1 && event_count == 1 && events[0].type == FIC_EVENT_SMMU_CMD_SYNC && events[0].delivery == FIC_DELIVERY_MSI &&
              events[0].address == GUEST_BASE + STATUS_OFFSET && events[0].data == 0xABCD && (events[0].a & 0xFFFFF) == 2,
          "one CMD_SYNC MSI event, CMDQ_CONS = 2");
    check((reg(c, unit, CMDQ_CONS, 4) & 0xFF) == 2, "CMDQ_CONS consumed both commands");
    struct fic_iotlb_query q = {0x4000, 5, 3, FASTINVAL_STAGE1, 0};
    struct fic_lookup_result r;
    check(fic_lookup_iotlb(c, unit, &q, 1, &r) == 0 && !r.hit, "CMD_TLBI_NH_ALL removed the entry");

    /* An illegal command: CMDQ_ERR with CERROR_ILL, the wired GERROR interrupt (no GERROR MSI configured). */
    put64(ram + QUEUE_OFFSET + 32, 0xFF);
    put64(ram + QUEUE_OFFSET + 40, 0);
    sent = write_reg(c, unit, CMDQ_PROD, 4, 3);
    uint32_t active = (uint32_t)(reg(c, unit, GERROR, 4) ^ reg(c, unit, GERRORN, 4));
    check((active & GERROR_CMDQ_ERR) != 0 && ((reg(c, unit, CMDQ_CONS, 4) >> 24) & 0x7F) == 1,
          "an illegal command: GERROR.CMDQ_ERR active, CMDQ_CONS.ERR = CERROR_ILL");
    check(sent == 1 && event_count == 1 && events[0].type == FIC_EVENT_SMMU_GERROR && events[0].delivery == FIC_DELIVERY_WIRED &&
              ((events[0].a ^ events[0].b) & GERROR_CMDQ_ERR) != 0,
          "one wired GERROR event");
    uint32_t engine = 0;
    fic_create_engine(c, NULL, &engine);
    uint64_t v;
    rc = fic_reg_read(c, engine, 0, 4, &v);
    check(rc == FIC_E_WRONG_KIND, "a register read of an engine unit: WRONG_KIND");
    check(fic_destroy(c, unit) == 0 && fic_destroy(c, engine) == 0, "destroyed the SMMUv3 and engine units");
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) path = argv[++i];
        else if (strncmp(argv[i], "--socket=", 9) == 0) path = argv[i] + 9;
    }
    if (!path) {
        fprintf(stderr, "usage: %s --socket PATH\n", argv[0]);
        return 2;
    }
    struct fic_client *c;
    int rc = fic_connect(path, NULL, &c);
    if (rc < 0) {
        fprintf(stderr, "connect %s: %s (%d)\n", path, fic_strerror(rc), rc);
        printf("  FAIL connect to the server\n");
        return 1;
    }
    const struct fic_limits *l = fic_limits(c);
    printf("connected: protocol %u.%u, frames up to %u bytes, %u units per connection\n", l->major, l->minor, l->max_frame_bytes,
           l->max_units_per_connection);
    check(l->major == 1 && l->minor == 1 && (l->server_flags & FIC_SERVER_SHARED_MEMORY_UNITS), "HELLO agreed on 1.1 with shared-memory units");
    fic_set_event_handler(c, on_event, NULL);

    engine_round(c);
    int fd;
    void *memory;
    rc = fic_guest_ram_create("fastinval-example-ram", RAM_BYTES, &fd, &memory);
    check(rc == 0, "64 KiB of guest RAM in a memfd");
    if (rc == 0) {
        vtd_round(c, memory, fd);
        smmu_round(c, memory, fd);
        munmap(memory, RAM_BYTES);
        close(fd);
    }
    struct fic_server_stats s;
    check(fic_server_stats(c, &s) == 0 && s.units == 0, "server stats: no unit of ours left");
    fic_close(c);

    if (failures == 0) printf("c example: all %d checks held\n", checks);
    else printf("c example: %d of %d check(s) FAILED\n", failures, checks);
    return failures == 0 ? 0 : 1;
}
