/* test_format.c - the weight file format (docs/FORMAT.md), f16/bf16 conversion, q8_0/q4_0 blocks,
   the arena, the writer's atomic save and the reader's validation of malformed files.
   Run from the repository root; temporary files go to build/tests/tmp/. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>

/* The library allocates only through these: a test can make the n-th allocation fail. */
static long alloc_countdown = -1;  /* -1: never fail; 0: the next allocation fails (once) */
static int alloc_fail_now(void) {
    if (alloc_countdown < 0) return 0;
    return alloc_countdown-- == 0;
}
static void *test_malloc(size_t n) { return alloc_fail_now() ? NULL : malloc(n); }
static void *test_realloc(void *p, size_t n) { return alloc_fail_now() ? NULL : realloc(p, n); }
#define MMSPCL_MALLOC(sz) test_malloc(sz)
#define MMSPCL_REALLOC(p, sz) test_realloc(p, sz)
#define MMSPCL_FREE(p) free(p)

#define MMSPCL_IMPLEMENTATION
#include "mmspcl.h"
#include "tests/test.h"

#include <errno.h>
#include <float.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TMP "build/tests/tmp"

/* ---------------------------------------------------------------------------------------------
   Small helpers
   ------------------------------------------------------------------------------------------ */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {  /* xorshift64*: fixed seed, same sequence on every machine */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}
