/* ---- below: the same for every plan (galvc's backend/train_body.c) ---- */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Options {
    long steps;
    unsigned long long seed;
    const char *data, *log, *dump;
    float lr;
    const char *ckpt_dir;       /* --ckpt-dir: where checkpoints go (folders step-N) */
    long ckpt_every;            /* --ckpt-every K: a checkpoint after every K steps (0: only --ckpt-dir's last) */
    long ckpt_keep;             /* --ckpt-keep N: complete checkpoints kept (older ones removed) */
    int resume;                 /* --resume: continue from the newest intact checkpoint */
    const char *export_st;      /* --export-safetensors FILE: the model after training, HF names */
    const char *init_st;        /* --init-safetensors FILE: start from these parameters */
    int seed_given;
} Options;

static const char usage[] =
    "use --steps K, --seed S, --data FILE, --lr X, --log FILE.jsonl, --dump FILE, --ckpt-dir DIR, --ckpt-every K, "
    "--ckpt-keep N, --resume, --export-safetensors FILE, --init-safetensors FILE";

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

/* How many ranks report failure (ok == 0): every rank learns it. */
static int failures(GrtComm *world, int ok) {
    double bad = !ok;
    grt_allreduce_double(world, &bad, 1);
    return (int)bad;
}

/* Every rank reads the same command line; a bad one stops every rank. */
static Options parse_options(GrtComm *world, int argc, char **argv) {
    Options o = {DEFAULT_STEPS, 1234, NULL, NULL, NULL, LR, NULL, 0, 3, 0, NULL, NULL, 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (!strcmp(a, "--steps") && v) o.steps = strtol(v, &end, 10), i++;
        else if (!strcmp(a, "--seed") && v) o.seed = strtoull(v, &end, 10), o.seed_given = 1, i++;
        else if (!strcmp(a, "--lr") && v) o.lr = strtof(v, &end), i++;
        else if (!strcmp(a, "--data") && v) o.data = v, i++;
        else if (!strcmp(a, "--log") && v) o.log = v, i++;
        else if (!strcmp(a, "--dump") && v) o.dump = v, i++;
        else if (!strcmp(a, "--ckpt-dir") && v) o.ckpt_dir = v, i++;
        else if (!strcmp(a, "--ckpt-every") && v) o.ckpt_every = strtol(v, &end, 10), i++;
        else if (!strcmp(a, "--ckpt-keep") && v) o.ckpt_keep = strtol(v, &end, 10), i++;
        else if (!strcmp(a, "--resume")) o.resume = 1;
        else if (!strcmp(a, "--export-safetensors") && v) o.export_st = v, i++;
        else if (!strcmp(a, "--init-safetensors") && v) o.init_st = v, i++;
        else {
            char msg[768];
            snprintf(msg, sizeof msg, "unknown or incomplete option '%s' (%s)", a, usage);
            stop_all(world, msg, 2);
        }
        if (end && (*end || end == v)) {
            char msg[256];
            snprintf(msg, sizeof msg, "bad value '%s' for %s", v, a);
            stop_all(world, msg, 2);
        }
    }
    if (o.steps < 0) stop_all(world, "--steps must not be negative", 2);
    if (o.ckpt_every < 0) stop_all(world, "--ckpt-every must not be negative", 2);
    if (o.ckpt_keep < 1) stop_all(world, "--ckpt-keep must be at least 1", 2);
    if ((o.ckpt_every || o.resume) && !o.ckpt_dir) stop_all(world, "--ckpt-every and --resume need --ckpt-dir DIR", 2);
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
    float *tied_sum;         /* (VOCAB, HIDDEN): the two gradients summed, on those ranks */
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
    if (M->tied) M->tied_sum = grt_alloc((size_t)VOCAB * HIDDEN * sizeof(float));

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

/* A micro-batch forward through this rank's layers, on activation slot s (its tokens already there). */
static void forward(Model *M, GrtComm *world, int s) {
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
    float *full = M->tied_sum;
    memset(full, 0, VC * sizeof(float));
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

/* ---- checkpoints ---------------------------------------------------------------
 * A checkpoint is a folder DIR/step-N holding one file per rank,
 * rank-R.bin, and a MANIFEST written last. Rank R's file holds its pieces:
 * for each layer of its stage whose parameters it owns (DP index 0, or
 * under ZeRO-3 its part), the floats it stores of its TP shard, as
 * parameters, then Adam's m, then v. The MANIFEST (text, one record a line,
 * its own CRC-32 last) names the model (each layer's kind and parameter
 * count), the step, the seed (the initialization and the synthetic data are
 * counter-based draws from it, so it is the whole RNG state), the data
 * position (step x global batch x SEQ tokens), the plan that wrote it (each
 * layer's TP, DP and SDP degrees), every file's size and CRC-32, and every
 * piece: rank, layer, TP index, DP index, TP shard length, the range of the
 * shard it covers, where it lies in the file. A reader rebuilds any whole
 * tensor from the pieces of the TP ranks that held it (grt_layer_place on
 * the writer's shapes, from grt_layer_shape) and cuts its own shard from it,
 * so a checkpoint loads under any plan of the same model: reshard on load.
 * Files are written through a temporary, fsync and rename, and the MANIFEST
 * only after every file is in place, so a folder without one is incomplete
 * and never loaded; a file whose size or CRC differs from the MANIFEST's is
 * refused and the next older checkpoint is tried. */

enum { MAX_CKPT_RANKS = 1 << 16, ARR_PARAMS = 0, ARR_M = 1, ARR_V = 2 };

/* One piece of a rank's checkpoint file. */
typedef struct Piece {
    int rank, layer, tp_index, dp_index;
    long n;          /* floats of the layer's TP shard */
    long begin, count; /* the floats [begin, begin + count) of that shard */
    long offset;     /* bytes into the rank's file: count params, count m, count v */
} Piece;

/* A checkpoint's MANIFEST, read back. */
typedef struct Manifest {
    long step, data_position;
    unsigned long long seed;
    int ranks, pp, global_batch, seq, n_layers;
    struct {
        int kind, tp, dp, sdp;
        long params; /* whole layer, one rank */
    } layer[N_LAYERS];
    long *file_bytes;
    unsigned long *file_crc;
    Piece *piece;
    int n_pieces;
} Manifest;

/* Parameters of layer i on one rank, and whether a head is a tied copy (no tensor of its own in a checkpoint). */
static long layer_params(int i) {
    GrtLayer l;
    grt_layer_shape(&l, &layer_specs[i], 1, 0);
    return (long)l.n_params;
}

/* The pieces rank r writes under this program's plan, into out (may be NULL); their count. */
static int rank_pieces(int r, Piece *out) {
    int stage = r / STAGE_RANKS, n = 0;
    long offset = 0;
    for (int i = stage_start[stage]; i < stage_start[stage + 1]; i++) {
        if (i == HEAD && layer_specs[i].tied) continue; /* the table is the embedding's */
        GrtLayout L = layout_of(i);
        int t = grt_layout_tp_index(&L, r), d = grt_layout_dp_index(&L, r);
        int sdp = placement[i].sdp && placement[i].dp > 1;
        if (!sdp && d != 0) continue; /* a replica: DP index 0 writes it */
        GrtLayer l;
        grt_layer_shape(&l, &layer_specs[i], placement[i].tp, t);
        long full = (long)l.n_params, chunk = (full + placement[i].dp - 1) / placement[i].dp;
        long begin = sdp ? d * chunk : 0, count = sdp ? chunk : full;
        if (begin + count > full) count = full > begin ? full - begin : 0;
        if (!count) continue;
        if (out) out[n] = (Piece){r, i, t, d, full, begin, count, offset};
        n++;
        offset += 3 * count * (long)sizeof(float);
    }
    return n;
}

/* DIR/step-N[/name] into buf. */
static void ckpt_path(char *buf, size_t len, const char *dir, long step, const char *name) {
    if (name) snprintf(buf, len, "%s/step-%08ld/%s", dir, step, name);
    else snprintf(buf, len, "%s/step-%08ld", dir, step);
}

/* Report a rank's own failure (every rank may have a different one). */
static void rank_says(int rank, const char *msg) {
    fprintf(stderr, "galvrt: rank %d: %s\n", rank, msg);
    fflush(stderr);
}

/* Remove complete checkpoints beyond the newest `keep`, and incomplete folders older than the newest complete one (rank 0). */
static void prune_checkpoints(const char *dir, long keep) {
    long steps[4096];
    int n = grt_ckpt_steps(dir, steps, 4096), complete = 0;
    for (int j = 0; j < n; j++) {
        char path[4096], folder[4096];
        ckpt_path(path, sizeof path, dir, steps[j], "MANIFEST");
        ckpt_path(folder, sizeof folder, dir, steps[j], NULL);
        FILE *f = fopen(path, "r");
        if (f) fclose(f), complete++;
        if ((f && complete <= keep) || (!f && complete == 0)) continue;
        /* the manifest goes first: a folder half removed is incomplete, never loaded */
        if ((remove(path) != 0 && f) || grt_remove_dir(folder) != 0)
            fprintf(stderr, "galvrt: warning: cannot remove old checkpoint %s\n", folder);
    }
}

/* Write checkpoint `step` (every rank; collective). A failure on any rank
 * stops every rank, after saying which and why; the previous checkpoints
 * stay as they were. */
static void save_checkpoint(Model *M, GrtComm *world, const Options *o, long step) {
    int rank = M->rank;
    char folder[4096], path[4096], err[1024] = "";
    ckpt_path(folder, sizeof folder, o->ckpt_dir, step, NULL);
    int ok = 1;
    if (rank == 0) {
        ok = grt_make_dirs(folder, err, sizeof err) == 0;
        ckpt_path(path, sizeof path, o->ckpt_dir, step, "MANIFEST");
        remove(path); /* a stale one from an abandoned run would name other files */
        if (!ok) rank_says(rank, err);
    }
    if (failures(world, ok)) {
        snprintf(err, sizeof err, "checkpoint at step %ld failed (see above); the earlier checkpoints are intact", step);
        stop_all(world, err, 1);
    }
    /* this rank's file */
    int np = rank_pieces(rank, NULL);
    Piece *pc = calloc((size_t)np + 1, sizeof *pc);
    rank_pieces(rank, pc);
    GrtSpan *spans = calloc(3 * (size_t)np + 1, sizeof *spans);
    long bytes = 0;
    for (int j = 0; j < np; j++) {
        size_t at = M->layer[pc[j].layer].off, n = (size_t)pc[j].count * sizeof(float);
        spans[3 * j] = (GrtSpan){M->params + at, n};
        spans[3 * j + 1] = (GrtSpan){M->m + at, n};
        spans[3 * j + 2] = (GrtSpan){M->v + at, n};
        bytes += 3 * (long)n;
    }
    char name[64];
    snprintf(name, sizeof name, "rank-%05d.bin", rank);
    ckpt_path(path, sizeof path, o->ckpt_dir, step, name);
    uint32_t crc = 0;
    ok = grt_write_atomic(path, spans, 3 * np, &crc, err, sizeof err) == 0;
    if (!ok) rank_says(rank, err);
    free(spans);
    free(pc);
    /* every file's size and CRC to rank 0, which writes the MANIFEST last */
    double *meta = calloc(2 * RANKS, sizeof *meta);
    meta[2 * rank] = (double)bytes, meta[2 * rank + 1] = (double)crc;
    int bad = failures(world, ok);
    grt_allreduce_double(world, meta, 2 * RANKS);
    if (bad) {
        snprintf(err, sizeof err,
                 "checkpoint at step %ld failed on %d rank%s (see above); the earlier checkpoints are intact", step, bad,
                 bad > 1 ? "s" : "");
        stop_all(world, err, 1);
    }
    if (rank == 0) {
        size_t cap = 4096 + (size_t)N_LAYERS * 128 + (size_t)RANKS * 64;
        for (int r = 0; r < RANKS; r++) cap += (size_t)rank_pieces(r, NULL) * 96;
        char *text = malloc(cap);
        size_t len = 0;
#define OUT(...) len += (size_t)snprintf(text + len, cap - len, __VA_ARGS__)
        OUT("galvc-checkpoint 1\nmodel %s\nstep %ld\nseed %llu\ndata_position %ld\nbatch %d %d\n", MODEL_NAME, step,
            o->seed, step * GLOBAL_BATCH * SEQ, GLOBAL_BATCH, SEQ);
        OUT("plan %d %d\nlayers %d\n", RANKS, PP, N_LAYERS);
        for (int i = 0; i < N_LAYERS; i++)
            OUT("layer %d %d %ld %d %d %d\n", i, (int)layer_specs[i].kind, layer_params(i), placement[i].tp,
                placement[i].dp, placement[i].sdp && placement[i].dp > 1);
        for (int r = 0; r < RANKS; r++) OUT("file %d %.0f %.0f\n", r, meta[2 * r], meta[2 * r + 1]);
        for (int r = 0; r < RANKS; r++) {
            int n = rank_pieces(r, NULL);
            Piece *p = calloc((size_t)n + 1, sizeof *p);
            rank_pieces(r, p);
            for (int j = 0; j < n; j++)
                OUT("piece %d %d %d %d %ld %ld %ld %ld\n", p[j].rank, p[j].layer, p[j].tp_index, p[j].dp_index, p[j].n,
                    p[j].begin, p[j].count, p[j].offset);
            free(p);
        }
        OUT("crc32 %lu\n", (unsigned long)grt_crc32(0, text, len));
#undef OUT
        ckpt_path(path, sizeof path, o->ckpt_dir, step, "MANIFEST");
        GrtSpan span = {text, len};
        ok = grt_write_atomic(path, &span, 1, NULL, err, sizeof err) == 0;
        if (!ok) rank_says(rank, err);
        free(text);
    }
    free(meta);
    if (failures(world, ok)) {
        snprintf(err, sizeof err, "checkpoint at step %ld: its MANIFEST could not be written (see above); the earlier "
                 "checkpoints are intact", step);
        stop_all(world, err, 1);
    }
    if (rank == 0) {
        prune_checkpoints(o->ckpt_dir, o->ckpt_keep);
        printf("checkpoint: step %ld written to %s\n", step, folder);
        fflush(stdout);
    }
}

/* Read and check a MANIFEST; 0 with the reason in err when unreadable, damaged or malformed. */
static int read_manifest(const char *path, Manifest *mf, char *err, size_t errlen) {
    memset(mf, 0, sizeof *mf);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: missing (the checkpoint is incomplete)", path);
        return 0;
    }
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap + 1);
    for (size_t r; (r = fread(text + len, 1, cap - len, f)) > 0;) {
        len += r;
        if (len == cap) text = realloc(text, (cap *= 2) + 1);
    }
    fclose(f);
    text[len] = 0;
    char *last = len ? strstr(text, "\ncrc32 ") : NULL;
    unsigned long want = 0;
    if (!last || sscanf(last + 7, "%lu", &want) != 1 || grt_crc32(0, text, (size_t)(last + 1 - text)) != want) {
        snprintf(err, errlen, "%s: damaged (its checksum does not match)", path);
        free(text);
        return 0;
    }
    int ok = 1;
    char model[256];
    for (char *line = strtok(text, "\n"); line && ok; line = strtok(NULL, "\n")) {
        int i, k, r, kind, tp, dp, sdp;
        long a, b, c, d;
        double x, y;
        if (!strncmp(line, "galvc-checkpoint ", 17)) ok = atoi(line + 17) == 1;
        else if (sscanf(line, "model %255s", model) == 1) continue;
        else if (sscanf(line, "step %ld", &mf->step) == 1) continue;
        else if (sscanf(line, "seed %llu", &mf->seed) == 1) continue;
        else if (sscanf(line, "data_position %ld", &mf->data_position) == 1) continue;
        else if (sscanf(line, "batch %d %d", &mf->global_batch, &mf->seq) == 2) continue;
        else if (sscanf(line, "plan %d %d", &mf->ranks, &mf->pp) == 2) {
            ok = mf->ranks > 0 && mf->ranks <= MAX_CKPT_RANKS;
            if (ok) {
                mf->file_bytes = calloc((size_t)mf->ranks, sizeof(long));
                mf->file_crc = calloc((size_t)mf->ranks, sizeof(unsigned long));
                for (int q = 0; q < mf->ranks; q++) mf->file_bytes[q] = -1;
            }
        } else if (sscanf(line, "layers %d", &mf->n_layers) == 1) continue;
        else if (sscanf(line, "layer %d %d %ld %d %d %d", &i, &kind, &a, &tp, &dp, &sdp) == 6) {
            ok = i >= 0 && i < N_LAYERS && tp > 0 && dp > 0;
            if (ok) mf->layer[i].kind = kind, mf->layer[i].params = a, mf->layer[i].tp = tp, mf->layer[i].dp = dp,
                    mf->layer[i].sdp = sdp;
        } else if (sscanf(line, "file %d %lf %lf", &r, &x, &y) == 3) {
            ok = mf->file_bytes && r >= 0 && r < mf->ranks;
            if (ok) mf->file_bytes[r] = (long)x, mf->file_crc[r] = (unsigned long)y;
        } else if (sscanf(line, "piece %d %d %d %d %ld %ld %ld %ld", &r, &i, &k, &dp, &a, &b, &c, &d) == 8) {
            ok = r >= 0 && r < mf->ranks && i >= 0 && i < N_LAYERS && k >= 0 && b >= 0 && c >= 0 && b + c <= a && d >= 0;
            if (ok) {
                mf->piece = realloc(mf->piece, sizeof(Piece) * (size_t)(mf->n_pieces + 1));
                mf->piece[mf->n_pieces++] = (Piece){r, i, k, dp, a, b, c, d};
            }
        } else if (!strncmp(line, "crc32 ", 6)) continue;
        else ok = 0;
        if (!ok) snprintf(err, errlen, "%s: malformed line '%.80s'", path, line);
    }
    free(text);
    if (ok && (!mf->file_bytes || mf->n_layers <= 0)) {
        snprintf(err, errlen, "%s: incomplete (no plan or layers)", path);
        ok = 0;
    }
    return ok;
}

