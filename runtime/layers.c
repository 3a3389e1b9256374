/* layers.c — the layers a generated program trains, on one rank: the
 * vocabulary-parallel embedding and head, the replicated final norm, and the
 * Megatron-LM transformer block (Shoeybi et al. 2019, section 3) whose QKV
 * and MLP-up GEMMs are column-parallel and whose attention-output and
 * MLP-down GEMMs are row-parallel, with one TP all-reduce after each
 * row-parallel forward and one before each column-parallel backward.
 *
 * Parameters are initialized per element from (seed, layer, tensor, global
 * row, global column), so every shard of every plan starts from the same
 * model as one rank does. A vocabulary that the TP degree does not divide is
 * padded; padded rows are never looked up and their logits are masked out.
 *
 * The activations, parameters and gradients live on the run's device
 * (grt_dev: the host, or a GPU on the CUDA target): every GEMM, copy, zeroing
 * and addition on them goes through it, and every other kernel is a
 * generated one found by its shape; the references run only where the
 * buffers are host memory. Initialization, gathering and placing (host
 * work on whole tensors) see host memory. */
#include "galvrt.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

/* ---- activations kept for backward ------------------------------------------ */

/* A block's kept activations that mixed precision keeps as bf16 bits
 * (galvrt_sizes.h's grt_block_kept16), in their order: ln1, res1, ln2
 * (N, C); qkv (N, QKV_l), rotary applied; atty (N, H_l hd); fch (N, UP_l),
 * its bias added; fca (N, F_l); att (B H_l T, keys), the probabilities
 * before dropout. The norms' mean and rstd (N) stay fp32: rstd of a
 * near-constant row is large and the backward scales by it. */
enum { K_LN1, K_RES1, K_LN2, K_QKV, K_ATTY, K_FCH, K_FCA, K_ATT, K_QKVW, K_ATTYW, K_COUNT };
/* Under Ulysses (GrtLayer.ul) qkv is not rotated, att is (B, H / u, T u, T u)
 * over the whole sequences, and qkvw (B T u, QKV / u) and attyw (B T u, H
 * hd / u) keep its heads' rotated Q K V and attention output there
 * (runtime/ulysses.c); without it they are empty. */

/* One of them: its fp32 copy (the kept buffer in fp32; under mixed precision
 * in the working space, rebuilt from h in backward), its bf16 bits (NULL in fp32). */
typedef struct Kept16 {
    float *f;
    uint16_t *h;
    size_t rows, cols;
} Kept16;

typedef struct BlockAct {
    Kept16 keep[K_COUNT];        /* the fp32 pointers below are keep[].f */
    bool round;                  /* mixed precision, checkpointed: keep[].f rounded to bf16 in place */
    float *ln1, *mean1, *rstd1;  /* (N, C), (N), (N) */
    float *qkv, *att, *atty;     /* (N, QKV_l), (B, H_l, T, T), (N, H_l hd) */
    float *res1;                 /* (N, C): x + attention */
    float *ln2, *mean2, *rstd2;  /* (N, C), (N), (N) */
    float *fch, *fca;            /* (N, UP_l), (N, F_l) */
    float *out_mean, *out_rstd;  /* post-norm only: the second norm's statistics */
    float *scratch, *scratch2;   /* (N, max(C, QKV_l, UP_l)) */
    /* backward's working buffers, allocated once */
    float *dF, *dC1, *dC2, *dC3, *dAtt, *rope_tmp; /* (N, F_l), 3 x (N, C), (N, H_l hd), (N, (H_l + KVH_l) hd) */
    float *dP;                                     /* (H_l, T, T): the attention's score gradient (grt_att_grad) */
    GrtWindowWork win;                             /* a Swin block's windows' (galvrt_sizes.h) */
    GrtUlysses ul;                                 /* Ulysses: its group and shapes, and its buffers */
    GrtUlyssesBufs ub;
    GrtRingAttn ring;         /* CP: its group and shapes, and ring attention's working space */
    float *ring_work, *parts; /* (grt_ring_work); Q (N, H_l hd), K, V (N, KVH_l hd) apart */
} BlockAct;

typedef struct NormAct {
    float *mean, *rstd;
} NormAct;

typedef struct HeadAct {
    float *logits_l, *gathered, *probs, *losses; /* (N, V_l), (tp, N, V_l), (N, Vp), (N) */
    float *dlogits, *dloss, *dx;                 /* backward: (N, Vp), (N), (N, C) */
    float *xd;                                   /* T5: the decoder rows of the input (N, C) (NULL: none) */
    int32_t *td;                                 /* T5: their targets (N) */
} HeadAct;

/* A patch embedding keeps nothing (backward gathers the patches again);
 * its working buffers. */
typedef struct PatchAct {
    float *X, *Y; /* (B np, ch p p) patches, (B np, C) their projection or its gradient */
} PatchAct;

/* Patch merging keeps its norm's statistics; its working buffers. */
typedef struct MergeAct {
    float *mean, *rstd; /* kept: (N / 4) each */
    float *X, *Xn;      /* (N / 4, 4 C): the gathered groups, normalized */
    float *dX, *dXn;    /* their gradients */
} MergeAct;

typedef struct ClassAct {
    float *probs, *h;        /* kept: (B, V), the pooler's output (B, C) (NULL: no pooler) */
    float *pooled, *dpooled; /* (B, C) working */
    float *dlogits, *dh;     /* (B, V), (B, C) working */
} ClassAct;

/* ---- helpers -------------------------------------------------------------------- */

static void tp_allreduce(GrtLayer *l, float *buf, size_t n) {
    if (l->tp) grt_allreduce(l->tp, buf, n);
}

/* A reference kernel is about to run where no generated one has the shape:
 * only the host can run it (the CUDA target generates every kernel its
 * plan's shapes need, so reaching this there is galvc's bug). */
static void host_reference(const char *what) {
    if (grt_dev->host_memory) return;
    char msg[160];
    snprintf(msg, sizeof msg, "internal error: no generated kernel for %s on the %s device", what, grt_dev->name);
    grt_abort(msg, 1);
}

/* The bf16 bits a block keeps of inp (N, C) where inp is one of its kept
 * activations' fp32 copy, which then holds their values; else NULL. A GEMM
 * under mixed precision reads them rather than round inp again. */
static const uint16_t *kept_bits(const GrtLayer *l, const float *inp, int N, int C) {
    if (l->s.kind != GRT_BLOCK || l->s.te || !l->act) return NULL; /* T5's blocks keep fp32 */
    const BlockAct *a = l->act;
    for (int k = 0; k < K_COUNT; k++)
        if (a->keep[k].h && a->keep[k].f == inp && a->keep[k].rows == (size_t)N && a->keep[k].cols == (size_t)C)
            return a->keep[k].h;
    return NULL;
}

/* out (N, OC) = inp (N, C) @ w (OC, C)^T + bias (OC): in fp32, or with
 * bf16 operands and fp32 accumulation under mixed precision. */
static void linear_fwd(const GrtLayer *l, float *out, const float *inp, const float *w, const float *bias, int N, int C,
                       int OC) {
    if (l->gemm16)
        grt_dev->matmul16_forward(out, inp, kept_bits(l, inp, N, C), w, bias, N, C, OC, l->s.gemm16, l->gemm16);
    else
        grt_dev->matmul_forward(out, inp, w, bias, N, C, OC);
}

/* dinp (N, C) += dout (N, OC) @ w (OC, C); dw (OC, C) += dout^T @ inp; dbias (OC) += sum_n dout: as linear_fwd */
static void linear_bwd(const GrtLayer *l, float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                       const float *w, int N, int C, int OC) {
    if (l->gemm16)
        grt_dev->matmul16_backward(dinp, dw, dbias, dout, inp, kept_bits(l, inp, N, C), w, N, C, OC, l->s.gemm16,
                                   l->gemm16);
    else grt_dev->matmul_backward(dinp, dw, dbias, dout, inp, w, N, C, OC);
}

/* linear_fwd and linear_bwd for a layer kind in its own file (runtime/t5.c). */
void grt_linear_forward(const GrtLayer *l, float *out, const float *inp, const float *w, const float *bias, int N, int C,
                        int OC) {
    linear_fwd(l, out, inp, w, bias, N, C, OC);
}
void grt_linear_backward(const GrtLayer *l, float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                         const float *w, int N, int C, int OC) {
    linear_bwd(l, dinp, dw, dbias, dout, inp, w, N, C, OC);
}

static size_t add_tensor(GrtLayer *l, const char *name, size_t n, int decay, int sharded) {
    GrtTensor *t = &l->tensors[l->n_tensors++];
    t->name = name;
    t->offset = l->n_params;
    t->n = n;
    t->decay = decay;
    t->sharded = sharded;
    l->n_params += n;
    return t->offset;
}

static float *P(const GrtLayer *l, int k) { return l->params + l->tensors[k].offset; }
static float *G(const GrtLayer *l, int k) { return l->grads + l->tensors[k].offset; }

/* The block's tensors, in this order. */
enum { B_LN1W, B_LN1B, B_WQKV, B_BQKV, B_WO, B_BO, B_LN2W, B_LN2B, B_WUP, B_BUP, B_WDOWN, B_BDOWN, B_REL };
/* Patch merging's. */
enum { M_NORMW, M_NORMB, M_RED };

static int up_rows(const GrtLayer *l) { return l->F_l * (l->s.swiglu ? 2 : 1); }
static int qkv_rows(const GrtLayer *l) { return (l->H_l + 2 * l->KVH_l) * l->s.hd; }

/* Abort unless the floats a layer laid out are those galvrt_sizes.h (what
 * the planner predicts) gives: an internal bug, never a user error. */
static void check_size(const GrtLayer *l, const char *what, size_t laid_out, double size) {
    if (laid_out == (size_t)size) return;
    char msg[256];
    snprintf(msg, sizeof msg, "internal error: layer '%s' lays out %zu floats of %s, galvrt_sizes.h says %.0f",
             l->s.name ? l->s.name : "?", laid_out, what, size);
    grt_abort(msg, 1);
}

/* ---- setup ------------------------------------------------------------------------- */

/* A T5 block's own tensors after the block's (galvrt.h, GRT_T5_REL on): its stack's bias table (buckets,
 * H) when it holds it, its columns split over TP by head; a decoder's cross-attention norm, Q, K V and output. */
static void t5_tensors(GrtLayer *l) {
    const GrtLayerSpec *s = &l->s;
    size_t C = (size_t)s->C, A = (size_t)l->H_l * s->hd, X = s->cross ? 1 : 0;
    if (s->KVH != s->H || s->bias || s->swiglu || !s->rms)
        grt_abort("a T5 block has as many key/value heads as heads, RMS norms, no biases and a ReLU MLP", 1);
    add_tensor(l, "attn.rel.weight", s->rel_own ? (size_t)s->buckets * l->H_l : 0, 1, 1); /* this rank's heads' columns */
    add_tensor(l, "lnc.weight", X * C, 0, 0);
    add_tensor(l, "cross.q.weight", X * A * C, 1, 1);
    add_tensor(l, "cross.kv.weight", X * 2 * A * C, 1, 1);
    add_tensor(l, "cross.out.weight", X * C * A, 1, 1);
}

/* Swin's layers read a square grid of T tokens: whole windows, or 2 x 2 groups to merge. */
static void check_grid(const GrtLayerSpec *s, int T) {
    int side = (int)lround(sqrt((double)T)), cut = s->kind == GRT_MERGE ? 2 : s->window;
    bool ok = side * side == T && side % cut == 0 && (s->kind == GRT_MERGE || !s->shift || side > s->window);
    if (!ok) grt_abort("a Swin layer's tokens must be a square grid its windows (or 2 x 2 groups) divide", 1);
}

void grt_layer_setup(GrtLayer *l, const GrtLayerSpec *s, GrtComm *tp, int B, int T) {
    if (s->kind == GRT_MERGE || (s->kind == GRT_BLOCK && s->window)) check_grid(s, T);
    grt_layer_shape(l, s, tp ? grt_size(tp) : 1, tp ? grt_rank(tp) : 0);
    l->tp = tp;
    l->B = B;
    l->T = T;
}

/* The sizes grt_layer_setup finds, for any TP degree and rank, without a group. */
void grt_layer_shape(GrtLayer *l, const GrtLayerSpec *s, int tp_size, int tp_rank) {
    memset(l, 0, sizeof *l);
    l->s = *s;
    l->tp_size = tp_size;
    l->tp_rank = tp_rank;
    l->B = l->T = 1;
    int n = l->tp_size, C = s->C;
    switch (s->kind) {
    case GRT_EMBEDDING:
        l->V_l = (s->V + n - 1) / n;
        add_tensor(l, "wte", (size_t)l->V_l * C, 1, 1);
        if (s->positions) add_tensor(l, "wpe", (size_t)s->positions * C, 1, 0);
        if (s->types && !s->positions) grt_abort("token types need learned positions", 1);
        if (s->types) add_tensor(l, "wtt", (size_t)s->types * C, 1, 0); /* BERT's token types (segments) */
        break;
    case GRT_BLOCK:
        if (s->H % n || s->KVH % n || s->F % n)
            grt_abort("a block's heads, key/value heads and FFN size must divide by the TP degree", 1);
        l->H_l = s->H / n;
        l->KVH_l = s->KVH / n;
        l->F_l = s->F / n;
        /* sharded tensors carry a null length when absent, to keep the order */
        add_tensor(l, "ln1.weight", C, 0, 0);
        add_tensor(l, "ln1.bias", s->rms || !s->bias ? 0 : C, 0, 0);
        add_tensor(l, "attn.qkv.weight", (size_t)qkv_rows(l) * C, 1, 1);
        add_tensor(l, "attn.qkv.bias", s->bias ? qkv_rows(l) : 0, 0, 1);
        add_tensor(l, "attn.out.weight", (size_t)C * l->H_l * s->hd, 1, 1);
        add_tensor(l, "attn.out.bias", s->bias ? C : 0, 0, 0);
        add_tensor(l, "ln2.weight", C, 0, 0);
        add_tensor(l, "ln2.bias", s->rms || !s->bias ? 0 : C, 0, 0);
        add_tensor(l, "mlp.up.weight", (size_t)up_rows(l) * C, 1, 1);
        add_tensor(l, "mlp.up.bias", s->bias ? up_rows(l) : 0, 0, 1);
        add_tensor(l, "mlp.down.weight", (size_t)C * l->F_l, 1, 1);
        add_tensor(l, "mlp.down.bias", s->bias ? C : 0, 0, 0);
        if (s->te) t5_tensors(l);
        if (s->window) /* Swin's relative position bias table (H_l, (2 window - 1)^2), no weight decay */
            add_tensor(l, "attn.rel_table", (size_t)l->H_l * (size_t)grt_window_table(s), 0, 1);
        break;
    case GRT_NORM:
        add_tensor(l, "weight", C, 0, 0);
        add_tensor(l, "bias", s->rms || !s->bias ? 0 : C, 0, 0);
        break;
    case GRT_HEAD:
        l->V_l = (s->V + n - 1) / n;
        if (!s->tied) add_tensor(l, "weight", (size_t)l->V_l * C, 1, 1);
        break;
    case GRT_PATCH:
        if (s->patch < 1 || s->image % s->patch || s->channels < 1)
            grt_abort("a patch embedding's image side must divide by its patch side", 1);
        add_tensor(l, "proj.weight", (size_t)C * (size_t)grt_patch_values(s), 1, 0);
        add_tensor(l, "proj.bias", C, 0, 0);
        add_tensor(l, "cls", s->plain ? 0 : C, 0, 0);
        add_tensor(l, "pos", s->plain ? 0 : ((size_t)grt_patches(s) + 1) * C, 0, 0);
        break;
    case GRT_CLASSIFIER:
        add_tensor(l, "weight", (size_t)s->V * C, 1, 0);
        add_tensor(l, "bias", s->V, 0, 0);
        if (s->pooler) add_tensor(l, "pooler.weight", (size_t)C * C, 1, 0);
        if (s->pooler) add_tensor(l, "pooler.bias", C, 0, 0);
        break;
    case GRT_MERGE:
        add_tensor(l, "norm.weight", 4 * (size_t)C, 0, 0);
        add_tensor(l, "norm.bias", 4 * (size_t)C, 0, 0);
        add_tensor(l, "reduction.weight", 8 * (size_t)C * C, 1, 0);
        break;
    }
    check_size(l, "parameters", l->n_params, grt_size_params(s, n));
}

