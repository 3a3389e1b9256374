/* cuda_comm_choice.c — which collectives the CUDA target's ranks use
 * (runtime/cuda/comm_choice.c), without a GPU: NCCL when every rank has a
 * GPU of its own and allows NCCL; MPI staged through the host when two ranks
 * report one GPU's UUID (the first such pair named) or any rank turned NCCL
 * off (the first such rank named). */
#include "../unit/check.h"
#include "cuda_device.h"

#include <string.h>

enum { ID = 16 }; /* bytes of a UUID */

/* n ranks' ids: rank r's is filled with gpu[r]. */
static void fill(unsigned char *ids, const int *gpu, int n) {
    for (int r = 0; r < n; r++) memset(ids + (size_t)r * ID, gpu[r], ID);
}

static CudaCommChoice choose(const int *gpu, const unsigned char *ok, int n) {
    unsigned char ids[8 * ID];
    fill(ids, gpu, n);
    return cuda_comm_choose(ids, ID, ok, n);
}

int main(void) {
    const unsigned char all_ok[8] = {1, 1, 1, 1, 1, 1, 1, 1};

    CudaCommChoice c = choose((const int[]){0}, all_ok, 1); /* one rank: NCCL */
    CHECK_EQ(c.kind, CUDA_COMM_NCCL);
    CHECK_EQ(c.shared_a, -1);
    CHECK_EQ(c.off, -1);

    c = choose((const int[]){0, 1, 2, 3}, all_ok, 4); /* a GPU each */
    CHECK_EQ(c.kind, CUDA_COMM_NCCL);

    c = choose((const int[]){7, 7}, all_ok, 2); /* the GPU check's 2 ranks on one GPU */
    CHECK_EQ(c.kind, CUDA_COMM_STAGED);
    CHECK_EQ(c.shared_a, 0);
    CHECK_EQ(c.shared_b, 1);
    CHECK_EQ(c.off, -1);

    c = choose((const int[]){0, 1, 2, 1, 0}, all_ok, 5); /* the first pair found: ranks 1 and 3 */
    CHECK_EQ(c.kind, CUDA_COMM_STAGED);
    CHECK_EQ(c.shared_a, 1);
    CHECK_EQ(c.shared_b, 3);

    /* ids differing in the last byte only are different GPUs */
    unsigned char ids[2 * ID];
    memset(ids, 5, sizeof ids);
    ids[2 * ID - 1] = 6;
    c = cuda_comm_choose(ids, ID, all_ok, 2);
    CHECK_EQ(c.kind, CUDA_COMM_NCCL);

    const unsigned char one_off[3] = {1, 1, 0};
    c = choose((const int[]){0, 1, 2}, one_off, 3); /* GALVRT_NCCL=0 on rank 2 */
    CHECK_EQ(c.kind, CUDA_COMM_STAGED);
    CHECK_EQ(c.off, 2);
    CHECK_EQ(c.shared_a, -1);

    return check_report();
}
