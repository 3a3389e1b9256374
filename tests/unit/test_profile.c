/* test_profile.c — profile_resolve: the datasheet preset, the cluster's link
 * figures over it, galvc's own profile format (good and malformed files, one
 * error each), Galvatron's profile files and folders, and missing paths;
 * that the docs name every key of the profile's and the log's schemas; and
 * ranks sharing a device (hw_share). */
#include "check.h"
#include "frontend/frontend.h"
#include "hw/hw.h"
#include "runtime/galvrt.h"
#include "runtime/galvrt_log.h"
#include "hw/profile_schema.h"
#include "passes/passes.h"

#include <math.h>
#include <string.h>

#define PROFILES "tests/data/profiles/"
#define GALVATRON "tests/data/galvatron"

/* Whether two doubles agree to a relative 1e-9. */
static bool near(double a, double b) { return fabs(a - b) <= 1e-9 * fmax(fabs(a), fabs(b)); }
/* Within the 6 or 7 digits a figure worked out elsewhere is written with. */
static bool near_fig(double a, double b) { return fabs(a - b) <= 1e-5 * fmax(fabs(a), fabs(b)); }

/* An 8-device A100 80GB cluster on `nodes` nodes, no link figures. */
static Cluster a100_cluster(int64_t nodes) {
    return (Cluster){.name = "c", .nodes = nodes, .devices_per_node = 8, .device = DEVICE_A100_80GB,
                     .memory = 80LL << 30};
}

/* Resolve `path` for cluster c and model g; count the errors, keep the messages in out. */
static bool resolve(Arena *a, const Cluster *c, const Graph *g, const char *path, HwProfile *hw, int *errors,
                    char *out, size_t out_size) {
    FILE *f = tmpfile();
    Diag d;
    diag_init(&d, f);
    bool ok = profile_resolve(a, c, g, path, hw, &d);
    *errors = d.errors;
    if (out && out_size) {
        out[0] = 0;
        if (f) {
            rewind(f);
            size_t n = fread(out, 1, out_size - 1, f);
            out[n] = 0;
        }
    }
    if (f) fclose(f);
    return ok;
}

/* The preset, with the cluster's memory over it. */
static void test_preset_only(void) {
    Arena *a = arena_new();
    Cluster c = a100_cluster(1);
    c.memory = 40LL << 30; /* the cluster's memory wins over the preset's 80 GiB */
    HwProfile hw, preset;
    int errors;
    hw_preset(&preset, DEVICE_A100_80GB);
    CHECK(resolve(a, &c, NULL, NULL, &hw, &errors, NULL, 0));
    CHECK_EQ(errors, 0);
    CHECK_EQ(hw.memory, 40LL << 30);
    CHECK(hw.peak_flops[PREC_BF16] == 312e12);
    CHECK(hw.peak_flops[PREC_FP32] == 19.5e12);
    CHECK(hw.gemm_efficiency == preset.gemm_efficiency);
    CHECK(hw.intra.bandwidth == preset.intra.bandwidth && hw.intra.latency == preset.intra.latency);
    CHECK(hw.inter.bandwidth == preset.inter.bandwidth && hw.inter.latency == preset.inter.latency);
    CHECK(hw.measured_bw[COLL_ALLREDUCE][3][1] == 0);
    CHECK(strcmp(hw.name, "a100_80gb") == 0);
    arena_free(a);
}

/* The cluster's non-zero link figures over the preset's. */
static void test_cluster_links(void) {
    Arena *a = arena_new();
    Cluster c = a100_cluster(2);
    c.intra = (Link){.given = true, .kind = LINK_NVLINK, .bandwidth = 250e9, .latency = 0};
    c.inter = (Link){.given = true, .kind = LINK_INFINIBAND, .bandwidth = 0, .latency = 7e-6};
    HwProfile hw, preset;
    int errors;
    hw_preset(&preset, DEVICE_A100_80GB);
    CHECK(resolve(a, &c, NULL, NULL, &hw, &errors, NULL, 0));
    CHECK(hw.intra.bandwidth == 250e9);
    CHECK(hw.intra.latency == preset.intra.latency); /* zero: keep the preset */
    CHECK(hw.inter.bandwidth == preset.inter.bandwidth);
    CHECK(hw.inter.latency == 7e-6);
    /* a link that was not given changes nothing, whatever its figures */
    c.inter = (Link){.given = false, .bandwidth = 1, .latency = 1};
    CHECK(resolve(a, &c, NULL, NULL, &hw, &errors, NULL, 0));
    CHECK(hw.inter.bandwidth == preset.inter.bandwidth && hw.inter.latency == preset.inter.latency);
    arena_free(a);
}

