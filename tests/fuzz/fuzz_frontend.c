/* fuzz_frontend.c — the libFuzzer target over the whole frontend, the shape
 * pass and the IR printers: any bytes as a model file. Includes are refused
 * (a fuzzer must not read the file system); diagnostics and the IR are
 * printed to /dev/null, so the printing code runs too. */
#include "frontend/frontend.h"
#include "passes/passes.h"

#include <errno.h>

static int no_includes(Arena *a, const char *path, char **text, size_t *len) {
    (void)a, (void)path, (void)text, (void)len;
    return ENOENT;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    static FILE *sink;
    if (!sink) sink = fopen("/dev/null", "w");
    Arena *arena = arena_new();
    Diag diag;
    diag_init(&diag, sink);
    FrontendOptions opt = {
        .input = "fuzz.gv", .input_text = (const char *)data, .input_len = size, .read = no_includes};
    Spec *spec = frontend_load(arena, &opt, &diag);
    if (spec) pass_shape(spec, &diag); /* after errors too, as galvc does */
    if (spec && !diag.errors && sink) {
        ir_print_table(sink, spec);
        ir_print_json(sink, spec);
    }
    arena_free(arena);
    return 0;
}
