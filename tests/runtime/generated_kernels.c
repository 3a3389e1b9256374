/* generated_kernels.c — every kernel galvc generates through libLLVM for the
 * host (backend/kernels.c), against libgalvrt's reference kernels
 * (runtime/kernels.c, themselves checked against naive double references
 * and finite differences by test_kernels.c). The object it links comes from
 * tests/unit/kernels_gen.c: each kind at several column counts (1, odd,
 * below/at/past the vector width); each runs here on 1, 3 and 17 rows of
 * random inputs.
 *
 * The kernels with more than rows and columns run on awkward cases of their
 * own: a token embedding with tokens off its vocabulary shard and positions
 * that wrap; rotary on heads inside wider qkv rows (the rest untouched);
 * causal attention rows starting mid-sequence; the loss with ignored targets
 * (-1), padded rows, and one TP rank's columns of the gradient; Swin's
 * window order over rows that end mid-image, its softmax with masked keys;
 * bf16 rounding bit for bit, on ties, overflow, infinities, NaNs and subnormals.
 *
 * Tolerance: |got - ref| <= tol * max(|ref|, 1), tol = 1e-6 (sums of squares
 * 1e-12, in double); 1e-5 for GELU and SwiGLU, whose e^x is a polynomial (the reference's, in the same order,
 * so in practice they agree to the bit). Outputs the kernel only writes are
 * poisoned with NaN first, so an element it skips fails; outputs it
 * accumulates into (+=, every backward) start from random values, so a
 * kernel that overwrote them, or skipped one, fails too.
 *
 * The same cases run on a GPU (tests/gpu/kernels_cuda.c): the buffers'
 * place (kernel_place.h) is the one difference. */
#include "galvrt.h"
#include "../unit/check.h"
#include "kernel_place.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-6
#define TOL_EXP 1e-5 /* kernels with the polynomial e^x (GELU's sigmoid form of tanh, SwiGLU's sigmoid) */

static const char *const kind_names[] = {
#define NAME(kind, name) name,
    GRT_KERNEL_KINDS(NAME)
#undef NAME
};

static char case_name[96];
static double worst[GRT_K_COUNT];
static const int64_t *kc; /* the kernel under test's plan constants (GrtKernel.c, chosen by kernels_gen.c) */

/* The kernel fn of type `type` on its arguments, awaited (kernel_place.h). */
#define LAUNCH(type, ...) (((type *)fn)(__VA_ARGS__), kernel_place.wait())

/* ---- buffers ---------------------------------------------------------------- */

static void *bufs[32];
static int nbufs;

/* n floats' room (also for int32 and, twice as many, double arrays) */
static float *alloc(size_t n) {
    float *p = kernel_place.alloc((n ? n : 1) * sizeof(float));
    if (!p || nbufs == 32) abort();
    return bufs[nbufs++] = p;
}

static void release(void) {
    while (nbufs)
        kernel_place.free(bufs[--nbufs]);
}

static uint64_t rng = 0x2545F4914F6CDD1Dull;

static float uniform(float lo, float hi) {
    rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
    return lo + (hi - lo) * (float)((rng * 0x2545F4914F6CDD1Dull >> 11) * 0x1.0p-53);
}

static float *rand_buf(size_t n, float lo, float hi) {
    float *p = alloc(n);
    for (size_t i = 0; i < n; i++)
        p[i] = uniform(lo, hi);
    return p;
}

static float *nan_buf(size_t n) {
    float *p = alloc(n);
    for (size_t i = 0; i < n; i++)
        p[i] = NAN;
    return p;
}

static float *dup(const float *src, size_t n) {
    float *p = alloc(n);
    memcpy(p, src, n * sizeof(float));
    return p;
}

/* got (n) against ref (n): no NaN left, every element within tol. */
static void compare(int kind, const char *what, const float *got, const float *ref, size_t n, double tol) {
    size_t bad = 0, nan = 0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - ref[i]) / fmax(fabs(ref[i]), 1.0);
        if (isnan(got[i]))
            nan++;
        else if (err > tol)
            bad++;
        if (!isnan(got[i]) && err > worst[kind]) worst[kind] = err;
    }
    CHECK(nan == 0 && bad == 0);
    if (nan || bad)
        fprintf(stderr, "  %s %s: %zu elements NaN (unwritten), %zu beyond %g\n", case_name, what, nan, bad, tol);
}

/* ---- one check per kind ------------------------------------------------------- */

static void layernorm_fwd(void (*fn)(void), int R, int C, int bias) {
    size_t n = (size_t)R * C;
    const float *x = rand_buf(n, -2.0f, 3.0f), *w = rand_buf(C, 0.5f, 1.5f), *b = bias ? rand_buf(C, -.5f, .5f) : NULL;
    float *out = nan_buf(n), *mean = nan_buf(R), *rstd = nan_buf(R);
    float *rout = alloc(n), *rmean = alloc(R), *rrstd = alloc(R);
    LAUNCH(GrtLayerNormFwdFn, R, out, mean, rstd, x, w, b, 1e-5f);
    grt_layernorm_forward(rout, rmean, rrstd, x, w, b, R, C, 1e-5f);
    compare(GRT_K_LAYERNORM_FWD, "out", out, rout, n, TOL);
    compare(GRT_K_LAYERNORM_FWD, "mean", mean, rmean, R, TOL);
    compare(GRT_K_LAYERNORM_FWD, "rstd", rstd, rrstd, R, TOL);
}

