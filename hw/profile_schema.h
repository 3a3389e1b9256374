/* profile_schema.h — the keys of a galvc profile (docs/profile-format.md),
 * written down once. The reader (profile.c), calibration's rewriting
 * (profile_write.c), the doc's check (tests/unit/test_profile.c) and
 * galvc-profiler's writer (tools/profiler_main.c) all name them from here.
 * Plain macros and no includes, so code built with the runtime can use it.
 *
 * PROFILE_KEY_<NAME> spells a key. Each table lists one object's keys as
 * X(NAME, unit): the unit messages give (NULL: none). */
#ifndef GALVC_PROFILE_SCHEMA_H
#define GALVC_PROFILE_SCHEMA_H

#define PROFILE_FORMAT "galvc-profile" /* the value of "format" */
#define PROFILE_VERSION 1              /* the value of "version", the only one read */

#define PROFILE_KEY_FORMAT "format"
#define PROFILE_KEY_VERSION "version"
#define PROFILE_KEY_DEVICE "device"
#define PROFILE_KEY_BLAS "blas"
#define PROFILE_KEY_PEAK_FLOPS "peak_flops"
#define PROFILE_KEY_GEMM_RATES "gemm_rates"
#define PROFILE_KEY_GEMM_EFFICIENCY "gemm_efficiency"
#define PROFILE_KEY_MEM_BANDWIDTH "mem_bandwidth"
#define PROFILE_KEY_OVERLAP_SLOWDOWN "overlap_slowdown"
#define PROFILE_KEY_SYNC_OVERHEAD "sync_overhead"
#define PROFILE_KEY_INTRA "intra"
#define PROFILE_KEY_INTER "inter"
#define PROFILE_KEY_COLLECTIVES "collectives"
#define PROFILE_KEY_LAYERS "layers"
#define PROFILE_KEY_BANDWIDTH "bandwidth"
#define PROFILE_KEY_LATENCY "latency"
#define PROFILE_KEY_OP "op"
#define PROFILE_KEY_GROUP "group"
#define PROFILE_KEY_CONSECUTIVE "consecutive"
#define PROFILE_KEY_BUS_BANDWIDTH "bus_bandwidth"
#define PROFILE_KEY_KIND "kind"
#define PROFILE_KEY_TP "tp"
#define PROFILE_KEY_FORWARD "forward"
#define PROFILE_KEY_BACKWARD "backward"
#define PROFILE_KEY_FIXED_S "fixed_s"
#define PROFILE_KEY_RATE "rate"

/* The profile: one JSON object. peak_flops is keyed by precision (ir.h's PRECISIONS). */
#define PROFILE_KEYS(X)                                                                                                \
    X(FORMAT, NULL)                                                                                                    \
    X(VERSION, NULL)                                                                                                   \
    X(DEVICE, NULL)                                                                                                    \
    X(BLAS, NULL)                                                                                                      \
    X(PEAK_FLOPS, "FLOP/s")                                                                                            \
    X(GEMM_RATES, "FLOP/s")                                                                                            \
    X(GEMM_EFFICIENCY, NULL)                                                                                           \
    X(MEM_BANDWIDTH, "bytes/s")                                                                                        \
    X(OVERLAP_SLOWDOWN, NULL)                                                                                          \
    X(SYNC_OVERHEAD, "seconds")                                                                                        \
    X(INTRA, NULL)                                                                                                     \
    X(INTER, NULL)                                                                                                     \
    X(COLLECTIVES, NULL)                                                                                               \
    X(LAYERS, NULL)

/* "gemm_rates": a GPU's GEMMs at the model's shapes, by arithmetic
 * (galvrt.h's GrtGemmMath order): fp32 with TF32 off, TF32, bf16 with fp32
 * accumulation. */
#define PROFILE_GEMM_FP32 "fp32"
#define PROFILE_GEMM_TF32 "tf32"
#define PROFILE_GEMM_BF16 "bf16"
#define PROFILE_GEMM_MATHS(X) X(PROFILE_GEMM_FP32) X(PROFILE_GEMM_TF32) X(PROFILE_GEMM_BF16)

/* "intra" and "inter": one level of the interconnect. */
#define PROFILE_LINK_KEYS(X) X(BANDWIDTH, "bytes/s") X(LATENCY, "seconds")

/* An entry of "collectives": one measured collective. */
#define PROFILE_COLLECTIVE_KEYS(X)                                                                                     \
    X(OP, NULL) X(GROUP, "devices") X(CONSECUTIVE, NULL) X(BUS_BANDWIDTH, "bytes/s") X(LATENCY, "seconds")

/* An entry of "layers": one layer kind's fitted times at one TP degree. */
#define PROFILE_LAYER_KEYS(X) X(KIND, NULL) X(TP, "devices") X(FORWARD, NULL) X(BACKWARD, NULL)

/* A layer's "forward" and "backward": time = fixed_s + work / rate. */
#define PROFILE_FIT_KEYS(X) X(FIXED_S, "seconds") X(RATE, "FLOP/s or bytes/s")

#endif
