/* safetensors.c — reading and writing Hugging Face's safetensors files, the
 * interchange format of trained models: 8 bytes of little-endian header
 * length N, N bytes of JSON {"name": {"dtype", "shape", "data_offsets":
 * [begin, end]}, ..., "__metadata__": {string: string}}, then the tensors'
 * bytes, offsets counted from the end of the header.
 *
 * Opening checks the whole header before anything is read (the length
 * against the file, the JSON, no name twice, every entry's dtype, shape and
 * offsets against each other and against the data, no two tensors sharing a
 * byte), so a damaged or foreign file is refused with one line naming the
 * file and the entry, never read past its end; reading a tensor refuses NaN
 * and infinity, which would only train to NaN.
 * Writing goes through a temporary file renamed into place, like the
 * checkpoints. The JSON is jansson's. */
#include "galvrt.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

enum { ST_MAX_HEADER = 100 << 20, ST_MAX_DIMS = 8 };

typedef struct StEntry {
    const char *name, *dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    uint64_t begin, end; /* bytes, from the end of the header */
} StEntry;

struct GrtSafetensors {
    char *path;
    json_t *root;      /* owns the names and dtypes */
    uint64_t data_at;  /* 8 + N */
    uint64_t data_len; /* file size - data_at */
    int n;
    StEntry *e;
};

struct GrtStWriter {
    char *path, *tmp;
    FILE *f;
    int failed;
};

/* Bytes per element of a safetensors dtype; 0 when unknown. */
static int dtype_bytes(const char *d) {
    static const struct {
        const char *name;
        int bytes;
    } t[] = {{"F64", 8}, {"F32", 4},  {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4},     {"I16", 2},    {"I8", 1},
             {"U8", 1},  {"BOOL", 1}, {"U16", 2}, {"U32", 4},  {"U64", 8}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(d, t[i].name)) return t[i].bytes;
    return 0;
}

/* Frees f (NULL is fine). */
void grt_st_close(GrtSafetensors *f) {
    if (!f) return;
    json_decref(f->root);
    free(f->e);
    free(f->path);
    free(f);
}

/* One header entry into e; 0 with the reason in err when malformed. */
static int read_entry(const char *path, const char *name, json_t *v, uint64_t data_len, StEntry *e, char *err,
                      size_t errlen) {
    json_t *dt = json_object_get(v, "dtype"), *sh = json_object_get(v, "shape"),
           *off = json_object_get(v, "data_offsets");
    e->name = name;
    if (!json_is_object(v) || !json_is_string(dt) || !json_is_array(sh) || !json_is_array(off) ||
        json_array_size(off) != 2) {
        snprintf(err, errlen, "%s: tensor '%s': the header entry needs \"dtype\", \"shape\" and two \"data_offsets\"",
                 path, name);
        return 0;
    }
    e->dtype = json_string_value(dt);
    int bytes = dtype_bytes(e->dtype);
    if (!bytes) {
        snprintf(err, errlen, "%s: tensor '%s': unknown dtype '%s'", path, name, e->dtype);
        return 0;
    }
    e->ndim = (int)json_array_size(sh);
    if (e->ndim > ST_MAX_DIMS) {
        snprintf(err, errlen, "%s: tensor '%s': %d dimensions (at most %d)", path, name, e->ndim, ST_MAX_DIMS);
        return 0;
    }
    uint64_t count = 1, most = (uint64_t)1 << 50;
    for (int d = 0; d < e->ndim; d++) {
        json_t *x = json_array_get(sh, (size_t)d);
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > ((int64_t)1 << 40)) {
            snprintf(err, errlen, "%s: tensor '%s': dimension %d of its shape is not a size", path, name, d);
            return 0;
        }
        e->shape[d] = json_integer_value(x);
        if (e->shape[d] && count > most / (uint64_t)e->shape[d]) { /* checked before it can wrap */
            snprintf(err, errlen, "%s: tensor '%s': shape too large (more than 2^50 elements)", path, name);
            return 0;
        }
        count *= (uint64_t)e->shape[d];
    }
    json_t *b = json_array_get(off, 0), *en = json_array_get(off, 1);
    if (!json_is_integer(b) || !json_is_integer(en) || json_integer_value(b) < 0 ||
        json_integer_value(en) < json_integer_value(b)) {
        snprintf(err, errlen, "%s: tensor '%s': bad data_offsets", path, name);
        return 0;
    }
    e->begin = (uint64_t)json_integer_value(b), e->end = (uint64_t)json_integer_value(en);
    if (e->end > data_len) {
        snprintf(err, errlen, "%s: tensor '%s': its data [%llu, %llu) runs past the file's %llu data bytes", path, name,
                 (unsigned long long)e->begin, (unsigned long long)e->end, (unsigned long long)data_len);
        return 0;
    }
    if (e->end - e->begin != count * (uint64_t)bytes) {
        snprintf(err, errlen, "%s: tensor '%s': %llu data bytes for a %s tensor of %llu elements", path, name,
                 (unsigned long long)(e->end - e->begin), e->dtype, (unsigned long long)count);
        return 0;
    }
    return 1;
}

