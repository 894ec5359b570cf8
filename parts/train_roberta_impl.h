#ifndef MMSPCL_TRAIN_ROBERTA_IMPL
#define MMSPCL_TRAIN_ROBERTA_IMPL
#include <stdarg.h>
#ifdef _OPENMP
#include <omp.h>
#define MMSPCL__RT_OMP_FOR _Pragma("omp parallel for schedule(static)")
#define MMSPCL__RT_MAX_THREADS() omp_get_max_threads()
#define MMSPCL__RT_THREAD_ID() omp_get_thread_num()
#else
#define MMSPCL__RT_OMP_FOR
#define MMSPCL__RT_MAX_THREADS() 1
#define MMSPCL__RT_THREAD_ID() 0
#endif

/* speaker + sep + text with SPCL's MELD cleaning (U+2019 -> ', " dropped); caller frees */
static char *mmspcl__rt_clean(const char *speaker, const char *sep, const char *text) {
    size_t ns = strlen(speaker), np = strlen(sep), nt = strlen(text), i, o;
    char *s = (char *)MMSPCL_MALLOC(ns + np + nt + 1);
    if (!s) return NULL;
    memcpy(s, speaker, ns);
    memcpy(s + ns, sep, np);
    o = ns + np;
    for (i = 0; i < nt; i++) {
        if ((unsigned char)text[i] == 0xE2 && i + 2 < nt && (unsigned char)text[i + 1] == 0x80 &&
            (unsigned char)text[i + 2] == 0x99) { s[o++] = '\''; i += 2; continue; }
        if (text[i] == '"') continue;
        s[o++] = text[i];
    }
    s[o] = 0;
    return s;
}
/* ---------------------------------------------------------------------------------------------
   RoBERTa-layout encoder training (float32; see parts/train_roberta_api.h)
   ------------------------------------------------------------------------------------------ */
static mmspcl_tensor mmspcl__rt_view(const float *d, int64_t rows, int64_t cols) {
    mmspcl_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = MMSPCL_F32;
    t.ndim = 2;
    t.ne[0] = rows;
    t.ne[1] = cols;
    t.data = d;
    t.nbytes = (size_t)rows * (size_t)cols * sizeof(float);
    return t;
}

/* y[T][out] = x[T][in] W^T + b, W a float [out][in] array */
static mmspcl_status mmspcl__rt_lin(float *y, const float *x, int T, int in, const float *W, int out,
                                    const float *b) {
    mmspcl_tensor t = mmspcl__rt_view(W, out, in);
    return mmspcl_linear(y, x, T, in, &t, b);
}

/* dst[c][r] = src[r][c] for a [rows][cols] source */
static void mmspcl__rt_transpose(float *dst, const float *src, int rows, int cols) {
    int c0;
    MMSPCL__RT_OMP_FOR
    for (c0 = 0; c0 < cols; c0 += 16) {
        int r, c, ce = c0 + 16 < cols ? c0 + 16 : cols;
        for (r = 0; r < rows; r++)
            for (c = c0; c < ce; c++) dst[(size_t)c * rows + r] = src[(size_t)r * cols + c];
    }
}

typedef struct mmspcl__rt_scr { float *tmp, *xT, *dyT, *WT, *dW; } mmspcl__rt_scr;

/* Backward of y = x W^T + b (W at g/w offset woff, [out][in]; bias at boff, or (size_t)-1):
   dx (may be NULL) += dy W;  gW += dy^T x;  gb += column sums of dy. */
static mmspcl_status mmspcl__rt_lin_bwd(mmspcl_rt *m, const float *x, int T, int in, size_t woff, int out,
                                        size_t boff, const float *dy, float *dx, const mmspcl__rt_scr *s) {
    mmspcl_tensor t;
    mmspcl_status st;
    size_t i, n;
    float *gw = m->g + woff;
    if (dx) {
        mmspcl__rt_transpose(s->WT, m->w + woff, out, in);            /* [in][out] */
        t = mmspcl__rt_view(s->WT, in, out);
        if ((st = mmspcl_linear(s->tmp, dy, T, out, &t, NULL))) return st;
        n = (size_t)T * in;
        for (i = 0; i < n; i++) dx[i] += s->tmp[i];
    }
    mmspcl__rt_transpose(s->dyT, dy, T, out);                         /* [out][T] */
    mmspcl__rt_transpose(s->xT, x, T, in);                            /* [in][T] */
    t = mmspcl__rt_view(s->xT, in, T);
    if ((st = mmspcl_linear(s->dW, s->dyT, out, T, &t, NULL))) return st;  /* [out][in] */
    n = (size_t)out * in;
    for (i = 0; i < n; i++) gw[i] += s->dW[i];
    if (boff != (size_t)-1) {
        float *gb = m->g + boff;
        int r, o;
        for (r = 0; r < T; r++)
            for (o = 0; o < out; o++) gb[o] += dy[(size_t)r * out + o];
    }
    return MMSPCL_OK;
}

/* LayerNorm forward exactly as mmspcl_layernorm, keeping xhat and 1/std */
static void mmspcl__rt_ln(float *y, const float *x, const float *g, const float *b, int rows, int dim,
                          float eps, float *xhat, float *inv_out) {
    int r;
    MMSPCL__RT_OMP_FOR
    for (r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * dim;
        float *yr = y + (size_t)r * dim, *hr = xhat + (size_t)r * dim;
        double mean = 0.0, var = 0.0;
        float inv;
        int i;
        for (i = 0; i < dim; i++) mean += xr[i];
        mean /= dim;
        for (i = 0; i < dim; i++) { double d = xr[i] - mean; var += d * d; }
        var /= dim;
        inv = (float)(1.0 / sqrt(var + eps));
        for (i = 0; i < dim; i++) {
            hr[i] = (xr[i] - (float)mean) * inv;
            yr[i] = hr[i] * g[i] + b[i];
        }
        inv_out[r] = inv;
    }
}

/* dx = d LayerNorm (written, not accumulated); g/b gradients accumulated in row order */
static void mmspcl__rt_ln_bwd(mmspcl_rt *m, float *dx, const float *dy, const float *xhat, const float *inv,
                              size_t goff, size_t boff, int rows, int dim) {
    const float *g = m->w + goff;
    float *gg = m->g + goff, *gb = m->g + boff;
    int r, i;
    MMSPCL__RT_OMP_FOR
    for (r = 0; r < rows; r++) {
        const float *dyr = dy + (size_t)r * dim, *hr = xhat + (size_t)r * dim;
        float *dxr = dx + (size_t)r * dim;
        double m1 = 0.0, m2 = 0.0;
        int j;
        for (j = 0; j < dim; j++) {
            double d = (double)dyr[j] * g[j];
            m1 += d;
            m2 += d * hr[j];
        }
        m1 /= dim;
        m2 /= dim;
        for (j = 0; j < dim; j++)
            dxr[j] = (float)(inv[r] * ((double)dyr[j] * g[j] - m1 - hr[j] * m2));
    }
    for (r = 0; r < rows; r++)
        for (i = 0; i < dim; i++) {
            gg[i] += dy[(size_t)r * dim + i] * xhat[(size_t)r * dim + i];
            gb[i] += dy[(size_t)r * dim + i];
        }
}

static float mmspcl__rt_gelu_grad(float x) {
    return 0.5f * (1.0f + erff(x * 0.70710678118654752f)) + x * expf(-0.5f * x * x) * 0.39894228040143268f;
}

/* Per-layer cache layout, every block sized for max_tokens rows */
enum { MMSPCL__RT_Q, MMSPCL__RT_K, MMSPCL__RT_V, MMSPCL__RT_CTX, MMSPCL__RT_H1, MMSPCL__RT_XH1, MMSPCL__RT_XH2,
       MMSPCL__RT_XOUT, MMSPCL__RT_NH };

static size_t mmspcl__rt_layer_floats(const mmspcl_rt *m) {
    const size_t T = (size_t)m->max_tokens, H = (size_t)m->cfg.hidden_size, I = (size_t)m->cfg.intermediate_size;
    return T * H * MMSPCL__RT_NH + 2 * T * I + 2 * T + (size_t)m->cfg.num_heads * T * (size_t)m->max_seq;
}
/* pointers into layer l's cache (l == -1: the embedding part) */
typedef struct mmspcl__rt_lc { float *h[MMSPCL__RT_NH], *f, *ga, *inv1, *inv2, *probs; } mmspcl__rt_lc;
static mmspcl__rt_lc mmspcl__rt_layer_cache(const mmspcl_rt *m, int l) {
    const size_t T = (size_t)m->max_tokens, H = (size_t)m->cfg.hidden_size, I = (size_t)m->cfg.intermediate_size;
    float *base = m->cache + 2 * T * H + T + (size_t)l * mmspcl__rt_layer_floats(m);
    mmspcl__rt_lc c;
    int i;
    for (i = 0; i < MMSPCL__RT_NH; i++) c.h[i] = base + (size_t)i * T * H;
    base += T * H * MMSPCL__RT_NH;
    c.f = base; base += T * I;
    c.ga = base; base += T * I;
    c.inv1 = base; base += T;
    c.inv2 = base; base += T;
    c.probs = base;
    return c;
}
/* embedding part: xhat0 [T][H], x0 (LN output) [T][H], inv0 [T] */
#define MMSPCL__RT_XHAT0(m) ((m)->cache)
#define MMSPCL__RT_X0(m) ((m)->cache + (size_t)(m)->max_tokens * (m)->cfg.hidden_size)
#define MMSPCL__RT_INV0(m) ((m)->cache + 2 * (size_t)(m)->max_tokens * (m)->cfg.hidden_size)

void mmspcl_rt_free(mmspcl_rt *m) {
    if (!m) return;
    mmspcl_params_free(&m->P);
    MMSPCL_FREE(m->w);
    MMSPCL_FREE(m->g);
    MMSPCL_FREE(m->L);
    MMSPCL_FREE(m->starts);
    MMSPCL_FREE(m->lens);
    MMSPCL_FREE(m->tok);
    MMSPCL_FREE(m->posid);
    MMSPCL_FREE(m->cache);
    MMSPCL_FREE(m->scratch);
    memset(m, 0, sizeof *m);
}

void mmspcl_rt_sync(mmspcl_rt *m) {
    long i, n = (long)m->P.n;
    MMSPCL__RT_OMP_FOR
    for (i = 0; i < n; i++) m->w[i] = (float)m->P.w[i];
}

static size_t mmspcl__rt_add(mmspcl_rt *m, const char *name, int64_t a, int64_t b, int decay, mmspcl_init init,
                             double scale, mmspcl_rng *rng) {
    int64_t shape[2];
    shape[0] = a;
    shape[1] = b;
    return mmspcl_params_add(&m->P, name, b ? 2 : 1, shape, decay, init, scale, rng);
}

mmspcl_status mmspcl_rt_create(mmspcl_rt *m, const mmspcl_roberta_config *cfg, int with_mlm,
                               uint64_t seed, int max_tokens, int max_seq, mmspcl_error *err) {
    const int H = cfg->hidden_size, I = cfg->intermediate_size, V = cfg->vocab_size;
    const double sd = 0.02;
    mmspcl_rng rng;
    char name[160];
    size_t big, scr;
    int l;
    memset(m, 0, sizeof *m);
    if (H < 1 || cfg->num_heads < 1 || H % cfg->num_heads || I < 1 || V < 1 || cfg->num_layers < 1 ||
        max_tokens < 1 || max_seq < 1 || max_seq > max_tokens || cfg->type_vocab_size < 1 ||
        max_seq > cfg->max_positions - cfg->pad_id - 1 || cfg->pad_id < 0 || cfg->pad_id >= V)
        return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "rt_create: inconsistent configuration (hidden %d, heads %d, max_seq %d, positions %d)",
                            H, cfg->num_heads, max_seq, cfg->max_positions);
    m->cfg = *cfg;
    m->mlm = with_mlm;
    m->max_tokens = max_tokens;
    m->max_seq = max_seq;
    mmspcl_rng_seed(&rng, seed);
    mmspcl_params_init(&m->P);
    m->word = mmspcl__rt_add(m, "embeddings.word_embeddings.weight", V, H, 1, MMSPCL_INIT_NORMAL, sd, &rng);
    m->pos = mmspcl__rt_add(m, "embeddings.position_embeddings.weight", cfg->max_positions, H, 1, MMSPCL_INIT_NORMAL, sd, &rng);
    m->type = mmspcl__rt_add(m, "embeddings.token_type_embeddings.weight", cfg->type_vocab_size, H, 1, MMSPCL_INIT_NORMAL, sd, &rng);
    m->eln_g = mmspcl__rt_add(m, "embeddings.LayerNorm.weight", H, 0, 0, MMSPCL_INIT_ONE, 0, &rng);
    m->eln_b = mmspcl__rt_add(m, "embeddings.LayerNorm.bias", H, 0, 0, MMSPCL_INIT_ZERO, 0, &rng);
    if (!(m->L = (mmspcl_rt_layer *)MMSPCL_MALLOC(sizeof *m->L * (size_t)cfg->num_layers))) goto oom;
    for (l = 0; l < cfg->num_layers; l++) {
        mmspcl_rt_layer *L = &m->L[l];
#define MMSPCL__RTN(s) (snprintf(name, sizeof name, "encoder.layer.%d.%s", l, s), name)
        L->wq = mmspcl__rt_add(m, MMSPCL__RTN("attention.self.query.weight"), H, H, 1, MMSPCL_INIT_NORMAL, sd, &rng);
        L->bq = mmspcl__rt_add(m, MMSPCL__RTN("attention.self.query.bias"), H, 0, 0, MMSPCL_INIT_ZERO, 0, &rng);
        L->wk = mmspcl__rt_add(m, MMSPCL__RTN("attention.self.key.weight"), H, H, 1, MMSPCL_INIT_NORMAL, sd, &rng);
        L->bk = mmspcl__rt_add(m, MMSPCL__RTN("attention.self.key.bias"), H, 0, 0, MMSPCL_INIT_ZERO, 0, &rng);
        L->wv = mmspcl__rt_add(m, MMSPCL__RTN("attention.self.value.weight"), H, H, 1, MMSPCL_INIT_NORMAL, sd, &rng);
        L->bv = mmspcl__rt_add(m, MMSPCL__RTN("attention.self.value.bias"), H, 0, 0, MMSPCL_INIT_ZERO, 0, &rng);
        L->wo = mmspcl__rt_add(m, MMSPCL__RTN("attention.output.dense.weight"), H, H, 1, MMSPCL_INIT_NORMAL, sd, &rng);
        L->bo = mmspcl__rt_add(m, MMSPCL__RTN("attention.output.dense.bias"), H, 0, 0, MMSPCL_INIT_ZERO, 0, &rng);
        L->ln1_g = mmspcl__rt_add(m, MMSPCL__RTN("attention.output.LayerNorm.weight"), H, 0, 0, MMSPCL_INIT_ONE, 0, &rng);
        L->ln1_b = mmspcl__rt_add(m, MMSPCL__RTN("attention.output.LayerNorm.bias"), H, 0, 0, MMSPCL_INIT_ZERO, 0, &rng);
        L->wi = mmspcl__rt_add(m, MMSPCL__RTN("intermediate.dense.weight"), I, H, 1, MMSPCL_INIT_NORMAL, sd, &rng);
        L->bi = mmspcl__rt_add(m, MMSPCL__RTN("intermediate.dense.bias"), I, 0, 0, MMSPCL_INIT_ZERO, 0, &rng);
        L->wo2 = mmspcl__rt_add(m, MMSPCL__RTN("output.dense.weight"), H, I, 1, MMSPCL_INIT_NORMAL, sd, &rng);
        L->bo2 = mmspcl__rt_add(m, MMSPCL__RTN("output.dense.bias"), H, 0, 0, MMSPCL_INIT_ZERO, 0, &rng);
        L->ln2_g = mmspcl__rt_add(m, MMSPCL__RTN("output.LayerNorm.weight"), H, 0, 0, MMSPCL_INIT_ONE, 0, &rng);
        L->ln2_b = mmspcl__rt_add(m, MMSPCL__RTN("output.LayerNorm.bias"), H, 0, 0, MMSPCL_INIT_ZERO, 0, &rng);
#undef MMSPCL__RTN
    }
    if (with_mlm) {
        m->lm_w = mmspcl__rt_add(m, "lm_head.dense.weight", H, H, 1, MMSPCL_INIT_NORMAL, sd, &rng);
        m->lm_b = mmspcl__rt_add(m, "lm_head.dense.bias", H, 0, 0, MMSPCL_INIT_ZERO, 0, &rng);
        m->lm_ln_g = mmspcl__rt_add(m, "lm_head.layer_norm.weight", H, 0, 0, MMSPCL_INIT_ONE, 0, &rng);
        m->lm_ln_b = mmspcl__rt_add(m, "lm_head.layer_norm.bias", H, 0, 0, MMSPCL_INIT_ZERO, 0, &rng);
        m->lm_bias = mmspcl__rt_add(m, "lm_head.bias", V, 0, 0, MMSPCL_INIT_ZERO, 0, &rng);
    }
    if (m->P.oom) goto oom;
    /* HF zeroes the padding rows of the word and position tables */
    memset(m->P.w + m->word + (size_t)cfg->pad_id * H, 0, sizeof(double) * (size_t)H);
    memset(m->P.w + m->pos + (size_t)cfg->pad_id * H, 0, sizeof(double) * (size_t)H);
    m->w = (float *)MMSPCL_MALLOC(sizeof(float) * m->P.n);
    m->g = (float *)MMSPCL_MALLOC(sizeof(float) * m->P.n);
    m->starts = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)max_tokens);
    m->lens = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)max_tokens);
    m->tok = (int32_t *)MMSPCL_MALLOC(sizeof(int32_t) * (size_t)max_tokens);
    m->posid = (int32_t *)MMSPCL_MALLOC(sizeof(int32_t) * (size_t)max_tokens);
    m->cache_n = 2 * (size_t)max_tokens * H + (size_t)max_tokens + mmspcl__rt_layer_floats(m) * (size_t)cfg->num_layers;
    m->cache = (float *)MMSPCL_MALLOC(sizeof(float) * m->cache_n);
    big = (size_t)(I > H ? I : H);
    if (with_mlm && (size_t)V > big) big = (size_t)V;
    /* dx, dz, dh, dq, dk, dv, dctx [T][H]; dI [T][I]; tmp, xT, dyT [T][big]; WT, dW [H][big];
       attention rows [threads][max_seq] */
    scr = 7 * (size_t)max_tokens * H + (size_t)max_tokens * I + 3 * (size_t)max_tokens * big + 2 * (size_t)H * big +
          (size_t)MMSPCL__RT_MAX_THREADS() * (size_t)max_seq;
    m->scratch_n = scr;
    m->scratch = (float *)MMSPCL_MALLOC(sizeof(float) * scr);
    if (!m->w || !m->g || !m->starts || !m->lens || !m->tok || !m->posid || !m->cache || !m->scratch) goto oom;
    memset(m->g, 0, sizeof(float) * m->P.n);
    mmspcl_rt_sync(m);
    return MMSPCL_OK;
