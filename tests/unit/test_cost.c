/* test_cost.c — the cost model on device counts that are not powers of two:
 * a group runs on the slow link exactly when some group of its kind crosses
 * a node boundary (3 nodes of 8 devices: TP 3 and 6 do, TP 2, 4 and 8 do
 * not; DP inside a stage of 8 does not), and a measured profile, which holds
 * powers of two only, prices those and leaves other sizes to the link's
 * figures and the analytic layer model. Megatron-SP against plain TP: less
 * activation memory, more traffic, and a profile measured with SP priced up
 * for plain TP by Korthikanti et al.'s replicated 10 s b h. Ulysses against DP over as many
 * devices: the same compute and gradient all-reduce, the activations of
 * T / u tokens with attention's heads over the whole sequence (more than
 * DP's, by those copies), and two all-to-alls each way at the all-to-all's
 * bandwidth. Context parallelism against DP over as many ranks: the same
 * compute and state, less activation memory, the ring's p2p steps on top.
 * A GPU profile's GEMM rates price the arithmetic the program runs (fp32,
 * or bf16's linears). */
#include "check.h"
#include "frontend/frontend.h"
#include "hw/hw.h"
#include "passes/passes.h"
#include "runtime/galvrt.h"

#include <math.h>
#include <string.h>

/* 3 nodes of 8; one decoder whose 24 heads and FFN of 384 split over TP 1, 2, 3, 4, 6, 8, 12, 24. */
static const char src[] = "cluster c { nodes = 3; devices_per_node = 8; device = a100_80gb; memory = 80 GiB }\n"
                          "model r { embedding(512, 96, positions = 64)\n decoder(96, 24)\n lm_head(tied) }\n"
                          "train { global_batch = 48; seq = 64 }\n";

enum { DECODER = 1, SLOW = 1 }; /* the decoder's layer index; a link of 1 byte/s */

static Spec *load(Arena *a) {
    Diag d;
    diag_init(&d, stderr);
    FrontendOptions opt = {.input = "cost.gv", .input_text = src, .input_len = strlen(src)};
    Spec *s = frontend_load(a, &opt, &d);
    if (s) pass_shape(s, &d);
    return d.errors ? NULL : s;
}

/* The decoder's cost under strategy x alone (NULL: the strategy sought was not found), one micro-batch;
 * the arena freed. */
static LayerCost decoder_cost(const Spec *s, const HwProfile *hw, Strategy *x, Arena *a) {
    CHECK(x != NULL);
    StrategySet one = {.items = x, .n = 1};
    CostTable t;
    LayerCost c = {0};
    if (x && pass_cost(s, hw, &one, 1, a, &t)) c = t.cost[DECODER];
    arena_free(a);
    return c;
}

/* The decoder's cost under pp x tp x dp (plain DP, TP on consecutive ranks, checkpointed or not, Megatron-SP
 * or not), one micro-batch. */
static LayerCost cost_ckpt_sp(const Spec *s, const HwProfile *hw, int pp, int tp, int dp, bool ckpt, bool sp) {
    Arena *a = arena_new();
    StrategySet all;
    Strategy *found = NULL;
    CHECK(pass_prune(24, ckpt, NULL, a, &all));
    for (int k = 0; k < all.n; k++) {
        const Strategy *x = &all.items[k];
        if (x->pp == pp && x->tp == tp && x->dp == dp && !strategy_zero(x) && x->tp_consec && x->sp == sp &&
            x->ckpt == ckpt)
            found = &all.items[k];
    }
    return decoder_cost(s, hw, found, a);
}

static LayerCost cost_sp(const Spec *s, const HwProfile *hw, int pp, int tp, int dp, bool sp) {
    return cost_ckpt_sp(s, hw, pp, tp, dp, false, sp);
}

static LayerCost cost_of(const Spec *s, const HwProfile *hw, int pp, int tp, int dp) {
    return cost_sp(s, hw, pp, tp, dp, false);
}

/* The TP traffic of a layer: its micro-batch time past its compute. */
static double tp_s(const LayerCost *c) { return c->mb_s - c->compute_s; }

