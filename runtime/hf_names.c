/* hf_names.c — the model as Hugging Face names it, and --dump: every whole
 * parameter tensor gathered to rank 0 over its layer's TP and ZeRO-3 groups
 * and sent from its stage, then written either as --dump's plain records or
 * as a safetensors file under HF names (--export-safetensors); and such a
 * file read back, checked against the model and cut to every rank's shards
 * (--init-safetensors). The names depend on the model's layers only, so
 * they live in the runtime, not in every emitted program.
 *
 * --export-safetensors writes the whole model under the names Hugging Face
 * gives it, and --init-safetensors reads such a file back. The family comes
 * from the layers: RMSNorm + SwiGLU blocks are LLaMA's (LlamaForCausalLM),
 * bidirectional or post-norm blocks BERT's (BertModel), anything else GPT-2's
 * (GPT2Model). Our tensors map onto theirs as follows:
 *  - GPT-2's Conv1D weights are (in, out): c_attn, attn.c_proj, mlp.c_fc and
 *    mlp.c_proj are our (OC, C) weights transposed;
 *  - our fused QKV rows [Q heads | K heads | V heads] split into q_proj,
 *    k_proj, v_proj (LLaMA) or query, key, value (BERT); our SwiGLU up rows
 *    [gate | up] into gate_proj and up_proj;
 *  - our rotary embedding turns pairs (2i, 2i + 1) of a head (Meta's
 *    layout), HF's LLaMA pairs (i, i + hd/2): q_proj and k_proj rows are
 *    permuted per head as HF's convert_llama_weights_to_hf.py does;
 *  - a tied head has no tensor (the file's table is the embedding's);
 *  - a tensor without an HF counterpart keeps a name of ours,
 *    "galvc.LAYER.TENSOR" (a GPT-2 or LLaMA norm before the first block, a
 *    BERT norm after the last); a model without BERT's token types or
 *    pooler has none written, and none required on reading;
 *  - ViT (a model that starts with a patch embedding) takes
 *    ViTForImageClassification's names: the projection is the Conv2d weight
 *    (C, channels, patch, patch), the class token (1, 1, C) and positions
 *    (1, T, C), the same data row-major; blocks "layernorm_before",
 *    "attention.attention.query", ...; the final norm "layernorm";
 *  - Swin (a model that starts with a plain patch embedding) takes
 *    SwinForImageClassification's: "embeddings.norm" after the projection,
 *    blocks "encoder.layers.STAGE.blocks.BLOCK." + "layernorm_before",
 *    "attention.self.query", ..., the bias table
 *    "attention.self.relative_position_bias_table" ((2 window - 1)^2,
 *    heads: ours (heads, entries) transposed), a patch merging the stage's
 *    "downsample.norm" and "downsample.reduction"; the final norm
 *    "layernorm" (HF's relative_position_index buffers are not parameters:
 *    not written, rebuilt by HF on loading);
 *  - under a classifier head every name but the head's takes the base
 *    model's prefix, "vit.", "swin." or "bert." (BertForSequenceClassification:
 *    its pooler is "bert.pooler.dense"), the head "classifier.weight";
 *  - T5 (a model with cross-attention) takes T5ForConditionalGeneration's:
 *    "shared.weight", each stack's blocks "encoder.block.J.layer.0.
 *    SelfAttention.q" ... (the decoder's cross-attention "layer.1.
 *    EncDecAttention", its MLP "layer.2.DenseReluDense.wi"), the stack's
 *    first block's "relative_attention_bias" (buckets, heads), the stacks'
 *    "final_layer_norm"; the tied head has none. */
#include "state_io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TAG_TENSOR = 1 }; /* a whole tensor sent to rank 0 (after training: no other message in flight) */

typedef enum { NAMES_GPT2, NAMES_LLAMA, NAMES_BERT, NAMES_VIT, NAMES_SWIN, NAMES_T5 } Naming;

/* One HF tensor: rows [r0, r0 + rows) of our tensor k of layer i (a vector
 * counts as rows of one element), transposed (GPT-2's Conv1D) or with each
 * of rope_heads heads' rows permuted from our rotary layout to HF's. */
typedef struct HfTensor {
    char name[160];
    int layer, k;
    int64_t r0, rows, cols; /* cols: 1 for a vector */
    int ndim, transpose, rope_heads, hd;
    int64_t shape[4]; /* ndim > 2: HF's shape of the same row-major data (ViT's Conv2d weight, tokens) */
} HfTensor;

