/* ---------------------------------------------------------------------------------------------
   CLIP vision tower (see the API notes in parts/clip_api.h)
   ------------------------------------------------------------------------------------------ */
typedef struct mmspcl__clip_layer {
    const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    const mmspcl_tensor *q_w, *k_w, *v_w, *o_w, *fc1_w, *fc2_w;
    const float *q_b, *k_b, *v_b, *o_b, *fc1_b, *fc2_b;
} mmspcl__clip_layer;

struct mmspcl_clip {
    mmspcl_clip_config c;
    mmspcl_tensor patch_w;            /* the conv weight seen as a matrix [W, C*P*P] */
    const mmspcl_tensor *pos_emb;     /* [T, W], any float dtype (rows widened as they are used) */
    const float *class_emb;           /* [W] */
    const float *pre_ln_w, *pre_ln_b, *post_ln_w, *post_ln_b;
    const mmspcl_tensor *proj_w;      /* [proj, W] or NULL */
    mmspcl__clip_layer *layers;
    float **owned;                    /* vectors widened to f32 at load */
    int n_owned;
    int max_batch, arena_threads;
    mmspcl_arena arena;
    const float *last_hidden;
};

/* Activations of one forward chunk of B images (T tokens, W wide, I in the MLP). */
typedef struct mmspcl__clip_acts {
    float *x;        /* [B*T][W] residual stream */
    float *h;        /* [B*T][W] layer norm output, patch embeddings, sub-layer output */
    float *q, *k, *v, *ctx;   /* [B*T][W] */
    float *f;        /* [B*T][I] MLP hidden; also the unfolded patches [B*N][C*P*P] */
    float *pooled;   /* [B][W] */
    float *scratch;  /* attention scratch */
} mmspcl__clip_acts;

static size_t mmspcl__clip_f_floats(const mmspcl_clip_config *c, int B) {
    size_t mlp = (size_t)B * (size_t)c->num_tokens * (size_t)c->intermediate_size;
    size_t unf = (size_t)B * (size_t)c->num_patches * (size_t)c->num_channels *
                 (size_t)c->patch_size * (size_t)c->patch_size;
    return mlp > unf ? mlp : unf;
}

/* Bytes the arena needs for B images with `threads` OpenMP threads (64 bytes of slack each). */
static size_t mmspcl__clip_arena_size(const mmspcl_clip_config *c, int B, int threads) {
    size_t tw = (size_t)B * (size_t)c->num_tokens * (size_t)c->hidden_size;
    size_t floats = 6 * tw + mmspcl__clip_f_floats(c, B) + (size_t)B * (size_t)c->hidden_size +
                    (size_t)threads * (size_t)c->num_tokens;
    return floats * sizeof(float) + 8 * 64;
}

static int mmspcl__clip_carve(mmspcl_arena *a, const mmspcl_clip_config *c, int B, int threads,
                              mmspcl__clip_acts *s) {
    size_t tw = (size_t)B * (size_t)c->num_tokens * (size_t)c->hidden_size;
    mmspcl_arena_reset(a);
    s->x = (float *)mmspcl_arena_alloc(a, tw * sizeof(float));
    s->h = (float *)mmspcl_arena_alloc(a, tw * sizeof(float));
    s->q = (float *)mmspcl_arena_alloc(a, tw * sizeof(float));
    s->k = (float *)mmspcl_arena_alloc(a, tw * sizeof(float));
    s->v = (float *)mmspcl_arena_alloc(a, tw * sizeof(float));
    s->ctx = (float *)mmspcl_arena_alloc(a, tw * sizeof(float));
    s->f = (float *)mmspcl_arena_alloc(a, mmspcl__clip_f_floats(c, B) * sizeof(float));
    s->pooled = (float *)mmspcl_arena_alloc(a, (size_t)B * (size_t)c->hidden_size * sizeof(float));
    s->scratch = (float *)mmspcl_arena_alloc(a, (size_t)threads * (size_t)c->num_tokens * sizeof(float));
    return s->x && s->h && s->q && s->k && s->v && s->ctx && s->f && s->pooled && s->scratch;
}

/* ---- loading ---------------------------------------------------------------------------- */

