/* Image decoding (PNG / BMP / PPM) and CLIP preprocessing against Pillow.
   References: tools/reference/image_ref.py -> tests/data/images/. Run from the repository root. */
#define MMSPCL_IMPLEMENTATION
#include "mmspcl.h"
#include "tests/test.h"

#include <stdlib.h>
#include <string.h>

#define DEC_DIR "tests/data/images/dec/"
#define CLIP_DIR "tests/data/images/clip/"

/* ---------------------------------------------------------------------------------------------
   helpers
   ------------------------------------------------------------------------------------------ */
static uint32_t t_adler(const unsigned char *p, size_t n) {
    uint32_t a = 1, b = 0;
    size_t i;
    for (i = 0; i < n; i++) { a = (a + p[i]) % 65521u; b = (b + a) % 65521u; }
    return (b << 16) | a;
}

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16); p[2] = (unsigned char)(v >> 8); p[3] = (unsigned char)v;
}
static uint32_t get_be32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* A PNG under construction. */
typedef struct { unsigned char b[4096]; size_t n; } pngbuf;

static void png_start(pngbuf *p) {
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    memcpy(p->b, sig, 8);
    p->n = 8;
}
static void png_chunk(pngbuf *p, const char *type, const unsigned char *data, size_t len) {
    put_be32(p->b + p->n, (uint32_t)len);
    memcpy(p->b + p->n + 4, type, 4);
    if (len) memcpy(p->b + p->n + 8, data, len);
    put_be32(p->b + p->n + 8 + len, test_crc32(p->b + p->n + 4, len + 4));
    p->n += len + 12;
}
static void png_ihdr(pngbuf *p, uint32_t w, uint32_t h, int depth, int ctype, int interlace) {
    unsigned char d[13];
    put_be32(d, w); put_be32(d + 4, h);
    d[8] = (unsigned char)depth; d[9] = (unsigned char)ctype; d[10] = 0; d[11] = 0; d[12] = (unsigned char)interlace;
    png_chunk(p, "IHDR", d, 13);
}
/* zlib stream with one stored block holding raw[0..n) */
static size_t zlib_stored(unsigned char *z, const unsigned char *raw, size_t n) {
    uint32_t ad = t_adler(raw, n);
    z[0] = 0x78; z[1] = 0x01;
    z[2] = 1; /* BFINAL, stored */
    z[3] = (unsigned char)n; z[4] = (unsigned char)(n >> 8);
    z[5] = (unsigned char)~n; z[6] = (unsigned char)(~n >> 8);
    memcpy(z + 7, raw, n);
    put_be32(z + 7 + n, ad);
    return n + 11;
}
/* Fixes the CRC of every chunk after an edit. */
static void png_fix_crcs(unsigned char *b, size_t n) {
    size_t pos = 8;
    while (pos + 12 <= n) {
        uint32_t len = get_be32(b + pos);
        if (len > n - pos - 12) break;
        put_be32(b + pos + 8 + len, test_crc32(b + pos + 4, len + 4));
        pos += len + 12;
    }
}

/* The synthetic images of tools/reference/image_ref.py (synth()). */
static unsigned char *synth(int w, int h, uint32_t seed, int kind) {
    unsigned char *o = (unsigned char *)malloc((size_t)w * h * 3);
    int x, y, c;
    for (y = 0; y < h; y++)
        for (x = 0; x < w; x++)
            for (c = 0; c < 3; c++) {
                uint32_t hh = ((uint32_t)x * 73856093u) ^ ((uint32_t)y * 19349663u) ^ ((uint32_t)c * 83492791u) ^
                              (seed * 2654435761u);
                long v, noise;
                hh = (hh ^ (hh >> 13)) * 0x5BD1E995u;
                hh ^= hh >> 15;
                noise = (long)(hh & 255);
                if (kind == 0) {
                    v = noise;
                } else if (kind == 1) {
                    long g = ((long)x * 255 / (w > 1 ? w - 1 : 1) * (c + 1) + (long)y * 255 / (h > 1 ? h - 1 : 1) * (3 - c)) / 4;
                    v = (3 * g + noise) / 4;
                } else {
                    int b = ((x / 7) + 2 * (y / 5) + c) % 3;
                    v = b == 0 ? 0 : b == 1 ? 255 : noise;
                }
                o[((size_t)y * w + x) * 3 + c] = (unsigned char)v;
            }
    return o;
}

/* Every proper prefix must fail cleanly; single-bit flips and byte smashes must not crash and,
   for PNG (CRC-protected), must fail. */
static void robustness(const char *name, const unsigned char *b, size_t n, const unsigned char *want_rgb) {
    unsigned char *c = (unsigned char *)malloc(n ? n : 1);
    mmspcl_image img;
    mmspcl_error err;
    size_t i;
    int is_png = n > 4 && b[1] == 'P' && b[2] == 'N' && b[3] == 'G';
    long prefix_ok = 0, flip_bad = 0, flips = 0;
    for (i = 0; i < n; i++) {
        mmspcl_status st = mmspcl_image_decode(b, i, &img, &err);
        if (st == MMSPCL_OK || img.rgb) { prefix_ok++; mmspcl_image_free(&img); }
    }
    CHECK(prefix_ok == 0, "%s: %ld truncated prefixes decoded", name, prefix_ok);
    for (i = 0; i < n; i++) {
        int k;
        for (k = 0; k < 2; k++) {
            mmspcl_status st;
            memcpy(c, b, n);
            c[i] ^= k == 0 ? (unsigned char)(1u << (i % 8)) : 0xFF;
            st = mmspcl_image_decode(c, n, &img, &err);
            flips++;
            if (st == MMSPCL_OK) {
                if (is_png || !img.rgb || img.width < 1 || img.height < 1) flip_bad++;
                mmspcl_image_free(&img);
            } else if (img.rgb || img.width || img.height) {
                flip_bad++;
            }
        }
    }
    CHECK(flip_bad == 0, "%s: %ld of %ld corrupted variants misbehaved", name, flip_bad, flips);
    /* PNG: corrupt the zlib data and repair the CRCs, so the inflate and Adler-32 checks are hit */
    if (is_png) {
        size_t pos = 8;
        long wrong = 0, accepted = 0, tried = 0;
        while (pos + 12 <= n) {
            uint32_t len = get_be32(b + pos);
            if (!memcmp(b + pos + 4, "IDAT", 4)) {
                size_t j, step = len / 400 + 1; /* at most ~400 byte positions per chunk */
                for (j = 0; j < len; j += step) {
                    int bit;
                    for (bit = (int)(j % 3); bit < 8; bit += 3) {
                        memcpy(c, b, n);
                        c[pos + 8 + j] ^= (unsigned char)(1u << bit);
                        png_fix_crcs(c, n);
                        tried++;
                        if (mmspcl_image_decode(c, n, &img, &err) == MMSPCL_OK) {
                            accepted++;
                            if (want_rgb && memcmp(img.rgb, want_rgb, (size_t)img.width * img.height * 3)) wrong++;
                            mmspcl_image_free(&img);
                        } else if (img.rgb) {
                            wrong++;
                        }
                    }
                }
            }
            pos += (size_t)len + 12;
        }
        CHECK(wrong == 0, "%s: %ld of %ld zlib bit flips decoded to wrong pixels (%ld accepted)", name, wrong, tried, accepted);
    }
    free(c);
}

