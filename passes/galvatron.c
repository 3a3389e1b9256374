/* galvatron.c — Galvatron's plan file (galvatron_config_*.json, what
 * Hetu-Galvatron's search writes and its runtime reads), both ways: a galvc
 * plan written in it (--emit=galvatron-config) and one read from it
 * (--plan FILE), for galvc's cost model to price.
 *
 * The format: for the transformer layers (encoder, decoder), in model order,
 * comma-separated lists in strings — tp_sizes_enc, tp_consecutive_flags,
 * dp_types_enc (1: ZeRO-3; 0: the file's default_dp_type, "ddp" or "zero2"),
 * use_sp (1: the degree is Ulysses sequence parallelism instead of TP) and
 * checkpoint — then pp_deg with pp_division (transformer layers per stage),
 * global_bsz, chunks (micro-batches) and pipeline_type ("gpipe", or
 * "pipedream_flush": 1F1B). Every other layer (the embedding, the norms
 * outside the blocks, the head) shares one strategy: degree vtp, as TP or,
 * with vsp 1, as Ulysses sequence parallelism; ZeRO-3 with embed_sdp 1 (the runtime
 * reads it as vocab_sdp; both are written). Such a layer runs in the stage of
 * the next transformer layer (the last stage after the last one), never
 * checkpointed, its TP on consecutive ranks. sequence_parallel (Galvatron's
 * and Megatron's switch of that name, one for the whole model) says whether
 * TP runs Megatron-SP; absent, it does, as Megatron-Core's default, where
 * galvc's layers can. What either side cannot say is an error that names
 * the layer and the reason. */
#include "passes.h"

#include "hw/hw.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* Every key galvc reads or writes, in the order Galvatron's search writes them. */
#define GALVATRON_KEYS(X)                                                                                              \
    X(PP_DEG, "pp_deg")                                                                                                \
    X(TP_SIZES, "tp_sizes_enc") X(TP_CONSEC, "tp_consecutive_flags") X(DP_TYPES, "dp_types_enc") X(USE_SP, "use_sp")   \
        X(CHECKPOINT, "checkpoint") X(WORLD_SIZE, "world_size") X(GLOBAL_BSZ, "global_bsz") X(CHUNKS, "chunks")        \
            X(PP_DIVISION, "pp_division") X(PIPELINE_TYPE, "pipeline_type") X(DEFAULT_DP_TYPE, "default_dp_type")      \
                X(VTP, "vtp") X(VSP, "vsp") X(EMBED_SDP, "embed_sdp") X(VOCAB_SDP, "vocab_sdp")                        \
                    X(CP_SIZES, "cp_sizes_enc") X(VCP, "vcp") X(EP_SIZES, "ep_sizes_enc")                              \
                        X(TP_OF_EP_SIZES, "tp_of_ep_sizes_enc") X(SEQ_PAR, "sequence_parallel")

typedef enum GalvKey {
#define X(e, s) KEY_##e,
    GALVATRON_KEYS(X)
#undef X
} GalvKey;

static const char *const key_names[] = {
#define X(e, s) s,
    GALVATRON_KEYS(X)
#undef X
        NULL};

/* How a data-parallel group holds a layer's state, in Galvatron's words
 * (galvatron/utils/strategy_utils.py's DPType). */
#define GALV_DP_TYPES(X) X(DDP, "ddp") X(ZERO2, "zero2") X(ZERO3, "zero3")
typedef enum GalvDp {
    GALV_DP_NONE = -1, /* a galvc kind Galvatron has no name for */
#define X(e, s) GALV_##e,
    GALV_DP_TYPES(X)
#undef X
} GalvDp;

static const char *const dp_names[] = {
#define X(e, s) s,
    GALV_DP_TYPES(X)
#undef X
        NULL};

/* galvc's kind of data parallelism as Galvatron names it (none for ZeRO-1, or ZeRO-3 accumulating once). */
static GalvDp galv_dp_of(const Strategy *s) {
    switch (strategy_zero(s)) {
    case 0: return GALV_DDP;
    case 2: return GALV_ZERO2;
    case 3: return s->zero3_once ? GALV_DP_NONE : GALV_ZERO3; /* Galvatron's ZeRO-3 reduce-scatters each micro-batch */
    }
    return GALV_DP_NONE; /* ZeRO-1 */
}

/* Galvatron's kind into s (every one of them is galvc's too). */
static void galv_dp_into(Strategy *s, GalvDp t) {
    s->sdp = strategy_replicas(s) > 1 && t == GALV_ZERO3;
    s->zero = strategy_replicas(s) > 1 && t == GALV_ZERO2 ? 2 : 0;
}

