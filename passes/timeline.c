/* timeline.c — the timeline pass: one training step of a plan as spans in
 * time, stage by stage, and each stage's memory by part, for the picture of
 * the plan (backend/emit_svg.c). The figures are the cost model's (cost.c)
 * for the plan's strategies; the order of each stage's passes is the one the
 * program runs (schedule_order). An event simulation places them: stage k
 * runs micro-batch j's forward once stage k-1 has sent it, and its backward
 * once stage k+1 has sent the gradient back; a stage waiting is the bubble.
 * Interleaved (Narayanan et al. 2021, section 2.2.2), the same over chunks:
 * chunk c runs on stage c mod pp, in the order schedule_interleaved gives. */
#include "passes.h"

#include <string.h>

/* One stage's figures per micro-batch (and once a step), in seconds. */
typedef struct StageTimes {
    double fwd, fwd_comm;            /* forward compute; its TP / ZeRO-3 / reshard traffic */
    double recompute, bwd, bwd_comm; /* checkpointed forward again; backward compute; its traffic */
    double send_fwd, send_bwd;       /* p2p: the activation to stage k+1, the gradient to stage k-1 */
    double sync, opt;                /* once a step: the exposed gradient sync, the optimizer */
    const char *fwd_what, *bwd_what, *sync_what;
} StageTimes;

typedef struct Sim {
    Timeline *tl;
    int64_t cap;
    int chunks;                    /* pp, or interleaved pp v */
    double *fwd_ready, *bwd_ready; /* [chunks * m]: when chunk c's pass of j has reached its neighbour; -1: not yet */
    double *cursor;                /* [pp]: when stage k is next free */
} Sim;

/* The plan's distinct strategies as a set, and each layer's index in it. */
static void plan_strategies(const Plan *p, int L, Arena *a, StrategySet *set, int *pick) {
    set->items = arena_alloc(a, (size_t)(L ? L : 1) * sizeof *set->items);
    set->n = 0;
    for (int i = 0; i < L; i++) {
        int k = 0;
        while (k < set->n && !strategy_equal(&set->items[k], &p->layer[i]))
            k++;
        if (k == set->n) set->items[set->n++] = p->layer[i];
        pick[i] = k;
    }
}

/* "TP, Ulysses all-to-all, ZeRO-3 gathers, reshard": what a stage's per-micro-batch traffic is. */
static const char *traffic_name(Arena *a, bool tp, bool ulysses, bool sdp, bool reshard) {
    const char *s = arena_printf(a, "%s%s%s%s", tp ? ", TP all-reduce" : "", ulysses ? ", Ulysses all-to-all" : "",
                                 sdp ? ", ZeRO-3 gather" : "", reshard ? ", reshard" : "");
    return s[0] ? s + 2 : "sync";
}

/* Add up chunk k's layers [first, last) (stage k's when not interleaved) under their picks. */
static StageTimes stage_times(const CostTable *t, const Plan *p, int k, const int *pick, Arena *a) {
    StageTimes r = {0};
    int n = t->n_strategies, first = p->stage_start[k], last = p->stage_start[k + 1];
    bool tp = false, ulysses = false, sdp = false, reshard = false, dp = false;
    for (int i = first; i < last; i++) {
        const LayerCost *c = &t->cost[(size_t)i * n + pick[i]];
        const Strategy *s = &t->strategies[pick[i]];
        double rs = i > first ? t->reshard[((size_t)i * n + pick[i - 1]) * n + pick[i]] : 0;
        double bwd = c->compute_s - c->fwd_s - c->recompute_s;
        r.fwd += c->fwd_s;
        r.recompute += c->recompute_s;
        r.bwd += bwd;
        r.fwd_comm += c->fwd_comm_s + rs / 2; /* resharding: the activation forward, its gradient back */
        r.bwd_comm += c->mb_s - c->compute_s - c->fwd_comm_s + rs / 2;
        r.sync += c->step_s - c->opt_s;
        r.opt += c->opt_s;
        tp |= s->tp > 1, ulysses |= strategy_ulysses(s) > 1, sdp |= s->sdp, reshard |= rs > 0;
        dp |= strategy_replicas(s) > 1 && !s->sdp;
    }
    r.fwd_what = traffic_name(a, tp, ulysses, sdp, reshard);
    r.bwd_what = sdp ? arena_printf(a, "%s%s", r.fwd_what, ", ZeRO-3 reduce-scatter") : r.fwd_what;
    r.sync_what = dp ? "DP all-reduce" : "sync";
    /* the cost model charges a stage boundary's p2p once per micro-batch:
     * half to the activation sent on, half to the gradient sent back */
    if (k < plan_chunks(p) - 1) r.send_fwd = t->p2p_s[last - 1] / 2;
    if (k > 0) r.send_bwd = t->p2p_s[first - 1] / 2;
    return r;
}

