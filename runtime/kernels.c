/* kernels.c — libgalvrt's fp32 kernels for the CPU target, forward and
 * backward: matmul, embedding (tensor-parallel vocabulary shard), rotary,
 * layernorm, rmsnorm, GELU, SwiGLU, attention (causal or not, MHA or GQA),
 * residual, softmax cross-entropy, and the optimizer's sum of squares and AdamW.
 *
 * Why this shape: the GEMMs (the linear layers and attention's Q K^T and P V)
 * carry nearly all the flops, so they go to OpenBLAS's cblas_sgemm and use its
 * threads; everything else is one or two passes over memory. The exceptions
 * are the kernels that take an exponential per element (the softmaxes,
 * GELU's tanh, SwiGLU's sigmoid): as libm calls in scalar loops they would
 * cost a sizeable fraction of the GEMMs, so they run on four-wide vectors
 * (GCC/clang vector extensions) with an e^x of our own, accurate to ~1e-7.
 * Reductions that feed a division or a log (norm statistics, softmax sums)
 * end in double. Every backward ACCUMULATES (+=) into the gradients it is
 * given, and a NULL gradient is not computed.
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

/* ---- rows over the thread pool ------------------------------------------- */

/* Run fn on rows [0, rows) of a kernel whose arguments are ctx, split over
 * the pool's threads (pool.c); cols: the work of a row, in elements. acc0
 * and acc1 (n floats, NULL: none) are vectors the rows sum into. */
static void run_rows(int64_t rows, int64_t cols, void (*fn)(const GrtRows *, int64_t, int64_t, int), void *ctx,
                     float *acc0, float *acc1, size_t n) {
    GrtRows job = {.rows = rows, .cols = cols, .fn = fn, .ctx = ctx, .acc = {acc0, acc1}, .acc_n = n};
    grt_pool_run(&job);
}

/* ---- four-wide vectors ------------------------------------------------------ */

/* Four floats (SSE on x86-64, NEON on AArch64), and the lane masks comparisons give. */
typedef float F4 __attribute__((vector_size(16)));
typedef int32_t I4 __attribute__((vector_size(16)));

static inline F4 f4_splat(float c) { return (F4){c, c, c, c}; }

/* Four floats from p; any alignment. */
static inline F4 f4_load(const float *p) {
    F4 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void f4_store(float *p, F4 v) { memcpy(p, &v, sizeof v); }

/* The first n (< 4) floats from p, the other lanes fill. */
static inline F4 f4_load_part(const float *p, int n, float fill) {
    F4 v = f4_splat(fill);
    for (int i = 0; i < n; i++)
        v[i] = p[i];
    return v;
}

static inline void f4_store_part(float *p, F4 v, int n) {
    for (int i = 0; i < n; i++)
        p[i] = v[i];
}

/* Per lane: mask ? a : b. */
static inline F4 f4_select(I4 mask, F4 a, F4 b) { return (F4)((mask & (I4)a) | (~mask & (I4)b)); }

static inline float f4_sum(F4 v) { return (v[0] + v[1]) + (v[2] + v[3]); }

/* e^x per lane, within 1e-7 relative for x in [-87.3, 88]: x = n ln2 + r with
 * |r| <= ln2 / 2 (ln2 split in two, so r keeps float's precision), e^r by its
 * Taylor series to r^7 (remainder < 6e-9), 2^n built in the exponent bits.
 * Below -87.3 (where e^x leaves the normal floats) gives 0, above 88 gives
 * e^88; NaN stays NaN. */
static inline F4 f4_exp(F4 x) {
    F4 xc = f4_select(x < -87.3f, f4_splat(-87.3f), x);
    xc = f4_select(xc > 88.0f, f4_splat(88.0f), xc);
    /* adding 1.5 * 2^23 rounds x log2(e) to an integer n held in the low mantissa bits */
    F4 t = xc * 1.44269504f + 12582912.0f;
    F4 n = t - 12582912.0f;
    F4 r = xc - n * 0.693359375f + n * 2.12194440e-4f;
    F4 p = f4_splat(1.0f / 5040);
    p = p * r + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    I4 pow2n = ((I4)t - 0x4B400000 + 127) << 23; /* n + 127 in [1, 254]: a normal float */
    return f4_select(x < -87.3f, f4_splat(0.0f), p * (F4)pow2n);
}

/* dst (n) = softmax(src (n)) = e^(src - max) / sum; dst may be src. Returns log(sum e^src), the log-sum-exp. */
static double softmax(float *dst, const float *src, int n) {
    F4 m4 = f4_splat(-INFINITY);
    int j = 0;
    for (; j + 4 <= n; j += 4) {
        F4 v = f4_load(src + j);
        m4 = f4_select(v > m4, v, m4);
    }
    F4 tail = f4_load_part(src + j, n - j, -INFINITY);
    m4 = f4_select(tail > m4, tail, m4);
    float mx = fmaxf(fmaxf(m4[0], m4[1]), fmaxf(m4[2], m4[3]));
    /* lane sums flushed to double every 256 elements, so long rows (a vocabulary) keep float's precision */
    double sum = 0.0;
    F4 s4 = f4_splat(0.0f);
    for (j = 0; j + 4 <= n; j += 4) {
        F4 e = f4_exp(f4_load(src + j) - mx);
        f4_store(dst + j, e);
        s4 += e;
        if ((j & 255) == 252) sum += f4_sum(s4), s4 = f4_splat(0.0f);
    }
    F4 e = f4_exp(f4_load_part(src + j, n - j, 0.0f) - mx);
    f4_store_part(dst + j, e, n - j);
    for (int i = 0; i < n - j; i++)
        sum += e[i];
    sum += f4_sum(s4);
    F4 inv = f4_splat((float)(1.0 / sum));
    for (j = 0; j + 4 <= n; j += 4)
        f4_store(dst + j, f4_load(dst + j) * inv);
    for (; j < n; j++)
        dst[j] *= inv[0];
    return mx + log(sum);
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

/* ---- bf16 GEMMs (mixed precision) --------------------------------------------- */

uint16_t grt_bf16_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* NaN: kept, made quiet */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16); /* to nearest, ties to even (an overflow is inf) */
}

