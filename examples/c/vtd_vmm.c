/* SPDX-License-Identifier: MIT */
/*
 * vtd_vmm.c - what a VMM written in C does with an emulated VT-d unit from libfastinval.so.
 *
 * The VMM owns guest RAM (here one anonymous mmap), hands it to FastInval as a guest-memory handle, and creates a VT-d
 * unit over it. It caches translations after its own page walks (fills through the unit's handle) and looks them up on
 * DMA. The guest driver's MMIO accesses go to fastinval_vtd_read/write; the guest posts descriptors to its invalidation
 * queue in RAM and rings the doorbell (IQT); the unit executes them, writes the wait status into guest RAM and raises the
 * completion interrupt through the VMM's callback. A device that does not answer its device-TLB invalidation (the fault
 * plan's time-out) shows up as ITE in FSTS, and the guest recovers by clearing it.
 *
 * Build: native/build.sh (artifacts/native/examples/vtd_vmm). Exits 0 when every check holds.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "fastinval.h"

/* VT-d register offsets and bits (Intel VT-d specification, chapter 11). */
enum {
    GCMD = 0x18, GSTS = 0x1C, FSTS = 0x34, FECTL = 0x38, FEDATA = 0x3C, FEADDR = 0x40,
    IQH = 0x80, IQT = 0x88, IQA = 0x90, ICS = 0x9C, IECTL = 0xA0, IEDATA = 0xA4, IEADDR = 0xA8, IQERCD = 0xB0
};
#define GCMD_QIE (1u << 26)
#define FSTS_ITE (1u << 6)

#define GUEST_RAM (64u << 20)   /* 64 MiB of guest RAM at guest-physical 0 */
#define QUEUE_GPA 0x100000u     /* the guest's invalidation queue: one 4 KiB page, 256 descriptors of 128 bits */
#define STATUS_GPA 0x200000u    /* where its wait descriptors write their status */
#define NIC_SID 0x0300u         /* a PCI device 03:00.0 with ATS (a device TLB) */
#define DOMAIN 7

static int failures;
#define EXPECT(cond)                                                                   \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "vtd_vmm.c:%d: expected %s\n", __LINE__, #cond);           \
            failures++;                                                                \
        }                                                                              \
    } while (0)

static uint8_t *ram;
static uint32_t tail; /* the guest driver's copy of IQT, in descriptors */

/* ---- the VMM side ---- */

struct vmm {
    fastinval_vtd_t iommu;
    int completion_irqs, fault_irqs;
};

static void deliver_msi(void *user, uint32_t kind, uint64_t address, uint32_t data)
{
    struct vmm *vmm = user;
    (void)kind;
    /* A real VMM injects the MSI into the guest's interrupt controller here. */
    if (address == 0xFEE00000u && data == 0x40) vmm->completion_irqs++;
    if (address == 0xFEE00000u && data == 0x41) vmm->fault_irqs++;
}

static uint64_t mmio_read(struct vmm *vmm, uint32_t offset, uint32_t size)
{
    uint64_t value = 0;
    int rc = fastinval_vtd_read(vmm->iommu, offset, size, &value);
    EXPECT(rc == 0);
    return value;
}

static void mmio_write(struct vmm *vmm, uint32_t offset, uint32_t size, uint64_t value)
{
    int rc = fastinval_vtd_write(vmm->iommu, offset, size, value);
    EXPECT(rc == 0);
}

/* ---- the guest driver side: descriptors in RAM, the doorbell through MMIO ---- */

static void post(uint64_t lo, uint64_t hi)
{
    uint8_t *slot = ram + QUEUE_GPA + (tail % 256) * 16;
    memcpy(slot, &lo, 8);
    memcpy(slot + 8, &hi, 8);
    tail++;
}

static void post_iotlb_page(uint16_t did, uint64_t address) { post(0x2 | (3u << 4) | ((uint64_t)did << 16), address & ~0xFFFull); }
static void post_devtlb(uint16_t sid, uint64_t address) { post(0x3 | ((uint64_t)sid << 32), address & ~0xFFFull); }
static void post_wait(uint32_t data) { post(0x5 | (1u << 4) | (1u << 5) | ((uint64_t)data << 32), STATUS_GPA); }
static void doorbell(struct vmm *vmm) { mmio_write(vmm, IQT, 8, (uint64_t)(tail % 256) * 16); }

