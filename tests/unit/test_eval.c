/* test_eval.c — the evaluator: integer and floating arithmetic, units, -D,
 * repeat, include-once and the --cluster swap, through frontend_load. */
#include "check.h"
#include "frontend/frontend.h"
#include "passes/passes.h"

#include <string.h>

static const char prelude[] =
    "model m { embedding(256, 64, positions = 64); lm_head(tied) }\n"
    "train { global_batch = 8; seq = 64 }\n";

/* Load model text (the prelude plus `text`) with optional -D; count errors. */
static Spec *load_text(Arena *a, const char *text, const Define *defs, int n_defs, int *errors) {
    Diag d;
    diag_init(&d, NULL);
    const char *src = arena_printf(a, "%s%s", prelude, text);
    FrontendOptions opt = {.input = "test.gv", .input_text = src, .input_len = strlen(src), .defines = defs,
                           .n_defines = n_defs};
    Spec *s = frontend_load(a, &opt, &d);
    if (s) pass_shape(s, &d);
    *errors = d.errors;
    return s;
}

static void test_units(void) {
    Arena *a = arena_new();
    int errors;
    Spec *s = load_text(a,
                        "cluster c { devices_per_node = 2 * 2; device = cpu; memory = 1.5 GiB + 512 MiB\n"
                        "  intra = link(bandwidth = 300 GB/s, latency = 2 us)\n"
                        "  inter = link(bandwidth = 1 GiB / 1 ms, latency = 1500 ns) }\n",
                        NULL, 0, &errors);
    CHECK_EQ(errors, 0);
    if (s && !errors) {
        CHECK_EQ(s->cluster->devices_per_node, 4);
        CHECK_EQ(s->cluster->memory, 2LL << 30);
        CHECK(s->cluster->intra.bandwidth == 300e9);
        CHECK(s->cluster->intra.latency == 2e-6);
        CHECK(s->cluster->inter.bandwidth == (double)(1 << 30) * 1000);
        CHECK(s->cluster->inter.latency == 1500e-9);
    }
    arena_free(a);
}

static void test_counts_and_division(void) {
    Arena *a = arena_new();
    int errors;
    Spec *s = load_text(a,
                        "k = 2 K; m = 3 M; b = 7 B\n"
                        "cluster c { devices_per_node = (k + m + b) / 1000 - 7003000 + 2; device = cpu\n"
                        "  memory = 80 GiB }\n",
                        NULL, 0, &errors);
    CHECK_EQ(errors, 0);
    if (s && !errors) CHECK_EQ(s->cluster->devices_per_node, 4);
    arena_free(a);
    /* inexact division gives a float, which a count refuses */
    a = arena_new();
    load_text(a, "cluster c { devices_per_node = 7 / 2; device = cpu; memory = 1 GiB }\n", NULL, 0, &errors);
    CHECK_EQ(errors, 1);
    arena_free(a);
}

static void test_errors_are_counted(void) {
    static const struct {
        const char *text;
        int errors;
    } cases[] = {
        {"cluster c { devices_per_node = 2; device = cpu; memory = 2 }\n", 1},             /* no unit */
        {"cluster c { devices_per_node = 2; device = tpu; memory = 2 GiB }\n", 1},         /* enum */
        {"cluster c { devices_per_node = 9223372036854775807 + 1; device = cpu; memory = 1 GiB }\n", 1},
        {"cluster c { devices_per_node = 2; device = cpu; memory = 1 GiB; memory = 2 GiB }\n", 1},
        {"cluster c { devices_per_node = 2; device = cpu }\n", 1}, /* memory missing */
        {"x = 1 / 0\ncluster c { devices_per_node = 2; device = cpu; memory = 1 GiB }\n", 1},
        {"cluster c { devices_per_node = 2; device = cpu; memory = 1 GiB }\ncluster d { }\n", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Arena *a = arena_new();
        int errors;
        load_text(a, cases[i].text, NULL, 0, &errors);
        if (errors != cases[i].errors) fprintf(stderr, "case %zu: %s", i, cases[i].text);
        CHECK_EQ(errors, cases[i].errors);
        arena_free(a);
    }
}

static void test_defines_and_repeat(void) {
    static const char text[] =
        "n = 3\nmodel deep { embedding(256, 64, positions = 64); repeat n { repeat 2 { mlp() } }; lm_head(tied) }\n"
        "cluster c { devices_per_node = 2; device = cpu; memory = 1 GiB }\n";
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, NULL);
    Define defs[] = {{"n", "2 * 2"}, {"memory", "3 GiB"}};
    const char *src = arena_printf(a, "%s", text);
    /* no prelude: this model replaces it */
    src = arena_printf(a, "%strain { global_batch = 8; seq = 64 }\n", src);
    FrontendOptions opt = {.input = "t.gv", .input_text = src, .input_len = strlen(src), .defines = defs,
                           .n_defines = 2};
    Spec *s = frontend_load(a, &opt, &d);
    CHECK(s != NULL);
    CHECK_EQ(d.errors, 0);
    if (s && !d.errors) {
        CHECK_EQ(s->graph->n_layers, 2 + 4 * 2);
        CHECK_EQ(s->cluster->memory, 3LL << 30);
        CHECK(strcmp(s->graph->layers[3]->name, "mlp.2") == 0);
    }
    arena_free(a);
    /* a -D that names nothing is an error */
    a = arena_new();
    int errors;
    Define bad[] = {{"nope", "1"}};
    load_text(a, "cluster c { devices_per_node = 2; device = cpu; memory = 1 GiB }\n", bad, 1, &errors);
    CHECK_EQ(errors, 1);
    arena_free(a);
}

/* Files from disk: include once, and --cluster replaces the model's cluster. */
static void test_include_and_cluster_swap(void) {
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, NULL);
    FrontendOptions opt = {.input = "tests/golden/include-twice.gv", .cluster_file = "tests/golden/include/big-box.gv"};
    Spec *s = frontend_load(a, &opt, &d);
    CHECK(s != NULL);
    CHECK_EQ(d.errors, 0);
    if (s && !d.errors) {
        CHECK(strcmp(s->cluster->name, "big_box") == 0);
        CHECK_EQ(s->cluster->nodes, 2);
        CHECK_EQ(s->n_files, 4); /* the model, box.gv once, tiny-model.gv, big-box.gv */
    }
    arena_free(a);
}

/* A model file that cannot be read: no Spec, one error, no crash. */
static void test_missing_input(void) {
    Arena *a = arena_new();
    Diag d;
    diag_init(&d, NULL);
    FrontendOptions opt = {.input = "tests/no-such-model.gv"};
    CHECK(frontend_load(a, &opt, &d) == NULL);
    CHECK_EQ(d.errors, 1);
    opt.input = "tests"; /* a folder is not a model */
    CHECK(frontend_load(a, &opt, &d) == NULL);
    CHECK_EQ(d.errors, 2);
    arena_free(a);
}

int main(void) {
    test_missing_input();
    test_units();
    test_counts_and_division();
    test_errors_are_counted();
    test_defines_and_repeat();
    test_include_and_cluster_swap();
    return check_report();
}
