/* ckpt_state.c — checkpoints of the training state: grt_ckpt_save writes
 * one, collectively, and grt_ckpt_resume loads the newest intact one under
 * whatever plan the program has now. Everything here depends on the model
 * and on the plan only through GrtProgram and the rank's shards, so it lives
 * in the runtime, once, instead of in every program galvc emits. The file
 * operations themselves (atomic writes, CRC-32, listing) are checkpoint.c's.
 *
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
 * refused and the next older checkpoint is tried.
 *
 * Each rank lists its own pieces from its shards; rank 0 learns everyone's
 * through two all-reduces (piece fields are exact in doubles) and writes
 * them in rank order, pieces in layer order. */
#include "state_io.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_CKPT_RANKS = 1 << 16, PIECE_FIELDS = 8, MAX_CKPT_STEPS = 4096 };
/* Buffers: a path, a reason (which may name a path), a message (a path and a reason). */
enum { PATH_LEN = 4096, ERR_LEN = PATH_LEN + 512, MSG_LEN = PATH_LEN + ERR_LEN + 256 };

/* One piece of a rank's checkpoint file. */
typedef struct Piece {
    int rank, layer, tp_index, dp_index;
    long n;            /* floats of the layer's TP shard */
    long begin, count; /* the floats [begin, begin + count) of that shard */
    long offset;       /* bytes into the rank's file: count params, count m, count v */
} Piece;

/* One layer as a MANIFEST records it. */
typedef struct ManifestLayer {
    int kind, tp, dp, sdp;
    long params; /* whole layer, one rank */
} ManifestLayer;

/* A checkpoint's MANIFEST, read back. */
typedef struct Manifest {
    long step, data_position;
    unsigned long long seed;
    int ranks, pp, global_batch, seq, n_layers;
    ManifestLayer *layer; /* [the program's n_layers] */
    long *file_bytes;
    unsigned long *file_crc;
    Piece *piece;
    int n_pieces;
} Manifest;

/* A growing text (the MANIFEST being written). */
typedef struct Text {
    char *s;
    size_t len, cap;
} Text;

/* Append printf's output for fmt to t. */
__attribute__((format(printf, 2, 3))) static void text_add(Text *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t n = (size_t)vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (t->len + n + 1 > t->cap) {
        t->cap = 2 * (t->len + n + 1);
        t->s = realloc(t->s, t->cap);
    }
    va_start(ap, fmt);
    vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += n;
}

/* Parameters of layer i on one rank (a tied head without a copy has none of its own). */
static long layer_params(const GrtProgram *p, int i) {
    GrtLayer l;
    grt_layer_shape(&l, &p->spec[i], 1, 0);
    return (long)l.n_params;
}

/* The pieces this rank writes, from its shards, into out (may be NULL); their count. */
static int own_pieces(const GrtRun *R, Piece *out) {
    int n = 0, head = R->p->n_layers - 1;
    long offset = 0;
    for (int i = 0; i < R->p->n_layers; i++) {
        const GrtShard *x = &R->layer[i];
        if (!x->on) continue;
        if (i == head && R->p->spec[i].tied) continue; /* the table is the embedding's */
        if (!x->sdp && x->dp_index != 0) continue;     /* a replica: DP index 0 writes it */
        long full = (long)x->n, chunk = (long)x->chunk;
        long begin = x->sdp ? x->dp_index * chunk : 0, count = x->sdp ? chunk : full;
        if (begin + count > full) count = full > begin ? full - begin : 0;
        if (!count) continue;
        if (out) out[n] = (Piece){R->rank, i, x->tp_index, x->dp_index, full, begin, count, offset};
        n++;
        offset += 3 * count * (long)sizeof(float);
    }
    return n;
}

/* DIR/step-N[/name] into buf. */
static void ckpt_path(char *buf, size_t len, const char *dir, long step, const char *name) {
    if (name)
        snprintf(buf, len, "%s/step-%08ld/%s", dir, step, name);
    else
        snprintf(buf, len, "%s/step-%08ld", dir, step);
}

