/* t5.c — T5's encoder and decoder blocks (Raffel et al. 2020, "Exploring
 * the limits of transfer learning with a unified text-to-text
 * transformer"; Hugging Face's T5ForConditionalGeneration, v1.0 layout):
 * pre-norm T5 LayerNorm (RMS, no mean, no bias), attention without the
 * 1 / sqrt(hd) scale and with a learned relative position bias per head
 * and bucket, ReLU MLP without biases; a decoder block's self-attention is
 * causal and a cross-attention (no position bias) to the encoder's output
 * follows it.
 *
 * The stream between layers holds each sequence's encoder rows, decoder
 * rows and both stacks' bias tables (GrtLayerSpec.te): an encoder block
 * works on the encoder rows, a decoder block on the decoder rows, reading
 * the encoder rows, and each passes the rest through. So the encoder's
 * output reaches every decoder block over whatever pipeline stages and
 * layouts lie between, and its gradient comes back summed over them. The
 * first block of a stack holds the stack's table and writes it into the
 * stream; the others read it there and add their gradient to the stream's,
 * which the holder sums over the sequences into its own.
 *
 * Tensor parallelism is Megatron's: heads split (Q, K, V and the cross
 * K, V column-parallel, the output projections row-parallel), the FFN's
 * columns split, one all-reduce after each row-parallel projection and one
 * of each column-parallel input's gradient; a holder's bias table is split
 * by heads' columns, gathered whole over the TP group before it goes into
 * the stream, and each rank reads and differentiates its heads' columns. */
#include "galvrt.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* The bucket of a key at relative position rel = key - query (Raffel et
 * al. 2020, section 2.1): bidirectional, half the buckets for keys after
 * the query; causal, only keys at or before it. Of the n buckets of a
 * side, distances below n / 2 each have their own and the rest share
 * logarithmically sized ones up to max_distance, beyond which all fall in
 * the last. The logarithm is taken in float, as Hugging Face's
 * _relative_position_bucket takes it, so both agree at the edges. */
int grt_t5_bucket(int rel, int buckets, int bidirectional, int max_distance) {
    int base = 0, n = buckets, d;
    if (bidirectional) {
        n /= 2;
        base = rel > 0 ? n : 0;
        d = rel < 0 ? -rel : rel;
    } else
        d = rel < 0 ? -rel : 0;
    int exact = n / 2;
    if (d < exact) return base + d;
    float f = logf((float)d / (float)exact) / (float)log((double)max_distance / exact) * (float)(n - exact);
    int large = exact + (int)f;
    return base + (large < n - 1 ? large : n - 1);
}

/* The generated softmax rows of a (Tq, Tk) block when the plan has them, else the references:
 * with the relative bias (bias, dbias not NULL) or unscaled (cross-attention: the attention
 * softmax at head size 1, whose scale is 1). */
static void softmax_fwd(const GrtT5Attention *a, float *att, const float *bias) {
    int flags = a->causal ? GRT_KF_CAUSAL : 0;
    if (bias) {
        GrtT5SoftmaxFwdFn *k = (GrtT5SoftmaxFwdFn *)grt_kernel_find(GRT_K_T5_SOFTMAX_FWD, a->Tk, flags);
        if (k)
            k(a->Tq, att, bias, 0);
        else
            grt_t5_softmax_forward(att, bias, a->Tq, a->Tk, 0, a->causal);
        return;
    }
    GrtAttSoftmaxFwdFn *k = (GrtAttSoftmaxFwdFn *)grt_kernel_find_sized(GRT_K_ATT_SOFTMAX_FWD, a->Tk, flags, 1, 0, 0);
    if (k)
        k(a->Tq, att, 0);
    else
        grt_attention_softmax_forward(att, a->Tq, a->Tk, 0, a->causal, 1.0f);
}

