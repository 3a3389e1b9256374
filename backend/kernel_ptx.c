/* kernel_ptx.c — the GPU's mapping of a row kernel (KMap): one thread block
 * per row (row = blockIdx.x; blocks past the last row return), its threads
 * striding over the columns (column = threadIdx.x + i blockDim.x). A row sum
 * is each thread's partial sum, reduced within the warp by butterfly
 * shuffles, then across warps through shared memory, read back in warp
 * order by every thread (so all threads hold the same, deterministic sum).
 * Parameter gradients, summed over rows, are atomic adds. Launch with
 * blockDim.x a multiple of 32, at most 1024, and gridDim.x >= rows. */
#include "kernel_gen.h"

#include <stdio.h>

/* A PTX special register (tid.x, ntid.x, ctaid.x) as an i64. */
static LLVMValueRef sreg(KB *k, const char *name) {
    char full[64];
    snprintf(full, sizeof full, "llvm.nvvm.read.ptx.sreg.%s", name);
    return LLVMBuildZExt(k->b, kgen_call(k, full, k->i32, NULL, 0), k->i64, "");
}

/* if (row >= rows) return; */
static void ptx_begin(KB *k) {
    k->row = sreg(k, "ctaid.x");
    k->done = LLVMAppendBasicBlockInContext(k->ctx, k->fn, "exit");
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(k->ctx, k->fn, "row");
    LLVMBuildCondBr(k->b, LLVMBuildICmp(k->b, LLVMIntSLT, k->row, k->rows, ""), body, k->done);
    LLVMPositionBuilderAtEnd(k->b, body);
}

static void ptx_end(KB *k) {
    LLVMBuildBr(k->b, k->done);
    LLVMPositionBuilderAtEnd(k->b, k->done);
    LLVMBuildRetVoid(k->b);
}

static void barrier(KB *k) { kgen_call(k, "llvm.nvvm.barrier0", k->vd, NULL, 0); }

/* v (double) summed over the warp's 32 lanes, every lane getting the sum:
 * butterfly shuffles of its two 32-bit halves. */
static LLVMValueRef warp_sum(KB *k, LLVMValueRef v) {
    LLVMTypeRef v2 = LLVMVectorType(k->i32, 2);
    for (int off = 16; off >= 1; off /= 2) {
        LLVMValueRef halves = LLVMBuildBitCast(k->b, v, v2, ""), out = LLVMGetUndef(v2);
        for (unsigned h = 0; h < 2; h++) {
            LLVMValueRef a[4] = {LLVMConstInt(k->i32, 0xffffffffu, 0),
                                 LLVMBuildExtractElement(k->b, halves, LLVMConstInt(k->i32, h, 0), ""),
                                 LLVMConstInt(k->i32, (unsigned)off, 0), LLVMConstInt(k->i32, 31, 0)};
            LLVMValueRef s = kgen_call(k, "llvm.nvvm.shfl.sync.bfly.i32", k->i32, a, 4);
            out = LLVMBuildInsertElement(k->b, out, s, LLVMConstInt(k->i32, h, 0), "");
        }
        v = LLVMBuildFAdd(k->b, v, LLVMBuildBitCast(k->b, out, k->f64, ""), "");
    }
    return v;
}

/* The block's shared [32 x double] for the warps' partial sums. */
static LLVMValueRef shared_sums(KB *k) {
    LLVMValueRef g = LLVMGetNamedGlobal(k->mod, "galvc_warp_sums");
    if (g) return g;
    LLVMTypeRef at = LLVMArrayType(k->f64, 32);
    g = LLVMAddGlobalInAddressSpace(k->mod, at, "galvc_warp_sums", 3);
    LLVMSetInitializer(g, LLVMGetUndef(at));
    LLVMSetLinkage(g, LLVMInternalLinkage);
    LLVMSetAlignment(g, 8);
    return g;
}

/* Element i of the shared sums. */
static LLVMValueRef shared_at(KB *k, LLVMValueRef i) {
    LLVMValueRef idx[2] = {kgen_i64(k, 0), i};
    return LLVMBuildGEP2(k->b, LLVMArrayType(k->f64, 32), shared_sums(k), idx, 2, "");
}

