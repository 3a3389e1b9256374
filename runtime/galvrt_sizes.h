/* galvrt_sizes.h — how many floats each layer kind holds on one rank: its
 * parameter shard, the activations it keeps from a micro-batch's forward to
 * its backward, its working space. The contract between planner and
 * program has this one definition: runtime/layers.c allocates exactly these
 * buffers, galvc's cost pass predicts memory from them and galvc's backend
 * writes the program's buffer sizes and offsets from them.
 *
 * Plain C with no dependencies beyond GrtLayerSpec (galvrt.h); counts are
 * doubles so the planner can ask about fractional micro-batches (exact for
 * every integer count below 2^53). */
#ifndef GALVRT_SIZES_H
#define GALVRT_SIZES_H

/* A layer's sizes on one rank of its TP group of `tp`. */
typedef struct GrtShardSizes {
    double H, KVH, F;  /* block: heads, key/value heads, FFN columns on the rank */
    double qkv, up;    /* block: rows of its QKV and MLP-up weights */
    double V;          /* embedding and head: vocabulary rows (padded to a multiple of tp) */
} GrtShardSizes;

static inline GrtShardSizes grt_shard_sizes(const GrtLayerSpec *s, int tp) {
    GrtShardSizes z = {0, 0, 0, 0, 0, 0};
    if (s->kind == GRT_BLOCK) {
        z.H = s->H / tp, z.KVH = s->KVH / tp, z.F = s->F / tp;
        z.qkv = (z.H + 2 * z.KVH) * s->hd;
        z.up = z.F * (s->swiglu ? 2 : 1);
    }
    if (s->kind == GRT_EMBEDDING || s->kind == GRT_HEAD) z.V = (s->V + tp - 1) / tp;
    return z;
}

/* T5's stream (galvrt.h, GrtLayerSpec.te): rows of a sequence's bias tables, both stacks' (buckets, H)
 * one after the other, in rows of C. */
static inline int grt_t5_table_rows(int buckets, int H, int C) { return C > 0 ? (2 * buckets * H + C - 1) / C : 0; }
/* The rows of one sequence's stream between layers: T tokens, or T5's encoder, decoder and table rows. */
static inline double grt_stream_rows(const GrtLayerSpec *s, double T) {
    return s && s->te ? (double)s->te + s->td + s->tr : T;
}
/* The rows per sequence a head predicts: all T, or T5's decoder rows. */
static inline double grt_head_rows(const GrtLayerSpec *s, double T) { return s->te ? (double)s->td : T; }
/* A T5 block's query rows (its stack's tokens) per sequence, and the rows its cross-attention reads. */
static inline double grt_t5_queries(const GrtLayerSpec *s) { return s->cross ? s->td : s->te; }

/* A Swin block's bias table entries per head, (2 window - 1)^2 (0 without a window). */
static inline double grt_window_table(const GrtLayerSpec *s) {
    return s->window ? (2.0 * s->window - 1) * (2.0 * s->window - 1) : 0;
}

/* The keys each query of a block attends: its window's, or all T. */
static inline double grt_block_keys(const GrtLayerSpec *s, double T) {
    return s->window ? (double)s->window * s->window : T;
}

/* A patch embedding's patches per image and values per patch. */
static inline double grt_patches(const GrtLayerSpec *s) {
    double side = s->patch > 0 ? s->image / s->patch : 0;
    return side * side;
}
static inline double grt_patch_values(const GrtLayerSpec *s) { return (double)s->channels * s->patch * s->patch; }

/* The integers one sample of the program's input takes: its T tokens, or
 * the pixels of an image when the first layer is a patch embedding. */
static inline double grt_size_sample_ints(const GrtLayerSpec *first, double T) {
    return first && first->kind == GRT_PATCH ? (double)first->channels * first->image * first->image : T;
}

