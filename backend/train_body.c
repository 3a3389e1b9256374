/* ---- below: the same for every plan (galvc's backend/train_body.c) ---- */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Options {
    long steps;
    unsigned long long seed;
    const char *data, *log, *dump;
    float lr;
} Options;

/* An error every rank finds at once: rank 0 says it, then every rank stops
 * (the barrier lets the message out before the job is torn down). */
static void stop_all(GrtComm *world, const char *msg, int status) {
    if (grt_rank(world) == 0) {
        fprintf(stderr, "galvrt: %s\n", msg);
        fflush(stderr);
    }
    grt_barrier(world);
    grt_abort(NULL, status);
}

/* Every rank reads the same command line; a bad one stops every rank. */
static Options parse_options(GrtComm *world, int argc, char **argv) {
    Options o = {DEFAULT_STEPS, 1234, NULL, NULL, NULL, LR};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (!strcmp(a, "--steps") && v) o.steps = strtol(v, &end, 10), i++;
        else if (!strcmp(a, "--seed") && v) o.seed = strtoull(v, &end, 10), i++;
        else if (!strcmp(a, "--lr") && v) o.lr = strtof(v, &end), i++;
        else if (!strcmp(a, "--data") && v) o.data = v, i++;
        else if (!strcmp(a, "--log") && v) o.log = v, i++;
        else if (!strcmp(a, "--dump") && v) o.dump = v, i++;
        else {
            char msg[512];
            snprintf(msg, sizeof msg,
                     "unknown or incomplete option '%s' (use --steps K, --seed S, --data FILE, --lr X, --log FILE.jsonl, "
                     "--dump FILE)", a);
            stop_all(world, msg, 2);
        }
        if (end && *end) {
            char msg[256];
            snprintf(msg, sizeof msg, "bad value '%s' for %s", v, a);
            stop_all(world, msg, 2);
        }
    }
    if (o.steps < 0) stop_all(world, "--steps must not be negative", 2);
    return o;
}

/* ---- the model on this rank ------------------------------------------------- */

enum { TAG_FWD = 1, TAG_BWD = 2, TAG_RESHARD_FWD = 3, TAG_RESHARD_BWD = 4 };
enum { HEAD = N_LAYERS - 1 };

/* One layer of this rank's stage: its shard, where it runs, how its input
 * arrives and its gradient leaves. */
typedef struct Layer {
    GrtLayer *g;          /* the runtime's layer (Model.grt[i]) */
    GrtLayout lay;
    GrtComm *dp;          /* its DP group (NULL when dp = 1) */
    int tp_index, dp_index;
    int first, B;         /* its sequences of each micro-batch: [first, first + B) */
    int sdp;              /* ZeRO-3: parameters, gradients and Adam states split over the DP group */
    size_t n;             /* floats of this rank's TP shard of the layer */
    size_t chunk;         /* sdp: floats of each DP rank's part (n rounded up, split dp ways) */
    size_t stored, off;   /* floats this rank stores (n, or chunk), and where in the model's arrays */
    GrtReshard *to_next;  /* forward: its output into the next layer's layout (NULL: the same) */
    GrtReshard *to_prev;  /* backward: its input's gradient into the previous layer's layout */
} Layer;

typedef struct Model {
    int rank, stage, lo, hi; /* this rank runs layers [lo, hi) of stage `stage` */
    int slots;               /* micro-batches whose activations it holds at once */
    Layer layer[N_LAYERS];
    GrtLayer grt[N_LAYERS];
    /* what this rank stores: one allocation each, every layer a slice */
    float *params, *grads, *m, *v;
    size_t n_stored;
    /* ZeRO-3's working copies: a layer's whole shard, gathered before its
     * forward and again before its backward, and its gradient before the
     * reduce-scatter */
    float *full_p, *full_g, *part;
    /* activations: in[(i - lo) * slots + s] is layer i's input for slot s */
    float **in;
    float *out_tmp, *losses;
    float *dA, *dB;          /* backward: the gradient flowing down the stage */
    float **send, **dsend;   /* per slot: the stage's output, and its input's gradient, in flight */
    GrtRequest ***send_req, ***dsend_req;
    int *n_send, *n_dsend;
    GrtReshard *recv_fwd, *send_fwd, *recv_bwd, *send_bwd; /* across the stage's boundaries */
    int32_t **tokens, **targets; /* per slot: the whole micro-batch */
    int tied_copy;           /* the tied head keeps its own copy of the table, summed with the embedding's */
    GrtComm *tied;           /* the ranks that hold either copy */
    double loss;
} Model;