/* Entries by where their data begins (then ends). */
static int by_offset(const void *a, const void *b) {
    const StEntry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* No two tensors' data may share a byte; 0 with the two named in err when they do. */
static int check_overlaps(const char *path, StEntry *e, int n, char *err, size_t errlen) {
    StEntry *s = malloc(((size_t)n + 1) * sizeof *s);
    if (!s) {
        snprintf(err, errlen, "%s: out of memory", path);
        return 0;
    }
    memcpy(s, e, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, by_offset);
    const StEntry *last = NULL; /* the non-empty tensor reaching furthest so far */
    for (int i = 0; i < n && !*err; i++) {
        if (s[i].begin == s[i].end) continue;
        if (last && s[i].begin < last->end)
            snprintf(err, errlen, "%s: tensors '%s' [%llu, %llu) and '%s' [%llu, %llu) overlap in the data", path,
                     last->name, (unsigned long long)last->begin, (unsigned long long)last->end, s[i].name,
                     (unsigned long long)s[i].begin, (unsigned long long)s[i].end);
        if (!last || s[i].end > last->end) last = &s[i];
    }
    free(s);
    return !*err;
}

/* The reason jansson refused the header, naming a tensor named twice. */
static void header_error(const char *path, const json_t *root, const json_error_t *je, char *err, size_t errlen) {
    const char *near = strstr(je->text, "near '\""), *end = strrchr(je->text, '"');
    if (!root && json_error_code(je) == json_error_duplicate_key && near && end > near + 6)
        snprintf(err, errlen, "%s: the safetensors header names tensor '%.*s' twice", path, (int)(end - near - 7),
                 near + 7);
    else
        snprintf(err, errlen, "%s: the safetensors header is not a JSON object (%s at byte %d)", path,
                 root ? "not an object" : je->text, root ? 0 : je->position);
}

/* Open path and check its whole header; NULL with the reason in err. */
GrtSafetensors *grt_st_open(const char *path, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO opens at once, to be refused below */
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st = {0};
    unsigned char len8[8];
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: %s", path, S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file");
        close(fd);
        return NULL;
    }
    uint64_t size = (uint64_t)st.st_size, n = 0;
    if (size < 8 || pread(fd, len8, 8, 0) != 8) {
        snprintf(err, errlen, "%s: not a safetensors file (shorter than its 8-byte header length)", path);
        close(fd);
        return NULL;
    }
    for (int i = 7; i >= 0; i--)
        n = n << 8 | len8[i];
    if (n < 2 || n > ST_MAX_HEADER || n > size - 8) {
        snprintf(err, errlen, "%s: not a safetensors file (its header length %llu does not fit the file's %llu bytes)",
                 path, (unsigned long long)n, (unsigned long long)size);
        close(fd);
        return NULL;
    }
    char *text = malloc(n);
    if (!text || pread(fd, text, n, 8) != (ssize_t)n) {
        snprintf(err, errlen, "%s: cannot read its %llu-byte header", path, (unsigned long long)n);
        free(text);
        close(fd);
        return NULL;
    }
    close(fd);
    json_error_t je;
    json_t *root = json_loadb(text, n, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (!root || !json_is_object(root)) {
        header_error(path, root, &je, err, errlen);
        json_decref(root);
        return NULL;
    }
    GrtSafetensors *f = calloc(1, sizeof *f);
    f->path = strdup(path);
    f->root = root;
    f->data_at = 8 + n;
    f->data_len = size - 8 - n;
    f->e = calloc(json_object_size(root) + 1, sizeof *f->e);
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (!strcmp(key, "__metadata__")) continue;
        if (!read_entry(path, key, v, f->data_len, &f->e[f->n], err, errlen)) {
            grt_st_close(f);
            return NULL;
        }
        f->n++;
    }
    if (!check_overlaps(path, f->e, f->n, err, errlen)) {
        grt_st_close(f);
        return NULL;
    }
    return f;
}

/* Tensors in the file (without __metadata__). */
int grt_st_count(const GrtSafetensors *f) { return f->n; }

