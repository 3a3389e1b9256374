// ranks: 4
/* mpitest_comm.c — libgalvrt's collectives on 4 ranks: every operation on the
 * world and on split groups (consecutive pairs {0,1} {2,3}, strided pairs
 * {0,2} {1,3}, a group ordered by a reversed key), compared exactly with the
 * sums of small integers, which float adds without rounding. Everything runs
 * twice: as is, and with the MPI backend cut to 3 elements per MPI call, so
 * the chunking of buffers beyond INT_MAX elements is tested on small ones.
 * Built a second time (mpitest_comm_cuda, with the CUDA toolkit) to run
 * every check through the CUDA target's backend (runtime/cuda/comm_cuda.c)
 * on host buffers, which it hands to MPI's functions with its own handles.
 * Each rank counts its own checks; the counts are summed and rank 0 prints
 * the line, and every rank exits non-zero if any rank failed. */
#include "../unit/check.h"
#include "../../runtime/comm.h"
#include "galvrt.h"
#include "mpi_check.h"

#include <stdlib.h>

#ifdef TEST_CUDA_BACKEND /* built again as mpitest_comm_cuda: the same checks through the CUDA target's backend */
#include "cuda_device.h"
#endif

static int me; /* world rank, for messages */

/* 1 if got (n) equals want (n) exactly; otherwise prints the first difference. */
static int same(const char *what, const float *got, const float *want, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i]) {
            fprintf(stderr, "rank %d: %s: [%zu] = %g, want %g\n", me, what, i, got[i], want[i]);
            return 0;
        }
    return 1;
}

/* 1 if got (n) equals want (n) exactly, doubles. */
static int same_double(const char *what, const double *got, const double *want, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i]) {
            fprintf(stderr, "rank %d: %s: [%zu] = %g, want %g\n", me, what, i, got[i], want[i]);
            return 0;
        }
    return 1;
}

static float *floats(size_t n) {
    float *p = calloc(n ? n : 1, sizeof *p);
    if (!p) abort();
    return p;
}

/* The world rank of every member of group g, in group order (members (size)). */
static void members_of(GrtComm *g, int *members) {
    float *mine = floats(1), *all = floats((size_t)grt_size(g));
    mine[0] = (float)me;
    grt_allgather(g, mine, all, 1);
    for (int i = 0; i < grt_size(g); i++)
        members[i] = (int)all[i];
    free(mine);
    free(all);
}

/* Allreduce, float and double, of (world rank + i) over group g of the given members. */
static void test_allreduce(GrtComm *g, const int *members, size_t n, const char *what) {
    float *buf = floats(n), *want = floats(n);
    double *dbuf = calloc(n ? n : 1, sizeof *dbuf), *dwant = calloc(n ? n : 1, sizeof *dwant);
    if (!dbuf || !dwant) abort();
    for (size_t i = 0; i < n; i++) {
        buf[i] = (float)(me + (int)(i % 1000));
        dbuf[i] = 0.5 * me + (double)i; /* halves: still exact */
        for (int r = 0; r < grt_size(g); r++) {
            want[i] += (float)(members[r] + (int)(i % 1000));
            dwant[i] += 0.5 * members[r] + (double)i;
        }
    }
    grt_allreduce(g, buf, n);
    CHECK(same(what, buf, want, n));
    grt_allreduce_double(g, dbuf, n);
    CHECK(same_double(what, dbuf, dwant, n));
    free(buf);
    free(want);
    free(dbuf);
    free(dwant);
}

/* Reduce-scatter of in[j] = world rank + j: this rank's block of the sum. */
static void test_reduce_scatter(GrtComm *g, const int *members, size_t n) {
    int size = grt_size(g), rank = grt_rank(g);
    float *in = floats((size_t)size * n), *out = floats(n), *want = floats(n);
    for (size_t j = 0; j < (size_t)size * n; j++)
        in[j] = (float)(me + (int)j);
    for (size_t i = 0; i < n; i++)
        for (int r = 0; r < size; r++)
            want[i] += (float)(members[r] + (int)((size_t)rank * n + i));
    grt_reduce_scatter(g, in, out, n);
    CHECK(same("reduce_scatter", out, want, n));
    free(in);
    free(out);
    free(want);
}