/* The degree a Galvatron config gives a layer (tp_sizes_enc, vtp): its TP's, or its Ulysses's (use_sp, vsp). */
static int galv_degree(const Strategy *s) { return strategy_ulysses(s) > 1 ? s->ulysses : s->tp; }

/* A transformer layer: one entry of the _enc lists. */
static bool is_block(const Layer *l) {
    return l->kind == LAYER_ENCODER || l->kind == LAYER_DECODER || l->kind == LAYER_CROSS_DECODER;
}

/* A layer under the vocabulary strategy (vtp, vsp, embed_sdp). */
static bool is_vocab(const Layer *l) {
    switch (l->kind) {
    case LAYER_EMBEDDING:
    case LAYER_PATCH_EMBEDDING:
    case LAYER_LAYERNORM:
    case LAYER_RMSNORM:
    case LAYER_LM_HEAD:
    case LAYER_CLASSIFIER: return true;
    default: return false;
    }
}

/* The transformer layer whose stage Galvatron runs layer i in: itself, or
 * the next one (the last one, after the last); -1 when there is none. */
static int galv_anchor(const Graph *g, int i) {
    int last = -1;
    for (int j = 0; j < g->n_layers; j++) {
        if (!is_block(g->layers[j])) continue;
        if (j >= i) return j;
        last = j;
    }
    return last;
}

static int plan_stage(const Plan *p, int i) {
    int k = 0;
    while (k < p->pp - 1 && i >= p->stage_start[k + 1])
        k++;
    return k;
}

/* ---- writing ------------------------------------------------------------------- */

static const char one_strategy[] = "Galvatron gives the embedding, the norms outside the transformer layers and the "
                                   "head one strategy (vtp, vsp, embed_sdp)";

/* Why layer i cannot share the vocabulary strategy of layer ref (or NULL). */
static const char *vocab_mismatch(const Plan *p, int i, int ref) {
    const Strategy *s = &p->layer[i], *r = &p->layer[ref];
    if (!strategy_tp_consecutive(s))
        return "its TP groups are strided, and Galvatron's vocabulary TP is on consecutive ranks";
    if (s->tp != r->tp || s->dp != r->dp || s->sdp != r->sdp || strategy_ulysses(s) != strategy_ulysses(r))
        return one_strategy;
    return NULL;
}

/* Galvatron's degrees and device counts are powers of two. */
static bool pow2(int64_t x) { return x >= 1 && (x & (x - 1)) == 0; }

/* Report every layer of the plan Galvatron's format cannot say; the
 * vocabulary strategy's layer into *vocab (-1: none) and the dp type of
 * the dp_types_enc 0 entries into *dflt. */
static void check_exportable(const Spec *spec, const Plan *p, Diag *d, int *vocab, GalvDp *dflt) {
    const Graph *g = spec->graph;
    int *block_stage = arena_alloc(g->arena, (size_t)g->n_layers * sizeof *block_stage);
    int blocks = 0, dflt_at = -1;
    char b1[96], b2[96];
    for (int i = 0; i < g->n_layers; i++)
        block_stage[i] = plan_stage(p, i), blocks += is_block(g->layers[i]);
    if (!blocks) diag_plain(d, "%s has no encoder or decoder layer, and Galvatron's config lists those", g->name);
    *vocab = -1, *dflt = GALV_DDP;
    for (int i = 0; i < g->n_layers; i++) {
        const Layer *l = g->layers[i];
        const Strategy *s = &p->layer[i];
        if (!is_block(l) && !is_vocab(l)) {
            diag_error(d, l->loc, "%s (layer %d): Galvatron's config has no entry for a standalone %s layer", l->name,
                       i, layer_kind_names[l->kind]);
            continue;
        }
        if (is_vocab(l)) {
            if (*vocab < 0) *vocab = i;
            const char *why = vocab_mismatch(p, i, *vocab);
            if (why == one_strategy)
                diag_error(d, l->loc, "%s (layer %d) runs %s but %s (layer %d) runs %s: %s", l->name, i,
                           strategy_str(b1, sizeof b1, s), g->layers[*vocab]->name, *vocab,
                           strategy_str(b2, sizeof b2, &p->layer[*vocab]), why);
            else if (why)
                diag_error(d, l->loc, "%s (layer %d) runs %s: %s", l->name, i, strategy_str(b1, sizeof b1, s), why);
            int at = galv_anchor(g, i);
            if (at >= 0 && block_stage[at] != block_stage[i])
                diag_error(d, l->loc,
                           "%s (layer %d) runs in pipeline stage %d, but Galvatron runs it with %s (layer %d), "
                           "in stage %d",
                           l->name, i, block_stage[i], g->layers[at]->name, at, block_stage[at]);
        }
        GalvDp t = galv_dp_of(s);
        if (strategy_replicas(s) == 1 || t == GALV_ZERO3) continue;
        if (t == GALV_DP_NONE)
            diag_error(d, l->loc, "%s (layer %d) runs %s, which has no Galvatron dp type", l->name, i,
                       strategy_str(b1, sizeof b1, s));
        else if (dflt_at < 0)
            *dflt = t, dflt_at = i;
        else if (t != *dflt)
            diag_error(d, l->loc,
                       "%s (layer %d) runs %s data parallelism but %s (layer %d) %s: Galvatron's dp type 0 is one "
                       "default_dp_type for every layer",
                       l->name, i, dp_names[t], g->layers[dflt_at]->name, dflt_at, dp_names[*dflt]);
    }
}

