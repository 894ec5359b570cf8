/* Tests for the PyTorch .bin reader of the converter (tools/convert/torchbin.c).
   Golden files written with Debian's PyTorch (tools/reference/torchbin_ref.py and
   tools/reference/torchbin_extra.py), and malformed inputs built here in memory: truncations,
   corrupted ZIP offsets, deflated entries, hostile pickles (unknown opcodes, GLOBAL os.system,
   deep nesting, huge lengths), tensors outside their storage, bad shapes, and random mutations.
   Run from the repository root. The reader is included as a single translation unit with every
   public function made static, so the test needs no link flags. */
#define TB_API static
#include "tools/convert/torchbin.c"
#include "tests/test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* helpers                                                                                    */

static const tb_tensor *find_tensor(const tb_file *f, const char *name) {
    int i;
    for (i = 0; i < f->n; i++)
        if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

static float half_to_float(uint16_t h) {
    uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, m = h & 1023, bits;
    float f;
    if (e == 0) {
        float v = (float)m / 1024.0f / 16384.0f; /* subnormal: m * 2^-24 */
        return s ? -v : v;
    }
    if (e == 31) bits = s | 0x7F800000u | (m << 13);
    else bits = s | ((e - 15 + 127) << 23) | (m << 13);
    memcpy(&f, &bits, 4);
    return f;
}

static float bf16_to_float(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Growable byte buffer. */
typedef struct { unsigned char *p; size_t n, cap; } buf_t;
static void b_put(buf_t *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->n + n) nc *= 2;
        b->p = (unsigned char *)realloc(b->p, nc);
        if (!b->p) { fprintf(stderr, "out of memory\n"); exit(2); }
        b->cap = nc;
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void b_u8(buf_t *b, unsigned v) { unsigned char c = (unsigned char)v; b_put(b, &c, 1); }
static void b_u16(buf_t *b, unsigned v) { b_u8(b, v & 255); b_u8(b, (v >> 8) & 255); }
static void b_u32(buf_t *b, uint32_t v) { b_u16(b, v & 0xFFFF); b_u16(b, v >> 16); }
static void b_u64(buf_t *b, uint64_t v) { b_u32(b, (uint32_t)v); b_u32(b, (uint32_t)(v >> 32)); }
static void b_free(buf_t *b) { free(b->p); b->p = NULL; b->n = b->cap = 0; }

/* ------------------------------------------------------------------------------------------ */
/* a ZIP writer (stored entries, optionally ZIP64 / data descriptors / odd options)            */

#define MAXE 16
typedef struct { const char *name; const unsigned char *data; size_t len; } zin;
typedef struct {
    int zip64_extra;     /* central entries with saturated sizes/offset + 0x0001 extra */
    int zip64_eocd;      /* 1: ZIP64 record + locator; 2: and a saturated classic EOCD */
    int deflate_entry;   /* index+1 of an entry marked method 8 */
    size_t local_pad;    /* bytes of padding extra field in local headers (as torch does) */
    int descriptor;      /* flag bit 3 + zero sizes in the local header + data descriptors */
    const char *comment; /* archive comment */
} zopt;
typedef struct {
    buf_t b;
    size_t lho[MAXE], cde[MAXE], data[MAXE], cd_off, eocd;
} zout;

static void zip_build(const zin *e, int n, const zopt *o, zout *z) {
    int i;
    size_t cd_size;
    memset(z, 0, sizeof *z);
    for (i = 0; i < n; i++) {
        unsigned method = (o->deflate_entry == i + 1) ? 8 : 0;
        uint32_t crc = test_crc32(e[i].data, e[i].len);
        size_t k;
        z->lho[i] = z->b.n;
        b_u32(&z->b, 0x04034b50u);
        b_u16(&z->b, o->zip64_extra ? 45 : 20);
        b_u16(&z->b, o->descriptor ? 8 : 0);
        b_u16(&z->b, method);
        b_u16(&z->b, 0); b_u16(&z->b, 0x21); /* time, date */
        b_u32(&z->b, o->descriptor ? 0 : crc);
        b_u32(&z->b, o->descriptor ? 0 : (uint32_t)e[i].len);
        b_u32(&z->b, o->descriptor ? 0 : (uint32_t)e[i].len);
        b_u16(&z->b, (unsigned)strlen(e[i].name));
        b_u16(&z->b, o->local_pad ? (unsigned)(o->local_pad + 4) : 0);
        b_put(&z->b, e[i].name, strlen(e[i].name));
        if (o->local_pad) {
            b_u16(&z->b, 0x4246);
            b_u16(&z->b, (unsigned)o->local_pad);
            for (k = 0; k < o->local_pad; k++) b_u8(&z->b, 'Z');
        }
        z->data[i] = z->b.n;
        b_put(&z->b, e[i].data, e[i].len);
        if (o->descriptor) {
            b_u32(&z->b, 0x08074b50u);
            b_u32(&z->b, crc);
            b_u32(&z->b, (uint32_t)e[i].len);
            b_u32(&z->b, (uint32_t)e[i].len);
        }
    }
    z->cd_off = z->b.n;
    for (i = 0; i < n; i++) {
        unsigned method = (o->deflate_entry == i + 1) ? 8 : 0;
        z->cde[i] = z->b.n;
        b_u32(&z->b, 0x02014b50u);
        b_u16(&z->b, 0x031e);
        b_u16(&z->b, o->zip64_extra ? 45 : 20);
        b_u16(&z->b, o->descriptor ? 8 : 0);
        b_u16(&z->b, method);
        b_u16(&z->b, 0); b_u16(&z->b, 0x21);
        b_u32(&z->b, test_crc32(e[i].data, e[i].len));
        b_u32(&z->b, o->zip64_extra ? 0xFFFFFFFFu : (uint32_t)e[i].len);
        b_u32(&z->b, o->zip64_extra ? 0xFFFFFFFFu : (uint32_t)e[i].len);
        b_u16(&z->b, (unsigned)strlen(e[i].name));
        b_u16(&z->b, o->zip64_extra ? 28 : 0);
        b_u16(&z->b, 0); b_u16(&z->b, 0); b_u16(&z->b, 0); b_u32(&z->b, 0);
        b_u32(&z->b, o->zip64_extra ? 0xFFFFFFFFu : (uint32_t)z->lho[i]);
        b_put(&z->b, e[i].name, strlen(e[i].name));
        if (o->zip64_extra) {
            b_u16(&z->b, 0x0001);
            b_u16(&z->b, 24);
            b_u64(&z->b, e[i].len);
            b_u64(&z->b, e[i].len);
            b_u64(&z->b, z->lho[i]);
        }
    }
    cd_size = z->b.n - z->cd_off;
    if (o->zip64_eocd) {
        size_t rec = z->b.n;
        b_u32(&z->b, 0x06064b50u);
        b_u64(&z->b, 44);
        b_u16(&z->b, 0x031e); b_u16(&z->b, 45);
        b_u32(&z->b, 0); b_u32(&z->b, 0);
        b_u64(&z->b, (uint64_t)n); b_u64(&z->b, (uint64_t)n);
        b_u64(&z->b, cd_size); b_u64(&z->b, z->cd_off);
        b_u32(&z->b, 0x07064b50u);
        b_u32(&z->b, 0);
        b_u64(&z->b, rec);
        b_u32(&z->b, 1);
    }
    z->eocd = z->b.n;
    b_u32(&z->b, 0x06054b50u);
    b_u16(&z->b, 0); b_u16(&z->b, 0);
    b_u16(&z->b, o->zip64_eocd == 2 ? 0xFFFF : (unsigned)n);
    b_u16(&z->b, o->zip64_eocd == 2 ? 0xFFFF : (unsigned)n);
    b_u32(&z->b, o->zip64_eocd == 2 ? 0xFFFFFFFFu : (uint32_t)cd_size);
    b_u32(&z->b, o->zip64_eocd == 2 ? 0xFFFFFFFFu : (uint32_t)z->cd_off);
    b_u16(&z->b, o->comment ? (unsigned)strlen(o->comment) : 0);
    if (o->comment) b_put(&z->b, o->comment, strlen(o->comment));
}

static void put16(unsigned char *p, unsigned v) { p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); }
static void put32(unsigned char *p, uint32_t v) { put16(p, v & 0xFFFF); put16(p + 2, v >> 16); }

/* ------------------------------------------------------------------------------------------ */
/* a pickle writer                                                                            */

static void pk_str(buf_t *b, const char *s) {
    b_u8(b, 'X');
    b_u32(b, (uint32_t)strlen(s));
    b_put(b, s, strlen(s));
}
static void pk_global(buf_t *b, const char *mod, const char *name) {
    b_u8(b, 'c');
    b_put(b, mod, strlen(mod));
    b_u8(b, '\n');
    b_put(b, name, strlen(name));
    b_u8(b, '\n');
}
static void pk_int(buf_t *b, int64_t v) {
    if (v >= 0 && v < 256) { b_u8(b, 'K'); b_u8(b, (unsigned)v); }
    else if (v >= 0 && v < 65536) { b_u8(b, 'M'); b_u16(b, (unsigned)v); }
    else if (v >= INT32_MIN && v <= INT32_MAX) { b_u8(b, 'J'); b_u32(b, (uint32_t)(int32_t)v); }
    else { b_u8(b, 0x8a); b_u8(b, 8); b_u64(b, (uint64_t)v); }
}

typedef struct {
    const char *name, *stype, *key;
    int64_t numel, offset;
    int nd;
    int64_t size[10], stride[10];
    int param;
} tspec;

static void pk_tensor(buf_t *b, const tspec *t) {
    int i;
    if (t->param) pk_global(b, "torch._utils", "_rebuild_parameter");
    pk_global(b, "torch._utils", "_rebuild_tensor_v2");
    b_u8(b, '(');
    b_u8(b, '(');
    pk_str(b, "storage");
    pk_global(b, "torch", t->stype);
    pk_str(b, t->key);
    pk_str(b, "cpu");
    pk_int(b, t->numel);
    b_u8(b, 't');
    b_u8(b, 'Q');
    pk_int(b, t->offset);
    b_u8(b, '(');
    for (i = 0; i < t->nd; i++) pk_int(b, t->size[i]);
    b_u8(b, 't');
    b_u8(b, '(');
    for (i = 0; i < t->nd; i++) pk_int(b, t->stride[i]);
    b_u8(b, 't');
    b_u8(b, 0x89);
    pk_global(b, "collections", "OrderedDict");
    b_u8(b, ')');
    b_u8(b, 'R');
    b_u8(b, 't');
    b_u8(b, 'R');
    if (t->param) {
        b_u8(b, 0x88);
        pk_global(b, "collections", "OrderedDict");
        b_u8(b, ')');
        b_u8(b, 'R');
        b_u8(b, 0x87);
        b_u8(b, 'R');
    }
}

/* OrderedDict of the tensors, SETITEMS, STOP */
static void pk_state_dict(buf_t *b, const tspec *t, int n) {
    int i;
    b_u8(b, 0x80); b_u8(b, 2);
    pk_global(b, "collections", "OrderedDict");
    b_u8(b, 'q'); b_u8(b, 0);
    b_u8(b, ')');
    b_u8(b, 'R');
    b_u8(b, '(');
    for (i = 0; i < n; i++) {
        pk_str(b, t[i].name);
        pk_tensor(b, &t[i]);
    }
    b_u8(b, 'u');
    b_u8(b, '.');
}

/* ------------------------------------------------------------------------------------------ */
/* the synthetic checkpoint                                                                   */

static float S0[24];          /* FloatStorage "0": 0..23 */
static uint16_t S1[6];        /* HalfStorage "1" */
static int64_t S2[5];         /* LongStorage "2" */

static const tspec good_specs[] = {
    {"a", "FloatStorage", "0", 24, 0, 2, {4, 6}, {6, 1}, 0},
    {"at", "FloatStorage", "0", 24, 0, 2, {6, 4}, {1, 6}, 0},
    {"sl", "FloatStorage", "0", 24, 8, 2, {2, 3}, {6, 1}, 0},
    {"h", "HalfStorage", "1", 6, 0, 2, {2, 3}, {3, 1}, 1},
    {"l", "LongStorage", "2", 5, 0, 1, {5}, {1}, 0},
    {"e", "LongStorage", "2", 5, 1, 2, {3, 2}, {0, 1}, 0},
    {"s", "FloatStorage", "0", 24, 23, 0, {0}, {0}, 0},
};
#define NGOOD ((int)(sizeof good_specs / sizeof good_specs[0]))

static void init_storages(void) {
    int i;
    for (i = 0; i < 24; i++) S0[i] = (float)i;
    for (i = 0; i < 6; i++) S1[i] = (uint16_t)(0x3C00 + i * 0x100); /* 1, 1.25... in f16 */
    for (i = 0; i < 5; i++) S2[i] = (int64_t)i * 1000000007LL - 3;
}

/* Zip a pickle with the standard storages under prefix "arch/". */
static void make_file(const unsigned char *pkl, size_t plen, const zopt *o, zout *z) {
    zin e[5];
    static const unsigned char ver[] = "3\n";
    e[0].name = "arch/data.pkl"; e[0].data = pkl; e[0].len = plen;
    e[1].name = "arch/data/0"; e[1].data = (const unsigned char *)S0; e[1].len = sizeof S0;
    e[2].name = "arch/data/1"; e[2].data = (const unsigned char *)S1; e[2].len = sizeof S1;
    e[3].name = "arch/data/2"; e[3].data = (const unsigned char *)S2; e[3].len = sizeof S2;
    e[4].name = "arch/version"; e[4].data = ver; e[4].len = 2;
    zip_build(e, 5, o, z);
}

/* Read from memory; check it fails with a message containing `want` (NULL: any message). */
static void expect_fail(const unsigned char *p, size_t n, const char *want, const char *what) {
    tb_file f;
    char err[512];
    int rc = tb_read_memory(p, n, "synthetic", &f, err, sizeof err);
    CHECK(rc == -1, "%s: expected failure, got rc=%d", what, rc);
    if (rc == 0) tb_free(&f);
    CHECK(f.n == 0 && f.tensors == NULL, "%s: output not empty on failure", what);
    CHECK(err[0] != 0, "%s: empty error message", what);
    if (want) CHECK(strstr(err, want) != NULL, "%s: message '%s' lacks '%s'", what, err, want);
}

static void expect_pickle_fail(const buf_t *pk, const char *want, const char *what) {
    zout z;
    zopt o;
    memset(&o, 0, sizeof o);
    make_file(pk->p, pk->n, &o, &z);
    expect_fail(z.b.p, z.b.n, want, what);
    b_free(&z.b);
}

static void expect_specs_fail(const tspec *t, int n, const char *want, const char *what) {
    buf_t pk = {NULL, 0, 0};
    pk_state_dict(&pk, t, n);
    expect_pickle_fail(&pk, want, what);
    b_free(&pk);
}

static void check_good(const tb_file *f, const char *what) {
    const tb_tensor *t;
    int i, j, ok;
    CHECK(f->n == NGOOD, "%s: %d tensors", what, f->n);
    if (f->n != NGOOD) return;
    t = find_tensor(f, "a");
    CHECK(t && t->dtype == TB_F32 && t->ndim == 2 && t->shape[0] == 4 && t->shape[1] == 6 &&
          t->nbytes == 96 && !memcmp(t->data, S0, 96), "%s: a", what);
    t = find_tensor(f, "at");
    ok = t && t->ndim == 2 && t->shape[0] == 6 && t->shape[1] == 4 && t->nbytes == 96;
    for (i = 0; ok && i < 6; i++)
        for (j = 0; j < 4; j++) ok &= ((float *)t->data)[i * 4 + j] == S0[j * 6 + i];
    CHECK(ok, "%s: transposed", what);
    t = find_tensor(f, "sl");
    ok = t && t->nbytes == 24 && !memcmp(t->data, S0 + 8, 12) && !memcmp((float *)t->data + 3, S0 + 14, 12);
    CHECK(ok, "%s: slice with storage offset", what);
    t = find_tensor(f, "h");
    CHECK(t && t->dtype == TB_F16 && t->nbytes == 12 && !memcmp(t->data, S1, 12) &&
          half_to_float(((uint16_t *)t->data)[1]) == 1.25f, "%s: parameter f16", what);
    t = find_tensor(f, "l");
    CHECK(t && t->dtype == TB_I64 && t->nbytes == 40 && !memcmp(t->data, S2, 40), "%s: i64", what);
    t = find_tensor(f, "e");
    ok = t && t->nbytes == 48;
    for (i = 0; ok && i < 3; i++)
        for (j = 0; j < 2; j++) ok &= ((int64_t *)t->data)[i * 2 + j] == S2[1 + j];
    CHECK(ok, "%s: expanded (stride 0)", what);
    t = find_tensor(f, "s");
    CHECK(t && t->ndim == 0 && t->nbytes == 4 && ((float *)t->data)[0] == 23.0f, "%s: scalar", what);
    CHECK(!strcmp(f->tensors[0].name, "a") && !strcmp(f->tensors[NGOOD - 1].name, "s"),
          "%s: order kept", what);
}

/* ------------------------------------------------------------------------------------------ */
/* golden files                                                                               */

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* tests/data/torchbin/NAME.txt: "name dtype ndim dims... nbytes hex" */
static void test_golden_hex(const char *name) {
    char path[256], line[65536], err[512];
    FILE *txt;
    tb_file f, g;
    unsigned char *raw;
    size_t rawn;
    int idx = 0, rc;
    snprintf(path, sizeof path, "tests/data/torchbin/%s.bin", name);
    rc = tb_read(path, &f, err, sizeof err);
    CHECK(rc == 0, "%s: %s", path, err);
    if (rc) return;
    raw = test_read_file(path, &rawn);
    CHECK(raw != NULL, "%s: load", path);
    rc = raw ? tb_read_memory(raw, rawn, path, &g, err, sizeof err) : -1;
    CHECK(rc == 0 && g.n == f.n, "%s from memory: %s", path, err);
    if (rc == 0) {
        int i, same = 1;
        for (i = 0; i < f.n; i++)
            same &= !strcmp(f.tensors[i].name, g.tensors[i].name) &&
                    f.tensors[i].nbytes == g.tensors[i].nbytes &&
                    !memcmp(f.tensors[i].data, g.tensors[i].data, f.tensors[i].nbytes);
        CHECK(same, "%s: file and memory readers agree", path);
        tb_free(&g);
    }
    free(raw);
    snprintf(path, sizeof path, "tests/data/torchbin/%s.txt", name);
    txt = fopen(path, "r");
    CHECK(txt != NULL, "open %s", path);
    if (!txt) { tb_free(&f); return; }
    while (fgets(line, sizeof line, txt)) {
        char tname[256], dt[16], *s = line;
        int nd, d, k, ok, off;
        long long dims[TB_MAX_DIMS], nb;
        const tb_tensor *t;
        if (line[0] == '#' || line[0] == '\n') continue;
        if (sscanf(s, "%255s %15s %d%n", tname, dt, &nd, &off) != 3 || nd < 0 || nd > TB_MAX_DIMS) {
            CHECK(0, "%s: bad line", path);
            break;
        }
        s += off;
        for (d = 0; d < nd; d++) { sscanf(s, "%lld%n", &dims[d], &off); s += off; }
        sscanf(s, "%lld%n", &nb, &off);
        s += off;
        while (*s == ' ') s++;
        t = idx < f.n ? &f.tensors[idx] : NULL;
        idx++;
        CHECK(t && !strcmp(t->name, tname), "%s: tensor %d is '%s', expected '%s'", name, idx,
              t ? t->name : "(none)", tname);
        if (!t) continue;
        ok = !strcmp(tb_dtype_name(t->dtype), dt) && t->ndim == nd && (long long)t->nbytes == nb;
        for (d = 0; d < nd; d++) ok &= t->shape[d] == dims[d];
        CHECK(ok, "%s: %s: dtype/shape/nbytes differ (%s %d %zu)", name, tname,
              tb_dtype_name(t->dtype), t->ndim, t->nbytes);
        for (k = 0; ok && k < (int)nb; k++) {
            int hi = hexval(s[2 * k]), lo = hi < 0 ? -1 : hexval(s[2 * k + 1]);
            if (lo < 0 || ((unsigned char *)t->data)[k] != (unsigned)(hi * 16 + lo)) ok = 0;
        }
        CHECK(ok, "%s: %s: data differ", name, tname);
    }
    fclose(txt);
    CHECK(idx == f.n, "%s: %d tensors listed, %d read", name, idx, f.n);
    tb_free(&f);
}

/* tests/data/torchbin-dtypes.txt (torchbin_ref.py): "tensor name DTYPE ndim dims" + values */
static void test_golden_values(void) {
    const char *bin = "tests/data/torchbin-dtypes.bin", *txtp = "tests/data/torchbin-dtypes.txt";
    char line[65536], err[512];
    FILE *txt = fopen(txtp, "r");
    tb_file f;
    int idx = 0, rc;
    if (!txt) { printf("note: %s not present, skipped\n", txtp); return; }
    {
        FILE *probe = fopen(bin, "rb");
        if (!probe) { printf("note: %s not present, skipped\n", bin); fclose(txt); return; }
        fclose(probe);
    }
    rc = tb_read(bin, &f, err, sizeof err);
    CHECK(rc == 0, "%s: %s", bin, err);
    if (rc) { fclose(txt); return; }
    while (fgets(line, sizeof line, txt)) {
        char tname[256], dt[16], *s;
        int nd, d, off, ok;
        long long dims[TB_MAX_DIMS], numel = 1, k;
        const tb_tensor *t;
        if (line[0] == '#' || strncmp(line, "tensor ", 7)) continue;
        if (sscanf(line + 7, "%255s %15s %d%n", tname, dt, &nd, &off) != 3 || nd < 0 ||
            nd > TB_MAX_DIMS) { CHECK(0, "%s: bad line", txtp); break; }
        s = line + 7 + off;
        for (d = 0; d < nd; d++) { sscanf(s, "%lld%n", &dims[d], &off); s += off; numel *= dims[d]; }
        if (!fgets(line, sizeof line, txt)) { CHECK(0, "%s: missing values", txtp); break; }
        t = find_tensor(&f, tname);
        CHECK(t && idx < f.n && t == &f.tensors[idx], "%s: %s missing or out of order", bin, tname);
        idx++;
        if (!t) continue;
        ok = t->ndim == nd && (long long)(t->nbytes / tb_dtype_size(t->dtype)) == numel;
        for (d = 0; d < nd; d++) ok &= t->shape[d] == dims[d];
        ok &= (!strcmp(dt, "F32") && t->dtype == TB_F32) || (!strcmp(dt, "F16") && t->dtype == TB_F16) ||
              (!strcmp(dt, "BF16") && t->dtype == TB_BF16) || (!strcmp(dt, "I64") && t->dtype == TB_I64);
        CHECK(ok, "%s: %s: dtype/shape", bin, tname);
        if (!ok) continue;
        s = line;
        for (k = 0; k < numel; k++) {
            char *e;
            if (t->dtype == TB_I64) {
                long long v = strtoll(s, &e, 10);
                ok &= e != s && ((int64_t *)t->data)[k] == v;
            } else {
                double v = strtod(s, &e);
                float got = t->dtype == TB_F32 ? ((float *)t->data)[k]
                          : t->dtype == TB_F16 ? half_to_float(((uint16_t *)t->data)[k])
                                               : bf16_to_float(((uint16_t *)t->data)[k]);
                ok &= e != s && got == (float)v;
            }
            s = e;
        }
        CHECK(ok, "%s: %s: values differ", bin, tname);
    }
    fclose(txt);
    CHECK(idx == f.n, "%s: %d listed, %d read", bin, idx, f.n);
    tb_free(&f);
}

/* Compare a .bin with a safetensors file holding the same weights (byte for byte). */
static int st_lookup(const char *json, const char *name, size_t *a, size_t *b, long long *shape,
                     int *nd, char *dtype) {
    char key[300];
    const char *p, *q;
    snprintf(key, sizeof key, "\"%s\":", name);
    p = strstr(json, key);
    if (!p) return -1;
    p += strlen(key);
    q = strstr(p, "\"dtype\"");
    if (!q || sscanf(q, "\"dtype\":\"%7[A-Z0-9]\"", dtype) != 1) {
        if (!q || sscanf(q, "\"dtype\": \"%7[A-Z0-9]\"", dtype) != 1) return -1;
    }
    q = strstr(p, "\"shape\"");
    if (!q || !(q = strchr(q, '['))) return -1;
    q++;
    *nd = 0;
    while (*q && *q != ']' && *nd < TB_MAX_DIMS) {
        char *e;
        shape[(*nd)++] = strtoll(q, &e, 10);
        if (e == q) break;
        q = e;
        while (*q == ',' || *q == ' ') q++;
    }
    q = strstr(p, "\"data_offsets\"");
    if (!q || !(q = strchr(q, '['))) return -1;
    if (sscanf(q, "[%zu,%zu]", a, b) != 2 && sscanf(q, "[%zu, %zu]", a, b) != 2) return -1;
    return 0;
}

static void test_against_safetensors(const char *bin, const char *st, int expect_n) {
    char err[512];
    tb_file f;
    unsigned char *raw;
    size_t n, hl;
    char *json;
    int i, rc, ok = 1, bad = -1;
    FILE *probe = fopen(bin, "rb");
    if (!probe) { printf("note: %s not present, skipped\n", bin); return; }
    fclose(probe);
    raw = test_read_file(st, &n);
    if (!raw) { printf("note: %s not present, skipped\n", st); return; }
    rc = tb_read(bin, &f, err, sizeof err);
    CHECK(rc == 0, "%s: %s", bin, err);
    if (rc) { free(raw); return; }
    CHECK(expect_n < 0 || f.n == expect_n, "%s: %d tensors", bin, f.n);
    hl = (size_t)tb__u64(raw);
    CHECK(n >= 8 && hl <= n - 8, "%s header", st);
    json = (char *)malloc(hl + 1);
    memcpy(json, raw + 8, hl);
    json[hl] = 0;
    for (i = 0; i < f.n && ok; i++) {
        const tb_tensor *t = &f.tensors[i];
        size_t a, b;
        long long shape[TB_MAX_DIMS];
        int nd, d;
        char dt[8];
        if (st_lookup(json, t->name, &a, &b, shape, &nd, dt)) { ok = 0; bad = i; break; }
        ok = b >= a && 8 + hl + b <= n && b - a == t->nbytes && nd == t->ndim &&
             !memcmp(raw + 8 + hl + a, t->data, t->nbytes) &&
             !strcmp(dt, t->dtype == TB_F32 ? "F32" : t->dtype == TB_I64 ? "I64" : "?");
        for (d = 0; d < nd && d < t->ndim; d++) ok &= shape[d] == t->shape[d];
        if (!ok) bad = i;
    }
    CHECK(ok, "%s: tensor '%s' differs from %s", bin, bad >= 0 ? f.tensors[bad].name : "?", st);
    free(json);
    free(raw);
    tb_free(&f);
}

static void test_golden(void) {
    char err[512];
    tb_file f;
    int rc;
    test_golden_hex("dtypes");
    test_golden_hex("views");
    test_golden_hex("views-proto4");
    test_golden_hex("module");
    test_golden_hex("nested");
    rc = tb_read("tests/data/torchbin/legacy.bin", &f, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "legacy PyTorch format, re-save with torch>=1.6"),
          "legacy.bin: %s", err);
    rc = tb_read("tests/data/torchbin/does-not-exist.bin", &f, err, sizeof err);
    CHECK(rc == -1 && strstr(err, "cannot open"), "missing file: %s", err);

    test_golden_values();
    /* the other helper's Hugging Face-like checkpoints vs the safetensors they were made from */
    test_against_safetensors("tests/data/roberta-tiny-bin/pytorch_model.bin",
                             "tests/data/roberta-tiny/model.safetensors", -1);
    test_against_safetensors("tests/data/roberta-tiny-bin-sharded/pytorch_model-00001-of-00002.bin",
                             "tests/data/roberta-tiny/model.safetensors", -1);
    test_against_safetensors("tests/data/roberta-tiny-bin-sharded/pytorch_model-00002-of-00002.bin",
                             "tests/data/roberta-tiny/model.safetensors", -1);
    test_against_safetensors("tests/data/clip-tiny-bin/pytorch_model.bin",
                             "tests/data/clip-tiny-full/model.safetensors", -1);
}

