/* profiler.c — the hardware profiler behind `galvc profile`: it measures the
 * figures the planner's cost model prices plans with (passes/cost.c), using
 * this runtime's own code, so that what is measured is what a generated
 * program will run:
 *
 *   - sgemm throughput (grt_matmul_forward on square matrices): the peak;
 *   - memory bandwidth (grt_residual_forward over arrays far larger than
 *     the caches);
 *   - each layer kind's forward and backward time (grt_layer_*) over several
 *     micro-batch sizes at every TP degree, fitted to a line
 *     time = fixed + work / rate; the block's rate over the peak is the GEMM
 *     efficiency;
 *   - all-reduce, all-gather and reduce-scatter over every power-of-two group
 *     size, consecutive and strided, and p2p between pipeline stages, over
 *     message sizes from 4 KiB up, fitted to Hockney's alpha-beta model
 *     t = alpha + bytes / bandwidth (Hockney, Parallel Computing 1994) and
 *     reported as NCCL's bus bandwidth (nccl-tests' PERFORMANCE.md: busBw =
 *     algBw * 2(n-1)/n for all-reduce, (n-1)/n for all-gather and
 *     reduce-scatter, 1 for p2p);
 *   - the slowdown of compute while gradient synchronization runs beside it
 *     (Galvatron's overlap coefficient, Miao et al., VLDB 2023, section 4.2):
 *     a GEMM loop on a second thread, alone and while the main thread runs
 *     all-reduces (MPI stays on the main thread, as MPI_THREAD_FUNNELED asks).
 *
 * Every rank runs every measurement at the same time, so ranks that share a
 * machine share its cores and memory as they do in training; a figure is the
 * median of its repetitions on each rank, averaged over the ranks.
 *
 * Fits weigh each point by 1 / time^2 (relative errors), so the microsecond
 * points count as much as the second-long ones. */
#include "galvrt.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* What is measured, in full and with --quick. */
typedef struct Sizes {
    int C, H, hd, F, T, V;     /* the layers' shape: hidden, heads, head size, FFN, tokens, vocabulary */
    int batches[4], n_batches; /* micro-batch sizes, sequences */
    int reps;                  /* timed repetitions per point, after one warm-up */
    int gemm[3], n_gemm;       /* square sgemm sizes */
    size_t stream;             /* floats per array of the bandwidth kernel */
    size_t msg_min, msg_max;   /* collective message sizes, bytes, in steps of 4x */
    int overlap_n;             /* the overlap test's square GEMM */
    size_t overlap_msg;        /* and its all-reduce, bytes */
} Sizes;

static const Sizes full_sizes = {
    .C = 512, .H = 16, .hd = 32, .F = 2048, .T = 128, .V = 4096,
    .batches = {1, 2, 4, 8}, .n_batches = 4, .reps = 5,
    .gemm = {512, 1024, 1536}, .n_gemm = 3,
    .stream = 1 << 23,                     /* 32 MiB per array */
    .msg_min = 4096, .msg_max = 1 << 26,   /* 4 KiB .. 64 MiB */
    .overlap_n = 512, .overlap_msg = 16 << 20,
};
static const Sizes quick_sizes = {
    .C = 128, .H = 4, .hd = 32, .F = 512, .T = 32, .V = 1024,
    .batches = {1, 2, 4}, .n_batches = 3, .reps = 1,
    .gemm = {256, 384}, .n_gemm = 2,
    .stream = 1 << 20,
    .msg_min = 4096, .msg_max = 1 << 20,
    .overlap_n = 256, .overlap_msg = 1 << 20,
};

/* The profiler's state: the world, what to measure, and progress. */
typedef struct Prof {
    GrtComm *world;
    int rank, size;
    const Sizes *z;
    int step, steps; /* progress: measurements done, and in all */
    double start_ms;
} Prof;

/* ---- timing and fitting --------------------------------------------------------- */

/* One line of progress on rank 0: "[k/n] what (elapsed)". */
static void progress(Prof *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void progress(Prof *p, const char *fmt, ...) {
    p->step++;
    if (p->rank != 0) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[%d/%d] ", p->step, p->steps);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (%.1f s)\n", (grt_now_ms() - p->start_ms) * 1e-3);
    va_end(ap);
    fflush(stderr);
}