/* Inter-node links of 1 byte/s: a group that crosses a node takes seconds
 * for a few bytes, one inside nodes well under one. */
static void test_groups_against_nodes(const Spec *s) {
    HwProfile hw;
    hw_preset(&hw, (DeviceKind)s->cluster->device);
    hw.inter.bandwidth = SLOW;
    /* TP on consecutive ranks: the groups tile blocks of tp, inside nodes of 8 iff tp divides 8 */
    static const struct {
        int tp;
        bool crosses;
    } tp[] = {{2, false}, {3, true}, {4, false}, {6, true}, {8, false}, {12, true}};
    for (size_t i = 0; i < sizeof tp / sizeof tp[0]; i++) {
        LayerCost c = cost_of(s, &hw, 1, tp[i].tp, 24 / tp[i].tp);
        CHECK(tp[i].crosses ? tp_s(&c) > 1.0 : tp_s(&c) < 0.1);
    }
    /* DP over a stage of 8 stays in its node; over 24 or 12 it crosses */
    LayerCost in_node = cost_of(s, &hw, 3, 1, 8), across = cost_of(s, &hw, 1, 1, 24), half = cost_of(s, &hw, 2, 1, 12);
    CHECK(in_node.step_s < 0.1);
    CHECK(across.step_s > 1.0);
    CHECK(half.step_s > 1.0);
}

/* A profile measuring every power-of-two group as 1 byte/s and the TP 2
 * decoder as very slow: TP 2 and 4 take those figures, TP 3 and 6 (no
 * entry) the intra-node link's and the analytic model's. */
static void test_profile_powers_of_two(const Spec *s) {
    HwProfile hw;
    hw_preset(&hw, (DeviceKind)s->cluster->device);
    for (int k = 0; k <= PROFILE_MAX_LOG2; k++)
        for (int c = 0; c < 2; c++) hw.measured_bw[COLL_ALLREDUCE][k][c] = SLOW;
    LayerCost tp2 = cost_of(s, &hw, 3, 2, 4), tp4 = cost_of(s, &hw, 3, 4, 2);
    CHECK(tp_s(&tp2) > 1.0 && tp_s(&tp4) > 1.0);
    /* on 24 devices in stages of 6 (pp 4) TP 3 and 6 cross nodes of 8: nodes of 24 keep them inside */
    Spec local = *s;
    Cluster one_node = *s->cluster;
    one_node.nodes = 1, one_node.devices_per_node = 24;
    local.cluster = &one_node;
    LayerCost tp3 = cost_of(&local, &hw, 4, 3, 2), tp6 = cost_of(&local, &hw, 4, 6, 1);
    CHECK(tp_s(&tp3) < 0.1 && tp_s(&tp6) < 0.1);

    HwProfile fit;
    hw_preset(&fit, (DeviceKind)s->cluster->device);
    fit.layer_fit[PROFILE_LAYER_BLOCK][1][0] = (LayerFit){.fixed_s = 100, .rate = 1};
    fit.layer_fit[PROFILE_LAYER_BLOCK][1][1] = (LayerFit){.fixed_s = 100, .rate = 1};
    LayerCost f2 = cost_of(s, &fit, 4, 2, 3), f3 = cost_of(s, &fit, 4, 3, 2);
    CHECK(f2.compute_s >= 200);
    CHECK(f3.compute_s > 0 && f3.compute_s < 1);
}

/* TP 2 (stages of 8, DP 4): SP keeps less and moves more (the norms gathered
 * again in backward); a measured profile taken with SP costs plain TP's
 * replicated activations on top: 5 e s b h (1 - 1/t) bytes. */
