/* runtime_layer.c — what the runtime (libgalvrt) makes of an IR layer: the
 * layer kind it trains it as, or why it cannot yet, and the GrtLayerSpec a
 * program declares for it. The one list of the layer kinds the runtime
 * trains, for the planner and the program alike: the cost pass predicts a
 * layer's buffers from its spec (runtime/galvrt_sizes.h), and a plan may be
 * emitted only when the runtime trains every layer. Also the work a
 * profile's layer-time fit divides by its rate, for profile.c and cost.c. */
#include "ir.h"
#include "runtime/galvrt.h"

#include <math.h>

/* The runtime kind of IR kind k, whatever the layer's options, or -1. */
int layer_runtime_base_kind(LayerKind k) {
    switch (k) {
    case LAYER_EMBEDDING: return GRT_EMBEDDING;
    case LAYER_ENCODER:
    case LAYER_DECODER:
    case LAYER_CROSS_DECODER: return GRT_BLOCK;
    case LAYER_LAYERNORM:
    case LAYER_RMSNORM: return GRT_NORM;
    case LAYER_LM_HEAD: return GRT_HEAD;
    case LAYER_PATCH_EMBEDDING: return GRT_PATCH;
    case LAYER_CLASSIFIER: return GRT_CLASSIFIER;
    case LAYER_PATCH_MERGING: return GRT_MERGE;
    default: return -1;
    }
}

/* The kind a profile times layers of IR kind k as (its GrtLayerKind for
 * the text layers; the patch embedding as an embedding, the classifier and
 * Swin's patch merging, GEMMs on few rows, as a head), or -1 when the
 * runtime has none. */
int layer_profile_kind(LayerKind k) {
    int r = layer_runtime_base_kind(k);
    return r == GRT_PATCH ? GRT_EMBEDDING : r == GRT_CLASSIFIER || r == GRT_MERGE ? GRT_HEAD : r;
}

/* The first cross_decoder of g (a T5 model: runtime/t5.c), or -1. */
int graph_t5_cross(const Graph *g) {
    for (int i = 0; i < g->n_layers; i++)
        if (g->layers[i]->kind == LAYER_CROSS_DECODER) return i;
    return -1;
}

/* The stack of layer i of T5 model g: its first block (the one holding the stack's bias table), or -1. */
static int t5_stack_first(const Graph *g, int i) {
    int cross = graph_t5_cross(g);
    LayerKind want = i < cross ? LAYER_ENCODER : LAYER_CROSS_DECODER;
    for (int j = i < cross ? 0 : cross; j < g->n_layers; j++)
        if (g->layers[j]->kind == want) return j;
    return -1;
}

/* Why the runtime does not train layer l of T5 model g as T5 (Hugging Face's v1.0 layout), or NULL. */
static const char *t5_refusal(const Graph *g, const Layer *l) {
    int cross = graph_t5_cross(g), i = l->index;
    if (l->kind == LAYER_DECODER) return "a T5 model's decoder blocks are cross_decoders";
    if (l->kind == LAYER_ENCODER && i > cross) return "a T5 model's encoder blocks come before its cross_decoders";
    if (l->kind == LAYER_EMBEDDING && (l->pos != POS_NONE || l->types))
        return "a T5 model's embedding has no positions or token types (its blocks' relative biases place tokens)";
    if (l->kind == LAYER_LAYERNORM) return "a T5 model's norms are rmsnorm (T5's LayerNorm)";
    if (l->kind == LAYER_LM_HEAD && !l->tied) return "a T5 model's head is tied to its embedding";
    if (l->kind != LAYER_ENCODER && l->kind != LAYER_CROSS_DECODER) return NULL;
    if (l->act != ACT_RELU || l->norm != NORM_RMSNORM || l->bias || !l->pre_norm || l->kv_heads != l->heads)
        return "a T5 block has a ReLU MLP, pre-norm rmsnorm, no biases and as many key/value heads as heads";
    const Layer *first = g->layers[t5_stack_first(g, i)];
    if (!first->rel_buckets || first->rel_buckets % 2)
        return "a T5 stack's first block holds its relative position buckets (an even count)";
    if (l->rel_buckets && l != first) return "only a T5 stack's first block holds relative position buckets";
    if (l->heads != first->heads || g->layers[cross]->rel_buckets != g->layers[t5_stack_first(g, 0)]->rel_buckets ||
        g->layers[cross]->heads != g->layers[t5_stack_first(g, 0)]->heads)
        return "a T5 model's blocks have one head count and both stacks one bucket count";
    if (l->kind == LAYER_CROSS_DECODER && l->enc_seq != g->layers[cross]->enc_seq)
        return "a T5 model's cross_decoders read one encoder length (enc_seq)";
    return NULL;
}

