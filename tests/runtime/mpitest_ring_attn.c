// ranks: 4
/* mpitest_ring_attn.c — ring attention (runtime/ring_attn.c) on 4 ranks as
 * one context-parallel group of 4 and as two groups of 2, and on each rank
 * alone (cp 1): with the causal mask and without, grouped-query attention
 * (4 heads, 2 key/value heads), each rank's output, log-sum-exp and Q, K, V
 * gradients against a plain attention over the whole sequence computed in
 * doubles here, whose own gradients are checked against central finite
 * differences of the loss sum(W * out). Within 1e-5 of the largest value;
 * a NaN fails. */
#include "../unit/check.h"
#include "galvrt.h"
#include "mpi_check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { B = 2, T = 16, H = 4, KVH = 2, HD = 8 };
#define QN ((size_t)B * T * H * HD)
#define KN ((size_t)B * T * KVH * HD)

static int me;

/* Deterministic values in [-1, 1), the same on every rank. */
static void fill(double *x, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        x[i] = (double)(seed >> 8 & 0xffff) / 32768.0 - 1.0;
    }
}

/* Plain attention over the whole sequence: out (B, T, H, HD), lse (B, H, T). */
static void reference_forward(const double *q, const double *k, const double *v, int causal, double *out, double *lse) {
    double scale = 1.0 / sqrt((double)HD), p[T];
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++) {
                double mx = -INFINITY, sum = 0;
                const double *qi = q + (((size_t)b * T + i) * H + h) * HD;
                for (int j = 0; j < T; j++) {
                    const double *kj = k + (((size_t)b * T + j) * KVH + h / (H / KVH)) * HD;
                    double s = 0;
                    for (int d = 0; d < HD; d++)
                        s += qi[d] * kj[d];
                    p[j] = causal && j > i ? -INFINITY : s * scale;
                    mx = p[j] > mx ? p[j] : mx;
                }
                for (int j = 0; j < T; j++)
                    sum += p[j] = exp(p[j] - mx);
                double *o = out + (((size_t)b * T + i) * H + h) * HD;
                for (int d = 0; d < HD; d++) {
                    o[d] = 0;
                    for (int j = 0; j < T; j++)
                        o[d] += p[j] / sum * v[(((size_t)b * T + j) * KVH + h / (H / KVH)) * HD + d];
                }
                lse[((size_t)b * H + h) * T + i] = mx + log(sum);
            }
}

/* Its gradients for dout: dq, dk, dv (softmax backward: dS = P (dP - rowsum(dO O))). */
static void reference_backward(const double *q, const double *k, const double *v, int causal, const double *dout,
                               double *dq, double *dk, double *dv) {
    double *out = calloc(QN, sizeof *out), *lse = calloc((size_t)B * H * T, sizeof *lse),
           scale = 1.0 / sqrt((double)HD);
    reference_forward(q, k, v, causal, out, lse);
    memset(dq, 0, QN * sizeof *dq), memset(dk, 0, KN * sizeof *dk), memset(dv, 0, KN * sizeof *dv);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++) {
                size_t qa = (((size_t)b * T + i) * H + h) * HD;
                double D = 0;
                for (int d = 0; d < HD; d++)
                    D += dout[qa + d] * out[qa + d];
                for (int j = 0; j < (causal ? i + 1 : T); j++) {
                    size_t ka = (((size_t)b * T + j) * KVH + h / (H / KVH)) * HD;
                    double s = 0, dp = 0;
                    for (int d = 0; d < HD; d++)
                        s += q[qa + d] * k[ka + d], dp += dout[qa + d] * v[ka + d];
                    double p = exp(s * scale - lse[((size_t)b * H + h) * T + i]), ds = p * (dp - D) * scale;
                    for (int d = 0; d < HD; d++)
                        dv[ka + d] += p * dout[qa + d], dq[qa + d] += ds * k[ka + d], dk[ka + d] += ds * q[qa + d];
                }
            }
    free(out), free(lse);
}

static double loss(const double *q, const double *k, const double *v, int causal, const double *w) {
    double *out = calloc(QN, sizeof *out), *lse = calloc((size_t)B * H * T, sizeof *lse), s = 0;
    reference_forward(q, k, v, causal, out, lse);
    for (size_t i = 0; i < QN; i++)
        s += w[i] * out[i];
    free(out), free(lse);
    return s;
}

/* The reference's gradients against central differences of loss, every 7th element of q, k and v. */
static void check_reference(const double *q, const double *k, const double *v, int causal, const double *w) {
    double *dq = malloc(QN * sizeof *dq), *dk = malloc(KN * sizeof *dk), *dv = malloc(KN * sizeof *dv);
    reference_backward(q, k, v, causal, w, dq, dk, dv);
    double *x[3] = {(double *)q, (double *)k, (double *)v}, *g[3] = {dq, dk, dv}, worst = 0, eps = 1e-5;
    size_t n[3] = {QN, KN, KN};
    for (int t = 0; t < 3; t++)
        for (size_t i = 0; i < n[t]; i += 7) {
            double keep = x[t][i];
            x[t][i] = keep + eps;
            double up = loss(q, k, v, causal, w);
            x[t][i] = keep - eps;
            double down = loss(q, k, v, causal, w);
            x[t][i] = keep;
            double err = fabs((up - down) / (2 * eps) - g[t][i]);
            worst = err > worst || err != err ? err : worst;
        }
    CHECK(worst <= 1e-6);
    free(dq), free(dk), free(dv);
}