/* Is the checkpoint of this model (same layers, batch and sequence length)? 0 with the reason when not. */
static int same_model(const Manifest *mf, char *err, size_t errlen) {
    if (mf->n_layers != N_LAYERS) {
        snprintf(err, errlen, "it holds a model of %d layers, this program trains %d", mf->n_layers, N_LAYERS);
        return 0;
    }
    for (int i = 0; i < N_LAYERS; i++)
        if (mf->layer[i].kind != (int)layer_specs[i].kind || mf->layer[i].params != layer_params(i)) {
            snprintf(err, errlen, "its layer %d (%ld parameters) is not this model's layer %d '%s' (%ld parameters)", i,
                     mf->layer[i].params, i, layer_specs[i].name, layer_params(i));
            return 0;
        }
    if (mf->global_batch != GLOBAL_BATCH || mf->seq != SEQ) {
        snprintf(err, errlen,
                 "it was trained with a global batch of %d x %d tokens, this program uses %d x %d: its data position "
                 "cannot be continued",
                 mf->global_batch, mf->seq, GLOBAL_BATCH, SEQ);
        return 0;
    }
    return 1;
}

static void free_manifest(Manifest *mf) {
    free(mf->file_bytes);
    free(mf->file_crc);
    free(mf->piece);
    memset(mf, 0, sizeof *mf);
}