static int stage_of(int i) {
    int k = 0;
    while (i >= stage_start[k + 1]) k++;
    return k;
}

static GrtLayout layout_of(int i) {
    GrtLayout L = {stage_of(i) * STAGE_RANKS, placement[i].tp, placement[i].dp, placement[i].consec};
    return L;
}

static int same_layout(int i, int j) {
    return stage_of(i) == stage_of(j) && placement[i].tp == placement[j].tp && placement[i].consec == placement[j].consec;
}

static float *IN(Model *M, int i, int s) { return M->in[(size_t)(i - M->lo) * M->slots + s]; }

/* The TP and DP groups of every layout the plan uses, made in the same order
 * on every rank (each split is collective over the world). */
static void make_groups(GrtComm *world, int rank, GrtComm *tp_of[], GrtComm *dp_of[]) {
    GrtComm *tp_made[32][2] = {{0}}, *dp_made[32][2] = {{0}};
    int made[32][2] = {{0}};
    for (int i = 0; i < N_LAYERS; i++) {
        int lg = 0;
        while ((1 << lg) < placement[i].tp) lg++;
        int c = placement[i].consec;
        if (!made[lg][c]) {
            made[lg][c] = 1;
            GrtLayout L = {rank / STAGE_RANKS * STAGE_RANKS, placement[i].tp, placement[i].dp, c};
            int color = rank / STAGE_RANKS * STAGE_RANKS;
            int t = grt_layout_tp_index(&L, rank), d = grt_layout_dp_index(&L, rank);
            tp_made[lg][c] = grt_comm_split(world, color + d, t);
            dp_made[lg][c] = grt_comm_split(world, color + t, d);
        }
        tp_of[i] = placement[i].tp > 1 ? tp_made[lg][c] : NULL;
        dp_of[i] = placement[i].dp > 1 ? dp_made[lg][c] : NULL;
    }
}

