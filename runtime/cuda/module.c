/* module.c — the generated kernels on the GPU: the program's PTX (galvc
 * generated it for the plan's shapes; backend/kernel_ptx.c) loaded once at
 * start and each kernel found by its name, through the CUDA driver's entry
 * points that the runtime library exposes (cudaGetDriverEntryPointByVersion),
 * so nothing links libcuda and no nvcc is involved; <cuda.h> gives the types.
 * A launch is kernel_ptx.c's mapping: a block per row (gridDim.x = rows),
 * its threads striding over the columns. */
#include "cuda_device.h"

#include <cuda.h>
#include <stdio.h>

typedef CUresult LoadDataEx(CUmodule *, const void *, unsigned, CUjit_option *, void **);
typedef CUresult GetFunction(CUfunction *, CUmodule, const char *);
typedef CUresult LaunchKernel(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                              CUstream, void **, void **);
typedef CUresult GetErrorName(CUresult, const char **);

enum { DRIVER_API = 12000, MAX_THREADS = 256, JIT_LOG = 8192 };

static struct {
    LoadDataEx *load;
    GetFunction *function;
    LaunchKernel *launch;
    GetErrorName *error_name;
    CUfunction *fn; /* [n]: galvc_kernels' entry i */
    int n;
} mod;

/* The driver's function `name` (as of the CUDA 12 API). */
static void *entry(const char *name) {
    void *p = NULL;
    enum cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
    CUDA_CHECK(cudaGetDriverEntryPointByVersion(name, &p, DRIVER_API, cudaEnableDefault, &found));
    if (found != cudaDriverEntryPointSuccess || !p) cuda_fail(name, "not found among the driver's entry points", __FILE__, __LINE__);
    return p;
}

/* Stop every rank when a driver call failed. */
static void driver_check(CUresult r, const char *call, const char *detail) {
    if (r == CUDA_SUCCESS) return;
    const char *name = "unknown error";
    if (mod.error_name) mod.error_name(r, &name);
    char msg[JIT_LOG + 256];
    snprintf(msg, sizeof msg, "%s%s%s", name, detail && *detail ? ": " : "", detail ? detail : "");
    cuda_fail(call, msg, __FILE__, __LINE__);
}

void cuda_module_load(const GrtTarget *t) {
    mod.error_name = (GetErrorName *)entry("cuGetErrorName");
    mod.load = (LoadDataEx *)entry("cuModuleLoadDataEx");
    mod.function = (GetFunction *)entry("cuModuleGetFunction");
    mod.launch = (LaunchKernel *)entry("cuLaunchKernel");
    static char log[JIT_LOG];
    CUjit_option opt[2] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
    void *val[2] = {log, (void *)(size_t)sizeof log};
    CUmodule m;
    driver_check(mod.load(&m, t->ptx, 2, opt, val), "cuModuleLoadDataEx (the generated PTX)", log);
    mod.n = t->n_kernels;
    mod.fn = grt_alloc(sizeof *mod.fn * (size_t)(mod.n + 1));
    for (int i = 0; i < mod.n; i++) driver_check(mod.function(&mod.fn[i], m, t->kernel_names[i]), "cuModuleGetFunction",
                                                 t->kernel_names[i]);
}

void grt_cuda_launch(int index, int64_t rows, int cols, void **args) {
    if (index < 0 || index >= mod.n) grt_abort("internal error: grt_cuda_launch: no such kernel", 1);
    if (rows <= 0) return;
    if (rows > 0x7fffffff) grt_abort("internal error: grt_cuda_launch: more rows than a grid has blocks", 1);
    int threads = (cols + 31) / 32 * 32; /* whole warps, as kernel_ptx.c's sums need */
    threads = threads < 32 ? 32 : threads > MAX_THREADS ? MAX_THREADS : threads;
    driver_check(mod.launch(mod.fn[index], (unsigned)rows, 1, 1, (unsigned)threads, 1, 1, 0, (CUstream)cuda.compute,
                            args, NULL),
                 "cuLaunchKernel", NULL);
}