typedef void (*Work)(void *ctx);

/* qsort's order for doubles. */
static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Seconds per call of fn: every rank starts each repetition together, runs
 * fn `calls` times, and the repetition ends when the last rank is done (as a
 * training step does: with more ranks than cores, a rank timed alone would
 * run while the others wait for the core); the median repetition, averaged
 * over the ranks. */
static double time_s(Prof *p, Work fn, void *ctx, int calls) {
    double t[16];
    int reps = p->z->reps < 16 ? p->z->reps : 16;
    fn(ctx); /* warm-up: caches, pages, MPI connections */
    for (int r = 0; r < reps; r++) {
        grt_barrier(p->world);
        double t0 = grt_now_ms();
        for (int c = 0; c < calls; c++) fn(ctx);
        grt_barrier(p->world);
        t[r] = (grt_now_ms() - t0) * 1e-3 / calls;
    }
    qsort(t, (size_t)reps, sizeof *t, compare_doubles);
    double median = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
    grt_allreduce_double(p->world, &median, 1);
    return median / p->size;
}

/* time = fixed_s + work / rate, least squares weighted by 1 / time^2. A
 * negative intercept (noise) refits through the origin; a slope that is not
 * positive falls back to the largest point's rate. */
GrtProfileFit grt_profile_fit(const double *work, const double *t, int n) {
    double sw = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (int i = 0; i < n; i++) {
        double w = 1 / (t[i] * t[i]);
        sw += w, sx += w * work[i], sy += w * t[i], sxx += w * work[i] * work[i], sxy += w * work[i] * t[i];
    }
    double det = sw * sxx - sx * sx;
    double slope = det > 0 ? (sw * sxy - sx * sy) / det : 0, fixed = det > 0 ? (sy - slope * sx) / sw : 0;
    if (!(slope > 0)) {
        slope = t[n - 1] / work[n - 1];
        fixed = 0;
    } else if (fixed < 0) {
        slope = sxy / sxx;
        fixed = 0;
    }
    return (GrtProfileFit){fixed, 1 / slope};
}

/* n floats from grt_alloc, normal(0, 1) from stream id. */
static float *random_floats(size_t n, uint64_t id) {
    float *x = grt_alloc(n * sizeof(float));
    grt_init_normal(x, 1, (int)n, NULL, 0, (int64_t)n, 1.0f, 1234, id);
    return x;
}

/* ---- GEMM and memory bandwidth ---------------------------------------------------- */

typedef struct GemmRun {
    float *out, *a, *w;
    int n;
} GemmRun;

/* An n x n GEMM's buffers, the inputs random (draws id and id + 1). */
static GemmRun gemm_open(int n, uint64_t id) {
    size_t nn = (size_t)n * n;
    GemmRun g = {grt_alloc(nn * sizeof(float)), random_floats(nn, id), random_floats(nn, id + 1), n};
    return g;
}

static void gemm_close(GemmRun *g) {
    size_t nn = (size_t)g->n * g->n;
    grt_free(g->out, nn * sizeof(float));
    grt_free(g->a, nn * sizeof(float));
    grt_free(g->w, nn * sizeof(float));
}

/* out (n, n) = a (n, n) @ w (n, n)^T */
static void run_gemm(void *ctx) {
    GemmRun *g = ctx;
    grt_matmul_forward(g->out, g->a, g->w, NULL, g->n, g->n, g->n);
}

/* The best sgemm rate over the sizes tried, FLOP/s per rank. */
static double measure_gemm(Prof *p) {
    double best = 0;
    for (int i = 0; i < p->z->n_gemm; i++) {
        int n = p->z->gemm[i];
        GemmRun g = gemm_open(n, 1);
        double rate = 2.0 * n * n * (double)n / time_s(p, run_gemm, &g, 1);
        if (rate > best) best = rate;
        gemm_close(&g);
    }
    progress(p, "sgemm: %.1f GFLOP/s per rank (best of %d sizes up to %d)", best * 1e-9, p->z->n_gemm,
             p->z->gemm[p->z->n_gemm - 1]);
    return best;
}

