/*
 * toolcall_conv.c - converting tool-call parameter values to JSON by the
 * tool's schema, and a small Python-literal reader (the part of
 * ast.literal_eval the model uses when it writes dicts and lists in Python
 * syntax). Semantics are in toolcall.h.
 */
#include "tools/toolcall.h"

#include "common/err.h"
#include "common/text.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* strings                                                                  */

int tc_utf8_fix(struct buf *out, const char *s, size_t n)
{
    static const char repl[] = "\xef\xbf\xbd";
    size_t i = 0;
    while (i < n) {
        /* copy the longest valid run in one append */
        size_t j = i;
        while (j < n) {
            if ((unsigned char)s[j] < 0x80) {
                if (!s[j])
                    break;
                j++;
                continue;
            }
            uint32_t cp;
            int l = utf8_decode(s + j, n - j, &cp);
            if (!l)
                break;
            j += (size_t)l;
        }
        if (j > i && buf_append(out, s + i, j - i) < 0)
            return ERR_NOMEM;
        if (j < n) {
            if (buf_append(out, repl, 3) < 0)
                return ERR_NOMEM;
            j++;
        }
        i = j;
    }
    if (!out->p && buf_reserve(out, 0) < 0)
        return ERR_NOMEM;
    return 0;
}

/* A cJSON string from arbitrary bytes (fixed up to valid UTF-8). */
static cJSON *make_string(const char *s, size_t n)
{
    struct buf b = { 0 };
    if (tc_utf8_fix(&b, s, n) < 0)
        return NULL;
    cJSON *j = cJSON_CreateString(b.p);
    buf_free(&b);
    return j;
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static void trim(const char **s, size_t *n)
{
    while (*n && is_ws(**s))
        (*s)++, (*n)--;
    while (*n && is_ws((*s)[*n - 1]))
        (*n)--;
}

static int lower_eq(const char *s, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    if (n != l)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (tolower((unsigned char)s[i]) != lit[i])
            return 0;
    return 1;
}

static int prefix_ci(const char *s, const char *pre)
{
    for (; *pre; s++, pre++)
        if (tolower((unsigned char)*s) != *pre)
            return 0;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* numbers                                                                  */

/* A decimal integer from its digits (no sign, no underscores): a plain
 * number when a double holds it exactly, else the digits as raw JSON. */
static cJSON *make_int(int neg, const char *digits, size_t n)
{
    while (n > 1 && digits[0] == '0')
        digits++, n--;
    if (n <= 15) {
        double v = 0;
        for (size_t i = 0; i < n; i++)
            v = v * 10 + (digits[i] - '0');
        return cJSON_CreateNumber(neg && v != 0 ? -v : v);
    }
    char *raw = malloc(n + 2);
    if (!raw)
        return NULL;
    size_t k = 0;
    if (neg)
        raw[k++] = '-';
    memcpy(raw + k, digits, n);
    raw[k + n] = 0;
    cJSON *j = cJSON_CreateRaw(raw);
    free(raw);
    return j;
}

/* Copies s[0..n) without '_' into d (room n+1) after checking that every
 * underscore sits between two digits, as Python requires. */
static int strip_underscores(const char *s, size_t n, char *d, size_t *dn, int hex)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '_') {
            int ok_prev = i > 0 && (hex ? isxdigit((unsigned char)s[i - 1])
                                        : isdigit((unsigned char)s[i - 1]));
            int ok_next = i + 1 < n && (hex ? isxdigit((unsigned char)s[i + 1])
                                            : isdigit((unsigned char)s[i + 1]));
            if (!ok_prev || !ok_next)
                return -1;
            continue;
        }
        d[k++] = s[i];
    }
    d[k] = 0;
    *dn = k;
    return 0;
}

