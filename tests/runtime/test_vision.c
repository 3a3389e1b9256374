/* test_vision.c — the vision layers as the runtime trains them (runtime/
 * layers.c over runtime/vision.c): ViT's patch embedding and the
 * classifier head, whole layers through grt_layer_forward and
 * grt_layer_backward. Every parameter's gradient (and the classifier's
 * input gradient) against central finite differences of the layer's own
 * forward, at odd sizes, with and without BERT's pooler; BERT's token
 * types (segments) in the embedding, their rule and their gradient; the patch gather against its definition (a
 * pixel's place in its patch); the classifier's loss against a double
 * log-sum-exp and its accuracy count. Image data: records read back
 * (label, pixels, the record of each image of a step), bad files refused,
 * synthetic images the same for the same seed and learnable (an image is
 * nearer its own class's mean than another's). Prints the worst errors. */
#define LAYER_TEST_SEED 12345u
#include "layer_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A layer of spec s bound to fresh buffers, its parameters random. */
static GrtLayer make_layer(const GrtLayerSpec *s, int B, int T) {
    GrtLayer l;
    grt_layer_setup(&l, s, NULL, B, T);
    float *params = frand(l.n_params, 0.5), *grads = tcalloc(l.n_params, sizeof(float));
    size_t work = grt_layer_work_floats(&l);
    grt_layer_bind(&l, params, grads, 1, tcalloc(work + 1, sizeof(float)), NULL);
    keep(&l);
    return l;
}


/* ---- patch embedding --------------------------------------------------------- */

/* A first layer (patch embedding or embedding) on its integer input: pixels or tokens. */
typedef struct InputCase {
    GrtLayer l;
    int32_t *in;
    float *out, *r; /* out (B, T, C), the loss's weights r (B, T, C) */
    size_t n_out;
} InputCase;

/* sum(out * r) of the layer's forward, in double. */
static double input_loss(InputCase *c) {
    grt_layer_forward(&c->l, NULL, c->in, NULL, c->out);
    double sum = 0;
    for (size_t i = 0; i < c->n_out; i++)
        sum += (double)c->out[i] * c->r[i];
    return sum;
}

static void test_patch(int B, int ch, int img, int p, int C) {
    GrtLayerSpec s = {.kind = GRT_PATCH, .name = "patch", .C = C, .image = img, .patch = p, .channels = ch};
    int np = (img / p) * (img / p), T = np + 1;
    InputCase c = {.l = make_layer(&s, B, T)};
    CHECK_EQ(c.l.n_params, (size_t)C * ch * p * p + 2 * C + (size_t)T * C);
    size_t npx = (size_t)B * ch * img * img;
    c.in = tcalloc(npx, sizeof(int32_t));
    for (size_t i = 0; i < npx; i++)
        c.in[i] = (int32_t)((rnd() + 1) * 127.9);
    c.n_out = (size_t)B * T * C;
    c.out = tcalloc(c.n_out, sizeof(float));
    c.r = frand(c.n_out, 1.0);

    /* the gather: pixel (b, k, y, x) is value (k, y % p, x % p) of patch (y / p, x / p) */
    float *X = tcalloc((size_t)B * np * ch * p * p, sizeof(float));
    grt_patch_gather(X, c.in, B, ch, img, p);
    int bad = 0;
    for (int b = 0; b < B; b++)
        for (int k = 0; k < ch; k++)
            for (int y = 0; y < img; y++)
                for (int x = 0; x < img; x++) {
                    size_t row = (size_t)b * np + (size_t)(y / p) * (img / p) + x / p;
                    size_t col = ((size_t)k * p + y % p) * p + x % p;
                    float want = (float)c.in[(((size_t)b * ch + k) * img + y) * img + x] / 255.0f;
                    bad += X[row * ch * p * p + col] != want;
                }
    CHECK_EQ(bad, 0);

    input_loss(&c);
    memset(c.l.grads, 0, sizeof(float) * c.l.n_params);
    grt_layer_backward(&c.l, NULL, c.in, NULL, c.r, 0, NULL);
    double *fd = tcalloc(c.l.n_params, sizeof(double));
    const float eps = 0.05f; /* the output is linear in the parameters: only rounding remains */
    for (size_t i = 0; i < c.l.n_params; i++) {
        float keep = c.l.params[i];
        c.l.params[i] = keep + eps;
        double up = input_loss(&c);
        c.l.params[i] = keep - eps;
        double down = input_loss(&c);
        c.l.params[i] = keep;
        fd[i] = (up - down) / (2.0 * eps);
    }
    double err = worst_err(c.l.grads, fd, c.l.n_params);
    printf("patch embedding B=%d %dx%dx%d patch %d C=%d: worst gradient error against finite differences %.2e\n", B, ch,
           img, img, p, C, err);
    CHECK(err < 2e-3);
}

