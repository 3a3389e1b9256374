/* replay.c — runs the fuzz target over every file in the folders given:
 * each input that ever crashed the frontend stays a regression test. */
#include <dirent.h>
#include <signal.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static int replay_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 1;
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0, n;
    unsigned char chunk[4096];
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (len + n > cap) {
            cap = 2 * (len + n);
            buf = realloc(buf, cap);
            if (!buf) return 1;
        }
        memcpy(buf + len, chunk, n);
        len += n;
    }
    fclose(f);
    alarm(10); /* a hang is a failure too: SIGALRM ends the run */
    LLVMFuzzerTestOneInput(buf ? buf : (const unsigned char *)"", len);
    alarm(0);
    free(buf);
    return 0;
}

int main(int argc, char **argv) {
    int count = 0;
    for (int i = 1; i < argc; i++) {
        DIR *d = opendir(argv[i]);
        if (!d) {
            fprintf(stderr, "replay: cannot open %s\n", argv[i]);
            return 1;
        }
        for (struct dirent *e; (e = readdir(d));) {
            if (e->d_name[0] == '.') continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
            if (replay_file(path)) {
                fprintf(stderr, "replay: cannot read %s\n", path);
                return 1;
            }
            count++;
        }
        closedir(d);
    }
    printf("replayed %d inputs without a crash\n", count);
    return count > 0 ? 0 : 1;
}