/* Every truncation and every single-byte flip of a real file: never crash, truncations fail. */
static void test_golden_mutations(const char *path) {
    size_t n, i;
    unsigned char *raw = test_read_file(path, &n), *cp;
    int allfail = 1, ok0 = 0;
    char err[512];
    tb_file f;
    if (!raw) { printf("note: %s not present, skipped\n", path); return; }
    cp = (unsigned char *)malloc(n);
    for (i = 0; i < n; i++) {
        memcpy(cp, raw, i);
        if (tb_read_memory(cp, i, "trunc", &f, err, sizeof err) == 0) { allfail = 0; tb_free(&f); }
        else if (!err[0]) allfail = 0;
    }
    CHECK(allfail, "%s: every truncation fails with a message", path);
    for (i = 0; i < n; i++) {
        memcpy(cp, raw, n);
        cp[i] ^= 0xFF;
        if (tb_read_memory(cp, n, "flip", &f, err, sizeof err) == 0) { ok0++; tb_free(&f); }
    }
    CHECK(1, "flips survived");
    printf("note: %s: %zu truncations fail, %d of %zu byte flips still read (padding, unused "
           "bytes)\n", path, n, ok0, n);
    free(cp);
    free(raw);
}

/* ------------------------------------------------------------------------------------------ */
/* synthetic files                                                                            */

