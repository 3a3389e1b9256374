/* gemm.c — the CUDA target's GEMMs through cuBLAS, in the row-major
 * conventions of the host's (runtime/kernels.c, cblas_sgemm with
 * CblasRowMajor): a linear layer's weight is (OC, C) and out = inp @ W^T +
 * bias; every backward accumulates. fp32 in and out, computed in fp32 with
 * TF32 off (CUBLAS_PEDANTIC_MATH, CUBLAS_COMPUTE_32F_PEDANTIC) so a GPU run
 * can be compared with a CPU run; under bf16 mixed precision the linears'
 * GEMMs take bf16 operands (rounded by a generated kernel) and accumulate
 * in fp32 on the tensor cores (CUBLAS_COMPUTE_32F), and so do the attention
 * core's on the block's kept bf16 bits. Bias adds and bias
 * gradients are GEMMs with a vector of ones; attention is strided-batched GEMMs with the
 * generated softmax between them, one launch over a micro-batch's rows (forward) or a
 * sequence's (backward). */
#include "cuda_device.h"

#include <limits.h>
#include <math.h>
#include <stdbool.h>

void cuda_blas_start(void) {
    CUBLAS_CHECK(cublasCreate(&cuda.blas));
    CUBLAS_CHECK(cublasSetStream(cuda.blas, cuda.compute));
    CUBLAS_CHECK(cublasSetMathMode(cuda.blas, CUBLAS_PEDANTIC_MATH));
}

/* C (M, N) = alpha op(A) op(B) + beta C, row-major with leading dimensions
 * lda, ldb, ldc, batch times with strides sa, sb, sc between the batch's
 * matrices (floats). cuBLAS is column-major, where a row-major matrix reads
 * as its transpose, so this is C^T = op(B)^T op(A)^T: B first, A second. */
static void gemm_batched(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda, long long sa,
                         const float *B, int ldb, long long sb, float beta, float *C, int ldc, long long sc,
                         int batch) {
    cublasOperation_t opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_CHECK(cublasGemmStridedBatchedEx(cuda.blas, opb, opa, N, M, K, &alpha, B, CUDA_R_32F, ldb, sb, A,
                                            CUDA_R_32F, lda, sa, &beta, C, CUDA_R_32F, ldc, sc, batch,
                                            CUBLAS_COMPUTE_32F_PEDANTIC, CUBLAS_GEMM_DEFAULT));
}

/* One row-major GEMM, as cblas_sgemm(CblasRowMajor, ...). */
static void gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc) {
    cublasOperation_t opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_CHECK(cublasGemmEx(cuda.blas, opb, opa, N, M, K, &alpha, B, CUDA_R_32F, ldb, A, CUDA_R_32F, lda, &beta, C,
                              CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F_PEDANTIC, CUBLAS_GEMM_DEFAULT));
}

/* ---- bf16 (mixed precision) ---------------------------------------------- */

/* dst (rows, cols) = src rounded to bf16 bits, by the plan's generated
 * kernel of cols columns (galvc generates one for every linear's widths). */
static const void *round_bits(void *dst, const float *src, int rows, int cols) {
    GrtBf16Fn *k = (GrtBf16Fn *)grt_kernel_find(GRT_K_BF16, cols, 0);
    if (!k) grt_abort("internal error: no generated bf16 kernel for a GEMM's width on the cuda device", 1);
    k(rows, dst, src);
    return dst;
}

/* One row-major GEMM on bf16 operands, fp32 output and accumulation
 * (cuBLAS's bf16 tensor-core path), as gemm above. */
