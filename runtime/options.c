/* options.c — the command line every training program takes. Every rank
 * reads the same one; a bad option stops every rank with status 2 and a
 * message naming it, before any work is done. */
#include "galvrt.h"

#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "use --steps K, --seed S, --data FILE, --lr X, --log FILE.jsonl, --dump FILE, --ckpt-dir DIR, --ckpt-every K, "
    "--ckpt-keep N, --resume, --export-safetensors FILE, --init-safetensors FILE";

/* Stop every rank when `end` shows the value of option a was not all read. */
static void check_value(GrtComm *world, const char *a, const char *v, const char *end) {
    if (!end || (*end == 0 && end != v)) return;
    char msg[256];
    snprintf(msg, sizeof msg, "bad value '%s' for %s", v, a);
    grt_stop_all(world, msg, 2);
}

GrtOptions grt_options_parse(GrtComm *world, const GrtProgram *p, int argc, char **argv) {
    GrtOptions o = {.steps = p->default_steps, .seed = 1234, .lr = p->lr, .ckpt_keep = 3};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (!strcmp(a, "--steps") && v) o.steps = strtol(v, &end, 10), i++;
        else if (!strcmp(a, "--seed") && v) o.seed = strtoull(v, &end, 10), o.seed_given = 1, i++;
        else if (!strcmp(a, "--lr") && v) o.lr = strtof(v, &end), i++;
        else if (!strcmp(a, "--data") && v) o.data = v, i++;
        else if (!strcmp(a, "--log") && v) o.log = v, i++;
        else if (!strcmp(a, "--dump") && v) o.dump = v, i++;
        else if (!strcmp(a, "--ckpt-dir") && v) o.ckpt_dir = v, i++;
        else if (!strcmp(a, "--ckpt-every") && v) o.ckpt_every = strtol(v, &end, 10), i++;
        else if (!strcmp(a, "--ckpt-keep") && v) o.ckpt_keep = strtol(v, &end, 10), i++;
        else if (!strcmp(a, "--resume")) o.resume = 1;
        else if (!strcmp(a, "--export-safetensors") && v) o.export_st = v, i++;
        else if (!strcmp(a, "--init-safetensors") && v) o.init_st = v, i++;
        else {
            char msg[768];
            snprintf(msg, sizeof msg, "unknown or incomplete option '%s' (%s)", a, usage);
            grt_stop_all(world, msg, 2);
        }
        check_value(world, a, v, end);
    }
    if (o.steps < 0) grt_stop_all(world, "--steps must not be negative", 2);
    if (o.ckpt_every < 0) grt_stop_all(world, "--ckpt-every must not be negative", 2);
    if (o.ckpt_keep < 1) grt_stop_all(world, "--ckpt-keep must be at least 1", 2);
    if ((o.ckpt_every || o.resume) && !o.ckpt_dir) grt_stop_all(world, "--ckpt-every and --resume need --ckpt-dir DIR", 2);
    return o;
}