static void softmax_bwd(const GrtT5Attention *a, float *datt, const float *att, float *dbias) {
    int flags = a->causal ? GRT_KF_CAUSAL : 0;
    if (dbias) {
        GrtT5SoftmaxBwdFn *k = (GrtT5SoftmaxBwdFn *)grt_kernel_find(GRT_K_T5_SOFTMAX_BWD, a->Tk, flags);
        if (k)
            k(a->Tq, datt, att, dbias, 0);
        else
            grt_t5_softmax_backward(datt, att, dbias, a->Tq, a->Tk, 0, a->causal);
        return;
    }
    GrtAttSoftmaxBwdFn *k = (GrtAttSoftmaxBwdFn *)grt_kernel_find(GRT_K_ATT_SOFTMAX_BWD, a->Tk, flags);
    if (k)
        k(a->Tq, datt, att, 0);
    else
        grt_attention_softmax_backward(datt, att, a->Tq, a->Tk, 0, a->causal);
}

/* Where sequence b's head h starts in q, out, k and v, and its (Tq, Tk) block of att. */
typedef struct Heads {
    size_t q, o, kv, att;
} Heads;
static Heads heads_at(const GrtT5Attention *a, int b, int h) {
    size_t hoff = (size_t)h * a->hd;
    return (Heads){.q = (size_t)b * a->Tq * a->ldq + hoff,
                   .o = (size_t)b * a->Tq * a->ldo + hoff,
                   .kv = (size_t)b * a->Tk * a->ldkv + hoff,
                   .att = ((size_t)b * a->H + h) * a->Tq * a->Tk};
}

/* Sequence b's head h's probabilities p (Tq, Tk) dropped into dst (galvrt.h, GrtT5Attention.drop), or p. */
static const float *dropped(const GrtT5Attention *a, const float *p, float *dst, int b, int h) {
    if (!a->drop) return p;
    int64_t e0 = (int64_t)(a->drop->h0 + h) * a->Tq * a->Tk;
    grt_dropout_block(dst, p, a->Tq, a->Tk, a->Tq, a->drop, a->drop->seq0 + b, e0);
    return dst;
}

/* For each sequence and head: scores (Tq, Tk) = q k^T (one GEMM), the softmax's rows, out = dropout(att) v. */
void grt_t5_attention_forward(const GrtT5Attention *a, float *out, float *att, const float *q, const float *k,
                              const float *v, const float *bias, float *scratch) {
    for (int b = 0; b < a->B; b++)
        for (int h = 0; h < a->H; h++) {
            Heads x = heads_at(a, b, h);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, a->Tq, a->Tk, a->hd, 1.0f, q + x.q, a->ldq, k + x.kv,
                        a->ldkv, 0.0f, att + x.att, a->Tk);
            softmax_fwd(a, att + x.att, bias ? bias + x.att : NULL);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, a->Tq, a->hd, a->Tk, 1.0f,
                        dropped(a, att + x.att, scratch, b, h), a->Tk, v + x.kv, a->ldkv, 0.0f, out + x.o, a->ldo);
        }
}

/* For each sequence and head: datt = dropout(dout v^T), dv += dropout(att)^T dout, the softmax's
 * backward (dbias += it), dq += datt k, dk += datt^T q. */
void grt_t5_attention_backward(const GrtT5Attention *a, const GrtT5Grads *g, const float *dout, const float *att,
                               const float *q, const float *k, const float *v, float *scratch) {
    for (int b = 0; b < a->B; b++)
        for (int h = 0; h < a->H; h++) {
            Heads x = heads_at(a, b, h);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, a->Tq, a->Tk, a->hd, 1.0f, dout + x.o, a->ldo,
                        v + x.kv, a->ldkv, 0.0f, scratch, a->Tk);
            dropped(a, scratch, scratch, b, h); /* through the probabilities' dropout */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, a->Tk, a->hd, a->Tq, 1.0f,
                        dropped(a, att + x.att, scratch + (size_t)a->Tq * a->Tk, b, h), a->Tk, dout + x.o, a->ldo, 1.0f,
                        g->dv + x.kv, a->ldkv);
            softmax_bwd(a, scratch, att + x.att, g->dbias ? g->dbias + x.att : NULL);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, a->Tq, a->hd, a->Tk, 1.0f, scratch, a->Tk, k + x.kv,
                        a->ldkv, 1.0f, g->dq + x.q, a->ldq);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, a->Tk, a->hd, a->Tq, 1.0f, scratch, a->Tk, q + x.q,
                        a->ldq, 1.0f, g->dk + x.kv, a->ldkv);
        }
}

