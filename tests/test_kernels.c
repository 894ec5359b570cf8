/* Kernels: every SIMD path of mmspcl_linear against the scalar definition (f32, f16, bf16, q8_0,
   q4_0 weights; odd shapes), bit-identical results for 1 and 2 threads, f32 weights in panels
   bit-identical to the 2-D weight on every path, and layer norm, GELU and softmax against
   double-precision formulas; mmspcl_gemm_f32 (check_gemm) against a double sum and its paths.
   Float weights (f32, f16): |simd - scalar| <= 1e-5 * sum_k |x_k w_k|.
   bf16 weights (bf16 x bf16 -> f32): every x86 path gives exactly the scalar definition's bits; the
   definition is within the bf16 rounding of x of the exact product:
   |scalar - exact| <= 2^-9 sum |x w| + 1e-5 * sum |x w| (w: the bf16 values).
   q8_0 / q4_0 / q4_k / q5_k weights (integer path): every SIMD path gives exactly the scalar definition's bits;
   the definition is within the activation quantization error of the exact product:
   |scalar - exact| <= sum_blocks (max|x| / 254) sum |w| + 1e-5 * sum |x w|. */
#define MMSPCL_IMPLEMENTATION
#include "mmspcl.h"
#include "tests/test.h"
#include <stdlib.h>
#include <string.h>

static int tested[6], tested_packed, edges;

static float frand(unsigned *s) { *s = *s * 1664525u + 1013904223u; return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f; }