static int expect_fail(const unsigned char *b, size_t n, mmspcl_status want, const char *word, const char *what) {
    mmspcl_image img;
    mmspcl_error err;
    mmspcl_status st;
    memset(&err, 0, sizeof err);
    st = mmspcl_image_decode(b, n, &img, &err);
    CHECK(st == want && img.rgb == NULL && strstr(err.msg, word) != NULL,
          "%s: status %s (want %s), message '%s' (want '%s')", what, mmspcl_status_name(st), mmspcl_status_name(want),
          err.msg, word);
    if (st == MMSPCL_OK) mmspcl_image_free(&img);
    return st == want;
}

/* ---------------------------------------------------------------------------------------------
   hand-made files
   ------------------------------------------------------------------------------------------ */
static void test_handmade(void) {
    mmspcl_image img;
    mmspcl_error err;
    mmspcl_status st;
    {
        static const unsigned char ppm[] = "P6\n# two by two\n2 2 # size\n255\n"
                                           "\x01\x02\x03\x10\x20\x30\xff\x00\x7f\x80\x81\x82";
        size_t n = sizeof ppm - 1;
        st = mmspcl_image_decode(ppm, n, &img, &err);
        CHECK(st == MMSPCL_OK && img.width == 2 && img.height == 2 && !memcmp(img.rgb, ppm + n - 12, 12),
              "hand-made P6: %s", st ? err.msg : "wrong pixels");
        mmspcl_image_free(&img);
        robustness("hand-made P6", ppm, n, NULL);
    }
    {
        static const unsigned char pgm[] = "P5 3 1 255\n\x00\x80\xff";
        static const unsigned char want[9] = {0, 0, 0, 0x80, 0x80, 0x80, 0xff, 0xff, 0xff};
        st = mmspcl_image_decode(pgm, sizeof pgm - 1, &img, &err);
        CHECK(st == MMSPCL_OK && img.width == 3 && img.height == 1 && !memcmp(img.rgb, want, 9),
              "hand-made P5: %s", st ? err.msg : "wrong pixels");
        mmspcl_image_free(&img);
    }
    {   /* 2x2 24-bit bottom-up BMP, rows of 6 bytes padded to 8 */
        static const unsigned char bmp[] = {
            'B', 'M', 70, 0, 0, 0, 0, 0, 0, 0, 54, 0, 0, 0,
            40, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 1, 0, 24, 0, 0, 0, 0, 0, 16, 0, 0, 0,
            0x13, 0x0B, 0, 0, 0x13, 0x0B, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            /* bottom row (y = 1): BGR BGR pad */ 3, 2, 1, 6, 5, 4, 0, 0,
            /* top row (y = 0) */ 30, 20, 10, 60, 50, 40, 0, 0};
        static const unsigned char want[12] = {10, 20, 30, 40, 50, 60, 1, 2, 3, 4, 5, 6};
        st = mmspcl_image_decode(bmp, sizeof bmp, &img, &err);
        CHECK(st == MMSPCL_OK && img.width == 2 && img.height == 2 && !memcmp(img.rgb, want, 12),
              "hand-made BMP: %s", st ? err.msg : "wrong pixels");
        mmspcl_image_free(&img);
        robustness("hand-made BMP", bmp, sizeof bmp, want);
    }
    {   /* 3x2 RGB PNG, stored deflate block, filters None and Up */
        static const unsigned char raw[2 * 10] = {0, 10, 20, 30, 40, 50, 60, 70, 80, 90,
                                                  2, 1, 1, 1, 2, 2, 2, 250, 250, 250};
        static const unsigned char want[18] = {10, 20, 30, 40, 50, 60, 70, 80, 90, 11, 21, 31, 42, 52, 62, 64, 74, 84};
        unsigned char z[64];
        pngbuf p;
        size_t zn = zlib_stored(z, raw, sizeof raw);
        png_start(&p);
        png_ihdr(&p, 3, 2, 8, 2, 0);
        png_chunk(&p, "IDAT", z, zn);
        png_chunk(&p, "IEND", NULL, 0);
        st = mmspcl_image_decode(p.b, p.n, &img, &err);
        CHECK(st == MMSPCL_OK && img.width == 3 && img.height == 2 && !memcmp(img.rgb, want, 18),
              "hand-made stored PNG: %s", st ? err.msg : "wrong pixels");
        mmspcl_image_free(&img);
        robustness("hand-made stored PNG", p.b, p.n, want);
    }
    {   /* 5x1 grey PNG, fixed-Huffman block written bit by bit: filter 0, literals 7, 200,
           then a match of length 3 at distance 1: row = 7 200 200 200 200 */
        static const unsigned char row[6] = {0, 7, 200, 200, 200, 200};
        static const unsigned char want[15] = {7, 7, 7, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200};
        unsigned char z[32];
        uint64_t acc = 0;
        int nb = 0, i;
        size_t zn = 2;
        pngbuf p;
        /* codes are sent MSB first; fixed code: lit 0-143 = 0x30+v (8 bits), 144-255 = 0x190+(v-144) (9),
           256-279 = v-256 (7 bits), distance codes 5 bits */
        struct { unsigned code; int len; int rev; } seq[8];
        int ns = 0;
        seq[ns].code = 1; seq[ns].len = 1; seq[ns++].rev = 0;          /* BFINAL */
        seq[ns].code = 1; seq[ns].len = 2; seq[ns++].rev = 0;          /* BTYPE = 01 (LSB first) */
        seq[ns].code = 0x30 + 0; seq[ns].len = 8; seq[ns++].rev = 1;   /* literal 0 (filter byte) */
        seq[ns].code = 0x30 + 7; seq[ns].len = 8; seq[ns++].rev = 1;   /* literal 7 */
        seq[ns].code = 0x190 + (200 - 144); seq[ns].len = 9; seq[ns++].rev = 1; /* literal 200 */
        seq[ns].code = 257 - 256; seq[ns].len = 7; seq[ns++].rev = 1;  /* length 3 */
        seq[ns].code = 0; seq[ns].len = 5; seq[ns++].rev = 1;          /* distance 1 */
        seq[ns].code = 0; seq[ns].len = 7; seq[ns++].rev = 1;          /* end of block */
        z[0] = 0x78; z[1] = 0x01;
        for (i = 0; i < ns; i++) {
            unsigned v = seq[i].code, r = 0;
            int b;
            if (seq[i].rev) { for (b = 0; b < seq[i].len; b++) r |= ((v >> b) & 1u) << (seq[i].len - 1 - b); v = r; }
            acc |= (uint64_t)v << nb;
            nb += seq[i].len;
        }
        while (nb > 0) { z[zn++] = (unsigned char)acc; acc >>= 8; nb -= 8; }
        put_be32(z + zn, t_adler(row, 6));
        zn += 4;
        png_start(&p);
        png_ihdr(&p, 5, 1, 8, 0, 0);
        png_chunk(&p, "IDAT", z, zn);
        png_chunk(&p, "IEND", NULL, 0);
        st = mmspcl_image_decode(p.b, p.n, &img, &err);
        CHECK(st == MMSPCL_OK && img.width == 5 && img.height == 1 && !memcmp(img.rgb, want, 15),
              "hand-made fixed-Huffman PNG: %s", st ? err.msg : "wrong pixels");
        mmspcl_image_free(&img);
        robustness("hand-made fixed-Huffman PNG", p.b, p.n, want);
    }
}