static uint32_t wait_status(void)
{
    uint32_t v;
    memcpy(&v, ram + STATUS_GPA, 4);
    return v;
}

int main(void)
{
    ram = mmap(NULL, GUEST_RAM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ram == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    if ((fastinval_abi_version() >> 16) != FASTINVAL_ABI_VERSION_MAJOR) {
        fprintf(stderr, "libfastinval.so has another ABI major version\n");
        return 1;
    }

    /* Guest RAM as FastInval sees it: the VMM's own mapping, no copy. */
    fastinval_guest_memory_t mem;
    EXPECT(fastinval_guest_memory_create(&mem) == 0);
    EXPECT(fastinval_guest_memory_map(mem, 0, ram, GUEST_RAM) == 0);

    /* The VT-d unit (the default part: scalable mode, PASID, device TLBs...). The fault plan stands for a device that
     * never answers its device-TLB invalidations. */
    static const uint32_t silent_devices[] = {NIC_SID};
    struct fastinval_fault_plan plan = {.size = sizeof plan, .timeout_source_ids = silent_devices, .timeout_source_id_count = 1};
    struct vmm vmm = {0};
    struct fastinval_vtd_options options = {.size = sizeof options, .fault_plan = &plan, .interrupt = deliver_msi, .interrupt_user = &vmm};
    EXPECT(fastinval_vtd_create(mem, &options, 0, &vmm.iommu) == 0);
    EXPECT(fastinval_guest_memory_destroy(mem) == 0); /* the unit keeps the address space */

    /* The VMM caches what its page walks found: an IOTLB entry of domain 7 and the NIC's ATC entry. */
    struct fastinval_iotlb_entry iotlb = {.input_address = 0x4000000, .output_address = 0x1234000, .address_space_id = FASTINVAL_ADDRESS_SPACE_NONE,
                                          .domain_id = DOMAIN, .rights = FASTINVAL_ACCESS_READ | FASTINVAL_ACCESS_WRITE,
                                          .stage = FASTINVAL_STAGE2, .granule = FASTINVAL_GRANULE_4K, .size_log2 = 12};
    struct fastinval_devtlb_entry atc = {.input_address = 0x4000000, .output_address = 0x1234000, .source_id = NIC_SID,
                                         .pasid = FASTINVAL_ADDRESS_SPACE_NONE, .rights = FASTINVAL_ACCESS_READ, .size_log2 = 12};
    EXPECT(fastinval_iotlb_fill(vmm.iommu, &iotlb) == FASTINVAL_FILL_INSERTED);
    EXPECT(fastinval_devtlb_fill(vmm.iommu, &atc) == FASTINVAL_FILL_INSERTED);
    struct fastinval_translation t;
    EXPECT(fastinval_iotlb_lookup(vmm.iommu, FASTINVAL_STAGE2, DOMAIN, FASTINVAL_ADDRESS_SPACE_NONE, 0x4000123, &t) == 1);
    EXPECT(t.output_address == 0x1234123);

    /* The guest driver brings up queued invalidation: event MSIs, the queue base, QIE. */
    mmio_write(&vmm, IEDATA, 4, 0x40);
    mmio_write(&vmm, IEADDR, 4, 0xFEE00000u);
    mmio_write(&vmm, IECTL, 4, 0); /* unmask */
    mmio_write(&vmm, FEDATA, 4, 0x41);
    mmio_write(&vmm, FEADDR, 4, 0xFEE00000u);
    mmio_write(&vmm, FECTL, 4, 0);
    mmio_write(&vmm, IQA, 8, QUEUE_GPA); /* 128-bit descriptors, 2^0 pages */
    mmio_write(&vmm, GCMD, 4, GCMD_QIE);
    EXPECT((mmio_read(&vmm, GSTS, 4) & GCMD_QIE) != 0);

    /* 1. Unmap one page: page-selective IOTLB invalidation, then a wait with status write and interrupt. */
    post_iotlb_page(DOMAIN, 0x4000000);
    post_wait(1);
    doorbell(&vmm);
    EXPECT(wait_status() == 1);
    EXPECT(mmio_read(&vmm, IQH, 8) == mmio_read(&vmm, IQT, 8));
    EXPECT((mmio_read(&vmm, ICS, 4) & 1) == 1); /* IWC */
    EXPECT(vmm.completion_irqs == 1);
    EXPECT(fastinval_iotlb_lookup(vmm.iommu, FASTINVAL_STAGE2, DOMAIN, FASTINVAL_ADDRESS_SPACE_NONE, 0x4000123, &t) == 0);
    mmio_write(&vmm, ICS, 4, 1); /* the driver acknowledges IWC */

    /* 2. The NIC's device TLB: the device does not answer. The wait after it is aborted and ITE is reported. */
    post_devtlb(NIC_SID, 0x4000000);
    post_wait(2);
    doorbell(&vmm);
    uint64_t fsts = mmio_read(&vmm, FSTS, 4);
    EXPECT((fsts & FSTS_ITE) != 0);
    EXPECT(((mmio_read(&vmm, IQERCD, 8) >> 32) & 0xFFFF) == NIC_SID); /* ITESID */
    EXPECT(wait_status() == 1);                                       /* the wait did not complete */
    EXPECT(vmm.fault_irqs == 1);
    EXPECT(vmm.completion_irqs == 1);
    EXPECT(fastinval_devtlb_lookup(vmm.iommu, NIC_SID, FASTINVAL_ADDRESS_SPACE_NONE, 0x4000000, &t) == 1); /* still cached */

    /* 3. Recovery, as a driver does: clear ITE (the queue resumes at IQH) and wait again. */
    mmio_write(&vmm, FSTS, 4, FSTS_ITE);
    EXPECT((mmio_read(&vmm, FSTS, 4) & FSTS_ITE) == 0);
    post_wait(3);
    doorbell(&vmm);
    EXPECT(wait_status() == 3);
    EXPECT(vmm.completion_irqs == 2);

    /* Bad calls are codes, never crashes. */
    uint64_t v;
    EXPECT(fastinval_vtd_read(vmm.iommu, IQH, 2, &v) == -EINVAL);
    EXPECT(fastinval_vtd_read(vmm.iommu, IQH, 8, NULL) == -EFAULT);

    /* Migration: the state image, then a destination unit that resumes it. */
    uint8_t image[FASTINVAL_VTD_STATE_SIZE];
    EXPECT(fastinval_vtd_save_state(vmm.iommu, NULL, 0) == (int)sizeof image);
    EXPECT(fastinval_vtd_save_state(vmm.iommu, image, sizeof image) == (int)sizeof image);
    EXPECT(fastinval_vtd_destroy(vmm.iommu) == 0);
    EXPECT(fastinval_vtd_read(vmm.iommu, IQH, 8, &v) == -EBADF);

    fastinval_guest_memory_t mem2;
    EXPECT(fastinval_guest_memory_create(&mem2) == 0);
    EXPECT(fastinval_guest_memory_map(mem2, 0, ram, GUEST_RAM) == 0);
    EXPECT(fastinval_vtd_create(mem2, &options, 0, &vmm.iommu) == 0);
    EXPECT(fastinval_vtd_restore_state(vmm.iommu, image, sizeof image) == 0);
    post_wait(4);
    doorbell(&vmm);
    EXPECT(wait_status() == 4);
    EXPECT(fastinval_vtd_destroy(vmm.iommu) == 0);
    EXPECT(fastinval_guest_memory_destroy(mem2) == 0);
    EXPECT(fastinval_handle_count() == 0);

    munmap(ram, GUEST_RAM);
    if (failures != 0) {
        fprintf(stderr, "vtd_vmm: %d checks failed\n", failures);
        return 1;
    }
    printf("vtd_vmm: ok (unmap invalidated, ITE reported for device %04x and recovered, state migrated)\n", NIC_SID);
    return 0;
}