static void layernorm_bwd(void (*fn)(void), int R, int C, int bias) {
    size_t n = (size_t)R * C;
    const float *x = rand_buf(n, -2.0f, 3.0f), *w = rand_buf(C, 0.5f, 1.5f), *d = rand_buf(n, -1.0f, 1.0f);
    float *mean = alloc(R), *rstd = alloc(R), *tmp = alloc(n);
    grt_layernorm_forward(tmp, mean, rstd, x, w, NULL, R, C, 1e-5f);
    float *dx = rand_buf(n, -1, 1), *dw = rand_buf(C, -1, 1), *db = bias ? rand_buf(C, -1, 1) : NULL;
    float *rdx = dup(dx, n), *rdw = dup(dw, C), *rdb = bias ? dup(db, C) : NULL;
    LAUNCH(GrtLayerNormBwdFn, R, dx, dw, db, d, x, w, mean, rstd);
    grt_layernorm_backward(rdx, rdw, rdb, d, x, w, mean, rstd, R, C);
    compare(GRT_K_LAYERNORM_BWD, "dinp", dx, rdx, n, TOL);
    compare(GRT_K_LAYERNORM_BWD, "dweight", dw, rdw, C, TOL);
    if (bias) compare(GRT_K_LAYERNORM_BWD, "dbias", db, rdb, C, TOL);
}

static void rmsnorm_fwd(void (*fn)(void), int R, int C, int bias) {
    (void)bias;
    size_t n = (size_t)R * C;
    const float *x = rand_buf(n, -2.0f, 3.0f), *w = rand_buf(C, 0.5f, 1.5f);
    float *out = nan_buf(n), *rstd = nan_buf(R), *rout = alloc(n), *rrstd = alloc(R);
    LAUNCH(GrtRmsNormFwdFn, R, out, rstd, x, w, 1e-6f);
    grt_rmsnorm_forward(rout, rrstd, x, w, R, C, 1e-6f);
    compare(GRT_K_RMSNORM_FWD, "out", out, rout, n, TOL);
    compare(GRT_K_RMSNORM_FWD, "rstd", rstd, rrstd, R, TOL);
}

static void rmsnorm_bwd(void (*fn)(void), int R, int C, int bias) {
    (void)bias;
    size_t n = (size_t)R * C;
    const float *x = rand_buf(n, -2.0f, 3.0f), *w = rand_buf(C, 0.5f, 1.5f), *d = rand_buf(n, -1.0f, 1.0f);
    float *rstd = alloc(R), *tmp = alloc(n);
    grt_rmsnorm_forward(tmp, rstd, x, w, R, C, 1e-6f);
    float *dx = rand_buf(n, -1, 1), *dw = rand_buf(C, -1, 1), *rdx = dup(dx, n), *rdw = dup(dw, C);
    LAUNCH(GrtRmsNormBwdFn, R, dx, dw, d, x, w, rstd);
    grt_rmsnorm_backward(rdx, rdw, d, x, w, rstd, R, C);
    compare(GRT_K_RMSNORM_BWD, "dinp", dx, rdx, n, TOL);
    compare(GRT_K_RMSNORM_BWD, "dweight", dw, rdw, C, TOL);
}

/* out = a + b, with a bias a + (b + bias): the reference adds the bias to b first, then the residual */
static void residual(void (*fn)(void), int R, int C, int bias) {
    size_t n = (size_t)R * C;
    const float *a = rand_buf(n, -3, 3), *b = rand_buf(n, -3, 3), *w = bias ? rand_buf((size_t)C, -1, 1) : NULL;
    float *out = nan_buf(n), *ref = alloc(n), *bb = dup(b, n);
    LAUNCH(GrtResidualFn, R, out, a, b, w);
    for (size_t i = 0; w && i < n; i++)
        bb[i] = b[i] + w[i % (size_t)C];
    grt_residual_forward(ref, a, bb, n);
    compare(GRT_K_RESIDUAL, "out", out, ref, n, TOL);
}

/* pre (R, C) += bias: the reference's half of bias + GELU */
static void add_bias(float *pre, const float *bias, int R, int C) {
    for (int r = 0; bias && r < R; r++)
        for (int c = 0; c < C; c++)
            pre[(size_t)r * C + c] += bias[c];
}

static void bias_gelu_fwd(void (*fn)(void), int R, int C, int bias) {
    size_t n = (size_t)R * C;
    float *pre = rand_buf(n, -6, 6), *b = bias ? rand_buf(C, -1, 1) : NULL, *rpre = dup(pre, n);
    float *act = nan_buf(n), *ract = alloc(n);
    LAUNCH(GrtBiasGeluFwdFn, R, pre, act, b);
    add_bias(rpre, b, R, C);
    grt_gelu_forward(ract, rpre, n);
    compare(GRT_K_BIAS_GELU_FWD, "pre", pre, rpre, n, TOL);
    compare(GRT_K_BIAS_GELU_FWD, "act", act, ract, n, TOL_EXP);
}

static void bias_gelu_bwd(void (*fn)(void), int R, int C, int bias) {
    size_t n = (size_t)R * C;
    const float *pre = rand_buf(n, -6, 6), *dact = rand_buf(n, -1, 1);
    float *dpre = rand_buf(n, -1, 1), *db = bias ? rand_buf(C, -1, 1) : NULL;
    float *rdpre = dup(dpre, n), *rdb = bias ? dup(db, C) : NULL, *g = alloc(n);
    LAUNCH(GrtBiasGeluBwdFn, R, dpre, pre, dact, db);
    grt_gelu_backward(rdpre, pre, dact, n);
    memset(g, 0, n * sizeof(float)); /* the bias gradient: column sums of this backward's part */
    grt_gelu_backward(g, pre, dact, n);
    if (bias) grt_matmul_backward(NULL, NULL, rdb, g, NULL, NULL, R, 0, C);
    compare(GRT_K_BIAS_GELU_BWD, "dpre", dpre, rdpre, n, TOL_EXP);
    if (bias) compare(GRT_K_BIAS_GELU_BWD, "dbias", db, rdb, C, TOL_EXP);
}

