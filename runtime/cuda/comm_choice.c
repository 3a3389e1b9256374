/* comm_choice.c — which collectives the CUDA target's ranks use, decided
 * from what every rank reports about its GPU (its UUID, gathered over MPI)
 * and whether it allows NCCL. NCCL refuses two ranks of one communicator on
 * one GPU, so if any two ranks share one, every rank's collectives on GPU
 * buffers go through MPI, staged through pinned host memory; the same when
 * any rank turned NCCL off (GALVRT_NCCL=0). Every rank decides alike from
 * the same gathered data, so no rank uses NCCL while another waits in MPI.
 * A pure function, unit-tested without a GPU (tests/runtime/cuda_comm_choice.c). */
#include "cuda_device.h"

#include <string.h>

CudaCommChoice cuda_comm_choose(const unsigned char *ids, size_t id_bytes, const unsigned char *nccl_ok, int n) {
    CudaCommChoice c = {.kind = CUDA_COMM_NCCL, .shared_a = -1, .shared_b = -1, .off = -1};
    for (int r = 0; r < n && c.off < 0; r++)
        if (!nccl_ok[r]) c.off = r, c.kind = CUDA_COMM_STAGED;
    for (int b = 1; b < n && c.shared_a < 0; b++)
        for (int a = 0; a < b; a++)
            if (memcmp(ids + (size_t)a * id_bytes, ids + (size_t)b * id_bytes, id_bytes) == 0) {
                c.shared_a = a, c.shared_b = b, c.kind = CUDA_COMM_STAGED;
                break;
            }
    return c;
}