/* Cut this rank's shard of every layer of its stage, allocate, initialize. */
static void build_model(Model *M, GrtComm *world, unsigned long long seed) {
    int rank = grt_rank(world);
    GrtComm *tp_of[N_LAYERS], *dp_of[N_LAYERS];
    make_groups(world, rank, tp_of, dp_of);
    M->rank = rank;
    M->stage = rank / STAGE_RANKS;
    M->lo = stage_start[M->stage];
    M->hi = stage_start[M->stage + 1];
    M->slots = in_flight[M->stage];
    M->tied_copy = TIED_TO >= 0 && layer_specs[HEAD].tied &&
                   (!same_layout(TIED_TO, HEAD) || placement[TIED_TO].sdp || placement[HEAD].sdp);
    int holds_table = M->tied_copy && (M->stage == stage_of(TIED_TO) || M->stage == stage_of(HEAD));
    GrtComm *tied = grt_comm_split(world, holds_table, rank);
    M->tied = holds_table ? tied : NULL;

    size_t full = 0, act = 0;
    M->n_stored = 0;
    for (int i = M->lo; i < M->hi; i++) {
        Layer *x = &M->layer[i];
        x->g = &M->grt[i];
        GrtLayerSpec spec = layer_specs[i];
        if (i == HEAD && M->tied_copy) spec.tied = 0; /* its own copy of the table */
        x->lay = layout_of(i);
        x->dp = dp_of[i];
        x->tp_index = grt_layout_tp_index(&x->lay, rank);
        x->dp_index = grt_layout_dp_index(&x->lay, rank);
        x->B = MB / placement[i].dp;
        x->first = x->dp_index * x->B;
        x->sdp = placement[i].sdp && placement[i].dp > 1;
        grt_layer_setup(x->g, &spec, tp_of[i], x->B, SEQ);
        x->g->ckpt = placement[i].ckpt && spec.kind == GRT_BLOCK;
        x->n = x->g->n_params;
        x->chunk = (x->n + placement[i].dp - 1) / placement[i].dp;
        x->stored = x->sdp ? x->chunk : x->n;
        x->off = M->n_stored;
        M->n_stored += x->stored;
        if (x->sdp && x->chunk * placement[i].dp > full) full = x->chunk * placement[i].dp;
        if ((size_t)x->B * SEQ * HIDDEN > act) act = (size_t)x->B * SEQ * HIDDEN;
    }
    M->params = grt_alloc(M->n_stored * sizeof(float));
    M->grads = grt_alloc(M->n_stored * sizeof(float));
    M->m = grt_alloc(M->n_stored * sizeof(float));
    M->v = grt_alloc(M->n_stored * sizeof(float));
    if (full) {
        M->full_p = grt_alloc(full * sizeof(float));
        M->full_g = grt_alloc(full * sizeof(float));
        M->part = grt_alloc(full * sizeof(float));
    }
    /* one working space and one checkpoint area for the stage: a layer at a time uses them */
    size_t work = 0, ckpt = 0;
    for (int i = M->lo; i < M->hi; i++) {
        size_t w = grt_layer_work_floats(M->layer[i].g), c = grt_layer_ckpt_floats(M->layer[i].g);
        if (w > work) work = w;
        if (c > ckpt) ckpt = c;
    }
    float *work_area = work ? grt_alloc(work * sizeof(float)) : NULL;
    float *ckpt_area = ckpt ? grt_alloc(ckpt * sizeof(float)) : NULL;
    int blocks = 0;
    for (int i = 0; i < N_LAYERS; i++) blocks += layer_specs[i].kind == GRT_BLOCK;
    for (int i = M->lo; i < M->hi; i++) {
        Layer *x = &M->layer[i];
        if (i == HEAD && layer_specs[i].tied && !M->tied_copy) x->g->tied_to = &M->grt[TIED_TO];
        float *p = x->sdp ? M->full_p : M->params + x->off, *g = x->sdp ? M->full_g : M->grads + x->off;
        grt_layer_bind(x->g, p, g, M->slots, work_area, ckpt_area);
        if (x->sdp) memset(M->full_p, 0, full * sizeof(float));
        /* a tied head's copy starts as the embedding's table does */
        grt_layer_init(x->g, seed, i == HEAD && M->tied_copy ? TIED_TO : i, blocks);
        if (x->sdp) memcpy(M->params + x->off, M->full_p + x->dp_index * x->chunk, x->chunk * sizeof(float));
    }
    /* activations, the micro-batch's tokens, and the transfers between layouts */
    M->in = grt_alloc(sizeof(float *) * (size_t)(M->hi - M->lo) * M->slots);
    for (int i = M->lo; i < M->hi; i++)
        for (int s = 0; s < M->slots; s++)
            M->in[(size_t)(i - M->lo) * M->slots + s] =
                i ? grt_alloc((size_t)M->layer[i].B * SEQ * HIDDEN * sizeof(float)) : NULL;
    M->out_tmp = grt_alloc(act * sizeof(float));
    M->losses = grt_alloc((size_t)MB * SEQ * sizeof(float));
    M->dA = grt_alloc(act * sizeof(float));
    M->dB = grt_alloc(act * sizeof(float));
    M->send = grt_alloc(sizeof(float *) * M->slots);
    M->dsend = grt_alloc(sizeof(float *) * M->slots);
    M->send_req = grt_alloc(sizeof(GrtRequest **) * M->slots);
    M->dsend_req = grt_alloc(sizeof(GrtRequest **) * M->slots);
    M->n_send = grt_alloc(sizeof(int) * M->slots);
    M->n_dsend = grt_alloc(sizeof(int) * M->slots);
    M->tokens = grt_alloc(sizeof(int32_t *) * M->slots);
    M->targets = grt_alloc(sizeof(int32_t *) * M->slots);
    for (int s = 0; s < M->slots; s++) {
        M->tokens[s] = grt_alloc((size_t)MB * SEQ * sizeof(int32_t));
        M->targets[s] = grt_alloc((size_t)MB * SEQ * sizeof(int32_t));
    }
    size_t row = (size_t)SEQ * HIDDEN;
    for (int i = M->lo; i < M->hi; i++) {
        GrtLayout here = layout_of(i);
        if (i + 1 < M->hi && !same_layout(i, i + 1)) {
            GrtLayout next = layout_of(i + 1);
            M->layer[i].to_next = grt_reshard_new(&here, &next, MB, row, rank);
            M->layer[i + 1].to_prev = grt_reshard_new(&next, &here, MB, row, rank);
        }
    }
    if (M->stage > 0) { /* from the previous stage's last layer */
        GrtLayout prev = layout_of(M->lo - 1), here = layout_of(M->lo);
        M->recv_fwd = grt_reshard_new(&prev, &here, MB, row, rank);
        M->send_bwd = grt_reshard_new(&here, &prev, MB, row, rank);
        for (int s = 0; s < M->slots; s++) {
            M->dsend[s] = grt_alloc((size_t)M->layer[M->lo].B * row * sizeof(float));
            M->dsend_req[s] = grt_alloc(sizeof(GrtRequest *) * (size_t)(grt_reshard_sends(M->send_bwd) + 1));
        }
    }
    if (M->stage < PP - 1) { /* to the next stage's first layer */
        GrtLayout here = layout_of(M->hi - 1), next = layout_of(M->hi);
        M->send_fwd = grt_reshard_new(&here, &next, MB, row, rank);
        M->recv_bwd = grt_reshard_new(&next, &here, MB, row, rank);
        for (int s = 0; s < M->slots; s++) {
            M->send[s] = grt_alloc((size_t)M->layer[M->hi - 1].B * row * sizeof(float));
            M->send_req[s] = grt_alloc(sizeof(GrtRequest *) * (size_t)(grt_reshard_sends(M->send_fwd) + 1));
        }
    }
}

