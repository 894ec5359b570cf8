/* tools/train/meld_recipe.c - the MELD text recipe, stage by stage (overview: meld_recipe.h).
   Every stage is a function of one meld_state; meld_train at the end calls them in order. */
/* the MELD CSV reader's and the shared pieces' code live here, for every program that links the recipe */
#define MELD_CSV_IMPLEMENTATION
#define MELD_COMMON_IMPLEMENTATION
#include "tools/train/meld_recipe.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void meld_recipe_defaults(meld_recipe *r) {
    memset(r, 0, sizeof *r);
    r->hidden = 128; r->layers = 2; r->heads = 4; r->ffn = 256; r->max_len = 64;
    r->mlm_epochs = 6; r->mlm_batch = 32; r->mlm_lr = 5e-4;
    r->spcl_epochs = 6; r->batch = 32; r->patience = 2; r->warmup = 128;
    r->lr = 3e-4; r->head_lr = 1e-3; r->temperature = 0.08; r->ce_weight = 1.0; r->sent_weight = 0.5; r->clip = 1.0;
    r->pool_size = 512; r->K = 64; r->curriculum = 1; r->holdout = 1;
    r->ngram_bits = 17; r->msve_hidden = 64; r->msve_epochs = 25; r->msve_dropout = 0.3; r->msve_lr = 1e-3;
    r->seed = 1;
}

/* ==== helpers ==== */
/* CSR rows of a split */
typedef struct meld_csr { int n; int64_t *ptr; int32_t *idx; float *val; } meld_csr;
static void meld_csr_free(meld_csr *c) { free(c->ptr); free(c->idx); free(c->val); memset(c, 0, sizeof *c); }
static int meld_csr_build(meld_csr *c, const meld_csv *s, int nbits, const float *idf) {
    int64_t cap = 1 << 16, nnz = 0;
    int i, k, tmpcap = 1 << 16;
    int32_t *ti = (int32_t *)malloc(sizeof(int32_t) * (size_t)tmpcap);
    float *tv = (float *)malloc(sizeof(float) * (size_t)tmpcap);
    memset(c, 0, sizeof *c);
    c->n = s->n_rows;
    c->ptr = (int64_t *)malloc(sizeof(int64_t) * (size_t)(s->n_rows + 1));
    c->idx = (int32_t *)malloc(sizeof(int32_t) * (size_t)cap);
    c->val = (float *)malloc(sizeof(float) * (size_t)cap);
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
            a = (int32_t *)realloc(c->idx, sizeof(int32_t) * (size_t)cap);
            if (!a) goto oom;
            c->idx = a;
            b = (float *)realloc(c->val, sizeof(float) * (size_t)cap);
            if (!b) goto oom;
            c->val = b;
        }
        memcpy(c->idx + nnz, ti, sizeof(int32_t) * (size_t)k);
        memcpy(c->val + nnz, tv, sizeof(float) * (size_t)k);
        nnz += k;
        c->ptr[i + 1] = nnz;
    }
    free(ti); free(tv);
    return 0;
oom:
    free(ti); free(tv);
    meld_csr_free(c);
    return -1;
}

/* Multinomial logistic regression, mean cross-entropy + lambda/2 |W|^2, SGD over the rows
   rows[0..n) (shuffled each epoch by rng), step eta0 / (1 + eta0 lambda t), the decay applied
   through a scale factor so each update touches only the row's features. W [C][F] out. */
static void meld_lr_train(const meld_csr *X, const int *y, const int *rows, int n, int C, int64_t F, double lambda,
                             int epochs, double eta0, mmspcl_rng *rng, float *W, float *b, int *order) {
    double *w = (double *)malloc(sizeof(double) * (size_t)F * C), sc = 1.0, t = 0;
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
    free(w);
}

static double meld_lr_eval(const float *W, const float *b, int C, int64_t F, const meld_csr *X, const int *y, float *logp,
                              double *acc) {
    int i, c, correct = 0;
    int64_t cm[MMSPCL_MAX_CLASSES * MMSPCL_MAX_CLASSES];
    mmspcl_metrics mt;
    int *pred = (int *)malloc(sizeof(int) * (size_t)X->n);
    float tmp[MMSPCL_MAX_CLASSES];
    if (!pred) return -1;
    for (i = 0; i < X->n; i++) {
        float *o = logp ? logp + (size_t)i * C : tmp;
        int best = 0;
        mmspcl_sparse_log_softmax(W, b, C, F, X->idx + X->ptr[i], X->val + X->ptr[i], (int)(X->ptr[i + 1] - X->ptr[i]), o);
        for (c = 1; c < C; c++) if (o[c] > o[best]) best = c;
        pred[i] = best;
        correct += best == y[i];
    }
    (void)correct;
    mmspcl_confusion(y, pred, X->n, C, cm);
    mmspcl_metrics_from_confusion(cm, C, NULL, &mt);
    free(pred);
    if (acc) *acc = mt.accuracy;
    return mt.weighted_f1;
}

/* ---- vocabulary cut ---- */
mmspcl_status meld_vocab_cut_keep(meld_vocab_cut *vc, const mmspcl_bpe *full, const char *const *vocab, int64_t n_vocab,
                                  const char *const *merges, int64_t n_merges, unsigned char *keep, mmspcl_error *err) {
    int32_t *mres = (int32_t *)malloc(sizeof(int32_t) * (size_t)(n_merges + 1));
    int32_t *ml = (int32_t *)malloc(sizeof(int32_t) * (size_t)(n_merges + 1));
    int32_t *mr = (int32_t *)malloc(sizeof(int32_t) * (size_t)(n_merges + 1));
    int64_t i, r, nv = 0, nm = 0;
    char tmp[512];
    static const char *const specials[] = {"<s>", "<pad>", "</s>", "<unk>", "<mask>"};
    memset(vc, 0, sizeof *vc);
    if (!mres || !ml || !mr) goto oom;
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
    vc->vocab = (const char **)malloc(sizeof(char *) * (size_t)n_vocab);
    vc->merges = (const char **)malloc(sizeof(char *) * (size_t)(n_merges + 1));
    if (!vc->vocab || !vc->merges) goto oom;
    for (i = 0; i < n_vocab; i++) if (keep[i] && i != mmspcl_bpe_mask_id(full)) vc->vocab[nv++] = vocab[i];
    if (mmspcl_bpe_mask_id(full) >= 0) vc->vocab[nv++] = vocab[mmspcl_bpe_mask_id(full)];
    for (r = 0; r < n_merges; r++)
        if (mres[r] >= 0 && ml[r] >= 0 && mr[r] >= 0 && keep[mres[r]] && keep[ml[r]] && keep[mr[r]]) vc->merges[nm++] = merges[r];
    vc->n_vocab = nv;
    vc->n_merges = nm;
    free(mres); free(ml); free(mr);
    return MMSPCL_OK;
oom:
    free(mres); free(ml); free(mr);
    free(vc->vocab); free(vc->merges);
    memset(vc, 0, sizeof *vc);
    return mmspcl_error_set(err, MMSPCL_ERR_NOMEM, "meld: out of memory cutting the vocabulary");
}

/* the tokens the prompts `used` use, then meld_vocab_cut_keep */
static mmspcl_status meld_vocab_cut_build(meld_vocab_cut *vc, const mmspcl_bpe *full, const char *const *vocab, int64_t n_vocab,
                                       const char *const *merges, int64_t n_merges, const meld_prompts *used,
                                       mmspcl_error *err) {
    unsigned char *keep = (unsigned char *)calloc((size_t)n_vocab + 1, 1);
    int64_t i;
    mmspcl_status st;
    memset(vc, 0, sizeof *vc);
    if (!keep) return mmspcl_error_set(err, MMSPCL_ERR_NOMEM, "meld: out of memory cutting the vocabulary");
    for (i = 0; i < (int64_t)used->n * used->max_len; i++) {
        const int row = (int)(i / used->max_len), col = (int)(i % used->max_len);
        if (col < used->len[row]) keep[used->ids[i]] = 1;
    }
    st = meld_vocab_cut_keep(vc, full, vocab, n_vocab, merges, n_merges, keep, err);
    free(keep);
    return st;
}

/* ==== the state of one training run ==== */
#define MELD_HEADS 5   /* 0 emotion ensemble, 1 sentiment ensemble, 2..4 single views t, a, v */

typedef struct meld_state {
    /* inputs */
    const meld_recipe *r;
    const meld_csv *train, *dev;
    meld_progress_fn progress;
    void *user;
    mmspcl_error *err;
    int H, ML;                      /* hidden width, prompt length */
    int64_t F;                      /* n-gram buckets, 2^ngram_bits */
    /* 1. vocabulary */
    mmspcl_bpe *full, *tok;         /* the full RoBERTa BPE, the cut one */
    meld_vocab_cut vocab;
    /* 2. data: prompts of every train row, of dev, of the rows that train the encoder (enc) and
       of those that train the heads (held) */
    meld_prompts all, devp, enc, held;
    int *held_rows, *enc_rows;      /* rows of train in held / enc */
    int32_t *chunks;                /* [n_chunks][ML] MLM chunks */
    int *chunk_len, n_chunks;
    /* 3. encoder, CE heads, optimisers, SPCL queues */
    mmspcl_roberta_config cfg;
    mmspcl_roberta_train model;
    mmspcl_params head_params;
    mmspcl_lin ce_emotion, ce_sentiment;
    mmspcl_adamw_cfg enc_opt, head_opt;
    mmspcl_rng rng;
    mmspcl_spcl spcl;
    /* batch buffers */
    int32_t *batch_ids, *mlm_target;
    int *batch_len, *mlm_rows, *order, *keep, *pred;
    float *dout;
    double *z, *dz, *logits, *dlogits;
    /* per-row features and statistics */
    float *train_t, *train_v, *dev_t, *dev_v;
    double *z_all, *means, *difficulty, *best;
    /* progress through the stages (a checkpoint restores these) */
    int start_stage, start_epoch, bad, best_epoch;
    double best_f1;
    meld_log log_mlm, log_spcl, log_heads;
    /* 6. the n-gram view */
    meld_ngram ng;
    float *ngram_held;              /* [held rows][10] out-of-fold log-probabilities */
    /* 7. heads */
    mmspcl_msve_model heads[MELD_HEADS];
    int have_head[MELD_HEADS];
    float *view_mean[3], *view_std[3];
} meld_state;

