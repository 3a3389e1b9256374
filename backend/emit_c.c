/* emit_c.c — writes the training program for one plan as readable C that is
 * the plan: the layers and how the plan cuts them as constant tables, the
 * TP and DP groups as constant rank lists, and for each pipeline stage a
 * set-up (every buffer size and shard offset worked out here), a forward
 * and a backward function that list each layer call, TP collective, ZeRO-3
 * gather and reduce-scatter, DP gradient reduction, reshard and p2p
 * transfer in the order they run, and the stage's micro-batch schedule as
 * a table. Whatever does not depend on the plan is libgalvrt's.
 *
 * Names from the .gv file reach the C text only as escaped string literals
 * (c_string) or as identifier-like comment text (c_comment_text), so no
 * model can inject code. */
#include "backend.h"
#include "runtime/galvrt.h"

#include <stdlib.h>
#include <string.h>

/* Write s as a C string literal: quotes, backslashes and every byte outside
 * printable ASCII escaped (octal), so the literal is exactly s. */
static void c_string(FILE *out, const char *s) {
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(out, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f || *p == '?') fprintf(out, "\\%03o", *p); /* '?' too: no trigraphs */
        else fputc(*p, out);
    }
    fputc('"', out);
}

/* A name in a comment, sanitized like an identifier: letters, digits and
 * "._-" pass, every other byte becomes '_'. */
static void c_comment_text(FILE *out, const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        fputc((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("._-", *p) ? *p
                                                                                                             : '_',
              out);
}

/* Why the program cannot run layer i's Ulysses yet (NULL: it can): the
 * runtime runs it on the CPU target, without dropout or token types. */
static const char *ulysses_unbuilt(const Spec *spec, const Plan *p, int i) {
    const Layer *l = spec->graph->layers[i];
    (void)p;
    if (!runtime_runs_ulysses(spec)) return "on the CUDA target";
    if (l->dropout > 0 || l->types) return l->types ? "with token types" : "with dropout";
    return NULL;
}

/* Why the program cannot run layer i's context parallelism yet (NULL: it
 * can): the runtime runs it on the CPU target in fp32, without TP, dropout
 * or token types. */
static const char *cp_unbuilt(const Spec *spec, const Plan *p, int i) {
    const Layer *l = spec->graph->layers[i];
    const Strategy *s = &p->layer[i];
    if (!runtime_runs_ulysses(spec)) return "on the CUDA target";
    if (spec_gemm16(spec)) return "under bf16 mixed precision";
    if (s->tp > 1) return "with TP";
    if (l->dropout > 0 || l->types) return l->types ? "with token types" : "with dropout";
    return NULL;
}

/* Does the runtime run this plan: every layer of a kind it trains, every
 * degree dividing what it splits? */
bool emit_c_runs(const Spec *spec, const Plan *p, Diag *d) {
    const Graph *g = spec->graph;
    int64_t mb = spec->train->global_batch / p->micro_batches;
    bool ok = true;
    for (int i = 0; i < g->n_layers; i++) {
        const Strategy *s = &p->layer[i];
        const Layer *l = g->layers[i];
        const char *why;
        if (layer_runtime_kind(g, l, &why) < 0) {
            diag_error(d, l->loc, "%s: %s", l->name, why);
            ok = false;
        } else if (mb % s->dp) {
            diag_error(d, l->loc, "%s: a micro-batch of %lld sequences does not split over DP %d", l->name,
                       (long long)mb, s->dp);
            ok = false;
        } else if (strategy_cp(s) > 1 && (why = cp_unbuilt(spec, p, i))) {
            diag_error(d, l->loc,
                       "%s: the plan runs it with context parallelism (cp %d) %s, which galvc costs and "
                       "prints (--emit=plan) but does not build into a program yet; plan without it (forbid = [cp])",
                       l->name, s->cp, why);
            ok = false;
        } else if (!layer_tp_splits(l, s->tp)) {
            diag_error(d, l->loc, "%s: %lld heads, %lld key/value heads and FFN %lld do not split over TP %d", l->name,
                       (long long)l->heads, (long long)l->kv_heads, (long long)l->ffn, s->tp);
            ok = false;
        } else if (strategy_ulysses(s) > 1 && (why = ulysses_unbuilt(spec, p, i))) {
            diag_error(d, l->loc, "%s: the plan runs it with Ulysses sequence parallelism (ulysses=%d) %s, which galvc "
                       "costs and prints (--emit=plan) but does not build into a program yet",
                       l->name, s->ulysses, why);
            ok = false;
        }
    }
    return ok;
}

/* The program names the runtime's optimizers and decays in the IR's order. */
_Static_assert((int)OPT_ADAMW == (int)GRT_ADAMW && (int)OPT_ADAM == (int)GRT_ADAM && (int)OPT_SGD == (int)GRT_SGD,
               "optimizer kinds");
_Static_assert((int)DECAY_CONSTANT == (int)GRT_DECAY_CONSTANT && (int)DECAY_LINEAR == (int)GRT_DECAY_LINEAR &&
                   (int)DECAY_COSINE == (int)GRT_DECAY_COSINE,
               "decays");

/* The runtime's description of layer l, whole (runtime/galvrt.h); emit_c_runs has checked it fits. */
static GrtLayerSpec layer_spec(const Spec *spec, const Layer *l) {
    GrtLayerSpec r;
    if (!layer_runtime_spec(spec->graph, l, &r)) die("layer %s: sizes beyond the runtime's", l->name);
    r.gemm16 = spec_gemm16(spec);
    return r;
}

/* The rows of a sequence's stream between layers (galvrt_sizes.h): its tokens, or T5's rows. */
static int64_t stream_rows(const Spec *spec) {
    const Graph *g = spec->graph;
    GrtLayerSpec first = layer_spec(spec, g->layers[0]);
    return (int64_t)grt_stream_rows(&first, (double)g->layers[0]->seq);
}

/* One plan, as the emitter walks it: what galvc works out once so that the
 * program need not (layouts, groups, sizes and offsets per rank). */
typedef struct Emit {
    FILE *out;
    const Spec *spec;
    const Plan *plan;
    int L, pp, head, tied_to, tied_copy;
    int v, C;          /* chunks a stage (interleaved 1F1B: 2 or more), chunks in all (pp v) */
    const char *unit;  /* what a forward and backward function takes: a "stage", or an interleaved "chunk" */
    int64_t ranks, stage_ranks, mb, seq, hidden;
    GrtLayerSpec *rs;  /* [L]: each layer as the runtime builds it (a tied copy untied) */
    int64_t *stored;   /* [L]: floats of the layer each rank steps (gradients, m, v) */
    int64_t *off;      /* [L]: where, in its stage's gradients, m and v */
    int64_t *params;   /* [L]: floats of its parameters each rank keeps (ZeRO-1/2: whole, padded) */
    int64_t *poff;     /* [L]: where, in its stage's parameters */
    int64_t *accum;    /* [L]: floats of its whole gradient kept over the micro-batches (ZeRO-1, ZeRO-3 once) */
    int64_t *aoff;     /* [L]: where, in its stage's accumulated gradients */
} Emit;

static const Strategy *strat(const Emit *e, int i) { return &e->plan->layer[i]; }
/* Layer i's chunk (its stage when not interleaved) and stage: chunk c runs on stage c mod pp. */
static int chunk_of(const Emit *e, int i) {
    int c = 0;
    while (i >= e->plan->stage_start[c + 1]) c++;
    return c;
}
static int stage_of(const Emit *e, int i) { return chunk_of(e, i) % e->pp; }
static int zero_of(const Emit *e, int i) { return strategy_zero(strat(e, i)); }
static bool sdp_of(const Emit *e, int i) { return zero_of(e, i) == 3; }
/* Is its gradient reduce-scattered every micro-batch (ZeRO-2, ZeRO-3), or accumulated whole and reduce-scattered
 * after the last (ZeRO-1, ZeRO-3 once)? */
static bool reduces_each(const Emit *e, int i) { return zero_of(e, i) == 2 || (sdp_of(e, i) && !strat(e, i)->zero3_once); }
static bool reduces_once(const Emit *e, int i) { return zero_of(e, i) == 1 || (sdp_of(e, i) && strat(e, i)->zero3_once); }
static bool consec_of(const Emit *e, int i) { return strategy_tp_consecutive(strat(e, i)); }
static int64_t seqs_of(const Emit *e, int i) { return e->mb / strat(e, i)->dp; } /* per rank, per micro-batch */
/* Its Ulysses degree (1: none), and its DP group: the u x dp replicas that sum its gradients and share its ZeRO state. */
static int ul_of(const Emit *e, int i) { return strategy_ulysses(strat(e, i)); }
static int cp_of(const Emit *e, int i) { return strategy_cp(strat(e, i)); }
/* The ranks that split each of its sequences: Ulysses' or CP's (1: none). */
static int split_of(const Emit *e, int i) { return ul_of(e, i) * cp_of(e, i); }
static int dp_of(const Emit *e, int i) { return strategy_replicas(strat(e, i)); }
static bool sp_of(const Emit *e, int i) { return strategy_sp(strat(e, i)); } /* Megatron-SP over its TP group */
/* Floats per sequence of layer i's input (i > 0): its tokens of its width,
 * SEQ x HIDDEN but past a patch merging; a T5 model's stream rows (galvrt_sizes.h). */
static int64_t in_floats(const Emit *e, int i) {
    const Layer *l = e->spec->graph->layers[i];
    return (int64_t)grt_stream_rows(&e->rs[i], (double)l->seq) * l->hidden;
}

/* Floats of layer i's (B, T, C) stream on one rank (its input; past a patch
 * merging, fewer tokens of a wider row): its rows alone with sequence parallelism. */
static long long stream_floats(const Emit *e, int i) {
    return (long long)(seqs_of(e, i) * (i ? in_floats(e, i) : e->seq * e->hidden) /
                       (sp_of(e, i) ? strat(e, i)->tp : 1) / split_of(e, i));
}
/* Do layers i and j use the same TP and DP groups? */
static bool same_groups(const Emit *e, int i, int j) {
    return stage_of(e, i) == stage_of(e, j) && strat(e, i)->tp == strat(e, j)->tp &&
           consec_of(e, i) == consec_of(e, j) && ul_of(e, i) == ul_of(e, j) && cp_of(e, i) == cp_of(e, j);
}
/* ... and lay out the stream alike (no reshard between them)? */
static bool same_layout(const Emit *e, int i, int j) { return same_groups(e, i, j) && sp_of(e, i) == sp_of(e, j); }

/* The world rank at TP index t, DP index d of layer i's layout (as grt_layout_rank). */
static int64_t rank_at(const Emit *e, int i, int t, int d) {
    const Strategy *s = strat(e, i);
    int64_t base = stage_of(e, i) * e->stage_ranks;
    return base + (consec_of(e, i) ? (int64_t)d * s->tp + t : (int64_t)t * s->dp + d);
}

/* The name of layer i's TP (or DP) groups: "tp2", "s1_dp4", "tp2_strided". */
static const char *group_name(const Emit *e, int i, bool tp, char *buf, size_t n) {
    const Strategy *s = strat(e, i);
    char stage[16] = "";
    if (e->pp > 1) snprintf(stage, sizeof stage, "s%d_", stage_of(e, i));
    snprintf(buf, n, "%s%s%d%s", stage, tp ? "tp" : "dp", tp ? s->tp : dp_of(e, i), consec_of(e, i) ? "" : "_strided");
    return buf;
}

/* The group expression for layer i: its group's name, or NULL when the degree is 1. */
static const char *group_of(const Emit *e, int i, bool tp, char *buf, size_t n) {
    return (tp ? strat(e, i)->tp : dp_of(e, i)) > 1 ? group_name(e, i, tp, buf, n) : "NULL";
}

static void comment_name(const Emit *e, int i) { c_comment_text(e->out, e->spec->graph->layers[i]->name); }

/* Work out every layer's shard: its parameters, optimizer state and
 * accumulated gradient per rank, and their offsets in its stage's arrays. */
static void layout_state(Emit *e, Arena *a) {
    size_t L = (size_t)e->L;
    e->rs = arena_alloc(a, sizeof *e->rs * L);
    int64_t **fields[] = {&e->stored, &e->off, &e->params, &e->poff, &e->accum, &e->aoff};
    for (int f = 0; f < 6; f++) *fields[f] = arena_alloc(a, sizeof(int64_t) * L);
    int64_t *at = arena_alloc(a, sizeof(int64_t) * (size_t)e->pp), *pat = arena_alloc(a, sizeof(int64_t) * (size_t)e->pp),
            *aat = arena_alloc(a, sizeof(int64_t) * (size_t)e->pp);
    for (int k = 0; k < e->pp; k++) at[k] = pat[k] = aat[k] = 0;
    for (int i = 0; i < e->L; i++) { /* a stage's arrays hold its layers in order, chunk after chunk */
        e->rs[i] = layer_spec(e->spec, e->spec->graph->layers[i]);
        if (i == e->head && e->tied_copy) e->rs[i].tied = 0;
        int k = stage_of(e, i);
        int64_t n = (int64_t)grt_size_params(&e->rs[i], strat(e, i)->tp), dp = dp_of(e, i);
        int64_t chunk = (n + dp - 1) / dp;
        int zero = zero_of(e, i);
        e->stored[i] = zero ? chunk : n;
        e->params[i] = zero == 3 ? chunk : zero ? chunk * dp : n;
        e->accum[i] = reduces_once(e, i) ? chunk * dp : 0;
        e->off[i] = at[k], e->poff[i] = pat[k], e->aoff[i] = aat[k];
        at[k] += e->stored[i], pat[k] += e->params[i], aat[k] += e->accum[i];
    }
}

/* ---- the tables: layers, cuts, the program's constants --------------------------- */

/* The shortest decimal that reads back as v (6 to 9 significant digits). */
static const char *float_literal(float v, char *buf, size_t n) {
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(buf, n, "%.*g", digits, (double)v);
        if ((float)strtod(buf, NULL) == v) break;
    }
    return buf;
}