oom:
    mmspcl_rt_free(m);
    return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "rt_create: out of memory");
}

/* attention of one (sequence, head): probs [L][L] kept */
static void mmspcl__rt_attn_fwd(const float *q, const float *k, const float *v, float *ctx, float *probs, int L,
                                int H, int h, int hd) {
    const float scale = 1.0f / sqrtf((float)hd);
    int i, j, d;
    for (i = 0; i < L; i++) {
        float *p = probs + (size_t)i * L;
        const float *qi = q + (size_t)i * H + h * hd;
        float *oi = ctx + (size_t)i * H + h * hd;
        for (j = 0; j < L; j++) p[j] = mmspcl_dot_f32(qi, k + (size_t)j * H + h * hd, hd) * scale;
        mmspcl_softmax(p, L);
        for (d = 0; d < hd; d++) oi[d] = 0.0f;
        for (j = 0; j < L; j++) {
            const float *vj = v + (size_t)j * H + h * hd;
            if (p[j] == 0.0f) continue;
            for (d = 0; d < hd; d++) oi[d] += p[j] * vj[d];
        }
    }
}

static void mmspcl__rt_attn_bwd(const float *q, const float *k, const float *v, const float *probs,
                                const float *dctx, float *dq, float *dk, float *dv, float *dp, int L, int H,
                                int h, int hd) {
    const float scale = 1.0f / sqrtf((float)hd);
    int i, j, d;
    for (i = 0; i < L; i++) {
        const float *p = probs + (size_t)i * L, *di = dctx + (size_t)i * H + h * hd, *qi = q + (size_t)i * H + h * hd;
        float *dqi = dq + (size_t)i * H + h * hd;
        double s = 0.0;
        for (j = 0; j < L; j++) {
            dp[j] = mmspcl_dot_f32(di, v + (size_t)j * H + h * hd, hd);
            s += (double)p[j] * dp[j];
        }
        for (j = 0; j < L; j++) {
            const float ds = p[j] * (dp[j] - (float)s) * scale;
            const float *kj = k + (size_t)j * H + h * hd;
            float *dkj = dk + (size_t)j * H + h * hd, *dvj = dv + (size_t)j * H + h * hd;
            for (d = 0; d < hd; d++) {
                dqi[d] += ds * kj[d];
                dkj[d] += ds * qi[d];
                dvj[d] += p[j] * di[d];
            }
        }
    }
}

/* probs offset of sequence b: num_heads * sum of L^2 before it (fits: sum L^2 <= max_seq * T) */
static size_t mmspcl__rt_poff(const mmspcl_rt *m, int b) {
    size_t o = 0;
    int i;
    for (i = 0; i < b; i++) o += (size_t)m->lens[i] * m->lens[i];
    return o * (size_t)m->cfg.num_heads;
}

mmspcl_status mmspcl_rt_forward(mmspcl_rt *m, const int32_t *ids, const int *lengths, int batch, int seq,
                                mmspcl_error *err) {
    const mmspcl_roberta_config *c = &m->cfg;
    const int H = c->hidden_size, I = c->intermediate_size, nh = c->num_heads, hd = H / nh;
    const float *w = m->w;
    float *x;
    int b, t, T = 0, l, task;
    size_t *poff;
    mmspcl_status st;
    if (batch < 1 || seq < 1 || batch > m->max_tokens) return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "rt_forward: empty or oversized batch");
    for (b = 0; b < batch; b++) {
        if (lengths[b] < 1 || lengths[b] > seq || lengths[b] > m->max_seq)
            return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "rt_forward: sequence %d has length %d (1..%d allowed)", b, lengths[b],
                                seq < m->max_seq ? seq : m->max_seq);
        for (t = 0; t < lengths[b]; t++)
            if (ids[(size_t)b * seq + t] < 0 || ids[(size_t)b * seq + t] >= c->vocab_size)
                return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "rt_forward: token id %d at [%d][%d] is outside the vocabulary (%d)",
                                    ids[(size_t)b * seq + t], b, t, c->vocab_size);
        T += lengths[b];
        if (T > m->max_tokens)
            return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "rt_forward: more than the %d tokens the trainer was created for", m->max_tokens);
    }
    m->T = T;
    m->batch = batch;
    for (b = 0, T = 0; b < batch; b++) {
        int pos = c->pad_id;
        m->starts[b] = T;
        m->lens[b] = lengths[b];
        for (t = 0; t < lengths[b]; t++, T++) {
            int32_t id = ids[(size_t)b * seq + t];
            m->tok[T] = id;
            m->posid[T] = id != c->pad_id ? ++pos : c->pad_id;
        }
    }
    memset(m->g, 0, sizeof(float) * m->P.n);
    /* embeddings -> LayerNorm; the sum goes through the layer-0 output buffer as scratch */
    x = mmspcl__rt_layer_cache(m, 0).h[MMSPCL__RT_XOUT];
    for (t = 0; t < T; t++) {
        const float *we = w + m->word + (size_t)m->tok[t] * H, *pe = w + m->pos + (size_t)m->posid[t] * H,
                    *te = w + m->type;
        float *row = x + (size_t)t * H;
        int i;
        for (i = 0; i < H; i++) row[i] = 0.0f;
        for (i = 0; i < H; i++) row[i] += we[i];
        for (i = 0; i < H; i++) row[i] += pe[i];
        for (i = 0; i < H; i++) row[i] += te[i];
    }
    mmspcl__rt_ln(MMSPCL__RT_X0(m), x, w + m->eln_g, w + m->eln_b, T, H, c->layer_norm_eps, MMSPCL__RT_XHAT0(m),
                  MMSPCL__RT_INV0(m));
    poff = (size_t *)MMSPCL_MALLOC(sizeof(size_t) * (size_t)batch);
    if (!poff) return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "rt_forward: out of memory");
    for (b = 0; b < batch; b++) poff[b] = mmspcl__rt_poff(m, b);
    x = MMSPCL__RT_X0(m);
    for (l = 0; l < c->num_layers; l++) {
        const mmspcl_rt_layer *L = &m->L[l];
        mmspcl__rt_lc lc = mmspcl__rt_layer_cache(m, l);
        float *q = lc.h[MMSPCL__RT_Q], *k = lc.h[MMSPCL__RT_K], *v = lc.h[MMSPCL__RT_V], *ctx = lc.h[MMSPCL__RT_CTX];
        float *h1 = lc.h[MMSPCL__RT_H1], *xo = lc.h[MMSPCL__RT_XOUT];
        size_t i, n;
        if ((st = mmspcl__rt_lin(q, x, T, H, w + L->wq, H, w + L->bq)) || (st = mmspcl__rt_lin(k, x, T, H, w + L->wk, H, w + L->bk)) ||
            (st = mmspcl__rt_lin(v, x, T, H, w + L->wv, H, w + L->bv)))
            goto fail;
        MMSPCL__RT_OMP_FOR
        for (task = 0; task < batch * nh; task++) {
            const int bb = task / nh, h = task % nh;
            const size_t s0 = (size_t)m->starts[bb] * H;
            mmspcl__rt_attn_fwd(q + s0, k + s0, v + s0, ctx + s0,
                                lc.probs + poff[bb] + (size_t)h * m->lens[bb] * m->lens[bb], m->lens[bb], H, h, hd);
        }
        if ((st = mmspcl__rt_lin(h1, ctx, T, H, w + L->wo, H, w + L->bo))) goto fail;
        n = (size_t)T * H;
        for (i = 0; i < n; i++) h1[i] += x[i];
        mmspcl__rt_ln(h1, h1, w + L->ln1_g, w + L->ln1_b, T, H, c->layer_norm_eps, lc.h[MMSPCL__RT_XH1], lc.inv1);
        if ((st = mmspcl__rt_lin(lc.f, h1, T, H, w + L->wi, I, w + L->bi))) goto fail;
        n = (size_t)T * I;
        for (i = 0; i < n; i++) lc.ga[i] = lc.f[i];
        mmspcl_gelu(lc.ga, n);
        if ((st = mmspcl__rt_lin(xo, lc.ga, T, I, w + L->wo2, H, w + L->bo2))) goto fail;
        n = (size_t)T * H;
        for (i = 0; i < n; i++) xo[i] += h1[i];
        mmspcl__rt_ln(xo, xo, w + L->ln2_g, w + L->ln2_b, T, H, c->layer_norm_eps, lc.h[MMSPCL__RT_XH2], lc.inv2);
        x = xo;
    }
    MMSPCL_FREE(poff);
    m->out = x;
    return MMSPCL_OK;
fail:
    MMSPCL_FREE(poff);
    return mmspcl__t_fail(err, st, "rt_forward: layer %d failed (%s)", l, mmspcl_status_name(st));
}

static void mmspcl__rt_flush(mmspcl_rt *m) {
    long i, n = (long)m->P.n;
    MMSPCL__RT_OMP_FOR
    for (i = 0; i < n; i++) { m->P.g[i] += m->g[i]; m->g[i] = 0.0f; }
}

mmspcl_status mmspcl_rt_backward(mmspcl_rt *m, const float *dout, float *demb, mmspcl_error *err) {
    const mmspcl_roberta_config *c = &m->cfg;
    const int H = c->hidden_size, I = c->intermediate_size, nh = c->num_heads, hd = H / nh, T = m->T;
    const size_t TM = (size_t)m->max_tokens;
    float *dx = m->scratch, *dz = dx + TM * H, *dh = dz + TM * H, *dq = dh + TM * H, *dk = dq + TM * H,
          *dv = dk + TM * H, *dctx = dv + TM * H, *dI = dctx + TM * H;
    mmspcl__rt_scr s;
    size_t bigc, i, n = (size_t)T * H, *poff;
    int l, task, b;
    mmspcl_status st = MMSPCL_OK;
    bigc = (size_t)(I > H ? I : H);
    if (m->mlm && (size_t)c->vocab_size > bigc) bigc = (size_t)c->vocab_size;
    s.tmp = dI + TM * I;
    s.xT = s.tmp + TM * bigc;
    s.dyT = s.xT + TM * bigc;
    s.WT = s.dyT + TM * bigc;
    s.dW = s.WT + (size_t)H * bigc;
    {
        float *attn_rows = s.dW + (size_t)H * bigc;
        poff = (size_t *)MMSPCL_MALLOC(sizeof(size_t) * (size_t)m->batch);
        if (!poff) return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "rt_backward: out of memory");
        for (b = 0; b < m->batch; b++) poff[b] = mmspcl__rt_poff(m, b);
        memcpy(dx, dout, sizeof(float) * n);
        for (l = c->num_layers - 1; l >= 0; l--) {
            const mmspcl_rt_layer *L = &m->L[l];
            mmspcl__rt_lc lc = mmspcl__rt_layer_cache(m, l);
            const float *xin = l ? mmspcl__rt_layer_cache(m, l - 1).h[MMSPCL__RT_XOUT] : MMSPCL__RT_X0(m);
            const float *h1 = lc.h[MMSPCL__RT_H1];
            size_t nI = (size_t)T * I;
            /* x_out = LN2(h1 + FFN(h1)) */
            mmspcl__rt_ln_bwd(m, dz, dx, lc.h[MMSPCL__RT_XH2], lc.inv2, L->ln2_g, L->ln2_b, T, H);
            memset(dI, 0, sizeof(float) * nI);
            if ((st = mmspcl__rt_lin_bwd(m, lc.ga, T, I, L->wo2, H, L->bo2, dz, dI, &s))) break;
            for (i = 0; i < nI; i++) dI[i] *= mmspcl__rt_gelu_grad(lc.f[i]);
            memcpy(dh, dz, sizeof(float) * n);                 /* residual */
            if ((st = mmspcl__rt_lin_bwd(m, h1, T, H, L->wi, I, L->bi, dI, dh, &s))) break;
            /* h1 = LN1(x_in + Wo ctx) */
            mmspcl__rt_ln_bwd(m, dz, dh, lc.h[MMSPCL__RT_XH1], lc.inv1, L->ln1_g, L->ln1_b, T, H);
            memset(dctx, 0, sizeof(float) * n);
            if ((st = mmspcl__rt_lin_bwd(m, lc.h[MMSPCL__RT_CTX], T, H, L->wo, H, L->bo, dz, dctx, &s))) break;
            memset(dq, 0, sizeof(float) * n);
            memset(dk, 0, sizeof(float) * n);
            memset(dv, 0, sizeof(float) * n);
            MMSPCL__RT_OMP_FOR
            for (task = 0; task < m->batch * nh; task++) {
                const int bb = task / nh, h = task % nh;
                const size_t s0 = (size_t)m->starts[bb] * H;
                mmspcl__rt_attn_bwd(lc.h[MMSPCL__RT_Q] + s0, lc.h[MMSPCL__RT_K] + s0, lc.h[MMSPCL__RT_V] + s0,
                                    lc.probs + poff[bb] + (size_t)h * m->lens[bb] * m->lens[bb], dctx + s0, dq + s0,
                                    dk + s0, dv + s0, attn_rows + (size_t)MMSPCL__RT_THREAD_ID() * m->max_seq,
                                    m->lens[bb], H, h, hd);
            }
            memcpy(dx, dz, sizeof(float) * n);                 /* residual */
            if ((st = mmspcl__rt_lin_bwd(m, xin, T, H, L->wq, H, L->bq, dq, dx, &s)) ||
                (st = mmspcl__rt_lin_bwd(m, xin, T, H, L->wk, H, L->bk, dk, dx, &s)) ||
                (st = mmspcl__rt_lin_bwd(m, xin, T, H, L->wv, H, L->bv, dv, dx, &s)))
                break;
        }
        MMSPCL_FREE(poff);
    }
    if (st) return mmspcl__t_fail(err, st, "rt_backward: layer %d failed (%s)", l, mmspcl_status_name(st));
    mmspcl__rt_ln_bwd(m, dz, dx, MMSPCL__RT_XHAT0(m), MMSPCL__RT_INV0(m), m->eln_g, m->eln_b, T, H);
    if (demb) memcpy(demb, dz, sizeof(float) * n);
    {
        float *gw = m->g + m->word, *gp = m->g + m->pos, *gt = m->g + m->type;
        int t, j;
        for (t = 0; t < T; t++) {
            const float *d = dz + (size_t)t * H;
            float *a = gw + (size_t)m->tok[t] * H, *p = gp + (size_t)m->posid[t] * H;
            for (j = 0; j < H; j++) { a[j] += d[j]; p[j] += d[j]; gt[j] += d[j]; }
        }
    }
    mmspcl__rt_flush(m);
    return MMSPCL_OK;
}