static mmspcl_status mmspcl__clip_int(const mmspcl_weights *w, const char *key, int lo, int hi,
                                      int dflt, int *out, mmspcl_error *err) {
    int64_t v;
    if (!mmspcl_weights_get_int(w, key, &v)) {
        if (dflt < 0) return mmspcl__fail(err, MMSPCL_ERR_NOT_FOUND, "clip: integer '%s' is missing", key);
        *out = dflt;
        return MMSPCL_OK;
    }
    if (v < lo || v > hi)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "clip: '%s' = %lld is out of range [%d, %d]", key,
                            (long long)v, lo, hi);
    *out = (int)v;
    return MMSPCL_OK;
}

static mmspcl_status mmspcl__clip_float(const mmspcl_weights *w, const char *key, double lo,
                                        double hi, double dflt, float *out, mmspcl_error *err) {
    double v;
    if (!mmspcl_weights_get_float(w, key, &v)) {
        int64_t iv;   /* an integer stored for a float key is fine */
        if (!mmspcl_weights_get_int(w, key, &iv)) { *out = (float)dflt; return MMSPCL_OK; }
        v = (double)iv;
    }
    if (!(v >= lo && v <= hi))
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "clip: '%s' = %g is out of range [%g, %g]", key, v, lo, hi);
    *out = (float)v;
    return MMSPCL_OK;
}

static mmspcl_status mmspcl__clip_config(const mmspcl_weights *w, mmspcl_clip_config *c,
                                         mmspcl_error *err) {
    static const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};  /* OpenAI CLIP's */
    static const float stdv[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    const char *s;
    mmspcl_status st;
    int i;
    memset(c, 0, sizeof *c);
    if (!mmspcl_weights_get_str(w, "general.architecture", &s))
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "clip: the weight file has no 'general.architecture'");
    if (strcmp(s, "clip_vision") != 0)
        return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED,
                            "clip: the weight file holds a '%.64s' model, not a CLIP vision tower ('clip_vision')", s);
    if ((st = mmspcl__clip_int(w, "clip.image_size", 1, 8192, -1, &c->image_size, err)) ||
        (st = mmspcl__clip_int(w, "clip.patch_size", 1, 8192, -1, &c->patch_size, err)) ||
        (st = mmspcl__clip_int(w, "clip.num_channels", 1, 16, 3, &c->num_channels, err)) ||
        (st = mmspcl__clip_int(w, "clip.hidden_size", 1, 65536, -1, &c->hidden_size, err)) ||
        (st = mmspcl__clip_int(w, "clip.num_hidden_layers", 0, 1024, -1, &c->num_layers, err)) ||
        (st = mmspcl__clip_int(w, "clip.num_attention_heads", 1, 65536, -1, &c->num_heads, err)) ||
        (st = mmspcl__clip_int(w, "clip.intermediate_size", 1, 1 << 20, -1, &c->intermediate_size, err)) ||
        (st = mmspcl__clip_int(w, "clip.projection_dim", 0, 1 << 20, 0, &c->projection_dim, err)) ||
        (st = mmspcl__clip_float(w, "clip.layer_norm_eps", 0.0, 1.0, 1e-5, &c->layer_norm_eps, err)))
        return st;
    if (c->image_size % c->patch_size)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "clip: image_size %d is not a multiple of patch_size %d",
                            c->image_size, c->patch_size);
    if (c->hidden_size % c->num_heads)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "clip: hidden_size %d is not a multiple of num_attention_heads %d",
                            c->hidden_size, c->num_heads);
    c->num_patches = (c->image_size / c->patch_size) * (c->image_size / c->patch_size);
    c->num_tokens = 1 + c->num_patches;
    if ((int64_t)c->num_channels * c->patch_size * c->patch_size > (1 << 24))
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "clip: patch of %d x %d x %d values is too large",
                            c->num_channels, c->patch_size, c->patch_size);
    c->act = MMSPCL_CLIP_QUICK_GELU;
    if (mmspcl_weights_get_str(w, "clip.hidden_act", &s)) {
        if (!strcmp(s, "gelu")) c->act = MMSPCL_CLIP_GELU;
        else if (strcmp(s, "quick_gelu") != 0)
            return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED,
                                "clip: hidden_act '%.64s' is not supported (quick_gelu, gelu)", s);
    }
    if ((st = mmspcl__clip_int(w, "clip.resize_shortest_edge", 1, 1 << 16, c->image_size,
                               &c->resize_shortest_edge, err)) ||
        (st = mmspcl__clip_int(w, "clip.crop_size", 1, 1 << 16, c->image_size, &c->crop_size, err)))
        return st;
    if (c->crop_size != c->image_size)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "clip: crop_size %d differs from image_size %d",
                            c->crop_size, c->image_size);
    for (i = 0; i < 3; i++) {
        char key[32];
        snprintf(key, sizeof key, "clip.image_mean.%d", i);
        if ((st = mmspcl__clip_float(w, key, -1e3, 1e3, mean[i], &c->image_mean[i], err))) return st;
        snprintf(key, sizeof key, "clip.image_std.%d", i);
        if ((st = mmspcl__clip_float(w, key, 1e-6, 1e3, stdv[i], &c->image_std[i], err))) return st;
    }
    return MMSPCL_OK;
}

