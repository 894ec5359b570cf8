/* safetensors.c — see safetensors.h. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include "safetensors.h"
#include "json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 4, 5)))
#endif
static int st__fail(char *err, size_t errlen, const char *label, const char *fmt, ...) {
    if (err && errlen) {
        size_t n = (size_t)snprintf(err, errlen, "%s: ", label);
        if (n < errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err + n, errlen - n, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

int st_dtype_size(const char *d) {
    static const struct { const char *name; int size; } t[] = {
        {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2},
        {"I8", 1}, {"U64", 8}, {"U32", 4}, {"U16", 2}, {"U8", 1}, {"BOOL", 1},
        {"F8_E4M3", 1}, {"F8_E5M2", 1}};
    size_t i;
    for (i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strcmp(d, t[i].name) == 0) return t[i].size;
    return 0;
}

void st_close(st_file *f) {
    size_t i;
    if (!f) return;
    for (i = 0; i < f->n; i++) free(f->tensors[i].name);
    free(f->tensors);
    if (f->storage == 1) free((void *)f->bytes);
    if (f->storage == 2) munmap((void *)f->bytes, f->size);
    free(f->path);
    memset(f, 0, sizeof *f);
}

const st_tensor *st_find(const st_file *f, const char *name) {
    size_t i;
    for (i = 0; i < f->n; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

typedef struct { uint64_t begin, end; size_t idx; } st__span;

static int st__span_cmp(const void *a, const void *b) {
    const st__span *x = (const st__span *)a, *y = (const st__span *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static int st__uint(const json_value *v, uint64_t *out) {
    int64_t i;
    if (!json_int(v, &i) || i < 0) return 0;
    *out = (uint64_t)i;
    return 1;
}

/* Parses the header of f (bytes/size set) and fills the tensor table. */
static int st__parse(st_file *f, char *err, size_t errlen) {
    const char *L = f->path;
    uint64_t n = 0;
    json_value *h;
    char jerr[256];
    size_t i, k;
    st__span *spans;
    int i8;
    if (f->size < 8)
        return st__fail(err, errlen, L, "file is %zu bytes, shorter than the 8-byte header length", f->size);
    for (i8 = 7; i8 >= 0; i8--) n = (n << 8) | f->bytes[i8];
    if (n > f->size - 8)
        return st__fail(err, errlen, L, "header length %llu (bytes 0-7) runs past the end of the file (%zu bytes): truncated or not a safetensors file",
                        (unsigned long long)n, f->size);
    if (n > ST_MAX_HEADER)
        return st__fail(err, errlen, L, "header length %llu (bytes 0-7) exceeds the 100 MB limit", (unsigned long long)n);
    if (n < 2)
        return st__fail(err, errlen, L, "header length %llu (bytes 0-7) is too short for a JSON object", (unsigned long long)n);
    f->header_len = n;
    f->data = f->bytes + 8 + n;
    f->data_size = (uint64_t)f->size - 8 - n;
    h = json_parse((const char *)f->bytes + 8, (size_t)n, jerr, sizeof jerr);
    if (!h) return st__fail(err, errlen, L, "JSON header (file bytes 8..%llu): %s", (unsigned long long)(8 + n), jerr);
    if (h->type != JSON_OBJECT) {
        int r = st__fail(err, errlen, L, "the JSON header must be an object, found %s", json_type_name(h->type));
        json_free(h);
        return r;
    }
    f->tensors = (st_tensor *)calloc(h->count ? h->count : 1, sizeof *f->tensors);
    if (!f->tensors) { json_free(h); return st__fail(err, errlen, L, "out of memory"); }
    for (i = 0; i < h->count; i++) {
        const json_value *e = &h->items[i], *dt, *sh, *off;
        st_tensor *t;
        uint64_t nel = 1, b, en;
        const char *nm = e->key;
        if (strcmp(e->key, "__metadata__") == 0 && e->key_len == 12) continue;
        if (strlen(nm) != e->key_len) {
            /* the message first: e, nm and the offset live in the tree json_free releases */
            int r = st__fail(err, errlen, L, "tensor entry at header byte %zu (file byte %zu): its name has a NUL byte "
                             "at name byte %zu ('%.60s\\u0000...'); tensor names must not contain NUL",
                             e->offset, e->offset + 8, strlen(nm), nm);
            json_free(h);
            return r;
        }
        if (e->type != JSON_OBJECT) {
            int r = st__fail(err, errlen, L, "tensor '%s': header entry is a %s, not an object", nm, json_type_name(e->type));
            json_free(h);
            return r;
        }
        for (k = 0; k < f->n; k++)
            if (strcmp(f->tensors[k].name, nm) == 0) {
                int r = st__fail(err, errlen, L, "tensor '%s' appears twice in the header", nm);
                json_free(h);
                return r;
            }
        t = &f->tensors[f->n];
        dt = json_get(e, "dtype");
        sh = json_get(e, "shape");
        off = json_get(e, "data_offsets");
#define ST__BAD(...) do { int r_ = st__fail(err, errlen, L, __VA_ARGS__); json_free(h); return r_; } while (0)
        if (!dt || dt->type != JSON_STRING || dt->len == 0 || dt->len >= sizeof t->dtype || strlen(dt->str) != dt->len)
            ST__BAD("tensor '%s': missing or bad \"dtype\"%s", nm,
                    dt && dt->type == JSON_STRING && strlen(dt->str) != dt->len ? " (it contains a NUL byte)" : "");
        if (!sh || sh->type != JSON_ARRAY)
            ST__BAD("tensor '%s': missing or bad \"shape\" (must be an array)", nm);
        if (!off || off->type != JSON_ARRAY || off->count != 2)
            ST__BAD("tensor '%s': missing or bad \"data_offsets\" (must be [begin, end])", nm);
        if (sh->count > ST_MAX_DIMS)
            ST__BAD("tensor '%s': %zu dimensions (at most %d supported)", nm, sh->count, ST_MAX_DIMS);
        memcpy(t->dtype, dt->str, dt->len + 1);
        t->elem_size = st_dtype_size(t->dtype);
        t->ndim = (int)sh->count;
        for (k = 0; k < sh->count; k++) {
            uint64_t d;
            if (!st__uint(&sh->items[k], &d) || d > (uint64_t)INT64_MAX)
                ST__BAD("tensor '%s': shape[%zu] is not a non-negative integer", nm, k);
            if (d && nel > UINT64_MAX / d)
                ST__BAD("tensor '%s': shape overflows (element count past 2^64)", nm);
            nel *= d;
            t->shape[k] = (int64_t)d;
        }
        if (t->elem_size && nel > UINT64_MAX / (uint64_t)t->elem_size)
            ST__BAD("tensor '%s': shape overflows (byte size past 2^64)", nm);
        if (!st__uint(&off->items[0], &b) || !st__uint(&off->items[1], &en))
            ST__BAD("tensor '%s': data_offsets must be two non-negative integers", nm);
        if (b > en)
            ST__BAD("tensor '%s': data_offsets [%llu, %llu) begin after end", nm, (unsigned long long)b, (unsigned long long)en);
        if (en > f->data_size)
            ST__BAD("tensor '%s': data_offsets [%llu, %llu) end past the data section (%llu bytes, file byte %llu > file size %zu)",
                    nm, (unsigned long long)b, (unsigned long long)en, (unsigned long long)f->data_size,
                    (unsigned long long)(8 + f->header_len + en), f->size);
        if (t->elem_size && en - b != nel * (uint64_t)t->elem_size)
            ST__BAD("tensor '%s': data_offsets [%llu, %llu) hold %llu bytes but %s shape needs %llu",
                    nm, (unsigned long long)b, (unsigned long long)en, (unsigned long long)(en - b), t->dtype,
                    (unsigned long long)(nel * (uint64_t)t->elem_size));
#undef ST__BAD
        if (!(t->name = (char *)malloc(e->key_len + 1))) { json_free(h); return st__fail(err, errlen, L, "out of memory"); }
        memcpy(t->name, nm, e->key_len + 1);
        t->nelem = nel;
        t->begin = b;
        t->end = en;
        t->nbytes = en - b;
        t->data = f->data + b;
        f->n++;
    }
    json_free(h);
    /* overlaps: sort spans by begin; each non-empty one must start at or after the previous end */
    if (f->n > 1) {
        uint64_t prev_end = 0;
        size_t prev = (size_t)-1;
        if (!(spans = (st__span *)malloc(f->n * sizeof *spans))) return st__fail(err, errlen, L, "out of memory");
        for (i = 0; i < f->n; i++) { spans[i].begin = f->tensors[i].begin; spans[i].end = f->tensors[i].end; spans[i].idx = i; }
        qsort(spans, f->n, sizeof *spans, st__span_cmp);
        for (i = 0; i < f->n; i++) {
            if (spans[i].begin == spans[i].end) continue;
            if (prev != (size_t)-1 && spans[i].begin < prev_end) {
                const st_tensor *a = &f->tensors[prev], *c = &f->tensors[spans[i].idx];
                int r = st__fail(err, errlen, L, "tensors '%s' [%llu, %llu) and '%s' [%llu, %llu) overlap in the data section",
                                 a->name, (unsigned long long)a->begin, (unsigned long long)a->end,
                                 c->name, (unsigned long long)c->begin, (unsigned long long)c->end);
                free(spans);
                return r;
            }
            prev = spans[i].idx;
            prev_end = spans[i].end;
        }
        free(spans);
    }
    return 0;
}

