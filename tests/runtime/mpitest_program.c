// ranks: 4
/* mpitest_program.c — the program frame of libgalvrt on 4 ranks in 2
 * pipeline stages: the options every program takes, groups made from rank
 * lists (each rank's place in its list is its index), a pipeline edge
 * between a DP 2 stage and a TP 2 stage (every rank of the next stage gets
 * the whole micro-batch, sequence by sequence in order, over several slots
 * in flight), reshards between the layouts of one 4-rank stage with and
 * without Megatron-SP's sequence split (each rank gets exactly its rows),
 * and each shard's stored part under ZeRO-3. Each rank counts
 * its own checks; every rank exits non-zero if any rank failed. */
#include "../unit/check.h"
#include "galvrt.h"

#include <string.h>

static const GrtLayerSpec spec[1] = {{.kind = GRT_NORM, .name = "norm", .C = 8, .bias = 1, .eps = 1e-5f}};
static const GrtLayerCut cut[1] = {{0, 1, 2, 1}};
static const double predicted_mem[2] = {0, 0};
static const GrtProgram program = {.model = "frame", .ranks = 4, .pp = 2, .n_layers = 1, .global_batch = 4,
                                   .micro_batches = 2, .seq = 3, .vocab = 8, .hidden = 8, .tied_to = -1,
                                   .default_steps = 11, .lr = 1e-3f, .predicted_mem = predicted_mem,
                                   .spec = spec, .cut = cut};

static void test_options(GrtRun *R) {
    char *argv[] = {"prog", "--steps", "5", "--seed", "9", "--ckpt-dir", "d", "--resume", NULL};
    GrtOptions o = grt_options_parse(R->world, &program, 8, argv);
    CHECK_EQ(o.steps, 5);
    CHECK_EQ(o.seed, 9);
    CHECK(o.seed_given && o.resume && !strcmp(o.ckpt_dir, "d"));
    CHECK_EQ(o.ckpt_keep, 3);
    CHECK_EQ(R->opt.steps, 11); /* the program's default when none is given */
}

static void test_groups(GrtRun *R) {
    static const int pairs[2][2] = {{0, 1}, {3, 2}}, strided[1][2] = {{0, 2}};
    GrtComm *p = grt_run_group(R, 2, 2, &pairs[0][0]), *s = grt_run_group(R, 2, 1, &strided[0][0]);
    int r = R->rank, place = r == 0 || r == 3 ? 0 : 1;
    CHECK(p != NULL);
    if (p) CHECK_EQ(grt_rank(p), place);
    if (p) CHECK_EQ(grt_size(p), 2);
    CHECK((s != NULL) == (r == 0 || r == 2));
    if (s) CHECK_EQ(grt_rank(s), r / 2);
    static const int one[4][1] = {{0}, {1}, {2}, {3}};
    CHECK(grt_run_group(R, 1, 4, &one[0][0]) == NULL); /* a group of one is no group */
}

/* Stage 0 (ranks 0, 1: DP 2, one sequence each) sends two micro-batches to
 * stage 1 (ranks 2, 3: TP 2, both sequences each) on two slots. */
static void test_pipe(GrtRun *R) {
    enum { MB = 2, F = 5 };
    GrtLayout from = {0, 1, 2, 1, 0, 0, 0}, to = {2, 2, 1, 1, 0, 0, 0};
    GrtPipe *p = grt_pipe_new(&from, &to, MB, F, R->rank, 2);
    for (int mb = 0; mb < 2; mb++) {
        if (R->rank < 2) {
            float *buf = grt_pipe_buffer(p, mb);
            for (int k = 0; k < F; k++) buf[k] = (float)(100 * mb + 10 * R->rank + k); /* its one sequence */
            grt_pipe_send(p, R->world, mb, 7);
        } else {
            float got[MB * F];
            grt_pipe_recv(p, R->world, got, 7);
            int ok = 1;
            for (int q = 0; q < MB; q++)
                for (int k = 0; k < F; k++) ok &= got[q * F + k] == (float)(100 * mb + 10 * q + k);
            CHECK(ok);
        }
    }
    grt_pipe_drain(p);
}

/* The place in the micro-batch (MB sequences of F floats) of float k of
 * what rank r holds under L: a run from its first, or under Ulysses (ul
 * u) F / u floats of each of its sequences, the part of its index in the
 * Ulysses group, or under CP (cp c) of each of its sequences chunks i and
 * 2 c - 1 - i of 2 c, i its index in the CP group, worked out here
 * independently of runtime/reshard.c. */
