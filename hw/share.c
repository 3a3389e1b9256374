/* share.c — ranks sharing one device (a cluster's ranks_per_device), as the
 * GPU check runs GPipe and 1F1B with two ranks on one H200. The planner
 * plans ranks and prices each as a device of its own, so a rank that shares
 * one with k - 1 others is given its share of it: 1/k of the compute (a
 * time-shared GPU runs one rank's kernels at a time, so each rank's work
 * takes k times as long while the others compute), 1/k of the memory (the
 * ranks' arenas add up in the one device's), and collectives through the
 * path the runtime takes when any two ranks share a GPU: pinned host memory
 * and MPI (runtime/cuda/comm_choice.c; NCCL refuses such a group), unless
 * the profile measured them (galvc profile on ranks that share a GPU
 * measures that path; its compute figures are the whole device's, timed by
 * rank 0 alone). The node of the cluster holds k times the ranks. */
#include "hw.h"

/* How many of `ranks` share each of c's devices: ranks over devices, rounded
 * up, at most the cluster's ranks_per_device; 1 when it allows one. */
int64_t hw_sharing(const Cluster *c, int64_t ranks) {
    int64_t devices, most = c->ranks_per_device > 1 ? c->ranks_per_device : 1;
    if (most == 1 || __builtin_mul_overflow(c->nodes, c->devices_per_node, &devices) || devices < 1) return 1;
    int64_t k = ranks / devices + (ranks % devices != 0);
    return k < 1 ? 1 : k > most ? most : k;
}

/* A layer fit's time for a rank with 1/k of the device: every part k times. */
static void share_fit(LayerFit *f, int64_t k) {
    f->fixed_s *= (double)k;
    f->rate /= (double)k;
}

/* hw's compute, bandwidth and memory divided among k ranks. */
static void share_device(HwProfile *hw, int64_t k) {
    for (int p = 0; p < 3; p++) hw->peak_flops[p] /= (double)k, hw->gemm_rates[p] /= (double)k;
    hw->mem_bandwidth /= (double)k;
    hw->memory /= k;
    for (int kind = 0; kind < PROFILE_LAYER_COUNT; kind++)
        for (int t = 0; t <= PROFILE_MAX_LOG2; t++) share_fit(&hw->layer_fit[kind][t][0], k), share_fit(&hw->layer_fit[kind][t][1], k);
}

int64_t hw_share(const Cluster *c, int64_t ranks, HwProfile *hw, Cluster *view) {
    int64_t k = hw_sharing(c, ranks);
    *view = *c;
    view->ranks_per_device = k;
    if (k == 1) return 1;
    share_device(hw, k);
    hw->intra = hw->staged;
    view->devices_per_node *= k;
    view->memory /= k, view->reserve /= k;
    return k;
}
