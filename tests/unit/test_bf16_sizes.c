/* test_bf16_sizes.c — under bf16 mixed precision the planner's memory
 * figures are what the runtime allocates: for a small GPT on 4 devices, for
 * every strategy pass_prune gives (DP, TP, PP, ZeRO-1/2/3, checkpointing;
 * Ulysses on CPU ranks, where the program runs it) and both ways of holding the rounded GEMM operands (the host's widened
 * floats, a GPU's bf16 bits), each layer's weights, gradients, optimizer
 * state, kept activations, working space and checkpoint area as the cost
 * pass counts them, against the runtime laying out and binding the same
 * layer (runtime/layers.c allocates its activations here, in host memory)
 * and sharding it over the DP group as runtime/run.c does. A block's kept
 * activations under bf16 are counted from the model's own dimensions (2
 * bytes each, the norms' statistics 4; fp32 when checkpointed), and a
 * block's forward leaves in its kept bits exactly the values its fp32
 * working copy went on from, which a checkpointed block keeps; its working
 * space holds the attention backward's score gradient (H / tp, T, T), and
 * on a GPU its rounded operands the attention core's bits. No GPU needed. */
#include "check.h"
#include "frontend/frontend.h"
#include "hw/hw.h"
#include "passes/passes.h"
#include "runtime/galvrt.h"

#include <string.h>

static const char src[] = "cluster c { nodes = 1; devices_per_node = 4; device = cpu; memory = 64 GiB }\n"
                          "model g { embedding(256, 64, positions = 64)\n"
                          " repeat 2 { decoder(64, 4, ffn = 256, act = gelu, norm = layernorm) }\n"
                          " layernorm(64)\n lm_head(tied) }\n"
                          "train { global_batch = 16; seq = 64; precision = bf16; optimizer = adamw(lr = 1e-3) }\n";

enum { MICRO_BATCHES = 2, MOMENTS = 2 }; /* AdamW's m and v */

static Spec *load(Arena *a) {
    Diag d;
    diag_init(&d, stderr);
    FrontendOptions opt = {.input = "bf16.gv", .input_text = src, .input_len = strlen(src)};
    Spec *s = frontend_load(a, &opt, &d);
    if (s) pass_shape(s, &d);
    return d.errors ? NULL : s;
}

/* The runtime's bytes of a layer of n parameters on one rank of a DP group
 * of dp under ZeRO stage `zero` (runtime/run.c's grt_shard_setup and
 * grt_run_alloc): the parameters (ZeRO-1/2 whole, padded; ZeRO-3 its
 * chunk), the gradient, m and v of what it steps, the whole gradient ZeRO-1
 * accumulates. */
static int64_t runtime_state_bytes(int64_t n, int dp, int zero, int64_t *params, int64_t *grads) {
    int64_t chunk = (n + dp - 1) / dp, stored = zero ? chunk : n, e = GRT_ELEM_BYTES;
    *params = (zero == 1 || zero == 2 ? chunk * dp : zero == 3 ? chunk : n) * e;
    *grads = (zero == 1 ? chunk * dp : stored) * e;
    return *params + stored * e * (1 + MOMENTS) + (zero == 1 ? chunk * dp * e : 0);
}

/* The bytes a decoder of the model above (C 64, 4 heads of 16, FFN 256)
 * keeps from a micro-batch of B sequences of T on one rank of a TP group of
 * tp, its input aside, written out from its dimensions: the norms' six
 * per-token statistics in fp32; ln1, res1, ln2 (C), QKV (3 C / tp), the
 * attention output (C / tp), MLP up and its activation (F / tp each) per
 * token and the probabilities (4 / tp heads of T x T) in fp32, or in bf16
 * bits (a whole float at the end) under mixed precision. With sequence
 * parallelism (sp) the statistics, ln1, res1 and ln2 are of N / tp tokens.
 * Context parallel (cp > 1; T the rank's positions): no probabilities, and
 * each query row's log-sum-exp in fp32 (4 / tp heads of T). */