static void meld_state_free(meld_state *S) {
    int i;
    mmspcl_bpe_free(S->full); mmspcl_bpe_free(S->tok);
    free(S->vocab.vocab); free(S->vocab.merges);
    meld_prompts_free(&S->all); meld_prompts_free(&S->devp); meld_prompts_free(&S->enc); meld_prompts_free(&S->held);
    free(S->held_rows); free(S->enc_rows); free(S->chunks); free(S->chunk_len);
    mmspcl_roberta_train_free(&S->model);
    mmspcl_params_free(&S->head_params);
    if (S->spcl.pool) mmspcl_spcl_free(&S->spcl);
    free(S->batch_ids); free(S->mlm_target); free(S->batch_len); free(S->mlm_rows); free(S->order); free(S->keep);
    free(S->pred); free(S->dout); free(S->z); free(S->dz); free(S->logits); free(S->dlogits);
    free(S->train_t); free(S->train_v); free(S->dev_t); free(S->dev_v);
    free(S->z_all); free(S->means); free(S->difficulty); free(S->best);
    free(S->log_mlm.x); free(S->log_spcl.x); free(S->log_heads.x);
    meld_ngram_free(&S->ng); free(S->ngram_held);
    for (i = 0; i < MELD_HEADS; i++) if (S->have_head[i]) mmspcl_msve_model_free(&S->heads[i]);
    for (i = 0; i < 3; i++) { free(S->view_mean[i]); free(S->view_std[i]); }
    memset(S, 0, sizeof *S);
}

static mmspcl_status meld_oom(meld_state *S, const char *what) {
    return mmspcl_error_set(S->err, MMSPCL_ERR_NOMEM, "meld_train: out of memory (%s)", what);
}

/* ==== 1. vocabulary ==== */
static mmspcl_status meld_stage_vocab(meld_state *S, const char *const *vocab, int64_t n_vocab, const char *const *merges,
                                      int64_t n_merges) {
    meld_prompts full_prompts;
    mmspcl_status st;
    memset(&full_prompts, 0, sizeof full_prompts);
    if ((st = mmspcl_bpe_from_arrays(&S->full, vocab, NULL, n_vocab, merges, NULL, n_merges, S->err))) return st;
    if ((st = meld_prompts_build(&full_prompts, S->train, S->full, S->ML, S->err))) return st;
    st = meld_vocab_cut_build(&S->vocab, S->full, vocab, n_vocab, merges, n_merges, &full_prompts, S->err);
    meld_prompts_free(&full_prompts);
    if (st) return st;
    if ((st = mmspcl_bpe_from_arrays(&S->tok, S->vocab.vocab, NULL, S->vocab.n_vocab, S->vocab.merges, NULL, S->vocab.n_merges,
                                     S->err)))
        return st;
    meld_msg(S->progress, S->user, "vocab", "vocabulary cut to %lld tokens and %lld merges (from %lld / %lld)",
             (long long)S->vocab.n_vocab, (long long)S->vocab.n_merges, (long long)n_vocab, (long long)n_merges);
    return MMSPCL_OK;
}

/* ==== 2. data ==== */
/* every 5th training dialogue (index % 5 == 4) is held out of the encoder's supervised training:
   the MSVE heads learn from its features, which the encoder has not fitted */
static mmspcl_status meld_split_holdout(meld_state *S) {
    int di, i, n_enc = 0, n_held = 0;
    S->held_rows = (int *)malloc(sizeof(int) * (size_t)(S->all.n + 1));
    S->enc_rows = (int *)malloc(sizeof(int) * (size_t)(S->all.n + 1));
    if (!S->held_rows || !S->enc_rows) return meld_oom(S, "holdout");
    for (di = 0; di < S->train->n_dialogues; di++)
        for (i = S->train->dialogue_start[di]; i < S->train->dialogue_start[di + 1]; i++) {
            if (di % 5 == 4 && S->r->holdout) S->held_rows[n_held++] = i;
            else S->enc_rows[n_enc++] = i;
        }
    if (!S->r->holdout) { memcpy(S->held_rows, S->enc_rows, sizeof(int) * (size_t)n_enc); n_held = n_enc; }
    if (meld_prompts_subset(&S->enc, &S->all, S->enc_rows, n_enc) || meld_prompts_subset(&S->held, &S->all, S->held_rows, n_held))
        return meld_oom(S, "holdout");
    return MMSPCL_OK;
}

/* appends u[0..nu) to the MLM chunk being filled (a new one when pos == 0) */
static int meld_chunk_append(meld_state *S, int *cap, int *pos, const int32_t *u, int nu) {
    const int ML = S->ML;
    if (*pos == 0) {
        if (S->n_chunks == *cap) {
            int nc = *cap ? *cap * 2 : 1024;
            int32_t *p = (int32_t *)realloc(S->chunks, sizeof(int32_t) * (size_t)nc * ML);
            int *q;
            if (!p) return -1;
            S->chunks = p;
            q = (int *)realloc(S->chunk_len, sizeof(int) * (size_t)nc);
            if (!q) return -1;
            S->chunk_len = q;
            *cap = nc;
        }
        S->n_chunks++;
        S->chunks[(size_t)(S->n_chunks - 1) * ML] = mmspcl_bpe_bos_id(S->tok);
        *pos = 1;
    }
    memcpy(S->chunks + (size_t)(S->n_chunks - 1) * ML + *pos, u, sizeof(int32_t) * (size_t)nu);
    *pos += nu;
    S->chunk_len[S->n_chunks - 1] = *pos;
    return 0;
}

/* MLM chunks: each train dialogue as <s> u_0 u_1 ... cut into pieces of <= ML tokens. u_i is
   turn i re-encoded (taking it from the dialogue's last prompt would lose truncated turns). */
static mmspcl_status meld_build_chunks(meld_state *S) {
    const int ML = S->ML;
    const int32_t eos = mmspcl_bpe_eos_id(S->tok);
    const meld_csv *tr = S->train;
    int cap = 0, di, i;
    for (di = 0; di < tr->n_dialogues; di++) {
        const int a = tr->dialogue_start[di], b = tr->dialogue_start[di + 1];
        int pos = 0;
        for (i = a; i <= b; i++) {
            int32_t u[512];
            int nu = 0;
            if (i < b) {
                char *s = mmspcl_spcl_clean(tr->rows[i].speaker, ":", tr->rows[i].utterance);
                if (!s) return meld_oom(S, "MLM chunks");
                nu = mmspcl_bpe_encode(S->tok, s, strlen(s), u, 510);
                mmspcl_free(s);
                if (nu > 510 || nu < 0) nu = nu < 0 ? 0 : 510;
                if (nu > ML - 2) nu = ML - 2;
                u[nu++] = eos;
            }
            if (i == b || pos + nu > ML) {   /* close the current chunk */
                if (pos > 1) S->chunk_len[S->n_chunks - 1] = pos;
                else if (pos == 1) S->n_chunks--;
                pos = 0;
                if (i == b) break;
            }
            if (meld_chunk_append(S, &cap, &pos, u, nu)) return meld_oom(S, "MLM chunks");
        }
    }
    return MMSPCL_OK;
}

static mmspcl_status meld_stage_data(meld_state *S) {
    mmspcl_status st;
    if ((st = meld_prompts_build(&S->all, S->train, S->tok, S->ML, S->err)) ||
        (st = meld_prompts_build(&S->devp, S->dev, S->tok, S->ML, S->err)) || (st = meld_split_holdout(S)) ||
        (st = meld_build_chunks(S)))
        return st;
    meld_msg(S->progress, S->user, "data", "%d train prompts (%d train the encoder, %d the heads), %d dev prompts, %d MLM chunks of <= %d tokens",
             S->all.n, S->enc.n, S->held.n, S->devp.n, S->n_chunks, S->ML);
    return MMSPCL_OK;
}

/* ==== 3. encoder, CE heads, optimisers, queues, buffers ==== */
static mmspcl_status meld_stage_encoder(meld_state *S) {
    const meld_recipe *r = S->r;
    const int H = S->H, ML = S->ML, C = MMSPCL_NUM_EMOTIONS, B = r->batch > r->mlm_batch ? r->batch : r->mlm_batch;
    const int n = S->all.n, nd = S->devp.n;
    mmspcl_status st;
    memset(&S->cfg, 0, sizeof S->cfg);
    S->cfg.vocab_size = (int)S->vocab.n_vocab; S->cfg.hidden_size = H; S->cfg.num_layers = r->layers;
    S->cfg.num_heads = r->heads; S->cfg.intermediate_size = r->ffn; S->cfg.max_positions = ML + 2;
    S->cfg.type_vocab_size = 1; S->cfg.pad_id = mmspcl_bpe_pad_id(S->tok); S->cfg.layer_norm_eps = 1e-5f;
    if ((st = mmspcl_roberta_train_create(&S->model, &S->cfg, 1, r->seed, B * ML, ML, S->err))) return st;
    mmspcl_rng_seed(&S->rng, r->seed ^ 0x9E3779B97F4A7C15ull);
    mmspcl_lin_create(&S->ce_emotion, &S->head_params, "emotion", H, C, &S->rng);
    mmspcl_lin_create(&S->ce_sentiment, &S->head_params, "sentiment", H, MMSPCL_NUM_SENTIMENTS, &S->rng);
    if (S->head_params.oom) return meld_oom(S, "CE heads");
    mmspcl_adamw_defaults(&S->enc_opt);
    mmspcl_adamw_defaults(&S->head_opt);
    if ((st = mmspcl_spcl_init(&S->spcl, C, H, r->pool_size, r->K, r->temperature, r->seed + 7, S->err))) return st;
    S->spcl.push_first = 1;   /* the queue order this recipe was tuned and shipped with (Oct-2022 SPCL) */
    S->batch_ids = (int32_t *)malloc(sizeof(int32_t) * (size_t)B * ML);
    S->batch_len = (int *)malloc(sizeof(int) * (size_t)B);
    S->mlm_rows = (int *)malloc(sizeof(int) * (size_t)B * ML);
    S->mlm_target = (int32_t *)malloc(sizeof(int32_t) * (size_t)B * ML);
    S->dout = (float *)malloc(sizeof(float) * (size_t)B * ML * H);
    S->order = (int *)malloc(sizeof(int) * (size_t)(S->n_chunks > n ? S->n_chunks : n));
    S->keep = (int *)malloc(sizeof(int) * (size_t)n);
    S->z = (double *)malloc(sizeof(double) * (size_t)B * H);
    S->dz = (double *)malloc(sizeof(double) * (size_t)B * H);
    S->logits = (double *)malloc(sizeof(double) * (size_t)B * C);
    S->dlogits = (double *)malloc(sizeof(double) * (size_t)B * C);
    S->train_t = (float *)malloc(sizeof(float) * (size_t)n * H);
    S->train_v = (float *)malloc(sizeof(float) * (size_t)n * H);
    S->dev_t = (float *)malloc(sizeof(float) * (size_t)nd * H);
    S->dev_v = (float *)malloc(sizeof(float) * (size_t)nd * H);
    S->z_all = (double *)malloc(sizeof(double) * (size_t)n * H);
    S->means = (double *)malloc(sizeof(double) * (size_t)C * H);
    S->difficulty = (double *)malloc(sizeof(double) * (size_t)n);
    S->pred = (int *)malloc(sizeof(int) * (size_t)(n > nd ? n : nd));
    S->best = (double *)malloc(sizeof(double) * (S->model.P.n + S->head_params.n));
    if (!S->batch_ids || !S->batch_len || !S->mlm_rows || !S->mlm_target || !S->dout || !S->order || !S->keep || !S->z ||
        !S->dz || !S->logits || !S->dlogits || !S->train_t || !S->train_v || !S->dev_t || !S->dev_v || !S->z_all ||
        !S->means || !S->difficulty || !S->pred || !S->best)
        return meld_oom(S, "buffers");
    return MMSPCL_OK;
}

