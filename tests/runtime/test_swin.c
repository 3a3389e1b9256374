/* test_swin.c — Swin's layers as the runtime trains them (runtime/layers.c
 * over runtime/swin.c; Liu et al. 2021). The window geometry against a
 * second construction that moves the tensor as the paper's reference code
 * does (roll the grid, cut it into windows; the mask from the nine regions
 * of the rolled grid labelled by slices; the relative index from the
 * tokens' coordinates); the window attention against dense attention over
 * those moved windows, bias and mask added to the scores; a whole Swin
 * block (shifted and not), the patch merging and the plain patch embedding
 * through grt_layer_forward and grt_layer_backward, every parameter's
 * gradient (the bias table's included) and the input's against central
 * finite differences; the path the blocks run (window order, BLAS, the
 * generated kernels' references) against the direct loops. Prints the
 * worst errors. */
#define LAYER_TEST_SEED 4242u
#include "layer_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the geometry, built a second way ------------------------------------------ */

/* The grid rolled by -shift (torch.roll(x, (-s, -s))) and cut into windows:
 * tok[w M^2 + i] = the grid token at window w's place i. */
static void moved_windows(int *tok, int side, int M, int shift) {
    int *rolled = tcalloc((size_t)side * side, sizeof(int));
    for (int y = 0; y < side; y++)
        for (int x = 0; x < side; x++)
            rolled[y * side + x] = (y + shift) % side * side + (x + shift) % side;
    int per = side / M;
    for (int wy = 0; wy < per; wy++)
        for (int wx = 0; wx < per; wx++)
            for (int iy = 0; iy < M; iy++)
                for (int ix = 0; ix < M; ix++)
                    tok[((wy * per + wx) * M + iy) * M + ix] = rolled[(wy * M + iy) * side + wx * M + ix];
}

/* The reference code's image mask: the rolled grid's rows and columns in
 * slices (0, -M), (-M, -shift), (-shift, end), a count per slice pair. */
static void region_labels(int *label, int side, int M, int shift) {
    int cuts[4] = {0, side - M, side - shift, side}, cnt = 0;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++, cnt++)
            for (int y = cuts[a]; y < cuts[a + 1]; y++)
                for (int x = cuts[b]; x < cuts[b + 1]; x++)
                    label[y * side + x] = cnt;
}

static void test_geometry(int side, int M, int shift) {
    int n = M * M, nW = (side / M) * (side / M), bad_tok = 0, bad_mask = 0, bad_rel = 0;
    int *tok = tcalloc((size_t)side * side, sizeof(int)), *label = tcalloc((size_t)side * side, sizeof(int));
    moved_windows(tok, side, M, shift);
    region_labels(label, side, M, shift);
    int per = side / M;
    for (int w = 0; w < nW; w++)
        for (int i = 0; i < n; i++) {
            bad_tok += grt_window_token(side, M, shift, w, i) != tok[w * n + i];
            for (int j = 0; j < n; j++) {
                /* labels at the rolled places of i and j */
                int yi = w / per * M + i / M, xi = w % per * M + i % M, yj = w / per * M + j / M,
                    xj = w % per * M + j % M;
                float want = !shift || label[yi * side + xi] == label[yj * side + xj] ? 0.0f : -100.0f;
                bad_mask += grt_window_mask(side, M, shift, w, i, j) != want;
                /* relative_coords = coords[:, i] - coords[:, j] + M - 1; index = dy (2M - 1) + dx */
                int rel = (i / M - j / M + M - 1) * (2 * M - 1) + (i % M - j % M + M - 1);
                bad_rel += grt_window_rel_index(M, i, j) != rel || rel < 0 || rel >= (2 * M - 1) * (2 * M - 1);
            }
        }
    CHECK_EQ(bad_tok, 0);
    CHECK_EQ(bad_mask, 0);
    CHECK_EQ(bad_rel, 0);
    /* the mask parts some window's tokens when shifted, none unshifted */
    int masked = 0;
    for (int i = 0; i < n; i++)
        masked += grt_window_mask(side, M, shift, nW - 1, i, 0) != 0.0f;
    CHECK(shift ? masked > 0 : masked == 0);
    printf(
        "windows %dx%d grid, window %d, shift %d: tokens, mask and relative index as the moved-tensor construction\n",
        side, side, M, shift);
}