static int64_t decoder_kept_bytes(int tp, bool sp, int cp, int64_t B, int64_t T, bool bf16) {
    int64_t N = B * T, rows = sp ? N / tp : N, lse = cp > 1 ? B * (4 / tp) * T : 0;
    int64_t big = rows * 3 * 64 + N * (3 * 64 + 64 + 2 * 256) / tp + (cp > 1 ? 0 : B * (4 / tp) * T * T);
    return 6 * rows * 4 + lse * 4 + (bf16 ? (big + 1) / 2 * 4 : big * 4);
}

/* Ring attention's working space of that decoder (4 heads of 16, as many
 * key/value heads) on a TP rank, B sequences of T positions on the rank, in
 * bytes: K,V chunks attended and arriving, dK,dV travelling and arriving
 * (8 x (N, 64 / tp)), one sequence's (4 / tp, T, T) scores, a partial output
 * (N, 64 / tp) and its running maximum and sum (2 x (B, 4 / tp, T)); and
 * the block's Q, K, V apart for the ring (3 x (N, 64 / tp)). */
static int64_t decoder_ring_bytes(int tp, int64_t B, int64_t T) {
    int64_t N = B * T, A = 64 / tp, H = 4 / tp;
    return (8 * N * A + H * T * T + N * A + 2 * B * H * T + 3 * N * A) * 4;
}

/* The same decoder's kept bytes under Ulysses over u (its B sequences of T
 * whole): of its B T / u local tokens the statistics (fp32), ln1, res1,
 * ln2, QKV, the attention output, MLP up and its activation; of its heads
 * over the whole sequences QKV (3 C / u) and the attention output (C / u)
 * per token, and the probabilities of 4 / u heads of T x T; all but the
 * statistics in fp32, or in bf16 bits (a whole float at the end). */
static int64_t decoder_kept_bytes_ulysses(int u, int64_t B, int64_t T, bool bf16) {
    int64_t N = B * T, n = N / u, C = 64, F = 256;
    int64_t big = n * (3 * C + 3 * C + C + 2 * F) + N * (3 * C + C) / u + B * (4 / u) * T * T;
    return 6 * n * 4 + (bf16 ? (big + 1) / 2 * 4 : big * 4);
}

/* The host device, recording its last allocation: the kept area grt_layer_bind allocates. */
static GrtDevice recording;
static const GrtDevice *host_dev;
static void *last_alloc;
static void *record_alloc(size_t bytes) { return last_alloc = host_dev->alloc(bytes); }

/* A bf16 block's forward on the host, checkpointed or not, from the same
 * parameters and input: returns its kept area (6 N fp32 statistics, then
 * grt_block_kept16's activations: bf16 bits, or checkpointed floats) and
 * the stage's checkpoint area it was given. */
static float *kept_forward(const GrtLayerSpec *spec, int ckpt, float **cbuf) {
    GrtLayer l;
    grt_layer_shape(&l, spec, 1, 0);
    l.B = 2, l.T = 64, l.ckpt = ckpt;
    size_t NC = (size_t)l.B * l.T * (size_t)spec->C, work = grt_layer_work_floats(&l), kept = grt_layer_ckpt_floats(&l);
    float *params = grt_dev->alloc(l.n_params * sizeof(float));
    float *x = grt_dev->alloc(NC * sizeof(float)), *out = grt_dev->alloc(NC * sizeof(float));
    float *wbuf = grt_dev->alloc(work * sizeof(float));
    *cbuf = grt_dev->alloc(kept * sizeof(float));
    host_dev = grt_dev, recording = *grt_dev, recording.alloc = record_alloc, grt_dev = &recording;
    grt_layer_bind(&l, params, NULL, 1, wbuf, *cbuf);
    grt_dev = host_dev;
    grt_layer_init(&l, 7, 1, 2);
    for (size_t i = 0; i < NC; i++)
        x[i] = (float)((i * 2654435761u) % 1000) / 250.0f - 2.0f;
    grt_layer_forward(&l, x, NULL, NULL, out);
    size_t nans = 0;
    for (size_t i = 0; i < NC; i++)
        nans += out[i] != out[i];
    CHECK_EQ((int64_t)nans, 0);
    return ckpt ? *cbuf : last_alloc;
}

