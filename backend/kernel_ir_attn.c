/* kernel_ir_attn.c — the descriptions of the softmaxes: attention's, one
 * row per query position with the causal mask and the 1/sqrt(hd) scale
 * (Vaswani et al. 2017, eq. 1), forward and backward (dS = P (dP -
 * rowsum(P dP))); and the fused softmax + cross-entropy of the head, one row
 * per token: probabilities and the loss -log p[target] = log-sum-exp -
 * logit[target] in one kernel, and the logits' gradient (p - onehot) dloss
 * for one TP rank's columns in another. As runtime/kernels.c's softmax: the
 * max subtracted first, e^x by the same polynomial, the sum in double, the
 * probabilities scaled by its float reciprocal. */
#include "kernel_gen.h"

/* The lanes' mask: column < n (n an i64 row value). */
static LLVMValueRef col_lt(KB *k, LLVMValueRef n) {
    return LLVMBuildICmp(k->b, LLVMIntSLT, kgen_col_index(k), splat(k, n), "");
}

/* ---- attention softmax ---------------------------------------------------------- */
/* att_softmax_fwd (rows, att, t0; hd a plan constant): att (rows, T) in place,
 * row i the scores of query t = (t0 + i) mod T scaled by 1 / sqrt(hd) (the float the
 * reference computes); the keys it sees: t + 1 when causal, else T.
 * RowVals: a the keys seen (i64), b the row's start, c scale, d max, e 1/sum. */

/* scale * score, -inf past the keys seen */
static LLVMValueRef scaled(KB *k, const RowVals *v) {
    LLVMValueRef x = mul(k, load_col(k, v->b), splat(k, v->c));
    return LLVMBuildSelect(k->b, col_lt(k, v->a), x, cf(k, -__builtin_inff()), "");
}

static void asf_max(KB *k, const void *ctx, LLVMValueRef *t) { t[0] = scaled(k, ctx); }

static void asf_exp(KB *k, const void *ctx, LLVMValueRef *t) {
    const RowVals *v = ctx;
    LLVMValueRef e = kgen_exp(k, sub(k, scaled(k, v), splat(k, v->d)));
    e = LLVMBuildSelect(k->b, col_lt(k, v->a), e, cf(k, 0.0f), "");
    store_col(k, v->b, e);
    t[0] = ext(k, e);
}

static void asf_norm(KB *k, const void *ctx, LLVMValueRef *t) {
    const RowVals *v = ctx;
    (void)t;
    store_col(k, v->b, mul(k, load_col(k, v->b), splat(k, v->e)));
}

/* The keys query row k->row sees: (t0 + row) mod T + 1 (causal) or all T
 * (T = cols): a run of rows may cross sequences and heads, each T rows from
 * query 0, so one launch covers a micro-batch's B H T rows. */
static LLVMValueRef keys_seen(KB *k, LLVMValueRef t0, int flags) {
    if (!(flags & GRT_KF_CAUSAL)) return kgen_i64(k, k->cols);
    LLVMValueRef t = LLVMBuildSRem(k->b, iadd(k, t0, k->row), kgen_i64(k, k->cols), "");
    return iadd(k, t, kgen_i64(k, 1));
}

/* (float)(1 / sum), in double */
static LLVMValueRef reciprocal(KB *k, LLVMValueRef sum) {
    return LLVMBuildFPTrunc(k->b, fdiv(k, LLVMConstReal(k->f64, 1.0), sum), k->f32, "");
}

/* The softmax of row k->row of att from query t0 + row, hd the plan's first constant: the max, the
 * exponentials (into att) and their sum, then `norm` over the columns with RowVals e = 1 / sum. */
static void att_softmax(KB *k, int flags, LLVMValueRef att, LLVMValueRef t0, ColFn *norm) {
    float scale = 1.0f / __builtin_sqrtf((float)k->shape->c[0]); /* sqrtf, which math.h would clash with fdiv */
    RowVals v = {.a = keys_seen(k, t0, flags),
                 .b = row_ptr(k, att, imul(k, k->row, k->cols)),
                 .c = LLVMConstReal(k->f32, scale)};
    LLVMValueRef sum;
    k->map->cols_max(k, asf_max, &v, &v.d);
    k->map->cols(k, asf_exp, &v, 1, &sum);
    v.e = reciprocal(k, sum);
    k->map->cols(k, norm, &v, 0, NULL);
}