/* ==== checkpoints ==== */
static mmspcl_status meld_ckpt_fill(const meld_state *S, mmspcl_writer *wr, int stage, int epoch, const double *best,
                                    float **hold_moments, float **hold_best) {
    const mmspcl_params *Ph = &S->head_params;
    int64_t sh[1];
    size_t k;
    int i;
    char key[64];
    mmspcl_status st;
    mmspcl_writer_set_int(wr, "ckpt.stage", stage);
    mmspcl_writer_set_int(wr, "ckpt.epoch", epoch);
    mmspcl_writer_set_int(wr, "ckpt.bad", S->bad);
    mmspcl_writer_set_float(wr, "ckpt.best_f1", S->best_f1);
    for (i = 0; i < 4; i++) {
        snprintf(key, sizeof key, "ckpt.rng.%d", i);
        mmspcl_writer_set_int(wr, key, (int64_t)S->rng.s[i]);
        snprintf(key, sizeof key, "ckpt.qrng.%d", i);
        mmspcl_writer_set_int(wr, key, (int64_t)S->spcl.rng.s[i]);
    }
    mmspcl_writer_set_int(wr, "ckpt.head_step", Ph->step);
    if (!(*hold_moments = (float *)malloc(sizeof(float) * (2 * Ph->n + 1))))
        return mmspcl_error_set(S->err, MMSPCL_ERR_NOMEM, "checkpoint: out of memory");
    for (k = 0; k < Ph->n; k++) { (*hold_moments)[k] = (float)Ph->m[k]; (*hold_moments)[Ph->n + k] = (float)Ph->v[k]; }
    sh[0] = (int64_t)(2 * Ph->n);
    if ((st = mmspcl_writer_add_tensor(wr, "ckpt.head_moments", MMSPCL_F32, 1, sh, *hold_moments, sizeof(float) * (size_t)sh[0], S->err)))
        return st;
    if (!best) return MMSPCL_OK;
    if (!(*hold_best = (float *)malloc(sizeof(float) * (S->model.P.n + Ph->n))))
        return mmspcl_error_set(S->err, MMSPCL_ERR_NOMEM, "checkpoint: out of memory");
    for (k = 0; k < S->model.P.n + Ph->n; k++) (*hold_best)[k] = (float)best[k];
    sh[0] = (int64_t)(S->model.P.n + Ph->n);
    return mmspcl_writer_add_tensor(wr, "ckpt.best", MMSPCL_F32, 1, sh, *hold_best, sizeof(float) * (size_t)sh[0], S->err);
}

/* The checkpoint: encoder + CE heads with their AdamW state, the best weights so far (best may
   be NULL), stage/epoch, random generators, logs. Written to a temporary file and renamed. */
static mmspcl_status meld_checkpoint_write(const meld_state *S, int stage, int epoch, const double *best) {
    mmspcl_writer *wr;
    float *h1 = NULL, *h2 = NULL, *hm = NULL, *hb = NULL;
    mmspcl_status st;
    if (!S->r->checkpoint) return MMSPCL_OK;
    if (!(wr = mmspcl_writer_create())) return mmspcl_error_set(S->err, MMSPCL_ERR_NOMEM, "checkpoint: out of memory");
    st = mmspcl_params_write(&S->model.P, wr, "", 1, &h1, S->err);
    if (!st) st = mmspcl_params_write(&S->head_params, wr, "heads", 0, &h2, S->err);
    if (!st) st = meld_ckpt_fill(S, wr, stage, epoch, best, &hm, &hb);
    if (!st) st = meld_log_write(&S->log_mlm, wr, "meld.log.mlm", S->err);
    if (!st) st = meld_log_write(&S->log_spcl, wr, "meld.log.spcl", S->err);
    if (!st) st = mmspcl_writer_save(wr, S->r->checkpoint, NULL, NULL, S->err);
    mmspcl_writer_free(wr);
    free(h1); free(h2); free(hb); free(hm);
    return st;
}

/* CE heads: values (heads.NAME), moments (ckpt.head_moments), step (ckpt.head_step) */
static mmspcl_status meld_resume_heads(meld_state *S, const mmspcl_weights *w) {
    mmspcl_params *Ph = &S->head_params;
    const mmspcl_tensor *hmt = mmspcl_weights_find(w, "ckpt.head_moments");
    int64_t v;
    size_t k;
    int ti;
    for (ti = 0; ti < Ph->n_info; ti++) {
        char nm[200];
        const mmspcl_tensor *ht;
        snprintf(nm, sizeof nm, "heads.%s", Ph->info[ti].name);
        ht = mmspcl_weights_find(w, nm);
        if (!ht || ht->dtype != MMSPCL_F32 || (size_t)mmspcl_tensor_nelements(ht) != Ph->info[ti].n)
            return mmspcl_error_set(S->err, MMSPCL_ERR_FORMAT, "%s: tensor %s missing or of the wrong size", S->r->resume, nm);
        for (k = 0; k < Ph->info[ti].n; k++) Ph->w[Ph->info[ti].off + k] = ((const float *)ht->data)[k];
    }
    if (hmt && hmt->dtype == MMSPCL_F32 && (size_t)hmt->ne[0] == 2 * Ph->n)
        for (k = 0; k < Ph->n; k++) { Ph->m[k] = ((const float *)hmt->data)[k]; Ph->v[k] = ((const float *)hmt->data)[Ph->n + k]; }
    if (mmspcl_weights_get_int(w, "ckpt.head_step", &v)) Ph->step = v;
    return MMSPCL_OK;
}

static mmspcl_status meld_resume(meld_state *S) {
    mmspcl_weights *w = NULL;
    const mmspcl_tensor *bt;
    int64_t v;
    char key[64];
    int i;
    mmspcl_status st;
    if (!S->r->resume) return MMSPCL_OK;
    if ((st = mmspcl_weights_read(&w, S->r->resume, S->err))) return st;
    if ((st = mmspcl_params_read(&S->model.P, w, "", S->err)) || (st = meld_resume_heads(S, w))) { mmspcl_weights_free(w); return st; }
    mmspcl_roberta_train_sync(&S->model);
    if (mmspcl_weights_get_int(w, "ckpt.stage", &v)) S->start_stage = (int)v;
    if (mmspcl_weights_get_int(w, "ckpt.epoch", &v)) S->start_epoch = (int)v + 1;
    if (mmspcl_weights_get_int(w, "ckpt.bad", &v)) S->bad = (int)v;
    mmspcl_weights_get_float(w, "ckpt.best_f1", &S->best_f1);
    for (i = 0; i < 4; i++) {
        snprintf(key, sizeof key, "ckpt.rng.%d", i);
        if (mmspcl_weights_get_int(w, key, &v)) S->rng.s[i] = (uint64_t)v;
        snprintf(key, sizeof key, "ckpt.qrng.%d", i);
        if (mmspcl_weights_get_int(w, key, &v)) S->spcl.rng.s[i] = (uint64_t)v;
    }
    bt = mmspcl_weights_find(w, "ckpt.best");
    if (bt && bt->dtype == MMSPCL_F32 && (size_t)bt->ne[0] == S->model.P.n + S->head_params.n)
        for (i = 0; i < (int)(S->model.P.n + S->head_params.n); i++) S->best[i] = ((const float *)bt->data)[i];
    meld_log_read(&S->log_mlm, w, "meld.log.mlm");
    meld_log_read(&S->log_spcl, w, "meld.log.spcl");
    mmspcl_weights_free(w);
    meld_msg(S->progress, S->user, "resume", "resuming %s at stage %d epoch %d", S->r->resume, S->start_stage, S->start_epoch);
    return MMSPCL_OK;
}

/* ==== 4. MLM pretraining ==== */
/* One batch of chunks order[b .. b+nb): BERT masking (15% of the tokens other than <s> </s>;
   of those 80% <mask>, 10% a random token, 10% kept), forward, loss, backward, step. */
