/* search.c — the search pass: Galvatron's two-level search (Miao et al.,
 * VLDB 2023, section 4). The outer loop tries every pipeline degree, every
 * micro-batch count and two stage partitions (balanced by compute, balanced
 * by memory); inside each stage a dynamic program over the layers picks one
 * strategy per layer:
 *
 *     C(i, E, s) = min over s' of  C(i-1, E - mem(i, s), s') + time(i, s) + reshard(s', s)
 *
 * kept as a Pareto frontier of (memory, time) per (layer, strategy), memory
 * rounded up to whole MiB: the same optimum as the table over every 1 MiB
 * budget, without visiting budgets no assignment reaches. Ties go to the
 * lower memory, then to the earlier strategy, so plans are reproducible. */
#include "passes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MIB (1 << 20)
#define COARSE 64 /* the first pass's memory unit: the budget / COARSE */
/* Bounds are sums taken in another order than the times they bound: a
 * relative slack keeps rounding from dropping a plan that ties its bound. */
#define SLACK (1 + 1e-9)

typedef struct Point {
    int64_t mem; /* MiB units */
    double time; /* seconds */
    int prev_s;  /* strategy of the layer before, -1 for the first */
    int prev_i;  /* index in that strategy's frontier */
} Point;

typedef struct Frontier {
    Point *p;
    int n, cap;
} Frontier;

static void push(Frontier *f, Point p) {
    if (f->n == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 16;
        f->p = realloc(f->p, (size_t)f->cap * sizeof *f->p);
        if (!f->p) die("out of memory");
    }
    f->p[f->n++] = p;
}

static int64_t units(int64_t bytes, int64_t unit) { return (bytes + unit - 1) / unit; }

/* A stage's per-layer memory: states plus the activations of every
 * micro-batch in flight (GPipe: all m; 1F1B: stages minus this one's index,
 * Narayanan et al. 2021, section 2.2). */
static int64_t layer_mem(const LayerCost *c, int64_t in_flight) { return c->state_bytes + in_flight * c->act_bytes; }

typedef struct StageResult {
    bool ok;
    double time;      /* m * per-micro-batch time + per-step time */
    double mb_time;   /* per micro-batch */
    double step_time; /* once per step */
    double compute;   /* per micro-batch compute */
    int64_t mem;      /* bytes */
    double calls;     /* blocking collectives a step */
} StageResult;

/* What a DP may leave out of its candidates (and their shared buffers out
 * of its reserve): checkpointing, context parallelism, Ulysses. */
enum { LEAVE_CKPT = 1, LEAVE_CP = 2, LEAVE_UL = 4, LEAVE_NOCP = 8, LEAVE_ALL = 16 };
static bool left_out(const Strategy *s, int leave) {
    return ((leave & LEAVE_CKPT) && s->ckpt) || ((leave & LEAVE_CP) && strategy_cp(s) > 1) ||
           ((leave & LEAVE_UL) && strategy_ulysses(s) > 1) || ((leave & LEAVE_NOCP) && strategy_cp(s) == 1);
}

/* The stage's transient peak, taken as the worst any strategy could need, so
 * the additive DP stays exact: one layer's rebuilt activations or gathered
 * SDP weights at a time. */
/* A stage's memory besides each layer's state and activations: the working
 * space, checkpoint area and ZeRO-3 buffers its layers share (the largest
 * each needs, under its chosen strategy pick[i], or under any candidate of DP
 * (x Ulysses or CP) degree min_dp or more, less those `leave` names, when
 * pick is NULL), and the program's buffers: three activation-sized ones (a
 * layer's output before resharding, the gradient flowing down, and its
 * next), the tokens and targets of every micro-batch in flight, the losses,
 * and with a pipeline each in-flight micro-batch's output sent on and input
 * gradient sent back. */
/* The divisor of a device's share of the micro-batch's tokens: its DP degree, times its Ulysses or CP degree
 * (Ulysses 4 x DP 2 holds what DP 8 holds of the stream). */
static int share_of(const Strategy *s) { return strategy_replicas(s); }

static int64_t stage_reserve(const CostTable *t, int first, int last, int64_t in_flight, bool prev, bool next,
                             const int *pick, int min_dp, int leave) {
    int64_t work = 0, ckpt = 0, shard = 0, scatter = 0, stream = 0, in = 0, out = 0;
    for (int i = first; i < last; i++)
        for (int k = 0; k < t->n_strategies; k++) {
            if (pick ? pick[i] != k : share_of(&t->strategies[k]) < min_dp || left_out(&t->strategies[k], leave))
                continue;
            const LayerCost *c = &t->cost[(size_t)i * t->n_strategies + k];
            if (c->work_bytes > work) work = c->work_bytes;
            if (c->ckpt_bytes > ckpt) ckpt = c->ckpt_bytes;
            if (c->shard_bytes > shard) shard = c->shard_bytes;
            if (c->scatter_bytes > scatter) scatter = c->scatter_bytes;
            if (c->stream_bytes > stream) stream = c->stream_bytes;
            if (i == first && c->stream_bytes > in) in = c->stream_bytes;
            if (i == last - 1 && c->stream_out_bytes > out) out = c->stream_out_bytes;
        }
    return work + ckpt + shard + scatter + 3 * stream +
           in_flight * (t->token_bytes + (prev ? in : 0) + (next ? out : 0)) + t->loss_bytes;
}

/* The reshard cost depends only on the TP degree, nesting, sequence splits and Ulysses degree of the two
 * strategies, so strategies fall into a few classes; the DP merges the
 * frontiers of a class once instead of once per strategy. */
static int class_of(const Strategy *s, const Strategy *all, int n) {
    for (int k = 0; k < n; k++)
        if (all[k].tp == s->tp && all[k].tp_consec == s->tp_consec && strategy_sp(&all[k]) == strategy_sp(s) &&
            strategy_ulysses(&all[k]) == strategy_ulysses(s) && strategy_cp(&all[k]) == strategy_cp(s))
            return k;
    die("strategy not in its set");
}

/* One sorted input of a merge: a frontier, a time to add to its points, and
 * the strategy its points become back-pointers to (-1: keep theirs). */
typedef struct Source {
    const Frontier *f;
    double dtime;
    int own;
    int j; /* next point */
} Source;

/* Merge sorted frontiers into the Pareto frontier of their union, points
 * past the memory cap left out. Ties go to the lower memory, then the lower
 * time, then the earlier source, so the result does not depend on chance. */
static void merge_k(Frontier *out, Source *src, int k, int64_t cap) {
    out->n = 0;
    for (;;) {
        int best = -1;
        double best_t = 0;
        for (int q = 0; q < k; q++) {
            const Source *s = &src[q];
            if (s->j >= s->f->n || s->f->p[s->j].mem > cap) continue;
            const Point *a = &s->f->p[s->j];
            double t = a->time + s->dtime;
            if (best < 0 || a->mem < src[best].f->p[src[best].j].mem ||
                (a->mem == src[best].f->p[src[best].j].mem && t < best_t))
                best = q, best_t = t;
        }
        if (best < 0) return;
        Source *s = &src[best];
        Point p = s->f->p[s->j];
        p.time = best_t;
        if (s->own >= 0) p.prev_s = s->own, p.prev_i = s->j;
        s->j++;
        if (out->n == 0 || p.time < out->p[out->n - 1].time) push(out, p);
    }
}

