/* sgemm.c — OpenBLAS's own sgemm throughput on the GEMM shapes of one
 * GPT-2 124M training step: for each linear layer (QKV 768 -> 2304,
 * attention output 768 -> 768, MLP up 768 -> 3072 and down 3072 -> 768,
 * twelve of each, and the tied head 768 -> 50257) the forward product and
 * the two backward ones (the input's gradient, N x C x OC, and the weight's,
 * OC x C x N), each timed as often as a step runs it; prints GFLOP/s over
 * all of them (so each shape weighs by its FLOPs), on the thread count in
 * OPENBLAS_NUM_THREADS.
 *   sgemm [N]   N: tokens a rank holds (256: batch 4 x 64 on one rank) */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    /* C (in), OC (out), layers of that shape */
    static const int shapes[][3] = {{768, 2304, 12}, {768, 768, 12}, {768, 3072, 12}, {3072, 768, 12}, {768, 50257, 1}};
    int N = argc > 1 ? atoi(argv[1]) : 256;
    if (N <= 0) return 2;
    double flops = 0, seconds = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int C = shapes[s][0], OC = shapes[s][1], count = shapes[s][2];
        float *x = calloc((size_t)N * C, 4), *w = calloc((size_t)OC * C, 4), *y = calloc((size_t)N * OC, 4);
        float *dx = calloc((size_t)N * C, 4), *dw = calloc((size_t)OC * C, 4);
        if (!x || !w || !y || !dx || !dw) return 1;
        for (size_t i = 0; i < (size_t)N * C; i++) x[i] = (float)(i % 7) * 0.1f;
        for (size_t i = 0; i < (size_t)OC * C; i++) w[i] = (float)(i % 5) * 0.1f;
        int reps = count * 3 + 1;
        for (int r = 0; r < reps; r++) {
            double t0 = now_s();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1, x, C, w, C, 0, y, OC);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1, y, OC, w, C, 0, dx, C);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1, y, OC, x, C, 1, dw, C);
            if (r == 0) continue; /* warm-up */
            seconds += now_s() - t0;
            flops += 3 * 2.0 * N * C * OC;
        }
        free(x), free(w), free(y), free(dx), free(dw);
    }
    printf("%.1f\n", flops / seconds / 1e9);
    return 0;
}
