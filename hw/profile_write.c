/* profile_write.c — calibration's rewriting of a galvc profile
 * (docs/profile-format.md): the profile is kept as the JSON it was read as,
 * its compute figures (layer fit rates, GEMM efficiency, memory bandwidth)
 * divided by how much slower compute really was, its link figures
 * (bandwidths) by how much slower communication was, their latencies
 * multiplied, and its sync_overhead replaced; every other key stays as it
 * was. The keys are profile_schema.h's, the ones the reader knows. */
#include "hw.h"
#include "profile_schema.h"

#include <jansson.h>
#include <stdlib.h>

struct ProfileJson {
    json_t *root; /* an object */
};

ProfileJson *profile_json_load(const char *path, FILE *err) {
    json_error_t e;
    json_t *root = json_load_file(path, 0, &e);
    if (!json_is_object(root)) {
        fprintf(err, "%s:%d:%d: error: not a galvc profile: %s\n", path, e.line, e.column, e.text);
        json_decref(root);
        return NULL;
    }
    ProfileJson *p = malloc(sizeof *p);
    if (!p) die("out of memory");
    p->root = root;
    return p;
}

double profile_json_sync_s(const ProfileJson *p) {
    return json_number_value(json_object_get(p->root, PROFILE_KEY_SYNC_OVERHEAD));
}

/* Multiply the number at key of obj by factor (when it is there). */
static void scale(json_t *obj, const char *key, double factor) {
    json_t *v = json_object_get(obj, key);
    if (json_is_number(v)) json_object_set_new(obj, key, json_real(json_number_value(v) * factor));
}

/* gemm_efficiency divided by a; efficiency is capped at 1: the rest goes into the peak. */
static void scale_efficiency(json_t *p, double a) {
    json_t *eff = json_object_get(p, PROFILE_KEY_GEMM_EFFICIENCY);
    if (!json_is_number(eff)) return;
    double e = json_number_value(eff) / a;
    if (e > 1) {
        json_t *peak = json_object_get(p, PROFILE_KEY_PEAK_FLOPS);
        const char *k;
        json_t *v;
        json_object_foreach(peak, k, v) json_object_set_new(peak, k, json_real(json_number_value(v) * e));
        e = 1;
    }
    json_object_set_new(p, PROFILE_KEY_GEMM_EFFICIENCY, json_real(e));
}

/* Every layer fit's rate divided by a and its fixed time multiplied. */
static void scale_layers(json_t *p, double a) {
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(p, PROFILE_KEY_LAYERS), i, l) {
        const char *dir[2] = {PROFILE_KEY_FORWARD, PROFILE_KEY_BACKWARD};
        for (int d = 0; d < 2; d++) {
            json_t *f = json_object_get(l, dir[d]);
            scale(f, PROFILE_KEY_RATE, 1 / a);
            scale(f, PROFILE_KEY_FIXED_S, a);
        }
    }
}

/* Every link's and measured collective's bandwidth divided by b and its latency multiplied. */
static void scale_links(json_t *p, double b) {
    const char *links[2] = {PROFILE_KEY_INTRA, PROFILE_KEY_INTER};
    for (int k = 0; k < 2; k++) {
        json_t *link = json_object_get(p, links[k]);
        scale(link, PROFILE_KEY_BANDWIDTH, 1 / b);
        scale(link, PROFILE_KEY_LATENCY, b);
    }
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(p, PROFILE_KEY_COLLECTIVES), i, c) {
        scale(c, PROFILE_KEY_BUS_BANDWIDTH, 1 / b);
        scale(c, PROFILE_KEY_LATENCY, b);
    }
}

void profile_json_scale(ProfileJson *p, const ProfileScale *s) {
    json_object_set_new(p->root, PROFILE_KEY_SYNC_OVERHEAD, json_real(s->sync_s));
    scale(p->root, PROFILE_KEY_MEM_BANDWIDTH, 1 / s->compute);
    scale_efficiency(p->root, s->compute);
    scale_layers(p->root, s->compute);
    scale_links(p->root, s->comm);
}

bool profile_json_write(const ProfileJson *p, const char *path, FILE *err) {
    if (json_dump_file(p->root, path, JSON_INDENT(2) | JSON_REAL_PRECISION(6)) == 0) return true;
    fprintf(err, "galvc: error: --calibrate: cannot write '%s'\n", path);
    return false;
}

void profile_json_free(ProfileJson *p) {
    if (!p) return;
    json_decref(p->root);
    free(p);
}
