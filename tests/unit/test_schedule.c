/* test_schedule.c — the interleaved 1F1B schedule (ir/schedule.c) run as
 * the program runs it: every stage in its own order, a pass starting only
 * once what it receives was sent (a chunk's forward after the chunk
 * before's, a backward after its forward and the next chunk's backward)
 * and once the pipe buffer it sends from is free again (its previous
 * message received: sends of a large message complete only then). Every
 * stage must finish (no deadlock), every (chunk, micro-batch) forward and
 * backward must run exactly once, and the micro-batches a chunk holds at
 * once must be what schedule_interleaved_held says and the planner prices. */
#include "check.h"
#include "ir/ir.h"

#include <stdlib.h>
#include <string.h>

enum { MAXP = 8, MAXV = 4, MAXM = 32, MAXC = MAXP * MAXV };

typedef struct Sim {
    int pp, v;
    int64_t m;
    int chunk[MAXP][2 * MAXM * MAXV];
    int64_t order[MAXP][2 * MAXM * MAXV], n[MAXP], next[MAXP];
    int fwd_done[MAXC][MAXM], bwd_done[MAXC][MAXM];
    int64_t held[MAXP][MAXV];
} Sim;

/* The pass's sends: its pipe slot (micro-batch mod the chunk's held count)
 * must not carry a message not yet received. The message for micro-batch
 * mb - held on the same edge was received once its consumer ran. */
static bool slot_free(const Sim *s, int c, int64_t mb, bool backward) {
    int k = c % s->pp, j = c / s->pp;
    int64_t prev = mb - s->held[k][j];
    if (prev < 0) return true;
    if (!backward) return c + 1 >= s->pp * s->v || s->fwd_done[c + 1][prev];
    return c == 0 || s->bwd_done[c - 1][prev];
}

/* Can stage k run its next pass now? */
static bool ready(const Sim *s, int k) {
    int64_t q = s->next[k], o = s->order[k][q];
    int c = s->chunk[k][q];
    if (o >= 0) return (c == 0 || s->fwd_done[c - 1][o]) && slot_free(s, c, o, false);
    int64_t mb = -o - 1;
    return s->fwd_done[c][mb] && (c + 1 == s->pp * s->v || s->bwd_done[c + 1][mb]) && slot_free(s, c, mb, true);
}

static void run_case(int pp, int v, int64_t m) {
    Sim *s = calloc(1, sizeof *s);
    s->pp = pp, s->v = v, s->m = m;
    int C = pp * v;
    for (int k = 0; k < pp; k++) {
        s->n[k] = schedule_interleaved(pp, v, k, m, s->chunk[k], s->order[k]);
        CHECK_EQ(s->n[k], 2 * m * v);
        schedule_interleaved_held(pp, v, k, m, s->held[k]);
    }
    int64_t now[MAXC] = {0}, most[MAXC] = {0};
    for (bool moved = true; moved;) {
        moved = false;
        for (int k = 0; k < pp; k++)
            while (s->next[k] < s->n[k] && ready(s, k)) {
                int64_t q = s->next[k]++, o = s->order[k][q];
                int c = s->chunk[k][q];
                CHECK_EQ(c % pp, k);
                int64_t mb = o >= 0 ? o : -o - 1;
                int *done = o >= 0 ? &s->fwd_done[c][mb] : &s->bwd_done[c][mb];
                CHECK_EQ(*done, 0); /* once */
                *done = 1;
                now[c] += o >= 0 ? 1 : -1;
                if (now[c] > most[c]) most[c] = now[c];
                moved = true;
            }
    }
    for (int k = 0; k < pp; k++) {
        if (s->next[k] != s->n[k])
            fprintf(stderr, "pp %d v %d m %lld: stage %d stuck at pass %lld\n", pp, v, (long long)m, k,
                    (long long)s->next[k]);
        CHECK_EQ(s->next[k], s->n[k]);
    }
    for (int c = 0; c < C; c++) {
        for (int64_t j = 0; j < m; j++) CHECK(s->fwd_done[c][j] && s->bwd_done[c][j]);
        CHECK_EQ(most[c], s->held[c % pp][c / pp]);
        CHECK_EQ(now[c], 0);
    }
    free(s);
}

/* Megatron's first stage of 4 with 2 chunks and 8 micro-batches: 2 (4 - 1) + 4 = 10 warm-up forwards. */
static void megatron_order(void) {
    int chunk[32];
    int64_t order[32], held[2];
    schedule_interleaved(4, 2, 0, 8, chunk, order);
    static const int want_c[12] = {0, 0, 0, 0, 4, 4, 4, 4, 0, 0, 0, 4};
    static const int64_t want_o[12] = {0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, -1};
    for (int q = 0; q < 12; q++) {
        CHECK_EQ(chunk[q], want_c[q]);
        CHECK_EQ(order[q], want_o[q]);
    }
    schedule_interleaved_held(4, 2, 0, 8, held);
    /* chunk 0 runs all 8 forwards before its first backward; chunk 4 holds a group of 4 */
    CHECK_EQ(held[0], 8);
    CHECK_EQ(held[1], 4);
    schedule_interleaved_held(4, 2, 3, 8, held);
    CHECK_EQ(held[0], 5);
    CHECK_EQ(held[1], 1);
}

int main(void) {
    megatron_order();
    for (int pp = 2; pp <= MAXP; pp++)
        for (int v = 1; v <= MAXV; v++)
            for (int64_t m = pp; m <= MAXM; m += pp) run_case(pp, v, m);
    return check_report();
}