/* The vocabulary the program's data is drawn from: the embedding's (the
 * head's when it predicts tokens; 0 for images). */
static int64_t program_vocab(const Emit *e) {
    const Graph *g = e->spec->graph;
    return g->layers[e->head]->kind == LAYER_LM_HEAD ? g->layers[e->head]->vocab : g->layers[0]->vocab;
}

static void emit_specs(const Emit *e) {
    FILE *out = e->out;
    fprintf(out, "/* The layers, whole; grt_shard_setup cuts each rank's shard. */\n"
                 "static const GrtLayerSpec spec[N_LAYERS] = {\n");
    for (int i = 0; i < e->L; i++) {
        const Layer *l = e->spec->graph->layers[i];
        GrtLayerSpec r = layer_spec(e->spec, l);
        fprintf(out, "    {.kind = %s, .name = ",
                (const char *[]){"GRT_EMBEDDING", "GRT_BLOCK", "GRT_NORM", "GRT_HEAD", "GRT_PATCH", "GRT_CLASSIFIER",
                                 "GRT_MERGE"}[r.kind]);
        c_string(out, l->name);
        fprintf(out, ", .C = %d", r.C);
        if (r.kind == GRT_BLOCK)
            fprintf(out,
                    ", .H = %d, .KVH = %d, .hd = %d, .F = %d,\n     .causal = %d, .pre_norm = %d, .rms = %d, "
                    ".swiglu = %d, .bias = %d, .rope = %d, .eps = (float)%g, .rope_theta = 10000.0f",
                    r.H, r.KVH, r.hd, r.F, r.causal, r.pre_norm, r.rms, r.swiglu, r.bias, r.rope, r.eps);
        if (r.kind == GRT_BLOCK && r.window) fprintf(out, ", .window = %d, .shift = %d", r.window, r.shift);
        if (r.kind == GRT_MERGE) fprintf(out, ", .eps = (float)%g", r.eps);
        if (r.T) fprintf(out, ", .T = %d", r.T);
        if (r.kind == GRT_EMBEDDING || r.kind == GRT_HEAD) fprintf(out, ", .V = %d", r.V);
        if (r.kind == GRT_EMBEDDING && r.positions) fprintf(out, ", .positions = %d", r.positions);
        if (r.kind == GRT_EMBEDDING && r.types) fprintf(out, ", .types = %d", r.types);
        if (r.kind == GRT_NORM) fprintf(out, ", .rms = %d, .bias = %d, .eps = (float)%g", r.rms, r.bias, r.eps);
        if (r.kind == GRT_HEAD) fprintf(out, ", .tied = %d", r.tied);
        if (r.kind == GRT_PATCH)
            fprintf(out, ", .image = %d, .patch = %d, .channels = %d%s", r.image, r.patch, r.channels,
                    r.plain ? ", .plain = 1" : "");
        if (r.kind == GRT_CLASSIFIER)
            fprintf(out, ", .V = %d, .pool_mean = %d, .pooler = %d", r.V, r.pool_mean, r.pooler);
        if (r.te) /* T5: the stream's rows, the block's stack and cross-attention, the norm's rows, the head's scale */
            fprintf(out, ",\n     .te = %d, .td = %d, .tr = %d, .buckets = %d, .rel_own = %d, .cross = %d, .part = %d", r.te,
                    r.td, r.tr, r.buckets, r.rel_own, r.cross, r.part);
        if (r.head_scale > 0) {
            char h[32];
            fprintf(out, ", .head_scale = %sf", float_literal(r.head_scale, h, sizeof h));
        }
        if (r.gemm16) fprintf(out, ", .gemm16 = %d", r.gemm16);
        if (r.dropout > 0) {
            char p[32];
            fprintf(out, ", .dropout = %sf", float_literal(r.dropout, p, sizeof p));
        }
        fprintf(out, "},\n");
    }
    fprintf(out, "};\n\n/* How the plan cuts each layer (stage, TP, DP, state split over DP by ZeRO): what a checkpoint records. */\n"
                 "static const GrtLayerCut cut[N_LAYERS] = {\n");
    for (int i = 0; i < e->L; i++) {
        const Strategy *s = strat(e, i);
        char buf[96];
        fprintf(out, "    {%d, %d, %d, %d}, /* ", stage_of(e, i), s->tp, dp_of(e, i), zero_of(e, i) > 0);
        comment_name(e, i);
        fprintf(out, ": %s */\n", strategy_str(buf, sizeof buf, s));
    }
    fprintf(out, "};\n\n");
}

