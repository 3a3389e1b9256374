/* kernel_gen.h — the kernel generator's inside, shared by its files and
 * kept out of backend.h so that only they see libLLVM's headers:
 * kernel_ir_*.c describe each kernel's arithmetic once, over one row of a
 * (rows, cols) problem, through the KMap interface (kernel_ir.c holds the
 * building blocks they share and the table of kinds); kernel_x86.c and
 * kernel_ptx.c implement KMap, i.e. how a machine runs the rows and columns
 * (a row loop and vector column loop on the host; a block per row and
 * threads striding over the columns on the GPU). kernels.c drives them. */
#ifndef GALVC_KERNEL_GEN_H
#define GALVC_KERNEL_GEN_H

#include "backend.h"
#include "runtime/galvrt.h"

#include <llvm-c/Core.h>

/* A counted loop being built: for (iv = lo; iv < hi; iv += step). */
typedef struct Loop {
    LLVMBasicBlockRef head, exit;
    LLVMValueRef iv, step;
} Loop;

typedef struct KMap KMap;

/* A kernel under construction. Values built inside a column callback have
 * `width` lanes (a vector of that many, or a scalar when 1) and stand for
 * columns [col, col + width) of row `row`. */
typedef struct KB {
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    LLVMValueRef fn;
    const KMap *map;
    int cols;              /* the plan's column count: a constant in the code */
    const KernelShape *shape; /* the kernel's shape, its other plan constants too */
    LLVMValueRef rows;     /* i64, the first argument */
    LLVMValueRef row, col; /* i64: the row being computed; the first column of the lanes */
    int width;
    LLVMTypeRef f32, f64, i1, i32, i64, ptr, vd; /* vd: void */
    Loop outer;                                  /* the row loop (host) */
    LLVMBasicBlockRef done;                      /* the exit block (GPU) */
} KB;

/* The work of columns [k->col, k->col + k->width); terms[i] gets the lanes'
 * contribution (double) to row sum i. */
typedef void ColFn(KB *k, const void *ctx, LLVMValueRef *terms);

/* How a lowering maps a kernel's work onto its machine. The arithmetic is
 * the description's (kernel_ir.c); only this differs between targets. */
struct KMap {
    const char *name;
    /* Open the function's body for one row: set k->row (the function and its
     * parameters exist, the builder is at its entry). */
    void (*begin)(KB *k);
    /* Close the row and return. */
    void (*end)(KB *k);
    /* Run f over every column once; sums[0..nsum) get the row sums of f's
     * terms, the same value on every thread. */
    void (*cols)(KB *k, ColFn *f, const void *ctx, int nsum, LLVMValueRef *sums);
    /* Run f over every column once; *max gets the row's largest float of
     * f's t[0] (a lane below it, or NaN, is passed over), on every thread. */
    void (*cols_max)(KB *k, ColFn *f, const void *ctx, LLVMValueRef *max);
    /* Inside cols: dst[col ..] += v, summed over every row (a parameter's
     * gradient; dst may be a row of a larger array, chosen per row). */
    void (*col_add)(KB *k, LLVMValueRef dst, LLVMValueRef v);
    /* dst[row] = v (float or double), once per row (a saved row statistic). */
    void (*row_store)(KB *k, LLVMValueRef dst, LLVMValueRef v);
    /* Mark fn as an entry point of the target (the GPU's kernel annotation). */
    void (*entry)(KB *k);
};

extern const KMap kmap_x86, kmap_ptx;
enum { X86_LANES = 8 }; /* the host's column loop: 8 floats (AVX), legalized to what the CPU has */

/* ---- kernel_ir.c: the table of kinds and what descriptions and lowerings use ---- */

