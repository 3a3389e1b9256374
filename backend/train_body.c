/* ---- below: the same for every plan (galvc's backend/train_body.c) ---- */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Start each layer's gradient all-reduce without waiting (1), or finish it
 * before the next layer's backward (0). Open MPI's non-blocking all-reduce
 * only progresses inside MPI calls and copies through fresh buffers, so on
 * CPU ranks the blocking form, bucket by bucket, is the faster one. */
enum { NONBLOCKING_DP = 0 };

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

/* Rank r's place in the plan: its TP group and index there, its DP group and index. */
static int tp_group(int r) { return TP_CONSECUTIVE ? r / TP : r % DP; }
static int tp_index(int r) { return TP_CONSECUTIVE ? r % TP : r / DP; }
static int dp_group(int r) { return TP_CONSECUTIVE ? r % TP : r / DP; }
static int dp_index(int r) { return TP_CONSECUTIVE ? r / TP : r % DP; }

typedef struct Model {
    GrtLayer layer[N_LAYERS];
    float *params, *grads, *m, *v; /* one allocation each, every layer a slice */
    size_t n_params;
    float *act[N_LAYERS + 1];      /* act[i]: the input of layer i (act[0] unused: tokens) */
    float *dact[N_LAYERS + 1];
} Model;

/* Cut this rank's shard of every layer, allocate, initialize. */
static void build_model(Model *M, GrtComm *tp, unsigned long long seed) {
    size_t N = (size_t)LOCAL_BATCH * SEQ;
    M->n_params = 0;
    for (int i = 0; i < N_LAYERS; i++) {
        grt_layer_setup(&M->layer[i], &layer_specs[i], tp, LOCAL_BATCH, SEQ);
        M->n_params += M->layer[i].n_params;
    }
    M->params = grt_alloc(M->n_params * sizeof(float));
    M->grads = grt_alloc(M->n_params * sizeof(float));
    M->m = grt_alloc(M->n_params * sizeof(float));
    M->v = grt_alloc(M->n_params * sizeof(float));
    size_t off = 0;
    int blocks = 0;
    for (int i = 0; i < N_LAYERS; i++) blocks += layer_specs[i].kind == GRT_BLOCK;
    const GrtLayer *workspace = NULL; /* the first checkpointed block: the others share its buffers */
    for (int i = 0; i < N_LAYERS; i++) {
        if (layer_specs[i].kind == GRT_HEAD && layer_specs[i].tied) M->layer[i].tied_to = &M->layer[TIED_TO];
        if (checkpointed[i] && layer_specs[i].kind == GRT_BLOCK) {
            M->layer[i].ckpt = 1;
            const GrtLayerSpec *a = workspace ? &workspace->s : NULL, *b = &layer_specs[i];
            if (a && a->C == b->C && a->H == b->H && a->KVH == b->KVH && a->hd == b->hd && a->F == b->F &&
                a->swiglu == b->swiglu)
                M->layer[i].shares = workspace;
            else
                workspace = &M->layer[i];
        }
        grt_layer_bind(&M->layer[i], M->params + off, M->grads + off, seed, i, blocks);
        off += M->layer[i].n_params;
    }
    for (int i = 0; i <= N_LAYERS; i++) {
        M->act[i] = grt_alloc(N * HIDDEN * sizeof(float));
        M->dact[i] = grt_alloc(N * HIDDEN * sizeof(float));
    }
}

/* One micro-batch forward; returns the sum of its token losses. */
static double forward(Model *M, const int32_t *tokens, const int32_t *targets) {
    size_t N = (size_t)LOCAL_BATCH * SEQ;
    for (int i = 0; i < N_LAYERS; i++)
        grt_layer_forward(&M->layer[i], M->act[i], tokens, targets, M->act[i + 1]);
    double sum = 0; /* the head wrote each token's loss into act[N_LAYERS] */
    for (size_t k = 0; k < N; k++) sum += M->act[N_LAYERS][k];
    return sum;
}

/* One micro-batch backward, from the head down; on the last micro-batch each
 * layer's gradients start their DP all-reduce as soon as they are complete. */
static void backward(Model *M, const int32_t *tokens, const int32_t *targets, GrtComm *dp, int last,
                     GrtRequest **pending) {
    size_t N = (size_t)LOCAL_BATCH * SEQ;
    for (int i = 0; i <= N_LAYERS; i++) memset(M->dact[i], 0, N * HIDDEN * sizeof(float));
    const float dloss = 1.0f / ((float)GLOBAL_BATCH * SEQ); /* the loss is the mean over every token of the step */
    for (int i = N_LAYERS - 1; i >= 0; i--) {
        grt_layer_backward(&M->layer[i], M->act[i], tokens, targets, M->dact[i + 1], dloss, M->dact[i]);
        /* (a tied head has no parameters of its own: its table's gradient
         * goes to the embedding, whose backward comes last) */
        if (last && dp && M->layer[i].n_params) {
            if (NONBLOCKING_DP) pending[i] = grt_iallreduce(dp, M->layer[i].grads, M->layer[i].n_params);
            else grt_allreduce(dp, M->layer[i].grads, M->layer[i].n_params);
        }
    }
}

/* The global gradient norm: TP-sharded tensors summed over the TP group,
 * replicated ones counted once (by TP index 0). */
static double grad_norm(Model *M, GrtComm *tp, int tp_rank) {
    double sq = 0;
    for (int i = 0; i < N_LAYERS; i++) {
        const GrtLayer *l = &M->layer[i];
        for (int k = 0; k < l->n_tensors; k++)
            if (l->tensors[k].sharded || tp_rank == 0) sq += grt_sumsq(l->grads + l->tensors[k].offset, l->tensors[k].n);
    }
    if (tp) grt_allreduce_double(tp, &sq, 1);
    return sqrt(sq);
}

