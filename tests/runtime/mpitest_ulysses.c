// ranks: 4
/* mpitest_ulysses.c — runtime/ulysses.c on 4 ranks, against the one-rank
 * attention every rank computes itself on the whole data: Ulysses over the
 * world (u = 4) and over consecutive pairs (u = 2), MHA and GQA, with and
 * without rotary. The exchanges must move values exactly (to_tokens undoes
 * to_heads, and to_heads puts each value where the whole tensor has it);
 * the attention's output and its QKV gradient must equal the reference's
 * within 1e-5 relative (the same per-head arithmetic). A comparison that
 * meets a NaN fails. */
#include "../unit/check.h"
#include "galvrt.h"
#include "mpi_check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int me;

static float *floats(size_t n) {
    float *p = calloc(n ? n : 1, sizeof *p);
    if (!p) abort();
    return p;
}

/* A value in [-1, 1) from (salt, i), the same on every rank. */
static float draw(uint64_t salt, size_t i) {
    return (float)((double)(grt_hash64(salt * 0x9E3779B97F4A7C15ull + i) >> 11) / 9007199254740992.0 * 2 - 1);
}

/* got (n) within tol of want (n), relative to want's largest magnitude; NaN fails. */
static int close_to(const char *what, const float *got, const float *want, size_t n, double tol) {
    double scale = 0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(want[i]));
    for (size_t i = 0; i < n; i++)
        if (!(fabs((double)got[i] - want[i]) <= tol * (scale > 0 ? scale : 1))) {
            fprintf(stderr, "rank %d: %s: [%zu] = %g, want %g\n", me, what, i, got[i], want[i]);
            return 0;
        }
    return 1;
}

/* Rows [r Tl, (r + 1) Tl) of each of B sequences of whole (B, T, W): this rank's local tokens. */
static void local_rows(float *local, const float *whole, int B, int T, int Tl, int r, int W) {
    for (int b = 0; b < B; b++)
        memcpy(local + (size_t)b * Tl * W, whole + ((size_t)b * T + (size_t)r * Tl) * W,
               sizeof(float) * (size_t)Tl * W);
}

/* The reference: rotary on Q and K of qkv (B, T, S) at positions 0..T-1 (in place), backward when bwd. */
static void rope_ref(float *qkv, int B, int T, int H, int KVH, int hd, int bwd) {
    int S = (H + 2 * KVH) * hd, qk = (H + KVH) * hd;
    float *tmp = floats((size_t)B * T * qk);
    for (size_t n = 0; n < (size_t)B * T; n++)
        memcpy(tmp + n * qk, qkv + n * S, sizeof(float) * (size_t)qk);
    if (bwd)
        grt_rope_backward(tmp, B, T, H + KVH, hd, 10000.0f);
    else
        grt_rope_forward(tmp, B, T, H + KVH, hd, 10000.0f);
    for (size_t n = 0; n < (size_t)B * T; n++)
        memcpy(qkv + n * S, tmp + n * qk, sizeof(float) * (size_t)qk);
    free(tmp);
}

