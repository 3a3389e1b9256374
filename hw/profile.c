/* profile.c — the hardware model the cost pass prices plans with. It starts
 * from the device's datasheet preset (presets.c), puts the cluster's own
 * memory and link figures over it, then a measured profile over that: a file
 * in galvc's JSON format (docs/profile-format.md), one of Hetu-Galvatron's
 * profile files, or a folder of them, so what a Galvatron user measured
 * carries over. A bad profile gives located errors and changes nothing; no
 * input crashes galvc. */
#include "hw.h"
#include "profile_schema.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
    MAX_PROFILE_BYTES = 16 << 20, /* a profile larger than this is a mistake */
    MAX_DIR_ENTRIES = 100000,
};

/* What a profile is read with, and into. */
typedef struct Reader {
    Arena *arena;
    Diag *diag;
    const Cluster *cluster;
    const Graph *graph;
    HwProfile *hw; /* a copy, committed only if the whole profile is good */
} Reader;

/* One profile file: its text (for messages) and its JSON (an object). */
typedef struct JsonFile {
    const SourceFile *src;
    json_t *root;
} JsonFile;

/* A key of a profile, for messages: its dotted name and where it is. */
typedef struct Key {
    const char *name; /* "intra.latency", "collectives[2].group" */
    Loc loc;          /* the key's quoted name; the whole file if not found */
    long value;       /* offset of its value in the text; -1: unknown */
} Key;

/* ---- reading files ------------------------------------------------------------ */

/* A SourceFile for messages about a profile, its text ending in a newline. */
static SourceFile *profile_source(Arena *a, const char *path, const char *bytes, size_t len) {
    SourceFile *f = arena_alloc(a, sizeof *f);
    char *text = arena_alloc(a, len + 2);
    if (len) memcpy(text, bytes, len);
    if (len == 0 || text[len - 1] != '\n') text[len++] = '\n';
    f->path = f->display = arena_strdup(a, path);
    f->text = text;
    f->len = len;
    return f;
}

/* The whole of a file, for messages that have no better place. */
static Loc whole(const SourceFile *f) { return (Loc){.file = f}; }

/* Read and parse one profile file; false after reporting why not. */
static bool load_json(Reader *r, const char *path, JsonFile *jf) {
    char *bytes = NULL;
    size_t len = 0;
    int err = source_read_file(r->arena, path, MAX_PROFILE_BYTES, &bytes, &len);
    const SourceFile *src = profile_source(r->arena, path, err ? "" : bytes, err ? 0 : len);
    jf->src = src;
    jf->root = NULL;
    if (err) {
        diag_error(r->diag, whole(src), "cannot read the profile: %s",
                   err == EINVAL ? "not a regular file" : strerror(err));
        return false;
    }
    json_error_t je;
    json_t *root = json_loadb(bytes ? bytes : "", len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        Loc loc = whole(src);
        if (je.line > 0) {
            loc.line = je.line;
            loc.col = je.column > 0 ? je.column : 1;
            loc.end_col = loc.col + 1;
        }
        diag_error(r->diag, loc, "malformed JSON: %s", je.text);
        return false;
    }
    if (!json_is_object(root)) {
        diag_error(r->diag, whole(src), "a profile is a JSON object, not %s",
                   json_is_array(root) ? "an array" : "a single value");
        json_decref(root);
        return false;
    }
    jf->root = root;
    return true;
}

/* ---- finding a key's place in the text ------------------------------------ */
/* jansson keeps no positions, so messages find a key again in the text, which
 * jansson has already accepted as JSON; a key not found (say one spelled with
 * escapes) falls back to its parent's place, then to the whole file. */

static size_t skip_ws(const char *t, size_t n, size_t i) {
    while (i < n && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r')) i++;
    return i;
}

/* Past the string whose opening quote is at t[i]. */
static size_t skip_string(const char *t, size_t n, size_t i) {
    for (i++; i < n && t[i] != '"'; i++)
        if (t[i] == '\\') i++;
    return i < n ? i + 1 : n;
}

/* Past the value at t[i]: a string, an object or array, or a scalar. */
static size_t skip_value(const char *t, size_t n, size_t i) {
    if (i >= n) return n;
    if (t[i] == '"') return skip_string(t, n, i);
    if (t[i] != '{' && t[i] != '[') {
        while (i < n && t[i] != ',' && t[i] != '}' && t[i] != ']' && t[i] != ' ' && t[i] != '\t' && t[i] != '\n' &&
               t[i] != '\r')
            i++;
        return i;
    }
    int depth = 0;
    while (i < n) {
        if (t[i] == '"') {
            i = skip_string(t, n, i);
            continue;
        }
        if (t[i] == '{' || t[i] == '[') depth++;
        else if ((t[i] == '}' || t[i] == ']') && --depth == 0) return i + 1;
        i++;
    }
    return n;
}

/* The offset of member `key` in the object at `obj` (its quote), and of its
 * value in *value; -1 if not there. */
static long find_member(const SourceFile *f, long obj, const char *key, long *value) {
    const char *t = f->text;
    size_t n = f->len, klen = strlen(key);
    if (obj < 0 || (size_t)obj >= n || t[obj] != '{') return -1;
    size_t i = skip_ws(t, n, (size_t)obj + 1);
    while (i < n && t[i] == '"') {
        size_t end = skip_string(t, n, i);
        bool hit = end - i == klen + 2 && memcmp(t + i + 1, key, klen) == 0;
        size_t v = skip_ws(t, n, end);
        if (v >= n || t[v] != ':') return -1;
        v = skip_ws(t, n, v + 1);
        if (hit) {
            *value = (long)v;
            return (long)i;
        }
        size_t next = skip_ws(t, n, skip_value(t, n, v));
        if (next >= n || t[next] != ',') return -1;
        i = skip_ws(t, n, next + 1);
    }
    return -1;
}

/* The offset of element `index` of the array at `arr`; -1 if not there. */
static long find_element(const SourceFile *f, long arr, int index) {
    const char *t = f->text;
    size_t n = f->len;
    if (arr < 0 || (size_t)arr >= n || t[arr] != '[') return -1;
    size_t i = skip_ws(t, n, (size_t)arr + 1);
    for (int k = 0; i < n && t[i] != ']'; k++) {
        if (k == index) return (long)i;
        i = skip_ws(t, n, skip_value(t, n, i));
        if (i >= n || t[i] != ',') return -1;
        i = skip_ws(t, n, i + 1);
    }
    return -1;
}

/* The line and column of a byte offset, `width` bytes wide. */
static Loc loc_at(const SourceFile *f, long off, size_t width) {
    Loc loc = {.file = f, .line = 1, .col = 1};
    for (long i = 0; i < off && (size_t)i < f->len; i++) {
        if (f->text[i] == '\n') loc.line++, loc.col = 1;
        else loc.col++;
    }
    loc.end_col = loc.col + (int)(width < 200 ? width : 200);
    return loc;
}

/* The file's top-level object, as the parent of its keys. */
static Key key_root(const JsonFile *jf) {
    size_t at = skip_ws(jf->src->text, jf->src->len, 0);
    return (Key){.name = "", .loc = whole(jf->src), .value = (long)at};
}

/* Member `name` of the object at `parent`. */
static Key key_member(Reader *r, const JsonFile *jf, const Key *parent, const char *name) {
    Key k = {.name = parent->name[0] ? arena_printf(r->arena, "%s.%s", parent->name, name) : name,
             .loc = parent->loc,
             .value = -1};
    long value, at = find_member(jf->src, parent->value, name, &value);
    if (at >= 0) {
        k.loc = loc_at(jf->src, at, strlen(name) + 2);
        k.value = value;
    }
    return k;
}

/* Element `index` of the array at `parent`. */
static Key key_element(Reader *r, const JsonFile *jf, const Key *parent, int index) {
    Key k = {.name = arena_printf(r->arena, "%s[%d]", parent->name, index), .loc = parent->loc, .value = -1};
    long at = find_element(jf->src, parent->value, index);
    if (at >= 0) {
        k.loc = loc_at(jf->src, at, 1);
        k.value = at;
    }
    return k;
}

/* ---- checking values -------------------------------------------------------- */

/* A JSON value as a message names it: "a string", "-3". */
static const char *describe(Reader *r, const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return arena_printf(r->arena, "the string \"%.40s\"", json_string_value(v));
    case JSON_INTEGER: return arena_printf(r->arena, "%lld", (long long)json_integer_value(v));
    case JSON_REAL: {
        const char *s = arena_printf(r->arena, "%g", json_real_value(v));
        return strpbrk(s, ".ein") ? s : arena_printf(r->arena, "%s.0", s); /* 1.0 is not the integer 1 */
    }
    case JSON_TRUE: return "true";
    case JSON_FALSE: return "false";
    case JSON_NULL: return "null";
    }
    return "a value";
}