/* v summed over the block: warp sums to shared memory, then every thread adds them in order. */
static LLVMValueRef block_sum(KB *k, LLVMValueRef v, LLVMValueRef tid, LLVMValueRef nt) {
    v = warp_sum(k, v);
    LLVMValueRef warp = LLVMBuildLShr(k->b, tid, kgen_i64(k, 5), "");
    LLVMValueRef lane0 =
        LLVMBuildICmp(k->b, LLVMIntEQ, LLVMBuildAnd(k->b, tid, kgen_i64(k, 31), ""), kgen_i64(k, 0), "");
    LLVMBasicBlockRef wr = LLVMAppendBasicBlockInContext(k->ctx, k->fn, "warp_sum"),
                      join = LLVMAppendBasicBlockInContext(k->ctx, k->fn, "warp_sums");
    LLVMBuildCondBr(k->b, lane0, wr, join);
    LLVMPositionBuilderAtEnd(k->b, wr);
    LLVMBuildStore(k->b, v, shared_at(k, warp));
    LLVMBuildBr(k->b, join);
    LLVMPositionBuilderAtEnd(k->b, join);
    barrier(k);
    LLVMValueRef acc = kgen_slot(k, k->f64);
    LLVMBuildStore(k->b, LLVMConstReal(k->f64, 0.0), acc);
    LLVMValueRef nwarps = LLVMBuildLShr(k->b, LLVMBuildAdd(k->b, nt, kgen_i64(k, 31), ""), kgen_i64(k, 5), "");
    Loop l;
    LLVMValueRef w = loop_begin(k, &l, kgen_i64(k, 0), nwarps, kgen_i64(k, 1));
    LLVMValueRef s = LLVMBuildLoad2(k->b, k->f64, shared_at(k, w), "");
    LLVMBuildStore(k->b, LLVMBuildFAdd(k->b, LLVMBuildLoad2(k->b, k->f64, acc, ""), s, ""), acc);
    loop_end(k, &l);
    barrier(k); /* the shared sums are free again */
    return LLVMBuildLoad2(k->b, k->f64, acc, "");
}

/* v (float) maximized over the warp's lanes by butterfly shuffles, every lane getting it. */
static LLVMValueRef warp_max(KB *k, LLVMValueRef v) {
    for (int off = 16; off >= 1; off /= 2) {
        LLVMValueRef a[4] = {LLVMConstInt(k->i32, 0xffffffffu, 0), LLVMBuildBitCast(k->b, v, k->i32, ""),
                             LLVMConstInt(k->i32, (unsigned)off, 0), LLVMConstInt(k->i32, 31, 0)};
        LLVMValueRef s = kgen_call(k, "llvm.nvvm.shfl.sync.bfly.i32", k->i32, a, 4);
        v = kgen_max(k, v, LLVMBuildBitCast(k->b, s, k->f32, ""));
    }
    return v;
}

/* v maximized over the block: warp maxima to shared memory (as doubles), then every thread reads them in order. */
static LLVMValueRef block_max(KB *k, LLVMValueRef v, LLVMValueRef tid, LLVMValueRef nt) {
    v = warp_max(k, v);
    LLVMValueRef warp = LLVMBuildLShr(k->b, tid, kgen_i64(k, 5), "");
    LLVMValueRef lane0 =
        LLVMBuildICmp(k->b, LLVMIntEQ, LLVMBuildAnd(k->b, tid, kgen_i64(k, 31), ""), kgen_i64(k, 0), "");
    If c;
    kgen_if(k, &c, lane0);
    LLVMBuildStore(k->b, LLVMBuildFPExt(k->b, v, k->f64, ""), shared_at(k, warp));
    kgen_endif(k, &c);
    barrier(k);
    LLVMValueRef acc = kgen_slot(k, k->f32);
    LLVMBuildStore(k->b, LLVMConstReal(k->f32, -__builtin_inff()), acc);
    LLVMValueRef nwarps = LLVMBuildLShr(k->b, LLVMBuildAdd(k->b, nt, kgen_i64(k, 31), ""), kgen_i64(k, 5), "");
    Loop l;
    LLVMValueRef w = loop_begin(k, &l, kgen_i64(k, 0), nwarps, kgen_i64(k, 1));
    LLVMValueRef s = LLVMBuildFPTrunc(k->b, LLVMBuildLoad2(k->b, k->f64, shared_at(k, w), ""), k->f32, "");
    LLVMBuildStore(k->b, kgen_max(k, LLVMBuildLoad2(k->b, k->f32, acc, ""), s), acc);
    loop_end(k, &l);
    barrier(k);
    return LLVMBuildLoad2(k->b, k->f32, acc, "");
}

