/* profiler_cuda.c — `galvc profile --target cuda`: the figures the planner
 * prices plans with (docs/profile-format.md), measured on the GPU with the
 * CUDA side of the runtime, in galvc-profiler-cuda (tools/profiler_main.c
 * writes them). Every time is taken on the device, between two CUDA events
 * on the stream the work ran on:
 *
 *   - cuBLAS GEMMs at the model's shapes (QKV, attention output, MLP up and
 *     down, the LM head; forward, input and weight gradients, as gemm.c
 *     runs them) in fp32 (TF32 off), TF32 and bf16 with fp32 accumulation:
 *     the rate over all of them per arithmetic ("gemm_rates"), the best
 *     single one as the peak;
 *   - device memory bandwidth (a device-to-device copy, bytes read and
 *     written);
 *   - with the model's generated kernels (galvc profile MODEL.gv builds them
 *     into a shared library): the embedding, transformer block, final norm
 *     and head, forward and backward, over micro-batch sizes, through the
 *     runtime's layers on the GPU (cuBLAS and the PTX kernels), fitted to
 *     time = fixed + work / rate; the norm's and the embedding's rates are
 *     the generated kernels' bandwidth;
 *   - the collectives over every power-of-two group of ranks, consecutive
 *     and strided, and p2p between stages, on device buffers: NCCL when each
 *     rank has its own GPU, MPI staged through host memory when ranks share
 *     one (comm_choice.c); fitted to Hockney's alpha-beta model as the CPU
 *     profiler does (runtime/profiler.c);
 *   - the overlap of a GEMM with a collective: a loop of GEMMs on a stream of
 *     its own, alone and while the ranks all-reduce beside it on the
 *     communication stream (Galvatron's overlap coefficient);
 *   - the cost of a collective between compute phases (sync_overhead).
 *
 * Ranks that share a GPU (one H200 and two ranks) would halve each other's
 * compute figures, and a profile's rates are a device's: then rank 0 times
 * the compute alone while the others wait. Ranks with a GPU each time their
 * own at once and the figures are averaged. */
#include "../comm.h"
#include "cuda_device.h"

#include <dlfcn.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What is measured, in full and with --quick. */
typedef struct Sizes {
    int C, H, hd, F, T, V;     /* the layers' shape: hidden, heads, head size, FFN, tokens, vocabulary */
    int batches[4], n_batches; /* micro-batch sizes for the layers, sequences */
    int gemm_seqs;             /* sequences of T tokens in the GEMMs' rows */
    int reps;                  /* timed repetitions per point, after one warm-up */
    size_t stream;             /* bytes copied by the bandwidth test */
    size_t msg_min, msg_max;   /* collective message sizes, bytes, in steps of 4x */
    size_t overlap_msg;        /* the overlap test's all-reduce, bytes */
} Sizes;

/* GPT-2 small's shape (the llm.c configuration) unless the model gives one. */
static const Sizes full_sizes = {
    .C = 768,
    .H = 12,
    .hd = 64,
    .F = 3072,
    .T = 1024,
    .V = 50304,
    .batches = {1, 2, 4, 8},
    .n_batches = 4,
    .gemm_seqs = 4,
    .reps = 5,
    .stream = (size_t)256 << 20,
    .msg_min = 4096,
    .msg_max = (size_t)64 << 20,
    .overlap_msg = (size_t)64 << 20,
};
static const Sizes quick_sizes = {
    .C = 128,
    .H = 4,
    .hd = 32,
    .F = 512,
    .T = 64,
    .V = 1024,
    .batches = {1, 2, 4},
    .n_batches = 3,
    .gemm_seqs = 1,
    .reps = 2,
    .stream = (size_t)16 << 20,
    .msg_min = 4096,
    .msg_max = (size_t)1 << 20,
    .overlap_msg = (size_t)4 << 20,
};

/* The profiler's state: the world, what to measure, its own stream and
 * cuBLAS handle (the GEMM tests, apart from the runtime's streams), and
 * progress. */
typedef struct Prof {
    GrtComm *world;
    int rank, size;
    bool alone; /* ranks share a GPU: rank 0 times the compute alone */
    const Sizes *z;
    cudaStream_t side;
    cublasHandle_t blas;
    cudaEvent_t start, stop;
    int step, steps;
    double start_ms;
} Prof;

/* ---- timing ------------------------------------------------------------------------ */

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

typedef void (*Work)(Prof *p, void *ctx);

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Seconds per call of fn, on the device: events on stream s around `calls`
 * calls, the median of the repetitions after a warm-up, the ranks starting
 * each together. every: every rank runs fn (a collective), the figure the
 * ranks' mean; else, when ranks share the GPU, rank 0 alone, its figure. */
