/* test_kernels.c — every kernel of libgalvrt (runtime/kernels.c) against a
 * plain reference: naive loops in double, written to be obviously right
 * rather than fast. Each forward must match its reference to ~1e-5. Each
 * backward is checked three ways on small random instances:
 *  - the kernel's gradient against the reference's analytic backward (~1e-5);
 *  - the reference's backward against central finite differences of the
 *    double reference forward (~1e-6), so the reference itself is right;
 *  - the kernel's gradient against central finite differences of the float
 *    kernel forward (1e-2 relative, 1e-3 of the largest element),
 * for the scalar loss L = sum(w * out) with random w. Every backward also runs
 * twice into the same buffers and must leave twice the first result, since
 * backwards accumulate (+=). Larger instances (several attention row blocks,
 * bigger GEMMs) compare against the reference only. */
#include "galvrt.h"
#include "../unit/check.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define RTOL 1e-5 /* kernel against the double reference: relative to the element */
#define ATOL 1e-5 /* ... and to the array's largest element */

/* ---- helpers: allocation, random numbers, comparison, finite differences ---- */

static void *allocs[1024];
static int nallocs;
static char case_name[160]; /* the instance under test, for failure messages */

/* Zeroed memory freed by the next release_all(). */
static void *talloc(size_t bytes) {
    void *p = calloc(bytes ? bytes : 1, 1);
    if (!p || nallocs == (int)(sizeof allocs / sizeof allocs[0])) {
        fprintf(stderr, "test_kernels: out of memory\n");
        exit(2);
    }
    return allocs[nallocs++] = p;
}

/* Free everything talloc gave out; each test ends with it. */
static void release_all(void) {
    while (nallocs)
        free(allocs[--nallocs]);
}

/* Name the instance the following checks report. */
static void set_case(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(case_name, sizeof case_name, fmt, ap);
    va_end(ap);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

/* Uniform in [lo, hi) (xorshift64*), the same sequence on every run. */
static double uniform(double lo, double hi) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return lo + (hi - lo) * (double)((rng_state * 0x2545F4914F6CDD1Dull) >> 11) * 0x1.0p-53;
}

static float *fvec(size_t n) { return talloc(n * sizeof(float)); }
static double *dvec(size_t n) { return talloc(n * sizeof(double)); }

/* n floats uniform in [lo, hi). */
static float *frand(size_t n, double lo, double hi) {
    float *x = fvec(n);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)uniform(lo, hi);
    return x;
}

/* The double twin of a float array, so the reference sees the same values. */
static double *dcopy(const float *x, size_t n) {
    double *d = dvec(n);
    for (size_t i = 0; i < n; i++)
        d[i] = x[i];
    return d;
}

static float *fcopy(const float *x, size_t n) {
    float *c = fvec(n);
    memcpy(c, x, n * sizeof(float));
    return c;
}

static double fdot(const float *a, const float *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

static double ddot(const double *a, const double *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* One check: every |got - want| <= rtol |want| + atol max|want|; on failure name the worst element. */
static void close_dd(const char *what, const double *got, const double *want, size_t n, double rtol, double atol) {
    double scale = 0.0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(want[i]));
    bool ok = true;
    size_t worst = 0;
    double worst_ratio = 0.0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs(got[i] - want[i]), tol = rtol * fabs(want[i]) + atol * scale;
        if (!(err <= tol)) { /* NaN fails too */
            double ratio = tol > 0.0 ? err / tol : INFINITY;
            if (ok || !(ratio <= worst_ratio)) worst = i, worst_ratio = ratio;
            ok = false;
        }
    }
    if (!ok)
        fprintf(stderr, "%s: %s: element %zu of %zu: got %.9g, want %.9g\n", case_name, what, worst, n, got[worst],
                want[worst]);
    CHECK(ok);
}

/* close_dd for a float array. */
static void close_fd(const char *what, const float *got, const double *want, size_t n, double rtol, double atol) {
    double *g = dvec(n);
    for (size_t i = 0; i < n; i++)
        g[i] = got[i];
    close_dd(what, g, want, n, rtol, atol);
}

/* A backward run a second time into the same buffer must leave twice what the first run left. */
static void check_twice(const char *what, const float *once, const float *twice, size_t n) {
    double *want = dvec(n);
    for (size_t i = 0; i < n; i++)
        want[i] = 2.0 * once[i];
    char buf[96];
    snprintf(buf, sizeof buf, "%s accumulates", what);
    close_fd(buf, twice, want, n, 1e-6, 1e-6);
}

typedef double (*LossFn)(void *ctx);

/* dL/dx (n) by central differences, perturbing the float x in place (the step actually taken divides). */
static double *fd_float(LossFn loss, void *ctx, float *x, size_t n, float eps) {
    double *g = dvec(n);
    for (size_t i = 0; i < n; i++) {
        float x0 = x[i], xp = x0 + eps, xm = x0 - eps;
        x[i] = xp;
        double lp = loss(ctx);
        x[i] = xm;
        double lm = loss(ctx);
        x[i] = x0;
        g[i] = (lp - lm) / ((double)xp - (double)xm);
    }
    return g;
}

/* dL/dx (n) by central differences on a double x. */
static double *fd_double(LossFn loss, void *ctx, double *x, size_t n, double eps) {
    double *g = dvec(n);
    for (size_t i = 0; i < n; i++) {
        double x0 = x[i];
        x[i] = x0 + eps;
        double lp = loss(ctx);
        x[i] = x0 - eps;
        double lm = loss(ctx);
        x[i] = x0;
        g[i] = (lp - lm) / (2.0 * eps);
    }
    return g;
}

/* One gradient three ways (see the file comment): got, the kernel's, for the float input x; ref, the
 * reference's, for its double twin xd. loss_f and loss_d compute L with the kernel and with the reference.
 * fd = false skips the finite differences (large instances). */
static void check_grad(const char *what, LossFn loss_f, LossFn loss_d, void *ctx, float *x, double *xd, size_t n,
                       const float *got, const double *ref, bool fd) {
    char buf[96];
    snprintf(buf, sizeof buf, "%s: kernel vs reference", what);
    close_fd(buf, got, ref, n, RTOL, ATOL);
    if (!fd) return;
    snprintf(buf, sizeof buf, "%s: reference vs finite differences", what);
    close_dd(buf, ref, fd_double(loss_d, ctx, xd, n, 1e-5), n, 1e-6, 1e-7);
    snprintf(buf, sizeof buf, "%s: kernel vs finite differences", what);
    close_fd(buf, got, fd_float(loss_f, ctx, x, n, 1e-3f), n, 1e-2, 1e-3);
}

/* ---- matmul ------------------------------------------------------------------ */

typedef struct {
    int N, C, OC;
    float *inp, *w, *b, *out, *dout; /* b NULL: no bias */
    double *inp_d, *w_d, *b_d, *out_d, *dout_d;
} MatmulCase;

/* out (N,OC) = inp (N,C) @ w (OC,C)^T + b (OC) */
static void ref_matmul_forward(double *out, const double *inp, const double *w, const double *b, int N, int C, int OC) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = b ? b[o] : 0.0;
            for (int c = 0; c < C; c++)
                s += inp[n * C + c] * w[o * C + c];
            out[n * OC + o] = s;
        }
}

/* dinp (N,C), dw (OC,C), db (OC) += the gradients of sum(dout * out) */
static void ref_matmul_backward(double *dinp, double *dw, double *db, const double *dout, const double *inp,
                                const double *w, int N, int C, int OC) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double d = dout[n * OC + o];
            db[o] += d;
            for (int c = 0; c < C; c++) {
                dinp[n * C + c] += d * w[o * C + c];
                dw[o * C + c] += d * inp[n * C + c];
            }
        }
}

static double matmul_loss_f(void *p) {
    MatmulCase *m = p;
    grt_matmul_forward(m->out, m->inp, m->w, m->b, m->N, m->C, m->OC);
    return fdot(m->dout, m->out, (size_t)m->N * m->OC);
}

static double matmul_loss_d(void *p) {
    MatmulCase *m = p;
    ref_matmul_forward(m->out_d, m->inp_d, m->w_d, m->b_d, m->N, m->C, m->OC);
    return ddot(m->dout_d, m->out_d, (size_t)m->N * m->OC);
}

/* Matmul forward and backward, with or without bias; each gradient also alone (the others NULL). */
static void test_matmul(int N, int C, int OC, bool with_bias, bool fd) {
    set_case("matmul N=%d C=%d OC=%d bias=%d", N, C, OC, with_bias);
    size_t ni = (size_t)N * C, nw = (size_t)OC * C, no = (size_t)N * OC;
    MatmulCase m = {.N = N, .C = C, .OC = OC};
    m.inp = frand(ni, -1, 1), m.w = frand(nw, -1, 1), m.b = with_bias ? frand(OC, -1, 1) : NULL;
    m.out = fvec(no), m.dout = frand(no, -1, 1);
    m.inp_d = dcopy(m.inp, ni), m.w_d = dcopy(m.w, nw), m.b_d = with_bias ? dcopy(m.b, OC) : NULL;
    m.out_d = dvec(no), m.dout_d = dcopy(m.dout, no);

    grt_matmul_forward(m.out, m.inp, m.w, m.b, N, C, OC);
    ref_matmul_forward(m.out_d, m.inp_d, m.w_d, m.b_d, N, C, OC);
    close_fd("out", m.out, m.out_d, no, RTOL, ATOL);

    float *dinp = fvec(ni), *dw = fvec(nw), *db = fvec(OC);
    grt_matmul_backward(dinp, dw, db, m.dout, m.inp, m.w, N, C, OC);
    float *dinp1 = fcopy(dinp, ni), *dw1 = fcopy(dw, nw), *db1 = fcopy(db, OC);
    grt_matmul_backward(dinp, dw, db, m.dout, m.inp, m.w, N, C, OC);
    check_twice("dinp", dinp1, dinp, ni);
    check_twice("dweight", dw1, dw, nw);
    check_twice("dbias", db1, db, OC);

    double *rdinp = dvec(ni), *rdw = dvec(nw), *rdb = dvec(OC);
    ref_matmul_backward(rdinp, rdw, rdb, m.dout_d, m.inp_d, m.w_d, N, C, OC);
    check_grad("dinp", matmul_loss_f, matmul_loss_d, &m, m.inp, m.inp_d, ni, dinp1, rdinp, fd);
    check_grad("dweight", matmul_loss_f, matmul_loss_d, &m, m.w, m.w_d, nw, dw1, rdw, fd);
    if (with_bias) check_grad("dbias", matmul_loss_f, matmul_loss_d, &m, m.b, m.b_d, OC, db1, rdb, fd);
    close_fd("dbias (no bias in forward)", db1, rdb, OC, RTOL, ATOL);

    float *only = fvec(ni > nw ? ni : nw);
    grt_matmul_backward(only, NULL, NULL, m.dout, m.inp, m.w, N, C, OC);
    close_fd("dinp alone", only, rdinp, ni, RTOL, ATOL);
    memset(only, 0, nw * sizeof(float));
    grt_matmul_backward(NULL, only, NULL, m.dout, m.inp, m.w, N, C, OC);
    close_fd("dweight alone", only, rdw, nw, RTOL, ATOL);
    memset(only, 0, OC * sizeof(float));
    grt_matmul_backward(NULL, NULL, only, m.dout, m.inp, m.w, N, C, OC);
    close_fd("dbias alone", only, rdb, OC, RTOL, ATOL);
    release_all();
}

