/* test_search.c — the search against exhaustive enumeration, and the
 * properties a plan must have: within budget on every stage, SDP,
 * checkpointing or pipelining when memory demands it, reproducible. */
#include "check.h"
#include "frontend/frontend.h"
#include "hw/hw.h"
#include "passes/passes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MIB (1 << 20)

static Spec *load_text(Arena *a, const char *src) {
    Diag d;
    diag_init(&d, stderr);
    FrontendOptions opt = {.input = "random.gv", .input_text = src, .input_len = strlen(src)};
    Spec *s = frontend_load(a, &opt, &d);
    if (s) pass_shape(s, &d);
    return d.errors ? NULL : s;
}

static HwProfile cpu_hw(const Spec *s) {
    HwProfile hw;
    hw_preset(&hw, (DeviceKind)s->cluster->device);
    hw.memory = s->cluster->memory;
    return hw;
}

/* A stage's shared memory under assignment pick (NULL: the most any
 * candidate needs), restated from the search's comments: the largest
 * working space, checkpoint area, ZeRO-3 gathered weights and ZeRO-2/3
 * whole gradients (each separately), three activation-sized
 * buffers, one micro-batch's tokens (one stage, 1F1B: one in flight) and the
 * losses; of the candidates `leave` keeps: NO_CKPT leaves out those that
 * checkpoint, NO_CP those with context parallelism, NO_UL those with
 * Ulysses, CP_ONLY those without context parallelism. min_dp bounds the ranks that split a micro-batch (dp x Ulysses
 * or CP). */
enum { NO_CKPT = 1, NO_CP = 2, NO_UL = 4, CP_ONLY = 8 };
static bool leaves_out(const Strategy *s, int leave) {
    return ((leave & NO_CKPT) && s->ckpt) || ((leave & NO_CP) && strategy_cp(s) > 1) ||
           ((leave & NO_UL) && strategy_ulysses(s) > 1) || ((leave & CP_ONLY) && strategy_cp(s) == 1);
}

static int64_t reserve_of(const CostTable *t, const int *pick, int min_dp, int leave) {
    int64_t work = 0, ckpt = 0, shard = 0, scatter = 0, stream = 0;
    for (int i = 0; i < t->n_layers; i++)
        for (int k = 0; k < t->n_strategies; k++) {
            const Strategy *s = &t->strategies[k];
            if (pick ? pick[i] != k : strategy_replicas(s) < min_dp || leaves_out(s, leave)) continue;
            const LayerCost *c = &t->cost[i * t->n_strategies + k];
            if (c->work_bytes > work) work = c->work_bytes;
            if (c->ckpt_bytes > ckpt) ckpt = c->ckpt_bytes;
            if (c->shard_bytes > shard) shard = c->shard_bytes;
            if (c->scatter_bytes > scatter) scatter = c->scatter_bytes;
            if (c->stream_bytes > stream) stream = c->stream_bytes;
        }
    return work + ckpt + shard + scatter + 3 * stream + t->token_bytes + t->loss_bytes;
}

/* A tied head in the embedding's stage keeps a copy of the table when the
 * two layers' layouts differ or either is sharded: does the stage's exact
 * memory under pick hold it (and the buffer summing the gradients)? */
static bool tied_copy_fits(const CostTable *t, const int *pick, int64_t budget) {
    if (t->tied_head < 0) return true;
    int n = t->n_strategies;
    const Strategy *e = &t->strategies[pick[t->tied_emb]], *h = &t->strategies[pick[t->tied_head]];
    bool ec = e->tp_consec || e->tp == 1 || e->dp == 1, hc = h->tp_consec || h->tp == 1 || h->dp == 1;
    if (e->tp == h->tp && ec == hc && !strategy_zero(e) && !strategy_zero(h) &&
        strategy_ulysses(e) == strategy_ulysses(h))
        return true;
    int64_t exact = reserve_of(t, pick, 1, 0) + t->tied_copy_bytes[pick[t->tied_head]] + t->tied_sum_bytes;
    for (int i = 0; i < t->n_layers; i++)
        exact += t->cost[i * n + pick[i]].state_bytes + t->cost[i * n + pick[i]].act_bytes;
    return exact <= budget;
}