/* The same, two at a time: the running result merged with each source in
 * turn costs O(k F) instead of O(k^2 F) for k sources of F points. */
static void merge_pareto(Frontier *out, Source *src, int k, int64_t cap, Frontier *tmp) {
    Frontier *acc = out, *next = tmp;
    acc->n = 0;
    for (int q = 0; q < k; q++) {
        Source pair[2] = {{acc, 0, -1, 0}, src[q]};
        merge_k(next, pair, 2, cap);
        Frontier *t = acc;
        acc = next;
        next = t;
    }
    if (acc != out) {
        Frontier t = *out;
        *out = *acc;
        *acc = t;
    }
}

/* The DP's buffers, kept across stages and searches so their memory is
 * allocated once and reused (frontiers are emptied, not freed). */
typedef struct Workspace {
    int cap_f, cap_n, cap_l;
    Frontier *F, *G, *M, scratch;
    Source *src;
    int *cls;
    double *rest;     /* [layers]: the least time the layers after each can add */
    int64_t unit;     /* bytes a memory unit: 1 MiB, or coarser for a first estimate */
    int *pick;        /* [layers]: one DP's choices, before they are compared */
    const int *force; /* [layers]: the strategy each layer must take (a fixed plan), or NULL */
    int leave;        /* LEAVE_*: what this DP leaves out (checkpointing and its area, CP and its ring buffers, ...) */
    int64_t *held;    /* [layers]: interleaved, the micro-batches each stage's chunks hold */
    double *sums;     /* [4 layers]: interleaved, each stage's times a micro-batch, a step, compute, calls */
} Workspace;

static void workspace_reserve(Workspace *w, int frontiers, int n, int layers) {
    if (frontiers > w->cap_f) {
        w->F = realloc(w->F, (size_t)frontiers * sizeof *w->F);
        if (!w->F) die("out of memory");
        memset(w->F + w->cap_f, 0, (size_t)(frontiers - w->cap_f) * sizeof *w->F);
        w->cap_f = frontiers;
    }
    if (n > w->cap_n) {
        w->G = realloc(w->G, (size_t)n * sizeof *w->G);
        w->M = realloc(w->M, (size_t)n * sizeof *w->M);
        w->src = realloc(w->src, (size_t)n * sizeof *w->src);
        w->cls = realloc(w->cls, (size_t)n * sizeof *w->cls);
        if (!w->G || !w->M || !w->src || !w->cls) die("out of memory");
        memset(w->G + w->cap_n, 0, (size_t)(n - w->cap_n) * sizeof *w->G);
        memset(w->M + w->cap_n, 0, (size_t)(n - w->cap_n) * sizeof *w->M);
        w->cap_n = n;
    }
    if (layers > w->cap_l) {
        w->rest = realloc(w->rest, (size_t)layers * sizeof *w->rest);
        if (!w->rest) die("out of memory");
        w->cap_l = layers;
    }
    for (int i = 0; i < frontiers; i++)
        w->F[i].n = 0;
}

static void workspace_free(Workspace *w) {
    for (int i = 0; i < w->cap_f; i++)
        free(w->F[i].p);
    for (int i = 0; i < w->cap_n; i++)
        free(w->G[i].p), free(w->M[i].p);
    free(w->F), free(w->G), free(w->M), free(w->src), free(w->cls), free(w->rest), free(w->scratch.p);
}

/* The first point of frontier f (memory ascending, so time descending) at
 * most `limit` once `add` is added: the points before it are too slow. */
