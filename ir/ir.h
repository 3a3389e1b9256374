/* ir.h — the shared vocabulary of galvc: arenas, source locations and
 * diagnostics, the layer Graph, the Cluster, the training setup and the plan
 * hints. The frontend fills these; every pass reads them. */
#ifndef GALVC_IR_H
#define GALVC_IR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- memory --------------------------------------------------------------- */

/* A bump allocator: a compilation's nodes, names and source text live in one
 * arena and are freed together, so every pointer and location stays valid in
 * every pass. */
typedef struct Arena Arena;

Arena *arena_new(void);
void arena_free(Arena *a);
void *arena_alloc(Arena *a, size_t size); /* zeroed, 16-byte aligned */
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_strdup(Arena *a, const char *s);
char *arena_printf(Arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Internal bugs, never user errors: name the place and abort. */
#define die(...) die_at(__FILE__, __LINE__, __VA_ARGS__)
_Noreturn void die_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- sources and diagnostics --------------------------------------------- */

/* One file (or command-line snippet) read into the arena. The text always
 * ends in a newline and holds no embedded terminator beyond `len`. */
typedef struct SourceFile {
    const char *path;    /* as the user named it, for messages */
    const char *display; /* the name diagnostics print */
    const char *text;
    size_t len;
    const struct Loc *included_at; /* the include that named it; NULL: the command line did */
} SourceFile;

/* Read a regular file whole (at most max_bytes) into the arena; devices,
 * pipes and folders are refused, so nothing can hang (source.c). 0 or an
 * errno value. */
int source_read_file(Arena *a, const char *path, size_t max_bytes, char **text, size_t *len);

/* A place in a source: 1-based line and columns (bytes), end exclusive;
 * line 0 means the whole file. */
typedef struct Loc {
    const SourceFile *file;
    int line, col, end_col;
} Loc;

typedef struct Diag {
    FILE *out;      /* where messages go; NULL keeps quiet (the fuzzer) */
    int errors;     /* user errors reported so far */
    int max_errors; /* stop reporting (and say so) after this many */
    bool suppressed;
} Diag;

void diag_init(Diag *d, FILE *out);
/* `file:line:col: error: message`, the source line, a caret under the culprit. */
void diag_error(Diag *d, Loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void diag_verror(Diag *d, Loc loc, const char *fmt, va_list ap);
/* A note attached to the previous error (`note:` instead of `error:`). */
void diag_note(Diag *d, Loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* For "did you mean": the one of names (n of them, or NULL-terminated when
 * n < 0) closest to word, if it is within two edits; else NULL. */
const char *diag_suggest(const char *word, const char *const *names, int n);
/* An error with no source place: `galvc: error: message`. */
void diag_plain(Diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- units ---------------------------------------------------------------- */

/* What a number measures. Counts (K, M, B, T) are plain numbers. */
typedef enum Dim { DIM_NONE, DIM_BYTES, DIM_RATE, DIM_TIME } Dim;

const char *dim_name(Dim d);

/* ---- layers --------------------------------------------------------------- */

/* X(ENUM, "name in .gv") — one line adds a layer kind. */
#define LAYER_KINDS(X)                                                         \
    X(EMBEDDING, "embedding")                                                  \
    X(PATCH_EMBEDDING, "patch_embedding")                                      \
    X(ENCODER, "encoder")                                                      \
    X(DECODER, "decoder")                                                      \
    X(CROSS_DECODER, "cross_decoder")                                          \
    X(ATTENTION, "attention")                                                  \
    X(WINDOW_ATTENTION, "window_attention")                                    \
    X(MLP, "mlp")                                                              \
    X(LAYERNORM, "layernorm")                                                  \
    X(RMSNORM, "rmsnorm")                                                      \
    X(LM_HEAD, "lm_head")                                                      \
    X(CLASSIFIER, "classifier")                                                \
    X(PATCH_MERGING, "patch_merging")

typedef enum LayerKind {
#define X(e, s) LAYER_##e,
    LAYER_KINDS(X)
#undef X
        LAYER_KIND_COUNT
} LayerKind;

extern const char *const layer_kind_names[LAYER_KIND_COUNT];

#define ACTIVATIONS(X) X(GELU, "gelu") X(RELU, "relu") X(SWIGLU, "swiglu") X(GEGLU, "geglu")
typedef enum Activation {
#define X(e, s) ACT_##e,
    ACTIVATIONS(X)
#undef X
} Activation;

#define NORMS(X) X(LAYERNORM, "layernorm") X(RMSNORM, "rmsnorm")
typedef enum NormKind {
#define X(e, s) NORM_##e,
    NORMS(X)
#undef X
} NormKind;

#define POSITIONS(X) X(LEARNED, "learned") X(ROTARY, "rotary") X(NONE, "none")
typedef enum PosKind {
#define X(e, s) POS_##e,
    POSITIONS(X)
#undef X
} PosKind;

#define POOLINGS(X) X(CLS, "cls") X(MEAN, "mean")
typedef enum Pooling {
#define X(e, s) POOL_##e,
    POOLINGS(X)
#undef X
} Pooling;

/* Enum spellings, NULL-terminated, indexed by the enum value. */
extern const char *const activation_names[];
extern const char *const norm_names[];
extern const char *const pos_names[];
extern const char *const pool_names[];

/* A per-sample tensor shape (the batch dimension is left out). */
typedef struct Shape {
    int rank;
    int64_t dim[3];
} Shape;

/* One layer of the model: what the user wrote, then what the shape pass
 * derived. Counts of 0 mean "not given": the shape pass infers or defaults. */
typedef struct Layer {
    LayerKind kind;
    const char *name; /* user label, or kind.N */
    Loc loc;
    int index; /* position in the graph */
    bool invalid; /* its arguments had errors: passes skip it */

    /* attributes from the .gv file */
    int64_t vocab, hidden, heads, kv_heads, head_dim, ffn;
    int64_t positions, types, window, classes;
    int64_t image, patch, channels, enc_seq, rel_buckets;
    int act, norm, pos, pool; /* Activation, NormKind, PosKind, Pooling */
    bool bias, tied, causal, pre_norm, transform, cls_token, pooler;
    bool shift; /* a windowed block: Swin's shifted windows (by window / 2) */
    double dropout, eps;

    /* derived by pass_shape, per sample */
    int64_t seq;        /* tokens this layer processes */
    Shape in, out;      /* element shapes of its input and output */
    int64_t params;     /* trainable parameters */
    int64_t fwd_flops;  /* forward FLOPs (2 per multiply-add) */
    int64_t bwd_flops;  /* backward FLOPs: input and weight gradients */
    int64_t act_bytes;  /* activations the backward pass keeps */
    int64_t out_bytes;  /* the tensor handed to the next layer */
} Layer;

/* The model: its layers in execution order. */
typedef struct Graph {
    Arena *arena;
    const char *name;
    Loc loc;
    Layer **layers;
    int n_layers, cap_layers;
    /* totals, filled by pass_shape */
    int64_t total_params, total_fwd_flops, total_bwd_flops, total_act_bytes;
} Graph;

Layer *graph_add_layer(Graph *g, LayerKind kind, Loc loc);

/* What the runtime makes of a layer (ir/runtime_layer.c): its GrtLayerKind
 * for IR kind k whatever the layer's options, or -1; the kind it trains the
 * layer as, or -1 with the reason it cannot yet; the GrtLayerSpec the
 * program declares for it (runtime/galvrt.h), false if too large for it. */
struct GrtLayerSpec;
int layer_runtime_base_kind(LayerKind k);
int layer_profile_kind(LayerKind k); /* the ProfileLayer its times are fitted as, or -1 */
int layer_runtime_kind(const struct Graph *g, const Layer *l, const char **why);
int graph_t5_cross(const struct Graph *g);
bool layer_runtime_spec(const Graph *g, const Layer *l, struct GrtLayerSpec *s);
/* Does the runtime split l over TP degree tp (heads, key/value heads, FFN)? */
bool layer_tp_splits(const Layer *l, int tp);
bool graph_tp_splits(const Graph *g, int tp);
/* Does the runtime run every layer of g with Megatron sequence parallelism over tp (runtime_layer.c)? */
bool graph_sp_splits(const Graph *g, int tp);
/* Does the runtime run every layer of g with context parallelism over cp (runtime_layer.c)? */
bool graph_cp_splits(const Graph *g, int cp);

/* ---- the cluster ------------------------------------------------------------ */

#define DEVICE_KINDS(X)                                                        \
    X(CPU, "cpu")                                                              \
    X(A100_40GB, "a100_40gb")                                                  \
    X(A100_80GB, "a100_80gb")                                                  \
    X(H100_SXM, "h100_sxm")                                                    \
    X(H200, "h200")

typedef enum DeviceKind {
#define X(e, s) DEVICE_##e,
    DEVICE_KINDS(X)
#undef X
} DeviceKind;

extern const char *const device_kind_names[];

#define LINK_KINDS(X)                                                          \
    X(SHM, "shm") X(PCIE, "pcie") X(NVLINK, "nvlink") X(INFINIBAND, "infiniband") \
    X(ETHERNET, "ethernet")

typedef enum LinkKind {
#define X(e, s) LINK_##e,
    LINK_KINDS(X)
#undef X
} LinkKind;

extern const char *const link_kind_names[];

/* A link between devices; zero figures mean "use the device preset". */
typedef struct Link {
    bool given;
    int kind;         /* LinkKind */
    double bandwidth; /* bytes/s, one direction, per device */
    double latency;   /* seconds */
} Link;

typedef struct Cluster {
    const char *name;
    Loc loc;
    int64_t nodes, devices_per_node;
    int device;     /* DeviceKind */
    int64_t memory; /* bytes per device */
    Link intra;     /* inside a node */
    Link inter;     /* between nodes */
    const char *profile; /* a measured profile (JSON), or NULL */
    int64_t reserve; /* bytes per device kept back from the plan (a caching allocator's slack); 0: none */
    int64_t ranks_per_device; /* ranks that may share one device (time-shared); in the planner's copy
                                 (hw_share): those that do in the plan. 1: one each */
} Cluster;

/* ---- the hardware model ------------------------------------------------------ */

#define COLLECTIVES(X)                                                                                                 \
    X(ALLREDUCE, "allreduce")                                                                                          \
    X(ALLGATHER, "allgather") X(REDUCESCATTER, "reducescatter") X(P2P, "p2p") X(ALLTOALL, "alltoall")

typedef enum Collective {
#define X(e, s) COLL_##e,
    COLLECTIVES(X)
#undef X
        COLL_COUNT
} Collective;

extern const char *const collective_names[];

enum { PROFILE_MAX_LOG2 = 30 }; /* groups of up to 2^30 devices */

/* The runtime's layer kinds whose times a profile may give (galvrt.h's
 * GrtLayerKind, as `galvc profile` measures them). */
#define PROFILE_LAYERS(X) X(EMBEDDING, "embedding") X(BLOCK, "block") X(NORM, "norm") X(HEAD, "head")

typedef enum ProfileLayer {
#define X(e, s) PROFILE_LAYER_##e,
    PROFILE_LAYERS(X)
#undef X
        PROFILE_LAYER_COUNT
} ProfileLayer;

extern const char *const profile_layer_names[];

/* A measured layer time fitted to a line: time = fixed_s + work / rate, work
 * in FLOPs (block, head) or bytes (embedding, norm), in proportion to the
 * samples, so it is `fixed + per_sample x b` (docs/profile-format.md). */
typedef struct LayerFit {
    double fixed_s; /* seconds */
    double rate;    /* FLOP/s or bytes/s; 0: not measured */
    bool tp_comm;   /* timed on a TP group, its all-reduces included (galvc profile); else priced apart */
} LayerFit;

/* The work (FLOPs or bytes) a LayerFit divides by its rate: layer l's on
 * `samples` samples of `seq` tokens on one rank of a TP group of tp (the
 * FLOPs split over the group; the (N, C) stream read and written whole);
 * backward does twice the forward's FLOPs and the same bytes (runtime_layer.c). */
double layer_fit_work(const Layer *l, ProfileLayer kind, double samples, double seq, int tp, bool backward);
/* The attention core's share of layer l's forward FLOPs per sample at its
 * sequence (score and context products, 4 s^2 heads head_dim); 0 for a
 * layer that is not a plain block. */
double layer_core_flops(const Layer *l);

/* One level of the interconnect: inside a node or between nodes. */
typedef struct LinkProfile {
    double bandwidth; /* bus bandwidth per device, bytes/s (NCCL's busBw) */
    double latency;   /* seconds per ring step */
} LinkProfile;

/* What the cost model knows of a device kind and its links: a datasheet
 * preset (hw/presets.c), refined by the cluster's link figures and by a
 * measured profile. */
typedef struct HwProfile {
    const char *name;
    double peak_flops[3];    /* FLOP/s, by Precision */
    double gemm_efficiency;  /* fraction of peak that GEMM-heavy layers reach */
    double gemm_rates[3];    /* FLOP/s a GPU's GEMMs reach at the model's shapes: fp32, TF32, bf16; 0: not measured */
    double mem_bandwidth;    /* bytes/s */
    int64_t memory;          /* bytes per device */
    double overlap_slowdown; /* compute time factor while communication overlaps it (>= 1) */
    bool overlaps;           /* gradient collectives run beside compute (else one after the other) */
    double sync_s;           /* seconds each blocking collective costs beyond its transfer (ranks meeting) */
    LinkProfile intra, inter;
    LinkProfile staged; /* a GPU's collectives through pinned host memory and MPI, as the CUDA runtime
                           runs them when ranks share a GPU (runtime/cuda/comm_choice.c); a CPU's: intra */
    /* measured bus bandwidth, bytes/s, by collective, log2 of the group size
     * and nesting (1: consecutive ranks, 0: strided); 0 where not measured */
    double measured_bw[COLL_COUNT][PROFILE_MAX_LOG2 + 1][2];
    /* measured latency of one whole collective (at zero bytes), seconds,
     * indexed as measured_bw; 0 where not measured */
    double measured_lat[COLL_COUNT][PROFILE_MAX_LOG2 + 1][2];
    /* measured layer times by ProfileLayer, log2 of the TP degree, and
     * forward (0) or backward (1) */
    LayerFit layer_fit[PROFILE_LAYER_COUNT][PROFILE_MAX_LOG2 + 1][2];
    /* measured activations of the model's repeated transformer layer (kind
     * act_kind) at act_seq tokens: bytes per sample kept for backward, by
     * log2 of the TP degree, and with checkpointing; act_seq 0: not measured */
    int act_kind;
    int64_t act_seq;
    double act_per_sample[PROFILE_MAX_LOG2 + 1];
    double ckpt_act_per_sample;
    bool act_sp; /* measured with Megatron-SP on (Galvatron's _sp keys): a TP layer without it keeps more */
    /* measured activations of the embedding (0) and of the LM head with the
     * final norm and the loss (1) at other_seq tokens, bytes per sample kept
     * for backward, by log2 of the TP degree; 0 where not measured */
    int64_t other_seq;
    double other_act_per_sample[2][PROFILE_MAX_LOG2 + 1];
} HwProfile;

/* ---- training setup and plan hints ----------------------------------------- */

#define PRECISIONS(X) X(FP32, "fp32", 4) X(BF16, "bf16", 2) X(FP16, "fp16", 2)
typedef enum Precision {
#define X(e, s, b) PREC_##e,
    PRECISIONS(X)
#undef X
} Precision;

extern const char *const precision_names[];
int precision_bytes(Precision p);

#define OPTIMIZERS(X) X(ADAMW, "adamw") X(ADAM, "adam") X(SGD, "sgd")
typedef enum OptimizerKind {
#define X(e, s) OPT_##e,
    OPTIMIZERS(X)
#undef X
} OptimizerKind;

extern const char *const optimizer_names[];

typedef struct Optimizer {
    int kind; /* OptimizerKind */
    double lr, beta1, beta2, eps, weight_decay, momentum;
    bool nesterov; /* SGD: Nesterov momentum */
    double clip; /* global gradient-norm clip; 0 = off */
} Optimizer;

/* The learning rate after warm-up: held, or decayed to min_lr (Megatron's
 * lr-decay-style; llm.c's cosine). */
#define DECAYS(X) X(CONSTANT, "constant") X(LINEAR, "linear") X(COSINE, "cosine")
typedef enum Decay {
#define X(e, s) DECAY_##e,
    DECAYS(X)
#undef X
} Decay;

extern const char *const decay_names[];

typedef struct TrainConfig {
    Loc loc;
    int64_t global_batch; /* samples per step, all devices together */
    int64_t seq;          /* tokens per sample; 0 = from the model */
    int precision;        /* Precision */
    Optimizer opt;
    int64_t steps;
    int64_t warmup;       /* steps of linear warm-up from 0 to the optimizer's lr */
    int decay;            /* Decay, over steps [warmup, decay_steps) */
    double min_lr;        /* where the decay ends */
    int64_t decay_steps;  /* 0: steps */
} TrainConfig;

/* dp: replicated data parallel and ZeRO-1/2; zero: ZeRO-1/2 alone; sdp: ZeRO-3 */
#define STRATEGY_FAMILIES(X)                                                                                           \
    X(DP, "dp")                                                                                                        \
    X(SDP, "sdp") X(TP, "tp") X(PP, "pp") X(CKPT, "ckpt") X(ZERO, "zero") X(SP, "sp") X(ULYSSES, "ulysses") X(CP, "cp")
typedef enum StrategyFamily {
#define X(e, s) FAMILY_##e,
    STRATEGY_FAMILIES(X)
#undef X
} StrategyFamily;

extern const char *const family_names[];

#define SCHEDULES(X) X(AUTO, "auto") X(GPIPE, "gpipe") X(1F1B, "1f1b") X(INTERLEAVED, "interleaved")
typedef enum Schedule {
#define X(e, s) SCHED_##e,
    SCHEDULES(X)
#undef X
} Schedule;

extern const char *const schedule_names[];

/* Steering for the search; zero means "let the search choose". */
typedef struct PlanHints {
    Loc loc;
    int64_t pp;            /* fixed pipeline degree */
    int64_t max_tp;        /* cap on the tensor-parallel degree */
    int64_t micro_batches; /* fixed micro-batch count */
    unsigned forbid;       /* bit per StrategyFamily */
    int schedule;          /* Schedule */
} PlanHints;

/* ---- strategies -------------------------------------------------------------- */

/* How one layer runs: the Galvatron decision tree's leaves. Within a stage of
 * tp * cp * dp devices, TP groups are consecutive ranks (tp_consec) or strided by
 * dp; a context-parallel group (cp > 1) strides by tp over consecutive TP
 * groups, and the DP groups stride by tp * cp (Megatron-Core's tp-cp-dp order); the dp group replicates the layer (DP) or shards part of its training
 * state (ZeRO, Rajbhandari et al. 2020): the optimizer states (ZeRO-1), and
 * the gradients (ZeRO-2), and the parameters (ZeRO-3, `sdp`). */
typedef struct Strategy {
    int pp;         /* pipeline stages of the whole plan */
    int tp, dp;     /* degrees; tp * dp (times cp) = devices per stage */
    bool sdp;       /* dp > 1 and ZeRO-3: parameters, gradients, optimizer states sharded */
    bool tp_consec; /* TP groups on consecutive ranks (always, unless tp > 1 and dp > 1) */
    bool ckpt;      /* activation checkpointing: keep the input, recompute forward */
    int zero;       /* dp > 1 and not sdp: ZeRO stage 1 or 2; 0 plain DP */
    bool zero3_once; /* sdp: the whole gradient accumulated over the micro-batches and
                      * reduce-scattered once a step (else after every micro-batch) */
    bool sp;         /* tp > 1: Megatron sequence parallelism over the TP group (Korthikanti et al. 2022) */
    int ulysses;     /* Ulysses sequence parallelism (Jacobs et al. 2023): the degree u of the group that splits
                      * each sample's tokens, all-to-all'd to a split of the heads inside attention; 0 or 1 none.
                      * Devices per stage tp * u * dp; the weights replicated (or ZeRO-sharded) over u * dp */
    int cp;          /* context parallelism: each sample's sequence split over cp ranks (ring attention,
                      * Liu et al. 2023); 0 or 1 without; tp * cp * dp = devices per stage; never with ulysses */
} Strategy;

/* "pp=1 tp=2 sdp=4 tp-consecutive ckpt" */
const char *strategy_str(char *buf, size_t n, const Strategy *s);
bool strategy_equal(const Strategy *a, const Strategy *b);
/* Its ZeRO stage over the DP group: 0 (plain DP, or dp 1), 1, 2 or 3 (sdp). */
int strategy_zero(const Strategy *s);
/* Are its TP groups consecutive ranks? (Also when tp or dp is 1: then both nestings are one layout.) */
bool strategy_tp_consecutive(const Strategy *s);
/* Does it split the stream's sequence over its TP group (Megatron-SP: sp and tp > 1)? */
bool strategy_sp(const Strategy *s);
/* Its Ulysses degree: 1 when it has none. */
int strategy_ulysses(const Strategy *s);
/* Its context-parallel degree: cp, 1 when not set. */
int strategy_cp(const Strategy *s);
/* Devices of one pipeline stage: tp * ulysses * cp * dp. */
int64_t strategy_stage_devices(const Strategy *s);
/* The group that holds the same weights and sums their gradients, and splits the micro-batch (by samples
 * or positions): ulysses * cp * dp (the DP group's ranks with the Ulysses or CP group's inside each). */
int strategy_replicas(const Strategy *s);
/* Does a micro-batch of `samples` (all DP ranks together) give each DP rank a whole number of them? */
bool strategy_splits(const Strategy *s, int64_t samples);
/* Does the runtime split layer l's tokens over a Ulysses group of u: a transformer layer's heads and
 * key/value heads (over tp * u with TP) and every layer's sequence must divide (runtime_layer.c)? */
bool layer_ulysses_splits(const Layer *l, int tp, int u);
bool graph_ulysses_splits(const Graph *g, int tp, int u);
bool layer_recomputes(LayerKind k);
/* The divisors of n > 0, ascending, in an array from a (*count of them). */
const int64_t *strategy_divisors(int64_t n, Arena *a, int *count);

/* ---- the plan ------------------------------------------------------------------ */

/* The search's answer: pipeline stages, each layer's strategy, the predicted
 * step time and memory. */
typedef struct Plan {
    bool found;
    int pp;
    int64_t micro_batches;
    int schedule;         /* Schedule: GPIPE, 1F1B or INTERLEAVED */
    int vpp;              /* model chunks a stage's devices hold (interleaved 1F1B; 1 otherwise) */
    int *stage_start;     /* [pp + 1]; interleaved, [pp vpp + 1]: chunk c runs layers
                           * [stage_start[c], stage_start[c+1]) on stage c mod pp */
    Strategy *layer;      /* [n_layers] */
    double step_s;        /* predicted time of one training step */
    double compute_s;     /* the slowest stage's compute, all micro-batches */
    double comm_s;        /* its communication not hidden behind compute */
    double bubble_s;      /* pipeline fill and drain */
    double calls;         /* blocking collectives a step on the busiest stage (each costs sync_s more) */
    int64_t *stage_mem;   /* [pp]: predicted peak bytes per device */
    int64_t peak;         /* the largest of stage_mem */
    int64_t *in_flight;   /* [pp]: micro-batches whose activations a stage holds at once;
                           * interleaved, [pp vpp]: each chunk's */
    int64_t budget;       /* bytes per device the plan may use: the memory less the reserve */
    int64_t reserve;      /* bytes per device kept back for the allocator (the cluster's reserve) */
    double search_ms;
} Plan;

/* Stage k's forward (j >= 0) and backward (-j - 1) passes of m micro-batches
 * in the order `schedule` runs them, into order[2 m]; the count (schedule.c). */
int64_t schedule_order(int schedule, int pp, int k, int64_t m, int64_t *order);
/* Interleaved 1F1B: stage k's passes over its v chunks (model chunk c = j pp + k
 * for its j-th), into chunk[2 m v] and order[2 m v] (order as schedule_order's);
 * m a multiple of pp. The count, 2 m v. */
int64_t schedule_interleaved(int pp, int v, int k, int64_t m, int *chunk, int64_t *order);
/* The micro-batches each chunk of stage k holds at once under that order, into held[v]. */
void schedule_interleaved_held(int pp, int v, int k, int64_t m, int64_t *held);
/* Chunks of an interleaved plan (pp vpp), else its stages (pp). */
static inline int plan_chunks(const Plan *p) { return p->pp * (p->vpp > 1 ? p->vpp : 1); }

/* ---- one step in time ------------------------------------------------------------ */

/* What a stage does in a span of the step; X(ENUM, "class in the picture"). */
#define SPAN_KINDS(X)                                                          \
    X(FWD, "fwd") X(BWD, "bwd") X(RECOMPUTE, "recompute") X(COMM, "comm") X(OPTIMIZER, "optimizer") X(BUBBLE, "bubble")

typedef enum SpanKind {
#define X(e, s) SPAN_##e,
    SPAN_KINDS(X)
#undef X
        SPAN_KIND_COUNT
} SpanKind;

extern const char *const span_kind_names[];

/* What a stage's memory holds, per device; X(ENUM, "class", "label"). */
#define MEM_PARTS(X)                                                           \
    X(PARAMS, "params", "parameters") X(GRADS, "grads", "gradients")           \
    X(OPTIMIZER, "optimizer", "optimizer states") X(ACTIVATIONS, "activations", "activations in flight") \
    X(WORK, "work", "working space") X(RESERVE, "reserve", "buffers and reserve")

typedef enum MemPart {
#define X(e, s, l) MEM_##e,
    MEM_PARTS(X)
#undef X
        MEM_PART_COUNT
} MemPart;

extern const char *const mem_part_names[];  /* the classes */
extern const char *const mem_part_labels[]; /* the words */

/* One span of one stage's step. */
typedef struct Span {
    int kind;          /* SpanKind */
    int stage;
    int64_t mb;        /* micro-batch, or -1: once a step (gradient sync, optimizer, bubble) */
    double start_s, end_s;
    const char *what;  /* for COMM: "TP", "ZeRO-3", "p2p", "DP all-reduce", ...; else NULL */
} Span;

/* A plan's step as spans in time, from the cost model's figures for its
 * strategies (passes/timeline.c), and each stage's memory by part. */
typedef struct Timeline {
    int pp;
    int64_t micro_batches;
    Span *spans;
    int64_t n_spans;
    double end_s;                    /* when the last stage finishes: the step's length on this schedule */
    int64_t (*mem)[MEM_PART_COUNT];  /* [pp]: bytes per device; the parts add up to the plan's stage_mem */
} Timeline;

/* ---- what the user specified -------------------------------------------- */

/* One compilation's input after the frontend: the model graph, the cluster it
 * runs on, the training setup, the hints, and every file that was read. */
typedef struct Spec {
    Arena *arena;
    Graph *graph;
    Cluster *cluster;
    TrainConfig *train;
    PlanHints hints;
    const SourceFile **files; /* in the order first read */
    int n_files;
    bool host_target; /* the program runs on CPU ranks (--target cpu, or a CPU cluster without --target) */
} Spec;

/* GrtLayerSpec.gemm16 of spec's program (ir/runtime_layer.c): 0 in fp32;
 * under bf16, how its target holds the GEMMs' rounded operands
 * (GRT_GEMM16_BITS on a GPU, GRT_GEMM16_WIDE on the host: runtime/galvrt_sizes.h). */
int spec_gemm16(const Spec *spec);
/* Does the emitted program run Ulysses for this spec (runtime_layer.c: CPU ranks)? Where it does not,
 * the backend refuses a plan given with it. Does the search offer it (not yet)? */
bool runtime_runs_ulysses(const Spec *spec);
bool search_offers_ulysses(const Spec *spec);

/* Readable views of the IR (ir/print.c). */
const char *bytes_str(char *buf, size_t n, double bytes); /* "1.50 MiB" */
void ir_print_table(FILE *out, const Spec *spec);
int ir_print_json(FILE *out, const Spec *spec); /* 0 on success */

#endif