/* A galvc profile over the cluster's figures; a minimal one changes nothing. */
static void test_galvc_format(void) {
    Arena *a = arena_new();
    Cluster c = a100_cluster(1);
    c.intra = (Link){.given = true, .bandwidth = 250e9, .latency = 1e-6};
    HwProfile hw, preset;
    int errors;
    hw_preset(&preset, DEVICE_A100_80GB);
    CHECK(resolve(a, &c, NULL, PROFILES "good.json", &hw, &errors, NULL, 0));
    CHECK_EQ(errors, 0);
    CHECK(hw.peak_flops[PREC_FP32] == 19.5e12);
    CHECK(hw.peak_flops[PREC_BF16] == 300e12);
    CHECK(hw.peak_flops[PREC_FP16] == 310e12);
    CHECK(hw.gemm_efficiency == 0.72);
    CHECK(hw.mem_bandwidth == 2.0e12);
    CHECK(hw.overlap_slowdown == 1.13);
    CHECK(hw.sync_s == 2.5e-5);
    CHECK(hw.intra.bandwidth == 280e9 && hw.intra.latency == 3e-6); /* the profile over the cluster */
    CHECK(hw.inter.bandwidth == 24e9 && hw.inter.latency == 8e-6);
    CHECK(hw.measured_bw[COLL_ALLREDUCE][3][1] == 154.2e9);
    CHECK(hw.measured_bw[COLL_ALLREDUCE][2][0] == 155.8e9);
    CHECK(hw.measured_bw[COLL_ALLGATHER][1][1] == 120e9);
    CHECK(hw.measured_bw[COLL_P2P][1][1] == 163.7e9); /* consecutive by default */
    CHECK(hw.measured_bw[COLL_REDUCESCATTER][3][1] == 0);
    CHECK(hw.measured_lat[COLL_ALLGATHER][1][1] == 12e-6);
    CHECK(hw.measured_lat[COLL_ALLREDUCE][3][1] == 0); /* no latency given: not measured */
    const LayerFit *block = hw.layer_fit[PROFILE_LAYER_BLOCK][0], *norm = hw.layer_fit[PROFILE_LAYER_NORM][2];
    CHECK(block[0].fixed_s == 2e-5 && block[0].rate == 150e12 && block[1].fixed_s == 0 && block[1].rate == 160e12);
    CHECK(norm[0].fixed_s == 1e-6 && norm[0].rate == 1.5e12 && norm[1].fixed_s == 2e-6 && norm[1].rate == 1.2e12);
    CHECK(hw.layer_fit[PROFILE_LAYER_HEAD][0][0].rate == 0);
    CHECK_EQ(hw.memory, 80LL << 30);

    /* format and version alone: the cluster's figures stand */
    CHECK(resolve(a, &c, NULL, PROFILES "minimal.json", &hw, &errors, NULL, 0));
    CHECK_EQ(errors, 0);
    CHECK(hw.intra.bandwidth == 250e9 && hw.gemm_efficiency == preset.gemm_efficiency);
    arena_free(a);
}

/* A GPU profile as galvc-profiler-cuda writes it (two ranks sharing an
 * H200): its GEMM rates by arithmetic, its measured peaks over the
 * datasheet's (fp16, not measured, stays the datasheet's), its layer fits
 * and the shared GPU's collectives. */
