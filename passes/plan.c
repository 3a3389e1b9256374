/* plan.c — the chosen plan, readable: stages with their layers and devices,
 * each layer's strategy, memory per stage against the budget, and the step
 * time split into compute, communication and bubble (`--emit=plan`), the
 * same as JSON (`--emit=plan-json`, schema in README.md), or as Galvatron's
 * own galvatron_config JSON (galvatron.c). With --explain, each layer also names its
 * runner-up strategy and what made it lose. */
#include "passes.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

/* Why a layer's strategy won: the best alternative that fits its stage, and
 * the fastest alternative, if it is faster still but does not fit. */
typedef struct Reason {
    int runner_up;   /* index in the cost table's strategies, -1 if none fits */
    double runner_dt; /* seconds per step the runner-up would add */
    int blocked;     /* a faster alternative that does not fit, or -1 */
    double blocked_dt;
    int64_t blocked_over; /* bytes it would need beyond the stage's budget */
} Reason;

typedef struct Explainer {
    CostTable t;
    int *index; /* [layer]: the plan's strategy as an index into t */
} Explainer;

static bool explainer_init(Explainer *x, const Spec *spec, const HwProfile *hw, const Plan *p, int64_t devices,
                           Arena *a) {
    StrategySet all, sub = {0};
    if (!pass_prune(devices, true, NULL, a, &all)) return false;
    int L = spec->graph->n_layers;
    sub.items = arena_alloc(a, (size_t)(all.n + L) * sizeof *sub.items);
    for (int k = 0; k < all.n; k++) {
        const Strategy *s = &all.items[k];
        int u = strategy_ulysses(s); /* Ulysses where the search would have it (search.c's rule) */
        bool ulysses = u == 1 || (search_offers_ulysses(spec) && graph_ulysses_splits(spec->graph, s->tp, u));
        if (s->pp == p->pp && ulysses && strategy_splits(s, spec->train->global_batch / p->micro_batches))
            sub.items[sub.n++] = *s;
    }
    x->index = arena_alloc(a, (size_t)L * sizeof *x->index);
    for (int i = 0; i < L; i++) {
        x->index[i] = -1;
        for (int k = 0; k < sub.n; k++)
            if (strategy_equal(&sub.items[k], &p->layer[i])) x->index[i] = k;
        /* a strategy the tree leaves out (ZeRO-1, ZeRO-3 accumulating once) joins the alternatives */
        if (x->index[i] < 0) x->index[i] = sub.n, sub.items[sub.n++] = p->layer[i];
    }
    return pass_cost(spec, hw, &sub, p->micro_batches, a, &x->t);
}

/* Swap layer i (of chunk c: its stage's, or an interleaved chunk) for each alternative, all else fixed. */
static Reason explain_layer(const Explainer *x, const Plan *p, int c, int i) {
    const CostTable *t = &x->t;
    int n = t->n_strategies, cur = x->index[i], stage = c % p->pp;
    int first = p->stage_start[c], last = p->stage_start[c + 1];
    double m = (double)t->micro_batches;
    int64_t in_flight = p->in_flight[c];
    Reason r = {-1, 0, -1, 0, 0};
    const LayerCost *c0 = &t->cost[(size_t)i * n + cur];
    for (int k = 0; k < n; k++) {
        if (k == cur) continue;
        const LayerCost *c = &t->cost[(size_t)i * n + k];
        double dt = m * (c->mb_s - c0->mb_s) + (c->step_s - c0->step_s);
        if (i > first) {
            const double *rs = &t->reshard[((size_t)i * n + x->index[i - 1]) * n];
            dt += m * (rs[k] - rs[cur]);
        }
        if (i + 1 < last) {
            const double *from_k = &t->reshard[((size_t)(i + 1) * n + k) * n];
            const double *from_cur = &t->reshard[((size_t)(i + 1) * n + cur) * n];
            dt += m * (from_k[x->index[i + 1]] - from_cur[x->index[i + 1]]);
        }
        int64_t dmem = (c->state_bytes + in_flight * c->act_bytes) - (c0->state_bytes + in_flight * c0->act_bytes);
        int64_t over = p->stage_mem[stage] + dmem - p->budget;
        if (over <= 0) {
            if (r.runner_up < 0 || dt < r.runner_dt) r.runner_up = k, r.runner_dt = dt;
        } else if (r.blocked < 0 || dt < r.blocked_dt) {
            r.blocked = k, r.blocked_dt = dt, r.blocked_over = over;
        }
    }
    if (r.blocked >= 0 && r.blocked_dt >= 0) r.blocked = -1; /* only a faster one needs a reason */
    return r;
}