/* Add shape s's kernel to k->mod, built through k->map; returns the function. */
LLVMValueRef kgen_kernel(KB *k, const KernelShape *s);
/* Parameter i of the kernel under construction (see param). */
LLVMValueRef kgen_param(KB *k, int i);
/* The name of s's kernel: galvc_<kind>_c<cols>[_bias][_pos][_causal]...[_<constant>...]. */
const char *kgen_name(const KernelShape *s, char *buf, size_t n);
/* Open a loop for iv in [lo, hi) by step; the builder is then in its body. */
LLVMValueRef loop_begin(KB *k, Loop *l, LLVMValueRef lo, LLVMValueRef hi, LLVMValueRef step);
void loop_end(KB *k, Loop *l);
/* A stack slot in the function's entry block (promoted to a register at O3). */
LLVMValueRef kgen_slot(KB *k, LLVMTypeRef t);
LLVMValueRef kgen_i64(KB *k, long long v);
/* A double constant of k->width lanes. */
LLVMValueRef kgen_f64(KB *k, double v);
/* The lanes' address in row-major array p: element row * stride + off + col. */
LLVMValueRef kgen_at(KB *k, LLVMValueRef p, LLVMValueRef row, int64_t stride, int64_t off);
/* Sum of a vector's lanes (pairwise); a scalar as it is. */
LLVMValueRef kgen_hsum(KB *k, LLVMValueRef v);
/* Call the intrinsic or function `name` of type ret(args), declaring it once. */
LLVMValueRef kgen_call(KB *k, const char *name, LLVMTypeRef ret, LLVMValueRef *args, int n);
/* Largest lane of a float vector (a NaN lane passed over); a scalar as it is. */
LLVMValueRef kgen_hmax(KB *k, LLVMValueRef v);
/* max(acc, v) per lane as the reference's select(v > acc, v, acc). */
LLVMValueRef kgen_max(KB *k, LLVMValueRef acc, LLVMValueRef v);
/* e^x per lane (float), the reference's f4_exp. */
LLVMValueRef kgen_exp(KB *k, LLVMValueRef x);
/* log x of a positive normal double (one lane), to about 1e-15 relative. */
LLVMValueRef kgen_log(KB *k, LLVMValueRef x);
/* The lanes' column numbers, i64: col, col + 1, ... */
LLVMValueRef kgen_col_index(KB *k);
/* p[idx] of an int32 array (idx an i64 scalar), sign-extended to i64. */
LLVMValueRef kgen_load_i32(KB *k, LLVMValueRef p, LLVMValueRef idx);
/* bf16 (kernel_ir_pointwise.c): the lanes' bf16 bits (i32) of float x,
 * to nearest even (grt_bf16_bits); the lanes' columns of the row in a
 * uint16_t (rows, cols) array p: bits stored, or loaded as the floats they are. */
LLVMValueRef kgen_bf16_bits(KB *k, LLVMValueRef x);
void kgen_store_bits(KB *k, LLVMValueRef p, LLVMValueRef bits);
LLVMValueRef kgen_load_bits(KB *k, LLVMValueRef p);

/* if (cond) { ... } [else { ... }]: open with kgen_if, optionally switch with
 * kgen_else, close with kgen_endif. On the GPU the condition must be the same
 * on every thread of the block (a row's). */
typedef struct If {
    LLVMBasicBlockRef other, join;
} If;
void kgen_if(KB *k, If *c, LLVMValueRef cond);
void kgen_else(KB *k, If *c);
void kgen_endif(KB *k, If *c);

/* ---- the descriptions' vocabulary: one-line builders (no <math.h> beside them: C23 declares an fdiv) ---- */

/* t, or a vector of k->width t's. */
static inline LLVMTypeRef lanes(KB *k, LLVMTypeRef t) {
    return k->width > 1 ? LLVMVectorType(t, (unsigned)k->width) : t;
}

/* A scalar row value broadcast to k->width lanes. */
static inline LLVMValueRef splat(KB *k, LLVMValueRef v) {
    if (k->width == 1) return v;
    LLVMTypeRef vt = LLVMVectorType(LLVMTypeOf(v), (unsigned)k->width);
    LLVMValueRef one = LLVMBuildInsertElement(k->b, LLVMGetUndef(vt), v, LLVMConstInt(k->i32, 0, 0), "");
    return LLVMBuildShuffleVector(k->b, one, LLVMGetUndef(vt), LLVMConstNull(LLVMVectorType(k->i32, (unsigned)k->width)),
                                  "");
}

static inline LLVMValueRef cf(KB *k, float v) { return splat(k, LLVMConstReal(k->f32, v)); }
static inline LLVMValueRef ci(KB *k, int v) { return splat(k, LLVMConstInt(k->i32, (unsigned long long)v, 1)); }
static inline LLVMValueRef add(KB *k, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFAdd(k->b, a, b, ""); }
static inline LLVMValueRef sub(KB *k, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFSub(k->b, a, b, ""); }
static inline LLVMValueRef mul(KB *k, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFMul(k->b, a, b, ""); }
static inline LLVMValueRef fdiv(KB *k, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFDiv(k->b, a, b, ""); }
static inline LLVMValueRef ext(KB *k, LLVMValueRef v) { return LLVMBuildFPExt(k->b, v, lanes(k, k->f64), ""); }
/* Parameter i of the kernel (0: rows; then the kind's list in kernel_ir.c):
 * the function's argument, or for a plan constant its value, as code. */
static inline LLVMValueRef param(KB *k, int i) { return kgen_param(k, i); }

/* a < b ? x : y, per lane (false for NaN, as C's <) */
static inline LLVMValueRef sel_lt(KB *k, LLVMValueRef a, LLVMValueRef b, LLVMValueRef x, LLVMValueRef y) {
    return LLVMBuildSelect(k->b, LLVMBuildFCmp(k->b, LLVMRealOLT, a, b, ""), x, y, "");
}

