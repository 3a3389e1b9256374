/* prune.c — the decision tree that prunes the hybrid-parallel strategy space
 * to the candidates worth searching, after Galvatron (Miao et al., VLDB 2023,
 * section 3.2, "decision-tree-based decomposition"):
 *  - pipeline parallelism is the outermost split, into pp stages of n = N/pp
 *    devices (pp a power of two);
 *  - inside a stage the n devices split into tp x dp, both powers of two;
 *  - the dp group is plain data parallel, ZeRO-1 (optimizer states
 *    sharded), ZeRO-2 (gradients too) or ZeRO-3 (SDP: parameters too), never
 *    a mix in one layer: Galvatron-BMW's data-parallel choices (Wang et al.
 *    2024; its default_dp_type ddp or zero2 beside sdp), each per layer here,
 *    and ZeRO-1, which pays for itself with several micro-batches: it
 *    reduces the accumulated gradient once a step where the runtime's ZeRO-2
 *    reduces every micro-batch (measured on gpt-tiny at 9 MiB a rank, 6-10%
 *    faster than the best plan without it: bench/plan_quality.sh);
 *  - with tp > 1 and dp > 1 both nestings are kept: TP groups on consecutive
 *    ranks, or strided (DP groups consecutive);
 *  - each of these with or without activation checkpointing.
 * For N = 8, 16, 32, 64 this gives 40, 69, 106, 151 strategies (Galvatron's
 * 22, 37, 56, 79 with DP and SDP alone), and twice that with checkpointing.
 * Plan hints remove branches (forbidding dp removes plain DP and ZeRO-1/2,
 * zero ZeRO-1/2, sdp ZeRO-3). */
#include "passes.h"

static bool is_pow2(int64_t x) { return x > 0 && (x & (x - 1)) == 0; }

static void add(StrategySet *set, Arena *a, Strategy s) {
    if (set->n == set->cap) {
        int cap = set->cap ? 2 * set->cap : 64;
        Strategy *items = arena_alloc(a, (size_t)cap * sizeof *items);
        for (int i = 0; i < set->n; i++) items[i] = set->items[i];
        set->items = items;
        set->cap = cap;
    }
    set->items[set->n++] = s;
}

/* A hint's verdict on one strategy. */
static bool allowed(const Strategy *s, const PlanHints *h) {
    if (!h) return true;
    if (h->pp && s->pp != h->pp) return false;
    if (h->max_tp && s->tp > h->max_tp) return false;
    if ((h->forbid & 1u << FAMILY_PP) && s->pp > 1) return false;
    if ((h->forbid & 1u << FAMILY_TP) && s->tp > 1) return false;
    if ((h->forbid & 1u << FAMILY_DP) && s->dp > 1 && !s->sdp) return false; /* DP and ZeRO-1/2 */
    if ((h->forbid & 1u << FAMILY_SDP) && s->sdp) return false;
    if ((h->forbid & 1u << FAMILY_ZERO) && (strategy_zero(s) == 1 || strategy_zero(s) == 2)) return false;
    if ((h->forbid & 1u << FAMILY_CKPT) && s->ckpt) return false;
    return true;
}

bool pass_prune(int64_t devices, bool ckpt, const PlanHints *hints, Arena *a, StrategySet *out) {
    *out = (StrategySet){0};
    if (!is_pow2(devices) || devices > (1 << 30)) return false;
    /* 64-bit counters: at 2^30 devices a doubling int would pass INT_MAX */
    for (int64_t pp = 1; pp <= devices; pp *= 2) {
        int64_t n = devices / pp;
        for (int64_t tp = 1; tp <= n; tp *= 2) {
            int64_t dp = n / tp;
            /* the DP group's ZeRO stage: 0 (plain DP), 1, 2, 3 (sdp) */
            for (int zero = 0; zero <= (dp > 1 ? 3 : 0); zero++)
                for (int consec = 1; consec >= (tp > 1 && dp > 1 ? 0 : 1); consec--)
                    for (int c = 0; c <= (int)ckpt; c++) {
                        Strategy s = {(int)pp, (int)tp, (int)dp, zero == 3, consec, c, zero < 3 ? zero : 0, false};
                        if (allowed(&s, hints)) add(out, a, s);
                    }
        }
    }
    return true;
}