static void print_reason(FILE *out, const Explainer *x, const Reason *r) {
    char s[96], b[32];
    if (r->runner_up >= 0)
        fprintf(out, "        runner-up %s: %+.3f ms per step\n",
                strategy_str(s, sizeof s, &x->t.strategies[r->runner_up]), r->runner_dt * 1e3);
    if (r->blocked >= 0)
        fprintf(out, "        %s would change the step by %+.3f ms but needs %s more than the stage has\n",
                strategy_str(s, sizeof s, &x->t.strategies[r->blocked]), r->blocked_dt * 1e3,
                bytes_str(b, sizeof b, (double)r->blocked_over));
}

static void print_table(FILE *out, const Spec *spec, const Plan *p, int64_t devices, const Explainer *x) {
    const Graph *g = spec->graph;
    int64_t batch = spec->train->global_batch;
    int64_t tokens = batch * g->layers[0]->seq;
    char b1[32], b2[32];
    fprintf(out, "plan for %s on %lld x %s (%s each), global batch %lld\n", g->name, (long long)devices,
            device_kind_names[spec->cluster->device], bytes_str(b1, sizeof b1, (double)p->budget), (long long)batch);
    if (spec->cluster->ranks_per_device > 1)
        fprintf(out, "%lld ranks share each device: each has its share of the compute and memory, collectives "
                     "staged through host memory\n", (long long)spec->cluster->ranks_per_device);
    if (p->reserve > 0)
        fprintf(out, "%s per device kept back for the allocator (the cluster's reserve), beyond the %s above\n",
                bytes_str(b1, sizeof b1, (double)p->reserve), bytes_str(b2, sizeof b2, (double)p->budget));
    if (p->vpp > 1)
        fprintf(out, "pp %d, %lld micro-batches, interleaved schedule, %d chunks a stage; search took %.1f ms\n", p->pp,
                (long long)p->micro_batches, p->vpp, p->search_ms);
    else
        fprintf(out, "pp %d, %lld micro-batches, %s schedule; search took %.1f ms\n", p->pp,
                (long long)p->micro_batches, schedule_names[p->schedule], p->search_ms);
    fprintf(out, "predicted step %.3f s (compute %.3f, communication %.3f, bubble %.3f): %.2f samples/s, %.0f tokens/s\n",
            p->step_s, p->compute_s, p->comm_s, p->bubble_s, (double)batch / p->step_s, (double)tokens / p->step_s);
    int64_t n = devices / p->pp;
    char buf[96];
    for (int c = 0; c < plan_chunks(p); c++) {
        int k = c % p->pp;
        if (p->vpp > 1)
            fprintf(out, "\nchunk %d (stage %d): layers %d-%d on devices %lld-%lld, %lld micro-batches held; the stage "
                         "%s of %s per device\n",
                    c, k, p->stage_start[c], p->stage_start[c + 1] - 1, (long long)(k * n), (long long)((k + 1) * n - 1),
                    (long long)p->in_flight[c], bytes_str(b1, sizeof b1, (double)p->stage_mem[k]),
                    bytes_str(b2, sizeof b2, (double)p->budget));
        else
            fprintf(out, "\nstage %d: layers %d-%d on devices %lld-%lld, %s of %s per device\n", k, p->stage_start[k],
                    p->stage_start[k + 1] - 1, (long long)(k * n), (long long)((k + 1) * n - 1),
                    bytes_str(b1, sizeof b1, (double)p->stage_mem[k]), bytes_str(b2, sizeof b2, (double)p->budget));
        for (int i = p->stage_start[c]; i < p->stage_start[c + 1]; i++) {
            fprintf(out, "  %4d  %-20s %s\n", i, g->layers[i]->name, strategy_str(buf, sizeof buf, &p->layer[i]));
            if (x) {
                Reason r = explain_layer(x, p, c, i);
                print_reason(out, x, &r);
            }
        }
    }
}

