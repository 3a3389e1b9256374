/* pool.c — the threads the row-parallel kernels run on. The GEMMs have
 * OpenBLAS's threads; every other kernel (norms, activations, residuals,
 * softmaxes, the loss, the optimizer) is one pass over rows that do not
 * depend on each other, so a rank with several cores splits those rows
 * into one contiguous part per thread, the calling thread taking the first.
 *
 * The workers are made once (grt_pool_start) and sleep on a condition
 * variable between jobs: nothing spins, so the cores are OpenBLAS's while a
 * GEMM runs (the two never run at once: a job and a GEMM are both called
 * from the main thread, one after the other). A part's bounds depend only
 * on the row count and the thread count, never on timing, and a kernel that
 * sums over rows into one vector (a norm's weight gradient) gives each part
 * its own zeroed copy, added into the vector part by part in order: the
 * same threads give the same bits on every run. */
#include "galvrt.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS 64
#define MIN_PART 16384 /* elements of work a part must have to be worth a thread's wake-up */

typedef struct Pool {
    int threads; /* 1: no workers, every job runs on the caller */
    pthread_t worker[MAX_THREADS];
    pthread_mutex_t lock;
    pthread_cond_t wake, done;
    const GrtRows *job; /* the job in flight */
    int parts;          /* its parts; worker w runs part w + 1 */
    long generation;    /* counts jobs, so a worker runs each once */
    int pending;        /* parts not finished */
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

static void run_part(const GrtRows *job, int parts, int part) {
    int64_t begin, end;
    part_bounds(job->rows, parts, part, &begin, &end);
    if (begin < end) job->fn(job, begin, end, part);
}

/* A worker: wait for a job of a new generation, run its part, report, sleep again. */
static void *worker_main(void *arg) {
    int part = (int)(intptr_t)arg;
    long seen = 0;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (!pool.stop && pool.generation == seen)
            pthread_cond_wait(&pool.wake, &pool.lock);
        if (pool.stop) break;
        seen = pool.generation;
        if (part >= pool.parts) continue;
        const GrtRows *job = pool.job;
        int parts = pool.parts;
        pthread_mutex_unlock(&pool.lock);
        run_part(job, parts, part);
        pthread_mutex_lock(&pool.lock);
        if (--pool.pending == 0) pthread_cond_signal(&pool.done);
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
        if (pthread_create(&pool.worker[w], NULL, worker_main, (void *)(intptr_t)w) != 0) {
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

/* Parts for a job: one per thread, fewer when a part would have under MIN_PART elements of work. */
static int job_parts(const GrtRows *job) {
    int64_t work = job->rows * (job->cols > 0 ? job->cols : 1);
    int64_t parts = work / MIN_PART;
    if (parts > pool.threads) parts = pool.threads;
    if (parts > job->rows) parts = job->rows;
    return parts < 1 ? 1 : (int)parts;
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
    pool.pending = parts - 1;
    pool.generation++;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    run_part(job, parts, 0);
    pthread_mutex_lock(&pool.lock);
    while (pool.pending > 0)
        pthread_cond_wait(&pool.done, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
    if (job->acc_n) partials_add(job, parts);
}
