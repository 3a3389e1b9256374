/* emit_cuda.c — the CUDA target's part of a program: one C file holding the
 * plan's kernels as PTX text (generated here through libLLVM's NVPTX
 * backend, backend/kernels.c), the table galvc_kernels the layers find
 * them in (runtime/galvrt.h), and for each kernel a stub with the kind's own
 * C type that launches it on the GPU (grt_cuda_launch), so the layers call
 * a GPU kernel exactly as they call a host one. It defines galvc_target,
 * which makes the runtime start the CUDA device. The C compiler builds it;
 * the GPU's driver compiles the PTX when the program starts: no nvcc. */
#include "kernel_gen.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* The PTX the program embeds: sm_80 (A100), which the driver also compiles for later GPUs (H100, H200). */
#define CUDA_PTX_ARCH "sm_80"

/* Each kind's stub: the galvrt.h type it must have (the compiler checks the
 * stub against it) and its parameters after rows. */
static const struct {
    const char *type, *params;
} stubs[GRT_K_COUNT] = {
    [GRT_K_LAYERNORM_FWD] = {"GrtLayerNormFwdFn", "float *out, float *mean, float *rstd, const float *inp, "
                                                  "const float *weight, const float *bias, float eps"},
    [GRT_K_LAYERNORM_BWD] = {"GrtLayerNormBwdFn", "float *dinp, float *dweight, float *dbias, const float *dout, "
                                                  "const float *inp, const float *weight, const float *mean, "
                                                  "const float *rstd"},
    [GRT_K_RMSNORM_FWD] = {"GrtRmsNormFwdFn", "float *out, float *rstd, const float *inp, const float *weight, float eps"},
    [GRT_K_RMSNORM_BWD] = {"GrtRmsNormBwdFn", "float *dinp, float *dweight, const float *dout, const float *inp, "
                                              "const float *weight, const float *rstd"},
    [GRT_K_RESIDUAL] = {"GrtResidualFn", "float *out, const float *a, const float *b, const float *bias"},
    [GRT_K_BIAS_GELU_FWD] = {"GrtBiasGeluFwdFn", "float *pre, float *act, const float *bias"},
    [GRT_K_BIAS_GELU_BWD] = {"GrtBiasGeluBwdFn", "float *dpre, const float *pre, const float *dact, float *dbias"},
    [GRT_K_SWIGLU_FWD] = {"GrtSwigluFwdFn", "float *out, const float *inp"},
    [GRT_K_SWIGLU_BWD] = {"GrtSwigluBwdFn", "float *dinp, const float *inp, const float *dout"},
    [GRT_K_EMBED_FWD] = {"GrtEmbedFwdFn", "float *out, const int32_t *tokens, const float *wte, const float *wpe, "
                                          "int64_t vocab_start"},
    [GRT_K_EMBED_BWD] = {"GrtEmbedBwdFn", "float *dwte, float *dwpe, const float *dout, const int32_t *tokens, "
                                          "int64_t vocab_start"},
    [GRT_K_ROPE_FWD] = {"GrtRopeFn", "float *x, const float *cs, const float *sn"},
    [GRT_K_ROPE_BWD] = {"GrtRopeFn", "float *x, const float *cs, const float *sn"},
    [GRT_K_ATT_SOFTMAX_FWD] = {"GrtAttSoftmaxFwdFn", "float *att, int64_t t0"},
    [GRT_K_ATT_SOFTMAX_BWD] = {"GrtAttSoftmaxBwdFn", "float *datt, const float *att, int64_t t0"},
    [GRT_K_ATT_SOFTMAX16_FWD] = {"GrtAttSoftmax16FwdFn", "float *att, void *bits, int64_t t0"},
    [GRT_K_ATT_SOFTMAX16_BWD] = {"GrtAttSoftmax16BwdFn", "const float *datt, const void *att, void *ds, int64_t t0"},
    [GRT_K_XENT_FWD] = {"GrtXentFwdFn", "float *losses, float *probs, const float *logits, const int32_t *targets"},
    [GRT_K_XENT_BWD] = {"GrtXentBwdFn", "float *dlogits, const float *probs, const int32_t *targets, float dloss, "
                                        "int64_t col0"},
    [GRT_K_SUMSQ] = {"GrtSumsqFn", "double *sums, const float *x"},
    [GRT_K_ADAMW] = {"GrtAdamFn", "float *param, const float *grad, float *m, float *v, float lr, float beta1, "
                                  "float beta2, float eps, float weight_decay, float grad_scale, float c1, float c2"},
    [GRT_K_ADAM] = {"GrtAdamFn", "float *param, const float *grad, float *m, float *v, float lr, float beta1, "
                                 "float beta2, float eps, float weight_decay, float grad_scale, float c1, float c2"},
    [GRT_K_DROPOUT] = {"GrtDropoutFn", "float *out, const float *a, const float *b, int64_t key, int64_t seq0, "
                                       "int64_t r0, int64_t e0, int64_t threshold, float scale"},
    [GRT_K_SGD] = {"GrtSgdFn", "float *param, const float *grad, float *buf, float lr, float momentum, "
                               "float weight_decay, float grad_scale"},
    [GRT_K_PATCH_FWD] = {"GrtPatchFwdFn", "float *out, const float *y, const float *cls, const float *pos"},
    [GRT_K_PATCH_BWD] = {"GrtPatchBwdFn", "float *dy, float *dcls, float *dpos, const float *dout"},
    [GRT_K_T5_SOFTMAX_FWD] = {"GrtT5SoftmaxFwdFn", "float *att, const float *bias, int64_t t0"},
    [GRT_K_T5_SOFTMAX_BWD] = {"GrtT5SoftmaxBwdFn", "float *datt, const float *att, float *dbias, int64_t t0"},
    [GRT_K_WIN_GATHER] = {"GrtWinPermuteFn", "float *dst, const float *src"},
    [GRT_K_WIN_SCATTER] = {"GrtWinPermuteFn", "float *dst, const float *src"},
    [GRT_K_WIN_SOFTMAX_FWD] = {"GrtWinSoftmaxFwdFn", "float *att, const float *bias, const float *mask"},
    [GRT_K_MERGE_GATHER] = {"GrtWinPermuteFn", "float *dst, const float *src"},
    [GRT_K_MERGE_SCATTER] = {"GrtWinPermuteFn", "float *dst, const float *src"},
    [GRT_K_BF16] = {"GrtBf16Fn", "void *dst, const float *src"},
    [GRT_K_BF16_WIDEN] = {"GrtBf16WidenFn", "float *dst, const void *src"},
    [GRT_K_BF16_KEEP] = {"GrtBf16KeepFn", "void *bits, float *x"},
};

