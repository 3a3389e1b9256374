/* compare.c — does a run under some plan train the same model as one rank?
 *   compare REF.jsonl RUN.jsonl REF.dump RUN.dump LOSS_TOL PARAM_TOL
 *   compare REF.jsonl RUN.jsonl LOSS_TOL      (the losses alone: runs that
 *                                             cannot --dump, the CUDA target's)
 * Losses step by step must agree within LOSS_TOL relative; every parameter
 * of the two --dump files within PARAM_TOL (relative to the value, absolute
 * below 1). Both runs must log the same number of steps (at least one),
 * dump the same tensors in the same order, and hold only finite losses and
 * parameters: a comparison with NaN is false, so a NaN would otherwise pass.
 * Prints the largest differences and exits 1 on any mismatch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The "loss" of each line of a JSON-lines log, in *loss (malloc'd); a loss
 * that is not a number reads as NaN. Returns the count, or -1 when the log
 * cannot be read. */
static int read_losses(const char *path, double **loss) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char *line = NULL;
    size_t cap_line = 0;
    int n = 0, cap = 0;
    *loss = NULL;
    while (getline(&line, &cap_line, f) > 0) {
        const char *p = strstr(line, "\"loss\":");
        if (!p) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            if (!(*loss = realloc(*loss, sizeof **loss * (size_t)cap))) {
                fprintf(stderr, "compare: out of memory\n");
                exit(1);
            }
        }
        char *end;
        double x = strtod(p + 7, &end);
        (*loss)[n++] = end == p + 7 ? NAN : x;
    }
    free(line);
    fclose(f);
    return n;
}

static double rel_err(double a, double b) { return fabs(a - b) / fmax(1.0, fabs(b)); }

/* Losses step by step: how many steps fail (not finite, or apart by more
 * than tol relative to the reference's); the largest difference in *worst. */
static int compare_losses(const double *ref, const double *run, int n, double tol, double *worst) {
    int bad = 0;
    *worst = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(ref[i]) || !isfinite(run[i])) {
            fprintf(stderr, "compare: step %d: loss %.9g, one rank %.9g: not finite\n", i + 1, run[i], ref[i]);
            bad++;
            continue;
        }
        double e = ref[i] == run[i] ? 0 : fabs(ref[i] - run[i]) / fabs(ref[i]);
        *worst = fmax(*worst, e);
        if (e > tol) {
            fprintf(stderr, "compare: step %d: loss %.9g, one rank %.9g (relative %.2g)\n", i + 1, run[i], ref[i], e);
            bad++;
        }
    }
    return bad;
}

/* The next record's header line "layer tensor count" (newline stripped)
 * into line; 0 at the end of the file. */
static int next_header(FILE *f, char *line, int size) {
    if (!fgets(line, size, f)) return 0;
    line[strcspn(line, "\n")] = 0;
    return 1;
}

/* One tensor of n floats from each dump: 1 when it differs by more than tol
 * or holds a value that is not finite; -1 when a dump is cut short. */
static int compare_tensor(FILE *fa, FILE *fb, const char *layer, const char *name, size_t n, double tol,
                          double *worst_param) {
    float *x = malloc(n * sizeof *x + 1), *y = malloc(n * sizeof *y + 1);
    if (!x || !y || fread(x, sizeof *x, n, fa) != n || fread(y, sizeof *y, n, fb) != n) {
        fprintf(stderr, "compare: %s %s is cut short\n", layer, name);
        free(x), free(y);
        return -1;
    }
    double worst = 0;
    size_t nonfinite = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i]))
            nonfinite++;
        else
            worst = fmax(worst, rel_err(y[i], x[i]));
    }
    free(x), free(y);
    *worst_param = fmax(*worst_param, worst);
    if (nonfinite)
        fprintf(stderr, "compare: %s %s holds %zu values that are not finite\n", layer, name, nonfinite);
    else if (worst > tol)
        fprintf(stderr, "compare: %s %s differs by %.2g\n", layer, name, worst);
    return nonfinite || worst > tol;
}