/* The rank's rows of a whole (B, T, n) tensor, as floats. */
static float *rows_of(const double *whole, int n, int cp, int r) {
    int Tl = T / cp;
    float *x = malloc((size_t)B * Tl * n * sizeof *x);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < Tl; t++)
            for (int c = 0; c < n; c++)
                x[((size_t)b * Tl + t) * n + c] =
                    (float)whole[((size_t)b * T + grt_ring_position(T, cp, r, t)) * n + c];
    return x;
}

/* Largest |got - want| over the rank's rows, relative to the largest |want| (NaN stays NaN). */
static double rows_error(const float *got, const double *whole, int n, int cp, int r) {
    int Tl = T / cp;
    double err = 0, top = 1e-30;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < Tl; t++)
            for (int c = 0; c < n; c++) {
                double want = whole[((size_t)b * T + grt_ring_position(T, cp, r, t)) * n + c];
                double e = fabs((double)got[((size_t)b * Tl + t) * n + c] - want);
                err = e > err || e != e ? e : err;
                top = fabs(want) > top ? fabs(want) : top;
            }
    return err / top;
}

/* Ring attention on group g against the reference, one mask. */
static void check_ring(GrtComm *g, int causal) {
    int cp = grt_size(g), r = grt_rank(g), Tl = T / cp;
    double *q = malloc(QN * sizeof *q), *k = malloc(KN * sizeof *k), *v = malloc(KN * sizeof *v);
    double *w = malloc(QN * sizeof *w), *out = malloc(QN * sizeof *out), *lse = malloc((size_t)B * H * T * sizeof *lse);
    double *dq = malloc(QN * sizeof *dq), *dk = malloc(KN * sizeof *dk), *dv = malloc(KN * sizeof *dv);
    fill(q, QN, 1), fill(k, KN, 2), fill(v, KN, 3), fill(w, QN, 4);
    if (cp == 1 && me == 0) check_reference(q, k, v, causal, w);
    reference_forward(q, k, v, causal, out, lse);
    reference_backward(q, k, v, causal, w, dq, dk, dv);
    GrtRingAttn a = {.group = g, .B = B, .T = T, .H = H, .KVH = KVH, .hd = HD, .causal = causal};
    float *lq = rows_of(q, H * HD, cp, r), *lk = rows_of(k, KVH * HD, cp, r), *lv = rows_of(v, KVH * HD, cp, r);
    float *lw = rows_of(w, H * HD, cp, r), *lout = malloc(QN / cp * sizeof *lout);
    float *llse = malloc((size_t)B * H * Tl * sizeof *llse),
          *work = malloc(grt_ring_attn_work_floats(&a) * sizeof *work);
    float *ldq = malloc(QN / cp * sizeof *ldq), *ldk = malloc(KN / cp * sizeof *ldk),
          *ldv = malloc(KN / cp * sizeof *ldv);
    grt_ring_attn_forward(&a, lq, lk, lv, lout, llse, work);
    grt_ring_attn_backward(&a, lq, lk, lv, lout, llse, lw, ldq, ldk, ldv, work);
    double lse_err = 0;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < Tl; t++) {
                double e = fabs(llse[((size_t)b * H + h) * Tl + t] -
                                lse[((size_t)b * H + h) * T + grt_ring_position(T, cp, r, t)]);
                lse_err = e > lse_err || e != e ? e : lse_err;
            }
    double e[5] = {rows_error(lout, out, H * HD, cp, r), lse_err, rows_error(ldq, dq, H * HD, cp, r),
                   rows_error(ldk, dk, KVH * HD, cp, r), rows_error(ldv, dv, KVH * HD, cp, r)};
    static const char *const name[5] = {"out", "lse", "dq", "dk", "dv"};
    for (int i = 0; i < 5; i++) {
        if (!(e[i] <= 1e-5)) fprintf(stderr, "rank %d: cp %d causal %d: %s off by %g\n", me, cp, causal, name[i], e[i]);
        CHECK(e[i] <= 1e-5);
    }
    free(q), free(k), free(v), free(w), free(out), free(lse), free(dq), free(dk), free(dv);
    free(lq), free(lk), free(lv), free(lw), free(lout), free(llse), free(work), free(ldq), free(ldk), free(ldv);
}

int main(int argc, char **argv) {
    GrtComm *world = grt_init(&argc, &argv);
    me = grt_rank(world);
    CHECK_EQ(grt_size(world), 4);
    GrtComm *pairs = grt_comm_split(world, me / 2, me), *alone = grt_comm_split(world, me, 0);
    for (int causal = 0; causal <= 1; causal++) {
        check_ring(world, causal);
        check_ring(pairs, causal);
        check_ring(alone, causal);
    }
    /* the load-balanced chunks: rank r of 4 holds chunks r and 7 - r of 8 */
    CHECK_EQ(grt_ring_position(16, 4, 1, 0), 2);
    CHECK_EQ(grt_ring_position(16, 4, 1, 2), 12);
    return mpi_check_finish(world); /* the sum over every rank decides; rank 0 prints it */
}
