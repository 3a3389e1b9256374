/* schedule.c — the order in which a pipeline stage runs its micro-batches'
 * forward and backward passes. One definition: the program runs it
 * (backend/emit_c.c) and the timeline draws it (passes/timeline.c). */
#include "ir.h"

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
