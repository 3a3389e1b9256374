/* kernels.c — libgalvrt's fp32 kernels for the CPU target, forward and
 * backward: matmul, embedding (tensor-parallel vocabulary shard), rotary,
 * layernorm, rmsnorm, GELU, SwiGLU, attention (causal or not, MHA or GQA),
 * residual, softmax cross-entropy, and the optimizer's sum of squares and AdamW.
 *
 * Why this shape: the GEMMs (the linear layers and attention's Q K^T and P V)
 * carry nearly all the flops, so they go to OpenBLAS's cblas_sgemm and use its
 * threads; everything else is one or two plain passes over memory, which the
 * compiler vectorizes. Reductions that feed a division or a log (norm
 * statistics, softmax sums) accumulate in double. Every backward ACCUMULATES
 * (+=) into the gradients it is given, and a NULL gradient is not computed.
 * tests/runtime/test_kernels.c checks each kernel against a naive double
 * reference and its gradients against finite differences. */
#include "galvrt.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows of the attention matrix per GEMM block under a causal mask: block r
 * only multiplies the keys it can see (columns < its last row), which skips
 * about half the flops of Q K^T and P V for long sequences. */
#define ATT_BLOCK 128

/* A runtime failure that is a caller's bug or out of memory: say which, and stop. */
static void fail(const char *where, const char *msg) {
    fprintf(stderr, "libgalvrt: %s: %s\n", where, msg);
    abort();
}

/* ---- matmul ----------------------------------------------------------------- */

/* out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias (OC) */
void grt_matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC) {
    if (N <= 0 || OC <= 0) return;
    float beta = 0.0f;
    if (bias) {
        for (int n = 0; n < N; n++)
            memcpy(out + (size_t)n * OC, bias, (size_t)OC * sizeof(float));
        beta = 1.0f;
    } else if (C <= 0) {
        memset(out, 0, (size_t)N * OC * sizeof(float));
    }
    if (C <= 0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, weight, C, beta, out, OC);
}

/* dinp (N,C) += dout (N,OC) @ weight (OC,C); dweight (OC,C) += dout^T @ inp (N,C); dbias (OC) += sum_n dout */
void grt_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                         const float *weight, int N, int C, int OC) {
    if (N <= 0 || OC <= 0) return;
    if (C > 0 && dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, weight, C, 1.0f, dinp, C);
    if (C > 0 && dweight)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
    if (dbias) {
        for (int n = 0; n < N; n++) {
            const float *d = dout + (size_t)n * OC;
            for (int o = 0; o < OC; o++)
                dbias[o] += d[o];
        }
    }
}

/* ---- embedding -------------------------------------------------------------- */

/* The row of wte holding token tok, or -1 when another rank's shard holds it. */
static long shard_row(int32_t tok, int vocab_start, int vocab_rows) {
    long row = (long)tok - vocab_start;
    return row >= 0 && row < vocab_rows ? row : -1;
}

/* out (B,T,C) = wte (vocab_rows,C)[tokens (B,T) - vocab_start] + wpe (T,C)[t]; tokens off the shard give 0 */
void grt_embedding_forward(float *out, const int32_t *tokens, const float *wte, const float *wpe, int B, int T, int C,
                           int vocab_start, int vocab_rows) {
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            float *o = out + ((size_t)b * T + t) * C;
            long row = shard_row(tokens[(size_t)b * T + t], vocab_start, vocab_rows);
            if (row >= 0)
                memcpy(o, wte + (size_t)row * C, (size_t)C * sizeof(float));
            else
                memset(o, 0, (size_t)C * sizeof(float));
            if (wpe) {
                const float *p = wpe + (size_t)t * C;
                for (int c = 0; c < C; c++)
                    o[c] += p[c];
            }
        }
    }
}

/* dwte (vocab_rows,C) += dout (B,T,C) scattered by token (shard rows only); dwpe (T,C) += sum_b dout */
void grt_embedding_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tokens, int B, int T, int C,
                            int vocab_start, int vocab_rows) {
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            const float *d = dout + ((size_t)b * T + t) * C;
            long row = shard_row(tokens[(size_t)b * T + t], vocab_start, vocab_rows);
            if (dwte && row >= 0) {
                float *g = dwte + (size_t)row * C;
                for (int c = 0; c < C; c++)
                    g[c] += d[c];
            }
            if (dwpe) {
                float *g = dwpe + (size_t)t * C;
                for (int c = 0; c < C; c++)
                    g[c] += d[c];
            }
        }
    }
}