/* ---- initialization ----------------------------------------------------------------- */

/* Global row numbers of rank `rank`'s rows of a tensor split in parts (each
 * part_rows_local rows per rank), laid out as [part 0 shard | part 1 shard | ...]. */
static void shard_rows(int64_t *rows, const int *part_rows_full, const int *part_rows_local, int parts, int rank) {
    int64_t base = 0;
    int k = 0;
    for (int p = 0; p < parts; p++) {
        for (int r = 0; r < part_rows_local[p]; r++) rows[k++] = base + (int64_t)rank * part_rows_local[p] + r;
        base += part_rows_full[p];
    }
}

/* Where rank `rank`'s part of tensor k sits in the whole tensor: its rows
 * (global numbers, row_index), its columns [col0, col0 + cols), the whole
 * tensor's shape. Rows past a padded vocabulary are left out (rows counts
 * only the real ones). One source of truth for initialization and gathering. */
typedef struct Layout {
    int rows, cols;
    int64_t col0, full_rows, full_cols;
} Layout;

static Layout layout(const GrtLayer *l, int k, int rank, int64_t *row_index) {
    const GrtLayerSpec *s = &l->s;
    int C = s->C;
    Layout y = {0, 0, 0, 0, 0};
    if (!l->tensors[k].n) return y;
    if (!l->tensors[k].sharded) {
        y.rows = 1, y.cols = (int)l->tensors[k].n, y.full_rows = 1, y.full_cols = y.cols;
        if (s->kind == GRT_EMBEDDING && k == 1) y.rows = s->positions, y.cols = C, y.full_rows = s->positions, y.full_cols = C;
        if (s->kind == GRT_EMBEDDING && k == 2) y.rows = s->types, y.cols = C, y.full_rows = s->types, y.full_cols = C;
        if ((s->kind == GRT_PATCH && (k == 0 || k == 3)) || (s->kind == GRT_CLASSIFIER && (k == 0 || k == 2)))
            y.rows = (int)(l->tensors[k].n / (size_t)C), y.cols = C, y.full_rows = y.rows, y.full_cols = C;
        if (s->kind == GRT_MERGE && k == M_RED) /* (2 C, 4 C) */
            y.rows = 2 * C, y.cols = 4 * C, y.full_rows = y.rows, y.full_cols = y.cols;
        if (s->kind == GRT_PATCH && k == 0) /* (C, ch p p) */
            y.rows = C, y.cols = (int)grt_patch_values(s), y.full_rows = C, y.full_cols = y.cols;
        for (int i = 0; i < y.rows; i++) row_index[i] = i;
        return y;
    }
    if (s->kind == GRT_EMBEDDING || s->kind == GRT_HEAD) { /* vocabulary rows */
        int valid = s->V - rank * l->V_l;
        y.rows = valid > l->V_l ? l->V_l : valid < 0 ? 0 : valid;
        y.cols = C, y.full_rows = s->V, y.full_cols = C;
        for (int i = 0; i < y.rows; i++) row_index[i] = (int64_t)rank * l->V_l + i;
        return y;
    }
    int full_qkv[3] = {s->H * s->hd, s->KVH * s->hd, s->KVH * s->hd};
    int local_qkv[3] = {l->H_l * s->hd, l->KVH_l * s->hd, l->KVH_l * s->hd};
    int full_up[2] = {s->F, s->F}, local_up[2] = {l->F_l, l->F_l};
    switch (k) {
    case B_REL: /* T5's (buckets, H): this rank's heads' columns; Swin's (H, table) by heads */
        if (s->te) {
            y.rows = s->buckets, y.cols = l->H_l, y.col0 = (int64_t)rank * l->H_l;
            y.full_rows = s->buckets, y.full_cols = s->H;
            for (int i = 0; i < y.rows; i++) row_index[i] = i;
            break;
        }
        y.rows = l->H_l, y.cols = (int)grt_window_table(s), y.full_rows = s->H, y.full_cols = y.cols;
        for (int i = 0; i < y.rows; i++)
            row_index[i] = (int64_t)rank * l->H_l + i;
        break;
    case GRT_T5_CQ:
    case GRT_T5_CKV: /* Q, or K then V: this rank's heads' rows */
        shard_rows(row_index, full_qkv, local_qkv, k == GRT_T5_CQ ? 1 : 2, rank);
        y.rows = (k == GRT_T5_CQ ? 1 : 2) * l->H_l * s->hd, y.cols = C;
        y.full_rows = (int64_t)(k == GRT_T5_CQ ? 1 : 2) * s->H * s->hd, y.full_cols = C;
        break;
    case B_WQKV:
    case B_BQKV:
        shard_rows(row_index, full_qkv, local_qkv, 3, rank);
        y.rows = qkv_rows(l), y.cols = k == B_WQKV ? C : 1;
        y.full_rows = (s->H + 2 * s->KVH) * s->hd, y.full_cols = y.cols;
        break;
    case B_WO:
    case GRT_T5_CO:
        y.rows = C, y.cols = l->H_l * s->hd, y.col0 = (int64_t)rank * y.cols;
        y.full_rows = C, y.full_cols = (int64_t)s->H * s->hd;
        for (int i = 0; i < C; i++) row_index[i] = i;
        break;
    case B_WUP:
    case B_BUP:
        shard_rows(row_index, full_up, local_up, s->swiglu ? 2 : 1, rank);
        y.rows = up_rows(l), y.cols = k == B_WUP ? C : 1;
        y.full_rows = (int64_t)s->F * (s->swiglu ? 2 : 1), y.full_cols = y.cols;
        break;
    case B_WDOWN:
        y.rows = C, y.cols = l->F_l, y.col0 = (int64_t)rank * y.cols, y.full_rows = C, y.full_cols = s->F;
        for (int i = 0; i < C; i++) row_index[i] = i;
        break;
    }
    return y;
}

/* The most rows any tensor of the layer has on one rank. */
static size_t max_rows(const GrtLayer *l) {
    const GrtLayerSpec *s = &l->s;
    size_t r = (size_t)s->C + (size_t)s->positions + (size_t)l->V_l + (size_t)(s->H + 2 * s->KVH) * s->hd + 2 * (size_t)s->F;
    if (s->kind == GRT_PATCH) r += (size_t)grt_patches(s) + 1;
    if (s->kind == GRT_CLASSIFIER) r += (size_t)s->V;
    if (s->kind == GRT_MERGE) r += 2 * (size_t)s->C;
    r += (size_t)s->types + (size_t)s->buckets;
    return r + 1;
}

/* GPT-2's initialization (as llm.c): N(0, 0.02), positions N(0, 0.01), the
 * residual projections scaled by 1 / sqrt(2 L); norms at one, biases zero. */
void grt_layer_init(GrtLayer *l, uint64_t seed, int index, int n_layers) {
    const GrtLayerSpec *s = &l->s;
    uint64_t id = (uint64_t)index * 16;
    float std = 0.02f, proj_std = 0.02f / sqrtf(2.0f * (n_layers > 0 ? n_layers : 1));
    int64_t *rows = grt_alloc(sizeof(int64_t) * max_rows(l));
    for (int k = 0; k < l->n_tensors; k++) {
        const char *name = l->tensors[k].name;
        if (!l->tensors[k].n || strstr(name, "bias")) continue; /* biases start at zero */
        if (strstr(name, "ln") == name || strstr(name, "norm") == name || s->kind == GRT_NORM) { /* norms at one */
            grt_fill(P(l, k), l->tensors[k].n, 1.0f);
            continue;
        }
        Layout y = layout(l, k, l->tp_rank, rows);
        bool proj = s->kind == GRT_BLOCK && (k == B_WO || k == B_WDOWN || k == GRT_T5_CO);
        float sd = proj ? proj_std : s->kind == GRT_EMBEDDING && k == 1 ? std / 2 : std; /* token types: std */
        if (s->kind == GRT_PATCH && k == 3) sd = std / 2; /* positions, as the embedding's */
        grt_init_normal(P(l, k), y.rows, y.cols, rows, y.col0, y.full_cols, sd, seed, id + (uint64_t)k);
    }
    grt_free(rows, sizeof(int64_t) * max_rows(l));
}

/* The whole tensor k (full_rows x full_cols, row-major) from every TP
 * rank's shard; every rank of the TP group gets it. Returns its length. */
size_t grt_layer_gather(GrtLayer *l, int k, float *full) {
    int64_t *rows = grt_alloc(sizeof(int64_t) * max_rows(l));
    Layout me = layout(l, k, l->tp_rank, rows);
    size_t n_full = (size_t)(me.full_rows * me.full_cols), n_local = l->tensors[k].n;
    if (!l->tensors[k].sharded || l->tp_size == 1) {
        memcpy(full, P(l, k), sizeof(float) * (n_full < n_local ? n_full : n_local));
        grt_free(rows, sizeof(int64_t) * max_rows(l));
        return n_full;
    }
    float *all = grt_alloc(sizeof(float) * n_local * l->tp_size);
    grt_allgather(l->tp, P(l, k), all, n_local);
    for (int r = 0; r < l->tp_size; r++) {
        Layout y = layout(l, k, r, rows);
        const float *src = all + (size_t)r * n_local;
        for (int i = 0; i < y.rows; i++)
            memcpy(full + (size_t)rows[i] * y.full_cols + y.col0, src + (size_t)i * y.cols, sizeof(float) * y.cols);
    }
    grt_free(all, sizeof(float) * n_local * l->tp_size);
    grt_free(rows, sizeof(int64_t) * max_rows(l));
    return n_full;
}

/* Tensor k whole: full_rows x full_cols (1 x n for vectors). */
void grt_tensor_shape(const GrtLayer *l, int k, int64_t *rows, int64_t *cols) {
    int64_t *index = grt_alloc(sizeof(int64_t) * max_rows(l));
    Layout y = layout(l, k, l->tp_rank, index);
    grt_free(index, sizeof(int64_t) * max_rows(l));
    *rows = y.full_rows, *cols = y.full_cols;
}

/* Copy this TP rank's part of tensor k between its shard (tensors[k].n
 * floats) and the whole tensor: the shard's rows into whole (to_whole), or
 * whole's rows into the shard, whose padded vocabulary rows become zeros. */
void grt_layer_place(const GrtLayer *l, int k, float *shard, float *whole, int to_whole) {
    int64_t *rows = grt_alloc(sizeof(int64_t) * max_rows(l));
    Layout y = layout(l, k, l->tp_rank, rows);
    if (!to_whole) memset(shard, 0, sizeof(float) * l->tensors[k].n);
    for (int i = 0; i < y.rows; i++) {
        float *w = whole + (size_t)rows[i] * y.full_cols + y.col0, *s = shard + (size_t)i * y.cols;
        if (to_whole) memcpy(w, s, sizeof(float) * y.cols);
        else memcpy(s, w, sizeof(float) * y.cols);
    }
    grt_free(rows, sizeof(int64_t) * max_rows(l));
}

/* ---- binding: parameters and activations ------------------------------------------- */

static float *falloc(size_t n, size_t *total) {
    *total += n * sizeof(float);
    return grt_dev->alloc(n * sizeof(float));
}

/* Its context-parallel degree (1: none), and its whole sequences' length: T, or under Ulysses T u, under CP T cp. */
static int cp_of(const GrtLayer *l) { return l->cp ? l->cp_size : 1; }
static double whole_T(const GrtLayer *l) { return (double)l->T * (l->ul ? l->ul_size : 1) * cp_of(l); }

/* Floats the layer keeps for backward from one micro-batch (galvrt_sizes.h). */

static size_t kept_floats(const GrtLayer *l) {
    if (l->ul) return (size_t)grt_size_kept_ulysses(&l->s, l->ul_size, l->B, whole_T(l), l->ckpt);
    return (size_t)grt_size_kept(&l->s, l->tp_size, l->sp, cp_of(l), l->B, l->T * cp_of(l), l->ckpt);
}

size_t grt_layer_work_floats(const GrtLayer *l) {
    if (l->ul) return (size_t)grt_size_work_ulysses(&l->s, l->ul_size, l->B, whole_T(l));
    return (size_t)grt_size_work(&l->s, l->tp_size, l->sp, cp_of(l), l->B, l->T * cp_of(l));
}

size_t grt_layer_ckpt_floats(const GrtLayer *l) {
    if (l->ul) return (size_t)grt_size_ckpt_ulysses(&l->s, l->ul_size, l->B, whole_T(l), l->ckpt);
    return (size_t)grt_size_ckpt(&l->s, l->tp_size, l->sp, cp_of(l), l->B, l->T * cp_of(l), l->ckpt);
}

/* Floats of its own working buffers (the rounded GEMM operands follow them). */
static size_t scratch_floats(const GrtLayer *l) {
    if (l->ul) return (size_t)grt_size_scratch_ulysses(&l->s, l->ul_size, l->B, whole_T(l));
    return (size_t)grt_size_scratch(&l->s, l->tp_size, l->sp, cp_of(l), l->B, l->T * cp_of(l));
}

