/* ---------------------------------------------------------------------------------------------
   Kernels. Each operation has a scalar definition, written to be read; the SIMD paths are tested
   against it (tests/test_kernels.c): within 1e-5 relative for float arithmetic, bit-identical for
   the integer paths. Work is split over independent outputs and every output is computed by the
   same sequence of operations whatever the thread count, so results do not depend on it.
   ------------------------------------------------------------------------------------------ */

/* Eight partial sums: a fixed order the compiler can keep in vector registers. */
float mmspcl_dot_f32(const float *a, const float *b, int n) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0, j;
    for (; i + 8 <= n; i += 8)
        for (j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
    for (j = 0; i < n; i++, j++) acc[j] += a[i] * b[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* ---- Linear layers: y = x W^T + b, float weights (f32, f16, bf16) ---------------------------
   Definition: each output is bias + mmspcl_dot_f32(x row, W row widened to f32). */
static void mmspcl__linear_scalar(float *out, const float *x, int rows, int n_in, const mmspcl_tensor *W,
                                  const float *bias, float *wide) {
    const int n_out = (int)W->ne[0];
    const size_t row_bytes = mmspcl_dtype_row_size(W->dtype, n_in);
    int o;
    MMSPCL__OMP_FOR
    for (o = 0; o < n_out; o++) {
        const float *w;
        int r;
        if (W->dtype != MMSPCL_F32) {
            float *buf = wide + (size_t)MMSPCL__THREAD_ID() * (size_t)n_in;
            mmspcl_dequantize_row(W->dtype, (const unsigned char *)W->data + (size_t)o * row_bytes, buf, n_in);
            w = buf;
        } else {
            w = (const float *)W->data + (size_t)o * (size_t)n_in;
        }
        for (r = 0; r < rows; r++)
            out[(size_t)r * (size_t)n_out + (size_t)o] =
                (bias ? bias[o] : 0.0f) + mmspcl_dot_f32(x + (size_t)r * (size_t)n_in, w, n_in);
    }
}

/* ---- Linear layers, quantized weights (q8_0, q4_0): the integer path -----------------------
   Definition (every SIMD path gives the same bits):
     1. each row of x is quantized in blocks of 32: d = max|x| / 127, q = round-to-nearest-even
        (x * (1/d)) (q = 0 when d = 0), an int8 in [-127, 127], d kept as f32;
     2. for each output o and block b: isum = sum of the 32 products q_x * q_w (exact, int32);
     3. acc = 0; for b in order: acc = fma(d_x * d_w, (float)isum, acc); out = acc + bias.
   q4_0 weights count as nibble - 8. */
static void mmspcl__quantize_act(const float *x, int n, int8_t *q, float *d) {
    int b, j;
    for (b = 0; b < n / MMSPCL_QBLOCK; b++, x += MMSPCL_QBLOCK, q += MMSPCL_QBLOCK) {
        float amax = 0.0f, id;
        for (j = 0; j < MMSPCL_QBLOCK; j++) amax = fmaxf(amax, fabsf(x[j]));
        d[b] = amax / 127.0f;
        id = d[b] != 0.0f ? 1.0f / d[b] : 0.0f;
        for (j = 0; j < MMSPCL_QBLOCK; j++) q[j] = (int8_t)lrintf(x[j] * id);
    }
}

/* The 32 int8 values and the scale of block b of weight row w (q8_0 or q4_0). */
static float mmspcl__weight_block(const void *w, mmspcl_dtype dt, int b, int8_t *v) {
    int j;
    if (dt == MMSPCL_Q8_0) {
        const mmspcl_block_q8_0 *blk = (const mmspcl_block_q8_0 *)w + b;
        for (j = 0; j < MMSPCL_QBLOCK; j++) v[j] = blk->q[j];
        return mmspcl_fp16_to_fp32(blk->d);
    } else {
        const mmspcl_block_q4_0 *blk = (const mmspcl_block_q4_0 *)w + b;
        for (j = 0; j < MMSPCL_QBLOCK / 2; j++) {
            v[j] = (int8_t)((blk->q[j] & 15) - 8);
            v[j + 16] = (int8_t)((blk->q[j] >> 4) - 8);
        }
        return mmspcl_fp16_to_fp32(blk->d);
    }
}

static mmspcl_status mmspcl__linear_q_scalar(float *out, const float *x, int rows, int n_in,
                                             const mmspcl_tensor *W, const float *bias) {
    const int n_out = (int)W->ne[0], nb = n_in / MMSPCL_QBLOCK;
    const size_t row_bytes = mmspcl_dtype_row_size(W->dtype, n_in);
    int8_t *xq = (int8_t *)MMSPCL_MALLOC((size_t)rows * (size_t)n_in + (size_t)rows * (size_t)nb * sizeof(float));
    float *xd = (float *)(xq + (size_t)rows * (size_t)n_in);
    int r, o;
    if (!xq) return MMSPCL_ERR_NOMEM;
    /* n_in is a multiple of 4, so xd is aligned for floats */
    for (r = 0; r < rows; r++)
        mmspcl__quantize_act(x + (size_t)r * n_in, n_in, xq + (size_t)r * n_in, xd + (size_t)r * nb);
    MMSPCL__OMP_FOR
    for (o = 0; o < n_out; o++) {
        const void *w = (const unsigned char *)W->data + (size_t)o * row_bytes;
        int rr, b, j;
        for (rr = 0; rr < rows; rr++) {
            const int8_t *q = xq + (size_t)rr * n_in;
            float acc = 0.0f;
            for (b = 0; b < nb; b++) {
                int8_t v[MMSPCL_QBLOCK];
                float dw = mmspcl__weight_block(w, W->dtype, b, v);
                int32_t isum = 0;
                for (j = 0; j < MMSPCL_QBLOCK; j++) isum += (int32_t)q[b * MMSPCL_QBLOCK + j] * v[j];
                acc = fmaf(xd[(size_t)rr * nb + b] * dw, (float)isum, acc);
            }
            out[(size_t)rr * n_out + o] = acc + (bias ? bias[o] : 0.0f);
        }
    }
    MMSPCL_FREE(xq);
    return MMSPCL_OK;
}

/* ---- SIMD linear layers ---------------------------------------------------------------------
   All SIMD paths put consecutive ROWS of x in the lanes of a vector ("x^T" packed once per call:
   [k][rows rounded up], zero rows past the end) and broadcast weights straight from W's rows, so
   W is streamed from memory once, in place, with no per-call repacking of the big matrix. A
   micro-kernel keeps MO outputs x NV vectors of rows in registers.
   Integer paths: x^T holds 4-byte groups [k/4][rows][4] of quantized activations; each weight
   group of 4 int8 is broadcast as one 32-bit word; a dot-product instruction adds the 4 products
   into each row's 32-bit lane. */

#ifndef MMSPCL__KC
#define MMSPCL__KC 1024
#endif
#define MMSPCL__KC_UNUSED   /* k chunk of the f32 paths: x^T of the chunk stays in L2 */

#if !defined(MMSPCL_NO_SIMD) && (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define MMSPCL__X86_DISPATCH 1
#include <immintrin.h>
/* GCC 12's own AVX-512 headers trip -Wmaybe-uninitialized in C++ at -O2 (GCC bug 105593,
   fixed in 13): silence it for the SIMD section only. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define MMSPCL__POP_DIAGNOSTIC 1
#endif
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11 || defined(__clang__) && __clang_major__ >= 12
#include <cpuid.h>
#define MMSPCL__HAVE_AVXVNNI 1   /* the compiler knows target("avxvnni") */
#endif

/* CPU features, read once per call (cheap; no global state). */
#define MMSPCL__CPU_AVX2 1
#define MMSPCL__CPU_AVX512 2
#define MMSPCL__CPU_VNNI512 4
#define MMSPCL__CPU_AVXVNNI 8
static int mmspcl__x86_features(void) {
    int f = 0;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) f |= MMSPCL__CPU_AVX2;
    if ((f & MMSPCL__CPU_AVX2) && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl")) {
        f |= MMSPCL__CPU_AVX512;
        if (__builtin_cpu_supports("avx512vnni")) f |= MMSPCL__CPU_VNNI512;
    }
#ifdef MMSPCL__HAVE_AVXVNNI
    {   /* CPUID leaf 7 sub-leaf 1, EAX bit 4 (not every compiler's __builtin_cpu_supports knows it) */
        unsigned a = 0, b = 0, c = 0, d = 0;
        if ((f & MMSPCL__CPU_AVX2) && __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a >> 4 & 1)) f |= MMSPCL__CPU_AVXVNNI;
    }
#endif
    return f;
}

/* 4 bytes as one 32-bit word (a broadcast operand). */
static int32_t mmspcl__word(const int8_t *p) { int32_t v; memcpy(&v, p, 4); return v; }

#define MMSPCL__R1(M) M(0)
#define MMSPCL__R2(M) M(0) M(1)
#define MMSPCL__R3(M) M(0) M(1) M(2)
#define MMSPCL__R4(M) M(0) M(1) M(2) M(3)
#define MMSPCL__R6(M) M(0) M(1) M(2) M(3) M(4) M(5)
#define MMSPCL__R8(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7)


/* ===== x86, f32 / f16 / bf16 weights, AVX-512: 6 outputs x NV (1, 2, 4) vectors of 16 rows = */
#define MMSPCL__MO 6

