/* json.h — a small, strict JSON reader (RFC 8259) for the mmspcl tools. Header-only: every
   function is `static`, so any number of translation units may include it (tools/convert,
   tools/cli, tests). C99 and C++11, libc only.

   API
     json_value *json_parse(const char *text, size_t len, char *err, size_t errlen);
         Parses exactly one JSON value (surrounded by optional whitespace; a leading UTF-8 BOM is
         skipped) from text[0..len). text need not be NUL-terminated. Returns a tree the caller
         frees with json_free, or NULL with a message in err such as
             "byte 123 (line 4, column 17): expected ',' or '}' after an object member".
     json_value *json_parse_file(const char *path, char *err, size_t errlen);
         Reads a whole file (at most JSON_MAX_FILE bytes) and parses it; messages start with the
         path: "config.json: byte 123 (line 4, column 17): expected ','".
     void json_free(json_value *v);                              NULL is fine
     const json_value *json_get(const json_value *obj, const char *key);
         Member of an object (NULL when obj is NULL, not an object or has no such key). With
         duplicate keys the LAST one wins, as in Python's json module.
     const json_value *json_at(const json_value *arr, size_t i); element i of an array or NULL
     int json_int(const json_value *v, int64_t *out);
         1 when v is a number with an integral value that fits int64 (3, -7, 2.0, 1e3), else 0.
     const char *json_type_name(json_type t);                    "null", "object", ...

   VALUES (read the fields directly)
     type     JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT
     boolean  JSON_BOOL: 0 or 1
     number   JSON_NUMBER: the value as a double (strtod of the literal, C locale expected);
              is_int / integer: the literal had no fraction or exponent and fits int64 (exact)
     str, len JSON_STRING: the decoded UTF-8 bytes (escapes resolved: \uXXXX including surrogate
              pairs become UTF-8), NUL-terminated for convenience but may contain NUL ("\u0000"):
              use len
     count, items
              JSON_ARRAY: the elements; JSON_OBJECT: the members' values, in file order
     key, key_len
              set on each member of an object (decoded like strings); NULL for array elements
     offset   byte offset of the value's first character in the text (for error messages)

   STRICTNESS
     Whatever Python's json.loads rejects is rejected too, plus: invalid UTF-8 in strings, lone
     surrogates (\uD800 alone), NaN/Infinity. Nesting deeper than JSON_MAX_DEPTH (default 256)
     is refused (the parser recurses once per level, so the stack use is bounded). Numbers out
     of double range become +-inf (as strtod does) and are accepted. */
#ifndef MMSPCL_JSON_H
#define MMSPCL_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>

#ifndef JSON_MAX_DEPTH
#define JSON_MAX_DEPTH 256
#endif
#ifndef JSON_MAX_FILE
#define JSON_MAX_FILE ((size_t)1 << 30)
#endif

#if defined(__GNUC__) || defined(__clang__)
#define JSON_FN static __attribute__((unused))
#else
#define JSON_FN static
#endif

typedef enum json_type {
    JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT
} json_type;

typedef struct json_value {
    json_type type;
    int boolean;
    int is_int;
    int64_t integer;
    double number;
    char *str;
    size_t len;
    struct json_value *items;
    size_t count;
    char *key;
    size_t key_len;
    size_t offset;
} json_value;

/* ------------------------------------------------------------------------------------------ */

typedef struct json__parser {
    const unsigned char *s;
    size_t len, pos;
    char *err;
    size_t errlen;
    int failed;
} json__parser;

#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 3, 4)))
#endif
static int json__fail(json__parser *p, size_t at, const char *fmt, ...) {
    if (!p->failed && p->err && p->errlen) {
        size_t line = 1, col = 1, i, n;
        va_list ap;
        for (i = 0; i < at && i < p->len; i++) {
            if (p->s[i] == '\n') { line++; col = 1; } else col++;
        }
        n = (size_t)snprintf(p->err, p->errlen, "byte %zu (line %zu, column %zu): ", at, line, col);
        if (n < p->errlen) {
            va_start(ap, fmt);
            vsnprintf(p->err + n, p->errlen - n, fmt, ap);
            va_end(ap);
        }
    }
    p->failed = 1;
    return -1;
}

