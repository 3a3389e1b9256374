/* pool.c — the threads the row-parallel kernels run on. The GEMMs have
 * OpenBLAS's threads; every other kernel (norms, activations, residuals,
 * softmaxes, the loss, the optimizer) is one pass over rows that do not
 * depend on each other, so a rank with several cores splits those rows
 * into contiguous parts, a few per thread, which the calling thread and the
 * workers claim in turn until none is left: a worker the system runs late
 * (another process on its core, OpenBLAS's threads spinning after a GEMM)
 * leaves its share to the others instead of holding the job up.
 *
 * The workers are made once (grt_pool_start) and sleep on a condition
 * variable between jobs: nothing spins, so the cores are OpenBLAS's while a
 * GEMM runs (the two never run at once: a job and a GEMM are both called
 * from the main thread, one after the other). A part's bounds depend only
 * on the row count and the thread count, never on which thread ran it, and
 * a kernel that sums over rows into one vector (a norm's weight gradient)
 * gives each part its own zeroed copy, added into the vector part by part
 * in order: the same thread count gives the same bits on every run. */
#include "galvrt.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS 64
#define MIN_PART 16384     /* elements of work a part must have to be worth a thread's wake-up */
#define PARTS_PER_THREAD 4 /* parts are claimed as threads come: a late one leaves its share to the others */

typedef struct Pool {
    int threads; /* 1: no workers, every job runs on the caller */
    pthread_t worker[MAX_THREADS];
    pthread_mutex_t lock;
    pthread_cond_t wake, done;
    const GrtRows *job;     /* the job in flight */
    int parts;              /* its parts */
    long generation;        /* counts jobs, so a worker looks at each once */
    _Atomic uint64_t claim; /* the job's generation (high 32 bits) and the next part to claim */
    int pending;            /* parts not finished */
    int stop;
    float *partial; /* accumulators: (parts - 1) x GRT_ROWS_ACC x acc_n floats */
    size_t partial_n;
} Pool;

static Pool pool = {.threads = 1,
                    .lock = PTHREAD_MUTEX_INITIALIZER,
                    .wake = PTHREAD_COND_INITIALIZER,
                    .done = PTHREAD_COND_INITIALIZER};

/* Rows [begin, end) of part `part` of `parts`: equal shares, the remainder spread over the first parts. */
static void part_bounds(int64_t rows, int parts, int part, int64_t *begin, int64_t *end) {
    *begin = rows * part / parts;
    *end = rows * (part + 1) / parts;
}

/* Claim and run parts of job `generation` until none is left; returns how
 * many this thread ran. A claim names the generation, so a worker that
 * comes after its job ended (and another began) claims nothing. */
static int run_parts(const GrtRows *job, int parts, long generation) {
    int ran = 0;
    uint64_t v = atomic_load(&pool.claim);
    while (v >> 32 == (uint32_t)generation && (int)(v & 0xffffffffu) < parts) {
        if (!atomic_compare_exchange_weak(&pool.claim, &v, v + 1)) continue; /* v reloaded */
        int64_t begin, end;
        part_bounds(job->rows, parts, (int)(v & 0xffffffffu), &begin, &end);
        if (begin < end) job->fn(job, begin, end, (int)(v & 0xffffffffu));
        ran++;
        v = atomic_load(&pool.claim);
    }
    return ran;
}

/* A worker: wait for a job of a new generation, run the parts it can claim, report, sleep again. */
static void *worker_main(void *arg) {
    long seen = 0;
    (void)arg;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (!pool.stop && pool.generation == seen)
            pthread_cond_wait(&pool.wake, &pool.lock);
        if (pool.stop) break;
        seen = pool.generation;
        const GrtRows *job = pool.job;
        int parts = pool.parts;
        pthread_mutex_unlock(&pool.lock);
        int ran = run_parts(job, parts, seen);
        pthread_mutex_lock(&pool.lock);
        pool.pending -= ran;
        if (ran && pool.pending == 0) pthread_cond_signal(&pool.done);
    }
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

