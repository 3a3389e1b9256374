/* emit_c.c — writes the training program for one plan as readable C: the
 * plan's degrees and every shape as constants, the layers with their shard
 * sizes, how rank r finds its TP and DP groups, and the training step in
 * order (forward, backward with the DP gradient all-reduce started layer by
 * layer, the clipped AdamW update). The program links only libgalvrt.
 *
 * Names from the .gv file reach the C text only as escaped string literals
 * (c_string) or as identifier-like comment text (c_comment_text), so no
 * model can inject code. */
#include "backend.h"

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

/* The runtime's kind for a layer, or -1 (with the reason) when it has none yet. */
static int runtime_kind(const Layer *l, const char **why) {
    *why = NULL;
    if (l->dropout > 0) return *why = "dropout is not trained yet", -1;
    switch (l->kind) {
    case LAYER_EMBEDDING:
        if (l->types) return *why = "token-type embeddings are not trained yet", -1;
        return 0;
    case LAYER_ENCODER:
    case LAYER_DECODER:
        if (l->act != ACT_GELU && l->act != ACT_SWIGLU) return *why = "only GELU and SwiGLU MLPs are trained yet", -1;
        if (l->rel_buckets) return *why = "relative position biases are not trained yet", -1;
        return 1;
    case LAYER_LAYERNORM:
    case LAYER_RMSNORM: return 2;
    case LAYER_LM_HEAD:
        if (l->transform || l->bias) return *why = "an lm_head with a transform or a bias is not trained yet", -1;
        return 3;
    default: return *why = "this layer kind is not trained by the runtime yet", -1;
    }
}

/* Does the runtime run this plan: one TP degree and nesting and one DP
 * degree for every layer, no pipeline, no SDP (checkpointing anywhere)? */
bool emit_c_runs(const Spec *spec, const Plan *p, Diag *d) {
    const Strategy *s0 = &p->layer[0];
    char buf[96];
    for (int i = 0; i < spec->graph->n_layers; i++) {
        const Strategy *s = &p->layer[i];
        const Layer *l = spec->graph->layers[i];
        if (s->pp > 1 || s->sdp) {
            diag_error(d, l->loc, "%s: the runtime does not run %s yet (pipelines and sharded data parallel "
                                  "come next)", l->name, strategy_str(buf, sizeof buf, s));
            return false;
        }
        if (s->tp != s0->tp || s->dp != s0->dp || (s->tp > 1 && s->dp > 1 && s->tp_consec != s0->tp_consec)) {
            diag_error(d, l->loc, "%s: the runtime runs one TP and DP layout for every layer yet, not a mixed plan",
                       l->name);
            return false;
        }
    }
    return true;
}

static void emit_layer(FILE *out, const Spec *spec, const Layer *l, int tp) {
    const Graph *g = spec->graph;
    bool rope = g->layers[0]->kind == LAYER_EMBEDDING && g->layers[0]->pos == POS_ROTARY;
    fprintf(out, "    /* ");
    c_comment_text(out, l->name);
    switch (l->kind) {
    case LAYER_EMBEDDING:
        fprintf(out, ": vocabulary %lld, %lld rows per rank%s */\n", (long long)l->vocab,
                (long long)((l->vocab + tp - 1) / tp), l->pos == POS_LEARNED ? ", learned positions" : "");
        fprintf(out, "    {.kind = GRT_EMBEDDING, .name = ");
        c_string(out, l->name);
        fprintf(out, ", .C = %lld, .V = %lld, .positions = %lld},\n", (long long)l->hidden, (long long)l->vocab,
                (long long)(l->pos == POS_LEARNED ? l->positions : 0));
        break;
    case LAYER_ENCODER:
    case LAYER_DECODER:
        fprintf(out, ": %lld heads of %lld (%lld per rank), %lld key/value heads, FFN %lld (%lld per rank), %s, %s%s */\n",
                (long long)l->heads, (long long)l->head_dim, (long long)(l->heads / tp), (long long)l->kv_heads,
                (long long)l->ffn, (long long)(l->ffn / tp), l->causal ? "causal" : "bidirectional",
                l->pre_norm ? "pre-norm" : "post-norm", l->act == ACT_SWIGLU ? ", SwiGLU" : ", GELU");
        fprintf(out, "    {.kind = GRT_BLOCK, .name = ");
        c_string(out, l->name);
        fprintf(out,
                ", .C = %lld, .H = %lld, .KVH = %lld, .hd = %lld, .F = %lld,\n"
                "     .causal = %d, .pre_norm = %d, .rms = %d, .swiglu = %d, .bias = %d, .rope = %d, .eps = (float)%g, "
                ".rope_theta = 10000.0f},\n",
                (long long)l->hidden, (long long)l->heads, (long long)l->kv_heads, (long long)l->head_dim,
                (long long)l->ffn, l->causal, l->pre_norm, l->norm == NORM_RMSNORM, l->act == ACT_SWIGLU, l->bias,
                rope, l->eps);
        break;
    case LAYER_LAYERNORM:
    case LAYER_RMSNORM:
        fprintf(out, ": replicated on the TP group */\n    {.kind = GRT_NORM, .name = ");
        c_string(out, l->name);
        fprintf(out, ", .C = %lld, .rms = %d, .bias = %d, .eps = (float)%g},\n", (long long)l->hidden,
                l->kind == LAYER_RMSNORM, l->kind == LAYER_LAYERNORM && l->bias, l->eps);
        break;
    case LAYER_LM_HEAD:
        fprintf(out, ": vocabulary %lld, %s, logits gathered over the TP group for the loss */\n", (long long)l->vocab,
                l->tied ? "tied to the token embedding" : "its own table");
        fprintf(out, "    {.kind = GRT_HEAD, .name = ");
        c_string(out, l->name);
        fprintf(out, ", .C = %lld, .V = %lld, .tied = %d},\n", (long long)l->hidden, (long long)l->vocab, l->tied);
        break;
    default: break;
    }
}