/* Every HF tensor of a model, as hf_tensors lists them. */
typedef struct HfList {
    const GrtProgram *p;
    Naming nm;
    const char *prefix; /* before every name but the classifier's: "bert." or "vit." with a head on top */
    HfTensor *t; /* [hf_max(p)] */
    int n;
} HfList;

/* The most HF tensors a model of n_layers layers maps to. */
static int hf_max(const GrtProgram *p) { return p->n_layers * 24 + 8; }

/* The naming family of this model. */
static Naming naming(const GrtProgram *p) {
    if (p->spec[0].kind == GRT_PATCH) return p->spec[0].plain ? NAMES_SWIN : NAMES_VIT;
    if (p->spec[0].te) return NAMES_T5;
    for (int i = 0; i < p->n_layers; i++) {
        const GrtLayerSpec *s = &p->spec[i];
        if (s->kind != GRT_BLOCK) continue;
        if (s->rms && s->swiglu) return NAMES_LLAMA;
        if (!s->causal || !s->pre_norm) return NAMES_BERT;
    }
    return NAMES_GPT2;
}

/* The prefix of the base model's names under a classification head
 * (ViTForImageClassification, BertForSequenceClassification), or "". */
static const char *name_prefix(const GrtProgram *p, Naming nm) {
    if (nm == NAMES_VIT) return "vit.";
    if (nm == NAMES_SWIN) return "swin.";
    return nm == NAMES_BERT && p->spec[p->n_layers - 1].kind == GRT_CLASSIFIER ? "bert." : "";
}

/* Add an HF tensor to the list. */
static void hf_add(HfList *L, const char *name, int i, int k, int64_t r0, int64_t rows, int64_t cols, int transpose,
                   int rope_heads, int hd) {
    HfTensor *h = &L->t[L->n++];
    int head = !strncmp(name, "classifier.", 11) || !strncmp(name, "galvc.", 6);
    snprintf(h->name, sizeof h->name, "%s%s", head ? "" : L->prefix, name);
    h->layer = i, h->k = k, h->r0 = r0, h->rows = rows, h->cols = cols;
    h->ndim = cols == 1 && rows > 0 && (k != 1 || L->p->spec[i].kind != GRT_EMBEDDING) ? 1 : 2;
    h->transpose = transpose, h->rope_heads = rope_heads, h->hd = hd;
}

/* GPT-2's name for block tensor tn (rows x cols, w: "weight" or "bias"): h.BLOCK.NAME.w, Conv1D weights transposed. */
static void hf_block_gpt2(HfList *L, int i, int k, const char *tn, int block, int64_t rows, int64_t cols,
                          const char *w) {
    int qkv = !strncmp(tn, "attn.qkv", 8), up = !strncmp(tn, "mlp.up", 6);
    const char *hf = !strncmp(tn, "ln1", 3)        ? "ln_1"
                     : !strncmp(tn, "ln2", 3)      ? "ln_2"
                     : qkv                         ? "attn.c_attn"
                     : !strncmp(tn, "attn.out", 8) ? "attn.c_proj"
                     : up                          ? "mlp.c_fc"
                                                   : "mlp.c_proj";
    char name[160];
    snprintf(name, sizeof name, "h.%d.%s.%s", block, hf, w);
    hf_add(L, name, i, k, 0, rows, cols, cols > 1 && strncmp(tn, "ln", 2) != 0, 0, 0);
}

/* LLaMA's, BERT's or ViT's layer prefix. */
static const char *hf_layers(Naming nm) { return nm == NAMES_LLAMA ? "model.layers" : "encoder.layer"; }

/* Give the last tensor added HF's shape of ndim dimensions (the same data, row-major). */
static void hf_reshape(HfList *L, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    HfTensor *h = &L->t[L->n - 1];
    h->ndim = ndim, h->shape[0] = d0, h->shape[1] = d1, h->shape[2] = d2, h->shape[3] = d3;
}