double mmspcl_rt_mlm_loss(mmspcl_rt *m, const int *rows, const int32_t *target, int n, float *dout,
                          mmspcl_error *err) {
    const int H = m->cfg.hidden_size, V = m->cfg.vocab_size;
    const float *w = m->w;
    float *hs, *a, *ga, *y, *xh, *inv, *logits, *dy, *dga, *dh;
    mmspcl__rt_scr s;
    double loss = 0.0;
    int i, j;
    size_t need, mx;
    if (!m->mlm || n < 1) { mmspcl__t_fail(err, MMSPCL_ERR_ARG, "rt_mlm_loss: no MLM head or no rows"); return -1.0; }
    mx = (size_t)(V > H ? V : H);
    need = (size_t)n * (7 * (size_t)H + 1 + 2 * (size_t)V) + 3 * (size_t)n * mx + 2 * (size_t)H * mx;
    hs = (float *)MMSPCL_MALLOC(sizeof(float) * need);
    if (!hs) { mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "rt_mlm_loss: out of memory"); return -1.0; }
    a = hs + (size_t)n * H; ga = a + (size_t)n * H; y = ga + (size_t)n * H; xh = y + (size_t)n * H;
    dga = xh + (size_t)n * H; dh = dga + (size_t)n * H; inv = dh + (size_t)n * H;
    logits = inv + n; dy = logits + (size_t)n * V;
    s.tmp = dy + (size_t)n * V;
    s.xT = s.tmp + (size_t)n * mx;
    s.dyT = s.xT + (size_t)n * mx;
    s.WT = s.dyT + (size_t)n * mx;
    s.dW = s.WT + (size_t)H * mx;
    for (i = 0; i < n; i++) memcpy(hs + (size_t)i * H, m->out + (size_t)rows[i] * H, sizeof(float) * H);
    if (mmspcl__rt_lin(a, hs, n, H, w + m->lm_w, H, w + m->lm_b)) goto fail;
    memcpy(ga, a, sizeof(float) * (size_t)n * H);
    mmspcl_gelu(ga, (size_t)n * H);
    mmspcl__rt_ln(y, ga, w + m->lm_ln_g, w + m->lm_ln_b, n, H, m->cfg.layer_norm_eps, xh, inv);
    if (mmspcl__rt_lin(logits, y, n, H, w + m->word, V, w + m->lm_bias)) goto fail;
    for (i = 0; i < n; i++) {
        float *lg = logits + (size_t)i * V, *d = dy + (size_t)i * V, mx = lg[0];
        double sum = 0.0;
        for (j = 1; j < V; j++) if (lg[j] > mx) mx = lg[j];
        for (j = 0; j < V; j++) sum += exp((double)(lg[j] - mx));
        loss += log(sum) - (double)(lg[target[i]] - mx);
        for (j = 0; j < V; j++) d[j] = (float)(exp((double)(lg[j] - mx)) / sum / n);
        d[target[i]] -= 1.0f / (float)n;
    }
    memset(dh, 0, sizeof(float) * (size_t)n * H);
    if (mmspcl__rt_lin_bwd(m, y, n, H, m->word, V, m->lm_bias, dy, dh, &s)) goto fail;
    mmspcl__rt_ln_bwd(m, dga, dh, xh, inv, m->lm_ln_g, m->lm_ln_b, n, H);
    for (i = 0; i < n * H; i++) dga[i] *= mmspcl__rt_gelu_grad(a[i]);
    memset(dh, 0, sizeof(float) * (size_t)n * H);
    if (mmspcl__rt_lin_bwd(m, hs, n, H, m->lm_w, H, m->lm_b, dga, dh, &s)) goto fail;
    memset(dout, 0, sizeof(float) * (size_t)m->T * H);
    for (i = 0; i < n; i++) {
        float *o = dout + (size_t)rows[i] * H;
        for (j = 0; j < H; j++) o[j] += dh[(size_t)i * H + j];
    }
    MMSPCL_FREE(hs);
    return loss / n;
fail:
    MMSPCL_FREE(hs);
    mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "rt_mlm_loss: a linear layer failed");
    return -1.0;
}

mmspcl_status mmspcl_rt_write_config(const mmspcl_rt *m, mmspcl_writer *wr, mmspcl_error *err) {
    const mmspcl_roberta_config *c = &m->cfg;
    if (mmspcl_writer_set_str(wr, "general.architecture", "roberta") ||
        mmspcl_writer_set_int(wr, "roberta.vocab_size", c->vocab_size) ||
        mmspcl_writer_set_int(wr, "roberta.hidden_size", c->hidden_size) ||
        mmspcl_writer_set_int(wr, "roberta.num_hidden_layers", c->num_layers) ||
        mmspcl_writer_set_int(wr, "roberta.num_attention_heads", c->num_heads) ||
        mmspcl_writer_set_int(wr, "roberta.intermediate_size", c->intermediate_size) ||
        mmspcl_writer_set_int(wr, "roberta.max_position_embeddings", c->max_positions) ||
        mmspcl_writer_set_int(wr, "roberta.type_vocab_size", c->type_vocab_size) ||
        mmspcl_writer_set_int(wr, "roberta.pad_token_id", c->pad_id) ||
        mmspcl_writer_set_float(wr, "roberta.layer_norm_eps", c->layer_norm_eps) ||
        mmspcl_writer_set_str(wr, "roberta.hidden_act", "gelu"))
        return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "rt_write_config: out of memory");
    return MMSPCL_OK;
}

mmspcl_status mmspcl_rt_write_tensors(const mmspcl_rt *m, mmspcl_writer *wr, mmspcl_dtype dtype,
                                      void **hold, mmspcl_error *err) {
    size_t total = 0, off = 0;
    unsigned char *buf;
    int t;
    mmspcl_status st;
    *hold = NULL;
    for (t = 0; t < m->P.n_info; t++) {
        const mmspcl_param_info *pi = &m->P.info[t];
        if (!strncmp(pi->name, "lm_head.", 8)) continue;
        total += pi->n * sizeof(float) + 64;
    }
    if (!(buf = (unsigned char *)MMSPCL_MALLOC(total + 1))) return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "rt_write: out of memory");
    *hold = buf;
    for (t = 0; t < m->P.n_info; t++) {
        const mmspcl_param_info *pi = &m->P.info[t];
        mmspcl_dtype dt = MMSPCL_F32;
        const float *src = m->w + pi->off;
        size_t bytes;
        int64_t r;
        if (!strncmp(pi->name, "lm_head.", 8)) continue;
        /* matrices of the layers are quantized; embedding tables too (rows are gathered) */
        if (pi->ndim == 2 && pi->shape[1] % 32 == 0) dt = dtype;
        bytes = mmspcl_dtype_row_size(dt, pi->shape[pi->ndim - 1]) * (size_t)(pi->ndim == 2 ? pi->shape[0] : 1);
        for (r = 0; r < (pi->ndim == 2 ? pi->shape[0] : 1); r++) {
            const int64_t cols = pi->shape[pi->ndim - 1];
            if ((st = mmspcl_quantize_row(dt, src + r * cols, buf + off + (size_t)r * mmspcl_dtype_row_size(dt, cols), cols)))
                return mmspcl__t_fail(err, st, "rt_write: cannot convert %s", pi->name);
        }
        if ((st = mmspcl_writer_add_tensor(wr, pi->name, dt, pi->ndim, pi->shape, buf + off, bytes, err))) return st;
        off += (bytes + 63) / 64 * 64;
    }
    return MMSPCL_OK;
}

/* ---------------------------------------------------------------------------------------------
   MELD end to end (see parts/train_roberta_api.h)
   ------------------------------------------------------------------------------------------ */
void mmspcl_meld_recipe_defaults(mmspcl_meld_recipe *r) {
    memset(r, 0, sizeof *r);
    r->hidden = 128; r->layers = 2; r->heads = 4; r->ffn = 256; r->max_len = 64;
    r->mlm_epochs = 6; r->mlm_batch = 32; r->mlm_lr = 5e-4;
    r->spcl_epochs = 6; r->batch = 32; r->patience = 2; r->warmup = 128;
    r->lr = 3e-4; r->head_lr = 1e-3; r->temperature = 0.08; r->ce_weight = 1.0; r->sent_weight = 0.5; r->clip = 1.0;
    r->pool_size = 512; r->K = 64; r->curriculum = 1; r->holdout = 1;
    r->ngram_bits = 17; r->msve_hidden = 64; r->msve_epochs = 25; r->msve_dropout = 0.3; r->msve_lr = 1e-3;
    r->seed = 1;
}

/* ---- n-gram view ---- */
static uint32_t mmspcl__ng_hash(const char *s, size_t n, uint32_t h) {
    size_t i;
    for (i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 16777619u; }
    return h;
}



/* ---- sparse n-gram TF-IDF and logistic regression (the "a" view) ---- */
typedef struct mmspcl__kv32 { uint32_t k; float v; } mmspcl__kv32;
static int mmspcl__kv_cmp(const void *a, const void *b) {
    const uint32_t x = ((const mmspcl__kv32 *)a)->k, y = ((const mmspcl__kv32 *)b)->k;
    return x < y ? -1 : x > y;
}
/* sort, merge duplicates (summing), sublinear tf * idf, l2-normalise; returns the new count */
static int mmspcl__kv_finish(mmspcl__kv32 *e, int n, const float *idf, int tf_log) {
    int i, o = 0;
    double norm = 0;
    if (!n) return 0;
    qsort(e, (size_t)n, sizeof *e, mmspcl__kv_cmp);
    for (i = 0; i < n; i++) {
        if (o && e[o - 1].k == e[i].k) e[o - 1].v += e[i].v;
        else e[o++] = e[i];
    }
    for (i = 0; i < o; i++) {
        if (tf_log) e[i].v = 1.0f + logf(e[i].v);
        if (idf) e[i].v *= idf[e[i].k];
        norm += (double)e[i].v * e[i].v;
    }
    if (norm > 0) for (i = 0; i < o; i++) e[i].v = (float)(e[i].v / sqrt(norm));
    return o;
}

int mmspcl_ngram_sparse(const char *text, int nbits, const float *idf, int32_t *idx, float *val, int cap) {
    const uint32_t mask = (1u << nbits) - 1u;
    char *buf;
    size_t L = strlen(text), n = 0, p, *st, *ln;
    mmspcl__kv32 *e;
    int nt = 0, nw = 0, ne = 0, ne2, i, k, g;
    buf = (char *)MMSPCL_MALLOC(L + 3);
    st = (size_t *)MMSPCL_MALLOC(sizeof(size_t) * (L + 2));
    ln = (size_t *)MMSPCL_MALLOC(sizeof(size_t) * (L + 2));
    e = (mmspcl__kv32 *)MMSPCL_MALLOC(sizeof(mmspcl__kv32) * (12 * L + 64));
    if (!buf || !st || !ln || !e) { MMSPCL_FREE(buf); MMSPCL_FREE(st); MMSPCL_FREE(ln); MMSPCL_FREE(e); return -1; }
    for (p = 0; p < L; p++) {
        unsigned char c = (unsigned char)text[p];
        if (c == 0xE2 && p + 2 < L && (unsigned char)text[p + 1] == 0x80 && (unsigned char)text[p + 2] == 0x99) { buf[n++] = '\''; p += 2; continue; }
        if (c == '"') continue;
        buf[n++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    buf[n] = 0;
    /* block 1: word tokens (letter/digit/' runs, other characters alone), uni- and bigrams */
    for (p = 0; p < n;) {
        unsigned char c = (unsigned char)buf[p];
        if (c <= ' ') { p++; continue; }
        st[nt] = p;
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '\'' || c >= 0x80) {
            while (p < n) {
                c = (unsigned char)buf[p];
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '\'' || c >= 0x80)) break;
                p++;
            }
        } else p++;
        ln[nt] = p - st[nt];
        nt++;
    }
    for (i = 0; i < nt; i++) { e[ne].k = mmspcl__ng_hash(buf + st[i], ln[i], 2166136261u) & mask; e[ne++].v = 1.0f; }
    for (i = 0; i + 1 < nt; i++) {
        uint32_t h = mmspcl__ng_hash(buf + st[i], ln[i], 2166136261u ^ 0x5bd1e995u);
        h = mmspcl__ng_hash(" ", 1, h);
        e[ne].k = mmspcl__ng_hash(buf + st[i + 1], ln[i + 1], h) & mask;
        e[ne++].v = 1.0f;
    }
    ne = mmspcl__kv_finish(e, ne, idf, 1);
    /* block 2: character 2..5-grams inside each space-separated word padded with spaces (char_wb) */
    ne2 = ne;
    for (p = 0; p < n;) {
        size_t s0, w;
        char tmp[256];
        while (p < n && (unsigned char)buf[p] <= ' ') p++;
        if (p >= n) break;
        s0 = p;
        while (p < n && (unsigned char)buf[p] > ' ') p++;
        w = p - s0 < sizeof tmp - 2 ? p - s0 : sizeof tmp - 2;
        tmp[0] = ' ';
        memcpy(tmp + 1, buf + s0, w);
        tmp[w + 1] = ' ';
        nw++;
        for (g = 2; g <= 5; g++)
            for (k = 0; k + g <= (int)w + 2; k++) {
                e[ne2].k = mmspcl__ng_hash(tmp + k, (size_t)g, 0x811c9dc5u ^ 0x27d4eb2du) & mask;
                e[ne2++].v = 1.0f;
            }
    }
    (void)nw;
    ne2 = ne + mmspcl__kv_finish(e + ne, ne2 - ne, idf, 1);
    /* both blocks (each l2-normalised) merged; colliding buckets add */
    k = mmspcl__kv_finish(e, ne2, NULL, 0);
    /* kv_finish re-normalised the union: scale back to the sum of two unit blocks */
    for (i = 0; i < k; i++) e[i].v *= (float)sqrt(2.0);
    for (i = 0; i < k && i < cap; i++) { idx[i] = (int32_t)e[i].k; val[i] = e[i].v; }
    MMSPCL_FREE(buf); MMSPCL_FREE(st); MMSPCL_FREE(ln); MMSPCL_FREE(e);
    return k;
}

