/* kernels_host.c — generated_kernels.c's place for the host object's
 * kernels (kernel_place.h): plain malloc, a kernel done when it returns. */
#include "kernel_place.h"

#include <stdlib.h>

static void nothing(void) {}

const KernelPlace kernel_place = {"host", nothing, malloc, free, nothing};