/* Python int(s) for base 10: [+-]digits with single underscores. */
static cJSON *parse_int10(const char *s, size_t n)
{
    int neg = 0;
    if (n && (s[0] == '+' || s[0] == '-'))
        neg = s[0] == '-', s++, n--;
    if (!n || !isdigit((unsigned char)s[0]))
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]) && s[i] != '_')
            return NULL;
    char *d = malloc(n + 1);
    size_t dn;
    if (!d)
        return NULL;
    cJSON *j = NULL;
    if (strip_underscores(s, n, d, &dn, 0) == 0)
        j = make_int(neg, d, dn);
    free(d);
    return j;
}

/* Python float(s) for finite decimal values; *ok = 0 when s is not one. */
static double parse_float(const char *s, size_t n, int *ok)
{
    *ok = 0;
    if (!n || n > 4096)
        return 0;
    size_t i = 0, digits = 0;
    if (s[i] == '+' || s[i] == '-')
        i++;
    for (; i < n && (isdigit((unsigned char)s[i]) || s[i] == '_'); i++)
        digits += s[i] != '_';
    if (i < n && s[i] == '.')
        for (i++; i < n && (isdigit((unsigned char)s[i]) || s[i] == '_'); i++)
            digits += s[i] != '_';
    if (!digits)
        return 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t ed = 0;
        for (; i < n && (isdigit((unsigned char)s[i]) || s[i] == '_'); i++)
            ed += s[i] != '_';
        if (!ed)
            return 0;
    }
    if (i != n)
        return 0;
    char tmp[4100];
    size_t dn;
    if (strip_underscores(s, n, tmp, &dn, 0) < 0)
        return 0;
    errno = 0;
    char *end;
    double v = strtod(tmp, &end);
    if (end != tmp + dn || !isfinite(v))
        return 0;
    *ok = 1;
    return v;
}

/* A float as JSON: integral values become integers (vLLM's rule). */
static cJSON *make_float(double v)
{
    if (v == floor(v) && fabs(v) < 9007199254740992.0)
        return cJSON_CreateNumber(v == 0 ? 0 : v);
    return cJSON_CreateNumber(v);
}

/* ------------------------------------------------------------------------ */
/* Python literals                                                          */

struct py {
    const char *s;
    size_t n, i;
    int depth;
};

static void py_ws(struct py *q)
{
    while (q->i < q->n) {
        char c = q->s[q->i];
        if (is_ws(c))
            q->i++;
        else if (c == '\\' && q->i + 1 < q->n && q->s[q->i + 1] == '\n')
            q->i += 2; /* explicit line joining */
        else if (c == '#')
            while (q->i < q->n && q->s[q->i] != '\n')
                q->i++;
        else
            break;
    }
}

static cJSON *py_value(struct py *q);

static int put_cp(struct buf *b, uint32_t cp)
{
    char u[4];
    if (cp >= 0xd800 && cp <= 0xdfff)
        cp = 0xfffd; /* a lone surrogate cannot be UTF-8 */
    int l = utf8_encode(cp, u);
    if (!l)
        return -1;
    return buf_append(b, u, (size_t)l);
}