static void test_sequence_parallel(const Spec *s) {
    HwProfile hw;
    hw_preset(&hw, (DeviceKind)s->cluster->device);
    LayerCost plain = cost_sp(s, &hw, 3, 2, 4, false), sp = cost_sp(s, &hw, 3, 2, 4, true);
    CHECK(sp.act_bytes < plain.act_bytes);
    CHECK(sp.stream_bytes * 2 == plain.stream_bytes);
    CHECK(tp_s(&sp) > tp_s(&plain));
    hw.act_kind = LAYER_DECODER, hw.act_seq = 64, hw.act_sp = true;
    for (int k = 0; k <= PROFILE_MAX_LOG2; k++) hw.act_per_sample[k] = 1e6;
    plain = cost_sp(s, &hw, 3, 2, 4, false), sp = cost_sp(s, &hw, 3, 2, 4, true);
    double mbs = 48.0 / 4, want = 5.0 * 4 * 64 * 96 * mbs * 0.5; /* fp32: 4 bytes; s 64, h 96, t 2 */
    CHECK_EQ(sp.act_bytes, (int64_t)(1e6 * mbs));
    CHECK_EQ(plain.act_bytes - sp.act_bytes, (int64_t)want);
}

/* The decoder under tp x cp x dp on one stage of 24 (plain DP over dp, no checkpointing), one micro-batch. */
static LayerCost cost_cp(const Spec *s, const HwProfile *hw, int tp, int cp, int dp) {
    Arena *a = arena_new();
    StrategySet all;
    Strategy *found = NULL;
    CHECK(pass_prune(24, false, NULL, a, &all));
    for (int k = 0; k < all.n; k++) {
        const Strategy *x = &all.items[k];
        if (x->pp == 1 && x->tp == tp && strategy_cp(x) == cp && strategy_ulysses(x) == 1 && x->dp == dp &&
            !strategy_zero(x) && x->tp_consec && strategy_sp(x) == (tp > 1))
            found = &all.items[k];
    }
    return decoder_cost(s, hw, found, a);
}

/* CP 2 x DP 12 against DP 24 (each rank 1/24 of the micro-batch's tokens):
 * the same compute and training state, fewer kept bytes (log-sum-exp rows
 * for the probabilities), the ring's p2p on top, more of it over 4 ranks;
 * TP 2 with SP x CP 2 x DP 6 keeps its 1/24 of the stream too. */
static void test_context_parallel(const Spec *s) {
    HwProfile hw;
    hw_preset(&hw, (DeviceKind)s->cluster->device);
    LayerCost dp = cost_cp(s, &hw, 1, 1, 24), cp2 = cost_cp(s, &hw, 1, 2, 12), cp4 = cost_cp(s, &hw, 1, 4, 6);
    CHECK(fabs(cp2.compute_s - dp.compute_s) <= 1e-12 * dp.compute_s);
    CHECK_EQ(cp2.state_bytes, dp.state_bytes);
    CHECK(cp2.act_bytes < dp.act_bytes);
    CHECK_EQ(cp2.stream_bytes, dp.stream_bytes);
    CHECK(cp2.mb_s > dp.mb_s && cp4.mb_s - cp4.compute_s > cp2.mb_s - cp2.compute_s);
    CHECK_EQ(cp2.calls_mb, (2 - 1) + (2 - 1) + 2); /* forward's one step, backward's K,V and dK,dV */
    LayerCost tp = cost_cp(s, &hw, 2, 2, 6);
    CHECK_EQ(tp.stream_bytes, cp2.stream_bytes);
}

/* The decoder's cost (and the reshards between them) under pp 3 (stages of 8) for each of n fixed
 * strategies of plain DP: dp[k] with ulysses[k], one micro-batch. */
static void cost_ulysses(const Spec *s, const HwProfile *hw, int n, const int *dp, const int *ulysses, LayerCost *c,
                         double *reshard) {
    Arena *a = arena_new();
    Strategy x[2];
    for (int k = 0; k < n; k++)
        x[k] = (Strategy){.pp = 3, .tp = 1, .dp = dp[k], .tp_consec = true, .ulysses = ulysses[k]};
    StrategySet set = {.items = x, .n = n};
    CostTable t;
    CHECK(pass_cost(s, hw, &set, 1, a, &t));
    for (int k = 0; k < n; k++)
        c[k] = t.cost[(size_t)DECODER * n + k];
    for (int k = 0; k < n * n; k++)
        reshard[k] = t.reshard[(size_t)DECODER * n * n + k];
    arena_free(a);
}

