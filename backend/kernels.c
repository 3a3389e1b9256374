/* kernels.c — the kernels a plan needs, generated through libLLVM (the
 * LLVM 16 C API): which shapes the plan's layers run (embedding and norms at
 * the hidden size, the MLP's activation at each TP shard's width, rotary at
 * the head size, attention's softmax at the sequence, the loss at the
 * vocabulary and its TP shard, ViT's tokens at the hidden size, the optimizer's rows), one LLVM module of
 * them per target, the O3 pipeline, and the output: the host's IR, assembly
 * or object (CPU and features of the build machine: the program runs where
 * it is built), or PTX for NVPTX (sm_90 or sm_80, PTX ISA 7.8).
 *
 * The host object also holds the table galvc_kernels (runtime/galvrt.h),
 * through which the program's layers find each kernel by its shape. */
#include "kernel_gen.h"
#include "runtime/galvrt.h"

#include <llvm-c/Analysis.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Field by field: a KernelShape's padding (before c) holds whatever the stack held. */
static bool same_shape(const KernelShape *a, const KernelShape *b) {
    return a->kind == b->kind && a->cols == b->cols && a->flags == b->flags &&
           memcmp(a->c, b->c, sizeof a->c) == 0;
}

void kernels_add_sized(KernelSet *set, int kind, int cols, int flags, int64_t c0, int64_t c1, int64_t c2) {
    KernelShape s = {kind, cols, flags, {c0, c1, c2}};
    for (int i = 0; i < set->n; i++)
        if (same_shape(&set->k[i], &s)) return;
    if (set->n == KERNELS_MAX) die("more than %d kernel shapes", KERNELS_MAX);
    set->k[set->n++] = s;
}

void kernels_add(KernelSet *set, int kind, int cols, int flags) { kernels_add_sized(set, kind, cols, flags, 0, 0, 0); }

/* A norm's forward and backward at C columns. */
static void add_norm(KernelSet *set, bool rms, bool bias, int C) {
    if (rms) {
        kernels_add(set, GRT_K_RMSNORM_FWD, C, 0);
        kernels_add(set, GRT_K_RMSNORM_BWD, C, 0);
    } else {
        kernels_add(set, GRT_K_LAYERNORM_FWD, C, bias ? GRT_KF_BIAS : 0);
        kernels_add(set, GRT_K_LAYERNORM_BWD, C, bias ? GRT_KF_BIAS : 0);
    }
}

/* A T5 block (runtime/t5.c): its norms at C; its self-attention's rows over
 * its stack's tokens with the relative bias (causal in the decoder); a
 * decoder's cross-attention rows over the encoder's tokens, unscaled (the
 * attention softmax at head size 1). */
static void add_t5_block(KernelSet *set, const GrtLayerSpec *s, int tp) {
    int Tq = (int)grt_t5_queries(s), causal = s->cross ? GRT_KF_CAUSAL : 0;
    add_norm(set, true, false, s->C);
    kernels_add(set, GRT_K_T5_SOFTMAX_FWD, Tq, causal);
    kernels_add(set, GRT_K_T5_SOFTMAX_BWD, Tq, causal);
    if (s->dropout > 0) { /* the branches' (and their gradients'), the probabilities', the MLP hidden's by row */
        kernels_add_sized(set, GRT_K_DROPOUT, s->C, GRT_KF_RESIDUAL, Tq, 0, 0);
        kernels_add_sized(set, GRT_K_DROPOUT, s->C, 0, Tq, 0, 0);
        kernels_add_sized(set, GRT_K_DROPOUT, Tq, 0, Tq, 0, 0);
        kernels_add_sized(set, GRT_K_DROPOUT, s->F / tp, 0, 1, 0, 0);
        if (s->cross) kernels_add_sized(set, GRT_K_DROPOUT, s->te, 0, Tq, 0, 0);
    }
    if (!s->cross) return;
    kernels_add_sized(set, GRT_K_ATT_SOFTMAX_FWD, s->te, 0, 1, 0, 0);
    kernels_add(set, GRT_K_ATT_SOFTMAX_BWD, s->te, 0);
}

