/* swin.c — the reference kernels of Swin's layers (Liu et al. 2021, "Swin
 * Transformer: Hierarchical Vision Transformer using Shifted Windows",
 * ICCV): attention within windows of M x M tokens of a square grid, with a
 * learned relative position bias, the grid rolled by `shift` first in
 * shifted blocks (the cyclic shift of section 3.2, its attention mask
 * keeping tokens that were not neighbours before the roll apart), and the
 * patch merging between stages (section 3.1). The GEMMs around them are
 * grt_matmul_*'s.
 *
 * No tensor is moved to partition or roll: window w's token i is found in
 * place (grt_window_token), so the window attention reads QKV and writes its
 * output in the grid's own row-major token order, and the reverse roll is
 * the same mapping read backwards. */
#include "galvrt.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* The mask value of pairs from different regions, as the reference
 * implementation's attention mask (a large negative score, not -inf, so a
 * row is never empty). */
#define GRT_SWIN_MASK (-100.0f)

/* Window w's token i (w over the (side / M)^2 windows row-major, i over
 * its M x M tokens row-major) as a token of the unrolled grid: the window
 * cuts the grid rolled up and left by shift, so its (y, x) is the grid's
 * ((y + shift) mod side, (x + shift) mod side). */
int grt_window_token(int side, int M, int shift, int w, int i) {
    int per = side / M, y = w / per * M + i / M, x = w % per * M + i % M;
    return (y + shift) % side * side + (x + shift) % side;
}

/* The bias table's entry (of (2M - 1)^2) for query i and key j of a window:
 * their relative offset (dy, dx), each in [-(M - 1), M - 1]. */
int grt_window_rel_index(int M, int i, int j) {
    return (i / M - j / M + M - 1) * (2 * M - 1) + (i % M - j % M + M - 1);
}

/* A rolled grid's coordinate's region: the rows [0, side - M), [side - M,
 * side - shift) and [side - shift, side) (the last two wrapped around). */
static int region(int side, int M, int shift, int y) { return y < side - M ? 0 : y < side - shift ? 1 : 2; }

/* The mask between tokens i and j of window w: 0 when both lie in one
 * region of the rolled grid (always, unshifted), else GRT_SWIN_MASK. */
float grt_window_mask(int side, int M, int shift, int w, int i, int j) {
    if (!shift) return 0.0f;
    int per = side / M, y0 = w / per * M, x0 = w % per * M;
    int ri = region(side, M, shift, y0 + i / M) * 3 + region(side, M, shift, x0 + i % M);
    int rj = region(side, M, shift, y0 + j / M) * 3 + region(side, M, shift, x0 + j % M);
    return ri == rj ? 0.0f : GRT_SWIN_MASK;
}

/* One window's head: its geometry and where its rows lie. */
typedef struct Win {
    const GrtWindowShape *g;
    int b, w, h;
} Win;

/* Row of window token i's token in a (B, T, width) tensor. */
static size_t row_of(const Win *x, int i) {
    const GrtWindowShape *g = x->g;
    return (size_t)x->b * g->side * g->side + (size_t)grt_window_token(g->side, g->M, g->shift, x->w, i);
}

static float dot(const float *a, const float *b, int n) {
    float s = 0;
    for (int k = 0; k < n; k++)
        s += a[k] * b[k];
    return s;
}

/* One window head's forward: its probabilities p (M^2, M^2) and its output rows. */
static void window_head_forward(const Win *x, float *out, float *p, const float *qkv, const float *table) {
    const GrtWindowShape *g = x->g;
    int n = g->M * g->M, hd = g->hd, S = 3 * g->H * hd, nb = (2 * g->M - 1) * (2 * g->M - 1);
    float scale = 1.0f / sqrtf((float)hd);
    for (int i = 0; i < n; i++) {
        const float *q = qkv + row_of(x, i) * S + (size_t)x->h * hd;
        float *pi = p + (size_t)i * n, mx = -INFINITY, sum = 0;
        for (int j = 0; j < n; j++) {
            const float *k = qkv + row_of(x, j) * S + (size_t)(g->H + x->h) * hd;
            pi[j] = dot(q, k, hd) * scale + table[(size_t)x->h * nb + grt_window_rel_index(g->M, i, j)] +
                    grt_window_mask(g->side, g->M, g->shift, x->w, i, j);
            mx = fmaxf(mx, pi[j]);
        }
        for (int j = 0; j < n; j++)
            sum += pi[j] = expf(pi[j] - mx);
        for (int j = 0; j < n; j++)
            pi[j] /= sum;
        float *o = out + row_of(x, i) * g->H * hd + (size_t)x->h * hd;
        memset(o, 0, sizeof(float) * (size_t)hd);
        for (int j = 0; j < n; j++) {
            const float *v = qkv + row_of(x, j) * S + (size_t)(2 * g->H + x->h) * hd;
            for (int d = 0; d < hd; d++)
                o[d] += pi[j] * v[d];
        }
    }
}