/* Carve n floats off *area. */
static float *carve(float **area, size_t n) {
    float *p = *area;
    *area += n;
    return p;
}

/* The kept activations of Kept16's list, carved from `kept` after the
 * statistics: as floats, or as bf16 bits (grt_kept16; their fp32 copies
 * come from the stage's checkpoint area). Returns the area's new start. */
static float *keep_carve(const GrtLayer *l, BlockAct *a, float *kept) {
    size_t N = (size_t)l->B * l->T, C = (size_t)l->s.C, heads = (size_t)l->B * l->H_l * l->T;
    size_t rows = (size_t)grt_layer_rows(l); /* sequence parallel: the norms' outputs and the residual, its rows */
    size_t u = l->ul ? (size_t)l->ul_size : 1, Nw = l->ul ? N * u : 0, keys = (size_t)grt_block_keys(&l->s, l->T);
    if (l->ul) heads = (size_t)l->B * (l->H_l / u) * l->T * u, keys = (size_t)l->T * u; /* the whole sequences' */
    if (l->cp) keys = 1; /* CP: each query row's log-sum-exp (B, H_l, T) in place of the probabilities */
    size_t dims[K_COUNT][2] = {{rows, C},
                               {rows, C},
                               {rows, C},
                               {N, (size_t)qkv_rows(l)},
                               {N, (size_t)l->H_l * l->s.hd},
                               {N, (size_t)up_rows(l)},
                               {N, (size_t)l->F_l},
                               {heads, keys},
                               {Nw, (size_t)qkv_rows(l) / u},
                               {Nw, (size_t)l->H_l * l->s.hd / u}};
    uint16_t *bits = (uint16_t *)kept;
    size_t halves = 0;
    for (int k = 0; k < K_COUNT; k++) {
        Kept16 *q = &a->keep[k];
        q->rows = dims[k][0], q->cols = dims[k][1];
        if (grt_kept16(&l->s, l->ckpt)) q->h = bits + halves, halves += q->rows * q->cols;
        else q->f = carve(&kept, q->rows * q->cols);
    }
    return kept + (size_t)grt_half_floats((double)halves);
}

/* The block's fp32 names for its kept activations' copies. */
static void keep_name(BlockAct *a) {
    a->ln1 = a->keep[K_LN1].f, a->res1 = a->keep[K_RES1].f, a->ln2 = a->keep[K_LN2].f;
    a->qkv = a->keep[K_QKV].f, a->atty = a->keep[K_ATTY].f, a->att = a->keep[K_ATT].f;
    a->fch = a->keep[K_FCH].f, a->fca = a->keep[K_FCA].f;
    a->ub.qkvw = a->keep[K_QKVW].f, a->ub.attw = a->keep[K_ATTYW].f, a->ub.att = a->att;
}

/* A Ulysses block's group and shapes, and its working buffers carved from *work (galvrt_sizes.h's grt_ulysses_scratch). */
static void ulysses_bufs(GrtLayer *l, BlockAct *a, float **work) {
    const GrtLayerSpec *s = &l->s;
    int u = l->ul_size;
    size_t Nw = (size_t)l->B * l->T * u, q = (size_t)qkv_rows(l) / u, o = (size_t)l->H_l * s->hd / u;
    a->ul = (GrtUlysses){.group = l->ul, .u = u, .B = l->B, .T = l->T * u, .H = l->H_l, .KVH = l->KVH_l, .hd = s->hd,
                         .causal = s->causal, .rope = s->rope, .bf16 = s->gemm16 != 0, .rope_theta = s->rope_theta};
    a->ub.send = carve(work, Nw * q);
    a->ub.recv = carve(work, Nw * q);
    a->ub.dqkv_recv = carve(work, Nw * q);
    a->ub.dattw = carve(work, Nw * o);
    a->ub.rope = carve(work, Nw * (size_t)(l->H_l + l->KVH_l) * s->hd / u);
}

/* A block's kept activations, carved from `kept` (one micro-batch's worth),
 * with its working buffers carved from `work`, the fp32 copies of bf16 kept
 * activations from `area` (the stage's checkpoint area, galvrt_sizes.h). */
static BlockAct *block_act(GrtLayer *l, float *kept, float *work, float *area) {
    if (l->s.te) { /* T5's (runtime/t5.c), kept in fp32 at every precision */
        size_t kept_n, work_n;
        void *t5 = grt_t5_act(l, kept, work, &kept_n, &work_n);
        check_size(l, "kept activations", kept_n,
                   grt_size_kept(&l->s, l->tp_size, l->sp, cp_of(l), l->B, l->T * cp_of(l), l->ckpt));
        check_size(l, "working space", work_n,
                   grt_size_scratch(&l->s, l->tp_size, l->sp, cp_of(l), l->B, l->T * cp_of(l)));
        return t5;
    }
    size_t N = (size_t)l->B * l->T, C = (size_t)l->s.C, rows = (size_t)grt_layer_rows(l);
    size_t wide = (size_t)grt_block_wide(&l->s, grt_shard_sizes(&l->s, l->tp_size));
    float *kept0 = kept, *work0 = work;
    BlockAct *a = grt_alloc(sizeof *a);
    a->mean1 = carve(&kept, rows);
    a->rstd1 = carve(&kept, rows);
    a->mean2 = carve(&kept, rows);
    a->rstd2 = carve(&kept, rows);
    a->out_mean = carve(&kept, rows);
    a->out_rstd = carve(&kept, rows);
    kept = keep_carve(l, a, kept);
    a->scratch = carve(&work, N * wide);
    a->scratch2 = carve(&work, N * wide);
    a->dF = carve(&work, N * (size_t)l->F_l);
    a->dC1 = carve(&work, N * C);
    a->dC2 = carve(&work, N * C);
    a->dC3 = carve(&work, N * C);
    a->dAtt = carve(&work, N * (size_t)l->H_l * l->s.hd);
    a->rope_tmp = carve(&work, N * (size_t)(l->H_l + l->KVH_l) * l->s.hd);
    /* the score gradient, but for CP, whose ring attention takes none */
    a->dP = l->cp ? NULL : carve(&work, (size_t)grt_att_grad(&l->s, grt_shard_sizes(&l->s, l->tp_size), l->T));
    if (l->s.window) {
        size_t n = (size_t)l->s.window * l->s.window, HD = (size_t)l->H_l * l->s.hd;
        a->win = (GrtWindowWork){.qkvw = carve(&work, N * 3 * HD),
                                 .yw = carve(&work, N * HD),
                                 .dqkvw = carve(&work, N * 3 * HD),
                                 .bias = carve(&work, l->H_l * n * n),
                                 .mask = carve(&work, (size_t)l->T * n),
                                 .dS = carve(&work, n * n)};
    }
    if (l->cp) {
        a->ring = (GrtRingAttn){.group = l->cp,
                                .B = l->B,
                                .T = l->T * l->cp_size,
                                .H = l->H_l,
                                .KVH = l->KVH_l,
                                .hd = l->s.hd,
                                .causal = l->s.causal};
        a->ring_work = carve(&work, grt_ring_attn_work_floats(&a->ring));
        a->parts = carve(&work, N * (size_t)qkv_rows(l));
    }
    if (l->sp) l->shared = carve(&work, l->n_shared);
    check_size(l, "working space", (size_t)(work - work0),
               grt_size_scratch(&l->s, l->tp_size, l->sp, cp_of(l), l->B, l->T * cp_of(l)));
    if (l->ul) ulysses_bufs(l, a, &work);
    l->full = a->dC1, l->local = a->dC3;
    float *area0 = area;
    for (int k = 0; k < K_COUNT && grt_kept16(&l->s, l->ckpt); k++)
        a->keep[k].f = carve(&area, a->keep[k].rows * a->keep[k].cols);
    if (!l->ckpt) check_size(l, "checkpoint area", (size_t)(area - area0), grt_layer_ckpt_floats(l));
    a->round = l->s.gemm16 && l->ckpt;
    keep_name(a);
    check_size(l, "kept activations", (size_t)(kept - kept0), (double)kept_floats(l));
    check_size(l, "working space", (size_t)(work - work0), (double)scratch_floats(l));
    return a;
}

/* A norm's kept statistics, carved from `kept` (one micro-batch's worth). */
static NormAct *norm_act(const GrtLayer *l, float *kept) {
    size_t N = (size_t)grt_layer_rows(l);
    float *kept0 = kept;
    NormAct *a = grt_alloc(sizeof *a);
    a->mean = carve(&kept, N);
    a->rstd = carve(&kept, N);
    check_size(l, "kept activations", (size_t)(kept - kept0),
               grt_size_kept(&l->s, l->tp_size, l->sp, cp_of(l), l->B, l->T * cp_of(l), l->ckpt));
    return a;
}

/* The rows the head predicts: every token's, or T5's decoder rows (galvrt_sizes.h). */
static int head_n(const GrtLayer *l) { return l->B * (int)grt_head_rows(&l->s, l->T); }

/* The head's kept probabilities `probs` (N, Vp), with its working buffers
 * carved from `work`. */
static HeadAct *head_act(GrtLayer *l, float *probs, float *work) {
    size_t N = (size_t)head_n(l), C = (size_t)l->s.C, Vp = (size_t)l->V_l * l->tp_size;
    float *work0 = work;
    HeadAct *a = grt_alloc(sizeof *a);
    a->probs = probs;
    a->logits_l = carve(&work, N * l->V_l);
    a->gathered = carve(&work, N * Vp);
    a->dlogits = carve(&work, N * Vp);
    a->dx = carve(&work, N * C);
    a->losses = carve(&work, N);
    a->dloss = carve(&work, N);
    a->xd = l->s.te ? carve(&work, N * C) : NULL;
    a->td = l->s.te ? (int32_t *)carve(&work, N) : NULL;
    if (l->sp) l->full = l->local = carve(&work, N * C); /* the gathered input; the input gradient's scatter */
    if (l->cp) work += 2 * N;                            /* its tokens' copy (GrtLayer.ul_tokens) */
    check_size(l, "kept activations", N * Vp,
               grt_size_kept(&l->s, l->tp_size, l->sp, cp_of(l), l->B, l->T * cp_of(l), l->ckpt));
    check_size(l, "working space", (size_t)(work - work0),
               grt_size_scratch(&l->s, l->tp_size, l->sp, cp_of(l), l->B, l->T * cp_of(l)));
    return a;
}

/* A patch embedding's working buffers, carved from `work`. */
static PatchAct *patch_act(const GrtLayer *l, float *work) {
    size_t rows = (size_t)l->B * (size_t)grt_patches(&l->s);
    float *work0 = work;
    PatchAct *a = grt_alloc(sizeof *a);
    a->X = carve(&work, rows * (size_t)grt_patch_values(&l->s));
    a->Y = carve(&work, rows * (size_t)l->s.C);
    check_size(l, "working space", (size_t)(work - work0),
               grt_size_scratch(&l->s, l->tp_size, l->sp, cp_of(l), l->B, l->T * cp_of(l)));
    return a;
}

/* Patch merging's kept statistics, carved from `kept`, its working buffers from `work`. */
static MergeAct *merge_act(const GrtLayer *l, float *kept, float *work) {
    size_t N = (size_t)l->B * l->T, C = (size_t)l->s.C;
    float *kept0 = kept, *work0 = work;
    MergeAct *a = grt_alloc(sizeof *a);
    a->mean = carve(&kept, N / 4);
    a->rstd = carve(&kept, N / 4);
    a->X = carve(&work, N * C);
    a->Xn = carve(&work, N * C);
    a->dX = carve(&work, N * C);
    a->dXn = carve(&work, N * C);
    check_size(l, "kept activations", (size_t)(kept - kept0),
               grt_size_kept(&l->s, l->tp_size, l->sp, cp_of(l), l->B, l->T * cp_of(l), l->ckpt));
    check_size(l, "working space", (size_t)(work - work0),
               grt_size_scratch(&l->s, l->tp_size, l->sp, cp_of(l), l->B, l->T * cp_of(l)));
    return a;
}

/* A classifier's kept probabilities (B, V) and pooler output (B, C), carved
 * from `probs`, its working buffers from `work`. */
static ClassAct *class_act(const GrtLayer *l, float *probs, float *work) {
    size_t B = (size_t)l->B, C = (size_t)l->s.C, V = (size_t)l->s.V;
    float *work0 = work;
    ClassAct *a = grt_alloc(sizeof *a);
    float *kept = probs;
    a->probs = carve(&kept, B * V);
    a->h = l->s.pooler ? carve(&kept, B * C) : NULL;
    a->pooled = carve(&work, B * C);
    a->dpooled = carve(&work, B * C);
    a->dlogits = carve(&work, B * V);
    a->dh = l->s.pooler ? carve(&work, B * C) : NULL;
    check_size(l, "kept activations", (size_t)(kept - probs),
               grt_size_kept(&l->s, l->tp_size, l->sp, cp_of(l), l->B, l->T * cp_of(l), l->ckpt));
    check_size(l, "working space", (size_t)(work - work0),
               grt_size_scratch(&l->s, l->tp_size, l->sp, cp_of(l), l->B, l->T * cp_of(l)));
    return a;
}