static void check_linear(int rows, int n_in, int n_out, mmspcl_dtype dt, unsigned seed) {
    static const mmspcl_kernel_path paths[] = {MMSPCL_PATH_AUTO, MMSPCL_PATH_AVX2, MMSPCL_PATH_AVX512, MMSPCL_PATH_NEON,
                                               MMSPCL_PATH_AVXVNNI, MMSPCL_PATH_NEON_DOTPROD};
    static const char *names[] = {"auto", "avx2", "avx512", "neon", "avxvnni", "neon-dotprod"};
    const int quant = dt == MMSPCL_Q8_0 || dt == MMSPCL_Q4_0 || dt == MMSPCL_Q4_K || dt == MMSPCL_Q5_K, exact = quant || dt == MMSPCL_BF16;
    size_t rb = mmspcl_dtype_row_size(dt, n_in), i;
    float *x = (float *)malloc(sizeof(float) * rows * n_in), *w = (float *)malloc(sizeof(float) * n_out * n_in);
    float *wd = (float *)malloc(sizeof(float) * n_out * n_in), *bias = (float *)malloc(sizeof(float) * n_out);
    float *ref = (float *)malloc(sizeof(float) * rows * n_out), *got = (float *)malloc(sizeof(float) * rows * n_out);
    unsigned char *wq = (unsigned char *)malloc(rb * n_out);
    mmspcl_tensor W;
    int o, r, k, p;
    for (i = 0; i < (size_t)rows * n_in; i++) x[i] = frand(&seed);
    for (i = 0; i < (size_t)n_out * n_in; i++) w[i] = frand(&seed);
    for (o = 0; o < n_out; o++) bias[o] = frand(&seed);
    if (edges) {   /* blocks of 32 scaled: zero blocks, tiny ones (the activation scale's clamp at 2^-100), large ones */
        static const float xs[] = {0.0f, 1e-36f, 1e-30f, 1.0f, 3e-3f, 1e25f, 50.0f}, ws[] = {0.0f, 1.0f, 1e-3f, 30.0f};
        for (i = 0; i < (size_t)rows * n_in; i += 32) for (k = 0; k < 32; k++) x[i + k] *= xs[(i / 32 + seed) % 7];
        for (i = 0; i < (size_t)n_out * n_in; i += 32) for (k = 0; k < 32; k++) w[i + k] *= ws[(i / 32 + seed / 3) % 4];
    }
    for (o = 0; o < n_out; o++) {
        mmspcl_quantize_row(dt, w + (size_t)o * n_in, wq + o * rb, n_in);
        mmspcl_dequantize_row(dt, wq + o * rb, wd + (size_t)o * n_in, n_in);
    }
    memset(&W, 0, sizeof W);
    W.dtype = dt; W.ndim = 2; W.ne[0] = n_out; W.ne[1] = n_in; W.data = wq; W.nbytes = rb * n_out;
    CHECK(mmspcl_linear_path(ref, x, rows, n_in, &W, bias, MMSPCL_PATH_SCALAR) == MMSPCL_OK, "scalar path");
    {   /* the scalar path itself against a double-precision sum */
        double worst = 0;
        for (r = 0; r < rows; r++)
            for (o = 0; o < n_out; o++) {
                double s = bias[o], a = fabs(bias[o]), qerr = 0;
                for (k = 0; k < n_in; k++) { s += (double)x[r * n_in + k] * wd[(size_t)o * n_in + k]; a += fabs((double)x[r * n_in + k] * wd[(size_t)o * n_in + k]); }
                if (quant)  /* activation rounding: at most half a step per value, the step being the
                               power of two 2^e >= max|x| / 127 of the definition (below 2 max|x| / 127) */
                    for (k = 0; k < n_in; k += 32) {
                        double amax = 0, sw = 0, step;
                        int j, e = 0;
                        for (j = 0; j < 32; j++) { amax = fmax(amax, fabs(x[r * n_in + k + j])); sw += fabs(wd[(size_t)o * n_in + k + j]); }
                        while (amax > 0 && e < 100 && ldexp(127, e) < amax) e++;
                        while (amax > 0 && e > -100 && ldexp(127, e - 1) >= amax) e--;
                        step = ldexp(1, e);
                        qerr += step / 2 * sw * (1 + 1e-6);
                    }
                if (dt == MMSPCL_BF16) qerr = a * (1.0 / 512);   /* each x rounded to bf16: |dx| <= 2^-9 |x| */
                worst = fmax(worst, (fabs(s - ref[r * n_out + o]) - qerr) / a);
            }
        CHECK(worst <= 1e-5, "scalar %s %dx%dx%d: rel error %g", mmspcl_dtype_name(dt), rows, n_in, n_out, worst);
    }
    for (p = 0; p < (int)(sizeof paths / sizeof paths[0]); p++) {
        double worst = 0;
        mmspcl_status st = mmspcl_linear_path(got, x, rows, n_in, &W, bias, paths[p]);
        if (st == MMSPCL_ERR_UNSUPPORTED) continue;  /* this CPU or build lacks the path */
        CHECK(st == MMSPCL_OK, "%s path failed", names[p]);
        tested[p]++;
        if (exact) {
            CHECK(!memcmp(got, ref, sizeof(float) * rows * n_out), "%s %s %dx%dx%d: %s path differs from the scalar definition",
                  names[p], mmspcl_dtype_name(dt), rows, n_in, n_out, quant ? "integer" : "bf16");
        }
        for (r = 0; r < rows && !exact; r++)
            for (o = 0; o < n_out; o++) {
                double a = fabs(bias[o]);
                for (k = 0; k < n_in; k++) a += fabs((double)x[r * n_in + k] * wd[(size_t)o * n_in + k]);
                worst = fmax(worst, fabs((double)got[r * n_out + o] - ref[r * n_out + o]) / a);
            }
        CHECK(worst <= 1e-5, "%s %s %dx%dx%d: rel diff to scalar %g", names[p], mmspcl_dtype_name(dt), rows, n_in, n_out, worst);
        if (rows > 2) {   /* a row's result does not depend on the rows around it (batch invariance) */
            float *part = (float *)malloc(sizeof(float) * 2 * n_out);
            CHECK(mmspcl_linear_path(part, x + (size_t)(rows - 2) * n_in, 2, n_in, &W, bias, paths[p]) == MMSPCL_OK, "last rows");
            CHECK(!memcmp(part, got + (size_t)(rows - 2) * n_out, sizeof(float) * 2 * n_out), "%s %s %dx%dx%d: the last 2 rows alone differ",
                  names[p], mmspcl_dtype_name(dt), rows, n_in, n_out);
            CHECK(mmspcl_linear_path(part, x + n_in, 1, n_in, &W, bias, paths[p]) == MMSPCL_OK, "row 1");
            CHECK(!memcmp(part, got + n_out, sizeof(float) * n_out), "%s %s %dx%dx%d: row 1 alone differs",
                  names[p], mmspcl_dtype_name(dt), rows, n_in, n_out);
            free(part);
        }
        if (quant) {   /* the weight packed once (mmspcl_tensor_pack) gives the same bits on every path */
            mmspcl_tensor P = W;
            CHECK(mmspcl_tensor_pack(&P) == MMSPCL_OK, "pack %s", mmspcl_dtype_name(dt));
            if (P.packed) tested_packed++;
            CHECK(mmspcl_linear_path(got, x, rows, n_in, &P, bias, paths[p]) == MMSPCL_OK, "%s packed", names[p]);
            CHECK(!memcmp(got, ref, sizeof(float) * rows * n_out), "%s %s %dx%dx%d: packed weight differs from the scalar definition",
                  names[p], mmspcl_dtype_name(dt), rows, n_in, n_out);
            mmspcl_tensor_pack_free(&P);
            CHECK(P.packed == NULL, "pack_free clears packed");
        }
        {
            float *one = (float *)malloc(sizeof(float) * rows * n_out);
            int saved = mmspcl_threads();
            mmspcl_set_threads(1);
            mmspcl_linear_path(one, x, rows, n_in, &W, bias, paths[p]);
            mmspcl_set_threads(2);
            mmspcl_linear_path(got, x, rows, n_in, &W, bias, paths[p]);
            mmspcl_set_threads(saved);
            CHECK(!memcmp(one, got, sizeof(float) * rows * n_out), "%s %s: 1 and 2 threads differ", names[p], mmspcl_dtype_name(dt));
            free(one);
        }
    }
    free(x); free(w); free(wd); free(bias); free(ref); free(got); free(wq);
}