/* ---------------------------------------------------------------------------------------------
   malformed files with specific errors
   ------------------------------------------------------------------------------------------ */
/* PNG: size limits, IHDR fields, chunks, lengths and CRCs */
static void test_malformed_png_chunks(void) {
    static const unsigned char raw1[4] = {0, 1, 2, 3}; /* 1x1 RGB, filter 0 */
    unsigned char z[256];
    pngbuf p;
    size_t zn = zlib_stored(z, raw1, 4);

    png_start(&p); png_ihdr(&p, 100000, 1, 8, 2, 0); png_chunk(&p, "IDAT", z, zn); png_chunk(&p, "IEND", NULL, 0);
    expect_fail(p.b, p.n, MMSPCL_ERR_UNSUPPORTED, "limits", "PNG width 100000");
    png_start(&p); png_ihdr(&p, 16384, 16385, 8, 2, 0); png_chunk(&p, "IDAT", z, zn); png_chunk(&p, "IEND", NULL, 0);
    expect_fail(p.b, p.n, MMSPCL_ERR_UNSUPPORTED, "limits", "PNG 16384 x 16385");
    png_start(&p); png_ihdr(&p, 0x7FFFFFFF, 0x7FFFFFFF, 8, 6, 0); png_chunk(&p, "IDAT", z, zn); png_chunk(&p, "IEND", NULL, 0);
    expect_fail(p.b, p.n, MMSPCL_ERR_UNSUPPORTED, "limits", "PNG 2^31-1 squared");
    png_start(&p); png_ihdr(&p, 16384, 16384, 16, 6, 0); png_chunk(&p, "IDAT", z, zn); png_chunk(&p, "IEND", NULL, 0);
    expect_fail(p.b, p.n, MMSPCL_ERR_FORMAT, "cannot hold", "PNG 16384 x 16384 RGBA16 from 15 bytes");
    png_start(&p); png_ihdr(&p, 0x80000000u, 1, 8, 2, 0); png_chunk(&p, "IDAT", z, zn); png_chunk(&p, "IEND", NULL, 0);
    expect_fail(p.b, p.n, MMSPCL_ERR_FORMAT, "IHDR size", "PNG width 2^31");
    png_start(&p); png_ihdr(&p, 0, 1, 8, 2, 0); png_chunk(&p, "IDAT", z, zn); png_chunk(&p, "IEND", NULL, 0);
    expect_fail(p.b, p.n, MMSPCL_ERR_FORMAT, "IHDR size", "PNG width 0");
    png_start(&p); png_ihdr(&p, 1, 1, 8, 5, 0); png_chunk(&p, "IDAT", z, zn); png_chunk(&p, "IEND", NULL, 0);
    expect_fail(p.b, p.n, MMSPCL_ERR_FORMAT, "colour type", "PNG colour type 5");
    png_start(&p); png_ihdr(&p, 1, 1, 3, 2, 0); png_chunk(&p, "IDAT", z, zn); png_chunk(&p, "IEND", NULL, 0);
    expect_fail(p.b, p.n, MMSPCL_ERR_FORMAT, "bit depth", "PNG bit depth 3");
    png_start(&p); png_ihdr(&p, 1, 1, 8, 2, 2); png_chunk(&p, "IDAT", z, zn); png_chunk(&p, "IEND", NULL, 0);
    expect_fail(p.b, p.n, MMSPCL_ERR_FORMAT, "interlace", "PNG interlace 2");
    png_start(&p); png_ihdr(&p, 1, 1, 8, 3, 0); png_chunk(&p, "IDAT", z, zn); png_chunk(&p, "IEND", NULL, 0);
    expect_fail(p.b, p.n, MMSPCL_ERR_FORMAT, "PLTE", "PNG palette without PLTE");
    png_start(&p); png_ihdr(&p, 1, 1, 8, 2, 0); png_chunk(&p, "IEND", NULL, 0);
    expect_fail(p.b, p.n, MMSPCL_ERR_FORMAT, "no IDAT", "PNG without IDAT");
    png_start(&p); png_ihdr(&p, 1, 1, 8, 2, 0); png_chunk(&p, "IDAT", z, zn);
    expect_fail(p.b, p.n, MMSPCL_ERR_FORMAT, "IEND", "PNG without IEND");
    png_start(&p); png_ihdr(&p, 1, 1, 8, 2, 0); png_chunk(&p, "ABCD", z, 3); png_chunk(&p, "IDAT", z, zn); png_chunk(&p, "IEND", NULL, 0);
    expect_fail(p.b, p.n, MMSPCL_ERR_UNSUPPORTED, "critical chunk ABCD", "PNG unknown critical chunk");
    png_start(&p); png_chunk(&p, "IDAT", z, zn); png_chunk(&p, "IEND", NULL, 0);
    expect_fail(p.b, p.n, MMSPCL_ERR_FORMAT, "not IHDR", "PNG without IHDR");
    png_start(&p); png_ihdr(&p, 1, 1, 8, 2, 0); png_chunk(&p, "IDAT", z, zn); png_chunk(&p, "IEND", NULL, 0);
    put_be32(p.b + 33, 0xFFFFFFF0u); /* IDAT length */
    expect_fail(p.b, p.n, MMSPCL_ERR_FORMAT, "length", "PNG chunk length 0xFFFFFFF0");
    png_start(&p); png_ihdr(&p, 1, 1, 8, 2, 0); png_chunk(&p, "IDAT", z, zn); png_chunk(&p, "IEND", NULL, 0);
    p.b[p.n - 13] ^= 1; /* IDAT CRC */
    expect_fail(p.b, p.n, MMSPCL_ERR_FORMAT, "CRC mismatch in chunk IDAT", "PNG bad CRC");
}

