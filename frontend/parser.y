/* parser.y — the .gv grammar (grammars/gv.ebnf is its reference form): a pure,
 * reentrant LALR(1) parser that builds the syntax tree of frontend.h.
 * Statements are separated by newlines or optional semicolons; the grammar
 * needs neither, since no statement can continue into the next one. */

%require "3.8"
%define api.pure full
%locations
%define parse.error custom
%define parse.lac full
%expect 0
%param {yyscan_t scanner} {ParseCtx *ctx}

%code requires {
#include "frontend/frontend.h"
typedef void *yyscan_t;
}

%code {
#include <string.h>

/* flex's bridged scanner takes no ParseCtx: it keeps it as its extra data. */
int yylex(YYSTYPE *yylval, YYLTYPE *yylloc, yyscan_t scanner);
#define yylex(v, l, s, c) yylex(v, l, s)
static void yyerror(YYLTYPE *l, yyscan_t scanner, ParseCtx *ctx, const char *msg);
static Loc loc_of(ParseCtx *ctx, YYLTYPE l);
static Loc span(ParseCtx *ctx, YYLTYPE a, YYLTYPE b);
static Expr *expr_new(ParseCtx *ctx, ExprKind kind, Loc loc);
static Stmt *stmt_new(ParseCtx *ctx, StmtKind kind, Loc loc);
static Expr *binary(ParseCtx *ctx, int op, Expr *l, Expr *r);
}

%union {
    struct { int64_t i; double f; Dim dim; } num;
    int64_t i;
    const char *s;
    Expr *expr;
    Arg *arg;
    Stmt *stmt;
    struct { Stmt *head, *tail; } list;
    struct { Arg *head, *tail; } args;
    int block;
}

%token MODEL "model" CLUSTER "cluster" TRAIN "train" PLAN "plan"
%token REPEAT "repeat" INCLUDE "include"
%token <i> BOOL "true or false"
%token <num> INTEGER "integer" FLOATNUM "number"
%token <s> IDENT "identifier" STRING "string"

%type <list> stmts file
%type <stmt> stmt block binding
%type <expr> expr call
%type <arg> arg
%type <args> args arglist
%type <block> block_kind
%type <s> opt_name

%left '+' '-'
%left '*' '/' '%'
%precedence NEG

%%

/* file = { stmt | ";" } */
file: stmts                       { ctx->result = $1.head; }
    ;

stmts: %empty                     { $$.head = $$.tail = NULL; }
     | stmts stmt                 { $$ = $1;
                                    if (!$$.head) $$.head = $2; else $$.tail->next = $2;
                                    $$.tail = $2; }
     | stmts ';'                  { $$ = $1; }
     | stmts error                { $$ = $1; }
     ;

/* stmt = binding | [ident ":"] call | "repeat" expr "{" stmts "}"
 *      | "include" string | block */
stmt: binding
    | call                        { $$ = stmt_new(ctx, STMT_LAYER, $1->loc); $$->value = $1; }
    | IDENT ':' call              { $$ = stmt_new(ctx, STMT_LAYER, span(ctx, @1, @3));
                                    $$->name = $1; $$->name_loc = loc_of(ctx, @1); $$->value = $3; }
    | REPEAT expr '{' stmts '}'   { $$ = stmt_new(ctx, STMT_REPEAT, loc_of(ctx, @1));
                                    $$->value = $2; $$->body = $4.head; }
    | INCLUDE STRING              { $$ = stmt_new(ctx, STMT_INCLUDE, span(ctx, @1, @2));
                                    $$->name = $2; $$->name_loc = loc_of(ctx, @2); }
    | block
    ;

/* binding = ident "=" expr */
binding: IDENT '=' expr           { $$ = stmt_new(ctx, STMT_BIND, loc_of(ctx, @1));
                                    $$->name = $1; $$->name_loc = loc_of(ctx, @1); $$->value = $3; }
       ;

/* block = ("model" | "cluster" | "train" | "plan") [ident] "{" stmts "}" */
block: block_kind opt_name '{' stmts '}'
                                  { $$ = stmt_new(ctx, STMT_BLOCK, loc_of(ctx, @1));
                                    $$->block = (BlockKind)$1; $$->name = $2;
                                    $$->name_loc = loc_of(ctx, @2); $$->body = $4.head; }
     ;

block_kind: MODEL                 { $$ = BLOCK_MODEL; }
          | CLUSTER               { $$ = BLOCK_CLUSTER; }
          | TRAIN                 { $$ = BLOCK_TRAIN; }
          | PLAN                  { $$ = BLOCK_PLAN; }
          ;

opt_name: %empty                  { $$ = NULL; }
        | IDENT
        ;

/* call = ident "(" [arg {"," arg}] ")" */
call: IDENT '(' args ')'          { $$ = expr_new(ctx, EXPR_CALL, span(ctx, @1, @4));
                                    $$->s = $1; $$->args = $3.head; }
    ;

args: %empty                      { $$.head = $$.tail = NULL; }
    | arglist
    | arglist ','                 /* a trailing comma is fine */
    ;

arglist: arg                      { $$.head = $$.tail = $1; }
       | arglist ',' arg          { $$ = $1; $$.tail->next = $3; $$.tail = $3; }
       ;

