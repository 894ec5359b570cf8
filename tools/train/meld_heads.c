/* tools/train/meld_heads.c - MSVE heads on out-of-fold views (overview: meld_heads.h). */
#include "tools/train/meld_heads.h"
#include "tools/train/meld_recipe.h"   /* meld_ngram_fit, meld_copy_keys */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void meld_heads_defaults(meld_heads_recipe *r) {
    memset(r, 0, sizeof *r);
    r->hidden = 64; r->epochs = 60; r->patience = 8; r->ngram_bits = 17; r->lr = 1e-3; r->dropout = 0.3; r->seed = 1;
}

#define MH_HEADS 4   /* emotion (t, a), sentiment (t, a), view.t, view.a */
#define MH_D (MMSPCL_NUM_EMOTIONS + MMSPCL_NUM_SENTIMENTS)

typedef struct mh_state {
    const meld_heads_recipe *r;
    const meld_csv *train, *dev;
    meld_progress_fn progress;
    void *user;
    mmspcl_error *err;
    mmspcl_classifier m;            /* the model fine-tuned on all of train */
    int have_m;
    float *tr_s, *dv_t, *dv_s;      /* train score view (out-of-fold), dev t and score view */
    meld_ngram ng;
    mmspcl_msve_model heads[MH_HEADS];
    int have_head[MH_HEADS], *pred;
    double f1[MH_HEADS], acc[MH_HEADS];
    meld_log log;
} mh_state;

static void mh_free(mh_state *S) {
    int k;
    if (S->have_m) mmspcl_classifier_free(&S->m);
    free(S->tr_s); free(S->dv_t); free(S->dv_s); free(S->pred);
    meld_ngram_free(&S->ng);
    for (k = 0; k < MH_HEADS; k++) if (S->have_head[k]) mmspcl_msve_model_free(&S->heads[k]);
    free(S->log.x);
}

/* the out-of-fold score view of every train row from the OOF files (each row exactly once) */
static mmspcl_status mh_oof(mh_state *S, const char *const *paths, int n_paths) {
    const int n = S->train->n_rows;
    unsigned char *seen = (unsigned char *)calloc((size_t)n + 1, 1);
    int f, i, missing = 0;
    mmspcl_status st = MMSPCL_OK;
    S->tr_s = (float *)malloc(sizeof(float) * ((size_t)n + 1) * MMSPCL_SCORES_DIM);
    if (!seen || !S->tr_s) { free(seen); return mmspcl_error_set(S->err, MMSPCL_ERR_NOMEM, "heads: out of memory"); }
    for (f = 0; f < n_paths && !st; f++) {
        mmspcl_weights *w = NULL;
        const mmspcl_tensor *rt, *sc;
        int64_t tr = -1;
        if ((st = mmspcl_weights_read(&w, paths[f], S->err))) break;
        rt = mmspcl_weights_find(w, "oof.rows");
        sc = mmspcl_weights_find(w, "oof.scores");
        if (!mmspcl_weights_get_int(w, "oof.train_rows", &tr) || !rt || !sc || rt->dtype != MMSPCL_I32 || rt->ndim != 1 ||
            sc->dtype != MMSPCL_F32 || sc->ndim != 2 || sc->ne[0] != rt->ne[0] || sc->ne[1] != MMSPCL_SCORES_DIM)
            st = mmspcl_error_set(S->err, MMSPCL_ERR_FORMAT, "heads: %s is not an out-of-fold file (mmspcl train --init ... --folds K --fold F)",
                                  paths[f]);
        else if (tr != n)
            st = mmspcl_error_set(S->err, MMSPCL_ERR_ARG, "heads: %s was made on %lld training rows, this run has %d (the same --limit?)",
                                  paths[f], (long long)tr, n);
        for (i = 0; !st && i < (int)rt->ne[0]; i++) {
            const int32_t r = ((const int32_t *)rt->data)[i];
            if (r < 0 || r >= n || seen[r]) {
                st = mmspcl_error_set(S->err, MMSPCL_ERR_FORMAT, "heads: %s: row %d is %s", paths[f], (int)r,
                                      r < 0 || r >= n ? "outside the training split" : "in two out-of-fold files");
                break;
            }
            seen[r] = 1;
            memcpy(S->tr_s + (size_t)r * MMSPCL_SCORES_DIM, (const float *)sc->data + (size_t)i * MMSPCL_SCORES_DIM,
                   sizeof(float) * MMSPCL_SCORES_DIM);
        }
        mmspcl_weights_free(w);
    }
    for (i = 0; !st && i < n; i++) missing += !seen[i];
    free(seen);
    if (!st && missing)
        st = mmspcl_error_set(S->err, MMSPCL_ERR_ARG, "heads: %d of %d training rows are in no out-of-fold file: give the files of all K folds",
                              missing, n);
    if (!st) meld_msg(S->progress, S->user, "oof", "out-of-fold score views of %d training rows from %d files", n, n_paths);
    return st;
}