/* Tensor i's name, dtype and shape (any of the outputs may be NULL). */
const char *grt_st_info(const GrtSafetensors *f, int i, const char **dtype, int *ndim, const int64_t **shape) {
    if (dtype) *dtype = f->e[i].dtype;
    if (ndim) *ndim = f->e[i].ndim;
    if (shape) *shape = f->e[i].shape;
    return f->e[i].name;
}

/* The index of tensor `name`, or -1. */
int grt_st_find(const GrtSafetensors *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->e[i].name, name)) return i;
    return -1;
}

/* Tensor i's data (an F32 tensor) into dst; -1 with the reason in err,
 * also when it holds a NaN or an infinity (named with its first element). */
int grt_st_read_f32(const GrtSafetensors *f, int i, float *dst, char *err, size_t errlen) {
    const StEntry *e = &f->e[i];
    if (strcmp(e->dtype, "F32") != 0) {
        snprintf(err, errlen, "%s: tensor '%s' is %s, not F32", f->path, e->name, e->dtype);
        return -1;
    }
    size_t n = (size_t)(e->end - e->begin) / sizeof(float);
    if (grt_read_range(f->path, f->data_at + e->begin, dst, n * sizeof(float)) != 0) {
        snprintf(err, errlen, "%s: cannot read tensor '%s'", f->path, e->name);
        return -1;
    }
    for (size_t k = 0; k < n; k++)
        if (!isfinite(dst[k])) { /* would train to NaN: the file is damaged */
            snprintf(err, errlen, "%s: tensor '%s' holds %s at element %zu", f->path, e->name,
                     isnan(dst[k]) ? "NaN"
                     : dst[k] > 0  ? "inf"
                                   : "-inf",
                     k);
            return -1;
        }
    return 0;
}

/* Start path (through path.tmp): the header of n F32 tensors, whose data
 * grt_st_put then writes in the same order; meta holds key, value pairs
 * ending with NULL. NULL with the reason in err. */
GrtStWriter *grt_st_create(const char *path, const GrtStTensor *t, int n, const char *const *meta, char *err,
                           size_t errlen) {
    json_t *root = json_object(), *m = json_object();
    uint64_t at = 0;
    for (int i = 0; meta && meta[i] && meta[i + 1]; i += 2)
        json_object_set_new(m, meta[i], json_string(meta[i + 1]));
    json_object_set_new(root, "__metadata__", m);
    for (int i = 0; i < n; i++) {
        json_t *e = json_object(), *sh = json_array();
        uint64_t count = 1;
        for (int d = 0; d < t[i].ndim; d++) {
            json_array_append_new(sh, json_integer(t[i].shape[d]));
            count *= (uint64_t)t[i].shape[d];
        }
        json_object_set_new(e, "dtype", json_string("F32"));
        json_object_set_new(e, "shape", sh);
        json_t *off = json_array();
        json_array_append_new(off, json_integer((json_int_t)at));
        json_array_append_new(off, json_integer((json_int_t)(at + 4 * count)));
        json_object_set_new(e, "data_offsets", off);
        json_object_set_new(root, t[i].name, e);
        at += 4 * count;
    }
    char *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    size_t len = strlen(text), padded = (len + 7) / 8 * 8; /* the data starts 8-aligned, as HF's writer does */
    GrtStWriter *w = calloc(1, sizeof *w);
    w->path = strdup(path);
    w->tmp = malloc(strlen(path) + 5);
    sprintf(w->tmp, "%s.tmp", path);
    w->f = fopen(w->tmp, "wb");
    if (!w->f) {
        snprintf(err, errlen, "cannot create %s: %s", w->tmp, strerror(errno));
        free(text), free(w->tmp), free(w->path), free(w);
        return NULL;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    fwrite(len8, 1, 8, w->f);
    fwrite(text, 1, len, w->f);
    for (size_t i = len; i < padded; i++)
        fputc(' ', w->f);
    free(text);
    return w;
}

/* The next tensor's n floats. */
void grt_st_put(GrtStWriter *w, const float *data, size_t n) {
    if (fwrite(data, sizeof(float), n, w->f) != n) w->failed = 1;
}

/* Finish: flush, fsync, rename into place; -1 with the reason in err (path untouched). */
int grt_st_finish(GrtStWriter *w, char *err, size_t errlen) {
    int ok = !w->failed && fflush(w->f) == 0 && !ferror(w->f) && fsync(fileno(w->f)) == 0;
    int saved = errno;
    if (fclose(w->f) != 0 && ok) ok = 0, saved = errno;
    if (ok && rename(w->tmp, w->path) != 0) ok = 0, saved = errno;
    if (!ok) {
        unlink(w->tmp);
        snprintf(err, errlen, "cannot write %s: %s", w->path, strerror(saved));
    }
    free(w->tmp), free(w->path), free(w);
    return ok ? 0 : -1;
}
