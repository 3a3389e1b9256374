/* comm_mpi.c — the MPI backend of libgalvrt's collectives: grt_mpi_collectives
 * (the data movement) and grt_mpi_backend (start, split, free, stop, abort).
 *
 * Every MPI call goes through MPI_CHECK, and every communicator returns its
 * errors (MPI_ERRORS_RETURN) instead of MPI's default of dying with its own
 * message, so a failure reads "galvrt: rank R: MPI_Xxx failed: <MPI's
 * reason>" and then MPI_Abort takes every rank down with status 1: no rank
 * is left waiting in a collective.
 *
 * MPI counts are int while galvrt sizes are size_t, so a buffer of more than
 * INT_MAX elements goes in chunks of at most max_count elements. Chunked
 * reduce-scatter is one MPI_Reduce per rank of the group (rank i's block of
 * every chunk is reduced to rank i); chunked allgather receives each chunk
 * through a datatype whose extent is the whole block, so chunk k of every
 * rank's block lands in place. The world is a duplicate of MPI_COMM_WORLD,
 * so the runtime's messages never meet anyone else's.
 *
 * A call that never returns (a rank that stopped calling, or is stuck
 * elsewhere) is the watchdog's (watchdog.c): it aborts through mpi_abort
 * from its own thread, and MPI_Abort takes every rank down. */
#include "comm.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

static size_t max_count = INT_MAX; /* elements per MPI call */

/* A started non-blocking operation: one MPI request per chunk. */
struct GrtRequest {
    GrtCall call;    /* first (comm.h): what comm.c's grt_wait tells the watchdog */
    size_t nreq;     /* requests in req */
    size_t n, chunk; /* elements, and elements per request, as posted */
    int recv;        /* grt_irecv: check what arrived */
    MPI_Request req[];
};

/* Report that call (its text, cut at the '(') failed with err, and abort every rank. */
static void mpi_failed(const char *call, int err) {
    char reason[MPI_MAX_ERROR_STRING], msg[MPI_MAX_ERROR_STRING + 64];
    int len = 0;
    if (MPI_Error_string(err, reason, &len) != MPI_SUCCESS) snprintf(reason, sizeof reason, "MPI error %d", err);
    snprintf(msg, sizeof msg, "%.*s failed: %s", (int)strcspn(call, "( "), call, reason);
    grt_abort(msg, 1);
}

#define MPI_CHECK(call)                                                                                                \
    do {                                                                                                               \
        int err_ = (call);                                                                                             \
        if (err_ != MPI_SUCCESS) mpi_failed(#call, err_);                                                              \
    } while (0)

/* The MPI communicator of group c. */
static MPI_Comm mpi_comm(const GrtComm *c) { return *(const MPI_Comm *)grt_comm_impl(c); }

/* Elements in the chunk at off of an n-element buffer cut every chunk elements. */
static int chunk_at(size_t n, size_t off, size_t chunk) { return (int)(n - off < chunk ? n - off : chunk); }

/* The number of chunks of max_count elements in n. */
static size_t chunks(size_t n) { return n ? (n - 1) / max_count + 1 : 0; }

/* Memory or the end of the job. */
static void *xmalloc(size_t size) {
    void *p = malloc(size);
    if (!p) grt_abort("out of memory", 1);
    return p;
}

/* Test hook (comm.h): elements per MPI call, 1 ... INT_MAX. */
void grt_mpi_set_max_count(size_t n) { max_count = n < 1 ? 1 : n > INT_MAX ? INT_MAX : n; }

/* ---- the collectives ------------------------------------------------------- */

/* Bytes per MPI_Allreduce call. Open MPI's all-reduce of one large buffer
 * runs at less than half the bus bandwidth of the same bytes in 1 MiB pieces
 * (two ranks on one node: 152 MiB at 1.8 GB/s whole, 3.5 in 16 MiB pieces,
 * 4.1 in 1 MiB), and in pieces a step's time grows with its bytes as the
 * cost model's latency + bytes / bandwidth says. */
#define ALLREDUCE_PIECE ((size_t)1 << 20)

/* buf (n) of type t (size elsize bytes) = sum over c, in place, piece by piece. */
static void allreduce_typed(GrtComm *c, void *buf, size_t n, MPI_Datatype t, size_t elsize) {
    MPI_Comm comm = mpi_comm(c);
    size_t piece = ALLREDUCE_PIECE / elsize < max_count ? ALLREDUCE_PIECE / elsize : max_count;
    for (size_t off = 0; off < n; off += piece)
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * elsize, chunk_at(n, off, piece), t, MPI_SUM, comm));
}

