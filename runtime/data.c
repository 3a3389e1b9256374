/* data.c — training tokens for the generated programs, from three sources:
 *  - an llm.c token file: a header of 256 little-endian int32 (magic 20240520,
 *    version 1, header[2] = number of tokens), then that many uint16 tokens;
 *  - any other file, read as bytes (vocabulary 256);
 *  - synthetic tokens (path NULL), for runs without a data set;
 *  - for a model that starts with a patch embedding, images: a file of
 *    records, each a little-endian uint16 label then channels x image x
 *    image uint8 pixels (channel-major, rows top to bottom), no header; or
 *    synthetic images (path NULL), learnable: each class a fixed random
 *    template, each image its class's template plus uniform noise.
 * A file counts as a token file when it starts with the magic, or when its
 * name ends in ".bin" (llm.c's name for token shards), so that a damaged
 * shard is reported instead of silently trained on as bytes.
 *
 * Files are mapped, not read: shards are hundreds of MB and each rank needs
 * only its windows. Opening checks everything once (header against file
 * size, every token against the vocabulary), so a bad file fails at start-up
 * with one line naming the file, not as an out-of-range embedding mid-run.
 *
 * Batches are a pure function of (step, sequence): sequence s of step k is
 * the T + 1 tokens starting at p = (k * global_batch + s) * T, so consecutive
 * sequences overlap by one token as in llm.c's loader, and any rank asking
 * for it gets the same tokens whatever the plan. There are n - T windows that
 * fit in n tokens (starts 0 .. n - T - 1), so the start is p mod (n - T);
 * a file shorter than T + 1 tokens is read cyclically from p mod n. */
#include "galvrt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define LLMC_MAGIC 20240520
#define LLMC_VERSION 1
#define LLMC_HEADER_BYTES (256 * 4)
#define BIN_HINT "; files named *.bin are read as llm.c token files"

/* Synthetic data: a random pattern of SYNTH_PERIOD tokens, repeated, with one
 * token in SYNTH_NOISE replaced by a uniform draw. A model can learn it
 * (bigrams already give most of it when vocab >> period), so the loss falls
 * from ln(vocab) towards the noise floor, about 0.23 + ln(vocab) / 16 nats
 * (the entropy of "is it noise" plus that of a uniform draw 1 time in 16). */
#define SYNTH_PERIOD 97
#define SYNTH_NOISE 16
#define SYNTH_TOKENS ((int64_t)1 << 40)

typedef enum { DATA_TOKENS, DATA_BYTES, DATA_SYNTHETIC, DATA_IMAGES, DATA_SYNTHETIC_IMAGES } DataKind;

#define SYNTH_IMAGE_NOISE 96 /* a synthetic pixel: its template's value plus a draw in [-48, 48), clamped */

struct GrtData {
    DataKind kind;
    const unsigned char *map; /* the whole file, read-only; NULL when synthetic */
    size_t map_bytes;
    const unsigned char *tokens; /* first token: map + header (token file) or map (bytes) */
    int64_t n;                   /* tokens */
    int vocab;
    uint64_t seed;
    int channels, image, classes; /* images: pixels (channels, image, image), labels in [0, classes) */
};

/* Little-endian int32 at p (the header is little-endian whatever the host). */
static int32_t read_i32(const unsigned char *p) {
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}

/* Synthetic token at position i: pattern[i mod period], or noise. */
static int32_t synthetic_token(const GrtData *d, int64_t i) {
    uint64_t key = grt_hash64(d->seed ^ 0x5eed5eed5eed5eedULL);
    uint64_t noise = grt_hash64(key + 2 * (uint64_t)i + 1);
    if (noise % SYNTH_NOISE == 0) return (int32_t)(grt_hash64(noise) % (uint64_t)d->vocab);
    return (int32_t)(grt_hash64(key ^ grt_hash64((uint64_t)(i % SYNTH_PERIOD) + 0x1234)) % (uint64_t)d->vocab);
}