/* Under mixed precision a block's kept bits, widened, are its fp32 copy
 * (the forward went on from the rounded values; the copy fills the stage's
 * checkpoint area), not mostly zeros, and exactly the values a
 * checkpointed block keeps as floats, each a bf16 value (low 16 bits zero). */
static void check_kept_rounding(const GrtLayerSpec *spec) {
    size_t N = 2 * 64, big = (size_t)grt_block_kept16(spec, grt_shard_sizes(spec, 1), 1, 0, 1, 2, 64);
    float *copy, *ckpt_area;
    const uint16_t *bits = (const uint16_t *)(kept_forward(spec, 0, &copy) + 6 * N);
    const float *floats = kept_forward(spec, 1, &ckpt_area) + 6 * N;
    float *wide = grt_alloc(big * sizeof(float));
    grt_bf16_widen(wide, bits, big);
    size_t diff = 0, nonzero = 0, ckpt_diff = 0, low = 0;
    for (size_t i = 0; i < big; i++) {
        uint32_t u;
        memcpy(&u, &floats[i], sizeof u);
        diff += memcmp(&wide[i], &copy[i], sizeof(float)) != 0, nonzero += bits[i] != 0;
        ckpt_diff += memcmp(&wide[i], &floats[i], sizeof(float)) != 0, low += (u & 0xffffu) != 0;
    }
    CHECK_EQ((int64_t)diff, 0);
    CHECK_EQ((int64_t)ckpt_diff, 0);
    CHECK_EQ((int64_t)low, 0);
    CHECK(nonzero > big / 2);
    grt_free(wide, big * sizeof(float));
}

/* A context-parallel block l (shaped for the rank's positions) against the
 * cost pass's c: kept, its input and decoder_kept_bytes (or, checkpointed,
 * the input alone and the floats in the checkpoint area); working space,
 * the runtime's for those positions and the ring's in place of the score
 * gradient (4 / tp heads of its positions' T / cp x T / cp). */
static void check_ring_block(const GrtLayer *l, const Strategy *x, const LayerCost *c, int64_t input, int64_t work,
                             bool bf16) {
    int cp = strategy_cp(x);
    int64_t kept = decoder_kept_bytes(x->tp, l->sp, cp, l->B, l->T, bf16 && !l->ckpt);
    CHECK_EQ(input + (l->ckpt ? 0 : kept), c->act_bytes);
    int64_t dP = 4 / x->tp * (int64_t)l->T * l->T * 4;
    CHECK_EQ(work - dP + decoder_ring_bytes(x->tp, l->B, l->T), c->work_bytes);
    int64_t stats = (6 * (int64_t)grt_layer_rows(l) + (int64_t)l->B * (4 / x->tp) * l->T) * 4;
    int64_t area = l->ckpt ? decoder_kept_bytes(x->tp, l->sp, cp, l->B, l->T, false)
                           : bf16 ? decoder_kept_bytes(x->tp, l->sp, cp, l->B, l->T, false) - stats : 0;
    CHECK_EQ(area, c->ckpt_bytes);
}

/* Layer i under strategy x: the runtime's layer, bound to buffers of the
 * sizes it asks for, against the cost pass's figures c. Context parallel,
 * the layer of the rank's T / cp positions, its weights replicated over
 * the cp x dp ranks, a block's probabilities and ring buffers counted from
 * its dimensions (the program runs CP blocks in fp32 alone). */
