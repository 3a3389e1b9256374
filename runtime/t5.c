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
 * of each column-parallel input's gradient; the bias tables are whole on
 * every rank, each rank reading and differentiating its heads' columns. */
#include "galvrt.h"

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
    } else d = rel < 0 ? -rel : 0;
    int exact = n / 2;
    if (d < exact) return base + d;
    float f = logf((float)d / (float)exact) / (float)log((double)max_distance / exact) * (float)(n - exact);
    int large = exact + (int)f;
    return base + (large < n - 1 ? large : n - 1);
}

/* The position bias of local head h at (query t, key t2) from a table (buckets, Ht) whose column h0 + h is h's. */
static int bias_index(const GrtT5Attention *a, int t, int t2, int h) {
    return grt_t5_bucket(t2 - t, a->buckets, !a->causal, GRT_T5_MAX_DISTANCE) * a->Ht + a->h0 + h;
}

/* The keys query t sees. */
static int keys_of(const GrtT5Attention *a, int t) { return a->causal ? t + 1 : a->Tk; }

static float dot(const float *x, const float *y, int n) {
    float s = 0;
    for (int i = 0; i < n; i++) s += x[i] * y[i];
    return s;
}

/* One query's scores over its keys, softmaxed in place into row (Tk), zeros after. */
static void score_row(const GrtT5Attention *a, const float *q, const float *k, const float *table, int b, int h,
                      int t, float *row) {
    int n = keys_of(a, t);
    float mx = -INFINITY, sum = 0;
    for (int t2 = 0; t2 < n; t2++) {
        row[t2] = dot(q, k + ((size_t)b * a->Tk + t2) * a->ldkv + (size_t)h * a->hd, a->hd);
        if (table) row[t2] += table[bias_index(a, t, t2, h)];
        mx = row[t2] > mx ? row[t2] : mx;
    }
    for (int t2 = 0; t2 < n; t2++) sum += row[t2] = expf(row[t2] - mx);
    for (int t2 = 0; t2 < n; t2++) row[t2] /= sum;
    for (int t2 = n; t2 < a->Tk; t2++) row[t2] = 0;
}

void grt_t5_attention_forward(const GrtT5Attention *a, float *out, float *att, const float *q, const float *k,
                              const float *v, const float *table) {
    for (int b = 0; b < a->B; b++)
        for (int h = 0; h < a->H; h++)
            for (int t = 0; t < a->Tq; t++) {
                size_t r = (size_t)b * a->Tq + t;
                float *row = att + (((size_t)b * a->H + h) * a->Tq + t) * a->Tk, *o = out + r * a->ldo + (size_t)h * a->hd;
                score_row(a, q + r * a->ldq + (size_t)h * a->hd, k, table ? table + (size_t)b * a->tstride : NULL, b,
                          h, t, row);
                memset(o, 0, sizeof(float) * (size_t)a->hd);
                for (int t2 = 0; t2 < keys_of(a, t); t2++) {
                    const float *vr = v + ((size_t)b * a->Tk + t2) * a->ldkv + (size_t)h * a->hd;
                    for (int i = 0; i < a->hd; i++) o[i] += row[t2] * vr[i];
                }
            }
}

/* One query's backward: dv, dk, dq (its row) and the table's gradient from dout's row do. */
static void backward_row(const GrtT5Attention *a, const GrtT5Grads *g, const float *arow, const float *do_,
                         const float *q, const float *k, const float *v, int b, int h, int t, float *ds) {
    int n = keys_of(a, t);
    size_t hoff = (size_t)h * a->hd, r = (size_t)b * a->Tq + t;
    float sum = 0;
    for (int t2 = 0; t2 < n; t2++) {
        size_t kr = ((size_t)b * a->Tk + t2) * a->ldkv + hoff;
        ds[t2] = dot(do_, v + kr, a->hd);
        sum += arow[t2] * ds[t2];
        for (int i = 0; i < a->hd; i++) g->dv[kr + i] += arow[t2] * do_[i];
    }
    float *dq = g->dq + r * a->ldq + hoff;
    for (int t2 = 0; t2 < n; t2++) {
        size_t kr = ((size_t)b * a->Tk + t2) * a->ldkv + hoff;
        float s = arow[t2] * (ds[t2] - sum); /* softmax's backward */
        for (int i = 0; i < a->hd; i++) dq[i] += s * k[kr + i], g->dk[kr + i] += s * q[r * a->ldq + hoff + i];
        if (g->dtable) g->dtable[(size_t)b * a->tstride + bias_index(a, t, t2, h)] += s;
    }
}

