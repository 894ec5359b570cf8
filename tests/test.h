/* Tiny test harness, and the one home of the helpers the tests share. Each test program is run
   from the repository root and includes "mmspcl.h" (when it uses the library) before
   "tests/test.h".
     CHECK(cond, fmt, ...)   counts a check (prints FAIL file:line and the message when false);
     TEST_END()              prints "N passed, M failed" and gives the exit status;
     test_read_file          a whole file, NUL-terminated (plain stdio, so a test's allocator hooks
                             or a broken reader in the library never touch the fixtures);
     test_run                a shell command line: its exit status, and what it printed;
     test_capture            the same, standard output and error both kept;
     test_cosine             the cosine of two float vectors;
     test_close              |got - want| <= abs_tol + rel_tol * |want|;
     test_write_file         write bytes to a file (0 / -1);
     test_crc32              CRC-32 (zlib, PNG, ZIP) bit by bit, independent of the library's;
     test_ref_load / _get / _free   the reference scripts' text records "NAME NDIM S0 .. VALUES"
                             (the mult, mbt, mbt_pair and prune scripts of tools/reference).
   Nothing here warns when a test does not use it (static inline functions, counters marked
   unused), so the fuzz targets in tests/fuzz/ include this file too. */
#ifndef MMSPCL_TEST_H
#define MMSPCL_TEST_H
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__GNUC__) || defined(__clang__)
#define TEST_UNUSED __attribute__((unused))
#define TEST_PRINTF(fmt, first) __attribute__((format(printf, fmt, first)))
#else
#define TEST_UNUSED
#define TEST_PRINTF(fmt, first)
#endif

static int test_passed TEST_UNUSED, test_failed TEST_UNUSED;
#define CHECK(cond, ...) do { if (cond) test_passed++; else { test_failed++; \
    fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); fprintf(stderr, __VA_ARGS__); \
    fputc('\n', stderr); } } while (0)
#define TEST_END() (printf("%d passed, %d failed\n", test_passed, test_failed), test_failed ? 1 : 0)

/* Reads the whole file at path into a new buffer (free it) with a NUL after the last byte;
   *n (when n is not NULL) is the byte count without the NUL, 0 on failure. NULL when the file
   cannot be opened or read (a folder included) or memory runs out. */
static inline unsigned char *test_read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL, *p;
    size_t len = 0, cap = 0, got;
    if (n) *n = 0;
    if (!f) return NULL;
    do {
        if (len == cap) {
            cap = cap ? 2 * cap : (size_t)1 << 16;
            if (!(p = (unsigned char *)realloc(buf, cap + 1))) { free(buf); fclose(f); return NULL; }
            buf = p;
        }
        got = fread(buf + len, 1, cap - len, f);
        len += got;
    } while (got > 0);
    if (ferror(f)) { free(buf); fclose(f); return NULL; }
    fclose(f);
    buf[len] = 0;
    if (n) *n = len;
    return buf;
}

/* Runs a shell command line made printf-style (at most 4095 characters; a longer one is not run).
   Returns its exit status, 128 + the signal that ended it, or -1 when it could not be run.
   With out not NULL, *out receives what the command wrote to its standard output
   (NUL-terminated; free it), NULL when that could not be read; its standard error is not
   captured (redirect it in the command line). */
static inline int test_run(char **out, const char *fmt, ...) TEST_PRINTF(2, 3);
static inline int test_run(char **out, const char *fmt, ...) {
    char cmd[4096], line[4096 + 80], file[64];
    int n, st;
    va_list ap;
    if (out) *out = NULL;
    va_start(ap, fmt);
    n = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof cmd) return -1;
    if (out) {
        snprintf(file, sizeof file, "build/tests/test-run-%ld.out", (long)getpid());
        snprintf(line, sizeof line, "(%s) > %s", cmd, file);
    }
    st = system(out ? line : cmd);
    if (out) {
        *out = (char *)test_read_file(file, NULL);
        remove(file);
    }
    if (st == -1) return -1;
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Runs a shell command line made printf-style, standard input from /dev/null; *out and *err
   (freed first, never NULL after) receive its standard output and error (the latter through
   the file err_path). Returns the exit status as test_run does. */
static inline int test_capture(char **out, char **err, const char *err_path, const char *fmt, ...) TEST_PRINTF(4, 5);
static inline int test_capture(char **out, char **err, const char *err_path, const char *fmt, ...) {
    char cmd[3500];
    va_list ap;
    int rc;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    free(*out);
    free(*err);
    rc = test_run(out, "(%s) < /dev/null 2> %s", cmd, err_path);
    if (!*out) *out = (char *)calloc(1, 1);
    *err = (char *)test_read_file(err_path, NULL);
    if (!*err) *err = (char *)calloc(1, 1);
    return rc;
}