static void swiglu_fwd(void (*fn)(void), int R, int C, int bias) {
    (void)bias;
    size_t n = (size_t)R * C;
    const float *inp = rand_buf(2 * n, -6, 6);
    float *out = nan_buf(n), *ref = alloc(n);
    LAUNCH(GrtSwigluFwdFn, R, out, inp);
    grt_swiglu_forward(ref, inp, R, C);
    compare(GRT_K_SWIGLU_FWD, "out", out, ref, n, TOL_EXP);
}

static void swiglu_bwd(void (*fn)(void), int R, int C, int bias) {
    (void)bias;
    size_t n = (size_t)R * C;
    const float *inp = rand_buf(2 * n, -6, 6), *d = rand_buf(n, -1, 1);
    float *dinp = rand_buf(2 * n, -1, 1), *ref = dup(dinp, 2 * n);
    LAUNCH(GrtSwigluBwdFn, R, dinp, inp, d);
    grt_swiglu_backward(ref, inp, d, R, C);
    compare(GRT_K_SWIGLU_BWD, "dinp", dinp, ref, 2 * n, TOL_EXP);
}

/* ---- embedding and rotary ---------------------------------------------------------- */

enum { EMB_START = 3, EMB_VOCAB = 12 }; /* a shard of kc[1] rows from 3 of 12 tokens; positions kc[0] */

static int32_t *tokens(int R, int lo, int hi) {
    int32_t *t = (int32_t *)alloc((size_t)R);
    for (int r = 0; r < R; r++)
        t[r] = lo + (int32_t)(uniform(0, 1) * (float)(hi - lo)) % (hi - lo);
    return t;
}

/* The reference one row at a time: row r at position r % T. */
static void embed_fwd(void (*fn)(void), int R, int C, int flags) {
    const int EMB_T = (int)kc[0], EMB_ROWS = (int)kc[1];
    size_t n = (size_t)R * C;
    const int32_t *tok = tokens(R, 0, EMB_VOCAB);
    const float *wte = rand_buf((size_t)EMB_ROWS * C, -1, 1), *wpe = flags & GRT_KF_POS ? rand_buf(EMB_T * (size_t)C, -1, 1) : NULL;
    float *out = nan_buf(n), *ref = alloc(n);
    LAUNCH(GrtEmbedFwdFn, R, out, tok, wte, wpe, EMB_START);
    for (int r = 0; r < R; r++)
        grt_embedding_forward(ref + (size_t)r * C, tok + r, wte, wpe ? wpe + (size_t)(r % EMB_T) * C : NULL, 1, 1, C,
                              EMB_START, EMB_ROWS);
    compare(GRT_K_EMBED_FWD, "out", out, ref, n, TOL);
}

static void embed_bwd(void (*fn)(void), int R, int C, int flags) {
    const int EMB_T = (int)kc[0], EMB_ROWS = (int)kc[1];
    size_t n = (size_t)R * C;
    const int32_t *tok = tokens(R, 0, EMB_VOCAB);
    const float *d = rand_buf(n, -1, 1);
    float *dwte = rand_buf((size_t)EMB_ROWS * C, -1, 1), *dwpe = flags & GRT_KF_POS ? rand_buf(EMB_T * (size_t)C, -1, 1) : NULL;
    float *rdwte = dup(dwte, (size_t)EMB_ROWS * C), *rdwpe = dwpe ? dup(dwpe, EMB_T * (size_t)C) : NULL;
    LAUNCH(GrtEmbedBwdFn, R, dwte, dwpe, d, tok, EMB_START);
    for (int r = 0; r < R; r++)
        grt_embedding_backward(rdwte, rdwpe ? rdwpe + (size_t)(r % EMB_T) * C : NULL, d + (size_t)r * C, tok + r, 1, 1,
                               C, EMB_START, EMB_ROWS);
    compare(GRT_K_EMBED_BWD, "dwte", dwte, rdwte, (size_t)EMB_ROWS * C, TOL);
    if (dwpe) compare(GRT_K_EMBED_BWD, "dwpe", dwpe, rdwpe, EMB_T * (size_t)C, TOL);
}

/* R sequences of T = kc[0] tokens, kc[1] heads of hd = 2C in rows of ld = kc[2] (wider: the rest, V's, left alone). */
static void rope(void (*fn)(void), int R, int C, int backward) {
    const int T = (int)kc[0], HEADS = (int)kc[1], ld = (int)kc[2];
    const float theta = 10000.0f;
    int hd = 2 * C, ntok = R * T, qk = HEADS * hd;
    CHECK(ld > qk);
    float *x = rand_buf((size_t)ntok * ld, -2, 2), *orig = dup(x, (size_t)ntok * ld), *ref = dup(x, (size_t)ntok * ld);
    float *tmp = alloc((size_t)ntok * qk), *cs = alloc((size_t)T * C), *sn = alloc((size_t)T * C);
    grt_rope_table(cs, sn, T, hd, theta);
    LAUNCH(GrtRopeFn, (int64_t)ntok * HEADS, x, cs, sn);
    for (int i = 0; i < ntok; i++)
        memcpy(tmp + (size_t)i * qk, orig + (size_t)i * ld, sizeof(float) * (size_t)qk);
    if (backward) grt_rope_backward(tmp, R, T, HEADS, hd, theta);
    else grt_rope_forward(tmp, R, T, HEADS, hd, theta);
    for (int i = 0; i < ntok; i++)
        memcpy(ref + (size_t)i * ld, tmp + (size_t)i * qk, sizeof(float) * (size_t)qk);
    compare(backward ? GRT_K_ROPE_BWD : GRT_K_ROPE_FWD, "x", x, ref, (size_t)ntok * ld, TOL);
}

static void rope_fwd(void (*fn)(void), int R, int C, int flags) {
    (void)flags;
    rope(fn, R, C, 0);
}

static void rope_bwd(void (*fn)(void), int R, int C, int flags) {
    (void)flags;
    rope(fn, R, C, 1);
}

/* ---- softmaxes ------------------------------------------------------------------------- */

