/* ---------------------------------------------------------------------------------------------
   Kernels (scalar definitions; OpenMP over independent outputs)
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

/* ---- Linear layers: y = x W^T + b ------------------------------------------------------------
   The scalar path (mmspcl__linear_scalar) is the definition. The SIMD paths pack NR columns of
   W (widened to f32 whatever the stored dtype) into a panel laid out [k][NR], then a micro-kernel
   keeps an MR x NR tile of outputs in registers while it walks k once, one FMA per output per k.
   Work is split over panels, and each output's sum runs over k in the same order whatever the
   thread count, so results are bit-identical for any number of threads. */

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

/* Panel of columns n0 .. n0+nr-1 of W^T: panel[k * NR + j] = W[n0 + j][k], zero past nr.
   Rows are copied 16 values at a time so reads and writes both stay within a few cache lines.
   rows: scratch for NR widened rows (n_in * NR floats) when W is not f32. */
static void mmspcl__pack_panel(float *panel, int NR, const mmspcl_tensor *W, int n0, int nr, int n_in,
                               float *rows) {
    const size_t row_bytes = mmspcl_dtype_row_size(W->dtype, n_in);
    const float *src[64];
    int j, k, kk;
    for (j = 0; j < NR; j++) {
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
        for (j = 0; j < NR; j++)
            for (kk = 0; kk < kn; kk++) panel[(size_t)(k + kk) * NR + j] = src[j] ? src[j][k + kk] : 0.0f;
    }
}

#if !defined(MMSPCL_NO_SIMD) && (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define MMSPCL__X86_DISPATCH 1
#include <immintrin.h>

/* x packed in blocks of MR rows, [block][k][MR], zero rows past the end: broadcasts then read
   consecutive floats instead of MR rows a whole row apart (which alias in L1 when n_in * 4 is a
   multiple of 4 KiB). */
static void mmspcl__pack_rows(float *xp, const float *x, int rows, int n_in, int MR) {
    int r0, r, k;
    for (r0 = 0; r0 < rows; r0 += MR)
        for (k = 0; k < n_in; k++)
            for (r = 0; r < MR; r++)
                xp[((size_t)(r0 / MR) * n_in + k) * MR + r] = r0 + r < rows ? x[(size_t)(r0 + r) * n_in + k] : 0.0f;
}

/* Stores rows < mr and columns < nr of a tile held in tmp[MR][NR]. */
static void mmspcl__store_tile(float *out, int ld_out, const float *tmp, int NR, int mr, int nr) {
    int r, j;
    for (r = 0; r < mr; r++)
        for (j = 0; j < nr; j++) out[(size_t)r * ld_out + j] = tmp[r * NR + j];
}

#define MMSPCL__REP6(M) M(0) M(1) M(2) M(3) M(4) M(5)
#define MMSPCL__REP12(M) MMSPCL__REP6(M) M(6) M(7) M(8) M(9) M(10) M(11)

/* AVX-512: a 12 x 32 tile in 24 zmm accumulators. */
#define MMSPCL__AVX512_MR 12
#define MMSPCL__AVX512_NR 32
static __attribute__((target("avx512f,fma"))) void mmspcl__tile_avx512(
    float *out, int ld_out, const float *xp, int n_in, const float *panel, const float *bias, int mr, int nr) {
    float tmp[12 * 32], b[32];
    int j, k;
    for (j = 0; j < 32; j++) b[j] = bias && j < nr ? bias[j] : 0.0f;
    {
        const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#define MMSPCL__DECL(r) __m512 a##r##_0 = b0, a##r##_1 = b1;
        MMSPCL__REP12(MMSPCL__DECL)
#undef MMSPCL__DECL
        for (k = 0; k < n_in; k++) {
            const __m512 w0 = _mm512_loadu_ps(panel + (size_t)k * 32), w1 = _mm512_loadu_ps(panel + (size_t)k * 32 + 16);
            const float *xk = xp + (size_t)k * 12;
#define MMSPCL__FMA(r) { const __m512 xv = _mm512_set1_ps(xk[r]); \
            a##r##_0 = _mm512_fmadd_ps(xv, w0, a##r##_0); a##r##_1 = _mm512_fmadd_ps(xv, w1, a##r##_1); }
            MMSPCL__REP12(MMSPCL__FMA)
#undef MMSPCL__FMA
        }
#define MMSPCL__STORE(r) _mm512_storeu_ps(tmp + r * 32, a##r##_0); _mm512_storeu_ps(tmp + r * 32 + 16, a##r##_1);
        MMSPCL__REP12(MMSPCL__STORE)
#undef MMSPCL__STORE
    }
    mmspcl__store_tile(out, ld_out, tmp, 32, mr, nr);
}