/* Whether a plan's strategy fills one field of the _enc lists. */
typedef enum Field { F_TP, F_CONSEC, F_DP_TYPE, F_SP, F_CKPT } Field;

static int field_of(const Strategy *s, Field f) {
    switch (f) {
    case F_TP: return galv_degree(s);
    case F_CONSEC: return strategy_tp_consecutive(s);
    case F_DP_TYPE: return strategy_replicas(s) > 1 && galv_dp_of(s) == GALV_ZERO3;
    case F_SP: return strategy_ulysses(s) > 1;
    case F_CKPT: return s->ckpt;
    }
    return 0;
}

/* "2,2,1,..." over the transformer layers. */
static const char *enc_list(const Graph *g, const Plan *p, Field f) {
    size_t cap = 16 * (size_t)g->n_layers + 1, n = 0;
    char *out = arena_alloc(g->arena, cap);
    out[0] = 0;
    for (int i = 0; i < g->n_layers; i++)
        if (is_block(g->layers[i]))
            n += (size_t)snprintf(out + n, cap - n, "%s%d", n ? "," : "", field_of(&p->layer[i], f));
    return out;
}

/* pp_division: transformer layers per stage. */
static const char *division(const Graph *g, const Plan *p) {
    size_t cap = 16 * (size_t)p->pp + 1, n = 0;
    char *out = arena_alloc(g->arena, cap);
    for (int k = 0; k < p->pp; k++) {
        int count = 0;
        for (int i = p->stage_start[k]; i < p->stage_start[k + 1]; i++)
            count += is_block(g->layers[i]);
        n += (size_t)snprintf(out + n, cap - n, "%s%d", k ? "," : "", count);
    }
    return out;
}

/* The plan's sequence_parallel: 1 when every TP layer runs Megatron-SP, 0
 * when none does, -1 without TP; a mix is an error (one switch). */
static int plan_sp(const Graph *g, const Plan *p, Diag *d) {
    int on = 0, off = 0;
    for (int i = 0; i < g->n_layers; i++) {
        on += strategy_sp(&p->layer[i]);
        off += p->layer[i].tp > 1 && !strategy_sp(&p->layer[i]);
    }
    if (on && off)
        diag_plain(d, "%d layers run TP with Megatron-SP and %d without: Galvatron's sequence_parallel is one switch "
                      "for the whole model", on, off);
    return on ? 1 : off ? 0 : -1;
}