/* 16 x 16 transpose of r[0..15] in place. */
static inline __attribute__((always_inline, target("avx512f"))) void mmspcl__tr16(__m512 *r) {
    __m512 t[16], u[16];
    int i, c;
    for (i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (i = 0; i < 4; i++) {
        u[4 * i + 0] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        u[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        u[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        u[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (c = 0; c < 4; c++) {
        __m512 v = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88), v2 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);
        __m512 w = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88), w2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
        r[c] = _mm512_shuffle_f32x4(v, w, 0x88);
        r[8 + c] = _mm512_shuffle_f32x4(v, w, 0xDD);
        r[4 + c] = _mm512_shuffle_f32x4(v2, w2, 0x88);
        r[12 + c] = _mm512_shuffle_f32x4(v2, w2, 0xDD);
    }
}

/* x^T in tiles of up to 64 rows: the tile of rows r0 .. r0+tw-1 (tw = min(64, ldt - r0)) is
   xt[r0 * kc + k * tw + r - r0] = x[r][k0 + k] for k < kc; zero for rows .. ldt (a multiple of 16),
   so a micro-kernel streams one contiguous block. */
static __attribute__((target("avx512f"))) void mmspcl__pack_xt_avx512(float *xt, int ldt, const float *x, int rows,
                                                                       int n_in, int k0, int kc) {
    int r0, k, i;
    for (r0 = 0; r0 < ldt; r0 += 16)
        for (k = 0; k < kc; k += 16) {
            const int t0 = r0 & ~63, tw = ldt - t0 < 64 ? ldt - t0 : 64;
            float *dst = xt + (size_t)t0 * kc + (r0 - t0);
            __m512 v[16];
            const int kn = kc - k < 16 ? kc - k : 16;
            const __mmask16 m = (__mmask16)((1u << kn) - 1);
            for (i = 0; i < 16; i++)
                v[i] = r0 + i < rows ? _mm512_maskz_loadu_ps(m, x + (size_t)(r0 + i) * n_in + k0 + k) : _mm512_setzero_ps();
            mmspcl__tr16(v);
            for (i = 0; i < kn; i++) _mm512_storeu_ps(dst + (size_t)(k + i) * tw, v[i]);
        }
}

/* Columns k0 .. k0+kc of rows o0 .. o0+mo-1 of an f16 / bf16 W widened to f32: dst[o][kc]. */
static __attribute__((target("avx512f,f16c"))) void mmspcl__widen_avx512(float *dst, const mmspcl_tensor *W, int n_in,
                                                                          int o0, int mo, int k0, int kc) {
    int o, k;
    for (o = 0; o < mo; o++) {
        const uint16_t *s = (const uint16_t *)W->data + (size_t)(o0 + o) * n_in + k0;
        float *d = dst + (size_t)o * kc;
        for (k = 0; k + 16 <= kc; k += 16) {
            const __m256i h = _mm256_loadu_si256((const __m256i *)(s + k));
            _mm512_storeu_ps(d + k, W->dtype == MMSPCL_F16 ? _mm512_cvtph_ps(h)
                             : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)));
        }
        for (; k < kc; k++) d[k] = W->dtype == MMSPCL_F16 ? mmspcl_fp16_to_fp32(s[k]) : mmspcl_bf16_to_fp32(s[k]);
    }
}

/* t[o][ts] holds output o of rows 0 .. mr-1: out = bias + t (acc == 0) or out += t. */
static void mmspcl__store_cols(float *out, int ld, const float *t, int ts, int mr, int mo, const float *bias, int acc) {
    int r, o;
    for (r = 0; r < mr; r++)
        for (o = 0; o < mo; o++) {
            if (acc) out[(size_t)r * ld + o] += t[o * ts + r];
            else out[(size_t)r * ld + o] = t[o * ts + r] + (bias ? bias[o] : 0.0f);
        }
}

/* The same as mmspcl__store_cols with 16 x 16 transposes and masked row stores (mo <= 6). */
static __attribute__((target("avx512f"))) void mmspcl__store_cols_avx512(float *out, int ld, const float *t, int ts, int mr,
                                                                          int mo, const float *bias, int acc) {
    const __mmask16 m = (__mmask16)((1u << mo) - 1);
    const __m512 b = bias && !acc ? _mm512_maskz_loadu_ps(m, bias) : _mm512_setzero_ps();
    int r0, r, o;
    for (r0 = 0; r0 < mr; r0 += 16) {
        __m512 v[16];
        for (o = 0; o < 16; o++) v[o] = o < mo ? _mm512_loadu_ps(t + o * ts + r0) : _mm512_setzero_ps();
        mmspcl__tr16(v);
        for (r = 0; r < 16 && r0 + r < mr; r++) {
            float *dst = out + (size_t)(r0 + r) * ld;
            _mm512_mask_storeu_ps(dst, m, acc ? _mm512_add_ps(_mm512_maskz_loadu_ps(m, dst), v[r]) : _mm512_add_ps(v[r], b));
        }
    }
}

/* Micro-kernel: t[o][16 v + lane] = sum_k w[o][k] * xt[k * ldx + 16 v + lane], o < 6, v < NV.
   Spread over the k loop it prefetches pf->n lines: pf->lpr lines from each of rows pf->p + i *
   pf->stride (the next group's weights, so they stream from memory while this group computes). */