void grt_t5_attention_backward(const GrtT5Attention *a, const GrtT5Grads *g, const float *dout, const float *att,
                               const float *q, const float *k, const float *v, float *scratch) {
    for (int b = 0; b < a->B; b++)
        for (int h = 0; h < a->H; h++)
            for (int t = 0; t < a->Tq; t++) {
                size_t r = (size_t)b * a->Tq + t;
                backward_row(a, g, att + (((size_t)b * a->H + h) * a->Tq + t) * a->Tk,
                             dout + r * a->ldo + (size_t)h * a->hd, q, k, v, b, h, t, scratch);
            }
}

/* ---- the block ------------------------------------------------------------------------ */

/* What a T5 block keeps from forward to backward and its working space (galvrt_sizes.h). */
typedef struct T5Act {
    float *ln1, *rstd1, *qkv, *att, *atty, *res1;                     /* kept: self-attention */
    float *lnc, *rstdc, *cq, *ckv, *catt, *catty, *res2;              /* kept: cross-attention (decoder) */
    float *ln2, *rstd2, *fch, *fca;                                   /* kept: MLP */
    float *xa, *y, *dR, *dLN, *dF, *dA, *dqkv, *dtab, *row;           /* working */
    float *enc, *denc, *dkv;                                          /* working: the encoder rows (decoder) */
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
    a->ln2 = carve(&kept, N * C), a->rstd2 = carve(&kept, N), a->fch = carve(&kept, N * F), a->fca = carve(&kept, N * F);
    a->xa = carve(&work, N * C), a->y = carve(&work, N * C), a->dR = carve(&work, N * C), a->dLN = carve(&work, N * C);
    a->dF = carve(&work, N * F), a->dA = carve(&work, N * A), a->dqkv = carve(&work, N * 3 * A);
    a->dtab = carve(&work, B * (size_t)l->s.buckets * l->s.H), a->row = carve(&work, (size_t)l->s.te + l->s.td);
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
        for (size_t i = 0; i < (size_t)n * C; i++) sp[i] += xp[i];
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
    return (GrtT5Attention){.B = l->B, .H = l->H_l, .hd = l->s.hd, .Tq = Tq, .Tk = cross ? l->s.te : Tq,
                            .ldq = cross ? (int)heads_width(l) : 3 * (int)heads_width(l), .ldo = (int)heads_width(l),
                            .ldkv = cross ? 2 * (int)heads_width(l) : 3 * (int)heads_width(l),
                            .causal = cross ? 0 : l->s.cross, .buckets = cross ? 0 : l->s.buckets, .Ht = l->s.H,
                            .h0 = l->tp_rank * l->H_l, .tstride = (size_t)stream_rows(l) * l->s.C};
}

/* The self-attention's table for sequence 0 (the next at + tstride): the holder's own, else the stream's. */
static const float *self_table(const GrtLayer *l, const float *in, GrtT5Attention *at) {
    if (l->s.rel_own) {
        at->tstride = 0;
        return P(l, GRT_T5_REL);
    }
    return in + table_at(l);
}

/* x = xa + y for the residual rows. */
static void add_into(float *out, const float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = x[i] + y[i];
}