/* CSR rows of a split */
typedef struct mmspcl__csr { int n; int64_t *ptr; int32_t *idx; float *val; } mmspcl__csr;
static void mmspcl__csr_free(mmspcl__csr *c) { MMSPCL_FREE(c->ptr); MMSPCL_FREE(c->idx); MMSPCL_FREE(c->val); memset(c, 0, sizeof *c); }
static int mmspcl__csr_build(mmspcl__csr *c, const mmspcl_meld *s, int nbits, const float *idf) {
    int64_t cap = 1 << 16, nnz = 0;
    int i, k, tmpcap = 1 << 16;
    int32_t *ti = (int32_t *)MMSPCL_MALLOC(sizeof(int32_t) * (size_t)tmpcap);
    float *tv = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)tmpcap);
    memset(c, 0, sizeof *c);
    c->n = s->n_rows;
    c->ptr = (int64_t *)MMSPCL_MALLOC(sizeof(int64_t) * (size_t)(s->n_rows + 1));
    c->idx = (int32_t *)MMSPCL_MALLOC(sizeof(int32_t) * (size_t)cap);
    c->val = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)cap);
    if (!ti || !tv || !c->ptr || !c->idx || !c->val) goto oom;
    c->ptr[0] = 0;
    for (i = 0; i < s->n_rows; i++) {
        k = mmspcl_ngram_sparse(s->rows[i].utterance, nbits, idf, ti, tv, tmpcap);
        if (k < 0) goto oom;
        if (k > tmpcap) k = tmpcap;
        if (nnz + k > cap) {
            int32_t *a;
            float *b;
            while (nnz + k > cap) cap *= 2;
            a = (int32_t *)MMSPCL_REALLOC(c->idx, sizeof(int32_t) * (size_t)cap);
            if (!a) goto oom;
            c->idx = a;
            b = (float *)MMSPCL_REALLOC(c->val, sizeof(float) * (size_t)cap);
            if (!b) goto oom;
            c->val = b;
        }
        memcpy(c->idx + nnz, ti, sizeof(int32_t) * (size_t)k);
        memcpy(c->val + nnz, tv, sizeof(float) * (size_t)k);
        nnz += k;
        c->ptr[i + 1] = nnz;
    }
    MMSPCL_FREE(ti); MMSPCL_FREE(tv);
    return 0;
oom:
    MMSPCL_FREE(ti); MMSPCL_FREE(tv);
    mmspcl__csr_free(c);
    return -1;
}

/* log-probabilities of a linear model W [C][F] (float) on one sparse row */
static void mmspcl__lr_logp(const float *W, const float *b, int C, int64_t F, const int32_t *idx, const float *val, int nnz,
                            float *out) {
    double z[MMSPCL_MAX_CLASSES], mx, s = 0;
    int c, j;
    for (c = 0; c < C; c++) {
        double a = b[c];
        for (j = 0; j < nnz; j++) a += (double)W[(size_t)c * F + idx[j]] * val[j];
        z[c] = a;
    }
    mx = z[0];
    for (c = 1; c < C; c++) if (z[c] > mx) mx = z[c];
    for (c = 0; c < C; c++) s += exp(z[c] - mx);
    for (c = 0; c < C; c++) out[c] = (float)(z[c] - mx - log(s));
}

/* Multinomial logistic regression, mean cross-entropy + lambda/2 |W|^2, SGD over the rows
   rows[0..n) (shuffled each epoch by rng), step eta0 / (1 + eta0 lambda t), the decay applied
   through a scale factor so each update touches only the row's features. W [C][F] out. */
static void mmspcl__lr_train(const mmspcl__csr *X, const int *y, const int *rows, int n, int C, int64_t F, double lambda,
                             int epochs, double eta0, mmspcl_rng *rng, float *W, float *b, int *order) {
    double *w = (double *)MMSPCL_MALLOC(sizeof(double) * (size_t)F * C), sc = 1.0, t = 0;
    double bb[MMSPCL_MAX_CLASSES];
    int e, i, j, c;
    int64_t f;
    if (!w) return;
    memset(w, 0, sizeof(double) * (size_t)F * C);
    for (c = 0; c < C; c++) bb[c] = 0;
    memcpy(order, rows, sizeof(int) * (size_t)n);
    for (e = 0; e < epochs; e++) {
        mmspcl_rng_shuffle(rng, order, n);
        for (i = 0; i < n; i++) {
            const int r = order[i];
            const int64_t a0 = X->ptr[r], a1 = X->ptr[r + 1];
            const double eta = eta0 / (1.0 + eta0 * lambda * t);
            double z[MMSPCL_MAX_CLASSES], mx, s = 0;
            for (c = 0; c < C; c++) z[c] = bb[c];
            for (j = (int)a0; j < (int)a1; j++) {
                const double *wr = w + (size_t)X->idx[j] * C;
                for (c = 0; c < C; c++) z[c] += sc * wr[c] * X->val[j];
            }
            mx = z[0];
            for (c = 1; c < C; c++) if (z[c] > mx) mx = z[c];
            for (c = 0; c < C; c++) { z[c] = exp(z[c] - mx); s += z[c]; }
            for (c = 0; c < C; c++) z[c] = z[c] / s - (c == y[r]);
            sc *= 1.0 - eta * lambda;
            for (j = (int)a0; j < (int)a1; j++) {
                double *wr = w + (size_t)X->idx[j] * C;
                for (c = 0; c < C; c++) wr[c] -= eta * z[c] * X->val[j] / sc;
            }
            for (c = 0; c < C; c++) bb[c] -= eta * z[c];
            if (sc < 1e-4) {
                for (f = 0; f < F * C; f++) w[f] *= sc;
                sc = 1.0;
            }
            t += 1;
        }
    }
    for (f = 0; f < F; f++)
        for (c = 0; c < C; c++) W[(size_t)c * F + f] = (float)(w[(size_t)f * C + c] * sc);
    for (c = 0; c < C; c++) b[c] = (float)bb[c];
    MMSPCL_FREE(w);
}

static double mmspcl__lr_eval(const float *W, const float *b, int C, int64_t F, const mmspcl__csr *X, const int *y, float *logp,
                              double *acc) {
    int i, c, correct = 0;
    int64_t cm[MMSPCL_MAX_CLASSES * MMSPCL_MAX_CLASSES];
    mmspcl_metrics mt;
    int *pred = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)X->n);
    float tmp[MMSPCL_MAX_CLASSES];
    if (!pred) return -1;
    for (i = 0; i < X->n; i++) {
        float *o = logp ? logp + (size_t)i * C : tmp;
        int best = 0;
        mmspcl__lr_logp(W, b, C, F, X->idx + X->ptr[i], X->val + X->ptr[i], (int)(X->ptr[i + 1] - X->ptr[i]), o);
        for (c = 1; c < C; c++) if (o[c] > o[best]) best = c;
        pred[i] = best;
        correct += best == y[i];
    }
    (void)correct;
    mmspcl_confusion(y, pred, X->n, C, cm);
    mmspcl_metrics_from_confusion(cm, C, NULL, &mt);
    MMSPCL_FREE(pred);
    if (acc) *acc = mt.accuracy;
    return mt.weighted_f1;
}

/* ---- data ---- */
typedef struct mmspcl__md {
    int n, max_len;
    int32_t *ids;     /* [n][max_len] */
    int *len, *mask, *emo, *sent;
} mmspcl__md;

static void mmspcl__md_free(mmspcl__md *d) {
    MMSPCL_FREE(d->ids); MMSPCL_FREE(d->len); MMSPCL_FREE(d->mask); MMSPCL_FREE(d->emo); MMSPCL_FREE(d->sent);
    memset(d, 0, sizeof *d);
}

static mmspcl_status mmspcl__md_build(mmspcl__md *d, const mmspcl_meld *s, const mmspcl_bpe *tok, int max_len,
                                      mmspcl_error *err) {
    int di, i;
    mmspcl_turn *turns;
    mmspcl_status st = MMSPCL_OK;
    memset(d, 0, sizeof *d);
    d->n = s->n_rows;
    d->max_len = max_len;
    d->ids = (int32_t *)MMSPCL_MALLOC(sizeof(int32_t) * (size_t)s->n_rows * max_len);
    d->len = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)s->n_rows);
    d->mask = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)s->n_rows);
    d->emo = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)s->n_rows);
    d->sent = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)s->n_rows);
    turns = (mmspcl_turn *)MMSPCL_MALLOC(sizeof(mmspcl_turn) * (size_t)(s->n_rows + 1));
    if (!d->ids || !d->len || !d->mask || !d->emo || !d->sent || !turns) {
        MMSPCL_FREE(turns);
        mmspcl__md_free(d);
        return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "meld: out of memory");
    }
    for (i = 0; i < s->n_rows; i++) {
        turns[i].speaker = s->rows[i].speaker;
        turns[i].text = s->rows[i].utterance;
        d->emo[i] = s->rows[i].emotion;
        d->sent[i] = s->rows[i].sentiment;
    }
    for (di = 0; di < s->n_dialogues && !st; di++) {
        const int a = s->dialogue_start[di], b = s->dialogue_start[di + 1];
        st = mmspcl_spcl_prompts(tok, turns + a, b - a, max_len, d->ids + (size_t)a * max_len, d->len + a, d->mask + a, err);
    }
    MMSPCL_FREE(turns);
    if (st) mmspcl__md_free(d);
    return st;
}


/* rows[0..n) of src as a new set (ng not copied) */
static int mmspcl__md_subset(mmspcl__md *d, const mmspcl__md *src, const int *rows, int n) {
    int i;
    memset(d, 0, sizeof *d);
    d->n = n;
    d->max_len = src->max_len;
    d->ids = (int32_t *)MMSPCL_MALLOC(sizeof(int32_t) * (size_t)(n + 1) * src->max_len);
    d->len = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)(n + 1));
    d->mask = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)(n + 1));
    d->emo = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)(n + 1));
    d->sent = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)(n + 1));
    if (!d->ids || !d->len || !d->mask || !d->emo || !d->sent) { mmspcl__md_free(d); return -1; }
    for (i = 0; i < n; i++) {
        const int r = rows[i];
        memcpy(d->ids + (size_t)i * src->max_len, src->ids + (size_t)r * src->max_len, sizeof(int32_t) * src->max_len);
        d->len[i] = src->len[r]; d->mask[i] = src->mask[r]; d->emo[i] = src->emo[r]; d->sent[i] = src->sent[r];
    }
    return 0;
}

/* ---- vocabulary cut ---- */
typedef struct mmspcl__vcut {
    const char **vocab; int64_t n_vocab;      /* new id -> string (points into the full arrays) */
    const char **merges; int64_t n_merges;
    char *pool;                                /* "<mask>" etc. are in the full arrays already */
} mmspcl__vcut;

static mmspcl_status mmspcl__vocab_cut(mmspcl__vcut *vc, const mmspcl_bpe *full, const char *const *vocab, int64_t n_vocab,
                                       const char *const *merges, int64_t n_merges, const mmspcl__md *used,
                                       mmspcl_error *err) {
    unsigned char *keep = (unsigned char *)MMSPCL_MALLOC((size_t)n_vocab + 1);
    int32_t *mres = (int32_t *)MMSPCL_MALLOC(sizeof(int32_t) * (size_t)(n_merges + 1));
    int32_t *ml = (int32_t *)MMSPCL_MALLOC(sizeof(int32_t) * (size_t)(n_merges + 1));
    int32_t *mr = (int32_t *)MMSPCL_MALLOC(sizeof(int32_t) * (size_t)(n_merges + 1));
    int64_t i, r, nv = 0, nm = 0;
    char tmp[512];
    static const char *const specials[] = {"<s>", "<pad>", "</s>", "<unk>", "<mask>"};
    memset(vc, 0, sizeof *vc);
    if (!keep || !mres || !ml || !mr) goto oom;
    memset(keep, 0, (size_t)n_vocab);
    for (i = 0; i < (int64_t)used->n * used->max_len; i++) {
        const int row = (int)(i / used->max_len), col = (int)(i % used->max_len);
        if (col < used->len[row]) keep[used->ids[i]] = 1;
    }
    for (i = 0; i < 5; i++) { int32_t id = mmspcl_bpe_token_id(full, specials[i]); if (id >= 0) keep[id] = 1; }
    for (i = 0; i < n_vocab; i++) {   /* the byte alphabet: one code point */
        const unsigned char *s = (const unsigned char *)vocab[i];
        size_t L = strlen(vocab[i]);
        if (L == 1 || (L == 2 && s[0] >= 0xC0 && s[0] < 0xE0)) keep[i] = 1;
    }
    for (r = 0; r < n_merges; r++) {
        const char *sp = strchr(merges[r], ' ');
        size_t la;
        mres[r] = ml[r] = mr[r] = -1;
        if (!sp || strlen(merges[r]) >= sizeof tmp || merges[r][0] == '#') continue;
        la = (size_t)(sp - merges[r]);
        memcpy(tmp, merges[r], la); tmp[la] = 0;
        ml[r] = mmspcl_bpe_token_id(full, tmp);
        mr[r] = mmspcl_bpe_token_id(full, sp + 1);
        memcpy(tmp + la, sp + 1, strlen(sp + 1) + 1);
        mres[r] = mmspcl_bpe_token_id(full, tmp);
    }
    for (r = n_merges - 1; r >= 0; r--)   /* parts of kept tokens (made by earlier merges) */
        if (mres[r] >= 0 && keep[mres[r]] && ml[r] >= 0 && mr[r] >= 0) { keep[ml[r]] = 1; keep[mr[r]] = 1; }
    vc->vocab = (const char **)MMSPCL_MALLOC(sizeof(char *) * (size_t)n_vocab);
    vc->merges = (const char **)MMSPCL_MALLOC(sizeof(char *) * (size_t)(n_merges + 1));
    if (!vc->vocab || !vc->merges) goto oom;
    for (i = 0; i < n_vocab; i++) if (keep[i] && i != mmspcl_bpe_mask_id(full)) vc->vocab[nv++] = vocab[i];
    if (mmspcl_bpe_mask_id(full) >= 0) vc->vocab[nv++] = vocab[mmspcl_bpe_mask_id(full)];
    for (r = 0; r < n_merges; r++)
        if (mres[r] >= 0 && ml[r] >= 0 && mr[r] >= 0 && keep[mres[r]] && keep[ml[r]] && keep[mr[r]]) vc->merges[nm++] = merges[r];
    vc->n_vocab = nv;
    vc->n_merges = nm;
    MMSPCL_FREE(keep); MMSPCL_FREE(mres); MMSPCL_FREE(ml); MMSPCL_FREE(mr);
    return MMSPCL_OK;
oom:
    MMSPCL_FREE(keep); MMSPCL_FREE(mres); MMSPCL_FREE(ml); MMSPCL_FREE(mr);
    MMSPCL_FREE(vc->vocab); MMSPCL_FREE(vc->merges);
    return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "meld: out of memory cutting the vocabulary");
}

/* ---- training helpers ---- */
/* t (mask row) and v (mean over the prompt) of rows idx[0..n) */
static mmspcl_status mmspcl__rt_embed(mmspcl_rt *m, const mmspcl__md *d, const int *idx, int n, int B, float *t,
                                      float *v, mmspcl_meld_progress_fn progress, void *user, const char *stage,
                                      mmspcl_error *err) {
    const int H = m->cfg.hidden_size;
    int32_t *ids = (int32_t *)MMSPCL_MALLOC(sizeof(int32_t) * (size_t)B * d->max_len);
    int *lens = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)B);
    int i, b, j, k;
    mmspcl_status st = MMSPCL_OK;
    if (!ids || !lens) { st = mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "meld: out of memory"); goto done; }
    for (i = 0; i < n; i += B) {
        const int nb = n - i < B ? n - i : B;
        int start = 0;
        for (b = 0; b < nb; b++) {
            const int r = idx ? idx[i + b] : i + b;
            memcpy(ids + (size_t)b * d->max_len, d->ids + (size_t)r * d->max_len, sizeof(int32_t) * d->max_len);
            lens[b] = d->len[r];
        }
        if ((st = mmspcl_rt_forward(m, ids, lens, nb, d->max_len, err))) goto done;
        for (b = 0; b < nb; b++) {
            const int r = idx ? idx[i + b] : i + b;
            if (t) memcpy(t + (size_t)(i + b) * H, m->out + (size_t)(start + d->mask[r]) * H, sizeof(float) * H);
            if (v) {
                float *vr = v + (size_t)(i + b) * H;
                for (k = 0; k < H; k++) vr[k] = 0.0f;
                for (j = 0; j < lens[b]; j++)
                    for (k = 0; k < H; k++) vr[k] += m->out[(size_t)(start + j) * H + k];
                for (k = 0; k < H; k++) vr[k] /= (float)lens[b];
            }
            start += lens[b];
        }
        if (progress) progress(user, stage, i + nb, n, NULL);
    }
