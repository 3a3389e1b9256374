/* kernel_x86.c — the host's mapping of a row kernel (KMap): a loop over the
 * rows, and for each row the columns in vectors of X86_LANES floats, then a
 * scalar tail for the cols % X86_LANES left (both trip counts constants, so
 * LLVM unrolls the tail). Row sums accumulate in vectors of doubles and end
 * in a pairwise sum of the lanes. The vector width is explicit rather than
 * left to LLVM's loop vectorizer, which would not reorder the double sums
 * (that needs fast-math flags the LLVM 16 C API cannot set). */
#include "kernel_gen.h"


/* for (row = 0; row < rows; row++) */
static void x86_begin(KB *k) { k->row = loop_begin(k, &k->outer, kgen_i64(k, 0), k->rows, kgen_i64(k, 1)); }

static void x86_end(KB *k) {
    loop_end(k, &k->outer);
    LLVMBuildRetVoid(k->b);
}

/* Columns [lo, hi) in steps of k->width, each step's terms added to acc[]. */
static void col_loop(KB *k, int lo, int hi, ColFn *f, const void *ctx, int nsum, LLVMValueRef *acc) {
    if (hi <= lo) return;
    Loop l;
    k->col = loop_begin(k, &l, kgen_i64(k, lo), kgen_i64(k, hi), kgen_i64(k, k->width));
    LLVMValueRef t[4];
    f(k, ctx, t);
    LLVMTypeRef at = k->width > 1 ? LLVMVectorType(k->f64, (unsigned)k->width) : k->f64;
    for (int i = 0; i < nsum; i++)
        LLVMBuildStore(k->b, LLVMBuildFAdd(k->b, LLVMBuildLoad2(k->b, at, acc[i], ""), t[i], ""), acc[i]);
    loop_end(k, &l);
}

/* Columns [lo, hi) in steps of k->width, max of f's t[0] into *acc. */
static void max_loop(KB *k, int lo, int hi, ColFn *f, const void *ctx, LLVMValueRef acc) {
    if (hi <= lo) return;
    Loop l;
    k->col = loop_begin(k, &l, kgen_i64(k, lo), kgen_i64(k, hi), kgen_i64(k, k->width));
    LLVMValueRef t[4];
    f(k, ctx, t);
    LLVMValueRef old = LLVMBuildLoad2(k->b, LLVMTypeOf(t[0]), acc, "");
    LLVMBuildStore(k->b, kgen_max(k, old, t[0]), acc);
    loop_end(k, &l);
}

/* The row's max: vector lanes' maxima, then the scalar tail's, then across lanes. */
static void x86_cols_max(KB *k, ColFn *f, const void *ctx, LLVMValueRef *max) {
    int main_end = k->cols / X86_LANES * X86_LANES;
    LLVMTypeRef vt = LLVMVectorType(k->f32, X86_LANES);
    LLVMValueRef vacc = kgen_slot(k, vt), sacc = kgen_slot(k, k->f32);
    k->width = X86_LANES;
    LLVMBuildStore(k->b, cf(k, -__builtin_inff()), vacc);
    k->width = 1;
    LLVMBuildStore(k->b, cf(k, -__builtin_inff()), sacc);
    k->width = X86_LANES;
    max_loop(k, 0, main_end, f, ctx, vacc);
    k->width = 1;
    max_loop(k, main_end, k->cols, f, ctx, sacc);
    *max = kgen_max(k, kgen_hmax(k, LLVMBuildLoad2(k->b, vt, vacc, "")), LLVMBuildLoad2(k->b, k->f32, sacc, ""));
}

static void x86_cols(KB *k, ColFn *f, const void *ctx, int nsum, LLVMValueRef *sums) {
    int main_end = k->cols / X86_LANES * X86_LANES;
    LLVMValueRef vacc[4], sacc[4];
    LLVMTypeRef vt = LLVMVectorType(k->f64, X86_LANES);
    for (int i = 0; i < nsum; i++) {
        vacc[i] = kgen_slot(k, vt), sacc[i] = kgen_slot(k, k->f64);
        LLVMBuildStore(k->b, LLVMConstNull(vt), vacc[i]);
        LLVMBuildStore(k->b, LLVMConstNull(k->f64), sacc[i]);
    }
    k->width = X86_LANES;
    col_loop(k, 0, main_end, f, ctx, nsum, vacc);
    k->width = 1;
    col_loop(k, main_end, k->cols, f, ctx, nsum, sacc);
    for (int i = 0; i < nsum; i++)
        sums[i] = LLVMBuildFAdd(k->b, kgen_hsum(k, LLVMBuildLoad2(k->b, vt, vacc[i], "")),
                                LLVMBuildLoad2(k->b, k->f64, sacc[i], ""), "");
}

/* dst[col ..] += v: the row loop runs the rows in order, as the reference does */
static void x86_col_add(KB *k, LLVMValueRef dst, LLVMValueRef v) {
    LLVMValueRef p = kgen_at(k, dst, kgen_i64(k, 0), 0, 0);
    LLVMValueRef old = LLVMBuildLoad2(k->b, LLVMTypeOf(v), p, "");
    LLVMSetAlignment(old, 4);
    LLVMSetAlignment(LLVMBuildStore(k->b, LLVMBuildFAdd(k->b, old, v, ""), p), 4);
}

static void x86_row_store(KB *k, LLVMValueRef dst, LLVMValueRef v) {
    LLVMSetAlignment(LLVMBuildStore(k->b, v, LLVMBuildGEP2(k->b, LLVMTypeOf(v), dst, &k->row, 1, "")), 4);
}

/* Plain external functions: the program calls them through galvc_kernels. */
static void x86_entry(KB *k) {
    unsigned id = LLVMGetEnumAttributeKindForName("nounwind", 8);
    LLVMAddAttributeAtIndex(k->fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(k->ctx, id, 0));
}

const KMap kmap_x86 = {"x86-64", x86_begin, x86_end, x86_cols, x86_cols_max, x86_col_add, x86_row_store, x86_entry};
