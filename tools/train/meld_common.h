/* tools/train/meld_common.h - pieces the MELD recipes share (tools/train/meld_recipe.c, the
   from-scratch recipe; tools/train/spcl_finetune.c, SPCL fine-tuning of a converted RoBERTa):
   the SPCL prompts of a split, the embedding of prompts by a trainer, nearest class mean,
   weighted F1, the training log kept in the model file, progress messages.

   STB style: declarations here; the code in the file that defines MELD_COMMON_IMPLEMENTATION
   before including this header (tools/train/meld_recipe.c, so every program that links the
   MELD recipe has it). */
#ifndef MELD_COMMON_H
#define MELD_COMMON_H
#include "mmspcl.h"
#include "mmspcl_train.h"
#include "tools/train/meld_csv.h"

/* stage "mlm" / "spcl" / "embed" / "msve"...; done of total steps in the stage; msg: a line
   summarising an epoch (NULL during an epoch) */
typedef void (*meld_progress_fn)(void *user, const char *stage, int done, int total, const char *msg);

/* SPCL prompts (mmspcl_spcl_prompts) of every row of a split */
typedef struct meld_prompts {
    int n, max_len;
    int32_t *ids;     /* [n][max_len] */
    int *len, *mask, *emo, *sent;
    int *first;       /* [n] the first context turn of each prompt, within its dialogue (l) */
} meld_prompts;
void meld_prompts_free(meld_prompts *d);
mmspcl_status meld_prompts_build(meld_prompts *d, const meld_csv *s, const mmspcl_bpe *tok, int max_len, mmspcl_error *err);
/* rows[0..n) of src as a new set; 0, or -1 when out of memory */
int meld_prompts_subset(meld_prompts *d, const meld_prompts *src, const int *rows, int n);

/* t (hidden state at <mask>) and v (mean over the prompt) of rows idx[0..n) (idx NULL: 0..n-1)
   of d, in batches of B prompts (the trainer's forward as it is set: evaluation unless
   m->train_mode); t or v may be NULL. */
mmspcl_status meld_embed(mmspcl_roberta_train *m, const meld_prompts *d, const int *idx, int n, int B, float *t, float *v,
                         meld_progress_fn progress, void *user, const char *stage, mmspcl_error *err);
/* pred[i]: the class whose mean is nearest z_i by cosine (SPCL's G) */
void meld_nearest_mean(const float *z, int n, int H, const double *means, int C, int *pred);
/* weighted F1 (scikit-learn's average='weighted'); *acc (may be NULL) the accuracy */
double meld_weighted_f1(const int *y, const int *p, int n, int C, double *acc);

