/* galvrt.h — libgalvrt, the runtime every program galvc emits links against:
 * fp32 kernels with their backward passes, and collectives behind one
 * interface. It includes no compiler header; generated programs need only
 * this file and the library.
 *
 * Conventions (as llm.c's): activations are row-major (B, T, C) arrays;
 * a linear layer's weight is (OC, C) and computes out = inp @ weight^T + bias;
 * every backward ACCUMULATES (+=) into the gradients it is given, of inputs
 * and of parameters alike, so callers zero them once per step. */
#ifndef GALVRT_H
#define GALVRT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct GrtComm GrtComm;       /* a group of ranks (collectives below) */
typedef struct GrtRequest GrtRequest; /* a non-blocking operation in flight */

/* ---- kernels (runtime/kernels.c) ------------------------------------------ */

/* out (N, OC) = inp (N, C) @ weight (OC, C)^T + bias (OC); bias may be NULL. */
void grt_matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC);
/* dinp (N, C) += dout @ weight; dweight (OC, C) += dout^T @ inp; dbias (OC) += column sums of dout.
 * Any of dinp, dweight, dbias may be NULL (not needed). */
void grt_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                         const float *weight, int N, int C, int OC);

/* Mixed precision (galvrt_sizes.h, GrtLayerSpec.gemm16). x rounded to the
 * nearest bf16, ties to even (integer operations on its bits; a NaN stays
 * a NaN, made quiet), and back: the bits are fp32's upper half. */
uint16_t grt_bf16_bits(float x);
float grt_bf16_float(uint16_t h);
/* dst (n) = src rounded to bf16: bits (uint16_t), or wide: the bf16 values as floats. */
void grt_bf16_round(void *dst, const float *src, size_t n, int wide);
/* dst (n) = the bf16 bits src (n) as the floats they are. */
void grt_bf16_widen(float *dst, const void *src, size_t n);
/* grt_matmul_forward and _backward with both operands of each product
 * rounded to bf16 and fp32 accumulation; ops: the rounded operands' area,
 * grt_size_linear16(N, C, OC) elements of `bytes` (the host: GRT_GEMM16_WIDE).
 * inp16: inp's values as bf16 bits where a block keeps them so (inp is then
 * their fp32 copy, already rounded: neither is rounded again), else NULL.
 * The bias and its gradient stay fp32. */
void grt_matmul16_forward(float *out, const float *inp, const uint16_t *inp16, const float *weight, const float *bias,
                          int N, int C, int OC, int bytes, void *ops);
void grt_matmul16_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                           const uint16_t *inp16, const float *weight, int N, int C, int OC, int bytes, void *ops);

/* out (B, T, C) = wte[tokens] + wpe[t] (wpe NULL: no learned positions).
 * Only rows vocab_start <= token < vocab_start + vocab_rows of the vocabulary
 * live in wte (a tensor-parallel shard); other tokens contribute zeros. */
void grt_embedding_forward(float *out, const int32_t *tokens, const float *wte, const float *wpe, int B, int T, int C,
                           int vocab_start, int vocab_rows);
/* dwte (vocab_rows, C) += scatter of dout by token; dwpe (T, C) += sum over B (dwpe may be NULL). */
void grt_embedding_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tokens, int B, int T, int C,
                            int vocab_start, int vocab_rows);

/* Rotary position embedding (Su et al. 2021), in place on x (B, T, heads, hd),
 * rotating pairs (2i, 2i+1) by t * theta^(-2i/hd); hd even. */
void grt_rope_forward(float *x, int B, int T, int heads, int hd, float theta);
/* In place on dx: the inverse rotation. */
void grt_rope_backward(float *dx, int B, int T, int heads, int hd, float theta);
/* x (T, heads, hd) of positions t0 .. t0 + T - 1: rotated (backward: the inverse rotation), in place. */
void grt_rope_at(float *x, int T, int heads, int hd, float theta, int t0, int backward);

/* out (N, C) = (inp - mean) * rstd * weight + bias; mean, rstd (N) saved for backward; bias may be NULL. */
void grt_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                           const float *bias, int N, int C, float eps);
void grt_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                            const float *weight, const float *mean, const float *rstd, int N, int C);

/* out (N, C) = inp * rstd * weight, rstd = 1 / sqrt(mean(inp^2) + eps) saved (N). */
void grt_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N, int C, float eps);
void grt_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                          const float *rstd, int N, int C);

/* GELU, tanh form: out = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), n elements. */
void grt_gelu_forward(float *out, const float *inp, size_t n);
void grt_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);

/* SwiGLU: inp (N, 2F) holds [gate | up] per row; out (N, F) = silu(gate) * up. */
void grt_swiglu_forward(float *out, const float *inp, int N, int F);
void grt_swiglu_backward(float *dinp, const float *inp, const float *dout, int N, int F);

/* Multi-head attention core. qkv (B, T, (H + 2 KVH) hd) holds Q (H heads),
 * K (KVH heads), V (KVH heads) per token; query head h reads key/value head
 * h / (H / KVH) (GQA; KVH = H is MHA). out (B, T, H hd). att (B, H, T, T)
 * keeps the softmax probabilities for backward. Causal masks t2 > t. Scale
 * 1 / sqrt(hd). */
void grt_attention_forward(float *out, float *att, const float *qkv, int B, int T, int H, int KVH, int hd,
                           int causal);
void grt_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att, int B, int T, int H,
                            int KVH, int hd, int causal);

/* The generated attention softmax's kernels (see "generated kernels" below). */
typedef void GrtAttSoftmaxFwdFn(int64_t rows, float *att, int64_t t0); /* scales by 1 / sqrt(hd) itself */
typedef void GrtAttSoftmaxBwdFn(int64_t rows, float *datt, const float *att, int64_t t0);
/* Their mixed-precision forms ("generated kernels" below): the probabilities as bf16 bits. */
typedef void GrtAttSoftmax16FwdFn(int64_t rows, float *att, void *bits, int64_t t0);
typedef void GrtAttSoftmax16BwdFn(int64_t rows, const float *datt, const void *att, void *ds, int64_t t0);
/* grt_attention_forward and _backward with the attention softmax's rows
 * run by generated kernels (softmax NULL: the reference's; the forward's
 * GEMM then leaves the scale to the kernel). */
void grt_attention_forward_with(float *out, float *att, const float *qkv, int B, int T, int H, int KVH, int hd,
                                int causal, GrtAttSoftmaxFwdFn *softmax);
void grt_attention_backward_with(float *dqkv, const float *dout, const float *qkv, const float *att, int B, int T,
                                 int H, int KVH, int hd, int causal, GrtAttSoftmaxBwdFn *softmax);
/* grt_attention_backward_with, the score gradient's rows in dp (H, T, T)
 * (galvrt_sizes.h's grt_att_grad, from a block's working space) instead of
 * a temporary it allocates; bf16 as below. */
void grt_attention_backward_in(float *dqkv, float *dout, const float *qkv, const float *att, int B, int T, int H,
                               int KVH, int hd, int causal, GrtAttSoftmaxBwdFn *softmax, float *dp, int bf16);
/* Mixed precision's attention core (bf16 1, GrtLayerSpec.gemm16): every
 * GEMM of it reads bf16 operands and accumulates in fp32, as a GPU's bf16
 * tensor cores do. q, k and v come rounded (a block keeps them so); the
 * forward rounds the probabilities in place before they multiply v, the
 * backward the output's gradient dout (in place) before it multiplies v and
 * the probabilities, and each row block's score gradient before it
 * multiplies k and q. The host multiplies the rounded floats in fp32: a
 * product of two bf16 values is exact there, so only the order of the sums
 * differs from the tensor cores'. */
/* The attention softmax's rows alone, as the generated kernels compute them:
 * att (rows, T), row i = query t = (t0 + i) mod T: softmax(scale att) over its keys
 * (t + 1 of them when causal), zeros after; and its backward in place
 * on datt (rows, T): att (datt - sum(att datt)) over the keys, zeros after. */
void grt_attention_softmax_forward(float *att, int rows, int T, int t0, int causal, float scale);
void grt_attention_softmax_backward(float *datt, const float *att, int rows, int T, int t0, int causal);
/* Inverted dropout with counter-based masks (as PyTorch's nn.Dropout in
 * training: a kept value is scaled by 1 / (1 - p), a dropped one is 0). No
 * mask is stored: a mask bit is a pure function of (seed, step, layer, site,
 * global sequence, element), so backward, a checkpointed block's
 * recomputation and every plan (DP, TP, PP, micro-batching) regenerate the
 * same bits. The bits are the outputs of SplitMix64 (Steele, Lea and Flood,
 * "Fast splittable pseudorandom number generators", OOPSLA 2014): a stream
 * per (key, sequence) whose n-th output is mix64(state + (n + 1) gamma), the
 * element index n the counter, as Philox's counter mode (Salmon et al.,
 * "Parallel random numbers: as easy as 1, 2, 3", SC 2011) uses a counter. */
/* the dropout sites; T5's blocks add their cross-attention's probabilities and output and the MLP's hidden,
 * T5's final norms their output */
enum { GRT_DROP_EMBED, GRT_DROP_ATT, GRT_DROP_ATT_OUT, GRT_DROP_MLP_OUT, GRT_DROP_CROSS_ATT, GRT_DROP_CROSS_OUT,
       GRT_DROP_MLP_HIDDEN, GRT_DROP_NORM_OUT };
#define GRT_DROP_GAMMA 0x9E3779B97F4A7C15ull /* SplitMix64's golden-ratio increment */

/* SplitMix64's finalizer (Stafford's Mix13 variant): a bijection of 64 bits. */
static inline uint64_t grt_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* The key of one site of one layer at one step. */
static inline uint64_t grt_dropout_key(uint64_t seed, int64_t step, int layer, int site) {
    uint64_t z = grt_mix64(seed + GRT_DROP_GAMMA);
    z = grt_mix64(z + (uint64_t)(step + 1) * GRT_DROP_GAMMA);
    z = grt_mix64(z + (uint64_t)(layer + 1) * GRT_DROP_GAMMA);
    return grt_mix64(z + (uint64_t)(site + 1) * GRT_DROP_GAMMA);
}
/* The stream of sequence `seq` (its index among the step's sequences). */
static inline uint64_t grt_dropout_seq(uint64_t key, int64_t seq) {
    return grt_mix64(key + (uint64_t)(seq + 1) * GRT_DROP_GAMMA);
}
/* Elements whose bits fall under this threshold are dropped: p 2^32. */
static inline uint32_t grt_dropout_threshold(float p) { return (uint32_t)((double)p * 4294967296.0); }
/* Is element `elem` of the sequence's stream kept? */
static inline int grt_dropout_keep(uint64_t seq_key, uint64_t elem, uint32_t threshold) {
    return (uint32_t)(grt_mix64(seq_key + (elem + 1) * GRT_DROP_GAMMA) >> 32) >= threshold;
}
/* One site's dropout on one rank's micro-batch. */
typedef struct GrtDropout {
    float p;      /* the drop probability, in [0, 1) */
    uint64_t key; /* grt_dropout_key */
    int64_t seq0; /* the step's index of the micro-batch's first sequence on this rank */
    int h0;       /* attention: this rank's first head (TP keys by the global head) */
    int64_t r0;   /* the rank's first row of its sequences' (B T) rows: sequence parallelism's shard */
    void (*fwd)(void), (*att)(void); /* generated GrtDropoutFn kernels (galvrt.h, "dropout"), or NULL:
                                        fwd over (B T, C) rows with GRT_KF_RESIDUAL, plain for att's (T, T) */
    void (*plain)(void);             /* over (B T, C) rows without the residual (a gradient) */
} GrtDropout;
/* The dropout kernel's reference (what GRT_K_DROPOUT computes): out (rows,
 * cols) = dropout(b), plus a unless a is NULL; row i is position (r0 + i)
 * mod T of sequence seq0 + (r0 + i) / T, its element c counted e0 + ((r0 +
 * i) mod T) cols + c; dropped where the bits fall under `threshold`, kept
 * ones scaled by `scale`. out may be b. */
void grt_dropout_reference(float *out, const float *a, const float *b, int64_t rows, int cols, int T, uint64_t key,
                           int64_t seq0, int64_t r0, int64_t e0, uint32_t threshold, float scale);
/* x (rows, cols) = dropout(x) in place: row r is position r mod T of
 * sequence seq0 + r / T, its element c counted (r mod T) cols + c. The same
 * call drops a gradient in backward. */
void grt_dropout_rows(float *x, int64_t rows, int cols, int T, const GrtDropout *d);
/* out (rows, cols) = a + dropout(b): a residual branch's dropout and add. */
void grt_residual_dropout_forward(float *out, const float *a, const float *b, int64_t rows, int cols, int T,
                                  const GrtDropout *d);
/* dst (rows, cols) = dropout(src) with d->plain: row i is position i mod T of sequence seq + i / T, its
 * element c counted e0 + (i mod T) cols + c (a block of a sequence's stream: an attention head's
 * probabilities, a TP shard's columns of a row). dst may be src. */
