/* passes.h — the compiler's passes, one file and one entry point each. */
#ifndef GALVC_PASSES_H
#define GALVC_PASSES_H

#include "ir/ir.h"

/* Shapes, parameters, FLOPs and activation bytes of every layer (shape.c).
 * Also checks what only whole-model context can: widths that must agree,
 * heads that must divide, a head at the end. False on user error. */
bool pass_shape(Spec *spec, Diag *d);

/* The candidate strategies for `devices` (1 to 2^30; every degree a divisor),
 * with or without checkpointing, less what the hints forbid (hints may be
 * NULL). False when devices is out of that range. */
typedef struct StrategySet {
    Strategy *items;
    int n, cap;
} StrategySet;

bool pass_prune(int64_t devices, bool ckpt, const PlanHints *hints, Arena *a, StrategySet *out);

/* What one layer costs under one strategy, for a given micro-batch count. */
typedef struct LayerCost {
    double mb_s;        /* one micro-batch: forward, backward, recomputation, TP and SDP traffic */
    double compute_s;   /* the compute part of mb_s */
    double step_s;      /* once per step: the DP gradient all-reduce not hidden by backward */
    int64_t state_bytes; /* parameters, gradients, optimizer states on one device */
    int64_t act_bytes;   /* activations kept per micro-batch in flight */
    /* shared by the layers of a stage, so a stage holds the largest of each: */
    int64_t work_bytes;  /* working space while the layer runs */
    int64_t ckpt_bytes;  /* of the stage's checkpoint area: checkpointed, the activations rebuilt in
                          * backward; a bf16 block, its kept activations' fp32 copy */
    int64_t shard_bytes; /* ZeRO-3: the gathered weights */
    int64_t scatter_bytes; /* ZeRO-2, ZeRO-3 reducing every micro-batch: the whole gradient and the part received */
    int64_t stream_bytes; /* one micro-batch's activation entering the layer, on one device */
    int64_t
        stream_out_bytes; /* and leaving it (a quarter of the tokens at twice the width past Swin's patch merging) */
    double calls_mb, calls_step; /* blocking collectives per micro-batch, per step */
    /* the parts of the figures above, for the timeline (timeline.c): */
    double fwd_s;       /* forward compute, part of compute_s; the backward is compute_s - fwd_s - recompute_s */
    double recompute_s; /* checkpointed: the forward again before the backward, part of compute_s */
    double fwd_comm_s;  /* the forward's share of mb_s - compute_s (TP all-reduces, ZeRO-3 gathers, their meetings) */
    double opt_s;       /* the optimizer step, part of step_s; the rest is the exposed gradient sync */
    int64_t param_bytes, grad_bytes; /* parts of state_bytes; the rest is optimizer state */
} LayerCost;

typedef struct CostTable {
    int n_layers, n_strategies;
    const Strategy *strategies;
    int64_t micro_batches;
    LayerCost *cost;  /* [layer * n_strategies + strategy] */
    double *reshard;  /* [(layer * n + prev) * n + strategy]: converting layer-1's output, per micro-batch */
    double *p2p_s;    /* [layer]: sending its output to the next stage, per micro-batch */
    int64_t token_bytes; /* a micro-batch's input tokens and targets, held per micro-batch in flight */
    int64_t loss_bytes;  /* its per-token losses */
    /* a head tied to the embedding's table: when the two run in different
     * stages or layouts the program keeps a copy at the head and sums the
     * two gradients through a (vocab, hidden) buffer */
    int tied_emb, tied_head;   /* layer indices, or -1 */
    int64_t *tied_copy_bytes;  /* [strategy]: the copy's state under the head's strategy */
    int64_t tied_sum_bytes;    /* the buffer summing the two gradients */
    const bool *force_ckpt;    /* [layer]: its strategy must checkpoint or not (NULL: free) */
    const bool *may_ckpt;      /* [layer]: checkpointing applies to it (layer_recomputes) */
    bool one_device;           /* every rank time-shares one device (hw/share.c: each costed at 1/k of it) */
} CostTable;

/* Cost every layer under every strategy of `set` (which share one pp) when the global batch is
 * split into `micro_batches` (cost.c). False if the split is impossible. */
