/* emit_svg.c — the plan as a picture (`--emit=svg`, `--plot FILE`): one
 * standalone SVG, no scripts, fonts or files, with three parts: the pipeline
 * timeline of one step (a row per stage; forward, backward, recomputation,
 * communication, optimizer and bubble spans on a time axis in ms), each
 * stage's memory per device stacked by part against the budget, and the
 * strategy of every layer as a strip. The figures come from the timeline
 * pass (passes/timeline.c). Kinds differ in lightness and pattern, not only
 * in hue, and each strategy carries a letter, so the picture reads in grey.
 * Every name from the model reaches the SVG escaped (xml_text).
 *
 * Groups carry stable ids and classes for tests and readers: <g
 * id="timeline"> with one <g class="stage" data-stage="k" data-y data-height>
 * per row of <rect class="fwd|bwd|recompute|comm|optimizer|bubble">; <g
 * id="memory"> with <g class="stage-memory"> rows of <rect class="mem-PART">;
 * <g id="strategies"> with one <rect class="layer"> per layer. */
#include "backend.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum {
    WIDTH_MIN = 1000, /* the picture's width at least; wider for many layers */
    LEFT = 84,        /* the row labels' column */
    RIGHT = 24,
    MEM_LABEL = 190, /* right of the memory bars: "12.3 MiB of 40.0 GiB (31%)" */
};

/* A fill for a class: a colour, or a colour under a pattern of lines or dots
 * in a second colour; `text` is the colour that reads on it. */
typedef struct Fill {
    const char *cls, *bg, *fg, *text;
    char pattern; /* 0 plain, '/' stripes, '+' crossed, '.' dots */
} Fill;

static const Fill span_fills[SPAN_KIND_COUNT] = {
    [SPAN_FWD] = {"fwd", "#a6cee3", NULL, "#000", 0},
    [SPAN_BWD] = {"bwd", "#1f4e8c", NULL, "#fff", 0},
    [SPAN_RECOMPUTE] = {"recompute", "#a6cee3", "#1f4e8c", "#000", '/'},
    [SPAN_COMM] = {"comm", "#e66101", "#5a2600", "#fff", '+'},
    [SPAN_OPTIMIZER] = {"optimizer", "#4d9221", NULL, "#fff", 0},
    [SPAN_BUBBLE] = {"bubble", "#ffffff", "#9a9a9a", "#000", '.'},
};

static const Fill mem_fills[MEM_PART_COUNT] = {
    [MEM_PARAMS] = {"mem-params", "#08306b", NULL, "#fff", 0},
    [MEM_GRADS] = {"mem-grads", "#4292c6", NULL, "#fff", 0},
    [MEM_OPTIMIZER] = {"mem-optimizer", "#c6dbef", NULL, "#000", 0},
    [MEM_ACTIVATIONS] = {"mem-activations", "#fd8d3c", "#7f2704", "#000", '/'},
    [MEM_WORK] = {"mem-work", "#fdd0a2", NULL, "#000", 0},
    [MEM_RESERVE] = {"mem-reserve", "#f0f0f0", "#737373", "#000", '.'},
};

/* Strategies, dark and light by turns; past eight the colours repeat and the letters tell them apart. */
static const Fill strategy_fills[] = {
    {"s0", "#08306b", NULL, "#fff", 0}, {"s1", "#fdae6b", NULL, "#000", 0}, {"s2", "#238b45", NULL, "#fff", 0},
    {"s3", "#dadaeb", NULL, "#000", 0}, {"s4", "#a63603", NULL, "#fff", 0}, {"s5", "#9ecae1", NULL, "#000", 0},
    {"s6", "#54278f", NULL, "#fff", 0}, {"s7", "#fff7bc", NULL, "#000", 0},
};
enum { N_STRATEGY_FILLS = sizeof strategy_fills / sizeof *strategy_fills };

typedef struct Svg {
    FILE *out;
    const Spec *spec;
    const Plan *plan;
    const Timeline *tl;
    int64_t devices;
    double width, plot_w; /* the picture's width; the plot area's, right of the labels */
    double y;             /* where the next part starts */
    int n_strategies;
    int *strategy;             /* [layer]: index into the plan's distinct strategies */
    const Strategy **distinct; /* [n_strategies] */
} Svg;