/* ---- the block ------------------------------------------------------------------------ */

/* What a T5 block keeps from forward to backward and its working space (galvrt_sizes.h). */
typedef struct T5Act {
    float *ln1, *rstd1, *qkv, *att, *atty, *res1;        /* kept: self-attention */
    float *lnc, *rstdc, *cq, *ckv, *catt, *catty, *res2; /* kept: cross-attention (decoder) */
    float *ln2, *rstd2, *fch, *fca;                      /* kept: MLP */
    float *xa, *y, *dR, *dLN, *dF, *dA, *dqkv, *dtab;    /* working */
    float *bias, *datt;      /* working: one sequence's biases (H, Tq, Tq) or their gradient; a head's datt */
    float *gath, *table;     /* working: the holder's table's TP shards gathered, and the table whole */
    int32_t *bucket;         /* working: (Tq, Tq), key t2's bucket from query t */
    float *enc, *denc, *dkv; /* working: the encoder rows (decoder) */
} T5Act;

static float *carve(float **area, size_t n) {
    float *p = *area;
    *area += n;
    return p;
}

static float *P(const GrtLayer *l, int k) { return l->params + l->tensors[k].offset; }
static float *G(const GrtLayer *l, int k) { return l->grads + l->tensors[k].offset; }
static int queries(const GrtLayer *l) { return (int)grt_t5_queries(&l->s); }
static size_t heads_width(const GrtLayer *l) { return (size_t)l->H_l * l->s.hd; }

void *grt_t5_act(const GrtLayer *l, float *kept, float *work, size_t *kept_n, size_t *work_n) {
    size_t B = (size_t)l->B, N = B * queries(l), Ne = B * l->s.te, C = l->s.C, A = heads_width(l), F = l->F_l;
    size_t Tq = queries(l), X = l->s.cross;
    float *k0 = kept, *w0 = work;
    T5Act *a = grt_alloc(sizeof *a);
    a->ln1 = carve(&kept, N * C), a->rstd1 = carve(&kept, N), a->qkv = carve(&kept, N * 3 * A);
    a->att = carve(&kept, B * l->H_l * Tq * Tq), a->atty = carve(&kept, N * A), a->res1 = carve(&kept, N * C);
    a->lnc = carve(&kept, X * N * C), a->rstdc = carve(&kept, X * N), a->cq = carve(&kept, X * N * A);
    a->ckv = carve(&kept, X * Ne * 2 * A), a->catt = carve(&kept, X * B * l->H_l * Tq * l->s.te);
    a->catty = carve(&kept, X * N * A), a->res2 = carve(&kept, X * N * C);
    a->ln2 = carve(&kept, N * C), a->rstd2 = carve(&kept, N), a->fch = carve(&kept, N * F),
    a->fca = carve(&kept, N * F);
    a->xa = carve(&work, N * C), a->y = carve(&work, N * C), a->dR = carve(&work, N * C), a->dLN = carve(&work, N * C);
    a->dF = carve(&work, N * F), a->dA = carve(&work, N * A), a->dqkv = carve(&work, N * 3 * A);
    a->dtab = carve(&work, B * (size_t)l->s.buckets * l->s.H), a->bias = carve(&work, l->H_l * Tq * Tq);
    a->bucket = (int32_t *)carve(&work, Tq * Tq),
    a->datt = carve(&work, 2 * Tq * (X && (size_t)l->s.te > Tq ? (size_t)l->s.te : Tq));
    size_t own = l->s.rel_own ? (size_t)l->s.buckets * l->s.H : 0;
    a->gath = carve(&work, own), a->table = carve(&work, own);
    a->enc = carve(&work, X * Ne * C), a->denc = carve(&work, X * Ne * C), a->dkv = carve(&work, X * Ne * 2 * A);
    *kept_n = (size_t)(kept - k0), *work_n = (size_t)(work - w0);
    return a;
}

