/* tokenizer_files.h — RoBERTa's tokenizer files (vocab.json + merges.txt, or tokenizer.json) into
   the arrays mmspcl_bpe_from_arrays_ex takes, with ONE set of checks for every tool that reads
   them: mmspcl-convert (tools/convert/convert.c) before it writes tokenizer.vocab /
   tokenizer.merges, and mmspcl tokenize --vocab --merges (tools/cli/cmd_tokenize.c) before it
   encodes. Header-only (static functions), C99 and C++11, libc only; include mmspcl.h and
   tools/convert/json.h first.

     tf_list vocab = {0}, merges = {0};
     char err[1024];
     tf_vocab(&vocab, "vocab.json", root, NULL, err, sizeof err)        {"token": id}
     tf_merges_text(&merges, "merges.txt", text, len, err, sizeof err)
     tf_check(&vocab, &merges, "vocab.json", "merges.txt", &bpe, err, sizeof err)   bpe may be NULL
     tf_list_free(&vocab); tf_list_free(&merges);
   Each returns 0, or -1 with a message in err that names the file and the token, id, line or
   byte that is wrong.

   What is checked
     vocabulary  a JSON object whose values are integer ids; the ids are exactly 0..n-1 (no gap,
                 no id twice); no token holds a NUL byte. tokenizer.json: added_tokens whose id
                 the model vocabulary lacks are added; one that names an id of the vocabulary
                 must be that same token.
     merges      merges.txt: one merge a line, a line ending in LF, CRLF or CR alone (old Mac
                 files: without this every merge would run into one line); blank lines skipped; a
                 first line starting with "#version" skipped. tokenizer.json: model.merges of
                 strings "a b" or pairs ["a", "b"]. Each merge is two non-empty tokens and one
                 space, holds no NUL byte and is valid UTF-8 (vocab.json's tokens are UTF-8, so
                 such a merge could never name one).
     tf_check    mmspcl_bpe_from_arrays_ex(..., MMSPCL_BPE_STRICT): the library's own checks,
                 the ones mmspcl_bpe_from_weights applies to the written file (each merge's parts
                 and result are tokens; 2^30 tokens and merges at most), plus no token twice and
                 the special tokens <s> <pad> </s> <unk> <mask> all present (RoBERTa and the
                 SPCL prompt need them). A refused merge is reported with its line. */
#ifndef MMSPCL_TOKENIZER_FILES_H
#define MMSPCL_TOKENIZER_FILES_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define TF_FN static __attribute__((unused))
#define TF_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define TF_FN static
#define TF_PRINTF(f, a)
#endif

/* Strings with their lengths (they may not hold NUL, but the lengths are what counts) and, for
   merges, where each came from: a line of merges.txt (json 0) or an index of model.merges. */
typedef struct tf_list {
    char **s;
    uint32_t *len;
    size_t *line;
    size_t n, cap;
    int json;
} tf_list;

TF_FN int tf_fail(char *err, size_t errlen, const char *fmt, ...) TF_PRINTF(3, 4);
TF_FN int tf_fail(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* s[0..len) quoted for a message (at most 40 bytes, then "..."): bytes below 0x20 and 0x7F as
   \u00NN (as JSON writes them), bytes outside well-formed UTF-8 as \xNN; buf must hold 256 bytes. */
TF_FN const char *tf_show(char *buf, const char *s, size_t len) {
    size_t i = 0, o = 0;
    while (i < len && i < 40) {
        unsigned char ch = (unsigned char)s[i];
        size_t k = json__utf8_len((const unsigned char *)s + i, len - i);
        if (ch < 0x20 || ch == 0x7F) o += (size_t)snprintf(buf + o, 256 - o, "\\u%04X", ch);
        else if (!k) o += (size_t)snprintf(buf + o, 256 - o, "\\x%02X", ch);
        else { memcpy(buf + o, s + i, k); o += k; i += k; continue; }
        i++;
    }
    if (i < len) { memcpy(buf + o, "...", 3); o += 3; }
    buf[o] = 0;
    return buf;
}

TF_FN int tf_list_push(tf_list *l, const char *s, size_t len, size_t line) {
    if (len > UINT32_MAX) return -1;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 1024;
        char **ns = (char **)realloc(l->s, nc * sizeof *ns);
        uint32_t *nl;
        size_t *nli;
        if (!ns) return -1;
        l->s = ns;
        if (!(nl = (uint32_t *)realloc(l->len, nc * sizeof *nl))) return -1;
        l->len = nl;
        if (!(nli = (size_t *)realloc(l->line, nc * sizeof *nli))) return -1;
        l->line = nli;
        l->cap = nc;
    }
    if (!(l->s[l->n] = (char *)malloc(len + 1))) return -1;
    if (len) memcpy(l->s[l->n], s, len);
    l->s[l->n][len] = 0;
    l->len[l->n] = (uint32_t)len;
    l->line[l->n] = line;
    l->n++;
    return 0;
}