static void test_synthetic_good(void) {
    buf_t pk = {NULL, 0, 0};
    zout z;
    zopt o;
    tb_file f;
    char err[512];
    int rc, variant;
    pk_state_dict(&pk, good_specs, NGOOD);
    for (variant = 0; variant < 6; variant++) {
        memset(&o, 0, sizeof o);
        if (variant == 1) { o.local_pad = 37; o.descriptor = 1; o.zip64_eocd = 1; } /* like torch */
        if (variant == 2) { o.zip64_extra = 1; o.zip64_eocd = 2; }                  /* full ZIP64 */
        if (variant == 3) o.comment = "an archive comment, PK\005\006 inside it";
        if (variant == 4) { o.zip64_extra = 1; o.zip64_eocd = 1; o.local_pad = 3; }
        if (variant == 5) o.descriptor = 1;
        make_file(pk.p, pk.n, &o, &z);
        rc = tb_read_memory(z.b.p, z.b.n, "good", &f, err, sizeof err);
        CHECK(rc == 0, "synthetic variant %d: %s", variant, err);
        if (rc == 0) {
            check_good(&f, "synthetic");
            tb_free(&f);
        }
        if (variant == 2) {
            size_t i;
            int allfail = 1;
            /* every truncation of the full-ZIP64 file fails */
            for (i = 0; i < z.b.n; i++) {
                rc = tb_read_memory(z.b.p, i, "trunc", &f, err, sizeof err);
                if (rc == 0) { tb_free(&f); allfail = 0; }
            }
            CHECK(allfail, "ZIP64 truncations fail");
            /* a ZIP64 extra that is too short */
            put16(z.b.p + z.cde[1] + 46 + strlen("arch/data/0") + 2, 16);
            expect_fail(z.b.p, z.b.n, "ZIP64 extra field", "short ZIP64 extra");
            put16(z.b.p + z.cde[1] + 46 + strlen("arch/data/0"), 0x0009);
            expect_fail(z.b.p, z.b.n, "ZIP64 extra field, which is missing", "no ZIP64 extra");
        }
        b_free(&z.b);
    }
    /* tb_free on empty, dtype helpers */
    f.tensors = NULL;
    f.n = 0;
    tb_free(&f);
    tb_free(NULL);
    CHECK(tb_dtype_size(TB_F32) == 4 && tb_dtype_size(TB_BF16) == 2 && tb_dtype_size(TB_I64) == 8 &&
          tb_dtype_size(TB_BOOL) == 1 && !strcmp(tb_dtype_name(TB_BF16), "bf16") &&
          !strcmp(tb_dtype_name(TB_BOOL), "bool"), "dtype helpers");
    /* errlen 0 and NULL err do not crash */
    CHECK(tb_read_memory(pk.p, 3, NULL, &f, NULL, 0) == -1, "NULL err");
    CHECK(tb_read_memory(NULL, 0, NULL, &f, err, sizeof err) == -1 && err[0], "empty buffer: %s", err);
    CHECK(tb_read_memory(pk.p, pk.n, "bare", &f, err, 8) == -1 && strlen(err) == 7, "short err buffer");
    b_free(&pk);
}