/* DIR/step-N/rank-R.bin into buf. */
static void rank_file(char *buf, size_t len, const char *dir, long step, int rank) {
    char name[64];
    snprintf(name, sizeof name, "rank-%05d.bin", rank);
    ckpt_path(buf, len, dir, step, name);
}

/* Remove complete checkpoints beyond the newest `keep`, incomplete folders older than the newest complete one, and
 * refused-step-N folders beyond the newest `keep` (rank 0). */
static void prune_checkpoints(const char *dir, long keep) {
    long steps[MAX_CKPT_STEPS];
    int n = grt_ckpt_steps(dir, "step-", steps, MAX_CKPT_STEPS), complete = 0;
    for (int j = 0; j < n; j++) {
        char path[PATH_LEN], folder[PATH_LEN];
        ckpt_path(path, sizeof path, dir, steps[j], "MANIFEST");
        ckpt_path(folder, sizeof folder, dir, steps[j], NULL);
        FILE *f = fopen(path, "r");
        if (f) fclose(f), complete++;
        if ((f && complete <= keep) || (!f && complete == 0)) continue;
        /* the manifest goes first: a folder half removed is incomplete, never loaded */
        if ((remove(path) != 0 && f) || grt_remove_dir(folder) != 0)
            fprintf(stderr, "galvrt: warning: cannot remove old checkpoint %s\n", folder);
    }
    n = grt_ckpt_steps(dir, "refused-step-", steps, MAX_CKPT_STEPS);
    for (int j = (int)(keep < n ? keep : n); j < n; j++) {
        char folder[PATH_LEN];
        snprintf(folder, sizeof folder, "%s/refused-step-%08ld", dir, steps[j]);
        if (grt_remove_dir(folder) != 0)
            fprintf(stderr, "galvrt: warning: cannot remove refused checkpoint %s\n", folder);
    }
}

/* Rank 0 makes the folder of checkpoint `step` and removes a stale MANIFEST from it; a failure stops every rank. */
static void ckpt_folder(GrtRun *R, long step, char *folder, size_t len) {
    char path[PATH_LEN], err[ERR_LEN] = "";
    ckpt_path(folder, len, R->opt.ckpt_dir, step, NULL);
    int ok = 1;
    if (R->rank == 0) {
        ok = grt_make_dirs(folder, err, sizeof err) == 0;
        ckpt_path(path, sizeof path, R->opt.ckpt_dir, step, "MANIFEST");
        remove(path); /* a stale one from an abandoned run would name other files */
        if (!ok) grt_rank_says(R->rank, err);
    }
    if (grt_failures(R->world, ok)) {
        snprintf(err, sizeof err, "checkpoint at step %ld failed (see above); the earlier checkpoints are intact",
                 step);
        grt_stop_all(R->world, err, 1);
    }
}

/* This rank's file of checkpoint `step`: its np pieces pc; its size and CRC into meta[0..1]. 0 with the reason said on
 * failure. */
static int write_rank_file(GrtRun *R, long step, const Piece *pc, int np, double *meta) {
    GrtSpan *spans = calloc(3 * (size_t)np + 1, sizeof *spans);
    long bytes = 0;
    for (int j = 0; j < np; j++) {
        size_t at = R->layer[pc[j].layer].off, n = (size_t)pc[j].count * sizeof(float);
        spans[3 * j] = (GrtSpan){R->params + at, n};
        spans[3 * j + 1] = (GrtSpan){R->m + at, n};
        spans[3 * j + 2] = (GrtSpan){R->v + at, n};
        bytes += 3 * (long)n;
    }
    char path[PATH_LEN], err[ERR_LEN] = "";
    rank_file(path, sizeof path, R->opt.ckpt_dir, step, R->rank);
    uint32_t crc = 0;
    int ok = grt_write_atomic(path, spans, 3 * np, &crc, err, sizeof err) == 0;
    if (!ok) grt_rank_says(R->rank, err);
    free(spans);
    meta[0] = (double)bytes, meta[1] = (double)crc;
    return ok;
}

/* Every rank's pieces, in rank order, on every rank (collective): counts[r]
 * is rank r's count (already summed over the world), mine this rank's. */