/* rows of 3 floats (the recipes' logs: epoch, loss, dev F1 and the like) */
typedef struct meld_log { float *x; int n, cap, w; } meld_log;
void meld_log_add(meld_log *l, double a, double b, double c);
mmspcl_status meld_log_write(const meld_log *l, mmspcl_writer *wr, const char *name, mmspcl_error *err);
void meld_log_read(meld_log *l, const mmspcl_weights *w, const char *name);
/* a message line to progress (nothing when progress is NULL) */
void meld_msg(meld_progress_fn progress, void *user, const char *stage, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
#endif /* MELD_COMMON_H */

#ifdef MELD_COMMON_IMPLEMENTATION
#ifndef MELD_COMMON_IMPLEMENTATION_DONE
#define MELD_COMMON_IMPLEMENTATION_DONE
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void meld_prompts_free(meld_prompts *d) {
    free(d->ids); free(d->len); free(d->mask); free(d->emo); free(d->sent); free(d->first);
    memset(d, 0, sizeof *d);
}

mmspcl_status meld_prompts_build(meld_prompts *d, const meld_csv *s, const mmspcl_bpe *tok, int max_len,
                                      mmspcl_error *err) {
    int di, i;
    mmspcl_turn *turns;
    mmspcl_status st = MMSPCL_OK;
    memset(d, 0, sizeof *d);
    d->n = s->n_rows;
    d->max_len = max_len;
    d->ids = (int32_t *)malloc(sizeof(int32_t) * (size_t)s->n_rows * max_len);
    d->len = (int *)malloc(sizeof(int) * (size_t)s->n_rows);
    d->mask = (int *)malloc(sizeof(int) * (size_t)s->n_rows);
    d->emo = (int *)malloc(sizeof(int) * (size_t)s->n_rows);
    d->sent = (int *)malloc(sizeof(int) * (size_t)s->n_rows);
    d->first = (int *)malloc(sizeof(int) * (size_t)s->n_rows);
    turns = (mmspcl_turn *)malloc(sizeof(mmspcl_turn) * (size_t)(s->n_rows + 1));
    if (!d->ids || !d->len || !d->mask || !d->emo || !d->sent || !d->first || !turns) {
        free(turns);
        meld_prompts_free(d);
        return mmspcl_error_set(err, MMSPCL_ERR_NOMEM, "meld: out of memory");
    }
    for (i = 0; i < s->n_rows; i++) {
        turns[i].speaker = s->rows[i].speaker;
        turns[i].text = s->rows[i].utterance;
        d->emo[i] = s->rows[i].emotion;
        d->sent[i] = s->rows[i].sentiment;
    }
    for (di = 0; di < s->n_dialogues && !st; di++) {
        const int a = s->dialogue_start[di], b = s->dialogue_start[di + 1];
        st = mmspcl_spcl_prompts_query(tok, turns + a, b - a, NULL, max_len, d->ids + (size_t)a * max_len, d->len + a,
                                       d->mask + a, d->first + a, err);
    }
    free(turns);
    if (st) meld_prompts_free(d);
    return st;
}

/* rows[0..n) of src as a new set */
int meld_prompts_subset(meld_prompts *d, const meld_prompts *src, const int *rows, int n) {
    int i;
    memset(d, 0, sizeof *d);
    d->n = n;
    d->max_len = src->max_len;
    d->ids = (int32_t *)malloc(sizeof(int32_t) * (size_t)(n + 1) * src->max_len);
    d->len = (int *)malloc(sizeof(int) * (size_t)(n + 1));
    d->mask = (int *)malloc(sizeof(int) * (size_t)(n + 1));
    d->emo = (int *)malloc(sizeof(int) * (size_t)(n + 1));
    d->sent = (int *)malloc(sizeof(int) * (size_t)(n + 1));
    d->first = (int *)malloc(sizeof(int) * (size_t)(n + 1));
    if (!d->ids || !d->len || !d->mask || !d->emo || !d->sent || !d->first) { meld_prompts_free(d); return -1; }
    for (i = 0; i < n; i++) {
        const int r = rows[i];
        memcpy(d->ids + (size_t)i * src->max_len, src->ids + (size_t)r * src->max_len, sizeof(int32_t) * src->max_len);
        d->len[i] = src->len[r]; d->mask[i] = src->mask[r]; d->emo[i] = src->emo[r]; d->sent[i] = src->sent[r];
        d->first[i] = src->first ? src->first[r] : 0;
    }
    return 0;
}

/* t (mask row) and v (mean over the prompt) of rows idx[0..n) */
mmspcl_status meld_embed(mmspcl_roberta_train *m, const meld_prompts *d, const int *idx, int n, int B, float *t,
                                      float *v, meld_progress_fn progress, void *user, const char *stage,
                                      mmspcl_error *err) {
    const int H = m->cfg.hidden_size;
    int32_t *ids = (int32_t *)malloc(sizeof(int32_t) * (size_t)B * d->max_len);
    int *lens = (int *)malloc(sizeof(int) * (size_t)B);
    int i, b, j, k;
    mmspcl_status st = MMSPCL_OK;
    if (!ids || !lens) { st = mmspcl_error_set(err, MMSPCL_ERR_NOMEM, "meld: out of memory"); goto done; }
    for (i = 0; i < n; i += B) {
        const int nb = n - i < B ? n - i : B;
        int start = 0;
        for (b = 0; b < nb; b++) {
            const int r = idx ? idx[i + b] : i + b;
            memcpy(ids + (size_t)b * d->max_len, d->ids + (size_t)r * d->max_len, sizeof(int32_t) * d->max_len);
            lens[b] = d->len[r];
        }
        if ((st = mmspcl_roberta_train_forward(m, ids, lens, nb, d->max_len, err))) goto done;
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
    free(ids);
    free(lens);
    return st;
}

/* nearest class mean by G (cosine) */
void meld_nearest_mean(const float *z, int n, int H, const double *means, int C, int *pred) {
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

double meld_weighted_f1(const int *y, const int *p, int n, int C, double *acc) {
    int64_t cm[MMSPCL_MAX_CLASSES * MMSPCL_MAX_CLASSES];
    mmspcl_metrics mt;
    mmspcl_confusion(y, p, n, C, cm);
    mmspcl_metrics_from_confusion(cm, C, NULL, &mt);
    if (acc) *acc = mt.accuracy;
    return mt.weighted_f1;
}

void meld_log_add(meld_log *l, double a, double b, double c) {
    if (l->n == l->cap) {
        int nc = l->cap ? 2 * l->cap : 64;
        float *p = (float *)realloc(l->x, sizeof(float) * (size_t)nc * 3);
        if (!p) return;
        l->x = p;
        l->cap = nc;
    }
    l->x[l->n * 3] = (float)a; l->x[l->n * 3 + 1] = (float)b; l->x[l->n * 3 + 2] = (float)c;
    l->n++;
}
mmspcl_status meld_log_write(const meld_log *l, mmspcl_writer *wr, const char *name, mmspcl_error *err) {
    int64_t sh[2];
    if (!l->n) return MMSPCL_OK;
    sh[0] = l->n; sh[1] = 3;
    return mmspcl_writer_add_tensor(wr, name, MMSPCL_F32, 2, sh, l->x, sizeof(float) * (size_t)l->n * 3, err);
}
void meld_log_read(meld_log *l, const mmspcl_weights *w, const char *name) {
    const mmspcl_tensor *t = mmspcl_weights_find(w, name);
    int64_t i;
    if (!t || t->dtype != MMSPCL_F32 || t->ndim != 2 || t->ne[1] != 3) return;
    for (i = 0; i < t->ne[0]; i++) {
        const float *r = (const float *)t->data + i * 3;
        meld_log_add(l, r[0], r[1], r[2]);
    }
}

void meld_msg(meld_progress_fn progress, void *user, const char *stage, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    if (!progress) return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    progress(user, stage, 0, 0, buf);
}
#endif /* MELD_COMMON_IMPLEMENTATION_DONE */
#endif /* MELD_COMMON_IMPLEMENTATION */
