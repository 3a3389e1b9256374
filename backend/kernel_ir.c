/* kernel_ir.c — each generated kernel's arithmetic, written once, over one
 * row of a (rows, cols) problem whose cols is the plan's constant: which
 * values a column computes, which row sums it feeds, what it stores. How
 * rows and columns reach the machine (a vector loop on the host, a thread
 * block on the GPU) is the KMap's (kernel_x86.c, kernel_ptx.c).
 *
 * The arithmetic is runtime/kernels.c's reference, operation for operation
 * and in its order (row sums of norms in double, e^x by the same Cody-Waite
 * reduction and Taylor polynomial, GELU as x sigmoid(2u), which equals the
 * tanh form 0.5 x (1 + tanh u) without its cancellation for u << 0), so a
 * generated kernel gives the reference's results, up to the order of its
 * double sums; LLVM contracts no multiply-add on the host without being told,
 * and the GPU's fused multiply-adds stay within float rounding. */
#include "kernel_gen.h"

#include <stdio.h>

/* ---- building blocks ------------------------------------------------------ */

LLVMValueRef kgen_i64(KB *k, long long v) { return LLVMConstInt(k->i64, (unsigned long long)v, 1); }

/* t, or a vector of k->width t's. */
static LLVMTypeRef lanes(KB *k, LLVMTypeRef t) { return k->width > 1 ? LLVMVectorType(t, (unsigned)k->width) : t; }

/* A scalar row value broadcast to k->width lanes. */
static LLVMValueRef splat(KB *k, LLVMValueRef v) {
    if (k->width == 1) return v;
    LLVMTypeRef vt = LLVMVectorType(LLVMTypeOf(v), (unsigned)k->width);
    LLVMValueRef one = LLVMBuildInsertElement(k->b, LLVMGetUndef(vt), v, LLVMConstInt(k->i32, 0, 0), "");
    return LLVMBuildShuffleVector(k->b, one, LLVMGetUndef(vt),
                                  LLVMConstNull(LLVMVectorType(k->i32, (unsigned)k->width)), "");
}

static LLVMValueRef cf(KB *k, float v) { return splat(k, LLVMConstReal(k->f32, v)); }
LLVMValueRef kgen_f64(KB *k, double v) { return splat(k, LLVMConstReal(k->f64, v)); }
static LLVMValueRef ci(KB *k, int v) { return splat(k, LLVMConstInt(k->i32, (unsigned long long)v, 1)); }

static LLVMValueRef add(KB *k, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFAdd(k->b, a, b, ""); }
static LLVMValueRef sub(KB *k, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFSub(k->b, a, b, ""); }
static LLVMValueRef mul(KB *k, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFMul(k->b, a, b, ""); }
static LLVMValueRef fdiv(KB *k, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFDiv(k->b, a, b, ""); }
static LLVMValueRef ext(KB *k, LLVMValueRef v) { return LLVMBuildFPExt(k->b, v, lanes(k, k->f64), ""); }
static LLVMValueRef param(KB *k, int i) { return LLVMGetParam(k->fn, (unsigned)i); }

/* a < b ? x : y, per lane (false for NaN, as C's <) */
static LLVMValueRef sel_lt(KB *k, LLVMValueRef a, LLVMValueRef b, LLVMValueRef x, LLVMValueRef y) {
    return LLVMBuildSelect(k->b, LLVMBuildFCmp(k->b, LLVMRealOLT, a, b, ""), x, y, "");
}

LLVMValueRef kgen_at(KB *k, LLVMValueRef p, LLVMValueRef row, int64_t stride, int64_t off) {
    LLVMValueRef i = LLVMBuildAdd(k->b, LLVMBuildMul(k->b, row, kgen_i64(k, stride), ""), kgen_i64(k, off), "");
    i = LLVMBuildAdd(k->b, i, k->col, "");
    return LLVMBuildGEP2(k->b, k->f32, p, &i, 1, "");
}

/* The lanes of row-major array p at (row, off + col), row length stride. */
static LLVMValueRef load(KB *k, LLVMValueRef p, int64_t stride, int64_t off) {
    LLVMValueRef v = LLVMBuildLoad2(k->b, lanes(k, k->f32), kgen_at(k, p, k->row, stride, off), "");
    LLVMSetAlignment(v, 4);
    return v;
}

static void store(KB *k, LLVMValueRef p, int64_t stride, int64_t off, LLVMValueRef v) {
    LLVMSetAlignment(LLVMBuildStore(k->b, v, kgen_at(k, p, k->row, stride, off)), 4);
}