/* Write s as XML character data or an attribute value: &, <, >, " and '
 * escaped, control bytes and malformed UTF-8 as U+FFFD, so any name is
 * exactly text and never markup. */
static void xml_text(FILE *out, const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int len = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 : (*p & 0xf8) == 0xf0 ? 4 : 0;
        bool ok = len > 0 && !(len == 2 && *p < 0xc2);
        for (int i = 1; ok && i < len; i++)
            ok = (p[i] & 0xc0) == 0x80;
        if (*p == '&')
            fputs("&amp;", out);
        else if (*p == '<')
            fputs("&lt;", out);
        else if (*p == '>')
            fputs("&gt;", out);
        else if (*p == '"')
            fputs("&quot;", out);
        else if (*p == '\'')
            fputs("&apos;", out);
        else if ((*p < 0x20 && *p != '\t') || *p == 0x7f || !ok)
            fputs("&#xFFFD;", out);
        else
            fwrite(p, 1, (size_t)len, out), p += len - 1;
    }
}

/* `before`, the name escaped, `after`. */
static void put_named(FILE *out, const char *before, const char *name, const char *after) {
    fputs(before, out);
    xml_text(out, name);
    fputs(after, out);
}

/* "1.50 MiB", escaped (it has no markup, but all text goes one way). */
static void put_bytes(FILE *out, double bytes) {
    char b[32];
    xml_text(out, bytes_str(b, sizeof b, bytes));
}

/* A step for about `ticks` axis ticks over [0, span]: 1, 2 or 5 times a power of ten. */
static double nice_step(double span, int ticks) {
    double raw = span / ticks, mag = pow(10, floor(log10(raw)));
    return raw <= mag ? mag : raw <= 2 * mag ? 2 * mag : raw <= 5 * mag ? 5 * mag : 10 * mag;
}

/* The style sheet and the patterns: one rule per class of spans, memory parts and strategies. */
static void put_style(const Svg *g) {
    FILE *out = g->out;
    const Fill *all[3] = {span_fills, mem_fills, strategy_fills};
    int counts[3] = {SPAN_KIND_COUNT, MEM_PART_COUNT, N_STRATEGY_FILLS};
    fputs("<defs>\n", out);
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < counts[t]; i++) {
            const Fill *f = &all[t][i];
            if (!f->pattern) continue;
            fprintf(out,
                    "<pattern id=\"p-%s\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\"%s>"
                    "<rect width=\"6\" height=\"6\" fill=\"%s\"/>",
                    f->cls, f->pattern == '.' ? "" : " patternTransform=\"rotate(45)\"", f->bg);
            if (f->pattern == '.')
                fprintf(out, "<circle cx=\"3\" cy=\"3\" r=\"1.1\" fill=\"%s\"/>", f->fg);
            else
                fprintf(out, "<rect width=\"2\" height=\"6\" fill=\"%s\"/>", f->fg);
            if (f->pattern == '+') fprintf(out, "<rect width=\"6\" height=\"1.5\" fill=\"%s\"/>", f->fg);
            fputs("</pattern>\n", out);
        }
    fputs("</defs>\n<style>\n"
          "text{font-family:sans-serif;font-size:12px;fill:#222}\n"
          ".title{font-size:16px;font-weight:bold}.heading{font-size:14px;font-weight:bold}\n"
          ".small{font-size:10px}.on-dark{fill:#fff}.on-light{fill:#000}\n"
          "rect{stroke:#fff;stroke-width:0.5}.axis{stroke:#555;stroke-width:1}.grid{stroke:#ddd;stroke-width:1}\n"
          ".budget{stroke:#c00;stroke-width:2;stroke-dasharray:5 3}.boundary{stroke:#000;stroke-width:2}\n",
          out);
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < counts[t]; i++) {
            const Fill *f = &all[t][i];
            if (f->pattern)
                fprintf(out, ".%s{fill:url(#p-%s)}\n", f->cls, f->cls);
            else
                fprintf(out, ".%s{fill:%s}\n", f->cls, f->bg);
        }
    fputs("</style>\n", out);
}

/* One legend entry at (x, y): a swatch of class cls and its words; returns the x after it. */
static double put_key(const Svg *g, double x, double y, const char *cls, const char *words) {
    fprintf(g->out, "<rect class=\"%s key\" x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"12\"/>", cls, x, y - 10);
    fprintf(g->out, "<text x=\"%.1f\" y=\"%.1f\">", x + 18, y);
    xml_text(g->out, words);
    fputs("</text>\n", g->out);
    return x + 18 + 7.0 * (double)strlen(words) + 18;
}