static double time_on(Prof *p, cudaStream_t s, bool every, Work fn, void *ctx, int calls) {
    bool run = every || !p->alone || p->rank == 0;
    double t[16];
    int reps = p->z->reps < 16 ? p->z->reps : 16;
    if (run) fn(p, ctx);
    CUDA_CHECK(cudaDeviceSynchronize());
    for (int r = 0; r < reps; r++) {
        grt_barrier(p->world);
        float ms = 0;
        if (run) {
            CUDA_CHECK(cudaEventRecord(p->start, s));
            for (int c = 0; c < calls; c++)
                fn(p, ctx);
            CUDA_CHECK(cudaEventRecord(p->stop, s));
            CUDA_CHECK(cudaEventSynchronize(p->stop));
            CUDA_CHECK(cudaEventElapsedTime(&ms, p->start, p->stop));
        }
        t[r] = ms * 1e-3 / calls;
    }
    qsort(t, (size_t)reps, sizeof *t, compare_doubles);
    double median = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
    grt_allreduce_double(p->world, &median, 1);
    return every || !p->alone ? median / p->size : median; /* shared: only rank 0's is not 0 */
}

/* ---- buffers ----------------------------------------------------------------------- */

/* n values normal(0, 1) from stream id into device memory at dst: floats, or
 * (bf16) their top halves, rounded to nearest. Filled from a host block of
 * at most 1M values, repeated. */
