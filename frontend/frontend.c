/* frontend.c — reads the model file, follows its includes (each file once,
 * cycles refused), parses -D overrides and the --cluster file, then hands
 * the expanded statements to eval.c. It also records every file read, for
 * `galvc -M`. */
#include "frontend.h"

#include "parser.h"
#include "lexer.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum {
    MAX_SOURCE_BYTES = 16 << 20, /* a .gv file larger than this is a mistake */
    MAX_INCLUDE_DEPTH = 64,
};

typedef struct Loader {
    Arena *arena;
    Diag *diag;
    const FrontendOptions *opt;
    Spec *spec;
    const char *stack[MAX_INCLUDE_DEPTH + 1]; /* canonical names being read */
    const SourceFile *stack_files[MAX_INCLUDE_DEPTH + 1];
    int depth;
    const char **done; /* canonical names already read */
    int n_done, cap_done;
} Loader;

/* A .gv file's bytes, through the caller's reader when there is one. */
static int read_source(Loader *L, const char *path, char **text, size_t *len) {
    if (L->opt->read) return L->opt->read(L->arena, path, text, len);
    return source_read_file(L->arena, path, MAX_SOURCE_BYTES, text, len);
}

/* Make a SourceFile from raw bytes, always ending in a newline. */
static SourceFile *make_source(Arena *a, const char *path, const char *bytes, size_t len) {
    SourceFile *f = arena_alloc(a, sizeof *f);
    char *text = arena_alloc(a, len + 2);
    memcpy(text, bytes, len);
    if (len == 0 || text[len - 1] != '\n') text[len++] = '\n';
    f->path = f->display = arena_strdup(a, path);
    f->text = text;
    f->len = len;
    return f;
}

/* Parse one source into a statement list; syntax errors go to the Diag. */
Stmt *parse_source(Arena *a, Diag *d, const SourceFile *file) {
    ParseCtx ctx = {.arena = a, .diag = d, .file = file, .line = 1, .col = 1};
    yyscan_t scanner;
    if (yylex_init_extra(&ctx, &scanner) != 0) die("cannot start the scanner");
    YY_BUFFER_STATE buf = yy_scan_bytes(file->text, (int)file->len, scanner);
    yyparse(scanner, &ctx);
    yy_delete_buffer(buf, scanner);
    yylex_destroy(scanner);
    return ctx.result;
}

static void add_file(Loader *L, const SourceFile *f) {
    Spec *s = L->spec;
    const SourceFile **files = arena_alloc(L->arena, (size_t)(s->n_files + 1) * sizeof *files);
    if (s->n_files) memcpy(files, s->files, (size_t)s->n_files * sizeof *files);
    files[s->n_files++] = f;
    s->files = files;
}

/* The name a file is known by for cycle and once-only checks. */
static const char *canonical(Loader *L, const char *path) {
    char buf[PATH_MAX];
    if (!L->opt->read && realpath(path, buf)) return arena_strdup(L->arena, buf);
    return path;
}

static bool already_read(Loader *L, const char *canon) {
    for (int i = 0; i < L->n_done; i++)
        if (strcmp(L->done[i], canon) == 0) return true;
    return false;
}

static void mark_read(Loader *L, const char *canon) {
    if (L->n_done == L->cap_done) {
        int cap = L->cap_done ? 2 * L->cap_done : 16;
        const char **done = arena_alloc(L->arena, (size_t)cap * sizeof *done);
        if (L->n_done) memcpy(done, L->done, (size_t)L->n_done * sizeof *done);
        L->done = done;
        L->cap_done = cap;
    }
    L->done[L->n_done++] = canon;
}

static Stmt *load(Loader *L, const SourceFile *file, const char *canon);

/* The folder part of a path, with its slash ("" for a bare name). */
static char *dir_of(Arena *a, const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? arena_strndup(a, path, (size_t)(slash - path + 1)) : arena_strdup(a, "");
}

/* Find an include: beside the including file, then in each -I folder. */
static const char *resolve(Loader *L, const SourceFile *from, const char *name) {
    if (name[0] == '/') return name;
    const char *local = arena_printf(L->arena, "%s%s", dir_of(L->arena, from->path), name);
    if (L->opt->read) return local;
    struct stat st;
    if (stat(local, &st) == 0) return local;
    for (int i = 0; i < L->opt->n_include_dirs; i++) {
        const char *p = arena_printf(L->arena, "%s/%s", L->opt->include_dirs[i], name);
        if (stat(p, &st) == 0) return p;
    }
    return local;
}

