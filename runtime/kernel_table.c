/* kernel_table.c — the registry of the kernels galvc generated for the
 * program's shapes (galvrt.h, "generated kernels"): the layers ask it for a
 * kernel by (kind, columns, flags) and run the reference when it has none.
 * A program has a few dozen kernels at most, so a linear search does. */
#include "galvrt.h"

#include <stdlib.h>
#include <string.h>

static const GrtKernelTable *table;

void grt_kernels_use(const GrtKernelTable *t) {
    const char *ref = getenv("GALVRT_REFERENCE_KERNELS");
    table = ref && *ref && strcmp(ref, "0") != 0 ? NULL : t;
}

void (*grt_kernel_find_sized(GrtKernelKind kind, int cols, int flags, int64_t c0, int64_t c1, int64_t c2))(void) {
    for (int i = 0; table && i < table->n; i++) {
        const GrtKernel *k = &table->kernels[i];
        if (k->kind == (int32_t)kind && k->cols == cols && k->flags == flags && k->c[0] == c0 && k->c[1] == c1 &&
            k->c[2] == c2)
            return k->fn;
    }
    return NULL;
}

void (*grt_kernel_find(GrtKernelKind kind, int cols, int flags))(void) {
    return grt_kernel_find_sized(kind, cols, flags, 0, 0, 0);
}

const GrtKernel *grt_kernel_of(void (*fn)(void)) {
    for (int i = 0; fn && table && i < table->n; i++)
        if (table->kernels[i].fn == fn) return &table->kernels[i];
    return NULL;
}
