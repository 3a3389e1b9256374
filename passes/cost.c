/* cost.c — the cost pass: the time and memory of every layer under every
 * candidate strategy, from the layer's shape figures (shape.c) and the
 * hardware model (HwProfile). The search adds these up; the formulas live
 * here only, each with its source.
 *
 * Layout: pipeline stage k owns ranks [k n, (k+1) n) with n = tp * cp * dp.
 * With TP groups consecutive, a TP group spans tp ranks, a context-parallel
 * group strides by tp and a DP group by tp cp (the weights' replicas, cp dp
 * of them, stride by tp); strided TP is the transpose (no CP). Ulysses
 * (tp 1) makes n = u * dp: a Ulysses group spans u consecutive ranks, a DP
 * group strides by u, and the weights' replicas are the whole stage. A
 * group whose ranks cross a node boundary runs at the inter-node
 * bandwidth. Degrees are any divisors of the device count; a measured
 * profile holds powers of two (indexed by their log2), so other group
 * sizes take the link's figures and the analytic layer model. */
#include "passes.h"
#include "runtime/galvrt.h"

#include <math.h>


typedef struct Ctx {
    const Spec *spec;
    const HwProfile *hw;
    int64_t micro_batches;
    int64_t devices; /* pp x tp x cp x dp, shared by the strategies costed together */
    int e; /* bytes per element of activations and weights: GRT_ELEM_BYTES (galvrt_sizes.h) */
    double t5_rows; /* a T5 model's stream rows per sequence (galvrt_sizes.h), 0 otherwise: worked out once */
} Ctx;

/* ---- collectives ------------------------------------------------------------ */

/* The profile's index for a group (or TP degree) of g: log2 g when g is a
 * power of two it can hold, else -1 (the profile has no entry for it). */
static int profile_index(int64_t g) {
    if (g < 1 || g > (INT64_C(1) << PROFILE_MAX_LOG2) || (g & (g - 1))) return -1;
    int k = 0;
    while ((INT64_C(1) << k) < g) k++;
    return k;
}

/* Does some group of g ranks `stride` apart cross a node boundary? The
 * groups of one kind tile aligned blocks of g x stride ranks (a TP group
 * its tp consecutive ranks, a DP group or a strided TP group its whole
 * stage; the stages tile the devices), interleaved inside a block; a block
 * holding a boundary has a group across it, and every block is inside a
 * node exactly when the block divides the node (or one node holds all). A
 * p2p pair, stage k's rank to stage k+1's, is `stride` ranks apart. */
static bool crosses_nodes(const Ctx *c, Collective op, int g, int stride) {
    int64_t node = c->spec->cluster->devices_per_node;
    if (op == COLL_P2P) return (int64_t)(g - 1) * stride + 1 > node;
    int64_t block = (int64_t)g * stride;
    return c->devices > node && node % block != 0;
}

/* Bus bandwidth and per-step latency for a group of g ranks, `stride` apart. */
static LinkProfile link_for(const Ctx *c, Collective op, int g, int stride, bool consec) {
    LinkProfile l = crosses_nodes(c, op, g, stride) ? c->hw->inter : c->hw->intra;
    int k = profile_index(g);
    if (k < 0) return l; /* no measurement of this size: the link's own figures */
    double measured = c->hw->measured_bw[op][k][consec];
    if (!measured && (op == COLL_ALLGATHER || op == COLL_REDUCESCATTER || op == COLL_ALLTOALL))
        measured = c->hw->measured_bw[COLL_ALLREDUCE][k][consec];
    if (measured > 0) l.bandwidth = measured;
    /* a measured latency of the whole operation, spread over its ring steps
     * (collective_s's model below: 2 (g-1), g-1 or 1 of them) */
    double lat = c->hw->measured_lat[op][k][consec];
    int steps = op == COLL_ALLREDUCE ? 2 * (g - 1) : op == COLL_P2P ? 1 : g - 1;
    if (lat > 0 && steps > 0) l.latency = lat / steps;
    return l;
}

/* Ring collectives (Thakur, Rabenseifner and Gropp, IJHPCA 2005), with NCCL's
 * bus-bandwidth convention: an all-reduce of M bytes over g ranks moves
 * 2 (g-1)/g M per rank in 2 (g-1) steps; all-gather and reduce-scatter move
 * (g-1)/g M in g-1 steps; p2p moves M in one. An all-to-all of M bytes a
 * rank sends (g-1)/g M in g-1 pairwise steps (nccl-tests' PERFORMANCE.md:
 * alltoall's bus bandwidth). */
static double collective_s(const Ctx *c, Collective op, int g, int stride, bool consec, double bytes) {
    if (g <= 1 && op != COLL_P2P) return 0;
    LinkProfile l = link_for(c, op, g, stride, consec);
    switch (op) {
    case COLL_ALLREDUCE: return 2.0 * (g - 1) / g * bytes / l.bandwidth + 2.0 * (g - 1) * l.latency;
    case COLL_ALLGATHER:
    case COLL_REDUCESCATTER:
    case COLL_ALLTOALL: return (double)(g - 1) / g * bytes / l.bandwidth + (g - 1) * l.latency;
    case COLL_P2P: return bytes / l.bandwidth + l.latency;
    case COLL_COUNT: break;
    }
    die("bad collective %d", (int)op);
}

/* ---- per-layer rules ----------------------------------------------------------- */

/* Megatron-LM's tensor-parallel all-reduces per micro-batch, forward and
 * backward (Shoeybi et al. 2019, section 3: the f and g operators of each
 * column/row-parallel pair; the vocabulary-parallel embedding all-reduces its
 * output, the parallel LM head its input gradient). */
