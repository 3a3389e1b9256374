/* kernel_ir_embed.c — the descriptions of the token + position embedding,
 * ViT's class token + patches + positions (Dosovitskiy et al. 2021, eq. 1;
 * runtime/vision.c's grt_patch_assemble and its backward),
 * (a vocabulary shard's partial lookup under TP, runtime/kernels.c's
 * grt_embedding_forward/backward) and of rotary position embedding (Su et
 * al. 2021, "RoFormer", eq. 34) forward and backward, in place on the Q and K
 * heads of the fused qkv rows. The rotary angles come from a (T, hd / 2)
 * table of cosines and sines the runtime computes as the reference does
 * (grt_rope_table), so the rotation is the reference's, operation for
 * operation. */
#include "kernel_gen.h"

/* ---- embedding ---------------------------------------------------------------- */
/* embed_fwd (rows, out, tokens, wte, wpe, T, vocab_start, vocab_rows):
 * out (rows, C) = wte (vocab_rows, C)[token - vocab_start] (0 off the shard) + wpe (T, C)[row % T] */

/* The row's token (from the tokens array, parameter i) as a row of this
 * shard's wte: a the row (clamped to 0 off the shard), b whether it is on it. */
static RowVals shard_row(KB *k, int i) {
    LLVMValueRef tok = kgen_load_i32(k, param(k, i), k->row);
    LLVMValueRef idx = LLVMBuildSub(k->b, tok, param(k, 6), "");
    LLVMValueRef on = LLVMBuildAnd(k->b, icmp(k, LLVMIntSGE, idx, kgen_i64(k, 0)),
                                   icmp(k, LLVMIntSLT, idx, param(k, 7)), "");
    return (RowVals){.a = LLVMBuildSelect(k->b, on, idx, kgen_i64(k, 0), ""), .b = on};
}

/* The row's position: row % T. */
static LLVMValueRef position(KB *k, LLVMValueRef T) { return LLVMBuildSRem(k->b, k->row, T, ""); }

static void ef_cols(KB *k, const void *ctx, LLVMValueRef *t) {
    const RowVals *v = ctx;
    (void)t;
    LLVMValueRef e = load_col(k, v->c);
    e = LLVMBuildSelect(k->b, v->b, e, cf(k, 0.0f), ""); /* the reference's memset, then += */
    if (v->bias) e = add(k, e, load_col(k, v->d));
    store(k, param(k, 1), k->cols, 0, e);
}

void kir_embed_fwd(KB *k, int flags) {
    RowVals v = shard_row(k, 2);
    v.c = row_ptr(k, param(k, 3), imul(k, v.a, k->cols));
    v.bias = flags & GRT_KF_POS;
    if (v.bias) v.d = row_ptr(k, param(k, 4), imul(k, position(k, param(k, 5)), k->cols));
    k->map->cols(k, ef_cols, &v, 0, NULL);
}

/* embed_bwd (rows, dwte, dwpe, dout, tokens, T, vocab_start, vocab_rows):
 * dwte (vocab_rows, C)[token - vocab_start] += dout (rows, C) (shard rows only); dwpe (T, C)[row % T] += dout */

static void eb_cols(KB *k, const void *ctx, LLVMValueRef *t) {
    const RowVals *v = ctx;
    (void)t;
    LLVMValueRef d = load(k, param(k, 3), k->cols, 0);
    if (v->c) k->map->col_add(k, v->c, d);
    if (v->d) k->map->col_add(k, v->d, d);
}

void kir_embed_bwd(KB *k, int flags) {
    RowVals on = shard_row(k, 4);
    LLVMValueRef g = row_ptr(k, param(k, 1), imul(k, on.a, k->cols));
    LLVMValueRef p = flags & GRT_KF_POS ? row_ptr(k, param(k, 2), imul(k, position(k, param(k, 5)), k->cols)) : NULL;
    If c;
    kgen_if(k, &c, on.b);
    k->map->cols(k, eb_cols, &(RowVals){.c = g, .d = p}, 0, NULL);
    if (p) { /* a token of another shard still has a position */
        kgen_else(k, &c);
        k->map->cols(k, eb_cols, &(RowVals){.d = p}, 0, NULL);
    }
    kgen_endif(k, &c);
}