/* out (B, T, H hd) = window attention of qkv (B, T, 3 H hd) with the bias
 * table (H, (2M - 1)^2) and, shifted, the mask; att (B, nW, H, M^2, M^2)
 * keeps the probabilities. T = side^2 tokens per image. */
void grt_window_attention_forward(float *out, float *att, const float *qkv, const float *table,
                                  const GrtWindowShape *g) {
    int nW = (g->side / g->M) * (g->side / g->M), n = g->M * g->M;
    for (int b = 0; b < g->B; b++)
        for (int w = 0; w < nW; w++)
            for (int h = 0; h < g->H; h++) {
                Win x = {g, b, w, h};
                window_head_forward(&x, out, att + (((size_t)b * nW + w) * g->H + h) * n * n, qkv, table);
            }
}

/* One window head's backward from its output gradient rows. */
static void window_head_backward(const Win *x, float *dqkv, float *dtable, const float *dout, const float *qkv,
                                 const float *p) {
    const GrtWindowShape *g = x->g;
    int n = g->M * g->M, hd = g->hd, S = 3 * g->H * hd, nb = (2 * g->M - 1) * (2 * g->M - 1);
    float scale = 1.0f / sqrtf((float)hd);
    size_t qo = (size_t)x->h * hd, ko = (size_t)(g->H + x->h) * hd, vo = (size_t)(2 * g->H + x->h) * hd;
    for (int i = 0; i < n; i++) {
        const float *d = dout + row_of(x, i) * g->H * hd + qo, *pi = p + (size_t)i * n;
        float rowsum = 0;
        for (int j = 0; j < n; j++)
            rowsum += pi[j] * dot(d, qkv + row_of(x, j) * S + vo, hd);
        const float *q = qkv + row_of(x, i) * S + qo;
        float *dq = dqkv + row_of(x, i) * S + qo;
        for (int j = 0; j < n; j++) {
            const float *k = qkv + row_of(x, j) * S + ko, *v = qkv + row_of(x, j) * S + vo;
            float *dk = dqkv + row_of(x, j) * S + ko, *dv = dqkv + row_of(x, j) * S + vo;
            float ds = pi[j] * (dot(d, v, hd) - rowsum); /* the score's gradient, through the softmax */
            dtable[(size_t)x->h * nb + grt_window_rel_index(g->M, i, j)] += ds;
            for (int c = 0; c < hd; c++) {
                dv[c] += pi[j] * d[c];
                dq[c] += scale * ds * k[c];
                dk[c] += scale * ds * q[c];
            }
        }
    }
}

/* The window attention's backward from dout (B, T, H hd) and the kept att:
 * dqkv (B, T, 3 H hd) written, dtable (H, (2M - 1)^2) accumulated. */
void grt_window_attention_backward(float *dqkv, float *dtable, const float *dout, const float *qkv, const float *att,
                                   const GrtWindowShape *g) {
    int nW = (g->side / g->M) * (g->side / g->M), n = g->M * g->M;
    memset(dqkv, 0, sizeof(float) * (size_t)g->B * g->side * g->side * 3 * g->H * g->hd);
    for (int b = 0; b < g->B; b++)
        for (int w = 0; w < nW; w++)
            for (int h = 0; h < g->H; h++) {
                Win x = {g, b, w, h};
                window_head_backward(&x, dqkv, dtable, dout, qkv, att + (((size_t)b * nW + w) * g->H + h) * n * n);
            }
}

/* Row of the merged token r's part k (0..3) in the (B, side^2) grid: the
 * 2 x 2 group at (2 y, 2 x), its parts in Hugging Face's SwinPatchMerging
 * order (y, x), (y + 1, x), (y, x + 1), (y + 1, x + 1). */
static size_t merge_row(int side, int b, int r, int k) {
    int half = side / 2, y = r / half * 2 + (k & 1), x = r % half * 2 + (k >> 1);
    return (size_t)b * side * side + (size_t)y * side + x;
}

/* X (B, side^2 / 4, 4 C) = each 2 x 2 group of x (B, side^2, C) concatenated. */
void grt_merge_gather(float *X, const float *x, int B, int side, int C) {
    int n = side * side / 4;
    for (int b = 0; b < B; b++)
        for (int r = 0; r < n; r++)
            for (int k = 0; k < 4; k++)
                memcpy(X + (((size_t)b * n + r) * 4 + k) * C, x + merge_row(side, b, r, k) * C, sizeof(float) * C);
}