/* ---- the window attention against dense attention over moved windows ----------- */

/* Dense softmax attention of each window of the moved grid, in double:
 * scores q k / sqrt(hd) + table[h][rel] + mask, the output put back at the
 * tokens (the reverse roll). */
static void dense_windows(double *out, const float *qkv, const float *table, const GrtWindowShape *g) {
    int n = g->M * g->M, nW = (g->side / g->M) * (g->side / g->M), T = g->side * g->side, hd = g->hd;
    int S = 3 * g->H * hd, nb = (2 * g->M - 1) * (2 * g->M - 1);
    int *tok = tcalloc((size_t)T, sizeof(int)), *label = tcalloc((size_t)T, sizeof(int));
    double *p = tcalloc((size_t)n, sizeof(double));
    moved_windows(tok, g->side, g->M, g->shift);
    region_labels(label, g->side, g->M, g->shift);
    int *lab_of_tok = tcalloc((size_t)T, sizeof(int)); /* a token's label at its rolled place */
    for (int k = 0; k < T; k++) {
        int w = k / n, i = k % n, per = g->side / g->M;
        lab_of_tok[tok[k]] = label[(w / per * g->M + i / g->M) * g->side + w % per * g->M + i % g->M];
    }
    for (int b = 0; b < g->B; b++)
        for (int w = 0; w < nW; w++)
            for (int h = 0; h < g->H; h++)
                for (int i = 0; i < n; i++) {
                    const float *q = qkv + ((size_t)b * T + tok[w * n + i]) * S + h * hd;
                    double mx = -1e300, sum = 0;
                    for (int j = 0; j < n; j++) {
                        const float *k = qkv + ((size_t)b * T + tok[w * n + j]) * S + (g->H + h) * hd;
                        double s = 0;
                        for (int d = 0; d < hd; d++)
                            s += (double)q[d] * k[d];
                        int rel = (i / g->M - j / g->M + g->M - 1) * (2 * g->M - 1) + (i % g->M - j % g->M + g->M - 1);
                        p[j] = s / sqrt((double)hd) + table[h * nb + rel] +
                               (g->shift && lab_of_tok[tok[w * n + i]] != lab_of_tok[tok[w * n + j]] ? -100.0 : 0.0);
                        mx = fmax(mx, p[j]);
                    }
                    for (int j = 0; j < n; j++)
                        sum += p[j] = exp(p[j] - mx);
                    double *o = out + ((size_t)b * T + tok[w * n + i]) * g->H * hd + h * hd;
                    for (int j = 0; j < n; j++) {
                        const float *v = qkv + ((size_t)b * T + tok[w * n + j]) * S + (2 * g->H + h) * hd;
                        for (int d = 0; d < hd; d++)
                            o[d] += p[j] / sum * v[d];
                    }
                }
}

static void test_window_attention(int B, int side, int M, int shift, int H, int hd) {
    GrtWindowShape g = {B, side, M, shift, H, hd};
    size_t T = (size_t)side * side, nout = B * T * H * hd, nb = (size_t)(2 * M - 1) * (2 * M - 1);
    float *qkv = frand(B * T * 3 * H * hd, 1.5), *table = frand(H * nb, 1.0), *out = tcalloc(nout, sizeof(float));
    float *att = tcalloc((size_t)B * T * H * M * M, sizeof(float));
    double *want = tcalloc(nout, sizeof(double));
    grt_window_attention_forward(out, att, qkv, table, &g);
    dense_windows(want, qkv, table, &g);
    double err = worst_err(out, want, nout);
    printf("window attention B=%d %dx%d window %d shift %d H=%d hd=%d: worst error against dense windows %.2e\n", B,
           side, side, M, shift, H, hd, err);
    CHECK(err < 1e-5);
}