/* Every per-layer assignment, by brute force: the fastest step of a one-stage
 * plan with m micro-batches that fits `budget`, or INFINITY. The objective
 * and the memory rule are the search's, restated from its comments: time =
 * sum of m * (per-micro-batch + resharding) + per-step sync; memory = sum of
 * whole MiB of states and one micro-batch of activations, plus the stage's
 * shared memory under any candidate; then, for a tied head, each floor's
 * and pass's fastest plan's table copy (when its layout differs from the
 * embedding's) must fit beside the exact memory, or that floor has none. */
static double brute_force(const CostTable *t, int64_t budget) {
    int L = t->n_layers, n = t->n_strategies, devices = (int)strategy_stage_devices(&t->strategies[0]);
    bool any_cp = false, any_ul = false;
    for (int k = 0; k < n; k++) any_cp |= strategy_cp(&t->strategies[k]) > 1, any_ul |= t->strategies[k].ulysses > 1;
    double best = INFINITY;
    /* the search's floors on the DP degree (dp x Ulysses or CP), each also
     * without checkpointing, without context parallelism, without
     * Ulysses and with context parallelism alone: each costs the shared
     * buffers at the candidates it allows */
    for (int f = 16; f <= 16 * devices + 15; f++) {
        int min_dp = f / 16, leave = f % 16;
        if (devices % min_dp) continue; /* the DP degrees a stage can have */
        if (((leave & NO_CP) && !any_cp) || ((leave & NO_UL) && !any_ul)) continue;
        if ((leave & CP_ONLY) && (!any_cp || (leave & (NO_CP | NO_UL)))) continue;
        /* the pass without checkpointing, where it frees a part in 256 of the budget */
        if ((leave & NO_CKPT) &&
            reserve_of(t, NULL, min_dp, leave & ~NO_CKPT) - reserve_of(t, NULL, min_dp, leave) < budget / 256)
            continue;
        int64_t reserve = reserve_of(t, NULL, min_dp, leave);
        if (reserve >= budget) continue;
        int64_t cap = (budget - reserve) / MIB;
        int pick[8] = {0};
        double floor_best = INFINITY;
        int floor_pick[8];
        for (;;) {
            double time = 0;
            int64_t mem = 0;
            bool allowed = true;
            for (int i = 0; i < L; i++) {
                const LayerCost *c = &t->cost[i * n + pick[i]];
                allowed = allowed && strategy_replicas(&t->strategies[pick[i]]) >= min_dp;
                /* checkpointing recomputes transformer layers only */
                allowed = allowed && (!t->strategies[pick[i]].ckpt || t->may_ckpt[i]);
                allowed = allowed && !leaves_out(&t->strategies[pick[i]], leave);
                time += (double)t->micro_batches * c->mb_s + c->step_s;
                if (i > 0) time += (double)t->micro_batches * t->reshard[((size_t)i * n + pick[i - 1]) * n + pick[i]];
                mem += (c->state_bytes + c->act_bytes + MIB - 1) / MIB;
            }
            if (allowed && mem <= cap && time < floor_best) floor_best = time, memcpy(floor_pick, pick, sizeof pick);
            int i = 0;
            while (i < L && ++pick[i] == n) pick[i++] = 0;
            if (i == L) break;
        }
        if (floor_best < best && tied_copy_fits(t, floor_pick, budget)) best = floor_best;
    }
    return best;
}

/* The strategies of set whose TP degree splits every decoder's heads and
 * FFN (the program's rule, which the search applies), kept in order. */
static void keep_runnable(const Spec *s, StrategySet *set, bool cp) {
    int n = 0;
    for (int k = 0; k < set->n; k++) {
        int c = strategy_cp(&set->items[k]);
        bool ok = c == 1 || (cp && graph_cp_splits(s->graph, c));
        for (int i = 0; i < s->graph->n_layers; i++) {
            const Layer *l = s->graph->layers[i];
            if (l->kind == LAYER_DECODER) ok = ok && l->heads % set->items[k].tp == 0 && l->ffn % set->items[k].tp == 0;
        }
        ok = ok && (strategy_ulysses(&set->items[k]) == 1 || graph_ulysses_splits(s->graph, 1, set->items[k].ulysses));
        if (ok) set->items[n++] = set->items[k];
    }
    set->n = n;
}

/* The brute force's fastest step over the strategies the search has on
 * `devices` (context-parallel ones with cp), m micro-batches. */