int galvatron_write(FILE *out, const Spec *spec, const Plan *p, int64_t devices, Diag *d) {
    const Graph *g = spec->graph;
    int vocab, errors = d->errors;
    GalvDp dflt;
    if (!pow2(devices)) { /* then some degree is not one */
        diag_plain(d, "%lld devices: Galvatron's config takes power-of-two degrees on a power-of-two device "
                      "count (its search and runtime build only those)", (long long)devices);
        return -1;
    }
    if (p->vpp > 1) {
        diag_plain(d, "an interleaved pipeline (%d chunks a stage): Galvatron's config says GPipe or 1F1B only",
                   p->vpp);
        return -1;
    }
    check_exportable(spec, p, d, &vocab, &dflt);
    int sp = plan_sp(g, p, d);
    if (d->errors > errors) return -1;
    Strategy none = {.pp = p->pp, .tp = 1, .dp = (int)(devices / p->pp), .tp_consec = true};
    const Strategy *v = vocab >= 0 ? &p->layer[vocab] : &none;
    int vsdp = strategy_replicas(v) > 1 && galv_dp_of(v) == GALV_ZERO3;
    json_t *root = json_object();
    const char *lists[] = {[KEY_TP_SIZES] = enc_list(g, p, F_TP),
                           [KEY_TP_CONSEC] = enc_list(g, p, F_CONSEC),
                           [KEY_DP_TYPES] = enc_list(g, p, F_DP_TYPE),
                           [KEY_USE_SP] = enc_list(g, p, F_SP),
                           [KEY_CHECKPOINT] = enc_list(g, p, F_CKPT)};
    json_object_set_new(root, key_names[KEY_PP_DEG], json_integer(p->pp));
    for (int k = KEY_TP_SIZES; k <= KEY_CHECKPOINT; k++)
        json_object_set_new(root, key_names[k], json_string(lists[k]));
    json_object_set_new(root, key_names[KEY_WORLD_SIZE], json_integer(devices));
    json_object_set_new(root, key_names[KEY_GLOBAL_BSZ], json_integer(spec->train->global_batch));
    json_object_set_new(root, key_names[KEY_CHUNKS], json_integer(p->micro_batches));
    json_object_set_new(root, key_names[KEY_PP_DIVISION], json_string(division(g, p)));
    json_object_set_new(root, key_names[KEY_PIPELINE_TYPE],
                        json_string(p->schedule == SCHED_GPIPE ? "gpipe" : "pipedream_flush"));
    json_object_set_new(root, key_names[KEY_DEFAULT_DP_TYPE], json_string(dp_names[dflt]));
    json_object_set_new(root, key_names[KEY_VTP], json_integer(galv_degree(v)));
    json_object_set_new(root, key_names[KEY_VSP], json_integer(strategy_ulysses(v) > 1));
    json_object_set_new(root, key_names[KEY_EMBED_SDP], json_integer(vsdp));
    json_object_set_new(root, key_names[KEY_VOCAB_SDP], json_integer(vsdp));
    if (sp >= 0) json_object_set_new(root, key_names[KEY_SEQ_PAR], json_integer(sp));
    int rc = json_dumpf(root, out, JSON_INDENT(4) | JSON_PRESERVE_ORDER);
    fputc('\n', out);
    json_decref(root);
    return rc;
}

/* ---- reading ------------------------------------------------------------------- */

enum { MAX_CONFIG_BYTES = 16 << 20, REQUIRED = -1 };

typedef struct Reader {
    Arena *a;
    Diag *d;
    const SourceFile *src;
    json_t *root;
    const Spec *spec;
    int64_t devices;
    int errors;          /* the diagnostics' count before this file */
    int blocks;          /* transformer layers */
    const Layer **block; /* [blocks] */
} Reader;

static Loc key_loc(const Reader *r, GalvKey k) {
    long value;
    return json_member_loc(r->src, key_names[k], &value);
}

/* Where entry `index` of the list in key k's string is (the key's place
 * when the text spells the string with escapes). */
static Loc entry_loc(const Reader *r, GalvKey k, int index) {
    long value;
    Loc at = json_member_loc(r->src, key_names[k], &value);
    const char *t = r->src->text;
    if (value < 0 || t[value] != '"') return at;
    long i = value + 1;
    for (int e = 0; e < index; i++) {
        if (t[i] == '"' || t[i] == '\\' || t[i] == '\n') return at;
        if (t[i] == ',') e++;
    }
    long end = i;
    while (t[end] && t[end] != ',' && t[end] != '"' && t[end] != '\\' && t[end] != '\n')
        end++;
    return json_offset_loc(r->src, i, end > i ? (size_t)(end - i) : 1);
}

/* "decoder.3, layer 4": who entry `index` of an _enc list is. */
static const char *who(const Reader *r, int index) {
    return arena_printf(r->a, "%s, layer %d", r->block[index]->name, r->block[index]->index);
}

/* An integer (or true/false as 1/0) at key k into *out; absent: fallback,
 * or an error when REQUIRED. */
static bool read_int(Reader *r, GalvKey k, int64_t fallback, int64_t *out) {
    json_t *v = json_object_get(r->root, key_names[k]);
    *out = fallback;
    if (!v && fallback == REQUIRED) {
        diag_error(r->d, (Loc){.file = r->src}, "no '%s': a Galvatron config gives it", key_names[k]);
        return false;
    }
    if (!v) return true;
    if (json_is_boolean(v)) return *out = json_is_true(v), true;
    if (json_is_integer(v)) return *out = json_integer_value(v), true;
    diag_error(r->d, key_loc(r, k), "'%s' must be a whole number", key_names[k]);
    return false;
}

/* The string at key k, or fallback when absent (NULL: required). */
static const char *read_string(Reader *r, GalvKey k, const char *fallback) {
    json_t *v = json_object_get(r->root, key_names[k]);
    if (!v && !fallback) diag_error(r->d, (Loc){.file = r->src}, "no '%s': a Galvatron config gives it", key_names[k]);
    if (!v) return fallback;
    if (json_is_string(v)) return json_string_value(v);
    diag_error(r->d, key_loc(r, k), "'%s' must be a string", key_names[k]);
    return NULL;
}