/* A matrix used by mmspcl_linear: any float or quantized dtype, shape [rows, cols]. */
static mmspcl_status mmspcl__clip_matrix(const mmspcl_weights *w, const char *name, int64_t rows,
                                         int64_t cols, const mmspcl_tensor **out, mmspcl_error *err) {
    int64_t ne[2];
    mmspcl_status st;
    ne[0] = rows;
    ne[1] = cols;
    if ((st = mmspcl_weights_expect(w, name, 2, ne, out, err))) return st;
    if ((*out)->dtype == MMSPCL_I32 || mmspcl_dtype_row_size((*out)->dtype, cols) == 0)
        return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "clip: tensor '%s' has dtype %s, which a matrix cannot use",
                            name, mmspcl_dtype_name((*out)->dtype));
    return MMSPCL_OK;
}

/* A vector of n floats: f32 in place, other float types widened into memory the model owns. */
static mmspcl_status mmspcl__clip_vector(mmspcl_clip *m, const mmspcl_weights *w, const char *name,
                                         int64_t n, const float **out, mmspcl_error *err) {
    const mmspcl_tensor *t;
    mmspcl_status st;
    float *buf;
    if ((st = mmspcl_weights_expect(w, name, 1, &n, &t, err))) return st;
    if (t->dtype == MMSPCL_F32) { *out = (const float *)t->data; return MMSPCL_OK; }
    if (t->dtype == MMSPCL_I32 || mmspcl_dtype_row_size(t->dtype, n) == 0)
        return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "clip: tensor '%s' has dtype %s, expected a float type",
                            name, mmspcl_dtype_name(t->dtype));
    buf = (float *)MMSPCL_MALLOC((size_t)n * sizeof(float));
    if (!buf) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "clip: no memory to widen '%s'", name);
    m->owned[m->n_owned++] = buf;   /* room was reserved by mmspcl_clip_load */
    mmspcl_dequantize_row(t->dtype, t->data, buf, n);
    *out = buf;
    return MMSPCL_OK;
}

static mmspcl_status mmspcl__clip_layer_load(mmspcl_clip *m, const mmspcl_weights *w, int l,
                                             mmspcl_error *err) {
    const mmspcl_clip_config *c = &m->c;
    mmspcl__clip_layer *L = &m->layers[l];
    int64_t W = c->hidden_size, I = c->intermediate_size;
    char name[128];
    mmspcl_status st;
#define MMSPCL__CLIP_NAME(suffix) (snprintf(name, sizeof name, "vision_model.encoder.layers.%d.%s", l, suffix), name)
    if ((st = mmspcl__clip_vector(m, w, MMSPCL__CLIP_NAME("layer_norm1.weight"), W, &L->ln1_w, err)) ||
        (st = mmspcl__clip_vector(m, w, MMSPCL__CLIP_NAME("layer_norm1.bias"), W, &L->ln1_b, err)) ||
        (st = mmspcl__clip_matrix(w, MMSPCL__CLIP_NAME("self_attn.q_proj.weight"), W, W, &L->q_w, err)) ||
        (st = mmspcl__clip_vector(m, w, MMSPCL__CLIP_NAME("self_attn.q_proj.bias"), W, &L->q_b, err)) ||
        (st = mmspcl__clip_matrix(w, MMSPCL__CLIP_NAME("self_attn.k_proj.weight"), W, W, &L->k_w, err)) ||
        (st = mmspcl__clip_vector(m, w, MMSPCL__CLIP_NAME("self_attn.k_proj.bias"), W, &L->k_b, err)) ||
        (st = mmspcl__clip_matrix(w, MMSPCL__CLIP_NAME("self_attn.v_proj.weight"), W, W, &L->v_w, err)) ||
        (st = mmspcl__clip_vector(m, w, MMSPCL__CLIP_NAME("self_attn.v_proj.bias"), W, &L->v_b, err)) ||
        (st = mmspcl__clip_matrix(w, MMSPCL__CLIP_NAME("self_attn.out_proj.weight"), W, W, &L->o_w, err)) ||
        (st = mmspcl__clip_vector(m, w, MMSPCL__CLIP_NAME("self_attn.out_proj.bias"), W, &L->o_b, err)) ||
        (st = mmspcl__clip_vector(m, w, MMSPCL__CLIP_NAME("layer_norm2.weight"), W, &L->ln2_w, err)) ||
        (st = mmspcl__clip_vector(m, w, MMSPCL__CLIP_NAME("layer_norm2.bias"), W, &L->ln2_b, err)) ||
        (st = mmspcl__clip_matrix(w, MMSPCL__CLIP_NAME("mlp.fc1.weight"), I, W, &L->fc1_w, err)) ||
        (st = mmspcl__clip_vector(m, w, MMSPCL__CLIP_NAME("mlp.fc1.bias"), I, &L->fc1_b, err)) ||
        (st = mmspcl__clip_matrix(w, MMSPCL__CLIP_NAME("mlp.fc2.weight"), W, I, &L->fc2_w, err)) ||
        (st = mmspcl__clip_vector(m, w, MMSPCL__CLIP_NAME("mlp.fc2.bias"), W, &L->fc2_b, err)))
        return st;
#undef MMSPCL__CLIP_NAME
    return MMSPCL_OK;
}

