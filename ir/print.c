/* print.c — readable views of the IR: `galvc --emit=ir` (a per-layer table
 * with totals) and `--emit=ir-json` (the same as JSON; schema in README.md). */
#include "ir.h"

#include <jansson.h>
#include <string.h>

/* 124439808 -> "124,439,808" */
static const char *grouped(char *buf, size_t n, int64_t v) {
    char raw[32];
    int len = snprintf(raw, sizeof raw, "%lld", (long long)(v < 0 ? -v : v));
    size_t o = 0;
    if (v < 0 && o + 1 < n) buf[o++] = '-';
    for (int i = 0; i < len && o + 2 < n; i++) {
        buf[o++] = raw[i];
        if ((len - i - 1) % 3 == 0 && i != len - 1) buf[o++] = ',';
    }
    buf[o] = 0;
    return buf;
}

/* "1024x768" */
static const char *shape_str(char *buf, size_t n, Shape s) {
    size_t o = 0;
    buf[0] = 0;
    for (int i = 0; i < s.rank && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? "x" : "", (long long)s.dim[i]);
    return buf;
}

/* Bytes with a binary unit, to three significant places: "1.50 MiB". */
const char *bytes_str(char *buf, size_t n, double b) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = 0;
    while (b >= 1024 && u < 5) b /= 1024, u++;
    if (u == 0) snprintf(buf, n, "%.0f B", b);
    else snprintf(buf, n, "%.*f %s", b < 10 ? 2 : b < 100 ? 1 : 0, b, units[u]);
    return buf;
}

static void print_cluster(FILE *out, const Cluster *c) {
    char mem[32];
    fprintf(out, "cluster %s: %lld node%s x %lld %s, %s each\n", c->name, (long long)c->nodes,
            c->nodes == 1 ? "" : "s", (long long)c->devices_per_node, device_kind_names[c->device],
            bytes_str(mem, sizeof mem, (double)c->memory));
}

static void print_train(FILE *out, const TrainConfig *t, const Graph *g) {
    int64_t seq = g->n_layers ? g->layers[0]->seq : t->seq;
    const Optimizer *o = &t->opt;
    fprintf(out, "train: global batch %lld, seq %lld, %s, %s(lr=%g", (long long)t->global_batch, (long long)seq,
            precision_names[t->precision], optimizer_names[o->kind], o->lr);
    if (o->kind != OPT_SGD) fprintf(out, ", betas=(%g, %g), eps=%g", o->beta1, o->beta2, o->eps);
    else fprintf(out, ", momentum=%g%s", o->momentum, o->nesterov ? ", nesterov" : "");
    fprintf(out, ", weight_decay=%g", o->weight_decay);
    if (o->clip > 0) fprintf(out, ", clip=%g", o->clip);
    fprintf(out, "), %lld steps", (long long)t->steps);
    if (t->warmup) fprintf(out, ", warm-up %lld steps", (long long)t->warmup);
    if (t->decay != DECAY_CONSTANT)
        fprintf(out, ", %s decay to %g by step %lld", decay_names[t->decay], t->min_lr, (long long)t->decay_steps);
    fputc('\n', out);
}

/* The per-layer table; figures are per sample (one sequence or image). */
void ir_print_table(FILE *out, const Spec *spec) {
    const Graph *g = spec->graph;
    char a[48], b[48], c[48], d[48];
    fprintf(out, "model %s: %d layers, %s parameters\n", g->name, g->n_layers,
            grouped(a, sizeof a, g->total_params));
    print_cluster(out, spec->cluster);
    print_train(out, spec->train, g);
    fprintf(out, "\nper sample:\n");
    fprintf(out, "%4s  %-20s %-16s %-12s %15s %14s %12s %12s\n", "#", "layer", "kind", "out", "params",
            "fwd GFLOP", "activations", "out");
    for (int i = 0; i < g->n_layers; i++) {
        const Layer *l = g->layers[i];
        fprintf(out, "%4d  %-20s %-16s %-12s %15s %14.3f %12s %12s\n", i, l->name, layer_kind_names[l->kind],
                shape_str(a, sizeof a, l->out), grouped(b, sizeof b, l->params), (double)l->fwd_flops / 1e9,
                bytes_str(c, sizeof c, (double)l->act_bytes), bytes_str(d, sizeof d, (double)l->out_bytes));
    }
    fprintf(out, "%4s  %-20s %-16s %-12s %15s %14.3f %12s\n", "", "total", "", "",
            grouped(a, sizeof a, g->total_params), (double)g->total_fwd_flops / 1e9,
            bytes_str(c, sizeof c, (double)g->total_act_bytes));
    fprintf(out, "backward: %.3f GFLOP per sample; forward + backward: %.3f GFLOP per sample\n",
            (double)g->total_bwd_flops / 1e9, (double)(g->total_fwd_flops + g->total_bwd_flops) / 1e9);
}