float grt_bf16_float(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

void grt_bf16_round(void *dst, const float *src, size_t n, int wide) {
    uint16_t *bits = dst;
    float *vals = dst;
    for (size_t i = 0; i < n; i++) {
        if (wide) vals[i] = grt_bf16_float(grt_bf16_bits(src[i]));
        else bits[i] = grt_bf16_bits(src[i]);
    }
}

void grt_bf16_widen(float *dst, const void *src, size_t n) {
    const uint16_t *bits = src;
    for (size_t i = 0; i < n; i++) dst[i] = grt_bf16_float(bits[i]);
}

/* dst (rows, cols) = src rounded to bf16, widened to fp32: the generated
 * kernel of cols columns where there is one, else the reference. */
static float *round_wide(float *dst, const float *src, int rows, int cols) {
    GrtBf16Fn *k = (GrtBf16Fn *)grt_kernel_find(GRT_K_BF16, cols, GRT_KF_WIDE);
    if (k) k(rows, dst, src);
    else grt_bf16_round(dst, src, (size_t)rows * cols, 1);
    return dst;
}

/* The places of one linear's rounded operands in ops (galvrt_sizes.h's
 * grt_size_linear16 order): input (N, C), output gradient (N, OC), weight (OC, C). */
static void wide_parts(float *ops, int N, int C, int OC, float **x, float **dy, float **w) {
    *x = ops;
    *dy = *x + (size_t)grt_round8((double)N * C);
    *w = *dy + (size_t)grt_round8((double)N * OC);
}

/* The host holds rounded operands widened to fp32 (GRT_GEMM16_WIDE). */
static void check_wide(int bytes) {
    if (bytes != GRT_GEMM16_WIDE) fail("grt_matmul16", "the host's rounded operands are 4-byte (GRT_GEMM16_WIDE)");
}

void grt_matmul16_forward(float *out, const float *inp, const uint16_t *inp16, const float *weight, const float *bias,
                          int N, int C, int OC, int bytes, void *ops) {
    check_wide(bytes);
    if (N <= 0 || OC <= 0 || C <= 0) {
        grt_matmul_forward(out, inp, weight, bias, N, C, OC);
        return;
    }
    float *x, *dy, *w;
    wide_parts(ops, N, C, OC, &x, &dy, &w);
    grt_matmul_forward(out, inp16 ? inp : round_wide(x, inp, N, C), round_wide(w, weight, OC, C), bias, N, C, OC);
}

void grt_matmul16_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                           const uint16_t *inp16, const float *weight, int N, int C, int OC, int bytes, void *ops) {
    check_wide(bytes);
    if (N <= 0 || OC <= 0) return;
    float *x, *dy, *w;
    wide_parts(ops, N, C, OC, &x, &dy, &w);
    if (C > 0 && (dinp || dweight)) round_wide(dy, dout, N, OC);
    if (C > 0 && dinp) round_wide(w, weight, OC, C);
    const float *xr = inp16 ? inp : C > 0 && dweight ? round_wide(x, inp, N, C) : x;
    /* the bias gradient from the fp32 output gradient, as Megatron-LM sums it in fp32 */
    grt_matmul_backward(C > 0 && dinp ? dinp : NULL, C > 0 ? dweight : NULL, NULL, dy, xr, w, N, C, OC);
    if (dbias) grt_matmul_backward(NULL, NULL, dbias, dout, inp, weight, N, 0, OC);
}

/* ---- embedding -------------------------------------------------------------- */

/* The row of wte holding token tok, or -1 when another rank's shard holds it. */
static long shard_row(int32_t tok, int vocab_start, int vocab_rows) {
    long row = (long)tok - vocab_start;
    return row >= 0 && row < vocab_rows ? row : -1;
}

typedef struct Embedding {
    float *out, *dwte, *dwpe;
    const float *wte, *wpe, *dout;
    const int32_t *tokens;
    int BT, T, C, vocab_start, vocab_rows;
} Embedding;

/* Tokens [n0, n1) of the forward. */
static void embedding_forward_rows(const GrtRows *job, int64_t n0, int64_t n1, int part) {
    const Embedding *e = job->ctx;
    size_t C = (size_t)e->C;
    (void)part;
    for (int64_t i = n0; i < n1; i++) {
        float *o = e->out + (size_t)i * C;
        long row = shard_row(e->tokens[i], e->vocab_start, e->vocab_rows);
        if (row >= 0)
            memcpy(o, e->wte + (size_t)row * C, C * sizeof(float));
        else
            memset(o, 0, C * sizeof(float));
        if (e->wpe) {
            const float *p = e->wpe + (size_t)(i % e->T) * C;
            for (size_t c = 0; c < C; c++)
                o[c] += p[c];
        }
    }
}

/* out (B,T,C) = wte (vocab_rows,C)[tokens (B,T) - vocab_start] + wpe (T,C)[t]; tokens off the shard give 0 */
void grt_embedding_forward(float *out, const int32_t *tokens, const float *wte, const float *wpe, int B, int T, int C,
                           int vocab_start, int vocab_rows) {
    Embedding e = {.out = out, .wte = wte, .wpe = wpe, .tokens = tokens, .BT = B * T, .T = T, .C = C,
                   .vocab_start = vocab_start, .vocab_rows = vocab_rows};
    run_rows((int64_t)B * T, C, embedding_forward_rows, &e, NULL, NULL, 0);
}

/* Columns [c0, c1) of the backward, for every token in order: two tokens
 * may share a row of dwte, but never a column of another part. */
static void embedding_backward_cols(const GrtRows *job, int64_t c0, int64_t c1, int part) {
    const Embedding *e = job->ctx;
    size_t C = (size_t)e->C;
    (void)part;
    for (int i = 0; i < e->BT; i++) {
        const float *d = e->dout + (size_t)i * C;
        long row = shard_row(e->tokens[i], e->vocab_start, e->vocab_rows);
        if (e->dwte && row >= 0) {
            float *g = e->dwte + (size_t)row * C;
            for (int64_t c = c0; c < c1; c++)
                g[c] += d[c];
        }
        if (e->dwpe) {
            float *g = e->dwpe + (size_t)(i % e->T) * C;
            for (int64_t c = c0; c < c1; c++)
                g[c] += d[c];
        }
    }
}

/* dwte (vocab_rows,C) += dout (B,T,C) scattered by token (shard rows only); dwpe (T,C) += sum_b dout */
void grt_embedding_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tokens, int B, int T, int C,
                            int vocab_start, int vocab_rows) {
    Embedding e = {.dwte = dwte, .dwpe = dwpe, .dout = dout, .tokens = tokens, .BT = B * T, .T = T, .C = C,
                   .vocab_start = vocab_start, .vocab_rows = vocab_rows};
    run_rows(C, (int64_t)B * T, embedding_backward_cols, &e, NULL, NULL, 0);
}

/* ---- rotary ----------------------------------------------------------------- */