/* ---- rotary ----------------------------------------------------------------- */

/* x (B,T,heads,hd) rotated in place: pair (2i, 2i+1) at position t by angle sign * t * theta^(-2i/hd). */
static void rope_rotate(float *x, int B, int T, int heads, int hd, float theta, double sign) {
    if (hd <= 0 || T <= 0) return;
    int half = hd / 2;
    float *cs = malloc(2 * (size_t)(half > 0 ? half : 1) * sizeof(float));
    if (!cs) fail("rope", "out of memory");
    float *sn = cs + half;
    for (int t = 0; t < T; t++) {
        /* the angles in double: t * freq reaches thousands of radians */
        for (int i = 0; i < half; i++) {
            double ang = sign * t * pow((double)theta, -2.0 * i / hd);
            cs[i] = (float)cos(ang);
            sn[i] = (float)sin(ang);
        }
        for (int b = 0; b < B; b++) {
            float *row = x + ((size_t)b * T + t) * heads * hd;
            for (int h = 0; h < heads; h++) {
                float *v = row + (size_t)h * hd;
                for (int i = 0; i < half; i++) {
                    float x0 = v[2 * i], x1 = v[2 * i + 1];
                    v[2 * i] = x0 * cs[i] - x1 * sn[i];
                    v[2 * i + 1] = x0 * sn[i] + x1 * cs[i];
                }
            }
        }
    }
    free(cs);
}

/* x (B,T,heads,hd) = rope(x), in place */
void grt_rope_forward(float *x, int B, int T, int heads, int hd, float theta) {
    rope_rotate(x, B, T, heads, hd, theta, 1.0);
}

/* dx (B,T,heads,hd) = rope^T(dx), in place: rotations are orthogonal, so the transpose is the inverse */
void grt_rope_backward(float *dx, int B, int T, int heads, int hd, float theta) {
    rope_rotate(dx, B, T, heads, hd, theta, -1.0);
}

/* ---- normalization ---------------------------------------------------------- */

/* out (N,C) = (inp (N,C) - mean) * rstd * weight (C) + bias (C); mean, rstd (N) saved */
void grt_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                           const float *bias, int N, int C, float eps) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        double s = 0.0;
        for (int c = 0; c < C; c++)
            s += x[c];
        double m = s / C, v = 0.0;
        for (int c = 0; c < C; c++) {
            double d = x[c] - m;
            v += d * d;
        }
        float fm = (float)m, r = (float)(1.0 / sqrt(v / C + eps));
        for (int c = 0; c < C; c++)
            o[c] = (x[c] - fm) * r * weight[c] + (bias ? bias[c] : 0.0f);
        if (mean) mean[n] = fm;
        if (rstd) rstd[n] = r;
    }
}

/* dinp (N,C) += rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)), dnorm = dout * weight;
 * dweight (C) += sum_n dout * norm; dbias (C) += sum_n dout */
void grt_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                            const float *weight, const float *mean, const float *rstd, int N, int C) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
        float m = mean[n], r = rstd[n];
        double sd = 0.0, sdn = 0.0;
        for (int c = 0; c < C; c++) {
            float nrm = (x[c] - m) * r, dn = d[c] * weight[c];
            sd += dn;
            sdn += dn * nrm;
        }
        float md = (float)(sd / C), mdn = (float)(sdn / C);
        for (int c = 0; c < C; c++) {
            float nrm = (x[c] - m) * r;
            if (dinp) dinp[(size_t)n * C + c] += r * (d[c] * weight[c] - md - nrm * mdn);
            if (dweight) dweight[c] += d[c] * nrm;
            if (dbias) dbias[c] += d[c];
        }
    }
}

/* out (N,C) = inp (N,C) * rstd * weight (C); rstd (N) = 1 / sqrt(mean(inp^2) + eps) saved */
void grt_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N, int C, float eps) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        double ss = 0.0;
        for (int c = 0; c < C; c++)
            ss += (double)x[c] * x[c];
        float r = (float)(1.0 / sqrt(ss / C + eps));
        for (int c = 0; c < C; c++)
            o[c] = x[c] * r * weight[c];
        if (rstd) rstd[n] = r;
    }
}

