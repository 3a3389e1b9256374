/* cuda_attention_gemms.c — the CUDA attention's GEMM table
 * (runtime/cuda/attention_gemms.c), without a GPU: each GEMM run as cuBLAS
 * would run it, member by member through cblas, with the softmax's
 * reference rows between the phases as the generated kernels run them (one
 * call over all B H T rows forward, over a sequence's H T rows backward);
 * the output, probabilities and input gradients against the host's
 * attention (runtime/kernels.c) on MHA and GQA, causal or not, in fp32
 * and with the scores on qkv's bf16 bits. */
#include "../unit/check.h"
#include "cuda_device.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>

/* Phase ph's GEMMs (of sequence b) on buf, through cblas; bf16: qkv's bits
 * named where the table names them, given here widened (buf[CUDA_ATT_QKV16]
 * floats, the same element offsets), and never mixed with fp32 operands. */
static void run_phase(CudaAttPhase ph, int b, float *const buf[CUDA_ATT_BUFS], int B, int T, int H, int KVH, int hd) {
    int bf16 = buf[CUDA_ATT_QKV16] != NULL;
    for (int i = 0; i < cuda_attention_gemm_count(ph, H, KVH); i++) {
        CudaAttGemm g = cuda_attention_gemm(ph, i, b, B, T, H, KVH, hd, bf16);
        CHECK_EQ(cuda_attention_buf_bytes(g.a.buf), cuda_attention_buf_bytes(g.b.buf));
        CHECK_EQ(g.a.buf == CUDA_ATT_QKV16, bf16 && ph == CUDA_ATT_SCORES); /* the scores, and only they */
        CHECK(g.c.buf != CUDA_ATT_QKV16 && cuda_attention_buf_bytes(g.c.buf) == 4);
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

/* B sequences of T tokens, H query heads over KVH key/value heads of hd;
 * bf16: qkv rounded to bf16 (as mixed precision keeps it) and the scores
 * read from its bits (widened: cblas has no bf16; the GPU's products of two
 * bf16 values are exact in fp32, so these are its numbers up to order). */
static void check(int B, int T, int H, int KVH, int hd, int causal, int bf16) {
    size_t nq = (size_t)B * T * (H + 2 * KVH) * hd, no = (size_t)B * T * H * hd, np = (size_t)B * H * T * T;
    float *qkv = random_buf(nq), *dout = random_buf(no), *out = calloc(no, 4), *ref_out = calloc(no, 4);
    float *qkv16 = NULL;
    uint16_t *bits = calloc(nq, 2);
    CHECK(qkv && bits);
    if (!(qkv && bits)) return;
    if (bf16) {
        grt_bf16_round(qkv, qkv, nq, 1); /* qkv holds the kept values */
        grt_bf16_round(bits, qkv, nq, 0);
        qkv16 = calloc(nq, 4);
        CHECK(qkv16 != NULL);
        if (!qkv16) return;
        grt_bf16_widen(qkv16, bits, nq);
    }
    float *p = calloc(np, 4), *ref_p = calloc(np, 4), *dqkv = calloc(nq, 4), *ref_dqkv = calloc(nq, 4);
    float *dp = calloc((size_t)H * T * T, 4);
    CHECK(qkv && dout && out && ref_out && p && ref_p && dqkv && ref_dqkv && dp);
    if (!(qkv && dout && out && ref_out && p && ref_p && dqkv && ref_dqkv && dp)) return;
    float scale = 1.0f / sqrtf((float)hd);
    grt_attention_forward(ref_out, ref_p, qkv, B, T, H, KVH, hd, causal);
    grt_attention_backward(ref_dqkv, dout, qkv, ref_p, B, T, H, KVH, hd, causal);

    float *const fwd[CUDA_ATT_BUFS] = {
        [CUDA_ATT_QKV] = qkv, [CUDA_ATT_OUT] = out, [CUDA_ATT_P] = p, [CUDA_ATT_QKV16] = qkv16};
    run_phase(CUDA_ATT_SCORES, 0, fwd, B, T, H, KVH, hd);
    grt_attention_softmax_forward(p, B * H * T, T, 0, causal, scale);
    run_phase(CUDA_ATT_VALUES, 0, fwd, B, T, H, KVH, hd);
    float *const bwd[CUDA_ATT_BUFS] = {qkv, dout, p, dqkv, dp};
    for (int b = 0; b < B; b++) {
        run_phase(CUDA_ATT_BWD_PRE, b, bwd, B, T, H, KVH, hd);
        grt_attention_softmax_backward(dp, p + (size_t)b * H * T * T, H * T, T, 0, causal);
        run_phase(CUDA_ATT_BWD_POST, b, bwd, B, T, H, KVH, hd);
    }
    double e[3] = {worst(out, ref_out, no), worst(p, ref_p, np), worst(dqkv, ref_dqkv, nq)};
    printf("B %d T %d H %d KVH %d hd %d causal %d bf16 %d: out %.2g, probabilities %.2g, dqkv %.2g\n", B, T, H, KVH, hd,
           causal, bf16, e[0], e[1], e[2]);
    CHECK(e[0] < 1e-5 && e[1] < 1e-6 && e[2] < 1e-5);
    free(qkv), free(dout), free(out), free(ref_out), free(p), free(ref_p), free(dqkv), free(ref_dqkv), free(dp);
    free(qkv16), free(bits);
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