/* for (col = threadIdx.x; col < cols; col += blockDim.x), then the block's max */
static void ptx_cols_max(KB *k, ColFn *f, const void *ctx, LLVMValueRef *max) {
    LLVMValueRef t[4], tid = sreg(k, "tid.x"), nt = sreg(k, "ntid.x"), acc = kgen_slot(k, k->f32);
    LLVMBuildStore(k->b, LLVMConstReal(k->f32, -__builtin_inff()), acc);
    Loop l;
    k->width = 1;
    k->col = loop_begin(k, &l, tid, kgen_i64(k, k->cols), nt);
    f(k, ctx, t);
    LLVMBuildStore(k->b, kgen_max(k, LLVMBuildLoad2(k->b, k->f32, acc, ""), t[0]), acc);
    loop_end(k, &l);
    *max = block_max(k, LLVMBuildLoad2(k->b, k->f32, acc, ""), tid, nt);
}

/* for (col = threadIdx.x; col < cols; col += blockDim.x), then the block sums */
static void ptx_cols(KB *k, ColFn *f, const void *ctx, int nsum, LLVMValueRef *sums) {
    LLVMValueRef acc[4], t[4], tid = sreg(k, "tid.x"), nt = sreg(k, "ntid.x");
    for (int i = 0; i < nsum; i++) {
        acc[i] = kgen_slot(k, k->f64);
        LLVMBuildStore(k->b, LLVMConstReal(k->f64, 0.0), acc[i]);
    }
    Loop l;
    k->width = 1;
    k->col = loop_begin(k, &l, tid, kgen_i64(k, k->cols), nt);
    f(k, ctx, t);
    for (int i = 0; i < nsum; i++)
        LLVMBuildStore(k->b, LLVMBuildFAdd(k->b, LLVMBuildLoad2(k->b, k->f64, acc[i], ""), t[i], ""), acc[i]);
    loop_end(k, &l);
    for (int i = 0; i < nsum; i++)
        sums[i] = block_sum(k, LLVMBuildLoad2(k->b, k->f64, acc[i], ""), tid, nt);
}

/* dst[col] += v from every row's block at once: an atomic add */
static void ptx_col_add(KB *k, LLVMValueRef dst, LLVMValueRef v) {
    LLVMBuildAtomicRMW(k->b, LLVMAtomicRMWBinOpFAdd, kgen_at(k, dst, kgen_i64(k, 0), 0, 0), v,
                       LLVMAtomicOrderingMonotonic, 0);
}

/* dst[row] = v by thread 0 */
static void ptx_row_store(KB *k, LLVMValueRef dst, LLVMValueRef v) {
    LLVMValueRef first = LLVMBuildICmp(k->b, LLVMIntEQ, sreg(k, "tid.x"), kgen_i64(k, 0), "");
    LLVMBasicBlockRef st = LLVMAppendBasicBlockInContext(k->ctx, k->fn, "row_store"),
                      join = LLVMAppendBasicBlockInContext(k->ctx, k->fn, "row_stored");
    LLVMBuildCondBr(k->b, first, st, join);
    LLVMPositionBuilderAtEnd(k->b, st);
    LLVMBuildStore(k->b, v, LLVMBuildGEP2(k->b, LLVMTypeOf(v), dst, &k->row, 1, ""));
    LLVMBuildBr(k->b, join);
    LLVMPositionBuilderAtEnd(k->b, join);
}

/* !nvvm.annotations = !{!{ptr @fn, !"kernel", i32 1}} */
static void ptx_entry(KB *k) {
    LLVMValueRef md[3] = {k->fn, LLVMMDStringInContext(k->ctx, "kernel", 6), LLVMConstInt(k->i32, 1, 0)};
    LLVMAddNamedMetadataOperand(k->mod, "nvvm.annotations", LLVMMDNodeInContext(k->ctx, md, 3));
}

const KMap kmap_ptx = {"nvptx64", ptx_begin, ptx_end, ptx_cols, ptx_cols_max, ptx_col_add, ptx_row_store, ptx_entry};
