/* backend.h — turning a plan into a program: emit_c writes the per-rank
 * training program in C, build compiles and links it against libgalvrt;
 * emit_svg draws the plan. */
#ifndef GALVC_BACKEND_H
#define GALVC_BACKEND_H

#include "ir/ir.h"
#include "runtime/galvrt.h"

/* Whether the runtime runs the plan; the reasons go to d when it does not
 * (a Diag with no output stream keeps quiet). */
bool emit_c_runs(const Spec *spec, const Plan *plan, Diag *d);

/* Write train.c for the plan. False (with diagnostics) when the plan or the
 * model uses something the runtime does not train yet. */
bool emit_c(FILE *out, const Spec *spec, const Plan *plan, int64_t devices, const char *source_name, Diag *d);

/* Write the plan as one standalone SVG: the timeline of a step, memory per
 * stage, each layer's strategy (emit_svg.c). False on a write error. */
bool emit_svg(FILE *out, const Spec *spec, const Plan *plan, const Timeline *tl, int64_t devices);

/* The CUDA target's kernel file for the plan (emit_cuda.c): their PTX, a
 * stub launching each, the table galvc_kernels, galvc_target. */
bool emit_cuda(FILE *out, const Spec *spec, const Plan *plan, Diag *d);

/* Where build finds the runtime: its header folder and its library. */
typedef struct BuildConfig {
    const char *cc;          /* the C compiler (mpicc wraps MPI's flags) */
    const char *include_dir; /* galvrt.h */
    const char *library;     /* libgalvrt.a */
    const char *extra_libs;  /* OpenBLAS and the rest, as linker flags */
    const char *cflags;      /* extra compiler flags the runtime was built with (the sanitizers), or NULL */
    bool cuda;               /* --target cuda: link the CUDA side and the plan's PTX */
    const char *cuda_library;     /* libgalvrt_cuda.a, or NULL: galvc was built without the CUDA toolkit */
    const char *cuda_include_dir; /* galvrt_cuda.h */
    const char *cuda_libs;        /* the CUDA runtime and cuBLAS, as linker flags */
    bool keep;               /* keep the generated train.c (and kernels.o) beside the output */
    bool verbose;            /* say what the build does (the kernels' generation time) */
} BuildConfig;

/* Emit train.c into a private temporary file, compile and link it into
 * `output`; 0 on success, else an exit status. */
int build(const Spec *spec, const Plan *plan, int64_t devices, const char *source_name, const char *output,
          const BuildConfig *cfg, Diag *d);

/* ---- kernels (backend/kernels.c): generated through libLLVM ------------ */

/* One kernel a plan needs: a GrtKernelKind (runtime/galvrt.h) at a column
 * count (the hidden size, or the MLP width of a TP shard), GRT_KF_ flags,
 * and the other sizes the plan fixes, each kind's own (its 'c' parameters
 * in kernel_ir.c's table: the sequence, heads, row strides), all built into
 * the code as constants. */
typedef struct KernelShape {
    int kind, cols, flags;
    int64_t c[GRT_KERNEL_CONSTS];
} KernelShape;

enum { KERNELS_MAX = 512 };
typedef struct KernelSet {
    int n;
    KernelShape k[KERNELS_MAX];
} KernelSet;

/* What to write: LLVM IR (the host's, optimized), host assembly, a host
 * object file (ELF, position-independent, exporting galvc_kernels), or PTX. */
typedef enum KernelOutput { KOUT_LLVM, KOUT_ASM, KOUT_OBJ, KOUT_PTX } KernelOutput;

/* Add a shape to set unless it is there already. */
void kernels_add(KernelSet *set, int kind, int cols, int flags);
/* The same for a kind with plan constants (KernelShape.c). */
void kernels_add_sized(KernelSet *set, int kind, int cols, int flags, int64_t c0, int64_t c1, int64_t c2);
/* The kernels the plan's layers run: each distinct shape once. */
void kernels_for_plan(const Spec *spec, const Plan *plan, KernelSet *set);
/* Generate set's kernels and write them to out as `what`; gpu_arch names the
 * PTX target ("sm_90", "sm_80"; NULL: sm_90). *ms (when not NULL) gets the
 * generation's wall time: IR, O3 and code generation. False (with a message
 * in d) when LLVM fails. */
bool kernels_write(FILE *out, const KernelSet *set, KernelOutput what, const char *gpu_arch, double *ms, Diag *d);
/* The CUDA target's kernel file for set's kernels (emit_cuda.c, what
 * emit_cuda writes for a plan's): their PTX, the stubs, the table. */
bool emit_cuda_kernels(FILE *out, const KernelSet *set, Diag *d);

#endif
