/* torchbin.c — PyTorch checkpoint (torch.save, ZIP format) reader. See torchbin.h.

   Layout of a torch.save file (torch >= 1.6): a ZIP archive of stored (uncompressed) entries
       PREFIX/data.pkl      pickle (protocol 2) of the saved object, usually an OrderedDict
       PREFIX/data/KEY      raw little-endian bytes of one storage
       PREFIX/version, PREFIX/byteorder (newer torch), ...
   A tensor in the pickle is  torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
   requires_grad, backward_hooks[, metadata])  where storage is a BINPERSID of the tuple
   ('storage', torch.FloatStorage, KEY, location, numel).

   Nothing here recurses on file-controlled data: the pickle machine is a loop over opcodes,
   containers are built bottom-up, all objects live in a pool freed as a flat list, and the
   flattening of nested dicts uses an explicit, bounded stack. */
#include "torchbin.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef TB_MALLOC
#define TB_MALLOC(n) malloc(n)
#define TB_REALLOC(p, n) realloc(p, n)
#define TB_FREE(p) free(p)
#endif

#ifndef TB_MAX_PICKLE_BYTES
#define TB_MAX_PICKLE_BYTES ((uint64_t)64 << 20)
#endif
#ifndef TB_MAX_STACK
#define TB_MAX_STACK 262144
#endif
#ifndef TB_MAX_DEPTH
#define TB_MAX_DEPTH 1000
#endif
#ifndef TB_MAX_MEMO
#define TB_MAX_MEMO 4194304
#endif
#ifndef TB_MAX_OBJECTS
#define TB_MAX_OBJECTS 8388608
#endif
#ifndef TB_MAX_STRING
#define TB_MAX_STRING ((uint64_t)1 << 20)
#endif
#ifndef TB_MAX_TENSORS
#define TB_MAX_TENSORS 262144
#endif
#ifndef TB_MAX_ENTRIES
#define TB_MAX_ENTRIES 1048576
#endif
#ifndef TB_MAX_CD_BYTES
#define TB_MAX_CD_BYTES ((uint64_t)256 << 20)
#endif
#ifndef TB_MAX_DICT_NEST
#define TB_MAX_DICT_NEST 64
#endif
#ifndef TB_MAX_TOTAL_BYTES
#define TB_MAX_TOTAL_BYTES ((uint64_t)128 << 30)
#endif
#ifndef TB_EXPAND_FACTOR
#define TB_EXPAND_FACTOR 16
#endif

/* ------------------------------------------------------------------------------------------ */
/* small helpers                                                                              */

TB_API size_t tb_dtype_size(tb_dtype t) {
    switch (t) {
    case TB_F64: case TB_I64: return 8;
    case TB_F32: case TB_I32: return 4;
    case TB_F16: case TB_BF16: case TB_I16: return 2;
    case TB_I8: case TB_U8: case TB_BOOL: return 1;
    }
    return 0;
}

TB_API const char *tb_dtype_name(tb_dtype t) {
    switch (t) {
    case TB_F32: return "f32";
    case TB_F16: return "f16";
    case TB_BF16: return "bf16";
    case TB_F64: return "f64";
    case TB_I64: return "i64";
    case TB_I32: return "i32";
    case TB_I16: return "i16";
    case TB_I8: return "i8";
    case TB_U8: return "u8";
    case TB_BOOL: return "bool";
    }
    return "?";
}

static uint16_t tb__u16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t tb__u32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t tb__u64(const unsigned char *p) {
    return (uint64_t)tb__u32(p) | ((uint64_t)tb__u32(p + 4) << 32);
}

/* Copy at most 80 bytes of s into out as printable ASCII (others become '?'). */
static const char *tb__printable(const unsigned char *s, size_t len, char *out, size_t outlen) {
    size_t i, n = len < outlen - 4 ? len : outlen - 4;
    for (i = 0; i < n; i++) out[i] = (s[i] >= 32 && s[i] < 127) ? (char)s[i] : '?';
    if (n < len) { out[n++] = '.'; out[n++] = '.'; out[n++] = '.'; }
    out[n] = 0;
    return out;
}

/* ------------------------------------------------------------------------------------------ */
/* byte source: a memory buffer or a FILE*                                                    */

typedef struct {
    const unsigned char *mem;
    FILE *fp;
    uint64_t size;
    const char *label;
    char *err;
    size_t errlen;
    uint32_t crc_table[8][256];
} tb__src;