void grt_dropout_block(float *dst, const float *src, int64_t rows, int cols, int T, const GrtDropout *d, int64_t seq,
                       int64_t e0);
/* dst (rows, cols) = dropout(src): a branch's gradient from the residual's. */
void grt_dropout_copy(float *dst, const float *src, int64_t rows, int cols, int T, const GrtDropout *d);
/* Attention as grt_attention_forward_with / _backward_with, with dropout d
 * on the probabilities: out = dropout(att) @ v, att keeping the softmax's
 * probabilities; element (t, t2) of local head h of sequence b is counted
 * ((d->h0 + h) T + t) T + t2 in sequence d->seq0 + b's stream; bf16
 * (grt_attention_backward_in's): the probabilities rounded before dropout. */
void grt_attention_forward_dropout(float *out, float *att, const float *qkv, int B, int T, int H, int KVH, int hd,
                                   int causal, GrtAttSoftmaxFwdFn *softmax, const GrtDropout *d, int bf16);
void grt_attention_backward_dropout(float *dqkv, float *dout, const float *qkv, const float *att, int B, int T, int H,
                                    int KVH, int hd, int causal, GrtAttSoftmaxBwdFn *softmax, const GrtDropout *d,
                                    int bf16);
/* Rotary's angles as the reference computes them: cs, sn (T, hd / 2) = cos,
 * sin of t theta^(-2i/hd) (in double, rounded to float). */
void grt_rope_table(float *cs, float *sn, int T, int hd, float theta);

/* out = a + b, n elements (backward: both inputs receive dout). */
void grt_residual_forward(float *out, const float *a, const float *b, size_t n);

/* Softmax cross-entropy over V logits per row: probs (N, V) saved, losses
 * (N) = -log probs[target]. Rows whose target is negative are ignored (loss 0). */
void grt_crossentropy_forward(float *losses, float *probs, const float *logits, const int32_t *targets, int N, int V);
/* dlogits (N, V) += (probs - onehot(target)) * dloss[row]. */
void grt_crossentropy_backward(float *dlogits, const float *probs, const int32_t *targets, const float *dlosses,
                               int N, int V);

/* Sum of squares of n values (for the global gradient norm), in double. */
double grt_sumsq(const float *x, size_t n);
/* Adam (Kingma and Ba 2015) as torch.optim.Adam defines it: L2 weight decay
 * added to the (scaled) gradient, then the bias-corrected moments. */
void grt_adam(float *param, const float *grad, float *m, float *v, size_t n, float lr, float beta1, float beta2,
              float eps, float weight_decay, float grad_scale, int t);
/* SGD as torch.optim.SGD defines it (no dampening): g = grad * grad_scale +
 * weight_decay * param; with momentum (buf not NULL) buf = momentum buf + g
 * and the step takes buf, or g + momentum buf (Nesterov). */
void grt_sgd(float *param, const float *grad, float *buf, size_t n, float lr, float momentum, int nesterov,
             float weight_decay, float grad_scale);
/* AdamW (Loshchilov and Hutter 2019): decoupled weight decay, bias
 * correction for step t (1-based); grads are multiplied by grad_scale first
 * (gradient clipping: scale = min(1, clip / global norm)). */
void grt_adamw(float *param, const float *grad, float *m, float *v, size_t n, float lr, float beta1, float beta2,
               float eps, float weight_decay, float grad_scale, int t);

/* ---- generated kernels (runtime/kernel_table.c) ---------------------------- */

/* galvc generates the row kernels a plan needs through libLLVM with its
 * column count C as a constant (backend/kernels.c), and links them into the
 * program as the table galvc_kernels, which main() hands to grt_kernels_use.
 * The layers then run the generated kernel wherever one has the shape, and
 * the reference above elsewhere; the results are the reference's. rows is a
 * run-time argument. The table: X(kind, name, signature).
 *   layernorm_fwd  out, mean, rstd, inp, weight, bias, eps    (as grt_layernorm_forward)
 *   layernorm_bwd  dinp, dweight, dbias, dout, inp, weight, mean, rstd  (accumulates)
 *   rmsnorm_fwd    out, rstd, inp, weight, eps                (as grt_rmsnorm_forward)
 *   rmsnorm_bwd    dinp, dweight, dout, inp, weight, rstd     (accumulates)
 *   residual       out, a, b, bias: out = a + b, or with GRT_KF_BIAS a + (b + bias (C))
 *   bias_gelu_fwd  pre (in place: pre += bias), act = gelu(pre), bias
 *   bias_gelu_bwd  dpre += dact * gelu'(pre), dbias += the same; pre, dact, dbias
 *   swiglu_fwd     out (rows, C), inp (rows, 2C)              (as grt_swiglu_forward)
 *   swiglu_bwd     dinp (rows, 2C), inp, dout                 (accumulates)
 *   embed_fwd      out (rows, C), tokens (rows), wte, wpe, T, vocab_start, vocab_rows
 *                  (as grt_embedding_forward; row r's position is r % T; wpe read with GRT_KF_POS)
 *   embed_bwd      dwte, dwpe, dout, tokens, T, vocab_start, vocab_rows (as grt_embedding_backward)
 *   rope_fwd       x, cs, sn, T, heads, ld: in place on rows = tokens * heads heads of C = hd / 2
 *                  pairs; token n's heads at x + n ld, position n % T, cs/sn (T, C) from grt_rope_table
 *   rope_bwd       the same arguments: the inverse rotation
 *   att_softmax_fwd  att (rows, C = T) in place, t0, scale: row i = query t = (t0 + i) mod T,
 *                  softmax(scale att) over its keys (t + 1 under GRT_KF_CAUSAL), 0 after
 *   att_softmax_bwd  datt (rows, T) in place, att (rows, T), t0: datt = att (datt - sum(att datt))
 *   att_softmax16_fwd  att (rows, T), bits (rows, T) uint16_t =, t0, scale: att_softmax_fwd's
 *                  probabilities rounded to bf16 bits alone (att is left holding their exponentials)
 *   att_softmax16_bwd  datt (rows, T), att (rows, T) uint16_t bf16 probabilities, ds (rows, T) uint16_t =,
 *                  t0: att_softmax_bwd's result rounded to bf16 bits, datt only read
 *   xent_fwd       losses (rows), probs, logits (rows, ld; C = V used), targets (rows), ld
 *                  (as grt_crossentropy_forward; probs' columns past C untouched)
 *   xent_bwd       dlogits (rows, C) =, probs (rows, ld), targets, dloss, ld, col0: columns
 *                  [col0, col0 + C) of (probs - onehot(target)) dloss (0 where target < 0)
 *   sumsq          sums (rows, double) =, x (rows, C): each row's sum of squares
 *   adamw, adam    param, grad, m, v (rows, C), lr, beta1, beta2, eps, weight_decay, grad_scale,
 *                  c1 = 1 / (1 - beta1^t), c2 = 1 / (1 - beta2^t)  (as grt_adamw, grt_adam)
 *   sgd            param, grad, buf (rows, C), lr, momentum, weight_decay, grad_scale (as
 *                  grt_sgd; buf read with GRT_KF_MOMENTUM, Nesterov's step with GRT_KF_NESTEROV)
 *   dropout        out, a, b (rows, C), key, seq0, r0, e0, threshold, scale; T: out = dropout(b),
 *                  plus a with GRT_KF_RESIDUAL (as grt_dropout_apply: row i is position (r0 + i) mod T
 *                  of sequence seq0 + (r0 + i) / T, element e0 + ((r0 + i) mod T) C + c)
 *   patch_fwd      out (rows, C), y (rows / T (T - 1), C), cls (C), pos (T, C), T: ViT's tokens, row r
 *                  position t = r mod T of image r / T: cls (t = 0) or y's patch t - 1, plus pos[t]
 *                  (as grt_patch_assemble)
 *   patch_bwd      dy =, dcls +=, dpos +=, dout (rows, C), T (as grt_patch_assemble_backward)
 *   t5_softmax_fwd att (rows, C = T) in place, bias (rows, T), t0: T5's attention rows, no scale: row i =
 *                  query t = (t0 + i) mod T, softmax(att + bias) over its keys (t + 1 under GRT_KF_CAUSAL), 0 after
 *                  (as grt_t5_softmax_forward)
 *   t5_softmax_bwd datt (rows, T) in place, att, dbias (rows, T) +=, t0: datt = att (datt - sum(att datt)),
 *                  and dbias += it (as grt_t5_softmax_backward)
 *   win_gather     dst (rows, C) = src's rows in Swin's window order; side, M, shift (as grt_window_gather)
 *   win_scatter    its inverse: dst's rows in grid order from src (rows, C) in window order (grt_window_scatter)
 *   win_softmax_fwd att (rows, M^2) = softmax(att / sqrt(hd) + bias (H, n, n) + mask (nW, n, n)), row r query
 *                  r mod n of head (r / n) mod H of window (r / (n H)) mod nW; H, nW, hd (grt_window_softmax_forward)
 *   merge_gather   dst (rows, C) = Swin's patch merging's 2 x 2 groups, row r part r mod 4 of merged token r / 4,
 *                  from src's side x side grids; side (as grt_merge_gather)
 *   merge_scatter  its transpose, dst's grid rows += src (rows, C) (as grt_merge_scatter)
 *   bf16           dst (rows, C) =, src (rows, C): src rounded to bf16 (as grt_bf16_round), dst
 *                  uint16_t bits, or with GRT_KF_WIDE the values as floats
 *   bf16_widen     dst (rows, C) =, src (rows, C) uint16_t bf16 bits: the floats they are (as grt_bf16_widen)
 *   bf16_keep      bits (rows, C) uint16_t =, x (rows, C) in place: x rounded to bf16 as bits, and x those values
 *                  (bf16 then bf16_widen in one pass: a block's kept activation and its fp32 copy)
 * The optimizer's kernels run a 1-D array as rows of GRT_OPT_COLS columns.
 * Without GRT_KF_BIAS a kernel takes no bias (its argument is ignored). */
#define GRT_KERNEL_KINDS(X)                                                                                            \
    X(GRT_K_LAYERNORM_FWD, "layernorm_fwd")                                                                            \
    X(GRT_K_LAYERNORM_BWD, "layernorm_bwd")                                                                            \
    X(GRT_K_RMSNORM_FWD, "rmsnorm_fwd")                                                                                \
    X(GRT_K_RMSNORM_BWD, "rmsnorm_bwd")                                                                                \
    X(GRT_K_RESIDUAL, "residual")                                                                                      \
    X(GRT_K_BIAS_GELU_FWD, "bias_gelu_fwd")                                                                            \
    X(GRT_K_BIAS_GELU_BWD, "bias_gelu_bwd")                                                                            \
    X(GRT_K_SWIGLU_FWD, "swiglu_fwd")                                                                                  \
    X(GRT_K_SWIGLU_BWD, "swiglu_bwd")                                                                                  \
    X(GRT_K_EMBED_FWD, "embed_fwd")                                                                                    \
    X(GRT_K_EMBED_BWD, "embed_bwd")                                                                                    \
    X(GRT_K_ROPE_FWD, "rope_fwd")                                                                                      \
    X(GRT_K_ROPE_BWD, "rope_bwd")                                                                                      \
    X(GRT_K_ATT_SOFTMAX_FWD, "att_softmax_fwd")                                                                        \
    X(GRT_K_ATT_SOFTMAX_BWD, "att_softmax_bwd")                                                                        \
    X(GRT_K_ATT_SOFTMAX16_FWD, "att_softmax16_fwd")                                                                    \
    X(GRT_K_ATT_SOFTMAX16_BWD, "att_softmax16_bwd")                                                                    \
    X(GRT_K_XENT_FWD, "xent_fwd")                                                                                      \
    X(GRT_K_XENT_BWD, "xent_bwd")                                                                                      \
    X(GRT_K_SUMSQ, "sumsq")                                                                                            \
    X(GRT_K_ADAMW, "adamw")                                                                                            \
    X(GRT_K_ADAM, "adam")                                                                                              \
    X(GRT_K_SGD, "sgd")                                                                                                \
    X(GRT_K_DROPOUT, "dropout")                                                                                        \
    X(GRT_K_PATCH_FWD, "patch_fwd")                                                                                    \
    X(GRT_K_PATCH_BWD, "patch_bwd")                                                                                    \
    X(GRT_K_T5_SOFTMAX_FWD, "t5_softmax_fwd")                                                                          \
    X(GRT_K_T5_SOFTMAX_BWD, "t5_softmax_bwd")                                                                          \
    X(GRT_K_WIN_GATHER, "win_gather")                                                                                  \
    X(GRT_K_WIN_SCATTER, "win_scatter")                                                                                \
    X(GRT_K_WIN_SOFTMAX_FWD, "win_softmax_fwd")                                                                        \
    X(GRT_K_MERGE_GATHER, "merge_gather")                                                                              \
    X(GRT_K_MERGE_SCATTER, "merge_scatter")                                                                            \
    X(GRT_K_BF16, "bf16")                                                                                              \
    X(GRT_K_BF16_WIDEN, "bf16_widen")                                                                                  \
    X(GRT_K_BF16_KEEP, "bf16_keep")