/* Where the whole tensors of a load come from: fill whole (rows x cols of
 * layer i's tensor k, array ARR_*) and return 1, or return 0 for zeros;
 * -1 on failure with the reason in err. */
typedef int (*WholeFn)(void *ctx, int i, int k, int array, float *whole, char *err, size_t errlen);

/* Whole tensor k of layer i from a checkpoint: each of the writer's TP
 * shards rebuilt from its pieces, then placed in the whole tensor. */
typedef struct CkptSource {
    const Manifest *mf;
    const char *dir;
} CkptSource;

/* WholeFn for a checkpoint. */
static int whole_from_ckpt(void *ctx, int i, int k, int array, float *whole, char *err, size_t errlen) {
    const CkptSource *cs = ctx;
    const Manifest *mf = cs->mf;
    int tp = mf->layer[i].tp;
    GrtLayerSpec spec = layer_specs[i];
    if (i == HEAD) spec.tied = 0;
    for (int t = 0; t < tp; t++) {
        GrtLayer old;
        grt_layer_shape(&old, &spec, tp, t);
        long lo = (long)old.tensors[k].offset, n = (long)old.tensors[k].n, covered = 0;
        float *shard = calloc((size_t)n + 1, sizeof(float));
        for (int j = 0; j < mf->n_pieces; j++) {
            const Piece *p = &mf->piece[j];
            if (p->layer != i || p->tp_index != t) continue;
            long a = p->begin > lo ? p->begin : lo, b = p->begin + p->count < lo + n ? p->begin + p->count : lo + n;
            if (a >= b) continue;
            char name[64], path[4096];
            snprintf(name, sizeof name, "rank-%05d.bin", p->rank);
            ckpt_path(path, sizeof path, cs->dir, mf->step, name);
            uint64_t at = (uint64_t)p->offset + ((uint64_t)array * p->count + (uint64_t)(a - p->begin)) * sizeof(float);
            if (grt_read_range(path, at, shard + (a - lo), (size_t)(b - a) * sizeof(float)) != 0) {
                snprintf(err, errlen, "%s: cannot read layer %d's tensor %s", path, i, old.tensors[k].name);
                free(shard);
                return -1;
            }
            covered += b - a;
        }
        if (covered != n) {
            snprintf(err, errlen, "checkpoint step %ld lacks part of layer %d's tensor %s (TP rank %d)", mf->step, i,
                     old.tensors[k].name, t);
            free(shard);
            return -1;
        }
        grt_layer_place(&old, k, shard, whole, 1);
        free(shard);
    }
    return 1;
}