TF_FN void tf_list_free(tf_list *l) {
    size_t i;
    for (i = 0; i < l->n; i++) free(l->s[i]);
    free(l->s);
    free(l->len);
    free(l->line);
    memset(l, 0, sizeof *l);
}

/* ---- vocabulary -------------------------------------------------------------------------- */
typedef struct tf__entry { int64_t id; const char *s; size_t len; size_t at; } tf__entry;

/* The entries in id order into vocab: ids must be exactly 0..n-1. */
static int tf__dense(tf_list *vocab, const char *file, const tf__entry *e, size_t n, char *err, size_t errlen) {
    size_t i, *slot = (size_t *)malloc((n ? n : 1) * sizeof *slot);
    char a[256], b[256];
    if (!slot) return tf_fail(err, errlen, "%s: out of memory", file);
    for (i = 0; i < n; i++) slot[i] = (size_t)-1;
    for (i = 0; i < n; i++) {
        if (e[i].id < 0 || (uint64_t)e[i].id >= n) {
            free(slot);
            return tf_fail(err, errlen, "%s: token '%s' has id %lld but there are %zu tokens (ids must be 0..%zu with no gaps; byte %zu)",
                           file, tf_show(a, e[i].s, e[i].len), (long long)e[i].id, n, n - 1, e[i].at);
        }
        if (slot[e[i].id] != (size_t)-1) {
            int r = tf_fail(err, errlen, "%s: id %lld is given to both '%s' and '%s' (byte %zu)", file, (long long)e[i].id,
                            tf_show(a, e[slot[e[i].id]].s, e[slot[e[i].id]].len), tf_show(b, e[i].s, e[i].len), e[i].at);
            free(slot);
            return r;
        }
        slot[e[i].id] = i;
    }
    for (i = 0; i < n; i++)
        if (tf_list_push(vocab, e[slot[i]].s, e[slot[i]].len, 0)) { free(slot); return tf_fail(err, errlen, "%s: out of memory", file); }
    free(slot);
    return 0;
}

/* tokenizer.json's added_tokens whose ids the model vocabulary (e[0..n0)) lacks, appended to e */
static int tf__added(const char *file, const json_value *added, tf__entry *e, size_t n0, size_t *n, char *err, size_t errlen) {
    size_t i, k;
    char a[256], b[256];
    for (i = 0; i < added->count; i++) {
        const json_value *t = &added->items[i], *id = json_get(t, "id"), *ct = json_get(t, "content");
        int64_t v;
        int dup = 0;
        if (!json_int(id, &v) || !ct || ct->type != JSON_STRING)
            return tf_fail(err, errlen, "%s: added_tokens[%zu] (byte %zu) needs an integer \"id\" and a string \"content\"", file, i, t->offset);
        if (memchr(ct->str, 0, ct->len))
            return tf_fail(err, errlen, "%s: added_tokens[%zu] (byte %zu): the content '%s' holds a NUL byte", file, i, ct->offset,
                           tf_show(a, ct->str, ct->len));
        for (k = 0; k < n0; k++)
            if (e[k].id == v) {
                if (e[k].len != ct->len || memcmp(e[k].s, ct->str, ct->len) != 0)
                    return tf_fail(err, errlen, "%s: added token '%s' has id %lld, which the vocabulary gives to '%s'", file,
                                   tf_show(a, ct->str, ct->len), (long long)v, tf_show(b, e[k].s, e[k].len));
                dup = 1;
                break;
            }
        if (dup) continue;
        e[*n].id = v;
        e[*n].s = ct->str;
        e[*n].len = ct->len;
        e[*n].at = ct->offset;
        (*n)++;
    }
    return 0;
}