/* Report that key k holds v where `want` was expected; always false. */
static bool bad_value(Reader *r, const Key *k, const json_t *v, const char *want) {
    diag_error(r->diag, k->loc, "'%s' must be %s, not %s", k->name, want, describe(r, v));
    return false;
}

/* Which numbers a key accepts. */
typedef enum Bound { POSITIVE, NON_NEGATIVE, AT_LEAST_ONE, FRACTION } Bound;

/* A finite number within `bound` into *out; false after an error. */
static bool take_number(Reader *r, const Key *k, const json_t *v, Bound bound, const char *unit, double *out) {
    static const char *const want[] = {
        [POSITIVE] = "a positive number",
        [NON_NEGATIVE] = "a non-negative number",
        [AT_LEAST_ONE] = "a number of at least 1",
        [FRACTION] = "a number in (0, 1]",
    };
    double x = json_is_number(v) ? json_number_value(v) : NAN;
    bool ok = isfinite(x);
    switch (bound) {
    case POSITIVE: ok = ok && x > 0; break;
    case NON_NEGATIVE: ok = ok && x >= 0; break;
    case AT_LEAST_ONE: ok = ok && x >= 1; break;
    case FRACTION: ok = ok && x > 0 && x <= 1; break;
    }
    if (!ok) return bad_value(r, k, v, unit ? arena_printf(r->arena, "%s (%s)", want[bound], unit) : want[bound]);
    *out = x;
    return true;
}

/* log2 of a group size, if it is a power of two of at most 2^PROFILE_MAX_LOG2. */
static bool group_log2(long long n, int *lg) {
    if (n < 1 || n > (1LL << PROFILE_MAX_LOG2) || (n & (n - 1))) return false;
    int k = 0;
    while ((1LL << k) < n) k++;
    *lg = k;
    return true;
}

/* The index of `word` in the NULL-terminated `names`, or -1. */
static int name_index(const char *word, const char *const *names) {
    for (int i = 0; names[i]; i++)
        if (strcmp(word, names[i]) == 0) return i;
    return -1;
}

/* "unknown key 'x' in <where>; did you mean 'y'?" (always false). */
static bool unknown_key(Reader *r, const Key *k, const char *key, const char *where, const char *const *names) {
    const char *best = diag_suggest(key, names, -1);
    if (best) diag_error(r->diag, k->loc, "unknown key '%s' in %s; did you mean '%s'?", key, where, best);
    else diag_error(r->diag, k->loc, "unknown key '%s' in %s", key, where);
    return false;
}

/* ---- galvc's own format (docs/profile-format.md) ---------------------------- */

/* Each object's keys (profile_schema.h): their names, units and indices. */
#define NAME(e, unit) PROFILE_KEY_##e,
#define UNIT(e, unit) unit,
static const char *const top_keys[] = {PROFILE_KEYS(NAME) NULL};
static const char *const top_units[] = {PROFILE_KEYS(UNIT)};
static const char *const link_keys[] = {PROFILE_LINK_KEYS(NAME) NULL};
static const char *const link_units[] = {PROFILE_LINK_KEYS(UNIT)};
static const char *const collective_keys[] = {PROFILE_COLLECTIVE_KEYS(NAME) NULL};
static const char *const collective_units[] = {PROFILE_COLLECTIVE_KEYS(UNIT)};
static const char *const layer_keys[] = {PROFILE_LAYER_KEYS(NAME) NULL};
static const char *const fit_keys[] = {PROFILE_FIT_KEYS(NAME) NULL};
static const char *const fit_units[] = {PROFILE_FIT_KEYS(UNIT)};
#undef NAME
#undef UNIT

#define X(e, unit) KEY_##e,
enum { PROFILE_KEYS(X) };
#undef X
#define X(e, unit) LINK_KEY_##e,
enum { PROFILE_LINK_KEYS(X) };
#undef X
#define X(e, unit) COLLECTIVE_KEY_##e,
enum { PROFILE_COLLECTIVE_KEYS(X) };
#undef X
#define X(e, unit) LAYER_KEY_##e,
enum { PROFILE_LAYER_KEYS(X) LAYER_KEY_COUNT };
#undef X
#define X(e, unit) FIT_KEY_##e,
enum { PROFILE_FIT_KEYS(X) };
#undef X

/* "device": the device kind it was measured on, which must be the cluster's. */
static bool read_device(Reader *r, const Key *k, const json_t *v) {
    int kind = json_is_string(v) ? name_index(json_string_value(v), device_kind_names) : -1;
    if (kind < 0) {
        const char *kinds = device_kind_names[0];
        for (int i = 1; device_kind_names[i]; i++)
            kinds = arena_printf(r->arena, "%s, %s", kinds, device_kind_names[i]);
        return bad_value(r, k, v, arena_printf(r->arena, "a device kind (%s)", kinds));
    }
    if (kind != r->cluster->device) {
        diag_error(r->diag, k->loc, "the profile was measured on %s devices, but cluster '%s' has %s",
                   device_kind_names[kind], r->cluster->name, device_kind_names[r->cluster->device]);
        return false;
    }
    return true;
}

/* "peak_flops": {fp32, bf16, fp16} in FLOP/s. */
static bool read_peak(Reader *r, const JsonFile *jf, const Key *k, json_t *v) {
    if (!json_is_object(v)) return bad_value(r, k, v, "an object of fp32, bf16 and fp16 FLOP/s");
    bool ok = true;
    const char *key;
    json_t *x;
    json_object_foreach(v, key, x) {
        Key kx = key_member(r, jf, k, key);
        int p = name_index(key, precision_names);
        if (p < 0) ok = unknown_key(r, &kx, key, "'peak_flops'", precision_names);
        else ok &= take_number(r, &kx, x, POSITIVE, top_units[KEY_PEAK_FLOPS], &r->hw->peak_flops[p]);
    }
    return ok;
}

/* "gemm_rates": {fp32, tf32, bf16} in FLOP/s (a GPU profile's). */
static bool read_gemm_rates(Reader *r, const JsonFile *jf, const Key *k, json_t *v) {
    static const char *const maths[] = {
#define X(name) name,
        PROFILE_GEMM_MATHS(X)
#undef X
            NULL};
    if (!json_is_object(v)) return bad_value(r, k, v, "an object of fp32, tf32 and bf16 FLOP/s");
    bool ok = true;
    const char *key;
    json_t *x;
    json_object_foreach(v, key, x) {
        Key kx = key_member(r, jf, k, key);
        int m = name_index(key, maths);
        if (m < 0) ok = unknown_key(r, &kx, key, "'gemm_rates'", maths);
        else ok &= take_number(r, &kx, x, POSITIVE, top_units[KEY_GEMM_RATES], &r->hw->gemm_rates[m]);
    }
    return ok;
}