/* R rows from query t0 of T-token sequences: when causal, t0 near the end so that the rows wrap past
 * query T - 1 to the next sequence's query 0 (one launch over a micro-batch's B H T rows). */
static int att_rows(int R, int T, int causal, int *t0) {
    int t = T - 1 - R / 2;
    *t0 = causal && t > 0 ? t : 0;
    return R;
}

/* att (rows, T) of scores, NaN past each causal row's keys (the kernel must write 0 there) */
static float *scores(int rows, int T, int t0, int causal) {
    float *a = rand_buf((size_t)rows * T, -4, 4);
    for (int i = 0; causal && i < rows; i++)
        for (int j = (t0 + i) % T + 1; j < T; j++)
            a[(size_t)i * T + j] = NAN;
    return a;
}

static void att_softmax_fwd(void (*fn)(void), int R, int T, int flags) {
    int t0, causal = flags & GRT_KF_CAUSAL, rows = att_rows(R, T, causal, &t0);
    float *att = scores(rows, T, t0, causal), *ref = dup(att, (size_t)rows * T);
    LAUNCH(GrtAttSoftmaxFwdFn, rows, att, t0); /* scaled by 1 / sqrt(hd), hd = kc[0] */
    grt_attention_softmax_forward(ref, rows, T, t0, causal, 1.0f / sqrtf((float)kc[0]));
    compare(GRT_K_ATT_SOFTMAX_FWD, "att", att, ref, (size_t)rows * T, TOL);
}

static void att_softmax_bwd(void (*fn)(void), int R, int T, int flags) {
    int t0, causal = flags & GRT_KF_CAUSAL, rows = att_rows(R, T, causal, &t0);
    float *att = scores(rows, T, t0, causal);
    grt_attention_softmax_forward(att, rows, T, t0, causal, 1.0f);
    float *datt = scores(rows, T, t0, causal), *ref = dup(datt, (size_t)rows * T);
    LAUNCH(GrtAttSoftmaxBwdFn, rows, datt, att, t0);
    grt_attention_softmax_backward(ref, att, rows, T, t0, causal);
    compare(GRT_K_ATT_SOFTMAX_BWD, "datt", datt, ref, (size_t)rows * T, TOL);
}

/* Room for n bf16 values, every one 0xffff (a NaN no kernel writes there: one left unwritten shows). */
static uint16_t *bits_buf(size_t n) {
    uint16_t *h = (uint16_t *)alloc((n + 1) / 2);
    for (size_t i = 0; i < n; i++)
        h[i] = 0xffff;
    return h;
}

/* got's bf16 bits (n) against want (n) rounded to bf16 (grt_bf16_bits), bit for bit. */
static void same_bits(int kind, const char *what, const uint16_t *got, const float *want, size_t n) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t w = grt_bf16_bits(want[i]);
        bad += got[i] != w;
        double err = fabs((double)grt_bf16_float(got[i]) - grt_bf16_float(w)) / fmax(fabs(grt_bf16_float(w)), 1.0);
        if (!(err <= worst[kind])) worst[kind] = isnan(err) ? INFINITY : err;
    }
    CHECK(bad == 0);
    if (bad) fprintf(stderr, "  %s %s: %zu elements not the fp32 kernel's rounded\n", case_name, what, bad);
}

/* att_softmax16_fwd: bit for bit the bf16 rounding of what the fp32 kernel of the same shape computes
 * on the same scores, 0 past each causal row's keys. */
static void att_softmax16_fwd(void (*fn)(void), int R, int T, int flags) {
    int t0, causal = flags & GRT_KF_CAUSAL, rows = att_rows(R, T, causal, &t0);
    size_t n = (size_t)rows * T;
    float *att = scores(rows, T, t0, causal), *want = dup(att, n);
    uint16_t *bits = bits_buf(n);
    LAUNCH(GrtAttSoftmax16FwdFn, rows, att, bits, t0);
    GrtAttSoftmaxFwdFn *fp32 = (GrtAttSoftmaxFwdFn *)grt_kernel_find_sized(GRT_K_ATT_SOFTMAX_FWD, T, flags, kc[0], 0, 0);
    CHECK(fp32 != NULL);
    if (!fp32) return;
    fp32(rows, want, t0), kernel_place.wait();
    same_bits(GRT_K_ATT_SOFTMAX16_FWD, "bits", bits, want, n);
}

/* att_softmax16_bwd on bf16 probabilities: bit for bit the rounding of the fp32 kernel's result on
 * them (widened), datt left as it was. */
static void att_softmax16_bwd(void (*fn)(void), int R, int T, int flags) {
    int t0, causal = flags & GRT_KF_CAUSAL, rows = att_rows(R, T, causal, &t0);
    size_t n = (size_t)rows * T;
    float *att = scores(rows, T, t0, causal);
    grt_attention_softmax_forward(att, rows, T, t0, causal, 1.0f);
    uint16_t *p16 = bits_buf(n), *ds = bits_buf(n);
    grt_bf16_round(p16, att, n, 0);
    grt_bf16_widen(att, p16, n);
    float *datt = scores(rows, T, t0, causal), *before = dup(datt, n), *want = dup(datt, n);
    LAUNCH(GrtAttSoftmax16BwdFn, rows, datt, p16, ds, t0);
    GrtAttSoftmaxBwdFn *fp32 = (GrtAttSoftmaxBwdFn *)grt_kernel_find(GRT_K_ATT_SOFTMAX_BWD, T, flags);
    CHECK(fp32 != NULL);
    if (!fp32) return;
    fp32(rows, want, att, t0), kernel_place.wait();
    same_bits(GRT_K_ATT_SOFTMAX16_BWD, "ds", ds, want, n);
    CHECK(memcmp(datt, before, n * sizeof(float)) == 0);
}

