/* strategy.c — naming and comparing per-layer strategies. */
#include "ir.h"

#include <string.h>

/* Ulysses's: "pp=1 tp=1 ulysses=4 dp=2 zero2 ckpt", ZeRO named apart, its group being the ulysses x dp replicas. */
static const char *ulysses_str(char *buf, size_t n, const Strategy *s) {
    static const char *const zero_name[] = {"", " zero1", " zero2", " sdp"};
    snprintf(buf, n, "pp=%d tp=%d ulysses=%d dp=%d%s%s%s", s->pp, s->tp, s->ulysses, s->dp, zero_name[strategy_zero(s)],
             strategy_zero(s) == 3 && s->zero3_once ? " accumulate-once" : "", s->ckpt ? " ckpt" : "");
    return buf;
}

/* The readable form used in lists, plans and messages: "pp=1 tp=2 sp cp=2 zero2=4 tp-strided ckpt". */
const char *strategy_str(char *buf, size_t n, const Strategy *s) {
    static const char *const dp_name[] = {"dp", "zero1", "zero2", "sdp"};
    if (strategy_ulysses(s) > 1) return ulysses_str(buf, n, s);
    char cp[24] = "";
    if (strategy_cp(s) > 1) snprintf(cp, sizeof cp, " cp=%d", s->cp);
    snprintf(buf, n, "pp=%d tp=%d%s%s %s=%d%s%s%s", s->pp, s->tp, strategy_sp(s) ? " sp" : "", cp,
             dp_name[strategy_zero(s)], s->dp, s->tp > 1 && s->dp > 1 ? (s->tp_consec ? " tp-consecutive" : " tp-strided") : "",
             strategy_zero(s) == 3 && s->zero3_once ? " accumulate-once" : "", s->ckpt ? " ckpt" : "");
    return buf;
}

/* Over the replicas (ulysses x dp, or cp x dp): a Ulysses group alone shards as a DP group would. */
int strategy_zero(const Strategy *s) {
    if (strategy_replicas(s) <= 1) return 0;
    return s->sdp ? 3 : s->zero;
}

bool strategy_equal(const Strategy *a, const Strategy *b) {
    return a->pp == b->pp && a->tp == b->tp && a->dp == b->dp && strategy_zero(a) == strategy_zero(b) &&
           (strategy_zero(a) != 3 || a->zero3_once == b->zero3_once) && a->tp_consec == b->tp_consec &&
           a->ckpt == b->ckpt && strategy_sp(a) == strategy_sp(b) && strategy_ulysses(a) == strategy_ulysses(b) &&
           strategy_cp(a) == strategy_cp(b);
}

int strategy_ulysses(const Strategy *s) { return s->ulysses > 1 ? s->ulysses : 1; }

int strategy_cp(const Strategy *s) { return s->cp > 1 ? s->cp : 1; }

int64_t strategy_stage_devices(const Strategy *s) { return (int64_t)s->tp * strategy_replicas(s); }

int strategy_replicas(const Strategy *s) { return strategy_ulysses(s) * strategy_cp(s) * s->dp; }

bool strategy_sp(const Strategy *s) { return s->sp && s->tp > 1; }

bool strategy_tp_consecutive(const Strategy *s) { return s->tp_consec || s->tp == 1 || s->dp == 1; }

/* Does activation checkpointing apply to a layer of kind k? It recomputes a
 * transformer layer (or its attention or MLP alone) from its kept input
 * (Chen et al. 2016), as Galvatron and Megatron-LM checkpoint transformer
 * layers; the embeddings, the norms and the heads keep their activations. */
bool layer_recomputes(LayerKind k) {
    switch (k) {
    case LAYER_ENCODER:
    case LAYER_DECODER:
    case LAYER_CROSS_DECODER:
    case LAYER_ATTENTION:
    case LAYER_WINDOW_ATTENTION:
    case LAYER_MLP: return true;
    default: return false;
    }
}

/* A micro-batch of `samples` splits into whole samples over its DP group. */
bool strategy_splits(const Strategy *s, int64_t samples) { return samples >= s->dp && samples % s->dp == 0; }

/* The divisors of n > 0 in ascending order (trial division up to sqrt n):
 * the degrees that split n devices, the micro-batch counts that split a batch. */
const int64_t *strategy_divisors(int64_t n, Arena *a, int *count) {
    int small = 0, large = 0;
    for (int64_t d = 1; d <= n / d; d++)
        if (n % d == 0) small++;
    int64_t *out = arena_alloc(a, (size_t)(2 * small) * sizeof *out);
    for (int64_t d = 1; d <= n / d; d++) {
        if (n % d) continue;
        out[large++] = d; /* the small ones first, ascending */
    }
    int k = large;
    for (int i = large - 1; i >= 0; i--)
        if (n / out[i] != out[i]) out[k++] = n / out[i];
    *count = k;
    return out;
}
