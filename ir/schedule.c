/* schedule.c — the order in which a pipeline stage runs its micro-batches'
 * forward and backward passes. One definition: the program runs it
 * (backend/emit_c.c) and the timeline draws it (passes/timeline.c). */
#include "ir.h"

#include <stdlib.h>

/* Stage k of pp's passes for m micro-batches into order[2 m]: j >= 0 is the
 * forward of micro-batch j, -j - 1 its backward. GPipe runs all forwards,
 * then all backwards (Huang et al. 2019); 1F1B warms up with pp - k - 1
 * forwards, then alternates one forward and one backward (Narayanan et al.
 * 2021). Returns the count, 2 m. */
int64_t schedule_order(int schedule, int pp, int k, int64_t m, int64_t *order) {
    int64_t n = 0;
    if (schedule == SCHED_GPIPE) {
        for (int64_t j = 0; j < m; j++)
            order[n++] = j;
        for (int64_t j = 0; j < m; j++)
            order[n++] = -j - 1;
        return n;
    }
    int64_t warm = pp - k - 1 < m ? pp - k - 1 : m;
    for (int64_t j = 0; j < warm; j++)
        order[n++] = j;
    for (int64_t j = 0; j < m - warm; j++)
        order[n++] = warm + j, order[n++] = -j - 1;
    for (int64_t j = m - warm; j < m; j++)
        order[n++] = -j - 1;
    return n;
}

/* Megatron's interleaved 1F1B (Narayanan et al. 2021, section 2.2.2): with
 * v chunks a stage, the stage's k-th forward is chunk (k / pp) mod v of
 * micro-batch (k / (pp v)) pp + k mod pp, so micro-batches move through
 * each chunk in groups of pp; its k-th backward the same with the chunks
 * taken from the last. Stage k warms up with 2 (pp - k - 1) + (v - 1) pp
 * forwards, then alternates one forward and one backward, then drains the
 * backwards. The bubble is (pp - 1) / (v m) of the ideal step. */
static void interleaved_pass(int pp, int v, int k, int64_t n, bool backward, int *chunk, int64_t *mb) {
    int j = (int)((n / pp) % v);
    *chunk = (backward ? v - 1 - j : j) * pp + k;
    *mb = n / ((int64_t)pp * v) * pp + n % pp;
}

int64_t schedule_interleaved(int pp, int v, int k, int64_t m, int *chunk, int64_t *order) {
    int64_t total = m * v, warm = 2 * (int64_t)(pp - k - 1) + (int64_t)(v - 1) * pp, n = 0, f = 0, b = 0;
    if (warm > total) warm = total;
    int64_t mb;
    for (; f < warm; f++, n++) interleaved_pass(pp, v, k, f, false, &chunk[n], &mb), order[n] = mb;
    for (; f < total; f++) {
        interleaved_pass(pp, v, k, f, false, &chunk[n], &mb), order[n++] = mb;
        interleaved_pass(pp, v, k, b++, true, &chunk[n], &mb), order[n++] = -mb - 1;
    }
    for (; b < total; b++) interleaved_pass(pp, v, k, b, true, &chunk[n], &mb), order[n++] = -mb - 1;
    return n;
}

void schedule_interleaved_held(int pp, int v, int k, int64_t m, int64_t *held) {
    int64_t n = 2 * m * v, *order = malloc(sizeof *order * (size_t)n), *now = calloc((size_t)v, sizeof *now);
    int *chunk = malloc(sizeof *chunk * (size_t)n);
    if (!order || !now || !chunk) die("out of memory");
    schedule_interleaved(pp, v, k, m, chunk, order);
    for (int j = 0; j < v; j++) held[j] = 0;
    for (int64_t q = 0; q < n; q++) {
        int j = chunk[q] / pp;
        now[j] += order[q] >= 0 ? 1 : -1;
        if (now[j] > held[j]) held[j] = now[j];
    }
    free(order), free(now), free(chunk);
}