/* Append a span of length dt at *at (nothing when dt is 0); advances *at. */
static void put(Sim *s, int kind, int stage, int64_t mb, double *at, double dt, const char *what) {
    if (dt <= 0) return;
    Timeline *tl = s->tl;
    if (tl->n_spans == s->cap) die("timeline: more spans than planned");
    tl->spans[tl->n_spans++] = (Span){kind, stage, mb, *at, *at + dt, what};
    *at += dt;
}

/* Run chunk c's next pass `op` (j >= 0: forward of j, else backward of
 * -op - 1) on its stage if what it needs has arrived; false when it must wait. */
static bool run_pass(Sim *s, const StageTimes *st, int c, int64_t op) {
    int k = c % s->tl->pp;
    int64_t m = s->tl->micro_batches, j = op >= 0 ? op : -op - 1;
    double ready = 0;
    if (op >= 0 && c > 0) ready = s->fwd_ready[(size_t)(c - 1) * m + j];
    if (op < 0 && c < s->chunks - 1) ready = s->bwd_ready[(size_t)(c + 1) * m + j];
    if (ready < 0) return false;
    double at = s->cursor[k] > ready ? s->cursor[k] : ready;
    const StageTimes *t = &st[c];
    if (op >= 0) {
        put(s, SPAN_FWD, k, j, &at, t->fwd, NULL);
        put(s, SPAN_COMM, k, j, &at, t->fwd_comm, t->fwd_what);
        put(s, SPAN_COMM, k, j, &at, t->send_fwd, "p2p activation");
        s->fwd_ready[(size_t)c * m + j] = at;
    } else {
        put(s, SPAN_RECOMPUTE, k, j, &at, t->recompute, NULL);
        put(s, SPAN_BWD, k, j, &at, t->bwd, NULL);
        put(s, SPAN_COMM, k, j, &at, t->bwd_comm, t->bwd_what);
        put(s, SPAN_COMM, k, j, &at, t->send_bwd, "p2p gradient");
        s->bwd_ready[(size_t)c * m + j] = at;
    }
    s->cursor[k] = at;
    return true;
}

/* Each stage's passes in schedule order, each as early as its inputs allow,
 * then the step's gradient sync and optimizer. */
static void simulate(Sim *s, const StageTimes *st, int schedule, Arena *a) {
    Timeline *tl = s->tl;
    int pp = tl->pp, v = s->chunks / pp;
    int64_t m = tl->micro_batches, n = 2 * m * v;
    int64_t **order = arena_alloc(a, (size_t)pp * sizeof *order), *pos = arena_alloc(a, (size_t)pp * sizeof *pos);
    int **chunk = arena_alloc(a, (size_t)pp * sizeof *chunk);
    for (int k = 0; k < pp; k++) {
        order[k] = arena_alloc(a, (size_t)n * sizeof **order);
        chunk[k] = arena_alloc(a, (size_t)n * sizeof **chunk);
        if (v > 1) schedule_interleaved(pp, v, k, m, chunk[k], order[k]);
        else schedule_order(schedule, pp, k, m, order[k]);
        for (int64_t q = 0; v == 1 && q < n; q++) chunk[k][q] = k;
    }
    for (int64_t left = n * pp; left > 0;) {
        int64_t before = left;
        for (int k = 0; k < pp; k++)
            while (pos[k] < n && run_pass(s, st, chunk[k][pos[k]], order[k][pos[k]]))
                pos[k]++, left--;
        if (left == before) die("timeline: the schedule waits on itself");
    }
    for (int k = 0; k < pp; k++) {
        double sync = 0, opt = 0; /* the stage's chunks' */
        for (int c = k; c < s->chunks; c += pp) sync += st[c].sync, opt += st[c].opt;
        put(s, SPAN_COMM, k, -1, &s->cursor[k], sync, st[k].sync_what);
        put(s, SPAN_OPTIMIZER, k, -1, &s->cursor[k], opt, NULL);
        if (s->cursor[k] > tl->end_s) tl->end_s = s->cursor[k];
    }
}