/* buf (n) = sum over c of buf (n). */
static void mpi_allreduce(GrtComm *c, float *buf, size_t n) { allreduce_typed(c, buf, n, MPI_FLOAT, sizeof *buf); }

/* buf (n) = sum over c of buf (n), doubles. */
static void mpi_allreduce_double(GrtComm *c, double *buf, size_t n) {
    allreduce_typed(c, buf, n, MPI_DOUBLE, sizeof *buf);
}

/* out (n) = block rank of sum over c of in (size * n). */
static void mpi_reduce_scatter(GrtComm *c, const float *in, float *out, size_t n) {
    MPI_Comm comm = mpi_comm(c);
    int size = grt_size(c);
    if ((size_t)size * n <= max_count) {
        /* an all-reduce into a scratch copy, then this rank's block: Open
         * MPI's all-reduce is its best-tuned collective, and both of its
         * reduce-scatters measured several times slower here (the _block
         * form reduces then scatters; the other stalls when ranks share
         * cores) for the parameter-sized blocks ZeRO-3 reduces */
        static float *scratch;
        static size_t cap;
        size_t total = (size_t)size * n;
        if (total > cap) {
            free(scratch);
            scratch = malloc(sizeof(float) * total);
            if (!scratch) grt_abort("out of memory", 1);
            cap = total;
        }
        MPI_CHECK(MPI_Allreduce(in, scratch, (int)total, MPI_FLOAT, MPI_SUM, comm));
        memcpy(out, scratch + (size_t)grt_rank(c) * n, sizeof(float) * n);
        return;
    }
    for (size_t off = 0; off < n; off += max_count)
        for (int r = 0; r < size; r++)
            MPI_CHECK(MPI_Reduce(in + (size_t)r * n + off, out + off, chunk_at(n, off, max_count), MPI_FLOAT, MPI_SUM,
                                 r, comm));
}

/* out (size * n) = in (n) of every rank of c, in rank order; in may be this
 * rank's own block of out (in place). */
static void mpi_allgather(GrtComm *c, const float *in, float *out, size_t n) {
    MPI_Comm comm = mpi_comm(c);
    int in_place = in == out + (size_t)grt_rank(c) * n;
    if (n <= max_count) {
        MPI_CHECK(MPI_Allgather(in_place ? MPI_IN_PLACE : in, (int)n, MPI_FLOAT, out, (int)n, MPI_FLOAT, comm));
        return;
    }
    for (size_t off = 0; off < n; off += max_count) {
        int k = chunk_at(n, off, max_count);
        MPI_Datatype piece, strided; /* k floats, then a stride of one whole block (n floats) */
        MPI_CHECK(MPI_Type_contiguous(k, MPI_FLOAT, &piece));
        MPI_CHECK(MPI_Type_create_resized(piece, 0, (MPI_Aint)(n * sizeof *out), &strided));
        MPI_CHECK(MPI_Type_commit(&strided));
        MPI_CHECK(MPI_Allgather(in_place ? MPI_IN_PLACE : in + off, k, MPI_FLOAT, out + off, 1, strided, comm));
        MPI_CHECK(MPI_Type_free(&strided));
        MPI_CHECK(MPI_Type_free(&piece));
    }
}

/* out block j (n) = block r (n) of rank j's in, r this rank; in and out
 * size * n each, apart. Chunks as mpi_allgather's: k floats a block, strided
 * by the whole block on both sides. */
static void mpi_alltoall(GrtComm *c, const float *in, float *out, size_t n) {
    MPI_Comm comm = mpi_comm(c);
    if (n <= max_count) {
        MPI_CHECK(MPI_Alltoall(in, (int)n, MPI_FLOAT, out, (int)n, MPI_FLOAT, comm));
        return;
    }
    for (size_t off = 0; off < n; off += max_count) {
        int k = chunk_at(n, off, max_count);
        MPI_Datatype piece, strided;
        MPI_CHECK(MPI_Type_contiguous(k, MPI_FLOAT, &piece));
        MPI_CHECK(MPI_Type_create_resized(piece, 0, (MPI_Aint)(n * sizeof *out), &strided));
        MPI_CHECK(MPI_Type_commit(&strided));
        MPI_CHECK(MPI_Alltoall(in + off, 1, strided, out + off, 1, strided, comm));
        MPI_CHECK(MPI_Type_free(&strided));
        MPI_CHECK(MPI_Type_free(&piece));
    }
}