/* ---- embedding ------------------------------------------------------------- */

typedef struct {
    int B, T, C, start, rows;
    const int32_t *tok;
    float *wte, *wpe, *out, *dout; /* wpe NULL: no learned positions */
    double *wte_d, *wpe_d, *out_d, *dout_d;
} EmbCase;

/* out (B,T,C) = (start <= tok < start + rows ? wte[tok - start] : 0) + wpe[t] */
static void ref_embedding_forward(double *out, const int32_t *tok, const double *wte, const double *wpe, int B, int T,
                                  int C, int start, int rows) {
    for (int bt = 0; bt < B * T; bt++) {
        int t = bt % T, row = tok[bt] - start;
        bool here = row >= 0 && row < rows;
        for (int c = 0; c < C; c++)
            out[bt * C + c] = (here ? wte[row * C + c] : 0.0) + (wpe ? wpe[t * C + c] : 0.0);
    }
}

/* dwte (rows,C) += dout at each token of the shard; dwpe (T,C) += dout at each position */
static void ref_embedding_backward(double *dwte, double *dwpe, const double *dout, const int32_t *tok, int B, int T,
                                   int C, int start, int rows) {
    for (int bt = 0; bt < B * T; bt++) {
        int t = bt % T, row = tok[bt] - start;
        for (int c = 0; c < C; c++) {
            if (row >= 0 && row < rows) dwte[row * C + c] += dout[bt * C + c];
            dwpe[t * C + c] += dout[bt * C + c];
        }
    }
}

static double embedding_loss_f(void *p) {
    EmbCase *e = p;
    grt_embedding_forward(e->out, e->tok, e->wte, e->wpe, e->B, e->T, e->C, e->start, e->rows);
    return fdot(e->dout, e->out, (size_t)e->B * e->T * e->C);
}

static double embedding_loss_d(void *p) {
    EmbCase *e = p;
    ref_embedding_forward(e->out_d, e->tok, e->wte_d, e->wpe_d, e->B, e->T, e->C, e->start, e->rows);
    return ddot(e->dout_d, e->out_d, (size_t)e->B * e->T * e->C);
}

/* Embedding of a shard [start, start + rows) of a 10-token vocabulary; tokens 0..9 repeat and fall on both sides. */
static void test_embedding(int start, int rows, bool with_wpe) {
    set_case("embedding shard [%d, %d) wpe=%d", start, start + rows, with_wpe);
    static const int32_t tokens[] = {0, 3, 5, 9, 5, 6, 2, 7, 3, 4};
    const int B = 2, T = 5, C = 4;
    size_t nt = (size_t)rows * C, np = (size_t)T * C, no = (size_t)B * T * C;
    EmbCase e = {.B = B, .T = T, .C = C, .start = start, .rows = rows, .tok = tokens};
    e.wte = frand(nt, -1, 1), e.wpe = with_wpe ? frand(np, -1, 1) : NULL, e.out = frand(no, -1, 1); /* overwritten */
    e.dout = frand(no, -1, 1);
    e.wte_d = dcopy(e.wte, nt), e.wpe_d = with_wpe ? dcopy(e.wpe, np) : NULL, e.out_d = dvec(no);
    e.dout_d = dcopy(e.dout, no);

    grt_embedding_forward(e.out, tokens, e.wte, e.wpe, B, T, C, start, rows);
    ref_embedding_forward(e.out_d, tokens, e.wte_d, e.wpe_d, B, T, C, start, rows);
    close_fd("out", e.out, e.out_d, no, RTOL, ATOL);

    float *dwte = fvec(nt), *dwpe = fvec(np);
    grt_embedding_backward(dwte, with_wpe ? dwpe : NULL, e.dout, tokens, B, T, C, start, rows);
    float *dwte1 = fcopy(dwte, nt), *dwpe1 = fcopy(dwpe, np);
    grt_embedding_backward(dwte, with_wpe ? dwpe : NULL, e.dout, tokens, B, T, C, start, rows);
    check_twice("dwte", dwte1, dwte, nt);
    double *rdwte = dvec(nt), *rdwpe = dvec(np);
    ref_embedding_backward(rdwte, rdwpe, e.dout_d, tokens, B, T, C, start, rows);
    check_grad("dwte", embedding_loss_f, embedding_loss_d, &e, e.wte, e.wte_d, nt, dwte1, rdwte, true);
    if (with_wpe) {
        check_twice("dwpe", dwpe1, dwpe, np);
        check_grad("dwpe", embedding_loss_f, embedding_loss_d, &e, e.wpe, e.wpe_d, np, dwpe1, rdwpe, true);
    } else {
        for (size_t i = 0; i < np; i++)
            CHECK(dwpe[i] == 0.0f); /* NULL dwpe is not written */
    }
    release_all();
}

/* ---- rotary ---------------------------------------------------------------- */

typedef struct {
    int B, T, heads, hd;
    float theta;
    float *x, *tmp, *w;
    double *x_d, *tmp_d, *w_d;
} RopeCase;

/* out (B,T,heads,hd) = x with pair (2i, 2i+1) at position t rotated by sign * t * theta^(-2i/hd) */
static void ref_rope(double *out, const double *x, int B, int T, int heads, int hd, double theta, double sign) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < hd / 2; i++) {
                    size_t at = (((size_t)b * T + t) * heads + h) * hd + 2 * i;
                    double ang = sign * t * pow(theta, -2.0 * i / hd), c = cos(ang), s = sin(ang);
                    double x0 = x[at], x1 = x[at + 1];
                    out[at] = c * x0 - s * x1;
                    out[at + 1] = s * x0 + c * x1;
                }
}

static double rope_loss_f(void *p) {
    RopeCase *r = p;
    size_t n = (size_t)r->B * r->T * r->heads * r->hd;
    memcpy(r->tmp, r->x, n * sizeof(float));
    grt_rope_forward(r->tmp, r->B, r->T, r->heads, r->hd, r->theta);
    return fdot(r->w, r->tmp, n);
}

static double rope_loss_d(void *p) {
    RopeCase *r = p;
    size_t n = (size_t)r->B * r->T * r->heads * r->hd;
    ref_rope(r->tmp_d, r->x_d, r->B, r->T, r->heads, r->hd, r->theta, 1.0);
    return ddot(r->w_d, r->tmp_d, n);
}

/* Rotary forward, its backward (in place, so not accumulating), and backward(forward(x)) = x. */
static void test_rope(int B, int T, int heads, int hd, float theta, bool fd) {
    set_case("rope B=%d T=%d heads=%d hd=%d theta=%g", B, T, heads, hd, theta);
    size_t n = (size_t)B * T * heads * hd;
    RopeCase r = {.B = B, .T = T, .heads = heads, .hd = hd, .theta = theta};
    r.x = frand(n, -1, 1), r.tmp = fvec(n), r.w = frand(n, -1, 1);
    r.x_d = dcopy(r.x, n), r.tmp_d = dvec(n), r.w_d = dcopy(r.w, n);

    float *y = fcopy(r.x, n);
    grt_rope_forward(y, B, T, heads, hd, theta);
    double *ry = dvec(n);
    ref_rope(ry, r.x_d, B, T, heads, hd, theta, 1.0);
    close_fd("forward", y, ry, n, RTOL, ATOL);

    grt_rope_backward(y, B, T, heads, hd, theta);
    close_fd("backward(forward(x)) = x", y, r.x_d, n, RTOL, ATOL);

    float *dx = fcopy(r.w, n);
    grt_rope_backward(dx, B, T, heads, hd, theta);
    double *rdx = dvec(n);
    ref_rope(rdx, r.w_d, B, T, heads, hd, theta, -1.0);
    check_grad("dx", rope_loss_f, rope_loss_d, &r, r.x, r.x_d, n, dx, rdx, fd);
    release_all();
}

/* ---- layernorm, rmsnorm ---------------------------------------------------- */

typedef struct {
    int N, C;
    float eps;
    float *inp, *w, *b, *out, *mean, *rstd, *dout; /* b NULL: no bias */
    double *inp_d, *w_d, *b_d, *out_d, *dout_d;
    float *smean, *srstd; /* scratch statistics for the finite differences */
    double *smean_d, *srstd_d;
} NormCase;

