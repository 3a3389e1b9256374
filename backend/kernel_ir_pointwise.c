/* kernel_ir_pointwise.c — the descriptions of the pointwise kernels:
 * residual add, bias + GELU (tanh form, Hendrycks and Gimpel 2016) forward
 * and backward, SwiGLU (Shazeer 2020) forward and backward, each one pass
 * over its rows in runtime/kernels.c's arithmetic, and the rounding of
 * mixed precision's GEMM operands to bf16. */
#include "kernel_gen.h"

#define GELU_K 0.7978845608028654f /* sqrt(2 / pi) */
#define GELU_A 0.044715f

/* u = sqrt(2/pi) (x + 0.044715 x^3), as the reference orders it */
static LLVMValueRef gelu_u(KB *k, LLVMValueRef x) {
    LLVMValueRef x3 = mul(k, mul(k, mul(k, cf(k, GELU_A), x), x), x);
    return mul(k, cf(k, GELU_K), add(k, x, x3));
}

/* gelu(x) = x sigmoid(2u) = 0.5 x (1 + tanh u) */
static LLVMValueRef gelu(KB *k, LLVMValueRef x) {
    LLVMValueRef e = kgen_exp(k, mul(k, cf(k, -2.0f), gelu_u(k, x)));
    return fdiv(k, x, add(k, cf(k, 1.0f), e));
}

/* gelu'(x) = s + 2 x s (1 - s) du/dx, s = sigmoid(2u), 1 - s = e s, e = e^-2u */
static LLVMValueRef gelu_grad(KB *k, LLVMValueRef x) {
    LLVMValueRef e = kgen_exp(k, mul(k, cf(k, -2.0f), gelu_u(k, x)));
    LLVMValueRef s = fdiv(k, cf(k, 1.0f), add(k, cf(k, 1.0f), e));
    LLVMValueRef du = mul(k, cf(k, GELU_K), add(k, cf(k, 1.0f), mul(k, mul(k, cf(k, 3.0f * GELU_A), x), x)));
    LLVMValueRef t = mul(k, mul(k, mul(k, cf(k, 2.0f), x), s), mul(k, e, s));
    return add(k, s, mul(k, t, du));
}

/* ---- pointwise -------------------------------------------------------------- */

/* residual (rows, out, a, b, bias): out (rows, C) = a + b; with GRT_KF_BIAS a + (b + bias (C)), the
 * projection's bias added as the reference adds it to b before the residual (runtime/layers.c) */
static void res_cols(KB *k, const void *ctx, LLVMValueRef *t) {
    (void)t;
    LLVMValueRef b = load(k, param(k, 3), k->cols, 0);
    if (((const RowVals *)ctx)->bias) b = add(k, b, load_col(k, param(k, 4)));
    store(k, param(k, 1), k->cols, 0, add(k, load(k, param(k, 2), k->cols, 0), b));
}

void kir_residual(KB *k, int flags) {
    RowVals v = {.bias = flags & GRT_KF_BIAS};
    k->map->cols(k, res_cols, &v, 0, NULL);
}

/* bias_gelu_fwd (rows, pre, act, bias): pre (rows, C) += bias (C) in place; act (rows, C) = gelu(pre) */
static void bgf_cols(KB *k, const void *ctx, LLVMValueRef *t) {
    (void)t;
    LLVMValueRef x = load(k, param(k, 1), k->cols, 0);
    if (((const RowVals *)ctx)->bias) {
        x = add(k, x, load_col(k, param(k, 3)));
        store(k, param(k, 1), k->cols, 0, x);
    }
    store(k, param(k, 2), k->cols, 0, gelu(k, x));
}

void kir_bias_gelu_fwd(KB *k, int flags) {
    RowVals v = {.bias = flags & GRT_KF_BIAS};
    k->map->cols(k, bgf_cols, &v, 0, NULL);
}

/* bias_gelu_bwd (rows, dpre, pre, dact, dbias): g = dact (rows, C) * gelu'(pre);
 * dpre (rows, C) += g; dbias (C) += sum over rows of g */