static void check_layer(const Spec *s, int i, const Strategy *x, const LayerCost *c) {
    const Layer *L = s->graph->layers[i];
    GrtLayerSpec spec;
    if (layer_runtime_base_kind(L->kind) < 0 || !layer_runtime_spec(s->graph, L, &spec)) return;
    if (x->ckpt && !layer_recomputes(L->kind)) return; /* the search checkpoints only the layers that recompute */
    spec.gemm16 = spec_gemm16(s);
    GrtLayer l;
    grt_layer_shape(&l, &spec, x->tp, 0);
    int u = strategy_ulysses(x), cp = strategy_cp(x), reps = strategy_replicas(x);
    l.B = (int)(s->train->global_batch / MICRO_BATCHES / x->dp), l.T = (int)L->seq / u / cp;
    static GrtComm *const no_group; /* a Ulysses layer is laid out without its group (no exchange runs) */
    if (u > 1) l.ul = (GrtComm *)&no_group, l.ul_size = u;
    /* CP: the embedding, norm and head laid out as the program runs them (their tokens' copy); a block as
     * check_ring_block counts it (the program refuses CP blocks under bf16), and with TP (Megatron-SP's
     * layout, which the program does not run under CP) the tokens' copy counted from the dimensions */
    if (cp > 1 && spec.kind != GRT_BLOCK && x->tp == 1) l.cp = (GrtComm *)&no_group, l.cp_size = cp;
    int64_t copy = cp > 1 && x->tp > 1 && (spec.kind == GRT_EMBEDDING || spec.kind == GRT_HEAD) ? 2 * l.B * l.T * 4 : 0;
    l.ckpt = x->ckpt && spec.kind == GRT_BLOCK;
    l.sp = strategy_sp(x) && x->tp > 1; /* Megatron-SP: the stream's rows split over the TP group */
    size_t work = grt_layer_work_floats(&l), ckpt = grt_layer_ckpt_floats(&l);
    float *wbuf = grt_dev->alloc(work * sizeof(float) + 1), *cbuf = grt_dev->alloc(ckpt * sizeof(float) + 1);
    grt_layer_bind(&l, NULL, NULL, 1, wbuf, cbuf);
    /* Ulysses or CP: the tokens' copy (inputs and targets, 2 B T) inside the working space, before the rounded
     * GEMM operands */
    float *copy_end = l.ul_tokens ? (float *)l.ul_tokens + 2 * (size_t)l.B * (size_t)l.T : NULL;
    if (copy_end) CHECK(copy_end <= wbuf + work && (!l.gemm16 || copy_end <= (float *)l.gemm16));
    int64_t params, grads, zero = reps > 1 ? strategy_zero(x) : 0; /* over its u x cp x dp replicas */
    CHECK_EQ(runtime_state_bytes((int64_t)l.n_params, reps, (int)zero, &params, &grads), c->state_bytes);
    if (zero != 3) CHECK_EQ(params, c->param_bytes); /* ZeRO-3: the cost pass counts n / dp, unpadded */
    if (zero == 0 || zero == 1) CHECK_EQ(grads, c->grad_bytes);
    /* kept: what the layer allocated, and its input, which the program keeps */
    int64_t input = spec.kind == GRT_EMBEDDING ? 0 : (int64_t)grt_layer_rows(&l) * spec.C * GRT_ELEM_BYTES;
    if (cp > 1 && spec.kind == GRT_BLOCK) {
        check_ring_block(&l, x, c, input, (int64_t)(work * sizeof(float)), spec.gemm16 != 0);
        return;
    }
    CHECK_EQ(input + (int64_t)l.act_bytes, c->act_bytes);
    int64_t kept16 = u > 1 ? decoder_kept_bytes_ulysses(u, l.B, L->seq, spec.gemm16 != 0)
                           : decoder_kept_bytes(x->tp, l.sp, 1, l.B, l.T, spec.gemm16 != 0);
    int64_t kept32 = u > 1 ? decoder_kept_bytes_ulysses(u, l.B, L->seq, false) : decoder_kept_bytes(x->tp, l.sp, 1, l.B, l.T, false);
    if (spec.kind == GRT_BLOCK && !l.ckpt) CHECK_EQ((int64_t)l.act_bytes, kept16);
    if (spec.kind == GRT_BLOCK && l.ckpt) CHECK_EQ((int64_t)(ckpt * sizeof(float)), kept32);
    if (spec.kind == GRT_BLOCK && !l.ckpt) /* bf16: the kept activations' fp32 copy, statistics aside */
        CHECK_EQ((int64_t)(ckpt * sizeof(float)), spec.gemm16 ? kept32 - 6 * (int64_t)grt_layer_rows(&l) * 4 : 0);
    CHECK_EQ((int64_t)(work * sizeof(float)) + copy, c->work_bytes);
    CHECK_EQ((int64_t)(ckpt * sizeof(float)), c->ckpt_bytes);
    /* the attention backward's score gradient, one sequence's 4 / tp heads of T x T, inside the working space */
    int64_t dP = spec.kind == GRT_BLOCK ? 4 / x->tp * (int64_t)l.T * l.T : 0;
    CHECK_EQ((int64_t)grt_att_grad(&spec, grt_shard_sizes(&spec, x->tp), l.T), dP);
    CHECK((int64_t)grt_size_scratch(&spec, x->tp, l.sp, 1, l.B, l.T) >= dP);
    /* mixed precision's rounded operands lie at the end of the working space, inside it */
    double ops = grt_size_gemm16(&spec, x->tp, l.B, l.T);
    bool none = !spec.gemm16 || spec.kind == GRT_EMBEDDING || spec.kind == GRT_NORM;
    CHECK(none ? ops == 0 && !l.gemm16 : ops > 0 && l.gemm16);
    if (l.gemm16) CHECK((char *)l.gemm16 + (size_t)ops * (size_t)spec.gemm16 <= (char *)(wbuf + work));
    /* a GPU's attention core rounds the output's gradient (N tokens, 4 / tp heads of 16) into bits there
     * (runtime/cuda/gemm.c) */
    if (spec.kind == GRT_BLOCK && spec.gemm16 == GRT_GEMM16_BITS)
        CHECK(ops >= (double)((int64_t)l.B * l.T * 4 / x->tp * 16));
}

