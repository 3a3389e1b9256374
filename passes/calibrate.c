/* calibrate.c — holding the cost model to measurement: from the JSON-lines
 * logs of training runs (each opens with the plan's predicted step time and
 * its compute, communication and bubble parts; then one line per step), fit
 * how much slower or faster compute and communication really were, report
 * every run's prediction error before and after, and write the profile with
 * its coefficients refitted.
 *
 * The model fitted: measured = a (compute + bubble) + b (communication) +
 * s (blocking collectives), least squares on the relative error over the
 * runs (the median step after the warm-up steps): s is what each blocking
 * collective costs beyond its transfer, the ranks meeting (more when they
 * share cores). Runs that cannot separate the three fit a and b alone, and
 * runs that cannot separate those, one factor a = b. Then the profile's
 * compute figures (layer fit rates, GEMM efficiency, memory bandwidth) are
 * divided by a, its link figures (bandwidths) by b, their latencies
 * multiplied, and its sync_overhead becomes s. */
#include "passes.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { WARMUP_STEPS = 5 };

typedef struct Run {
    const char *path;
    double step_ms, compute_ms, comm_ms, bubble_ms; /* predicted */
    double calls;                                   /* blocking collectives a step */
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
            r->calls = json_number_value(json_object_get(plan, "predicted_calls"));
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

/* Solve the n x n system A x = y (n <= 3) by elimination; false when singular. */
static bool solve(double A[3][3], double y[3], int n, double *x) {
    for (int c = 0; c < n; c++) {
        int p = c;
        for (int r = c + 1; r < n; r++)
            if (fabs(A[r][c]) > fabs(A[p][c])) p = r;
        if (fabs(A[p][c]) < 1e-12) return false;
        for (int k = 0; k < n; k++) {
            double t = A[c][k];
            A[c][k] = A[p][k], A[p][k] = t;
        }
        double t = y[c];
        y[c] = y[p], y[p] = t;
        for (int r = 0; r < n; r++) {
            if (r == c) continue;
            double f = A[r][c] / A[c][c];
            for (int k = 0; k < n; k++) A[r][k] -= f * A[c][k];
            y[r] -= f * y[c];
        }
    }
    for (int c = 0; c < n; c++) x[c] = y[c] / A[c][c];
    return true;
}

/* Least squares of measured = a x + b y + s z on relative errors (each run
 * divided by its measured time, so a slow run does not outweigh the others)
 * with k of the features; false unless every coefficient is positive
 * (s: non-negative). */
static bool fit_k(const Run *runs, int n, double sync0, int k, double *coef) {
    double A[3][3] = {{0}}, y[3] = {0};
    for (int i = 0; i < n; i++) {
        double m = runs[i].measured_ms, f[3];
        f[0] = (runs[i].compute_ms + runs[i].bubble_ms) / m;
        f[1] = (runs[i].comm_ms - runs[i].calls * sync0) / m;
        f[2] = runs[i].calls / m;
        if (k == 1) f[0] += f[1] + f[2] * sync0; /* one factor on the whole prediction */
        if (k == 2) f[1] += f[2] * sync0;        /* the meeting cost scales with communication */
        for (int r = 0; r < k; r++) {
            for (int c = 0; c < k; c++) A[r][c] += f[r] * f[c];
            y[r] += f[r];
        }
    }
    if (!solve(A, y, k, coef)) return false;
    for (int c = 0; c < k; c++)
        if (c < 2 ? coef[c] <= 0 : coef[c] < 0) return false;
    return true;
}

/* a, b and s (ms per collective), with as many features as the runs separate. */
static void fit(const Run *runs, int n, double sync0, double *a, double *b, double *s) {
    double c[3];
    if (n >= 3 && fit_k(runs, n, sync0, 3, c)) *a = c[0], *b = c[1], *s = c[2];
    else if (n >= 2 && fit_k(runs, n, sync0, 2, c)) *a = c[0], *b = c[1], *s = sync0 * c[1];
    else if (fit_k(runs, n, sync0, 1, c)) *a = *b = c[0], *s = sync0 * c[0];
    else *a = *b = 1, *s = sync0;
}

/* Multiply the number at key of obj by factor (when it is there). */
static void scale(json_t *obj, const char *key, double factor) {
    json_t *v = json_object_get(obj, key);
    if (json_is_number(v)) json_object_set_new(obj, key, json_real(json_number_value(v) * factor));
}

/* The profile with compute slower by a and communication slower by b. */
static void refit(json_t *p, double a, double b, double sync_s) {
    json_object_set_new(p, "sync_overhead", json_real(sync_s));
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
        double sync0 = json_number_value(json_object_get(p, "sync_overhead")) * 1e3; /* ms */
        double a, b, s;
        fit(runs, n_logs, sync0, &a, &b, &s);
        fprintf(report, "compute %.3fx, communication %.3fx what the profile said; %.1f us per blocking collective\n",
                a, b, s * 1e3);
        fprintf(report, "%-40s %12s %12s %9s %12s %9s\n", "run", "measured ms", "predicted", "error", "refitted",
                "error");
        double before = 0, after = 0;
        for (int i = 0; i < n_logs; i++) {
            const Run *r = &runs[i];
            double fitted = a * (r->compute_ms + r->bubble_ms) + b * (r->comm_ms - r->calls * sync0) + s * r->calls;
            double e0 = (r->step_ms - r->measured_ms) / r->measured_ms, e1 = (fitted - r->measured_ms) / r->measured_ms;
            before += fabs(e0), after += fabs(e1);
            fprintf(report, "%-40s %12.3f %12.3f %+8.1f%% %12.3f %+8.1f%%\n", r->path, r->measured_ms, r->step_ms,
                    100 * e0, fitted, 100 * e1);
        }
        fprintf(report, "mean absolute error: %.1f%% before, %.1f%% after\n", 100 * before / n_logs,
                100 * after / n_logs);
        refit(p, a, b, s * 1e-3);
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
