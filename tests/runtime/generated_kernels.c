/* generated_kernels.c — every kernel galvc generates through libLLVM for the
 * host (backend/kernels.c), against libgalvrt's reference kernels
 * (runtime/kernels.c, themselves checked against naive double references
 * and finite differences by test_kernels.c). The object it links comes from
 * tests/unit/kernels_gen.c: each kind at several column counts (1, odd,
 * below/at/past the vector width); each runs here on 1, 3 and 17 rows of
 * random inputs.
 *
 * Tolerance: |got - ref| <= tol * max(|ref|, 1), tol = 1e-6; 1e-5 for GELU
 * and SwiGLU, whose e^x is a polynomial (the reference's, in the same order,
 * so in practice they agree to the bit). Outputs the kernel only writes are
 * poisoned with NaN first, so an element it skips fails; outputs it
 * accumulates into (+=, every backward) start from random values, so a
 * kernel that overwrote them, or skipped one, fails too. */
#include "galvrt.h"
#include "../unit/check.h"

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

/* ---- buffers ---------------------------------------------------------------- */

static void *bufs[32];
static int nbufs;

static float *alloc(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    if (!p || nbufs == 32) abort();
    return bufs[nbufs++] = p;
}

static void release(void) {
    while (nbufs)
        free(bufs[--nbufs]);
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
    ((GrtLayerNormFwdFn *)fn)(R, out, mean, rstd, x, w, b, 1e-5f);
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
    ((GrtLayerNormBwdFn *)fn)(R, dx, dw, db, d, x, w, mean, rstd);
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
    ((GrtRmsNormFwdFn *)fn)(R, out, rstd, x, w, 1e-6f);
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
    ((GrtRmsNormBwdFn *)fn)(R, dx, dw, d, x, w, rstd);
    grt_rmsnorm_backward(rdx, rdw, d, x, w, rstd, R, C);
    compare(GRT_K_RMSNORM_BWD, "dinp", dx, rdx, n, TOL);
    compare(GRT_K_RMSNORM_BWD, "dweight", dw, rdw, C, TOL);
}

static void residual(void (*fn)(void), int R, int C, int bias) {
    (void)bias;
    size_t n = (size_t)R * C;
    const float *a = rand_buf(n, -3, 3), *b = rand_buf(n, -3, 3);
    float *out = nan_buf(n), *ref = alloc(n);
    ((GrtResidualFn *)fn)(R, out, a, b);
    grt_residual_forward(ref, a, b, n);
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
    ((GrtBiasGeluFwdFn *)fn)(R, pre, act, b);
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
    ((GrtBiasGeluBwdFn *)fn)(R, dpre, pre, dact, db);
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
    ((GrtSwigluFwdFn *)fn)(R, out, inp);
    grt_swiglu_forward(ref, inp, R, C);
    compare(GRT_K_SWIGLU_FWD, "out", out, ref, n, TOL_EXP);
}

static void swiglu_bwd(void (*fn)(void), int R, int C, int bias) {
    (void)bias;
    size_t n = (size_t)R * C;
    const float *inp = rand_buf(2 * n, -6, 6), *d = rand_buf(n, -1, 1);
    float *dinp = rand_buf(2 * n, -1, 1), *ref = dup(dinp, 2 * n);
    ((GrtSwigluBwdFn *)fn)(R, dinp, inp, d);
    grt_swiglu_backward(ref, inp, d, R, C);
    compare(GRT_K_SWIGLU_BWD, "dinp", dinp, ref, 2 * n, TOL_EXP);
}

static void (*const checks[GRT_K_COUNT])(void (*)(void), int, int, int) = {
    [GRT_K_LAYERNORM_FWD] = layernorm_fwd, [GRT_K_LAYERNORM_BWD] = layernorm_bwd, [GRT_K_RMSNORM_FWD] = rmsnorm_fwd,
    [GRT_K_RMSNORM_BWD] = rmsnorm_bwd,     [GRT_K_RESIDUAL] = residual,           [GRT_K_BIAS_GELU_FWD] = bias_gelu_fwd,
    [GRT_K_BIAS_GELU_BWD] = bias_gelu_bwd, [GRT_K_SWIGLU_FWD] = swiglu_fwd,       [GRT_K_SWIGLU_BWD] = swiglu_bwd,
};

int main(void) {
    static const int rows[] = {1, 3, 17};
    CHECK(&galvc_kernels != NULL && galvc_kernels.n > 0);
    if (&galvc_kernels == NULL) return check_report();
    int per_kind[GRT_K_COUNT] = {0};
    grt_kernels_use(&galvc_kernels);
    for (int i = 0; i < galvc_kernels.n; i++) {
        const GrtKernel *k = &galvc_kernels.kernels[i];
        CHECK(k->kind >= 0 && k->kind < GRT_K_COUNT && k->fn);
        CHECK(grt_kernel_find(k->kind, k->cols, k->flags) == k->fn);
        per_kind[k->kind]++;
        for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
            snprintf(case_name, sizeof case_name, "%s C=%d%s rows=%d", kind_names[k->kind], k->cols,
                     k->flags & GRT_KF_BIAS ? " bias" : "", rows[r]);
            checks[k->kind](k->fn, rows[r], k->cols, k->flags & GRT_KF_BIAS);
            release();
        }
    }
    CHECK(grt_kernel_find(GRT_K_RESIDUAL, 12345, 0) == NULL);
    for (int kind = 0; kind < GRT_K_COUNT; kind++) {
        CHECK(per_kind[kind] > 0);
        printf("%-14s %2d shapes, worst error %.2g\n", kind_names[kind], per_kind[kind], worst[kind]);
    }
    return check_report();
}
