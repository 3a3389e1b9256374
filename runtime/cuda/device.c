/* device.c — the CUDA target's device (galvrt.h, GrtDevice): the rank's
 * GPU started once, its memory in an arena, its streams, and the copies
 * and zeroing the layers ask for. Everything runs in order on the compute
 * stream; a copy to the host returns when its bytes are there (to_host_later's
 * when finish returns), a copy from it at once (staged in pinned memory).
 *
 * The arena: the run's buffers are all allocated while the program sets up
 * its stage (the plan's sizes), from chunks of device memory reserved with
 * cudaMalloc and never returned, so a step allocates nothing and there is
 * no caching allocator. Its peak is the bytes handed out, counted as
 * grt_alloc counts the host's, so the end-of-run report compares the same
 * figure with the plan's. */
#include "cuda_device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

CudaState cuda;

enum { ARENA_CHUNK = 64 << 20, ARENA_ALIGN = 256 }; /* bytes: a chunk at least; cudaMalloc's alignment */

enum { ARENA_MAX_CHUNKS = 4096 }; /* 256 GiB of the smallest chunks */

static struct {
    char *at;            /* the current chunk's free space */
    size_t left;         /* bytes left in it */
    int64_t handed_out;  /* bytes asked for, the peak (nothing is freed) */
    int n;               /* chunks reserved */
    struct {
        const char *base;
        size_t bytes;
    } chunk[ARENA_MAX_CHUNKS]; /* for cuda_on_device */
} arena;

void cuda_fail(const char *call, const char *error, const char *file, int line) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s failed: %s (%s:%d)", call, error, file, line);
    grt_abort(msg, 1);
}

void *cuda_alloc(size_t bytes) {
    size_t rounded = (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    if (rounded > arena.left) { /* a new chunk; the rest of the old one stays unused */
        size_t chunk = rounded > ARENA_CHUNK ? rounded : ARENA_CHUNK;
        void *p = NULL;
        if (arena.n == ARENA_MAX_CHUNKS) grt_abort("the device memory arena has too many chunks", 1);
        CUDA_CHECK(cudaMalloc(&p, chunk));
        CUDA_CHECK(cudaMemsetAsync(p, 0, chunk, cuda.compute));
        arena.chunk[arena.n].base = p, arena.chunk[arena.n++].bytes = chunk;
        arena.at = p, arena.left = chunk;
    }
    void *p = arena.at;
    arena.at += rounded, arena.left -= rounded;
    arena.handed_out += (int64_t)bytes;
    return p;
}

int cuda_on_device(const void *p) {
    const char *c = p;
    for (int i = 0; i < arena.n; i++)
        if (c >= arena.chunk[i].base && c < arena.chunk[i].base + arena.chunk[i].bytes) return 1;
    return 0;
}

static void *device_alloc(size_t bytes) { return cuda_alloc(bytes); }

static int64_t device_peak_bytes(void) { return arena.handed_out; }

static void device_zero(void *p, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, cuda.compute));
}

static void device_copy(void *dst, const void *src, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cuda.compute));
}

/* dst (rows, cols), row stride dld = src (rows, cols), row stride sld; floats */
static void device_copy_rows(float *dst, size_t dld, const float *src, size_t sld, size_t cols, size_t rows) {
    if (!rows || !cols) return;
    CUDA_CHECK(cudaMemcpy2DAsync(dst, dld * sizeof(float), src, sld * sizeof(float), cols * sizeof(float), rows,
                                 cudaMemcpyDeviceToDevice, cuda.compute));
}

static void device_zero_rows(float *dst, size_t ld, size_t cols, size_t rows) {
    if (!rows || !cols) return;
    CUDA_CHECK(cudaMemset2DAsync(dst, ld * sizeof(float), 0, cols * sizeof(float), rows, cuda.compute));
}

/* Copies from the host go through a ring of pinned staging slots: the
 * bytes are copied into the next slot on the host, then over on the compute
 * stream, and the host goes on; a slot is taken again once the copy from it
 * is done (its event), STAGE_SLOTS copies later. So a micro-batch's tokens
 * and targets cross without the host waiting for the GPU to drain. */
enum { STAGE_SLOT = 1 << 20, STAGE_SLOTS = 16 }; /* bytes a slot; slots */

static struct {
    char *ring;                     /* STAGE_SLOTS x STAGE_SLOT bytes, pinned */
    cudaEvent_t done[STAGE_SLOTS];  /* the copy from each slot */
    int used[STAGE_SLOTS], next;
} stage;

static void stage_start(void) {
    CUDA_CHECK(cudaMallocHost((void **)&stage.ring, (size_t)STAGE_SLOTS * STAGE_SLOT));
    for (int s = 0; s < STAGE_SLOTS; s++) CUDA_CHECK(cudaEventCreateWithFlags(&stage.done[s], cudaEventDisableTiming));
}

/* From the host; the host's buffer may be reused at once: small copies
 * staged (above), larger ones (parameters at start, checkpoints) waited for. */