/* Parameters of one TP rank's shard, in floats (runtime/layers.c lays out the tensors). */
static inline double grt_size_params(const GrtLayerSpec *s, int tp) {
    GrtShardSizes z = grt_shard_sizes(s, tp);
    double C = s->C, norm = C + (s->rms || !s->bias ? 0 : C);
    switch (s->kind) {
    case GRT_EMBEDDING: return z.V * C + (double)s->positions * C + (double)s->types * C;
    case GRT_BLOCK:
        if (s->te) /* T5: two norms, Q K V, out, wi, wo; the stack's bias table; cross-attention's norm, Q, K V, out */
            return 2 * C + 4 * z.H * s->hd * C + 2 * z.F * C + (s->rel_own ? (double)s->buckets * z.H : 0) +
                   (s->cross ? C + 4 * z.H * s->hd * C : 0);
        /* two norms, QKV, attention out, MLP up and down, with their biases */
        return 2 * norm + z.qkv * C + z.H * s->hd * C + z.up * C + C * z.F + (s->bias ? z.qkv + C + z.up + C : 0) +
               z.H * grt_window_table(s);
    case GRT_NORM: return norm;
    case GRT_HEAD: return s->tied ? 0 : z.V * C;
    case GRT_PATCH: /* projection (C, channels patch^2) and its bias, class token, positions (T, C) */
        return C * grt_patch_values(s) + C + (s->plain ? 0 : C + (grt_patches(s) + 1) * C);
    case GRT_CLASSIFIER: /* weight (classes, C) and bias; the pooler's dense (C, C) and bias */
        return s->V * C + s->V + (s->pooler ? C * C + C : 0);
    case GRT_MERGE: return 8 * C + 8 * C * C; /* the norm over 4 C, the reduction (2 C, 4 C) */
    }
    return 0;
}

/* A Swin block's window attention's working space (runtime/swin.c's
 * GrtWindowWork): QKV, the output (or its gradient) and QKV's gradient in
 * window order, the bias (H, n, n), the mask (T / n windows of (n, n)) and
 * one head's (n, n) score gradient, n = window^2. */
static inline double grt_window_work(const GrtLayerSpec *s, GrtShardSizes z, double B, double T) {
    double n = (double)s->window * s->window;
    return s->window ? B * T * 7 * z.H * s->hd + z.H * n * n + T * n + n * n : 0;
}

/* The widest row a block's scratch buffers hold. */
static inline double grt_block_wide(const GrtLayerSpec *s, GrtShardSizes z) {
    double wide = s->C > z.qkv ? s->C : z.qkv;
    return z.up > wide ? z.up : wide;
}

/* A T5 block's kept activations for B sequences (N = B Tq query rows,
 * A = H hd / tp): the first norm's output and statistic, Q K V, the
 * self-attention's probabilities (B, H, Tq, Tq), its output, the residual
 * after it; a decoder's cross-attention adds its norm's output and
 * statistic, Q, the encoder rows' K V (B te, 2 A), the probabilities (B,
 * H, Tq, te), its output and the residual after it; the MLP's norm output
 * and statistic, wi's output before and after the ReLU. */
static inline double grt_size_t5_kept(const GrtLayerSpec *s, GrtShardSizes z, double B) {
    double N = B * grt_t5_queries(s), Tq = grt_t5_queries(s), A = z.H * s->hd, C = s->C;
    double self = N * (2 * C + 1 + 4 * A) + B * z.H * Tq * Tq;
    double cross = s->cross ? N * (2 * C + 1 + 2 * A) + B * s->te * 2 * A + B * z.H * Tq * s->te : 0;
    return self + cross + N * (C + 1 + 2 * z.F);
}

/* A T5 block's working space for B sequences: its stream rows gathered,
 * the output rows, two (N, C) gradients, (N, F), (N, A), (N, 3 A), the
 * bias tables' gradient (B, buckets H), one sequence's biases or their
 * gradient (H, Tq, Tq) and its buckets (Tq, Tq, int32), one head's scores'
 * gradient and dropped probabilities (2 x (Tq, Tq or te)); the holder's
 * table's TP shards gathered and the table whole (buckets, H each); a decoder's encoder rows, their gradient and
 * their K V's (B te, 2 A). */