static void tp_allreduces(LayerKind k, int *fwd, int *bwd) {
    *fwd = *bwd = 0;
    switch (k) {
    case LAYER_ENCODER:
    case LAYER_DECODER: *fwd = *bwd = 2; break;
    case LAYER_CROSS_DECODER: *fwd = *bwd = 3; break;
    case LAYER_ATTENTION:
    case LAYER_WINDOW_ATTENTION:
    case LAYER_MLP: *fwd = *bwd = 1; break;
    case LAYER_EMBEDDING:
    case LAYER_PATCH_EMBEDDING: *fwd = 1; break;
    case LAYER_LM_HEAD: *bwd = 1; break;
    default: break;
    }
}

/* Megatron sequence parallelism's collectives per micro-batch over the TP
 * group, each of the whole (B T, C) stream (Korthikanti et al. 2022,
 * section 4.2.2): a transformer layer all-gathers before each
 * column-parallel GEMM and reduce-scatters after each row-parallel one;
 * backward gathers the output gradients and, again, the norm outputs it
 * kept split, and reduce-scatters the input gradients (runtime/layers.c).
 * The embedding reduce-scatters its output and gathers its gradient; the
 * LM head gathers its input (forward, and again in backward) and
 * reduce-scatters its input gradient. */
static void sp_collectives(LayerKind k, int *fwd_ag, int *fwd_rs, int *bwd_ag, int *bwd_rs) {
    *fwd_ag = *fwd_rs = *bwd_ag = *bwd_rs = 0;
    switch (k) {
    case LAYER_ENCODER:
    case LAYER_DECODER: *fwd_ag = *fwd_rs = *bwd_rs = 2, *bwd_ag = 4; break;
    case LAYER_EMBEDDING: *fwd_rs = *bwd_ag = 1; break;
    case LAYER_LM_HEAD: *fwd_ag = *bwd_ag = *bwd_rs = 1; break;
    default: break;
    }
}

/* Bytes of optimizer and model state per parameter, as the program keeps
 * it at every precision (runtime/galvrt_sizes.h: fp32 weights, gradients
 * and moments; bf16 rounds the GEMMs' operands only): Adam's two moments,
 * SGD's one momentum (or none). */
static int state_bytes_per_param(const TrainConfig *t) {
    int moments = t->opt.kind == OPT_SGD ? (t->opt.momentum > 0 ? 1 : 0) : 2;
    return grt_state_bytes_per_param(moments);
}

/* The rows of a sequence's stream at layer l (galvrt_sizes.h): its tokens, or T5's encoder, decoder and table rows. */
static double stream_seq(const Graph *g, const Layer *l) {
    GrtLayerSpec s;
    if (layer_runtime_base_kind(l->kind) >= 0 && layer_runtime_spec(g, l, &s)) return grt_stream_rows(&s, (double)l->seq);
    return (double)l->seq;
}

/* The width of the activation stream a layer reads, per sample, in bytes (T5's: its stream's rows). */
static int64_t stream_bytes(const Ctx *c, const Layer *l) {
    if (l->in.rank == 2) return (int64_t)c->e * (c->t5_rows > 0 ? (int64_t)c->t5_rows : l->in.dim[0]) * l->in.dim[1];
    return l->out_bytes; /* the input layer: its output is the stream */
}

/* Compute of `busy` seconds overlapped with `comm` seconds of traffic: while
 * both run, compute slows by `slow` (Galvatron's overlap coefficient, Miao et
 * al. 2023, section 4.2); past the compute, the traffic runs alone. */
static double overlapped(double busy, double comm, double slow) {
    if (comm >= busy * slow) return comm;
    return busy + comm * (1 - 1 / slow);
}

/* What the emitted program keeps and borrows for one layer, in floats, for one micro-batch of mbs samples on one rank:
 * runtime/galvrt_sizes.h's figures, which runtime/layers.c allocates.
 * `kept` is held from a micro-batch's forward to its backward, with the
 * layer's input, which the program keeps in `input` (an embedding reads
 * tokens); `work` is the layer's working space, shared with the other
 * layers of its stage. False for kinds (and sizes) the runtime does not have. */
static bool program_elems(const Ctx *c, const Layer *l, const Strategy *s, double mbs, double *input, double *kept,
                          double *work, double *area) {
    *input = *kept = *work = *area = 0;
    int kind = layer_runtime_base_kind(l->kind);
    GrtLayerSpec spec;
    if (kind < 0 || !layer_runtime_spec(c->spec->graph, l, &spec)) return false;
    spec.gemm16 = spec_gemm16(c->spec);
    double T = grt_stream_rows(&spec, (double)l->seq);
    int u = strategy_ulysses(s), cp = strategy_cp(s);
    int ckpt = s->ckpt && kind == GRT_BLOCK; /* as runtime/run.c sets GrtLayer.ckpt */
    if (kind != GRT_EMBEDDING && kind != GRT_PATCH)
        *input = mbs * T * (double)l->hidden / (strategy_sp(s) ? s->tp : 1) / u / cp;
    if (u > 1) { /* the local tokens' sizes and attention's heads over the whole sequence (galvrt_sizes.h) */
        *kept = grt_size_kept_ulysses(&spec, u, mbs, T, ckpt);
        *work = grt_size_work_ulysses(&spec, u, mbs, T);
        *area = grt_size_ckpt_ulysses(&spec, u, mbs, T, ckpt);
        return true;
    }
    *kept = grt_size_kept(&spec, s->tp, s->sp, cp, mbs, T, ckpt);
    *work = grt_size_work(&spec, s->tp, s->sp, cp, mbs, T);
    *area = grt_size_ckpt(&spec, s->tp, s->sp, cp, mbs, T, ckpt);
    return true;
}