/* x (B,T,heads,hd) rotated in place: pair (2i, 2i+1) at position t0 + t by angle sign * (t0 + t) * theta^(-2i/hd). */
static void rope_rotate(float *x, int B, int T, int heads, int hd, float theta, double sign, int t0) {
    if (hd <= 0 || T <= 0) return;
    int half = hd / 2;
    float *cs = malloc(2 * (size_t)(half > 0 ? half : 1) * sizeof(float));
    if (!cs) fail("rope", "out of memory");
    float *sn = cs + half;
    for (int t = 0; t < T; t++) {
        /* the angles in double: t * freq reaches thousands of radians */
        for (int i = 0; i < half; i++) {
            double ang = sign * (t0 + t) * pow((double)theta, -2.0 * i / hd);
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

/* cs, sn (T, hd/2) = cos, sin of t theta^(-2i/hd): rope_rotate's angles, for the generated kernels */
void grt_rope_table(float *cs, float *sn, int T, int hd, float theta) {
    int half = hd / 2;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            double ang = 1.0 * t * pow((double)theta, -2.0 * i / hd);
            cs[(size_t)t * half + i] = (float)cos(ang);
            sn[(size_t)t * half + i] = (float)sin(ang);
        }
}

/* x (B,T,heads,hd) = rope(x), in place */
void grt_rope_forward(float *x, int B, int T, int heads, int hd, float theta) {
    rope_rotate(x, B, T, heads, hd, theta, 1.0, 0);
}

/* dx (B,T,heads,hd) = rope^T(dx), in place: rotations are orthogonal, so the transpose is the inverse */
void grt_rope_backward(float *dx, int B, int T, int heads, int hd, float theta) {
    rope_rotate(dx, B, T, heads, hd, theta, -1.0, 0);
}

/* x (T,heads,hd) of positions t0 .. t0 + T - 1, rotated (or back) in place: a context-parallel rank's chunk */
void grt_rope_at(float *x, int T, int heads, int hd, float theta, int t0, int backward) {
    rope_rotate(x, 1, T, heads, hd, theta, backward ? -1.0 : 1.0, t0);
}

/* ---- normalization ---------------------------------------------------------- */

typedef struct Norm {
    float *out, *mean, *rstd, *dinp;     /* forward's outputs; backward's input gradient */
    const float *inp, *weight, *bias, *dout;
    const float *smean, *srstd;          /* backward: the saved statistics */
    int C;
    float eps;
} Norm;

/* Rows [n0, n1) of the LayerNorm forward. */
static void layernorm_forward_rows(const GrtRows *job, int64_t n0, int64_t n1, int part) {
    const Norm *a = job->ctx;
    const int C = a->C;
    (void)part;
    for (int64_t n = n0; n < n1; n++) {
        const float *x = a->inp + (size_t)n * C;
        float *o = a->out + (size_t)n * C;
        double s = 0.0;
        for (int c = 0; c < C; c++)
            s += x[c];
        double m = s / C, v = 0.0;
        for (int c = 0; c < C; c++) {
            double d = x[c] - m;
            v += d * d;
        }
        float fm = (float)m, r = (float)(1.0 / sqrt(v / C + a->eps));
        for (int c = 0; c < C; c++)
            o[c] = (x[c] - fm) * r * a->weight[c] + (a->bias ? a->bias[c] : 0.0f);
        if (a->mean) a->mean[n] = fm;
        if (a->rstd) a->rstd[n] = r;
    }
}

/* out (N,C) = (inp (N,C) - mean) * rstd * weight (C) + bias (C); mean, rstd (N) saved */
void grt_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                           const float *bias, int N, int C, float eps) {
    Norm a = {.out = out, .mean = mean, .rstd = rstd, .inp = inp, .weight = weight, .bias = bias, .C = C, .eps = eps};
    run_rows(N, C, layernorm_forward_rows, &a, NULL, NULL, 0);
}

/* Rows [n0, n1) of the LayerNorm backward, into this part's dweight and dbias. */
static void layernorm_backward_rows(const GrtRows *job, int64_t n0, int64_t n1, int part) {
    const Norm *a = job->ctx;
    const int C = a->C;
    const float *weight = a->weight;
    float *dweight = grt_rows_acc(job, part, 0), *dbias = grt_rows_acc(job, part, 1);
    for (int64_t n = n0; n < n1; n++) {
        const float *x = a->inp + (size_t)n * C, *d = a->dout + (size_t)n * C;
        float m = a->smean[n], r = a->srstd[n];
        double sd = 0.0, sdn = 0.0;
        for (int c = 0; c < C; c++) {
            float nrm = (x[c] - m) * r, dn = d[c] * weight[c];
            sd += dn;
            sdn += dn * nrm;
        }
        float md = (float)(sd / C), mdn = (float)(sdn / C);
        for (int c = 0; c < C; c++) {
            float nrm = (x[c] - m) * r;
            if (a->dinp) a->dinp[(size_t)n * C + c] += r * (d[c] * weight[c] - md - nrm * mdn);
            if (dweight) dweight[c] += d[c] * nrm;
            if (dbias) dbias[c] += d[c];
        }
    }
}

/* dinp (N,C) += rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)), dnorm = dout * weight;
 * dweight (C) += sum_n dout * norm; dbias (C) += sum_n dout */
void grt_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                            const float *weight, const float *mean, const float *rstd, int N, int C) {
    Norm a = {.dinp = dinp, .inp = inp, .weight = weight, .dout = dout, .smean = mean, .srstd = rstd, .C = C};
    run_rows(N, C, layernorm_backward_rows, &a, dweight, dbias, (size_t)C);
}

/* Rows [n0, n1) of the RMSNorm forward. */
static void rmsnorm_forward_rows(const GrtRows *job, int64_t n0, int64_t n1, int part) {
    const Norm *a = job->ctx;
    const int C = a->C;
    (void)part;
    for (int64_t n = n0; n < n1; n++) {
        const float *x = a->inp + (size_t)n * C;
        float *o = a->out + (size_t)n * C;
        double ss = 0.0;
        for (int c = 0; c < C; c++)
            ss += (double)x[c] * x[c];
        float r = (float)(1.0 / sqrt(ss / C + a->eps));
        for (int c = 0; c < C; c++)
            o[c] = x[c] * r * a->weight[c];
        if (a->rstd) a->rstd[n] = r;
    }
}

/* out (N,C) = inp (N,C) * rstd * weight (C); rstd (N) = 1 / sqrt(mean(inp^2) + eps) saved */
void grt_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N, int C, float eps) {
    Norm a = {.out = out, .rstd = rstd, .inp = inp, .weight = weight, .C = C, .eps = eps};
    run_rows(N, C, rmsnorm_forward_rows, &a, NULL, NULL, 0);
}

/* Rows [n0, n1) of the RMSNorm backward, into this part's dweight. */
static void rmsnorm_backward_rows(const GrtRows *job, int64_t n0, int64_t n1, int part) {
    const Norm *a = job->ctx;
    const int C = a->C;
    const float *weight = a->weight;
    float *dweight = grt_rows_acc(job, part, 0);
    for (int64_t n = n0; n < n1; n++) {
        const float *x = a->inp + (size_t)n * C, *d = a->dout + (size_t)n * C;
        float r = a->srstd[n];
        double sdn = 0.0;
        for (int c = 0; c < C; c++)
            sdn += (double)(d[c] * weight[c]) * (x[c] * r);
        float mdn = (float)(sdn / C);
        for (int c = 0; c < C; c++) {
            float nrm = x[c] * r;
            if (a->dinp) a->dinp[(size_t)n * C + c] += r * (d[c] * weight[c] - nrm * mdn);
            if (dweight) dweight[c] += d[c] * nrm;
        }
    }
}

