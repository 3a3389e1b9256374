/* kernels_cuda.c — tests/runtime/generated_kernels.c's place on a GPU
 * (kernel_place.h): the row (a) of the GPU check. Linked with the CUDA
 * target's kernel file that `kernels_gen --cuda` writes (the same kernels,
 * shapes and plan constants as the host object's, as PTX, with the launch
 * stubs --target cuda programs use), it runs every generated kernel on the
 * GPU against libgalvrt's CPU reference kernels, on the same random cases.
 *
 * The buffers are managed memory, which the GPU's kernels and the host's
 * references both reach (the program itself uses none: its arena is plain
 * device memory); each launch is awaited before anything reads its output.
 * Without a GPU the device start says so and exits 77, as a program does. */
#include "galvrt_cuda.h"
#include "kernel_place.h"

#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>

/* Stop with the call's name and the CUDA error. */
static void check(cudaError_t e, const char *call) {
    if (e == cudaSuccess) return;
    fprintf(stderr, "kernels_cuda: %s failed: %s: %s\n", call, cudaGetErrorName(e), cudaGetErrorString(e));
    exit(1);
}

/* The GPU, its streams, cuBLAS and the PTX, as a program starts them; then say which GPU. */
static void start(void) {
    galvc_target.start(&galvc_target, 0);
    int dev = 0, driver = 0, runtime = 0;
    struct cudaDeviceProp prop;
    check(cudaGetDevice(&dev), "cudaGetDevice");
    check(cudaGetDeviceProperties(&prop, dev), "cudaGetDeviceProperties");
    check(cudaDriverGetVersion(&driver), "cudaDriverGetVersion");
    check(cudaRuntimeGetVersion(&runtime), "cudaRuntimeGetVersion");
    printf("device %d: %s, compute capability %d.%d, %.1f GiB; driver API %d, runtime %d; %d kernels' PTX loaded\n",
           dev, prop.name, prop.major, prop.minor, prop.totalGlobalMem / 1073741824.0, driver, runtime,
           galvc_target.n_kernels);
}

static void *alloc(size_t bytes) {
    void *p = NULL;
    check(cudaMallocManaged(&p, bytes, cudaMemAttachGlobal), "cudaMallocManaged");
    return p;
}

static void release(void *p) { check(cudaFree(p), "cudaFree"); }

/* Every launch so far done, its faults reported. */
static void await_kernels(void) { check(cudaDeviceSynchronize(), "cudaDeviceSynchronize (after a generated kernel)"); }

const KernelPlace kernel_place = {"cuda", start, alloc, release, await_kernels};