/* out (N,C) = (inp - mean) / sqrt(var + eps) * w + b, with the biased variance; mean, rstd (N) */
static void ref_layernorm_forward(double *out, double *mean, double *rstd, const double *inp, const double *w,
                                  const double *b, int N, int C, double eps) {
    for (int n = 0; n < N; n++) {
        const double *x = inp + (size_t)n * C;
        double m = 0.0, v = 0.0;
        for (int c = 0; c < C; c++)
            m += x[c] / C;
        for (int c = 0; c < C; c++)
            v += (x[c] - m) * (x[c] - m) / C;
        double r = 1.0 / sqrt(v + eps);
        for (int c = 0; c < C; c++)
            out[(size_t)n * C + c] = (x[c] - m) * r * w[c] + (b ? b[c] : 0.0);
        mean[n] = m, rstd[n] = r;
    }
}

/* The layernorm's gradients through its full Jacobian, d norm_k / d x_j = r (delta_kj - 1/C) - r^3 (x_k - m)(x_j - m) /
 * C */
static void ref_layernorm_backward(double *dinp, double *dw, double *db, const double *dout, const double *inp,
                                   const double *w, int N, int C, double eps) {
    for (int n = 0; n < N; n++) {
        const double *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
        double m = 0.0, v = 0.0;
        for (int c = 0; c < C; c++)
            m += x[c] / C;
        for (int c = 0; c < C; c++)
            v += (x[c] - m) * (x[c] - m) / C;
        double r = 1.0 / sqrt(v + eps);
        for (int j = 0; j < C; j++)
            for (int k = 0; k < C; k++)
                dinp[(size_t)n * C + j] +=
                    d[k] * w[k] * (r * ((k == j) - 1.0 / C) - r * r * r * (x[k] - m) * (x[j] - m) / C);
        for (int k = 0; k < C; k++) {
            dw[k] += d[k] * (x[k] - m) * r;
            db[k] += d[k];
        }
    }
}

static double layernorm_loss_f(void *p) {
    NormCase *c = p;
    grt_layernorm_forward(c->out, c->smean, c->srstd, c->inp, c->w, c->b, c->N, c->C, c->eps);
    return fdot(c->dout, c->out, (size_t)c->N * c->C);
}

static double layernorm_loss_d(void *p) {
    NormCase *c = p;
    ref_layernorm_forward(c->out_d, c->smean_d, c->srstd_d, c->inp_d, c->w_d, c->b_d, c->N, c->C, c->eps);
    return ddot(c->dout_d, c->out_d, (size_t)c->N * c->C);
}

/* A NormCase of N rows of C, rows offset so the mean matters, weights around 1. */
static NormCase norm_case(int N, int C, bool with_bias) {
    size_t n = (size_t)N * C;
    NormCase c = {.N = N, .C = C, .eps = 1e-5f};
    c.inp = frand(n, -1, 1);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < C; j++)
            c.inp[(size_t)i * C + j] += (float)(i - 1);
    c.w = frand(C, 0.5, 1.5), c.b = with_bias ? frand(C, -1, 1) : NULL;
    c.out = fvec(n), c.mean = fvec(N), c.rstd = fvec(N), c.dout = frand(n, -1, 1);
    c.inp_d = dcopy(c.inp, n), c.w_d = dcopy(c.w, C), c.b_d = with_bias ? dcopy(c.b, C) : NULL;
    c.out_d = dvec(n), c.dout_d = dcopy(c.dout, n);
    c.smean = fvec(N), c.srstd = fvec(N), c.smean_d = dvec(N), c.srstd_d = dvec(N);
    return c;
}

/* Layernorm forward (out, mean, rstd) and backward, with and without bias. */
static void test_layernorm(int N, int C, bool with_bias) {
    set_case("layernorm N=%d C=%d bias=%d", N, C, with_bias);
    NormCase c = norm_case(N, C, with_bias);
    size_t n = (size_t)N * C;
    grt_layernorm_forward(c.out, c.mean, c.rstd, c.inp, c.w, c.b, N, C, c.eps);
    double *rmean = dvec(N), *rrstd = dvec(N);
    ref_layernorm_forward(c.out_d, rmean, rrstd, c.inp_d, c.w_d, c.b_d, N, C, c.eps);
    close_fd("out", c.out, c.out_d, n, RTOL, ATOL);
    close_fd("mean", c.mean, rmean, N, RTOL, ATOL);
    close_fd("rstd", c.rstd, rrstd, N, RTOL, ATOL);

    float *dinp = fvec(n), *dw = fvec(C), *db = fvec(C);
    grt_layernorm_backward(dinp, dw, with_bias ? db : NULL, c.dout, c.inp, c.w, c.mean, c.rstd, N, C);
    float *dinp1 = fcopy(dinp, n), *dw1 = fcopy(dw, C), *db1 = fcopy(db, C);
    grt_layernorm_backward(dinp, dw, with_bias ? db : NULL, c.dout, c.inp, c.w, c.mean, c.rstd, N, C);
    check_twice("dinp", dinp1, dinp, n);
    check_twice("dweight", dw1, dw, C);
    double *rdinp = dvec(n), *rdw = dvec(C), *rdb = dvec(C);
    ref_layernorm_backward(rdinp, rdw, rdb, c.dout_d, c.inp_d, c.w_d, N, C, c.eps);
    check_grad("dinp", layernorm_loss_f, layernorm_loss_d, &c, c.inp, c.inp_d, n, dinp1, rdinp, true);
    check_grad("dweight", layernorm_loss_f, layernorm_loss_d, &c, c.w, c.w_d, C, dw1, rdw, true);
    if (with_bias) {
        check_twice("dbias", db1, db, C);
        check_grad("dbias", layernorm_loss_f, layernorm_loss_d, &c, c.b, c.b_d, C, db1, rdb, true);
    }
    release_all();
}

/* out (N,C) = inp / sqrt(mean(inp^2) + eps) * w; rstd (N) */
static void ref_rmsnorm_forward(double *out, double *rstd, const double *inp, const double *w, int N, int C,
                                double eps) {
    for (int n = 0; n < N; n++) {
        const double *x = inp + (size_t)n * C;
        double ms = 0.0;
        for (int c = 0; c < C; c++)
            ms += x[c] * x[c] / C;
        double r = 1.0 / sqrt(ms + eps);
        for (int c = 0; c < C; c++)
            out[(size_t)n * C + c] = x[c] * r * w[c];
        rstd[n] = r;
    }
}

/* The rmsnorm's gradients through its full Jacobian, d norm_k / d x_j = r delta_kj - r^3 x_k x_j / C */
static void ref_rmsnorm_backward(double *dinp, double *dw, const double *dout, const double *inp, const double *w,
                                 int N, int C, double eps) {
    for (int n = 0; n < N; n++) {
        const double *x = inp + (size_t)n * C, *d = dout + (size_t)n * C;
        double ms = 0.0;
        for (int c = 0; c < C; c++)
            ms += x[c] * x[c] / C;
        double r = 1.0 / sqrt(ms + eps);
        for (int j = 0; j < C; j++)
            for (int k = 0; k < C; k++)
                dinp[(size_t)n * C + j] += d[k] * w[k] * (r * (k == j) - r * r * r * x[k] * x[j] / C);
        for (int k = 0; k < C; k++)
            dw[k] += d[k] * x[k] * r;
    }
}

static double rmsnorm_loss_f(void *p) {
    NormCase *c = p;
    grt_rmsnorm_forward(c->out, c->srstd, c->inp, c->w, c->N, c->C, c->eps);
    return fdot(c->dout, c->out, (size_t)c->N * c->C);
}

static double rmsnorm_loss_d(void *p) {
    NormCase *c = p;
    ref_rmsnorm_forward(c->out_d, c->srstd_d, c->inp_d, c->w_d, c->N, c->C, c->eps);
    return ddot(c->dout_d, c->out_d, (size_t)c->N * c->C);
}

/* RMSnorm forward (out, rstd) and backward. */
static void test_rmsnorm(int N, int C) {
    set_case("rmsnorm N=%d C=%d", N, C);
    NormCase c = norm_case(N, C, false);
    size_t n = (size_t)N * C;
    grt_rmsnorm_forward(c.out, c.rstd, c.inp, c.w, N, C, c.eps);
    double *rrstd = dvec(N);
    ref_rmsnorm_forward(c.out_d, rrstd, c.inp_d, c.w_d, N, C, c.eps);
    close_fd("out", c.out, c.out_d, n, RTOL, ATOL);
    close_fd("rstd", c.rstd, rrstd, N, RTOL, ATOL);

    float *dinp = fvec(n), *dw = fvec(C);
    grt_rmsnorm_backward(dinp, dw, c.dout, c.inp, c.w, c.rstd, N, C);
    float *dinp1 = fcopy(dinp, n), *dw1 = fcopy(dw, C);
    grt_rmsnorm_backward(dinp, dw, c.dout, c.inp, c.w, c.rstd, N, C);
    check_twice("dinp", dinp1, dinp, n);
    check_twice("dweight", dw1, dw, C);
    double *rdinp = dvec(n), *rdw = dvec(C);
    ref_rmsnorm_backward(rdinp, rdw, c.dout_d, c.inp_d, c.w_d, N, C, c.eps);
    check_grad("dinp", rmsnorm_loss_f, rmsnorm_loss_d, &c, c.inp, c.inp_d, n, dinp1, rdinp, true);
    check_grad("dweight", rmsnorm_loss_f, rmsnorm_loss_d, &c, c.w, c.w_d, C, dw1, rdw, true);
    release_all();
}

/* ---- GELU, SwiGLU, residual -------------------------------------------------- */

typedef struct {
    size_t n, nout;
    int N, F; /* SwiGLU's rows and width */
    float *inp, *out, *dout;
    double *inp_d, *out_d, *dout_d;
} PointCase;

/* out = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
static void ref_gelu_forward(double *out, const double *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        out[i] = 0.5 * x[i] * (1.0 + tanh(sqrt(2.0 / M_PI) * (x[i] + 0.044715 * x[i] * x[i] * x[i])));
}

/* dinp += dout * d/dx of the above */
static void ref_gelu_backward(double *dinp, const double *x, const double *dout, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double k = sqrt(2.0 / M_PI), u = k * (x[i] + 0.044715 * x[i] * x[i] * x[i]), th = tanh(u);
        double du = k * (1.0 + 3 * 0.044715 * x[i] * x[i]);
        dinp[i] += dout[i] * (0.5 * (1.0 + th) + 0.5 * x[i] * (1.0 - th * th) * du);
    }
}

