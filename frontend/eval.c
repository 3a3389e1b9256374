/* eval.c — lowers the expanded syntax tree to the IR: evaluates constants
 * (exact 64-bit integers, doubles, units), applies -D overrides, expands
 * repeat blocks into layers, and binds the arguments of layers and the
 * fields of cluster, train and plan blocks through one table-driven binder,
 * so every field gets the same checks and the same messages. */
#include "frontend.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum {
    MAX_LAYERS = 100000,    /* a graph this large is a mistake, not a model */
    MAX_STEPS = 1000000,    /* statements, repeat iterations, expression nodes */
    MAX_NESTING = 256,      /* expressions in expressions, repeats in repeats: bounds the recursion */
};

/* ---- values --------------------------------------------------------------- */

typedef enum VKind { V_ERROR, V_INT, V_FLOAT, V_BOOL, V_STRING, V_SYMBOL, V_CALL, V_LIST } VKind;

typedef struct VArg VArg;

typedef struct Value {
    VKind kind;
    Dim dim;
    int64_t i;
    double f;
    const char *s; /* string, symbol, or call name */
    VArg *args;    /* call arguments, list items */
    int n;
    Loc loc;
} Value;

struct VArg {
    const char *name; /* NULL when positional */
    Loc name_loc;
    Value v;
};

typedef struct Binding {
    const char *name;
    Loc loc;
    Value v;
    struct Binding *next;
} Binding;

/* An open-addressing hash table from names to entries (bindings, layers), in
 * the arena, so a file of 100,000 constants binds and looks up each in O(1). */
typedef struct NameTable {
    const char **keys;
    void **values;
    size_t cap, n; /* cap: 0 or a power of two */
} NameTable;

typedef struct Scope {
    Binding *bindings; /* the newest first */
    struct Scope *parent;
    NameTable names; /* the bindings by name */
} Scope;

typedef struct Eval {
    Arena *arena;
    Diag *diag;
    Spec *spec;
    const EvalInput *in;
    bool *define_used;
    long steps;
    int depth; /* of nested expressions and repeat blocks */
    bool step_error;
    bool too_many_layers;
    NameTable layer_names; /* every layer so far, labelled or kind.N */
} Eval;

static Value eval_expr(Eval *E, const Expr *e, Scope *sc);

static Value error_value(void) { return (Value){.kind = V_ERROR}; }

/* FNV-1a: the name's slot before probing. */
static size_t name_hash(const char *s) {
    uint64_t h = 14695981039346656037u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211u;
    return (size_t)h;
}

/* The slot holding name, or the empty slot where it would go (cap > 0). */
static size_t names_slot(const NameTable *t, const char *name) {
    size_t i = name_hash(name) & (t->cap - 1);
    while (t->keys[i] && strcmp(t->keys[i], name) != 0) i = (i + 1) & (t->cap - 1);
    return i;
}

static void *names_get(const NameTable *t, const char *name) {
    if (!t->cap) return NULL;
    size_t i = names_slot(t, name);
    return t->keys[i] ? t->values[i] : NULL;
}

/* Add or replace name's entry; the table doubles when half full. */
static void names_put(Arena *a, NameTable *t, const char *name, void *value) {
    if (2 * (t->n + 1) > t->cap) {
        NameTable bigger = {.cap = t->cap ? 2 * t->cap : 8};
        bigger.keys = arena_alloc(a, bigger.cap * sizeof *bigger.keys);
        bigger.values = arena_alloc(a, bigger.cap * sizeof *bigger.values);
        for (size_t k = 0; k < t->cap; k++)
            if (t->keys[k]) names_put(a, &bigger, t->keys[k], t->values[k]);
        *t = bigger;
    }
    size_t i = names_slot(t, name);
    if (!t->keys[i]) t->n++;
    t->keys[i] = name;
    t->values[i] = value;
}

/* The innermost binding of name in sc or the scopes around it. */
static const Binding *lookup(const Scope *sc, const char *name) {
    for (; sc; sc = sc->parent) {
        const Binding *b = names_get(&sc->names, name);
        if (b) return b;
    }
    return NULL;
}

static bool is_number(const Value *v) { return v->kind == V_INT || v->kind == V_FLOAT; }
static double as_double(const Value *v) { return v->kind == V_INT ? (double)v->i : v->f; }

/* What a value is, for messages: "symbol 'gelu'", "a size in bytes". */
static const char *describe(Eval *E, const Value *v) {
    switch (v->kind) {
    case V_INT:
    case V_FLOAT: return dim_name(v->dim);
    case V_BOOL: return "true or false";
    case V_STRING: return "a string";
    case V_SYMBOL: return arena_printf(E->arena, "'%s', which is not a defined constant", v->s);
    case V_CALL: return arena_printf(E->arena, "a call to %s()", v->s);
    case V_LIST: return "a list";
    case V_ERROR: break;
    }
    return "an error";
}

/* ---- expressions ---------------------------------------------------------- */

static Value number_error(Eval *E, const Expr *e, const Value *v, int op) {
    if (op == '-' && e->kind == EXPR_NEG)
        diag_error(E->diag, v->loc, "'-' needs a number, not %s", describe(E, v));
    else
        diag_error(E->diag, v->loc, "'%c' needs numbers, not %s", op, describe(E, v));
    return error_value();
}

/* The unit of a op b, or an error: sizes add to sizes, a size over a time is
 * a rate, and scaling by a plain number keeps the unit. */
static bool combine_dims(Eval *E, const Expr *e, int op, Dim a, Dim b, Dim *out) {
    switch (op) {
    case '+':
    case '-':
    case '%':
        if (a == b) return *out = a, true;
        break;
    case '*':
        if (a == DIM_NONE) return *out = b, true;
        if (b == DIM_NONE) return *out = a, true;
        break;
    case '/':
        if (b == DIM_NONE) return *out = a, true;
        if (a == b) return *out = DIM_NONE, true;
        if (a == DIM_BYTES && b == DIM_TIME) return *out = DIM_RATE, true;
        break;
    }
    diag_error(E->diag, e->loc, "cannot apply '%c' to %s and %s", op, dim_name(a), dim_name(b));
    return false;
}

