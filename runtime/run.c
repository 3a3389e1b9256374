/* run.c — one rank's training run, around the plan the program spells out:
 * start-up checks, the rank's buffers and shards, the step's bookkeeping
 * (the loss, the global gradient norm, clipping, AdamW, the step's line and
 * log record, checkpoints when due) and the end of the run (the memory
 * report, --dump, --export-safetensors). The program lists the forward and
 * backward calls and every collective of its plan; everything here is the
 * same for every plan.
 *
 * Failures every rank sees alike stop every rank at once (grt_stop_all);
 * one rank's own failure is said by that rank and counted by all
 * (grt_failures), so no rank is left waiting for another. */
#include "galvrt.h"
#include "galvrt_log.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void grt_stop_all(GrtComm *world, const char *msg, int status) {
    if (grt_rank(world) == 0) {
        fprintf(stderr, "galvrt: %s\n", msg);
        fflush(stderr);
    }
    grt_barrier(world); /* lets the message out before the job is torn down */
    grt_abort(NULL, status);
}

int grt_failures(GrtComm *world, int ok) {
    double bad = !ok;
    grt_allreduce_double(world, &bad, 1);
    return (int)bad;
}

void grt_rank_says(int rank, const char *msg) {
    fprintf(stderr, "galvrt: rank %d: %s\n", rank, msg);
    fflush(stderr);
}

/* ---- start-up ----------------------------------------------------------------- */

/* Refuse a plan that needs more memory on some stage than a device has. */
static void check_memory(const GrtRun *R) {
    const GrtProgram *p = R->p;
    for (int k = 0; k < p->pp; k++)
        if (p->memory_per_device > 0 && p->predicted_mem[k] > p->memory_per_device) {
            char msg[256];
            snprintf(msg, sizeof msg, "the plan needs %.1f MiB on the ranks of stage %d, more than the %.1f MiB a device has",
                     p->predicted_mem[k] / (1 << 20), k, p->memory_per_device / (1 << 20));
            grt_stop_all(R->world, msg, 1);
        }
}

GrtRun *grt_run_start(int *argc, char ***argv, const GrtProgram *p) {
    GrtRun *R = calloc(1, sizeof *R);
    if (R) R->layer = calloc((size_t)p->n_layers, sizeof *R->layer);
    if (!R || !R->layer) grt_abort("out of memory", 1);
    R->p = p;
    R->world = grt_init(argc, argv);
    R->rank = grt_rank(R->world);
    if (&galvc_target) grt_dev = galvc_target.start(&galvc_target, R->rank); /* exits 77 without a GPU */
    R->stage = R->rank / (p->ranks / p->pp);
    R->opt = grt_options_parse(R->world, p, *argc, *argv);
    grt_watchdog_limit(R->opt.comm_timeout);
    grt_breakdown_init();
    if (grt_size(R->world) != p->ranks) {
        char msg[256];
        snprintf(msg, sizeof msg, "this program was built for %d ranks; run it with mpirun -np %d", p->ranks, p->ranks);
        grt_stop_all(R->world, msg, 2);
    }
    check_memory(R);
    int local = grt_local_ranks(p->ranks);
    grt_set_threads(local);
    /* on a GPU the kernels' rows are the GPU's threads: one host thread launches them */
    grt_pool_start(grt_dev->host_memory ? grt_pool_threads_for(local) : 1);
    R->first_step = R->saved = -1;
    return R;
}

GrtComm *grt_run_group(GrtRun *R, int size, int n_groups, const int *ranks) {
    int color = -1, key = 0;
    for (int g = 0; g < n_groups; g++)
        for (int k = 0; k < size; k++)
            if (ranks[g * size + k] == R->rank) color = g, key = k;
    /* every rank splits, so the split is collective; ranks in no list get a group of their own */
    GrtComm *c = grt_comm_split(R->world, color >= 0 ? color : n_groups + R->rank, key);
    return color >= 0 && size > 1 ? c : NULL;
}

/* Integers of one sample's input: its tokens, or an image's pixels (galvrt_sizes.h). */
static int sample_ints(const GrtProgram *p) { return (int)grt_size_sample_ints(&p->spec[0], p->seq); }

/* Is the model's head a classifier (one loss per sample, not per token)? */
static int classifies(const GrtProgram *p) { return p->spec[p->n_layers - 1].kind == GRT_CLASSIFIER; }

/* Losses a step's loss is the mean of: one per token, or one per sample. */
static double loss_count(const GrtProgram *p) {
    return (double)p->global_batch * (classifies(p) ? 1 : p->spec[0].te ? p->spec[0].td : p->seq);
}

void grt_run_alloc(GrtRun *R, int stage, const GrtStageSizes *z) {
    const GrtProgram *p = R->p;
    size_t stored = z->stored, work = z->work, ckpt = z->ckpt;
    int slots = z->slots;
    if (stage != R->stage) grt_abort("grt_run_alloc: the buffers of another stage", 1);
    R->n_params = z->params, R->n_stored = stored;
    R->params = grt_run_floats(R, z->params);
    R->grads = grt_run_floats(R, stored);
    /* the optimizer's states: Adam's two moments, SGD's momentum buffer when it has momentum */
    if (p->optimizer != GRT_SGD || p->momentum > 0) R->m = grt_run_floats(R, stored);
    if (p->optimizer != GRT_SGD) R->v = grt_run_floats(R, stored);
    R->accum_floats = z->accum, R->gather_floats = z->gather, R->scatter_floats = z->scatter;
    if (z->accum) R->accum = grt_run_floats(R, z->accum);
    if (z->gather) R->full_p = grt_run_floats(R, z->gather);
    if (z->scatter) {
        R->full_g = grt_run_floats(R, z->scatter);
        R->part = grt_run_floats(R, z->scatter);
    }
    R->work_floats = work, R->ckpt_floats = ckpt;
    R->work = work ? grt_run_floats(R, work) : NULL;
    R->ckpt = ckpt ? grt_run_floats(R, ckpt) : NULL;
    R->slots = slots;
    size_t mb_tokens = (size_t)(p->global_batch / p->micro_batches) * p->seq;
    size_t mb_inputs = (size_t)(p->global_batch / p->micro_batches) * (size_t)sample_ints(p);
    R->losses = grt_run_floats(R, mb_tokens);
    R->tokens = grt_alloc(sizeof(int32_t *) * (size_t)slots);
    R->targets = grt_alloc(sizeof(int32_t *) * (size_t)slots);
    R->slot_mb = grt_alloc(sizeof(int) * (size_t)slots);
    for (int s = 0; s < slots; s++) {
        R->slot_mb[s] = 0;
        R->tokens[s] = grt_dev->alloc(mb_inputs * sizeof(int32_t));
        R->targets[s] = grt_dev->alloc(mb_tokens * sizeof(int32_t));
    }
    if (!grt_dev->host_memory) { /* the host's side of what crosses, and the gradient norm's row sums */
        R->host_tokens = grt_alloc(mb_inputs * sizeof(int32_t));
        R->host_targets = grt_alloc(mb_tokens * sizeof(int32_t));
        R->host_losses = grt_dev->host_alloc((size_t)p->micro_batches * mb_tokens * sizeof(float));
        R->norm_sums = grt_dev->alloc((stored / GRT_OPT_COLS + 1) * sizeof(double));
    }
}