done:
    MMSPCL_FREE(ids);
    MMSPCL_FREE(lens);
    return st;
}

/* nearest class mean by G (cosine) */
static void mmspcl__proto_pred(const float *z, int n, int H, const double *means, int C, int *pred) {
    int i, c, k;
    for (i = 0; i < n; i++) {
        double best = -2;
        int bc = 0;
        for (c = 0; c < C; c++) {
            double dot = 0, na = 0, nb = 0, cs;
            for (k = 0; k < H; k++) {
                dot += (double)z[(size_t)i * H + k] * means[(size_t)c * H + k];
                na += (double)z[(size_t)i * H + k] * z[(size_t)i * H + k];
                nb += means[(size_t)c * H + k] * means[(size_t)c * H + k];
            }
            cs = dot / (fmax(sqrt(na), 1e-8) * fmax(sqrt(nb), 1e-8));
            if (cs > best) { best = cs; bc = c; }
        }
        pred[i] = bc;
    }
}

static double mmspcl__wf1(const int *y, const int *p, int n, int C, double *acc) {
    int64_t cm[MMSPCL_MAX_CLASSES * MMSPCL_MAX_CLASSES];
    mmspcl_metrics mt;
    mmspcl_confusion(y, p, n, C, cm);
    mmspcl_metrics_from_confusion(cm, C, NULL, &mt);
    if (acc) *acc = mt.accuracy;
    return mt.weighted_f1;
}

/* ---- the log kept in the model file ---- */
typedef struct mmspcl__mlog { float *x; int n, cap, w; } mmspcl__mlog;
static void mmspcl__mlog_add(mmspcl__mlog *l, double a, double b, double c) {
    if (l->n == l->cap) {
        int nc = l->cap ? 2 * l->cap : 64;
        float *p = (float *)MMSPCL_REALLOC(l->x, sizeof(float) * (size_t)nc * 3);
        if (!p) return;
        l->x = p;
        l->cap = nc;
    }
    l->x[l->n * 3] = (float)a; l->x[l->n * 3 + 1] = (float)b; l->x[l->n * 3 + 2] = (float)c;
    l->n++;
}
static mmspcl_status mmspcl__mlog_write(const mmspcl__mlog *l, mmspcl_writer *wr, const char *name, mmspcl_error *err) {
    int64_t sh[2];
    if (!l->n) return MMSPCL_OK;
    sh[0] = l->n; sh[1] = 3;
    return mmspcl_writer_add_tensor(wr, name, MMSPCL_F32, 2, sh, l->x, sizeof(float) * (size_t)l->n * 3, err);
}
static void mmspcl__mlog_read(mmspcl__mlog *l, const mmspcl_weights *w, const char *name) {
    const mmspcl_tensor *t = mmspcl_weights_find(w, name);
    int64_t i;
    if (!t || t->dtype != MMSPCL_F32 || t->ndim != 2 || t->ne[1] != 3) return;
    for (i = 0; i < t->ne[0]; i++) {
        const float *r = (const float *)t->data + i * 3;
        mmspcl__mlog_add(l, r[0], r[1], r[2]);
    }
}

static void mmspcl__msg(mmspcl_meld_progress_fn progress, void *user, const char *stage, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    if (!progress) return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    progress(user, stage, 0, 0, buf);
}

/* checkpoint: encoder + heads with AdamW state, the best weights so far, stage/epoch, rngs, logs */
static mmspcl_status mmspcl__ckpt_write(const char *path, const mmspcl_rt *m, const mmspcl_params *Ph,
                                        const double *best, int stage, int epoch, double best_f1, int bad,
                                        const mmspcl_rng *rng, const mmspcl_rng *qrng, const mmspcl__mlog *lm,
                                        const mmspcl__mlog *ls, mmspcl_error *err) {
    mmspcl_writer *wr = mmspcl_writer_create();
    float *h1 = NULL, *h2 = NULL, *hb = NULL, *hm = NULL;
    int64_t sh[1];
    mmspcl_status st;
    int i;
    char key[64];
    if (!wr) return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "checkpoint: out of memory");
    st = mmspcl_params_write(&m->P, wr, "", 1, &h1, err);
    if (!st) st = mmspcl_params_write(Ph, wr, "heads", 0, &h2, err);
    if (!st) {
        mmspcl_writer_set_int(wr, "ckpt.stage", stage);
        mmspcl_writer_set_int(wr, "ckpt.epoch", epoch);
        mmspcl_writer_set_int(wr, "ckpt.bad", bad);
        mmspcl_writer_set_float(wr, "ckpt.best_f1", best_f1);
        for (i = 0; i < 4; i++) {
            snprintf(key, sizeof key, "ckpt.rng.%d", i);
            mmspcl_writer_set_int(wr, key, (int64_t)rng->s[i]);
            snprintf(key, sizeof key, "ckpt.qrng.%d", i);
            mmspcl_writer_set_int(wr, key, (int64_t)qrng->s[i]);
        }
        mmspcl_writer_set_int(wr, "ckpt.head_step", Ph->step);
        hm = (float *)MMSPCL_MALLOC(sizeof(float) * (2 * Ph->n + 1));
        if (!hm) st = mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "checkpoint: out of memory");
        else {
            size_t k;
            for (k = 0; k < Ph->n; k++) { hm[k] = (float)Ph->m[k]; hm[Ph->n + k] = (float)Ph->v[k]; }
            sh[0] = (int64_t)(2 * Ph->n);
            st = mmspcl_writer_add_tensor(wr, "ckpt.head_moments", MMSPCL_F32, 1, sh, hm, sizeof(float) * (size_t)sh[0], err);
        }
        if (!st && best) {
            hb = (float *)MMSPCL_MALLOC(sizeof(float) * (m->P.n + Ph->n));
            if (!hb) st = mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "checkpoint: out of memory");
            else {
                size_t k;
                for (k = 0; k < m->P.n + Ph->n; k++) hb[k] = (float)best[k];
                sh[0] = (int64_t)(m->P.n + Ph->n);
                st = mmspcl_writer_add_tensor(wr, "ckpt.best", MMSPCL_F32, 1, sh, hb, sizeof(float) * (size_t)sh[0], err);
            }
        }
    }
    if (!st) st = mmspcl__mlog_write(lm, wr, "meld.log.mlm", err);
    if (!st) st = mmspcl__mlog_write(ls, wr, "meld.log.spcl", err);
    if (!st) st = mmspcl_writer_save(wr, path, NULL, NULL, err);
    mmspcl_writer_free(wr);
    MMSPCL_FREE(h1); MMSPCL_FREE(h2); MMSPCL_FREE(hb); MMSPCL_FREE(hm);
    return st;
}