static int print_json(FILE *out, const Spec *spec, const Plan *p, int64_t devices, const Explainer *x) {
    const Graph *g = spec->graph;
    json_t *layers = json_array(), *mem = json_array();
    for (int c = 0; c < plan_chunks(p); c++)
        for (int i = p->stage_start[c]; i < p->stage_start[c + 1]; i++) {
            const Strategy *s = &p->layer[i];
            json_t *l = json_pack("{s:s, s:i, s:i, s:b, s:i, s:i, s:i, s:b, s:i, s:b, s:b}", "name",
                                  g->layers[i]->name, "stage", c % p->pp, "tp", s->tp, "sp", strategy_sp(s), "ulysses",
                                  strategy_ulysses(s), "cp", strategy_cp(s), "dp", s->dp, "sdp", s->sdp, "zero",
                                  strategy_zero(s), "ckpt", s->ckpt, "tp_consecutive", s->tp_consec);
            if (p->vpp > 1) json_object_set_new(l, "chunk", json_integer(c)); /* its model chunk, on stage chunk mod pp */
            if (strategy_zero(s) == 3)
                json_object_set_new(l, "zero3_accum", json_string(s->zero3_once ? "once" : "each"));
            if (x) {
                Reason r = explain_layer(x, p, c, i);
                char b1[96], b2[96];
                /* the chosen strategy's compute a micro-batch, as the cost model has it */
                const LayerCost *c = &x->t.cost[(size_t)i * x->t.n_strategies + x->index[i]];
                json_t *e = json_pack("{s:f, s:f}", "fwd_ms", c->fwd_s * 1e3, "bwd_ms", (c->compute_s - c->fwd_s) * 1e3);
                if (r.runner_up >= 0)
                    json_object_set_new(e, "runner_up",
                                        json_pack("{s:s, s:f}", "strategy",
                                                  strategy_str(b1, sizeof b1, &x->t.strategies[r.runner_up]),
                                                  "delta_ms", r.runner_dt * 1e3));
                if (r.blocked >= 0)
                    json_object_set_new(e, "faster_but_too_big",
                                        json_pack("{s:s, s:f, s:I}", "strategy",
                                                  strategy_str(b2, sizeof b2, &x->t.strategies[r.blocked]),
                                                  "delta_ms", r.blocked_dt * 1e3, "over_bytes",
                                                  (json_int_t)r.blocked_over));
                json_object_set_new(l, "explain", e);
            }
            json_array_append_new(layers, l);
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
    if (p->reserve > 0) json_object_set_new(root, "reserve_bytes", json_integer(p->reserve));
    json_object_set_new(root, "vpp", json_integer(p->vpp > 1 ? p->vpp : 1)); /* model chunks a stage */
    if (p->vpp > 1) { /* the micro-batches each chunk holds at once */
        json_t *held = json_array();
        for (int c = 0; c < plan_chunks(p); c++) json_array_append_new(held, json_integer(p->in_flight[c]));
        json_object_set_new(root, "chunk_in_flight", held);
    }
    int rc = json_dumpf(root, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fputc('\n', out);
    json_decref(root);
    return rc;
}

int pass_plan(FILE *out, const Spec *spec, const HwProfile *hw, const Plan *plan, int64_t devices, PlanFormat format,
              bool explain, Arena *a) {
    Explainer x;
    const Explainer *xp = explain && explainer_init(&x, spec, hw, plan, devices, a) ? &x : NULL;
    switch (format) {
    case PLAN_TABLE: print_table(out, spec, plan, devices, xp); return 0;
    case PLAN_JSON: return print_json(out, spec, plan, devices, xp);
    case PLAN_GALVATRON: {
        Diag d;
        diag_init(&d, stderr);
        return galvatron_write(out, spec, plan, devices, &d);
    }
    }
    return -1;
}