/* arg = [ident "="] expr */
arg: expr                         { $$ = arena_alloc(ctx->arena, sizeof *$$); $$->value = $1; }
   | IDENT '=' expr               { $$ = arena_alloc(ctx->arena, sizeof *$$); $$->name = $1;
                                    $$->name_loc = loc_of(ctx, @1); $$->value = $3; }
   ;

/* expr = number [unit] | string | ident | call | "[" args "]" | "(" expr ")"
 *      | "-" expr | expr ("+" | "-" | "*" | "/" | "%") expr */
expr: INTEGER                     { $$ = expr_new(ctx, EXPR_INT, loc_of(ctx, @1));
                                    $$->i = $1.i; $$->dim = $1.dim; }
    | FLOATNUM                    { $$ = expr_new(ctx, EXPR_FLOAT, loc_of(ctx, @1));
                                    $$->f = $1.f; $$->dim = $1.dim; }
    | BOOL                        { $$ = expr_new(ctx, EXPR_BOOL, loc_of(ctx, @1)); $$->i = $1; }
    | STRING                      { $$ = expr_new(ctx, EXPR_STRING, loc_of(ctx, @1)); $$->s = $1; }
    | IDENT                       { $$ = expr_new(ctx, EXPR_NAME, loc_of(ctx, @1)); $$->s = $1; }
    | call
    | '[' args ']'                { $$ = expr_new(ctx, EXPR_LIST, span(ctx, @1, @3)); $$->args = $2.head; }
    | '(' expr ')'                { $$ = $2; }
    | '-' expr %prec NEG          { $$ = expr_new(ctx, EXPR_NEG, span(ctx, @1, @2)); $$->lhs = $2; }
    | expr '+' expr               { $$ = binary(ctx, '+', $1, $3); }
    | expr '-' expr               { $$ = binary(ctx, '-', $1, $3); }
    | expr '*' expr               { $$ = binary(ctx, '*', $1, $3); }
    | expr '/' expr               { $$ = binary(ctx, '/', $1, $3); }
    | expr '%' expr               { $$ = binary(ctx, '%', $1, $3); }
    ;

%%

static Loc loc_of(ParseCtx *ctx, YYLTYPE l) {
    return (Loc){ctx->file, l.first_line, l.first_column, l.last_line == l.first_line ? l.last_column : l.first_column + 1};
}

/* From the start of a to the end of b (clipped to a's line). */
static Loc span(ParseCtx *ctx, YYLTYPE a, YYLTYPE b) {
    Loc l = loc_of(ctx, a);
    if (b.last_line == a.first_line) l.end_col = b.last_column;
    return l;
}

/* A node of the tree; the MAX_EXPRS-th reports the file too large, and the
 * scanner then ends it (the parser's error at that end, on this line, stays quiet). */
static Expr *expr_new(ParseCtx *ctx, ExprKind kind, Loc loc) {
    if (++ctx->n_exprs == MAX_EXPRS) {
        diag_error(ctx->diag, loc, "the file holds more than %d expression terms", MAX_EXPRS - 1);
        ctx->stop = true;
        ctx->last_error_line = loc.line;
    }
    Expr *e = arena_alloc(ctx->arena, sizeof *e);
    e->kind = kind;
    e->loc = loc;
    return e;
}

static Stmt *stmt_new(ParseCtx *ctx, StmtKind kind, Loc loc) {
    Stmt *s = arena_alloc(ctx->arena, sizeof *s);
    s->kind = kind;
    s->loc = loc;
    return s;
}

static Expr *binary(ParseCtx *ctx, int op, Expr *l, Expr *r) {
    Loc loc = l->loc;
    if (r->loc.line == loc.line) loc.end_col = r->loc.end_col;
    Expr *e = expr_new(ctx, EXPR_BINARY, loc);
    e->op = op;
    e->lhs = l;
    e->rhs = r;
    return e;
}

/* "syntax error: unexpected X; expected Y, Z or W". Only the first error of a
 * line is shown: the rest are usually its echoes. */
static int yyreport_syntax_error(const yypcontext_t *pc, yyscan_t scanner, ParseCtx *ctx) {
    (void)scanner;
    const YYLTYPE *l = yypcontext_location(pc);
    if (l->first_line == ctx->last_error_line) return 0;
    ctx->last_error_line = l->first_line;
    enum { MAX_EXPECTED = 24 };
    yysymbol_kind_t expected[MAX_EXPECTED];
    int n = yypcontext_expected_tokens(pc, expected, MAX_EXPECTED);
    yysymbol_kind_t got = yypcontext_token(pc);
    const char *msg = arena_printf(ctx->arena, "syntax error: unexpected %s",
                                   got == YYSYMBOL_YYEMPTY ? "end of input" : yysymbol_name(got));
    for (int i = 0; i < n; i++)
        msg = arena_printf(ctx->arena, "%s%s%s", msg, i == 0 ? "; expected " : i == n - 1 ? " or " : ", ",
                           yysymbol_name(expected[i]));
    diag_error(ctx->diag, loc_of(ctx, *l), "%s", msg);
    return 0;
}

/* Errors that are not about a token: the parser's stack running out. */
static void yyerror(YYLTYPE *l, yyscan_t scanner, ParseCtx *ctx, const char *msg) {
    (void)scanner;
    if (strcmp(msg, "memory exhausted") == 0) msg = "the input nests too deeply";
    diag_error(ctx->diag, loc_of(ctx, *l), "%s", msg);
}