typedef struct mmspcl__pf { const char *p; size_t stride; int lpr, n; } mmspcl__pf;
#define MMSPCL__V1(M, o) M(o, 0)
#define MMSPCL__V2(M, o) M(o, 0) M(o, 1)
#define MMSPCL__V3(M, o) M(o, 0) M(o, 1) M(o, 2)
#define MMSPCL__V4(M, o) M(o, 0) M(o, 1) M(o, 2) M(o, 3)
#define MMSPCL__Z_DECL(o, v) __m512 a##o##v = _mm512_setzero_ps();
#define MMSPCL__Z_FMA(o, v) a##o##v = _mm512_fmadd_ps(b, x##v, a##o##v);
#define MMSPCL__Z_STORE(o, v) _mm512_storeu_ps(t + o * 64 + 16 * v, a##o##v);
#define MMSPCL__Z_LOADX(v) const __m512 x##v = _mm512_loadu_ps(xk + 16 * v);
#define MMSPCL__Z_DECL1(o) MMSPCL__V1(MMSPCL__Z_DECL, o)
#define MMSPCL__Z_DECL2(o) MMSPCL__V2(MMSPCL__Z_DECL, o)
#define MMSPCL__Z_DECL3(o) MMSPCL__V3(MMSPCL__Z_DECL, o)
#define MMSPCL__Z_DECL4(o) MMSPCL__V4(MMSPCL__Z_DECL, o)
#define MMSPCL__Z_STEP1(o) { const __m512 b = _mm512_set1_ps(w##o[k]); MMSPCL__V1(MMSPCL__Z_FMA, o) }
#define MMSPCL__Z_STEP2(o) { const __m512 b = _mm512_set1_ps(w##o[k]); MMSPCL__V2(MMSPCL__Z_FMA, o) }
#define MMSPCL__Z_STEP3(o) { const __m512 b = _mm512_set1_ps(w##o[k]); MMSPCL__V3(MMSPCL__Z_FMA, o) }
#define MMSPCL__Z_STEP4(o) { const __m512 b = _mm512_set1_ps(w##o[k]); MMSPCL__V4(MMSPCL__Z_FMA, o) }
#define MMSPCL__Z_ST1(o) MMSPCL__V1(MMSPCL__Z_STORE, o)
#define MMSPCL__Z_ST2(o) MMSPCL__V2(MMSPCL__Z_STORE, o)
#define MMSPCL__Z_ST3(o) MMSPCL__V3(MMSPCL__Z_STORE, o)
#define MMSPCL__Z_ST4(o) MMSPCL__V4(MMSPCL__Z_STORE, o)
#define MMSPCL__F32K(NV)                                                                                    \
static __attribute__((target("avx512f,fma"))) void mmspcl__f32k##NV(float *t, const float *xt, int ldx,    \
                                                                     const float *const *w, int kc,        \
                                                                     const mmspcl__pf *pf) {               \
    const float *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3], *w4 = w[4], *w5 = w[5];                       \
    int k, pi = 0, pk = pf && pf->n ? 0 : kc;                                                               \
    MMSPCL__R6(MMSPCL__Z_DECL##NV)                                                                          \
    for (k = 0; k < kc; k++) {                                                                              \
        const float *xk = xt + (size_t)k * ldx;                                                             \
        MMSPCL__R##NV(MMSPCL__Z_LOADX)                                                                      \
        MMSPCL__R6(MMSPCL__Z_STEP##NV)                                                                      \
        if (k == pk) {                                                                                      \
            _mm_prefetch(pf->p + (size_t)(pi / pf->lpr) * pf->stride + (size_t)(pi % pf->lpr) * 64, _MM_HINT_T0); \
            pi++;                                                                                           \
            pk = pi < pf->n ? (int)((long long)pi * kc / pf->n) : kc;                                       \
        }                                                                                                   \
    }                                                                                                       \
    MMSPCL__R6(MMSPCL__Z_ST##NV)                                                                            \
}
MMSPCL__F32K(1)
MMSPCL__F32K(2)
MMSPCL__F32K(3)
MMSPCL__F32K(4)

static void mmspcl__f32k(int nv, float *t, const float *xt, int ldx, const float *const *w, int kc, const mmspcl__pf *pf) {
    if (nv == 4) mmspcl__f32k4(t, xt, ldx, w, kc, pf);
    else if (nv == 3) mmspcl__f32k3(t, xt, ldx, w, kc, pf);
    else if (nv == 2) mmspcl__f32k2(t, xt, ldx, w, kc, pf);
    else mmspcl__f32k1(t, xt, ldx, w, kc, pf);
}

static mmspcl_status mmspcl__linear_f32_avx512(float *out, const float *x, int rows, int n_in,
                                               const mmspcl_tensor *W, const float *bias) {
    /* Every row goes through the same vector lanes whatever its position: a row's result does
       not depend on the batch around it (a leftover-rows kernel with another summation order
       would break that). */
    const int vrows = rows;
    const int n_out = (int)W->ne[0], ldt = (vrows + 15) & ~15, nthreads = MMSPCL__MAX_THREADS();
    const int kcmax = n_in <= MMSPCL__KC * 3 / 2 ? n_in : MMSPCL__KC, n_groups = (n_out + MMSPCL__MO - 1) / MMSPCL__MO;
    const size_t wide = W->dtype == MMSPCL_F32 ? 0 : (size_t)MMSPCL__MO * (size_t)kcmax, esize = W->dtype == MMSPCL_F32 ? 4 : 2;
    float *xt = (float *)MMSPCL_MALLOC(((size_t)ldt * (size_t)kcmax + (size_t)nthreads * wide + 16) * sizeof(float));
    int k0;
    if (!xt) return MMSPCL_ERR_NOMEM;
    for (k0 = 0; k0 < n_in; k0 += kcmax) {
        const int kc = n_in - k0 < kcmax ? n_in - k0 : kcmax;
        int g;
        mmspcl__pack_xt_avx512(xt, ldt, x, vrows, n_in, k0, kc);
        MMSPCL__OMP_FOR
        for (g = 0; g < n_groups; g++) {
            const int o0 = g * MMSPCL__MO, mo = n_out - o0 < MMSPCL__MO ? n_out - o0 : MMSPCL__MO;
            const float *w[MMSPCL__MO];
            float t[MMSPCL__MO * 64];
            int o, r0;
            mmspcl__pf pf;   /* the next group's rows, columns k0 .. k0+kc */
            pf.stride = (size_t)n_in * esize;
            pf.p = (const char *)W->data + (size_t)(o0 + MMSPCL__MO) * pf.stride + (size_t)k0 * esize;
            pf.lpr = (int)(((size_t)kc * esize + 63) / 64);
            pf.n = o0 + MMSPCL__MO < n_out ? pf.lpr * (n_out - o0 - MMSPCL__MO < MMSPCL__MO ? n_out - o0 - MMSPCL__MO : MMSPCL__MO) : 0;
            if (W->dtype == MMSPCL_F32) {
                for (o = 0; o < MMSPCL__MO; o++) w[o] = (const float *)W->data + (size_t)(o0 + (o < mo ? o : 0)) * n_in + k0;
            } else {
                float *buf = xt + (size_t)ldt * (size_t)kcmax + (size_t)MMSPCL__THREAD_ID() * wide;
                mmspcl__widen_avx512(buf, W, n_in, o0, mo, k0, kc);
                for (o = 0; o < MMSPCL__MO; o++) w[o] = buf + (size_t)(o < mo ? o : 0) * kc;
            }
            for (r0 = 0; r0 < vrows; r0 += 64) {
                const int nv = ldt - r0 < 64 ? (ldt - r0) / 16 : 4;
                const float *xb = xt + (size_t)r0 * kc;
                mmspcl__f32k(nv, t, xb, 16 * nv, w, kc, r0 ? NULL : &pf);
                mmspcl__store_cols_avx512(out + (size_t)r0 * n_out + o0, n_out, t, 64, vrows - r0 < 16 * nv ? vrows - r0 : 16 * nv,
                                   mo, bias ? bias + o0 : NULL, k0 > 0);
            }

        }
    }
    MMSPCL_FREE(xt);
    return MMSPCL_OK;
}

/* ===== x86, q8_0 / q4_0 weights: the integer path ===========================================
   Activations in tiles of tw rows (tw = min(T, ldt - r0)): tile r0 holds xq[r0 * n_in + ((k/4)
   * tw + r - r0) * 4 + k%4] int8 (rows in the lanes), scales xd[r0 * nb + b * tw + r - r0] and
   xc (same place) the correction -128 * sum(q) of each block (VNNI multiplies unsigned by signed
   bytes: weights are stored +128 as unsigned, so sum((w + 128) q) - 128 sum(q) = sum(w q)).
   Weights: each thread unpacks the rows of its output group once into plain int8 rows (+128 for
   VNNI) and their scales; the micro-kernel broadcasts 4 weight bytes at a time from there. */
static __attribute__((target("avx2,fma"))) void mmspcl__pack_xq_avx2(int8_t *xq, float *xd, int32_t *xc, int ldt, int T,
                                                                      const float *x, int rows, int n_in) {
    const int nb = n_in / MMSPCL_QBLOCK;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    int r, b, g;
    for (r = 0; r < ldt; r++) {
        const float *xr = x + (size_t)r * n_in;
        const int t0 = r / T * T, tw = ldt - t0 < T ? ldt - t0 : T, lane = r - t0;
        int8_t *tq = xq + (size_t)t0 * n_in;
        for (b = 0; b < nb; b++) {
            int8_t q[MMSPCL_QBLOCK];
            int32_t sum = 0;
            float d = 0.0f;
            if (r < rows) {
                const __m256 v0 = _mm256_loadu_ps(xr + 32 * b), v1 = _mm256_loadu_ps(xr + 32 * b + 8);
                const __m256 v2 = _mm256_loadu_ps(xr + 32 * b + 16), v3 = _mm256_loadu_ps(xr + 32 * b + 24);
                __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                                         _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
                __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
                __m256i i0, i1, i2, i3, p;
                __m256 id;
                float amax;
                h = _mm_max_ps(h, _mm_movehl_ps(h, h));
                h = _mm_max_ss(h, _mm_movehdup_ps(h));
                amax = _mm_cvtss_f32(h);
                d = amax / 127.0f;
                id = _mm256_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
                i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, id));
                i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, id));
                i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, id));
                i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, id));
                {   /* sum of the 32 values (exact), then pack to bytes in order */
                    __m256i s = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
                    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
                    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
                    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
                    sum = _mm_cvtsi128_si32(s4);
                }
                p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
                /* packs works per 128-bit lane: dwords come out as 0 2 4 6 1 3 5 7 */
                p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
                _mm256_storeu_si256((__m256i *)q, p);
            } else {
                memset(q, 0, sizeof q);
            }
            for (g = 0; g < MMSPCL_QBLOCK / 4; g++) memcpy(tq + ((size_t)(b * 8 + g) * tw + lane) * 4, q + 4 * g, 4);
            xd[(size_t)t0 * nb + (size_t)b * tw + lane] = d;
            if (xc) xc[(size_t)t0 * nb + (size_t)b * tw + lane] = -128 * sum;
        }
    }
}

/* Rows o0 .. o0+mo-1 of a q8_0 / q4_0 W as int8 rows dst[o][n_in] (+128 when flip) and f32
   scales ds[o][nb]. */
static __attribute__((target("avx2,f16c"))) void mmspcl__unpack_w_avx2(int8_t *dst, float *ds, const mmspcl_tensor *W,
                                                                        int n_in, int o0, int mo, int flip) {
    const int nb = n_in / MMSPCL_QBLOCK;
    const size_t row_bytes = mmspcl_dtype_row_size(W->dtype, n_in);
    const __m256i fx = _mm256_set1_epi8(flip ? (char)0x80 : 0), off = _mm256_set1_epi8(flip ? 120 : -8);
    const __m128i m4 = _mm_set1_epi8(15);
    int o, b;
    for (o = 0; o < mo; o++) {
        const unsigned char *src = (const unsigned char *)W->data + (size_t)(o0 + o) * row_bytes;
        int8_t *d = dst + (size_t)o * n_in;
        if (W->dtype == MMSPCL_Q8_0) {
            const mmspcl_block_q8_0 *blk = (const mmspcl_block_q8_0 *)src;
            for (b = 0; b < nb; b++) {
                _mm256_storeu_si256((__m256i *)(d + 32 * b), _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)blk[b].q), fx));
                ds[(size_t)o * nb + b] = _cvtsh_ss(blk[b].d);
            }
        } else {
            const mmspcl_block_q4_0 *blk = (const mmspcl_block_q4_0 *)src;
            for (b = 0; b < nb; b++) {
                const __m128i v = _mm_loadu_si128((const __m128i *)blk[b].q);
                const __m256i u = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m4), _mm_and_si128(v, m4));
                _mm256_storeu_si256((__m256i *)(d + 32 * b), _mm256_add_epi8(u, off));
                ds[(size_t)o * nb + b] = _cvtsh_ss(blk[b].d);
            }
        }
    }
}

