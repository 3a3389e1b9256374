/* comm_cuda.c — the CUDA target's collectives, a backend of comm.h layered
 * on the MPI one: grt_cuda_backend takes over from MPI's once the rank's
 * GPU is started (cuda_comm_start, from grt_cuda_start).
 *
 * Where each call goes: a call whose buffers are all device memory (the
 * arena, cuda_on_device) runs on NCCL when the ranks have a GPU each;
 * with two ranks on one GPU (NCCL refuses them; comm_choice.c) it runs on
 * MPI, its device buffers copied through pinned host memory on the
 * communication stream. A call on host buffers (the loss, the gradient
 * norm, the start-up checks, --dump's gathers) is MPI's as on the CPU
 * target; a call mixing the two is staged.
 *
 * Order: the communication stream waits for what the compute stream has
 * queued (an event), the collective runs there, and the compute stream
 * waits for it before its next work (another event). Every call returns
 * when its data is in place (the host polls the stream and NCCL's error
 * state), so the watchdog (watchdog.c) sees a stuck NCCL call exactly as it
 * sees a stuck MPI one. The DP gradient reduction is therefore not
 * overlapped with backward yet.
 *
 * NCCL: one communicator per group of more than one rank (TP, DP, the tied
 * table's) and one for the world (the pipeline's sends), made when the
 * group is split: rank 0 of the group gets an ncclUniqueId, MPI broadcasts
 * it over the group, every rank calls ncclCommInitRankConfig. They are
 * non-blocking (config.blocking = 0), so no NCCL call keeps the main
 * thread from its polling, and the abort (the watchdog's or an error's)
 * calls ncclCommAbort on every communicator before MPI_Abort: a kernel
 * stuck on the GPU would not let MPI_Abort's caller go otherwise.
 *
 * Point to point under NCCL: NCCL matches sends and receives in order per
 * pair of ranks (it has no tags; the program's transfers between two ranks
 * arrive in the order sent), and a send on a stream does not complete
 * before its peer posts the receive. So a send is not posted alone: sends
 * and receives are kept pending and posted together, in one
 * ncclGroupStart/End, at the next blocking send or receive, the next wait
 * on a request or a barrier, which then waits for all of them. A pipeline
 * stage reaches one of those before it waits on its peer (it receives or
 * drains its sends), as under MPI's isend. Staged, they are MPI's, from a
 * pinned copy each. */
#include "../comm.h"
#include "cuda_device.h"

#include <mpi.h>
#include <nccl.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A group: MPI's communicator first (comm.h: the MPI backend's functions
 * take this handle as theirs), and its NCCL communicator when NCCL runs. */
typedef struct CudaComm {
    MPI_Comm mpi;
    ncclComm_t nccl;       /* NULL: staged (or a group of one rank) */
    struct CudaComm *next; /* the live communicators, for the abort */
} CudaComm;

/* A request: MPI's (on the host buffer or a pinned copy), or NCCL's pending transfer. */
struct GrtRequest {
    GrtCall call;     /* first (comm.h) */
    GrtRequest *mpi;  /* MPI's request; NULL for NCCL (or an iallreduce already done) */
    void *host;       /* staged: the pinned copy */
    size_t bytes;
    float *dst;       /* a staged receive's device buffer */
    int done;         /* NCCL: posted and complete */
};

/* A transfer waiting to be posted with the next group of them. */
typedef struct Pending {
    int send, peer;
    float *buf;
    size_t n;
    ncclComm_t comm;
    GrtRequest *req; /* marked done once posted and complete; NULL for a blocking call */
} Pending;

static CudaCommKind kind;
static int splitting_world;      /* the world gets an NCCL communicator even of one rank */
static int nccl_every_group;     /* GALVRT_NCCL=1: so does every group of one rank (the GPU check's 1-rank NCCL row) */
static CudaComm *live;           /* newest first */
static atomic_int aborting;      /* set by cc_abort: the main thread stops polling */
static Pending *pending;
static int n_pending, cap_pending;
static void *stage;              /* pinned: the staged collectives' copies */
static size_t stage_bytes;
static struct Pinned {           /* pinned copies of staged isend/irecv, reused */
    void *p;
    size_t cap;
    int used;
} *pinned;
static int n_pinned;