/* a op b, for the values of e's two sides. */
static Value apply_binary(Eval *E, const Expr *e, Value a, Value b) {
    if (a.kind == V_ERROR || b.kind == V_ERROR) return error_value();
    if (!is_number(&a)) return number_error(E, e, &a, e->op);
    if (!is_number(&b)) return number_error(E, e, &b, e->op);
    Value r = {.loc = e->loc};
    if (!combine_dims(E, e, e->op, a.dim, b.dim, &r.dim)) return error_value();
    if ((e->op == '/' || e->op == '%') && as_double(&b) == 0) {
        diag_error(E->diag, e->rhs->loc, "division by zero");
        return error_value();
    }
    if (a.kind == V_INT && b.kind == V_INT) {
        bool overflow = false;
        r.kind = V_INT;
        switch (e->op) {
        case '+': overflow = __builtin_add_overflow(a.i, b.i, &r.i); break;
        case '-': overflow = __builtin_sub_overflow(a.i, b.i, &r.i); break;
        case '*': overflow = __builtin_mul_overflow(a.i, b.i, &r.i); break;
        case '%':
        case '/':
            if (a.i == INT64_MIN && b.i == -1) {
                overflow = true;
            } else if (e->op == '%') {
                r.i = a.i % b.i;
            } else if (a.i % b.i == 0) {
                r.i = a.i / b.i; /* exact division stays an integer */
            } else {
                r.kind = V_FLOAT;
                r.f = (double)a.i / (double)b.i;
            }
            break;
        }
        if (overflow) {
            diag_error(E->diag, e->loc, "integer overflow in '%c'", e->op);
            return error_value();
        }
        return r;
    }
    if (e->op == '%') {
        diag_error(E->diag, e->loc, "'%%' needs integers");
        return error_value();
    }
    double x = as_double(&a), y = as_double(&b);
    r.kind = V_FLOAT;
    r.f = e->op == '+' ? x + y : e->op == '-' ? x - y : e->op == '*' ? x * y : x / y;
    if (!isfinite(r.f)) {
        diag_error(E->diag, e->loc, "result is out of range");
        return error_value();
    }
    return r;
}

static bool budget(Eval *E, Loc loc);

/* A chain `1 + 1 + ... + 1` parses left-deep, as deep as it is long, so its
 * left spine is walked with a loop, not recursion: only a parenthesised
 * right operand recurses, and the parser bounds how deeply those nest. */
static Value eval_binary(Eval *E, const Expr *e, Scope *sc) {
    size_t n = 1;
    const Expr *leaf = e->lhs;
    for (; leaf->kind == EXPR_BINARY; leaf = leaf->lhs, n++)
        if (!budget(E, leaf->loc)) return error_value();
    const Expr **spine = arena_alloc(E->arena, n * sizeof *spine); /* n <= MAX_STEPS */
    size_t i = n;
    for (const Expr *x = e; x != leaf; x = x->lhs) spine[--i] = x;
    Value acc = eval_expr(E, leaf, sc);
    for (i = 0; i < n; i++) acc = apply_binary(E, spine[i], acc, eval_expr(E, spine[i]->rhs, sc));
    return acc;
}

/* Evaluate the arguments of a call or list. */
static Value eval_args(Eval *E, const Expr *e, Scope *sc, VKind kind) {
    Value r = {.kind = kind, .s = e->s, .loc = e->loc};
    for (const Arg *a = e->args; a; a = a->next) r.n++;
    r.args = arena_alloc(E->arena, (size_t)(r.n ? r.n : 1) * sizeof *r.args);
    int i = 0;
    bool ok = true;
    for (const Arg *a = e->args; a; a = a->next, i++) {
        if (kind == V_LIST && a->name) {
            diag_error(E->diag, a->name_loc, "a list holds values, not named arguments");
            ok = false;
        }
        r.args[i] = (VArg){a->name, a->name_loc, eval_expr(E, a->value, sc)};
        if (r.args[i].v.kind == V_ERROR) ok = false;
    }
    return ok ? r : error_value();
}

/* One expression node's value; its operands through eval_expr. */
static Value eval_node(Eval *E, const Expr *e, Scope *sc) {
    Value v = {.loc = e->loc, .dim = e->dim};
    switch (e->kind) {
    case EXPR_INT: v.kind = V_INT; v.i = e->i; return v;
    case EXPR_FLOAT: v.kind = V_FLOAT; v.f = e->f; return v;
    case EXPR_BOOL: v.kind = V_BOOL; v.i = e->i; return v;
    case EXPR_STRING: v.kind = V_STRING; v.s = e->s; return v;
    case EXPR_NAME: {
        const Binding *b = lookup(sc, e->s);
        if (!b) {
            v.kind = V_SYMBOL;
            v.s = e->s;
            return v;
        }
        v = b->v;
        v.loc = e->loc;
        return v;
    }
    case EXPR_NEG:
        v = eval_expr(E, e->lhs, sc);
        if (v.kind == V_ERROR) return v;
        if (!is_number(&v)) return number_error(E, e, &v, '-');
        if (v.kind == V_INT && v.i == INT64_MIN) {
            diag_error(E->diag, e->loc, "integer overflow in '-'");
            return error_value();
        }
        if (v.kind == V_INT) v.i = -v.i;
        else v.f = -v.f;
        v.loc = e->loc;
        return v;
    case EXPR_BINARY: return eval_binary(E, e, sc);
    case EXPR_CALL: return eval_args(E, e, sc, V_CALL);
    case EXPR_LIST: return eval_args(E, e, sc, V_LIST);
    }
    die("bad expression kind %d", (int)e->kind);
}