typedef struct StreamRun {
    float *out, *a, *b;
    size_t n;
} StreamRun;

/* out (n) = a (n) + b (n) */
static void run_stream(void *ctx) {
    StreamRun *s = ctx;
    grt_residual_forward(s->out, s->a, s->b, s->n);
}

/* Bytes per second an elementwise kernel reads and writes, per rank. */
static double measure_bandwidth(Prof *p) {
    size_t n = p->z->stream, bytes = n * sizeof(float);
    StreamRun s = {grt_alloc(bytes), random_floats(n, 3), random_floats(n, 4), n};
    double bw = 3.0 * (double)bytes / time_s(p, run_stream, &s, 1);
    grt_free(s.out, bytes);
    grt_free(s.a, bytes);
    grt_free(s.b, bytes);
    progress(p, "memory bandwidth: %.2f GB/s per rank (residual add over 3 x %.0f MiB)", bw * 1e-9,
             (double)bytes / (1 << 20));
    return bw;
}

/* ---- layers ------------------------------------------------------------------------ */

/* A training step runs each layer once per micro-batch and every other layer
 * between, so a layer's weights and gradients come from memory, not from
 * the cache: a stack far larger than the last-level cache passes through
 * it. The profiler runs a ring of copies of the layer, each call on the next
 * copy, the rings of all of a node's ranks together twice that cache
 * (ring_copies; at most RING_MAX copies, one when the layer alone is). */
#define RING_MAX 32
#define CACHE_FALLBACK ((size_t)64 << 20) /* when the system does not say */

/* A layer with its inputs, ready to run forward and backward. */
typedef struct LayerRun {
    GrtLayer layer;
    float *params[RING_MAX], *grads[RING_MAX]; /* the ring's copies */
    int n_ring, next;
    float *in, *out, *dout, *din;
    int32_t *tokens, *targets;
    float *work;            /* the layer's working space */
    size_t n_params, n_act, n_work; /* floats */
} LayerRun;

/* Copies of `bytes` that, with every rank of the node holding as many,
 * pass twice the last-level cache the node's ranks share through it between
 * two uses of a copy (twice: the cache's replacement is not strictly LRU). */
static int ring_copies(const Prof *p, size_t bytes) {
    long llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
    size_t cache = llc > 0 ? (size_t)llc : CACHE_FALLBACK, share = 2 * cache / (size_t)grt_local_ranks(p->size);
    size_t n = bytes ? share / bytes + 1 : 1;
    return n < RING_MAX ? (int)n : RING_MAX;
}

/* Make layer s on this rank's TP group (NULL: TP 1) for B sequences. The one
 * place that uses the layer API's setup and bind. The activations bind
 * allocates stay until the process ends: galvrt.h has no way to free them,
 * and the profiler runs once. */
static void layer_open(const Prof *p, LayerRun *r, const GrtLayerSpec *s, GrtComm *tp, int B, int T) {
    memset(r, 0, sizeof *r);
    grt_layer_setup(&r->layer, s, tp, B, T);
    r->n_params = r->layer.n_params;
    r->n_ring = ring_copies(p, 2 * r->n_params * sizeof(float));
    size_t work = grt_layer_work_floats(&r->layer);
    r->work = work ? grt_alloc(work * sizeof(float)) : NULL;
    r->n_work = work;
    for (int k = 0; k < r->n_ring; k++) {
        r->params[k] = grt_alloc(r->n_params * sizeof(float));
        r->grads[k] = grt_alloc(r->n_params * sizeof(float));
        if (k) memcpy(r->params[k], r->params[0], r->n_params * sizeof(float));
        else {
            size_t area = grt_layer_ckpt_floats(&r->layer); /* bf16 kept activations' fp32 copy */
            grt_layer_bind(&r->layer, r->params[0], r->grads[0], 1, r->work, area ? grt_alloc(area * sizeof(float)) : NULL);
            grt_layer_init(&r->layer, 1234, 0, 1);
        }
    }
    size_t N = (size_t)B * T;
    r->n_act = N * (size_t)s->C;
    r->in = random_floats(r->n_act, 5);
    r->dout = random_floats(r->n_act, 6);
    r->out = grt_alloc(r->n_act * sizeof(float));
    r->din = grt_alloc(r->n_act * sizeof(float));
    r->tokens = grt_alloc(N * sizeof(int32_t));
    r->targets = grt_alloc(N * sizeof(int32_t));
    for (size_t i = 0; i < N; i++) {
        r->tokens[i] = (int32_t)(grt_hash64(i) % (uint64_t)(s->V > 0 ? s->V : 1));
        r->targets[i] = (int32_t)(grt_hash64(i + N) % (uint64_t)(s->V > 0 ? s->V : 1));
    }
}