/* AVX512-VNNI micro-kernel: 6 outputs x NV (1, 2) vectors of 16 rows; t[o][32]. */
#define MMSPCL__Q_DECLF(o, v) __m512 f##o##v = _mm512_setzero_ps();
#define MMSPCL__Q_INIT(o, v) __m512i i##o##v = c##v;
#define MMSPCL__Q_DOT(o, v) i##o##v = _mm512_dpbusd_epi32(i##o##v, wb, x##v);
#define MMSPCL__Q_FMA(o, v) f##o##v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i##o##v), _mm512_mul_ps(d##v, s), f##o##v);
#define MMSPCL__Q_STORE(o, v) _mm512_storeu_ps(t + o * 32 + 16 * v, f##o##v);
#define MMSPCL__Q_LOADC(v) const __m512i c##v = _mm512_loadu_si512((const void *)(xc + (size_t)b * tw + 16 * v));
#define MMSPCL__Q_LOADX(v) const __m512i x##v = _mm512_loadu_si512((const void *)(xq + ((size_t)(8 * b + g) * tw + 16 * v) * 4));
#define MMSPCL__Q_LOADD(v) const __m512 d##v = _mm512_loadu_ps(xd + (size_t)b * tw + 16 * v);
#define MMSPCL__Q_DECLF1(o) MMSPCL__V1(MMSPCL__Q_DECLF, o)
#define MMSPCL__Q_DECLF2(o) MMSPCL__V2(MMSPCL__Q_DECLF, o)
#define MMSPCL__Q_INIT1(o) MMSPCL__V1(MMSPCL__Q_INIT, o)
#define MMSPCL__Q_INIT2(o) MMSPCL__V2(MMSPCL__Q_INIT, o)
#define MMSPCL__Q_STEP1(o) { const __m512i wb = _mm512_set1_epi32(mmspcl__word(w##o + 32 * b + 4 * g)); MMSPCL__V1(MMSPCL__Q_DOT, o) }
#define MMSPCL__Q_STEP2(o) { const __m512i wb = _mm512_set1_epi32(mmspcl__word(w##o + 32 * b + 4 * g)); MMSPCL__V2(MMSPCL__Q_DOT, o) }
#define MMSPCL__Q_SCALE1(o) { const __m512 s = _mm512_set1_ps(s##o[b]); MMSPCL__V1(MMSPCL__Q_FMA, o) }
#define MMSPCL__Q_SCALE2(o) { const __m512 s = _mm512_set1_ps(s##o[b]); MMSPCL__V2(MMSPCL__Q_FMA, o) }
#define MMSPCL__Q_ST1(o) MMSPCL__V1(MMSPCL__Q_STORE, o)
#define MMSPCL__Q_ST2(o) MMSPCL__V2(MMSPCL__Q_STORE, o)
#define MMSPCL__Q_GROUP1(G) { const int g = G; MMSPCL__R1(MMSPCL__Q_LOADX) MMSPCL__R6(MMSPCL__Q_STEP1) }
#define MMSPCL__Q_GROUP2(G) { const int g = G; MMSPCL__R2(MMSPCL__Q_LOADX) MMSPCL__R6(MMSPCL__Q_STEP2) }
#define MMSPCL__QK512(NV)                                                                                   \
static __attribute__((target("avx512f,avx512bw,avx512vnni,fma"))) void mmspcl__qk512_##NV(                 \
    float *t, const int8_t *xq, const float *xd, const int32_t *xc, const int8_t *const *w,                 \
    const float *const *ws, int nb, const char *pf, int pf_n) {                                             \
    const int tw = 16 * NV;                                                                                 \
    int pi = 0;                                                                                             \
    const int8_t *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3], *w4 = w[4], *w5 = w[5];                      \
    const float *s0 = ws[0], *s1 = ws[1], *s2 = ws[2], *s3 = ws[3], *s4 = ws[4], *s5 = ws[5];                 \
    int b;                                                                                                  \
    MMSPCL__R6(MMSPCL__Q_DECLF##NV)                                                                         \
    for (b = 0; b < nb; b++) {                                                                              \
        for (; pi < (b + 1) * pf_n / nb; pi++) _mm_prefetch(pf + 64 * (size_t)pi, _MM_HINT_T0);             \
        MMSPCL__R##NV(MMSPCL__Q_LOADC)                                                                      \
        MMSPCL__R6(MMSPCL__Q_INIT##NV)                                                                      \
        MMSPCL__R8(MMSPCL__Q_GROUP##NV)                                                                     \
        {                                                                                                   \
            MMSPCL__R##NV(MMSPCL__Q_LOADD)                                                                  \
            MMSPCL__R6(MMSPCL__Q_SCALE##NV)                                                                 \
        }                                                                                                   \
    }                                                                                                       \
    MMSPCL__R6(MMSPCL__Q_ST##NV)                                                                            \
}
MMSPCL__QK512(1)
MMSPCL__QK512(2)

/* 256-bit micro-kernels: 4 outputs x 8 rows; AVX2 (sign trick + maddubs: exact, no saturation
   since |w| <= 128 and |q| <= 127) or AVX-VNNI (as the 512-bit kernel). */
static __attribute__((target("avx2,fma"))) void mmspcl__qk_avx2(float *t, const int8_t *xq, const float *xd,
                                                                const int8_t *const *w, const float *const *ws, int nb) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 f[4];
    int b, g, o;
    for (o = 0; o < 4; o++) f[o] = _mm256_setzero_ps();
    for (b = 0; b < nb; b++) {
        __m256i i0 = _mm256_setzero_si256(), i1 = i0, i2 = i0, i3 = i0;
        __m256 d;
        for (g = 0; g < 8; g++) {
            const __m256i x = _mm256_loadu_si256((const __m256i *)(xq + (size_t)(8 * b + g) * 32));
#define MMSPCL__A2_DOT(o) { const __m256i wb = _mm256_set1_epi32(mmspcl__word(w[o] + 32 * b + 4 * g));                   \
            i##o = _mm256_add_epi32(i##o, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(wb), _mm256_sign_epi8(x, wb)), ones)); }
            MMSPCL__R4(MMSPCL__A2_DOT)
#undef MMSPCL__A2_DOT
        }
        d = _mm256_loadu_ps(xd + (size_t)b * 8);
        f[0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i0), _mm256_mul_ps(d, _mm256_set1_ps(ws[0][b])), f[0]);
        f[1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i1), _mm256_mul_ps(d, _mm256_set1_ps(ws[1][b])), f[1]);
        f[2] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i2), _mm256_mul_ps(d, _mm256_set1_ps(ws[2][b])), f[2]);
        f[3] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i3), _mm256_mul_ps(d, _mm256_set1_ps(ws[3][b])), f[3]);
    }
    for (o = 0; o < 4; o++) _mm256_storeu_ps(t + o * 8, f[o]);
}

#ifdef MMSPCL__HAVE_AVXVNNI
static __attribute__((target("avx2,fma,avxvnni"))) void mmspcl__qk_avxvnni(float *t, const int8_t *xq, const float *xd,
                                                                          const int32_t *xc, const int8_t *const *w,
                                                                          const float *const *ws, int nb) {
    __m256 f[4];
    int b, g, o;
    for (o = 0; o < 4; o++) f[o] = _mm256_setzero_ps();
    for (b = 0; b < nb; b++) {
        __m256i i0 = _mm256_loadu_si256((const __m256i *)(xc + (size_t)b * 8)), i1 = i0, i2 = i0, i3 = i0;
        __m256 d;
        for (g = 0; g < 8; g++) {
            const __m256i x = _mm256_loadu_si256((const __m256i *)(xq + (size_t)(8 * b + g) * 32));
#define MMSPCL__AV_DOT(o) i##o = _mm256_dpbusd_avx_epi32(i##o, _mm256_set1_epi32(mmspcl__word(w[o] + 32 * b + 4 * g)), x);
            MMSPCL__R4(MMSPCL__AV_DOT)
#undef MMSPCL__AV_DOT
        }
        d = _mm256_loadu_ps(xd + (size_t)b * 8);
        f[0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i0), _mm256_mul_ps(d, _mm256_set1_ps(ws[0][b])), f[0]);
        f[1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i1), _mm256_mul_ps(d, _mm256_set1_ps(ws[1][b])), f[1]);
        f[2] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i2), _mm256_mul_ps(d, _mm256_set1_ps(ws[2][b])), f[2]);
        f[3] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i3), _mm256_mul_ps(d, _mm256_set1_ps(ws[3][b])), f[3]);
    }
    for (o = 0; o < 4; o++) _mm256_storeu_ps(t + o * 8, f[o]);
}
#endif

/* kind: 2 AVX512-VNNI, 1 AVX-VNNI, 0 AVX2. */
static mmspcl_status mmspcl__linear_q_x86(float *out, const float *x, int rows, int n_in, const mmspcl_tensor *W,
                                          const float *bias, int kind) {
    const int n_out = (int)W->ne[0], nb = n_in / MMSPCL_QBLOCK, nthreads = MMSPCL__MAX_THREADS();
    const int ldt = (rows + 15) & ~15, MO = kind == 2 ? MMSPCL__MO : 4, n_groups = (n_out + MO - 1) / MO;
    const size_t row_bytes = mmspcl_dtype_row_size(W->dtype, n_in);
    const size_t xbytes = (size_t)ldt * (size_t)n_in, sbytes = (size_t)ldt * (size_t)nb * 4;
    const size_t per_thread = (size_t)MO * ((size_t)n_in + (size_t)nb * 4);
    unsigned char *buf = (unsigned char *)MMSPCL_MALLOC(xbytes + 2 * sbytes + (size_t)nthreads * per_thread + 64);
    int8_t *xq;
    float *xd;
    int32_t *xc;
    int g;
    if (!buf) return MMSPCL_ERR_NOMEM;
    xd = (float *)buf;
    xc = (int32_t *)(buf + sbytes);
    xq = (int8_t *)(buf + 2 * sbytes);
    mmspcl__pack_xq_avx2(xq, xd, kind ? xc : NULL, ldt, kind == 2 ? 32 : 8, x, rows, n_in);
    MMSPCL__OMP_FOR
    for (g = 0; g < n_groups; g++) {
        const int o0 = g * MO, mo = n_out - o0 < MO ? n_out - o0 : MO;
        unsigned char *tb = buf + xbytes + 2 * sbytes + (size_t)MMSPCL__THREAD_ID() * per_thread;
        float *ws_buf = (float *)tb;
        int8_t *wq = (int8_t *)(tb + (size_t)MO * nb * 4);
        const int8_t *w[MMSPCL__MO];
        const float *ws[MMSPCL__MO];
        float t[MMSPCL__MO * 32];
        int o, r0, nv;
        mmspcl__unpack_w_avx2(wq, ws_buf, W, n_in, o0, mo, kind != 0);
        for (o = 0; o < MO; o++) {
            w[o] = wq + (size_t)(o < mo ? o : 0) * n_in;
            ws[o] = ws_buf + (size_t)(o < mo ? o : 0) * nb;
        }
        if (kind == 2) {
            /* while the first tile runs, the next group's weight rows are fetched from memory */
            const int next = n_out - o0 - MO < MO ? n_out - o0 - MO : MO;
            const char *pf = (const char *)W->data + (size_t)(o0 + MO) * row_bytes;
            const int pf_n = next > 0 ? (int)((size_t)next * row_bytes / 64) : 0;
            for (r0 = 0; r0 < rows; r0 += 32) {
                const size_t xo = (size_t)r0 * n_in, so = (size_t)r0 * nb;
                nv = ldt - r0 >= 32 ? 2 : 1;
                if (nv == 2) mmspcl__qk512_2(t, xq + xo, xd + so, xc + so, w, ws, nb, pf, r0 ? 0 : pf_n);
                else mmspcl__qk512_1(t, xq + xo, xd + so, xc + so, w, ws, nb, pf, r0 ? 0 : pf_n);
                mmspcl__store_cols_avx512(out + (size_t)r0 * n_out + o0, n_out, t, 32, rows - r0 < 16 * nv ? rows - r0 : 16 * nv,
                                   mo, bias ? bias + o0 : NULL, 0);
            }
        } else {
            for (r0 = 0; r0 < rows; r0 += 8) {
#ifdef MMSPCL__HAVE_AVXVNNI
                if (kind == 1) mmspcl__qk_avxvnni(t, xq + (size_t)r0 * n_in, xd + (size_t)r0 * nb, xc + (size_t)r0 * nb, w, ws, nb);
                else
#endif
                mmspcl__qk_avx2(t, xq + (size_t)r0 * n_in, xd + (size_t)r0 * nb, w, ws, nb);
                mmspcl__store_cols(out + (size_t)r0 * n_out + o0, n_out, t, 8, rows - r0 < 8 ? rows - r0 : 8, mo,
                                   bias ? bias + o0 : NULL, 0);
            }
        }
    }
    MMSPCL_FREE(buf);
    return MMSPCL_OK;
}