/* The gaps in each stage's row up to the step's end, as bubble spans (a
 * stage's spans are appended in time order). */
static void add_bubbles(Sim *s) {
    Timeline *tl = s->tl;
    int64_t n = tl->n_spans;
    for (int k = 0; k < tl->pp; k++) {
        double at = 0;
        for (int64_t i = 0; i <= n; i++) {
            if (i < n && tl->spans[i].stage != k) continue;
            double next = i < n ? tl->spans[i].start_s : tl->end_s;
            if (next - at > 1e-9 * tl->end_s) {
                double from = at;
                put(s, SPAN_BUBBLE, k, -1, &from, next - at, NULL);
            }
            if (i < n) at = tl->spans[i].end_s;
        }
    }
}

/* Stage k's memory by part: the chosen strategies' states and activations
 * (interleaved, of each of its chunks' held micro-batches), their shared
 * working space, and the rest of the plan's figure (the program's buffers,
 * a tied head's copy) as the reserve. */
static void stage_memory(const CostTable *t, const Plan *p, int k, const int *pick, int64_t *mem) {
    int n = t->n_strategies;
    int64_t work = 0, ckpt = 0, shard = 0, sum = 0;
    memset(mem, 0, MEM_PART_COUNT * sizeof *mem);
    for (int i = 0; i < t->n_layers; i++) {
        int ch = 0;
        while (i >= p->stage_start[ch + 1]) ch++;
        if (ch % p->pp != k) continue;
        const LayerCost *c = &t->cost[(size_t)i * n + pick[i]];
        mem[MEM_PARAMS] += c->param_bytes;
        mem[MEM_GRADS] += c->grad_bytes;
        mem[MEM_OPTIMIZER] += c->state_bytes - c->param_bytes - c->grad_bytes;
        mem[MEM_ACTIVATIONS] += p->in_flight[ch] * c->act_bytes;
        if (c->work_bytes > work) work = c->work_bytes;
        if (c->ckpt_bytes > ckpt) ckpt = c->ckpt_bytes;
        if (c->shard_bytes > shard) shard = c->shard_bytes;
    }
    mem[MEM_WORK] = work + ckpt + shard;
    for (int q = 0; q < MEM_RESERVE; q++)
        sum += mem[q];
    mem[MEM_RESERVE] = p->stage_mem[k] > sum ? p->stage_mem[k] - sum : 0;
}

bool pass_timeline(const Spec *spec, const HwProfile *hw, const Plan *plan, Arena *a, Timeline *out) {
    int L = spec->graph->n_layers, pp = plan->pp, C = plan_chunks(plan);
    int64_t m = plan->micro_batches;
    StrategySet set;
    int *pick = arena_alloc(a, (size_t)(L ? L : 1) * sizeof *pick);
    plan_strategies(plan, L, a, &set, pick);
    CostTable t;
    if (!plan->found || !pass_cost(spec, hw, &set, m, a, &t)) return false;
    *out = (Timeline){.pp = pp, .micro_batches = m};
    out->mem = arena_alloc(a, (size_t)pp * sizeof *out->mem);
    StageTimes *st = arena_alloc(a, (size_t)C * sizeof *st);
    for (int c = 0; c < C; c++) st[c] = stage_times(&t, plan, c, pick, a);
    for (int k = 0; k < pp; k++) stage_memory(&t, plan, k, pick, out->mem[k]);
    /* per pass at most four spans, per stage two once a step, and a bubble before each span and at the end */
    Sim s = {.tl = out, .chunks = C, .cap = 2 * (C * 2 * m * 4 + pp * 3)};
    out->spans = arena_alloc(a, (size_t)s.cap * sizeof *out->spans);
    s.fwd_ready = arena_alloc(a, (size_t)(C * m) * sizeof *s.fwd_ready);
    s.bwd_ready = arena_alloc(a, (size_t)(C * m) * sizeof *s.bwd_ready);
    s.cursor = arena_alloc(a, (size_t)pp * sizeof *s.cursor);
    for (int64_t i = 0; i < C * m; i++)
        s.fwd_ready[i] = s.bwd_ready[i] = -1;
    simulate(&s, st, plan->schedule, a);
    add_bubbles(&s);
    return true;
}