void grt_layer_bind(GrtLayer *l, float *params, float *grads, int slots, float *work, float *ckpt) {
    if (l->sp && (l->s.kind == GRT_PATCH || l->s.kind == GRT_CLASSIFIER || l->s.kind == GRT_MERGE ||
                  (l->s.kind == GRT_BLOCK && (!l->s.pre_norm || l->s.window))))
        grt_abort("sequence parallelism takes embeddings, pre-norm blocks, norms and LM heads", 1);
    if (l->sp && (l->s.te || l->s.part)) /* T5's stream rows are not a sequence's tokens */
        grt_abort("sequence parallelism takes no layer of a T5 model", 1);
    if (l->sp && (l->B * l->T) % l->tp_size)
        grt_abort("sequence parallelism needs the micro-batch's tokens on a rank to divide by the TP degree", 1);
    if (l->ul && (l->tp_size > 1 || l->sp || l->s.te || l->s.window || l->s.types || l->s.dropout > 0 ||
                  l->s.kind == GRT_PATCH || l->s.kind == GRT_CLASSIFIER || l->s.kind == GRT_MERGE))
        grt_abort("Ulysses takes embeddings without token types, full-attention blocks, norms and LM heads, without TP "
                  "or dropout",
                  1);
    if (l->cp && (l->sp || l->s.te || l->s.window || l->s.types || l->s.dropout > 0 ||
                  (l->s.kind == GRT_BLOCK && (!l->s.pre_norm || l->s.gemm16 || l->tp_size > 1)) ||
                  l->s.kind == GRT_PATCH || l->s.kind == GRT_CLASSIFIER || l->s.kind == GRT_MERGE))
        grt_abort(
            "context parallelism takes embeddings without token types, pre-norm full-attention blocks (without TP, "
            "in fp32: bf16 kept activations would round the log-sum-exp rows), norms and LM heads, without dropout",
            1);
    if (l->cp && l->T % 2)
        grt_abort("context parallelism needs a rank's positions of a sequence to split into two chunks", 1);
    l->n_shared = l->sp ? (size_t)grt_size_shared(&l->s) : 0;
    if (!ckpt && grt_layer_ckpt_floats(l)) grt_abort("internal error: a layer that needs a checkpoint area got none", 1);
    l->params = params;
    l->grads = grads;
    /* the bf16 operands after the layer's own buffers (galvrt_sizes.h) */
    l->gemm16 = grt_size_gemm16(&l->s, l->tp_size, l->B, l->T) > 0 ? work + scratch_floats(l) : NULL;
    /* Ulysses or CP: the embedding's and the head's copy of its tokens, after its own buffers (grt_ulysses_scratch,
     * grt_size_scratch under CP) */
    l->ul_tokens = (l->ul || l->cp) && (l->s.kind == GRT_EMBEDDING || l->s.kind == GRT_HEAD)
                       ? (int32_t *)(work + (size_t)grt_size_scratch(&l->s, l->tp_size, l->sp, 1, l->B, l->T))
                       : NULL;
    l->n_slots = slots < 1 ? 1 : slots;
    l->slot_act = grt_alloc(sizeof(void *) * (size_t)l->n_slots);
    size_t bytes = 0;
    for (int k = 0; k < l->n_slots; k++) {
        switch (l->s.kind) {
        case GRT_EMBEDDING: l->slot_act[k] = NULL, l->full = l->sp ? work : NULL; break;
        case GRT_BLOCK:
            if (l->ckpt) /* one set for every micro-batch, rebuilt in backward */
                l->slot_act[k] = k ? l->slot_act[0] : block_act(l, ckpt, work, NULL);
            else l->slot_act[k] = block_act(l, falloc(kept_floats(l), &bytes), work, ckpt);
            break;
        case GRT_NORM:
            l->slot_act[k] = norm_act(l, falloc(kept_floats(l), &bytes));
            l->shared = l->sp ? work : NULL;
            break;
        case GRT_HEAD: l->slot_act[k] = head_act(l, falloc(kept_floats(l), &bytes), work); break;
        case GRT_PATCH: l->slot_act[k] = patch_act(l, work); break;
        case GRT_CLASSIFIER: l->slot_act[k] = class_act(l, falloc(kept_floats(l), &bytes), work); break;
        case GRT_MERGE: l->slot_act[k] = merge_act(l, falloc(kept_floats(l), &bytes), work); break;
        }
    }
    l->act = l->slot_act[0];
    l->act_bytes = bytes;
}

void grt_layer_use_slot(GrtLayer *l, int slot) { l->act = l->slot_act[slot % l->n_slots]; }

/* ---- forward ---------------------------------------------------------------------------- */

int grt_layer_rows(const GrtLayer *l) { return l->B * l->T / (l->sp ? l->tp_size : 1); }
float *grt_layer_full(GrtLayer *l) { return l->full; }
float *grt_layer_local(GrtLayer *l) { return l->local; }

/* ---- the generated kernels (galvrt.h) where the plan's shapes have one, else the references ---- */

/* One norm: LayerNorm, or RMSNorm when s->rms (its mean slot unused). */
static void norm_forward(const GrtLayerSpec *s, float *out, float *mean, float *rstd, const float *in, const float *w,
                         const float *b, int N) {
    if (s->rms) {
        GrtRmsNormFwdFn *k = (GrtRmsNormFwdFn *)grt_kernel_find(GRT_K_RMSNORM_FWD, s->C, 0);
        if (k && rstd) GRT_KERNEL_ROWS(k, N, s->eps, out, rstd, in, w);
        else {
            host_reference("rmsnorm_fwd");
            grt_rmsnorm_forward(out, rstd, in, w, N, s->C, s->eps);
        }
        return;
    }
    GrtLayerNormFwdFn *k = (GrtLayerNormFwdFn *)grt_kernel_find(GRT_K_LAYERNORM_FWD, s->C, b ? GRT_KF_BIAS : 0);
    if (k && mean && rstd) GRT_KERNEL_ROWS(k, N, s->eps, out, mean, rstd, in, w, b);
    else {
        host_reference("layernorm_fwd");
        grt_layernorm_forward(out, mean, rstd, in, w, b, N, s->C, s->eps);
    }
}

static void norm_backward(const GrtLayerSpec *s, float *din, float *dw, float *db, const float *dout, const float *in,
                          const float *w, const float *mean, const float *rstd, int N) {
    if (s->rms) {
        GrtRmsNormBwdFn *k = (GrtRmsNormBwdFn *)grt_kernel_find(GRT_K_RMSNORM_BWD, s->C, 0);
        if (k && din && dw) GRT_KERNEL_ROWS(k, N, 0, din, dw, dout, in, w, rstd);
        else {
            host_reference("rmsnorm_bwd");
            grt_rmsnorm_backward(din, dw, dout, in, w, rstd, N, s->C);
        }
        return;
    }
    GrtLayerNormBwdFn *k = (GrtLayerNormBwdFn *)grt_kernel_find(GRT_K_LAYERNORM_BWD, s->C, db ? GRT_KF_BIAS : 0);
    if (k && din && dw) GRT_KERNEL_ROWS(k, N, 0, din, dw, db, dout, in, w, mean, rstd);
    else {
        host_reference("layernorm_bwd");
        grt_layernorm_backward(din, dw, db, dout, in, w, mean, rstd, N, s->C);
    }
}

/* out (N, C) = a + b */
static void residual(float *out, const float *a, const float *b, int N, int C) {
    GrtResidualFn *k = (GrtResidualFn *)grt_kernel_find(GRT_K_RESIDUAL, C, 0);
    if (k) GRT_KERNEL_ROWS(k, N, 0, out, a, b, NULL);
    else {
        host_reference("residual");
        grt_residual_forward(out, a, b, (size_t)N * C);
    }
}

/* The generated bias + GELU of width F, if any: it adds the up projection's bias itself. */
static GrtBiasGeluFwdFn *bias_gelu_kernel(const GrtLayerSpec *s, int F, const float *bias) {
    return s->swiglu ? NULL : (GrtBiasGeluFwdFn *)grt_kernel_find(GRT_K_BIAS_GELU_FWD, F, bias ? GRT_KF_BIAS : 0);
}

/* The MLP's activation: fch (N, UP) from the up projection into fca (N, F);
 * bias (not NULL only with a bias + GELU kernel) added to fch first. */
static void activation_forward(const GrtLayerSpec *s, float *fca, float *fch, const float *bias, int N, int F) {
    GrtBiasGeluFwdFn *gk = bias_gelu_kernel(s, F, bias);
    GrtSwigluFwdFn *sk = s->swiglu ? (GrtSwigluFwdFn *)grt_kernel_find(GRT_K_SWIGLU_FWD, F, 0) : NULL;
    if (gk) GRT_KERNEL_ROWS(gk, N, 0, fch, fca, bias);
    else if (sk) GRT_KERNEL_ROWS(sk, N, 0, fca, fch);
    else {
        host_reference("the MLP's activation");
        if (s->swiglu) grt_swiglu_forward(fca, fch, N, F);
        else grt_gelu_forward(fca, fch, (size_t)N * F);
    }
}

/* dfch (N, UP) += the activation's backward of dfca (N, F); the up
 * projection's bias gradient too when the generated kernel takes it (true). */
static bool activation_backward(const GrtLayerSpec *s, float *dfch, float *dbias, const float *fch, const float *dfca,
                                int N, int F) {
    GrtBiasGeluBwdFn *gk =
        s->swiglu ? NULL : (GrtBiasGeluBwdFn *)grt_kernel_find(GRT_K_BIAS_GELU_BWD, F, dbias ? GRT_KF_BIAS : 0);
    GrtSwigluBwdFn *sk = s->swiglu ? (GrtSwigluBwdFn *)grt_kernel_find(GRT_K_SWIGLU_BWD, F, 0) : NULL;
    if (gk) GRT_KERNEL_ROWS(gk, N, 0, dfch, fch, dfca, dbias);
    else if (sk) GRT_KERNEL_ROWS(sk, N, 0, dfch, fch, dfca);
    else {
        host_reference("the MLP's activation backward");
        if (s->swiglu) grt_swiglu_backward(dfch, fch, dfca, N, F);
        else grt_gelu_backward(dfch, fch, dfca, (size_t)N * F);
    }
    return gk != NULL;
}

/* The attention softmax kernels' flags for this block. */
static int causal_flag(const GrtLayerSpec *s) { return s->causal ? GRT_KF_CAUSAL : 0; }

/* The layer's dropout at `site` on its current micro-batch (grt_shard set
 * the step and sequences), with the generated kernels of its shapes. */
static GrtDropout dropout_at(const GrtLayer *l, int site) {
    int C = l->s.C, T = l->T;
    return (GrtDropout){.p = l->s.dropout,
                        .key = grt_dropout_key(l->drop_seed, l->drop_step, l->index, site),
                        .seq0 = l->drop_seq0,
                        .h0 = l->tp_rank * l->H_l,
                        .r0 = l->sp ? (int64_t)l->tp_rank * grt_layer_rows(l) : 0,
                        .fwd = grt_kernel_find_sized(GRT_K_DROPOUT, C, GRT_KF_RESIDUAL, T, 0, 0),
                        .att = grt_kernel_find_sized(GRT_K_DROPOUT, T, 0, T, 0, 0),
                        .plain = grt_kernel_find_sized(GRT_K_DROPOUT, C, 0, T, 0, 0)};
}

/* out (N, C) = a + dropout(b + bias) at `site` (bias (C) or NULL); without dropout the plain residual,
 * the bias added in its generated kernel where there is one (not into b: one launch), else into b first. */
static void residual_dropout(const GrtLayer *l, int site, float *out, const float *a, float *b, const float *bias) {
    int N = grt_layer_rows(l), C = l->s.C;
    GrtResidualFn *k = bias ? (GrtResidualFn *)grt_kernel_find(GRT_K_RESIDUAL, C, GRT_KF_BIAS) : NULL;
    if (k && !(l->s.dropout > 0)) {
        GRT_KERNEL_ROWS(k, N, 0, out, a, b, bias);
        return;
    }
    if (bias) grt_dev->add_bias(b, bias, N, C);
    if (!(l->s.dropout > 0)) {
        residual(out, a, b, N, C);
        return;
    }
    GrtDropout d = dropout_at(l, site);
    grt_residual_dropout_forward(out, a, b, N, C, l->T, &d);
}

/* A residual branch's gradient: the residual's gradient g (N, C) through
 * the branch's dropout at `site` into tmp; g itself without dropout. */
static const float *branch_grad(const GrtLayer *l, int site, const float *g, float *tmp) {
    if (!(l->s.dropout > 0)) return g;
    GrtDropout d = dropout_at(l, site);
    grt_dropout_copy(tmp, g, grt_layer_rows(l), l->s.C, l->T, &d);
    return tmp;
}

static const float *opt(const GrtLayer *l, int k) { return l->tensors[k].n ? P(l, k) : NULL; }
static float *gopt(const GrtLayer *l, int k) { return l->tensors[k].n ? G(l, k) : NULL; }

/* Tensor k's gradient; sequence parallel, a replicated tensor's partial one
 * of this micro-batch, in l->shared (laid out as the replicated tensors). */
static float *grad_of(const GrtLayer *l, int k) {
    if (!l->n_shared || l->tensors[k].sharded || !l->tensors[k].n) return gopt(l, k);
    size_t off = 0;
    for (int j = 0; j < k; j++)
        if (!l->tensors[j].sharded) off += l->tensors[j].n;
    return l->shared + off;
}

/* Rotary's angle tables, cs then sn (T, hd / 2 each), as the generated
 * kernels read them: on the host computed into tmp (grt_rope_table) each
 * time; on a device computed once per shape and kept in its memory for the
 * run (T hd floats outside the plan, like the bias GEMMs' vector of ones:
 * filled during the first step), so no step sends it again. */
static const float *rope_table(float *tmp, int T, int hd, float theta) {
    static struct {
        int T, hd;
        float theta;
        float *table;
    } kept[4];
    size_t n = (size_t)T * (hd / 2);
    if (grt_dev->host_memory) {
        grt_rope_table(tmp, tmp + n, T, hd, theta);
        return tmp;
    }
    int k = 0;
    for (; k < 4 && kept[k].table; k++)
        if (kept[k].T == T && kept[k].hd == hd && kept[k].theta == theta) return kept[k].table;
    if (k == 4) grt_abort("internal error: more than four rotary shapes on the device", 1);
    float *host = grt_alloc(2 * n * sizeof(float));
    grt_rope_table(host, host + n, T, hd, theta);
    kept[k].table = grt_dev->alloc(2 * n * sizeof(float));
    grt_dev->to_device(kept[k].table, host, 2 * n * sizeof(float));
    grt_free(host, 2 * n * sizeof(float));
    kept[k].T = T, kept[k].hd = hd, kept[k].theta = theta;
    return kept[k].table;
}

/* Rotary embedding on the Q and K parts of qkv (N, QKV_l): in place by the
 * generated kernel (its angle table in tmp on the host), else through a
 * contiguous copy in tmp (the reference wants (B, T, heads, hd)). */
static void rope_qk(GrtLayer *l, float *qkv, float *tmp, int backward) {
    int N = l->B * l->T, hd = l->s.hd, heads = l->H_l + l->KVH_l, qk = heads * hd, row = qkv_rows(l);
    GrtRopeFn *k = hd % 2 ? NULL
                          : (GrtRopeFn *)grt_kernel_find_sized(backward ? GRT_K_ROPE_BWD : GRT_K_ROPE_FWD, hd / 2, 0,
                                                               l->T, heads, row);
    if (k) {
        const float *cs = rope_table(tmp, l->T, hd, l->s.rope_theta);
        k((int64_t)N * heads, qkv, cs, cs + (size_t)l->T * (hd / 2));
        return;
    }
    host_reference("rotary");
    for (int i = 0; i < N; i++) memcpy(tmp + (size_t)i * qk, qkv + (size_t)i * row, sizeof(float) * (size_t)qk);
    if (backward) grt_rope_backward(tmp, l->B, l->T, l->H_l + l->KVH_l, hd, l->s.rope_theta);
    else grt_rope_forward(tmp, l->B, l->T, l->H_l + l->KVH_l, hd, l->s.rope_theta);
    for (int i = 0; i < N; i++) memcpy(qkv + (size_t)i * row, tmp + (size_t)i * qk, sizeof(float) * (size_t)qk);
}