static mmspcl_status meld_mlm_batch(meld_state *S, int b, int nb, int64_t total, int step, double *loss_sum, int *n_sum) {
    const int ML = S->ML;
    const int32_t mask_id = mmspcl_bpe_mask_id(S->tok);
    int T = 0, nm = 0, i, j;
    double loss;
    mmspcl_status st;
    for (i = 0; i < nb; i++) {
        const int c = S->order[b + i];
        int32_t *row = S->batch_ids + (size_t)i * ML;
        memcpy(row, S->chunks + (size_t)c * ML, sizeof(int32_t) * (size_t)S->chunk_len[c]);
        S->batch_len[i] = S->chunk_len[c];
        for (j = 0; j < S->chunk_len[c]; j++) {
            const int32_t id = row[j];
            if (id == mmspcl_bpe_bos_id(S->tok) || id == mmspcl_bpe_eos_id(S->tok)) continue;
            if (mmspcl_rng_uniform(&S->rng) >= 0.15) continue;
            S->mlm_rows[nm] = T + j;
            S->mlm_target[nm++] = id;
            {
                const double u = mmspcl_rng_uniform(&S->rng);
                if (u < 0.8) row[j] = mask_id;
                else if (u < 0.9) row[j] = 4 + mmspcl_rng_int(&S->rng, S->cfg.vocab_size - 5);
            }
        }
        T += S->chunk_len[c];
    }
    if (!nm) return MMSPCL_OK;
    if ((st = mmspcl_roberta_train_forward(&S->model, S->batch_ids, S->batch_len, nb, ML, S->err))) return st;
    mmspcl_params_zero_grad(&S->model.P);
    loss = mmspcl_roberta_train_mlm_loss(&S->model, S->mlm_rows, S->mlm_target, nm, S->dout, S->err);
    if (loss < 0) return S->err ? S->err->status : MMSPCL_ERR_NOMEM;
    if ((st = mmspcl_roberta_train_backward(&S->model, S->dout, NULL, S->err))) return st;
    mmspcl_grad_clip(&S->model.P, S->r->clip);
    mmspcl_adamw_step(&S->model.P, &S->enc_opt, mmspcl_lr_cosine(S->model.P.step, total / 20, total, S->r->mlm_lr));
    mmspcl_roberta_train_sync(&S->model);
    *loss_sum += loss;
    (*n_sum)++;
    if (S->progress) S->progress(S->user, "mlm", step, (int)total, NULL);
    return MMSPCL_OK;
}

static mmspcl_status meld_stage_mlm(meld_state *S) {
    const meld_recipe *r = S->r;
    const int B = r->mlm_batch, spe = (S->n_chunks + B - 1) / B;
    const int64_t total = (int64_t)spe * r->mlm_epochs;
    int e, i, b;
    mmspcl_status st;
    if (S->start_stage != 0) return MMSPCL_OK;
    for (e = S->start_epoch; e < r->mlm_epochs; e++) {
        double sum = 0.0;
        int nsum = 0;
        for (i = 0; i < S->n_chunks; i++) S->order[i] = i;
        mmspcl_rng_shuffle(&S->rng, S->order, S->n_chunks);
        for (b = 0; b < S->n_chunks; b += B) {
            const int nb = S->n_chunks - b < B ? S->n_chunks - b : B;
            if ((st = meld_mlm_batch(S, b, nb, total, e * spe + b / B + 1, &sum, &nsum))) return st;
        }
        meld_log_add(&S->log_mlm, e + 1, sum / (nsum ? nsum : 1), 0.0);
        meld_msg(S->progress, S->user, "mlm", "MLM epoch %d/%d: loss %.4f", e + 1, r->mlm_epochs, sum / (nsum ? nsum : 1));
        if ((st = meld_checkpoint_write(S, 0, e, NULL))) return st;
    }
    S->start_stage = 1;
    S->start_epoch = 0;
    /* a fresh optimiser for fine-tuning */
    memset(S->model.P.m, 0, sizeof(double) * S->model.P.n);
    memset(S->model.P.v, 0, sizeof(double) * S->model.P.n);
    S->model.P.step = 0;
    return MMSPCL_OK;
}

/* ==== 5. SPCL fine-tuning ==== */
/* CE head on z (gradient into dz too: the recipe lets the CE heads shape the encoder) */
static double meld_ce_head(meld_state *S, mmspcl_lin *head, const int *y, int nb, int C, double weight) {
    double l;
    int i;
    if (weight <= 0) return 0.0;
    mmspcl_lin_forward(&S->head_params, head, S->z, S->logits, nb);
    l = mmspcl_ce_loss(S->logits, y, nb, C, NULL, S->dlogits);
    for (i = 0; i < nb * C; i++) S->dlogits[i] *= weight;
    mmspcl_lin_backward(&S->head_params, head, S->z, S->dlogits, S->dz, nb);
    return weight * l;
}

/* One batch of the kept rows keep[b .. b+nb): SPCL loss + CE heads, backward, steps. */
static mmspcl_status meld_spcl_batch(meld_state *S, int b, int nb, int64_t total, double *loss) {
    const meld_recipe *r = S->r;
    const meld_prompts *d = &S->enc;
    const int H = S->H, ML = S->ML;
    int ye[256], ys[256], start = 0, i, k;
    mmspcl_spcl_stats stats;
    mmspcl_status st;
    for (i = 0; i < nb; i++) {
        const int row = S->keep[b + i];
        memcpy(S->batch_ids + (size_t)i * ML, d->ids + (size_t)row * ML, sizeof(int32_t) * ML);
        S->batch_len[i] = d->len[row];
        ye[i] = d->emo[row];
        ys[i] = d->sent[row];
    }
    if ((st = mmspcl_roberta_train_forward(&S->model, S->batch_ids, S->batch_len, nb, ML, S->err))) return st;
    for (i = 0; i < nb; i++) {
        const float *zr = S->model.out + (size_t)(start + d->mask[S->keep[b + i]]) * H;
        for (k = 0; k < H; k++) S->z[(size_t)i * H + k] = zr[k];
        start += S->batch_len[i];
    }
    memset(S->dz, 0, sizeof(double) * (size_t)nb * H);
    mmspcl_params_zero_grad(&S->model.P);
    mmspcl_params_zero_grad(&S->head_params);
    if ((st = mmspcl_spcl_step(&S->spcl, S->z, ye, nb, loss, S->dz, &stats, S->err))) return st;
    *loss += meld_ce_head(S, &S->ce_emotion, ye, nb, MMSPCL_NUM_EMOTIONS, r->ce_weight);
    *loss += meld_ce_head(S, &S->ce_sentiment, ys, nb, MMSPCL_NUM_SENTIMENTS, r->sent_weight);
    memset(S->dout, 0, sizeof(float) * (size_t)S->model.T * H);
    for (i = 0, start = 0; i < nb; i++) {
        float *o = S->dout + (size_t)(start + d->mask[S->keep[b + i]]) * H;
        for (k = 0; k < H; k++) o[k] = (float)S->dz[(size_t)i * H + k];
        start += S->batch_len[i];
    }
    if ((st = mmspcl_roberta_train_backward(&S->model, S->dout, NULL, S->err))) return st;
    mmspcl_grad_clip(&S->model.P, r->clip);
    mmspcl_adamw_step(&S->model.P, &S->enc_opt, mmspcl_lr_cosine(S->model.P.step, r->warmup, total, r->lr));
    mmspcl_adamw_step(&S->head_params, &S->head_opt, mmspcl_lr_cosine(S->head_params.step, r->warmup, total, r->head_lr));
    mmspcl_roberta_train_sync(&S->model);
    return MMSPCL_OK;
}

/* Before epoch e: class means of the encoder rows' t; for e > 0 the dev score of the model after
   epoch e-1 by nearest class mean, the best weights kept, *stop set on the last epoch or patience. */
static mmspcl_status meld_spcl_evaluate(meld_state *S, int e, int *counts, int *stop) {
    const meld_recipe *r = S->r;
    const int H = S->H, C = MMSPCL_NUM_EMOTIONS, E = r->spcl_epochs;
    double f1, acc = 0.0;
    int i;
    mmspcl_status st;
    *stop = 0;
    if ((st = meld_embed(&S->model, &S->enc, NULL, S->enc.n, r->batch, S->train_t, NULL, S->progress, S->user, "embed", S->err)))
        return st;
    for (i = 0; i < S->enc.n * H; i++) S->z_all[i] = S->train_t[i];
    mmspcl_class_means(S->z_all, S->enc.emo, S->enc.n, H, C, S->means, counts);
    if (e == 0) return MMSPCL_OK;
    if ((st = meld_embed(&S->model, &S->devp, NULL, S->devp.n, r->batch, S->dev_t, NULL, NULL, NULL, NULL, S->err))) return st;
    meld_nearest_mean(S->dev_t, S->devp.n, H, S->means, C, S->pred);
    f1 = meld_weighted_f1(S->devp.emo, S->pred, S->devp.n, C, &acc);
    if (S->log_spcl.n) S->log_spcl.x[(S->log_spcl.n - 1) * 3 + 2] = (float)f1;
    if (f1 > S->best_f1) {
        S->best_f1 = f1;
        S->best_epoch = e;
        S->bad = 0;
        memcpy(S->best, S->model.P.w, sizeof(double) * S->model.P.n);
        memcpy(S->best + S->model.P.n, S->head_params.w, sizeof(double) * S->head_params.n);
    } else S->bad++;
    meld_msg(S->progress, S->user, "spcl", "SPCL epoch %d/%d: dev weighted F1 %.4f accuracy %.4f (nearest class mean)%s", e, E, f1,
             acc, S->bad ? "" : "  best");
    if ((st = meld_checkpoint_write(S, 1, e - 1, S->best))) return st;
    *stop = e == E || (r->patience > 0 && S->bad >= r->patience);
    return MMSPCL_OK;
}

static mmspcl_status meld_stage_spcl(meld_state *S) {
    const meld_recipe *r = S->r;
    const int B = r->batch, E = r->spcl_epochs, H = S->H, C = MMSPCL_NUM_EMOTIONS;
    const int64_t total = (int64_t)E * ((S->enc.n + B - 1) / B);
    int e, i, b;
    mmspcl_status st;
    if (S->start_stage != 1) return MMSPCL_OK;
    for (e = S->start_epoch; e <= E; e++) {
        int counts[MMSPCL_MAX_CLASSES], nk, nsum = 0, stop;
        double sum = 0.0;
        if ((st = meld_spcl_evaluate(S, e, counts, &stop))) return st;
        if (stop) break;
        if (r->curriculum) {
            mmspcl_curriculum_difficulty(S->z_all, S->enc.emo, S->enc.n, H, S->means, counts, C, S->difficulty);
            nk = mmspcl_curriculum_select(S->difficulty, S->enc.n, e, E, &S->rng, S->keep);
        } else {
            for (i = 0; i < S->enc.n; i++) S->keep[i] = i;
            nk = S->enc.n;
        }
        mmspcl_rng_shuffle(&S->rng, S->keep, nk);
        mmspcl_spcl_reset(&S->spcl, S->means);
        for (b = 0; b < nk; b += B) {
            const int nb = nk - b < B ? nk - b : B;
            double loss = 0.0;
            if ((st = meld_spcl_batch(S, b, nb, total, &loss))) return st;
            sum += loss;
            nsum++;
            if (S->progress) S->progress(S->user, "spcl", b + nb, nk, NULL);
        }
        meld_log_add(&S->log_spcl, e + 1, sum / (nsum ? nsum : 1), -1.0);
        meld_msg(S->progress, S->user, "spcl", "SPCL epoch %d/%d: %d of %d samples (curriculum), loss %.4f", e + 1, E, nk, S->enc.n,
                 sum / (nsum ? nsum : 1));
    }
    if (S->best_epoch >= 0 || S->best_f1 >= 0) {
        memcpy(S->model.P.w, S->best, sizeof(double) * S->model.P.n);
        memcpy(S->head_params.w, S->best + S->model.P.n, sizeof(double) * S->head_params.n);
        mmspcl_roberta_train_sync(&S->model);
    }
    meld_msg(S->progress, S->user, "spcl", "SPCL: best dev weighted F1 %.4f (kept)", S->best_f1);
    return MMSPCL_OK;
}