/* Swin's windows over T tokens: QKV's rows and the attention's output (a
 * TP rank's heads) gathered to window order and back, the biased softmax
 * over a window's n = window^2 keys, its backward (the plain one). */
static void add_windows(KernelSet *set, const GrtLayerSpec *s, int tp, int T) {
    int side = 1, M = s->window, n = M * M, H = s->H / tp, shift = s->shift ? M / 2 : 0;
    while ((side + 1) * (side + 1) <= T)
        side++;
    for (int w = 0; w < 2; w++) { /* QKV's width, the output's */
        kernels_add_sized(set, GRT_K_WIN_GATHER, (w ? 1 : 3) * H * s->hd, 0, side, M, shift);
        kernels_add_sized(set, GRT_K_WIN_SCATTER, (w ? 1 : 3) * H * s->hd, 0, side, M, shift);
    }
    kernels_add_sized(set, GRT_K_WIN_SOFTMAX_FWD, n, 0, H, T / n, s->hd);
    kernels_add(set, GRT_K_ATT_SOFTMAX_BWD, n, 0);
}

/* Swin's patch merging over T tokens (a side x side grid): its groups
 * gathered and their gradient scattered back at C, its norm over 4 C. */
static void add_merge(KernelSet *set, const GrtLayerSpec *s, int T) {
    int side = 1;
    while ((side + 1) * (side + 1) <= T) side++;
    kernels_add_sized(set, GRT_K_MERGE_GATHER, s->C, 0, side, 0, 0);
    kernels_add_sized(set, GRT_K_MERGE_SCATTER, s->C, 0, side, 0, 0);
    add_norm(set, false, true, 4 * s->C);
}

/* A transformer block under TP degree tp over T tokens: its norms and
 * residuals at C, its MLP activation at the shard's width F / tp, rotary
 * at hd / 2 pairs, the attention softmax over T keys (runtime/layers.c
 * runs these). */
static void add_block(KernelSet *set, const GrtLayerSpec *s, int tp, int T) {
    int F = s->F / tp;
    if (s->rope && s->hd % 2 == 0) {
        /* the shard's Q and K heads, in its fused qkv rows (runtime/layers.c) */
        int64_t heads = (s->H + s->KVH) / tp, ld = (int64_t)(s->H + 2 * s->KVH) / tp * s->hd;
        kernels_add_sized(set, GRT_K_ROPE_FWD, s->hd / 2, 0, T, heads, ld);
        kernels_add_sized(set, GRT_K_ROPE_BWD, s->hd / 2, 0, T, heads, ld);
    }
    int causal = s->causal ? GRT_KF_CAUSAL : 0;
    if (s->window)
        add_windows(set, s, tp, T);
    else
        kernels_add_sized(set, GRT_K_ATT_SOFTMAX_FWD, T, causal, s->hd, 0, 0);
    if (!s->window) kernels_add(set, GRT_K_ATT_SOFTMAX_BWD, T, causal);
    add_norm(set, s->rms, s->bias, s->C);
    kernels_add(set, GRT_K_RESIDUAL, s->C, 0);
    if (s->bias && !(s->dropout > 0)) kernels_add(set, GRT_K_RESIDUAL, s->C, GRT_KF_BIAS); /* + the projections' bias */
    if (s->dropout > 0) { /* the residual branches' (and their gradients'), the probabilities' */
        kernels_add_sized(set, GRT_K_DROPOUT, s->C, GRT_KF_RESIDUAL, T, 0, 0);
        kernels_add_sized(set, GRT_K_DROPOUT, s->C, 0, T, 0, 0);
        kernels_add_sized(set, GRT_K_DROPOUT, T, 0, T, 0, 0);
    }
    if (s->swiglu) {
        kernels_add(set, GRT_K_SWIGLU_FWD, F, 0);
        kernels_add(set, GRT_K_SWIGLU_BWD, F, 0);
    } else {
        kernels_add(set, GRT_K_BIAS_GELU_FWD, F, s->bias ? GRT_KF_BIAS : 0);
        kernels_add(set, GRT_K_BIAS_GELU_BWD, F, s->bias ? GRT_KF_BIAS : 0);
    }
}