/* Allgather of in[i] = 100 * world rank + i. */
static void test_allgather(GrtComm *g, const int *members, size_t n) {
    int size = grt_size(g);
    float *in = floats(n), *out = floats((size_t)size * n), *want = floats((size_t)size * n);
    for (size_t i = 0; i < n; i++)
        in[i] = (float)(100 * me + (int)i);
    for (int r = 0; r < size; r++)
        for (size_t i = 0; i < n; i++)
            want[(size_t)r * n + i] = (float)(100 * members[r] + (int)i);
    grt_allgather(g, in, out, n);
    CHECK(same("allgather", out, want, (size_t)size * n));
    free(in);
    free(out);
    free(want);
}

/* All-to-all of in block j [i] = (4 world rank + j) n + i, every float
 * distinct: block r of what this rank gets comes from group rank r, its
 * block for this rank. */
static void test_alltoall(GrtComm *g, const int *members, size_t n) {
    int size = grt_size(g), mine = grt_rank(g);
    float *in = floats((size_t)size * n), *out = floats((size_t)size * n), *want = floats((size_t)size * n);
    for (int j = 0; j < size; j++)
        for (size_t i = 0; i < n; i++) {
            in[(size_t)j * n + i] = (float)((size_t)(4 * me + j) * n + i);
            want[(size_t)j * n + i] = (float)((size_t)(4 * members[j] + mine) * n + i);
        }
    grt_alltoall(g, in, out, n);
    CHECK(same("alltoall", out, want, (size_t)size * n));
    free(in);
    free(out);
    free(want);
}

/* Broadcast from group rank root: everyone ends with root's values. */
static void test_broadcast(GrtComm *g, const int *members, size_t n, int root) {
    float *buf = floats(n), *want = floats(n);
    for (size_t i = 0; i < n; i++) {
        buf[i] = (float)(1000 * me + (int)i);
        want[i] = (float)(1000 * members[root] + (int)i);
    }
    grt_broadcast(g, buf, n, root);
    CHECK(same("broadcast", buf, want, n));
    free(buf);
    free(want);
}

/* Each rank sends to the next around the ring and receives from the one before (blocking, even ranks first). */
static void test_ring(GrtComm *g, const int *members, size_t n) {
    int size = grt_size(g), rank = grt_rank(g), next = (rank + 1) % size, prev = (rank + size - 1) % size;
    float *out = floats(n), *in = floats(n), *want = floats(n);
    for (size_t i = 0; i < n; i++) {
        out[i] = (float)(10 * me + (int)(i % 100));
        want[i] = (float)(10 * members[prev] + (int)(i % 100));
    }
    if (rank % 2 == 0) {
        grt_send(g, out, n, next, 7);
        grt_recv(g, in, n, prev, 7);
    } else {
        grt_recv(g, in, n, prev, 7);
        grt_send(g, out, n, next, 7);
    }
    CHECK(same("send/recv ring", in, want, n));
    free(out);
    free(in);
    free(want);
}

/* The same ring with isend/irecv, both posted before either is waited on. */
static void test_iring(GrtComm *g, const int *members, size_t n) {
    int size = grt_size(g), rank = grt_rank(g), next = (rank + 1) % size, prev = (rank + size - 1) % size;
    float *out = floats(n), *in = floats(n), *want = floats(n);
    for (size_t i = 0; i < n; i++) {
        out[i] = (float)(10 * me + (int)(i % 100));
        want[i] = (float)(10 * members[prev] + (int)(i % 100));
    }
    GrtRequest *rr = grt_irecv(g, in, n, prev, 9);
    GrtRequest *sr = grt_isend(g, out, n, next, 9);
    grt_wait(sr);
    grt_wait(rr);
    CHECK(same("isend/irecv ring", in, want, n));
    free(out);
    free(in);
    free(want);
}