/* Do the next headers (ha, hb: read at all) name the same tensor? Says
 * how they differ when not. */
static int same_header(const char *ref, const char *run, int ha, int hb, const char *la, const char *lb) {
    if (ha && hb && !strcmp(la, lb)) return 1;
    if (ha && hb)
        fprintf(stderr, "compare: the dumps hold different tensors: '%s' in %s, '%s' in %s\n", la, ref, lb, run);
    else
        fprintf(stderr, "compare: %s has tensor '%s' that %s lacks\n", ha ? ref : run, ha ? la : lb, ha ? run : ref);
    return 0;
}

/* Every tensor of the two dumps, in order: how many differ, or -1 when the
 * dumps do not hold the same tensors (or none) or cannot be read. */
static int compare_dumps(const char *ref, const char *run, double tol, double *worst, size_t *total) {
    FILE *fa = fopen(ref, "rb"), *fb = fopen(run, "rb");
    int bad = 0, tensors = 0;
    *worst = 0, *total = 0;
    if (!fa || !fb) {
        fprintf(stderr, "compare: cannot read the parameter dump %s\n", fa ? run : ref);
        bad = -1;
    }
    char la[512], lb[512], layer[256], name[256];
    while (bad >= 0) {
        int ha = next_header(fa, la, sizeof la), hb = next_header(fb, lb, sizeof lb);
        if (!ha && !hb) break;
        size_t n;
        if (!same_header(ref, run, ha, hb, la, lb))
            bad = -1;
        else if (sscanf(la, "%255s %255s %zu", layer, name, &n) != 3) {
            fprintf(stderr, "compare: '%s' is not a tensor's header\n", la);
            bad = -1;
        } else {
            int r = compare_tensor(fa, fb, layer, name, n, tol, worst);
            bad = r < 0 ? -1 : bad + r;
            *total += n, tensors++;
        }
    }
    if (bad >= 0 && !tensors) fprintf(stderr, "compare: the dumps hold no tensors\n"), bad = -1;
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return bad;
}

/* The two logs' losses, step by step: 0 when they agree within tol, 1 when
 * not (or when either cannot be read, has none, or has another step count). */
static int check_losses(const char *ref, const char *run, double tol, int *steps, double *worst) {
    double *a = NULL, *b = NULL;
    int na = read_losses(ref, &a), nb = read_losses(run, &b), bad = 1;
    *steps = na, *worst = 0;
    if (na < 0 || nb < 0)
        fprintf(stderr, "compare: cannot read the log %s\n", na < 0 ? ref : run);
    else if (na == 0 || na != nb)
        fprintf(stderr, "compare: %s has %d losses, %s has %d\n", ref, na, run, nb);
    else
        bad = compare_losses(a, b, na, tol, worst) != 0;
    free(a), free(b);
    return bad;
}

int main(int argc, char **argv) {
    if (argc != 7 && argc != 4) {
        fprintf(stderr, "usage: compare REF.jsonl RUN.jsonl REF.dump RUN.dump LOSS_TOL PARAM_TOL\n"
                        "       compare REF.jsonl RUN.jsonl LOSS_TOL\n");
        return 2;
    }
    int steps;
    double worst_loss, worst_param;
    int bad = check_losses(argv[1], argv[2], atof(argv[argc == 4 ? 3 : 5]), &steps, &worst_loss);
    if (steps <= 0) return 1;
    if (argc == 4) {
        printf("%d steps: largest loss difference %.2g (relative)\n", steps, worst_loss);
        return bad;
    }
    size_t total;
    int bad_params = compare_dumps(argv[3], argv[4], atof(argv[6]), &worst_param, &total);
    if (bad_params < 0) return 1;
    printf("%d steps: largest loss difference %.2g (relative); %zu parameters: largest difference %.2g\n", steps,
           worst_loss, total, worst_param);
    return bad || bad_params ? 1 : 0;
}