/* dinp (N,C) += rstd * (dnorm - norm * mean(dnorm * norm)), norm = inp * rstd, dnorm = dout * weight;
 * dweight (C) += sum_n dout * norm */
void grt_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                          const float *rstd, int N, int C) {
    Norm a = {.dinp = dinp, .inp = inp, .weight = weight, .dout = dout, .srstd = rstd, .C = C};
    run_rows(N, C, rmsnorm_backward_rows, &a, dweight, NULL, (size_t)C);
}

/* ---- pointwise -------------------------------------------------------------- */

#define GELU_K 0.7978845608028654f /* sqrt(2 / pi) */
#define GELU_A 0.044715f

/* GELU as x s with s = 0.5 (1 + tanh u) = sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3):
 * the sigmoid form never subtracts nearly equal numbers, where 1 + tanh u does for u << 0. */

/* out (4) = x sigmoid(2u) */
static inline F4 gelu4(F4 x) {
    F4 u = GELU_K * (x + GELU_A * x * x * x);
    return x / (1.0f + f4_exp(-2.0f * u));
}

/* d gelu(x) / dx (4) = s + 2 x s (1 - s) du/dx, with 1 - s = e s, e = e^-2u */
static inline F4 gelu_grad4(F4 x) {
    F4 e = f4_exp(-2.0f * (GELU_K * (x + GELU_A * x * x * x)));
    F4 s = 1.0f / (1.0f + e);
    return s + 2.0f * x * s * (e * s) * (GELU_K * (1.0f + 3.0f * GELU_A * x * x));
}

/* The arguments of a kernel with one value per element, or one row per (N, F) row. */
typedef struct Pointwise {
    float *out;
    const float *a, *b;
    int F;
} Pointwise;

/* Elements [i, n) of the GELU forward: out = gelu(a). */
static void gelu_forward_rows(const GrtRows *job, int64_t i, int64_t n, int part) {
    const Pointwise *p = job->ctx;
    (void)part;
    for (; i + 4 <= n; i += 4)
        f4_store(p->out + i, gelu4(f4_load(p->a + i)));
    f4_store_part(p->out + i, gelu4(f4_load_part(p->a + i, (int)(n - i), 0.0f)), (int)(n - i));
}

/* out (n) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), x = inp (n) */
void grt_gelu_forward(float *out, const float *inp, size_t n) {
    Pointwise p = {.out = out, .a = inp};
    run_rows((int64_t)n, 1, gelu_forward_rows, &p, NULL, NULL, 0);
}

/* Elements [i, n) of the GELU backward: out += b * gelu'(a). */
static void gelu_backward_rows(const GrtRows *job, int64_t i, int64_t n, int part) {
    const Pointwise *p = job->ctx;
    float *dinp = p->out;
    (void)part;
    for (; i + 4 <= n; i += 4)
        f4_store(dinp + i, f4_load(dinp + i) + f4_load(p->b + i) * gelu_grad4(f4_load(p->a + i)));
    int k = (int)(n - i);
    F4 d = f4_load_part(dinp + i, k, 0.0f) +
           f4_load_part(p->b + i, k, 0.0f) * gelu_grad4(f4_load_part(p->a + i, k, 0.0f));
    f4_store_part(dinp + i, d, k);
}

/* dinp (n) += dout (n) * gelu'(inp (n)) */
void grt_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
    Pointwise p = {.out = dinp, .a = inp, .b = dout};
    run_rows((int64_t)n, 1, gelu_backward_rows, &p, NULL, NULL, 0);
}

/* sigmoid (4) = 1 / (1 + e^-g) */
static inline F4 sigmoid4(F4 g) { return 1.0f / (1.0f + f4_exp(-g)); }

/* SwiGLU's backward on four lanes: *dg += d u silu'(g) with silu'(g) = s (1 + g (1 - s)), 1 - s = e s,
 * e = e^-g; *du += d g s */
static inline void swiglu_grad4(F4 *dg, F4 *du, F4 g, F4 u, F4 d) {
    F4 e = f4_exp(-g);
    F4 s = 1.0f / (1.0f + e);
    *dg += d * u * s * (1.0f + g * (e * s));
    *du += d * g * s;
}

/* Rows [n0, n1) of the SwiGLU forward. */
static void swiglu_forward_rows(const GrtRows *job, int64_t n0, int64_t n1, int part) {
    const Pointwise *p = job->ctx;
    const int F = p->F;
    (void)part;
    for (int64_t n = n0; n < n1; n++) {
        const float *g = p->a + (size_t)n * 2 * F, *u = g + F;
        float *o = p->out + (size_t)n * F;
        int f = 0;
        for (; f + 4 <= F; f += 4) {
            F4 g4 = f4_load(g + f);
            f4_store(o + f, g4 * sigmoid4(g4) * f4_load(u + f));
        }
        F4 g4 = f4_load_part(g + f, F - f, 0.0f);
        f4_store_part(o + f, g4 * sigmoid4(g4) * f4_load_part(u + f, F - f, 0.0f), F - f);
    }
}

/* out (N,F) = silu(gate) * up, inp (N,2F) = [gate (F) | up (F)] per row, silu(g) = g sigmoid(g) */
void grt_swiglu_forward(float *out, const float *inp, int N, int F) {
    Pointwise p = {.out = out, .a = inp, .F = F};
    run_rows(N, 2 * (int64_t)F, swiglu_forward_rows, &p, NULL, NULL, 0);
}

/* Rows [n0, n1) of the SwiGLU backward. */
static void swiglu_backward_rows(const GrtRows *job, int64_t n0, int64_t n1, int part) {
    const Pointwise *p = job->ctx;
    const int F = p->F;
    (void)part;
    for (int64_t n = n0; n < n1; n++) {
        const float *g = p->a + (size_t)n * 2 * F, *u = g + F, *d = p->b + (size_t)n * F;
        float *dg = p->out + (size_t)n * 2 * F, *du = dg + F;
        int f = 0;
        for (; f + 4 <= F; f += 4) {
            F4 dg4 = f4_load(dg + f), du4 = f4_load(du + f);
            swiglu_grad4(&dg4, &du4, f4_load(g + f), f4_load(u + f), f4_load(d + f));
            f4_store(dg + f, dg4);
            f4_store(du + f, du4);
        }
        int k = F - f;
        F4 dg4 = f4_load_part(dg + f, k, 0.0f), du4 = f4_load_part(du + f, k, 0.0f);
        swiglu_grad4(&dg4, &du4, f4_load_part(g + f, k, 0.0f), f4_load_part(u + f, k, 0.0f),
                     f4_load_part(d + f, k, 0.0f));
        f4_store_part(dg + f, dg4, k);
        f4_store_part(du + f, du4, k);
    }
}