static void json__free_inner(json_value *v) {
    size_t i;
    if (!v) return;
    free(v->key);
    v->key = NULL;
    if (v->type == JSON_STRING) free(v->str);
    if (v->type == JSON_ARRAY || v->type == JSON_OBJECT) {
        for (i = 0; i < v->count; i++) json__free_inner(&v->items[i]);
        free(v->items);
    }
    v->str = NULL;
    v->items = NULL;
    v->count = 0;
}

JSON_FN void json_free(json_value *v) {
    if (!v) return;
    json__free_inner(v);
    free(v);
}

static void json__skip_ws(json__parser *p) {
    while (p->pos < p->len) {
        unsigned char c = p->s[p->pos];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') p->pos++;
        else break;
    }
}

static const char *json__describe(json__parser *p, char *buf, size_t n) {
    unsigned char c;
    if (p->pos >= p->len) return "the end of the text";
    c = p->s[p->pos];
    if (c >= 0x20 && c < 0x7f) snprintf(buf, n, "'%c'", c);
    else snprintf(buf, n, "byte 0x%02x", c);
    return buf;
}

static int json__hex4(json__parser *p, size_t at, unsigned *out) {
    unsigned v = 0;
    int i;
    if (p->len - p->pos < 4) return json__fail(p, at, "truncated \\u escape");
    for (i = 0; i < 4; i++) {
        unsigned char c = p->s[p->pos + (size_t)i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return json__fail(p, p->pos + (size_t)i, "bad hex digit in \\u escape");
    }
    p->pos += 4;
    *out = v;
    return 0;
}

/* Length of the valid UTF-8 sequence starting at s[0] (n bytes available), 0 if invalid. */
static size_t json__utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80) return 0;
        if (c == 0xe0 && s[1] < 0xa0) return 0;          /* overlong */
        if (c == 0xed && s[1] >= 0xa0) return 0;         /* surrogate */
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80) return 0;
        if (c == 0xf0 && s[1] < 0x90) return 0;          /* overlong */
        if (c == 0xf4 && s[1] >= 0x90) return 0;         /* > U+10FFFF */
        return 4;
    }
    return 0;
}