static void fill_random(void *dst, size_t n, bool bf16, uint64_t id) {
    enum { BLOCK = 1 << 20 };
    size_t m = n < BLOCK ? n : BLOCK, size = bf16 ? 2 : 4;
    float *x = grt_alloc(m * sizeof(float));
    grt_init_normal(x, 1, (int)m, NULL, 0, (int64_t)m, 1.0f, 1234, id);
    if (bf16) { /* in place: element i's two bytes over the first half */
        uint16_t *h = (uint16_t *)x;
        for (size_t i = 0; i < m; i++) {
            uint32_t u;
            memcpy(&u, &x[i], 4);
            h[i] = (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
        }
    }
    for (size_t at = 0; at < n; at += m) {
        size_t part = n - at < m ? n - at : m;
        CUDA_CHECK(cudaMemcpy((char *)dst + at * size, x, part * size, cudaMemcpyHostToDevice));
    }
    grt_free(x, m * sizeof(float));
}

/* n floats of the runtime's device arena, random from stream id. */
static float *device_random(size_t n, uint64_t id) {
    float *p = cuda_alloc(n * sizeof(float));
    fill_random(p, n, false, id);
    return p;
}

/* ---- GEMMs ---------------------------------------------------------------------------- */

/* One row-major GEMM as gemm.c runs it: C (M, N) = op(A) (M, K) @ op(B) (K, N). */
typedef struct Gemm {
    bool ta, tb;
    int M, N, K;
} Gemm;

/* The GEMMs of `gemms` at one arithmetic, on buffers a, b, c large enough for each. */
typedef struct GemmRun {
    const Gemm *g;
    int n;
    GrtGemmMath math;
    void *a, *b, *c;
} GemmRun;

static void run_gemms(Prof *p, void *ctx) {
    GemmRun *r = ctx;
    static const float one = 1.0f, zero = 0.0f;
    bool bf16 = r->math == GRT_GEMM_BF16;
    cudaDataType t = bf16 ? CUDA_R_16BF : CUDA_R_32F;
    cublasComputeType_t compute = r->math == GRT_GEMM_FP32   ? CUBLAS_COMPUTE_32F_PEDANTIC
                                  : r->math == GRT_GEMM_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                             : CUBLAS_COMPUTE_32F;
    for (int i = 0; i < r->n; i++) {
        const Gemm *g = &r->g[i];
        int lda = g->ta ? g->M : g->K, ldb = g->tb ? g->K : g->N; /* row-major: columns of the stored matrix */
        CUBLAS_CHECK(cublasGemmEx(p->blas, g->tb ? CUBLAS_OP_T : CUBLAS_OP_N, g->ta ? CUBLAS_OP_T : CUBLAS_OP_N, g->N,
                                  g->M, g->K, &one, r->b, t, ldb, r->a, t, lda, &zero, r->c, t, g->N, compute,
                                  CUBLAS_GEMM_DEFAULT));
    }
}

/* The model's GEMMs on N rows (tokens): out (N, OC) = inp (N, C) @ W (OC, C)^T,
 * dinp (N, C) = dout (N, OC) @ W, dW (OC, C) = dout^T @ inp, for the QKV,
 * attention output, MLP up and down projections and the LM head. */
static int model_gemms(const Sizes *z, int N, Gemm *out) {
    const int io[5][2] = {{z->C, (z->H * 3) * z->hd}, {z->H * z->hd, z->C}, {z->C, z->F}, {z->F, z->C}, {z->C, z->V}};
    int n = 0;
    for (int i = 0; i < 5; i++) {
        int C = io[i][0], OC = io[i][1];
        out[n++] = (Gemm){false, true, N, OC, C};
        out[n++] = (Gemm){false, false, N, C, OC};
        out[n++] = (Gemm){true, false, OC, C, N};
    }
    return n;
}

/* Per arithmetic: the rate over all the model's GEMMs into rates[], the best
 * single GEMM's (fp32 and bf16) into the profile's peaks. */
static void measure_gemms(Prof *p, GrtProfile *out) {
    Gemm g[15];
    int N = p->z->gemm_seqs * p->z->T, n = model_gemms(p->z, N, g);
    size_t most = 0; /* elements of the largest operand */
    for (int i = 0; i < n; i++) {
        size_t sizes[3] = {(size_t)g[i].M * g[i].K, (size_t)g[i].K * g[i].N, (size_t)g[i].M * g[i].N};
        for (int k = 0; k < 3; k++)
            most = sizes[k] > most ? sizes[k] : most;
    }
    void *buf[3];
    for (int k = 0; k < 3; k++)
        CUDA_CHECK(cudaMalloc(&buf[k], most * sizeof(float)));
    static const char *const names[] = {"fp32", "tf32", "bf16"};
    for (int m = GRT_GEMM_FP32; m <= GRT_GEMM_BF16; m++) {
        for (int k = 0; k < 2; k++)
            fill_random(buf[k], most, m == GRT_GEMM_BF16, 20 + (uint64_t)k);
        double flops = 0, seconds = 0, best = 0;
        for (int i = 0; i < n; i++) {
            GemmRun r = {&g[i], 1, (GrtGemmMath)m, buf[0], buf[1], buf[2]};
            double f = 2.0 * g[i].M * g[i].N * (double)g[i].K, s = time_on(p, p->side, false, run_gemms, &r, 3);
            flops += f, seconds += s;
            if (f / s > best) best = f / s;
        }
        out->gemm_rates[m] = flops / seconds;
        if (m == GRT_GEMM_FP32) out->gemm_flops = best;
        if (m == GRT_GEMM_BF16) out->bf16_flops = best;
        progress(p, "cuBLAS %s: %.1f TFLOP/s over the model's %d GEMMs (%d tokens), best %.1f", names[m],
                 out->gemm_rates[m] * 1e-12, n, N, best * 1e-12);
    }
    for (int k = 0; k < 3; k++)
        CUDA_CHECK(cudaFree(buf[k]));
}

/* ---- memory bandwidth ---------------------------------------------------------------- */

typedef struct CopyRun {
    void *dst, *src;
    size_t bytes;
} CopyRun;

static void run_copy(Prof *p, void *ctx) {
    CopyRun *c = ctx;
    CUDA_CHECK(cudaMemcpyAsync(c->dst, c->src, c->bytes, cudaMemcpyDeviceToDevice, p->side));
}

/* Bytes per second read and written by a device-to-device copy. */
static double measure_bandwidth(Prof *p) {
    CopyRun c = {NULL, NULL, p->z->stream};
    CUDA_CHECK(cudaMalloc(&c.dst, c.bytes));
    CUDA_CHECK(cudaMalloc(&c.src, c.bytes));
    double bw = 2.0 * (double)c.bytes / time_on(p, p->side, false, run_copy, &c, 3);
    CUDA_CHECK(cudaFree(c.dst));
    CUDA_CHECK(cudaFree(c.src));
    progress(p, "memory bandwidth: %.0f GB/s (a device copy of %.0f MiB, read and written)", bw * 1e-9,
             (double)c.bytes / (1 << 20));
    return bw;
}

/* ---- layers --------------------------------------------------------------------------- */

enum { RING_MAX = 8 };

/* A layer on the GPU with its inputs; its parameters and gradients a ring
 * of copies that passes twice the GPU's L2 cache between two uses of one
 * (a step runs every other layer between two calls of one). */
typedef struct LayerRun {
    GrtLayer layer;
    float *params[RING_MAX], *grads[RING_MAX];
    int n_ring, next;
    float *in, *out, *dout, *din;
    int32_t *tokens, *targets;
} LayerRun;

/* Copies of `bytes` that pass twice the L2 cache through it. */
static int ring_copies(size_t bytes) {
    int l2 = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, cuda.device));
    size_t n = bytes ? 2 * (size_t)l2 / bytes + 1 : 1;
    return n < RING_MAX ? (int)n : RING_MAX;
}