/* "intra" / "inter": {bandwidth bytes/s, latency s}. */
static bool read_link(Reader *r, const JsonFile *jf, const Key *k, json_t *v, LinkProfile *link) {
    if (!json_is_object(v)) return bad_value(r, k, v, "an object with bandwidth and latency");
    bool ok = true;
    const char *key;
    json_t *x;
    json_object_foreach(v, key, x) {
        Key kx = key_member(r, jf, k, key);
        int which = name_index(key, link_keys);
        const char *unit = which >= 0 ? link_units[which] : NULL;
        switch (which) {
        case LINK_KEY_BANDWIDTH: ok &= take_number(r, &kx, x, POSITIVE, unit, &link->bandwidth); break;
        case LINK_KEY_LATENCY: ok &= take_number(r, &kx, x, NON_NEGATIVE, unit, &link->latency); break;
        default: ok = unknown_key(r, &kx, key, arena_printf(r->arena, "'%s'", k->name), link_keys);
        }
    }
    return ok;
}

/* One entry of "collectives": {op, group, consecutive, bus_bandwidth}; seen[]
 * holds the 1-based entry that set each slot, to refuse repeats. */
static bool read_collective(Reader *r, const JsonFile *jf, const Key *k, json_t *v,
                            int seen[COLL_COUNT][PROFILE_MAX_LOG2 + 1][2], int entry) {
    if (!json_is_object(v)) return bad_value(r, k, v, "an object with op, group, consecutive and bus_bandwidth");
    bool ok = true, has_op = false, has_group = false, has_bw = false;
    int op = 0, lg = 0, consec = 1;
    double bw = 0, lat = 0;
    const char *key;
    json_t *x;
    json_object_foreach(v, key, x) {
        Key kx = key_member(r, jf, k, key);
        int which = name_index(key, collective_keys);
        const char *unit = which >= 0 ? collective_units[which] : NULL;
        switch (which) {
        case COLLECTIVE_KEY_OP:
            op = json_is_string(x) ? name_index(json_string_value(x), collective_names) : -1;
            if (op < 0) ok = bad_value(r, &kx, x, "allreduce, allgather, reducescatter, p2p or alltoall");
            has_op = true;
            break;
        case COLLECTIVE_KEY_GROUP:
            if (!json_is_integer(x) || !group_log2((long long)json_integer_value(x), &lg))
                ok = bad_value(r, &kx, x, "a power of two from 1 to 2^30 (devices)");
            has_group = true;
            break;
        case COLLECTIVE_KEY_CONSECUTIVE:
            if (!json_is_boolean(x)) ok = bad_value(r, &kx, x, "true or false");
            else consec = json_is_true(x);
            break;
        case COLLECTIVE_KEY_BUS_BANDWIDTH:
            ok &= take_number(r, &kx, x, POSITIVE, unit, &bw);
            has_bw = true;
            break;
        case COLLECTIVE_KEY_LATENCY: ok &= take_number(r, &kx, x, NON_NEGATIVE, unit, &lat); break;
        default: ok = unknown_key(r, &kx, key, "a collective", collective_keys);
        }
    }
    const char *missing = !has_op      ? collective_keys[COLLECTIVE_KEY_OP]
                          : !has_group ? collective_keys[COLLECTIVE_KEY_GROUP]
                          : !has_bw    ? collective_keys[COLLECTIVE_KEY_BUS_BANDWIDTH]
                                       : NULL;
    if (missing) {
        diag_error(r->diag, k->loc, "'%s' needs '%s'", k->name, missing);
        return false;
    }
    if (!ok) return false;
    int *slot = &seen[op][lg][consec];
    if (*slot) {
        diag_error(r->diag, k->loc, "'%s' repeats collectives[%d]: %s over %lld %s devices", k->name, *slot - 1,
                   collective_names[op], 1LL << lg, consec ? "consecutive" : "strided");
        return false;
    }
    *slot = entry;
    r->hw->measured_bw[op][lg][consec] = bw;
    r->hw->measured_lat[op][lg][consec] = lat;
    return true;
}

/* "collectives": measured bus bandwidths, one entry per (op, group, nesting). */
static bool read_collectives(Reader *r, const JsonFile *jf, const Key *k, json_t *v) {
    if (!json_is_array(v)) return bad_value(r, k, v, "an array of collectives");
    int(*seen)[PROFILE_MAX_LOG2 + 1][2] = arena_alloc(r->arena, sizeof(int[COLL_COUNT][PROFILE_MAX_LOG2 + 1][2]));
    bool ok = true;
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) {
        Key kx = key_element(r, jf, k, (int)i);
        ok &= read_collective(r, jf, &kx, x, seen, (int)i + 1);
    }
    return ok;
}

/* "forward" / "backward" of a layer entry: {fixed_s seconds, rate}, both required. */
static bool read_fit(Reader *r, const JsonFile *jf, const Key *k, json_t *v, LayerFit *fit) {
    if (!json_is_object(v)) return bad_value(r, k, v, "an object with fixed_s and rate");
    bool ok = true, has_fixed = false, has_rate = false;
    const char *key;
    json_t *x;
    json_object_foreach(v, key, x) {
        Key kx = key_member(r, jf, k, key);
        int which = name_index(key, fit_keys);
        const char *unit = which >= 0 ? fit_units[which] : NULL;
        switch (which) {
        case FIT_KEY_FIXED_S:
            ok &= take_number(r, &kx, x, NON_NEGATIVE, unit, &fit->fixed_s);
            has_fixed = true;
            break;
        case FIT_KEY_RATE:
            ok &= take_number(r, &kx, x, POSITIVE, unit, &fit->rate);
            has_rate = true;
            break;
        default: ok = unknown_key(r, &kx, key, arena_printf(r->arena, "'%s'", k->name), fit_keys);
        }
    }
    if (ok && (!has_fixed || !has_rate)) {
        diag_error(r->diag, k->loc, "'%s' needs '%s'", k->name,
                   fit_keys[!has_fixed ? FIT_KEY_FIXED_S : FIT_KEY_RATE]);
        return false;
    }
    return ok;
}

/* One entry of "layers": {kind, tp, forward, backward}, all required; seen[]
 * holds the 1-based entry that set each (kind, tp), to refuse repeats. */
static bool read_layer(Reader *r, const JsonFile *jf, const Key *k, json_t *v,
                       int seen[PROFILE_LAYER_COUNT][PROFILE_MAX_LOG2 + 1], int entry) {
    if (!json_is_object(v)) return bad_value(r, k, v, "an object with kind, tp, forward and backward");
    bool ok = true, has[LAYER_KEY_COUNT] = {false};
    int kind = 0, lg = 0;
    LayerFit fit[2] = {{0}};
    const char *key;
    json_t *x;
    json_object_foreach(v, key, x) {
        Key kx = key_member(r, jf, k, key);
        int which = name_index(key, layer_keys);
        if (which < 0) {
            ok = unknown_key(r, &kx, key, "a layer", layer_keys);
            continue;
        }
        has[which] = true;
        if (which == LAYER_KEY_KIND) {
            kind = json_is_string(x) ? name_index(json_string_value(x), profile_layer_names) : -1;
            if (kind < 0) ok = bad_value(r, &kx, x, "embedding, block, norm or head");
        } else if (which == LAYER_KEY_TP) {
            if (!json_is_integer(x) || !group_log2((long long)json_integer_value(x), &lg))
                ok = bad_value(r, &kx, x, "a power of two from 1 to 2^30 (devices)");
        } else ok &= read_fit(r, jf, &kx, x, &fit[which - LAYER_KEY_FORWARD]);
    }
    for (int i = 0; i < LAYER_KEY_COUNT; i++)
        if (!has[i]) {
            diag_error(r->diag, k->loc, "'%s' needs '%s'", k->name, layer_keys[i]);
            return false;
        }
    if (!ok) return false;
    int *slot = &seen[kind][lg];
    if (*slot) {
        diag_error(r->diag, k->loc, "'%s' repeats layers[%d]: %s at tp %lld", k->name, *slot - 1,
                   profile_layer_names[kind], 1LL << lg);
        return false;
    }
    *slot = entry;
    fit[0].tp_comm = fit[1].tp_comm = true; /* galvc profile times a layer on its TP group */
    r->hw->layer_fit[kind][lg][0] = fit[0];
    r->hw->layer_fit[kind][lg][1] = fit[1];
    return true;
}

