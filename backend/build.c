/* build.c — compiles the emitted program: train.c goes to a private
 * temporary file (mkstemps), the C compiler runs without a shell (so no
 * path can be misread), and the file is removed unless --keep asks for it
 * (then moved beside the program, or copied when TMPDIR is on another file
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

/* --keep: move train.c to kept, copying across file systems (TMPDIR
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

int build(const Spec *spec, const Plan *plan, int64_t devices, const char *source_name, const char *output,
          const BuildConfig *cfg, Diag *d) {
    char path[] = "/tmp/galvc-train-XXXXXX.c";
    const char *tmpdir = getenv("TMPDIR");
    char *c_path = tmpdir && *tmpdir ? arena_printf(spec->arena, "%s/galvc-train-XXXXXX.c", tmpdir) : path;
    int fd = mkstemps(c_path, 2);
    if (fd < 0) {
        diag_plain(d, "cannot create a temporary file for train.c: %s", strerror(errno));
        return 1;
    }
    FILE *f = fdopen(fd, "w");
    bool ok = f && emit_c(f, spec, plan, devices, source_name, d);
    if (f && fclose(f) != 0) ok = false;
    if (!ok) {
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
    for (char *tok = strtok(cflags, " "); tok && n < 24; tok = strtok(NULL, " ")) argv[n++] = tok;
    argv[n++] = arena_printf(spec->arena, "-I%s", cfg->include_dir);
    argv[n++] = c_path;
    argv[n++] = (char *)cfg->library;
    for (char *tok = strtok(extra, " "); tok && n < 58; tok = strtok(NULL, " ")) argv[n++] = tok;
    argv[n++] = "-lm";
    argv[n++] = "-o";
    argv[n++] = (char *)output;
    argv[n] = NULL;
    int rc = run(argv);
    bool kept_ok = true;
    if (cfg->keep) {
        const char *kept = arena_printf(spec->arena, "%s.c", output);
        int err = keep_source(c_path, kept);
        if (err) diag_plain(d, "cannot keep train.c as '%s': %s", kept, strerror(err));
        else fprintf(stderr, "galvc: kept the program's source as %s\n", kept);
        kept_ok = !err;
    } else {
        unlink(c_path);
    }
    if (rc != 0) {
        diag_plain(d, "the C compiler (%s) failed%s", cfg->cc, rc < 0 ? " to start" : "");
        return 1;
    }
    return kept_ok ? 0 : 1;
}
