/* Kernels: every SIMD path of mmspcl_linear against the scalar definition (f32, f16, bf16, q8_0,
   q4_0 weights; odd shapes), bit-identical results for 1 and 2 threads, and layer norm, GELU and
   softmax against double-precision formulas. Bound: |simd - scalar| <= 1e-5 * sum_k |x_k w_k|. */
#define MMSPCL_IMPLEMENTATION
#include "mmspcl.h"
#include "tests/test.h"
#include <stdlib.h>
#include <string.h>

static float frand(unsigned *s) { *s = *s * 1664525u + 1013904223u; return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f; }

static void check_linear(int rows, int n_in, int n_out, mmspcl_dtype dt, unsigned seed) {
    static const mmspcl_kernel_path paths[] = {MMSPCL_PATH_AUTO, MMSPCL_PATH_AVX2, MMSPCL_PATH_AVX512, MMSPCL_PATH_NEON};
    static const char *names[] = {"auto", "avx2", "avx512", "neon"};
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
                double s = bias[o], a = fabs(bias[o]);
                for (k = 0; k < n_in; k++) { s += (double)x[r * n_in + k] * wd[(size_t)o * n_in + k]; a += fabs((double)x[r * n_in + k] * wd[(size_t)o * n_in + k]); }
                worst = fmax(worst, fabs(s - ref[r * n_out + o]) / a);
            }
        CHECK(worst <= 1e-5, "scalar %s %dx%dx%d: rel error %g", mmspcl_dtype_name(dt), rows, n_in, n_out, worst);
    }
    for (p = 0; p < 4; p++) {
        double worst = 0;
        mmspcl_status st = mmspcl_linear_path(got, x, rows, n_in, &W, bias, paths[p]);
        if (st == MMSPCL_ERR_UNSUPPORTED) continue;  /* this CPU or build lacks the path */
        CHECK(st == MMSPCL_OK, "%s path failed", names[p]);
        for (r = 0; r < rows; r++)
            for (o = 0; o < n_out; o++) {
                double a = fabs(bias[o]);
                for (k = 0; k < n_in; k++) a += fabs((double)x[r * n_in + k] * wd[(size_t)o * n_in + k]);
                worst = fmax(worst, fabs((double)got[r * n_out + o] - ref[r * n_out + o]) / a);
            }
        CHECK(worst <= 1e-5, "%s %s %dx%dx%d: rel diff to scalar %g", names[p], mmspcl_dtype_name(dt), rows, n_in, n_out, worst);
#ifdef _OPENMP
        {
            float *one = (float *)malloc(sizeof(float) * rows * n_out);
            int saved = omp_get_max_threads();
            omp_set_num_threads(1);
            mmspcl_linear_path(one, x, rows, n_in, &W, bias, paths[p]);
            omp_set_num_threads(2);
            mmspcl_linear_path(got, x, rows, n_in, &W, bias, paths[p]);
            omp_set_num_threads(saved);
            CHECK(!memcmp(one, got, sizeof(float) * rows * n_out), "%s %s: 1 and 2 threads differ", names[p], mmspcl_dtype_name(dt));
            free(one);
        }
#endif
    }
    free(x); free(w); free(wd); free(bias); free(ref); free(got); free(wq);
}

int main(void) {
    static const int shapes[][3] = {{1, 32, 1}, {5, 64, 17}, {13, 96, 33}, {12, 128, 32}, {25, 160, 70}, {128, 256, 96}};
    static const mmspcl_dtype dts[] = {MMSPCL_F32, MMSPCL_F16, MMSPCL_BF16, MMSPCL_Q8_0, MMSPCL_Q4_0};
    size_t s, d;
    for (s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (d = 0; d < sizeof dts / sizeof dts[0]; d++) check_linear(shapes[s][0], shapes[s][1], shapes[s][2], dts[d], 7u + (unsigned)s);
    {   /* layer norm, GELU, softmax against double formulas */
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
    return TEST_END();
}
