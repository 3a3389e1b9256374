/* svg.c — galvc report's picture: training runs against their plans, as one
 * standalone SVG (no scripts, no fonts or files from elsewhere; text is
 * <text>). Four panels share the x axis (the step): the loss, the step time,
 * tokens/s and peak memory. Each run is one colour and one dash pattern,
 * spaced in lightness so that they stay apart in greyscale; each plan's
 * prediction is a thin long-dashed line in its run's colour.
 *
 * The layout is fixed, so that a test can probe pixels: the page is
 * PAGE_W px wide; the title takes y 0..TITLE_H; panel k (0 loss, 1 step
 * time, 2 tokens/s, 3 memory) takes the band y TITLE_H + k PANEL_H ..
 * TITLE_H + (k+1) PANEL_H, its plot area x PLOT_LEFT..PLOT_LEFT+PLOT_W and
 * y band+PLOT_TOP..band+PLOT_TOP+PLOT_H; the legend starts at LEGEND_Y and
 * is the only part whose height grows (LEGEND_ROW per run).
 *
 * Stable names for tests: <g id="loss|step-time|tokens|memory" class="panel">,
 * <path class="run" data-run="K"> (K from 1, in the order given),
 * <line class="predicted" data-run="K">, <circle class="rank-peak">,
 * <g id="legend"> with one <g class="legend-run" data-run="K"> per run. */
#include "report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum {
    PAGE_W = 960,
    TITLE_H = 56,
    PANEL_H = 250,
    PLOT_LEFT = 90,
    PLOT_W = 840,
    PLOT_TOP = 36,
    PLOT_H = 164,
    LEGEND_Y = TITLE_H + 4 * PANEL_H,
    LEGEND_ROW = 20,
    MAX_PREDICTED = 64, /* predicted values drawn per run and panel */
    LABEL_W = 130,      /* room for one prediction's label */
};

/* A run's line: colours of distinct lightness (17% to 64% grey), distinct dashes; runs past the sixth repeat them. */
typedef struct RunStyle {
    const char *colour, *dash;
} RunStyle;

static const RunStyle run_styles[] = {
    {"#08306b", "none"},        {"#e6550d", "2 3"}, {"#74c476", "8 3 2 3"},
    {"#54278f", "8 2 2 2 2 2"}, {"#969696", "4 2"}, {"#d6616b", "1 2"},
};
/* the predictions: longer and sparser dashes than any run's, and thinner */
static const char predicted_dash[] = "12 6";

/* A panel: what it plots of each step, and what the plan predicted for it. */
typedef struct Metric {
    const char *id, *title, *y_label, *unit; /* unit: of the values as logged ("": none) */
    double (*value)(const LogStep *s);
    int (*predicted)(const TrainLog *run, double *out); /* how many values, at most MAX_PREDICTED */
    bool bytes;                                         /* shown in KiB, MiB or GiB */
} Metric;

static double loss_of(const LogStep *s) { return s->loss; }
static double ms_of(const LogStep *s) { return s->ms; }
static double tokens_of(const LogStep *s) { return s->tokens_per_s; }
static double memory_of(const LogStep *s) { return s->peak_mem_bytes; }

/* The loss has no prediction. */
static int no_prediction(const TrainLog *run, double *out) { return (void)run, (void)out, 0; }

/* The plan's step time. */
static int predicted_ms(const TrainLog *run, double *out) {
    out[0] = run->step_ms;
    return run->step_ms > 0;
}

/* The tokens a step trains (the last step's rate times its time) at the plan's step time. */
static int predicted_tokens(const TrainLog *run, double *out) {
    for (int i = run->n_steps - 1; i >= 0; i--) {
        const LogStep *s = &run->steps[i];
        if (!isfinite(s->tokens_per_s * s->ms) || run->step_ms <= 0) continue;
        out[0] = s->tokens_per_s * s->ms / run->step_ms;
        return 1;
    }
    return 0;
}