/* ===== x86, f32 / f16 / bf16 weights, AVX2: packed panels of 16 columns, 6 x 16 tiles ===== */
/* Panel of columns n0 .. n0+nr-1 of W^T: panel[k * 16 + j] = W[n0 + j][k], zero past nr.
   rows: scratch for 16 widened rows (n_in x 16 floats) when W is not f32. */
static void mmspcl__pack_panel16(float *panel, const mmspcl_tensor *W, int n0, int nr, int n_in, float *rows) {
    const size_t row_bytes = mmspcl_dtype_row_size(W->dtype, n_in);
    const float *src[16];
    int j, k, kk;
    for (j = 0; j < 16; j++) {
        if (j >= nr) src[j] = NULL;
        else if (W->dtype == MMSPCL_F32) src[j] = (const float *)W->data + (size_t)(n0 + j) * (size_t)n_in;
        else {
            float *dst = rows + (size_t)j * n_in;
            mmspcl_dequantize_row(W->dtype, (const unsigned char *)W->data + (size_t)(n0 + j) * row_bytes, dst, n_in);
            src[j] = dst;
        }
    }
    for (k = 0; k < n_in; k += 16) {
        const int kn = n_in - k < 16 ? n_in - k : 16;
        for (j = 0; j < 16; j++)
            for (kk = 0; kk < kn; kk++) panel[(size_t)(k + kk) * 16 + j] = src[j] ? src[j][k + kk] : 0.0f;
    }
}

/* out tile rows < mr, columns < nr = bias + x block (packed [k][6]) times the panel. */
static __attribute__((target("avx2,fma"))) void mmspcl__tile_avx2(float *out, int ld_out, const float *xp, int n_in,
                                                                  const float *panel, const float *bias, int mr, int nr) {
    float tmp[6 * 16], b[16];
    int j, k, r;
    for (j = 0; j < 16; j++) b[j] = bias && j < nr ? bias[j] : 0.0f;
    {
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#define MMSPCL__DECL(r) __m256 a##r##_0 = b0, a##r##_1 = b1;
        MMSPCL__R6(MMSPCL__DECL)
#undef MMSPCL__DECL
        for (k = 0; k < n_in; k++) {
            const __m256 w0 = _mm256_loadu_ps(panel + (size_t)k * 16), w1 = _mm256_loadu_ps(panel + (size_t)k * 16 + 8);
            const float *xk = xp + (size_t)k * 6;
#define MMSPCL__FMA(r) { const __m256 xv = _mm256_broadcast_ss(xk + r); \
            a##r##_0 = _mm256_fmadd_ps(xv, w0, a##r##_0); a##r##_1 = _mm256_fmadd_ps(xv, w1, a##r##_1); }
            MMSPCL__R6(MMSPCL__FMA)
#undef MMSPCL__FMA
        }
#define MMSPCL__STORE(r) _mm256_storeu_ps(tmp + r * 16, a##r##_0); _mm256_storeu_ps(tmp + r * 16 + 8, a##r##_1);
        MMSPCL__R6(MMSPCL__STORE)
#undef MMSPCL__STORE
    }
    for (r = 0; r < mr; r++)
        for (j = 0; j < nr; j++) out[(size_t)r * ld_out + j] = tmp[r * 16 + j];
}

static mmspcl_status mmspcl__linear_f32_avx2(float *out, const float *x, int rows, int n_in, const mmspcl_tensor *W,
                                             const float *bias) {
    const int n_out = (int)W->ne[0], n_panels = (n_out + 15) / 16, n_blocks = (rows + 5) / 6, nthreads = MMSPCL__MAX_THREADS();
    const size_t per_thread = (size_t)n_in * 16 * 2 + 16;   /* a panel and 16 widened rows */
    float *buf = (float *)MMSPCL_MALLOC(((size_t)nthreads * per_thread + (size_t)n_blocks * 6 * n_in) * sizeof(float));
    float *xp;
    int p, r0, r, k;
    if (!buf) return MMSPCL_ERR_NOMEM;
    xp = buf + (size_t)nthreads * per_thread;   /* x in blocks of 6 rows, [block][k][6], zero past rows */
    for (r0 = 0; r0 < rows; r0 += 6)
        for (k = 0; k < n_in; k++)
            for (r = 0; r < 6; r++)
                xp[((size_t)(r0 / 6) * n_in + k) * 6 + r] = r0 + r < rows ? x[(size_t)(r0 + r) * n_in + k] : 0.0f;
    MMSPCL__OMP_FOR
    for (p = 0; p < n_panels; p++) {
        float *panel = buf + (size_t)MMSPCL__THREAD_ID() * per_thread, *wide = panel + (size_t)n_in * 16;
        const int n0 = p * 16, nr = n_out - n0 < 16 ? n_out - n0 : 16;
        int blk;
        mmspcl__pack_panel16(panel, W, n0, nr, n_in, wide);
        for (blk = 0; blk < n_blocks; blk++) {
            const int b0 = blk * 6, mr = rows - b0 < 6 ? rows - b0 : 6;
            mmspcl__tile_avx2(out + (size_t)b0 * n_out + n0, n_out, xp + (size_t)blk * 6 * n_in, n_in, panel,
                              bias ? bias + n0 : NULL, mr, nr);
        }
    }
    MMSPCL_FREE(buf);
    return MMSPCL_OK;
}

/* ===== x86: elementwise functions and attention ============================================ */
/* exp(x), x clamped to [-87.3, 88.3] (Cephes' expf polynomial, about 1 ulp). */
static inline __attribute__((always_inline, target("avx2,fma"))) __m256 mmspcl__exp256(__m256 x) {
    __m256 n, r, p;
    __m256i e;
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
    n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    p = _mm256_fmadd_ps(_mm256_set1_ps(1.9875691500e-4f), r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* erf(x) = x P(x^2) / Q(x^2) on [-4, 4] (+-1 outside in float); absolute error below 2e-7. */
static inline __attribute__((always_inline, target("avx2,fma"))) __m256 mmspcl__erf256(__m256 x) {
    __m256 x2, p, q;
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-4.0f)), _mm256_set1_ps(4.0f));
    x2 = _mm256_mul_ps(x, x);
    p = _mm256_fmadd_ps(_mm256_set1_ps(-2.72614225801306e-10f), x2, _mm256_set1_ps(2.77068142495902e-08f));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-2.10102402082508e-06f));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-5.69250639462346e-05f));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-7.34990630326855e-04f));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-2.95459980854025e-03f));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-1.60960333262415e-02f));
    q = _mm256_fmadd_ps(_mm256_set1_ps(-1.45660718464996e-05f), x2, _mm256_set1_ps(-2.13374055278905e-04f));
    q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(-1.68282697438203e-03f));
    q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(-7.37332916720468e-03f));
    q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(-1.42647390514189e-02f));
    return _mm256_div_ps(_mm256_mul_ps(x, p), q);
}

/* act 0: GELU (erf), 1: quick GELU; the tail (n % 8) uses the scalar formulas. */
static __attribute__((target("avx2,fma"))) size_t mmspcl__act_avx2(float *x, size_t n, int act) {
    size_t i;
    for (i = 0; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        __m256 y;
        if (act == 0)
            y = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), v),
                              _mm256_add_ps(_mm256_set1_ps(1.0f), mmspcl__erf256(_mm256_mul_ps(v, _mm256_set1_ps(0.70710678118654752f)))));
        else
            y = _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), mmspcl__exp256(_mm256_mul_ps(v, _mm256_set1_ps(-1.702f)))));
        _mm256_storeu_ps(x + i, y);
    }
    return i;
}

