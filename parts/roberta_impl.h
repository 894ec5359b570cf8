/* ---------------------------------------------------------------------------------------------
   RoBERTa encoder
   ------------------------------------------------------------------------------------------ */
typedef struct mmspcl__roberta_layer {
    const mmspcl_tensor *wq, *wk, *wv, *wo, *w_in, *w_out;
    const float *bq, *bk, *bv, *bo, *b_in, *b_out;
    const float *ln_attn_g, *ln_attn_b, *ln_out_g, *ln_out_b;
} mmspcl__roberta_layer;

struct mmspcl_roberta {
    mmspcl_roberta_config cfg;
    const mmspcl_tensor *word_emb, *pos_emb, *type_emb;
    const float *emb_ln_g, *emb_ln_b;
    mmspcl__roberta_layer *layers;
    int max_tokens;
    mmspcl_arena arena;
};

/* A vector parameter (bias, LayerNorm) must be f32 of length n: the converter stores them so. */
static mmspcl_status mmspcl__vec(const mmspcl_weights *w, const char *name, int64_t n,
                                 const float **out, mmspcl_error *err) {
    const mmspcl_tensor *t;
    mmspcl_status st = mmspcl_weights_expect(w, name, 1, &n, &t, err);
    if (st) return st;
    if (t->dtype != MMSPCL_F32)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "tensor '%s' is %s, expected f32", name, mmspcl_dtype_name(t->dtype));
    *out = (const float *)t->data;
    return MMSPCL_OK;
}

static mmspcl_status mmspcl__mat(const mmspcl_weights *w, const char *name, int64_t rows, int64_t cols,
                                 const mmspcl_tensor **out, mmspcl_error *err) {
    int64_t ne[2];
    ne[0] = rows; ne[1] = cols;
    return mmspcl_weights_expect(w, name, 2, ne, out, err);
}

static mmspcl_status mmspcl__get_hparam(const mmspcl_weights *w, const char *key, int64_t lo,
                                        int64_t hi, int *out, mmspcl_error *err) {
    int64_t v;
    if (!mmspcl_weights_get_int(w, key, &v))
        return mmspcl__fail(err, MMSPCL_ERR_NOT_FOUND, "weight file has no integer '%s'", key);
    if (v < lo || v > hi)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "'%s' = %lld is outside [%lld, %lld]", key, (long long)v,
                            (long long)lo, (long long)hi);
    *out = (int)v;
    return MMSPCL_OK;
}

/* Activations of max_tokens packed tokens: x, q, k, v, ctx (H each), ffn (I), attention scratch. */
static size_t mmspcl__roberta_arena_need(const mmspcl_roberta_config *c, int max_tokens, int max_seq) {
    size_t t = (size_t)max_tokens, h = (size_t)c->hidden_size;
    return sizeof(float) * (5 * t * h + t * (size_t)c->intermediate_size + mmspcl_attention_scratch(max_seq))
           + 8 * 64 + (size_t)max_seq;
}