static json_t *shape_json(Shape s) {
    json_t *a = json_array();
    for (int i = 0; i < s.rank; i++) json_array_append_new(a, json_integer(s.dim[i]));
    return a;
}

/* Only the attributes that mean something for the kind. */
static json_t *attrs_json(const Layer *l) {
    json_t *o = json_object();
#define INT_ATTR(f)                                                           \
    if (l->f) json_object_set_new(o, #f, json_integer(l->f));
    INT_ATTR(vocab) INT_ATTR(hidden) INT_ATTR(heads) INT_ATTR(kv_heads) INT_ATTR(head_dim) INT_ATTR(ffn)
    INT_ATTR(positions) INT_ATTR(types) INT_ATTR(window) INT_ATTR(classes) INT_ATTR(image) INT_ATTR(patch)
    INT_ATTR(channels) INT_ATTR(enc_seq) INT_ATTR(rel_buckets)
#undef INT_ATTR
    switch (l->kind) {
    case LAYER_EMBEDDING: json_object_set_new(o, "pos", json_string(pos_names[l->pos])); break;
    case LAYER_ENCODER:
    case LAYER_DECODER:
    case LAYER_CROSS_DECODER:
        json_object_set_new(o, "norm", json_string(norm_names[l->norm]));
        json_object_set_new(o, "pre_norm", json_boolean(l->pre_norm));
        /* fall through */
    case LAYER_MLP: json_object_set_new(o, "act", json_string(activation_names[l->act])); break;
    case LAYER_LM_HEAD: json_object_set_new(o, "tied", json_boolean(l->tied)); break;
    case LAYER_CLASSIFIER: json_object_set_new(o, "pool", json_string(pool_names[l->pool])); break;
    default: break;
    }
    if (l->kind == LAYER_ENCODER || l->kind == LAYER_DECODER || l->kind == LAYER_CROSS_DECODER ||
        l->kind == LAYER_ATTENTION)
        json_object_set_new(o, "causal", json_boolean(l->causal));
    if (l->kind == LAYER_ENCODER && l->window) json_object_set_new(o, "shift", json_boolean(l->shift));
    return o;
}

static json_t *link_json(const Link *l) {
    if (!l->given) return json_null();
    return json_pack("{s:s, s:f, s:f}", "kind", link_kind_names[l->kind], "bandwidth_bytes_per_s", l->bandwidth,
                     "latency_s", l->latency);
}

/* The IR as one JSON document; returns 0 on success. */
int ir_print_json(FILE *out, const Spec *spec) {
    const Graph *g = spec->graph;
    const Cluster *c = spec->cluster;
    const TrainConfig *t = spec->train;
    json_t *layers = json_array();
    for (int i = 0; i < g->n_layers; i++) {
        const Layer *l = g->layers[i];
        json_t *j = json_pack("{s:i, s:s, s:s, s:i, s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:o}", "index", l->index,
                              "name", l->name, "kind", layer_kind_names[l->kind], "seq", (json_int_t)l->seq,
                              "in_shape", shape_json(l->in), "out_shape", shape_json(l->out), "params",
                              (json_int_t)l->params, "fwd_flops", (json_int_t)l->fwd_flops, "bwd_flops",
                              (json_int_t)l->bwd_flops, "act_bytes", (json_int_t)l->act_bytes, "out_bytes",
                              (json_int_t)l->out_bytes, "attrs", attrs_json(l));
        json_array_append_new(layers, j);
    }
    json_t *root = json_pack(
        "{s:s, s:I, s:I, s:I, s:I, s:{s:s, s:I, s:I, s:s, s:I, s:o, s:o}, s:{s:I, s:I, s:s, s:s, s:f, s:I}, s:o}",
        "model", g->name, "total_params", (json_int_t)g->total_params, "total_fwd_flops",
        (json_int_t)g->total_fwd_flops, "total_bwd_flops", (json_int_t)g->total_bwd_flops, "total_act_bytes",
        (json_int_t)g->total_act_bytes, "cluster", "name", c->name, "nodes", (json_int_t)c->nodes,
        "devices_per_node", (json_int_t)c->devices_per_node, "device", device_kind_names[c->device],
        "memory_bytes", (json_int_t)c->memory, "intra", link_json(&c->intra), "inter", link_json(&c->inter),
        "train", "global_batch", (json_int_t)t->global_batch, "seq",
        (json_int_t)(g->n_layers ? g->layers[0]->seq : t->seq), "precision", precision_names[t->precision],
        "optimizer", optimizer_names[t->opt.kind], "lr", t->opt.lr, "steps", (json_int_t)t->steps, "layers",
        layers);
    if (!root) return -1;
    int rc = json_dumpf(root, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fputc('\n', out);
    json_decref(root);
    return rc;
}
