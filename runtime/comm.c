/* comm.c — libgalvrt's public collectives (the grt_* functions of galvrt.h's
 * collectives section). They check their arguments, so a generated program's
 * mistake reads as a message naming the call rather than a backend error,
 * and then dispatch through the active backend's tables (comm.h), so adding
 * NCCL adds a backend file, not #ifdefs here: the CUDA target's backend
 * takes over from MPI's once the rank's GPU is known (grt_comm_use).
 * Every group made is kept in a list and freed by grt_finalize: galvrt.h has
 * no grt_comm_free. Every call that can block (the collectives, send, recv,
 * the wait of a non-blocking one, the split) is bracketed for the watchdog
 * (watchdog.c), which knows each group by its world ranks. */
#include "comm.h"

#include <stdio.h>
#include <stdlib.h>

/* A group of ranks. */
struct GrtComm {
    int rank, size; /* this rank's place in the group; the group's size */
    void *impl;     /* the backend's handle (for MPI, an MPI_Comm) */
    int *members;   /* [size]: the world rank of each rank of the group */
    char label[96]; /* the group in messages (grt_comm_label) */
    GrtComm *next;  /* the next group made, for grt_finalize */
};

static const GrtBackend *backend; /* NULL before grt_init and after grt_finalize */
static GrtComm *world;            /* the first group made */
static GrtComm *comms;            /* every group made, newest first */
static int finished;              /* grt_finalize has run */

/* c's label: "the world (N ranks)", or "group {0, 1}" of its world ranks,
 * a long list as "group {0, 8, 16, 24, 32, 40, ..., 1016} (128 ranks)". */
static void make_label(GrtComm *c, int is_world) {
    size_t n = sizeof c->label, k = 0;
    if (is_world) {
        snprintf(c->label, n, "the world (%d rank%s)", c->size, c->size == 1 ? "" : "s");
        return;
    }
    k += (size_t)snprintf(c->label, n, "group {");
    for (int i = 0; i < c->size && k < n; i++) {
        int cut = c->size > 8 && i == 6; /* the first six, then the last */
        if (cut) i = c->size - 1;
        k += (size_t)snprintf(c->label + k, n - k, "%s%s%d", i ? ", " : "", cut ? "..., " : "", c->members[i]);
    }
    if (k < n) snprintf(c->label + k, n - k, c->size > 8 ? "} (%d ranks)" : "}", c->size);
}

/* A new group record around a backend handle, kept for grt_finalize; its
 * members are the world's ranks (the world itself) or the backend's answer. */
static GrtComm *comm_new(void *impl, int rank, int size) {
    GrtComm *c = malloc(sizeof *c);
    int *members = malloc(sizeof(int) * (size_t)size);
    if (!c || !members) grt_abort("out of memory", 1);
    *c = (GrtComm){.rank = rank, .size = size, .impl = impl, .members = members, .next = comms};
    if (world) backend->members(world->impl, impl, size, members);
    else
        for (int r = 0; r < size; r++) members[r] = r;
    make_label(c, !world);
    comms = c;
    return c;
}

/* The table to dispatch fn through: aborts if the runtime has not started. */
static const GrtCollectives *active(const char *fn) {
    if (!backend) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s called before grt_init (or after grt_finalize)", fn);
        grt_abort(msg, 1);
    }
    return backend->coll;
}

/* The table for a call on group c: aborts on a NULL group. */
static const GrtCollectives *on(const GrtComm *c, const char *fn) {
    const GrtCollectives *t = active(fn);
    if (!c) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s: NULL communicator", fn);
        grt_abort(msg, 1);
    }
    return t;
}

/* Aborts unless r names a rank of c (what says which argument it was). */
static void check_rank(const GrtComm *c, int r, const char *fn, const char *what) {
    if (r < 0 || r >= c->size) {
        char msg[160];
        snprintf(msg, sizeof msg, "%s: %s %d is not a rank of this group (size %d)", fn, what, r, c->size);
        grt_abort(msg, 1);
    }
}