static inline double grt_size_t5_work(const GrtLayerSpec *s, GrtShardSizes z, double B) {
    double Tq = grt_t5_queries(s), N = B * Tq, A = z.H * s->hd, C = s->C, Ne = B * s->te;
    double cross = s->cross ? Ne * (2 * C + 2 * A) : 0, Tk = s->cross && s->te > Tq ? s->te : Tq;
    double table = s->rel_own ? 2.0 * s->buckets * s->H : 0; /* the holder's table gathered over TP, whole */
    return N * (4 * C + z.F + 4 * A) + B * s->buckets * (double)s->H + (z.H + 1) * Tq * Tq + 2 * Tq * Tk + cross + table;
}

/* The activations a block keeps besides its six per-token norm statistics,
 * in elements, for B sequences of T positions on the rank: its input's
 * norm, the residual, the second norm (N, C) each, QKV (N, qkv), the
 * attention output (N, H hd), MLP up (N, up), its activation (N, F) and
 * the probabilities (B, H, T, keys); context parallel (cp > 1), no
 * probabilities: ring attention keeps each query row's log-sum-exp
 * instead (grt_size_kept) and rebuilds them block by block in backward.
 * Under mixed precision (GrtLayerSpec.gemm16) these are kept as bf16 bits,
 * the statistics stay fp32 (runtime/layers.c's block_act). */
static inline double grt_block_kept16(const GrtLayerSpec *s, GrtShardSizes z, int tp, int sp, int cp, double B,
                                      double T) {
    double N = B * T, rows = sp ? N / tp : N; /* sequence parallel: the norms' outputs and the residual of its rows */
    double probs = cp > 1 ? 0 : B * z.H * T * grt_block_keys(s, T);
    return rows * 3 * s->C + N * (z.qkv + z.H * s->hd + z.up + z.F) + probs;
}

/* Ring attention's working space for a context-parallel block (cp > 1) on
 * B sequences of Tl = T / cp positions, KV = B Tl KVH hd on the TP rank:
 * the K,V chunk being attended and the one arriving (2 x 2 KV), backward's
 * travelling dK,dV and the arriving ones (2 x 2 KV), one sequence's (H, Tl,
 * Tl) block of scores, a block's partial output (N, H hd) and its running
 * row maximum and sum (2 x (B, H, Tl)). */
static inline double grt_ring_work(const GrtLayerSpec *s, GrtShardSizes z, int cp, double B, double Tl) {
    double N = B * Tl;
    return cp > 1 ? 8 * N * z.KVH * s->hd + z.H * Tl * Tl + N * z.H * s->hd + 2 * B * z.H * Tl : 0;
}

/* Whether a block keeps grt_block_kept16's activations as bf16 bits: under
 * mixed precision, unless checkpointed (`ckpt`). A checkpointed block's one
 * set, rebuilt just before its backward, stays fp32 in the checkpoint area,
 * each value rounded to bf16 in place: the same values, and no fp32 copy
 * beside the bits (grt_size_ckpt), which would outweigh the halving. */
static inline int grt_kept16(const GrtLayerSpec *s, int ckpt) {
    return s->gemm16 && s->kind == GRT_BLOCK && !s->te && !ckpt; /* T5's blocks (runtime/t5.c) keep fp32 */
}

/* Floats that hold n bf16 values (2 bytes each), a fraction counting whole. */
static inline double grt_half_floats(double n) {
    unsigned long long k = (unsigned long long)n;
    k += (double)k < n;
    return (double)((k + 1) / 2);
}

/* Floats a layer keeps for one micro-batch of B sequences of T tokens from
 * forward to backward (its input aside: the program keeps that). A block
 * keeps its norms' outputs and the residual whole on every TP rank and
 * splits the rest, as Megatron does (Korthikanti et al. 2022, section 4; no
 * dropout masks: dropout's counter-based masks are drawn again in backward,
 * galvrt.h): QKV, the attention output, MLP up and its activation, six
 * per-token norm statistics and the attention probabilities (B, H, T, T),
 * undropped (B, H, T, window^2 with windows); under mixed precision all
 * but the statistics as bf16 (grt_block_kept16, grt_kept16; `ckpt`: the
 * block is checkpointed). With sequence parallelism (sp) the norms'
 * outputs, the residual and the statistics are of the rank's B T / tp rows
 * alone (section 4.2.2). Context parallelism (cp > 1) leaves each rank T /
 * cp positions of every sequence, through every layer (Megatron-Core's CP);
 * a block keeps its queries' log-sum-exp rows (B, H, T / cp) in place of
 * the probabilities. Patch merging keeps its
 * norm's statistics, a merged token's two. A checkpointed block keeps these once, in the stage's
 * checkpoint area. */