/* The generated window kernels of this block's shapes (NULL where none: the references run). */
static GrtWindowKernels window_kernels(const GrtLayer *l, const GrtWindowShape *g) {
    GrtWindowKernels k;
    for (int w = 0; w < 2; w++) {
        int C = (w ? 1 : 3) * g->H * g->hd;
        k.gather[w] = (GrtWinPermuteFn *)grt_kernel_find_sized(GRT_K_WIN_GATHER, C, 0, g->side, g->M, g->shift);
        k.scatter[w] = (GrtWinPermuteFn *)grt_kernel_find_sized(GRT_K_WIN_SCATTER, C, 0, g->side, g->M, g->shift);
    }
    int n = g->M * g->M;
    k.softmax = (GrtWinSoftmaxFwdFn *)grt_kernel_find_sized(GRT_K_WIN_SOFTMAX_FWD, n, 0, g->H, l->T / n, g->hd);
    k.softmax_bwd = (GrtAttSoftmaxBwdFn *)grt_kernel_find(GRT_K_ATT_SOFTMAX_BWD, n, 0);
    return k;
}

/* A Swin block's windows on this rank: its images, its grid, its heads. */
static GrtWindowShape windows(const GrtLayer *l) {
    int side = (int)lround(sqrt((double)l->T));
    return (GrtWindowShape){.B = l->B,
                            .side = side,
                            .M = l->s.window,
                            .shift = l->s.shift ? l->s.window / 2 : 0,
                            .H = l->H_l,
                            .hd = l->s.hd};
}

/* ---- bf16 kept activations (mixed precision) ---------------------------------------- */

/* dst (rows, cols) = src's values as bf16 bits: the generated kernel of cols columns, else the reference. */
static void bf16_rows(uint16_t *dst, const float *src, size_t rows, size_t cols) {
    GrtBf16Fn *k = (GrtBf16Fn *)grt_kernel_find(GRT_K_BF16, (int)cols, 0);
    if (k) k((int64_t)rows, dst, src);
    else {
        host_reference("bf16");
        grt_bf16_round(dst, src, rows * cols, 0);
    }
}

/* dst (rows, cols) = the bf16 bits src as floats: as bf16_rows. */
static void widen_rows(float *dst, const uint16_t *src, size_t rows, size_t cols) {
    GrtBf16WidenFn *k = (GrtBf16WidenFn *)grt_kernel_find(GRT_K_BF16_WIDEN, (int)cols, 0);
    if (k) k((int64_t)rows, dst, src);
    else {
        host_reference("bf16_widen");
        grt_bf16_widen(dst, src, rows * cols);
    }
}

/* dst (rows, cols) = src rounded to bf16, as floats (in place when dst is src): as bf16_rows. */
static void round_rows(float *dst, const float *src, size_t rows, size_t cols) {
    GrtBf16Fn *k = (GrtBf16Fn *)grt_kernel_find(GRT_K_BF16, (int)cols, GRT_KF_WIDE);
    if (k) k((int64_t)rows, dst, src);
    else {
        host_reference("bf16");
        grt_bf16_round(dst, src, rows * cols, 1);
    }
}

/* Keep activation k (its fp32 copy just computed) for backward: under mixed
 * precision as bf16 bits, and its copy becomes those values (one pass of the
 * generated bf16_keep), so the forward goes on from what the backward will
 * read; checkpointed, rounded in place to the same values. Nothing to do in fp32. */
static void keep16(BlockAct *a, int k) {
    Kept16 *q = &a->keep[k];
    if (a->round) round_rows(q->f, q->f, q->rows, q->cols);
    if (!q->h) return;
    GrtBf16KeepFn *fn = (GrtBf16KeepFn *)grt_kernel_find(GRT_K_BF16_KEEP, (int)q->cols, 0);
    if (fn) {
        fn((int64_t)q->rows, q->h, q->f);
        return;
    }
    bf16_rows(q->h, q->f, q->rows, q->cols);
    widen_rows(q->f, q->h, q->rows, q->cols);
}

/* A block's mixed-precision attention core as the device sees it
 * (GrtAtt16): the kept bits of qkv and of the probabilities (none when
 * checkpointed), and the layer's rounded operands' area. */
static GrtAtt16 att16(const GrtLayer *l) {
    const BlockAct *a = l->act;
    return (GrtAtt16){.qkv = a->keep[K_QKV].h, .att = a->keep[K_ATT].h, .ops = l->gemm16};
}

/* Whether the block's attention core is the device's (GrtDevice's attention_forward and _backward): not
 * Swin's windows, dropout's, Ulysses's or context parallelism's, which the host runs itself. */
static bool device_attention(const GrtLayer *l) { return !l->s.window && !(l->s.dropout > 0) && !l->ul && !l->cp; }

/* Backward's fp32 copies of every bf16 kept activation, from their bits
 * (the working space held other layers' since the forward), but the
 * probabilities of a device's attention, which it takes as bits (GrtAtt16). */
static void unkeep16(GrtLayer *l) {
    BlockAct *a = l->act;
    for (int k = 0; k < K_COUNT; k++)
        if (a->keep[k].h && !(k == K_ATT && device_attention(l)))
            widen_rows(a->keep[k].f, a->keep[k].h, a->keep[k].rows, a->keep[k].cols);
}

/* The global position where chunk k (0 or 1) of a CP rank's T positions of a sequence starts (grt_ring_position). */
static int chunk_start(const GrtLayer *l, int k) {
    return grt_ring_position(l->T * l->cp_size, l->cp_size, l->cp_rank, k * l->T / 2);
}

/* Rotary on the Q and K parts of a CP block's qkv (N, QKV) at their global
 * positions: each sequence's two chunks through the contiguous copy tmp (N, (H + KVH) hd). */
static void cp_rope(GrtLayer *l, float *qkv, float *tmp, int backward) {
    int N = l->B * l->T, hd = l->s.hd, heads = l->H_l + l->KVH_l, qk = heads * hd, row = qkv_rows(l), c = l->T / 2;
    host_reference("rotary");
    for (int i = 0; i < N; i++)
        memcpy(tmp + (size_t)i * qk, qkv + (size_t)i * row, sizeof(float) * (size_t)qk);
    for (int b = 0; b < l->B; b++)
        for (int k = 0; k < 2; k++)
            grt_rope_at(tmp + ((size_t)b * l->T + (size_t)k * c) * qk, c, heads, hd, l->s.rope_theta, chunk_start(l, k),
                        backward);
    for (int i = 0; i < N; i++)
        memcpy(qkv + (size_t)i * row, tmp + (size_t)i * qk, sizeof(float) * (size_t)qk);
}

/* Between qkv's rows (N, (H + 2 KVH) hd) and its Q (N, H hd), K, V (N, KVH hd) one after the other in parts. */
static void qkv_parts(const GrtLayer *l, float *qkv, float *parts, int to_parts) {
    size_t N = (size_t)l->B * l->T, q = (size_t)l->H_l * l->s.hd, kv = (size_t)l->KVH_l * l->s.hd, row = q + 2 * kv;
    size_t off[3] = {0, q, q + kv}, w[3] = {q, kv, kv}, at[3] = {0, N * q, N * (q + kv)};
    for (size_t n = 0; n < N; n++)
        for (int j = 0; j < 3; j++) {
            float *a = qkv + n * row + off[j], *b = parts + at[j] + n * w[j];
            memcpy(to_parts ? b : a, to_parts ? a : b, sizeof(float) * w[j]);
        }
}

/* A CP block's attention: rotary at global positions, ring attention over
 * its group (runtime/ring_attn.c) keeping the output and each row's
 * log-sum-exp (a->att), the output projection's partial sums in a->scratch. */
static float *ring_attention_from(GrtLayer *l) {
    BlockAct *a = l->act;
    int N = l->B * l->T, hd = l->s.hd;
    size_t q = (size_t)N * l->H_l * hd, kv = (size_t)N * l->KVH_l * hd;
    if (l->s.rope) cp_rope(l, a->qkv, a->scratch, 0);
    qkv_parts(l, a->qkv, a->parts, 1);
    grt_ring_attn_forward(&a->ring, a->parts, a->parts + q, a->parts + q + kv, a->atty, a->att, a->ring_work);
    linear_fwd(l, a->scratch, a->atty, P(l, B_WO), NULL, N, l->H_l * hd, l->s.C);
    return a->scratch;
}

/* A CP block's attention backward: dqkv (N, QKV) from datty through the ring, Q K V apart again in a->parts. */
static void ring_attention_backward(GrtLayer *l, float *dqkv, const float *datty) {
    BlockAct *a = l->act;
    size_t N = (size_t)l->B * l->T, q = N * l->H_l * l->s.hd, kv = N * l->KVH_l * l->s.hd;
    float *p = a->parts;
    qkv_parts(l, a->qkv, p, 1);
    grt_ring_attn_backward(&a->ring, p, p + q, p + q + kv, a->atty, a->att, datty, dqkv, dqkv + q, dqkv + q + kv,
                           a->ring_work);
    qkv_parts(l, p, dqkv, 0); /* dqkv's parts into rows, through a->parts */
    memcpy(dqkv, p, sizeof(float) * (q + 2 * kv));
}

/* From attention's input attn_in (N, C) through QKV, attention and the
 * row-parallel output projection: its partial sums (N, C) in a->scratch. */
static float *attention_from(GrtLayer *l, const float *attn_in) {
    BlockAct *a = l->act;
    const GrtLayerSpec *s = &l->s;
    int N = l->B * l->T, C = s->C, hd = s->hd;
    linear_fwd(l, a->qkv, attn_in, P(l, B_WQKV), opt(l, B_BQKV), N, C, qkv_rows(l));
    if (l->ul) { /* Ulysses: over the whole sequences of its group's share of the heads (runtime/ulysses.c) */
        a->ul.softmax = (GrtAttSoftmaxFwdFn *)grt_kernel_find_sized(GRT_K_ATT_SOFTMAX_FWD, a->ul.T, causal_flag(s), hd, 0, 0);
        keep16(a, K_QKV); /* not rotated: rotary runs on the whole sequences' heads */
        grt_ulysses_qkv_to_heads(&a->ul, &a->ub, a->qkv);
        keep16(a, K_QKVW);
        grt_ulysses_attend(&a->ul, &a->ub);
        keep16(a, K_ATT); /* rounded already by the attention: their bits */
        keep16(a, K_ATTYW);
        grt_ulysses_out_to_tokens(&a->ul, &a->ub, a->atty);
        keep16(a, K_ATTY);
        linear_fwd(l, a->scratch, a->atty, P(l, B_WO), NULL, N, l->H_l * hd, C);
        return a->scratch;
    }
    if (l->cp) return ring_attention_from(l);
    if (s->rope) rope_qk(l, a->qkv, a->scratch, 0);
    keep16(a, K_QKV);
    GrtAttSoftmaxFwdFn *sm =
        (GrtAttSoftmaxFwdFn *)grt_kernel_find_sized(GRT_K_ATT_SOFTMAX_FWD, l->T, causal_flag(s), s->hd, 0, 0);
    if (s->window) {
        GrtWindowShape g = windows(l);
        GrtWindowKernels k = window_kernels(l, &g);
        host_reference("window_attention_fwd"); /* host BLAS around the kernels */
        grt_window_attention_gemm_forward(a->atty, a->att, a->qkv, P(l, B_REL), &g, &a->win, &k);
        keep16(a, K_ATT); /* its backward reads them rounded */
    } else if (s->dropout > 0) {
        GrtDropout d = dropout_at(l, GRT_DROP_ATT);
        grt_attention_forward_dropout(a->atty, a->att, a->qkv, l->B, l->T, l->H_l, l->KVH_l, hd, s->causal, sm, &d,
                                      s->gemm16 != 0);
        keep16(a, K_ATT); /* rounded already: their bits */
    } else { /* the device keeps the probabilities: rounded before they multiply V, their bits */
        GrtAtt16 m = att16(l);
        grt_dev->attention_forward(a->atty, a->att, a->qkv, s->gemm16 ? &m : NULL, l->B, l->T, l->H_l, l->KVH_l, hd,
                                   s->causal, sm);
    }
    keep16(a, K_ATTY);
    linear_fwd(l, a->scratch, a->atty, P(l, B_WO), NULL, N, l->H_l * hd, C);
    return a->scratch;
}

/* The attention half up to its row-parallel output projection: the
 * projection's partial sums (N, C), to be summed over the TP group. */
float *grt_block_attention(GrtLayer *l, const float *x) {
    BlockAct *a = l->act;
    const GrtLayerSpec *s = &l->s;
    int N = l->B * l->T;
    const float *attn_in = x;
    if (s->pre_norm) {
        norm_forward(s, a->ln1, a->mean1, a->rstd1, x, P(l, B_LN1W), opt(l, B_LN1B), N);
        keep16(a, K_LN1);
        attn_in = a->ln1;
    }
    return attention_from(l, attn_in);
}

/* From the MLP's input mlp_in (N, C) through the column-parallel up
 * projection, the activation and the row-parallel down projection: its
 * partial sums (N, C) in a->scratch. */
static float *mlp_from(GrtLayer *l, const float *mlp_in) {
    BlockAct *a = l->act;
    const GrtLayerSpec *s = &l->s;
    int N = l->B * l->T, C = s->C;
    const float *bup = opt(l, B_BUP);
    bool fused = bias_gelu_kernel(s, l->F_l, bup) != NULL; /* the activation adds the bias */
    linear_fwd(l, a->fch, mlp_in, P(l, B_WUP), fused ? NULL : bup, N, C, up_rows(l));
    activation_forward(s, a->fca, a->fch, fused ? bup : NULL, N, l->F_l);
    keep16(a, K_FCH); /* biased by the fused activation: its input, as the backward reads it */
    keep16(a, K_FCA);
    linear_fwd(l, a->scratch, a->fca, P(l, B_WDOWN), NULL, N, l->F_l, C);
    return a->scratch;
}

/* The summed projection's bias and residual (x + attn into res1, through the
 * first norm when post-norm), then the MLP up to its row-parallel down
 * projection: its partial sums (N, C), to be summed over the TP group. */