static mmspcl_status mmspcl__clip_load(mmspcl_clip *m, const mmspcl_weights *w, int max_batch,
                                       mmspcl_error *err) {
    mmspcl_clip_config *c = &m->c;
    const mmspcl_tensor *t;
    int64_t ne[4], W, D;
    mmspcl_status st;
    int l;
    if ((st = mmspcl__clip_config(w, c, err))) return st;
    W = c->hidden_size;
    D = (int64_t)c->num_channels * c->patch_size * c->patch_size;
    /* every vector may need widening: 16 per layer, 5 others */
    m->owned = (float **)MMSPCL_MALLOC(((size_t)c->num_layers * 16 + 5) * sizeof(float *));
    m->layers = (mmspcl__clip_layer *)MMSPCL_MALLOC(((size_t)c->num_layers + 1) * sizeof(mmspcl__clip_layer));
    if (!m->owned || !m->layers) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "clip: out of memory");

    ne[0] = W; ne[1] = c->num_channels; ne[2] = c->patch_size; ne[3] = c->patch_size;
    if ((st = mmspcl_weights_expect(w, "vision_model.embeddings.patch_embedding.weight", 4, ne, &t, err)))
        return st;
    m->patch_w = *t;                 /* the same bytes seen as [W, C*P*P] */
    m->patch_w.ndim = 2;
    m->patch_w.ne[1] = D;
    m->patch_w.ne[2] = m->patch_w.ne[3] = 0;
    if (t->dtype == MMSPCL_I32 || mmspcl_dtype_row_size(t->dtype, D) == 0)
        return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "clip: tensor '%s' has dtype %s, which a matrix cannot use",
                            t->name, mmspcl_dtype_name(t->dtype));
    if ((st = mmspcl__clip_vector(m, w, "vision_model.embeddings.class_embedding", W, &m->class_emb, err)))
        return st;
    ne[0] = c->num_tokens; ne[1] = W;
    if ((st = mmspcl_weights_expect(w, "vision_model.embeddings.position_embedding.weight", 2, ne, &m->pos_emb, err)))
        return st;
    if (m->pos_emb->dtype == MMSPCL_I32 || mmspcl_dtype_row_size(m->pos_emb->dtype, W) == 0)
        return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "clip: tensor '%s' has dtype %s, expected a float type",
                            m->pos_emb->name, mmspcl_dtype_name(m->pos_emb->dtype));
    if ((st = mmspcl__clip_vector(m, w, "vision_model.pre_layrnorm.weight", W, &m->pre_ln_w, err)) ||
        (st = mmspcl__clip_vector(m, w, "vision_model.pre_layrnorm.bias", W, &m->pre_ln_b, err)))
        return st;
    for (l = 0; l < c->num_layers; l++)
        if ((st = mmspcl__clip_layer_load(m, w, l, err))) return st;
    if ((st = mmspcl__clip_vector(m, w, "vision_model.post_layernorm.weight", W, &m->post_ln_w, err)) ||
        (st = mmspcl__clip_vector(m, w, "vision_model.post_layernorm.bias", W, &m->post_ln_b, err)))
        return st;
    m->proj_w = NULL;
    if (c->projection_dim > 0) {
        if ((st = mmspcl__clip_matrix(w, "visual_projection.weight", c->projection_dim, W, &m->proj_w, err)))
            return st;
    } else if (mmspcl_weights_find(w, "visual_projection.weight")) {
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT,
                            "clip: tensor 'visual_projection.weight' is present but clip.projection_dim is missing or 0");
    }
    {   /* every activation index of a chunk must fit an int */
        int64_t widest = W > c->intermediate_size ? W : c->intermediate_size;
        if (D > widest) widest = D;
        if ((double)max_batch * (double)c->num_tokens * (double)widest > 2147483647.0)
            return mmspcl__fail(err, MMSPCL_ERR_ARG, "clip: max_batch %d is too large for %d tokens of %lld values",
                                max_batch, c->num_tokens, (long long)widest);
    }
    m->max_batch = max_batch;
    m->arena_threads = MMSPCL__MAX_THREADS();
    return mmspcl_arena_init(&m->arena, mmspcl__clip_arena_size(c, max_batch, m->arena_threads), err);
}