static double brute_force_over(const Spec *s, const HwProfile *hw, int devices, int m, bool cp, Arena *a) {
    StrategySet set;
    pass_prune(devices, true, &s->hints, a, &set);
    keep_runnable(s, &set, cp);
    /* with several micro-batches the search also has each ZeRO-3 strategy accumulating once a step */
    Strategy *items = arena_alloc(a, 2 * (size_t)set.n * sizeof *items);
    memcpy(items, set.items, (size_t)set.n * sizeof *items);
    for (int k = 0, n = set.n; m > 1 && k < n; k++)
        if (items[k].sdp) items[set.n] = items[k], items[set.n++].zero3_once = true;
    set.items = items;
    CostTable t;
    CHECK(pass_cost(s, hw, &set, m, a, &t));
    return brute_force(&t, hw->memory);
}

/* The search on src (pp 1, m micro-batches, `devices`) against the brute
 * force over the strategies it may use: 1 when both find the same step, 0
 * when neither finds one, -1 when src does not load. *cp_plans (if given)
 * counts plans with a context-parallel layer. */
static int compare_with_brute_force(const char *src, int devices, int m, int trial, int *cp_plans) {
    Arena *a = arena_new();
    Spec *s = load_text(a, src);
    CHECK(s != NULL);
    if (!s) return arena_free(a), -1;
    HwProfile hw = cpu_hw(s);
    Plan plan;
    SearchRequest req = {.devices = devices, .ulysses = true}; /* Ulysses too, as where the program runs it */
    CHECK(pass_search(s, &hw, &req, a, &plan));
    /* context parallelism from the start for long sequences, else only where nothing fits without it */
    bool cp = search_tries_cp(s, &hw, devices);
    double want = brute_force_over(s, &hw, devices, m, cp, a);
    if (!cp && !isfinite(want)) want = brute_force_over(s, &hw, devices, m, true, a);
    CHECK_EQ(plan.found, isfinite(want));
    int found = plan.found && isfinite(want);
    if (found && fabs(plan.step_s - want) > 1e-9 * want)
        fprintf(stderr, "trial %d: dp %.9g, brute force %.9g\n%s", trial, plan.step_s, want, src);
    if (found) CHECK(fabs(plan.step_s - want) <= 1e-9 * want);
    for (int i = 0; found && cp_plans && i < s->graph->n_layers; i++)
        if (strategy_cp(&plan.layer[i]) > 1) {
            ++*cp_plans;
            break;
        }
    arena_free(a);
    return found;
}

/* Random small models (2 to 6 layers) on 1 to 8 devices, powers of two or
 * not (3 and 6), random budgets. */
static void test_dp_equals_brute_force(void) {
    srand(12345);
    int compared = 0, feasible = 0;
    static const int device_counts[] = {1, 2, 4, 8, 3, 6};
    for (int trial = 0; trial < 150; trial++) {
        int devices = device_counts[rand() % 6];
        /* keep the enumeration small: strategies^layers below about 10^6 */
        int max_mid = devices >= 6 ? 2 : devices >= 3 ? 3 : 4;
        int mids = rand() % (max_mid + 1);
        int hidden = 48 << (rand() % 3), heads = (rand() % 2 ? 3 : 1) << (rand() % 2);
        int m = 1 << (rand() % 3);
        char body[512] = "";
        for (int k = 0; k < mids; k++) {
            const char *kinds[] = {"decoder(%d, %d)\n", "mlp(%d)\n", "attention(%d, %d)\n", "layernorm(%d)\n"};
            char line[64];
            snprintf(line, sizeof line, kinds[rand() % 4], hidden, heads);
            strcat(body, line);
        }
        int mem_mib = 1 + rand() % 128;
        char src[2048];
        snprintf(src, sizeof src,
                 "cluster c { devices_per_node = %d; device = cpu; memory = %d MiB }\n"
                 "model r { embedding(512, %d, positions = 256)\n%s lm_head(tied) }\n"
                 "train { global_batch = %d; seq = 256 }\n"
                 "plan { pp = 1; micro_batches = %d }\n",
                 devices, mem_mib, hidden, body, 8 * m * devices, m);
        int r = compare_with_brute_force(src, devices, m, trial, NULL);
        feasible += r > 0, compared += r >= 0;
    }
    CHECK(compared == 150);
    CHECK(feasible > 30); /* the budgets must exercise both outcomes */
    CHECK(feasible < 150);
}