/* Parameters of one TP rank's shard of layer l: as the runtime lays them
 * out (galvrt_sizes.h) for the layers it trains (norms, biases and
 * positions whole on every rank of the TP group, the vocabulary padded to a
 * multiple of it); the even split of the shape pass's count otherwise. */
static int64_t shard_params(const Ctx *c, const Layer *l, const Strategy *s) {
    GrtLayerSpec spec;
    if (layer_runtime_base_kind(l->kind) >= 0 && layer_runtime_spec(c->spec->graph, l, &spec))
        return (int64_t)grt_size_params(&spec, s->tp);
    return (l->params + s->tp - 1) / s->tp;
}

/* The parameters whose ZeRO buffers (gathered weights, whole gradient) a
 * layer takes on a rank: its own, but a tied LM head sharded by ZeRO always
 * keeps its own copy of the table (the program's rule, as the search's
 * same_stage_tied_copy), whose buffers are the untied head's; its state is
 * CostTable.tied_copy_bytes. */
static int64_t zero_buffer_params(const Ctx *c, const Layer *l, const Strategy *s, int64_t params_dev) {
    GrtLayerSpec spec;
    if (l->kind != LAYER_LM_HEAD || !l->tied || !strategy_zero(s) || layer_runtime_base_kind(l->kind) < 0 ||
        !layer_runtime_spec(c->spec->graph, l, &spec))
        return params_dev;
    spec.tied = 0;
    return (int64_t)grt_size_params(&spec, s->tp);
}

/* The GEMM arithmetic the program runs at precision p, as runtime/cuda/gemm.c
 * sets cuBLAS: bf16 operands with fp32 accumulation under bf16, fp32 with
 * TF32 off (pedantic math) under fp32; -1 for one no profile measures. */
static int gemm_math(int precision) {
    if (precision == PREC_BF16) return GRT_GEMM_BF16;
    return precision == PREC_FP32 ? GRT_GEMM_FP32 : -1;
}

/* Whether layer l's attention core multiplies bf16 bits under s where the
 * precision is bf16 (runtime/cuda/gemm.c): not in a checkpointed block,
 * which keeps no bits, nor Swin's windows', dropout's, Ulysses's or context
 * parallelism's cores, which only CPU ranks run, in fp32. */
static bool core_bits(const Layer *l, const Strategy *s) {
    return !s->ckpt && l->window <= 0 && !(l->dropout > 0) && strategy_ulysses(s) == 1 && strategy_cp(s) == 1;
}

/* The measured rates (FLOP/s) of a GPU profile's gemm_rates for the
 * program's linears (*lin, at its arithmetic) and its attention core
 * (*core: at the linears' rate where it runs on bf16 bits (core_bits),
 * else fp32's); *fp32, the rate a profile's layer fits were timed at;
 * false without them (a CPU profile, a preset, Galvatron's files). */
static bool gemm_rates(const Ctx *c, bool bits, double *lin, double *core, double *fp32) {
    int m = gemm_math(c->spec->train->precision);
    if (m < 0) return false;
    *lin = c->hw->gemm_rates[m], *fp32 = c->hw->gemm_rates[GRT_GEMM_FP32];
    *core = bits ? *lin : *fp32;
    return *lin > 0 && *fp32 > 0;
}

/* Seconds of layer l's forward FLOPs on `samples` samples per device: at
 * the measured GEMM rates where the profile has them, else at the
 * precision's peak times the fraction GEMM-heavy layers reach. */
static double gemm_seconds(const Ctx *c, const Layer *l, bool bits, double samples) {
    double lin, core, fp32, flops = (double)l->fwd_flops * samples;
    if (!gemm_rates(c, bits, &lin, &core, &fp32)) {
        const HwProfile *hw = c->hw;
        return flops / (hw->peak_flops[c->spec->train->precision] * hw->gemm_efficiency);
    }
    double att = layer_core_flops(l) * samples;
    return (flops - att) / lin + att / core;
}

/* A block's or head's fitted time t for `work` FLOPs moved to the program's
 * arithmetic: galvc profile times the layers in fp32 (GEMMs with TF32 off),
 * so under bf16 the linears' share of the work, and the attention core's
 * where it runs on bits (core_bits), leave the fp32 rate for their own (gemm_rates),
 * never below t scaled by the fastest ratio; t as it is in fp32 or without
 * measured rates. */
static double fit_to_precision(const Ctx *c, const Layer *l, bool bits, ProfileLayer kind, double t, double work) {
    double lin, core, fp32;
    if (kind != PROFILE_LAYER_BLOCK && kind != PROFILE_LAYER_HEAD) return t;
    if (!gemm_rates(c, bits, &lin, &core, &fp32) || lin == fp32 || l->fwd_flops <= 0) return t;
    double att = layer_core_flops(l) / (double)l->fwd_flops;
    double moved = t - work * ((1 - att) * (1 / fp32 - 1 / lin) + att * (1 / fp32 - 1 / core));
    return moved > t * fp32 / lin ? moved : t * fp32 / lin;
}

/* The profile's fitted forward and backward time of layer l at strategy s
 * for mbs samples per device: time = fixed + work / rate, the work
 * proportional to mbs (layer_fit_work), so `fixed + per_sample x mbs`; from
 * galvc profile's measured lines or Galvatron's batch points fitted by least
 * squares (hw/profile.c). A measured time already holds the elementwise and
 * memory-bound work, so nothing is added to it. *tp_comm: the fit includes
 * the TP all-reduces. False when the profile has no fit for it. */