bool pass_cost(const Spec *spec, const HwProfile *hw, const StrategySet *set, int64_t micro_batches, Arena *a,
               CostTable *out);

/* What to search for. Zero fields take the model's hints or the defaults. */
typedef struct SearchRequest {
    int64_t devices;
    const Strategy *uniform; /* every layer runs this one (no per-layer search) */
    int schedule;            /* Schedule; SCHED_AUTO: the hint's, else 1F1B or interleaved, whichever is faster */
    bool flat_pipeline;      /* GPipe or 1F1B only, never interleaved (a plan for Galvatron's config) */
    int vpp;                 /* with uniform: model chunks a stage holds (1: not interleaved; 0: any) */
    int64_t micro_batches;   /* 0: the hint's, else every count that divides */
    int64_t budget;          /* bytes per device; 0: the hardware's memory */
    bool min_memory;         /* minimize peak memory instead of step time */
    int ckpt_every;          /* with uniform: checkpoint every K-th transformer layer, no other */
    const Plan *fixed;       /* cost this plan's stages, strategies and micro-batches; no search */
    bool ulysses;            /* search Ulysses strategies too (main.c: where the program runs them) */
} SearchRequest;

/* Find the fastest plan that fits every device's memory: for each PP degree,
 * micro-batch count and stage partition, a dynamic program per stage over its
 * layers (search.c); TP degrees that do not split the transformer layers'
 * heads and FFN are left out. plan->found is false when nothing fits; false
 * when the device count is out of pass_prune's range. */
bool pass_search(const Spec *spec, const HwProfile *hw, const SearchRequest *req, Arena *a, Plan *plan);
/* Does the search try context parallelism for spec on `devices` from the
 * start (one sample's activations, split over a node's TP group, exceed a
 * device)? Otherwise it does only when nothing fits without it. */
bool search_tries_cp(const Spec *spec, const HwProfile *hw, int64_t devices);

/* Refit `profile`'s coefficients from training logs (./train --log): print
 * each run's prediction error before and after, write the refitted profile
 * to `output` (calibrate.c). False, with the reasons printed, on bad input. */
bool pass_calibrate(const char *const *logs, int n_logs, const char *profile, const char *output, FILE *report);

typedef enum PlanFormat { PLAN_TABLE, PLAN_JSON, PLAN_GALVATRON } PlanFormat;

/* Print the chosen plan as a table, as JSON or as Galvatron's config, with
 * each layer's runner-up when `explain` (plan.c); 0 on success. */
int pass_plan(FILE *out, const Spec *spec, const HwProfile *hw, const Plan *plan, int64_t devices, PlanFormat format,
              bool explain, Arena *a);

/* The plan's step as spans in time and its stages' memory by part, from the
 * cost model's figures for its strategies (timeline.c). False when the plan
 * was not found. */
bool pass_timeline(const Spec *spec, const HwProfile *hw, const Plan *plan, Arena *a, Timeline *out);

/* Galvatron's galvatron_config JSON (galvatron.c): write the plan in it,
 * or, when the format cannot say the plan, report each layer it cannot say
 * and return -1 with nothing written; read one for the model into plan (its
 * stages, strategies, micro-batches and schedule, left for pass_search to
 * cost), false after located errors. */
int galvatron_write(FILE *out, const Spec *spec, const Plan *plan, int64_t devices, Diag *d);
bool galvatron_read(const char *path, const Spec *spec, int64_t devices, Arena *a, Plan *plan, Diag *d);

typedef struct Baseline {
    const char *name;
    Plan plan;     /* found when it fits */
    int64_t needs; /* when it does not fit: its smallest peak memory per device */
    bool possible; /* the global batch splits over its devices at all */
} Baseline;

enum { BASELINE_COUNT = 8 };

/* Cost the baselines (pure DP, SDP, TP, PP, the Megatron and DeepSpeed
 * grids) with the same model into b[], and print them beside the chosen plan
 * when `out` is not NULL (baselines.c). */
void pass_baselines(FILE *out, const Spec *spec, const HwProfile *hw, int64_t devices, const Plan *chosen, Arena *a,
                    Baseline b[BASELINE_COUNT]);

#endif