/* A positive whole number from the environment, else 0. */
static int env_count(const char *name) {
    const char *s = getenv(name);
    if (!s || !*s) return 0;
    char *end;
    long n = strtol(s, &end, 10);
    return *end == '\0' && n > 0 && n <= 1 << 16 ? (int)n : 0;
}

int grt_pool_threads_for(int local_ranks) {
    int n = env_count("GALVRT_THREADS");
    if (!n) n = grt_rank_cores(local_ranks);
    return n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : n;
}

void grt_pool_start(int threads) {
    if (pool.threads > 1) return; /* started already */
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    pool.stop = 0;
    pool.generation = 0; /* what a new worker has seen */
    for (int w = 1; w < threads; w++) {
        if (pthread_create(&pool.worker[w], NULL, worker_main, NULL) != 0) {
            threads = w; /* fewer threads than asked: still correct */
            break;
        }
    }
    pool.threads = threads < 1 ? 1 : threads;
}

void grt_pool_stop(void) {
    if (pool.threads <= 1) return;
    pthread_mutex_lock(&pool.lock);
    pool.stop = 1;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    for (int w = 1; w < pool.threads; w++)
        pthread_join(pool.worker[w], NULL);
    pool.threads = 1;
    free(pool.partial);
    pool.partial = NULL;
    pool.partial_n = 0;
}

int grt_pool_threads(void) { return pool.threads; }

/* Parts for a job: PARTS_PER_THREAD per thread, fewer when a part would have under MIN_PART elements of work. */
static int job_parts(const GrtRows *job) {
    int64_t work = job->rows * (job->cols > 0 ? job->cols : 1);
    int64_t parts = work / MIN_PART;
    if (parts > (int64_t)pool.threads * PARTS_PER_THREAD) parts = (int64_t)pool.threads * PARTS_PER_THREAD;
    if (parts > GRT_POOL_PARTS) parts = GRT_POOL_PARTS;
    if (parts > job->rows) parts = job->rows;
    return parts < 1 || pool.threads == 1 ? 1 : (int)parts;
}

/* Zeroed accumulators for parts 1 .. parts - 1 (part 0 adds into the job's own). */
static void partials_ready(const GrtRows *job, int parts) {
    size_t n = (size_t)(parts - 1) * GRT_ROWS_ACC * job->acc_n;
    if (n > pool.partial_n) {
        free(pool.partial);
        pool.partial = malloc(n * sizeof(float)); /* working memory of the pool, not of the plan */
        if (!pool.partial) grt_abort("out of memory for the thread pool's accumulators", 1);
        pool.partial_n = n;
    }
    memset(pool.partial, 0, n * sizeof(float));
}

float *grt_rows_acc(const GrtRows *job, int part, int k) {
    if (!job->acc[k] || part == 0) return job->acc[k];
    return pool.partial + ((size_t)(part - 1) * GRT_ROWS_ACC + (size_t)k) * job->acc_n;
}

/* Add parts 1 .. parts - 1's accumulators into the job's, in part order. */
static void partials_add(const GrtRows *job, int parts) {
    for (int k = 0; k < GRT_ROWS_ACC; k++)
        for (int p = 1; job->acc[k] && p < parts; p++) {
            const float *src = grt_rows_acc(job, p, k);
            for (size_t i = 0; i < job->acc_n; i++)
                job->acc[k][i] += src[i];
        }
}

void grt_pool_run(const GrtRows *job) {
    if (job->rows <= 0) return;
    int parts = job_parts(job);
    if (parts == 1) {
        job->fn(job, 0, job->rows, 0);
        return;
    }
    if (job->acc_n) partials_ready(job, parts);
    pthread_mutex_lock(&pool.lock);
    pool.job = job;
    pool.parts = parts;
    pool.pending = parts;
    long generation = ++pool.generation;
    atomic_store(&pool.claim, (uint64_t)(uint32_t)generation << 32);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    int ran = run_parts(job, parts, generation);
    pthread_mutex_lock(&pool.lock);
    pool.pending -= ran;
    while (pool.pending > 0)
        pthread_cond_wait(&pool.done, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
    if (job->acc_n) partials_add(job, parts);
}