static Piece *all_pieces(GrtRun *R, const double *counts, const Piece *mine, int *total) {
    int first = 0, n = 0;
    for (int r = 0; r < R->p->ranks; r++) {
        if (r < R->rank) first += (int)counts[r];
        n += (int)counts[r];
    }
    double *f = calloc((size_t)n * PIECE_FIELDS + 1, sizeof *f);
    for (int j = 0; j < (int)counts[R->rank]; j++) {
        const Piece *p = &mine[j];
        double *at = f + (size_t)(first + j) * PIECE_FIELDS;
        at[0] = p->rank, at[1] = p->layer, at[2] = p->tp_index, at[3] = p->dp_index;
        at[4] = (double)p->n, at[5] = (double)p->begin, at[6] = (double)p->count, at[7] = (double)p->offset;
    }
    grt_allreduce_double(R->world, f, (size_t)n * PIECE_FIELDS);
    Piece *all = calloc((size_t)n + 1, sizeof *all);
    for (int j = 0; j < n; j++) {
        const double *at = f + (size_t)j * PIECE_FIELDS;
        all[j] =
            (Piece){(int)at[0], (int)at[1], (int)at[2], (int)at[3], (long)at[4], (long)at[5], (long)at[6], (long)at[7]};
    }
    free(f);
    *total = n;
    return all;
}

/* Rank 0: the MANIFEST of checkpoint `step` (meta: every file's size and CRC; all: every piece). 0 with the reason said
 * on failure. */
static int write_manifest(GrtRun *R, long step, const double *meta, const Piece *all, int total) {
    const GrtProgram *p = R->p;
    Text t = {0};
    text_add(&t, "galvc-checkpoint 1\nmodel %s\nstep %ld\nseed %llu\ndata_position %ld\nbatch %d %d\n", p->model, step,
             R->opt.seed, step * p->global_batch * p->seq, p->global_batch, p->seq);
    text_add(&t, "plan %d %d\nlayers %d\n", p->ranks, p->pp, p->n_layers);
    for (int i = 0; i < p->n_layers; i++)
        text_add(&t, "layer %d %d %ld %d %d %d\n", i, (int)p->spec[i].kind, layer_params(p, i), p->cut[i].tp,
                 p->cut[i].dp, p->cut[i].sdp && p->cut[i].dp > 1);
    for (int r = 0; r < p->ranks; r++)
        text_add(&t, "file %d %.0f %.0f\n", r, meta[2 * r], meta[2 * r + 1]);
    for (int j = 0; j < total; j++)
        text_add(&t, "piece %d %d %d %d %ld %ld %ld %ld\n", all[j].rank, all[j].layer, all[j].tp_index, all[j].dp_index,
                 all[j].n, all[j].begin, all[j].count, all[j].offset);
    text_add(&t, "crc32 %lu\n", (unsigned long)grt_crc32(0, t.s, t.len));
    char path[PATH_LEN], err[ERR_LEN] = "";
    ckpt_path(path, sizeof path, R->opt.ckpt_dir, step, "MANIFEST");
    GrtSpan span = {t.s, t.len};
    int ok = grt_write_atomic(path, &span, 1, NULL, err, sizeof err) == 0;
    if (!ok) grt_rank_says(R->rank, err);
    free(t.s);
    return ok;
}

/* Write checkpoint `step` (every rank; collective). A failure on any rank
 * stops every rank, after saying which and why; the previous checkpoints
 * stay as they were. */