_Static_assert((int)PROFILE_LAYER_EMBEDDING == GRT_EMBEDDING && (int)PROFILE_LAYER_BLOCK == GRT_BLOCK &&
                   (int)PROFILE_LAYER_NORM == GRT_NORM && (int)PROFILE_LAYER_HEAD == GRT_HEAD,
               "ProfileLayer follows GrtLayerKind");

static bool fitted_times(const Ctx *c, const Layer *l, const Strategy *s, double mbs, double *fwd, double *bwd,
                         bool *tp_comm) {
    int kind = layer_profile_kind(l->kind); /* ProfileLayer has GrtLayerKind's order */
    int k = profile_index(s->tp);
    if (kind < 0 || k < 0) return false;
    const LayerFit *f = c->hw->layer_fit[kind][k];
    if (f[0].rate <= 0 || f[1].rate <= 0) return false;
    double seq = (double)l->seq, wf = layer_fit_work(l, (ProfileLayer)kind, mbs, seq, s->tp, false),
           wb = layer_fit_work(l, (ProfileLayer)kind, mbs, seq, s->tp, true);
    *fwd = fit_to_precision(c, l, core_bits(l, s), (ProfileLayer)kind, f[0].fixed_s + wf / f[0].rate, wf);
    *bwd = fit_to_precision(c, l, core_bits(l, s), (ProfileLayer)kind, f[1].fixed_s + wb / f[1].rate, wb);
    *tp_comm = f[0].tp_comm;
    return true;
}

/* Bytes of training state one device keeps for the n parameters of its TP
 * shard under s's ZeRO stage (Rajbhandari et al. 2020, section 5), as the
 * program allocates them (runtime/run.c), parts rounded up to the DP group
 * (padded = dp parts): DP keeps everything; ZeRO-1 the parameters whole
 * (padded), the whole gradient accumulated over the micro-batches, and its
 * part of the rest (the reduce-scattered gradient, the moments);
 * ZeRO-2 the parameters whole and its part of the rest (the whole gradient
 * lives only while a layer's backward runs: LayerCost.scatter_bytes);
 * ZeRO-3 its part of everything, and accumulating once the whole gradient.
 * The group is the replicas, ulysses x dp (strategy_replicas). */
static int64_t zero_state_bytes(const Ctx *c, const Strategy *s, int64_t n) {
    int64_t per = state_bytes_per_param(c->spec->train), e = c->e, g = strategy_replicas(s);
    int64_t padded = (n + g - 1) / g * g, part = padded / g;
    switch (strategy_zero(s)) {
    case 1: return 2 * padded * e + part * (per - e);
    case 2: return padded * e + part * (per - e);
    case 3: return n * per / g + (s->zero3_once ? padded * e : 0);
    }
    return n * per;
}

/* The parameters' and the gradients' shares of a layer's state into r (the
 * rest is the optimizer's), as zero_state_bytes holds them: whole under DP,
 * ZeRO-1's gradient whole and ZeRO-2's a part, ZeRO-3's both a part. */
static void weight_parts(const Strategy *s, int64_t n, LayerCost *r) {
    int64_t w = GRT_ELEM_BYTES, g = strategy_replicas(s), padded = (n + g - 1) / g * g;
    switch (strategy_zero(s)) {
    case 0: r->param_bytes = r->grad_bytes = n * w; break;
    case 1: r->param_bytes = r->grad_bytes = padded * w; break;
    case 2: r->param_bytes = padded * w, r->grad_bytes = padded / g * w; break;
    case 3: r->param_bytes = r->grad_bytes = n * w / g; break;
    }
}

/* The data-parallel traffic of a layer into r: per micro-batch (mb_s, with
 * its fwd and bwd compute and tp_s TP time) and per step (step_s), with the
 * blocking calls of each. Collectives next to compute overlap it where the
 * hardware overlaps (prefetch; gradients as backward makes them); the
 * all-gather of ZeRO-1/2's updated parameters follows the optimizer step and
 * overlaps nothing. The group is the replicas: with Ulysses, its u x dp
 * consecutive ranks (tp 1). */