static void bgb_cols(KB *k, const void *ctx, LLVMValueRef *t) {
    (void)t;
    LLVMValueRef g = mul(k, load(k, param(k, 3), k->cols, 0), gelu_grad(k, load(k, param(k, 2), k->cols, 0)));
    store(k, param(k, 1), k->cols, 0, add(k, load(k, param(k, 1), k->cols, 0), g));
    if (((const RowVals *)ctx)->bias) k->map->col_add(k, param(k, 4), g);
}

void kir_bias_gelu_bwd(KB *k, int flags) {
    RowVals v = {.bias = flags & GRT_KF_BIAS};
    k->map->cols(k, bgb_cols, &v, 0, NULL);
}

/* swiglu_fwd (rows, out, inp): inp (rows, 2C) = [gate | up]; out (rows, C) = gate sigmoid(gate) up */
static void swf_cols(KB *k, const void *ctx, LLVMValueRef *t) {
    (void)ctx, (void)t;
    LLVMValueRef g = load(k, param(k, 2), 2 * k->cols, 0), u = load(k, param(k, 2), 2 * k->cols, k->cols);
    LLVMValueRef s = fdiv(k, cf(k, 1.0f), add(k, cf(k, 1.0f), kgen_exp(k, LLVMBuildFNeg(k->b, g, ""))));
    store(k, param(k, 1), k->cols, 0, mul(k, mul(k, g, s), u));
}

void kir_swiglu_fwd(KB *k, int flags) {
    (void)flags;
    k->map->cols(k, swf_cols, NULL, 0, NULL);
}

/* swiglu_bwd (rows, dinp, inp, dout): dgate += dout up silu'(gate), silu'(g) = s (1 + g (1 - s)),
 * 1 - s = e s, e = e^-g; dup += dout gate s; dinp (rows, 2C) = [dgate | dup] */
static void swb_cols(KB *k, const void *ctx, LLVMValueRef *t) {
    (void)ctx, (void)t;
    int64_t w = 2 * k->cols;
    LLVMValueRef g = load(k, param(k, 2), w, 0), u = load(k, param(k, 2), w, k->cols),
                 d = load(k, param(k, 3), k->cols, 0);
    LLVMValueRef e = kgen_exp(k, LLVMBuildFNeg(k->b, g, ""));
    LLVMValueRef s = fdiv(k, cf(k, 1.0f), add(k, cf(k, 1.0f), e));
    LLVMValueRef dg = mul(k, mul(k, mul(k, d, u), s), add(k, cf(k, 1.0f), mul(k, g, mul(k, e, s))));
    store(k, param(k, 1), w, 0, add(k, load(k, param(k, 1), w, 0), dg));
    store(k, param(k, 1), w, k->cols, add(k, load(k, param(k, 1), w, k->cols), mul(k, mul(k, d, g), s)));
}

void kir_swiglu_bwd(KB *k, int flags) {
    (void)flags;
    k->map->cols(k, swb_cols, NULL, 0, NULL);
}

/* ---- dropout ----------------------------------------------------------------- */
/* dropout (rows, out, a, b, key, seq0, r0, e0, threshold, scale; T): out (rows, C) = dropout(b), plus a
 * with GRT_KF_RESIDUAL; runtime/galvrt.h's counter-based mask (SplitMix64's outputs, Steele et al.
 * 2014) bit for bit: row i is position (r0 + i) mod T of sequence seq0 + (r0 + i) / T, its column c
 * element e0 + ((r0 + i) mod T) C + c of the sequence's stream. RowVals: a the stream's state, b the
 * row's first element, c the threshold, d the scale. */

static LLVMValueRef i64s(KB *k, unsigned long long v) { return splat(k, LLVMConstInt(k->i64, v, 0)); }

