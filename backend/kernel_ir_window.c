/* kernel_ir_window.c — the descriptions of Swin's window kernels (Liu et al.
 * 2021, section 3.2; runtime/swin.c's references): the gather of a layer's
 * token rows into window order (the cyclic shift and the partition as one
 * row permutation) and its inverse, and the window attention's softmax with
 * the relative position bias and the shifted windows' mask added to the
 * scaled scores. */
#include "kernel_gen.h"

/* ---- the window permutation ------------------------------------------------------ */
/* win_gather (rows, dst, src; side, M, shift): dst (rows, C) row r = src row
 * of window order's row r: image b = r / side^2, window w and place i of
 * the rest (M^2 places a window, windows row-major), its grid place
 * ((y + shift) mod side, (x + shift) mod side) for the window's (y, x).
 * win_scatter: the inverse, src row r to dst at that row. */

/* The grid row (i64) that window order's row k->row holds. */
static LLVMValueRef grid_row(KB *k) {
    int64_t side = k->shape->c[0], M = k->shape->c[1], shift = k->shape->c[2], per = side / M;
    LLVMValueRef T = kgen_i64(k, side * side), n = kgen_i64(k, M * M), m = kgen_i64(k, M);
    LLVMValueRef b = LLVMBuildSDiv(k->b, k->row, T, ""), rest = LLVMBuildSRem(k->b, k->row, T, "");
    LLVMValueRef w = LLVMBuildSDiv(k->b, rest, n, ""), i = LLVMBuildSRem(k->b, rest, n, "");
    LLVMValueRef wy = LLVMBuildSDiv(k->b, w, kgen_i64(k, per), ""), wx = LLVMBuildSRem(k->b, w, kgen_i64(k, per), "");
    LLVMValueRef y = iadd(k, imul(k, wy, M), LLVMBuildSDiv(k->b, i, m, ""));
    LLVMValueRef x = iadd(k, imul(k, wx, M), LLVMBuildSRem(k->b, i, m, ""));
    y = LLVMBuildSRem(k->b, iadd(k, y, kgen_i64(k, shift)), kgen_i64(k, side), "");
    x = LLVMBuildSRem(k->b, iadd(k, x, kgen_i64(k, shift)), kgen_i64(k, side), "");
    return iadd(k, LLVMBuildMul(k->b, b, T, ""), iadd(k, imul(k, y, side), x));
}

static void wp_cols(KB *k, const void *ctx, LLVMValueRef *t) {
    const RowVals *v = ctx;
    (void)t;
    store_col(k, v->a, load_col(k, v->b));
}

/* dst's row and src's: window order's row on the side `windowed` (1: dst, gather; 2: src, scatter). */
static void permute(KB *k, int windowed) {
    LLVMValueRef own = imul(k, k->row, k->cols), grid = imul(k, grid_row(k), k->cols);
    RowVals v = {.a = row_ptr(k, param(k, 1), windowed == 1 ? own : grid),
                 .b = row_ptr(k, param(k, 2), windowed == 2 ? own : grid)};
    k->map->cols(k, wp_cols, &v, 0, NULL);
}

void kir_win_gather(KB *k, int flags) {
    (void)flags;
    permute(k, 1);
}

void kir_win_scatter(KB *k, int flags) {
    (void)flags;
    permute(k, 2);
}

/* ---- the window softmax ------------------------------------------------------------ */
/* win_softmax_fwd (rows, att, bias, mask; H, nW, hd): att (rows, n) in place, n = M^2
 * keys; row r is query i = r mod n of head h = (r / n) mod H of window w =
 * (r / (n H)) mod nW: softmax(att / sqrt(hd) + bias (H, n, n)[h][i] +
 * mask (nW, n, n)[w][i]) (as grt_window_softmax_forward). RowVals: b att's
 * row, c bias's, d max, e 1/sum, f mask's, a the scale. */

static LLVMValueRef biased(KB *k, const RowVals *v) {
    LLVMValueRef x = mul(k, load_col(k, v->b), splat(k, v->a));
    return add(k, add(k, x, load_col(k, v->c)), load_col(k, v->f));
}

static void wsf_max(KB *k, const void *ctx, LLVMValueRef *t) { t[0] = biased(k, ctx); }

static void wsf_exp(KB *k, const void *ctx, LLVMValueRef *t) {
    const RowVals *v = ctx;
    LLVMValueRef e = kgen_exp(k, sub(k, biased(k, v), splat(k, v->d)));
    store_col(k, v->b, e);
    t[0] = ext(k, e);
}