static void emit_program(const Emit *e, const char *model_name) {
    FILE *out = e->out;
    const Plan *p = e->plan;
    const TrainConfig *t = e->spec->train;
    const Optimizer *o = &t->opt;
    fprintf(out, "/* What the planner predicted for each stage: peak bytes per rank. */\n"
                 "static const double predicted_mem[PP] = {");
    for (int k = 0; k < e->pp; k++) fprintf(out, "%s%lld", k ? ", " : "", (long long)p->stage_mem[k]);
    fprintf(out, "};\n\nstatic const GrtProgram program = {\n    .model = ");
    c_string(out, model_name);
    fprintf(out,
            ",\n    .ranks = RANKS, .pp = PP, .n_layers = N_LAYERS,\n"
            "    .global_batch = %lld, .micro_batches = MICRO_BATCHES, .seq = SEQ, .vocab = %lld, .hidden = HIDDEN,\n"
            "    .tied_to = %d, .tied_copy = %d, .default_steps = %lld,\n"
            "    .optimizer = %s, .lr = (float)%.9g, .beta1 = (float)%.9g, .beta2 = (float)%.9g, .eps = (float)%.9g,\n"
            "    .weight_decay = (float)%.9g, .clip = (float)%.9g, .momentum = (float)%.9g, .nesterov = %d,\n"
            "    .warmup = %lld, .decay = %s, .decay_steps = %lld, .min_lr = (float)%.9g,\n"
            "    .fwd_flops_per_seq = %.17g, .memory_per_device = %.17g, .predicted_mem = predicted_mem,\n"
            "    .predicted_step_ms = %.6g, .predicted_compute_ms = %.6g, .predicted_comm_ms = %.6g,\n"
            "    .predicted_bubble_ms = %.6g, .predicted_calls = %.6g,\n"
            "    .spec = spec, .cut = cut,\n};\n\n",
            (long long)t->global_batch, (long long)program_vocab(e), e->tied_to, e->tied_copy, (long long)t->steps,
            (const char *[]){"GRT_ADAMW", "GRT_ADAM", "GRT_SGD"}[o->kind], o->lr, o->beta1, o->beta2, o->eps,
            o->weight_decay, o->clip, o->momentum, o->nesterov, (long long)t->warmup,
            (const char *[]){"GRT_DECAY_CONSTANT", "GRT_DECAY_LINEAR", "GRT_DECAY_COSINE"}[t->decay],
            (long long)(t->decay_steps ? t->decay_steps : t->steps), t->min_lr, (double)e->spec->graph->total_fwd_flops,
            (double)p->budget, p->step_s * 1e3, p->compute_s * 1e3, p->comm_s * 1e3, p->bubble_s * 1e3, p->calls);
}

/* ---- the groups ---------------------------------------------------------------- */

enum { GROUP_TP, GROUP_DP, GROUP_SPLIT }; /* a layer's groups (GROUP_SPLIT: Ulysses' or CP's) */

static const char *kind_group(const Emit *e, int i, int kind, char *buf, size_t n);

/* The layers using layer i's group of `kind`, in a comment. */
static void layout_members(const Emit *e, int i, int kind) {
    char a[64], b[64];
    kind_group(e, i, kind, a, sizeof a);
    for (int j = 0; j < e->L; j++)
        if (kind_group(e, j, kind, b, sizeof b) && !strcmp(a, b)) {
            fputc(' ', e->out);
            comment_name(e, j);
        }
}

/* One set of groups as rank lists: TP groups (tp) or DP groups of layer i's layout. */
static void emit_group_set(const Emit *e, int i, bool tp) {
    FILE *out = e->out;
    const Strategy *s = strat(e, i);
    int size = tp ? s->tp : dp_of(e, i), n = tp ? s->dp : s->tp;
    char name[64];
    group_name(e, i, tp, name, sizeof name);
    if (tp)
        fprintf(out, "/* TP groups of %d (%s ranks), each rank with its share of the heads, FFN columns and "
                     "vocabulary rows (the rest whole) of:", size,
                consec_of(e, i) ? "consecutive" : "strided");
    else
        fprintf(out, "/* DP groups of %d, each holding its own sequences, for:", size);
    layout_members(e, i, tp ? GROUP_TP : GROUP_DP);
    fprintf(out, " */\nstatic const int %s_ranks[%d][%d] = {", name, n, size);
    for (int g = 0; g < n; g++) {
        fprintf(out, "%s{", g ? ", " : "");
        for (int k = 0; k < size; k++)
            fprintf(out, "%s%lld", k ? ", " : "", (long long)(tp ? rank_at(e, i, k, g) : rank_at(e, i, g, k)));
        fputc('}', out);
    }
    fprintf(out, "};\nstatic GrtComm *%s;\n", name);
}

/* The name of layer i's Ulysses or CP groups: "ulysses2", "s1_ulysses4", "cp2" (one name at a time). */
static const char *ulysses_name(const Emit *e, int i) {
    static char buf[32];
    char stage[16] = "";
    if (e->pp > 1) snprintf(stage, sizeof stage, "s%d_", stage_of(e, i));
    snprintf(buf, sizeof buf, "%s%s%d", stage, cp_of(e, i) > 1 ? "cp" : "ulysses", split_of(e, i));
    return buf;
}

/* Layer i's group of `kind` (GROUP_TP, _DP, _ULYSSES): its name in buf, or NULL when of one rank. */
static const char *kind_group(const Emit *e, int i, int kind, char *buf, size_t n) {
    int size = kind == GROUP_TP ? strat(e, i)->tp : kind == GROUP_DP ? dp_of(e, i) : split_of(e, i);
    if (size == 1) return NULL;
    if (kind == GROUP_SPLIT)
        snprintf(buf, n, "%s", ulysses_name(e, i));
    else group_name(e, i, kind == GROUP_TP, buf, n);
    return buf;
}

/* Is layer i the first to use its group of `kind`? A name is one set of
 * rank lists (a stage's DP group of tp 1 is its every rank, whatever the Ulysses degree), declared once. */
static bool group_first(const Emit *e, int i, int kind) {
    char a[64], b[64];
    if (!kind_group(e, i, kind, a, sizeof a)) return false;
    for (int j = 0; j < i; j++)
        if (kind_group(e, j, kind, b, sizeof b) && !strcmp(a, b)) return false;
    return true;
}

/* Layer i's Ulysses or CP groups: u consecutive ranks of its stage each (the replicas' index d u + r). */
static void emit_ulysses_groups(const Emit *e, int i) {
    FILE *out = e->out;
    int u = split_of(e, i), d = strat(e, i)->dp;
    int64_t base = stage_of(e, i) * e->stage_ranks;
    if (cp_of(e, i) > 1)
        fprintf(out,
                "/* CP groups of %d consecutive ranks, each a ring holding chunks r and 2 cp - 1 - r of its "
                "sequences, for:",
                u);
    else
        fprintf(out, "/* Ulysses groups of %d consecutive ranks, each splitting its sequences' positions, for:", u);
    layout_members(e, i, GROUP_SPLIT);
    fprintf(out, " */\nstatic const int %s_ranks[%d][%d] = {", ulysses_name(e, i), d, u);
    for (int g = 0; g < d; g++) {
        fprintf(out, "%s{", g ? ", " : "");
        for (int k = 0; k < u; k++) fprintf(out, "%s%lld", k ? ", " : "", (long long)(base + (int64_t)g * u + k));
        fputc('}', out);
    }
    fprintf(out, "};\nstatic GrtComm *%s;\n", ulysses_name(e, i));
}

/* Every group the plan uses, made by every rank in the same order (each split is collective). */
static void emit_groups(const Emit *e) {
    FILE *out = e->out;
    fprintf(out, "/* ---- the groups: rank lists; a rank's place in its list is its index in the group ---- */\n\n");
    for (int i = 0; i < e->L; i++) {
        if (group_first(e, i, GROUP_TP)) emit_group_set(e, i, true);
        if (group_first(e, i, GROUP_DP)) emit_group_set(e, i, false);
        if (group_first(e, i, GROUP_SPLIT)) emit_ulysses_groups(e, i);
    }
    if (e->tied_copy) {
        int a = stage_of(e, e->tied_to), b = stage_of(e, e->head);
        int64_t n = (a == b ? 1 : 2) * e->stage_ranks;
        fprintf(out, "/* The ranks holding either copy of the tied table (stages %d and %d): their gradients are summed. */\n"
                     "static const int tied_ranks[1][%lld] = {{", a, b, (long long)n);
        for (int64_t r = 0, k = 0; r < e->ranks; r++)
            if (r / e->stage_ranks == a || r / e->stage_ranks == b) fprintf(out, "%s%lld", k++ ? ", " : "", (long long)r);
        fprintf(out, "}};\n");
    }
    fprintf(out, "\nstatic void make_groups(GrtRun *R) {\n");
    bool any = e->tied_copy;
    for (int i = 0; i < e->L; i++) any |= strat(e, i)->tp > 1 || dp_of(e, i) > 1;
    if (!any) fprintf(out, "    (void)R; /* one rank a stage: no groups */\n");
    for (int i = 0; i < e->L; i++) {
        for (int tp = 1; tp >= 0; tp--) {
            const Strategy *s = strat(e, i);
            int size = tp ? s->tp : dp_of(e, i);
            if (!group_first(e, i, tp ? GROUP_TP : GROUP_DP)) continue;
            char name[64];
            group_name(e, i, tp, name, sizeof name);
            fprintf(out, "    %s = grt_run_group(R, %d, %d, &%s_ranks[0][0]);\n", name, size, tp ? s->dp : s->tp, name);
        }
        if (group_first(e, i, GROUP_SPLIT))
            fprintf(out, "    %s = grt_run_group(R, %d, %d, &%s_ranks[0][0]);\n", ulysses_name(e, i), split_of(e, i),
                    strat(e, i)->dp, ulysses_name(e, i));
    }
    if (e->tied_copy)
        fprintf(out, "    R->tied = grt_run_group(R, %lld, 1, &tied_ranks[0][0]);\n",
                (long long)((stage_of(e, e->tied_to) == stage_of(e, e->head) ? 1 : 2) * e->stage_ranks));
    fprintf(out, "}\n\n");
}

/* ---- the stages ---------------------------------------------------------------- */

static void emit_layout(const Emit *e, int i) {
    const Strategy *s = strat(e, i);
    fprintf(e->out, "&(GrtLayout){%lld, %d, %d, %d, %d, %d, %d}", (long long)(stage_of(e, i) * e->stage_ranks), s->tp,
            s->dp, consec_of(e, i), sp_of(e, i), ul_of(e, i), cp_of(e, i));
}

