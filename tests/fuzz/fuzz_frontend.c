/* fuzz_frontend.c — the libFuzzer target over the whole frontend and the
 * shape pass: any bytes as a model file. Includes are refused (a fuzzer must
 * not read the file system), diagnostics are counted but not printed. */
#include "frontend/frontend.h"
#include "passes/passes.h"

#include <errno.h>

static int no_includes(Arena *a, const char *path, char **text, size_t *len) {
    (void)a, (void)path, (void)text, (void)len;
    return ENOENT;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    Arena *arena = arena_new();
    Diag diag;
    diag_init(&diag, NULL);
    FrontendOptions opt = {
        .input = "fuzz.gv", .input_text = (const char *)data, .input_len = size, .read = no_includes};
    Spec *spec = frontend_load(arena, &opt, &diag);
    if (spec) pass_shape(spec, &diag); /* after errors too, as galvc does */
    arena_free(arena);
    return 0;
}