/* e[j] = exp(s[j] * scale - max) (0 where valid[j] == 0), in place; returns the sum of e. */
static __attribute__((target("avx2,fma"))) float mmspcl__softmax_row_avx2(float *s, int n, float scale,
                                                                          const unsigned char *valid) {
    const __m256 sc = _mm256_set1_ps(scale), ninf = _mm256_set1_ps(-INFINITY);
    __m256 m = ninf, acc = _mm256_setzero_ps();
    float mx, t[8], sum, tail = 0.0f;
    int j;
    if (valid)
        for (j = 0; j < n; j++) s[j] = valid[j] ? s[j] * scale : -INFINITY;
    else
        for (j = 0; j + 8 <= n; j += 8) _mm256_storeu_ps(s + j, _mm256_mul_ps(_mm256_loadu_ps(s + j), sc));
    if (!valid)
        for (j = n & ~7; j < n; j++) s[j] *= scale;
    for (j = 0; j + 8 <= n; j += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(s + j));
    _mm256_storeu_ps(t, m);
    mx = t[0];
    for (j = 1; j < 8; j++) mx = t[j] > mx ? t[j] : mx;
    for (j = n & ~7; j < n; j++) mx = s[j] > mx ? s[j] : mx;
    {
        const __m256 mv = _mm256_set1_ps(mx);
        for (j = 0; j + 8 <= n; j += 8) {
            const __m256 v = _mm256_loadu_ps(s + j);
            const __m256 e = _mm256_and_ps(mmspcl__exp256(_mm256_sub_ps(v, mv)), _mm256_cmp_ps(v, ninf, _CMP_NEQ_OQ));
            _mm256_storeu_ps(s + j, e);
            acc = _mm256_add_ps(acc, e);
        }
    }
    for (j = n & ~7; j < n; j++) { s[j] = s[j] == -INFINITY ? 0.0f : expf(s[j] - mx); tail += s[j]; }
    _mm256_storeu_ps(t, acc);
    sum = ((t[0] + t[4]) + (t[1] + t[5])) + ((t[2] + t[6]) + (t[3] + t[7]));
    return sum + tail;
}

/* Attention with the f32 micro-kernels, one task per head: K_h^T is packed once (keys in the
   lanes), then for 6 queries at a time: scores = 6 query rows broadcast against K_h^T, softmax,
   and (sum_j e_j v_j) / sum_j e_j with V's rows as the lanes (head_dim a multiple of 16).
   Returns 0 when done, -1 when it cannot (shape, memory): the caller then runs the definition. */
static int mmspcl__attention_avx512(float *out, int ld_out, const float *q, int ld_q, const float *k, const float *v,
                                    int ld_kv, int n_q, int n_k, int n_heads, int hd, const unsigned char *key_valid) {
    const int ldk = (n_k + 15) & ~15, nthreads = MMSPCL__MAX_THREADS();
    const size_t per = ((size_t)hd + MMSPCL__MO) * (size_t)ldk;
    const float scale = 1.0f / sqrtf((float)hd);
    float *buf;
    int h;
    if (hd % 16 || n_q < 1 || n_k < 1) return -1;
    if (!(buf = (float *)MMSPCL_MALLOC((size_t)nthreads * per * sizeof(float)))) return -1;
    MMSPCL__OMP_FOR
    for (h = 0; h < n_heads; h++) {
        float *kt = buf + (size_t)MMSPCL__THREAD_ID() * per, *s = kt + (size_t)hd * ldk;
        float t[MMSPCL__MO * 64], inv[MMSPCL__MO];
        const float *w[MMSPCL__MO];
        int q0, o, j0, d0, i;
        mmspcl__pack_xt_avx512(kt, ldk, k + (size_t)h * hd, n_k, ld_kv, 0, hd);
        for (q0 = 0; q0 < n_q; q0 += MMSPCL__MO) {
            const int mq = n_q - q0 < MMSPCL__MO ? n_q - q0 : MMSPCL__MO;
            for (o = 0; o < MMSPCL__MO; o++) w[o] = q + (size_t)(q0 + (o < mq ? o : 0)) * ld_q + (size_t)h * hd;
            for (j0 = 0; j0 < ldk; j0 += 64) {
                const int nv = ldk - j0 < 64 ? (ldk - j0) / 16 : 4;
                mmspcl__f32k(nv, t, kt + (size_t)j0 * hd, 16 * nv, w, hd, NULL);
                for (o = 0; o < mq; o++) memcpy(s + (size_t)o * ldk + j0, t + o * 64, (size_t)16 * nv * sizeof(float));
            }
            for (o = 0; o < mq; o++) inv[o] = 1.0f / mmspcl__softmax_row_avx2(s + (size_t)o * ldk, n_k, scale, key_valid);
            for (o = 0; o < MMSPCL__MO; o++) w[o] = s + (size_t)(o < mq ? o : 0) * ldk;
            for (d0 = 0; d0 < hd; d0 += 64) {
                const int nv = hd - d0 < 64 ? (hd - d0) / 16 : 4;
                mmspcl__f32k(nv, t, v + (size_t)h * hd + d0, ld_kv, w, n_k, NULL);
                for (o = 0; o < mq; o++) {
                    float *dst = out + (size_t)(q0 + o) * ld_out + (size_t)h * hd + d0;
                    for (i = 0; i < 16 * nv; i++) dst[i] = t[o * 64 + i] * inv[o];
                }
            }
        }
    }
    MMSPCL_FREE(buf);
    return 0;
}
/* One row of the layer norm: the definition's formula with 8 double partial sums (in place ok). */
static __attribute__((target("avx512f"))) void mmspcl__layernorm_avx512(float *yr, const float *xr, const float *gamma,
                                                                         const float *beta, int dim, float eps) {
    __m512d s = _mm512_setzero_pd();
    double mean, var, t[8];
    float inv;
    int i;
    for (i = 0; i + 8 <= dim; i += 8) s = _mm512_add_pd(s, _mm512_cvtps_pd(_mm256_loadu_ps(xr + i)));
    _mm512_storeu_pd(t, s);
    mean = ((t[0] + t[4]) + (t[1] + t[5])) + ((t[2] + t[6]) + (t[3] + t[7]));
    for (; i < dim; i++) mean += xr[i];
    mean /= dim;
    s = _mm512_setzero_pd();
    for (i = 0; i + 8 <= dim; i += 8) {
        const __m512d d = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(xr + i)), _mm512_set1_pd(mean));
        s = _mm512_add_pd(s, _mm512_mul_pd(d, d));
    }
    _mm512_storeu_pd(t, s);
    var = ((t[0] + t[4]) + (t[1] + t[5])) + ((t[2] + t[6]) + (t[3] + t[7]));
    for (i = dim & ~7; i < dim; i++) var += (xr[i] - mean) * (xr[i] - mean);
    var /= dim;
    inv = (float)(1.0 / sqrt(var + eps));
    {
        const __m512 m = _mm512_set1_ps((float)mean), iv = _mm512_set1_ps(inv);
        for (i = 0; i + 16 <= dim; i += 16) {
            __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(xr + i), m), iv);
            if (gamma) v = _mm512_mul_ps(v, _mm512_loadu_ps(gamma + i));
            if (beta) v = _mm512_add_ps(v, _mm512_loadu_ps(beta + i));
            _mm512_storeu_ps(yr + i, v);
        }
    }
    for (; i < dim; i++)
        yr[i] = ((xr[i] - (float)mean) * inv) * (gamma ? gamma[i] : 1.0f) + (beta ? beta[i] : 0.0f);
}

#ifdef MMSPCL__POP_DIAGNOSTIC
#pragma GCC diagnostic pop
#undef MMSPCL__POP_DIAGNOSTIC
#endif
#endif /* MMSPCL__X86_DISPATCH */

/* ===== ARM NEON (compile-time): the same scheme with 4 rows per vector ====================== */
#if !defined(MMSPCL_NO_SIMD) && defined(__ARM_NEON) && defined(__aarch64__)
#define MMSPCL__NEON 1
#include <arm_neon.h>
#ifndef MMSPCL__R8 /* defined in the x86 section, which an ARM build skips */
#define MMSPCL__R8(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7)
#endif

static int32_t mmspcl__word(const int8_t *p) { int32_t v; memcpy(&v, p, 4); return v; }

static void mmspcl__pack_xt_neon(float *xt, int ldt, const float *x, int rows, int n_in, int k0, int kc) {
    int r, k;
    for (r = 0; r < ldt; r++)
        for (k = 0; k < kc; k++) xt[(size_t)k * ldt + r] = r < rows ? x[(size_t)r * n_in + k0 + k] : 0.0f;
}

/* 8 outputs x 2 vectors of 4 rows: t[o][8]. */
static void mmspcl__f32k_neon(float *t, const float *xt, int ldt, const float *const *w, int kc) {
    int k;
#define MMSPCL__N_DECL(o) float32x4_t a##o##0 = vdupq_n_f32(0.0f), a##o##1 = a##o##0; const float *w##o = w[o];
    MMSPCL__R8(MMSPCL__N_DECL)
    for (k = 0; k < kc; k++) {
        const float32x4_t x0 = vld1q_f32(xt + (size_t)k * ldt), x1 = vld1q_f32(xt + (size_t)k * ldt + 4);
#define MMSPCL__N_FMA(o) a##o##0 = vfmaq_n_f32(a##o##0, x0, w##o[k]); a##o##1 = vfmaq_n_f32(a##o##1, x1, w##o[k]);
        MMSPCL__R8(MMSPCL__N_FMA)
    }
#define MMSPCL__N_ST(o) vst1q_f32(t + o * 8, a##o##0); vst1q_f32(t + o * 8 + 4, a##o##1);
    MMSPCL__R8(MMSPCL__N_ST)
#undef MMSPCL__N_DECL
#undef MMSPCL__N_FMA
#undef MMSPCL__N_ST
}

static void mmspcl__store_cols_neon(float *out, int ld, const float *t, int ts, int mr, int mo, const float *bias, int acc) {
    int r, o;
    for (r = 0; r < mr; r++)
        for (o = 0; o < mo; o++) {
            if (acc) out[(size_t)r * ld + o] += t[o * ts + r];
            else out[(size_t)r * ld + o] = t[o * ts + r] + (bias ? bias[o] : 0.0f);
        }
}