/* The comma-separated whole numbers of key k, n of them (n < 0: any
 * number, counted into *count); absent: n copies of fallback, or an error
 * when REQUIRED. NULL after an error. */
static int64_t *read_list(Reader *r, GalvKey k, int n, int64_t fallback, int *count, const char *what) {
    const char *s = read_string(r, k, fallback == REQUIRED ? NULL : "");
    if (!s) return NULL;
    json_t *v = json_object_get(r->root, key_names[k]);
    int have = v ? 1 : 0;
    for (const char *c = s; v && *c; c++)
        have += *c == ',';
    if (v && n >= 0 && have != n) {
        diag_error(r->d, key_loc(r, k), "'%s' has %d entries, but %s has %d %s", key_names[k], have,
                   r->spec->graph->name, n, what);
        return NULL;
    }
    if (!v) have = n;
    int64_t *out = arena_alloc(r->a, (size_t)(have + 1) * sizeof *out);
    const char *c = s;
    for (int e = 0; e < have; e++) {
        size_t len = strcspn(c, ",");
        if (!v)
            out[e] = fallback;
        else if (len < 1 || len > 9 || strspn(c, "0123456789") != len) {
            diag_error(r->d, entry_loc(r, k, e), "entry %d of '%s' is \"%.*s\", not a whole number", e + 1,
                       key_names[k], (int)(len < 40 ? len : 40), c);
            return NULL;
        } else
            out[e] = strtoll(c, NULL, 10);
        c += len + (c[len] == ',');
    }
    if (count) *count = have;
    return out;
}

/* The name at key k among names[] (index), or fallback when absent; -1 after an error. */
static int read_name(Reader *r, GalvKey k, const char *const *names, const char *fallback, const char *want) {
    const char *s = read_string(r, k, fallback);
    if (!s) return -1;
    for (int i = 0; names[i]; i++)
        if (strcmp(s, names[i]) == 0) return i;
    diag_error(r->d, key_loc(r, k), "'%s' is \"%.40s\", not %s", key_names[k], s, want);
    return -1;
}

/* Every key is one galvc knows: Galvatron's own file only has these. */
static bool known_keys(Reader *r) {
    const char *key;
    json_t *v;
    bool ok = true;
    json_object_foreach(r->root, key, v) {
        bool known = false;
        for (int i = 0; key_names[i]; i++)
            known |= strcmp(key, key_names[i]) == 0;
        if (known) continue;
        long value;
        const char *near = diag_suggest(key, key_names, -1);
        diag_error(r->d, json_member_loc(r->src, key, &value), "unknown key '%.60s' in a Galvatron config%s%s%s", key,
                   near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "");
        ok = false;
    }
    return ok;
}

/* Lists of Galvatron features galvc lacks must hold only 1s (their off value). */
static void read_ones(Reader *r, GalvKey k, const char *what) {
    int64_t *x = read_list(r, k, r->blocks, 1, NULL, "transformer layers");
    for (int e = 0; x && e < r->blocks; e++)
        if (x[e] != 1)
            diag_error(r->d, entry_loc(r, k, e), "entry %d of '%s' (%s) is %lld: galvc has no %s", e + 1, key_names[k],
                       who(r, e), (long long)x[e], what);
}

/* pp_deg, and the transformer layers' stages from pp_division (or
 * Galvatron's default split: equal, the last stage taking the rest). */
static int *read_stages(Reader *r, int64_t *pp) {
    if (!read_int(r, KEY_PP_DEG, REQUIRED, pp)) return NULL;
    if (!pow2(*pp) || *pp > r->devices || *pp > r->blocks) {
        diag_error(r->d, key_loc(r, KEY_PP_DEG),
                   "'pp_deg' is %lld: a Galvatron config takes a power of two from 1 to %lld (the "
                   "devices and the transformer layers)",
                   (long long)*pp, (long long)(r->devices < r->blocks ? r->devices : r->blocks));
        return NULL;
    }
    int n = 0;
    bool given = json_object_get(r->root, key_names[KEY_PP_DIVISION]) != NULL;
    int64_t *div = given ? read_list(r, KEY_PP_DIVISION, -1, 0, &n, "stages") : NULL, sum = 0;
    bool ok = div && n == *pp;
    for (int k = 0; ok && k < n; k++)
        ok = div[k] >= 1, sum += div[k];
    ok = ok && sum == r->blocks;
    if (div && !ok)
        diag_error(r->d, key_loc(r, KEY_PP_DIVISION),
                   "'pp_division' must give each of the %lld stages at least one of the %d transformer layers, "
                   "%d in all",
                   (long long)*pp, r->blocks, r->blocks);
    if (!ok) { /* Galvatron's default (equal, the last stage taking the rest); after an error, to check the rest */
        div = arena_alloc(r->a, (size_t)*pp * sizeof *div), n = (int)*pp;
        for (int k = 0; k < n; k++)
            div[k] = k < n - 1 ? r->blocks / *pp : r->blocks - (n - 1) * (r->blocks / *pp);
    }
    int *stage = arena_alloc(r->a, (size_t)r->blocks * sizeof *stage);
    for (int k = 0, e = 0; k < n; k++)
        for (int64_t j = 0; j < div[k]; j++)
            stage[e++] = k;
    return stage;
}