float *grt_run_floats(GrtRun *R, size_t n) {
    (void)R;
    return grt_dev->alloc(n * sizeof(float));
}

/* Transformer blocks in the model (the initialization scales by their count). */
static int count_blocks(const GrtProgram *p) {
    int n = 0;
    for (int i = 0; i < p->n_layers; i++) n += p->spec[i].kind == GRT_BLOCK;
    return n;
}

/* An internal inconsistency between the sizes galvc wrote and the runtime's. */
static void sizes_differ(int i, const char *what) {
    char msg[256];
    snprintf(msg, sizeof msg, "layer %d: %s exceeds what the program allocated (galvc and libgalvrt disagree)", i, what);
    grt_abort(msg, 1);
}

/* Layer i's parameters and gradient as its calls see them: ZeRO-3's
 * gathered copy; ZeRO-1/2's whole replica; the whole gradient kept over
 * the micro-batches (ZeRO-1, ZeRO-3 once) or one micro-batch's (ZeRO-2/3). */
static void bind_buffers(GrtRun *R, const GrtShard *x, float **params, float **grads) {
    *params = x->zero == 3 ? R->full_p : R->params + x->poff;
    *grads = x->zero == 1 || x->once ? R->accum + x->aoff : x->zero >= 2 ? R->full_g : R->grads + x->off;
}

float *grt_shard_owned_params(const GrtRun *R, const GrtShard *x) {
    return R->params + x->poff + (x->zero == 1 || x->zero == 2 ? (size_t)x->dp_index * x->chunk : 0);
}

/* Do layer i's buffers fit what the program allocated? */
static void check_sizes(const GrtRun *R, int i, const GrtShard *x) {
    size_t whole = x->chunk * x->dp_size;
    if (x->off + x->stored > R->n_stored) sizes_differ(i, "its optimizer state");
    if (x->poff + (x->zero == 1 || x->zero == 2 ? whole : x->stored) > R->n_params) sizes_differ(i, "its parameters");
    if ((x->zero == 1 || x->once) && x->aoff + whole > R->accum_floats) sizes_differ(i, "its accumulated gradient");
    if (x->zero == 3 && whole > R->gather_floats) sizes_differ(i, "its ZeRO-3 working copy");
    if ((x->zero == 2 || (x->zero == 3 && !x->once)) && whole > R->scatter_floats) sizes_differ(i, "its whole gradient");
    if (grt_layer_work_floats(&x->l) > R->work_floats) sizes_differ(i, "its working space");
    if (grt_layer_ckpt_floats(&x->l) > R->ckpt_floats) sizes_differ(i, "its checkpoint area");
}

/* grt_layer_init on the device: in place in host memory, else on a host
 * copy of the layer's parameters then copied over. */
static void init_layer(GrtLayer *l, uint64_t seed, int index, int n_layers) {
    if (grt_dev->host_memory) {
        grt_layer_init(l, seed, index, n_layers);
        return;
    }
    size_t bytes = l->n_params * sizeof(float);
    float *on_device = l->params, *host = grt_alloc(bytes);
    l->params = host;
    grt_layer_init(l, seed, index, n_layers);
    l->params = on_device;
    grt_dev->to_device(on_device, host, bytes);
    grt_free(host, bytes);
}

void grt_shard_setup(GrtRun *R, int i, GrtComm *tp, GrtComm *dp, const GrtShardAt *at) {
    const GrtProgram *p = R->p;
    GrtShard *x = &R->layer[i];
    int head = i == p->n_layers - 1, ckpt = at->ckpt, copy = at->copy;
    GrtLayerSpec spec = p->spec[i];
    if (head && copy) spec.tied = 0; /* its own copy of the table */
    x->on = 1;
    x->dp = dp;
    x->dp_size = dp ? grt_size(dp) : 1;
    x->tp_index = tp ? grt_rank(tp) : 0;
    x->dp_index = dp ? grt_rank(dp) : 0;
    GrtComm *split = at->ulysses ? at->ulysses : at->cp; /* Ulysses or CP: dp is the u x dp replicas, index d u + r */
    int u = split ? grt_size(split) : 1;
    x->B = p->global_batch / p->micro_batches / (x->dp_size / u);
    x->first = x->dp_index / u * x->B;
    x->zero = x->dp_size > 1 ? at->zero : 0;
    x->once = x->zero == 3 && at->once;
    x->tied_copy = head && copy;
    if (spec.dropout > 0 && !grt_dev->host_memory) {
        char msg[160];
        snprintf(msg, sizeof msg, "%s: dropout is not trained on the %s device yet", spec.name, grt_dev->name);
        grt_abort(msg, 1);
    }
    grt_layer_setup(&x->l, &spec, tp, x->B, (spec.T ? spec.T : p->seq) / u); /* Swin's later stages read fewer tokens */
    if (u > 1 && at->ulysses) x->l.ul = at->ulysses, x->l.ul_size = u, x->l.ul_rank = grt_rank(at->ulysses);
    if (u > 1 && at->cp) x->l.cp = at->cp, x->l.cp_size = u, x->l.cp_rank = grt_rank(at->cp);
    x->l.label_stride = p->seq;
    x->l.sp = at->sp && tp && grt_size(tp) > 1;
    x->l.index = i;
    x->l.ckpt = ckpt && spec.kind == GRT_BLOCK;
    x->n = x->l.n_params;
    x->chunk = (x->n + x->dp_size - 1) / x->dp_size;
    x->stored = x->zero ? x->chunk : x->n;
    x->off = at->state, x->poff = at->params, x->aoff = at->accum;
    check_sizes(R, i, x);
    if (head && spec.tied) x->l.tied_to = &R->layer[p->tied_to].l;
    float *params, *grads;
    bind_buffers(R, x, &params, &grads);
    grt_layer_bind(&x->l, params, grads, at->slots > 0 ? at->slots : R->slots, R->work, R->ckpt);
    if (x->zero == 3) grt_dev->zero(R->full_p, R->gather_floats * sizeof(float));
    /* a tied head's copy starts as the embedding's table does */
    init_layer(&x->l, R->opt.seed, x->tied_copy ? p->tied_to : i, count_blocks(p));
    if (x->zero == 3)
        grt_dev->copy(R->params + x->poff, R->full_p + (size_t)x->dp_index * x->chunk, x->chunk * sizeof(float));
}