/* ---- the recipe ---- */
mmspcl_status mmspcl_meld_train(const mmspcl_meld_recipe *r, const mmspcl_meld *train,
                                const mmspcl_meld *dev, const char *const *vocab, int64_t n_vocab,
                                const char *const *merges, int64_t n_merges, const char *out_path,
                                mmspcl_meld_progress_fn progress, void *user, mmspcl_error *err) {
    const int C = MMSPCL_NUM_EMOTIONS, CS = MMSPCL_NUM_SENTIMENTS, H = r->hidden, D = MMSPCL_NUM_EMOTIONS + MMSPCL_NUM_SENTIMENTS, ML = r->max_len;
    const int64_t F = (int64_t)1 << r->ngram_bits;
    mmspcl_bpe *full = NULL, *tok = NULL;
    mmspcl__vcut vc;
    mmspcl__md dtr, ddv, tmpd, denc, dho;
    int *ho_rows = NULL, *enc_rows = NULL;
    float *aho = NULL;
    mmspcl_rt m;
    mmspcl_roberta_config cfg;
    mmspcl_params Ph;
    mmspcl_lin head_e, head_s;
    mmspcl_adamw_cfg opt, hopt;
    mmspcl_rng rng;
    mmspcl_spcl S;
    mmspcl__mlog lm, ls, lv;
    mmspcl_writer *wr = NULL;
    mmspcl_status st = MMSPCL_OK;
    int32_t *chunks = NULL, *bids = NULL, *old2new = NULL;
    int *clen = NULL, n_chunks = 0, *order = NULL, *blen = NULL, *keep = NULL, *rows = NULL, *pred = NULL;
    float *tt = NULL, *tv = NULL, *dt = NULL, *dv = NULL, *dout = NULL, *idf = NULL, *hold_list[12];
    float *lrw[2] = {NULL, NULL}, lrb[2][MMSPCL_MAX_CLASSES], *atr = NULL, *adv = NULL;
    double *zd = NULL, *dz = NULL, *lg = NULL, *dlg = NULL, *means = NULL, *diff = NULL, *best = NULL, *zall = NULL;
    int32_t *tgt = NULL;
    int start_stage = 0, start_epoch = 0, e, i, j, k, bad = 0, n_hold = 0, best_epoch = -1;
    double best_f1 = -1.0;
    void *enc_hold = NULL;
    mmspcl_msve_model ME, MS, MV[3];
    int have_me = 0, have_ms = 0, have_mv[3] = {0, 0, 0};
    memset(&vc, 0, sizeof vc);
    memset(&dtr, 0, sizeof dtr); memset(&ddv, 0, sizeof ddv); memset(&tmpd, 0, sizeof tmpd);
    memset(&denc, 0, sizeof denc); memset(&dho, 0, sizeof dho);
    memset(&m, 0, sizeof m); memset(&S, 0, sizeof S);
    memset(&lm, 0, sizeof lm); memset(&ls, 0, sizeof ls); memset(&lv, 0, sizeof lv);
    mmspcl_params_init(&Ph);
    for (i = 0; i < 12; i++) hold_list[i] = NULL;

    /* 1. vocabulary: the full BPE, the train prompts, the cut */
    if ((st = mmspcl_bpe_from_arrays(&full, vocab, NULL, n_vocab, merges, NULL, n_merges, err))) goto done;
    if ((st = mmspcl__md_build(&tmpd, train, full, ML, err))) goto done;
    if ((st = mmspcl__vocab_cut(&vc, full, vocab, n_vocab, merges, n_merges, &tmpd, err))) goto done;
    mmspcl__md_free(&tmpd);
    if ((st = mmspcl_bpe_from_arrays(&tok, vc.vocab, NULL, vc.n_vocab, vc.merges, NULL, vc.n_merges, err))) goto done;
    mmspcl__msg(progress, user, "vocab", "vocabulary cut to %lld tokens and %lld merges (from %lld / %lld)",
                (long long)vc.n_vocab, (long long)vc.n_merges, (long long)n_vocab, (long long)n_merges);
    if ((st = mmspcl__md_build(&dtr, train, tok, ML, err)) || (st = mmspcl__md_build(&ddv, dev, tok, ML, err))) goto done;
    /* every 5th training dialogue (index % 5 == 4) is held out of the encoder's supervised
       training: the MSVE heads learn from its features, which the encoder has not fitted */
    {
        int di, ne_ = 0, nh_ = 0;
        ho_rows = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)(dtr.n + 1));
        enc_rows = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)(dtr.n + 1));
        if (!ho_rows || !enc_rows) goto oom;
        for (di = 0; di < train->n_dialogues; di++)
            for (i = train->dialogue_start[di]; i < train->dialogue_start[di + 1]; i++) {
                if (di % 5 == 4 && r->holdout) ho_rows[nh_++] = i;
                else enc_rows[ne_++] = i;
            }
        if (!r->holdout) { memcpy(ho_rows, enc_rows, sizeof(int) * (size_t)ne_); nh_ = ne_; }
        if (mmspcl__md_subset(&denc, &dtr, enc_rows, ne_) || mmspcl__md_subset(&dho, &dtr, ho_rows, nh_)) goto oom;
    }
    (void)old2new;

    /* 2. encoder */
    memset(&cfg, 0, sizeof cfg);
    cfg.vocab_size = (int)vc.n_vocab; cfg.hidden_size = H; cfg.num_layers = r->layers; cfg.num_heads = r->heads;
    cfg.intermediate_size = r->ffn; cfg.max_positions = ML + 2; cfg.type_vocab_size = 1;
    cfg.pad_id = mmspcl_bpe_pad_id(tok); cfg.layer_norm_eps = 1e-5f;
    {
        int maxb = r->batch > r->mlm_batch ? r->batch : r->mlm_batch;
        if ((st = mmspcl_rt_create(&m, &cfg, 1, r->seed, maxb * ML, ML, err))) goto done;
    }
    mmspcl_rng_seed(&rng, r->seed ^ 0x9E3779B97F4A7C15ull);
    mmspcl_lin_create(&head_e, &Ph, "emotion", H, C, &rng);
    mmspcl_lin_create(&head_s, &Ph, "sentiment", H, CS, &rng);
    if (Ph.oom) goto oom;
    mmspcl_adamw_defaults(&opt);
    mmspcl_adamw_defaults(&hopt);
    if ((st = mmspcl_spcl_init(&S, C, H, r->pool_size, r->K, r->temperature, r->seed + 7, err))) goto done;

    /* MLM chunks: each train dialogue as <s> u_0 u_1 ... cut into pieces of <= ML tokens */
    {
        int cap = 0, di;
        const int32_t bos = mmspcl_bpe_bos_id(tok), eos = mmspcl_bpe_eos_id(tok);
        for (di = 0; di < train->n_dialogues; di++) {
            const int a = train->dialogue_start[di], b = train->dialogue_start[di + 1];
            int pos = 0;
            for (i = a; i <= b; i++) {
                /* u_i is the prompt's context copy of turn i: take it from the last prompt of the
                   dialogue would lose truncated turns; re-encode instead */
                int32_t u[512];
                int nu = 0;
                if (i < b) {
                    char *s = mmspcl__rt_clean(train->rows[i].speaker, ":", train->rows[i].utterance);
                    if (!s) goto oom;
                    nu = mmspcl_bpe_encode(tok, s, strlen(s), u, 510);
                    MMSPCL_FREE(s);
                    if (nu > 510 || nu < 0) nu = nu < 0 ? 0 : 510;
                    if (nu > ML - 2) nu = ML - 2;
                    u[nu++] = eos;
                }
                if (i == b || pos + nu > ML) {   /* close the current chunk */
                    if (pos > 1) { clen[n_chunks - 1] = pos; }
                    else if (pos == 1) n_chunks--;
                    pos = 0;
                    if (i == b) break;
                }
                if (pos == 0) {
                    if (n_chunks == cap) {
                        int nc = cap ? cap * 2 : 1024;
                        int32_t *p = (int32_t *)MMSPCL_REALLOC(chunks, sizeof(int32_t) * (size_t)nc * ML);
                        int *q;
                        if (!p) goto oom;
                        chunks = p;
                        q = (int *)MMSPCL_REALLOC(clen, sizeof(int) * (size_t)nc);
                        if (!q) goto oom;
                        clen = q;
                        cap = nc;
                    }
                    n_chunks++;
                    chunks[(size_t)(n_chunks - 1) * ML] = bos;
                    pos = 1;
                }
                memcpy(chunks + (size_t)(n_chunks - 1) * ML + pos, u, sizeof(int32_t) * (size_t)nu);
                pos += nu;
                clen[n_chunks - 1] = pos;
            }
        }
    }
    mmspcl__msg(progress, user, "data", "%d train prompts (%d train the encoder, %d the heads), %d dev prompts, %d MLM chunks of <= %d tokens",
                dtr.n, denc.n, dho.n, ddv.n, n_chunks, ML);

    {
        const int B = r->batch > r->mlm_batch ? r->batch : r->mlm_batch;
        bids = (int32_t *)MMSPCL_MALLOC(sizeof(int32_t) * (size_t)B * ML);
        blen = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)B);
        rows = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)B * ML);
        tgt = (int32_t *)MMSPCL_MALLOC(sizeof(int32_t) * (size_t)B * ML);
        dout = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)B * ML * H);
        order = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)(n_chunks > dtr.n ? n_chunks : dtr.n));
        keep = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)dtr.n);
        zd = (double *)MMSPCL_MALLOC(sizeof(double) * (size_t)B * H);
        dz = (double *)MMSPCL_MALLOC(sizeof(double) * (size_t)B * H);
        lg = (double *)MMSPCL_MALLOC(sizeof(double) * (size_t)B * C);
        dlg = (double *)MMSPCL_MALLOC(sizeof(double) * (size_t)B * C);
        tt = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)dtr.n * H);
        tv = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)dtr.n * H);
        dt = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)ddv.n * H);
        dv = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)ddv.n * H);
        zall = (double *)MMSPCL_MALLOC(sizeof(double) * (size_t)dtr.n * H);
        means = (double *)MMSPCL_MALLOC(sizeof(double) * (size_t)C * H);
        diff = (double *)MMSPCL_MALLOC(sizeof(double) * (size_t)dtr.n);
        pred = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)(dtr.n > ddv.n ? dtr.n : ddv.n));
        best = (double *)MMSPCL_MALLOC(sizeof(double) * (m.P.n + Ph.n));
        if (!bids || !blen || !rows || !tgt || !dout || !order || !keep || !zd || !dz || !lg || !dlg || !tt || !tv ||
            !dt || !dv || !zall || !means || !diff || !pred || !best)
            goto oom;
    }

    /* resume */
    if (r->resume) {
        mmspcl_weights *w = NULL;
        int64_t v;
        char key[64];
        if ((st = mmspcl_weights_read(&w, r->resume, err))) goto done;
        if ((st = mmspcl_params_read(&m.P, w, "", err))) { mmspcl_weights_free(w); goto done; }
        {   /* heads: values (heads.NAME), moments (ckpt.head_moments), step (ckpt.head_step) */
            const mmspcl_tensor *hmt = mmspcl_weights_find(w, "ckpt.head_moments");
            int ti;
            size_t k;
            for (ti = 0; ti < Ph.n_info; ti++) {
                char nm[200];
                const mmspcl_tensor *ht;
                snprintf(nm, sizeof nm, "heads.%s", Ph.info[ti].name);
                ht = mmspcl_weights_find(w, nm);
                if (!ht || ht->dtype != MMSPCL_F32 || (size_t)mmspcl_tensor_nelements(ht) != Ph.info[ti].n) {
                    st = mmspcl__t_fail(err, MMSPCL_ERR_FORMAT, "%s: tensor %s missing or of the wrong size", r->resume, nm);
                    mmspcl_weights_free(w);
                    goto done;
                }
                for (k = 0; k < Ph.info[ti].n; k++) Ph.w[Ph.info[ti].off + k] = ((const float *)ht->data)[k];
            }
            if (hmt && hmt->dtype == MMSPCL_F32 && (size_t)hmt->ne[0] == 2 * Ph.n)
                for (k = 0; k < Ph.n; k++) { Ph.m[k] = ((const float *)hmt->data)[k]; Ph.v[k] = ((const float *)hmt->data)[Ph.n + k]; }
            if (mmspcl_weights_get_int(w, "ckpt.head_step", &v)) Ph.step = v;
        }
        mmspcl_rt_sync(&m);
        if (mmspcl_weights_get_int(w, "ckpt.stage", &v)) start_stage = (int)v;
        if (mmspcl_weights_get_int(w, "ckpt.epoch", &v)) start_epoch = (int)v + 1;
        if (mmspcl_weights_get_int(w, "ckpt.bad", &v)) bad = (int)v;
        mmspcl_weights_get_float(w, "ckpt.best_f1", &best_f1);
        for (i = 0; i < 4; i++) {
            snprintf(key, sizeof key, "ckpt.rng.%d", i);
            if (mmspcl_weights_get_int(w, key, &v)) rng.s[i] = (uint64_t)v;
            snprintf(key, sizeof key, "ckpt.qrng.%d", i);
            if (mmspcl_weights_get_int(w, key, &v)) S.rng.s[i] = (uint64_t)v;
        }
        {
            const mmspcl_tensor *bt = mmspcl_weights_find(w, "ckpt.best");
            if (bt && bt->dtype == MMSPCL_F32 && (size_t)bt->ne[0] == m.P.n + Ph.n)
                for (i = 0; i < (int)(m.P.n + Ph.n); i++) best[i] = ((const float *)bt->data)[i];
        }
        mmspcl__mlog_read(&lm, w, "meld.log.mlm");
        mmspcl__mlog_read(&ls, w, "meld.log.spcl");
        mmspcl_weights_free(w);
        mmspcl__msg(progress, user, "resume", "resuming %s at stage %d epoch %d", r->resume, start_stage, start_epoch);
    }

    /* 3. MLM pretraining on the train dialogues */
    if (start_stage == 0) {
        const int B = r->mlm_batch, spe = (n_chunks + B - 1) / B;
        const int64_t total = (int64_t)spe * r->mlm_epochs;
        const int32_t mask_id = mmspcl_bpe_mask_id(tok);
        for (e = start_epoch; e < r->mlm_epochs; e++) {
            double sum = 0.0;
            int nsum = 0, b;
            for (i = 0; i < n_chunks; i++) order[i] = i;
            mmspcl_rng_shuffle(&rng, order, n_chunks);
            for (b = 0; b < n_chunks; b += B) {
                const int nb = n_chunks - b < B ? n_chunks - b : B;
                int T = 0, nm = 0;
                double loss;
                for (i = 0; i < nb; i++) {
                    const int c = order[b + i];
                    int32_t *row = bids + (size_t)i * ML;
                    memcpy(row, chunks + (size_t)c * ML, sizeof(int32_t) * (size_t)clen[c]);
                    blen[i] = clen[c];
                    for (j = 0; j < clen[c]; j++) {
                        const int32_t id = row[j];
                        if (id == mmspcl_bpe_bos_id(tok) || id == mmspcl_bpe_eos_id(tok)) continue;
                        if (mmspcl_rng_uniform(&rng) >= 0.15) continue;
                        rows[nm] = T + j;
                        tgt[nm++] = id;
                        {
                            const double u = mmspcl_rng_uniform(&rng);
                            if (u < 0.8) row[j] = mask_id;
                            else if (u < 0.9) row[j] = 4 + mmspcl_rng_int(&rng, cfg.vocab_size - 5);
                        }
                    }
                    T += clen[c];
                }
                if (!nm) continue;
                if ((st = mmspcl_rt_forward(&m, bids, blen, nb, ML, err))) goto done;
                mmspcl_params_zero_grad(&m.P);
                loss = mmspcl_rt_mlm_loss(&m, rows, tgt, nm, dout, err);
                if (loss < 0) { st = err ? err->status : MMSPCL_ERR_NOMEM; goto done; }
                if ((st = mmspcl_rt_backward(&m, dout, NULL, err))) goto done;
                mmspcl_grad_clip(&m.P, r->clip);
                mmspcl_adamw_step(&m.P, &opt, mmspcl_lr_cosine(m.P.step, total / 20, total, r->mlm_lr));
                mmspcl_rt_sync(&m);
                sum += loss;
                nsum++;
                if (progress) progress(user, "mlm", (int)(e * spe + b / B + 1), (int)total, NULL);
            }
            mmspcl__mlog_add(&lm, e + 1, sum / (nsum ? nsum : 1), 0.0);
            mmspcl__msg(progress, user, "mlm", "MLM epoch %d/%d: loss %.4f", e + 1, r->mlm_epochs, sum / (nsum ? nsum : 1));
            if (r->checkpoint &&
                (st = mmspcl__ckpt_write(r->checkpoint, &m, &Ph, NULL, 0, e, best_f1, bad, &rng, &S.rng, &lm, &ls, err)))
                goto done;
        }
        start_stage = 1;
        start_epoch = 0;
        /* a fresh optimiser for fine-tuning */
        memset(m.P.m, 0, sizeof(double) * m.P.n);
        memset(m.P.v, 0, sizeof(double) * m.P.n);
        m.P.step = 0;
    }

    /* 4. SPCL fine-tuning: SPCL loss with queues + curriculum, CE heads, early stop on dev F1 */
    if (start_stage == 1) {
        const int B = r->batch, E = r->spcl_epochs;
        const int64_t total = (int64_t)E * ((denc.n + B - 1) / B);
        for (e = start_epoch; e <= E; e++) {
            int counts[MMSPCL_MAX_CLASSES], nk, b, nsum = 0;
            double sum = 0.0, f1 = -1.0, acc = 0.0;
            /* embed train: class means, curriculum; score dev with them (the model after epoch e-1) */
            if ((st = mmspcl__rt_embed(&m, &denc, NULL, denc.n, B, tt, NULL, progress, user, "embed", err))) goto done;
            for (i = 0; i < denc.n * H; i++) zall[i] = tt[i];
            mmspcl_class_means(zall, denc.emo, denc.n, H, C, means, counts);
            if (e > 0) {
                if ((st = mmspcl__rt_embed(&m, &ddv, NULL, ddv.n, B, dt, NULL, NULL, NULL, NULL, err))) goto done;
                mmspcl__proto_pred(dt, ddv.n, H, means, C, pred);
                f1 = mmspcl__wf1(ddv.emo, pred, ddv.n, C, &acc);
                if (ls.n) ls.x[(ls.n - 1) * 3 + 2] = (float)f1;
                if (f1 > best_f1) {
                    best_f1 = f1;
                    best_epoch = e;
                    bad = 0;
                    memcpy(best, m.P.w, sizeof(double) * m.P.n);
                    memcpy(best + m.P.n, Ph.w, sizeof(double) * Ph.n);
                } else bad++;
                mmspcl__msg(progress, user, "spcl", "SPCL epoch %d/%d: dev weighted F1 %.4f accuracy %.4f (nearest class mean)%s",
                            e, E, f1, acc, bad ? "" : "  best");
                if (r->checkpoint &&
                    (st = mmspcl__ckpt_write(r->checkpoint, &m, &Ph, best, 1, e - 1, best_f1, bad, &rng, &S.rng, &lm, &ls, err)))
                    goto done;
                if (e == E || (r->patience > 0 && bad >= r->patience)) break;
            }
            if (r->curriculum) {
                mmspcl_curriculum_difficulty(zall, denc.emo, denc.n, H, means, counts, C, diff);
                nk = mmspcl_curriculum_select(diff, denc.n, e, E, &rng, keep);
            } else {
                for (i = 0; i < denc.n; i++) keep[i] = i;
                nk = denc.n;
            }
            mmspcl_rng_shuffle(&rng, keep, nk);
            mmspcl_spcl_reset(&S, means);
            for (b = 0; b < nk; b += B) {
                const int nb = nk - b < B ? nk - b : B;
                int ye[256], ys[256], start = 0;
                double loss = 0.0, l2;
                mmspcl_spcl_stats stt;
                for (i = 0; i < nb; i++) {
                    const int rr = keep[b + i];
                    memcpy(bids + (size_t)i * ML, denc.ids + (size_t)rr * ML, sizeof(int32_t) * ML);
                    blen[i] = denc.len[rr];
                    ye[i] = denc.emo[rr];
                    ys[i] = denc.sent[rr];
                }
                if ((st = mmspcl_rt_forward(&m, bids, blen, nb, ML, err))) goto done;
                for (i = 0; i < nb; i++) {
                    const float *zr = m.out + (size_t)(start + denc.mask[keep[b + i]]) * H;
                    for (k = 0; k < H; k++) zd[(size_t)i * H + k] = zr[k];
                    start += blen[i];
                }
                memset(dz, 0, sizeof(double) * (size_t)nb * H);
                mmspcl_params_zero_grad(&m.P);
                mmspcl_params_zero_grad(&Ph);
                if ((st = mmspcl_spcl_step(&S, zd, ye, nb, &loss, dz, &stt, err))) goto done;
                if (r->ce_weight > 0) {
                    mmspcl_lin_forward(&Ph, &head_e, zd, lg, nb);
                    l2 = mmspcl_ce_loss(lg, ye, nb, C, NULL, dlg);
                    for (i = 0; i < nb * C; i++) dlg[i] *= r->ce_weight;
                    mmspcl_lin_backward(&Ph, &head_e, zd, dlg, dz, nb);
                    loss += r->ce_weight * l2;
                }
                if (r->sent_weight > 0) {
                    mmspcl_lin_forward(&Ph, &head_s, zd, lg, nb);
                    l2 = mmspcl_ce_loss(lg, ys, nb, CS, NULL, dlg);
                    for (i = 0; i < nb * CS; i++) dlg[i] *= r->sent_weight;
                    mmspcl_lin_backward(&Ph, &head_s, zd, dlg, dz, nb);
                    loss += r->sent_weight * l2;
                }
                memset(dout, 0, sizeof(float) * (size_t)m.T * H);
                for (i = 0, start = 0; i < nb; i++) {
                    float *o = dout + (size_t)(start + denc.mask[keep[b + i]]) * H;
                    for (k = 0; k < H; k++) o[k] = (float)dz[(size_t)i * H + k];
                    start += blen[i];
                }
                if ((st = mmspcl_rt_backward(&m, dout, NULL, err))) goto done;
                mmspcl_grad_clip(&m.P, r->clip);
                mmspcl_adamw_step(&m.P, &opt, mmspcl_lr_cosine(m.P.step, r->warmup, total, r->lr));
                mmspcl_adamw_step(&Ph, &hopt, mmspcl_lr_cosine(Ph.step, r->warmup, total, r->head_lr));
                mmspcl_rt_sync(&m);
                sum += loss;
                nsum++;
                if (progress) progress(user, "spcl", b + nb, nk, NULL);
            }
            mmspcl__mlog_add(&ls, e + 1, sum / (nsum ? nsum : 1), -1.0);
            mmspcl__msg(progress, user, "spcl", "SPCL epoch %d/%d: %d of %d samples (curriculum), loss %.4f", e + 1, E, nk,
                        denc.n, sum / (nsum ? nsum : 1));
        }
        if (best_epoch >= 0 || best_f1 >= 0) {
            memcpy(m.P.w, best, sizeof(double) * m.P.n);
            memcpy(Ph.w, best + m.P.n, sizeof(double) * Ph.n);
            mmspcl_rt_sync(&m);
        }
        mmspcl__msg(progress, user, "spcl", "SPCL: best dev weighted F1 %.4f (kept)", best_f1);
    }

    /* 5. views and MSVE heads */
    if ((st = mmspcl__rt_embed(&m, &dho, NULL, dho.n, r->batch, tt, tv, progress, user, "features", err)) ||
        (st = mmspcl__rt_embed(&m, &ddv, NULL, ddv.n, r->batch, dt, dv, NULL, NULL, NULL, err)))
        goto done;
    for (i = 0; i < dho.n * H; i++) zall[i] = tt[i];
    mmspcl_class_means(zall, dho.emo, dho.n, H, C, means, NULL);
    /* the n-gram view: TF-IDF (idf from train) + logistic regression for emotion and sentiment,
       hyper-parameters chosen on dev; the train rows get out-of-fold log-probabilities (5 folds
       by dialogue) so the MSVE heads see the view as it behaves on unseen text */
    {
        mmspcl__csr xtr, xdv;
        int *df = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)F), *allr = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)dtr.n);
        int *ord = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)dtr.n), *fold = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)dtr.n);
        float *lp = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)(dtr.n > ddv.n ? dtr.n : ddv.n) * C);
        int64_t q;
        int task, di;
        static const double lambdas[3] = {1e-5, 3e-5, 1e-4};
        static const int epochs[2] = {8, 16};
        memset(&xtr, 0, sizeof xtr); memset(&xdv, 0, sizeof xdv);
        idf = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)F);
        lrw[0] = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)F * C);
        lrw[1] = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)F * CS);
        atr = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)dtr.n * D);
        adv = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)ddv.n * D);
        if (!df || !allr || !ord || !fold || !lp || !idf || !lrw[0] || !lrw[1] || !atr || !adv ||
            mmspcl__csr_build(&xtr, train, r->ngram_bits, NULL)) {
            MMSPCL_FREE(df); MMSPCL_FREE(allr); MMSPCL_FREE(ord); MMSPCL_FREE(fold); MMSPCL_FREE(lp);
            mmspcl__csr_free(&xtr);
            goto oom;
        }
        memset(df, 0, sizeof(int) * (size_t)F);
        for (q = 0; q < xtr.ptr[xtr.n]; q++) df[xtr.idx[q]]++;
        for (q = 0; q < F; q++) idf[q] = (float)(log((1.0 + dtr.n) / (1.0 + df[q])) + 1.0);
        mmspcl__csr_free(&xtr);
        if (mmspcl__csr_build(&xtr, train, r->ngram_bits, idf) || mmspcl__csr_build(&xdv, dev, r->ngram_bits, idf)) {
            MMSPCL_FREE(df); MMSPCL_FREE(allr); MMSPCL_FREE(ord); MMSPCL_FREE(fold); MMSPCL_FREE(lp);
            mmspcl__csr_free(&xtr); mmspcl__csr_free(&xdv);
            goto oom;
        }
        for (i = 0; i < dtr.n; i++) allr[i] = i;
        for (di = 0; di < train->n_dialogues; di++)
            for (i = train->dialogue_start[di]; i < train->dialogue_start[di + 1]; i++) fold[i] = di % 5;
        for (task = 0; task < 2; task++) {
            const int CC = task ? CS : C, *yy = task ? dtr.sent : dtr.emo, *yd = task ? ddv.sent : ddv.emo;
            double bestf = -1, bl = 1e-5, acc;
            int be = 8, li, ei, f;
            for (li = 0; li < 3; li++)
                for (ei = 0; ei < 2; ei++) {
                    mmspcl_rng lr_rng;
                    double f1;
                    mmspcl_rng_seed(&lr_rng, r->seed + 31);
                    mmspcl__lr_train(&xtr, yy, allr, dtr.n, CC, F, lambdas[li], epochs[ei], 0.5, &lr_rng, lrw[task], lrb[task], ord);
                    f1 = mmspcl__lr_eval(lrw[task], lrb[task], CC, F, &xdv, yd, NULL, &acc);
                    mmspcl__msg(progress, user, "ngram", "%s TF-IDF + LR, lambda %g, %d epochs: dev weighted F1 %.4f accuracy %.4f",
                                task ? "sentiment" : "emotion", lambdas[li], epochs[ei], f1, acc);
                    if (f1 > bestf) { bestf = f1; bl = lambdas[li]; be = epochs[ei]; }
                }
            /* out-of-fold train features */
            for (f = 0; f < 5; f++) {
                mmspcl_rng lr_rng;
                int nf = 0;
                for (i = 0; i < dtr.n; i++) if (fold[i] != f) allr[nf++] = i;
                mmspcl_rng_seed(&lr_rng, r->seed + 37 + f);
                mmspcl__lr_train(&xtr, yy, allr, nf, CC, F, bl, be, 0.5, &lr_rng, lrw[task], lrb[task], ord);
                for (i = 0; i < dtr.n; i++)
                    if (fold[i] == f)
                        mmspcl__lr_logp(lrw[task], lrb[task], CC, F, xtr.idx + xtr.ptr[i], xtr.val + xtr.ptr[i],
                                        (int)(xtr.ptr[i + 1] - xtr.ptr[i]), atr + (size_t)i * D + (task ? C : 0));
            }
            for (i = 0; i < dtr.n; i++) allr[i] = i;
            {   /* the final model on all of train */
                mmspcl_rng lr_rng;
                mmspcl_rng_seed(&lr_rng, r->seed + 31);
                mmspcl__lr_train(&xtr, yy, allr, dtr.n, CC, F, bl, be, 0.5, &lr_rng, lrw[task], lrb[task], ord);
            }
            bestf = mmspcl__lr_eval(lrw[task], lrb[task], CC, F, &xdv, yd, lp, &acc);
            for (i = 0; i < ddv.n; i++) memcpy(adv + (size_t)i * D + (task ? C : 0), lp + (size_t)i * CC, sizeof(float) * CC);
            mmspcl__mlog_add(&lv, 10 + task, bestf, acc);
            mmspcl__msg(progress, user, "ngram", "%s TF-IDF + LR (lambda %g, %d epochs): dev weighted F1 %.4f accuracy %.4f",
                        task ? "sentiment" : "emotion", bl, be, bestf, acc);
        }
        MMSPCL_FREE(df); MMSPCL_FREE(allr); MMSPCL_FREE(ord); MMSPCL_FREE(fold); MMSPCL_FREE(lp);
        mmspcl__csr_free(&xtr); mmspcl__csr_free(&xdv);
        if (!(aho = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)(dho.n + 1) * D))) goto oom;
        for (i = 0; i < dho.n; i++) memcpy(aho + (size_t)i * D, atr + (size_t)ho_rows[i] * D, sizeof(float) * D);
    }
    {
        mmspcl_dataset trs, dvs;
        mmspcl_msve_cfg mc;
        mmspcl_msve_train_cfg tc;
        mmspcl_train_report rep;
        float *mstd[3][2];
        const char *vname[3] = {"t", "a", "v"};
        const int vd[3] = {H, D, H};
        double acc;
        int mi;
        /* every view standardised with the train statistics */
        for (mi = 0; mi < 3; mi++) {
            const float *x = mi == 0 ? tt : mi == 1 ? aho : tv;
            const int W = vd[mi];
            mstd[mi][0] = (float *)MMSPCL_MALLOC(sizeof(float) * W);
            mstd[mi][1] = (float *)MMSPCL_MALLOC(sizeof(float) * W);
            if (!mstd[mi][0] || !mstd[mi][1]) goto oom;
            hold_list[n_hold++] = mstd[mi][0];
            hold_list[n_hold++] = mstd[mi][1];
            for (k = 0; k < W; k++) {
                double s = 0, s2 = 0;
                for (i = 0; i < dho.n; i++) s += x[(size_t)i * W + k];
                s /= dho.n;
                for (i = 0; i < dho.n; i++) s2 += (x[(size_t)i * W + k] - s) * (x[(size_t)i * W + k] - s);
                mstd[mi][0][k] = (float)s;
                mstd[mi][1][k] = (float)(sqrt(s2 / dho.n) > 1e-6 ? sqrt(s2 / dho.n) : 1.0);
            }
        }
        trs.x[0] = tt; trs.x[1] = aho; trs.x[2] = tv; trs.y = dho.emo; trs.n = dho.n;
        dvs.x[0] = dt; dvs.x[1] = adv; dvs.x[2] = dv; dvs.y = ddv.emo; dvs.n = ddv.n;
        mmspcl_msve_train_defaults(&tc);
        tc.epochs = r->msve_epochs; tc.standardize = 0; tc.lr = r->msve_lr; tc.seed = r->seed + 11; tc.patience = 5;
        memset(&mc, 0, sizeof mc);
        mc.n_classes = C; mc.hidden = r->msve_hidden; mc.act = MMSPCL_ACT_GELU; mc.dropout = r->msve_dropout;
        for (k = 0; k < 5; k++) {   /* 0 emotion ensemble, 1 sentiment ensemble, 2..4 single views */
            mmspcl_msve_model *M = k == 0 ? &ME : k == 1 ? &MS : &MV[k - 2];
            mc.dims[0] = H; mc.dims[1] = D; mc.dims[2] = H; mc.combos = 0;
            mc.n_classes = k == 1 ? CS : C;
            if (k >= 2) {
                const int vi = k - 2;
                mc.dims[0] = vi == 0 ? H : 0; mc.dims[1] = vi == 1 ? D : 0; mc.dims[2] = vi == 2 ? H : 0;
            }
            if ((st = mmspcl_msve_model_create(M, &mc, r->seed + 100 + k, err))) goto done;
            if (k == 0) have_me = 1; else if (k == 1) have_ms = 1; else have_mv[k - 2] = 1;
            for (mi = 0; mi < 3; mi++)
                if (mc.dims[mi]) {
                    M->mean[mi] = (float *)MMSPCL_MALLOC(sizeof(float) * vd[mi]);
                    M->std[mi] = (float *)MMSPCL_MALLOC(sizeof(float) * vd[mi]);
                    if (!M->mean[mi] || !M->std[mi]) goto oom;
                    memcpy(M->mean[mi], mstd[mi][0], sizeof(float) * vd[mi]);
                    memcpy(M->std[mi], mstd[mi][1], sizeof(float) * vd[mi]);
                }
            trs.y = k == 1 ? dho.sent : dho.emo;
            dvs.y = k == 1 ? ddv.sent : ddv.emo;
            if ((st = mmspcl_msve_train(M, &trs, &dvs, &tc, &rep, NULL, NULL, err))) goto done;
            if ((st = mmspcl_msve_model_predict(M, dvs.x, dvs.n, 0, pred, NULL, err))) goto done;
            {
                const double f1 = mmspcl__wf1(dvs.y, pred, dvs.n, k == 1 ? CS : C, &acc);
                mmspcl__mlog_add(&lv, k, f1, acc);
                mmspcl__msg(progress, user, "msve", "%s head: dev weighted F1 %.4f accuracy %.4f (epoch %d of %d run)",
                            k == 0 ? "emotion MSVE (t,a,v)" : k == 1 ? "sentiment MSVE (t,a,v)" : vname[k - 2],
                            f1, acc, rep.best_epoch + 1, rep.epochs_run);
            }
        }
        mmspcl__proto_pred(dt, ddv.n, H, means, C, pred);
        {
            const double f1 = mmspcl__wf1(ddv.emo, pred, ddv.n, C, &acc);
            mmspcl__mlog_add(&lv, 5, f1, acc);
            mmspcl__msg(progress, user, "msve", "t by nearest class mean: dev weighted F1 %.4f accuracy %.4f", f1, acc);
        }
    }

    /* 6. the model file */
    if (!(wr = mmspcl_writer_create())) goto oom;
    {
        float *hm = NULL, *pm = NULL;
        int64_t sh[2];
        const char *heads[5] = {"meld.emotion", "meld.sentiment", "meld.view.t", "meld.view.a", "meld.view.v"};
        if ((st = mmspcl_rt_write_config(&m, wr, err))) goto done;
        if ((st = mmspcl_rt_write_tensors(&m, wr, MMSPCL_F32, &enc_hold, err))) goto done;
        if (mmspcl_writer_set_str(wr, "tokenizer.model", "gpt2-bpe") ||
            mmspcl_writer_set_str_array(wr, "tokenizer.vocab", vc.vocab, NULL, vc.n_vocab) ||
            mmspcl_writer_set_str_array(wr, "tokenizer.merges", vc.merges, NULL, vc.n_merges) ||
            mmspcl_writer_set_str(wr, "general.name", "mmspcl-meld-text") ||
            mmspcl_writer_set_str(wr, "general.source", "trained by mmspcl train on MELD train_sent_emo.csv (GPL-3.0 data)") ||
            mmspcl_writer_set_int(wr, "meld.max_len", ML) || mmspcl_writer_set_int(wr, "meld.ngram_bits", r->ngram_bits) ||
            mmspcl_writer_set_int(wr, "meld.seed", (int64_t)r->seed) ||
            mmspcl_writer_set_float(wr, "meld.dev_f1_spcl", best_f1))
            goto oom;
        sh[0] = F;
        if ((st = mmspcl_writer_add_tensor(wr, "meld.idf", MMSPCL_F32, 1, sh, idf, sizeof(float) * (size_t)F, err))) goto done;
        sh[0] = C; sh[1] = F;
        if ((st = mmspcl_writer_add_tensor(wr, "meld.lr.emotion.weight", MMSPCL_F32, 2, sh, lrw[0], sizeof(float) * (size_t)(C * F), err))) goto done;
        if ((st = mmspcl_writer_add_tensor(wr, "meld.lr.emotion.bias", MMSPCL_F32, 1, sh, lrb[0], sizeof(float) * (size_t)C, err))) goto done;
        sh[0] = CS;
        if ((st = mmspcl_writer_add_tensor(wr, "meld.lr.sentiment.weight", MMSPCL_F32, 2, sh, lrw[1], sizeof(float) * (size_t)(CS * F), err))) goto done;
        if ((st = mmspcl_writer_add_tensor(wr, "meld.lr.sentiment.bias", MMSPCL_F32, 1, sh, lrb[1], sizeof(float) * (size_t)CS, err))) goto done;
        pm = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)C * H);
        if (!pm) goto oom;
        hold_list[n_hold++] = pm;
        for (i = 0; i < C * H; i++) pm[i] = (float)means[i];
        sh[0] = C; sh[1] = H;
        if ((st = mmspcl_writer_add_tensor(wr, "meld.protos", MMSPCL_F32, 2, sh, pm, sizeof(float) * (size_t)C * H, err))) goto done;
        for (k = 0; k < 5; k++) {
            const mmspcl_msve_model *M = k == 0 ? &ME : k == 1 ? &MS : &MV[k - 2];
            if ((st = mmspcl__t_msve_write(M, wr, heads[k], 0, &hm, err))) { MMSPCL_FREE(hm); goto done; }
            hold_list[n_hold++] = hm;
            hm = NULL;
        }
        if ((st = mmspcl__mlog_write(&lm, wr, "meld.log.mlm", err)) || (st = mmspcl__mlog_write(&ls, wr, "meld.log.spcl", err)) ||
            (st = mmspcl__mlog_write(&lv, wr, "meld.log.heads", err)))
            goto done;
        if ((st = mmspcl_writer_save(wr, out_path, NULL, NULL, err))) goto done;
    }
    goto done;