/* buf (n) = root's buf (n). */
static void mpi_broadcast(GrtComm *c, float *buf, size_t n, int root) {
    MPI_Comm comm = mpi_comm(c);
    for (size_t off = 0; off < n; off += max_count)
        MPI_CHECK(MPI_Bcast(buf + off, chunk_at(n, off, max_count), MPI_FLOAT, root, comm));
}

/* Send buf (n) to peer, chunk by chunk (MPI keeps their order). */
static void mpi_send(GrtComm *c, const float *buf, size_t n, int peer, int tag) {
    MPI_Comm comm = mpi_comm(c);
    for (size_t off = 0; off < n; off += max_count)
        MPI_CHECK(MPI_Send(buf + off, chunk_at(n, off, max_count), MPI_FLOAT, peer, tag, comm));
}

/* Aborts unless the message behind st held exactly want floats (a shorter one is no MPI error). */
static void check_received(MPI_Status *st, int want) {
    int got = 0;
    MPI_CHECK(MPI_Get_count(st, MPI_FLOAT, &got));
    if (got != want) {
        char msg[160];
        snprintf(msg, sizeof msg, "grt_recv: received %d floats from rank %d (tag %d), expected %d", got,
                 st->MPI_SOURCE, st->MPI_TAG, want);
        grt_abort(msg, 1);
    }
}

/* Receive exactly n floats from peer into buf. */
static void mpi_recv(GrtComm *c, float *buf, size_t n, int peer, int tag) {
    MPI_Comm comm = mpi_comm(c);
    for (size_t off = 0; off < n; off += max_count) {
        MPI_Status st;
        int k = chunk_at(n, off, max_count);
        MPI_CHECK(MPI_Recv(buf + off, k, MPI_FLOAT, peer, tag, comm, &st));
        check_received(&st, k);
    }
}

/* Every rank of c has arrived. */
static void mpi_barrier(GrtComm *c) { MPI_CHECK(MPI_Barrier(mpi_comm(c))); }

/* A request for n elements, one MPI request per chunk. */
static GrtRequest *request_new(size_t n, int recv) {
    size_t k = chunks(n);
    GrtRequest *r = xmalloc(sizeof *r + k * sizeof r->req[0]);
    r->nreq = k;
    r->n = n;
    r->chunk = max_count;
    r->recv = recv;
    return r;
}

/* Start buf (n) = sum over c of buf (n). */
static GrtRequest *mpi_iallreduce(GrtComm *c, float *buf, size_t n) {
    MPI_Comm comm = mpi_comm(c);
    GrtRequest *r = request_new(n, 0);
    for (size_t i = 0, off = 0; i < r->nreq; i++, off += r->chunk)
        MPI_CHECK(
            MPI_Iallreduce(MPI_IN_PLACE, buf + off, chunk_at(n, off, r->chunk), MPI_FLOAT, MPI_SUM, comm, &r->req[i]));
    return r;
}

/* Start sending buf (n) to peer. */
static GrtRequest *mpi_isend(GrtComm *c, const float *buf, size_t n, int peer, int tag) {
    MPI_Comm comm = mpi_comm(c);
    GrtRequest *r = request_new(n, 0);
    for (size_t i = 0, off = 0; i < r->nreq; i++, off += r->chunk)
        MPI_CHECK(MPI_Isend(buf + off, chunk_at(n, off, r->chunk), MPI_FLOAT, peer, tag, comm, &r->req[i]));
    return r;
}

/* Start receiving n floats from peer into buf. */
static GrtRequest *mpi_irecv(GrtComm *c, float *buf, size_t n, int peer, int tag) {
    MPI_Comm comm = mpi_comm(c);
    GrtRequest *r = request_new(n, 1);
    for (size_t i = 0, off = 0; i < r->nreq; i++, off += r->chunk)
        MPI_CHECK(MPI_Irecv(buf + off, chunk_at(n, off, r->chunk), MPI_FLOAT, peer, tag, comm, &r->req[i]));
    return r;
}

/* Complete every chunk of r (checking what a receive got), then free r. */
static void mpi_wait(GrtRequest *r) {
    for (size_t i = 0; i < r->nreq; i++) {
        MPI_Status st;
        MPI_CHECK(MPI_Wait(&r->req[i], &st));
        if (r->recv) check_received(&st, chunk_at(r->n, i * r->chunk, r->chunk));
    }
    free(r);
}

