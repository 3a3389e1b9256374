/* files.c — the files the command line names, checked at start-up, before
 * anything is read or written, so that no mistake in them costs a run:
 *  - an output (--log, --dump, --export-safetensors) must not be an input
 *    (--data, which every rank maps, or --init-safetensors): writing one
 *    truncates the file under every rank (SIGBUS) and loses it; nor may two
 *    outputs be one file. Files are compared as files (device and inode;
 *    for one not there yet, its folder's and its name), so a second name, a
 *    hard link or a symbolic link is caught too;
 *  - --dump and --export-safetensors, written after training, must be
 *    writable now: opened in place (an existing file, never truncated) or
 *    created and removed again (--dump's file, --export-safetensors'
 *    path.tmp, which is renamed over its path).
 * Rank 0 writes every output, so rank 0 checks and every rank stops with it. */
#include "galvrt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A file named on the command line. */
typedef struct NamedFile {
    const char *option, *path;
    int output; /* written (by rank 0); else read */
} NamedFile;

/* A file's identity: its device and inode, or for a file not there yet its folder's and its name. */
typedef struct FileId {
    dev_t dev;
    ino_t ino;
    char name[256];
} FileId;

/* path's identity into id; 0 when neither it nor its folder can be found. */
static int file_id(const char *path, FileId *id) {
    struct stat st;
    id->name[0] = 0;
    if (stat(path, &st) != 0) {
        const char *slash = strrchr(path, '/');
        char dir[4096];
        snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path + 1) : 1, slash ? path : ".");
        snprintf(id->name, sizeof id->name, "%s", slash ? slash + 1 : path);
        if (stat(dir, &st) != 0) return 0;
    }
    id->dev = st.st_dev, id->ino = st.st_ino;
    return 1;
}

/* Do paths a and b name one file? */
static int same_file(const char *a, const char *b) {
    FileId x, y;
    if (!file_id(a, &x) || !file_id(b, &y)) return 0;
    return x.dev == y.dev && x.ino == y.ino && !strcmp(x.name, y.name);
}

/* Can path be opened for writing later? In place when it is there (not
 * truncated), else created and removed again; 0 with errno when not. */
static int can_write(const char *path) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return errno = EISDIR, 0;
    int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd >= 0) unlink(path);
    }
    if (fd < 0) return 0;
    close(fd);
    return 1;
}

/* The first two of the n files that are one, said into err; 0 when none are. */
static int find_same(const NamedFile *f, int n, char *err, size_t errlen) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (f[i].output && (j < i || !f[j].output) && same_file(f[i].path, f[j].path)) {
                snprintf(err, errlen, "%s names the file %s %s (%s)", f[i].option, f[j].option,
                         f[j].output ? "writes" : "reads", f[i].path);
                return 1;
            }
    return 0;
}

/* --dump's file, or --export-safetensors' (through path.tmp), unwritable: said into err. */
static int unwritable(const char *option, const char *path, int via_tmp, char *err, size_t errlen) {
    char tmp[4200];
    struct stat st;
    int ok;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (via_tmp && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        ok = 0, errno = EISDIR; /* no rename over it */
    else
        ok = can_write(via_tmp ? tmp : path);
    if (!ok) snprintf(err, errlen, "%s: cannot write %s: %s", option, path, strerror(errno));
    return !ok;
}

void grt_files_check(GrtComm *world, const GrtOptions *o) {
    NamedFile f[] = {{"--log", o->log, 1},
                     {"--dump", o->dump, 1},
                     {"--export-safetensors", o->export_st, 1},
                     {"--data", o->data, 0},
                     {"--init-safetensors", o->init_st, 0}};
    NamedFile named[5];
    int n = 0;
    for (int i = 0; i < 5; i++)
        if (f[i].path) named[n++] = f[i];
    char err[1200] = "";
    int bad = grt_rank(world) == 0 &&
              (find_same(named, n, err, sizeof err) || (o->dump && unwritable("--dump", o->dump, 0, err, sizeof err)) ||
               (o->export_st && unwritable("--export-safetensors", o->export_st, 1, err, sizeof err)));
    if (grt_failures(world, !bad)) grt_stop_all(world, err, 1);
}
