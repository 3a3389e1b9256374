/* kernel_ir_pointwise.c — the descriptions of the pointwise kernels:
 * residual add, bias + GELU (tanh form, Hendrycks and Gimpel 2016) forward
 * and backward, SwiGLU (Shazeer 2020) forward and backward, each one pass
 * over its rows in runtime/kernels.c's arithmetic. */
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

/* residual (rows, out, a, b): out (rows, C) = a + b */
static void res_cols(KB *k, const void *ctx, LLVMValueRef *t) {
    (void)ctx, (void)t;
    store(k, param(k, 1), k->cols, 0, add(k, load(k, param(k, 2), k->cols, 0), load(k, param(k, 3), k->cols, 0)));
}

void kir_residual(KB *k, int flags) {
    (void)flags;
    k->map->cols(k, res_cols, NULL, 0, NULL);
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