void grt_ckpt_save(GrtRun *R, long step) {
    int ranks = R->p->ranks;
    char folder[PATH_LEN], err[ERR_LEN];
    ckpt_folder(R, step, folder, sizeof folder);
    int np = own_pieces(R, NULL);
    Piece *pc = calloc((size_t)np + 1, sizeof *pc);
    own_pieces(R, pc);
    /* every file's size and CRC, and every rank's piece count, to every rank */
    double *meta = calloc(3 * (size_t)ranks, sizeof *meta), *counts = meta + 2 * ranks;
    int ok = write_rank_file(R, step, pc, np, meta + 2 * R->rank);
    counts[R->rank] = np;
    int bad = grt_failures(R->world, ok);
    if (bad) {
        snprintf(err, sizeof err,
                 "checkpoint at step %ld failed on %d rank%s (see above); the earlier checkpoints are intact", step,
                 bad, bad > 1 ? "s" : "");
        grt_stop_all(R->world, err, 1);
    }
    grt_allreduce_double(R->world, meta, 3 * (size_t)ranks);
    int total;
    Piece *all = all_pieces(R, counts, pc, &total);
    if (R->rank == 0) ok = write_manifest(R, step, meta, all, total);
    free(all), free(pc), free(meta);
    if (grt_failures(R->world, ok)) {
        snprintf(err, sizeof err,
                 "checkpoint at step %ld: its MANIFEST could not be written (see above); the earlier "
                 "checkpoints are intact",
                 step);
        grt_stop_all(R->world, err, 1);
    }
    if (R->rank == 0) {
        prune_checkpoints(R->opt.ckpt_dir, R->opt.ckpt_keep);
        printf("checkpoint: step %ld written to %s\n", step, folder);
        fflush(stdout);
    }
}

/* The whole file at path, NUL-terminated, its length in *len; NULL when it cannot be opened. */
static char *read_text(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16;
    char *text = malloc(cap + 1);
    *len = 0;
    for (size_t r; (r = fread(text + *len, 1, cap - *len, f)) > 0;) {
        *len += r;
        if (*len == cap) text = realloc(text, (cap *= 2) + 1);
    }
    fclose(f);
    text[*len] = 0;
    return text;
}

/* One line of a MANIFEST into mf (layers below n_layers, this program's); 0 when malformed. */
static int parse_line(Manifest *mf, const char *line, int n_layers) {
    int i, k, r, kind, tp, dp, sdp, ok = 1;
    long a, b, c, d;
    double x, y;
    char model[256];
    if (!strncmp(line, "galvc-checkpoint ", 17))
        ok = atoi(line + 17) == 1;
    else if (sscanf(line, "model %255s", model) == 1)
        return 1;
    else if (sscanf(line, "step %ld", &mf->step) == 1)
        return 1;
    else if (sscanf(line, "seed %llu", &mf->seed) == 1)
        return 1;
    else if (sscanf(line, "data_position %ld", &mf->data_position) == 1)
        return 1;
    else if (sscanf(line, "batch %d %d", &mf->global_batch, &mf->seq) == 2)
        return 1;
    else if (sscanf(line, "plan %d %d", &mf->ranks, &mf->pp) == 2) {
        ok = mf->ranks > 0 && mf->ranks <= MAX_CKPT_RANKS;
        if (ok) {
            free(mf->file_bytes), free(mf->file_crc); /* a repeated plan line replaces the first */
            mf->file_bytes = calloc((size_t)mf->ranks, sizeof(long));
            mf->file_crc = calloc((size_t)mf->ranks, sizeof(unsigned long));
            for (int q = 0; q < mf->ranks; q++)
                mf->file_bytes[q] = -1;
        }
    } else if (sscanf(line, "layers %d", &mf->n_layers) == 1)
        return 1;
    else if (sscanf(line, "layer %d %d %ld %d %d %d", &i, &kind, &a, &tp, &dp, &sdp) == 6) {
        ok = i >= 0 && i < n_layers && tp > 0 && dp > 0;
        if (ok) mf->layer[i] = (ManifestLayer){kind, tp, dp, sdp, a};
    } else if (sscanf(line, "file %d %lf %lf", &r, &x, &y) == 3) {
        ok = mf->file_bytes && r >= 0 && r < mf->ranks;
        if (ok) mf->file_bytes[r] = (long)x, mf->file_crc[r] = (unsigned long)y;
    } else if (sscanf(line, "piece %d %d %d %d %ld %ld %ld %ld", &r, &i, &k, &dp, &a, &b, &c, &d) == 8) {
        ok = r >= 0 && r < mf->ranks && i >= 0 && i < n_layers && k >= 0 && b >= 0 && c >= 0 && b + c <= a && d >= 0;
        if (ok) {
            mf->piece = realloc(mf->piece, sizeof(Piece) * (size_t)(mf->n_pieces + 1));
            mf->piece[mf->n_pieces++] = (Piece){r, i, k, dp, a, b, c, d};
        }
    } else if (strncmp(line, "crc32 ", 6) != 0)
        ok = 0;
    return ok;
}