static inline double grt_size_kept(const GrtLayerSpec *s, int tp, int sp, int cp, double B, double T, int ckpt) {
    GrtShardSizes z = grt_shard_sizes(s, tp);
    T /= cp;
    double N = B * T, C = s->C, rows = sp ? N / tp : N, big = grt_block_kept16(s, z, tp, sp, cp, B, T);
    switch (s->kind) {
    case GRT_BLOCK:
        if (s->te) return grt_size_t5_kept(s, z, B);
        return 6 * rows + (cp > 1 ? B * z.H * T : 0) + (grt_kept16(s, ckpt) ? grt_half_floats(big) : big);
    case GRT_MERGE: return 2 * N / 4;
    case GRT_NORM: return 2 * rows;                             /* mean and rstd */
    case GRT_HEAD: return B * grt_head_rows(s, T) * (z.V * tp); /* the probabilities over the whole (padded) vocabulary */
    case GRT_CLASSIFIER: return B * (s->V + (s->pooler ? C : 0)); /* probabilities, the pooler's output */
    case GRT_EMBEDDING:
    case GRT_PATCH: break;
    }
    return 0;
}

/* Floats a layer needs of its stage's checkpoint area, an area that holds
 * one layer's activations while that layer's forward or backward runs
 * (one layer runs at a time, so the stage's is the largest): a checkpointed
 * block's kept activations, rebuilt just before its backward; a block with
 * bf16 kept activations (grt_kept16), their fp32 copy (grt_block_kept16),
 * which its forward computes in and its backward widens the bits into. */
static inline double grt_size_ckpt(const GrtLayerSpec *s, int tp, int sp, int cp, double B, double T, int ckpt) {
    if (s->kind == GRT_BLOCK && ckpt) return grt_size_kept(s, tp, sp, cp, B, T, ckpt);
    return grt_kept16(s, ckpt) ? grt_block_kept16(s, grt_shard_sizes(s, tp), tp, sp, cp, B, T / cp) : 0;
}

/* Floats of the tensors a layer replicates over its TP group whose
 * gradients sequence parallelism leaves partial (each rank saw its rows
 * alone): a block's norms and row-parallel biases, a norm's weights. */
static inline double grt_size_shared(const GrtLayerSpec *s) {
    double C = s->C, norm = C + (s->rms || !s->bias ? 0 : C);
    if (s->kind == GRT_BLOCK) return 2 * norm + (s->bias ? 2 * C : 0);
    return s->kind == GRT_NORM ? norm : 0;
}

/* Floats of the attention backward's score gradient in a block's working
 * space: dP (H, T, T) of one sequence's heads, which the CUDA backward
 * computes a sequence at a time (runtime/cuda/gemm.c) and the host's in
 * row blocks of it (runtime/kernels.c); none for Swin's windows (their own
 * dS) or T5's blocks (runtime/t5.c). */
static inline double grt_att_grad(const GrtLayerSpec *s, GrtShardSizes z, double T) {
    return s->kind == GRT_BLOCK && !s->window && !s->te ? z.H * T * T : 0;
}