static double gelu_loss_f(void *p) {
    PointCase *c = p;
    grt_gelu_forward(c->out, c->inp, c->n);
    return fdot(c->dout, c->out, c->n);
}

static double gelu_loss_d(void *p) {
    PointCase *c = p;
    ref_gelu_forward(c->out_d, c->inp_d, c->n);
    return ddot(c->dout_d, c->out_d, c->n);
}

/* out (N,F) = g sigmoid(g) u with [g | u] = inp (N,2F) */
static void ref_swiglu_forward(double *out, const double *inp, int N, int F) {
    for (int n = 0; n < N; n++)
        for (int f = 0; f < F; f++) {
            double g = inp[(size_t)n * 2 * F + f], u = inp[(size_t)n * 2 * F + F + f];
            out[(size_t)n * F + f] = g / (1.0 + exp(-g)) * u;
        }
}

/* dinp (N,2F) += [dout u (s + g s (1 - s)) | dout g s], s = sigmoid(g) */
static void ref_swiglu_backward(double *dinp, const double *inp, const double *dout, int N, int F) {
    for (int n = 0; n < N; n++)
        for (int f = 0; f < F; f++) {
            size_t gi = (size_t)n * 2 * F + f, ui = gi + F;
            double g = inp[gi], u = inp[ui], s = 1.0 / (1.0 + exp(-g)), d = dout[(size_t)n * F + f];
            dinp[gi] += d * u * (s + g * s * (1.0 - s));
            dinp[ui] += d * g * s;
        }
}

static double swiglu_loss_f(void *p) {
    PointCase *c = p;
    grt_swiglu_forward(c->out, c->inp, c->N, c->F);
    return fdot(c->dout, c->out, c->nout);
}

static double swiglu_loss_d(void *p) {
    PointCase *c = p;
    ref_swiglu_forward(c->out_d, c->inp_d, c->N, c->F);
    return ddot(c->dout_d, c->out_d, c->nout);
}

/* A PointCase with n inputs in [-lo, lo) and nout outputs. */
static PointCase point_case(size_t n, size_t nout, double range) {
    PointCase c = {.n = n, .nout = nout};
    c.inp = frand(n, -range, range), c.out = fvec(nout), c.dout = frand(nout, -1, 1);
    c.inp_d = dcopy(c.inp, n), c.out_d = dvec(nout), c.dout_d = dcopy(c.dout, nout);
    return c;
}

/* GELU on [-5, 5] (both tails and the bend), forward and backward. */
static void test_gelu(size_t n) {
    set_case("gelu n=%zu", n);
    PointCase c = point_case(n, n, 5.0);
    grt_gelu_forward(c.out, c.inp, n);
    ref_gelu_forward(c.out_d, c.inp_d, n);
    close_fd("out", c.out, c.out_d, n, RTOL, ATOL);
    float *dinp = fvec(n);
    grt_gelu_backward(dinp, c.inp, c.dout, n);
    float *dinp1 = fcopy(dinp, n);
    grt_gelu_backward(dinp, c.inp, c.dout, n);
    check_twice("dinp", dinp1, dinp, n);
    double *rdinp = dvec(n);
    ref_gelu_backward(rdinp, c.inp_d, c.dout_d, n);
    check_grad("dinp", gelu_loss_f, gelu_loss_d, &c, c.inp, c.inp_d, n, dinp1, rdinp, true);
    release_all();
}

/* SwiGLU on [-6, 6], forward and backward into both halves of each row. */
static void test_swiglu(int N, int F) {
    set_case("swiglu N=%d F=%d", N, F);
    size_t n = (size_t)N * 2 * F, nout = (size_t)N * F;
    PointCase c = point_case(n, nout, 6.0);
    c.N = N, c.F = F;
    grt_swiglu_forward(c.out, c.inp, N, F);
    ref_swiglu_forward(c.out_d, c.inp_d, N, F);
    close_fd("out", c.out, c.out_d, nout, RTOL, ATOL);
    float *dinp = fvec(n);
    grt_swiglu_backward(dinp, c.inp, c.dout, N, F);
    float *dinp1 = fcopy(dinp, n);
    grt_swiglu_backward(dinp, c.inp, c.dout, N, F);
    check_twice("dinp", dinp1, dinp, n);
    double *rdinp = dvec(n);
    ref_swiglu_backward(rdinp, c.inp_d, c.dout_d, N, F);
    check_grad("dinp", swiglu_loss_f, swiglu_loss_d, &c, c.inp, c.inp_d, n, dinp1, rdinp, true);
    release_all();
}

/* Far tails and the origin: GELU and SwiGLU saturate to 0 or x (no NaN, no inf), to ~1e-5 of each element. */
static void test_pointwise_extremes(void) {
    set_case("gelu and swiglu at extremes");
    enum { n = 14 };
    static const float xs[n] = {-1000, -100, -30, -10, -5, -3, -1e-4f, 0, 1e-4f, 3, 5, 10, 30, 100};
    float out[n], dinp[n] = {0}, ones[n];
    for (int i = 0; i < n; i++)
        ones[i] = 1.0f;
    double *xd = dcopy(xs, n), *onesd = dcopy(ones, n), *ref = dvec(n), *rgrad = dvec(n);
    grt_gelu_forward(out, xs, n);
    grt_gelu_backward(dinp, xs, ones, n);
    ref_gelu_forward(ref, xd, n);
    ref_gelu_backward(rgrad, xd, onesd, n);
    close_fd("gelu out", out, ref, n, RTOL, 1e-12);
    close_fd("gelu dinp", dinp, rgrad, n, RTOL, 1e-12);

    /* SwiGLU rows [gate | up] with the gates above and up = 1 */
    float in[2 * n], sout[n], sd[2 * n] = {0};
    memcpy(in, xs, sizeof xs);
    memcpy(in + n, ones, sizeof ones);
    double *ind = dcopy(in, 2 * n), *sref = dvec(n), *sgrad = dvec(2 * n);
    grt_swiglu_forward(sout, in, 1, n);
    grt_swiglu_backward(sd, in, ones, 1, n);
    ref_swiglu_forward(sref, ind, 1, n);
    ref_swiglu_backward(sgrad, ind, onesd, 1, n);
    close_fd("swiglu out", sout, sref, n, RTOL, 1e-12);
    close_fd("swiglu dinp", sd, sgrad, 2 * n, RTOL, 1e-12);
    release_all();
}

/* Residual: out = a + b exactly (one float add), also in place. */
static void test_residual(size_t n) {
    set_case("residual n=%zu", n);
    float *a = frand(n, -1, 1), *b = frand(n, -1, 1), *out = fvec(n);
    grt_residual_forward(out, a, b, n);
    bool ok = true;
    for (size_t i = 0; i < n; i++)
        ok = ok && out[i] == a[i] + b[i];
    CHECK(ok);
    grt_residual_forward(a, a, b, n);
    CHECK(memcmp(a, out, n * sizeof(float)) == 0);
    release_all();
}

/* ---- attention ------------------------------------------------------------- */

typedef struct {
    int B, T, H, KVH, hd, causal;
    float *qkv, *out, *att, *dout;
    double *qkv_d, *out_d, *att_d, *dout_d;
    float *satt; /* scratch probabilities for the finite differences */
    double *satt_d;
} AttCase;

/* Per (b, h, t): scores over the visible keys t2 (t2 <= t when causal) = q . k / sqrt(hd), att = their
 * softmax (0 elsewhere), out = sum att m v with m (B, H, T, T) dropout's mask (0 or 1 / (1 - p); NULL:
 * none); query head h reads kv head h / (H / KVH). */
static void ref_attention_forward_m(double *out, double *att, const double *qkv, int B, int T, int H, int KVH, int hd,
                                    int causal, const double *m) {
    size_t S = (size_t)(H + 2 * KVH) * hd;
    int group = H / KVH;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                const double *q = qkv + ((size_t)b * T + t) * S + (size_t)h * hd;
                double *a = att + (((size_t)b * H + h) * T + t) * T;
                int n = causal ? t + 1 : T;
                double mx = -INFINITY, sum = 0.0;
                for (int t2 = 0; t2 < T; t2++) {
                    a[t2] = 0.0;
                    if (t2 >= n) continue;
                    const double *k = qkv + ((size_t)b * T + t2) * S + (size_t)(H + h / group) * hd;
                    for (int d = 0; d < hd; d++)
                        a[t2] += q[d] * k[d] / sqrt(hd);
                    mx = fmax(mx, a[t2]);
                }
                for (int t2 = 0; t2 < n; t2++)
                    sum += exp(a[t2] - mx);
                for (int t2 = 0; t2 < n; t2++)
                    a[t2] = exp(a[t2] - mx) / sum;
                double *o = out + ((size_t)b * T + t) * H * hd + (size_t)h * hd;
                const double *mr = m ? m + (((size_t)b * H + h) * T + t) * T : NULL;
                for (int d = 0; d < hd; d++) {
                    o[d] = 0.0;
                    for (int t2 = 0; t2 < n; t2++)
                        o[d] += a[t2] * (mr ? mr[t2] : 1.0) *
                                qkv[((size_t)b * T + t2) * S + (size_t)(H + KVH + h / group) * hd + d];
                }
            }
}

static void ref_attention_forward(double *out, double *att, const double *qkv, int B, int T, int H, int KVH, int hd,
                                  int causal) {
    ref_attention_forward_m(out, att, qkv, B, T, H, KVH, hd, causal, NULL);
}

/* dqkv += the gradients of sum(dout * out) through the above, from its att (and mask m); bf16: each
 * score gradient rounded to bf16 (through float) before it multiplies k and q, as mixed precision does. */