/* LLaMA's or BERT's three tensors cut from our fused QKV rows; q and k rows permuted for rotary. */
static void hf_block_qkv(HfList *L, int i, int k, int block, int64_t cols, const char *w) {
    const GrtLayerSpec *s = &L->p->spec[i];
    const char *parts[3][3] = {{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"},
                               {"attention.self.query", "attention.self.key", "attention.self.value"},
                               {"attention.attention.query", "attention.attention.key", "attention.attention.value"}};
    int64_t q = (int64_t)s->H * s->hd, kv = (int64_t)s->KVH * s->hd;
    int64_t at[3] = {0, q, q + kv}, len[3] = {q, kv, kv};
    int heads[3] = {s->rope ? s->H : 0, s->rope ? s->KVH : 0, 0};
    for (int p = 0; p < 3; p++) {
        char name[160];
        snprintf(name, sizeof name, "%s.%d.%s.%s", hf_layers(L->nm), block,
                 parts[L->nm == NAMES_VIT ? 2 : L->nm == NAMES_BERT][p], w);
        hf_add(L, name, i, k, at[p], len[p], cols, 0, heads[p], s->hd);
    }
}

/* LLaMA's or BERT's two tensors cut from our SwiGLU up rows [gate | up]. */
static void hf_block_gate_up(HfList *L, int i, int k, int block, int64_t cols, const char *w) {
    const GrtLayerSpec *s = &L->p->spec[i];
    const char *parts[2] = {"mlp.gate_proj", "mlp.up_proj"};
    for (int p = 0; p < 2; p++) {
        char name[160];
        snprintf(name, sizeof name, "%s.%d.%s.%s", hf_layers(L->nm), block,
                 L->nm == NAMES_LLAMA ? parts[p]
                 : p                  ? "intermediate.up"
                                      : "intermediate.gate",
                 w);
        hf_add(L, name, i, k, p * (int64_t)s->F, s->F, cols, 0, 0, 0);
    }
}

/* LLaMA's or BERT's name for any other block tensor tn. */
static void hf_block_other(HfList *L, int i, int k, const char *tn, int block, int64_t rows, int64_t cols,
                           const char *w) {
    int up = !strncmp(tn, "mlp.up", 6);
    const char *llama = !strncmp(tn, "ln1", 3)        ? "input_layernorm"
                        : !strncmp(tn, "ln2", 3)      ? "post_attention_layernorm"
                        : !strncmp(tn, "attn.out", 8) ? "self_attn.o_proj"
                        : up                          ? "mlp.up_proj"
                                                      : "mlp.down_proj";
    const char *bert = !strncmp(tn, "ln1", 3)        ? "attention.output.LayerNorm"
                       : !strncmp(tn, "ln2", 3)      ? "output.LayerNorm"
                       : !strncmp(tn, "attn.out", 8) ? "attention.output.dense"
                       : up                          ? "intermediate.dense"
                                                     : "output.dense";
    /* ViT's layers are pre-norm: layernorm_before and _after (HF's ViTLayer) */
    const char *vit = !strncmp(tn, "ln1", 3) ? "layernorm_before" : !strncmp(tn, "ln2", 3) ? "layernorm_after" : bert;
    char name[160];
    snprintf(name, sizeof name, "%s.%d.%s.%s", hf_layers(L->nm), block,
             L->nm == NAMES_LLAMA ? llama
             : L->nm == NAMES_VIT ? vit
                                  : bert,
             w);
    hf_add(L, name, i, k, 0, rows, cols, 0, 0, 0);
}

/* T5's names of tensor k (rows x cols) of block i: Q, K, V (and the cross-attention's K, V) cut from our
 * fused rows, each stack's blocks numbered from 0. */
static void hf_block_t5(HfList *L, int i, int k, int64_t rows, int64_t cols) {
    const GrtLayerSpec *s = &L->p->spec[i];
    int j = 0, mlp = s->cross ? 2 : 1;
    for (int x = 0; x < i; x++) j += L->p->spec[x].kind == GRT_BLOCK && L->p->spec[x].cross == s->cross;
    int64_t A = (int64_t)s->H * s->hd;
    char at[64], name[160];
    snprintf(at, sizeof at, "%s.block.%d.layer", s->cross ? "decoder" : "encoder", j);
    const char *one = k == GRT_T5_LN1 ? "0.layer_norm" : k == GRT_T5_O ? "0.SelfAttention.o" : k == GRT_T5_REL ? "0.SelfAttention.relative_attention_bias" : k == GRT_T5_LNC ? "1.layer_norm" : k == GRT_T5_CQ ? "1.EncDecAttention.q" : k == GRT_T5_CO ? "1.EncDecAttention.o" : NULL;
    if (one) {
        snprintf(name, sizeof name, "%s.%s.weight", at, one);
        hf_add(L, name, i, k, 0, rows, cols, 0, 0, 0);
    } else if (k == GRT_T5_LN2 || k == GRT_T5_WI || k == GRT_T5_WO) {
        snprintf(name, sizeof name, "%s.%d.%s.weight", at, mlp,
                 k == GRT_T5_LN2 ? "layer_norm" : k == GRT_T5_WI ? "DenseReluDense.wi" : "DenseReluDense.wo");
        hf_add(L, name, i, k, 0, rows, cols, 0, 0, 0);
    } else { /* Q K V, or the cross-attention's K V */
        const char *parts = k == GRT_T5_QKV ? "qkv" : "kv";
        for (int p = 0; parts[p]; p++) {
            snprintf(name, sizeof name, "%s.%s.%c.weight", at, k == GRT_T5_QKV ? "0.SelfAttention" : "1.EncDecAttention",
                     parts[p]);
            hf_add(L, name, i, k, p * A, A, cols, 0, 0, 0);
        }
    }
}

/* Swin's stage of layer i (the patch mergings before it) and, for a block,
 * its place in the stage (the blocks since the last merging). */
static void swin_place(const GrtProgram *p, int i, int *stage, int *block) {
    *stage = *block = 0;
    for (int j = 0; j < i; j++) {
        if (p->spec[j].kind == GRT_MERGE) ++*stage, *block = 0;
        if (p->spec[j].kind == GRT_BLOCK) ++*block;
    }
}

/* Swin's names for block i's tensor k (rows x cols): encoder.layers.S.blocks.B.NAME.w. */
static void hf_block_swin(HfList *L, int i, int k, const char *tn, int64_t rows, int64_t cols, const char *w) {
    const GrtLayerSpec *s = &L->p->spec[i];
    int stage, block;
    swin_place(L->p, i, &stage, &block);
    char at[64], name[160];
    snprintf(at, sizeof at, "encoder.layers.%d.blocks.%d", stage, block);
    if (!strncmp(tn, "attn.qkv", 8)) { /* [Q | K | V] rows */
        const char *parts[3] = {"query", "key", "value"};
        for (int p = 0; p < 3; p++) {
            snprintf(name, sizeof name, "%s.attention.self.%s.%s", at, parts[p], w);
            hf_add(L, name, i, k, p * (int64_t)s->H * s->hd, (int64_t)s->H * s->hd, cols, 0, 0, 0);
        }
        return;
    }
    if (!strcmp(tn, "attn.rel_table")) { /* ours (H, entries), HF's (entries, H) */
        snprintf(name, sizeof name, "%s.attention.self.relative_position_bias_table", at);
        hf_add(L, name, i, k, 0, rows, cols, 1, 0, 0);
        return;
    }
    const char *hf = !strncmp(tn, "ln1", 3)        ? "layernorm_before"
                     : !strncmp(tn, "ln2", 3)      ? "layernorm_after"
                     : !strncmp(tn, "attn.out", 8) ? "attention.output.dense"
                     : !strncmp(tn, "mlp.up", 6)   ? "intermediate.dense"
                                                   : "output.dense";
    snprintf(name, sizeof name, "%s.%s.%s", at, hf, w);
    hf_add(L, name, i, k, 0, rows, cols, 0, 0, 0);
}

/* The HF tensors cut from tensor k (rows x cols) of block i, the model's block-th. */
static void hf_block(HfList *L, int i, const GrtLayer *l, int k, int block, int64_t rows, int64_t cols, const char *w) {
    const char *tn = l->tensors[k].name;
    if (L->nm == NAMES_T5)
        hf_block_t5(L, i, k, rows, cols);
    else if (L->nm == NAMES_SWIN)
        hf_block_swin(L, i, k, tn, rows, cols, w);
    else if (L->nm == NAMES_GPT2)
        hf_block_gpt2(L, i, k, tn, block, rows, cols, w);
    else if (!strncmp(tn, "attn.qkv", 8))
        hf_block_qkv(L, i, k, block, cols, w);
    else if (!strncmp(tn, "mlp.up", 6) && L->p->spec[i].swiglu)
        hf_block_gate_up(L, i, k, block, cols, w);
    else
        hf_block_other(L, i, k, tn, block, rows, cols, w);
}

/* The HF tensor of tensor k (rows x cols) of layer i, not a block (blocks_seen: it comes after one). */
static void hf_layer(HfList *L, int i, const GrtLayer *l, int k, int blocks_seen, int64_t rows, int64_t cols,
                     const char *w) {
    const GrtLayerSpec *s = &L->p->spec[i];
    Naming nm = L->nm;
    char name[160];
    switch (s->kind) {
    case GRT_EMBEDDING: {
        if (nm == NAMES_T5) { /* the table both stacks and the tied head share */
            hf_add(L, "shared.weight", i, k, 0, rows, cols, 0, 0, 0);
            break;
        }
        const char *names[3][3] = {{"wte.weight", "wpe.weight", "galvc.wtt.weight"},
                                   {"model.embed_tokens.weight", "model.embed_positions.weight", "galvc.wtt.weight"},
                                   {"embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
                                    "embeddings.token_type_embeddings.weight"}};
        hf_add(L, names[nm == NAMES_VIT ? NAMES_BERT : nm][k], i, k, 0, rows, cols, 0, 0, 0);
        break;
    }
    case GRT_PATCH: { /* HF's ViTEmbeddings: the Conv2d (C, ch, p, p), cls_token (1, 1, C), positions (1, T, C) */
        const char *names[4] = {"embeddings.patch_embeddings.projection.weight",
                                "embeddings.patch_embeddings.projection.bias", "embeddings.cls_token",
                                "embeddings.position_embeddings"};
        hf_add(L, names[k], i, k, 0, rows, cols, 0, 0, 0);
        if (k == 0) hf_reshape(L, 4, s->C, s->channels, s->patch, s->patch);
        if (k == 2) hf_reshape(L, 3, 1, 1, s->C, 0);
        if (k == 3) hf_reshape(L, 3, 1, rows, cols, 0);
        break;
    }
    case GRT_CLASSIFIER: { /* the class projection; BERT's pooler (BertPooler's dense) */
        const char *names[4] = {"classifier.weight", "classifier.bias", "pooler.dense.weight", "pooler.dense.bias"};
        hf_add(L, names[k], i, k, 0, rows, cols, 0, 0, 0);
        break;
    }
    case GRT_NORM:
        if (nm == NAMES_T5)
            snprintf(name, sizeof name, "%s.final_layer_norm.%s", s->part == 1 ? "encoder" : "decoder", w);
        else if (nm == NAMES_SWIN)
            snprintf(name, sizeof name, "%s.%s", blocks_seen ? "layernorm" : "embeddings.norm", w);
        else if (nm == NAMES_VIT && blocks_seen)
            snprintf(name, sizeof name, "layernorm.%s", w);
        else if (nm == NAMES_BERT && !blocks_seen)
            snprintf(name, sizeof name, "embeddings.LayerNorm.%s", w);
        else if (nm == NAMES_GPT2 && blocks_seen)
            snprintf(name, sizeof name, "ln_f.%s", w);
        else if (nm == NAMES_LLAMA && blocks_seen)
            snprintf(name, sizeof name, "model.norm.%s", w);
        else
            snprintf(name, sizeof name, "galvc.%s.%s", s->name, l->tensors[k].name);
        hf_add(L, name, i, k, 0, rows, cols, 0, 0, 0);
        break;
    case GRT_HEAD:
        hf_add(L, nm == NAMES_BERT ? "cls.predictions.decoder.weight" : "lm_head.weight", i, k, 0, rows, cols, 0, 0, 0);
        break;
    case GRT_MERGE: { /* SwinPatchMerging, the downsample closing the stage before it */
        int stage, block;
        swin_place(L->p, i, &stage, &block);
        snprintf(name, sizeof name, "encoder.layers.%d.downsample.%s", stage, l->tensors[k].name);
        hf_add(L, name, i, k, 0, rows, cols, 0, 0, 0);
        break;
    }
    case GRT_BLOCK: break;
    }
}

/* Every HF tensor of the model, in our layer and tensor order (the order the file is written in), into L (free L->t).
 */
static void hf_tensors(HfList *L, const GrtProgram *p) {
    *L = (HfList){p, naming(p), name_prefix(p, naming(p)), calloc((size_t)hf_max(p), sizeof(HfTensor)), 0};
    int block = 0;
    for (int i = 0; i < p->n_layers; i++) {
        GrtLayer l;
        grt_layer_shape(&l, &p->spec[i], 1, 0);
        for (int k = 0; k < l.n_tensors; k++) {
            if (!l.tensors[k].n) continue;
            int64_t rows, cols;
            grt_tensor_shape(&l, k, &rows, &cols);
            if (rows == 1) rows = cols, cols = 1; /* a vector: rows of one element */
            const char *w = strstr(l.tensors[k].name, "bias") ? "bias" : "weight";
            if (p->spec[i].kind == GRT_BLOCK)
                hf_block(L, i, &l, k, block, rows, cols, w);
            else
                hf_layer(L, i, &l, k, block > 0, rows, cols, w);
        }
        if (p->spec[i].kind == GRT_BLOCK) block++;
    }
}

/* HF row r of h as a row of our tensor: the rotary permutation within each head. */
static int64_t our_row(const HfTensor *h, int64_t r) {
    if (!h->rope_heads) return h->r0 + r;
    int64_t head = r / h->hd, j = r % h->hd, half = h->hd / 2;
    return h->r0 + head * h->hd + (j < half ? 2 * j : 2 * (j - half) + 1);
}

/* Between our whole tensor (rows of h->cols floats) and h's data: to_hf, or back. */
static void hf_convert(const HfTensor *h, float *ours, float *hf, int to_hf) {
    for (int64_t r = 0; r < h->rows; r++) {
        float *o = ours + our_row(h, r) * h->cols;
        for (int64_t c = 0; c < h->cols; c++) {
            float *x = h->transpose ? &hf[c * h->rows + r] : &hf[r * h->cols + c];
            if (to_hf)
                *x = o[c];
            else
                o[c] = *x;
        }
    }
}

/* h's shape as HF writes it. */
static GrtStTensor hf_shape(const HfTensor *h) {
    GrtStTensor t = {h->name, h->ndim, {0}};
    if (h->ndim > 2)
        memcpy(t.shape, h->shape, sizeof t.shape);
    else if (h->ndim == 1)
        t.shape[0] = h->rows;
    else if (h->transpose)
        t.shape[0] = h->cols, t.shape[1] = h->rows;
    else
        t.shape[0] = h->rows, t.shape[1] = h->cols;
    return t;
}

/* What for_each_tensor does with a whole tensor on rank 0: tensor k (named name, n floats) of layer i. */
typedef void (*TensorVisit)(void *ctx, int i, int k, const char *name, float *full, size_t n);

/* Tensor k of layer i whole on rank 0 (l: this rank's shard, or rank 0's
 * shadow of a layer it does not hold), gathered over the TP group and sent
 * by its stage's first rank, owner; visited there. */
static void visit_tensor(GrtRun *R, int i, GrtLayer *l, int k, int owner, TensorVisit visit, void *ctx) {
    if (!l->tensors[k].n) return;
    int mine = R->layer[i].on;
    size_t cap = l->tensors[k].n * (size_t)R->p->cut[i].tp + 1, n = l->tensors[k].n;
    float *full = grt_alloc(cap * sizeof(float));
    if (mine && R->layer[i].dp_index == 0) n = grt_layer_gather(l, k, full);
    if (!mine)
        grt_recv(R->world, full, n, owner, TAG_TENSOR);
    else if (R->rank == owner && owner != 0)
        grt_send(R->world, full, n, 0, TAG_TENSOR);
    if (R->rank == 0) visit(ctx, i, k, l->tensors[k].name, full, n);
    grt_free(full, cap * sizeof(float));
}

/* Visit every whole parameter tensor on rank 0, in layer and tensor order:
 * each layer's tensors gathered over its ZeRO-3 and TP groups, sent by its
 * stage's first rank. Collective; visit runs on rank 0 only. */
static void for_each_tensor(GrtRun *R, TensorVisit visit, void *ctx) {
    const GrtProgram *p = R->p;
    for (int i = 0; i < p->n_layers; i++) {
        if (i == p->n_layers - 1 && p->tied_copy) continue; /* the table is the embedding's */
        int owner = p->cut[i].stage * (p->ranks / p->pp), mine = R->layer[i].on;
        if (!mine && R->rank != 0) continue;
        GrtLayer shadow, *l = &shadow; /* rank 0's sizes of a layer it does not hold: one rank's */
        if (mine) {
            if (R->layer[i].zero == 3) grt_zero3_gather(R, i);
            l = &R->layer[i].l;
        } else {
            grt_layer_shape(&shadow, &p->spec[i], 1, 0);
        }
        for (int k = 0; k < l->n_tensors; k++)
            visit_tensor(R, i, l, k, owner, visit, ctx);
    }
}

/* --dump's file, and the names of its layers. */
typedef struct Dump {
    FILE *f;
    const GrtProgram *p;
} Dump;

/* --dump's record of one tensor: "layer tensor count" and the floats. */
static void dump_tensor(void *ctx, int i, int k, const char *name, float *full, size_t n) {
    Dump *d = ctx;
    (void)k;
    fprintf(d->f, "%s %s %zu\n", d->p->spec[i].name, name, n);
    fwrite(full, sizeof(float), n, d->f);
}

/* --dump FILE: every parameter tensor, whole, written by rank 0 as "layer
 * tensor count" lines each followed by the floats, so runs under different
 * plans can be compared with one rank's. */
void grt_dump_params(GrtRun *R, const char *path) {
    Dump d = {R->rank == 0 ? fopen(path, "wb") : NULL, R->p};
    if (grt_failures(R->world, R->rank != 0 || d.f))
        grt_stop_all(R->world, "--dump: cannot write the parameter file", 1);
    for_each_tensor(R, dump_tensor, &d);
    if (grt_failures(R->world, R->rank != 0 || fclose(d.f) == 0))
        grt_stop_all(R->world, "--dump: cannot write the parameter file", 1);
}

/* --export-safetensors in progress: the HF tensors, the next to write, the file. */
typedef struct Export {
    HfList L;
    int next;
    GrtStWriter *w;
} Export;

/* --export-safetensors: one of our tensors becomes the HF tensors cut from it, in order. */
static void export_tensor(void *ctx, int i, int k, const char *name, float *full, size_t n) {
    Export *e = ctx;
    (void)name, (void)n;
    for (; e->next < e->L.n && e->L.t[e->next].layer == i && e->L.t[e->next].k == k; e->next++) {
        const HfTensor *h = &e->L.t[e->next];
        size_t count = (size_t)(h->rows * h->cols);
        float *hf = malloc(count * sizeof(float) + 1);
        hf_convert(h, full, hf, 1);
        grt_st_put(e->w, hf, count);
        free(hf);
    }
}

/* Rank 0: the safetensors file's header, every HF tensor's name and shape; NULL with the reason in err. */
static GrtStWriter *export_create(const HfList *L, const char *path, char *err, size_t errlen) {
    GrtStTensor *shapes = calloc((size_t)L->n + 1, sizeof *shapes);
    for (int j = 0; j < L->n; j++)
        shapes[j] = hf_shape(&L->t[j]);
    const char *family[] = {"gpt2", "llama", "bert", "vit", "swin", "t5"}; /* by Naming */
    const char *meta[] = {"format", "pt", "galvc_model", L->p->model, "galvc_naming", family[L->nm], NULL};
    GrtStWriter *w = grt_st_create(path, shapes, L->n, meta, err, errlen);
    free(shapes);
    return w;
}

/* Stop every rank when any failed (ok == 0) at --export-safetensors, rank 0 saying err. */
static void export_check(GrtRun *R, int ok, const char *err) {
    if (!grt_failures(R->world, ok)) return;
    char msg[1200];
    snprintf(msg, sizeof msg, "--export-safetensors: %s", err);
    grt_stop_all(R->world, msg, 1);
}

/* --export-safetensors FILE: the whole model with HF names, written by rank 0. */
void grt_export_safetensors(GrtRun *R, const char *path) {
    Export e = {0};
    hf_tensors(&e.L, R->p);
    char err[1024] = "";
    if (R->rank == 0) e.w = export_create(&e.L, path, err, sizeof err);
    export_check(R, R->rank != 0 || e.w, err);
    for_each_tensor(R, export_tensor, &e);
    export_check(R, R->rank != 0 || grt_st_finish(e.w, err, sizeof err) == 0, err);
    if (R->rank == 0) printf("exported %d tensors to %s\n", e.L.n, path);
    free(e.L.t);
}

/* --init-safetensors in progress: the file and the HF tensors it must hold. */
typedef struct Import {
    const GrtSafetensors *f;
    HfList L;
} Import;

/* GrtWholeFn for --init-safetensors: our tensor from the HF tensors cut from it; Adam's states start at zero. */
static int whole_from_safetensors(void *ctx, int i, int k, int array, float *whole, char *err, size_t errlen) {
    const Import *im = ctx;
    if (array != GRT_ARR_PARAMS) return 0;
    for (int j = 0; j < im->L.n; j++) {
        const HfTensor *h = &im->L.t[j];
        if (h->layer != i || h->k != k) continue;
        size_t count = (size_t)(h->rows * h->cols);
        float *hf = malloc(count * sizeof(float) + 1);
        if (grt_st_read_f32(im->f, grt_st_find(im->f, h->name), hf, err, errlen) != 0) {
            free(hf);
            return -1;
        }
        hf_convert(h, whole, hf, 0);
        free(hf);
    }
    return 1;
}

/* Names HF files carry that are buffers, not parameters: allowed, ignored. */
static int hf_buffer(const char *name) {
    size_t n = strlen(name);
    const char *ends[] = {".attn.bias", ".attn.masked_bias", "rotary_emb.inv_freq", "position_ids"};
    for (size_t j = 0; j < sizeof ends / sizeof ends[0]; j++) {
        size_t m = strlen(ends[j]);
        if (n >= m && !strcmp(name + n - m, ends[j])) return 1;
    }
    return 0;
}

/* A shape as "a, b" into buf. */
static void shape_text(char *buf, size_t len, int ndim, const int64_t *shape) {
    buf[0] = 0;
    for (int d = 0; d < ndim; d++)
        snprintf(buf + strlen(buf), len - strlen(buf), "%s%lld", d ? ", " : "", (long long)shape[d]);
}

/* Is HF tensor h in f, F32, of its shape? 0 with the reason in err when not. */
static int check_tensor(const GrtSafetensors *f, const HfList *L, const HfTensor *h, const char *path, char *err,
                        size_t errlen) {
    GrtStTensor want = hf_shape(h);
    int at = grt_st_find(f, h->name), ndim;
    const char *dtype;
    const int64_t *shape;
    if (at < 0) {
        snprintf(err, errlen, "%s: no tensor '%s' (this model needs %d tensors, %s names)", path, h->name, L->n,
                 (const char *[]){"GPT-2", "LLaMA", "BERT", "ViT", "Swin", "T5"}[L->nm]);
        return 0;
    }
    grt_st_info(f, at, &dtype, &ndim, &shape);
    int same = ndim == want.ndim;
    for (int d = 0; same && d < ndim; d++)
        same = shape[d] == want.shape[d];
    if (strcmp(dtype, "F32") != 0) {
        snprintf(err, errlen, "%s: tensor '%s' is %s, this model needs F32", path, h->name, dtype);
    } else if (!same) {
        char got[128], need[128];
        shape_text(got, sizeof got, ndim, shape);
        shape_text(need, sizeof need, want.ndim, want.shape);
        snprintf(err, errlen, "%s: tensor '%s' has shape [%s], this model needs [%s]", path, h->name, got, need);
    }
    return !*err;
}

/* The whole file f against the model: every name present, F32, the right
 * shape; no unknown tensor. The first problem's reason into err. */
static void check_file(const GrtSafetensors *f, const HfList *L, const char *path, char *err, size_t errlen) {
    for (int j = 0; j < L->n; j++)
        if (!check_tensor(f, L, &L->t[j], path, err, errlen)) return;
    for (int j = 0; j < grt_st_count(f); j++) {
        const char *name = grt_st_info(f, j, NULL, NULL, NULL);
        int known = hf_buffer(name);
        for (int q = 0; q < L->n && !known; q++)
            known = !strcmp(L->t[q].name, name);
        if (!known) {
            snprintf(err, errlen, "%s: tensor '%s' is not a tensor of this model", path, name);
            return;
        }
    }
}

/* --init-safetensors FILE: every rank checks the whole file against the
 * model (every name present, F32, the right shape; no unknown tensor), then
 * loads its own shards. Any mismatch stops every rank with its name. */
void grt_init_safetensors(GrtRun *R, const char *path) {
    char err[1024] = "", msg[1400];
    GrtSafetensors *f = grt_st_open(path, err, sizeof err);
    Import im = {f, {0}};
    hf_tensors(&im.L, R->p);
    if (f) check_file(f, &im.L, path, err, sizeof err);
    if (grt_failures(R->world, !*err)) { /* every rank read the same file: rank 0 says why */
        snprintf(msg, sizeof msg, "--init-safetensors: %s", err);
        grt_stop_all(R->world, msg, 1);
    }
    int ok = grt_load_model(R, whole_from_safetensors, &im, err, sizeof err);
    if (!ok) grt_rank_says(R->rank, err);
    if (grt_failures(R->world, ok))
        grt_stop_all(R->world, "--init-safetensors: the file could not be read (see above)", 1);
    if (R->rank == 0) printf("initialized from %s (%d tensors)\n", path, im.L.n);
    grt_st_close(f);
    free(im.L.t);
}
