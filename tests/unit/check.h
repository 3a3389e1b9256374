/* check.h — the unit tests' one assertion: report the place and the values,
 * count the failure, and keep going, so one run shows every broken case. */
#ifndef GALVC_CHECK_H
#define GALVC_CHECK_H

#include <stdio.h>

static int check_failures, check_count;

#define CHECK(cond)                                                            \
    do {                                                                       \
        check_count++;                                                         \
        if (!(cond)) {                                                         \
            check_failures++;                                                  \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                      \
    } while (0)

#define CHECK_EQ(a, b)                                                         \
    do {                                                                       \
        long long a_ = (long long)(a), b_ = (long long)(b);                    \
        check_count++;                                                         \
        if (a_ != b_) {                                                        \
            check_failures++;                                                  \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b, a_, b_); \
        }                                                                      \
    } while (0)

/* The closing line ctest and CI read: "N passed, N failed". */
static int check_report(void) {
    printf("%d passed, %d failed\n", check_count - check_failures, check_failures);
    return check_failures ? 1 : 0;
}

#endif