void kir_att_softmax_fwd(KB *k, int flags) { att_softmax(k, flags, param(k, 1), param(k, 2), asf_norm); }

/* att_softmax_bwd (rows, datt, att, t0): datt (rows, T) = att (datt - sum(att datt)) over the keys
 * seen, 0 past them. RowVals: a keys seen, b datt's row, c att's row, d the float sum. */

static void asb_dot(KB *k, const void *ctx, LLVMValueRef *t) {
    const RowVals *v = ctx;
    LLVMValueRef pd = ext(k, mul(k, load_col(k, v->c), load_col(k, v->b)));
    t[0] = LLVMBuildSelect(k->b, col_lt(k, v->a), pd, kgen_f64(k, 0.0), "");
}

static void asb_out(KB *k, const void *ctx, LLVMValueRef *t) {
    const RowVals *v = ctx;
    (void)t;
    LLVMValueRef g = mul(k, load_col(k, v->c), sub(k, load_col(k, v->b), splat(k, v->d)));
    store_col(k, v->b, LLVMBuildSelect(k->b, col_lt(k, v->a), g, cf(k, 0.0f), ""));
}

void kir_att_softmax_bwd(KB *k, int flags) {
    LLVMValueRef at = imul(k, k->row, k->cols), dot;
    RowVals v = {
        .a = keys_seen(k, param(k, 3), flags), .b = row_ptr(k, param(k, 1), at), .c = row_ptr(k, param(k, 2), at)};
    k->map->cols(k, asb_dot, &v, 1, &dot);
    v.d = LLVMBuildFPTrunc(k->b, dot, k->f32, "");
    k->map->cols(k, asb_out, &v, 0, NULL);
}

/* ---- the same on bf16 probabilities (mixed precision on a GPU) ------------------------------ */
/* att_softmax16_fwd (rows, att, bits, t0; hd): att_softmax_fwd's probabilities, rounded to bf16, into
 * bits (rows, T) alone: the exponentials stay in att, and the GEMM after reads the bits. RowVals as
 * att_softmax_fwd's. */

static void asf16_norm(KB *k, const void *ctx, LLVMValueRef *t) {
    const RowVals *v = ctx;
    (void)t;
    kgen_store_bits(k, param(k, 2), kgen_bf16_bits(k, mul(k, load_col(k, v->b), splat(k, v->e))));
}

void kir_att_softmax16_fwd(KB *k, int flags) { att_softmax(k, flags, param(k, 1), param(k, 3), asf16_norm); }

/* att_softmax16_bwd (rows, datt, att, ds, t0): att_softmax_bwd with the probabilities read from their
 * bf16 bits att (rows, T) and the result rounded to bf16 into ds (rows, T); datt only read. RowVals:
 * a keys seen, b datt's row, d the float sum. */

static void asb16_dot(KB *k, const void *ctx, LLVMValueRef *t) {
    const RowVals *v = ctx;
    LLVMValueRef pd = ext(k, mul(k, kgen_load_bits(k, param(k, 2)), load_col(k, v->b)));
    t[0] = LLVMBuildSelect(k->b, col_lt(k, v->a), pd, kgen_f64(k, 0.0), "");
}

static void asb16_out(KB *k, const void *ctx, LLVMValueRef *t) {
    const RowVals *v = ctx;
    (void)t;
    LLVMValueRef g = mul(k, kgen_load_bits(k, param(k, 2)), sub(k, load_col(k, v->b), splat(k, v->d)));
    g = LLVMBuildSelect(k->b, col_lt(k, v->a), g, cf(k, 0.0f), "");
    kgen_store_bits(k, param(k, 3), kgen_bf16_bits(k, g));
}