/* Free what layer_open allocated (not the layer's activations). */
static void layer_close(LayerRun *r) {
    for (int k = 0; k < r->n_ring; k++) {
        grt_free(r->params[k], r->n_params * sizeof(float));
        grt_free(r->grads[k], r->n_params * sizeof(float));
    }
    grt_free(r->in, r->n_act * sizeof(float));
    grt_free(r->dout, r->n_act * sizeof(float));
    grt_free(r->out, r->n_act * sizeof(float));
    grt_free(r->din, r->n_act * sizeof(float));
    size_t N = (size_t)r->layer.B * r->layer.T;
    grt_free(r->tokens, N * sizeof(int32_t));
    grt_free(r->targets, N * sizeof(int32_t));
    grt_free(r->work, r->n_work * sizeof(float));
}

/* Point the layer at the ring's next copy. */
static void ring_next(LayerRun *r) {
    r->layer.params = r->params[r->next];
    r->layer.grads = r->grads[r->next];
    r->next = (r->next + 1) % r->n_ring;
}

/* The layer's forward: in (B, T, C) -> out. */
static void run_forward(void *ctx) {
    LayerRun *r = ctx;
    ring_next(r);
    grt_layer_forward(&r->layer, r->in, r->tokens, r->targets, r->out);
}

/* The layer's backward from dout (the head: from a loss weight of 1 / tokens). */
static void run_backward(void *ctx) {
    LayerRun *r = ctx;
    int N = r->layer.B * r->layer.T;
    ring_next(r);
    grt_layer_backward(&r->layer, r->in, r->tokens, r->targets, r->dout, 1.0f / (float)N, r->din);
}

/* The forward work of layer kind s on one rank at TP degree tp and B
 * sequences of T tokens: FLOPs of the block's GEMMs and attention products
 * (as passes/shape.c counts them) and of the head's projection; bytes of the
 * (B, T, C) stream read and written for the embedding and the norm. */
double grt_profile_layer_work(const GrtLayerSpec *s, int tp, int B, int T) {
    double N = (double)B * T, C = s->C, hd = s->hd, H = (double)s->H / tp, F = (double)s->F / tp;
    switch (s->kind) {
    case GRT_BLOCK:
        return 2 * N * C * 3 * H * hd                              /* QKV */
               + 4 * (double)B * H * T * grt_block_keys(s, T) * hd /* scores and context */
               + 2 * N * H * hd * C                                /* attention output */
               + 2 * 2 * N * C * F;                                /* MLP up and down */
    case GRT_HEAD: return 2 * N * C * ceil((double)s->V / tp);
    case GRT_EMBEDDING:
    case GRT_NORM: return 2 * N * C * sizeof(float);
    case GRT_PATCH:             /* not profiled: timed as an embedding (layer_profile_kind) */
    case GRT_CLASSIFIER: break; /* not profiled: timed as a head */
    case GRT_MERGE: return 2 * (N / 4) * 4 * C * 2 * C; /* not profiled: timed as a head */
    }
    return 0;
}

static const char *const layer_names[] = {[GRT_EMBEDDING] = "embedding", [GRT_BLOCK] = "block",
                                          [GRT_NORM] = "norm", [GRT_HEAD] = "head"};