/* The embedding's lookup at C, with learned positions where it has them
 * (and without, for TP ranks past the first, which do not add them). */
static void add_embedding(KernelSet *set, const GrtLayerSpec *s, int tp, int T) {
    int pos = s->positions ? GRT_KF_POS : 0, rows = (s->V + tp - 1) / tp; /* the shard's vocabulary rows */
    kernels_add_sized(set, GRT_K_EMBED_FWD, s->C, pos, T, rows, 0);
    if (pos && tp > 1) kernels_add_sized(set, GRT_K_EMBED_FWD, s->C, 0, T, rows, 0);
    kernels_add_sized(set, GRT_K_EMBED_BWD, s->C, pos, T, rows, 0);
    if (s->dropout > 0) kernels_add_sized(set, GRT_K_DROPOUT, s->C, 0, T, 0, 0); /* its output's, and gradient's */
}

/* ViT's class token, patches and positions over T tokens (runtime/layers.c's patch embedding). */
static void add_patch(KernelSet *set, const GrtLayerSpec *s, int T) {
    kernels_add_sized(set, GRT_K_PATCH_FWD, s->C, 0, T, 0, 0);
    kernels_add_sized(set, GRT_K_PATCH_BWD, s->C, 0, T, 0, 0);
}

/* The head's softmax + cross-entropy over the whole vocabulary V, and its
 * gradient over one TP rank's padded share of it. */
static void add_head(KernelSet *set, const GrtLayerSpec *s, int tp) {
    int Vl = (s->V + tp - 1) / tp; /* the padded logits' rows are tp Vl long */
    kernels_add_sized(set, GRT_K_XENT_FWD, s->V, 0, (int64_t)Vl * tp, 0, 0);
    kernels_add_sized(set, GRT_K_XENT_BWD, Vl, 0, (int64_t)Vl * tp, 0, 0);
}

/* The gradient norm and the optimizer's update, on rows of GRT_OPT_COLS. */
static void add_optimizer(KernelSet *set, const Optimizer *o) {
    kernels_add(set, GRT_K_SUMSQ, GRT_OPT_COLS, 0);
    if (o->kind == OPT_ADAMW) kernels_add(set, GRT_K_ADAMW, GRT_OPT_COLS, 0);
    if (o->kind == OPT_ADAM) kernels_add(set, GRT_K_ADAM, GRT_OPT_COLS, 0);
    int momentum = o->momentum > 0 ? GRT_KF_MOMENTUM | (o->nesterov ? GRT_KF_NESTEROV : 0) : 0;
    if (o->kind == OPT_SGD) kernels_add(set, GRT_K_SGD, GRT_OPT_COLS, momentum);
}

/* bf16's rounding of a linear's operands: (N, C), (N, OC) and (OC, C)
 * matrices, at C and OC columns, in the target's holding (galvrt_sizes.h). */
static void add_linear16(KernelSet *set, int gemm16, int64_t C, int64_t OC) {
    int wide = gemm16 == GRT_GEMM16_WIDE ? GRT_KF_WIDE : 0;
    kernels_add(set, GRT_K_BF16, (int)C, wide);
    kernels_add(set, GRT_K_BF16, (int)OC, wide);
}

/* A block's kept activations as bf16 bits with their fp32 copy rounded in
 * one pass, back from the bits, or rounded in place when checkpointed
 * (runtime/layers.c's keep16 and unkeep16): rows of C, QKV, H hd, UP, F and
 * keys columns; on a device (bits) the attention softmax on bf16
 * probabilities, and rounding into bits alone at the keys' width
 * (runtime/cuda/gemm.c: no fp32 copy of those is read after). */
