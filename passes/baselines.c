/* baselines.c — the plans other systems would pick, costed by the same
 * model so the comparison is fair: pure DP, pure ZeRO-1, ZeRO-2 and ZeRO-3
 * (DeepSpeed's stages; ZeRO-3 is galvc's SDP), pure TP, pure
 * PP (GPipe), the best uniform Megatron-LM grid (tp x pp x dp, 1F1B, the best
 * micro-batch count, with or without full recomputation) and the best
 * DeepSpeed-style grid (ZeRO-3 x pp x tp). `galvc --baselines` prints them
 * beside the chosen plan. */
#include "passes.h"

#include <string.h>

/* The best of the uniform plans the grid allows; `zero` picks the ZeRO stage over the DP group (0: plain DP). */
static void best_uniform(const Spec *spec, const HwProfile *hw, int64_t devices, int zero, int schedule,
                         bool allow_ckpt, int fixed_pp, int fixed_tp, Arena *a, Baseline *b) {
    int L = spec->graph->n_layers, n_div;
    const int64_t *div = strategy_divisors(devices, a, &n_div); /* the degrees: any factorization */
    for (int i = 0; i < n_div && div[i] <= L; i++) {
        int pp = (int)div[i];
        if (fixed_pp && pp != fixed_pp) continue;
        for (int j = 0; j < n_div && div[j] <= devices / pp; j++) {
            int tp = (int)div[j];
            if ((fixed_tp && tp != fixed_tp) || (devices / pp) % tp || !graph_tp_splits(spec->graph, tp)) continue;
            int dp = (int)(devices / pp / tp);
            if (zero && dp == 1 && devices > 1) continue; /* ZeRO needs a DP group */
            for (int ckpt = 0; ckpt <= allow_ckpt; ckpt++) {
                Strategy s = {.pp = pp, .tp = tp, .dp = dp, .sdp = zero == 3 && dp > 1, .tp_consec = true, .ckpt = ckpt,
                              .zero = zero < 3 && dp > 1 ? zero : 0,
                              .sp = tp > 1 && graph_sp_splits(spec->graph, tp)}; /* Megatron-Core's default */
                SearchRequest req = {.devices = devices, .uniform = &s, .schedule = schedule};
                Plan p;
                if (!pass_search(spec, hw, &req, a, &p)) continue;
                if (p.found) {
                    if (!b->plan.found || p.step_s < b->plan.step_s) b->plan = p;
                    continue;
                }
                req.min_memory = true;
                req.budget = INT64_MAX / 4;
                if (pass_search(spec, hw, &req, a, &p) && p.found) {
                    b->possible = true;
                    if (!b->needs || p.peak < b->needs) b->needs = p.peak;
                }
            }
        }
    }
    if (b->plan.found) b->possible = true;
}

static void print_row(FILE *out, const Spec *spec, const char *name, const Plan *p, int64_t needs, bool possible,
                      int64_t budget) {
    char m1[32], m2[32];
    int64_t batch = spec->train->global_batch, tokens = batch * spec->graph->layers[0]->seq;
    if (p->found) {
        char what[64];
        const Strategy *s = &p->layer[spec->graph->n_layers / 2];
        static const char *const dp_name[] = {"dp", "zero1", "zero2", "sdp"};
        snprintf(what, sizeof what, "pp=%d tp=%d %s=%d%s m=%lld", s->pp, s->tp, dp_name[strategy_zero(s)], s->dp,
                 s->ckpt ? " ckpt" : "", (long long)p->micro_batches);
        fprintf(out, "%-22s %12.3f %12.2f %14.0f %12s  %s\n", name, p->step_s, (double)batch / p->step_s,
                (double)tokens / p->step_s, bytes_str(m1, sizeof m1, (double)p->peak), what);
    } else if (possible) {
        fprintf(out, "%-22s does not fit: needs %s per device, has %s\n", name, bytes_str(m1, sizeof m1, (double)needs),
                bytes_str(m2, sizeof m2, (double)budget));
    } else {
        fprintf(out, "%-22s impossible: the global batch or the layers' heads do not split over its devices\n", name);
    }
}

void pass_baselines(FILE *out, const Spec *spec, const HwProfile *hw, int64_t devices, const Plan *chosen, Arena *a,
                    Baseline b[BASELINE_COUNT]) {
    int L = spec->graph->n_layers;
    int pp_all = 1, n_div; /* pure PP: the most stages the devices and the layers allow */
    const int64_t *div = strategy_divisors(devices, a, &n_div);
    for (int i = 0; i < n_div; i++)
        if (div[i] <= L) pp_all = (int)div[i];
    static const char *const names[BASELINE_COUNT] = {
        "pure DP", "pure ZeRO-1", "pure ZeRO-2", "pure SDP (ZeRO-3)", "pure TP", "pure PP (GPipe)", "Megatron grid",
        "DeepSpeed grid"};
    for (int i = 0; i < BASELINE_COUNT; i++) b[i] = (Baseline){.name = names[i]};
    for (int zero = 0; zero <= 3; zero++) best_uniform(spec, hw, devices, zero, SCHED_1F1B, false, 1, 1, a, &b[zero]);
    best_uniform(spec, hw, devices, 0, SCHED_1F1B, false, 1, (int)devices, a, &b[4]);
    best_uniform(spec, hw, devices, 0, SCHED_GPIPE, false, pp_all, 1, a, &b[5]);
    best_uniform(spec, hw, devices, 0, SCHED_1F1B, true, 0, 0, a, &b[6]);
    best_uniform(spec, hw, devices, 3, SCHED_1F1B, true, 0, 0, a, &b[7]);
    if (!out) return;
    char mem[32];
    fprintf(out, "%s on %lld x %s, %s per device, global batch %lld\n", spec->graph->name, (long long)devices,
            device_kind_names[spec->cluster->device], bytes_str(mem, sizeof mem, (double)hw->memory),
            (long long)spec->train->global_batch);
    fprintf(out, "%-22s %12s %12s %14s %12s  %s\n", "plan", "step s", "samples/s", "tokens/s", "peak mem",
            "middle layer");
    print_row(out, spec, "galvc", chosen, 0, true, hw->memory);
    for (int i = 0; i < BASELINE_COUNT; i++)
        print_row(out, spec, b[i].name, &b[i].plan, b[i].needs, b[i].possible, hw->memory);
}