/* Start the MPI backend on every rank; the world group (the same one if called again). */
GrtComm *grt_init(int *argc, char ***argv) {
    if (world) return world;
    if (finished) grt_abort("grt_init called after grt_finalize (MPI cannot start twice)", 1);
    grt_blas_settle(*argv); /* before MPI starts: it may start the program again */
    const GrtBackend *b = &grt_mpi_backend;
    int rank = 0, size = 0;
    backend = b; /* first, so a failure inside init still aborts through it */
    void *impl = b->init(argc, argv, &rank, &size);
    world = comm_new(impl, rank, size);
    grt_watch_start();
    return world;
}

GrtComm *grt_comm_world(void) { return world; }

/* Hand every group to backend b (comm.h): the world, the only one yet, gets
 * b's handle from a split of its MPI one, which the old backend then frees. */
void grt_comm_use(const GrtBackend *b) {
    if (!world || comms != world || world->next)
        grt_abort("internal error: grt_comm_use after a group was split (or before grt_init)", 1);
    int rank = 0, size = 0;
    grt_watch_enter("split", world, -1);
    void *impl = b->split(world->impl, 0, world->rank, &rank, &size);
    grt_watch_exit();
    backend->free(world->impl);
    world->impl = impl;
    backend = b;
}

/* Stop the kernels' threads, free every group, then stop the backend. */
void grt_finalize(void) {
    grt_pool_stop();
    if (!backend) return;
    grt_watch_stop(); /* before any group it may be naming is freed */
    while (comms) {
        GrtComm *c = comms;
        comms = c->next;
        backend->free(c->impl);
        free(c->members);
        free(c);
    }
    world = NULL;
    backend->finalize();
    backend = NULL;
    finished = 1;
}

/* Print "galvrt: rank R: msg" once, on this rank, and bring every rank down with status. */
_Noreturn void grt_abort(const char *msg, int status) {
    fflush(stdout);
    if (msg && world) fprintf(stderr, "galvrt: rank %d: %s\n", world->rank, msg);
    else if (msg) fprintf(stderr, "galvrt: %s\n", msg);
    fflush(stderr);
    if (backend) backend->abort(status);
    exit(status);
}

/* This rank's place in group c. */
int grt_rank(const GrtComm *c) {
    on(c, "grt_rank");
    return c->rank;
}

/* The number of ranks in group c. */
int grt_size(const GrtComm *c) {
    on(c, "grt_size");
    return c->size;
}

/* Split c: ranks passing the same color (>= 0) form one group, ordered by key. */
GrtComm *grt_comm_split(GrtComm *c, int color, int key) {
    on(c, "grt_comm_split");
    if (color < 0) {
        char msg[96];
        snprintf(msg, sizeof msg, "grt_comm_split: color %d is negative", color);
        grt_abort(msg, 1);
    }
    int rank = 0, size = 0;
    grt_watch_enter("split", c, -1);
    void *impl = backend->split(c->impl, color, key, &rank, &size);
    grt_watch_exit();
    return comm_new(impl, rank, size);
}

/* The backend's handle of group c (for backend files). */
void *grt_comm_impl(const GrtComm *c) { return c->impl; }

/* Group c as messages name it. */
const char *grt_comm_label(const GrtComm *c) { return c->label; }

/* The world rank of rank r of c. */
int grt_comm_world_rank(const GrtComm *c, int r) { return c->members[r]; }

/* Request r of a call op on c (peer: of a send or receive), named for grt_wait. */
static GrtRequest *named(GrtRequest *r, const char *op, const GrtComm *c, int peer) {
    *(GrtCall *)r = (GrtCall){.op = op, .comm = c, .peer = peer}; /* a backend's request starts with a GrtCall */
    return r;
}

/* A blocking call begins and ends: for the watchdog, and for the step's breakdown. */
static void enter(const char *op, const GrtComm *c, int peer) {
    grt_watch_enter(op, c, peer);
    grt_part_begin(grt_part_of(op));
}

static void leave(void) {
    grt_part_end();
    grt_watch_exit();
}

/* buf (n) = sum over the ranks of c of buf (n). */
void grt_allreduce(GrtComm *c, float *buf, size_t n) {
    const GrtCollectives *t = on(c, "grt_allreduce");
    enter("allreduce", c, -1);
    t->allreduce(c, buf, n);
    leave();
}

