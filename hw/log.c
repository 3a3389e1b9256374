/* log.c — reading a training log (./train --log, docs/training-log.md) for
 * galvc --calibrate: the plan line's predictions and every step's time. The
 * keys are runtime/galvrt_log.h's, the ones the program writes. */
#include "hw.h"
#include "runtime/galvrt_log.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* The plan line's predictions into log. */
static void read_plan(const json_t *plan, TrainLog *log) {
    log->step_ms = json_number_value(json_object_get(plan, LOG_KEY_PREDICTED_STEP_MS));
    log->compute_ms = json_number_value(json_object_get(plan, LOG_KEY_PREDICTED_COMPUTE_MS));
    log->comm_ms = json_number_value(json_object_get(plan, LOG_KEY_PREDICTED_COMM_MS));
    log->bubble_ms = json_number_value(json_object_get(plan, LOG_KEY_PREDICTED_BUBBLE_MS));
    log->calls = json_number_value(json_object_get(plan, LOG_KEY_PREDICTED_CALLS));
}

/* Append one step's time. */
static void add_step(TrainLog *log, int *cap, double ms) {
    if (log->n_steps == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        log->step_ms_measured = realloc(log->step_ms_measured, sizeof *log->step_ms_measured * (size_t)*cap);
        if (!log->step_ms_measured) die("out of memory");
    }
    log->step_ms_measured[log->n_steps++] = ms;
}

bool train_log_read(const char *path, TrainLog *log, FILE *err) {
    memset(log, 0, sizeof *log);
    log->path = path;
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(err, "galvc: error: --calibrate: cannot read '%s'\n", path);
        return false;
    }
    int cap = 0, line_no = 0;
    bool have_plan = false, ok = true;
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        line_no++;
        json_error_t e;
        json_t *j = json_loads(line, 0, &e);
        if (!j) {
            fprintf(err, "%s:%d: error: not a JSON line: %s\n", path, line_no, e.text);
            ok = false;
            break;
        }
        json_t *plan = json_object_get(j, LOG_KEY_PLAN), *step = json_object_get(j, LOG_KEY_MS);
        if (plan) {
            read_plan(plan, log);
            have_plan = log->step_ms > 0;
        } else if (step && json_object_get(j, LOG_KEY_STEP)) {
            add_step(log, &cap, json_number_value(step));
        }
        json_decref(j);
    }
    fclose(f);
    if (ok && !have_plan) {
        fprintf(err, "galvc: error: --calibrate: '%s' has no plan line (write it with ./train --log)\n", path);
        ok = false;
    }
    return ok;
}

void train_log_free(TrainLog *log) {
    free(log->step_ms_measured);
    log->step_ms_measured = NULL;
    log->n_steps = 0;
}