mmspcl_status mmspcl_roberta_load(mmspcl_roberta **out, const mmspcl_weights *w, int max_batch,
                                  int max_seq, mmspcl_error *err) {
    mmspcl_roberta *m;
    mmspcl_roberta_config *c;
    const char *arch = NULL, *act = NULL;
    double eps = 1e-5;
    char name[128];
    int64_t ne2[2];
    int l;
    mmspcl_status st;
    *out = NULL;
    if (!mmspcl_weights_get_str(w, "general.architecture", &arch) || strcmp(arch, "roberta") != 0)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "weight file holds '%s', not a roberta encoder", arch ? arch : "(no general.architecture)");
    if (max_batch < 1 || max_seq < 1)
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "roberta_load: max_batch and max_seq must be >= 1");
    if (!(m = (mmspcl_roberta *)MMSPCL_MALLOC(sizeof *m))) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "out of memory");
    memset(m, 0, sizeof *m);
    c = &m->cfg;
    if ((st = mmspcl__get_hparam(w, "roberta.vocab_size", 1, 1 << 24, &c->vocab_size, err)) ||
        (st = mmspcl__get_hparam(w, "roberta.hidden_size", 1, 1 << 16, &c->hidden_size, err)) ||
        (st = mmspcl__get_hparam(w, "roberta.num_hidden_layers", 1, 1024, &c->num_layers, err)) ||
        (st = mmspcl__get_hparam(w, "roberta.num_attention_heads", 1, 1024, &c->num_heads, err)) ||
        (st = mmspcl__get_hparam(w, "roberta.intermediate_size", 1, 1 << 18, &c->intermediate_size, err)) ||
        (st = mmspcl__get_hparam(w, "roberta.max_position_embeddings", 1, 1 << 20, &c->max_positions, err)) ||
        (st = mmspcl__get_hparam(w, "roberta.type_vocab_size", 1, 1 << 16, &c->type_vocab_size, err)) ||
        (st = mmspcl__get_hparam(w, "roberta.pad_token_id", 0, c->vocab_size - 1, &c->pad_id, err)))
        goto fail;
    mmspcl_weights_get_float(w, "roberta.layer_norm_eps", &eps);
    c->layer_norm_eps = (float)eps;
    if (mmspcl_weights_get_str(w, "roberta.hidden_act", &act) && strcmp(act, "gelu") != 0) {
        st = mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "roberta.hidden_act '%s' is not supported (only gelu)", act);
        goto fail;
    }
    if (c->hidden_size % c->num_heads) {
        st = mmspcl__fail(err, MMSPCL_ERR_FORMAT, "hidden_size %d is not a multiple of %d heads", c->hidden_size, c->num_heads);
        goto fail;
    }
    if ((st = mmspcl__mat(w, "embeddings.word_embeddings.weight", c->vocab_size, c->hidden_size, &m->word_emb, err)) ||
        (st = mmspcl__mat(w, "embeddings.position_embeddings.weight", c->max_positions, c->hidden_size, &m->pos_emb, err)) ||
        (st = mmspcl__mat(w, "embeddings.token_type_embeddings.weight", c->type_vocab_size, c->hidden_size, &m->type_emb, err)) ||
        (st = mmspcl__vec(w, "embeddings.LayerNorm.weight", c->hidden_size, &m->emb_ln_g, err)) ||
        (st = mmspcl__vec(w, "embeddings.LayerNorm.bias", c->hidden_size, &m->emb_ln_b, err)))
        goto fail;
    if (!(m->layers = (mmspcl__roberta_layer *)MMSPCL_MALLOC((size_t)c->num_layers * sizeof *m->layers))) {
        st = mmspcl__fail(err, MMSPCL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (l = 0; l < c->num_layers; l++) {
        mmspcl__roberta_layer *L = &m->layers[l];
        int64_t H = c->hidden_size, I = c->intermediate_size;
#define MMSPCL__NAME(suffix) (snprintf(name, sizeof name, "encoder.layer.%d.%s", l, suffix), name)
        if ((st = mmspcl__mat(w, MMSPCL__NAME("attention.self.query.weight"), H, H, &L->wq, err)) ||
            (st = mmspcl__vec(w, MMSPCL__NAME("attention.self.query.bias"), H, &L->bq, err)) ||
            (st = mmspcl__mat(w, MMSPCL__NAME("attention.self.key.weight"), H, H, &L->wk, err)) ||
            (st = mmspcl__vec(w, MMSPCL__NAME("attention.self.key.bias"), H, &L->bk, err)) ||
            (st = mmspcl__mat(w, MMSPCL__NAME("attention.self.value.weight"), H, H, &L->wv, err)) ||
            (st = mmspcl__vec(w, MMSPCL__NAME("attention.self.value.bias"), H, &L->bv, err)) ||
            (st = mmspcl__mat(w, MMSPCL__NAME("attention.output.dense.weight"), H, H, &L->wo, err)) ||
            (st = mmspcl__vec(w, MMSPCL__NAME("attention.output.dense.bias"), H, &L->bo, err)) ||
            (st = mmspcl__vec(w, MMSPCL__NAME("attention.output.LayerNorm.weight"), H, &L->ln_attn_g, err)) ||
            (st = mmspcl__vec(w, MMSPCL__NAME("attention.output.LayerNorm.bias"), H, &L->ln_attn_b, err)) ||
            (st = mmspcl__mat(w, MMSPCL__NAME("intermediate.dense.weight"), I, H, &L->w_in, err)) ||
            (st = mmspcl__vec(w, MMSPCL__NAME("intermediate.dense.bias"), I, &L->b_in, err)) ||
            (st = mmspcl__mat(w, MMSPCL__NAME("output.dense.weight"), H, I, &L->w_out, err)) ||
            (st = mmspcl__vec(w, MMSPCL__NAME("output.dense.bias"), H, &L->b_out, err)) ||
            (st = mmspcl__vec(w, MMSPCL__NAME("output.LayerNorm.weight"), H, &L->ln_out_g, err)) ||
            (st = mmspcl__vec(w, MMSPCL__NAME("output.LayerNorm.bias"), H, &L->ln_out_b, err)))
            goto fail;
#undef MMSPCL__NAME
    }
    (void)ne2;
    if ((int64_t)max_batch * max_seq > (1 << 24) || max_seq > c->max_positions - c->pad_id - 1) {
        st = mmspcl__fail(err, MMSPCL_ERR_ARG, "roberta_load: max_seq %d exceeds the %d positions the model has",
                          max_seq, c->max_positions - c->pad_id - 1);
        goto fail;
    }
    m->max_tokens = max_batch * max_seq;
    if ((st = mmspcl_arena_init(&m->arena, mmspcl__roberta_arena_need(c, m->max_tokens, max_seq), err))) goto fail;
    *out = m;
    return MMSPCL_OK;
fail:
    mmspcl_roberta_free(m);
    return st;
}

void mmspcl_roberta_free(mmspcl_roberta *m) {
    if (!m) return;
    mmspcl_arena_free(&m->arena);
    MMSPCL_FREE(m->layers);
    MMSPCL_FREE(m);
}

const mmspcl_roberta_config *mmspcl_roberta_get_config(const mmspcl_roberta *m) { return &m->cfg; }
size_t mmspcl_roberta_arena_bytes(const mmspcl_roberta *m) { return m->arena.size; }

/* Row r of an embedding table of any dtype, added into y. */
static void mmspcl__add_embedding_row(float *y, const mmspcl_tensor *table, int64_t r, float *tmp) {
    int64_t n = table->ne[1], i;
    mmspcl_dequantize_row(table->dtype, (const unsigned char *)table->data + (size_t)r * mmspcl_dtype_row_size(table->dtype, n), tmp, n);
    for (i = 0; i < n; i++) y[i] += tmp[i];
}

/* x = LayerNorm(x + delta) */
static void mmspcl__residual_layernorm(float *x, const float *delta, const float *g, const float *b,
                                       int rows, int dim, float eps) {
    size_t i, n = (size_t)rows * (size_t)dim;
    for (i = 0; i < n; i++) x[i] += delta[i];
    mmspcl_layernorm(x, x, g, b, rows, dim, eps);
}

mmspcl_status mmspcl_roberta_forward(mmspcl_roberta *m, const int32_t *ids, const int *lengths,
                                     int batch, int seq, float *hidden, mmspcl_error *err) {
    const mmspcl_roberta_config *c = &m->cfg;
    const int H = c->hidden_size, I = c->intermediate_size, nh = c->num_heads, hd = H / nh;
    float *x, *q, *k, *v, *ctx, *ffn, *scratch, *tmp;
    int b, l, T = 0, t;
    mmspcl_status st = MMSPCL_OK;

    if (batch < 1 || seq < 1) return mmspcl__fail(err, MMSPCL_ERR_ARG, "roberta_forward: empty batch");
    for (b = 0; b < batch; b++) {
        if (lengths[b] < 1 || lengths[b] > seq)
            return mmspcl__fail(err, MMSPCL_ERR_ARG, "roberta_forward: sequence %d has length %d (1..%d allowed)", b, lengths[b], seq);
        if (lengths[b] > c->max_positions - c->pad_id - 1)
            return mmspcl__fail(err, MMSPCL_ERR_ARG, "roberta_forward: sequence %d has %d tokens, the model takes at most %d",
                                b, lengths[b], c->max_positions - c->pad_id - 1);
        for (t = 0; t < lengths[b]; t++)
            if (ids[(size_t)b * seq + t] < 0 || ids[(size_t)b * seq + t] >= c->vocab_size)
                return mmspcl__fail(err, MMSPCL_ERR_ARG, "roberta_forward: token id %d at [%d][%d] is outside the vocabulary (%d)",
                                    ids[(size_t)b * seq + t], b, t, c->vocab_size);
        T += lengths[b];
    }
    if (T > m->max_tokens)
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "roberta_forward: %d tokens exceed the %d the model was loaded for", T, m->max_tokens);

    mmspcl_arena_reset(&m->arena);
    x = (float *)mmspcl_arena_alloc(&m->arena, (size_t)T * H * sizeof(float));
    q = (float *)mmspcl_arena_alloc(&m->arena, (size_t)T * H * sizeof(float));
    k = (float *)mmspcl_arena_alloc(&m->arena, (size_t)T * H * sizeof(float));
    v = (float *)mmspcl_arena_alloc(&m->arena, (size_t)T * H * sizeof(float));
    ctx = (float *)mmspcl_arena_alloc(&m->arena, (size_t)T * H * sizeof(float));
    ffn = (float *)mmspcl_arena_alloc(&m->arena, (size_t)T * I * sizeof(float));
    scratch = (float *)mmspcl_arena_alloc(&m->arena, mmspcl_attention_scratch(seq) * sizeof(float));
    if (!x || !q || !k || !v || !ctx || !ffn || !scratch)
        return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "roberta_forward: activation arena too small");
    tmp = ctx;  /* free until the first layer */

    /* Embeddings: word + position (HF: pad_id + running count of non-pad tokens) + type 0. */
    for (b = 0, T = 0; b < batch; b++) {
        int pos = c->pad_id;
        for (t = 0; t < lengths[b]; t++, T++) {
            int32_t id = ids[(size_t)b * seq + t];
            float *row = x + (size_t)T * H;
            memset(row, 0, (size_t)H * sizeof(float));
            mmspcl__add_embedding_row(row, m->word_emb, id, tmp);
            mmspcl__add_embedding_row(row, m->pos_emb, id != c->pad_id ? ++pos : c->pad_id, tmp);
            mmspcl__add_embedding_row(row, m->type_emb, 0, tmp);
        }
    }
    mmspcl_layernorm(x, x, m->emb_ln_g, m->emb_ln_b, T, H, c->layer_norm_eps);

    for (l = 0; l < c->num_layers && !st; l++) {
        const mmspcl__roberta_layer *L = &m->layers[l];
        int start = 0;
        if ((st = mmspcl_linear(q, x, T, H, L->wq, L->bq)) || (st = mmspcl_linear(k, x, T, H, L->wk, L->bk)) ||
            (st = mmspcl_linear(v, x, T, H, L->wv, L->bv)))
            break;
        for (b = 0; b < batch; start += lengths[b], b++)   /* each sequence attends to itself */
            mmspcl_attention(ctx + (size_t)start * H, H, q + (size_t)start * H, H, k + (size_t)start * H,
                             v + (size_t)start * H, H, lengths[b], lengths[b], nh, hd, NULL, scratch);
        if ((st = mmspcl_linear(q, ctx, T, H, L->wo, L->bo))) break;  /* q is free again */
        mmspcl__residual_layernorm(x, q, L->ln_attn_g, L->ln_attn_b, T, H, c->layer_norm_eps);
        if ((st = mmspcl_linear(ffn, x, T, H, L->w_in, L->b_in))) break;
        mmspcl_gelu(ffn, (size_t)T * I);
        if ((st = mmspcl_linear(q, ffn, T, I, L->w_out, L->b_out))) break;
        mmspcl__residual_layernorm(x, q, L->ln_out_g, L->ln_out_b, T, H, c->layer_norm_eps);
    }
    if (st) return mmspcl__fail(err, st, "roberta_forward: layer %d failed (%s)", l, mmspcl_status_name(st));

    for (b = 0, T = 0; b < batch; b++) {
        float *dst = hidden + (size_t)b * seq * H;
        memcpy(dst, x + (size_t)T * H, (size_t)lengths[b] * H * sizeof(float));
        memset(dst + (size_t)lengths[b] * H, 0, (size_t)(seq - lengths[b]) * H * sizeof(float));
        T += lengths[b];
    }
    return MMSPCL_OK;
}
