/* vision.c — the reference kernels of the vision and classification layers: ViT's patch
 * embedding and the classifier head on a pooled token (Dosovitskiy et al.
 * 2021, "An Image is Worth 16x16 Words", eq. 1 and 4; Hugging Face's
 * ViTEmbeddings and ViTForImageClassification), and the sequence classifier
 * BERT's pooler feeds (Devlin et al. 2019). The GEMMs around them are
 * grt_matmul_*'s; these are the gathers, adds and the loss in between,
 * and BERT's token types (segment embeddings) and the pooler's tanh. */
#include "galvrt.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* X (B np, ch p p) = the patches of pixels (B, ch, img, img), scaled to
 * [0, 1]: patch r = (row, col) of the (img / p)^2 grid, row-major; its
 * values ordered (channel, dy, dx), as a Conv2d weight (C, ch, p, p) flattens. */
void grt_patch_gather(float *X, const int32_t *pixels, int B, int ch, int img, int p) {
    int side = img / p, np = side * side, P = ch * p * p;
    for (int b = 0; b < B; b++)
        for (int r = 0; r < np; r++) {
            float *x = X + ((size_t)b * np + r) * P;
            int y0 = r / side * p, x0 = r % side * p;
            for (int c = 0; c < ch; c++)
                for (int dy = 0; dy < p; dy++) {
                    const int32_t *row = pixels + (((size_t)b * ch + c) * img + y0 + dy) * img + x0;
                    for (int dx = 0; dx < p; dx++)
                        *x++ = (float)row[dx] / 255.0f;
                }
        }
}

/* out (B, np + 1, C) = [cls; Y (B np, C)] + pos (np + 1, C). */
void grt_patch_assemble(float *out, const float *Y, const float *cls, const float *pos, int B, int np, int C) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t <= np; t++) {
            float *o = out + ((size_t)b * (np + 1) + t) * C;
            const float *src = t ? Y + ((size_t)b * np + t - 1) * C : cls, *q = pos + (size_t)t * C;
            for (int c = 0; c < C; c++)
                o[c] = src[c] + q[c];
        }
}

/* The assembly's backward: dY (B np, C) = dout's patch rows; dcls (C) and
 * dpos (np + 1, C) accumulate their sums over the batch. */
void grt_patch_assemble_backward(float *dY, float *dcls, float *dpos, const float *dout, int B, int np, int C) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t <= np; t++) {
            const float *d = dout + ((size_t)b * (np + 1) + t) * C;
            float *q = dpos + (size_t)t * C;
            for (int c = 0; c < C; c++)
                q[c] += d[c];
            if (t)
                memcpy(dY + ((size_t)b * np + t - 1) * C, d, sizeof(float) * (size_t)C);
            else
                for (int c = 0; c < C; c++)
                    dcls[c] += d[c];
        }
}

/* out (B, T, C) += tt (types, C)'s row of each token's type. */
void grt_token_types_forward(float *out, const float *tt, int B, int T, int C, int types) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float *o = out + ((size_t)b * T + t) * C;
            const float *e = tt + (size_t)grt_token_type(t, T, types) * C;
            for (int c = 0; c < C; c++)
                o[c] += e[c];
        }
}

/* dtt (types, C) += dout (B, T, C) summed over each type's tokens. */
void grt_token_types_backward(float *dtt, const float *dout, int B, int T, int C, int types) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *d = dout + ((size_t)b * T + t) * C;
            float *e = dtt + (size_t)grt_token_type(t, T, types) * C;
            for (int c = 0; c < C; c++)
                e[c] += d[c];
        }
}

/* x = tanh(x), n values. */
void grt_tanh_forward(float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        x[i] = tanhf(x[i]);
}

/* dh = dh * (1 - h^2): through tanh, from its output h. */
void grt_tanh_backward(float *dh, const float *h, size_t n) {
    for (size_t i = 0; i < n; i++)
        dh[i] *= 1.0f - h[i] * h[i];
}

/* pooled (B, C) = x (B, T, C)'s first token, or its mean over T. */
void grt_pool_forward(float *pooled, const float *x, int B, int T, int C, int mean) {
    for (int b = 0; b < B; b++) {
        float *o = pooled + (size_t)b * C;
        const float *xb = x + (size_t)b * T * C;
        memcpy(o, xb, sizeof(float) * (size_t)C);
        if (!mean) continue;
        for (int t = 1; t < T; t++)
            for (int c = 0; c < C; c++)
                o[c] += xb[(size_t)t * C + c];
        for (int c = 0; c < C; c++)
            o[c] /= (float)T;
    }
}

/* dx (B, T, C) += the pooling's backward of dpooled (B, C). */
void grt_pool_backward(float *dx, const float *dpooled, int B, int T, int C, int mean) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < (mean ? T : 1); t++) {
            float *d = dx + ((size_t)b * T + t) * C;
            const float *g = dpooled + (size_t)b * C;
            for (int c = 0; c < C; c++)
                d[c] += mean ? g[c] / (float)T : g[c];
        }
}

/* probs (B, V) = softmax(logits (B, V)), in place (logits may be probs);
 * losses (B) = -log probs[label], label = labels[b * stride]. Returns how
 * many rows have their label as the most probable class (the first of
 * ties). Labels are checked in range by the data loader. */
int64_t grt_classify_forward(float *losses, float *probs, const float *logits, const int32_t *labels, int stride, int B,
                             int V) {
    int64_t correct = 0;
    for (int b = 0; b < B; b++) {
        const float *l = logits + (size_t)b * V;
        float *p = probs + (size_t)b * V;
        int best = 0;
        float mx = l[0];
        for (int j = 1; j < V; j++)
            if (l[j] > mx) mx = l[j], best = j;
        double sum = 0;
        for (int j = 0; j < V; j++)
            sum += exp((double)l[j] - mx);
        int32_t y = labels[(size_t)b * stride];
        double lse = mx + log(sum), ly = l[y];
        for (int j = 0; j < V; j++)
            p[j] = (float)exp((double)l[j] - lse);
        losses[b] = (float)(lse - ly);
        correct += best == y;
    }
    return correct;
}

/* dlogits (B, V) = (probs - onehot(label)) * dloss. */
void grt_classify_backward(float *dlogits, const float *probs, const int32_t *labels, int stride, int B, int V,
                           float dloss) {
    for (int b = 0; b < B; b++) {
        float *d = dlogits + (size_t)b * V;
        const float *p = probs + (size_t)b * V;
        for (int j = 0; j < V; j++)
            d[j] = p[j] * dloss;
        d[labels[(size_t)b * stride]] -= dloss;
    }
}