/* Read and check a MANIFEST for a program of n_layers layers; 0 with the reason in err when unreadable, damaged or
 * malformed. */
static int read_manifest(const char *path, int n_layers, Manifest *mf, char *err, size_t errlen) {
    memset(mf, 0, sizeof *mf);
    size_t len = 0;
    char *text = read_text(path, &len);
    if (!text) {
        snprintf(err, errlen, "%s: missing (the checkpoint is incomplete)", path);
        return 0;
    }
    char *last = len ? strstr(text, "\ncrc32 ") : NULL;
    unsigned long want = 0;
    if (!last || sscanf(last + 7, "%lu", &want) != 1 || grt_crc32(0, text, (size_t)(last + 1 - text)) != want) {
        snprintf(err, errlen, "%s: damaged (its checksum does not match)", path);
        free(text);
        return 0;
    }
    mf->layer = calloc((size_t)n_layers + 1, sizeof *mf->layer);
    int ok = 1;
    for (char *line = strtok(text, "\n"); line && ok; line = strtok(NULL, "\n"))
        if (!(ok = parse_line(mf, line, n_layers))) snprintf(err, errlen, "%s: malformed line '%.80s'", path, line);
    free(text);
    if (ok && (!mf->file_bytes || mf->n_layers <= 0)) {
        snprintf(err, errlen, "%s: incomplete (no plan or layers)", path);
        ok = 0;
    }
    return ok;
}

/* Is the checkpoint of this model (same layers, batch and sequence length)? 0 with the reason when not. */
static int same_model(const GrtProgram *p, const Manifest *mf, char *err, size_t errlen) {
    if (mf->n_layers != p->n_layers) {
        snprintf(err, errlen, "it holds a model of %d layers, this program trains %d", mf->n_layers, p->n_layers);
        return 0;
    }
    for (int i = 0; i < p->n_layers; i++)
        if (mf->layer[i].kind != (int)p->spec[i].kind || mf->layer[i].params != layer_params(p, i)) {
            snprintf(err, errlen, "its layer %d (%ld parameters) is not this model's layer %d '%s' (%ld parameters)", i,
                     mf->layer[i].params, i, p->spec[i].name, layer_params(p, i));
            return 0;
        }
    if (mf->global_batch != p->global_batch || mf->seq != p->seq) {
        snprintf(err, errlen,
                 "it was trained with a global batch of %d x %d tokens, this program uses %d x %d: its data position "
                 "cannot be continued",
                 mf->global_batch, mf->seq, p->global_batch, p->seq);
        return 0;
    }
    return 1;
}

/* Free what read_manifest allocated. */
static void free_manifest(Manifest *mf) {
    free(mf->layer);
    free(mf->file_bytes);
    free(mf->file_crc);
    free(mf->piece);
    memset(mf, 0, sizeof *mf);
}

/* Whole tensor k of layer i from a checkpoint: each of the writer's TP
 * shards rebuilt from its pieces, then placed in the whole tensor. */
typedef struct CkptSource {
    const GrtProgram *p;
    const Manifest *mf;
    const char *dir;
} CkptSource;

/* Floats [lo, lo + n) of TP shard t of layer i, array `array`, from the
 * checkpoint's pieces into shard: how many were found; -1 with the reason in
 * err when a file cannot be read (tensor: the tensor's name, for it). */