/* The runtime's kind for layer l of g, or -1 (with the reason) when it has none yet. */
int layer_runtime_kind(const Graph *g, const Layer *l, const char **why) {
    *why = NULL;
    int k = layer_runtime_base_kind(l->kind);
    if (k < 0) return *why = "this layer kind is not trained by the runtime yet", -1;
    if (graph_t5_cross(g) >= 0) {
        *why = t5_refusal(g, l);
        return *why ? -1 : k;
    }
    if (k == GRT_EMBEDDING && l->types && l->pos != POS_LEARNED)
        return *why = "token-type embeddings without learned positions are not trained yet", -1;
    if (k == GRT_BLOCK && l->act != ACT_GELU && l->act != ACT_SWIGLU)
        return *why = "only GELU and SwiGLU MLPs are trained yet", -1;
    if (k == GRT_BLOCK && l->rel_buckets) return *why = "relative position biases are not trained yet", -1;
    if (k == GRT_HEAD && (l->transform || l->bias))
        return *why = "an lm_head with a transform or a bias is not trained yet", -1;
    if (k == GRT_NORM && l->dropout > 0) return *why = "a norm's dropout is trained only in a T5 model", -1;
    if (k == GRT_PATCH && l->cls_token != (l->pos == POS_LEARNED))
        return *why = "a patch embedding trains with a class token and learned positions (ViT) or neither (Swin)", -1;
    if (k == GRT_BLOCK && l->window && (l->dropout > 0 || l->kv_heads != l->heads))
        return *why = "windowed attention is trained without dropout and with kv_heads = heads", -1;
    if (k == GRT_PATCH && l->dropout > 0) return *why = "a patch embedding's dropout is not trained yet", -1;
    return k;
}

/* Does the runtime split layer l over a TP group of tp? A transformer
 * layer's heads, key/value heads and FFN must divide (the embedding and the
 * head pad their vocabulary rows; a norm is replicated). */
bool layer_tp_splits(const Layer *l, int tp) {
    if (l->kind != LAYER_ENCODER && l->kind != LAYER_DECODER && l->kind != LAYER_CROSS_DECODER) return true; /* patch merging: replicated */
    return tp >= 1 && l->heads % tp == 0 && l->kv_heads % tp == 0 && l->ffn % tp == 0;
}

/* Does the runtime split every layer of g over TP degree tp? */
bool graph_tp_splits(const Graph *g, int tp) {
    for (int i = 0; i < g->n_layers; i++)
        if (!layer_tp_splits(g->layers[i], tp)) return false;
    return true;
}

/* Megatron sequence parallelism over tp: the runtime runs it in embeddings,
 * pre-norm transformer layers (not Swin's windowed ones, nor a T5 model's), norms and LM
 * heads, each rank taking B T / tp of the stream's rows, so the sequence
 * must divide by tp. */
bool graph_sp_splits(const Graph *g, int tp) {
    if (graph_t5_cross(g) >= 0) return false; /* T5's stream rows are not a sequence's tokens */
    for (int i = 0; i < g->n_layers; i++) {
        const Layer *l = g->layers[i];
        int k = layer_runtime_base_kind(l->kind);
        bool block =
            k == GRT_BLOCK && (l->kind == LAYER_ENCODER || l->kind == LAYER_DECODER) && l->pre_norm && !l->window;
        if (!(k == GRT_EMBEDDING && l->kind == LAYER_EMBEDDING) && !block && k != GRT_NORM && k != GRT_HEAD) return false;
        if (k == GRT_HEAD && l->kind != LAYER_LM_HEAD) return false;
        if (tp < 1 || l->seq % tp) return false;
    }
    return true;
}

/* Context parallelism over cp: a rank holds B T / cp positions of every
 * sequence through every layer, the load-balanced chunks of Megatron-Core
 * (the sequence cut into 2 cp chunks, rank r holding chunks r and
 * 2 cp - 1 - r, so a causal mask gives every rank as much attention work),
 * so the sequence must divide by 2 cp. Its layers are SP's (token-local
 * embeddings, norms and LM heads, pre-norm transformer layers), and the
 * blocks have no dropout: attention dropout inside ring attention is not
 * built. */
