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
 * its own CRC-32 last and nothing after it) names the model (its name, each
 * layer's kind and parameter count, and each layer's spec: every
 * GrtLayerSpec field that changes the math), the step, the seed (the initialization and the synthetic data are
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
 * refused and the next older checkpoint is tried. Every number read back is
 * range-checked (ranks, degrees, pieces against their layer's shard and
 * their file) before it sizes a loop or an offset: a wrong one refuses the
 * checkpoint, never overflows. A checkpoint of another model, or of MANIFEST
 * version 1 (before the specs were written), stops every rank with what
 * differs and is left where it is.
 *
 * Each rank lists its own pieces from its shards; rank 0 learns everyone's
 * through two all-reduces (piece fields are exact in doubles) and writes
 * them in rank order, pieces in layer order. */
#include "state_io.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_CKPT_RANKS = 1 << 16, PIECE_FIELDS = 8, MAX_CKPT_STEPS = 4096, MANIFEST_VERSION = 2 };
/* Buffers: a path, a reason (which may name a path), a message (a path and a reason). */
enum { PATH_LEN = 4096, ERR_LEN = PATH_LEN + 512, MSG_LEN = PATH_LEN + ERR_LEN + 256 };

/* One piece of a rank's checkpoint file. */
typedef struct Piece {
    int rank, layer, tp_index, dp_index;
    long n;            /* floats of the layer's TP shard */
    long begin, count; /* the floats [begin, begin + count) of that shard */
    long offset;       /* bytes into the rank's file: count params, count m, count v */
} Piece;

/* The GrtLayerSpec fields that change the math, as a MANIFEST's spec lines name them. */
#define SPEC_FIELDS(X)                                                                                                 \
    X(kind)                                                                                                            \
    X(C)                                                                                                               \
    X(H)                                                                                                               \
    X(KVH)                                                                                                             \
    X(hd)                                                                                                              \
    X(F)                                                                                                               \
    X(V)                                                                                                               \
    X(positions)                                                                                                       \
    X(causal)                                                                                                          \
    X(pre_norm)                                                                                                        \
    X(rms)                                                                                                             \
    X(swiglu)                                                                                                          \
    X(bias)                                                                                                            \
    X(rope)                                                                                                            \
    X(tied)                                                                                                            \
    X(eps)                                                                                                             \
    X(rope_theta)
#define X(f) +1
enum { N_SPEC = 0 SPEC_FIELDS(X) };
#undef X
#define X(f) #f,
static const char *const spec_name[N_SPEC] = {SPEC_FIELDS(X)};
#undef X

/* One layer as a MANIFEST records it. */
typedef struct ManifestLayer {
    int kind, tp, dp, sdp;
    long params;             /* whole layer, one rank */
    double spec[N_SPEC];     /* SPEC_FIELDS' values (floats exactly) */
    int has_layer, has_spec; /* its layer and spec lines were read */
} ManifestLayer;

/* A checkpoint's MANIFEST, read back. */
typedef struct Manifest {
    int version;
    char model[256];
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

/* SPEC_FIELDS' values of spec into v. */
static void spec_values(const GrtLayerSpec *spec, double *v) {
    int k = 0;
#define X(f) v[k++] = (double)spec->f;
    SPEC_FIELDS(X)
#undef X
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
        if (!x->zero && x->dp_index != 0) continue;    /* a replica: DP index 0 writes it */
        long full = (long)x->n, chunk = (long)x->chunk; /* ZeRO-1/2/3: each rank its part */
        long begin = x->zero ? x->dp_index * chunk : 0, count = x->zero ? chunk : full;
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
    size_t most = 0;
    for (int j = 0; j < np; j++) most = (size_t)pc[j].count > most ? (size_t)pc[j].count : most;
    float *zeros = calloc(most + 1, sizeof(float)); /* the states an optimizer does not keep (SGD) */
    for (int j = 0; j < np; j++) {
        const GrtShard *x = &R->layer[pc[j].layer];
        size_t at = x->off, n = (size_t)pc[j].count * sizeof(float);
        spans[3 * j] = (GrtSpan){grt_shard_owned_params(R, x), n};
        spans[3 * j + 1] = (GrtSpan){R->m ? R->m + at : zeros, n};
        spans[3 * j + 2] = (GrtSpan){R->v ? R->v + at : zeros, n};
        bytes += 3 * (long)n;
    }
    char path[PATH_LEN], err[ERR_LEN] = "";
    rank_file(path, sizeof path, R->opt.ckpt_dir, step, R->rank);
    uint32_t crc = 0;
    int ok = grt_write_atomic(path, spans, 3 * np, &crc, err, sizeof err) == 0;
    if (!ok) grt_rank_says(R->rank, err);
    free(spans);
    free(zeros);
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
    text_add(&t, "galvc-checkpoint %d\nmodel %s\nstep %ld\nseed %llu\ndata_position %ld\nbatch %d %d\n",
             MANIFEST_VERSION, p->model, step, R->opt.seed, step * p->global_batch * p->seq, p->global_batch, p->seq);
    text_add(&t, "plan %d %d\nlayers %d\n", p->ranks, p->pp, p->n_layers);
    for (int i = 0; i < p->n_layers; i++)
        text_add(&t, "layer %d %d %ld %d %d %d\n", i, (int)p->spec[i].kind, layer_params(p, i), p->cut[i].tp,
                 p->cut[i].dp, p->cut[i].sdp && p->cut[i].dp > 1);
    for (int i = 0; i < p->n_layers; i++) {
        double v[N_SPEC];
        spec_values(&p->spec[i], v);
        text_add(&t, "spec %d", i);
        for (int k = 0; k < N_SPEC; k++)
            text_add(&t, " %s=%.17g", spec_name[k], v[k]); /* exact: reads back equal */
        text_add(&t, "\n");
    }
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

/* Exactly n decimal numbers, each at most max, from s into v; 0 when s holds anything else (a sign, a fraction, a
 * number over max or over a long). */
static int read_numbers(const char *s, long *v, int n, long max) {
    for (int k = 0; k < n; k++) {
        char *end;
        while (*s == ' ')
            s++;
        if (!isdigit((unsigned char)*s)) return 0;
        errno = 0;
        v[k] = strtol(s, &end, 10);
        if (errno == ERANGE || v[k] > max) return 0;
        s = end;
    }
    return *s == 0;
}

/* "galvc-checkpoint N" */
static int line_version(Manifest *mf, const char *s, int n_layers) {
    long v;
    (void)n_layers;
    return read_numbers(s, &v, 1, INT_MAX) && (mf->version = (int)v) > 0;
}

/* "model NAME" */
static int line_model(Manifest *mf, const char *s, int n_layers) {
    (void)n_layers;
    return strlen(s) < sizeof mf->model && !strchr(s, ' ') && snprintf(mf->model, sizeof mf->model, "%s", s) > 0;
}

/* "step N" */
static int line_step(Manifest *mf, const char *s, int n_layers) {
    (void)n_layers;
    return read_numbers(s, &mf->step, 1, LONG_MAX);
}

/* "seed N" (any 64-bit value) */
static int line_seed(Manifest *mf, const char *s, int n_layers) {
    char *end;
    (void)n_layers;
    errno = 0;
    mf->seed = strtoull(s, &end, 10);
    return isdigit((unsigned char)*s) && !*end && errno != ERANGE;
}

/* "data_position N" */
static int line_position(Manifest *mf, const char *s, int n_layers) {
    (void)n_layers;
    return read_numbers(s, &mf->data_position, 1, LONG_MAX);
}

/* "batch GLOBAL_BATCH SEQ" */
static int line_batch(Manifest *mf, const char *s, int n_layers) {
    long v[2];
    (void)n_layers;
    if (!read_numbers(s, v, 2, INT_MAX)) return 0;
    mf->global_batch = (int)v[0], mf->seq = (int)v[1];
    return 1;
}

/* "plan RANKS PP": 1 <= PP <= RANKS <= MAX_CKPT_RANKS; the file sizes start unknown (-1) */
static int line_plan(Manifest *mf, const char *s, int n_layers) {
    long v[2];
    (void)n_layers;
    if (!read_numbers(s, v, 2, MAX_CKPT_RANKS) || v[0] < 1 || v[1] < 1 || v[1] > v[0] || mf->file_bytes) return 0;
    mf->ranks = (int)v[0], mf->pp = (int)v[1];
    mf->file_bytes = calloc((size_t)mf->ranks, sizeof(long));
    mf->file_crc = calloc((size_t)mf->ranks, sizeof(unsigned long));
    for (int q = 0; q < mf->ranks; q++)
        mf->file_bytes[q] = -1;
    return 1;
}

/* "layers N" */
static int line_layers(Manifest *mf, const char *s, int n_layers) {
    long v;
    (void)n_layers;
    return read_numbers(s, &v, 1, INT_MAX) && (mf->n_layers = (int)v) > 0;
}

/* "layer I KIND PARAMS TP DP SDP" (I below n_layers; the degrees are checked against the plan later) */
static int line_layer(Manifest *mf, const char *s, int n_layers) {
    long v[6];
    if (!read_numbers(s, v, 6, LONG_MAX) || v[0] >= n_layers || v[1] > INT_MAX || v[3] > INT_MAX || v[4] > INT_MAX ||
        v[5] > 1 || mf->layer[v[0]].has_layer)
        return 0;
    ManifestLayer *l = &mf->layer[v[0]];
    l->kind = (int)v[1], l->params = v[2], l->tp = (int)v[3], l->dp = (int)v[4], l->sdp = (int)v[5];
    return l->has_layer = 1;
}

/* "spec I kind=K C=... rope_theta=..." (SPEC_FIELDS, in order, each a number) */
static int line_spec(Manifest *mf, const char *s, int n_layers) {
    char *end;
    long i = strtol(s, &end, 10);
    if (!isdigit((unsigned char)*s) || i >= n_layers || mf->layer[i].has_spec) return 0;
    for (int k = 0; k < N_SPEC; k++) {
        size_t len = strlen(spec_name[k]);
        if (*end != ' ' || strncmp(end + 1, spec_name[k], len) || end[1 + len] != '=') return 0;
        const char *at = end + 2 + len;
        mf->layer[i].spec[k] = strtod(at, &end);
        if (end == at) return 0;
    }
    return !*end && (mf->layer[i].has_spec = 1);
}

/* "file RANK BYTES CRC32" (after the plan line) */
static int line_file(Manifest *mf, const char *s, int n_layers) {
    long v[3];
    (void)n_layers;
    if (!read_numbers(s, v, 3, LONG_MAX) || !mf->file_bytes || v[0] >= mf->ranks || v[2] > 0xffffffffL) return 0;
    mf->file_bytes[v[0]] = v[1], mf->file_crc[v[0]] = (unsigned long)v[2];
    return 1;
}

/* "piece RANK LAYER TP_INDEX DP_INDEX N BEGIN COUNT OFFSET" (after the plan line; checked against its layer later) */
static int line_piece(Manifest *mf, const char *s, int n_layers) {
    long v[8];
    if (!read_numbers(s, v, 8, LONG_MAX) || !mf->file_bytes || v[0] >= mf->ranks || v[1] >= n_layers ||
        v[2] > INT_MAX || v[3] > INT_MAX)
        return 0;
    mf->piece = realloc(mf->piece, sizeof(Piece) * (size_t)(mf->n_pieces + 1));
    mf->piece[mf->n_pieces++] = (Piece){(int)v[0], (int)v[1], (int)v[2], (int)v[3], v[4], v[5], v[6], v[7]};
    return 1;
}

/* A MANIFEST's kinds of line, by their first word. */
static const struct {
    const char *key;
    int (*read)(Manifest *mf, const char *rest, int n_layers);
} line_kinds[] = {
    {"galvc-checkpoint", line_version},
    {"model", line_model},
    {"step", line_step},
    {"seed", line_seed},
    {"data_position", line_position},
    {"batch", line_batch},
    {"plan", line_plan},
    {"layers", line_layers},
    {"layer", line_layer},
    {"spec", line_spec},
    {"file", line_file},
    {"piece", line_piece},
};

/* One line of a MANIFEST into mf (layers below n_layers, this program's); 0 when malformed. */
static int parse_line(Manifest *mf, const char *line, int n_layers) {
    const char *space = strchr(line, ' ');
    if (!space) return 0;
    for (size_t k = 0; k < sizeof line_kinds / sizeof line_kinds[0]; k++)
        if (strlen(line_kinds[k].key) == (size_t)(space - line) && !strncmp(line, line_kinds[k].key, space - line))
            return line_kinds[k].read(mf, space + 1, n_layers);
    return 0;
}

/* The text of the MANIFEST at path up to its crc32 line, which must be its last and match; NULL with the reason in
 * err. */
static char *manifest_text(const char *path, char *err, size_t errlen) {
    size_t len = 0;
    char *text = read_text(path, &len), *end = NULL;
    if (!text) {
        snprintf(err, errlen, "%s: missing (the checkpoint is incomplete)", path);
        return NULL;
    }
    char *last = len ? strstr(text, "\ncrc32 ") : NULL;
    unsigned long want = last && isdigit((unsigned char)last[7]) ? strtoul(last + 7, &end, 10) : 0;
    if (!end || grt_crc32(0, text, (size_t)(last + 1 - text)) != want)
        snprintf(err, errlen, "%s: damaged (its checksum does not match)", path);
    else if (*end != '\n' || end + 1 != text + len)
        snprintf(err, errlen, "%s: a line after its crc32 line (not covered by the checksum)", path);
    else {
        last[1] = 0;
        return text;
    }
    free(text);
    return NULL;
}

/* Every record a MANIFEST for n_layers layers must have; 0 with the reason in err when one is missing. */
static int manifest_complete(const char *path, const Manifest *mf, int n_layers, char *err, size_t errlen) {
    if (!mf->file_bytes || mf->n_layers <= 0 || !mf->model[0]) {
        snprintf(err, errlen, "%s: incomplete (no plan, layers or model)", path);
        return 0;
    }
    for (int i = 0; i < n_layers && i < mf->n_layers; i++)
        if (!mf->layer[i].has_layer || !mf->layer[i].has_spec) {
            snprintf(err, errlen, "%s: incomplete (no line for layer %d)", path, i);
            return 0;
        }
    for (int r = 0; r < mf->ranks; r++)
        if (mf->file_bytes[r] < 0) {
            snprintf(err, errlen, "%s: incomplete (no file line for rank %d)", path, r);
            return 0;
        }
    return 1;
}

/* Read and check a MANIFEST for a program of n_layers layers; 0 with the reason in err when unreadable, damaged,
 * malformed or incomplete; -1 when of another MANIFEST version. */
static int read_manifest(const char *path, int n_layers, Manifest *mf, char *err, size_t errlen) {
    memset(mf, 0, sizeof *mf);
    char *text = manifest_text(path, err, errlen);
    if (!text) return 0;
    mf->layer = calloc((size_t)n_layers + 1, sizeof *mf->layer);
    int ok = 1;
    for (char *line = strtok(text, "\n"); line && ok; line = strtok(NULL, "\n"))
        if (!(ok = parse_line(mf, line, n_layers))) snprintf(err, errlen, "%s: malformed line '%.80s'", path, line);
    free(text);
    if (ok && mf->version != MANIFEST_VERSION) {
        snprintf(err, errlen,
                 "%s: MANIFEST version %d, this program reads version %d (version 1, before the model's layer specs "
                 "were recorded, cannot be checked against this model: resume it with the galvc that wrote it)",
                 path, mf->version, MANIFEST_VERSION);
        return -1;
    }
    return ok && manifest_complete(path, mf, n_layers, err, errlen);
}

/* Is the checkpoint of this model (same name, layers, batch and sequence length)? 0 with the reason when not. */
static int same_model(const GrtProgram *p, const Manifest *mf, char *err, size_t errlen) {
    if (mf->n_layers != p->n_layers) {
        snprintf(err, errlen, "it holds a model of %d layers, this program trains %d", mf->n_layers, p->n_layers);
        return 0;
    }
    if (strcmp(mf->model, p->model)) {
        snprintf(err, errlen, "model '%s' in the checkpoint, '%s' in this program", mf->model, p->model);
        return 0;
    }
    for (int i = 0; i < p->n_layers; i++) {
        double v[N_SPEC];
        spec_values(&p->spec[i], v);
        for (int k = 0; k < N_SPEC; k++)
            if (mf->layer[i].spec[k] != v[k]) {
                snprintf(err, errlen, "layer %d '%s' differs: %s = %.9g in the checkpoint, %.9g in this program", i,
                         p->spec[i].name, spec_name[k], mf->layer[i].spec[k], v[k]);
                return 0;
            }
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

/* Layer i's shape on TP rank t of tp as the checkpoint's writer cut it (a head's own table, untied). */
static void writer_shape(const GrtProgram *p, int i, int tp, int t, GrtLayer *l) {
    GrtLayerSpec spec = p->spec[i];
    if (i == p->n_layers - 1) spec.tied = 0;
    grt_layer_shape(l, &spec, tp, t);
}

/* Can layer spec s be cut tp ways (grt_layer_shape's rule: a block's heads, key/value heads and FFN divide)? */
static int tp_fits(const GrtLayerSpec *s, int tp) {
    return s->kind != GRT_BLOCK || (s->H % tp == 0 && s->KVH % tp == 0 && s->F % tp == 0);
}

/* Are a checkpoint's layer degrees possible for its plan, and does every piece lie in its layer's shard and in its
 * file (mf, read from path, of this program's model)? 0 with the reason when not. */
static int in_range(const GrtProgram *p, const Manifest *mf, const char *path, char *err, size_t errlen) {
    for (int i = 0; i < p->n_layers; i++) {
        const ManifestLayer *l = &mf->layer[i];
        if (l->tp < 1 || l->tp > mf->ranks || !tp_fits(&p->spec[i], l->tp)) {
            snprintf(err, errlen, "%s: layer %d: TP %d out of range for %d ranks and this layer", path, i, l->tp,
                     mf->ranks);
            return 0;
        }
        if (l->dp < 1 || (long)l->tp * l->dp > mf->ranks) {
            snprintf(err, errlen, "%s: layer %d: TP %d x DP %d out of range for %d ranks", path, i, l->tp, l->dp,
                     mf->ranks);
            return 0;
        }
    }
    for (int j = 0; j < mf->n_pieces; j++) {
        const Piece *c = &mf->piece[j];
        const ManifestLayer *l = &mf->layer[c->layer];
        GrtLayer shard;
        if (c->tp_index < l->tp) writer_shape(p, c->layer, l->tp, c->tp_index, &shard);
        long room = mf->file_bytes[c->rank];
        if (c->tp_index >= l->tp || c->dp_index >= l->dp || c->n != (long)shard.n_params || c->begin > c->n ||
            c->count > c->n - c->begin || c->offset > room || 3 * c->count > (room - c->offset) / (long)sizeof(float)) {
            snprintf(err, errlen,
                     "%s: piece %d (rank %d, layer %d, TP index %d) out of range of its layer's shard or file", path, j,
                     c->rank, c->layer, c->tp_index);
            return 0;
        }
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
    for (int t = 0; t < tp; t++) {
        GrtLayer old;
        writer_shape(cs->p, i, tp, t, &old);
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
            if (!arrays[a]) continue; /* a state this optimizer does not keep */
            if (!load_shard(R, i, a, shard, source, ctx, err, errlen)) {
                free(shard);
                return 0;
            }
            size_t c0 = x->zero ? (size_t)x->dp_index * x->chunk : 0;
            float *dst = a == 0 ? grt_shard_owned_params(R, x) : arrays[a] + x->off;
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
    if (ok < 0) grt_stop_all(R->world, err, 1);
    if (ok && mf->step != step) snprintf(err, sizeof err, "%s: names step %ld", path, mf->step), ok = 0;
    if (ok && !same_model(R->p, mf, err, sizeof err)) {
        snprintf(msg, sizeof msg, "%s: not a checkpoint of this model: %s", path, err);
        grt_stop_all(R->world, msg, 1);
    }
    if (ok) ok = in_range(R->p, mf, path, err, sizeof err);
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