static void test_cuda_profile(void) {
    Arena *a = arena_new();
    Cluster c = {.name = "h200x1", .nodes = 1, .devices_per_node = 1, .device = DEVICE_H200, .memory = 141000000000LL};
    HwProfile hw, preset;
    int errors;
    hw_preset(&preset, DEVICE_H200);
    CHECK(resolve(a, &c, NULL, PROFILES "cuda-h200.json", &hw, &errors, NULL, 0));
    CHECK_EQ(errors, 0);
    CHECK(hw.gemm_rates[0] == 4.64e13 && hw.gemm_rates[1] == 3.37e14 && hw.gemm_rates[2] == 6.18e14);
    CHECK(hw.peak_flops[PREC_FP32] == 5.12e13 && hw.peak_flops[PREC_BF16] == 7.31e14);
    CHECK(hw.peak_flops[PREC_FP16] == preset.peak_flops[PREC_FP16]);
    CHECK(hw.gemm_efficiency == 0.6093 && hw.mem_bandwidth == 4.08e12);
    CHECK(hw.layer_fit[PROFILE_LAYER_BLOCK][0][0].rate == 3.02e13);
    CHECK(hw.measured_bw[COLL_P2P][1][1] == 1.12e10);
    /* the datasheet alone measures no GEMM rates */
    CHECK(preset.gemm_rates[0] == 0 && preset.gemm_rates[2] == 0);
    /* measured on an H200: not an A100 cluster's profile */
    Cluster a100 = a100_cluster(1);
    CHECK(!resolve(a, &a100, NULL, PROFILES "cuda-h200.json", &hw, &errors, NULL, 0));
    CHECK_EQ(errors, 1);
    arena_free(a);
}

/* Each malformed file gives exactly one error and leaves hw at the preset. */
static void test_malformed(void) {
    static const char *const files[] = {
        "bad-syntax.json",         "bad-unknown-key.json",    "bad-type.json",       "bad-negative.json",
        "bad-device.json",         "bad-version.json",        "bad-group.json",      "bad-repeat.json",
        "bad-missing-field.json",  "bad-duplicate-key.json",  "bad-efficiency.json", "bad-format.json",
        "bad-not-object.json",     "bad-not-a-profile.json",  "bad-galvatron-value.json",
        "bad-galvatron-group.json", "bad-galvatron-huge.json", "bad-layer-kind.json",
        "bad-layer-repeat.json",   "bad-layer-fit.json",      "bad-latency.json",
        "bad-gemm-rates.json",
    };
    Cluster c = a100_cluster(1);
    HwProfile preset;
    hw_preset(&preset, DEVICE_A100_80GB);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        Arena *a = arena_new();
        HwProfile hw;
        int errors;
        char out[2048];
        const char *path = arena_printf(a, PROFILES "%s", files[i]);
        bool ok = resolve(a, &c, NULL, path, &hw, &errors, out, sizeof out);
        CHECK(!ok);
        CHECK_EQ(errors, 1);
        if (errors != 1) fprintf(stderr, "%s:\n%s", files[i], out);
        CHECK(strncmp(out, path, strlen(path)) == 0); /* every message names the file */
        /* a bad profile leaves the preset as it was */
        CHECK(hw.gemm_efficiency == preset.gemm_efficiency && hw.measured_bw[COLL_ALLREDUCE][2][1] == 0);
        arena_free(a);
    }
}

/* The messages point at the place: JSON syntax by jansson's line and column,
 * a bad value at its key. */