/* dinp (N,2F) += [dout * up * silu'(gate) | dout * silu(gate)], silu'(g) = s (1 + g (1 - s)), s = sigmoid(g) */
void grt_swiglu_backward(float *dinp, const float *inp, const float *dout, int N, int F) {
    Pointwise p = {.out = dinp, .a = inp, .b = dout, .F = F};
    run_rows(N, 3 * (int64_t)F, swiglu_backward_rows, &p, NULL, NULL, 0);
}

/* Elements [i0, i1) of the residual. */
static void residual_rows(const GrtRows *job, int64_t i0, int64_t i1, int part) {
    const Pointwise *p = job->ctx;
    (void)part;
    for (int64_t i = i0; i < i1; i++)
        p->out[i] = p->a[i] + p->b[i];
}

/* out (n) = a (n) + b (n) */
void grt_residual_forward(float *out, const float *a, const float *b, size_t n) {
    Pointwise p = {.out = out, .a = a, .b = b};
    run_rows((int64_t)n, 1, residual_rows, &p, NULL, NULL, 0);
}

/* ---- dropout (galvrt.h) ------------------------------------------------------ */

void grt_dropout_reference(float *out, const float *a, const float *b, int64_t rows, int cols, int T, uint64_t key,
                           int64_t seq0, int64_t r0, int64_t e0, uint32_t threshold, float scale) {
    for (int64_t i = 0; i < rows; i++) {
        int64_t r = r0 + i;
        uint64_t seq = grt_dropout_seq(key, seq0 + r / T), base = (uint64_t)(e0 + (r % T) * cols);
        float *o = out + i * cols;
        const float *bi = b + i * cols, *ai = a ? a + i * cols : NULL;
        for (int c = 0; c < cols; c++) {
            float v = grt_dropout_keep(seq, base + (uint64_t)c, threshold) ? bi[c] * scale : 0.0f;
            o[c] = ai ? ai[c] + v : v;
        }
    }
}

/* One dropout call's arguments, for its rows over the pool. */
typedef struct DropCall {
    void (*fn)(void); /* the generated kernel, or NULL: the reference */
    float *out;
    const float *a, *b;
    int cols, T;
    uint64_t key;
    int64_t seq0, r0, e0;
    uint32_t threshold;
    float scale;
} DropCall;

/* Rows [i0, i1): the same call moved to its first row (r0 counts the rows, so the mask moves too). */
static void dropout_part(const GrtRows *job, int64_t i0, int64_t i1, int part) {
    const DropCall *x = job->ctx;
    size_t at = (size_t)i0 * x->cols;
    float *out = x->out + at;
    const float *a = x->a ? x->a + at : NULL, *b = x->b + at;
    (void)part;
    if (x->fn)
        ((GrtDropoutFn *)x->fn)(i1 - i0, out, a, b, (int64_t)x->key, x->seq0, x->r0 + i0, x->e0,
                                (int64_t)x->threshold, x->scale);
    else
        grt_dropout_reference(out, a, b, i1 - i0, x->cols, x->T, x->key, x->seq0, x->r0 + i0, x->e0, x->threshold,
                              x->scale);
}

/* out (rows, cols) = [a +] dropout(b) at d over the pool, by kernel fn when not NULL (a
 * GrtDropoutFn of these columns and T; with GRT_KF_RESIDUAL when a is not NULL). */
static void dropout_run(void (*fn)(void), float *out, const float *a, const float *b, int64_t rows, int cols, int T,
                        const GrtDropout *d, int64_t seq0, int64_t r0, int64_t e0) {
    DropCall x = {.fn = fn, .out = out, .a = a, .b = b, .cols = cols, .T = T, .key = d->key, .seq0 = seq0,
                  .r0 = r0, .e0 = e0, .threshold = grt_dropout_threshold(d->p), .scale = 1.0f / (1.0f - d->p)};
    run_rows(rows, cols, dropout_part, &x, NULL, NULL, 0);
}

void grt_dropout_block(float *dst, const float *src, int64_t rows, int cols, int T, const GrtDropout *d, int64_t seq,
                       int64_t e0) {
    dropout_run(d->plain, dst, NULL, src, rows, cols, T, d, seq, 0, e0);
}

void grt_dropout_rows(float *x, int64_t rows, int cols, int T, const GrtDropout *d) {
    grt_dropout_copy(x, x, rows, cols, T, d);
}

void grt_dropout_copy(float *dst, const float *src, int64_t rows, int cols, int T, const GrtDropout *d) {
    dropout_run(d->plain, dst, NULL, src, rows, cols, T, d, d->seq0, d->r0, 0);
}

void grt_residual_dropout_forward(float *out, const float *a, const float *b, int64_t rows, int cols, int T,
                                  const GrtDropout *d) {
    dropout_run(d->fwd, out, a, b, rows, cols, T, d, d->seq0, d->r0, 0);
}

/* dst (m, T) = dropout(src (m, T)): query rows t0.. of local head h of
 * sequence b, element ((h0 + h) T + t) T + t2 of the sequence's stream. */
static void att_dropout_block(float *dst, const float *src, int m, int T, int t0, int b, int h, const GrtDropout *d) {
    dropout_run(d->att, dst, NULL, src, m, T, T, d, d->seq0 + b, t0, (int64_t)(d->h0 + h) * T * T);
}

/* ---- attention -------------------------------------------------------------- */

/* row (T) = softmax(row[0..n)) with zeros at [n, T) (the masked keys) */
static void softmax_row(float *row, int n, int T) {
    softmax(row, row, n);
    memset(row + n, 0, (size_t)(T - n) * sizeof(float));
}

/* dr (n) = p (n) * (dr - sum(p * dr)): the softmax's backward for one row */
static void softmax_row_backward(float *dr, const float *p, int n) {
    double sum = 0.0; /* lane sums flushed to double every 256 elements, as in softmax */
    F4 d4 = f4_splat(0.0f);
    int j = 0;
    for (; j + 4 <= n; j += 4) {
        d4 += f4_load(p + j) * f4_load(dr + j);
        if ((j & 255) == 252) sum += f4_sum(d4), d4 = f4_splat(0.0f);
    }
    for (int i = j; i < n; i++)
        sum += p[i] * dr[i];
    float dot = (float)(sum + f4_sum(d4));
    for (j = 0; j + 4 <= n; j += 4)
        f4_store(dr + j, f4_load(p + j) * (f4_load(dr + j) - dot));
    for (; j < n; j++)
        dr[j] = p[j] * (dr[j] - dot);
}

/* Rows per GEMM block: ATT_BLOCK under a causal mask, else the whole sequence. */
static int att_block(int T, int causal) { return causal && T > ATT_BLOCK ? ATT_BLOCK : T; }