static long read_shard(const CkptSource *cs, int i, int t, int array, long lo, long n, float *shard, const char *tensor,
                       char *err, size_t errlen) {
    const Manifest *mf = cs->mf;
    long covered = 0;
    for (int j = 0; j < mf->n_pieces; j++) {
        const Piece *p = &mf->piece[j];
        if (p->layer != i || p->tp_index != t) continue;
        long a = p->begin > lo ? p->begin : lo, b = p->begin + p->count < lo + n ? p->begin + p->count : lo + n;
        if (a >= b) continue;
        char path[PATH_LEN];
        rank_file(path, sizeof path, cs->dir, mf->step, p->rank);
        uint64_t at = (uint64_t)p->offset + ((uint64_t)array * p->count + (uint64_t)(a - p->begin)) * sizeof(float);
        if (grt_read_range(path, at, shard + (a - lo), (size_t)(b - a) * sizeof(float)) != 0) {
            snprintf(err, errlen, "%s: cannot read layer %d's tensor %s", path, i, tensor);
            return -1;
        }
        covered += b - a;
    }
    return covered;
}

/* GrtWholeFn for a checkpoint: the writer's shapes are the program's layer
 * (a head's own table, untied) cut tp ways as the MANIFEST says. */
static int whole_from_ckpt(void *ctx, int i, int k, int array, float *whole, char *err, size_t errlen) {
    const CkptSource *cs = ctx;
    const Manifest *mf = cs->mf;
    int tp = mf->layer[i].tp;
    GrtLayerSpec spec = cs->p->spec[i];
    if (i == cs->p->n_layers - 1) spec.tied = 0;
    for (int t = 0; t < tp; t++) {
        GrtLayer old;
        grt_layer_shape(&old, &spec, tp, t);
        long lo = (long)old.tensors[k].offset, n = (long)old.tensors[k].n;
        float *shard = calloc((size_t)n + 1, sizeof(float));
        long covered = read_shard(cs, i, t, array, lo, n, shard, old.tensors[k].name, err, errlen);
        if (covered >= 0 && covered != n)
            snprintf(err, errlen, "checkpoint step %ld lacks part of layer %d's tensor %s (TP rank %d)", mf->step, i,
                     old.tensors[k].name, t);
        if (covered == n) grt_layer_place(&old, k, shard, whole, 1);
        free(shard);
        if (covered != n) return -1;
    }
    return 1;
}

/* Layer i's TP shard (x->n floats) of array `array` from source's whole tensors; 0 on failure. */
static int load_shard(GrtRun *R, int i, int array, float *shard, GrtWholeFn source, void *ctx, char *err,
                      size_t errlen) {
    GrtShard *x = &R->layer[i];
    int src = x->tied_copy ? R->p->tied_to : i;
    memset(shard, 0, x->n * sizeof(float));
    for (int k = 0; k < x->l.n_tensors; k++) {
        if (!x->l.tensors[k].n) continue;
        int64_t rows, cols;
        grt_tensor_shape(&x->l, k, &rows, &cols);
        float *whole = calloc((size_t)(rows * cols) + 1, sizeof(float));
        int got = source(ctx, src, src == i ? k : 0, array, whole, err, errlen);
        if (got > 0) grt_layer_place(&x->l, k, shard + x->l.tensors[k].offset, whole, 0);
        free(whole);
        if (got < 0) return 0;
    }
    return 1;
}

