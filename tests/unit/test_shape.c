/* test_shape.c — the shape pass against published parameter counts and
 * against the closed-form FLOP and activation formulas it cites. */
#include "check.h"
#include "frontend/frontend.h"
#include "passes/passes.h"

#include <string.h>

/* Load an example (run from the source root) through the frontend and shape pass. */
static const Graph *load(Arena *a, const char *path, const char *const *defines, int n_defines) {
    Diag d;
    diag_init(&d, stderr);
    Define defs[8];
    for (int i = 0; i < n_defines; i++) {
        const char *eq = strchr(defines[i], '=');
        defs[i] = (Define){arena_strndup(a, defines[i], (size_t)(eq - defines[i])), eq + 1};
    }
    FrontendOptions opt = {.input = path, .defines = defs, .n_defines = n_defines};
    Spec *s = frontend_load(a, &opt, &d);
    if (s) pass_shape(s, &d);
    if (!s || d.errors) {
        fprintf(stderr, "%s: failed to load\n", path);
        return NULL;
    }
    return s->graph;
}

/* Published totals (Hugging Face configs, counted with their weights). */
static void test_published_counts(void) {
    static const struct {
        const char *file;
        int64_t params;
    } models[] = {
        {"examples/gpt2-small.gv", 124439808},   {"examples/gpt2-medium.gv", 354823168},
        {"examples/gpt2-xl.gv", 1557611200},     {"examples/llama2-7b.gv", 6738415616},
        {"examples/llama2-70b.gv", 68976648192}, {"examples/t5-large.gv", 737668096},
        /* bert-large-uncased with its pooler, plus a 2-class projection */
        {"examples/bert-large.gv", 335141888 + 1024 * 2 + 2},
    };
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        Arena *a = arena_new();
        const Graph *g = load(a, models[i].file, NULL, 0);
        CHECK(g != NULL);
        if (g) CHECK_EQ(g->total_params, models[i].params);
        arena_free(a);
    }
}

/* Forward FLOPs of GPT-2 small equal Megatron's closed form per sample:
 * 24 s L h^2 + 4 s^2 L h + 2 s h V (Narayanan et al. 2021, eq. 3, over 3). */
static void test_gpt_flops(void) {
    Arena *a = arena_new();
    const Graph *g = load(a, "examples/gpt2-small.gv", NULL, 0);
    CHECK(g != NULL);
    if (g) {
        int64_t s = 1024, L = 12, h = 768, V = 50257;
        CHECK_EQ(g->total_fwd_flops, 24 * s * L * h * h + 4 * s * s * L * h + 2 * s * h * V);
        CHECK_EQ(g->total_bwd_flops, 2 * g->total_fwd_flops);
        const Layer *dec = g->layers[1];
        CHECK(dec->kind == LAYER_DECODER);
        CHECK_EQ(dec->params, 12 * h * h + 13 * h);
        CHECK_EQ(dec->out_bytes, 2 * s * h); /* bf16 */
        CHECK_EQ(dec->in.dim[0], s);
        CHECK_EQ(dec->in.dim[1], h);
    }
    arena_free(a);
}

/* Activations of one transformer layer with dropout, 16-bit: Korthikanti et
 * al. 2022, eq. 1: s h (34 + 5 a s / h) bytes, plus the norms' statistics. */
static void test_korthikanti_activations(void) {
    static const char *const defs[] = {"dropout=0.1", "precision=bf16"};
    Arena *a = arena_new();
    const Graph *g = load(a, "tests/unit/block.gv", defs, 2);
    CHECK(g != NULL);
    if (g) {
        const Layer *dec = g->layers[1];
        int64_t s = 128, h = 256, heads = 8;
        CHECK_EQ(dec->act_bytes, 34 * s * h + 5 * heads * s * s + 2 * 8 * s);
    }
    arena_free(a);
    /* without dropout, fp32: the masks and dropped copies go away */
    static const char *const defs32[] = {"dropout=0", "precision=fp32"};
    a = arena_new();
    g = load(a, "tests/unit/block.gv", defs32, 2);
    CHECK(g != NULL);
    if (g) {
        const Layer *dec = g->layers[1];
        int64_t s = 128, h = 256, heads = 8, e = 4;
        /* ln1, qkv input, q k v, probs, context, ln2, mlp input, gelu input, fc2 input */
        CHECK_EQ(dec->act_bytes, e * s * h + 8 * s + e * s * h + 3 * e * s * h + e * heads * s * s + e * s * h +
                                     e * s * h + 8 * s + e * s * h + 2 * e * s * 4 * h);
    }
    arena_free(a);
}

/* GQA shrinks K and V; SwiGLU has three matrices; RMSNorm has no bias. */
static void test_llama_layer(void) {
    Arena *a = arena_new();
    const Graph *g = load(a, "examples/llama2-70b.gv", NULL, 0);
    CHECK(g != NULL);
    if (g) {
        const Layer *l = g->layers[1];
        int64_t h = 8192, kv = 8 * 128, ffn = 28672;
        CHECK_EQ(l->params, 2 * h * h + 2 * h * kv + 3 * h * ffn + 2 * h);
        CHECK_EQ(l->kv_heads, 8);
        CHECK_EQ(l->head_dim, 128);
    }
    arena_free(a);
}

/* -D reaches the shapes: a deeper GPT-2 has proportionally more parameters. */
static void test_define_changes_shapes(void) {
    static const char *const defs[] = {"layers=24"};
    Arena *a = arena_new();
    const Graph *g = load(a, "examples/gpt2-small.gv", defs, 1);
    CHECK(g != NULL);
    if (g) {
        CHECK_EQ(g->n_layers, 27);
        CHECK_EQ(g->total_params, 124439808 + 12 * (12 * 768 * 768 + 13 * 768));
    }
    arena_free(a);
}

int main(void) {
    test_published_counts();
    test_gpt_flops();
    test_korthikanti_activations();
    test_llama_layer();
    test_define_changes_shapes();
    return check_report();
}
