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
        if (runtime_kind(l, &why) < 0) {
            diag_error(d, l->loc, "%s: %s", l->name, why);
            ok = false;
        } else if (mb % s->dp) {
            diag_error(d, l->loc, "%s: a micro-batch of %lld sequences does not split over DP %d", l->name,
                       (long long)mb, s->dp);
            ok = false;
        } else if ((l->kind == LAYER_ENCODER || l->kind == LAYER_DECODER) &&
                   (l->heads % s->tp || l->kv_heads % s->tp || l->ffn % s->tp)) {
            diag_error(d, l->loc, "%s: %lld heads, %lld key/value heads and FFN %lld do not split over TP %d", l->name,
                       (long long)l->heads, (long long)l->kv_heads, (long long)l->ffn, s->tp);
            ok = false;
        }
    }
    return ok;
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
    if (!emit_c_runs(spec, plan, d)) return false;
    int pp = plan->pp;
    int64_t seq = g->layers[0]->seq, batch = t->global_batch, m = plan->micro_batches;
    int64_t hidden = g->layers[0]->hidden;
    int tied_to = -1;
    for (int i = 0; i < g->n_layers; i++)
        if (g->layers[i]->kind == LAYER_EMBEDDING) tied_to = i;

    fprintf(out, "/* train.c — the training program galvc wrote for model ");
    c_comment_text(out, g->name);
    fprintf(out, " (");
    c_comment_text(out, source_name);
    fprintf(out, ").\n *\n"
                 " * Plan: %lld ranks in %d pipeline stage%s of %lld (stage k: ranks [k %lld, (k + 1) %lld)),\n"
                 " * %lld micro-batch%s of %lld sequences x %lld tokens a step, %s schedule.\n"
                 " * Each layer runs on its stage's ranks as TP x DP (placement[]): DP index j holds\n"
                 " * sequences [j mb / dp, (j + 1) mb / dp) of a micro-batch and its TP group splits\n"
                 " * the layer's heads, FFN columns and vocabulary rows; under SDP (ZeRO-3) the DP\n"
                 " * group also splits the parameters, gradients and Adam states. Between layers\n"
                 " * of different layouts, and between stages, activations and their gradients\n"
                 " * move to the ranks that need them.\n"
                 " * Build: galvc; run: mpirun -np %lld ./train [--steps K] [--seed S] [--data FILE]\n"
                 " *        [--lr X] [--log FILE.jsonl] [--dump FILE] [--ckpt-dir DIR [--ckpt-every K]\n"
                 " *        [--ckpt-keep N] [--resume]] [--init-safetensors FILE] [--export-safetensors FILE] */\n",
            (long long)devices, pp, pp == 1 ? "" : "s", (long long)(devices / pp), (long long)(devices / pp),
            (long long)(devices / pp), (long long)m, m == 1 ? "" : "es", (long long)(batch / m), (long long)seq,
            plan->schedule == SCHED_GPIPE ? "GPipe" : "1F1B", (long long)devices);
    fprintf(out, "#include \"galvrt.h\"\n\n");
    fprintf(out, "#define MODEL_NAME ");
    c_string(out, g->name);
    fprintf(out, "\n\nenum { RANKS = %lld, PP = %d, STAGE_RANKS = RANKS / PP, SCHEDULE_1F1B = %d };\n",
            (long long)devices, pp, plan->schedule != SCHED_GPIPE);
    fprintf(out, "enum { GLOBAL_BATCH = %lld, MICRO_BATCHES = %lld, SEQ = %lld, VOCAB = %lld, HIDDEN = %lld };\n",
            (long long)batch, (long long)m, (long long)seq, (long long)g->layers[g->n_layers - 1]->vocab,
            (long long)hidden);
    fprintf(out, "enum { MB = GLOBAL_BATCH / MICRO_BATCHES }; /* sequences per micro-batch, all DP ranks together */\n");
    fprintf(out, "enum { N_LAYERS = %d, TIED_TO = %d, DEFAULT_STEPS = %lld };\n", g->n_layers, tied_to,
            (long long)t->steps);
    fprintf(out, "static const double FWD_FLOPS_PER_SEQ = %.17g; /* forward FLOPs of one sequence, whole model */\n",
            (double)g->total_fwd_flops);
    const Optimizer *o = &t->opt;
    fprintf(out, "static const float LR = %.9g, BETA1 = %.9g, BETA2 = %.9g, EPS = %.9g, WEIGHT_DECAY = %.9g, "
                 "CLIP = %.9g;\n\n",
            o->lr, o->beta1, o->beta2, o->eps, o->weight_decay, o->clip);
    fprintf(out, "/* What the planner predicted: a step's time, and each stage's peak memory per\n"
                 " * rank; the cluster's memory per device (the program refuses a plan over it). */\n");
    fprintf(out, "static const double PREDICTED_STEP_MS = %.6g, MEMORY_PER_DEVICE = %.17g;\n", plan->step_s * 1e3,
            (double)plan->budget);
    fprintf(out, "static const double PREDICTED_COMPUTE_MS = %.6g, PREDICTED_COMM_MS = %.6g, PREDICTED_BUBBLE_MS = %.6g;\n",
            plan->compute_s * 1e3, plan->comm_s * 1e3, plan->bubble_s * 1e3);
    fprintf(out, "static const double PREDICTED_CALLS = %.6g; /* blocking collectives a step, busiest stage */\n",
            plan->calls);
    fprintf(out, "static const double predicted_mem[PP] = {");
    for (int k = 0; k < pp; k++) fprintf(out, "%s%lld", k ? ", " : "", (long long)plan->stage_mem[k]);
    fprintf(out, "};\n/* Stage k runs layers [stage_start[k], stage_start[k + 1]), holding in_flight[k]\n"
                 " * micro-batches' activations at once. */\n");
    fprintf(out, "static const int stage_start[PP + 1] = {");
    for (int k = 0; k <= pp; k++) fprintf(out, "%s%d", k ? ", " : "", plan->stage_start[k]);
    fprintf(out, "};\nstatic const int in_flight[PP] = {");
    for (int k = 0; k < pp; k++) fprintf(out, "%s%lld", k ? ", " : "", (long long)plan->in_flight[k]);
    fprintf(out, "};\n\n/* The layers, whole; grt_layer_setup cuts rank r's shard. */\n"
                 "static const GrtLayerSpec layer_specs[N_LAYERS] = {\n");
    for (int i = 0; i < g->n_layers; i++) emit_layer(out, spec, g->layers[i], plan->layer[i].tp);
    fprintf(out, "};\n\n/* Each layer's strategy: TP and DP degrees, DP sharded (ZeRO-3), TP groups on\n"
                 " * consecutive ranks (else strided by dp), activations checkpointed. */\n");
    fprintf(out, "static const struct {\n    int tp, dp, sdp, consec, ckpt;\n} placement[N_LAYERS] = {\n");
    for (int i = 0; i < g->n_layers; i++) {
        const Strategy *s = &plan->layer[i];
        char buf[96];
        fprintf(out, "    {%d, %d, %d, %d, %d}, /* ", s->tp, s->dp, s->sdp && s->dp > 1,
                strategy_tp_consecutive(s), s->ckpt);
        c_comment_text(out, g->layers[i]->name);
        fprintf(out, ": %s */\n", strategy_str(buf, sizeof buf, s));
    }
    fprintf(out, "};\n\n");
    fputs(program_body, out);
    return !ferror(out);
}