/* ---- classifier ------------------------------------------------------------------ */

typedef struct ClassCase {
    GrtLayer l;
    float *x, *losses; /* x (B, T, C), losses (B, T) */
    int32_t *targets;  /* (B, T) */
} ClassCase;

/* The mean loss over the images, in double. */
static double class_loss(ClassCase *c) {
    grt_layer_forward(&c->l, c->x, NULL, c->targets, c->losses);
    double sum = 0;
    for (int i = 0; i < c->l.B * c->l.T; i++)
        sum += c->losses[i];
    return sum / c->l.B;
}

/* Central differences of the mean loss over each of n floats at v. */
static double *fd_of(ClassCase *c, float *v, size_t n) {
    double *fd = tcalloc(n, sizeof(double));
    const float eps = 1e-2f;
    for (size_t i = 0; i < n; i++) {
        float keep = v[i];
        v[i] = keep + eps;
        double up = class_loss(c);
        v[i] = keep - eps;
        double down = class_loss(c);
        v[i] = keep;
        fd[i] = (up - down) / (2.0 * eps);
    }
    return fd;
}

static void test_classifier(int B, int T, int C, int V, int mean, int pooler) {
    GrtLayerSpec s = {
        .kind = GRT_CLASSIFIER, .name = "classifier", .C = C, .V = V, .pool_mean = mean, .pooler = pooler};
    ClassCase c = {.l = make_layer(&s, B, T)};
    CHECK_EQ(c.l.n_params, (size_t)V * C + V + (pooler ? (size_t)C * C + C : 0));
    size_t N = (size_t)B * T;
    c.x = frand(N * C, 1.0);
    c.losses = tcalloc(N, sizeof(float));
    c.targets = tcalloc(N, sizeof(int32_t));
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            c.targets[(size_t)b * T + t] = (b * 7 + 3) % V;

    /* the loss against a double log-sum-exp of the pooled logits (through
     * the pooler's tanh(Wp x + bp)); the accuracy count */
    double loss = class_loss(&c), want = 0;
    int correct = 0;
    for (int b = 0; b < B; b++) {
        double pooled[64] = {0}, logits[64], mx = -INFINITY, sum = 0;
        for (int t = 0; t < (mean ? T : 1); t++)
            for (int k = 0; k < C; k++)
                pooled[k] += c.x[((size_t)b * T + t) * C + k] / (mean ? (double)T : 1.0);
        if (pooler) {
            double h[64];
            const float *wp = c.l.params + (size_t)V * C + V, *bp = wp + (size_t)C * C;
            for (int o = 0; o < C; o++) {
                h[o] = bp[o];
                for (int k = 0; k < C; k++)
                    h[o] += (double)wp[(size_t)o * C + k] * pooled[k];
            }
            for (int o = 0; o < C; o++)
                pooled[o] = tanh(h[o]);
        }
        int best = 0;
        for (int j = 0; j < V; j++) {
            logits[j] = c.l.params[(size_t)V * C + j];
            for (int k = 0; k < C; k++)
                logits[j] += (double)c.l.params[(size_t)j * C + k] * pooled[k];
            if (logits[j] > mx) mx = logits[j], best = j;
        }
        for (int j = 0; j < V; j++)
            sum += exp(logits[j] - mx);
        want += (mx + log(sum) - logits[c.targets[(size_t)b * T]]) / B;
        correct += best == c.targets[(size_t)b * T];
        for (int t = 1; t < T; t++)
            CHECK(c.losses[(size_t)b * T + t] == 0.0f);
    }
    CHECK(fabs(loss - want) < 1e-5 * fmax(1.0, want));
    CHECK_EQ(c.l.correct, correct);

    float *din = tcalloc(N * C, sizeof(float));
    memset(c.l.grads, 0, sizeof(float) * c.l.n_params);
    class_loss(&c);
    grt_layer_backward(&c.l, c.x, NULL, c.targets, NULL, 1.0f / (float)B, din);
    double *fd_p = fd_of(&c, c.l.params, c.l.n_params), *fd_x = fd_of(&c, c.x, N * C);
    double ep = worst_err(c.l.grads, fd_p, c.l.n_params), ex = worst_err(din, fd_x, N * C);
    printf("classifier B=%d T=%d C=%d classes=%d pool=%s%s: worst gradient error against finite differences "
           "%.2e (parameters), %.2e (input)\n",
           B, T, C, V, mean ? "mean" : "cls", pooler ? " pooler" : "", ep, ex);
    CHECK(ep < 1e-3);
    CHECK(ex < 1e-3);
}