/* Token at position i (0 <= i < n). */
static int32_t token_at(const GrtData *d, int64_t i) {
    switch (d->kind) {
    case DATA_TOKENS: return (int32_t)((uint32_t)d->tokens[2 * i] | (uint32_t)d->tokens[2 * i + 1] << 8);
    case DATA_BYTES: return d->tokens[i];
    case DATA_SYNTHETIC: return synthetic_token(d, i);
    case DATA_IMAGES:
    case DATA_SYNTHETIC_IMAGES: break;
    }
    return 0;
}

/* True when path's name ends in ".bin". */
static int named_bin(const char *path) {
    size_t len = strlen(path);
    return len >= 4 && strcmp(path + len - 4, ".bin") == 0;
}

/* Checks a mapped file's header and tokens and fills in d; prints the problem and returns 0 when bad. */
static int check_file(GrtData *d, const char *path) {
    const unsigned char *m = d->map;
    size_t size = d->map_bytes;
    int has_magic = size >= 4 && read_i32(m) == LLMC_MAGIC;
    if (!has_magic && !named_bin(path)) { /* a byte file */
        if (d->vocab < 256) {
            fprintf(stderr,
                    "galvrt: %s: not an llm.c token file, so read as bytes, which needs vocab >= 256 (vocab is %d)\n",
                    path, d->vocab);
            return 0;
        }
        d->kind = DATA_BYTES;
        d->tokens = m;
        d->n = (int64_t)size;
        return 1;
    }
    if (size < LLMC_HEADER_BYTES) {
        fprintf(stderr, "galvrt: %s: token file too short for its 1024-byte header (%zu bytes)%s\n", path, size,
                has_magic ? "" : BIN_HINT);
        return 0;
    }
    if (!has_magic) {
        fprintf(stderr, "galvrt: %s: bad magic %d in token file header (expected %d)%s\n", path, (int)read_i32(m),
                LLMC_MAGIC, BIN_HINT);
        return 0;
    }
    int32_t version = read_i32(m + 4), count = read_i32(m + 8);
    if (version != LLMC_VERSION) {
        fprintf(stderr, "galvrt: %s: unsupported token file version %d (expected %d)\n", path, (int)version,
                LLMC_VERSION);
        return 0;
    }
    size_t payload = size - LLMC_HEADER_BYTES;
    if (count < 0 || payload != 2 * (size_t)count) {
        fprintf(stderr, "galvrt: %s: header says %d tokens but the file holds %zu bytes of tokens (%zu tokens)%s\n",
                path, (int)count, payload, payload / 2, payload % 2 ? " and a stray byte" : "");
        return 0;
    }
    d->kind = DATA_TOKENS;
    d->tokens = m + LLMC_HEADER_BYTES;
    d->n = count;
    posix_madvise((void *)m, size, POSIX_MADV_SEQUENTIAL);
    for (int64_t i = 0; i < d->n; i++) {
        int32_t t = token_at(d, i);
        if (t >= d->vocab) {
            fprintf(stderr, "galvrt: %s: token %d at position %lld is outside the vocabulary (vocab %d)\n", path,
                    (int)t, (long long)i, d->vocab);
            return 0;
        }
    }
    posix_madvise((void *)m, size, POSIX_MADV_NORMAL);
    return 1;
}