/* Rows [r0, r0 + n) of each of B sequences of R rows of the stream s, to or from the contiguous (B n, C) x. */
static void rows_copy(float *x, float *s, int B, int R, int r0, int n, int C, int to_stream) {
    for (int b = 0; b < B; b++) {
        float *sp = s + ((size_t)b * R + r0) * C, *xp = x + (size_t)b * n * C;
        memcpy(to_stream ? sp : xp, to_stream ? xp : sp, sizeof(float) * (size_t)n * C);
    }
}
/* The same adding x into the stream's rows. */
static void rows_add(float *s, const float *x, int B, int R, int r0, int n, int C) {
    for (int b = 0; b < B; b++) {
        float *sp = s + ((size_t)b * R + r0) * C;
        const float *xp = x + (size_t)b * n * C;
        for (size_t i = 0; i < (size_t)n * C; i++)
            sp[i] += xp[i];
    }
}

static int stream_rows(const GrtLayer *l) { return l->s.te + l->s.td + l->s.tr; }
static int first_row(const GrtLayer *l) { return l->s.cross ? l->s.te : 0; }
/* Where, in a sequence's stream, the block's stack keeps its table: floats from the sequence's start. */
static size_t table_at(const GrtLayer *l) {
    return (size_t)(l->s.te + l->s.td) * l->s.C + (l->s.cross ? (size_t)l->s.buckets * l->s.H : 0);
}

static void tp_sum(const GrtLayer *l, float *x, size_t n) {
    if (l->tp) grt_allreduce(l->tp, x, n);
}

static GrtT5Attention attention_of(const GrtLayer *l, int cross) {
    int Tq = queries(l);
    return (GrtT5Attention){.B = l->B,
                            .H = l->H_l,
                            .hd = l->s.hd,
                            .Tq = Tq,
                            .Tk = cross ? l->s.te : Tq,
                            .ldq = cross ? (int)heads_width(l) : 3 * (int)heads_width(l),
                            .ldo = (int)heads_width(l),
                            .ldkv = cross ? 2 * (int)heads_width(l) : 3 * (int)heads_width(l),
                            .causal = cross ? 0 : l->s.cross};
}

/* The block's dropout at `site` on its micro-batch, over rows of `cols` with T rows a sequence, with the
 * generated kernels of those shapes (galvrt.h, GrtDropout), in *d; NULL when the block has none. */
static const GrtDropout *drop_at(const GrtLayer *l, int site, int cols, int T, GrtDropout *d) {
    if (!(l->s.dropout > 0)) return NULL;
    *d = (GrtDropout){.p = l->s.dropout,
                      .key = grt_dropout_key(l->drop_seed, l->drop_step, l->index, site),
                      .seq0 = l->drop_seq0,
                      .h0 = l->tp_rank * l->H_l,
                      .fwd = grt_kernel_find_sized(GRT_K_DROPOUT, cols, GRT_KF_RESIDUAL, T, 0, 0),
                      .plain = grt_kernel_find_sized(GRT_K_DROPOUT, cols, 0, T, 0, 0)};
    return d;
}

/* out (N, C) = x + dropout(y) at `site` (Hugging Face's T5LayerSelfAttention, T5LayerCrossAttention,
 * T5LayerFF: the branch dropped before its residual add). */
static void residual_at(const GrtLayer *l, int site, float *out, const float *x, const float *y) {
    size_t N = (size_t)l->B * queries(l), C = l->s.C;
    GrtDropout d;
    if (drop_at(l, site, (int)C, queries(l), &d))
        grt_residual_dropout_forward(out, x, y, (int64_t)N, (int)C, queries(l), &d);
    else
        for (size_t i = 0; i < N * C; i++)
            out[i] = x[i] + y[i];
}

/* A branch's gradient from the residual's dR: dropout(dR) at `site` into tmp, or dR. */
static const float *branch_grad(const GrtLayer *l, int site, const float *dR, float *tmp) {
    GrtDropout d;
    if (!drop_at(l, site, l->s.C, queries(l), &d)) return dR;
    grt_dropout_copy(tmp, dR, (int64_t)l->B * queries(l), l->s.C, queries(l), &d);
    return tmp;
}

/* The MLP's hidden x (N, F_l) dropped in place (T5DenseReluDense's dropout after the ReLU): row r is
 * sequence seq0 + r / Tq, its element c counted (r mod Tq) F + f0 + c, f0 this rank's first column. */