/* n int32 token ids below V from stream id, on the device. */
static int32_t *device_tokens(size_t n, int V, uint64_t id) {
    int32_t *h = grt_alloc(n * sizeof(int32_t)), *d = cuda_alloc(n * sizeof(int32_t));
    for (size_t i = 0; i < n; i++)
        h[i] = (int32_t)(grt_hash64(i + id * n) % (uint64_t)(V > 0 ? V : 1));
    CUDA_CHECK(cudaMemcpy(d, h, n * sizeof(int32_t), cudaMemcpyHostToDevice));
    grt_free(h, n * sizeof(int32_t));
    return d;
}

/* Layer s on this rank's TP group (NULL: TP 1) for B sequences, on the GPU:
 * the parameters initialized on the host as the program does, copied to
 * each copy of the ring. What it allocates stays in the arena (the runtime's
 * device memory is never freed; the profiler runs once). */
static void layer_open(LayerRun *r, const GrtLayerSpec *s, GrtComm *tp, int B, int T) {
    memset(r, 0, sizeof *r);
    grt_layer_setup(&r->layer, s, tp, B, T);
    size_t np = r->layer.n_params, work = grt_layer_work_floats(&r->layer), act = (size_t)B * T * (size_t)s->C;
    r->n_ring = ring_copies(2 * np * sizeof(float));
    for (int k = 0; k < r->n_ring; k++) {
        r->params[k] = cuda_alloc(np * sizeof(float));
        r->grads[k] = cuda_alloc(np * sizeof(float));
    }
    size_t area = grt_layer_ckpt_floats(&r->layer); /* bf16 kept activations' fp32 copy */
    grt_layer_bind(&r->layer, r->params[0], r->grads[0], 1, work ? cuda_alloc(work * sizeof(float)) : NULL,
                   area ? cuda_alloc(area * sizeof(float)) : NULL);
    float *host = grt_alloc(np * sizeof(float));
    r->layer.params = host;
    grt_layer_init(&r->layer, 1234, 0, 1);
    for (int k = 0; k < r->n_ring; k++)
        CUDA_CHECK(cudaMemcpy(r->params[k], host, np * sizeof(float), cudaMemcpyHostToDevice));
    grt_free(host, np * sizeof(float));
    r->layer.params = r->params[0];
    r->in = device_random(act, 5), r->dout = device_random(act, 6);
    r->out = cuda_alloc(act * sizeof(float)), r->din = cuda_alloc(act * sizeof(float));
    r->tokens = device_tokens((size_t)B * T, s->V, 1), r->targets = device_tokens((size_t)B * T, s->V, 2);
}

static void ring_next(LayerRun *r) {
    r->layer.params = r->params[r->next];
    r->layer.grads = r->grads[r->next];
    r->next = (r->next + 1) % r->n_ring;
}

/* The layer's forward: in (B, T, C) -> out. */
static void run_forward(Prof *p, void *ctx) {
    (void)p;
    LayerRun *r = ctx;
    ring_next(r);
    grt_layer_forward(&r->layer, r->in, r->tokens, r->targets, r->out);
}

/* Its backward from dout (the head: from a loss weight of 1 / tokens). */
static void run_backward(Prof *p, void *ctx) {
    (void)p;
    LayerRun *r = ctx;
    ring_next(r);
    grt_layer_backward(&r->layer, r->in, r->tokens, r->targets, r->dout, 1.0f / (float)(r->layer.B * r->layer.T),
                       r->din);
}

static const char *const layer_names[] = {
    [GRT_EMBEDDING] = "embedding", [GRT_BLOCK] = "block", [GRT_NORM] = "norm", [GRT_HEAD] = "head"};