void kir_att_softmax16_bwd(KB *k, int flags) {
    LLVMValueRef dot;
    RowVals v = {.a = keys_seen(k, param(k, 4), flags), .b = row_ptr(k, param(k, 1), imul(k, k->row, k->cols))};
    k->map->cols(k, asb16_dot, &v, 1, &dot);
    v.d = LLVMBuildFPTrunc(k->b, dot, k->f32, "");
    k->map->cols(k, asb16_out, &v, 0, NULL);
}

/* ---- T5's attention softmax with its relative position bias ------------------------------ */
/* t5_softmax_fwd (rows, att, bias, t0): att (rows, T) in place = softmax(att + bias) over the keys
 * seen (Raffel et al. 2020: no 1/sqrt(hd) scale; the bias (rows, T) the rows' relative position
 * biases), 0 past them. RowVals: a keys seen, b att's row, c bias's row, d max, e 1/sum. */

/* score + bias, -inf past the keys seen (the reference's float add) */
static LLVMValueRef biased(KB *k, const RowVals *v) {
    LLVMValueRef x = add(k, load_col(k, v->b), load_col(k, v->c));
    return LLVMBuildSelect(k->b, col_lt(k, v->a), x, cf(k, -__builtin_inff()), "");
}

static void t5f_max(KB *k, const void *ctx, LLVMValueRef *t) { t[0] = biased(k, ctx); }

static void t5f_exp(KB *k, const void *ctx, LLVMValueRef *t) {
    const RowVals *v = ctx;
    LLVMValueRef e = kgen_exp(k, sub(k, biased(k, v), splat(k, v->d)));
    e = LLVMBuildSelect(k->b, col_lt(k, v->a), e, cf(k, 0.0f), "");
    store_col(k, v->b, e);
    t[0] = ext(k, e);
}

void kir_t5_softmax_fwd(KB *k, int flags) {
    LLVMValueRef at = imul(k, k->row, k->cols), sum;
    RowVals v = {
        .a = keys_seen(k, param(k, 3), flags), .b = row_ptr(k, param(k, 1), at), .c = row_ptr(k, param(k, 2), at)};
    k->map->cols_max(k, t5f_max, &v, &v.d);
    k->map->cols(k, t5f_exp, &v, 1, &sum);
    v.e = reciprocal(k, sum);
    k->map->cols(k, asf_norm, &v, 0, NULL);
}

/* t5_softmax_bwd (rows, datt, att, dbias, t0): att_softmax_bwd's datt, and dbias (rows, T) += it.
 * RowVals: a keys seen, b datt's row, c att's row, d the float sum, e dbias's row. */

static void t5b_out(KB *k, const void *ctx, LLVMValueRef *t) {
    const RowVals *v = ctx;
    (void)t;
    LLVMValueRef g = mul(k, load_col(k, v->c), sub(k, load_col(k, v->b), splat(k, v->d)));
    g = LLVMBuildSelect(k->b, col_lt(k, v->a), g, cf(k, 0.0f), "");
    store_col(k, v->b, g);
    store_col(k, v->e, add(k, load_col(k, v->e), g));
}

void kir_t5_softmax_bwd(KB *k, int flags) {
    LLVMValueRef at = imul(k, k->row, k->cols), dot;
    RowVals v = {.a = keys_seen(k, param(k, 4), flags),
                 .b = row_ptr(k, param(k, 1), at),
                 .c = row_ptr(k, param(k, 2), at),
                 .e = row_ptr(k, param(k, 3), at)};
    k->map->cols(k, asb_dot, &v, 1, &dot);
    v.d = LLVMBuildFPTrunc(k->b, dot, k->f32, "");
    k->map->cols(k, t5b_out, &v, 0, NULL);
}

/* ---- softmax + cross-entropy ------------------------------------------------------ */
/* xent_fwd (rows, losses, probs, logits, targets, ld): probs (rows, ld)[:, :V] =
 * softmax(logits (rows, ld)[:, :V]); losses (rows) = log-sum-exp - logit[target], 0 where target < 0.
 * RowVals: a logits' row, b probs' row, d max, e 1/sum. */