/* Floats of a layer's own working buffers for a micro-batch (the start of
 * its working space, grt_size_work). A block: two (N, wide)
 * scratch buffers, backward's (N, F), 3 x (N, C), (N, H hd), the rotary
 * copy (N, (H + KVH) hd) and the attention's score gradient (grt_att_grad).
 * The head: local logits, gathered logits, their gradient, the input gradient and two per-token rows (T5's: of its
 * decoder rows, which it gathers with their targets). A patch embedding:
 * the gathered patches and their projection (rebuilt in backward from the
 * pixels, so it keeps nothing). A Swin block adds its windows' (above). A classifier: the pooled tokens, their
 * gradient and the logits' gradient (B rows each), and with a pooler the
 * gradient of its output. Patch merging: the gathered groups, their norm,
 * and the two's gradients, N C each (rebuilt in backward from its input).
 * Sequence parallel (sp), the embedding and the head add the whole (N, C)
 * stream an all-gather fills or a reduce-scatter empties, a block and a
 * norm their replicated tensors' gradients. Context parallel (cp > 1):
 * of the rank's T / cp positions, a block with its ring's (grt_ring_work)
 * in place of the score gradient, and its Q, K, V apart for the ring (N,
 * qkv); an embedding and a head with their copy of its tokens' inputs and
 * targets in the ring's order (2 B T / cp int32 in float slots). */
static inline double grt_size_scratch(const GrtLayerSpec *s, int tp, int sp, int cp, double B, double T) {
    GrtShardSizes z = grt_shard_sizes(s, tp);
    T /= cp;
    double N = B * T, C = s->C, gathered = sp ? N * C : 0, shared = sp ? grt_size_shared(s) : 0;
    switch (s->kind) {
    case GRT_BLOCK:
        if (s->te) return grt_size_t5_work(s, z, B);
        return N * (2 * grt_block_wide(s, z) + z.F + 3 * C + z.H * s->hd + (z.H + z.KVH) * s->hd) +
               (cp > 1 ? N * z.qkv : grt_att_grad(s, z, T)) + grt_window_work(s, z, B, T) +
               grt_ring_work(s, z, cp, B, T) + shared;
    case GRT_HEAD: /* T5's: its decoder rows gathered from the stream, and their targets */
        N = B * grt_head_rows(s, T);
        return N * (z.V + 2 * z.V * tp + C + 2) + (s->te ? N * (C + 1) : 0) + gathered + (cp > 1 ? 2 * N : 0);
    case GRT_PATCH: return B * grt_patches(s) * (grt_patch_values(s) + C); /* the patches, their projection */
    case GRT_CLASSIFIER: /* pooled, its gradient, the logits' gradient; the pooler's output gradient */
        return B * (2 * C + s->V + (s->pooler ? C : 0));
    case GRT_MERGE: return 4 * N * C;
    case GRT_EMBEDDING: return gathered + (cp > 1 ? 2 * N : 0);
    case GRT_NORM: return shared;
    }
    return 0;
}

/* ---- mixed precision ------------------------------------------------------------ */

/* Bytes of one element of what the program keeps, at every precision:
 * layer inputs, parameters, gradients and optimizer moments are fp32 floats
 * (a block's kept activations aside: bf16 under mixed precision,
 * grt_kept16, counted in floats above). Mixed precision
 * (GrtLayerSpec.gemm16) rounds each GEMM's operands to bf16 in the
 * layer's working space (grt_size_gemm16) and accumulates in fp32,
 * so the fp32 weights are the master copy, the gradients are reduced in
 * fp32 (Megatron-LM's main_grad) and the moments stay fp32. */
#define GRT_ELEM_BYTES 4

/* Bytes of training state per parameter with `moments` fp32 moments (Adam
 * 2, SGD with momentum 1, else 0): weight, gradient, moments. For Adam 16:
 * ZeRO's K = 12 plus a 4-byte gradient (Rajbhandari et al. 2020, section
 * 3.1, whose 16-bit weight copy the program does not keep: it rounds each
 * GEMM's operands as the GEMM runs). */
static inline int grt_state_bytes_per_param(int moments) { return GRT_ELEM_BYTES * (2 + moments); }

/* How a GEMM's rounded operands are held (GrtLayerSpec.gemm16): as bf16 bits
 * (2 bytes; cuBLAS's CUDA_R_16BF), or as the bf16 values widened to fp32 (4
 * bytes; the host's sgemm then computes what a bf16 GEMM with fp32
 * accumulation does: a product of two bf16 values is exact in fp32. Debian's
 * OpenBLAS 0.3.21 is built without cblas_sbgemm). */