/* Its backward: dx (B, side^2, C) += dX (B, side^2 / 4, 4 C)'s parts. */
void grt_merge_scatter(float *dx, const float *dX, int B, int side, int C) {
    int n = side * side / 4;
    for (int b = 0; b < B; b++)
        for (int r = 0; r < n; r++)
            for (int k = 0; k < 4; k++) {
                float *d = dx + merge_row(side, b, r, k) * C;
                const float *s = dX + (((size_t)b * n + r) * 4 + k) * C;
                for (int c = 0; c < C; c++)
                    d[c] += s[c];
            }
}

/* ---- the same through GEMMs, window order and the generated kernels ---------------- */

/* Window order's row r (of rows) as a grid row: as grt_window_token, image r / side^2. */
static size_t grid_row(int64_t r, int side, int M, int shift) {
    int64_t T = (int64_t)side * side;
    return (size_t)(r / T * T + grt_window_token(side, M, shift, (int)(r % T / (M * M)), (int)(r % (M * M))));
}

/* dst (rows, C) = src's rows in window order (src: whole images of side^2 rows). */
void grt_window_gather(float *dst, const float *src, int64_t rows, int C, int side, int M, int shift) {
    for (int64_t r = 0; r < rows; r++)
        memcpy(dst + (size_t)r * C, src + grid_row(r, side, M, shift) * C, sizeof(float) * (size_t)C);
}

/* The inverse: dst's rows in grid order from src (rows, C) in window order. */
void grt_window_scatter(float *dst, const float *src, int64_t rows, int C, int side, int M, int shift) {
    for (int64_t r = 0; r < rows; r++)
        memcpy(dst + grid_row(r, side, M, shift) * C, src + (size_t)r * C, sizeof(float) * (size_t)C);
}

/* att (rows, n) = softmax(att scale + bias (H, n, n) + mask (nW, n, n)) row by
 * row, row r query r mod n of head (r / n) mod H of window (r / (n H)) mod nW. */
void grt_window_softmax_forward(float *att, const float *bias, const float *mask, int64_t rows, int n, int H, int nW,
                                float scale) {
    for (int64_t r = 0; r < rows; r++) {
        float *a = att + (size_t)r * n;
        int64_t i = r % n, h = r / n % H, w = r / ((int64_t)n * H) % nW;
        const float *b = bias + ((size_t)h * n + i) * n, *m = mask + ((size_t)w * n + i) * n;
        for (int j = 0; j < n; j++)
            a[j] = a[j] * scale + b[j] + m[j];
        grt_attention_softmax_forward(a, 1, n, 0, 0, 1.0f); /* the softmax the kernels share (x 1 is exact) */
    }
}

/* bias (H, n, n) = the table (H, (2M - 1)^2) at each pair's relative index;
 * mask (nW, n, n) = each window's pairs' mask. */
static void expand_bias(float *bias, float *mask, const float *table, const GrtWindowShape *g) {
    int n = g->M * g->M, nb = (2 * g->M - 1) * (2 * g->M - 1), nW = (g->side / g->M) * (g->side / g->M);
    for (int h = 0; h < g->H; h++)
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                bias[((size_t)h * n + i) * n + j] = table[(size_t)h * nb + grt_window_rel_index(g->M, i, j)];
    for (int w = 0; mask && w < nW; w++)
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                mask[((size_t)w * n + i) * n + j] = grt_window_mask(g->side, g->M, g->shift, w, i, j);
}

/* Rows of the layer's tokens, and of window order's attention rows. */
static int64_t win_rows(const GrtWindowShape *g) { return (int64_t)g->B * g->side * g->side; }

static void gather(const GrtWindowKernels *k, float *dst, const float *src, int C, const GrtWindowShape *g) {
    if (k && k->gather[C == g->H * g->hd])
        k->gather[C == g->H * g->hd](win_rows(g), dst, src);
    else
        grt_window_gather(dst, src, win_rows(g), C, g->side, g->M, g->shift);
}

static void scatter(const GrtWindowKernels *k, float *dst, const float *src, int C, const GrtWindowShape *g) {
    if (k && k->scatter[C == g->H * g->hd])
        k->scatter[C == g->H * g->hd](win_rows(g), dst, src);
    else
        grt_window_scatter(dst, src, win_rows(g), C, g->side, g->M, g->shift);
}

/* The window attention as grt_window_attention_forward computes it, through
 * window order: QKV gathered (qkvw), per window and head the scores q k^T
 * and the output P v by BLAS, the biased softmax between (the generated
 * kernels where k has them, else the references), the output scattered back. */
