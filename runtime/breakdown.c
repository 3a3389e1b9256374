/* breakdown.c — where a step's time goes, for setting measurement beside
 * the cost model (docs/cost-model.md). With GALVRT_BREAKDOWN=1 in the
 * environment, every rank times the parts of each step the runtime can
 * name — each layer kind's forward and backward (a whole layer's, as a plan
 * without TP runs it), each kind of collective (its wait included), the
 * data batch, zeroing the gradients, the gradient norm, the optimizer's
 * update, the log line — and counts the rest of the step as other (the
 * copies between layers; a TP plan's layer phases). A part begun inside
 * another (a TP all-reduce inside a layer's backward) pauses the outer
 * one, so the parts add up to the step. After the last step each rank
 * prints one line of milliseconds a step, averaged over the steps after
 * the first WARMUP. Without the variable every call returns at once. */
#include "galvrt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { WARMUP = 5, DEPTH = 8 };

static const char *const part_names[GRT_PART_COUNT] = {
    [GRT_PART_COMPUTE] = "other",       [GRT_PART_FWD_EMBEDDING] = "fwd-embedding",
    [GRT_PART_FWD_BLOCK] = "fwd-block", [GRT_PART_FWD_NORM] = "fwd-norm",
    [GRT_PART_FWD_HEAD] = "fwd-head",   [GRT_PART_BWD_EMBEDDING] = "bwd-embedding",
    [GRT_PART_BWD_BLOCK] = "bwd-block", [GRT_PART_BWD_NORM] = "bwd-norm",
    [GRT_PART_BWD_HEAD] = "bwd-head",   [GRT_PART_ALLREDUCE] = "allreduce",
    [GRT_PART_ALLGATHER] = "allgather", [GRT_PART_REDUCE_SCATTER] = "reduce-scatter",
    [GRT_PART_BROADCAST] = "broadcast", [GRT_PART_P2P] = "p2p",
    [GRT_PART_BARRIER] = "barrier",     [GRT_PART_DATA] = "data",
    [GRT_PART_ZERO] = "zero-grads",     [GRT_PART_NORM] = "grad-norm",
    [GRT_PART_OPTIMIZER] = "optimizer", [GRT_PART_LOG] = "log",
};

static struct {
    int on;      /* GALVRT_BREAKDOWN=1 */
    int in_step; /* between grt_breakdown_step_begin and _end */
    int depth;   /* the parts open, innermost last */
    GrtPart stack[DEPTH];
    double since;                 /* when the innermost part last resumed */
    double step[GRT_PART_COUNT];  /* this step's milliseconds by part */
    double total[GRT_PART_COUNT]; /* the counted steps' */
    long counted, steps;
} B;

void grt_breakdown_init(void) {
    const char *v = getenv("GALVRT_BREAKDOWN");
    B.on = v && strcmp(v, "1") == 0;
}

/* Charge the time since the last change to the innermost open part. */
static void charge(double now) {
    if (B.depth) B.step[B.stack[B.depth - 1]] += now - B.since;
    B.since = now;
}

void grt_part_begin(GrtPart part) {
    if (!B.on || !B.in_step) return;
    charge(grt_now_ms());
    if (B.depth < DEPTH) B.stack[B.depth] = part;
    B.depth++;
}

void grt_part_end(void) {
    if (!B.on || !B.in_step || B.depth <= 1) return;
    charge(grt_now_ms());
    B.depth--;
}

/* The op name the collectives use (comm.c) as its part. */
GrtPart grt_part_of(const char *op) {
    if (strstr(op, "allreduce")) return GRT_PART_ALLREDUCE;
    if (strcmp(op, "allgather") == 0) return GRT_PART_ALLGATHER;
    if (strcmp(op, "reduce-scatter") == 0) return GRT_PART_REDUCE_SCATTER;
    if (strcmp(op, "broadcast") == 0) return GRT_PART_BROADCAST;
    if (strstr(op, "send") || strstr(op, "recv")) return GRT_PART_P2P;
    return GRT_PART_BARRIER; /* barrier, split */
}

void grt_breakdown_step_begin(void) {
    if (!B.on) return;
    memset(B.step, 0, sizeof B.step);
    B.in_step = 1;
    B.depth = 1;
    B.stack[0] = GRT_PART_COMPUTE;
    B.since = grt_now_ms();
}

void grt_breakdown_step_end(void) {
    if (!B.on || !B.in_step) return;
    charge(grt_now_ms());
    B.in_step = 0;
    if (++B.steps <= WARMUP) return;
    for (int k = 0; k < GRT_PART_COUNT; k++)
        B.total[k] += B.step[k];
    B.counted++;
}

void grt_breakdown_report(int rank) {
    if (!B.on || !B.counted) return;
    char line[1024];
    int at =
        snprintf(line, sizeof line, "breakdown rank %d (ms a step, mean of %ld after %d):", rank, B.counted, WARMUP);
    double sum = 0;
    for (int k = 0; k < GRT_PART_COUNT && at > 0 && (size_t)at < sizeof line; k++) {
        double ms = B.total[k] / (double)B.counted;
        sum += ms;
        if (ms > 0) at += snprintf(line + at, sizeof line - (size_t)at, " %s %.3f", part_names[k], ms);
    }
    fprintf(stderr, "%s; step %.3f\n", line, sum);
}