/* ---- BERT's token types ----------------------------------------------------------- */

/* An embedding with token types: the segment rule, its output against a
 * sum of rows, and the types' gradient against finite differences. */
static void test_token_types(int B, int T, int C, int V, int types) {
    GrtLayerSpec s = {.kind = GRT_EMBEDDING, .name = "embedding", .C = C, .V = V, .positions = T, .types = types};
    InputCase c = {.l = make_layer(&s, B, T)};
    CHECK_EQ(c.l.n_params, (size_t)(V + T + types) * C);
    CHECK(c.l.n_tensors == 3 && c.l.tensors[2].n == (size_t)types * C);
    CHECK_EQ(grt_token_type(0, T, types), 0);
    CHECK_EQ(grt_token_type(T - 1, T, types), types - 1);
    if (types == 2) CHECK(grt_token_type(T / 2 - 1, T, 2) == 0 || T % 2);
    c.in = tcalloc((size_t)B * T, sizeof(int32_t));
    for (int i = 0; i < B * T; i++)
        c.in[i] = (i * 37 + 5) % V;
    c.n_out = (size_t)B * T * C;
    c.out = tcalloc(c.n_out, sizeof(float));
    c.r = frand(c.n_out, 1.0);
    input_loss(&c);
    const float *wte = c.l.params, *wpe = wte + (size_t)V * C, *wtt = wpe + (size_t)T * C;
    int bad = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int k = 0; k < C; k++) {
                float want = wte[(size_t)c.in[b * T + t] * C + k] + wpe[(size_t)t * C + k] +
                             wtt[(size_t)grt_token_type(t, T, types) * C + k];
                bad += fabsf(c.out[((size_t)b * T + t) * C + k] - want) > 1e-6f;
            }
    CHECK_EQ(bad, 0);
    memset(c.l.grads, 0, sizeof(float) * c.l.n_params);
    grt_layer_backward(&c.l, NULL, c.in, NULL, c.r, 0, NULL);
    size_t off = c.l.tensors[2].offset, n = c.l.tensors[2].n;
    double *fd = tcalloc(n, sizeof(double));
    const float eps = 0.05f;
    for (size_t i = 0; i < n; i++) {
        float keep = c.l.params[off + i];
        c.l.params[off + i] = keep + eps;
        double up = input_loss(&c);
        c.l.params[off + i] = keep - eps;
        double down = input_loss(&c);
        c.l.params[off + i] = keep;
        fd[i] = (up - down) / (2.0 * eps);
    }
    double err = worst_err(c.l.grads + off, fd, n);
    printf("token types B=%d T=%d C=%d types=%d: worst gradient error against finite differences %.2e\n", B, T, C,
           types, err);
    CHECK(err < 2e-3);
}

/* ---- image data --------------------------------------------------------------- */

/* A temporary file holding n bytes of buf; its name (static). */
static const char *temp_file(const unsigned char *buf, size_t n) {
    static char path[64];
    strcpy(path, "/tmp/galvrt_images_XXXXXX");
    int fd = mkstemp(path);
    CHECK(fd >= 0 && write(fd, buf, n) == (ssize_t)n);
    close(fd);
    return path;
}

