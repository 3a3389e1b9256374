/* frontend.h — the .gv frontend: the syntax tree the parser builds, and the
 * entry point that reads a model (with its includes, -D overrides and an
 * optional --cluster file) and lowers it to a Spec. */
#ifndef GALVC_FRONTEND_H
#define GALVC_FRONTEND_H

#include "ir/ir.h"

/* ---- the public entry point ---------------------------------------------- */

/* Reads a file's bytes; the fuzzer supplies one that refuses includes.
 * Returns 0 and sets *text and *len (arena-owned) or returns an errno value. */
typedef int (*SourceReader)(Arena *a, const char *path, char **text, size_t *len);

typedef struct Define {
    const char *name, *value; /* -D name=value */
} Define;

typedef struct FrontendOptions {
    const char *input;        /* the model file */
    const char *input_text;   /* when set, the model's text (input names it) */
    size_t input_len;
    const char *cluster_file; /* --cluster: replaces the model's cluster */
    const Define *defines;
    int n_defines;
    const char *const *include_dirs; /* -I, searched after the includer's folder */
    int n_include_dirs;
    SourceReader read; /* NULL: the file system */
} FrontendOptions;

/* Parse, expand and evaluate. NULL after syntax errors or a file that could
 * not be read. Otherwise the Spec is as complete as the input allows (so the
 * passes can still check what they can); d->errors says if it is usable. */
Spec *frontend_load(Arena *a, const FrontendOptions *opt, Diag *d);

/* ---- the syntax tree ------------------------------------------------------ */

typedef enum ExprKind {
    EXPR_INT,
    EXPR_FLOAT,
    EXPR_BOOL,
    EXPR_STRING,
    EXPR_NAME,   /* a constant, or a bare symbol such as gelu */
    EXPR_NEG,    /* -lhs */
    EXPR_BINARY, /* lhs op rhs */
    EXPR_CALL,   /* name(args) */
    EXPR_LIST,   /* [args] */
} ExprKind;

typedef struct Arg Arg;

typedef struct Expr {
    ExprKind kind;
    Loc loc;
    int op;         /* EXPR_BINARY: '+', '-', '*', '/', '%' */
    Dim dim;        /* literal's unit */
    int64_t i;      /* EXPR_INT, EXPR_BOOL */
    double f;       /* EXPR_FLOAT */
    const char *s;  /* EXPR_STRING, EXPR_NAME, EXPR_CALL */
    struct Expr *lhs, *rhs;
    Arg *args;      /* EXPR_CALL, EXPR_LIST */
} Expr;

/* An argument: positional (name NULL) or `name = value`. */
struct Arg {
    const char *name;
    Loc name_loc;
    Expr *value;
    Arg *next;
};

#define BLOCK_KINDS(X) X(MODEL, "model") X(CLUSTER, "cluster") X(TRAIN, "train") X(PLAN, "plan")
typedef enum BlockKind {
#define X(e, s) BLOCK_##e,
    BLOCK_KINDS(X)
#undef X
} BlockKind;

typedef enum StmtKind {
    STMT_BIND,    /* name = value */
    STMT_LAYER,   /* [label:] kind(args) */
    STMT_REPEAT,  /* repeat count { body } */
    STMT_INCLUDE, /* include "path" */
    STMT_BLOCK,   /* model|cluster|train|plan [name] { body } */
} StmtKind;

typedef struct Stmt {
    StmtKind kind;
    Loc loc;
    const char *name; /* binding name, layer label, block name, include path */
    Loc name_loc;
    Expr *value;      /* binding value, layer call, repeat count */
    BlockKind block;
    struct Stmt *body;
    struct Stmt *next;
    const SourceFile *included; /* STMT_INCLUDE, once read */
    struct Stmt *included_body;
} Stmt;

/* The parser's state, shared with the scanner. */
typedef struct ParseCtx {
    Arena *arena;
    Diag *diag;
    const SourceFile *file;
    Stmt *result;
    int line, col;       /* the scanner's position */
    int last_error_line; /* one syntax error per line keeps cascades quiet */
    long n_exprs;        /* expression nodes built; past MAX_EXPRS the file ends */
    bool stop;           /* the scanner returns end of input */
} ParseCtx;

/* More expression nodes than the evaluator's step budget could ever visit:
 * parsing stops there (a 4 MB `1+1+...` would take 400 MB of tree). */
enum { MAX_EXPRS = 1000000 };

/* Parse one source into a statement list (NULL and diagnostics on error). */
Stmt *parse_source(Arena *a, Diag *d, const SourceFile *file);

/* Evaluate the expanded statements into a Spec (frontend/eval.c). */
typedef struct EvalInput {
    Stmt *model_items;   /* the model file, includes expanded */
    Stmt *cluster_items; /* --cluster file, or NULL */
    Stmt **define_binds; /* -D as parsed bindings */
    int n_defines;
} EvalInput;

bool eval_spec(Spec *spec, const EvalInput *in, Diag *d);

#endif
