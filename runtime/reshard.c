/* reshard.c — moving activations between the layouts of neighbouring layers
 * (a mixed plan, Galvatron-BMW's transformation between adjacent layers,
 * Wang et al. 2024, section 4.3) and between pipeline stages (Megatron's p2p
 * of activations and of their gradients, Narayanan et al. 2021).
 *
 * A layout says which sequences of a micro-batch each rank holds (galvrt.h).
 * A reshard is a list of transfers, each a run of consecutive sequences from
 * one rank to another, computed the same way by every rank involved. */
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

/* One run of sequences [seq, seq + count) going from rank src to rank dst. */
typedef struct Transfer {
    int src, dst, seq, count;
} Transfer;

struct GrtReshard {
    GrtLayout from, to;
    int mb, rank;
    size_t seq_floats;
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
    r->from = *from, r->to = *to, r->mb = mb, r->rank = rank, r->seq_floats = seq_floats;
    int fchunk = mb / from->dp, tchunk = mb / to->dp;
    for (int d = to->base; d < to->base + to->tp * to->dp; d++) {
        int first = grt_layout_dp_index(to, d) * tchunk;
        int mine = grt_layout_has(from, d) ? grt_layout_dp_index(from, d) : -1;
        /* walk d's sequences by the from-layout's chunks */
        for (int s = first; s < first + tchunk;) {
            int j = s / fchunk, end = (j + 1) * fchunk;
            if (end > first + tchunk) end = first + tchunk;
            int src = j == mine ? d : grt_layout_rank(from, grt_layout_tp_index(to, d) % from->tp, j);
            add(r, (Transfer){src, d, s, end - s});
            s = end;
        }
    }
    return r;
}

int grt_reshard_sends(const GrtReshard *r) { return r->sends; }

/* Where sequence `seq` sits in this rank's buffer under layout L. */
static size_t at(const GrtReshard *r, const GrtLayout *L, int seq) {
    return (size_t)(seq - grt_layout_dp_index(L, r->rank) * (r->mb / L->dp)) * r->seq_floats;
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
