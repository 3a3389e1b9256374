/* checkpoint.c — the file operations checkpoints need to survive crashes,
 * full disks and bit rot: a write that either lands whole or not at all (a
 * temporary file, fsync, rename, fsync of the folder: POSIX's recipe, so a
 * crash at any moment leaves the old file or the new one, never half of
 * one), CRC-32 checksums to find a file damaged after it was written, and the
 * listing and removal of checkpoint folders ("step-N", "refused-step-N").
 *
 * What goes into a checkpoint (the shards, the manifest naming them with
 * their checksums) is the program's business; these functions only move
 * bytes, and report every failure with the system's reason instead of
 * stopping, so the program can say which checkpoint failed and stop every
 * rank together. */
#include "galvrt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The CRC-32 table of the IEEE polynomial (reflected 0xEDB88320), built on first use. */
static uint32_t crc_table[256];

/* Fill crc_table once. */
static void crc_init(void) {
    if (crc_table[1]) return;
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

/* CRC-32 of n bytes at p, continuing crc (0 to start): zlib's crc32(). */
uint32_t grt_crc32(uint32_t crc, const void *p, size_t n) {
    crc_init();
    const unsigned char *b = p;
    crc = ~crc;
    for (size_t i = 0; i < n; i++)
        crc = crc_table[(crc ^ b[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* fsync the folder holding path, so a rename in it survives a crash. */
static int sync_parent(const char *path) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = 0;
    else if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof dir, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Write every span to path, all or nothing; on failure the message names the step and the reason. */
int grt_write_atomic(const char *path, const GrtSpan *spans, int n, uint32_t *crc, char *err, size_t errlen) {
    /* a file over the size limit must fail its write, not kill the rank */
    signal(SIGXFSZ, SIG_IGN);
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) {
        snprintf(err, errlen, "%s: path too long", path);
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
    uint32_t c = 0;
    const char *what = "write";
    int ok = 1;
    for (int i = 0; ok && i < n; i++) {
        const char *p = spans[i].p;
        size_t left = spans[i].n;
        c = grt_crc32(c, p, left);
        while (left > 0) {
            ssize_t w = write(fd, p, left);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                if (w == 0) errno = ENOSPC;
                ok = 0;
                break;
            }
            p += w, left -= (size_t)w;
        }
    }
    if (ok && fsync(fd) != 0) ok = 0, what = "fsync";
    int saved = errno;
    if (close(fd) != 0 && ok) ok = 0, what = "close", saved = errno;
    if (ok && rename(tmp, path) != 0) ok = 0, what = "rename", saved = errno;
    if (ok && sync_parent(path) != 0) ok = 0, what = "fsync of the folder", saved = errno;
    if (!ok) {
        unlink(tmp);
        snprintf(err, errlen, "%s of %s failed: %s", what, tmp, strerror(saved));
        return -1;
    }
    if (crc) *crc = c;
    return 0;
}

/* Size and CRC-32 of the whole file at path; -1 when it cannot be read. */
int grt_file_crc32(const char *path, uint64_t *bytes, uint32_t *crc) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    static char buf[1 << 16];
    uint32_t c = 0;
    uint64_t total = 0;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            close(fd);
            return -1;
        }
        if (r == 0) break;
        c = grt_crc32(c, buf, (size_t)r);
        total += (uint64_t)r;
    }
    close(fd);
    *bytes = total, *crc = c;
    return 0;
}

/* n bytes at offset off of path into buf; -1 when the file is unreadable or shorter. */
int grt_read_range(const char *path, uint64_t off, void *buf, size_t n) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    char *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            close(fd);
            return -1;
        }
        p += r, n -= (size_t)r, off += (uint64_t)r;
    }
    close(fd);
    return 0;
}

/* mkdir -p path; -1 with the reason in err. */
int grt_make_dirs(const char *path, char *err, size_t errlen) {
    char p[4096];
    if ((size_t)snprintf(p, sizeof p, "%s", path) >= sizeof p) {
        snprintf(err, errlen, "%s: path too long", path);
        return -1;
    }
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s) continue;
        char keep = *s;
        *s = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "cannot create folder %s: %s", p, strerror(errno));
            return -1;
        }
        *s = keep;
        if (!keep) break;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s is not a folder", path);
        return -1;
    }
    if (access(path, W_OK | X_OK) != 0) {
        snprintf(err, errlen, "cannot write in %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Descending order of longs, for qsort. */
static int newest_first(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Is dir/name a folder itself, not a link to one? */
static int real_folder(const char *dir, const char *name) {
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The N of every folder PREFIX-N (a link is none) in dir, newest first, at most cap; -1 when dir cannot be listed. */
int grt_ckpt_steps(const char *dir, const char *prefix, long *steps, int cap) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    size_t len = strlen(prefix);
    struct dirent *e;
    while ((e = readdir(d)) && n < cap) {
        char *end;
        const char *digits = e->d_name + len;
        if (strncmp(e->d_name, prefix, len) != 0 || *digits < '0' || *digits > '9') continue;
        long s = strtol(digits, &end, 10);
        if (*end || s < 0 || !real_folder(dir, e->d_name)) continue;
        steps[n++] = s;
    }
    closedir(d);
    qsort(steps, (size_t)n, sizeof *steps, newest_first);
    return n;
}

/* Remove folder path and the files in it (checkpoint folders hold no
 * subfolders) without following a link: a link, as path or in it, is
 * removed itself, never what it points to; -1 on failure. */
int grt_remove_dir(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode)) return unlink(path);
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (!d) {
        if (fd >= 0) close(fd);
        return -1;
    }
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && unlinkat(fd, e->d_name, 0) != 0) rc = -1;
    closedir(d);
    if (rmdir(path) != 0) rc = -1;
    return rc;
}