/* The lanes of row-major array p at (row, off + col), row length stride. */
static inline LLVMValueRef load(KB *k, LLVMValueRef p, int64_t stride, int64_t off) {
    LLVMValueRef v = LLVMBuildLoad2(k->b, lanes(k, k->f32), kgen_at(k, p, k->row, stride, off), "");
    LLVMSetAlignment(v, 4);
    return v;
}

static inline void store(KB *k, LLVMValueRef p, int64_t stride, int64_t off, LLVMValueRef v) {
    LLVMSetAlignment(LLVMBuildStore(k->b, v, kgen_at(k, p, k->row, stride, off)), 4);
}

/* The lanes at p[col ..]: p a row's start, or a per-column vector (weight, bias). */
static inline LLVMValueRef load_col(KB *k, LLVMValueRef p) {
    LLVMValueRef v = LLVMBuildLoad2(k->b, lanes(k, k->f32), kgen_at(k, p, kgen_i64(k, 0), 0, 0), "");
    LLVMSetAlignment(v, 4);
    return v;
}

static inline void store_col(KB *k, LLVMValueRef p, LLVMValueRef v) {
    LLVMSetAlignment(LLVMBuildStore(k->b, v, kgen_at(k, p, kgen_i64(k, 0), 0, 0)), 4);
}

/* p[row] (a float per row) */
static inline LLVMValueRef load_row(KB *k, LLVMValueRef p) {
    LLVMValueRef a = LLVMBuildGEP2(k->b, k->f32, p, &k->row, 1, "");
    LLVMValueRef v = LLVMBuildLoad2(k->b, k->f32, a, "");
    LLVMSetAlignment(v, 4);
    return v;
}

/* &p[i] of a float array (i an i64 scalar): a row's start */
static inline LLVMValueRef row_ptr(KB *k, LLVMValueRef p, LLVMValueRef i) {
    return LLVMBuildGEP2(k->b, k->f32, p, &i, 1, "");
}

static inline LLVMValueRef imul(KB *k, LLVMValueRef a, long long c) { return LLVMBuildMul(k->b, a, kgen_i64(k, c), ""); }
static inline LLVMValueRef iadd(KB *k, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildAdd(k->b, a, b, ""); }
static inline LLVMValueRef icmp(KB *k, LLVMIntPredicate p, LLVMValueRef a, LLVMValueRef b) {
    return LLVMBuildICmp(k->b, p, a, b, "");
}

/* Values the column callbacks of one kernel read (row scalars, splat per use). */
typedef struct RowVals {
    LLVMValueRef a, b, c, d, e, f;
    int bias;
} RowVals;

/* ---- the descriptions (kernel_ir_*.c): body(k, flags) of each kind ---- */
void kir_layernorm_fwd(KB *k, int flags), kir_layernorm_bwd(KB *k, int flags);
void kir_rmsnorm_fwd(KB *k, int flags), kir_rmsnorm_bwd(KB *k, int flags);
void kir_residual(KB *k, int flags), kir_bias_gelu_fwd(KB *k, int flags), kir_bias_gelu_bwd(KB *k, int flags);
void kir_swiglu_fwd(KB *k, int flags), kir_swiglu_bwd(KB *k, int flags);
void kir_embed_fwd(KB *k, int flags), kir_embed_bwd(KB *k, int flags);
void kir_rope_fwd(KB *k, int flags), kir_rope_bwd(KB *k, int flags);
void kir_att_softmax_fwd(KB *k, int flags), kir_att_softmax_bwd(KB *k, int flags);
void kir_att_softmax16_fwd(KB *k, int flags), kir_att_softmax16_bwd(KB *k, int flags);
void kir_xent_fwd(KB *k, int flags), kir_xent_bwd(KB *k, int flags);
void kir_sumsq(KB *k, int flags), kir_adamw(KB *k, int flags), kir_adam(KB *k, int flags), kir_sgd(KB *k, int flags);
void kir_dropout(KB *k, int flags);
void kir_patch_fwd(KB *k, int flags), kir_patch_bwd(KB *k, int flags);
void kir_t5_softmax_fwd(KB *k, int flags), kir_t5_softmax_bwd(KB *k, int flags);
void kir_win_gather(KB *k, int flags), kir_win_scatter(KB *k, int flags), kir_win_softmax_fwd(KB *k, int flags);
void kir_merge_gather(KB *k, int flags), kir_merge_scatter(KB *k, int flags);
void kir_bf16(KB *k, int flags);
void kir_bf16_widen(KB *k, int flags);
void kir_bf16_keep(KB *k, int flags);

#endif