/* obj: {"token": id, ...}; added: tokenizer.json's added_tokens array or NULL. */
TF_FN int tf_vocab(tf_list *vocab, const char *file, const json_value *obj, const json_value *added, char *err, size_t errlen) {
    tf__entry *e;
    size_t n = 0, i, cap;
    char a[256];
    int rc;
    if (!obj || obj->type != JSON_OBJECT) return tf_fail(err, errlen, "%s: the vocabulary must be a JSON object {token: id}", file);
    cap = obj->count + (added && added->type == JSON_ARRAY ? added->count : 0);
    if (!(e = (tf__entry *)malloc((cap ? cap : 1) * sizeof *e))) return tf_fail(err, errlen, "%s: out of memory", file);
    for (i = 0; i < obj->count; i++) {
        const json_value *v = &obj->items[i];
        if (!json_int(v, &e[n].id)) {
            rc = tf_fail(err, errlen, "%s: token '%s' (byte %zu) has a non-integer id", file, tf_show(a, v->key, v->key_len), v->offset);
            free(e);
            return rc;
        }
        if (memchr(v->key, 0, v->key_len)) {
            rc = tf_fail(err, errlen, "%s: token '%s' (id at byte %zu) holds a NUL byte", file, tf_show(a, v->key, v->key_len), v->offset);
            free(e);
            return rc;
        }
        e[n].s = v->key;
        e[n].len = v->key_len;
        e[n].at = v->offset;
        n++;
    }
    if (added && added->type == JSON_ARRAY && tf__added(file, added, e, obj->count, &n, err, errlen)) { free(e); return -1; }
    if (n == 0) { free(e); return tf_fail(err, errlen, "%s: the vocabulary is empty", file); }
    rc = tf__dense(vocab, file, e, n, err, errlen);
    free(e);
    return rc;
}

/* ---- merges ------------------------------------------------------------------------------ */
/* One merge: "left right", no NUL, valid UTF-8. number: the line of merges.txt, or 1 + the index
   in model.merges; where: "line 3", "model.merges[2] at byte 120". */
static int tf__merge_ok(const char *file, size_t number, const char *where, const char *s, size_t len, char *err,
                        size_t errlen) {
    const char *sp = (const char *)memchr(s, ' ', len);
    char a[256];
    size_t i = 0;
    while (i < len) {
        size_t k = s[i] ? json__utf8_len((const unsigned char *)s + i, len - i) : 0;
        if (!k)
            return tf_fail(err, errlen, "%s: merge %zu '%s': its byte %zu (0x%02X) is %s (%s)", file, number, tf_show(a, s, len),
                           i + 1, (unsigned)(unsigned char)s[i], s[i] ? "not valid UTF-8" : "NUL", where);
        i += k;
    }
    if (!sp || sp == s || sp == s + len - 1 || memchr(sp + 1, ' ', len - (size_t)(sp + 1 - s)))
        return tf_fail(err, errlen, "%s: merge %zu '%s' is not two tokens separated by one space (%s)", file, number,
                       tf_show(a, s, len), where);
    return 0;
}