oom:
    st = mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "meld_train: out of memory");
done:
    if (wr) mmspcl_writer_free(wr);
    for (i = 0; i < n_hold; i++) MMSPCL_FREE(hold_list[i]);
    MMSPCL_FREE(enc_hold);
    if (have_me) mmspcl_msve_model_free(&ME);
    if (have_ms) mmspcl_msve_model_free(&MS);
    for (i = 0; i < 3; i++) if (have_mv[i]) mmspcl_msve_model_free(&MV[i]);
    mmspcl_bpe_free(full); mmspcl_bpe_free(tok);
    MMSPCL_FREE(vc.vocab); MMSPCL_FREE(vc.merges);
    mmspcl__md_free(&dtr); mmspcl__md_free(&ddv); mmspcl__md_free(&tmpd);
    mmspcl__md_free(&denc); mmspcl__md_free(&dho); MMSPCL_FREE(ho_rows); MMSPCL_FREE(enc_rows); MMSPCL_FREE(aho);
    mmspcl_rt_free(&m);
    mmspcl_params_free(&Ph);
    if (S.pool) mmspcl_spcl_free(&S);
    MMSPCL_FREE(chunks); MMSPCL_FREE(clen); MMSPCL_FREE(bids); MMSPCL_FREE(blen); MMSPCL_FREE(rows); MMSPCL_FREE(tgt);
    MMSPCL_FREE(dout); MMSPCL_FREE(order); MMSPCL_FREE(keep); MMSPCL_FREE(zd); MMSPCL_FREE(dz); MMSPCL_FREE(lg);
    MMSPCL_FREE(dlg); MMSPCL_FREE(tt); MMSPCL_FREE(tv); MMSPCL_FREE(dt); MMSPCL_FREE(dv); MMSPCL_FREE(zall);
    MMSPCL_FREE(means); MMSPCL_FREE(diff); MMSPCL_FREE(pred); MMSPCL_FREE(best); MMSPCL_FREE(idf);
    MMSPCL_FREE(lrw[0]); MMSPCL_FREE(lrw[1]); MMSPCL_FREE(atr); MMSPCL_FREE(adv);
    MMSPCL_FREE(lm.x); MMSPCL_FREE(ls.x); MMSPCL_FREE(lv.x);
    return st;
}