enum { GRT_GEMM16_BITS = 2, GRT_GEMM16_WIDE = 4 };

/* n operands (a fraction counts whole) rounded up to 8: at least 16 bytes, cuBLAS's tensor-core alignment. */
static inline double grt_round8(double n) {
    unsigned long long k = (unsigned long long)n;
    k += (double)k < n;
    return (double)((k + 7) / 8 * 8);
}

/* Rounded operands of one linear: its input (N, C), the output's gradient
 * (N, OC) and its weight (OC, C), in this order. */
static inline double grt_size_linear16(double N, double C, double OC) {
    return grt_round8(N * C) + grt_round8(N * OC) + grt_round8(OC * C);
}

static inline double grt_max2(double a, double b) { return a > b ? a : b; }

/* A T5 block's largest linear's rounded operands (N = B Tq query rows, A = H hd / tp): self-attention's
 * Q K V and output, wi and wo; a decoder's cross-attention Q, K V on the encoder's B te rows, and output. */
static inline double grt_size_t5_gemm16(const GrtLayerSpec *s, GrtShardSizes z, double B) {
    double N = B * grt_t5_queries(s), A = z.H * s->hd, C = s->C, Ne = B * s->te;
    double self = grt_max2(grt_max2(grt_size_linear16(N, C, 3 * A), grt_size_linear16(N, A, C)),
                           grt_max2(grt_size_linear16(N, C, z.F), grt_size_linear16(N, z.F, C)));
    double cross = s->cross ? grt_max2(grt_size_linear16(N, C, A), grt_size_linear16(Ne, C, 2 * A)) : 0;
    return grt_max2(self, cross);
}

/* Rounded operands (elements) a layer's GEMMs take under mixed precision,
 * for a micro-batch, one GEMM at a time: its largest linear's (the block's
 * QKV, attention output, MLP up and down, T5's (grt_size_t5_gemm16); the
 * head's logits; the patch projection; the classifier and its pooler;
 * patch merging's reduction). On a device a block's attention core rounds
 * its output's gradient (N, H hd) into the same area, as bits (galvrt.h's
 * GrtAtt16.ops), which the output projection's input also takes; a
 * sequence's score gradient goes over its probabilities' fp32 rows, which
 * its softmax's backward has read for the last time (runtime/cuda/gemm.c). */
static inline double grt_size_gemm16(const GrtLayerSpec *s, int tp, double B, double T) {
    GrtShardSizes z = grt_shard_sizes(s, tp);
    double N = B * T, C = s->C;
    if (!s->gemm16) return 0;
    switch (s->kind) {
    case GRT_BLOCK:
        if (s->te) return grt_size_t5_gemm16(s, z, B);
        return grt_max2(grt_max2(grt_size_linear16(N, C, z.qkv), grt_size_linear16(N, z.H * s->hd, C)),
                        grt_max2(grt_size_linear16(N, C, z.up), grt_size_linear16(N, z.F, C)));
    case GRT_HEAD: return grt_size_linear16(B * grt_head_rows(s, T), C, z.V); /* T5's: its decoder rows */
    case GRT_PATCH: return grt_size_linear16(B * grt_patches(s), grt_patch_values(s), C);
    case GRT_CLASSIFIER: return grt_max2(grt_size_linear16(B, C, s->V), s->pooler ? grt_size_linear16(B, C, C) : 0);
    case GRT_MERGE: return grt_size_linear16(N / 4, 4 * C, 2 * C);
    case GRT_EMBEDDING:
    case GRT_NORM: break;
    }
    return 0;
}

/* Floats of a layer's working space for a micro-batch (one buffer shared by
 * every layer of a stage: one runs at a time): its own buffers, then its
 * rounded GEMM operands (gemm16 bytes each), of its T / cp positions. */
static inline double grt_size_work(const GrtLayerSpec *s, int tp, int sp, int cp, double B, double T) {
    return grt_size_scratch(s, tp, sp, cp, B, T) + grt_size_gemm16(s, tp, B, T / cp) * s->gemm16 / GRT_ELEM_BYTES;
}