/* AdamW on every tensor; weight decay on matrices only. */
static void update(Model *M, float lr, float scale, int t) {
    size_t base = 0;
    for (int i = 0; i < N_LAYERS; i++) {
        const GrtLayer *l = &M->layer[i];
        for (int k = 0; k < l->n_tensors; k++) {
            const GrtTensor *x = &l->tensors[k];
            size_t o = base + x->offset;
            if (x->n)
                grt_adamw(M->params + o, M->grads + o, M->m + o, M->v + o, x->n, lr, BETA1, BETA2, EPS,
                          x->decay ? WEIGHT_DECAY : 0.0f, scale, t);
        }
        base += l->n_params;
    }
}

/* --dump FILE: every parameter tensor, whole (gathered over the TP group),
 * written by rank 0 as "layer tensor count" lines each followed by the
 * floats, so runs under different plans can be compared with one rank's. */
static void dump_params(Model *M, const char *path, int rank) {
    FILE *f = rank == 0 ? fopen(path, "wb") : NULL;
    if (rank == 0 && !f) grt_abort("--dump: cannot write the parameter file", 1);
    for (int i = 0; i < N_LAYERS; i++) {
        GrtLayer *l = &M->layer[i];
        for (int k = 0; k < l->n_tensors; k++) {
            if (!l->tensors[k].n) continue;
            size_t cap = l->tensors[k].n * TP + 1;
            float *full = grt_alloc(cap * sizeof(float));
            size_t n = grt_layer_gather(l, k, full);
            if (f) {
                fprintf(f, "%s %s %zu\n", layer_specs[i].name, l->tensors[k].name, n);
                fwrite(full, sizeof(float), n, f);
            }
            grt_free(full, cap * sizeof(float));
        }
    }
    if (f && fclose(f) != 0) grt_abort("--dump: cannot write the parameter file", 1);
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
    grt_set_threads(RANKS);
    GrtComm *tp = TP > 1 ? grt_comm_split(world, tp_group(rank), tp_index(rank)) : NULL;
    GrtComm *dp = DP > 1 ? grt_comm_split(world, dp_group(rank), dp_index(rank)) : NULL;

    /* the data: every rank opens it; if any rank cannot, all stop */
    GrtData *data = grt_data_open(opt.data, VOCAB, opt.seed);
    double ok = data != NULL;
    grt_allreduce_double(world, &ok, 1);
    if (ok < RANKS) stop_all(world, "the data could not be read (see above)", 1);

    Model M;
    build_model(&M, tp, opt.seed);
    FILE *log = NULL;
    if (opt.log && rank == 0 && !(log = fopen(opt.log, "w"))) grt_abort("--log: cannot write the log file", 1);
    if (rank == 0)
        printf("%s: %d ranks (TP %d x DP %d), %zu parameters on rank 0, global batch %d x %d tokens\n", MODEL_NAME,
               RANKS, TP, DP, M.n_params, GLOBAL_BATCH, SEQ);

    size_t N = (size_t)LOCAL_BATCH * SEQ;
    int32_t *tokens = grt_alloc(N * sizeof(int32_t)), *targets = grt_alloc(N * sizeof(int32_t));
    GrtRequest *pending[N_LAYERS];
    for (long step = 0; step < opt.steps; step++) {
        double t0 = grt_now_ms();
        memset(M.grads, 0, M.n_params * sizeof(float));
        memset(pending, 0, sizeof pending);
        double loss = 0;
        for (int mb = 0; mb < MICRO_BATCHES; mb++) {
            int first = dp_index(rank) * (GLOBAL_BATCH / DP) + mb * LOCAL_BATCH;
            grt_data_batch(data, step, GLOBAL_BATCH, SEQ, first, LOCAL_BATCH, tokens, targets);
            loss += forward(&M, tokens, targets);
            backward(&M, tokens, targets, dp, mb == MICRO_BATCHES - 1, pending);
        }
        for (int i = 0; i < N_LAYERS; i++)
            if (pending[i]) grt_wait(pending[i]);
        if (dp) grt_allreduce_double(dp, &loss, 1);
        loss /= (double)GLOBAL_BATCH * SEQ;
        double norm = grad_norm(&M, tp, tp ? grt_rank(tp) : 0);
        float scale = CLIP > 0 && norm > CLIP ? (float)(CLIP / norm) : 1.0f;
        update(&M, opt.lr, scale, (int)step + 1);
        double ms = grt_now_ms() - t0;
        double tokens_per_s = GLOBAL_BATCH * SEQ / (ms / 1e3);
        double gflops = 3 * FWD_FLOPS_PER_SEQ * GLOBAL_BATCH / (ms / 1e3) / 1e9;
        double peak = (double)grt_peak_bytes(); /* rank 0's */
        if (rank == 0) {
            printf("step %4ld  loss %.6f  %8.1f ms  %9.0f tok/s  %7.2f GFLOP/s  peak %.1f MiB/rank\n", step + 1,
                   loss, ms, tokens_per_s, gflops, peak / (1 << 20));
            fflush(stdout);
            if (log)
                fprintf(log, "{\"step\": %ld, \"loss\": %.9g, \"ms\": %.3f, \"tokens_per_s\": %.1f, \"peak_mem_bytes\": %.0f}\n",
                        step + 1, loss, ms, tokens_per_s, peak);
        }
    }
    if (log && fclose(log) != 0) grt_abort("--log: cannot write the log file", 1);
    if (opt.dump) dump_params(&M, opt.dump, rank);
    grt_data_close(data);
    grt_finalize();
    return 0;
}