/* Fill every parameter (and Adam's m and v) this rank stores from `source`'s
 * whole tensors: each cut to this rank's TP shard, then to its ZeRO-3 part.
 * A tied head's own copy of the table comes from the embedding's. Returns 0
 * with the reason in err on failure. */
static int load_model(Model *M, WholeFn source, void *ctx, char *err, size_t errlen) {
    for (int i = M->lo; i < M->hi; i++) {
        Layer *x = &M->layer[i];
        if (!x->n) continue;
        int src = i == HEAD && M->tied_copy ? TIED_TO : i;
        float *shard = calloc(x->n + 1, sizeof(float));
        float *arrays[3] = {M->params, M->m, M->v};
        for (int a = 0; a < 3; a++) {
            memset(shard, 0, x->n * sizeof(float));
            for (int k = 0; k < x->g->n_tensors; k++) {
                if (!x->g->tensors[k].n) continue;
                int64_t rows, cols;
                grt_tensor_shape(x->g, k, &rows, &cols);
                float *whole = calloc((size_t)(rows * cols) + 1, sizeof(float));
                int got = source(ctx, src, src == i ? k : 0, a, whole, err, errlen);
                if (got < 0) {
                    free(whole), free(shard);
                    return 0;
                }
                if (got) grt_layer_place(x->g, k, shard + x->g->tensors[k].offset, whole, 0);
                free(whole);
            }
            size_t c0 = x->sdp ? (size_t)x->dp_index * x->chunk : 0;
            float *dst = arrays[a] + x->off;
            memset(dst, 0, x->stored * sizeof(float));
            if (c0 < x->n) memcpy(dst, shard + c0, ((x->n - c0 < x->stored) ? x->n - c0 : x->stored) * sizeof(float));
        }
        free(shard);
    }
    return 1;
}

/* Check files r, r + RANKS, ... of a checkpoint against its MANIFEST; 0 with the reason when one differs. */
static int check_files(const Manifest *mf, const char *dir, int rank, char *err, size_t errlen) {
    for (int r = rank; r < mf->ranks; r += RANKS) {
        char name[64], path[4096];
        snprintf(name, sizeof name, "rank-%05d.bin", r);
        ckpt_path(path, sizeof path, dir, mf->step, name);
        uint64_t bytes;
        uint32_t crc;
        if (grt_file_crc32(path, &bytes, &crc) != 0) {
            snprintf(err, errlen, "%s: missing or unreadable", path);
            return 0;
        }
        if ((long)bytes != mf->file_bytes[r]) {
            snprintf(err, errlen, "%s: %llu bytes, the MANIFEST says %ld (truncated?)", path, (unsigned long long)bytes,
                     mf->file_bytes[r]);
            return 0;
        }
        if (crc != mf->file_crc[r]) {
            snprintf(err, errlen, "%s: CRC-32 %08lx, the MANIFEST says %08lx (corrupted)", path, (unsigned long)crc,
                     mf->file_crc[r]);
            return 0;
        }
    }
    return 1;
}

/* --resume: load the newest intact checkpoint of o->ckpt_dir (every rank;
 * collective) and return its step; -1 when the folder holds none yet.
 * Damaged or incomplete ones are refused with the reason, renamed
 * refused-step-N (kept for a look, never tried again) and the next older
 * one is tried; none intact stops every rank. */