static void test_locations(void) {
    Arena *a = arena_new();
    Cluster c = a100_cluster(1);
    HwProfile hw;
    int errors;
    char out[2048];
    resolve(a, &c, NULL, PROFILES "bad-syntax.json", &hw, &errors, out, sizeof out);
    CHECK(strstr(out, PROFILES "bad-syntax.json:5:1: error: malformed JSON") == out);
    resolve(a, &c, NULL, PROFILES "bad-negative.json", &hw, &errors, out, sizeof out);
    CHECK(strstr(out, PROFILES "bad-negative.json:5:13: error: 'intra.latency' must be a non-negative number") ==
          out);
    resolve(a, &c, NULL, PROFILES "bad-unknown-key.json", &hw, &errors, out, sizeof out);
    CHECK(strstr(out, ":4:3: error: unknown key 'gemm_eficiency'") != NULL);
    CHECK(strstr(out, "did you mean 'gemm_efficiency'?") != NULL);
    resolve(a, &c, NULL, PROFILES "bad-group.json", &hw, &errors, out, sizeof out);
    CHECK(strstr(out, ":6:25: error: 'collectives[1].group' must be a power of two") != NULL);
    resolve(a, &c, NULL, PROFILES "bad-galvatron-value.json", &hw, &errors, out, sizeof out);
    CHECK(strstr(out, ":2:5: error: 'allreduce_size_8_consec_1' must be a positive number (GB/s)") != NULL);
    resolve(a, &c, NULL, PROFILES "bad-device.json", &hw, &errors, out, sizeof out);
    CHECK(strstr(out, "measured on h100_sxm devices, but cluster 'c' has a100_80gb") != NULL);
    arena_free(a);
}

/* LLaMA-2-7B at `seq` tokens on one 8 x A100 80GB node, shaped. */
static Spec *llama_spec(Arena *a, int64_t seq) {
    const char *src = arena_printf(a,
                                   "cluster c { devices_per_node = 8; device = a100_80gb; memory = 80 GiB }\n"
                                   "model llama2_7b {\n"
                                   "  embedding(32000, 4096, pos = rotary)\n"
                                   "  repeat 32 { decoder(4096, 32, ffn = 11008, act = swiglu, norm = rmsnorm,"
                                   " bias = false) }\n"
                                   "  rmsnorm(4096); lm_head(tied = false) }\n"
                                   "train { global_batch = 16; seq = %lld; precision = bf16 }\n",
                                   (long long)seq);
    Diag d;
    diag_init(&d, stderr);
    FrontendOptions opt = {.input = "llama.gv", .input_text = src, .input_len = strlen(src)};
    Spec *s = frontend_load(a, &opt, &d);
    if (s) pass_shape(s, &d);
    CHECK_EQ(d.errors, 0);
    return d.errors ? NULL : s;
}

/* A folder of Galvatron files: those of the cluster's node count, else the
 * largest; and single files, recognized by their keys. */
