/* chart.c — the parts of a line chart every panel of galvc report shares:
 * round tick steps, value-to-page coordinates, the frame with its ticks and
 * labels, and the escaping that keeps any text a log holds from becoming
 * markup. Coordinates are SVG user units (px), y growing downwards. */
#include "report.h"

#include <math.h>
#include <string.h>

enum { TICK_LEN = 5 };

/* A round step (1, 2 or 5 times a power of ten) near span / 5. */
static double nice_step(double span) {
    double raw = span / 5, mag = pow(10, floor(log10(raw))), norm = raw / mag;
    return (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
}

Axis axis_nice(double lo, double hi, bool from_zero) {
    if (!isfinite(lo) || !isfinite(hi)) lo = 0, hi = 1;
    lo = fmax(lo, -1e300), hi = fmin(hi, 1e300); /* so that hi - lo stays finite */
    if (from_zero) lo = fmin(lo, 0), hi = fmax(hi, 0);
    if (hi - lo < 1e-9 * fmax(fabs(lo), fabs(hi)) || hi == lo) {
        double pad = lo == 0 ? 1 : fabs(lo) / 10;
        lo -= from_zero && lo >= 0 ? 0 : pad, hi += pad;
    }
    double step = nice_step(hi - lo);
    return (Axis){floor(lo / step + 1e-9) * step, ceil(hi / step - 1e-9) * step, step};
}

double chart_px(const Chart *c, double x) { return c->left + (x - c->x.lo) / (c->x.hi - c->x.lo) * c->width; }

double chart_py(const Chart *c, double y) {
    return c->top + c->height - (y - c->y.lo) / (c->y.hi - c->y.lo) * c->height;
}

/* A tick's label: as many decimals as the step needs, thousands as k, millions as M (past 1e9: 1.5e+09). */
static void tick_label(char *buf, size_t n, double v, const Axis *a) {
    double big = fmax(fabs(a->lo), fabs(a->hi)), div = big >= 1e6 ? 1e6 : big >= 1e4 ? 1e3 : 1;
    const char *suffix = div == 1e6 ? "M" : div == 1e3 ? "k" : "";
    int decimals = (int)fmax(0, -floor(log10(a->step / div) + 1e-9));
    double shown = v / div;
    if (fabs(shown) < a->step / div / 1e6)
        snprintf(buf, n, "0"); /* not "-0" or "0k" */
    else if (big >= 1e9)
        snprintf(buf, n, "%.3g", v);
    else
        snprintf(buf, n, "%.*f%s", decimals, shown, suffix);
}

/* The number of ticks on a, end to end. */
static int tick_count(const Axis *a) { return (int)lround((a->hi - a->lo) / a->step) + 1; }

/* The x axis's ticks and labels along the bottom of the plot area. */
static void x_ticks(FILE *out, const Chart *c) {
    double base = c->top + c->height;
    char buf[32];
    for (int i = 0; i < tick_count(&c->x); i++) {
        double v = c->x.lo + i * c->x.step, x = chart_px(c, v);
        tick_label(buf, sizeof buf, v, &c->x);
        fprintf(out, "<line class=\"tick\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", x, base, x,
                base + TICK_LEN);
        fprintf(out, "<text class=\"tick-label\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", x,
                base + TICK_LEN + 13, buf);
    }
}

/* The y axis's ticks, labels and light grid lines across the plot area. */
static void y_ticks(FILE *out, const Chart *c) {
    char buf[32];
    for (int i = 0; i < tick_count(&c->y); i++) {
        double v = c->y.lo + i * c->y.step, y = chart_py(c, v);
        tick_label(buf, sizeof buf, v, &c->y);
        fprintf(out, "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>",
                c->left, y, c->left + c->width, y);
        fprintf(out, "<line class=\"tick\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", c->left - TICK_LEN, y,
                c->left, y);
        fprintf(out, "<text class=\"tick-label\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
                c->left - TICK_LEN - 3, y + 4, buf);
    }
}

void chart_axes(FILE *out, const Chart *c, const char *x_label, const char *y_label) {
    fprintf(out, "<g class=\"axes\" stroke=\"#333\" stroke-width=\"1\">\n");
    y_ticks(out, c);
    x_ticks(out, c);
    fprintf(out, "<rect class=\"frame\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\"/>\n",
            c->left, c->top, c->width, c->height);
    fprintf(out, "</g>\n<text class=\"axis-label\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
            c->left + c->width / 2, c->top + c->height + 34);
    svg_escape(out, x_label);
    double ly = c->top + c->height / 2, lx = c->left - 58;
    fprintf(out,
            "</text>\n<text class=\"axis-label\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
            "transform=\"rotate(-90 %.1f %.1f)\">",
            lx, ly, lx, ly);
    svg_escape(out, y_label);
    fprintf(out, "</text>\n");
}

/* The length of the UTF-8 sequence at s (0: not UTF-8). */
static int utf8_length(const unsigned char *s) {
    int n = s[0] < 0x80 ? 1 : (s[0] & 0xE0) == 0xC0 ? 2 : (s[0] & 0xF0) == 0xE0 ? 3 : (s[0] & 0xF8) == 0xF0 ? 4 : 0;
    if ((n == 2 && s[0] < 0xC2) || (n == 3 && s[0] == 0xE0 && s[1] < 0xA0) || (n == 4 && s[0] == 0xF0 && s[1] < 0x90))
        return 0; /* overlong */
    if ((n == 3 && s[0] == 0xED && s[1] >= 0xA0) || (n == 4 && (s[0] > 0xF4 || (s[0] == 0xF4 && s[1] >= 0x90))))
        return 0; /* a surrogate, or past U+10FFFF: not allowed in XML */
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return n;
}

void svg_escape(FILE *out, const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = utf8_length(p);
        if (n > 1)
            fwrite(p, 1, (size_t)n, out), p += n;
        else if (n == 0 || *p < 0x20 || *p == 0x7F)
            fputc('?', out), p++;
        else if (*p == '&')
            fputs("&amp;", out), p++;
        else if (*p == '<')
            fputs("&lt;", out), p++;
        else if (*p == '>')
            fputs("&gt;", out), p++;
        else if (*p == '"')
            fputs("&quot;", out), p++;
        else if (*p == '\'')
            fputs("&#39;", out), p++;
        else
            fputc(*p++, out);
    }
}