static void hidden_dropout(const GrtLayer *l, float *x) {
    GrtDropout d;
    size_t Tq = queries(l), F = l->F_l;
    if (!drop_at(l, GRT_DROP_MLP_HIDDEN, l->F_l, 1, &d)) return;
    for (size_t r = 0; r < (size_t)l->B * Tq; r++)
        grt_dropout_block(x + r * F, x + r * F, 1, (int)F, 1, &d, d.seq0 + (int64_t)(r / Tq),
                          (int64_t)(r % Tq) * l->s.F + (int64_t)l->tp_rank * l->F_l);
}

/* The holder's table whole (buckets, H) in a->table: its TP shards (buckets, H_l) gathered. */
static void whole_table(const GrtLayer *l, T5Act *a) {
    size_t nb = (size_t)l->s.buckets, Hl = (size_t)l->H_l, H = (size_t)l->s.H;
    if (l->tp) grt_allgather(l->tp, P(l, GRT_T5_REL), a->gath, nb * Hl);
    else memcpy(a->gath, P(l, GRT_T5_REL), sizeof(float) * nb * Hl);
    for (size_t r = 0; r < H / Hl; r++) /* (tp, buckets, H_l) -> (buckets, H) */
        for (size_t k = 0; k < nb; k++) memcpy(a->table + k * H + r * Hl, a->gath + (r * nb + k) * Hl, sizeof(float) * Hl);
}

/* Sequence b's bias table (buckets, H): the holder's own (whole_table), else the stream's copy. */
static const float *self_table(const GrtLayer *l, const T5Act *a, const float *in, int b) {
    return l->s.rel_own ? a->table : in + (size_t)b * stream_rows(l) * l->s.C + table_at(l);
}

/* Each (query, key)'s bucket: bidirectional in the encoder, causal in the decoder. */
static void buckets_of(const GrtLayer *l, int32_t *bucket) {
    int Tq = queries(l);
    for (int t = 0; t < Tq; t++)
        for (int t2 = 0; t2 < Tq; t2++)
            bucket[t * Tq + t2] = grt_t5_bucket(t2 - t, l->s.buckets, !l->s.cross, GRT_T5_MAX_DISTANCE);
}

/* bias (H_l, Tq, Tq) = this rank's heads' columns of the table, by bucket. */
static void bias_rows(const GrtLayer *l, const int32_t *bucket, const float *table, float *bias) {
    size_t TT = (size_t)queries(l) * queries(l);
    for (int h = 0; h < l->H_l; h++)
        for (size_t i = 0; i < TT; i++)
            bias[h * TT + i] = table[bucket[i] * l->s.H + l->tp_rank * l->H_l + h];
}

/* dtable (buckets, H) += dbias (H_l, Tq, Tq) summed by bucket into this rank's heads' columns. */
static void bias_backward(const GrtLayer *l, const int32_t *bucket, const float *dbias, float *dtable) {
    size_t TT = (size_t)queries(l) * queries(l);
    for (int h = 0; h < l->H_l; h++)
        for (size_t i = 0; i < TT; i++)
            dtable[bucket[i] * l->s.H + l->tp_rank * l->H_l + h] += dbias[h * TT + i];
}

/* The self-attention of each sequence with its relative position bias: qkv -> atty, att. */
static void self_forward(GrtLayer *l, T5Act *a, const float *in) {
    size_t A = heads_width(l), Tq = queries(l);
    GrtT5Attention at = attention_of(l, 0);
    GrtDropout d;
    at.B = 1, at.drop = drop_at(l, GRT_DROP_ATT, (int)Tq, (int)Tq, &d);
    buckets_of(l, a->bucket);
    if (l->s.rel_own) whole_table(l, a);
    for (int b = 0; b < l->B; b++) {
        const float *qkv = a->qkv + b * Tq * 3 * A;
        d.seq0 = l->drop_seq0 + b; /* one sequence a call */
        bias_rows(l, a->bucket, self_table(l, a, in, b), a->bias);
        grt_t5_attention_forward(&at, a->atty + b * Tq * A, a->att + b * l->H_l * Tq * Tq, qkv, qkv + A, qkv + 2 * A,
                                 a->bias, a->datt);
    }
}

