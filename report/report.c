/* report.c — `galvc report RUN.jsonl... [-o FILE.svg|FILE.html]`: read the
 * training logs (hw/log.c, the reader --calibrate uses), then draw them
 * (svg.c) to standard output or to FILE: an SVG, or an HTML page with the
 * SVG inline. Every log is read before anything is written, so a bad one
 * leaves no half-written picture; all their errors are reported together. */
#include "report.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { EXIT_USER = 1, EXIT_USAGE = 2 };

static const char report_usage[] = "usage: galvc report RUN.jsonl... [-o FILE.svg|FILE.html]\n"
                                   "\n"
                                   "Draw training runs against their plans: each RUN is a ./train --log file.\n"
                                   "Four panels over the steps: the loss, the step time, tokens/s and peak\n"
                                   "memory, each plan's predicted step time, tokens/s and memory dashed on the\n"
                                   "same axes. Several runs are overlaid, one colour and line style each, with\n"
                                   "a legend naming each plan's model, ranks, pipeline stages and micro-batches.\n"
                                   "\n"
                                   "  -o FILE.svg    write a standalone SVG (the default, to standard output)\n"
                                   "  -o FILE.html   write an HTML page with the SVG inline\n"
                                   "\n"
                                   "exit status: 0 success, 1 a log cannot be read or has no steps, 2 bad usage\n";

/* A usage error: the message, a hint, exit status 2. */
static _Noreturn void bad_usage(const char *fmt, const char *arg) {
    fputs("galvc report: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\ngalvc report: try 'galvc report --help'\n", stderr);
    exit(EXIT_USAGE);
}

/* Whether path ends in suffix. */
static bool ends_with(const char *path, const char *suffix) {
    size_t n = strlen(path), k = strlen(suffix);
    return n >= k && strcmp(path + n - k, suffix) == 0;
}

/* Whether -o names one of the inputs (the same file, however spelled). */
static bool output_is_input(const char *output, char **logs, int n) {
    struct stat o, in;
    if (stat(output, &o) != 0) return false;
    for (int i = 0; i < n; i++)
        if (stat(logs[i], &in) == 0 && in.st_dev == o.st_dev && in.st_ino == o.st_ino) return true;
    return false;
}

/* Read every log into runs[0..n); false (each problem reported) when any is unusable. */
static bool read_runs(char **logs, int n, TrainLog *runs) {
    bool ok = true;
    for (int i = 0; i < n; i++) {
        if (!train_log_read(logs[i], &runs[i], stderr))
            ok = false;
        else if (runs[i].n_steps == 0)
            fprintf(stderr, "galvc report: error: '%s' has no steps (the run stopped before its first step)\n",
                    logs[i]),
                ok = false;
    }
    return ok;
}

/* The picture into a new string: the SVG, or (html) a page holding it. */
static char *draw(const TrainLog *runs, int n, bool html, size_t *size) {
    char *text = NULL;
    FILE *f = open_memstream(&text, size);
    if (!f) die("out of memory");
    if (html)
        fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"/><title>galvc report</title></head>\n"
              "<body style=\"margin:0;background:#fff\">\n",
              f);
    report_svg(f, runs, n);
    if (html) fputs("</body>\n</html>\n", f);
    if (fclose(f) != 0) die("out of memory");
    return text;
}

/* Write size bytes of text to path (NULL: standard output); false (reported) when it cannot. */
static bool write_out(const char *path, const char *text, size_t size) {
    FILE *f = path ? fopen(path, "w") : stdout;
    bool ok = f && fwrite(text, 1, size, f) == size;
    ok = (f && (path ? fclose(f) : fflush(f)) == 0) && ok;
    if (!ok)
        fprintf(stderr, "galvc report: error: cannot write '%s': %s\n", path ? path : "(standard output)",
                strerror(errno));
    return ok;
}

/* The command line into *output and logs[0..*n); exits on bad usage. */
static void parse_args(int argc, char **argv, const char **output, char **logs, int *n) {
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            fputs(report_usage, stdout);
            exit(0);
        } else if (strcmp(arg, "-o") == 0) {
            if (i + 1 >= argc) bad_usage("%s", "-o needs a file name");
            *output = argv[++i];
        } else if (strncmp(arg, "-o", 2) == 0) {
            *output = arg + 2;
        } else if (arg[0] == '-' && arg[1]) {
            bad_usage("unknown option '%s'", arg);
        } else {
            logs[(*n)++] = argv[i];
        }
    }
    if (!*n) bad_usage("%s", "no logs given (./train --log FILE.jsonl writes one)");
    if (*output && !ends_with(*output, ".svg") && !ends_with(*output, ".html") && !ends_with(*output, ".htm"))
        bad_usage("-o '%s': name a .svg or .html file", *output);
}

int report_command(int argc, char **argv) {
    const char *output = NULL;
    char **logs = calloc((size_t)argc, sizeof *logs);
    TrainLog *runs = calloc((size_t)argc, sizeof *runs);
    int n = 0;
    if (!logs || !runs) die("out of memory");
    parse_args(argc, argv, &output, logs, &n);
    int rc = EXIT_USER;
    if (output && output_is_input(output, logs, n))
        fprintf(stderr, "galvc report: error: -o '%s' is one of the logs; it would be overwritten\n", output);
    else if (read_runs(logs, n, runs)) {
        size_t size;
        char *text = draw(runs, n, output && !ends_with(output, ".svg"), &size);
        rc = write_out(output, text, size) ? 0 : EXIT_USER;
        free(text);
    }
    for (int i = 0; i < n; i++)
        train_log_free(&runs[i]);
    free(runs);
    free(logs);
    return rc;
}