float *grt_block_mlp(GrtLayer *l, const float *x) {
    BlockAct *a = l->act;
    const GrtLayerSpec *s = &l->s;
    int N = l->B * l->T;
    residual_dropout(l, GRT_DROP_ATT_OUT, a->res1, x, a->scratch, opt(l, B_BO));
    keep16(a, K_RES1);
    const float *mlp_in = a->res1;
    if (s->pre_norm) {
        norm_forward(s, a->ln2, a->mean2, a->rstd2, a->res1, P(l, B_LN2W), opt(l, B_LN2B), N);
        keep16(a, K_LN2);
        mlp_in = a->ln2;
    } else { /* post-norm: the first norm closes the attention half */
        norm_forward(s, a->ln1, a->mean1, a->rstd1, a->res1, P(l, B_LN1W), opt(l, B_LN1B), N);
        keep16(a, K_LN1);
        mlp_in = a->ln1;
    }
    return mlp_from(l, mlp_in);
}

/* The summed down projection's bias and the residual (through the second
 * norm when post-norm) into out (N, C); NULL: a checkpointed block's
 * recomputation, whose output nobody reads. */
void grt_block_output(GrtLayer *l, float *out) {
    BlockAct *a = l->act;
    const GrtLayerSpec *s = &l->s;
    int N = l->B * l->T;
    if (!out) out = a->dC2;
    if (s->pre_norm) {
        residual_dropout(l, GRT_DROP_MLP_OUT, out, a->res1, a->scratch, opt(l, B_BDOWN));
    } else { /* the second norm's input */
        residual_dropout(l, GRT_DROP_MLP_OUT, a->ln2, a->ln1, a->scratch, opt(l, B_BDOWN));
        keep16(a, K_LN2);
        norm_forward(s, out, a->out_mean, a->out_rstd, a->ln2, P(l, B_LN2W), opt(l, B_LN2B), N);
    }
}

/* The whole block, its TP all-reduces included: x -> out. */
static void block_forward(GrtLayer *l, const float *x, float *out) {
    size_t NC = (size_t)l->B * l->T * l->s.C;
    tp_allreduce(l, grt_block_attention(l, x), NC);
    tp_allreduce(l, grt_block_mlp(l, x), NC);
    grt_block_output(l, out);
}

static const float *head_table(const GrtLayer *l) {
    return l->s.tied ? l->tied_to->params + l->tied_to->tensors[0].offset : P(l, 0);
}

static float *head_table_grad(const GrtLayer *l) {
    return l->s.tied ? l->tied_to->grads + l->tied_to->tensors[0].offset : G(l, 0);
}

/* The generated cross-entropy's arguments, for its rows over the pool. */
typedef struct XentCall {
    GrtXentFwdFn *fwd;
    GrtXentBwdFn *bwd;
    HeadAct *a;
    const int32_t *targets;
    float dloss;
    int64_t V, Vp, Vl, col0;
} XentCall;

/* Forward rows [r0, r1): the loss and probabilities, the padding's zero. */
static void xent_forward_rows(const GrtRows *job, int64_t r0, int64_t r1, int part) {
    const XentCall *x = job->ctx;
    (void)part;
    x->fwd(r1 - r0, x->a->losses + r0, x->a->probs + r0 * x->Vp, x->a->gathered + r0 * x->Vp, x->targets + r0);
    if (x->V < x->Vp)
        grt_dev->zero_rows(x->a->probs + r0 * x->Vp + x->V, (size_t)x->Vp, (size_t)(x->Vp - x->V), (size_t)(r1 - r0));
}

/* Backward rows [r0, r1): this rank's columns of the logits' gradient, into a->gathered. */
static void xent_backward_rows(const GrtRows *job, int64_t r0, int64_t r1, int part) {
    const XentCall *x = job->ctx;
    (void)part;
    x->bwd(r1 - r0, x->a->gathered + r0 * x->Vl, x->a->probs + r0 * x->Vp, x->targets + r0, x->dloss, x->col0);
}

/* Cross-entropy over the real vocabulary of the (N, Vp) logits in
 * a->gathered, into a->probs (N, Vp) with zero probability on the padding. */
static void head_loss(GrtLayer *l, const int32_t *targets) {
    HeadAct *a = l->act;
    int N = head_n(l), V = l->s.V;
    size_t Vp = (size_t)l->V_l * l->tp_size;
    GrtXentFwdFn *k = (GrtXentFwdFn *)grt_kernel_find_sized(GRT_K_XENT_FWD, V, 0, (int64_t)Vp, 0, 0);
    if (k) { /* straight from the padded rows, over the pool */
        XentCall x = {.fwd = k, .a = a, .targets = targets, .V = V, .Vp = (int64_t)Vp};
        grt_pool_run(&(GrtRows){.rows = N, .cols = (int64_t)Vp, .fn = xent_forward_rows, .ctx = &x});
        return;
    }
    host_reference("xent_fwd");
    if ((size_t)V == Vp) {
        grt_crossentropy_forward(a->losses, a->probs, a->gathered, targets, N, V);
        return;
    }
    /* compact the rows to (N, V), then spread the probabilities back out */
    for (int i = 0; i < N; i++) memmove(a->gathered + (size_t)i * V, a->gathered + (size_t)i * Vp, sizeof(float) * V);
    grt_crossentropy_forward(a->losses, a->probs, a->gathered, targets, N, V);
    for (int i = N - 1; i >= 0; i--) {
        memmove(a->probs + (size_t)i * Vp, a->probs + (size_t)i * V, sizeof(float) * V);
        memset(a->probs + (size_t)i * Vp + V, 0, sizeof(float) * (Vp - V));
    }
}

/* Under Ulysses the rows of its learned positions' table (T, C) where its tokens' positions start: ul_rank T C. */
static size_t pos0(const GrtLayer *l) { return l->ul ? (size_t)l->ul_rank * l->T * l->s.C : 0; }

/* A CP embedding's lookup: each sequence's two chunks with their learned
 * positions at their global rows (grt_ring_position), as embeddings of B 1
 * sequences of T / 2 tokens whose positions' table starts at the chunk's. */
static void cp_embedding(GrtLayer *l, const int32_t *tokens, float *out) {
    const GrtLayerSpec *s = &l->s;
    int c = l->T / 2;
    GrtEmbedFwdFn *k = (GrtEmbedFwdFn *)grt_kernel_find_sized(
        GRT_K_EMBED_FWD, s->C, s->positions && l->tp_rank == 0 ? GRT_KF_POS : 0, c, l->V_l, 0);
    for (int b = 0; b < l->B; b++)
        for (int j = 0; j < 2; j++) {
            size_t at = (size_t)b * l->T + (size_t)j * c;
            /* positions are added once: by TP rank 0, before the sum */
            const float *wpe = s->positions && l->tp_rank == 0 ? P(l, 1) + (size_t)chunk_start(l, j) * s->C : NULL;
            if (k)
                k(c, out + at * s->C, tokens + at, P(l, 0), wpe, (int64_t)l->tp_rank * l->V_l);
            else {
                host_reference("embed_fwd");
                grt_embedding_forward(out + at * s->C, tokens + at, P(l, 0), wpe, 1, c, s->C, l->tp_rank * l->V_l,
                                      l->V_l);
            }
        }
}

/* Its backward from dout (B T, C): the chunks' rows into the table's gradients, positions at their global rows. */
static void cp_embedding_backward(GrtLayer *l, const int32_t *tokens, const float *dout) {
    const GrtLayerSpec *s = &l->s;
    int c = l->T / 2;
    GrtEmbedBwdFn *k =
        (GrtEmbedBwdFn *)grt_kernel_find_sized(GRT_K_EMBED_BWD, s->C, s->positions ? GRT_KF_POS : 0, c, l->V_l, 0);
    for (int b = 0; b < l->B; b++)
        for (int j = 0; j < 2; j++) {
            size_t at = (size_t)b * l->T + (size_t)j * c;
            float *dwpe = s->positions ? G(l, 1) + (size_t)chunk_start(l, j) * s->C : NULL;
            if (k)
                k(c, G(l, 0), dwpe, dout + at * s->C, tokens + at, (int64_t)l->tp_rank * l->V_l);
            else {
                host_reference("embed_bwd");
                grt_embedding_backward(G(l, 0), dwpe, dout + at * s->C, tokens + at, 1, c, s->C, l->tp_rank * l->V_l,
                                       l->V_l);
            }
        }
}

float *grt_embedding_partial(GrtLayer *l, const int32_t *tokens, float *out) {
    const GrtLayerSpec *s = &l->s;
    if (l->cp) {
        cp_embedding(l, tokens, out);
        return out;
    }
    /* positions are added once: by TP rank 0, before the sum */
    const float *wpe = s->positions && l->tp_rank == 0 ? P(l, 1) + pos0(l) : NULL;
    GrtEmbedFwdFn *k =
        (GrtEmbedFwdFn *)grt_kernel_find_sized(GRT_K_EMBED_FWD, s->C, wpe ? GRT_KF_POS : 0, l->T, l->V_l, 0);
    if (k) k((int64_t)l->B * l->T, out, tokens, P(l, 0), wpe, (int64_t)l->tp_rank * l->V_l);
    else {
        host_reference("embed_fwd");
        grt_embedding_forward(out, tokens, P(l, 0), wpe, l->B, l->T, s->C, l->tp_rank * l->V_l, l->V_l);
    }
    if (s->types && l->tp_rank == 0) { /* added once, as the positions are */
        host_reference("token_types_fwd");
        grt_token_types_forward(out, P(l, 2), l->B, l->T, s->C, s->types);
    }
    return out;
}

void grt_embedding_output(GrtLayer *l, float *out) {
    if (!(l->s.dropout > 0)) return;
    GrtDropout d = dropout_at(l, GRT_DROP_EMBED);
    grt_dropout_rows(out, grt_layer_rows(l), l->s.C, l->T, &d);
}

/* T5's head reads the decoder rows of the stream x (B, te + td + tr, C) and their targets: gathered
 * into a->xd (B td, C) and a->td (B td); any other head x and targets as they are. */
static const float *head_input(GrtLayer *l, const float *x) {
    HeadAct *a = l->act;
    size_t R = (size_t)l->s.te + l->s.td + l->s.tr, C = l->s.C, n = (size_t)l->s.td * C;
    for (int b = 0; l->s.te && b < l->B; b++) memcpy(a->xd + b * n, x + (b * R + l->s.te) * C, sizeof(float) * n);
    return l->s.te ? a->xd : x;
}
static const int32_t *head_targets(GrtLayer *l, const int32_t *targets) {
    HeadAct *a = l->act;
    size_t R = (size_t)l->s.te + l->s.td + l->s.tr, n = (size_t)l->s.td;
    for (int b = 0; l->s.te && b < l->B; b++) memcpy(a->td + b * n, targets + b * R + l->s.te, sizeof(int32_t) * n);
    return l->s.te ? a->td : targets;
}

float *grt_head_logits(GrtLayer *l, const float *x) {
    HeadAct *a = l->act;
    linear_fwd(l, a->logits_l, head_input(l, x), head_table(l), NULL, head_n(l), l->s.C, l->V_l);
    if (l->s.head_scale > 0) /* logits of scale x: T5's tied head */
        for (size_t i = 0; i < (size_t)head_n(l) * l->V_l; i++) a->logits_l[i] *= l->s.head_scale;
    return a->logits_l;
}

float *grt_head_gathered(GrtLayer *l) { return ((HeadAct *)l->act)->probs; }

void grt_head_loss(GrtLayer *l, const int32_t *targets, float *losses) {
    HeadAct *a = l->act;
    int N = head_n(l), Vl = l->V_l, n = l->tp_size;
    size_t Vp = (size_t)Vl * n;
    if (n == 1) grt_dev->copy(a->gathered, a->logits_l, sizeof(float) * (size_t)N * Vl);
    for (int r = 0; n > 1 && r < n; r++) /* (tp, N, Vl) -> (N, Vp) */
        grt_dev->copy_rows(a->gathered + (size_t)r * Vl, Vp, a->probs + (size_t)r * N * Vl, (size_t)Vl, (size_t)Vl,
                           (size_t)N);
    head_loss(l, head_targets(l, targets));
    if (losses) grt_dev->copy(losses, a->losses, sizeof(float) * (size_t)N);
    if (losses && N < l->B * l->T) /* T5: the rows without a target add nothing */
        grt_dev->zero(losses + N, sizeof(float) * (size_t)(l->B * l->T - N));
}

/* The step breakdown's part of a layer kind: the vision layers count as the embedding and the head. */
static int part_of(GrtLayerKind k) {
    return k == GRT_PATCH ? GRT_EMBEDDING : k == GRT_CLASSIFIER ? GRT_HEAD : k == GRT_MERGE ? GRT_BLOCK : (int)k;
}

/* ViT's patch embedding: pixels (B, ch, img, img) -> out (B, T, C). */
static void patch_forward(GrtLayer *l, const int32_t *pixels, float *out) {
    const GrtLayerSpec *s = &l->s;
    PatchAct *a = l->act;
    int np = (int)grt_patches(s), PV = (int)grt_patch_values(s);
    host_reference("patch_fwd");
    grt_patch_gather(a->X, pixels, l->B, s->channels, s->image, s->patch);
    if (s->plain) { /* Swin's: the projected patches are the tokens */
        linear_fwd(l, out, a->X, P(l, 0), P(l, 1), l->B * np, PV, s->C);
        return;
    }
    linear_fwd(l, a->Y, a->X, P(l, 0), P(l, 1), l->B * np, PV, s->C);
    GrtPatchFwdFn *k = (GrtPatchFwdFn *)grt_kernel_find_sized(GRT_K_PATCH_FWD, s->C, 0, l->T, 0, 0);
    if (k) k((int64_t)l->B * l->T, out, a->Y, P(l, 2), P(l, 3));
    else grt_patch_assemble(out, a->Y, P(l, 2), P(l, 3), l->B, np, s->C);
}

/* The patch embedding's backward from dout (B, T, C) into its parameters' gradients. */
static void patch_backward(GrtLayer *l, const int32_t *pixels, const float *dout) {
    const GrtLayerSpec *s = &l->s;
    PatchAct *a = l->act;
    int np = (int)grt_patches(s), PV = (int)grt_patch_values(s);
    host_reference("patch_bwd");
    grt_patch_gather(a->X, pixels, l->B, s->channels, s->image, s->patch);
    if (s->plain) {
        linear_bwd(l, NULL, G(l, 0), G(l, 1), dout, a->X, P(l, 0), l->B * np, PV, s->C);
        return;
    }
    GrtPatchBwdFn *k = (GrtPatchBwdFn *)grt_kernel_find_sized(GRT_K_PATCH_BWD, s->C, 0, l->T, 0, 0);
    if (k) k((int64_t)l->B * l->T, a->Y, G(l, 2), G(l, 3), dout);
    else grt_patch_assemble_backward(a->Y, G(l, 2), G(l, 3), dout, l->B, np, s->C);
    linear_bwd(l, NULL, G(l, 0), G(l, 1), a->Y, a->X, P(l, 0), l->B * np, PV, s->C);
}