/* ---- quantized copy ---- */
mmspcl_status mmspcl_meld_quantize_file(const char *in_path, const char *out_path, mmspcl_dtype dtype,
                                        mmspcl_error *err) {
    mmspcl_weights *w = NULL;
    mmspcl_writer *wr = NULL;
    unsigned char *buf = NULL;
    size_t total = 0, off = 0;
    int64_t i;
    mmspcl_status st;
    if ((st = mmspcl_weights_read(&w, in_path, err))) return st;
    if (!(wr = mmspcl_writer_create())) { st = mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "quantize: out of memory"); goto done; }
    for (i = 0; i < w->n_kv; i++) {
        const mmspcl_kv *kv = &w->kv[i];
        int bad = 0;
        if (!strcmp(kv->key, "general.file_type")) continue;
        if (kv->type == MMSPCL_KV_INT) bad = mmspcl_writer_set_int(wr, kv->key, kv->i);
        else if (kv->type == MMSPCL_KV_FLOAT) bad = mmspcl_writer_set_float(wr, kv->key, kv->f);
        else if (kv->type == MMSPCL_KV_STR) bad = mmspcl_writer_set_str(wr, kv->key, kv->str);
        else bad = mmspcl_writer_set_str_array(wr, kv->key, kv->strs, kv->lens, kv->count);
        if (bad) { st = mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "quantize: out of memory"); goto done; }
    }
    mmspcl_writer_set_str(wr, "general.file_type", mmspcl_dtype_name(dtype));
    for (i = 0; i < w->n_tensors; i++) total += w->tensors[i].nbytes + 64;
    if (!(buf = (unsigned char *)MMSPCL_MALLOC(total + 1))) { st = mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "quantize: out of memory"); goto done; }
    for (i = 0; i < w->n_tensors; i++) {
        const mmspcl_tensor *t = &w->tensors[i];
        const int q = t->dtype == MMSPCL_F32 && t->ndim == 2 && t->ne[1] % 32 == 0 && strncmp(t->name, "meld.protos", 11) &&
                      strncmp(t->name, "meld.log", 8);
        const mmspcl_dtype dt = q ? dtype : t->dtype;
        size_t bytes = t->nbytes;
        if (q) {
            int64_t r;
            bytes = mmspcl_dtype_row_size(dt, t->ne[1]) * (size_t)t->ne[0];
            for (r = 0; r < t->ne[0]; r++)
                mmspcl_quantize_row(dt, (const float *)t->data + r * t->ne[1], buf + off + (size_t)r * mmspcl_dtype_row_size(dt, t->ne[1]), t->ne[1]);
        } else memcpy(buf + off, t->data, bytes);
        if ((st = mmspcl_writer_add_tensor(wr, t->name, dt, t->ndim, t->ne, buf + off, bytes, err))) goto done;
        off += (bytes + 63) / 64 * 64;
    }
    st = mmspcl_writer_save(wr, out_path, NULL, NULL, err);
done:
    if (wr) mmspcl_writer_free(wr);
    MMSPCL_FREE(buf);
    mmspcl_weights_free(w);
    return st;
}

/* ---- inference ---- */
void mmspcl_meld_model_free(mmspcl_meld_model *m) {
    if (!m) return;
    mmspcl_roberta_free(m->enc);
    mmspcl_bpe_free(m->tok);
    mmspcl_weights_free(m->w);
    MMSPCL_FREE(m->lr_w[0]);
    MMSPCL_FREE(m->lr_w[1]);
    memset(m, 0, sizeof *m);
}

mmspcl_status mmspcl_meld_model_load(mmspcl_meld_model *m, const char *path, mmspcl_error *err) {
    int64_t v;
    mmspcl_status st;
    const mmspcl_tensor *t;
    memset(m, 0, sizeof *m);
    if ((st = mmspcl_weights_open(&m->w, path, err))) return st;
    if (!mmspcl_weights_get_int(m->w, "meld.max_len", &v) || v < 16 || v > 4096) {
        st = mmspcl__t_fail(err, MMSPCL_ERR_FORMAT, "%s is not a MELD model (no meld.max_len): train one with mmspcl train", path);
        goto fail;
    }
    m->max_len = (int)v;
    m->max_batch = 16;
    if (!mmspcl_weights_get_int(m->w, "meld.ngram_bits", &v) || v < 4 || v > 24) {
        st = mmspcl__t_fail(err, MMSPCL_ERR_FORMAT, "%s: meld.ngram_bits missing or outside 4..24", path);
        goto fail;
    }
    m->ngram_bits = (int)v;
    t = mmspcl_weights_find(m->w, "meld.idf");
    if (!t || t->dtype != MMSPCL_F32 || t->ndim != 1 || t->ne[0] != ((int64_t)1 << m->ngram_bits)) {
        st = mmspcl__t_fail(err, MMSPCL_ERR_FORMAT, "%s: meld.idf must be f32 [2^%d]", path, m->ngram_bits);
        goto fail;
    }
    m->idf = (const float *)t->data;
    {
        static const char *const wn[2] = {"meld.lr.emotion.weight", "meld.lr.sentiment.weight"};
        static const char *const bn[2] = {"meld.lr.emotion.bias", "meld.lr.sentiment.bias"};
        const int CC[2] = {MMSPCL_NUM_EMOTIONS, MMSPCL_NUM_SENTIMENTS};
        const int64_t F = (int64_t)1 << m->ngram_bits;
        int k, c;
        for (k = 0; k < 2; k++) {
            const mmspcl_tensor *tb = mmspcl_weights_find(m->w, bn[k]);
            t = mmspcl_weights_find(m->w, wn[k]);
            if (!t || t->ndim != 2 || t->ne[0] != CC[k] || t->ne[1] != F || !tb || tb->dtype != MMSPCL_F32 || tb->ne[0] != CC[k] ||
                mmspcl_dtype_row_size(t->dtype, F) * (size_t)CC[k] != t->nbytes) {
                st = mmspcl__t_fail(err, MMSPCL_ERR_FORMAT, "%s: %s must be [%d][2^%d] and %s f32 [%d]", path, wn[k], CC[k],
                                    m->ngram_bits, bn[k], CC[k]);
                goto fail;
            }
            if (!(m->lr_w[k] = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)(CC[k] * F)))) {
                st = mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "out of memory");
                goto fail;
            }
            for (c = 0; c < CC[k]; c++)
                mmspcl_dequantize_row(t->dtype, (const unsigned char *)t->data + (size_t)c * mmspcl_dtype_row_size(t->dtype, F),
                                      m->lr_w[k] + (size_t)c * F, F);
            m->lr_b[k] = (const float *)tb->data;
        }
    }
    if ((st = mmspcl_roberta_load(&m->enc, m->w, m->max_batch, m->max_len, err))) goto fail;
    m->hidden = mmspcl_roberta_get_config(m->enc)->hidden_size;
    if ((st = mmspcl_bpe_from_weights(&m->tok, m->w, err))) goto fail;
    t = mmspcl_weights_find(m->w, "meld.protos");
    if (t && t->dtype == MMSPCL_F32 && t->ndim == 2 && t->ne[0] == MMSPCL_NUM_EMOTIONS && t->ne[1] == m->hidden)
        m->protos = (const float *)t->data;
    {   /* default heads: the better on dev of the MSVE ensemble and the LR (meld.log.heads rows
           [k, dev F1, dev accuracy]: k 0/1 MSVE emotion/sentiment, 10/11 LR emotion/sentiment) */
        const mmspcl_tensor *lh = mmspcl_weights_find(m->w, "meld.log.heads");
        int64_t r_;
        m->dev_f1[0][0] = m->dev_f1[0][1] = m->dev_f1[1][0] = m->dev_f1[1][1] = -1;
        if (lh && lh->dtype == MMSPCL_F32 && lh->ndim == 2 && lh->ne[1] == 3)
            for (r_ = 0; r_ < lh->ne[0]; r_++) {
                const float *row = (const float *)lh->data + r_ * 3;
                const int k = (int)row[0];
                if (k == 0 || k == 1) m->dev_f1[k][0] = row[1];
                if (k == 10 || k == 11) m->dev_f1[k - 10][1] = row[1];
            }
        m->emo_lr = m->dev_f1[0][1] > m->dev_f1[0][0];
        m->sent_lr = m->dev_f1[1][1] > m->dev_f1[1][0];
    }
    if ((st = mmspcl_msve_load(&m->emotion, m->w, "meld.emotion", err))) goto fail;
    if (mmspcl_weights_get_int(m->w, "meld.sentiment.n_classes", &v)) {
        if ((st = mmspcl_msve_load(&m->sentiment, m->w, "meld.sentiment", err))) goto fail;
        m->has_sentiment = 1;
    }
    return MMSPCL_OK;
fail:
    mmspcl_meld_model_free(m);
    return st;
}

mmspcl_status mmspcl_meld_features(mmspcl_meld_model *m, const mmspcl_turn *turns, int n, float *t,
                                   float *a, float *v, mmspcl_error *err) {
    const int H = m->hidden, ML = m->max_len, B = m->max_batch;
    int32_t *ids = (int32_t *)MMSPCL_MALLOC(sizeof(int32_t) * (size_t)n * ML);
    int *len = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)n), *mask = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)n);
    float *hid = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)B * ML * H);
    int i, b, j, k;
    mmspcl_status st;
    if (!ids || !len || !mask || !hid) { st = mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "meld_features: out of memory"); goto done; }
    if ((st = mmspcl_spcl_prompts(m->tok, turns, n, ML, ids, len, mask, err))) goto done;
    for (i = 0; i < n; i += B) {
        const int nb = n - i < B ? n - i : B;
        if ((st = mmspcl_roberta_forward(m->enc, ids + (size_t)i * ML, len + i, nb, ML, hid, err))) goto done;
        for (b = 0; b < nb; b++) {
            const float *hb = hid + (size_t)b * ML * H;
            if (t) memcpy(t + (size_t)(i + b) * H, hb + (size_t)mask[i + b] * H, sizeof(float) * H);
            if (v) {
                float *vr = v + (size_t)(i + b) * H;
                for (k = 0; k < H; k++) vr[k] = 0.0f;
                for (j = 0; j < len[i + b]; j++)
                    for (k = 0; k < H; k++) vr[k] += hb[(size_t)j * H + k];
                for (k = 0; k < H; k++) vr[k] /= (float)len[i + b];
            }
        }
    }
    if (a) {
        const int64_t F = (int64_t)1 << m->ngram_bits;
        const int D = MMSPCL_NUM_EMOTIONS + MMSPCL_NUM_SENTIMENTS;
        int cap = 1024, nz;
        int32_t *ix = (int32_t *)MMSPCL_MALLOC(sizeof(int32_t) * (size_t)cap);
        float *vx = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)cap);
        for (i = 0; i < n && !st; i++) {
            const char *txt = turns[i].text ? turns[i].text : "";
            for (;;) {
                nz = ix && vx ? mmspcl_ngram_sparse(txt, m->ngram_bits, m->idf, ix, vx, cap) : -1;
                if (nz < 0) { st = mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "meld_features: out of memory"); break; }
                if (nz <= cap) break;
                cap = nz;
                MMSPCL_FREE(ix); MMSPCL_FREE(vx);
                ix = (int32_t *)MMSPCL_MALLOC(sizeof(int32_t) * (size_t)cap);
                vx = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)cap);
            }
            if (st) break;
            mmspcl__lr_logp(m->lr_w[0], m->lr_b[0], MMSPCL_NUM_EMOTIONS, F, ix, vx, nz, a + (size_t)i * D);
            mmspcl__lr_logp(m->lr_w[1], m->lr_b[1], MMSPCL_NUM_SENTIMENTS, F, ix, vx, nz, a + (size_t)i * D + MMSPCL_NUM_EMOTIONS);
        }
        MMSPCL_FREE(ix); MMSPCL_FREE(vx);
    }
done:
    MMSPCL_FREE(ids); MMSPCL_FREE(len); MMSPCL_FREE(mask); MMSPCL_FREE(hid);
    return st;
}

static void mmspcl__softmax_rows(float *x, int n, int C) {
    int i;
    for (i = 0; i < n; i++) mmspcl_softmax(x + (size_t)i * C, C);
}

mmspcl_status mmspcl_meld_heads(mmspcl_meld_model *m, const float *t, const float *a, const float *v, int n,
                                const char *head, const char *sent_head, float *emo, float *sent, mmspcl_error *err) {
    const int H = m->hidden, D = MMSPCL_NUM_EMOTIONS + MMSPCL_NUM_SENTIMENTS;
    const float *x[3];
    mmspcl_msve single;
    int i, c;
    mmspcl_status st = MMSPCL_OK;
    x[0] = t; x[1] = a; x[2] = v;
    if (!head) head = m->emo_lr ? "lr" : "emotion";
    if (!sent_head) sent_head = m->sent_lr || !m->has_sentiment ? "lr" : "sentiment";
    if (emo) {
        if (!strcmp(head, "emotion")) {
            if ((st = mmspcl_msve_forward(&m->emotion, x, n, 0, emo, err))) return st;
        } else if (!strcmp(head, "lr")) {
            for (i = 0; i < n; i++) memcpy(emo + (size_t)i * MMSPCL_NUM_EMOTIONS, a + (size_t)i * D, sizeof(float) * MMSPCL_NUM_EMOTIONS);
        } else if (!strcmp(head, "protos")) {
            if (!m->protos) return mmspcl__t_fail(err, MMSPCL_ERR_NOT_FOUND, "meld_predict: the model has no meld.protos");
            int *pp = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)(n + 1));
            if (!pp) return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "meld_predict: out of memory");
            mmspcl_proto_classify(t, n, H, m->protos, MMSPCL_NUM_EMOTIONS, pp, emo);
            MMSPCL_FREE(pp);
            for (i = 0; i < n * MMSPCL_NUM_EMOTIONS; i++) emo[i] /= 0.08f;
        } else {
            char prefix[64];
            snprintf(prefix, sizeof prefix, "meld.%s", head);
            if ((st = mmspcl_msve_load(&single, m->w, prefix, err))) return st;
            if ((st = mmspcl_msve_forward(&single, x, n, 0, emo, err))) return st;
        }
        mmspcl__softmax_rows(emo, n, MMSPCL_NUM_EMOTIONS);
    }
    if (sent) {
        if (!strcmp(sent_head, "lr")) {
            for (i = 0; i < n; i++)
                memcpy(sent + (size_t)i * MMSPCL_NUM_SENTIMENTS, a + (size_t)i * D + MMSPCL_NUM_EMOTIONS, sizeof(float) * MMSPCL_NUM_SENTIMENTS);
        } else if (m->has_sentiment) {
            if ((st = mmspcl_msve_forward(&m->sentiment, x, n, 0, sent, err))) return st;
        } else
            for (i = 0; i < n; i++) for (c = 0; c < MMSPCL_NUM_SENTIMENTS; c++) sent[i * MMSPCL_NUM_SENTIMENTS + c] = (float)(c == 0);
        mmspcl__softmax_rows(sent, n, MMSPCL_NUM_SENTIMENTS);
    }
    return st;
}

mmspcl_status mmspcl_meld_predict(mmspcl_meld_model *m, const mmspcl_turn *turns, int n,
                                  const char *head, float *emo, float *sent, mmspcl_error *err) {
    const int H = m->hidden, D = MMSPCL_NUM_EMOTIONS + MMSPCL_NUM_SENTIMENTS;
    float *t = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)n * H), *v = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)n * H);
    float *a = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)n * D);
    mmspcl_status st;
    if (!t || !v || !a) st = mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "meld_predict: out of memory");
    else if (!(st = mmspcl_meld_features(m, turns, n, t, a, v, err)))
        st = mmspcl_meld_heads(m, t, a, v, n, head, NULL, emo, sent, err);
    MMSPCL_FREE(t); MMSPCL_FREE(v); MMSPCL_FREE(a);
    return st;
}
#endif /* MMSPCL_TRAIN_ROBERTA_IMPL */
