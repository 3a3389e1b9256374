/* hw.h — the hardware model's inputs and outputs in one place: the device
 * presets, reading a measured profile (galvc's format or Galvatron's),
 * calibration's rewriting of a profile, and reading a training log. The
 * profile's keys are in profile_schema.h, the log's in runtime/galvrt_log.h (the program writes it). */
#ifndef GALVC_HW_H
#define GALVC_HW_H

#include "ir/ir.h"

/* Fill hw with the datasheet figures of a device kind (presets.c). */
void hw_preset(HwProfile *hw, DeviceKind kind);

/* The hardware model for a cluster: its device's datasheet preset, the
 * cluster's memory and link figures over it, then the measured profile at
 * `path` (NULL: none) over that. False (with diagnostics) on a bad profile.
 * `path` is a galvc profile (docs/profile-format.md), one of Galvatron's
 * profile files, or a folder of them (profile.c). */
bool profile_resolve(Arena *a, const Cluster *c, const Graph *g, const char *path, HwProfile *hw, Diag *d);

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

/* A training log (./train --log, docs/training-log.md): what its plan
 * predicted a step would take, and what every step took. */
typedef struct TrainLog {
    const char *path;
    double step_ms, compute_ms, comm_ms, bubble_ms; /* predicted */
    double calls;                                   /* blocking collectives a step, predicted */
    double *step_ms_measured;                       /* [n_steps], in step order */
    int n_steps;
} TrainLog;

/* Read the log at path; false (reported to err) when it cannot be read,
 * holds a line that is not JSON, or has no plan line. */
bool train_log_read(const char *path, TrainLog *log, FILE *err);
void train_log_free(TrainLog *log);

#endif