/* A row of the classifier's targets: T long, or the program's sequence when its stream is shorter (past patch merging).
 */
static int label_stride(const GrtLayer *l) { return l->label_stride ? l->label_stride : l->T; }

/* The classifier: x (B, T, C) pooled, through BERT's pooler (h = tanh(pooled
 * Wp^T + bp)) when it has one, logits (B, V), softmax cross-entropy against
 * each sequence's label (targets (B, T), its first column); losses (B, T)
 * get each sequence's loss at its first token, zero at the others. */
static void classifier_forward(GrtLayer *l, const float *x, const int32_t *targets, float *losses) {
    const GrtLayerSpec *s = &l->s;
    ClassAct *a = l->act;
    host_reference("classifier_fwd");
    grt_pool_forward(a->pooled, x, l->B, l->T, s->C, s->pool_mean);
    const float *feature = a->pooled;
    if (s->pooler) {
        linear_fwd(l, a->h, a->pooled, P(l, 2), P(l, 3), l->B, s->C, s->C);
        grt_tanh_forward(a->h, (size_t)l->B * s->C);
        feature = a->h;
    }
    linear_fwd(l, a->probs, feature, P(l, 0), P(l, 1), l->B, s->C, s->V);
    memset(losses, 0, sizeof(float) * (size_t)l->B * l->T);
    l->correct = grt_classify_forward(a->dlogits, a->probs, a->probs, targets, label_stride(l), l->B, s->V);
    for (int b = 0; b < l->B; b++)
        losses[(size_t)b * l->T] = a->dlogits[b];
}

/* Its backward: each sequence's loss weighted dloss; din (B, T, C) accumulated. */
static void classifier_backward(GrtLayer *l, const float *x, const int32_t *targets, float dloss, float *din) {
    const GrtLayerSpec *s = &l->s;
    ClassAct *a = l->act;
    size_t BC = (size_t)l->B * s->C;
    host_reference("classifier_bwd");
    grt_pool_forward(a->pooled, x, l->B, l->T, s->C, s->pool_mean);
    grt_classify_backward(a->dlogits, a->probs, targets, label_stride(l), l->B, s->V, dloss);
    memset(a->dpooled, 0, sizeof(float) * BC);
    if (!s->pooler) {
        linear_bwd(l, a->dpooled, G(l, 0), G(l, 1), a->dlogits, a->pooled, P(l, 0), l->B, s->C, s->V);
    } else {
        memset(a->dh, 0, sizeof(float) * BC);
        linear_bwd(l, a->dh, G(l, 0), G(l, 1), a->dlogits, a->h, P(l, 0), l->B, s->C, s->V);
        grt_tanh_backward(a->dh, a->h, BC);
        linear_bwd(l, a->dpooled, G(l, 2), G(l, 3), a->dh, a->pooled, P(l, 2), l->B, s->C, s->C);
    }
    grt_pool_backward(din, a->dpooled, l->B, l->T, s->C, s->pool_mean);
}

/* A T5 model's final norm: RMS over its stack's rows of each sequence, then
 * their dropout (Hugging Face's T5Stack drops the final norm's output), the
 * rest passed (forward: out, else backward: dout into din; dout's normed
 * rows dropped in place: the gradient of the layer's output is its alone). */
static void t5_norm(GrtLayer *l, const float *in, float *out, float *dout, float *din) {
    const GrtLayerSpec *s = &l->s;
    NormAct *a = l->act;
    size_t R = (size_t)s->te + s->td + s->tr, r0 = s->part == 1 ? 0 : (size_t)s->te, n = s->part == 1 ? s->te : s->td;
    size_t C = s->C, whole = (size_t)l->B * R * C;
    GrtDropout d = {.p = s->dropout, .key = grt_dropout_key(l->drop_seed, l->drop_step, l->index, GRT_DROP_NORM_OUT),
                    .plain = grt_kernel_find_sized(GRT_K_DROPOUT, (int)C, 0, (int64_t)n, 0, 0)};
    if (out && out != in) memcpy(out, in, sizeof(float) * whole);
    if (din) grt_dev->add(din, dout, whole); /* the passed rows' gradient; the normed rows' replaced below */
    for (int b = 0; b < l->B; b++) {
        size_t at = ((size_t)b * R + r0) * C;
        float *y = out ? out + at : dout + at; /* the normed rows, or their gradient */
        if (out) grt_rmsnorm_forward(y, a->rstd + at / C, in + at, P(l, 0), (int)n, (int)C, s->eps);
        for (size_t i = 0; din && i < n * C; i++) din[at + i] -= dout[at + i];
        if (s->dropout > 0) grt_dropout_block(y, y, (int64_t)n, (int)C, (int)n, &d, l->drop_seq0 + b, 0);
        if (din) grt_rmsnorm_backward(din + at, G(l, 0), y, in + at, P(l, 0), a->rstd + at / C, (int)n, (int)C);
    }
}

/* Patch merging's norm: a LayerNorm over the 4 C of a merged token. */
static GrtLayerSpec merge_norm(const GrtLayer *l) {
    GrtLayerSpec n = l->s;
    n.C = 4 * l->s.C, n.rms = 0, n.bias = 1;
    return n;
}

/* X (N / 4, 4 C) = x (B, T, C)'s 2 x 2 groups: the generated kernel, or the reference. */
static void merge_gather(const GrtLayer *l, float *X, const float *x, int side) {
    GrtWinPermuteFn *k = (GrtWinPermuteFn *)grt_kernel_find_sized(GRT_K_MERGE_GATHER, l->s.C, 0, side, 0, 0);
    if (k) k((int64_t)l->B * l->T, X, x);
    else {
        host_reference("merge_gather");
        grt_merge_gather(X, x, l->B, side, l->s.C);
    }
}

/* Swin's patch merging: x (B, T, C) -> out (B, T / 4, 2 C). */
static void merge_forward(GrtLayer *l, const float *x, float *out) {
    MergeAct *a = l->act;
    GrtLayerSpec n = merge_norm(l);
    int side = (int)lround(sqrt((double)l->T)), N4 = l->B * l->T / 4;
    merge_gather(l, a->X, x, side);
    norm_forward(&n, a->Xn, a->mean, a->rstd, a->X, P(l, M_NORMW), P(l, M_NORMB), N4);
    linear_fwd(l, out, a->Xn, P(l, M_RED), NULL, N4, n.C, 2 * l->s.C);
}

/* Its backward from dout (B, T / 4, 2 C): din (B, T, C) accumulated; the
 * groups and their norm rebuilt from x. */
static void merge_backward(GrtLayer *l, const float *x, const float *dout, float *din) {
    MergeAct *a = l->act;
    GrtLayerSpec n = merge_norm(l);
    int side = (int)lround(sqrt((double)l->T)), N4 = l->B * l->T / 4;
    size_t bytes = sizeof(float) * (size_t)N4 * n.C;
    merge_gather(l, a->X, x, side);
    norm_forward(&n, a->Xn, a->mean, a->rstd, a->X, P(l, M_NORMW), P(l, M_NORMB), N4);
    grt_dev->zero(a->dXn, bytes);
    linear_bwd(l, a->dXn, G(l, M_RED), NULL, dout, a->Xn, P(l, M_RED), N4, n.C, 2 * l->s.C);
    grt_dev->zero(a->dX, bytes);
    norm_backward(&n, a->dX, G(l, M_NORMW), G(l, M_NORMB), a->dXn, a->X, P(l, M_NORMW), a->mean, a->rstd, N4);
    GrtWinPermuteFn *k = (GrtWinPermuteFn *)grt_kernel_find_sized(GRT_K_MERGE_SCATTER, l->s.C, 0, side, 0, 0);
    if (k) k((int64_t)l->B * l->T, din, a->dX);
    else {
        host_reference("merge_scatter");
        grt_merge_scatter(din, a->dX, l->B, side, l->s.C);
    }
}

void grt_layer_forward(GrtLayer *l, const float *in, const int32_t *tokens, const int32_t *targets, float *out) {
    const GrtLayerSpec *s = &l->s;
    int N = l->B * l->T;
    if (l->sp && s->kind != GRT_NORM) /* the program runs these in phases (galvrt.h) */
        grt_abort("internal error: a sequence-parallel layer's forward called whole", 1);
    grt_part_begin(GRT_PART_FWD_EMBEDDING + part_of(s->kind)); /* the step's breakdown, by layer kind */
    switch (s->kind) {
    case GRT_EMBEDDING:
        tp_allreduce(l, grt_embedding_partial(l, tokens, out), (size_t)N * s->C);
        grt_embedding_output(l, out);
        break;
    case GRT_BLOCK:
        if (s->te) grt_t5_block_forward(l, in, out);
        else block_forward(l, in, out);
        break;
    case GRT_NORM: {
        NormAct *a = l->act;
        if (s->part) t5_norm(l, in, out, NULL, NULL);
        else norm_forward(s, out, a->mean, a->rstd, in, P(l, 0), opt(l, 1), grt_layer_rows(l));
        break;
    }
    case GRT_HEAD: {
        float *logits = grt_head_logits(l, in);
        if (l->tp) grt_allgather(l->tp, logits, grt_head_gathered(l), (size_t)head_n(l) * l->V_l);
        grt_head_loss(l, targets, out);
        break;
    }
    case GRT_PATCH: patch_forward(l, tokens, out); break;
    case GRT_CLASSIFIER: classifier_forward(l, in, targets, out); break;
    case GRT_MERGE: merge_forward(l, in, out); break;
    }
    grt_part_end();
}

/* ---- backward ----------------------------------------------------------------------------- */

/* From the gradient dmlp_out (N, C) at the MLP's output (whole on every TP
 * rank) to the partial gradient dmlp_in (N, C) at its input, zeroed first
 * once dmlp_out is read (they may be one buffer); the weights' gradients
 * accumulated. */
static void mlp_backward_from(GrtLayer *l, const float *dmlp_out, const float *mlp_in, float *dmlp_in) {
    BlockAct *a = l->act;
    const GrtLayerSpec *s = &l->s;
    int N = l->B * l->T, C = s->C;
    size_t NC = (size_t)N * C, NF = (size_t)N * l->F_l;
    float *dmid = a->scratch; /* (N, wide) */
    float *dfca = a->dF;
    grt_dev->zero(dfca, sizeof(float) * NF);
    linear_bwd(l, dfca, G(l, B_WDOWN), NULL, dmlp_out, a->fca, P(l, B_WDOWN), N, l->F_l, C);
    grt_dev->zero(dmid, sizeof(float) * (size_t)N * up_rows(l));
    bool dbias_done = activation_backward(s, dmid, gopt(l, B_BUP), a->fch, dfca, N, l->F_l);
    /* MLP up (column-parallel): partial input gradients */
    grt_dev->zero(dmlp_in, sizeof(float) * NC);
    linear_bwd(l, dmlp_in, G(l, B_WUP), dbias_done ? NULL : gopt(l, B_BUP), dmid, mlp_in, P(l, B_WUP), N, C,
               up_rows(l));
}

/* From the block's output gradient dout (N, C) back through the MLP to the
 * partial gradient (N, C) at its column-parallel up projection's input, to
 * be summed over the TP group. */
float *grt_block_mlp_backward(GrtLayer *l, const float *dout) {
    BlockAct *a = l->act;
    const GrtLayerSpec *s = &l->s;
    int N = l->B * l->T, C = s->C;
    size_t NC = (size_t)N * C;
    unkeep16(l);
    grt_dev->zero(a->scratch2, sizeof(float) * NC); /* dres1, the gradient at the residual between the halves */
    const float *dmlp_out = dout;               /* gradient at the MLP's output (after the residual) */
    const float *mlp_in = s->pre_norm ? a->ln2 : a->ln1;
    float *dpost = a->dC3;
    if (!s->pre_norm) { /* through the second norm: d(ln1 + mlp) */
        grt_dev->zero(dpost, sizeof(float) * NC);
        norm_backward(s, dpost, G(l, B_LN2W), gopt(l, B_LN2B), dout, a->ln2, P(l, B_LN2W), a->out_mean,
                      a->out_rstd, N);
        dmlp_out = dpost;
    }
    /* through the MLP output's dropout (the residual takes dmlp_out whole) */
    dmlp_out = branch_grad(l, GRT_DROP_MLP_OUT, dmlp_out, a->dC2);
    /* MLP down (row-parallel): dout is whole on every TP rank */
    if (gopt(l, B_BDOWN)) grt_dev->bias_grad(G(l, B_BDOWN), dmlp_out, N, C);
    float *dmlp_in = a->dC1;
    mlp_backward_from(l, dmlp_out, mlp_in, dmlp_in);
    return dmlp_in;
}

/* From the gradient dattn_out (N, C) at the output projection (whole on
 * every TP rank) through attention to the partial gradient dattn_in (N, C)
 * at QKV's input attn_in, zeroed once dattn_out is read (they may be one
 * buffer); the weights' gradients accumulated. */
