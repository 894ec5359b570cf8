#ifndef MMSPCL_TRAIN_ROBERTA_IMPL
#define MMSPCL_TRAIN_ROBERTA_IMPL
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
    MMSPCL__OMP_FOR
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
    MMSPCL__OMP_FOR
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
    MMSPCL__OMP_FOR
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
    MMSPCL__OMP_FOR
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
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "rt_create: inconsistent configuration (hidden %d, heads %d, max_seq %d, positions %d)",
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
          (size_t)MMSPCL__MAX_THREADS() * (size_t)max_seq;
    m->scratch_n = scr;
    m->scratch = (float *)MMSPCL_MALLOC(sizeof(float) * scr);
    if (!m->w || !m->g || !m->starts || !m->lens || !m->tok || !m->posid || !m->cache || !m->scratch) goto oom;
    memset(m->g, 0, sizeof(float) * m->P.n);
    mmspcl_rt_sync(m);
    return MMSPCL_OK;
oom:
    mmspcl_rt_free(m);
    return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "rt_create: out of memory");
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
    if (batch < 1 || seq < 1 || batch > m->max_tokens) return mmspcl__fail(err, MMSPCL_ERR_ARG, "rt_forward: empty or oversized batch");
    for (b = 0; b < batch; b++) {
        if (lengths[b] < 1 || lengths[b] > seq || lengths[b] > m->max_seq)
            return mmspcl__fail(err, MMSPCL_ERR_ARG, "rt_forward: sequence %d has length %d (1..%d allowed)", b, lengths[b],
                                seq < m->max_seq ? seq : m->max_seq);
        for (t = 0; t < lengths[b]; t++)
            if (ids[(size_t)b * seq + t] < 0 || ids[(size_t)b * seq + t] >= c->vocab_size)
                return mmspcl__fail(err, MMSPCL_ERR_ARG, "rt_forward: token id %d at [%d][%d] is outside the vocabulary (%d)",
                                    ids[(size_t)b * seq + t], b, t, c->vocab_size);
        T += lengths[b];
        if (T > m->max_tokens)
            return mmspcl__fail(err, MMSPCL_ERR_ARG, "rt_forward: more than the %d tokens the trainer was created for", m->max_tokens);
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
    if (!poff) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "rt_forward: out of memory");
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
        MMSPCL__OMP_FOR
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
    return mmspcl__fail(err, st, "rt_forward: layer %d failed (%s)", l, mmspcl_status_name(st));
}

static void mmspcl__rt_flush(mmspcl_rt *m) {
    long i, n = (long)m->P.n;
    MMSPCL__OMP_FOR
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
        if (!poff) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "rt_backward: out of memory");
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
            MMSPCL__OMP_FOR
            for (task = 0; task < m->batch * nh; task++) {
                const int bb = task / nh, h = task % nh;
                const size_t s0 = (size_t)m->starts[bb] * H;
                mmspcl__rt_attn_bwd(lc.h[MMSPCL__RT_Q] + s0, lc.h[MMSPCL__RT_K] + s0, lc.h[MMSPCL__RT_V] + s0,
                                    lc.probs + poff[bb] + (size_t)h * m->lens[bb] * m->lens[bb], dctx + s0, dq + s0,
                                    dk + s0, dv + s0, attn_rows + (size_t)MMSPCL__THREAD_ID() * m->max_seq,
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
    if (st) return mmspcl__fail(err, st, "rt_backward: layer %d failed (%s)", l, mmspcl_status_name(st));
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
    if (!m->mlm || n < 1) { mmspcl__fail(err, MMSPCL_ERR_ARG, "rt_mlm_loss: no MLM head or no rows"); return -1.0; }
    mx = (size_t)(V > H ? V : H);
    need = (size_t)n * (7 * (size_t)H + 1 + 2 * (size_t)V) + 3 * (size_t)n * mx + 2 * (size_t)H * mx;
    hs = (float *)MMSPCL_MALLOC(sizeof(float) * need);
    if (!hs) { mmspcl__fail(err, MMSPCL_ERR_NOMEM, "rt_mlm_loss: out of memory"); return -1.0; }
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
    mmspcl__fail(err, MMSPCL_ERR_NOMEM, "rt_mlm_loss: a linear layer failed");
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
        return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "rt_write_config: out of memory");
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
    if (!(buf = (unsigned char *)MMSPCL_MALLOC(total + 1))) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "rt_write: out of memory");
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
                return mmspcl__fail(err, st, "rt_write: cannot convert %s", pi->name);
        }
        if ((st = mmspcl_writer_add_tensor(wr, pi->name, dt, pi->ndim, pi->shape, buf + off, bytes, err))) return st;
        off += (bytes + 63) / 64 * 64;
    }
    return MMSPCL_OK;
}
#endif /* MMSPCL_TRAIN_ROBERTA_IMPL */