/* One string literal (prefix already checked) appended to b; -1 if bad. */
static int py_string1(struct py *q, int raw, struct buf *b)
{
    char quote = q->s[q->i];
    int triple = q->i + 2 < q->n && q->s[q->i + 1] == quote && q->s[q->i + 2] == quote;
    q->i += triple ? 3 : 1;
    for (;;) {
        if (q->i >= q->n)
            return -1;
        char c = q->s[q->i];
        if (c == quote) {
            if (!triple) {
                q->i++;
                return 0;
            }
            if (q->i + 2 < q->n && q->s[q->i + 1] == quote && q->s[q->i + 2] == quote) {
                q->i += 3;
                return 0;
            }
        }
        if (c == '\n' && !triple)
            return -1;
        if (c != '\\') {
            if (buf_putc(b, c) < 0)
                return -1;
            q->i++;
            continue;
        }
        if (q->i + 1 >= q->n)
            return -1;
        char e = q->s[q->i + 1];
        if (raw) { /* r'': the backslash stays, and it still escapes the quote */
            if (buf_putc(b, '\\') < 0 || buf_putc(b, e) < 0)
                return -1;
            q->i += 2;
            continue;
        }
        q->i += 2;
        int r = 0;
        switch (e) {
        case '\n': break;
        case '\\': r = buf_putc(b, '\\'); break;
        case '\'': r = buf_putc(b, '\''); break;
        case '"': r = buf_putc(b, '"'); break;
        case 'a': r = buf_putc(b, '\a'); break;
        case 'b': r = buf_putc(b, '\b'); break;
        case 'f': r = buf_putc(b, '\f'); break;
        case 'n': r = buf_putc(b, '\n'); break;
        case 'r': r = buf_putc(b, '\r'); break;
        case 't': r = buf_putc(b, '\t'); break;
        case 'v': r = buf_putc(b, '\v'); break;
        case 'x':
        case 'u':
        case 'U': {
            int nd = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            uint32_t cp = 0;
            if (q->i + (size_t)nd > q->n)
                return -1;
            for (int k = 0; k < nd; k++) {
                int h = hex_digit((unsigned char)q->s[q->i + (size_t)k]);
                if (h < 0)
                    return -1;
                cp = cp * 16 + (uint32_t)h;
            }
            q->i += (size_t)nd;
            if (cp > 0x10ffff)
                return -1;
            r = put_cp(b, cp);
            break;
        }
        default:
            if (e >= '0' && e <= '7') {
                uint32_t cp = (uint32_t)(e - '0');
                for (int k = 0; k < 2 && q->i < q->n && q->s[q->i] >= '0' && q->s[q->i] <= '7'; k++)
                    cp = cp * 8 + (uint32_t)(q->s[q->i++] - '0');
                r = put_cp(b, cp);
            } else { /* unknown escapes keep the backslash */
                r = buf_putc(b, '\\');
                if (!r)
                    r = buf_putc(b, e);
            }
        }
        if (r < 0)
            return -1;
    }
}

/* Length of a string prefix (r, u, b, f, rb... any case) before a quote at
 * q->i, or -1 when no string starts here. *raw and *bad report the kind. */
static int py_str_prefix(struct py *q, int *raw, int *bad)
{
    size_t i = q->i;
    *raw = *bad = 0;
    while (i < q->n && i - q->i < 2 && strchr("rRuUbBfF", q->s[i]) && q->s[i]) {
        char c = (char)tolower((unsigned char)q->s[i]);
        if (c == 'r')
            *raw = 1;
        if (c == 'b' || c == 'f')
            *bad = 1; /* bytes and f-strings are not JSON / not literals */
        i++;
    }
    if (i < q->n && (q->s[i] == '\'' || q->s[i] == '"'))
        return (int)(i - q->i);
    return -1;
}

static cJSON *py_strings(struct py *q)
{
    struct buf b = { 0 };
    int any = 0;
    for (;;) {
        int raw, bad, pl = py_str_prefix(q, &raw, &bad);
        if (pl < 0)
            break;
        if (bad)
            goto fail;
        q->i += (size_t)pl;
        if (py_string1(q, raw, &b) < 0)
            goto fail;
        any = 1;
        py_ws(q); /* 'a' 'b' is one string */
    }
    if (!any)
        goto fail;
    cJSON *j = make_string(b.p ? b.p : "", b.len);
    buf_free(&b);
    return j;
fail:
    buf_free(&b);
    return NULL;
}