static void test_zip_corruptions(void) {
    buf_t pk = {NULL, 0, 0};
    zout z;
    zopt o;
    unsigned char *cp;
    size_t n;
    memset(&o, 0, sizeof o);
    pk_state_dict(&pk, good_specs, NGOOD);
    make_file(pk.p, pk.n, &o, &z);
    n = z.b.n;
    cp = (unsigned char *)malloc(n);

#define FRESH() memcpy(cp, z.b.p, n)
    FRESH(); put32(cp + z.eocd + 16, (uint32_t)n);
    expect_fail(cp, n, "central directory", "cd offset past the end");
    FRESH(); put32(cp + z.eocd + 16, (uint32_t)z.cd_off + 1);
    expect_fail(cp, n, "central directory", "cd offset off by one");
    FRESH(); put32(cp + z.eocd + 12, 0xFFFFFF00u);
    expect_fail(cp, n, "central directory", "cd size huge");
    FRESH(); put16(cp + z.eocd + 10, 60000); put16(cp + z.eocd + 8, 60000);
    expect_fail(cp, n, "cannot hold", "too many entries");
    FRESH(); put16(cp + z.eocd + 4, 1);
    expect_fail(cp, n, "multi-disk", "multi-disk");
    FRESH(); put32(cp + z.cde[1] + 42, 0x7FFFFFF0u);
    expect_fail(cp, n, "local header offset", "lho huge (storage)");
    FRESH(); put32(cp + z.cde[0] + 42, (uint32_t)z.lho[1]);
    expect_fail(cp, n, "local header name differs", "lho points at another entry");
    FRESH(); put32(cp + z.cde[0] + 42, 1);
    expect_fail(cp, n, "local header signature", "lho off by one");
    FRESH(); put32(cp + z.cde[2] + 42, (uint32_t)z.cd_off - 10);
    expect_fail(cp, n, "out of range", "lho at the end of the data");
    FRESH(); put16(cp + z.lho[1] + 28, 0xFFFF);
    expect_fail(cp, n, "runs past", "local extra length huge");
    FRESH(); put16(cp + z.lho[0] + 26, 200);
    expect_fail(cp, n, "local header name differs", "local name length");
    FRESH(); put32(cp + z.cde[1] + 20, 1000); put32(cp + z.cde[1] + 24, 1000);
    expect_fail(cp, n, "runs past", "storage size past the directory");
    FRESH(); put32(cp + z.cde[1] + 20, 10);
    expect_fail(cp, n, "sizes differ", "csize != usize");
    FRESH(); put16(cp + z.cde[0] + 28, 0xFFF0);
    expect_fail(cp, n, "overruns", "central name length");
    FRESH(); cp[z.cde[3]] = 'X';
    expect_fail(cp, n, "bad ZIP central directory entry", "central signature");
    FRESH(); put16(cp + z.cde[1] + 8, 1);
    expect_fail(cp, n, "encrypted", "encrypted");
    FRESH(); put16(cp + z.cde[0] + 10, 8); put16(cp + z.lho[0] + 8, 8);
    expect_fail(cp, n, "compressed (method 8 = deflate)", "deflated data.pkl");
    FRESH(); memcpy(cp + z.cde[0] + 46, "arch/data.pkX", 13);
    expect_fail(cp, n, "data.pkl", "no data.pkl");
    FRESH(); memcpy(cp + z.cde[1] + 46, "arch/data/9", 11);
    expect_fail(cp, n, "'arch/data/0' is missing", "storage entry missing");
    FRESH(); memcpy(cp + z.cde[2] + 46, "arch/data/0", 11);
    expect_fail(cp, n, "two entries named", "duplicate entry names");
    FRESH(); cp[z.data[0] + 5] ^= 1;
    expect_fail(cp, n, "CRC", "pickle CRC");
    FRESH(); cp[z.data[1] + 5] ^= 1;
    expect_fail(cp, n, "CRC", "storage CRC");
    FRESH(); memset(cp + z.eocd, 'x', 4);
    expect_fail(cp, n, "end of central directory", "EOCD signature");
#undef FRESH
    {   /* a deflated storage entry */
        memset(&o, 0, sizeof o);
        o.deflate_entry = 2;
        b_free(&z.b);
        make_file(pk.p, pk.n, &o, &z);
        expect_fail(z.b.p, z.b.n, "'arch/data/0' is compressed (method 8 = deflate)", "deflated storage");
    }
    {   /* TorchScript, big-endian byteorder, prefix-less archive */
        zin e[4];
        zout y;
        memset(&o, 0, sizeof o);
        e[0].name = "m/data.pkl"; e[0].data = pk.p; e[0].len = pk.n;
        e[1].name = "m/constants.pkl"; e[1].data = pk.p; e[1].len = pk.n;
        zip_build(e, 2, &o, &y);
        expect_fail(y.b.p, y.b.n, "TorchScript", "TorchScript");
        b_free(&y.b);
        e[1].name = "m/byteorder"; e[1].data = (const unsigned char *)"big"; e[1].len = 3;
        zip_build(e, 2, &o, &y);
        expect_fail(y.b.p, y.b.n, "little-endian", "big-endian");
        b_free(&y.b);
        e[1].name = "n/data.pkl";
        zip_build(e, 2, &o, &y);
        expect_fail(y.b.p, y.b.n, "more than one", "two data.pkl");
        b_free(&y.b);
        e[0].name = "data.pkl";
        zip_build(e, 1, &o, &y);
        expect_fail(y.b.p, y.b.n, "data.pkl", "data.pkl without a folder");
        b_free(&y.b);
        /* a little-endian byteorder entry is fine; missing storages are reported */
        e[0].name = "m/data.pkl";
        e[1].name = "m/byteorder"; e[1].data = (const unsigned char *)"little"; e[1].len = 6;
        zip_build(e, 2, &o, &y);
        expect_fail(y.b.p, y.b.n, "'m/data/0' is missing", "byteorder little, no storages");
        b_free(&y.b);
    }
    {   /* not a checkpoint at all */
        static const unsigned char legacy[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9,
                                               0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e};
        const char *txt = "this is a text file, not a checkpoint at all, long enough for a ZIP";
        expect_fail(legacy, sizeof legacy, "legacy PyTorch format", "legacy magic");
        expect_fail(pk.p, pk.n, "bare pickle", "bare pickle");
        expect_fail((const unsigned char *)txt, strlen(txt), "not a PyTorch checkpoint", "text");
        expect_fail((const unsigned char *)txt, 5, "too small", "tiny");
        {
            static const unsigned char st[] = "\x13\0\0\0\0\0\0\0{\"__metadata__\":{}}   ";
            expect_fail(st, sizeof st - 1, "safetensors", "a safetensors file");
        }
    }
    free(cp);
    b_free(&z.b);
    b_free(&pk);
}