static long resume(Model *M, GrtComm *world, Options *o) {
    int rank = M->rank;
    long steps[4096];
    int n = grt_ckpt_steps(o->ckpt_dir, steps, 4096), refused = 0;
    char err[1024], path[4096], msg[1400];
    for (int j = 0; j < n; j++) {
        Manifest mf;
        ckpt_path(path, sizeof path, o->ckpt_dir, steps[j], "MANIFEST");
        int ok = read_manifest(path, &mf, err, sizeof err);
        if (ok && mf.step != steps[j]) snprintf(err, sizeof err, "%s: names step %ld", path, mf.step), ok = 0;
        if (ok && !same_model(&mf, err, sizeof err)) {
            snprintf(msg, sizeof msg, "%s: not a checkpoint of this model: %s", path, err);
            stop_all(world, msg, 1);
        }
        if (ok) ok = check_files(&mf, o->ckpt_dir, rank, err, sizeof err);
        /* manifest problems every rank sees alike (rank 0 says them); a file's only the rank that checked it */
        if (!ok && (rank == 0 || strstr(err, ".bin"))) rank_says(rank, err);
        if (failures(world, ok)) {
            free_manifest(&mf);
            refused++;
            if (rank == 0) {
                char folder[4096], to[4200];
                ckpt_path(folder, sizeof folder, o->ckpt_dir, steps[j], NULL);
                snprintf(to, sizeof to, "%s/refused-step-%08ld", o->ckpt_dir, steps[j]);
                fprintf(stderr, "galvrt: checkpoint %s refused (see above); %s\n", folder,
                        rename(folder, to) == 0 ? "renamed refused-step-N, trying an older one" : "trying an older one");
                fflush(stderr);
            }
            continue;
        }
        CkptSource cs = {&mf, o->ckpt_dir};
        ok = load_model(M, whole_from_ckpt, &cs, err, sizeof err);
        if (!ok) rank_says(rank, err);
        if (failures(world, ok)) stop_all(world, "the checkpoint could not be loaded (see above)", 1);
        if (rank == 0) {
            printf("resumed from %s/step-%08ld (step %ld, written by %d ranks in %d stage%s%s)\n", o->ckpt_dir, mf.step,
                   mf.step, mf.ranks, mf.pp, mf.pp > 1 ? "s" : "",
                   o->seed_given && o->seed != mf.seed ? "; its seed replaces --seed" : "");
            fflush(stdout);
        }
        o->seed = mf.seed;
        long step = mf.step;
        free_manifest(&mf);
        return step;
    }
    if (refused) {
        snprintf(msg, sizeof msg, "--resume: no intact checkpoint in %s (%d refused)", o->ckpt_dir, refused);
        stop_all(world, msg, 1);
    }
    if (rank == 0) printf("--resume: no checkpoint in %s yet; starting from step 0\n", o->ckpt_dir);
    return -1;
}

/* ---- safetensors with Hugging Face names ---------------------------------------
 * --export-safetensors writes the whole model under the names Hugging Face
 * gives it, and --init-safetensors reads such a file back. The family comes
 * from the layers: RMSNorm + SwiGLU blocks are LLaMA's (LlamaForCausalLM),
 * bidirectional or post-norm blocks BERT's (BertModel), anything else GPT-2's
 * (GPT2Model). Our tensors map onto theirs as follows:
 *  - GPT-2's Conv1D weights are (in, out): c_attn, attn.c_proj, mlp.c_fc and
 *    mlp.c_proj are our (OC, C) weights transposed;
 *  - our fused QKV rows [Q heads | K heads | V heads] split into q_proj,
 *    k_proj, v_proj (LLaMA) or query, key, value (BERT); our SwiGLU up rows
 *    [gate | up] into gate_proj and up_proj;
 *  - our rotary embedding turns pairs (2i, 2i + 1) of a head (Meta's
 *    layout), HF's LLaMA pairs (i, i + hd/2): q_proj and k_proj rows are
 *    permuted per head as HF's convert_llama_weights_to_hf.py does;
 *  - a tied head has no tensor (the file's table is the embedding's);
 *  - a tensor without an HF counterpart keeps a name of ours,
 *    "galvc.LAYER.TENSOR" (a GPT-2 or LLaMA norm before the first block, a
 *    BERT norm after the last); BERT's token-type embeddings and pooler,
 *    which our models lack, are not written, and not required on reading. */

typedef enum { NAMES_GPT2, NAMES_LLAMA, NAMES_BERT } Naming;

/* One HF tensor: rows [r0, r0 + rows) of our tensor k of layer i (a vector
 * counts as rows of one element), transposed (GPT-2's Conv1D) or with each
 * of rope_heads heads' rows permuted from our rotary layout to HF's. */
typedef struct HfTensor {
    char name[160];
    int layer, k;
    int64_t r0, rows, cols; /* cols: 1 for a vector */
    int ndim, transpose, rope_heads, hd;
} HfTensor;

/* The naming family of this model. */
static Naming naming(void) {
    for (int i = 0; i < N_LAYERS; i++) {
        const GrtLayerSpec *s = &layer_specs[i];
        if (s->kind != GRT_BLOCK) continue;
        if (s->rms && s->swiglu) return NAMES_LLAMA;
        if (!s->causal || !s->pre_norm) return NAMES_BERT;
    }
    return NAMES_GPT2;
}

/* Add an HF tensor to the list. */
static void hf_add(HfTensor *t, int *n, const char *name, int i, int k, int64_t r0, int64_t rows, int64_t cols,
                   int transpose, int rope_heads, int hd) {
    HfTensor *h = &t[(*n)++];
    snprintf(h->name, sizeof h->name, "%s", name);
    h->layer = i, h->k = k, h->r0 = r0, h->rows = rows, h->cols = cols;
    h->ndim = cols == 1 && rows > 0 && (k != 1 || layer_specs[i].kind != GRT_EMBEDDING) ? 1 : 2;
    h->transpose = transpose, h->rope_heads = rope_heads, h->hd = hd;
}