/* Fit layer kind s's forward and backward times over the micro-batch sizes at TP degree tp. */
static GrtProfileLayer measure_layer(Prof *p, const GrtLayerSpec *s, GrtComm *group, int tp) {
    const Sizes *z = p->z;
    double work[4], fwd[4], bwd[4], bwd_work[4];
    bool flops = s->kind == GRT_BLOCK || s->kind == GRT_HEAD;
    for (int i = 0; i < z->n_batches; i++) {
        LayerRun r;
        layer_open(p, &r, s, group, z->batches[i], z->T);
        work[i] = grt_profile_layer_work(s, tp, z->batches[i], z->T);
        bwd_work[i] = flops ? 2 * work[i] : work[i];
        fwd[i] = time_s(p, run_forward, &r, 1);
        bwd[i] = time_s(p, run_backward, &r, 1);
        layer_close(&r);
    }
    GrtProfileLayer l = {s->kind, tp, grt_profile_fit(work, fwd, z->n_batches), grt_profile_fit(bwd_work, bwd, z->n_batches)};
    const char *unit = flops ? "GFLOP/s" : "GB/s";
    progress(p, "%s, tp %d: forward %.2f %s + %.0f us, backward %.2f %s + %.0f us (batch %d-%d x %d tokens)",
             layer_names[s->kind], tp, l.forward.rate * 1e-9, unit, l.forward.fixed_s * 1e6,
             l.backward.rate * 1e-9, unit, l.backward.fixed_s * 1e6, z->batches[0], z->batches[z->n_batches - 1],
             z->T);
    return l;
}

/* The layers measured: a GPT-2-style model's embedding, block, final norm and head. */
static GrtLayerSpec layer_spec(const Sizes *z, GrtLayerKind kind) {
    GrtLayerSpec s = {.kind = kind, .name = layer_names[kind], .C = z->C, .H = z->H, .KVH = z->H, .hd = z->hd,
                      .F = z->F, .V = z->V, .causal = 1, .pre_norm = 1, .bias = 1, .eps = 1e-5f};
    if (kind == GRT_EMBEDDING) s.positions = z->T;
    return s;
}

/* ---- collectives ----------------------------------------------------------------- */

/* A collective's buffers are a window moving along a ring larger than the
 * cache (as RING_MAX above): a step's gradients come from memory. */
typedef struct CollRun {
    GrtComm *comm;
    GrtProfileOp op;
    float *in0, *out0, *in, *out; /* the rings; this call's window */
    size_t span, stride, at;      /* floats: the rings', a window's, where this call's starts */
    size_t n;                     /* floats per call, as the grt_* function takes them */
    int peer, lower;              /* p2p */
} CollRun;

/* One call of the collective (p2p: one round trip), on the ring's next window. */
static void run_collective(void *ctx) {
    CollRun *c = ctx;
    if (c->at + c->stride > c->span) c->at = 0;
    c->in = c->in0 + c->at;
    c->out = c->out0 + c->at;
    c->at += c->stride;
    switch (c->op) {
    case GRT_OP_ALLREDUCE: grt_allreduce(c->comm, c->in, c->n); break;
    case GRT_OP_ALLGATHER: grt_allgather(c->comm, c->in, c->out, c->n); break;
    case GRT_OP_REDUCESCATTER: grt_reduce_scatter(c->comm, c->in, c->out, c->n); break;
    case GRT_OP_P2P: /* a round trip: the caller halves it */
        if (c->lower) {
            grt_send(c->comm, c->in, c->n, c->peer, 1);
            grt_recv(c->comm, c->out, c->n, c->peer, 2);
        } else {
            grt_recv(c->comm, c->out, c->n, c->peer, 1);
            grt_send(c->comm, c->in, c->n, c->peer, 2);
        }
        break;
    }
}

static const char *const op_names[] = {[GRT_OP_ALLREDUCE] = "allreduce", [GRT_OP_ALLGATHER] = "allgather",
                                       [GRT_OP_REDUCESCATTER] = "reducescatter", [GRT_OP_P2P] = "p2p"};

/* NCCL's bus bandwidth over algorithm bandwidth for op over g ranks. */
double grt_profile_bus_factor(GrtProfileOp op, int g) {
    switch (op) {
    case GRT_OP_ALLREDUCE: return 2.0 * (g - 1) / g;
    case GRT_OP_ALLGATHER:
    case GRT_OP_REDUCESCATTER: return (double)(g - 1) / g;
    case GRT_OP_P2P: return 1;
    }
    return 1;
}