/* Each stage's planned memory, once per distinct value. */
static int predicted_memory(const TrainLog *run, double *out) {
    int n = 0;
    for (int i = 0; i < run->n_rank_mem && n < MAX_PREDICTED; i++) {
        double v = run->rank_mem[i].planned_mem_bytes;
        bool seen = !isfinite(v);
        for (int j = 0; j < n && !seen; j++)
            seen = out[j] == v;
        if (!seen) out[n++] = v;
    }
    return n;
}

static const Metric metrics[] = {
    {"loss", "Loss", "loss", "", loss_of, no_prediction, false},
    {"step-time", "Step time", "step time", "ms", ms_of, predicted_ms, false},
    {"tokens", "Throughput", "throughput", "tokens/s", tokens_of, predicted_tokens, false},
    {"memory", "Peak memory (rank 0 over the steps; dots: every rank at the end)", "peak memory", "bytes", memory_of,
     predicted_memory, true},
};

static const RunStyle *style_of(int k) { return &run_styles[k % (int)(sizeof run_styles / sizeof *run_styles)]; }

/* The smallest and largest of v and *lo, *hi (NAN values passed over). */
static void widen(double v, double *lo, double *hi) {
    if (!isfinite(v)) return;
    *lo = fmin(*lo, v), *hi = fmax(*hi, v);
}

/* The range of a metric over every run: steps, predictions and (memory) every rank's peak. */
static void metric_range(const Metric *m, const TrainLog *runs, int n, double *lo, double *hi) {
    *lo = INFINITY, *hi = -INFINITY;
    double p[MAX_PREDICTED];
    for (int k = 0; k < n; k++) {
        for (int i = 0; i < runs[k].n_steps; i++)
            widen(m->value(&runs[k].steps[i]), lo, hi);
        for (int i = 0, np = m->predicted(&runs[k], p); i < np; i++)
            widen(p[i], lo, hi);
        for (int i = 0; m->bytes && i < runs[k].n_rank_mem; i++)
            widen(runs[k].rank_mem[i].peak_mem_bytes, lo, hi);
    }
}