/* Every HF tensor of the model, in our layer and tensor order (the order the file is written in); their count. */
static int hf_tensors(HfTensor *t) {
    Naming nm = naming();
    int n = 0, block = 0, blocks_seen = 0;
    char name[160];
    for (int i = 0; i < N_LAYERS; i++) {
        const GrtLayerSpec *s = &layer_specs[i];
        GrtLayer l;
        grt_layer_shape(&l, s, 1, 0);
        for (int k = 0; k < l.n_tensors; k++) {
            if (!l.tensors[k].n) continue;
            int64_t rows, cols;
            grt_tensor_shape(&l, k, &rows, &cols);
            if (rows == 1) rows = cols, cols = 1; /* a vector: rows of one element */
            const char *w = strstr(l.tensors[k].name, "bias") ? "bias" : "weight";
            switch (s->kind) {
            case GRT_EMBEDDING: {
                const char *names[3][2] = {{"wte.weight", "wpe.weight"},
                                           {"model.embed_tokens.weight", "model.embed_positions.weight"},
                                           {"embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight"}};
                hf_add(t, &n, names[nm][k], i, k, 0, rows, cols, 0, 0, 0);
                break;
            }
            case GRT_NORM:
                if (nm == NAMES_BERT && !blocks_seen) snprintf(name, sizeof name, "embeddings.LayerNorm.%s", w);
                else if (nm == NAMES_GPT2 && blocks_seen) snprintf(name, sizeof name, "ln_f.%s", w);
                else if (nm == NAMES_LLAMA && blocks_seen) snprintf(name, sizeof name, "model.norm.%s", w);
                else snprintf(name, sizeof name, "galvc.%s.%s", s->name, l.tensors[k].name);
                hf_add(t, &n, name, i, k, 0, rows, cols, 0, 0, 0);
                break;
            case GRT_HEAD:
                hf_add(t, &n, nm == NAMES_BERT ? "cls.predictions.decoder.weight" : "lm_head.weight", i, k, 0, rows, cols,
                       0, 0, 0);
                break;
            case GRT_BLOCK: {
                const char *tn = l.tensors[k].name;
                int64_t q = (int64_t)s->H * s->hd, kv = (int64_t)s->KVH * s->hd;
                int qkv = !strncmp(tn, "attn.qkv", 8), up = !strncmp(tn, "mlp.up", 6);
                if (nm == NAMES_GPT2) {
                    const char *hf = !strncmp(tn, "ln1", 3)        ? "ln_1"
                                     : !strncmp(tn, "ln2", 3)      ? "ln_2"
                                     : qkv                         ? "attn.c_attn"
                                     : !strncmp(tn, "attn.out", 8) ? "attn.c_proj"
                                     : up                          ? "mlp.c_fc"
                                                                   : "mlp.c_proj";
                    snprintf(name, sizeof name, "h.%d.%s.%s", block, hf, w);
                    hf_add(t, &n, name, i, k, 0, rows, cols, cols > 1 && strncmp(tn, "ln", 2) != 0, 0, 0);
                } else if (qkv) {
                    const char *parts[2][3] = {{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"},
                                               {"attention.self.query", "attention.self.key", "attention.self.value"}};
                    int64_t at[3] = {0, q, q + kv}, len[3] = {q, kv, kv};
                    int heads[3] = {s->rope ? s->H : 0, s->rope ? s->KVH : 0, 0};
                    for (int p = 0; p < 3; p++) {
                        snprintf(name, sizeof name, "%s.%d.%s.%s", nm == NAMES_LLAMA ? "model.layers" : "encoder.layer",
                                 block, parts[nm == NAMES_BERT][p], w);
                        hf_add(t, &n, name, i, k, at[p], len[p], cols, 0, heads[p], s->hd);
                    }
                } else if (up && s->swiglu) {
                    const char *parts[2] = {"mlp.gate_proj", "mlp.up_proj"};
                    for (int p = 0; p < 2; p++) {
                        snprintf(name, sizeof name, "%s.%d.%s.%s", nm == NAMES_LLAMA ? "model.layers" : "encoder.layer",
                                 block, nm == NAMES_LLAMA ? parts[p] : p ? "intermediate.up" : "intermediate.gate", w);
                        hf_add(t, &n, name, i, k, p * (int64_t)s->F, s->F, cols, 0, 0, 0);
                    }
                } else {
                    const char *llama = !strncmp(tn, "ln1", 3)        ? "input_layernorm"
                                        : !strncmp(tn, "ln2", 3)      ? "post_attention_layernorm"
                                        : !strncmp(tn, "attn.out", 8) ? "self_attn.o_proj"
                                        : up                          ? "mlp.up_proj"
                                                                      : "mlp.down_proj";
                    const char *bert = !strncmp(tn, "ln1", 3)        ? "attention.output.LayerNorm"
                                       : !strncmp(tn, "ln2", 3)      ? "output.LayerNorm"
                                       : !strncmp(tn, "attn.out", 8) ? "attention.output.dense"
                                       : up                          ? "intermediate.dense"
                                                                     : "output.dense";
                    snprintf(name, sizeof name, "%s.%d.%s.%s", nm == NAMES_LLAMA ? "model.layers" : "encoder.layer",
                             block, nm == NAMES_LLAMA ? llama : bert, w);
                    hf_add(t, &n, name, i, k, 0, rows, cols, 0, 0, 0);
                }
                break;
            }
            }
        }
        if (s->kind == GRT_BLOCK) block++, blocks_seen = 1;
    }
    return n;
}

/* HF row r of h as a row of our tensor: the rotary permutation within each head. */
static int64_t our_row(const HfTensor *h, int64_t r) {
    if (!h->rope_heads) return h->r0 + r;
    int64_t head = r / h->hd, j = r % h->hd, half = h->hd / 2;
    return h->r0 + head * h->hd + (j < half ? 2 * j : 2 * (j - half) + 1);
}

/* Between our whole tensor (rows of h->cols floats) and h's data: to_hf, or back. */
static void hf_convert(const HfTensor *h, float *ours, float *hf, int to_hf) {
    for (int64_t r = 0; r < h->rows; r++) {
        float *o = ours + our_row(h, r) * h->cols;
        for (int64_t c = 0; c < h->cols; c++) {
            float *x = h->transpose ? &hf[c * h->rows + r] : &hf[r * h->cols + c];
            if (to_hf) *x = o[c];
            else o[c] = *x;
        }
    }
}

/* h's shape as HF writes it. */
static GrtStTensor hf_shape(const HfTensor *h) {
    GrtStTensor t = {h->name, h->ndim, {0}};
    if (h->ndim == 1) t.shape[0] = h->rows;
    else if (h->transpose) t.shape[0] = h->cols, t.shape[1] = h->rows;
    else t.shape[0] = h->rows, t.shape[1] = h->cols;
    return t;
}

/* The most HF tensors a model of N_LAYERS layers maps to. */
enum { MAX_HF = N_LAYERS * 24 + 8 };

/* Visit every whole parameter tensor on rank 0, in layer and tensor order:
 * each layer's tensors gathered over its ZeRO-3 and TP groups, sent by its
 * stage's first rank. Collective; visit runs on rank 0 only. */
static void for_each_tensor(Model *M, GrtComm *world, void (*visit)(void *, int, int, const char *, float *, size_t),
                            void *ctx) {
    int rank = M->rank;
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
            grt_layer_shape(&shadow, &layer_specs[i], 1, 0);
        }
        for (int k = 0; k < l->n_tensors; k++) {
            if (!l->tensors[k].n) continue;
            size_t cap = l->tensors[k].n * (size_t)placement[i].tp + 1, n = l->tensors[k].n;
            float *full = grt_alloc(cap * sizeof(float));
            if (mine && M->layer[i].dp_index == 0) n = grt_layer_gather(l, k, full);
            if (!mine) grt_recv(world, full, n, owner, TAG_FWD);
            else if (rank == owner && owner != 0) grt_send(world, full, n, 0, TAG_FWD);
            if (rank == 0) visit(ctx, i, k, l->tensors[k].name, full, n);
            grt_free(full, cap * sizeof(float));
        }
    }
}