/* The title and the plan in one sentence, and the predicted step. */
static void put_header(Svg *g) {
    const Plan *p = g->plan;
    const Spec *s = g->spec;
    char b1[32], b2[32];
    fprintf(g->out, "<g id=\"header\">\n<text class=\"title\" x=\"%d\" y=\"22\">", 8);
    xml_text(g->out, s->graph->name);
    fprintf(g->out, " on %lld x ", (long long)g->devices);
    xml_text(g->out, device_kind_names[s->cluster->device]);
    fprintf(g->out, ": pp %d, %lld micro-batches, %s</text>\n", p->pp, (long long)p->micro_batches,
            p->schedule == SCHED_GPIPE ? "GPipe" : p->vpp > 1 ? "interleaved 1F1B" : "1F1B");
    fprintf(g->out,
            "<text x=\"8\" y=\"42\">step %.3f ms on this schedule; the plan predicts %.3f ms: compute %.3f, "
            "communication %.3f, bubble %.3f</text>\n<text x=\"8\" y=\"60\">peak ",
            g->tl->end_s * 1e3, p->step_s * 1e3, p->compute_s * 1e3, p->comm_s * 1e3, p->bubble_s * 1e3);
    xml_text(g->out, bytes_str(b1, sizeof b1, (double)p->peak));
    fputs(" of ", g->out);
    xml_text(g->out, bytes_str(b2, sizeof b2, (double)p->budget));
    fputs(" per device</text>\n</g>\n", g->out);
    g->y = 80;
}