static void t5_softmax_fwd(void (*fn)(void), int R, int T, int flags) {
    int t0, causal = flags & GRT_KF_CAUSAL, rows = att_rows(R, T, causal, &t0);
    float *att = scores(rows, T, t0, causal), *ref = dup(att, (size_t)rows * T);
    const float *bias = rand_buf((size_t)rows * T, -3, 3);
    LAUNCH(GrtT5SoftmaxFwdFn, rows, att, bias, t0);
    grt_t5_softmax_forward(ref, bias, rows, T, t0, causal);
    compare(GRT_K_T5_SOFTMAX_FWD, "att", att, ref, (size_t)rows * T, TOL);
}

static void t5_softmax_bwd(void (*fn)(void), int R, int T, int flags) {
    int t0, causal = flags & GRT_KF_CAUSAL, rows = att_rows(R, T, causal, &t0);
    float *att = scores(rows, T, t0, causal);
    grt_attention_softmax_forward(att, rows, T, t0, causal, 1.0f);
    float *datt = scores(rows, T, t0, causal), *ref = dup(datt, (size_t)rows * T);
    float *dbias = rand_buf((size_t)rows * T, -1, 1), *rdbias = dup(dbias, (size_t)rows * T);
    LAUNCH(GrtT5SoftmaxBwdFn, rows, datt, att, dbias, t0);
    grt_t5_softmax_backward(ref, att, rdbias, rows, T, t0, causal);
    compare(GRT_K_T5_SOFTMAX_BWD, "datt", datt, ref, (size_t)rows * T, TOL);
    compare(GRT_K_T5_SOFTMAX_BWD, "dbias", dbias, rdbias, (size_t)rows * T, TOL);
}

/* logits (R, ld = kc[0] > V): the last columns padding the kernel must leave alone */
static void xent_fwd(void (*fn)(void), int R, int V, int flags) {
    (void)flags;
    int ld = (int)kc[0];
    CHECK(ld > V);
    const float *logits = rand_buf((size_t)R * ld, -5, 5);
    int32_t *tgt = tokens(R, -1, V);
    float *probs = nan_buf((size_t)R * ld), *losses = nan_buf(R);
    float *cl = alloc((size_t)R * V), *rprobs = alloc((size_t)R * V), *rlosses = alloc(R), *got = alloc((size_t)R * V);
    for (int r = 0; r < R; r++) {
        memcpy(cl + (size_t)r * V, logits + (size_t)r * ld, sizeof(float) * V);
        for (int j = V; j < ld; j++) probs[(size_t)r * ld + j] = 7.0f;
    }
    LAUNCH(GrtXentFwdFn, R, losses, probs, logits, tgt);
    grt_crossentropy_forward(rlosses, rprobs, cl, tgt, R, V);
    int pad_ok = 1;
    for (int r = 0; r < R; r++) {
        memcpy(got + (size_t)r * V, probs + (size_t)r * ld, sizeof(float) * V);
        for (int j = V; j < ld; j++) pad_ok &= probs[(size_t)r * ld + j] == 7.0f;
    }
    CHECK(pad_ok);
    compare(GRT_K_XENT_FWD, "probs", got, rprobs, (size_t)R * V, TOL);
    compare(GRT_K_XENT_FWD, "losses", losses, rlosses, R, TOL);
}

/* rank 1's columns of a vocabulary split 3 ways: rows of ld = kc[0] = 3 Vl */
static void xent_bwd(void (*fn)(void), int R, int Vl, int flags) {
    (void)flags;
    int ld = (int)kc[0];
    CHECK(ld == 3 * Vl);
    float *probs = alloc((size_t)R * ld), *losses = alloc(R), *dloss = alloc(R), *full = alloc((size_t)R * ld);
    const float *logits = rand_buf((size_t)R * ld, -5, 5);
    int32_t *tgt = tokens(R, -1, ld);
    for (int r = 0; r < R; r++) dloss[r] = 0.37f;
    grt_crossentropy_forward(losses, probs, logits, tgt, R, ld);
    float *dl = nan_buf((size_t)R * Vl), *ref = alloc((size_t)R * Vl);
    LAUNCH(GrtXentBwdFn, R, dl, probs, tgt, 0.37f, Vl);
    memset(full, 0, sizeof(float) * (size_t)R * ld);
    grt_crossentropy_backward(full, probs, tgt, dloss, R, ld);
    for (int r = 0; r < R; r++) memcpy(ref + (size_t)r * Vl, full + (size_t)r * ld + Vl, sizeof(float) * Vl);
    compare(GRT_K_XENT_BWD, "dlogits", dl, ref, (size_t)R * Vl, TOL);
}

/* ---- optimizer ------------------------------------------------------------------------------ */

static void sumsq(void (*fn)(void), int R, int C, int flags) {
    (void)flags;
    const float *x = rand_buf((size_t)R * C, -3, 3);
    double *sums = (double *)alloc(2 * (size_t)R);
    for (int r = 0; r < R; r++) sums[r] = NAN;
    LAUNCH(GrtSumsqFn, R, sums, x);
    for (int r = 0; r < R; r++) {
        double ref = grt_sumsq(x + (size_t)r * C, (size_t)C), err = fabs(sums[r] - ref) / fmax(ref, 1.0);
        CHECK(err <= 1e-12); /* in double, as the reference */
        if (!(err <= 1e-12)) fprintf(stderr, "  %s row %d: %.17g, reference %.17g\n", case_name, r, sums[r], ref);
        if (err > worst[GRT_K_SUMSQ]) worst[GRT_K_SUMSQ] = err;
    }
}