/* PNG image data: filter type 5; more data than the image needs, less; bad Adler; bad header;
   preset dictionary; block type 3; a stored block's NLEN; a distance before the start */
static void test_malformed_png_data(void) {
    static const unsigned char raw1[4] = {0, 1, 2, 3}; /* 1x1 RGB, filter 0 */
    unsigned char buf[512];
    pngbuf p;
    {   /* filter type 5 */
        static const unsigned char bad[4] = {5, 1, 2, 3};
        size_t bn = zlib_stored(buf, bad, 4);
        png_start(&p); png_ihdr(&p, 1, 1, 8, 2, 0); png_chunk(&p, "IDAT", buf, bn); png_chunk(&p, "IEND", NULL, 0);
        expect_fail(p.b, p.n, MMSPCL_ERR_FORMAT, "filter type 5", "PNG filter type 5");
    }
    {   /* more data than the image needs; less; bad Adler; bad header; preset dictionary; block type 3 */
        static const unsigned char more[7] = {0, 1, 2, 3, 0, 9, 9};
        size_t bn = zlib_stored(buf, more, 7);
        png_start(&p); png_ihdr(&p, 1, 1, 8, 2, 0); png_chunk(&p, "IDAT", buf, bn); png_chunk(&p, "IEND", NULL, 0);
        expect_fail(p.b, p.n, MMSPCL_ERR_FORMAT, "more data than the image needs", "PNG zlib too long");
        bn = zlib_stored(buf, more, 3);
        png_start(&p); png_ihdr(&p, 1, 1, 8, 2, 0); png_chunk(&p, "IDAT", buf, bn); png_chunk(&p, "IEND", NULL, 0);
        expect_fail(p.b, p.n, MMSPCL_ERR_FORMAT, "ends after 3 of the 4 bytes", "PNG zlib too short");
        bn = zlib_stored(buf, raw1, 4);
        buf[bn - 1] ^= 0x40;
        png_start(&p); png_ihdr(&p, 1, 1, 8, 2, 0); png_chunk(&p, "IDAT", buf, bn); png_chunk(&p, "IEND", NULL, 0);
        expect_fail(p.b, p.n, MMSPCL_ERR_FORMAT, "Adler-32 mismatch", "PNG bad Adler-32");
        bn = zlib_stored(buf, raw1, 4);
        png_start(&p); png_ihdr(&p, 1, 1, 8, 2, 0); png_chunk(&p, "IDAT", buf, bn - 4); png_chunk(&p, "IEND", NULL, 0);
        expect_fail(p.b, p.n, MMSPCL_ERR_FORMAT, "Adler-32 checksum is missing", "PNG no Adler-32");
        bn = zlib_stored(buf, raw1, 4);
        buf[0] = 0x79;
        png_start(&p); png_ihdr(&p, 1, 1, 8, 2, 0); png_chunk(&p, "IDAT", buf, bn); png_chunk(&p, "IEND", NULL, 0);
        expect_fail(p.b, p.n, MMSPCL_ERR_FORMAT, "bad zlib header", "PNG bad zlib header");
        bn = zlib_stored(buf, raw1, 4);
        buf[1] = 0x20; /* 0x78 0x20: FDICT set, check bits valid (0x7820 % 31 == 0) */
        png_start(&p); png_ihdr(&p, 1, 1, 8, 2, 0); png_chunk(&p, "IDAT", buf, bn); png_chunk(&p, "IEND", NULL, 0);
        expect_fail(p.b, p.n, MMSPCL_ERR_FORMAT, "dictionary", "PNG zlib FDICT");
        bn = zlib_stored(buf, raw1, 4);
        buf[2] = 7; /* BFINAL, block type 3 */
        png_start(&p); png_ihdr(&p, 1, 1, 8, 2, 0); png_chunk(&p, "IDAT", buf, bn); png_chunk(&p, "IEND", NULL, 0);
        expect_fail(p.b, p.n, MMSPCL_ERR_FORMAT, "block type 3", "PNG deflate block type 3");
        bn = zlib_stored(buf, raw1, 4);
        buf[5] ^= 1; /* NLEN */
        png_start(&p); png_ihdr(&p, 1, 1, 8, 2, 0); png_chunk(&p, "IDAT", buf, bn); png_chunk(&p, "IEND", NULL, 0);
        expect_fail(p.b, p.n, MMSPCL_ERR_FORMAT, "complement", "PNG stored block NLEN");
        /* fixed block with a distance before the start: literal 0 then length 3 distance 1 is fine,
           distance 2 (code 1) is not */
        {
            unsigned char zz[16] = {0x78, 0x01};
            /* BFINAL=1, BTYPE=01, lit 0 (00110000 sent MSB first), length code 257 (0000001), dist code 1 (00001) */
            uint64_t acc = 0;
            int nb = 0, i;
            size_t k = 2;
            unsigned codes[6][2] = {{1, 1}, {1, 2}, {0x0C, 8} /* reversed 0x30 */, {0x40, 7} /* reversed 1 */,
                                    {0x10, 5} /* reversed 1 */, {0, 7}};
            for (i = 0; i < 6; i++) { acc |= (uint64_t)codes[i][0] << nb; nb += (int)codes[i][1]; }
            while (nb > 0) { zz[k++] = (unsigned char)acc; acc >>= 8; nb -= 8; }
            put_be32(zz + k, 1);
            k += 4;
            png_start(&p); png_ihdr(&p, 1, 1, 8, 2, 0); png_chunk(&p, "IDAT", zz, k); png_chunk(&p, "IEND", NULL, 0);
            expect_fail(p.b, p.n, MMSPCL_ERR_FORMAT, "before the start", "PNG deflate distance too far");
        }
    }
}