/* merges.txt's bytes (text need not be NUL-terminated). */
TF_FN int tf_merges_text(tf_list *merges, const char *file, const char *text, size_t n, char *err, size_t errlen) {
    size_t p = 0, line = 0;
    char where[64];
    merges->json = 0;
    while (p < n) {
        size_t e = p, next;
        while (e < n && text[e] != '\n' && text[e] != '\r') e++;
        next = e < n && text[e] == '\r' && e + 1 < n && text[e + 1] == '\n' ? e + 2 : e + 1;
        line++;
        if (!(line == 1 && e - p >= 8 && memcmp(text + p, "#version", 8) == 0) && e > p) {
            snprintf(where, sizeof where, "line %zu", line);
            if (tf__merge_ok(file, line, where, text + p, e - p, err, errlen)) return -1;
            if (tf_list_push(merges, text + p, e - p, line)) return tf_fail(err, errlen, "%s: out of memory", file);
        }
        p = next;
    }
    return 0;
}

/* tokenizer.json's model.merges: strings "a b" or pairs ["a", "b"]. */
TF_FN int tf_merges_json(tf_list *merges, const char *file, const json_value *arr, char *err, size_t errlen) {
    size_t i;
    char where[80];
    merges->json = 1;
    if (!arr || arr->type != JSON_ARRAY) return tf_fail(err, errlen, "%s: model.merges must be an array", file);
    for (i = 0; i < arr->count; i++) {
        const json_value *e = &arr->items[i];
        snprintf(where, sizeof where, "model.merges[%zu] at byte %zu", i, e->offset);
        if (e->type == JSON_STRING) {
            if (tf__merge_ok(file, i + 1, where, e->str, e->len, err, errlen)) return -1;
            if (tf_list_push(merges, e->str, e->len, i)) return tf_fail(err, errlen, "%s: out of memory", file);
        } else if (e->type == JSON_ARRAY && e->count == 2 && e->items[0].type == JSON_STRING && e->items[1].type == JSON_STRING) {
            const json_value *a = &e->items[0], *b = &e->items[1];
            char *s = (char *)malloc(a->len + b->len + 2);
            int bad;
            if (!s) return tf_fail(err, errlen, "%s: out of memory", file);
            memcpy(s, a->str, a->len);
            s[a->len] = ' ';
            memcpy(s + a->len + 1, b->str, b->len);
            s[a->len + 1 + b->len] = 0;
            bad = tf__merge_ok(file, i + 1, where, s, a->len + b->len + 1, err, errlen);
            if (!bad && tf_list_push(merges, s, a->len + b->len + 1, i)) bad = tf_fail(err, errlen, "%s: out of memory", file);
            free(s);
            if (bad) return -1;
        } else {
            return tf_fail(err, errlen, "%s: %s must be a string \"a b\" or a pair [\"a\", \"b\"]", file, where);
        }
    }
    return 0;
}

/* ---- the library's checks ---------------------------------------------------------------- */
/* What the loader refuses, plus MMSPCL_BPE_STRICT; *out (when out is not NULL) the tokenizer. */
TF_FN int tf_check(const tf_list *vocab, const tf_list *merges, const char *vocab_file, const char *merges_file,
                   mmspcl_bpe **out, char *err, size_t errlen) {
    mmspcl_error me;
    int64_t bad = -1;
    if (out) *out = NULL;
    if (mmspcl_bpe_from_arrays_ex(out, (const char *const *)vocab->s, vocab->len, (int64_t)vocab->n,
                                  (const char *const *)merges->s, merges->len, (int64_t)merges->n, MMSPCL_BPE_STRICT,
                                  &bad, &me) == MMSPCL_OK)
        return 0;
    if (bad >= 0 && (size_t)bad < merges->n)
        return merges->json ? tf_fail(err, errlen, "%s: model.merges[%zu]: %s", merges_file, merges->line[bad], me.msg)
                            : tf_fail(err, errlen, "%s: line %zu: %s", merges_file, merges->line[bad], me.msg);
    return tf_fail(err, errlen, "%s: %s", vocab_file, me.msg);
}

#endif