static void test_image_file(void) {
    enum { CH = 2, IMG = 3, REC = 2 + CH * IMG * IMG, N = 5, T = 4 };
    unsigned char buf[N * REC + 1];
    for (int r = 0; r < N; r++) {
        buf[r * REC] = (unsigned char)(r % 3), buf[r * REC + 1] = 0;
        for (int k = 0; k < CH * IMG * IMG; k++)
            buf[r * REC + 2 + k] = (unsigned char)(r * 40 + k);
    }
    const char *path = temp_file(buf, N * REC);
    GrtData *d = grt_data_open_images(path, CH, IMG, 3, 1);
    CHECK(d != NULL);
    if (d) {
        int32_t px[3 * CH * IMG * IMG], tg[3 * T];
        grt_data_images(d, 1, 4, T, 1, 3, px, tg); /* images 5, 6, 7 of the run: records 0, 1, 2 */
        for (int s = 0; s < 3; s++) {
            int rec = (4 + 1 + s) % N;
            for (int t = 0; t < T; t++)
                CHECK_EQ(tg[s * T + t], rec % 3);
            for (int k = 0; k < CH * IMG * IMG; k++)
                CHECK_EQ(px[s * CH * IMG * IMG + k], rec * 40 + k);
        }
        grt_data_close(d);
    }
    CHECK(grt_data_open_images(path, CH, IMG, 2, 1) == NULL); /* label 2 of 2 classes */
    unlink(path);
    path = temp_file(buf, N * REC - 1);
    CHECK(grt_data_open_images(path, CH, IMG, 3, 1) == NULL); /* not whole records */
    unlink(path);
    path = temp_file(buf, 0);
    CHECK(grt_data_open_images(path, CH, IMG, 3, 1) == NULL); /* empty */
    unlink(path);
    CHECK(grt_data_open_images("/nonexistent/images", CH, IMG, 3, 1) == NULL);
}

static void test_synthetic_images(void) {
    enum { CH = 3, IMG = 8, NPX = CH * IMG * IMG, B = 64, CLASSES = 4 };
    GrtData *a = grt_data_open_images(NULL, CH, IMG, CLASSES, 3), *b = grt_data_open_images(NULL, CH, IMG, CLASSES, 3);
    static int32_t pa[B * NPX], pb[B * NPX], ta[B], tb[B];
    grt_data_images(a, 2, B, 1, 0, B, pa, ta);
    grt_data_images(b, 2, B, 1, 0, B, pb, tb);
    CHECK(memcmp(pa, pb, sizeof pa) == 0 && memcmp(ta, tb, sizeof ta) == 0);
    static double mean[CLASSES][NPX];
    int count[CLASSES] = {0}, range_ok = 1, nearest = 0;
    for (int s = 0; s < B; s++) {
        count[ta[s]]++;
        for (int k = 0; k < NPX; k++) {
            mean[ta[s]][k] += pa[s * NPX + k];
            range_ok &= pa[s * NPX + k] >= 0 && pa[s * NPX + k] <= 255;
        }
    }
    CHECK(range_ok);
    for (int c = 0; c < CLASSES; c++) {
        CHECK(count[c] > 0);
        for (int k = 0; k < NPX; k++)
            mean[c][k] /= count[c] ? count[c] : 1;
    }
    for (int s = 0; s < B; s++) { /* the nearest class mean is the image's own */
        int best = 0;
        double bd = INFINITY;
        for (int c = 0; c < CLASSES; c++) {
            double dist = 0;
            for (int k = 0; k < NPX; k++)
                dist += (pa[s * NPX + k] - mean[c][k]) * (pa[s * NPX + k] - mean[c][k]);
            if (dist < bd) bd = dist, best = c;
        }
        nearest += best == ta[s];
    }
    CHECK_EQ(nearest, B);
    grt_data_close(a), grt_data_close(b);
}

int main(void) {
    test_image_file();
    test_synthetic_images();
    test_patch(2, 3, 6, 3, 5);
    test_patch(3, 1, 10, 5, 7);
    test_patch(1, 2, 8, 2, 4);
    test_classifier(3, 5, 6, 4, 0, 0);
    test_classifier(2, 7, 5, 9, 1, 0);
    test_classifier(4, 1, 3, 2, 0, 0);
    test_classifier(3, 5, 6, 4, 0, 1);
    test_classifier(2, 3, 7, 3, 1, 1);
    test_token_types(3, 7, 5, 300, 2);
    test_token_types(2, 4, 3, 11, 3);
    free_owned();
    return check_report();
}