/* "layers": measured layer times, one entry per (kind, tp). */
static bool read_layers(Reader *r, const JsonFile *jf, const Key *k, json_t *v) {
    if (!json_is_array(v)) return bad_value(r, k, v, "an array of layers");
    int(*seen)[PROFILE_MAX_LOG2 + 1] = arena_alloc(r->arena, sizeof(int[PROFILE_LAYER_COUNT][PROFILE_MAX_LOG2 + 1]));
    bool ok = true;
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) {
        Key kx = key_element(r, jf, k, (int)i);
        ok &= read_layer(r, jf, &kx, x, seen, (int)i + 1);
    }
    return ok;
}

/* "format" and "version": this galvc's format and version, before anything else is read. */
static bool read_version(Reader *r, const JsonFile *jf, const Key *root) {
    Key kf = key_member(r, jf, root, PROFILE_KEY_FORMAT);
    json_t *format = json_object_get(jf->root, PROFILE_KEY_FORMAT);
    if (!json_is_string(format) || strcmp(json_string_value(format), PROFILE_FORMAT) != 0)
        return bad_value(r, &kf, format, "\"" PROFILE_FORMAT "\"");
    json_t *version = json_object_get(jf->root, PROFILE_KEY_VERSION);
    if (!version) {
        diag_error(r->diag, kf.loc, "a galvc profile needs \"%s\": %d", PROFILE_KEY_VERSION, PROFILE_VERSION);
        return false;
    }
    Key kv = key_member(r, jf, root, PROFILE_KEY_VERSION);
    if (!json_is_integer(version) || json_integer_value(version) != PROFILE_VERSION)
        return bad_value(r, &kv, version,
                         arena_printf(r->arena, "%d (the only version this galvc reads)", PROFILE_VERSION));
    return true;
}

/* A galvc profile: "format" and "version" first, then every other key. */
static bool read_galvc(Reader *r, const JsonFile *jf) {
    Key root = key_root(jf);
    if (!read_version(r, jf, &root)) return false;
    bool ok = true;
    const char *key;
    json_t *v;
    json_object_foreach(jf->root, key, v) {
        Key k = key_member(r, jf, &root, key);
        HwProfile *hw = r->hw;
        int which = name_index(key, top_keys);
        const char *unit = which >= 0 ? top_units[which] : NULL;
        switch (which) {
        case KEY_FORMAT:
        case KEY_VERSION: break;
        case KEY_DEVICE: ok &= read_device(r, &k, v); break;
        case KEY_BLAS: /* the BLAS kernels measured: for people, the planner does not need it */
            if (!json_is_string(v)) ok &= bad_value(r, &k, v, "a string");
            break;
        case KEY_PEAK_FLOPS: ok &= read_peak(r, jf, &k, v); break;
        case KEY_GEMM_RATES: ok &= read_gemm_rates(r, jf, &k, v); break;
        case KEY_GEMM_EFFICIENCY: ok &= take_number(r, &k, v, FRACTION, unit, &hw->gemm_efficiency); break;
        case KEY_MEM_BANDWIDTH: ok &= take_number(r, &k, v, POSITIVE, unit, &hw->mem_bandwidth); break;
        case KEY_OVERLAP_SLOWDOWN: ok &= take_number(r, &k, v, AT_LEAST_ONE, unit, &hw->overlap_slowdown); break;
        case KEY_SYNC_OVERHEAD: ok &= take_number(r, &k, v, NON_NEGATIVE, unit, &hw->sync_s); break;
        case KEY_INTRA: ok &= read_link(r, jf, &k, v, &hw->intra); break;
        case KEY_INTER: ok &= read_link(r, jf, &k, v, &hw->inter); break;
        case KEY_COLLECTIVES: ok &= read_collectives(r, jf, &k, v); break;
        case KEY_LAYERS: ok &= read_layers(r, jf, &k, v); break;
        default: ok = unknown_key(r, &k, key, "a galvc profile", top_keys);
        }
    }
    return ok;
}

/* ---- Hetu-Galvatron's profile files ------------------------------------------ */
/* Galvatron's profiler (PKU-DAIR/Hetu-Galvatron) writes one JSON file per
 * measurement into a folder; tests/data/galvatron/ holds real examples. Their
 * keys encode what was measured, and bandwidths are in GB/s (1e9 bytes/s).
 * Keys that galvc has no use for are passed over, but a key it uses must hold
 * a sensible number. */

typedef enum GalvKind {
    GALV_NONE,
    GALV_ALLREDUCE,   /* allreduce_bandwidth_{N}nodes_{M}gpus_per_node.json */
    GALV_P2P,         /* p2p_bandwidth_{N}nodes_{M}gpus_per_node.json */
    GALV_OVERLAP,     /* overlap_coefficient.json */
    GALV_COMPUTATION, /* computation_profiling_{precision}_{model}_all.json */
    GALV_MEMORY,      /* memory_profiling_{precision}_{model}_all.json */
    GALV_SP_TIME,     /* sp_time_{N}nodes_{M}gpus_per_node.json: all-to-all times */
    GALV_UNUSED,      /* nothing in HwProfile to fill */
} GalvKind;

/* Take the literal `lit` at *p. */
static bool scan_lit(const char **p, const char *lit) {
    size_t n = strlen(lit);
    if (strncmp(*p, lit, n) != 0) return false;
    *p += n;
    return true;
}

/* Take a decimal count (digits only) at *p. */
static bool scan_count(const char **p, long long *out) {
    const char *s = *p;
    long long v = 0;
    if (*s < '0' || *s > '9') return false;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > 1000000000000LL) return false;
        v = v * 10 + (*s - '0');
    }
    *p = s;
    *out = v;
    return true;
}

/* allreduce_size_{group}_consec_{0|1} */
static bool match_allreduce_key(const char *s, long long *group, long long *consec) {
    return scan_lit(&s, "allreduce_size_") && scan_count(&s, group) && scan_lit(&s, "_consec_") &&
           scan_count(&s, consec) && !*s;
}

/* pp_size_{stages} */
static bool match_p2p_key(const char *s, long long *stages) {
    return scan_lit(&s, "pp_size_") && scan_count(&s, stages) && !*s;
}

/* layertype_{type}_bsz{batch}[_seq{seq}]; *seq is 0 when the key has none;
 * type "other" (the embedding, final norm, head and loss together) is -1. */
static bool match_layer_key(const char *s, long long *type, long long *bsz, long long *seq) {
    *seq = 0;
    if (!scan_lit(&s, "layertype_")) return false;
    if (scan_lit(&s, "other")) *type = -1;
    else if (!scan_count(&s, type)) return false;
    if (!(scan_lit(&s, "_bsz") && scan_count(&s, bsz))) return false;
    return !*s || (scan_lit(&s, "_seq") && scan_count(&s, seq) && !*s);
}