static size_t float_at(const GrtLayout *L, int r, int mb, size_t F, size_t k) {
    if (L->cp > 1) {
        size_t c = (size_t)L->cp, i = (size_t)(r - L->base), B = (size_t)(mb / L->dp), per = F / c, h = per / 2;
        size_t p = k % per, pos = p < h ? i % c * h + p : (2 * c - 1 - i % c) * h + p - h;
        return (i / c * B + k / per) * F + pos;
    }
    if (L->ul > 1) {
        size_t u = (size_t)L->ul, i = (size_t)(r - L->base), B = (size_t)(mb / L->dp), per = F / u;
        return (i / u * B + k / per) * F + i % u * per + k % per;
    }
    size_t part = grt_layout_floats(L, mb, F);
    return (size_t)grt_layout_dp_index(L, r) * (size_t)(mb / L->dp) * F +
           (L->sp ? (size_t)grt_layout_tp_index(L, r) * part : 0) + k;
}

/* Between every two of eleven layouts of ranks 0-3 (TP 2 x DP 2 both
 * nestings, TP 4, with and without the sequence split; DP 4; Ulysses 2 x
 * DP 2, Ulysses 4, Ulysses 2 over ranks 2-3; CP 2 x DP 2, CP 4, CP 2 over
 * ranks 2-3), every rank receives exactly the floats its layout says,
 * numbered by their place in the micro-batch. */
static void test_reshard_sp(GrtRun *R) {
    enum { MB = 4, F = 8, N = 11 };
    static const GrtLayout L[N] = {{0, 2, 2, 1, 1, 0, 0}, {0, 2, 2, 0, 1, 0, 0}, {0, 4, 1, 1, 1, 0, 0},
                                   {0, 4, 1, 1, 0, 0, 0}, {0, 1, 4, 1, 0, 0, 0}, {0, 1, 2, 1, 0, 2, 0},
                                   {0, 1, 1, 1, 0, 4, 0}, {2, 1, 1, 1, 0, 2, 0}, {0, 1, 2, 1, 0, 0, 2},
                                   {0, 1, 1, 1, 0, 0, 4}, {2, 1, 1, 1, 0, 0, 2}};
    float src[MB * F], dst[MB * F];
    for (int a = 0; a < N; a++)
        for (int b = 0; b < N; b++) {
            GrtReshard *x = grt_reshard_new(&L[a], &L[b], MB, F, R->rank);
            size_t n = grt_layout_has(&L[b], R->rank) ? grt_layout_floats(&L[b], MB, F) : 0;
            size_t m = grt_layout_has(&L[a], R->rank) ? grt_layout_floats(&L[a], MB, F) : 0;
            for (size_t k = 0; k < m; k++) src[k] = (float)float_at(&L[a], R->rank, MB, F, k);
            memset(dst, 0, sizeof dst);
            grt_reshard_run(x, R->world, src, dst, 40 + a * N + b);
            int ok = 1;
            for (size_t k = 0; k < n; k++) ok &= dst[k] == (float)float_at(&L[b], R->rank, MB, F, k);
            CHECK(ok);
        }
}

/* A ZeRO-3 shard's parts: every float of every tensor stored by exactly one DP rank. */
static void test_stored_part(void) {
    GrtShard x;
    memset(&x, 0, sizeof x);
    GrtLayerSpec block = {.kind = GRT_BLOCK, .name = "b", .C = 8, .H = 2, .KVH = 2, .hd = 4, .F = 32, .bias = 1};
    grt_layer_shape(&x.l, &block, 1, 0);
    CHECK_EQ(x.l.n_params, (size_t)grt_size_params(&block, 1));
    x.n = x.l.n_params, x.zero = 3, x.dp_size = 3, x.chunk = (x.n + 2) / 3, x.stored = x.chunk;
    size_t covered = 0;
    for (int d = 0; d < 3; d++) {
        x.dp_index = d;
        for (int k = 0; k < x.l.n_tensors; k++) {
            size_t a, b;
            if (grt_shard_stored_part(&x, k, &a, &b)) covered += b - a;
        }
    }
    CHECK_EQ(covered, x.n);
}

int main(int argc, char **argv) {
    GrtRun *R = grt_run_start(&argc, &argv, &program);
    CHECK_EQ(R->stage, R->rank / 2);
    test_options(R);
    test_groups(R);
    test_pipe(R);
    test_reshard_sp(R);
    test_stored_part();
    double failures = check_failures;
    grt_allreduce_double(R->world, &failures, 1);
    int failed = R->rank == 0 ? check_report() : failures > 0;
    if (failures > 0) failed = 1;
    grt_finalize();
    return failed;
}