static void test_bad_tensors(void) {
    tspec t[2];
    memcpy(t, good_specs, sizeof t);
    t[1].offset = 24;
    expect_specs_fail(t, 2, "outside storage", "offset == numel");
    t[1].offset = 19;
    expect_specs_fail(t, 2, "outside storage", "offset + extent past the end");
    t[1].offset = -1;
    expect_specs_fail(t, 2, "negative storage offset", "negative offset");
    memcpy(t, good_specs, sizeof t);
    t[1].size[0] = 7;
    expect_specs_fail(t, 2, "outside storage", "size too big for transposed");
    t[1].size[0] = -6;
    expect_specs_fail(t, 2, "negative size", "negative size");
    t[1].size[0] = 6;
    t[1].stride[1] = -6;
    expect_specs_fail(t, 2, "negative stride", "negative stride");
    t[1].stride[1] = (int64_t)1 << 62;
    expect_specs_fail(t, 2, "outside storage", "huge stride");
    memcpy(t, good_specs, sizeof t);
    t[1].size[0] = (int64_t)1 << 62;
    t[1].size[1] = (int64_t)1 << 62;
    expect_specs_fail(t, 2, "overflows", "element count overflow");
    t[1].size[0] = (int64_t)1 << 40;
    t[1].size[1] = 1;
    t[1].stride[0] = 1;
    expect_specs_fail(t, 2, "outside storage", "2^40 elements in a 24-element storage");
    t[1].stride[0] = 0; /* an expanded view of 2^40 floats: over TB_MAX_TOTAL_BYTES */
    expect_specs_fail(t, 2, "too large", "2^40 expanded elements");
    t[1].size[0] = (int64_t)1 << 30;
    t[1].stride[0] = 1;
    expect_specs_fail(t, 2, "outside storage", "2^30 elements in a 24-element storage");
    t[1].stride[0] = 0; /* an expanded view of 2^30 floats: 4 GiB from a tiny file */
    expect_specs_fail(t, 2, "exceed", "expansion budget");
    memcpy(t, good_specs, sizeof t);
    t[1].nd = 9;
    {
        int d;
        for (d = 0; d < 9; d++) { t[1].size[d] = 1; t[1].stride[d] = 1; }
    }
    expect_specs_fail(t, 2, "9 dimensions", "9 dims");
    memcpy(t, good_specs, sizeof t);
    t[1].numel = 25;
    expect_specs_fail(t, 2, "holds 96 bytes", "storage numel larger than the entry");
    t[1].numel = -1;
    expect_specs_fail(t, 2, "non-negative", "negative storage numel");
    memcpy(t, good_specs, sizeof t);
    t[1].key = "7";
    expect_specs_fail(t, 2, "'arch/data/7' is missing", "missing storage key");
    memcpy(t, good_specs, sizeof t);
    t[1].stype = "ComplexFloatStorage";
    expect_specs_fail(t, 2, "refusing pickle GLOBAL torch.ComplexFloatStorage", "complex");
    memcpy(t, good_specs, sizeof t);
    t[1].name = "a";
    expect_specs_fail(t, 2, "two tensors are named 'a'", "duplicate names");
}

