/* kernel_gen.h — the kernel generator's inside, shared by its three files and
 * kept out of backend.h so that only they see libLLVM's headers:
 * kernel_ir.c describes each kernel's arithmetic once, over one row of a
 * (rows, cols) problem, through the KMap interface; kernel_x86.c and
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
    /* Inside cols: dst[col ..] += v, summed over every row (a parameter's gradient). */
    void (*col_add)(KB *k, LLVMValueRef dst, LLVMValueRef v);
    /* dst[row] = v, once per row (a saved row statistic). */
    void (*row_store)(KB *k, LLVMValueRef dst, LLVMValueRef v);
    /* Mark fn as an entry point of the target (the GPU's kernel annotation). */
    void (*entry)(KB *k);
};

extern const KMap kmap_x86, kmap_ptx;
enum { X86_LANES = 8 }; /* the host's column loop: 8 floats (AVX), legalized to what the CPU has */

/* ---- kernel_ir.c: the descriptions and what both lowerings use ---- */

/* Add shape s's kernel to k->mod, built through k->map; returns the function. */
LLVMValueRef kgen_kernel(KB *k, const KernelShape *s);
/* The name of s's kernel: galvc_<kind>_c<cols>[_bias]. */
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

#endif