/* Fit layer kind s's forward and backward times over the micro-batch sizes at TP degree tp. */
static GrtProfileLayer measure_layer(Prof *p, const GrtLayerSpec *s, GrtComm *group, int tp) {
    const Sizes *z = p->z;
    double work[4], bwd_work[4], fwd[4], bwd[4];
    bool flops = s->kind == GRT_BLOCK || s->kind == GRT_HEAD;
    for (int i = 0; i < z->n_batches; i++) {
        LayerRun r;
        layer_open(&r, s, group, z->batches[i], z->T);
        work[i] = grt_profile_layer_work(s, tp, z->batches[i], z->T);
        bwd_work[i] = flops ? 2 * work[i] : work[i];
        fwd[i] = time_on(p, cuda.compute, tp > 1, run_forward, &r, 1);
        bwd[i] = time_on(p, cuda.compute, tp > 1, run_backward, &r, 1);
    }
    GrtProfileLayer l = {s->kind, tp, grt_profile_fit(work, fwd, z->n_batches),
                         grt_profile_fit(bwd_work, bwd, z->n_batches)};
    const char *unit = flops ? "TFLOP/s" : "TB/s";
    progress(p, "%s, tp %d: forward %.2f %s + %.0f us, backward %.2f %s + %.0f us (batch %d-%d x %d tokens)",
             layer_names[s->kind], tp, l.forward.rate * 1e-12, unit, l.forward.fixed_s * 1e6, l.backward.rate * 1e-12,
             unit, l.backward.fixed_s * 1e6, z->batches[0], z->batches[z->n_batches - 1], z->T);
    return l;
}

/* A GPT-2-style model's layer of kind `kind` at the profiled shape. */
static GrtLayerSpec layer_spec(const Sizes *z, GrtLayerKind kind) {
    GrtLayerSpec s = {.kind = kind,
                      .name = layer_names[kind],
                      .C = z->C,
                      .H = z->H,
                      .KVH = z->H,
                      .hd = z->hd,
                      .F = z->F,
                      .V = z->V,
                      .causal = 1,
                      .pre_norm = 1,
                      .bias = 1,
                      .eps = 1e-5f};
    if (kind == GRT_EMBEDDING) s.positions = z->T;
    return s;
}

/* ---- collectives ------------------------------------------------------------------------ */

/* A collective on a window moving along device rings larger than the L2 cache. */
typedef struct CollRun {
    GrtComm *comm;
    GrtProfileOp op;
    float *in0, *out0;
    size_t span, stride, at, n; /* floats: the rings', a window's, where the next starts, per call */
    int peer, lower;            /* p2p */
} CollRun;

/* One call of the collective (p2p: one round trip, halved by the caller). */
static void run_collective(Prof *p, void *ctx) {
    (void)p;
    CollRun *c = ctx;
    if (c->at + c->stride > c->span) c->at = 0;
    float *in = c->in0 + c->at, *out = c->out0 + c->at;
    c->at += c->stride;
    switch (c->op) {
    case GRT_OP_ALLREDUCE: grt_allreduce(c->comm, in, c->n); break;
    case GRT_OP_ALLGATHER: grt_allgather(c->comm, in, out, c->n); break;
    case GRT_OP_REDUCESCATTER: grt_reduce_scatter(c->comm, in, out, c->n); break;
    case GRT_OP_P2P:
        if (c->lower) {
            grt_send(c->comm, in, c->n, c->peer, 1);
            grt_recv(c->comm, out, c->n, c->peer, 2);
        } else {
            grt_recv(c->comm, out, c->n, c->peer, 1);
            grt_send(c->comm, in, c->n, c->peer, 2);
        }
        break;
    }
}

static const char *const op_names[] = {[GRT_OP_ALLREDUCE] = "allreduce",
                                       [GRT_OP_ALLGATHER] = "allgather",
                                       [GRT_OP_REDUCESCATTER] = "reducescatter",
                                       [GRT_OP_P2P] = "p2p"};

/* Fit op over comm (g ranks) to latency + bytes / bandwidth over the message
 * sizes (NCCL's: the all-reduced buffer, the all-gather's output, the
 * reduce-scatter's input, the p2p message); peer >= 0: p2p with that rank. */