/* Cross-attention to the encoder rows of the input stream: res2 = res1 + out(attn(norm(res1), enc)). */
static void cross_forward(GrtLayer *l, T5Act *a, const float *in) {
    size_t N = (size_t)l->B * queries(l), Ne = (size_t)l->B * l->s.te, C = l->s.C, A = heads_width(l);
    grt_rmsnorm_forward(a->lnc, a->rstdc, a->res1, P(l, GRT_T5_LNC), (int)N, (int)C, l->s.eps);
    grt_dev->matmul_forward(a->cq, a->lnc, P(l, GRT_T5_CQ), NULL, (int)N, (int)C, (int)A);
    rows_copy(a->enc, (float *)in, l->B, stream_rows(l), 0, l->s.te, (int)C, 0);
    grt_dev->matmul_forward(a->ckv, a->enc, P(l, GRT_T5_CKV), NULL, (int)Ne, (int)C, (int)(2 * A));
    GrtT5Attention at = attention_of(l, 1);
    grt_t5_attention_forward(&at, a->catty, a->catt, a->cq, a->ckv, a->ckv + A, NULL);
    grt_dev->matmul_forward(a->y, a->catty, P(l, GRT_T5_CO), NULL, (int)N, (int)A, (int)C);
    tp_sum(l, a->y, N * C);
    add_into(a->res2, a->res1, a->y, N * C);
}

void grt_t5_block_forward(GrtLayer *l, const float *in, float *out) {
    T5Act *a = l->act;
    size_t N = (size_t)l->B * queries(l), C = l->s.C, A = heads_width(l), F = l->F_l;
    int R = stream_rows(l);
    rows_copy(a->xa, (float *)in, l->B, R, first_row(l), queries(l), (int)C, 0);
    grt_rmsnorm_forward(a->ln1, a->rstd1, a->xa, P(l, GRT_T5_LN1), (int)N, (int)C, l->s.eps);
    grt_dev->matmul_forward(a->qkv, a->ln1, P(l, GRT_T5_QKV), NULL, (int)N, (int)C, (int)(3 * A));
    GrtT5Attention at = attention_of(l, 0);
    const float *table = self_table(l, in, &at);
    grt_t5_attention_forward(&at, a->atty, a->att, a->qkv, a->qkv + A, a->qkv + 2 * A, table);
    grt_dev->matmul_forward(a->y, a->atty, P(l, GRT_T5_O), NULL, (int)N, (int)A, (int)C);
    tp_sum(l, a->y, N * C);
    add_into(a->res1, a->xa, a->y, N * C);
    if (l->s.cross) cross_forward(l, a, in);
    const float *h = l->s.cross ? a->res2 : a->res1;
    grt_rmsnorm_forward(a->ln2, a->rstd2, h, P(l, GRT_T5_LN2), (int)N, (int)C, l->s.eps);
    grt_dev->matmul_forward(a->fch, a->ln2, P(l, GRT_T5_WI), NULL, (int)N, (int)C, (int)F);
    for (size_t i = 0; i < N * F; i++) a->fca[i] = a->fch[i] > 0 ? a->fch[i] : 0;
    grt_dev->matmul_forward(a->y, a->fca, P(l, GRT_T5_WO), NULL, (int)N, (int)F, (int)C);
    tp_sum(l, a->y, N * C);
    if (!out) return; /* a checkpointed block's recomputation */
    add_into(a->y, h, a->y, N * C);
    if (out != in) memcpy(out, in, sizeof(float) * (size_t)l->B * R * C);
    rows_copy(a->y, out, l->B, R, first_row(l), queries(l), (int)C, 1);
    for (int b = 0; l->s.rel_own && b < l->B; b++) /* the stack's table, for the blocks after */
        memcpy(out + (size_t)b * R * C + table_at(l), table, sizeof(float) * (size_t)l->s.buckets * l->s.H);
}

