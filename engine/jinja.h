/*
 * jinja.h - the small Jinja interpreter behind engine/template (internal
 * header; only engine/template.c and engine/jinja_*.c include it).
 *
 * Layers, one file each:
 *   jinja_lex.c    source -> tokens (Jinja2's lexer rules with trim_blocks and
 *                  lstrip_blocks on, as transformers sets them up)
 *   jinja_parse.c  tokens -> syntax tree (jn_*)
 *   jinja_value.c  values with Python semantics: str()/repr(), json.dumps,
 *                  equality, ordering, truthiness, JSON/cJSON input
 *   jinja_eval.c   runs the tree: statements, expressions, scopes
 *   jinja_lib.c    filters, tests, string/dict methods, global functions
 *
 * Memory: everything lives in arenas. The tree is in the template's arena;
 * every value made while rendering is in the render's arena, freed at once
 * when the render ends. Values are small structs passed by value; strings are
 * immutable, lists and dicts are only mutated while being built (and
 * namespaces by `set ns.x`). The render arena has a byte cap, so a hostile
 * template that builds huge strings fails with an error instead of exhausting
 * memory.
 */
#ifndef LODE_ENGINE_JINJA_H
#define LODE_ENGINE_JINJA_H

#include "common/buf.h"

#include <stddef.h>
#include <stdint.h>

/* ---- arena */

struct jchunk;
struct jarena {
    struct jchunk *head;
    char *cur;
    size_t left;
    size_t used;  /* bytes handed out, for the cap */
    size_t limit; /* 0 = no cap */
};
/* Zeroed memory, 16-byte aligned, or NULL (with err_set) at the cap / OOM. */
void *jinja_alloc(struct jarena *a, size_t n);
void jinja_arena_free(struct jarena *a);

/* ---- values */

enum jv_type {
    JV_UNDEF, /* Jinja2's default Undefined; u.s may hold the missing name */
    JV_NONE,
    JV_BOOL,
    JV_INT,
    JV_FLOAT,
    JV_STR,
    JV_LIST, /* also tuples (u.l->tuple) */
    JV_DICT,
    JV_NS,     /* namespace(): a dict whose attributes can be assigned */
    JV_MACRO,  /* u.node: the macro statement */
    JV_FUNC,   /* u.i: a global function id (JF_*) */
    JV_METHOD, /* u.me: a bound string/dict/loop method */
    JV_LOOP,   /* u.lp: the `loop` object of a for loop */
};

struct jstr {
    size_t len;
    char p[]; /* len bytes + NUL */
};
struct jv;
struct jlist {
    size_t n, cap;
    struct jv *v;
    int tuple;
};
struct jdict {
    size_t n, cap;
    struct jv *k, *v; /* insertion order, like Python dicts */
};
struct jnode;
struct jmethod;
struct jloop;

struct jv {
    int t;
    union {
        int b;
        int64_t i;
        double f;
        struct jstr *s;
        struct jlist *l;
        struct jdict *d;
        const struct jnode *node;
        struct jmethod *me;
        struct jloop *lp;
    } u;
};

struct jmethod {
    struct jv self;
    int id; /* JM_* in jinja_lib.c */
};

struct jloop {
    const struct jlist *items;
    size_t index0;
};

/* Constructors: scalars never fail; the others return 0 or ERR_NOMEM. */
static inline struct jv jv_undef(void) { return (struct jv){ .t = JV_UNDEF }; }
static inline struct jv jv_none(void) { return (struct jv){ .t = JV_NONE }; }
static inline struct jv jv_bool(int b) { return (struct jv){ .t = JV_BOOL, .u.b = !!b }; }
static inline struct jv jv_int(int64_t i) { return (struct jv){ .t = JV_INT, .u.i = i }; }
static inline struct jv jv_float(double f) { return (struct jv){ .t = JV_FLOAT, .u.f = f }; }
int jv_str(struct jarena *a, const char *s, size_t n, struct jv *out);
int jv_list(struct jarena *a, size_t cap, struct jv *out);
int jv_dict(struct jarena *a, size_t cap, struct jv *out);
/* Appends to a list (reallocating in the arena). */
int jv_list_push(struct jarena *a, struct jlist *l, struct jv v);
/* Python `d[k] = v`: replaces the value of an existing key in place. */
int jv_dict_set(struct jarena *a, struct jdict *d, struct jv k, struct jv v);
/* Looks a string key up; NULL when absent. */
struct jv *jv_dict_get(const struct jdict *d, const char *k, size_t n);
struct jv *jv_dict_find(const struct jdict *d, struct jv k);