static void gemm16(bool ta, bool tb, int M, int N, int K, const void *A, int lda, const void *B, int ldb, float beta,
                   float *C, int ldc) {
    cublasOperation_t opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    const float one = 1.0f;
    /* the tensor cores: the pedantic mode the fp32 GEMMs keep may refuse them */
    CUBLAS_CHECK(cublasSetMathMode(cuda.blas, CUBLAS_DEFAULT_MATH));
    CUBLAS_CHECK(cublasGemmEx(cuda.blas, opb, opa, N, M, K, &one, B, CUDA_R_16BF, ldb, A, CUDA_R_16BF, lda, &beta, C,
                              CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    CUBLAS_CHECK(cublasSetMathMode(cuda.blas, CUBLAS_PEDANTIC_MATH));
}

/* The places of one linear's rounded operands in ops (galvrt_sizes.h's
 * grt_size_linear16 order): input (N, C), output gradient (N, OC), weight (OC, C). */
static void bits_parts(void *ops, int N, int C, int OC, uint16_t **x, uint16_t **dy, uint16_t **w) {
    *x = ops;
    *dy = *x + (size_t)grt_round8((double)N * C);
    *w = *dy + (size_t)grt_round8((double)N * OC);
}

/* The GPU holds rounded operands as bf16 bits (GRT_GEMM16_BITS). */
static void check_bits(int bytes) {
    if (bytes != GRT_GEMM16_BITS) grt_abort("internal error: the cuda device's rounded operands are bf16 bits", 1);
}

/* out (N, OC) = inp (N, C) @ weight (OC, C)^T + bias (OC), bf16 operands (inp's kept bits inp16 where given) */
void cuda_matmul16_forward(float *out, const float *inp, const uint16_t *inp16, const float *weight, const float *bias,
                           int N, int C, int OC, int bytes, void *ops) {
    check_bits(bytes);
    if (N <= 0 || OC <= 0 || C <= 0) {
        cuda_matmul_forward(out, inp, weight, bias, N, C, OC);
        return;
    }
    uint16_t *x, *dy, *w;
    bits_parts(ops, N, C, OC, &x, &dy, &w);
    const void *xb = inp16 ? (const void *)inp16 : round_bits(x, inp, N, C);
    gemm16(false, true, N, OC, C, xb, C, round_bits(w, weight, OC, C), C, 0.0f, out, OC);
    if (bias) cuda_add_bias(out, bias, N, OC);
}

/* dinp (N, C) += dout @ weight; dweight (OC, C) += dout^T @ inp, bf16 operands; dbias (OC) += sum_n dout in fp32 */
void cuda_matmul16_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                            const uint16_t *inp16, const float *weight, int N, int C, int OC, int bytes, void *ops) {
    check_bits(bytes);
    if (N <= 0 || OC <= 0) return;
    uint16_t *x, *dy, *w;
    bits_parts(ops, N, C, OC, &x, &dy, &w);
    if (C > 0 && (dinp || dweight)) round_bits(dy, dout, N, OC);
    if (C > 0 && dinp) gemm16(false, false, N, C, OC, dy, OC, round_bits(w, weight, OC, C), C, 1.0f, dinp, C);
    if (C > 0 && dweight) {
        const void *xb = inp16 ? (const void *)inp16 : round_bits(x, inp, N, C);
        gemm16(true, false, OC, C, N, dy, OC, xb, C, 1.0f, dweight, C);
    }
    if (dbias) cuda_bias_grad(dbias, dout, N, OC);
}

/* n ones on the device (at least): the vector the bias GEMMs multiply by.
 * Grown from the arena during the first step's calls, then reused. */
static const float *ones(int n) {
    static float *v;
    static int have;
    if (n <= have) return v;
    float *host = grt_alloc(sizeof(float) * (size_t)n);
    for (int i = 0; i < n; i++) host[i] = 1.0f;
    v = cuda_alloc(sizeof(float) * (size_t)n);
    CUDA_CHECK(cudaMemcpyAsync(v, host, sizeof(float) * (size_t)n, cudaMemcpyHostToDevice, cuda.compute));
    CUDA_CHECK(cudaStreamSynchronize(cuda.compute));
    grt_free(host, sizeof(float) * (size_t)n);
    have = n;
    return v;
}

/* out (N, C) += ones (N, 1) @ bias (1, C) */
void cuda_add_bias(float *out, const float *bias, int N, int C) {
    if (N > 0 && C > 0) gemm(false, false, N, C, 1, 1.0f, ones(N), 1, bias, C, 1.0f, out, C);
}

/* dbias (1, C) += ones (1, N) @ dout (N, C): the column sums */
void cuda_bias_grad(float *dbias, const float *dout, int N, int C) {
    if (N > 0 && C > 0) gemm(false, false, 1, C, N, 1.0f, ones(N), N, dout, C, 1.0f, dbias, C);
}

/* dst (n) += src (n) */
void cuda_add(float *dst, const float *src, size_t n) {
    const float one = 1.0f;
    for (size_t at = 0; at < n; at += INT_MAX) {
        int part = n - at < (size_t)INT_MAX ? (int)(n - at) : INT_MAX;
        CUBLAS_CHECK(cublasSaxpy(cuda.blas, part, &one, src + at, 1, dst + at, 1));
    }
}

/* out (N, OC) = inp (N, C) @ weight (OC, C)^T + bias (OC) */
void cuda_matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC) {
    if (N <= 0 || OC <= 0) return;
    if (C > 0) gemm(false, true, N, OC, C, 1.0f, inp, C, weight, C, 0.0f, out, OC);
    else CUDA_CHECK(cudaMemsetAsync(out, 0, sizeof(float) * (size_t)N * OC, cuda.compute));
    if (bias) cuda_add_bias(out, bias, N, OC);
}

