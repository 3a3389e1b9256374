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
 * multiplied, and its sync_overhead becomes s. Reading the logs and
 * rewriting the profile are hw/'s (log.c, profile_write.c); the fit is this
 * pass. */
#include "passes.h"
#include "hw/hw.h"

#include <math.h>
#include <stdlib.h>

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

/* The median of v[0..n), sorting it. */
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The log's step times (the steps that have one), in a new array; their count in *n. */
static double *step_times(const TrainLog *log, int *n) {
    double *ms = malloc(sizeof *ms * (size_t)(log->n_steps + 1));
    if (!ms) die("out of memory");
    *n = 0;
    for (int i = 0; i < log->n_steps; i++)
        if (isfinite(log->steps[i].ms)) ms[(*n)++] = log->steps[i].ms;
    return ms;
}

/* One log: its predictions and the median of its step times after the
 * warm-up; false (with the reason) when unusable. */
static bool read_run(const char *path, Run *r, FILE *err) {
    TrainLog log;
    bool ok = train_log_read(path, &log, err);
    int n = 0;
    double *ms = step_times(&log, &n);
    if (ok && n <= WARMUP_STEPS) {
        fprintf(err, "galvc: error: --calibrate: '%s' has %d steps; it needs more than %d (the first are warm-up)\n",
                path, n, WARMUP_STEPS);
        ok = false;
    }
    *r = (Run){.path = path, .step_ms = log.step_ms, .compute_ms = log.compute_ms, .comm_ms = log.comm_ms,
               .bubble_ms = log.bubble_ms, .calls = log.calls};
    if (ok) r->measured_ms = median(ms + WARMUP_STEPS, n - WARMUP_STEPS);
    free(ms);
    train_log_free(&log);
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

/* Print the factors fitted and every run's error before and after the refit. */
static void report_fit(FILE *report, const Run *runs, int n, double sync0, double a, double b, double s) {
    fprintf(report, "compute %.3fx, communication %.3fx what the profile said; %.1f us per blocking collective\n", a,
            b, s * 1e3);
    fprintf(report, "%-40s %12s %12s %9s %12s %9s\n", "run", "measured ms", "predicted", "error", "refitted", "error");
    double before = 0, after = 0;
    for (int i = 0; i < n; i++) {
        const Run *r = &runs[i];
        double fitted = a * (r->compute_ms + r->bubble_ms) + b * (r->comm_ms - r->calls * sync0) + s * r->calls;
        double e0 = (r->step_ms - r->measured_ms) / r->measured_ms, e1 = (fitted - r->measured_ms) / r->measured_ms;
        before += fabs(e0), after += fabs(e1);
        fprintf(report, "%-40s %12.3f %12.3f %+8.1f%% %12.3f %+8.1f%%\n", r->path, r->measured_ms, r->step_ms,
                100 * e0, fitted, 100 * e1);
    }
    fprintf(report, "mean absolute error: %.1f%% before, %.1f%% after\n", 100 * before / n, 100 * after / n);
}

bool pass_calibrate(const char *const *logs, int n_logs, const char *profile, const char *output, FILE *report) {
    Run *runs = calloc((size_t)n_logs, sizeof *runs);
    if (!runs) die("out of memory");
    bool ok = true;
    for (int i = 0; i < n_logs; i++) ok = read_run(logs[i], &runs[i], stderr) && ok;
    ProfileJson *p = ok ? profile_json_load(profile, stderr) : NULL;
    ok = p != NULL;
    if (p) {
        double sync0 = profile_json_sync_s(p) * 1e3; /* ms */
        double a, b, s;
        fit(runs, n_logs, sync0, &a, &b, &s);
        report_fit(report, runs, n_logs, sync0, a, b, s);
        profile_json_scale(p, &(ProfileScale){.compute = a, .comm = b, .sync_s = s * 1e-3});
        ok = profile_json_write(p, output, stderr);
        if (ok) fprintf(report, "wrote %s\n", output);
    }
    profile_json_free(p);
    free(runs);
    return ok;
}
