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
    for (int k = 0; k < n; k++) s += a[k] * b[k];
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
        for (int j = 0; j < n; j++) sum += pi[j] = expf(pi[j] - mx);
        for (int j = 0; j < n; j++) pi[j] /= sum;
        float *o = out + row_of(x, i) * g->H * hd + (size_t)x->h * hd;
        memset(o, 0, sizeof(float) * (size_t)hd);
        for (int j = 0; j < n; j++) {
            const float *v = qkv + row_of(x, j) * S + (size_t)(2 * g->H + x->h) * hd;
            for (int d = 0; d < hd; d++) o[d] += pi[j] * v[d];
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
        for (int j = 0; j < n; j++) rowsum += pi[j] * dot(d, qkv + row_of(x, j) * S + vo, hd);
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
 * dqkv (B, T, 3 H hd) and dtable (H, (2M - 1)^2) accumulated. */
void grt_window_attention_backward(float *dqkv, float *dtable, const float *dout, const float *qkv, const float *att,
                                   const GrtWindowShape *g) {
    int nW = (g->side / g->M) * (g->side / g->M), n = g->M * g->M;
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
                for (int c = 0; c < C; c++) d[c] += s[c];
            }
}