/* A per-column vector's lanes (weight, bias): row 0 of a one-row array. */
static LLVMValueRef load_col(KB *k, LLVMValueRef p) {
    LLVMValueRef v = LLVMBuildLoad2(k->b, lanes(k, k->f32), kgen_at(k, p, kgen_i64(k, 0), 0, 0), "");
    LLVMSetAlignment(v, 4);
    return v;
}

static LLVMValueRef load_row(KB *k, LLVMValueRef p) {
    LLVMValueRef a = LLVMBuildGEP2(k->b, k->f32, p, &k->row, 1, "");
    LLVMValueRef v = LLVMBuildLoad2(k->b, k->f32, a, "");
    LLVMSetAlignment(v, 4);
    return v;
}

LLVMValueRef kgen_slot(KB *k, LLVMTypeRef t) {
    LLVMBuilderRef e = LLVMCreateBuilderInContext(k->ctx);
    LLVMBasicBlockRef entry = LLVMGetEntryBasicBlock(k->fn);
    LLVMValueRef first = LLVMGetFirstInstruction(entry);
    if (first)
        LLVMPositionBuilderBefore(e, first);
    else
        LLVMPositionBuilderAtEnd(e, entry);
    LLVMValueRef s = LLVMBuildAlloca(e, t, "");
    LLVMDisposeBuilder(e);
    return s;
}

LLVMValueRef kgen_hsum(KB *k, LLVMValueRef v) {
    if (LLVMGetTypeKind(LLVMTypeOf(v)) != LLVMVectorTypeKind) return v;
    LLVMValueRef lane[64];
    int n = (int)LLVMGetVectorSize(LLVMTypeOf(v));
    for (int i = 0; i < n; i++)
        lane[i] = LLVMBuildExtractElement(k->b, v, LLVMConstInt(k->i32, (unsigned)i, 0), "");
    for (; n > 1; n = (n + 1) / 2)
        for (int i = 0; i < n / 2; i++)
            lane[i] = LLVMBuildFAdd(k->b, lane[2 * i], lane[2 * i + 1], "");
    return lane[0];
}

LLVMValueRef kgen_call(KB *k, const char *name, LLVMTypeRef ret, LLVMValueRef *args, int n) {
    LLVMTypeRef at[8];
    for (int i = 0; i < n; i++)
        at[i] = LLVMTypeOf(args[i]);
    LLVMTypeRef ft = LLVMFunctionType(ret, at, (unsigned)n, 0);
    LLVMValueRef f = LLVMGetNamedFunction(k->mod, name);
    if (!f) f = LLVMAddFunction(k->mod, name, ft);
    return LLVMBuildCall2(k->b, ft, f, args, (unsigned)n, "");
}

LLVMValueRef loop_begin(KB *k, Loop *l, LLVMValueRef lo, LLVMValueRef hi, LLVMValueRef step) {
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(k->b);
    l->head = LLVMAppendBasicBlockInContext(k->ctx, k->fn, "loop");
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(k->ctx, k->fn, "body");
    l->exit = LLVMAppendBasicBlockInContext(k->ctx, k->fn, "done");
    l->step = step;
    LLVMBuildBr(k->b, l->head);
    LLVMPositionBuilderAtEnd(k->b, l->head);
    l->iv = LLVMBuildPhi(k->b, k->i64, "");
    LLVMAddIncoming(l->iv, &lo, &pre, 1);
    LLVMBuildCondBr(k->b, LLVMBuildICmp(k->b, LLVMIntSLT, l->iv, hi, ""), body, l->exit);
    LLVMPositionBuilderAtEnd(k->b, body);
    return l->iv;
}

void loop_end(KB *k, Loop *l) {
    LLVMValueRef next = LLVMBuildAdd(k->b, l->iv, l->step, "");
    LLVMBasicBlockRef from = LLVMGetInsertBlock(k->b);
    LLVMAddIncoming(l->iv, &next, &from, 1);
    LLVMBuildBr(k->b, l->head);
    LLVMPositionBuilderAtEnd(k->b, l->exit);
}

/* ---- shared arithmetic ------------------------------------------------------ */

/* e^x per lane, runtime/kernels.c's f4_exp: x = n ln2 + r (ln2 in two
 * parts), e^r by Taylor to r^7, 2^n built in the exponent bits; 0 below
 * -87.3, e^88 above 88. */