/* random garbage after a valid zlib header, as stored / fixed / dynamic blocks */
static void test_malformed_zlib_garbage(void) {
    unsigned char buf[512];
    pngbuf p;
    mmspcl_image img;
    mmspcl_error err;
    uint32_t s = 12345;
    int t, bad = 0;
    for (t = 0; t < 3000; t++) {
        size_t len = 3 + (size_t)(t % 200), i;
        mmspcl_status st;
        buf[0] = 0x78; buf[1] = 0x9C;
        for (i = 2; i < len; i++) { s = s * 1664525u + 1013904223u; buf[i] = (unsigned char)(s >> 24); }
        buf[2] = (unsigned char)((buf[2] & ~6u) | ((unsigned)(t % 3) << 1));
        png_start(&p); png_ihdr(&p, 7, 5, 8, 2, 0); png_chunk(&p, "IDAT", buf, len); png_chunk(&p, "IEND", NULL, 0);
        st = mmspcl_image_decode(p.b, p.n, &img, &err);
        if (st == MMSPCL_OK) mmspcl_image_free(&img);
        if (st != MMSPCL_ERR_FORMAT || img.rgb) bad++;
    }
    CHECK(bad == 0, "zlib garbage: %d of 3000 random streams not rejected as FORMAT", bad);
}

/* other formats (JPEG, GIF, WebP, P1-P4, text, empty) and malformed PPM */
static void test_malformed_other_formats(void) {
    expect_fail((const unsigned char *)"\xff\xd8\xff\xe0\0\x10JFIF", 10, MMSPCL_ERR_UNSUPPORTED, "JPEG", "JPEG");
    expect_fail((const unsigned char *)"GIF89a\1\0\1\0", 10, MMSPCL_ERR_UNSUPPORTED, "GIF", "GIF");
    expect_fail((const unsigned char *)"RIFF\0\0\0\0WEBPVP8 ", 16, MMSPCL_ERR_UNSUPPORTED, "WebP", "WebP");
    expect_fail((const unsigned char *)"P3\n1 1\n255\n1 2 3\n", 17, MMSPCL_ERR_UNSUPPORTED, "P1-P4", "P3");
    expect_fail((const unsigned char *)"hello world", 11, MMSPCL_ERR_UNSUPPORTED, "unknown image format", "text");
    expect_fail((const unsigned char *)"", 0, MMSPCL_ERR_FORMAT, "empty", "empty");
    /* PPM */
    expect_fail((const unsigned char *)"P6 1 1 0\n\0\0\0", 12, MMSPCL_ERR_FORMAT, "maxval 0", "P6 maxval 0");
    expect_fail((const unsigned char *)"P6 1 1 70000\n\0\0\0\0\0\0", 19, MMSPCL_ERR_FORMAT, "maxval 70000", "P6 maxval 70000");
    expect_fail((const unsigned char *)"P6 0 1 255\n", 11, MMSPCL_ERR_FORMAT, "size 0 x 1", "P6 width 0");
    expect_fail((const unsigned char *)"P6 20000 1 255\n", 15, MMSPCL_ERR_UNSUPPORTED, "limits", "P6 width 20000");
    expect_fail((const unsigned char *)"P6 99999999999 1 255\n", 21, MMSPCL_ERR_FORMAT, "header", "P6 width overflow");
    expect_fail((const unsigned char *)"P6 2 1 255\n\1\2\3\4\5", 16, MMSPCL_ERR_FORMAT, "needs 6 pixel bytes", "P6 truncated data");
    expect_fail((const unsigned char *)"P6 2 -1 255\n", 12, MMSPCL_ERR_FORMAT, "header", "P6 negative");
}

