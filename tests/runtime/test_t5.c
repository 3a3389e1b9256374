/* test_t5.c — T5's layers as the runtime trains them (runtime/t5.c through
 * runtime/layers.c): the relative position buckets against values worked
 * by hand from the formula (Raffel et al. 2020, section 2.1), bidirectional
 * and causal; whole encoder and decoder blocks, holding their stack's bias
 * table or reading it from the stream, and the stack's final norm on its
 * rows, through grt_layer_forward and grt_layer_backward: every
 * parameter's and every stream input's gradient against central finite
 * differences of the layer's own forward; a block's output against a plain
 * recomputation of its attention (no scale, the bias, the mask); with
 * dropout at every site too (its masks fixed by the step and sequence).
 * Prints the worst errors. */
#define LAYER_TEST_SEED 2024u
#include "layer_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* Buckets worked by hand: 32 buckets, max distance 128. Bidirectional: 16 a
 * side, distances under 8 exact, then 8 + floor(8 ln(d / 8) / ln 16);
 * causal: 32 for keys at or before the query, under 16 exact, then 16 +
 * floor(16 ln(d / 16) / ln 8); the last bucket past the maximum. */
static void test_buckets(void) {
    static const int bi[][2] = {{0, 0},     {-3, 3},    {3, 19},   {-8, 8},     {-16, 10}, {16, 26},
                                {-127, 15}, {-128, 15}, {200, 31}, {-1000, 15}, {1, 17}};
    static const int causal[][2] = {{5, 0}, {0, 0}, {-5, 5}, {-15, 15}, {-16, 16}, {-20, 17}, {-127, 31}, {-1000, 31}};
    for (size_t i = 0; i < sizeof bi / sizeof bi[0]; i++)
        CHECK_EQ(grt_t5_bucket(bi[i][0], 32, 1, 128), bi[i][1]);
    for (size_t i = 0; i < sizeof causal / sizeof causal[0]; i++)
        CHECK_EQ(grt_t5_bucket(causal[i][0], 32, 0, 128), causal[i][1]);
}

/* A T5 layer with its stream input, output and the loss's weights. */
typedef struct Case {
    GrtLayer l;
    float *in, *out, *r, *din; /* (B, R, C) each */
    size_t n;
} Case;

static double case_loss(Case *c) {
    grt_layer_forward(&c->l, c->in, NULL, NULL, c->out);
    double sum = 0;
    for (size_t i = 0; i < c->n; i++)
        sum += (double)c->out[i] * c->r[i];
    return sum;
}

/* The worst |got - fd| / max(1, |fd|) over n values at v, FD of the loss.
 * A value whose step crosses a ReLU's kink (its one-sided differences
 * disagree) is skipped and counted in *kinks. */
static double fd_err(Case *c, float *v, const float *got, size_t n, float eps, int *kinks) {
    double w = 0, mid = case_loss(c);
    for (size_t i = 0; i < n; i++) {
        float keep = v[i];
        v[i] = keep + eps;
        double up = case_loss(c);
        v[i] = keep - eps;
        double down = case_loss(c);
        v[i] = keep;
        double fd = (up - down) / (2.0 * eps), e = fabs(got[i] - fd) / fmax(1.0, fabs(fd));
        if (fabs((up - mid) - (mid - down)) / eps > 0.004 * fmax(1.0, fabs(fd))) {
            ++*kinks;
            continue;
        }
        if (!(e <= w)) w = e; /* NaN propagates */
    }
    return w;
}

static Case make_case(const GrtLayerSpec *s, int B) {
    Case c;
    int R = s->te + s->td + s->tr;
    grt_layer_setup(&c.l, s, NULL, B, R);
    float *params = frand(c.l.n_params, 0.4), *grads = tcalloc(c.l.n_params, sizeof(float));
    grt_layer_bind(&c.l, params, grads, 1, tcalloc(grt_layer_work_floats(&c.l) + 1, sizeof(float)), NULL);
    c.n = (size_t)B * R * s->C;
    c.in = frand(c.n, 1.0), c.out = tcalloc(c.n, sizeof(float)), c.r = frand(c.n, 1.0);
    c.din = tcalloc(c.n, sizeof(float));
    keep(&c.l);
    return c;
}

/* Gradients of every parameter and stream input against finite differences. */
static void check_grads(Case *c, const char *what) {
    case_loss(c);
    memset(c->l.grads, 0, sizeof(float) * c->l.n_params);
    memset(c->din, 0, sizeof(float) * c->n);
    grt_layer_backward(&c->l, c->in, NULL, NULL, c->r, 0, c->din);
    float *g = tcalloc(c->l.n_params, sizeof(float));
    memcpy(g, c->l.grads, sizeof(float) * c->l.n_params);
    int kinks = 0;
    double ep = fd_err(c, c->l.params, g, c->l.n_params, 1e-3f, &kinks),
           ex = fd_err(c, c->in, c->din, c->n, 1e-3f, &kinks);
    printf("%s: worst gradient error against finite differences: parameters %.2e, stream %.2e (%d of %zu at a kink)\n",
           what, ep, ex, kinks, c->l.n_params + c->n);
    CHECK(ep < 3e-3);
    CHECK(ex < 3e-3);
    CHECK((size_t)kinks * 20 < c->l.n_params + c->n);
}