/* --dump's record of one tensor: "layer tensor count" and the floats. */
static void dump_tensor(void *ctx, int i, int k, const char *name, float *full, size_t n) {
    (void)k;
    fprintf(ctx, "%s %s %zu\n", layer_specs[i].name, name, n);
    fwrite(full, sizeof(float), n, ctx);
}

/* --dump FILE: every parameter tensor, whole, written by rank 0 as "layer
 * tensor count" lines each followed by the floats, so runs under different
 * plans can be compared with one rank's. */
static void dump_params(Model *M, GrtComm *world, const char *path) {
    FILE *f = M->rank == 0 ? fopen(path, "wb") : NULL;
    if (failures(world, M->rank != 0 || f)) stop_all(world, "--dump: cannot write the parameter file", 1);
    for_each_tensor(M, world, dump_tensor, f);
    if (failures(world, M->rank != 0 || fclose(f) == 0)) stop_all(world, "--dump: cannot write the parameter file", 1);
}

typedef struct Export {
    HfTensor *t;
    int n, next;
    GrtStWriter *w;
} Export;

/* --export-safetensors: one of our tensors becomes the HF tensors cut from it, in order. */
static void export_tensor(void *ctx, int i, int k, const char *name, float *full, size_t n) {
    Export *e = ctx;
    (void)name, (void)n;
    for (; e->next < e->n && e->t[e->next].layer == i && e->t[e->next].k == k; e->next++) {
        const HfTensor *h = &e->t[e->next];
        size_t count = (size_t)(h->rows * h->cols);
        float *hf = malloc(count * sizeof(float) + 1);
        hf_convert(h, full, hf, 1);
        grt_st_put(e->w, hf, count);
        free(hf);
    }
}

/* --export-safetensors FILE: the whole model with HF names, written by rank 0. */
static void export_safetensors(Model *M, GrtComm *world, const char *path) {
    Export e = {calloc(MAX_HF, sizeof(HfTensor)), 0, 0, NULL};
    e.n = hf_tensors(e.t);
    char err[1024] = "";
    if (M->rank == 0) {
        GrtStTensor *shapes = calloc((size_t)e.n + 1, sizeof *shapes);
        for (int j = 0; j < e.n; j++) shapes[j] = hf_shape(&e.t[j]);
        const char *family[] = {"gpt2", "llama", "bert"};
        const char *meta[] = {"format", "pt", "galvc_model", MODEL_NAME, "galvc_naming", family[naming()], NULL};
        e.w = grt_st_create(path, shapes, e.n, meta, err, sizeof err);
        free(shapes);
    }
    if (failures(world, M->rank != 0 || e.w)) {
        char msg[1200];
        snprintf(msg, sizeof msg, "--export-safetensors: %s", err);
        stop_all(world, msg, 1);
    }
    for_each_tensor(M, world, export_tensor, &e);
    int ok = M->rank != 0 || grt_st_finish(e.w, err, sizeof err) == 0;
    if (failures(world, ok)) {
        char msg[1200];
        snprintf(msg, sizeof msg, "--export-safetensors: %s", err);
        stop_all(world, msg, 1);
    }
    if (M->rank == 0) printf("exported %d tensors to %s\n", e.n, path);
    free(e.t);
}

typedef struct Import {
    const GrtSafetensors *f;
    HfTensor *t;
    int n;
} Import;

/* WholeFn for --init-safetensors: our tensor from the HF tensors cut from it; Adam's states start at zero. */
static int whole_from_safetensors(void *ctx, int i, int k, int array, float *whole, char *err, size_t errlen) {
    const Import *im = ctx;
    if (array != ARR_PARAMS) return 0;
    for (int j = 0; j < im->n; j++) {
        const HfTensor *h = &im->t[j];
        if (h->layer != i || h->k != k) continue;
        size_t count = (size_t)(h->rows * h->cols);
        float *hf = malloc(count * sizeof(float) + 1);
        if (grt_st_read_f32(im->f, grt_st_find(im->f, h->name), hf, err, errlen) != 0) {
            free(hf);
            return -1;
        }
        hf_convert(h, whole, hf, 0);
        free(hf);
    }
    return 1;
}

/* Names HF files carry that are buffers, not parameters: allowed, ignored. */
static int hf_buffer(const char *name) {
    size_t n = strlen(name);
    const char *ends[] = {".attn.bias", ".attn.masked_bias", "rotary_emb.inv_freq", "position_ids"};
    for (size_t j = 0; j < sizeof ends / sizeof ends[0]; j++) {
        size_t m = strlen(ends[j]);
        if (n >= m && !strcmp(name + n - m, ends[j])) return 1;
    }
    return 0;
}

/* --init-safetensors FILE: every rank checks the whole file against the
 * model (every name present, F32, the right shape; no unknown tensor), then
 * loads its own shards. Any mismatch stops every rank with its name. */
