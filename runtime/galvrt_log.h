/* galvrt_log.h — the keys of a training log (./train --log FILE.jsonl,
 * docs/training-log.md), written down once: the runtime writes it (run.c)
 * and galvc --calibrate reads it (hw/log.c). Plain macros, no includes.
 *
 * The log is JSON lines: first {"plan": {...}}, what the plan predicted;
 * then one line per step; at the end one line per rank with its memory.
 * LOG_KEY_<NAME> spells a key. Each table lists one line's keys as
 * X(NAME, unit) (NULL: none). */
#ifndef GALVRT_LOG_H
#define GALVRT_LOG_H

#define LOG_KEY_PLAN "plan"
#define LOG_KEY_MODEL "model"
#define LOG_KEY_RANKS "ranks"
#define LOG_KEY_PP "pp"
#define LOG_KEY_MICRO_BATCHES "micro_batches"
#define LOG_KEY_PREDICTED_STEP_MS "predicted_step_ms"
#define LOG_KEY_PREDICTED_COMPUTE_MS "predicted_compute_ms"
#define LOG_KEY_PREDICTED_COMM_MS "predicted_comm_ms"
#define LOG_KEY_PREDICTED_BUBBLE_MS "predicted_bubble_ms"
#define LOG_KEY_PREDICTED_CALLS "predicted_calls"
#define LOG_KEY_STEP "step"
#define LOG_KEY_LOSS "loss"
#define LOG_KEY_ACCURACY "accuracy"
#define LOG_KEY_LR "lr"
#define LOG_KEY_MS "ms"
#define LOG_KEY_TOKENS_PER_S "tokens_per_s"
#define LOG_KEY_PEAK_MEM_BYTES "peak_mem_bytes"
#define LOG_KEY_RANK "rank"
#define LOG_KEY_STAGE "stage"
#define LOG_KEY_PLANNED_MEM_BYTES "planned_mem_bytes"

/* The first line's "plan" object: the step time predicted and its parts. */
#define LOG_PLAN_KEYS(X)                                                                                               \
    X(MODEL, NULL)                                                                                                     \
    X(RANKS, NULL)                                                                                                     \
    X(PP, NULL)                                                                                                        \
    X(MICRO_BATCHES, NULL)                                                                                             \
    X(PREDICTED_STEP_MS, "ms")                                                                                         \
    X(PREDICTED_COMPUTE_MS, "ms")                                                                                      \
    X(PREDICTED_COMM_MS, "ms")                                                                                         \
    X(PREDICTED_BUBBLE_MS, "ms")                                                                                       \
    X(PREDICTED_CALLS, "blocking collectives a step")

/* A step's line. */
#define LOG_STEP_KEYS(X) X(STEP, NULL) X(LOSS, NULL) X(LR, NULL) X(MS, "ms") X(TOKENS_PER_S, "tokens/s") X(PEAK_MEM_BYTES, "bytes")
/* and, in a classifier's (ViT, BERT's sequence classifier), after the loss */
#define LOG_STEP_CLASSIFIER_KEYS(X) X(ACCURACY, "fraction")

/* A rank's line at the end: its peak memory beside its stage's prediction. */
#define LOG_MEMORY_KEYS(X) X(RANK, NULL) X(STAGE, NULL) X(PEAK_MEM_BYTES, "bytes") X(PLANNED_MEM_BYTES, "bytes")

#endif
