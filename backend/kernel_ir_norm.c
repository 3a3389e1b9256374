/* kernel_ir_norm.c — the descriptions of LayerNorm (Ba et al. 2016) and
 * RMSNorm (Zhang and Sennrich 2019), forward and backward, as
 * runtime/kernels.c's references compute them: row statistics in double,
 * the rest in float, in the references' order. */
#include "kernel_gen.h"

/* A row sum's mean as a float: (float)(sum / cols), computed in double. */
static LLVMValueRef row_mean(KB *k, LLVMValueRef sum) {
    return LLVMBuildFPTrunc(k->b, fdiv(k, sum, LLVMConstReal(k->f64, k->cols)), k->f32, "");
}

/* (float)(1 / sqrt(ss / cols + eps)), in double */
static LLVMValueRef row_rstd(KB *k, LLVMValueRef ss, LLVMValueRef eps) {
    LLVMValueRef v = add(k, fdiv(k, ss, LLVMConstReal(k->f64, k->cols)), LLVMBuildFPExt(k->b, eps, k->f64, ""));
    LLVMValueRef s = kgen_call(k, "llvm.sqrt.f64", k->f64, &v, 1);
    return LLVMBuildFPTrunc(k->b, fdiv(k, LLVMConstReal(k->f64, 1.0), s), k->f32, "");
}

/* ---- LayerNorm -------------------------------------------------------------- */
/* layernorm_fwd (rows, out, mean, rstd, inp, weight, bias, eps):
 * out (rows, C) = (inp - mean) * rstd * weight (C) + bias (C); mean, rstd (rows) saved */

static void ln_sum(KB *k, const void *ctx, LLVMValueRef *t) {
    (void)ctx;
    t[0] = ext(k, load(k, param(k, 4), k->cols, 0));
}

static void ln_var(KB *k, const void *ctx, LLVMValueRef *t) {
    LLVMValueRef d = sub(k, ext(k, load(k, param(k, 4), k->cols, 0)), splat(k, ((const RowVals *)ctx)->a));
    t[0] = mul(k, d, d);
}

static void ln_out(KB *k, const void *ctx, LLVMValueRef *t) {
    const RowVals *v = ctx;
    (void)t;
    LLVMValueRef x = load(k, param(k, 4), k->cols, 0);
    LLVMValueRef y = mul(k, mul(k, sub(k, x, splat(k, v->a)), splat(k, v->b)), load_col(k, param(k, 5)));
    y = add(k, y, v->bias ? load_col(k, param(k, 6)) : cf(k, 0.0f));
    store(k, param(k, 1), k->cols, 0, y);
}

void kir_layernorm_fwd(KB *k, int flags) {
    LLVMValueRef s, var;
    k->map->cols(k, ln_sum, NULL, 1, &s);
    RowVals v = {.a = fdiv(k, s, LLVMConstReal(k->f64, k->cols)), .bias = flags & GRT_KF_BIAS};
    k->map->cols(k, ln_var, &v, 1, &var);
    v = (RowVals){.a = LLVMBuildFPTrunc(k->b, v.a, k->f32, ""), .b = row_rstd(k, var, param(k, 7)), .bias = v.bias};
    k->map->cols(k, ln_out, &v, 0, NULL);
    k->map->row_store(k, param(k, 2), v.a);
    k->map->row_store(k, param(k, 3), v.b);
}

/* layernorm_bwd (rows, dinp, dweight, dbias, dout, inp, weight, mean, rstd):
 * dinp += rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)), dnorm = dout * weight;
 * dweight (C) += sum over rows of dout * norm; dbias (C) += sum over rows of dout */

/* norm = (x - mean) * rstd */
static LLVMValueRef ln_norm(KB *k, const RowVals *v) {
    return mul(k, sub(k, load(k, param(k, 5), k->cols, 0), splat(k, v->a)), splat(k, v->b));
}

static void lnb_sums(KB *k, const void *ctx, LLVMValueRef *t) {
    LLVMValueRef dn = mul(k, load(k, param(k, 4), k->cols, 0), load_col(k, param(k, 6)));
    t[0] = ext(k, dn);
    t[1] = ext(k, mul(k, dn, ln_norm(k, ctx)));
}

