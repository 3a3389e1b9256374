/* kernel_place.h — where generated_kernels.c's buffers live and how it waits
 * for a kernel: on the host (kernels_host.c: malloc, nothing to wait for) or
 * on a GPU (tests/gpu/kernels_cuda.c: managed memory that the GPU's kernels
 * and the host's references both reach, each launch awaited before anything
 * reads what it wrote). One check, two places: the host object's kernels and
 * the PTX's run the same cases against the same references. */
#ifndef KERNEL_PLACE_H
#define KERNEL_PLACE_H

#include <stddef.h>

typedef struct KernelPlace {
    const char *name;             /* "host", "cuda" */
    void (*start)(void);          /* before the first kernel (the GPU: exit 77 without one) */
    void *(*alloc)(size_t bytes); /* NULL when out of memory */
    void (*free)(void *p);
    void (*wait)(void); /* after each kernel: its writes are visible to the host */
} KernelPlace;

extern const KernelPlace kernel_place;

#endif