/* An expression's value, within the step budget and the nesting bound (a too
 * deep expression reports once, at its first node past the bound). */
static Value eval_expr(Eval *E, const Expr *e, Scope *sc) {
    if (!budget(E, e->loc)) return error_value();
    if (E->depth >= MAX_NESTING) {
        diag_error(E->diag, e->loc, "the expression nests more than %d deep", MAX_NESTING);
        return error_value();
    }
    E->depth++;
    Value v = eval_node(E, e, sc);
    E->depth--;
    return v;
}

/* ---- fields: one binder for layer arguments and block fields ------------- */

typedef enum FieldType {
    F_COUNT,    /* integer > 0 */
    F_COUNT0,   /* integer >= 0 */
    F_BYTES,    /* a size: 80 GiB */
    F_RATE,     /* bytes per second: 300 GB/s */
    F_TIME,     /* seconds: 2 us */
    F_FLOAT,    /* a plain number */
    F_POSITIVE, /* a plain number > 0 that fp32 holds: a learning rate, an epsilon */
    F_NONNEG,   /* a plain number >= 0 that fp32 holds: weight decay, clipping */
    F_FRACTION, /* a plain number in [0, 1): betas, momentum, dropout */
    F_BOOL,
    F_ENUM,     /* a symbol from `names` */
    F_FAMILIES, /* a strategy family or a list of them, as a bit set */
    F_STRING,
    F_LINK,      /* link(kind = nvlink, bandwidth = 300 GB/s, latency = 2 us) */
    F_OPTIMIZER, /* adamw(lr = 6e-4, ...) */
} FieldType;

typedef struct Field {
    const char *name;
    FieldType type;
    size_t offset;
    const char *const *names; /* F_ENUM */
} Field;

/* The fields a binder may set, which of them are positional and required. */
typedef struct FieldSet {
    const char *what; /* "cluster", "decoder", ... for messages */
    const Field *fields[32];
    int n;
    int n_positional; /* the first n_positional fields take positional arguments */
    unsigned required; /* bit per field */
} FieldSet;

static const Field *find_field(const FieldSet *fs, const char *name) {
    for (int i = 0; i < fs->n; i++)
        if (strcmp(fs->fields[i]->name, name) == 0) return fs->fields[i];
    return NULL;
}

static int field_index(const FieldSet *fs, const Field *f) {
    for (int i = 0; i < fs->n; i++)
        if (fs->fields[i] == f) return i;
    return -1;
}

/* "a, b or c" */
static const char *join_names(Eval *E, const char *const *names, int n) {
    const char *s = "";
    for (int i = 0; n < 0 ? names[i] != NULL : i < n; i++) {
        bool last = n < 0 ? names[i + 1] == NULL : i == n - 1;
        s = arena_printf(E->arena, "%s%s%s", s, i == 0 ? "" : last ? " or " : ", ", names[i]);
    }
    return s;
}

static int enum_index(const char *const *names, const char *s) {
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], s) == 0) return i;
    return -1;
}

static bool bind_args(Eval *E, const FieldSet *fs, void *dst, const Value *call);

/* Check an integer field, allowing a float that is exactly integral. */
static bool want_int(Eval *E, const Field *f, const Value *v, int64_t min, int64_t *out) {
    if (is_number(v) && v->dim == DIM_NONE) {
        int64_t x = v->i;
        if (v->kind == V_FLOAT) {
            if (v->f != floor(v->f) || fabs(v->f) >= 0x1p63) {
                diag_error(E->diag, v->loc, "'%s' must be an integer, not %g", f->name, v->f);
                return false;
            }
            x = (int64_t)v->f;
        }
        if (x < min) {
            diag_error(E->diag, v->loc, "'%s' must be %s, not %lld", f->name, min ? "positive" : "zero or more",
                       (long long)x);
            return false;
        }
        *out = x;
        return true;
    }
    diag_error(E->diag, v->loc, "'%s' must be an integer, not %s", f->name, describe(E, v));
    return false;
}

/* A number of the field's unit; a bare number where a unit is needed says so. */
static bool want_unit(Eval *E, const Field *f, const Value *v, Dim dim, const char *example, double *out) {
    if (is_number(v) && v->dim == dim) {
        *out = as_double(v);
        if (*out < 0) {
            diag_error(E->diag, v->loc, "'%s' must not be negative", f->name);
            return false;
        }
        return true;
    }
    if (is_number(v) && v->dim == DIM_NONE && dim != DIM_NONE)
        diag_error(E->diag, v->loc, "'%s' needs a unit, as in %s", f->name, example);
    else
        diag_error(E->diag, v->loc, "'%s' must be %s, not %s", f->name, dim_name(dim), describe(E, v));
    return false;
}

static bool want_enum(Eval *E, const Field *f, const Value *v, int *out) {
    if (v->kind == V_SYMBOL || v->kind == V_STRING) {
        int k = enum_index(f->names, v->s);
        if (k >= 0) return *out = k, true;
        const char *hint = diag_suggest(v->s, f->names, -1);
        diag_error(E->diag, v->loc, "unknown %s '%s'%s%s%s (expected %s)", f->name, v->s, hint ? "; did you mean '" : "",
                   hint ? hint : "", hint ? "'?" : "", join_names(E, f->names, -1));
        return false;
    }
    diag_error(E->diag, v->loc, "'%s' must be one of %s, not %s", f->name, join_names(E, f->names, -1),
               describe(E, v));
    return false;
}

static const Field link_fields[] = {
    {"kind", F_ENUM, offsetof(Link, kind), link_kind_names},
    {"bandwidth", F_RATE, offsetof(Link, bandwidth), NULL},
    {"latency", F_TIME, offsetof(Link, latency), NULL},
};