/* Its backward from dA: dqkv, and each sequence's table gradient into dtab (B, buckets H). */
static void self_backward(GrtLayer *l, T5Act *a) {
    size_t A = heads_width(l), Tq = queries(l), n = (size_t)l->s.buckets * l->s.H;
    GrtT5Attention at = attention_of(l, 0);
    GrtDropout d;
    at.B = 1, at.drop = drop_at(l, GRT_DROP_ATT, (int)Tq, (int)Tq, &d);
    buckets_of(l, a->bucket);
    for (int b = 0; b < l->B; b++) {
        const float *qkv = a->qkv + b * Tq * 3 * A;
        float *dqkv = a->dqkv + b * Tq * 3 * A;
        d.seq0 = l->drop_seq0 + b;
        memset(a->bias, 0, sizeof(float) * l->H_l * Tq * Tq);
        GrtT5Grads g = {.dq = dqkv, .dk = dqkv + A, .dv = dqkv + 2 * A, .dbias = a->bias};
        grt_t5_attention_backward(&at, &g, a->dA + b * Tq * A, a->att + b * l->H_l * Tq * Tq, qkv, qkv + A, qkv + 2 * A,
                                  a->datt);
        bias_backward(l, a->bucket, a->bias, a->dtab + b * n);
    }
}

/* Cross-attention to the encoder rows of the input stream: res2 = res1 + out(attn(norm(res1), enc)). */
static void cross_forward(GrtLayer *l, T5Act *a, const float *in) {
    size_t N = (size_t)l->B * queries(l), Ne = (size_t)l->B * l->s.te, C = l->s.C, A = heads_width(l);
    grt_rmsnorm_forward(a->lnc, a->rstdc, a->res1, P(l, GRT_T5_LNC), (int)N, (int)C, l->s.eps);
    grt_linear_forward(l, a->cq, a->lnc, P(l, GRT_T5_CQ), NULL, (int)N, (int)C, (int)A);
    rows_copy(a->enc, (float *)in, l->B, stream_rows(l), 0, l->s.te, (int)C, 0);
    grt_linear_forward(l, a->ckv, a->enc, P(l, GRT_T5_CKV), NULL, (int)Ne, (int)C, (int)(2 * A));
    GrtT5Attention at = attention_of(l, 1);
    GrtDropout d;
    at.drop = drop_at(l, GRT_DROP_CROSS_ATT, l->s.te, queries(l), &d);
    grt_t5_attention_forward(&at, a->catty, a->catt, a->cq, a->ckv, a->ckv + A, NULL, a->datt);
    grt_linear_forward(l, a->y, a->catty, P(l, GRT_T5_CO), NULL, (int)N, (int)A, (int)C);
    tp_sum(l, a->y, N * C);
    residual_at(l, GRT_DROP_CROSS_OUT, a->res2, a->res1, a->y);
}

void grt_t5_block_forward(GrtLayer *l, const float *in, float *out) {
    T5Act *a = l->act;
    size_t N = (size_t)l->B * queries(l), C = l->s.C, A = heads_width(l), F = l->F_l;
    int R = stream_rows(l);
    rows_copy(a->xa, (float *)in, l->B, R, first_row(l), queries(l), (int)C, 0);
    grt_rmsnorm_forward(a->ln1, a->rstd1, a->xa, P(l, GRT_T5_LN1), (int)N, (int)C, l->s.eps);
    grt_linear_forward(l, a->qkv, a->ln1, P(l, GRT_T5_QKV), NULL, (int)N, (int)C, (int)(3 * A));
    self_forward(l, a, in);
    grt_linear_forward(l, a->y, a->atty, P(l, GRT_T5_O), NULL, (int)N, (int)A, (int)C);
    tp_sum(l, a->y, N * C);
    residual_at(l, GRT_DROP_ATT_OUT, a->res1, a->xa, a->y);
    if (l->s.cross) cross_forward(l, a, in);
    const float *h = l->s.cross ? a->res2 : a->res1;
    grt_rmsnorm_forward(a->ln2, a->rstd2, h, P(l, GRT_T5_LN2), (int)N, (int)C, l->s.eps);
    grt_linear_forward(l, a->fch, a->ln2, P(l, GRT_T5_WI), NULL, (int)N, (int)C, (int)F);
    for (size_t i = 0; i < N * F; i++)
        a->fca[i] = a->fch[i] > 0 ? a->fch[i] : 0;
    hidden_dropout(l, a->fca);
    grt_linear_forward(l, a->y, a->fca, P(l, GRT_T5_WO), NULL, (int)N, (int)F, (int)C);
    tp_sum(l, a->y, N * C);
    if (!out) return; /* a checkpointed block's recomputation */
    residual_at(l, GRT_DROP_MLP_OUT, a->y, h, a->y);
    if (out != in) memcpy(out, in, sizeof(float) * (size_t)l->B * R * C);
    rows_copy(a->y, out, l->B, R, first_row(l), queries(l), (int)C, 1);
    for (int b = 0; l->s.rel_own && b < l->B; b++) /* the stack's table, for the blocks after */
        memcpy(out + (size_t)b * R * C + table_at(l), a->table, sizeof(float) * (size_t)l->s.buckets * l->s.H);
}

