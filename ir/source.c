/* source.c — reading an input file (a .gv model, an include, a hardware
 * profile) whole into the arena, refusing what could hang or flood: devices,
 * pipes, folders and files over a size limit. */
#include "ir.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

/* Read a regular file whole; refuse devices and pipes so nothing can hang
 * (O_NONBLOCK keeps even the open of a FIFO from waiting for a writer). */
int source_read_file(Arena *a, const char *path, size_t max_bytes, char **text, size_t *len) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return errno;
    struct stat st;
    int err = 0;
    if (fstat(fd, &st) != 0) err = errno;
    else if (S_ISDIR(st.st_mode)) err = EISDIR;
    else if (!S_ISREG(st.st_mode)) err = EINVAL;
    else if ((size_t)st.st_size > max_bytes) err = EFBIG;
    size_t n = 0;
    char *buf = NULL;
    if (!err) {
        buf = arena_alloc(a, (size_t)st.st_size + 1);
        while (n < (size_t)st.st_size) {
            ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) err = errno;
            if (r <= 0) break;
            n += (size_t)r;
        }
    }
    close(fd);
    *text = buf;
    *len = n;
    return err;
}