/* "&rows, &a, &b, ...": the address of each parameter, for cuLaunchKernel. */
static void put_arg_addresses(FILE *out, const char *params) {
    fputs("&rows", out);
    for (const char *p = params; *p;) {
        const char *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        const char *name = end;
        while (name > p && (isalnum((unsigned char)name[-1]) || name[-1] == '_'))
            name--;
        fprintf(out, ", &%.*s", (int)(end - name), name);
        p = *end ? end + 1 : end;
    }
}

/* The PTX as a C string literal, a line of PTX a line of C. */
static void put_ptx(FILE *out, const char *ptx) {
    fputs("static const char ptx[] =\n", out);
    while (*ptx) {
        fputs("    \"", out);
        for (; *ptx && *ptx != '\n'; ptx++) {
            if (*ptx == '"' || *ptx == '\\') fputc('\\', out);
            if (*ptx == '\t') fputs("\\t", out);
            else fputc(*ptx, out);
        }
        fputs("\\n\"\n", out);
        if (*ptx) ptx++;
    }
    fputs("    \"\";\n", out);
}

/* Kernel i's stub: declared with its kind's type, then defined to launch it. */
static void put_stub(FILE *out, const KernelShape *s, int i) {
    fprintf(out, "static %s k%d;\nstatic void k%d(int64_t rows, %s) {\n", stubs[s->kind].type, i, i, stubs[s->kind].params);
    fprintf(out, "    grt_cuda_launch(%d, rows, %d, (void *[]){", i, s->cols);
    put_arg_addresses(out, stubs[s->kind].params);
    fputs("});\n}\n", out);
}

/* The plan's kernels as PTX for CUDA_PTX_ARCH, in memory (malloc'd), or NULL. */
static char *plan_ptx(const KernelSet *set, Diag *d) {
    char *ptx = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&ptx, &n);
    if (!f) return NULL;
    bool ok = kernels_write(f, set, KOUT_PTX, CUDA_PTX_ARCH, NULL, d);
    if (fclose(f) != 0 || !ok) {
        free(ptx);
        return NULL;
    }
    return ptx;
}

bool emit_cuda_kernels(FILE *out, const KernelSet *set, Diag *d) {
    char *ptx = plan_ptx(set, d);
    if (!ptx) return false;
    fputs("/* The CUDA target's kernels, written by galvc (backend/emit_cuda.c): their PTX\n"
          " * (" CUDA_PTX_ARCH "), the stubs that launch them, the table the layers find them in. */\n"
          "#include \"galvrt_cuda.h\"\n\n",
          out);
    put_ptx(out, ptx);
    free(ptx);
    char name[96];
    fputs("\nstatic const char *const names[] = {\n", out);
    for (int i = 0; i < set->n; i++) fprintf(out, "    \"%s\",\n", kgen_name(&set->k[i], name, sizeof name));
    fputs("    NULL,\n};\n\n", out);
    for (int i = 0; i < set->n; i++) put_stub(out, &set->k[i], i);
    fputs("\nstatic const GrtKernel kernels[] = {\n", out);
    for (int i = 0; i < set->n; i++)
        fprintf(out, "    {%d, %d, %d, {%lld, %lld, %lld}, (void (*)(void))k%d}, /* %s */\n", set->k[i].kind,
                set->k[i].cols, set->k[i].flags, (long long)set->k[i].c[0], (long long)set->k[i].c[1],
                (long long)set->k[i].c[2], i, kgen_name(&set->k[i], name, sizeof name));
    fprintf(out, "};\n\nconst GrtKernelTable galvc_kernels = {%d, kernels};\n", set->n);
    fprintf(out, "const GrtTarget galvc_target = {\"cuda\", grt_cuda_start, ptx, %d, names};\n", set->n);
    return !ferror(out);
}

bool emit_cuda(FILE *out, const Spec *spec, const Plan *plan, Diag *d) {
    KernelSet set;
    kernels_for_plan(spec, plan, &set);
    return emit_cuda_kernels(out, &set, d);
}