const GrtCollectives grt_mpi_collectives = {
    .name = "mpi",
    .allreduce = mpi_allreduce,
    .allreduce_double = mpi_allreduce_double,
    .reduce_scatter = mpi_reduce_scatter,
    .allgather = mpi_allgather,
    .alltoall = mpi_alltoall,
    .broadcast = mpi_broadcast,
    .send = mpi_send,
    .recv = mpi_recv,
    .barrier = mpi_barrier,
    .iallreduce = mpi_iallreduce,
    .isend = mpi_isend,
    .irecv = mpi_irecv,
    .wait = mpi_wait,
};

/* ---- the life cycle --------------------------------------------------------- */

/* An MPI_Comm that returns its errors to MPI_CHECK, kept on the heap as a handle. */
static MPI_Comm *handle_of(MPI_Comm comm) {
    MPI_Comm *h = xmalloc(sizeof *h);
    *h = comm;
    MPI_CHECK(MPI_Comm_set_errhandler(*h, MPI_ERRORS_RETURN));
    return h;
}

/* MPI_Init_thread; the world is a duplicate of MPI_COMM_WORLD. The main
 * thread makes every call but one: the watchdog's thread calls MPI_Abort
 * while the main thread is inside MPI, which MPI allows only under
 * MPI_THREAD_MULTIPLE (Open MPI's show-help output to mpirun comes out
 * garbled otherwise; the abort itself goes to the launcher either way). An
 * MPI without it still runs, its watchdog's abort on a best-effort basis. */
static void *mpi_init(int *argc, char ***argv, int *rank, int *size) {
    int provided = 0;
    MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided));
    MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    if (provided < MPI_THREAD_FUNNELED) grt_abort("MPI_Init_thread: this MPI does not provide MPI_THREAD_FUNNELED", 1);
    MPI_Comm world;
    MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &world));
    MPI_Comm *h = handle_of(world);
    MPI_CHECK(MPI_Comm_rank(*h, rank));
    MPI_CHECK(MPI_Comm_size(*h, size));
    return h;
}

/* MPI_Comm_split of the handle's communicator. */
static void *mpi_split(void *handle, int color, int key, int *rank, int *size) {
    MPI_Comm part;
    MPI_CHECK(MPI_Comm_split(*(MPI_Comm *)handle, color, key, &part));
    MPI_Comm *h = handle_of(part);
    MPI_CHECK(MPI_Comm_rank(*h, rank));
    MPI_CHECK(MPI_Comm_size(*h, size));
    return h;
}

/* The world ranks of the ranks of handle's communicator, in its order. */
static void mpi_members(void *world, void *handle, int size, int *out) {
    MPI_Group w, g;
    int *ranks = xmalloc(sizeof(int) * (size_t)size);
    for (int r = 0; r < size; r++) ranks[r] = r;
    MPI_CHECK(MPI_Comm_group(*(MPI_Comm *)world, &w));
    MPI_CHECK(MPI_Comm_group(*(MPI_Comm *)handle, &g));
    MPI_CHECK(MPI_Group_translate_ranks(g, size, ranks, w, out));
    MPI_CHECK(MPI_Group_free(&g));
    MPI_CHECK(MPI_Group_free(&w));
    free(ranks);
}

/* MPI_Comm_free, and the handle. */
static void mpi_free(void *handle) {
    MPI_CHECK(MPI_Comm_free((MPI_Comm *)handle));
    free(handle);
}

/* MPI_Finalize. */
static void mpi_finalize(void) { MPI_CHECK(MPI_Finalize()); }

/* MPI_Abort on the world while MPI runs; otherwise only this process can go.
 * The one place MPI calls skip MPI_CHECK: a failure here would come back here. */
static void mpi_abort(int status) {
    int started = 0, finished = 0;
    MPI_Initialized(&started);
    MPI_Finalized(&finished);
    if (started && !finished) MPI_Abort(MPI_COMM_WORLD, status);
    exit(status);
}

const GrtBackend grt_mpi_backend = {
    .coll = &grt_mpi_collectives,
    .init = mpi_init,
    .split = mpi_split,
    .members = mpi_members,
    .free = mpi_free,
    .finalize = mpi_finalize,
    .abort = mpi_abort,
};