/* dev: t of the model, its score view; the protos and linear heads' dev scores */
static mmspcl_status mh_dev(mh_state *S) {
    const meld_csv *dv = S->dev;
    const int H = S->m.hidden, nd = dv->n_rows;
    mmspcl_turn *turns = (mmspcl_turn *)malloc(sizeof(mmspcl_turn) * (size_t)(nd + 1));
    float *p = (float *)malloc(sizeof(float) * (size_t)(nd + 1) * MMSPCL_NUM_EMOTIONS);
    int *y = (int *)malloc(sizeof(int) * (size_t)(nd + 1)), d, i, k, c;
    static const char *const hn[3] = {"protos", "linear", "linear"};
    static const int hid[3] = {5, 20, 21};
    mmspcl_status st = MMSPCL_OK;
    S->dv_t = (float *)malloc(sizeof(float) * (size_t)(nd + 1) * H);
    S->dv_s = (float *)malloc(sizeof(float) * (size_t)(nd + 1) * MMSPCL_SCORES_DIM);
    S->pred = (int *)malloc(sizeof(int) * (size_t)(nd + 1));
    if (!turns || !p || !y || !S->dv_t || !S->dv_s || !S->pred) { st = mmspcl_error_set(S->err, MMSPCL_ERR_NOMEM, "heads: out of memory"); goto done; }
    for (i = 0; i < nd; i++) { turns[i].speaker = dv->rows[i].speaker; turns[i].text = dv->rows[i].utterance; }
    for (d = 0; d < dv->n_dialogues && !st; d++) {
        const int a = dv->dialogue_start[d];
        st = mmspcl_classifier_features(&S->m, turns + a, dv->dialogue_start[d + 1] - a, S->dv_t + (size_t)a * H, NULL, NULL, S->err);
    }
    if (!st) st = mmspcl_classifier_scores(&S->m, S->dv_t, nd, S->dv_s, S->err);
    for (k = 0; k < 3 && !st; k++) {   /* protos (emotion), linear emotion, linear sentiment */
        const int C = k == 2 ? MMSPCL_NUM_SENTIMENTS : MMSPCL_NUM_EMOTIONS;
        double f1, acc;
        if ((st = mmspcl_classifier_heads(&S->m, S->dv_t, NULL, NULL, nd, k < 2 ? hn[k] : NULL, k == 2 ? hn[k] : NULL, k < 2 ? p : NULL,
                                          k == 2 ? p : NULL, S->err)))
            break;
        for (i = 0; i < nd; i++) {
            int best = 0;
            for (c = 1; c < C; c++) if (p[(size_t)i * C + c] > p[(size_t)i * C + best]) best = c;
            S->pred[i] = best;
            y[i] = k == 2 ? dv->rows[i].sentiment : dv->rows[i].emotion;
        }
        f1 = meld_weighted_f1(y, S->pred, nd, C, &acc);
        meld_log_add(&S->log, hid[k], f1, acc);
        meld_msg(S->progress, S->user, "dev", "%s %s head of the model: dev weighted F1 %.4f accuracy %.4f", k == 2 ? "sentiment" : "emotion",
                 hn[k], f1, acc);
    }
done:
    free(turns); free(p); free(y);
    return st;
}