#define GRT_KERNEL_ENUM(kind, name) kind,
typedef enum GrtKernelKind { GRT_KERNEL_KINDS(GRT_KERNEL_ENUM) GRT_K_COUNT } GrtKernelKind;
enum { GRT_KERNEL_CONSTS = 3 }; /* a kernel's plan constants besides its columns (GrtKernel.c) */
#undef GRT_KERNEL_ENUM
/* A kernel's variant: adds (and differentiates) a bias; learned positions;
 * a causal mask; SGD's momentum buffer; Nesterov's step; dropout's residual
 * add; bf16's output type: the bf16 values widened to fp32 (else bf16 bits). */
enum { GRT_KF_BIAS = 1, GRT_KF_POS = 2, GRT_KF_CAUSAL = 4, GRT_KF_MOMENTUM = 8, GRT_KF_NESTEROV = 16, GRT_KF_RESIDUAL = 32,
       GRT_KF_WIDE = 64 };
enum { GRT_OPT_COLS = 512 }; /* the optimizer kernels' row: a 1-D array's elements per row */

typedef void GrtLayerNormFwdFn(int64_t rows, float *out, float *mean, float *rstd, const float *inp,
                               const float *weight, const float *bias, float eps);
typedef void GrtLayerNormBwdFn(int64_t rows, float *dinp, float *dweight, float *dbias, const float *dout,
                               const float *inp, const float *weight, const float *mean, const float *rstd);
typedef void GrtRmsNormFwdFn(int64_t rows, float *out, float *rstd, const float *inp, const float *weight, float eps);
typedef void GrtRmsNormBwdFn(int64_t rows, float *dinp, float *dweight, const float *dout, const float *inp,
                             const float *weight, const float *rstd);
typedef void GrtResidualFn(int64_t rows, float *out, const float *a, const float *b, const float *bias);
typedef void GrtBiasGeluFwdFn(int64_t rows, float *pre, float *act, const float *bias);
typedef void GrtBiasGeluBwdFn(int64_t rows, float *dpre, const float *pre, const float *dact, float *dbias);
typedef void GrtSwigluFwdFn(int64_t rows, float *out, const float *inp);
typedef void GrtSwigluBwdFn(int64_t rows, float *dinp, const float *inp, const float *dout);
/* The sizes the plan fixes are built into these kernels (GrtKernel.c):
 * embedding {T, vocab_rows}, rotary {T, heads, ld}, attention softmax {hd},
 * cross-entropy {ld}, dropout {T}; what differs between ranks stays an argument. */
typedef void GrtEmbedFwdFn(int64_t rows, float *out, const int32_t *tokens, const float *wte, const float *wpe,
                           int64_t vocab_start);
typedef void GrtEmbedBwdFn(int64_t rows, float *dwte, float *dwpe, const float *dout, const int32_t *tokens,
                           int64_t vocab_start);
typedef void GrtRopeFn(int64_t rows, float *x, const float *cs, const float *sn);
typedef void GrtXentFwdFn(int64_t rows, float *losses, float *probs, const float *logits, const int32_t *targets);
typedef void GrtXentBwdFn(int64_t rows, float *dlogits, const float *probs, const int32_t *targets, float dloss,
                          int64_t col0);
typedef void GrtSumsqFn(int64_t rows, double *sums, const float *x);
typedef void GrtAdamFn(int64_t rows, float *param, const float *grad, float *m, float *v, float lr, float beta1,
                       float beta2, float eps, float weight_decay, float grad_scale, float c1, float c2);
typedef void GrtSgdFn(int64_t rows, float *param, const float *grad, float *buf, float lr, float momentum,
                      float weight_decay, float grad_scale);
typedef void GrtDropoutFn(int64_t rows, float *out, const float *a, const float *b, int64_t key, int64_t seq0,
                          int64_t r0, int64_t e0, int64_t threshold, float scale);
typedef void GrtPatchFwdFn(int64_t rows, float *out, const float *y, const float *cls, const float *pos);
typedef void GrtPatchBwdFn(int64_t rows, float *dy, float *dcls, float *dpos, const float *dout);
typedef void GrtT5SoftmaxFwdFn(int64_t rows, float *att, const float *bias, int64_t t0);
typedef void GrtT5SoftmaxBwdFn(int64_t rows, float *datt, const float *att, float *dbias, int64_t t0);
typedef void GrtWinPermuteFn(int64_t rows, float *dst, const float *src); /* win_*, merge_*: rows moved */
typedef void GrtWinSoftmaxFwdFn(int64_t rows, float *att, const float *bias, const float *mask);
typedef void GrtBf16Fn(int64_t rows, void *dst, const float *src);
typedef void GrtBf16WidenFn(int64_t rows, float *dst, const void *src);
typedef void GrtBf16KeepFn(int64_t rows, void *bits, float *x);

/* One generated kernel: its kind, its column count, its GRT_KF_ flags, and
 * the other sizes the plan fixed for it (the kind's own; 0 where unused). */
typedef struct GrtKernel {
    int32_t kind, cols, flags;
    int64_t c[GRT_KERNEL_CONSTS];
    void (*fn)(void); /* the kind's GrtXxxFn */
} GrtKernel;
typedef struct GrtKernelTable {
    int32_t n;
    const GrtKernel *kernels;
} GrtKernelTable;

/* The program's generated kernels: defined by the object galvc links in,
 * NULL in a program built without one (the references then run). */
extern const GrtKernelTable galvc_kernels __attribute__((weak));

/* Use table t's kernels from now on (NULL: none; GALVRT_REFERENCE_KERNELS=1 in
 * the environment keeps the references). */
void grt_kernels_use(const GrtKernelTable *t);
/* The registered kernel of this kind, column count and flags (and no other
 * constants), or NULL. */
void (*grt_kernel_find(GrtKernelKind kind, int cols, int flags))(void);
/* The same for a kind with plan constants c0, c1, c2 (GrtKernel.c). */
void (*grt_kernel_find_sized(GrtKernelKind kind, int cols, int flags, int64_t c0, int64_t c1, int64_t c2))(void);
/* The registered entry whose function is fn, or NULL. */
const GrtKernel *grt_kernel_of(void (*fn)(void));

/* A generated kernel fn (from grt_kernel_find) run on rows [0, rows) over the
 * pool: each argument that advances by row (its kind's layout in
 * kernel_rows.c) is offset to the part's first row, a weight gradient it
 * accumulates gets a per-part copy. args: its pointer arguments in order;
 * f: its float argument (eps), if it takes one. */
void grt_kernel_rows(void (*fn)(void), int64_t rows, float f, const void *const *args, int n_args);
#define GRT_KERNEL_ROWS(k, rows, f, ...)                                                                               \
    grt_kernel_rows((void (*)(void))(k), (rows), (f), (const void *const[]){__VA_ARGS__},                               \
                    (int)(sizeof((const void *const[]){__VA_ARGS__}) / sizeof(void *)))

/* ---- where the training buffers live (runtime/device.c, runtime/cuda/) ------- */

/* The layers and the step touch their buffers (parameters, gradients,
 * optimizer states, activations, tokens, losses) only through the device
 * below, so the same layers.c and run.c drive either side: the host's
 * memory and OpenBLAS (grt_device_cpu, the default) or a GPU's memory,
 * cuBLAS and the generated PTX (runtime/cuda/, the CUDA target). The
 * generated kernels are found as on the host (grt_kernel_find): on the CUDA
 * target the program's table holds stubs that launch them on the GPU.
 * Pointers into device memory are never dereferenced on the host. */
/* A block's mixed-precision attention core on a device (as
 * grt_attention_backward_in's bf16): the bf16 bits the device's GEMMs may
 * read in place of the rounded floats, and where it may write them. */
typedef struct GrtAtt16 {
    const uint16_t *qkv; /* qkv's bits (B T, (H + 2 KVH) hd); NULL: not kept as bits (checkpointed) */
    uint16_t *att;       /* the forward writes the rounded probabilities' bits (B, H, T, T) here, and the
                            backward reads them (its att argument is then room for their floats); NULL: none */
    void *ops;           /* room for the output gradient's bits: the layer's rounded GEMM operands
                            (galvrt_sizes.h's grt_size_gemm16) */
} GrtAtt16;

typedef struct GrtDevice {
    const char *name;  /* "cpu", "cuda" */
    int host_memory;   /* its buffers are the host's memory (the host may read them) */
    void *(*alloc)(size_t bytes); /* a training buffer, zeroed, kept for the whole run */
    int64_t (*peak_bytes)(void);  /* the most bytes its buffers have held */
    void (*zero)(void *p, size_t bytes);
    void (*copy)(void *dst, const void *src, size_t bytes); /* both on the device */
    /* dst (rows, cols) with row stride dld = src (rows, cols) with row stride sld, floats */
    void (*copy_rows)(float *dst, size_t dld, const float *src, size_t sld, size_t cols, size_t rows);
    void (*zero_rows)(float *dst, size_t ld, size_t cols, size_t rows); /* dst (rows, cols), stride ld */
    void (*to_device)(void *dst, const void *src, size_t bytes);    /* from the host */
    void (*to_host)(void *dst, const void *src, size_t bytes);      /* done when it returns */
    /* to the host after the work queued so far, without waiting for it: dst
     * (host_alloc's memory) holds the bytes once finish has returned */
    void (*to_host_later)(void *dst, const void *src, size_t bytes);
    void *(*host_alloc)(size_t bytes); /* host memory the copies above need no staging for, kept for the run */
    void (*finish)(void); /* returns when all queued work is done (a step's time is taken after it) */
    void (*add)(float *dst, const float *src, size_t n);            /* dst += src */
    void (*add_bias)(float *out, const float *bias, int N, int C);  /* out (N, C) += bias (C) on every row */
    void (*bias_grad)(float *dbias, const float *dout, int N, int C); /* dbias (C) += column sums of dout (N, C) */
    /* as grt_matmul_forward, grt_matmul_backward, grt_attention_forward_with, grt_attention_backward_in */
    void (*matmul_forward)(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC);
    void (*matmul_backward)(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                            const float *weight, int N, int C, int OC);
    /* as grt_matmul16_forward, grt_matmul16_backward (ops: the device's rounded operands of `bytes` each) */
    void (*matmul16_forward)(float *out, const float *inp, const uint16_t *inp16, const float *weight,
                             const float *bias, int N, int C, int OC, int bytes, void *ops);
    void (*matmul16_backward)(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                              const uint16_t *inp16, const float *weight, int N, int C, int OC, int bytes, void *ops);
    /* m: mixed precision's attention core (GrtAtt16), NULL in fp32; with m->att the backward's att is the
     * probabilities' room, which it may fill from the bits or use as scratch */
    void (*attention_forward)(float *out, float *att, const float *qkv, const GrtAtt16 *m, int B, int T, int H,
                              int KVH, int hd, int causal, GrtAttSoftmaxFwdFn *softmax);
    void (*attention_backward)(float *dqkv, float *dout, const float *qkv, float *att, const GrtAtt16 *m,
                               int B, int T, int H, int KVH, int hd, int causal, GrtAttSoftmaxBwdFn *softmax,
                               float *dp);
} GrtDevice;

extern const GrtDevice grt_device_cpu;
/* The device every layer and step uses: grt_device_cpu unless the program
 * was built for another target (galvc_target below). */
extern const GrtDevice *grt_dev;

/* The program's device target, defined by what galvc links into a program
 * built with --target cuda (the generated kernels' PTX and the stubs that
 * launch them) and absent on the CPU target. start runs right after
 * MPI_Init on every rank: it picks the rank's GPU and loads the kernels,
 * or, with no GPU or no driver, says so and exits 77 without waiting for
 * any other rank; then, collectively, it moves the collectives onto the
 * device's (runtime/cuda/comm_cuda.c). */
typedef struct GrtTarget {
    const char *name;
    const GrtDevice *(*start)(const struct GrtTarget *t, int rank);
    const char *ptx;                 /* the generated kernels, PTX text */
    int n_kernels;
    const char *const *kernel_names; /* [n_kernels]: galvc_kernels' entry i is PTX entry kernel_names[i] */
} GrtTarget;
extern const GrtTarget galvc_target __attribute__((weak));

/* The vision layers' references (runtime/vision.c): ViT's patch gather
 * (pixels 0..255 to [0, 1]), its class token and positions, the pooling and
 * the classifier's softmax cross-entropy, one label per row. */
void grt_patch_gather(float *X, const int32_t *pixels, int B, int ch, int img, int p);
void grt_patch_assemble(float *out, const float *Y, const float *cls, const float *pos, int B, int np, int C);
void grt_patch_assemble_backward(float *dY, float *dcls, float *dpos, const float *dout, int B, int np, int C);
void grt_pool_forward(float *pooled, const float *x, int B, int T, int C, int mean);
void grt_pool_backward(float *dx, const float *dpooled, int B, int T, int C, int mean);
/* Swin's windows (runtime/swin.c; Liu et al. 2021): B images of a side x
 * side grid of tokens cut into windows of M x M, rolled by shift (0, or
 * M / 2 in a shifted block) first; H heads of hd. */