/* dinp (N, C) += dout (N, OC) @ weight (OC, C); dweight (OC, C) += dout^T @ inp (N, C); dbias (OC) += sum_n dout */
void cuda_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                          const float *weight, int N, int C, int OC) {
    if (N <= 0 || OC <= 0) return;
    if (C > 0 && dinp) gemm(false, false, N, C, OC, 1.0f, dout, OC, weight, C, 1.0f, dinp, C);
    if (C > 0 && dweight) gemm(true, false, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
    if (dbias) cuda_bias_grad(dbias, dout, N, OC);
}

/* As gemm_batched on bf16 operands A and B (bits), fp32 C, accumulated in
 * fp32 on the tensor cores (gemm16's mode). */
static void gemm16_batched(bool ta, bool tb, int M, int N, int K, float alpha, const void *A, int lda, long long sa,
                           const void *B, int ldb, long long sb, float beta, float *C, int ldc, long long sc,
                           int batch) {
    cublasOperation_t opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_CHECK(cublasSetMathMode(cuda.blas, CUBLAS_DEFAULT_MATH));
    CUBLAS_CHECK(cublasGemmStridedBatchedEx(cuda.blas, opb, opa, N, M, K, &alpha, B, CUDA_R_16BF, ldb, sb, A,
                                            CUDA_R_16BF, lda, sa, &beta, C, CUDA_R_32F, ldc, sc, batch,
                                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    CUBLAS_CHECK(cublasSetMathMode(cuda.blas, CUBLAS_PEDANTIC_MATH));
}

/* Where operand o starts in buf: its element offset at its buffer's element size. */
static void *operand_at(void *const buf[CUDA_ATT_BUFS], CudaAttOperand o) {
    return (char *)buf[o.buf] + o.off * (size_t)cuda_attention_buf_bytes(o.buf);
}

/* The GEMMs of phase ph (of sequence b in backward) of the attention's
 * table (attention_gemms.c), in its order, on buf; bf16: on their operands'
 * bits. */
static void run_phase(CudaAttPhase ph, int b, void *const buf[CUDA_ATT_BUFS], int bf16, int B, int T, int H, int KVH,
                      int hd) {
    for (int i = 0; i < cuda_attention_gemm_count(ph, H, KVH); i++) {
        CudaAttGemm g = cuda_attention_gemm(ph, i, b, B, T, H, KVH, hd, bf16);
        int bytes = cuda_attention_buf_bytes(g.a.buf);
        if (bytes != cuda_attention_buf_bytes(g.b.buf))
            grt_abort("internal error: an attention GEMM mixes bf16 and fp32 operands", 1);
        const void *A = operand_at(buf, g.a), *Bm = operand_at(buf, g.b);
        float *C = operand_at(buf, g.c);
        if (bytes == 2)
            gemm16_batched(g.ta, g.tb, g.M, g.N, g.K, g.alpha, A, g.a.ld, g.a.stride, Bm, g.b.ld, g.b.stride, g.beta,
                           C, g.c.ld, g.c.stride, g.batch);
        else
            gemm_batched(g.ta, g.tb, g.M, g.N, g.K, g.alpha, A, g.a.ld, g.a.stride, Bm, g.b.ld, g.b.stride, g.beta, C,
                         g.c.ld, g.c.stride, g.batch);
    }
}

/* Mixed precision's rounding of an attention operand x (rows, cols): into
 * `bits` alone where the GEMMs read those (the output's gradient: consumed),
 * else in place (a checkpointed block, which keeps no bits), each by its
 * generated kernel. */
static void round_operand(uint16_t *bits, float *x, int64_t rows, int cols) {
    GrtBf16Fn *round = (GrtBf16Fn *)grt_kernel_find(GRT_K_BF16, cols, bits ? 0 : GRT_KF_WIDE);
    if (!round) grt_abort("internal error: no generated bf16 kernel for the attention on the cuda device", 1);
    if (bits) round(rows, bits, x);
    else round(rows, x, x);
}

/* A generated kernel the attention needs, or an internal error: galvc generates the plan's. */
static void (*need(void (*fn)(void)))(void) {
    if (!fn) grt_abort("internal error: no generated attention softmax of this shape on the cuda device", 1);
    return fn;
}

/* The attention core on the GPU (as grt_attention_forward_with): per head,
 * over the B sequences at once, att (T, T) = q @ k^T; then the generated
 * softmax (its scale and causal mask in it) once over all B H T rows of att
 * (B, H, T, T), its rows wrapping from query T - 1 to the next (b, h)'s 0;
 * then per head out = att @ v. A masked score is computed and then zeroed by
 * the softmax, so the products equal the host's, which skips them. qkv is
 * only read (the table's GEMMs never write CUDA_ATT_QKV). Under mixed
 * precision (m) the probabilities are rounded before att @ v. Where the
 * block keeps bits (m->qkv and m->att), every GEMM runs on them on the
 * tensor cores, each product of two bf16 values exact in fp32, so equal to
 * the host's fp32 products up to summation order; the softmax then writes
 * the probabilities' bits alone, into m->att (att_softmax16_fwd: att is left
 * holding the exponentials, which nothing reads). */
void cuda_attention_forward(float *out, float *att, const float *qkv, const GrtAtt16 *m, int B, int T, int H, int KVH,
                            int hd, int causal, GrtAttSoftmaxFwdFn *softmax) {
    if (B <= 0 || T <= 0 || H <= 0 || hd <= 0) return;
    if (!softmax || KVH <= 0 || H % KVH) grt_abort("internal error: the CUDA attention needs the generated softmax", 1);
    int bf16 = m && m->qkv && m->att;
    void *const buf[CUDA_ATT_BUFS] = {[CUDA_ATT_QKV] = (float *)qkv,
                                       [CUDA_ATT_OUT] = out,
                                       [CUDA_ATT_P] = att,
                                       [CUDA_ATT_QKV16] = m ? (uint16_t *)m->qkv : NULL,
                                       [CUDA_ATT_P16] = m ? m->att : NULL};
    run_phase(CUDA_ATT_SCORES, 0, buf, bf16, B, T, H, KVH, hd);
    int64_t rows = (int64_t)B * H * T;
    if (bf16) {
        void (*fn)(void) = grt_kernel_find_sized(GRT_K_ATT_SOFTMAX16_FWD, T, causal ? GRT_KF_CAUSAL : 0, hd, 0, 0);
        ((GrtAttSoftmax16FwdFn *)need(fn))(rows, att, m->att, 0);
    } else {
        softmax(rows, att, 0);
        if (m) round_operand(NULL, att, rows, T);
    }
    run_phase(CUDA_ATT_VALUES, 0, buf, bf16, B, T, H, KVH, hd);
}

/* Its backward (as grt_attention_backward_with), one sequence at a time
 * with its heads batched: dP = dout @ v^T and dv += att^T @ dout; the
 * softmax's backward in place on dP, one launch over the sequence's H T
 * rows; dq += dP @ k / sqrt(hd) and dk += dP^T @ q / sqrt(hd). dP: (H, T, T)
 * in the block's working space (galvrt_sizes.h's grt_att_grad). Under
 * mixed precision (m) dout is rounded first and each dP after the
 * softmax's backward. On the bits (as the forward) dout's go to m->ops, and
 * the softmax's backward reads the probabilities' kept bits (m->att) and
 * writes a sequence's dP's as bits alone over its rows of att, whose fp32
 * copy nothing widened (runtime/layers.c leaves it to the device). */
void cuda_attention_backward(float *dqkv, float *dout, const float *qkv, float *att, const GrtAtt16 *m, int B, int T,
                             int H, int KVH, int hd, int causal, GrtAttSoftmaxBwdFn *softmax, float *dp) {
    if (B <= 0 || T <= 0 || H <= 0 || hd <= 0) return;
    if (!softmax || KVH <= 0 || H % KVH) grt_abort("internal error: the CUDA attention needs the generated softmax", 1);
    const size_t HTT = (size_t)H * T * T;
    int bf16 = m && m->qkv && m->att;
    uint16_t *dout16 = bf16 ? m->ops : NULL;
    void *buf[CUDA_ATT_BUFS] = {[CUDA_ATT_QKV] = (float *)qkv,
                                [CUDA_ATT_OUT] = dout,
                                [CUDA_ATT_P] = att,
                                [CUDA_ATT_DQKV] = dqkv,
                                [CUDA_ATT_DP] = dp,
                                [CUDA_ATT_QKV16] = m ? (uint16_t *)m->qkv : NULL,
                                [CUDA_ATT_OUT16] = dout16,
                                [CUDA_ATT_P16] = m ? m->att : NULL};
    GrtAttSoftmax16BwdFn *softmax16 =
        bf16 ? (GrtAttSoftmax16BwdFn *)need(grt_kernel_find(GRT_K_ATT_SOFTMAX16_BWD, T, causal ? GRT_KF_CAUSAL : 0))
             : NULL;
    if (m) round_operand(dout16, dout, (int64_t)B * T, H * hd);
    for (int b = 0; b < B; b++) {
        run_phase(CUDA_ATT_BWD_PRE, b, buf, bf16, B, T, H, KVH, hd);
        if (bf16) {
            buf[CUDA_ATT_DP16] = att + (size_t)b * HTT;
            softmax16((int64_t)H * T, dp, m->att + (size_t)b * HTT, buf[CUDA_ATT_DP16], 0);
        } else {
            softmax((int64_t)H * T, dp, att + (size_t)b * HTT, 0);
            if (m) round_operand(NULL, dp, (int64_t)H * T, T);
        }
        run_phase(CUDA_ATT_BWD_POST, b, buf, bf16, B, T, H, KVH, hd);
    }
}
