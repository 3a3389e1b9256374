/* calibrate.c — holding the cost model to measurement: from the JSON-lines
 * logs of training runs (each opens with the plan's predicted step time and
 * its compute, communication and bubble parts; then one line per step), fit
 * how much slower or faster compute and communication really were, report
 * every run's prediction error before and after, and write the profile with
 * its coefficients refitted.
 *
 * The model fitted: measured = a (compute + bubble) + b (communication),
 * least squares on the relative error over the runs (the median step after the warm-up steps); a
 * run without communication, or runs that cannot separate a from b, give
 * one factor a = b. Then the profile's compute figures (layer fit rates,
 * GEMM efficiency, memory bandwidth) are divided by a and its link figures
 * (bandwidths) by b, their latencies multiplied. */
#include "passes.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { WARMUP_STEPS = 5 };

typedef struct Run {
    const char *path;
    double step_ms, compute_ms, comm_ms, bubble_ms; /* predicted */
    double measured_ms;                             /* median after warm-up */
} Run;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One log: its plan line and the median of its step times; false (with the reason) when unusable. */
static bool read_run(const char *path, Run *r, FILE *err) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(err, "galvc: error: --calibrate: cannot read '%s'\n", path);
        return false;
    }
    memset(r, 0, sizeof *r);
    r->path = path;
    double *ms = NULL;
    int n = 0, cap = 0, line_no = 0;
    bool have_plan = false, ok = true;
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        line_no++;
        json_error_t e;
        json_t *j = json_loads(line, 0, &e);
        if (!j) {
            fprintf(err, "%s:%d: error: not a JSON line: %s\n", path, line_no, e.text);
            ok = false;
            break;
        }
        json_t *plan = json_object_get(j, "plan"), *step = json_object_get(j, "ms");
        if (plan) {
            r->step_ms = json_number_value(json_object_get(plan, "predicted_step_ms"));
            r->compute_ms = json_number_value(json_object_get(plan, "predicted_compute_ms"));
            r->comm_ms = json_number_value(json_object_get(plan, "predicted_comm_ms"));
            r->bubble_ms = json_number_value(json_object_get(plan, "predicted_bubble_ms"));
            have_plan = r->step_ms > 0;
        } else if (step && json_object_get(j, "step")) {
            if (n == cap) {
                cap = cap ? 2 * cap : 64;
                ms = realloc(ms, sizeof *ms * (size_t)cap);
                if (!ms) die("out of memory");
            }
            ms[n++] = json_number_value(step);
        }
        json_decref(j);
    }
    fclose(f);
    if (ok && !have_plan) {
        fprintf(err, "galvc: error: --calibrate: '%s' has no plan line (write it with ./train --log)\n", path);
        ok = false;
    }
    if (ok && n <= WARMUP_STEPS) {
        fprintf(err, "galvc: error: --calibrate: '%s' has %d steps; it needs more than %d (the first are warm-up)\n",
                path, n, WARMUP_STEPS);
        ok = false;
    }
    if (ok) {
        qsort(ms + WARMUP_STEPS, (size_t)(n - WARMUP_STEPS), sizeof *ms, cmp_double);
        int k = n - WARMUP_STEPS;
        const double *v = ms + WARMUP_STEPS;
        r->measured_ms = k % 2 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2;
    }
    free(ms);
    return ok;
}

/* Least squares for measured = a x + b y on relative errors (each run
 * weighted by 1 / measured^2, so a slow run does not outweigh the others);
 * one factor when the runs cannot separate the two. */
static void fit(const Run *runs, int n, double *a, double *b) {
    double xx = 0, xy = 0, yy = 0, xm = 0, ym = 0, pp = 0, pm = 0;
    for (int i = 0; i < n; i++) {
        double m = runs[i].measured_ms;
        double x = (runs[i].compute_ms + runs[i].bubble_ms) / m, y = runs[i].comm_ms / m;
        double p = x + y;
        m = 1;
        xx += x * x, xy += x * y, yy += y * y, xm += x * m, ym += y * m, pp += p * p, pm += p * m;
    }
    double det = xx * yy - xy * xy;
    *a = *b = pp > 0 ? pm / pp : 1;
    if (n >= 2 && det > 1e-9 * xx * yy) {
        double fa = (xm * yy - ym * xy) / det, fb = (ym * xx - xm * xy) / det;
        if (fa > 0 && fb > 0) *a = fa, *b = fb;
    }
}