/* Ulysses 2 x DP 4 against DP 8 on the decoder (hidden 96, 24 heads of 4, FFN 384, 64 tokens, 48 samples). */
static void test_ulysses(const Spec *s) {
    HwProfile hw;
    hw_preset(&hw, (DeviceKind)s->cluster->device);
    hw.sync_s = 0, hw.intra.latency = hw.inter.latency = 0;
    for (int k = 0; k <= PROFILE_MAX_LOG2; k++)
        hw.measured_bw[COLL_ALLTOALL][k][1] = 1e6; /* 1 MB/s */
    LayerCost c[2];
    double rs[4];
    cost_ulysses(s, &hw, 2, (const int[]){8, 4}, (const int[]){1, 2}, c, rs);
    /* each device computes 6 samples' 64 tokens, or 12 samples' 32: the same FLOPs, the same all-reduce over 8 */
    CHECK(fabs(c[0].compute_s - c[1].compute_s) <= 1e-12 * c[0].compute_s);
    CHECK(fabs(c[0].step_s - c[1].step_s) <= 1e-12 * c[0].step_s);
    CHECK_EQ(c[0].state_bytes, c[1].state_bytes);
    /* two all-to-alls forward, two backward, each (u-1)/u of a rank's 12 x 32 tokens' QKV (24 + 2 x 24 heads of
     * 4) and output (24 heads of 4), 4 bytes each, at 1 MB/s */
    double qkv = 12.0 * 32 * 72 * 4 * 4, out = 12.0 * 32 * 24 * 4 * 4, want = 2 * 0.5 * (qkv + out) / 1e6;
    CHECK(fabs((c[1].mb_s - c[1].compute_s) - want) <= 1e-9 * want);
    CHECK(c[0].mb_s == c[0].compute_s);
    /* kept for backward (fp32): the input and 6 statistics, 3 norm / residual rows, QKV, attention output, MLP up
     * and activation of the 384 local tokens; QKV and the output of its 12 heads over all 768 of its samples'
     * tokens; the (12 samples, 12 heads, 64, 64) probabilities */
    double N = 12.0 * 32, kept = N * 96 + 6 * N + N * (3 * 96 + 288 + 96 + 384 + 384) + 12.0 * 64 * (288 + 96) / 2 +
                                 12.0 * 12 * 64 * 64;
    CHECK_EQ(c[1].act_bytes, (int64_t)(4 * kept));
    /* DP 8 keeps as much for its 6 x 64 tokens, but for the whole-sequence copies: Ulysses pays off where
     * samples run out (DP cannot split one), not against DP over as many devices */
    CHECK_EQ(c[1].act_bytes - c[0].act_bytes, (int64_t)(4 * 12.0 * 64 * (288 + 96) / 2));
    CHECK_EQ(c[1].stream_bytes, c[0].stream_bytes); /* twice the samples, half the tokens */
    /* into and out of the Ulysses layout: the stream gathered over the group (and sliced back) */
    CHECK(rs[0] == 0 && rs[3] == 0 && rs[1] > 0 && rs[1] == rs[2]);
    /* Ulysses 8 with ZeRO-3: an eighth of the state, as ZeRO-3 over DP 8 */
    hw_preset(&hw, (DeviceKind)s->cluster->device);
    LayerCost z[2];
    Arena *a = arena_new();
    Strategy x[2] = {{.pp = 3, .tp = 1, .dp = 8, .sdp = true, .tp_consec = true},
                     {.pp = 3, .tp = 1, .dp = 1, .sdp = true, .tp_consec = true, .ulysses = 8}};
    StrategySet set = {.items = x, .n = 2};
    CostTable t;
    CHECK(pass_cost(s, &hw, &set, 1, a, &t));
    z[0] = t.cost[DECODER * 2], z[1] = t.cost[DECODER * 2 + 1];
    CHECK_EQ(z[0].state_bytes, z[1].state_bytes);
    CHECK_EQ(z[0].shard_bytes, z[1].shard_bytes);
    arena_free(a);
}

/* A profile's measured GEMM rates price the arithmetic the program runs
 * (memory bandwidth taken away): in fp32 the fp32 rate as a peak of that
 * rate at efficiency 1 would; in bf16 every GEMM at the bf16 rate, but a
 * checkpointed block's attention core (4 s^2 heads hd of the forward), which
 * has no kept bits to multiply, at fp32's; a block fit (timed in fp32)
 * moves to the bf16 rate, never below the fit scaled by the two rates;
 * fp16, which no rate measures, as the preset. */
