/* log.c — reading a training log (./train --log, docs/training-log.md) for
 * galvc --calibrate and galvc report: the plan line (the model, its layout
 * and its predictions), every step's line and every rank's memory line. The
 * keys are runtime/galvrt_log.h's, the ones the program writes. A key the
 * reader knows must hold a number (the model: a string); lines and keys it
 * does not know are passed over. */
#include "hw.h"
#include "runtime/galvrt_log.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Where a reading is: the file, the line, and where errors go. */
typedef struct LogReader {
    const char *path;
    int line;
    FILE *err;
    int step_cap, rank_cap;
} LogReader;

/* obj's number at key into *out (NAN when absent); false (reported) when it is not a number. */
static bool get_number(LogReader *r, const json_t *obj, const char *key, double *out) {
    const json_t *v = json_object_get(obj, key);
    *out = v ? json_number_value(v) : NAN;
    if (!v || json_is_number(v)) return true;
    fprintf(r->err, "%s:%d: error: '%s' is not a number\n", r->path, r->line, key);
    return false;
}

/* A count or index read as a number (0 when absent or out of range). */
static int as_int(double v) { return isfinite(v) && fabs(v) < 1e9 ? (int)v : 0; }

/* The plan line's model, layout and predictions into log. */
static bool read_plan(LogReader *r, const json_t *plan, TrainLog *log) {
    const json_t *model = json_object_get(plan, LOG_KEY_MODEL);
    if (!json_is_object(plan) || (model && !json_is_string(model))) {
        fprintf(r->err, "%s:%d: error: the plan line is malformed\n", r->path, r->line);
        return false;
    }
    free(log->model);
    log->model = strdup(model ? json_string_value(model) : "");
    double ranks, pp, m;
    bool ok = get_number(r, plan, LOG_KEY_RANKS, &ranks) && get_number(r, plan, LOG_KEY_PP, &pp) &&
              get_number(r, plan, LOG_KEY_MICRO_BATCHES, &m) &&
              get_number(r, plan, LOG_KEY_PREDICTED_STEP_MS, &log->step_ms) &&
              get_number(r, plan, LOG_KEY_PREDICTED_COMPUTE_MS, &log->compute_ms) &&
              get_number(r, plan, LOG_KEY_PREDICTED_COMM_MS, &log->comm_ms) &&
              get_number(r, plan, LOG_KEY_PREDICTED_BUBBLE_MS, &log->bubble_ms) &&
              get_number(r, plan, LOG_KEY_PREDICTED_CALLS, &log->calls);
    double *predicted[] = {&log->step_ms, &log->compute_ms, &log->comm_ms, &log->bubble_ms, &log->calls};
    for (size_t i = 0; i < sizeof predicted / sizeof *predicted; i++)
        if (!isfinite(*predicted[i])) *predicted[i] = 0; /* absent: none predicted */
    log->ranks = as_int(ranks), log->pp = as_int(pp), log->micro_batches = as_int(m);
    return ok;
}

/* Grow *items (of size bytes each, *cap of them) to hold one more than n. */
static void *grow(void *items, int n, int *cap, size_t size) {
    if (n < *cap) return items;
    *cap = *cap ? 2 * *cap : 64;
    items = realloc(items, size * (size_t)*cap);
    if (!items) die("out of memory");
    return items;
}

/* Append a step's line. */
static bool read_step(LogReader *r, const json_t *j, TrainLog *log) {
    LogStep s;
    if (!get_number(r, j, LOG_KEY_STEP, &s.step) || !get_number(r, j, LOG_KEY_LOSS, &s.loss) ||
        !get_number(r, j, LOG_KEY_LR, &s.lr) || !get_number(r, j, LOG_KEY_MS, &s.ms) ||
        !get_number(r, j, LOG_KEY_TOKENS_PER_S, &s.tokens_per_s) ||
        !get_number(r, j, LOG_KEY_PEAK_MEM_BYTES, &s.peak_mem_bytes))
        return false;
    log->steps = grow(log->steps, log->n_steps, &r->step_cap, sizeof *log->steps);
    log->steps[log->n_steps++] = s;
    return true;
}

/* Append a rank's memory line. */
static bool read_rank(LogReader *r, const json_t *j, TrainLog *log) {
    double rank, stage;
    LogRank m;
    if (!get_number(r, j, LOG_KEY_RANK, &rank) || !get_number(r, j, LOG_KEY_STAGE, &stage) ||
        !get_number(r, j, LOG_KEY_PEAK_MEM_BYTES, &m.peak_mem_bytes) ||
        !get_number(r, j, LOG_KEY_PLANNED_MEM_BYTES, &m.planned_mem_bytes))
        return false;
    m.rank = as_int(rank), m.stage = as_int(stage);
    log->rank_mem = grow(log->rank_mem, log->n_rank_mem, &r->rank_cap, sizeof *log->rank_mem);
    log->rank_mem[log->n_rank_mem++] = m;
    return true;
}

/* One line of n bytes: the plan, a step or a rank (blank lines and other objects are passed over). */
static bool read_line(LogReader *r, const char *text, size_t n, TrainLog *log, bool *have_plan) {
    if (strspn(text, " \t\r\n") == n) return true;
    json_error_t e;
    json_t *j = json_loadb(text, n, 0, &e);
    if (!j || !json_is_object(j)) {
        fprintf(r->err, "%s:%d: error: not a JSON object: %s\n", r->path, r->line, j ? "another JSON value" : e.text);
        json_decref(j);
        return false;
    }
    const json_t *plan = json_object_get(j, LOG_KEY_PLAN);
    bool ok = true;
    if (plan)
        ok = read_plan(r, plan, log), *have_plan = ok && log->step_ms > 0;
    else if (json_object_get(j, LOG_KEY_STEP))
        ok = read_step(r, j, log);
    else if (json_object_get(j, LOG_KEY_RANK))
        ok = read_rank(r, j, log);
    json_decref(j);
    return ok;
}

bool train_log_read(const char *path, TrainLog *log, FILE *err) {
    memset(log, 0, sizeof *log);
    log->path = path;
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(err, "galvc: error: cannot read '%s': %s\n", path, strerror(errno));
        return false;
    }
    LogReader r = {.path = path, .err = err};
    bool have_plan = false, ok = true;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while (ok && (n = getline(&line, &cap, f)) >= 0) {
        r.line++;
        ok = read_line(&r, line, (size_t)n, log, &have_plan);
    }
    if (ok && ferror(f)) fprintf(err, "galvc: error: cannot read '%s': %s\n", path, strerror(errno)), ok = false;
    free(line);
    fclose(f);
    if (ok && !have_plan)
        fprintf(err, "galvc: error: '%s' has no plan line (write it with ./train --log)\n", path), ok = false;
    return ok;
}

void train_log_free(TrainLog *log) {
    free(log->model);
    free(log->steps);
    free(log->rank_mem);
    log->model = NULL, log->steps = NULL, log->rank_mem = NULL;
    log->n_steps = log->n_rank_mem = 0;
}