/* A plain recomputation of the block's self-attention probabilities for
 * sequence b, head h, query t: softmax over keys of q.k + table[bucket][h]. */
static double att_err(Case *c) {
    const GrtLayerSpec *s = &c->l.s;
    int Tq = s->cross ? s->td : s->te, R = s->te + s->td + s->tr, A = s->H * s->hd;
    /* the block's own Q K V and probabilities, as it kept them: the first fields of its activations */
    float **act = c->l.act;
    const float *qkv = act[2], *att = act[3];
    const float *table = s->rel_own ? c->l.params + c->l.tensors[GRT_T5_REL].offset
                                    : c->in + (size_t)(s->te + s->td) * s->C + (s->cross ? s->buckets * s->H : 0);
    double worst = 0;
    for (int h = 0; h < s->H; h++)
        for (int t = 0; t < Tq; t++) {
            double sc[64], mx = -INFINITY, sum = 0;
            int n = s->cross ? t + 1 : Tq;
            for (int t2 = 0; t2 < n; t2++) {
                sc[t2] = table[grt_t5_bucket(t2 - t, s->buckets, !s->cross, 128) * s->H + h];
                for (int i = 0; i < s->hd; i++)
                    sc[t2] +=
                        (double)qkv[(size_t)t * 3 * A + h * s->hd + i] * qkv[(size_t)t2 * 3 * A + A + h * s->hd + i];
                mx = fmax(mx, sc[t2]);
            }
            for (int t2 = 0; t2 < n; t2++)
                sum += exp(sc[t2] - mx);
            for (int t2 = 0; t2 < Tq; t2++) {
                double want = t2 < n ? exp(sc[t2] - mx) / sum : 0;
                worst = fmax(worst, fabs(att[((size_t)h * Tq + t) * Tq + t2] - want));
            }
        }
    (void)R;
    return worst;
}

static void test_block(int cross, int own, int B, float dropout) {
    int C = 8, H = 2, hd = 3, buckets = 8;
    GrtLayerSpec s = {.kind = GRT_BLOCK,
                      .name = "t5",
                      .C = C,
                      .H = H,
                      .KVH = H,
                      .hd = hd,
                      .F = 10,
                      .rms = 1,
                      .eps = 1e-6f,
                      .te = 5,
                      .td = 4,
                      .tr = grt_t5_table_rows(buckets, H, C),
                      .buckets = buckets,
                      .rel_own = own,
                      .cross = cross,
                      .causal = cross,
                      .pre_norm = 1,
                      .dropout = dropout};
    Case c = make_case(&s, B);
    c.l.drop_seed = 7, c.l.drop_step = 3, c.l.drop_seq0 = 5; /* the masks: fixed, so the loss is smooth in the inputs */
    case_loss(&c);
    double ae = att_err(&c);
    char what[96];
    snprintf(what, sizeof what, "T5 %s block%s, B=%d, dropout %g", cross ? "decoder" : "encoder",
             own ? " holding the table" : " reading the table", B, (double)dropout);
    printf("%s: attention probabilities against a plain recomputation %.2e\n", what, ae);
    CHECK(ae < 1e-5);
    check_grads(&c, what);
}

/* The loss's weights r are the norm's dout, which its dropout drops in place: a copy for each backward. */
static void test_norm(int part, float dropout) {
    GrtLayerSpec s = {.kind = GRT_NORM, .name = "norm", .C = 6, .rms = 1, .eps = 1e-6f, .te = 4, .td = 3, .tr = 2,
                      .part = part, .dropout = dropout};
    Case c = make_case(&s, 2);
    c.l.drop_seed = 7, c.l.drop_step = 3, c.l.drop_seq0 = 5;
    float *r = c.r;
    c.r = tcalloc(c.n, sizeof(float));
    memcpy(c.r, r, sizeof(float) * c.n);
    case_loss(&c);
    memset(c.l.grads, 0, sizeof(float) * c.l.n_params);
    memset(c.din, 0, sizeof(float) * c.n);
    grt_layer_backward(&c.l, c.in, NULL, NULL, c.r, 0, c.din); /* drops c.r's normed rows */
    memcpy(c.r, r, sizeof(float) * c.n);
    float *g = tcalloc(c.l.n_params, sizeof(float));
    memcpy(g, c.l.grads, sizeof(float) * c.l.n_params);
    int kinks = 0;
    double ep = fd_err(&c, c.l.params, g, c.l.n_params, 1e-3f, &kinks), ex = fd_err(&c, c.in, c.din, c.n, 1e-3f, &kinks);
    printf("T5 %s's final norm, dropout %g: worst gradient error against finite differences: parameters %.2e, "
           "stream %.2e\n", part == 1 ? "encoder" : "decoder", (double)dropout, ep, ex);
    CHECK(ep < 3e-3 && ex < 3e-3 && kinks == 0);
}

int main(void) {
    test_buckets();
    test_block(0, 1, 2, 0);
    test_block(0, 0, 2, 0);
    test_block(1, 1, 2, 0);
    test_block(1, 0, 3, 0);
    test_block(0, 1, 2, 0.3f);
    test_block(1, 0, 3, 0.3f);
    test_norm(1, 0);
    test_norm(2, 0);
    test_norm(1, 0.3f);
    test_norm(2, 0.3f);
    free_owned();
    return check_report();
}
