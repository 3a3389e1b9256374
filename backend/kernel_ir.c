/* kernel_ir.c — what the kernels' descriptions share: building blocks
 * (addresses, loops, branches, lane sums and maxima, e^x and log), the table
 * of kinds with each kind's parameters, and the driver that builds one
 * kernel. The descriptions (kernel_ir_norm.c, kernel_ir_pointwise.c,
 * kernel_ir_embed.c, kernel_ir_attn.c, kernel_ir_optim.c) write each
 * kernel's arithmetic once, over one row of a (rows, cols) problem whose cols
 * is the plan's constant: which values a column computes, which row sums it
 * feeds, what it stores. How rows and columns reach the machine (a vector
 * loop on the host, a thread block on the GPU) is the KMap's (kernel_x86.c,
 * kernel_ptx.c).
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

LLVMValueRef kgen_f64(KB *k, double v) { return splat(k, LLVMConstReal(k->f64, v)); }

LLVMValueRef kgen_at(KB *k, LLVMValueRef p, LLVMValueRef row, int64_t stride, int64_t off) {
    LLVMValueRef i = LLVMBuildAdd(k->b, LLVMBuildMul(k->b, row, kgen_i64(k, stride), ""), kgen_i64(k, off), "");
    i = LLVMBuildAdd(k->b, i, k->col, "");
    return LLVMBuildGEP2(k->b, k->f32, p, &i, 1, "");
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

/* A vector's lanes combined pairwise by op, as a tree (lanes 0+1, 2+3, ...,
 * then those pairs, an odd lane carried up); a scalar as it is. */
static LLVMValueRef lane_tree(KB *k, LLVMValueRef v, LLVMValueRef (*op)(KB *k, LLVMValueRef a, LLVMValueRef b)) {
    if (LLVMGetTypeKind(LLVMTypeOf(v)) != LLVMVectorTypeKind) return v;
    LLVMValueRef lane[64];
    int n = (int)LLVMGetVectorSize(LLVMTypeOf(v));
    for (int i = 0; i < n; i++)
        lane[i] = LLVMBuildExtractElement(k->b, v, LLVMConstInt(k->i32, (unsigned)i, 0), "");
    for (; n > 1; n = (n + 1) / 2) {
        for (int i = 0; i < n / 2; i++)
            lane[i] = op(k, lane[2 * i], lane[2 * i + 1]);
        if (n % 2) lane[n / 2] = lane[n - 1];
    }
    return lane[0];
}

static LLVMValueRef fadd2(KB *k, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFAdd(k->b, a, b, ""); }

LLVMValueRef kgen_hsum(KB *k, LLVMValueRef v) { return lane_tree(k, v, fadd2); }

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

LLVMValueRef kgen_max(KB *k, LLVMValueRef acc, LLVMValueRef v) {
    return LLVMBuildSelect(k->b, LLVMBuildFCmp(k->b, LLVMRealOGT, v, acc, ""), v, acc, "");
}

LLVMValueRef kgen_hmax(KB *k, LLVMValueRef v) { return lane_tree(k, v, kgen_max); }

LLVMValueRef kgen_col_index(KB *k) {
    LLVMValueRef c = splat(k, k->col);
    if (k->width == 1) return c;
    LLVMValueRef iota[64];
    for (int i = 0; i < k->width; i++)
        iota[i] = LLVMConstInt(k->i64, (unsigned)i, 0);
    return LLVMBuildAdd(k->b, c, LLVMConstVector(iota, (unsigned)k->width), "");
}

LLVMValueRef kgen_load_i32(KB *k, LLVMValueRef p, LLVMValueRef idx) {
    LLVMValueRef v = LLVMBuildLoad2(k->b, k->i32, LLVMBuildGEP2(k->b, k->i32, p, &idx, 1, ""), "");
    LLVMSetAlignment(v, 4);
    return LLVMBuildSExt(k->b, v, k->i64, "");
}

void kgen_if(KB *k, If *c, LLVMValueRef cond) {
    LLVMBasicBlockRef then = LLVMAppendBasicBlockInContext(k->ctx, k->fn, "then");
    c->other = LLVMAppendBasicBlockInContext(k->ctx, k->fn, "else");
    c->join = NULL;
    LLVMBuildCondBr(k->b, cond, then, c->other);
    LLVMPositionBuilderAtEnd(k->b, then);
}

void kgen_else(KB *k, If *c) {
    c->join = LLVMAppendBasicBlockInContext(k->ctx, k->fn, "endif");
    LLVMBuildBr(k->b, c->join);
    LLVMPositionBuilderAtEnd(k->b, c->other);
}

void kgen_endif(KB *k, If *c) {
    LLVMBasicBlockRef join = c->join ? c->join : c->other;
    LLVMBuildBr(k->b, join);
    LLVMPositionBuilderAtEnd(k->b, join);
}

/* ---- shared arithmetic ------------------------------------------------------ */

/* e^x per lane, runtime/kernels.c's f4_exp: x = n ln2 + r (ln2 in two
 * parts), e^r by Taylor to r^7, 2^n built in the exponent bits; 0 below
 * -87.3, e^88 above 88. */