/* BMP: limits, heights, missing rows, offsets, compressions, header sizes, bitfields */
static void test_malformed_bmp(void) {
    static const unsigned char base[] = {
        'B', 'M', 58, 0, 0, 0, 0, 0, 0, 0, 54, 0, 0, 0,
        40, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 24, 0, 0, 0, 0, 0, 4, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 0};
    unsigned char buf[512];
    size_t n;
    mmspcl_image img;
    mmspcl_error err;
    memcpy(buf, base, sizeof base);
    n = sizeof base;
    CHECK(mmspcl_image_decode(buf, n, &img, &err) == MMSPCL_OK && img.rgb[0] == 3 && img.rgb[2] == 1,
          "1x1 BMP base case: %s", err.msg);
    mmspcl_image_free(&img);
    memcpy(buf, base, n); buf[19] = 0x50;  /* width 20481 */
    expect_fail(buf, n, MMSPCL_ERR_UNSUPPORTED, "limits", "BMP width 20481");
    memcpy(buf, base, n); buf[22] = 0; buf[23] = 0; buf[24] = 0; buf[25] = 0x80; /* height INT32_MIN */
    expect_fail(buf, n, MMSPCL_ERR_FORMAT, "height", "BMP height INT32_MIN");
    memcpy(buf, base, n); buf[22] = 0xFF; buf[23] = 0xFF; buf[24] = 0xFF; buf[25] = 0xFF; /* -1: top-down 1 row */
    CHECK(mmspcl_image_decode(buf, n, &img, &err) == MMSPCL_OK && img.height == 1, "BMP height -1: %s", err.msg);
    mmspcl_image_free(&img);
    memcpy(buf, base, n); buf[22] = 2; /* 2 rows, only 1 present */
    expect_fail(buf, n, MMSPCL_ERR_FORMAT, "past the end", "BMP missing rows");
    memcpy(buf, base, n); buf[10] = 200; /* pixel offset past the end */
    expect_fail(buf, n, MMSPCL_ERR_FORMAT, "past the end", "BMP offset");
    memcpy(buf, base, n); buf[30] = 1; /* RLE8 */
    expect_fail(buf, n, MMSPCL_ERR_UNSUPPORTED, "RLE8", "BMP RLE8");
    memcpy(buf, base, n); buf[28] = 16;
    expect_fail(buf, n, MMSPCL_ERR_UNSUPPORTED, "16 bits", "BMP 16-bit");
    memcpy(buf, base, n); buf[14] = 41;
    expect_fail(buf, n, MMSPCL_ERR_UNSUPPORTED, "header size 41", "BMP header 41");
    memcpy(buf, base, n); buf[28] = 32; buf[30] = 3; /* bitfields with masks 0x00000001.. */
    buf[54] = 1;
    expect_fail(buf, n, MMSPCL_ERR_FORMAT, "masks are truncated", "BMP bitfield masks truncated");
    robustness("1x1 BMP", base, sizeof base, NULL);
}

/* ---------------------------------------------------------------------------------------------
   decoder files from tools/reference/image_ref.py
   ------------------------------------------------------------------------------------------ */
static void test_files(void) {
    FILE *m = fopen(DEC_DIR "decode.txt", "r");
    char line[512];
    int files = 0;
    CHECK(m != NULL, "cannot open %s", DEC_DIR "decode.txt");
    if (!m) return;
    while (fgets(line, sizeof line, m)) {
        char name[128], exp[160], path[400];
        int w, h;
        unsigned char *data, *want;
        size_t n, wn;
        mmspcl_image img, img2;
        mmspcl_error err;
        mmspcl_status st;
        if (line[0] == '#' || sscanf(line, "%127s %d %d %159s", name, &w, &h, exp) != 4) continue;
        snprintf(path, sizeof path, DEC_DIR "%s", name);
        data = test_read_file(path, &n);
        snprintf(path, sizeof path, DEC_DIR "%s", exp);
        want = test_read_file(path, &wn);
        CHECK(data && want && wn == (size_t)w * h * 3, "%s: reference files missing", name);
        if (!data || !want) { free(data); free(want); continue; }
        files++;
        st = mmspcl_image_decode(data, n, &img, &err);
        CHECK(st == MMSPCL_OK && img.width == w && img.height == h && !memcmp(img.rgb, want, wn),
              "%s: %s", name, st ? err.msg : "pixels differ from Pillow's");
        snprintf(path, sizeof path, DEC_DIR "%s", name);
        st = mmspcl_image_load(path, &img2, &err);
        CHECK(st == MMSPCL_OK && img2.width == w && img2.height == h && !memcmp(img2.rgb, want, wn),
              "%s via image_load: %s", name, st ? err.msg : "pixels differ");
        mmspcl_image_free(&img);
        mmspcl_image_free(&img2);
        robustness(name, data, n, want);
        free(data);
        free(want);
    }
    fclose(m);
    CHECK(files >= 30, "only %d decoder files", files);
    {
        mmspcl_image img;
        mmspcl_error err;
        CHECK(mmspcl_image_load("tests/data/images/no-such-file.png", &img, &err) == MMSPCL_ERR_IO &&
              strstr(err.msg, "no-such-file") != NULL, "missing file: %s", err.msg);
        CHECK(mmspcl_image_load("tests/data/images", &img, &err) == MMSPCL_ERR_IO && img.rgb == NULL,
              "directory: %s", err.msg);
    }
}

/* ---------------------------------------------------------------------------------------------
   CLIP preprocessing against Pillow / Hugging Face
   ------------------------------------------------------------------------------------------ */
static long match_exact, match_within2, match_total;

