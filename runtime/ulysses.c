/* ulysses.c — DeepSpeed-Ulysses' attention (Jacobs et al. 2023, section 3):
 * u ranks split each of B sequences of T tokens, rank r holding positions
 * [r T / u, (r + 1) T / u). Around attention two all-to-alls turn the split:
 * each rank sends its tokens' Q, K and V heads to the rank that owns them
 * and gets the whole sequence of H / u query heads and KVH / u key/value
 * heads (head group j to rank j), runs rotary at those whole sequences'
 * positions and causal attention on them, and a second all-to-all returns
 * the output (B, T / u, H hd) to its tokens. Backward runs the mirror
 * exchanges on the gradients. The buffers are the ones galvrt_sizes.h's
 * grt_size_kept_ulysses and grt_size_work_ulysses count. */
#include "galvrt.h"

#include <string.h>

/* The local tokens' rows, and the floats of one rank's block of an exchange of rows `width` wide. */
static size_t local_rows(const GrtUlysses *x) { return (size_t)x->B * (size_t)(x->T / x->u); }
static size_t block_floats(const GrtUlysses *x, int width) { return local_rows(x) * (size_t)(width / x->u); }

/* The columns of a row of `seg` segments of widths w[0..seg): part j of each
 * segment (w / u columns from j w / u) copied between a local row `wide`
 * (all parts) and a narrow row (the segments' parts j one after the other). */
static void parts(float *wide, float *narrow, const int *w, int seg, int u, int j, int to_narrow) {
    for (int s = 0, off = 0, n = 0; s < seg; off += w[s], n += w[s] / u, s++) {
        float *a = wide + off + (size_t)j * (w[s] / u), *b = narrow + n;
        size_t bytes = sizeof(float) * (size_t)(w[s] / u);
        if (to_narrow)
            memcpy(b, a, bytes);
        else
            memcpy(a, b, bytes);
    }
}

/* Sum of the segments' widths: a local row's floats. */
static int width_of(const int *w, int seg) {
    int n = 0;
    for (int s = 0; s < seg; s++)
        n += w[s];
    return n;
}

void grt_ulysses_to_heads(const GrtUlysses *x, const int *w, int seg, float *local, float *send, float *recv,
                          float *whole) {
    int u = x->u, W = width_of(w, seg), Wu = W / u, Tl = x->T / u;
    size_t rows = local_rows(x), blk = block_floats(x, W);
    for (int j = 0; j < u; j++) /* block j: every local token's part j, to rank j */
        for (size_t n = 0; n < rows; n++)
            parts(local + n * (size_t)W, send + j * blk + n * (size_t)Wu, w, seg, u, j, 1);
    grt_alltoall(x->group, send, recv, blk);
    for (int i = 0; i < u; i++) /* block i: rank i's tokens, positions [i Tl, (i + 1) Tl) of each sequence */
        for (size_t n = 0; n < rows; n++) {
            size_t b = n / (size_t)Tl, t = n % (size_t)Tl;
            memcpy(whole + (b * (size_t)x->T + (size_t)i * Tl + t) * Wu, recv + i * blk + n * (size_t)Wu,
                   sizeof(float) * (size_t)Wu);
        }
}

void grt_ulysses_to_tokens(const GrtUlysses *x, const int *w, int seg, const float *whole, float *send, float *recv,
                           float *local) {
    int u = x->u, W = width_of(w, seg), Wu = W / u, Tl = x->T / u;
    size_t rows = local_rows(x), blk = block_floats(x, W);
    for (int i = 0; i < u; i++) /* block i: the positions rank i holds, to rank i */
        for (size_t n = 0; n < rows; n++) {
            size_t b = n / (size_t)Tl, t = n % (size_t)Tl;
            memcpy(send + i * blk + n * (size_t)Wu, whole + (b * (size_t)x->T + (size_t)i * Tl + t) * Wu,
                   sizeof(float) * (size_t)Wu);
        }
    grt_alltoall(x->group, send, recv, blk);
    for (int j = 0; j < u; j++) /* block j: rank j's heads of this rank's tokens */
        for (size_t n = 0; n < rows; n++)
            parts(local + n * (size_t)W, recv + j * blk + n * (size_t)Wu, w, seg, u, j, 0);
}