static void wait_all(GrtRequest **reqs, int *n) {
    for (int i = 0; i < *n; i++) grt_wait(reqs[i]);
    *n = 0;
}

/* ZeRO-3: the layer's whole shard from its DP group's parts (Rajbhandari et al. 2020). */
static void gather_params(Model *M, Layer *x) { grt_allgather(x->dp, M->params + x->off, M->full_p, x->chunk); }

/* Micro-batch `mb` forward through this rank's layers, on activation slot s. */
static void forward(Model *M, GrtComm *world, int mb, int s) {
    if (M->stage > 0) grt_reshard_recv(M->recv_fwd, world, IN(M, M->lo, s), TAG_FWD);
    for (int i = M->lo; i < M->hi; i++) {
        Layer *x = &M->layer[i];
        grt_layer_use_slot(x->g, s);
        if (x->sdp) gather_params(M, x);
        float *out = i == HEAD ? M->losses : i + 1 == M->hi ? M->send[s] : x->to_next ? M->out_tmp : IN(M, i + 1, s);
        if (out == M->send[s]) wait_all(M->send_req[s], &M->n_send[s]); /* its previous use has left */
        const int32_t *tok = M->tokens[s] + (size_t)x->first * SEQ, *tgt = M->targets[s] + (size_t)x->first * SEQ;
        grt_layer_forward(x->g, i ? IN(M, i, s) : NULL, tok, tgt, out);
        if (i + 1 < M->hi && x->to_next) grt_reshard_run(x->to_next, world, M->out_tmp, IN(M, i + 1, s), TAG_RESHARD_FWD);
    }
    if (M->hi == N_LAYERS && M->layer[HEAD].tp_index == 0) /* the loss, counted once per sequence */
        for (size_t k = 0; k < (size_t)M->layer[HEAD].B * SEQ; k++) M->loss += M->losses[k];
    if (M->stage < PP - 1) M->n_send[s] = grt_reshard_isend(M->send_fwd, world, M->send[s], TAG_FWD, M->send_req[s]);
    (void)mb;
}

