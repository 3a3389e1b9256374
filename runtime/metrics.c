/* metrics.c — what the generated program measures about itself, and the
 * machine settings it needs: wall-clock time, a tracked allocator (so the
 * memory the plan predicted can be compared with the bytes actually taken),
 * and the number of threads a rank runs (BLAS and the kernels' pool). The allocator counts the bytes asked for,
 * not the allocator's rounding, because that is what the plan predicts. */
#include "galvrt.h"

#include <cblas.h>
#include <sched.h>
#include <sys/mman.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ALIGNMENT 64 /* a cache line, and enough for any vector load */
#define HUGE_PAGE ((size_t)2 << 20)

static _Atomic int64_t current_bytes, peak_bytes;

/* Wall-clock milliseconds on the monotonic clock (immune to clock changes). */
double grt_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* `bytes` zeroed bytes, 64-byte aligned, counted; aborts every rank when memory runs out. */
void *grt_alloc(size_t bytes) {
    size_t align = bytes >= 2 * HUGE_PAGE ? HUGE_PAGE : ALIGNMENT;
    size_t rounded = (bytes + align - 1) / align * align;
    void *p = NULL;
    if (bytes > INT64_MAX - HUGE_PAGE || posix_memalign(&p, align, rounded ? rounded : ALIGNMENT) != 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "out of memory allocating %zu bytes (%lld bytes already allocated)", bytes,
                 (long long)atomic_load(&current_bytes));
        grt_abort(msg, 1);
        return NULL; /* not reached */
    }
    if (align == HUGE_PAGE) madvise(p, rounded, MADV_HUGEPAGE);
    memset(p, 0, rounded);
    int64_t now = atomic_fetch_add(&current_bytes, (int64_t)bytes) + (int64_t)bytes;
    int64_t peak = atomic_load(&peak_bytes);
    while (now > peak && !atomic_compare_exchange_weak(&peak_bytes, &peak, now)) {
    }
    return p;
}

/* Frees p, which grt_alloc returned for `bytes` bytes (NULL is fine). */
void grt_free(void *p, size_t bytes) {
    if (!p) return;
    atomic_fetch_sub(&current_bytes, (int64_t)bytes);
    free(p);
}

/* The most bytes allocated through grt_alloc at any one time. */
int64_t grt_peak_bytes(void) { return atomic_load(&peak_bytes); }

/* Ranks on this node, as the launcher says (Open MPI, then MPICH's Hydra), else all of them. */
int grt_local_ranks(int ranks) {
    static const char *const names[] = {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *s = getenv(names[i]);
        char *end;
        long n = s && *s ? strtol(s, &end, 10) : 0;
        if (n > 0 && *end == '\0') return (int)n;
    }
    return ranks > 0 ? ranks : 1;
}

/* The affinity mask's cores when it is narrower than the online cores (mpirun
 * bound the rank, or taskset, or a cgroup cpuset): they are this rank's own;
 * else the online cores shared by local_ranks. */
int grt_rank_cores(int local_ranks) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int n = online > 0 ? (int)online : 1;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0 && CPU_COUNT(&set) < n)
        return CPU_COUNT(&set);
    n /= local_ranks > 1 ? local_ranks : 1;
    return n < 1 ? 1 : n;
}

/* OpenBLAS threads: OPENBLAS_NUM_THREADS when set, else this rank's cores. */
void grt_set_threads(int local_ranks) {
    const char *env = getenv("OPENBLAS_NUM_THREADS");
    if (env && *env) {
        char *end;
        long n = strtol(env, &end, 10);
        if (*end == '\0' && n > 0 && n <= 1 << 16) openblas_set_num_threads((int)n);
        return; /* set but unusable: leave OpenBLAS's own reading of it alone */
    }
    openblas_set_num_threads(grt_rank_cores(local_ranks));
}