/* Long sequences, where the search tries context parallelism: random
 * decoder stacks at 1,024 to 4,096 tokens on 2 and 4 devices, random
 * budgets, the DP against the brute force; some plans must take CP. */
static void test_context_parallel_brute_force(void) {
    srand(777);
    int feasible = 0, cp_plans = 0;
    for (int trial = 0; trial < 24; trial++) {
        int devices = 2 << (rand() % 2), decoders = devices == 2 ? 1 + rand() % 2 : 1;
        int seq = 1024 << (rand() % 3), heads = 2 << (rand() % 2), m = 1 << (rand() % 2);
        char body[256] = "", src[1024];
        for (int k = 0; k < decoders; k++) snprintf(body + strlen(body), 64, "decoder(32, %d, norm = rmsnorm)\n", heads);
        snprintf(src, sizeof src,
                 "cluster c { devices_per_node = %d; device = cpu; memory = %d MiB; reserve = 0 MiB }\n"
                 "model r { embedding(64, 32, positions = %d)\n%s rmsnorm(32)\n lm_head(tied) }\n"
                 "train { global_batch = %d; seq = %d }\n"
                 "plan { pp = 1; micro_batches = %d }\n",
                 devices, 4 + rand() % 60, seq, body, devices * m, seq, m);
        int r = compare_with_brute_force(src, devices, m, 1000 + trial, &cp_plans);
        feasible += r > 0;
    }
    CHECK(feasible > 4);
    CHECK(cp_plans > 2);
}

static Spec *load_example(Arena *a, const char *path, const char *memory) {
    Diag d;
    diag_init(&d, stderr);
    Define defs[] = {{"memory", memory}};
    FrontendOptions opt = {.input = path, .defines = defs, .n_defines = 1};
    Spec *s = frontend_load(a, &opt, &d);
    if (s) pass_shape(s, &d);
    return d.errors ? NULL : s;
}

/* Does any layer of the plan use the family? */
static bool uses(const Spec *s, const Plan *p, StrategyFamily f) {
    for (int i = 0; i < s->graph->n_layers; i++) {
        const Strategy *x = &p->layer[i];
        if ((f == FAMILY_SDP && x->sdp) || (f == FAMILY_ZERO && (strategy_zero(x) == 1 || strategy_zero(x) == 2)) || (f == FAMILY_CKPT && x->ckpt) || (f == FAMILY_PP && x->pp > 1) || (f == FAMILY_SP && strategy_sp(x)) ||
            (f == FAMILY_TP && x->tp > 1))
            return true;
    }
    return false;
}

/* LLaMA-2-7B on 8 A100s at several budgets: each stage within budget; tight
 * budgets force memory-saving strategies; too small a budget finds nothing. */