/* Micro-batch `mb` backward, from this stage's last layer down; a layer's
 * gradients are reduced over its DP group after the last micro-batch, or
 * reduce-scattered after every one under ZeRO-3. The all-reduce blocks,
 * layer by layer: Open MPI's non-blocking one only progresses inside MPI
 * calls and copies through fresh buffers, so on CPU ranks it is slower. */
static void backward(Model *M, GrtComm *world, int mb, int s) {
    float *dout = M->dA, *din = M->dB;
    if (M->stage < PP - 1) grt_reshard_recv(M->recv_bwd, world, dout, TAG_BWD);
    const float dloss = 1.0f / ((float)GLOBAL_BATCH * SEQ); /* the loss is the mean over every token of the step */
    for (int i = M->hi - 1; i >= M->lo; i--) {
        Layer *x = &M->layer[i];
        grt_layer_use_slot(x->g, s);
        if (x->sdp) {
            gather_params(M, x);
            memset(M->full_g, 0, x->chunk * placement[i].dp * sizeof(float));
        }
        float *dst = din;
        if (i == M->lo && M->stage > 0) {
            wait_all(M->dsend_req[s], &M->n_dsend[s]);
            dst = M->dsend[s];
        }
        if (i) memset(dst, 0, (size_t)x->B * SEQ * HIDDEN * sizeof(float));
        const int32_t *tok = M->tokens[s] + (size_t)x->first * SEQ, *tgt = M->targets[s] + (size_t)x->first * SEQ;
        grt_layer_backward(x->g, i ? IN(M, i, s) : NULL, tok, tgt, dout, dloss, dst);
        if (x->sdp) {
            grt_reduce_scatter(x->dp, M->full_g, M->part, x->chunk);
            float *g = M->grads + x->off;
            for (size_t k = 0; k < x->chunk; k++) g[k] += M->part[k];
        } else if (x->dp && mb == MICRO_BATCHES - 1 && x->n) {
            /* (a tied head without its own copy has no parameters: its
             * table's gradient goes to the embedding, reduced last) */
            grt_allreduce(x->dp, M->grads + x->off, x->n);
        }
        if (i > M->lo) {
            if (x->to_prev) grt_reshard_run(x->to_prev, world, dst, dout, TAG_RESHARD_BWD);
            else {
                din = dout;
                dout = dst;
            }
        } else if (M->stage > 0) {
            M->n_dsend[s] = grt_reshard_isend(M->send_bwd, world, dst, TAG_BWD, M->dsend_req[s]);
        }
    }
}

/* The parts [a, b) of tensor k of layer x that this rank stores, as offsets
 * into its stored slice; false when it stores none of it. */
static int stored_part(const Layer *x, int k, size_t *a, size_t *b) {
    size_t lo = x->g->tensors[k].offset, hi = lo + x->g->tensors[k].n;
    size_t c0 = x->sdp ? (size_t)x->dp_index * x->chunk : 0, c1 = c0 + x->stored;
    if (lo < c0) lo = c0;
    if (hi > c1) hi = c1;
    if (lo >= hi) return 0;
    *a = lo - c0, *b = hi - c0;
    return 1;
}

/* A tied table kept twice (embedding and head in different stages or
 * layouts): each copy's gradient becomes their sum, as Megatron's
 * embedding group does. Every element is added once by the one rank that
 * owns it (DP index 0, or its ZeRO-3 part), over the whole (V, C) table. */