/* A layer's shard in words: what its TP group splits, how many sequences each rank runs. */
static void shard_comment(const Emit *e, int i) {
    FILE *out = e->out;
    const Layer *l = e->spec->graph->layers[i];
    const Strategy *s = strat(e, i);
    char buf[96];
    fprintf(out, "    /* ");
    comment_name(e, i);
    fprintf(out, " (%s): ", strategy_str(buf, sizeof buf, s));
    switch (l->kind) {
    case LAYER_EMBEDDING:
        fprintf(out, "vocabulary %lld, %lld rows per rank%s%s", (long long)l->vocab,
                (long long)((l->vocab + s->tp - 1) / s->tp), l->pos == POS_LEARNED ? ", learned positions" : "",
                l->types ? ", token types" : "");
        break;
    case LAYER_ENCODER:
    case LAYER_DECODER:
    case LAYER_CROSS_DECODER:
        fprintf(out, "%lld heads of %lld (%lld per rank), %lld key/value heads, FFN %lld (%lld per rank), %s, %s, %s",
                (long long)l->heads, (long long)l->head_dim, (long long)(l->heads / s->tp), (long long)l->kv_heads,
                (long long)l->ffn, (long long)(l->ffn / s->tp), l->causal ? "causal" : "bidirectional",
                l->pre_norm ? "pre-norm" : "post-norm", (const char *[]){"GELU", "ReLU", "SwiGLU", "GeGLU"}[l->act]);
        if (e->rs[i].te) /* T5: the stream's rows it works on, and what it reads there */
            fprintf(out, ",\n     * T5 %s rows %lld-%lld of each sequence's %lld%s%s", l->kind == LAYER_ENCODER ? "encoder" : "decoder",
                    (long long)(e->rs[i].cross ? e->rs[i].te : 0),
                    (long long)(e->rs[i].cross ? e->rs[i].te + e->rs[i].td : e->rs[i].te) - 1, (long long)e->seq,
                    e->rs[i].rel_own ? ", holding its stack's bias table" : ", its stack's bias table from the stream",
                    e->rs[i].cross ? ", cross-attention to the encoder's rows" : "");
        if (l->window)
            fprintf(out, ", %lld x %lld windows%s of %lld tokens", (long long)l->window, (long long)l->window,
                    l->shift ? " shifted" : "", (long long)l->seq);
        break;
    case LAYER_LAYERNORM:
    case LAYER_RMSNORM:
        fprintf(out, "replicated on its TP group%s", sp_of(e, i) ? ", on each rank's rows, its gradient summed" : "");
        break;
    case LAYER_PATCH_EMBEDDING:
        fprintf(out, "%lld x %lld images of %lld channels in %lld x %lld patches, replicated on its TP group",
                (long long)l->image, (long long)l->image, (long long)l->channels, (long long)l->patch,
                (long long)l->patch);
        break;
    case LAYER_PATCH_MERGING:
        fprintf(out, "%lld tokens of %lld merged to %lld of %lld, replicated on its TP group", (long long)l->seq,
                (long long)l->hidden, (long long)l->seq / 4, (long long)l->hidden * 2);
        break;
    case LAYER_CLASSIFIER:
        fprintf(out, "%lld classes on the %s%s, replicated on its TP group", (long long)l->classes,
                l->pool == POOL_MEAN ? "mean token" : "class token", l->pooler ? " through the pooler" : "");
        break;
    case LAYER_LM_HEAD:
        fprintf(out, "vocabulary %lld, %s", (long long)l->vocab,
                !l->tied ? "its own table" : e->tied_copy ? "a copy of the embedding's table" : "the embedding's table");
        break;
    default: break;
    }
    fprintf(out, ";\n     * %lld sequence%s per rank; floats: %lld parameters, %lld stepped", (long long)seqs_of(e, i),
            seqs_of(e, i) == 1 ? "" : "s", (long long)e->params[i], (long long)e->stored[i]);
    if (e->accum[i]) fprintf(out, ", %lld of whole gradient kept over the micro-batches", (long long)e->accum[i]);
    fprintf(out, " */\n");
}

/* The same as the program writes it: "SEQ * HIDDEN" where it is so. */
static const char *in_expr(const Emit *e, int i, char *buf, size_t n) {
    if (in_floats(e, i) == e->seq * e->hidden) return "SEQ * HIDDEN";
    snprintf(buf, n, "%lld", (long long)in_floats(e, i));
    return buf;
}

/* The micro-batches chunk c holds at once: its activation slots. */
static int64_t held_of(const Emit *e, int c) { return e->plan->in_flight[c]; }

/* Chunk c's pipes: the one it receives on and sends gradients back on, and the one it sends on. */
static void emit_pipe_decls(const Emit *e, int c) {
    if (c > 0) fprintf(e->out, "static GrtPipe *from_%s%d, *grad_to_%s%d;\n", e->unit, c - 1, e->unit, c - 1);
    if (c < e->C - 1) fprintf(e->out, "static GrtPipe *to_%s%d, *grad_from_%s%d;\n", e->unit, c + 1, e->unit, c + 1);
}

/* Chunk c's layer inputs (one per micro-batch it holds) and its reshards, declared. */
static void emit_chunk_decls(const Emit *e, int c) {
    FILE *out = e->out;
    int lo = e->plan->stage_start[c], hi = e->plan->stage_start[c + 1];
    if (hi > (lo ? lo : 1)) {
        if (e->v == 1) fprintf(out, "/* Each layer's input, one per micro-batch in flight. */\nstatic float ");
        else fprintf(out, "/* Chunk %d: each layer's input, one per micro-batch it holds. */\nstatic float ", c);
        for (int i = lo ? lo : 1; i < hi; i++)
            fprintf(out, "%s*x%d[%lld]", i > (lo ? lo : 1) ? ", " : "", i, (long long)held_of(e, c));
        fprintf(out, ";\n");
    }
    for (int i = lo; i + 1 < hi; i++)
        if (!same_layout(e, i, i + 1)) fprintf(out, "static GrtReshard *fwd_%d_%d, *bwd_%d_%d;\n", i, i + 1, i + 1, i);
    if (e->v == 1) emit_pipe_decls(e, c);
}

/* Chunk c's pipes made: between its first layer and the chunk before's last, its last and the next's first. */
static void emit_pipes(const Emit *e, int c) {
    FILE *out = e->out;
    int lo = e->plan->stage_start[c], hi = e->plan->stage_start[c + 1];
    long long slots = (long long)held_of(e, c);
    char n[32];
    if (c > 0) {
        fprintf(out, "    from_%s%d = grt_pipe_new(", e->unit, c - 1);
        emit_layout(e, lo - 1), fputs(", ", out), emit_layout(e, lo);
        fprintf(out, ", MB, %s, R->rank, %lld);\n    grad_to_%s%d = grt_pipe_new(", in_expr(e, lo, n, sizeof n), slots,
                e->unit, c - 1);
        emit_layout(e, lo), fputs(", ", out), emit_layout(e, lo - 1);
        fprintf(out, ", MB, %s, R->rank, %lld);\n", in_expr(e, lo, n, sizeof n), slots);
    }
    if (c < e->C - 1) {
        fprintf(out, "    to_%s%d = grt_pipe_new(", e->unit, c + 1);
        emit_layout(e, hi - 1), fputs(", ", out), emit_layout(e, hi);
        fprintf(out, ", MB, %s, R->rank, %lld);\n    grad_from_%s%d = grt_pipe_new(", in_expr(e, hi, n, sizeof n),
                slots, e->unit, c + 1);
        emit_layout(e, hi), fputs(", ", out), emit_layout(e, hi - 1);
        fprintf(out, ", MB, %s, R->rank, %lld);\n", in_expr(e, hi, n, sizeof n), slots);
    }
}

/* Chunk c's layer shards set up, in the stage's arrays. */
static void emit_shards(const Emit *e, int c) {
    FILE *out = e->out;
    for (int i = e->plan->stage_start[c]; i < e->plan->stage_start[c + 1]; i++) {
        char tp[64], dp[64], slots[48] = "", ul[48] = "";
        shard_comment(e, i);
        if (e->v > 1) snprintf(slots, sizeof slots, ", .slots = %lld", (long long)held_of(e, c));
        if (split_of(e, i) > 1)
            snprintf(ul, sizeof ul, ", .%s = %s", cp_of(e, i) > 1 ? "cp" : "ulysses", ulysses_name(e, i));
        fprintf(out,
                "    grt_shard_setup(R, %d, %s, %s, &(GrtShardAt){.zero = %d, .once = %d, .ckpt = %d, .copy = %d,\n"
                "                                                .params = %lld, .state = %lld, .accum = %lld%s%s%s});\n",
                i, group_of(e, i, true, tp, sizeof tp), group_of(e, i, false, dp, sizeof dp), zero_of(e, i),
                reduces_once(e, i) && sdp_of(e, i), strat(e, i)->ckpt, i == e->head && e->tied_copy,
                (long long)e->poff[i], (long long)e->off[i], (long long)e->aoff[i], slots, sp_of(e, i) ? ", .sp = 1" : "",
                ul);
    }
}

/* Chunk c's layer inputs allocated, one per micro-batch it holds. */
static void emit_inputs(const Emit *e, int c) {
    int lo = e->plan->stage_start[c], hi = e->plan->stage_start[c + 1];
    fprintf(e->out, "    for (int s = 0; s < %lld; s++) {\n", (long long)held_of(e, c));
    for (int i = lo == 0 ? 1 : lo; i < hi; i++)
        fprintf(e->out, "        x%d[s] = grt_run_floats(R, %lld);\n", i, stream_floats(e, i));
    fprintf(e->out, "    }\n");
}

/* Chunk c's reshards between neighbouring layers of different layouts. */
static void emit_reshards(const Emit *e, int c) {
    FILE *out = e->out;
    for (int i = e->plan->stage_start[c]; i + 1 < e->plan->stage_start[c + 1]; i++) {
        if (same_layout(e, i, i + 1)) continue;
        char n[32];
        fprintf(out, "    fwd_%d_%d = grt_reshard_new(", i, i + 1);
        emit_layout(e, i), fputs(", ", out), emit_layout(e, i + 1);
        fprintf(out, ", MB, %s, R->rank);\n    bwd_%d_%d = grt_reshard_new(", in_expr(e, i + 1, n, sizeof n), i + 1, i);
        emit_layout(e, i + 1), fputs(", ", out), emit_layout(e, i);
        fprintf(out, ", MB, %s, R->rank);\n", in_expr(e, i + 1, n, sizeof n));
    }
}

