/* comm.h — libgalvrt's internal collectives header, shared by comm.c and the
 * backend files (comm_mpi.c now, an NCCL one later); generated programs never
 * include it. The public GrtCollectives table covers the data movement; a
 * backend also has to start, split, free and stop its groups and kill the
 * job, which is the GrtBackend table below. GrtComm stays private to comm.c:
 * a backend sees only its own handle, through grt_comm_impl. Every call
 * that can block is watched (watchdog.c): one that does not return within
 * --comm-timeout stops every rank, naming the call, its group and the step. */
#ifndef GALVRT_COMM_H
#define GALVRT_COMM_H

#include "galvrt.h"

/* A backend: its collectives and the life cycle of its groups. A handle
 * (void *) is the backend's own per-group state (for MPI, an MPI_Comm). A
 * backend layered on MPI (the CUDA target's, runtime/cuda/comm_cuda.c)
 * keeps an MPI_Comm as its handle's first field, so that the MPI backend's
 * functions take its handles as their own. */
typedef struct GrtBackend {
    const GrtCollectives *coll;
    /* Start on every rank; the world's handle, this rank and the world's size. */
    void *(*init)(int *argc, char ***argv, int *rank, int *size);
    /* Split the group behind handle (color >= 0); the new group's handle, rank and size. */
    void *(*split)(void *handle, int color, int key, int *rank, int *size);
    void (*free)(void *handle);
    /* The world ranks of the group behind handle, in its order, into out
     * (size entries): for the watchdog's message. world: the world's handle. */
    void (*members)(void *world, void *handle, int size, int *out);
    /* Called after every group is freed. */
    void (*finalize)(void);
    /* Every rank exits with status (the message is already printed); does not return. */
    void (*abort)(int status);
} GrtBackend;

extern const GrtBackend grt_mpi_backend;
extern const GrtCollectives grt_mpi_collectives;

/* The world group (NULL before grt_init). */
GrtComm *grt_comm_world(void);
/* From now on every group is backend b's, a backend layered on MPI (see
 * GrtBackend): called on every rank right after grt_init, while the world
 * is the only group; the world's handle becomes b's split of it (color 0,
 * the same order). */
void grt_comm_use(const GrtBackend *b);

/* The backend's handle of group c. */
void *grt_comm_impl(const GrtComm *c);
/* Group c for a message: "the world (N ranks)" or "group {0, 1}" (a long
 * list cut in the middle). */
const char *grt_comm_label(const GrtComm *c);
/* The world rank of rank r of group c. */
int grt_comm_world_rank(const GrtComm *c, int r);

/* What a call is, for the watchdog: its name, its group and, for a send or
 * a receive, the peer (a rank of the group; -1: none). A backend's struct
 * GrtRequest starts with one, which comm.c fills in when the request is
 * made, so that grt_wait can say what it waits for. */
typedef struct GrtCall {
    const char *op;
    const GrtComm *comm;
    int peer;
} GrtCall;

/* The watchdog (watchdog.c): started by grt_init on every rank and stopped
 * first thing in grt_finalize (so no group is freed under it); comm.c
 * brackets every call that can block with grt_watch_enter / grt_watch_exit. */
void grt_watch_start(void);
void grt_watch_stop(void);
void grt_watch_enter(const char *op, const GrtComm *c, int peer);
void grt_watch_exit(void);

/* For tests: the most elements the MPI backend passes to one MPI call
 * (default INT_MAX, MPI's count limit); larger buffers go in chunks. Every
 * rank must set the same value. */
void grt_mpi_set_max_count(size_t n);

#endif