int jv_truthy(struct jv v);
/* Python ==. */
int jv_equal(struct jv a, struct jv b);
/* Python ordering for <, >: sets *res to -1/0/1; error (TypeError) when the
 * types do not compare. */
int jv_compare(struct jv a, struct jv b, int *res);
/* Appends Python str(v) / repr(v). */
int jv_to_str(struct buf *b, struct jv v);
int jv_repr(struct buf *b, struct jv v);
/* Python float repr ("1.0", "1e+16", "inf"). */
int jv_float_repr(struct buf *b, double f);
/* json.dumps(v, ensure_ascii=False, indent=indent (<0: None), sort_keys).
 * Fails on values JSON cannot hold (Undefined, macros, namespaces). */
int jv_tojson(struct buf *b, struct jv v, int indent, int sort_keys);
/* A value as a new string value (str(v)). */
int jv_stringify(struct jarena *a, struct jv v, struct jv *out);
const char *jv_type_name(struct jv v);
/* Length in code points (Python len of a str). */
size_t jv_utf8_len(const char *s, size_t n);
/* Python str.isspace() for one code point. */
int jv_is_space(uint32_t cp);

/* JSON text -> value, keeping Python's int/float distinction (json.loads).
 * Errors name "what:line:col". */
int jv_parse_json(struct jarena *a, const char *text, size_t n, const char *what, struct jv *out);
/* cJSON tree -> value (integral doubles below 2^53 become ints: cJSON keeps
 * no int/float distinction). `cj` is a const cJSON *. */
int jv_from_cjson(struct jarena *a, const void *cj, struct jv *out);

/* ---- tokens */

enum jtok_type {
    JT_EOF,
    JT_TEXT, /* template data, whitespace control already applied */
    JT_BLOCK_BEGIN,
    JT_BLOCK_END,
    JT_VAR_BEGIN,
    JT_VAR_END,
    JT_NAME,
    JT_STRING, /* s/len: the unescaped value */
    JT_INT,
    JT_FLOAT,
    JT_OP, /* s/len: the operator text */
};

struct jtok {
    int type;
    int line, col;
    const char *s; /* into the source, or the arena for strings */
    size_t len;
    int64_t i;
    double f;
};

struct jtoks {
    struct jtok *v;
    size_t n, cap;
};

/* Tokenizes src (need not be NUL-terminated). Strings are unescaped into `a`.
 * On error returns ERR_INVAL with "template:L:C: ..." set. */
int jinja_lex(struct jarena *a, const char *src, size_t n, struct jtoks *out);
void jinja_toks_free(struct jtoks *t);

/* ---- syntax tree */