static void ref_attention_backward_r(double *dqkv, const double *dout, const double *qkv, const double *att, int B,
                                     int T, int H, int KVH, int hd, int causal, const double *m, int bf16) {
    size_t S = (size_t)(H + 2 * KVH) * hd;
    int group = H / KVH;
    double *datt = dvec(T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                size_t qo = ((size_t)b * T + t) * S + (size_t)h * hd;
                const double *a = att + (((size_t)b * H + h) * T + t) * T;
                const double *d = dout + ((size_t)b * T + t) * H * hd + (size_t)h * hd;
                const double *mr = m ? m + (((size_t)b * H + h) * T + t) * T : NULL;
                int n = causal ? t + 1 : T;
                double dot = 0.0;
                for (int t2 = 0; t2 < n; t2++) {
                    size_t vo = ((size_t)b * T + t2) * S + (size_t)(H + KVH + h / group) * hd;
                    double mk = mr ? mr[t2] : 1.0;
                    datt[t2] = 0.0;
                    for (int e = 0; e < hd; e++) {
                        datt[t2] += mk * d[e] * qkv[vo + e];
                        dqkv[vo + e] += a[t2] * mk * d[e];
                    }
                    dot += a[t2] * datt[t2];
                }
                for (int t2 = 0; t2 < n; t2++) {
                    size_t ko = ((size_t)b * T + t2) * S + (size_t)(H + h / group) * hd;
                    double ds = a[t2] * (datt[t2] - dot);
                    if (bf16) ds = grt_bf16_float(grt_bf16_bits((float)ds));
                    ds /= sqrt(hd);
                    for (int e = 0; e < hd; e++) {
                        dqkv[qo + e] += ds * qkv[ko + e];
                        dqkv[ko + e] += ds * qkv[qo + e];
                    }
                }
            }
}

static void ref_attention_backward_m(double *dqkv, const double *dout, const double *qkv, const double *att, int B,
                                     int T, int H, int KVH, int hd, int causal, const double *m) {
    ref_attention_backward_r(dqkv, dout, qkv, att, B, T, H, KVH, hd, causal, m, 0);
}

static void ref_attention_backward(double *dqkv, const double *dout, const double *qkv, const double *att, int B, int T,
                                   int H, int KVH, int hd, int causal) {
    ref_attention_backward_m(dqkv, dout, qkv, att, B, T, H, KVH, hd, causal, NULL);
}

static double attention_loss_f(void *p) {
    AttCase *c = p;
    grt_attention_forward(c->out, c->satt, c->qkv, c->B, c->T, c->H, c->KVH, c->hd, c->causal);
    return fdot(c->dout, c->out, (size_t)c->B * c->T * c->H * c->hd);
}

static double attention_loss_d(void *p) {
    AttCase *c = p;
    ref_attention_forward(c->out_d, c->satt_d, c->qkv_d, c->B, c->T, c->H, c->KVH, c->hd, c->causal);
    return ddot(c->dout_d, c->out_d, (size_t)c->B * c->T * c->H * c->hd);
}

/* Attention forward (out, att) and backward (dqkv) for one configuration. */
static void test_attention(int B, int T, int H, int KVH, int hd, int causal, bool fd) {
    set_case("attention B=%d T=%d H=%d KVH=%d hd=%d causal=%d", B, T, H, KVH, hd, causal);
    size_t nqkv = (size_t)B * T * (H + 2 * KVH) * hd, no = (size_t)B * T * H * hd, na = (size_t)B * H * T * T;
    AttCase c = {.B = B, .T = T, .H = H, .KVH = KVH, .hd = hd, .causal = causal};
    c.qkv = frand(nqkv, -1.5, 1.5), c.out = fvec(no), c.att = frand(na, -1, 1); /* all of att is overwritten */
    c.dout = frand(no, -1, 1);
    c.qkv_d = dcopy(c.qkv, nqkv), c.out_d = dvec(no), c.att_d = dvec(na), c.dout_d = dcopy(c.dout, no);
    c.satt = fvec(na), c.satt_d = dvec(na);

    grt_attention_forward(c.out, c.att, c.qkv, B, T, H, KVH, hd, causal);
    ref_attention_forward(c.out_d, c.att_d, c.qkv_d, B, T, H, KVH, hd, causal);
    close_fd("out", c.out, c.out_d, no, RTOL, ATOL);
    close_fd("att", c.att, c.att_d, na, RTOL, ATOL);
    if (causal) {
        bool masked = true;
        for (size_t bh = 0; bh < (size_t)B * H; bh++)
            for (int t = 0; t < T; t++)
                for (int t2 = t + 1; t2 < T; t2++)
                    masked = masked && c.att[(bh * T + t) * T + t2] == 0.0f;
        CHECK(masked);
    }

    float *dqkv = fvec(nqkv);
    grt_attention_backward(dqkv, c.dout, c.qkv, c.att, B, T, H, KVH, hd, causal);
    float *dqkv1 = fcopy(dqkv, nqkv);
    grt_attention_backward(dqkv, c.dout, c.qkv, c.att, B, T, H, KVH, hd, causal);
    check_twice("dqkv", dqkv1, dqkv, nqkv);
    /* with the score gradient in a caller's (H, T, T) buffer holding NaN (a block's working space holds
     * other layers' values): the same floats, so no row reads what it did not write */
    float *dqkv_in = fvec(nqkv), *dp = fvec((size_t)H * T * T);
    for (size_t i = 0; i < (size_t)H * T * T; i++)
        dp[i] = NAN;
    grt_attention_backward_in(dqkv_in, c.dout, c.qkv, c.att, B, T, H, KVH, hd, causal, NULL, dp, 0);
    CHECK(memcmp(dqkv_in, dqkv1, nqkv * sizeof(float)) == 0);
    double *rdqkv = dvec(nqkv);
    ref_attention_backward(rdqkv, c.dout_d, c.qkv_d, c.att_d, B, T, H, KVH, hd, causal);
    check_grad("dqkv", attention_loss_f, attention_loss_d, &c, c.qkv, c.qkv_d, nqkv, dqkv1, rdqkv, fd);
    release_all();
}

/* Whether every value of x (n) is a bf16 value. */
static bool all_bf16(const float *x, size_t n) {
    bool ok = true;
    for (size_t i = 0; i < n; i++)
        ok = ok && grt_bf16_float(grt_bf16_bits(x[i])) == x[i];
    return ok;
}

/* Mixed precision's attention core (grt_attention_backward_in's bf16) on
 * rounded q, k, v: the probabilities come out rounded and the output is
 * their product with v; the output's gradient is rounded in place, and the
 * input gradients are the double reference's from the rounded operands,
 * each score gradient rounded: closer to it than to the reference that
 * does not round them, so a missed rounding fails. */
static void test_attention_bf16(int B, int T, int H, int KVH, int hd, int causal) {
    set_case("attention bf16 B=%d T=%d H=%d KVH=%d hd=%d causal=%d", B, T, H, KVH, hd, causal);
    size_t nqkv = (size_t)B * T * (H + 2 * KVH) * hd, no = (size_t)B * T * H * hd, na = (size_t)B * H * T * T;
    size_t S = (size_t)(H + 2 * KVH) * hd;
    float *qkv = frand(nqkv, -1.5, 1.5), *out = fvec(no), *att = frand(na, -1, 1), *dout = frand(no, -1, 1);
    grt_bf16_round(qkv, qkv, nqkv, 1);
    grt_attention_forward_dropout(out, att, qkv, B, T, H, KVH, hd, causal, NULL, NULL, 1);
    CHECK(all_bf16(att, na));
    double *want = dvec(no); /* out = att @ v on the rounded probabilities */
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++)
                for (int t2 = 0; t2 < T; t2++)
                    for (int e = 0; e < hd; e++)
                        want[((size_t)b * T + t) * H * hd + (size_t)h * hd + e] +=
                            (double)att[(((size_t)b * H + h) * T + t) * T + t2] *
                            qkv[((size_t)b * T + t2) * S + (size_t)(H + KVH + h / (H / KVH)) * hd + e];
    close_fd("out", out, want, no, RTOL, ATOL);

    float *d16 = fcopy(dout, no), *dqkv = fvec(nqkv), *dp = fvec((size_t)H * T * T);
    grt_attention_backward_in(dqkv, d16, qkv, att, B, T, H, KVH, hd, causal, NULL, dp, 1);
    float *dr = fcopy(dout, no);
    grt_bf16_round(dr, dr, no, 1);
    CHECK(memcmp(d16, dr, no * sizeof(float)) == 0); /* dout rounded in place */
    double *qkv_d = dcopy(qkv, nqkv), *att_d = dcopy(att, na), *dout_d = dcopy(d16, no);
    double *ref = dvec(nqkv), *ref32 = dvec(nqkv);
    ref_attention_backward_r(ref, dout_d, qkv_d, att_d, B, T, H, KVH, hd, causal, NULL, 1);
    ref_attention_backward_r(ref32, dout_d, qkv_d, att_d, B, T, H, KVH, hd, causal, NULL, 0);
    double err = 0, err32 = 0;
    for (size_t i = 0; i < nqkv; i++) {
        err = fmax(err, fabs(dqkv[i] - ref[i]));
        err32 = fmax(err32, fabs(dqkv[i] - ref32[i]));
    }
    printf("  attention bf16 B=%d T=%d: dqkv within %.2g of the rounded reference, %.2g of the unrounded\n", B, T,
           err, err32);
    CHECK(err < 1e-5 && err * 8 < err32); /* NaN fails both */
    release_all();
}

/* ---- dropout ----------------------------------------------------------------- */

/* The mask of x (rows, cols) under d: 1 where dropout(ones) kept the element, 0 where it dropped it;
 * the kept ones must be exactly 1 / (1 - p). */
static unsigned char *drop_mask(int64_t rows, int cols, int T, const GrtDropout *d) {
    size_t n = (size_t)rows * cols;
    float *x = fvec(n);
    unsigned char *m = talloc(n);
    for (size_t i = 0; i < n; i++)
        x[i] = 1.0f;
    grt_dropout_rows(x, rows, cols, T, d);
    bool scaled = true;
    for (size_t i = 0; i < n; i++) {
        m[i] = x[i] != 0.0f;
        scaled = scaled && (x[i] == 0.0f || x[i] == 1.0f / (1.0f - d->p));
    }
    CHECK(scaled);
    return m;
}