/* global_bsz, chunks and world_size against the model and the devices. */
static void read_batch(Reader *r, Plan *p) {
    int64_t bsz, world, batch = r->spec->train->global_batch;
    if (read_int(r, KEY_GLOBAL_BSZ, REQUIRED, &bsz) && bsz != batch)
        diag_error(r->d, key_loc(r, KEY_GLOBAL_BSZ),
                   "'global_bsz' is %lld, but %s trains with a global batch of %lld (-D global_batch=%lld plans for "
                   "the config's)",
                   (long long)bsz, r->spec->graph->name, (long long)batch, (long long)bsz);
    if (read_int(r, KEY_WORLD_SIZE, r->devices, &world) && world != r->devices)
        diag_error(r->d, key_loc(r, KEY_WORLD_SIZE), "'world_size' is %lld, but the plan is for %lld devices",
                   (long long)world, (long long)r->devices);
    if (!read_int(r, KEY_CHUNKS, REQUIRED, &p->micro_batches)) return;
    if (p->micro_batches < 1 || batch % p->micro_batches)
        diag_error(r->d, key_loc(r, KEY_CHUNKS), "'chunks' is %lld: it must divide the global batch (%lld)",
                   (long long)p->micro_batches, (long long)batch);
}

/* One transformer layer's strategy from entry e of the lists. */
static void read_block(Reader *r, int e, int64_t *const lists[5], GalvDp dflt, Strategy *s) {
    static const GalvKey keys[5] = {KEY_TP_SIZES, KEY_TP_CONSEC, KEY_DP_TYPES, KEY_USE_SP, KEY_CHECKPOINT};
    int64_t n = r->devices / s->pp, tp = lists[0][e];
    for (int f = 1; f < 5; f++)
        if (lists[f][e] > 1)
            diag_error(r->d, entry_loc(r, keys[f], e), "%s (%s) is %lld, not 0 or 1", key_names[keys[f]], who(r, e),
                       (long long)lists[f][e]);
    if (!pow2(tp) || tp > n) {
        diag_error(r->d, entry_loc(r, KEY_TP_SIZES, e),
                   "tp size %lld (%s) must be a power of two up to %lld (a Galvatron config's), the "
                   "devices of a stage",
                   (long long)tp, who(r, e), (long long)n);
        return;
    }
    /* use_sp 1: the degree is Ulysses's (Galvatron's "sp" groups: the
     * heads split by all-to-all inside attention), and the layer has no TP */
    bool ulysses = lists[3][e] == 1;
    if (ulysses && tp > 1 && !layer_ulysses_splits(r->block[e], 1, (int)tp))
        diag_error(r->d, entry_loc(r, KEY_USE_SP, e),
                   "use_sp (%s) is 1 with degree %lld: its heads (%lld), kv_heads (%lld) and sequence (%lld) must "
                   "divide by it",
                   who(r, e), (long long)tp, (long long)r->block[e]->heads, (long long)r->block[e]->kv_heads,
                   (long long)r->block[e]->seq);
    s->tp = ulysses ? 1 : (int)tp, s->ulysses = ulysses ? (int)tp : 1;
    s->dp = (int)(n / tp), s->ckpt = lists[4][e] == 1;
    s->tp_consec = lists[1][e] == 1 || s->tp == 1 || s->dp == 1;
    galv_dp_into(s, lists[2][e] == 1 ? GALV_ZERO3 : dflt);
}

