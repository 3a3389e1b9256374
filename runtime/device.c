/* device.c — the host as the device the layers run on (galvrt.h, "where the
 * training buffers live"): buffers from the tracked allocator, GEMMs and
 * attention through OpenBLAS (kernels.c), and the plain loops the layers
 * ran inline before the GPU target existed, unchanged, so a CPU run's
 * arithmetic is the same as ever. The CUDA target's device is
 * runtime/cuda/. */
#include "galvrt.h"

#include <string.h>

const GrtDevice *grt_dev = &grt_device_cpu;

static void *cpu_alloc(size_t bytes) { return grt_alloc(bytes); }

static void cpu_zero(void *p, size_t bytes) { memset(p, 0, bytes); }

static void cpu_copy(void *dst, const void *src, size_t bytes) { memmove(dst, src, bytes); }

/* dst (rows, cols), stride dld = src (rows, cols), stride sld */
static void cpu_copy_rows(float *dst, size_t dld, const float *src, size_t sld, size_t cols, size_t rows) {
    for (size_t i = 0; i < rows; i++) memcpy(dst + i * dld, src + i * sld, sizeof(float) * cols);
}

static void cpu_zero_rows(float *dst, size_t ld, size_t cols, size_t rows) {
    for (size_t i = 0; i < rows; i++) memset(dst + i * ld, 0, sizeof(float) * cols);
}

/* dst += src, n elements */
static void cpu_add(float *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}

/* grt_attention_forward_dropout without dropout; under mixed precision
 * (m) the probabilities rounded in place, and their bits into m->att (by
 * the generated bf16_keep of T columns where there is one) */
static void cpu_attention_forward(float *out, float *att, const float *qkv, const GrtAtt16 *m, int B, int T, int H,
                                  int KVH, int hd, int causal, GrtAttSoftmaxFwdFn *sm) {
    grt_attention_forward_dropout(out, att, qkv, B, T, H, KVH, hd, causal, sm, NULL, m != NULL);
    if (!m || !m->att) return;
    GrtBf16KeepFn *keep = (GrtBf16KeepFn *)grt_kernel_find(GRT_K_BF16_KEEP, T, 0);
    if (keep) keep((int64_t)B * H * T, m->att, att);
    else grt_bf16_round(m->att, att, (size_t)B * H * T * T, 0);
}

/* grt_attention_backward_in, under mixed precision (m) on the host's rounded floats: the probabilities
 * widened into att from their kept bits first (by the generated bf16_widen of T columns where there is one) */
static void cpu_attention_backward(float *dqkv, float *dout, const float *qkv, float *att, const GrtAtt16 *m,
                                   int B, int T, int H, int KVH, int hd, int causal, GrtAttSoftmaxBwdFn *sm,
                                   float *dp) {
    if (m && m->att) {
        GrtBf16WidenFn *widen = (GrtBf16WidenFn *)grt_kernel_find(GRT_K_BF16_WIDEN, T, 0);
        if (widen) widen((int64_t)B * H * T, att, m->att);
        else grt_bf16_widen(att, m->att, (size_t)B * H * T * T);
    }
    grt_attention_backward_in(dqkv, dout, qkv, att, B, T, H, KVH, hd, causal, sm, dp, m != NULL);
}

/* out (N, C) += bias (C) on every row */
static void cpu_add_bias(float *out, const float *bias, int N, int C) {
    for (int i = 0; i < N; i++)
        for (int c = 0; c < C; c++) out[(size_t)i * C + c] += bias[c];
}

/* dbias (C) += column sums of dout (N, C) */
static void cpu_bias_grad(float *dbias, const float *dout, int N, int C) {
    for (int i = 0; i < N; i++)
        for (int c = 0; c < C; c++) dbias[c] += dout[(size_t)i * C + c];
}

static void cpu_finish(void) {} /* the host's work is done when its calls return */

static void *cpu_host_alloc(size_t bytes) { return grt_alloc(bytes); }

const GrtDevice grt_device_cpu = {
    .name = "cpu",
    .host_memory = 1,
    .alloc = cpu_alloc,
    .peak_bytes = grt_peak_bytes,
    .zero = cpu_zero,
    .copy = cpu_copy,
    .copy_rows = cpu_copy_rows,
    .zero_rows = cpu_zero_rows,
    .to_device = cpu_copy,
    .to_host = cpu_copy,
    .to_host_later = cpu_copy,
    .host_alloc = cpu_host_alloc,
    .finish = cpu_finish,
    .add = cpu_add,
    .add_bias = cpu_add_bias,
    .bias_grad = cpu_bias_grad,
    .matmul_forward = grt_matmul_forward,
    .matmul_backward = grt_matmul_backward,
    .matmul16_forward = grt_matmul16_forward,
    .matmul16_backward = grt_matmul16_backward,
    .attention_forward = cpu_attention_forward,
    .attention_backward = cpu_attention_backward,
};