/* SplitMix64's finalizer per lane (galvrt.h's grt_mix64) */
static LLVMValueRef mix64(KB *k, LLVMValueRef z) {
    LLVMBuilderRef b = k->b;
    z = LLVMBuildMul(b, LLVMBuildXor(b, z, LLVMBuildLShr(b, z, i64s(k, 30), ""), ""), i64s(k, 0xBF58476D1CE4E5B9ull),
                     "");
    z = LLVMBuildMul(b, LLVMBuildXor(b, z, LLVMBuildLShr(b, z, i64s(k, 27), ""), ""), i64s(k, 0x94D049BB133111EBull),
                     "");
    return LLVMBuildXor(b, z, LLVMBuildLShr(b, z, i64s(k, 31), ""), "");
}

/* the n-th output of the stream at state s: mix64(s + (n + 1) gamma) */
static LLVMValueRef stream_at(KB *k, LLVMValueRef s, LLVMValueRef n) {
    LLVMValueRef n1 = LLVMBuildAdd(k->b, n, i64s(k, 1), "");
    return mix64(k, LLVMBuildAdd(k->b, s, LLVMBuildMul(k->b, n1, i64s(k, GRT_DROP_GAMMA), ""), ""));
}

static void drop_cols(KB *k, const void *ctx, LLVMValueRef *t) {
    const RowVals *v = ctx;
    (void)t;
    LLVMValueRef elem = LLVMBuildAdd(k->b, splat(k, v->b), kgen_col_index(k), "");
    LLVMValueRef bits = LLVMBuildLShr(k->b, stream_at(k, splat(k, v->a), elem), i64s(k, 32), "");
    LLVMValueRef keep = LLVMBuildICmp(k->b, LLVMIntUGE, bits, splat(k, v->c), "");
    LLVMValueRef x =
        LLVMBuildSelect(k->b, keep, mul(k, load(k, param(k, 3), k->cols, 0), splat(k, v->d)), cf(k, 0.0f), "");
    if (v->bias) x = add(k, load(k, param(k, 2), k->cols, 0), x);
    store(k, param(k, 1), k->cols, 0, x);
}

void kir_dropout(KB *k, int flags) {
    LLVMValueRef T = param(k, 10), r = iadd(k, param(k, 6), k->row);
    LLVMValueRef seq = iadd(k, param(k, 5), LLVMBuildSDiv(k->b, r, T, ""));
    LLVMValueRef pos = LLVMBuildSRem(k->b, r, T, "");
    int w = k->width;
    k->width = 1; /* the row's scalars */
    LLVMValueRef state = stream_at(k, param(k, 4), seq);
    k->width = w;
    RowVals v = {.a = state,
                 .b = iadd(k, param(k, 7), imul(k, pos, k->cols)),
                 .c = param(k, 8),
                 .d = param(k, 9),
                 .bias = flags & GRT_KF_RESIDUAL};
    k->map->cols(k, drop_cols, &v, 0, NULL);
}

/* ---- bf16 ------------------------------------------------------------------- */

/* The lanes' bf16 bits (i32) of float x: to nearest, ties to even, with
 * integer operations on x's bits (u + 0x7fff + lsb) >> 16; a NaN keeps its
 * sign and upper payload, made quiet (| 0x40): grt_bf16_bits' arithmetic. */
LLVMValueRef kgen_bf16_bits(KB *k, LLVMValueRef x) {
    LLVMBuilderRef b = k->b;
    LLVMValueRef u = LLVMBuildBitCast(b, x, lanes(k, k->i32), "");
    LLVMValueRef hi = LLVMBuildLShr(b, u, ci(k, 16), "");
    LLVMValueRef lsb = LLVMBuildAnd(b, hi, ci(k, 1), "");
    LLVMValueRef rne = LLVMBuildLShr(b, LLVMBuildAdd(b, LLVMBuildAdd(b, u, ci(k, 0x7fff), ""), lsb, ""), ci(k, 16), "");
    LLVMValueRef nan = LLVMBuildICmp(b, LLVMIntUGT, LLVMBuildAnd(b, u, ci(k, 0x7fffffff), ""), ci(k, 0x7f800000), "");
    return LLVMBuildSelect(b, nan, LLVMBuildOr(b, hi, ci(k, 0x40), ""), rne, "");
}

