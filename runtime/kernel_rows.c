/* kernel_rows.c — a generated kernel run over the thread pool (pool.c).
 * Every generated kernel takes (int64 rows, pointers..., [float]) and
 * processes rows [0, rows), so a part of the rows is the same call with
 * each per-row pointer moved to the part's first row. Which pointers move,
 * and by how much, is the kind's layout below, read off its typedef in
 * galvrt.h, one letter per pointer argument:
 *   r  advances C floats a row        R  advances 2 C floats a row (SwiGLU's [gate | up])
 *   s  advances 1 float a row (a norm's mean and rstd)
 *   w  the same for every row (weights and biases, read only)
 *   g  a vector summed over rows (a weight or bias gradient): a copy per part
 * A kind without a layout here is called directly, on the calling thread
 * (grt_kernel_rows stops the job on one: an internal error). */
#include "galvrt.h"

#include <stdio.h>
#include <string.h>

#define MAX_ARGS 10

static const char *const layouts[GRT_K_COUNT] = {
    [GRT_K_LAYERNORM_FWD] = "rssrww",   /* out, mean, rstd, inp, weight, bias */
    [GRT_K_LAYERNORM_BWD] = "rggrrwss", /* dinp, dweight, dbias, dout, inp, weight, mean, rstd */
    [GRT_K_RMSNORM_FWD] = "rsrw",       /* out, rstd, inp, weight */
    [GRT_K_RMSNORM_BWD] = "rgrrws",     /* dinp, dweight, dout, inp, weight, rstd */
    [GRT_K_RESIDUAL] = "rrrw",          /* out, a, b, bias */
    [GRT_K_BIAS_GELU_FWD] = "rrw",      /* pre, act, bias */
    [GRT_K_BIAS_GELU_BWD] = "rrrg",     /* dpre, pre, dact, dbias */
    [GRT_K_SWIGLU_FWD] = "rR",          /* out, inp */
    [GRT_K_SWIGLU_BWD] = "RRr",         /* dinp, inp, dout */
};

typedef struct Call {
    const GrtKernel *k;
    const char *layout;
    char *arg[MAX_ARGS]; /* as bytes, for the offsets */
    float f;
} Call;

/* Argument i moved to row `row` of part `part` (a gradient: the part's copy). */
static void *arg_at(const GrtRows *job, int part, int i, int64_t row) {
    const Call *c = job->ctx;
    size_t C = (size_t)c->k->cols;
    switch (c->layout[i]) {
    case 'r': return c->arg[i] + (size_t)row * C * sizeof(float);
    case 'R': return c->arg[i] + (size_t)row * 2 * C * sizeof(float);
    case 's': return c->arg[i] + (size_t)row * sizeof(float);
    case 'g': return grt_rows_acc(job, part, (int)(strchr(c->layout, 'g') == c->layout + i ? 0 : 1));
    default: return c->arg[i];
    }
}

/* The kernel on rows [begin, end), called through its kind's own type. */
static void call_rows(const GrtRows *job, int64_t begin, int64_t end, int part) {
    const Call *c = job->ctx;
    void *a[MAX_ARGS] = {0};
    for (int i = 0; c->layout[i]; i++)
        a[i] = arg_at(job, part, i, begin);
    int64_t n = end - begin;
    void (*fn)(void) = c->k->fn;
    switch ((GrtKernelKind)c->k->kind) {
    case GRT_K_LAYERNORM_FWD: ((GrtLayerNormFwdFn *)fn)(n, a[0], a[1], a[2], a[3], a[4], a[5], c->f); break;
    case GRT_K_LAYERNORM_BWD: ((GrtLayerNormBwdFn *)fn)(n, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]); break;
    case GRT_K_RMSNORM_FWD: ((GrtRmsNormFwdFn *)fn)(n, a[0], a[1], a[2], a[3], c->f); break;
    case GRT_K_RMSNORM_BWD: ((GrtRmsNormBwdFn *)fn)(n, a[0], a[1], a[2], a[3], a[4], a[5]); break;
    case GRT_K_RESIDUAL: ((GrtResidualFn *)fn)(n, a[0], a[1], a[2], a[3]); break;
    case GRT_K_BIAS_GELU_FWD: ((GrtBiasGeluFwdFn *)fn)(n, a[0], a[1], a[2]); break;
    case GRT_K_BIAS_GELU_BWD: ((GrtBiasGeluBwdFn *)fn)(n, a[0], a[1], a[2], a[3]); break;
    case GRT_K_SWIGLU_FWD: ((GrtSwigluFwdFn *)fn)(n, a[0], a[1]); break;
    case GRT_K_SWIGLU_BWD: ((GrtSwigluBwdFn *)fn)(n, a[0], a[1], a[2]); break;
    default: grt_abort("internal error: a generated kernel kind without a row layout (kernel_rows.c)", 1);
    }
}

void grt_kernel_rows(void (*fn)(void), int64_t rows, float f, const void *const *args, int n_args) {
    Call c = {.k = grt_kernel_of(fn), .f = f};
    c.layout = c.k && c.k->kind >= 0 && c.k->kind < GRT_K_COUNT ? layouts[c.k->kind] : NULL;
    if (!c.layout || (int)strlen(c.layout) != n_args || n_args > MAX_ARGS) {
        char msg[160];
        snprintf(msg, sizeof msg, "internal error: grt_kernel_rows: %d arguments for a kernel whose layout is %s",
                 n_args, c.layout ? c.layout : "unknown");
        grt_abort(msg, 1);
    }
    GrtRows job = {.rows = rows, .cols = c.k->cols, .fn = call_rows, .ctx = &c, .acc_n = (size_t)c.k->cols};
    int g = 0;
    for (int i = 0; i < n_args; i++) {
        c.arg[i] = (char *)(uintptr_t)args[i]; /* the kernel's own type says which it writes */
        if (c.layout[i] == 'g') job.acc[g++] = c.arg[i] ? (float *)c.arg[i] : NULL;
    }
    if (!g) job.acc_n = 0;
    grt_pool_run(&job);
}