static void data_parallel(const Ctx *c, const Strategy *s, double fwd, double bwd, double tp_s, double param_bytes,
                          LayerCost *r) {
    const HwProfile *hw = c->hw;
    double slow = hw->overlap_slowdown;
    int dp_stride = s->tp_consec ? s->tp : 1, zero = strategy_zero(s), g = strategy_replicas(s);
    double ag = collective_s(c, COLL_ALLGATHER, g, dp_stride, s->tp_consec, param_bytes);
    double rs = collective_s(c, COLL_REDUCESCATTER, g, dp_stride, s->tp_consec, param_bytes);
    double ar = collective_s(c, COLL_ALLREDUCE, g, dp_stride, s->tp_consec, param_bytes);
    /* hidden behind the last micro-batch's backward as far as it goes */
    double after_bwd_ar = hw->overlaps ? overlapped(bwd, ar, slow) - bwd : ar;
    double after_bwd_rs = hw->overlaps ? overlapped(bwd, rs, slow) - bwd : rs;
    /* per micro-batch, the whole gradient zeroed before backward and this
     * rank's part added to its accumulated one after (read two, write one),
     * at memory bandwidth */
    double accumulate = param_bytes * (1 + 3.0 / g) / hw->mem_bandwidth;
    switch (zero) {
    case 0: /* DP: one all-reduce of the accumulated gradients per step */
        r->mb_s = fwd + bwd + tp_s;
        r->step_s = after_bwd_ar;
        r->calls_step += g > 1;
        break;
    case 1: /* ZeRO-1: the accumulated gradient reduce-scattered once, the parameters gathered after the update */
        r->mb_s = fwd + bwd + tp_s;
        r->step_s = after_bwd_rs + ag;
        r->calls_step += 2;
        break;
    case 2: /* ZeRO-2: every micro-batch's gradient reduce-scattered (DeepSpeed's stage 2) */
        r->mb_s = (hw->overlaps ? fwd + overlapped(bwd, rs, slow) : fwd + bwd + rs) + tp_s + accumulate;
        r->step_s = ag;
        r->calls_mb += 1;
        r->calls_step += 1;
        break;
    case 3: /* ZeRO-3: the weights gathered before forward and again before backward */
        r->fwd_comm_s += (hw->overlaps ? overlapped(fwd, ag, slow) - fwd : ag) + hw->sync_s;
        if (s->zero3_once) { /* the whole gradient accumulated, reduce-scattered after the last backward */
            r->mb_s = hw->overlaps ? overlapped(fwd, ag, slow) + overlapped(bwd, ag, slow) + tp_s
                                   : fwd + ag + bwd + ag + tp_s;
            r->step_s = after_bwd_rs;
            r->calls_mb += 2;
            r->calls_step += 1;
        } else { /* reduce-scattered every micro-batch */
            r->mb_s = hw->overlaps ? overlapped(fwd, ag, slow) + overlapped(bwd, ag + rs, slow) + tp_s
                                   : fwd + ag + bwd + ag + rs + tp_s;
            r->mb_s += accumulate;
            r->calls_mb += 3; /* two gathers and a reduce-scatter */
        }
        break;
    }
}

/* Megatron-SP's all-reduce of the replicated tensors' gradients a
 * micro-batch over the TP group (each rank saw its rows alone): a
 * transformer layer's norms and row-parallel biases, a norm's weights. */
static double sp_shared_s(const Ctx *c, const Layer *l, const Strategy *s) {
    GrtLayerSpec spec;
    if (layer_runtime_base_kind(l->kind) < 0 || !layer_runtime_spec(c->spec->graph, l, &spec)) return 0;
    double bytes = grt_size_shared(&spec) * sizeof(float);
    return bytes > 0 ? collective_s(c, COLL_ALLREDUCE, s->tp, s->tp_consec ? 1 : s->dp, s->tp_consec, bytes) : 0;
}

/* Context parallelism's ring a micro-batch (ring attention, Liu et al.
 * 2023; Megatron-Core's CP): a transformer layer's ranks pass their K,V
 * chunk (B T / cp positions, key/value heads on the TP rank) cp - 1 steps
 * around the ring forward; backward passes K,V again and carries the
 * accumulating dK,dV one step further, back to their owner (cp steps).
 * Each step is a blocking send/receive with both ring neighbours, priced
 * as one p2p between the ring's farthest pair (its wrap-around, (cp - 1) tp
 * ranks apart), with no overlap credited (runtime/ring_attn.c posts
 * forward's transfer before the block's compute, backward's after). With
 * checkpointing backward runs forward's again. Other layers are
 * token-local and talk to no one. Seconds, forward's in *fwd_s; steps in
 * *n_fwd, *n_bwd. */
static double context_parallel(const Ctx *c, const Layer *l, const Strategy *s, double mbs, double *fwd_s, int *n_fwd,
                               int *n_bwd) {
    int cp = strategy_cp(s);
    *fwd_s = 0, *n_fwd = *n_bwd = 0;
    if (cp < 2 || (l->kind != LAYER_ENCODER && l->kind != LAYER_DECODER)) return 0;
    double kv = mbs * (double)l->seq / cp * 2.0 * (double)(l->kv_heads / s->tp) * (double)l->head_dim * c->e;
    double step = collective_s(c, COLL_P2P, 2, (cp - 1) * s->tp, true, kv);
    *n_fwd = cp - 1, *n_bwd = (cp - 1) + cp + (s->ckpt ? cp - 1 : 0);
    *fwd_s = *n_fwd * step;
    return (*n_fwd + *n_bwd) * step;
}

/* The TP group's traffic a micro-batch: seconds, forward's part in *fwd_s,
 * and the blocking calls forward and backward (with checkpointing, backward
 * runs forward's again). Megatron-LM's all-reduces, or with sequence
 * parallelism its all-gathers and reduce-scatters and the shared gradients'
 * all-reduce. */
static double tensor_parallel(const Ctx *c, const Layer *l, const Strategy *s, double mbs, double *fwd_s, int *n_fwd,
                              int *n_bwd) {
    int tp_stride = s->tp_consec ? 1 : s->dp;
    double act_msg = (double)stream_bytes(c, l) * mbs / strategy_cp(s), f, b;
    if (strategy_sp(s)) {
        int fag, frs, bag, brs;
        sp_collectives(l->kind, &fag, &frs, &bag, &brs);
        double ag = collective_s(c, COLL_ALLGATHER, s->tp, tp_stride, s->tp_consec, act_msg);
        double rs = collective_s(c, COLL_REDUCESCATTER, s->tp, tp_stride, s->tp_consec, act_msg);
        double shared = sp_shared_s(c, l, s);
        f = fag * ag + frs * rs, b = bag * ag + brs * rs + shared;
        *n_fwd = fag + frs, *n_bwd = bag + brs + (shared > 0);
    } else {
        tp_allreduces(l->kind, n_fwd, n_bwd);
        double one = collective_s(c, COLL_ALLREDUCE, s->tp, tp_stride, s->tp_consec, act_msg);
        f = *n_fwd * one, b = *n_bwd * one;
    }
    if (s->ckpt) *n_bwd += *n_fwd, b += f;
    *fwd_s = f;
    return f + b;
}

