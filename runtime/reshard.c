/* reshard.c — moving activations between the layouts of neighbouring layers
 * (a mixed plan, Galvatron-BMW's transformation between adjacent layers,
 * Wang et al. 2024, section 4.3) and between pipeline stages (Megatron's p2p
 * of activations and of their gradients, Narayanan et al. 2021).
 *
 * A layout says which sequences of a micro-batch each rank holds (galvrt.h),
 * with sequence parallelism which rows of them, under Ulysses which
 * positions of each, under CP which two of the ring's 2 cp chunks of each
 * (grt_ring_position). A reshard is a list of transfers, each a run of units
 * from one rank's buffer to another's, consecutive in both, computed the
 * same way by every rank involved; a unit is a sequence split in the least
 * common multiple of the two layouts' sequence splits, so every rank's part
 * is a whole number of units. */
#include "galvrt.h"

#include <string.h>

/* Its Ulysses and CP degrees (1: none), the ranks that split each sequence, and its ranks. */
static int ul_of(const GrtLayout *L) { return L->ul > 1 ? L->ul : 1; }
static int cp_of(const GrtLayout *L) { return L->cp > 1 ? L->cp : 1; }
static int seq_of(const GrtLayout *L) { return ul_of(L) * cp_of(L); }
static int ranks_of(const GrtLayout *L) { return L->tp * L->dp * seq_of(L); }

int grt_layout_has(const GrtLayout *L, int rank) { return rank >= L->base && rank < L->base + ranks_of(L); }

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

/* How many parts a layout splits its ranks' rows in: its TP degree when sequence parallel, its Ulysses or CP degree. */
static int split_of(const GrtLayout *L) { return (L->sp ? L->tp : 1) * seq_of(L); }
/* The parts a sequence must be cut in for L: split_of's, a CP layout's 2 cp chunks. */
static int parts_of(const GrtLayout *L) { return split_of(L) * (cp_of(L) > 1 ? 2 : 1); }

size_t grt_layout_floats(const GrtLayout *L, int mb, size_t seq_floats) {
    return (size_t)(mb / L->dp) * seq_floats / (size_t)split_of(L);
}

/* Units a rank of L holds of a micro-batch of `units`, and its first (not Ulysses: a contiguous run). */
static int units_of(const GrtLayout *L, int units) { return units / L->dp / split_of(L); }
static int first_unit(const GrtLayout *L, int units, int rank) {
    int t = L->sp ? grt_layout_tp_index(L, rank) : 0;
    return grt_layout_dp_index(L, rank) * (units / L->dp) + t * units_of(L, units);
}

/* A micro-batch of mb sequences cut into k units each: unit g is part g % k of sequence g / k. */
typedef struct Units {
    int mb, k;
} Units;

/* Of a sequence cut into k units, the one at place p of split index r's
 * part: Ulysses's run [r, r + 1) k / ul; CP's chunks r, then 2 cp - 1 - r. */
static int seq_unit(const GrtLayout *L, int k, int r, int p) {
    int per = k / seq_of(L), c = cp_of(L), half = per / 2;
    if (c == 1) return r * per + p;
    return p < half ? r * half + p : (2 * c - 1 - r) * half + p - half;
}

/* The split index whose part holds unit pu of a sequence of k units, and its place there (*p). */
static int seq_owner(const GrtLayout *L, int k, int pu, int *p) {
    int per = k / seq_of(L), c = cp_of(L), half = per / 2;
    if (c == 1) return *p = pu % per, pu / per;
    int ch = pu / half; /* the chunk */
    *p = (ch < c ? 0 : half) + pu % half;
    return ch < c ? ch : 2 * c - 1 - ch;
}

/* The unit at place q of rank's buffer under L. Ulysses or CP: its sequences' parts (seq_unit), sequence after
 * sequence. */
static int unit_at(const GrtLayout *L, Units n, int rank, int q) {
    if (seq_of(L) == 1) return first_unit(L, n.mb * n.k, rank) + q;
    int i = rank - L->base, u = seq_of(L), per = n.k / u, B = n.mb / L->dp;
    return (i / u * B + q / per) * n.k + seq_unit(L, n.k, i % u, q % per);
}