typedef struct GrtWindowShape {
    int B, side, M, shift, H, hd;
} GrtWindowShape;
int grt_window_token(int side, int M, int shift, int w, int i);
int grt_window_rel_index(int M, int i, int j);
float grt_window_mask(int side, int M, int shift, int w, int i, int j);
void grt_window_attention_forward(float *out, float *att, const float *qkv, const float *table,
                                  const GrtWindowShape *g);
void grt_window_attention_backward(float *dqkv, float *dtable, const float *dout, const float *qkv, const float *att,
                                   const GrtWindowShape *g);
void grt_window_gather(float *dst, const float *src, int64_t rows, int C, int side, int M, int shift);
void grt_window_scatter(float *dst, const float *src, int64_t rows, int C, int side, int M, int shift);
void grt_window_softmax_forward(float *att, const float *bias, const float *mask, int64_t rows, int n, int H, int nW,
                                float scale);
/* The window attention through window order and GEMMs (runtime/swin.c): its
 * working buffers (grt_size_work's window part) and the generated kernels
 * it runs where the plan has them (NULL: the references). */
typedef struct GrtWindowWork {
    float *qkvw, *yw, *dqkvw; /* (B T, 3 H hd), (B T, H hd), (B T, 3 H hd): window order */
    float *bias, *mask, *dS;  /* (H, n, n) (its gradient in backward), (nW, n, n), (n, n) */
} GrtWindowWork;
typedef struct GrtWindowKernels {
    GrtWinPermuteFn *gather[2], *scatter[2]; /* [0]: QKV's width, [1]: the output's */
    GrtWinSoftmaxFwdFn *softmax;
    GrtAttSoftmaxBwdFn *softmax_bwd;
} GrtWindowKernels;
void grt_window_attention_gemm_forward(float *out, float *att, const float *qkv, const float *table,
                                       const GrtWindowShape *g, const GrtWindowWork *wk, const GrtWindowKernels *k);
void grt_window_attention_gemm_backward(float *dqkv, float *dtable, const float *dout, const float *qkv,
                                        const float *att, const GrtWindowShape *g, const GrtWindowWork *wk,
                                        const GrtWindowKernels *k);
void grt_merge_gather(float *X, const float *x, int B, int side, int C);
void grt_merge_scatter(float *dx, const float *dX, int B, int side, int C);

/* BERT's segments (grt_token_type): out (B, T, C) += tt[type of t];
 * dtt (types, C) += the sums of dout (B, T, C) over each type's tokens. */
static inline int grt_token_type(int t, int T, int types) { return (int)((int64_t)t * types / T); }
void grt_token_types_forward(float *out, const float *tt, int B, int T, int C, int types);
void grt_token_types_backward(float *dtt, const float *dout, int B, int T, int C, int types);
/* BERT's pooler: h (B, C) = tanh(pre (B, C)) in place; dpre = dh * (1 - h^2) in place of dh. */
void grt_tanh_forward(float *x, size_t n);
void grt_tanh_backward(float *dh, const float *h, size_t n);
int64_t grt_classify_forward(float *losses, float *probs, const float *logits, const int32_t *labels, int stride, int B,
                             int V);
void grt_classify_backward(float *dlogits, const float *probs, const int32_t *labels, int stride, int B, int V,
                           float dloss);

/* ---- T5 (runtime/t5.c) ------------------------------------------------------ */

/* T5's relative position bucket of a key at rel = key - query positions from its query
 * (bidirectional: the encoder's; else causal, the decoder's), with Hugging Face's max_distance 128. */
enum { GRT_T5_MAX_DISTANCE = 128 };
int grt_t5_bucket(int rel, int buckets, int bidirectional, int max_distance);
/* T5 attention, no 1 / sqrt(hd) scale: for sequence b, head h, query t, key t2 < Tk (t2 <= t when causal),
 * att (B, H, Tq, Tk) = softmax(q . k + bias (B, H, Tq, Tk)) (bias NULL: none), out = att v. q (B Tq rows of
 * ldq floats), out (B Tq rows of ldo), k and v (B Tk rows of ldkv), head h at columns h hd. The scores'
 * and outputs' GEMMs are BLAS's, the softmax rows the generated kernels where the plan has them. */
typedef struct GrtT5Attention {
    int B, H, hd, Tq, Tk, ldq, ldo, ldkv, causal;
    const GrtDropout *drop; /* dropout on the probabilities (NULL: none): local head h of sequence b is the
                             * stream's element ((h0 + h) Tq + t) Tk + t2 of sequence drop->seq0 + b */
} GrtT5Attention;
/* The gradients backward accumulates: dq like q, dk and dv like k and v, dbias like the bias (NULL: none). */
typedef struct GrtT5Grads {
    float *dq, *dk, *dv, *dbias;
} GrtT5Grads;
/* The relative bias's softmax rows (the t5_softmax kernels' references): att (rows, T) = softmax(att +
 * bias (rows, T)) over row i's keys ((t0 + i) mod T + 1 when causal, else T), zeros after; backward, datt (rows, T)
 * = att (datt - sum(att datt)) over the keys, zeros after, and dbias (rows, T) += datt. */
void grt_t5_softmax_forward(float *att, const float *bias, int rows, int T, int t0, int causal);
void grt_t5_softmax_backward(float *datt, const float *att, float *dbias, int rows, int T, int t0, int causal);
void grt_t5_attention_forward(const GrtT5Attention *a, float *out, float *att, const float *q, const float *k,
                              const float *v, const float *bias, float *scratch);
/* scratch: 2 Tq Tk floats. */
void grt_t5_attention_backward(const GrtT5Attention *a, const GrtT5Grads *g, const float *dout, const float *att,
                               const float *q, const float *k, const float *v, float *scratch);
/* A T5 block's tensors: the block's first twelve (their biases empty), then its own. */
enum { GRT_T5_LN1 = 0, GRT_T5_QKV = 2, GRT_T5_O = 4, GRT_T5_LN2 = 6, GRT_T5_WI = 8, GRT_T5_WO = 10, GRT_T5_REL = 12,
       GRT_T5_LNC, GRT_T5_CQ, GRT_T5_CKV, GRT_T5_CO, GRT_T5_TENSORS };
struct GrtLayer;
/* Its kept activations carved from kept and its working space from work (the floats each took). */
void *grt_t5_act(const struct GrtLayer *l, float *kept, float *work, size_t *kept_n, size_t *work_n);
/* The block on the stream: in (B, te + td + tr, C) -> out (may be NULL: recompute only); din accumulated. */
void grt_t5_block_forward(struct GrtLayer *l, const float *in, float *out);
void grt_t5_block_backward(struct GrtLayer *l, const float *in, const float *dout, float *din);
/* A layer's linear GEMMs (runtime/layers.c): out (N, OC) = inp (N, C) @ w (OC, C)^T + bias, and its
 * backward (dinp, dw, dbias accumulated), with bf16 operands in the layer's working space under mixed precision. */
void grt_linear_forward(const struct GrtLayer *l, float *out, const float *inp, const float *w, const float *bias, int N,
                        int C, int OC);
void grt_linear_backward(const struct GrtLayer *l, float *dinp, float *dw, float *dbias, const float *dout,
                         const float *inp, const float *w, int N, int C, int OC);

/* ---- tensor-parallel layers (runtime/layers.c) ----------------------------- */

/* The layer kinds the runtime trains. A transformer block is Megatron-LM's
 * (Shoeybi et al. 2019): QKV and MLP-up column-parallel, attention output
 * and MLP-down row-parallel, heads and FFN columns split over the TP group,
 * one all-reduce after each row-parallel GEMM forward and one before each
 * column-parallel GEMM backward. Embedding and head are vocabulary-parallel. */
typedef enum GrtLayerKind { GRT_EMBEDDING, GRT_BLOCK, GRT_NORM, GRT_HEAD, GRT_PATCH, GRT_CLASSIFIER, GRT_MERGE } GrtLayerKind;
/* GRT_PATCH: ViT's patch embedding (Dosovitskiy et al. 2021, eq. 1): each
 * image (channels, image, image) of pixels 0..255, scaled to [0, 1], cut
 * into (image / patch)^2 patches of channels * patch^2 values, each
 * projected to C, after a learned class token; learned positions added to
 * all T = patches + 1 tokens. GRT_CLASSIFIER: a linear head on the class
 * token (or the mean of the tokens) with softmax cross-entropy over V
 * classes, one loss per image (its label at every position of the
 * targets), optionally through BERT's pooler (Devlin et al. 2019: dense +
 * tanh on the first token; Hugging Face's BertPooler) as in
 * BertForSequenceClassification. Both are replicated over a TP group (no
 * collectives). A plain patch embedding (Swin's) has neither class token nor
 * positions. A block with a window is Swin's (Liu et al. 2021): attention
 * within windows of the square grid of its T tokens, a relative position
 * bias table (H, (2 window - 1)^2) split by heads with them, shifted
 * windows when shift. GRT_MERGE: Swin's patch merging, (B, T, C) ->
 * (B, T / 4, 2 C): 2 x 2 neighbours concatenated, LayerNorm, a linear map
 * without bias; replicated over a TP group. */

/* A layer as the program declares it: full (unsharded) sizes. */
typedef struct GrtLayerSpec {
    GrtLayerKind kind;
    const char *name;
    int C;               /* hidden size */
    int H, KVH, hd, F;   /* block: heads, key/value heads, head size, FFN size */
    int V;               /* embedding and head: vocabulary */
    int positions;       /* embedding: learned positions (0: none) */
    int causal, pre_norm, rms, swiglu, bias, rope, tied;
    float eps, rope_theta;
    float dropout;       /* embedding, block and T5 norm: the drop probability (0: none) */
    int image, patch, channels; /* patch embedding: image side, patch side, channels (pixels) */
    int pool_mean;              /* classifier: pool the mean of the tokens (else the first, class token) */
    int pooler;                 /* classifier: BERT's pooler (dense + tanh) between the pooled token and the classes */
    int types;                  /* embedding: token types (segments; 0: none); token t of T is of type t * types / T */
    /* T5 (Raffel et al. 2020; Hugging Face's T5ForConditionalGeneration), every layer of a T5 model: each
     * sequence's stream is te encoder rows, td decoder rows, then tr rows holding the two stacks' relative
     * position bias tables (galvrt_sizes.h, grt_t5_rows); 0 when the model is not T5. */
    int te, td, tr;
    int buckets;                /* T5 block: its stack's relative position buckets */
    int rel_own;                /* T5 block: holds its stack's bias table (buckets, H) and writes it to the stream */
    int cross;                  /* T5 block: a decoder block (causal self-attention, cross-attention to the encoder) */
    int part;                   /* T5 norm: normalizes the encoder rows (1) or the decoder rows (2); the rest passes */
    float head_scale;           /* head: logits of head_scale x (T5's tied head: C^-1/2); 0 means 1 */
    int window, shift;          /* block: Swin's window side (0: full attention), shifted windows */
    int plain;                  /* patch embedding: no class token, no positions (Swin's) */
    int T;                      /* tokens per sequence the layer reads (0: the program's seq; Swin's stages differ) */
    int gemm16; /* mixed precision: its linears' GEMMs round their operands to bf16 and accumulate in fp32,
                   holding them in 2 or 4 bytes (GRT_GEMM16_BITS, _WIDE; galvrt_sizes.h), and a block keeps
                   its activations as bf16 (grt_kept16); 0: fp32 GEMMs and activations */
} GrtLayerSpec;

/* One parameter tensor of a layer: where it lies in the layer's slice. */
typedef struct GrtTensor {
    const char *name;
    size_t offset, n; /* floats */
    int decay;        /* takes weight decay (matrices; not biases or norms) */
    int sharded;      /* split over the TP group (else replicated on it) */
} GrtTensor;

/* A layer on one rank: its shard of parameters and gradients (slices of the
 * program's single allocations), the activations it keeps, its TP group. */