static void test_galvatron_folder(void) {
    Arena *a = arena_new();
    HwProfile hw, preset;
    int errors;
    char out[2048];
    hw_preset(&preset, DEVICE_A100_80GB);

    /* one node: the 1-node files */
    Cluster c1 = a100_cluster(1);
    CHECK(resolve(a, &c1, NULL, GALVATRON, &hw, &errors, out, sizeof out));
    CHECK_EQ(errors, 0);
    CHECK(near(hw.measured_bw[COLL_ALLREDUCE][3][1], 154.203e9));
    CHECK(near(hw.measured_bw[COLL_ALLREDUCE][2][0], 155.815e9));
    CHECK(near(hw.measured_bw[COLL_ALLREDUCE][1][1], 138.156e9));
    CHECK(hw.measured_bw[COLL_ALLREDUCE][4][1] == 0); /* 16 devices: only in the 2-node file */
    CHECK(near(hw.measured_bw[COLL_P2P][1][1], 163.671e9));
    CHECK(near(hw.measured_bw[COLL_P2P][3][1], 109.45e9));
    CHECK(near(hw.overlap_slowdown, 1.125552573612729));
    CHECK(near_fig(hw.measured_bw[COLL_ALLTOALL][3][1], 199.2471e9)); /* sp_time_1nodes_8gpus_per_node.json */
    CHECK(hw.gemm_efficiency == preset.gemm_efficiency); /* no model: the layer times give nothing */

    /* two nodes: the 2-node files; a trailing slash is fine */
    Cluster c2 = a100_cluster(2);
    CHECK(resolve(a, &c2, NULL, GALVATRON "/", &hw, &errors, NULL, 0));
    CHECK_EQ(errors, 0);
    CHECK(near(hw.measured_bw[COLL_ALLREDUCE][4][1], 44.682e9));
    CHECK(near(hw.measured_bw[COLL_ALLREDUCE][3][0], 20.7724e9));
    CHECK(near(hw.measured_bw[COLL_P2P][1][1], 7.65998e9));
    CHECK(near(hw.measured_bw[COLL_P2P][4][1], 8.13177e9));

    /* four nodes: no file matches, so the largest (2 nodes) */
    Cluster c4 = a100_cluster(4);
    CHECK(resolve(a, &c4, NULL, GALVATRON, &hw, &errors, NULL, 0));
    CHECK(near(hw.measured_bw[COLL_ALLREDUCE][4][1], 44.682e9));

    /* a single Galvatron file, recognized by its keys */
    CHECK(resolve(a, &c1, NULL, GALVATRON "/overlap_coefficient.json", &hw, &errors, NULL, 0));
    CHECK(near(hw.overlap_slowdown, 1.125552573612729) && hw.measured_bw[COLL_ALLREDUCE][3][1] == 0);
    CHECK(resolve(a, &c1, NULL, GALVATRON "/allreduce_bandwidth_2nodes_8gpus_per_node.json", &hw, &errors, NULL, 0));
    CHECK(near(hw.measured_bw[COLL_ALLREDUCE][4][1], 44.682e9) && hw.overlap_slowdown == preset.overlap_slowdown);
    /* files with nothing for the hardware model are accepted and change nothing */
    CHECK(resolve(a, &c1, NULL, GALVATRON "/memory_profiling_bf16_llama2-7b_all.json", &hw, &errors, NULL, 0));
    CHECK_EQ(errors, 0);
    /* sp_time's all-to-all times (ms by MiB), a least-squares line per group: bus bandwidth (g-1)/g MiB over
     * its slope, latency its intercept (the figures worked out apart from galvc, from the file's 11 sizes) */
    CHECK(resolve(a, &c1, NULL, GALVATRON "/sp_time_1nodes_8gpus_per_node.json", &hw, &errors, NULL, 0));
    CHECK_EQ(errors, 0);
    CHECK(near_fig(hw.measured_bw[COLL_ALLTOALL][1][1], 157.4323e9) &&
          near_fig(hw.measured_lat[COLL_ALLTOALL][1][1], 71.528e-6));
    CHECK(near_fig(hw.measured_bw[COLL_ALLTOALL][2][1], 202.9679e9) &&
          near_fig(hw.measured_lat[COLL_ALLTOALL][2][1], 101.202e-6));
    CHECK(near_fig(hw.measured_bw[COLL_ALLTOALL][3][1], 199.2471e9) &&
          near_fig(hw.measured_lat[COLL_ALLTOALL][3][1], 110.251e-6));
    CHECK(hw.measured_bw[COLL_ALLREDUCE][3][1] == 0); /* its all-reduce times are allreduce_bandwidth_*'s to give */
    CHECK(hw.gemm_efficiency == preset.gemm_efficiency);
    arena_free(a);
}