/* f32 weights in panels of 16 rows (mmspcl-convert --panels) give the same bits as the 2-D
   weight on every path, for any rows (alone or in a batch) and thread count. */
static void check_panels(int rows, int n_in, int n_out, unsigned seed) {
    static const mmspcl_kernel_path paths[] = {MMSPCL_PATH_SCALAR, MMSPCL_PATH_AUTO, MMSPCL_PATH_AVX2, MMSPCL_PATH_AVX512,
                                               MMSPCL_PATH_NEON};
    static const char *names[] = {"scalar", "auto", "avx2", "avx512", "neon"};
    float *x = (float *)malloc(sizeof(float) * rows * n_in), *w = (float *)malloc(sizeof(float) * n_out * n_in);
    float *wp = (float *)malloc(sizeof(float) * n_out * n_in), *bias = (float *)malloc(sizeof(float) * n_out);
    float *ref = (float *)malloc(sizeof(float) * rows * n_out), *got = (float *)malloc(sizeof(float) * rows * n_out);
    float *row = (float *)malloc(sizeof(float) * n_in);
    mmspcl_tensor W, P;
    size_t i;
    int p, o, same = 1;
    for (i = 0; i < (size_t)rows * n_in; i++) x[i] = frand(&seed);
    for (i = 0; i < (size_t)n_out * n_in; i++) w[i] = frand(&seed);
    for (o = 0; o < n_out; o++) bias[o] = frand(&seed);
    CHECK(mmspcl_pack_panels(w, n_out, n_in, wp) == MMSPCL_OK, "pack %dx%d", n_out, n_in);
    memset(&W, 0, sizeof W);
    W.dtype = MMSPCL_F32; W.ndim = 2; W.ne[0] = n_out; W.ne[1] = n_in; W.data = w; W.nbytes = sizeof(float) * n_out * n_in;
    P = W;
    P.ndim = 3; P.ne[0] = n_out / 16; P.ne[2] = 16; P.data = wp;
    CHECK(mmspcl_tensor_is_panels(&P) && !mmspcl_tensor_is_panels(&W) && mmspcl_matrix_rows(&P) == n_out &&
          mmspcl_matrix_cols(&P) == n_in, "panel tensor %dx%d recognised", n_out, n_in);
    for (o = 0; o < n_out; o++) {   /* element (o, k) at [o / 16][k][o % 16] */
        int k;
        mmspcl_matrix_row(&P, o, row);
        for (k = 0; k < n_in; k++) same &= row[k] == w[(size_t)o * n_in + k] && wp[((size_t)(o / 16) * n_in + k) * 16 + o % 16] == row[k];
    }
    CHECK(same, "panels %dx%d: rows read back as written", n_out, n_in);
    for (p = 0; p < (int)(sizeof paths / sizeof paths[0]); p++) {
        mmspcl_status st = mmspcl_linear_path(ref, x, rows, n_in, &W, bias, paths[p]);
        if (st == MMSPCL_ERR_UNSUPPORTED) continue;
        CHECK(st == MMSPCL_OK && mmspcl_linear_path(got, x, rows, n_in, &P, bias, paths[p]) == MMSPCL_OK, "%s path", names[p]);
        CHECK(!memcmp(ref, got, sizeof(float) * rows * n_out), "%s %dx%dx%d: panels differ from the 2-D weight", names[p], rows, n_in, n_out);
        if (rows > 2) {
            float *part = (float *)malloc(sizeof(float) * 2 * n_out);
            mmspcl_linear_path(part, x + (size_t)(rows - 2) * n_in, 2, n_in, &P, bias, paths[p]);
            CHECK(!memcmp(part, got + (size_t)(rows - 2) * n_out, sizeof(float) * 2 * n_out), "%s panels %dx%dx%d: the last 2 rows alone differ",
                  names[p], rows, n_in, n_out);
            mmspcl_linear_path(part, x + n_in, 1, n_in, &P, bias, paths[p]);
            CHECK(!memcmp(part, got + n_out, sizeof(float) * n_out), "%s panels %dx%dx%d: row 1 alone differs",
                  names[p], rows, n_in, n_out);
            free(part);
        }
        {
            int saved = mmspcl_threads();
            mmspcl_set_threads(saved == 1 ? 2 : 1);
            mmspcl_linear_path(got, x, rows, n_in, &P, bias, paths[p]);
            mmspcl_set_threads(saved);
            CHECK(!memcmp(ref, got, sizeof(float) * rows * n_out), "%s panels: thread counts differ", names[p]);
        }
    }
    free(x); free(w); free(wp); free(bias); free(ref); free(got); free(row);
}

