/* presets.c — datasheet presets for the device kinds a cluster may name.
 * A cluster's own link figures and a measured profile refine these; they are
 * the fallback when nothing was measured.
 *
 * Sources: NVIDIA A100 Tensor Core GPU datasheet (2021): FP32 19.5 TFLOP/s,
 * BF16/FP16 312 TFLOP/s dense, HBM2e 1,555 GB/s (40GB) and 2,039 GB/s (80GB),
 * NVLink 600 GB/s (300 GB/s each way). NVIDIA H100 datasheet (SXM5): FP32 67,
 * BF16/FP16 989 TFLOP/s dense, 3.35 TB/s, NVLink 900 GB/s (450 each way).
 * NVIDIA H200 datasheet: the H100's compute, 141 GB HBM3e at 4.8 TB/s.
 * Between nodes: one 200 Gb/s HDR (DGX A100) or 400 Gb/s NDR (DGX H100)
 * InfiniBand port per GPU, 25 and 50 GB/s.
 * GEMM efficiency: the fraction of peak that Megatron-LM's GEMM-bound layers
 * reach (Narayanan et al., SC'21: 52% of A100 peak for whole GPT models;
 * layers alone reach more), lower on the H100 whose peak is harder to feed.
 * Overlap slowdown: Galvatron's overlap coefficient (its profiler measured
 * 1.13 on A100s; 1.3 is its default).
 * Host link (ranks sharing a GPU, whose collectives the runtime stages
 * through pinned host memory): PCIe Gen4 x16 on the A100 (64 GB/s both
 * ways, 32 each), Gen5 x16 on the H100 and H200 (128 GB/s, 64 each); a
 * staged transfer copies to the host, through MPI's shared memory (one
 * copy at the CPU preset's 20 GB/s, read and written: 10 GB/s) and back,
 * one after the other, and each of the three steps waits for its own
 * completion (about 10 us a synchronized cudaMemcpy, an estimate).
 * CPU: one core of an AVX-512 machine: 2 FMA units x 16 fp32 lanes x 2 FLOPs
 * at 1.8 GHz = 115 GFLOP/s, of which OpenBLAS sgemm reaches 94 (0.82).
 * There is no native bf16: the CPU runtime computes in fp32. */
#include "hw.h"

#include <string.h>

typedef struct Preset {
    double fp32, half;    /* peak TFLOP/s */
    double efficiency;
    double mem_bw;        /* GB/s */
    double memory_gib;
    double intra_bw, inter_bw; /* GB/s per device, one direction */
    double intra_lat, inter_lat; /* us */
    double overlap;
    bool overlaps; /* the program runs gradient collectives beside compute */
    double host_bw; /* GB/s one direction between the device and pinned host memory; 0: the host itself */
} Preset;

static const Preset presets[] = {
    /* CPU ranks: the runtime's MPI collectives block (Open MPI progresses
     * non-blocking ones only inside MPI calls), so nothing overlaps */
    [DEVICE_CPU] = {0.115, 0.115, 0.82, 20, 0, 5, 1, 1, 10, 1.1, false},
    [DEVICE_A100_40GB] = {19.5, 312, 0.60, 1555, 40, 300, 25, 5, 10, 1.3, true, 32},
    [DEVICE_A100_80GB] = {19.5, 312, 0.60, 2039, 80, 300, 25, 5, 10, 1.3, true, 32},
    [DEVICE_H100_SXM] = {67, 989, 0.50, 3350, 80, 450, 50, 5, 10, 1.3, true, 64},
    [DEVICE_H200] = {67, 989, 0.50, 4800, 141, 450, 50, 5, 10, 1.3, true, 64},
};

/* Bytes/s of a staged transfer: device to host at host_bw, one copy between
 * the ranks at half the CPU's memory bandwidth (read and written), host to
 * device at host_bw, one after the other. */
static double staged_bandwidth(double host_bw) {
    double copy = presets[DEVICE_CPU].mem_bw * 1e9 / 2;
    return 1 / (2 / host_bw + 1 / copy);
}

/* Fill hw with the datasheet figures of a device kind. */
void hw_preset(HwProfile *hw, DeviceKind kind) {
    const Preset *p = &presets[kind];
    memset(hw, 0, sizeof *hw);
    hw->name = device_kind_names[kind];
    hw->peak_flops[PREC_FP32] = p->fp32 * 1e12;
    hw->peak_flops[PREC_BF16] = hw->peak_flops[PREC_FP16] = p->half * 1e12;
    hw->gemm_efficiency = p->efficiency;
    hw->mem_bandwidth = p->mem_bw * 1e9;
    hw->memory = (int64_t)(p->memory_gib * (1 << 30));
    hw->overlap_slowdown = p->overlap;
    hw->overlaps = p->overlaps;
    hw->intra = (LinkProfile){p->intra_bw * 1e9, p->intra_lat * 1e-6};
    hw->inter = (LinkProfile){p->inter_bw * 1e9, p->inter_lat * 1e-6};
    hw->staged = hw->intra;
    if (p->host_bw > 0) hw->staged = (LinkProfile){staged_bandwidth(p->host_bw * 1e9), 3 * 10e-6};
}