/* The layer times of LLaMA-2-7B's decoder become a GEMM efficiency. */
static void test_galvatron_efficiency(void) {
    Arena *a = arena_new();
    HwProfile hw;
    int errors;
    Spec *s = llama_spec(a, 2048);
    if (!s) {
        arena_free(a);
        return;
    }
    /* the decoder's forward FLOPs per sample at 2048 tokens: projections and
     * MLP 2048 * (8 h^2 + 6 h ffn), scores and context 4 * 2048^2 * h */
    double h = 4096, ffn = 11008, seq = 2048;
    double flops = seq * (8 * h * h + 6 * h * ffn) + 4 * seq * seq * h;
    const Layer *dec = s->graph->layers[1];
    CHECK_EQ(dec->kind, LAYER_DECODER);
    CHECK(dec->fwd_flops == (int64_t)flops);
    /* the least-squares line through b x (ms per sample) at b = 1..12, 2048
     * tokens (as Galvatron's own fit: 3.859 ms/sample x b + 0.833 ms); its
     * per-sample time gives the efficiency */
    double per_sample = 3.8590168994623464e-3, fixed = 0.8329851396156087e-3;
    double expected = flops / (per_sample * 312e12);
    CHECK(resolve(a, s->cluster, s->graph, GALVATRON, &hw, &errors, NULL, 0));
    CHECK_EQ(errors, 0);
    CHECK(near(hw.gemm_efficiency, expected));
    CHECK(hw.gemm_efficiency > 0.7 && hw.gemm_efficiency < 0.75);
    /* the block's fit at every TP degree: forward the line, backward twice
     * it, the TP all-reduces left to the cost pass */
    for (int lg = 0; lg <= 3; lg++) {
        const LayerFit *f = hw.layer_fit[PROFILE_LAYER_BLOCK][lg];
        CHECK(fabs(f[0].fixed_s - fixed) < 1e-12 && fabs(f[1].fixed_s - 2 * fixed) < 1e-12);
        CHECK(near(f[0].rate, flops / per_sample) && near(f[1].rate, f[0].rate));
        CHECK(!f[0].tp_comm && !f[1].tp_comm);
    }
    /* the embedding, norm and head share Galvatron's "other" line, 2.680 ms
     * per sample + 2.355 ms: at b = 1 and b = 8 their forward times add up to it */
    for (int b = 1; b <= 8; b += 7) {
        double sum = 0;
        for (int i = 0; i < s->graph->n_layers; i++) {
            const Layer *l = s->graph->layers[i];
            int k = l->kind == LAYER_EMBEDDING ? PROFILE_LAYER_EMBEDDING
                    : l->kind == LAYER_RMSNORM ? PROFILE_LAYER_NORM
                    : l->kind == LAYER_LM_HEAD ? PROFILE_LAYER_HEAD
                                               : -1;
            if (k < 0) continue;
            const LayerFit *f = &hw.layer_fit[k][0][0];
            CHECK(f->rate > 0);
            sum += f->fixed_s + layer_fit_work(l, (ProfileLayer)k, b, 2048, 1, false) / f->rate;
        }
        CHECK(fabs(sum - (2.354899244597462e-3 + b * 2.6803283231241726e-3)) < 1e-9);
    }
    /* the embedding's and head's activations: Galvatron's first and last stage */
    CHECK_EQ(hw.other_seq, 2048);
    CHECK(near(hw.other_act_per_sample[0][0], 198.7357177734375 * (1 << 20)));
    CHECK(near(hw.other_act_per_sample[1][3], 85.55889892578125 * (1 << 20)));
    /* the memory profile: the decoder's activations per sample by TP degree, MiB */
    CHECK_EQ(hw.act_seq, 2048);
    CHECK_EQ(hw.act_kind, LAYER_DECODER);
    CHECK(near(hw.act_per_sample[0], 514.5634765625 * (1 << 20)));
    CHECK(near(hw.act_per_sample[3], 68.3204345703125 * (1 << 20)));
    CHECK(near(hw.ckpt_act_per_sample, 32.0 * (1 << 20)));

    /* the single file gives the same */
    CHECK(resolve(a, s->cluster, s->graph, GALVATRON "/computation_profiling_bf16_llama2-7b_all.json", &hw, &errors,
                  NULL, 0));
    CHECK(near(hw.gemm_efficiency, expected));

    /* a 4096-token model: the 2048-token times, with the FLOPs scaled back
     * to 2048 tokens (attention's quadratic part included), give the same */
    Spec *s4 = llama_spec(a, 4096);
    if (s4) {
        CHECK(resolve(a, s4->cluster, s4->graph, GALVATRON, &hw, &errors, NULL, 0));
        CHECK(near(hw.gemm_efficiency, expected));
    }
    arena_free(a);
}

/* The cost pass prices a layer with Galvatron's line: a decoder at b = 1
 * and b = 8 samples per device costs 3 (0.833 ms + b 3.859 ms), forward and
 * twice that backward, with nothing added for elementwise work (a constant
 * per-sample time, as one GEMM efficiency gives, would make b = 8 cost 8 b = 1s);
 * under TP 2 the per-sample part halves and the all-reduces come on top. */