/* Fit op over comm (g ranks) to alpha-beta over the message sizes. A size S
 * is NCCL's: the all-reduced buffer, the all-gather's output, the
 * reduce-scatter's input, the p2p message. peer >= 0: p2p with that world
 * rank. in and out: rings of `span` floats. */
static GrtProfileCollective measure_collective(Prof *p, GrtProfileOp op, GrtComm *comm, int g, int consecutive,
                                               int peer, float *in, float *out, size_t span) {
    double bytes[16], t[16];
    int n = 0;
    for (size_t S = p->z->msg_min; S <= p->z->msg_max && n < 16; S *= 4, n++) {
        size_t floats = S / sizeof(float);
        CollRun c = {.comm = comm, .op = op, .in0 = in, .out0 = out, .span = span, .stride = floats,
                     .n = op == GRT_OP_ALLGATHER || op == GRT_OP_REDUCESCATTER ? floats / g : floats,
                     .peer = peer, .lower = p->rank < peer};
        int calls = S >= (1 << 20) ? 1 : (int)((1 << 20) / S) < 32 ? (int)((1 << 20) / S) : 32;
        bytes[n] = (double)S;
        t[n] = time_s(p, run_collective, &c, calls) * (op == GRT_OP_P2P ? 0.5 : 1);
    }
    GrtProfileFit f = grt_profile_fit(bytes, t, n);
    GrtProfileCollective r = {op, g, consecutive, f.rate * grt_profile_bus_factor(op, g), f.fixed_s};
    if (op == GRT_OP_P2P)
        progress(p, "p2p, %d stages: %.2f GB/s, %.1f us latency", g, r.bus_bandwidth * 1e-9, r.latency_s * 1e6);
    else
        progress(p, "%s, groups of %d %s: %.2f GB/s bus bandwidth, %.1f us latency", op_names[op], g,
                 consecutive ? "consecutive" : "strided", r.bus_bandwidth * 1e-9, r.latency_s * 1e6);
    return r;
}

/* ---- the ranks' meeting ------------------------------------------------------------ */

/* A GEMM, a parameter-block-sized all-gather, or one after the other. */
typedef struct SyncRun {
    GemmRun g;
    GrtComm *world;
    float *in, *out;
    size_t n;
    int gemm, gather;
} SyncRun;

static void run_sync(void *ctx) {
    SyncRun *s = ctx;
    if (s->gemm) run_gemm(&s->g);
    if (s->gather) grt_allgather(s->world, s->in, s->out, s->n);
}

/* Seconds a blocking collective costs between compute phases beyond the two
 * timed apart (the profile's sync_overhead): a GEMM then an all-gather of a
 * 128 KiB part, repeated, against each repeated alone. Between compute the
 * ranks arrive apart and the caches are cold; when ranks share cores, the
 * waiting ranks take the core from the working ones. */
static double measure_sync(Prof *p) {
    size_t part = 32768;
    SyncRun s = {gemm_open(128, 10), p->world, random_floats(part, 12), grt_alloc(part * (size_t)p->size * sizeof(float)), part, 1, 0};
    double gemm = time_s(p, run_sync, &s, 20);
    s.gemm = 0, s.gather = 1;
    double gather = time_s(p, run_sync, &s, 20);
    s.gemm = 1;
    double both = time_s(p, run_sync, &s, 20);
    double sync = both - gemm - gather;
    if (sync < 0) sync = 0; /* noise */
    progress(p, "meeting cost: %.1f us per collective between compute (GEMM %.1f us, all-gather %.1f us, both %.1f us)",
             sync * 1e6, gemm * 1e6, gather * 1e6, both * 1e6);
    gemm_close(&s.g);
    grt_free(s.in, part * sizeof(float));
    grt_free(s.out, part * (size_t)p->size * sizeof(float));
    return sync;
}

/* ---- overlap ------------------------------------------------------------------------ */

/* A GEMM loop on its own thread: `count` GEMMs, or (count 0) until stop,
 * keeping the time of those that finished before stop was set. */
typedef struct GemmLoop {
    GemmRun g;
    int count;
    atomic_int stop;
    int done;
    double seconds;
} GemmLoop;