/* Pickle snippets: prefix = PROTO 2 + OrderedDict() + MARK; each case appends its body. */
static void pk_begin(buf_t *b) {
    b->n = 0;
    b_u8(b, 0x80); b_u8(b, 2);
    pk_global(b, "collections", "OrderedDict");
    b_u8(b, ')');
    b_u8(b, 'R');
}

/* unknown opcodes, and GLOBALs outside the allow-list (os.system, eval, exec, near misses) */
static void test_bad_pickle_globals(void) {
    buf_t b = {NULL, 0, 0};
    int i;
    pk_begin(&b); b_u8(&b, 0xFF);
    expect_pickle_fail(&b, "unknown or unsupported pickle opcode 0xff", "unknown opcode");
    pk_begin(&b); b_u8(&b, 'I');
    expect_pickle_fail(&b, "unsupported pickle opcode 0x49", "protocol-0 INT");
    pk_begin(&b); pk_global(&b, "os", "system"); pk_str(&b, "echo hi"); b_u8(&b, 0x85); b_u8(&b, 'R'); b_u8(&b, '.');
    expect_pickle_fail(&b, "refusing pickle GLOBAL os.system", "os.system");
    pk_begin(&b); pk_global(&b, "builtins", "eval");
    expect_pickle_fail(&b, "refusing pickle GLOBAL builtins.eval", "builtins.eval");
    pk_begin(&b); pk_global(&b, "__builtin__", "exec");
    expect_pickle_fail(&b, "refusing pickle GLOBAL __builtin__.exec", "__builtin__.exec");
    pk_begin(&b); pk_global(&b, "torch", "load");
    expect_pickle_fail(&b, "refusing pickle GLOBAL torch.load", "torch.load");
    pk_begin(&b); pk_global(&b, "torch._utils", "_rebuild_tensor_v2x");
    expect_pickle_fail(&b, "refusing pickle GLOBAL torch._utils._rebuild_tensor_v2x", "near miss");
    pk_begin(&b); b_u8(&b, 0x8c); b_u8(&b, 2); b_put(&b, "os", 2); b_u8(&b, 0x8c); b_u8(&b, 6);
    b_put(&b, "system", 6); b_u8(&b, 0x93);
    expect_pickle_fail(&b, "refusing pickle GLOBAL os.system", "STACK_GLOBAL os.system");
    pk_begin(&b); b_u8(&b, 'c'); b_put(&b, "os\0x\nsystem\n", 12);
    expect_pickle_fail(&b, "refusing pickle GLOBAL os?x.system", "GLOBAL with NUL");
    pk_begin(&b); b_u8(&b, 'c'); for (i = 0; i < 1000; i++) b_u8(&b, 'a');
    expect_pickle_fail(&b, "unterminated", "GLOBAL unterminated");
    pk_begin(&b); pk_global(&b, "torch", "FloatStorage"); b_u8(&b, ')'); b_u8(&b, 'R');
    expect_pickle_fail(&b, "not callable", "calling a storage type");
    b_free(&b);
}

/* deep nesting: MARKs, containers, the stack */
static void test_bad_pickle_nesting(void) {
    buf_t b = {NULL, 0, 0};
    int i;
    pk_begin(&b); for (i = 0; i < 100000; i++) { b_u8(&b, '('); b_u8(&b, ']'); }
    expect_pickle_fail(&b, "MARKs nested deeper than", "MARK/EMPTY_LIST x 100000");
    pk_begin(&b); for (i = 0; i < 100000; i++) b_u8(&b, ']');
    for (i = 0; i < 99999; i++) b_u8(&b, 'a');
    expect_pickle_fail(&b, "containers nested deeper than", "lists in lists x 100000");
    pk_begin(&b); b_u8(&b, ')'); for (i = 0; i < 100000; i++) b_u8(&b, 0x85);
    expect_pickle_fail(&b, "containers nested deeper than", "TUPLE1 x 100000");
    pk_begin(&b); for (i = 0; i < 300000; i++) b_u8(&b, 'N');
    expect_pickle_fail(&b, "stack deeper than", "300000 NONE");
    pk_begin(&b); b_u8(&b, ']'); for (i = 0; i < 2000; i++) { b_u8(&b, '('); b_u8(&b, ']'); b_u8(&b, 'e'); }
    b_u8(&b, '.');
    expect_pickle_fail(&b, "top-level", "balanced APPENDS are fine, but the result is a list");
    b_free(&b);
}

/* strings: huge, negative and truncated lengths */
static void test_bad_pickle_strings(void) {
    buf_t b = {NULL, 0, 0};
    pk_begin(&b); b_u8(&b, 'X'); b_u32(&b, 0xFFFFFFFFu);
    expect_pickle_fail(&b, "exceeds the limit", "BINUNICODE 4 GiB");
    pk_begin(&b); b_u8(&b, 'X'); b_u32(&b, 100000); b_put(&b, "abc", 3);
    expect_pickle_fail(&b, "truncated", "BINUNICODE past the end");
    pk_begin(&b); b_u8(&b, 0x8d); b_u64(&b, (uint64_t)1 << 63);
    expect_pickle_fail(&b, "exceeds the limit", "BINUNICODE8 huge");
    pk_begin(&b); b_u8(&b, 'T'); b_u32(&b, 0x80000000u);
    expect_pickle_fail(&b, "negative length", "BINSTRING negative");
    pk_begin(&b); b_u8(&b, 0x8c); b_u8(&b, 200);
    expect_pickle_fail(&b, "truncated", "SHORT_BINUNICODE past the end");
    b_free(&b);
}

/* memo, stack, marks; protocols, STOP, long integers, the top-level object */
static void test_bad_pickle_stack(void) {
    buf_t b = {NULL, 0, 0};
    pk_begin(&b); b_u8(&b, 'r'); b_u32(&b, 0xFFFFFFFFu);
    expect_pickle_fail(&b, "memo index", "LONG_BINPUT huge");
    pk_begin(&b); b_u8(&b, 'h'); b_u8(&b, 7);
    expect_pickle_fail(&b, "never stored", "BINGET missing");
    pk_begin(&b); b_u8(&b, 'j'); b_u32(&b, 0x7FFFFFFF);
    expect_pickle_fail(&b, "never stored", "LONG_BINGET missing");
    b.n = 0; b_u8(&b, 'R');
    expect_pickle_fail(&b, "underflow", "REDUCE on an empty stack");
    pk_begin(&b); b_u8(&b, '('); b_u8(&b, 'q'); b_u8(&b, 0);
    expect_pickle_fail(&b, "underflow", "BINPUT right after MARK");
    pk_begin(&b); b_u8(&b, '('); b_u8(&b, 'K'); b_u8(&b, 1); b_u8(&b, 0x86);
    expect_pickle_fail(&b, "underflow", "TUPLE2 across a MARK");
    pk_begin(&b); b_u8(&b, 't');
    expect_pickle_fail(&b, "no MARK", "TUPLE without MARK");
    b.n = 0; b_u8(&b, 0x80); b_u8(&b, 2); b_u8(&b, '('); b_u8(&b, 'u');
    expect_pickle_fail(&b, "underflow", "SETITEMS with nothing below the MARK");
    pk_begin(&b); b_u8(&b, '('); b_u8(&b, 'K'); b_u8(&b, 1); b_u8(&b, 'u');
    expect_pickle_fail(&b, "odd number", "SETITEMS odd");
    pk_begin(&b); b_u8(&b, '('); b_u8(&b, 'e');
    expect_pickle_fail(&b, "not a list", "APPENDS to a dict");
    pk_begin(&b); b_u8(&b, 'N'); b_u8(&b, 'a');
    expect_pickle_fail(&b, "not a list", "APPEND to a dict");
    pk_begin(&b); b_u8(&b, 'K'); b_u8(&b, 1); b_u8(&b, 'N'); b_u8(&b, 'N'); b_u8(&b, 's');
    expect_pickle_fail(&b, "not a dict", "SETITEM on an int");
    pk_begin(&b); b_u8(&b, 'K'); b_u8(&b, 1); b_u8(&b, 'N'); b_u8(&b, 'b');
    expect_pickle_fail(&b, "BUILD", "BUILD on an int");
    pk_begin(&b); b_u8(&b, 0x80); b_u8(&b, 9);
    expect_pickle_fail(&b, "protocol", "PROTO 9");
    pk_begin(&b);
    expect_pickle_fail(&b, "without STOP", "no STOP");
    pk_begin(&b); b_u8(&b, 0x8a); b_u8(&b, 9);
    expect_pickle_fail(&b, "too large", "LONG1 of 9 bytes");
    pk_begin(&b); b_u8(&b, 0x8b); b_u32(&b, 1); b_u8(&b, 1);
    expect_pickle_fail(&b, "LONG4", "LONG4");
    b.n = 0; b_u8(&b, 0x80); b_u8(&b, 2); b_u8(&b, 'K'); b_u8(&b, 3); b_u8(&b, '.');
    expect_pickle_fail(&b, "top-level", "top-level int");
    b_free(&b);
}

