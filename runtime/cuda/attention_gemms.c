/* attention_gemms.c — the CUDA attention core's strided-batched GEMMs as
 * data (cuda_device.h), so that the strides, the riskiest part of the GPU's
 * attention, are checked without a GPU (tests/runtime/cuda_attention_gemms.c
 * runs this table through cblas against the host's attention, GQA and the
 * causal mask included). Forward: per head, the scores q k^T of the B
 * sequences at once, then (after the generated softmax over all B H T rows)
 * P v. Backward, per sequence with its heads batched: query heads h = j
 * group + g of one g over the KVH key/value heads j (q, dout and the
 * probabilities step group heads, k and v one), so that the heads sharing a
 * key/value head add into its gradient one round after the other: dP =
 * dout v^T, dv += P^T dout; then (after the softmax's backward in place on
 * dP) dq += dP k / sqrt(hd), dk += dP^T q / sqrt(hd). Under bf16 every
 * GEMM reads the bits of its operands (the block keeps q, k, v and the
 * probabilities as bits; the backward rounds dout and dP into bits), at
 * the same element offsets, and writes fp32. */
#include "cuda_device.h"

#include <math.h>

/* An operand: buf at off, leading dimension ld, stride between members. */
static CudaAttOperand at(CudaAttBuf buf, size_t off, int ld, long long stride) {
    return (CudaAttOperand){buf, off, ld, stride};
}

int cuda_attention_buf_bytes(CudaAttBuf buf) { return buf >= CUDA_ATT_QKV16 ? 2 : 4; }

/* The forward's GEMM of head h in phase ph, batched over the B sequences. */
static CudaAttGemm forward_head(CudaAttPhase ph, int h, int T, int H, int KVH, int hd) {
    int S = (H + 2 * KVH) * hd, kv = h / (H / KVH);
    long long TT = (long long)T * T, seq = (long long)T * S;
    CudaAttOperand p = at(CUDA_ATT_P, (size_t)h * TT, T, (long long)H * TT);
    if (ph == CUDA_ATT_SCORES) /* att (T, T) = q (T, hd) k^T */
        return (CudaAttGemm){0,
                             1,
                             T,
                             T,
                             hd,
                             0,
                             1.0f,
                             0.0f,
                             at(CUDA_ATT_QKV, (size_t)h * hd, S, seq),
                             at(CUDA_ATT_QKV, (size_t)(H + kv) * hd, S, seq),
                             p};
    /* out (T, hd) = P (T, T) v (T, hd) */
    return (CudaAttGemm){0,
                         0,
                         T,
                         hd,
                         T,
                         0,
                         1.0f,
                         0.0f,
                         p,
                         at(CUDA_ATT_QKV, (size_t)(H + KVH + kv) * hd, S, seq),
                         at(CUDA_ATT_OUT, (size_t)h * hd, H * hd, (long long)T * H * hd)};
}

/* The backward's GEMM `which` (0, 1) of sequence b's heads j group + g (j < KVH) in phase ph. */
static CudaAttGemm backward_round(CudaAttPhase ph, int which, int b, int g, int T, int H, int KVH, int hd) {
    int S = (H + 2 * KVH) * hd, HD = H * hd, group = H / KVH;
    long long TT = (long long)T * T, gq = (long long)group * hd, gp = group * TT;
    size_t seq = (size_t)b * T * S, q = seq + (size_t)g * hd, k = seq + (size_t)H * hd, v = k + (size_t)KVH * hd;
    CudaAttOperand dout = at(CUDA_ATT_OUT, (size_t)b * T * HD + (size_t)g * hd, HD, gq);
    CudaAttOperand dp = at(CUDA_ATT_DP, (size_t)g * TT, T, gp);
    float scale = 1.0f / sqrtf((float)hd);
    if (ph == CUDA_ATT_BWD_PRE && which == 0) /* dP (T, T) = dout (T, hd) v^T */
        return (CudaAttGemm){0, 1, T, T, hd, KVH, 1.0f, 0.0f, dout, at(CUDA_ATT_QKV, v, S, hd), dp};
    if (ph == CUDA_ATT_BWD_PRE) /* dv (T, hd) += P^T (T, T) dout (T, hd) */
        return (CudaAttGemm){1,
                             0,
                             T,
                             hd,
                             T,
                             KVH,
                             1.0f,
                             1.0f,
                             at(CUDA_ATT_P, ((size_t)b * H + (size_t)g) * TT, T, gp),
                             dout,
                             at(CUDA_ATT_DQKV, v, S, hd)};
    if (which == 0) /* dq (T, hd) += dP (T, T) k (T, hd) / sqrt(hd) */
        return (CudaAttGemm){
            0, 0, T, hd, T, KVH, scale, 1.0f, dp, at(CUDA_ATT_QKV, k, S, hd), at(CUDA_ATT_DQKV, q, S, gq)};
    /* dk (T, hd) += dP^T (T, T) q (T, hd) / sqrt(hd) */
    return (CudaAttGemm){1, 0, T, hd, T, KVH, scale, 1.0f, dp, at(CUDA_ATT_QKV, q, S, gq), at(CUDA_ATT_DQKV, k, S, hd)};
}

int cuda_attention_gemm_count(CudaAttPhase ph, int H, int KVH) {
    return ph == CUDA_ATT_SCORES || ph == CUDA_ATT_VALUES ? H : 2 * (H / KVH);
}

/* The buffer holding buf's values as bf16 bits. */
static CudaAttBuf bits_of(CudaAttBuf buf) {
    switch (buf) {
    case CUDA_ATT_QKV: return CUDA_ATT_QKV16;
    case CUDA_ATT_OUT: return CUDA_ATT_OUT16;
    case CUDA_ATT_P: return CUDA_ATT_P16;
    case CUDA_ATT_DP: return CUDA_ATT_DP16;
    default: return buf; /* dqkv: written, fp32 */
    }
}

CudaAttGemm cuda_attention_gemm(CudaAttPhase ph, int i, int b, int B, int T, int H, int KVH, int hd, int bf16) {
    CudaAttGemm g;
    if (ph == CUDA_ATT_SCORES || ph == CUDA_ATT_VALUES) {
        g = forward_head(ph, i, T, H, KVH, hd);
        g.batch = B;
    } else {
        g = backward_round(ph, i % 2, b, i / 2, T, H, KVH, hd);
    }
    if (bf16) g.a.buf = bits_of(g.a.buf), g.b.buf = bits_of(g.b.buf);
    return g;
}