static void test_galvatron_batch_line(void) {
    Arena *a = arena_new();
    HwProfile hw;
    int errors;
    Spec *s = llama_spec(a, 2048); /* global batch 16 */
    if (!s || !resolve(a, s->cluster, s->graph, GALVATRON, &hw, &errors, NULL, 0)) {
        arena_free(a);
        CHECK(false);
        return;
    }
    double per_sample = 3.8590168994623464e-3, fixed = 0.8329851396156087e-3;
    Strategy one = {.pp = 1, .tp = 1, .dp = 1, .tp_consec = true}, tp2 = {.pp = 1, .tp = 2, .dp = 1, .tp_consec = true};
    StrategySet set1 = {.items = &one, .n = 1}, set2 = {.items = &tp2, .n = 1};
    double at[9] = {0};
    for (int b = 1; b <= 8; b += 7) {
        CostTable t;
        CHECK(pass_cost(s, &hw, &set1, 16 / b, a, &t)); /* 16 / b micro-batches of b samples */
        at[b] = t.cost[1].compute_s;
        CHECK(fabs(at[b] - 3 * (fixed + b * per_sample)) < 1e-12);
        CHECK(t.cost[1].mb_s == at[b]); /* no TP, no DP traffic per micro-batch */
        CHECK(pass_cost(s, &hw, &set2, 16 / b, a, &t));
        CHECK(fabs(t.cost[1].compute_s - 3 * (fixed + b * per_sample / 2)) < 1e-12);
        CHECK(t.cost[1].mb_s > t.cost[1].compute_s); /* the TP all-reduces */
    }
    CHECK(at[8] / at[1] > 6.7 && at[8] / at[1] < 6.8); /* not 8 */
    arena_free(a);
}

/* Missing files and folders, a folder with nothing of Galvatron's, a device file. */
static void test_bad_paths(void) {
    Arena *a = arena_new();
    Cluster c = a100_cluster(1);
    HwProfile hw, preset;
    int errors;
    char out[2048];
    hw_preset(&preset, DEVICE_A100_80GB);
    CHECK(!resolve(a, &c, NULL, PROFILES "no-such-file.json", &hw, &errors, out, sizeof out));
    CHECK_EQ(errors, 1);
    CHECK(strstr(out, PROFILES "no-such-file.json: error: cannot read the profile: No such file") == out);
    CHECK(hw.gemm_efficiency == preset.gemm_efficiency);
    /* a folder with no Galvatron file in it */
    CHECK(!resolve(a, &c, NULL, "tests/data/profiles", &hw, &errors, out, sizeof out));
    CHECK_EQ(errors, 1);
    CHECK(strstr(out, "tests/data/profiles: error: no Galvatron profile in this folder") == out);
    /* a folder that does not exist is a missing file */
    CHECK(!resolve(a, &c, NULL, "tests/data/no-such-folder/", &hw, &errors, NULL, 0));
    CHECK_EQ(errors, 1);
    /* not a regular file */
    CHECK(!resolve(a, &c, NULL, "/dev/null", &hw, &errors, out, sizeof out));
    CHECK_EQ(errors, 1);
    CHECK(strstr(out, "not a regular file") != NULL);
    arena_free(a);
}

/* The whole of a small file, or NULL. */
static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return buf;
}

/* Whether the doc names `key`, in backticks or in JSON's quotes. */
static bool documents(const char *doc, const char *key) {
    char code[64], json[64];
    snprintf(code, sizeof code, "`%s`", key);
    snprintf(json, sizeof json, "\"%s\"", key);
    return doc && (strstr(doc, code) || strstr(doc, json));
}