/* {prefix}{N}nodes_{M}gpus_per_node.json */
static bool match_bandwidth_name(const char *s, const char *prefix, long long *nodes, long long *gpus) {
    return scan_lit(&s, prefix) && scan_count(&s, nodes) && scan_lit(&s, "nodes_") && scan_count(&s, gpus) &&
           scan_lit(&s, "gpus_per_node.json") && !*s;
}

static bool has_prefix(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

static bool has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* computation_profiling_{precision}_{model}_all.json: the precision (or -1
 * for a name that is not one), and the model in *model. */
static bool match_computation_name(Arena *a, const char *s, int *prec, const char **model) {
    if (!scan_lit(&s, "computation_profiling_") || !has_suffix(s, "_all.json")) return false;
    const char *us = strchr(s, '_'); /* there is one: the suffix's */
    *prec = name_index(arena_strndup(a, s, (size_t)(us - s)), precision_names);
    size_t rest = strlen(us + 1), suffix = strlen("all.json");
    *model = arena_strndup(a, us + 1, rest > suffix ? rest - suffix - 1 : 0);
    return true;
}

/* What kind of Galvatron file a name says it is. */
static GalvKind galv_kind_of_name(const char *name) {
    long long n, m;
    if (match_bandwidth_name(name, "allreduce_bandwidth_", &n, &m)) return GALV_ALLREDUCE;
    if (match_bandwidth_name(name, "p2p_bandwidth_", &n, &m)) return GALV_P2P;
    if (strcmp(name, "overlap_coefficient.json") == 0) return GALV_OVERLAP;
    if (has_prefix(name, "computation_profiling_") && has_suffix(name, "_all.json")) return GALV_COMPUTATION;
    if (has_prefix(name, "memory_profiling_") && has_suffix(name, ".json")) return GALV_MEMORY;
    if (match_bandwidth_name(name, "sp_time_", &n, &m)) return GALV_SP_TIME;
    return GALV_NONE;
}

/* What kind of Galvatron file a JSON object is, by its keys. */
static GalvKind galv_kind_of_keys(json_t *o) {
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        long long a, b, c;
        if (match_allreduce_key(key, &a, &b)) return GALV_ALLREDUCE;
        if (match_p2p_key(key, &a)) return GALV_P2P;
        if (strcmp(key, "overlap_coe") == 0) return GALV_OVERLAP;
        if (match_layer_key(key, &a, &b, &c)) return GALV_COMPUTATION;
        if (json_is_object(v) && (has_prefix(key, "layertype_") || has_prefix(key, "other_memory_")))
            return GALV_MEMORY;
        if (has_suffix(key, "MB_time")) return GALV_SP_TIME;
    }
    return GALV_NONE;
}

/* A figure must stay finite once converted to bytes (1e300 GB/s does not). */
static bool in_range(Reader *r, const Key *k, const char *key, double converted) {
    if (isfinite(converted)) return true;
    diag_error(r->diag, k->loc, "'%s' is out of range", key);
    return false;
}

/* allreduce_size_{g}_consec_{c} GB/s -> measured_bw[ALLREDUCE][log2 g][c]. */
static bool import_allreduce(Reader *r, const JsonFile *jf) {
    Key root = key_root(jf);
    bool ok = true;
    const char *key;
    json_t *v;
    json_object_foreach(jf->root, key, v) {
        long long group, consec;
        int lg;
        double gbs;
        if (!match_allreduce_key(key, &group, &consec)) continue;
        Key k = key_member(r, jf, &root, key);
        if (!group_log2(group, &lg) || consec > 1) {
            diag_error(r->diag, k.loc, "'%s': the group must be a power of two up to 2^30 and consec 0 or 1", key);
            ok = false;
        } else if (take_number(r, &k, v, POSITIVE, "GB/s", &gbs) && in_range(r, &k, key, gbs * 1e9)) {
            r->hw->measured_bw[COLL_ALLREDUCE][lg][consec] = gbs * 1e9;
        } else {
            ok = false;
        }
    }
    return ok;
}

/* pp_size_{stages} GB/s -> measured_bw[P2P][log2 stages][1]. */
static bool import_p2p(Reader *r, const JsonFile *jf) {
    Key root = key_root(jf);
    bool ok = true;
    const char *key;
    json_t *v;
    json_object_foreach(jf->root, key, v) {
        long long stages;
        int lg;
        double gbs;
        if (!match_p2p_key(key, &stages)) continue;
        Key k = key_member(r, jf, &root, key);
        if (!group_log2(stages, &lg)) {
            diag_error(r->diag, k.loc, "'%s': the stage count must be a power of two up to 2^30", key);
            ok = false;
        } else if (take_number(r, &k, v, POSITIVE, "GB/s", &gbs) && in_range(r, &k, key, gbs * 1e9)) {
            r->hw->measured_bw[COLL_P2P][lg][1] = gbs * 1e9;
        } else {
            ok = false;
        }
    }
    return ok;
}

/* overlap_coe -> overlap_slowdown. A measured coefficient a little under 1
 * is noise (overlap cannot speed compute up): it counts as 1. */
static bool import_overlap(Reader *r, const JsonFile *jf) {
    Key root = key_root(jf);
    json_t *v = json_object_get(jf->root, "overlap_coe");
    if (!v) return true;
    Key k = key_member(r, jf, &root, "overlap_coe");
    double coe;
    if (!take_number(r, &k, v, POSITIVE, NULL, &coe)) return false;
    r->hw->overlap_slowdown = coe < 1 ? 1 : coe;
    return true;
}

/* The layer Galvatron calls type 0: the first layer of the model's most
 * common transformer block kind, once the shape pass has sized it. */
static const Layer *repeated_layer(const Graph *g) {
    if (!g) return NULL;
    int count[LAYER_KIND_COUNT] = {0};
    const Layer *first[LAYER_KIND_COUNT] = {0};
    const Layer *best = NULL;
    for (int i = 0; i < g->n_layers; i++) {
        const Layer *l = g->layers[i];
        bool block = l->kind == LAYER_ENCODER || l->kind == LAYER_DECODER || l->kind == LAYER_CROSS_DECODER;
        if (!block || l->invalid || l->fwd_flops <= 0 || l->seq <= 0) continue;
        if (!first[l->kind]) first[l->kind] = l;
        count[l->kind]++;
    }
    for (int k = 0; k < LAYER_KIND_COUNT; k++)
        if (first[k] && (!best || count[k] > count[best->kind] ||
                         (count[k] == count[best->kind] && first[k]->index < best->index)))
            best = first[k];
    return best;
}

/* Sums for a least-squares line through a layer type's batch points. */
typedef struct Points {
    int n;
    double sx, sy, sxx, sxy;
} Points;

static void add_point(Points *p, double x, double y) {
    p->n++, p->sx += x, p->sy += y, p->sxx += x * x, p->sxy += x * y;
}

/* The least-squares line y = fixed + slope x; a negative intercept (noise
 * at small batches) gives way to the line through the origin. False when
 * the points give no positive slope. */
static bool fit_line(const Points *p, double *fixed, double *slope) {
    double den = p->n * p->sxx - p->sx * p->sx;
    *slope = den > 0 ? (p->n * p->sxy - p->sx * p->sy) / den : 0;
    *fixed = den > 0 ? (p->sy - *slope * p->sx) / p->n : 0;
    if (*fixed < 0 || den <= 0) *fixed = 0, *slope = p->sxx > 0 ? p->sxy / p->sxx : 0;
    return *slope > 0 && isfinite(*slope) && isfinite(*fixed);
}