/* Rotary on the Q and K heads of qkvw (B, T, (H + 2 KVH) hd / u), whole
 * sequences so at their true positions, through the contiguous copy tmp
 * (B T (H + KVH) hd / u) the reference rotates. */
static void rope_whole(const GrtUlysses *x, float *qkvw, float *tmp, int backward) {
    int heads = (x->H + x->KVH) / x->u, qk = heads * x->hd, row = (x->H + 2 * x->KVH) * x->hd / x->u;
    size_t N = (size_t)x->B * x->T;
    for (size_t n = 0; n < N; n++)
        memcpy(tmp + n * qk, qkvw + n * row, sizeof(float) * (size_t)qk);
    if (backward)
        grt_rope_backward(tmp, x->B, x->T, heads, x->hd, x->rope_theta);
    else
        grt_rope_forward(tmp, x->B, x->T, heads, x->hd, x->rope_theta);
    for (size_t n = 0; n < N; n++)
        memcpy(qkvw + n * row, tmp + n * qk, sizeof(float) * (size_t)qk);
}

/* The segments of a QKV row (Q, K, V) and of an attention output row, in floats. */
static int qkv_segments(const GrtUlysses *x, int *w) {
    w[0] = x->H * x->hd, w[1] = w[2] = x->KVH * x->hd;
    return 3;
}

void grt_ulysses_qkv_to_heads(const GrtUlysses *x, const GrtUlyssesBufs *m, float *qkv) {
    int w[3], seg = qkv_segments(x, w);
    grt_ulysses_to_heads(x, w, seg, qkv, m->send, m->recv, m->qkvw);
    if (x->rope) rope_whole(x, m->qkvw, m->rope, 0);
}

void grt_ulysses_attend(const GrtUlysses *x, const GrtUlyssesBufs *m) {
    grt_attention_forward_dropout(m->attw, m->att, m->qkvw, x->B, x->T, x->H / x->u, x->KVH / x->u, x->hd, x->causal,
                                  x->softmax, NULL, x->bf16);
}

void grt_ulysses_out_to_tokens(const GrtUlysses *x, const GrtUlyssesBufs *m, float *out) {
    int o = x->H * x->hd;
    grt_ulysses_to_tokens(x, &o, 1, m->attw, m->send, m->recv, out);
}

void grt_ulysses_attention_forward(const GrtUlysses *x, const GrtUlyssesBufs *m, float *out, float *qkv) {
    grt_ulysses_qkv_to_heads(x, m, qkv);
    grt_ulysses_attend(x, m);
    grt_ulysses_out_to_tokens(x, m, out);
}

void grt_ulysses_attention_backward(const GrtUlysses *x, const GrtUlyssesBufs *m, float *dqkv, float *dout) {
    int w[3], seg = qkv_segments(x, w), o = x->H * x->hd, Hu = x->H / x->u, KVHu = x->KVH / x->u;
    size_t whole_qkv = block_floats(x, width_of(w, seg)) * (size_t)x->u;
    grt_ulysses_to_heads(x, &o, 1, dout, m->send, m->recv, m->dattw);
    memset(m->recv, 0, whole_qkv * sizeof(float)); /* the whole sequences' QKV gradient, summed into */
    grt_attention_backward_dropout(m->recv, m->dattw, m->qkvw, m->att, x->B, x->T, Hu, KVHu, x->hd, x->causal,
                                   x->softmax_bwd, NULL, x->bf16);
    if (x->rope) rope_whole(x, m->recv, m->rope, 1);
    grt_ulysses_to_tokens(x, w, seg, m->recv, m->send, m->dqkv_recv, dqkv);
}