static void test_clip(void) {
    static const float mean[3] = MMSPCL_CLIP_MEAN, stdv[3] = MMSPCL_CLIP_STD;
    FILE *m = fopen(CLIP_DIR "clip.txt", "r");
    char line[512];
    int cases = 0;
    CHECK(m != NULL, "cannot open %s", CLIP_DIR "clip.txt");
    if (!m) return;
    while (fgets(line, sizeof line, m)) {
        char name[64], src[200], u8f[128], f32f[128], path[400];
        int w, h, S, C, rw, rh, gw = 0, gh = 0;
        unsigned char *rgb = NULL, *want = NULL, *got;
        size_t wn = 0, i, nv;
        long ex = 0, w2 = 0;
        mmspcl_image srcimg, refimg;
        mmspcl_error err;
        mmspcl_status st;
        memset(&srcimg, 0, sizeof srcimg);
        memset(&refimg, 0, sizeof refimg);
        if (line[0] == '#' ||
            sscanf(line, "%63s %199s %d %d %d %d %d %d %127s %127s", name, src, &w, &h, &S, &C, &rw, &rh, u8f, f32f) != 10)
            continue;
        cases++;
        CHECK(mmspcl_clip_resize_size(w, h, S, &gw, &gh) == MMSPCL_OK && gw == rw && gh == rh,
              "%s: resize size %dx%d, Hugging Face %dx%d", name, gw, gh, rw, rh);
        if (!strncmp(src, "synth:", 6)) {
            unsigned seed;
            int kind;
            sscanf(src + 6, "%u:%d", &seed, &kind);
            rgb = synth(w, h, seed, kind);
        } else {
            st = mmspcl_image_load(src, &srcimg, &err);
            CHECK(st == MMSPCL_OK && srcimg.width == w && srcimg.height == h, "%s: %s", name, err.msg);
            if (st) continue;
            rgb = srcimg.rgb;
        }
        snprintf(path, sizeof path, CLIP_DIR "%s", u8f);
        nv = (size_t)C * C * 3;
        if (strstr(u8f, ".png")) {
            st = mmspcl_image_load(path, &refimg, &err);
            CHECK(st == MMSPCL_OK && refimg.width == C && refimg.height == C, "%s: %s", path, err.msg);
            want = refimg.rgb;
            wn = want ? nv : 0;
        } else {
            want = test_read_file(path, &wn);
        }
        CHECK(want && wn == nv, "%s: reference %s missing or of the wrong size", name, u8f);
        got = (unsigned char *)malloc(nv);
        st = mmspcl_clip_resize_crop(rgb, w, h, (size_t)w * 3, S, C, got, &err);
        CHECK(st == MMSPCL_OK, "%s S=%d C=%d: %s", name, S, C, err.msg);
        if (want && wn == nv && st == MMSPCL_OK) {
            int maxd = 0;
            for (i = 0; i < nv; i++) {
                int d = abs((int)got[i] - (int)want[i]);
                ex += d == 0;
                w2 += d <= 2;
                if (d > maxd) maxd = d;
            }
            match_exact += ex;
            match_within2 += w2;
            match_total += (long)nv;
            printf("  %-13s %4dx%-4d S=%-3d C=%-3d resized %5dx%-5d  %6ld/%-6ld exact (%.3f%%), max |diff| %d\n",
                   name, w, h, S, C, rw, rh, ex, (long)nv, 100.0 * ex / nv, maxd);
            CHECK(w2 >= 0.99 * nv, "%s S=%d: only %ld of %zu values within 2 of Pillow", name, S, w2, nv);
        }
        if (strcmp(f32f, "-") != 0) { /* the float tensor, as Hugging Face's numpy code makes it */
            size_t fn = 0, nf = (size_t)3 * C * C;
            unsigned char *fb;
            float *out = (float *)malloc(nf * sizeof(float));
            snprintf(path, sizeof path, CLIP_DIR "%s", f32f);
            fb = test_read_file(path, &fn);
            CHECK(fb && fn == nf * 4, "%s: %s missing", name, f32f);
            st = mmspcl_clip_preprocess_rgb(rgb, w, h, (size_t)w * 3, S, C, mean, stdv, out, &err);
            CHECK(st == MMSPCL_OK, "%s preprocess: %s", name, err.msg);
            if (fb && fn == nf * 4 && !st) {
                size_t bad = 0, same = 0;
                for (i = 0; i < nf; i++) {
                    float r;
                    int c = (int)(i / ((size_t)C * C));
                    memcpy(&r, fb + 4 * i, 4); /* little-endian hosts */
                    same += memcmp(&r, &out[i], 4) == 0;
                    if (fabsf(r - out[i]) * stdv[c] > 2.0f / 255.0f + 1e-6f) bad++;
                }
                printf("  %-13s float32 tensor: %zu/%zu bit-identical to Hugging Face's\n", name, same, nf);
                CHECK(bad <= nf / 100, "%s: %zu floats further than 2/255 from Hugging Face's", name, bad);
            }
            if (srcimg.rgb) { /* the mmspcl_image entry point gives the same floats */
                float *out2 = (float *)malloc(nf * sizeof(float));
                CHECK(mmspcl_clip_preprocess(&srcimg, S, C, mean, stdv, out2, &err) == MMSPCL_OK &&
                      !memcmp(out, out2, nf * sizeof(float)), "%s: clip_preprocess differs from _rgb", name);
                free(out2);
            }
            free(fb);
            free(out);
        }
        { /* a padded stride gives the same crop */
            size_t stride = (size_t)w * 3 + 5;
            unsigned char *padded = (unsigned char *)malloc(stride * h), *got2 = (unsigned char *)malloc(nv);
            int y;
            for (y = 0; y < h; y++) {
                memcpy(padded + (size_t)y * stride, rgb + (size_t)y * w * 3, (size_t)w * 3);
                memset(padded + (size_t)y * stride + (size_t)w * 3, 0xEE, 5);
            }
            CHECK(mmspcl_clip_resize_crop(padded, w, h, stride, S, C, got2, &err) == MMSPCL_OK && !memcmp(got, got2, nv),
                  "%s: stride %zu changes the result", name, stride);
            free(padded);
            free(got2);
        }
        free(got);
        if (srcimg.rgb) mmspcl_image_free(&srcimg); else free(rgb);
        if (refimg.rgb) mmspcl_image_free(&refimg); else free(want);
    }
    fclose(m);
    CHECK(cases >= 10, "only %d preprocessing cases", cases);
    printf("  Pillow match: %ld/%ld uint8 values exact (%.4f%%), %ld within 2 (%.4f%%)\n", match_exact, match_total,
           100.0 * match_exact / (match_total ? match_total : 1), match_within2,
           100.0 * match_within2 / (match_total ? match_total : 1));
    CHECK(match_total > 0 && match_within2 >= 0.99 * match_total, "overall Pillow match below 99%%");

    { /* CLIP.png decodes to Pillow's pixels */
        FILE *f = fopen(CLIP_DIR "clip_png.txt", "r");
        unsigned w = 0, h = 0, crc = 0;
        mmspcl_image img;
        mmspcl_error err;
        char l[256];
        while (f && fgets(l, sizeof l, f))
            if (l[0] != '#') sscanf(l, "%u %u %x", &w, &h, &crc);
        if (f) fclose(f);
        CHECK(mmspcl_image_load("../shared/data/images/CLIP.png", &img, &err) == MMSPCL_OK && (unsigned)img.width == w &&
              (unsigned)img.height == h && test_crc32(img.rgb, (size_t)w * h * 3) == crc,
              "CLIP.png: %s", img.rgb ? "pixels differ from Pillow's" : err.msg);
        mmspcl_image_free(&img);
    }
}

