/* names.c — the spellings of the IR's enums, as the .gv language writes them,
 * generated from the X-macro tables in ir.h. */
#include "ir.h"

#define NAME(e, s) s,
#define NAME3(e, s, b) s,
const char *const layer_kind_names[LAYER_KIND_COUNT] = {LAYER_KINDS(NAME)};
const char *const activation_names[] = {ACTIVATIONS(NAME) NULL};
const char *const norm_names[] = {NORMS(NAME) NULL};
const char *const pos_names[] = {POSITIONS(NAME) NULL};
const char *const pool_names[] = {POOLINGS(NAME) NULL};
const char *const device_kind_names[] = {DEVICE_KINDS(NAME) NULL};
const char *const link_kind_names[] = {LINK_KINDS(NAME) NULL};
const char *const collective_names[] = {COLLECTIVES(NAME) NULL};
const char *const profile_layer_names[] = {PROFILE_LAYERS(NAME) NULL};
const char *const precision_names[] = {PRECISIONS(NAME3) NULL};
const char *const optimizer_names[] = {OPTIMIZERS(NAME) NULL};
const char *const family_names[] = {STRATEGY_FAMILIES(NAME) NULL};
const char *const schedule_names[] = {SCHEDULES(NAME) NULL};
const char *const decay_names[] = {DECAYS(NAME) NULL};
const char *const span_kind_names[] = {SPAN_KINDS(NAME) NULL};
#define CLASS3(e, s, l) s,
#define LABEL3(e, s, l) l,
const char *const mem_part_names[] = {MEM_PARTS(CLASS3) NULL};
const char *const mem_part_labels[] = {MEM_PARTS(LABEL3) NULL};
#undef CLASS3
#undef LABEL3
#undef NAME
#undef NAME3

/* Bytes per element of activations and weights in this precision. */
int precision_bytes(Precision p) {
    switch (p) {
#define X(e, s, b) case PREC_##e: return b;
        PRECISIONS(X)
#undef X
    }
    die("bad precision %d", (int)p);
}

const char *dim_name(Dim d) {
    switch (d) {
    case DIM_NONE: return "a plain number";
    case DIM_BYTES: return "a size in bytes";
    case DIM_RATE: return "a rate in bytes per second";
    case DIM_TIME: return "a time";
    }
    die("bad dim %d", (int)d);
}