/* ---- ViT's tokens --------------------------------------------------------------- */
/* patch_fwd (rows, out, y, cls, pos, T): row r is position t = r % T of image
 * r / T; out = (t ? y[(r / T) (T - 1) + t - 1] : cls) + pos[t]. */

/* The row's position t, and its patch's row of y (0 for the class token). */
static RowVals patch_row(KB *k) {
    LLVMValueRef T = param(k, 5), t = position(k, T), img = LLVMBuildSDiv(k->b, k->row, T, "");
    LLVMValueRef patch = iadd(k, LLVMBuildMul(k->b, img, LLVMBuildSub(k->b, T, kgen_i64(k, 1), ""), ""), t);
    LLVMValueRef first = icmp(k, LLVMIntEQ, t, kgen_i64(k, 0));
    patch = LLVMBuildSelect(k->b, first, kgen_i64(k, 0), LLVMBuildSub(k->b, patch, kgen_i64(k, 1), ""), "");
    return (RowVals){.a = t, .b = first, .c = patch};
}

static void pf_cols(KB *k, const void *ctx, LLVMValueRef *t) {
    const RowVals *v = ctx;
    (void)t;
    store(k, param(k, 1), k->cols, 0, add(k, load_col(k, v->d), load_col(k, v->e)));
}

void kir_patch_fwd(KB *k, int flags) {
    (void)flags;
    RowVals v = patch_row(k);
    LLVMValueRef y = row_ptr(k, param(k, 2), imul(k, v.c, k->cols));
    v.d = LLVMBuildSelect(k->b, v.b, param(k, 3), y, ""); /* the class token, or the row's patch */
    v.e = row_ptr(k, param(k, 4), imul(k, v.a, k->cols));
    k->map->cols(k, pf_cols, &v, 0, NULL);
}

/* patch_bwd (rows, dy, dcls, dpos, dout, T): dpos[t] += dout; dcls += dout
 * (t = 0) or dy[patch] = dout. */

static void pb_cols(KB *k, const void *ctx, LLVMValueRef *t) {
    const RowVals *v = ctx;
    (void)t;
    LLVMValueRef d = load(k, param(k, 4), k->cols, 0);
    k->map->col_add(k, v->e, d);
    if (v->d) k->map->col_add(k, v->d, d);
    else store_col(k, v->f, d);
}

void kir_patch_bwd(KB *k, int flags) {
    (void)flags;
    RowVals v = patch_row(k);
    v.e = row_ptr(k, param(k, 3), imul(k, v.a, k->cols));
    v.f = row_ptr(k, param(k, 1), imul(k, v.c, k->cols));
    If c;
    kgen_if(k, &c, v.b);
    k->map->cols(k, pb_cols, &(RowVals){.d = param(k, 2), .e = v.e}, 0, NULL);
    kgen_else(k, &c);
    k->map->cols(k, pb_cols, &(RowVals){.e = v.e, .f = v.f}, 0, NULL);
    kgen_endif(k, &c);
}

/* ---- rotary ------------------------------------------------------------------- */
/* rope (rows, x, cs, sn, T, heads, ld): row r is head r % heads of token
 * n = r / heads, hd = 2 C floats at x + n ld + (r % heads) hd, position n % T;
 * column i rotates the pair (2i, 2i + 1) by cs, sn (T, C)[position][i]. */