/* ---- checks ------------------------------------------------------------------ */

static _Noreturn void nccl_fail(const char *call, ncclResult_t r, const char *file, int line) {
    char msg[768];
    const char *last = ncclGetLastError(NULL);
    snprintf(msg, sizeof msg, "%s failed: %s%s%s (%s:%d)", call, ncclGetErrorString(r), last && *last ? ": " : "",
             last ? last : "", file, line);
    grt_abort(msg, 1);
}
/* ncclInProgress is no failure: a non-blocking communicator finishes the call later (wait_queued). */
#define NCCL_CHECK(call)                                                                                              \
    do {                                                                                                              \
        ncclResult_t r_ = (call);                                                                                     \
        if (r_ != ncclSuccess && r_ != ncclInProgress) nccl_fail(#call, r_, __FILE__, __LINE__);                      \
    } while (0)

static _Noreturn void mpi_fail(const char *call, int err) {
    char reason[MPI_MAX_ERROR_STRING], msg[MPI_MAX_ERROR_STRING + 96];
    int len = 0;
    if (MPI_Error_string(err, reason, &len) != MPI_SUCCESS) snprintf(reason, sizeof reason, "MPI error %d", err);
    snprintf(msg, sizeof msg, "%s failed: %s", call, reason);
    grt_abort(msg, 1);
}
#define MPI_CHECK(call)                                                                                               \
    do {                                                                                                              \
        int e_ = (call);                                                                                              \
        if (e_ != MPI_SUCCESS) mpi_fail(#call, e_);                                                                   \
    } while (0)

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    if (!p) grt_abort("out of memory", 1);
    return p;
}

/* ---- waiting on the GPU --------------------------------------------------------- */

/* Between two looks: give the core away; once the job is being aborted,
 * stay here, so that no NCCL call of this thread meets ncclCommAbort. */
static void pause_briefly(void) {
    while (atomic_load(&aborting)) pause();
    sched_yield();
}

/* Until comm has queued every call made on it (a non-blocking communicator
 * may still be setting one up); its error, if any, stops every rank. */
static void wait_queued(ncclComm_t comm) {
    ncclResult_t r = ncclInProgress;
    for (;;) {
        NCCL_CHECK(ncclCommGetAsyncError(comm, &r));
        if (r == ncclSuccess) return;
        if (r != ncclInProgress) nccl_fail("an NCCL operation (ncclCommGetAsyncError)", r, __FILE__, __LINE__);
        pause_briefly();
    }
}

/* Until the communication stream has run everything queued on it, watching comm's errors meanwhile. */
static void wait_stream(ncclComm_t comm) {
    for (;;) {
        cudaError_t e = cudaStreamQuery(cuda.comm);
        if (e == cudaSuccess) return;
        if (e != cudaErrorNotReady) cuda_fail("cudaStreamQuery(cuda.comm)", cudaGetErrorString(e), __FILE__, __LINE__);
        ncclResult_t r = ncclSuccess;
        if (comm) NCCL_CHECK(ncclCommGetAsyncError(comm, &r));
        if (r != ncclSuccess && r != ncclInProgress) nccl_fail("an NCCL operation (ncclCommGetAsyncError)", r, __FILE__, __LINE__);
        pause_briefly();
    }
}

/* The NCCL call `call` on comm, after the compute stream's work so far and
 * before its next; returns when it has run. */
#define ON_COMM_STREAM(comm, call)                                                                                    \
    do {                                                                                                              \
        cuda_comm_waits_compute();                                                                                    \
        NCCL_CHECK(call);                                                                                             \
        wait_queued(comm);                                                                                            \
        wait_stream(comm);                                                                                            \
        cuda_compute_waits_comm();                                                                                    \
    } while (0)

/* ---- staging through pinned host memory ---------------------------------------------- */

/* The staged collectives' pinned buffer, at least bytes long (grown, never shrunk). */
static void *staging(size_t bytes) {
    if (bytes > stage_bytes) {
        if (stage) CUDA_CHECK(cudaFreeHost(stage));
        stage = NULL;
        CUDA_CHECK(cudaHostAlloc(&stage, bytes, cudaHostAllocDefault));
        stage_bytes = bytes;
    }
    return stage;
}

/* host = dev (bytes), after the compute stream's work so far; there when it returns. */
static void copy_down(void *host, const void *dev, size_t bytes) {
    if (!bytes) return;
    cuda_comm_waits_compute();
    CUDA_CHECK(cudaMemcpyAsync(host, dev, bytes, cudaMemcpyDeviceToHost, cuda.comm));
    CUDA_CHECK(cudaStreamSynchronize(cuda.comm));
}

/* dev = host (bytes), after the compute stream's work so far (which may still
 * read dev, or zero it: a new arena chunk's memset) and before its next; host
 * may be reused when it returns. */
static void copy_up(void *dev, const void *host, size_t bytes) {
    if (!bytes) return;
    cuda_comm_waits_compute();
    CUDA_CHECK(cudaMemcpyAsync(dev, host, bytes, cudaMemcpyHostToDevice, cuda.comm));
    CUDA_CHECK(cudaStreamSynchronize(cuda.comm));
    cuda_compute_waits_comm();
}

/* A pinned buffer of at least bytes for one transfer in flight. */
static struct Pinned *pinned_get(size_t bytes) {
    for (int i = 0; i < n_pinned; i++)
        if (!pinned[i].used && pinned[i].cap >= bytes) {
            pinned[i].used = 1;
            return &pinned[i];
        }
    struct Pinned *more = realloc(pinned, sizeof *pinned * (size_t)(n_pinned + 1));
    if (!more) grt_abort("out of memory", 1);
    pinned = more;
    struct Pinned *p = &pinned[n_pinned++];
    *p = (struct Pinned){.cap = bytes ? bytes : 1, .used = 1};
    CUDA_CHECK(cudaHostAlloc(&p->p, p->cap, cudaHostAllocDefault));
    return p;
}

static void pinned_put(void *host) {
    for (int i = 0; i < n_pinned; i++)
        if (pinned[i].p == host) pinned[i].used = 0;
}

/* ---- the collectives ------------------------------------------------------------ */

static CudaComm *handle(const GrtComm *c) { return grt_comm_impl(c); }

/* NCCL's communicator for a call on c whose buffers are a and b (b NULL: a only), or NULL: MPI's. */
static ncclComm_t nccl_for(const GrtComm *c, const void *a, const void *b) {
    ncclComm_t comm = handle(c)->nccl;
    return comm && cuda_on_device(a) && (!b || cuda_on_device(b)) ? comm : NULL;
}

/* buf (n elements of elsize bytes) = sum over c: NCCL, MPI, or MPI on a pinned copy. */
static void allreduce_any(GrtComm *c, void *buf, size_t n, size_t elsize, ncclDataType_t t) {
    ncclComm_t comm = nccl_for(c, buf, NULL);
    if (comm) {
        ON_COMM_STREAM(comm, ncclAllReduce(buf, buf, n, t, ncclSum, comm, cuda.comm));
        return;
    }
    int dev = cuda_on_device(buf);
    void *h = dev ? staging(n * elsize) : buf;
    if (dev) copy_down(h, buf, n * elsize);
    if (t == ncclDouble) grt_mpi_collectives.allreduce_double(c, h, n);
    else grt_mpi_collectives.allreduce(c, h, n);
    if (dev) copy_up(buf, h, n * elsize);
}

static void cc_allreduce(GrtComm *c, float *buf, size_t n) { allreduce_any(c, buf, n, sizeof *buf, ncclFloat); }

static void cc_allreduce_double(GrtComm *c, double *buf, size_t n) {
    allreduce_any(c, buf, n, sizeof *buf, ncclDouble);
}

/* out (n) = block rank of the sum over c of in (size * n). */
static void cc_reduce_scatter(GrtComm *c, const float *in, float *out, size_t n) {
    ncclComm_t comm = nccl_for(c, in, out);
    if (comm) {
        ON_COMM_STREAM(comm, ncclReduceScatter(in, out, n, ncclFloat, ncclSum, comm, cuda.comm));
        return;
    }
    size_t all = (size_t)grt_size(c) * n;
    int din = cuda_on_device(in), dout = cuda_on_device(out);
    float *s = din || dout ? staging(sizeof(float) * (all + n)) : NULL;
    const float *hin = din ? s : in;
    float *hout = dout ? s + all : out;
    if (din) copy_down(s, in, sizeof(float) * all);
    grt_mpi_collectives.reduce_scatter(c, hin, hout, n);
    if (dout) copy_up(out, hout, sizeof(float) * n);
}

/* out (size * n) = every rank's in (n), in rank order; in may be this rank's block of out. */
static void cc_allgather(GrtComm *c, const float *in, float *out, size_t n) {
    ncclComm_t comm = nccl_for(c, in, out);
    if (comm) {
        ON_COMM_STREAM(comm, ncclAllGather(in, out, n, ncclFloat, comm, cuda.comm));
        return;
    }
    size_t all = (size_t)grt_size(c) * n, mine = (size_t)grt_rank(c) * n;
    int in_place = in == out + mine, din = cuda_on_device(in), dout = cuda_on_device(out);
    float *s = din || dout ? staging(sizeof(float) * (all + n)) : NULL;
    float *hout = dout ? s : out;
    const float *hin = in_place ? hout + mine : din ? s + all : in;
    if (din) copy_down((float *)hin, in, sizeof(float) * n);
    grt_mpi_collectives.allgather(c, hin, hout, n);
    if (dout) copy_up(out, hout, sizeof(float) * all);
}

/* NCCL has no all-to-all: one send and one receive a peer in a group (NCCL's
 * documented pattern), block j of in to rank j, rank j's into block j of out. */
static ncclResult_t nccl_alltoall(const float *in, float *out, size_t n, int size, ncclComm_t comm) {
    ncclResult_t r = ncclGroupStart();
    for (int j = 0; j < size && (r == ncclSuccess || r == ncclInProgress); j++) {
        r = ncclSend(in + (size_t)j * n, n, ncclFloat, j, comm, cuda.comm);
        if (r == ncclSuccess || r == ncclInProgress) r = ncclRecv(out + (size_t)j * n, n, ncclFloat, j, comm, cuda.comm);
    }
    ncclResult_t end = ncclGroupEnd();
    return r == ncclSuccess || r == ncclInProgress ? end : r;
}

/* out block j (n) = block r of rank j's in (size * n), r this rank. */
static void cc_alltoall(GrtComm *c, const float *in, float *out, size_t n) {
    ncclComm_t comm = nccl_for(c, in, out);
    int size = grt_size(c);
    if (comm) {
        ON_COMM_STREAM(comm, nccl_alltoall(in, out, n, size, comm));
        return;
    }
    size_t all = (size_t)size * n;
    int din = cuda_on_device(in), dout = cuda_on_device(out);
    float *s = din || dout ? staging(sizeof(float) * 2 * all) : NULL;
    const float *hin = din ? s : in;
    float *hout = dout ? s + all : out;
    if (din) copy_down(s, in, sizeof(float) * all);
    grt_mpi_collectives.alltoall(c, hin, hout, n);
    if (dout) copy_up(out, hout, sizeof(float) * all);
}

/* buf (n) = root's buf (n). */
static void cc_broadcast(GrtComm *c, float *buf, size_t n, int root) {
    ncclComm_t comm = nccl_for(c, buf, NULL);
    if (comm) {
        ON_COMM_STREAM(comm, ncclBroadcast(buf, buf, n, ncclFloat, root, comm, cuda.comm));
        return;
    }
    int dev = cuda_on_device(buf);
    float *h = dev ? staging(sizeof(float) * n) : buf;
    if (dev && grt_rank(c) == root) copy_down(h, buf, sizeof(float) * n);
    grt_mpi_collectives.broadcast(c, h, n, root);
    if (dev) copy_up(buf, h, sizeof(float) * n);
}

/* Post every pending transfer in one NCCL group, after the compute stream's
 * work so far, and wait until all have run; their requests are then done. */
static void flush(void) {
    if (!n_pending) return;
    cuda_comm_waits_compute();
    NCCL_CHECK(ncclGroupStart());
    for (int i = 0; i < n_pending; i++) {
        Pending *x = &pending[i];
        if (x->send) NCCL_CHECK(ncclSend(x->buf, x->n, ncclFloat, x->peer, x->comm, cuda.comm));
        else NCCL_CHECK(ncclRecv(x->buf, x->n, ncclFloat, x->peer, x->comm, cuda.comm));
    }
    NCCL_CHECK(ncclGroupEnd());
    for (int i = 0; i < n_pending; i++) wait_queued(pending[i].comm);
    wait_stream(pending[0].comm);
    cuda_compute_waits_comm();
    for (int i = 0; i < n_pending; i++)
        if (pending[i].req) pending[i].req->done = 1;
    n_pending = 0;
}

/* A transfer kept for the next flush. */
static void add_pending(int send, ncclComm_t comm, const float *buf, size_t n, int peer, GrtRequest *req) {
    if (n_pending == cap_pending) {
        int cap = cap_pending ? 2 * cap_pending : 16;
        Pending *more = realloc(pending, sizeof *pending * (size_t)cap);
        if (!more) grt_abort("out of memory", 1);
        pending = more, cap_pending = cap;
    }
    pending[n_pending++] = (Pending){.send = send, .peer = peer, .buf = (float *)buf, .n = n, .comm = comm, .req = req};
}

static void cc_send(GrtComm *c, const float *buf, size_t n, int peer, int tag) {
    ncclComm_t comm = nccl_for(c, buf, NULL);
    if (comm) {
        add_pending(1, comm, buf, n, peer, NULL);
        flush();
        return;
    }
    int dev = cuda_on_device(buf);
    float *h = dev ? staging(sizeof(float) * n) : (float *)buf;
    if (dev) copy_down(h, buf, sizeof(float) * n);
    grt_mpi_collectives.send(c, h, n, peer, tag);
}

static void cc_recv(GrtComm *c, float *buf, size_t n, int peer, int tag) {
    ncclComm_t comm = nccl_for(c, buf, NULL);
    if (comm) {
        add_pending(0, comm, buf, n, peer, NULL);
        flush();
        return;
    }
    int dev = cuda_on_device(buf);
    float *h = dev ? staging(sizeof(float) * n) : buf;
    grt_mpi_collectives.recv(c, h, n, peer, tag);
    if (dev) copy_up(buf, h, sizeof(float) * n);
}

/* Every rank of c has arrived, with this rank's pending transfers done. */
static void cc_barrier(GrtComm *c) {
    flush();
    grt_mpi_collectives.barrier(c);
}

/* A started send or receive of buf (n) with peer: NCCL's pending one, MPI's, or MPI's on a pinned copy. */
static GrtRequest *start(GrtComm *c, int send, float *buf, size_t n, int peer, int tag) {
    GrtRequest *r = xcalloc(1, sizeof *r);
    ncclComm_t comm = nccl_for(c, buf, NULL);
    if (comm) {
        add_pending(send, comm, buf, n, peer, r);
        return r;
    }
    float *h = buf;
    r->bytes = sizeof(float) * n;
    if (cuda_on_device(buf)) {
        struct Pinned *p = pinned_get(r->bytes);
        r->host = h = p->p;
        if (send) copy_down(h, buf, r->bytes);
        else r->dst = buf;
    }
    r->mpi = send ? grt_mpi_collectives.isend(c, h, n, peer, tag) : grt_mpi_collectives.irecv(c, h, n, peer, tag);
    return r;
}

static GrtRequest *cc_isend(GrtComm *c, const float *buf, size_t n, int peer, int tag) {
    return start(c, 1, (float *)buf, n, peer, tag);
}

static GrtRequest *cc_irecv(GrtComm *c, float *buf, size_t n, int peer, int tag) { return start(c, 0, buf, n, peer, tag); }

/* Not overlapped: the all-reduce runs now, and its request is complete. */
static GrtRequest *cc_iallreduce(GrtComm *c, float *buf, size_t n) {
    cc_allreduce(c, buf, n);
    GrtRequest *r = xcalloc(1, sizeof *r);
    r->done = 1;
    return r;
}

static void cc_wait(GrtRequest *r) {
    if (!r->mpi && !r->done) flush(); /* NCCL's: posts it with every other pending one */
    if (r->mpi) grt_mpi_collectives.wait(r->mpi);
    if (r->dst) copy_up(r->dst, r->host, r->bytes);
    if (r->host) pinned_put(r->host);
    free(r);
}

static const GrtCollectives cuda_collectives = {
    .name = "nccl",
    .allreduce = cc_allreduce,
    .allreduce_double = cc_allreduce_double,
    .reduce_scatter = cc_reduce_scatter,
    .allgather = cc_allgather,
    .alltoall = cc_alltoall,
    .broadcast = cc_broadcast,
    .send = cc_send,
    .recv = cc_recv,
    .barrier = cc_barrier,
    .iallreduce = cc_iallreduce,
    .isend = cc_isend,
    .irecv = cc_irecv,
    .wait = cc_wait,
};

/* ---- the life cycle ----------------------------------------------------------------- */

/* The group's NCCL communicator: rank 0 makes the id, MPI takes it to the others, all join. */
static ncclComm_t nccl_join(MPI_Comm mpi, int rank, int size) {
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    if (rank == 0) NCCL_CHECK(ncclGetUniqueId(&id));
    MPI_CHECK(MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, mpi));
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ncclComm_t comm = NULL;
    NCCL_CHECK(ncclCommInitRankConfig(&comm, size, id, rank, &config));
    wait_queued(comm);
    return comm;
}