static const Field optimizer_fields[] = {
    {"lr", F_POSITIVE, offsetof(Optimizer, lr), NULL},
    {"beta1", F_FRACTION, offsetof(Optimizer, beta1), NULL},
    {"beta2", F_FRACTION, offsetof(Optimizer, beta2), NULL},
    {"eps", F_POSITIVE, offsetof(Optimizer, eps), NULL},
    {"weight_decay", F_NONNEG, offsetof(Optimizer, weight_decay), NULL},
    {"momentum", F_FRACTION, offsetof(Optimizer, momentum), NULL},
    {"nesterov", F_BOOL, offsetof(Optimizer, nesterov), NULL},
    {"clip", F_NONNEG, offsetof(Optimizer, clip), NULL},
};

#define FIELD_SET(what, table)                                                 \
    fieldset_of(what, table, (int)(sizeof table / sizeof table[0]))

static FieldSet fieldset_of(const char *what, const Field *table, int n) {
    FieldSet fs = {.what = what, .n = n};
    for (int i = 0; i < n; i++) fs.fields[i] = &table[i];
    return fs;
}

/* A number within its field's range (F_POSITIVE, F_NONNEG, F_FRACTION), into out. */
static bool want_range(Eval *E, const Field *f, const Value *v, double d, double *out) {
    const char *need = NULL;
    if (f->type == F_POSITIVE && !(d > 0 && d <= FLT_MAX)) need = "a number above 0 (and within fp32's range)";
    if (f->type == F_NONNEG && !(d >= 0 && d <= FLT_MAX)) need = "a number of 0 or more (and within fp32's range)";
    if (f->type == F_FRACTION && !(d >= 0 && d < 1)) need = "a number from 0 up to (not including) 1";
    if (need) {
        diag_error(E->diag, v->loc, "'%s' must be %s, not %g", f->name, need, d);
        return false;
    }
    *out = d;
    return true;
}

/* Store one value into its field, checking type, unit and range. */
static bool bind_field(Eval *E, const Field *f, void *dst, const Value *v) {
    char *p = (char *)dst + f->offset;
    double d;
    switch (f->type) {
    case F_COUNT: return want_int(E, f, v, 1, (int64_t *)p);
    case F_COUNT0: return want_int(E, f, v, 0, (int64_t *)p);
    case F_BYTES:
        if (!want_unit(E, f, v, DIM_BYTES, "80 GiB", &d)) return false;
        if (d >= 0x1p63) {
            diag_error(E->diag, v->loc, "'%s' is too large", f->name);
            return false;
        }
        *(int64_t *)p = v->kind == V_INT ? v->i : (int64_t)llround(d);
        return true;
    case F_RATE: return want_unit(E, f, v, DIM_RATE, "300 GB/s", (double *)p);
    case F_TIME: return want_unit(E, f, v, DIM_TIME, "5 us", (double *)p);
    case F_FLOAT:
    case F_POSITIVE:
    case F_NONNEG:
    case F_FRACTION:
        if (!is_number(v) || v->dim != DIM_NONE) {
            diag_error(E->diag, v->loc, "'%s' must be a plain number, not %s", f->name, describe(E, v));
            return false;
        }
        return want_range(E, f, v, as_double(v), (double *)p);
    case F_BOOL:
        if (v->kind == V_BOOL) return *(bool *)p = v->i != 0, true;
        diag_error(E->diag, v->loc, "'%s' must be true or false, not %s", f->name, describe(E, v));
        return false;
    case F_ENUM: return want_enum(E, f, v, (int *)p);
    case F_FAMILIES: {
        Field one = {f->name, F_ENUM, 0, family_names};
        unsigned mask = 0;
        int k;
        if (v->kind != V_LIST) {
            if (!want_enum(E, &one, v, &k)) return false;
            mask = 1u << k;
        }
        for (int i = 0; v->kind == V_LIST && i < v->n; i++) {
            if (!want_enum(E, &one, &v->args[i].v, &k)) return false;
            mask |= 1u << k;
        }
        *(unsigned *)p = mask;
        return true;
    }
    case F_STRING:
        if (v->kind == V_STRING) return *(const char **)p = v->s, true;
        diag_error(E->diag, v->loc, "'%s' must be a string, not %s", f->name, describe(E, v));
        return false;
    case F_LINK: {
        if (v->kind != V_CALL || strcmp(v->s, "link") != 0) {
            diag_error(E->diag, v->loc, "'%s' must be link(kind = ..., bandwidth = ..., latency = ...), not %s",
                       f->name, describe(E, v));
            return false;
        }
        Link *link = (Link *)p;
        link->given = true;
        FieldSet fs = FIELD_SET("link", link_fields);
        return bind_args(E, &fs, link, v);
    }
    case F_OPTIMIZER: {
        Optimizer *opt = (Optimizer *)p;
        int kind;
        Field which = {"optimizer", F_ENUM, 0, optimizer_names};
        Value name = *v;
        if (v->kind == V_CALL) name.kind = V_SYMBOL;
        if (!want_enum(E, &which, &name, &kind)) return false;
        opt->kind = kind;
        if (kind == OPT_SGD) opt->weight_decay = 0;
        FieldSet fs = FIELD_SET(optimizer_names[kind], optimizer_fields);
        if (v->kind == V_CALL && !bind_args(E, &fs, opt, v)) return false;
        if (opt->nesterov && (kind != OPT_SGD || opt->momentum == 0)) { /* as torch.optim refuses it */
            diag_error(E->diag, v->loc, "nesterov needs sgd with a momentum above 0");
            return false;
        }
        return true;
    }
    }
    die("bad field type %d", (int)f->type);
}

/* Bind a call's arguments: positional ones in the set's order, then named
 * ones; a bare symbol naming a boolean field (`lm_head(tied)`) sets it. */