/* --ckpt-dir: a folder that cannot take checkpoints is found now, not after hours of training. */
static void check_ckpt_dir(GrtRun *R) {
    char err[1024] = "", msg[1200];
    int ok = R->rank != 0 || grt_make_dirs(R->opt.ckpt_dir, err, sizeof err) == 0;
    if (grt_failures(R->world, ok)) {
        snprintf(msg, sizeof msg, "--ckpt-dir: %s", err);
        grt_stop_all(R->world, msg, 1);
    }
}

/* The data: every rank opens it; if any rank cannot, or it is shorter than one batch, all stop. */
static void open_data(GrtRun *R) {
    const GrtProgram *p = R->p;
    const GrtLayerSpec *in = &p->spec[0], *head = &p->spec[p->n_layers - 1];
    if (in->kind == GRT_PATCH) {
        R->data = grt_data_open_images(R->opt.data, in->channels, in->image, head->V, R->opt.seed);
        if (grt_failures(R->world, R->data != NULL))
            grt_stop_all(R->world, "the images could not be read (see above)", 1);
        return;
    }
    R->data = grt_data_open(R->opt.data, p->vocab, R->opt.seed);
    if (grt_failures(R->world, R->data != NULL)) grt_stop_all(R->world, "the data could not be read (see above)", 1);
    int64_t need = (int64_t)p->global_batch * p->seq + 1; /* one step's sequences overlap by one token */
    if (grt_data_tokens(R->data) < need) {
        char msg[1200];
        snprintf(msg, sizeof msg, "%s: %lld tokens, too few for one batch of %d sequences of %d + 1 tokens (need %lld)",
                 R->opt.data ? R->opt.data : "the data", (long long)grt_data_tokens(R->data), p->global_batch, p->seq,
                 (long long)need);
        grt_stop_all(R->world, msg, 1);
    }
}

/* --log: rank 0 writes it, opening with what was predicted (for galvc --calibrate). */
static void open_log(GrtRun *R) {
    const GrtProgram *p = R->p;
    char msg[1200] = "";
    if (R->opt.log && R->rank == 0 && !(R->log = fopen(R->opt.log, "w")))
        snprintf(msg, sizeof msg, "--log: cannot write %s: %s", R->opt.log, strerror(errno));
    if (grt_failures(R->world, !*msg)) grt_stop_all(R->world, msg, 1); /* rank 0's message */
    if (R->log)
        fprintf(R->log,
                "{\"" LOG_KEY_PLAN "\": {\"" LOG_KEY_MODEL "\": \"%s\", \"" LOG_KEY_RANKS "\": %d, \"" LOG_KEY_PP
                "\": %d, \"" LOG_KEY_MICRO_BATCHES "\": %d, \"" LOG_KEY_PREDICTED_STEP_MS "\": %.6g, \""
                LOG_KEY_PREDICTED_COMPUTE_MS "\": %.6g, \"" LOG_KEY_PREDICTED_COMM_MS "\": %.6g, \""
                LOG_KEY_PREDICTED_BUBBLE_MS "\": %.6g, \"" LOG_KEY_PREDICTED_CALLS "\": %.6g}}\n",
                p->model, p->ranks, p->pp, p->micro_batches, p->predicted_step_ms, p->predicted_compute_ms,
                p->predicted_comm_ms, p->predicted_bubble_ms, p->predicted_calls);
}

/* ---- the training state on the host (checkpoints, --dump, safetensors) ------------ */

/* The state files (ckpt_state.c, hf_names.c) read and write the parameters
 * and the optimizer's states as host arrays. On a device without host
 * memory they get host copies for the while: state_to_host copies
 * R->params, m and v down and points R and every layer at the copies
 * (ZeRO-3's gathered parameters too, which --dump gathers into), and
 * state_back copies them up if they were loaded and points everything back.
 * The files are byte for byte the CPU target's. */
enum { TWINS = 4 }; /* params, m, v, full_p */
static struct {
    float *dev[TWINS], *host[TWINS];
    size_t n[TWINS];
} twin;

/* R's arrays that have host copies made, in twin's order. */
static void twin_arrays(GrtRun *R, float **a[TWINS], size_t n[TWINS]) {
    a[0] = &R->params, a[1] = &R->m, a[2] = &R->v, a[3] = &R->full_p;
    n[0] = R->n_params, n[1] = n[2] = R->n_stored, n[3] = R->gather_floats;
}

/* p, if it points into [from, from + n), the same place in to. */
static float *rebase(float *p, const float *from, size_t n, float *to) {
    return p && from && p >= from && p < from + n ? to + (p - from) : p;
}

/* Every layer's parameters from the arrays `from` to the arrays `to`. */
static void point_layers(GrtRun *R, float *const from[TWINS], float *const to[TWINS]) {
    for (int i = 0; i < R->p->n_layers; i++)
        for (int a = 0; a < TWINS; a++)
            R->layer[i].l.params = rebase(R->layer[i].l.params, from[a], twin.n[a], to[a]);
}

static void state_to_host(GrtRun *R) {
    if (grt_dev->host_memory) return;
    float **a[TWINS];
    twin_arrays(R, a, twin.n);
    for (int k = 0; k < TWINS; k++) {
        twin.dev[k] = *a[k];
        twin.host[k] = *a[k] ? malloc(twin.n[k] * sizeof(float) + 1) : NULL;
        if (*a[k] && !twin.host[k]) grt_abort("out of memory (the training state's host copy)", 1);
        if (*a[k]) grt_dev->to_host(twin.host[k], twin.dev[k], twin.n[k] * sizeof(float));
        *a[k] = twin.host[k];
    }
    point_layers(R, twin.dev, twin.host);
}

static void state_back(GrtRun *R, int loaded) {
    if (grt_dev->host_memory) return;
    float **a[TWINS];
    size_t n[TWINS];
    twin_arrays(R, a, n);
    point_layers(R, twin.host, twin.dev);
    for (int k = 0; k < TWINS; k++) {
        if (loaded && twin.dev[k]) grt_dev->to_device(twin.dev[k], twin.host[k], twin.n[k] * sizeof(float));
        *a[k] = twin.dev[k];
        free(twin.host[k]);
        twin.host[k] = NULL;
    }
}

