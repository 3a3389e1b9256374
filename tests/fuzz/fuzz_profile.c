/* fuzz_profile.c — the libFuzzer target over the hardware profile reader
 * (hw/profile.c): any bytes as a profile file, resolved for a fixed
 * cluster (one node of eight A100 80GB) and a small model the shape pass has
 * sized, so Galvatron's computation and memory files have a layer to relate
 * their figures to. profile_resolve reads a path, so each input goes to a
 * private temporary file, removed afterwards. The file is named as one of
 * Galvatron's bf16 computation files (the only kind whose name matters: it
 * gives the precision); every other kind is recognized by its keys.
 * Diagnostics are printed to /dev/null, so the message code runs too. */
#include "frontend/frontend.h"
#include "hw/hw.h"
#include "passes/passes.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

/* A two-layer LLaMA-like model, parsed and sized once, kept for the run. */
static const Graph *tiny_graph(void) {
    static const char src[] = "cluster c { devices_per_node = 8; device = a100_80gb; memory = 80 GiB }\n"
                              "model tiny {\n"
                              "  embedding(1000, 64, pos = rotary)\n"
                              "  repeat 2 { decoder(64, 4, ffn = 176, act = swiglu, norm = rmsnorm, bias = false) }\n"
                              "  rmsnorm(64); lm_head(tied = false) }\n"
                              "train { global_batch = 8; seq = 128; precision = bf16 }\n";
    static Arena *arena;
    static const Graph *graph;
    if (arena) return graph;
    arena = arena_new();
    Diag d;
    diag_init(&d, stderr);
    FrontendOptions opt = {.input = "tiny.gv", .input_text = src, .input_len = strlen(src)};
    Spec *s = frontend_load(arena, &opt, &d);
    if (s) pass_shape(s, &d);
    if (!s || d.errors) {
        fprintf(stderr, "fuzz_profile: the fixed model does not load\n");
        abort();
    }
    graph = s->graph;
    return graph;
}

/* Write the input to a fresh private file; its path in `path`, or false. */
static bool write_temp(const unsigned char *data, size_t size, char *path, size_t path_size) {
    static const char suffix[] = "_all.json";
    const char *dir = getenv("TMPDIR");
    snprintf(path, path_size, "%s/computation_profiling_bf16_fuzz_XXXXXX%s", dir && *dir ? dir : "/tmp", suffix);
    int fd = mkstemps(path, (int)strlen(suffix));
    if (fd < 0) return false;
    bool ok = true;
    for (size_t done = 0; ok && done < size;) {
        ssize_t n = write(fd, data + done, size - done);
        if (n <= 0) ok = false;
        else done += (size_t)n;
    }
    close(fd);
    if (!ok) unlink(path);
    return ok;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    static FILE *sink;
    if (!sink) sink = fopen("/dev/null", "w");
    static const Cluster cluster = {
        .name = "c", .nodes = 1, .devices_per_node = 8, .device = DEVICE_A100_80GB, .memory = 80LL << 30};
    const Graph *graph = tiny_graph();
    char path[4096];
    if (!write_temp(data, size, path, sizeof path)) {
        perror("fuzz_profile: cannot write a temporary file");
        abort(); /* a fuzzer that tests nothing must not look like a pass */
    }
    Arena *arena = arena_new();
    Diag diag;
    diag_init(&diag, sink);
    HwProfile hw;
    profile_resolve(arena, &cluster, graph, path, &hw, &diag);
    unlink(path);
    arena_free(arena);
    return 0;
}