static void xf_max(KB *k, const void *ctx, LLVMValueRef *t) { t[0] = load_col(k, ((const RowVals *)ctx)->a); }

static void xf_exp(KB *k, const void *ctx, LLVMValueRef *t) {
    const RowVals *v = ctx;
    LLVMValueRef e = kgen_exp(k, sub(k, load_col(k, v->a), splat(k, v->d)));
    store_col(k, v->b, e);
    t[0] = ext(k, e);
}

void kir_xent_fwd(KB *k, int flags) {
    (void)flags;
    LLVMValueRef at = LLVMBuildMul(k->b, k->row, param(k, 5), ""), sum;
    RowVals v = {.a = row_ptr(k, param(k, 3), at), .b = row_ptr(k, param(k, 2), at)};
    k->map->cols_max(k, xf_max, &v, &v.d);
    k->map->cols(k, xf_exp, &v, 1, &sum);
    v.e = reciprocal(k, sum);
    k->map->cols(k, asf_norm, &v, 0, NULL);
    /* loss = (float)(max + log(sum) - logit[target]), in double; a target off the row reads column 0 */
    LLVMValueRef tgt = kgen_load_i32(k, param(k, 4), k->row);
    LLVMValueRef ok = LLVMBuildAnd(k->b, icmp(k, LLVMIntSGE, tgt, kgen_i64(k, 0)),
                                   icmp(k, LLVMIntSLT, tgt, kgen_i64(k, k->cols)), "");
    LLVMValueRef idx = LLVMBuildSelect(k->b, ok, tgt, kgen_i64(k, 0), "");
    LLVMValueRef lt = LLVMBuildLoad2(k->b, k->f32, LLVMBuildGEP2(k->b, k->f32, v.a, &idx, 1, ""), "");
    LLVMSetAlignment(lt, 4);
    LLVMValueRef lse = add(k, LLVMBuildFPExt(k->b, v.d, k->f64, ""), kgen_log(k, sum));
    LLVMValueRef loss = LLVMBuildFPTrunc(k->b, sub(k, lse, LLVMBuildFPExt(k->b, lt, k->f64, "")), k->f32, "");
    k->map->row_store(k, param(k, 1), LLVMBuildSelect(k->b, ok, loss, LLVMConstReal(k->f32, 0.0), ""));
}

/* xent_bwd (rows, dlogits, probs, targets, dloss, ld, col0): dlogits (rows, C) = columns
 * [col0, col0 + C) of (probs (rows, ld) - onehot(target)) dloss; 0 where target < 0.
 * RowVals: a probs' row at col0, b dlogits' row, c target - col0, d the row's target >= 0. */

static void xb_cols(KB *k, const void *ctx, LLVMValueRef *t) {
    const RowVals *v = ctx;
    (void)t;
    LLVMValueRef g = splat(k, param(k, 4)), y = mul(k, load_col(k, v->a), g);
    LLVMValueRef hit = LLVMBuildICmp(k->b, LLVMIntEQ, kgen_col_index(k), splat(k, v->c), "");
    y = LLVMBuildSelect(k->b, hit, sub(k, y, g), y, ""); /* the reference's p g, then -= g */
    store_col(k, v->b, LLVMBuildSelect(k->b, splat(k, v->d), y, cf(k, 0.0f), ""));
}

void kir_xent_bwd(KB *k, int flags) {
    (void)flags;
    LLVMValueRef tgt = kgen_load_i32(k, param(k, 3), k->row);
    LLVMValueRef at = iadd(k, LLVMBuildMul(k->b, k->row, param(k, 5), ""), param(k, 6));
    RowVals v = {.a = row_ptr(k, param(k, 2), at),
                 .b = row_ptr(k, param(k, 1), imul(k, k->row, k->cols)),
                 .c = LLVMBuildSub(k->b, tgt, param(k, 6), ""),
                 .d = icmp(k, LLVMIntSGE, tgt, kgen_i64(k, 0))};
    k->map->cols(k, xb_cols, &v, 0, NULL);
}