/* One of the forward's two GEMM passes, per (b, h) and row block, with q, k, v (T,hd) read from qkv
 * (B,T,(H+2KVH)hd) and kv head h / (H/KVH): scores att (B,H,T,T) = q @ k^T * scale (pv 0), or
 * out (B,T,H hd) = att @ v (pv 1). Under a causal mask a block multiplies only the keys it sees. */
static void attention_gemms(int pv, float scale, float *out, float *att, const float *qkv, int B, int T, int H, int KVH,
                            int hd, int causal, const GrtDropout *d, float *tmp) {
    const size_t S = (size_t)(H + 2 * KVH) * hd, HD = (size_t)H * hd, TT = (size_t)T * T;
    const int group = H / KVH, blk = att_block(T, causal);
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
                if (!pv) /* scores (m, ncols) = q[r0:r0+m] @ k[0:ncols]^T * scale */
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, ncols, hd, scale, q + r0 * S, (int)S, k,
                                (int)S, 0.0f, a + (size_t)r0 * T, T);
                else { /* o[r0:r0+m] (m, hd) = att (m, ncols) @ v[0:ncols] (ncols, hd), att dropped by d */
                    const float *p = a + (size_t)r0 * T;
                    if (d) att_dropout_block(tmp, p, m, T, r0, b, h, d), p = tmp;
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, hd, ncols, 1.0f, p, T, v, (int)S, 0.0f,
                                o + r0 * HD, (int)HD);
                }
            }
        }
    }
}

typedef struct AttSoftmax {
    float *att;
    int T, causal;
    GrtAttSoftmaxFwdFn *sm; /* the generated kernel, which scales the scores itself; NULL: the reference */
    int bf16;               /* the probabilities rounded to bf16 in place (mixed precision) */
} AttSoftmax;

/* Rows [r0, r1) of att (B H T, T): row r is query t = r mod T, which sees keys [0, t] under the mask.
 * The generated kernel runs once over them (its rows wrap from query T - 1 to 0). */
static void attention_softmax_rows(const GrtRows *job, int64_t r0, int64_t r1, int part) {
    const AttSoftmax *a = job->ctx;
    (void)part;
    if (a->sm && r1 > r0) a->sm(r1 - r0, a->att + (size_t)r0 * a->T, r0 % a->T);
    for (int64_t r = r0; !a->sm && r < r1; r++) {
        int t = (int)(r % a->T);
        softmax_row(a->att + (size_t)r * a->T, a->causal ? t + 1 : a->T, a->T);
    }
    if (a->bf16) grt_bf16_round(a->att + (size_t)r0 * a->T, a->att + (size_t)r0 * a->T, (size_t)(r1 - r0) * a->T, 1);
}

/* att (B,H,T,T) = softmax(q @ k^T / sqrt(hd), masked); out (B,T,H hd) = att @ v: the scores'
 * GEMMs, then every row's softmax over the pool's threads, then att @ v's GEMMs */
void grt_attention_forward(float *out, float *att, const float *qkv, int B, int T, int H, int KVH, int hd, int causal) {
    grt_attention_forward_with(out, att, qkv, B, T, H, KVH, hd, causal, NULL);
}

/* The same, the softmax's rows (and their scale) by the kernel sm when not NULL */
void grt_attention_forward_with(float *out, float *att, const float *qkv, int B, int T, int H, int KVH, int hd,
                                int causal, GrtAttSoftmaxFwdFn *sm) {
    grt_attention_forward_dropout(out, att, qkv, B, T, H, KVH, hd, causal, sm, NULL, 0);
}

/* The same, att @ v through the dropout d when not NULL (a row block's dropped copy in a temporary); bf16: att
 * rounded to bf16 as each row's softmax ends (galvrt.h) */
void grt_attention_forward_dropout(float *out, float *att, const float *qkv, int B, int T, int H, int KVH, int hd,
                                   int causal, GrtAttSoftmaxFwdFn *sm, const GrtDropout *d, int bf16) {
    if (B <= 0 || T <= 0 || H <= 0 || hd <= 0) return;
    if (KVH <= 0 || H % KVH != 0) fail("grt_attention_forward", "H must be a multiple of KVH");
    const float scale = 1.0f / sqrtf((float)hd);
    attention_gemms(0, sm ? 1.0f : scale, out, att, qkv, B, T, H, KVH, hd, causal, NULL, NULL);
    AttSoftmax a = {.att = att, .T = T, .causal = causal, .sm = sm, .bf16 = bf16};
    run_rows((int64_t)B * H * T, causal ? T / 2 + 1 : T, attention_softmax_rows, &a, NULL, NULL, 0);
    float *tmp = d ? calloc((size_t)att_block(T, causal) * T, sizeof(float)) : NULL;
    if (d && !tmp) fail("grt_attention_forward", "out of memory");
    attention_gemms(1, 1.0f, out, att, qkv, B, T, H, KVH, hd, causal, d, tmp);
    free(tmp);
}

/* The backward's GEMMs and softmax rows (as grt_attention_backward_dropout), dp holding one row
 * block's datt and, with dropout, its dropped probabilities after it (att_block(T, causal) T floats each);
 * bf16: each block's dpre rounded to bf16 before its GEMMs (dout comes rounded) */
static void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att, int B, int T, int H,
                               int KVH, int hd, int causal, GrtAttSoftmaxBwdFn *sm, const GrtDropout *drop, float *dp,
                               int bf16) {
    if (KVH <= 0 || H % KVH != 0) fail("grt_attention_backward", "H must be a multiple of KVH");
    const size_t S = (size_t)(H + 2 * KVH) * hd, HD = (size_t)H * hd, TT = (size_t)T * T;
    const int group = H / KVH, blk = att_block(T, causal);
    const float scale = 1.0f / sqrtf((float)hd);
    float *pd = drop ? dp + (size_t)blk * T : NULL;
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
                /* datt (m, ncols) = dout[r0:r0+m] (m, hd) @ v[0:ncols]^T, its rows T long */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, ncols, hd, 1.0f, d + r0 * HD, (int)HD, v,
                            (int)S, 0.0f, dp, T);
                /* dv[0:ncols] (ncols, hd) += att^T (ncols, m) @ dout[r0:r0+m] (m, hd), att dropped */
                const float *pv = p;
                if (drop) att_dropout_block(pd, p, m, T, r0, b, h, drop), pv = pd;
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ncols, hd, m, 1.0f, pv, T, d + r0 * HD, (int)HD,
                            1.0f, dv, (int)S);
                /* through the dropout: datt = dropout(datt), the same mask and scale */
                if (drop) att_dropout_block(dp, dp, m, T, r0, b, h, drop);
                /* the softmax's backward, row by row: dpre = att * (datt - sum(att * datt)) */
                if (sm) sm(m, dp, p, r0);
                for (int i = 0; !sm && i < m; i++) {
                    float *dr = dp + (size_t)i * T;
                    int n = causal ? r0 + i + 1 : T;
                    softmax_row_backward(dr, p + (size_t)i * T, n);
                    memset(dr + n, 0, (size_t)(ncols - n) * sizeof(float));
                }
                for (int i = 0; bf16 && i < m; i++)
                    grt_bf16_round(dp + (size_t)i * T, dp + (size_t)i * T, (size_t)ncols, 1);
                /* dq[r0:r0+m] (m, hd) += dpre (m, ncols) @ k[0:ncols] (ncols, hd) * scale */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, hd, ncols, scale, dp, T, k, (int)S, 1.0f,
                            dq + r0 * S, (int)S);
                /* dk[0:ncols] (ncols, hd) += dpre^T (ncols, m) @ q[r0:r0+m] (m, hd) * scale */
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ncols, hd, m, scale, dp, T, q + r0 * S, (int)S,
                            1.0f, dk, (int)S);
            }
        }
    }
}