static cJSON *py_number(struct py *q)
{
    int neg = 0;
    if (q->s[q->i] == '-' || q->s[q->i] == '+') {
        neg = q->s[q->i] == '-';
        q->i++;
        py_ws(q);
    }
    size_t b = q->i;
    /* 0x / 0o / 0b integers */
    if (q->i + 1 < q->n && q->s[q->i] == '0' && strchr("xXoObB", q->s[q->i + 1]) &&
        q->s[q->i + 1]) {
        int base = tolower((unsigned char)q->s[q->i + 1]) == 'x'   ? 16
                   : tolower((unsigned char)q->s[q->i + 1]) == 'o' ? 8
                                                                   : 2;
        q->i += 2;
        uint64_t v = 0;
        int nd = 0;
        for (; q->i < q->n; q->i++) {
            char c = q->s[q->i];
            if (c == '_')
                continue;
            int h = hex_digit((unsigned char)c);
            if (h < 0 || h >= base)
                break;
            if (v > (UINT64_MAX - (uint64_t)h) / (uint64_t)base)
                return NULL;
            v = v * (uint64_t)base + (uint64_t)h;
            nd++;
        }
        if (!nd || v > (1ull << 53))
            return NULL;
        return cJSON_CreateNumber(neg ? -(double)v : (double)v);
    }
    int is_float = 0;
    while (q->i < q->n) {
        char c = q->s[q->i];
        if (isdigit((unsigned char)c) || c == '_')
            q->i++;
        else if (c == '.' || c == 'e' || c == 'E') {
            is_float = 1;
            q->i++;
            if ((c == 'e' || c == 'E') && q->i < q->n && (q->s[q->i] == '+' || q->s[q->i] == '-'))
                q->i++;
        } else
            break;
    }
    if (q->i < q->n &&
        (q->s[q->i] == 'j' || q->s[q->i] == 'J' || isalpha((unsigned char)q->s[q->i])))
        return NULL; /* complex or garbage */
    size_t len = q->i - b;
    if (!len)
        return NULL;
    if (!is_float) {
        /* Python refuses leading zeros in decimal literals ("007") */
        if (q->s[b] == '0') {
            for (size_t k = b; k < q->i; k++)
                if (q->s[k] != '0' && q->s[k] != '_')
                    return NULL;
        }
        cJSON *j = parse_int10(q->s + b, len);
        if (j && neg) {
            cJSON_Delete(j);
            j = NULL;
            char *t = malloc(len + 2);
            if (t) {
                t[0] = '-';
                memcpy(t + 1, q->s + b, len);
                j = parse_int10(t, len + 1);
                free(t);
            }
        }
        return j;
    }
    int ok;
    double v = parse_float(q->s + b, len, &ok);
    if (!ok)
        return NULL;
    return cJSON_CreateNumber(neg ? -v : v);
}

/* A dict key as json.dumps writes it: str as is, numbers/bools/None as text. */
static char *py_key(const cJSON *k)
{
    if (cJSON_IsString(k))
        return strdup(k->valuestring);
    if (cJSON_IsRaw(k))
        return strdup(k->valuestring);
    if (cJSON_IsNumber(k))
        return cJSON_PrintUnformatted(k);
    if (cJSON_IsTrue(k))
        return strdup("true");
    if (cJSON_IsFalse(k))
        return strdup("false");
    if (cJSON_IsNull(k))
        return strdup("null");
    return NULL; /* tuples cannot be JSON keys */
}

static cJSON *py_container(struct py *q, char open)
{
    char close = open == '{' ? '}' : open == '[' ? ']' : ')';
    q->i++;
    py_ws(q);
    cJSON *out = open == '{' ? cJSON_CreateObject() : cJSON_CreateArray();
    if (!out)
        return NULL;
    if (q->i < q->n && q->s[q->i] == close) {
        q->i++;
        return out;
    }
    int count = 0, trailing_comma = 0;
    for (;;) {
        cJSON *k = py_value(q);
        if (!k)
            goto fail;
        py_ws(q);
        if (open == '{') {
            if (q->i >= q->n || q->s[q->i] != ':') { /* a set: not JSON */
                cJSON_Delete(k);
                goto fail;
            }
            q->i++;
            cJSON *v = py_value(q);
            char *key = py_key(k);
            cJSON_Delete(k);
            if (!v || !key) {
                cJSON_Delete(v);
                free(key);
                goto fail;
            }
            /* a repeated key keeps its first place and the last value, as in Python */
            if (cJSON_GetObjectItemCaseSensitive(out, key))
                cJSON_ReplaceItemInObjectCaseSensitive(out, key, v);
            else
                cJSON_AddItemToObject(out, key, v);
            free(key);
        } else {
            cJSON_AddItemToArray(out, k);
        }
        count++;
        py_ws(q);
        if (q->i >= q->n)
            goto fail;
        if (q->s[q->i] == ',') {
            q->i++;
            py_ws(q);
            trailing_comma = 1;
            if (q->i < q->n && q->s[q->i] == close)
                break;
            trailing_comma = 0;
            continue;
        }
        if (q->s[q->i] == close)
            break;
        goto fail;
    }
    q->i++;
    if (open == '(' && count == 1 && !trailing_comma) {
        /* (x) is just x */
        cJSON *only = cJSON_DetachItemFromArray(out, 0);
        cJSON_Delete(out);
        return only;
    }
    return out;
fail:
    cJSON_Delete(out);
    return NULL;
}