/* The unit bytes are shown in for values up to hi: its size and name. */
static double byte_unit(double hi, const char **name) {
    static const char *names[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (u < 4 && hi >= 1024.0 * pow(1024, u))
        u++;
    *name = names[u];
    return pow(1024, u);
}

/* Run k's steps as one path (a gap where a step lacks the value; a lone step a dot). */
static void run_path(FILE *out, const Chart *c, const Metric *m, double scale, const TrainLog *run, int k) {
    const RunStyle *st = style_of(k);
    bool pen_down = false, any = false;
    for (int i = 0; i < run->n_steps; i++) {
        double x = run->steps[i].step, y = m->value(&run->steps[i]) / scale;
        if (!isfinite(x) || !isfinite(y)) {
            pen_down = false;
            continue;
        }
        if (!any) fprintf(out, "<path class=\"run\" data-run=\"%d\" d=\"", k + 1);
        fprintf(out, "%s%.1f %.1f%s",
                pen_down ? " L"
                : any    ? " M"
                         : "M",
                chart_px(c, x), chart_py(c, y), pen_down ? "" : " l0 0"); /* a dot, where the point has no neighbour */
        any = true;
        pen_down = true;
    }
    if (any)
        fprintf(out,
                "\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\" stroke-dasharray=\"%s\" "
                "stroke-linejoin=\"round\" stroke-linecap=\"round\"/>\n",
                st->colour, st->dash);
}

/* v in four significant figures, thousands as k and millions as M. */
static const char *value_str(char *buf, size_t n, double v) {
    if (fabs(v) >= 1e6)
        snprintf(buf, n, "%.4gM", v / 1e6);
    else if (fabs(v) >= 1e4)
        snprintf(buf, n, "%.4gk", v / 1e3);
    else
        snprintf(buf, n, "%.4g", v);
    return buf;
}

/* Run k's predictions: a dashed line across the plot area each, labelled
 * near its right end (run k's labels LABEL_W px further left, to stay apart). */
static void predicted_lines(FILE *out, const Chart *c, const Metric *m, double scale, const char *unit,
                            const TrainLog *run, int k) {
    double p[MAX_PREDICTED];
    char buf[32];
    const RunStyle *st = style_of(k);
    double x = c->left + c->width - 4 - k % (int)(c->width / LABEL_W) * LABEL_W;
    for (int i = 0, np = m->predicted(run, p); i < np; i++) {
        double y = chart_py(c, p[i] / scale);
        fprintf(out,
                "<line class=\"predicted\" data-run=\"%d\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                "stroke=\"%s\" stroke-width=\"1.5\" stroke-dasharray=\"%s\"/>\n",
                k + 1, c->left, y, c->left + c->width, y, st->colour, predicted_dash);
        fprintf(out,
                "<text class=\"predicted-label\" data-run=\"%d\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" "
                "font-size=\"10\" fill=\"%s\">plan %d: %s %s</text>\n",
                k + 1, x, y - 3, st->colour, k + 1, value_str(buf, sizeof buf, p[i] / scale), unit);
    }
}

/* Run k's ranks' peak memory at the end: one dot each at its last step. */
static void rank_peaks(FILE *out, const Chart *c, double scale, const char *unit, const TrainLog *run, int k) {
    double x = run->steps[run->n_steps - 1].step;
    for (int i = 0; i < run->n_rank_mem && isfinite(x); i++) {
        const LogRank *r = &run->rank_mem[i];
        if (!isfinite(r->peak_mem_bytes)) continue;
        fprintf(out,
                "<circle class=\"rank-peak\" data-run=\"%d\" data-rank=\"%d\" cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" "
                "fill=\"%s\"><title>rank %d (stage %d): peak %.4g %s, planned %.4g %s</title></circle>\n",
                k + 1, r->rank, chart_px(c, x), chart_py(c, r->peak_mem_bytes / scale), style_of(k)->colour, r->rank,
                r->stage, r->peak_mem_bytes / scale, unit, r->planned_mem_bytes / scale, unit);
    }
}

/* Panel `index` in its band: the axes, then every run and its predictions. */
static void panel(FILE *out, int index, const Axis *x, const TrainLog *runs, int n) {
    const Metric *m = &metrics[index];
    double lo, hi, scale = 1;
    const char *unit = m->unit;
    metric_range(m, runs, n, &lo, &hi);
    if (m->bytes) scale = byte_unit(hi, &unit);
    int band = TITLE_H + index * PANEL_H;
    Chart c = {
        PLOT_LEFT, band + PLOT_TOP, PLOT_W, PLOT_H, *x, axis_nice(lo / scale, hi / scale, strcmp(m->id, "loss") != 0)};
    char y_label[64];
    snprintf(y_label, sizeof y_label, unit[0] ? "%s (%s)" : "%s", m->y_label, unit);
    fprintf(out,
            "<g id=\"%s\" class=\"panel\">\n<text class=\"panel-title\" x=\"%d\" y=\"%d\" font-size=\"14\" "
            "font-weight=\"bold\">%s</text>\n",
            m->id, PLOT_LEFT, band + 22, m->title);
    chart_axes(out, &c, "step", y_label);
    for (int k = 0; k < n; k++)
        predicted_lines(out, &c, m, scale, unit, &runs[k], k);
    for (int k = 0; k < n; k++)
        run_path(out, &c, m, scale, &runs[k], k);
    for (int k = 0; m->bytes && k < n; k++)
        rank_peaks(out, &c, scale, unit, &runs[k], k);
    fprintf(out, "</g>\n");
}

/* A legend row's sample line at y: the style given, 36 px long. */
static void legend_sample(FILE *out, double y, const char *colour, const char *dash, double width) {
    fprintf(out,
            "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"%.1f\" "
            "stroke-dasharray=\"%s\"/>",
            PLOT_LEFT, y, PLOT_LEFT + 36, y, colour, width, dash);
}

/* The legend: each run's plan (model, ranks, pp, micro-batches) and file, then what dashes and dots mean. */
static void legend(FILE *out, const TrainLog *runs, int n) {
    fprintf(out, "<g id=\"legend\" font-size=\"12\">\n");
    for (int k = 0; k < n; k++) {
        const TrainLog *r = &runs[k];
        double y = LEGEND_Y + 16 + k * LEGEND_ROW;
        fprintf(out, "<g class=\"legend-run\" data-run=\"%d\">", k + 1);
        legend_sample(out, y, style_of(k)->colour, style_of(k)->dash, 2);
        fprintf(out, "<text x=\"%d\" y=\"%.1f\">%d: ", PLOT_LEFT + 44, y + 4, k + 1);
        svg_escape(out, r->model[0] ? r->model : "(unnamed model)");
        fprintf(out, ", %d rank%s, pp=%d, %d micro-batch%s (", r->ranks, r->ranks == 1 ? "" : "s", r->pp,
                r->micro_batches, r->micro_batches == 1 ? "" : "es");
        svg_escape(out, r->path);
        fprintf(out, ")</text></g>\n");
    }
    double y = LEGEND_Y + 16 + n * LEGEND_ROW;
    legend_sample(out, y, "#555", predicted_dash, 1.5);
    fprintf(out, "<text x=\"%d\" y=\"%.1f\">the plan's prediction, in its run's colour</text>\n", PLOT_LEFT + 44,
            y + 4);
    fprintf(out,
            "<circle cx=\"%d\" cy=\"%.1f\" r=\"3.5\" fill=\"#555\"/><text x=\"%d\" y=\"%.1f\">each rank's peak "
            "memory at the end of its run</text>\n</g>\n",
            PLOT_LEFT + 18, y + LEGEND_ROW, PLOT_LEFT + 44, y + LEGEND_ROW + 4);
}

/* The x axis every panel shares: from the first step to the last of any run. */
static Axis step_axis(const TrainLog *runs, int n) {
    double lo = INFINITY, hi = -INFINITY;
    for (int k = 0; k < n; k++)
        for (int i = 0; i < runs[k].n_steps; i++)
            widen(runs[k].steps[i].step, &lo, &hi);
    return axis_nice(lo, hi, false);
}

void report_svg(FILE *out, const TrainLog *runs, int n) {
    int height = LEGEND_Y + 16 + (n + 2) * LEGEND_ROW;
    fprintf(out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "font-family=\"sans-serif\" font-size=\"11\" fill=\"#222\">\n",
            PAGE_W, height, PAGE_W, height);
    fprintf(out, "<title>galvc report: %d training run%s against %s plan%s</title>\n", n, n == 1 ? "" : "s",
            n == 1 ? "its" : "their", n == 1 ? "" : "s");
    fprintf(out, "<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n");
    fprintf(out,
            "<text id=\"title\" x=\"%d\" y=\"28\" font-size=\"18\" font-weight=\"bold\">Training run%s against "
            "%s plan%s</text>\n",
            PLOT_LEFT, n == 1 ? "" : "s", n == 1 ? "its" : "their", n == 1 ? "" : "s");
    fprintf(out,
            "<text id=\"subtitle\" x=\"%d\" y=\"46\">measured: one line per run; dashed: what the plan "
            "predicted</text>\n",
            PLOT_LEFT);
    Axis x = step_axis(runs, n);
    for (int i = 0; i < (int)(sizeof metrics / sizeof *metrics); i++)
        panel(out, i, &x, runs, n);
    legend(out, runs, n);
    fprintf(out, "</svg>\n");
}