static void sync_tied(Model *M) {
    if (!M->tied) return;
    size_t VC = (size_t)VOCAB * HIDDEN;
    float *full = grt_alloc(VC * sizeof(float));
    int which[2] = {TIED_TO, HEAD};
    for (int pass = 0; pass < 2; pass++) {
        for (int w = 0; w < 2; w++) {
            int i = which[w];
            if (i < M->lo || i >= M->hi) continue;
            Layer *x = &M->layer[i];
            size_t a, b, base = (size_t)x->tp_index * x->g->V_l * HIDDEN; /* the shard's first row */
            if (!stored_part(x, 0, &a, &b)) continue;
            size_t c0 = x->sdp ? (size_t)x->dp_index * x->chunk : 0;
            float *g = M->grads + x->off;
            for (size_t k = a; k < b; k++) {
                size_t at = base + c0 + k - x->g->tensors[0].offset;
                if (at >= VC) continue; /* vocabulary padding */
                if (pass == 0 && (x->sdp || x->dp_index == 0)) full[at] += g[k];
                if (pass == 1) g[k] = full[at];
            }
        }
        if (pass == 0) grt_allreduce(M->tied, full, VC);
    }
    grt_free(full, VC * sizeof(float));
}

/* The global gradient norm: every element counted once, by the rank that
 * owns it (TP index 0 for tensors the TP group replicates, DP index 0 for
 * replicas, each rank its own ZeRO-3 part), summed over the world. */
static double grad_norm(Model *M, GrtComm *world) {
    double sq = 0;
    for (int i = M->lo; i < M->hi; i++) {
        const Layer *x = &M->layer[i];
        if (i == HEAD && M->tied_copy) continue; /* the embedding counts the table */
        if (!x->sdp && x->dp_index != 0) continue;
        for (int k = 0; k < x->g->n_tensors; k++) {
            size_t a, b;
            if ((x->g->tensors[k].sharded || x->tp_index == 0) && stored_part(x, k, &a, &b))
                sq += grt_sumsq(M->grads + x->off + a, b - a);
        }
    }
    grt_allreduce_double(world, &sq, 1);
    return sqrt(sq);
}

/* AdamW on every element this rank stores; weight decay on matrices only. */
static void update(Model *M, float lr, float scale, int t) {
    for (int i = M->lo; i < M->hi; i++) {
        const Layer *x = &M->layer[i];
        for (int k = 0; k < x->g->n_tensors; k++) {
            size_t a, b;
            if (!stored_part(x, k, &a, &b)) continue;
            size_t o = x->off + a;
            grt_adamw(M->params + o, M->grads + o, M->m + o, M->v + o, b - a, lr, BETA1, BETA2, EPS,
                      x->g->tensors[k].decay ? WEIGHT_DECAY : 0.0f, scale, t);
        }
    }
}

/* --dump FILE: every parameter tensor, whole, written by rank 0 as "layer
 * tensor count" lines each followed by the floats, so runs under different
 * plans can be compared with one rank's. Each layer's tensors are gathered
 * over its ZeRO-3 and TP groups; its stage's first rank sends them to rank 0. */
static void dump_params(Model *M, GrtComm *world, const char *path) {
    int rank = M->rank;
    FILE *f = rank == 0 ? fopen(path, "wb") : NULL;
    if (rank == 0 && !f) grt_abort("--dump: cannot write the parameter file", 1);
    for (int i = 0; i < N_LAYERS; i++) {
        if (i == HEAD && M->tied_copy) continue; /* the table is the embedding's */
        int owner = stage_of(i) * STAGE_RANKS, mine = i >= M->lo && i < M->hi;
        if (!mine && rank != 0) continue;
        GrtLayer shadow, *l = &shadow; /* rank 0's sizes of a layer it does not hold: one rank's */
        if (mine) {
            Layer *x = &M->layer[i];
            if (x->sdp) gather_params(M, x);
            l = x->g;
        } else {
            grt_layer_setup(&shadow, &layer_specs[i], NULL, 1, SEQ);
        }
        for (int k = 0; k < l->n_tensors; k++) {
            if (!l->tensors[k].n) continue;
            size_t cap = l->tensors[k].n * (size_t)placement[i].tp + 1, n = l->tensors[k].n;
            float *full = grt_alloc(cap * sizeof(float));
            if (mine && M->layer[i].dp_index == 0) n = grt_layer_gather(l, k, full);
            if (!mine) grt_recv(world, full, n, owner, TAG_FWD);
            else if (rank == owner && owner != 0) grt_send(world, full, n, 0, TAG_FWD);
            if (f) {
                fprintf(f, "%s %s %zu\n", layer_specs[i].name, l->tensors[k].name, n);
                fwrite(full, sizeof(float), n, f);
            }
            grt_free(full, cap * sizeof(float));
        }
    }
    if (f && fclose(f) != 0) grt_abort("--dump: cannot write the parameter file", 1);
}