static LLVMValueRef kexp(KB *k, LLVMValueRef x) {
    static const float taylor[] = {1.0f / 5040, 1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f};
    LLVMValueRef lo = cf(k, -87.3f), hi = cf(k, 88.0f);
    LLVMValueRef xc = sel_lt(k, x, lo, lo, x);
    xc = sel_lt(k, hi, xc, hi, xc);
    LLVMValueRef t = add(k, mul(k, xc, cf(k, 1.44269504f)), cf(k, 12582912.0f));
    LLVMValueRef n = sub(k, t, cf(k, 12582912.0f));
    LLVMValueRef r = add(k, sub(k, xc, mul(k, n, cf(k, 0.693359375f))), mul(k, n, cf(k, 2.12194440e-4f)));
    LLVMValueRef p = cf(k, taylor[0]);
    for (int i = 1; i < 8; i++)
        p = add(k, mul(k, p, r), cf(k, taylor[i]));
    LLVMTypeRef it = lanes(k, k->i32);
    LLVMValueRef e = LLVMBuildSub(k->b, LLVMBuildBitCast(k->b, t, it, ""), ci(k, 0x4B400000), "");
    e = LLVMBuildShl(k->b, LLVMBuildAdd(k->b, e, ci(k, 127), ""), ci(k, 23), "");
    LLVMValueRef y = mul(k, p, LLVMBuildBitCast(k->b, e, lanes(k, k->f32), ""));
    return sel_lt(k, x, lo, cf(k, 0.0f), y);
}

#define GELU_K 0.7978845608028654f /* sqrt(2 / pi) */
#define GELU_A 0.044715f

/* u = sqrt(2/pi) (x + 0.044715 x^3), as the reference orders it */
static LLVMValueRef gelu_u(KB *k, LLVMValueRef x) {
    LLVMValueRef x3 = mul(k, mul(k, mul(k, cf(k, GELU_A), x), x), x);
    return mul(k, cf(k, GELU_K), add(k, x, x3));
}

/* gelu(x) = x sigmoid(2u) = 0.5 x (1 + tanh u) */
static LLVMValueRef gelu(KB *k, LLVMValueRef x) {
    LLVMValueRef e = kexp(k, mul(k, cf(k, -2.0f), gelu_u(k, x)));
    return fdiv(k, x, add(k, cf(k, 1.0f), e));
}

/* gelu'(x) = s + 2 x s (1 - s) du/dx, s = sigmoid(2u), 1 - s = e s, e = e^-2u */
static LLVMValueRef gelu_grad(KB *k, LLVMValueRef x) {
    LLVMValueRef e = kexp(k, mul(k, cf(k, -2.0f), gelu_u(k, x)));
    LLVMValueRef s = fdiv(k, cf(k, 1.0f), add(k, cf(k, 1.0f), e));
    LLVMValueRef du = mul(k, cf(k, GELU_K), add(k, cf(k, 1.0f), mul(k, mul(k, cf(k, 3.0f * GELU_A), x), x)));
    LLVMValueRef t = mul(k, mul(k, mul(k, cf(k, 2.0f), x), s), mul(k, e, s));
    return add(k, s, mul(k, t, du));
}

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

/* Row values that column callbacks read (scalars, splat per use). */
typedef struct RowVals {
    LLVMValueRef a, b, c, d;
    int bias;
} RowVals;

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