/* The strategy of the embedding, the norms and the head. */
static void read_vocab(Reader *r, GalvDp dflt, Strategy *s) {
    int64_t vtp, vsp, vcp, esdp, vsdp, n = r->devices / s->pp;
    int errors = r->d->errors;
    bool ok = read_int(r, KEY_VTP, 1, &vtp) & read_int(r, KEY_VSP, 0, &vsp) & read_int(r, KEY_VCP, 1, &vcp) &
              read_int(r, KEY_EMBED_SDP, 0, &esdp) & read_int(r, KEY_VOCAB_SDP, esdp, &vsdp);
    if (!ok) return;
    if (!pow2(vtp) || vtp > n)
        diag_error(r->d, key_loc(r, KEY_VTP),
                   "'vtp' is %lld: it must be a power of two up to %lld (a Galvatron config's), the devices of a "
                   "stage",
                   (long long)vtp, (long long)n);
    if (vsp > 1 || esdp > 1 || vsdp > 1 || vcp != 1)
        diag_error(r->d,
                   key_loc(r, vsp > 1    ? KEY_VSP
                              : esdp > 1 ? KEY_EMBED_SDP
                              : vsdp > 1 ? KEY_VOCAB_SDP
                                         : KEY_VCP),
                   "%s",
                   vcp != 1 && vsp < 2 && esdp < 2 && vsdp < 2 ? "'vcp' must be 1: galvc has no context parallelism"
                                                               : "'vsp', 'embed_sdp' and 'vocab_sdp' are 0 or 1");
    if (esdp != vsdp)
        diag_error(r->d, key_loc(r, KEY_VOCAB_SDP), "'vocab_sdp' is %lld but 'embed_sdp' %lld: which one?",
                   (long long)vsdp, (long long)esdp);
    if (r->d->errors > errors) return;
    /* vsp 1: Ulysses over vtp devices, each sample's tokens split over
     * them with the whole weights on each (these layers mix no tokens) */
    s->tp = vsp ? 1 : (int)vtp, s->ulysses = vsp ? (int)vtp : 1;
    s->dp = (int)(n / vtp), s->tp_consec = true, s->ckpt = false;
    for (int i = 0; vsp && vtp > 1 && i < r->spec->graph->n_layers; i++) {
        const Layer *l = r->spec->graph->layers[i];
        if (is_vocab(l) && !layer_ulysses_splits(l, 1, (int)vtp)) {
            diag_error(r->d, key_loc(r, KEY_VSP),
                       "vsp 1 with vtp %lld: %s (layer %d) cannot split its sequence (%lld tokens) over %lld devices "
                       "(galvc's Ulysses takes embeddings, norms and LM heads)",
                       (long long)vtp, l->name, i, (long long)l->seq, (long long)vtp);
            break;
        }
    }
    galv_dp_into(s, esdp ? GALV_ZERO3 : dflt);
}

/* Parse the file into r->root; false after a located error. */
static bool load(Reader *r, const char *path) {
    char *bytes = NULL;
    size_t len = 0, raw;
    int err = source_read_file(r->a, path, MAX_CONFIG_BYTES, &bytes, &len);
    raw = err ? 0 : len;
    SourceFile *f = arena_alloc(r->a, sizeof *f);
    char *text = arena_alloc(r->a, (err ? 0 : len) + 2);
    if (!err && len) memcpy(text, bytes, len);
    if (err) len = 0;
    if (len == 0 || text[len - 1] != '\n') text[len++] = '\n';
    f->path = f->display = arena_strdup(r->a, path), f->text = text, f->len = len;
    r->src = f;
    if (err) {
        diag_error(r->d, (Loc){.file = f}, "cannot read the plan: %s",
                   err == EINVAL ? "not a regular file" : strerror(err));
        return false;
    }
    json_error_t je;
    r->root = json_loadb(bytes ? bytes : "", raw, JSON_REJECT_DUPLICATES, &je);
    if (!r->root) {
        Loc loc = {.file = f, .line = je.line > 0 ? je.line : 0, .col = je.column > 0 ? je.column : 1};
        loc.end_col = loc.col + 1;
        diag_error(r->d, loc, "malformed JSON: %s", je.text);
        return false;
    }
    if (json_is_object(r->root)) return true;
    diag_error(r->d, (Loc){.file = f}, "a Galvatron config is a JSON object");
    json_decref(r->root);
    r->root = NULL;
    return false;
}