/* The order of this stage's micro-batch passes: all forwards then all
 * backwards (GPipe, Huang et al. 2019), or warm-up forwards and then one
 * forward, one backward (1F1B, Narayanan et al. 2021, PipeDream-Flush).
 * ops[k] >= 0: forward of micro-batch ops[k]; < 0: backward of -ops[k] - 1. */
static int schedule(const Model *M, int *ops) {
    int n = 0, m = MICRO_BATCHES;
    if (!SCHEDULE_1F1B) {
        for (int j = 0; j < m; j++) ops[n++] = j;
        for (int j = 0; j < m; j++) ops[n++] = -j - 1;
        return n;
    }
    int warm = PP - M->stage - 1 < m ? PP - M->stage - 1 : m;
    for (int j = 0; j < warm; j++) ops[n++] = j;
    for (int j = 0; j < m - warm; j++) ops[n++] = warm + j, ops[n++] = -j - 1;
    for (int j = m - warm; j < m; j++) ops[n++] = -j - 1;
    return n;
}

/* Peak memory of every rank beside the plan's prediction for its stage. */
static void report_memory(GrtComm *world, FILE *log) {
    double peak[RANKS] = {0};
    int rank = grt_rank(world);
    peak[rank] = (double)grt_peak_bytes();
    grt_allreduce_double(world, peak, RANKS);
    if (rank != 0) return;
    printf("memory per rank (MiB): measured peak / planned\n");
    for (int r = 0; r < RANKS; r++) {
        double plan = predicted_mem[r / STAGE_RANKS];
        printf("  rank %2d (stage %d): %8.2f / %8.2f  (%+.1f%%)\n", r, r / STAGE_RANKS, peak[r] / (1 << 20),
               plan / (1 << 20), plan > 0 ? 100.0 * (peak[r] - plan) / plan : 0.0);
        if (log)
            fprintf(log, "{\"rank\": %d, \"stage\": %d, \"peak_mem_bytes\": %.0f, \"planned_mem_bytes\": %.0f}\n", r,
                    r / STAGE_RANKS, peak[r], plan);
    }
}

