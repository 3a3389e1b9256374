/* state_io.h — libgalvrt's internal header for loading the training state,
 * shared by ckpt_state.c (checkpoints) and hf_names.c (--init-safetensors):
 * both fill a rank's parameters from whole tensors, each from its own source,
 * through one loader that cuts every tensor to the rank's TP shard and ZeRO-3
 * part. Generated programs never include it. */
#ifndef GALVRT_STATE_IO_H
#define GALVRT_STATE_IO_H

#include "galvrt.h"

/* The arrays of the training state a whole tensor is asked for. */
enum { GRT_ARR_PARAMS = 0, GRT_ARR_M = 1, GRT_ARR_V = 2 };

/* Where the whole tensors of a load come from: fill whole (rows x cols of
 * layer i's tensor k, array GRT_ARR_*) and return 1, or return 0 for zeros;
 * -1 on failure with the reason in err. */
typedef int (*GrtWholeFn)(void *ctx, int i, int k, int array, float *whole, char *err, size_t errlen);

/* Fill every parameter (and Adam's m and v) this rank stores from source's
 * whole tensors: each cut to this rank's TP shard, then to its ZeRO-3 part.
 * A tied head's own copy of the table comes from the embedding's. Returns 1,
 * or 0 with the reason in err on failure (not collective). */
int grt_load_model(GrtRun *R, GrtWholeFn source, void *ctx, char *err, size_t errlen);

#endif