static bool bind_args(Eval *E, const FieldSet *fs, void *dst, const Value *call) {
    bool ok = true;
    unsigned set = 0;
    int pos = 0;
    for (int i = 0; i < call->n; i++) {
        const VArg *a = &call->args[i];
        const Field *f = NULL;
        Value flag = {.kind = V_BOOL, .i = 1, .loc = a->v.loc};
        const Value *v = &a->v;
        if (a->name) {
            f = find_field(fs, a->name);
            if (!f) {
                const char *names[32];
                for (int k = 0; k < fs->n; k++) names[k] = fs->fields[k]->name;
                const char *hint = diag_suggest(a->name, names, fs->n);
                diag_error(E->diag, a->name_loc, "%s has no argument '%s'%s%s%s (it takes %s)", fs->what, a->name,
                           hint ? "; did you mean '" : "", hint ? hint : "", hint ? "'?" : "",
                           join_names(E, names, fs->n));
                ok = false;
                continue;
            }
        } else if (v->kind == V_SYMBOL && (f = find_field(fs, v->s)) && f->type == F_BOOL) {
            v = &flag;
        } else if (pos < fs->n_positional) {
            f = fs->fields[pos++];
        } else {
            diag_error(E->diag, a->v.loc, "too many arguments to %s (it takes %d without names)", fs->what,
                       fs->n_positional);
            ok = false;
            continue;
        }
        unsigned bit = 1u << field_index(fs, f);
        if (set & bit) {
            diag_error(E->diag, a->name ? a->name_loc : a->v.loc, "'%s' is given twice", f->name);
            ok = false;
            continue;
        }
        set |= bit;
        ok &= bind_field(E, f, dst, v);
    }
    for (int k = 0; k < fs->n; k++)
        if ((fs->required & (1u << k)) && !(set & (1u << k))) {
            diag_error(E->diag, call->loc, "%s needs '%s'", fs->what, fs->fields[k]->name);
            ok = false;
        }
    return ok;
}

/* ---- layers ---------------------------------------------------------------- */

#define LAYER_FIELD(name, type, names) {#name, type, offsetof(Layer, name), names}
static const Field layer_fields[] = {
    LAYER_FIELD(vocab, F_COUNT, NULL),      LAYER_FIELD(hidden, F_COUNT, NULL),
    LAYER_FIELD(heads, F_COUNT, NULL),      LAYER_FIELD(kv_heads, F_COUNT, NULL),
    LAYER_FIELD(head_dim, F_COUNT, NULL),   LAYER_FIELD(ffn, F_COUNT, NULL),
    LAYER_FIELD(positions, F_COUNT, NULL),  LAYER_FIELD(types, F_COUNT0, NULL),
    LAYER_FIELD(window, F_COUNT, NULL),     LAYER_FIELD(classes, F_COUNT, NULL),
    LAYER_FIELD(image, F_COUNT, NULL),      LAYER_FIELD(patch, F_COUNT, NULL),
    LAYER_FIELD(channels, F_COUNT, NULL),   LAYER_FIELD(enc_seq, F_COUNT, NULL),
    LAYER_FIELD(rel_buckets, F_COUNT0, NULL), LAYER_FIELD(act, F_ENUM, activation_names),
    LAYER_FIELD(norm, F_ENUM, norm_names),  LAYER_FIELD(pos, F_ENUM, pos_names),
    LAYER_FIELD(pool, F_ENUM, pool_names),  LAYER_FIELD(bias, F_BOOL, NULL),
    LAYER_FIELD(tied, F_BOOL, NULL),        LAYER_FIELD(causal, F_BOOL, NULL),
    LAYER_FIELD(pre_norm, F_BOOL, NULL),    LAYER_FIELD(transform, F_BOOL, NULL),
    LAYER_FIELD(cls_token, F_BOOL, NULL),   LAYER_FIELD(pooler, F_BOOL, NULL),
    LAYER_FIELD(dropout, F_FRACTION, NULL), LAYER_FIELD(eps, F_POSITIVE, NULL),
    LAYER_FIELD(shift, F_BOOL, NULL),
};

/* Each kind's arguments: positional ones first, in order, up to '|'; a '!'
 * marks a required one. `hidden` (and a head's `vocab`) may be left out:
 * the shape pass takes them from the layer before. */
static const char *const layer_signatures[LAYER_KIND_COUNT] = {
    [LAYER_EMBEDDING] = "vocab! hidden! | positions pos types dropout",
    [LAYER_PATCH_EMBEDDING] = "image! patch! hidden! | channels cls_token pos dropout",
    [LAYER_ENCODER] =
        "hidden heads! | ffn kv_heads head_dim act norm bias pre_norm rel_buckets dropout eps window shift",
    [LAYER_DECODER] = "hidden heads! | ffn kv_heads head_dim act norm bias pre_norm rel_buckets dropout eps",
    [LAYER_CROSS_DECODER] =
        "hidden heads! | ffn kv_heads head_dim act norm bias pre_norm rel_buckets enc_seq dropout eps",
    [LAYER_ATTENTION] = "hidden heads! | kv_heads head_dim causal bias rel_buckets dropout",
    [LAYER_WINDOW_ATTENTION] = "hidden heads! window! | head_dim bias dropout",
    [LAYER_MLP] = "hidden | ffn act bias dropout",
    [LAYER_LAYERNORM] = "hidden | bias eps",
    [LAYER_RMSNORM] = "hidden | eps dropout",
    [LAYER_LM_HEAD] = "vocab hidden | tied bias transform act",
    [LAYER_CLASSIFIER] = "classes! hidden | pool pooler",
    [LAYER_PATCH_MERGING] = "hidden | eps",
};