/* Fraction of elements where two masks differ. */
static double mask_diff(const unsigned char *a, const unsigned char *b, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += a[i] != b[i];
    return (double)k / (double)n;
}

/* Over 2^20 elements (16 sequences of 64 x 1024): the kept fraction within 5 standard deviations of
 * 1 - p, neighbours independent (both kept (1 - p)^2), the same key the same mask, and each part
 * of the key (seed, step, layer, site, sequence) a different one (differing in 2 p (1 - p)). */
static void test_dropout_mask(float p) {
    set_case("dropout mask p=%g", p);
    const int T = 64, C = 1024, rows = 16 * T;
    const size_t n = (size_t)rows * C;
    GrtDropout d = {.p = p, .key = grt_dropout_key(1234, 5, 6, GRT_DROP_ATT_OUT), .seq0 = 40};
    unsigned char *m = drop_mask(rows, C, T, &d), *again = drop_mask(rows, C, T, &d);
    size_t kept = 0, pairs = 0;
    for (size_t i = 0; i < n; i++) {
        kept += m[i];
        if (i + 1 < n) pairs += m[i] && m[i + 1];
    }
    double q = 1.0 - p, sd = sqrt(p * q / (double)n), f = (double)kept / (double)n;
    if (!(fabs(f - q) <= 5 * sd)) fprintf(stderr, "%s: kept %.6f, want %.6f +- %.6f\n", case_name, f, q, 5 * sd);
    CHECK(fabs(f - q) <= 5 * sd);
    double f2 = (double)pairs / (double)(n - 1), sd2 = sqrt(q * q * (1 - q * q) / (double)n);
    CHECK(fabs(f2 - q * q) <= 5 * sd2);
    CHECK(mask_diff(m, again, n) == 0.0);
    const GrtDropout other[] = {
        {.p = p, .key = grt_dropout_key(1235, 5, 6, GRT_DROP_ATT_OUT), .seq0 = 40},
        {.p = p, .key = grt_dropout_key(1234, 6, 6, GRT_DROP_ATT_OUT), .seq0 = 40},
        {.p = p, .key = grt_dropout_key(1234, 5, 7, GRT_DROP_ATT_OUT), .seq0 = 40},
        {.p = p, .key = grt_dropout_key(1234, 5, 6, GRT_DROP_MLP_OUT), .seq0 = 40},
        {.p = p, .key = grt_dropout_key(1234, 5, 6, GRT_DROP_ATT_OUT), .seq0 = 41},
    };
    double want = 2 * p * q, sdd = sqrt(want * (1 - want) / (double)n);
    for (size_t k = 0; k < sizeof other / sizeof other[0]; k++) {
        double diff = mask_diff(m, drop_mask(rows, C, T, &other[k]), n);
        if (!(fabs(diff - want) <= 5 * sdd))
            fprintf(stderr, "%s: key change %zu: masks differ in %.6f, want %.6f\n", case_name, k, diff, want);
        CHECK(fabs(diff - want) <= 5 * sdd);
    }
    /* a sequence's mask is its own: rows of sequence 41 seen from seq0 = 41 are those of seq0 = 40's second */
    unsigned char *shifted = drop_mask(rows - T, C, T, &other[4]);
    CHECK(mask_diff(m + (size_t)T * C, shifted, n - (size_t)T * C) == 0.0);
    release_all();
}

/* dropout 0 changes nothing, to the bit */
static void test_dropout_zero(void) {
    set_case("dropout p=0");
    GrtDropout d = {.p = 0.0f, .key = grt_dropout_key(1, 2, 3, GRT_DROP_EMBED)};
    float *x = frand(999, -3, 3), *x0 = fcopy(x, 999);
    grt_dropout_rows(x, 37, 27, 5, &d);
    CHECK(memcmp(x, x0, 999 * sizeof(float)) == 0);
    release_all();
}

typedef struct {
    int N, C, T;
    const GrtDropout *d;
    float *a, *b, *w, *out;
} DropCase;

static double residual_dropout_loss(void *p) {
    DropCase *c = p;
    grt_residual_dropout_forward(c->out, c->a, c->b, c->N, c->C, c->T, c->d);
    return fdot(c->w, c->out, (size_t)c->N * c->C);
}

/* out = a + dropout(b), L = sum(w out): dL/db = dropout(w) (grt_dropout_copy, as the block's backward
 * takes it) against finite differences, dL/da = w; the forward against its definition. */
static void test_residual_dropout(int N, int C, int T, float p) {
    set_case("residual dropout N=%d C=%d T=%d p=%g", N, C, T, p);
    size_t n = (size_t)N * C;
    GrtDropout d = {.p = p, .key = grt_dropout_key(9, 1, 2, GRT_DROP_MLP_OUT), .seq0 = 3};
    DropCase c = {.N = N, .C = C, .T = T, .d = &d};
    c.a = frand(n, -2, 2), c.b = frand(n, -2, 2), c.w = frand(n, -1, 1), c.out = fvec(n);
    grt_residual_dropout_forward(c.out, c.a, c.b, N, C, T, &d);
    unsigned char *m = drop_mask(N, C, T, &d);
    double *want = dvec(n);
    for (size_t i = 0; i < n; i++)
        want[i] = (double)c.a[i] + (m[i] ? (double)(c.b[i] * (1.0f / (1.0f - p))) : 0.0);
    close_fd("out", c.out, want, n, 1e-7, 0);
    float *db = fvec(n);
    grt_dropout_copy(db, c.w, N, C, T, &d);
    close_fd("db vs finite differences", db, fd_float(residual_dropout_loss, &c, c.b, n, 1e-2f), n, 1e-3, 1e-4);
    close_dd("da vs finite differences", fd_float(residual_dropout_loss, &c, c.a, n, 1e-2f), dcopy(c.w, n), n, 1e-3,
             1e-4);
    release_all();
}

/* The probabilities' mask (B, H, T, T) as the runtime keys it: 0, or 1 / (1 - p) where kept. */
static double *att_mask(const GrtDropout *d, int B, int T, int H) {
    double *m = dvec((size_t)B * H * T * T);
    uint32_t thr = grt_dropout_threshold(d->p);
    for (int b = 0; b < B; b++) {
        uint64_t s = grt_dropout_seq(d->key, d->seq0 + b);
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++)
                for (int t2 = 0; t2 < T; t2++) {
                    uint64_t e = ((uint64_t)(d->h0 + h) * T + t) * T + t2;
                    m[(((size_t)b * H + h) * T + t) * T + t2] =
                        grt_dropout_keep(s, e, thr) ? (double)(1.0f / (1.0f - d->p)) : 0.0;
                }
    }
    return m;
}

typedef struct {
    AttCase a;
    const GrtDropout *d;
    double *m;
} AttDropCase;

static double attention_dropout_loss_f(void *p) {
    AttDropCase *c = p;
    AttCase *a = &c->a;
    grt_attention_forward_dropout(a->out, a->satt, a->qkv, a->B, a->T, a->H, a->KVH, a->hd, a->causal, NULL, c->d, 0);
    return fdot(a->dout, a->out, (size_t)a->B * a->T * a->H * a->hd);
}

static double attention_dropout_loss_d(void *p) {
    AttDropCase *c = p;
    AttCase *a = &c->a;
    ref_attention_forward_m(a->out_d, a->satt_d, a->qkv_d, a->B, a->T, a->H, a->KVH, a->hd, a->causal, c->m);
    return ddot(a->dout_d, a->out_d, (size_t)a->B * a->T * a->H * a->hd);
}

/* Attention with dropout on its probabilities, a fixed mask: forward against the double reference
 * (att keeps the undropped probabilities), backward against it and finite differences. */
static void test_attention_dropout(int B, int T, int H, int KVH, int hd, int causal, float p, bool fd) {
    set_case("attention dropout B=%d T=%d H=%d KVH=%d hd=%d causal=%d p=%g", B, T, H, KVH, hd, causal, p);
    size_t nqkv = (size_t)B * T * (H + 2 * KVH) * hd, no = (size_t)B * T * H * hd, na = (size_t)B * H * T * T;
    GrtDropout d = {.p = p, .key = grt_dropout_key(3, 4, 5, GRT_DROP_ATT), .seq0 = 2, .h0 = 1};
    AttDropCase c = {.a = {.B = B, .T = T, .H = H, .KVH = KVH, .hd = hd, .causal = causal}, .d = &d};
    AttCase *a = &c.a;
    c.m = att_mask(&d, B, T, H);
    a->qkv = frand(nqkv, -1.5, 1.5), a->out = fvec(no), a->att = frand(na, -1, 1), a->dout = frand(no, -1, 1);
    a->qkv_d = dcopy(a->qkv, nqkv), a->out_d = dvec(no), a->att_d = dvec(na), a->dout_d = dcopy(a->dout, no);
    a->satt = fvec(na), a->satt_d = dvec(na);
    grt_attention_forward_dropout(a->out, a->att, a->qkv, B, T, H, KVH, hd, causal, NULL, &d, 0);
    ref_attention_forward_m(a->out_d, a->att_d, a->qkv_d, B, T, H, KVH, hd, causal, c.m);
    close_fd("out", a->out, a->out_d, no, RTOL, ATOL);
    close_fd("att", a->att, a->att_d, na, RTOL, ATOL);
    float *dqkv = fvec(nqkv);
    grt_attention_backward_dropout(dqkv, a->dout, a->qkv, a->att, B, T, H, KVH, hd, causal, NULL, &d, 0);
    float *dqkv1 = fcopy(dqkv, nqkv);
    grt_attention_backward_dropout(dqkv, a->dout, a->qkv, a->att, B, T, H, KVH, hd, causal, NULL, &d, 0);
    check_twice("dqkv", dqkv1, dqkv, nqkv);
    double *rdqkv = dvec(nqkv);
    ref_attention_backward_m(rdqkv, a->dout_d, a->qkv_d, a->att_d, B, T, H, KVH, hd, causal, c.m);
    check_grad("dqkv", attention_dropout_loss_f, attention_dropout_loss_d, &c, a->qkv, a->qkv_d, nqkv, dqkv1, rdqkv,
               fd);
    release_all();
}