static int word_at(struct py *q, const char *w)
{
    size_t l = strlen(w);
    if (q->n - q->i < l || memcmp(q->s + q->i, w, l))
        return 0;
    if (q->i + l < q->n) {
        char c = q->s[q->i + l];
        if (isalnum((unsigned char)c) || c == '_')
            return 0;
    }
    q->i += l;
    return 1;
}

static cJSON *py_value(struct py *q)
{
    py_ws(q);
    if (q->i >= q->n || q->depth >= TC_MAX_PY_DEPTH)
        return NULL;
    char c = q->s[q->i];
    cJSON *r = NULL;
    q->depth++;
    if (c == '{' || c == '[' || c == '(')
        r = py_container(q, c);
    else if (c == '-' || c == '+' || c == '.' || isdigit((unsigned char)c))
        r = py_number(q);
    else if (word_at(q, "True"))
        r = cJSON_CreateTrue();
    else if (word_at(q, "False"))
        r = cJSON_CreateFalse();
    else if (word_at(q, "None"))
        r = cJSON_CreateNull();
    else
        r = py_strings(q);
    q->depth--;
    return r;
}

cJSON *tc_py_literal(const char *s, size_t n)
{
    trim(&s, &n);
    struct py q = { s, n, 0, 0 };
    cJSON *j = py_value(&q);
    if (!j)
        return NULL;
    py_ws(&q);
    if (q.i != q.n) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

/* ------------------------------------------------------------------------ */
/* schema-driven conversion                                                 */

/* The first non-null type named by s ("type" string or list); sets *nullable
 * when "null" appears. NULL when s names none. */
static const char *first_type(const cJSON *s, int *nullable)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(s, "type");
    const char *found = NULL;
    if (cJSON_IsString(t)) {
        if (!strcmp(t->valuestring, "null"))
            *nullable = 1;
        else
            found = t->valuestring;
    } else if (cJSON_IsArray(t)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, t)
        {
            if (!cJSON_IsString(e))
                continue;
            if (!strcmp(e->valuestring, "null"))
                *nullable = 1;
            else if (!found)
                found = e->valuestring;
        }
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "nullable")))
        *nullable = 1;
    return found;
}

static const char *schema_type(const cJSON *s, int *nullable)
{
    *nullable = 0;
    const char *type = first_type(s, nullable);
    const char *keys[] = { "anyOf", "oneOf" };
    for (int k = 0; k < 2; k++) {
        const cJSON *alts = cJSON_GetObjectItemCaseSensitive(s, keys[k]);
        const cJSON *e;
        if (!cJSON_IsArray(alts))
            continue;
        cJSON_ArrayForEach(e, alts)
        {
            if (!cJSON_IsObject(e))
                continue;
            const char *t = first_type(e, nullable);
            if (t && !type)
                type = t;
        }
    }
    if (type)
        return type;
    if (cJSON_GetObjectItemCaseSensitive(s, "type"))
        return "null"; /* only "null" was named */
    if (cJSON_GetObjectItemCaseSensitive(s, "properties"))
        return "object";
    if (cJSON_GetObjectItemCaseSensitive(s, "items"))
        return "array";
    return "string";
}