/* Element (row, col) of a uint16_t (rows, cols) array p. */
static LLVMValueRef bits_at(KB *k, LLVMValueRef p) {
    LLVMValueRef i = iadd(k, imul(k, k->row, k->cols), k->col);
    return LLVMBuildGEP2(k->b, LLVMInt16TypeInContext(k->ctx), p, &i, 1, "");
}

void kgen_store_bits(KB *k, LLVMValueRef p, LLVMValueRef bits) {
    LLVMValueRef h = LLVMBuildTrunc(k->b, bits, lanes(k, LLVMInt16TypeInContext(k->ctx)), "");
    LLVMSetAlignment(LLVMBuildStore(k->b, h, bits_at(k, p)), 2);
}

/* the bits << 16, as grt_bf16_widen */
LLVMValueRef kgen_load_bits(KB *k, LLVMValueRef p) {
    LLVMValueRef h = LLVMBuildLoad2(k->b, lanes(k, LLVMInt16TypeInContext(k->ctx)), bits_at(k, p), "");
    LLVMSetAlignment(h, 2);
    LLVMValueRef u = LLVMBuildShl(k->b, LLVMBuildZExt(k->b, h, lanes(k, k->i32), ""), ci(k, 16), "");
    return LLVMBuildBitCast(k->b, u, lanes(k, k->f32), "");
}

/* bf16 (rows, dst, src): dst (rows, C) = src rounded to bf16, as uint16_t
 * bits, or (GRT_KF_WIDE) as the floats they are (bits << 16) */
static void bf16_cols(KB *k, const void *ctx, LLVMValueRef *t) {
    (void)t;
    LLVMValueRef bits = kgen_bf16_bits(k, load(k, param(k, 2), k->cols, 0));
    if (*(const int *)ctx & GRT_KF_WIDE) {
        LLVMValueRef wide = LLVMBuildShl(k->b, bits, ci(k, 16), "");
        store(k, param(k, 1), k->cols, 0, LLVMBuildBitCast(k->b, wide, lanes(k, k->f32), ""));
        return;
    }
    kgen_store_bits(k, param(k, 1), bits);
}

void kir_bf16(KB *k, int flags) { k->map->cols(k, bf16_cols, &flags, 0, NULL); }

/* bf16_keep (rows, bits, x): bits (rows, C) = x rounded to bf16 (uint16_t),
 * and x (rows, C) = the floats they are, in one pass: bf16 then bf16_widen */
static void bf16_keep_cols(KB *k, const void *ctx, LLVMValueRef *t) {
    (void)ctx, (void)t;
    LLVMValueRef bits = kgen_bf16_bits(k, load(k, param(k, 2), k->cols, 0));
    kgen_store_bits(k, param(k, 1), bits);
    LLVMValueRef wide = LLVMBuildShl(k->b, bits, ci(k, 16), "");
    store(k, param(k, 2), k->cols, 0, LLVMBuildBitCast(k->b, wide, lanes(k, k->f32), ""));
}

void kir_bf16_keep(KB *k, int flags) {
    (void)flags;
    k->map->cols(k, bf16_keep_cols, NULL, 0, NULL);
}

/* bf16_widen (rows, dst, src): dst (rows, C) = the bf16 bits src (rows, C,
 * uint16_t) as the floats they are (bits << 16), as grt_bf16_widen */
static void bf16_widen_cols(KB *k, const void *ctx, LLVMValueRef *t) {
    (void)ctx, (void)t;
    store(k, param(k, 1), k->cols, 0, kgen_load_bits(k, param(k, 2)));
}

void kir_bf16_widen(KB *k, int flags) {
    (void)flags;
    k->map->cols(k, bf16_widen_cols, NULL, 0, NULL);
}
