/* build.c — compiles the emitted program: train.c and the plan's generated
 * kernels (an object file, backend/kernels.c) go to private temporary files
 * (mkstemps), the C compiler runs without a shell (so no path can be
 * misread), and the files are removed unless --keep asks for them (then
 * moved beside the program, or copied when TMPDIR is on another file
 * system). */
#include "backend.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Copy the file at from to to (created or truncated); 0 or an errno value. */
static int copy_file(const char *from, const char *to) {
    int in = open(from, O_RDONLY), out = in < 0 ? -1 : open(to, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    int err = in < 0 || out < 0 ? errno : 0;
    char buf[65536];
    ssize_t n = 0;
    while (!err && (n = read(in, buf, sizeof buf)) != 0) {
        if (n < 0 && errno != EINTR) err = errno;
        for (ssize_t done = 0, w; !err && n > 0 && done < n; done += w)
            if ((w = write(out, buf + done, (size_t)(n - done))) < 0) err = errno, w = 0;
    }
    if (out >= 0 && close(out) != 0 && !err) err = errno;
    if (in >= 0) close(in);
    if (err && out >= 0) unlink(to);
    return err;
}

/* Move the temporary at path to kept, copying across file systems (TMPDIR
 * elsewhere); the temporary is gone either way. 0 or an errno value. */
static int keep_source(const char *c_path, const char *kept) {
    if (rename(c_path, kept) == 0) return 0;
    int err = errno == EXDEV ? copy_file(c_path, kept) : errno;
    unlink(c_path);
    return err;
}

/* Run argv, wait, and return its exit status (or -1 if it could not start). */
static int run(char *const argv[]) {
    pid_t pid;
    if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ) != 0) return -1;
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* A private temporary file named like template ("galvc-train-XXXXXX.c"), in
 * $TMPDIR or /tmp, opened for writing; its path in *path. */
static FILE *temp_file(const Spec *spec, const char *template, int suffix, char **path, Diag *d) {
    const char *tmpdir = getenv("TMPDIR");
    *path = arena_printf(spec->arena, "%s/%s", tmpdir && *tmpdir ? tmpdir : "/tmp", template);
    int fd = mkstemps(*path, suffix);
    if (fd < 0) {
        diag_plain(d, "cannot create a temporary file for %s: %s", template, strerror(errno));
        return NULL;
    }
    return fdopen(fd, "wb");
}

/* The plan's kernels as a host object file at a temporary path, or NULL. */
static const char *write_kernels(const Spec *spec, const Plan *plan, const BuildConfig *cfg, Diag *d) {
    char *path;
    FILE *f = temp_file(spec, "galvc-kernels-XXXXXX.o", 2, &path, d);
    if (!f) return NULL;
    KernelSet set;
    kernels_for_plan(spec, plan, &set);
    double ms;
    bool ok = kernels_write(f, &set, KOUT_OBJ, NULL, &ms, d);
    if (fclose(f) != 0) ok = false;
    if (!ok) {
        unlink(path);
        if (!d->errors) diag_plain(d, "cannot write the kernels' object file");
        return NULL;
    }
    if (cfg->verbose) fprintf(stderr, "galvc: %d kernels generated for this CPU in %.1f ms\n", set.n, ms);
    return path;
}

/* The CUDA target's kernel file (emit_cuda.c: the PTX, the stubs, the
 * table) as C at a temporary path, or NULL. */
static const char *write_device_source(const Spec *spec, const Plan *plan, Diag *d) {
    char *path;
    FILE *f = temp_file(spec, "galvc-device-XXXXXX.c", 2, &path, d);
    if (!f) return NULL;
    bool ok = emit_cuda(f, spec, plan, d);
    if (fclose(f) != 0) ok = false;
    if (!ok) {
        unlink(path);
        if (!d->errors) diag_plain(d, "cannot write the CUDA target's kernels");
        return NULL;
    }
    return path;
}

/* Keep the temporary file holding `what` as kept (moved, or copied across
 * file systems), or remove it; false when it could not be kept. */
static bool keep_or_remove(const char *path, const char *what, const char *kept, bool keep, Diag *d) {
    if (!keep) {
        unlink(path);
        return true;
    }
    int err = keep_source(path, kept);
    if (err) {
        diag_plain(d, "cannot keep %s as '%s': %s", what, kept, strerror(err));
        return false;
    }
    fprintf(stderr, "galvc: kept %s as %s\n", what, kept);
    return true;
}

/* Does the CUDA target train every layer? Not one with dropout yet (its
 * runtime side has no dropout), nor token types, T5's blocks, the vision
 * and classifier layers and Swin's windowed blocks (their kernels are host
 * references); each such layer
 * is reported where it is. */
