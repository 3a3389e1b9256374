/* shape.c — the shape pass: walks the layers in order, carrying the width and
 * sequence length of the activation stream, infers what the user left out
 * (hidden, a head's vocabulary, positions), checks what must agree, and
 * derives each layer's parameters, FLOPs and activation bytes per sample.
 *
 * Conventions (used by the cost model):
 *  - FLOPs count GEMMs and attention's two batched products, 2 per
 *    multiply-add; attention counts the full s x s score matrix, as Megatron's
 *    72*B*s*L*h^2*(1 + s/6h + V/12hL) does (Narayanan et al., SC'21, eq. 3).
 *    Elementwise work is left to the cost model's bandwidth term.
 *  - Backward is twice forward: one GEMM for the input gradient, one for the
 *    weight gradient (the same paper, and Kaplan et al. 2020, section 2.1).
 *  - Activation bytes follow Korthikanti et al., "Reducing Activation
 *    Recomputation in Large Transformer Models" (2022), section 4.1: what each
 *    operator keeps for its backward, at the precision's element size, with
 *    the 1-byte dropout masks only when dropout is on, plus the fp32
 *    per-token statistics that LayerNorm (mean, rstd) and RMSNorm (rstd) keep. */
#include "passes.h"

#include <math.h>
#include <string.h>

typedef struct Acc {
    bool overflow;
} Acc;

static int64_t add(Acc *o, int64_t a, int64_t b) {
    int64_t r;
    if (__builtin_add_overflow(a, b, &r)) o->overflow = true;
    return r;
}

static int64_t mul(Acc *o, int64_t a, int64_t b) {
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r)) o->overflow = true;
    return r;
}

static int64_t mul3(Acc *o, int64_t a, int64_t b, int64_t c) { return mul(o, mul(o, a, b), c); }
static int64_t mul4(Acc *o, int64_t a, int64_t b, int64_t c, int64_t d) { return mul(o, mul3(o, a, b, c), d); }

/* The stream between layers. */
typedef struct Stream {
    int64_t seq, width;
    const Layer *from;      /* the layer that produced it */
    const Layer *embedding; /* the token embedding, for a head's vocabulary */
    const Layer *head;      /* set once the model's head has run */
} Stream;

typedef struct Ctx {
    Diag *diag;
    const TrainConfig *train;
    int64_t e; /* bytes per activation element */
    Acc acc;
} Ctx;

static bool is_glu(int act) { return act == ACT_SWIGLU || act == ACT_GEGLU; }

/* ---- building blocks: parameters, FLOPs and saved bytes ------------------ */

typedef struct Cost {
    int64_t params, flops, act;
} Cost;

static void sum(Ctx *c, Cost *t, Cost x) {
    t->params = add(&c->acc, t->params, x.params);
    t->flops = add(&c->acc, t->flops, x.flops);
    t->act = add(&c->acc, t->act, x.act);
}

/* A norm over h features of s tokens: its input and per-token statistics. */
static Cost norm_cost(Ctx *c, int norm, bool bias, int64_t s, int64_t h) {
    Acc *o = &c->acc;
    bool ln = norm == NORM_LAYERNORM;
    return (Cost){
        .params = ln && bias ? mul(o, 2, h) : h,
        .act = add(o, mul3(o, c->e, s, h), mul3(o, ln ? 8 : 4, s, 1)),
    };
}

/* Attention with q heads and kv key/value heads of size d over s query
 * tokens and skv key tokens (skv = s for self-attention, the encoder length
 * for cross-attention, window^2 for windowed attention). */
static Cost attention_cost(Ctx *c, const Layer *l, int64_t s, int64_t skv_proj, int64_t skv) {
    Acc *o = &c->acc;
    int64_t h = l->hidden, q = mul(o, l->heads, l->head_dim), kv = mul(o, l->kv_heads, l->head_dim);
    Cost r = {0};
    r.params = add(o, mul(o, h, add(o, q, mul(o, 2, kv))), mul(o, q, h));
    if (l->bias) r.params = add(o, r.params, add(o, add(o, q, mul(o, 2, kv)), h));
    r.params = add(o, r.params, mul(o, l->rel_buckets, l->heads));
    /* projections Q (s tokens), K and V (skv_proj tokens), output (s tokens) */
    r.flops = add(o, mul4(o, 2, s, h, q), mul4(o, 4, skv_proj, h, kv));
    r.flops = add(o, r.flops, mul4(o, 2, s, q, h));
    /* scores Q K^T and context P V */
    r.flops = add(o, r.flops, mul4(o, 4, s, skv, q));
    /* kept: projection input, Q, K, V, probabilities, context */
    int64_t probs = mul3(o, l->heads, s, skv);
    r.act = add(o, mul3(o, c->e, s, h), mul(o, c->e, add(o, mul(o, s, q), mul3(o, 2, skv_proj, kv))));
    r.act = add(o, r.act, add(o, mul(o, c->e, probs), mul3(o, c->e, s, q)));
    if (l->dropout > 0) /* the probabilities' mask and dropped copy, the output's mask */
        r.act = add(o, r.act, add(o, mul(o, 1 + c->e, probs), mul(o, s, h)));
    return r;
}