static mmspcl_status mmspcl__linear_f32_neon(float *out, const float *x, int rows, int n_in, const mmspcl_tensor *W,
                                             const float *bias) {
    const int n_out = (int)W->ne[0], ldt = (rows + 7) & ~7, nthreads = MMSPCL__MAX_THREADS();
    const int kcmax = n_in <= MMSPCL__KC * 3 / 2 ? n_in : MMSPCL__KC, n_groups = (n_out + 7) / 8;
    const size_t wide = W->dtype == MMSPCL_F32 ? 0 : (size_t)8 * (size_t)n_in;
    float *xt = (float *)MMSPCL_MALLOC(((size_t)ldt * (size_t)kcmax + (size_t)nthreads * wide) * sizeof(float));
    int k0;
    if (!xt) return MMSPCL_ERR_NOMEM;
    for (k0 = 0; k0 < n_in; k0 += kcmax) {
        const int kc = n_in - k0 < kcmax ? n_in - k0 : kcmax;
        int g;
        mmspcl__pack_xt_neon(xt, ldt, x, rows, n_in, k0, kc);
        MMSPCL__OMP_FOR
        for (g = 0; g < n_groups; g++) {
            const int o0 = g * 8, mo = n_out - o0 < 8 ? n_out - o0 : 8;
            const float *w[8];
            float t[8 * 8];
            int o, r0;
            for (o = 0; o < 8; o++) {
                const int oo = o0 + (o < mo ? o : 0);
                if (W->dtype == MMSPCL_F32) w[o] = (const float *)W->data + (size_t)oo * n_in + k0;
                else {
                    float *d = xt + (size_t)ldt * (size_t)kcmax + (size_t)MMSPCL__THREAD_ID() * wide + (size_t)o * n_in;
                    mmspcl_dequantize_row(W->dtype, (const unsigned char *)W->data + (size_t)oo * mmspcl_dtype_row_size(W->dtype, n_in), d, n_in);
                    w[o] = d + k0;
                }
            }
            for (r0 = 0; r0 < rows; r0 += 8) {
                mmspcl__f32k_neon(t, xt + r0, ldt, w, kc);
                mmspcl__store_cols_neon(out + (size_t)r0 * n_out + o0, n_out, t, 8, rows - r0 < 8 ? rows - r0 : 8, mo,
                                        bias ? bias + o0 : NULL, k0 > 0);
            }
        }
    }
    MMSPCL_FREE(xt);
    return MMSPCL_OK;
}

/* Quantized activations as in the definition (vcvtnq rounds to nearest even, like lrintf):
   xq[(k/4)][ldt][4], xd[b][ldt]. */
static void mmspcl__pack_xq_neon(int8_t *xq, float *xd, int ldt, const float *x, int rows, int n_in) {
    const int nb = n_in / MMSPCL_QBLOCK;
    int r, b, g, i;
    for (r = 0; r < ldt; r++)
        for (b = 0; b < nb; b++) {
            int8_t q[MMSPCL_QBLOCK];
            float d = 0.0f;
            if (r < rows) {
                const float *xb = x + (size_t)r * n_in + 32 * b;
                float32x4_t v[8], m = vdupq_n_f32(0.0f), id;
                for (i = 0; i < 8; i++) { v[i] = vld1q_f32(xb + 4 * i); m = vmaxq_f32(m, vabsq_f32(v[i])); }
                d = vmaxvq_f32(m) / 127.0f;
                id = vdupq_n_f32(d != 0.0f ? 1.0f / d : 0.0f);
                for (i = 0; i < 8; i += 2) {
                    const int16x8_t h = vcombine_s16(vqmovn_s32(vcvtnq_s32_f32(vmulq_f32(v[i], id))),
                                                     vqmovn_s32(vcvtnq_s32_f32(vmulq_f32(v[i + 1], id))));
                    vst1_s8(q + 4 * i, vqmovn_s16(h));
                }
            } else {
                memset(q, 0, sizeof q);
            }
            for (g = 0; g < MMSPCL_QBLOCK / 4; g++) memcpy(xq + ((size_t)(b * 8 + g) * ldt + r) * 4, q + 4 * g, 4);
            xd[(size_t)b * ldt + r] = d;
        }
}

/* 4 outputs x 2 vectors of 4 rows per micro-kernel; dot: sdot (ARMv8.2 dot product) or not. */
static void mmspcl__qk_neon(float *t, const int8_t *xq, const float *xd, int ldt, const int8_t *const *w,
                            const float *const *ws, int nb, int dot) {
    float32x4_t f[4][2];
    int b, g, o, v;
    for (o = 0; o < 4; o++) f[o][0] = f[o][1] = vdupq_n_f32(0.0f);
    for (b = 0; b < nb; b++) {
        int32x4_t i[4][2];
        for (o = 0; o < 4; o++) i[o][0] = i[o][1] = vdupq_n_s32(0);
#ifdef __ARM_FEATURE_DOTPROD
        if (dot) {
            int h;
            for (h = 0; h < 2; h++) {
                int8x16_t wv[4];
                for (o = 0; o < 4; o++) wv[o] = vld1q_s8(w[o] + 32 * b + 16 * h);
                for (v = 0; v < 2; v++) {
                    const int8_t *xp = xq + ((size_t)(8 * b + 4 * h) * ldt + 4 * v) * 4;
                    const int8x16_t x0 = vld1q_s8(xp), x1 = vld1q_s8(xp + (size_t)ldt * 4);
                    const int8x16_t x2 = vld1q_s8(xp + (size_t)ldt * 8), x3 = vld1q_s8(xp + (size_t)ldt * 12);
                    for (o = 0; o < 4; o++) {
                        i[o][v] = vdotq_laneq_s32(i[o][v], x0, wv[o], 0);
                        i[o][v] = vdotq_laneq_s32(i[o][v], x1, wv[o], 1);
                        i[o][v] = vdotq_laneq_s32(i[o][v], x2, wv[o], 2);
                        i[o][v] = vdotq_laneq_s32(i[o][v], x3, wv[o], 3);
                    }
                }
            }
        } else
#endif
        {
            (void)dot;
            for (g = 0; g < 8; g++)
                for (v = 0; v < 2; v++) {
                    const int8x16_t x = vld1q_s8(xq + ((size_t)(8 * b + g) * ldt + 4 * v) * 4);
                    for (o = 0; o < 4; o++) {
                        const int8x16_t wb = vreinterpretq_s8_s32(vdupq_n_s32(mmspcl__word(w[o] + 32 * b + 4 * g)));
                        const int16x8_t p = vpaddq_s16(vmull_s8(vget_low_s8(x), vget_low_s8(wb)), vmull_high_s8(x, wb));
                        i[o][v] = vpadalq_s16(i[o][v], p);
                    }
                }
        }
        for (v = 0; v < 2; v++) {
            const float32x4_t d = vld1q_f32(xd + (size_t)b * ldt + 4 * v);
            for (o = 0; o < 4; o++) f[o][v] = vfmaq_f32(f[o][v], vcvtq_f32_s32(i[o][v]), vmulq_n_f32(d, ws[o][b]));
        }
    }
    for (o = 0; o < 4; o++) { vst1q_f32(t + o * 8, f[o][0]); vst1q_f32(t + o * 8 + 4, f[o][1]); }
}

static mmspcl_status mmspcl__linear_q_neon(float *out, const float *x, int rows, int n_in, const mmspcl_tensor *W,
                                           const float *bias, int dot) {
    const int n_out = (int)W->ne[0], nb = n_in / MMSPCL_QBLOCK, nthreads = MMSPCL__MAX_THREADS();
    const int ldt = (rows + 7) & ~7, n_groups = (n_out + 3) / 4;
    const size_t xbytes = (size_t)ldt * (size_t)n_in, sbytes = (size_t)ldt * (size_t)nb * 4;
    const size_t per_thread = (size_t)4 * ((size_t)n_in + (size_t)nb * 4);
    unsigned char *buf = (unsigned char *)MMSPCL_MALLOC(xbytes + sbytes + (size_t)nthreads * per_thread + 64);
    int8_t *xq;
    float *xd;
    int g;
    if (!buf) return MMSPCL_ERR_NOMEM;
    xd = (float *)buf;
    xq = (int8_t *)(buf + sbytes);
    mmspcl__pack_xq_neon(xq, xd, ldt, x, rows, n_in);
    MMSPCL__OMP_FOR
    for (g = 0; g < n_groups; g++) {
        const int o0 = g * 4, mo = n_out - o0 < 4 ? n_out - o0 : 4;
        unsigned char *tb = buf + xbytes + sbytes + (size_t)MMSPCL__THREAD_ID() * per_thread;
        float *ws_buf = (float *)tb;
        int8_t *wq = (int8_t *)(tb + (size_t)4 * nb * 4);
        const int8_t *w[4];
        const float *ws[4];
        float t[4 * 8];
        int o, r0, b;
        for (o = 0; o < mo; o++) {
            const unsigned char *src = (const unsigned char *)W->data + (size_t)(o0 + o) * mmspcl_dtype_row_size(W->dtype, n_in);
            for (b = 0; b < nb; b++) ws_buf[o * nb + b] = mmspcl__weight_block(src, W->dtype, b, wq + (size_t)o * n_in + 32 * b);
        }
        for (o = 0; o < 4; o++) {
            w[o] = wq + (size_t)(o < mo ? o : 0) * n_in;
            ws[o] = ws_buf + (size_t)(o < mo ? o : 0) * nb;
        }
        for (r0 = 0; r0 < rows; r0 += 8) {
            mmspcl__qk_neon(t, xq + (size_t)r0 * 4, xd + r0, ldt, w, ws, nb, dot);
            mmspcl__store_cols_neon(out + (size_t)r0 * n_out + o0, n_out, t, 8, rows - r0 < 8 ? rows - r0 : 8, mo,
                                    bias ? bias + o0 : NULL, 0);
        }
    }
    MMSPCL_FREE(buf);
    return MMSPCL_OK;
}
#endif /* NEON */