/* Stage k's title: its ranks, its layers (chunk by chunk when interleaved), what it holds. */
static void emit_stage_title(const Emit *e, int k, int64_t slots) {
    FILE *out = e->out;
    const Plan *p = e->plan;
    fprintf(out, "/* ---- stage %d: ranks %lld-%lld, ", k, (long long)(k * e->stage_ranks),
            (long long)((k + 1) * e->stage_ranks - 1));
    if (e->v == 1) {
        fprintf(out, "layers %d-%d, %lld micro-batch%s in flight ---- */\n\n", p->stage_start[k], p->stage_start[k + 1] - 1,
                (long long)slots, slots == 1 ? "" : "es");
        return;
    }
    for (int c = k; c < e->C; c += e->pp)
        fprintf(out, "%schunk %d (layers %d-%d, %lld micro-batch%s held)", c > k ? ", " : "", c, p->stage_start[c],
                p->stage_start[c + 1] - 1, (long long)held_of(e, c), held_of(e, c) == 1 ? "" : "es");
    fprintf(out, " ---- */\n\n");
}

/* Stage k's declarations and its set-up: buffers, shards, activations, transfers. */
static void emit_setup(const Emit *e, int k) {
    FILE *out = e->out;
    int64_t slots = 0, gather = 0, scatter = 0, act = 0, stored = 0, params = 0, accum = 0;
    double work = 0, ckpt = 0;
    for (int i = 0; i < e->L; i++) {
        if (stage_of(e, i) != k) continue;
        const Strategy *s = strat(e, i);
        double B = (double)seqs_of(e, i), T = (double)e->spec->graph->layers[i]->seq;
        int64_t n = (int64_t)grt_size_params(&e->rs[i], s->tp), whole = (n + dp_of(e, i) - 1) / dp_of(e, i) * dp_of(e, i);
        if (held_of(e, chunk_of(e, i)) > slots) slots = held_of(e, chunk_of(e, i));
        stored = e->off[i] + e->stored[i], params = e->poff[i] + e->params[i], accum = e->aoff[i] + e->accum[i];
        if (sdp_of(e, i) && whole > gather) gather = whole;
        if (reduces_each(e, i) && whole > scatter) scatter = whole;
        int sp = sp_of(e, i), u = ul_of(e, i), cp = strategy_cp(s);
        int64_t div = (sp ? s->tp : 1) * split_of(e, i), in = stream_floats(e, i);
        int64_t out_f = i + 1 < e->L ? seqs_of(e, i) * in_floats(e, i + 1) / div : 0; /* its output, in its layout */
        if ((in > out_f ? in : out_f) > act) act = in > out_f ? in : out_f;
        int ck = s->ckpt && e->rs[i].kind == GRT_BLOCK; /* as runtime/run.c sets GrtLayer.ckpt */
        double w = u > 1 ? grt_size_work_ulysses(&e->rs[i], u, B, T) : grt_size_work(&e->rs[i], s->tp, sp, cp, B, T);
        double a = u > 1 ? grt_size_ckpt_ulysses(&e->rs[i], u, B, T, ck) : grt_size_ckpt(&e->rs[i], s->tp, sp, cp, B, T, ck);
        if (w > work) work = w;
        if (a > ckpt) ckpt = a;
    }
    emit_stage_title(e, k, slots);
    for (int c = k; c < e->C; c += e->pp) emit_chunk_decls(e, c);
    for (int c = k; e->v > 1 && c < e->C; c += e->pp) emit_pipe_decls(e, c);
    fprintf(out,
            "\n/* This rank's shards of the stage's layers, its buffers (floats), its activations\n"
            " * and transfers: every size and offset worked out by galvc. */\n"
            "static void stage%d_setup(GrtRun *R) {\n"
            "    grt_run_alloc(R, %d, &(GrtStageSizes){.params = %lld, .stored = %lld, .accum = %lld, .gather = %lld,\n"
            "                                         .scatter = %lld, .work = %.0f, .ckpt = %.0f, .slots = %lld});\n",
            k, k, (long long)params, (long long)stored, (long long)accum, (long long)gather, (long long)scatter, work,
            ckpt, (long long)slots);
    for (int c = k; c < e->C; c += e->pp) emit_shards(e, c);
    for (int c = k; c < e->C; c += e->pp) emit_inputs(e, c);
    fprintf(out, "    /* a layer's output before a reshard, the gradient flowing down, and its next */\n");
    fprintf(out, "    tmp = grt_run_floats(R, %lld);\n    dA = grt_run_floats(R, %lld);\n"
                 "    dB = grt_run_floats(R, %lld);\n",
            (long long)act, (long long)act, (long long)act);
    for (int c = k; c < e->C; c += e->pp) emit_reshards(e, c);
    for (int c = k; c < e->C; c += e->pp) emit_pipes(e, c);
    fprintf(out, "}\n\n");
}

/* The ranks of a group of layer i that holds this rank, in words ("TP group {0, 1}" for rank lists). */
static void group_words(const Emit *e, int i, bool tp) {
    char name[64];
    fprintf(e->out, "its %s group (%s_ranks)", tp ? "TP" : "DP", group_name(e, i, tp, name, sizeof name));
}

/* Does layer i run TP collectives of its own (so the program lists them between its phases)? */
static bool tp_phased(const Emit *e, int i) {
    GrtLayerKind k = e->rs[i].kind;
    return strat(e, i)->tp > 1 && (k != GRT_NORM || sp_of(e, i)) && k != GRT_PATCH && k != GRT_CLASSIFIER &&
           k != GRT_MERGE && !(k == GRT_BLOCK && e->rs[i].te);
}

/* Megatron-SP: the replicated tensors' gradients of this micro-batch's rows summed over layer i's TP group. */
static void emit_sp_shared(const Emit *e, int i) {
    char tp[64];
    group_name(e, i, true, tp, sizeof tp);
    fprintf(e->out,
            "    grt_allreduce(%s, grt_sp_shared_grads(l), %lld); /* the replicated tensors' gradients, summed */\n"
            "    grt_sp_shared_grads_add(l);\n",
            tp, (long long)grt_size_shared(&e->rs[i]));
}

/* A block's forward phases over its TP group: the attention and MLP outputs summed where Megatron sums them. */
static void emit_block_phases(const Emit *e, int i, const char *dst) {
    char tp[64];
    group_name(e, i, true, tp, sizeof tp);
    fprintf(e->out,
            "    grt_allreduce(%s, grt_block_attention(l, x%d[s]), %lld); /* attention's output projection, summed */\n"
            "    grt_allreduce(%s, grt_block_mlp(l, x%d[s]), %lld); /* the MLP's down projection, summed */\n"
            "    grt_block_output(l, %s);\n",
            tp, i, stream_floats(e, i), tp, i, stream_floats(e, i), dst);
}

/* A block's forward phases with Megatron-SP (Korthikanti et al. 2022,
 * section 4.2.2): each norm on this rank's rows, gathered before its
 * column-parallel GEMM; each row-parallel GEMM's sums scattered by rows. */
static void emit_sp_block_phases(const Emit *e, int i, const char *dst) {
    char tp[64];
    long long n = stream_floats(e, i);
    group_name(e, i, true, tp, sizeof tp);
    fprintf(e->out,
            "    grt_allgather(%s, grt_sp_norm1(l, x%d[s]), grt_layer_full(l), %lld); /* the first norm, gathered */\n"
            "    grt_reduce_scatter(%s, grt_sp_attention(l), grt_layer_local(l), %lld); /* attention's projection, "
            "summed, by rows */\n"
            "    grt_allgather(%s, grt_sp_norm2(l, x%d[s]), grt_layer_full(l), %lld); /* the second norm, gathered */\n"
            "    grt_reduce_scatter(%s, grt_sp_mlp(l), grt_layer_local(l), %lld); /* the MLP's down projection, summed, "
            "by rows */\n"
            "    grt_sp_output(l, %s);\n",
            tp, i, n, tp, n, tp, i, n, tp, n, dst);
}

/* A block's backward phases with Megatron-SP, the mirror of its forward:
 * each output gradient and kept norm gathered, each input gradient
 * scattered by rows, the replicated tensors' gradients summed. */
static void emit_sp_block_backward(const Emit *e, int i, const char *src, const char *dout, const char *dst) {
    char tp[64];
    long long n = stream_floats(e, i);
    group_name(e, i, true, tp, sizeof tp);
    fprintf(e->out,
            "    grt_allgather(%s, grt_sp_mlp_out_grad(l, %s), grt_layer_full(l), %lld); /* at the MLP's output */\n"
            "    grt_allgather(%s, grt_sp_kept_norm(l, 2), grt_sp_norm_full(l), %lld); /* the second norm again */\n"
            "    grt_reduce_scatter(%s, grt_sp_mlp_backward(l), grt_layer_local(l), %lld); /* at the MLP's input, by rows */\n"
            "    grt_allgather(%s, grt_sp_attention_out_grad(l, %s), grt_layer_full(l), %lld); /* at attention's output */\n"
            "    grt_allgather(%s, grt_sp_kept_norm(l, 1), grt_sp_norm_full(l), %lld); /* the first norm again */\n"
            "    grt_reduce_scatter(%s, grt_sp_attention_backward(l), grt_layer_local(l), %lld); /* at QKV's input, by rows */\n"
            "    grt_sp_input_backward(l, %s, %s);\n",
            tp, dout, n, tp, n, tp, n, tp, dout, n, tp, n, tp, n, src, dst);
    emit_sp_shared(e, i);
}

