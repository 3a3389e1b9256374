/* test_prune.c — the decision tree's strategy counts (Galvatron's, with
 * ZeRO-1 and ZeRO-2 beside DP and SDP, every TP strategy with and without
 * Megatron-SP, Ulysses of every degree with ZeRO-3, no TP, and context
 * parallelism) for powers of two and for any other device count, every
 * leaf well formed and distinct; hints remove branches. */
#include "check.h"
#include "passes/passes.h"

static void test_galvatron_counts(void) {
    static const struct {
        int devices, plain, with_ckpt;
    } want[] = {{8, 95, 190},
                {16, 181, 362},
                {32, 301, 602},
                {64, 459, 918},
                /* any factorization: 6 = 2 x 3, 12 = 2^2 x 3, 24 = 2^3 x 3 (3 nodes of 8), a prime */
                {6, 69, 138},
                {12, 207, 414},
                {24, 439, 878},
                {7, 9, 18},
                {1024, 1551, 3102}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        Arena *a = arena_new();
        StrategySet set;
        CHECK(pass_prune(want[i].devices, false, NULL, a, &set));
        CHECK_EQ(set.n, want[i].plain);
        CHECK(pass_prune(want[i].devices, true, NULL, a, &set));
        CHECK_EQ(set.n, want[i].with_ckpt);
        for (int k = 0; k < set.n; k++) {
            const Strategy *s = &set.items[k];
            CHECK_EQ(s->pp * strategy_stage_devices(s), want[i].devices);
            CHECK(!s->sdp || strategy_replicas(s) > 1);
            CHECK(s->zero == 0 || (s->zero <= 2 && strategy_replicas(s) > 1 && !s->sdp));
            CHECK(strategy_ulysses(s) == 1 || (s->tp == 1 && !s->sp && strategy_zero(s) == 3));
            CHECK(strategy_cp(s) == 1 || (s->tp_consec && strategy_sp(s) == (s->tp > 1)));
            CHECK(strategy_cp(s) == 1 || strategy_ulysses(s) == 1);
            CHECK(!s->zero3_once);
            CHECK(s->tp_consec || (s->tp > 1 && s->dp > 1));
            CHECK(!s->sp || s->tp > 1);
            for (int j = 0; j < k; j++) CHECK(!strategy_equal(s, &set.items[j]));
        }
        arena_free(a);
    }
}

static void test_hints(void) {
    Arena *a = arena_new();
    StrategySet set;
    PlanHints h = {.pp = 2, .max_tp = 2, .forbid = 1u << FAMILY_SDP};
    CHECK(pass_prune(8, true, &h, a, &set));
    /* pp=2: 4 devices per stage; tp 1 (dp 4) or 2 (dp 2, two nestings, with and without SP), each DP, ZeRO-1
     * or ZeRO-2; no sdp, so no Ulysses (ZeRO-3 over its replicas); x2 ckpt; with context parallelism,
     * tp 1 x cp 2 x dp 2 (DP, ZeRO-1, ZeRO-2) and cp 4 x dp 1, tp 2 with SP x cp 2 x dp 1 */
    CHECK_EQ(set.n, (1 + 2 * 2) * 3 * 2 + (3 + 1 + 1) * 2);
    h.forbid |= 1u << FAMILY_CP;
    CHECK(pass_prune(8, true, &h, a, &set));
    CHECK_EQ(set.n, (1 + 2 * 2) * 3 * 2);
    /* without ZeRO-1/2, SP and CP, sdp back: DP or ZeRO-3 at tp 1 and at tp 2 (two nestings), and Ulysses 2, 4 */
    PlanHints hu = {.pp = 2, .max_tp = 2, .forbid = 1u << FAMILY_ZERO | 1u << FAMILY_SP | 1u << FAMILY_CP};
    CHECK(pass_prune(8, true, &hu, a, &set));
    CHECK_EQ(set.n, (2 + 2 * 2 + 2) * 2);
    hu.forbid |= 1u << FAMILY_ULYSSES;
    CHECK(pass_prune(8, true, &hu, a, &set));
    CHECK_EQ(set.n, (2 + 2 * 2) * 2);
    h.forbid |= 1u << FAMILY_SP;
    CHECK(pass_prune(8, true, &h, a, &set));
    CHECK_EQ(set.n, (1 + 2) * 3 * 2);
    for (int k = 0; k < set.n; k++) {
        CHECK_EQ(set.items[k].pp, 2);
        CHECK(set.items[k].tp <= 2);
        CHECK(!set.items[k].sdp);
    }
    CHECK(!pass_prune(0, false, NULL, a, &set));
    /* on 6 devices, TP at most 3: pp 1 (tp 1, 2, 3) and pp 2 (tp 1, 3), pp 3 (tp 1, 2), pp 6; Ulysses
     * (ZeRO-3) 2, 3, 6 at pp 1, 3 at pp 2, 2 at pp 3 */
    h = (PlanHints){.max_tp = 3, .forbid = 1u << FAMILY_ZERO | 1u << FAMILY_SP | 1u << FAMILY_CP};
    CHECK(pass_prune(6, false, &h, a, &set));
    CHECK_EQ(set.n, (2 + 4 + 4) + (2 + 1) + (2 + 1) + 1 + 5);
    for (int k = 0; k < set.n; k++) CHECK(set.items[k].tp <= 3 && 6 % set.items[k].tp == 0);
    arena_free(a);
}

