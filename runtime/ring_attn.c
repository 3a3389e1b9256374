/* ring_attn.c — attention over a context-parallel group: ring attention
 * (Liu, Zaharia and Abbeel 2023, "Ring Attention with Blockwise
 * Transformers"), with Megatron-Core's load-balanced chunks for the causal
 * mask. Each step attends the rank's queries to one K,V chunk while the
 * next chunk travels (isend/irecv posted before the compute); partial
 * results merge exactly by the online-softmax rule (Milakov and Gimelshein
 * 2018): a running row maximum m, sum l and unnormalized output. Backward
 * rebuilds each block's probabilities from the kept log-sum-exp, as
 * FlashAttention does (Dao et al. 2022, algorithm 4), and carries the
 * dK,dV of the chunk it holds around the ring back to its owner. Plain C
 * loops, fp32 with the sums in place; shapes in galvrt.h. */
#include "galvrt.h"

#include <math.h>
#include <string.h>

enum { TAG_KV = 7301, TAG_DKV = 7302 };

int grt_ring_position(int T, int cp, int rank, int t) {
    int c = T / (2 * cp); /* chunk length: the rank holds chunks rank and 2 cp - 1 - rank */
    return t < c ? rank * c + t : (2 * cp - 1 - rank) * c + (t - c);
}

/* The block spec grt_ring_work sizes (galvrt_sizes.h). */
static GrtLayerSpec ring_spec(const GrtRingAttn *a) {
    GrtLayerSpec s = {.kind = GRT_BLOCK, .H = a->H, .KVH = a->KVH, .hd = a->hd};
    return s;
}

/* grt_ring_work's buffers for the rank's T / cp positions (a group of one, cp 1, takes the same layout) */
size_t grt_ring_attn_work_floats(const GrtRingAttn *a) {
    GrtLayerSpec s = ring_spec(a);
    int cp = grt_size(a->group);
    return (size_t)grt_ring_work(&s, grt_shard_sizes(&s, 1), cp > 1 ? cp : 2, a->B, (double)a->T / cp);
}

/* The working space, laid out as grt_ring_work counts it. */
typedef struct RingWork {
    float *cur, *next; /* [K, V, dK, dV] of one chunk: 4 x (B, Tl, KVH, hd) each */
    float *scores;     /* (H, Tl, Tl): one sequence's block; row i's probabilities in backward */
    float *acc;        /* (B, Tl, H, hd): forward's unnormalized output */
    float *m, *l;      /* (B, H, Tl): forward's running maximum and sum */
} RingWork;

static RingWork ring_work(const GrtRingAttn *a, float *work) {
    size_t Tl = (size_t)a->T / (size_t)grt_size(a->group), KV = (size_t)a->B * Tl * (size_t)a->KVH * (size_t)a->hd;
    RingWork w;
    w.cur = work, w.next = work + 4 * KV, w.scores = work + 8 * KV;
    w.acc = w.scores + (size_t)a->H * Tl * Tl;
    w.m = w.acc + (size_t)a->B * Tl * (size_t)a->H * (size_t)a->hd;
    w.l = w.m + (size_t)a->B * (size_t)a->H * Tl;
    return w;
}

/* Start passing n floats of buf to the next rank and receiving the previous rank's into into. */
static void ring_start(const GrtRingAttn *a, const float *buf, float *into, size_t n, int tag, GrtRequest **req) {
    int cp = grt_size(a->group), r = grt_rank(a->group);
    req[0] = grt_irecv(a->group, into, n, (r + cp - 1) % cp, tag);
    req[1] = grt_isend(a->group, buf, n, (r + 1) % cp, tag);
}

static void ring_finish(GrtRequest **req) {
    grt_wait(req[1]);
    grt_wait(req[0]);
}

/* Is key row j of owner o visible to query row i of this rank? */
static int visible(const GrtRingAttn *a, int cp, int r, int o, int i, int j) {
    return !a->causal || grt_ring_position(a->T, cp, o, j) <= grt_ring_position(a->T, cp, r, i);
}

