/* layer_test.h — what the layer tests (test_vision.c, test_swin.c,
 * test_t5.c) share: a pool of the buffers a test allocates, freed at the
 * end; the layers it made, kept (their activations are the runtime's, held
 * until the process ends); a small seeded random stream (each test defines
 * LAYER_TEST_SEED before including this); and the error measure their
 * comparisons use. Each test is its own executable, so these are static. */
#ifndef LAYER_TEST_H
#define LAYER_TEST_H

#include "../unit/check.h"
#include "galvrt.h"

#include <math.h>
#include <stdlib.h>

enum { LAYER_TEST_BUFFERS = 512, LAYER_TEST_LAYERS = 32 };

static unsigned seed = LAYER_TEST_SEED;
static void *owned[LAYER_TEST_BUFFERS];
static int n_owned;
static GrtLayer layers[LAYER_TEST_LAYERS];
static int n_layers;

/* n zeroed elements of size bytes, owned by the pool. */
static inline void *tcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    CHECK(p != NULL && n_owned < LAYER_TEST_BUFFERS);
    if (n_owned < LAYER_TEST_BUFFERS) owned[n_owned++] = p;
    return p;
}

static inline void free_owned(void) {
    while (n_owned) free(owned[--n_owned]);
}

/* Keep layer l to the end of the test. */
static inline void keep(const GrtLayer *l) {
    CHECK(n_layers < LAYER_TEST_LAYERS);
    if (n_layers < LAYER_TEST_LAYERS) layers[n_layers++] = *l;
}

/* Uniform in [-1, 1): a linear congruential stream from LAYER_TEST_SEED. */
static inline double rnd(void) {
    seed = seed * 1103515245u + 12345u;
    return ((seed >> 8) & 0xffff) / 32768.0 - 1.0;
}

/* n floats uniform in [-scale, scale), owned by the pool. */
static inline float *frand(size_t n, double scale) {
    float *x = tcalloc(n, sizeof(float));
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(scale * rnd());
    return x;
}

/* The worst |got - want| / max(1, |want|); NaN propagates. */
static inline double worst_err(const float *got, const double *want, size_t n) {
    double w = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(got[i] - want[i]) / fmax(1.0, fabs(want[i]));
        if (!(e <= w)) w = e;
    }
    return w;
}

#endif
