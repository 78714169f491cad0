/*
 * abi_bench.c - time of calls into libfastinval.so from C (clock_gettime, CLOCK_MONOTONIC), best of 7 runs each:
 *   empty     fastinval_abi_version: the C -> NativeAOT transition alone
 *   counts    fastinval_engine_counts: transition + handle-table enter/leave + a few loads
 *   lookup    fastinval_iotlb_lookup of a cached page (hit) in a 65,536-entry IOTLB holding 4,096 entries
 *   exec64    fastinval_execute of 64 page-selective IOTLB_RANGE descriptors against that IOTLB
 * Prints one "name ns/op" line each. Run by native/bench.sh.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fastinval.h"

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static volatile uint64_t sink;

#define BEST_OF(name, iters, body)                                                   \
    do {                                                                             \
        double best = 1e300;                                                         \
        for (int run = 0; run < 7; run++) {                                          \
            double t0 = now_ns();                                                    \
            for (long i = 0; i < (iters); i++) { body; }                             \
            double per = (now_ns() - t0) / (double)(iters);                          \
            if (per < best) best = per;                                              \
        }                                                                            \
        printf("%-7s %8.1f ns/op\n", name, best);                                    \
    } while (0)

int main(void)
{
    fastinval_engine_t e = 0;
    if (fastinval_engine_create(NULL, &e) != 0) return 1;
    for (uint64_t p = 0; p < 4096; p++) {
        struct fastinval_iotlb_entry x;
        memset(&x, 0, sizeof x);
        x.input_address = p << 12;
        x.output_address = 0x100000000ull + (p << 12);
        x.address_space_id = 1;
        x.domain_id = 1;
        x.rights = 3;
        x.stage = FASTINVAL_STAGE1;
        x.granule = FASTINVAL_GRANULE_4K;
        x.size_log2 = 12;
        if (fastinval_iotlb_fill(e, &x) < 0) return 1;
    }
    struct fastinval_descriptor d[64];
    uint8_t st[64];
    memset(d, 0, sizeof d);
    for (int i = 0; i < 64; i++) { /* pages nobody caches: the batch's cost without refills */
        d[i].scope = FASTINVAL_SCOPE_IOTLB_RANGE;
        d[i].flags = FASTINVAL_MATCH_DOMAIN | FASTINVAL_MATCH_ADDRESS_SPACE | FASTINVAL_INCLUDE_GLOBAL;
        d[i].stages = FASTINVAL_STAGES_FIRST;
        d[i].domain_id = 1;
        d[i].address_space_id = 1;
        d[i].first = (uint64_t)(8192 + i) << 12;
        d[i].last = d[i].first + 0xFFF;
    }
    struct fastinval_translation t;
    struct fastinval_engine_counts c;
    BEST_OF("empty", 20000000L, sink += fastinval_abi_version());
    BEST_OF("counts", 10000000L, sink += (uint64_t)fastinval_engine_counts(e, &c));
    BEST_OF("lookup", 10000000L, sink += (uint64_t)fastinval_iotlb_lookup(e, FASTINVAL_STAGE1, 1, 1, (uint64_t)(i & 4095) << 12, &t));
    BEST_OF("exec64", 100000L, sink += (uint64_t)fastinval_execute(e, d, 64, st, NULL));
    fastinval_engine_destroy(e);
    return 0;
}
