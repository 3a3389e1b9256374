/* test_timeline.c — the timeline pass against what a step must be: in each
 * stage's row the spans never overlap and, with the bubbles, fill the step
 * from 0 to its end; every stage runs each micro-batch's forward and backward
 * once, in the program's order (schedule_order); a forward starts only after
 * the stage before has finished it, a backward only after the stage after
 * has; the memory parts add up to the plan's figure for each stage; and a
 * uniform plan's step matches the search's closed form ((m - 1) times the
 * slowest stage plus one pass through all, Narayanan et al. 2021) within 2%. */
#include "check.h"
#include "frontend/frontend.h"
#include "hw/hw.h"
#include "passes/passes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char model[] = "cluster c { devices_per_node = 8; device = cpu; memory = 1 GiB }\n"
                            "model gpt_tiny { embedding(256, 64, positions = 64)\n"
                            "  repeat 4 { decoder(64, 4, ffn = 256, act = gelu, norm = layernorm) }\n"
                            "  layernorm(64); lm_head(tied) }\n"
                            "train { global_batch = 8; seq = 64; optimizer = adamw(lr = 1e-3) }\n";

static Spec *load(Arena *a) {
    Diag d;
    diag_init(&d, stderr);
    FrontendOptions opt = {.input = "m.gv", .input_text = model, .input_len = strlen(model)};
    Spec *s = frontend_load(a, &opt, &d);
    if (s) pass_shape(s, &d);
    if (!s || d.errors) {
        fprintf(stderr, "%s:%d: the test model does not load\n", __FILE__, __LINE__);
        exit(1);
    }
    return s;
}

/* Where stage k ran pass `kind` (SPAN_FWD or SPAN_BWD) of micro-batch j; NULL if it did not. */
static const Span *find(const Timeline *tl, int k, int kind, int64_t j) {
    for (int64_t i = 0; i < tl->n_spans; i++)
        if (tl->spans[i].stage == k && tl->spans[i].kind == kind && tl->spans[i].mb == j) return &tl->spans[i];
    return NULL;
}

/* Every property above for one plan. */
static void check_timeline(const Spec *s, const Plan *p, const Timeline *tl, bool uniform) {
    double eps = 1e-9 * tl->end_s;
    CHECK_EQ(tl->pp, p->pp);
    for (int k = 0; k < p->pp; k++) {
        double covered = 0;
        for (int64_t i = 0; i < tl->n_spans; i++) {
            const Span *a = &tl->spans[i];
            if (a->stage != k) continue;
            CHECK(a->start_s >= -eps && a->end_s <= tl->end_s + eps && a->end_s > a->start_s);
            covered += a->end_s - a->start_s;
            for (int64_t j = i + 1; j < tl->n_spans; j++) {
                const Span *b = &tl->spans[j];
                if (b->stage == k) CHECK(a->end_s <= b->start_s + eps || b->end_s <= a->start_s + eps);
            }
        }
        CHECK(fabs(covered - tl->end_s) <= 1e-6 * tl->end_s);
        int64_t *order = malloc(sizeof *order * (size_t)(2 * p->micro_batches));
        int64_t n = schedule_order(p->schedule, p->pp, k, p->micro_batches, order);
        for (int64_t i = 0; i + 1 < n; i++) { /* the program's order */
            const Span *a = find(tl, k, order[i] >= 0 ? SPAN_FWD : SPAN_BWD, order[i] >= 0 ? order[i] : -order[i] - 1);
            const Span *b = find(tl, k, order[i + 1] >= 0 ? SPAN_FWD : SPAN_BWD,
                                 order[i + 1] >= 0 ? order[i + 1] : -order[i + 1] - 1);
            CHECK(a && b && a->end_s <= b->start_s + eps);
        }
        free(order);
        for (int64_t j = 0; j < p->micro_batches; j++) {
            const Span *f = find(tl, k, SPAN_FWD, j), *b = find(tl, k, SPAN_BWD, j);
            CHECK(f && b);
            if (k > 0 && f) CHECK(find(tl, k - 1, SPAN_FWD, j)->end_s <= f->start_s + eps);
            if (k < p->pp - 1 && b) CHECK(find(tl, k + 1, SPAN_BWD, j)->end_s <= b->start_s + eps);
        }
        int64_t sum = 0;
        for (int q = 0; q < MEM_PART_COUNT; q++) {
            CHECK(tl->mem[k][q] >= 0);
            sum += tl->mem[k][q];
        }
        CHECK_EQ(sum, p->stage_mem[k]);
        CHECK(tl->mem[k][MEM_PARAMS] > 0 && tl->mem[k][MEM_OPTIMIZER] > 0 && tl->mem[k][MEM_ACTIVATIONS] > 0);
    }
    if (uniform && fabs(tl->end_s - p->step_s) > 0.02 * p->step_s)
        fprintf(stderr, "timeline %.6f s, plan %.6f s\n", tl->end_s, p->step_s);
    if (uniform) CHECK(fabs(tl->end_s - p->step_s) <= 0.02 * p->step_s);
    (void)s;
}