void grt_run_begin(GrtRun *R) {
    const GrtProgram *p = R->p;
    if (R->tied) R->tied_sum = grt_alloc((size_t)p->vocab * p->hidden * sizeof(float));
    grt_files_check(R->world, &R->opt);
    if (R->opt.ckpt_dir) check_ckpt_dir(R);
    if (R->opt.resume || R->opt.init_st) state_to_host(R);
    long first = R->opt.resume ? grt_ckpt_resume(R) : -1;
    if (first < 0 && R->opt.init_st) grt_init_safetensors(R, R->opt.init_st);
    if (R->opt.resume || R->opt.init_st) state_back(R, 1);
    R->first_step = first < 0 ? 0 : first;
    R->step = R->first_step - 1;
    open_data(R);
    open_log(R);
    if (R->rank == 0)
        printf("%s: %d ranks in %d pipeline stage%s of %d, %.0f parameters stored on rank 0, global batch %d x %d "
               "tokens in %d micro-batch%s; planned %.1f ms a step\n",
               p->model, p->ranks, p->pp, p->pp > 1 ? "s" : "", p->ranks / p->pp, (double)R->n_stored,
               p->global_batch, p->seq, p->micro_batches, p->micro_batches > 1 ? "es" : "", p->predicted_step_ms);
    char note[256];
    if (R->rank == 0 && !grt_dev->host_memory)
        printf("device: %s (GEMMs through its BLAS, every other kernel generated)\n", grt_dev->name);
    else if (R->rank == 0)
        printf("BLAS: OpenBLAS %s kernels%s%s; threads a rank: %d for the GEMMs, %d for the other kernels%s\n",
               grt_blas_core(), grt_blas_note(note, sizeof note) ? "; " : "", grt_blas_note(note, sizeof note) ? note : "",
               grt_blas_threads(), grt_pool_threads(), getenv("GALVRT_THREADS") ? " (GALVRT_THREADS)" : "");
}

/* ---- a step ------------------------------------------------------------------- */

/* GALVRT_FAULT_SKIP_COLLECTIVE=RANK:STEP, a fault for tests only: rank RANK
 * stops calling collectives at the start of step STEP (1-based, as printed)
 * and sleeps until the job is torn down, so the other ranks block in theirs
 * and the watchdog (--comm-timeout) must stop them. */
static void fault_skip(const GrtRun *R) {
    const char *v = getenv("GALVRT_FAULT_SKIP_COLLECTIVE");
    int rank, n = 0;
    long step;
    if (!v) return;
    if (sscanf(v, "%d:%ld%n", &rank, &step, &n) != 2 || v[n])
        grt_abort("GALVRT_FAULT_SKIP_COLLECTIVE: expected RANK:STEP (a fault for tests)", 2);
    if (rank != R->rank || step != R->step + 1) return;
    char msg[160];
    snprintf(msg, sizeof msg, "GALVRT_FAULT_SKIP_COLLECTIVE: no more collectives from this rank, from step %ld on", step);
    grt_rank_says(R->rank, msg);
    for (;;) pause();
}

int grt_step_next(GrtRun *R) {
    if (++R->step >= R->opt.steps) {
        grt_watchdog_step(-1);
        return 0;
    }
    grt_watchdog_step(R->step + 1);
    fault_skip(R);
    R->t0 = grt_now_ms();
    grt_breakdown_step_begin();
    grt_part_begin(GRT_PART_ZERO);
    grt_dev->zero(R->grads, R->n_stored * sizeof(float));
    if (R->accum) grt_dev->zero(R->accum, R->accum_floats * sizeof(float));
    grt_part_end();
    R->loss = R->correct = 0;
    R->host_losses_n = 0;
    return 1;
}

/* A sequence classifier's labels (targets (B, T), each row its sequence's
 * label): the first token of the second half (the second segment's first
 * token), modulo the classes; a task the pooled first token can learn only
 * by attending to another position. */
static void sequence_labels(const GrtProgram *p, const int32_t *tokens, int32_t *targets, int B) {
    int T = p->seq, classes = p->spec[p->n_layers - 1].V;
    for (int b = 0; b < B; b++) {
        int32_t label = tokens[(size_t)b * T + T / 2] % classes;
        for (int t = 0; t < T; t++)
            targets[(size_t)b * T + t] = label;
    }
}

void grt_run_batch(GrtRun *R, int mb, int slot) {
    const GrtProgram *p = R->p;
    int MB = p->global_batch / p->micro_batches;
    grt_part_begin(GRT_PART_DATA);
    R->slot_mb[slot] = mb;
    int32_t *tokens = grt_dev->host_memory ? R->tokens[slot] : R->host_tokens;
    int32_t *targets = grt_dev->host_memory ? R->targets[slot] : R->host_targets;
    if (p->spec[0].kind == GRT_PATCH)
        grt_data_images(R->data, R->step, p->global_batch, p->seq, mb * MB, MB, tokens, targets);
    else if (p->spec[0].te)
        grt_data_t5(R->data, R->step, p->global_batch, &p->spec[0], mb * MB, MB, tokens, targets);
    else
        grt_data_batch(R->data, R->step, p->global_batch, p->seq, mb * MB, MB, tokens, targets);
    if (p->spec[0].kind == GRT_EMBEDDING && classifies(p)) sequence_labels(p, tokens, targets, MB);
    if (!grt_dev->host_memory) {
        size_t bytes = (size_t)MB * p->seq * sizeof(int32_t);
        grt_dev->to_device(R->tokens[slot], R->host_tokens, (size_t)MB * sample_ints(p) * sizeof(int32_t));
        grt_dev->to_device(R->targets[slot], R->host_targets, bytes);
    }
    grt_part_end();
}

/* Under Ulysses or CP, layer i's positions of its sequences of slot `slot`'s tokens (targets: of its targets),
 * copied into its working space (GrtLayer.ul_tokens). */
static const int32_t *ulysses_tokens(GrtRun *R, int i, int slot, int targets) {
    const GrtShard *x = &R->layer[i];
    int T = x->l.T, seq = R->p->seq;
    int32_t *dst = x->l.ul_tokens + (targets ? (size_t)x->B * T : 0);
    const int32_t *src = (targets ? R->targets[slot] : R->tokens[slot]) + (size_t)x->first * seq;
    if (x->l.cp) { /* CP: its two chunks of each sequence (grt_ring_position) */
        int c = T / 2;
        for (int b = 0; b < x->B; b++)
            for (int j = 0; j < 2; j++)
                grt_dev->copy(dst + (size_t)b * T + (size_t)j * c,
                              src + (size_t)b * seq + grt_ring_position(seq, x->l.cp_size, x->l.cp_rank, j * c),
                              sizeof(int32_t) * (size_t)c);
        return dst;
    }
    src += (size_t)x->l.ul_rank * T;
    for (int b = 0; b < x->B; b++) grt_dev->copy(dst + (size_t)b * T, src + (size_t)b * seq, sizeof(int32_t) * (size_t)T);
    return dst;
}