/* Parses a string at p->pos (which is at '"'); returns a malloc'd NUL-terminated buffer. */
static int json__string(json__parser *p, char **out, size_t *out_len) {
    size_t start = p->pos, cap = 16, n = 0, run;
    char *buf;
    p->pos++; /* opening quote */
    /* first pass: find the extent to size the buffer (the output is never longer) */
    run = p->pos;
    while (run < p->len && p->s[run] != '"') run += p->s[run] == '\\' ? 2 : 1;
    if (run >= p->len) return json__fail(p, start, "unterminated string");
    cap = run - p->pos + 1;
    buf = (char *)malloc(cap);
    if (!buf) return json__fail(p, start, "out of memory");
    for (;;) {
        unsigned char c;
        if (p->pos >= p->len) { free(buf); return json__fail(p, start, "unterminated string"); }
        c = p->s[p->pos];
        if (c == '"') { p->pos++; break; }
        if (c < 0x20) { free(buf); return json__fail(p, p->pos, "control character 0x%02x inside a string (must be escaped)", c); }
        if (c == '\\') {
            size_t esc = p->pos;
            unsigned u, lo;
            p->pos++;
            if (p->pos >= p->len) { free(buf); return json__fail(p, start, "unterminated string"); }
            c = p->s[p->pos++];
            switch (c) {
            case '"': buf[n++] = '"'; break;
            case '\\': buf[n++] = '\\'; break;
            case '/': buf[n++] = '/'; break;
            case 'b': buf[n++] = '\b'; break;
            case 'f': buf[n++] = '\f'; break;
            case 'n': buf[n++] = '\n'; break;
            case 'r': buf[n++] = '\r'; break;
            case 't': buf[n++] = '\t'; break;
            case 'u':
                if (json__hex4(p, esc, &u)) { free(buf); return -1; }
                if (u >= 0xdc00 && u <= 0xdfff) { free(buf); return json__fail(p, esc, "lone low surrogate \\u%04X", u); }
                if (u >= 0xd800 && u <= 0xdbff) {
                    if (p->len - p->pos < 6 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u') {
                        free(buf);
                        return json__fail(p, esc, "high surrogate \\u%04X not followed by a low surrogate", u);
                    }
                    p->pos += 2;
                    if (json__hex4(p, esc, &lo)) { free(buf); return -1; }
                    if (lo < 0xdc00 || lo > 0xdfff) { free(buf); return json__fail(p, esc, "high surrogate \\u%04X followed by \\u%04X, not a low surrogate", u, lo); }
                    u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
                }
                /* 6 bytes of escape always produce at most 4 bytes (12 -> 4 for pairs) */
                if (u < 0x80) buf[n++] = (char)u;
                else if (u < 0x800) { buf[n++] = (char)(0xc0 | (u >> 6)); buf[n++] = (char)(0x80 | (u & 0x3f)); }
                else if (u < 0x10000) {
                    buf[n++] = (char)(0xe0 | (u >> 12)); buf[n++] = (char)(0x80 | ((u >> 6) & 0x3f));
                    buf[n++] = (char)(0x80 | (u & 0x3f));
                } else {
                    buf[n++] = (char)(0xf0 | (u >> 18)); buf[n++] = (char)(0x80 | ((u >> 12) & 0x3f));
                    buf[n++] = (char)(0x80 | ((u >> 6) & 0x3f)); buf[n++] = (char)(0x80 | (u & 0x3f));
                }
                break;
            default:
                free(buf);
                return json__fail(p, esc, "unknown escape '\\%c'", c >= 0x20 && c < 0x7f ? c : '?');
            }
            continue;
        }
        if (c < 0x80) { buf[n++] = (char)c; p->pos++; continue; }
        run = json__utf8_len(p->s + p->pos, p->len - p->pos);
        if (!run) { free(buf); return json__fail(p, p->pos, "invalid UTF-8 byte 0x%02x inside a string", c); }
        memcpy(buf + n, p->s + p->pos, run);
        n += run;
        p->pos += run;
    }
    buf[n] = 0;
    *out = buf;
    *out_len = n;
    return 0;
}

static int json__number(json__parser *p, json_value *v) {
    size_t start = p->pos, n;
    int frac = 0;
    char small[64], *tmp;
    if (p->pos < p->len && p->s[p->pos] == '-') p->pos++;
    if (p->pos >= p->len) return json__fail(p, start, "truncated number");
    if (p->s[p->pos] == '0') {
        p->pos++;
        if (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
            return json__fail(p, start, "number with a leading zero");
    } else if (p->s[p->pos] >= '1' && p->s[p->pos] <= '9') {
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
    } else {
        return json__fail(p, start, "expected a digit");
    }
    if (p->pos < p->len && p->s[p->pos] == '.') {
        frac = 1;
        p->pos++;
        if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
            return json__fail(p, p->pos, "expected a digit after '.'");
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        frac = 1;
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-')) p->pos++;
        if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
            return json__fail(p, p->pos, "expected a digit in the exponent");
        while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') p->pos++;
    }
    n = p->pos - start;
    tmp = n < sizeof small ? small : (char *)malloc(n + 1);
    if (!tmp) return json__fail(p, start, "out of memory");
    memcpy(tmp, p->s + start, n);
    tmp[n] = 0;
    v->type = JSON_NUMBER;
    v->number = strtod(tmp, NULL);
    v->is_int = 0;
    if (!frac && n <= 20) {
        /* exact int64 parse with overflow check */
        const char *q = tmp;
        int neg = *q == '-';
        uint64_t acc = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        int ok = 1;
        if (neg) q++;
        for (; *q; q++) {
            unsigned d = (unsigned)(*q - '0');
            if (acc > (lim - d) / 10) { ok = 0; break; }
            acc = acc * 10 + d;
        }
        if (ok) {
            v->is_int = 1;
            v->integer = neg ? (acc == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)acc) : (int64_t)acc;
        }
    }
    if (tmp != small) free(tmp);
    return 0;
}

