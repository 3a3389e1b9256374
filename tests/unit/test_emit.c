/* test_emit.c — the emitted program: hostile model and layer names reach it
 * only as escaped string literals and sanitized comments (the program still
 * compiles, and the raw text appears nowhere), and a plan the runtime cannot
 * run yet is refused with a located error. The plan's picture: the same
 * names reach the SVG only as escaped text, and it stays well-formed XML. */
#include "backend/backend.h"
#include "check.h"
#include "frontend/frontend.h"
#include "hw/hw.h"
#include "passes/passes.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char model[] = "cluster c { devices_per_node = 2; device = cpu; memory = 1 GiB }\n"
                            "model m { embedding(256, 64, positions = 64); decoder(64, 4); layernorm(64); lm_head(tied) }\n"
                            "train { global_batch = 8; seq = 64 }\n";

static const char mlp_model[] = "cluster c { devices_per_node = 2; device = cpu; memory = 1 GiB }\n"
                                "model m { embedding(256, 64, positions = 64); mlp(64); lm_head(tied) }\n"
                                "train { global_batch = 8; seq = 64 }\n";

/* The test's model, shaped; a model that does not load fails the whole
 * test at once (every check after it would be about nothing). */
static Spec *load_src(Arena *a, const char *src) {
    Diag d;
    diag_init(&d, stderr);
    FrontendOptions opt = {.input = "m.gv", .input_text = src, .input_len = strlen(src)};
    Spec *s = frontend_load(a, &opt, &d);
    if (s) pass_shape(s, &d);
    if (!s || d.errors) {
        fprintf(stderr, "%s:%d: the test model does not load\n", __FILE__, __LINE__);
        exit(1);
    }
    return s;
}

static Spec *load(Arena *a) { return load_src(a, model); }

static Plan uniform(const Spec *s, Arena *a, Strategy st) {
    HwProfile hw;
    hw_preset(&hw, DEVICE_CPU);
    hw.memory = s->cluster->memory;
    SearchRequest req = {.devices = 2, .uniform = &st};
    Plan p;
    pass_search(s, &hw, &req, a, &p);
    return p;
}

static void test_hostile_names(void) {
    Arena *a = arena_new();
    Spec *s = load(a);
    static const char evil[] = "x\"); system(\"echo pwned\"); /* */ ?\?/\n#include <evil>\\";
    s->graph->name = evil;
    s->graph->layers[1]->name = evil;
    Plan p = uniform(s, a, (Strategy){.pp = 1, .tp = 2, .dp = 1, .tp_consec = true});
    CHECK(p.found);
    char path[] = "/tmp/galvc-test-emit-XXXXXX.c";
    int fd = mkstemps(path, 2);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w+");
    Diag d;
    diag_init(&d, stderr);
    CHECK(emit_c(f, s, &p, 2, "evil */ name.gv", &d));
    fflush(f);
    rewind(f);
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = 0;
    fclose(f);
    CHECK(strstr(text, "system(\"echo") == NULL); /* the raw name never appears */
    CHECK(strstr(text, "\n#include <evil>") == NULL); /* the newline stays escaped: no directive */
    CHECK(strstr(text, "evil */ name") == NULL);
    CHECK(strstr(text, "\"x\\\"); system(\\\"echo pwned\\\"); ") != NULL); /* only escaped */
    /* and the program is still valid C */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cc -std=c17 -fsyntax-only -Iruntime %s", path);
    CHECK(system(cmd) == 0);
    unlink(path);
    arena_free(a);
}

/* The SVG of a plan whose names hold markup, control bytes and malformed UTF-8. */
static void test_svg_hostile_names(void) {
    Arena *a = arena_new();
    Spec *s = load(a);
    static const char evil[] = "<script>alert('x')</script> & \"q\" \x01 \xff\xc3\xa9";
    s->graph->name = evil;
    s->graph->layers[1]->name = evil;
    Plan p = uniform(s, a, (Strategy){.pp = 1, .tp = 1, .dp = 2, .tp_consec = true});
    CHECK(p.found);
    HwProfile hw;
    hw_preset(&hw, DEVICE_CPU);
    Timeline tl;
    CHECK(pass_timeline(s, &hw, &p, a, &tl));
    char path[] = "/tmp/galvc-test-emit-XXXXXX.svg";
    int fd = mkstemps(path, 4);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "w+");
    CHECK(emit_svg(f, s, &p, &tl, 2));
    fflush(f);
    rewind(f);
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = 0;
    fclose(f);
    CHECK(strstr(text, "<script") == NULL && strstr(text, "'x'") == NULL && strstr(text, "\"q\"") == NULL);
    CHECK(strchr(text, '\x01') == NULL && strstr(text, "\xff") == NULL);
    CHECK(strstr(text, "&lt;script&gt;alert(&apos;x&apos;)&lt;/script&gt; &amp; &quot;q&quot; &#xFFFD; &#xFFFD;\xc3\xa9") !=
          NULL); /* valid UTF-8 (é) passes as it is */
    if (system("command -v xmllint >/dev/null 2>&1") == 0) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "xmllint --noout %s", path);
        CHECK(system(cmd) == 0);
    }
    unlink(path);
    arena_free(a);
}

static void test_unsupported_plan(void) {
    Arena *a = arena_new();
    Spec *s = load_src(a, mlp_model);
    Plan p = uniform(s, a, (Strategy){.pp = 1, .tp = 1, .dp = 2, .sdp = true, .tp_consec = true}); /* a lone MLP layer: not trained yet */
    CHECK(p.found);
    Diag d;
    diag_init(&d, NULL);
    FILE *f = tmpfile();
    CHECK(!emit_c(f, s, &p, 2, "m.gv", &d));
    CHECK(d.errors >= 1);
    fclose(f);
    arena_free(a);
}

int main(void) {
    test_hostile_names();
    test_svg_hostile_names();
    test_unsupported_plan();
    return check_report();
}
