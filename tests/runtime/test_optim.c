/* test_optim.c — the optimizers and the learning-rate schedule against
 * their definitions. Each optimizer runs four steps on random parameters
 * and gradients (the gradient scaled as clipping does) beside a float64
 * transcription of torch.optim's algorithm (SGD with momentum and Nesterov,
 * Adam with L2 decay, AdamW with decoupled decay); every parameter and state
 * must agree within 1e-6 relative. The schedule's warm-up, linear and cosine
 * decay are checked at their end points and midpoints. */
#include "../unit/check.h"
#include "galvrt.h"

#include <math.h>
#include <stdlib.h>

enum { N = 37, STEPS = 4 };

static double rnd(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return ((*s >> 8) & 0xffff) / 32768.0 - 1.0;
}

/* Largest relative difference of float a against double b (absolute below 1). */
static double worst(const float *a, const double *b, int n) {
    double w = 0;
    for (int i = 0; i < n; i++) w = fmax(w, fabs(a[i] - b[i]) / fmax(1.0, fabs(b[i])));
    return w;
}

typedef struct Case {
    const char *name;
    int kind; /* 0 AdamW, 1 Adam, 2 SGD */
    double lr, momentum, wd;
    int nesterov;
} Case;

static void run_case(const Case *c) {
    unsigned seed = 7;
    float p[N], m[N] = {0}, v[N] = {0}, g[N];
    double P[N], M[N] = {0}, V[N] = {0};
    const double b1 = 0.9, b2 = 0.95, eps = 1e-8, scale = 0.5;
    for (int i = 0; i < N; i++) P[i] = p[i] = (float)rnd(&seed);
    for (int t = 1; t <= STEPS; t++) {
        for (int i = 0; i < N; i++) g[i] = (float)rnd(&seed);
        if (c->kind == 0) grt_adamw(p, g, m, v, N, (float)c->lr, (float)b1, (float)b2, (float)eps, (float)c->wd, (float)scale, t);
        if (c->kind == 1) grt_adam(p, g, m, v, N, (float)c->lr, (float)b1, (float)b2, (float)eps, (float)c->wd, (float)scale, t);
        if (c->kind == 2)
            grt_sgd(p, g, c->momentum > 0 ? m : NULL, N, (float)c->lr, (float)c->momentum, c->nesterov, (float)c->wd,
                    (float)scale);
        for (int i = 0; i < N; i++) {
            double gi = (double)g[i] * scale;
            if (c->kind == 0) { /* AdamW: theta -= lr wd theta; then the Adam step without decay */
                P[i] -= c->lr * c->wd * P[i];
            } else {
                gi += c->wd * P[i]; /* Adam and SGD: L2 decay enters the gradient */
            }
            if (c->kind <= 1) {
                M[i] = b1 * M[i] + (1 - b1) * gi;
                V[i] = b2 * V[i] + (1 - b2) * gi * gi;
                double mhat = M[i] / (1 - pow(b1, t)), vhat = V[i] / (1 - pow(b2, t));
                P[i] -= c->lr * mhat / (sqrt(vhat) + eps);
            } else {
                if (c->momentum > 0) {
                    M[i] = t == 1 ? gi : c->momentum * M[i] + gi; /* torch: the buffer starts as the gradient */
                    gi = c->nesterov ? gi + c->momentum * M[i] : M[i];
                }
                P[i] -= c->lr * gi;
            }
        }
    }
    double wp = worst(p, P, N), wm = c->kind <= 1 || c->momentum > 0 ? worst(m, M, N) : 0;
    double wv = c->kind <= 1 ? worst(v, V, N) : 0;
    if (!(wp <= 1e-6 && wm <= 1e-6 && wv <= 1e-6))
        fprintf(stderr, "%s: parameters %.2g, first state %.2g, second %.2g off\n", c->name, wp, wm, wv);
    CHECK(wp <= 1e-6);
    CHECK(wm <= 1e-6);
    CHECK(wv <= 1e-6);
}

static void test_optimizers(void) {
    static const Case cases[] = {
        {"adamw", 0, 1e-2, 0, 0.1, 0},       {"adam, L2 decay", 1, 1e-2, 0, 0.1, 0},
        {"sgd", 2, 0.1, 0, 0, 0},             {"sgd, decay", 2, 0.1, 0, 0.01, 0},
        {"sgd, momentum", 2, 0.1, 0.9, 0.01, 0}, {"sgd, nesterov", 2, 0.1, 0.9, 0.01, 1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) run_case(&cases[k]);
}

static int near(double a, double b) { return fabs(a - b) <= 1e-12 * fmax(1.0, fabs(b)); }

static void test_schedule(void) {
    GrtProgram p = {.warmup = 4, .decay = GRT_DECAY_COSINE, .decay_steps = 14, .min_lr = 0.1f};
    CHECK(near(grt_lr_at(&p, 1.0, 0), 0.25)); /* warm-up: (step + 1) / warmup of the rate */
    CHECK(near(grt_lr_at(&p, 1.0, 3), 1.0));
    CHECK(near(grt_lr_at(&p, 1.0, 4), 1.0));
    CHECK(near(grt_lr_at(&p, 1.0, 9), 0.1f + 0.5 * (1.0 - 0.1f))); /* halfway down the cosine */
    CHECK(near(grt_lr_at(&p, 1.0, 14), 0.1f));
    CHECK(near(grt_lr_at(&p, 1.0, 1000), 0.1f)); /* held at the end */
    p.decay = GRT_DECAY_LINEAR;
    CHECK(near(grt_lr_at(&p, 1.0, 9), 0.1f + 0.5 * (1.0 - 0.1f)));
    CHECK(near(grt_lr_at(&p, 1.0, 6), 1.0 - 0.2 * (1.0 - 0.1f)));
    p.decay = GRT_DECAY_CONSTANT;
    CHECK(near(grt_lr_at(&p, 1.0, 9), 1.0));
    p.warmup = 0;
    CHECK(near(grt_lr_at(&p, 0.5, 0), 0.5));
}

int main(void) {
    test_optimizers();
    test_schedule();
    return check_report();
}
