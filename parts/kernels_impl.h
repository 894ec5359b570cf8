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

/* Weight rows are widened to f32 once per output and reused for every input row. */
mmspcl_status mmspcl_linear(float *out, const float *x, int rows, int n_in, const mmspcl_tensor *W,
                            const float *bias) {
    int n_out, nthreads;
    size_t row_bytes;
    float *wide = NULL;
    if (W->ndim != 2 || W->ne[1] != n_in || rows < 0) return MMSPCL_ERR_ARG;
    n_out = (int)W->ne[0];
    row_bytes = mmspcl_dtype_row_size(W->dtype, n_in);
    if (row_bytes == 0) return MMSPCL_ERR_ARG;
    nthreads = MMSPCL__MAX_THREADS();
    if (W->dtype != MMSPCL_F32) {
        wide = (float *)MMSPCL_MALLOC((size_t)nthreads * (size_t)n_in * sizeof(float));
        if (!wide) return MMSPCL_ERR_NOMEM;
    }
    {
        int o;
MMSPCL__OMP_FOR
        for (o = 0; o < n_out; o++) {
            const float *w;
            int r;
            if (wide) {
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
    MMSPCL_FREE(wide);
    return MMSPCL_OK;
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