static bool cuda_trains(const Spec *spec, Diag *d) {
    bool ok = true;
    for (int i = 0; i < spec->graph->n_layers; i++) {
        const Layer *l = spec->graph->layers[i];
        if (l->dropout > 0) {
            diag_error(d, l->loc, "%s: dropout is not trained on the CUDA target yet (--target cpu trains it)",
                       l->name);
            ok = false;
        }
        if (l->kind == LAYER_EMBEDDING && l->types) {
            diag_error(d, l->loc, "%s: token types are not trained on the CUDA target yet (--target cpu trains them)",
                       l->name);
            ok = false;
        }
        if (l->kind == LAYER_CROSS_DECODER || (graph_t5_cross(spec->graph) >= 0 && l->kind == LAYER_ENCODER)) {
            diag_error(d, l->loc, "%s: T5's blocks are not trained on the CUDA target yet (--target cpu trains them)",
                       l->name);
            ok = false;
        }
        if (l->kind == LAYER_ENCODER && l->window) {
            diag_error(d, l->loc,
                       "%s: windowed attention is not trained on the CUDA target yet (--target cpu trains it)",
                       l->name);
            ok = false;
        }
        if (l->kind == LAYER_PATCH_EMBEDDING || l->kind == LAYER_CLASSIFIER || l->kind == LAYER_PATCH_MERGING) {
            diag_error(d, l->loc, "%s: a %s is not trained on the CUDA target yet (--target cpu trains it)", l->name,
                       layer_kind_names[l->kind]);
            ok = false;
        }
    }
    return ok;
}

int build(const Spec *spec, const Plan *plan, int64_t devices, const char *source_name, const char *output,
          const BuildConfig *cfg, Diag *d) {
    if (cfg->cuda && !cuda_trains(spec, d)) return 1;
    char *c_path;
    FILE *f = temp_file(spec, "galvc-train-XXXXXX.c", 2, &c_path, d);
    if (!f) return 1;
    bool ok = emit_c(f, spec, plan, devices, source_name, d);
    if (fclose(f) != 0) ok = false;
    const char *k_path = !ok ? NULL : cfg->cuda ? write_device_source(spec, plan, d) : write_kernels(spec, plan, cfg, d);
    if (!ok || !k_path) {
        unlink(c_path);
        if (!d->errors) diag_plain(d, "cannot write train.c");
        return 1;
    }
    /* the library's extra flags, split on spaces (they come from the build, not the user) */
    char *extra = arena_strdup(spec->arena, cfg->extra_libs ? cfg->extra_libs : "");
    char *cflags = arena_strdup(spec->arena, cfg->cflags ? cfg->cflags : "");
    char *argv[64];
    int n = 0;
    argv[n++] = (char *)cfg->cc;
    argv[n++] = "-O2";
    argv[n++] = "-std=c17";
    /* the program is ours: any warning in it is galvc's bug, and fails the build */
    argv[n++] = "-Wall";
    argv[n++] = "-Wextra";
    argv[n++] = "-Werror";
    for (char *tok = strtok(cflags, " "); tok && n < 24; tok = strtok(NULL, " "))
        argv[n++] = tok;
    argv[n++] = arena_printf(spec->arena, "-I%s", cfg->include_dir);
    if (cfg->cuda) argv[n++] = arena_printf(spec->arena, "-I%s", cfg->cuda_include_dir);
    argv[n++] = c_path;
    argv[n++] = (char *)k_path;
    if (cfg->cuda) argv[n++] = (char *)cfg->cuda_library; /* before libgalvrt, whose functions it calls */
    argv[n++] = (char *)cfg->library;
    for (char *tok = strtok(extra, " "); tok && n < 52; tok = strtok(NULL, " "))
        argv[n++] = tok;
    char *cuda_libs = arena_strdup(spec->arena, cfg->cuda && cfg->cuda_libs ? cfg->cuda_libs : "");
    for (char *tok = strtok(cuda_libs, " "); tok && n < 58; tok = strtok(NULL, " "))
        argv[n++] = tok;
    argv[n++] = "-lm";
    argv[n++] = "-o";
    argv[n++] = (char *)output;
    argv[n] = NULL;
    int rc = run(argv);
    bool kept_ok = keep_or_remove(c_path, "the program's source", arena_printf(spec->arena, "%s.c", output), cfg->keep, d);
    const char *k_kept = arena_printf(spec->arena, cfg->cuda ? "%s.device.c" : "%s.kernels.o", output);
    kept_ok &= keep_or_remove(k_path, "its kernels", k_kept, cfg->keep, d);
    if (rc != 0) {
        diag_plain(d, "the C compiler (%s) failed%s", cfg->cc, rc < 0 ? " to start" : "");
        return 1;
    }
    return kept_ok ? 0 : 1;
}