/* The same mask under every split: two sequences at once equal each alone (seq0 0 and 1, as DP ranks
 * hold them), and four heads at once equal two TP ranks' two heads each (h0 0 and 2, their qkv
 * columns cut as Megatron cuts them). */
static void test_attention_dropout_split(void) {
    set_case("attention dropout split");
    const int B = 2, T = 7, H = 4, hd = 3, S = 3 * H * hd, S2 = 3 * 2 * hd;
    size_t nqkv = (size_t)B * T * S, no = (size_t)B * T * H * hd;
    GrtDropout d = {.p = 0.4f, .key = grt_dropout_key(3, 4, 5, GRT_DROP_ATT)};
    float *qkv = frand(nqkv, -1.5, 1.5), *out = fvec(no), *att = fvec((size_t)B * H * T * T);
    grt_attention_forward_dropout(out, att, qkv, B, T, H, H, hd, 1, NULL, &d, 0);
    bool same = true;
    for (int b = 0; b < B; b++) { /* DP: one sequence each */
        GrtDropout db = d;
        db.seq0 = b;
        float *o = fvec((size_t)T * H * hd), *a1 = fvec((size_t)H * T * T);
        grt_attention_forward_dropout(o, a1, qkv + (size_t)b * T * S, 1, T, H, H, hd, 1, NULL, &db, 0);
        same = same && memcmp(o, out + (size_t)b * T * H * hd, sizeof(float) * (size_t)T * H * hd) == 0;
    }
    CHECK(same);
    for (int r = 0; r < 2; r++) { /* TP: heads [2r, 2r + 2), their q, k and v columns */
        GrtDropout dr = d;
        dr.h0 = 2 * r;
        float *q = fvec((size_t)B * T * S2), *o = fvec((size_t)B * T * 2 * hd), *a2 = fvec((size_t)B * 2 * T * T);
        for (int i = 0; i < B * T; i++)
            for (int part = 0; part < 3; part++)
                memcpy(q + (size_t)i * S2 + (size_t)part * 2 * hd,
                       qkv + (size_t)i * S + (size_t)part * H * hd + 2 * r * hd, sizeof(float) * 2 * hd);
        grt_attention_forward_dropout(o, a2, q, B, T, 2, 2, hd, 1, NULL, &dr, 0);
        for (int i = 0; i < B * T; i++)
            same = same &&
                   memcmp(o + (size_t)i * 2 * hd, out + (size_t)i * H * hd + 2 * r * hd, sizeof(float) * 2 * hd) == 0;
    }
    CHECK(same);
    release_all();
}

/* ---- cross-entropy --------------------------------------------------------- */

typedef struct {
    int N, V;
    const int32_t *tgt;
    float *logits, *probs, *losses, *dloss;
    double *logits_d, *probs_d, *losses_d, *dloss_d;
    float *sprobs; /* scratch probabilities for the finite differences */
    double *sprobs_d;
} CeCase;

/* probs (N,V) = exp(logits - lse), losses (N) = lse - logits[target] (0 when target < 0) */
static void ref_crossentropy_forward(double *losses, double *probs, const double *logits, const int32_t *tgt, int N,
                                     int V) {
    for (int n = 0; n < N; n++) {
        const double *l = logits + (size_t)n * V;
        double mx = -INFINITY, s = 0.0;
        for (int j = 0; j < V; j++)
            mx = fmax(mx, l[j]);
        for (int j = 0; j < V; j++)
            s += exp(l[j] - mx);
        double lse = mx + log(s);
        for (int j = 0; j < V; j++)
            probs[(size_t)n * V + j] = exp(l[j] - lse);
        losses[n] = tgt[n] < 0 ? 0.0 : lse - l[tgt[n]];
    }
}

/* dlogits (N,V) += (probs - onehot(target)) dloss, rows with target < 0 untouched */
static void ref_crossentropy_backward(double *dlogits, const double *probs, const int32_t *tgt, const double *dloss,
                                      int N, int V) {
    for (int n = 0; n < N; n++)
        if (tgt[n] >= 0)
            for (int j = 0; j < V; j++)
                dlogits[(size_t)n * V + j] += (probs[(size_t)n * V + j] - (j == tgt[n])) * dloss[n];
}

static double crossentropy_loss_f(void *p) {
    CeCase *c = p;
    grt_crossentropy_forward(c->losses, c->sprobs, c->logits, c->tgt, c->N, c->V);
    return fdot(c->dloss, c->losses, c->N);
}

static double crossentropy_loss_d(void *p) {
    CeCase *c = p;
    ref_crossentropy_forward(c->losses_d, c->sprobs_d, c->logits_d, c->tgt, c->N, c->V);
    return ddot(c->dloss_d, c->losses_d, c->N);
}

/* Cross-entropy forward (losses, probs) and backward with logits of magnitude up to range, with an
 * ignored row (target -1) that has a loss of exactly 0 and receives no gradient. */
static void test_crossentropy(int N, int V, const int32_t *tgt, double range, bool fd) {
    set_case("crossentropy N=%d V=%d range=%g", N, V, range);
    size_t nl = (size_t)N * V;
    CeCase c = {.N = N, .V = V, .tgt = tgt};
    c.logits = frand(nl, -range, range), c.probs = fvec(nl), c.losses = fvec(N), c.dloss = frand(N, 0.5, 1.5);
    c.logits_d = dcopy(c.logits, nl), c.probs_d = dvec(nl), c.losses_d = dvec(N), c.dloss_d = dcopy(c.dloss, N);
    c.sprobs = fvec(nl), c.sprobs_d = dvec(nl);

    grt_crossentropy_forward(c.losses, c.probs, c.logits, tgt, N, V);
    ref_crossentropy_forward(c.losses_d, c.probs_d, c.logits_d, tgt, N, V);
    close_fd("losses", c.losses, c.losses_d, N, RTOL, ATOL);
    close_fd("probs", c.probs, c.probs_d, nl, RTOL, ATOL);

    float *dl = fvec(nl);
    grt_crossentropy_backward(dl, c.probs, tgt, c.dloss, N, V);
    float *dl1 = fcopy(dl, nl);
    grt_crossentropy_backward(dl, c.probs, tgt, c.dloss, N, V);
    check_twice("dlogits", dl1, dl, nl);
    double *rdl = dvec(nl);
    ref_crossentropy_backward(rdl, c.probs_d, tgt, c.dloss_d, N, V);
    check_grad("dlogits", crossentropy_loss_f, crossentropy_loss_d, &c, c.logits, c.logits_d, nl, dl1, rdl, fd);
    for (int n = 0; n < N; n++) {
        if (tgt[n] >= 0) continue;
        CHECK(c.losses[n] == 0.0f);
        for (int j = 0; j < V; j++)
            CHECK(dl1[(size_t)n * V + j] == 0.0f);
    }
    release_all();
}

/* A NaN logit makes its row's loss NaN (so a diverging run shows), and only that row's. */
static void test_crossentropy_nan(void) {
    set_case("crossentropy NaN logit");
    const float logits[] = {0.5f, NAN, -1.0f, 2.0f, 0.5f, 1.0f, -1.0f, 2.0f, 0.0f, 3.0f};
    const int32_t tgt[] = {0, 1};
    float probs[10], loss[2];
    grt_crossentropy_forward(loss, probs, logits, tgt, 2, 5);
    CHECK(isnan(loss[0]));
    CHECK(isfinite(loss[1]));
}

/* Logits far from zero (1000 apart) stay finite: the softmax subtracts the row's max. */
static void test_crossentropy_extreme(void) {
    set_case("crossentropy extreme logits");
    const float logits[] = {1000.0f, 1001.0f, -1000.0f, 999.0f};
    const int32_t tgt[] = {2};
    float probs[4], loss[1];
    grt_crossentropy_forward(loss, probs, logits, tgt, 1, 4);
    double lse = 1001.0 + log(exp(-1.0) + 1.0 + exp(-2001.0) + exp(-2.0));
    CHECK(isfinite(loss[0]) && fabs(loss[0] - (lse + 1000.0)) <= 1e-5 * (lse + 1000.0));
    CHECK(probs[2] == 0.0f && fabs(probs[1] - 1.0 / (1.0 + exp(-1.0) + exp(-2.0))) < 1e-6);
}

/* ---- optimizer ------------------------------------------------------------- */

/* Sum of squares against a plain double loop, for lengths around the unrolling. */
static void test_sumsq(void) {
    set_case("sumsq");
    size_t lens[] = {0, 1, 3, 4, 7, 1003};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        float *x = frand(lens[k], -2, 2);
        double want = 0.0;
        for (size_t i = 0; i < lens[k]; i++)
            want += (double)x[i] * x[i];
        double got = grt_sumsq(x, lens[k]);
        CHECK(fabs(got - want) <= 1e-12 * want);
    }
    release_all();
}

/* AdamW, two steps on two parameters, against values worked by hand (lr 0.1, betas 0.9 / 0.999, eps 1e-8,
 * weight decay 0.1; grad_scale 0.5 then 0.25):
 *   p0 = 1, grads 0.5 then -1: g = 0.25, m = 0.025, v = 6.25e-5, mhat / sqrt(vhat) = 0.25 / 0.25 = 1,
 *        p = 1 - 0.1 (1 + 0.1) = 0.89; then g = -0.25, m = -0.0025, v = 1.249375e-4,
 *        mhat = -0.0025 / 0.19, vhat = 1.249375e-4 / 0.001999, p = 0.8863631616...
 *   p1 = -2, grads 3 then 0: g = 1.5, m = 0.15, v = 0.00225, ratio 1, p = -2 - 0.1 (1 - 0.2) = -2.08;
 *        then g = 0, m = 0.135, v = 0.00224775, p = -2.1262058241... */