/* The cosine of a[0..n) and b[0..n), in double; 0 when either has no (or a NaN) norm. */
static inline double test_cosine(const float *a, const float *b, size_t n) {
    double ab = 0, aa = 0, bb = 0;
    size_t i;
    for (i = 0; i < n; i++) { ab += (double)a[i] * b[i]; aa += (double)a[i] * a[i]; bb += (double)b[i] * b[i]; }
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0.0;
}

/* 1 when got is within abs_tol + rel_tol * |want| of want, else 0 (NaN is never close). */
static inline int test_close(double got, double want, double rel_tol, double abs_tol) {
    return fabs(got - want) <= abs_tol + rel_tol * fabs(want);
}

/* Writes n bytes to path (created or truncated): 0, or -1 when any step fails. */
static inline int test_write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    int ok;
    if (!f) return -1;
    ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* The CRC-32 of p[0..n) (reflected polynomial 0xEDB88320, as zlib, PNG and ZIP use), computed
   bit by bit: an independent reference for the library's table-driven one. */
static inline uint32_t test_crc32(const unsigned char *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    size_t i;
    int k;
    for (i = 0; i < n; i++) {
        c ^= p[i];
        for (k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
    }
    return c ^ 0xFFFFFFFFu;
}
/* 1 when the file at path holds exactly the text s (its bytes, without the NUL) */
static inline int test_file_is(const char *path, const char *s) {
    size_t n;
    unsigned char *b = test_read_file(path, &n);
    const int same = b && n == strlen(s) && !memcmp(b, s, n);
    free(b);
    return same;
}

/* entries of folder dir whose name contains part (-1: dir cannot be read) */
static inline int test_count_names(const char *dir, const char *part) {
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    if (!d) return -1;
    while ((e = readdir(d))) n += strstr(e->d_name, part) != NULL;
    closedir(d);
    return n;
}

/* A reference file: records "NAME NDIM S0 .. S(NDIM-1) VALUES" separated by spaces or newlines,
   as tools/reference's PyTorch scripts write them (values in double precision). */
typedef struct test_ref_rec { char name[160]; int ndim, shape[4]; size_t n; double *v; } test_ref_rec;
typedef struct test_ref_file { test_ref_rec *r; int n; } test_ref_file;

static inline void test_ref_free(test_ref_file *rf) {
    int i;
    for (i = 0; i < rf->n; i++) free(rf->r[i].v);
    free(rf->r);
    rf->r = NULL; rf->n = 0;
}

/* 0, or -1 (nothing kept) when the file is missing or a record is malformed */
static inline int test_ref_load(test_ref_file *rf, const char *path) {
    char *buf = (char *)test_read_file(path, NULL), *p, *end;
    int cap = 0;
    rf->r = NULL; rf->n = 0;
    if (!buf) return -1;
    for (p = buf; ; ) {
        test_ref_rec *q;
        size_t k, len;
        int i;
        while (*p == ' ' || *p == '\n') p++;
        if (!*p) break;
        if (rf->n == cap) rf->r = (test_ref_rec *)realloc(rf->r, sizeof(test_ref_rec) * (size_t)(cap = cap ? 2 * cap : 256));
        q = &rf->r[rf->n++];
        q->v = NULL;
        len = strcspn(p, " \n");
        q->ndim = (int)strtol(p + len, &end, 10);
        if (len >= sizeof q->name || q->ndim < 0 || q->ndim > 4) break;
        memcpy(q->name, p, len); q->name[len] = 0; p = end;
        for (i = 0, q->n = 1; i < q->ndim; i++) { q->shape[i] = (int)strtol(p, &end, 10); p = end; q->n *= (size_t)q->shape[i]; }
        q->v = (double *)malloc(sizeof(double) * (q->n ? q->n : 1));
        for (k = 0; k < q->n; k++) { q->v[k] = strtod(p, &end); if (end == p) break; p = end; }
        if (k < q->n) break;
    }
    if (*p) { free(buf); test_ref_free(rf); return -1; }
    free(buf);
    return 0;
}

/* the record named NAME, or NULL */
static inline const test_ref_rec *test_ref_get(const test_ref_file *rf, const char *name) {
    int i;
    for (i = 0; i < rf->n; i++) if (!strcmp(rf->r[i].name, name)) return &rf->r[i];
    return NULL;
}

#endif