/* Every key of the profile's schema is in docs/profile-format.md, every key of the log's in docs/training-log.md. */
static void test_docs_name_the_schemas(void) {
    const char *doc = slurp("docs/profile-format.md");
    CHECK(doc != NULL);
#define X(e, unit) CHECK(documents(doc, PROFILE_KEY_##e));
    PROFILE_KEYS(X) PROFILE_LINK_KEYS(X) PROFILE_COLLECTIVE_KEYS(X) PROFILE_LAYER_KEYS(X) PROFILE_FIT_KEYS(X)
#undef X
    doc = slurp("docs/training-log.md");
    CHECK(doc != NULL);
#define X(e, unit) CHECK(documents(doc, LOG_KEY_##e));
    LOG_PLAN_KEYS(X) LOG_STEP_KEYS(X) LOG_STEP_CLASSIFIER_KEYS(X) LOG_MEMORY_KEYS(X)
#undef X
}

/* Ranks sharing a device (hw/share.c): k = ranks over devices rounded up,
 * at most the cluster's ranks_per_device, 1 when it allows one; with k > 1
 * each rank has 1/k of the compute, memory and bandwidth (a fit's fixed
 * time k times), its node k times the ranks, and the staged link (PCIe
 * there and back around a host copy) in place of NVLink; measured
 * collectives stay. */
static void test_shared_device(void) {
    Cluster c = a100_cluster(1);
    c.devices_per_node = 1, c.memory = 80LL << 30, c.reserve = 2LL << 30;
    CHECK_EQ(hw_sharing(&c, 2), 1); /* ranks_per_device unset: one each, whatever the ranks */
    c.ranks_per_device = 2;
    CHECK_EQ(hw_sharing(&c, 1), 1);
    CHECK_EQ(hw_sharing(&c, 2), 2);
    CHECK_EQ(hw_sharing(&c, 5), 2);
    HwProfile hw, whole;
    Cluster view;
    hw_preset(&hw, DEVICE_A100_80GB);
    hw.memory = c.memory;
    hw.gemm_rates[GRT_GEMM_BF16] = 3e14;
    hw.layer_fit[PROFILE_LAYER_BLOCK][0][1] = (LayerFit){.fixed_s = 1e-3, .rate = 1e14};
    hw.measured_bw[COLL_P2P][1][1] = 7e9;
    whole = hw;
    CHECK_EQ(hw_share(&c, 1, &hw, &view), 1);
    CHECK(view.ranks_per_device == 1 && view.memory == c.memory && hw.intra.bandwidth == whole.intra.bandwidth);
    CHECK_EQ(hw_share(&c, 2, &hw, &view), 2);
    CHECK(view.ranks_per_device == 2 && view.devices_per_node == 2 && view.memory == 40LL << 30 &&
          view.reserve == 1LL << 30 && hw.memory == 40LL << 30);
    CHECK(near(hw.peak_flops[PREC_BF16], whole.peak_flops[PREC_BF16] / 2) && near(hw.gemm_rates[GRT_GEMM_BF16], 1.5e14));
    CHECK(near(hw.mem_bandwidth, whole.mem_bandwidth / 2));
    const LayerFit *f = &hw.layer_fit[PROFILE_LAYER_BLOCK][0][1];
    CHECK(near(f->fixed_s, 2e-3) && near(f->rate, 5e13));
    double staged = 1 / (2 / 32e9 + 1 / 10e9); /* PCIe Gen4 each way, the host's copy at 10 GB/s */
    CHECK(near(hw.intra.bandwidth, staged) && near(hw.staged.bandwidth, staged) && hw.intra.latency > whole.intra.latency);
    CHECK(hw.measured_bw[COLL_P2P][1][1] == 7e9);
    hw_preset(&hw, DEVICE_CPU); /* CPU ranks' MPI stays the host's */
    CHECK(hw.staged.bandwidth == hw.intra.bandwidth && hw.staged.latency == hw.intra.latency);
}

int main(void) {
    test_preset_only();
    test_cluster_links();
    test_galvc_format();
    test_cuda_profile();
    test_malformed();
    test_locations();
    test_galvatron_folder();
    test_galvatron_efficiency();
    test_galvatron_batch_line();
    test_bad_paths();
    test_docs_name_the_schemas();
    test_shared_device();
    return check_report();
}