static GrtProfileCollective measure_collective(Prof *p, GrtProfileOp op, GrtComm *comm, int g, int consecutive,
                                               int peer, float *in, float *out, size_t span) {
    double bytes[16], t[16];
    int n = 0;
    for (size_t S = p->z->msg_min; S <= p->z->msg_max && n < 16; S *= 4, n++) {
        size_t floats = S / sizeof(float);
        CollRun c = {.comm = comm,
                     .op = op,
                     .in0 = in,
                     .out0 = out,
                     .span = span,
                     .stride = floats,
                     .n = op == GRT_OP_ALLGATHER || op == GRT_OP_REDUCESCATTER ? floats / g : floats,
                     .peer = peer,
                     .lower = p->rank < peer};
        int calls = S >= (1 << 20) ? 1 : (int)((1 << 20) / S) < 32 ? (int)((1 << 20) / S) : 32;
        bytes[n] = (double)S;
        t[n] = time_on(p, cuda.compute, true, run_collective, &c, calls) * (op == GRT_OP_P2P ? 0.5 : 1);
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

/* Every group size and nesting, each collective; p2p between g stages of N/g ranks. */
static void measure_collectives(Prof *p, GrtProfile *out) {
    int N = p->size;
    int l2 = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, cuda.device));
    size_t span = (2 * (size_t)l2 / p->z->msg_max + 1) * p->z->msg_max / sizeof(float);
    float *in = device_random(span, 10), *buf = cuda_alloc(span * sizeof(float));
    for (int g = 2; g <= N; g *= 2) {
        GrtComm *groups[2] = {grt_comm_split(p->world, p->rank / g, p->rank),
                              g < N ? grt_comm_split(p->world, p->rank % (N / g), p->rank) : NULL};
        for (int op = GRT_OP_ALLREDUCE; op <= GRT_OP_REDUCESCATTER; op++)
            for (int consec = 1; consec >= 0; consec--) {
                if (!groups[!consec] || out->n_collectives >= GRT_PROFILE_MAX_ENTRIES) continue;
                GrtProfileCollective c =
                    measure_collective(p, (GrtProfileOp)op, groups[!consec], g, consec, -1, in, buf, span);
                out->collectives[out->n_collectives++] = c;
                if (op == GRT_OP_ALLREDUCE && consec && g == N) {
                    out->link_bandwidth = c.bus_bandwidth;
                    out->link_latency_s = c.latency_s / (2.0 * (g - 1)); /* 2 (g-1) ring steps */
                }
            }
        if (out->n_collectives < GRT_PROFILE_MAX_ENTRIES)
            out->collectives[out->n_collectives++] =
                measure_collective(p, GRT_OP_P2P, p->world, g, 1, p->rank ^ (N / g), in, buf, span);
    }
}

/* ---- a collective between compute; overlap ---------------------------------------------- */

/* A GEMM on the compute stream, an all-gather of 128 KiB a rank, or one then the other. */
typedef struct SyncRun {
    GemmRun g;
    float *in, *out;
    size_t n;
    int gemm, gather;
} SyncRun;

static void run_sync(Prof *p, void *ctx) {
    SyncRun *s = ctx;
    if (s->gemm) run_gemms(p, &s->g);
    if (s->gather) grt_allgather(p->world, s->in, s->out, s->n);
}

/* Seconds a blocking collective costs between compute phases beyond the two
 * timed apart (the profile's sync_overhead), as profiler.c measures it. */
static double measure_sync(Prof *p) {
    static const Gemm g = {false, true, 512, 512, 512};
    size_t part = 32768;
    SyncRun s = {{&g, 1, GRT_GEMM_FP32, device_random(512 * 512, 30), device_random(512 * 512, 31),
                  cuda_alloc(512 * 512 * sizeof(float))},
                 device_random(part, 32),
                 cuda_alloc(part * (size_t)p->size * sizeof(float)),
                 part,
                 1,
                 0};
    CUBLAS_CHECK(cublasSetStream(p->blas, cuda.compute)); /* the GEMM where the collectives order with it */
    double gemm = time_on(p, cuda.compute, true, run_sync, &s, 20);
    s.gemm = 0, s.gather = 1;
    double gather = time_on(p, cuda.compute, true, run_sync, &s, 20);
    s.gemm = 1;
    double both = time_on(p, cuda.compute, true, run_sync, &s, 20);
    CUBLAS_CHECK(cublasSetStream(p->blas, p->side));
    double sync = both - gemm - gather;
    progress(p, "meeting cost: %.1f us per collective between compute (GEMM %.1f us, all-gather %.1f us, both %.1f us)",
             (sync > 0 ? sync : 0) * 1e6, gemm * 1e6, gather * 1e6, both * 1e6);
    return sync > 0 ? sync : 0;
}

enum { OVERLAP_GEMMS = 20 }; /* GEMMs a timing of the overlap test */

/* The median over the repetitions of OVERLAP_GEMMS GEMMs r on the side
 * stream, queued, then `count` all-reduces c run beside them: seconds a
 * GEMM beside the traffic over seconds alone, at least 1. */
static double overlap_ratio(Prof *p, GemmRun *r, CollRun *c, int count, double alone) {
    double ratio[16];
    int reps = p->z->reps < 16 ? p->z->reps : 16;
    for (int i = 0; i < reps; i++) {
        grt_barrier(p->world);
        CUDA_CHECK(cudaEventRecord(p->start, p->side));
        for (int k = 0; k < OVERLAP_GEMMS; k++)
            run_gemms(p, r);
        CUDA_CHECK(cudaEventRecord(p->stop, p->side));
        for (int k = 0; k < count; k++)
            run_collective(p, c);
        float ms;
        CUDA_CHECK(cudaEventSynchronize(p->stop));
        CUDA_CHECK(cudaEventElapsedTime(&ms, p->start, p->stop));
        ratio[i] = ms * 1e-3 / OVERLAP_GEMMS / alone;
    }
    qsort(ratio, (size_t)reps, sizeof *ratio, compare_doubles);
    double slow = reps % 2 ? ratio[reps / 2] : 0.5 * (ratio[reps / 2 - 1] + ratio[reps / 2]);
    return slow < 1 ? 1 : slow; /* overlap cannot speed compute up: below 1 is noise */
}