mmspcl_status mmspcl_clip_load(mmspcl_clip **out, const mmspcl_weights *w, int max_batch,
                               mmspcl_error *err) {
    mmspcl_clip *m;
    mmspcl_status st;
    if (!out) return mmspcl__fail(err, MMSPCL_ERR_ARG, "clip: out is NULL");
    *out = NULL;
    if (!w) return mmspcl__fail(err, MMSPCL_ERR_ARG, "clip: no weights");
    if (max_batch < 1 || max_batch > 65536)
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "clip: max_batch %d is out of range [1, 65536]", max_batch);
    m = (mmspcl_clip *)MMSPCL_MALLOC(sizeof *m);
    if (!m) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "clip: out of memory");
    memset(m, 0, sizeof *m);
    if ((st = mmspcl__clip_load(m, w, max_batch, err))) { mmspcl_clip_free(m); return st; }
    *out = m;
    return MMSPCL_OK;
}

void mmspcl_clip_free(mmspcl_clip *m) {
    int i;
    if (!m) return;
    for (i = 0; i < m->n_owned; i++) MMSPCL_FREE(m->owned[i]);
    MMSPCL_FREE(m->owned);
    MMSPCL_FREE(m->layers);
    mmspcl_arena_free(&m->arena);
    MMSPCL_FREE(m);
}

const mmspcl_clip_config *mmspcl_clip_get_config(const mmspcl_clip *m) { return &m->c; }
size_t mmspcl_clip_arena_bytes(const mmspcl_clip *m) { return m->arena.size; }
const float *mmspcl_clip_last_hidden(const mmspcl_clip *m) { return m->last_hidden; }

/* ---- forward ---------------------------------------------------------------------------- */

static mmspcl_status mmspcl__clip_linear(float *out, const float *x, int rows, int n_in,
                                         const mmspcl_tensor *W, const float *bias, mmspcl_error *err) {
    mmspcl_status st = mmspcl_linear(out, x, rows, n_in, W, bias);
    if (st) return mmspcl__fail(err, st, "clip: linear with '%s' failed (%s)", W->name ? W->name : "?",
                                mmspcl_status_name(st));
    return MMSPCL_OK;
}

/* x += y over n rows of dim values */
static void mmspcl__clip_add(float *x, const float *y, int rows, int dim) {
    int r;
MMSPCL__OMP_FOR
    for (r = 0; r < rows; r++) {
        float *xr = x + (size_t)r * (size_t)dim;
        const float *yr = y + (size_t)r * (size_t)dim;
        int i;
        for (i = 0; i < dim; i++) xr[i] += yr[i];
    }
}

/* Unfold B images [C][S][S] into rows [B*N][C*P*P], each row ordered (c, ky, kx) like the conv
   weight, patches in row-major order: the stride-P convolution becomes one matrix product. */