/* AVX2: a 6 x 16 tile in 12 ymm accumulators. */
#define MMSPCL__AVX2_MR 6
#define MMSPCL__AVX2_NR 16
static __attribute__((target("avx2,fma"))) void mmspcl__tile_avx2(
    float *out, int ld_out, const float *xp, int n_in, const float *panel, const float *bias, int mr, int nr) {
    float tmp[6 * 16], b[16];
    int j, k;
    for (j = 0; j < 16; j++) b[j] = bias && j < nr ? bias[j] : 0.0f;
    {
        const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#define MMSPCL__DECL(r) __m256 a##r##_0 = b0, a##r##_1 = b1;
        MMSPCL__REP6(MMSPCL__DECL)
#undef MMSPCL__DECL
        for (k = 0; k < n_in; k++) {
            const __m256 w0 = _mm256_loadu_ps(panel + (size_t)k * 16), w1 = _mm256_loadu_ps(panel + (size_t)k * 16 + 8);
            const float *xk = xp + (size_t)k * 6;
#define MMSPCL__FMA(r) { const __m256 xv = _mm256_broadcast_ss(xk + r); \
            a##r##_0 = _mm256_fmadd_ps(xv, w0, a##r##_0); a##r##_1 = _mm256_fmadd_ps(xv, w1, a##r##_1); }
            MMSPCL__REP6(MMSPCL__FMA)
#undef MMSPCL__FMA
        }
#define MMSPCL__STORE(r) _mm256_storeu_ps(tmp + r * 16, a##r##_0); _mm256_storeu_ps(tmp + r * 16 + 8, a##r##_1);
        MMSPCL__REP6(MMSPCL__STORE)
#undef MMSPCL__STORE
    }
    mmspcl__store_tile(out, ld_out, tmp, 16, mr, nr);
}

/* 2: AVX-512, 1: AVX2+FMA, 0: scalar. Read once per call: cheap, and no global state. */
static int mmspcl__x86_level(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
    return 0;
}

static mmspcl_status mmspcl__linear_simd(float *out, const float *x, int rows, int n_in,
                                         const mmspcl_tensor *W, const float *bias, int level) {
    const int n_out = (int)W->ne[0];
    const int NR = level == 2 ? MMSPCL__AVX512_NR : MMSPCL__AVX2_NR, MR = level == 2 ? MMSPCL__AVX512_MR : MMSPCL__AVX2_MR;
    const int n_panels = (n_out + NR - 1) / NR, n_blocks = (rows + MR - 1) / MR, nthreads = MMSPCL__MAX_THREADS();
    /* per thread: one panel and NR widened weight rows (n_in x NR each); shared: the packed x */
    const size_t per_thread = (size_t)n_in * (size_t)NR * 2 + 16;
    float *buf = (float *)MMSPCL_MALLOC(((size_t)nthreads * per_thread + (size_t)n_blocks * MR * n_in) * sizeof(float));
    float *xp;
    int p;
    if (!buf) return MMSPCL_ERR_NOMEM;
    xp = buf + (size_t)nthreads * per_thread;
    mmspcl__pack_rows(xp, x, rows, n_in, MR);
    MMSPCL__OMP_FOR
    for (p = 0; p < n_panels; p++) {
        float *panel = buf + (size_t)MMSPCL__THREAD_ID() * per_thread, *row = panel + (size_t)n_in * NR;
        const int n0 = p * NR, nr = n_out - n0 < NR ? n_out - n0 : NR;
        const float *b = bias ? bias + n0 : NULL;
        int blk;
        mmspcl__pack_panel(panel, NR, W, n0, nr, n_in, row);
        for (blk = 0; blk < n_blocks; blk++) {
            const int r0 = blk * MR, mr = rows - r0 < MR ? rows - r0 : MR;
            const float *xb = xp + (size_t)blk * MR * n_in;
            if (level == 2) mmspcl__tile_avx512(out + (size_t)r0 * n_out + n0, n_out, xb, n_in, panel, b, mr, nr);
            else mmspcl__tile_avx2(out + (size_t)r0 * n_out + n0, n_out, xb, n_in, panel, b, mr, nr);
        }
    }
    MMSPCL_FREE(buf);
    return MMSPCL_OK;
}
#endif