static void adam(int kind, void (*fn)(void), int R, int C) {
    size_t n = (size_t)R * C;
    const float lr = 1e-3f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f, scale = 0.7f;
    const int t = 3;
    const float c1 = (float)(1.0 / (1.0 - pow(b1, t))), c2 = (float)(1.0 / (1.0 - pow(b2, t)));
    const float *g = rand_buf(n, -1, 1);
    float *w = rand_buf(n, -1, 1), *m = rand_buf(n, -.1f, .1f), *v = rand_buf(n, 0, .01f);
    float *rw = dup(w, n), *rm = dup(m, n), *rv = dup(v, n);
    LAUNCH(GrtAdamFn, R, w, g, m, v, lr, b1, b2, eps, wd, scale, c1, c2);
    if (kind == GRT_K_ADAMW) grt_adamw(rw, g, rm, rv, n, lr, b1, b2, eps, wd, scale, t);
    else grt_adam(rw, g, rm, rv, n, lr, b1, b2, eps, wd, scale, t);
    compare(kind, "param", w, rw, n, TOL);
    compare(kind, "m", m, rm, n, TOL);
    compare(kind, "v", v, rv, n, TOL);
}

static void adamw(void (*fn)(void), int R, int C, int flags) {
    (void)flags;
    adam(GRT_K_ADAMW, fn, R, C);
}

static void adam_(void (*fn)(void), int R, int C, int flags) {
    (void)flags;
    adam(GRT_K_ADAM, fn, R, C);
}

static void sgd(void (*fn)(void), int R, int C, int flags) {
    size_t n = (size_t)R * C;
    const float lr = 1e-2f, mom = 0.9f, wd = 0.01f, scale = 0.7f;
    const float *g = rand_buf(n, -1, 1);
    float *w = rand_buf(n, -1, 1), *buf = flags & GRT_KF_MOMENTUM ? rand_buf(n, -.1f, .1f) : NULL;
    float *rw = dup(w, n), *rbuf = buf ? dup(buf, n) : NULL;
    LAUNCH(GrtSgdFn, R, w, g, buf, lr, mom, wd, scale);
    grt_sgd(rw, g, rbuf, n, lr, mom, flags & GRT_KF_NESTEROV ? 1 : 0, wd, scale);
    compare(GRT_K_SGD, "param", w, rw, n, TOL);
    if (buf) compare(GRT_K_SGD, "buf", buf, rbuf, n, TOL);
}

/* out (R, C) = [a +] dropout(b), rows from r0 = 3 of sequences T = kc[0] long (so they cross
 * sequences), a high element base and key; the plain variant in place (out = b), as the
 * runtime drops a gradient. Exact: the same bits select the same products. */
static void dropout(void (*fn)(void), int R, int C, int flags) {
    size_t n = (size_t)R * C;
    int res = flags & GRT_KF_RESIDUAL, T = (int)kc[0];
    uint64_t key = grt_dropout_key(7, 11, 3, GRT_DROP_ATT_OUT);
    int64_t seq0 = 5, r0 = 3, e0 = ((int64_t)1 << 33) + 17;
    uint32_t thr = grt_dropout_threshold(0.3f);
    float scale = 1.0f / (1.0f - 0.3f);
    float *a = res ? rand_buf(n, -3, 3) : NULL, *b = rand_buf(n, -3, 3), *ref = alloc(n);
    float *out = res ? nan_buf(n) : b;
    grt_dropout_reference(ref, a, b, R, C, T, key, seq0, r0, e0, thr, scale);
    LAUNCH(GrtDropoutFn, R, out, a, b, (int64_t)key, seq0, r0, e0, (int64_t)thr, scale);
    compare(GRT_K_DROPOUT, "out", out, ref, n, 0.0);
}

/* ViT's tokens of R images of T = kc[0] tokens: the class token, T - 1 patches, positions. */
static void patch_fwd(void (*fn)(void), int R, int C, int flags) {
    (void)flags;
    const int T = (int)kc[0];
    size_t n = (size_t)R * T * C;
    const float *y = rand_buf((size_t)R * (T - 1) * C, -2, 2), *cls = rand_buf(C, -1, 1),
                *pos = rand_buf((size_t)T * C, -1, 1);
    float *out = nan_buf(n), *ref = alloc(n);
    LAUNCH(GrtPatchFwdFn, (int64_t)R * T, out, y, cls, pos);
    grt_patch_assemble(ref, y, cls, pos, R, T - 1, C);
    compare(GRT_K_PATCH_FWD, "out", out, ref, n, 0.0);
}

static void patch_bwd(void (*fn)(void), int R, int C, int flags) {
    (void)flags;
    const int T = (int)kc[0];
    size_t n = (size_t)R * T * C, ny = (size_t)R * (T - 1) * C;
    const float *d = rand_buf(n, -1, 1);
    float *dy = nan_buf(ny), *dcls = rand_buf(C, -1, 1), *dpos = rand_buf((size_t)T * C, -1, 1);
    float *rdy = alloc(ny), *rdcls = dup(dcls, C), *rdpos = dup(dpos, (size_t)T * C);
    LAUNCH(GrtPatchBwdFn, (int64_t)R * T, dy, dcls, dpos, d);
    grt_patch_assemble_backward(rdy, rdcls, rdpos, d, R, T - 1, C);
    compare(GRT_K_PATCH_BWD, "dy", dy, rdy, ny, 0.0);
    compare(GRT_K_PATCH_BWD, "dcls", dcls, rdcls, C, TOL);
    compare(GRT_K_PATCH_BWD, "dpos", dpos, rdpos, (size_t)T * C, TOL);
}

/* Swin's window order: R rows of window order over whole images of side^2 =
 * kc[0]^2 rows, windows of kc[1]^2, shift kc[2]; gathered, and scattered back. */