static void test_budgets(void) {
    static const char *const budgets[] = {"20 GiB", "24 GiB", "40 GiB", "80 GiB"};
    for (size_t b = 0; b < 4; b++) {
        Arena *a = arena_new();
        Spec *s = load_example(a, "examples/llama2-7b.gv", budgets[b]);
        CHECK(s != NULL);
        if (!s) { arena_free(a); continue; }
        HwProfile hw = cpu_hw(s);
        hw_preset(&hw, (DeviceKind)s->cluster->device);
        hw.memory = s->cluster->memory;
        Plan p, q;
        SearchRequest req = {.devices = 8};
        CHECK(pass_search(s, &hw, &req, a, &p));
        CHECK(p.found);
        if (!p.found) { arena_free(a); continue; }
        for (int k = 0; k < p.pp; k++) CHECK(p.stage_mem[k] <= hw.memory);
        /* pure DP needs ~150 GiB: every budget here needs something else */
        CHECK(uses(s, &p, FAMILY_SDP) || uses(s, &p, FAMILY_ZERO) || uses(s, &p, FAMILY_CKPT) || uses(s, &p, FAMILY_PP) ||
              uses(s, &p, FAMILY_TP));
        if (b == 0)
            CHECK(uses(s, &p, FAMILY_CKPT) || uses(s, &p, FAMILY_SDP) || uses(s, &p, FAMILY_ZERO) || uses(s, &p, FAMILY_SP));
        /* never predicted slower than a baseline that fits */
        Baseline base[BASELINE_COUNT];
        pass_baselines(NULL, s, &hw, 8, &p, a, base);
        int fitting = 0;
        for (int k = 0; k < BASELINE_COUNT; k++)
            if (base[k].plan.found) {
                fitting++;
                CHECK(base[k].plan.step_s >= p.step_s * (1 - 1e-12));
            }
        CHECK(fitting >= 1);
        /* reproducible: the same inputs give the same plan */
        CHECK(pass_search(s, &hw, &req, a, &q));
        CHECK(q.found && q.pp == p.pp && q.micro_batches == p.micro_batches && q.step_s == p.step_s);
        for (int i = 0; q.found && i < s->graph->n_layers; i++) CHECK(strategy_equal(&p.layer[i], &q.layer[i]));
        arena_free(a);
    }
    /* with ZeRO forbidden and a tight budget, the plan must checkpoint, pipeline,
     * or split its layers by TP (8-way, one sample per micro-batch) */
    Arena *a = arena_new();
    Spec *s = load_example(a, "examples/llama2-7b.gv", "24 GiB");
    if (s) {
        s->hints.forbid = 1u << FAMILY_SDP | 1u << FAMILY_ZERO;
        HwProfile hw = cpu_hw(s);
        Plan p;
        SearchRequest req = {.devices = 8};
        CHECK(pass_search(s, &hw, &req, a, &p));
        CHECK(p.found && (uses(s, &p, FAMILY_CKPT) || uses(s, &p, FAMILY_PP) || uses(s, &p, FAMILY_TP)));
    }
    /* GPT-2 XL in 20 GiB without ZeRO, checkpointing or TP: only a pipeline fits */
    s = load_example(a, "examples/gpt2-xl.gv", "20 GiB");
    if (s) {
        s->hints.forbid = 1u << FAMILY_SDP | 1u << FAMILY_ZERO | 1u << FAMILY_CKPT | 1u << FAMILY_TP;
        HwProfile hw = cpu_hw(s);
        Plan p;
        SearchRequest req = {.devices = 8};
        CHECK(pass_search(s, &hw, &req, a, &p));
        CHECK(p.found && uses(s, &p, FAMILY_PP));
        for (int k = 0; p.found && k < p.pp; k++) CHECK(p.stage_mem[k] <= hw.memory);
    }
    /* nothing fits in 1 GiB */
    s = load_example(a, "examples/llama2-7b.gv", "1 GiB");
    if (s) {
        HwProfile hw = cpu_hw(s);
        Plan p;
        SearchRequest req = {.devices = 8};
        CHECK(pass_search(s, &hw, &req, a, &p));
        CHECK(!p.found);
        req.min_memory = true;
        req.budget = INT64_MAX / 4;
        CHECK(pass_search(s, &hw, &req, a, &p));
        CHECK(p.found && p.peak > (1 << 30));
    }
    arena_free(a);
}

/* Micro-batch counts per layout: at global batch 16 on 8 devices, TP 2 x
 * DP 4 runs 4 micro-batches of 4 samples (1 a DP rank), though 16 / 8
 * devices = 2 would allow only 1 or 2; DP 8 cannot (4 samples over 8
 * ranks); TP 8 runs 16 of 1. A free search tries every such count. */