/* Two iallreduces in flight while this rank computes, waited in the reverse order. */
static void test_iallreduce(GrtComm *g, const int *members, size_t n) {
    float *a = floats(n), *b = floats(n), *want_a = floats(n), *want_b = floats(n);
    for (size_t i = 0; i < n; i++) {
        a[i] = (float)(me + 1);
        b[i] = (float)(2 * me + (int)(i % 10));
        for (int r = 0; r < grt_size(g); r++) {
            want_a[i] += (float)(members[r] + 1);
            want_b[i] += (float)(2 * members[r] + (int)(i % 10));
        }
    }
    GrtRequest *ra = grt_iallreduce(g, a, n);
    GrtRequest *rb = grt_iallreduce(g, b, n);
    long long work = 0; /* the computation that overlaps the communication */
    for (long long i = 0; i < 2000000; i++)
        work += i % 7;
    grt_wait(rb);
    grt_wait(ra);
    CHECK_EQ(work, 5999995);
    CHECK(same("iallreduce a", a, want_a, n));
    CHECK(same("iallreduce b", b, want_b, n));
    free(a);
    free(b);
    free(want_a);
    free(want_b);
}

/* Every operation on group g, at sizes 0, 1, 7 and n_large. */
static void test_group(GrtComm *g, const char *what, size_t n_large) {
    int size = grt_size(g);
    int *members = malloc((size_t)size * sizeof *members);
    if (!members) abort();
    members_of(g, members);
    size_t sizes[] = {0, 1, 7, n_large};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        test_allreduce(g, members, n, what);
        test_reduce_scatter(g, members, n);
        test_allgather(g, members, n);
        test_alltoall(g, members, n);
        test_broadcast(g, members, n, size - 1);
        test_broadcast(g, members, n, 0);
        test_ring(g, members, n);
        test_iring(g, members, n);
        test_iallreduce(g, members, n);
    }
    grt_barrier(g);
    free(members);
}

/* The groups: their ranks, sizes and members, then every operation on each. */
static void test_all(GrtComm *world, size_t n_large) {
    int wrank = grt_rank(world);
    test_group(world, "world", n_large);

    GrtComm *pairs = grt_comm_split(world, wrank / 2, wrank); /* {0,1} {2,3} */
    CHECK_EQ(grt_size(pairs), 2);
    CHECK_EQ(grt_rank(pairs), wrank % 2);
    int m[2];
    members_of(pairs, m);
    CHECK_EQ(m[0], wrank / 2 * 2);
    CHECK_EQ(m[1], wrank / 2 * 2 + 1);
    test_group(pairs, "consecutive pairs", n_large);

    GrtComm *strided = grt_comm_split(world, wrank % 2, wrank); /* {0,2} {1,3} */
    CHECK_EQ(grt_size(strided), 2);
    CHECK_EQ(grt_rank(strided), wrank / 2);
    members_of(strided, m);
    CHECK_EQ(m[0], wrank % 2);
    CHECK_EQ(m[1], wrank % 2 + 2);
    test_group(strided, "strided pairs", n_large);

    GrtComm *reversed = grt_comm_split(world, 0, -wrank); /* key orders the group: 3 2 1 0 */
    CHECK_EQ(grt_size(reversed), 4);
    CHECK_EQ(grt_rank(reversed), 3 - wrank);
    test_group(reversed, "reversed world", n_large);

    GrtComm *sub = grt_comm_split(strided, 0, 0); /* a split of a split: the same pair */
    CHECK_EQ(grt_size(sub), 2);
    CHECK_EQ(grt_rank(sub), wrank / 2);
    test_allreduce(sub, m, 5, "split of a split");
}

int main(int argc, char **argv) {
    GrtComm *world = grt_init(&argc, &argv);
    CHECK(world != NULL);
#ifdef TEST_CUDA_BACKEND
    /* host buffers only (no GPU here): every call passes through to MPI's */
    cuda_comm_use(CUDA_COMM_STAGED);
    CHECK(grt_comm_world() == world);
#endif
    CHECK(grt_init(&argc, &argv) == world); /* a second call: the same world */
    me = grt_rank(world);
    CHECK_EQ(grt_size(world), 4);

    test_all(world, 100000); /* one MPI call per operation */
    grt_mpi_set_max_count(3);
    test_all(world, 20); /* chunks of 3: 7 and 20 elements are 3 and 7 MPI calls */
    grt_mpi_set_max_count((size_t)-1);

    return mpi_check_finish(world); /* the sum over every rank decides; rank 0 prints it */
}