/* Layer i's sequences of slot `slot`'s tokens (targets: of its targets). */
static const int32_t *tokens_of(GrtRun *R, int i, int slot, int targets) {
    const GrtShard *x = &R->layer[i];
    if (x->l.ul_tokens) return ulysses_tokens(R, i, slot, targets);
    if (targets) return R->targets[slot] + (size_t)x->first * R->p->seq;
    return R->tokens[slot] + (size_t)x->first * sample_ints(R->p);
}

/* Layer i on slot `slot`'s micro-batch: its activations, and its dropout's
 * key (the step, and the step's index of its first sequence: the
 * micro-batch's first, plus this DP rank's offset in it). */
GrtLayer *grt_shard(GrtRun *R, int i, int slot) {
    GrtLayer *l = &R->layer[i].l;
    grt_layer_use_slot(l, slot);
    l->drop_seed = R->opt.seed;
    l->drop_step = R->step;
    l->drop_seq0 = (int64_t)R->slot_mb[slot % R->slots] * (R->p->global_batch / R->p->micro_batches) + R->layer[i].first;
    return l;
}

float *grt_shard_embed(GrtRun *R, int i, int slot, float *out) {
    return grt_embedding_partial(grt_shard(R, i, slot), tokens_of(R, i, slot, 0), out);
}

/* The head's per-token losses in R->losses, added to the step's loss once
 * per TP group. A device's are copied over without waiting, after the
 * step's other micro-batches' (read_losses adds them at the step's end), so
 * the step has no host synchronization for its loss. */
static void add_loss(GrtRun *R, int i) {
    const GrtShard *x = &R->layer[i];
    const GrtProgram *p = R->p;
    size_t n = (size_t)x->B * x->l.T, room = (size_t)p->micro_batches * (p->global_batch / p->micro_batches) * p->seq;
    if (x->tp_index == 0 && !grt_dev->host_memory) {
        if (R->host_losses_n + n > room) grt_abort("internal error: more losses in a step than micro-batches", 1);
        grt_dev->to_host_later(R->host_losses + R->host_losses_n, R->losses, n * sizeof(float));
        R->host_losses_n += n;
    } else if (x->tp_index == 0) {
        for (size_t k = 0; k < n; k++) R->loss += R->losses[k];
    }
    if (x->tp_index == 0) R->correct += (double)R->layer[i].l.correct;
}

/* The step's losses copied over from a device, added in the order of the
 * micro-batches and tokens (as the host's are, one micro-batch at a time). */
static void read_losses(GrtRun *R) {
    if (!R->host_losses_n) return;
    grt_dev->finish();
    for (size_t k = 0; k < R->host_losses_n; k++) R->loss += R->host_losses[k];
    R->host_losses_n = 0;
}

void grt_shard_loss(GrtRun *R, int i, int slot) {
    grt_head_loss(&R->layer[i].l, tokens_of(R, i, slot, 1), R->losses);
    add_loss(R, i);
}

void grt_shard_forward(GrtRun *R, int i, int slot, const float *in, float *out) {
    int head = i == R->p->n_layers - 1;
    grt_layer_forward(grt_shard(R, i, slot), in, tokens_of(R, i, slot, 0), tokens_of(R, i, slot, 1),
                      head ? R->losses : out);
    if (head) add_loss(R, i);
}

GrtLayer *grt_shard_backward_begin(GrtRun *R, int i, int slot, float *din) {
    GrtShard *x = &R->layer[i];
    if (x->zero == 2 || (x->zero == 3 && !x->once)) grt_dev->zero(R->full_g, x->chunk * x->dp_size * sizeof(float));
    if (din) grt_dev->zero(din, (size_t)grt_layer_rows(&x->l) * x->l.s.C * sizeof(float)); /* its input's gradient */
    return grt_shard(R, i, slot);
}

/* The weight of each loss: the step's loss is the mean over every token (every image) of the step. */
static float dloss(const GrtRun *R) { return (float)(1.0 / loss_count(R->p)); }

float *grt_shard_head_grad(GrtRun *R, int i, int slot, const float *in) {
    return grt_head_backward_partial(&R->layer[i].l, in, tokens_of(R, i, slot, 1), dloss(R));
}

void grt_shard_backward(GrtRun *R, int i, int slot, const float *in, const float *dout, float *din) {
    GrtLayer *l = grt_shard_backward_begin(R, i, slot, din);
    grt_layer_backward(l, in, tokens_of(R, i, slot, 0), tokens_of(R, i, slot, 1), dout, dloss(R), din);
}

void grt_shard_embed_backward(GrtRun *R, int i, int slot, const float *dout) {
    grt_embedding_backward_full(grt_shard(R, i, slot), tokens_of(R, i, slot, 0), dout);
}

void grt_zero3_gather(GrtRun *R, int i) {
    GrtShard *x = &R->layer[i];
    grt_allgather(x->dp, R->params + x->poff, R->full_p, x->chunk);
}

void grt_zero_reduce_once(GrtRun *R, int i) {
    GrtShard *x = &R->layer[i];
    grt_reduce_scatter(x->dp, R->accum + x->aoff, R->grads + x->off, x->chunk);
}

void grt_zero_gather_update(GrtRun *R, int i) {
    GrtShard *x = &R->layer[i];
    float *whole = R->params + x->poff;
    grt_allgather(x->dp, whole + (size_t)x->dp_index * x->chunk, whole, x->chunk); /* in place */
}

void grt_zero_reduce(GrtRun *R, int i) {
    GrtShard *x = &R->layer[i];
    grt_reduce_scatter(x->dp, R->full_g, R->part, x->chunk);
    grt_dev->add(R->grads + x->off, R->part, x->chunk);
}

int grt_shard_stored_part(const GrtShard *x, int k, size_t *a, size_t *b) {
    size_t lo = x->l.tensors[k].offset, hi = lo + x->l.tensors[k].n;
    size_t c0 = x->zero ? (size_t)x->dp_index * x->chunk : 0, c1 = c0 + x->stored;
    if (lo < c0) lo = c0;
    if (hi > c1) hi = c1;
    if (lo >= hi) return 0;
    *a = lo - c0, *b = hi - c0;
    return 1;
}

/* Shard x's stored gradient [a, b) where the host can read it: in
 * R->grads itself in host memory, else a host copy. */
