/* test_pool.c — the row kernels' thread pool (runtime/pool.c): a job's parts
 * cover its rows once each, in the bounds the row and thread counts fix;
 * accumulated vectors come out exact; a job too small to share stays on
 * the caller; 20,000 jobs back to back each run once; the pool stops and starts again. Then the
 * reference kernels on 3 threads against the same kernels on one: every
 * output bit for bit, except the weight gradients summed over rows (norms),
 * within 1e-5 relative (sums of 67 floats in another order; seen 1.5e-6),
 * and the sum of squares within 1e-12. Also the
 * thread counts: GALVRT_THREADS, the launcher's local rank count. */
#include "../unit/check.h"
#include "galvrt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { ROWS = 100 };

typedef struct Seen {
    int visits[ROWS];
    int part_of[ROWS];
} Seen;

/* Marks its rows and adds row + 1 into every element of acc[0]. */
static void mark_rows(const GrtRows *job, int64_t begin, int64_t end, int part) {
    Seen *s = job->ctx;
    float *acc = grt_rows_acc(job, part, 0);
    for (int64_t r = begin; r < end; r++) {
        s->visits[r]++;
        s->part_of[r] = part;
        for (size_t i = 0; i < job->acc_n; i++) acc[i] += (float)(r + 1);
    }
}

/* A job of ROWS rows of cols elements on 3 threads: parts of rows [ROWS p / parts, ROWS (p + 1) / parts). */
static void check_job(int cols, int parts) {
    float acc[4] = {100, 100, 100, 100};
    Seen s = {{0}, {0}};
    GrtRows job = {.rows = ROWS, .cols = cols, .fn = mark_rows, .ctx = &s, .acc = {acc, NULL}, .acc_n = 4};
    grt_pool_run(&job);
    for (int r = 0; r < ROWS; r++) {
        CHECK_EQ(s.visits[r], 1);
        CHECK(ROWS * s.part_of[r] / parts <= r && r < ROWS * (s.part_of[r] + 1) / parts);
    }
    CHECK_EQ(s.part_of[ROWS - 1], parts - 1);
    for (int i = 0; i < 4; i++) CHECK(acc[i] == 100 + 5050); /* 1 + ... + 100, exact in float */
}

static void test_parts(void) {
    check_job(500, 3);   /* 50,000 elements: 3 parts of at least 16,384 */
    check_job(5000, 12); /* 4 parts a thread */
    check_job(1, 1);     /* too little work to share */
    int before = check_failures;
    for (int i = 0; i < 20000 && check_failures == before; i++) /* jobs back to back: a late worker */
        check_job(i % 2 ? 500 : 5000, i % 2 ? 3 : 12);       /* must not run a part of the next one */
}

static float rnd(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return (float)(((*s >> 8) & 0xffff) / 32768.0 - 1.0);
}

static float *randoms(size_t n, unsigned seed) {
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = rnd(&seed);
    return x;
}

/* Largest relative difference (absolute below 1). */
static double worst(const float *a, const float *b, size_t n) {
    double w = 0;
    for (size_t i = 0; i < n; i++) w = fmax(w, fabs((double)a[i] - b[i]) / fmax(1.0, fabs((double)b[i])));
    return w;
}

enum { N = 67, C = 771, V = 503, B = 2, T = 33, H = 3, HD = 8 }; /* odd sizes: unequal parts; B T <= N */

/* Every output of the reference kernels on the current pool, into out (a fixed order of arrays). */
static void run_kernels(float *out[8], double *sq) {
    float *x = randoms((size_t)N * C, 1), *w = randoms(C, 2), *b = randoms(C, 3), *d = randoms((size_t)N * C, 4);
    float *logits = randoms((size_t)N * V, 5), *qkv = randoms((size_t)B * T * 3 * H * HD, 6);
    int32_t tgt[N], tok[B * T];
    for (int i = 0; i < N; i++) tgt[i] = (i * 37) % V;
    tgt[5] = -1; /* an ignored row */
    for (int i = 0; i < B * T; i++) tok[i] = (i * 11) % 5;        /* repeated tokens: the scatter-add */
    float mean[N], rstd[N];
    grt_layernorm_forward(out[0], mean, rstd, x, w, b, N, C, 1e-5f);
    memset(out[1], 0, sizeof(float) * (N * C + 2 * C));
    grt_layernorm_backward(out[1], out[1] + N * C, out[1] + N * C + C, d, x, w, mean, rstd, N, C);
    grt_gelu_forward(out[2], x, (size_t)N * C);
    grt_gelu_backward(out[2], x, d, (size_t)N * C);
    grt_crossentropy_forward(out[3], out[3] + N, logits, tgt, N, V);
    grt_crossentropy_backward(out[3] + N + N * V, out[3] + N, tgt, w, N, V);
    memset(out[4], 0, sizeof(float) * 5 * C);
    grt_embedding_backward(out[4], NULL, d, tok, B, T, C, 0, 5);
    grt_attention_forward(out[5], out[5] + B * T * H * HD, qkv, B, T, H, H, HD, 1);
    memcpy(out[6], x, sizeof(float) * N * C);
    grt_adamw(out[6], d, out[6] + N * C, out[6] + 2 * N * C, (size_t)N * C, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, 3);
    *sq = grt_sumsq(d, (size_t)N * C);
    free(x), free(w), free(b), free(d), free(logits), free(qkv);
}

static const size_t sizes[7] = {N * C, N * C + 2 * C, N * C, N + 2 * N * V, 5 * C, B * T * H * HD + B * H * T * T,
                                3 * N * C};

static void test_kernels(void) {
    float *one[8], *three[8];
    double sq1, sq3;
    for (int k = 0; k < 7; k++) one[k] = calloc(sizes[k], sizeof(float)), three[k] = calloc(sizes[k], sizeof(float));
    grt_pool_stop();
    run_kernels(one, &sq1);
    grt_pool_start(3);
    CHECK_EQ(grt_pool_threads(), 3);
    run_kernels(three, &sq3);
    for (int k = 0; k < 7; k++) {
        if (k == 1) { /* dinp exact; dweight and dbias summed in another order */
            CHECK(memcmp(one[k], three[k], sizeof(float) * N * C) == 0);
            CHECK(worst(three[k] + N * C, one[k] + N * C, 2 * C) < 1e-5);
        } else {
            CHECK(memcmp(one[k], three[k], sizeof(float) * sizes[k]) == 0);
        }
        free(one[k]), free(three[k]);
    }
    CHECK(fabs(sq1 - sq3) <= 1e-12 * sq1);
}

static void test_counts(void) {
    setenv("GALVRT_THREADS", "5", 1);
    CHECK_EQ(grt_pool_threads_for(8), 5);
    unsetenv("GALVRT_THREADS");
    CHECK(grt_pool_threads_for(1) >= 1);
    CHECK(grt_pool_threads_for(1 << 20) >= 1); /* more ranks than cores: still one thread */
    setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "3", 1);
    CHECK_EQ(grt_local_ranks(8), 3);
    unsetenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    CHECK_EQ(grt_local_ranks(8), 8);
}

int main(void) {
    unsetenv("OMPI_COMM_WORLD_LOCAL_SIZE"); /* the test's own counts, whoever launches it */
    unsetenv("MPI_LOCALNRANKS");
    CHECK_EQ(grt_pool_threads(), 1);
    grt_pool_start(3);
    test_parts();
    grt_pool_stop();
    CHECK_EQ(grt_pool_threads(), 1);
    test_kernels();
    grt_pool_stop();
    test_counts();
    return check_report();
}
