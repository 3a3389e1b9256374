/* kernels_gen.c — writes the host object that tests/runtime/generated_kernels.c
 * links: every generated kernel kind, in each of its variants (bias,
 * positions, causal mask, momentum, Nesterov), at column counts a vector loop can get wrong (1, below, at and past
 * the vector width, odd, a tail of 3 after 96 lanes), with the plan constants
 * below (the test reads them back from the table).
 *   kernels_gen OUT.o          the host object (x86-64, through libLLVM)
 *   kernels_gen --cuda OUT.c   the same kernels for the CUDA target: the C file
 *                              --target cuda builds (PTX, launch stubs, table),
 *                              which tests/gpu/kernels_cuda.c runs on a GPU */
#include "backend/backend.h"
#include "runtime/galvrt.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    bool cuda = argc == 3 && !strcmp(argv[1], "--cuda");
    if (argc != 2 && !cuda) {
        fprintf(stderr, "usage: kernels_gen OUT.o | kernels_gen --cuda OUT.c\n");
        return 2;
    }
    const char *path = argv[argc - 1];
    static const int cols[] = {1, 3, 7, 8, 13, 64, 99, 771};
    /* each kind's variants: flags 0 and these */
    static const int variants[GRT_K_COUNT][2] = {
        [GRT_K_LAYERNORM_FWD] = {GRT_KF_BIAS},
        [GRT_K_LAYERNORM_BWD] = {GRT_KF_BIAS},
        [GRT_K_RESIDUAL] = {GRT_KF_BIAS},
        [GRT_K_BIAS_GELU_FWD] = {GRT_KF_BIAS},
        [GRT_K_BIAS_GELU_BWD] = {GRT_KF_BIAS},
        [GRT_K_EMBED_FWD] = {GRT_KF_POS},
        [GRT_K_EMBED_BWD] = {GRT_KF_POS},
        [GRT_K_ATT_SOFTMAX_FWD] = {GRT_KF_CAUSAL},
        [GRT_K_ATT_SOFTMAX_BWD] = {GRT_KF_CAUSAL},
        [GRT_K_ATT_SOFTMAX16_FWD] = {GRT_KF_CAUSAL},
        [GRT_K_ATT_SOFTMAX16_BWD] = {GRT_KF_CAUSAL},
        [GRT_K_T5_SOFTMAX_FWD] = {GRT_KF_CAUSAL},
        [GRT_K_T5_SOFTMAX_BWD] = {GRT_KF_CAUSAL},
        [GRT_K_SGD] = {GRT_KF_MOMENTUM, GRT_KF_MOMENTUM | GRT_KF_NESTEROV},
        [GRT_K_DROPOUT] = {GRT_KF_RESIDUAL},
        [GRT_K_BF16] = {GRT_KF_WIDE},
    };
    KernelSet set = {0};
    for (int kind = 0; kind < GRT_K_COUNT; kind++)
        for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
            int C = cols[i];
            int64_t c[GRT_KERNEL_CONSTS] = {0};
            switch (kind) { /* sequence 5, a shard of 6 vocabulary rows, 3 heads, odd strides */
            case GRT_K_EMBED_FWD:
            case GRT_K_EMBED_BWD: c[0] = 5, c[1] = 6; break;
            case GRT_K_ROPE_FWD:
            case GRT_K_ROPE_BWD: c[0] = 5, c[1] = 3, c[2] = 3 * 2 * C + 5; break;
            case GRT_K_ATT_SOFTMAX_FWD:
            case GRT_K_ATT_SOFTMAX16_FWD: c[0] = 8; break;
            case GRT_K_DROPOUT: c[0] = 5; break;
            case GRT_K_PATCH_FWD:
            case GRT_K_PATCH_BWD: c[0] = 5; break; /* the class token and 4 patches */
            case GRT_K_WIN_GATHER:
            case GRT_K_WIN_SCATTER: c[0] = 6, c[1] = 3, c[2] = 1; break;     /* a 6 x 6 grid, 3 x 3 windows, shift 1 */
            case GRT_K_WIN_SOFTMAX_FWD: c[0] = 3, c[1] = 2, c[2] = 5; break; /* 3 heads, 2 windows, hd 5 */
            case GRT_K_MERGE_GATHER:
            case GRT_K_MERGE_SCATTER: c[0] = 4; break; /* a 4 x 4 grid: 4 merged tokens an image */
            case GRT_K_XENT_FWD: c[0] = C + 3; break;
            case GRT_K_XENT_BWD: c[0] = 3 * C; break;
            }
            kernels_add_sized(&set, kind, C, 0, c[0], c[1], c[2]);
            for (int v = 0; v < 2 && variants[kind][v]; v++)
                kernels_add_sized(&set, kind, C, variants[kind][v], c[0], c[1], c[2]);
        }
    Diag d;
    diag_init(&d, stderr);
    FILE *f = fopen(path, "wb");
    if (!f) return perror(path), 1;
    bool ok = cuda ? emit_cuda_kernels(f, &set, &d) : kernels_write(f, &set, KOUT_OBJ, NULL, NULL, &d);
    return fclose(f) == 0 && ok ? 0 : 1;
}