static void add_kept16(KernelSet *set, const GrtLayerSpec *s, GrtShardSizes z, int T, int gemm16) {
    int64_t cols[] = {s->C, (int64_t)z.qkv, (int64_t)(z.H * s->hd), (int64_t)z.up, (int64_t)z.F,
                      (int64_t)grt_block_keys(s, T)};
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
        kernels_add(set, GRT_K_BF16_KEEP, (int)cols[i], 0);
        kernels_add(set, GRT_K_BF16_WIDEN, (int)cols[i], 0);
        kernels_add(set, GRT_K_BF16, (int)cols[i], GRT_KF_WIDE);
    }
    if (gemm16 != GRT_GEMM16_BITS || s->window) return;
    int causal = s->causal ? GRT_KF_CAUSAL : 0;
    kernels_add_sized(set, GRT_K_ATT_SOFTMAX16_FWD, T, causal, s->hd, 0, 0);
    kernels_add(set, GRT_K_ATT_SOFTMAX16_BWD, T, causal);
}

/* Every linear's rounding under mixed precision (runtime/layers.c's
 * linear_fwd, linear_bwd), and a block's kept activations'. */
static void add_gemm16(KernelSet *set, const GrtLayerSpec *s, int tp, int T, int gemm16) {
    GrtShardSizes z = grt_shard_sizes(s, tp);
    if (s->kind == GRT_BLOCK) {
        if (!s->te) add_kept16(set, s, z, T, gemm16); /* T5's blocks keep fp32 (galvrt_sizes.h's grt_kept16) */
        add_linear16(set, gemm16, s->C, (int64_t)z.qkv);
        add_linear16(set, gemm16, (int64_t)(z.H * s->hd), (int64_t)z.up);
        add_linear16(set, gemm16, (int64_t)z.F, s->C);
        if (s->te && s->cross) /* T5's cross-attention: Q and output at H hd, K V at 2 H hd (runtime/t5.c) */
            add_linear16(set, gemm16, (int64_t)(z.H * s->hd), 2 * (int64_t)(z.H * s->hd));
    }
    if (s->kind == GRT_HEAD) add_linear16(set, gemm16, s->C, (int64_t)z.V);
    if (s->kind == GRT_PATCH) add_linear16(set, gemm16, (int64_t)grt_patch_values(s), s->C);
    if (s->kind == GRT_CLASSIFIER) add_linear16(set, gemm16, s->C, s->V);
    if (s->kind == GRT_MERGE) add_linear16(set, gemm16, 4 * (int64_t)s->C, 2 * (int64_t)s->C);
}

void kernels_for_plan(const Spec *spec, const Plan *plan, KernelSet *set) {
    const Graph *g = spec->graph;
    set->n = 0;
    for (int i = 0; i < g->n_layers; i++) {
        GrtLayerSpec s;
        int tp = plan->layer[i].tp, T = (int)g->layers[i]->seq;
        if (layer_runtime_base_kind(g->layers[i]->kind) < 0 || !layer_runtime_spec(g, g->layers[i], &s)) continue;
        T = (int)grt_stream_rows(&s, T); /* T5's layers run on their stream's rows */
        if (s.kind == GRT_BLOCK && s.F % tp == 0 && !s.te) add_block(set, &s, tp, T);
        if (s.kind == GRT_BLOCK && s.te && s.F % tp == 0) add_t5_block(set, &s, tp);
        if (s.kind == GRT_NORM) add_norm(set, s.rms, s.bias, s.C);
        if (s.kind == GRT_NORM && s.te && s.dropout > 0) /* a T5 stack's final norm's, over its rows */
            kernels_add_sized(set, GRT_K_DROPOUT, s.C, 0, s.part == 1 ? s.te : s.td, 0, 0);
        if (s.kind == GRT_EMBEDDING) add_embedding(set, &s, tp, T);
        if (s.kind == GRT_HEAD) add_head(set, &s, tp);
        if (s.kind == GRT_PATCH) add_patch(set, &s, T);
        if (s.kind == GRT_MERGE) add_merge(set, &s, T);
        if (spec_gemm16(spec) && (s.kind != GRT_BLOCK || s.F % tp == 0)) add_gemm16(set, &s, tp, T, spec_gemm16(spec));
    }
    if (spec->train) add_optimizer(set, &spec->train->opt);
}

/* ---- targets --------------------------------------------------------------- */