static int json__literal(json__parser *p, const char *word) {
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0) {
        char buf[32];
        return json__fail(p, p->pos, "unexpected %s", json__describe(p, buf, sizeof buf));
    }
    p->pos += n;
    return 0;
}

static int json__push(json__parser *p, json_value *v, size_t *cap, size_t at) {
    if (v->count == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        json_value *ni;
        if (nc > ((size_t)-1) / sizeof *ni) return json__fail(p, at, "out of memory");
        ni = (json_value *)realloc(v->items, nc * sizeof *ni);
        if (!ni) return json__fail(p, at, "out of memory");
        v->items = ni;
        *cap = nc;
    }
    memset(&v->items[v->count], 0, sizeof v->items[0]);
    v->count++;
    return 0;
}

static int json__value(json__parser *p, json_value *v, int depth) {
    char buf[32];
    unsigned char c;
    json__skip_ws(p);
    memset(v, 0, sizeof *v);
    v->offset = p->pos;
    if (p->pos >= p->len) return json__fail(p, p->pos, "expected a value but the text ends");
    c = p->s[p->pos];
    switch (c) {
    case '{':
    case '[': {
        size_t cap = 0;
        int obj = c == '{';
        char close = obj ? '}' : ']';
        if (depth >= JSON_MAX_DEPTH) return json__fail(p, p->pos, "nesting deeper than %d levels", JSON_MAX_DEPTH);
        v->type = obj ? JSON_OBJECT : JSON_ARRAY;
        p->pos++;
        json__skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == (unsigned char)close) { p->pos++; return 0; }
        for (;;) {
            json_value *item;
            char *key = NULL;
            size_t key_len = 0;
            json__skip_ws(p);
            if (obj) {
                if (p->pos >= p->len || p->s[p->pos] != '"')
                    return json__fail(p, p->pos, "expected a string key, found %s", json__describe(p, buf, sizeof buf));
                if (json__string(p, &key, &key_len)) return -1;
                json__skip_ws(p);
                if (p->pos >= p->len || p->s[p->pos] != ':') {
                    free(key);
                    return json__fail(p, p->pos, "expected ':' after an object key, found %s", json__describe(p, buf, sizeof buf));
                }
                p->pos++;
            }
            if (json__push(p, v, &cap, p->pos)) { free(key); return -1; }
            item = &v->items[v->count - 1];
            if (json__value(p, item, depth + 1)) { item->key = key; return -1; }
            item->key = key;
            item->key_len = key_len;
            json__skip_ws(p);
            if (p->pos < p->len && p->s[p->pos] == ',') { p->pos++; continue; }
            if (p->pos < p->len && p->s[p->pos] == (unsigned char)close) { p->pos++; return 0; }
            return json__fail(p, p->pos, obj ? "expected ',' or '}' after an object member, found %s"
                                             : "expected ',' or ']' after an array element, found %s",
                              json__describe(p, buf, sizeof buf));
        }
    }
    case '"':
        v->type = JSON_STRING;
        return json__string(p, &v->str, &v->len);
    case 't': if (json__literal(p, "true")) return -1; v->type = JSON_BOOL; v->boolean = 1; return 0;
    case 'f': if (json__literal(p, "false")) return -1; v->type = JSON_BOOL; return 0;
    case 'n': if (json__literal(p, "null")) return -1; v->type = JSON_NULL; return 0;
    default:
        if (c == '-' || (c >= '0' && c <= '9')) return json__number(p, v);
        return json__fail(p, p->pos, "expected a value, found %s", json__describe(p, buf, sizeof buf));
    }
}