static void mmspcl__clip_unfold(const mmspcl_clip_config *c, const float *pixels, int B, float *rows) {
    int S = c->image_size, P = c->patch_size, C = c->num_channels, g = S / P;
    int task;
MMSPCL__OMP_FOR
    for (task = 0; task < B * c->num_patches; task++) {
        int b = task / c->num_patches, n = task % c->num_patches, py = n / g, px = n % g, ch, ky;
        float *dst = rows + (size_t)task * (size_t)C * (size_t)P * (size_t)P;
        for (ch = 0; ch < C; ch++)
            for (ky = 0; ky < P; ky++) {
                const float *src = pixels + (((size_t)b * (size_t)C + (size_t)ch) * (size_t)S +
                                             (size_t)(py * P + ky)) * (size_t)S + (size_t)px * (size_t)P;
                memcpy(dst, src, (size_t)P * sizeof(float));
                dst += P;
            }
    }
}

/* One chunk of B <= max_batch images. */
static mmspcl_status mmspcl__clip_chunk(mmspcl_clip *m, const mmspcl__clip_acts *s,
                                        const float *pixels, int B, float *embeds, float *pooled,
                                        mmspcl_error *err) {
    const mmspcl_clip_config *c = &m->c;
    const int W = c->hidden_size, T = c->num_tokens, N = c->num_patches, I = c->intermediate_size;
    const int D = c->num_channels * c->patch_size * c->patch_size, BT = B * T;
    const int hd = W / c->num_heads;
    const float eps = c->layer_norm_eps;
    const size_t row_bytes = mmspcl_dtype_row_size(m->pos_emb->dtype, W);
    float *x = s->x, *h = s->h;
    mmspcl_status st;
    int b, t, l;

    /* patch embedding: the stride-P convolution (no bias) as a product over unfolded patches */
    mmspcl__clip_unfold(c, pixels, B, s->f);
    if ((st = mmspcl__clip_linear(h, s->f, B * N, D, &m->patch_w, NULL, err))) return st;

    /* tokens: class embedding, then the patches; plus position embeddings */
    for (b = 0; b < B; b++)
        for (t = 0; t < T; t++) {
            float *xt = x + ((size_t)b * (size_t)T + (size_t)t) * (size_t)W;
            const float *e = t == 0 ? m->class_emb : h + ((size_t)b * (size_t)N + (size_t)(t - 1)) * (size_t)W;
            const unsigned char *pos = (const unsigned char *)m->pos_emb->data + (size_t)t * row_bytes;
            int i;
            if (m->pos_emb->dtype == MMSPCL_F32) memcpy(xt, pos, (size_t)W * sizeof(float));
            else mmspcl_dequantize_row(m->pos_emb->dtype, pos, xt, W);
            for (i = 0; i < W; i++) xt[i] = e[i] + xt[i];
        }
    mmspcl_layernorm(x, x, m->pre_ln_w, m->pre_ln_b, BT, W, eps);

    for (l = 0; l < c->num_layers; l++) {
        const mmspcl__clip_layer *L = &m->layers[l];
        /* x += out_proj(attention(layer_norm1(x))) */
        mmspcl_layernorm(h, x, L->ln1_w, L->ln1_b, BT, W, eps);
        if ((st = mmspcl__clip_linear(s->q, h, BT, W, L->q_w, L->q_b, err)) ||
            (st = mmspcl__clip_linear(s->k, h, BT, W, L->k_w, L->k_b, err)) ||
            (st = mmspcl__clip_linear(s->v, h, BT, W, L->v_w, L->v_b, err)))
            return st;
        for (b = 0; b < B; b++) {
            size_t off = (size_t)b * (size_t)T * (size_t)W;
            mmspcl_attention(s->ctx + off, W, s->q + off, W, s->k + off, s->v + off, W, T, T,
                             c->num_heads, hd, NULL, s->scratch);
        }
        if ((st = mmspcl__clip_linear(h, s->ctx, BT, W, L->o_w, L->o_b, err))) return st;
        mmspcl__clip_add(x, h, BT, W);
        /* x += fc2(act(fc1(layer_norm2(x)))) */
        mmspcl_layernorm(h, x, L->ln2_w, L->ln2_b, BT, W, eps);
        if ((st = mmspcl__clip_linear(s->f, h, BT, W, L->fc1_w, L->fc1_b, err))) return st;
        if (c->act == MMSPCL_CLIP_GELU) mmspcl_gelu(s->f, (size_t)BT * (size_t)I);
        else mmspcl_quick_gelu(s->f, (size_t)BT * (size_t)I);
        if ((st = mmspcl__clip_linear(h, s->f, BT, I, L->fc2_w, L->fc2_b, err))) return st;
        mmspcl__clip_add(x, h, BT, W);
    }
    m->last_hidden = x;

    /* pooled = post_layernorm(class token); embeds = visual_projection(pooled) */
    for (b = 0; b < B; b++)
        mmspcl_layernorm(s->pooled + (size_t)b * (size_t)W, x + (size_t)b * (size_t)T * (size_t)W,
                         m->post_ln_w, m->post_ln_b, 1, W, eps);
    if (pooled) memcpy(pooled, s->pooled, (size_t)B * (size_t)W * sizeof(float));
    if (embeds && (st = mmspcl__clip_linear(embeds, s->pooled, B, W, m->proj_w, NULL, err))) return st;
    return MMSPCL_OK;
}