/* dqkv (B,T,(H+2KVH)hd) += gradients of q, k, v given dout (B,T,H hd) and the saved att (B,H,T,T):
 * dv += att^T @ dout; datt = dout @ v^T; dpre = att * (datt - rowsum(att * datt));
 * dq += dpre @ k / sqrt(hd); dk += dpre^T @ q / sqrt(hd) */
void grt_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att, int B, int T, int H,
                            int KVH, int hd, int causal) {
    grt_attention_backward_with(dqkv, dout, qkv, att, B, T, H, KVH, hd, causal, NULL);
}

/* attention_backward in a temporary: datt, then dpre, of one row block; with dropout, the block's dropped
 * att after it */
static void attention_backward_alloc(float *dqkv, const float *dout, const float *qkv, const float *att, int B, int T,
                                     int H, int KVH, int hd, int causal, GrtAttSoftmaxBwdFn *sm,
                                     const GrtDropout *drop, int bf16) {
    if (B <= 0 || T <= 0 || H <= 0 || hd <= 0) return;
    float *dp = calloc((size_t)att_block(T, causal) * T * (drop ? 2 : 1), sizeof(float));
    if (!dp) fail("grt_attention_backward", "out of memory");
    attention_backward(dqkv, dout, qkv, att, B, T, H, KVH, hd, causal, sm, drop, dp, bf16);
    free(dp);
}

/* The same, the softmax's rows by the kernel sm when not NULL; datt's rows are T long either way */
void grt_attention_backward_with(float *dqkv, const float *dout, const float *qkv, const float *att, int B, int T,
                                 int H, int KVH, int hd, int causal, GrtAttSoftmaxBwdFn *sm) {
    attention_backward_alloc(dqkv, dout, qkv, att, B, T, H, KVH, hd, causal, sm, NULL, 0);
}

/* dout (B, T, H hd) rounded to bf16 in place for mixed precision's backward (galvrt.h) */
static void round_dout(float *dout, int bf16, int B, int T, int H, int hd) {
    if (bf16 && B > 0 && T > 0 && H > 0 && hd > 0) grt_bf16_round(dout, dout, (size_t)B * T * H * hd, 1);
}

/* The same through the dropout `drop` when not NULL: dv += dropout(att)^T @ dout,
 * and datt's gradient dropped by the same mask before the softmax's backward */
void grt_attention_backward_dropout(float *dqkv, float *dout, const float *qkv, const float *att, int B, int T, int H,
                                    int KVH, int hd, int causal, GrtAttSoftmaxBwdFn *sm, const GrtDropout *drop,
                                    int bf16) {
    round_dout(dout, bf16, B, T, H, hd);
    attention_backward_alloc(dqkv, dout, qkv, att, B, T, H, KVH, hd, causal, sm, drop, bf16);
}

/* The same without dropout, datt's row block in dp (at least (T, T): the caller's (H, T, T)) */
void grt_attention_backward_in(float *dqkv, float *dout, const float *qkv, const float *att, int B, int T, int H,
                               int KVH, int hd, int causal, GrtAttSoftmaxBwdFn *sm, float *dp, int bf16) {
    if (B <= 0 || T <= 0 || H <= 0 || hd <= 0) return;
    round_dout(dout, bf16, B, T, H, hd);
    attention_backward(dqkv, dout, qkv, att, B, T, H, KVH, hd, causal, sm, NULL, dp, bf16);
}

/* att (rows, T) = softmax(scale att) row by row, row i query (t0 + i) mod T (a run of rows may cross
 * sequences and heads): the generated kernel's reference */
void grt_attention_softmax_forward(float *att, int rows, int T, int t0, int causal, float scale) {
    for (int i = 0; i < rows; i++) {
        float *r = att + (size_t)i * T;
        int n = causal ? (t0 + i) % T + 1 : T;
        for (int j = 0; j < n; j++)
            r[j] *= scale;
        softmax_row(r, n, T);
    }
}

/* datt (rows, T) = att * (datt - sum(att * datt)) row by row, zeros past the keys seen */
void grt_attention_softmax_backward(float *datt, const float *att, int rows, int T, int t0, int causal) {
    for (int i = 0; i < rows; i++) {
        int n = causal ? (t0 + i) % T + 1 : T;
        softmax_row_backward(datt + (size_t)i * T, att + (size_t)i * T, n);
        memset(datt + (size_t)i * T + n, 0, (size_t)(T - n) * sizeof(float));
    }
}

/* T5's rows (galvrt.h): att (rows, T) = softmax(att + bias) over each row's keys, zeros past them */
void grt_t5_softmax_forward(float *att, const float *bias, int rows, int T, int t0, int causal) {
    for (int i = 0; i < rows; i++) {
        float *r = att + (size_t)i * T;
        const float *b = bias + (size_t)i * T;
        int n = causal ? (t0 + i) % T + 1 : T;
        for (int j = 0; j < n; j++)
            r[j] += b[j];
        softmax_row(r, n, T);
    }
}

/* datt (rows, T) = att (datt - sum(att datt)), zeros past the keys; dbias (rows, T) += the same */
void grt_t5_softmax_backward(float *datt, const float *att, float *dbias, int rows, int T, int t0, int causal) {
    grt_attention_softmax_backward(datt, att, rows, T, t0, causal);
    for (size_t i = 0; i < (size_t)rows * T; i++)
        dbias[i] += datt[i];
}

/* ---- loss ------------------------------------------------------------------- */

typedef struct Loss {
    float *losses, *probs, *dlogits;
    const float *logits, *dlosses, *saved; /* saved: the forward's probs, for backward */
    const int32_t *targets;
    int V;
} Loss;

/* Rows [n0, n1) of the forward. */
static void crossentropy_forward_rows(const GrtRows *job, int64_t n0, int64_t n1, int part) {
    const Loss *a = job->ctx;
    const int V = a->V;
    (void)part;
    for (int64_t n = n0; n < n1; n++) {
        const float *l = a->logits + (size_t)n * V;
        float *p = a->probs + (size_t)n * V;
        int32_t tgt = a->targets[n];
        if (tgt >= V) fail("grt_crossentropy_forward", "a target is outside the vocabulary");
        double lse = softmax(p, l, V);
        a->losses[n] = tgt < 0 ? 0.0f : (float)(lse - l[tgt]);
    }
}