/* Every strategy for 4 devices, with and without checkpointing, every layer
 * (Ulysses's on CPU ranks only: the runtime runs it there). */
static void check_plans(const Spec *s, const HwProfile *hw) {
    Arena *a = arena_new();
    StrategySet all;
    CHECK(pass_prune(4, true, NULL, a, &all));
    int zeros[4] = {0}, tps = 0, pps = 0, ckpts = 0, ulysses = 0, cps = 0, tp_cps = 0;
    for (int k = 0; k < all.n; k++) {
        const Strategy *x = &all.items[k];
        if (strategy_ulysses(x) > 1 && !runtime_runs_ulysses(s)) continue;
        ulysses += strategy_ulysses(x) > 1;
        StrategySet one = {.items = &all.items[k], .n = 1};
        CostTable t;
        CHECK(pass_cost(s, hw, &one, MICRO_BATCHES, a, &t));
        for (int i = 0; i < s->graph->n_layers; i++)
            check_layer(s, i, x, &t.cost[i]);
        zeros[x->dp > 1 ? strategy_zero(x) : 0]++, tps += x->tp > 1, pps += x->pp > 1, ckpts += x->ckpt;
        cps += strategy_cp(x) > 1, tp_cps += strategy_cp(x) > 1 && x->tp > 1;
    }
    CHECK(zeros[0] && zeros[1] && zeros[2] && zeros[3] && tps && pps && ckpts); /* every family was seen */
    CHECK(runtime_runs_ulysses(s) ? ulysses > 0 : ulysses == 0);
    CHECK(cps && tp_cps);
    arena_free(a);
}

int main(void) {
    Arena *a = arena_new();
    Spec *s = load(a);
    CHECK(s != NULL);
    if (s) {
        CHECK_EQ(s->train->precision, PREC_BF16);
        HwProfile hw;
        hw_preset(&hw, (DeviceKind)s->cluster->device);
        s->host_target = true; /* the host: operands as widened floats */
        CHECK_EQ(spec_gemm16(s), GRT_GEMM16_WIDE);
        check_plans(s, &hw);
        GrtLayerSpec block;
        CHECK(layer_runtime_spec(s->graph, s->graph->layers[1], &block) && block.kind == GRT_BLOCK);
        block.gemm16 = spec_gemm16(s);
        check_kept_rounding(&block);
        s->host_target = false; /* a GPU: operands as bf16 bits */
        CHECK_EQ(spec_gemm16(s), GRT_GEMM16_BITS);
        check_plans(s, &hw);
        s->train->precision = PREC_FP32;
        CHECK_EQ(spec_gemm16(s), 0);
        check_plans(s, &hw);
        s->host_target = true; /* fp32 on CPU ranks */
        check_plans(s, &hw);
    }
    arena_free(a);
    return check_report();
}