static void layernorm_fwd(KB *k, int flags) {
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

static void layernorm_bwd(KB *k, int flags) {
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

static void rmsnorm_fwd(KB *k, int flags) {
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

static void rmsnorm_bwd(KB *k, int flags) {
    (void)flags;
    RowVals v = {.b = load_row(k, param(k, 6))};
    LLVMValueRef s;
    k->map->cols(k, rmsb_sum, &v, 1, &s);
    v.d = row_mean(k, s);
    k->map->cols(k, rmsb_grads, &v, 0, NULL);
}

/* ---- pointwise -------------------------------------------------------------- */

/* residual (rows, out, a, b): out (rows, C) = a + b */
static void res_cols(KB *k, const void *ctx, LLVMValueRef *t) {
    (void)ctx, (void)t;
    store(k, param(k, 1), k->cols, 0, add(k, load(k, param(k, 2), k->cols, 0), load(k, param(k, 3), k->cols, 0)));
}

static void residual(KB *k, int flags) {
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

static void bias_gelu_fwd(KB *k, int flags) {
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

static void bias_gelu_bwd(KB *k, int flags) {
    RowVals v = {.bias = flags & GRT_KF_BIAS};
    k->map->cols(k, bgb_cols, &v, 0, NULL);
}

/* swiglu_fwd (rows, out, inp): inp (rows, 2C) = [gate | up]; out (rows, C) = gate sigmoid(gate) up */
static void swf_cols(KB *k, const void *ctx, LLVMValueRef *t) {
    (void)ctx, (void)t;
    LLVMValueRef g = load(k, param(k, 2), 2 * k->cols, 0), u = load(k, param(k, 2), 2 * k->cols, k->cols);
    LLVMValueRef s = fdiv(k, cf(k, 1.0f), add(k, cf(k, 1.0f), kexp(k, LLVMBuildFNeg(k->b, g, ""))));
    store(k, param(k, 1), k->cols, 0, mul(k, mul(k, g, s), u));
}

static void swiglu_fwd(KB *k, int flags) {
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
    LLVMValueRef e = kexp(k, LLVMBuildFNeg(k->b, g, ""));
    LLVMValueRef s = fdiv(k, cf(k, 1.0f), add(k, cf(k, 1.0f), e));
    LLVMValueRef dg = mul(k, mul(k, mul(k, d, u), s), add(k, cf(k, 1.0f), mul(k, g, mul(k, e, s))));
    store(k, param(k, 1), w, 0, add(k, load(k, param(k, 1), w, 0), dg));
    store(k, param(k, 1), w, k->cols, add(k, load(k, param(k, 1), w, k->cols), mul(k, mul(k, d, g), s)));
}

static void swiglu_bwd(KB *k, int flags) {
    (void)flags;
    k->map->cols(k, swb_cols, NULL, 0, NULL);
}

/* ---- the table ---------------------------------------------------------------- */

/* Each kind's description and parameters after rows ('p' a float pointer, 'f' a float). */
static const struct {
    void (*body)(KB *k, int flags);
    const char *params, *names;
} kinds[GRT_K_COUNT] = {
    [GRT_K_LAYERNORM_FWD] = {layernorm_fwd, "ppppppf", "out mean rstd inp weight bias eps"},
    [GRT_K_LAYERNORM_BWD] = {layernorm_bwd, "pppppppp", "dinp dweight dbias dout inp weight mean rstd"},
    [GRT_K_RMSNORM_FWD] = {rmsnorm_fwd, "ppppf", "out rstd inp weight eps"},
    [GRT_K_RMSNORM_BWD] = {rmsnorm_bwd, "pppppp", "dinp dweight dout inp weight rstd"},
    [GRT_K_RESIDUAL] = {residual, "ppp", "out a b"},
    [GRT_K_BIAS_GELU_FWD] = {bias_gelu_fwd, "ppp", "pre act bias"},
    [GRT_K_BIAS_GELU_BWD] = {bias_gelu_bwd, "pppp", "dpre pre dact dbias"},
    [GRT_K_SWIGLU_FWD] = {swiglu_fwd, "pp", "out inp"},
    [GRT_K_SWIGLU_BWD] = {swiglu_bwd, "ppp", "dinp inp dout"},
};

const char *kgen_name(const KernelShape *s, char *buf, size_t n) {
#define GRT_KERNEL_NAME(kind, name) [kind] = name,
    static const char *const names[GRT_K_COUNT] = {GRT_KERNEL_KINDS(GRT_KERNEL_NAME)};
#undef GRT_KERNEL_NAME
    snprintf(buf, n, "galvc_%s_c%d%s", names[s->kind], s->cols, s->flags & GRT_KF_BIAS ? "_bias" : "");
    return buf;
}

/* Name the function's parameters after the kind's list ("rows" first). */
static void name_params(KB *k, const char *names) {
    LLVMSetValueName2(param(k, 0), "rows", 4);
    for (int i = 1; *names; i++) {
        const char *end = names;
        while (*end && *end != ' ')
            end++;
        LLVMSetValueName2(param(k, i), names, (size_t)(end - names));
        names = *end ? end + 1 : end;
    }
}

LLVMValueRef kgen_kernel(KB *k, const KernelShape *s) {
    LLVMTypeRef pt[16] = {k->i64};
    int n = 1;
    for (const char *p = kinds[s->kind].params; *p; p++)
        pt[n++] = *p == 'p' ? k->ptr : k->f32;
    char name[96];
    k->fn = LLVMAddFunction(k->mod, kgen_name(s, name, sizeof name), LLVMFunctionType(k->vd, pt, (unsigned)n, 0));
    k->cols = s->cols;
    k->width = 1;
    name_params(k, kinds[s->kind].names);
    LLVMPositionBuilderAtEnd(k->b, LLVMAppendBasicBlockInContext(k->ctx, k->fn, "entry"));
    k->rows = param(k, 0);
    k->map->begin(k);
    kinds[s->kind].body(k, s->flags);
    k->map->end(k);
    k->map->entry(k);
    return k->fn;
}