static void test_micro_batch_layouts(void) {
    Arena *a = arena_new();
    Spec *s = load_example(a, "examples/gpt2-small.gv", "80 GiB");
    if (!s) {
        arena_free(a);
        return;
    }
    s->train->global_batch = 16;
    HwProfile hw = cpu_hw(s);
    Strategy tp2 = {.pp = 1, .tp = 2, .dp = 4, .tp_consec = true}, dp8 = {.pp = 1, .tp = 1, .dp = 8, .tp_consec = true};
    Strategy tp8 = {.pp = 1, .tp = 8, .dp = 1, .tp_consec = true};
    struct { const Strategy *s; int64_t m; bool found; } cases[] = {
        {&tp2, 4, true}, {&tp2, 8, false}, {&dp8, 4, false}, {&dp8, 2, true}, {&tp8, 16, true}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Plan p;
        SearchRequest req = {.devices = 8, .uniform = cases[i].s, .micro_batches = cases[i].m};
        CHECK(pass_search(s, &hw, &req, a, &p));
        CHECK_EQ(p.found, cases[i].found);
        CHECK(!p.found || (p.micro_batches == cases[i].m && strategy_equal(&p.layer[1], cases[i].s)));
    }
    /* free: the best count for TP 2 x DP 4 is the best of m = 1, 2, 4 */
    Plan best, p;
    SearchRequest req = {.devices = 8, .uniform = &tp2};
    CHECK(pass_search(s, &hw, &req, a, &best) && best.found);
    CHECK(best.micro_batches == 1 || best.micro_batches == 2 || best.micro_batches == 4);
    for (int64_t m = 1; m <= 4; m *= 2) {
        req.micro_batches = m;
        CHECK(pass_search(s, &hw, &req, a, &p) && p.found && p.step_s >= best.step_s);
    }
    arena_free(a);
}

/* GPT-2 XL on 8 A100s held to 4 pipeline stages at global batch 8: 1F1B's
 * bubble, (pp - 1) of its m + pp - 1 micro-batch slots, dominates, and
 * interleaving divides it by v (Narayanan et al. 2021, section 2.2.2): the
 * free search picks v >= 2, with m a multiple of pp, a smaller bubble and
 * step than the 1F1B-only search, each chunk holding what the schedule says,
 * every stage within the budget. */
static void test_interleaving(void) {
    Arena *a = arena_new();
    Spec *s = load_example(a, "examples/gpt2-xl.gv", "80 GiB");
    if (!s) {
        CHECK(s != NULL);
        arena_free(a);
        return;
    }
    s->train->global_batch = 8;
    s->hints.pp = 4;
    HwProfile hw = cpu_hw(s);
    Plan free_plan, flat;
    SearchRequest req = {.devices = 8};
    CHECK(pass_search(s, &hw, &req, a, &free_plan) && free_plan.found);
    s->hints.schedule = SCHED_1F1B;
    CHECK(pass_search(s, &hw, &req, a, &flat) && flat.found);
    CHECK_EQ(flat.vpp, 1);
    CHECK_EQ(free_plan.pp, 4);
    CHECK(free_plan.vpp >= 2 && free_plan.schedule == SCHED_INTERLEAVED);
    CHECK_EQ(free_plan.micro_batches % free_plan.pp, 0);
    CHECK(free_plan.step_s < flat.step_s && free_plan.bubble_s < flat.bubble_s / 2);
    printf("interleaved: v %d, m %lld, step %.4f s (bubble %.4f) against 1F1B's %.4f s (bubble %.4f, m %lld)\n",
           free_plan.vpp, (long long)free_plan.micro_batches, free_plan.step_s, free_plan.bubble_s, flat.step_s,
           flat.bubble_s, (long long)flat.micro_batches);
    for (int k = 0; k < free_plan.pp; k++) {
        int64_t held[8];
        schedule_interleaved_held(free_plan.pp, free_plan.vpp, k, free_plan.micro_batches, held);
        for (int j = 0; j < free_plan.vpp; j++) CHECK_EQ(free_plan.in_flight[j * free_plan.pp + k], held[j]);
        CHECK(free_plan.stage_mem[k] <= free_plan.budget);
    }
    for (int c = 0; c < plan_chunks(&free_plan); c++)
        CHECK(free_plan.stage_start[c] < free_plan.stage_start[c + 1]); /* every chunk holds a layer */
    CHECK_EQ(free_plan.stage_start[plan_chunks(&free_plan)], s->graph->n_layers);
    /* asked for interleaving, the search interleaves; told GPipe, it does not */
    s->hints.schedule = SCHED_INTERLEAVED;
    Plan p;
    CHECK(pass_search(s, &hw, &req, a, &p) && p.found && p.vpp >= 2 && p.step_s == free_plan.step_s);
    s->hints.schedule = SCHED_GPIPE;
    CHECK(pass_search(s, &hw, &req, a, &p) && p.found && p.vpp == 1 && p.schedule == SCHED_GPIPE);
    arena_free(a);
}

int main(void) {
    test_interleaving();
    test_micro_batch_layouts();
    test_dp_equals_brute_force();
    test_context_parallel_brute_force();
    test_budgets();
    return check_report();
}