/* dinp (N,C) += rstd * (dnorm - norm * mean(dnorm * norm)), norm = inp * rstd, dnorm = dout * weight;
 * dweight (C) += sum_n dout * norm */
void grt_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                          const float *rstd, int N, int C) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
        float r = rstd[n];
        double sdn = 0.0;
        for (int c = 0; c < C; c++)
            sdn += (double)(d[c] * weight[c]) * (x[c] * r);
        float mdn = (float)(sdn / C);
        for (int c = 0; c < C; c++) {
            float nrm = x[c] * r;
            if (dinp) dinp[(size_t)n * C + c] += r * (d[c] * weight[c] - nrm * mdn);
            if (dweight) dweight[c] += d[c] * nrm;
        }
    }
}

/* ---- pointwise -------------------------------------------------------------- */

#define GELU_K 0.7978845608028654f /* sqrt(2 / pi) */
#define GELU_A 0.044715f

/* out (n) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), x = inp (n) */
void grt_gelu_forward(float *out, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + tanhf(GELU_K * (x + GELU_A * x * x * x)));
    }
}

/* dinp (n) += dout * gelu'(inp) */
void grt_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float th = tanhf(GELU_K * (x + GELU_A * x * x * x));
        float du = GELU_K * (1.0f + 3.0f * GELU_A * x * x);
        dinp[i] += dout[i] * (0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du);
    }
}

/* out (N,F) = silu(gate) * up, inp (N,2F) = [gate (F) | up (F)] per row */
void grt_swiglu_forward(float *out, const float *inp, int N, int F) {
    for (int n = 0; n < N; n++) {
        const float *g = inp + (size_t)n * 2 * F, *u = g + F;
        float *o = out + (size_t)n * F;
        for (int f = 0; f < F; f++)
            o[f] = g[f] / (1.0f + expf(-g[f])) * u[f];
    }
}

/* dinp (N,2F) += [dout * up * silu'(gate) | dout * silu(gate)], silu'(g) = s (1 + g (1 - s)), s = sigmoid(g) */
void grt_swiglu_backward(float *dinp, const float *inp, const float *dout, int N, int F) {
    for (int n = 0; n < N; n++) {
        const float *g = inp + (size_t)n * 2 * F, *u = g + F, *d = dout + (size_t)n * F;
        float *dg = dinp + (size_t)n * 2 * F, *du = dg + F;
        for (int f = 0; f < F; f++) {
            float s = 1.0f / (1.0f + expf(-g[f]));
            dg[f] += d[f] * u[f] * s * (1.0f + g[f] * (1.0f - s));
            du[f] += d[f] * g[f] * s;
        }
    }
}

/* out (n) = a (n) + b (n) */
void grt_residual_forward(float *out, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}

/* ---- attention -------------------------------------------------------------- */

/* row (T) = softmax(row[0..n)) with zeros at [n, T) (the masked keys) */
static void softmax_row(float *row, int n, int T) {
    float mx = row[0];
    for (int j = 1; j < n; j++)
        mx = row[j] > mx ? row[j] : mx;
    double sum = 0.0;
    for (int j = 0; j < n; j++) {
        row[j] = expf(row[j] - mx);
        sum += row[j];
    }
    float inv = (float)(1.0 / sum);
    for (int j = 0; j < n; j++)
        row[j] *= inv;
    for (int j = n; j < T; j++)
        row[j] = 0.0f;
}

/* Rows per GEMM block: ATT_BLOCK under a causal mask, else the whole sequence. */
static int att_block(int T, int causal) { return causal && T > ATT_BLOCK ? ATT_BLOCK : T; }

/* Per (b, h), with q, k, v (T,hd) read from qkv (B,T,(H+2KVH)hd) and kv head h / (H/KVH):
 * att (B,H,T,T) = softmax(q @ k^T / sqrt(hd), masked); out (B,T,H hd) = att @ v */