/* The model's MLP-up GEMM in bf16 on the side stream, alone and while the
 * ranks all-reduce overlap_msg bytes on the communication stream (enough of
 * them to outlast the GEMMs); the ratio of their times, the ranks' mean. */
static double measure_overlap(Prof *p) {
    const Sizes *z = p->z;
    Gemm g = {false, true, z->gemm_seqs * z->T, z->F, z->C};
    GemmRun r = {&g, 1, GRT_GEMM_BF16, NULL, NULL, NULL};
    size_t most = (size_t)g.M * (g.N > g.K ? g.N : g.K), floats = z->overlap_msg / sizeof(float);
    void **bufs[3] = {&r.a, &r.b, &r.c};
    for (int k = 0; k < 3; k++)
        CUDA_CHECK(cudaMalloc(bufs[k], most * 2)); /* bf16 */
    fill_random(r.a, most, true, 40), fill_random(r.b, most, true, 41);
    CollRun c = {.comm = p->world, .op = GRT_OP_ALLREDUCE, .span = floats, .stride = floats, .n = floats, .peer = -1};
    c.in0 = c.out0 = device_random(floats, 42);
    double alone = time_on(p, p->side, true, run_gemms, &r, OVERLAP_GEMMS);
    double ar = time_on(p, cuda.compute, true, run_collective, &c, 1);
    float count = (float)ceil(1.5 * OVERLAP_GEMMS * alone / (ar > 0 ? ar : 1e-9));
    count = count < 2 ? 2 : count > 1000 ? 1000 : count;
    grt_broadcast(p->world, &count, 1, 0); /* rank 0's count for all */
    double slow = overlap_ratio(p, &r, &c, (int)count, alone);
    grt_allreduce_double(p->world, &slow, 1);
    slow /= p->size;
    for (int k = 0; k < 3; k++)
        CUDA_CHECK(cudaFree(*bufs[k]));
    progress(p, "overlap: the bf16 %dx%dx%d GEMM runs %.2fx slower beside %.0f all-reduces of %.0f MiB", g.M, g.N, g.K,
             slow, (double)count, (double)z->overlap_msg / (1 << 20));
    return slow;
}

/* ---- the whole profile ------------------------------------------------------------------- */

/* The device kind (ir.h's DEVICE_KINDS names) of the GPU, or NULL. */
static const char *device_kind(const struct cudaDeviceProp *d) {
    if (strstr(d->name, "H200")) return "h200";
    if (strstr(d->name, "H100")) return "h100_sxm";
    if (strstr(d->name, "A100")) return d->totalGlobalMem > ((size_t)60 << 30) ? "a100_80gb" : "a100_40gb";
    return NULL;
}

/* The kernels' target: the model's (the shared library galvc profile built
 * from it, dlopened: its stubs call grt_cuda_launch in this executable), or
 * one with no kernels (an empty PTX module) when no model was given. */
static const GrtTarget *kernels_target(const char *path) {
    static const GrtTarget none = {"cuda", grt_cuda_start, ".version 7.8\n.target sm_80\n.address_size 64\n", 0, NULL};
    if (!path) return &none;
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    const GrtTarget *t = lib ? dlsym(lib, "galvc_target") : NULL;
    const GrtKernelTable *k = lib ? dlsym(lib, "galvc_kernels") : NULL;
    if (!t || !k) {
        char msg[600];
        snprintf(msg, sizeof msg, "cannot use the kernels in '%s': %s", path, dlerror());
        grt_abort(msg, 1);
    }
    grt_kernels_use(k);
    return t;
}

/* This rank's GPU started (the runtime's device, arena, streams, kernels and
 * collectives), or a clear refusal and exit 1 without one. */