/* One block: sequence b's queries against owner o's keys; scores (H, Tl, Tl) = q k^T / sqrt(hd), masked to -inf. */
static void block_scores(const GrtRingAttn *a, int o, int b, const float *q, const float *k, float *scores) {
    int cp = grt_size(a->group), r = grt_rank(a->group), Tl = a->T / cp, G = a->H / a->KVH;
    float scale = 1.0f / sqrtf((float)a->hd);
    for (int h = 0; h < a->H; h++)
        for (int i = 0; i < Tl; i++) {
            const float *qi = q + (((size_t)b * Tl + i) * a->H + h) * a->hd;
            float *row = scores + ((size_t)h * Tl + i) * Tl;
            for (int j = 0; j < Tl; j++) {
                const float *kj = k + (((size_t)b * Tl + j) * a->KVH + h / G) * a->hd;
                float dot = 0;
                for (int d = 0; d < a->hd; d++)
                    dot += qi[d] * kj[d];
                row[j] = visible(a, cp, r, o, i, j) ? dot * scale : -INFINITY;
            }
        }
}

/* Merge sequence b's block (scores against values v) into the running m, l and acc. */
static void block_merge(const GrtRingAttn *a, int b, const float *scores, const float *v, RingWork *w) {
    int Tl = a->T / grt_size(a->group), G = a->H / a->KVH, hd = a->hd;
    for (int h = 0; h < a->H; h++)
        for (int i = 0; i < Tl; i++) {
            const float *row = scores + ((size_t)h * Tl + i) * Tl;
            size_t s = ((size_t)b * a->H + h) * Tl + i;
            float mx = w->m[s];
            for (int j = 0; j < Tl; j++)
                mx = row[j] > mx ? row[j] : mx;
            if (mx == -INFINITY) continue; /* nothing visible in this block */
            float keep = w->m[s] == -INFINITY ? 0 : expf(w->m[s] - mx), sum = 0;
            float *acc = w->acc + (((size_t)b * Tl + i) * a->H + h) * hd;
            for (int d = 0; d < hd; d++)
                acc[d] *= keep;
            for (int j = 0; j < Tl; j++) {
                if (row[j] == -INFINITY) continue;
                float p = expf(row[j] - mx);
                const float *vj = v + (((size_t)b * Tl + j) * a->KVH + h / G) * hd;
                for (int d = 0; d < hd; d++)
                    acc[d] += p * vj[d];
                sum += p;
            }
            w->l[s] = w->l[s] * keep + sum, w->m[s] = mx;
        }
}

/* out = acc / l, lse = m + log l, every row (each sees one key at least: itself, or every key without a mask). */
static void forward_finish(const GrtRingAttn *a, const RingWork *w, float *out, float *lse) {
    int Tl = a->T / grt_size(a->group), hd = a->hd;
    for (int b = 0; b < a->B; b++)
        for (int h = 0; h < a->H; h++)
            for (int i = 0; i < Tl; i++) {
                size_t s = ((size_t)b * a->H + h) * Tl + i, at = (((size_t)b * Tl + i) * a->H + h) * hd;
                for (int d = 0; d < hd; d++)
                    out[at + d] = w->acc[at + d] / w->l[s];
                lse[s] = w->m[s] + logf(w->l[s]);
            }
}

void grt_ring_attn_forward(const GrtRingAttn *a, const float *q, const float *k, const float *v, float *out, float *lse,
                           float *work) {
    int cp = grt_size(a->group), r = grt_rank(a->group);
    size_t Tl = (size_t)a->T / cp, KV = (size_t)a->B * Tl * a->KVH * a->hd;
    RingWork w = ring_work(a, work);
    memcpy(w.cur, k, KV * sizeof *k);
    memcpy(w.cur + KV, v, KV * sizeof *v);
    memset(w.acc, 0, (size_t)a->B * Tl * a->H * a->hd * sizeof *w.acc);
    memset(w.l, 0, (size_t)a->B * a->H * Tl * sizeof *w.l);
    for (size_t s = 0; s < (size_t)a->B * a->H * Tl; s++)
        w.m[s] = -INFINITY;
    for (int step = 0; step < cp; step++) {
        GrtRequest *req[2] = {NULL, NULL};
        if (step < cp - 1) ring_start(a, w.cur, w.next, 4 * KV, TAG_KV, req);
        int o = (r - step + cp) % cp; /* the chunk's owner */
        for (int b = 0; b < a->B; b++) {
            block_scores(a, o, b, q, w.cur, w.scores);
            block_merge(a, b, w.scores, w.cur + KV, &w);
        }
        if (step == cp - 1) break;
        ring_finish(req);
        float *t = w.cur;
        w.cur = w.next, w.next = t;
    }
    forward_finish(a, &w, out, lse);
}