/* The part of the program that does not depend on the plan. */
static const char program_body[] =
#include "train_body.inc"
    ;

bool emit_c(FILE *out, const Spec *spec, const Plan *plan, int64_t devices, const char *source_name, Diag *d) {
    const Graph *g = spec->graph;
    const TrainConfig *t = spec->train;
    bool ok = emit_c_runs(spec, plan, d);
    for (int i = 0; i < g->n_layers; i++) {
        const char *why;
        if (runtime_kind(g->layers[i], &why) < 0) {
            diag_error(d, g->layers[i]->loc, "%s: %s", g->layers[i]->name, why);
            ok = false;
        }
    }
    if (!ok) return false;
    const Strategy *s = &plan->layer[0];
    int tp = s->tp, dp = s->dp;
    int64_t seq = g->layers[0]->seq, batch = t->global_batch;
    int64_t hidden = g->layers[0]->hidden;
    int tied_to = -1;
    for (int i = 0; i < g->n_layers; i++)
        if (g->layers[i]->kind == LAYER_EMBEDDING) tied_to = i;

    fprintf(out, "/* train.c — the training program galvc wrote for model ");
    c_comment_text(out, g->name);
    fprintf(out, " (");
    c_comment_text(out, source_name);
    fprintf(out, ").\n *\n"
                 " * Plan: %lld ranks = TP %d x DP %d%s; each step takes %lld sequences of %lld tokens,\n"
                 " * as %lld micro-batch%s of %lld sequences on each rank.\n"
                 " * Rank r belongs to one TP group (tp_group) and one DP group (dp_group);\n"
                 " * it holds its TP group's shard of every layer (heads, FFN columns and\n"
                 " * vocabulary rows split %d ways) and trains on its DP group's share of the batch.\n"
                 " * Build: galvc; run: mpirun -np %lld ./train [--steps K] [--seed S] [--data FILE]\n"
                 " *        [--lr X] [--log FILE.jsonl] [--dump FILE] */\n",
            (long long)devices, tp, dp,
            tp > 1 && dp > 1 ? (s->tp_consec ? ", TP groups on consecutive ranks" : ", TP groups strided") : "",
            (long long)batch, (long long)seq, (long long)plan->micro_batches, plan->micro_batches == 1 ? "" : "es",
            (long long)(batch / dp / plan->micro_batches), tp, (long long)devices);
    fprintf(out, "#include \"galvrt.h\"\n\n");
    fprintf(out, "#define MODEL_NAME ");
    c_string(out, g->name);
    fprintf(out, "\n\nenum { RANKS = %lld, TP = %d, DP = %d, TP_CONSECUTIVE = %d };\n", (long long)devices, tp, dp,
            s->tp_consec || tp == 1 || dp == 1);
    fprintf(out, "enum { GLOBAL_BATCH = %lld, MICRO_BATCHES = %lld, SEQ = %lld, VOCAB = %lld, HIDDEN = %lld };\n",
            (long long)batch, (long long)plan->micro_batches, (long long)seq,
            (long long)g->layers[g->n_layers - 1]->vocab, (long long)hidden);
    fprintf(out, "enum { LOCAL_BATCH = GLOBAL_BATCH / DP / MICRO_BATCHES }; /* sequences per micro-batch per rank */\n");
    fprintf(out, "enum { N_LAYERS = %d, TIED_TO = %d, DEFAULT_STEPS = %lld };\n", g->n_layers, tied_to,
            (long long)t->steps);
    fprintf(out, "static const double FWD_FLOPS_PER_SEQ = %.17g; /* forward FLOPs of one sequence, whole model */\n",
            (double)g->total_fwd_flops);
    const Optimizer *o = &t->opt;
    fprintf(out, "static const float LR = %.9g, BETA1 = %.9g, BETA2 = %.9g, EPS = %.9g, WEIGHT_DECAY = %.9g, "
                 "CLIP = %.9g;\n\n",
            o->lr, o->beta1, o->beta2, o->eps, o->weight_decay, o->clip);
    fprintf(out, "/* The layers, whole; grt_layer_setup cuts rank r's shard. */\nstatic const GrtLayerSpec layer_specs[N_LAYERS] = {\n");
    for (int i = 0; i < g->n_layers; i++) emit_layer(out, spec, g->layers[i], tp);
    fprintf(out, "};\n\n/* Checkpointed layers keep only their input and recompute their forward in backward. */\n");
    fprintf(out, "static const int checkpointed[N_LAYERS] = {");
    for (int i = 0; i < g->n_layers; i++) fprintf(out, "%s%d", i ? ", " : "", plan->layer[i].ckpt);
    fprintf(out, "};\n\n");
    fputs(program_body, out);
    return !ferror(out);
}