void grt_window_attention_gemm_forward(float *out, float *att, const float *qkv, const float *table,
                                       const GrtWindowShape *g, const GrtWindowWork *wk, const GrtWindowKernels *k) {
    int n = g->M * g->M, hd = g->hd, S = 3 * g->H * hd, HD = g->H * hd, nW = (g->side / g->M) * (g->side / g->M);
    expand_bias(wk->bias, wk->mask, table, g);
    gather(k, wk->qkvw, qkv, S, g);
    for (int64_t bw = 0; bw < (int64_t)g->B * nW; bw++)
        for (int h = 0; h < g->H; h++) {
            const float *q = wk->qkvw + (size_t)bw * n * S + (size_t)h * hd;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, hd, 1.0f, q, S, q + HD, S, 0.0f,
                        att + ((size_t)bw * g->H + h) * n * n, n);
        }
    int64_t rows = (int64_t)g->B * nW * g->H * n;
    if (k && k->softmax)
        k->softmax(rows, att, wk->bias, wk->mask);
    else
        grt_window_softmax_forward(att, wk->bias, wk->mask, rows, n, g->H, nW, 1.0f / sqrtf((float)hd));
    for (int64_t bw = 0; bw < (int64_t)g->B * nW; bw++)
        for (int h = 0; h < g->H; h++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, hd, n, 1.0f,
                        att + ((size_t)bw * g->H + h) * n * n, n,
                        wk->qkvw + (size_t)bw * n * S + (size_t)(2 * g->H + h) * hd, S, 0.0f,
                        wk->yw + (size_t)bw * n * HD + (size_t)h * hd, HD);
    scatter(k, out, wk->yw, HD, g);
}

/* One window head's backward in window order: dS from dP = dO v^T through the
 * softmax (k's generated kernel, or the reference), dv, dq, dk accumulated,
 * dS summed into dbias (n, n). */
static void window_head_gemm_backward(float *dqkvw, float *dbias, float *dS, const float *dyw, const float *qkvw,
                                      const float *p, const GrtWindowShape *g, const GrtWindowKernels *k) {
    int n = g->M * g->M, hd = g->hd, S = 3 * g->H * hd, HD = g->H * hd;
    float scale = 1.0f / sqrtf((float)hd);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, hd, 1.0f, dyw, HD, qkvw + 2 * HD, S, 0.0f, dS, n);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, hd, n, 1.0f, p, n, dyw, HD, 1.0f, dqkvw + 2 * HD, S);
    if (k && k->softmax_bwd)
        k->softmax_bwd(n, dS, p, 0);
    else
        grt_attention_softmax_backward(dS, p, n, n, 0, 0);
    for (int e = 0; e < n * n; e++)
        dbias[e] += dS[e];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, hd, n, scale, dS, n, qkvw + HD, S, 1.0f, dqkvw, S);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, hd, n, scale, dS, n, qkvw, S, 1.0f, dqkvw + HD, S);
}

/* Its backward: dqkv (B, T, 3 H hd) written, dtable accumulated. */
void grt_window_attention_gemm_backward(float *dqkv, float *dtable, const float *dout, const float *qkv,
                                        const float *att, const GrtWindowShape *g, const GrtWindowWork *wk,
                                        const GrtWindowKernels *k) {
    int n = g->M * g->M, hd = g->hd, S = 3 * g->H * hd, HD = g->H * hd, nW = (g->side / g->M) * (g->side / g->M);
    int nb = (2 * g->M - 1) * (2 * g->M - 1);
    gather(k, wk->qkvw, qkv, S, g);
    gather(k, wk->yw, dout, HD, g);
    memset(wk->dqkvw, 0, sizeof(float) * (size_t)win_rows(g) * S);
    memset(wk->bias, 0, sizeof(float) * (size_t)g->H * n * n); /* the bias's gradient, (H, n, n) */
    for (int64_t bw = 0; bw < (int64_t)g->B * nW; bw++)
        for (int h = 0; h < g->H; h++) {
            size_t at = (size_t)bw * n * S + (size_t)h * hd;
            window_head_gemm_backward(wk->dqkvw + at, wk->bias + (size_t)h * n * n, wk->dS,
                                      wk->yw + (size_t)bw * n * HD + (size_t)h * hd, wk->qkvw + at,
                                      att + ((size_t)bw * g->H + h) * n * n, g, k);
        }
    for (int h = 0; h < g->H; h++) /* each pair's entry of the table */
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                dtable[(size_t)h * nb + grt_window_rel_index(g->M, i, j)] += wk->bias[((size_t)h * n + i) * n + j];
    scatter(k, dqkv, wk->dqkvw, S, g);
}