/* Where unit g sits in rank's buffer under L, or -1 when the rank does not hold it. */
static int place_of(const GrtLayout *L, Units n, int rank, int g) {
    if (!grt_layout_has(L, rank)) return -1;
    if (seq_of(L) == 1) {
        int f = first_unit(L, n.mb * n.k, rank);
        return g >= f && g < f + units_of(L, n.mb * n.k) ? g - f : -1;
    }
    int i = rank - L->base, u = seq_of(L), per = n.k / u, B = n.mb / L->dp, s = g / n.k - i / u * B, p;
    return s >= 0 && s < B && seq_owner(L, n.k, g % n.k, &p) == i % u ? s * per + p : -1;
}

/* The rank of `from` that sends unit g to rank d: d itself when it holds it; else
 * its one holder, or among a TP group's replicas the one whose TP index matches d's. */
static int holder(const GrtLayout *from, const GrtLayout *to, Units n, int g, int d) {
    if (place_of(from, n, d, g) >= 0) return d;
    if (seq_of(from) > 1) {
        int u = seq_of(from), B = n.mb / from->dp, p;
        return from->base + g / n.k / B * u + seq_owner(from, n.k, g % n.k, &p);
    }
    int flen = units_of(from, n.mb * n.k), j = g / flen;
    int t = from->sp ? j % from->tp : grt_layout_tp_index(to, d) % from->tp;
    return grt_layout_rank(from, t, j / split_of(from));
}

/* One run of `count` units going from rank src (from its place a) to rank dst (to its place b). */
typedef struct Transfer {
    int src, dst, a, b, count;
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
        if (p->src == x.src && p->dst == x.dst && p->a + p->count == x.a && p->b + p->count == x.b) {
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
    int k = parts_of(from), j = parts_of(to); /* the parts: the least common multiple of the splits */
    while (k % j)
        k += parts_of(from);
    if (seq_floats % (size_t)k) grt_abort("internal error: a reshard's sequence does not split into its parts", 1);
    r->from = *from, r->to = *to, r->mb = mb, r->rank = rank, r->seq_floats = seq_floats / (size_t)k;
    r->units = mb * k;
    Units n = {mb, k};
    int tlen = units_of(to, r->units);
    for (int d = to->base; d < to->base + ranks_of(to); d++) /* d's units in its buffer's order */
        for (int q = 0; q < tlen; q++) {
            int g = unit_at(to, n, d, q), src = holder(from, to, n, g, d);
            add(r, (Transfer){src, d, place_of(from, n, src, g), q, 1});
        }
    return r;
}

int grt_reshard_sends(const GrtReshard *r) { return r->sends; }

/* Floats from the start of a buffer to unit place q. */
static size_t at(const GrtReshard *r, int q) { return (size_t)q * r->seq_floats; }

int grt_reshard_isend(const GrtReshard *r, GrtComm *world, const float *src, int tag, GrtRequest **reqs) {
    int k = 0;
    for (int i = 0; i < r->n; i++) {
        const Transfer *x = &r->t[i];
        if (x->src == r->rank && x->dst != r->rank)
            reqs[k++] = grt_isend(world, src + at(r, x->a), (size_t)x->count * r->seq_floats, x->dst, tag);
    }
    return k;
}

void grt_reshard_recv(const GrtReshard *r, GrtComm *world, float *dst, int tag) {
    for (int i = 0; i < r->n; i++) {
        const Transfer *x = &r->t[i];
        if (x->dst == r->rank && x->src != r->rank)
            grt_recv(world, dst + at(r, x->b), (size_t)x->count * r->seq_floats, x->src, tag);
    }
}

void grt_reshard_run(const GrtReshard *r, GrtComm *world, const float *src, float *dst, int tag) {
    GrtRequest *stack[64], **reqs = r->n <= 64 ? stack : grt_alloc(sizeof *reqs * (size_t)r->n);
    int k = 0;
    for (int i = 0; i < r->n; i++) { /* receives first, so no send waits on an unposted receive */
        const Transfer *x = &r->t[i];
        if (x->dst == r->rank && x->src != r->rank)
            reqs[k++] = grt_irecv(world, dst + at(r, x->b), (size_t)x->count * r->seq_floats, x->src, tag);
    }
    k += grt_reshard_isend(r, world, src, tag, reqs + k);
    for (int i = 0; i < r->n; i++) {
        const Transfer *x = &r->t[i];
        if (x->src == r->rank && x->dst == r->rank)
            grt_dev->copy(dst + at(r, x->b), src + at(r, x->a),
                          (size_t)x->count * r->seq_floats * sizeof(float));
    }
    for (int i = 0; i < k; i++) grt_wait(reqs[i]);
    if (reqs != stack) grt_free(reqs, sizeof *reqs * (size_t)r->n);
}
