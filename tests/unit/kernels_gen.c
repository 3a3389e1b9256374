/* kernels_gen.c — writes the host object that tests/runtime/generated_kernels.c
 * links: every generated kernel kind, with and without a bias where it takes
 * one, at column counts a vector loop can get wrong (1, below, at and past
 * the vector width, odd, a tail of 3 after 96 lanes). */
#include "backend/backend.h"
#include "runtime/galvrt.h"

#include <stdio.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: kernels_gen OUT.o\n");
        return 2;
    }
    static const int cols[] = {1, 3, 7, 8, 13, 64, 99, 771};
    KernelSet set = {0};
    for (int kind = 0; kind < GRT_K_COUNT; kind++)
        for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
            kernels_add(&set, kind, cols[i], 0);
            if (kind == GRT_K_LAYERNORM_FWD || kind == GRT_K_LAYERNORM_BWD || kind == GRT_K_BIAS_GELU_FWD ||
                kind == GRT_K_BIAS_GELU_BWD)
                kernels_add(&set, kind, cols[i], GRT_KF_BIAS);
        }
    Diag d;
    diag_init(&d, stderr);
    FILE *f = fopen(argv[1], "wb");
    if (!f) return perror(argv[1]), 1;
    bool ok = kernels_write(f, &set, KOUT_OBJ, NULL, NULL, &d);
    return fclose(f) == 0 && ok ? 0 : 1;
}