static FieldSet layer_fieldset(LayerKind kind) {
    FieldSet fs = {.what = layer_kind_names[kind], .n_positional = -1};
    const char *p = layer_signatures[kind];
    while (*p) {
        if (*p == ' ') { p++; continue; }
        if (*p == '|') { fs.n_positional = fs.n; p++; continue; }
        size_t len = strcspn(p, " !|");
        for (size_t i = 0; i < sizeof layer_fields / sizeof layer_fields[0]; i++)
            if (strlen(layer_fields[i].name) == len && strncmp(layer_fields[i].name, p, len) == 0)
                fs.fields[fs.n] = &layer_fields[i];
        if (!fs.fields[fs.n]) die("bad signature for %s", fs.what);
        p += len;
        if (*p == '!') fs.required |= 1u << fs.n, p++;
        fs.n++;
    }
    if (fs.n_positional < 0) fs.n_positional = fs.n;
    return fs;
}

/* The defaults a user of GPT-2, BERT or LLaMA would expect. */
static void layer_defaults(Layer *l) {
    l->act = ACT_GELU;
    l->norm = l->kind == LAYER_RMSNORM ? NORM_RMSNORM : NORM_LAYERNORM;
    l->pos = POS_LEARNED;
    l->pool = POOL_CLS;
    l->bias = l->kind != LAYER_LM_HEAD; /* GPT-2 and LLaMA heads have no bias */
    l->pre_norm = true;
    l->cls_token = true;
    l->causal = l->kind == LAYER_DECODER || l->kind == LAYER_CROSS_DECODER;
    l->eps = 1e-5;
}

static void eval_layer(Eval *E, const Stmt *s, Scope *sc, int *kind_counts) {
    const Expr *call = s->value;
    int kind = 0;
    while (kind < LAYER_KIND_COUNT && strcmp(layer_kind_names[kind], call->s) != 0) kind++;
    if (kind == LAYER_KIND_COUNT) {
        const char *hint = diag_suggest(call->s, layer_kind_names, LAYER_KIND_COUNT);
        Loc at = call->loc;
        at.end_col = at.col + (int)strlen(call->s);
        if (hint) diag_error(E->diag, at, "unknown layer kind '%s'; did you mean '%s'?", call->s, hint);
        else diag_error(E->diag, at, "unknown layer kind '%s' (known: %s)", call->s,
                        join_names(E, layer_kind_names, LAYER_KIND_COUNT));
        return;
    }
    Graph *g = E->spec->graph;
    if (g->n_layers >= MAX_LAYERS) {
        if (!E->too_many_layers) diag_error(E->diag, s->loc, "the model has more than %d layers", MAX_LAYERS);
        E->too_many_layers = true;
        return;
    }
    Value args = eval_args(E, call, sc, V_CALL);
    Layer *l = graph_add_layer(g, (LayerKind)kind, s->loc);
    layer_defaults(l);
    FieldSet fs = layer_fieldset((LayerKind)kind);
    l->invalid = args.kind == V_ERROR || !bind_args(E, &fs, l, &args);
    if (s->name) {
        l->name = s->name;
        const Layer *earlier = names_get(&E->layer_names, s->name);
        if (earlier) {
            diag_error(E->diag, s->name_loc, "a layer named '%s' already exists", s->name);
            diag_note(E->diag, earlier->loc, "'%s' is defined here", s->name);
        }
    } else {
        l->name = arena_printf(E->arena, "%s.%d", layer_kind_names[kind], kind_counts[kind]);
    }
    if (!names_get(&E->layer_names, l->name)) names_put(E->arena, &E->layer_names, l->name, l);
    kind_counts[kind]++;
}

/* ---- statements ------------------------------------------------------------ */

/* The -D override for a name, if one was given. */
static const Stmt *override_for(Eval *E, const char *name, int *index) {
    for (int i = 0; i < E->in->n_defines; i++) {
        const Stmt *d = E->in->define_binds[i];
        if (d && strcmp(d->name, name) == 0) return *index = i, d;
    }
    return NULL;
}

/* Evaluate a binding's value, or its -D replacement. */
static Value binding_value(Eval *E, const Stmt *s, Scope *sc) {
    int k;
    const Stmt *d = override_for(E, s->name, &k);
    if (!d) return eval_expr(E, s->value, sc);
    E->define_used[k] = true;
    Value v = eval_expr(E, d->value, NULL);
    if (v.kind != V_ERROR) v.loc = s->value->loc;
    return v;
}

/* Define a constant in the scope; redefinition in one scope is an error. */
static void define(Eval *E, const Stmt *s, Scope *sc) {
    const Binding *earlier = names_get(&sc->names, s->name);
    if (earlier) {
        diag_error(E->diag, s->name_loc, "'%s' is already defined", s->name);
        diag_note(E->diag, earlier->loc, "the earlier definition is here");
        return;
    }
    Value v = binding_value(E, s, sc);
    if (v.kind == V_ERROR) return;
    Binding *b = arena_alloc(E->arena, sizeof *b);
    *b = (Binding){s->name, s->name_loc, v, sc->bindings};
    sc->bindings = b;
    names_put(E->arena, &sc->names, b->name, b);
}

/* Count the work done (statements, repeat iterations, expression nodes) so
 * that no input can make the frontend spin or eat memory. */
static bool budget(Eval *E, Loc loc) {
    if (++E->steps <= MAX_STEPS) return true;
    if (!E->step_error) diag_error(E->diag, loc, "the model expands to more than %d evaluation steps", MAX_STEPS);
    E->step_error = true;
    return false;
}

static void misplaced(Eval *E, const Stmt *s, const char *where) {
    static const char *const what[] = {"a constant", "a layer", "repeat", "include", "a block"};
    diag_error(E->diag, s->loc, "%s cannot appear %s", what[s->kind], where);
}