static void device_to_device(void *dst, const void *src, size_t bytes) {
    if (!bytes) return;
    if (bytes > STAGE_SLOT) {
        CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cuda.compute));
        CUDA_CHECK(cudaStreamSynchronize(cuda.compute));
        return;
    }
    int s = stage.next;
    stage.next = (s + 1) % STAGE_SLOTS;
    if (stage.used[s]) CUDA_CHECK(cudaEventSynchronize(stage.done[s]));
    char *slot = stage.ring + (size_t)s * STAGE_SLOT;
    memcpy(slot, src, bytes);
    CUDA_CHECK(cudaMemcpyAsync(dst, slot, bytes, cudaMemcpyHostToDevice, cuda.compute));
    CUDA_CHECK(cudaEventRecord(stage.done[s], cuda.compute));
    stage.used[s] = 1;
}

/* To the host, after everything before it on the compute stream. */
static void device_to_host(void *dst, const void *src, size_t bytes) {
    if (!bytes) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cuda.compute));
    CUDA_CHECK(cudaStreamSynchronize(cuda.compute));
}

/* To the host after the work queued so far, without waiting: into pinned
 * memory (device_host_alloc's), where it is there once finish returns. */
static void device_to_host_later(void *dst, const void *src, size_t bytes) {
    if (bytes) CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cuda.compute));
}

/* Pinned host memory (the copies above need it to run without the host waiting), kept for the run. */
static void *device_host_alloc(size_t bytes) {
    void *p = NULL;
    CUDA_CHECK(cudaMallocHost(&p, bytes ? bytes : 1));
    return p;
}

/* Every kernel and copy queued so far, done (the communication stream's calls return done). */
static void device_finish(void) { CUDA_CHECK(cudaStreamSynchronize(cuda.compute)); }

static const GrtDevice device_cuda = {
    .name = "cuda",
    .host_memory = 0,
    .alloc = device_alloc,
    .peak_bytes = device_peak_bytes,
    .zero = device_zero,
    .copy = device_copy,
    .copy_rows = device_copy_rows,
    .zero_rows = device_zero_rows,
    .to_device = device_to_device,
    .to_host = device_to_host,
    .to_host_later = device_to_host_later,
    .host_alloc = device_host_alloc,
    .finish = device_finish,
    .add = cuda_add,
    .add_bias = cuda_add_bias,
    .bias_grad = cuda_bias_grad,
    .matmul_forward = cuda_matmul_forward,
    .matmul_backward = cuda_matmul_backward,
    .matmul16_forward = cuda_matmul16_forward,
    .matmul16_backward = cuda_matmul16_backward,
    .attention_forward = cuda_attention_forward,
    .attention_backward = cuda_attention_backward,
};

/* The communication stream waits for what the compute stream has queued
 * (a gradient before its reduction), and the other way round. */
void cuda_comm_waits_compute(void) {
    CUDA_CHECK(cudaEventRecord(cuda.computed, cuda.compute));
    CUDA_CHECK(cudaStreamWaitEvent(cuda.comm, cuda.computed, 0));
}

void cuda_compute_waits_comm(void) {
    CUDA_CHECK(cudaEventRecord(cuda.communicated, cuda.comm));
    CUDA_CHECK(cudaStreamWaitEvent(cuda.compute, cuda.communicated, 0));
}

/* This rank's place among the ranks of its node, as the launcher says (Open MPI, MPICH, Slurm), else rank. */
static int local_rank(int rank) {
    static const char *const names[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = getenv(names[i]);
        if (v && *v) return atoi(v);
    }
    return rank;
}

/* No GPU to run on: say why on this rank and exit 77 (a skipped test), waiting for no other rank. */
static _Noreturn void no_device(int rank, const char *what, cudaError_t e) {
    fprintf(stderr, "galvrt: rank %d: %s (cudaGetDeviceCount: %s: %s); this program was built for the CUDA target\n",
            rank, what, cudaGetErrorName(e), cudaGetErrorString(e));
    fflush(stderr);
    exit(77);
}

const GrtDevice *grt_cuda_start(const GrtTarget *t, int rank) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e == cudaErrorNoDevice || (e == cudaSuccess && n == 0)) no_device(rank, "no CUDA device", e);
    if (e != cudaSuccess) no_device(rank, "no CUDA driver", e);
    cuda.device = local_rank(rank) % n; /* ranks sharing a node take its GPUs in turn */
    CUDA_CHECK(cudaSetDevice(cuda.device));
    CUDA_CHECK(cudaStreamCreateWithFlags(&cuda.compute, cudaStreamNonBlocking));
    CUDA_CHECK(cudaStreamCreateWithFlags(&cuda.comm, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreateWithFlags(&cuda.computed, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&cuda.communicated, cudaEventDisableTiming));
    stage_start();
    cuda_blas_start();
    cuda_module_load(t);
    cuda_comm_start(rank);
    return &device_cuda;
}