typedef struct GrtLayer {
    GrtLayerSpec s;
    GrtComm *tp;          /* NULL when tp = 1 */
    int tp_size, tp_rank;
    int B, T;             /* sequences and tokens per micro-batch on this rank */
    int sp;               /* Megatron sequence parallelism: the stream's (B T) rows split over the TP group
                           * (Korthikanti et al. 2022); the layer's own rows are grt_layer_rows */
    float *full, *local;  /* sequence parallel: the working buffers its collectives fill, (B T, C) and (B T / tp, C) */
    GrtComm *ul;          /* Ulysses (runtime/ulysses.c): the u ranks that split each sequence (NULL: none); T is
                           * then the T / u positions [ul_rank T, (ul_rank + 1) T) of each sequence it holds */
    int ul_size, ul_rank;
    GrtComm *cp;          /* context parallelism (runtime/ring_attn.c): the cp ranks that split each sequence
                           * (NULL: none); T is then the T / cp positions grt_ring_position(T cp, cp, cp_rank, t) */
    int cp_size, cp_rank;
    int32_t *ul_tokens;   /* an embedding or head under Ulysses or CP: its tokens' inputs, then targets, (B, T)
                           * each, copied from the micro-batch's whole sequences into its working space */
    float *shared;        /* sequence parallel: the gradients of its replicated tensors from this
                           * micro-batch's rows, summed over the TP group before they join grads */
    size_t n_shared;
    int H_l, KVH_l, F_l, V_l; /* this rank's heads, key/value heads, FFN columns, vocabulary rows */
    size_t n_params;      /* floats of parameters on this rank */
    float *params, *grads;
    void *gemm16;         /* s.gemm16: the rounded operands' area, the end of the working space (galvrt_sizes.h) */
    GrtTensor tensors[20];
    int n_tensors;
    const struct GrtLayer *tied_to; /* a tied head: the embedding whose table it uses */
    int ckpt;             /* checkpointed: keeps only its input; backward recomputes the forward */
    void **slot_act;      /* the activations kept for each micro-batch in flight (layers.c) */
    int n_slots;
    void *act;            /* the slot in use */
    size_t act_bytes;     /* what this layer allocated for them (shared buffers count once) */
    int index;            /* the layer's index in the model, for its dropout keys */
    int64_t correct;      /* classifier: images whose most probable class was the label, this micro-batch */
    int label_stride;     /* classifier: the targets' row length, where it is not T (0: T) */
    uint64_t drop_seed;   /* the run's seed; */
    int64_t drop_step;    /* the step; */
    int64_t drop_seq0;    /* and the step's index of this micro-batch's first sequence here (grt_shard sets them) */
} GrtLayer;

/* Fill in local sizes and the parameter count; no memory is touched. */
void grt_layer_setup(GrtLayer *l, const GrtLayerSpec *s, GrtComm *tp, int B, int T);
/* The sizes grt_layer_setup finds for TP rank tp_rank of tp_size, without a
 * group: how another plan cut its shards (checkpoints written under one plan
 * load under another). */
void grt_layer_shape(GrtLayer *l, const GrtLayerSpec *s, int tp_size, int tp_rank);
/* Floats of working space the layer needs (shared by every layer of a
 * stage: one layer runs at a time), and of the stage's checkpoint area:
 * checkpointed, the activations it rebuilds in backward; with bf16 kept
 * activations, their fp32 copy (galvrt_sizes.h's grt_size_ckpt; shared by
 * every layer of a stage the same way). */
size_t grt_layer_work_floats(const GrtLayer *l);
size_t grt_layer_ckpt_floats(const GrtLayer *l);
/* Point the layer at its parameters and gradients, at the shared working
 * space and checkpoint area (sized by the two functions above), and allocate
 * what it keeps for backward: `slots` sets, one per micro-batch in flight. */
void grt_layer_bind(GrtLayer *l, float *params, float *grads, int slots, float *work, float *ckpt);
/* Initialize the parameters (as layer `index` of a model with n_layers blocks). */
void grt_layer_init(GrtLayer *l, uint64_t seed, int index, int n_layers);
/* Run the next forward or backward on micro-batch slot `slot`'s activations. */
void grt_layer_use_slot(GrtLayer *l, int slot);
/* in (B, T, C) -> out (B, T, C); the embedding reads tokens, the head
 * writes per-token losses (B, T) and reads targets. */
void grt_layer_forward(GrtLayer *l, const float *in, const int32_t *tokens, const int32_t *targets, float *out);
/* dout (B, T, C) -> din (B, T, C), both accumulated; the head starts from
 * dloss (the weight of each token's loss) instead of dout. An embedding with
 * dropout drops dout in place: the gradient of its output is its alone. */
void grt_layer_backward(GrtLayer *l, const float *in, const int32_t *tokens, const int32_t *targets,
                        const float *dout, float dloss, float *din);

/* A layer in the phases between its TP group's collectives, for a program
 * that runs each collective itself (grt_layer_forward and _backward run the
 * phases and the collectives in one call). A phase that returns a buffer
 * leaves in it what the next collective takes: partial sums (B, T, C) to
 * all-reduce over the TP group, or the logits of this rank's vocabulary rows
 * (B T, V_l) to all-gather into grt_head_gathered (tp, B T, V_l). */
float *grt_embedding_partial(GrtLayer *l, const int32_t *tokens, float *out); /* its vocabulary rows' part, in out */
void grt_embedding_output(GrtLayer *l, float *out); /* the summed output's dropout, in place (none at p = 0) */
float *grt_block_attention(GrtLayer *l, const float *x); /* attention's row-parallel output projection */
float *grt_block_mlp(GrtLayer *l, const float *x);       /* bias, residual, norm, the MLP's down projection */
void grt_block_output(GrtLayer *l, float *out);          /* out; NULL: a checkpointed block's recomputation */
float *grt_head_logits(GrtLayer *l, const float *x);
float *grt_head_gathered(GrtLayer *l);
void grt_head_loss(GrtLayer *l, const int32_t *targets, float *losses); /* softmax cross-entropy; losses (B T) may be NULL */
float *grt_block_mlp_backward(GrtLayer *l, const float *dout); /* at the MLP's column-parallel input */
float *grt_block_attention_backward(GrtLayer *l, const float *x, const float *dout); /* at QKV's input */
void grt_block_input_backward(GrtLayer *l, const float *x, float *dx); /* dx accumulated */
float *grt_head_backward_partial(GrtLayer *l, const float *x, const int32_t *targets, float dloss);
void grt_head_input_backward(GrtLayer *l, float *din); /* din accumulated */

/* Megatron sequence parallelism (Korthikanti et al. 2022, section 4.2.2):
 * between blocks each TP rank holds (B T / tp, C), rows [r B T / tp, (r + 1)
 * B T / tp) of its sequences; the norms, dropouts and residuals run on
 * them; an all-gather (g) before each column-parallel GEMM and a
 * reduce-scatter (g-bar) after each row-parallel one replace the
 * all-reduces, and backward mirrors them, gathering the kept norm outputs
 * again. The program runs the collectives between these phases; `full` and
 * `local` are grt_layer_full and grt_layer_local. Pre-norm blocks only. */
int grt_layer_rows(const GrtLayer *l);            /* rows of the stream it holds: B T, or B T / tp */
float *grt_layer_full(GrtLayer *l);               /* (B T, C): what an all-gather fills */
float *grt_layer_local(GrtLayer *l);              /* (B T / tp, C): what a reduce-scatter fills */
float *grt_sp_norm1(GrtLayer *l, const float *x); /* the first norm of the local rows, to gather */
float *grt_sp_attention(GrtLayer *l);             /* from the gathered norm: partial output projection */
float *grt_sp_norm2(GrtLayer *l, const float *x); /* bias, dropout, residual, second norm of the local rows */
float *grt_sp_mlp(GrtLayer *l);                   /* from the gathered norm: partial down projection */
void grt_sp_output(GrtLayer *l, float *out);      /* bias, dropout, residual; NULL: a recomputation */
const float *grt_sp_mlp_out_grad(GrtLayer *l, const float *dout); /* the local gradient at the MLP's output, to gather */
float *grt_sp_kept_norm(GrtLayer *l, int which);             /* the local output of norm 1 or 2, to gather again */
float *grt_sp_norm_full(GrtLayer *l);                        /* (B T, C): where it gathers */
float *grt_sp_mlp_backward(GrtLayer *l);                     /* partial gradient at the MLP's input */
const float *grt_sp_attention_out_grad(GrtLayer *l, const float *dout); /* at attention's output, to gather */
float *grt_sp_attention_backward(GrtLayer *l);               /* partial gradient at QKV's input */
void grt_sp_input_backward(GrtLayer *l, const float *x, float *dx); /* dx (local rows) accumulated */
float *grt_sp_shared_grads(GrtLayer *l);                     /* the replicated tensors' gradients, to all-reduce */
void grt_sp_shared_grads_add(GrtLayer *l);                   /* ... added to the layer's gradients */
float *grt_sp_embed_grad(GrtLayer *l, float *dout);          /* the embedding's local output gradient through
                                                              * its dropout, in place, to gather */
void grt_embedding_backward_full(GrtLayer *l, const int32_t *tokens, const float *dout); /* from the gathered gradient */

/* The whole tensor k of the layer (as one rank would hold it) gathered from
 * the TP group's shards into full; returns its length in floats. */
size_t grt_layer_gather(GrtLayer *l, int k, float *full);
/* Tensor k whole, as rows x cols row-major (1 x n for vectors); linear
 * weights are (OC, C), tables (V, C) without the TP padding. */
void grt_tensor_shape(const GrtLayer *l, int k, int64_t *rows, int64_t *cols);
/* No communication: copy this TP rank's part of tensor k between its shard
 * (tensors[k].n floats) and the whole tensor, into whole (to_whole) or into
 * the shard (its padded vocabulary rows zeroed): grt_layer_gather's piece
 * and its inverse. */
void grt_layer_place(const GrtLayer *l, int k, float *shard, float *whole, int to_whole);

#include "galvrt_sizes.h"

/* ---- Ulysses sequence parallelism (runtime/ulysses.c) --------------------- */

/* A Ulysses group (Jacobs et al. 2023): u ranks split each of B sequences
 * of T tokens, rank r holding positions [r T / u, (r + 1) T / u); inside
 * attention each holds the whole sequences of H / u query heads and KVH / u
 * key/value heads (head group r). H and KVH divide by u, T too. */
typedef struct GrtUlysses {
    GrtComm *group;
    int u, B, T, H, KVH, hd; /* T: the whole sequence; H, KVH: every head */
    int causal, rope;
    int bf16; /* mixed precision's attention core (grt_attention_backward_in) */
    float rope_theta;
    GrtAttSoftmaxFwdFn *softmax;         /* the generated softmax kernels of (T, hd), or NULL: the reference's */
    GrtAttSoftmaxBwdFn *softmax_bwd;
} GrtUlysses;

/* Its buffers (galvrt_sizes.h's Ulysses terms, Wq = (H + 2 KVH) hd / u,
 * Wo = H hd / u): kept from forward to backward, qkvw (B T, Wq) its heads'
 * rotated Q K V over the whole sequences, attw (B T, Wo) their attention
 * output, att (B, H / u, T, T) the probabilities; working space, send, recv
 * and dqkv_recv (B T, Wq) each, dattw (B T, Wo), rope (B T, (H + KVH) hd / u). */
typedef struct GrtUlyssesBufs {
    float *qkvw, *attw, *att;
    float *send, *recv, *dqkv_recv, *dattw, *rope;
} GrtUlyssesBufs;

/* The exchange of rows whose columns are seg segments of widths w (each
 * dividing by u; the rank's part j of segment s is its w[s] / u columns
 * from j w[s] / u): local (B, T / u, sum w) -> whole (B, T, sum w / u),
 * part r of every segment over the whole sequences on rank r; send and recv
 * hold B T sum(w) / u floats each. _to_tokens is its inverse. */
void grt_ulysses_to_heads(const GrtUlysses *x, const int *w, int seg, float *local, float *send, float *recv,
                          float *whole);
void grt_ulysses_to_tokens(const GrtUlysses *x, const int *w, int seg, const float *whole, float *send, float *recv,
                           float *local);
/* out (B, T / u, H hd) = attention of the local tokens' qkv (B, T / u, (H + 2 KVH) hd), not yet rotated:
 * exchanged to heads, rotary at the whole sequences' positions, causal (x->causal) attention, exchanged back. */
void grt_ulysses_attention_forward(const GrtUlysses *x, const GrtUlyssesBufs *m, float *out, float *qkv);
/* Its three steps, for a caller that keeps what each leaves (bf16 kept activations): qkv's heads exchanged
 * into m->qkvw and rotated; attention into m->attw and m->att; m->attw exchanged back into out. */
void grt_ulysses_qkv_to_heads(const GrtUlysses *x, const GrtUlyssesBufs *m, float *qkv);
void grt_ulysses_attend(const GrtUlysses *x, const GrtUlyssesBufs *m);
void grt_ulysses_out_to_tokens(const GrtUlysses *x, const GrtUlyssesBufs *m, float *out);
/* dqkv (B, T / u, (H + 2 KVH) hd), written, of the local tokens from dout (B, T / u, H hd), through the forward's kept buffers. */
void grt_ulysses_attention_backward(const GrtUlysses *x, const GrtUlyssesBufs *m, float *dqkv, float *dout);

/* ---- ring attention (runtime/ring_attn.c) -------------------------------- */

/* Attention over a context-parallel group of cp ranks (ring attention, Liu
 * et al. 2023; Megatron-Core's CP): each rank holds Tl = T / cp positions of
 * every sequence, the load-balanced chunks r and 2 cp - 1 - r of 2 cp (rank r
 * of the group), so a causal mask gives every rank as much work. Queries
 * (B, Tl, H, hd), keys and values (B, Tl, KVH, hd; H a multiple of KVH,
 * GQA), the output (B, Tl, H, hd) and each query row's log-sum-exp (B, H,
 * Tl), fp32, rows in the rank's position order. The K,V chunks pass around
 * the ring (cp - 1 steps), each block's scores merged into the output by the
 * online-softmax rule; backward passes K,V again and carries dK,dV home (cp
 * steps). Causal masking compares global positions. The working space is
 * galvrt_sizes.h's grt_ring_work. */