/* Read the file an include statement names and attach its statements. */
static void follow_include(Loader *L, const SourceFile *from, Stmt *inc) {
    const char *path = resolve(L, from, inc->name);
    const char *canon = canonical(L, path);
    for (int i = 0; i < L->depth; i++)
        if (strcmp(L->stack[i], canon) == 0) {
            const char *chain = "";
            for (int j = i; j < L->depth; j++)
                chain = arena_printf(L->arena, "%s%s -> ", chain, L->stack_files[j]->display);
            diag_error(L->diag, inc->name_loc, "include cycle: %s%s", chain, L->stack_files[i]->display);
            return;
        }
    if (already_read(L, canon)) return; /* each file counts once */
    if (L->depth >= MAX_INCLUDE_DEPTH) {
        diag_error(L->diag, inc->name_loc, "includes nest deeper than %d files", MAX_INCLUDE_DEPTH);
        return;
    }
    char *bytes;
    size_t len;
    int err = read_source(L, path, &bytes, &len);
    if (err) {
        diag_error(L->diag, inc->name_loc, "cannot read include file '%s': %s", inc->name,
                   err == EINVAL ? "not a regular file" : strerror(err));
        return;
    }
    SourceFile *f = make_source(L->arena, path, bytes, len);
    f->included_at = &inc->name_loc;
    inc->included = f;
    inc->included_body = load(L, f, canon);
}

/* Parse a file and, depth first, every file it includes. */
static Stmt *load(Loader *L, const SourceFile *file, const char *canon) {
    mark_read(L, canon);
    add_file(L, file);
    Stmt *stmts = parse_source(L->arena, L->diag, file);
    L->stack[L->depth] = canon;
    L->stack_files[L->depth] = file;
    L->depth++;
    for (Stmt *s = stmts; s; s = s->next)
        if (s->kind == STMT_INCLUDE) follow_include(L, file, s);
    L->depth--;
    return stmts;
}

/* Read and parse a file named on the command line. */
static Stmt *load_root(Loader *L, const char *path, const char *text, size_t len) {
    char *bytes = (char *)text;
    if (!text) {
        int err = read_source(L, path, &bytes, &len);
        if (err) {
            diag_plain(L->diag, "cannot read '%s': %s", path,
                       err == EINVAL ? "not a regular file" : strerror(err));
            return NULL;
        }
    }
    SourceFile *f = make_source(L->arena, path, bytes, len);
    return load(L, f, canonical(L, path));
}

/* Parse `-D name=value` as the binding `name = value`. */
static Stmt *parse_define(Loader *L, const Define *def) {
    const char *text = arena_printf(L->arena, "%s = %s", def->name, def->value);
    SourceFile *f = make_source(L->arena, "<command line>", text, strlen(text));
    Stmt *s = parse_source(L->arena, L->diag, f);
    if (s && (s->next || s->kind != STMT_BIND || strcmp(s->name, def->name) != 0)) {
        diag_error(L->diag, s->loc, "-D expects NAME=VALUE");
        return NULL;
    }
    return s;
}

Spec *frontend_load(Arena *a, const FrontendOptions *opt, Diag *d) {
    Spec *spec = arena_alloc(a, sizeof *spec);
    spec->arena = a;
    Loader L = {.arena = a, .diag = d, .opt = opt, .spec = spec};

    EvalInput in = {0};
    in.model_items = load_root(&L, opt->input, opt->input_text, opt->input_len);
    if (opt->cluster_file) in.cluster_items = load_root(&L, opt->cluster_file, NULL, 0);
    in.define_binds = arena_alloc(a, (size_t)(opt->n_defines + 1) * sizeof *in.define_binds);
    for (int i = 0; i < opt->n_defines; i++) in.define_binds[in.n_defines++] = parse_define(&L, &opt->defines[i]);
    /* Evaluating a tree that lost statements to syntax errors would report
     * echoes of those errors (undefined constants, missing blocks): stop. */
    if (d->errors) return NULL;
    eval_spec(spec, &in, d);
    return spec;
}