/* The GEMM path (window order, BLAS, the references of the generated kernels)
 * against the direct one: forward, the QKV gradient and the table's. */
static void test_gemm_path(int B, int side, int M, int shift, int H, int hd) {
    GrtWindowShape g = {B, side, M, shift, H, hd};
    size_t T = (size_t)side * side, N = B * T, n = (size_t)M * M, nb = (size_t)(2 * M - 1) * (2 * M - 1);
    size_t natt = N * H * n, nq = N * 3 * H * hd, ny = N * H * hd;
    float *qkv = frand(nq, 1.5), *table = frand(H * nb, 1.0), *dout = frand(ny, 1.0);
    float *out = tcalloc(ny, 4), *att = tcalloc(natt, 4), *out2 = tcalloc(ny, 4), *att2 = tcalloc(natt, 4);
    float *dq = frand(nq, 1.0), *dt = tcalloc(H * nb, 4), *dq2 = frand(nq, 1.0), *dt2 = tcalloc(H * nb, 4);
    GrtWindowWork wk = {tcalloc(nq, 4),        tcalloc(ny, 4),    tcalloc(nq, 4),
                        tcalloc(H * n * n, 4), tcalloc(T * n, 4), tcalloc(n * n, 4)};
    grt_window_attention_forward(out, att, qkv, table, &g);
    grt_window_attention_backward(dq, dt, dout, qkv, att, &g);
    grt_window_attention_gemm_forward(out2, att2, qkv, table, &g, &wk, NULL);
    grt_window_attention_gemm_backward(dq2, dt2, dout, qkv, att2, &g, &wk, NULL);
    double *w = tcalloc(nq > natt ? nq : natt, sizeof(double)), e[4];
    for (size_t i = 0; i < ny; i++)
        w[i] = out[i];
    e[0] = worst_err(out2, w, ny);
    for (size_t i = 0; i < natt; i++)
        w[i] = att[i];
    e[1] = worst_err(att2, w, natt);
    for (size_t i = 0; i < nq; i++)
        w[i] = dq[i];
    e[2] = worst_err(dq2, w, nq);
    for (size_t i = 0; i < H * nb; i++)
        w[i] = dt[i];
    e[3] = worst_err(dt2, w, H * nb);
    printf("window attention through GEMMs B=%d %dx%d window %d shift %d: output %.1e, probabilities %.1e, dqkv %.1e, "
           "dtable %.1e against the direct loops\n",
           B, side, side, M, shift, e[0], e[1], e[2], e[3]);
    for (int k = 0; k < 4; k++)
        CHECK(e[k] < 1e-5);
}

/* ---- whole layers against finite differences ---------------------------------- */

/* A layer of spec s on x (B, T, C) with the loss sum(out * r). */
typedef struct LayerCase {
    GrtLayer l;
    float *x, *out, *r, *dx;
    size_t n_in, n_out;
} LayerCase;

static double layer_loss(LayerCase *c) {
    grt_layer_forward(&c->l, c->x, NULL, NULL, c->out);
    double sum = 0;
    for (size_t i = 0; i < c->n_out; i++)
        sum += (double)c->out[i] * c->r[i];
    return sum;
}

/* Central differences of the loss over each of n floats at v. */
static double *fd_of(LayerCase *c, float *v, size_t n, float eps) {
    double *fd = tcalloc(n, sizeof(double));
    for (size_t i = 0; i < n; i++) {
        float keep = v[i];
        v[i] = keep + eps;
        double up = layer_loss(c);
        v[i] = keep - eps;
        double down = layer_loss(c);
        v[i] = keep;
        fd[i] = (up - down) / (2.0 * eps);
    }
    return fd;
}