/* One Galvatron line for a layer kind at every TP degree: forward fixed_s +
 * work / rate, backward twice the forward (Galvatron's bct_fct_coe = 2),
 * the TP all-reduces priced apart (Galvatron times layers at TP 1 and
 * scales the per-sample part by 1 / tp, as layer_fit_work does). */
static void set_fit(HwProfile *hw, ProfileLayer kind, double fixed_s, double rate) {
    for (int lg = 0; lg <= PROFILE_MAX_LOG2; lg++) {
        hw->layer_fit[kind][lg][0] = (LayerFit){.fixed_s = fixed_s, .rate = rate};
        hw->layer_fit[kind][lg][1] = (LayerFit){.fixed_s = 2 * fixed_s, .rate = rate};
    }
}

/* A layer's forward time on one sample by the datasheet: its FLOPs at the
 * GEMM rate plus its activations written and read at memory bandwidth. */
static double datasheet_s(const HwProfile *hw, const Layer *l, int prec) {
    return (double)l->fwd_flops / (hw->peak_flops[prec] * hw->gemm_efficiency) +
           2.0 * (double)(l->act_bytes + l->out_bytes) / hw->mem_bandwidth;
}

/* Galvatron times the embedding, final norm, LM head and loss as one
 * ("layertype_other"): its line (ms, at `seq` tokens) is split among the
 * model's embedding, norm and head layers in proportion to their datasheet
 * times, and each kind's share becomes its fit. */
static void split_other(Reader *r, double fixed_ms, double per_sample_ms, double seq, int prec) {
    const Graph *g = r->graph;
    double weight[PROFILE_LAYER_COUNT] = {0}, work[PROFILE_LAYER_COUNT] = {0}, total = 0;
    int count[PROFILE_LAYER_COUNT] = {0};
    for (int i = 0; i < g->n_layers; i++) {
        const Layer *l = g->layers[i];
        int k = layer_profile_kind(l->kind); /* ProfileLayer has GrtLayerKind's order */
        if (k < 0 || k == PROFILE_LAYER_BLOCK || l->invalid || l->seq <= 0) continue;
        double w = datasheet_s(r->hw, l, prec);
        weight[k] += w, total += w, count[k]++;
        work[k] += layer_fit_work(l, (ProfileLayer)k, 1, seq, 1, false);
    }
    for (int k = 0; k < PROFILE_LAYER_COUNT; k++) {
        if (!count[k] || !(weight[k] > 0) || !(work[k] > 0)) continue;
        double share = weight[k] / total;
        set_fit(r->hw, (ProfileLayer)k, fixed_ms * 1e-3 * share / count[k], work[k] / (per_sample_ms * 1e-3 * share));
    }
}

/* The sequence length of the layertype_0 entries nearest the model's; false
 * (after errors) when an entry is not a positive number of ms. */
static bool nearest_layer_seq(Reader *r, const JsonFile *jf, const Layer *l, long long *best_seq) {
    Key root = key_root(jf);
    bool ok = true;
    const char *key;
    json_t *v;
    *best_seq = 0;
    json_object_foreach(jf->root, key, v) {
        long long type, bsz, seq;
        if (!match_layer_key(key, &type, &bsz, &seq)) continue;
        Key k = key_member(r, jf, &root, key);
        double ms;
        if (!take_number(r, &k, v, POSITIVE, "ms", &ms)) ok = false;
        if (!l || type != 0 || bsz < 1) continue;
        if (!seq) seq = l->seq;
        if (!*best_seq || llabs(seq - l->seq) < llabs(*best_seq - l->seq) ||
            (llabs(seq - l->seq) == llabs(*best_seq - l->seq) && seq > *best_seq))
            *best_seq = seq;
    }
    return ok;
}

/* layertype_{0|other}_bsz{b}_seq{s}: forward ms per sample of the repeated
 * layer and of the embedding and head together, at several batch sizes b.
 * At the sequence length nearest the model's, each type's time per batch,
 * b x ms, is fitted by least squares to fixed + per_sample x b (Galvatron's
 * own fit, its search engine's linear_func): the repeated layer's line
 * becomes the block's fit, the other's is split among the embedding, norm
 * and head; the block's per-sample rate gives the GEMM efficiency at `prec`
 * that layers without a fit use. Without a sized model to relate the times
 * to, the file has nothing to give and is passed over. */
static bool import_computation(Reader *r, const JsonFile *jf, int prec) {
    const Layer *l = repeated_layer(r->graph);
    long long best_seq;
    if (!nearest_layer_seq(r, jf, l, &best_seq)) return false;
    if (!l || !best_seq) return true;
    Points block = {0}, other = {0};
    const char *key;
    json_t *v;
    json_object_foreach(jf->root, key, v) {
        long long type, bsz, seq;
        if (!match_layer_key(key, &type, &bsz, &seq) || bsz < 1 || (seq ? seq : l->seq) != best_seq) continue;
        if (type == 0) add_point(&block, (double)bsz, (double)bsz * json_number_value(v));
        if (type == -1) add_point(&other, (double)bsz, (double)bsz * json_number_value(v));
    }
    double peak = r->hw->peak_flops[prec], fixed, per_sample;
    if (!(peak > 0) || !fit_line(&block, &fixed, &per_sample)) return true; /* nothing to derive */
    double flops = layer_fit_work(l, PROFILE_LAYER_BLOCK, 1, (double)best_seq, 1, false);
    set_fit(r->hw, PROFILE_LAYER_BLOCK, fixed * 1e-3, flops / (per_sample * 1e-3));
    double other_fixed, other_per_sample;
    if (fit_line(&other, &other_fixed, &other_per_sample))
        split_other(r, other_fixed, other_per_sample, (double)best_seq, prec);
    double eff = flops / (per_sample * 1e-3 * peak);
    if (eff > 0) r->hw->gemm_efficiency = eff > 1 ? 1 : eff;
    return true;
}

/* Of an object keyed by sequence length, the entry (an object) nearest
 * `target` (0: any), its length in *seq; NULL if none. */
static json_t *nearest_seq(json_t *v, long long target, long long *best_seq) {
    json_t *best = NULL, *entry;
    const char *seq_key;
    json_object_foreach(v, seq_key, entry) {
        long long seq = atoll(seq_key), t = target ? target : seq;
        if (seq < 1 || !json_is_object(entry)) continue;
        if (!best || llabs(seq - t) < llabs(*best_seq - t)) best = entry, *best_seq = seq;
    }
    return best;
}

/* A memory file's top-level key `key` (with or without Galvatron's "_sp"
 * suffix) as an object keyed by sequence length: its entry nearest the
 * model's; NULL if absent or empty, with *bad set after an error. */
static json_t *memory_entry(Reader *r, const JsonFile *jf, const char *key, const Layer *l, long long *seq,
                            bool *bad) {
    Key root = key_root(jf);
    const char *name = key;
    json_t *v = json_object_get(jf->root, key);
    if (!v) v = json_object_get(jf->root, name = arena_printf(r->arena, "%s_sp", key));
    if (!v) return NULL;
    if (!json_is_object(v)) {
        Key k = key_member(r, jf, &root, name);
        *bad = !bad_value(r, &k, v, "an object keyed by sequence length");
        return NULL;
    }
    return nearest_seq(v, l ? l->seq : 0, seq);
}

/* The MiB figures of a {"1": MB, "2": MB, ..., "checkpoint": MB} object into
 * bytes by log2 of the TP degree (and *ckpt, when given); false after an
 * error. Galvatron writes 0 for what it could not measure. */