static void win_permute(void (*fn)(void), int R, int C, int flags, int scatter) {
    (void)flags;
    const int side = (int)kc[0], T = side * side;
    size_t grid = (size_t)(R + T - 1) / T * T * C, n = (size_t)R * C;
    const float *src = rand_buf(scatter ? n : grid, -2, 2);
    float *dst = rand_buf(scatter ? grid : n, -1, 1), *ref = dup(dst, scatter ? grid : n); /* unwritten rows kept */
    LAUNCH(GrtWinPermuteFn, R, dst, src);
    if (scatter) grt_window_scatter(ref, src, R, C, side, (int)kc[1], (int)kc[2]);
    else grt_window_gather(ref, src, R, C, side, (int)kc[1], (int)kc[2]);
    compare(scatter ? GRT_K_WIN_SCATTER : GRT_K_WIN_GATHER, "dst", dst, ref, scatter ? grid : n, 0.0);
}

static void win_gather(void (*fn)(void), int R, int C, int flags) { win_permute(fn, R, C, flags, 0); }
static void win_scatter(void (*fn)(void), int R, int C, int flags) { win_permute(fn, R, C, flags, 1); }

/* The biased window softmax of R rows of n = C keys: heads kc[0], windows kc[1], hd kc[2]; a mask of 0 or -100. */
static void win_softmax_fwd(void (*fn)(void), int R, int C, int flags) {
    (void)flags;
    const int H = (int)kc[0], nW = (int)kc[1];
    float *att = rand_buf((size_t)R * C, -4, 4), *ref = dup(att, (size_t)R * C);
    const float *bias = rand_buf((size_t)H * C * C, -1, 1);
    float *mask = rand_buf((size_t)nW * C * C, 0, 1);
    for (size_t i = 0; i < (size_t)nW * C * C; i++)
        mask[i] = mask[i] < 0.3f ? -100.0f : 0.0f;
    LAUNCH(GrtWinSoftmaxFwdFn, R, att, bias, mask);
    grt_window_softmax_forward(ref, bias, mask, R, C, H, nW, 1.0f / sqrtf((float)kc[2]));
    compare(GRT_K_WIN_SOFTMAX_FWD, "att", att, ref, (size_t)R * C, TOL);
}

/* Patch merging's groups of R rows (parts of merged tokens) from grids of kc[0]^2
 * rows an image; scattered back, added to what dx held (rows past R's images add nothing). */
static void merge_permute(void (*fn)(void), int R, int C, int flags, int scatter) {
    (void)flags;
    const int side = (int)kc[0], T = side * side, B = (R + T - 1) / T;
    size_t grid = (size_t)B * T * C, n = (size_t)R * C;
    float *src = rand_buf(grid, -2, 2), *dst = rand_buf(grid, -1, 1), *ref = dup(dst, grid);
    if (scatter) memset(src + n, 0, sizeof(float) * (grid - n)); /* the kernel's rows only */
    LAUNCH(GrtWinPermuteFn, R, dst, src);
    if (scatter) grt_merge_scatter(ref, src, B, side, C);
    else grt_merge_gather(ref, src, B, side, C);
    compare(scatter ? GRT_K_MERGE_SCATTER : GRT_K_MERGE_GATHER, "dst", dst, ref, scatter ? grid : n, scatter ? TOL : 0.0);
}

static void merge_gather(void (*fn)(void), int R, int C, int flags) { merge_permute(fn, R, C, flags, 0); }
static void merge_scatter(void (*fn)(void), int R, int C, int flags) { merge_permute(fn, R, C, flags, 1); }

/* bf16 rounding, bit for bit against grt_bf16_bits on random floats of
 * every magnitude and the awkward ones: exact ties (to even, both ways), the
 * largest finite floats (to infinity), infinities, NaNs (quiet, sign and
 * payload kept), subnormals and signed zeros. */
/* Floats whose rounding is easy to get wrong: ties to even both ways, the
 * largest finite (overflowing to infinity), infinities, NaNs (quiet,
 * signalling, with payloads), subnormals, signed zeros, just below a tie. */
static const uint32_t bf16_odd[] = {0x3f808000u, 0x3f818000u, 0xbf808000u, 0x7f7fffffu, 0xff7fffffu, 0x7f800000u,
                                    0xff800000u, 0x7fc00001u, 0xffa00000u, 0x7f800001u, 0x00000001u, 0x807fffffu,
                                    0x00000000u, 0x80000000u, 0x3f807fffu, 0x477fe000u};

static void bf16(void (*fn)(void), int R, int C, int flags) {
    size_t n = (size_t)R * C, bad = 0;
    float *x = alloc(n), *out = nan_buf(n); /* the bits' room too: n halves */
    for (size_t i = 0; i < n; i++) {
        uint32_t u = i % 3 == 0 ? bf16_odd[(i / 3) % (sizeof bf16_odd / sizeof bf16_odd[0])] : 0;
        if (!u) rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17, u = (uint32_t)(rng >> 32);
        memcpy(&x[i], &u, sizeof u);
    }
    LAUNCH(GrtBf16Fn, R, out, x);
    for (size_t i = 0; i < n; i++) {
        uint32_t want = (uint32_t)grt_bf16_bits(x[i]), got;
        if (flags & GRT_KF_WIDE) memcpy(&got, &out[i], sizeof got), want <<= 16;
        else got = ((const uint16_t *)out)[i];
        bad += got != want;
    }
    CHECK(bad == 0);
    if (bad) fprintf(stderr, "  %s: %zu elements not grt_bf16_bits' rounding\n", case_name, bad);
}

/* bf16_keep: the bits and the rounded floats, bit for bit against
 * grt_bf16_bits on bf16's cases (random floats and the odd ones). */