/* ==== 6. views: t and v of the held-out rows and dev, the n-gram view ==== */
/* idf from the training split: log((1 + n) / (1 + df)) + 1, as scikit-learn's smooth_idf */
static int meld_ngram_idf(meld_ngram *g, const meld_csv *train, const meld_csv *dev, meld_csr *x_train, meld_csr *x_dev) {
    const int64_t F = g->F;
    int *df = (int *)malloc(sizeof(int) * (size_t)F);
    int64_t q;
    g->idf = (float *)malloc(sizeof(float) * (size_t)F);
    if (!df || !g->idf || meld_csr_build(x_train, train, g->bits, NULL)) { free(df); return -1; }
    memset(df, 0, sizeof(int) * (size_t)F);
    for (q = 0; q < x_train->ptr[x_train->n]; q++) df[x_train->idx[q]]++;
    for (q = 0; q < F; q++) g->idf[q] = (float)(log((1.0 + train->n_rows) / (1.0 + df[q])) + 1.0);
    free(df);
    meld_csr_free(x_train);
    if (meld_csr_build(x_train, train, g->bits, g->idf) || meld_csr_build(x_dev, dev, g->bits, g->idf)) return -1;
    return 0;
}

/* what one task's fit works on */
typedef struct meld_ngram_ctx {
    const meld_csr *xtr, *xdv;
    const int *fold, *ytr[2], *ydv[2];
    int *rows, *order, n, nd;
    float *lp;
    uint64_t seed;
    meld_progress_fn progress;
    void *user;
} meld_ngram_ctx;

/* One task's regression (0 emotion, 1 sentiment): lambda and epochs chosen on dev, out-of-fold
   log-probabilities for the train rows (5 folds by dialogue, so the heads see the view as it
   behaves on unseen text), the final model on all of train, its dev log-probabilities. */
static void meld_ngram_task(meld_ngram *g, int task, const meld_ngram_ctx *x) {
    static const double lambdas[3] = {1e-5, 3e-5, 1e-4};
    static const int epochs[2] = {8, 16};
    const int C = MMSPCL_NUM_EMOTIONS, D = MMSPCL_NUM_EMOTIONS + MMSPCL_NUM_SENTIMENTS, n = x->n;
    const int CC = task ? MMSPCL_NUM_SENTIMENTS : C, *yy = x->ytr[task], *yd = x->ydv[task];
    const meld_csr *xtr = x->xtr;
    double bestf = -1, bl = 1e-5, acc;
    int be = 8, li, ei, f, i;
    mmspcl_rng lr_rng;
    for (li = 0; li < 3; li++)
        for (ei = 0; ei < 2; ei++) {
            double f1;
            mmspcl_rng_seed(&lr_rng, x->seed + 31);
            meld_lr_train(xtr, yy, x->rows, n, CC, g->F, lambdas[li], epochs[ei], 0.5, &lr_rng, g->w[task], g->b[task], x->order);
            f1 = meld_lr_eval(g->w[task], g->b[task], CC, g->F, x->xdv, yd, NULL, &acc);
            meld_msg(x->progress, x->user, "ngram", "%s TF-IDF + LR, lambda %g, %d epochs: dev weighted F1 %.4f accuracy %.4f",
                     task ? "sentiment" : "emotion", lambdas[li], epochs[ei], f1, acc);
            if (f1 > bestf) { bestf = f1; bl = lambdas[li]; be = epochs[ei]; }
        }
    for (f = 0; f < 5; f++) {
        int nf = 0;
        for (i = 0; i < n; i++) if (x->fold[i] != f) x->rows[nf++] = i;
        mmspcl_rng_seed(&lr_rng, x->seed + 37 + f);
        meld_lr_train(xtr, yy, x->rows, nf, CC, g->F, bl, be, 0.5, &lr_rng, g->w[task], g->b[task], x->order);
        for (i = 0; i < n; i++)
            if (x->fold[i] == f)
                mmspcl_sparse_log_softmax(g->w[task], g->b[task], CC, g->F, xtr->idx + xtr->ptr[i], xtr->val + xtr->ptr[i],
                                          (int)(xtr->ptr[i + 1] - xtr->ptr[i]), g->train_lp + (size_t)i * D + (task ? C : 0));
    }
    for (i = 0; i < n; i++) x->rows[i] = i;
    mmspcl_rng_seed(&lr_rng, x->seed + 31);
    meld_lr_train(xtr, yy, x->rows, n, CC, g->F, bl, be, 0.5, &lr_rng, g->w[task], g->b[task], x->order);
    bestf = meld_lr_eval(g->w[task], g->b[task], CC, g->F, x->xdv, yd, x->lp, &acc);
    for (i = 0; i < x->nd; i++) memcpy(g->dev_lp + (size_t)i * D + (task ? C : 0), x->lp + (size_t)i * CC, sizeof(float) * CC);
    g->dev_f1[task] = bestf;
    g->dev_acc[task] = acc;
    meld_msg(x->progress, x->user, "ngram", "%s TF-IDF + LR (lambda %g, %d epochs): dev weighted F1 %.4f accuracy %.4f",
             task ? "sentiment" : "emotion", bl, be, bestf, acc);
}

void meld_ngram_free(meld_ngram *g) {
    free(g->idf); free(g->w[0]); free(g->w[1]); free(g->train_lp); free(g->dev_lp);
    memset(g, 0, sizeof *g);
}

mmspcl_status meld_ngram_fit(meld_ngram *g, int bits, uint64_t seed, const meld_csv *train, const meld_csv *dev,
                             meld_progress_fn progress, void *user, mmspcl_error *err) {
    const int C = MMSPCL_NUM_EMOTIONS, D = MMSPCL_NUM_EMOTIONS + MMSPCL_NUM_SENTIMENTS, n = train->n_rows, nd = dev->n_rows;
    meld_csr xtr, xdv;
    meld_ngram_ctx x;
    int *lab = (int *)malloc(sizeof(int) * (size_t)(2 * n + 2 * nd + 4));
    int task, di, i, ok;
    memset(g, 0, sizeof *g);
    memset(&x, 0, sizeof x);
    g->bits = bits;
    g->F = (int64_t)1 << bits;
    memset(&xtr, 0, sizeof xtr); memset(&xdv, 0, sizeof xdv);
    x.rows = (int *)malloc(sizeof(int) * (size_t)(n + 1)); x.order = (int *)malloc(sizeof(int) * (size_t)(n + 1));
    x.lp = (float *)malloc(sizeof(float) * (size_t)(n > nd ? n : nd) * C);
    x.fold = (int *)malloc(sizeof(int) * (size_t)(n + 1));
    g->w[0] = (float *)malloc(sizeof(float) * (size_t)g->F * C);
    g->w[1] = (float *)malloc(sizeof(float) * (size_t)g->F * MMSPCL_NUM_SENTIMENTS);
    g->train_lp = (float *)malloc(sizeof(float) * (size_t)(n + 1) * D);
    g->dev_lp = (float *)malloc(sizeof(float) * (size_t)(nd + 1) * D);
    ok = lab && x.rows && x.order && x.lp && x.fold && g->w[0] && g->w[1] && g->train_lp && g->dev_lp && !meld_ngram_idf(g, train, dev, &xtr, &xdv);
    if (ok) {
        int *fold = (int *)x.fold;
        x.xtr = &xtr; x.xdv = &xdv; x.n = n; x.nd = nd; x.seed = seed; x.progress = progress; x.user = user;
        x.ytr[0] = lab; x.ytr[1] = lab + n; x.ydv[0] = lab + 2 * n; x.ydv[1] = lab + 2 * n + nd;
        for (i = 0; i < n; i++) { lab[i] = train->rows[i].emotion; lab[n + i] = train->rows[i].sentiment; x.rows[i] = i; }
        for (i = 0; i < nd; i++) { lab[2 * n + i] = dev->rows[i].emotion; lab[2 * n + nd + i] = dev->rows[i].sentiment; }
        for (di = 0; di < train->n_dialogues; di++)
            for (i = train->dialogue_start[di]; i < train->dialogue_start[di + 1]; i++) fold[i] = di % 5;
        for (task = 0; task < 2; task++) meld_ngram_task(g, task, &x);
    }
    free(lab); free(x.rows); free(x.order); free((void *)x.fold); free(x.lp);
    meld_csr_free(&xtr); meld_csr_free(&xdv);
    if (!ok) { meld_ngram_free(g); return mmspcl_error_set(err, MMSPCL_ERR_NOMEM, "meld: out of memory (n-gram view)"); }
    return MMSPCL_OK;
}

mmspcl_status meld_ngram_write(const meld_ngram *g, mmspcl_writer *wr, mmspcl_error *err) {
    const int C = MMSPCL_NUM_EMOTIONS, CS = MMSPCL_NUM_SENTIMENTS;
    const int64_t F = g->F;
    int64_t sh[2];
    mmspcl_status st;
    if (mmspcl_writer_set_int(wr, "meld.ngram_bits", g->bits)) return mmspcl_error_set(err, MMSPCL_ERR_NOMEM, "meld: out of memory");
    sh[0] = F;
    if ((st = mmspcl_writer_add_tensor(wr, "meld.idf", MMSPCL_F32, 1, sh, g->idf, sizeof(float) * (size_t)F, err))) return st;
    sh[0] = C; sh[1] = F;
    if ((st = mmspcl_writer_add_tensor(wr, "meld.lr.emotion.weight", MMSPCL_F32, 2, sh, g->w[0], sizeof(float) * (size_t)(C * F), err)) ||
        (st = mmspcl_writer_add_tensor(wr, "meld.lr.emotion.bias", MMSPCL_F32, 1, sh, g->b[0], sizeof(float) * (size_t)C, err)))
        return st;
    sh[0] = CS;
    if ((st = mmspcl_writer_add_tensor(wr, "meld.lr.sentiment.weight", MMSPCL_F32, 2, sh, g->w[1], sizeof(float) * (size_t)(CS * F), err)) ||
        (st = mmspcl_writer_add_tensor(wr, "meld.lr.sentiment.bias", MMSPCL_F32, 1, sh, g->b[1], sizeof(float) * (size_t)CS, err)))
        return st;
    return MMSPCL_OK;
}