/* One case: Ulysses over g (u ranks) against the whole attention. */
static void test_case(GrtComm *g, int B, int T, int H, int KVH, int hd, int rope) {
    int u = grt_size(g), r = grt_rank(g), Tl = T / u, S = (H + 2 * KVH) * hd, O = H * hd;
    size_t N = (size_t)B * T, Nl = (size_t)B * Tl, Wq = (size_t)S / u, Wo = (size_t)O / u;
    GrtUlysses x = {.group = g,
                    .u = u,
                    .B = B,
                    .T = T,
                    .H = H,
                    .KVH = KVH,
                    .hd = hd,
                    .causal = 1,
                    .rope = rope,
                    .rope_theta = 10000.0f};
    float *qkv = floats(N * S), *dout = floats(N * O), *out_ref = floats(N * O), *att_ref = floats(N * H * T);
    float *dqkv_ref = floats(N * S), *q = floats(N * S);
    for (size_t i = 0; i < N * S; i++)
        qkv[i] = draw(1 + (uint64_t)S, i);
    for (size_t i = 0; i < N * O; i++)
        dout[i] = draw(2 + (uint64_t)S, i);
    memcpy(q, qkv, sizeof(float) * N * S);
    if (rope) rope_ref(q, B, T, H, KVH, hd, 0);
    grt_attention_forward(out_ref, att_ref, q, B, T, H, KVH, hd, 1);
    grt_attention_backward(dqkv_ref, dout, q, att_ref, B, T, H, KVH, hd, 1);
    if (rope) rope_ref(dqkv_ref, B, T, H, KVH, hd, 1);

    GrtUlyssesBufs m = {.qkvw = floats(N * Wq),
                        .attw = floats(N * Wo),
                        .att = floats((size_t)B * (H / u) * T * T),
                        .send = floats(N * Wq),
                        .recv = floats(N * Wq),
                        .dqkv_recv = floats(N * Wq),
                        .dattw = floats(N * Wo),
                        .rope = floats(N * (size_t)(H + KVH) * hd / u)};
    float *lq = floats(Nl * S), *lq0 = floats(Nl * S), *lout = floats(Nl * O), *ldout = floats(Nl * O);
    float *ldqkv = floats(Nl * S), *want = floats(Nl * S);
    local_rows(lq, qkv, B, T, Tl, r, S);
    memcpy(lq0, lq, sizeof(float) * Nl * S);

    /* the exchanges: each value where the whole tensor has it, and back */
    int w[3] = {H * hd, KVH * hd, KVH * hd};
    grt_ulysses_to_heads(&x, w, 3, lq, m.send, m.recv, m.qkvw);
    int exact = 1;
    for (size_t n = 0; n < N; n++)
        for (int c = 0; c < S / u; c++) {
            int seg = c < H * hd / u ? 0 : c < (H + KVH) * hd / u ? 1 : 2;
            int start = seg == 0   ? 0
                        : seg == 1 ? H * hd
                                   : (H + KVH) * hd,
                base = seg == 0   ? 0
                       : seg == 1 ? H * hd / u
                                  : (H + KVH) * hd / u;
            exact &= m.qkvw[n * Wq + c] == qkv[n * S + start + (size_t)r * (w[seg] / u) + (c - base)];
        }
    CHECK(exact);
    memset(lq, 0, sizeof(float) * Nl * S);
    grt_ulysses_to_tokens(&x, w, 3, m.qkvw, m.send, m.recv, lq);
    CHECK(memcmp(lq, lq0, sizeof(float) * Nl * S) == 0);

    /* attention forward and backward against the reference's rows */
    grt_ulysses_attention_forward(&x, &m, lout, lq);
    CHECK(memcmp(lq, lq0, sizeof(float) * Nl * S) == 0); /* its input untouched: rotary ran on the whole heads */
    local_rows(want, out_ref, B, T, Tl, r, O);
    CHECK(close_to("attention output", lout, want, Nl * O, 1e-5));
    local_rows(ldout, dout, B, T, Tl, r, O);
    grt_ulysses_attention_backward(&x, &m, ldqkv, ldout);
    local_rows(want, dqkv_ref, B, T, Tl, r, S);
    CHECK(close_to("QKV gradient", ldqkv, want, Nl * S, 1e-5));

    float *all[] = {qkv,    dout,        out_ref, att_ref, dqkv_ref, q,   m.qkvw, m.attw, m.att, m.send,
                    m.recv, m.dqkv_recv, m.dattw, m.rope,  lq,       lq0, lout,   ldout,  ldqkv, want};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
        free(all[k]);
}

int main(int argc, char **argv) {
    GrtComm *world = grt_init(&argc, &argv);
    me = grt_rank(world);
    CHECK_EQ(grt_size(world), 4);
    GrtComm *pairs = grt_comm_split(world, me / 2, me); /* {0,1} {2,3} */
    for (int rope = 0; rope <= 1; rope++) {
        test_case(world, 2, 8, 4, 4, 4, rope);  /* MHA over 4 */
        test_case(world, 3, 16, 8, 4, 6, rope); /* GQA over 4 */
        test_case(pairs, 2, 8, 4, 2, 4, rope);  /* llama-tiny's heads over 2 */
        test_case(pairs, 1, 12, 2, 2, 8, rope); /* one sequence */
    }
    return mpi_check_finish(world); /* the sum over every rank decides; rank 0 prints it */
}