/* The documented maximum, 2^30 devices: degrees double up to it without
 * overflowing, and every leaf still multiplies out to the device count. */
static void test_max_devices(void) {
    Arena *a = arena_new();
    StrategySet set;
    CHECK(pass_prune(INT64_C(1) << 30, true, NULL, a, &set));
    CHECK(set.n > 0);
    for (int k = 0; k < set.n; k++)
        CHECK_EQ(set.items[k].pp * strategy_stage_devices(&set.items[k]), INT64_C(1) << 30);
    CHECK(!pass_prune(INT64_C(1) << 31, false, NULL, a, &set));
    CHECK(!pass_prune(INT64_C(1) << 40, false, NULL, a, &set));
    arena_free(a);
}

/* Without ZeRO-1 and ZeRO-2 the tree is Galvatron's: 22, 37, 56, 79 (Miao et al. 2023);
 * with every divisor as a degree, 18, 44, 82 for 6, 12, 24 devices. */
static void test_galvatron_subset(void) {
    static const int devices[] = {8, 16, 32, 64, 6, 12, 24}, galvatron[] = {22, 37, 56, 79, 18, 44, 82};
    for (int i = 0; i < 7; i++) {
        Arena *a = arena_new();
        StrategySet set;
        CHECK(pass_prune(devices[i], false, NULL, a, &set));
        int n = 0;
        for (int k = 0; k < set.n; k++)
            n += set.items[k].zero == 0 && !set.items[k].sp && strategy_ulysses(&set.items[k]) == 1 &&
                 strategy_cp(&set.items[k]) == 1;
        CHECK_EQ(n, galvatron[i]);
        arena_free(a);
    }
}

/* Against a count by brute force: every (pp, tp, dp) with pp tp dp = N is a
 * leaf, with 1 strategy when dp = 1, 4 (DP, ZeRO-1, ZeRO-2, ZeRO-3) when
 * tp = 1 < dp, and 8 (both nestings) when both exceed 1; twice that (with
 * and without Megatron-SP) when tp > 1; and with tp = 1 each Ulysses
 * degree u > 1 dividing N / pp, 1 strategy (ZeRO-3 over the u x dp
 * replicas). Every (pp, tp, cp, dp) with cp > 1 and pp tp cp dp = N is a
 * context-parallel leaf, one nesting, SP with TP: 1 strategy when dp = 1,
 * else 4. */
static int64_t count_divisors(int64_t n) {
    int64_t c = 0;
    for (int64_t d = 1; d <= n; d++)
        c += n % d == 0;
    return c;
}

static void test_every_factorization(void) {
    for (int n = 1; n <= 48; n++) {
        Arena *a = arena_new();
        StrategySet set;
        CHECK(pass_prune(n, false, NULL, a, &set));
        int want = 0;
        for (int pp = 1; pp <= n; pp++)
            for (int tp = 1; tp <= n; tp++)
                for (int cp = 1; cp <= n; cp++) {
                    if (n % (pp * tp * cp)) continue;
                    int dp = n / (pp * tp * cp), here = 0, sp = 0;
                    int leaf = cp > 1 ? (dp == 1 ? 1 : 4) : (dp == 1 ? 1 : tp == 1 ? 4 : 8) * (tp > 1 ? 2 : 1);
                    want += leaf;
                    for (int k = 0; k < set.n; k++) {
                        const Strategy *s = &set.items[k];
                        bool at = s->pp == pp && s->tp == tp && strategy_cp(s) == cp;
                        here += at, sp += at && s->sp;
                    }
                    int ulysses = tp == 1 && cp == 1 ? (int)count_divisors(dp) - 1 : 0;
                    CHECK_EQ(here, leaf + ulysses);
                    CHECK_EQ(sp, tp > 1 ? (cp > 1 ? leaf : leaf / 2) : 0);
                    want += ulysses;
                }
        CHECK_EQ(set.n, want);
        arena_free(a);
    }
}

/* Ulysses's leaves alone: 1 for each (pp, u > 1) with u | N / pp, so
 * 6, 10, 21, 55 on 8, 16, 64, 1,024 devices; tp 1 in each, every
 * degree a divisor; forbid=[ulysses] removes them all. */
static void test_ulysses_counts(void) {
    static const int devices[] = {8, 16, 64, 1024}, want[] = {6, 10, 21, 55};
    for (int i = 0; i < 4; i++) {
        Arena *a = arena_new();
        StrategySet set;
        CHECK(pass_prune(devices[i], false, NULL, a, &set));
        int n = 0;
        for (int k = 0; k < set.n; k++) {
            const Strategy *s = &set.items[k];
            if (strategy_ulysses(s) == 1) continue;
            n++;
            CHECK(s->tp == 1 && devices[i] % (s->pp * s->ulysses) == 0);
        }
        CHECK_EQ(n, want[i]);
        PlanHints h = {.forbid = 1u << FAMILY_ULYSSES | 1u << FAMILY_CP};
        CHECK(pass_prune(devices[i], false, &h, a, &set));
        CHECK_EQ(set.n, (int)(devices[i] == 8 ? 67 : devices[i] == 16 ? 121 : devices[i] == 64 ? 277 : 781));
        arena_free(a);
    }
}

int main(void) {
    test_ulysses_counts();
    test_every_factorization();
    test_galvatron_subset();
    test_galvatron_counts();
    test_max_devices();
    test_hints();
    return check_report();
}