/* The thread's body: GEMMs until done or stopped, timing each. */
static void *gemm_loop(void *arg) {
    GemmLoop *l = arg;
    while (l->count ? l->done < l->count : !atomic_load(&l->stop)) {
        double t0 = grt_now_ms();
        run_gemm(&l->g);
        double t1 = grt_now_ms();
        if (!l->count && atomic_load(&l->stop)) break; /* partly alone: not counted */
        l->done++;
        l->seconds += (t1 - t0) * 1e-3;
    }
    return NULL;
}

/* Seconds per GEMM on a second thread; with allreduces > 0, while the main
 * thread runs that many all-reduces of buf over the world. */
static double gemm_thread_s(Prof *p, GemmLoop *l, int allreduces, float *buf, size_t n) {
    l->done = 0;
    l->seconds = 0;
    l->count = allreduces ? 0 : 6;
    atomic_store(&l->stop, 0);
    grt_barrier(p->world);
    pthread_t th;
    if (pthread_create(&th, NULL, gemm_loop, l) != 0) grt_abort("profiler: cannot start a thread", 1);
    for (int i = 0; i < allreduces; i++) grt_allreduce(p->world, buf, n);
    atomic_store(&l->stop, 1);
    pthread_join(th, NULL);
    return l->done ? l->seconds / l->done : 0;
}

/* Compute time while an all-reduce runs beside it over compute time alone. */
static double measure_overlap(Prof *p) {
    int n = p->z->overlap_n;
    size_t floats = p->z->overlap_msg / sizeof(float);
    GemmLoop l = {.g = gemm_open(n, 7)};
    float *buf = random_floats(floats, 9);
    gemm_thread_s(p, &l, 0, buf, floats); /* warm-up */
    double alone = gemm_thread_s(p, &l, 0, buf, floats);
    CollRun c = {.comm = p->world, .op = GRT_OP_ALLREDUCE, .in0 = buf, .out0 = buf, .span = floats, .stride = floats,
                 .n = floats, .peer = -1};
    double ar = time_s(p, run_collective, &c, 1);
    /* enough all-reduces to cover about eight GEMMs; rank 0 decides for all */
    float count = (float)ceil(8 * alone / (ar > 0 ? ar : 1e-9));
    if (count < 2) count = 2;
    if (count > 2000) count = 2000;
    grt_broadcast(p->world, &count, 1, 0);
    /* a repetition in which some rank finished no GEMM beside the traffic is
     * retried with twice the all-reduces (the flag sum is the same on every rank) */
    double ratio[16];
    int got = 0;
    for (int tries = 0; got < p->z->reps && got < 16 && tries < p->z->reps + 8; tries++) {
        double with = gemm_thread_s(p, &l, (int)count, buf, floats);
        double missed = with > 0 ? 0 : 1;
        grt_allreduce_double(p->world, &missed, 1);
        if (missed > 0) {
            count = count * 2 > 100000 ? 100000 : count * 2;
            continue;
        }
        ratio[got++] = with / alone;
    }
    double slow = 1;
    if (got) {
        qsort(ratio, (size_t)got, sizeof *ratio, compare_doubles);
        slow = got % 2 ? ratio[got / 2] : 0.5 * (ratio[got / 2 - 1] + ratio[got / 2]);
    }
    if (slow < 1) slow = 1; /* overlap cannot speed compute up: below 1 is noise */
    grt_allreduce_double(p->world, &slow, 1);
    slow /= p->size;
    gemm_close(&l.g);
    grt_free(buf, floats * sizeof(float));
    progress(p, "overlap: a %dx%d GEMM runs %.2fx slower beside %.0f all-reduces of %.0f MiB", n, n, slow,
             (double)count, (double)p->z->overlap_msg / (1 << 20));
    return slow;
}

/* ---- the whole profile --------------------------------------------------------------- */

/* The number of progress steps grt_profile_measure takes. */
static int count_steps(const Sizes *z, int size) {
    int steps = 2; /* sgemm, memory bandwidth */
    for (int tp = 1; tp <= size && tp <= z->H; tp *= 2) steps += 4;
    for (int g = 2; g <= size; g *= 2) steps += 3 * (g < size ? 2 : 1) + 1;
    return steps + 2 * (size > 1); /* the meeting cost, overlap */
}