static int tb__fail(tb__src *s, const char *fmt, ...) {
    if (s->err && s->errlen) {
        va_list ap;
        int k = snprintf(s->err, s->errlen, "%s: ", s->label);
        if (k < 0) k = 0;
        if ((size_t)k < s->errlen) {
            va_start(ap, fmt);
            vsnprintf(s->err + k, s->errlen - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

static int tb__seek(FILE *fp, uint64_t off) {
#if defined(_WIN32)
    if (off > (uint64_t)INT64_MAX) return -1;
    return _fseeki64(fp, (__int64)off, SEEK_SET);
#else
    if (off > (uint64_t)LONG_MAX) return -1;
    return fseek(fp, (long)off, SEEK_SET);
#endif
}

/* Read n bytes at off into dst; fails (with a message naming `what`) outside the source. */
static int tb__read_at(tb__src *s, uint64_t off, void *dst, size_t n, const char *what) {
    if (off > s->size || (uint64_t)n > s->size - off)
        return tb__fail(s, "%s: bytes %llu..%llu lie outside the file (%llu bytes); truncated or "
                        "corrupt", what, (unsigned long long)off,
                        (unsigned long long)off + (unsigned long long)n,
                        (unsigned long long)s->size);
    if (n == 0) return 0;
    if (s->mem) { memcpy(dst, s->mem + off, n); return 0; }
    if (tb__seek(s->fp, off) != 0 || fread(dst, 1, n, s->fp) != n)
        return tb__fail(s, "%s: read error at byte %llu", what, (unsigned long long)off);
    return 0;
}

/* CRC-32 (ZIP's polynomial 0xEDB88320), eight bytes per step with eight tables. */
static void tb__crc_init(tb__src *s) {
    uint32_t i, k, c;
    for (i = 0; i < 256; i++) {
        c = i;
        for (k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        s->crc_table[0][i] = c;
    }
    for (i = 0; i < 256; i++)
        for (k = 1; k < 8; k++)
            s->crc_table[k][i] = (s->crc_table[k - 1][i] >> 8) ^
                                 s->crc_table[0][s->crc_table[k - 1][i] & 0xFF];
}
static uint32_t tb__crc(const tb__src *s, const unsigned char *p, size_t n) {
    const uint32_t(*t)[256] = s->crc_table;
    uint32_t c = 0xFFFFFFFFu, h;
    for (; n >= 8; n -= 8, p += 8) {
        c ^= tb__u32(p);
        h = tb__u32(p + 4);
        c = t[7][c & 0xFF] ^ t[6][(c >> 8) & 0xFF] ^ t[5][(c >> 16) & 0xFF] ^ t[4][c >> 24] ^
            t[3][h & 0xFF] ^ t[2][(h >> 8) & 0xFF] ^ t[1][(h >> 16) & 0xFF] ^ t[0][h >> 24];
    }
    for (; n; n--, p++) c = t[0][(c ^ *p) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

/* ------------------------------------------------------------------------------------------ */
/* ZIP (stored entries only), APPNOTE 4.3.x: EOCD, ZIP64 EOCD locator/record, central directory,
   ZIP64 extended information extra field (0x0001), local file headers.                       */

typedef struct {
    const char *name;   /* points into the central directory copy; not NUL-terminated */
    size_t nlen;
    unsigned method, flags;
    uint32_t crc;
    uint64_t csize, usize, lho;
    uint64_t data_off;  /* valid once resolved */
    int resolved;
} tb__zent;

typedef struct {
    unsigned char *cd;
    tb__zent *ents;
    size_t n;
    uint64_t cd_off;    /* entry data must end before the central directory */
} tb__zip;

static int tb__zent_cmp(const void *a, const void *b) {
    const tb__zent *x = (const tb__zent *)a, *y = (const tb__zent *)b;
    size_t m = x->nlen < y->nlen ? x->nlen : y->nlen;
    int c = memcmp(x->name, y->name, m);
    if (c) return c;
    return x->nlen < y->nlen ? -1 : x->nlen > y->nlen ? 1 : 0;
}

static tb__zent *tb__zip_find(tb__zip *z, const char *name, size_t nlen) {
    tb__zent key;
    memset(&key, 0, sizeof key);
    key.name = name;
    key.nlen = nlen;
    if (!z->n) return NULL;
    return (tb__zent *)bsearch(&key, z->ents, z->n, sizeof *z->ents, tb__zent_cmp);
}

static void tb__zip_free(tb__zip *z) {
    TB_FREE(z->cd);
    TB_FREE(z->ents);
    z->cd = NULL;
    z->ents = NULL;
    z->n = 0;
}

static const unsigned char tb__legacy_magic[] = {
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

#define TB__HEAD_BYTES 16

/* Where the central directory lies, as the end records give it. */
typedef struct {
    uint64_t eocd;              /* the (ZIP64) end record: the central directory ends before it */
    uint64_t nent, cd_size, cd_off;
} tb__zip_end;

/* Reads the first bytes into head (*tl of them) and refuses, by name, the files people mistake
   for a torch.save archive (old torch formats, safetensors, a bare pickle): a plain "no ZIP
   end record" would not tell them what to do. */
static int tb__zip_sniff(tb__src *s, unsigned char *head, size_t *tl) {
    size_t n = s->size < TB__HEAD_BYTES ? (size_t)s->size : TB__HEAD_BYTES;
    *tl = n;
    if (tb__read_at(s, 0, head, n, "file header")) return -1;
    if (n >= sizeof tb__legacy_magic && !memcmp(head, tb__legacy_magic, sizeof tb__legacy_magic))
        return tb__fail(s, "legacy PyTorch format, re-save with torch>=1.6 (this file was "
                        "written by torch < 1.6 or with _use_new_zipfile_serialization=False)");
    if (n >= 9 && head[8] == '{' && tb__u64(head) > 1 && tb__u64(head) <= s->size - 8)
        return tb__fail(s, "this is a safetensors file, not a PyTorch .bin checkpoint");
    if (n >= 3 && head[0] == 0x80 && head[1] >= 1 && head[1] <= 5 && head[2] != 0)
        return tb__fail(s, "not a ZIP archive: the file is a bare pickle (legacy PyTorch format? "
                        "re-save with torch>=1.6)");
    if (s->size < 22)
        return tb__fail(s, "not a PyTorch checkpoint: %llu bytes is too small for a ZIP archive",
                        (unsigned long long)s->size);
    return 0;
}

/* The end of central directory record: 22 bytes + a comment of at most 65535 bytes, at the end
   of the file. head / tl (the first bytes) only choose the message when there is none. */
static int tb__zip_read_eocd(tb__src *s, const unsigned char *head, size_t tl, tb__zip_end *end) {
    unsigned char *tail;
    uint64_t tail_len = s->size < 22 + 65535 ? s->size : 22 + 65535;
    size_t i, p;
    int found = 0;
    tail = (unsigned char *)TB_MALLOC((size_t)tail_len);
    if (!tail) return tb__fail(s, "out of memory");
    if (tb__read_at(s, s->size - tail_len, tail, (size_t)tail_len, "ZIP end record")) {
        TB_FREE(tail);
        return -1;
    }
    /* the last signature whose comment ends exactly at the end of the file; failing that, the
       last one whose comment fits (some writers append bytes) */
    for (i = 0; i < 2 && !found; i++) {
        for (p = (size_t)tail_len - 22 + 1; p-- > 0;) {
            uint64_t rec_end = p + 22 + (uint64_t)tb__u16(tail + p + 20);
            if (tail[p] == 'P' && tail[p + 1] == 'K' && tail[p + 2] == 5 && tail[p + 3] == 6 &&
                (i == 0 ? rec_end == tail_len : rec_end <= tail_len)) {
                found = 1;
                break;
            }
        }
    }
    if (!found) {
        int zipstart = tl >= 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4;
        TB_FREE(tail);
        return tb__fail(s, zipstart ? "ZIP end of central directory record not found (file "
                                      "truncated?)"
                                    : "not a PyTorch checkpoint (no ZIP end of central directory "
                                      "record)");
    }
    end->eocd = s->size - tail_len + p;
    /* disk numbers 0 (or saturated 0xFFFF when the ZIP64 record holds the real values) */
    if ((tb__u16(tail + p + 4) != 0 && tb__u16(tail + p + 4) != 0xFFFF) ||
        (tb__u16(tail + p + 6) != 0 && tb__u16(tail + p + 6) != 0xFFFF) ||
        tb__u16(tail + p + 8) != tb__u16(tail + p + 10)) {
        TB_FREE(tail);
        return tb__fail(s, "multi-disk ZIP archives are not supported");
    }
    end->nent = tb__u16(tail + p + 10);
    end->cd_size = tb__u32(tail + p + 12);
    end->cd_off = tb__u32(tail + p + 16);
    TB_FREE(tail);
    return 0;
}

/* ZIP64: a locator (20 bytes) right before the end record points at the ZIP64 end record, which
   holds the real entry count and directory size and offset when the classic fields saturate. */
static int tb__zip_read_zip64(tb__src *s, tb__zip_end *end) {
    unsigned char loc[20], rec[56];
    uint64_t r;
    if (end->eocd < 20) return 0;
    if (tb__read_at(s, end->eocd - 20, loc, 20, "ZIP64 locator")) return -1;
    if (tb__u32(loc) != 0x07064b50u) {
        if (end->nent == 0xFFFF || end->cd_size == 0xFFFFFFFFu || end->cd_off == 0xFFFFFFFFu)
            return tb__fail(s, "ZIP end record needs ZIP64 but the ZIP64 locator is missing");
        return 0;
    }
    r = tb__u64(loc + 8);
    if (tb__u32(loc + 4) != 0 || tb__u32(loc + 16) > 1)
        return tb__fail(s, "multi-disk ZIP64 archives are not supported");
    if (r > end->eocd - 20 || end->eocd - 20 - r < 56)
        return tb__fail(s, "ZIP64 end record offset %llu is out of range", (unsigned long long)r);
    if (tb__read_at(s, r, rec, 56, "ZIP64 end record")) return -1;
    if (tb__u32(rec) != 0x06064b50u)
        return tb__fail(s, "bad ZIP64 end record signature at byte %llu", (unsigned long long)r);
    if (tb__u32(rec + 16) != 0 || tb__u32(rec + 20) != 0 || tb__u64(rec + 24) != tb__u64(rec + 32))
        return tb__fail(s, "multi-disk ZIP64 archives are not supported");
    end->nent = tb__u64(rec + 32);
    end->cd_size = tb__u64(rec + 40);
    end->cd_off = tb__u64(rec + 48);
    end->eocd = r; /* the central directory ends before the ZIP64 record */
    return 0;
}

/* The central directory must lie before the end record and be small enough to hold in memory:
   checked before it is allocated, since every number here comes from the file. */
static int tb__zip_check_cd(tb__src *s, const tb__zip_end *end) {
    if (end->cd_off > end->eocd || end->cd_size > end->eocd - end->cd_off)
        return tb__fail(s, "ZIP central directory (offset %llu, %llu bytes) lies outside the "
                        "file (end record at %llu)", (unsigned long long)end->cd_off,
                        (unsigned long long)end->cd_size, (unsigned long long)end->eocd);
    if (end->nent == 0) return tb__fail(s, "empty ZIP archive");
    if (end->nent > TB_MAX_ENTRIES)
        return tb__fail(s, "ZIP archive has %llu entries (limit %d)", (unsigned long long)end->nent,
                        (int)TB_MAX_ENTRIES);
    if (end->nent > end->cd_size / 46)
        return tb__fail(s, "ZIP central directory of %llu bytes cannot hold %llu entries",
                        (unsigned long long)end->cd_size, (unsigned long long)end->nent);
    if (end->cd_size > TB_MAX_CD_BYTES || end->cd_size > (uint64_t)SIZE_MAX - 1)
        return tb__fail(s, "ZIP central directory of %llu bytes is larger than the limit %llu",
                        (unsigned long long)end->cd_size, (unsigned long long)TB_MAX_CD_BYTES);
    return 0;
}

/* ZIP64 extended information extra field (0x0001) in x[0..xe): holds only the fields the central
   directory saturated to 0xFFFFFFFF, in the order usize, csize, lho. Returns 1 when it was
   found and complete, 0 when it is missing, -1 when it is too short. */
static int tb__zip64_extra(tb__zent *e, const unsigned char *x, const unsigned char *xe) {
    while (xe - x >= 4) {
        unsigned id = tb__u16(x), sz = tb__u16(x + 2);
        const unsigned char *d = x + 4, *de;
        if ((size_t)(xe - d) < sz) break;
        de = d + sz;
        if (id == 0x0001) {
            if (e->usize == 0xFFFFFFFFu) {
                if (de - d < 8) return -1;
                e->usize = tb__u64(d); d += 8;
            }
            if (e->csize == 0xFFFFFFFFu) {
                if (de - d < 8) return -1;
                e->csize = tb__u64(d); d += 8;
            }
            if (e->lho == 0xFFFFFFFFu) {
                if (de - d < 8) return -1;
                e->lho = tb__u64(d);
            }
            return 1;
        }
        x = de;
    }
    return 0;
}

/* Central directory entry i, at byte pos of the directory, into z->ents[i]; *len is its size in
   the directory. The caller frees z on failure (the message is written first, as it may quote
   the entry's name, which points into z->cd). */
static int tb__zip_parse_entry(tb__src *s, tb__zip *z, size_t i, uint64_t pos, uint64_t cd_size,
                               uint64_t *len) {
    const unsigned char *h = z->cd + pos;
    tb__zent *e = &z->ents[i];
    uint64_t nl, xl, cl;
    if (cd_size - pos < 46 || tb__u32(h) != 0x02014b50u)
        return tb__fail(s, "bad ZIP central directory entry %llu at byte %llu",
                        (unsigned long long)i, (unsigned long long)(z->cd_off + pos));
    nl = tb__u16(h + 28);
    xl = tb__u16(h + 30);
    cl = tb__u16(h + 32);
    if (46 + nl + xl + cl > cd_size - pos)
        return tb__fail(s, "ZIP central directory entry %llu overruns the directory",
                        (unsigned long long)i);
    memset(e, 0, sizeof *e);
    e->flags = tb__u16(h + 8);
    e->method = tb__u16(h + 10);
    e->crc = tb__u32(h + 16);
    e->csize = tb__u32(h + 20);
    e->usize = tb__u32(h + 24);
    e->lho = tb__u32(h + 42);
    e->name = (const char *)h + 46;
    e->nlen = (size_t)nl;
    if (tb__u16(h + 34) != 0 && tb__u16(h + 34) != 0xFFFF)
        return tb__fail(s, "multi-disk ZIP archives are not supported");
    if (e->usize == 0xFFFFFFFFu || e->csize == 0xFFFFFFFFu || e->lho == 0xFFFFFFFFu) {
        int got = tb__zip64_extra(e, h + 46 + nl, h + 46 + nl + xl);
        if (got != 1) {
            char nb[96];
            tb__printable((const unsigned char *)e->name, e->nlen, nb, sizeof nb);
            return tb__fail(s, "ZIP entry '%s' needs a ZIP64 extra field, which is %s", nb,
                            got ? "too short" : "missing");
        }
    }
    *len = 46 + nl + xl + cl;
    return 0;
}

/* Reads the central directory into z: entries sorted by name (tb__zip_find bisects them), two
   entries of the same name refused (which one torch would load is not defined). */
static int tb__zip_open(tb__src *s, tb__zip *z) {
    unsigned char head[TB__HEAD_BYTES];
    tb__zip_end end;
    uint64_t pos, len = 0;
    size_t i, tl;
    memset(z, 0, sizeof *z);
    memset(&end, 0, sizeof end);
    if (tb__zip_sniff(s, head, &tl) || tb__zip_read_eocd(s, head, tl, &end) ||
        tb__zip_read_zip64(s, &end) || tb__zip_check_cd(s, &end))
        return -1;
    z->cd = (unsigned char *)TB_MALLOC((size_t)end.cd_size + 1);
    z->ents = (tb__zent *)TB_MALLOC((size_t)end.nent * sizeof *z->ents);
    if (!z->cd || !z->ents) { tb__zip_free(z); return tb__fail(s, "out of memory"); }
    if (tb__read_at(s, end.cd_off, z->cd, (size_t)end.cd_size, "ZIP central directory")) {
        tb__zip_free(z);
        return -1;
    }
    z->cd_off = end.cd_off;
    for (i = 0, pos = 0; i < (size_t)end.nent; i++, pos += len) {
        if (tb__zip_parse_entry(s, z, i, pos, end.cd_size, &len)) {
            tb__zip_free(z);
            return -1;
        }
    }
    z->n = (size_t)end.nent;
    qsort(z->ents, z->n, sizeof *z->ents, tb__zent_cmp);
    for (i = 1; i < z->n; i++) {
        if (!tb__zent_cmp(&z->ents[i - 1], &z->ents[i])) {
            char nb[96];
            tb__printable((const unsigned char *)z->ents[i].name, z->ents[i].nlen, nb, sizeof nb);
            tb__zip_free(z);
            return tb__fail(s, "ZIP archive has two entries named '%s'", nb);
        }
    }
    return 0;
}

/* Check an entry is stored and find where its data begins (after the LOCAL header's name and
   extra field, whose lengths may differ from the central directory's). */
static int tb__zip_resolve(tb__src *s, tb__zip *z, tb__zent *e) {
    unsigned char h[30];
    char nb[96];
    uint64_t nl, xl, d;
    if (e->resolved) return 0;
    tb__printable((const unsigned char *)e->name, e->nlen, nb, sizeof nb);
    if (e->flags & 1) return tb__fail(s, "ZIP entry '%s' is encrypted", nb);
    if (e->method != 0)
        return tb__fail(s, "ZIP entry '%s' is compressed (method %u%s); only stored (method 0) "
                        "entries are supported, as torch.save writes them: re-save the checkpoint "
                        "with torch.save", nb, e->method, e->method == 8 ? " = deflate" : "");
    if (e->csize != e->usize)
        return tb__fail(s, "ZIP entry '%s' is stored but its sizes differ (%llu vs %llu)", nb,
                        (unsigned long long)e->csize, (unsigned long long)e->usize);
    if (e->lho > z->cd_off || z->cd_off - e->lho < 30)
        return tb__fail(s, "ZIP entry '%s': local header offset %llu is out of range", nb,
                        (unsigned long long)e->lho);
    if (tb__read_at(s, e->lho, h, 30, "ZIP local header")) return -1;
    if (tb__u32(h) != 0x04034b50u)
        return tb__fail(s, "ZIP entry '%s': bad local header signature at byte %llu", nb,
                        (unsigned long long)e->lho);
    if (tb__u16(h + 8) != e->method)
        return tb__fail(s, "ZIP entry '%s': local header says method %u, central directory %u",
                        nb, (unsigned)tb__u16(h + 8), e->method);
    nl = tb__u16(h + 26);
    xl = tb__u16(h + 28);
    if (nl != e->nlen)
        return tb__fail(s, "ZIP entry '%s': local header name differs from the central directory",
                        nb);
    d = e->lho + 30 + nl + xl;
    if (d > z->cd_off || e->usize > z->cd_off - d)
        return tb__fail(s, "ZIP entry '%s': data (byte %llu, %llu bytes) runs past the central "
                        "directory at %llu", nb, (unsigned long long)d,
                        (unsigned long long)e->usize, (unsigned long long)z->cd_off);
    for (d = 0; d < nl;) { /* compare the names in chunks */
        char chunk[256];
        size_t k = nl - d < sizeof chunk ? (size_t)(nl - d) : sizeof chunk;
        if (tb__read_at(s, e->lho + 30 + d, chunk, k, "ZIP local header name")) return -1;
        if (memcmp(chunk, e->name + d, k))
            return tb__fail(s, "ZIP entry '%s': local header name differs from the central "
                            "directory", nb);
        d += k;
    }
    d = e->lho + 30 + nl + xl;
    e->data_off = d;
    e->resolved = 1;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* pickle machine                                                                             */

enum {
    TB__NONE, TB__BOOL, TB__INT, TB__FLOAT, TB__STR, TB__TUPLE, TB__LIST, TB__DICT, TB__GLOBAL,
    TB__STORAGE, TB__TENSOR
};

enum {
    TB__G_ODICT = 1, TB__G_REBUILD_V2, TB__G_REBUILD_V1, TB__G_REBUILD_PARAM,
    TB__G_REBUILD_PARAM_STATE, TB__G_FROM_TYPE_V2, TB__G_TENSOR_TYPE, TB__G_PARAM_TYPE,
    TB__G_STORAGE /* + tb_dtype */
};

static const struct { const char *name; int id; } tb__allowed[] = {
    {"collections.OrderedDict", TB__G_ODICT},
    {"torch._utils._rebuild_tensor_v2", TB__G_REBUILD_V2},
    {"torch._utils._rebuild_tensor", TB__G_REBUILD_V1},
    {"torch._utils._rebuild_parameter", TB__G_REBUILD_PARAM},
    {"torch._utils._rebuild_parameter_with_state", TB__G_REBUILD_PARAM_STATE},
    {"torch._tensor._rebuild_from_type_v2", TB__G_FROM_TYPE_V2},
    {"torch.Tensor", TB__G_TENSOR_TYPE},
    {"torch._tensor.Tensor", TB__G_TENSOR_TYPE},
    {"torch.nn.parameter.Parameter", TB__G_PARAM_TYPE},
    {"torch.FloatStorage", TB__G_STORAGE + TB_F32},
    {"torch.HalfStorage", TB__G_STORAGE + TB_F16},
    {"torch.BFloat16Storage", TB__G_STORAGE + TB_BF16},
    {"torch.DoubleStorage", TB__G_STORAGE + TB_F64},
    {"torch.LongStorage", TB__G_STORAGE + TB_I64},
    {"torch.IntStorage", TB__G_STORAGE + TB_I32},
    {"torch.ShortStorage", TB__G_STORAGE + TB_I16},
    {"torch.CharStorage", TB__G_STORAGE + TB_I8},
    {"torch.ByteStorage", TB__G_STORAGE + TB_U8},
    {"torch.BoolStorage", TB__G_STORAGE + TB_BOOL},
};

typedef struct tb__obj tb__obj;
struct tb__obj {
    int type;
    int depth;                 /* container nesting below this object */
    int64_t i;                 /* INT/BOOL value, GLOBAL id, STORAGE/TENSOR index */
    const unsigned char *s;    /* STR bytes (inside the pickle buffer) */
    size_t len;                /* STR length; TUPLE/LIST items; DICT pairs */
    size_t cap;                /* allocated slots in items */
    tb__obj **items;           /* DICT: key0, value0, key1, value1, ... */
};

#define TB__BLOCK 1024
typedef struct tb__block {
    struct tb__block *next;
    size_t used;
    tb__obj objs[TB__BLOCK];
} tb__block;

typedef struct {
    const unsigned char *key;
    size_t klen;
    tb_dtype dtype;
    int64_t numel;
} tb__storage;

typedef struct {
    size_t storage;
    int64_t offset;
    int ndim;
    int64_t size[TB_MAX_DIMS], stride[TB_MAX_DIMS];
} tb__tinfo;

typedef struct {
    tb__src *src;
    const unsigned char *p;
    size_t n, pos, op_pos;
    tb__obj **stack;
    size_t sp, scap;
    size_t marks[TB_MAX_DEPTH];
    size_t nmarks;
    tb__obj **memo;
    size_t memocap, memocount;
    tb__block *blocks;
    size_t nobj;
    tb__storage *st;
    size_t nst, stcap;
    tb__tinfo *ti;
    size_t nti, ticap;
    tb__obj none_obj, true_obj, false_obj;
} tb__vm;

static int tb__vfail(tb__vm *vm, const char *fmt, ...) {
    tb__src *s = vm->src;
    if (s->err && s->errlen) {
        va_list ap;
        int k = snprintf(s->err, s->errlen, "%s: data.pkl byte %llu (opcode 0x%02x): ", s->label,
                         (unsigned long long)vm->op_pos,
                         vm->op_pos < vm->n ? (unsigned)vm->p[vm->op_pos] : 0u);
        if (k < 0) k = 0;
        if ((size_t)k < s->errlen) {
            va_start(ap, fmt);
            vsnprintf(s->err + k, s->errlen - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

static void tb__vm_free(tb__vm *vm) {
    tb__block *b = vm->blocks, *nb;
    size_t i;
    while (b) {
        nb = b->next;
        for (i = 0; i < b->used; i++) TB_FREE(b->objs[i].items);
        TB_FREE(b);
        b = nb;
    }
    vm->blocks = NULL;
    TB_FREE(vm->stack);
    TB_FREE(vm->memo);
    TB_FREE(vm->st);
    TB_FREE(vm->ti);
    vm->stack = NULL;
    vm->memo = NULL;
    vm->st = NULL;
    vm->ti = NULL;
}

static tb__obj *tb__new(tb__vm *vm, int type) {
    tb__obj *o;
    if (vm->nobj >= TB_MAX_OBJECTS) {
        tb__vfail(vm, "more than %d pickle objects", (int)TB_MAX_OBJECTS);
        return NULL;
    }
    if (!vm->blocks || vm->blocks->used == TB__BLOCK) {
        tb__block *b = (tb__block *)TB_MALLOC(sizeof *b);
        if (!b) { tb__vfail(vm, "out of memory"); return NULL; }
        b->next = vm->blocks;
        b->used = 0;
        vm->blocks = b;
    }
    o = &vm->blocks->objs[vm->blocks->used++];
    vm->nobj++;
    memset(o, 0, sizeof *o);
    o->type = type;
    return o;
}

/* Grow a pointer array to hold at least `need` entries (need is bounded by the callers). */
static int tb__grow(tb__vm *vm, tb__obj ***arr, size_t *cap, size_t need) {
    size_t nc;
    tb__obj **na;
    if (need <= *cap) return 0;
    nc = *cap ? *cap : 8;
    while (nc < need) nc *= 2;
    if (nc > SIZE_MAX / sizeof(tb__obj *)) return tb__vfail(vm, "out of memory");
    na = (tb__obj **)TB_REALLOC(*arr, nc * sizeof(tb__obj *));
    if (!na) return tb__vfail(vm, "out of memory");
    *arr = na;
    *cap = nc;
    return 0;
}

static size_t tb__base(const tb__vm *vm) { return vm->nmarks ? vm->marks[vm->nmarks - 1] : 0; }

static int tb__push(tb__vm *vm, tb__obj *o) {
    if (!o) return -1;
    if (vm->sp >= TB_MAX_STACK) return tb__vfail(vm, "pickle stack deeper than %d", TB_MAX_STACK);
    if (tb__grow(vm, &vm->stack, &vm->scap, vm->sp + 1)) return -1;
    vm->stack[vm->sp++] = o;
    return 0;
}

static tb__obj *tb__pop(tb__vm *vm) {
    if (vm->sp <= tb__base(vm)) {
        tb__vfail(vm, "pickle stack underflow");
        return NULL;
    }
    return vm->stack[--vm->sp];
}

static tb__obj *tb__top(tb__vm *vm) {
    if (vm->sp <= tb__base(vm)) {
        tb__vfail(vm, "pickle stack underflow");
        return NULL;
    }
    return vm->stack[vm->sp - 1];
}

/* Pop the innermost MARK; returns its stack position in *m. */
static int tb__pop_mark(tb__vm *vm, size_t *m) {
    if (!vm->nmarks) return tb__vfail(vm, "no MARK on the pickle stack");
    *m = vm->marks[--vm->nmarks];
    return 0;
}

static int tb__note_depth(tb__vm *vm, tb__obj *c, const tb__obj *child) {
    if (child->depth + 1 > c->depth) c->depth = child->depth + 1;
    if (c->depth > TB_MAX_DEPTH)
        return tb__vfail(vm, "containers nested deeper than %d", TB_MAX_DEPTH);
    return 0;
}

/* Append items[0..k) to list/tuple c, or k/2 key/value pairs to dict c. */
static int tb__extend(tb__vm *vm, tb__obj *c, tb__obj **items, size_t k) {
    size_t i, have = c->type == TB__DICT ? 2 * c->len : c->len;
    if (tb__grow(vm, &c->items, &c->cap, have + k)) return -1;
    for (i = 0; i < k; i++) {
        if (tb__note_depth(vm, c, items[i])) return -1;
        c->items[have + i] = items[i];
    }
    c->len += c->type == TB__DICT ? k / 2 : k;
    return 0;
}

static tb__obj *tb__make_seq(tb__vm *vm, int type, tb__obj **items, size_t k) {
    tb__obj *o = tb__new(vm, type);
    if (!o) return NULL;
    if (k && tb__extend(vm, o, items, k)) return NULL;
    return o;
}

static int tb__memo_put(tb__vm *vm, uint64_t idx) {
    tb__obj *o = tb__top(vm);
    size_t old;
    if (!o) return -1;
    if (idx >= TB_MAX_MEMO)
        return tb__vfail(vm, "memo index %llu exceeds the limit %d", (unsigned long long)idx,
                         TB_MAX_MEMO);
    old = vm->memocap;
    if (tb__grow(vm, &vm->memo, &vm->memocap, (size_t)idx + 1)) return -1;
    if (vm->memocap > old) memset(vm->memo + old, 0, (vm->memocap - old) * sizeof *vm->memo);
    if (!vm->memo[idx]) vm->memocount++;
    vm->memo[idx] = o;
    return 0;
}

static int tb__memo_get(tb__vm *vm, uint64_t idx) {
    if (idx >= vm->memocap || !vm->memo[idx])
        return tb__vfail(vm, "memo key %llu was never stored", (unsigned long long)idx);
    return tb__push(vm, vm->memo[idx]);
}

static int tb__need(tb__vm *vm, uint64_t k) {
    if (k > vm->n - vm->pos)
        return tb__vfail(vm, "pickle truncated (opcode needs %llu more bytes, %llu left)",
                         (unsigned long long)k, (unsigned long long)(vm->n - vm->pos));
    return 0;
}

static int tb__push_str(tb__vm *vm, uint64_t len) {
    tb__obj *o;
    if (len > TB_MAX_STRING)
        return tb__vfail(vm, "string of %llu bytes exceeds the limit %llu",
                         (unsigned long long)len, (unsigned long long)TB_MAX_STRING);
    if (tb__need(vm, len)) return -1;
    o = tb__new(vm, TB__STR);
    if (!o) return -1;
    o->s = vm->p + vm->pos;
    o->len = (size_t)len;
    vm->pos += (size_t)len;
    return tb__push(vm, o);
}

static int tb__push_int(tb__vm *vm, int64_t v) {
    tb__obj *o = tb__new(vm, TB__INT);
    if (!o) return -1;
    o->i = v;
    return tb__push(vm, o);
}

/* Resolve "module" + "." + "name" against the allow-list; refuse anything else by name. */
static int tb__push_global(tb__vm *vm, const unsigned char *mod, size_t ml,
                           const unsigned char *name, size_t nl) {
    char full[256], a[96], b[96];
    size_t i;
    tb__obj *o;
    if (ml + nl + 2 <= sizeof full) {
        memcpy(full, mod, ml);
        full[ml] = '.';
        memcpy(full + ml + 1, name, nl);
        full[ml + 1 + nl] = 0;
        if (strlen(full) == ml + 1 + nl) { /* no embedded NUL */
            for (i = 0; i < sizeof tb__allowed / sizeof tb__allowed[0]; i++) {
                if (!strcmp(full, tb__allowed[i].name)) {
                    o = tb__new(vm, TB__GLOBAL);
                    if (!o) return -1;
                    o->i = tb__allowed[i].id;
                    return tb__push(vm, o);
                }
            }
        }
    }
    return tb__vfail(vm, "refusing pickle GLOBAL %s.%s (only PyTorch tensor rebuild functions, "
                     "storage types and collections.OrderedDict are allowed)",
                     tb__printable(mod, ml, a, sizeof a), tb__printable(name, nl, b, sizeof b));
}

static int tb__is_int(const tb__obj *o) { return o->type == TB__INT || o->type == TB__BOOL; }

static const char *tb__global_name(int64_t id) {
    size_t i;
    for (i = 0; i < sizeof tb__allowed / sizeof tb__allowed[0]; i++)
        if (tb__allowed[i].id == id) return tb__allowed[i].name;
    return "?";
}

/* BINPERSID: ('storage', torch.XStorage, key, location, numel) */
static tb__obj *tb__persid(tb__vm *vm, tb__obj *pid) {
    tb__obj *o, **it;
    tb__storage *st;
    if (pid->type != TB__TUPLE || pid->len != 5 || pid->items[0]->type != TB__STR ||
        pid->items[0]->len != 7 || memcmp(pid->items[0]->s, "storage", 7)) {
        tb__vfail(vm, "persistent id is not a ('storage', type, key, location, numel) tuple");
        return NULL;
    }
    it = pid->items;
    if (it[1]->type != TB__GLOBAL || it[1]->i < TB__G_STORAGE) {
        tb__vfail(vm, "persistent id: the storage type is not a supported torch storage class");
        return NULL;
    }
    if (it[2]->type != TB__STR || it[2]->len == 0 || it[2]->len > 256 || memchr(it[2]->s, 0, it[2]->len)) {
        tb__vfail(vm, "persistent id: storage key must be a string of 1..256 bytes without NUL");
        return NULL;
    }
    if (!tb__is_int(it[4]) || it[4]->i < 0) {
        tb__vfail(vm, "persistent id: storage size must be a non-negative integer");
        return NULL;
    }
    if (vm->nst >= vm->stcap) {
        size_t nc = vm->stcap ? vm->stcap * 2 : 64;
        tb__storage *ns = (tb__storage *)TB_REALLOC(vm->st, nc * sizeof *ns);
        if (!ns) { tb__vfail(vm, "out of memory"); return NULL; }
        vm->st = ns;
        vm->stcap = nc;
    }
    st = &vm->st[vm->nst];
    st->key = it[2]->s;
    st->klen = it[2]->len;
    st->dtype = (tb_dtype)(it[1]->i - TB__G_STORAGE);
    st->numel = it[4]->i;
    o = tb__new(vm, TB__STORAGE);
    if (!o) return NULL;
    o->i = (int64_t)vm->nst++;
    return o;
}

static int tb__int_tuple(const tb__obj *t, int64_t *v, int *n) {
    size_t i;
    if (t->type != TB__TUPLE && t->type != TB__LIST) return -1;
    if (t->len > TB_MAX_DIMS) return -2;
    for (i = 0; i < t->len; i++) {
        if (!tb__is_int(t->items[i])) return -1;
        v[i] = t->items[i]->i;
    }
    *n = (int)t->len;
    return 0;
}

static tb__obj *tb__rebuild_tensor(tb__vm *vm, tb__obj **a) {
    tb__tinfo *t;
    tb__obj *o;
    int nd = 0, ns = 0, r;
    int64_t size[TB_MAX_DIMS], stride[TB_MAX_DIMS];
    if (a[0]->type != TB__STORAGE) {
        tb__vfail(vm, "_rebuild_tensor: first argument is not a storage");
        return NULL;
    }
    if (!tb__is_int(a[1])) {
        tb__vfail(vm, "_rebuild_tensor: storage offset is not an integer");
        return NULL;
    }
    if ((r = tb__int_tuple(a[2], size, &nd)) != 0 || tb__int_tuple(a[3], stride, &ns) != 0) {
        if (r == -2)
            tb__vfail(vm, "tensor with %llu dimensions (at most %d are supported)",
                      (unsigned long long)a[2]->len, TB_MAX_DIMS);
        else
            tb__vfail(vm, "_rebuild_tensor: size and stride must be tuples of at most %d "
                      "integers", TB_MAX_DIMS);
        return NULL;
    }
    if (nd != ns) {
        tb__vfail(vm, "_rebuild_tensor: size has %d entries but stride has %d", nd, ns);
        return NULL;
    }
    if (vm->nti >= vm->ticap) {
        size_t nc = vm->ticap ? vm->ticap * 2 : 64;
        tb__tinfo *nt = (tb__tinfo *)TB_REALLOC(vm->ti, nc * sizeof *nt);
        if (!nt) { tb__vfail(vm, "out of memory"); return NULL; }
        vm->ti = nt;
        vm->ticap = nc;
    }
    t = &vm->ti[vm->nti];
    memset(t, 0, sizeof *t);
    t->storage = (size_t)a[0]->i;
    t->offset = a[1]->i;
    t->ndim = nd;
    if (nd) {
        memcpy(t->size, size, (size_t)nd * sizeof size[0]);
        memcpy(t->stride, stride, (size_t)nd * sizeof stride[0]);
    }
    o = tb__new(vm, TB__TENSOR);
    if (!o) return NULL;
    o->i = (int64_t)vm->nti++;
    return o;
}

/* REDUCE / NEWOBJ: apply an allowed callable to an argument tuple. */
static tb__obj *tb__apply(tb__vm *vm, tb__obj *fn, tb__obj *args, int nested) {
    tb__obj **a;
    size_t n;
    if (fn->type != TB__GLOBAL) {
        tb__vfail(vm, "REDUCE on an object that is not an allowed global");
        return NULL;
    }
    if (args->type != TB__TUPLE) {
        tb__vfail(vm, "REDUCE arguments are not a tuple");
        return NULL;
    }
    a = args->items;
    n = args->len;
    switch ((int)fn->i) {
    case TB__G_ODICT:
        if (n != 0) break;
        return tb__new(vm, TB__DICT);
    case TB__G_REBUILD_V2:
        if (n != 6 && n != 7) break;
        return tb__rebuild_tensor(vm, a);
    case TB__G_REBUILD_V1:
        if (n != 4) break;
        return tb__rebuild_tensor(vm, a);
    case TB__G_REBUILD_PARAM:
    case TB__G_REBUILD_PARAM_STATE:
        if (n != (fn->i == TB__G_REBUILD_PARAM ? 3u : 4u) || a[0]->type != TB__TENSOR) break;
        return a[0];
    case TB__G_FROM_TYPE_V2:
        /* (func, type, args, state): func(*args), the type must be Tensor or Parameter */
        if (nested || n != 4 || a[0]->type != TB__GLOBAL || a[1]->type != TB__GLOBAL ||
            (a[1]->i != TB__G_TENSOR_TYPE && a[1]->i != TB__G_PARAM_TYPE) ||
            a[0]->i == TB__G_FROM_TYPE_V2)
            break;
        return tb__apply(vm, a[0], a[2], 1);
    default:
        tb__vfail(vm, "pickle calls %s, which is not callable here", tb__global_name(fn->i));
        return NULL;
    }
    tb__vfail(vm, "unexpected arguments (%llu) to %s", (unsigned long long)n,
              tb__global_name(fn->i));
    return NULL;
}

/* The opcodes are handled by family, one function each; every handler takes the opcode (its
   operand bytes follow at vm->pos) and returns 0 when done, -1 on an error (message written), or
   TB__OP_OTHER when the opcode is not one of its family, so that tb__run can try the next. */
#define TB__OP_OTHER 1

/* Framing and plain stack work: PROTO, FRAME, MARK, POP, POP_MARK, DUP. */
static int tb__op_stack(tb__vm *vm, unsigned op) {
    const unsigned char *p = vm->p;
    tb__obj *o;
    size_t m = 0;
    switch (op) {
    case 0x80: /* PROTO */
        if (tb__need(vm, 1)) return -1;
        if (p[vm->pos] > 5) return tb__vfail(vm, "unsupported pickle protocol %u", p[vm->pos]);
        vm->pos++;
        return 0;
    case 0x95: /* FRAME: 8-byte length; frames are just a hint */
        if (tb__need(vm, 8)) return -1;
        vm->pos += 8;
        return 0;
    case '(': /* MARK */
        if (vm->nmarks >= TB_MAX_DEPTH)
            return tb__vfail(vm, "MARKs nested deeper than %d", TB_MAX_DEPTH);
        vm->marks[vm->nmarks++] = vm->sp;
        return 0;
    case '0': /* POP */
        return tb__pop(vm) ? 0 : -1;
    case '1': /* POP_MARK */
        if (tb__pop_mark(vm, &m)) return -1;
        vm->sp = m;
        return 0;
    case '2': /* DUP */
        return (!(o = tb__top(vm)) || tb__push(vm, o)) ? -1 : 0;
    }
    return TB__OP_OTHER;
}

/* Constants: None, True, False, the integers and BINFLOAT. */
static int tb__op_scalar(tb__vm *vm, unsigned op) {
    const unsigned char *p = vm->p;
    tb__obj *o;
    uint64_t u;
    switch (op) {
    case 'N': return tb__push(vm, &vm->none_obj);
    case 0x88: return tb__push(vm, &vm->true_obj);
    case 0x89: return tb__push(vm, &vm->false_obj);
    case 'J': /* BININT */
        if (tb__need(vm, 4)) return -1;
        u = tb__u32(p + vm->pos);
        vm->pos += 4;
        return tb__push_int(vm, (int64_t)(int32_t)(uint32_t)u);
    case 'K': /* BININT1 */
        if (tb__need(vm, 1)) return -1;
        return tb__push_int(vm, p[vm->pos++]);
    case 'M': /* BININT2 */
        if (tb__need(vm, 2)) return -1;
        u = tb__u16(p + vm->pos);
        vm->pos += 2;
        return tb__push_int(vm, (int64_t)u);
    case 0x8a: { /* LONG1: n-byte little-endian two's complement */
        size_t n, i;
        uint64_t v = 0;
        if (tb__need(vm, 1)) return -1;
        n = p[vm->pos++];
        if (n > 8) return tb__vfail(vm, "LONG1 integer of %u bytes is too large", (unsigned)n);
        if (tb__need(vm, n)) return -1;
        for (i = 0; i < n; i++) v |= (uint64_t)p[vm->pos + i] << (8 * i);
        if (n && n < 8 && (p[vm->pos + n - 1] & 0x80)) v |= ~(uint64_t)0 << (8 * n);
        vm->pos += n;
        return tb__push_int(vm, (int64_t)v);
    }
    case 0x8b: /* LONG4 */
        if (tb__need(vm, 4)) return -1;
        return tb__vfail(vm, "LONG4 integers are not supported");
    case 'G': { /* BINFLOAT: big-endian double */
        uint64_t v = 0;
        int i;
        if (tb__need(vm, 8)) return -1;
        for (i = 0; i < 8; i++) v = (v << 8) | p[vm->pos + i];
        vm->pos += 8;
        if (!(o = tb__new(vm, TB__FLOAT))) return -1;
        o->i = (int64_t)v; /* the bits of the double; the value is never used */
        return tb__push(vm, o);
    }
    }
    return TB__OP_OTHER;
}

/* Strings and bytes, by the width of their length field (all kept as byte strings). */
static int tb__op_string(tb__vm *vm, unsigned op) {
    const unsigned char *p = vm->p;
    uint64_t u;
    switch (op) {
    case 'X': case 'B': case 'T': /* BINUNICODE, BINBYTES, BINSTRING: 4-byte length */
        if (tb__need(vm, 4)) return -1;
        u = tb__u32(p + vm->pos);
        vm->pos += 4;
        if (op == 'T' && u > 0x7FFFFFFFu)
            return tb__vfail(vm, "BINSTRING with a negative length");
        return tb__push_str(vm, u);
    case 0x8c: case 'U': case 'C': /* SHORT_BINUNICODE, SHORT_BINSTRING, SHORT_BINBYTES */
        if (tb__need(vm, 1)) return -1;
        u = p[vm->pos++];
        return tb__push_str(vm, u);
    case 0x8d: case 0x8e: /* BINUNICODE8, BINBYTES8 */
        if (tb__need(vm, 8)) return -1;
        u = tb__u64(p + vm->pos);
        vm->pos += 8;
        return tb__push_str(vm, u);
    }
    return TB__OP_OTHER;
}

/* GLOBAL and STACK_GLOBAL: both checked against the allow-list by tb__push_global. */
static int tb__op_global(tb__vm *vm, unsigned op) {
    const unsigned char *p = vm->p;
    tb__obj *a, *b;
    switch (op) {
    case 'c': { /* GLOBAL: "module\nname\n" */
        const unsigned char *mod = p + vm->pos, *nl1, *nl2;
        size_t rest = vm->n - vm->pos;
        nl1 = (const unsigned char *)memchr(mod, '\n', rest < 256 ? rest : 256);
        if (!nl1) return tb__vfail(vm, "GLOBAL module name unterminated or too long");
        rest -= (size_t)(nl1 - mod) + 1;
        nl2 = (const unsigned char *)memchr(nl1 + 1, '\n', rest < 256 ? rest : 256);
        if (!nl2) return tb__vfail(vm, "GLOBAL name unterminated or too long");
        vm->pos = (size_t)(nl2 + 1 - p);
        return tb__push_global(vm, mod, (size_t)(nl1 - mod), nl1 + 1, (size_t)(nl2 - nl1 - 1));
    }
    case 0x93: /* STACK_GLOBAL */
        if (!(b = tb__pop(vm)) || !(a = tb__pop(vm))) return -1;
        if (a->type != TB__STR || b->type != TB__STR)
            return tb__vfail(vm, "STACK_GLOBAL needs two strings");
        return tb__push_global(vm, a->s, a->len, b->s, b->len);
    }
    return TB__OP_OTHER;
}

/* The operand of BINPUT / BINGET (1 byte) and LONG_BINPUT / LONG_BINGET (4 bytes): a memo index. */
static int tb__memo_index(tb__vm *vm, size_t width, uint64_t *idx) {
    if (tb__need(vm, width)) return -1;
    *idx = width == 1 ? vm->p[vm->pos] : tb__u32(vm->p + vm->pos);
    vm->pos += width;
    return 0;
}

/* The memo: BINPUT, LONG_BINPUT, MEMOIZE store the top of the stack; BINGET, LONG_BINGET push. */
static int tb__op_memo(tb__vm *vm, unsigned op) {
    uint64_t u;
    switch (op) {
    case 'q': case 'r': /* BINPUT, LONG_BINPUT */
        if (tb__memo_index(vm, op == 'q' ? 1 : 4, &u)) return -1;
        return tb__memo_put(vm, u);
    case 0x94: /* MEMOIZE */
        return tb__memo_put(vm, vm->memocount);
    case 'h': case 'j': /* BINGET, LONG_BINGET */
        if (tb__memo_index(vm, op == 'h' ? 1 : 4, &u)) return -1;
        return tb__memo_get(vm, u);
    }
    return TB__OP_OTHER;
}

/* Tuples, lists and dicts: the empty ones, those built from the items since a MARK or from the
   top 1..3 items, and appending to / setting items of the container below them. */
static int tb__op_container(tb__vm *vm, unsigned op) {
    tb__obj *o, *a, *b, *c;
    size_t m = 0, k;
    switch (op) {
    case ')': /* EMPTY_TUPLE */
        return tb__push(vm, tb__new(vm, TB__TUPLE));
    case ']': /* EMPTY_LIST */
        return tb__push(vm, tb__new(vm, TB__LIST));
    case '}': /* EMPTY_DICT */
        return tb__push(vm, tb__new(vm, TB__DICT));
    case 't': case 'l': /* TUPLE, LIST: items since the last MARK */
        if (tb__pop_mark(vm, &m)) return -1;
        k = vm->sp - m;
        if (!(o = tb__make_seq(vm, op == 't' ? TB__TUPLE : TB__LIST, vm->stack + m, k))) return -1;
        vm->sp = m;
        return tb__push(vm, o);
    case 'd': /* DICT */
        if (tb__pop_mark(vm, &m)) return -1;
        k = vm->sp - m;
        if (k % 2) return tb__vfail(vm, "DICT with an odd number of items");
        if (!(o = tb__make_seq(vm, TB__DICT, vm->stack + m, k))) return -1;
        vm->sp = m;
        return tb__push(vm, o);
    case 0x85: case 0x86: case 0x87: /* TUPLE1, TUPLE2, TUPLE3 */
        k = op - 0x84;
        if (vm->sp - tb__base(vm) < k) return tb__vfail(vm, "pickle stack underflow");
        if (!(o = tb__make_seq(vm, TB__TUPLE, vm->stack + vm->sp - k, k))) return -1;
        vm->sp -= k;
        return tb__push(vm, o);
    case 'a': /* APPEND */
        if (!(b = tb__pop(vm)) || !(a = tb__top(vm))) return -1;
        if (a->type != TB__LIST) return tb__vfail(vm, "APPEND to something that is not a list");
        return tb__extend(vm, a, &b, 1);
    case 'e': case 'u': /* APPENDS, SETITEMS */
        if (tb__pop_mark(vm, &m)) return -1;
        if (m <= tb__base(vm)) return tb__vfail(vm, "pickle stack underflow");
        a = vm->stack[m - 1];
        k = vm->sp - m;
        if (op == 'e' && a->type != TB__LIST)
            return tb__vfail(vm, "APPENDS to something that is not a list");
        if (op == 'u' && a->type != TB__DICT)
            return tb__vfail(vm, "SETITEMS on something that is not a dict");
        if (op == 'u' && k % 2) return tb__vfail(vm, "SETITEMS with an odd number of items");
        if (tb__extend(vm, a, vm->stack + m, k)) return -1;
        vm->sp = m;
        return 0;
    case 's': { /* SETITEM */
        tb__obj *kv[2];
        if (!(b = tb__pop(vm)) || !(a = tb__pop(vm)) || !(c = tb__top(vm))) return -1;
        if (c->type != TB__DICT) return tb__vfail(vm, "SETITEM on something that is not a dict");
        kv[0] = a;
        kv[1] = b;
        return tb__extend(vm, c, kv, 2);
    }
    }
    return TB__OP_OTHER;
}

/* Objects: persistent ids (storages), calls of allowed globals (REDUCE, NEWOBJ) and BUILD. */
static int tb__op_object(tb__vm *vm, unsigned op) {
    tb__obj *a, *b;
    switch (op) {
    case 'Q': /* BINPERSID */
        if (!(a = tb__pop(vm))) return -1;
        return tb__push(vm, tb__persid(vm, a));
    case 'R': /* REDUCE */
        if (!(b = tb__pop(vm)) || !(a = tb__pop(vm))) return -1;
        return tb__push(vm, tb__apply(vm, a, b, 0));
    case 0x81: /* NEWOBJ: cls.__new__(cls, *args); only OrderedDict() */
        if (!(b = tb__pop(vm)) || !(a = tb__pop(vm))) return -1;
        if (a->type != TB__GLOBAL || a->i != TB__G_ODICT)
            return tb__vfail(vm, "NEWOBJ is only supported for collections.OrderedDict");
        return tb__push(vm, tb__apply(vm, a, b, 0));
    case 'b': /* BUILD: the state of a dict (e.g. _metadata) or tensor is ignored */
        if (!(b = tb__pop(vm)) || !(a = tb__top(vm))) return -1;
        if (a->type != TB__DICT && a->type != TB__TENSOR)
            return tb__vfail(vm, "BUILD on an object that is not a dict or tensor");
        return 0;
    }
    return TB__OP_OTHER;
}

typedef int (*tb__op_family)(tb__vm *vm, unsigned op);
static const tb__op_family tb__op_families[] = {
    tb__op_stack, tb__op_scalar, tb__op_string, tb__op_global, tb__op_memo, tb__op_container,
    tb__op_object,
};

/* Run the pickle; on success *result is the object STOP returned. */
static int tb__run(tb__vm *vm, tb__obj **result) {
    *result = NULL;
    for (;;) {
        unsigned op;
        size_t f;
        int rc = TB__OP_OTHER;
        if (vm->pos >= vm->n) {
            vm->op_pos = vm->n;
            return tb__vfail(vm, "pickle ends without STOP");
        }
        vm->op_pos = vm->pos;
        op = vm->p[vm->pos++];
        if (op == '.') { /* STOP */
            tb__obj *o = tb__pop(vm);
            if (!o) return -1;
            *result = o;
            return 0;
        }
        for (f = 0; f < sizeof tb__op_families / sizeof tb__op_families[0] && rc == TB__OP_OTHER; f++)
            rc = tb__op_families[f](vm, op);
        if (rc == TB__OP_OTHER) return tb__vfail(vm, "unknown or unsupported pickle opcode 0x%02x", op);
        if (rc) return -1;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* tensors out                                                                                */

typedef struct {
    tb__src *src;
    tb__zip *zip;
    tb__vm *vm;
    const char *prefix; /* "ARCHIVE/" */
    size_t plen;
    tb_tensor *out;
    size_t nout, outcap;
    uint64_t total, budget;
    char *name;         /* flattened-name buffer */
    size_t namecap;
} tb__ctx;

static int tb__is_contiguous(const tb__tinfo *t) {
    int64_t expect = 1;
    int d;
    for (d = t->ndim - 1; d >= 0; d--) {
        if (t->size[d] != 1 && t->stride[d] != expect) return 0;
        expect *= t->size[d];
    }
    return 1;
}

/* Validate one tensor against its storage and copy it out contiguously. */
static int tb__materialize(tb__ctx *cx, const tb__tinfo *t, tb_tensor *out) {
    tb__src *s = cx->src;
    const tb__storage *st = &cx->vm->st[t->storage];
    size_t es = tb_dtype_size(st->dtype);
    char ename[600], nb[96];
    tb__zent *e;
    uint64_t numel = 1, span = 0, sbytes;
    int d;
    unsigned char *data;
    const char *tn = out->name;

    out->dtype = st->dtype;
    out->ndim = t->ndim;
    for (d = 0; d < t->ndim; d++) {
        if (t->size[d] < 0)
            return tb__fail(s, "tensor '%s': negative size %lld in dimension %d", tn,
                            (long long)t->size[d], d);
        if (t->stride[d] < 0)
            return tb__fail(s, "tensor '%s': negative stride %lld in dimension %d", tn,
                            (long long)t->stride[d], d);
        out->shape[d] = t->size[d];
    }
    for (d = 0; d < t->ndim; d++) {
        if (t->size[d] && numel > (uint64_t)INT64_MAX / (uint64_t)t->size[d])
            return tb__fail(s, "tensor '%s': element count overflows", tn);
        numel *= (uint64_t)t->size[d];
    }
    if (t->offset < 0)
        return tb__fail(s, "tensor '%s': negative storage offset %lld", tn, (long long)t->offset);
    /* the storage entry */
    if (cx->plen + 5 + st->klen + 1 > sizeof ename)
        return tb__fail(s, "tensor '%s': storage key too long", tn);
    memcpy(ename, cx->prefix, cx->plen);
    memcpy(ename + cx->plen, "data/", 5);
    memcpy(ename + cx->plen + 5, st->key, st->klen);
    ename[cx->plen + 5 + st->klen] = 0;
    tb__printable((const unsigned char *)ename, cx->plen + 5 + st->klen, nb, sizeof nb);
    e = tb__zip_find(cx->zip, ename, cx->plen + 5 + st->klen);
    if (!e) return tb__fail(s, "tensor '%s': storage entry '%s' is missing from the archive", tn, nb);
    if (tb__zip_resolve(s, cx->zip, e)) return -1;
    if ((uint64_t)st->numel > e->usize / es)
        return tb__fail(s, "tensor '%s': storage '%s' holds %llu bytes but the pickle declares "
                        "%lld elements of %u bytes", tn, nb, (unsigned long long)e->usize,
                        (long long)st->numel, (unsigned)es);

    /* every element must lie in the storage: offset + sum((size-1)*stride) < numel(storage) */
    if (numel) {
        uint64_t lim = (uint64_t)st->numel, off = (uint64_t)t->offset;
        int bad = off >= lim;
        for (d = 0; d < t->ndim && !bad; d++) {
            uint64_t sz = (uint64_t)t->size[d] - 1, sd = (uint64_t)t->stride[d];
            if (sz == 0 || sd == 0) continue;
            if (sz > (lim - 1) / sd) { bad = 1; break; }
            span += sz * sd;
            if (span > lim - 1 - off) bad = 1;
        }
        if (bad)
            return tb__fail(s, "tensor '%s': elements (storage offset %lld, sizes/strides of %d "
                            "dims) lie outside storage '%s' of %lld elements", tn,
                            (long long)t->offset, t->ndim, nb, (long long)st->numel);
    }
    if (numel > (TB_MAX_TOTAL_BYTES) / es || numel * es > (uint64_t)SIZE_MAX - 1)
        return tb__fail(s, "tensor '%s': %llu elements is too large", tn,
                        (unsigned long long)numel);
    out->nbytes = (size_t)(numel * es);
    if (cx->total + out->nbytes > TB_MAX_TOTAL_BYTES || cx->total + out->nbytes > cx->budget)
        return tb__fail(s, "tensor '%s': output would exceed %llu bytes in all (limit for this "
                        "file)", tn, (unsigned long long)(cx->budget < TB_MAX_TOTAL_BYTES
                                                               ? cx->budget
                                                               : TB_MAX_TOTAL_BYTES));

    data = (unsigned char *)TB_MALLOC(out->nbytes ? out->nbytes : 1);
    if (!data) return tb__fail(s, "tensor '%s': out of memory (%llu bytes)", tn,
                               (unsigned long long)out->nbytes);
    out->data = data;
    cx->total += out->nbytes;
    if (!numel) return 0;

    sbytes = e->data_off + (uint64_t)t->offset * es;
    if (tb__is_contiguous(t)) {
        if (tb__read_at(s, sbytes, data, out->nbytes, nb)) return -1;
        if (t->offset == 0 && out->nbytes == e->usize && tb__crc(s, data, out->nbytes) != e->crc)
            return tb__fail(s, "tensor '%s': CRC-32 mismatch in '%s' (corrupt file)", tn, nb);
    } else {
        /* read the span the view touches, then gather element by element */
        size_t tb = (size_t)((span + 1) * es), i;
        unsigned char *tmp = (unsigned char *)TB_MALLOC(tb);
        int64_t idx[TB_MAX_DIMS];
        uint64_t src = 0;
        if (!tmp) return tb__fail(s, "tensor '%s': out of memory", tn);
        if (tb__read_at(s, sbytes, tmp, tb, nb)) { TB_FREE(tmp); return -1; }
        memset(idx, 0, sizeof idx);
        for (i = 0; i < (size_t)numel; i++) {
            memcpy(data + i * es, tmp + src * es, es);
            for (d = t->ndim - 1; d >= 0; d--) {
                idx[d]++;
                src += (uint64_t)t->stride[d];
                if (idx[d] < t->size[d]) break;
                src -= (uint64_t)t->stride[d] * (uint64_t)t->size[d];
                idx[d] = 0;
            }
        }
        TB_FREE(tmp);
    }
    return 0;
}

static int tb__name_cmp(const void *a, const void *b) {
    const tb_tensor *x = *(const tb_tensor *const *)a, *y = *(const tb_tensor *const *)b;
    return strcmp(x->name, y->name);
}

static int tb__add_tensor(tb__ctx *cx, size_t namelen, const tb__obj *tv) {
    tb_tensor *t;
    if (cx->nout >= TB_MAX_TENSORS)
        return tb__fail(cx->src, "more than %d tensors", TB_MAX_TENSORS);
    if (cx->nout >= cx->outcap) {
        size_t nc = cx->outcap ? cx->outcap * 2 : 64;
        tb_tensor *no = (tb_tensor *)TB_REALLOC(cx->out, nc * sizeof *no);
        if (!no) return tb__fail(cx->src, "out of memory");
        cx->out = no;
        cx->outcap = nc;
    }
    t = &cx->out[cx->nout];
    memset(t, 0, sizeof *t);
    t->name = (char *)TB_MALLOC(namelen + 1);
    if (!t->name) return tb__fail(cx->src, "out of memory");
    memcpy(t->name, cx->name, namelen);
    t->name[namelen] = 0;
    cx->nout++;
    return tb__materialize(cx, &cx->vm->ti[tv->i], t);
}

/* Append ".key" (or "key" at the top) to the name buffer at len; returns the new length. */
static int tb__name_push(tb__ctx *cx, size_t len, const tb__obj *key, size_t *newlen) {
    char num[32];
    const char *k;
    size_t kl, need;
    if (key->type == TB__STR) {
        k = (const char *)key->s;
        kl = key->len;
        if (memchr(k, 0, kl)) {
            char nb[80];
            return tb__fail(cx->src, "dict key '%s' (NUL shown as '?', at byte %zu of the key) contains a NUL byte: "
                            "tensor names must not contain NUL", tb__printable((const unsigned char *)k, kl, nb, sizeof nb),
                            (size_t)((const char *)memchr(k, 0, kl) - k));
        }
    } else if (key->type == TB__INT) {
        snprintf(num, sizeof num, "%lld", (long long)key->i);
        k = num;
        kl = strlen(num);
    } else {
        return 1; /* skipped */
    }
    need = len + (len ? 1 : 0) + kl + 1;
    if (need > cx->namecap) {
        size_t nc = cx->namecap ? cx->namecap : 256;
        char *nn;
        while (nc < need) nc *= 2;
        nn = (char *)TB_REALLOC(cx->name, nc);
        if (!nn) return tb__fail(cx->src, "out of memory");
        cx->name = nn;
        cx->namecap = nc;
    }
    if (len) cx->name[len++] = '.';
    memcpy(cx->name + len, k, kl);
    *newlen = len + kl;
    return 0;
}

/* Walk the top-level dict and nested dicts (explicit stack) collecting tensors. */
static int tb__collect(tb__ctx *cx, const tb__obj *root) {
    struct { const tb__obj *d; size_t next, namelen; } stk[TB_MAX_DICT_NEST];
    int depth = 0;
    uint64_t visits = 0;
    if (root->type != TB__DICT)
        return tb__fail(cx->src, "the checkpoint's top-level object is not a dict / state dict");
    stk[0].d = root;
    stk[0].next = 0;
    stk[0].namelen = 0;
    depth = 1;
    while (depth > 0) {
        const tb__obj *d = stk[depth - 1].d, *key, *val;
        size_t i = stk[depth - 1].next, nl = 0;
        int r;
        if (i >= d->len) { depth--; continue; }
        stk[depth - 1].next++;
        if (++visits > TB_MAX_OBJECTS) /* shared sub-dicts could otherwise blow up the walk */
            return tb__fail(cx->src, "more than %d dict entries to walk", TB_MAX_OBJECTS);
        key = d->items[2 * i];
        val = d->items[2 * i + 1];
        if (val->type != TB__TENSOR && val->type != TB__DICT) continue;
        r = tb__name_push(cx, stk[depth - 1].namelen, key, &nl);
        if (r < 0) return -1;
        if (r > 0) continue;
        if (val->type == TB__TENSOR) {
            if (tb__add_tensor(cx, nl, val)) return -1;
        } else {
            if (depth >= TB_MAX_DICT_NEST)
                return tb__fail(cx->src, "dicts nested deeper than %d", TB_MAX_DICT_NEST);
            stk[depth].d = val;
            stk[depth].next = 0;
            stk[depth].namelen = nl;
            depth++;
        }
    }
    return 0;
}

static void tb__free_tensors(tb_tensor *t, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        TB_FREE(t[i].name);
        TB_FREE(t[i].data);
    }
    TB_FREE(t);
}

static int tb__read_src(tb__src *s, tb_file *out) {
    tb__zip zip;
    tb__vm vm;
    tb__ctx cx;
    tb__zent *pk = NULL, *e;
    unsigned char *pkl = NULL;
    tb__obj *root = NULL;
    size_t i, plen = 0;
    int rc = -1;
    char nb[96];

    memset(&vm, 0, sizeof vm);
    memset(&cx, 0, sizeof cx);
    tb__crc_init(s);
    if (tb__zip_open(s, &zip)) return -1;

    /* find PREFIX/data.pkl (PREFIX without '/') */
    for (i = 0; i < zip.n; i++) {
        e = &zip.ents[i];
        if (e->nlen >= 9 && !memcmp(e->name + e->nlen - 9, "/data.pkl", 9) &&
            !memchr(e->name, '/', e->nlen - 9)) {
            if (pk) { tb__fail(s, "the archive holds more than one */data.pkl"); goto done; }
            pk = e;
        }
    }
    if (!pk) {
        tb__fail(s, "no ARCHIVE/data.pkl entry: this ZIP archive is not a torch.save checkpoint");
        goto done;
    }
    plen = pk->nlen - 8; /* "PREFIX/" */
    if (plen > 256) {
        tb__fail(s, "archive folder name longer than 256 bytes");
        goto done;
    }
    {
        char probe[300];
        memcpy(probe, pk->name, plen);
        memcpy(probe + plen, "constants.pkl", 13);
        if (tb__zip_find(&zip, probe, plen + 13)) {
            tb__fail(s, "TorchScript archive (torch.jit.save) is not supported; save the "
                     "state_dict with torch.save");
            goto done;
        }
        memcpy(probe + plen, "byteorder", 9);
        e = tb__zip_find(&zip, probe, plen + 9);
        if (e) {
            char bo[8];
            if (tb__zip_resolve(s, &zip, e)) goto done;
            if (e->usize != 6 || tb__read_at(s, e->data_off, bo, 6, "byteorder") ||
                memcmp(bo, "little", 6)) {
                tb__fail(s, "storages are not little-endian (byteorder entry); re-save on a "
                         "little-endian machine");
                goto done;
            }
        }
    }
    if (tb__zip_resolve(s, &zip, pk)) goto done;
    if (pk->usize > TB_MAX_PICKLE_BYTES) {
        tb__fail(s, "data.pkl is %llu bytes (limit %llu)", (unsigned long long)pk->usize,
                 (unsigned long long)TB_MAX_PICKLE_BYTES);
        goto done;
    }
    pkl = (unsigned char *)TB_MALLOC(pk->usize ? (size_t)pk->usize : 1);
    if (!pkl) { tb__fail(s, "out of memory"); goto done; }
    if (tb__read_at(s, pk->data_off, pkl, (size_t)pk->usize, "data.pkl")) goto done;
    if (tb__crc(s, pkl, (size_t)pk->usize) != pk->crc) {
        tb__fail(s, "data.pkl: CRC-32 mismatch (corrupt file)");
        goto done;
    }

    vm.src = s;
    vm.p = pkl;
    vm.n = (size_t)pk->usize;
    vm.none_obj.type = TB__NONE;
    vm.true_obj.type = TB__BOOL;
    vm.true_obj.i = 1;
    vm.false_obj.type = TB__BOOL;
    if (tb__run(&vm, &root)) goto done;

    cx.src = s;
    cx.zip = &zip;
    cx.vm = &vm;
    cx.prefix = pk->name;
    cx.plen = plen;
    cx.budget = (uint64_t)TB_EXPAND_FACTOR * s->size + ((uint64_t)64 << 20);
    if (tb__collect(&cx, root)) goto done;

    /* names must be unique */
    if (cx.nout > 1) {
        tb_tensor **idx = (tb_tensor **)TB_MALLOC(cx.nout * sizeof *idx);
        int dup = 0;
        if (!idx) { tb__fail(s, "out of memory"); goto done; }
        for (i = 0; i < cx.nout; i++) idx[i] = &cx.out[i];
        qsort(idx, cx.nout, sizeof *idx, tb__name_cmp);
        for (i = 1; i < cx.nout && !dup; i++) {
            if (!strcmp(idx[i - 1]->name, idx[i]->name)) {
                dup = 1;
                tb__fail(s, "two tensors are named '%s'",
                         tb__printable((const unsigned char *)idx[i]->name, strlen(idx[i]->name),
                                       nb, sizeof nb));
            }
        }
        TB_FREE(idx);
        if (dup) goto done;
    }
    out->tensors = cx.out;
    out->n = (int)cx.nout;
    cx.out = NULL;
    cx.nout = 0;
    rc = 0;
done:
    tb__free_tensors(cx.out, cx.nout);
    TB_FREE(cx.name);
    tb__vm_free(&vm);
    TB_FREE(pkl);
    tb__zip_free(&zip);
    return rc;
}

TB_API int tb_read_memory(const unsigned char *buf, size_t size, const char *label,
                          tb_file *out, char *err, size_t errlen) {
    tb__src s;
    if (err && errlen) err[0] = 0;
    if (!out) return -1;
    out->tensors = NULL;
    out->n = 0;
    memset(&s, 0, sizeof s);
    s.mem = buf;
    s.size = size;
    s.label = label ? label : "<memory>";
    s.err = err;
    s.errlen = errlen;
    if (!buf && size) return tb__fail(&s, "NULL buffer");
    if (!buf) { static const unsigned char z = 0; s.mem = &z; }
    return tb__read_src(&s, out);
}

/* Reads the file in place, with seeks (not into memory with mmspcl_read_file): a checkpoint may be
   many GB, and only the ZIP records, data.pkl and one storage at a time are needed. */
TB_API int tb_read(const char *path, tb_file *out, char *err, size_t errlen) {
    tb__src s;
    int rc;
    if (err && errlen) err[0] = 0;
    if (!out) return -1;
    out->tensors = NULL;
    out->n = 0;
    memset(&s, 0, sizeof s);
    s.label = path ? path : "(null)";
    s.err = err;
    s.errlen = errlen;
    if (!path) return tb__fail(&s, "no path given");
    s.fp = fopen(path, "rb");
    if (!s.fp) return tb__fail(&s, "cannot open file");
    {
#if defined(_WIN32)
        __int64 sz;
        if (_fseeki64(s.fp, 0, SEEK_END) != 0 || (sz = _ftelli64(s.fp)) < 0) {
#else
        long sz;
        if (fseek(s.fp, 0, SEEK_END) != 0 || (sz = ftell(s.fp)) < 0) {
#endif
            fclose(s.fp);
            return tb__fail(&s, "cannot determine the file size (larger than this platform's "
                            "fseek can address?)");
        }
        s.size = (uint64_t)sz;
    }
    rc = tb__read_src(&s, out);
    fclose(s.fp);
    return rc;
}

TB_API void tb_free(tb_file *f) {
    if (!f) return;
    tb__free_tensors(f->tensors, f->n > 0 ? (size_t)f->n : 0);
    f->tensors = NULL;
    f->n = 0;
}