/* Layer i's forward into dst, its TP collectives on lines of their own. */
static void emit_layer_forward(const Emit *e, int i, const char *dst) {
    FILE *out = e->out;
    char src[32] = "NULL", tp[64];
    if (i) snprintf(src, sizeof src, "x%d[s]", i);
    if (!tp_phased(e, i)) {
        fprintf(out, "    grt_shard_forward(R, %d, s, %s, %s); /* ", i, src, dst);
        comment_name(e, i);
        fprintf(out, "%s */\n", i == e->head ? ": the loss" : "");
        return;
    }
    group_name(e, i, true, tp, sizeof tp);
    bool sp = sp_of(e, i);
    switch (e->rs[i].kind) {
    case GRT_EMBEDDING:
        if (sp) fprintf(out, "    l = grt_shard(R, %d, s);\n    grt_reduce_scatter(%s, grt_shard_embed(R, %d, s, grt_layer_full(l)), "
                             "%s, %lld); /* ", i, tp, i, dst, stream_floats(e, i));
        else fprintf(out, "    grt_allreduce(%s, grt_shard_embed(R, %d, s, %s), %lld); /* ", tp, i, dst, stream_floats(e, i));
        comment_name(e, i);
        fprintf(out, ": each rank's vocabulary rows, summed%s */\n", sp ? ", by rows" : "");
        if (e->rs[i].dropout > 0) fprintf(out, "    grt_embedding_output(grt_shard(R, %d, s), %s); /* its dropout */\n", i, dst);
        break;
    case GRT_BLOCK:
        fprintf(out, "    l = grt_shard(R, %d, s); /* ", i);
        comment_name(e, i);
        fprintf(out, " */\n");
        if (sp) emit_sp_block_phases(e, i, dst);
        else emit_block_phases(e, i, dst);
        break;
    case GRT_HEAD: {
        long long vl = (e->rs[i].V + strat(e, i)->tp - 1) / strat(e, i)->tp;
        char in[64];
        snprintf(in, sizeof in, "%s", sp ? "grt_layer_full(l)" : src);
        fprintf(out, "    l = grt_shard(R, %d, s); /* ", i);
        comment_name(e, i);
        fprintf(out, " */\n");
        if (sp) fprintf(out, "    grt_allgather(%s, %s, grt_layer_full(l), %lld); /* its input, gathered */\n", tp, src,
                        stream_floats(e, i));
        fprintf(out, "    grt_allgather(%s, grt_head_logits(l, %s), grt_head_gathered(l), %lld); /* every rank's "
                     "vocabulary rows */\n    grt_shard_loss(R, %d, s); /* the loss */\n",
                tp, in, vl * seqs_of(e, i) * (long long)grt_head_rows(&e->rs[i], (double)e->seq), i);
        break;
    }
    case GRT_NORM:
        fprintf(out, "    grt_shard_forward(R, %d, s, %s, %s); /* ", i, src, dst);
        comment_name(e, i);
        fprintf(out, ": this rank's rows */\n");
        break;
    case GRT_PATCH:
    case GRT_CLASSIFIER:
    case GRT_MERGE: break;
    }
}

/* Layer i's backward from dout into dst, its TP collectives on lines of their own. */
static void emit_layer_backward(const Emit *e, int i, const char *src, const char *dout, const char *dst) {
    FILE *out = e->out;
    char tp[64];
    if (!tp_phased(e, i) || (e->rs[i].kind == GRT_EMBEDDING && !sp_of(e, i))) {
        fprintf(out, "    grt_shard_backward(R, %d, s, %s, %s, %s); /* ", i, src, i == e->head ? "NULL" : dout, dst);
        comment_name(e, i);
        fprintf(out, " */\n");
        return;
    }
    group_name(e, i, true, tp, sizeof tp);
    if (e->rs[i].kind == GRT_NORM) {
        fprintf(out, "    grt_shard_backward(R, %d, s, %s, %s, %s); /* ", i, src, dout, dst);
        comment_name(e, i);
        fprintf(out, ": this rank's rows */\n    l = grt_shard(R, %d, s);\n", i);
        emit_sp_shared(e, i);
        return;
    }
    fprintf(out, "    l = grt_shard_backward_begin(R, %d, s, %s); /* ", i, sp_of(e, i) && e->rs[i].kind == GRT_EMBEDDING ? "NULL" : dst);
    comment_name(e, i);
    fprintf(out, " */\n");
    if (e->rs[i].kind == GRT_EMBEDDING) { /* Megatron-SP: its gradient gathered (its dropout on this rank's rows first) */
        fprintf(out, "    grt_allgather(%s, grt_sp_embed_grad(l, %s), grt_layer_full(l), %lld); /* its output's gradient */\n"
                     "    grt_shard_embed_backward(R, %d, s, grt_layer_full(l));\n",
                tp, dout, stream_floats(e, i), i);
        return;
    }
    if (e->rs[i].kind == GRT_HEAD && sp_of(e, i)) {
        fprintf(out, "    grt_allgather(%s, %s, grt_layer_full(l), %lld); /* its input, gathered again */\n"
                     "    grt_reduce_scatter(%s, grt_shard_head_grad(R, %d, s, grt_layer_full(l)), grt_layer_local(l), %lld); "
                     "/* the input gradient, summed, by rows */\n"
                     "    grt_head_input_backward(l, %s);\n",
                tp, src, stream_floats(e, i), tp, i, stream_floats(e, i), dst);
        return;
    }
    if (e->rs[i].kind == GRT_HEAD) {
        fprintf(out, "    grt_allreduce(%s, grt_shard_head_grad(R, %d, s, %s), %lld); /* the input gradient, summed */\n"
                     "    grt_head_input_backward(l, %s);\n",
                tp, i, src, (long long)(seqs_of(e, i) * grt_head_rows(&e->rs[i], (double)e->seq) * e->hidden), dst);
        return;
    }
    if (strat(e, i)->ckpt) {
        fprintf(out, "    /* checkpointed: its forward rebuilt first (Chen et al. 2016) */\n");
        if (sp_of(e, i)) emit_sp_block_phases(e, i, "NULL");
        else emit_block_phases(e, i, "NULL");
    }
    if (sp_of(e, i)) {
        emit_sp_block_backward(e, i, src, dout, dst);
        return;
    }
    fprintf(out,
            "    grt_allreduce(%s, grt_block_mlp_backward(l, %s), %lld); /* at the MLP's input, summed */\n"
            "    grt_allreduce(%s, grt_block_attention_backward(l, %s, %s), %lld); /* at attention's input, summed */\n"
            "    grt_block_input_backward(l, %s, %s);\n",
            tp, dout, stream_floats(e, i), tp, src, dout, stream_floats(e, i), src, dst);
}

/* Does chunk c list a block or head in phases (and so need a layer variable)? */
static bool stage_phased(const Emit *e, int c, bool backward) {
    for (int i = e->plan->stage_start[c]; i < e->plan->stage_start[c + 1]; i++) {
        GrtLayerKind k = e->rs[i].kind;
        if (tp_phased(e, i) && (k != GRT_EMBEDDING || sp_of(e, i)) && (k != GRT_NORM || backward)) return true;
    }
    return false;
}

/* The tags of the messages between chunk c and c + 1 (forward) or back: one pair for a
 * plain pipeline; interleaved, a pair per boundary, since one pair of stages carries several. */
static const char *tag_name(const Emit *e, int c, bool backward, char *buf, size_t n) {
    if (e->v == 1) snprintf(buf, n, backward ? "TAG_BWD" : "TAG_FWD");
    else if (backward) snprintf(buf, n, "TAG_GRAD_TO_CHUNK%d", c);
    else snprintf(buf, n, "TAG_TO_CHUNK%d", c + 1);
    return buf;
}

/* Chunk c's forward of one micro-batch (stage c's, not interleaved): every layer call and transfer in order. */
static void emit_forward(const Emit *e, int c) {
    FILE *out = e->out;
    int lo = e->plan->stage_start[c], hi = e->plan->stage_start[c + 1];
    char tag[48];
    if (e->v == 1)
        fprintf(out, "/* Stage %d's forward of micro-batch mb, on activation slot s. */\n"
                     "static void stage%d_forward(GrtRun *R, int mb, int s) {\n"
                     "    grt_run_batch(R, mb, s); /* its tokens and targets */\n", c, c);
    else {
        fprintf(out, "/* Chunk %d's forward (on stage %d) of micro-batch mb, on activation slot s. */\n"
                     "static void chunk%d_forward(GrtRun *R, int mb, int s) {\n", c, c % e->pp, c);
        if (lo == 0 || hi - 1 == e->head) fprintf(out, "    grt_run_batch(R, mb, s); /* its tokens and targets */\n");
        else fprintf(out, "    (void)mb;\n");
    }
    if (stage_phased(e, c, false)) fprintf(out, "    GrtLayer *l;\n");
    if (c > 0) {
        fprintf(out, "    grt_pipe_recv(from_%s%d, R->world, x%d[s], %s); /* ", e->unit, c - 1, lo,
                tag_name(e, c - 1, false, tag, sizeof tag));
        comment_name(e, lo);
        fprintf(out, "'s input, from %s %d */\n", e->unit, c - 1);
    }
    for (int i = lo; i < hi; i++) {
        char dst[64];
        if (i == e->head) snprintf(dst, sizeof dst, "NULL");
        else if (i + 1 == hi) snprintf(dst, sizeof dst, "grt_pipe_buffer(to_%s%d, s)", e->unit, c + 1);
        else if (!same_layout(e, i, i + 1)) snprintf(dst, sizeof dst, "tmp");
        else snprintf(dst, sizeof dst, "x%d[s]", i + 1);
        if (sdp_of(e, i)) {
            fprintf(out, "    grt_zero3_gather(R, %d); /* ZeRO-3: ", i);
            comment_name(e, i);
            fprintf(out, "'s parameters gathered from ");
            group_words(e, i, false);
            fprintf(out, " */\n");
        }
        emit_layer_forward(e, i, dst);
        if (i + 1 < hi && !same_layout(e, i, i + 1)) {
            fprintf(out, "    grt_reshard_run(fwd_%d_%d, R->world, tmp, x%d[s], TAG_RESHARD_FWD); /* TP %d%s -> TP %d%s%s */\n",
                    i, i + 1, i + 1, strat(e, i)->tp, sp_of(e, i) ? " SP" : "", strat(e, i + 1)->tp,
                    sp_of(e, i + 1) ? " SP" : "", same_groups(e, i, i + 1) ? ", the sequence split changed" :
                    strat(e, i)->tp == strat(e, i + 1)->tp ? ", another nesting" : "");
        }
        if (i + 1 == hi && c < e->C - 1)
            fprintf(out, "    grt_pipe_send(to_%s%d, R->world, s, %s); /* to %s %d */\n", e->unit, c + 1,
                    tag_name(e, c, false, tag, sizeof tag), e->unit, c + 1);
    }
    fprintf(out, "}\n\n");
}