void grt_attention_forward(float *out, float *att, const float *qkv, int B, int T, int H, int KVH, int hd, int causal) {
    if (B <= 0 || T <= 0 || H <= 0 || hd <= 0) return;
    if (KVH <= 0 || H % KVH != 0) fail("grt_attention_forward", "H must be a multiple of KVH");
    const size_t S = (size_t)(H + 2 * KVH) * hd, HD = (size_t)H * hd, TT = (size_t)T * T;
    const int group = H / KVH, blk = att_block(T, causal);
    const float scale = 1.0f / sqrtf((float)hd);
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < H; h++) {
            const float *base = qkv + (size_t)b * T * S;
            const float *q = base + (size_t)h * hd;
            const float *k = base + (size_t)(H + h / group) * hd;
            const float *v = base + (size_t)(H + KVH + h / group) * hd;
            float *a = att + ((size_t)b * H + h) * TT;
            float *o = out + (size_t)b * T * HD + (size_t)h * hd;
            for (int r0 = 0; r0 < T; r0 += blk) {
                int m = T - r0 < blk ? T - r0 : blk, ncols = causal ? r0 + m : T;
                /* scores (m, ncols) = q[r0:r0+m] @ k[0:ncols]^T * scale */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, ncols, hd, scale, q + r0 * S, (int)S, k, (int)S,
                            0.0f, a + (size_t)r0 * T, T);
                for (int t = r0; t < r0 + m; t++)
                    softmax_row(a + (size_t)t * T, causal ? t + 1 : T, T);
                /* o[r0:r0+m] (m, hd) = att (m, ncols) @ v[0:ncols] (ncols, hd) */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, hd, ncols, 1.0f, a + (size_t)r0 * T, T, v,
                            (int)S, 0.0f, o + r0 * HD, (int)HD);
            }
        }
    }
}

/* dqkv (B,T,(H+2KVH)hd) += gradients of q, k, v given dout (B,T,H hd) and the saved att (B,H,T,T):
 * dv += att^T @ dout; datt = dout @ v^T; dpre = att * (datt - rowsum(att * datt));
 * dq += dpre @ k / sqrt(hd); dk += dpre^T @ q / sqrt(hd) */
void grt_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att, int B, int T, int H,
                            int KVH, int hd, int causal) {
    if (B <= 0 || T <= 0 || H <= 0 || hd <= 0) return;
    if (KVH <= 0 || H % KVH != 0) fail("grt_attention_backward", "H must be a multiple of KVH");
    const size_t S = (size_t)(H + 2 * KVH) * hd, HD = (size_t)H * hd, TT = (size_t)T * T;
    const int group = H / KVH, blk = att_block(T, causal);
    const float scale = 1.0f / sqrtf((float)hd);
    float *dp = malloc((size_t)blk * T * sizeof(float)); /* datt, then dpre, of one row block */
    if (!dp) fail("grt_attention_backward", "out of memory");
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < H; h++) {
            const size_t off = (size_t)b * T * S, qo = (size_t)h * hd, ko = (size_t)(H + h / group) * hd,
                         vo = (size_t)(H + KVH + h / group) * hd;
            const float *q = qkv + off + qo, *k = qkv + off + ko, *v = qkv + off + vo;
            float *dq = dqkv + off + qo, *dk = dqkv + off + ko, *dv = dqkv + off + vo;
            const float *a = att + ((size_t)b * H + h) * TT;
            const float *d = dout + (size_t)b * T * HD + (size_t)h * hd;
            for (int r0 = 0; r0 < T; r0 += blk) {
                int m = T - r0 < blk ? T - r0 : blk, ncols = causal ? r0 + m : T;
                const float *p = a + (size_t)r0 * T;
                /* datt (m, ncols) = dout[r0:r0+m] (m, hd) @ v[0:ncols]^T */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, ncols, hd, 1.0f, d + r0 * HD, (int)HD, v,
                            (int)S, 0.0f, dp, ncols);
                /* dv[0:ncols] (ncols, hd) += att^T (ncols, m) @ dout[r0:r0+m] (m, hd) */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ncols, hd, m, 1.0f, p, T, d + r0 * HD, (int)HD,
                            1.0f, dv, (int)S);
                /* the softmax's backward, row by row: dpre = att * (datt - sum(att * datt)) */
                for (int i = 0; i < m; i++) {
                    const float *pr = p + (size_t)i * T;
                    float *dr = dp + (size_t)i * ncols;
                    int n = causal ? r0 + i + 1 : T;
                    double dot = 0.0;
                    for (int j = 0; j < n; j++)
                        dot += pr[j] * dr[j];
                    float fdot = (float)dot;
                    for (int j = 0; j < n; j++)
                        dr[j] = pr[j] * (dr[j] - fdot);
                    for (int j = n; j < ncols; j++)
                        dr[j] = 0.0f;
                }
                /* dq[r0:r0+m] (m, hd) += dpre (m, ncols) @ k[0:ncols] (ncols, hd) * scale */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, hd, ncols, scale, dp, ncols, k, (int)S, 1.0f,
                            dq + r0 * S, (int)S);
                /* dk[0:ncols] (ncols, hd) += dpre^T (ncols, m) @ q[r0:r0+m] (m, hd) * scale */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ncols, hd, m, scale, dp, ncols, q + r0 * S, (int)S,
                            1.0f, dk, (int)S);
            }
        }
    }
    free(dp);
}

