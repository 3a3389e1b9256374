/* passes.h — the compiler's passes, one file and one entry point each. */
#ifndef GALVC_PASSES_H
#define GALVC_PASSES_H

#include "ir/ir.h"

/* Shapes, parameters, FLOPs and activation bytes of every layer (shape.c).
 * Also checks what only whole-model context can: widths that must agree,
 * heads that must divide, a head at the end. False on user error. */
bool pass_shape(Spec *spec, Diag *d);

/* The candidate strategies for `devices` (a power of two), with or without
 * checkpointing, less what the hints forbid (hints may be NULL). False when
 * devices is not a power of two. */
typedef struct StrategySet {
    Strategy *items;
    int n, cap;
} StrategySet;

bool pass_prune(int64_t devices, bool ckpt, const PlanHints *hints, Arena *a, StrategySet *out);

#endif
