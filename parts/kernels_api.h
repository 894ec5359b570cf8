/* ---------------------------------------------------------------------------------------------
   Kernels: the numeric building blocks of every model. Rows are contiguous; a "weight" is a
   PyTorch Linear weight [out, in] in any dtype (f32, f16, bf16, q8_0, q4_0).
   Results do not depend on the number of OpenMP threads: work is split over independent
   outputs, each computed by the same sequential loop.
   ------------------------------------------------------------------------------------------ */

/* out[r][o] = bias[o] + sum_i x[r][i] * W[o][i] for r < rows; W is [n_out, n_in]; bias may be
   NULL. Returns MMSPCL_ERR_ARG when W is not 2-D with ne[1] == n_in. */
mmspcl_status mmspcl_linear(float *out, const float *x, int rows, int n_in, const mmspcl_tensor *W,
                            const float *bias);
/* q8_0 / q4_0 weights take the integer path: each row of x is quantized on the fly to int8
   blocks of 32 (f32 scale per block), dot products are exact int32 sums per block, and blocks
   are accumulated in float in a fixed order (the definition is in parts/kernels_impl.h); every
   SIMD integer path gives the same bits as the scalar one. Float weights (f32, f16, bf16) keep
   x in f32; their SIMD paths agree with the scalar one to about 1e-6 relative.
   The same with a chosen code path (tests compare every path with the scalar definition).
   MMSPCL_ERR_UNSUPPORTED when this CPU or build lacks the path:
     AVX2      AVX2 + FMA (integer: maddubs)        AVX512   AVX-512 F/BW/VL (integer: AVX512-VNNI)
     AVXVNNI   AVX2 f32 / AVX-VNNI integer          NEON     ARM NEON (integer without dot product)
     NEON_DOTPROD  NEON with the ARMv8.2 dot product (sdot), compile-time (-march=armv8.2-a+dotprod)
   AUTO picks the best this CPU (x86: at run time) or build (ARM) has. */
typedef enum mmspcl_kernel_path {
    MMSPCL_PATH_AUTO = 0, MMSPCL_PATH_SCALAR, MMSPCL_PATH_AVX2, MMSPCL_PATH_AVX512, MMSPCL_PATH_NEON,
    MMSPCL_PATH_AVXVNNI, MMSPCL_PATH_NEON_DOTPROD, MMSPCL_PATH_COUNT
} mmspcl_kernel_path;
mmspcl_status mmspcl_linear_path(float *out, const float *x, int rows, int n_in, const mmspcl_tensor *W,
                                 const float *bias, mmspcl_kernel_path path);
/* Dot product of n floats, in the fixed summation order every path uses. */
float mmspcl_dot_f32(const float *a, const float *b, int n);
/* y[r] = (x[r] - mean) / sqrt(var + eps) * gamma + beta, per row of dim values (in place ok). */
void mmspcl_layernorm(float *y, const float *x, const float *gamma, const float *beta, int rows,
                      int dim, float eps);
void mmspcl_gelu(float *x, size_t n);        /* x * 0.5 * (1 + erf(x / sqrt(2))) */
void mmspcl_quick_gelu(float *x, size_t n);  /* x * sigmoid(1.702 x), CLIP's activation */
void mmspcl_softmax(float *x, int n);        /* in place, max-subtracted */
/* Multi-head scaled dot-product attention. q: [n_q][ld_q], k, v: [n_k][ld_kv]; head h uses
   columns h*head_dim .. +head_dim of each row. key_valid[j] == 0 masks key j (NULL: none).
   out: [n_q][ld_out]. scratch: n_threads * n_k floats (mmspcl_attention_scratch). */
void mmspcl_attention(float *out, int ld_out, const float *q, int ld_q, const float *k,
                      const float *v, int ld_kv, int n_q, int n_k, int n_heads, int head_dim,
                      const unsigned char *key_valid, float *scratch);
size_t mmspcl_attention_scratch(int n_k);    /* floats needed by mmspcl_attention's scratch */