static mmspcl_status meld_ngram_view(meld_state *S) {
    const int D = MMSPCL_NUM_EMOTIONS + MMSPCL_NUM_SENTIMENTS;
    int i;
    mmspcl_status st;
    if ((st = meld_ngram_fit(&S->ng, S->r->ngram_bits, S->r->seed, S->train, S->dev, S->progress, S->user, S->err))) return st;
    meld_log_add(&S->log_heads, 10, S->ng.dev_f1[0], S->ng.dev_acc[0]);
    meld_log_add(&S->log_heads, 11, S->ng.dev_f1[1], S->ng.dev_acc[1]);
    if (!(S->ngram_held = (float *)malloc(sizeof(float) * (size_t)(S->held.n + 1) * D))) return meld_oom(S, "n-gram view");
    for (i = 0; i < S->held.n; i++) memcpy(S->ngram_held + (size_t)i * D, S->ng.train_lp + (size_t)S->held_rows[i] * D, sizeof(float) * D);
    return MMSPCL_OK;
}

static mmspcl_status meld_stage_views(meld_state *S) {
    const int B = S->r->batch;
    mmspcl_status st;
    int i;
    if ((st = meld_embed(&S->model, &S->held, NULL, S->held.n, B, S->train_t, S->train_v, S->progress, S->user, "features", S->err)) ||
        (st = meld_embed(&S->model, &S->devp, NULL, S->devp.n, B, S->dev_t, S->dev_v, NULL, NULL, NULL, S->err)))
        return st;
    for (i = 0; i < S->held.n * S->H; i++) S->z_all[i] = S->train_t[i];
    mmspcl_class_means(S->z_all, S->held.emo, S->held.n, S->H, MMSPCL_NUM_EMOTIONS, S->means, NULL);
    return meld_ngram_view(S);
}

/* ==== 7. heads ==== */
/* every view standardised with the statistics of the rows the heads train on */
static mmspcl_status meld_view_stats(meld_state *S, const int *width) {
    const int n = S->held.n;
    int mi, k, i;
    for (mi = 0; mi < 3; mi++) {
        const float *x = mi == 0 ? S->train_t : mi == 1 ? S->ngram_held : S->train_v;
        const int W = width[mi];
        S->view_mean[mi] = (float *)malloc(sizeof(float) * W);
        S->view_std[mi] = (float *)malloc(sizeof(float) * W);
        if (!S->view_mean[mi] || !S->view_std[mi]) return meld_oom(S, "view statistics");
        for (k = 0; k < W; k++) {
            double s = 0, s2 = 0;
            for (i = 0; i < n; i++) s += x[(size_t)i * W + k];
            s /= n;
            for (i = 0; i < n; i++) s2 += (x[(size_t)i * W + k] - s) * (x[(size_t)i * W + k] - s);
            S->view_mean[mi][k] = (float)s;
            S->view_std[mi][k] = (float)(sqrt(s2 / n) > 1e-6 ? sqrt(s2 / n) : 1.0);
        }
    }
    return MMSPCL_OK;
}

/* head k: 0 emotion ensemble, 1 sentiment ensemble, 2..4 the single views t, a, v */
static mmspcl_status meld_train_head(meld_state *S, int k, const int *width, mmspcl_dataset *trs, mmspcl_dataset *dvs) {
    static const char *const vname[3] = {"t", "a", "v"};
    const meld_recipe *r = S->r;
    const int C = k == 1 ? MMSPCL_NUM_SENTIMENTS : MMSPCL_NUM_EMOTIONS;
    mmspcl_msve_model *M = &S->heads[k];
    mmspcl_msve_cfg mc;
    mmspcl_msve_train_cfg tc;
    mmspcl_train_report rep;
    double f1, acc;
    int mi;
    mmspcl_status st;
    mmspcl_msve_train_defaults(&tc);
    tc.epochs = r->msve_epochs; tc.standardize = 0; tc.lr = r->msve_lr; tc.seed = r->seed + 11; tc.patience = 5;
    memset(&mc, 0, sizeof mc);
    mc.n_classes = C; mc.hidden = r->msve_hidden; mc.act = MMSPCL_ACT_GELU; mc.dropout = r->msve_dropout;
    for (mi = 0; mi < 3; mi++) mc.dims[mi] = k < 2 || k - 2 == mi ? width[mi] : 0;
    for (mi = 1; mi < 8; mi++) mc.depth[mi] = 2;   /* the recipe was tuned with a 2-layer MLP per combination */
    if ((st = mmspcl_msve_model_create(M, &mc, r->seed + 100 + k, S->err))) return st;
    S->have_head[k] = 1;
    for (mi = 0; mi < 3; mi++)
        if (mc.dims[mi]) {
            M->mean[mi] = (float *)malloc(sizeof(float) * width[mi]);
            M->std[mi] = (float *)malloc(sizeof(float) * width[mi]);
            if (!M->mean[mi] || !M->std[mi]) return meld_oom(S, "heads");
            memcpy(M->mean[mi], S->view_mean[mi], sizeof(float) * width[mi]);
            memcpy(M->std[mi], S->view_std[mi], sizeof(float) * width[mi]);
        }
    trs->y = k == 1 ? S->held.sent : S->held.emo;
    dvs->y = k == 1 ? S->devp.sent : S->devp.emo;
    if ((st = mmspcl_msve_train(M, trs, dvs, &tc, &rep, NULL, NULL, S->err))) return st;
    if ((st = mmspcl_msve_model_predict(M, dvs->x, dvs->n, 0, S->pred, NULL, S->err))) return st;
    f1 = meld_weighted_f1(dvs->y, S->pred, dvs->n, C, &acc);
    meld_log_add(&S->log_heads, k, f1, acc);
    meld_msg(S->progress, S->user, "msve", "%s head: dev weighted F1 %.4f accuracy %.4f (epoch %d of %d run)",
             k == 0 ? "emotion MSVE (t,a,v)" : k == 1 ? "sentiment MSVE (t,a,v)" : vname[k - 2], f1, acc, rep.best_epoch + 1,
             rep.epochs_run);
    return MMSPCL_OK;
}

static mmspcl_status meld_stage_heads(meld_state *S) {
    const int width[3] = {S->H, MMSPCL_NUM_EMOTIONS + MMSPCL_NUM_SENTIMENTS, S->H};
    mmspcl_dataset trs, dvs;
    double f1, acc;
    int k;
    mmspcl_status st;
    if ((st = meld_view_stats(S, width))) return st;
    memset(&trs, 0, sizeof trs); memset(&dvs, 0, sizeof dvs);
    trs.x[0] = S->train_t; trs.x[1] = S->ngram_held; trs.x[2] = S->train_v; trs.n = S->held.n;
    dvs.x[0] = S->dev_t; dvs.x[1] = S->ng.dev_lp; dvs.x[2] = S->dev_v; dvs.n = S->devp.n;
    for (k = 0; k < MELD_HEADS; k++)
        if ((st = meld_train_head(S, k, width, &trs, &dvs))) return st;
    meld_nearest_mean(S->dev_t, S->devp.n, S->H, S->means, MMSPCL_NUM_EMOTIONS, S->pred);
    f1 = meld_weighted_f1(S->devp.emo, S->pred, S->devp.n, MMSPCL_NUM_EMOTIONS, &acc);
    meld_log_add(&S->log_heads, 5, f1, acc);
    meld_msg(S->progress, S->user, "msve", "t by nearest class mean: dev weighted F1 %.4f accuracy %.4f", f1, acc);
    return MMSPCL_OK;
}

/* ==== 8. the classifier file ==== */
static mmspcl_status meld_write_keys(meld_state *S, mmspcl_writer *wr) {
    if (mmspcl_writer_set_str(wr, "tokenizer.model", "gpt2-bpe") ||
        mmspcl_writer_set_str_array(wr, "tokenizer.vocab", S->vocab.vocab, NULL, S->vocab.n_vocab) ||
        mmspcl_writer_set_str_array(wr, "tokenizer.merges", S->vocab.merges, NULL, S->vocab.n_merges) ||
        mmspcl_writer_set_str(wr, "general.name", "mmspcl-meld-text") ||
        mmspcl_writer_set_str(wr, "general.source", "trained by mmspcl train on MELD train_sent_emo.csv (GPL-3.0 data)") ||
        mmspcl_writer_set_int(wr, "meld.max_len", S->ML) ||
        mmspcl_writer_set_int(wr, "meld.seed", (int64_t)S->r->seed) || mmspcl_writer_set_float(wr, "meld.dev_f1_spcl", S->best_f1))
        return meld_oom(S, "model file");
    return MMSPCL_OK;
}

/* hold[0] encoder tensors, [1] prototypes, [2..6] the heads: freed by the caller after the save */
static mmspcl_status meld_write_model(meld_state *S, mmspcl_writer *wr, void **hold) {
    static const char *const names[MELD_HEADS] = {"meld.emotion", "meld.sentiment", "meld.view.t", "meld.view.a", "meld.view.v"};
    const int C = MMSPCL_NUM_EMOTIONS, H = S->H;
    float *protos;
    int64_t sh[2];
    int i, k;
    mmspcl_status st;
    if ((st = mmspcl_roberta_train_write_config(&S->model, wr, S->err)) ||
        (st = mmspcl_roberta_train_write_tensors(&S->model, wr, MMSPCL_F32, &hold[0], S->err)) || (st = meld_write_keys(S, wr)) ||
        (st = meld_ngram_write(&S->ng, wr, S->err)))
        return st;
    if (!(protos = (float *)malloc(sizeof(float) * (size_t)C * H))) return meld_oom(S, "model file");
    hold[1] = protos;
    for (i = 0; i < C * H; i++) protos[i] = (float)S->means[i];
    sh[0] = C; sh[1] = H;
    if ((st = mmspcl_writer_add_tensor(wr, "meld.protos", MMSPCL_F32, 2, sh, protos, sizeof(float) * (size_t)C * H, S->err))) return st;
    for (k = 0; k < MELD_HEADS; k++) {
        float *hm = NULL;
        st = mmspcl_msve_model_write(&S->heads[k], wr, names[k], 0, &hm, S->err);
        hold[2 + k] = hm;
        if (st) return st;
    }
    if ((st = meld_log_write(&S->log_mlm, wr, "meld.log.mlm", S->err)) || (st = meld_log_write(&S->log_spcl, wr, "meld.log.spcl", S->err)) ||
        (st = meld_log_write(&S->log_heads, wr, "meld.log.heads", S->err)))
        return st;
    return MMSPCL_OK;
}