/* Ulysses's all-to-alls a micro-batch over its u consecutive ranks (Jacobs
 * et al. 2023, section 3.1): a transformer layer sends its local tokens'
 * Q, K and V to the ranks of their heads and takes its heads' attention
 * output back, forward; backward the two gradients the other way; each
 * rank's message its mbs T / u tokens' rows of (H + 2 KVH) hd, then H hd.
 * Seconds, forward's part in *fwd_s, and the blocking calls. */
static double ulysses_s(const Ctx *c, const Layer *l, const Strategy *s, double mbs, double *fwd_s, int *n_fwd,
                        int *n_bwd) {
    int u = strategy_ulysses(s);
    *fwd_s = 0, *n_fwd = *n_bwd = 0;
    if (u == 1 || layer_runtime_base_kind(l->kind) != GRT_BLOCK) return 0;
    double tokens = mbs * (double)l->seq / u, hd = (double)l->hidden / (double)l->heads;
    double kv = (double)(l->kv_heads ? l->kv_heads : l->heads);
    double qkv = tokens * ((double)l->heads + 2 * kv) * hd * c->e, out = tokens * (double)l->heads * hd * c->e;
    double f = collective_s(c, COLL_ALLTOALL, u, 1, true, qkv) + collective_s(c, COLL_ALLTOALL, u, 1, true, out);
    *n_fwd = *n_bwd = 2;
    if (s->ckpt) *n_bwd += 2;
    *fwd_s = f;
    return s->ckpt ? 3 * f : 2 * f;
}

static LayerCost layer_cost(const Ctx *c, const Layer *l, const Strategy *s, double samples) {
    const HwProfile *hw = c->hw;
    LayerCost r = {0};
    int u = strategy_ulysses(s), cp = strategy_cp(s);
    double mbs = samples / s->dp; /* samples per device per micro-batch (Ulysses, CP: T / u, T / cp tokens of each) */
    /* GEMMs at their measured or efficient rate, plus elementwise work bound
     * by memory bandwidth: each kept activation written once and read once.
     * Ulysses splits both over u: the tokens, and attention's heads. Context
     * parallelism splits both evenly: the causal mask's work too, each rank
     * holding sequence chunks r and 2 cp - 1 - r (Megatron-Core). */
    double fwd = gemm_seconds(c, l, core_bits(l, s), mbs / s->tp / u / cp) +
                 2.0 * (double)(l->act_bytes + l->out_bytes) * mbs / s->tp / u / cp / hw->mem_bandwidth;
    double bwd = 2 * fwd; /* input and weight gradients: twice the forward GEMMs */
    int n_fwd, n_bwd, cp_fwd, cp_bwd;
    double tp_s = tensor_parallel(c, l, s, mbs, &r.fwd_comm_s, &n_fwd, &n_bwd), cp_fwd_s;
    /* a measured fit of this layer kind at this TP degree wins; one timed on
     * a TP group includes the TP all-reduces */
    bool tp_comm = false;
    if (fitted_times(c, l, s, mbs / u / cp, &fwd, &bwd, &tp_comm) && tp_comm) tp_s = r.fwd_comm_s = 0;
    double u_fwd;
    int u_nf, u_nb;
    double u_s = ulysses_s(c, l, s, mbs, &u_fwd, &u_nf, &u_nb);
    tp_s += u_s, r.fwd_comm_s += u_fwd + u_nf * hw->sync_s, r.calls_mb += u_nf + u_nb;
    double ring_s = context_parallel(c, l, s, mbs, &cp_fwd_s, &cp_fwd, &cp_bwd);
    tp_s += ring_s, r.fwd_comm_s += cp_fwd_s + cp_fwd * hw->sync_s, r.calls_mb += cp_fwd + cp_bwd;
    r.fwd_s = fwd;
    if (s->ckpt) r.recompute_s = fwd, bwd += fwd; /* recompute the forward first */
    r.compute_s = fwd + bwd;
    if (s->tp > 1) r.calls_mb += n_fwd + n_bwd;
    if (s->tp > 1) r.fwd_comm_s += n_fwd * hw->sync_s;

    int64_t params_dev = shard_params(c, l, s);
    double param_bytes = (double)params_dev * c->e;
    data_parallel(c, s, fwd, bwd, tp_s, param_bytes, &r);
    r.state_bytes = zero_state_bytes(c, s, params_dev);
    weight_parts(s, params_dev, &r);
    /* the optimizer step and the zeroing of the gradients, once a step: each
     * byte of state read and most written again, bound by memory bandwidth
     * (an AdamW step is elementwise, as llm.c's fused kernel) */
    r.opt_s = 2.0 * (double)r.state_bytes / hw->mem_bandwidth;
    r.step_s += r.opt_s;
    /* Activations: what the program keeps per micro-batch in flight; a
     * checkpointed layer keeps only its input and rebuilds the rest in
     * backward, one layer at a time, in a working set (Chen et al. 2016).
     * Other layer kinds: the shape pass's figure, split across the TP group. */
    double input, kept, work, area = 0;
    int64_t full_act;
    if (program_elems(c, l, s, mbs, &input, &kept, &work, &area)) {
        full_act = (int64_t)ceil(kept * c->e);
        r.act_bytes = (int64_t)ceil((input + (s->ckpt ? 0 : kept)) * c->e);
        r.work_bytes = (int64_t)ceil(work * c->e);
    } else {
        full_act = (int64_t)ceil((double)l->act_bytes * mbs / s->tp / u / cp);
        r.act_bytes = s->ckpt ? (int64_t)ceil((double)stream_bytes(c, l) * mbs / u / cp) : full_act;
    }
    /* a measured profile of this layer kind's activations wins, scaled to
     * this layer's sequence length */
    int k = profile_index(s->tp);
    if (hw->act_seq && k >= 0 && (int)l->kind == hw->act_kind && hw->act_per_sample[k] > 0) {
        /* Ulysses keeps a 1/u of every token's and every head's activations (sbh (34 + 5 a s / h) / u), CP its 1/cp of the tokens */
        double scale = (double)l->seq / (double)hw->act_seq * mbs / u / cp;
        full_act = (int64_t)ceil(hw->act_per_sample[k] * scale);
        /* measured with Megatron-SP: without it each TP rank keeps its
         * norms', dropouts' and residual's activations whole, 10 s b h bytes
         * at 16 bits where SP keeps 10 s b h / t (Korthikanti et al. 2022,
         * table 2) */
        if (hw->act_sp && s->tp > 1 && !strategy_sp(s))
            full_act += (int64_t)ceil(5.0 * c->e * (double)l->seq / cp * (double)l->hidden * mbs * (1 - 1.0 / s->tp));
        if (!s->ckpt) r.act_bytes = full_act;
        else if (hw->ckpt_act_per_sample > 0) r.act_bytes = (int64_t)ceil(hw->ckpt_act_per_sample * scale);
    }
    /* and so do the measured activations of the embedding and of the LM head
     * (with the final norm and the loss: Galvatron's first and last stage) */
    int side = l->kind == LAYER_EMBEDDING ? 0 : l->kind == LAYER_LM_HEAD ? 1 : -1;
    if (side >= 0 && k >= 0 && hw->other_seq && hw->other_act_per_sample[side][k] > 0) {
        full_act = (int64_t)ceil(hw->other_act_per_sample[side][k] * (double)l->seq / (double)hw->other_seq * mbs / u / cp);
        if (!s->ckpt) r.act_bytes = full_act;
    }
    /* ZeRO-3 gathers the layer's weights whole; ZeRO-2 and ZeRO-3 reducing
     * every micro-batch take its gradient whole, and receive their part of
     * the reduce-scatter beside it (runtime/run.c's full_p, full_g, part) */
    /* the stage's checkpoint area: a checkpointed layer's activations, or
     * the fp32 copy of a block's bf16 kept activations (galvrt_sizes.h) */
    r.ckpt_bytes = s->ckpt ? full_act : (int64_t)ceil(area * c->e);
    int zero = strategy_zero(s);
    int64_t g = strategy_replicas(s), padded = (zero_buffer_params(c, l, s, params_dev) + g - 1) / g * g;
    if (zero == 3) r.shard_bytes = padded * c->e;
    if (zero == 2 || (zero == 3 && !s->zero3_once)) r.scatter_bytes = 2 * padded * c->e;
    r.stream_bytes = (int64_t)ceil(mbs * (c->t5_rows > 0 ? c->t5_rows : (double)l->seq) * (double)l->hidden * c->e /
                                   (strategy_sp(s) ? s->tp : 1) / u / cp);
    r.stream_out_bytes = l->kind == LAYER_PATCH_MERGING ? (int64_t)ceil(mbs * (double)l->out_bytes / cp) : r.stream_bytes;
    /* every blocking collective also costs the ranks' meeting (the
     * profile's sync_overhead, fitted by galvc --calibrate) */
    r.mb_s += r.calls_mb * hw->sync_s;
    r.step_s += r.calls_step * hw->sync_s;
    return r;
}