bool graph_cp_splits(const Graph *g, int cp) {
    if (cp < 2 || !graph_sp_splits(g, 1)) return false;
    for (int i = 0; i < g->n_layers; i++) {
        const Layer *l = g->layers[i];
        if (l->seq % (2 * (int64_t)cp) || (layer_runtime_base_kind(l->kind) == GRT_BLOCK && l->dropout > 0)) return false;
    }
    return true;
}

/* Ulysses over u (with TP tp): token-local layers (embedding, norm, LM head)
 * take T / u of each sample's tokens; a transformer layer (not a windowed
 * one, whose windows are the sequence's, nor cross-attention's, whose keys
 * are another stack's) gives each rank heads / (tp u) and kv_heads / (tp u)
 * of every token inside attention. Pooling heads and patch embeddings are
 * not token-local in galvc's runtime, so they take none; nor do layers with
 * dropout (its masks are keyed on whole sequences' positions) or token types. */
bool layer_ulysses_splits(const Layer *l, int tp, int u) {
    if (u <= 1) return true;
    if (tp < 1 || l->seq % u || l->dropout > 0 || l->types) return false; /* dropout's masks and token types: whole sequences' */
    int k = layer_runtime_base_kind(l->kind);
    if (k == GRT_BLOCK)
        return (l->kind == LAYER_ENCODER || l->kind == LAYER_DECODER) && !l->window &&
               l->heads % ((int64_t)tp * u) == 0 && l->kv_heads % ((int64_t)tp * u) == 0;
    return (k == GRT_EMBEDDING && l->kind == LAYER_EMBEDDING) || k == GRT_NORM ||
           (k == GRT_HEAD && l->kind == LAYER_LM_HEAD);
}

/* Ulysses over u in every layer of g (a T5 model's stream rows are not one sequence's tokens). */
bool graph_ulysses_splits(const Graph *g, int tp, int u) {
    if (u > 1 && graph_t5_cross(g) >= 0) return false;
    for (int i = 0; i < g->n_layers; i++)
        if (!layer_ulysses_splits(g->layers[i], tp, u)) return false;
    return true;
}

/* Does the emitted program run Ulysses for this spec (runtime/ulysses.c,
 * reshard.c)? On CPU ranks (not yet on the CUDA target). */
bool runtime_runs_ulysses(const Spec *spec) { return spec->host_target; }

/* Does the search offer Ulysses? Where the program runs it (the search
 * tries it only where samples run out: passes/search.c's ulysses_tried). */
bool search_offers_ulysses(const Spec *spec) { return runtime_runs_ulysses(spec); }

/* Does a count fit the runtime's int sizes, with room for their rounding up? */
static bool fits(int64_t n) { return n >= 0 && n < (int64_t)1 << 30; }

/* A T5 model's layer: the stream's rows (every layer), its stack's buckets
 * and whether it holds their table (a block), the rows it normalizes (a
 * norm: the encoder's before the first cross_decoder), the tied head's
 * scale C^-1/2 (Hugging Face's T5ForConditionalGeneration). */
static void t5_spec(const Graph *g, const Layer *l, GrtLayerSpec *s) {
    int cross = graph_t5_cross(g), enc = t5_stack_first(g, 0);
    const Layer *x = g->layers[cross];
    s->te = (int)x->enc_seq, s->td = (int)x->seq;
    s->tr = enc >= 0 ? grt_t5_table_rows((int)x->rel_buckets, (int)x->heads, (int)l->hidden) : 0;
    if (s->kind == GRT_BLOCK) {
        s->buckets = (int)g->layers[t5_stack_first(g, l->index)]->rel_buckets;
        s->rel_own = l->rel_buckets > 0, s->cross = l->kind == LAYER_CROSS_DECODER;
    }
    if (s->kind == GRT_NORM) s->part = l->index < cross ? 1 : 2;
    if (s->kind == GRT_HEAD && l->tied) s->head_scale = 1.0f / sqrtf((float)l->hidden);
}

/* Layer l of graph g as the program declares it to the runtime (full sizes;
 * rotary positions when the model's embedding has them); l is of a kind the
 * runtime has (layer_runtime_base_kind is not -1). False when a size is too
 * large for the runtime. */
