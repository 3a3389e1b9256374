/* reshard.c — moving activations between the layouts of neighbouring layers
 * (a mixed plan, Galvatron-BMW's transformation between adjacent layers,
 * Wang et al. 2024, section 4.3) and between pipeline stages (Megatron's p2p
 * of activations and of their gradients, Narayanan et al. 2021).
 *
 * A layout says which sequences of a micro-batch each rank holds (galvrt.h),
 * or with sequence parallelism which rows of them. A reshard is a list of
 * transfers, each a run of consecutive units from one rank to another,
 * computed the same way by every rank involved; a unit is a sequence split
 * in the least common multiple of the two layouts' sequence splits, so
 * every rank's part is a whole number of units. */
#include "galvrt.h"

#include <string.h>

int grt_layout_has(const GrtLayout *L, int rank) { return rank >= L->base && rank < L->base + L->tp * L->dp; }

int grt_layout_tp_index(const GrtLayout *L, int rank) {
    int r = rank - L->base;
    return L->consec ? r % L->tp : r / L->dp;
}

int grt_layout_dp_index(const GrtLayout *L, int rank) {
    int r = rank - L->base;
    return L->consec ? r / L->tp : r % L->dp;
}

int grt_layout_rank(const GrtLayout *L, int tp_index, int dp_index) {
    return L->base + (L->consec ? dp_index * L->tp + tp_index : tp_index * L->dp + dp_index);
}

/* How many parts a layout splits its ranks' rows in: its TP degree when sequence parallel. */
static int split_of(const GrtLayout *L) { return L->sp ? L->tp : 1; }

size_t grt_layout_floats(const GrtLayout *L, int mb, size_t seq_floats) {
    return (size_t)(mb / L->dp) * seq_floats / (size_t)split_of(L);
}

/* Units a rank of L holds of a micro-batch of `units`, and its first. */
static int units_of(const GrtLayout *L, int units) { return units / L->dp / split_of(L); }
static int first_unit(const GrtLayout *L, int units, int rank) {
    int t = L->sp ? grt_layout_tp_index(L, rank) : 0;
    return grt_layout_dp_index(L, rank) * (units / L->dp) + t * units_of(L, units);
}

/* One run of units [seq, seq + count) going from rank src to rank dst. */
typedef struct Transfer {
    int src, dst, seq, count;
} Transfer;

struct GrtReshard {
    GrtLayout from, to;
    int mb, rank, units; /* units: of a micro-batch */
    size_t seq_floats;   /* of a unit */
    Transfer *t; /* only the transfers this rank takes part in */
    int n, cap, sends;
};

static void add(GrtReshard *r, Transfer x) {
    if (x.src != r->rank && x.dst != r->rank) return;
    /* extend the previous run when it continues it */
    if (r->n) {
        Transfer *p = &r->t[r->n - 1];
        if (p->src == x.src && p->dst == x.dst && p->seq + p->count == x.seq) {
            p->count += x.count;
            return;
        }
    }
    if (r->n == r->cap) {
        int cap = r->cap ? 2 * r->cap : 16;
        Transfer *t = grt_alloc(sizeof *t * (size_t)cap);
        if (r->n) memcpy(t, r->t, sizeof *t * (size_t)r->n);
        if (r->t) grt_free(r->t, sizeof *t * (size_t)r->cap);
        r->t = t, r->cap = cap;
    }
    r->t[r->n++] = x;
    if (x.src == r->rank && x.dst != r->rank) r->sends++;
}

GrtReshard *grt_reshard_new(const GrtLayout *from, const GrtLayout *to, int mb, size_t seq_floats, int rank) {
    GrtReshard *r = grt_alloc(sizeof *r);
    int k = split_of(from), j = split_of(to); /* the parts: the least common multiple of the splits */
    while (k % j) k += split_of(from);
    if (seq_floats % (size_t)k) grt_abort("internal error: a reshard's sequence does not split into its parts", 1);
    r->from = *from, r->to = *to, r->mb = mb, r->rank = rank, r->seq_floats = seq_floats / (size_t)k;
    r->units = mb * k;
    int flen = units_of(from, r->units), tlen = units_of(to, r->units);
    for (int d = to->base; d < to->base + to->tp * to->dp; d++) {
        int first = first_unit(to, r->units, d);
        int mine = grt_layout_has(from, d) ? first_unit(from, r->units, d) : -1;
        /* walk d's units by the from-layout's parts */
        for (int u = first; u < first + tlen;) {
            int j = u / flen, end = (j + 1) * flen;
            if (end > first + tlen) end = first + tlen;
            int t = from->sp ? j % from->tp : grt_layout_tp_index(to, d) % from->tp;
            int src = j * flen == mine ? d : grt_layout_rank(from, t, j / split_of(from));
            add(r, (Transfer){src, d, u, end - u});
            u = end;
        }
    }
    return r;
}

int grt_reshard_sends(const GrtReshard *r) { return r->sends; }

/* Where unit `seq` sits in this rank's buffer under layout L. */
static size_t at(const GrtReshard *r, const GrtLayout *L, int seq) {
    return (size_t)(seq - first_unit(L, r->units, r->rank)) * r->seq_floats;
}

int grt_reshard_isend(const GrtReshard *r, GrtComm *world, const float *src, int tag, GrtRequest **reqs) {
    int k = 0;
    for (int i = 0; i < r->n; i++) {
        const Transfer *x = &r->t[i];
        if (x->src == r->rank && x->dst != r->rank)
            reqs[k++] = grt_isend(world, src + at(r, &r->from, x->seq), (size_t)x->count * r->seq_floats, x->dst, tag);
    }
    return k;
}

void grt_reshard_recv(const GrtReshard *r, GrtComm *world, float *dst, int tag) {
    for (int i = 0; i < r->n; i++) {
        const Transfer *x = &r->t[i];
        if (x->dst == r->rank && x->src != r->rank)
            grt_recv(world, dst + at(r, &r->to, x->seq), (size_t)x->count * r->seq_floats, x->src, tag);
    }
}

void grt_reshard_run(const GrtReshard *r, GrtComm *world, const float *src, float *dst, int tag) {
    GrtRequest *stack[64], **reqs = r->n <= 64 ? stack : grt_alloc(sizeof *reqs * (size_t)r->n);
    int k = 0;
    for (int i = 0; i < r->n; i++) { /* receives first, so no send waits on an unposted receive */
        const Transfer *x = &r->t[i];
        if (x->dst == r->rank && x->src != r->rank)
            reqs[k++] = grt_irecv(world, dst + at(r, &r->to, x->seq), (size_t)x->count * r->seq_floats, x->src, tag);
    }
    k += grt_reshard_isend(r, world, src, tag, reqs + k);
    for (int i = 0; i < r->n; i++) {
        const Transfer *x = &r->t[i];
        if (x->src == r->rank && x->dst == r->rank)
            grt_dev->copy(dst + at(r, &r->to, x->seq), src + at(r, &r->from, x->seq),
                          (size_t)x->count * r->seq_floats * sizeof(float));
    }
    for (int i = 0; i < k; i++) grt_wait(reqs[i]);
    if (reqs != stack) grt_free(reqs, sizeof *reqs * (size_t)r->n);
}