static bool take_tp_sizes(Reader *r, const JsonFile *jf, json_t *o, double *by_tp, double *ckpt) {
    Key root = key_root(jf);
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        if (!json_is_number(v) || !(json_number_value(v) >= 0) || !isfinite(json_number_value(v) * (1 << 20))) {
            Key k = key_member(r, jf, &root, key);
            return bad_value(r, &k, v, "a non-negative size in MiB");
        }
        double bytes = json_number_value(v) * (1 << 20);
        int lg;
        if (strcmp(key, "checkpoint") == 0) {
            if (ckpt) *ckpt = bytes;
        } else if (group_log2(atoll(key), &lg)) by_tp[lg] = bytes;
    }
    return true;
}

/* other_memory_pp_on_{first|last}[_sp] -> {"SEQ": {"activation": {"1": MB,
 * ...}}}: what the first stage keeps beyond its layers (the embedding) and
 * what the last keeps (final norm, LM head and loss), per sample on one
 * device, by TP degree; Galvatron multiplies them by the local batch. Their
 * "model_states" are the parameters' states, which galvc counts itself
 * (within 1% of these for LLaMA-2-7B), and "pp_off" is the two together. */
static bool import_other_memory(Reader *r, const JsonFile *jf, const Layer *l) {
    static const char *const keys[2] = {"other_memory_pp_on_first", "other_memory_pp_on_last"};
    HwProfile *hw = r->hw;
    bool bad = false;
    long long seq = 0;
    for (int i = 0; i < 2; i++) {
        json_t *e = memory_entry(r, jf, keys[i], l, &seq, &bad);
        json_t *act = e ? json_object_get(e, "activation") : NULL;
        if (!json_is_object(act) || !l) continue;
        memset(hw->other_act_per_sample[i], 0, sizeof hw->other_act_per_sample[i]);
        if (!take_tp_sizes(r, jf, act, hw->other_act_per_sample[i], NULL)) return false;
        hw->other_seq = seq;
    }
    return !bad;
}

/* layertype_0[_sp] -> {"SEQ": {"tp_activation_per_bsz_dict": {"1": MB, "2": MB,
 * ..., "checkpoint": MB}}}: the repeated layer's activations per sample, by
 * TP degree, in MiB. The sequence length nearest the model's is taken; the
 * cost pass scales it linearly to the model's length (Galvatron profiles
 * with FlashAttention, whose activations grow linearly). Then the embedding's
 * and head's (import_other_memory); the per-rank totals are passed over. */
static bool import_memory(Reader *r, const JsonFile *jf) {
    const Layer *l = repeated_layer(r->graph);
    bool bad = false;
    long long best_seq = 0;
    json_t *best = memory_entry(r, jf, "layertype_0", l, &best_seq, &bad);
    if (bad) return false;
    json_t *tp = best && l ? json_object_get(best, "tp_activation_per_bsz_dict") : NULL;
    if (json_is_object(tp)) {
        HwProfile *hw = r->hw;
        memset(hw->act_per_sample, 0, sizeof hw->act_per_sample);
        hw->ckpt_act_per_sample = 0;
        if (!take_tp_sizes(r, jf, tp, hw->act_per_sample, &hw->ckpt_act_per_sample)) return false;
        hw->act_kind = l->kind;
        hw->act_seq = best_seq;
        hw->act_sp = !json_object_get(jf->root, "layertype_0"); /* the figures under layertype_0_sp */
    }
    return import_other_memory(r, jf, l);
}

/* all2all_size_{group}_{MB}MB_time */
static bool match_all2all_key(const char *s, long long *group, long long *mb) {
    return scan_lit(&s, "all2all_size_") && scan_count(&s, group) && scan_lit(&s, "_") && scan_count(&s, mb) &&
           scan_lit(&s, "MB_time") && !*s;
}

/* Least-squares line through a group's (MiB, ms) points: n, sum x, sum y, sum x^2, sum x y. */
typedef struct LineFit {
    double n, x, y, xx, xy;
} LineFit;

/* A group's all-to-all line, time = latency + bytes / rate, into the
 * measured bus bandwidth (NCCL's convention, as cost.c's all-to-all model
 * reads it: (g-1)/g of the bytes cross at bus bandwidth) and latency. */
static void set_all2all(HwProfile *hw, int lg, const LineFit *f) {
    double g = (double)(1LL << lg), det = f->n * f->xx - f->x * f->x;
    if (f->n < 2 || det <= 0) return;
    double slope = (f->n * f->xy - f->x * f->y) / det, icpt = (f->y - slope * f->x) / f->n; /* ms per MiB, ms */
    if (slope <= 0) return;
    hw->measured_bw[COLL_ALLTOALL][lg][1] = (g - 1) / g * 1048576.0 / (slope * 1e-3);
    hw->measured_lat[COLL_ALLTOALL][lg][1] = icpt > 0 ? icpt * 1e-3 : 0;
}

/* sp_time's all2all_size_{g}_{MB}MB_time, milliseconds of an all-to-all of
 * MB MiB over g consecutive devices (Galvatron's profiler, which sizes the
 * Ulysses exchange by these), fitted per group to a line; -> measured_bw
 * and measured_lat[ALLTOALL][log2 g][1]. Its allreduce_size_* times are
 * passed over: allreduce_bandwidth_* holds the all-reduce. */
static bool import_sp_time(Reader *r, const JsonFile *jf) {
    Key root = key_root(jf);
    LineFit *fit = arena_alloc(r->arena, (PROFILE_MAX_LOG2 + 1) * sizeof *fit);
    bool ok = true;
    const char *key;
    json_t *v;
    json_object_foreach(jf->root, key, v) {
        long long group, mb;
        int lg;
        double ms;
        if (!match_all2all_key(key, &group, &mb)) continue;
        Key k = key_member(r, jf, &root, key);
        if (!group_log2(group, &lg) || mb < 1) {
            diag_error(r->diag, k.loc, "'%s': the group must be a power of two up to 2^30 and the size 1 MB or more",
                       key);
            ok = false;
        } else if (take_number(r, &k, v, POSITIVE, "ms", &ms) && in_range(r, &k, key, ms * 1e-3)) {
            LineFit *f = &fit[lg];
            f->n++, f->x += (double)mb, f->y += ms, f->xx += (double)mb * mb, f->xy += (double)mb * ms;
        } else {
            ok = false;
        }
    }
    for (int lg = 1; ok && lg <= PROFILE_MAX_LOG2; lg++)
        set_all2all(r->hw, lg, &fit[lg]);
    return ok;
}

/* The file name without its folders. */
static const char *base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Import one Galvatron file of a known kind; false after errors. */
static bool import_galvatron(Reader *r, const JsonFile *jf, GalvKind kind) {
    switch (kind) {
    case GALV_ALLREDUCE: return import_allreduce(r, jf);
    case GALV_P2P: return import_p2p(r, jf);
    case GALV_OVERLAP: return import_overlap(r, jf);
    case GALV_COMPUTATION: {
        int prec;
        const char *model;
        if (!match_computation_name(r->arena, base_name(jf->src->path), &prec, &model) || prec < 0) {
            diag_error(r->diag, whole(jf->src),
                       "cannot tell the precision of these timings: Galvatron names the file "
                       "computation_profiling_{fp32|bf16|fp16}_{model}_all.json");
            return false;
        }
        return import_computation(r, jf, prec);
    }
    case GALV_MEMORY: return import_memory(r, jf);
    case GALV_SP_TIME: return import_sp_time(r, jf);
    case GALV_UNUSED:
    case GALV_NONE: return true;
    }
    return true;
}

/* ---- one file, or a folder ---------------------------------------------------- */