LLVMValueRef kgen_exp(KB *k, LLVMValueRef x) {
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

/* log x for a positive normal double x: x = 2^e m with m in [sqrt(1/2),
 * sqrt(2)), log m = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...), s = (m - 1) /
 * (m + 1), |s| < 0.172 (Abramowitz and Stegun 4.1.27); terms to s^21 leave
 * under 1e-17. Written out rather than llvm.log, which NVPTX cannot lower. */
LLVMValueRef kgen_log(KB *k, LLVMValueRef x) {
    LLVMValueRef bits = LLVMBuildBitCast(k->b, x, k->i64, "");
    LLVMValueRef e = LLVMBuildSub(k->b, LLVMBuildLShr(k->b, bits, kgen_i64(k, 52), ""), kgen_i64(k, 1023), "");
    LLVMValueRef mbits = LLVMBuildOr(k->b, LLVMBuildAnd(k->b, bits, kgen_i64(k, 0x000FFFFFFFFFFFFFll), ""),
                                     kgen_i64(k, 0x3FF0000000000000ll), "");
    LLVMValueRef m = LLVMBuildBitCast(k->b, mbits, k->f64, "");
    LLVMValueRef big = LLVMBuildFCmp(k->b, LLVMRealOGT, m, LLVMConstReal(k->f64, 1.4142135623730951), "");
    m = LLVMBuildSelect(k->b, big, mul(k, m, LLVMConstReal(k->f64, 0.5)), m, "");
    e = LLVMBuildSelect(k->b, big, LLVMBuildAdd(k->b, e, kgen_i64(k, 1), ""), e, "");
    LLVMValueRef one = LLVMConstReal(k->f64, 1.0);
    LLVMValueRef s = fdiv(k, sub(k, m, one), add(k, m, one)), s2 = mul(k, s, s);
    LLVMValueRef p = LLVMConstReal(k->f64, 1.0 / 21);
    for (int i = 19; i >= 1; i -= 2)
        p = add(k, mul(k, p, s2), LLVMConstReal(k->f64, 1.0 / i));
    LLVMValueRef logm = mul(k, mul(k, LLVMConstReal(k->f64, 2.0), s), p);
    LLVMValueRef ef = LLVMBuildSIToFP(k->b, e, k->f64, "");
    return add(k, mul(k, ef, LLVMConstReal(k->f64, 0.69314718055994530942)), logm);
}

/* ---- the table ---------------------------------------------------------------- */

/* Each kind's description and parameters after rows: 'p' a pointer, 'f' a
 * float, 'i' an int64, 'c' a size the plan fixes, which is no parameter of
 * the function but the shape's next constant (KernelShape.c), built in. */
static const struct {
    void (*body)(KB *k, int flags);
    const char *params, *names;
} kinds[GRT_K_COUNT] = {
    [GRT_K_LAYERNORM_FWD] = {kir_layernorm_fwd, "ppppppf", "out mean rstd inp weight bias eps"},
    [GRT_K_LAYERNORM_BWD] = {kir_layernorm_bwd, "pppppppp", "dinp dweight dbias dout inp weight mean rstd"},
    [GRT_K_RMSNORM_FWD] = {kir_rmsnorm_fwd, "ppppf", "out rstd inp weight eps"},
    [GRT_K_RMSNORM_BWD] = {kir_rmsnorm_bwd, "pppppp", "dinp dweight dout inp weight rstd"},
    [GRT_K_RESIDUAL] = {kir_residual, "pppp", "out a b bias"},
    [GRT_K_BIAS_GELU_FWD] = {kir_bias_gelu_fwd, "ppp", "pre act bias"},
    [GRT_K_BIAS_GELU_BWD] = {kir_bias_gelu_bwd, "pppp", "dpre pre dact dbias"},
    [GRT_K_SWIGLU_FWD] = {kir_swiglu_fwd, "pp", "out inp"},
    [GRT_K_SWIGLU_BWD] = {kir_swiglu_bwd, "ppp", "dinp inp dout"},
    [GRT_K_EMBED_FWD] = {kir_embed_fwd, "ppppcic", "out tokens wte wpe T vocab_start vocab_rows"},
    [GRT_K_EMBED_BWD] = {kir_embed_bwd, "ppppcic", "dwte dwpe dout tokens T vocab_start vocab_rows"},
    [GRT_K_ROPE_FWD] = {kir_rope_fwd, "pppccc", "x cs sn T heads ld"},
    [GRT_K_ROPE_BWD] = {kir_rope_bwd, "pppccc", "x cs sn T heads ld"},
    [GRT_K_ATT_SOFTMAX_FWD] = {kir_att_softmax_fwd, "pic", "att t0 hd"},
    [GRT_K_ATT_SOFTMAX_BWD] = {kir_att_softmax_bwd, "ppi", "datt att t0"},
    [GRT_K_ATT_SOFTMAX16_FWD] = {kir_att_softmax16_fwd, "ppic", "att bits t0 hd"},
    [GRT_K_ATT_SOFTMAX16_BWD] = {kir_att_softmax16_bwd, "pppi", "datt att ds t0"},
    [GRT_K_XENT_FWD] = {kir_xent_fwd, "ppppc", "losses probs logits targets ld"},
    [GRT_K_XENT_BWD] = {kir_xent_bwd, "pppfci", "dlogits probs targets dloss ld col0"},
    [GRT_K_SUMSQ] = {kir_sumsq, "pp", "sums x"},
    [GRT_K_ADAMW] = {kir_adamw, "ppppffffffff", "param grad m v lr beta1 beta2 eps weight_decay grad_scale c1 c2"},
    [GRT_K_ADAM] = {kir_adam, "ppppffffffff", "param grad m v lr beta1 beta2 eps weight_decay grad_scale c1 c2"},
    [GRT_K_SGD] = {kir_sgd, "pppffff", "param grad buf lr momentum weight_decay grad_scale"},
    [GRT_K_DROPOUT] = {kir_dropout, "pppiiiiifc", "out a b key seq0 r0 e0 threshold scale T"},
    [GRT_K_PATCH_FWD] = {kir_patch_fwd, "ppppc", "out y cls pos T"},
    [GRT_K_PATCH_BWD] = {kir_patch_bwd, "ppppc", "dy dcls dpos dout T"},
    [GRT_K_T5_SOFTMAX_FWD] = {kir_t5_softmax_fwd, "ppi", "att bias t0"},
    [GRT_K_T5_SOFTMAX_BWD] = {kir_t5_softmax_bwd, "pppi", "datt att dbias t0"},
    [GRT_K_WIN_GATHER] = {kir_win_gather, "ppccc", "dst src side M shift"},
    [GRT_K_WIN_SCATTER] = {kir_win_scatter, "ppccc", "dst src side M shift"},
    [GRT_K_WIN_SOFTMAX_FWD] = {kir_win_softmax_fwd, "pppccc", "att bias mask H nW hd"},
    [GRT_K_MERGE_GATHER] = {kir_merge_gather, "ppc", "dst src side"},
    [GRT_K_MERGE_SCATTER] = {kir_merge_scatter, "ppc", "dx dX side"},
    [GRT_K_BF16] = {kir_bf16, "pp", "dst src"},
    [GRT_K_BF16_WIDEN] = {kir_bf16_widen, "pp", "dst src"},
    [GRT_K_BF16_KEEP] = {kir_bf16_keep, "pp", "bits x"},
};

const char *kgen_name(const KernelShape *s, char *buf, size_t n) {
#define GRT_KERNEL_NAME(kind, name) [kind] = name,
    static const char *const names[GRT_K_COUNT] = {GRT_KERNEL_KINDS(GRT_KERNEL_NAME)};
#undef GRT_KERNEL_NAME
    static const char *const flag_names[] = {"_bias", "_pos", "_causal", "_momentum", "_nesterov", "_residual", "_wide"};
    int at = snprintf(buf, n, "galvc_%s_c%d", names[s->kind], s->cols);
    for (int i = 0; i < 7 && at > 0 && (size_t)at < n; i++)
        if (s->flags & 1 << i) at += snprintf(buf + at, n - (size_t)at, "%s", flag_names[i]);
    int j = 0; /* the plan's constants, in the list's order */
    for (const char *p = kinds[s->kind].params; *p && at > 0 && (size_t)at < n; p++)
        if (*p == 'c') at += snprintf(buf + at, n - (size_t)at, "_%lld", (long long)s->c[j++]);
    return buf;
}

LLVMValueRef kgen_param(KB *k, int i) {
    const char *p = kinds[k->shape->kind].params;
    int arg = 1, c = 0;
    if (i == 0) return LLVMGetParam(k->fn, 0);
    for (int j = 1; j < i; j++)
        p[j - 1] == 'c' ? c++ : arg++;
    return p[i - 1] == 'c' ? kgen_i64(k, k->shape->c[c]) : LLVMGetParam(k->fn, (unsigned)arg);
}

/* Name the function's parameters after the kind's list ("rows" first; a
 * plan constant has no parameter to name). */
static void name_params(KB *k, const char *names) {
    const char *p = kinds[k->shape->kind].params;
    LLVMSetValueName2(param(k, 0), "rows", 4);
    for (int i = 1, arg = 1; *names; i++) {
        const char *end = names;
        while (*end && *end != ' ')
            end++;
        if (p[i - 1] != 'c') LLVMSetValueName2(LLVMGetParam(k->fn, (unsigned)arg++), names, (size_t)(end - names));
        names = *end ? end + 1 : end;
    }
}

LLVMValueRef kgen_kernel(KB *k, const KernelShape *s) {
    LLVMTypeRef pt[16] = {k->i64};
    int n = 1;
    for (const char *p = kinds[s->kind].params; *p; p++)
        if (*p != 'c') pt[n++] = *p == 'p' ? k->ptr : *p == 'i' ? k->i64 : k->f32;
    char name[160];
    k->fn = LLVMAddFunction(k->mod, kgen_name(s, name, sizeof name), LLVMFunctionType(k->vd, pt, (unsigned)n, 0));
    k->cols = s->cols;
    k->shape = s;
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
