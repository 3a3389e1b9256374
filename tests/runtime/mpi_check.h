/* The end of a test run on every rank of an MPI group: the checks' counts
 * summed over the ranks, the report printed by rank 0, the runtime
 * finalized. Returns the process's exit status (non-zero on any rank's
 * failure). Include after ../unit/check.h and galvrt.h. */
#ifndef GALVC_TESTS_MPI_CHECK_H
#define GALVC_TESTS_MPI_CHECK_H

#include <stdio.h>

static int mpi_check_finish(GrtComm *world) {
    double counts[2] = {check_count, check_failures};
    grt_allreduce_double(world, counts, 2);
    check_count = (int)counts[0];
    check_failures = (int)counts[1];
    int status = grt_rank(world) == 0 ? check_report() : check_failures != 0;
    fflush(stdout);
    grt_finalize();
    return status;
}

#endif