/* buf (n) = sum over the ranks of c of buf (n), in double. */
void grt_allreduce_double(GrtComm *c, double *buf, size_t n) {
    const GrtCollectives *t = on(c, "grt_allreduce_double");
    enter("allreduce", c, -1);
    t->allreduce_double(c, buf, n);
    leave();
}

/* out (n) = block rank of the sum over the ranks of in (size * n). */
void grt_reduce_scatter(GrtComm *c, const float *in, float *out, size_t n) {
    const GrtCollectives *t = on(c, "grt_reduce_scatter");
    enter("reduce-scatter", c, -1);
    t->reduce_scatter(c, in, out, n);
    leave();
}

/* out (size * n) = every rank's in (n), in rank order. */
void grt_allgather(GrtComm *c, const float *in, float *out, size_t n) {
    const GrtCollectives *t = on(c, "grt_allgather");
    enter("allgather", c, -1);
    t->allgather(c, in, out, n);
    leave();
}

/* out block j (n) = block r of rank j's in (size * n), r this rank's. */
void grt_alltoall(GrtComm *c, const float *in, float *out, size_t n) {
    const GrtCollectives *t = on(c, "grt_alltoall");
    enter("alltoall", c, -1);
    t->alltoall(c, in, out, n);
    leave();
}

/* buf (n) = root's buf (n) on every rank of c. */
void grt_broadcast(GrtComm *c, float *buf, size_t n, int root) {
    const GrtCollectives *t = on(c, "grt_broadcast");
    check_rank(c, root, "grt_broadcast", "root");
    enter("broadcast", c, -1);
    t->broadcast(c, buf, n, root);
    leave();
}

/* Send buf (n) to rank peer of c; returns when buf may be reused. */
void grt_send(GrtComm *c, const float *buf, size_t n, int peer, int tag) {
    const GrtCollectives *t = on(c, "grt_send");
    check_rank(c, peer, "grt_send", "peer");
    enter("send", c, peer);
    t->send(c, buf, n, peer, tag);
    leave();
}

/* Receive exactly n floats from rank peer of c into buf. */
void grt_recv(GrtComm *c, float *buf, size_t n, int peer, int tag) {
    const GrtCollectives *t = on(c, "grt_recv");
    check_rank(c, peer, "grt_recv", "peer");
    enter("recv", c, peer);
    t->recv(c, buf, n, peer, tag);
    leave();
}

/* Returns once every rank of c has called it. */
void grt_barrier(GrtComm *c) {
    const GrtCollectives *t = on(c, "grt_barrier");
    enter("barrier", c, -1);
    t->barrier(c);
    leave();
}

/* Start grt_allreduce on buf; buf is not to be touched until grt_wait. */
GrtRequest *grt_iallreduce(GrtComm *c, float *buf, size_t n) {
    return named(on(c, "grt_iallreduce")->iallreduce(c, buf, n), "iallreduce", c, -1);
}

/* Start grt_send; buf is not to be changed until grt_wait. */
GrtRequest *grt_isend(GrtComm *c, const float *buf, size_t n, int peer, int tag) {
    const GrtCollectives *t = on(c, "grt_isend");
    check_rank(c, peer, "grt_isend", "peer");
    return named(t->isend(c, buf, n, peer, tag), "isend", c, peer);
}

/* Start grt_recv; buf is not to be read until grt_wait. */
GrtRequest *grt_irecv(GrtComm *c, float *buf, size_t n, int peer, int tag) {
    const GrtCollectives *t = on(c, "grt_irecv");
    check_rank(c, peer, "grt_irecv", "peer");
    return named(t->irecv(c, buf, n, peer, tag), "irecv", c, peer);
}

/* Complete and free request r (NULL: nothing to do). */
void grt_wait(GrtRequest *r) {
    if (!r) return;
    const GrtCollectives *t = active("grt_wait");
    GrtCall call = *(GrtCall *)r; /* r is freed by the wait */
    enter(call.op, call.comm, call.peer);
    t->wait(r);
    leave();
}