/* Maps path read-only into d->map (nothing for an empty file); 0 with a message when it cannot. */
static int map_file(GrtData *d, const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO opens at once, to be refused below */
    if (fd < 0) {
        fprintf(stderr, "galvrt: %s: cannot open: %s\n", path, strerror(errno));
        return 0;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        fprintf(stderr, "galvrt: %s: cannot stat: %s\n", path, strerror(errno));
        close(fd);
        return 0;
    }
    if (!S_ISREG(st.st_mode)) {
        fprintf(stderr, "galvrt: %s: %s\n", path, S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file");
        close(fd);
        return 0;
    }
    d->map_bytes = (size_t)st.st_size;
    if (d->map_bytes > 0) {
        void *m = mmap(NULL, d->map_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            fprintf(stderr, "galvrt: %s: cannot map %zu bytes: %s\n", path, d->map_bytes, strerror(errno));
            close(fd);
            return 0;
        }
        d->map = m;
    }
    close(fd); /* the mapping stays valid */
    return 1;
}

/* Opens path (NULL: synthetic tokens from seed) for a model of `vocab` tokens; NULL with a message when unusable. */
GrtData *grt_data_open(const char *path, int vocab, uint64_t seed) {
    const char *name = path ? path : "synthetic data";
    if (vocab < 2) {
        fprintf(stderr, "galvrt: %s: vocab %d is too small (need at least 2)\n", name, vocab);
        return NULL;
    }
    GrtData *d = calloc(1, sizeof *d);
    if (!d) {
        fprintf(stderr, "galvrt: %s: out of memory\n", name);
        return NULL;
    }
    d->vocab = vocab;
    d->seed = seed;
    if (!path) {
        d->kind = DATA_SYNTHETIC;
        d->n = SYNTH_TOKENS;
        return d;
    }
    if (!map_file(d, path)) {
        free(d);
        return NULL;
    }
    int ok = d->map ? check_file(d, path) : 1;
    if (ok && d->n < 2) {
        fprintf(stderr, "galvrt: %s: %lld token%s, need at least 2 (an input and its target)\n", path, (long long)d->n,
                d->n == 1 ? "" : "s");
        ok = 0;
    }
    if (!ok) {
        grt_data_close(d);
        return NULL;
    }
    return d;
}

/* Unmaps the file and frees d (NULL is fine). */
void grt_data_close(GrtData *d) {
    if (!d) return;
    if (d->map) munmap((void *)d->map, d->map_bytes);
    free(d);
}

/* Tokens in the file; 2^40 for synthetic data. */
int64_t grt_data_tokens(const GrtData *d) { return d->n; }

/* inputs (count, T), targets (count, T) = sequences [first, first + count) of step's global batch, shifted by one. */
void grt_data_batch(GrtData *d, int64_t step, int global_batch, int T, int first, int count, int32_t *inputs,
                    int32_t *targets) {
    int64_t n = d->n;
    for (int s = 0; s < count; s++) {
        int64_t p = (step * global_batch + first + s) * (int64_t)T;
        int32_t *in = inputs + (size_t)s * (size_t)T, *tg = targets + (size_t)s * (size_t)T;
        if (n > T) { /* the whole window fits: start in [0, n - T - 1] */
            int64_t start = p % (n - T);
            if (start < 0) start += n - T;
            int32_t prev = token_at(d, start);
            for (int t = 0; t < T; t++) {
                int32_t next = token_at(d, start + t + 1);
                in[t] = prev;
                tg[t] = next;
                prev = next;
            }
        } else { /* shorter than a window: read the tokens cyclically */
            int64_t start = p % n;
            if (start < 0) start += n;
            for (int t = 0; t < T; t++) {
                in[t] = token_at(d, (start + t) % n);
                tg[t] = token_at(d, (start + t + 1) % n);
            }
        }
    }
}

/* T5's source and target windows (galvrt.h). */
void grt_data_t5(GrtData *d, int64_t step, int global_batch, const GrtLayerSpec *first, int first_seq, int count,
                 int32_t *inputs, int32_t *targets) {
    int te = first->te, td = first->td, R = te + td + first->tr, W = te + td;
    int64_t n = d->n;
    for (int s = 0; s < count; s++) {
        int64_t p = (step * global_batch + first_seq + s) * (int64_t)W;
        int64_t start = n > W ? p % (n - W + 1) : p % n; /* n - W + 1 windows fit; shorter files wrap */
        int32_t *in = inputs + (size_t)s * R, *tg = targets + (size_t)s * R;
        for (int t = 0; t < R; t++) in[t] = tg[t] = -1;
        for (int t = 0; t < te; t++) in[t] = token_at(d, (start + t) % n);
        for (int t = 0; t < td; t++) {
            tg[te + t] = token_at(d, (start + te + t) % n);
            in[te + t] = t ? tg[te + t - 1] : GRT_T5_START;
        }
    }
}

/* ---- images ------------------------------------------------------------------ */

/* Bytes of one image record: its label, then its pixels. */
static size_t record_bytes(const GrtData *d) { return 2 + (size_t)d->channels * d->image * d->image; }

/* Checks an image file: whole records, every label a class. */
static int check_images(GrtData *d, const char *path) {
    size_t rb = record_bytes(d);
    if (d->map_bytes == 0 || d->map_bytes % rb) {
        fprintf(stderr,
                "galvrt: %s: %zu bytes is not a whole number of image records of %zu bytes (a uint16 label, then "
                "%d x %d x %d uint8 pixels)\n",
                path, d->map_bytes, rb, d->channels, d->image, d->image);
        return 0;
    }
    d->n = (int64_t)(d->map_bytes / rb);
    for (int64_t r = 0; r < d->n; r++) {
        const unsigned char *q = d->map + (size_t)r * rb;
        int label = q[0] | q[1] << 8;
        if (label >= d->classes) {
            fprintf(stderr, "galvrt: %s: record %lld (byte %zu) has label %d, outside the %d classes\n", path,
                    (long long)r, (size_t)r * rb, label, d->classes);
            return 0;
        }
    }
    return 1;
}

/* Opens an image file (path NULL: synthetic images from seed). */
GrtData *grt_data_open_images(const char *path, int channels, int image, int classes, uint64_t seed) {
    const char *name = path ? path : "synthetic images";
    if (classes < 2 || classes > 65536 || channels < 1 || image < 1) {
        fprintf(stderr, "galvrt: %s: %d classes of %d x %d x %d images cannot be trained on\n", name, classes, channels,
                image, image);
        return NULL;
    }
    GrtData *d = calloc(1, sizeof *d);
    if (!d) {
        fprintf(stderr, "galvrt: %s: out of memory\n", name);
        return NULL;
    }
    d->seed = seed, d->channels = channels, d->image = image, d->classes = classes, d->vocab = classes;
    d->kind = path ? DATA_IMAGES : DATA_SYNTHETIC_IMAGES;
    d->n = SYNTH_TOKENS;
    if (path && (!map_file(d, path) || !check_images(d, path))) {
        grt_data_close(d);
        return NULL;
    }
    return d;
}

/* Synthetic image i's label, and its pixels (channels, image, image). */
static int synthetic_image(const GrtData *d, int64_t i, int32_t *px) {
    uint64_t key = grt_hash64(d->seed ^ 0x1a6e5eed1a6e5eedULL);
    uint64_t h = grt_hash64(key + 2 * (uint64_t)i + 1);
    int label = (int)(h % (uint64_t)d->classes);
    size_t n = (size_t)d->channels * d->image * d->image;
    uint64_t tkey = grt_hash64(key ^ grt_hash64((uint64_t)label + 0x7e3b1a7e));
    for (size_t k = 0; k < n; k++) {
        int v =
            (int)(grt_hash64(tkey + k) % 256) + (int)(grt_hash64(h + k) % SYNTH_IMAGE_NOISE) - SYNTH_IMAGE_NOISE / 2;
        px[k] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
    return label;
}

/* Images [first, first + count) of step's global batch: image s of step k
 * is record (k * global_batch + s) mod records, whatever the plan. */
void grt_data_images(GrtData *d, int64_t step, int global_batch, int T, int first, int count, int32_t *pixels,
                     int32_t *targets) {
    size_t n = (size_t)d->channels * d->image * d->image;
    for (int s = 0; s < count; s++) {
        int64_t i = (step * global_batch + first + s) % d->n;
        int32_t *px = pixels + (size_t)s * n, label;
        if (d->kind == DATA_SYNTHETIC_IMAGES)
            label = synthetic_image(d, i, px);
        else {
            const unsigned char *q = d->map + (size_t)i * record_bytes(d);
            label = q[0] | q[1] << 8;
            for (size_t k = 0; k < n; k++)
                px[k] = q[2 + k];
        }
        for (int t = 0; t < T; t++)
            targets[(size_t)s * T + t] = label;
    }
}