typedef struct GrtRingAttn {
    GrtComm *group;    /* the CP group (cp ranks) */
    int B, T, H, KVH, hd;
    int causal;
} GrtRingAttn;

/* Floats of working space ring attention takes (grt_ring_work). */
size_t grt_ring_attn_work_floats(const GrtRingAttn *a);
/* The global position of the rank's local row t (0 <= t < T / cp). */
int grt_ring_position(int T, int cp, int rank, int t);
void grt_ring_attn_forward(const GrtRingAttn *a, const float *q, const float *k, const float *v, float *out,
                           float *lse, float *work);
/* dq, dk, dv (the rank's rows) from dout and forward's out and lse; overwritten. */
void grt_ring_attn_backward(const GrtRingAttn *a, const float *q, const float *k, const float *v, const float *out,
                            const float *lse, const float *dout, float *dq, float *dk, float *dv, float *work);

/* ---- layouts and resharding (runtime/reshard.c) ------------------------- */

/* Where a layer runs: the tp * dp world ranks [base, base + tp * dp) of its
 * pipeline stage, as dp groups of tp ranks each. TP groups are consecutive
 * ranks (consec) or strided by dp. DP index j holds sequences
 * [j mb / dp, (j + 1) mb / dp) of every micro-batch of mb sequences, and its
 * TP group replicates them (Megatron's layout of activations). */
typedef struct GrtLayout {
    int base, tp, dp, consec;
    int sp; /* sequence parallel: TP index t holds rows [t, t + 1) B T / tp of its DP index's B sequences */
    int ul; /* Ulysses degree (tp 1; 0 or 1: none): the stage's dp x ul ranks, rank base + d ul + r holding
             * positions [r, r + 1) T / ul of each of DP index d's sequences */
    int cp; /* CP degree (tp 1; 0 or 1: none): the stage's dp x cp ranks, rank base + d cp + r holding chunks r
             * and 2 cp - 1 - r of 2 cp of each of DP index d's sequences (grt_ring_position) */
} GrtLayout;

/* Floats of the stream one rank of L holds for a micro-batch of mb sequences of seq_floats each. */
size_t grt_layout_floats(const GrtLayout *L, int mb, size_t seq_floats);

int grt_layout_has(const GrtLayout *L, int rank);      /* is this world rank in the layout's stage? */
int grt_layout_tp_index(const GrtLayout *L, int rank); /* its place in its TP group */
int grt_layout_dp_index(const GrtLayout *L, int rank); /* its place in its DP group = its TP group's number */
int grt_layout_rank(const GrtLayout *L, int tp_index, int dp_index); /* the world rank at that place */

/* Moving a micro-batch's activation (or its gradient), seq_floats per
 * sequence, from one layout to another: each rank of `to` receives the
 * sequences it lacks from one rank of `from` that holds them (itself when it
 * can; otherwise the holder whose TP index matches its own), so when the
 * TP group grows this is the all-gather the planner costs, and when it
 * shrinks each rank keeps a slice. Buffers hold a rank's sequences
 * contiguously, in order. Every rank of both layouts computes the same
 * transfers; a rank in neither has nothing to do. */
typedef struct GrtReshard GrtReshard;
GrtReshard *grt_reshard_new(const GrtLayout *from, const GrtLayout *to, int mb, size_t seq_floats, int rank);
/* Both layouts in one stage: send, receive and copy at once. */
void grt_reshard_run(const GrtReshard *r, GrtComm *world, const float *src, float *dst, int tag);
/* Across stages: the sending side starts its sends (returns how many
 * requests it wrote to reqs, at most grt_reshard_sends(r)); the receiving
 * side receives (blocking). */
int grt_reshard_isend(const GrtReshard *r, GrtComm *world, const float *src, int tag, GrtRequest **reqs);
void grt_reshard_recv(const GrtReshard *r, GrtComm *world, float *dst, int tag);
int grt_reshard_sends(const GrtReshard *r);

/* ---- parameters, data and metrics (runtime/init.c, data.c, metrics.c) ----- */

/* Deterministic initialization that does not depend on the plan: element
 * (row, col) of tensor `tensor_id` under `seed` is the same normal(0, std)
 * draw whichever rank holds it, computed from a counter-based generator
 * (no state), so every TP shard and DP replica agrees with the 1-rank run.
 * dst (rows, cols) receives rows row_index[0..rows) (global row numbers) and
 * columns [col0, col0 + cols) of a tensor whose full rows have full_cols. */
void grt_init_normal(float *dst, int rows, int cols, const int64_t *row_index, int64_t col0, int64_t full_cols,
                     float std, uint64_t seed, uint64_t tensor_id);
void grt_fill(float *dst, size_t n, float value);
/* The generator's 64-bit mix (SplitMix64's finalizer), for other counter-based draws. */
uint64_t grt_hash64(uint64_t x);

/* Training data: an llm.c token file (a 256 x int32 header with magic
 * 20240520 and version 1, then uint16 tokens), any other file read as bytes
 * (vocabulary 256), or synthetic tokens when path is NULL. */
typedef struct GrtData GrtData;
/* Opens and checks the file; on any problem prints why and returns NULL. */
GrtData *grt_data_open(const char *path, int vocab, uint64_t seed);
void grt_data_close(GrtData *d);
int64_t grt_data_tokens(const GrtData *d); /* tokens in the file (or a large number when synthetic) */
/* Step `step`'s global batch is global_batch sequences of T + 1 tokens read
 * consecutively from position step * global_batch * T (wrapping); this
 * fills sequences [first, first + count) of it: inputs (count, T) and
 * targets (count, T) = the same windows shifted by one. */
/* Images (runtime/data.c): path NULL for synthetic ones; NULL with a
 * message when unusable. grt_data_images fills pixels (count, ch img img)
 * and each image's label into its row of targets (count, T). */
GrtData *grt_data_open_images(const char *path, int channels, int image, int classes, uint64_t seed);
void grt_data_images(GrtData *d, int64_t step, int global_batch, int T, int first, int count, int32_t *pixels,
                     int32_t *targets);
void grt_data_batch(GrtData *d, int64_t step, int global_batch, int T, int first, int count, int32_t *inputs,
                    int32_t *targets);
/* T5's records (the first layer's te, td, tr): sequence s of the step is the te + td tokens from p = (step
 * global_batch + s) (te + td), the encoder's input the first te, the target the next td. Its stream's
 * tokens (count, te + td + tr): the te, then the decoder's input (GRT_T5_START, then the target shifted
 * right by one: teacher forcing), then -1 (no token: the table rows); its targets: -1 on the encoder's and
 * the table's rows (no loss), the target on the decoder's. */
enum { GRT_T5_START = 0 }; /* the decoder's start token: Hugging Face's T5 starts from its pad, 0 */
void grt_data_t5(GrtData *d, int64_t step, int global_batch, const GrtLayerSpec *first, int first_seq, int count,
                 int32_t *inputs, int32_t *targets);

/* ---- checkpoint files (runtime/checkpoint.c) ------------------------------- */

/* These report failures (with the system's reason in err) instead of
 * stopping: the program decides how every rank stops together. */

typedef struct GrtSpan {
    const void *p;
    size_t n; /* bytes */
} GrtSpan;

/* CRC-32 (IEEE, zlib's crc32) of n bytes at p, continuing crc (0 to start). */
uint32_t grt_crc32(uint32_t crc, const void *p, size_t n);
/* Write the n spans to path all or nothing: path.tmp, fsync, rename, fsync
 * of the folder; *crc (may be NULL) gets the bytes' CRC-32. 0 on success;
 * else -1, the reason in err, path as it was and no path.tmp left. */
int grt_write_atomic(const char *path, const GrtSpan *spans, int n, uint32_t *crc, char *err, size_t errlen);
/* Size and CRC-32 of the whole file; -1 when it cannot be read. */
int grt_file_crc32(const char *path, uint64_t *bytes, uint32_t *crc);
/* n bytes at offset off of path into buf; -1 when unreadable or shorter. */
int grt_read_range(const char *path, uint64_t off, void *buf, size_t n);
/* mkdir -p, then check the folder is writable; -1 with the reason in err. */
int grt_make_dirs(const char *path, char *err, size_t errlen);
/* N of every folder PREFIX-N ("step-", "refused-step-"; not a link) of dir,
 * newest first (at most cap); -1 when dir cannot be listed. */
int grt_ckpt_steps(const char *dir, const char *prefix, long *steps, int cap);
/* Remove a folder and the files in it, never following a link (a link is
 * removed itself); -1 on failure. */
int grt_remove_dir(const char *path);

/* ---- safetensors (runtime/safetensors.c) ------------------------------------ */

typedef struct GrtSafetensors GrtSafetensors;
typedef struct GrtStWriter GrtStWriter;
typedef struct GrtStTensor {
    const char *name;
    int ndim;
    int64_t shape[4];
} GrtStTensor;

/* Open a file and check its whole header (length, JSON, every entry's dtype,
 * shape and offsets); NULL with the reason in err. */
GrtSafetensors *grt_st_open(const char *path, char *err, size_t errlen);
void grt_st_close(GrtSafetensors *f);
int grt_st_count(const GrtSafetensors *f);
/* Tensor i's name; its dtype ("F32", ...) and shape through the pointers (each may be NULL). */
const char *grt_st_info(const GrtSafetensors *f, int i, const char **dtype, int *ndim, const int64_t **shape);
int grt_st_find(const GrtSafetensors *f, const char *name); /* its index, or -1 */
/* An F32 tensor's data into dst; -1 with the reason in err. */
int grt_st_read_f32(const GrtSafetensors *f, int i, float *dst, char *err, size_t errlen);
/* Writing: the header of n F32 tensors (meta: key, value, ..., NULL), then
 * each tensor's data with grt_st_put in the same order, then grt_st_finish
 * (fsync and rename of path.tmp into path). */
GrtStWriter *grt_st_create(const char *path, const GrtStTensor *t, int n, const char *const *meta, char *err,
                           size_t errlen);
void grt_st_put(GrtStWriter *w, const float *data, size_t n);
int grt_st_finish(GrtStWriter *w, char *err, size_t errlen);

/* The BLAS kernels (runtime/blas.c): the OpenBLAS core the GEMMs run, the
 * one this CPU's features call for (NULL: no preference), and, called
 * first thing (grt_init does), a restart with OPENBLAS_CORETYPE set when
 * OpenBLAS picked a slower core and the user set none. grt_blas_note says
 * what happened, or returns NULL when there is nothing to say. */
const char *grt_blas_core(void);
int grt_blas_threads(void); /* the threads its GEMMs run on */
const char *grt_blas_core_for_cpu(void);
void grt_blas_settle(char **argv);
const char *grt_blas_note(char *buf, size_t n);

/* Wall-clock milliseconds since an arbitrary start. */
double grt_now_ms(void);
/* grt_alloc: tracked memory; grt_peak_bytes: the most it has held at once. */
void *grt_alloc(size_t bytes);   /* zeroed, 64-byte aligned; aborts the job when memory runs out */
void grt_free(void *p, size_t bytes);
int64_t grt_peak_bytes(void);
/* Ranks of the job on this node: the launcher's count (OMPI_COMM_WORLD_LOCAL_SIZE,
 * MPI_LOCALNRANKS), else all `ranks` (one node). */
int grt_local_ranks(int ranks);
/* Cores this rank may use: its affinity mask's when the launcher bound it to
 * some cores, else the node's online cores shared by its local_ranks; at least 1. */
int grt_rank_cores(int local_ranks);
/* BLAS threads: grt_rank_cores(local_ranks); OPENBLAS_NUM_THREADS wins. */
void grt_set_threads(int local_ranks);

/* ---- the thread pool of the row-parallel kernels (runtime/pool.c) ---------- */

/* A job: rows [0, rows) cut into contiguous parts (a few per thread, at
 * most GRT_POOL_PARTS), fn run on each by whichever thread claims it, the
 * caller's included. Parts depend only on rows, cols and the thread count. A vector summed over rows (a weight gradient) is acc[k]
 * (acc_n floats; NULL: none): part p adds into grt_rows_acc(job, p, k), a
 * zeroed copy for p > 0, and the copies are added into acc[k] in part order
 * when every part is done, so results never depend on timing. */
#define GRT_ROWS_ACC 2
#define GRT_POOL_PARTS 64 /* the most parts a job has */
typedef struct GrtRows GrtRows;
struct GrtRows {
    int64_t rows;
    int64_t cols; /* elements of work per row: a job too small to share stays on the caller */
    void (*fn)(const GrtRows *job, int64_t begin, int64_t end, int part);
    void *ctx;    /* the kernel's arguments */
    float *acc[GRT_ROWS_ACC];
    size_t acc_n;
};
/* Threads for the pool: GALVRT_THREADS when set, else grt_rank_cores(local_ranks). */
int grt_pool_threads_for(int local_ranks);
/* Make threads - 1 workers (sleeping until a job comes); 1: no pool. grt_finalize stops them. */
void grt_pool_start(int threads);
void grt_pool_stop(void);
int grt_pool_threads(void); /* 1 when no pool runs */
/* Run the job, returning when every part is done; the main thread only (MPI's funneled mode). */
void grt_pool_run(const GrtRows *job);
float *grt_rows_acc(const GrtRows *job, int part, int k);