/* One span as a rect in its stage's row, with a tooltip, and "F3" / "B3" inside when it fits. */
static void put_span(const Svg *g, const Span *sp, double y, double h, double scale) {
    FILE *out = g->out;
    static const char *const words[SPAN_KIND_COUNT] = {"forward",       "backward",       "recomputation",
                                                       "communication", "optimizer step", "bubble"};
    double x = LEFT + sp->start_s * scale, w = (sp->end_s - sp->start_s) * scale;
    fprintf(out, "<rect class=\"%s\" x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\"", span_kind_names[sp->kind],
            x, y, w, h);
    if (sp->mb >= 0) fprintf(out, " data-mb=\"%lld\"", (long long)sp->mb);
    fprintf(out, "><title>stage %d %s", sp->stage, words[sp->kind]);
    if (sp->what) put_named(out, " (", sp->what, ")");
    if (sp->mb >= 0) fprintf(out, ", micro-batch %lld", (long long)sp->mb);
    fprintf(out, ": %.3f to %.3f ms</title></rect>\n", sp->start_s * 1e3, sp->end_s * 1e3);
    char label[32] = "";
    if (sp->kind == SPAN_FWD || sp->kind == SPAN_BWD)
        snprintf(label, sizeof label, "%c%lld", sp->kind == SPAN_FWD ? 'F' : 'B', (long long)sp->mb);
    if (label[0] && w >= 7.0 * (double)strlen(label) + 4 && h >= 12)
        fprintf(out, "<text class=\"small %s\" x=\"%.2f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                span_fills[sp->kind].text[1] == 'f' ? "on-dark" : "on-light", x + w / 2, y + h / 2 + 3.5, label);
}

/* The time axis under the rows, from 0 to the step's end, in ms. */
static void put_axis(const Svg *g, double top, double bottom, double scale) {
    FILE *out = g->out;
    double end_ms = g->tl->end_s * 1e3, step = nice_step(end_ms > 0 ? end_ms : 1, 8);
    fprintf(out, "<g id=\"axis\">\n<line class=\"axis\" x1=\"%d\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", LEFT,
            bottom, LEFT + g->plot_w, bottom);
    for (double t = 0; t <= end_ms * (1 + 1e-9); t += step) {
        double x = LEFT + t / 1e3 * scale;
        fprintf(out, "<line class=\"grid\" x1=\"%.2f\" y1=\"%.1f\" x2=\"%.2f\" y2=\"%.1f\"/>", x, top, x, bottom);
        fprintf(out, "<text x=\"%.2f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n", x, bottom + 14, t);
    }
    fprintf(out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">ms</text>\n</g>\n", LEFT + g->plot_w, bottom + 28);
}

/* The pipeline timeline: a row per stage, the axis, the legend. */
static void put_timeline(Svg *g) {
    FILE *out = g->out;
    const Timeline *tl = g->tl;
    int pp = tl->pp;
    double row = pp <= 16 ? 26 : pp <= 64 ? 14 : 6, gap = pp <= 16 ? 6 : 2;
    double scale = tl->end_s > 0 ? g->plot_w / tl->end_s : 0; /* px per second */
    fprintf(out,
            "<g id=\"timeline\">\n<text class=\"heading\" x=\"8\" y=\"%.1f\">Pipeline timeline of one step "
            "(%s: %s)</text>\n",
            g->y + 14, g->plan->schedule == SCHED_GPIPE ? "GPipe" : g->plan->vpp > 1 ? "interleaved 1F1B" : "1F1B",
            g->plan->schedule == SCHED_GPIPE ? "all forwards, then all backwards"
            : g->plan->vpp > 1               ? "each stage's chunks in turn, warm-up forwards, then one forward and one backward"
                                             : "warm-up forwards, then one forward and one backward");
    double top = g->y + 24, bottom = top + pp * (row + gap);
    put_axis(g, top, bottom, scale); /* first: its grid lies behind the spans */
    for (int k = 0; k < pp; k++) {
        double y = top + k * (row + gap);
        fprintf(out, "<g class=\"stage\" data-stage=\"%d\" data-y=\"%.1f\" data-height=\"%.1f\">\n", k, y, row);
        if (row >= 10) fprintf(out, "<text x=\"8\" y=\"%.1f\">stage %d</text>\n", y + row / 2 + 4, k);
        for (int64_t i = 0; i < tl->n_spans; i++)
            if (tl->spans[i].stage == k) put_span(g, &tl->spans[i], y, row, scale);
        fputs("</g>\n", out);
    }
    double x = LEFT, y = bottom + 50;
    static const char *const words[SPAN_KIND_COUNT] = {"forward",       "backward",  "recomputation",
                                                       "communication", "optimizer", "bubble"};
    fputs("<g class=\"legend\">\n", out);
    for (int k = 0; k < SPAN_KIND_COUNT; k++)
        x = put_key(g, x, y, span_fills[k].cls, words[k]);
    fputs("</g>\n</g>\n", out);
    g->y = y + 16;
}

/* Memory per device by stage, stacked by part, against the budget. */
static void put_memory(Svg *g) {
    FILE *out = g->out;
    const Plan *p = g->plan;
    double row = p->pp <= 16 ? 18 : p->pp <= 64 ? 10 : 5, gap = p->pp <= 16 ? 6 : 2;
    double bar_w = g->plot_w - MEM_LABEL, full = 0;
    for (int k = 0; k < p->pp; k++)
        if ((double)p->stage_mem[k] > full) full = (double)p->stage_mem[k];
    /* the scale ends at the budget, unless the stages use under a quarter of
     * it: then at their largest, and the budget is off the scale */
    bool off_scale = full < (double)p->budget / 4;
    full = off_scale ? full * 1.05 : full > (double)p->budget ? full : (double)p->budget;
    fprintf(out,
            "<g id=\"memory\">\n<text class=\"heading\" x=\"8\" y=\"%.1f\">Memory per device, by stage, "
            "against the budget</text>\n",
            g->y + 14);
    double top = g->y + 24;
    for (int k = 0; k < p->pp; k++) {
        double y = top + k * (row + gap), x = LEFT;
        fprintf(out, "<g class=\"stage-memory\" data-stage=\"%d\" data-bytes=\"%lld\">\n", k,
                (long long)p->stage_mem[k]);
        if (row >= 10) fprintf(out, "<text x=\"8\" y=\"%.1f\">stage %d</text>\n", y + row / 2 + 4, k);
        for (int q = 0; q < MEM_PART_COUNT; q++) {
            double w = full > 0 ? (double)g->tl->mem[k][q] / full * bar_w : 0;
            fprintf(out, "<rect class=\"%s\" x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"%.1f\"><title>stage %d ",
                    mem_fills[q].cls, x, y, w, row, k);
            xml_text(out, mem_part_labels[q]);
            fputs(": ", out);
            put_bytes(out, (double)g->tl->mem[k][q]);
            fputs("</title></rect>\n", out);
            x += w;
        }
        if (row >= 10) {
            fprintf(out, "<text x=\"%.1f\" y=\"%.1f\">", LEFT + bar_w + 8, y + row / 2 + 4);
            put_bytes(out, (double)p->stage_mem[k]);
            fputs(" of ", out);
            put_bytes(out, (double)p->budget);
            double pct = p->budget ? 100.0 * (double)p->stage_mem[k] / (double)p->budget : 0;
            fprintf(out, " (%.*f%%)</text>\n", pct < 10 ? 1 : 0, pct);
        }
        fputs("</g>\n", out);
    }
    double bottom = top + p->pp * (row + gap), bx = LEFT + (off_scale ? bar_w : (double)p->budget / full * bar_w);
    if (!off_scale)
        fprintf(out, "<line class=\"budget\" x1=\"%.2f\" y1=\"%.1f\" x2=\"%.2f\" y2=\"%.1f\"/>\n", bx, top - 4, bx,
                bottom);
    fprintf(out, "<text x=\"%.2f\" y=\"%.1f\" text-anchor=\"end\">budget ", bx - 4, bottom + 12);
    put_bytes(out, (double)p->budget);
    fprintf(out, "%s</text>\n<g class=\"legend\">\n", off_scale ? ", far beyond this scale" : "");
    double x = LEFT, y = bottom + 32;
    for (int q = 0; q < MEM_PART_COUNT; q++) {
        if (x + 18 + 7.0 * (double)strlen(mem_part_labels[q]) > g->width) x = LEFT, y += 18;
        x = put_key(g, x, y, mem_fills[q].cls, mem_part_labels[q]);
    }
    fputs("</g>\n</g>\n", out);
    g->y = y + 16;
}

/* "A", "B", ... "Z", then "S26": a strategy's key letter. */
static const char *strategy_key(char *buf, size_t n, int k) {
    if (k < 26)
        snprintf(buf, n, "%c", 'A' + k);
    else
        snprintf(buf, n, "S%d", k);
    return buf;
}

/* The strip: a cell per layer coloured by its strategy, runs of one
 * strategy labelled with its letter, stage boundaries, and the key. */
static void put_strategies(Svg *g) {
    FILE *out = g->out;
    const Plan *p = g->plan;
    const Graph *gr = g->spec->graph;
    int L = gr->n_layers;
    double cell = L ? g->plot_w / L : 0, top = g->y + 40, h = 28;
    char key[16], s[96];
    fprintf(out,
            "<g id=\"strategies\">\n<text class=\"heading\" x=\"8\" y=\"%.1f\">Strategy of each layer (%d "
            "layers, %d strateg%s)</text>\n",
            g->y + 14, L, g->n_strategies, g->n_strategies == 1 ? "y" : "ies");
    fprintf(out, "<text x=\"8\" y=\"%.1f\">layers</text>\n", top + h / 2 + 4);
    for (int i = 0; i < L; i++) {
        int k = g->strategy[i];
        fprintf(out,
                "<rect class=\"layer %s\" data-layer=\"%d\" data-strategy=\"%s\" x=\"%.2f\" y=\"%.1f\" "
                "width=\"%.2f\" height=\"%.1f\"><title>layer %d ",
                strategy_fills[k % N_STRATEGY_FILLS].cls, i, strategy_key(key, sizeof key, k), LEFT + i * cell, top,
                cell, h, i);
        xml_text(out, gr->layers[i]->name);
        fputs(": ", out);
        xml_text(out, strategy_str(s, sizeof s, &p->layer[i]));
        fputs("</title></rect>\n", out);
    }
    for (int i = 0, j; i < L; i = j) { /* a run [i, j) of one strategy: its letter, if it fits */
        for (j = i + 1; j < L && g->strategy[j] == g->strategy[i]; j++)
            continue;
        const Fill *f = &strategy_fills[g->strategy[i] % N_STRATEGY_FILLS];
        strategy_key(key, sizeof key, g->strategy[i]);
        if ((j - i) * cell >= 8.0 * (double)strlen(key) + 2)
            fprintf(out, "<text class=\"%s\" x=\"%.2f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                    f->text[1] == 'f' ? "on-dark" : "on-light", LEFT + (i + j) * cell / 2, top + h / 2 + 4, key);
    }
    for (int k = 0; k <= p->pp; k++) { /* stage boundaries, and each stage's name above its layers */
        double x = LEFT + p->stage_start[k] * cell;
        fprintf(out, "<line class=\"boundary\" x1=\"%.2f\" y1=\"%.1f\" x2=\"%.2f\" y2=\"%.1f\"/>\n", x, top - 14, x,
                top + h + 4);
        double w = k < p->pp ? (p->stage_start[k + 1] - p->stage_start[k]) * cell : 0;
        if (k < p->pp && w >= 52)
            fprintf(out, "<text class=\"small\" x=\"%.2f\" y=\"%.1f\">stage %d</text>\n", x + 3, top - 4, k);
    }
    int every = L <= 24 ? 1 : L <= 60 ? 5 : L <= 240 ? 10 : 50;
    for (int i = 0; i < L; i += every)
        fprintf(out, "<text class=\"small\" x=\"%.2f\" y=\"%.1f\" text-anchor=\"middle\">%d</text>\n",
                LEFT + (i + 0.5) * cell, top + h + 14, i);
    double y = top + h + 36;
    fputs("<g class=\"legend\">\n", out);
    for (int k = 0; k < g->n_strategies; k++, y += 18) {
        int count = 0;
        for (int i = 0; i < L; i++)
            count += g->strategy[i] == k;
        const Fill *f = &strategy_fills[k % N_STRATEGY_FILLS];
        fprintf(out, "<rect class=\"%s\" x=\"%d\" y=\"%.1f\" width=\"22\" height=\"14\"/>", f->cls, LEFT, y - 11);
        fprintf(out, "<text class=\"%s\" x=\"%d\" y=\"%.1f\" text-anchor=\"middle\">%s</text>",
                f->text[1] == 'f' ? "on-dark" : "on-light", LEFT + 11, y, strategy_key(key, sizeof key, k));
        fprintf(out, "<text x=\"%d\" y=\"%.1f\">", LEFT + 30, y);
        xml_text(out, strategy_str(s, sizeof s, g->distinct[k]));
        fprintf(out, " (%d layer%s)</text>\n", count, count == 1 ? "" : "s");
    }
    fputs("</g>\n</g>\n", out);
    g->y = y;
}

/* Number the plan's distinct strategies in order of first use. */
static void index_strategies(Svg *g, Arena *a) {
    int L = g->spec->graph->n_layers;
    g->strategy = arena_alloc(a, (size_t)(L ? L : 1) * sizeof *g->strategy);
    g->distinct = arena_alloc(a, (size_t)(L ? L : 1) * sizeof *g->distinct);
    for (int i = 0; i < L; i++) {
        int k = 0;
        while (k < g->n_strategies && !strategy_equal(g->distinct[k], &g->plan->layer[i]))
            k++;
        if (k == g->n_strategies) g->distinct[g->n_strategies++] = &g->plan->layer[i];
        g->strategy[i] = k;
    }
}

bool emit_svg(FILE *out, const Spec *spec, const Plan *plan, const Timeline *tl, int64_t devices) {
    int L = spec->graph->n_layers;
    double width = 6.0 * L + LEFT + RIGHT > WIDTH_MIN ? 6.0 * L + LEFT + RIGHT : WIDTH_MIN;
    char *body = NULL;
    size_t size = 0;
    FILE *mem = open_memstream(&body, &size);
    if (!mem) return false;
    Svg g = {.out = mem,
             .spec = spec,
             .plan = plan,
             .tl = tl,
             .devices = devices,
             .width = width,
             .plot_w = width - LEFT - RIGHT};
    index_strategies(&g, spec->arena);
    put_header(&g);
    put_timeline(&g);
    put_memory(&g);
    put_strategies(&g);
    bool ok = !ferror(mem);
    if (fclose(mem) != 0) ok = false;
    double height = ceil(g.y + 12);
    fprintf(out,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
            "font-family=\"sans-serif\">\n<title>",
            width, height, width, height);
    put_named(out, "", spec->graph->name, ": the plan of one training step</title>\n");
    fprintf(out, "<rect class=\"page\" width=\"%.0f\" height=\"%.0f\" fill=\"#fff\" style=\"stroke:none\"/>\n", width,
            height);
    Svg s = g;
    s.out = out;
    put_style(&s);
    if (body) fwrite(body, 1, size, out);
    free(body);
    fputs("</svg>\n", out);
    return ok && !ferror(out);
}
