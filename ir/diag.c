/* diag.c — user diagnostics: `file:line:col: error: message`, then the source
 * line with a caret (and tildes) under the culprit. */
#include "ir.h"

#include <string.h>

void diag_init(Diag *d, FILE *out) {
    memset(d, 0, sizeof *d);
    d->out = out;
    d->max_errors = 20;
}

/* Print the source line of loc and a caret line that keeps the line's tabs,
 * so the caret lands under the right column in any terminal. */
static void show_line(FILE *out, Loc loc) {
    const SourceFile *f = loc.file;
    if (!f || loc.line < 1) return;
    const char *p = f->text, *end = f->text + f->len;
    for (int l = 1; l < loc.line && p < end; p++)
        if (*p == '\n') l++;
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol) eol = end;
    int width = (int)(eol - p);
    fprintf(out, "  %.*s\n  ", width, p);
    int col = loc.col < 1 ? 1 : loc.col;
    if (col > width + 1) col = width + 1;
    int end_col = loc.end_col > width + 1 ? width + 1 : loc.end_col;
    /* in chunks: stderr is unbuffered, and a line may be megabytes long */
    char buf[4096];
    size_t n = 0;
    for (int c = 1; c < end_col || c <= col; c++) {
        buf[n++] = c < col ? (p[c - 1] == '\t' ? '\t' : ' ') : c == col ? '^' : '~';
        if (n == sizeof buf) fwrite(buf, 1, n, out), n = 0;
    }
    buf[n++] = '\n';
    fwrite(buf, 1, n, out);
}

static void report(Diag *d, Loc loc, const char *what, const char *fmt, va_list ap) {
    if (!d->out) return;
    if (loc.file && loc.line > 0) fprintf(d->out, "%s:%d:%d: %s: ", loc.file->display, loc.line, loc.col, what);
    else if (loc.file) fprintf(d->out, "%s: %s: ", loc.file->display, what); /* the whole file */
    else fprintf(d->out, "galvc: %s: ", what);
    vfprintf(d->out, fmt, ap);
    fputc('\n', d->out);
    show_line(d->out, loc);
}

/* Count and print one user error; past max_errors, say so once and go quiet. */
void diag_verror(Diag *d, Loc loc, const char *fmt, va_list ap) {
    d->errors++;
    if (d->errors > d->max_errors) {
        if (!d->suppressed && d->out) fprintf(d->out, "galvc: too many errors; stopping here\n");
        d->suppressed = true;
        return;
    }
    report(d, loc, "error", fmt, ap);
}

void diag_error(Diag *d, Loc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_verror(d, loc, fmt, ap);
    va_end(ap);
}

void diag_note(Diag *d, Loc loc, const char *fmt, ...) {
    if (d->suppressed) return;
    va_list ap;
    va_start(ap, fmt);
    report(d, loc, "note", fmt, ap);
    va_end(ap);
}

void diag_plain(Diag *d, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_verror(d, (Loc){0}, fmt, ap);
    va_end(ap);
}

/* Levenshtein distance between two short words (longer ones count as far). */
static int edit_distance(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 63 || lb > 63) return 99;
    int d[64][64];
    for (int i = 0; i <= la; i++) d[i][0] = i;
    for (int j = 0; j <= lb; j++) d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            int del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
    return d[la][lb];
}

/* For "did you mean": the name closest to word, if close enough to be a typo. */
const char *diag_suggest(const char *word, const char *const *names, int n) {
    const char *best = NULL;
    int best_d = 3;
    for (int i = 0; n < 0 ? names[i] != NULL : i < n; i++) {
        int d = edit_distance(word, names[i]);
        if (d < best_d) best_d = d, best = names[i];
    }
    return best;
}