/* ---- collectives (runtime/comm.c and one backend file each) --------------- */

/* Every collective call checks its result and, on failure, prints which
 * call failed on which rank and aborts every rank of the job. */

/* Start the runtime on every rank (MPI_Init); the world group. */
GrtComm *grt_init(int *argc, char ***argv);
void grt_finalize(void);
/* Every rank of the job exits with this status, after this rank prints msg
 * (NULL: nothing, when another rank has said why). */
_Noreturn void grt_abort(const char *msg, int status);

int grt_rank(const GrtComm *c);
int grt_size(const GrtComm *c);
/* Split c into groups: ranks with the same color form one, ordered by key. */
GrtComm *grt_comm_split(GrtComm *c, int color, int key);

void grt_allreduce(GrtComm *c, float *buf, size_t n);                       /* in place, sum */
void grt_allreduce_double(GrtComm *c, double *buf, size_t n);               /* in place, sum */
void grt_reduce_scatter(GrtComm *c, const float *in, float *out, size_t n); /* in: size * n, out: n */
void grt_allgather(GrtComm *c, const float *in, float *out, size_t n);      /* in: n (may be out's own block), out: size * n */
/* out block j (n) = rank j's in block r (n), r this rank; in and out size * n, apart (DeepSpeed-Ulysses' exchange) */
void grt_alltoall(GrtComm *c, const float *in, float *out, size_t n);
void grt_broadcast(GrtComm *c, float *buf, size_t n, int root);
void grt_send(GrtComm *c, const float *buf, size_t n, int peer, int tag);
void grt_recv(GrtComm *c, float *buf, size_t n, int peer, int tag);
void grt_barrier(GrtComm *c);
/* Non-blocking forms; grt_wait completes and frees the request. */
GrtRequest *grt_iallreduce(GrtComm *c, float *buf, size_t n);
GrtRequest *grt_isend(GrtComm *c, const float *buf, size_t n, int peer, int tag);
GrtRequest *grt_irecv(GrtComm *c, float *buf, size_t n, int peer, int tag);
void grt_wait(GrtRequest *r);
/* The watchdog (runtime/watchdog.c), started by grt_init: a call above (or
 * a group split) still running after the limit stops every rank with one
 * line naming the call, its group and the step. The limit in seconds
 * (default 600, the program's --comm-timeout); the step the calls that
 * follow belong to (1-based; 0 before the first, -1 after the last). */
void grt_watchdog_limit(double seconds);
void grt_watchdog_step(long step);

/* Where a step's time goes (runtime/breakdown.c): with GALVRT_BREAKDOWN=1
 * each rank times the named parts of every step (the rest is compute) and
 * prints their mean after the last step; otherwise every call is a no-op. */
typedef enum GrtPart {
    GRT_PART_COMPUTE, /* what no part below names: the copies between layers, TP plans' phases */
    /* a whole layer's forward and backward (grt_layer_forward, _backward), in GrtLayerKind's order */
    GRT_PART_FWD_EMBEDDING, GRT_PART_FWD_BLOCK, GRT_PART_FWD_NORM, GRT_PART_FWD_HEAD,
    GRT_PART_BWD_EMBEDDING, GRT_PART_BWD_BLOCK, GRT_PART_BWD_NORM, GRT_PART_BWD_HEAD, GRT_PART_ALLREDUCE, GRT_PART_ALLGATHER, GRT_PART_REDUCE_SCATTER, GRT_PART_BROADCAST,
    GRT_PART_P2P, GRT_PART_BARRIER, GRT_PART_DATA, GRT_PART_ZERO, GRT_PART_NORM, GRT_PART_OPTIMIZER, GRT_PART_LOG,
    GRT_PART_COUNT
} GrtPart;
void grt_breakdown_init(void);
void grt_breakdown_step_begin(void);
void grt_breakdown_step_end(void);
void grt_part_begin(GrtPart part); /* pauses the part it is inside until grt_part_end */
void grt_part_end(void);
GrtPart grt_part_of(const char *op); /* a collective's op name ("allreduce", "send", ...) as its part */
void grt_breakdown_report(int rank);

/* ---- the training program's frame (runtime/run.c, options.c, pipe.c,
 *      ckpt_state.c, hf_names.c) ------------------------------------------------
 * Everything a program galvc emits needs that is not its plan: options,
 * data, the step's bookkeeping and report, the gradient norm and the
 * optimizer, memory accounting, checkpoints, safetensors and --dump. The
 * program itself is the plan written out: it makes its groups from constant
 * rank lists, sets up its stage's shards with constant sizes and offsets,
 * and lists every layer call and every collective of a micro-batch's
 * forward and backward in order; it calls these around them. */

/* How the plan cuts one layer, as data: what a checkpoint records, and where
 * --dump and --export-safetensors find a layer's shards. */
typedef struct GrtLayerCut {
    int stage, tp, dp, sdp; /* sdp: the training state split over the DP group (ZeRO-1, 2 or 3) */
} GrtLayerCut;

/* The optimizers the runtime steps (torch.optim's definitions). */
typedef enum GrtOptimizer { GRT_ADAMW, GRT_ADAM, GRT_SGD } GrtOptimizer;
/* The learning rate after warm-up: held, or decayed linearly or along a cosine. */
typedef enum GrtDecay { GRT_DECAY_CONSTANT, GRT_DECAY_LINEAR, GRT_DECAY_COSINE } GrtDecay;

/* The constants a program hands the runtime. */
typedef struct GrtProgram {
    const char *model;
    int ranks, pp, n_layers;     /* the head is layer n_layers - 1 */
    int global_batch, micro_batches, seq, vocab, hidden;
    int tied_to;                 /* the embedding a tied head shares its table with; -1: none */
    int tied_copy;               /* the tied head keeps its own copy of the table (another stage or layout) */
    long default_steps;
    GrtOptimizer optimizer;
    float lr, beta1, beta2, eps, weight_decay, clip, momentum;
    int nesterov;                /* SGD */
    long warmup;                 /* steps of linear warm-up to lr */
    GrtDecay decay;              /* then over steps [warmup, decay_steps) down to min_lr */
    long decay_steps;
    float min_lr;
    double fwd_flops_per_seq;    /* forward FLOPs of one sequence, whole model */
    double memory_per_device;    /* bytes a device has (0: unknown); a plan over it is refused */
    const double *predicted_mem; /* [pp]: bytes per rank of each stage, as planned */
    double predicted_step_ms, predicted_compute_ms, predicted_comm_ms, predicted_bubble_ms;
    double predicted_calls;      /* blocking collectives a step, busiest stage */
    const GrtLayerSpec *spec;    /* [n_layers]: the layers, whole */
    const GrtLayerCut *cut;      /* [n_layers] */
} GrtProgram;

/* The learning rate of step `step` (0-based) under the program's schedule, with peak lr. */
double grt_lr_at(const GrtProgram *p, double lr, long step);

/* The command line every program takes (runtime/options.c). */
typedef struct GrtOptions {
    long steps;
    unsigned long long seed;
    int seed_given;
    const char *data, *log, *dump;
    float lr;
    const char *ckpt_dir; /* --ckpt-dir: where checkpoints go (folders step-N) */
    long ckpt_every;      /* --ckpt-every K: a checkpoint after every K steps (0: only the last) */
    long ckpt_keep;       /* --ckpt-keep N: complete checkpoints kept (older ones removed) */
    int resume;           /* --resume: continue from the newest intact checkpoint */
    const char *export_st; /* --export-safetensors FILE: the model after training, HF names */
    const char *init_st;   /* --init-safetensors FILE: start from these parameters */
    double comm_timeout;   /* --comm-timeout SECONDS: the watchdog's limit on one collective (default 600) */
} GrtOptions;

/* Every rank reads the same command line; a bad one stops every rank (status 2). */
GrtOptions grt_options_parse(GrtComm *world, const GrtProgram *p, int argc, char **argv);
/* The files the options name, before any is read or written (runtime/files.c):
 * no output that is an input or another output, --dump and
 * --export-safetensors writable; else every rank stops (status 1). */
void grt_files_check(GrtComm *world, const GrtOptions *o);

/* One layer on this rank: its TP shard and where its part of the training
 * state lies in the rank's arrays. */
typedef struct GrtShard {
    GrtLayer l;
    int on;              /* this rank runs the layer (it is in the rank's stage) */
    GrtComm *dp;         /* its DP group; NULL when dp = 1 */
    int tp_index, dp_index, dp_size;
    int first, B;        /* its sequences of each micro-batch: [first, first + B) */
    int zero;            /* ZeRO stage over the DP group (0 when it has one rank): 1 splits the
                          * optimizer states, 2 the gradients too, 3 the parameters too */
    int once;            /* ZeRO-3: the whole gradient accumulated, reduce-scattered once a step */
    int tied_copy;       /* a tied head holding its own copy of the table (other stage or layout) */
    size_t n;            /* floats of the TP shard */
    size_t chunk;        /* zero: floats of each DP rank's part (n rounded up, split dp ways) */
    size_t stored, off;  /* floats this rank steps (n, or its chunk) and where in grads, m and v */
    size_t poff;         /* where its parameters lie in R->params (ZeRO-1/2: all dp chunks, replicated) */
    size_t aoff;         /* ZeRO-1, ZeRO-3 once: where its whole gradient lies in R->accum */
} GrtShard;

/* One rank's training run. */
typedef struct GrtRun {
    const GrtProgram *p;
    GrtOptions opt;
    GrtComm *world;
    int rank, stage;
    GrtShard *layer;               /* [n_layers]; .on for the layers of this rank's stage */
    float *params, *grads, *m, *v; /* what this rank stores: one allocation each, every layer a slice */
    size_t n_params, n_stored;     /* floats of params; of grads, m and v */
    float *accum;                  /* ZeRO-1, ZeRO-3 once: whole gradients kept over a step's micro-batches */
    size_t accum_floats;
    float *full_p;                 /* ZeRO-3: a layer's gathered shard */
    float *full_g, *part;          /* ZeRO-2, ZeRO-3: a micro-batch's whole gradient, this rank's part */
    size_t gather_floats, scatter_floats;
    float *work, *ckpt;            /* the stage's working space and checkpoint area */
    size_t work_floats, ckpt_floats;
    int slots;                     /* micro-batches whose activations the stage holds at once */
    int32_t **tokens, **targets;   /* [slots]: the whole micro-batch's tokens */
    int *slot_mb;                  /* [slots]: the micro-batch whose tokens the slot holds */
    float *losses;                 /* the head's per-token losses */
    /* a device without host memory (grt_dev): the host's side of tokens, targets and losses, and the
     * gradient norm's row sums on the device */
    int32_t *host_tokens, *host_targets;
    float *host_losses;            /* [micro_batches x tokens a micro-batch]: the step's, read at its end */
    size_t host_losses_n;          /* floats of it this step's micro-batches have filled so far */
    double *norm_sums;             /* a device's: the gradient norm's row sums, (stored / GRT_OPT_COLS + 1) */
    double *host_sums;             /* their host side, and of each part's tail past its rows (host_alloc's) */
    float *host_tails;
    size_t tails_cap;              /* floats host_tails holds */
    double loss;                   /* this step's summed token losses on this rank */
    double correct;                /* a classifier's: this step's images classified right on this rank */
    GrtComm *tied;                 /* the ranks holding either copy of a tied table (NULL: none) */
    float *tied_sum;               /* (vocab, hidden) on those ranks */
    GrtData *data;
    FILE *log;
    long first_step, step, saved;
    double t0;
} GrtRun;

/* Start the runtime and read the options; check the rank count and each
 * stage's planned memory against the device's. */
GrtRun *grt_run_start(int *argc, char ***argv, const GrtProgram *p);
/* The group, among n_groups lists of `size` ranks (row-major), that holds
 * this rank: its place in the list is its place in the group. NULL when no
 * list holds it or size is 1. Collective over the world. */
GrtComm *grt_run_group(GrtRun *R, int size, int n_groups, const int *ranks);
/* This rank's buffers for its stage (floats): of each (GrtStageSizes). */
typedef struct GrtStageSizes {
    size_t params;  /* parameters (ZeRO-1/2 layers whole, ZeRO-3 layers their part) */
    size_t stored;  /* gradients, Adam's m and v: what the optimizer steps */
    size_t accum;   /* whole gradients of ZeRO-1 and ZeRO-3-once layers */
    size_t gather;  /* ZeRO-3's gathered parameters */
    size_t scatter; /* ZeRO-2/3's whole gradient of a micro-batch, and its reduce-scattered part */
    size_t work, ckpt; /* the stage's working space and checkpoint area */
    int slots;      /* micro-batches' tokens */
} GrtStageSizes;
void grt_run_alloc(GrtRun *R, int stage, const GrtStageSizes *z);
/* n floats of the stage's activations (a layer's input, a gradient), zeroed,
 * on the run's device (grt_dev), counted in its memory. */