static void start_gpu(Prof *p, const char *kernels, GrtProfile *out) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        fprintf(stderr, "galvc profile: error: --target cuda: rank %d finds no CUDA device (cudaGetDeviceCount: %s)\n",
                p->rank, e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
        exit(1);
    }
    const GrtTarget *t = kernels_target(kernels);
    grt_dev = grt_cuda_start(t, p->rank);
    struct cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, cuda.device));
    out->device = device_kind(&prop);
    if (!out->device) {
        fprintf(stderr,
                "galvc profile: error: --target cuda: the GPU '%s' is none of the device kinds galvc "
                "knows (a100_40gb, a100_80gb, h100_sxm, h200)\n",
                prop.name);
        exit(1);
    }
    int version = 0;
    CUBLAS_CHECK(cublasGetVersion(cuda.blas, &version));
    snprintf(out->blas, sizeof out->blas, "cuBLAS %d.%d.%d on %.96s", version / 10000, version / 100 % 100,
             version % 100, prop.name);
    double shared = n < grt_local_ranks(p->size); /* more ranks on the node than GPUs */
    grt_allreduce_double(p->world, &shared, 1);
    p->alone = shared > 0;
    CUDA_CHECK(cudaStreamCreateWithFlags(&p->side, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreate(&p->start));
    CUDA_CHECK(cudaEventCreate(&p->stop));
    CUBLAS_CHECK(cublasCreate(&p->blas));
    CUBLAS_CHECK(cublasSetStream(p->blas, p->side));
}

/* The TP degrees the layers are timed at: up to the ranks and the heads,
 * and only 1 when ranks share a GPU (their TP would share it too). */
static int tp_degrees(const Prof *p) {
    int n = 0;
    for (int tp = 1; tp <= p->size && tp <= p->z->H && (tp == 1 || !p->alone); tp *= 2)
        n++;
    return n;
}

/* The embedding, block, norm and head at each TP degree (groups of
 * consecutive ranks), then the GEMM efficiency: the runtime's layers compute
 * in fp32, so the block's rate over the best fp32 GEMM. */
static void measure_layers(Prof *p, GrtProfile *out) {
    static const GrtLayerKind kinds[] = {GRT_EMBEDDING, GRT_BLOCK, GRT_NORM, GRT_HEAD};
    for (int tp = 1, i = 0; i < tp_degrees(p); tp *= 2, i++) {
        GrtComm *group = tp > 1 ? grt_comm_split(p->world, p->rank / tp, p->rank) : NULL;
        for (int k = 0; k < 4 && out->n_layers < GRT_PROFILE_MAX_ENTRIES; k++) {
            GrtLayerSpec s = layer_spec(p->z, kinds[k]);
            out->layers[out->n_layers++] = measure_layer(p, &s, group, tp);
        }
    }
    for (int i = 0; i < out->n_layers; i++) {
        const GrtProfileLayer *l = &out->layers[i];
        if (l->kind != GRT_BLOCK || l->tp != 1) continue;
        double rate = 3 / (1 / l->forward.rate + 2 / l->backward.rate), eff = rate / out->gemm_flops;
        out->gemm_efficiency = eff > 1 ? 1 : eff;
    }
}

/* Every measurement in turn, on every rank (galvrt_cuda.h). */
void grt_cuda_profile(GrtComm *world, int quick, const GrtProfileShape *shape, const char *kernels, GrtProfile *out) {
    Sizes z = quick ? quick_sizes : full_sizes;
    if (shape) z.C = shape->C, z.H = shape->H, z.hd = shape->hd, z.F = shape->F, z.T = shape->T, z.V = shape->V;
    Prof p = {.world = world, .rank = grt_rank(world), .size = grt_size(world), .z = &z, .start_ms = grt_now_ms()};
    int N = p.size;
    if (N & (N - 1)) grt_abort("profiler: the rank count must be a power of two", 2);
    memset(out, 0, sizeof *out);
    out->ranks = N;
    start_gpu(&p, kernels, out);
    p.steps = 4 + (kernels ? 4 * tp_degrees(&p) : 0) + (N > 1 ? 2 : 0);
    for (int g = 2; g <= N; g *= 2)
        p.steps += 3 * (g < N ? 2 : 1) + 1;
    if (p.rank == 0)
        fprintf(stderr, "galvc profile: %s; %d rank%s%s\n", out->blas, N, N > 1 ? "s" : "",
                p.alone ? ", sharing the GPU: rank 0 times the compute alone" : "");
    measure_gemms(&p, out);
    out->mem_bandwidth = measure_bandwidth(&p);
    if (kernels) measure_layers(&p, out);
    if (!out->n_layers) { /* no layers timed: the model's GEMMs together against the best one */
        double eff = out->gemm_rates[GRT_GEMM_FP32] / out->gemm_flops;
        out->gemm_efficiency = eff > 1 ? 1 : eff;
    }
    measure_collectives(&p, out);
    if (N > 1) out->sync_overhead_s = measure_sync(&p);
    if (N > 1) out->overlap_slowdown = measure_overlap(&p);
    CUDA_CHECK(cudaDeviceSynchronize());
}