/* The MLP h -> ffn -> h; a gated unit (SwiGLU, GEGLU) has two input GEMMs. */
static Cost mlp_cost(Ctx *c, const Layer *l, int64_t s) {
    Acc *o = &c->acc;
    int64_t h = l->hidden, up = mul(o, l->ffn, is_glu(l->act) ? 2 : 1);
    Cost r = {0};
    r.params = add(o, mul(o, h, up), mul(o, l->ffn, h));
    if (l->bias) r.params = add(o, r.params, add(o, up, h));
    r.flops = add(o, mul3(o, 2, s, mul(o, h, up)), mul3(o, 2, s, mul(o, l->ffn, h)));
    /* kept: input, the activation's input, the down projection's input */
    r.act = mul3(o, c->e, s, add(o, add(o, h, up), l->ffn));
    if (l->dropout > 0) r.act = add(o, r.act, mul(o, s, h));
    return r;
}

/* ---- per-kind rules -------------------------------------------------------- */

static bool layer_error(Ctx *c, const Layer *l, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool layer_error(Ctx *c, const Layer *l, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_verror(c->diag, l->loc, fmt, ap);
    va_end(ap);
    return false;
}

/* Take hidden from the stream, or check that the user's value agrees. */
static bool take_width(Ctx *c, Layer *l, const Stream *st) {
    if (!l->hidden) l->hidden = st->width;
    if (l->hidden != st->width)
        return layer_error(c, l, "%s has hidden = %lld, but '%s' before it gives %lld", l->name,
                           (long long)l->hidden, st->from->name, (long long)st->width);
    return true;
}

/* Heads must split the hidden size (unless head_dim is explicit), and
 * key/value heads must split the heads. */
static bool check_heads(Ctx *c, Layer *l) {
    if (!l->head_dim) {
        if (l->hidden % l->heads)
            return layer_error(c, l, "heads (%lld) must divide hidden (%lld), or give head_dim", (long long)l->heads,
                               (long long)l->hidden);
        l->head_dim = l->hidden / l->heads;
    }
    if (!l->kv_heads) l->kv_heads = l->heads;
    if (l->heads % l->kv_heads)
        return layer_error(c, l, "kv_heads (%lld) must divide heads (%lld)", (long long)l->kv_heads,
                           (long long)l->heads);
    return true;
}

static bool check_dropout(Ctx *c, const Layer *l) {
    if (l->dropout < 0 || l->dropout >= 1)
        return layer_error(c, l, "dropout must be in [0, 1), not %g", l->dropout);
    return true;
}

static Shape shape2(int64_t a, int64_t b) { return (Shape){2, {a, b, 0}}; }

static bool embedding(Ctx *c, Layer *l, Stream *st) {
    Acc *o = &c->acc;
    int64_t seq = c->train->seq;
    if (l->pos == POS_LEARNED && !l->positions) l->positions = seq;
    if (!seq) seq = l->pos == POS_LEARNED ? l->positions : 0;
    if (!seq) return layer_error(c, l, "the sequence length is unknown: set seq in the train block");
    st->seq = seq;
    st->embedding = l;
    if (l->pos == POS_LEARNED && seq > l->positions)
        return layer_error(c, l, "the sequence (%lld tokens) is longer than the %lld learned positions",
                           (long long)seq, (long long)l->positions);
    if (l->pos != POS_LEARNED && l->positions)
        return layer_error(c, l, "positions is only for learned position embeddings");
    int64_t table = add(o, add(o, l->vocab, l->pos == POS_LEARNED ? l->positions : 0), l->types);
    l->params = mul(o, table, l->hidden);
    l->in = (Shape){1, {seq, 0, 0}};
    /* kept: the token (and token-type) ids, for the gradient scatter */
    l->act_bytes = mul3(o, 4, seq, l->types ? 2 : 1);
    if (l->dropout > 0) l->act_bytes = add(o, l->act_bytes, mul(o, seq, l->hidden));
    return true;
}

static bool patch_embedding(Ctx *c, Layer *l, Stream *st) {
    Acc *o = &c->acc;
    if (!l->channels) l->channels = 3;
    if (l->image % l->patch)
        return layer_error(c, l, "patch (%lld) must divide image (%lld)", (long long)l->patch, (long long)l->image);
    int64_t n = mul(o, l->image / l->patch, l->image / l->patch);
    if (l->pos == POS_ROTARY) return layer_error(c, l, "a patch embedding's positions are learned or none, not rotary");
    int64_t seq = add(o, n, l->cls_token ? 1 : 0);
    int64_t pixels = mul3(o, l->channels, l->patch, l->patch);
    /* the patch projection (a stride-p convolution) with its bias, the class
     * token, and learned positions for every token (none in Swin) */
    l->params = add(o, add(o, mul(o, pixels, l->hidden), l->hidden),
                    add(o, l->cls_token ? l->hidden : 0, l->pos == POS_LEARNED ? mul(o, seq, l->hidden) : 0));
    l->fwd_flops = mul4(o, 2, n, pixels, l->hidden);
    l->in = (Shape){3, {l->channels, l->image, l->image}};
    l->act_bytes = mul4(o, c->e, l->channels, l->image, l->image);
    st->seq = seq;
    return true;
}

/* The side of the square grid of s tokens, or 0 when s is not a square. */
static int64_t grid_side(int64_t s) {
    int64_t side = (int64_t)sqrt((double)s);
    while (side * side > s)
        side--;
    while ((side + 1) * (side + 1) <= s)
        side++;
    return side * side == s ? side : 0;
}

/* A Swin block's attention (Liu et al. 2021, section 3.2): the s tokens a
 * square grid cut into windows of window x window tokens, each attending
 * within itself, with a learned bias table of (2 window - 1)^2 entries per
 * head; a shifted block rolls the grid by window / 2 first. */
static bool window_block(Ctx *c, Layer *l, int64_t s, Cost *t) {
    Acc *o = &c->acc;
    int64_t side = grid_side(s), w = l->window;
    if (l->kind != LAYER_ENCODER) return layer_error(c, l, "windowed attention is for encoder blocks (Swin)");
    if (!side || side % w)
        return layer_error(c, l, "a %lld x %lld window needs a square grid of tokens its side divides, not %lld tokens",
                           (long long)w, (long long)w, (long long)s);
    if (l->shift && (side == w || w < 2))
        return layer_error(c, l,
                           "shifted windows need a window of 2 or more and a grid larger than it (%lld x %lld "
                           "tokens, window %lld)",
                           (long long)side, (long long)side, (long long)w);
    sum(c, t, attention_cost(c, l, s, s, mul(o, w, w)));
    t->params = add(o, t->params, mul3(o, add(o, mul(o, 2, w), -1), add(o, mul(o, 2, w), -1), l->heads));
    return true;
}

/* Swin's patch merging (Liu et al. 2021, section 3.1): each 2 x 2 group of
 * the grid concatenated (4 hidden), a LayerNorm, a linear map to 2 hidden
 * without bias: a quarter of the tokens, twice the width. */
static bool patch_merging(Ctx *c, Layer *l, Stream *st) {
    Acc *o = &c->acc;
    int64_t side = grid_side(st->seq), h4 = mul(o, 4, l->hidden);
    if (!side || side % 2)
        return layer_error(c, l, "patch merging needs a square grid of tokens of even side, not %lld tokens",
                           (long long)st->seq);
    int64_t s = st->seq / 4;
    l->params = add(o, mul(o, 2, h4), mul3(o, h4, 2, l->hidden));
    l->fwd_flops = add(o, mul4(o, 2, s, h4, mul(o, 2, l->hidden)), mul3(o, 8, s, h4));
    l->act_bytes = mul3(o, c->e, s, add(o, h4, 2));
    st->seq = s;
    st->width = mul(o, 2, l->hidden);
    return true;
}

/* encoder, decoder, cross_decoder: norm, attention, [norm, cross-attention,]
 * norm, MLP, with residuals. */
static bool block(Ctx *c, Layer *l, const Stream *st) {
    if (!check_heads(c, l)) return false;
    if (!l->ffn) l->ffn = mul(&c->acc, 4, l->hidden);
    int64_t s = st->seq;
    Cost t = {0};
    sum(c, &t, norm_cost(c, l->norm, l->bias, s, l->hidden));
    if (l->shift && !l->window) return layer_error(c, l, "shift needs a window");
    if (l->window && !window_block(c, l, s, &t)) return false;
    if (!l->window) sum(c, &t, attention_cost(c, l, s, s, s));
    if (l->kind == LAYER_CROSS_DECODER) {
        if (!l->enc_seq) l->enc_seq = s;
        Layer cross = *l;
        cross.rel_buckets = 0;
        sum(c, &t, norm_cost(c, l->norm, l->bias, s, l->hidden));
        sum(c, &t, attention_cost(c, &cross, s, l->enc_seq, l->enc_seq));
    }
    sum(c, &t, norm_cost(c, l->norm, l->bias, s, l->hidden));
    sum(c, &t, mlp_cost(c, l, s));
    l->params = t.params;
    l->fwd_flops = t.flops;
    l->act_bytes = t.act;
    return true;
}

static bool lm_head(Ctx *c, Layer *l, const Stream *st) {
    Acc *o = &c->acc;
    const Layer *emb = st->embedding;
    if (!l->vocab) {
        if (!emb) return layer_error(c, l, "lm_head needs vocab: there is no token embedding to take it from");
        l->vocab = emb->vocab;
    }
    if (l->tied && (!emb || emb->vocab != l->vocab || emb->hidden != l->hidden))
        return layer_error(c, l, "a tied lm_head needs a token embedding of the same vocab and hidden size");
    int64_t s = st->seq, h = l->hidden, v = l->vocab;
    Cost t = {0};
    if (l->transform) { /* BERT's prediction head: dense, activation, LayerNorm */
        t.params = add(o, mul(o, h, h), h);
        t.flops = mul4(o, 2, s, h, h);
        t.act = mul4(o, 2, c->e, s, h);
        sum(c, &t, norm_cost(c, NORM_LAYERNORM, true, s, h));
    }
    t.params = add(o, t.params, add(o, l->tied ? 0 : mul(o, v, h), l->bias ? v : 0));
    t.flops = add(o, t.flops, mul4(o, 2, s, h, v));
    /* kept: the input, and the probabilities the cross-entropy backward uses */
    t.act = add(o, t.act, add(o, mul3(o, c->e, s, h), mul3(o, c->e, s, v)));
    l->params = t.params;
    l->fwd_flops = t.flops;
    l->act_bytes = t.act;
    l->out = shape2(s, v);
    return true;
}

static bool classifier(Ctx *c, Layer *l) {
    Acc *o = &c->acc;
    int64_t h = l->hidden;
    /* pool one vector (the class token, or the mean), optionally BERT's
     * pooler (dense + tanh), then the class projection */
    l->params = add(o, l->pooler ? add(o, mul(o, h, h), h) : 0, add(o, mul(o, h, l->classes), l->classes));
    l->fwd_flops = add(o, l->pooler ? mul3(o, 2, h, h) : 0, mul3(o, 2, h, l->classes));
    l->act_bytes = mul3(o, c->e, h, l->pooler ? 2 : 1);
    l->out = (Shape){1, {l->classes, 0, 0}};
    return true;
}

/* One layer's rules; false after reporting a user error. */
static bool shape_layer(Ctx *c, Layer *l, Stream *st, bool first) {
    bool is_input = l->kind == LAYER_EMBEDDING || l->kind == LAYER_PATCH_EMBEDDING;
    if (first && !is_input)
        return layer_error(c, l, "a model starts with an embedding or a patch_embedding, not %s",
                           layer_kind_names[l->kind]);
    if (!first && is_input) return layer_error(c, l, "only the first layer can be an embedding");
    if (st->head) return layer_error(c, l, "%s comes after the model's head '%s'", l->name, st->head->name);
    if (!check_dropout(c, l)) return false;
    if (!is_input && !take_width(c, l, st)) return false;
    if (!is_input) l->in = shape2(st->seq, st->width);

    bool ok = true;
    int64_t s = st->seq;
    Cost t = {0};
    switch (l->kind) {
    case LAYER_EMBEDDING: ok = embedding(c, l, st); break;
    case LAYER_PATCH_EMBEDDING: ok = patch_embedding(c, l, st); break;
    case LAYER_ENCODER:
    case LAYER_DECODER:
    case LAYER_CROSS_DECODER: ok = block(c, l, st); break;
    case LAYER_ATTENTION:
        if (!(ok = check_heads(c, l))) break;
        t = attention_cost(c, l, s, s, s);
        break;
    case LAYER_WINDOW_ATTENTION: {
        if (!(ok = check_heads(c, l))) break;
        l->kv_heads = l->heads;
        int64_t w2 = mul(&c->acc, l->window, l->window);
        if (w2 > s) return layer_error(c, l, "a %lld x %lld window is larger than the %lld tokens",
                                       (long long)l->window, (long long)l->window, (long long)s);
        /* Swin's relative position bias table: (2w-1)^2 entries per head */
        int64_t side = add(&c->acc, mul(&c->acc, 2, l->window), -1);
        l->rel_buckets = mul(&c->acc, side, side);
        t = attention_cost(c, l, s, s, w2);
        break;
    }
    case LAYER_MLP:
        if (!l->ffn) l->ffn = mul(&c->acc, 4, l->hidden);
        t = mlp_cost(c, l, s);
        break;
    case LAYER_LAYERNORM:
    case LAYER_RMSNORM: t = norm_cost(c, l->norm, l->bias, s, l->hidden); break;
    case LAYER_LM_HEAD: ok = lm_head(c, l, st); break;
    case LAYER_CLASSIFIER: ok = classifier(c, l); break;
    case LAYER_PATCH_MERGING: ok = patch_merging(c, l, st); break;
    case LAYER_KIND_COUNT: die("bad layer kind");
    }
    if (!ok) return false;
    if (t.params || t.flops || t.act) {
        l->params = t.params;
        l->fwd_flops = t.flops;
        l->act_bytes = t.act;
    }
    if (l->kind == LAYER_LM_HEAD || l->kind == LAYER_CLASSIFIER) st->head = l;
    else if (l->kind == LAYER_PATCH_MERGING)
        l->out = shape2(st->seq, st->width);
    else {
        st->width = l->hidden;
        l->out = shape2(st->seq, st->width);
    }
    l->seq = l->kind == LAYER_PATCH_MERGING ? l->in.dim[0] : st->seq; /* the tokens it reads (made, for an input) */
    l->bwd_flops = mul(&c->acc, 2, l->fwd_flops);
    int64_t elems = 1;
    for (int i = 0; i < l->out.rank; i++) elems = mul(&c->acc, elems, l->out.dim[i]);
    l->out_bytes = mul(&c->acc, c->e, elems);
    st->from = l;
    return true;
}

/* A T5 model (one with cross_decoders): the first one's index and the encoder's length, its enc_seq
 * (0: none given, the train block's seq); else -1. The layers before it read the encoder's tokens. */
static int t5_cross(const Graph *g, int64_t *enc_seq) {
    for (int i = 0; i < g->n_layers; i++)
        if (g->layers[i]->kind == LAYER_CROSS_DECODER) return *enc_seq = g->layers[i]->enc_seq, i;
    return *enc_seq = 0, -1;
}

bool pass_shape(Spec *spec, Diag *d) {
    Graph *g = spec->graph;
    if (!spec->train || !g || !g->n_layers) return false; /* the frontend said why */
    Ctx c = {.diag = d, .train = spec->train, .e = precision_bytes((Precision)spec->train->precision)};
    Stream st = {0};
    int errors = d->errors;
    int64_t enc_seq, dec_seq = 0;
    int cross = t5_cross(g, &enc_seq);
    g->total_params = g->total_fwd_flops = g->total_bwd_flops = g->total_act_bytes = 0;
    for (int i = 0; i < g->n_layers; i++) {
        Layer *l = g->layers[i];
        c.acc.overflow = false;
        if (i == 1) dec_seq = st.seq; /* the embedding's: the train block's */
        if (cross > 0 && enc_seq > 0 && i > 0 && st.seq) st.seq = i < cross ? enc_seq : dec_seq;
        /* After an error the stream is unknown: skip until a layer that states
         * its width, so one mistake is reported once. */
        bool known = i == 0 || (st.seq && (st.width || l->hidden));
        if (l->invalid || !known || !shape_layer(&c, l, &st, i == 0)) {
            l->invalid = true;
            st.width = l->kind == LAYER_PATCH_MERGING ? 2 * l->hidden : l->hidden;
            st.from = l;
            continue;
        }
        g->total_params = add(&c.acc, g->total_params, l->params);
        g->total_fwd_flops = add(&c.acc, g->total_fwd_flops, l->fwd_flops);
        g->total_bwd_flops = add(&c.acc, g->total_bwd_flops, l->bwd_flops);
        g->total_act_bytes = add(&c.acc, g->total_act_bytes, l->act_bytes);
        if (c.acc.overflow) {
            layer_error(&c, l, "%s is too large: its counts overflow 64 bits", l->name);
            l->invalid = true;
        }
    }
    bool has_head = false;
    for (int i = 0; i < g->n_layers; i++)
        has_head |= g->layers[i]->kind == LAYER_LM_HEAD || g->layers[i]->kind == LAYER_CLASSIFIER;
    if (!has_head)
        layer_error(&c, g->layers[g->n_layers - 1], "the model has no head: end it with lm_head or classifier");
    return d->errors == errors;
}