/* D (B, H, Tl) = rowsum(dout * out), per head: backward's softmax term, in w->m. */
static void backward_rows(const GrtRingAttn *a, const float *out, const float *dout, RingWork *w) {
    int Tl = a->T / grt_size(a->group), hd = a->hd;
    for (int b = 0; b < a->B; b++)
        for (int h = 0; h < a->H; h++)
            for (int i = 0; i < Tl; i++) {
                size_t at = (((size_t)b * Tl + i) * a->H + h) * hd;
                float s = 0;
                for (int d = 0; d < hd; d++)
                    s += dout[at + d] * out[at + d];
                w->m[((size_t)b * a->H + h) * Tl + i] = s;
            }
}

/* Sequence b's block against owner o's chunk c = [K, V, dK, dV]: P = exp(S - lse), dV += P^T dO, dS = P (dO V^T -
 * D), dQ += dS K / sqrt(hd), dK += dS^T Q / sqrt(hd). */
static void block_backward(const GrtRingAttn *a, int b, const float *q, const float *lse, const float *dout,
                           float *chunk, float *dq, RingWork *w) {
    int Tl = a->T / grt_size(a->group), G = a->H / a->KVH, hd = a->hd;
    size_t KV = (size_t)a->B * Tl * a->KVH * hd;
    const float *v = chunk + KV;
    float *dk = chunk + 2 * KV, *dv = chunk + 3 * KV, scale = 1.0f / sqrtf((float)hd);
    for (int h = 0; h < a->H; h++)
        for (int i = 0; i < Tl; i++) {
            const float *row = w->scores + ((size_t)h * Tl + i) * Tl;
            size_t s = ((size_t)b * a->H + h) * Tl + i, qa = (((size_t)b * Tl + i) * a->H + h) * hd;
            for (int j = 0; j < Tl; j++) {
                if (row[j] == -INFINITY) continue;
                size_t ka = (((size_t)b * Tl + j) * a->KVH + h / G) * hd;
                float p = expf(row[j] - lse[s]), dp = 0;
                for (int d = 0; d < hd; d++)
                    dp += dout[qa + d] * v[ka + d], dv[ka + d] += p * dout[qa + d];
                float ds = p * (dp - w->m[s]) * scale;
                for (int d = 0; d < hd; d++)
                    dq[qa + d] += ds * chunk[ka + d], dk[ka + d] += ds * q[qa + d];
            }
        }
}

void grt_ring_attn_backward(const GrtRingAttn *a, const float *q, const float *k, const float *v, const float *out,
                            const float *lse, const float *dout, float *dq, float *dk, float *dv, float *work) {
    int cp = grt_size(a->group), r = grt_rank(a->group);
    size_t Tl = (size_t)a->T / cp, KV = (size_t)a->B * Tl * a->KVH * a->hd;
    RingWork w = ring_work(a, work);
    backward_rows(a, out, dout, &w);
    memcpy(w.cur, k, KV * sizeof *k);
    memcpy(w.cur + KV, v, KV * sizeof *v);
    memset(w.cur + 2 * KV, 0, 2 * KV * sizeof *w.cur);
    memset(dq, 0, (size_t)a->B * Tl * a->H * a->hd * sizeof *dq);
    for (int step = 0; step < cp; step++) {
        int o = (r - step + cp) % cp;
        for (int b = 0; b < a->B; b++) {
            block_scores(a, o, b, q, w.cur, w.scores);
            block_backward(a, b, q, lse, dout, w.cur, dq, &w);
        }
        if (cp == 1) break;
        /* the chunk and its gradients on to the next rank; the last step sends the gradients home alone */
        GrtRequest *req[2] = {NULL, NULL};
        if (step < cp - 1)
            ring_start(a, w.cur, w.next, 4 * KV, TAG_KV, req);
        else
            ring_start(a, w.cur + 2 * KV, w.next + 2 * KV, 2 * KV, TAG_DKV, req);
        ring_finish(req);
        float *t = w.cur;
        w.cur = w.next, w.next = t;
    }
    memcpy(dk, w.cur + 2 * KV, KV * sizeof *dk);
    memcpy(dv, w.cur + 3 * KV, KV * sizeof *dv);
}