/* Everything but the file: the stages, strategies and batch split. */
static void read_plan(Reader *r, Plan *p) {
    const Graph *g = r->spec->graph;
    int64_t pp;
    int *stage = read_stages(r, &pp);
    if (!stage) return;
    p->pp = (int)pp;
    read_batch(r, p);
    int sched = read_name(r, KEY_PIPELINE_TYPE, (const char *const[]){"gpipe", "pipedream_flush", NULL}, "gpipe",
                          "\"gpipe\" or \"pipedream_flush\"");
    p->schedule = sched == 0 ? SCHED_GPIPE : SCHED_1F1B;
    int dflt = read_name(r, KEY_DEFAULT_DP_TYPE, dp_names, "ddp", "\"ddp\", \"zero2\" or \"zero3\"");
    int64_t *lists[5];
    static const GalvKey keys[5] = {KEY_TP_SIZES, KEY_TP_CONSEC, KEY_DP_TYPES, KEY_USE_SP, KEY_CHECKPOINT};
    static const int64_t fallback[5] = {REQUIRED, REQUIRED, REQUIRED, 0, 0};
    bool ok = dflt >= 0;
    for (int f = 0; f < 5; f++)
        ok &= (lists[f] = read_list(r, keys[f], r->blocks, fallback[f], NULL, "transformer layers")) != NULL;
    read_ones(r, KEY_CP_SIZES, "context parallelism");
    read_ones(r, KEY_EP_SIZES, "expert parallelism");
    read_ones(r, KEY_TP_OF_EP_SIZES, "expert parallelism");
    Strategy vocab = {.pp = p->pp};
    if (dflt >= 0) read_vocab(r, (GalvDp)dflt, &vocab);
    int64_t sp;
    ok &= read_int(r, KEY_SEQ_PAR, 1, &sp);
    if (ok && sp != 0 && sp != 1)
        diag_error(r->d, key_loc(r, KEY_SEQ_PAR), "'sequence_parallel' is %lld, not 0 or 1", (long long)sp), ok = false;
    if (!ok) return;
    p->layer = arena_alloc(r->a, (size_t)g->n_layers * sizeof *p->layer);
    int *block_stage = arena_alloc(r->a, (size_t)g->n_layers * sizeof *block_stage);
    for (int i = 0, e = 0; i < g->n_layers; i++) {
        const Layer *l = g->layers[i];
        p->layer[i] = (Strategy){.pp = p->pp};
        bool block = is_block(l);
        if (block)
            read_block(r, e, lists, (GalvDp)dflt, &p->layer[i]), block_stage[i] = stage[e++];
        else if (is_vocab(l))
            p->layer[i] = vocab;
        else
            diag_error(r->d, l->loc, "%s (layer %d): a Galvatron config has no entry for a standalone %s layer",
                       l->name, i, layer_kind_names[l->kind]);
        /* Megatron-SP with TP (sequence_parallel), where galvc's layers run it */
        p->layer[i].sp = sp && p->layer[i].tp > 1 && graph_sp_splits(g, p->layer[i].tp);
        /* each DP rank takes whole samples of a micro-batch */
        int64_t batch = r->spec->train->global_batch, m = p->micro_batches;
        int64_t samples = m > 0 && batch % m == 0 ? batch / m : 0; /* 0: 'chunks' itself is wrong */
        if (samples && (block || is_vocab(l)) && p->layer[i].dp > 0 && !strategy_splits(&p->layer[i], samples))
            diag_error(r->d, block ? entry_loc(r, KEY_TP_SIZES, e - 1) : key_loc(r, KEY_VTP),
                       "%s (layer %d) runs DP %d, which does not split a micro-batch of %lld samples ('chunks' %lld)",
                       l->name, i, p->layer[i].dp, (long long)samples, (long long)p->micro_batches);
    }
    p->stage_start = arena_alloc(r->a, (size_t)(p->pp + 1) * sizeof *p->stage_start);
    for (int k = 0; k <= p->pp; k++)
        p->stage_start[k] = g->n_layers;
    for (int i = g->n_layers - 1; i >= 0; i--)
        p->stage_start[block_stage[galv_anchor(g, i)]] = i;
    p->stage_start[0] = 0;
}

bool galvatron_read(const char *path, const Spec *spec, int64_t devices, Arena *a, Plan *plan, Diag *d) {
    const Graph *g = spec->graph;
    Reader r = {.a = a, .d = d, .spec = spec, .devices = devices, .errors = d->errors};
    memset(plan, 0, sizeof *plan);
    if (!pow2(devices)) {
        diag_plain(d, "%s: %lld devices: a Galvatron config plans a power-of-two device count", path,
                   (long long)devices);
        return false;
    }
    r.block = arena_alloc(a, (size_t)(g->n_layers + 1) * sizeof *r.block);
    for (int i = 0; i < g->n_layers; i++)
        if (is_block(g->layers[i])) r.block[r.blocks++] = g->layers[i];
    if (!load(&r, path)) return false;
    if (!r.blocks) diag_plain(d, "%s has no encoder or decoder layer, and a Galvatron config lists those", g->name);
    if (known_keys(&r) && r.blocks) read_plan(&r, plan);
    json_decref(r.root);
    return d->errors == r.errors;
}