static void test_adamw(void) {
    set_case("adamw");
    float p[2] = {1.0f, -2.0f}, m[2] = {0}, v[2] = {0};
    const float g1[2] = {0.5f, 3.0f}, g2[2] = {-1.0f, 0.0f};
    grt_adamw(p, g1, m, v, 2, 0.1f, 0.9f, 0.999f, 1e-8f, 0.1f, 0.5f, 1);
    CHECK(fabs(p[0] - 0.89) < 1e-6 && fabs(p[1] + 2.08) < 1e-6);
    /* m and v to float's rounding of 1 - beta (1 - 0.999f is 1.3e-5 off 0.001) */
    CHECK(fabs(m[0] - 0.025) < 1e-6 * 0.025 && fabs(v[0] - 6.25e-5) < 2e-5 * 6.25e-5);
    grt_adamw(p, g2, m, v, 2, 0.1f, 0.9f, 0.999f, 1e-8f, 0.1f, 0.25f, 2);
    CHECK(fabs(p[0] - 0.8863631616442103) < 1e-6 && fabs(p[1] + 2.126205824121759) < 1e-6);
    CHECK(fabs(m[0] + 0.0025) < 1e-5 * 0.0025 && fabs(m[1] - 0.135) < 1e-6 * 0.135);
    CHECK(fabs(v[0] - 1.249375e-4) < 2e-5 * 1.249375e-4 && fabs(v[1] - 0.00224775) < 2e-5 * 0.00224775);
}

/* ---- main ------------------------------------------------------------------ */

/* The bf16 value nearest to finite x by distance in double, ties to the
 * even one; past the largest bf16 by half its step or more, infinity
 * (IEEE 754's round to nearest, ties to even). */
static double bf16_nearest(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    uint32_t lo = u & 0xffff0000u, hi = lo + 0x10000u;
    float flo, fhi;
    memcpy(&flo, &lo, sizeof lo);
    memcpy(&fhi, &hi, sizeof hi);
    double dhi = isinf(fhi) ? copysign(ldexp(1.0, 128), x) : fhi; /* the step past the largest */
    double a = fabs((double)x - flo), b = fabs((double)x - dhi);
    double r = a < b ? flo : b < a ? dhi : (lo >> 16 & 1) ? dhi : flo;
    return isinf(r) || fabs(r) >= ldexp(1.0, 128) ? copysign(INFINITY, x) : r;
}

/* grt_bf16_bits against bf16_nearest, and on NaN and infinity; grt_bf16_round both ways. */
static void test_bf16(void) {
    uint64_t r = 88172645463325252ull;
    int bad = 0;
    for (int i = 0; i < 200000; i++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        uint32_t u = (uint32_t)r;
        if (i < 4) u = (uint32_t[]){0x7f7fffffu, 0x7f7f8000u, 0x7f7f7fffu, 0x3f818000u}[i];
        float x;
        memcpy(&x, &u, sizeof u);
        if (isnan(x) || isinf(x)) continue;
        bad += (double)grt_bf16_float(grt_bf16_bits(x)) != bf16_nearest(x);
    }
    CHECK(bad == 0);
    CHECK(isnan(grt_bf16_float(grt_bf16_bits(NAN))));
    CHECK(grt_bf16_bits(INFINITY) == 0x7f80 && grt_bf16_bits(-INFINITY) == 0xff80);
    float x[3] = {1.00390625f, -3.14159f, 65504.0f}, wide[3];
    uint16_t bits[3];
    grt_bf16_round(bits, x, 3, 0);
    grt_bf16_round(wide, x, 3, 1);
    for (int i = 0; i < 3; i++)
        CHECK(grt_bf16_float(bits[i]) == wide[i] && wide[i] == (float)bf16_nearest(x[i]));
}

/* grt_matmul16_forward and _backward against grt_matmul_* on operands
 * rounded by hand: the same products, summed in fp32 the same way. */
static void test_matmul16(int N, int C, int OC) {
    size_t nx = (size_t)N * C, ny = (size_t)N * OC, nw = (size_t)OC * C;
    float *x = calloc(nx, 4), *w = calloc(nw, 4), *dy = calloc(ny, 4), *b = calloc(OC, 4);
    float *rx = calloc(nx, 4), *rw = calloc(nw, 4), *rdy = calloc(ny, 4);
    float *out = calloc(ny, 4), *ref = calloc(ny, 4), *dx = calloc(nx, 4), *rdx = calloc(nx, 4);
    float *dw = calloc(nw, 4), *rdw = calloc(nw, 4), *db = calloc(OC, 4), *rdb = calloc(OC, 4);
    float *ops = calloc((size_t)grt_size_linear16(N, C, OC), 4);
    for (size_t i = 0; i < nx; i++)
        x[i] = sinf(0.37f * (float)i) * 3;
    for (size_t i = 0; i < nw; i++)
        w[i] = cosf(0.11f * (float)i);
    for (size_t i = 0; i < ny; i++)
        dy[i] = sinf(0.05f * (float)i + 1);
    for (int i = 0; i < OC; i++)
        b[i] = 0.1f * (float)i;
    grt_bf16_round(rx, x, nx, 1), grt_bf16_round(rw, w, nw, 1), grt_bf16_round(rdy, dy, ny, 1);
    grt_matmul16_forward(out, x, NULL, w, b, N, C, OC, GRT_GEMM16_WIDE, ops);
    grt_matmul_forward(ref, rx, rw, b, N, C, OC);
    grt_matmul16_backward(dx, dw, db, dy, x, NULL, w, N, C, OC, GRT_GEMM16_WIDE, ops);
    grt_matmul_backward(rdx, rdw, NULL, rdy, rx, rw, N, C, OC);
    grt_matmul_backward(NULL, NULL, rdb, dy, x, w, N, 0, OC); /* the bias gradient from fp32 */
    CHECK(memcmp(out, ref, ny * 4) == 0 && memcmp(dx, rdx, nx * 4) == 0);
    CHECK(memcmp(dw, rdw, nw * 4) == 0 && memcmp(db, rdb, (size_t)OC * 4) == 0);
    CHECK(memcmp(rx, x, nx * 4) != 0); /* the rounding did round */
    /* a block's kept input: its rounded floats and their bits, read as they are, the same products */
    uint16_t *bits = calloc(nx, 2);
    float *out2 = calloc(ny, 4), *dw2 = calloc(nw, 4);
    grt_bf16_round(bits, x, nx, 0);
    grt_matmul16_forward(out2, rx, bits, w, b, N, C, OC, GRT_GEMM16_WIDE, ops);
    grt_matmul16_backward(NULL, dw2, NULL, dy, rx, bits, w, N, C, OC, GRT_GEMM16_WIDE, ops);
    CHECK(memcmp(out2, ref, ny * 4) == 0 && memcmp(dw2, rdw, nw * 4) == 0);
    free(bits), free(out2), free(dw2);
    float *all[] = {x, w, dy, b, rx, rw, rdy, out, ref, dx, rdx, dw, rdw, db, rdb, ops};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        free(all[i]);
}

int main(void) {
    test_matmul(5, 7, 6, true, true);
    test_matmul(5, 7, 6, false, true);
    test_matmul(1, 3, 1, true, true);
    test_matmul(67, 96, 80, true, false);
    test_bf16();
    test_matmul16(5, 7, 6);
    test_matmul16(67, 96, 80);

    test_embedding(3, 4, true);  /* a shard: tokens below, inside and above it */
    test_embedding(3, 4, false); /* no learned positions */
    test_embedding(0, 10, true); /* the whole vocabulary */
    test_embedding(8, 2, true);  /* the last shard */

    test_rope(2, 6, 3, 8, 10000.0f, true);
    test_rope(1, 5, 2, 6, 10.0f, true);        /* large angles */
    test_rope(1, 4096, 1, 8, 10000.0f, false); /* positions far from 0 */

    test_layernorm(4, 7, true);
    test_layernorm(4, 7, false);
    test_layernorm(3, 300, true);
    test_rmsnorm(4, 7);
    test_rmsnorm(3, 300);

    test_gelu(41);
    test_gelu(8);
    test_gelu(3);
    test_swiglu(3, 5);
    test_swiglu(2, 8);
    test_swiglu(2, 3);
    test_pointwise_extremes();
    test_residual(17);

    for (int causal = 0; causal <= 1; causal++) {
        test_attention(2, 5, 4, 4, 6, causal, true);     /* MHA */
        test_attention(2, 5, 4, 2, 6, causal, true);     /* GQA, 2 query heads per kv head */
        test_attention(2, 5, 4, 1, 6, causal, true);     /* MQA */
        test_attention(1, 1, 2, 1, 4, causal, true);     /* one token */
        test_attention(1, 300, 2, 1, 16, causal, false); /* several row blocks, the last partial */
        test_attention_bf16(2, 9, 4, 2, 8, causal);
        test_attention_bf16(1, 300, 2, 1, 16, causal);
    }

    for (int k = 0; k < 3; k++)
        test_dropout_mask((const float[]){0.1f, 0.5f, 0.9f}[k]);
    test_dropout_zero();
    test_residual_dropout(10, 7, 4, 0.3f); /* rows across sequences of 4 */
    test_residual_dropout(3, 33, 1, 0.1f);
    for (int causal = 0; causal <= 1; causal++) {
        test_attention_dropout(2, 5, 4, 4, 6, causal, 0.3f, true);
        test_attention_dropout(2, 5, 4, 2, 6, causal, 0.5f, true);     /* GQA */
        test_attention_dropout(1, 300, 2, 1, 16, causal, 0.1f, false); /* several row blocks */
    }
    test_attention_dropout_split();

    static const int32_t tgt[] = {2, -1, 0, 6, 3};
    test_crossentropy(5, 7, tgt, 3.0, true);
    static const int32_t tgt_big[] = {999, -1, 17};
    test_crossentropy(3, 1000, tgt_big, 8.0, false);
    test_crossentropy_extreme();
    test_crossentropy_nan();

    test_sumsq();
    test_adamw();
    return check_report();
}