/* Interleaved 1F1B (Narayanan et al. 2021, section 2.2.2): each stage's row
 * never overlaps and fills the step, every chunk runs each micro-batch's
 * forward and backward once, each after the chunk before's forward (the
 * chunk after's backward), and the step is the closed form's within 4%. */
static void test_interleaved(int devices, int pp, int tp, int dp, int v, int64_t m) {
    Arena *a = arena_new();
    Spec *s = load(a);
    HwProfile hw;
    hw_preset(&hw, DEVICE_CPU);
    hw.memory = s->cluster->memory;
    Strategy st = {.pp = pp, .tp = tp, .dp = dp, .tp_consec = true};
    SearchRequest req = {.devices = devices, .uniform = &st, .schedule = SCHED_INTERLEAVED, .vpp = v, .micro_batches = m};
    Plan p;
    Timeline tl;
    CHECK(pass_search(s, &hw, &req, a, &p) && p.found && p.vpp == v);
    if (!p.found || p.vpp != v) fprintf(stderr, "devices %d pp %d tp %d dp %d v %d m %lld: no plan\n", devices, pp, tp, dp, v, (long long)m);
    CHECK(p.found && pass_timeline(s, &hw, &p, a, &tl));
    if (!p.found) return arena_free(a);
    double eps = 1e-9 * tl.end_s;
    for (int k = 0; k < pp; k++) {
        double covered = 0;
        int64_t passes = 0;
        for (int64_t i = 0; i < tl.n_spans; i++) {
            const Span *x = &tl.spans[i];
            if (x->stage != k) continue;
            covered += x->end_s - x->start_s;
            passes += x->kind == SPAN_FWD || x->kind == SPAN_BWD;
            for (int64_t j = i + 1; j < tl.n_spans; j++)
                if (tl.spans[j].stage == k) CHECK(x->end_s <= tl.spans[j].start_s + eps || tl.spans[j].end_s <= x->start_s + eps);
        }
        CHECK(fabs(covered - tl.end_s) <= 1e-6 * tl.end_s);
        CHECK_EQ(passes, 2 * m * v);
    }
    if (fabs(tl.end_s - p.step_s) > 0.04 * p.step_s)
        fprintf(stderr, "pp %d tp %d dp %d v %d m %lld: timeline %.6f s, plan %.6f s\n", pp, tp, dp, v, (long long)m, tl.end_s,
                p.step_s);
    CHECK(fabs(tl.end_s - p.step_s) <= 0.04 * p.step_s);
    arena_free(a);
}

int main(void) {
    test_interleaved(2, 2, 1, 1, 2, 4);
    test_interleaved(4, 2, 1, 2, 2, 4);
    test_interleaved(4, 2, 2, 1, 3, 4);
    test_interleaved(4, 2, 2, 1, 2, 4);
    test_interleaved(4, 2, 1, 2, 3, 4);
    static const struct {
        int devices, pp, tp, dp, schedule, m;
        bool sdp, ckpt;
    } plans[] = {
        {2, 1, 1, 2, SCHED_1F1B, 0, false, false},  {2, 2, 1, 1, SCHED_1F1B, 4, false, false},
        {2, 2, 1, 1, SCHED_GPIPE, 4, false, false}, {4, 4, 1, 1, SCHED_1F1B, 8, false, true},
        {4, 4, 1, 1, SCHED_GPIPE, 8, false, false}, {8, 2, 2, 2, SCHED_1F1B, 2, true, true},
        {8, 1, 1, 8, SCHED_1F1B, 0, true, false},   {4, 2, 2, 1, SCHED_GPIPE, 2, false, false},
    };
    for (size_t i = 0; i <= sizeof plans / sizeof *plans; i++) {
        Arena *a = arena_new();
        Spec *s = load(a);
        HwProfile hw;
        hw_preset(&hw, DEVICE_CPU);
        hw.memory = s->cluster->memory;
        Plan p;
        bool uniform = i < sizeof plans / sizeof *plans;
        Strategy st = {0};
        /* the last: a searched plan that mixes strategies (1F1B: check_timeline follows one pass a stage) */
        SearchRequest req = {.devices = 8, .budget = 10 << 20, .schedule = SCHED_1F1B};
        if (uniform) {
            st = (Strategy){.pp = plans[i].pp, .tp = plans[i].tp, .dp = plans[i].dp, .sdp = plans[i].sdp, .tp_consec = true, .ckpt = plans[i].ckpt};
            req = (SearchRequest){.devices = plans[i].devices,
                                  .uniform = &st,
                                  .schedule = plans[i].schedule,
                                  .micro_batches = plans[i].m};
        }
        CHECK(pass_search(s, &hw, &req, a, &p) && p.found);
        Timeline tl;
        CHECK(pass_timeline(s, &hw, &p, a, &tl));
        if (p.found) check_timeline(s, &p, &tl, uniform);
        arena_free(a);
    }
    return check_report();
}