/* Stage k's backward of one micro-batch, from its last layer down: each
 * layer's gradient reduced where it is complete. */
static void emit_backward(const Emit *e, int c) {
    FILE *out = e->out;
    int lo = e->plan->stage_start[c], hi = e->plan->stage_start[c + 1];
    bool uses_mb = false;
    char tag[48];
    for (int i = lo; i < hi; i++) uses_mb |= !reduces_each(e, i) && dp_of(e, i) > 1 && e->stored[i] > 0;
    if (e->v == 1)
        fprintf(out, "/* Stage %d's backward of micro-batch mb, on activation slot s. */\n"
                     "static void stage%d_backward(GrtRun *R, int mb, int s) {\n", c, c);
    else
        fprintf(out, "/* Chunk %d's backward (on stage %d) of micro-batch mb, on activation slot s. */\n"
                     "static void chunk%d_backward(GrtRun *R, int mb, int s) {\n", c, c % e->pp, c);
    if (!uses_mb || e->plan->micro_batches == 1) fprintf(out, "    (void)mb;\n");
    if (stage_phased(e, c, true)) fprintf(out, "    GrtLayer *l;\n");
    const char *dout = "dA", *din = "dB";
    if (c < e->C - 1)
        fprintf(out, "    grt_pipe_recv(grad_from_%s%d, R->world, dA, %s); /* from %s %d */\n", e->unit, c + 1,
                tag_name(e, c, true, tag, sizeof tag), e->unit, c + 1);
    for (int i = hi - 1; i >= lo; i--) {
        char dst[64], src[32] = "NULL", dp[64];
        if (i) snprintf(src, sizeof src, "x%d[s]", i);
        if (i == 0) snprintf(dst, sizeof dst, "NULL");
        else if (i == lo && c > 0) snprintf(dst, sizeof dst, "grt_pipe_buffer(grad_to_%s%d, s)", e->unit, c - 1);
        else snprintf(dst, sizeof dst, "%s", din);
        if (sdp_of(e, i)) {
            fprintf(out, "    grt_zero3_gather(R, %d); /* ZeRO-3: ", i);
            comment_name(e, i);
            fprintf(out, "'s parameters gathered again */\n");
        }
        emit_layer_backward(e, i, src, dout, dst);
        const Strategy *s = strat(e, i);
        const char *last = e->plan->micro_batches > 1 ? "if (mb == MICRO_BATCHES - 1) " : "";
        if (reduces_each(e, i) && e->stored[i] > 0) {
            fprintf(out, "    grt_zero_reduce(R, %d); /* ZeRO-%d: its gradient reduce-scattered over ", i, zero_of(e, i));
            group_words(e, i, false);
            fprintf(out, ", this rank's part added to its own */\n");
        } else if (reduces_once(e, i) && e->stored[i] > 0) {
            fprintf(out, "    %sgrt_zero_reduce_once(R, %d); /* ZeRO-%d: ", last, i, zero_of(e, i));
            comment_name(e, i);
            fprintf(out, "'s gradient, complete, reduce-scattered over ");
            group_words(e, i, false);
            fprintf(out, " */\n");
        } else if (dp_of(e, i) > 1 && e->stored[i] > 0) {
            fprintf(out, "    %sgrt_allreduce(%s, R->grads + %lld, %lld); /* ", last,
                    group_of(e, i, false, dp, sizeof dp), (long long)e->off[i], (long long)e->stored[i]);
            comment_name(e, i);
            fprintf(out, "'s gradient, complete, summed over ");
            group_words(e, i, false);
            fprintf(out, " */\n");
        }
        if (i > lo) {
            if (!same_layout(e, i - 1, i))
                fprintf(out, "    grt_reshard_run(bwd_%d_%d, R->world, %s, %s, TAG_RESHARD_BWD); /* TP %d -> TP %d */\n", i,
                        i - 1, din, dout, s->tp, strat(e, i - 1)->tp);
            else {
                const char *t = dout;
                dout = din, din = t;
            }
        } else if (c > 0) {
            fprintf(out, "    grt_pipe_send(grad_to_%s%d, R->world, s, %s); /* to %s %d */\n", e->unit, c - 1,
                    tag_name(e, c - 1, true, tag, sizeof tag), e->unit, c - 1);
        }
    }
    fprintf(out, "}\n\n");
}

/* Stage k's passes in order, and its step. */
static void emit_step(const Emit *e, int k) {
    FILE *out = e->out;
    const Plan *p = e->plan;
    int64_t m = p->micro_batches, slots = p->in_flight[k];
    int64_t *mb = arena_alloc(e->spec->arena, sizeof *mb * (size_t)(2 * m)); /* >= 0: forward; < 0: backward of -mb - 1 */
    int64_t n = schedule_order(p->schedule, e->pp, k, m, mb);
    fprintf(out, "/* Stage %d's micro-batch passes in order, %s:\n *  ", k,
            p->schedule == SCHED_GPIPE ? "GPipe (all forwards, then all backwards; Huang et al. 2019)"
                                       : "1F1B (warm-up forwards, then one forward and one backward;\n *  "
                                         "Narayanan et al. 2021)");
    for (int64_t j = 0; j < n; j++) fprintf(out, " %c%lld", mb[j] >= 0 ? 'F' : 'B', (long long)(mb[j] >= 0 ? mb[j] : -mb[j] - 1));
    fprintf(out, " */\nstatic const GrtPass stage%d_passes[%lld] = {", k, (long long)n);
    for (int64_t j = 0; j < n; j++) {
        int64_t b = mb[j] >= 0 ? mb[j] : -mb[j] - 1;
        fprintf(out, "%s{%d, %lld, %lld}", j ? ", " : "", mb[j] < 0, (long long)b, (long long)(b % slots));
    }
    fprintf(out, "};\n\nstatic void stage%d_step(GrtRun *R) {\n"
                 "    for (int k = 0; k < %lld; k++) {\n"
                 "        GrtPass p = stage%d_passes[k];\n"
                 "        if (p.backward) stage%d_backward(R, p.mb, p.slot);\n"
                 "        else stage%d_forward(R, p.mb, p.slot);\n    }\n",
            k, (long long)n, k, k, k);
    if (k < e->pp - 1) fprintf(out, "    grt_pipe_drain(to_stage%d);\n", k + 1);
    if (k > 0) fprintf(out, "    grt_pipe_drain(grad_to_stage%d);\n", k - 1);
    fprintf(out, "}\n\n");
}

/* Interleaved, stage k's passes over its chunks in Megatron's order (ir/schedule.c), and its step. */
static void emit_interleaved_step(const Emit *e, int k) {
    FILE *out = e->out;
    int64_t m = e->plan->micro_batches, n2 = 2 * m * e->v;
    int64_t *mb = arena_alloc(e->spec->arena, sizeof *mb * (size_t)n2);
    int *chunk = arena_alloc(e->spec->arena, sizeof *chunk * (size_t)n2);
    int64_t n = schedule_interleaved(e->pp, e->v, k, m, chunk, mb);
    fprintf(out, "/* Stage %d's passes in order, interleaved 1F1B over its chunks (Narayanan et al. 2021,\n"
                 " * section 2.2.2): %lld warm-up forwards, then one forward and one backward, then the\n"
                 " * remaining backwards; cC:Fj is chunk C's forward of micro-batch j, cC:Bj its backward.\n *  ",
            k, (long long)(2 * (e->pp - k - 1) + (e->v - 1) * e->pp < m * e->v ? 2 * (e->pp - k - 1) + (e->v - 1) * e->pp
                                                                                   : m * e->v));
    for (int64_t j = 0; j < n; j++)
        fprintf(out, "%s c%d:%c%lld", j && j % 12 == 0 ? "\n *  " : "", chunk[j], mb[j] >= 0 ? 'F' : 'B',
                (long long)(mb[j] >= 0 ? mb[j] : -mb[j] - 1));
    fprintf(out, "\n * Each entry: {backward, micro-batch, activation slot, the stage's chunk (0: chunk %d", k);
    for (int j = 1; j < e->v; j++) fprintf(out, ", %d: chunk %d", j, j * e->pp + k);
    fprintf(out, ")}. */\nstatic const GrtChunkPass stage%d_passes[%lld] = {", k, (long long)n);
    for (int64_t j = 0; j < n; j++) {
        int64_t b = mb[j] >= 0 ? mb[j] : -mb[j] - 1;
        fprintf(out, "%s{%d, %lld, %lld, %d}", j ? ", " : "", mb[j] < 0, (long long)b,
                (long long)(b % held_of(e, chunk[j])), chunk[j] / e->pp);
    }
    fprintf(out, "};\nstatic void (*const stage%d_forward[%d])(GrtRun *, int, int) = {", k, e->v);
    for (int c = k; c < e->C; c += e->pp) fprintf(out, "%schunk%d_forward", c > k ? ", " : "", c);
    fprintf(out, "};\nstatic void (*const stage%d_backward[%d])(GrtRun *, int, int) = {", k, e->v);
    for (int c = k; c < e->C; c += e->pp) fprintf(out, "%schunk%d_backward", c > k ? ", " : "", c);
    fprintf(out, "};\n\nstatic void stage%d_step(GrtRun *R) {\n"
                 "    for (int k = 0; k < %lld; k++) {\n"
                 "        GrtChunkPass p = stage%d_passes[k];\n"
                 "        if (p.backward) stage%d_backward[p.chunk](R, p.mb, p.slot);\n"
                 "        else stage%d_forward[p.chunk](R, p.mb, p.slot);\n    }\n",
            k, (long long)n, k, k, k);
    for (int c = k; c < e->C; c += e->pp) {
        if (c < e->C - 1) fprintf(out, "    grt_pipe_drain(to_chunk%d);\n", c + 1);
        if (c > 0) fprintf(out, "    grt_pipe_drain(grad_to_chunk%d);\n", c - 1);
    }
    fprintf(out, "}\n\n");
}