static int first_within(const Frontier *f, double add, double limit) {
    int lo = 0, hi = f->n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (f->p[mid].time + add > limit)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The DP over layers [first, last) of one stage, among strategies of DP
 * (x Ulysses) degree min_dp or more; fills choice[] on success. Branch and bound: the
 * stage's time bounds the plan's step from below (try_partition), so a
 * partial assignment that cannot finish in `limit` or less (the best plan's
 * step so far) is dropped; INFINITY keeps every one. */
static StageResult stage_dp(Workspace *w, const CostTable *t, int first, int last, int64_t in_flight, bool prev,
                            bool next, int64_t extra, bool head_copy, int min_dp, int64_t budget, bool min_memory,
                            double limit, int *choice) {
    StageResult res = {0};
    int n = t->n_strategies, L = last - first;
    int64_t m = t->micro_batches;
    int64_t reserve = stage_reserve(t, first, last, in_flight, prev, next, NULL, min_dp, w->leave) + extra;
    if (reserve >= budget) return res;
    int64_t cap = (budget - reserve) / w->unit;
    const Strategy *S = t->strategies;
    workspace_reserve(w, L * n, n, L);
    /* rest[i]: the least time layers i+1 .. L-1 take, each at its fastest
     * strategy with no resharding */
    double *rest = w->rest;
    rest[L - 1] = 0;
    for (int i = L - 2; i >= 0; i--) {
        double least = INFINITY;
        for (int s = 0; s < n; s++) {
            const LayerCost *c = &t->cost[(size_t)(first + i + 1) * n + s];
            double x = (double)m * c->mb_s + c->step_s;
            if (x < least) least = x;
        }
        rest[i] = rest[i + 1] + least;
    }
    limit *= SLACK;
    int *cls = w->cls;
    Source *src = w->src;
    Frontier *F = w->F, *G = w->G, *M = w->M;
    for (int k = 0; k < n; k++)
        cls[k] = class_of(&S[k], S, n);
    for (int i = 0; i < L; i++) {
        int layer = first + i;
        if (i > 0) {
            /* G[c]: the frontier of every strategy of class c at layer i-1 */
            for (int c = 0; c < n; c++) {
                if (cls[c] != c) continue;
                int k = 0;
                for (int p = 0; p < n; p++)
                    if (cls[p] == c) src[k++] = (Source){&F[(size_t)(i - 1) * n + p], 0, p, 0};
                merge_pareto(&G[c], src, k, cap, &w->scratch);
            }
            /* M[c]: the best way to arrive at a strategy of class c, resharding included */
            for (int c = 0; c < n; c++) {
                if (cls[c] != c) continue;
                int k = 0;
                for (int q = 0; q < n; q++)
                    if (cls[q] == q && G[q].n)
                        src[k++] = (Source){&G[q], (double)m * t->reshard[((size_t)layer * n + q) * n + c], -1, 0};
                merge_pareto(&M[c], src, k, cap, &w->scratch);
            }
        }
        for (int s = 0; s < n; s++) {
            const LayerCost *c = &t->cost[(size_t)layer * n + s];
            int64_t bytes = layer_mem(c, in_flight) + (head_copy && layer == t->tied_head ? t->tied_copy_bytes[s] : 0);
            int64_t mem = units(bytes, w->unit);
            double time = (double)m * c->mb_s + c->step_s;
            Frontier *f = &F[(size_t)i * n + s];
            if (share_of(&S[s]) < min_dp) continue; /* (its frontier stays empty) */
            if (t->force_ckpt && S[s].ckpt != t->force_ckpt[layer]) continue;
            if (S[s].ckpt && !t->may_ckpt[layer]) continue; /* checkpointing recomputes transformer layers */
            if (left_out(&S[s], w->leave)) continue;
            if (w->force && w->force[layer] != s) continue;
            if (i == 0) {
                if (mem <= cap && time + rest[0] <= limit) push(f, (Point){mem, time, -1, -1});
            } else {
                for (int j = first_within(&M[cls[s]], time + rest[i], limit);
                     j < M[cls[s]].n && M[cls[s]].p[j].mem + mem <= cap; j++) {
                    Point p = M[cls[s]].p[j];
                    p.mem += mem;
                    p.time += time;
                    push(f, p);
                }
            }
            if (min_memory && f->n > 1) f->n = 1; /* only the smallest point matters */
        }
    }
    /* the fastest end point over all last strategies (or the smallest) */
    int best_s = -1, best_j = -1;
    for (int s = 0; s < n; s++) {
        const Frontier *f = &F[(size_t)(L - 1) * n + s];
        if (!f->n) continue;
        int j = min_memory ? 0 : f->n - 1;
        const Point *b = best_s < 0 ? NULL : &F[(size_t)(L - 1) * n + best_s].p[best_j];
        if (!b || (min_memory ? f->p[j].mem < b->mem : f->p[j].time < b->time)) best_s = s, best_j = j;
    }
    if (best_s >= 0) {
        res.ok = true;
        res.time = F[(size_t)(L - 1) * n + best_s].p[best_j].time;
        for (int i = L - 1, s = best_s, j = best_j; i >= 0; i--) {
            const Point *pt = &F[(size_t)i * n + s].p[j];
            choice[first + i] = s;
            s = pt->prev_s;
            j = pt->prev_i;
        }
        /* the chosen path's parts, for the plan's breakdown */
        for (int i = first; i < last; i++) {
            const LayerCost *c = &t->cost[(size_t)i * n + choice[i]];
            res.mb_time += c->mb_s + (i > first ? t->reshard[((size_t)i * n + choice[i - 1]) * n + choice[i]] : 0);
            res.step_time += c->step_s;
            res.compute += c->compute_s;
            res.mem += layer_mem(c, in_flight) + (head_copy && i == t->tied_head ? t->tied_copy_bytes[choice[i]] : 0);
            res.calls += (double)m * c->calls_mb + c->calls_step;
            if (i > first && t->reshard[((size_t)i * n + choice[i - 1]) * n + choice[i]] > 0)
                res.calls += 2.0 * (double)m;
        }
        /* what the program will hold: the chosen strategies' working space */
        res.mem += stage_reserve(t, first, last, in_flight, prev, next, choice, min_dp, 0) + extra;
    }
    return res;
}

/* Would leaving checkpointing out shrink layers [first, last)'s reserve by
 * a part in 256 of the budget or more (some candidate of DP degree min_dp
 * or more checkpoints with a larger checkpoint area than the others hold)?
 * Less could not buy a faster plan worth another DP. */
static bool ckpt_area_matters(const CostTable *t, int first, int last, int min_dp, int leave, int64_t budget) {
    return stage_reserve(t, first, last, 0, false, false, NULL, min_dp, leave & ~LEAVE_CKPT) -
               stage_reserve(t, first, last, 0, false, false, NULL, min_dp, leave | LEAVE_CKPT) >=
           budget / 256;
}

/* Does the table hold a strategy that `leave` (LEAVE_CP, LEAVE_UL) leaves out? */
static bool has_left_out(const CostTable *t, int leave) {
    for (int k = 0; k < t->n_strategies; k++)
        if (left_out(&t->strategies[k], leave)) return true;
    return false;
}

/* Split L layers into pp contiguous, non-empty stages by weight: cut after
 * the layer where the running sum first reaches k/pp of the total. */
static void partition(const double *w, int L, int pp, int *start) {
    double total = 0, acc = 0;
    for (int i = 0; i < L; i++)
        total += w[i];
    start[0] = 0;
    int k = 1;
    for (int i = 0; i < L && k < pp; i++) {
        acc += w[i];
        if (acc >= total * k / pp || L - (i + 1) == pp - k) start[k++] = i + 1;
    }
    start[pp] = L;
}

typedef struct Candidate {
    double step, compute, comm, bubble;
    int64_t *stage_mem;
    int64_t *in_flight;
    int64_t peak; /* the largest stage_mem */
    double calls; /* blocking collectives a step on the busiest stage */
} Candidate;

/* A tied head in the embedding's stage needs a copy of the table when the
 * two run in different layouts or either is sharded (the program's rule);
 * its state and the buffer summing the gradients. */
static int64_t same_stage_tied_copy(const CostTable *t, const int *choice) {
    const Strategy *e = &t->strategies[choice[t->tied_emb]], *h = &t->strategies[choice[t->tied_head]];
    if (e->tp == h->tp && strategy_tp_consecutive(e) == strategy_tp_consecutive(h) && !strategy_zero(e) &&
        !strategy_zero(h) && strategy_ulysses(e) == strategy_ulysses(h))
        return 0;
    return t->tied_copy_bytes[choice[t->tied_head]] + t->tied_sum_bytes;
}

enum { MAX_DIVISORS = 1344 }; /* the most any n <= 2^30 has (735134400's) */
enum { MAX_VPP = 4 };          /* chunks a stage the search tries (interleaved 1F1B) */

/* The divisors of n <= 2^30 up to `most`, ascending, into out; their count. */
static int divisors_upto(int64_t n, int64_t most, int64_t out[MAX_DIVISORS]) {
    int small = 0;
    for (int64_t d = 1; d * d <= n; d++)
        if (n % d == 0) out[small++] = d;
    int k = small;
    for (int i = small - 1; i >= 0; i--)
        if (n / out[i] != out[i]) out[k++] = n / out[i];
    while (k > 0 && out[k - 1] > most) k--;
    return k;
}

static int stage_of(const int *start, int pp, int layer) {
    int k = 0;
    while (k < pp - 1 && layer >= start[k + 1])
        k++;
    return k;
}

/* Ranks that time-share one device (t->one_device; each costed at 1/k of
 * it) run one at a time, and a stage waiting in the pipeline's bubble
 * leaves the device to the others: the step is their work together, m
 * micro-batches of every stage at the device's whole speed ((sum_mb -
 * sum_p2p) / pp a micro-batch when the pp stages share it: each stage's
 * time is pp times its own), the stages' host-staged sends one after the
 * other (sum_p2p a micro-batch, not overlapped), and the once-a-step work of
 * the slowest; never more than the pipeline's own step. No bubble: the
 * compute is the stages' together, the rest communication. */
static void one_device_step(const CostTable *t, int pp, double sum_mb, double sum_p2p, double sum_compute,
                            double max_step, Candidate *out) {
    double m = (double)t->micro_batches, shared = m * ((sum_mb - sum_p2p) / pp + sum_p2p) + max_step;
    if (!t->one_device || shared >= out->step) return;
    out->step = shared;
    out->compute = m * sum_compute / pp < shared ? m * sum_compute / pp : shared;
    out->comm = shared - out->compute;
    out->bubble = 0;
}

/* Cost one (pp, m, partition) choice; false when some stage does not fit,
 * or cannot make a step of `limit` or less (INFINITY: no limit). */
static bool try_partition(Workspace *w, const CostTable *t, int pp, const int *start, int schedule, int64_t budget,
                          bool min_memory, double limit, int *choice, Candidate *out) {
    int64_t m = t->micro_batches;
    if (t->one_device) limit *= pp; /* a stage's time bounds pp shared steps (one_device_step) */
    double sum_mb = 0, max_mb = 0, max_step = 0, max_compute = 0, sum_compute = 0, sum_p2p = 0;
    out->peak = 0;
    /* The stage's shared buffers grow with its largest micro-batch share,
     * i.e. its smallest DP degree (times Ulysses's: share_of): costing them
     * at the worst candidate's would refuse plans that fit, so each stage is
     * searched once per floor on that degree (the degrees a stage of n
     * devices can have, n's divisors, up to the largest candidate's: a floor
     * above leaves none) and keeps the best. */
    int max_dp = 1;
    for (int q = 0; q < t->n_strategies; q++)
        if (share_of(&t->strategies[q]) > max_dp) max_dp = share_of(&t->strategies[q]);
    int64_t floors[MAX_DIVISORS], n = t->n_strategies ? strategy_stage_devices(&t->strategies[0]) : 1;
    int n_floors = divisors_upto(n, max_dp, floors);
    bool cp = has_left_out(t, LEAVE_CP), ul = has_left_out(t, LEAVE_UL);
    for (int k = 0; k < pp; k++) {
        int64_t in_flight = schedule == SCHED_GPIPE ? m : (pp - k < m ? pp - k : m);
        out->in_flight[k] = in_flight;
        /* a tied head in another stage than the embedding keeps a copy of the table */
        int ke = t->tied_head >= 0 ? stage_of(start, pp, t->tied_emb) : -1;
        int kh = t->tied_head >= 0 ? stage_of(start, pp, t->tied_head) : -1;
        bool copy = ke != kh, same = t->tied_head >= 0 && !copy && k == ke;
        StageResult r = {0};
        for (int f = 0; f < LEAVE_ALL * n_floors; f++) {
            int64_t min_dp = floors[f / LEAVE_ALL];
            /* and once more without checkpointing where that frees reserve:
             * a plan that does not checkpoint need not hold the checkpoint
             * area its candidates that do would take; likewise without
             * context parallelism, whose ring buffers at long sequences
             * would crowd out the plans without it, and without Ulysses,
             * whose all-to-all buffers and whole-sequence copies would
             * (gpt-tiny on 4 ranks at 3 MiB found no plan with them in);
             * and with context parallelism alone, whose plans need not hold
             * the score gradient of attention over whole sequences that the
             * others' would (a 2,048-token decoder on 2 devices: 22 MiB with
             * CP, refused at 32 MiB with the others in) */
            w->leave = f % LEAVE_ALL;
            if (((w->leave & LEAVE_CP) && !cp) || ((w->leave & LEAVE_UL) && !ul)) continue;
            if ((w->leave & LEAVE_NOCP) && (!cp || (w->leave & (LEAVE_CP | LEAVE_UL)))) continue;
            if ((w->leave & LEAVE_CKPT) && !ckpt_area_matters(t, start[k], start[k + 1], (int)min_dp, w->leave, budget))
                continue;
            StageResult q =
                stage_dp(w, t, start[k], start[k + 1], in_flight, k > 0, k < pp - 1,
                         copy && (k == ke || k == kh) ? t->tied_sum_bytes : 0, copy && k == kh, (int)min_dp, budget,
                         min_memory, !min_memory && r.ok && r.time < limit ? r.time : limit, w->pick);
            /* a tied head in the embedding's stage: whether it keeps a copy
             * depends on both layers' strategies, so it is added after each
             * DP, and a DP's plan it pushes over the budget gives way to
             * another floor's or pass's (the one without Ulysses keeps the
             * head in the embedding's layout where that fits) */
            if (q.ok && same) q.mem += same_stage_tied_copy(t, w->pick), q.ok = q.mem <= budget;
            if (q.ok && (!r.ok || (min_memory ? q.mem < r.mem : q.time < r.time))) {
                r = q;
                memcpy(choice + start[k], w->pick + start[k], sizeof *choice * (size_t)(start[k + 1] - start[k]));
            }
        }
        w->leave = 0;
        if (!r.ok) return false;
        double p2p = k < pp - 1 ? t->p2p_s[start[k + 1] - 1] : 0, mb = r.mb_time + p2p;
        sum_mb += mb, sum_p2p += p2p;
        if (mb > max_mb) max_mb = mb;
        if (r.step_time > max_step) max_step = r.step_time;
        if (r.compute > max_compute) max_compute = r.compute;
        sum_compute += r.compute;
        out->stage_mem[k] = r.mem;
        double calls = r.calls + (k < pp - 1 ? (double)m : 0) + (k > 0 ? (double)m : 0);
        if (k == 0 || calls > out->calls) out->calls = calls;
    }
    for (int k = 0; k < pp; k++)
        if (out->stage_mem[k] > out->peak) out->peak = out->stage_mem[k];
    /* 1F1B and GPipe share the bubble: (m - 1) micro-batches at the pace of
     * the slowest stage, plus one pass through every stage (Narayanan et al.
     * 2021, section 2.2); then the gradient sync not hidden by backward. */
    out->step = (double)(m - 1) * max_mb + sum_mb + max_step;
    out->compute = (double)m * max_compute;
    out->bubble = sum_mb - max_mb;
    out->comm = out->step - out->compute - out->bubble;
    one_device_step(t, pp, sum_mb, sum_p2p, sum_compute, max_step, out);
    return true;
}

/* A stage's memory under interleaving: each of its chunks' layers with that
 * chunk's held micro-batches (and a tied head's copy), the buffers its layers
 * share once (the largest any of them needs: working space, checkpoint area,
 * ZeRO-3 buffers, three activation-sized ones), the tokens and targets of its
 * most-held chunk's micro-batches, the losses, and each chunk's pipe buffers,
 * one per held micro-batch at each end that sends. What the program keeps. */
static int64_t interleaved_stage_mem(const CostTable *t, int pp, int v, int k, const int *start, const int64_t *held,
                                     const int *choice) {
    int n = t->n_strategies, C = pp * v;
    int64_t mem = 0, work = 0, ckpt = 0, shard = 0, scatter = 0, stream = 0, slots = 0;
    for (int c = k; c < C; c += pp) {
        int64_t h = held[c];
        if (h > slots) slots = h;
        for (int i = start[c]; i < start[c + 1]; i++) {
            const LayerCost *x = &t->cost[(size_t)i * n + choice[i]];
            mem += layer_mem(x, h) + (i == t->tied_head ? t->tied_copy_bytes[choice[i]] : 0);
            if (x->work_bytes > work) work = x->work_bytes;
            if (x->ckpt_bytes > ckpt) ckpt = x->ckpt_bytes;
            if (x->shard_bytes > shard) shard = x->shard_bytes;
            if (x->scatter_bytes > scatter) scatter = x->scatter_bytes;
            if (x->stream_bytes > stream) stream = x->stream_bytes;
        }
        if (c > 0) mem += h * t->cost[(size_t)start[c] * n + choice[start[c]]].stream_bytes;
        if (c < C - 1) mem += h * t->cost[(size_t)(start[c + 1] - 1) * n + choice[start[c + 1] - 1]].stream_out_bytes;
    }
    bool tied = t->tied_head >= 0 && (k == 0 || k == pp - 1); /* the embedding's and the head's stages */
    return mem + work + ckpt + shard + scatter + 3 * stream + slots * t->token_bytes + t->loss_bytes +
           (tied ? t->tied_sum_bytes : 0);
}

/* A lower bound on the step of this partition into chunks, before any DP:
 * each layer at its fastest strategy, no resharding, no p2p, in the step's
 * formula (try_interleaved); stage_mb and stage_step are scratch. */
static double interleaved_bound(const CostTable *t, int pp, int v, const int *start, double *stage_mb,
                                double *stage_step) {
    int n = t->n_strategies;
    double sum = 0, max_mb = 0, max_step = 0;
    for (int k = 0; k < pp; k++) stage_mb[k] = stage_step[k] = 0;
    for (int c = 0; c < pp * v; c++)
        for (int i = start[c]; i < start[c + 1]; i++) {
            double mb = INFINITY, step = INFINITY;
            for (int q = 0; q < n; q++) {
                const LayerCost *x = &t->cost[(size_t)i * n + q];
                if (x->mb_s < mb) mb = x->mb_s;
                if (x->step_s < step) step = x->step_s;
            }
            stage_mb[c % pp] += mb, stage_step[c % pp] += step, sum += mb;
        }
    for (int k = 0; k < pp; k++) {
        if (stage_mb[k] > max_mb) max_mb = stage_mb[k];
        if (stage_step[k] > max_step) max_step = stage_step[k];
    }
    return (double)t->micro_batches * max_mb + (sum - max_mb) / v + max_step;
}

/* Cost one interleaved (pp, v, m, partition into pp v chunks) choice: chunk
 * c on stage c mod pp, each chunk's strategies by the stage DP, then each
 * stage's memory over its chunks against the budget. The step (Narayanan et
 * al. 2021, section 2.2.2): m micro-batches at the pace of the slowest
 * stage (its chunks' times and the p2p after each, v per micro-batch where
 * 1F1B sends one), plus a bubble of one pass through every chunk less the
 * slowest stage's, divided by v ((pp - 1) / (v m) of the ideal step when
 * balanced), but no less than pp - 1 passes through the slowest chunk (with
 * chunks of unequal time the fill waits on it: the event simulation of
 * passes/timeline.c ran up to 10% longer than the first term alone), then
 * the gradient sync not hidden by backward. */
static bool try_chunks(Workspace *w, const CostTable *t, int pp, int v, const int *start, int64_t budget,
                       bool min_memory, double limit, int *choice, Candidate *out) {
    int64_t m = t->micro_batches;
    int C = pp * v;
    if (t->one_device) limit *= pp; /* as try_partition */
    double *stage_mb = w->sums, *stage_step = stage_mb + pp, *stage_compute = stage_step + pp,
           *stage_calls = stage_compute + pp, sum_mb = 0, max_chunk = 0, sum_p2p = 0;
    if (interleaved_bound(t, pp, v, start, stage_mb, stage_step) > limit * SLACK) return false;
    for (int k = 0; k < pp; k++) {
        stage_mb[k] = stage_step[k] = stage_compute[k] = stage_calls[k] = 0;
        schedule_interleaved_held(pp, v, k, m, w->held + k * v);
        for (int j = 0; j < v; j++) out->in_flight[j * pp + k] = w->held[k * v + j];
    }
    for (int c = 0; c < C; c++) {
        int k = c % pp;
        StageResult r = stage_dp(w, t, start[c], start[c + 1], out->in_flight[c], c > 0, c < C - 1, 0,
                                 c == C - 1 && t->tied_head >= 0, 1, budget, min_memory, limit, choice);
        if (!r.ok) return false;
        double p2p = c < C - 1 ? t->p2p_s[start[c + 1] - 1] : 0, mb = r.mb_time + p2p;
        sum_mb += mb, sum_p2p += p2p;
        if (mb > max_chunk) max_chunk = mb;
        stage_mb[k] += mb, stage_step[k] += r.step_time, stage_compute[k] += r.compute;
        stage_calls[k] += r.calls + (c < C - 1 ? (double)m : 0) + (c > 0 ? (double)m : 0);
    }
    double max_mb = 0, max_step = 0, max_compute = 0, sum_compute = 0;
    out->peak = 0;
    for (int k = 0; k < pp; k++) {
        out->stage_mem[k] = interleaved_stage_mem(t, pp, v, k, start, out->in_flight, choice);
        if (out->stage_mem[k] > budget) return false;
        if (out->stage_mem[k] > out->peak) out->peak = out->stage_mem[k];
        if (stage_mb[k] > max_mb) max_mb = stage_mb[k];
        if (stage_step[k] > max_step) max_step = stage_step[k];
        if (stage_compute[k] > max_compute) max_compute = stage_compute[k];
        sum_compute += stage_compute[k];
        if (k == 0 || stage_calls[k] > out->calls) out->calls = stage_calls[k];
    }
    out->bubble = (sum_mb - max_mb) / v;
    if ((pp - 1) * max_chunk > out->bubble) out->bubble = (pp - 1) * max_chunk;
    out->step = (double)m * max_mb + out->bubble + max_step;
    out->compute = (double)m * max_compute;
    out->comm = out->step - out->compute - out->bubble;
    one_device_step(t, pp, sum_mb, sum_p2p, sum_compute, max_step, out);
    return true;
}

/* try_chunks with every candidate, then (where the table has Ulysses) once
 * more without Ulysses, whose all-to-all buffers and whole-sequence copies
 * in each chunk's reserve would crowd out the plans without it (as
 * try_partition's passes); the better of the two, into choice and *out. */
static bool try_interleaved(Workspace *w, const CostTable *t, int pp, int v, const int *start, int64_t budget,
                            bool min_memory, double limit, int *choice, Candidate *out) {
    bool ok = try_chunks(w, t, pp, v, start, budget, min_memory, limit, choice, out);
    if (!has_left_out(t, LEAVE_UL)) return ok;
    int L = t->n_layers, C = pp * v;
    Candidate alt = *out;
    int *pick = malloc((size_t)L * sizeof *pick);
    alt.stage_mem = malloc((size_t)pp * sizeof *alt.stage_mem);
    alt.in_flight = malloc((size_t)C * sizeof *alt.in_flight);
    if (!pick || !alt.stage_mem || !alt.in_flight) die("out of memory");
    w->leave = LEAVE_UL;
    double bound = ok && !min_memory ? out->step : limit;
    bool better = try_chunks(w, t, pp, v, start, budget, min_memory, bound, pick, &alt) &&
                  (!ok || (min_memory ? alt.peak < out->peak : alt.step < out->step));
    w->leave = 0;
    if (better) {
        memcpy(choice, pick, (size_t)L * sizeof *pick);
        memcpy(out->stage_mem, alt.stage_mem, (size_t)pp * sizeof *alt.stage_mem);
        memcpy(out->in_flight, alt.in_flight, (size_t)C * sizeof *alt.in_flight);
        int64_t *sm = out->stage_mem, *inf = out->in_flight;
        *out = alt, out->stage_mem = sm, out->in_flight = inf;
    }
    free(pick), free(alt.stage_mem), free(alt.in_flight);
    return ok || better;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* The distinct strategies of a fixed plan, and each layer's index among them. */
static StrategySet fixed_strategies(const Plan *p, int L, int *force, Arena *a) {
    StrategySet sub = {.items = arena_alloc(a, (size_t)L * sizeof *sub.items)};
    for (int i = 0; i < L; i++) {
        for (force[i] = 0; force[i] < sub.n && !strategy_equal(&sub.items[force[i]], &p->layer[i]);)
            force[i]++;
        if (force[i] == sub.n) sub.items[sub.n++] = p->layer[i];
    }
    return sub;
}

/* The strategies one pipeline degree may use: the pruned set's, or the
 * request's uniform strategy alone. */
static StrategySet strategies_for(const SearchRequest *req, const StrategySet *all, int pp, Arena *a) {
    StrategySet sub = {0};
    if (req->uniform) {
        if (req->uniform->pp == pp) {
            sub.items = arena_alloc(a, 2 * sizeof *sub.items);
            sub.items[sub.n++] = *req->uniform;
            if (req->ckpt_every || req->uniform->ckpt) { /* both, and force_ckpt says which layer takes which */
                sub.items[0].ckpt = false;
                sub.items[sub.n] = sub.items[0];
                sub.items[sub.n++].ckpt = true;
            }
        }
        return sub;
    }
    sub.items = arena_alloc(a, (size_t)all->n * sizeof *sub.items);
    for (int k = 0; k < all->n; k++)
        if (all->items[k].pp == pp) sub.items[sub.n++] = all->items[k];
    return sub;
}

/* Drop from set the strategies whose TP degree some layer of the model
 * does not split (ir/runtime_layer.c; with any device count, 3 or 6 may not
 * divide the heads), or whose sequence parallelism, Ulysses degree or
 * context parallelism some layer does not run: the program could not run
 * them. Ulysses stays only where the request lets it in
 * (SearchRequest.ulysses). */
static void keep_splitting_tp(const Graph *g, bool ulysses, StrategySet *set) {
    int n = 0;
    for (int k = 0; k < set->n; k++) {
        const Strategy *s = &set->items[k];
        int u = strategy_ulysses(s);
        if (graph_tp_splits(g, s->tp) && (!strategy_sp(s) || graph_sp_splits(g, s->tp)) &&
            (u == 1 || (ulysses && graph_ulysses_splits(g, s->tp, u))) &&
            (strategy_cp(s) == 1 || graph_cp_splits(g, s->cp)))
            set->items[n++] = *s;
    }
    set->n = n;
}

/* Drop the context-parallel strategies from set: a Galvatron
 * galvatron_config has no field for them. */
static void drop_context_parallel(StrategySet *set) {
    int n = 0;
    for (int k = 0; k < set->n; k++)
        if (strategy_cp(&set->items[k]) == 1) set->items[n++] = set->items[k];
    set->n = n;
}

/* Is one sequence too long for the model to hold without splitting it
 * (passes.h)? Context parallelism is for sequences where even one sample's activations
 * do not fit a device: the search tries it when one sample's activations of
 * all the layers (the shape pass's figure), split over a node's TP group,
 * exceed a device's memory. Elsewhere it would only add the ring's traffic
 * to what DP over as many ranks does, and its strategies (a layout each
 * TP x CP pair, so the DP's reshard classes grow with them) would slow the
 * search: LLaMA-2-7B at 4k on 8 devices, 0.19 s, took 0.47 s with them.
 * pass_search also tries them when nothing fits without them. */
bool search_tries_cp(const Spec *spec, const HwProfile *hw, int64_t devices) {
    int64_t node = spec->cluster->devices_per_node, tp = node > 0 && node < devices ? node : devices;
    return (double)spec->graph->total_act_bytes / (double)tp > (double)hw->memory;
}

/* With several micro-batches a ZeRO-3 layer may also accumulate its whole
 * gradient and reduce-scatter it once a step (more memory, less traffic):
 * the set's ZeRO-3 strategies once more in that mode, so the DP picks per
 * layer. One micro-batch makes the two modes one. */
static StrategySet with_zero3_once(const StrategySet *sub, int64_t m, Arena *a) {
    StrategySet out = *sub;
    if (m < 2) return out;
    out.items = arena_alloc(a, 2 * (size_t)sub->n * sizeof *out.items);
    memcpy(out.items, sub->items, (size_t)sub->n * sizeof *out.items);
    for (int k = 0; k < sub->n; k++)
        if (strategy_zero(&sub->items[k]) == 3 && !sub->items[k].zero3_once) {
            out.items[out.n] = sub->items[k];
            out.items[out.n++].zero3_once = true;
        }
    return out;
}

/* One (pp, m) to try, and a lower bound on any plan's step time there. */
typedef struct Trial {
    int pp, v; /* v: chunks a stage (interleaved 1F1B when 2 or more) */
    int64_t m;
    double bound;
    int order; /* (pp, m) order, for ties */
} Trial;

static int by_bound(const void *x, const void *y) {
    const Trial *a = x, *b = y;
    if (a->bound != b->bound) return a->bound < b->bound ? -1 : 1;
    return a->order - b->order;
}

/* A step of pp stages and m micro-batches takes (m - 1) max_k mb_k + sum_k
 * mb_k + max_k step_k (try_partition), at least ((m - 1) / pp + 1) sum_k
 * mb_k + sum_k step_k / pp; interleaved over v chunks a stage, with mb_k a
 * stage's chunks' sum (try_interleaved), at least (m + (pp - 1) / v) / pp
 * sum_k mb_k + sum_k step_k / pp; and each stage's sums are at least the
 * sums of its layers' cheapest strategies, resharding, p2p and memory aside. */
static double lower_bound(const CostTable *t, int pp, int v) {
    /* interleaved, m max_k mb_k + (sum_k mb_k - max_k mb_k) / v grows with max_k mb_k >= sum_k mb_k / pp:
     * at least (m + (pp - 1) / v) / pp of the sum; v = 1 is 1F1B's (m - 1) / pp + 1 */
    double per_mb = ((double)t->micro_batches + (t->one_device ? 0 : (pp - 1.0) / v)) / pp, sum = 0;
    for (int i = 0; i < t->n_layers; i++) {
        double least = INFINITY;
        for (int k = 0; k < t->n_strategies; k++) {
            const LayerCost *c = &t->cost[(size_t)i * t->n_strategies + k];
            double x = per_mb * c->mb_s + c->step_s / pp;
            if (x < least) least = x;
        }
        sum += least;
    }
    return sum;
}

/* Does the search try Ulysses strategy s on micro-batches of `samples`?
 * Only where samples run out: when its u x dp replicas could split the
 * micro-batch into whole samples, ZeRO-3 DP over them (tp 1, the same
 * checkpointing) is never worse in the cost model: the same GEMMs on the
 * same tokens a rank, the same gradient reduction and sharded state, no
 * all-to-alls, fewer kept activations (no whole-sequence copies), a smaller
 * working space, and reshards to any neighbour at most Ulysses's (no
 * sequence to gather). unit.search's brute force, Ulysses in everywhere,
 * holds the search to it. */
static bool ulysses_tried(const Strategy *s, int64_t samples) {
    return strategy_ulysses(s) == 1 || samples % strategy_replicas(s) != 0;
}

/* The layouts of pipeline degree pp whose DP ranks get whole samples of a
 * micro-batch of `samples` (TP 2 x DP 4 at batch 16 runs 4 micro-batches of
 * 4, 1 a rank), Ulysses only where ulysses_tried (a uniform plan's as it
 * is), into *fit; false when there are none. */
static bool layouts_for(const SearchRequest *req, const StrategySet *all, int pp, int64_t samples, Arena *a,
                        StrategySet *fit) {
    StrategySet sub = strategies_for(req, all, pp, a);
    fit->n = 0;
    for (int k = 0; k < sub.n; k++)
        if (strategy_splits(&sub.items[k], samples) && (req->uniform || ulysses_tried(&sub.items[k], samples)))
            fit->items[fit->n++] = sub.items[k];
    return fit->n > 0;
}

/* The strategies to cost for pp stages and m micro-batches, into *out: a
 * fixed plan's (--plan; force says which layer takes which), or the layouts
 * whose DP ranks get whole samples, with ZeRO-3's accumulate-once variant
 * beside each ZeRO-3 one when the search chooses (costs holds them). False
 * when there are none. */
static bool set_for(const SearchRequest *req, const StrategySet *all, int pp, int64_t m, int64_t batch, int L,
                    int *force, Arena *a, Arena *costs, StrategySet *fit, StrategySet *out) {
    if (req->fixed) return (*out = fixed_strategies(req->fixed, L, force, a)).n > 0;
    if (!layouts_for(req, all, pp, batch / m, a, fit)) return false;
    *out = req->uniform ? *fit : with_zero3_once(fit, m, costs);
    return true;
}

/* Does the search try v chunks a stage for (pp, m)? v = 1 unless the
 * schedule is interleaved or left open; interleaving (Narayanan et al. 2021)
 * takes a pipeline, m a multiple of pp (Megatron-LM's rule), a non-empty
 * chunk each (pp v layers at least), and here v up to MAX_VPP. A uniform
 * plan takes its own v; a fixed plan (Galvatron's) is never interleaved. */
static bool vpp_allowed(const SearchRequest *req, int sched, int pp, int v, int64_t m, int L) {
    if (req->uniform) return req->vpp > 1 ? v == req->vpp && pp > 1 && m % pp == 0 && pp * v <= L : v == 1;
    if (v == 1) return sched != SCHED_INTERLEAVED || pp == 1;
    if (req->fixed || req->flat_pipeline || (sched != SCHED_AUTO && sched != SCHED_INTERLEAVED)) return false;
    return pp > 1 && m % pp == 0 && (int64_t)pp * v <= L;
}

/* The search, with the context-parallel strategies or without them. */
static bool search(const Spec *spec, const HwProfile *hw, const SearchRequest *req, bool cp, Arena *a, Plan *plan) {
    double t0 = now_ms();
    const Graph *g = spec->graph;
    const PlanHints *h = &spec->hints;
    int L = g->n_layers;
    int64_t batch = spec->train->global_batch, devices = req->devices;
    /* the allocator's reserve comes off the device's memory (an explicit
     * budget, as the smallest-memory search's, is taken as it is) */
    int64_t reserve = spec->cluster->reserve < hw->memory ? spec->cluster->reserve : 0;
    int64_t budget = req->budget ? req->budget : hw->memory - reserve;
    memset(plan, 0, sizeof *plan);
    plan->budget = budget;
    plan->reserve = reserve;
    StrategySet all;
    if (!pass_prune(devices, true, req->uniform ? NULL : h, a, &all)) return false;
    keep_splitting_tp(g, req->ulysses, &all);
    if (!cp) drop_context_parallel(&all);

    int sched = req->fixed ? req->fixed->schedule : req->schedule ? req->schedule : h->schedule;
    int schedule = sched == SCHED_GPIPE ? SCHED_GPIPE : SCHED_1F1B; /* for v = 1 */
    int64_t fixed_m = req->fixed           ? req->fixed->micro_batches
                      : req->micro_batches ? req->micro_batches
                      : req->uniform       ? 0
                                           : h->micro_batches;
    int *choice = arena_alloc(a, (size_t)L * sizeof *choice);
    int *start = arena_alloc(a, (size_t)(L + 2) * sizeof *start);
    int *by_time = arena_alloc(a, (size_t)(L + 2) * sizeof *by_time);
    double *w_time = arena_alloc(a, (size_t)L * sizeof *w_time);
    double *w_mem = arena_alloc(a, (size_t)L * sizeof *w_mem);
    for (int i = 0; i < L; i++) {
        w_time[i] = (double)g->layers[i]->fwd_flops + 1;
        w_mem[i] = (double)g->layers[i]->params * 16 + (double)g->layers[i]->act_bytes;
    }
    Candidate cand = {.stage_mem = arena_alloc(a, (size_t)(L + 1) * sizeof(int64_t)),
                      .in_flight = arena_alloc(a, (size_t)(L + 1) * sizeof(int64_t))};
    Workspace w = {0};
    w.pick = arena_alloc(a, (size_t)(L + 1) * sizeof *w.pick);
    w.held = arena_alloc(a, (size_t)(L + 1) * sizeof *w.held);
    w.sums = arena_alloc(a, 4 * (size_t)(L + 1) * sizeof *w.sums);
    /* checkpointing recomputes transformer layers only; --uniform ...,ckpt
     * checkpoints every one of them, ckpt-every=K the K-th, 2K-th, ... */
    bool *force_ckpt = NULL;
    int every = !req->uniform ? 0 : req->ckpt_every ? req->ckpt_every : req->uniform->ckpt ? 1 : 0;
    if (every) {
        force_ckpt = arena_alloc(a, (size_t)L * sizeof *force_ckpt);
        for (int i = 0, blocks = 0; i < L; i++)
            force_ckpt[i] = layer_recomputes(g->layers[i]->kind) && ++blocks % every == 0;
    }

    int *force = req->fixed ? arena_alloc(a, (size_t)L * sizeof *force) : NULL;
    w.force = force;
    /* every (pp, m) with its lower bound, tried best bound first: once the
     * best plan beats a bound, no later one can win */
    int n_div, n_trials = 0;
    const int64_t *div = strategy_divisors(batch, a, &n_div);
    int n_pp; /* the pipeline degrees: the device count's divisors */
    const int64_t *pps = strategy_divisors(devices, a, &n_pp);
    Trial *trials = arena_alloc(a, (size_t)n_div * n_pp * (MAX_VPP + 1) * sizeof *trials);
    StrategySet fit = {.items = arena_alloc(a, (size_t)(all.n + 2) * sizeof *fit.items)}, sub;
    for (int e = 0; e < n_pp && pps[e] <= L; e++)
        for (int d = 0; d < n_div; d++) {
            int pp = (int)pps[e];
            if ((fixed_m && div[d] != fixed_m) || (req->fixed && pp != req->fixed->pp)) continue;
            CostTable t;
            Arena *costs = arena_new();
            if (set_for(req, &all, pp, div[d], batch, L, force, a, costs, &fit, &sub) &&
                pass_cost(spec, hw, &sub, div[d], costs, &t))
                for (int v = 1; v <= MAX_VPP; v++)
                    if (vpp_allowed(req, sched, pp, v, div[d], L))
                        trials[n_trials++] = (Trial){pp, v, div[d], lower_bound(&t, pp, v), n_trials};
            arena_free(costs);
        }
    if (!req->min_memory) qsort(trials, (size_t)n_trials, sizeof *trials, by_bound);
    /* A first pass at a coarse memory unit (1/64 of the budget; each layer
     * rounded up to it, so what fits there fits at 1 MiB) finds a good step
     * in a fraction of the time; the exact pass then drops every partial
     * plan slower than that. The plan is the exact pass's alone, the same
     * as without the first pass. (One pass at 1/64 did the least work of
     * 1/16 to 1/256 and of two-pass cascades on LLaMA-2-7B, GPT-2 XL and
     * GPT-3 under loose and tight budgets.) */
    int64_t unit[2], n_units = 0;
    if (!req->min_memory && !req->fixed && budget / COARSE > 2 * MIB) unit[n_units++] = budget / COARSE;
    unit[n_units++] = MIB;
    double estimate = INFINITY;
    for (int pass = 0; pass < n_units; pass++) {
        for (int q = 0; q < n_trials; q++) {
            int pp = trials[q].pp, v = trials[q].v, C = pp * v;
            int64_t m = trials[q].m;
            double limit = req->min_memory                          ? INFINITY
                           : plan->found && plan->step_s < estimate ? plan->step_s
                                                                    : estimate;
            if (trials[q].bound > limit * SLACK) break;
            w.unit = unit[pass];
            CostTable t;
            Arena *costs = arena_new(); /* one (pp, m) at a time */
            set_for(req, &all, pp, m, batch, L, force, a, costs, &fit, &sub);
            pass_cost(spec, hw, &sub, m, costs, &t);
            t.force_ckpt = force_ckpt;
            partition(w_time, L, C, by_time);
            for (int part = 0; part < (req->fixed ? 1 : 2); part++) {
                partition(part == 0 ? w_time : w_mem, L, C, start);
                if (req->fixed) memcpy(start, req->fixed->stage_start, (size_t)(pp + 1) * sizeof *start);
                if (part == 1 && memcmp(by_time, start, (size_t)(C + 1) * sizeof *start) == 0) continue;
                if (v > 1 ? !try_interleaved(&w, &t, pp, v, start, budget, req->min_memory, limit, choice, &cand)
                          : !try_partition(&w, &t, pp, start, schedule, budget, req->min_memory, limit, choice, &cand))
                    continue;
                if (pass < n_units - 1) {
                    if (cand.step < limit) limit = estimate = cand.step;
                    continue;
                }
                double key = req->min_memory ? (double)cand.peak : cand.step;
                double best = req->min_memory ? (double)plan->peak : plan->step_s;
                /* ties go to the smaller pp, then m, then v, then the first partition */
                bool earlier = pp < plan->pp || (pp == plan->pp && m < plan->micro_batches) ||
                               (pp == plan->pp && m == plan->micro_batches && v < plan->vpp);
                if (plan->found && (key > best || (key == best && !earlier))) continue;
                plan->found = true;
                plan->pp = pp;
                plan->micro_batches = m;
                plan->schedule = v > 1 ? SCHED_INTERLEAVED : schedule;
                plan->vpp = v;
                plan->step_s = cand.step;
                plan->compute_s = cand.compute;
                plan->comm_s = cand.comm;
                plan->bubble_s = cand.bubble;
                plan->peak = cand.peak;
                plan->calls = cand.calls;
                plan->stage_start = arena_alloc(a, (size_t)(C + 1) * sizeof *plan->stage_start);
                memcpy(plan->stage_start, start, (size_t)(C + 1) * sizeof *start);
                plan->stage_mem = arena_alloc(a, (size_t)pp * sizeof *plan->stage_mem);
                memcpy(plan->stage_mem, cand.stage_mem, (size_t)pp * sizeof *plan->stage_mem);
                plan->in_flight = arena_alloc(a, (size_t)C * sizeof *plan->in_flight);
                memcpy(plan->in_flight, cand.in_flight, (size_t)C * sizeof *plan->in_flight);
                plan->layer = arena_alloc(a, (size_t)L * sizeof *plan->layer);
                for (int i = 0; i < L; i++)
                    plan->layer[i] = sub.items[choice[i]];
            }
            arena_free(costs);
        }
    }
    workspace_free(&w);
    plan->search_ms = now_ms() - t0;
    return true;
}

/* Context parallelism joins the search where one sequence is too long
 * (search_tries_cp), where nothing fits without it, and in the search for
 * the smallest plan; never for a Galvatron config, which cannot say it. */
bool pass_search(const Spec *spec, const HwProfile *hw, const SearchRequest *req, Arena *a, Plan *plan) {
    bool cp = !req->flat_pipeline && (req->min_memory || search_tries_cp(spec, hw, req->devices));
    if (!search(spec, hw, req, cp, a, plan)) return false;
    if (plan->found || cp || req->flat_pipeline) return true;
    double ms = plan->search_ms;
    if (!search(spec, hw, req, true, a, plan)) return false;
    plan->search_ms += ms;
    return true;
}