/* head k on the train rows (out-of-fold views), early stopping on dev */
static mmspcl_status mh_train_head(mh_state *S, int k) {
    static const char *const name[MH_HEADS] = {"emotion MSVE (t, a)", "sentiment MSVE (t, a)", "view t", "view a"};
    const meld_heads_recipe *r = S->r;
    const int C = k == 1 ? MMSPCL_NUM_SENTIMENTS : MMSPCL_NUM_EMOTIONS, n = S->train->n_rows, nd = S->dev->n_rows;
    int *ytr = (int *)malloc(sizeof(int) * (size_t)(n + 1)), *ydv = (int *)malloc(sizeof(int) * (size_t)(nd + 1)), i;
    mmspcl_dataset trs, dvs;
    mmspcl_msve_cfg mc;
    mmspcl_msve_train_cfg tc;
    mmspcl_train_report rep;
    mmspcl_status st;
    if (!ytr || !ydv) { free(ytr); free(ydv); return mmspcl_error_set(S->err, MMSPCL_ERR_NOMEM, "heads: out of memory"); }
    for (i = 0; i < n; i++) ytr[i] = k == 1 ? S->train->rows[i].sentiment : S->train->rows[i].emotion;
    for (i = 0; i < nd; i++) ydv[i] = k == 1 ? S->dev->rows[i].sentiment : S->dev->rows[i].emotion;
    memset(&trs, 0, sizeof trs); memset(&dvs, 0, sizeof dvs);
    trs.x[0] = S->tr_s; trs.x[1] = S->ng.train_lp; trs.y = ytr; trs.n = n;
    dvs.x[0] = S->dv_s; dvs.x[1] = S->ng.dev_lp; dvs.y = ydv; dvs.n = nd;
    memset(&mc, 0, sizeof mc);
    mc.n_classes = C; mc.hidden = r->hidden; mc.act = MMSPCL_ACT_GELU; mc.dropout = r->dropout;
    mc.dims[0] = k == 3 ? 0 : MMSPCL_SCORES_DIM;
    mc.dims[1] = k == 2 ? 0 : MH_D;
    mmspcl_msve_train_defaults(&tc);
    tc.epochs = r->epochs; tc.patience = r->patience; tc.lr = r->lr; tc.seed = r->seed + 11 + (uint64_t)k; tc.standardize = 1;
    if (!(st = mmspcl_msve_model_create(&S->heads[k], &mc, r->seed + 100 + (uint64_t)k, S->err))) {
        S->have_head[k] = 1;
        st = mmspcl_msve_train(&S->heads[k], &trs, &dvs, &tc, &rep, NULL, NULL, S->err);
    }
    if (!st) st = mmspcl_msve_model_predict(&S->heads[k], dvs.x, nd, 0, S->pred, NULL, S->err);
    if (!st) {
        S->f1[k] = meld_weighted_f1(ydv, S->pred, nd, C, &S->acc[k]);
        meld_log_add(&S->log, k, S->f1[k], S->acc[k]);
        meld_msg(S->progress, S->user, "msve", "%s head: dev weighted F1 %.4f accuracy %.4f (epoch %d of %d run)", name[k], S->f1[k],
                 S->acc[k], rep.best_epoch + 1, rep.epochs_run);
    }
    free(ytr); free(ydv);
    return st;
}

/* the log's dev F1 of head id (-1: absent) */
static double mh_logged(const mh_state *S, int id) {
    int i;
    for (i = 0; i < S->log.n; i++) if ((int)S->log.x[i * 3] == id) return S->log.x[i * 3 + 1];
    return -1.0;
}