bool layer_runtime_spec(const Graph *g, const Layer *l, GrtLayerSpec *s) {
    if (!fits(l->hidden) || !fits(l->vocab) || !fits(l->positions) || !fits(l->heads) || !fits(l->kv_heads) ||
        !fits(l->head_dim) || !fits(l->ffn) || !fits(l->classes) || !fits(l->types) || !fits(l->image) ||
        !fits(l->channels) || !fits(l->channels * l->image * l->image))
        return false;
    int k = layer_runtime_base_kind(l->kind);
    const Layer *first = g->n_layers ? g->layers[0] : NULL;
    *s = (GrtLayerSpec){.kind = (GrtLayerKind)k, .name = l->name, .C = (int)l->hidden, .eps = (float)l->eps};
    if (k == GRT_EMBEDDING || k == GRT_BLOCK || k == GRT_NORM) s->dropout = (float)l->dropout;
    switch (k) {
    case GRT_EMBEDDING:
        s->V = (int)l->vocab;
        s->positions = l->pos == POS_LEARNED ? (int)l->positions : 0;
        s->types = (int)l->types;
        break;
    case GRT_BLOCK:
        s->H = (int)l->heads, s->KVH = (int)l->kv_heads, s->hd = (int)l->head_dim, s->F = (int)l->ffn;
        s->causal = l->causal, s->pre_norm = l->pre_norm, s->bias = l->bias;
        s->rms = l->norm == NORM_RMSNORM, s->swiglu = l->act == ACT_SWIGLU;
        s->rope = first && first->kind == LAYER_EMBEDDING && first->pos == POS_ROTARY;
        s->rope_theta = 10000.0f;
        s->window = (int)l->window, s->shift = l->shift;
        break;
    case GRT_NORM: s->rms = l->kind == LAYER_RMSNORM, s->bias = l->kind == LAYER_LAYERNORM && l->bias; break;
    case GRT_HEAD: s->V = (int)l->vocab, s->tied = l->tied; break;
    case GRT_PATCH:
        s->image = (int)l->image, s->patch = (int)l->patch, s->channels = (int)l->channels, s->plain = !l->cls_token;
        break;
    case GRT_CLASSIFIER: s->V = (int)l->classes, s->pool_mean = l->pool == POOL_MEAN, s->pooler = l->pooler; break;
    case GRT_MERGE: break;
    }
    if (graph_t5_cross(g) >= 0) t5_spec(g, l, s); /* T5's layers read the stream's rows (galvrt_sizes.h) */
    /* the tokens it reads, where they are not the model's first layer's (past a patch merging) */
    else if (first && k != GRT_EMBEDDING && k != GRT_PATCH && l->seq != first->seq) s->T = (int)l->seq;
    return true;
}

int spec_gemm16(const Spec *spec) {
    if (!spec->train || spec->train->precision != PREC_BF16) return 0;
    return spec->host_target ? GRT_GEMM16_WIDE : GRT_GEMM16_BITS;
}

/* Self-attention's score and context products in layer l's forward FLOPs per
 * sample at l->seq: 4 s^2 heads head_dim (passes/shape.c); 0 where that
 * exceeds them (not a plain block). */
double layer_core_flops(const Layer *l) {
    double s0 = (double)l->seq, quad = 4.0 * s0 * s0 * (double)l->heads * (double)l->head_dim;
    return quad > (double)l->fwd_flops ? 0 : quad;
}

/* Forward FLOPs of layer l on one sample of `seq` tokens. The shape pass
 * gives them at l->seq; self-attention's score and context products
 * (4 s^2 heads head_dim, passes/shape.c) grow with the square of the
 * sequence and the rest (projections, MLP) linearly. A cross_decoder's
 * attention over the encoder is taken as linear too: exact when the encoder
 * length is fixed, close otherwise. At l->seq no scaling happens. */
static double flops_at(const Layer *l, double seq) {
    double s0 = (double)l->seq, ratio = seq / s0;
    double quad = layer_core_flops(l);
    double lin = (double)l->fwd_flops - quad;
    return lin * ratio + quad * ratio * ratio;
}

/* The work a profile's fit of `kind` divides by its rate (ir.h). */
double layer_fit_work(const Layer *l, ProfileLayer kind, double samples, double seq, int tp, bool backward) {
    if (l->seq <= 0) return 0;
    if (kind == PROFILE_LAYER_BLOCK || kind == PROFILE_LAYER_HEAD)
        return (backward ? 2 : 1) * flops_at(l, seq) * samples / tp;
    return 2.0 * samples * seq * (double)l->hidden * 4;
}