/* dR (the gradient at res1 + cross(res1)) back through the cross-attention to res1, into dR, and to the encoder rows of din. */
static void cross_backward(GrtLayer *l, T5Act *a, const float *in, float *din) {
    size_t N = (size_t)l->B * queries(l), Ne = (size_t)l->B * l->s.te, C = l->s.C, A = heads_width(l);
    memset(a->dA, 0, sizeof(float) * N * A);
    grt_dev->matmul_backward(a->dA, G(l, GRT_T5_CO), NULL, a->dR, a->catty, P(l, GRT_T5_CO), (int)N, (int)A, (int)C);
    memset(a->dqkv, 0, sizeof(float) * N * A);
    memset(a->dkv, 0, sizeof(float) * Ne * 2 * A);
    GrtT5Attention at = attention_of(l, 1);
    GrtT5Grads g = {.dq = a->dqkv, .dk = a->dkv, .dv = a->dkv + A};
    grt_t5_attention_backward(&at, &g, a->dA, a->catt, a->cq, a->ckv, a->ckv + A, a->row);
    memset(a->dLN, 0, sizeof(float) * N * C);
    grt_dev->matmul_backward(a->dLN, G(l, GRT_T5_CQ), NULL, a->dqkv, a->lnc, P(l, GRT_T5_CQ), (int)N, (int)C, (int)A);
    memset(a->denc, 0, sizeof(float) * Ne * C);
    rows_copy(a->enc, (float *)in, l->B, stream_rows(l), 0, l->s.te, (int)C, 0); /* the working space was others' since */
    grt_dev->matmul_backward(a->denc, G(l, GRT_T5_CKV), NULL, a->dkv, a->enc, P(l, GRT_T5_CKV), (int)Ne, (int)C,
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
    tp_sum(l, a->dtab, l->B * n);
    for (int b = 0; b < l->B; b++) {
        float *dst = l->s.rel_own ? G(l, GRT_T5_REL) : din + b * R + at;
        const float *passed = dout + b * R + at, *used = a->dtab + b * n;
        for (size_t i = 0; i < n; i++) dst[i] += passed[i] + used[i];
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
    grt_dev->matmul_backward(a->dF, G(l, GRT_T5_WO), NULL, a->dR, a->fca, P(l, GRT_T5_WO), (int)N, (int)F, (int)C);
    for (size_t i = 0; i < N * F; i++) a->dF[i] = a->fch[i] > 0 ? a->dF[i] : 0; /* through the ReLU */
    memset(a->dLN, 0, sizeof(float) * N * C);
    grt_dev->matmul_backward(a->dLN, G(l, GRT_T5_WI), NULL, a->dF, a->ln2, P(l, GRT_T5_WI), (int)N, (int)C, (int)F);
    tp_sum(l, a->dLN, N * C);
    grt_rmsnorm_backward(a->dR, G(l, GRT_T5_LN2), a->dLN, h, P(l, GRT_T5_LN2), a->rstd2, (int)N, (int)C);
    if (l->s.cross) cross_backward(l, a, in, din);
    memset(a->dA, 0, sizeof(float) * N * A);
    grt_dev->matmul_backward(a->dA, G(l, GRT_T5_O), NULL, a->dR, a->atty, P(l, GRT_T5_O), (int)N, (int)A, (int)C);
    memset(a->dqkv, 0, sizeof(float) * N * 3 * A);
    memset(a->dtab, 0, sizeof(float) * (size_t)l->B * l->s.buckets * l->s.H);
    GrtT5Attention at = attention_of(l, 0);
    at.tstride = (size_t)l->s.buckets * l->s.H; /* the gradient: one table per sequence */
    GrtT5Grads g = {.dq = a->dqkv, .dk = a->dqkv + A, .dv = a->dqkv + 2 * A, .dtable = a->dtab};
    grt_t5_attention_backward(&at, &g, a->dA, a->att, a->qkv, a->qkv + A, a->qkv + 2 * A, a->row);
    memset(a->dLN, 0, sizeof(float) * N * C);
    grt_dev->matmul_backward(a->dLN, G(l, GRT_T5_QKV), NULL, a->dqkv, a->ln1, P(l, GRT_T5_QKV), (int)N, (int)C,
                             (int)(3 * A));
    tp_sum(l, a->dLN, N * C);
    rows_copy(a->xa, (float *)in, l->B, R, first_row(l), queries(l), (int)C, 0);
    grt_rmsnorm_backward(a->dR, G(l, GRT_T5_LN1), a->dLN, a->xa, P(l, GRT_T5_LN1), a->rstd1, (int)N, (int)C);
    rows_add(din, a->dR, l->B, R, first_row(l), queries(l), (int)C);
    table_backward(l, a, dout, din);
    pass_backward(l, dout, din);
}