enum jn_kind {
    /* statements */
    JN_BODY,     /* kids: statements */
    JN_TEXT,     /* s/len */
    JN_OUTPUT,   /* a: expression */
    JN_IF,       /* a: cond, b: body, c: else (body or JN_IF for elif) */
    JN_FOR,      /* a: target, b: iterable, c: body, d: else body, e: filter */
    JN_SET,      /* a: target (JN_NAME, JN_TUPLE or JN_ATTR), b: value */
    JN_SETBLOCK, /* a: target, c: body, kids: filters (JN_FILTER with a = NULL) */
    JN_MACRO,    /* s: name, kids: params (JN_NAME), defs: default exprs (may be NULL), c: body */
    JN_BREAK,
    JN_CONTINUE,
    /* expressions */
    JN_CONST,  /* val */
    JN_NAME,   /* s/len */
    JN_ATTR,   /* a: object, s: attribute name */
    JN_ITEM,   /* a: object, b: index */
    JN_SLICE,  /* a: object, b, c, d: start, stop, step (each may be NULL) */
    JN_CALL,   /* a: callee, kids: args, kw: names (NULL for positional) */
    JN_FILTER, /* s: name, a: operand, kids/kw: extra args, op: filter id */
    JN_TEST,   /* s: name, a: operand, kids: args, op: test id */
    JN_BINOP,  /* op: JO_*, a, b */
    JN_NEG,    /* a */
    JN_POS,    /* a */
    JN_NOT,    /* a */
    JN_AND,    /* a, b */
    JN_OR,     /* a, b */
    JN_COND,   /* a: cond, b: then, c: else (may be NULL) */
    JN_LIST,   /* kids */
    JN_TUPLE,  /* kids */
    JN_DICT,   /* kids: keys, defs: values */
};

enum jo_op {
    JO_ADD,
    JO_SUB,
    JO_MUL,
    JO_DIV,
    JO_FLOORDIV,
    JO_MOD,
    JO_POW,
    JO_CONCAT,
    JO_EQ,
    JO_NE,
    JO_LT,
    JO_LE,
    JO_GT,
    JO_GE,
    JO_IN,
    JO_NOTIN,
};

struct jnode {
    int kind;
    int op;
    int line, col;
    const char *s;
    size_t len;
    struct jv val;
    struct jnode *a, *b, *c, *d, *e;
    struct jnode **kids;
    struct jnode **defs;
    const char **kw;
    size_t nkids;
};

/* Parses the tokens into a JN_BODY in arena `a`. Unknown filters and tests
 * are reported here, with their position. */
int jinja_parse(struct jarena *a, const struct jtoks *toks, struct jnode **out);

/* ---- library (jinja_lib.c) */

/* Filter and test ids by name; -1 when unknown. */
int jinja_filter_id(const char *name, size_t n);
int jinja_test_id(const char *name, size_t n);

/* ---- evaluation */

struct jlimits {
    size_t max_output;  /* bytes of rendered text */
    size_t max_memory;  /* arena bytes */
    uint64_t max_steps; /* loop iterations + calls */
    int max_depth;      /* nested macro calls / expression recursion */
};

struct jvar {
    const char *name;
    struct jv val;
};

/* Renders the tree with the given top-level variables into out. Values in
 * vars must live in `a` (or be static). */
int jinja_render(struct jarena *a, const struct jnode *root, const struct jvar *vars, size_t nvars,
                 const struct jlimits *lim, struct buf *out);

/* ---- shared with jinja_lib.c */

struct jctx;
/* Sets "template:L:C: msg" and returns ERR_INVAL. */
int jinja_err(const struct jnode *at, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int jinja_call_filter(struct jctx *cx, const struct jnode *n, struct jv in, struct jv *args,
                      const char **kw, size_t nargs, struct jv *out);
int jinja_call_test(struct jctx *cx, const struct jnode *n, struct jv in, struct jv *args,
                    size_t nargs, int *res);
int jinja_getattr(struct jctx *cx, const struct jnode *at, struct jv obj, const char *name,
                  size_t n, struct jv *out);
int jinja_call_method(struct jctx *cx, const struct jnode *at, struct jmethod *m, struct jv *args,
                      const char **kw, size_t nargs, struct jv *out);
int jinja_call_func(struct jctx *cx, const struct jnode *at, int fn, struct jv *args,
                    const char **kw, size_t nargs, struct jv *out);
struct jarena *jinja_ctx_arena(struct jctx *cx);
/* Global functions known by name (namespace, raise_exception, range, dict,
 * strftime_now); -1 when unknown. */
int jinja_func_id(const char *name);

#endif