/* probs (N,V) = softmax(logits (N,V)); losses (N) = -log probs[target] by log-sum-exp, 0 where target < 0 */
void grt_crossentropy_forward(float *losses, float *probs, const float *logits, const int32_t *targets, int N, int V) {
    Loss a = {.losses = losses, .probs = probs, .logits = logits, .targets = targets, .V = V};
    run_rows(N, V, crossentropy_forward_rows, &a, NULL, NULL, 0);
}

/* Rows [n0, n1) of the backward. */
static void crossentropy_backward_rows(const GrtRows *job, int64_t n0, int64_t n1, int part) {
    const Loss *a = job->ctx;
    const int V = a->V;
    (void)part;
    for (int64_t n = n0; n < n1; n++) {
        int32_t tgt = a->targets[n];
        if (tgt < 0) continue;
        if (tgt >= V) fail("grt_crossentropy_backward", "a target is outside the vocabulary");
        const float *p = a->saved + (size_t)n * V;
        float *dl = a->dlogits + (size_t)n * V, g = a->dlosses[n];
        for (int j = 0; j < V; j++)
            dl[j] += p[j] * g;
        dl[tgt] -= g;
    }
}

/* dlogits (N,V) += (probs (N,V) - onehot(target)) * dlosses (N); rows with target < 0 get nothing */
void grt_crossentropy_backward(float *dlogits, const float *probs, const int32_t *targets, const float *dlosses, int N,
                               int V) {
    Loss a = {.dlogits = dlogits, .saved = probs, .targets = targets, .dlosses = dlosses, .V = V};
    run_rows(N, V, crossentropy_backward_rows, &a, NULL, NULL, 0);
}

/* ---- optimizer -------------------------------------------------------------- */

/* sum of x (n)^2, in double (four partial sums, so the loop pipelines) */
static double sumsq(const float *x, size_t n) {
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

typedef struct SumSq {
    const float *x;
    double part[GRT_POOL_PARTS];
} SumSq;

static void sumsq_rows(const GrtRows *job, int64_t i0, int64_t i1, int part) {
    SumSq *a = job->ctx;
    a->part[part] = sumsq(a->x + i0, (size_t)(i1 - i0));
}

/* The parts' sums added in part order. */
double grt_sumsq(const float *x, size_t n) {
    SumSq a = {.x = x};
    run_rows((int64_t)n, 1, sumsq_rows, &a, NULL, NULL, 0);
    double s = 0.0;
    for (int p = 0; p < GRT_POOL_PARTS; p++)
        s += a.part[p];
    return s;
}

typedef struct Step {
    float *param, *m, *v;
    const float *grad;
    float lr, beta1, beta2, eps, weight_decay, grad_scale, c1, c2, momentum;
    int nesterov;
} Step;

static void adamw_rows(const GrtRows *job, int64_t i0, int64_t i1, int part) {
    const Step *a = job->ctx;
    float *param = a->param, *m = a->m, *v = a->v;
    const float beta1 = a->beta1, beta2 = a->beta2, c1 = a->c1, c2 = a->c2;
    (void)part;
    for (int64_t i = i0; i < i1; i++) {
        float g = a->grad[i] * a->grad_scale;
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        param[i] -= a->lr * (mi * c1 / (sqrtf(vi * c2) + a->eps) + a->weight_decay * param[i]);
    }
}

/* param (n) -= lr * (mhat / (sqrt(vhat) + eps) + weight_decay * param), with g = grad * grad_scale,
 * m = beta1 m + (1 - beta1) g, v = beta2 v + (1 - beta2) g^2, mhat = m / (1 - beta1^t), vhat = v / (1 - beta2^t)
 * (Loshchilov and Hutter 2019, algorithm 2) */
void grt_adamw(float *param, const float *grad, float *m, float *v, size_t n, float lr, float beta1, float beta2,
               float eps, float weight_decay, float grad_scale, int t) {
    Step a = {.param = param, .grad = grad, .m = m, .v = v, .lr = lr, .beta1 = beta1, .beta2 = beta2, .eps = eps,
              .weight_decay = weight_decay, .grad_scale = grad_scale, .c1 = (float)(1.0 / (1.0 - pow(beta1, t))),
              .c2 = (float)(1.0 / (1.0 - pow(beta2, t)))};
    run_rows((int64_t)n, 4, adamw_rows, &a, NULL, NULL, 0);
}

static void adam_rows(const GrtRows *job, int64_t i0, int64_t i1, int part) {
    const Step *a = job->ctx;
    float *param = a->param, *m = a->m, *v = a->v;
    const float beta1 = a->beta1, beta2 = a->beta2, c1 = a->c1, c2 = a->c2;
    (void)part;
    for (int64_t i = i0; i < i1; i++) {
        float g = a->grad[i] * a->grad_scale + a->weight_decay * param[i];
        float mi = beta1 * m[i] + (1.0f - beta1) * g;
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        param[i] -= a->lr * (mi * c1 / (sqrtf(vi * c2) + a->eps));
    }
}

void grt_adam(float *param, const float *grad, float *m, float *v, size_t n, float lr, float beta1, float beta2,
              float eps, float weight_decay, float grad_scale, int t) {
    Step a = {.param = param, .grad = grad, .m = m, .v = v, .lr = lr, .beta1 = beta1, .beta2 = beta2, .eps = eps,
              .weight_decay = weight_decay, .grad_scale = grad_scale, .c1 = (float)(1.0 / (1.0 - pow(beta1, t))),
              .c2 = (float)(1.0 / (1.0 - pow(beta2, t)))};
    run_rows((int64_t)n, 4, adam_rows, &a, NULL, NULL, 0);
}

static void sgd_rows(const GrtRows *job, int64_t i0, int64_t i1, int part) {
    const Step *a = job->ctx;
    float *param = a->param, *buf = a->m;
    (void)part;
    for (int64_t i = i0; i < i1; i++) {
        float g = a->grad[i] * a->grad_scale + a->weight_decay * param[i];
        if (buf) {
            buf[i] = a->momentum * buf[i] + g;
            g = a->nesterov ? g + a->momentum * buf[i] : buf[i];
        }
        param[i] -= a->lr * g;
    }
}

void grt_sgd(float *param, const float *grad, float *buf, size_t n, float lr, float momentum, int nesterov,
             float weight_decay, float grad_scale) {
    Step a = {.param = param, .grad = grad, .m = buf, .lr = lr, .momentum = momentum, .nesterov = nesterov,
              .weight_decay = weight_decay, .grad_scale = grad_scale};
    run_rows((int64_t)n, 4, sgd_rows, &a, NULL, NULL, 0);
}