/* MPI's split, its handle's MPI_Comm kept in ours; then the group's NCCL communicator. */
static void *cc_split(void *parent, int color, int key, int *rank, int *size) {
    MPI_Comm *m = grt_mpi_backend.split(parent, color, key, rank, size); /* reads parent's first field */
    CudaComm *h = xcalloc(1, sizeof *h);
    h->mpi = *m;
    free(m); /* the box, not the communicator */
    if (kind == CUDA_COMM_NCCL && (*size > 1 || splitting_world || nccl_every_group))
        h->nccl = nccl_join(h->mpi, *rank, *size);
    h->next = live;
    live = h;
    return h;
}

static void cc_members(void *world, void *handle, int size, int *out) {
    grt_mpi_backend.members(world, handle, size, out);
}

/* The NCCL communicator finalized (its work flushed) and destroyed, then MPI's and the handle. */
static void cc_free(void *handle) {
    CudaComm *h = handle;
    for (CudaComm **p = &live; *p; p = &(*p)->next)
        if (*p == h) {
            *p = h->next;
            break;
        }
    if (h->nccl) {
        NCCL_CHECK(ncclCommFinalize(h->nccl));
        wait_queued(h->nccl);
        NCCL_CHECK(ncclCommDestroy(h->nccl));
    }
    grt_mpi_backend.free(h); /* MPI_Comm_free of its first field, and free(h) */
}

