/* galvrt_cuda.h — what a program built with --target cuda calls in
 * libgalvrt_cuda: the file galvc generates for it (the plan's PTX, the table
 * of its kernels and a stub per kernel) names these two. No CUDA header is
 * needed to include it. */
#ifndef GALVRT_CUDA_H
#define GALVRT_CUDA_H

#include "galvrt.h"

/* GrtTarget.start of the CUDA target: the rank's GPU, its memory arena,
 * streams and cuBLAS, the PTX loaded; with no GPU or no driver, one line
 * on stderr and exit 77, on this rank alone (runtime/cuda/device.c). Then,
 * over every rank (once grt_init has run), the collectives: NCCL or
 * host-staged MPI (comm_cuda.c). */
const GrtDevice *grt_cuda_start(const GrtTarget *t, int rank);

/* Launch galvc_target's kernel `index` on rows [0, rows) of `cols` columns,
 * on the compute stream: a block per row, its threads striding over the
 * columns (backend/kernel_ptx.c). args: a pointer to each of the kernel's
 * arguments, rows first, as cuLaunchKernel takes them (runtime/cuda/module.c). */
void grt_cuda_launch(int index, int64_t rows, int cols, void **args);

/* `galvc profile --target cuda` (profiler_cuda.c, linked into
 * galvc-profiler-cuda): measure this machine's GPUs on every rank of world
 * into p (docs/profile-format.md); quick: small sizes; shape: the model's
 * layer shape (NULL: GPT-2 small's); kernels: the shared library of the
 * model's generated kernels (galvc profile builds it; NULL: no layers are
 * timed). Without a GPU: a located refusal and exit 1. */
void grt_cuda_profile(GrtComm *world, int quick, const GrtProfileShape *shape, const char *kernels, GrtProfile *p);

#endif