/* calls with wrong arguments, persistent ids that are not storages */
static void test_bad_pickle_calls(void) {
    buf_t b = {NULL, 0, 0};
    int i;
    pk_begin(&b); b_u8(&b, '0'); pk_global(&b, "collections", "OrderedDict"); b_u8(&b, 'K'); b_u8(&b, 1);
    b_u8(&b, 0x85); b_u8(&b, 'R');
    expect_pickle_fail(&b, "unexpected arguments (1) to collections.OrderedDict", "OrderedDict(1)");
    pk_begin(&b); pk_global(&b, "torch._utils", "_rebuild_tensor_v2"); b_u8(&b, 'N'); b_u8(&b, 0x85); b_u8(&b, 'R');
    expect_pickle_fail(&b, "unexpected arguments (1)", "rebuild with 1 arg");
    pk_begin(&b); pk_global(&b, "torch._utils", "_rebuild_tensor_v2"); b_u8(&b, '(');
    for (i = 0; i < 6; i++) b_u8(&b, 'N');
    b_u8(&b, 't'); b_u8(&b, 'R');
    expect_pickle_fail(&b, "not a storage", "rebuild with None storage");
    pk_begin(&b); pk_global(&b, "torch._utils", "_rebuild_parameter"); b_u8(&b, 'N'); b_u8(&b, 'N');
    b_u8(&b, 'N'); b_u8(&b, 0x87); b_u8(&b, 'R');
    expect_pickle_fail(&b, "_rebuild_parameter", "parameter of None");
    pk_begin(&b); b_u8(&b, 'K'); b_u8(&b, 1); b_u8(&b, 0x85); b_u8(&b, 'Q');
    expect_pickle_fail(&b, "persistent id", "BINPERSID of (1,)");
    pk_begin(&b); b_u8(&b, '('); pk_str(&b, "storage"); pk_global(&b, "collections", "OrderedDict");
    pk_str(&b, "0"); pk_str(&b, "cpu"); b_u8(&b, 'K'); b_u8(&b, 1); b_u8(&b, 't'); b_u8(&b, 'Q');
    expect_pickle_fail(&b, "storage type", "BINPERSID with a non-storage type");
    pk_begin(&b); b_u8(&b, 'N'); b_u8(&b, ')'); b_u8(&b, 'R');
    expect_pickle_fail(&b, "not an allowed global", "REDUCE on None");
    pk_begin(&b); pk_global(&b, "torch._utils", "_rebuild_tensor_v2"); b_u8(&b, ')'); b_u8(&b, 0x81);
    expect_pickle_fail(&b, "NEWOBJ", "NEWOBJ of a function");
    b_free(&b);
}

/* recursive / shared dicts never hang */
static void test_bad_pickle_shared_dicts(void) {
    buf_t b = {NULL, 0, 0};
    int i;
    pk_begin(&b); b_u8(&b, 'q'); b_u8(&b, 0); pk_str(&b, "self"); b_u8(&b, 'h'); b_u8(&b, 0);
    b_u8(&b, 's'); b_u8(&b, '.');
    expect_pickle_fail(&b, "nested deeper than 64", "dict containing itself");
    b.n = 0; b_u8(&b, 0x80); b_u8(&b, 2); b_u8(&b, '}');            /* D0 = {} */
    for (i = 0; i < 60; i++) {                                        /* Di = {a: Di-1, b: Di-1} */
        b_u8(&b, 'q'); b_u8(&b, 0); b_u8(&b, '}'); b_u8(&b, '(');
        pk_str(&b, "a"); b_u8(&b, 'h'); b_u8(&b, 0); pk_str(&b, "b"); b_u8(&b, 'h'); b_u8(&b, 0);
        b_u8(&b, 'u');
    }
    b_u8(&b, '.');
    expect_pickle_fail(&b, "dict entries", "2^60 paths through shared dicts");
    b_free(&b);
}

/* accepted oddities: a self-referencing list value is skipped; nested dicts, int keys */
static void test_pickle_oddities(void) {
    buf_t b = {NULL, 0, 0};
    int i;
    tb_file f;
    char err[512];
    zout z;
    zopt o;
    memset(&o, 0, sizeof o);
    b.n = 0; b_u8(&b, 0x80); b_u8(&b, 2); b_u8(&b, '}'); b_u8(&b, '(');
    pk_str(&b, "cyc"); b_u8(&b, ']'); b_u8(&b, 'q'); b_u8(&b, 1); b_u8(&b, 'h'); b_u8(&b, 1); b_u8(&b, 'a');
    pk_str(&b, "sub"); b_u8(&b, '}'); b_u8(&b, 'K'); b_u8(&b, 4);
    pk_tensor(&b, &good_specs[4]);
    b_u8(&b, 's');
    pk_str(&b, "x"); b_u8(&b, 'G'); for (i = 0; i < 8; i++) b_u8(&b, 0x40);
    b_u8(&b, 'u'); b_u8(&b, '.');
    make_file(b.p, b.n, &o, &z);
    i = tb_read_memory(z.b.p, z.b.n, "odd", &f, err, sizeof err);
    CHECK(i == 0 && f.n == 1 && !strcmp(f.tensors[0].name, "sub.4") && f.tensors[0].nbytes == 40,
          "cyclic list skipped, nested int key: %s", err);
    if (i == 0) tb_free(&f);
    b_free(&z.b);
    b_free(&b);
}

/* protocol 4 style: FRAME, MEMOIZE, SHORT_BINUNICODE, STACK_GLOBAL, _rebuild_from_type_v2 */
static void test_pickle_protocol4(void) {
    buf_t b = {NULL, 0, 0};
    int i;
    tb_file f;
    char err[512];
    zout z;
    zopt o;
    memset(&o, 0, sizeof o);
    b.n = 0; b_u8(&b, 0x80); b_u8(&b, 4); b_u8(&b, 0x95); b_u64(&b, 100);
    b_u8(&b, 0x8c); b_u8(&b, 11); b_put(&b, "collections", 11); b_u8(&b, 0x94);
    b_u8(&b, 0x8c); b_u8(&b, 11); b_put(&b, "OrderedDict", 11); b_u8(&b, 0x94);
    b_u8(&b, 0x93); b_u8(&b, 0x94); b_u8(&b, ')'); b_u8(&b, 'R'); b_u8(&b, 0x94);
    b_u8(&b, 0x8c); b_u8(&b, 1); b_u8(&b, 'w'); b_u8(&b, 0x94);
    pk_global(&b, "torch._tensor", "_rebuild_from_type_v2");
    b_u8(&b, '(');
    pk_global(&b, "torch", "_utils._rebuild_tensor_v2");   /* the dotted-name form */
    pk_global(&b, "torch.nn.parameter", "Parameter");
    b_u8(&b, '(');
    b_u8(&b, '('); pk_str(&b, "storage"); pk_global(&b, "torch", "LongStorage"); pk_str(&b, "2");
    pk_str(&b, "cpu"); b_u8(&b, 'K'); b_u8(&b, 5); b_u8(&b, 't'); b_u8(&b, 'Q');
    b_u8(&b, 'K'); b_u8(&b, 0); b_u8(&b, 'K'); b_u8(&b, 5); b_u8(&b, 0x85); b_u8(&b, 'K'); b_u8(&b, 1);
    b_u8(&b, 0x85); b_u8(&b, 0x89); b_u8(&b, 'N'); b_u8(&b, 't');
    b_u8(&b, '}'); b_u8(&b, 't'); b_u8(&b, 'R');
    b_u8(&b, 's'); b_u8(&b, 'N'); b_u8(&b, 'b'); b_u8(&b, '.');
    make_file(b.p, b.n, &o, &z);
    i = tb_read_memory(z.b.p, z.b.n, "p4", &f, err, sizeof err);
    CHECK(i == 0 && f.n == 1 && !strcmp(f.tensors[0].name, "w") && f.tensors[0].nbytes == 40 &&
          !memcmp(f.tensors[0].data, S2, 40), "protocol 4 opcodes: %s", err);
    if (i == 0) tb_free(&f);
    b_free(&z.b);
    b_free(&b);
}