/* Every target galvc generates for, registered once. */
static void init_targets(void) {
    static bool done;
    if (done) return;
    LLVMInitializeX86TargetInfo(), LLVMInitializeX86Target(), LLVMInitializeX86TargetMC();
    LLVMInitializeX86AsmPrinter();
    LLVMInitializeNVPTXTargetInfo(), LLVMInitializeNVPTXTarget(), LLVMInitializeNVPTXTargetMC();
    LLVMInitializeNVPTXAsmPrinter();
    done = true;
}

/* The target machine of the host (cpu NULL) or of NVPTX at cpu ("sm_90"). */
static LLVMTargetMachineRef target_machine(const char *gpu, Diag *d) {
    char *triple = gpu ? strdup("nvptx64-nvidia-cuda") : LLVMGetDefaultTargetTriple();
    char *cpu = gpu ? strdup(gpu) : LLVMGetHostCPUName();
    char *features = gpu ? strdup("+ptx78") : LLVMGetHostCPUFeatures();
    LLVMTargetRef t;
    char *err = NULL;
    LLVMTargetMachineRef tm = NULL;
    if (LLVMGetTargetFromTriple(triple, &t, &err))
        diag_plain(d, "LLVM has no target %s: %s", triple, err);
    else
        tm = LLVMCreateTargetMachine(t, triple, cpu, features, LLVMCodeGenLevelAggressive, LLVMRelocPIC,
                                     LLVMCodeModelDefault);
    if (gpu)
        free(triple), free(cpu), free(features);
    else
        LLVMDisposeMessage(triple), LLVMDisposeMessage(cpu), LLVMDisposeMessage(features);
    LLVMDisposeMessage(err);
    return tm;
}

/* A kernel builder for module mod through map. */
static KB builder(LLVMContextRef ctx, LLVMModuleRef mod, const KMap *map) {
    return (KB){.ctx = ctx,
                .mod = mod,
                .b = LLVMCreateBuilderInContext(ctx),
                .map = map,
                .f32 = LLVMFloatTypeInContext(ctx),
                .f64 = LLVMDoubleTypeInContext(ctx),
                .i1 = LLVMInt1TypeInContext(ctx),
                .i32 = LLVMInt32TypeInContext(ctx),
                .i64 = LLVMInt64TypeInContext(ctx),
                .ptr = LLVMPointerTypeInContext(ctx, 0),
                .vd = LLVMVoidTypeInContext(ctx)};
}

/* galvc_kernels = {n, {kind, cols, flags, {c...}, fn}...}: the program's table (GrtKernelTable). */
static void add_table(KB *k, const KernelSet *set, LLVMValueRef *fns) {
    LLVMTypeRef ct = LLVMArrayType(k->i64, GRT_KERNEL_CONSTS);
    LLVMTypeRef et[5] = {k->i32, k->i32, k->i32, ct, k->ptr}, tt[2] = {k->i32, k->ptr};
    LLVMTypeRef entry = LLVMStructTypeInContext(k->ctx, et, 5, 0);
    LLVMValueRef *rows = calloc((size_t)set->n + 1, sizeof *rows);
    for (int i = 0; i < set->n; i++) {
        const KernelShape *s = &set->k[i];
        LLVMValueRef c[GRT_KERNEL_CONSTS];
        for (int j = 0; j < GRT_KERNEL_CONSTS; j++)
            c[j] = LLVMConstInt(k->i64, (unsigned long long)s->c[j], 1);
        LLVMValueRef f[5] = {LLVMConstInt(k->i32, (unsigned)s->kind, 0), LLVMConstInt(k->i32, (unsigned)s->cols, 0),
                             LLVMConstInt(k->i32, (unsigned)s->flags, 0), LLVMConstArray(k->i64, c, GRT_KERNEL_CONSTS),
                             fns[i]};
        rows[i] = LLVMConstNamedStruct(entry, f, 5);
    }
    LLVMTypeRef at = LLVMArrayType(entry, (unsigned)set->n);
    LLVMValueRef arr = LLVMAddGlobal(k->mod, at, "galvc_kernel_list");
    LLVMSetInitializer(arr, LLVMConstArray(entry, rows, (unsigned)set->n));
    LLVMSetLinkage(arr, LLVMInternalLinkage);
    LLVMSetGlobalConstant(arr, 1);
    LLVMValueRef tf[2] = {LLVMConstInt(k->i32, (unsigned)set->n, 0), arr};
    LLVMValueRef table = LLVMAddGlobal(k->mod, LLVMStructTypeInContext(k->ctx, tt, 2, 0), "galvc_kernels");
    LLVMSetInitializer(table, LLVMConstStructInContext(k->ctx, tf, 2, 0));
    LLVMSetGlobalConstant(table, 1);
    free(rows);
}