static float *grads_on_host(GrtRun *R, const GrtShard *x, size_t a, size_t b) {
    float *g = R->grads + x->off + a;
    if (grt_dev->host_memory) return g;
    float *h = grt_alloc((b - a) * sizeof(float) + 1);
    grt_dev->to_host(h, g, (b - a) * sizeof(float));
    return h;
}

/* The copy from grads_on_host freed, written back first when changed. */
static void grads_back(GrtRun *R, const GrtShard *x, float *g, size_t a, size_t b, int changed) {
    if (grt_dev->host_memory) return;
    if (changed) grt_dev->to_device(R->grads + x->off + a, g, (b - a) * sizeof(float));
    grt_free(g, (b - a) * sizeof(float) + 1);
}

/* Megatron's embedding group, for a tied table kept twice: every element
 * of the whole (V, C) table is added once, by the one rank that owns it
 * (DP index 0, or its ZeRO-3 part), and the sum replaces both copies'
 * gradients. */
void grt_tied_sync(GrtRun *R, int embedding, int head) {
    if (!R->tied) return;
    size_t C = (size_t)R->p->hidden, VC = (size_t)R->p->vocab * C;
    float *full = R->tied_sum;
    memset(full, 0, VC * sizeof(float));
    int which[2] = {embedding, head};
    for (int pass = 0; pass < 2; pass++) {
        for (int w = 0; w < 2; w++) {
            GrtShard *x = &R->layer[which[w]];
            size_t a, b, base = (size_t)x->tp_index * x->l.V_l * C; /* the shard's first row */
            if (!x->on || !grt_shard_stored_part(x, 0, &a, &b)) continue;
            size_t c0 = x->zero ? (size_t)x->dp_index * x->chunk : 0;
            float *g = grads_on_host(R, x, a, b);
            for (size_t k = a; k < b; k++) {
                size_t at = base + c0 + k - x->l.tensors[0].offset;
                if (at >= VC) continue; /* vocabulary padding */
                if (pass == 0 && (x->zero || x->dp_index == 0)) full[at] += g[k - a];
                if (pass == 1) g[k - a] = full[at];
            }
            grads_back(R, x, g, a, b, pass == 1);
        }
        if (pass == 0) grt_allreduce(R->tied, full, VC);
    }
}

/* The generated sum of squares on rows of GRT_OPT_COLS over the pool: row r's sum into sums[r]. */
typedef struct SumsqCall {
    GrtSumsqFn *k;
    const float *x;
    double *sums;
} SumsqCall;

static void sumsq_rows(const GrtRows *job, int64_t r0, int64_t r1, int part) {
    const SumsqCall *c = job->ctx;
    (void)part;
    c->k(r1 - r0, c->sums + r0, c->x + r0 * GRT_OPT_COLS);
}

/* One stored part of a gradient whose squares the norm counts. */
typedef struct NormPart {
    const float *x;
    size_t n;
} NormPart;

/* The sum of the parts' squares in double where they are in a device's
 * memory: every part's rows of GRT_OPT_COLS summed by the generated kernel
 * into R->norm_sums one part after the other, its tail (fewer floats)
 * copied as it is, all of it brought over after one wait for the device,
 * then added part by part in row order, the tail by the reference: one
 * wait a step rather than one a tensor. */
static double sumsq_device(GrtRun *R, const NormPart *part, int n_parts) {
    GrtSumsqFn *k = (GrtSumsqFn *)grt_kernel_find(GRT_K_SUMSQ, GRT_OPT_COLS, 0);
    if (!k) grt_abort("internal error: no generated sum of squares on the device", 1);
    size_t rows = 0, tails = 0;
    for (int i = 0; i < n_parts; i++) rows += part[i].n / GRT_OPT_COLS, tails += part[i].n % GRT_OPT_COLS;
    if (!R->host_sums) R->host_sums = grt_dev->host_alloc((R->n_stored / GRT_OPT_COLS + 1) * sizeof(double));
    if (!R->host_tails) { /* the first step's, kept for the run: every step has the same parts */
        R->host_tails = grt_dev->host_alloc(tails * sizeof(float));
        R->tails_cap = tails;
    }
    if (tails > R->tails_cap) grt_abort("internal error: the gradient norm's parts changed between steps", 1);
    size_t r = 0, t = 0;
    for (int i = 0; i < n_parts; i++) {
        size_t pr = part[i].n / GRT_OPT_COLS, pt = part[i].n % GRT_OPT_COLS;
        if (pr) k((int64_t)pr, R->norm_sums + r, part[i].x);
        if (pt) grt_dev->to_host_later(R->host_tails + t, part[i].x + pr * GRT_OPT_COLS, pt * sizeof(float));
        r += pr, t += pt;
    }
    grt_dev->to_host_later(R->host_sums, R->norm_sums, rows * sizeof(double));
    grt_dev->finish();
    double sum = 0;
    r = t = 0;
    for (int i = 0; i < n_parts; i++) {
        size_t pr = part[i].n / GRT_OPT_COLS, pt = part[i].n % GRT_OPT_COLS;
        for (size_t j = 0; j < pr; j++) sum += R->host_sums[r + j];
        if (pt) sum += grt_sumsq(R->host_tails + t, pt);
        r += pr, t += pt;
    }
    return sum;
}

/* sum of x (n)^2 in double: the generated kernel's rows of GRT_OPT_COLS
 * (their sums added in row order, whatever the threads), the reference's on the rest */
static double sumsq(const float *x, size_t n) {
    static double *sums;
    static size_t cap;
    GrtSumsqFn *k = (GrtSumsqFn *)grt_kernel_find(GRT_K_SUMSQ, GRT_OPT_COLS, 0);
    size_t rows = k ? n / GRT_OPT_COLS : 0;
    if (rows > cap) {
        free(sums);
        if (!(sums = malloc(rows * sizeof *sums))) grt_abort("out of memory for the gradient norm", 1);
        cap = rows;
    }
    double sum = 0;
    if (rows) {
        SumsqCall c = {.k = k, .x = x, .sums = sums};
        grt_pool_run(&(GrtRows){.rows = (int64_t)rows, .cols = GRT_OPT_COLS, .fn = sumsq_rows, .ctx = &c});
    }
    for (size_t r = 0; r < rows; r++) sum += sums[r];
    return sum + grt_sumsq(x + rows * GRT_OPT_COLS, n - rows * GRT_OPT_COLS);
}

/* The global gradient norm: every element counted once, by the rank that
 * owns it (TP index 0 for tensors the TP group replicates, each rank its own
 * ZeRO part; replicas split each tensor DP ways, so no rank of the group
 * reads more than its share), summed over the world. */