/* Multiply the number at key of obj by factor (when it is there). */
static void scale(json_t *obj, const char *key, double factor) {
    json_t *v = json_object_get(obj, key);
    if (json_is_number(v)) json_object_set_new(obj, key, json_real(json_number_value(v) * factor));
}

/* The profile with compute slower by a and communication slower by b. */
static void refit(json_t *p, double a, double b) {
    scale(p, "mem_bandwidth", 1 / a);
    json_t *eff = json_object_get(p, "gemm_efficiency");
    if (json_is_number(eff)) {
        /* efficiency is capped at 1: the rest goes into the peak */
        double e = json_number_value(eff) / a;
        if (e > 1) {
            json_t *peak = json_object_get(p, "peak_flops");
            const char *k;
            json_t *v;
            json_object_foreach(peak, k, v) json_object_set_new(peak, k, json_real(json_number_value(v) * e));
            e = 1;
        }
        json_object_set_new(p, "gemm_efficiency", json_real(e));
    }
    size_t i;
    json_t *l;
    json_array_foreach(json_object_get(p, "layers"), i, l) {
        const char *dir[2] = {"forward", "backward"};
        for (int d = 0; d < 2; d++) {
            json_t *f = json_object_get(l, dir[d]);
            scale(f, "rate", 1 / a);
            scale(f, "fixed_s", a);
        }
    }
    const char *links[2] = {"intra", "inter"};
    for (int k = 0; k < 2; k++) {
        json_t *link = json_object_get(p, links[k]);
        scale(link, "bandwidth", 1 / b);
        scale(link, "latency", b);
    }
    json_t *c;
    json_array_foreach(json_object_get(p, "collectives"), i, c) {
        scale(c, "bus_bandwidth", 1 / b);
        scale(c, "latency", b);
    }
}

bool pass_calibrate(const char *const *logs, int n_logs, const char *profile, const char *output, FILE *report) {
    Run *runs = calloc((size_t)n_logs, sizeof *runs);
    if (!runs) die("out of memory");
    bool ok = true;
    for (int i = 0; i < n_logs; i++) ok = read_run(logs[i], &runs[i], stderr) && ok;
    json_error_t e;
    json_t *p = ok ? json_load_file(profile, 0, &e) : NULL;
    if (ok && !json_is_object(p)) {
        fprintf(stderr, "%s:%d:%d: error: not a galvc profile: %s\n", profile, e.line, e.column, e.text);
        ok = false;
    }
    if (ok) {
        double a, b;
        fit(runs, n_logs, &a, &b);
        fprintf(report, "compute %.3fx, communication %.3fx what the profile said\n", a, b);
        fprintf(report, "%-40s %12s %12s %9s %12s %9s\n", "run", "measured ms", "predicted", "error", "refitted",
                "error");
        double before = 0, after = 0;
        for (int i = 0; i < n_logs; i++) {
            const Run *r = &runs[i];
            double fitted = a * (r->compute_ms + r->bubble_ms) + b * r->comm_ms;
            double e0 = (r->step_ms - r->measured_ms) / r->measured_ms, e1 = (fitted - r->measured_ms) / r->measured_ms;
            before += fabs(e0), after += fabs(e1);
            fprintf(report, "%-40s %12.3f %12.3f %+8.1f%% %12.3f %+8.1f%%\n", r->path, r->measured_ms, r->step_ms,
                    100 * e0, fitted, 100 * e1);
        }
        fprintf(report, "mean absolute error: %.1f%% before, %.1f%% after\n", 100 * before / n_logs,
                100 * after / n_logs);
        refit(p, a, b);
        if (json_dump_file(p, output, JSON_INDENT(2) | JSON_REAL_PRECISION(6)) != 0) {
            fprintf(stderr, "galvc: error: --calibrate: cannot write '%s'\n", output);
            ok = false;
        } else {
            fprintf(report, "wrote %s\n", output);
        }
    }
    json_decref(p);
    free(runs);
    return ok;
}