/* From Ulysses over u to another degree (or none), or back: the stream's
 * local tokens all-gathered over the larger Ulysses group one way, sliced
 * the other, forward and for the gradient (the TP part aside). */
static double ulysses_reshard_s(const Ctx *c, const Layer *l, const Strategy *a, const Strategy *b, double samples) {
    int ua = strategy_ulysses(a), ub = strategy_ulysses(b);
    if (ua == ub) return 0;
    const Strategy *big = ua > ub ? a : b;
    double bytes = (double)stream_bytes(c, l) * samples / big->dp;
    return 2 * (collective_s(c, COLL_ALLGATHER, strategy_ulysses(big), 1, true, bytes) + c->hw->sync_s);
}

/* Converting layer l-1's output from strategy a's layout to b's: the
 * micro-batch's activation regathered over the larger TP group, forward, and
 * its gradient on the way back (Galvatron-BMW, Wang et al. 2024, section 4.3,
 * the transformation cost between adjacent layers). A sequence split that
 * starts or ends there takes at most as much: its rows gathered one way,
 * sliced the other. */
static double reshard_s(const Ctx *c, const Layer *l, const Strategy *a, const Strategy *b, double samples) {
    double t = ulysses_reshard_s(c, l, a, b, samples);
    if (a->tp == b->tp && a->tp_consec == b->tp_consec && strategy_sp(a) == strategy_sp(b) &&
        strategy_cp(a) == strategy_cp(b))
        return t;
    /* a context-parallel split gathers its positions over the TP x CP block
     * it spans one way, and slices them the other */
    int ga = a->tp * strategy_cp(a), gb = b->tp * strategy_cp(b);
    int g = ga > gb ? ga : gb;
    bool consec = ga > gb ? a->tp_consec : b->tp_consec;
    int dp = ga > gb ? a->dp : b->dp;
    double bytes = (double)stream_bytes(c, l) * samples / dp;
    return t + 2 * (collective_s(c, COLL_ALLGATHER, g, consec ? 1 : dp, consec, bytes) + c->hw->sync_s);
}