/* every Linear path: shapes x dtypes against a double-precision reference */
static void test_linear(void) {
    static const int shapes[][3] = {{1, 32, 1}, {5, 64, 17}, {13, 96, 33}, {12, 128, 32}, {25, 160, 70}, {128, 256, 96},
                                    {50, 64, 13}, {33, 1600, 7}, {70, 96, 130}, {3, 64, 9}, {52, 1568, 20}, {18, 800, 6}};
    static const mmspcl_dtype dts[] = {MMSPCL_F32, MMSPCL_F16, MMSPCL_BF16, MMSPCL_Q8_0, MMSPCL_Q4_0};
    size_t s, d;
    static const int bf16_shapes[][3] = {{7, 33, 5}, {3, 17, 13}, {65, 50, 49}, {1, 2, 1}, {20, 1, 3}};
    for (s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (d = 0; d < sizeof dts / sizeof dts[0]; d++) check_linear(shapes[s][0], shapes[s][1], shapes[s][2], dts[d], 7u + (unsigned)s);
    static const int k_shapes[][3] = {{1, 256, 1}, {5, 512, 17}, {33, 768, 7}, {128, 256, 96}, {50, 1024, 13}, {3, 4096, 9}};
    for (s = 0; s < sizeof bf16_shapes / sizeof bf16_shapes[0]; s++)   /* bf16 takes any n_in, odd ones too */
        check_linear(bf16_shapes[s][0], bf16_shapes[s][1], bf16_shapes[s][2], MMSPCL_BF16, 99u + (unsigned)s);
    for (s = 0; s < sizeof k_shapes / sizeof k_shapes[0]; s++) {   /* k-types: rows of whole super-blocks of 256 */
        check_linear(k_shapes[s][0], k_shapes[s][1], k_shapes[s][2], MMSPCL_Q4_K, 199u + (unsigned)s);
        check_linear(k_shapes[s][0], k_shapes[s][1], k_shapes[s][2], MMSPCL_Q5_K, 299u + (unsigned)s);
    }    edges = 1;   /* the integer path with zero, tiny and large blocks in x and W */
    for (s = 0; s < 4; s++) {
        check_linear(shapes[s + 4][0], shapes[s + 4][1], shapes[s + 4][2], MMSPCL_Q8_0, 31u + (unsigned)s);
        check_linear(shapes[s + 4][0], shapes[s + 4][1], shapes[s + 4][2], MMSPCL_Q4_0, 41u + (unsigned)s);
        check_linear(k_shapes[s][0], k_shapes[s][1], k_shapes[s][2], MMSPCL_Q4_K, 51u + (unsigned)s);
    }
    edges = 0;
}

/* The bf16 definition's order and rounding, by hand (the order is vdpbf16ps's, Intel SDM: each
   pair's odd element first). Products 2^24, 1, -2^24, 1 in columns 0..3: in the order 1, 0, 3, 2,
   1 + 2^24 = 2^24 (the tie goes to even), + 1 = 2^24 again, - 2^24 = 0; in column order the sum
   would be 1. And x = 1e-39 (a subnormal float) counts as 0, as vcvtneps2bf16 makes it. */
static void test_bf16_definition(void) {
    static const mmspcl_kernel_path paths[] = {MMSPCL_PATH_SCALAR, MMSPCL_PATH_AUTO, MMSPCL_PATH_AVX2, MMSPCL_PATH_AVX512};
    const float x[2][4] = {{4096.0f, 1.0f, -4096.0f, 1.0f}, {1e-39f, 0.0f, 0.0f, 0.0f}};
    const float wf[4] = {4096.0f, 1.0f, 4096.0f, 1.0f}, wz[4] = {0x1p100f, 0.0f, 0.0f, 0.0f};
    uint16_t w[2][4];
    float out[2][2], bias[2] = {0.5f, -0.25f};
    mmspcl_tensor W;
    size_t p;
    mmspcl_quantize_row(MMSPCL_BF16, wf, w[0], 4);
    mmspcl_quantize_row(MMSPCL_BF16, wz, w[1], 4);
    memset(&W, 0, sizeof W);
    W.dtype = MMSPCL_BF16; W.ndim = 2; W.ne[0] = 2; W.ne[1] = 4; W.data = w; W.nbytes = sizeof w;
    for (p = 0; p < sizeof paths / sizeof paths[0]; p++) {
        mmspcl_status st = mmspcl_linear_path(&out[0][0], &x[0][0], 2, 4, &W, bias, paths[p]);
        if (st == MMSPCL_ERR_UNSUPPORTED) continue;
        CHECK(st == MMSPCL_OK && out[0][0] == 0.5f && out[1][1] == -0.25f, "bf16 path %d: pairs odd first: %g (want 0.5), subnormal x: %g (want -0.25)",
              (int)paths[p], out[0][0], out[1][1]);
    }
}

/* f32 panels against the 2-D weights; malformed panel tensors are refused, not read */
static void test_panels(void) {
    static const int pshapes[][3] = {{1, 32, 16}, {5, 40, 48}, {50, 100, 80}, {13, 1600, 16}, {70, 96, 144},
                                     {3, 17, 32}, {128, 256, 64}, {7, 1537, 208}};
    float xs[32], ys[32], buf[32 * 16];
    mmspcl_tensor bad;
    size_t s;
    for (s = 0; s < sizeof pshapes / sizeof pshapes[0]; s++) check_panels(pshapes[s][0], pshapes[s][1], pshapes[s][2], 40u + (unsigned)s);
    /* malformed panel tensors are refused, not read */
    memset(&bad, 0, sizeof bad);
    memset(buf, 0, sizeof buf);
    memset(xs, 0, sizeof xs);
    bad.dtype = MMSPCL_F32; bad.ndim = 3; bad.ne[0] = 1; bad.ne[1] = 32; bad.ne[2] = 16; bad.data = buf;
    CHECK(mmspcl_linear(ys, xs, 1, 31, &bad, NULL) == MMSPCL_ERR_ARG, "panels with the wrong n_in refused");
    bad.ne[2] = 8;
    CHECK(mmspcl_linear(ys, xs, 1, 32, &bad, NULL) == MMSPCL_ERR_ARG, "3-D tensor with 8 columns per panel refused");
    bad.ne[2] = 16; bad.dtype = MMSPCL_F16;
    CHECK(mmspcl_linear(ys, xs, 1, 32, &bad, NULL) == MMSPCL_ERR_ARG, "f16 panels refused");
    CHECK(mmspcl_pack_panels(xs, 8, 4, buf) == MMSPCL_ERR_ARG, "pack_panels needs rows in multiples of 16");
    bad.dtype = MMSPCL_F32;
    CHECK(mmspcl_matrix_row(&bad, 16, ys) == MMSPCL_ERR_ARG && mmspcl_matrix_row(&bad, -1, ys) == MMSPCL_ERR_ARG,
          "matrix_row outside the matrix refused");
}

/* attention (SIMD where available) against a double-precision softmax(q k^T / sqrt(d)) v,
   with and without a key mask; 1 and 2 threads give the same bits */
static void test_attention(void) {
    static const int cfg[][4] = {{37, 4, 64, 1}, {20, 3, 32, 0}, {9, 2, 8, 1}, {130, 2, 48, 0}, {5, 1, 128, 1}};
    size_t s;
    for (s = 0; s < sizeof cfg / sizeof cfg[0]; s++) {
        const int n = cfg[s][0], H = cfg[s][1], hd = cfg[s][2], D = H * hd;
        float *q = (float *)malloc(sizeof(float) * n * D * 4), *kk = q + n * D, *v = kk + n * D, *o = v + n * D;
        float *scratch = (float *)malloc(sizeof(float) * mmspcl_attention_scratch(n));
        unsigned char *valid = (unsigned char *)malloc((size_t)n);
        unsigned seed = 11u + (unsigned)s;
        double worst = 0;
        int i, j, h, d, masked;
        for (i = 0; i < n * D * 3; i++) q[i] = 2 * frand(&seed);
        for (j = 0; j < n; j++) valid[j] = (unsigned char)(j % 3 != 1 || j == 0);
        for (masked = 0; masked < 2; masked++) {
            const unsigned char *kv = cfg[s][3] && masked ? valid : NULL;
            mmspcl_attention(o, D, q, D, kk, v, D, n, n, H, hd, kv, scratch);
            for (h = 0; h < H; h++)
                for (i = 0; i < n; i++) {
                    double p[140], mx = -1e300, sum = 0;
                    for (j = 0; j < n; j++) {
                        double dot = 0;
                        for (d = 0; d < hd; d++) dot += (double)q[i * D + h * hd + d] * kk[j * D + h * hd + d];
                        p[j] = kv && !kv[j] ? -1e300 : dot / sqrt((double)hd);
                        mx = fmax(mx, p[j]);
                    }
                    for (j = 0; j < n; j++) sum += (p[j] = kv && !kv[j] ? 0 : exp(p[j] - mx));
                    for (d = 0; d < hd; d++) {
                        double r = 0, a = 0;
                        for (j = 0; j < n; j++) { r += p[j] / sum * v[j * D + h * hd + d]; a += p[j] / sum * fabs(v[j * D + h * hd + d]); }
                        worst = fmax(worst, fabs(r - o[i * D + h * hd + d]) / (a + 1e-30));
                    }
                }
            {
                float *o1 = (float *)malloc(sizeof(float) * n * D);
                int saved = mmspcl_threads();
                mmspcl_set_threads(1);
                mmspcl_attention(o1, D, q, D, kk, v, D, n, n, H, hd, kv, scratch);
                mmspcl_set_threads(2);
                free(scratch);
                scratch = (float *)malloc(sizeof(float) * mmspcl_attention_scratch(n));
                mmspcl_attention(o, D, q, D, kk, v, D, n, n, H, hd, kv, scratch);
                mmspcl_set_threads(saved);
                CHECK(!memcmp(o, o1, sizeof(float) * n * D), "attention n=%d hd=%d: 1 and 2 threads differ", n, hd);
                free(o1);
            }
        }
        CHECK(worst < 1e-5, "attention n=%d heads=%d hd=%d: rel error %g", n, H, hd, worst);
        free(q); free(scratch); free(valid);
    }
}

/* GELU, quick GELU and softmax on long arrays (vector bodies and scalar tails) */
static void test_activations_long(void) {
    float xs[1003], ys[1003];
    double worst = 0, worst_q = 0, worst_s = 0, se = 0;
    unsigned seed = 5;
    int i;
    for (i = 0; i < 1003; i++) xs[i] = 12 * frand(&seed);
    xs[0] = 0; xs[1] = -30; xs[2] = 30; xs[3] = 1e-8f;
    memcpy(ys, xs, sizeof xs);
    mmspcl_gelu(ys, 1003);
    for (i = 0; i < 1003; i++) worst = fmax(worst, fabs(ys[i] - 0.5 * xs[i] * (1 + erf(xs[i] / sqrt(2.0)))) / (1 + fabs(xs[i])));
    CHECK(worst < 1e-6, "gelu (long) error %g", worst);
    memcpy(ys, xs, sizeof xs);
    mmspcl_quick_gelu(ys, 1003);
    for (i = 0; i < 1003; i++) worst_q = fmax(worst_q, fabs(ys[i] - xs[i] / (1 + exp(-1.702 * xs[i]))) / (1 + fabs(xs[i])));
    CHECK(worst_q < 1e-6, "quick gelu error %g", worst_q);
    for (i = 0; i < 1003; i++) ys[i] = 1.0f + 0.5f * frand(&seed);
    {   /* GELU's derivative times a gradient, against the double formula */
        float d[1003];
        double worst_g = 0;
        memcpy(d, ys, sizeof d);
        mmspcl_gelu_grad(d, xs, 1003);
        for (i = 0; i < 1003; i++) {
            const double x = xs[i], g = 0.5 * (1 + erf(x / sqrt(2.0))) + x * exp(-0.5 * x * x) / sqrt(2 * 3.14159265358979323846);
            worst_g = fmax(worst_g, fabs(d[i] - ys[i] * g) / fabs(ys[i]));
        }
        CHECK(worst_g < 1e-6, "gelu gradient error %g", worst_g);
    }
    memcpy(ys, xs, sizeof xs);
    mmspcl_softmax(ys, 1003);
    for (i = 0; i < 1003; i++) se += exp(xs[i] - 30.0);
    for (i = 0; i < 1003; i++) worst_s = fmax(worst_s, fabs(ys[i] - exp(xs[i] - 30.0) / se) / (exp(xs[i] - 30.0) / se + 1e-30) * (exp(xs[i] - 30.0) / se > 1e-30));
    CHECK(worst_s < 1e-5, "softmax (long) rel error %g", worst_s);
}

/* layer norm on long rows (vector bodies, tails, in place) against double formulas */
static void test_layernorm_long(void) {
    static const int dims[] = {1024, 768, 37, 8};
    size_t s;
    unsigned seed = 21;
    for (s = 0; s < 4; s++) {
        const int dim = dims[s], rows = 3;
        float *x = (float *)malloc(sizeof(float) * rows * dim * 4), *y = x + rows * dim, *g = y + rows * dim, *b = g + dim;
        double worst = 0;
        int r, i;
        for (i = 0; i < rows * dim; i++) x[i] = 5 * frand(&seed) + 2;
        for (i = 0; i < dim; i++) { g[i] = 1 + frand(&seed); b[i] = frand(&seed); }
        mmspcl_layernorm(y, x, g, b, rows, dim, 1e-5f);
        for (r = 0; r < rows; r++) {
            double mean = 0, var = 0;
            for (i = 0; i < dim; i++) mean += x[r * dim + i];
            mean /= dim;
            for (i = 0; i < dim; i++) var += (x[r * dim + i] - mean) * (x[r * dim + i] - mean);
            var /= dim;
            for (i = 0; i < dim; i++)
                worst = fmax(worst, fabs(y[r * dim + i] - ((x[r * dim + i] - mean) / sqrt(var + 1e-5) * g[i] + b[i])));
        }
        memcpy(y, x, sizeof(float) * rows * dim);
        mmspcl_layernorm(x, x, NULL, NULL, rows, dim, 1e-5f);   /* in place, no affine part */
        for (r = 0; r < rows; r++) {
            double mean = 0, var = 0;
            for (i = 0; i < dim; i++) mean += y[r * dim + i];
            mean /= dim;
            for (i = 0; i < dim; i++) var += (y[r * dim + i] - mean) * (y[r * dim + i] - mean);
            var /= dim;
            for (i = 0; i < dim; i++) worst = fmax(worst, fabs(x[r * dim + i] - (y[r * dim + i] - mean) / sqrt(var + 1e-5)));
        }
        CHECK(worst < 2e-5, "layernorm dim %d: error %g", dim, worst);
        free(x);
    }
}

/* layer norm, GELU, softmax against double formulas */
static void test_small_formulas(void) {
    float x[48], y[48], g[48], b[48], v[5] = {1, 2, 3, -1, 0.5f};
    double mean = 0, var = 0, worst = 0, e[5], se = 0;
    unsigned seed = 3;
    int i;
    for (i = 0; i < 48; i++) { x[i] = 3 * frand(&seed) + 1; g[i] = frand(&seed); b[i] = frand(&seed); }
    for (i = 0; i < 48; i++) mean += x[i];
    mean /= 48;
    for (i = 0; i < 48; i++) var += (x[i] - mean) * (x[i] - mean);
    var /= 48;
    mmspcl_layernorm(y, x, g, b, 1, 48, 1e-5f);
    for (i = 0; i < 48; i++) worst = fmax(worst, fabs(y[i] - ((x[i] - mean) / sqrt(var + 1e-5) * g[i] + b[i])));
    CHECK(worst < 1e-5, "layernorm error %g", worst);
    memcpy(y, x, sizeof x);
    mmspcl_gelu(y, 48);
    for (i = 0, worst = 0; i < 48; i++) worst = fmax(worst, fabs(y[i] - 0.5 * x[i] * (1 + erf(x[i] / sqrt(2.0)))));
    CHECK(worst < 1e-5, "gelu error %g", worst);
    for (i = 0; i < 5; i++) se += (e[i] = exp(v[i]));
    mmspcl_softmax(v, 5);
    for (i = 0, worst = 0; i < 5; i++) worst = fmax(worst, fabs(v[i] - e[i] / se));
    CHECK(worst < 1e-6, "softmax error %g", worst);
}

/* mmspcl_gemm_f32: every transpose pair, accumulate or not, leading dimensions past the row,
   sizes across the cache blocks (AVX2: k 512, rows 72; AVX-512: k 256, rows 144) and the tiles
   (6 x 16, 12 x 32), odd tails of rows and columns. The
   definition within 1e-5 * sum_k |a b| of a double sum (+ |C| when accumulating); every path
   within the same bound of the definition; 1 and 2 threads bit-identical; the SIMD paths (the
   same fused chains, blocked differently) bit-identical to each other. */
static void check_gemm(int ta, int tb, int M, int N, int K, int acc, unsigned seed) {
    static const mmspcl_kernel_path paths[] = {MMSPCL_PATH_AUTO, MMSPCL_PATH_AVX2, MMSPCL_PATH_AVX512};
    const int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
    float *A = (float *)malloc(sizeof(float) * (size_t)(ta ? K : M) * lda);
    float *B = (float *)malloc(sizeof(float) * (size_t)(tb ? N : K) * ldb);
    float *C0 = (float *)malloc(sizeof(float) * (size_t)M * ldc), *ref = (float *)malloc(sizeof(float) * (size_t)M * ldc);
    float *got = (float *)malloc(sizeof(float) * (size_t)M * ldc), *simd = (float *)malloc(sizeof(float) * (size_t)M * ldc);
    double worst = 0;
    int i, j, k, p, bad = 0, have_simd = 0;
    for (i = 0; i < (ta ? K : M) * lda; i++) A[i] = frand(&seed);
    for (i = 0; i < (tb ? N : K) * ldb; i++) B[i] = frand(&seed);
    for (i = 0; i < M * ldc; i++) C0[i] = frand(&seed);
    memcpy(ref, C0, sizeof(float) * (size_t)M * ldc);
    CHECK(mmspcl_gemm_f32_path(ta, tb, M, N, K, A, lda, B, ldb, ref, ldc, acc, MMSPCL_PATH_SCALAR) == MMSPCL_OK, "gemm def");
    for (i = 0; i < M; i++)
        for (j = 0; j < N; j++) {
            double e = acc ? C0[i * ldc + j] : 0, mag = fabs(e);
            for (k = 0; k < K; k++) {
                const double a = ta ? A[k * lda + i] : A[i * lda + k], b = tb ? B[j * ldb + k] : B[k * ldb + j];
                e += a * b;
                mag += fabs(a * b);
            }
            if (fabs(ref[i * ldc + j] - e) > 1e-5 * mag + 1e-30) bad++;
            if (i * ldc + j + 1 < M * ldc && j == N - 1 && ref[i * ldc + N] != C0[i * ldc + N]) bad++;   /* padding kept */
        }
    CHECK(!bad, "gemm definition %d%d %dx%dx%d acc %d: %d outputs off the double sum", ta, tb, M, N, K, acc, bad);
    for (p = 0; p < (int)(sizeof paths / sizeof paths[0]); p++) {
        mmspcl_status st;
        memcpy(got, C0, sizeof(float) * (size_t)M * ldc);
        st = mmspcl_gemm_f32_path(ta, tb, M, N, K, A, lda, B, ldb, got, ldc, acc, paths[p]);
        if (st == MMSPCL_ERR_UNSUPPORTED) continue;
        CHECK(st == MMSPCL_OK, "gemm path %d", p);
        for (i = 0, bad = 0; i < M; i++)
            for (j = 0; j < ldc; j++) {
                double mag = acc ? fabs(C0[i * ldc + j]) : 0, d = fabs((double)got[i * ldc + j] - ref[i * ldc + j]);
                if (j >= N) { bad += got[i * ldc + j] != C0[i * ldc + j]; continue; }
                for (k = 0; k < K; k++)
                    mag += fabs((double)(ta ? A[k * lda + i] : A[i * lda + k]) * (tb ? B[j * ldb + k] : B[k * ldb + j]));
                if (d > 1e-5 * mag + 1e-30) bad++;
                if (d / (mag + 1e-30) > worst) worst = d / (mag + 1e-30);
            }
        CHECK(!bad, "gemm path %d %d%d %dx%dx%d acc %d: %d outputs off the definition (worst %g)", p, ta, tb, M, N, K, acc, bad, worst);
        if (have_simd)
            CHECK(!memcmp(simd, got, sizeof(float) * (size_t)M * ldc), "gemm path %d %d%d %dx%dx%d: not the bits of the other SIMD path", p, ta, tb, M, N, K);
        else memcpy(simd, got, sizeof(float) * (size_t)M * ldc);
        have_simd = 1;
        if (paths[p] == MMSPCL_PATH_AUTO) {   /* the caller's packing buffer: the same bits */
            const size_t nw = mmspcl_gemm_f32_work(M, N, K, 2);
            float *work = (float *)malloc(sizeof(float) * (nw ? nw : 1)), *again = (float *)malloc(sizeof(float) * (size_t)M * ldc);
            memcpy(again, C0, sizeof(float) * (size_t)M * ldc);
            CHECK(mmspcl_gemm_f32_ws(ta, tb, M, N, K, A, lda, B, ldb, again, ldc, acc, work, nw) == MMSPCL_OK &&
                      !memcmp(again, got, sizeof(float) * (size_t)M * ldc), "gemm_ws %dx%dx%d: differs from gemm", M, N, K);
            free(work); free(again);
        }
#ifdef _OPENMP
        {
            int saved = omp_get_max_threads();
            memcpy(ref, C0, sizeof(float) * (size_t)M * ldc);
            omp_set_num_threads(1);
            mmspcl_gemm_f32_path(ta, tb, M, N, K, A, lda, B, ldb, ref, ldc, acc, paths[p]);
            memcpy(got, C0, sizeof(float) * (size_t)M * ldc);
            omp_set_num_threads(2);
            mmspcl_gemm_f32_path(ta, tb, M, N, K, A, lda, B, ldb, got, ldc, acc, paths[p]);
            omp_set_num_threads(saved);
            CHECK(!memcmp(ref, got, sizeof(float) * (size_t)M * ldc), "gemm path %d: 1 and 2 threads differ", p);
        }
#endif
    }
    free(A); free(B); free(C0); free(ref); free(got); free(simd);
}

static void test_gemm(void) {
    static const int shapes[][3] = {{1, 1, 1}, {7, 17, 5}, {13, 37, 300}, {80, 300, 260}, {128, 128, 64}, {150, 40, 513},
                                    {25, 65, 257}, {290, 97, 31}};
    float c[2] = {5, 5};
    int s, t;
    for (s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++)
        for (t = 0; t < 8; t++) check_gemm(t & 1, (t >> 1) & 1, shapes[s][0], shapes[s][1], shapes[s][2], t >> 2, 1000u + 17u * (unsigned)(s * 8 + t));
    CHECK(mmspcl_gemm_f32(0, 0, 1, 2, 0, c, 1, c, 2, c, 2, 0) == MMSPCL_OK && c[0] == 0 && c[1] == 0, "K = 0 clears C");
    CHECK(mmspcl_gemm_f32(0, 0, 2, 2, 2, c, 1, c, 2, c, 2, 0) == MMSPCL_ERR_ARG, "lda shorter than a row");
    CHECK(mmspcl_gemm_f32(0, 0, -1, 2, 2, c, 2, c, 2, c, 2, 0) == MMSPCL_ERR_ARG, "negative size");
}

int main(void) {
    size_t s;
    test_gemm();
    test_linear();
    test_bf16_definition();
    test_panels();
    printf("linear paths tested (shape x dtype):");
    for (s = 0; s < 6; s++) printf(" %s %d", s == 0 ? "auto" : s == 1 ? "avx2" : s == 2 ? "avx512" : s == 3 ? "neon" : s == 4 ? "avxvnni" : "neon-dotprod", tested[s]);
    printf("; packed weights %d\n", tested_packed);
    test_attention();
    test_activations_long();
    test_layernorm_long();
    test_small_formulas();
    return TEST_END();
}