JSON_FN json_value *json_parse(const char *text, size_t len, char *err, size_t errlen) {
    json__parser p;
    json_value *v = (json_value *)calloc(1, sizeof *v);
    char buf[32];
    if (err && errlen) err[0] = 0;
    if (!v) { if (err && errlen) snprintf(err, errlen, "out of memory"); return NULL; }
    p.s = (const unsigned char *)text;
    p.len = len;
    p.pos = 0;
    p.err = err;
    p.errlen = errlen;
    p.failed = 0;
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) p.pos = 3;
    if (json__value(&p, v, 0) == 0) {
        json__skip_ws(&p);
        if (p.pos == p.len) return v;
        json__fail(&p, p.pos, "unexpected %s after the JSON value", json__describe(&p, buf, sizeof buf));
    }
    json_free(v);
    return NULL;
}

/* Not mmspcl_read_file: this header is libc only, so that programs built without the library
   can include it (tests/fuzz/fuzz_json.c is one translation unit with json.h alone). */
JSON_FN json_value *json_parse_file(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    char *buf = NULL, sub[512];
    size_t cap = 0, n = 0;
    json_value *v;
    if (!f) { if (err && errlen) snprintf(err, errlen, "%s: cannot open", path); return NULL; }
    for (;;) {
        size_t got;
        if (n == cap) {
            char *nb;
            if (cap >= JSON_MAX_FILE) {
                free(buf); fclose(f);
                if (err && errlen) snprintf(err, errlen, "%s: larger than %zu bytes", path, (size_t)JSON_MAX_FILE);
                return NULL;
            }
            cap = cap ? cap * 2 : 65536;
            if (!(nb = (char *)realloc(buf, cap))) {
                free(buf); fclose(f);
                if (err && errlen) snprintf(err, errlen, "%s: out of memory", path);
                return NULL;
            }
            buf = nb;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        free(buf); fclose(f);
        if (err && errlen) snprintf(err, errlen, "%s: read error", path);
        return NULL;
    }
    fclose(f);
    v = json_parse(buf ? buf : "", n, sub, sizeof sub);
    free(buf);
    if (!v && err && errlen) snprintf(err, errlen, "%s: %s", path, sub);
    return v;
}

JSON_FN const json_value *json_get(const json_value *obj, const char *key) {
    size_t i, kl;
    if (!obj || obj->type != JSON_OBJECT || !key) return NULL;
    kl = strlen(key);
    for (i = obj->count; i-- > 0;)
        if (obj->items[i].key_len == kl && memcmp(obj->items[i].key, key, kl) == 0) return &obj->items[i];
    return NULL;
}

JSON_FN const json_value *json_at(const json_value *arr, size_t i) {
    if (!arr || arr->type != JSON_ARRAY || i >= arr->count) return NULL;
    return &arr->items[i];
}

JSON_FN int json_int(const json_value *v, int64_t *out) {
    if (!v || v->type != JSON_NUMBER) return 0;
    if (v->is_int) { *out = v->integer; return 1; }
    /* 2.0, 1e3: integral doubles within int64 range */
    if (v->number >= -9223372036854775808.0 && v->number < 9223372036854775808.0 &&
        (double)(int64_t)v->number == v->number) {
        *out = (int64_t)v->number;
        return 1;
    }
    return 0;
}

JSON_FN const char *json_type_name(json_type t) {
    switch (t) {
    case JSON_NULL: return "null";
    case JSON_BOOL: return "boolean";
    case JSON_NUMBER: return "number";
    case JSON_STRING: return "string";
    case JSON_ARRAY: return "array";
    case JSON_OBJECT: return "object";
    }
    return "?";
}

#endif /* MMSPCL_JSON_H */
