/* kernel_ir_optim.c — the descriptions of the optimizer's kernels, 1-D
 * problems run as rows of C = GRT_OPT_COLS elements: the gradient norm's sum
 * of squares (in double, one sum per row), and the updates of AdamW
 * (Loshchilov and Hutter 2019, algorithm 2), Adam (Kingma and Ba 2015,
 * algorithm 1, with L2 decay as torch.optim.Adam) and SGD with momentum and
 * Nesterov's step (as torch.optim.SGD), each runtime/kernels.c's reference
 * operation for operation in float. */
#include "kernel_gen.h"

#include <stdio.h>

/* ---- sum of squares ---------------------------------------------------------------- */
/* sumsq (rows, sums, x): sums (rows, double) = sum over the row of x (rows, C)^2, in double */

static void ss_cols(KB *k, const void *ctx, LLVMValueRef *t) {
    (void)ctx;
    LLVMValueRef x = ext(k, load(k, param(k, 2), k->cols, 0));
    t[0] = mul(k, x, x);
}

void kir_sumsq(KB *k, int flags) {
    (void)flags;
    LLVMValueRef s;
    k->map->cols(k, ss_cols, NULL, 1, &s);
    k->map->row_store(k, param(k, 1), s);
}

/* ---- Adam and AdamW -------------------------------------------------------------------- */
/* adamw / adam (rows, param, grad, m, v, lr, beta1, beta2, eps, weight_decay, grad_scale, c1, c2):
 * g = grad grad_scale (Adam: + weight_decay param); m = beta1 m + (1 - beta1) g;
 * v = beta2 v + (1 - beta2) g^2; param -= lr (m c1 / (sqrt(v c2) + eps) (AdamW: + weight_decay param)) */

static LLVMValueRef arg(KB *k, int i) { return splat(k, param(k, i)); }

/* sqrtf per lane (correctly rounded, as libm's) */
static LLVMValueRef sqrt_f32(KB *k, LLVMValueRef x) {
    char name[32];
    if (k->width > 1)
        snprintf(name, sizeof name, "llvm.sqrt.v%df32", k->width);
    else
        snprintf(name, sizeof name, "llvm.sqrt.f32");
    return kgen_call(k, name, LLVMTypeOf(x), &x, 1);
}

static void adam_cols(KB *k, const void *ctx, LLVMValueRef *t) {
    int decoupled = ((const RowVals *)ctx)->bias;
    (void)t;
    LLVMValueRef p = load(k, param(k, 1), k->cols, 0), g = mul(k, load(k, param(k, 2), k->cols, 0), arg(k, 10));
    if (!decoupled) g = add(k, g, mul(k, arg(k, 9), p));
    LLVMValueRef m = add(k, mul(k, arg(k, 6), load(k, param(k, 3), k->cols, 0)), mul(k, sub(k, cf(k, 1.0f), arg(k, 6)), g));
    LLVMValueRef v = add(k, mul(k, arg(k, 7), load(k, param(k, 4), k->cols, 0)),
                         mul(k, mul(k, sub(k, cf(k, 1.0f), arg(k, 7)), g), g));
    store(k, param(k, 3), k->cols, 0, m);
    store(k, param(k, 4), k->cols, 0, v);
    LLVMValueRef u = fdiv(k, mul(k, m, arg(k, 11)), add(k, sqrt_f32(k, mul(k, v, arg(k, 12))), arg(k, 8)));
    if (decoupled) u = add(k, u, mul(k, arg(k, 9), p));
    store(k, param(k, 1), k->cols, 0, sub(k, p, mul(k, arg(k, 5), u)));
}

void kir_adamw(KB *k, int flags) {
    (void)flags;
    k->map->cols(k, adam_cols, &(RowVals){.bias = 1}, 0, NULL);
}

void kir_adam(KB *k, int flags) {
    (void)flags;
    k->map->cols(k, adam_cols, &(RowVals){.bias = 0}, 0, NULL);
}

/* ---- SGD ----------------------------------------------------------------------------- */
/* sgd (rows, param, grad, buf, lr, momentum, weight_decay, grad_scale): g = grad grad_scale +
 * weight_decay param; with momentum buf = momentum buf + g and the step takes buf (Nesterov:
 * g + momentum buf); param -= lr g */

static void sgd_cols(KB *k, const void *ctx, LLVMValueRef *t) {
    int flags = ((const RowVals *)ctx)->bias;
    (void)t;
    LLVMValueRef p = load(k, param(k, 1), k->cols, 0);
    LLVMValueRef g = add(k, mul(k, load(k, param(k, 2), k->cols, 0), arg(k, 7)), mul(k, arg(k, 6), p));
    if (flags & GRT_KF_MOMENTUM) {
        LLVMValueRef b = add(k, mul(k, arg(k, 5), load(k, param(k, 3), k->cols, 0)), g);
        store(k, param(k, 3), k->cols, 0, b);
        g = flags & GRT_KF_NESTEROV ? add(k, g, mul(k, arg(k, 5), b)) : b;
    }
    store(k, param(k, 1), k->cols, 0, sub(k, p, mul(k, arg(k, 4), g)));
}

void kir_sgd(KB *k, int flags) { k->map->cols(k, sgd_cols, &(RowVals){.bias = flags}, 0, NULL); }