static double grad_norm(GrtRun *R) {
    double sq = 0;
    int n_parts = 0, cap = 0;
    for (int i = 0; i < R->p->n_layers; i++) cap += R->layer[i].l.n_tensors;
    NormPart *part = malloc(sizeof *part * (size_t)cap + 1);
    if (!part) grt_abort("out of memory for the gradient norm", 1);
    for (int i = 0; i < R->p->n_layers; i++) {
        const GrtShard *x = &R->layer[i];
        if (!x->on || x->tied_copy) continue; /* the embedding counts a tied table */
        for (int k = 0; k < x->l.n_tensors; k++) {
            size_t a, b;
            if (!(x->l.tensors[k].sharded || x->tp_index == 0) || !grt_shard_stored_part(x, k, &a, &b)) continue;
            if (!x->zero && x->dp_size > 1) { /* this replica's part of [a, b) */
                size_t n = b - a, d = (size_t)x->dp_size, r = (size_t)x->dp_index;
                b = a + n * (r + 1) / d;
                a += n * r / d;
            }
            if (b > a) part[n_parts++] = (NormPart){R->grads + x->off + a, b - a};
        }
    }
    if (grt_dev->host_memory)
        for (int i = 0; i < n_parts; i++) sq += sumsq(part[i].x, part[i].n);
    else
        sq = sumsq_device(R, part, n_parts);
    free(part);
    grt_allreduce_double(R->world, &sq, 1);
    return sqrt(sq);
}

double grt_lr_at(const GrtProgram *p, double lr, long step) {
    if (step < p->warmup) return lr * (double)(step + 1) / (double)p->warmup; /* llm.c's warm-up */
    double min = p->min_lr < lr ? p->min_lr : lr, span = (double)(p->decay_steps - p->warmup);
    double done = span > 0 ? (double)(step - p->warmup) / span : 1;
    if (done > 1) done = 1;
    switch (p->decay) {
    case GRT_DECAY_LINEAR: return lr - done * (lr - min);
    case GRT_DECAY_COSINE: return min + 0.5 * (1 + cos(3.14159265358979323846 * done)) * (lr - min);
    case GRT_DECAY_CONSTANT: break;
    }
    return lr;
}

/* The generated optimizer update's arguments, for its rows over the pool. */
typedef struct StepCall {
    void (*k)(void);
    int kind;
    const GrtProgram *p;
    float *w, *m, *v;
    const float *g;
    float lr, wd, scale, c1, c2;
} StepCall;

static void step_rows(const GrtRows *job, int64_t r0, int64_t r1, int part) {
    const StepCall *c = job->ctx;
    const GrtProgram *p = c->p;
    size_t o = (size_t)r0 * GRT_OPT_COLS;
    float *m = c->m ? c->m + o : NULL, *v = c->v ? c->v + o : NULL;
    (void)part;
    if (c->kind == GRT_K_SGD) ((GrtSgdFn *)c->k)(r1 - r0, c->w + o, c->g + o, m, c->lr, p->momentum, c->wd, c->scale);
    else
        ((GrtAdamFn *)c->k)(r1 - r0, c->w + o, c->g + o, m, v, c->lr, p->beta1, p->beta2, p->eps, c->wd, c->scale,
                            c->c1, c->c2);
}

/* The reference optimizer's step on n elements of host memory. */
static void reference_step(const GrtProgram *p, float *w, const float *g, float *m, float *v, size_t n, float lr,
                           float wd, float scale, int t) {
    switch (p->optimizer) {
    case GRT_ADAMW: grt_adamw(w, g, m, v, n, lr, p->beta1, p->beta2, p->eps, wd, scale, t); break;
    case GRT_ADAM: grt_adam(w, g, m, v, n, lr, p->beta1, p->beta2, p->eps, wd, scale, t); break;
    case GRT_SGD: grt_sgd(w, g, m, n, lr, p->momentum, p->nesterov, wd, scale); break;
    }
}

/* The reference step on n elements in the device's memory (less than a
 * generated kernel's row): through host copies of w, g, m and v. */
static void step_on_host(GrtRun *R, float *w, const float *g, float *m, float *v, size_t n, float lr, float wd,
                         float scale, int t) {
    size_t bytes = n * sizeof(float);
    float *h = grt_alloc(4 * bytes + 1), *hw = h, *hg = h + n, *hm = m ? h + 2 * n : NULL, *hv = v ? h + 3 * n : NULL;
    grt_dev->to_host(hw, w, bytes);
    grt_dev->to_host(hg, g, bytes);
    if (m) grt_dev->to_host(hm, m, bytes);
    if (v) grt_dev->to_host(hv, v, bytes);
    reference_step(R->p, hw, hg, hm, hv, n, lr, wd, scale, t);
    grt_dev->to_device(w, hw, bytes);
    if (m) grt_dev->to_device(m, hm, bytes);
    if (v) grt_dev->to_device(v, hv, bytes);
    grt_free(h, 4 * bytes + 1);
}

/* The optimizer's step on n elements (w, g, and m, v where it keeps them at
 * o): the generated kernel on whole rows of GRT_OPT_COLS over the pool, the reference on the rest. */
static void step(GrtRun *R, float *w, const float *g, size_t o, size_t n, float lr, float wd, float scale, int t) {
    const GrtProgram *p = R->p;
    float *m = R->m ? R->m + o : NULL, *v = R->v ? R->v + o : NULL;
    int kind = p->optimizer == GRT_ADAMW ? GRT_K_ADAMW : p->optimizer == GRT_ADAM ? GRT_K_ADAM : GRT_K_SGD;
    int flags = kind != GRT_K_SGD || !m ? 0 : GRT_KF_MOMENTUM | (p->nesterov ? GRT_KF_NESTEROV : 0);
    void (*k)(void) = grt_kernel_find(kind, GRT_OPT_COLS, flags);
    size_t done = k ? n / GRT_OPT_COLS * GRT_OPT_COLS : 0, r = done / GRT_OPT_COLS;
    const float c1 = (float)(1.0 / (1.0 - pow(p->beta1, t))), c2 = (float)(1.0 / (1.0 - pow(p->beta2, t)));
    if (r) {
        StepCall c = {k, kind, p, w, m, v, g, lr, wd, scale, c1, c2};
        grt_pool_run(&(GrtRows){.rows = (int64_t)r, .cols = GRT_OPT_COLS, .fn = step_rows, .ctx = &c});
    }
    w += done, g += done, n -= done, m = m ? m + done : NULL, v = v ? v + done : NULL;
    if (grt_dev->host_memory) reference_step(p, w, g, m, v, n, lr, wd, scale, t);
    else step_on_host(R, w, g, m, v, n, lr, wd, scale, t);
}

