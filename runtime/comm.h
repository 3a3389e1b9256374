/* comm.h — libgalvrt's internal collectives header, shared by comm.c and the
 * backend files (comm_mpi.c now, an NCCL one later); generated programs never
 * include it. The public GrtCollectives table covers the data movement; a
 * backend also has to start, split, free and stop its groups and kill the
 * job, which is the GrtBackend table below. GrtComm stays private to comm.c:
 * a backend sees only its own handle, through grt_comm_impl. */
#ifndef GALVRT_COMM_H
#define GALVRT_COMM_H

#include "galvrt.h"

/* A backend: its collectives and the life cycle of its groups. A handle
 * (void *) is the backend's own per-group state (for MPI, an MPI_Comm). */
typedef struct GrtBackend {
    const GrtCollectives *coll;
    /* Start on every rank; the world's handle, this rank and the world's size. */
    void *(*init)(int *argc, char ***argv, int *rank, int *size);
    /* Split the group behind handle (color >= 0); the new group's handle, rank and size. */
    void *(*split)(void *handle, int color, int key, int *rank, int *size);
    void (*free)(void *handle);
    /* Called after every group is freed. */
    void (*finalize)(void);
    /* Every rank exits with status (the message is already printed); does not return. */
    void (*abort)(int status);
} GrtBackend;

extern const GrtBackend grt_mpi_backend;
extern const GrtCollectives grt_mpi_collectives;

/* The backend's handle of group c. */
void *grt_comm_impl(const GrtComm *c);

/* For tests: the most elements the MPI backend passes to one MPI call
 * (default INT_MAX, MPI's count limit); larger buffers go in chunks. Every
 * rank must set the same value. */
void grt_mpi_set_max_count(size_t n);

#endif
