/* prune.c — the decision tree that prunes the hybrid-parallel strategy space
 * to the candidates worth searching, after Galvatron (Miao et al., VLDB 2023,
 * section 3.2, "decision-tree-based decomposition"):
 *  - pipeline parallelism is the outermost split, into pp stages of n = N/pp
 *    devices, pp any divisor of N (Galvatron takes powers of two; Megatron-LM
 *    any factorization, so 3 nodes of 8 or 12 devices plan too);
 *  - inside a stage the n devices split into tp x dp, tp any divisor of n;
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
 *  - with tp > 1, Megatron sequence parallelism over the TP group or not
 *    (Korthikanti et al. 2022: the stream between layers split over the
 *    sequence; less activation memory, an all-gather and a reduce-scatter
 *    for each all-reduce and the norms gathered again in backward);
 *  - with tp = 1, Ulysses sequence parallelism of any degree u > 1 dividing
 *    n (Jacobs et al. 2023, DeepSpeed-Ulysses): n = u x dp, each sample's
 *    tokens split over the u consecutive ranks of a Ulysses group, the heads
 *    split over them inside attention by two all-to-alls; the u x dp ranks
 *    hold the same weights, here sharded over all of them (ZeRO-3, as
 *    Galvatron's Ulysses plans shard theirs: the shipped LLaMA-2-7B config's
 *    vsp 1 with embed_sdp 1). Ulysses is not combined with TP in one layer,
 *    which would add a third degree to every stage for plans whose heads
 *    rarely divide by tp x u; and plain DP, ZeRO-1 and ZeRO-2 with Ulysses
 *    are left to --uniform and imported plans: with them the search over
 *    LLaMA-2-7B on 8 devices took 0.27-0.31 s of CPU against 0.16-0.19
 *    without Ulysses (ZeRO-3 alone: 0.25-0.27 against 0.19, at a load
 *    average of 5; merging larger Pareto
 *    frontiers, not the count, costs it);
 *  - context parallelism of any degree cp > 1 dividing n / tp (ring
 *    attention, Liu et al. 2023; Megatron-Core's CP): n = tp x cp x dp,
 *    each sample's sequence split over cp ranks through every layer, TP
 *    groups consecutive, then CP, then DP ranks, Megatron-SP on with TP,
 *    each ZeRO stage over dp (add_context_parallel); never with Ulysses in
 *    one layer;
 *  - each of these with or without activation checkpointing.
 * For N = 8, 16, 32, 64 this gives 67, 121, 191, 277 strategies without
 * Ulysses and CP (40, 69, 106, 151 without SP; Galvatron's 22, 37, 56, 79
 * with DP and SDP alone); for N = 6, 12, 24, 51, 143, 283 (32, 82, 156
 * without SP; 18, 44, 82 with DP and SDP alone); 781 for 1,024. Ulysses
 * adds 1 for each (pp, u > 1): 6, 10, 15, 21 for N = 8, 16, 32, 64, 5, 12,
 * 22 for 6, 12, 24, 55 for 1,024; CP adds 22, 50, 95, 161, then 13, 52,
 * 134, and 715: in all 95, 181, 301, 459 for N = 8, 16, 32, 64, 69, 207,
 * 439 for 6, 12, 24 and 1,551 for 1,024; twice that with checkpointing.
 * Where TP's groups sit against the nodes (fast links or not) is the cost
 * model's to price (cost.c).
 * Plan hints remove branches (forbidding dp removes plain DP and ZeRO-1/2,
 * zero ZeRO-1/2, sdp ZeRO-3, sp Megatron sequence parallelism, ulysses
 * Ulysses, cp context parallelism; max_tp caps tp alone). */
