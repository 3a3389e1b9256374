/* cuda_attention_gemms.c — the CUDA attention's GEMM table
 * (runtime/cuda/attention_gemms.c), without a GPU: each GEMM run as cuBLAS
 * would run it, member by member through cblas, with the softmax's
 * reference rows between the phases as the generated kernels run them (one
 * call over all B H T rows forward, over a sequence's H T rows backward);
 * the output, probabilities and input gradients against the host's
 * attention (runtime/kernels.c) on MHA and GQA, causal or not, in fp32
 * and in mixed precision on the operands' bf16 bits. */
#include "../unit/check.h"
#include "cuda_device.h"

#include <cblas.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Phase ph's GEMMs (of sequence b) on buf, through cblas; bf16: every
 * operand named as bits (given here widened: the same element offsets),
 * never mixed with fp32 ones, the outputs fp32. */
static void run_phase(CudaAttPhase ph, int b, float *const buf[CUDA_ATT_BUFS], int bf16, int B, int T, int H, int KVH,
                      int hd) {
    for (int i = 0; i < cuda_attention_gemm_count(ph, H, KVH); i++) {
        CudaAttGemm g = cuda_attention_gemm(ph, i, b, B, T, H, KVH, hd, bf16);
        CHECK_EQ(cuda_attention_buf_bytes(g.a.buf), bf16 ? 2 : 4);
        CHECK_EQ(cuda_attention_buf_bytes(g.b.buf), bf16 ? 2 : 4);
        CHECK(cuda_attention_buf_bytes(g.c.buf) == 4 && buf[g.a.buf] && buf[g.b.buf]);
        for (int m = 0; m < g.batch; m++)
            cblas_sgemm(CblasRowMajor, g.ta ? CblasTrans : CblasNoTrans, g.tb ? CblasTrans : CblasNoTrans, g.M, g.N,
                        g.K, g.alpha, buf[g.a.buf] + g.a.off + m * g.a.stride, g.a.ld,
                        buf[g.b.buf] + g.b.off + m * g.b.stride, g.b.ld, g.beta,
                        buf[g.c.buf] + g.c.off + m * g.c.stride, g.c.ld);
    }
}

/* The largest |a - b| over n floats; infinite where either is NaN. */
static double worst(const float *a, const float *b, size_t n) {
    double w = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (isnan(d)) return INFINITY;
        if (d > w) w = d;
    }
    return w;
}

static float *random_buf(size_t n) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; p && i < n; i++)
        p[i] = (float)rand() / RAND_MAX * 2 - 1;
    return p;
}

/* As the GPU rounds an operand (bf16_keep): x rounded in place, and its
 * bits, widened (cblas has no bf16), into w. */
static void keep(float *w, float *x, size_t n) {
    grt_bf16_round(x, x, n, 1);
    memcpy(w, x, n * sizeof *x);
}

/* B sequences of T tokens, H query heads over KVH key/value heads of hd;
 * bf16: qkv rounded to bf16 (as mixed precision keeps it), every GEMM on
 * its operands' bits, the probabilities, dout and each sequence's dP
 * rounded where runtime/cuda/gemm.c rounds them, against the host's
 * mixed-precision attention (a product of two bf16 values is exact in fp32,
 * so these are the GPU's numbers up to order). */