static void init_safetensors(Model *M, GrtComm *world, const char *path) {
    char err[1024] = "", msg[1400];
    GrtSafetensors *f = grt_st_open(path, err, sizeof err);
    Import im = {f, calloc(MAX_HF, sizeof(HfTensor)), 0};
    im.n = hf_tensors(im.t);
    for (int j = 0; f && j < im.n && !*err; j++) {
        const HfTensor *h = &im.t[j];
        GrtStTensor want = hf_shape(h);
        int at = grt_st_find(f, h->name), ndim;
        const char *dtype;
        const int64_t *shape;
        if (at < 0) {
            snprintf(err, sizeof err, "%s: no tensor '%s' (this model needs %d tensors, %s names)", path, h->name, im.n,
                     (const char *[]){"GPT-2", "LLaMA", "BERT"}[naming()]);
            break;
        }
        grt_st_info(f, at, &dtype, &ndim, &shape);
        int same = ndim == want.ndim;
        for (int d = 0; same && d < ndim; d++) same = shape[d] == want.shape[d];
        if (strcmp(dtype, "F32") != 0) snprintf(err, sizeof err, "%s: tensor '%s' is %s, this model needs F32", path, h->name, dtype);
        else if (!same) {
            char got[128] = "", need[128] = "";
            for (int d = 0; d < ndim; d++) snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "", (long long)shape[d]);
            for (int d = 0; d < want.ndim; d++) snprintf(need + strlen(need), sizeof need - strlen(need), "%s%lld", d ? ", " : "", (long long)want.shape[d]);
            snprintf(err, sizeof err, "%s: tensor '%s' has shape [%s], this model needs [%s]", path, h->name, got, need);
        }
    }
    for (int j = 0; f && !*err && j < grt_st_count(f); j++) {
        const char *name = grt_st_info(f, j, NULL, NULL, NULL);
        int known = hf_buffer(name);
        for (int q = 0; q < im.n && !known; q++) known = !strcmp(im.t[q].name, name);
        if (!known) snprintf(err, sizeof err, "%s: tensor '%s' is not a tensor of this model", path, name);
    }
    if (failures(world, !*err)) { /* every rank read the same file: rank 0 says why */
        snprintf(msg, sizeof msg, "--init-safetensors: %s", err);
        stop_all(world, msg, 1);
    }
    int ok = load_model(M, whole_from_safetensors, &im, err, sizeof err);
    if (!ok) rank_says(M->rank, err);
    if (failures(world, ok)) stop_all(world, "--init-safetensors: the file could not be read (see above)", 1);
    if (M->rank == 0) printf("initialized from %s (%d tensors)\n", path, im.n);
    grt_st_close(f);
    free(im.t);
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

    static Model M;
    build_model(&M, world, opt.seed);
    char err[1024] = "", msg[1200];
    if (opt.ckpt_dir) { /* a folder that cannot take checkpoints is found now, not after hours of training */
        int ok = rank != 0 || grt_make_dirs(opt.ckpt_dir, err, sizeof err) == 0;
        if (failures(world, ok)) {
            snprintf(msg, sizeof msg, "--ckpt-dir: %s", err);
            stop_all(world, msg, 1);
        }
    }
    long first = opt.resume ? resume(&M, world, &opt) : -1;
    if (first < 0 && opt.init_st) init_safetensors(&M, world, opt.init_st);
    if (first < 0) first = 0;

    /* the data: every rank opens it; if any rank cannot, or it is shorter than one batch, all stop */
    GrtData *data = grt_data_open(opt.data, VOCAB, opt.seed);
    if (failures(world, data != NULL)) stop_all(world, "the data could not be read (see above)", 1);
    int64_t need = (int64_t)GLOBAL_BATCH * SEQ + 1; /* one step's sequences overlap by one token */
    if (grt_data_tokens(data) < need) {
        snprintf(msg, sizeof msg, "%s: %lld tokens, too few for one batch of %d sequences of %d + 1 tokens (need %lld)",
                 opt.data ? opt.data : "the data", (long long)grt_data_tokens(data), GLOBAL_BATCH, SEQ, (long long)need);
        stop_all(world, msg, 1);
    }

    FILE *log = NULL;
    if (opt.log && rank == 0 && !(log = fopen(opt.log, "w"))) rank_says(rank, "--log: cannot write the log file");
    if (failures(world, !opt.log || rank != 0 || log)) stop_all(world, "--log: cannot write the log file", 1);
    if (log) /* what was predicted, for galvc --calibrate */
        fprintf(log,
                "{\"plan\": {\"model\": \"%s\", \"ranks\": %d, \"pp\": %d, \"micro_batches\": %d, "
                "\"predicted_step_ms\": %.6g, \"predicted_compute_ms\": %.6g, \"predicted_comm_ms\": %.6g, "
                "\"predicted_bubble_ms\": %.6g, \"predicted_calls\": %.6g}}\n",
                MODEL_NAME, RANKS, PP, MICRO_BATCHES, PREDICTED_STEP_MS, PREDICTED_COMPUTE_MS, PREDICTED_COMM_MS,
                PREDICTED_BUBBLE_MS, PREDICTED_CALLS);
    double stored = (double)M.n_stored;
    if (rank == 0)
        printf("%s: %d ranks in %d pipeline stage%s of %d, %.0f parameters stored on rank 0, global batch %d x %d "
               "tokens in %d micro-batch%s; planned %.1f ms a step\n",
               MODEL_NAME, RANKS, PP, PP > 1 ? "s" : "", STAGE_RANKS, stored, GLOBAL_BATCH, SEQ, MICRO_BATCHES,
               MICRO_BATCHES > 1 ? "es" : "", PREDICTED_STEP_MS);

    int ops[2 * MICRO_BATCHES], n_ops = schedule(&M, ops);
    long saved = -1;
    for (long step = first; step < opt.steps; step++) {
        double t0 = grt_now_ms();
        memset(M.grads, 0, M.n_stored * sizeof(float));
        M.loss = 0;
        for (int k = 0; k < n_ops; k++) {
            int mb = ops[k] >= 0 ? ops[k] : -ops[k] - 1, s = mb % M.slots;
            if (ops[k] >= 0) {
                grt_data_batch(data, step, GLOBAL_BATCH, SEQ, mb * MB, MB, M.tokens[s], M.targets[s]);
                forward(&M, world, s);
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
        if (opt.ckpt_every && (step + 1) % opt.ckpt_every == 0) save_checkpoint(&M, world, &opt, saved = step + 1);
    }
    /* with --ckpt-dir, the last step is kept too */
    if (opt.ckpt_dir && opt.steps > first && saved != opt.steps) save_checkpoint(&M, world, &opt, opt.steps);
    report_memory(world, log);
    if (log && fclose(log) != 0) grt_abort("--log: cannot write the log file", 1);
    if (opt.dump) dump_params(&M, world, opt.dump);
    if (opt.export_st) export_safetensors(&M, world, opt.export_st);
    grt_data_close(data);
    grt_finalize();
    return 0;
}
