/* compare.c — does a run under some plan train the same model as one rank?
 *   compare REF.jsonl RUN.jsonl REF.dump RUN.dump LOSS_TOL PARAM_TOL
 * Losses step by step must agree within LOSS_TOL relative; every parameter
 * of the two --dump files within PARAM_TOL (relative to the value, absolute
 * below 1). Prints the largest differences and exits 1 on a mismatch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The "loss" of each line of a JSON-lines log. */
static int read_losses(const char *path, double *loss, int cap) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[1024];
    int n = 0;
    while (n < cap && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "\"loss\":");
        if (p) loss[n++] = strtod(p + 7, NULL);
    }
    fclose(f);
    return n;
}

static double rel_err(double a, double b) { return fabs(a - b) / fmax(1.0, fabs(b)); }

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: compare REF.jsonl RUN.jsonl REF.dump RUN.dump LOSS_TOL PARAM_TOL\n");
        return 2;
    }
    double tol = atof(argv[5]), param_tol = atof(argv[6]);
    double a[4096], b[4096];
    int na = read_losses(argv[1], a, 4096), nb = read_losses(argv[2], b, 4096);
    if (na <= 0 || na != nb) {
        fprintf(stderr, "compare: %s has %d losses, %s has %d\n", argv[1], na, argv[2], nb);
        return 1;
    }
    double worst_loss = 0;
    int bad = 0;
    for (int i = 0; i < na; i++) {
        double e = fabs(a[i] - b[i]) / fabs(a[i]);
        if (e > worst_loss) worst_loss = e;
        if (e > tol) {
            fprintf(stderr, "compare: step %d: loss %.9g, one rank %.9g (relative %.2g)\n", i + 1, b[i], a[i], e);
            bad++;
        }
    }
    FILE *fa = fopen(argv[3], "rb"), *fb = fopen(argv[4], "rb");
    if (!fa || !fb) {
        fprintf(stderr, "compare: cannot read the parameter dumps\n");
        return 1;
    }
    double worst_param = 0;
    size_t total = 0;
    char la[512], lb[512];
    while (fgets(la, sizeof la, fa)) {
        if (!fgets(lb, sizeof lb, fb) || strcmp(la, lb) != 0) {
            fprintf(stderr, "compare: the dumps hold different tensors at '%s'\n", la);
            return 1;
        }
        char layer[256], name[256];
        size_t n;
        if (sscanf(la, "%255s %255s %zu", layer, name, &n) != 3) return 1;
        float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
        if (!x || !y || fread(x, sizeof *x, n, fa) != n || fread(y, sizeof *y, n, fb) != n) {
            fprintf(stderr, "compare: %s %s is cut short\n", layer, name);
            return 1;
        }
        double worst = 0;
        for (size_t i = 0; i < n; i++) worst = fmax(worst, rel_err(y[i], x[i]));
        if (worst > param_tol) {
            fprintf(stderr, "compare: %s %s differs by %.2g\n", layer, name, worst);
            bad++;
        }
        worst_param = fmax(worst_param, worst);
        total += n;
        free(x), free(y);
    }
    printf("%d steps: largest loss difference %.2g (relative); %zu parameters: largest difference %.2g\n", na,
           worst_loss, total, worst_param);
    return bad ? 1 : 0;
}
