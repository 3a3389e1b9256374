/* strategy.c — naming and comparing per-layer strategies. */
#include "ir.h"

#include <string.h>

/* The readable form used in lists, plans and messages. */
const char *strategy_str(char *buf, size_t n, const Strategy *s) {
    snprintf(buf, n, "pp=%d tp=%d %s=%d%s%s", s->pp, s->tp, s->sdp ? "sdp" : "dp", s->dp,
             s->tp > 1 && s->dp > 1 ? (s->tp_consec ? " tp-consecutive" : " tp-strided") : "",
             s->ckpt ? " ckpt" : "");
    return buf;
}

bool strategy_equal(const Strategy *a, const Strategy *b) {
    return a->pp == b->pp && a->tp == b->tp && a->dp == b->dp && a->sdp == b->sdp && a->tp_consec == b->tp_consec &&
           a->ckpt == b->ckpt;
}

bool strategy_tp_consecutive(const Strategy *s) { return s->tp_consec || s->tp == 1 || s->dp == 1; }

/* A micro-batch of `samples` splits into whole samples over its DP group. */
bool strategy_splits(const Strategy *s, int64_t samples) { return samples >= s->dp && samples % s->dp == 0; }
