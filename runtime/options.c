/* options.c — the command line every training program takes. Every rank
 * reads the same one; a bad option stops every rank with status 2 and a
 * message naming it, before any work is done. Numbers are read whole and
 * within their ranges (steps and checkpoint counts up to INT_MAX, the step
 * counter Adam's bias correction takes), never wrapped or saturated. */
#include "galvrt.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The options, for --help (one line each) and for the message naming an unknown one. */
static const struct {
    const char *name, *arg, *what;
} options[] = {
    {"--steps", "K", "train K steps (default: the model file's)"},
    {"--seed", "S", "the seed of the initialization and of synthetic data (default 1234)"},
    {"--data", "FILE", "an llm.c token file, or any file read as bytes (default: synthetic tokens)"},
    {"--lr", "X", "the peak learning rate (default: the model file's)"},
    {"--log", "FILE.jsonl", "every step as a JSON line"},
    {"--dump", "FILE", "every parameter tensor, whole, after the last step"},
    {"--ckpt-dir", "DIR", "where checkpoints are written and read"},
    {"--ckpt-every", "K", "a checkpoint after every K steps (and after the last)"},
    {"--ckpt-keep", "N", "complete checkpoints kept (default 3)"},
    {"--resume", NULL, "continue from the newest intact checkpoint in --ckpt-dir"},
    {"--export-safetensors", "FILE", "the parameters after the last step, Hugging Face's names"},
    {"--init-safetensors", "FILE", "start from these parameters instead of random ones"},
    {"--comm-timeout", "SECONDS", "stop every rank when a collective has not completed after SECONDS (default 600)"},
    {"--help", NULL, "print this and exit"},
};
#define N_OPTIONS (sizeof options / sizeof options[0])

/* "use --steps K, --seed S, ...": every option, for the message naming an unknown one. */
static void usage_line(char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "use");
    for (size_t i = 0; i < N_OPTIONS && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s %s%s%s", i ? "," : "", options[i].name, options[i].arg ? " " : "",
                              options[i].arg ? options[i].arg : "");
}

/* --help: rank 0 prints every option; every rank stops the runtime and exits 0. */
static _Noreturn void help(GrtComm *world, const char *program) {
    if (grt_rank(world) == 0) {
        printf("usage: mpirun -np N %s [options]\n\n", program);
        for (size_t i = 0; i < N_OPTIONS; i++) {
            char head[64];
            snprintf(head, sizeof head, "%s%s%s", options[i].name, options[i].arg ? " " : "",
                     options[i].arg ? options[i].arg : "");
            printf("  %-28s %s\n", head, options[i].what);
        }
        fflush(stdout);
    }
    grt_finalize();
    exit(0);
}

/* Stop every rank: value v of option a is not one it takes (`why`: what it takes). */
static void bad_value(GrtComm *world, const char *a, const char *v, const char *why) {
    char msg[512];
    snprintf(msg, sizeof msg, "bad value '%s' for %s (%s)", v, a, why);
    grt_stop_all(world, msg, 2);
}

/* Option a's whole value v as a decimal integer in [lo, hi], or stop every rank. */
static long int_value(GrtComm *world, const char *a, const char *v, long lo, long hi) {
    char *end, why[96];
    errno = 0;
    long x = strtol(v, &end, 10);
    snprintf(why, sizeof why, "an integer from %ld to %ld", lo, hi);
    if (end == v || *end || errno == ERANGE || x < lo || x > hi) bad_value(world, a, v, why);
    return x;
}

/* --seed's whole value: a decimal integer that fits 64 bits, not negative (strtoull would wrap it). */
static unsigned long long seed_value(GrtComm *world, const char *a, const char *v) {
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (end == v || *end || errno == ERANGE || strchr(v, '-'))
        bad_value(world, a, v, "an integer from 0 to 18446744073709551615");
    return x;
}

/* --comm-timeout's whole value: seconds, finite, from 1 ms to 1e9 (0 or less would stop every run at once). */
static double seconds_value(GrtComm *world, const char *a, const char *v) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (end == v || *end || errno == ERANGE || !isfinite(x) || !(x >= 1e-3 && x <= 1e9))
        bad_value(world, a, v, "a number of seconds from 0.001 to 1e9");
    return x;
}

/* --lr's whole value: a finite learning rate above zero (NaN, infinity or 0 would train nothing). */
static float lr_value(GrtComm *world, const char *a, const char *v) {
    char *end;
    errno = 0;
    float x = strtof(v, &end);
    if (end == v || *end || errno == ERANGE || !isfinite(x) || !(x > 0))
        bad_value(world, a, v, "the learning rate must be finite and above 0");
    return x;
}

GrtOptions grt_options_parse(GrtComm *world, const GrtProgram *p, int argc, char **argv) {
    GrtOptions o = {.steps = p->default_steps, .seed = 1234, .lr = p->lr, .ckpt_keep = 3, .comm_timeout = 600};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--steps") && v) o.steps = int_value(world, a, v, 0, INT_MAX), i++;
        else if (!strcmp(a, "--seed") && v) o.seed = seed_value(world, a, v), o.seed_given = 1, i++;
        else if (!strcmp(a, "--lr") && v) o.lr = lr_value(world, a, v), i++;
        else if (!strcmp(a, "--data") && v) o.data = v, i++;
        else if (!strcmp(a, "--log") && v) o.log = v, i++;
        else if (!strcmp(a, "--dump") && v) o.dump = v, i++;
        else if (!strcmp(a, "--ckpt-dir") && v) o.ckpt_dir = v, i++;
        else if (!strcmp(a, "--ckpt-every") && v) o.ckpt_every = int_value(world, a, v, 0, INT_MAX), i++;
        else if (!strcmp(a, "--ckpt-keep") && v) o.ckpt_keep = int_value(world, a, v, 1, INT_MAX), i++;
        else if (!strcmp(a, "--resume")) o.resume = 1;
        else if (!strcmp(a, "--export-safetensors") && v) o.export_st = v, i++;
        else if (!strcmp(a, "--init-safetensors") && v) o.init_st = v, i++;
        else if (!strcmp(a, "--comm-timeout") && v) o.comm_timeout = seconds_value(world, a, v), i++;
        else if (!strcmp(a, "--help")) help(world, argv[0]);
        else {
            char msg[1024], usage[640];
            usage_line(usage, sizeof usage);
            snprintf(msg, sizeof msg, "unknown or incomplete option '%.200s' (%s)", a, usage);
            grt_stop_all(world, msg, 2);
        }
    }
    if ((o.ckpt_every || o.resume) && !o.ckpt_dir) grt_stop_all(world, "--ckpt-every and --resume need --ckpt-dir DIR", 2);
    return o;
}