static void test_resize_api(void) {
    mmspcl_error err;
    unsigned char *src = synth(50, 40, 27, 2), *full = (unsigned char *)malloc(80 * 64 * 3), *crop = (unsigned char *)malloc(64 * 64 * 3);
    unsigned char *same = (unsigned char *)malloc(50 * 40 * 3), flat[12 * 9 * 3], flat_out[5 * 7 * 3];
    int y, rw = 0, rh = 0;
    size_t i;
    float out[3 * 4 * 4];
    static const float mean[3] = MMSPCL_CLIP_MEAN, stdv[3] = MMSPCL_CLIP_STD, zero[3] = {1, 0, 1};
    /* full resize then crop == windowed crop */
    CHECK(mmspcl_image_resize_bicubic(src, 50, 40, full, 80, 64) == MMSPCL_OK, "resize_bicubic failed");
    CHECK(mmspcl_clip_resize_crop(src, 50, 40, 150, 64, 64, crop, &err) == MMSPCL_OK, "resize_crop: %s", err.msg);
    for (y = 0; y < 64; y++)
        CHECK(!memcmp(crop + (size_t)y * 64 * 3, full + ((size_t)y * 80 + 8) * 3, 64 * 3), "window row %d differs", y);
    /* same size: a copy */
    CHECK(mmspcl_image_resize_bicubic(src, 50, 40, same, 50, 40) == MMSPCL_OK && !memcmp(same, src, 50 * 40 * 3),
          "same-size resize is not a copy");
    /* a flat image stays flat (normalised coefficients) */
    memset(flat, 77, sizeof flat);
    CHECK(mmspcl_image_resize_bicubic(flat, 12, 9, flat_out, 5, 7) == MMSPCL_OK, "flat resize");
    for (i = 0; i < sizeof flat_out; i++)
        if (flat_out[i] != 77) break;
    CHECK(i == sizeof flat_out, "flat image not flat after resize (%u)", i < sizeof flat_out ? flat_out[i] : 0);
    /* sizes */
    CHECK(mmspcl_clip_resize_size(2162, 762, 224, &rw, &rh) == MMSPCL_OK && rw == 635 && rh == 224, "CLIP.png size %dx%d", rw, rh);
    CHECK(mmspcl_clip_resize_size(224, 224, 224, &rw, &rh) == MMSPCL_OK && rw == 224 && rh == 224, "square size");
    CHECK(mmspcl_clip_resize_size(1, 16384, 65536, &rw, &rh) == MMSPCL_OK && rw == 65536 && rh == 1073741824,
          "extreme size %dx%d", rw, rh);
    /* a huge virtual resize only computes the crop */
    {
        unsigned char *thin = synth(1, 16384, 5, 1), *c = (unsigned char *)malloc(224 * 224 * 3);
        CHECK(mmspcl_clip_resize_crop(thin, 1, 16384, 3, 224, 224, c, &err) == MMSPCL_OK, "1x16384: %s", err.msg);
        free(thin);
        free(c);
    }
    /* argument errors */
    CHECK(mmspcl_image_resize_bicubic(NULL, 5, 5, flat_out, 1, 1) == MMSPCL_ERR_ARG, "NULL src");
    CHECK(mmspcl_image_resize_bicubic(src, 0, 5, flat_out, 1, 1) == MMSPCL_ERR_ARG, "w 0");
    CHECK(mmspcl_image_resize_bicubic(src, 5, 5, flat_out, 1, 20000) == MMSPCL_ERR_ARG, "dh 20000");
    CHECK(mmspcl_clip_resize_size(0, 5, 224, &rw, &rh) == MMSPCL_ERR_ARG, "size of 0 x 5");
    CHECK(mmspcl_clip_resize_crop(src, 50, 40, 149, 64, 64, crop, &err) == MMSPCL_ERR_ARG && strstr(err.msg, "stride"),
          "small stride: %s", err.msg);
    CHECK(mmspcl_clip_resize_crop(src, 50, 40, 150, 0, 64, crop, &err) == MMSPCL_ERR_ARG, "S = 0");
    CHECK(mmspcl_clip_preprocess_rgb(src, 50, 40, 150, 4, 4, mean, zero, out, &err) == MMSPCL_ERR_ARG &&
          strstr(err.msg, "std"), "std 0: %s", err.msg);
    CHECK(mmspcl_clip_preprocess(NULL, 4, 4, mean, stdv, out, &err) == MMSPCL_ERR_ARG, "NULL image");
    {
        mmspcl_image e;
        CHECK(mmspcl_image_decode(NULL, 5, &e, &err) == MMSPCL_ERR_ARG, "NULL bytes");
        CHECK(mmspcl_image_decode("P6", 2, NULL, &err) == MMSPCL_ERR_ARG, "NULL out");
        mmspcl_image_free(NULL);
    }
    free(src); free(full); free(crop); free(same);
}

int main(void) {
    test_handmade();
    test_malformed_png_chunks();
    test_malformed_png_data();
    test_malformed_zlib_garbage();
    test_malformed_other_formats();
    test_malformed_bmp();
    test_files();
    test_resize_api();
    test_clip();
    return TEST_END();
}