static void cc_finalize(void) {
    for (int i = 0; i < n_pinned; i++) CUDA_CHECK(cudaFreeHost(pinned[i].p));
    free(pinned);
    pinned = NULL, n_pinned = 0;
    if (stage) CUDA_CHECK(cudaFreeHost(stage));
    stage = NULL, stage_bytes = 0;
    free(pending);
    pending = NULL, n_pending = cap_pending = 0;
    grt_mpi_backend.finalize();
}

/* Every NCCL communicator aborted (its kernels stopped), then MPI_Abort.
 * The main thread, if polling, parks first (pause_briefly); 100 ms lets it. */
static void cc_abort(int status) {
    if (!atomic_exchange(&aborting, 1)) {
        nanosleep(&(struct timespec){.tv_nsec = 100000000}, NULL);
        for (CudaComm *h = live; h; h = h->next)
            if (h->nccl) ncclCommAbort(h->nccl); /* no check: this is already the way out */
    }
    grt_mpi_backend.abort(status);
}

/* Started by grt_comm_use on the MPI backend's world (init is never called). */
static const GrtBackend grt_cuda_backend = {
    .coll = &cuda_collectives,
    .init = NULL,
    .split = cc_split,
    .members = cc_members,
    .free = cc_free,
    .finalize = cc_finalize,
    .abort = cc_abort,
};