#include "passes.h"

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
    if ((h->forbid & 1u << FAMILY_DP) && strategy_replicas(s) > 1 && !s->sdp) return false; /* DP and ZeRO-1/2 */
    if ((h->forbid & 1u << FAMILY_SDP) && s->sdp) return false;
    if ((h->forbid & 1u << FAMILY_ZERO) && (strategy_zero(s) == 1 || strategy_zero(s) == 2)) return false;
    if ((h->forbid & 1u << FAMILY_CKPT) && s->ckpt) return false;
    if ((h->forbid & 1u << FAMILY_SP) && s->sp) return false;
    if ((h->forbid & 1u << FAMILY_ULYSSES) && strategy_ulysses(s) > 1) return false;
    if ((h->forbid & 1u << FAMILY_CP) && strategy_cp(s) > 1) return false;
    return true;
}

/* The context-parallel leaves under a stage's tp x rest split: cp any
 * divisor of rest above 1, dp = rest / cp, in Megatron-Core's rank order
 * (TP groups consecutive, CP groups strided by tp, DP groups by tp cp), with
 * Megatron-SP when tp > 1 (Megatron-Core runs CP beside TP with SP on), and
 * each ZeRO stage over the dp group; with and without checkpointing. */
static void add_context_parallel(StrategySet *out, Arena *a, int pp, int tp, int rest, bool ckpt, const PlanHints *h) {
    for (int cp = 2; cp <= rest; cp++) {
        if (rest % cp) continue;
        int dp = rest / cp;
        for (int zero = 0; zero <= (dp > 1 ? 3 : 0); zero++)
            for (int c = 0; c <= (int)ckpt; c++) {
                Strategy s = {.pp = pp, .tp = tp, .dp = dp, .sdp = zero == 3, .tp_consec = true, .ckpt = c,
                              .zero = zero < 3 ? zero : 0, .sp = tp > 1, .cp = cp};
                if (allowed(&s, h)) add(out, a, s);
            }
    }
}

/* Stage of n devices, tp 1: each Ulysses degree u > 1 dividing n, with dp = n / u and ZeRO-3 over
 * the u x dp replicas. */
static void add_ulysses(StrategySet *out, Arena *a, int64_t pp, int64_t n, const int64_t *div, int n_div, bool ckpt,
                        const PlanHints *hints) {
    for (int j = 1; j < n_div && div[j] <= n; j++) { /* div ascending, div[0] = 1 */
        int64_t u = div[j];
        if (n % u) continue;
        for (int c = 0; c <= (int)ckpt; c++) {
            Strategy s = {.pp = (int)pp, .tp = 1, .dp = (int)(n / u), .sdp = true, .tp_consec = true, .ckpt = c,
                          .ulysses = (int)u};
            if (allowed(&s, hints)) add(out, a, s);
        }
    }
}

bool pass_prune(int64_t devices, bool ckpt, const PlanHints *hints, Arena *a, StrategySet *out) {
    *out = (StrategySet){0};
    if (devices < 1 || devices > (1 << 30)) return false;
    int n_div;
    const int64_t *div = strategy_divisors(devices, a, &n_div);
    for (int i = 0; i < n_div; i++) {
        int64_t pp = div[i], n = devices / pp;
        for (int j = 0; j < n_div && div[j] <= n; j++) {
            if (n % div[j]) continue;
            int64_t tp = div[j], dp = n / tp;
            /* the DP group's ZeRO stage: 0 (plain DP), 1, 2, 3 (sdp) */
            for (int zero = 0; zero <= (dp > 1 ? 3 : 0); zero++)
                for (int consec = 1; consec >= (tp > 1 && dp > 1 ? 0 : 1); consec--)
                    for (int sp = 0; sp <= (tp > 1); sp++)
                        for (int c = 0; c <= (int)ckpt; c++) {
                            Strategy s = {.pp = (int)pp, .tp = (int)tp, .dp = (int)dp, .sdp = zero == 3,
                                          .tp_consec = consec, .ckpt = c, .zero = zero < 3 ? zero : 0, .sp = sp};
                            if (allowed(&s, hints)) add(out, a, s);
                        }
            add_context_parallel(out, a, (int)pp, (int)tp, (int)dp, ckpt, hints);
        }
        add_ulysses(out, a, pp, n, div, n_div, ckpt, hints); /* after the others: ties keep going to them */
    }
    return true;
}