static float rndf(void) { return (float)((rnd() >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f; } /* [-1,1) */

static float bits_f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t f_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static uint64_t rd_le(const unsigned char *p, int n) {
    uint64_t v = 0;
    int i;
    for (i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static void wr_le(unsigned char *p, uint64_t v, int n) {
    int i;
    for (i = 0; i < n; i++, v >>= 8) p[i] = (unsigned char)(v & 0xff);
}

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

static int spit(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    int ok;
    if (!f) return 0;
    ok = fwrite(b, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* ---------------------------------------------------------------------------------------------
   f16 / bf16
   ------------------------------------------------------------------------------------------ */
/* An independent reference for f32 -> f16: the finite f16 values 0x0000..0x7bff are increasing in
   their bit pattern, so binary-search the two neighbours of |f| and take the nearer one, the even
   one on a tie; |f| >= 65520 (the midpoint between 65504 and 65536) is infinity. */
static uint16_t ref_fp16(float f) {
    uint32_t u = f_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    double a = fabs((double)f);
    unsigned lo = 0, hi = 0x7bff;
    if (f != f) return (uint16_t)(sign | 0x7e00);
    if (a >= 65520.0) return (uint16_t)(sign | 0x7c00);
    while (hi - lo > 1) {  /* invariant: value(lo) <= a < value(hi), or a is at an end */
        unsigned mid = (lo + hi) / 2;
        if ((double)mmspcl_fp16_to_fp32((uint16_t)mid) <= a) lo = mid; else hi = mid;
    }
    if (a >= (double)mmspcl_fp16_to_fp32((uint16_t)hi)) return (uint16_t)(sign | hi);
    {
        double dl = a - (double)mmspcl_fp16_to_fp32((uint16_t)lo), dh = (double)mmspcl_fp16_to_fp32((uint16_t)hi) - a;
        unsigned r = dl < dh ? lo : dh < dl ? hi : (lo & 1) ? hi : lo;
        return (uint16_t)(sign | r);
    }
}

static void test_half(void) {
    uint32_t h;
    int bad = 0, i;
    /* f32 -> f16, hand-known bit patterns */
    CHECK(mmspcl_fp32_to_fp16(1.0f) == 0x3c00, "f16(1) = %04x", mmspcl_fp32_to_fp16(1.0f));
    CHECK(mmspcl_fp32_to_fp16(-2.0f) == 0xc000, "f16(-2) = %04x", mmspcl_fp32_to_fp16(-2.0f));
    CHECK(mmspcl_fp32_to_fp16(0.5f) == 0x3800, "f16(0.5)");
    CHECK(mmspcl_fp32_to_fp16(65504.0f) == 0x7bff, "f16(65504) = %04x", mmspcl_fp32_to_fp16(65504.0f));
    CHECK(mmspcl_fp32_to_fp16(bits_f(0x477fefff)) == 0x7bff, "f16(just below 65520) = %04x",
          mmspcl_fp32_to_fp16(bits_f(0x477fefff)));
    CHECK(mmspcl_fp32_to_fp16(65520.0f) == 0x7c00, "f16(65520) = %04x (tie rounds to even = inf)",
          mmspcl_fp32_to_fp16(65520.0f));
    CHECK(mmspcl_fp32_to_fp16(-65520.0f) == 0xfc00, "f16(-65520)");
    CHECK(mmspcl_fp32_to_fp16(1e10f) == 0x7c00, "f16(1e10)");
    CHECK(mmspcl_fp32_to_fp16(bits_f(0x7f800000)) == 0x7c00, "f16(inf)");
    CHECK(mmspcl_fp32_to_fp16(bits_f(0xff800000)) == 0xfc00, "f16(-inf)");
    CHECK(mmspcl_fp32_to_fp16(0.0f) == 0x0000, "f16(0)");
    CHECK(mmspcl_fp32_to_fp16(-0.0f) == 0x8000, "f16(-0)");
    CHECK(mmspcl_fp32_to_fp16(0.1f) == 0x2e66, "f16(0.1) = %04x", mmspcl_fp32_to_fp16(0.1f));
    CHECK(mmspcl_fp32_to_fp16(ldexpf(1, -14)) == 0x0400, "f16(2^-14) smallest normal");
    CHECK(mmspcl_fp32_to_fp16(ldexpf(1, -24)) == 0x0001, "f16(2^-24) = %04x", mmspcl_fp32_to_fp16(ldexpf(1, -24)));
    CHECK(mmspcl_fp32_to_fp16(-ldexpf(1, -24)) == 0x8001, "f16(-2^-24)");
    CHECK(mmspcl_fp32_to_fp16(ldexpf(1023, -24)) == 0x03ff, "f16 largest subnormal");
    /* ties round to even */
    CHECK(mmspcl_fp32_to_fp16(ldexpf(1, -25)) == 0x0000, "f16(2^-25): tie 0 / 2^-24 -> 0");
    CHECK(mmspcl_fp32_to_fp16(ldexpf(3, -25)) == 0x0002, "f16(1.5 * 2^-24): tie -> 2");
    CHECK(mmspcl_fp32_to_fp16(ldexpf(3, -26)) == 0x0001, "f16(0.75 * 2^-24) -> 1");
    CHECK(mmspcl_fp32_to_fp16(ldexpf(2047, -25)) == 0x0400, "f16(1023.5 * 2^-24): tie -> 0x400 (normal)");
    CHECK(mmspcl_fp32_to_fp16(1.0f + ldexpf(1, -11)) == 0x3c00, "f16(1 + 2^-11): tie -> 0x3c00");
    CHECK(mmspcl_fp32_to_fp16(1.0f + ldexpf(3, -11)) == 0x3c02, "f16(1 + 3 * 2^-11): tie -> 0x3c02");
    CHECK(mmspcl_fp32_to_fp16(1.0f + ldexpf(1, -11) + ldexpf(1, -20)) == 0x3c01, "f16 above the tie -> 0x3c01");
    CHECK(mmspcl_fp32_to_fp16(2049.0f) == 0x6800, "f16(2049): tie -> 2048");
    CHECK(mmspcl_fp32_to_fp16(2051.0f) == 0x6802, "f16(2051): tie -> 2052");
    /* nan stays nan, sign kept */
    {
        uint16_t n1 = mmspcl_fp32_to_fp16(bits_f(0x7fc00000)), n2 = mmspcl_fp32_to_fp16(bits_f(0xff800001));
        CHECK((n1 & 0x7c00) == 0x7c00 && (n1 & 0x3ff) && !(n1 & 0x8000), "f16(nan) = %04x", n1);
        CHECK((n2 & 0x7c00) == 0x7c00 && (n2 & 0x3ff) && (n2 & 0x8000), "f16(-snan) = %04x", n2);
    }
    /* f16 -> f32 */
    CHECK(mmspcl_fp16_to_fp32(0x3c00) == 1.0f, "f32(0x3c00)");
    CHECK(mmspcl_fp16_to_fp32(0x7bff) == 65504.0f, "f32(0x7bff)");
    CHECK(mmspcl_fp16_to_fp32(0x0001) == ldexpf(1, -24), "f32(0x0001)");
    CHECK(mmspcl_fp16_to_fp32(0x03ff) == ldexpf(1023, -24), "f32(0x03ff)");
    CHECK(mmspcl_fp16_to_fp32(0x0400) == ldexpf(1, -14), "f32(0x0400)");
    CHECK(mmspcl_fp16_to_fp32(0x2e66) == 0.0999755859375f, "f32(0x2e66)");
    CHECK(isinf(mmspcl_fp16_to_fp32(0x7c00)) && mmspcl_fp16_to_fp32(0x7c00) > 0, "f32(0x7c00) = inf");
    CHECK(isinf(mmspcl_fp16_to_fp32(0xfc00)) && mmspcl_fp16_to_fp32(0xfc00) < 0, "f32(0xfc00) = -inf");
    CHECK(isnan(mmspcl_fp16_to_fp32(0x7e00)) && isnan(mmspcl_fp16_to_fp32(0x7c01)), "f32(nan)");
    CHECK(f_bits(mmspcl_fp16_to_fp32(0x8000)) == 0x80000000u, "f32(0x8000) = -0");
    CHECK(f_bits(mmspcl_fp16_to_fp32(0x8001)) == f_bits(-ldexpf(1, -24)), "f32(0x8001)");

    /* all 65536 f16 values: f16 -> f32 -> f16 is the identity (nan: stays a nan of the same sign) */
    for (h = 0; h < 65536; h++) {
        float f = mmspcl_fp16_to_fp32((uint16_t)h);
        uint16_t back = mmspcl_fp32_to_fp16(f);
        int is_nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (is_nan ? !(isnan(f) && (back & 0x7c00) == 0x7c00 && (back & 0x3ff) && (back & 0x8000) == (h & 0x8000))
                   : back != h) {
            if (bad++ < 5) CHECK(0, "f16 %04x -> %g -> %04x", (unsigned)h, (double)f, back);
        }
    }
    CHECK(bad == 0, "%d of 65536 f16 values do not round-trip", bad);

    /* f32 -> f16 against the reference: every midpoint between neighbouring f16 values (the ties),
       one float either side of each, and a million random bit patterns */
    bad = 0;
    for (h = 0; h < 0x7bff; h++) {
        double m = ((double)mmspcl_fp16_to_fp32((uint16_t)h) + (double)mmspcl_fp16_to_fp32((uint16_t)(h + 1))) / 2;
        float f = (float)m;  /* exact: a midpoint needs only one more mantissa bit */
        float cand[3];
        int k;
        cand[0] = f; cand[1] = nextafterf(f, 0); cand[2] = nextafterf(f, INFINITY);
        for (k = 0; k < 3; k++) {
            float g = (h & 1) ? -cand[k] : cand[k];
            if (mmspcl_fp32_to_fp16(g) != ref_fp16(g) && bad++ < 5)
                CHECK(0, "f16(%a) = %04x, reference %04x", (double)g, mmspcl_fp32_to_fp16(g), ref_fp16(g));
        }
    }
    for (i = 0; i < 1000000; i++) {
        float g = bits_f((uint32_t)rnd());
        uint16_t a = mmspcl_fp32_to_fp16(g), r = ref_fp16(g);
        if (g != g ? !((a & 0x7c00) == 0x7c00 && (a & 0x3ff)) : a != r) {
            if (bad++ < 5) CHECK(0, "f16(%a) = %04x, reference %04x", (double)g, a, r);
        }
    }
    CHECK(bad == 0, "%d conversions f32 -> f16 differ from the reference", bad);

    /* bf16 */
    CHECK(mmspcl_fp32_to_bf16(1.0f) == 0x3f80, "bf16(1) = %04x", mmspcl_fp32_to_bf16(1.0f));
    CHECK(mmspcl_fp32_to_bf16(-2.0f) == 0xc000, "bf16(-2)");
    CHECK(mmspcl_fp32_to_bf16(1.00390625f) == 0x3f80, "bf16(1 + 2^-8): tie -> 0x3f80, got %04x",
          mmspcl_fp32_to_bf16(1.00390625f));
    CHECK(mmspcl_fp32_to_bf16(1.01171875f) == 0x3f82, "bf16(1 + 3 * 2^-8): tie -> 0x3f82");
    CHECK(mmspcl_fp32_to_bf16(bits_f(0x3f808001)) == 0x3f81, "bf16 just above the tie -> 0x3f81");
    CHECK(mmspcl_fp32_to_bf16(bits_f(0x3f807fff)) == 0x3f80, "bf16 just below the tie -> 0x3f80");
    CHECK(mmspcl_fp32_to_bf16(0.1f) == 0x3dcd, "bf16(0.1) = %04x", mmspcl_fp32_to_bf16(0.1f));
    CHECK(mmspcl_fp32_to_bf16(-0.0f) == 0x8000, "bf16(-0)");
    CHECK(mmspcl_fp32_to_bf16(bits_f(0x7f800000)) == 0x7f80, "bf16(inf)");
    CHECK(mmspcl_fp32_to_bf16(FLT_MAX) == 0x7f80, "bf16(FLT_MAX) rounds to inf");
    CHECK(mmspcl_fp32_to_bf16(bits_f(0x00000001)) == 0x0000, "bf16(smallest subnormal) -> 0");
    CHECK(isnan(mmspcl_bf16_to_fp32(mmspcl_fp32_to_bf16(bits_f(0x7fc00000)))), "bf16(nan) is nan");
    /* a signalling nan with only low mantissa bits would truncate to inf without the quiet bit */
    CHECK(isnan(mmspcl_bf16_to_fp32(mmspcl_fp32_to_bf16(bits_f(0x7f800001)))), "bf16(snan 0x7f800001) is nan");
    CHECK(isnan(mmspcl_bf16_to_fp32(mmspcl_fp32_to_bf16(bits_f(0xff800001)))) &&
          (mmspcl_fp32_to_bf16(bits_f(0xff800001)) & 0x8000), "bf16(-snan) is a negative nan");
    CHECK(mmspcl_bf16_to_fp32(0x3f80) == 1.0f && mmspcl_bf16_to_fp32(0xc000) == -2.0f, "bf16 -> f32");
    bad = 0;
    for (h = 0; h < 65536; h++) {
        float f = mmspcl_bf16_to_fp32((uint16_t)h);
        uint16_t back = mmspcl_fp32_to_bf16(f);
        int is_nan = (h & 0x7f80) == 0x7f80 && (h & 0x7f);
        if (is_nan ? !isnan(mmspcl_bf16_to_fp32(back)) : back != h) bad++;
    }
    CHECK(bad == 0, "%d of 65536 bf16 values do not round-trip", bad);
    /* bf16 is f32 rounded to nearest even at bit 16: check against a direct formulation */
    bad = 0;
    for (i = 0; i < 1000000; i++) {
        uint32_t u = (uint32_t)rnd(), low = u & 0xffff, r = u >> 16;
        float g = bits_f(u);
        if (g != g) continue;
        if (low > 0x8000 || (low == 0x8000 && (r & 1))) r++;
        if (mmspcl_fp32_to_bf16(g) != (uint16_t)r && bad++ < 5)
            CHECK(0, "bf16(%08x) = %04x, expected %04x", (unsigned)u, mmspcl_fp32_to_bf16(g), (unsigned)r);
    }
    CHECK(bad == 0, "%d conversions f32 -> bf16 wrong", bad);
}

/* ---------------------------------------------------------------------------------------------
   q8_0 / q4_0, hand-checked
   ------------------------------------------------------------------------------------------ */
/* q8_0, worked by hand. max|x| = 63.5, so d = 63.5 / 127 = 0.5 exactly (f16 0x3800, stored
   little-endian as 00 38) and 1/d = 2: q = lroundf(2x), i.e. round half AWAY from zero.
     x      2x     q  (hex)  x^ = q/2      x      2x     q  (hex)  x^
     63.5   127   127  7f   63.5        0.1     0.2    0  00     0
    -63.5  -127  -127  81  -63.5       -0.1    -0.2    0  00     0
      0     0      0   00    0          2       4      4  04     2
      0.25  0.5    1   01    0.5        3       6      6  06     3
     -0.25 -0.5   -1   ff   -0.5        4       8      8  08     4
      0.75  1.5    2   02    1          5      10     10  0a     5
     -0.75 -1.5   -2   fe   -1          6      12     12  0c     6
      1     2      2   02    1          7      14     14  0e     7
     -1    -2     -2   fe   -1          8      16     16  10     8
      1.2   2.4    2   02    1          9      18     18  12     9
     -1.2  -2.4   -2   fe   -1         20.25   40.5   41  29    20.5
     10    20     20   14   10        -20.25  -40.5  -41  d7   -20.5
    -10   -20    -20   ec  -10         40      80     80  50    40
     31.75  63.5  64   40   32        -40     -80    -80  b0   -40
    -31.75 -63.5 -64   c0  -32         60     120    120  78    60
     50.1  100.2 100   64   50         62.9   125.8  126  7e    63                                */
static const float q8_x[32] = {63.5f, -63.5f, 0, 0.25f, -0.25f, 0.75f, -0.75f, 1, -1, 1.2f, -1.2f, 10, -10,
                               31.75f, -31.75f, 50.1f, 0.1f, -0.1f, 2, 3, 4, 5, 6, 7, 8, 9, 20.25f, -20.25f,
                               40, -40, 60, 62.9f};
static const unsigned char q8_bytes[34] = {
    0x00, 0x38,
    0x7f, 0x81, 0x00, 0x01, 0xff, 0x02, 0xfe, 0x02, 0xfe, 0x02, 0xfe, 0x14, 0xec, 0x40, 0xc0, 0x64,
    0x00, 0x00, 0x04, 0x06, 0x08, 0x0a, 0x0c, 0x0e, 0x10, 0x12, 0x29, 0xd7, 0x50, 0xb0, 0x78, 0x7e};
static const float q8_xhat[32] = {63.5f, -63.5f, 0, 0.5f, -0.5f, 1, -1, 1, -1, 1, -1, 10, -10, 32, -32, 50,
                                  0, 0, 2, 3, 4, 5, 6, 7, 8, 9, 20.5f, -20.5f, 40, -40, 60, 63};

/* q4_0, worked by hand. The value of largest magnitude is m = -4 (x[0]; the +4 at x[1] has the
   same magnitude but comes later, and only a strictly larger one replaces it), d = m / -8 = 0.5
   (f16 0x3800), 1/d = 2, q = clamp(floor(2x + 8.5), 0, 15) (round half UP), x^ = (q - 8) / 2.
   Values 0..15 go to the low nibbles of bytes 0..15, values 16..31 to the high nibbles.
     j   x      2x+8.5  q  x^          j   x      2x+8.5  q  x^
     0  -4      0.5     0  -4         16   0.5    9.5     9   0.5
     1   4     16.5    15   3.5 (clamp) 17 -0.5    7.5     7  -0.5
     2   0      8.5     8   0         18   1.5   11.5    11   1.5
     3   0.25   9       9   0.5       19  -1.5    5.5     5  -1.5
     4  -0.25   8       8   0         20   2.5   13.5    13   2.5
     5   0.75  10      10   1         21  -2.5    3.5     3  -2.5
     6  -0.75   7       7  -0.5       22   3     14.5    14   3
     7   1     10.5    10   1         23  -3      2.5     2  -3
     8  -1      6.5     6  -1         24   0.1    8.7     8   0
     9   3.5   15.5    15   3.5       25  -0.1    8.3     8   0
    10   3.75  16      15   3.5 (clamp) 26  1.25  11      11   1.5
    11   3.8   16.1    15   3.5 (clamp) 27 -1.25   6       6  -1
    12  -3.75   1       1  -3.5       28   2.25  13      13   2.5
    13   1.3   11.1    11   1.5       29  -2.25   4       4  -2
    14  -1.3    5.9     5  -1.5       30   3.25  15      15   3.5
    15   2     12.5    12   2         31  -3.25   2       2  -3
   byte j = q[j] | q[j+16] << 4: 90 7f b8 59 d8 3a e7 2a 86 8f bf 6f d1 4b f5 2c.
   Negating the block makes m = +4 and d = -0.5 (f16 0xb800); x/d is unchanged, so the nibbles
   are the same and x^ is negated. */
static const float q4_x[32] = {-4, 4, 0, 0.25f, -0.25f, 0.75f, -0.75f, 1, -1, 3.5f, 3.75f, 3.8f, -3.75f, 1.3f, -1.3f, 2,
                               0.5f, -0.5f, 1.5f, -1.5f, 2.5f, -2.5f, 3, -3, 0.1f, -0.1f, 1.25f, -1.25f, 2.25f,
                               -2.25f, 3.25f, -3.25f};
static const unsigned char q4_bytes[18] = {0x00, 0x38, 0x90, 0x7f, 0xb8, 0x59, 0xd8, 0x3a, 0xe7, 0x2a, 0x86,
                                           0x8f, 0xbf, 0x6f, 0xd1, 0x4b, 0xf5, 0x2c};
static const float q4_xhat[32] = {-4, 3.5f, 0, 0.5f, 0, 1, -0.5f, 1, -1, 3.5f, 3.5f, 3.5f, -3.5f, 1.5f, -1.5f, 2,
                                  0.5f, -0.5f, 1.5f, -1.5f, 2.5f, -2.5f, 3, -3, 0, 0, 1.5f, -1, 2.5f, -2, 3.5f, -3};

static void test_quant_hand(void) {
    unsigned char b[64];
    float y[32], xn[32];
    int j, ok;
    CHECK(sizeof(mmspcl_block_q8_0) == 34 && sizeof(mmspcl_block_q4_0) == 18, "block sizes %zu %zu",
          sizeof(mmspcl_block_q8_0), sizeof(mmspcl_block_q4_0));
    CHECK(mmspcl_dtype_row_size(MMSPCL_F32, 7) == 28 && mmspcl_dtype_row_size(MMSPCL_I32, 7) == 28 &&
          mmspcl_dtype_row_size(MMSPCL_F16, 7) == 14 && mmspcl_dtype_row_size(MMSPCL_BF16, 7) == 14 &&
          mmspcl_dtype_row_size(MMSPCL_Q8_0, 64) == 68 && mmspcl_dtype_row_size(MMSPCL_Q4_0, 64) == 36,
          "row sizes");
    CHECK(mmspcl_dtype_row_size(MMSPCL_Q8_0, 33) == 0 && mmspcl_dtype_row_size(MMSPCL_Q4_0, 16) == 0 &&
          mmspcl_dtype_row_size(MMSPCL_F32, -1) == 0 && mmspcl_dtype_row_size(MMSPCL_DTYPE_COUNT, 4) == 0,
          "invalid row sizes are 0");
    CHECK(mmspcl_quantize_row(MMSPCL_Q8_0, q8_x, b, 33) == MMSPCL_ERR_ARG &&
          mmspcl_dequantize_row(MMSPCL_Q4_0, b, y, 31) == MMSPCL_ERR_ARG, "n not a multiple of 32 refused");

    memset(b, 0xaa, sizeof b);
    CHECK(mmspcl_quantize_row(MMSPCL_Q8_0, q8_x, b, 32) == MMSPCL_OK, "quantize q8_0");
    CHECK(memcmp(b, q8_bytes, 34) == 0, "q8_0 block bytes differ from the hand-checked ones");
    CHECK(b[34] == 0xaa, "q8_0 wrote past its block");
    for (j = 0; j < 34; j++)
        if (b[j] != q8_bytes[j]) CHECK(0, "q8_0 byte %d = %02x, expected %02x", j, b[j], q8_bytes[j]);
    mmspcl_dequantize_row(MMSPCL_Q8_0, q8_bytes, y, 32);
    for (ok = 1, j = 0; j < 32; j++) ok &= y[j] == q8_xhat[j];
    CHECK(ok, "q8_0 dequantized values differ from the hand-checked ones");

    memset(b, 0xaa, sizeof b);
    CHECK(mmspcl_quantize_row(MMSPCL_Q4_0, q4_x, b, 32) == MMSPCL_OK, "quantize q4_0");
    CHECK(memcmp(b, q4_bytes, 18) == 0, "q4_0 block bytes differ from the hand-checked ones");
    CHECK(b[18] == 0xaa, "q4_0 wrote past its block");
    for (j = 0; j < 18; j++)
        if (b[j] != q4_bytes[j]) CHECK(0, "q4_0 byte %d = %02x, expected %02x", j, b[j], q4_bytes[j]);
    mmspcl_dequantize_row(MMSPCL_Q4_0, q4_bytes, y, 32);
    for (ok = 1, j = 0; j < 32; j++) ok &= y[j] == q4_xhat[j];
    CHECK(ok, "q4_0 dequantized values differ from the hand-checked ones");
    for (j = 0; j < 32; j++) xn[j] = -q4_x[j];
    mmspcl_quantize_row(MMSPCL_Q4_0, xn, b, 32);
    CHECK(b[0] == 0x00 && b[1] == 0xb8 && memcmp(b + 2, q4_bytes + 2, 16) == 0, "negated q4_0 block: d = -0.5, same nibbles");
    mmspcl_dequantize_row(MMSPCL_Q4_0, b, y, 32);
    for (ok = 1, j = 0; j < 32; j++) ok &= y[j] == -q4_xhat[j];
    CHECK(ok, "negated q4_0 block dequantizes to -x^");

    /* an all-zero block: d = 0, every value comes back 0 */
    memset(xn, 0, sizeof xn);
    mmspcl_quantize_row(MMSPCL_Q8_0, xn, b, 32);
    mmspcl_dequantize_row(MMSPCL_Q8_0, b, y, 32);
    for (ok = b[0] == 0 && b[1] == 0, j = 0; j < 32; j++) ok &= y[j] == 0;
    CHECK(ok, "q8_0 zero block");
    mmspcl_quantize_row(MMSPCL_Q4_0, xn, b, 32);
    mmspcl_dequantize_row(MMSPCL_Q4_0, b, y, 32);
    /* d = 0 / -8 = -0: the scale is f16 -0 (0x8000), as ggml's */
    for (ok = b[0] == 0 && (b[1] & 0x7f) == 0, j = 0; j < 32; j++) ok &= y[j] == 0 && (j >= 16 || b[2 + j] == 0x88);
    CHECK(ok, "q4_0 zero block: nibbles 8, values 0");

    /* non-finite and tiny inputs must not crash (the results are unspecified but finite scales) */
    for (j = 0; j < 32; j++) xn[j] = 0;
    xn[3] = 1e-38f;  /* d = 1e-38/127 is subnormal and 1/d overflows to inf */
    mmspcl_quantize_row(MMSPCL_Q8_0, xn, b, 32);
    mmspcl_dequantize_row(MMSPCL_Q8_0, b, y, 32);
    for (ok = 1, j = 0; j < 32; j++) ok &= fabsf(y[j]) < 1e-30f;
    CHECK(ok, "q8_0 block of a subnormal");
    mmspcl_quantize_row(MMSPCL_Q4_0, xn, b, 32);
    mmspcl_dequantize_row(MMSPCL_Q4_0, b, y, 32);
    for (ok = 1, j = 0; j < 32; j++) ok &= fabsf(y[j]) < 1e-30f;
    CHECK(ok, "q4_0 block of a subnormal");
    xn[5] = NAN;
    xn[6] = INFINITY;
    mmspcl_quantize_row(MMSPCL_Q8_0, xn, b, 32);
    mmspcl_quantize_row(MMSPCL_Q4_0, xn, b, 32);
    CHECK(1, "quantizing nan/inf returns");

    /* i32, f16, bf16 rows */
    {
        int32_t iv[3] = {-7, 0, 123456};
        uint16_t hv[3];
        float fv[3] = {1, -2, 0.5f};
        mmspcl_dequantize_row(MMSPCL_I32, iv, y, 3);
        CHECK(y[0] == -7 && y[1] == 0 && y[2] == 123456, "i32 -> float");
        mmspcl_quantize_row(MMSPCL_F16, fv, hv, 3);
        CHECK(hv[0] == 0x3c00 && hv[1] == 0xc000 && hv[2] == 0x3800, "f16 row");
        mmspcl_quantize_row(MMSPCL_BF16, fv, hv, 3);
        CHECK(hv[0] == 0x3f80 && hv[1] == 0xc000 && hv[2] == 0x3f00, "bf16 row");
        mmspcl_dequantize_row(MMSPCL_BF16, hv, y, 3);
        CHECK(y[0] == 1 && y[1] == -2 && y[2] == 0.5f, "bf16 row back");
        CHECK(mmspcl_quantize_row(MMSPCL_I32, fv, hv, 3) == MMSPCL_ERR_UNSUPPORTED, "float -> i32 is not a conversion");
    }
}

/* Error bounds on random data.
   q8_0: d = max|x|/127 (f32), the block stores d16 = f16(d), q = round(x/d) with |q| <= 127.
     |x - d16 q| <= |x - d q| + |q| |d - d16| <= d/2 + 127 |d - d16|   (+ f32 rounding, ~1e-6 d)
     and |d - d16| <= 2^-11 d while d is a normal f16 (>= 2^-14), so |x - x^| <= 0.5621 d = 0.004426 max|x|.
   q4_0: m = the value of largest magnitude, d = m/-8, r = x/d lies in [-8, 8] (r = -8 at x = m),
     q = clamp(floor(r + 8.5), 0, 15).
     r < 7.5: q = round-half-up(r + 8) unclamped, |r + 8 - q| <= 1/2: |x - d16 (q-8)| <= |d|/2 + 8|d - d16|.
     r >= 7.5 (only values of the sign opposite to m with |x| >= 0.9375 |m|): q = 15 (clamped),
       |x - d (q-8)| = |d| (r - 7) in [|d|/2, |d|]: |x - x^| <= |d| + 8 |d - d16|.
     Overall |x - x^| <= |d| (1 + 8 * 2^-11) = 0.1255 max|x|; 0.0630 max|x| away from the clamp side. */
/* k-types (docs/FORMAT.md "k-types"): the worked examples' bytes decode to the values worked out
   by hand there; row sizes; exactly representable data round-trips exactly; random data: every
   value that lies on its sub-block's grid span is within S/2, and the squared error is below
   q4_0's (q4_k) / a quarter of q4_0's (q5_k) on the same data. */
static void test_kblocks(void) {
    static const unsigned char head[8] = {0x00, 0x34, 0x81, 0x30, 0x10, 0x85, 0x71, 0xfc};   /* d 0.25, sc 1..7, 63 */
    static const unsigned char z4[4] = {0x08, 0x1f, 0x32, 0x54}, z5[5] = {0x10, 0xfc, 0x20, 0x06, 0x29};
    static const unsigned char nib[16] = {0xf0, 0xe1, 0xd2, 0xc3, 0xb4, 0xa5, 0x96, 0x87, 0x78, 0x69, 0x5a, 0x4b, 0x3c, 0x2d, 0x1e, 0x0f};
    unsigned char b4[MMSPCL_Q4_K_BYTES], b5[MMSPCL_Q5_K_BYTES], *qb = (unsigned char *)malloc(4 * MMSPCL_Q5_K_BYTES * 64);
    float y[256], *x = (float *)malloc(sizeof(float) * 256 * 64), *xr = (float *)malloc(sizeof(float) * 256 * 64);
    unsigned seed = 5;
    int i, j, t;
    memset(y, 0, sizeof y);
    memset(b5, 0, sizeof b5);
    CHECK(mmspcl_dtype_row_size(MMSPCL_Q4_K, 256) == 140 && mmspcl_dtype_row_size(MMSPCL_Q4_K, 1024) == 560 &&
          mmspcl_dtype_row_size(MMSPCL_Q5_K, 512) == 346 && mmspcl_dtype_row_size(MMSPCL_Q4_K, 128) == 0 &&
          mmspcl_dtype_row_size(MMSPCL_Q5_K, 288) == 0, "k-type row sizes");
    CHECK(mmspcl_quantize_row(MMSPCL_Q4_K, y, b4, 32) == MMSPCL_ERR_ARG && mmspcl_dequantize_row(MMSPCL_Q5_K, b5, y, 320) == MMSPCL_ERR_ARG,
          "k-types: n not a multiple of 256 refused");
    memset(b4, 0, sizeof b4); memcpy(b4, head, 8); memcpy(b4 + 8, z4, 4); memcpy(b4 + 12, nib, 16);
    mmspcl_dequantize_row(MMSPCL_Q4_K, b4, y, 256);
    CHECK(y[0] == -2.0f && y[9] == 0.25f && y[15] == 1.75f && y[16] == 1.75f && y[31] == -2.0f && y[32] == 0.0f && y[64] == -11.25f &&
          y[96] == -1.0f && y[224] == -78.75f && y[255] == -78.75f, "q4_k example: %g %g %g %g %g %g %g %g %g", y[0], y[9], y[15], y[16],
          y[31], y[32], y[64], y[96], y[224]);
    memset(b5, 0, sizeof b5); memcpy(b5, head, 8); memcpy(b5 + 8, z5, 5); memcpy(b5 + 13, nib, 16);
    b5[141 + 2] = b5[141 + 3] = 0xff;   /* bit 4 of values 16..31 of sub-block 0 */
    mmspcl_dequantize_row(MMSPCL_Q5_K, b5, y, 256);
    CHECK(y[0] == -4.0f && y[15] == -0.25f && y[16] == 3.75f && y[31] == 0.0f && y[32] == 0.0f && y[64] == -23.25f && y[224] == -78.75f,
          "q5_k example: %g %g %g %g %g %g", y[0], y[15], y[16], y[31], y[64], y[224]);
    for (t = 0; t < 2; t++) {   /* values on a grid S[j] (q - z[j]) with S[j] = c[j] / 64, max c = 63: exact */
        const mmspcl_dtype dt = t ? MMSPCL_Q5_K : MMSPCL_Q4_K;
        const int L = t ? 31 : 15;
        int same = 1;
        for (j = 0; j < 8; j++) {
            const int c = j == 3 ? 63 : 5 + 7 * j, z = (j * 5) % (L + 1);
            for (i = 0; i < 32; i++) x[32 * j + i] = (float)c / 64.0f * (float)((i == 0 ? 0 : i == 1 ? L : (i * 7 + j) % (L + 1)) - z);
        }
        mmspcl_quantize_row(dt, x, qb, 256);
        mmspcl_dequantize_row(dt, qb, y, 256);
        for (i = 0; i < 256; i++) same &= y[i] == x[i];
        CHECK(same, "%s: values on the grid round-trip exactly", mmspcl_dtype_name(dt));
    }
    for (i = 0; i < 256 * 64; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f + (i % 256 < 32 ? 0.5f : 0.0f);   /* one shifted sub-block */
    }
    {
        double e0 = 0, ek[2] = {0, 0};
        mmspcl_quantize_row(MMSPCL_Q4_0, x, qb, 256 * 64);
        mmspcl_dequantize_row(MMSPCL_Q4_0, qb, xr, 256 * 64);
        for (i = 0; i < 256 * 64; i++) e0 += (double)(xr[i] - x[i]) * (xr[i] - x[i]);
        for (t = 0; t < 2; t++) {
            const mmspcl_dtype dt = t ? MMSPCL_Q5_K : MMSPCL_Q4_K;
            const int L = t ? 31 : 15, bytes = (int)mmspcl_dtype_row_size(dt, 256);
            int within = 1;
            mmspcl_quantize_row(dt, x, qb, 256 * 64);
            mmspcl_dequantize_row(dt, qb, xr, 256 * 64);
            for (i = 0; i < 256 * 64; i++) ek[t] += (double)(xr[i] - x[i]) * (xr[i] - x[i]);
            for (j = 0; j < 8 * 64; j++) {   /* sub-block j: S and z from the bytes, as the format says */
                const unsigned char *blk = qb + (size_t)(j / 8) * bytes;
                const int sj = j % 8, sc = (int)((blk[2 + 6 * sj / 8] | blk[2 + 6 * sj / 8 + 1] << 8) >> (6 * sj % 8) & 63);
                const int z = t ? (int)(((blk[8 + 5 * sj / 8] | blk[8 + 5 * sj / 8 + 1] << 8) >> (5 * sj % 8)) & 31)
                                : (blk[8 + sj / 2] >> (4 * (sj & 1))) & 15;
                const float S = mmspcl_fp16_to_fp32((uint16_t)(blk[0] | blk[1] << 8)) * (float)sc;
                for (i = 0; i < 32; i++) {
                    const float v = x[32 * j + i];
                    if (v >= S * ((float)-z - 0.5f) && v <= S * ((float)(L - z) + 0.5f))
                        within &= fabsf(v - xr[32 * j + i]) <= S * 0.5f * (1 + 1e-5f) + 1e-7f;
                }
            }
            CHECK(within, "%s: values on the grid's span are within S/2", mmspcl_dtype_name(dt));
        }
        CHECK(ek[0] < e0 && ek[1] < e0 / 4, "squared error q4_k %.4g, q5_k %.4g, q4_0 %.4g", ek[0], ek[1], e0);
        printf("  squared error / q4_0's on uniform data: q4_k %.3f, q5_k %.3f\n", ek[0] / e0, ek[1] / e0);
    }
    free(qb); free(x); free(xr);
}

static void test_quant_bounds(void) {
    enum { NB = 4096 };
    float *x = (float *)malloc(NB * 32 * sizeof(float)), *y = (float *)malloc(NB * 32 * sizeof(float));
    unsigned char *b = (unsigned char *)malloc(NB * 34);
    int64_t i;
    int j, bad8 = 0, bad4 = 0, clamped = 0;
    double worst8 = 0, worst4 = 0, worst4_unclamped = 0;
    for (i = 0; i < NB; i++) {
        /* scales from 1e-6 to 1e3, some blocks sparse, some with one outlier */
        float scale = powf(10.0f, (float)(rnd() % 10) - 6.0f);
        int kind = (int)(rnd() % 4);
        for (j = 0; j < 32; j++) {
            float v = rndf() * scale;
            if (kind == 1 && rnd() % 3) v = 0;
            if (kind == 2 && j == (int)(i % 32)) v *= 50;
            x[i * 32 + j] = v;
        }
    }
    mmspcl_quantize_row(MMSPCL_Q8_0, x, b, NB * 32);
    mmspcl_dequantize_row(MMSPCL_Q8_0, b, y, NB * 32);
    for (i = 0; i < NB; i++) {
        const float *xb = x + i * 32, *yb = y + i * 32;
        const mmspcl_block_q8_0 *blk = (const mmspcl_block_q8_0 *)(b + i * 34);
        float amax = 0, d, d16 = mmspcl_fp16_to_fp32(blk->d);
        for (j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(xb[j]));
        d = amax / 127.0f;
        for (j = 0; j < 32; j++) {
            double e = fabs((double)xb[j] - (double)yb[j]);
            double bound = d / 2.0 + 127.0 * fabs((double)d - (double)d16) + 1e-6 * d;
            if (blk->q[j] < -127) bad8++;
            if (e > bound && bad8++ < 5) CHECK(0, "q8_0 block %lld value %d: |%g - %g| > %g", (long long)i, j, (double)xb[j], (double)yb[j], bound);
            if (d >= 6.2e-5f && e / amax > worst8) worst8 = e / amax;
        }
    }
    CHECK(bad8 == 0, "q8_0: %d values outside d/2 + 127|d - d16|", bad8);
    CHECK(worst8 <= 0.004426, "q8_0: worst error %g max|x| (bound 0.004426)", worst8);

    mmspcl_quantize_row(MMSPCL_Q4_0, x, b, NB * 32);
    mmspcl_dequantize_row(MMSPCL_Q4_0, b, y, NB * 32);
    for (i = 0; i < NB; i++) {
        const float *xb = x + i * 32, *yb = y + i * 32;
        const mmspcl_block_q4_0 *blk = (const mmspcl_block_q4_0 *)(b + i * 18);
        float amax = 0, m = 0, d, d16 = mmspcl_fp16_to_fp32(blk->d);
        for (j = 0; j < 32; j++)
            if (fabsf(xb[j]) > amax) { amax = fabsf(xb[j]); m = xb[j]; }
        d = m / -8.0f;
        for (j = 0; j < 32; j++) {
            double r = d != 0 ? (double)xb[j] / (double)d : 0, e = fabs((double)xb[j] - (double)yb[j]);
            double ad = fabs((double)d), dd = 8.0 * fabs((double)d - (double)d16);
            double bound = (r < 7.5 ? ad / 2.0 : ad) + dd + 1e-5 * ad;
            if (r >= 7.5) clamped++;
            if (e > bound && bad4++ < 5) CHECK(0, "q4_0 block %lld value %d: |%g - %g| > %g (r = %g)", (long long)i, j, (double)xb[j], (double)yb[j], bound, r);
            if (ad >= 6.2e-5) {
                if (e / amax > worst4) worst4 = e / amax;
                if (r < 7.5 && e / amax > worst4_unclamped) worst4_unclamped = e / amax;
            }
        }
    }
    CHECK(bad4 == 0, "q4_0: %d values outside the bound", bad4);
    CHECK(worst4 <= 0.1255, "q4_0: worst error %g max|x| (bound 0.1255)", worst4);
    CHECK(worst4_unclamped <= 0.0630, "q4_0: worst unclamped error %g max|x| (bound 0.0630)", worst4_unclamped);
    CHECK(clamped > 0, "the random data reached the clamp side");
    free(x);
    free(y);
    free(b);
}

/* ---------------------------------------------------------------------------------------------
   Arena
   ------------------------------------------------------------------------------------------ */
static void test_arena(void) {
    mmspcl_arena a, a2;
    mmspcl_error err;
    unsigned char *p1, *p2, *p3, *q1;
    size_t peak;
    CHECK(mmspcl_arena_init(&a, 1000, &err) == MMSPCL_OK, "arena_init");
    p1 = (unsigned char *)mmspcl_arena_alloc(&a, 1);
    p2 = (unsigned char *)mmspcl_arena_alloc(&a, 100);
    p3 = (unsigned char *)mmspcl_arena_alloc(&a, 3);
    CHECK(p1 && p2 && p3, "three small pieces");
    CHECK(p1 && p2 && p3 && (uintptr_t)p1 % 64 == 0 && (uintptr_t)p2 % 64 == 0 && (uintptr_t)p3 % 64 == 0,
          "pieces are 64-byte aligned");
    CHECK(p2 >= p1 + 1 && p3 >= p2 + 100, "pieces do not overlap");
    if (p1 && p2 && p3) { memset(p1, 1, 1); memset(p2, 2, 100); memset(p3, 3, 3); }
    CHECK(mmspcl_arena_alloc(&a, 2000) == NULL, "a piece larger than the arena: NULL");
    CHECK(mmspcl_arena_alloc(&a, (size_t)-1) == NULL, "SIZE_MAX: NULL");
    CHECK(mmspcl_arena_alloc(&a, 900) == NULL, "a piece larger than what is left: NULL");
    CHECK(a.used <= a.size && a.peak == a.used, "used %zu, peak %zu, size %zu", a.used, a.peak, a.size);
    peak = a.peak;
    mmspcl_arena_reset(&a);
    CHECK(a.used == 0 && a.peak == peak, "reset keeps the peak");
    q1 = (unsigned char *)mmspcl_arena_alloc(&a, 10);
    CHECK(q1 == p1, "after reset the first piece comes back at the same place");
    {   /* fill until NULL: all pieces inside the block */
        int n = 0;
        unsigned char *p;
        mmspcl_arena_reset(&a);
        while ((p = (unsigned char *)mmspcl_arena_alloc(&a, 64)) != NULL && n < 1000) {
            CHECK(p >= a.base && p + 64 <= a.base + a.size, "piece %d inside the arena", n);
            n++;
        }
        CHECK(n >= 15 && n <= 17, "%d pieces of 64 bytes in a 1000-byte arena", n);
    }
    /* an arena sized to a measured peak holds the same sequence again */
    mmspcl_arena_reset(&a);
    a.peak = 0;
    mmspcl_arena_alloc(&a, 5);
    mmspcl_arena_alloc(&a, 300);
    mmspcl_arena_alloc(&a, 7);
    peak = a.peak;
    CHECK(mmspcl_arena_init(&a2, peak, &err) == MMSPCL_OK, "arena_init(peak)");
    CHECK(mmspcl_arena_alloc(&a2, 5) && mmspcl_arena_alloc(&a2, 300) && mmspcl_arena_alloc(&a2, 7),
          "an arena of the measured peak (%zu) holds the same pieces", peak);
    mmspcl_arena_free(&a2);
    mmspcl_arena_free(&a);
    CHECK(a.base == NULL && a.size == 0, "arena_free clears");
    CHECK(mmspcl_arena_init(&a, 0, &err) == MMSPCL_OK && mmspcl_arena_alloc(&a, 1) == NULL, "empty arena: NULL");
    mmspcl_arena_free(&a);
}

/* ---------------------------------------------------------------------------------------------
   Round trip
   ------------------------------------------------------------------------------------------ */
typedef struct rt_tensor {
    char name[64];
    mmspcl_dtype dtype;
    int ndim;
    int64_t ne[4];
    unsigned char *data;
    size_t nbytes;
} rt_tensor;

enum { RT_N = MMSPCL_DTYPE_COUNT * 4 };
static rt_tensor rt[RT_N];
static const char *utf8 = "h\xc3\xa9llo \xe2\x86\x92 \xe2\x9c\x93 \xf0\x9f\x98\x80 \xc4\xa0the";
static const char *vocab[] = {"<s>", "<pad>", "</s>", "<unk>", "\xc4\xa0the", "", "\xc3\xa9", "a b", "<mask>"};
static char *long_str;
static char *empties[2000];

static void make_rt_tensors(void) {
    int t, nd, k = 0;
    for (t = 0; t < MMSPCL_DTYPE_COUNT; t++)
        for (nd = 1; nd <= 4; nd++, k++) {
            rt_tensor *r = &rt[k];
            int quant = t == MMSPCL_Q8_0 || t == MMSPCL_Q4_0, ktype = t == MMSPCL_Q4_K || t == MMSPCL_Q5_K;
            int64_t inner = ktype ? 256 * (nd % 2 + 1) : quant ? 32 * (nd % 2 + 1) : 2 * nd + 1, rows = 1, i;
            float *f;
            snprintf(r->name, sizeof r->name, "layer.%d.%s.%dd", k, mmspcl_dtype_name((mmspcl_dtype)t), nd);
            r->dtype = (mmspcl_dtype)t;
            r->ndim = nd;
            r->ne[0] = 3; r->ne[1] = 2; r->ne[2] = 1; r->ne[3] = 5;
            r->ne[nd - 1] = inner;
            for (i = 0; i < nd - 1; i++) rows *= r->ne[i];
            r->nbytes = mmspcl_dtype_row_size(r->dtype, inner) * (size_t)rows;
            r->data = (unsigned char *)malloc(r->nbytes);
            f = (float *)malloc((size_t)(rows * inner) * sizeof(float));
            for (i = 0; i < rows * inner; i++) f[i] = rndf() * 3;
            if (t == MMSPCL_I32)
                for (i = 0; i < rows * inner; i++) ((int32_t *)r->data)[i] = (int32_t)rnd();
            else
                mmspcl_quantize_row(r->dtype, f, r->data, rows * inner);
            free(f);
        }
}

static int fill_writer(mmspcl_writer *w, mmspcl_error *err) {
    int k, st = 0;
    uint32_t lens[9];
    for (k = 0; k < 9; k++) lens[k] = (uint32_t)strlen(vocab[k]);
    st |= mmspcl_writer_set_str(w, "general.architecture", "roberta");
    st |= mmspcl_writer_set_int(w, "int.zero", 0);
    st |= mmspcl_writer_set_int(w, "int.minus_one", -1);
    st |= mmspcl_writer_set_int(w, "int.min", INT64_MIN);
    st |= mmspcl_writer_set_int(w, "int.max", INT64_MAX);
    st |= mmspcl_writer_set_float(w, "float.tenth", 0.1);
    st |= mmspcl_writer_set_float(w, "float.minus_zero", -0.0);
    st |= mmspcl_writer_set_float(w, "float.big", 1e308);
    st |= mmspcl_writer_set_float(w, "float.denormal", 4.9406564584124654e-324);
    st |= mmspcl_writer_set_float(w, "float.inf", INFINITY);
    st |= mmspcl_writer_set_float(w, "float.nan", NAN);
    st |= mmspcl_writer_set_str(w, "str.empty", "");
    st |= mmspcl_writer_set_str(w, "str.utf8", utf8);
    st |= mmspcl_writer_set_str(w, "str.long", long_str);
    st |= mmspcl_writer_set_str(w, "", "empty key");
    st |= mmspcl_writer_set_str(w, "k\xc3\xa9y.utf8", "v");
    st |= mmspcl_writer_set_str_array(w, "arr.empty", NULL, NULL, 0);
    st |= mmspcl_writer_set_str_array(w, "tokenizer.vocab", vocab, NULL, 9);
    st |= mmspcl_writer_set_str_array(w, "arr.lens", vocab, lens, 9);
    st |= mmspcl_writer_set_str_array(w, "arr.empties", (const char *const *)empties, NULL, 2000);
    /* setting a key again replaces its value, also with another type */
    st |= mmspcl_writer_set_int(w, "replaced", 1);
    st |= mmspcl_writer_set_str(w, "replaced", "first");
    st |= mmspcl_writer_set_float(w, "replaced", 2.5);
    if (st) return 1;
    for (k = 0; k < RT_N; k++)
        if (mmspcl_writer_add_tensor(w, rt[k].name, rt[k].dtype, rt[k].ndim, rt[k].ne, rt[k].data, rt[k].nbytes, err))
            return 1;
    return 0;
}

static void check_weights(const mmspcl_weights *w, const char *how, int aligned) {
    int k, ok;
    int64_t iv = 42;
    double fv = 0;
    const char *sv = NULL;
    const mmspcl_kv *kv;
    uint64_t data_offset;
    CHECK(w->version == 1, "%s: version %u", how, w->version);
    CHECK(w->n_tensors == RT_N, "%s: %lld tensors", how, (long long)w->n_tensors);
    CHECK(w->n_kv == 21, "%s: %lld keys", how, (long long)w->n_kv);
    data_offset = rd_le(w->bytes + 40, 8);
    for (k = 0; k < RT_N; k++) {
        const mmspcl_tensor *t = mmspcl_weights_find(w, rt[k].name);
        int d;
        CHECK(t != NULL, "%s: tensor %s missing", how, rt[k].name);
        if (!t) continue;
        ok = t->dtype == rt[k].dtype && t->ndim == rt[k].ndim && t->nbytes == rt[k].nbytes &&
             strcmp(t->name, rt[k].name) == 0;
        for (d = 0; d < 4; d++) ok &= t->ne[d] == (d < rt[k].ndim ? rt[k].ne[d] : 1);
        CHECK(ok, "%s: tensor %s: dtype/shape/size differ", how, rt[k].name);
        CHECK(memcmp(t->data, rt[k].data, rt[k].nbytes) == 0, "%s: tensor %s: bytes differ", how, rt[k].name);
        CHECK(mmspcl_tensor_nelements(t) == rt[k].ne[0] * (rt[k].ndim > 1 ? rt[k].ne[1] : 1) *
                                              (rt[k].ndim > 2 ? rt[k].ne[2] : 1) * (rt[k].ndim > 3 ? rt[k].ne[3] : 1),
              "%s: nelements", how);
        CHECK(((size_t)((const unsigned char *)t->data - w->bytes) - data_offset) % 64 == 0,
              "%s: tensor %s: offset not a multiple of 64", how, t->name);
        if (aligned) CHECK((uintptr_t)t->data % 64 == 0, "%s: tensor %s: data pointer not 64-byte aligned", how, t->name);
    }
    CHECK(mmspcl_weights_get_str(w, "general.architecture", &sv) && strcmp(sv, "roberta") == 0, "%s: architecture", how);
    CHECK(mmspcl_weights_get_int(w, "int.zero", &iv) && iv == 0, "%s: int.zero", how);
    CHECK(mmspcl_weights_get_int(w, "int.minus_one", &iv) && iv == -1, "%s: int.minus_one", how);
    CHECK(mmspcl_weights_get_int(w, "int.min", &iv) && iv == INT64_MIN, "%s: int.min", how);
    CHECK(mmspcl_weights_get_int(w, "int.max", &iv) && iv == INT64_MAX, "%s: int.max", how);
    CHECK(mmspcl_weights_get_float(w, "float.tenth", &fv) && fv == 0.1, "%s: float.tenth", how);
    CHECK(mmspcl_weights_get_float(w, "float.minus_zero", &fv) && fv == 0 && signbit(fv), "%s: float.minus_zero", how);
    CHECK(mmspcl_weights_get_float(w, "float.big", &fv) && fv == 1e308, "%s: float.big", how);
    CHECK(mmspcl_weights_get_float(w, "float.denormal", &fv) && fv == 4.9406564584124654e-324, "%s: float.denormal", how);
    CHECK(mmspcl_weights_get_float(w, "float.inf", &fv) && isinf(fv) && fv > 0, "%s: float.inf", how);
    CHECK(mmspcl_weights_get_float(w, "float.nan", &fv) && isnan(fv), "%s: float.nan", how);
    CHECK(mmspcl_weights_get_float(w, "int.minus_one", &fv) && fv == -1.0, "%s: get_float reads an int key", how);
    CHECK(mmspcl_weights_get_str(w, "str.empty", &sv) && strcmp(sv, "") == 0, "%s: str.empty", how);
    CHECK(mmspcl_weights_get_str(w, "str.utf8", &sv) && strcmp(sv, utf8) == 0, "%s: str.utf8", how);
    CHECK(mmspcl_weights_get_str(w, "str.long", &sv) && strcmp(sv, long_str) == 0, "%s: str.long", how);
    kv = mmspcl_weights_get(w, "str.long");
    CHECK(kv && kv->type == MMSPCL_KV_STR && kv->str_len == strlen(long_str), "%s: str_len", how);
    CHECK(mmspcl_weights_get_str(w, "", &sv) && strcmp(sv, "empty key") == 0, "%s: empty key", how);
    CHECK(mmspcl_weights_get_str(w, "k\xc3\xa9y.utf8", &sv) && strcmp(sv, "v") == 0, "%s: UTF-8 key", how);
    CHECK(mmspcl_weights_get_float(w, "replaced", &fv) && fv == 2.5 && !mmspcl_weights_get_str(w, "replaced", &sv),
          "%s: a replaced key keeps its last value and type", how);
    kv = mmspcl_weights_get(w, "arr.empty");
    CHECK(kv && kv->type == MMSPCL_KV_STR_ARRAY && kv->count == 0, "%s: empty string array", how);
    for (k = 0; k < 2; k++) {
        kv = mmspcl_weights_get(w, k ? "arr.lens" : "tokenizer.vocab");
        CHECK(kv && kv->type == MMSPCL_KV_STR_ARRAY && kv->count == 9, "%s: string array", how);
        if (kv && kv->count == 9) {
            int i;
            for (ok = 1, i = 0; i < 9; i++)
                ok &= strcmp(kv->strs[i], vocab[i]) == 0 && kv->lens[i] == strlen(vocab[i]);
            CHECK(ok, "%s: string array items", how);
        }
    }
    kv = mmspcl_weights_get(w, "arr.empties");
    CHECK(kv && kv->type == MMSPCL_KV_STR_ARRAY && kv->count == 2000, "%s: 2000 empty strings", how);
    if (kv && kv->count == 2000) {
        int i;
        for (ok = 1, i = 0; i < 2000; i++) ok &= kv->lens[i] == 0 && kv->strs[i][0] == 0;
        CHECK(ok, "%s: empty strings", how);
    }
    /* missing keys and wrong types: 0, output untouched */
    iv = 42; fv = 4.5; sv = "untouched";
    CHECK(!mmspcl_weights_get_int(w, "no.such.key", &iv) && iv == 42, "%s: get_int missing", how);
    CHECK(!mmspcl_weights_get_float(w, "no.such.key", &fv) && fv == 4.5, "%s: get_float missing", how);
    CHECK(!mmspcl_weights_get_str(w, "no.such.key", &sv) && strcmp(sv, "untouched") == 0, "%s: get_str missing", how);
    CHECK(!mmspcl_weights_get(w, "no.such.key"), "%s: get missing", how);
    CHECK(!mmspcl_weights_get_int(w, "str.utf8", &iv) && iv == 42, "%s: get_int of a string", how);
    CHECK(!mmspcl_weights_get_int(w, "float.tenth", &iv) && iv == 42, "%s: get_int of a float", how);
    CHECK(!mmspcl_weights_get_str(w, "int.zero", &sv) && !mmspcl_weights_get_str(w, "tokenizer.vocab", &sv),
          "%s: get_str of an int / array", how);
    CHECK(!mmspcl_weights_get_float(w, "str.utf8", &fv) && fv == 4.5, "%s: get_float of a string", how);
    CHECK(mmspcl_weights_find(w, "no.such.tensor") == NULL && mmspcl_weights_find(w, "") == NULL, "%s: find missing", how);
    {   /* expect */
        const mmspcl_tensor *t = NULL;
        mmspcl_error err;
        int64_t ne[4];
        memcpy(ne, rt[6].ne, sizeof ne);
        CHECK(mmspcl_weights_expect(w, rt[6].name, rt[6].ndim, ne, &t, &err) == MMSPCL_OK && t &&
                  t->data == mmspcl_weights_find(w, rt[6].name)->data, "%s: expect ok", how);
        err.msg[0] = 0;
        CHECK(mmspcl_weights_expect(w, "encoder.missing", 2, ne, &t, &err) == MMSPCL_ERR_NOT_FOUND && t == NULL &&
                  strstr(err.msg, "encoder.missing"), "%s: expect missing: %s", how, err.msg);
        err.msg[0] = 0;
        CHECK(mmspcl_weights_expect(w, rt[6].name, rt[6].ndim + 1, ne, &t, &err) == MMSPCL_ERR_FORMAT && t == NULL &&
                  strstr(err.msg, rt[6].name) && strstr(err.msg, "dimensions"), "%s: expect ndim: %s", how, err.msg);
        ne[0]++;
        err.msg[0] = 0;
        CHECK(mmspcl_weights_expect(w, rt[6].name, rt[6].ndim, ne, &t, &err) == MMSPCL_ERR_FORMAT && t == NULL &&
                  strstr(err.msg, rt[6].name) && strstr(err.msg, "dimension 0"), "%s: expect shape: %s", how, err.msg);
    }
}

static void progress_cb(void *user, uint64_t done, uint64_t total) {
    uint64_t *p = (uint64_t *)user;
    if (done < p[0] || done > total) p[2] = 1;  /* must not go backwards or past the total */
    p[0] = done;
    p[1] = total;
    p[3]++;
}

static void test_round_trip(void) {
    mmspcl_writer *wr = mmspcl_writer_create();
    mmspcl_weights *w = NULL;
    mmspcl_error err;
    unsigned char *mem = NULL, *file = NULL, *abuf, *aligned;
    size_t mem_n = 0, file_n = 0;
    uint64_t prog[4] = {0, 0, 0, 0};
    int k;
    const char *path = TMP "/roundtrip.mmw";

    long_str = (char *)malloc(70001);
    for (k = 0; k < 70000; k++) long_str[k] = (char)('a' + k % 26);
    long_str[70000] = 0;
    for (k = 0; k < 2000; k++) empties[k] = (char *)"";
    make_rt_tensors();
    CHECK(wr != NULL && fill_writer(wr, &err) == 0, "fill the writer");
    remove(path);
    CHECK(mmspcl_writer_save(wr, path, progress_cb, prog, &err) == MMSPCL_OK, "save: %s", err.msg);
    CHECK(prog[3] > 0 && prog[2] == 0 && prog[0] == prog[1], "progress: %llu calls, ends at %llu of %llu",
          (unsigned long long)prog[3], (unsigned long long)prog[0], (unsigned long long)prog[1]);
    CHECK(!file_exists(TMP "/roundtrip.mmw.tmp"), "no .tmp left after a save");
    CHECK(mmspcl_writer_save_to_memory(wr, &mem, &mem_n, &err) == MMSPCL_OK, "save_to_memory: %s", err.msg);
    file = test_read_file(path, &file_n);
    CHECK(file && file_n == mem_n && memcmp(file, mem, mem_n) == 0, "file and memory images are identical (%zu / %zu bytes)", file_n, mem_n);
    CHECK(mem_n % 64 == 0, "file size %zu is a multiple of 64", mem_n);

    /* the header, by hand */
    if (mem_n >= 64) {
        uint64_t meta = rd_le(mem + 32, 8), doff = rd_le(mem + 40, 8), dsize = rd_le(mem + 48, 8);
        CHECK(memcmp(mem, "MMSPCLWF", 8) == 0 && rd_le(mem + 8, 4) == 1 && rd_le(mem + 12, 4) == 64, "magic/version/alignment");
        CHECK(rd_le(mem + 16, 8) == 21 && rd_le(mem + 24, 8) == RT_N, "counts in the header");
        CHECK(doff == ((64 + meta + 63) & ~(uint64_t)63) && doff + dsize == mem_n, "data_offset %llu, data_size %llu",
              (unsigned long long)doff, (unsigned long long)dsize);
        CHECK(rd_le(mem + 56, 8) == 0, "reserved is zero");
    }

    CHECK(mmspcl_weights_open(&w, path, &err) == MMSPCL_OK, "open (mmap): %s", err.msg);
    if (w) { check_weights(w, "open", 1); mmspcl_weights_free(w); w = NULL; }
    CHECK(mmspcl_weights_read(&w, path, &err) == MMSPCL_OK, "read (fread): %s", err.msg);
    if (w) { check_weights(w, "read", 0); mmspcl_weights_free(w); w = NULL; }
    CHECK(mmspcl_weights_from_memory(&w, mem, mem_n, &err) == MMSPCL_OK, "from_memory: %s", err.msg);
    if (w) {
        check_weights(w, "from_memory", 0);
        CHECK(w->bytes == mem, "from_memory does not copy");
        mmspcl_weights_free(w);
        w = NULL;
    }
    /* a 64-byte aligned copy: every tensor's data pointer is 64-byte aligned (zero-copy SIMD) */
    abuf = (unsigned char *)malloc(mem_n + 64);
    aligned = abuf + (64 - (uintptr_t)abuf % 64) % 64;
    memcpy(aligned, mem, mem_n);
    CHECK(mmspcl_weights_from_memory(&w, aligned, mem_n, &err) == MMSPCL_OK, "from_memory (aligned): %s", err.msg);
    if (w) { check_weights(w, "from_memory aligned", 1); mmspcl_weights_free(w); w = NULL; }
    free(abuf);
    /* the bytes were not modified by any of the readers */
    {
        unsigned char *again = NULL;
        size_t n2 = 0;
        mmspcl_writer_save_to_memory(wr, &again, &n2, &err);
        CHECK(again && n2 == mem_n && memcmp(again, mem, mem_n) == 0, "from_memory leaves the bytes alone");
        MMSPCL_FREE(again);
    }

    /* a file with no keys and no tensors */
    {
        mmspcl_writer *e = mmspcl_writer_create();
        unsigned char *eb = NULL;
        size_t en = 0;
        CHECK(mmspcl_writer_save_to_memory(e, &eb, &en, &err) == MMSPCL_OK && en == 64, "empty file is %zu bytes", en);
        CHECK(mmspcl_weights_from_memory(&w, eb, en, &err) == MMSPCL_OK && w && w->n_kv == 0 && w->n_tensors == 0,
              "empty file reads back");
        mmspcl_weights_free(w);
        w = NULL;
        MMSPCL_FREE(eb);
        mmspcl_writer_free(e);
    }

    /* a file holding nothing but many empty strings (the reader's string pool must fit them:
       each takes 4 bytes in the file but a NUL, a pointer and a length in memory) */
    {
        mmspcl_writer *e = mmspcl_writer_create();
        unsigned char *eb = NULL;
        size_t en = 0;
        const mmspcl_kv *kv;
        CHECK(mmspcl_writer_set_str_array(e, "", (const char *const *)empties, NULL, 2000) == MMSPCL_OK, "2000 empty strings");
        CHECK(mmspcl_writer_save_to_memory(e, &eb, &en, &err) == MMSPCL_OK, "save 2000 empty strings");
        err.msg[0] = 0;
        CHECK(mmspcl_weights_from_memory(&w, eb, en, &err) == MMSPCL_OK, "read 2000 empty strings: %s", err.msg);
        kv = w ? mmspcl_weights_get(w, "") : NULL;
        CHECK(kv && kv->type == MMSPCL_KV_STR_ARRAY && kv->count == 2000 && kv->lens[1999] == 0 && kv->strs[1999][0] == 0,
              "2000 empty strings read back");
        mmspcl_weights_free(w);
        w = NULL;
        MMSPCL_FREE(eb);
        mmspcl_writer_free(e);
    }

    /* writer argument checks */
    {
        int64_t ne[5] = {2, 32, 1, 1, 1}, ne0[2] = {2, 0};
        unsigned char buf[256];
        mmspcl_writer *e = mmspcl_writer_create();
        err.msg[0] = 0;
        CHECK(mmspcl_writer_add_tensor(e, "x", MMSPCL_F32, 2, ne, buf, 255, &err) == MMSPCL_ERR_ARG && strstr(err.msg, "'x'"),
              "nbytes mismatch refused: %s", err.msg);
        CHECK(mmspcl_writer_add_tensor(e, "x", MMSPCL_F32, 2, ne, buf, 256, &err) == MMSPCL_OK, "add x");
        CHECK(mmspcl_writer_add_tensor(e, "x", MMSPCL_F32, 2, ne, buf, 256, &err) == MMSPCL_ERR_ARG && strstr(err.msg, "twice"),
              "duplicate refused: %s", err.msg);
        CHECK(mmspcl_writer_add_tensor(e, "y", MMSPCL_F32, 0, ne, buf, 4, &err) == MMSPCL_ERR_ARG, "ndim 0 refused");
        CHECK(mmspcl_writer_add_tensor(e, "y", MMSPCL_F32, 5, ne, buf, 256, &err) == MMSPCL_ERR_ARG, "ndim 5 refused");
        CHECK(mmspcl_writer_add_tensor(e, "y", MMSPCL_F32, 2, ne0, buf, 0, &err) == MMSPCL_ERR_ARG, "zero dim refused");
        CHECK(mmspcl_writer_add_tensor(e, "", MMSPCL_F32, 1, ne, buf, 8, &err) == MMSPCL_ERR_ARG, "empty name refused");
        CHECK(mmspcl_writer_add_tensor(e, "y", MMSPCL_DTYPE_COUNT, 1, ne, buf, 8, &err) == MMSPCL_ERR_ARG, "bad dtype refused");
        ne[1] = 33;
        CHECK(mmspcl_writer_add_tensor(e, "y", MMSPCL_Q8_0, 2, ne, buf, 68, &err) == MMSPCL_ERR_ARG, "q8_0 row of 33 refused");
        ne[1] = 32;
        CHECK(mmspcl_writer_add_tensor(e, "y", MMSPCL_Q4_0, 2, ne, buf, 36, &err) == MMSPCL_OK, "q4_0 [2,32]");
        CHECK(mmspcl_writer_set_str_array(e, "a", vocab, NULL, -1) == MMSPCL_ERR_ARG, "negative count refused");
        mmspcl_writer_free(e);
        mmspcl_writer_free(NULL);
    }

    MMSPCL_FREE(mem);
    free(file);
    mmspcl_writer_free(wr);
}

/* ---------------------------------------------------------------------------------------------
   Atomic save
   ------------------------------------------------------------------------------------------ */
static void test_atomic(void) {
    mmspcl_writer *wr = mmspcl_writer_create();
    mmspcl_error err;
    float data[4] = {1, 2, 3, 4};
    int64_t ne[1] = {4};
    const char *path = TMP "/atomic.mmw", *tmp = TMP "/atomic.mmw.tmp";
    static const char old[] = "old contents";
    unsigned char *b;
    size_t n;

    mmspcl_writer_set_int(wr, "k", 1);
    mmspcl_writer_add_tensor(wr, "t", MMSPCL_F32, 1, ne, data, sizeof data, &err);

    /* a directory that does not exist */
    err.msg[0] = 0;
    CHECK(mmspcl_writer_save(wr, TMP "/no/such/dir/x.mmw", NULL, NULL, &err) == MMSPCL_ERR_IO && err.msg[0] &&
              strstr(err.msg, "no/such/dir"), "save into a missing directory: %s", err.msg);
    CHECK(!file_exists(TMP "/no/such/dir/x.mmw") && !file_exists(TMP "/no/such/dir/x.mmw.tmp") && !file_exists(TMP "/no"),
          "nothing created");

    /* the temporary name cannot be created (a directory is in the way): the old file stays */
    remove(path);
    rmdir(tmp);
    CHECK(spit(path, old, sizeof old), "write the old file");
    CHECK(mkdir(tmp, 0755) == 0, "mkdir %s", tmp);
    err.msg[0] = 0;
    CHECK(mmspcl_writer_save(wr, path, NULL, NULL, &err) == MMSPCL_ERR_IO && err.msg[0], "save with .tmp blocked: %s", err.msg);
    b = test_read_file(path, &n);
    CHECK(b && n == sizeof old && memcmp(b, old, n) == 0, "the old file is unchanged");
    free(b);
    rmdir(tmp);

    /* the target is a directory, or (through a link) a device: refused before anything is
       written, so rename() cannot replace it; no .tmp is left */
    remove(path);
    CHECK(mkdir(path, 0755) == 0, "mkdir %s", path);
    err.msg[0] = 0;
    CHECK(mmspcl_writer_save(wr, path, NULL, NULL, &err) == MMSPCL_ERR_IO && strstr(err.msg, "not a regular file"),
          "save onto a directory: %s", err.msg);
    CHECK(!file_exists(tmp), "no .tmp left after a refused save");
    rmdir(path);
    if (symlink("/dev/null", path) == 0) {
        struct stat sb;
        err.msg[0] = 0;
        CHECK(mmspcl_writer_save(wr, path, NULL, NULL, &err) == MMSPCL_ERR_IO && strstr(err.msg, "not a regular file"),
              "save onto a link to /dev/null: %s", err.msg);
        CHECK(lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode) && stat("/dev/null", &sb) == 0 && S_ISCHR(sb.st_mode),
              "the link and the device are still there");
        CHECK(!file_exists(tmp), "no .tmp left");
        unlink(path);
    }

    /* a write error (the .tmp name points at /dev/full, a disk that is always full) */
    if (file_exists("/dev/full")) {
        CHECK(spit(path, old, sizeof old), "write the old file");
        remove(tmp);
        if (symlink("/dev/full", tmp) == 0) {
            err.msg[0] = 0;
            CHECK(mmspcl_writer_save(wr, path, NULL, NULL, &err) == MMSPCL_ERR_IO && err.msg[0] && strstr(err.msg, "write"),
                  "save onto a full disk: %s", err.msg);
            CHECK(!file_exists(tmp) && access(tmp, F_OK) != 0, "no .tmp left after a write error");
            b = test_read_file(path, &n);
            CHECK(b && n == sizeof old && memcmp(b, old, n) == 0, "the old file is unchanged after a write error");
            free(b);
            unlink(tmp);
        }
    }

    /* a good save replaces the old file */
    CHECK(spit(path, old, sizeof old), "write the old file");
    CHECK(mmspcl_writer_save(wr, path, NULL, NULL, &err) == MMSPCL_OK, "save over an old file: %s", err.msg);
    b = test_read_file(path, &n);
    CHECK(b && n > 64 && memcmp(b, "MMSPCLWF", 8) == 0, "the file was replaced");
    free(b);
    CHECK(!file_exists(tmp), "no .tmp after a good save");

    /* opening what is not there, or not a file */
    {
        mmspcl_weights *w = (mmspcl_weights *)&err;  /* must be set to NULL on failure */
        err.msg[0] = 0;
        CHECK(mmspcl_weights_open(&w, TMP "/missing.mmw", &err) == MMSPCL_ERR_IO && w == NULL && strstr(err.msg, "missing.mmw"),
              "open missing: %s", err.msg);
        err.msg[0] = 0;
        CHECK(mmspcl_weights_read(&w, TMP "/missing.mmw", &err) == MMSPCL_ERR_IO && w == NULL && strstr(err.msg, "missing.mmw"),
              "read missing: %s", err.msg);
        err.msg[0] = 0;
        CHECK(mmspcl_weights_open(&w, TMP, &err) != MMSPCL_OK && w == NULL && err.msg[0], "open a directory: %s", err.msg);
        err.msg[0] = 0;
        CHECK(mmspcl_weights_read(&w, TMP, &err) != MMSPCL_OK && w == NULL && err.msg[0], "read a directory: %s", err.msg);
        CHECK(spit(TMP "/empty.mmw", "", 0), "empty file");
        err.msg[0] = 0;
        CHECK(mmspcl_weights_open(&w, TMP "/empty.mmw", &err) == MMSPCL_ERR_FORMAT && w == NULL && err.msg[0], "open empty: %s", err.msg);
        err.msg[0] = 0;
        CHECK(mmspcl_weights_read(&w, TMP "/empty.mmw", &err) == MMSPCL_ERR_FORMAT && w == NULL && err.msg[0], "read empty: %s", err.msg);
        CHECK(mmspcl_weights_from_memory(&w, NULL, 0, &err) == MMSPCL_ERR_FORMAT && w == NULL, "from_memory(NULL, 0)");
        CHECK(mmspcl_weights_from_memory(&w, NULL, 10, &err) == MMSPCL_ERR_ARG, "from_memory(NULL, 10)");
        remove(TMP "/empty.mmw");
    }
    remove(path);
    mmspcl_writer_free(wr);
}

/* ---------------------------------------------------------------------------------------------
   The tiny example file of docs/FORMAT.md, byte for byte (a format regression test)
   ------------------------------------------------------------------------------------------ */
static mmspcl_writer *tiny_writer(void) {
    static const float emb[4] = {1.0f, -2.0f, 0.5f, 3.0f};
    static unsigned char q[34];
    static const char *merges[2] = {"\xc4\xa0 t", "h e"};
    int64_t ne_emb[2] = {2, 2}, ne_q[1] = {32};
    mmspcl_writer *w = mmspcl_writer_create();
    mmspcl_quantize_row(MMSPCL_Q8_0, q8_x, q, 32);
    mmspcl_writer_set_str(w, "general.architecture", "roberta");
    mmspcl_writer_set_int(w, "roberta.hidden_size", 2);
    mmspcl_writer_set_float(w, "roberta.layer_norm_eps", 1e-5);
    mmspcl_writer_set_str_array(w, "tokenizer.merges", merges, NULL, 2);
    mmspcl_writer_add_tensor(w, "emb", MMSPCL_F32, 2, ne_emb, emb, sizeof emb, NULL);
    mmspcl_writer_add_tensor(w, "q", MMSPCL_Q8_0, 1, ne_q, q, sizeof q, NULL);
    return w;
}

static const unsigned char tiny_bytes[] = {
    0x4d, 0x4d, 0x53, 0x50, 0x43, 0x4c, 0x57, 0x46, 0x01, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00,
    0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xcf, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x14, 0x00, 0x67, 0x65, 0x6e, 0x65, 0x72, 0x61, 0x6c, 0x2e, 0x61, 0x72, 0x63, 0x68, 0x69, 0x74,
    0x65, 0x63, 0x74, 0x75, 0x72, 0x65, 0x03, 0x07, 0x00, 0x00, 0x00, 0x72, 0x6f, 0x62, 0x65, 0x72,
    0x74, 0x61, 0x13, 0x00, 0x72, 0x6f, 0x62, 0x65, 0x72, 0x74, 0x61, 0x2e, 0x68, 0x69, 0x64, 0x64,
    0x65, 0x6e, 0x5f, 0x73, 0x69, 0x7a, 0x65, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x16, 0x00, 0x72, 0x6f, 0x62, 0x65, 0x72, 0x74, 0x61, 0x2e, 0x6c, 0x61, 0x79, 0x65, 0x72, 0x5f,
    0x6e, 0x6f, 0x72, 0x6d, 0x5f, 0x65, 0x70, 0x73, 0x02, 0xf1, 0x68, 0xe3, 0x88, 0xb5, 0xf8, 0xe4,
    0x3e, 0x10, 0x00, 0x74, 0x6f, 0x6b, 0x65, 0x6e, 0x69, 0x7a, 0x65, 0x72, 0x2e, 0x6d, 0x65, 0x72,
    0x67, 0x65, 0x73, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00,
    0xc4, 0xa0, 0x20, 0x74, 0x03, 0x00, 0x00, 0x00, 0x68, 0x20, 0x65, 0x03, 0x00, 0x65, 0x6d, 0x62,
    0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x01, 0x00, 0x71, 0x03, 0x01, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x22, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0, 0x00, 0x00, 0x00, 0x3f, 0x00, 0x00, 0x40, 0x40,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x38, 0x7f, 0x81, 0x00, 0x01, 0xff, 0x02, 0xfe, 0x02, 0xfe, 0x02, 0xfe, 0x14, 0xec, 0x40,
    0xc0, 0x64, 0x00, 0x00, 0x04, 0x06, 0x08, 0x0a, 0x0c, 0x0e, 0x10, 0x12, 0x29, 0xd7, 0x50, 0xb0,
    0x78, 0x7e, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};

static void test_tiny(void) {
    mmspcl_writer *wr = tiny_writer();
    unsigned char *b = NULL;
    size_t n = 0, i;
    mmspcl_error err;
    CHECK(mmspcl_writer_save_to_memory(wr, &b, &n, &err) == MMSPCL_OK, "tiny: save");
    CHECK(n == sizeof tiny_bytes, "tiny: %zu bytes, docs/FORMAT.md shows %zu", n, sizeof tiny_bytes);
    for (i = 0; b && i < n && i < sizeof tiny_bytes; i++)
        if (b[i] != tiny_bytes[i]) {
            CHECK(0, "tiny: byte %zu (0x%zx) is %02x, docs/FORMAT.md shows %02x", i, i, b[i], tiny_bytes[i]);
            break;
        }
    CHECK(mmspcl_writer_save(wr, TMP "/tiny.mmw", NULL, NULL, &err) == MMSPCL_OK, "tiny: save to " TMP "/tiny.mmw");
    MMSPCL_FREE(b);
    mmspcl_writer_free(wr);
}

/* ---------------------------------------------------------------------------------------------
   Malformed files
   ------------------------------------------------------------------------------------------ */
/* Where every field of the base file lies, found by walking the records as docs/FORMAT.md says. */
typedef struct layout {
    size_t kv_at[8], kv_type_at[8], kv_val_at[8];
    size_t t_at[8], t_dtype_at[8], t_ndim_at[8], t_dims_at[8], t_off_at[8], t_nbytes_at[8];
    size_t meta_end, data_offset, data_size;
    int n_kv, n_t;
} layout;

static int walk(const unsigned char *b, size_t n, layout *L) {
    size_t pos = 64;
    int i;
    uint64_t k, c;
    memset(L, 0, sizeof *L);
    L->n_kv = (int)rd_le(b + 16, 8);
    L->n_t = (int)rd_le(b + 24, 8);
    L->meta_end = 64 + (size_t)rd_le(b + 32, 8);
    L->data_offset = (size_t)rd_le(b + 40, 8);
    L->data_size = (size_t)rd_le(b + 48, 8);
    if (L->n_kv > 8 || L->n_t > 8) return 0;
    for (i = 0; i < L->n_kv; i++) {
        L->kv_at[i] = pos;
        pos += 2 + (size_t)rd_le(b + pos, 2);
        L->kv_type_at[i] = pos;
        L->kv_val_at[i] = pos + 1;
        switch (b[pos++]) {
        case 1: case 2: pos += 8; break;
        case 3: pos += 4 + (size_t)rd_le(b + pos, 4); break;
        case 4:
            c = rd_le(b + pos, 8);
            pos += 8;
            for (k = 0; k < c; k++) pos += 4 + (size_t)rd_le(b + pos, 4);
            break;
        default: return 0;
        }
    }
    for (i = 0; i < L->n_t; i++) {
        L->t_at[i] = pos;
        pos += 2 + (size_t)rd_le(b + pos, 2);
        L->t_dtype_at[i] = pos++;
        L->t_ndim_at[i] = pos;
        L->t_dims_at[i] = pos + 1;
        pos += 1 + 8 * (size_t)b[pos];
        L->t_off_at[i] = pos;
        L->t_nbytes_at[i] = pos + 8;
        pos += 16;
    }
    return pos == L->meta_end && L->data_offset + L->data_size == n;
}

static unsigned char *base;
static size_t base_n;
static layout BL;

static void make_base(void) {
    mmspcl_writer *w = mmspcl_writer_create();
    static float a[2 * 7];
    static unsigned char q[2 * 34];
    static uint16_t h[3];
    static const char *arr[3] = {"<s>", "\xc4\xa0the", "\xc3\xa9"};
    float src[64];
    int64_t ne_a[2] = {2, 7}, ne_b[2] = {2, 32}, ne_c[1] = {3};
    int i;
    mmspcl_error err;
    for (i = 0; i < 64; i++) src[i] = (float)i / 10.0f - 3;
    for (i = 0; i < 14; i++) a[i] = (float)i;
    mmspcl_quantize_row(MMSPCL_Q8_0, src, q, 64);
    mmspcl_quantize_row(MMSPCL_F16, src, h, 3);
    mmspcl_writer_set_str(w, "general.architecture", "roberta");
    mmspcl_writer_set_int(w, "roberta.hidden_size", 32);
    mmspcl_writer_set_float(w, "roberta.layer_norm_eps", 1e-5);
    mmspcl_writer_set_str_array(w, "tokenizer.vocab", arr, NULL, 3);
    mmspcl_writer_add_tensor(w, "w.a", MMSPCL_F32, 2, ne_a, a, sizeof a, &err);
    mmspcl_writer_add_tensor(w, "w.b", MMSPCL_Q8_0, 2, ne_b, q, sizeof q, &err);
    mmspcl_writer_add_tensor(w, "w.c", MMSPCL_F16, 1, ne_c, h, sizeof h, &err);
    mmspcl_writer_save_to_memory(w, &base, &base_n, &err);
    mmspcl_writer_free(w);
}

/* Parses a copy of exactly n bytes (so the address sanitizer sees any read past the end). */
static mmspcl_status parse_copy(const unsigned char *b, size_t n, mmspcl_error *err) {
    unsigned char *c = (unsigned char *)malloc(n ? n : 1);
    mmspcl_weights *w = (mmspcl_weights *)c;
    mmspcl_status st;
    if (n) memcpy(c, b, n);
    st = mmspcl_weights_from_memory(&w, c, n, err);
    if (st == MMSPCL_OK) {
        int64_t i;
        volatile unsigned sum = 0;
        /* touch everything the reader hands out */
        for (i = 0; i < w->n_tensors; i++) {
            const mmspcl_tensor *t = &w->tensors[i];
            const unsigned char *p = (const unsigned char *)t->data;
            size_t j;
            if (p < c || p + t->nbytes > c + n) st = MMSPCL_ERR_FORMAT;
            else for (j = 0; j < t->nbytes; j++) sum += p[j];
            sum += (unsigned)strlen(t->name);
        }
        for (i = 0; i < w->n_kv; i++) {
            const mmspcl_kv *kv = &w->kv[i];
            sum += (unsigned)strlen(kv->key);
            if (kv->type == MMSPCL_KV_STR) sum += (unsigned)strlen(kv->str);
            if (kv->type == MMSPCL_KV_STR_ARRAY) {
                int64_t j;
                for (j = 0; j < kv->count; j++) sum += (unsigned)strlen(kv->strs[j]) + kv->lens[j];
            }
        }
        (void)sum;
        mmspcl_weights_free(w);
    } else if (w != NULL) {
        st = (mmspcl_status)99;  /* *out must be NULL on failure */
    }
    free(c);
    return st;
}

static int n_bad_checked;

/* The mutated copy must be refused with FORMAT (or UNSUPPORTED) and a message containing want. */
static void expect_bad(const unsigned char *b, size_t n, const char *want, const char *what) {
    mmspcl_error err;
    mmspcl_status st;
    memset(&err, 0, sizeof err);
    st = parse_copy(b, n, &err);
    CHECK((st == MMSPCL_ERR_FORMAT || st == MMSPCL_ERR_UNSUPPORTED) && err.status == st && err.msg[0] &&
              (!want || strstr(err.msg, want)),
          "%s: status %d (%s), message '%s', wanted '%s'", what, (int)st, mmspcl_status_name(st), err.msg, want ? want : "");
    n_bad_checked++;
}

static void expect_ok(const unsigned char *b, size_t n, const char *what) {
    mmspcl_error err;
    mmspcl_status st;
    err.msg[0] = 0;
    st = parse_copy(b, n, &err);
    CHECK(st == MMSPCL_OK, "%s: %s", what, err.msg);
}

static unsigned char *mut;
static void reset_mut(void) { memcpy(mut, base, base_n); }

/* The base file, walked as docs/FORMAT.md says, and every truncation of it. 0 when there is no
   base file to mutate (the other test_malformed_* tests are then skipped). */
static int test_malformed_truncations(void) {
    size_t n;
    char what[128];
    make_base();
    CHECK(base && walk(base, base_n, &BL) && BL.n_kv == 4 && BL.n_t == 3, "walk the base file as docs/FORMAT.md says");
    if (!base || BL.n_t != 3) return 0;
    mut = (unsigned char *)malloc(base_n + 256);
    reset_mut();
    expect_ok(mut, base_n, "the base file");

    /* every truncation */
    for (n = 0; n < base_n; n++) {
        snprintf(what, sizeof what, "truncated to %zu of %zu bytes", n, base_n);
        expect_bad(base, n, NULL, what);
    }
    expect_bad(base, 10, "header", "10 bytes");
    expect_bad(base, base_n - 1, "data section", "one byte short");
    /* extra bytes after the data are allowed (the data section is what the header says) */
    reset_mut();
    memset(mut + base_n, 0, 64);
    expect_ok(mut, base_n + 64, "64 trailing bytes");
    return 1;
}

/* the file header: magic, version, alignment, counts, sizes and offsets */
static void test_malformed_header(void) {
    reset_mut(); mut[0] = 'X'; expect_bad(mut, base_n, "magic", "bad magic");
    reset_mut(); memcpy(mut, "GGUF", 4); expect_bad(mut, base_n, "magic", "GGUF magic");
    reset_mut(); wr_le(mut + 8, 2, 4); expect_bad(mut, base_n, "version 2", "version 2");
    reset_mut(); wr_le(mut + 8, 0, 4); expect_bad(mut, base_n, "version 0", "version 0");
    {
        mmspcl_error err;
        reset_mut(); wr_le(mut + 8, 2, 4);
        CHECK(parse_copy(mut, base_n, &err) == MMSPCL_ERR_UNSUPPORTED, "a newer version is UNSUPPORTED");
    }
    reset_mut(); wr_le(mut + 12, 32, 4); expect_bad(mut, base_n, "alignment 32", "alignment 32");
    reset_mut(); wr_le(mut + 12, 0, 4); expect_bad(mut, base_n, "alignment", "alignment 0");
    reset_mut(); wr_le(mut + 16, (uint64_t)1 << 40, 8); expect_bad(mut, base_n, "limits", "n_kv 2^40");
    reset_mut(); wr_le(mut + 16, UINT64_MAX, 8); expect_bad(mut, base_n, "limits", "n_kv 2^64-1");
    reset_mut(); wr_le(mut + 24, (uint64_t)1 << 40, 8); expect_bad(mut, base_n, "limits", "n_tensors 2^40");
    reset_mut(); wr_le(mut + 24, UINT64_MAX, 8); expect_bad(mut, base_n, "limits", "n_tensors 2^64-1");
    reset_mut(); wr_le(mut + 16, MMSPCL_MAX_KV, 8); expect_bad(mut, base_n, "cannot fit", "n_kv at the limit, file too small");
    reset_mut(); wr_le(mut + 24, MMSPCL_MAX_TENSORS, 8); expect_bad(mut, base_n, "cannot fit", "n_tensors at the limit, file too small");
    reset_mut(); wr_le(mut + 16, 5, 8); expect_bad(mut, base_n, NULL, "one key more than there is");
    reset_mut(); wr_le(mut + 16, 3, 8); expect_bad(mut, base_n, NULL, "one key less than there is");
    reset_mut(); wr_le(mut + 24, 4, 8); expect_bad(mut, base_n, NULL, "one tensor more than there is");
    reset_mut(); wr_le(mut + 24, 2, 8); expect_bad(mut, base_n, "metadata ends", "one tensor less than there is");
    reset_mut(); wr_le(mut + 32, base_n, 8); expect_bad(mut, base_n, "metadata size", "meta_size past the end");
    reset_mut(); wr_le(mut + 32, UINT64_MAX, 8); expect_bad(mut, base_n, "metadata size", "meta_size 2^64-1");
    reset_mut(); wr_le(mut + 32, BL.meta_end - 64 - 1, 8); expect_bad(mut, base_n, NULL, "meta_size one byte short");
    reset_mut(); wr_le(mut + 32, BL.meta_end - 64 + 1, 8);
    expect_bad(mut, base_n, BL.meta_end + 1 <= BL.data_offset ? "metadata ends" : NULL, "meta_size one byte long");
    reset_mut(); wr_le(mut + 40, BL.data_offset + 1, 8); expect_bad(mut, base_n, "data section", "data_offset misaligned");
    reset_mut(); wr_le(mut + 40, BL.data_offset + 64, 8); expect_bad(mut, base_n, "data section", "data_offset + 64: data past the end");
    reset_mut(); wr_le(mut + 40, (uint64_t)base_n + 64, 8); expect_bad(mut, base_n, "data section", "data_offset past the end");
    reset_mut(); wr_le(mut + 40, UINT64_MAX - 63, 8); expect_bad(mut, base_n, "data section", "data_offset 2^64-64");
    reset_mut(); wr_le(mut + 40, BL.data_offset - 64, 8);
    expect_bad(mut, base_n, BL.data_offset - 64 < BL.meta_end ? "overlaps the metadata" : NULL, "data_offset inside the metadata");
    reset_mut(); wr_le(mut + 40, 0, 8); expect_bad(mut, base_n, "data section", "data_offset 0");
    reset_mut(); wr_le(mut + 48, BL.data_size + 64, 8); expect_bad(mut, base_n, "data section", "data_size past the end");
    reset_mut(); wr_le(mut + 48, UINT64_MAX, 8); expect_bad(mut, base_n, "data section", "data_size 2^64-1");
    reset_mut(); wr_le(mut + 48, 64, 8); expect_bad(mut, base_n, "outside the data section", "data_size too small for the tensors");
    reset_mut(); wr_le(mut + 56, 0x1234, 8); expect_ok(mut, base_n, "reserved bytes are ignored");
}

/* tensor records: tensor 1 is "w.b" q8_0 [2, 32] (68 bytes) at data offset 64 */
static void test_malformed_tensors(void) {
    reset_mut(); wr_le(mut + BL.t_off_at[1], rd_le(mut + BL.t_off_at[1], 8) + 1, 8);
    expect_bad(mut, base_n, "'w.b' data", "tensor offset misaligned");
    reset_mut(); wr_le(mut + BL.t_off_at[1], rd_le(mut + BL.t_off_at[1], 8) + 32, 8);
    expect_bad(mut, base_n, "misaligned", "tensor offset + 32");
    reset_mut(); wr_le(mut + BL.t_off_at[1], BL.data_size, 8); expect_bad(mut, base_n, "'w.b'", "tensor offset at the end of the data");
    reset_mut(); wr_le(mut + BL.t_off_at[1], BL.data_size + 64, 8); expect_bad(mut, base_n, "'w.b'", "tensor offset past the data");
    reset_mut(); wr_le(mut + BL.t_off_at[1], UINT64_MAX - 63, 8); expect_bad(mut, base_n, "'w.b'", "tensor offset 2^64-64");
    reset_mut(); wr_le(mut + BL.t_off_at[2], BL.data_size - 64 + 64, 8); expect_bad(mut, base_n, "'w.c'", "last tensor just past the end");
    reset_mut(); wr_le(mut + BL.t_off_at[1], 0, 8); expect_bad(mut, base_n, "overlap", "tensors 0 and 1 overlap");
    reset_mut(); wr_le(mut + BL.t_off_at[2], rd_le(mut + BL.t_off_at[1], 8), 8); expect_bad(mut, base_n, "overlap", "tensors 1 and 2 overlap");
    reset_mut(); wr_le(mut + BL.t_off_at[1], 64, 8); wr_le(mut + BL.t_off_at[0], 128, 8); wr_le(mut + BL.t_off_at[2], 0, 8);
    expect_bad(mut, base_n, "overlap", "w.b [64,132) overlaps w.a [128,184)");
    reset_mut(); wr_le(mut + BL.t_off_at[0], 192, 8); wr_le(mut + BL.t_off_at[2], 0, 8);
    expect_ok(mut, base_n, "tensors in another order, not overlapping");
    reset_mut(); mut[BL.t_dtype_at[1]] = MMSPCL_DTYPE_COUNT; expect_bad(mut, base_n, "unknown dtype 8", "dtype 8");
    reset_mut(); mut[BL.t_dtype_at[1]] = 255; expect_bad(mut, base_n, "'w.b'", "dtype 255");
    reset_mut(); mut[BL.t_dtype_at[0]] = MMSPCL_Q8_0; expect_bad(mut, base_n, "not valid for q8_0", "q8_0 row of 7");
    reset_mut(); mut[BL.t_dtype_at[1]] = MMSPCL_Q4_0; expect_bad(mut, base_n, "'w.b' records 68 bytes", "q8_0 -> q4_0 sizes differ");
    reset_mut(); mut[BL.t_dtype_at[1]] = MMSPCL_Q4_K; expect_bad(mut, base_n, "not valid for q4_k", "q4_k row of 64 (not whole super-blocks)");
    reset_mut(); mut[BL.t_dtype_at[1]] = MMSPCL_Q5_K; expect_bad(mut, base_n, "not valid for q5_k", "q5_k row of 64 (not whole super-blocks)");
    reset_mut(); mut[BL.t_ndim_at[1]] = 0; expect_bad(mut, base_n, "'w.b' has 0 dimensions", "ndim 0");
    reset_mut(); mut[BL.t_ndim_at[1]] = 5; expect_bad(mut, base_n, "'w.b' has 5 dimensions", "ndim 5");
    reset_mut(); mut[BL.t_ndim_at[1]] = 255; expect_bad(mut, base_n, "dimensions", "ndim 255");
    reset_mut(); mut[BL.t_ndim_at[1]] = 1; expect_bad(mut, base_n, NULL, "ndim 1 (records shift)");
    reset_mut(); mut[BL.t_ndim_at[1]] = 3; expect_bad(mut, base_n, NULL, "ndim 3 (records shift)");
    reset_mut(); wr_le(mut + BL.t_dims_at[1], 0, 8); expect_bad(mut, base_n, "'w.b' dimension 0 = 0", "zero dim");
    reset_mut(); wr_le(mut + BL.t_dims_at[1] + 8, 0, 8); expect_bad(mut, base_n, "dimension 1 = 0", "zero inner dim");
    reset_mut(); wr_le(mut + BL.t_dims_at[1], (uint64_t)1 << 40, 8); wr_le(mut + BL.t_dims_at[1] + 8, (uint64_t)1 << 40, 8);
    expect_bad(mut, base_n, "overflows", "dims 2^40 x 2^40");
    reset_mut(); wr_le(mut + BL.t_dims_at[1], (uint64_t)1 << 32, 8); wr_le(mut + BL.t_dims_at[1] + 8, (uint64_t)1 << 32, 8);
    expect_bad(mut, base_n, "overflows", "dims 2^32 x 2^32 (product wraps to 0)");
    reset_mut(); wr_le(mut + BL.t_dims_at[1], UINT64_MAX, 8); expect_bad(mut, base_n, "overflows", "dim 2^64-1");
    reset_mut(); wr_le(mut + BL.t_dims_at[1], (uint64_t)1 << 63, 8); expect_bad(mut, base_n, "overflows", "dim 2^63 (negative as int64)");
    reset_mut(); wr_le(mut + BL.t_dims_at[1], 3, 8); expect_bad(mut, base_n, "its shape needs 102", "dim 3: nbytes no longer matches");
    reset_mut(); wr_le(mut + BL.t_nbytes_at[1], 67, 8); expect_bad(mut, base_n, "records 67 bytes, its shape needs 68", "nbytes - 1");
    reset_mut(); wr_le(mut + BL.t_nbytes_at[1], 69, 8); expect_bad(mut, base_n, "records 69 bytes", "nbytes + 1");
    reset_mut(); wr_le(mut + BL.t_nbytes_at[1], 0, 8); expect_bad(mut, base_n, "records 0 bytes", "nbytes 0");
    reset_mut(); wr_le(mut + BL.t_nbytes_at[1], UINT64_MAX, 8); expect_bad(mut, base_n, "'w.b'", "nbytes 2^64-1");
    reset_mut(); mut[BL.t_at[1] + 4] = 'a'; expect_bad(mut, base_n, "'w.a' appears twice", "duplicate names");
    reset_mut(); wr_le(mut + BL.t_at[1], 0xffff, 2); expect_bad(mut, base_n, "tensor name", "tensor name length 65535");
    reset_mut(); wr_le(mut + BL.t_at[2], (uint64_t)(BL.meta_end - BL.t_at[2]), 2); expect_bad(mut, base_n, "tensor", "tensor name runs to the end of the metadata");
}

/* key records: 0 "general.architecture" str, 1 int, 2 float, 3 "tokenizer.vocab" str array */
static void test_malformed_keys(void) {
    char what[128];
    int i;
    for (i = 0; i < 4; i++) {
        static const unsigned bad_types[4] = {0, 5, 200, 255};
        char want[64];
        reset_mut();
        mut[BL.kv_type_at[i]] = (unsigned char)bad_types[i];
        snprintf(want, sizeof want, "unknown type %u", bad_types[i]);
        snprintf(what, sizeof what, "key %d with type %u", i, bad_types[i]);
        expect_bad(mut, base_n, want, what);
    }
    reset_mut(); mut[BL.kv_type_at[0]] = 0; expect_bad(mut, base_n, "'general.architecture'", "unknown type names the key");
    reset_mut(); mut[BL.kv_type_at[1]] = MMSPCL_KV_STR; expect_bad(mut, base_n, NULL, "int read as a string");
    reset_mut(); mut[BL.kv_type_at[1]] = MMSPCL_KV_STR_ARRAY; expect_bad(mut, base_n, NULL, "int read as a string array");
    reset_mut(); wr_le(mut + BL.kv_val_at[0], 0xffffffffu, 4); expect_bad(mut, base_n, "string value", "string length 2^32-1");
    reset_mut(); wr_le(mut + BL.kv_val_at[0], (uint64_t)(BL.meta_end - BL.kv_val_at[0] - 4 + 1), 4);
    expect_bad(mut, base_n, "string value", "string runs one byte past the metadata");
    reset_mut(); wr_le(mut + BL.kv_val_at[0], (uint64_t)(BL.meta_end - BL.kv_val_at[0] - 4), 4);
    expect_bad(mut, base_n, NULL, "string swallows the rest of the metadata");
    reset_mut(); wr_le(mut + BL.kv_at[0], 0xffff, 2); expect_bad(mut, base_n, "key name", "key length 65535");
    reset_mut(); wr_le(mut + BL.kv_val_at[3], (uint64_t)1 << 62, 8); expect_bad(mut, base_n, "claims", "string array count 2^62");
    reset_mut(); wr_le(mut + BL.kv_val_at[3], UINT64_MAX, 8); expect_bad(mut, base_n, "'tokenizer.vocab'", "string array count 2^64-1");
    reset_mut(); wr_le(mut + BL.kv_val_at[3], 1000, 8); expect_bad(mut, base_n, "'tokenizer.vocab'", "string array count 1000");
    reset_mut(); wr_le(mut + BL.kv_val_at[3], 4, 8); expect_bad(mut, base_n, NULL, "string array count one too many");
    reset_mut(); wr_le(mut + BL.kv_val_at[3] + 8, 0xffffffffu, 4); expect_bad(mut, base_n, "string array item", "array item length 2^32-1");
    reset_mut(); wr_le(mut + BL.kv_val_at[3] + 8, 200, 4); expect_bad(mut, base_n, "string array item", "array item length 200");
}

/* the same checks through the file readers: the message names the file */
static void test_malformed_files(void) {
    mmspcl_weights *w = NULL;
    mmspcl_error err;
    reset_mut();
    wr_le(mut + BL.t_off_at[1], 0, 8);
    CHECK(spit(TMP "/bad.mmw", mut, base_n), "write bad.mmw");
    err.msg[0] = 0;
    CHECK(mmspcl_weights_open(&w, TMP "/bad.mmw", &err) == MMSPCL_ERR_FORMAT && !w && strstr(err.msg, "overlap") &&
              strstr(err.msg, "bad.mmw"), "open names the file: %s", err.msg);
    err.msg[0] = 0;
    CHECK(mmspcl_weights_read(&w, TMP "/bad.mmw", &err) == MMSPCL_ERR_FORMAT && !w && strstr(err.msg, "overlap") &&
              strstr(err.msg, "bad.mmw"), "read names the file: %s", err.msg);
    CHECK(spit(TMP "/bad.mmw", base, base_n - 100), "write a truncated file");
    err.msg[0] = 0;
    CHECK(mmspcl_weights_open(&w, TMP "/bad.mmw", &err) == MMSPCL_ERR_FORMAT && !w && strstr(err.msg, "bad.mmw"),
          "open a truncated file: %s", err.msg);
    err.msg[0] = 0;
    CHECK(mmspcl_weights_read(&w, TMP "/bad.mmw", &err) == MMSPCL_ERR_FORMAT && !w && strstr(err.msg, "bad.mmw"),
          "read a truncated file: %s", err.msg);
    CHECK(mmspcl_weights_from_memory(&w, mut, 40, NULL) == MMSPCL_ERR_FORMAT && !w, "a NULL error pointer is fine");
    remove(TMP "/bad.mmw");
}

/* Random bit flips (and truncations) of the base file: never a crash, either OK or a clean error. */
static void test_fuzz(void) {
    int it, flips, bad = 0, n_ok = 0, n_err = 0;
    if (!base) return;
    for (it = 0; it < 5000; it++) {
        mmspcl_error err;
        mmspcl_status st;
        size_t n = base_n;
        reset_mut();
        for (flips = 1 + (int)(rnd() % 4); flips > 0; flips--) {
            /* mostly in the header and metadata: flips in the data section are always fine */
            size_t at = rnd() % 4 ? (size_t)(rnd() % BL.meta_end) : (size_t)(rnd() % base_n);
            mut[at] ^= (unsigned char)(1u << (rnd() % 8));
        }
        if (rnd() % 8 == 0) n = (size_t)(rnd() % base_n);
        if (rnd() % 16 == 0) {  /* a random small value into a random 8-byte header field */
            int field = 2 + (int)(rnd() % 5);
            wr_le(mut + field * 8, rnd() % 1024, 8);
        }
        err.msg[0] = 0;
        err.status = MMSPCL_OK;
        st = parse_copy(mut, n, &err);
        if (st == MMSPCL_OK) n_ok++;
        else if ((st == MMSPCL_ERR_FORMAT || st == MMSPCL_ERR_UNSUPPORTED) && err.msg[0] && err.status == st) n_err++;
        else if (bad++ < 5) CHECK(0, "fuzz %d: status %d, message '%s'", it, (int)st, err.msg);
    }
    CHECK(bad == 0, "fuzz: %d bad outcomes", bad);
    CHECK(n_ok > 0 && n_err > 0, "fuzz: %d accepted, %d refused", n_ok, n_err);
    free(mut);
    MMSPCL_FREE(base);
}

/* Out of memory at every allocation in turn: writer, save_to_memory and the reader report
   NOMEM (or succeed), never crash or leak, and whatever the writer still saves reads back. */
static void test_oom(void) {
    static const float f[4] = {1, 2, 3, 4};
    static const char *arr[2] = {"a", "bc"};
    int64_t ne[1] = {4};
    long n;
    int bad = 0, done = 0;
    for (n = 0; n < 200 && !done; n++) {
        mmspcl_writer *w;
        mmspcl_weights *r = NULL;
        mmspcl_error err;
        unsigned char *b = NULL;
        size_t bn = 0;
        mmspcl_status st;
        alloc_countdown = n;
        w = mmspcl_writer_create();
        if (!w) continue;
        mmspcl_writer_set_str(w, "s", "first");
        mmspcl_writer_set_str_array(w, "a", arr, NULL, 2);
        mmspcl_writer_set_str(w, "s", "second");      /* replaces: may fail after the old bytes are freed */
        mmspcl_writer_set_str_array(w, "a", arr, NULL, 1);
        mmspcl_writer_set_int(w, "i", 7);
        mmspcl_writer_add_tensor(w, "t", MMSPCL_F32, 1, ne, f, sizeof f, &err);
        st = mmspcl_writer_save_to_memory(w, &b, &bn, &err);
        alloc_countdown = -1;
        if (st == MMSPCL_OK) {
            st = mmspcl_weights_from_memory(&r, b, bn, &err);
            if (st != MMSPCL_OK && bad++ < 3) CHECK(0, "oom %ld: the saved file does not read back: %s", n, err.msg);
            mmspcl_weights_free(r);
            r = NULL;
            /* the reader itself out of memory at each of its allocations */
            {
                long m;
                for (m = 0; m < 10; m++) {
                    alloc_countdown = m;
                    st = mmspcl_weights_from_memory(&r, b, bn, &err);
                    alloc_countdown = -1;
                    if (st != MMSPCL_OK && !(st == MMSPCL_ERR_NOMEM && r == NULL) && bad++ < 3)
                        CHECK(0, "reader oom %ld: status %d", m, (int)st);
                    mmspcl_weights_free(r);
                    r = NULL;
                }
            }
        } else if (st != MMSPCL_ERR_NOMEM && bad++ < 3) {
            CHECK(0, "oom %ld: save_to_memory gave status %d", n, (int)st);
        }
        if (n > 30 && st == MMSPCL_OK && alloc_countdown < 0) {
            /* past the last allocation nothing fails any more */
            const mmspcl_kv *kv;
            mmspcl_weights_from_memory(&r, b, bn, &err);
            kv = r ? mmspcl_weights_get(r, "s") : NULL;
            done = kv && kv->type == MMSPCL_KV_STR && strcmp(kv->str, "second") == 0;
            mmspcl_weights_free(r);
        }
        MMSPCL_FREE(b);
        mmspcl_writer_free(w);
    }
    alloc_countdown = -1;
    CHECK(bad == 0, "out-of-memory handling: %d problems", bad);
    CHECK(done, "the allocation-failure loop reached a run without failures");
}

/* Names must be unique in files of any size (the check sorts), keys too; keys have a length limit;
   the fread path returns 64-byte aligned tensors. */
static void test_unique_and_limits(void) {
    enum { N = 5000 };
    static float one[N];
    static char names[N][16];
    char long_key[MMSPCL_MAX_NAME + 2];
    int64_t shape[1] = {1};
    mmspcl_writer *w = mmspcl_writer_create();
    mmspcl_weights *wt = NULL;
    mmspcl_error err;
    unsigned char *buf = NULL, *p;
    size_t size = 0, i;
    int k;
    for (k = 0; k < N; k++) {
        snprintf(names[k], sizeof names[k], "t%d", k);
        mmspcl_writer_add_tensor(w, names[k], MMSPCL_F32, 1, shape, &one[k], 4, &err);
    }
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = 0;
    CHECK(mmspcl_writer_set_int(w, long_key, 1) == MMSPCL_ERR_ARG, "a key longer than MMSPCL_MAX_NAME is an argument error");
    mmspcl_writer_set_int(w, "aa", 1);
    mmspcl_writer_set_int(w, "ab", 2);
    CHECK(mmspcl_writer_save_to_memory(w, &buf, &size, &err) == MMSPCL_OK, "%s", err.msg);
    CHECK(mmspcl_weights_from_memory(&wt, buf, size, &err) == MMSPCL_OK && wt->n_tensors == N, "5000 tensors load");
    mmspcl_weights_free(wt);
    /* rename tensor t4999 to t0001 and key "ab" to "aa" in place (same lengths) */
    for (p = buf, i = 0; i + 5 < size; i++, p++)
        if (!memcmp(p, "t4999", 5)) { memcpy(p, "t0001", 5); break; }
    CHECK(mmspcl_weights_from_memory(&wt, buf, size, &err) == MMSPCL_OK, "t0001 differs from t1: %s", err.msg);
    mmspcl_weights_free(wt);
    for (p = buf, i = 0; i + 5 < size; i++, p++)
        if (!memcmp(p, "t0001", 5)) { static const char t1[5] = {'t', '1', 0, 0, 0}; memcpy(p, t1, 5); break; }
    CHECK(mmspcl_weights_from_memory(&wt, buf, size, &err) == MMSPCL_ERR_FORMAT && strstr(err.msg, "tensor name 't1' appears twice"),
          "duplicate tensor name among 5000: %s", err.msg);
    memcpy(p, "t4999", 5);
    for (p = buf, i = 0; i + 4 < size; i++, p++)
        if (!memcmp(p, "\002\000ab", 4)) { memcpy(p, "\002\000aa", 4); break; }
    CHECK(mmspcl_weights_from_memory(&wt, buf, size, &err) == MMSPCL_ERR_FORMAT && strstr(err.msg, "key 'aa' appears twice"),
          "duplicate key: %s", err.msg);
    free(buf);
    mmspcl_writer_free(w);
    {   /* fread path: tensors 64-byte aligned */
        mmspcl_writer *w2 = mmspcl_writer_create();
        mmspcl_writer_add_tensor(w2, "x", MMSPCL_F32, 1, shape, one, 4, &err);
        CHECK(mmspcl_writer_save(w2, TMP "/aligned.mmw", NULL, NULL, &err) == MMSPCL_OK, "%s", err.msg);
        CHECK(mmspcl_weights_read(&wt, TMP "/aligned.mmw", &err) == MMSPCL_OK && (uintptr_t)wt->tensors[0].data % 64 == 0,
              "weights_read gives 64-byte aligned tensors");
        mmspcl_weights_free(wt);
        mmspcl_writer_free(w2);
    }
}

/* Linear weights: mmspcl_weights_expect_matrix takes the 2-D form or f32 panels {rows/16, cols, 16}
   and names the tensor when the shape or dtype does not fit. */
static void test_expect_matrix(void) {
    static float data[32 * 8];
    static const struct { const char *name; mmspcl_dtype dt; int ndim; int64_t ne[3]; } t[] = {
        {"flat", MMSPCL_F32, 2, {32, 8, 0}}, {"panels", MMSPCL_F32, 3, {2, 8, 16}}, {"i32", MMSPCL_I32, 2, {32, 8, 0}},
        {"panels8", MMSPCL_F32, 3, {4, 8, 8}}, {"f16panels", MMSPCL_F16, 3, {2, 8, 16}}};
    mmspcl_writer *w = mmspcl_writer_create();
    mmspcl_weights *r = NULL;
    const mmspcl_tensor *m;
    mmspcl_error err;
    unsigned char *bytes = NULL;
    size_t n = 0, i;
    for (i = 0; i < sizeof t / sizeof t[0]; i++)
        CHECK(mmspcl_writer_add_tensor(w, t[i].name, t[i].dt, t[i].ndim, t[i].ne, data,
                                       t[i].dt == MMSPCL_F16 ? sizeof data / 2 : sizeof data, &err) == MMSPCL_OK, "add %s", t[i].name);
    CHECK(mmspcl_writer_save_to_memory(w, &bytes, &n, &err) == MMSPCL_OK && mmspcl_weights_from_memory(&r, bytes, n, &err) == MMSPCL_OK,
          "expect_matrix file: %s", err.msg);
    if (r) {
        CHECK(mmspcl_weights_expect_matrix(r, "flat", 32, 8, &m, &err) == MMSPCL_OK && m && m->ndim == 2, "2-D matrix");
        CHECK(mmspcl_weights_expect_matrix(r, "panels", 32, 8, &m, &err) == MMSPCL_OK && m && mmspcl_tensor_is_panels(m) &&
              mmspcl_matrix_rows(m) == 32 && mmspcl_matrix_cols(m) == 8, "panels matrix");
        CHECK(mmspcl_weights_expect_matrix(r, "panels", 16, 8, &m, &err) == MMSPCL_ERR_FORMAT && !m && strstr(err.msg, "'panels'"),
              "panels of the wrong row count: %s", err.msg);
        CHECK(mmspcl_weights_expect_matrix(r, "flat", 32, 4, &m, &err) == MMSPCL_ERR_FORMAT && strstr(err.msg, "'flat'"),
              "2-D of the wrong column count: %s", err.msg);
        CHECK(mmspcl_weights_expect_matrix(r, "i32", 32, 8, &m, &err) == MMSPCL_ERR_UNSUPPORTED && !m && strstr(err.msg, "i32"),
              "an i32 matrix: %s", err.msg);
        CHECK(mmspcl_weights_expect_matrix(r, "panels8", 32, 8, &m, &err) == MMSPCL_ERR_FORMAT && strstr(err.msg, "panels of 16"),
              "3-D with 8 per panel: %s", err.msg);
        CHECK(mmspcl_weights_expect_matrix(r, "f16panels", 32, 8, &m, &err) == MMSPCL_ERR_FORMAT, "f16 panels: %s", err.msg);
        CHECK(mmspcl_weights_expect_matrix(r, "missing", 32, 8, &m, &err) == MMSPCL_ERR_NOT_FOUND, "missing matrix");
        mmspcl_weights_free(r);
    }
    free(bytes);
    mmspcl_writer_free(w);
}

int main(void) {
    mkdir("build", 0755);
    mkdir("build/tests", 0755);
    mkdir(TMP, 0755);
    test_half();
    test_quant_hand();
    test_kblocks();
    test_quant_bounds();
    test_arena();
    test_round_trip();
    test_atomic();
    test_tiny();
    if (test_malformed_truncations()) {
        test_malformed_header();
        test_malformed_tensors();
        test_malformed_keys();
        test_malformed_files();
    }
    test_fuzz();
    test_oom();
    test_unique_and_limits();
    test_expect_matrix();
    free(long_str);
    {
        int k;
        for (k = 0; k < RT_N; k++) free(rt[k].data);
    }
    return TEST_END();
}
