/* Minimal assertion helpers shared by the C tests: every CHECK counts, a failure prints and the program exits non-zero. */
#ifndef FASTINVAL_TEST_CHECK_H
#define FASTINVAL_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>

static int check_failures;
static int check_count;

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        check_count++;                                                                       \
        if (!(cond)) {                                                                       \
            check_failures++;                                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);         \
        }                                                                                    \
    } while (0)

#define CHECK_EQ(actual, expected)                                                           \
    do {                                                                                     \
        long long check_a_ = (long long)(actual), check_e_ = (long long)(expected);          \
        check_count++;                                                                       \
        if (check_a_ != check_e_) {                                                          \
            check_failures++;                                                                \
            fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__,  \
                    #actual, check_a_, #expected, check_e_);                                 \
        }                                                                                    \
    } while (0)

static int check_report(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, check_count, check_failures);
    return check_failures == 0 && check_count > 0 ? 0 : 1;
}

#endif