/* The module of set's kernels for target machine tm, through map, verified and optimized (O3). */
static LLVMModuleRef build_module(LLVMContextRef ctx, LLVMTargetMachineRef tm, const KernelSet *set, const KMap *map,
                                  Diag *d) {
    LLVMModuleRef mod = LLVMModuleCreateWithNameInContext("galvc_kernels", ctx);
    char *triple = LLVMGetTargetMachineTriple(tm);
    LLVMSetTarget(mod, triple);
    LLVMDisposeMessage(triple);
    LLVMTargetDataRef layout = LLVMCreateTargetDataLayout(tm);
    LLVMSetModuleDataLayout(mod, layout);
    LLVMDisposeTargetData(layout);
    KB k = builder(ctx, mod, map);
    LLVMValueRef *fns = calloc((size_t)set->n + 1, sizeof *fns);
    for (int i = 0; i < set->n; i++)
        fns[i] = kgen_kernel(&k, &set->k[i]);
    if (map == &kmap_x86) add_table(&k, set, fns);
    free(fns);
    LLVMDisposeBuilder(k.b);
    char *msg = NULL;
    if (LLVMVerifyModule(mod, LLVMReturnStatusAction, &msg)) die("generated kernels do not verify: %s", msg);
    LLVMDisposeMessage(msg);
    LLVMPassBuilderOptionsRef opts = LLVMCreatePassBuilderOptions();
    LLVMErrorRef err = LLVMRunPasses(mod, "default<O3>", tm, opts);
    LLVMDisposePassBuilderOptions(opts);
    if (err) {
        char *e = LLVMGetErrorMessage(err);
        diag_plain(d, "LLVM's O3 pipeline failed: %s", e);
        LLVMDisposeErrorMessage(e);
        LLVMDisposeModule(mod);
        return NULL;
    }
    return mod;
}

/* Write mod as IR, or as tm's assembly or object, to out. */
static bool write_module(FILE *out, LLVMTargetMachineRef tm, LLVMModuleRef mod, KernelOutput what, Diag *d) {
    if (what == KOUT_LLVM) {
        char *s = LLVMPrintModuleToString(mod);
        bool ok = fputs(s, out) >= 0;
        LLVMDisposeMessage(s);
        return ok;
    }
    LLVMMemoryBufferRef buf;
    char *err = NULL;
    if (LLVMTargetMachineEmitToMemoryBuffer(tm, mod, what == KOUT_OBJ ? LLVMObjectFile : LLVMAssemblyFile, &err,
                                            &buf)) {
        diag_plain(d, "LLVM's code generator failed: %s", err);
        LLVMDisposeMessage(err);
        return false;
    }
    size_t n = LLVMGetBufferSize(buf);
    bool ok = fwrite(LLVMGetBufferStart(buf), 1, n, out) == n;
    LLVMDisposeMemoryBuffer(buf);
    return ok;
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

bool kernels_write(FILE *out, const KernelSet *set, KernelOutput what, const char *gpu_arch, double *ms, Diag *d) {
    double t0 = now_ms();
    init_targets();
    const char *gpu = what == KOUT_PTX ? gpu_arch ? gpu_arch : "sm_90" : NULL;
    LLVMTargetMachineRef tm = target_machine(gpu, d);
    if (!tm) return false;
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMModuleRef mod = build_module(ctx, tm, set, gpu ? &kmap_ptx : &kmap_x86, d);
    bool ok = mod && write_module(out, tm, mod, what, d);
    if (mod) LLVMDisposeModule(mod);
    LLVMContextDispose(ctx);
    LLVMDisposeTargetMachine(tm);
    if (ms) *ms = now_ms() - t0;
    return ok;
}