/* dR (the gradient at res1 + cross(res1)) back through the cross-attention to res1, into dR, and to the encoder rows of
 * din. */
static void cross_backward(GrtLayer *l, T5Act *a, const float *in, float *din) {
    size_t N = (size_t)l->B * queries(l), Ne = (size_t)l->B * l->s.te, C = l->s.C, A = heads_width(l);
    memset(a->dA, 0, sizeof(float) * N * A);
    grt_linear_backward(l, a->dA, G(l, GRT_T5_CO), NULL, branch_grad(l, GRT_DROP_CROSS_OUT, a->dR, a->y), a->catty,
                             P(l, GRT_T5_CO), (int)N, (int)A, (int)C);
    memset(a->dqkv, 0, sizeof(float) * N * A);
    memset(a->dkv, 0, sizeof(float) * Ne * 2 * A);
    GrtT5Attention at = attention_of(l, 1);
    GrtDropout d;
    at.drop = drop_at(l, GRT_DROP_CROSS_ATT, l->s.te, queries(l), &d);
    GrtT5Grads g = {.dq = a->dqkv, .dk = a->dkv, .dv = a->dkv + A};
    grt_t5_attention_backward(&at, &g, a->dA, a->catt, a->cq, a->ckv, a->ckv + A, a->datt);
    memset(a->dLN, 0, sizeof(float) * N * C);
    grt_linear_backward(l, a->dLN, G(l, GRT_T5_CQ), NULL, a->dqkv, a->lnc, P(l, GRT_T5_CQ), (int)N, (int)C, (int)A);
    memset(a->denc, 0, sizeof(float) * Ne * C);
    rows_copy(a->enc, (float *)in, l->B, stream_rows(l), 0, l->s.te, (int)C,
              0); /* the working space was others' since */
    grt_linear_backward(l, a->denc, G(l, GRT_T5_CKV), NULL, a->dkv, a->enc, P(l, GRT_T5_CKV), (int)Ne, (int)C,
                             (int)(2 * A));
    tp_sum(l, a->dLN, N * C);
    tp_sum(l, a->denc, Ne * C);
    grt_rmsnorm_backward(a->dR, G(l, GRT_T5_LNC), a->dLN, a->res1, P(l, GRT_T5_LNC), a->rstdc, (int)N, (int)C);
    rows_add(din, a->denc, l->B, stream_rows(l), 0, l->s.te, (int)C);
}

/* The bias table's gradient: the holder sums each sequence's (its own use and the later blocks', from
 * dout's table rows) into its own; another block adds its use to the stream's, passed on with the rest. */