static void wsf_norm(KB *k, const void *ctx, LLVMValueRef *t) {
    const RowVals *v = ctx;
    (void)t;
    store_col(k, v->b, mul(k, load_col(k, v->b), splat(k, v->e)));
}

void kir_win_softmax_fwd(KB *k, int flags) {
    (void)flags;
    int64_t n = k->cols, H = k->shape->c[0], nW = k->shape->c[1];
    float scale = 1.0f / __builtin_sqrtf((float)k->shape->c[2]);
    LLVMValueRef i = LLVMBuildSRem(k->b, k->row, kgen_i64(k, n), "");
    LLVMValueRef h = LLVMBuildSRem(k->b, LLVMBuildSDiv(k->b, k->row, kgen_i64(k, n), ""), kgen_i64(k, H), "");
    LLVMValueRef w = LLVMBuildSRem(k->b, LLVMBuildSDiv(k->b, k->row, kgen_i64(k, n * H), ""), kgen_i64(k, nW), "");
    RowVals v = {.a = LLVMConstReal(k->f32, scale),
                 .b = row_ptr(k, param(k, 1), imul(k, k->row, n)),
                 .c = row_ptr(k, param(k, 2), imul(k, iadd(k, imul(k, h, n), i), n)),
                 .f = row_ptr(k, param(k, 3), imul(k, iadd(k, imul(k, w, n), i), n))};
    LLVMValueRef sum;
    k->map->cols_max(k, wsf_max, &v, &v.d);
    k->map->cols(k, wsf_exp, &v, 1, &sum);
    v.e = LLVMBuildFPTrunc(k->b, fdiv(k, LLVMConstReal(k->f64, 1.0), sum), k->f32, "");
    k->map->cols(k, wsf_norm, &v, 0, NULL);
}

/* ---- patch merging's groups --------------------------------------------------------- */
/* merge_gather (rows, dst, src; side): dst (rows, C) row r = part k = r mod 4
 * of merged token m = r / 4 (its group's rows in Hugging Face's order
 * (0, 0), (1, 0), (0, 1), (1, 1)) from src's grid of side x side tokens an
 * image; merge_scatter (rows, dx, dX; side): the transpose, dx's rows +=
 * dX (rows, C)'s (as grt_merge_gather, grt_merge_scatter). */

/* The grid row (i64) of the part k->row. */
static LLVMValueRef merge_row(KB *k) {
    int64_t side = k->shape->c[0], half = side / 2, n = half * half;
    LLVMValueRef m = LLVMBuildSDiv(k->b, k->row, kgen_i64(k, 4), ""), part = LLVMBuildSRem(k->b, k->row, kgen_i64(k, 4), "");
    LLVMValueRef b = LLVMBuildSDiv(k->b, m, kgen_i64(k, n), ""), r = LLVMBuildSRem(k->b, m, kgen_i64(k, n), "");
    LLVMValueRef dy = LLVMBuildAnd(k->b, part, kgen_i64(k, 1), ""), dx = LLVMBuildAShr(k->b, part, kgen_i64(k, 1), "");
    LLVMValueRef y = iadd(k, imul(k, LLVMBuildSDiv(k->b, r, kgen_i64(k, half), ""), 2), dy);
    LLVMValueRef x = iadd(k, imul(k, LLVMBuildSRem(k->b, r, kgen_i64(k, half), ""), 2), dx);
    return iadd(k, imul(k, b, side * side), iadd(k, imul(k, y, side), x));
}

static void ms_cols(KB *k, const void *ctx, LLVMValueRef *t) {
    const RowVals *v = ctx;
    (void)t;
    k->map->col_add(k, v->a, load_col(k, v->b));
}

void kir_merge_gather(KB *k, int flags) {
    (void)flags;
    RowVals v = {.a = row_ptr(k, param(k, 1), imul(k, k->row, k->cols)),
                 .b = row_ptr(k, param(k, 2), imul(k, merge_row(k), k->cols))};
    k->map->cols(k, wp_cols, &v, 0, NULL);
}

void kir_merge_scatter(KB *k, int flags) {
    (void)flags;
    RowVals v = {.a = row_ptr(k, param(k, 1), imul(k, merge_row(k), k->cols)),
                 .b = row_ptr(k, param(k, 2), imul(k, k->row, k->cols))};
    k->map->cols(k, ms_cols, &v, 0, NULL);
}