/* the model's keys and tensors but its heads, then ours; *.tmp and rename (mmspcl_writer_save) */
static mmspcl_status mh_write(mh_state *S, const char *out_path) {
    static const char *const prefix[MH_HEADS] = {"meld.emotion", "meld.sentiment", "meld.view.t", "meld.view.a"};
    static const char *const drop[] = {"meld.emotion.", "meld.sentiment.", "meld.view.", "meld.idf", "meld.lr.", "meld.log.heads",
                                       "meld.media."};
    const mmspcl_weights *w = S->m.w;
    const char *def_e = mh_logged(S, 0) > mh_logged(S, 5) ? "emotion" : "protos";
    const char *def_s = mh_logged(S, 1) > mh_logged(S, 21) ? "sentiment" : "linear";
    mmspcl_writer *wr = mmspcl_writer_create();
    float *hold[MH_HEADS] = {NULL, NULL, NULL, NULL};
    int64_t i;
    size_t j;
    int k;
    mmspcl_status st = MMSPCL_OK;
    if (!wr) return mmspcl_error_set(S->err, MMSPCL_ERR_NOMEM, "heads: out of memory");
    for (i = 0; i < w->n_kv && !st; i++) {   /* keys: all but ours and those of dropped parts */
        const char *key = w->kv[i].key;
        int skip = !strcmp(key, "meld.default_head") || !strcmp(key, "meld.default_sentiment_head") || !strcmp(key, "meld.view_t") ||
                   !strcmp(key, "meld.ngram_bits") || !strcmp(key, "meld.media.audio");
        for (j = 0; j < sizeof drop / sizeof drop[0]; j++) skip |= !strncmp(key, drop[j], strlen(drop[j]));
        if (skip) continue;
        if (w->kv[i].type == MMSPCL_KV_INT) st = mmspcl_writer_set_int(wr, key, w->kv[i].i);
        else if (w->kv[i].type == MMSPCL_KV_FLOAT) st = mmspcl_writer_set_float(wr, key, w->kv[i].f);
        else if (w->kv[i].type == MMSPCL_KV_STR) st = mmspcl_writer_set_str(wr, key, w->kv[i].str);
        else st = mmspcl_writer_set_str_array(wr, key, w->kv[i].strs, w->kv[i].lens, w->kv[i].count);
        if (st) st = mmspcl_error_set(S->err, MMSPCL_ERR_NOMEM, "heads: out of memory");
    }
    for (i = 0; i < w->n_tensors && !st; i++) {
        const mmspcl_tensor *t = &w->tensors[i];
        int skip = 0;
        for (j = 0; j < sizeof drop / sizeof drop[0]; j++) skip |= !strncmp(t->name, drop[j], strlen(drop[j]));
        if (!skip) st = mmspcl_writer_add_tensor(wr, t->name, t->dtype, t->ndim, t->ne, t->data, t->nbytes, S->err);
    }
    if (!st && (mmspcl_writer_set_str(wr, "meld.view_t", "scores") || mmspcl_writer_set_str(wr, "meld.default_head", def_e) ||
                mmspcl_writer_set_str(wr, "meld.default_sentiment_head", def_s)))
        st = mmspcl_error_set(S->err, MMSPCL_ERR_NOMEM, "heads: out of memory");
    if (!st) st = meld_ngram_write(&S->ng, wr, S->err);
    for (k = 0; k < MH_HEADS && !st; k++) st = mmspcl_msve_model_write(&S->heads[k], wr, prefix[k], 0, &hold[k], S->err);
    if (!st) st = meld_log_write(&S->log, wr, "meld.log.heads", S->err);
    if (!st) st = mmspcl_writer_save(wr, out_path, NULL, NULL, S->err);
    mmspcl_writer_free(wr);
    for (k = 0; k < MH_HEADS; k++) free(hold[k]);
    if (!st) meld_msg(S->progress, S->user, "file", "model complete: default heads %s (emotion, chosen on dev) and %s (sentiment)", def_e, def_s);
    return st;
}

mmspcl_status meld_heads_build(const meld_heads_recipe *r, const char *model_path, const char *const *oof_paths, int n_oof,
                               const meld_csv *train, const meld_csv *dev, const char *out_path, meld_progress_fn progress,
                               void *user, mmspcl_error *err) {
    mh_state S;
    mmspcl_status st;
    int k;
    memset(&S, 0, sizeof S);
    S.r = r; S.train = train; S.dev = dev; S.progress = progress; S.user = user; S.err = err;
    if (train->n_rows < 2 || dev->n_rows < 1 || n_oof < 1)
        return mmspcl_error_set(err, MMSPCL_ERR_ARG, "heads: %d train rows, %d dev rows, %d out-of-fold files", train->n_rows, dev->n_rows, n_oof);
    if ((st = mmspcl_classifier_load(&S.m, model_path, err))) return st;
    S.have_m = 1;
    if (!S.m.protos || !S.m.lin_w[0] || !S.m.lin_w[1])
        st = mmspcl_error_set(err, MMSPCL_ERR_FORMAT, "heads: -m %s has no meld.protos or linear heads (a model of mmspcl train --init "
                              "with --sentiment 1 has them)", model_path);
    if (!st) st = mh_oof(&S, oof_paths, n_oof);
    if (!st) st = mh_dev(&S);
    if (!st) st = meld_ngram_fit(&S.ng, r->ngram_bits, r->seed, train, dev, progress, user, err);
    if (!st) {
        meld_log_add(&S.log, 10, S.ng.dev_f1[0], S.ng.dev_acc[0]);
        meld_log_add(&S.log, 11, S.ng.dev_f1[1], S.ng.dev_acc[1]);
    }
    for (k = 0; k < MH_HEADS && !st; k++) st = mh_train_head(&S, k);
    if (!st) st = mh_write(&S, out_path);
    mh_free(&S);
    return st;
}