/* A profile file: galvc's format if it has "format", else Galvatron's. */
static bool read_file(Reader *r, const char *path) {
    JsonFile jf;
    if (!load_json(r, path, &jf)) return false;
    bool ok;
    if (json_object_get(jf.root, PROFILE_KEY_FORMAT)) ok = read_galvc(r, &jf);
    else {
        GalvKind kind = galv_kind_of_keys(jf.root);
        if (kind == GALV_NONE) {
            diag_error(r->diag, whole(jf.src),
                       "not a profile: a galvc profile has \"" PROFILE_KEY_FORMAT "\": \"" PROFILE_FORMAT
                       "\", and none of its keys is one of Galvatron's");
            ok = false;
        } else ok = import_galvatron(r, &jf, kind);
    }
    json_decref(jf.root);
    return ok;
}

/* A Galvatron file in a folder, as its name describes it. */
typedef struct GalvFile {
    const char *name;
    GalvKind kind;
    long long nodes, gpus; /* bandwidth files */
    int prec;              /* computation files; -1: not a precision galvc knows */
    const char *model;
} GalvFile;

static int compare_names(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A name as a model name compares: lower case, without '-', '_' and '.'. */
static const char *model_key(Arena *a, const char *s) {
    char *out = arena_alloc(a, strlen(s) + 1), *o = out;
    for (; *s; s++)
        if (*s != '-' && *s != '_' && *s != '.') *o++ = (char)(*s >= 'A' && *s <= 'Z' ? *s - 'A' + 'a' : *s);
    return out;
}

/* Whether bandwidth file a fits the cluster better than b: the cluster's
 * node count first (and then its devices per node), else the most nodes. */
static bool fits_better(const GalvFile *a, const GalvFile *b, const Cluster *c) {
    long long nodes = c->nodes > 0 ? c->nodes : 1;
    int ma = a->nodes == nodes, mb = b->nodes == nodes;
    if (ma != mb) return ma > mb;
    int ga = ma && a->gpus == c->devices_per_node, gb = mb && b->gpus == c->devices_per_node;
    if (ga != gb) return ga > gb;
    if (a->nodes != b->nodes) return a->nodes > b->nodes;
    return a->gpus > b->gpus;
}

/* Whether computation file a suits the model better than b: its model's
 * name first, then the half precisions training mostly uses. */
static bool suits_better(Reader *r, const GalvFile *a, const GalvFile *b) {
    const char *name = r->graph && r->graph->name ? model_key(r->arena, r->graph->name) : "";
    int ma = strcmp(model_key(r->arena, a->model), name) == 0, mb = strcmp(model_key(r->arena, b->model), name) == 0;
    if (ma != mb) return ma > mb;
    static const int rank[] = {[PREC_BF16] = 3, [PREC_FP16] = 2, [PREC_FP32] = 1};
    return (a->prec >= 0 ? rank[a->prec] : 0) > (b->prec >= 0 ? rank[b->prec] : 0);
}

/* A folder of Galvatron profiles: of each kind, the file that fits best. */
static bool read_dir(Reader *r, const char *path) {
    const SourceFile *dir_src = profile_source(r->arena, path, "", 0);
    DIR *dir = opendir(path);
    if (!dir) {
        diag_error(r->diag, whole(dir_src), "cannot read the profile folder: %s", strerror(errno));
        return false;
    }
    const char **names = NULL;
    int n = 0, cap = 0;
    for (struct dirent *e; (e = readdir(dir)) && n < MAX_DIR_ENTRIES;) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 32;
            const char **grown = arena_alloc(r->arena, (size_t)cap * sizeof *grown);
            if (n) memcpy(grown, names, (size_t)n * sizeof *names);
            names = grown;
        }
        names[n++] = arena_strdup(r->arena, e->d_name);
    }
    closedir(dir);
    if (n) qsort(names, (size_t)n, sizeof *names, compare_names);

    GalvFile chosen[GALV_UNUSED + 1] = {0};
    bool any = false;
    for (int i = 0; i < n; i++) {
        GalvFile f = {.name = names[i], .kind = galv_kind_of_name(names[i]), .prec = -1, .model = ""};
        if (f.kind == GALV_NONE) continue;
        any = true;
        if (f.kind == GALV_UNUSED) continue;
        if (f.kind == GALV_ALLREDUCE) match_bandwidth_name(f.name, "allreduce_bandwidth_", &f.nodes, &f.gpus);
        if (f.kind == GALV_P2P) match_bandwidth_name(f.name, "p2p_bandwidth_", &f.nodes, &f.gpus);
        if (f.kind == GALV_SP_TIME) match_bandwidth_name(f.name, "sp_time_", &f.nodes, &f.gpus);
        if (f.kind == GALV_COMPUTATION) match_computation_name(r->arena, f.name, &f.prec, &f.model);
        GalvFile *best = &chosen[f.kind];
        bool better = !best->name;
        if (!better && (f.kind == GALV_ALLREDUCE || f.kind == GALV_P2P || f.kind == GALV_SP_TIME))
            better = fits_better(&f, best, r->cluster);
        if (!better && f.kind == GALV_COMPUTATION) better = suits_better(r, &f, best);
        if (better) *best = f;
    }
    if (!any) {
        diag_error(r->diag, whole(dir_src),
                   "no Galvatron profile in this folder (allreduce_bandwidth_*, p2p_bandwidth_*, "
                   "overlap_coefficient.json, computation_profiling_*, sp_time_*)");
        return false;
    }
    bool ok = true;
    for (int k = GALV_ALLREDUCE; k < GALV_UNUSED; k++) {
        if (!chosen[k].name) continue;
        JsonFile jf;
        const char *file = arena_printf(r->arena, "%s%s%s", path, has_suffix(path, "/") ? "" : "/", chosen[k].name);
        if (!load_json(r, file, &jf)) {
            ok = false;
            continue;
        }
        ok &= import_galvatron(r, &jf, (GalvKind)k);
        json_decref(jf.root);
    }
    return ok;
}

/* ---- positions for other readers of JSON files --------------------------------- */

Loc json_member_loc(const SourceFile *f, const char *key, long *value) {
    *value = -1;
    long at = find_member(f, (long)skip_ws(f->text, f->len, 0), key, value);
    return at >= 0 ? loc_at(f, at, strlen(key) + 2) : whole(f);
}

Loc json_offset_loc(const SourceFile *f, long off, size_t width) { return loc_at(f, off, width); }

/* ---- the entry point ------------------------------------------------------------ */

bool profile_resolve(Arena *a, const Cluster *c, const Graph *g, const char *path, HwProfile *hw, Diag *d) {
    hw_preset(hw, (DeviceKind)c->device);
    if (c->memory > 0) hw->memory = c->memory;
    const Link *links[2] = {&c->intra, &c->inter};
    LinkProfile *levels[2] = {&hw->intra, &hw->inter};
    for (int i = 0; i < 2; i++) {
        if (!links[i]->given) continue;
        if (links[i]->bandwidth > 0) levels[i]->bandwidth = links[i]->bandwidth;
        if (links[i]->latency > 0) levels[i]->latency = links[i]->latency;
    }
    if (!path) return true;

    /* Read into a copy: a profile with errors leaves hw as it is. */
    HwProfile *measured = arena_alloc(a, sizeof *measured);
    *measured = *hw;
    Reader r = {.arena = a, .diag = d, .cluster = c, .graph = g, .hw = measured};
    struct stat st;
    int errors = d->errors;
    bool ok = stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? read_dir(&r, path) : read_file(&r, path);
    ok = ok && d->errors == errors;
    if (ok) *hw = *measured;
    return ok;
}