bool pass_cost(const Spec *spec, const HwProfile *hw, const StrategySet *set, int64_t micro_batches, Arena *a,
               CostTable *out) {
    const Graph *g = spec->graph;
    int64_t batch = spec->train->global_batch;
    if (micro_batches < 1 || batch % micro_batches) return false;
    const Strategy *s0 = set->n ? &set->items[0] : NULL;
    int n = set->n, L = g->n_layers;
    Ctx c = {spec,           hw,
             micro_batches,  s0 ? s0->pp * strategy_stage_devices(s0) : 1,
             GRT_ELEM_BYTES, L && graph_t5_cross(g) >= 0 ? stream_seq(g, g->layers[0]) : 0};
    double samples = (double)batch / micro_batches; /* per micro-batch, all DP groups together */
    *out = (CostTable){.n_layers = L, .n_strategies = n, .strategies = set->items, .micro_batches = micro_batches};
    out->cost = arena_alloc(a, (size_t)L * n * sizeof *out->cost);
    out->reshard = arena_alloc(a, (size_t)L * n * n * sizeof *out->reshard);
    out->p2p_s = arena_alloc(a, (size_t)L * sizeof *out->p2p_s);
    bool *may_ckpt = arena_alloc(a, (size_t)L * sizeof *may_ckpt);
    for (int i = 0; i < L; i++) may_ckpt[i] = layer_recomputes(g->layers[i]->kind);
    out->may_ckpt = may_ckpt;
    int64_t tokens = batch / micro_batches * (L ? (int64_t)stream_seq(g, g->layers[0]) : 0);
    GrtLayerSpec first;
    double sample_ints = L ? stream_seq(g, g->layers[0]) : 0; /* a sample's input: tokens, or pixels (galvrt_sizes.h) */
    if (L && layer_runtime_base_kind(g->layers[0]->kind) >= 0 && layer_runtime_spec(g, g->layers[0], &first))
        sample_ints = grt_size_sample_ints(&first, stream_seq(g, g->layers[0]));
    out->token_bytes = (tokens + (int64_t)(batch / micro_batches * sample_ints)) * (int64_t)sizeof(int32_t);
    out->loss_bytes = tokens * (int64_t)sizeof(float);
    out->one_device = spec->cluster->ranks_per_device > 1 && spec->cluster->ranks_per_device >= c.devices;
    out->tied_emb = out->tied_head = -1;
    for (int i = 0; i < L; i++) {
        if (g->layers[i]->kind == LAYER_EMBEDDING) out->tied_emb = i;
        if (g->layers[i]->kind == LAYER_LM_HEAD && g->layers[i]->tied) out->tied_head = i;
    }
    if (out->tied_head < 0 || out->tied_emb < 0) out->tied_emb = out->tied_head = -1;
    if (out->tied_head >= 0) {
        const Layer *l = g->layers[out->tied_emb];
        out->tied_copy_bytes = arena_alloc(a, (size_t)n * sizeof *out->tied_copy_bytes);
        for (int k = 0; k < n; k++) {
            const Strategy *s = &set->items[k];
            int64_t rows = (l->vocab + s->tp - 1) / s->tp;
            out->tied_copy_bytes[k] = zero_state_bytes(&c, s, rows * l->hidden);
        }
        out->tied_sum_bytes = l->vocab * l->hidden * (int64_t)sizeof(float);
    }
    /* a reshard's cost depends on the two layouts alone (TP degree, nesting,
     * sequence split, DP degree): each pair of layouts is costed once a layer */
    int *cls = arena_alloc(a, (size_t)n * sizeof *cls), n_cls = 0;
    int *rep = arena_alloc(a, (size_t)n * sizeof *rep);
    for (int k = 0; k < n; k++) {
        const Strategy *s = &set->items[k];
        cls[k] = -1;
        for (int j = 0; j < n_cls && cls[k] < 0; j++) {
            const Strategy *r = &set->items[rep[j]];
            if (r->tp == s->tp && r->dp == s->dp && r->tp_consec == s->tp_consec && strategy_sp(r) == strategy_sp(s) &&
                strategy_ulysses(r) == strategy_ulysses(s) && strategy_cp(r) == strategy_cp(s))
                cls[k] = j;
        }
        if (cls[k] < 0) rep[n_cls] = k, cls[k] = n_cls++;
    }
    double *pair = arena_alloc(a, (size_t)n_cls * n_cls * sizeof *pair);
    for (int i = 0; i < L; i++) {
        const Layer *l = g->layers[i];
        for (int k = 0; k < n; k++) out->cost[(size_t)i * n + k] = layer_cost(&c, l, &set->items[k], samples);
        for (int p = 0; i > 0 && p < n_cls; p++)
            for (int k = 0; k < n_cls; k++)
                pair[p * n_cls + k] = reshard_s(&c, l, &set->items[rep[p]], &set->items[rep[k]], samples);
        for (int p = 0; i > 0 && p < n; p++)
            for (int k = 0; k < n; k++) out->reshard[((size_t)i * n + p) * n + k] = pair[cls[p] * n_cls + cls[k]];
        /* Pipeline p2p: each rank of a stage sends its 1/n share of the
         * micro-batch's activation (Megatron's scatter/gather optimization,
         * Narayanan et al. 2021, section 4.1). */
        int stage_devices = n ? (int)strategy_stage_devices(&set->items[0]) : 1;
        double bytes = (double)l->out_bytes * samples / stage_devices;
        out->p2p_s[i] = collective_s(&c, COLL_P2P, 2, stage_devices, true, bytes) + hw->sync_s;
    }
    return true;
}