static mmspcl_status meld_stage_file(meld_state *S, const char *out_path) {
    void *hold[2 + MELD_HEADS] = {NULL};
    mmspcl_writer *wr = mmspcl_writer_create();
    mmspcl_status st;
    int i;
    if (!wr) return meld_oom(S, "model file");
    st = meld_write_model(S, wr, hold);
    if (!st) st = mmspcl_writer_save(wr, out_path, NULL, NULL, S->err);
    mmspcl_writer_free(wr);
    for (i = 0; i < 2 + MELD_HEADS; i++) free(hold[i]);
    return st;
}

/* ==== the recipe ==== */
mmspcl_status meld_train(const meld_recipe *r, const meld_csv *train, const meld_csv *dev,
                         const char *const *vocab, int64_t n_vocab, const char *const *merges,
                         int64_t n_merges, const char *out_path, meld_progress_fn progress, void *user,
                         mmspcl_error *err) {
    meld_state S;
    mmspcl_status st;
    memset(&S, 0, sizeof S);
    S.r = r; S.train = train; S.dev = dev; S.progress = progress; S.user = user; S.err = err;
    S.H = r->hidden; S.ML = r->max_len; S.F = (int64_t)1 << r->ngram_bits;
    S.best_f1 = -1.0; S.best_epoch = -1;
    mmspcl_params_init(&S.head_params);
    if (!(st = meld_stage_vocab(&S, vocab, n_vocab, merges, n_merges)) && !(st = meld_stage_data(&S)) &&
        !(st = meld_stage_encoder(&S)) && !(st = meld_resume(&S)) && !(st = meld_stage_mlm(&S)) && !(st = meld_stage_spcl(&S)) &&
        !(st = meld_stage_views(&S)) && !(st = meld_stage_heads(&S)))
        st = meld_stage_file(&S, out_path);
    meld_state_free(&S);
    return st;
}

/* ---- copies of a classifier file ---- */
/* every key of w but `skip` and those starting with skip_prefix (either NULL: none) into wr */
mmspcl_status meld_copy_keys(const mmspcl_weights *w, mmspcl_writer *wr, const char *skip, const char *skip_prefix,
                                    mmspcl_error *err) {
    int64_t i;
    for (i = 0; i < w->n_kv; i++) {
        const mmspcl_kv *kv = &w->kv[i];
        int bad = 0;
        if ((skip && !strcmp(kv->key, skip)) || (skip_prefix && !strncmp(kv->key, skip_prefix, strlen(skip_prefix)))) continue;
        if (kv->type == MMSPCL_KV_INT) bad = mmspcl_writer_set_int(wr, kv->key, kv->i);
        else if (kv->type == MMSPCL_KV_FLOAT) bad = mmspcl_writer_set_float(wr, kv->key, kv->f);
        else if (kv->type == MMSPCL_KV_STR) bad = mmspcl_writer_set_str(wr, kv->key, kv->str);
        else bad = mmspcl_writer_set_str_array(wr, kv->key, kv->strs, kv->lens, kv->count);
        if (bad) return mmspcl_error_set(err, MMSPCL_ERR_NOMEM, "copy: out of memory");
    }
    return MMSPCL_OK;
}

mmspcl_status meld_write_media_heads(const char *base_path, const mmspcl_msve_model *emo, const mmspcl_msve_model *sent,
                                     const char *audio_features, const char *out_path, mmspcl_error *err) {
    const mmspcl_msve_model *h[2] = {emo, sent};
    static const char *const name[2] = {"meld.media.emotion", "meld.media.sentiment"};
    mmspcl_weights *w = NULL;
    mmspcl_writer *wr = NULL;
    float *hold[2] = {NULL, NULL};
    int64_t i;
    int k;
    mmspcl_status st;
    if ((st = mmspcl_weights_read(&w, base_path, err))) return st;
    if (!(wr = mmspcl_writer_create())) { st = mmspcl_error_set(err, MMSPCL_ERR_NOMEM, "media heads: out of memory"); goto done; }
    if ((st = meld_copy_keys(w, wr, NULL, "meld.media.", err))) goto done;
    if (audio_features && mmspcl_writer_set_str(wr, "meld.media.audio", audio_features)) {
        st = mmspcl_error_set(err, MMSPCL_ERR_NOMEM, "media heads: out of memory");
        goto done;
    }
    for (i = 0; i < w->n_tensors; i++) {   /* the base's tensors, in place in w (read whole: it outlives the save) */
        const mmspcl_tensor *t = &w->tensors[i];
        if (!strncmp(t->name, "meld.media.", 11)) continue;
        if ((st = mmspcl_writer_add_tensor(wr, t->name, t->dtype, t->ndim, t->ne, t->data, t->nbytes, err))) goto done;
    }
    for (k = 0; k < 2; k++)
        if (h[k] && (st = mmspcl_msve_model_write(h[k], wr, name[k], 0, &hold[k], err))) goto done;
    st = mmspcl_writer_save(wr, out_path, NULL, NULL, err);
done:
    if (wr) mmspcl_writer_free(wr);
    free(hold[0]); free(hold[1]);
    mmspcl_weights_free(w);
    return st;
}

/* ---- quantized copy ---- */
mmspcl_status meld_quantize_file(const char *in_path, const char *out_path, mmspcl_dtype dtype,
                                        mmspcl_error *err) {
    mmspcl_weights *w = NULL;
    mmspcl_writer *wr = NULL;
    unsigned char *buf = NULL;
    size_t total = 0, off = 0;
    int64_t i;
    mmspcl_status st;
    if ((st = mmspcl_weights_read(&w, in_path, err))) return st;
    if (!(wr = mmspcl_writer_create())) { st = mmspcl_error_set(err, MMSPCL_ERR_NOMEM, "quantize: out of memory"); goto done; }
    if ((st = meld_copy_keys(w, wr, "general.file_type", NULL, err))) goto done;
    mmspcl_writer_set_str(wr, "general.file_type", mmspcl_dtype_name(dtype));
    for (i = 0; i < w->n_tensors; i++) total += w->tensors[i].nbytes + 64;
    if (!(buf = (unsigned char *)malloc(total + 1))) { st = mmspcl_error_set(err, MMSPCL_ERR_NOMEM, "quantize: out of memory"); goto done; }
    for (i = 0; i < w->n_tensors; i++) {
        const mmspcl_tensor *t = &w->tensors[i];
        const int q = t->dtype == MMSPCL_F32 && t->ndim == 2 && t->ne[1] % 32 == 0 && strncmp(t->name, "meld.protos", 11) &&
                      strncmp(t->name, "meld.log", 8) && strncmp(t->name, "meld.joint.", 11);   /* the joint head stays f32 */
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
    free(buf);
    mmspcl_weights_free(w);
    return st;
}



/* ---- media heads from mmspcl extract's features ---- */
void meld_media_defaults(meld_media_recipe *r) {
    memset(r, 0, sizeof *r);
    /* the paper's MSVE (mmspcl_msve_train_defaults: lr 1e-4, 200 epochs, patience 10; hidden 100,
       the paper's depths) */
    r->hidden = 100; r->epochs = 200; r->patience = 10; r->lr = 1e-4; r->dropout = 0.1; r->seed = 1;
}

void meld_feats_free(meld_feats *f) {
    int m;
    for (m = 0; m < 3; m++) free(f->x[m]);
    free(f->y[0]); free(f->y[1]); free(f->split); free(f->dia); free(f->utt);
    mmspcl_free(f->manifest);
    memset(f, 0, sizeof *f);
}

/* "key VALUE" of the manifest as an integer (-1: absent) */
static long long meld_manifest_int(const char *text, const char *key) {
    const size_t kl = strlen(key);
    const char *p;
    for (p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, key, kl) && p[kl] == ' ') return atoll(p + kl + 1);
    return -1;
}

/* dir/name, whole (NUL after the last byte) */
static mmspcl_status meld_feats_file(const char *dir, const char *name, unsigned char **b, size_t *n, mmspcl_error *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return mmspcl_read_file(path, (size_t)1 << 40, b, n, err);
}

/* n lines of dir/name: integers (kind 0) or split words (kind 1) into out */
static mmspcl_status meld_feats_lines(const char *dir, const char *name, int n, int kind, int *out, mmspcl_error *err) {
    unsigned char *b = NULL;
    size_t len;
    char *p, *e;
    int i;
    mmspcl_status st;
    if ((st = meld_feats_file(dir, name, &b, &len, err))) return st;
    for (i = 0, p = (char *)b; i < n; i++, p = e + 1) {
        long v = 0;
        if (!(e = strchr(p, '\n'))) break;
        *e = 0;
        if (kind == 1) v = !strcmp(p, "train") ? 0 : !strcmp(p, "dev") ? 1 : !strcmp(p, "test") ? 2 : -9;
        else v = strtol(p, NULL, 10);
        if (v < -1 || v > 1000) { mmspcl_free(b); return mmspcl_error_set(err, MMSPCL_ERR_FORMAT, "%s/%s line %d: '%.20s'", dir, name, i + 1, p); }
        out[i] = (int)v;
    }
    mmspcl_free(b);
    if (i < n) return mmspcl_error_set(err, MMSPCL_ERR_FORMAT, "%s/%s has %d lines, extract.txt says %d rows", dir, name, i, n);
    return MMSPCL_OK;
}