#ifndef TB_FUZZ_ITERS
#define TB_FUZZ_ITERS 3000 /* random multi-byte mutations; raise with -D for a longer run */
#endif

/* The real pickle of a torch.save file (memo, BINGET, shared storages), every byte replaced by
   several values, re-zipped with the file's own storages and a valid CRC: never crash or leak. */
static void test_real_pickle_fuzz(const char *path) {
    size_t n, i, k;
    unsigned char *raw = test_read_file(path, &n), *cp;
    tb__src src;
    tb__zip zp;
    zin e[MAXE];
    int ne = 0, pki = -1, runs = 0, okn = 0, rc;
    static const unsigned vals[] = {0x00, 0xFF, 0x80, '(', 't', 'R', 'h', 'q', 'u', 's', '.'};
    zopt o;
    zout z;
    tb_file f;
    char err[512];
    if (!raw) { printf("note: %s not present, skipped\n", path); return; }
    memset(&src, 0, sizeof src);
    memset(&o, 0, sizeof o);
    src.mem = raw;
    src.size = n;
    src.label = path;
    src.err = err;
    src.errlen = sizeof err;
    rc = tb__zip_open(&src, &zp);
    CHECK(rc == 0 && zp.n <= MAXE, "%s: zip entries: %s", path, err);
    if (rc || zp.n > MAXE) { if (!rc) tb__zip_free(&zp); free(raw); return; }
    for (i = 0; i < zp.n; i++) {
        char *nm = (char *)malloc(zp.ents[i].nlen + 1);
        memcpy(nm, zp.ents[i].name, zp.ents[i].nlen);
        nm[zp.ents[i].nlen] = 0;
        rc = tb__zip_resolve(&src, &zp, &zp.ents[i]);
        CHECK(rc == 0, "%s: %s", path, err);
        e[ne].name = nm;
        e[ne].data = raw + zp.ents[i].data_off;
        e[ne].len = (size_t)zp.ents[i].usize;
        if (strstr(nm, "/data.pkl")) pki = ne;
        ne++;
    }
    tb__zip_free(&zp);
    CHECK(pki >= 0, "%s: data.pkl", path);
    if (pki >= 0) {
        const unsigned char *orig = e[pki].data;
        size_t pn = e[pki].len;
        cp = (unsigned char *)malloc(pn);
        e[pki].data = cp;
        memcpy(cp, orig, pn);
        zip_build(e, ne, &o, &z); /* rebuilt unchanged: still reads */
        rc = tb_read_memory(z.b.p, z.b.n, "rebuilt", &f, err, sizeof err);
        CHECK(rc == 0 && f.n > 0, "%s rebuilt: %s", path, err);
        if (rc == 0) tb_free(&f);
        b_free(&z.b);
        for (i = 0; i < pn; i++) {
            for (k = 0; k < sizeof vals / sizeof vals[0]; k++) {
                memcpy(cp, orig, pn);
                if (cp[i] == vals[k]) continue;
                cp[i] = (unsigned char)vals[k];
                zip_build(e, ne, &o, &z);
                runs++;
                if (tb_read_memory(z.b.p, z.b.n, "mut", &f, err, sizeof err) == 0) { okn++; tb_free(&f); }
                else CHECK(err[0], "mutation without a message");
                b_free(&z.b);
            }
        }
        memcpy(cp, orig, pn);
        for (i = 0; i < pn; i++) { /* every truncation of the real pickle fails */
            e[pki].len = i;
            zip_build(e, ne, &o, &z);
            rc = tb_read_memory(z.b.p, z.b.n, "ptrunc", &f, err, sizeof err);
            CHECK(rc == -1 && err[0], "%s: pickle truncated to %zu bytes reads", path, i);
            if (rc == 0) tb_free(&f);
            b_free(&z.b);
        }
        e[pki].len = pn;
        free(cp);
        printf("note: %s: %d mutations of its pickle, %d still read\n", path, runs, okn);
    }
    for (i = 0; i < (size_t)ne; i++) free((void *)e[i].name);
    free(raw);
}

/* Every truncation of the pickle (re-zipped with a valid CRC) fails; every byte of the pickle
   replaced by several values and random multi-byte mutations never crash or leak. */
static void test_pickle_fuzz(void) {
    buf_t pk = {NULL, 0, 0};
    unsigned char *cp;
    size_t i, n;
    int v, allfail = 1, okn = 0, runs = 0;
    uint32_t rng = 12345;
    static const unsigned vals[] = {0x00, 0xFF, 0x80, 0x7F, '(', 't', 'R', 'q', 'h', 0x01};
    zout z;
    zopt o;
    tb_file f;
    char err[512];
    memset(&o, 0, sizeof o);
    pk_state_dict(&pk, good_specs, NGOOD);
    n = pk.n;
    cp = (unsigned char *)malloc(n);
    for (i = 0; i < n; i++) {
        make_file(pk.p, i, &o, &z);
        if (tb_read_memory(z.b.p, z.b.n, "ptrunc", &f, err, sizeof err) == 0) { allfail = 0; tb_free(&f); }
        else if (!err[0]) allfail = 0;
        b_free(&z.b);
    }
    CHECK(allfail, "every truncation of the pickle fails with a message");
    for (i = 0; i < n; i++) {
        for (v = 0; v < (int)(sizeof vals / sizeof vals[0]); v++) {
            memcpy(cp, pk.p, n);
            if (cp[i] == vals[v]) continue;
            cp[i] = (unsigned char)vals[v];
            make_file(cp, n, &o, &z);
            runs++;
            if (tb_read_memory(z.b.p, z.b.n, "pmut", &f, err, sizeof err) == 0) { okn++; tb_free(&f); }
            else CHECK(err[0], "mutation without a message");
            b_free(&z.b);
        }
    }
    for (v = 0; v < TB_FUZZ_ITERS; v++) {
        int k, nm = 1 + (int)((rng >> 8) % 6);
        memcpy(cp, pk.p, n);
        for (k = 0; k < nm; k++) {
            rng = rng * 1103515245u + 12345u;
            cp[(rng >> 8) % n] = (unsigned char)(rng >> 20);
        }
        make_file(cp, n, &o, &z);
        runs++;
        if (tb_read_memory(z.b.p, z.b.n, "prand", &f, err, sizeof err) == 0) { okn++; tb_free(&f); }
        else CHECK(err[0], "mutation without a message");
        b_free(&z.b);
    }
    CHECK(1, "pickle mutations survived");
    printf("note: %d pickle mutations, %d still read\n", runs, okn);
    /* whole-file random mutations (ZIP structures included) */
    make_file(pk.p, n, &o, &z);
    free(cp);
    cp = (unsigned char *)malloc(z.b.n);
    okn = 0;
    for (v = 0; v < 2 * TB_FUZZ_ITERS; v++) {
        int k, nm = 1 + (int)((rng >> 8) % 4);
        memcpy(cp, z.b.p, z.b.n);
        for (k = 0; k < nm; k++) {
            rng = rng * 1103515245u + 12345u;
            cp[(rng >> 8) % z.b.n] = (unsigned char)(rng >> 20);
        }
        if (tb_read_memory(cp, z.b.n, "zrand", &f, err, sizeof err) == 0) { okn++; tb_free(&f); }
    }
    CHECK(1, "file mutations survived");
    printf("note: %d file mutations, %d still read\n", 2 * TB_FUZZ_ITERS, okn);
    free(cp);
    b_free(&z.b);
    b_free(&pk);
}

int main(void) {
    init_storages();
    test_golden();
    test_golden_mutations("tests/data/torchbin/views.bin");
    test_golden_mutations("tests/data/torchbin-dtypes.bin");
    test_synthetic_good();
    test_zip_corruptions();
    test_bad_tensors();
    test_bad_pickle_globals();
    test_bad_pickle_nesting();
    test_bad_pickle_strings();
    test_bad_pickle_stack();
    test_bad_pickle_calls();
    test_bad_pickle_shared_dicts();
    test_pickle_oddities();
    test_pickle_protocol4();
    test_pickle_fuzz();
    test_real_pickle_fuzz("tests/data/torchbin/views.bin");
    test_real_pickle_fuzz("tests/data/torchbin/module.bin");
    return TEST_END();
}
