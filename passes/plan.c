/* plan.c — the chosen plan, readable: stages with their layers and devices,
 * each layer's strategy, memory per stage against the budget, and the step
 * time split into compute, communication and bubble (`--emit=plan`), or the
 * same as JSON (`--emit=plan-json`, schema in README.md). */
#include "passes.h"

#include <jansson.h>

static void print_table(FILE *out, const Spec *spec, const Plan *p, int64_t devices) {
    const Graph *g = spec->graph;
    int64_t batch = spec->train->global_batch;
    int64_t tokens = batch * g->layers[0]->seq;
    char b1[32], b2[32];
    fprintf(out, "plan for %s on %lld x %s (%s each), global batch %lld\n", g->name, (long long)devices,
            device_kind_names[spec->cluster->device], bytes_str(b1, sizeof b1, (double)p->budget), (long long)batch);
    fprintf(out, "pp %d, %lld micro-batches, %s schedule; search took %.1f ms\n", p->pp, (long long)p->micro_batches,
            schedule_names[p->schedule], p->search_ms);
    fprintf(out, "predicted step %.3f s (compute %.3f, communication %.3f, bubble %.3f): %.2f samples/s, %.0f tokens/s\n",
            p->step_s, p->compute_s, p->comm_s, p->bubble_s, (double)batch / p->step_s, (double)tokens / p->step_s);
    int64_t n = devices / p->pp;
    char buf[96];
    for (int k = 0; k < p->pp; k++) {
        fprintf(out, "\nstage %d: layers %d-%d on devices %lld-%lld, %s of %s per device\n", k, p->stage_start[k],
                p->stage_start[k + 1] - 1, (long long)(k * n), (long long)((k + 1) * n - 1),
                bytes_str(b1, sizeof b1, (double)p->stage_mem[k]), bytes_str(b2, sizeof b2, (double)p->budget));
        for (int i = p->stage_start[k]; i < p->stage_start[k + 1]; i++)
            fprintf(out, "  %4d  %-20s %s\n", i, g->layers[i]->name, strategy_str(buf, sizeof buf, &p->layer[i]));
    }
}

static int print_json(FILE *out, const Spec *spec, const Plan *p, int64_t devices) {
    const Graph *g = spec->graph;
    json_t *layers = json_array(), *mem = json_array();
    for (int k = 0; k < p->pp; k++)
        for (int i = p->stage_start[k]; i < p->stage_start[k + 1]; i++) {
            const Strategy *s = &p->layer[i];
            json_array_append_new(layers, json_pack("{s:s, s:i, s:i, s:i, s:b, s:b, s:b}", "name", g->layers[i]->name,
                                                    "stage", k, "tp", s->tp, "dp", s->dp, "sdp", s->sdp, "ckpt",
                                                    s->ckpt, "tp_consecutive", s->tp_consec));
        }
    for (int k = 0; k < p->pp; k++) json_array_append_new(mem, json_integer(p->stage_mem[k]));
    int64_t batch = spec->train->global_batch;
    json_t *root = json_pack("{s:s, s:I, s:i, s:I, s:I, s:s, s:I, s:o, s:{s:f, s:f, s:f, s:f, s:f, s:o}, s:f}", "model",
                             g->name, "devices", (json_int_t)devices, "pp", p->pp, "micro_batches",
                             (json_int_t)p->micro_batches, "global_batch", (json_int_t)batch, "schedule",
                             schedule_names[p->schedule], "budget_bytes", (json_int_t)p->budget, "layers", layers,
                             "predicted", "step_ms", p->step_s * 1e3, "samples_per_s", (double)batch / p->step_s,
                             "compute_ms", p->compute_s * 1e3, "comm_ms", p->comm_s * 1e3, "bubble_ms",
                             p->bubble_s * 1e3, "peak_mem_bytes", mem, "search_ms", p->search_ms);
    if (!root) return -1;
    int rc = json_dumpf(root, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fputc('\n', out);
    json_decref(root);
    return rc;
}

int pass_plan(FILE *out, const Spec *spec, const Plan *plan, int64_t devices, bool json) {
    if (json) return print_json(out, spec, plan, devices);
    print_table(out, spec, plan, devices);
    return 0;
}