/* rows.tsv: "Dialogue_ID<TAB>Utterance_ID" a line, n lines */
static mmspcl_status meld_feats_rows(meld_feats *f, const char *dir, mmspcl_error *err) {
    unsigned char *b = NULL;
    size_t len;
    char *p, *e;
    int i;
    mmspcl_status st;
    if ((st = meld_feats_file(dir, "rows.tsv", &b, &len, err))) return st;
    f->dia = (int64_t *)malloc(sizeof(int64_t) * (size_t)f->n);
    f->utt = (int64_t *)malloc(sizeof(int64_t) * (size_t)f->n);
    if (!f->dia || !f->utt) { mmspcl_free(b); return mmspcl_error_set(err, MMSPCL_ERR_NOMEM, "%s/rows.tsv: out of memory", dir); }
    for (i = 0, p = (char *)b; i < f->n; i++, p = e + 1) {
        if (!(e = strchr(p, '\n'))) break;
        *e = 0;
        f->dia[i] = strtoll(p, &p, 10);
        if (*p != '\t') break;
        f->utt[i] = strtoll(p + 1, &p, 10);
        if (*p && *p != '\r') break;
    }
    mmspcl_free(b);
    if (i < f->n) return mmspcl_error_set(err, MMSPCL_ERR_FORMAT, "%s/rows.tsv line %d: not 'DIALOGUE<TAB>UTTERANCE' (%d rows expected)", dir, i + 1, f->n);
    return MMSPCL_OK;
}

/* extract.txt, then every file it promises (t: the base's own t view, when need_t) */
mmspcl_status meld_feats_load(meld_feats *f, const char *dir, int need_t, mmspcl_error *err) {
    static const char *const fname[3] = {"t.f32", "a.f32", "v.f32"}, *const dname[3] = {"dim.t", "dim.a", "dim.v"};
    unsigned char *b = NULL;
    size_t len;
    int m;
    mmspcl_status st;
    memset(f, 0, sizeof *f);
    if ((st = meld_feats_file(dir, "extract.txt", &b, &len, err))) {
        char msg[256];   /* it names the file */
        snprintf(msg, sizeof msg, "%s", err ? err->msg : "cannot read it");
        return mmspcl_error_set(err, st, "%s (an mmspcl extract folder, complete, is needed)", msg);
    }
    f->manifest = (char *)b;
    f->n = (int)meld_manifest_int(f->manifest, "rows");
    for (m = 0; m < 3; m++) f->dims[m] = (int)meld_manifest_int(f->manifest, dname[m]);
    if (f->n < 1 || f->dims[0] < 0 || f->dims[1] < 0 || f->dims[2] < 0)
        return mmspcl_error_set(err, MMSPCL_ERR_FORMAT, "%s/extract.txt: no rows or widths", dir);
    if (need_t && !f->dims[0]) return mmspcl_error_set(err, MMSPCL_ERR_FORMAT, "%s has no t.f32: run mmspcl extract with -m (the base model)", dir);
    for (m = 0; m < 3; m++) {
        if (!f->dims[m] || (m == 0 && !need_t)) continue;
        if ((st = meld_feats_file(dir, fname[m], &b, &len, err))) return st;
        if (len != (size_t)f->n * (size_t)f->dims[m] * 4) {
            mmspcl_free(b);
            return mmspcl_error_set(err, MMSPCL_ERR_FORMAT, "%s/%s: %zu bytes, not %d rows of %d float32", dir, fname[m], len, f->n, f->dims[m]);
        }
        f->x[m] = (float *)malloc(len);
        if (f->x[m]) memcpy(f->x[m], b, len);   /* little-endian file, little-endian host (the library's targets) */
        mmspcl_free(b);
        if (!f->x[m]) return mmspcl_error_set(err, MMSPCL_ERR_NOMEM, "media heads: out of memory");
    }
    f->y[0] = (int *)malloc(sizeof(int) * (size_t)f->n);
    f->y[1] = (int *)malloc(sizeof(int) * (size_t)f->n);
    f->split = (int *)malloc(sizeof(int) * (size_t)f->n);
    if (!f->y[0] || !f->y[1] || !f->split) return mmspcl_error_set(err, MMSPCL_ERR_NOMEM, "media heads: out of memory");
    if ((st = meld_feats_lines(dir, "labels.txt", f->n, 0, f->y[0], err)) || (st = meld_feats_lines(dir, "sentiment.txt", f->n, 0, f->y[1], err)) ||
        (st = meld_feats_lines(dir, "split.txt", f->n, 1, f->split, err)))
        return st;
    return need_t ? MMSPCL_OK : meld_feats_rows(f, dir, err);
}

/* the rows of split s as a dataset over copies (freed with meld_take_free); task k's labels */
static mmspcl_status meld_take(const meld_feats *f, int s, int k, mmspcl_dataset *d, float *hold[3], int **y, mmspcl_error *err) {
    int i, m, r = 0;
    for (i = 0; i < f->n; i++) r += f->split[i] == s;
    *y = (int *)malloc(sizeof(int) * (size_t)(r + 1));
    for (m = 0; m < 3; m++) hold[m] = f->dims[m] ? (float *)malloc(sizeof(float) * (size_t)(r + 1) * f->dims[m]) : NULL;
    if (!*y || (f->dims[0] && !hold[0]) || (f->dims[1] && !hold[1]) || (f->dims[2] && !hold[2]))
        return mmspcl_error_set(err, MMSPCL_ERR_NOMEM, "media heads: out of memory");
    for (i = 0, r = 0; i < f->n; i++) {
        if (f->split[i] != s) continue;
        for (m = 0; m < 3; m++)
            if (f->dims[m]) memcpy(hold[m] + (size_t)r * f->dims[m], f->x[m] + (size_t)i * f->dims[m], sizeof(float) * (size_t)f->dims[m]);
        (*y)[r++] = f->y[k][i];
    }
    for (m = 0; m < 3; m++) d->x[m] = hold[m];
    d->y = *y;
    d->n = r;
    return MMSPCL_OK;
}

/* task k's head on train (dev: early stopping); *have 0 when the task has no labels */
static mmspcl_status meld_media_head(const meld_media_recipe *r, const meld_feats *f, int k, mmspcl_msve_model *M, int *have,
                                     meld_progress_fn progress, void *user, mmspcl_error *err) {
    static const char *const task[2] = {"emotion", "sentiment"};
    const int C = k ? MMSPCL_NUM_SENTIMENTS : MMSPCL_NUM_EMOTIONS;
    mmspcl_dataset d[2];
    float *hold[2][3] = {{NULL, NULL, NULL}, {NULL, NULL, NULL}};
    int *y[2] = {NULL, NULL}, i, s, m;
    mmspcl_msve_cfg mc;
    mmspcl_msve_train_cfg tc;
    mmspcl_train_report rep;
    mmspcl_status st = MMSPCL_OK;
    *have = 0;
    for (s = 0; s < 2 && !st; s++) st = meld_take(f, s, k, &d[s], hold[s], &y[s], err);
    if (!st && (d[0].n < 2 || d[1].n < 1))
        st = mmspcl_error_set(err, MMSPCL_ERR_FORMAT, "media heads: %d train and %d dev rows: both splits are needed (split.txt)", d[0].n, d[1].n);
    for (s = 0; s < 2 && !st; s++)
        for (i = 0; i < d[s].n; i++)
            if (d[s].y[i] < 0 || d[s].y[i] >= C) { meld_msg(progress, user, "media", "no %s labels: no %s head", task[k], task[k]); goto done; }
    if (st) goto done;
    memset(&mc, 0, sizeof mc);
    mc.n_classes = C; mc.hidden = r->hidden; mc.act = MMSPCL_ACT_GELU; mc.dropout = r->dropout;
    mc.combos = r->combos;
    for (m = 0; m < 8; m++) mc.depth[m] = r->depth[m];
    for (m = 0; m < 3; m++) mc.dims[m] = f->dims[m];
    mmspcl_msve_train_defaults(&tc);
    tc.epochs = r->epochs; tc.patience = r->patience; tc.lr = r->lr; tc.seed = r->seed + (uint64_t)k; tc.standardize = 1;
    if ((st = mmspcl_msve_model_create(M, &mc, r->seed + 100 + (uint64_t)k, err))) goto done;
    if ((st = mmspcl_msve_train(M, &d[0], &d[1], &tc, &rep, NULL, NULL, err))) { mmspcl_msve_model_free(M); goto done; }
    *have = 1;
    meld_msg(progress, user, "media", "%s head over t%s%s: %d train rows, dev weighted F1 %.4f (epoch %d)", task[k], f->dims[1] ? "+a" : "",
             f->dims[2] ? "+v" : "", d[0].n, rep.best_val_f1, rep.best_epoch);
done:
    for (s = 0; s < 2; s++) { free(y[s]); for (m = 0; m < 3; m++) free(hold[s][m]); }
    return st;
}

mmspcl_status meld_train_media(const meld_media_recipe *r, const char *base_path, const char *feats, const char *out_path,
                               meld_progress_fn progress, void *user, mmspcl_error *err) {
    meld_feats f;
    mmspcl_weights *w = NULL;
    mmspcl_msve_model M[2];
    int have[2] = {0, 0}, k;
    long long want_bytes = -1;
    int64_t hidden = 0, ml;
    const char *job;
    mmspcl_status st;
    if ((st = mmspcl_weights_open(&w, base_path, err))) return st;
    if (!mmspcl_weights_get_int(w, "meld.max_len", &ml) || !mmspcl_weights_get_int(w, "roberta.hidden_size", &hidden)) {
        mmspcl_weights_free(w);
        return mmspcl_error_set(err, MMSPCL_ERR_FORMAT, "%s is not a classifier file (mmspcl train writes one)", base_path);
    }
    want_bytes = (long long)w->size;
    mmspcl_weights_free(w);
    if ((st = meld_feats_load(&f, feats, 1, err))) { meld_feats_free(&f); return st; }
    /* t must be this model's own view: extract records "t=HIDDEN:BYTES" of its -m file */
    job = strstr(f.manifest, " t=");
    if (f.dims[0] != hidden || !job || atoll(strchr(job, ':') ? strchr(job, ':') + 1 : "-1") != want_bytes) {
        meld_feats_free(&f);
        return mmspcl_error_set(err, MMSPCL_ERR_ARG, "%s/t.f32 is not %s's t view (width %d, from a %s): run mmspcl extract -m %s", feats, base_path,
                                f.dims[0], job ? "text model of another size" : "file without a job line", base_path);
    }
    for (k = 0; k < 2 && !st; k++) st = meld_media_head(r, &f, k, &M[k], &have[k], progress, user, err);
    if (!st && !have[0] && !have[1]) st = mmspcl_error_set(err, MMSPCL_ERR_FORMAT, "%s: no labels for either task", feats);
    if (!st) st = meld_write_media_heads(base_path, have[0] ? &M[0] : NULL, have[1] ? &M[1] : NULL, f.dims[1] ? "egemaps" : NULL, out_path, err);
    for (k = 0; k < 2; k++) if (have[k]) mmspcl_msve_model_free(&M[k]);
    meld_feats_free(&f);
    return st;
}