static void bf16_keep(void (*fn)(void), int R, int C, int flags) {
    (void)flags;
    size_t n = (size_t)R * C, bad = 0;
    float *x = alloc(n), *orig = alloc(n), *bits = nan_buf(n); /* the bits' room: n halves */
    for (size_t i = 0; i < n; i++) {
        uint32_t u = i % 3 == 0 ? bf16_odd[(i / 3) % (sizeof bf16_odd / sizeof bf16_odd[0])] : 0;
        if (!u) rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17, u = (uint32_t)(rng >> 32);
        memcpy(&x[i], &u, sizeof u);
    }
    memcpy(orig, x, n * sizeof *x);
    LAUNCH(GrtBf16KeepFn, R, bits, x);
    for (size_t i = 0; i < n; i++) {
        uint32_t want = (uint32_t)grt_bf16_bits(orig[i]), got;
        memcpy(&got, &x[i], sizeof got);
        bad += ((const uint16_t *)bits)[i] != want || got != want << 16;
    }
    CHECK(bad == 0);
    if (bad) fprintf(stderr, "  %s: %zu elements not grt_bf16_bits' rounding\n", case_name, bad);
}

/* bf16 widening, bit for bit against grt_bf16_widen on every kind of
 * bits: random halves, and among them the odd floats' (ties, infinities,
 * NaNs with their payloads, subnormals, signed zeros), rounded. */
static void bf16_widen(void (*fn)(void), int R, int C, int flags) {
    (void)flags;
    size_t n = (size_t)R * C, bad = 0;
    float *bits_room = alloc(n), *out = nan_buf(n), *want = alloc(n); /* the bits in the first n halves */
    uint16_t *h = (uint16_t *)bits_room;
    for (size_t i = 0; i < n; i++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        h[i] = i % 5 == 0 ? (uint16_t)(0x7f80u | (i & 0x7fu) | (i & 8 ? 0x8000u : 0)) : (uint16_t)(rng >> 48);
    }
    grt_bf16_widen(want, h, n);
    LAUNCH(GrtBf16WidenFn, R, out, h);
    for (size_t i = 0; i < n; i++) bad += memcmp(&out[i], &want[i], sizeof(float)) != 0;
    CHECK(bad == 0);
    if (bad) fprintf(stderr, "  %s: %zu elements not grt_bf16_widen's floats\n", case_name, bad);
}

static void (*const checks[GRT_K_COUNT])(void (*)(void), int, int, int) = {
    [GRT_K_LAYERNORM_FWD] = layernorm_fwd, [GRT_K_LAYERNORM_BWD] = layernorm_bwd, [GRT_K_RMSNORM_FWD] = rmsnorm_fwd,
    [GRT_K_RMSNORM_BWD] = rmsnorm_bwd,     [GRT_K_RESIDUAL] = residual,           [GRT_K_BIAS_GELU_FWD] = bias_gelu_fwd,
    [GRT_K_BIAS_GELU_BWD] = bias_gelu_bwd, [GRT_K_SWIGLU_FWD] = swiglu_fwd,       [GRT_K_SWIGLU_BWD] = swiglu_bwd,
    [GRT_K_EMBED_FWD] = embed_fwd,         [GRT_K_EMBED_BWD] = embed_bwd,         [GRT_K_ROPE_FWD] = rope_fwd,
    [GRT_K_ROPE_BWD] = rope_bwd,           [GRT_K_ATT_SOFTMAX_FWD] = att_softmax_fwd,
    [GRT_K_ATT_SOFTMAX_BWD] = att_softmax_bwd, [GRT_K_ATT_SOFTMAX16_FWD] = att_softmax16_fwd,
    [GRT_K_ATT_SOFTMAX16_BWD] = att_softmax16_bwd, [GRT_K_XENT_FWD] = xent_fwd,  [GRT_K_XENT_BWD] = xent_bwd,
    [GRT_K_SUMSQ] = sumsq,                 [GRT_K_ADAMW] = adamw,                 [GRT_K_ADAM] = adam_,
    [GRT_K_SGD] = sgd,                     [GRT_K_DROPOUT] = dropout,             [GRT_K_PATCH_FWD] = patch_fwd,
    [GRT_K_PATCH_BWD] = patch_bwd,         [GRT_K_T5_SOFTMAX_FWD] = t5_softmax_fwd,
    [GRT_K_T5_SOFTMAX_BWD] = t5_softmax_bwd, [GRT_K_WIN_GATHER] = win_gather,       [GRT_K_WIN_SCATTER] = win_scatter,
    [GRT_K_WIN_SOFTMAX_FWD] = win_softmax_fwd, [GRT_K_MERGE_GATHER] = merge_gather, [GRT_K_MERGE_SCATTER] = merge_scatter,
    [GRT_K_BF16] = bf16,                   [GRT_K_BF16_WIDEN] = bf16_widen,       [GRT_K_BF16_KEEP] = bf16_keep,
};

int main(void) {
    static const int rows[] = {1, 3, 17};
    CHECK(&galvc_kernels != NULL && galvc_kernels.n > 0);
    if (&galvc_kernels == NULL) return check_report();
    int per_kind[GRT_K_COUNT] = {0};
    kernel_place.start();
    grt_kernels_use(&galvc_kernels);
    for (int i = 0; i < galvc_kernels.n; i++) {
        const GrtKernel *k = &galvc_kernels.kernels[i];
        CHECK(k->kind >= 0 && k->kind < GRT_K_COUNT && k->fn);
        CHECK(grt_kernel_find_sized(k->kind, k->cols, k->flags, k->c[0], k->c[1], k->c[2]) == k->fn);
        kc = k->c;
        per_kind[k->kind]++;
        for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
            snprintf(case_name, sizeof case_name, "%s C=%d flags=%d rows=%d", kind_names[k->kind], k->cols, k->flags,
                     rows[r]);
            checks[k->kind](k->fn, rows[r], k->cols, k->flags);
            release();
        }
    }
    CHECK(grt_kernel_find(GRT_K_RESIDUAL, 12345, 0) == NULL);
    for (int kind = 0; kind < GRT_K_COUNT; kind++) {
        CHECK(per_kind[kind] > 0);
        printf("%-16s %2d shapes, worst error %.2g (%s)\n", kind_names[kind], per_kind[kind], worst[kind],
               kernel_place.name);
    }
    return check_report();
}