static void lnb_grads(KB *k, const void *ctx, LLVMValueRef *t) {
    const RowVals *v = ctx;
    (void)t;
    LLVMValueRef nrm = ln_norm(k, v), d = load(k, param(k, 4), k->cols, 0);
    LLVMValueRef g = sub(k, sub(k, mul(k, d, load_col(k, param(k, 6))), splat(k, v->c)), mul(k, nrm, splat(k, v->d)));
    store(k, param(k, 1), k->cols, 0, add(k, load(k, param(k, 1), k->cols, 0), mul(k, splat(k, v->b), g)));
    k->map->col_add(k, param(k, 2), mul(k, d, nrm));
    if (v->bias) k->map->col_add(k, param(k, 3), d);
}

void kir_layernorm_bwd(KB *k, int flags) {
    RowVals v = {.a = load_row(k, param(k, 7)), .b = load_row(k, param(k, 8)), .bias = flags & GRT_KF_BIAS};
    LLVMValueRef s[2];
    k->map->cols(k, lnb_sums, &v, 2, s);
    v.c = row_mean(k, s[0]), v.d = row_mean(k, s[1]);
    k->map->cols(k, lnb_grads, &v, 0, NULL);
}

/* ---- RMSNorm ---------------------------------------------------------------- */
/* rmsnorm_fwd (rows, out, rstd, inp, weight, eps):
 * out (rows, C) = inp * rstd * weight (C), rstd = 1 / sqrt(mean(inp^2) + eps) saved */

static void rms_ss(KB *k, const void *ctx, LLVMValueRef *t) {
    (void)ctx;
    LLVMValueRef x = ext(k, load(k, param(k, 3), k->cols, 0));
    t[0] = mul(k, x, x);
}

static void rms_out(KB *k, const void *ctx, LLVMValueRef *t) {
    (void)t;
    LLVMValueRef x = load(k, param(k, 3), k->cols, 0);
    store(k, param(k, 1), k->cols, 0, mul(k, mul(k, x, splat(k, ((const RowVals *)ctx)->b)), load_col(k, param(k, 4))));
}

void kir_rmsnorm_fwd(KB *k, int flags) {
    (void)flags;
    LLVMValueRef ss;
    k->map->cols(k, rms_ss, NULL, 1, &ss);
    RowVals v = {.b = row_rstd(k, ss, param(k, 5))};
    k->map->cols(k, rms_out, &v, 0, NULL);
    k->map->row_store(k, param(k, 2), v.b);
}

/* rmsnorm_bwd (rows, dinp, dweight, dout, inp, weight, rstd):
 * dinp += rstd * (dnorm - norm * mean(dnorm * norm)), norm = inp * rstd, dnorm = dout * weight;
 * dweight (C) += sum over rows of dout * norm */

static void rmsb_sum(KB *k, const void *ctx, LLVMValueRef *t) {
    LLVMValueRef dn = mul(k, load(k, param(k, 3), k->cols, 0), load_col(k, param(k, 5)));
    LLVMValueRef nrm = mul(k, load(k, param(k, 4), k->cols, 0), splat(k, ((const RowVals *)ctx)->b));
    t[0] = mul(k, ext(k, dn), ext(k, nrm));
}

static void rmsb_grads(KB *k, const void *ctx, LLVMValueRef *t) {
    const RowVals *v = ctx;
    (void)t;
    LLVMValueRef d = load(k, param(k, 3), k->cols, 0);
    LLVMValueRef nrm = mul(k, load(k, param(k, 4), k->cols, 0), splat(k, v->b));
    LLVMValueRef g = sub(k, mul(k, d, load_col(k, param(k, 5))), mul(k, nrm, splat(k, v->d)));
    store(k, param(k, 1), k->cols, 0, add(k, load(k, param(k, 1), k->cols, 0), mul(k, splat(k, v->b), g)));
    k->map->col_add(k, param(k, 2), mul(k, d, nrm));
}

void kir_rmsnorm_bwd(KB *k, int flags) {
    (void)flags;
    RowVals v = {.b = load_row(k, param(k, 6))};
    LLVMValueRef s;
    k->map->cols(k, rmsb_sum, &v, 1, &s);
    v.d = row_mean(k, s);
    k->map->cols(k, rmsb_grads, &v, 0, NULL);
}