/* ---- Ulysses sequence parallelism ------------------------------------------------ */

/* Ulysses over u (Jacobs et al. 2023; no TP in the layer): each rank takes
 * T / u of each of its B sequences' tokens, so every layer keeps and works
 * as on B sequences of T / u tokens, whole weights; inside attention two
 * all-to-alls give each rank all T tokens of H / u heads (KVH / u). A block
 * keeps, besides what it keeps of its local tokens, QKV and the attention
 * output of its heads over the whole sequence (B T, (qkv + H hd) / u), and
 * its probabilities are (B, H / u, T, T) instead of (B, H, T / u, T / u).
 * These are the sizes runtime/layers.c allocates under Ulysses
 * (runtime/ulysses.c's buffers); the planner costs them. */
static inline double grt_ulysses_kept16(const GrtLayerSpec *s, int u, double B, double T) {
    GrtShardSizes z = grt_shard_sizes(s, 1);
    double local = grt_block_kept16(s, z, 1, 0, 1, B, T / u) - B * z.H * (T / u) * grt_block_keys(s, T / u);
    return local + B * T * (z.qkv + z.H * s->hd) / u + B * (z.H / u) * T * grt_block_keys(s, T);
}

/* Floats kept from forward to backward under Ulysses over u (grt_size_kept's, of the local tokens). */
static inline double grt_size_kept_ulysses(const GrtLayerSpec *s, int u, double B, double T, int ckpt) {
    if (s->kind != GRT_BLOCK || s->te) return grt_size_kept(s, 1, 0, 1, B, T / u, ckpt);
    double big = grt_ulysses_kept16(s, u, B, T);
    return 6 * B * T / u + (grt_kept16(s, ckpt) ? grt_half_floats(big) : big);
}

/* The checkpoint area under Ulysses over u (grt_size_ckpt's rule). */
static inline double grt_size_ckpt_ulysses(const GrtLayerSpec *s, int u, double B, double T, int ckpt) {
    if (s->kind == GRT_BLOCK && ckpt) return grt_size_kept_ulysses(s, u, B, T, ckpt);
    return grt_kept16(s, ckpt) ? grt_ulysses_kept16(s, u, B, T) : 0;
}

/* A layer's working buffers under Ulysses over u beyond its local tokens'
 * (runtime/ulysses.c's GrtUlyssesBufs): a block's all-to-all send and
 * receive buffers and the whole sequences' QKV gradient's receive buffer,
 * (B T / u, qkv) each, the attention's whole-sequence output gradient (B T
 * H hd / u) and the rotary copy of its heads (B T (H + KVH) hd / u); an
 * embedding's and a head's copy of its local tokens' inputs and targets
 * (2 B T / u int32 in float slots: the micro-batch holds whole sequences). */
static inline double grt_ulysses_scratch(const GrtLayerSpec *s, int u, double B, double T) {
    GrtShardSizes z = grt_shard_sizes(s, 1);
    if (s->kind == GRT_BLOCK && !s->te) return B * T * (3 * z.qkv + z.H * s->hd + (z.H + z.KVH) * s->hd) / u;
    return s->kind == GRT_EMBEDDING || s->kind == GRT_HEAD ? 2 * B * T / u : 0;
}

/* A layer's own buffers under Ulysses over u: the local tokens' (grt_size_scratch), then grt_ulysses_scratch's. */
static inline double grt_size_scratch_ulysses(const GrtLayerSpec *s, int u, double B, double T) {
    return grt_size_scratch(s, 1, 0, 1, B, T / u) + grt_ulysses_scratch(s, u, B, T);
}

/* The working space under Ulysses over u: its own buffers, then the local tokens' rounded GEMM operands. */
static inline double grt_size_work_ulysses(const GrtLayerSpec *s, int u, double B, double T) {
    return grt_size_scratch_ulysses(s, u, B, T) + grt_size_gemm16(s, 1, B, T / u) * s->gemm16 / GRT_ELEM_BYTES;
}

#endif