/* The optimizer's step on every element this rank stores, at rate lr;
 * weight decay on matrices only (embeddings included; no bias or norm
 * gain), as nanoGPT does. */
static void update(GrtRun *R, float lr, float scale, int t) {
    const GrtProgram *p = R->p;
    for (int i = 0; i < p->n_layers; i++) {
        const GrtShard *x = &R->layer[i];
        for (int k = 0; x->on && k < x->l.n_tensors; k++) {
            size_t a, b;
            if (!grt_shard_stored_part(x, k, &a, &b)) continue;
            size_t o = x->off + a, n = b - a;
            float wd = x->l.tensors[k].decay ? p->weight_decay : 0.0f;
            float *w = grt_shard_owned_params(R, x) + a, *g = R->grads + o;
            step(R, w, g, o, n, lr, wd, scale, t);
        }
    }
}

/* Stop every rank at a loss or gradient norm that is not a number: training
 * cannot recover, and the last checkpoint (written before this step's
 * update) stays the last good one. */
static void check_finite(GrtRun *R, double loss, double norm) {
    if (isfinite(loss) && isfinite(norm)) return;
    char msg[256];
    snprintf(msg, sizeof msg,
             "step %ld: the %s is %g; stopping (the learning rate may be too high; any checkpoint written so far is "
             "intact)",
             R->step + 1, isfinite(loss) ? "gradient norm" : "loss", isfinite(loss) ? norm : loss);
    grt_stop_all(R->world, msg, 1);
}

void grt_step_end(GrtRun *R) {
    const GrtProgram *p = R->p;
    read_losses(R);
    double sums[2] = {R->loss, R->correct};
    grt_allreduce_double(R->world, sums, 2);
    double loss = sums[0] / loss_count(p), accuracy = sums[1] / p->global_batch;
    grt_part_begin(GRT_PART_NORM);
    double norm = grad_norm(R);
    grt_part_end();
    check_finite(R, loss, norm);
    float scale = p->clip > 0 && norm > p->clip ? (float)(p->clip / norm) : 1.0f;
    float lr = (float)grt_lr_at(p, R->opt.lr, R->step);
    grt_part_begin(GRT_PART_OPTIMIZER);
    update(R, lr, scale, (int)R->step + 1);
    grt_dev->finish(); /* a GPU's queued update is part of the step */
    grt_part_end();
    double ms = grt_now_ms() - R->t0;
    grt_part_begin(GRT_PART_LOG);
    double tokens_per_s = p->global_batch * p->seq / (ms / 1e3);
    double gflops = 3 * p->fwd_flops_per_seq * p->global_batch / (ms / 1e3) / 1e9;
    double peak = (double)grt_dev->peak_bytes(); /* rank 0's */
    if (R->rank == 0) {
        printf("step %4ld  loss %.6f  ", R->step + 1, loss);
        if (classifies(p)) printf("acc %.4f  ", accuracy);
        printf("lr %.3g  %8.1f ms  %9.0f tok/s  %7.2f GFLOP/s  peak %.1f MiB on rank 0\n", lr, ms, tokens_per_s, gflops,
               peak / (1 << 20));
        fflush(stdout);
        if (R->log) {
            fprintf(R->log, "{\"" LOG_KEY_STEP "\": %ld, \"" LOG_KEY_LOSS "\": %.9g, ", R->step + 1, loss);
            if (classifies(p)) fprintf(R->log, "\"" LOG_KEY_ACCURACY "\": %.9g, ", accuracy);
            fprintf(R->log,
                    "\"" LOG_KEY_LR "\": %.9g, \"" LOG_KEY_MS "\": %.3f, \"" LOG_KEY_TOKENS_PER_S
                    "\": %.1f, \"" LOG_KEY_PEAK_MEM_BYTES "\": %.0f}\n",
                    lr, ms, tokens_per_s, peak);
        }
    }
    grt_part_end();
    grt_breakdown_step_end();
    if (R->opt.ckpt_every && (R->step + 1) % R->opt.ckpt_every == 0) {
        state_to_host(R);
        grt_ckpt_save(R, R->saved = R->step + 1);
        state_back(R, 0);
    }
}

/* ---- the end ------------------------------------------------------------------ */

/* Peak memory of every rank beside the plan's prediction for its stage. */
static void report_memory(GrtRun *R) {
    const GrtProgram *p = R->p;
    int stage_ranks = p->ranks / p->pp;
    double *peak = calloc((size_t)p->ranks, sizeof *peak);
    if (!peak) grt_abort("out of memory", 1);
    peak[R->rank] = (double)grt_dev->peak_bytes();
    grt_allreduce_double(R->world, peak, (size_t)p->ranks);
    for (int r = 0; R->rank == 0 && r < p->ranks; r++) {
        double plan = p->predicted_mem[r / stage_ranks];
        if (!r) printf("memory per rank (MiB): measured peak / planned\n");
        printf("  rank %2d (stage %d): %8.2f / %8.2f  (%+.1f%%)\n", r, r / stage_ranks, peak[r] / (1 << 20),
               plan / (1 << 20), plan > 0 ? 100.0 * (peak[r] - plan) / plan : 0.0);
        if (R->log)
            fprintf(R->log,
                    "{\"" LOG_KEY_RANK "\": %d, \"" LOG_KEY_STAGE "\": %d, \"" LOG_KEY_PEAK_MEM_BYTES "\": %.0f, \""
                    LOG_KEY_PLANNED_MEM_BYTES "\": %.0f}\n",
                    r,
                    r / stage_ranks, peak[r], plan);
    }
    free(peak);
}

int grt_run_finish(GrtRun *R) {
    int files = R->opt.ckpt_dir || R->opt.dump || R->opt.export_st;
    if (files) state_to_host(R); /* what the files below read */
    /* with --ckpt-dir, the last step is kept too */
    if (R->opt.ckpt_dir && R->opt.steps > R->first_step && R->saved != R->opt.steps) grt_ckpt_save(R, R->opt.steps);
    report_memory(R);
    grt_breakdown_report(R->rank);
    if (R->log && (ferror(R->log) | fclose(R->log)) != 0) { /* a failed write or flush (a full disk) */
        char msg[1200];
        snprintf(msg, sizeof msg, "--log: cannot write %s: %s", R->opt.log, strerror(errno));
        grt_abort(msg, 1);
    }
    if (R->opt.dump) grt_dump_params(R, R->opt.dump);
    if (R->opt.export_st) grt_export_safetensors(R, R->opt.export_st);
    if (files) state_back(R, 0);
    grt_data_close(R->data);
    grt_finalize();
    return 0;
}
