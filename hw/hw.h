/* hw.h — the hardware model's inputs and outputs in one place: the device
 * presets, reading a measured profile (galvc's format or Galvatron's),
 * calibration's rewriting of a profile, and reading a training log. The
 * profile's keys are in profile_schema.h, the log's in runtime/galvrt_log.h (the program writes it). */
#ifndef GALVC_HW_H
#define GALVC_HW_H

#include "ir/ir.h"

/* Fill hw with the datasheet figures of a device kind (presets.c). */
void hw_preset(HwProfile *hw, DeviceKind kind);

/* Ranks sharing a device (share.c): how many of `ranks` share each of c's
 * devices (1 unless its ranks_per_device allows more: ranks over devices,
 * rounded up, at most that), and the cluster and hardware model the planner
 * sees then, one rank as a device: 1/k of the device's compute and memory,
 * its nodes holding k times the ranks, collectives on the host-staged path
 * unless the profile measured them: hw so, and view c's copy with
 * ranks_per_device k (and the rest so when k > 1). Returns k. */
int64_t hw_sharing(const Cluster *c, int64_t ranks);
int64_t hw_share(const Cluster *c, int64_t ranks, HwProfile *hw, Cluster *view);

/* The hardware model for a cluster: its device's datasheet preset, the
 * cluster's memory and link figures over it, then the measured profile at
 * `path` (NULL: none) over that. False (with diagnostics) on a bad profile.
 * `path` is a galvc profile (docs/profile-format.md), one of Galvatron's
 * profile files, or a folder of them (profile.c). */
bool profile_resolve(Arena *a, const Cluster *c, const Graph *g, const char *path, HwProfile *hw, Diag *d);

/* Where things are in a JSON file that jansson (which keeps no positions)
 * has accepted, for messages about it (profile.c): member `key` of the
 * top-level object (its quoted name; the whole file when not found) with
 * the offset of its value in *value (-1: not found), and byte `off` of the
 * text, `width` bytes wide. */
Loc json_member_loc(const SourceFile *f, const char *key, long *value);
Loc json_offset_loc(const SourceFile *f, long off, size_t width);

/* ---- calibration's profile (profile_write.c) ---------------------------------- */

/* A galvc profile kept as the JSON it was read as, so that rewriting it
 * changes only the figures calibration refits. */
typedef struct ProfileJson ProfileJson;

/* What calibration measured against the profile's predictions. */
typedef struct ProfileScale {
    double compute; /* measured compute time over predicted */
    double comm;    /* measured communication time over predicted */
    double sync_s;  /* seconds each blocking collective costs beyond its transfer */
} ProfileScale;

/* The profile at path; NULL (reported to err) when it is not a JSON object. */
ProfileJson *profile_json_load(const char *path, FILE *err);
/* Its sync_overhead in seconds (0 when it has none). */
double profile_json_sync_s(const ProfileJson *p);
/* Compute figures divided by s->compute, link figures by s->comm, sync_overhead set to s->sync_s. */
void profile_json_scale(ProfileJson *p, const ProfileScale *s);
/* Write it to path; false (reported to err) when it cannot be written. */
bool profile_json_write(const ProfileJson *p, const char *path, FILE *err);
void profile_json_free(ProfileJson *p);

/* ---- the training log (log.c) -------------------------------------------------- */

/* One step's line of a training log; NAN where the line lacks a key. */
typedef struct LogStep {
    double step;           /* from 1 */
    double loss, lr;
    double ms;             /* the step's wall time */
    double tokens_per_s;
    double peak_mem_bytes; /* rank 0's peak so far */
} LogStep;

/* One rank's line at the end of a training log. */
typedef struct LogRank {
    int rank, stage;
    double peak_mem_bytes;    /* measured */
    double planned_mem_bytes; /* the plan's for its stage */
} LogRank;

/* A training log (./train --log, docs/training-log.md): the plan it ran,
 * what the plan predicted a step would take, every step, and every rank's
 * memory at the end. */
typedef struct TrainLog {
    const char *path;
    char *model;                                    /* the plan's model ("" when absent) */
    int ranks, pp, micro_batches;                   /* the plan's (0 when absent) */
    double step_ms, compute_ms, comm_ms, bubble_ms; /* predicted */
    double calls;                                   /* blocking collectives a step, predicted */
    LogStep *steps;                                 /* [n_steps], in the log's order */
    int n_steps;
    LogRank *rank_mem;                              /* [n_rank_mem], in the log's order */
    int n_rank_mem;
} TrainLog;

/* Read the log at path; false (reported to err, naming the file and line)
 * when it cannot be read, holds a line that is not a JSON object or a known
 * key whose value is not a number, or has no plan line. */
bool train_log_read(const char *path, TrainLog *log, FILE *err);
void train_log_free(TrainLog *log);

#endif