/* cJSON reads 1e400 as infinity, which JSON cannot carry back out. */
static int has_nonfinite(const cJSON *j)
{
    for (; j; j = j->next)
        if ((cJSON_IsNumber(j) && !isfinite(j->valuedouble)) || has_nonfinite(j->child))
            return 1;
    return 0;
}

static cJSON *convert_json_like(const char *s, size_t n, const char *raw, size_t rn)
{
    const char *end = NULL;
    cJSON *j = n ? cJSON_ParseWithLengthOpts(s, n, &end, 0) : NULL;
    if (j) {
        const char *e = end;
        while (e < s + n && is_ws(*e))
            e++;
        if (e != s + n || has_nonfinite(j)) {
            cJSON_Delete(j);
            j = NULL;
        }
    }
    if (j && cJSON_IsString(j)) {
        /* double-encoded: "{'key': 'value'}" as a JSON string */
        cJSON *inner = tc_py_literal(j->valuestring, strlen(j->valuestring));
        cJSON_Delete(j);
        return inner ? inner : make_string(raw, rn);
    }
    if (j)
        return j;
    j = tc_py_literal(s, n);
    return j ? j : make_string(raw, rn);
}

/* Replaces invalid UTF-8 in every string and key of a parsed tree (cJSON
 * passes bytes through). 0, or -1 when memory runs out. */
static int fix_tree(cJSON *j)
{
    for (cJSON *c = j; c; c = c->next) {
        char **fields[2] = { &c->valuestring, &c->string };
        for (int k = 0; k < 2; k++) {
            char *s = *fields[k];
            if (!s || (k == 0 && !cJSON_IsString(c)))
                continue;
            size_t n = strlen(s);
            if (utf8_valid(s, n, NULL))
                continue;
            struct buf b = { 0 };
            if (tc_utf8_fix(&b, s, n) < 0)
                return -1;
            /* cJSON frees these with its allocator, which is malloc here */
            free(s);
            *fields[k] = buf_detach(&b);
            if (!*fields[k])
                return -1;
        }
        if (c->child && fix_tree(c->child) < 0)
            return -1;
    }
    return 0;
}

cJSON *tc_convert(const cJSON *prop, const char *raw, size_t rn)
{
    if (!cJSON_IsObject(prop))
        return make_string(raw, rn);
    int nullable;
    const char *type = schema_type(prop, &nullable);
    const char *s = raw;
    size_t n = rn;
    trim(&s, &n);
    int is_null = lower_eq(s, n, "null") || lower_eq(s, n, "none");
    /* for a nullable type the text must be exactly null/none: "\nNone" in a
     * nullable string is that string */
    if (nullable && (lower_eq(raw, rn, "null") || lower_eq(raw, rn, "none")))
        return cJSON_CreateNull();
    const char *strs[] = { "string", "str", "text", "varchar", "char", "enum" };
    for (size_t k = 0; k < sizeof strs / sizeof strs[0]; k++)
        if (lower_eq(type, strlen(type), strs[k]))
            return make_string(raw, rn);
    if (is_null)
        return cJSON_CreateNull();
    cJSON *j = NULL;
    if (prefix_ci(type, "int") || prefix_ci(type, "uint") || prefix_ci(type, "long") ||
        prefix_ci(type, "short") || prefix_ci(type, "unsigned")) {
        j = parse_int10(s, n);
    } else if (prefix_ci(type, "num") || prefix_ci(type, "float")) {
        int ok;
        double v = parse_float(s, n, &ok);
        if (ok)
            j = make_float(v);
    } else if (lower_eq(type, strlen(type), "boolean") || lower_eq(type, strlen(type), "bool") ||
               lower_eq(type, strlen(type), "binary")) {
        return cJSON_CreateBool(lower_eq(s, n, "true"));
    } else if (lower_eq(type, strlen(type), "object") || lower_eq(type, strlen(type), "array") ||
               prefix_ci(type, "dict") || prefix_ci(type, "list")) {
        j = convert_json_like(s, n, raw, rn);
    } else {
        j = tc_py_literal(s, n);
    }
    if (!j)
        return make_string(raw, rn);
    if (fix_tree(j) < 0) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}
