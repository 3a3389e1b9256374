/* report.h — galvc report's internal header: the command (report.c), the
 * picture of the runs (svg.c) and the chart primitives it draws with
 * (chart.c). */
#ifndef GALVC_REPORT_H
#define GALVC_REPORT_H

#include "hw/hw.h"

#include <stdio.h>

/* `galvc report RUN.jsonl... [-o FILE.svg|FILE.html]`: argv[0] is "report";
 * the exit status (0, 1 bad input, 2 bad usage). */
int report_command(int argc, char **argv);

/* ---- the picture (svg.c) ----------------------------------------------------- */

/* One standalone SVG of the n runs (each with at least one step): loss, step
 * time, tokens/s and peak memory over the steps, the plans' predictions dashed. */
void report_svg(FILE *out, const TrainLog *runs, int n);

/* ---- chart primitives (chart.c) ------------------------------------------------ */

/* An axis from lo to hi with a tick every `step` (lo and hi are multiples of it). */
typedef struct Axis {
    double lo, hi, step;
} Axis;

/* A chart's plot area on the page and its axes. */
typedef struct Chart {
    double left, top, width, height; /* the plot area, px */
    Axis x, y;
} Chart;

/* The axis covering [lo, hi] (from 0 when from_zero) with about five round ticks. */
Axis axis_nice(double lo, double hi, bool from_zero);
/* The page coordinates of x and y. */
double chart_px(const Chart *c, double x);
double chart_py(const Chart *c, double y);
/* The frame, ticks, tick labels and axis labels (x_label, y_label: plain text). */
void chart_axes(FILE *out, const Chart *c, const char *x_label, const char *y_label);
/* s as XML character data or attribute text: markup escaped, control characters
 * and bytes that are not UTF-8 written as '?'. */
void svg_escape(FILE *out, const char *s);

#endif