/* ===== Which path mmspcl_linear takes ====================================================== */
mmspcl_status mmspcl_linear_path(float *out, const float *x, int rows, int n_in, const mmspcl_tensor *W,
                                 const float *bias, mmspcl_kernel_path path) {
    const int quant = W->dtype == MMSPCL_Q8_0 || W->dtype == MMSPCL_Q4_0;
    if (W->ndim != 2 || W->ne[1] != n_in || rows < 0 || n_in < 1 || mmspcl_dtype_row_size(W->dtype, n_in) == 0 ||
        W->dtype == MMSPCL_I32 || W->ne[0] > 0x7fffffff)
        return MMSPCL_ERR_ARG;
    if (rows == 0 || W->ne[0] == 0) return MMSPCL_OK;
#ifdef MMSPCL__X86_DISPATCH
    if (path != MMSPCL_PATH_SCALAR) {
        const int f = mmspcl__x86_features();
        if (path == MMSPCL_PATH_NEON || path == MMSPCL_PATH_NEON_DOTPROD) return MMSPCL_ERR_UNSUPPORTED;
        if (path == MMSPCL_PATH_AUTO) {
            if (quant) {
                if (f & MMSPCL__CPU_VNNI512) return mmspcl__linear_q_x86(out, x, rows, n_in, W, bias, 2);
#ifdef MMSPCL__HAVE_AVXVNNI
                if (f & MMSPCL__CPU_AVXVNNI) return mmspcl__linear_q_x86(out, x, rows, n_in, W, bias, 1);
#endif
                if (f & MMSPCL__CPU_AVX2) return mmspcl__linear_q_x86(out, x, rows, n_in, W, bias, 0);
            } else {
                if (f & MMSPCL__CPU_AVX512) return mmspcl__linear_f32_avx512(out, x, rows, n_in, W, bias);
                if (f & MMSPCL__CPU_AVX2) return mmspcl__linear_f32_avx2(out, x, rows, n_in, W, bias);
            }
        } else if (path == MMSPCL_PATH_AVX512) {
            if (!(f & (quant ? MMSPCL__CPU_VNNI512 : MMSPCL__CPU_AVX512))) return MMSPCL_ERR_UNSUPPORTED;
            return quant ? mmspcl__linear_q_x86(out, x, rows, n_in, W, bias, 2)
                         : mmspcl__linear_f32_avx512(out, x, rows, n_in, W, bias);
        } else if (path == MMSPCL_PATH_AVXVNNI) {
#ifdef MMSPCL__HAVE_AVXVNNI
            if (!(f & MMSPCL__CPU_AVXVNNI)) return MMSPCL_ERR_UNSUPPORTED;
            return quant ? mmspcl__linear_q_x86(out, x, rows, n_in, W, bias, 1)
                         : mmspcl__linear_f32_avx2(out, x, rows, n_in, W, bias);
#else
            return MMSPCL_ERR_UNSUPPORTED;
#endif
        } else if (path == MMSPCL_PATH_AVX2) {
            if (!(f & MMSPCL__CPU_AVX2)) return MMSPCL_ERR_UNSUPPORTED;
            return quant ? mmspcl__linear_q_x86(out, x, rows, n_in, W, bias, 0)
                         : mmspcl__linear_f32_avx2(out, x, rows, n_in, W, bias);
        } else {
            return MMSPCL_ERR_ARG;
        }
    }
#elif defined(MMSPCL__NEON)
    if (path != MMSPCL_PATH_SCALAR) {
        int dot = 0;
#ifdef __ARM_FEATURE_DOTPROD
        dot = path != MMSPCL_PATH_NEON;
#else
        if (path == MMSPCL_PATH_NEON_DOTPROD) return MMSPCL_ERR_UNSUPPORTED;
#endif
        if (path != MMSPCL_PATH_AUTO && path != MMSPCL_PATH_NEON && path != MMSPCL_PATH_NEON_DOTPROD)
            return path < MMSPCL_PATH_COUNT ? MMSPCL_ERR_UNSUPPORTED : MMSPCL_ERR_ARG;
        return quant ? mmspcl__linear_q_neon(out, x, rows, n_in, W, bias, dot)
                     : mmspcl__linear_f32_neon(out, x, rows, n_in, W, bias);
    }
#else
    if (path != MMSPCL_PATH_SCALAR && path != MMSPCL_PATH_AUTO)
        return path < MMSPCL_PATH_COUNT ? MMSPCL_ERR_UNSUPPORTED : MMSPCL_ERR_ARG;
#endif
    if (quant) return mmspcl__linear_q_scalar(out, x, rows, n_in, W, bias);
    {
        float *wide = (float *)MMSPCL_MALLOC((size_t)MMSPCL__MAX_THREADS() * (size_t)n_in * sizeof(float));
        if (!wide) return MMSPCL_ERR_NOMEM;
        mmspcl__linear_scalar(out, x, rows, n_in, W, bias, wide);
        MMSPCL_FREE(wide);
        return MMSPCL_OK;
    }
}

mmspcl_status mmspcl_linear(float *out, const float *x, int rows, int n_in, const mmspcl_tensor *W,
                            const float *bias) {
    return mmspcl_linear_path(out, x, rows, n_in, W, bias, MMSPCL_PATH_AUTO);
}

/* Definition: mean and biased variance in double, then ((x - mean) * inv) * gamma + beta in float;
   AVX-512 sums in 8 double lanes. */
void mmspcl_layernorm(float *y, const float *x, const float *gamma, const float *beta, int rows,
                      int dim, float eps) {
    int r;
#ifdef MMSPCL__X86_DISPATCH
    const int simd = (mmspcl__x86_features() & MMSPCL__CPU_AVX512) != 0;
#endif
MMSPCL__OMP_FOR
    for (r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * (size_t)dim;
        float *yr = y + (size_t)r * (size_t)dim;
        double mean = 0.0, var = 0.0;
        float inv;
        int i;
#ifdef MMSPCL__X86_DISPATCH
        if (simd) { mmspcl__layernorm_avx512(yr, xr, gamma, beta, dim, eps); continue; }
#endif
        for (i = 0; i < dim; i++) mean += xr[i];
        mean /= dim;
        for (i = 0; i < dim; i++) { double d = xr[i] - mean; var += d * d; }
        var /= dim;                          /* biased variance, as torch.nn.LayerNorm */
        inv = (float)(1.0 / sqrt(var + eps));
        for (i = 0; i < dim; i++)
            yr[i] = ((xr[i] - (float)mean) * inv) * (gamma ? gamma[i] : 1.0f) + (beta ? beta[i] : 0.0f);
    }
}

/* GELU and quick GELU: the scalar loops are the definition; x86 with AVX2 evaluates erf / exp
   with polynomials (within 2e-7 absolute of erff, about 1 ulp of expf). Elementwise, so any
   split over threads gives the same bits. */
void mmspcl_gelu(float *x, size_t n) {
    size_t i = 0;
#ifdef MMSPCL__X86_DISPATCH
    if (mmspcl__x86_features() & MMSPCL__CPU_AVX2) i = mmspcl__act_avx2(x, n, 0);
#endif
    for (; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

void mmspcl_quick_gelu(float *x, size_t n) {
    size_t i = 0;
#ifdef MMSPCL__X86_DISPATCH
    if (mmspcl__x86_features() & MMSPCL__CPU_AVX2) i = mmspcl__act_avx2(x, n, 1);
#endif
    for (; i < n; i++) x[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
}

void mmspcl_softmax(float *x, int n) {
    float mx = -INFINITY, sum = 0.0f;
    int i;
#ifdef MMSPCL__X86_DISPATCH
    if (mmspcl__x86_features() & MMSPCL__CPU_AVX2) {
        sum = mmspcl__softmax_row_avx2(x, n, 1.0f, NULL);
        for (i = 0; i < n; i++) x[i] /= sum;
        return;
    }
#endif
    for (i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    for (i = 0; i < n; i++) { x[i] = expf(x[i] - mx); sum += x[i]; }
    for (i = 0; i < n; i++) x[i] /= sum;
}

size_t mmspcl_attention_scratch(int n_k) { return (size_t)MMSPCL__MAX_THREADS() * (size_t)n_k; }

void mmspcl_attention(float *out, int ld_out, const float *q, int ld_q, const float *k,
                      const float *v, int ld_kv, int n_q, int n_k, int n_heads, int head_dim,
                      const unsigned char *key_valid, float *scratch) {
    const float scale = 1.0f / sqrtf((float)head_dim);
    int task;
#ifdef MMSPCL__X86_DISPATCH
    if ((mmspcl__x86_features() & MMSPCL__CPU_AVX512) &&
        mmspcl__attention_avx512(out, ld_out, q, ld_q, k, v, ld_kv, n_q, n_k, n_heads, head_dim, key_valid) == 0)
        return;
#endif
    /* The definition: one task = one (head, query) pair */
MMSPCL__OMP_FOR
    for (task = 0; task < n_heads * n_q; task++) {
        int h = task / n_q, i = task % n_q, j, d;
        float *p = scratch + (size_t)MMSPCL__THREAD_ID() * (size_t)n_k;
        const float *qi = q + (size_t)i * (size_t)ld_q + h * head_dim;
        float *oi = out + (size_t)i * (size_t)ld_out + h * head_dim;
        for (j = 0; j < n_k; j++)
            p[j] = key_valid && !key_valid[j] ? -INFINITY
                 : mmspcl_dot_f32(qi, k + (size_t)j * (size_t)ld_kv + h * head_dim, head_dim) * scale;
        mmspcl_softmax(p, n_k);
        for (d = 0; d < head_dim; d++) oi[d] = 0.0f;
        for (j = 0; j < n_k; j++) {
            const float *vj = v + (size_t)j * (size_t)ld_kv + h * head_dim;
            if (p[j] == 0.0f) continue;
            for (d = 0; d < head_dim; d++) oi[d] += p[j] * vj[d];
        }
    }
}