/* Every stored parameter, m and v of this rank from source (see state_io.h). */
int grt_load_model(GrtRun *R, GrtWholeFn source, void *ctx, char *err, size_t errlen) {
    float *arrays[3] = {R->params, R->m, R->v};
    for (int i = 0; i < R->p->n_layers; i++) {
        GrtShard *x = &R->layer[i];
        if (!x->on || !x->n) continue;
        float *shard = calloc(x->n + 1, sizeof(float));
        for (int a = 0; a < 3; a++) {
            if (!load_shard(R, i, a, shard, source, ctx, err, errlen)) {
                free(shard);
                return 0;
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

/* Check files rank, rank + ranks, ... of a checkpoint against its MANIFEST (ranks: this program's); 0 with the reason
 * when one differs. */
static int check_files(const Manifest *mf, const char *dir, int rank, int ranks, char *err, size_t errlen) {
    for (int r = rank; r < mf->ranks; r += ranks) {
        char path[PATH_LEN];
        rank_file(path, sizeof path, dir, mf->step, r);
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

/* Checkpoint `step`'s MANIFEST read and every file checked (collective); 0
 * when any rank found a problem (each says its own; the MANIFEST's, every
 * rank sees alike, rank 0 says). A checkpoint of another model stops every rank. */
static int ckpt_intact(GrtRun *R, long step, Manifest *mf) {
    char err[ERR_LEN], path[PATH_LEN], msg[MSG_LEN];
    ckpt_path(path, sizeof path, R->opt.ckpt_dir, step, "MANIFEST");
    int ok = read_manifest(path, R->p->n_layers, mf, err, sizeof err);
    if (ok && mf->step != step) snprintf(err, sizeof err, "%s: names step %ld", path, mf->step), ok = 0;
    if (ok && !same_model(R->p, mf, err, sizeof err)) {
        snprintf(msg, sizeof msg, "%s: not a checkpoint of this model: %s", path, err);
        grt_stop_all(R->world, msg, 1);
    }
    if (ok) ok = check_files(mf, R->opt.ckpt_dir, R->rank, R->p->ranks, err, sizeof err);
    /* manifest problems every rank sees alike (rank 0 says them); a file's only the rank that checked it */
    if (!ok && (R->rank == 0 || strstr(err, ".bin"))) grt_rank_says(R->rank, err);
    return grt_failures(R->world, ok) == 0;
}

/* Rank 0: set refused checkpoint `step` aside as refused-step-N (kept for a look, never tried again) and say so. */
static void refuse(const char *dir, long step) {
    char folder[PATH_LEN], to[PATH_LEN + 64];
    ckpt_path(folder, sizeof folder, dir, step, NULL);
    snprintf(to, sizeof to, "%s/refused-step-%08ld", dir, step);
    fprintf(stderr, "galvrt: checkpoint %s refused (see above); %s\n", folder,
            rename(folder, to) == 0 ? "renamed refused-step-N, trying an older one" : "trying an older one");
    fflush(stderr);
}

/* Load an intact checkpoint (collective): its seed replaces --seed; its step. */
static long ckpt_load(GrtRun *R, Manifest *mf) {
    char err[ERR_LEN];
    CkptSource cs = {R->p, mf, R->opt.ckpt_dir};
    int ok = grt_load_model(R, whole_from_ckpt, &cs, err, sizeof err);
    if (!ok) grt_rank_says(R->rank, err);
    if (grt_failures(R->world, ok)) grt_stop_all(R->world, "the checkpoint could not be loaded (see above)", 1);
    if (R->rank == 0) {
        printf("resumed from %s/step-%08ld (step %ld, written by %d ranks in %d stage%s%s)\n", R->opt.ckpt_dir,
               mf->step, mf->step, mf->ranks, mf->pp, mf->pp > 1 ? "s" : "",
               R->opt.seed_given && R->opt.seed != mf->seed ? "; its seed replaces --seed" : "");
        fflush(stdout);
    }
    R->opt.seed = mf->seed;
    return mf->step;
}

/* --resume: load the newest intact checkpoint of --ckpt-dir (every rank;
 * collective) and return its step; -1 when the folder holds none yet.
 * Damaged or incomplete ones are refused with the reason, renamed
 * refused-step-N (kept for a look, never tried again) and the next older
 * one is tried; none intact stops every rank. */
long grt_ckpt_resume(GrtRun *R) {
    const char *dir = R->opt.ckpt_dir;
    long steps[MAX_CKPT_STEPS];
    int n = grt_ckpt_steps(dir, "step-", steps, MAX_CKPT_STEPS), refused = 0;
    for (int j = 0; j < n; j++) {
        Manifest mf;
        if (!ckpt_intact(R, steps[j], &mf)) {
            free_manifest(&mf);
            refused++;
            if (R->rank == 0) refuse(dir, steps[j]);
            continue;
        }
        long step = ckpt_load(R, &mf);
        free_manifest(&mf);
        return step;
    }
    if (refused) {
        char msg[MSG_LEN];
        snprintf(msg, sizeof msg, "--resume: no intact checkpoint in %s (%d refused)", dir, refused);
        grt_stop_all(R->world, msg, 1);
    }
    if (R->rank == 0) {
        printf("--resume: no checkpoint in %s yet; starting from step 0\n", dir);
        fflush(stdout);
    }
    return -1;
}