/* The statements of a model block (or of a repeat inside one). */
static void eval_model_body(Eval *E, const Stmt *body, Scope *sc, int *kind_counts) {
    for (const Stmt *s = body; s; s = s->next) {
        if (!budget(E, s->loc)) return;
        switch (s->kind) {
        case STMT_BIND: define(E, s, sc); break;
        case STMT_LAYER: eval_layer(E, s, sc, kind_counts); break;
        case STMT_REPEAT: {
            if (E->depth >= MAX_NESTING) {
                diag_error(E->diag, s->loc, "repeat blocks nest more than %d deep", MAX_NESTING);
                return;
            }
            Value n = eval_expr(E, s->value, sc);
            int64_t count;
            Field f = {"repeat count", F_COUNT0, 0, NULL};
            if (n.kind == V_ERROR || !want_int(E, &f, &n, 0, &count)) break;
            if (count > MAX_LAYERS) {
                diag_error(E->diag, n.loc, "repeat count %lld is larger than %d", (long long)count, MAX_LAYERS);
                break;
            }
            E->depth++;
            for (int64_t i = 0; i < count && budget(E, s->loc); i++) {
                Scope inner = {.parent = sc};
                int before = E->diag->errors;
                eval_model_body(E, s->body, &inner, kind_counts);
                if (E->diag->errors != before) break; /* one report, not one per iteration */
            }
            E->depth--;
            break;
        }
        default: misplaced(E, s, "inside a model block"); break;
        }
    }
}

/* The statements of a cluster, train or plan block: each binding sets a field. */
static void eval_fields(Eval *E, const Stmt *block, const FieldSet *fs, void *dst, Scope *sc) {
    unsigned set = 0;
    const Stmt *first[32] = {0};
    for (const Stmt *s = block->body; s; s = s->next) {
        if (!budget(E, s->loc)) return;
        if (s->kind != STMT_BIND) {
            misplaced(E, s, arena_printf(E->arena, "inside a %s block", fs->what));
            continue;
        }
        const Field *f = find_field(fs, s->name);
        if (!f) {
            const char *names[32];
            for (int k = 0; k < fs->n; k++) names[k] = fs->fields[k]->name;
            const char *hint = diag_suggest(s->name, names, fs->n);
            if (hint) diag_error(E->diag, s->name_loc, "unknown %s field '%s'; did you mean '%s'?", fs->what, s->name, hint);
            else diag_error(E->diag, s->name_loc, "unknown %s field '%s' (fields: %s)", fs->what, s->name,
                            join_names(E, names, fs->n));
            continue;
        }
        int k = field_index(fs, f);
        if (set & (1u << k)) {
            diag_error(E->diag, s->name_loc, "'%s' is set twice", s->name);
            diag_note(E->diag, first[k]->name_loc, "it is first set here");
            continue;
        }
        set |= 1u << k;
        first[k] = s;
        Value v = binding_value(E, s, sc);
        if (v.kind != V_ERROR) bind_field(E, f, dst, &v);
    }
    for (int k = 0; k < fs->n; k++)
        if ((fs->required & (1u << k)) && !(set & (1u << k))) {
            Loc at = block->loc;
            diag_error(E->diag, at, "%s block needs '%s'", fs->what, fs->fields[k]->name);
        }
}

static const Field cluster_fields[] = {
    {"nodes", F_COUNT, offsetof(Cluster, nodes), NULL},
    {"devices_per_node", F_COUNT, offsetof(Cluster, devices_per_node), NULL},
    {"device", F_ENUM, offsetof(Cluster, device), device_kind_names},
    {"memory", F_BYTES, offsetof(Cluster, memory), NULL},
    {"intra", F_LINK, offsetof(Cluster, intra), NULL},
    {"inter", F_LINK, offsetof(Cluster, inter), NULL},
    {"profile", F_STRING, offsetof(Cluster, profile), NULL},
    {"reserve", F_BYTES, offsetof(Cluster, reserve), NULL},
    {"ranks_per_device", F_COUNT, offsetof(Cluster, ranks_per_device), NULL},
};

static const Field train_fields[] = {
    {"global_batch", F_COUNT, offsetof(TrainConfig, global_batch), NULL},
    {"seq", F_COUNT, offsetof(TrainConfig, seq), NULL},
    {"precision", F_ENUM, offsetof(TrainConfig, precision), precision_names},
    {"optimizer", F_OPTIMIZER, offsetof(TrainConfig, opt), NULL},
    {"steps", F_COUNT, offsetof(TrainConfig, steps), NULL},
    {"warmup", F_COUNT0, offsetof(TrainConfig, warmup), NULL},
    {"decay", F_ENUM, offsetof(TrainConfig, decay), decay_names},
    {"min_lr", F_NONNEG, offsetof(TrainConfig, min_lr), NULL},
    {"decay_steps", F_COUNT, offsetof(TrainConfig, decay_steps), NULL},
};

static const Field plan_fields[] = {
    {"pp", F_COUNT, offsetof(PlanHints, pp), NULL},
    {"max_tp", F_COUNT, offsetof(PlanHints, max_tp), NULL},
    {"micro_batches", F_COUNT, offsetof(PlanHints, micro_batches), NULL},
    {"forbid", F_FAMILIES, offsetof(PlanHints, forbid), NULL},
    {"schedule", F_ENUM, offsetof(PlanHints, schedule), schedule_names},
};

static void eval_cluster(Eval *E, const Stmt *b, Scope *sc) {
    Cluster *c = arena_alloc(E->arena, sizeof *c);
    c->name = b->name ? b->name : "cluster";
    c->loc = b->loc;
    c->nodes = 1;
    c->ranks_per_device = 1;
    FieldSet fs = FIELD_SET("cluster", cluster_fields);
    fs.required = 1u << 1 | 1u << 2 | 1u << 3; /* devices_per_node, device, memory */
    eval_fields(E, b, &fs, c, sc);
    if (c->memory > 0 && c->reserve >= c->memory) {
        char r[32], m[32];
        diag_error(E->diag, c->loc, "the reserve (%s) leaves nothing of the %s per device for the plan",
                   bytes_str(r, sizeof r, (double)c->reserve), bytes_str(m, sizeof m, (double)c->memory));
    }
    E->spec->cluster = c;
}

