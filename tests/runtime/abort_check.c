// ranks: 2
/* abort_check.c — grt_abort brings the whole job down: rank 1 aborts with
 * status 3 while rank 0 is blocked receiving from it, and mpirun must return
 * promptly with a non-zero status (registered with WILL_FAIL, outside the
 * mpitest_* glob, since passing means exiting non-zero). Should grt_abort
 * ever return, rank 1 sends what rank 0 waits for, both exit 0, and the test
 * fails instead of hanging. */
#include "galvrt.h"

#include <stdio.h>

int main(int argc, char **argv) {
    GrtComm *world = grt_init(&argc, &argv);
    float x = 0;
    if (grt_rank(world) == 1) {
        grt_abort("deliberate", 3);
        fprintf(stderr, "abort_check: grt_abort returned\n");
        grt_send(world, &x, 1, 0, 0);
    } else {
        grt_recv(world, &x, 1, 1, 0);
        fprintf(stderr, "abort_check: rank 0 was not stopped\n");
    }
    grt_finalize();
    return 0;
}