/* ---- loss ------------------------------------------------------------------- */

/* probs (N,V) = softmax(logits (N,V)); losses (N) = -log probs[target] by log-sum-exp, 0 where target < 0 */
void grt_crossentropy_forward(float *losses, float *probs, const float *logits, const int32_t *targets, int N, int V) {
    for (int n = 0; n < N; n++) {
        const float *l = logits + (size_t)n * V;
        float *p = probs + (size_t)n * V;
        int32_t tgt = targets[n];
        if (tgt >= V) fail("grt_crossentropy_forward", "a target is outside the vocabulary");
        float mx = l[0];
        for (int j = 1; j < V; j++)
            mx = l[j] > mx ? l[j] : mx;
        double sum = 0.0;
        for (int j = 0; j < V; j++) {
            p[j] = expf(l[j] - mx);
            sum += p[j];
        }
        float inv = (float)(1.0 / sum);
        for (int j = 0; j < V; j++)
            p[j] *= inv;
        losses[n] = tgt < 0 ? 0.0f : (float)(log(sum) - ((double)l[tgt] - mx));
    }
}

/* dlogits (N,V) += (probs (N,V) - onehot(target)) * dlosses (N); rows with target < 0 get nothing */
void grt_crossentropy_backward(float *dlogits, const float *probs, const int32_t *targets, const float *dlosses, int N,
                               int V) {
    for (int n = 0; n < N; n++) {
        int32_t tgt = targets[n];
        if (tgt < 0) continue;
        if (tgt >= V) fail("grt_crossentropy_backward", "a target is outside the vocabulary");
        const float *p = probs + (size_t)n * V;
        float *dl = dlogits + (size_t)n * V, g = dlosses[n];
        for (int j = 0; j < V; j++)
            dl[j] += p[j] * g;
        dl[tgt] -= g;
    }
}

/* ---- optimizer -------------------------------------------------------------- */

/* sum of x (n)^2, in double (four partial sums, so the loop pipelines) */
double grt_sumsq(const float *x, size_t n) {
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += (double)x[i] * x[i];
        s1 += (double)x[i + 1] * x[i + 1];
        s2 += (double)x[i + 2] * x[i + 2];
        s3 += (double)x[i + 3] * x[i + 3];
    }
    for (; i < n; i++)
        s0 += (double)x[i] * x[i];
    return (s0 + s1) + (s2 + s3);
}

/* param (n) -= lr * (mhat / (sqrt(vhat) + eps) + weight_decay * param), with g = grad * grad_scale,
 * m = beta1 m + (1 - beta1) g, v = beta2 v + (1 - beta2) g^2, mhat = m / (1 - beta1^t), vhat = v / (1 - beta2^t) */
void grt_adamw(float *param, const float *grad, float *m, float *v, size_t n, float lr, float beta1, float beta2,
               float eps, float weight_decay, float grad_scale, int t) {
    const float c1 = (float)(1.0 / (1.0 - pow(beta1, t))), c2 = (float)(1.0 / (1.0 - pow(beta2, t)));
    for (size_t i = 0; i < n; i++) {
        float g = grad[i] * grad_scale;
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        param[i] -= lr * (mi * c1 / (sqrtf(vi * c2) + eps) + weight_decay * param[i]);
    }
}