/* Make the case, run its forward and backward; its gradients in l.grads and dx. */
static LayerCase layer_case(const GrtLayerSpec *s, int B, int T, size_t n_out) {
    LayerCase c = {.n_in = (size_t)B * T * s->C, .n_out = n_out};
    grt_layer_setup(&c.l, s, NULL, B, T);
    float *params = frand(c.l.n_params, 0.3), *grads = tcalloc(c.l.n_params, sizeof(float));
    for (int k = 0; k < c.l.n_tensors; k++) /* norm weights near one, as trained ones are */
        if (strstr(c.l.tensors[k].name, "ln") == c.l.tensors[k].name ||
            (strstr(c.l.tensors[k].name, "norm.weight") && !strstr(c.l.tensors[k].name, "bias")))
            for (size_t i = 0; i < c.l.tensors[k].n; i++)
                params[c.l.tensors[k].offset + i] += 1.0f;
    grt_layer_bind(&c.l, params, grads, 1, tcalloc(grt_layer_work_floats(&c.l) + 1, sizeof(float)), NULL);
    keep(&c.l);
    c.x = frand(c.n_in, 1.0), c.r = frand(n_out, 1.0);
    c.out = tcalloc(n_out, sizeof(float)), c.dx = tcalloc(c.n_in, sizeof(float));
    layer_loss(&c);
    grt_layer_backward(&c.l, c.x, NULL, NULL, c.r, 0, c.dx);
    return c;
}

/* The worst error of the parameters' and the input's gradients. */
static void check_fd(LayerCase *c, const char *what, float eps, double tol) {
    double *fdp = fd_of(c, c->l.params, c->l.n_params, eps), *fdx = fd_of(c, c->x, c->n_in, eps);
    double ep = worst_err(c->l.grads, fdp, c->l.n_params), ex = worst_err(c->dx, fdx, c->n_in);
    printf("%s: worst gradient error against finite differences: parameters %.2e, input %.2e\n", what, ep, ex);
    CHECK(ep < tol);
    CHECK(ex < tol);
}

static void test_block(int B, int side, int C, int H, int M, int shift) {
    GrtLayerSpec s = {.kind = GRT_BLOCK,
                      .name = "swin",
                      .C = C,
                      .H = H,
                      .KVH = H,
                      .hd = C / H,
                      .F = 2 * C,
                      .pre_norm = 1,
                      .bias = 1,
                      .eps = 1e-5f,
                      .window = M,
                      .shift = shift};
    int T = side * side;
    LayerCase c = layer_case(&s, B, T, (size_t)B * T * C);
    /* the table's gradient is the only way its entries reach the loss: check it is not all zero */
    const GrtTensor *tb = &c.l.tensors[c.l.n_tensors - 1];
    CHECK(!strcmp(tb->name, "attn.rel_table") && tb->n == (size_t)H * (2 * M - 1) * (2 * M - 1));
    double gsum = 0;
    for (size_t i = 0; i < tb->n; i++)
        gsum += fabs(c.l.grads[tb->offset + i]);
    CHECK(gsum > 0);
    char what[96];
    snprintf(what, sizeof what, "Swin block B=%d %dx%d C=%d H=%d window %d shift %d", B, side, side, C, H, M, shift);
    check_fd(&c, what, 1e-2f, 3e-3);
}

static void test_merge(int B, int side, int C) {
    GrtLayerSpec s = {.kind = GRT_MERGE, .name = "merge", .C = C, .eps = 1e-5f};
    int T = side * side;
    LayerCase c = layer_case(&s, B, T, (size_t)B * T / 4 * 2 * C);
    CHECK_EQ(c.l.n_params, 8 * (size_t)C + 8 * (size_t)C * C);
    /* the gather: merged token (r, c)'s part k is HF's x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2] */
    float *X = tcalloc((size_t)B * T * C, sizeof(float));
    grt_merge_gather(X, c.x, B, side, C);
    int bad = 0, half = side / 2;
    for (int b = 0; b < B; b++)
        for (int r = 0; r < half * half; r++)
            for (int k = 0; k < 4; k++) {
                int y = r / half * 2 + (k == 1 || k == 3), x = r % half * 2 + (k >= 2);
                bad += memcmp(X + (((size_t)b * half * half + r) * 4 + k) * C, c.x + ((size_t)b * T + y * side + x) * C,
                              sizeof(float) * C) != 0;
            }
    CHECK_EQ(bad, 0);
    char what[96];
    snprintf(what, sizeof what, "patch merging B=%d %dx%d C=%d", B, side, side, C);
    check_fd(&c, what, 1e-2f, 3e-3);
}