static void attention_backward_from(GrtLayer *l, const float *dattn_out, const float *attn_in, float *dattn_in) {
    BlockAct *a = l->act;
    const GrtLayerSpec *s = &l->s;
    int N = l->B * l->T, C = s->C, hd = s->hd;
    size_t NC = (size_t)N * C, natty = (size_t)N * l->H_l * hd;
    float *dmid = a->scratch;
    float *datty = a->dAtt;
    grt_dev->zero(datty, sizeof(float) * natty);
    linear_bwd(l, datty, G(l, B_WO), NULL, dattn_out, a->atty, P(l, B_WO), N, l->H_l * hd, C);
    grt_dev->zero(dmid, sizeof(float) * (size_t)N * qkv_rows(l));
    GrtAttSoftmaxBwdFn *sm = (GrtAttSoftmaxBwdFn *)grt_kernel_find(GRT_K_ATT_SOFTMAX_BWD, l->T, causal_flag(s));
    if (l->cp) {
        ring_attention_backward(l, dmid, datty);
    } else if (l->ul) { /* Ulysses: rotary's backward ran on the whole sequences */
        a->ul.softmax_bwd = (GrtAttSoftmaxBwdFn *)grt_kernel_find(GRT_K_ATT_SOFTMAX_BWD, a->ul.T, causal_flag(s));
        grt_ulysses_attention_backward(&a->ul, &a->ub, dmid, datty);
    } else if (s->window) {
        GrtWindowShape g = windows(l);
        GrtWindowKernels k = window_kernels(l, &g);
        host_reference("window_attention_bwd");
        grt_window_attention_gemm_backward(dmid, G(l, B_REL), datty, a->qkv, a->att, &g, &a->win, &k);
    } else if (s->dropout > 0) {
        GrtDropout d = dropout_at(l, GRT_DROP_ATT);
        grt_attention_backward_dropout(dmid, datty, a->qkv, a->att, l->B, l->T, l->H_l, l->KVH_l, hd, s->causal, sm,
                                       &d, s->gemm16 != 0);
    } else {
        GrtAtt16 m = att16(l);
        grt_dev->attention_backward(dmid, datty, a->qkv, a->att, s->gemm16 ? &m : NULL, l->B, l->T, l->H_l, l->KVH_l,
                                    hd, s->causal, sm, a->dP);
    }
    if (s->rope && l->cp)
        cp_rope(l, dmid, a->rope_tmp, 1);
    else if (s->rope && !l->ul)
        rope_qk(l, dmid, a->rope_tmp, 1);
    /* QKV (column-parallel) */
    grt_dev->zero(dattn_in, sizeof(float) * NC);
    linear_bwd(l, dattn_in, G(l, B_WQKV), gopt(l, B_BQKV), dmid, attn_in, P(l, B_WQKV), N, C, qkv_rows(l));
}

/* From the summed gradient at the MLP's input (and dout, around the
 * residual) back through attention to the partial gradient (N, C) at the
 * column-parallel QKV projection's input, to be summed over the TP group. */
float *grt_block_attention_backward(GrtLayer *l, const float *x, const float *dout) {
    BlockAct *a = l->act;
    const GrtLayerSpec *s = &l->s;
    int N = l->B * l->T, C = s->C;
    size_t NC = (size_t)N * C;
    float *dres1 = a->scratch2, *dmlp_in = a->dC1;
    if (s->pre_norm) {
        norm_backward(s, dres1, G(l, B_LN2W), gopt(l, B_LN2B), dmlp_in, a->res1, P(l, B_LN2W), a->mean2, a->rstd2, N);
        grt_dev->add(dres1, dout, NC); /* the residual around the MLP */
    } else {
        float *dln1 = a->dC2;
        grt_dev->copy(dln1, dmlp_in, sizeof(float) * NC);
        grt_dev->add(dln1, a->dC3, NC); /* the residual around the MLP */
        norm_backward(s, dres1, G(l, B_LN1W), gopt(l, B_LN1B), dln1, a->res1, P(l, B_LN1W), a->mean1, a->rstd1, N);
    }
    /* through the attention output's dropout (the residual takes dres1 whole) */
    const float *dattn_out = branch_grad(l, GRT_DROP_ATT_OUT, dres1, a->dC2);
    /* attention output (row-parallel) */
    if (gopt(l, B_BO)) grt_dev->bias_grad(G(l, B_BO), dattn_out, N, C);
    const float *attn_in = s->pre_norm ? a->ln1 : x;
    float *dattn_in = a->dC1;
    attention_backward_from(l, dattn_out, attn_in, dattn_in);
    return dattn_in;
}

/* From the summed gradient at the QKV input to the block's input gradient
 * dx (N, C), accumulated: through the first norm, and around attention. */
void grt_block_input_backward(GrtLayer *l, const float *x, float *dx) {
    BlockAct *a = l->act;
    const GrtLayerSpec *s = &l->s;
    int N = l->B * l->T;
    size_t NC = (size_t)N * s->C;
    float *dres1 = a->scratch2, *dattn_in = a->dC1;
    if (s->pre_norm)
        norm_backward(s, dx, G(l, B_LN1W), gopt(l, B_LN1B), dattn_in, x, P(l, B_LN1W), a->mean1, a->rstd1, N);
    else
        grt_dev->add(dx, dattn_in, NC);
    grt_dev->add(dx, dres1, NC); /* the residual around attention */
}

/* The whole block's backward, its TP all-reduces included. */
static void block_backward(GrtLayer *l, const float *x, const float *dout, float *dx) {
    size_t NC = (size_t)l->B * l->T * l->s.C;
    tp_allreduce(l, grt_block_mlp_backward(l, dout), NC);
    tp_allreduce(l, grt_block_attention_backward(l, x, dout), NC);
    grt_block_input_backward(l, x, dx);
}

float *grt_head_backward_partial(GrtLayer *l, const float *x, const int32_t *targets, float dloss) {
    HeadAct *a = l->act;
    int N = head_n(l), Vl = l->V_l;
    x = head_input(l, x), targets = head_targets(l, targets); /* again: the working space was others' since */
    size_t Vp = (size_t)Vl * l->tp_size;
    /* dlogits (N, Vp) = (probs - onehot) * dloss; this rank's columns only */
    float *dl = a->dlogits, *dloss_row = a->dloss, *dx = a->dx, *dl_local = a->gathered;
    GrtXentBwdFn *k = (GrtXentBwdFn *)grt_kernel_find_sized(GRT_K_XENT_BWD, Vl, 0, (int64_t)Vp, 0, 0);
    if (k) { /* the local columns straight from probs, over the pool */
        XentCall x = {.bwd = k, .a = a, .targets = targets, .dloss = dloss, .Vp = (int64_t)Vp, .Vl = Vl,
                      .col0 = (int64_t)l->tp_rank * Vl};
        grt_pool_run(&(GrtRows){.rows = N, .cols = Vl, .fn = xent_backward_rows, .ctx = &x});
    } else {
        host_reference("xent_bwd");
        memset(dl, 0, sizeof(float) * (size_t)N * Vp);
        for (int i = 0; i < N; i++) dloss_row[i] = dloss;
        grt_crossentropy_backward(dl, a->probs, targets, dloss_row, N, (int)Vp);
        for (int i = 0; i < N; i++)
            memcpy(dl_local + (size_t)i * Vl, dl + (size_t)i * Vp + (size_t)l->tp_rank * Vl, sizeof(float) * Vl);
    }
    grt_dev->zero(dx, sizeof(float) * (size_t)N * l->s.C);
    if (l->s.head_scale > 0) /* the logits were of scale x */
        for (size_t i = 0; i < (size_t)N * Vl; i++) dl_local[i] *= l->s.head_scale;
    linear_bwd(l, dx, head_table_grad(l), NULL, dl_local, x, head_table(l), N, l->s.C, Vl);
    return dx;
}

void grt_head_input_backward(GrtLayer *l, float *din) {
    const HeadAct *a = l->act;
    size_t R = (size_t)l->s.te + l->s.td + l->s.tr, C = l->s.C, n = (size_t)l->s.td * C;
    if (!l->s.te) grt_dev->add(din, l->sp ? l->local : a->dx, (size_t)grt_layer_rows(l) * C);
    for (int b = 0; l->s.te && b < l->B; b++) grt_dev->add(din + (b * R + l->s.te) * C, a->dx + b * n, n); /* T5's rows */
}

/* The embedding's backward from its whole output gradient dout (B T, C), past its dropout. */
void grt_embedding_backward_full(GrtLayer *l, const int32_t *tokens, const float *dout) {
    const GrtLayerSpec *s = &l->s;
    int N = l->B * l->T;
    if (l->cp) {
        cp_embedding_backward(l, tokens, dout);
        return;
    }
    GrtEmbedBwdFn *k = (GrtEmbedBwdFn *)grt_kernel_find_sized(GRT_K_EMBED_BWD, s->C, s->positions ? GRT_KF_POS : 0,
                                                              l->T, l->V_l, 0);
    float *dwpe = s->positions ? G(l, 1) + pos0(l) : NULL;
    if (k) k(N, G(l, 0), dwpe, dout, tokens, (int64_t)l->tp_rank * l->V_l);
    else {
        host_reference("embed_bwd");
        grt_embedding_backward(G(l, 0), dwpe, dout, tokens, l->B, l->T, s->C,
                                l->tp_rank * l->V_l, l->V_l);
    }
    if (s->types) { /* every TP rank: the table is replicated, its gradient whole on each */
        host_reference("token_types_bwd");
        grt_token_types_backward(G(l, 2), dout, l->B, l->T, s->C, s->types);
    }
}

void grt_layer_backward(GrtLayer *l, const float *in, const int32_t *tokens, const int32_t *targets,
                        const float *dout, float dloss, float *din) {
    const GrtLayerSpec *s = &l->s;
    if (l->sp && s->kind != GRT_NORM)
        grt_abort("internal error: a sequence-parallel layer's backward called whole", 1);
    grt_part_begin(GRT_PART_BWD_EMBEDDING + part_of(s->kind));
    switch (s->kind) {
    case GRT_EMBEDDING: {
        /* through the output's dropout, in place: dout is this layer's alone (galvrt.h) */
        if (s->dropout > 0) grt_embedding_output(l, (float *)dout);
        grt_embedding_backward_full(l, tokens, dout);
        break;
    }
    case GRT_BLOCK:
        if (s->te) {
            if (l->ckpt) grt_t5_block_forward(l, in, NULL);
            grt_t5_block_backward(l, in, dout, din);
            break;
        }
        if (l->ckpt) { /* rebuild the activations the forward did not keep (Chen et al. 2016) */
            block_forward(l, in, NULL);
        }
        block_backward(l, in, dout, din);
        break;
    case GRT_NORM: {
        NormAct *a = l->act;
        if (l->sp) grt_dev->zero(l->shared, l->n_shared * sizeof(float));
        if (s->part) t5_norm(l, in, NULL, (float *)dout, din); /* its dropout in place: dout is its alone */
        else norm_backward(s, din, grad_of(l, 0), grad_of(l, 1), dout, in, P(l, 0), a->mean, a->rstd, grt_layer_rows(l));
        break;
    }
    case GRT_HEAD:
        tp_allreduce(l, grt_head_backward_partial(l, in, targets, dloss), (size_t)head_n(l) * s->C);
        grt_head_input_backward(l, din);
        break;
    case GRT_PATCH: patch_backward(l, tokens, dout); break;
    case GRT_CLASSIFIER: classifier_backward(l, in, targets, dloss, din); break;
    case GRT_MERGE: merge_backward(l, in, dout, din); break;
    }
    grt_part_end();
}

/* ---- Megatron sequence parallelism (galvrt.h) ------------------------------------------- */

float *grt_sp_norm1(GrtLayer *l, const float *x) {
    BlockAct *a = l->act;
    norm_forward(&l->s, a->ln1, a->mean1, a->rstd1, x, P(l, B_LN1W), opt(l, B_LN1B), grt_layer_rows(l));
    keep16(a, K_LN1);
    return a->ln1;
}

float *grt_sp_attention(GrtLayer *l) { return attention_from(l, l->full); }

float *grt_sp_norm2(GrtLayer *l, const float *x) {
    BlockAct *a = l->act;
    int rows = grt_layer_rows(l);
    residual_dropout(l, GRT_DROP_ATT_OUT, a->res1, x, l->local, opt(l, B_BO));
    keep16(a, K_RES1);
    norm_forward(&l->s, a->ln2, a->mean2, a->rstd2, a->res1, P(l, B_LN2W), opt(l, B_LN2B), rows);
    keep16(a, K_LN2);
    return a->ln2;
}

float *grt_sp_mlp(GrtLayer *l) { return mlp_from(l, l->full); }

void grt_sp_output(GrtLayer *l, float *out) {
    BlockAct *a = l->act;
    if (!out) out = a->dC2;
    residual_dropout(l, GRT_DROP_MLP_OUT, out, a->res1, l->local, opt(l, B_BDOWN));
}

/* Where the kept norm outputs gather again in backward: (N, C) beside l->full. */
float *grt_sp_norm_full(GrtLayer *l) { return ((BlockAct *)l->act)->dC2; }

const float *grt_sp_mlp_out_grad(GrtLayer *l, const float *dout) {
    unkeep16(l); /* the first of an SP block's backward phases */
    grt_dev->zero(l->shared, l->n_shared * sizeof(float));
    const float *g = branch_grad(l, GRT_DROP_MLP_OUT, dout, l->local);
    if (grad_of(l, B_BDOWN)) grt_dev->bias_grad(grad_of(l, B_BDOWN), g, grt_layer_rows(l), l->s.C);
    return g;
}

float *grt_sp_kept_norm(GrtLayer *l, int which) {
    BlockAct *a = l->act;
    return which == 1 ? a->ln1 : a->ln2;
}

float *grt_sp_mlp_backward(GrtLayer *l) {
    mlp_backward_from(l, l->full, grt_sp_norm_full(l), l->full);
    return l->full;
}

const float *grt_sp_attention_out_grad(GrtLayer *l, const float *dout) {
    BlockAct *a = l->act;
    int rows = grt_layer_rows(l), C = l->s.C;
    float *dres1 = a->scratch2; /* (rows, C): the gradient at the residual between the halves */
    grt_dev->zero(dres1, sizeof(float) * (size_t)rows * C);
    norm_backward(&l->s, dres1, grad_of(l, B_LN2W), grad_of(l, B_LN2B), l->local, a->res1, P(l, B_LN2W), a->mean2,
                  a->rstd2, rows);
    grt_dev->add(dres1, dout, (size_t)rows * C); /* the residual around the MLP */
    const float *g = branch_grad(l, GRT_DROP_ATT_OUT, dres1, l->local);
    if (grad_of(l, B_BO)) grt_dev->bias_grad(grad_of(l, B_BO), g, rows, C);
    return g;
}

float *grt_sp_attention_backward(GrtLayer *l) {
    attention_backward_from(l, l->full, grt_sp_norm_full(l), l->full);
    return l->full;
}

void grt_sp_input_backward(GrtLayer *l, const float *x, float *dx) {
    BlockAct *a = l->act;
    int rows = grt_layer_rows(l);
    norm_backward(&l->s, dx, grad_of(l, B_LN1W), grad_of(l, B_LN1B), l->local, x, P(l, B_LN1W), a->mean1, a->rstd1,
                  rows);
    grt_dev->add(dx, a->scratch2, (size_t)rows * l->s.C); /* the residual around attention */
}

float *grt_sp_shared_grads(GrtLayer *l) { return l->shared; }

void grt_sp_shared_grads_add(GrtLayer *l) {
    for (int k = 0; k < l->n_tensors; k++)
        if (!l->tensors[k].sharded && l->tensors[k].n) grt_dev->add(G(l, k), grad_of(l, k), l->tensors[k].n);
}

float *grt_sp_embed_grad(GrtLayer *l, float *dout) {
    if (l->s.dropout > 0) grt_embedding_output(l, dout);
    return dout;
}