/* Every measurement in turn, on every rank (galvrt.h). */
void grt_profile_measure(GrtComm *world, int quick, const GrtProfileShape *shape, GrtProfile *out) {
    Sizes sized = quick ? quick_sizes : full_sizes;
    if (shape) {
        sized.C = shape->C, sized.H = shape->H, sized.hd = shape->hd, sized.F = shape->F;
        sized.T = shape->T, sized.V = shape->V;
    }
    Prof p = {.world = world, .rank = grt_rank(world), .size = grt_size(world), .z = &sized,
              .start_ms = grt_now_ms()};
    int N = p.size;
    if (N & (N - 1)) grt_abort("profiler: the rank count must be a power of two", 2);
    memset(out, 0, sizeof *out);
    out->ranks = N;
    p.steps = count_steps(p.z, N);

    out->gemm_flops = measure_gemm(&p);
    out->mem_bandwidth = measure_bandwidth(&p);

    /* layers, at every TP degree the heads allow; TP groups are consecutive ranks */
    static const GrtLayerKind kinds[] = {GRT_EMBEDDING, GRT_BLOCK, GRT_NORM, GRT_HEAD};
    for (int tp = 1; tp <= N && tp <= p.z->H; tp *= 2) {
        GrtComm *group = tp > 1 ? grt_comm_split(world, p.rank / tp, p.rank) : NULL;
        for (int k = 0; k < 4 && out->n_layers < GRT_PROFILE_MAX_ENTRIES; k++) {
            GrtLayerSpec s = layer_spec(p.z, kinds[k]);
            out->layers[out->n_layers++] = measure_layer(&p, &s, group, tp);
        }
    }
    for (int i = 0; i < out->n_layers; i++) {
        const GrtProfileLayer *l = &out->layers[i];
        if (l->kind != GRT_BLOCK || l->tp != 1) continue;
        /* forward F and backward 2F FLOPs at the two fitted rates */
        double rate = 3 / (1 / l->forward.rate + 2 / l->backward.rate), eff = rate / out->gemm_flops;
        out->gemm_efficiency = eff > 1 ? 1 : eff;
    }

    /* collectives over every group size and nesting; p2p between stages */
    size_t span = (size_t)ring_copies(&p, 2 * p.z->msg_max) * p.z->msg_max / sizeof(float);
    float *in = random_floats(span, 10), *buf = grt_alloc(span * sizeof(float));
    for (int g = 2; g <= N; g *= 2) {
        GrtComm *groups[2] = {grt_comm_split(world, p.rank / g, p.rank),
                              g < N ? grt_comm_split(world, p.rank % (N / g), p.rank) : NULL};
        for (int op = GRT_OP_ALLREDUCE; op <= GRT_OP_REDUCESCATTER; op++)
            for (int consec = 1; consec >= 0; consec--) {
                if (!groups[!consec] || out->n_collectives >= GRT_PROFILE_MAX_ENTRIES) continue;
                GrtProfileCollective c =
                    measure_collective(&p, (GrtProfileOp)op, groups[!consec], g, consec, -1, in, buf, span);
                out->collectives[out->n_collectives++] = c;
                if (op == GRT_OP_ALLREDUCE && consec && g == N) {
                    out->link_bandwidth = c.bus_bandwidth;
                    out->link_latency_s = c.latency_s / (2.0 * (g - 1)); /* 2 (g-1) ring steps */
                }
            }
        /* g stages of N/g ranks: each rank and its counterpart in the neighbouring stage */
        int peer = p.rank ^ (N / g);
        if (out->n_collectives < GRT_PROFILE_MAX_ENTRIES)
            out->collectives[out->n_collectives++] = measure_collective(&p, GRT_OP_P2P, world, g, 1, peer, in, buf, span);
    }
    grt_free(in, span * sizeof(float));
    grt_free(buf, span * sizeof(float));
    if (N > 1) out->sync_overhead_s = measure_sync(&p);
    if (N > 1) out->overlap_slowdown = measure_overlap(&p);
}