/* The lanes' pairs (x[2 col], x[2 col + 1], ...) at p: evens in v[0], odds in v[1]. */
static void load_pairs(KB *k, LLVMValueRef p, LLVMValueRef *v) {
    LLVMValueRef i = LLVMBuildShl(k->b, k->col, kgen_i64(k, 1), "");
    LLVMValueRef a = LLVMBuildGEP2(k->b, k->f32, p, &i, 1, "");
    if (k->width == 1) {
        LLVMValueRef one = kgen_i64(k, 1);
        v[0] = LLVMBuildLoad2(k->b, k->f32, a, "");
        v[1] = LLVMBuildLoad2(k->b, k->f32, LLVMBuildGEP2(k->b, k->f32, a, &one, 1, ""), "");
        LLVMSetAlignment(v[0], 4), LLVMSetAlignment(v[1], 4);
        return;
    }
    LLVMValueRef both = LLVMBuildLoad2(k->b, LLVMVectorType(k->f32, 2 * (unsigned)k->width), a, "");
    LLVMSetAlignment(both, 4);
    for (int h = 0; h < 2; h++) {
        LLVMValueRef m[64];
        for (int j = 0; j < k->width; j++)
            m[j] = LLVMConstInt(k->i32, (unsigned)(2 * j + h), 0);
        v[h] = LLVMBuildShuffleVector(k->b, both, both, LLVMConstVector(m, (unsigned)k->width), "");
    }
}

/* The pairs (v[0] lane j, v[1] lane j) back to p, interleaved. */
static void store_pairs(KB *k, LLVMValueRef p, LLVMValueRef *v) {
    LLVMValueRef i = LLVMBuildShl(k->b, k->col, kgen_i64(k, 1), "");
    LLVMValueRef a = LLVMBuildGEP2(k->b, k->f32, p, &i, 1, "");
    if (k->width == 1) {
        LLVMValueRef one = kgen_i64(k, 1);
        LLVMSetAlignment(LLVMBuildStore(k->b, v[0], a), 4);
        LLVMSetAlignment(LLVMBuildStore(k->b, v[1], LLVMBuildGEP2(k->b, k->f32, a, &one, 1, "")), 4);
        return;
    }
    LLVMValueRef m[128];
    for (int j = 0; j < 2 * k->width; j++)
        m[j] = LLVMConstInt(k->i32, (unsigned)(j / 2 + (j % 2) * k->width), 0);
    LLVMValueRef both = LLVMBuildShuffleVector(k->b, v[0], v[1], LLVMConstVector(m, 2 * (unsigned)k->width), "");
    LLVMSetAlignment(LLVMBuildStore(k->b, both, a), 4);
}

/* forward: (x0 c - x1 s, x0 s + x1 c); backward (the transpose): (x0 c + x1 s, x1 c - x0 s) */
static void rope_cols(KB *k, const void *ctx, LLVMValueRef *t) {
    const RowVals *v = ctx;
    (void)t;
    LLVMValueRef x[2], y[2], c = load_col(k, v->b), s = load_col(k, v->c);
    load_pairs(k, v->a, x);
    if (v->bias) { /* backward */
        y[0] = add(k, mul(k, x[0], c), mul(k, x[1], s));
        y[1] = sub(k, mul(k, x[1], c), mul(k, x[0], s));
    } else {
        y[0] = sub(k, mul(k, x[0], c), mul(k, x[1], s));
        y[1] = add(k, mul(k, x[0], s), mul(k, x[1], c));
    }
    store_pairs(k, v->a, y);
}

static void rope(KB *k, int backward) {
    LLVMValueRef heads = param(k, 5), n = LLVMBuildSDiv(k->b, k->row, heads, "");
    LLVMValueRef h = LLVMBuildSRem(k->b, k->row, heads, "");
    LLVMValueRef base = iadd(k, LLVMBuildMul(k->b, n, param(k, 6), ""), imul(k, h, 2 * (long long)k->cols));
    LLVMValueRef angle = imul(k, LLVMBuildSRem(k->b, n, param(k, 4), ""), k->cols);
    RowVals v = {.a = row_ptr(k, param(k, 1), base), .b = row_ptr(k, param(k, 2), angle),
                 .c = row_ptr(k, param(k, 3), angle), .bias = backward};
    k->map->cols(k, rope_cols, &v, 0, NULL);
}

void kir_rope_fwd(KB *k, int flags) {
    (void)flags;
    rope(k, 0);
}

void kir_rope_bwd(KB *k, int flags) {
    (void)flags;
    rope(k, 1);
}