float *grt_run_floats(GrtRun *R, size_t n);
/* Where layer i's shard lies in the rank's arrays and how its DP group shares it. */
typedef struct GrtShardAt {
    int zero;      /* ZeRO stage over the DP group: 0 (replicated), 1, 2, 3 */
    int once;      /* ZeRO-3: reduce-scatter the accumulated whole gradient once a step */
    int ckpt;      /* activation checkpointing */
    int copy;      /* a tied head's own copy of the table */
    size_t params; /* offset in R->params */
    size_t state;  /* offset in R->grads, R->m, R->v */
    size_t accum;  /* offset in R->accum */
    int slots;     /* micro-batches whose activations it keeps at once (an interleaved chunk's); 0: the stage's */
    int sp;        /* Megatron sequence parallelism over its TP group */
    GrtComm *ulysses; /* Ulysses: its group of u consecutive ranks (NULL: none); dp is then the u x dp replicas,
                       * index d u + r holding positions [r T / u, (r + 1) T / u) of DP index d's sequences */
    GrtComm *cp;      /* context parallelism: its group of cp consecutive ranks (NULL: none); dp is then the cp x dp
                       * replicas, index d cp + r holding the ring's chunks r and 2 cp - 1 - r of d's sequences */
} GrtShardAt;
/* Layer i on this rank: shard it over tp, replicate or split it over dp as
 * `at` says, bind it to the stage's areas and initialize it. A tied head
 * without a copy (copy 0) uses the embedding's table; with one, its copy
 * starts as the embedding's. */
void grt_shard_setup(GrtRun *R, int i, GrtComm *tp, GrtComm *dp, const GrtShardAt *at);
/* --ckpt-dir's folder, --resume, --init-safetensors, the data and the log;
 * the run's first line. After every shard is set up. */
void grt_run_begin(GrtRun *R);
/* Is there another step to run? Starts its clock and zeroes the gradients. */
int grt_step_next(GrtRun *R);
/* Micro-batch mb's tokens into slot `slot`. */
void grt_run_batch(GrtRun *R, int mb, int slot);
/* Layer i's forward and backward on micro-batch slot `slot`, whole (a
 * layer without TP collectives, or with them inside the call): its
 * sequences of the slot's tokens; the head writes R->losses, adds them to
 * the loss (once per TP group) and in backward starts from the mean's
 * weight. din is zeroed first (NULL: the embedding has none). */
void grt_shard_forward(GrtRun *R, int i, int slot, const float *in, float *out);
/* Sequence parallel: the embedding's backward from its whole (gathered) output gradient. */
void grt_shard_embed_backward(GrtRun *R, int i, int slot, const float *dout);
void grt_shard_backward(GrtRun *R, int i, int slot, const float *in, const float *dout, float *din);
/* The same in phases, the program running the TP collectives between them
 * (the grt_block_* and grt_head_* phases above): layer i on slot `slot`;
 * the embedding's partial lookup; the head's loss from its gathered logits;
 * before a backward, din (and a ZeRO-3 gradient copy) zeroed; the head's
 * partial input gradient. */
GrtLayer *grt_shard(GrtRun *R, int i, int slot);
float *grt_shard_embed(GrtRun *R, int i, int slot, float *out);
void grt_shard_loss(GrtRun *R, int i, int slot);
GrtLayer *grt_shard_backward_begin(GrtRun *R, int i, int slot, float *din);
float *grt_shard_head_grad(GrtRun *R, int i, int slot, const float *in);
/* ZeRO-3 (Rajbhandari et al. 2020): layer i's whole shard from its DP
 * group's parts; after backward, its gradient reduce-scattered and this
 * rank's part added to the accumulated one (ZeRO-2 too). */
void grt_zero3_gather(GrtRun *R, int i);
void grt_zero_reduce(GrtRun *R, int i);
/* ZeRO-1, ZeRO-3 once: after the step's last backward, layer i's
 * accumulated whole gradient reduce-scattered into this rank's part. */
void grt_zero_reduce_once(GrtRun *R, int i);
/* ZeRO-1/2: after the optimizer step, layer i's updated parts gathered
 * over its DP group into every rank's whole copy. */
void grt_zero_gather_update(GrtRun *R, int i);
/* The parameters this rank steps of shard x: its part (ZeRO), or all of them. */
float *grt_shard_owned_params(const GrtRun *R, const GrtShard *x);
/* A tied table kept twice: each copy's gradient becomes their sum over R->tied. */
void grt_tied_sync(GrtRun *R, int embedding, int head);
/* The step's end: the mean loss over the world, the global gradient norm,
 * clipping, AdamW, the step's line and log record, a checkpoint when due. */
void grt_step_end(GrtRun *R);
/* The last checkpoint, the memory report, --dump, --export-safetensors; stops the runtime. */
int grt_run_finish(GrtRun *R);

/* One pass of a stage's schedule: micro-batch mb's forward or backward on activation slot `slot`. */
typedef struct GrtPass {
    int backward, mb, slot;
} GrtPass;
/* The same under interleaved 1F1B, of the stage's chunk `chunk` (its j-th: model chunk j pp + stage). */
typedef struct GrtChunkPass {
    int backward, mb, slot, chunk;
} GrtChunkPass;

/* Failures every rank learns of (runtime/run.c). */
_Noreturn void grt_stop_all(GrtComm *world, const char *msg, int status); /* rank 0 says msg; all exit */
int grt_failures(GrtComm *world, int ok);         /* how many ranks have ok == 0 */
void grt_rank_says(int rank, const char *msg);   /* one rank's own failure, to stderr */
/* The part [a, b) of tensor k of shard x that this rank stores, as offsets
 * into its stored slice; 0 when it stores none of it. */
int grt_shard_stored_part(const GrtShard *x, int k, size_t *a, size_t *b);

/* Checkpoints of the training state (runtime/ckpt_state.c): one file per
 * rank and a MANIFEST, loadable under any plan of the same model. */
void grt_ckpt_save(GrtRun *R, long step);
long grt_ckpt_resume(GrtRun *R); /* the step resumed from, -1 when there is no checkpoint yet */
/* The model with Hugging Face names (runtime/hf_names.c), and --dump. */
void grt_export_safetensors(GrtRun *R, const char *path);
void grt_init_safetensors(GrtRun *R, const char *path);
void grt_dump_params(GrtRun *R, const char *path);

/* A pipeline edge (runtime/pipe.c): a micro-batch's activation (or its
 * gradient) sent from one stage's layout to the next's, slot by slot; the
 * sender's buffer for a slot is reused only once its sends have left. */
typedef struct GrtPipe GrtPipe;
GrtPipe *grt_pipe_new(const GrtLayout *from, const GrtLayout *to, int mb, size_t seq_floats, int rank, int slots);
float *grt_pipe_buffer(GrtPipe *p, int slot); /* waits until the slot's previous sends are done */
void grt_pipe_send(GrtPipe *p, GrtComm *world, int slot, int tag);
void grt_pipe_recv(GrtPipe *p, GrtComm *world, float *dst, int tag);
void grt_pipe_drain(GrtPipe *p); /* wait for every send in flight */

/* ---- the hardware profiler (runtime/profiler.c) --------------------------- */

/* What `galvc profile` measures, with this runtime's own kernels, layers and
 * collectives, on every rank of the job at once (so ranks that share a
 * machine share its cores and memory as they do in training). */

typedef enum GrtProfileOp { GRT_OP_ALLREDUCE, GRT_OP_ALLGATHER, GRT_OP_REDUCESCATTER, GRT_OP_P2P } GrtProfileOp;

/* A straight line fitted to measured times: time = fixed_s + work / rate. */
typedef struct GrtProfileFit {
    double fixed_s; /* seconds at no work (launch, synchronization, latency) */
    double rate;    /* work per second: FLOP/s or bytes/s, as the caller's work counts */
} GrtProfileFit;

/* One layer kind at one TP degree, fitted over micro-batch sizes. Work is
 * FLOPs for the block and the head (backward counted as twice the forward's
 * FLOPs) and bytes of the (B, T, C) stream read and written for the
 * embedding and the norm. */
typedef struct GrtProfileLayer {
    GrtLayerKind kind;
    int tp;
    GrtProfileFit forward, backward;
} GrtProfileLayer;

/* One collective over groups of `group` ranks (consecutive or strided),
 * fitted over message sizes: bus bandwidth (NCCL's convention) and the
 * latency of one whole operation. For p2p, group is the stage count. */
typedef struct GrtProfileCollective {
    GrtProfileOp op;
    int group, consecutive;
    double bus_bandwidth; /* bytes/s */
    double latency_s;     /* seconds per operation at zero bytes */
} GrtProfileCollective;

enum { GRT_PROFILE_MAX_ENTRIES = 256 };

/* A machine's measured figures, per rank (device). */
typedef struct GrtProfile {
    int ranks;
    double gemm_flops;       /* FLOP/s: the best sgemm over the sizes tried */
    double gemm_efficiency;  /* the block's fitted FLOP rate over gemm_flops, in (0, 1] */
    double mem_bandwidth;    /* bytes/s: a large elementwise kernel's reads and writes */
    double overlap_slowdown; /* GEMM time with an all-reduce running over it / alone (>= 1); 0: one rank */
    double sync_overhead_s;  /* a collective between compute phases beyond both timed alone; 0: one rank */
    double link_bandwidth;   /* bytes/s: all-reduce bus bandwidth over every rank; 0: one rank */
    double link_latency_s;   /* seconds per ring step of that all-reduce; 0: one rank */
    /* A GPU's (galvc-profiler-cuda; zero and empty on the CPU, which computes in fp32): */
    const char *device;      /* the device kind measured (ir.h's DEVICE_KINDS name); NULL: "cpu" */
    char blas[128];          /* the GEMM library and the GPU, for people reading the profile */
    double bf16_flops;       /* FLOP/s: the best bf16 GEMM (fp32 accumulation) over the model's shapes */
    double gemm_rates[3];    /* FLOP/s over all the model's GEMMs: fp32, TF32, bf16 (GrtGemmMath) */
    int n_layers, n_collectives;
    GrtProfileLayer layers[GRT_PROFILE_MAX_ENTRIES];
    GrtProfileCollective collectives[GRT_PROFILE_MAX_ENTRIES];
} GrtProfile;

/* The layer shape the layer kinds are measured at: hidden, heads, head
 * size, FFN, tokens per sequence, vocabulary (a model's own, so the fitted
 * rates are the ones its GEMMs reach). */
typedef struct GrtProfileShape {
    int C, H, hd, F, T, V;
} GrtProfileShape;

/* Measure on every rank of world (a power-of-two rank count); every rank
 * returns the same figures. quick: small sizes and few repetitions (seconds,
 * for tests); shape: the layers' shape (NULL: a default one). Rank 0 prints
 * one progress line per measurement to stderr. */
void grt_profile_measure(GrtComm *world, int quick, const GrtProfileShape *shape, GrtProfile *p);

/* The GEMM arithmetic a GPU profile times (the profile's "gemm_rates"):
 * fp32 in and out computed in fp32, the same through TF32 tensor cores,
 * bf16 in and out with fp32 accumulation. */
typedef enum GrtGemmMath { GRT_GEMM_FP32, GRT_GEMM_TF32, GRT_GEMM_BF16 } GrtGemmMath;

/* The profiler's parts both targets' profilers use (profiler.c): the line
 * time = fixed_s + work / rate fitted to n points (least squares weighted by
 * 1 / time^2); the forward work of layer kind s on one rank at TP degree tp
 * and B sequences of T tokens (FLOPs for the block and the head, bytes of
 * the (B, T, C) stream for the embedding and the norm); NCCL's bus
 * bandwidth over algorithm bandwidth for op over g ranks. */
GrtProfileFit grt_profile_fit(const double *work, const double *t, int n);
double grt_profile_layer_work(const GrtLayerSpec *s, int tp, int B, int T);
double grt_profile_bus_factor(GrtProfileOp op, int g);

/* The collective backends are tables of these functions (MPI now, NCCL for
 * the CUDA target), so a new backend is a new file, not #ifdefs. */
typedef struct GrtCollectives {
    const char *name;
    void (*allreduce)(GrtComm *c, float *buf, size_t n);
    void (*allreduce_double)(GrtComm *c, double *buf, size_t n);
    void (*reduce_scatter)(GrtComm *c, const float *in, float *out, size_t n);
    void (*allgather)(GrtComm *c, const float *in, float *out, size_t n);
    void (*alltoall)(GrtComm *c, const float *in, float *out, size_t n);
    void (*broadcast)(GrtComm *c, float *buf, size_t n, int root);
    void (*send)(GrtComm *c, const float *buf, size_t n, int peer, int tag);
    void (*recv)(GrtComm *c, float *buf, size_t n, int peer, int tag);
    void (*barrier)(GrtComm *c);
    GrtRequest *(*iallreduce)(GrtComm *c, float *buf, size_t n);
    GrtRequest *(*isend)(GrtComm *c, const float *buf, size_t n, int peer, int tag);
    GrtRequest *(*irecv)(GrtComm *c, float *buf, size_t n, int peer, int tag);
    void (*wait)(GrtRequest *r);
} GrtCollectives;

#endif