static void table_backward(GrtLayer *l, T5Act *a, const float *dout, float *din) {
    size_t n = (size_t)l->s.buckets * l->s.H, R = (size_t)stream_rows(l) * l->s.C, at = table_at(l);
    size_t H = (size_t)l->s.H, Hl = (size_t)l->H_l, h0 = (size_t)l->tp_rank * Hl;
    tp_sum(l, a->dtab, l->B * n);
    for (int b = 0; b < l->B; b++) {
        const float *passed = dout + b * R + at, *used = a->dtab + b * n;
        float *dst = din + b * R + at, *g = G(l, GRT_T5_REL);
        for (size_t i = 0; !l->s.rel_own && i < n; i++)
            dst[i] += passed[i] + used[i];
        for (size_t i = 0; l->s.rel_own && i < n; i++) /* the holder: this rank's heads' columns */
            if (i % H >= h0 && i % H < h0 + Hl) g[i / H * Hl + i % H - h0] += passed[i] + used[i];
    }
}

/* din += dout on the rows the block passes through: all but its queries' and its stack's table. */
static void pass_backward(const GrtLayer *l, const float *dout, float *din) {
    size_t C = l->s.C, R = (size_t)stream_rows(l) * C, q0 = (size_t)first_row(l) * C, q1 = q0 + queries(l) * C;
    size_t t0 = table_at(l), t1 = t0 + (size_t)l->s.buckets * l->s.H;
    for (int b = 0; b < l->B; b++)
        for (size_t i = 0; i < R; i++)
            if ((i < q0 || i >= q1) && (i < t0 || i >= t1)) din[b * R + i] += dout[b * R + i];
}

void grt_t5_block_backward(GrtLayer *l, const float *in, const float *dout, float *din) {
    T5Act *a = l->act;
    size_t N = (size_t)l->B * queries(l), C = l->s.C, A = heads_width(l), F = l->F_l;
    int R = stream_rows(l);
    const float *h = l->s.cross ? a->res2 : a->res1;
    rows_copy(a->dR, (float *)dout, l->B, R, first_row(l), queries(l), (int)C, 0); /* the residual's share */
    memset(a->dF, 0, sizeof(float) * N * F);
    grt_linear_backward(l, a->dF, G(l, GRT_T5_WO), NULL, branch_grad(l, GRT_DROP_MLP_OUT, a->dR, a->y), a->fca,
                             P(l, GRT_T5_WO), (int)N, (int)F, (int)C);
    hidden_dropout(l, a->dF);
    for (size_t i = 0; i < N * F; i++)
        a->dF[i] = a->fch[i] > 0 ? a->dF[i] : 0; /* through the ReLU */
    memset(a->dLN, 0, sizeof(float) * N * C);
    grt_linear_backward(l, a->dLN, G(l, GRT_T5_WI), NULL, a->dF, a->ln2, P(l, GRT_T5_WI), (int)N, (int)C, (int)F);
    tp_sum(l, a->dLN, N * C);
    grt_rmsnorm_backward(a->dR, G(l, GRT_T5_LN2), a->dLN, h, P(l, GRT_T5_LN2), a->rstd2, (int)N, (int)C);
    if (l->s.cross) cross_backward(l, a, in, din);
    memset(a->dA, 0, sizeof(float) * N * A);
    grt_linear_backward(l, a->dA, G(l, GRT_T5_O), NULL, branch_grad(l, GRT_DROP_ATT_OUT, a->dR, a->y), a->atty,
                             P(l, GRT_T5_O), (int)N, (int)A, (int)C);
    memset(a->dqkv, 0, sizeof(float) * N * 3 * A);
    memset(a->dtab, 0, sizeof(float) * (size_t)l->B * l->s.buckets * l->s.H);
    self_backward(l, a);
    memset(a->dLN, 0, sizeof(float) * N * C);
    grt_linear_backward(l, a->dLN, G(l, GRT_T5_QKV), NULL, a->dqkv, a->ln1, P(l, GRT_T5_QKV), (int)N, (int)C,
                             (int)(3 * A));
    tp_sum(l, a->dLN, N * C);
    rows_copy(a->xa, (float *)in, l->B, R, first_row(l), queries(l), (int)C, 0);
    grt_rmsnorm_backward(a->dR, G(l, GRT_T5_LN1), a->dLN, a->xa, P(l, GRT_T5_LN1), a->rstd1, (int)N, (int)C);
    rows_add(din, a->dR, l->B, R, first_row(l), queries(l), (int)C);
    table_backward(l, a, dout, din);
    pass_backward(l, dout, din);
}