static char *st__strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = (char *)malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

int st_open_memory(const void *buf, size_t size, const char *label, st_file *f, char *err, size_t errlen) {
    memset(f, 0, sizeof *f);
    if (!(f->path = st__strdup(label ? label : "<memory>"))) return st__fail(err, errlen, "safetensors", "out of memory");
    f->bytes = (const unsigned char *)buf;
    f->size = size;
    f->storage = 0;
    if (st__parse(f, err, errlen)) { st_close(f); return -1; }
    return 0;
}

int st_open(const char *path, st_file *f, char *err, size_t errlen) {
    int fd;
    struct stat sb;
    void *m;
    memset(f, 0, sizeof *f);
    if (!(f->path = st__strdup(path))) return st__fail(err, errlen, path, "out of memory");
    fd = open(path, O_RDONLY);
    if (fd < 0) {
        int e = errno;
        st_close(f);
        return st__fail(err, errlen, path, "cannot open: %s", strerror(e));
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        st_close(f);
        return st__fail(err, errlen, path, "not a regular file");
    }
    if ((uint64_t)sb.st_size > (uint64_t)(size_t)-1) {
        close(fd);
        st_close(f);
        return st__fail(err, errlen, path, "too large for this machine's address space");
    }
    f->size = (size_t)sb.st_size;
    m = f->size ? mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    if (m != MAP_FAILED) {
        f->bytes = (const unsigned char *)m;
        f->storage = 2;
    } else {
        /* mmap unavailable (or empty file): read it */
        unsigned char *b = (unsigned char *)malloc(f->size ? f->size : 1);
        size_t got = 0;
        if (!b) { close(fd); st_close(f); return st__fail(err, errlen, path, "out of memory reading %zu bytes", (size_t)sb.st_size); }
        while (got < f->size) {
            ssize_t r = read(fd, b + got, f->size - got);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) { free(b); close(fd); st_close(f); return st__fail(err, errlen, path, "read error at byte %zu", got); }
            got += (size_t)r;
        }
        f->bytes = b;
        f->storage = 1;
    }
    close(fd);
    if (st__parse(f, err, errlen)) { st_close(f); return -1; }
    return 0;
}
