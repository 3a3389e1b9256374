/* profiler_main.c — galvc-profiler, the program `galvc profile` runs under
 * mpirun: every rank measures the machine together (runtime/profiler.c), and
 * rank 0 writes what they measured as a galvc profile, the JSON format the
 * planner reads (docs/profile-format.md), its keys the reader's
 * (hw/profile_schema.h). It writes with plain printf so the runtime side
 * needs no JSON library; galvc reads the file with jansson.
 *
 *   mpirun -np N galvc-profiler [--quick] [--shape C,H,hd,F,T,V] -o profile.json
 *
 * The same file built with runtime/cuda/profiler_cuda.c and linked with
 * libgalvrt_cuda is galvc-profiler-cuda (`galvc profile --target cuda`):
 * the GPU's figures, measured by grt_cuda_profile, which only it defines.
 *
 * Exit status: 0 success, 1 the file could not be written or (CUDA) no GPU,
 * 2 bad usage. */
#include "galvrt.h"
#include "hw/profile_schema.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The CUDA side's profiler (galvrt_cuda.h): defined in galvc-profiler-cuda only. */
void grt_cuda_profile(GrtComm *world, int quick, const GrtProfileShape *shape, const char *kernels, GrtProfile *p)
    __attribute__((weak));

static const char usage[] = "usage: galvc-profiler [--quick] [--shape C,H,hd,F,T,V] [--kernels LIB.so] -o FILE   (run "
                            "under mpirun; see galvc profile)\n";

static const char *const kind_names[] = {[GRT_EMBEDDING] = "embedding", [GRT_BLOCK] = "block", [GRT_NORM] = "norm",
                                         [GRT_HEAD] = "head"};
static const char *const op_names[] = {[GRT_OP_ALLREDUCE] = "allreduce", [GRT_OP_ALLGATHER] = "allgather",
                                       [GRT_OP_REDUCESCATTER] = "reducescatter", [GRT_OP_P2P] = "p2p"};

/* A profile key and its colon, for printf formats: KEY(RATE) is "\"rate\": ". */
#define KEY(k) "\"" PROFILE_KEY_##k "\": "

/* {"fixed_s": ..., "rate": ...} */
static void put_fit(FILE *f, const GrtProfileFit *fit) {
    fprintf(f, "{" KEY(FIXED_S) "%.6g, " KEY(RATE) "%.6g}", fit->fixed_s, fit->rate);
}

/* The peaks: the CPU runtime computes every precision in fp32, so the three
 * are the one measured; a GPU's fp32 and bf16 are its best GEMMs of each
 * (fp16 keeps the datasheet's), and its GEMM rates at the model's shapes. */
static void put_peaks(FILE *f, const GrtProfile *p) {
    if (!p->device) {
        fprintf(f, "  " KEY(PEAK_FLOPS) "{\"fp32\": %.6g, \"bf16\": %.6g, \"fp16\": %.6g},\n", p->gemm_flops,
                p->gemm_flops, p->gemm_flops);
        return;
    }
    fprintf(f, "  " KEY(PEAK_FLOPS) "{\"fp32\": %.6g, \"bf16\": %.6g},\n", p->gemm_flops, p->bf16_flops);
    fprintf(f, "  " KEY(GEMM_RATES) "{\"" PROFILE_GEMM_FP32 "\": %.6g, \"" PROFILE_GEMM_TF32 "\": %.6g, \"" PROFILE_GEMM_BF16
               "\": %.6g},\n", p->gemm_rates[GRT_GEMM_FP32], p->gemm_rates[GRT_GEMM_TF32], p->gemm_rates[GRT_GEMM_BF16]);
}