static void eval_train(Eval *E, const Stmt *b, Scope *sc) {
    TrainConfig *t = arena_alloc(E->arena, sizeof *t);
    t->loc = b->loc;
    t->precision = PREC_FP32;
    t->steps = 100;
    /* torch.optim.AdamW's defaults */
    t->opt = (Optimizer){.kind = OPT_ADAMW, .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                         .weight_decay = 0.01};
    FieldSet fs = FIELD_SET("train", train_fields);
    fs.required = 1u << 0; /* global_batch */
    eval_fields(E, b, &fs, t, sc);
    if (!t->decay_steps) t->decay_steps = t->steps; /* the schedule spans the run the file describes */
    if (t->min_lr > t->opt.lr) {
        diag_error(E->diag, t->loc, "min_lr (%g) is above the optimizer's lr (%g)", t->min_lr, t->opt.lr);
    }
    E->spec->train = t;
}

static void eval_plan(Eval *E, const Stmt *b, Scope *sc) {
    FieldSet fs = FIELD_SET("plan", plan_fields);
    E->spec->hints.loc = b->loc;
    eval_fields(E, b, &fs, &E->spec->hints, sc);
}

typedef struct Blocks {
    const Stmt *first[4]; /* the first block of each kind seen */
} Blocks;

static void eval_block(Eval *E, const Stmt *s, Scope *global, Blocks *seen, bool skip_cluster) {
    if (s->block == BLOCK_CLUSTER && skip_cluster) return;
#define X(e, str) str,
    static const char *const names[] = {BLOCK_KINDS(X)};
#undef X
    if (seen->first[s->block]) {
        diag_error(E->diag, s->loc, "a second %s block", names[s->block]);
        diag_note(E->diag, seen->first[s->block]->loc, "the first is here");
        return;
    }
    seen->first[s->block] = s;
    Scope scope = {.parent = global};
    switch (s->block) {
    case BLOCK_MODEL: {
        Graph *g = E->spec->graph;
        g->name = s->name ? s->name : "model";
        g->loc = s->loc;
        int kind_counts[LAYER_KIND_COUNT] = {0};
        eval_model_body(E, s->body, &scope, kind_counts);
        break;
    }
    case BLOCK_CLUSTER: eval_cluster(E, s, &scope); break;
    case BLOCK_TRAIN: eval_train(E, s, &scope); break;
    case BLOCK_PLAN: eval_plan(E, s, &scope); break;
    }
}

/* Top-level statements: constants, blocks, and included files in place. */
static void eval_top(Eval *E, const Stmt *items, Scope *global, Blocks *seen, bool skip_cluster) {
    for (const Stmt *s = items; s; s = s->next) {
        if (!budget(E, s->loc)) return;
        switch (s->kind) {
        case STMT_BIND: define(E, s, global); break;
        case STMT_BLOCK: eval_block(E, s, global, seen, skip_cluster); break;
        case STMT_INCLUDE: eval_top(E, s->included_body, global, seen, skip_cluster); break;
        case STMT_LAYER: misplaced(E, s, "outside a model block"); break;
        case STMT_REPEAT: misplaced(E, s, "outside a model block"); break;
        }
    }
}

/* The program trains in fp32 or in bf16 mixed precision; fp16 (which
 * needs loss scaling) it computes in fp32: plan (and say) so, so that
 * planned memory is what the program allocates. */
static void fp16_precision(Spec *spec, Diag *d) {
    TrainConfig *t = spec->train;
    if (t->precision != PREC_FP16) return;
    diag_note(d, t->loc, "fp16 is not trained (bf16 is): precision = fp16 is planned and run as fp32");
    t->precision = PREC_FP32;
}

bool eval_spec(Spec *spec, const EvalInput *in, Diag *d) {
    Eval E = {.arena = spec->arena, .diag = d, .spec = spec, .in = in};
    E.define_used = arena_alloc(E.arena, (size_t)(in->n_defines + 1) * sizeof *E.define_used);
    spec->graph = arena_alloc(E.arena, sizeof *spec->graph);
    spec->graph->arena = spec->arena;
    Scope global = {0};
    Blocks seen = {0};
    eval_top(&E, in->model_items, &global, &seen, in->cluster_items != NULL);
    if (in->cluster_items) {
        Blocks from_file = {0};
        eval_top(&E, in->cluster_items, &global, &from_file, false);
        if (!from_file.first[BLOCK_CLUSTER]) {
            const SourceFile *f = in->cluster_items ? in->cluster_items->loc.file : NULL;
            diag_error(d, (Loc){f, 1, 1, 1}, "no cluster block in the --cluster file");
        }
        for (int k = 0; k < 4; k++)
            if (k != BLOCK_CLUSTER && from_file.first[k])
                diag_error(d, from_file.first[k]->loc, "a --cluster file holds only a cluster (and constants)");
    }
    for (int i = 0; i < in->n_defines; i++)
        if (!E.define_used[i] && in->define_binds[i])
            diag_error(d, in->define_binds[i]->name_loc, "-D %s: no constant or field of that name",
                       in->define_binds[i]->name);
    Loc whole = {spec->files ? spec->files[0] : NULL, 1, 1, 1}; /* about the whole file: its start, like any error */
    if (!seen.first[BLOCK_MODEL]) diag_error(d, whole, "no model block");
    else if (!spec->graph->n_layers && !d->errors) diag_error(d, spec->graph->loc, "the model has no layers");
    if (!spec->cluster && !d->errors)
        diag_error(d, whole, "no cluster block (include a cluster file, or pass --cluster FILE)");
    if (!spec->train && !d->errors) diag_error(d, whole, "no train block");
    if (!d->errors) fp16_precision(spec, d);
    if (!d->errors) spec->host_target = spec->cluster->device == DEVICE_CPU; /* until --target says otherwise */
    return d->errors == 0;
}