/* Which path mmspcl_linear takes: MMSPCL_LINEAR_AUTO picks the best the CPU has. */
mmspcl_status mmspcl_linear_path(float *out, const float *x, int rows, int n_in, const mmspcl_tensor *W,
                                 const float *bias, mmspcl_kernel_path path) {
    float *wide;
    if (W->ndim != 2 || W->ne[1] != n_in || rows < 0 || mmspcl_dtype_row_size(W->dtype, n_in) == 0)
        return MMSPCL_ERR_ARG;
#ifdef MMSPCL__X86_DISPATCH
    if (path != MMSPCL_PATH_SCALAR) {
        int level = mmspcl__x86_level();
        if (path == MMSPCL_PATH_AVX2 && level >= 1) level = 1;
        else if (path == MMSPCL_PATH_AVX512 && level < 2) return MMSPCL_ERR_UNSUPPORTED;
        else if (path == MMSPCL_PATH_AVX2 && level < 1) return MMSPCL_ERR_UNSUPPORTED;
        if (level > 0) return mmspcl__linear_simd(out, x, rows, n_in, W, bias, level);
    }
#else
    if (path != MMSPCL_PATH_SCALAR && path != MMSPCL_PATH_AUTO) return MMSPCL_ERR_UNSUPPORTED;
#endif
    wide = (float *)MMSPCL_MALLOC((size_t)MMSPCL__MAX_THREADS() * (size_t)n_in * sizeof(float));
    if (!wide) return MMSPCL_ERR_NOMEM;
    mmspcl__linear_scalar(out, x, rows, n_in, W, bias, wide);
    MMSPCL_FREE(wide);
    return MMSPCL_OK;
}

mmspcl_status mmspcl_linear(float *out, const float *x, int rows, int n_in, const mmspcl_tensor *W,
                            const float *bias) {
    return mmspcl_linear_path(out, x, rows, n_in, W, bias, MMSPCL_PATH_AUTO);
}

void mmspcl_layernorm(float *y, const float *x, const float *gamma, const float *beta, int rows,
                      int dim, float eps) {
    int r;
MMSPCL__OMP_FOR
    for (r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * (size_t)dim;
        float *yr = y + (size_t)r * (size_t)dim;
        double mean = 0.0, var = 0.0;
        float inv;
        int i;
        for (i = 0; i < dim; i++) mean += xr[i];
        mean /= dim;
        for (i = 0; i < dim; i++) { double d = xr[i] - mean; var += d * d; }
        var /= dim;                          /* biased variance, as torch.nn.LayerNorm */
        inv = (float)(1.0 / sqrt(var + eps));
        for (i = 0; i < dim; i++)
            yr[i] = ((xr[i] - (float)mean) * inv) * (gamma ? gamma[i] : 1.0f) + (beta ? beta[i] : 0.0f);
    }
}

void mmspcl_gelu(float *x, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

void mmspcl_quick_gelu(float *x, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
}

void mmspcl_softmax(float *x, int n) {
    float mx = -INFINITY, sum = 0.0f;
    int i;
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
    /* one task = one (head, query) pair */
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