/* The profile as JSON (docs/profile-format.md). */
static void write_profile(FILE *f, const GrtProfile *p) {
    fprintf(f, "{\n  " KEY(FORMAT) "\"" PROFILE_FORMAT "\",\n  " KEY(VERSION) "%d,\n  " KEY(DEVICE) "\"%s\",\n",
            PROFILE_VERSION, p->device ? p->device : "cpu");
    if (p->device) fprintf(f, "  " KEY(BLAS) "\"%s\",\n", p->blas);
    else fprintf(f, "  " KEY(BLAS) "\"OpenBLAS %s\",\n", grt_blas_core());
    put_peaks(f, p);
    fprintf(f, "  " KEY(GEMM_EFFICIENCY) "%.4f,\n", p->gemm_efficiency);
    fprintf(f, "  " KEY(MEM_BANDWIDTH) "%.6g,\n", p->mem_bandwidth);
    if (p->overlap_slowdown >= 1) fprintf(f, "  " KEY(OVERLAP_SLOWDOWN) "%.4f,\n", p->overlap_slowdown);
    if (p->ranks > 1) fprintf(f, "  " KEY(SYNC_OVERHEAD) "%.6g,\n", p->sync_overhead_s);
    if (p->link_bandwidth > 0)
        fprintf(f, "  " KEY(INTRA) "{" KEY(BANDWIDTH) "%.6g, " KEY(LATENCY) "%.6g},\n", p->link_bandwidth,
                p->link_latency_s);
    fprintf(f, "  " KEY(LAYERS) "[");
    for (int i = 0; i < p->n_layers; i++) {
        const GrtProfileLayer *l = &p->layers[i];
        fprintf(f, "%s\n    {" KEY(KIND) "\"%s\", " KEY(TP) "%d, " KEY(FORWARD), i ? "," : "", kind_names[l->kind],
                l->tp);
        put_fit(f, &l->forward);
        fprintf(f, ", " KEY(BACKWARD));
        put_fit(f, &l->backward);
        fputc('}', f);
    }
    fprintf(f, "\n  ],\n  " KEY(COLLECTIVES) "[");
    for (int i = 0; i < p->n_collectives; i++) {
        const GrtProfileCollective *c = &p->collectives[i];
        fprintf(f,
                "%s\n    {" KEY(OP) "\"%s\", " KEY(GROUP) "%d, " KEY(CONSECUTIVE) "%s, "
                KEY(BUS_BANDWIDTH) "%.6g, " KEY(LATENCY) "%.6g}",
                i ? "," : "", op_names[c->op], c->group, c->consecutive ? "true" : "false", c->bus_bandwidth,
                c->latency_s);
    }
    fprintf(f, "\n  ]\n}\n");
}

/* Time the layers with the generated kernels in the shared library at path
 * (galvc profile builds it from the model), as the program will run them. */
static void use_kernels(const char *path) {
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    const GrtKernelTable *t = lib ? dlsym(lib, "galvc_kernels") : NULL;
    if (!t) {
        char msg[600];
        snprintf(msg, sizeof msg, "cannot use the kernels in '%s': %s", path, dlerror());
        grt_abort(msg, 1);
    }
    grt_kernels_use(t);
}

/* Read the options, measure on every rank, write the profile from rank 0. */
int main(int argc, char **argv) {
    const char *output = NULL, *kernels = NULL;
    int quick = 0;
    GrtProfileShape shape, *shaped = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) quick = 1;
        else if (strcmp(argv[i], "--shape") == 0 && i + 1 < argc) {
            GrtProfileShape *z = &shape;
            char tail;
            if (sscanf(argv[++i], "%d,%d,%d,%d,%d,%d%c", &z->C, &z->H, &z->hd, &z->F, &z->T, &z->V, &tail) != 6 ||
                z->C < 1 || z->H < 1 || z->hd < 1 || z->F < 1 || z->T < 1 || z->V < 1) {
                fprintf(stderr, "galvc-profiler: bad --shape '%s'\n%s", argv[i], usage);
                return 2;
            }
            shaped = z;
        }
        else if (strcmp(argv[i], "--kernels") == 0 && i + 1 < argc) kernels = argv[++i];
        else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) output = argv[++i];
        else {
            fprintf(stderr, "galvc-profiler: unknown argument '%s'\n%s", argv[i], usage);
            return 2;
        }
    }
    if (!output) {
        fprintf(stderr, "galvc-profiler: no output file (-o FILE)\n%s", usage);
        return 2;
    }
    GrtComm *world = grt_init(&argc, &argv);
    int rank = grt_rank(world);
    int local = grt_local_ranks(grt_size(world));
    grt_set_threads(local);
    grt_pool_start(grt_pool_threads_for(local)); /* the row kernels' threads, as the program has them */
    if (kernels && !grt_cuda_profile) use_kernels(kernels); /* the CUDA profiler loads its own */
    /* open the output first: a path that cannot be written fails now, not after the measurements */
    FILE *f = NULL;
    if (rank == 0 && !(f = fopen(output, "w"))) {
        char msg[512];
        snprintf(msg, sizeof msg, "cannot write '%s': %s", output, strerror(errno));
        grt_abort(msg, 1);
    }
    char note[256];
    if (rank == 0 && !grt_cuda_profile) /* what the GEMM figures were measured with */
        fprintf(stderr, "galvc profile: BLAS: OpenBLAS %s kernels%s%s\n", grt_blas_core(),
                grt_blas_note(note, sizeof note) ? "; " : "", grt_blas_note(note, sizeof note) ? note : "");
    static GrtProfile profile; /* large: two tables of entries */
    if (grt_cuda_profile) grt_cuda_profile(world, quick, shaped, kernels, &profile);
    else grt_profile_measure(world, quick, shaped, &profile);
    if (rank == 0) {
        write_profile(f, &profile);
        if (fclose(f) != 0) {
            char msg[512];
            snprintf(msg, sizeof msg, "cannot write '%s': %s", output, strerror(errno));
            grt_abort(msg, 1);
        }
        fprintf(stderr, "wrote %s\n", output);
    }
    grt_finalize();
    return 0;
}