/* Does the plan keep ZeRO-1/2 replicas, which every step's update refreshes? */
static bool has_replicas(const Emit *e) {
    for (int i = 0; i < e->L; i++)
        if ((zero_of(e, i) == 1 || zero_of(e, i) == 2) && e->stored[i] > 0) return true;
    return false;
}

/* Stage k after the optimizer stepped each rank's parts: ZeRO-1/2 replicas made whole again. */
static void emit_update(const Emit *e, int k) {
    FILE *out = e->out;
    fprintf(out, "/* Stage %d after the optimizer step (and after loading a checkpoint): each ZeRO-1/2\n"
                 " * layer's updated parts gathered into every rank's whole copy. */\n"
                 "static void stage%d_gather(GrtRun *R) {\n", k, k);
    bool any = false;
    for (int i = 0; i < e->L; i++) {
        if (stage_of(e, i) != k || (zero_of(e, i) != 1 && zero_of(e, i) != 2) || e->stored[i] == 0) continue;
        fprintf(out, "    grt_zero_gather_update(R, %d); /* ", i);
        comment_name(e, i);
        fprintf(out, ", over ");
        group_words(e, i, false);
        fprintf(out, " */\n");
        any = true;
    }
    if (!any) fprintf(out, "    (void)R;\n");
    fprintf(out, "}\n\n");
}

static void emit_main(const Emit *e) {
    FILE *out = e->out;
    fprintf(out, "int main(int argc, char **argv) {\n"
                 "    static void (*const setup[PP])(GrtRun *) = {");
    for (int k = 0; k < e->pp; k++) fprintf(out, "%sstage%d_setup", k ? ", " : "", k);
    fprintf(out, "};\n    static void (*const step[PP])(GrtRun *) = {");
    for (int k = 0; k < e->pp; k++) fprintf(out, "%sstage%d_step", k ? ", " : "", k);
    bool gather = has_replicas(e);
    if (gather) {
        fprintf(out, "};\n    static void (*const gather[PP])(GrtRun *) = {");
        for (int k = 0; k < e->pp; k++) fprintf(out, "%sstage%d_gather", k ? ", " : "", k);
    }
    fprintf(out, "};\n"
                 "    grt_kernels_use(&galvc_kernels); /* the kernels galvc generated for this plan's shapes */\n"
                 "    GrtRun *R = grt_run_start(&argc, &argv, &program); /* options; the ranks and memory checked */\n"
                 "    make_groups(R);\n"
                 "    setup[R->stage](R);\n"
                 "    grt_run_begin(R); /* --resume or --init-safetensors, the data, the log */\n");
    if (gather) fprintf(out, "    gather[R->stage](R); /* what was loaded: each rank's parts */\n");
    fprintf(out, "    while (grt_step_next(R)) {\n"
                 "        step[R->stage](R);\n");
    if (e->tied_copy)
        fprintf(out, "        grt_tied_sync(R, %d, %d); /* both copies of the tied table take their summed gradient */\n",
                e->tied_to, e->head);
    fprintf(out, "        grt_step_end(R); /* the loss, the gradient norm, clipping, AdamW, the step's report */\n");
    if (gather) fprintf(out, "        gather[R->stage](R);\n");
    fprintf(out, "    }\n"
                 "    return grt_run_finish(R); /* the memory report, --dump, --export-safetensors */\n}\n");
}

bool emit_c(FILE *out, const Spec *spec, const Plan *plan, int64_t devices, const char *source_name, Diag *d) {
    const Graph *g = spec->graph;
    if (!emit_c_runs(spec, plan, d)) return false;
    Emit e = {.out = out, .spec = spec, .plan = plan, .L = g->n_layers, .pp = plan->pp, .head = g->n_layers - 1,
              .v = plan->vpp > 1 ? plan->vpp : 1, .C = plan_chunks(plan), .unit = plan->vpp > 1 ? "chunk" : "stage",
              .tied_to = -1, .ranks = devices, .stage_ranks = devices / plan->pp,
              .mb = spec->train->global_batch / plan->micro_batches, .seq = stream_rows(spec),
              .hidden = g->layers[0]->hidden};
    for (int i = 0; i < e.L; i++)
        if (g->layers[i]->kind == LAYER_EMBEDDING) e.tied_to = i;
    const Layer *head = g->layers[e.head];
    e.tied_copy = e.tied_to >= 0 && head->kind == LAYER_LM_HEAD && head->tied &&
                  (!same_layout(&e, e.tied_to, e.head) || zero_of(&e, e.tied_to) || zero_of(&e, e.head));
    layout_state(&e, spec->arena);

    fprintf(out, "/* train.c — the training program galvc wrote for model ");
    c_comment_text(out, g->name);
    fprintf(out, " (");
    c_comment_text(out, source_name);
    fprintf(out, "): the plan, written out.\n *\n"
                 " * %lld ranks in %d pipeline stage%s of %lld; a step is %lld micro-batch%s of %lld sequences x %lld tokens%s.\n",
            (long long)devices, e.pp, e.pp == 1 ? "" : "s", (long long)e.stage_ranks, (long long)plan->micro_batches,
            plan->micro_batches == 1 ? "" : "es", (long long)e.mb, (long long)e.seq,
            e.pp == 1 ? "" : plan->schedule == SCHED_GPIPE ? ", GPipe" : e.v > 1 ? ", interleaved 1F1B" : ", 1F1B");
    if (e.v > 1)
        fprintf(out, " * Interleaved: the layers are cut into %d chunks, chunk c on stage c mod %d, so each stage\n"
                     " * holds %d; chunkC_forward and chunkC_backward take one micro-batch through chunk C, and each\n"
                     " * stage's passes interleave its chunks (Narayanan et al. 2021, section 2.2.2).\n",
                e.C, e.pp, e.v);
    fprintf(out,
            " * Read it from main() at the bottom: each rank makes its groups, sets up its stage's\n"
            " * shards and runs that stage's passes each step. stageK_forward and stageK_backward\n"
            " * take one micro-batch through stage K: every layer call, every collective and every\n"
            " * transfer in the order it runs. A layer's DP index j holds sequences [j B, (j + 1) B)\n"
            " * of each micro-batch (B sequences per rank); its TP group splits its heads, FFN\n"
            " * columns and vocabulary rows (Megatron-LM), and a layer split so runs in the phases\n"
            " * between its TP collectives, each collective a line of its own.\n"
            " * Everything that is not the plan is libgalvrt's (galvrt.h).\n"
            " * Run: mpirun -np %lld ./train [--steps K] [--seed S] [--data FILE] [--lr X] [--log FILE.jsonl]\n"
            " *      [--dump FILE] [--ckpt-dir DIR [--ckpt-every K] [--ckpt-keep N] [--resume]]\n"
            " *      [--init-safetensors FILE] [--export-safetensors FILE] */\n",
            (long long)devices);
    fprintf(out, "#include \"galvrt.h\"\n\n");
    fprintf(out, "enum { RANKS = %lld, PP = %d, N_LAYERS = %d, MICRO_BATCHES = %lld, SEQ = %lld, HIDDEN = %lld };\n",
            (long long)devices, e.pp, e.L, (long long)plan->micro_batches, (long long)e.seq, (long long)e.hidden);
    fprintf(out, "enum { MB = %lld }; /* sequences per micro-batch, all DP ranks together */\n", (long long)e.mb);
    if (e.v == 1) fprintf(out, "enum { TAG_FWD = 1, TAG_BWD = 2, TAG_RESHARD_FWD = 3, TAG_RESHARD_BWD = 4 };\n\n");
    else {
        fprintf(out, "enum { TAG_RESHARD_FWD = 3, TAG_RESHARD_BWD = 4 };\n"
                     "/* Each chunk boundary's own tags: one pair of stages carries several boundaries. */\nenum {");
        for (int c = 0; c + 1 < e.C; c++)
            fprintf(out, "%sTAG_TO_CHUNK%d = %d, TAG_GRAD_TO_CHUNK%d = %d", c ? ", " : " ", c + 1, 5 + 2 * c, c, 6 + 2 * c);
        fprintf(out, " };\n\n");
    }
    emit_specs(&e);
    emit_program(&e, g->name);
    emit_groups(&e);
    fprintf(out, "/* The stage's working activations (set up by its stage): a layer's output before a\n"
                 " * reshard, and the gradient flowing down the stage and its next. */\n"
                 "static float *tmp, *dA, *dB;\n\n");
    for (int k = 0; k < e.pp; k++) {
        emit_setup(&e, k);
        for (int c = k; c < e.C; c += e.pp) {
            emit_forward(&e, c);
            emit_backward(&e, c);
        }
        if (e.v > 1) emit_interleaved_step(&e, k);
        else emit_step(&e, k);
        if (has_replicas(&e)) emit_update(&e, k);
    }
    emit_main(&e);
    return !ferror(out);
}