int main(int argc, char **argv) {
    GrtComm *world = grt_init(&argc, &argv);
    int rank = grt_rank(world);
    Options opt = parse_options(world, argc, argv);
    if (grt_size(world) != RANKS) {
        char msg[256];
        snprintf(msg, sizeof msg, "this program was built for %d ranks; run it with mpirun -np %d", RANKS, RANKS);
        stop_all(world, msg, 2);
    }
    for (int k = 0; k < PP; k++)
        if (MEMORY_PER_DEVICE > 0 && predicted_mem[k] > MEMORY_PER_DEVICE) {
            char msg[256];
            snprintf(msg, sizeof msg, "the plan needs %.1f MiB on the ranks of stage %d, more than the %.1f MiB a device has",
                     predicted_mem[k] / (1 << 20), k, MEMORY_PER_DEVICE / (1 << 20));
            stop_all(world, msg, 1);
        }
    grt_set_threads(RANKS);

    /* the data: every rank opens it; if any rank cannot, all stop */
    GrtData *data = grt_data_open(opt.data, VOCAB, opt.seed);
    double ok = data != NULL;
    grt_allreduce_double(world, &ok, 1);
    if (ok < RANKS) stop_all(world, "the data could not be read (see above)", 1);

    static Model M;
    build_model(&M, world, opt.seed);
    FILE *log = NULL;
    if (opt.log && rank == 0 && !(log = fopen(opt.log, "w"))) grt_abort("--log: cannot write the log file", 1);
    if (log) /* what was predicted, for galvc --calibrate */
        fprintf(log,
                "{\"plan\": {\"model\": \"%s\", \"ranks\": %d, \"pp\": %d, \"micro_batches\": %d, "
                "\"predicted_step_ms\": %.6g, \"predicted_compute_ms\": %.6g, \"predicted_comm_ms\": %.6g, "
                "\"predicted_bubble_ms\": %.6g}}\n",
                MODEL_NAME, RANKS, PP, MICRO_BATCHES, PREDICTED_STEP_MS, PREDICTED_COMPUTE_MS, PREDICTED_COMM_MS,
                PREDICTED_BUBBLE_MS);
    double stored = (double)M.n_stored;
    if (rank == 0)
        printf("%s: %d ranks in %d pipeline stage%s of %d, %.0f parameters stored on rank 0, global batch %d x %d "
               "tokens in %d micro-batch%s; planned %.1f ms a step\n",
               MODEL_NAME, RANKS, PP, PP > 1 ? "s" : "", STAGE_RANKS, stored, GLOBAL_BATCH, SEQ, MICRO_BATCHES,
               MICRO_BATCHES > 1 ? "es" : "", PREDICTED_STEP_MS);

    int ops[2 * MICRO_BATCHES], n_ops = schedule(&M, ops);
    for (long step = 0; step < opt.steps; step++) {
        double t0 = grt_now_ms();
        memset(M.grads, 0, M.n_stored * sizeof(float));
        M.loss = 0;
        for (int k = 0; k < n_ops; k++) {
            int mb = ops[k] >= 0 ? ops[k] : -ops[k] - 1, s = mb % M.slots;
            if (ops[k] >= 0) {
                grt_data_batch(data, step, GLOBAL_BATCH, SEQ, mb * MB, MB, M.tokens[s], M.targets[s]);
                forward(&M, world, mb, s);
            } else {
                backward(&M, world, mb, s);
            }
        }
        for (int s = 0; s < M.slots; s++) {
            if (M.send_req[s]) wait_all(M.send_req[s], &M.n_send[s]);
            if (M.dsend_req[s]) wait_all(M.dsend_req[s], &M.n_dsend[s]);
        }
        sync_tied(&M);
        double loss = M.loss;
        grt_allreduce_double(world, &loss, 1);
        loss /= (double)GLOBAL_BATCH * SEQ;
        double norm = grad_norm(&M, world);
        float scale = CLIP > 0 && norm > CLIP ? (float)(CLIP / norm) : 1.0f;
        update(&M, opt.lr, scale, (int)step + 1);
        double ms = grt_now_ms() - t0;
        double tokens_per_s = GLOBAL_BATCH * SEQ / (ms / 1e3);
        double gflops = 3 * FWD_FLOPS_PER_SEQ * GLOBAL_BATCH / (ms / 1e3) / 1e9;
        double peak = (double)grt_peak_bytes(); /* rank 0's */
        if (rank == 0) {
            printf("step %4ld  loss %.6f  %8.1f ms  %9.0f tok/s  %7.2f GFLOP/s  peak %.1f MiB on rank 0\n", step + 1,
                   loss, ms, tokens_per_s, gflops, peak / (1 << 20));
            fflush(stdout);
            if (log)
                fprintf(log, "{\"step\": %ld, \"loss\": %.9g, \"ms\": %.3f, \"tokens_per_s\": %.1f, \"peak_mem_bytes\": %.0f}\n",
                        step + 1, loss, ms, tokens_per_s, peak);
        }
    }
    report_memory(world, log);
    if (log && fclose(log) != 0) grt_abort("--log: cannot write the log file", 1);
    if (opt.dump) dump_params(&M, world, opt.dump);
    grt_data_close(data);
    grt_finalize();
    return 0;
}