static void test_gemm_rates(const Spec *s) {
    enum { R = 1000000000 };
    HwProfile peak, rates;
    hw_preset(&peak, (DeviceKind)s->cluster->device);
    peak.mem_bandwidth = 1e300, peak.peak_flops[PREC_FP32] = R, peak.gemm_efficiency = 1;
    rates = peak;
    rates.peak_flops[PREC_FP32] = 1, rates.gemm_efficiency = 1e-3; /* ignored once rates are measured */
    rates.gemm_rates[GRT_GEMM_FP32] = R, rates.gemm_rates[GRT_GEMM_TF32] = 4.0 * R, rates.gemm_rates[GRT_GEMM_BF16] = 8.0 * R;
    LayerCost fp32 = cost_of(s, &rates, 3, 2, 4), want = cost_of(s, &peak, 3, 2, 4);
    CHECK(fp32.compute_s > 0 && fabs(fp32.compute_s / want.compute_s - 1) < 1e-12);

    Spec b = *s;
    TrainConfig t = *s->train;
    t.precision = PREC_BF16, b.train = &t;
    const Layer *l = s->graph->layers[DECODER];
    double core = 4.0 * 64 * 64 * 24 * 4, F = (double)l->fwd_flops, ratio = ((F - core) / 8 + core) / F;
    LayerCost bf = cost_of(&b, &rates, 3, 2, 4);
    CHECK(fabs(bf.compute_s / (fp32.compute_s / 8) - 1) < 1e-12);
    LayerCost bf_ckpt = cost_ckpt_sp(&b, &rates, 3, 2, 4, true, false),
              fp32_ckpt = cost_ckpt_sp(s, &rates, 3, 2, 4, true, false);
    CHECK(core < F && fabs(bf_ckpt.compute_s / (fp32_ckpt.compute_s * ratio) - 1) < 1e-12);
    t.precision = PREC_FP16;
    hw_preset(&peak, (DeviceKind)s->cluster->device);
    rates = peak;
    rates.gemm_rates[GRT_GEMM_FP32] = rates.gemm_rates[GRT_GEMM_BF16] = 1; /* 1 FLOP/s: unused in fp16 */
    CHECK(cost_of(&b, &rates, 3, 2, 4).compute_s == cost_of(&b, &peak, 3, 2, 4).compute_s);

    /* a block fit of 10 s a step's forward FLOPs on top of its fixed 1 s, timed in fp32 */
    t.precision = PREC_BF16;
    hw_preset(&rates, (DeviceKind)s->cluster->device);
    rates.gemm_rates[GRT_GEMM_FP32] = R, rates.gemm_rates[GRT_GEMM_BF16] = 8.0 * R;
    LayerFit *f = rates.layer_fit[PROFILE_LAYER_BLOCK][1];
    f[0] = f[1] = (LayerFit){.fixed_s = 1, .rate = R / 10.0};
    double fit = cost_of(s, &rates, 3, 2, 4).compute_s, moved = cost_of(&b, &rates, 3, 2, 4).compute_s;
    double work = fit - 2; /* fwd + bwd: 2 s fixed and 3 units of work */
    CHECK(fabs(moved - (fit - work / 10 + work / 80)) < 1e-9 * fit);
    f[0] = f[1] = (LayerFit){.rate = 4.0 * R}; /* faster than the fp32 GEMMs: scaled by 1/8 */
    fit = cost_of(s, &rates, 3, 2, 4).compute_s, moved = cost_of(&b, &rates, 3, 2, 4).compute_s;
    CHECK(fabs(moved - fit / 8) < 1e-9 * fit);
}

int main(void) {
    Arena *a = arena_new();
    Spec *s = load(a);
    CHECK(s != NULL);
    if (s) {
        test_groups_against_nodes(s);
        test_profile_powers_of_two(s);
        test_sequence_parallel(s);
        test_ulysses(s);
        test_context_parallel(s);
        test_gemm_rates(s);
    }
    arena_free(a);
    return check_report();
}