/* The plain patch embedding (Swin's): the projected patches are the tokens. */
static void test_plain_patch(int B, int ch, int img, int p, int C) {
    GrtLayerSpec s = {.kind = GRT_PATCH, .name = "patch", .C = C, .image = img, .patch = p, .channels = ch, .plain = 1};
    int T = (img / p) * (img / p);
    GrtLayer l;
    grt_layer_setup(&l, &s, NULL, B, T);
    CHECK_EQ(l.n_params, (size_t)C * ch * p * p + C);
    float *params = frand(l.n_params, 0.5), *grads = tcalloc(l.n_params, sizeof(float));
    grt_layer_bind(&l, params, grads, 1, tcalloc(grt_layer_work_floats(&l) + 1, sizeof(float)), NULL);
    keep(&l);
    size_t npx = (size_t)B * ch * img * img, n_out = (size_t)B * T * C;
    int32_t *px = tcalloc(npx, sizeof(int32_t));
    for (size_t i = 0; i < npx; i++)
        px[i] = (int32_t)((rnd() + 1) * 127.9);
    float *out = tcalloc(n_out, sizeof(float)), *r = frand(n_out, 1.0), *X = tcalloc(n_out * ch * p * p / C + 1, 4);
    grt_layer_forward(&l, NULL, px, NULL, out);
    /* out = patches @ W^T + b, at every token */
    grt_patch_gather(X, px, B, ch, img, p);
    double *want = tcalloc(n_out, sizeof(double)), *fd = tcalloc(l.n_params, sizeof(double));
    int P = ch * p * p;
    for (size_t t = 0; t < (size_t)B * T; t++)
        for (int o = 0; o < C; o++) {
            double v = params[(size_t)C * P + o];
            for (int k = 0; k < P; k++)
                v += (double)X[t * P + k] * params[(size_t)o * P + k];
            want[t * C + o] = v;
        }
    double ef = worst_err(out, want, n_out);
    grt_layer_backward(&l, NULL, px, NULL, r, 0, NULL);
    for (size_t i = 0; i < l.n_params; i++) { /* the loss is linear in each parameter: exact differences */
        float keep = params[i];
        double s[2];
        for (int k = 0; k < 2; k++) {
            params[i] = keep + (k ? -0.05f : 0.05f);
            grt_layer_forward(&l, NULL, px, NULL, out);
            s[k] = 0;
            for (size_t j = 0; j < n_out; j++)
                s[k] += (double)out[j] * r[j];
        }
        params[i] = keep;
        fd[i] = (s[0] - s[1]) / 0.1;
    }
    double eg = worst_err(grads, fd, l.n_params);
    printf("plain patch embedding B=%d %dx%dx%d patch %d C=%d: forward error %.2e, gradient error %.2e\n", B, ch, img,
           img, p, C, ef, eg);
    CHECK(ef < 1e-5);
    CHECK(eg < 2e-3);
}

int main(void) {
    test_geometry(8, 4, 0);
    test_geometry(8, 4, 2);
    test_geometry(12, 4, 2);
    test_geometry(6, 3, 1);
    test_geometry(4, 2, 1);
    test_window_attention(2, 8, 4, 0, 2, 3);
    test_window_attention(2, 8, 4, 2, 2, 3);
    test_window_attention(1, 6, 3, 1, 3, 2);
    test_gemm_path(2, 8, 4, 0, 2, 3);
    test_gemm_path(2, 8, 4, 2, 2, 3);
    test_gemm_path(1, 6, 3, 1, 3, 2);
    test_block(2, 4, 8, 2, 2, 0);
    test_block(2, 4, 8, 2, 2, 1);
    test_block(1, 6, 6, 3, 3, 1);
    test_merge(2, 4, 3);
    test_merge(1, 6, 5);
    test_plain_patch(2, 3, 8, 2, 5);
    free_owned();
    return check_report();
}