/* The GPU this rank reports to the others: its UUID, and whether it allows NCCL. */
typedef struct Report {
    unsigned char uuid[16];
    unsigned char nccl_ok;
} Report;

/* Rank 0 says why the collectives are staged, once. */
static void say_staged(const CudaCommChoice *c) {
    if (c->off >= 0)
        fprintf(stderr, "galvrt: GALVRT_NCCL=0 on rank %d: collectives on GPU buffers go through MPI, staged in "
                        "pinned host memory\n", c->off);
    else
        fprintf(stderr, "galvrt: ranks %d and %d share a GPU, which NCCL refuses: collectives on GPU buffers go "
                        "through MPI, staged in pinned host memory\n", c->shared_a, c->shared_b);
    fflush(stderr);
}

/* Use `k`'s collectives from now on (the world's NCCL communicator is made here). */
void cuda_comm_use(CudaCommKind k) {
    kind = k;
    splitting_world = 1;
    grt_comm_use(&grt_cuda_backend);
    splitting_world = 0;
}

void cuda_comm_start(int rank) {
    GrtComm *world = grt_comm_world();
    if (!world) return; /* no grt_init: a test of the kernels alone (tests/gpu/kernels_cuda.c), no collectives */
    int n = grt_size(world);
    struct cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, cuda.device));
    const char *env = getenv("GALVRT_NCCL");
    Report me = {.nccl_ok = !(env && strcmp(env, "0") == 0)};
    nccl_every_group = env && strcmp(env, "1") == 0;
    memcpy(me.uuid, prop.uuid.bytes, sizeof me.uuid);
    Report *all = xcalloc((size_t)n, sizeof *all);
    unsigned char *ids = xcalloc((size_t)n, sizeof me.uuid), *ok = xcalloc((size_t)n, 1);
    grt_watch_enter("allgather", world, -1);
    MPI_CHECK(MPI_Allgather(&me, (int)sizeof me, MPI_BYTE, all, (int)sizeof me, MPI_BYTE,
                            *(MPI_Comm *)grt_comm_impl(world)));
    grt_watch_exit();
    for (int r = 0; r < n; r++) memcpy(ids + (size_t)r * sizeof me.uuid, all[r].uuid, sizeof me.uuid), ok[r] = all[r].nccl_ok;
    CudaCommChoice c = cuda_comm_choose(ids, sizeof me.uuid, ok, n);
    if (rank == 0 && c.kind == CUDA_COMM_STAGED) say_staged(&c);
    free(all), free(ids), free(ok);
    cuda_comm_use(c.kind);
}