static void check(int B, int T, int H, int KVH, int hd, int causal, int bf16) {
    size_t nq = (size_t)B * T * (H + 2 * KVH) * hd, no = (size_t)B * T * H * hd, np = (size_t)B * H * T * T;
    size_t nd = (size_t)H * T * T;
    float *qkv = random_buf(nq), *dout = random_buf(no), *out = calloc(no, 4), *ref_out = calloc(no, 4);
    float *p = calloc(np, 4), *ref_p = calloc(np, 4), *dqkv = calloc(nq, 4), *ref_dqkv = calloc(nq, 4);
    float *dp = calloc(nd, 4), *ref_dout = malloc(no * 4);
    float *w[CUDA_ATT_BUFS] = {0}; /* the bits, widened */
    for (int k = CUDA_ATT_QKV16; bf16 && k < CUDA_ATT_BUFS; k++)
        w[k] = calloc(k == CUDA_ATT_QKV16 ? nq : k == CUDA_ATT_OUT16 ? no : k == CUDA_ATT_P16 ? np : nd, 4);
    bool ok = qkv && dout && out && ref_out && p && ref_p && dqkv && ref_dqkv && dp && ref_dout;
    for (int k = CUDA_ATT_QKV16; bf16 && k < CUDA_ATT_BUFS; k++)
        ok = ok && w[k];
    CHECK(ok);
    if (!ok) return;
    float scale = 1.0f / sqrtf((float)hd);
    if (bf16) keep(w[CUDA_ATT_QKV16], qkv, nq); /* qkv holds the kept values */
    memcpy(ref_dout, dout, no * 4);
    grt_attention_forward_dropout(ref_out, ref_p, qkv, B, T, H, KVH, hd, causal, NULL, NULL, bf16);
    grt_attention_backward_dropout(ref_dqkv, ref_dout, qkv, ref_p, B, T, H, KVH, hd, causal, NULL, NULL, bf16);

    float *buf[CUDA_ATT_BUFS] = {[CUDA_ATT_QKV] = qkv, [CUDA_ATT_OUT] = out, [CUDA_ATT_P] = p};
    for (int k = CUDA_ATT_QKV16; k < CUDA_ATT_BUFS; k++)
        buf[k] = w[k];
    run_phase(CUDA_ATT_SCORES, 0, buf, bf16, B, T, H, KVH, hd);
    grt_attention_softmax_forward(p, B * H * T, T, 0, causal, scale);
    if (bf16) keep(w[CUDA_ATT_P16], p, np);
    run_phase(CUDA_ATT_VALUES, 0, buf, bf16, B, T, H, KVH, hd);
    buf[CUDA_ATT_OUT] = dout, buf[CUDA_ATT_DQKV] = dqkv, buf[CUDA_ATT_DP] = dp;
    if (bf16) keep(w[CUDA_ATT_OUT16], dout, no);
    for (int b = 0; b < B; b++) {
        run_phase(CUDA_ATT_BWD_PRE, b, buf, bf16, B, T, H, KVH, hd);
        grt_attention_softmax_backward(dp, p + (size_t)b * H * T * T, H * T, T, 0, causal);
        if (bf16) keep(w[CUDA_ATT_DP16], dp, nd);
        run_phase(CUDA_ATT_BWD_POST, b, buf, bf16, B, T, H, KVH, hd);
    }
    double e[3] = {worst(out, ref_out, no), worst(p, ref_p, np), worst(dqkv, ref_dqkv, nq)};
    printf("B %d T %d H %d KVH %d hd %d causal %d bf16 %d: out %.2g, probabilities %.2g, dqkv %.2g\n", B, T, H, KVH, hd,
           causal, bf16, e[0], e[1], e[2]);
    CHECK(e[0] < 1e-5 && e[1] < 1e-6 && e[2] < 1e-5);
    free(qkv), free(dout), free(out), free(ref_out), free(p), free(ref_p), free(dqkv), free(ref_dqkv), free(dp);
    free(ref_dout);
    for (int k = 0; k < CUDA_ATT_BUFS; k++)
        free(w[k]);
}

int main(void) {
    srand(13);
    for (int bf16 = 0; bf16 < 2; bf16++) {
        check(3, 7, 4, 4, 8, 1, bf16);   /* MHA, causal */
        check(2, 9, 6, 2, 4, 1, bf16);   /* GQA, groups of 3 */
        check(2, 5, 4, 1, 8, 1, bf16);   /* one key/value head */
        check(3, 6, 4, 2, 4, 0, bf16);   /* GQA, no mask */
        check(1, 16, 2, 2, 16, 1, bf16); /* one sequence */
    }
    CHECK_EQ(cuda_attention_gemm_count(CUDA_ATT_SCORES, 12, 12), 12);
    CHECK_EQ(cuda_attention_gemm_count(CUDA_ATT_BWD_PRE, 32, 8), 8);
    return check_report();
}