mmspcl_status mmspcl_clip_forward(mmspcl_clip *m, const float *pixels, int batch, float *embeds,
                                  float *pooled, mmspcl_error *err) {
    const mmspcl_clip_config *c;
    mmspcl__clip_acts s;
    size_t px_per_image;
    int threads, done;
    if (!m || !pixels || batch < 0) return mmspcl__fail(err, MMSPCL_ERR_ARG, "clip forward: bad arguments");
    c = &m->c;
    if (embeds && !m->proj_w)
        return mmspcl__fail(err, MMSPCL_ERR_ARG,
                            "clip forward: the weight file has no visual_projection: ask for pooled only");
    threads = MMSPCL__MAX_THREADS();
    if (threads > m->arena_threads) {   /* more threads than at load: the attention scratch grows */
        mmspcl_status st;
        mmspcl_arena_free(&m->arena);
        m->last_hidden = NULL;
        if ((st = mmspcl_arena_init(&m->arena, mmspcl__clip_arena_size(c, m->max_batch, threads), err)))
            return st;
        m->arena_threads = threads;
    }
    px_per_image = (size_t)c->num_channels * (size_t)c->image_size * (size_t)c->image_size;
    for (done = 0; done < batch; done += m->max_batch) {
        int B = batch - done < m->max_batch ? batch - done : m->max_batch;
        mmspcl_status st;
        if (!mmspcl__clip_carve(&m->arena, c, B, m->arena_threads, &s))
            return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "clip forward: arena of %zu bytes is too small",
                                m->arena.size);
        st = mmspcl__clip_chunk(m, &s, pixels + (size_t)done * px_per_image, B,
                                embeds ? embeds + (size_t)done * (size_t)c->projection_dim : NULL,
                                pooled ? pooled + (size_t)done * (size_t)c->hidden_size : NULL, err);
        if (st) return st;
    }
    return MMSPCL_OK;
}

/* ---- images ----------------------------------------------------------------------------- */

mmspcl_status mmspcl_clip_preprocess_image(const mmspcl_clip *m, const mmspcl_image *img,
                                           float *out, mmspcl_error *err) {
    const mmspcl_clip_config *c;
    if (!m || !img || !out) return mmspcl__fail(err, MMSPCL_ERR_ARG, "clip preprocess: bad arguments");
    c = &m->c;
    if (c->num_channels != 3)
        return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "clip preprocess: the model takes %d channels, images give 3",
                            c->num_channels);
    return mmspcl_clip_preprocess(img, c->resize_shortest_edge, c->crop_size, c->image_mean, c->image_std, out, err);
}

mmspcl_status mmspcl_clip_embed_image(mmspcl_clip *m, const mmspcl_image *img, float *embed,
                                      mmspcl_error *err) {
    mmspcl_status st;
    float *pixels;
    if (!m || !img || !embed) return mmspcl__fail(err, MMSPCL_ERR_ARG, "clip embed: bad arguments");
    pixels = (float *)MMSPCL_MALLOC((size_t)3 * (size_t)m->c.image_size * (size_t)m->c.image_size * sizeof(float));
    if (!pixels) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "clip embed: out of memory");
    st = mmspcl_clip_preprocess_image(m, img, pixels, err);
    if (!st) st = mmspcl_clip_forward(m, pixels, 1, embed, NULL, err);
    MMSPCL_FREE(pixels);
    return st;
}
