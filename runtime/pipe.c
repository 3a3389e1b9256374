/* pipe.c — one edge of a pipeline: a micro-batch's activation sent from the
 * last layer of one stage to the first of the next, or its gradient sent
 * back (Megatron's p2p, Narayanan et al. 2021), as a reshard between the two
 * layers' layouts. The sending side keeps one buffer per micro-batch slot,
 * so a stage can run on while its sends are in flight; a slot's buffer is
 * handed out again only once its previous sends have left. */
#include "galvrt.h"

struct GrtPipe {
    GrtReshard *r;
    int slots;
    size_t floats;         /* of each slot's buffer */
    float **buf;           /* [slots], on ranks of the sending layout */
    GrtRequest ***req;     /* [slots][sends] */
    int *n_req;            /* [slots]: sends in flight */
};

GrtPipe *grt_pipe_new(const GrtLayout *from, const GrtLayout *to, int mb, size_t seq_floats, int rank, int slots) {
    GrtPipe *p = grt_alloc(sizeof *p);
    p->r = grt_reshard_new(from, to, mb, seq_floats, rank);
    p->slots = slots;
    if (!grt_layout_has(from, rank)) return p;
    p->floats = grt_layout_floats(from, mb, seq_floats);
    p->buf = grt_alloc(sizeof *p->buf * (size_t)slots);
    p->req = grt_alloc(sizeof *p->req * (size_t)slots);
    p->n_req = grt_alloc(sizeof *p->n_req * (size_t)slots);
    for (int s = 0; s < slots; s++) {
        p->buf[s] = grt_dev->alloc(p->floats * sizeof(float)); /* the device's memory, as the activations */
        p->req[s] = grt_alloc(sizeof(GrtRequest *) * (size_t)(grt_reshard_sends(p->r) + 1));
    }
    return p;
}

/* Wait for slot s's sends in flight. */
static void wait_slot(GrtPipe *p, int s) {
    for (int i = 0; i < p->n_req[s]; i++) grt_wait(p->req[s][i]);
    p->n_req[s] = 0;
}

float *grt_pipe_buffer(GrtPipe *p, int slot) {
    if (!p->buf) grt_abort("grt_pipe_buffer: this rank does not send on the pipe", 1);
    wait_slot(p, slot % p->slots);
    return p->buf[slot % p->slots];
}

void grt_pipe_send(GrtPipe *p, GrtComm *world, int slot, int tag) {
    int s = slot % p->slots;
    p->n_req[s] = grt_reshard_isend(p->r, world, p->buf[s], tag, p->req[s]);
}

void grt_pipe_recv(GrtPipe *p, GrtComm *world, float *dst, int tag) { grt_reshard_recv(p->r, world, dst, tag); }

void grt_pipe_drain(GrtPipe *p) {
    for (int s = 0; p->buf && s < p->slots; s++) wait_slot(p, s);
}
