/* The ablation grid's data and trainers (ablate.h), and the one fusion training loop: both
   `mmspcl ablate` (abl_fusion_run) and examples/train_fusion.c (which includes this file) load
   and train through the functions here: generator seeds (seed for the weights, seed + 17 for
   batches and dropout), the batch loop, evaluation in chunks of 256, the best dev epoch's weights
   kept; tests/test_ablate.c compares the two programs' numbers. */
#include "tools/train/ablate.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const abl_mod[3] = {"t", "a", "v"};

/* ---- data ---------------------------------------------------------------------------------- */
/* one integer (split: a train / dev / val / test word or 0 / 1 / 2) per non-blank line */
static mmspcl_status abl_column(const char *path, int split, int **out, int *count, mmspcl_error *err) {
    unsigned char *buf = NULL;
    size_t size = 0;
    char *p, *line;
    int *v = NULL, n = 0, cap = 0, no = 0;
    mmspcl_status st;
    if ((st = mmspcl_read_file(path, (size_t)1 << 30, &buf, &size, err))) return st;
    for (line = (char *)buf; line && *line; line = p) {
        char *end;
        long x;
        p = strchr(line, '\n');
        if (p) *p++ = 0;
        no++;
        while (*line == ' ' || *line == '\t' || *line == '\r') line++;
        if (!*line) continue;
        end = line + strcspn(line, " \t\r");
        *end = 0;
        if (split && !strcmp(line, "train")) x = 0;
        else if (split && (!strcmp(line, "dev") || !strcmp(line, "val"))) x = 1;
        else if (split && !strcmp(line, "test")) x = 2;
        else {
            x = strtol(line, &end, 10);
            if (*end || x < 0 || x > (split ? 2 : MMSPCL_MAX_CLASSES - 1)) {   /* the message before buf is freed */
                mmspcl_error_set(err, MMSPCL_ERR_FORMAT, "%s: line %d '%.40s' is not a %s", path, no, line,
                                 split ? "split (train, dev, test)" : "class (0 to 63)");
                free(v); mmspcl_free(buf);
                return MMSPCL_ERR_FORMAT;
            }
        }
        if (n == cap) {
            int *q = (int *)realloc(v, sizeof(int) * (size_t)(cap = cap ? 2 * cap : 1024));
            if (!q) { free(v); mmspcl_free(buf); return mmspcl_error_set(err, MMSPCL_ERR_NOMEM, "%s: out of memory", path); }
            v = q;
        }
        v[n++] = (int)x;
    }
    mmspcl_free(buf);
    *out = v ? v : (int *)malloc(sizeof(int));
    *count = n;
    return *out ? MMSPCL_OK : mmspcl_error_set(err, MMSPCL_ERR_NOMEM, "%s: out of memory", path);
}

/* lengths of modality m (features from file fpath): the file lpath, else (NULL) up to the last
   step that is not all zeros; then the padding must be zeros */
static mmspcl_status abl_lengths(abl_data *d, int m, const char *fpath, const char *lpath, mmspcl_error *err) {
    int k, t, cnt;
    size_t i;
    mmspcl_status st;
    if (lpath) {
        if ((st = abl_column(lpath, 0, &d->lens[m], &cnt, err))) return st;
        if (cnt != d->n) return mmspcl_error_set(err, MMSPCL_ERR_FORMAT, "%s has %d lengths for %d rows", lpath, cnt, d->n);
    } else {
        if (!(d->lens[m] = (int *)malloc(sizeof(int) * (size_t)(d->n + 1)))) return mmspcl_error_set(err, MMSPCL_ERR_NOMEM, "out of memory");
        for (k = 0; k < d->n; k++) {
            int len = 1;
            for (t = 0; t < d->L[m]; t++)
                for (i = 0; i < (size_t)d->D[m]; i++)
                    if (d->x[m][((size_t)k * d->L[m] + t) * d->D[m] + i] != 0.0f) { len = t + 1; break; }
            d->lens[m][k] = len;
        }
    }
    for (k = 0; k < d->n; k++)   /* every length first, then the padding */
        if (d->lens[m][k] < 1 || d->lens[m][k] > d->L[m])
            return mmspcl_error_set(err, MMSPCL_ERR_FORMAT, "%s: line %d: length %d is outside 1..%d", lpath ? lpath : fpath, k + 1, d->lens[m][k], d->L[m]);
    for (k = 0; k < d->n; k++) {
        for (t = d->lens[m][k]; t < d->L[m]; t++)
            for (i = 0; i < (size_t)d->D[m]; i++)
                if (d->x[m][((size_t)k * d->L[m] + t) * d->D[m] + i] != 0.0f)
                    return mmspcl_error_set(err, MMSPCL_ERR_FORMAT, "%s: row %d step %d is past its length %d but not zero (byte %zu)",
                                            fpath, k, t, d->lens[m][k], 4 * (((size_t)k * d->L[m] + t) * d->D[m] + i));
    }
    return MMSPCL_OK;
}

static mmspcl_status abl_modality(abl_data *d, int m, const char *path, const char *lpath, mmspcl_error *err) {
    unsigned char *buf = NULL;
    size_t size = 0, per = (size_t)d->L[m] * d->D[m], i;
    int rows;
    mmspcl_status st;
    if ((st = mmspcl_read_file(path, (size_t)1 << 36, &buf, &size, err))) return st;
    if (size % (4 * per) || size == 0) {
        mmspcl_free(buf);
        return mmspcl_error_set(err, MMSPCL_ERR_FORMAT, "%s: %zu bytes is not a whole number of rows of %d x %d float32", path, size, d->L[m], d->D[m]);
    }
    rows = (int)(size / (4 * per));
    if (d->n >= 0 && rows != d->n) {
        mmspcl_free(buf);
        return mmspcl_error_set(err, MMSPCL_ERR_FORMAT, "%s has %d rows, the other features %d", path, rows, d->n);
    }
    d->n = rows;
    if (!(d->x[m] = (float *)malloc(size))) { mmspcl_free(buf); return mmspcl_error_set(err, MMSPCL_ERR_NOMEM, "%s: out of memory", path); }
    for (i = 0; i < size / 4; i++) {
        const unsigned char *b = buf + 4 * i;
        const uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        memcpy(&d->x[m][i], &u, 4);
    }
    mmspcl_free(buf);
    return abl_lengths(d, m, path, lpath, err);
}

/* "dim.m N" of dir/extract.txt into D (L = 1); 0 when there is no manifest */
static mmspcl_status abl_manifest(const char *dir, int L[3], int D[3], mmspcl_error *err) {
    char path[4200];
    unsigned char *buf = NULL;
    size_t size;
    int m;
    FILE *f;
    snprintf(path, sizeof path, "%s/extract.txt", dir);
    if (!(f = fopen(path, "rb"))) return MMSPCL_OK;
    fclose(f);
    if (mmspcl_read_file(path, 1 << 20, &buf, &size, err)) return err->status;
    for (m = 0; m < 3; m++) {
        char key[16];
        const char *p;
        snprintf(key, sizeof key, "\ndim.%s ", abl_mod[m]);
        if (L[m] || D[m] || !(p = strstr((const char *)buf, key))) continue;
        D[m] = atoi(p + strlen(key));
        L[m] = D[m] > 0 ? 1 : 0;
    }
    mmspcl_free(buf);
    return MMSPCL_OK;
}

mmspcl_status abl_data_load_files(abl_data *d, const char *const path[3], const char *const lens_path[3], const int L[3],
                                  const int D[3], const char *labels, const char *split, mmspcl_error *err) {
    int m, i, k, present = 0;
    mmspcl_status st;
    memset(d, 0, sizeof *d);
    d->n = -1;
    for (m = 0; m < 3; m++) {
        if (!path[m]) continue;
        if (L[m] <= 0 || D[m] <= 0) return mmspcl_error_set(err, MMSPCL_ERR_ARG, "%s: length %d and width %d must be >= 1", path[m], L[m], D[m]);
        d->L[m] = L[m]; d->D[m] = D[m];
        if ((st = abl_modality(d, m, path[m], lens_path[m], err))) return st;
        present++;
    }
    if (!present) return mmspcl_error_set(err, MMSPCL_ERR_ARG, "no modality");
    if ((st = abl_column(labels, 0, &d->y, &k, err))) return st;
    if (k != d->n) return mmspcl_error_set(err, MMSPCL_ERR_FORMAT, "%s has %d labels for %d feature rows", labels, k, d->n);
    if ((st = abl_column(split, 1, &d->split, &k, err))) return st;
    if (k != d->n) return mmspcl_error_set(err, MMSPCL_ERR_FORMAT, "%s has %d entries for %d rows", split, k, d->n);
    for (i = 0; i < d->n; i++) { if (d->y[i] + 1 > d->C) d->C = d->y[i] + 1; d->count[d->split[i]]++; }
    if (d->C < 2) return mmspcl_error_set(err, MMSPCL_ERR_FORMAT, "%s: %d classes (2..%d)", labels, d->C, MMSPCL_MAX_CLASSES);
    if (d->count[0] < 2 || d->count[1] < 1 || d->count[2] < 1)
        return mmspcl_error_set(err, MMSPCL_ERR_FORMAT, "%s: every split needs rows (train %d, dev %d, test %d)", split, d->count[0], d->count[1], d->count[2]);
    return MMSPCL_OK;
}

mmspcl_status abl_data_load(abl_data *d, const char *dir, const int L[3], const int D[3], mmspcl_error *err) {
    char fp[3][4200], lp[3][4200], labels[4200], split[4200];
    const char *path[3] = {NULL, NULL, NULL}, *lens[3] = {NULL, NULL, NULL};
    int m, l[3], w[3];
    FILE *f;
    mmspcl_status st;
    memset(d, 0, sizeof *d);
    for (m = 0; m < 3; m++) { l[m] = L[m]; w[m] = D[m]; }
    if ((st = abl_manifest(dir, l, w, err))) return st;
    for (m = 0; m < 3; m++) {
        if (l[m] <= 0 || w[m] <= 0) continue;
        snprintf(fp[m], sizeof fp[m], "%s/%s.f32", dir, abl_mod[m]);
        snprintf(lp[m], sizeof lp[m], "%s/lens_%s.txt", dir, abl_mod[m]);
        path[m] = fp[m];
        if ((f = fopen(lp[m], "rb"))) { fclose(f); lens[m] = lp[m]; }
    }
    if (!path[0] && !path[1] && !path[2])
        return mmspcl_error_set(err, MMSPCL_ERR_ARG, "%s: no modality (give --len-t/--dim-t ... or a folder with extract.txt)", dir);
    snprintf(labels, sizeof labels, "%s/labels.txt", dir);
    snprintf(split, sizeof split, "%s/split.txt", dir);
    return abl_data_load_files(d, path, lens, l, w, labels, split, err);
}

void abl_data_free(abl_data *d) {
    int m;
    for (m = 0; m < 3; m++) { free(d->x[m]); free(d->lens[m]); }
    free(d->y); free(d->split);
    memset(d, 0, sizeof *d);
}

/* ---- fusion heads (examples/train_fusion and abl_fusion_run) ------------------------------- */
void abl_model_free(abl_model *M) {
    int m;
    mmspcl_mult_seq_train_free(&M->ms);
    mmspcl_fusion_free(&M->fu);
    mmspcl_xprune_train_free(&M->xp);
    mmspcl_params_free(&M->P);
    for (m = 0; m < 3; m++) { free(M->x[m]); free(M->tmp[m]); free(M->dtmp[m]); free(M->seq[m]); free(M->dseq[m]); free(M->lens[m]); }
    free(M->logits);
}

mmspcl_status abl_model_create(abl_model *M, const abl_data *d, const abl_fusion_cfg *o, mmspcl_error *err) {
    mmspcl_rng r;
    int m, B = o->batch > 256 ? o->batch : 256;
    mmspcl_status st;
    memset(M, 0, sizeof *M);
    M->kind = o->kind;
    mmspcl_params_init(&M->P);
    mmspcl_rng_seed(&r, o->seed);
    if (o->kind == ABL_MULT) {
        mmspcl_mult_seq_cfg c;
        memset(&c, 0, sizeof c);
        for (m = 0; m < 3; m++) c.dims[m] = d->D[m];
        c.d = o->d; c.n_heads = o->heads; c.n_layers = o->layers; c.n_mem_layers = o->mem_layers;
        c.out_dim = d->C; c.pool = o->pool;
        if ((st = mmspcl_mult_seq_train_create(&M->ms, &M->P, "fusion", &c, o->dropout, 0.0, &r, err))) return st;
    } else {
        mmspcl_fusion_cfg c;
        mmspcl_fusion_defaults(&c, o->kind == ABL_BOTTLENECK ? MMSPCL_FUSION_MBT : MMSPCL_FUSION_LINEAR);
        c.out_dim = d->C;
        for (m = 0; m < 3; m++) {
            c.dims[m] = o->kind == ABL_BOTTLENECK ? d->L[m] * d->D[m] : d->D[m];
            c.seq[m] = o->kind == ABL_BOTTLENECK && d->D[m] ? d->L[m] : 0;
        }
        if (o->kind == ABL_BOTTLENECK) {
            c.d_model = o->d; c.n_heads = o->heads; c.n_layers = o->layers; c.fusion_start = o->fusion_start;
            c.n_fusion = o->fusion_tokens; c.dropout = o->dropout; c.bottleneck = o->bottleneck; c.readout = o->readout;
        }
        if (o->kind == ABL_PRUNE) {   /* the pruning layer first (its parameters and draws), as train_fusion */
            mmspcl_xprune_cfg pc;
            if (!d->D[0] || (o->prune_proj ? o->prune_proj : d->D[0]) % o->prune_k)
                return mmspcl_error_set(err, MMSPCL_ERR_ARG, "prune: t (the base) must be present with a width (after --prune-proj) that is a multiple of --prune-k %d", o->prune_k);
            memset(&pc, 0, sizeof pc);
            for (m = 0; m < 3; m++) pc.dims[m] = d->D[m];
            pc.base = 0; pc.mods = o->prune_mods; pc.K = o->prune_k; pc.proj_dim = o->prune_proj; pc.joint = o->prune_joint;
            pc.rule = o->prune_tau == o->prune_tau ? MMSPCL_PRUNE_THRESHOLD : MMSPCL_PRUNE_ARGMAX;
            pc.tau = o->prune_tau;
            if ((st = mmspcl_xprune_train_create(&M->xp, &M->P, "prune", &pc, &r, err))) return st;
            for (m = 0; m < 3; m++) c.dims[m] = M->xp.lay.width[m];
        }
        if ((st = mmspcl_fusion_create(&M->fu, &M->P, "fusion", &c, &r, err))) return st;
    }
    for (m = 0; m < 3; m++) {
        const size_t w = (size_t)(o->kind == ABL_LINEAR ? 1 : d->L[m]) * d->D[m];
        const size_t wp = (size_t)(o->kind == ABL_PRUNE ? M->xp.lay.width[m] : 1);
        M->lens[m] = (int *)malloc(sizeof(int) * 1024);
        if (!M->lens[m]) return mmspcl_error_set(err, MMSPCL_ERR_NOMEM, "out of memory");
        if (!d->D[m]) continue;
        M->x[m] = (double *)malloc(sizeof(double) * (size_t)B * w);
        M->tmp[m] = (double *)malloc(sizeof(double) * (size_t)B * wp);
        M->dtmp[m] = (double *)malloc(sizeof(double) * (size_t)B * wp);
        if (!M->x[m] || !M->tmp[m] || !M->dtmp[m]) return mmspcl_error_set(err, MMSPCL_ERR_NOMEM, "out of memory");
        if (o->kind != ABL_PRUNE) continue;
        M->seq[m] = (double *)malloc(sizeof(double) * (size_t)B * d->L[m] * wp);
        M->dseq[m] = (double *)malloc(sizeof(double) * (size_t)B * d->L[m] * wp);
        if (!M->seq[m] || !M->dseq[m]) return mmspcl_error_set(err, MMSPCL_ERR_NOMEM, "out of memory");
    }
    M->logits = (double *)malloc(sizeof(double) * (size_t)B * d->C);
    if (!M->logits) return mmspcl_error_set(err, MMSPCL_ERR_NOMEM, "out of memory");
    return MMSPCL_OK;
}

/* prune: the pruned sequences M->seq mean-pooled over each sample's real steps into M->tmp */
static void abl_prune_pool(abl_model *M, const abl_data *d, int nb) {
    int m, i, t, k;
    for (m = 0; m < 3; m++) {
        const int W = M->xp.lay.width[m];
        if (!d->D[m]) continue;
        for (i = 0; i < nb; i++)
            for (k = 0; k < W; k++) {
                double s = 0;
                for (t = 0; t < M->lens[m][i]; t++) s += M->seq[m][((size_t)i * d->L[m] + t) * W + k];
                M->tmp[m][(size_t)i * W + k] = s / M->lens[m][i];
            }
    }
}

/* rows idx[0..nb) as the model's inputs (sequences with their lengths, or means over real
   steps), then its forward */
static mmspcl_status abl_model_forward(abl_model *M, const abl_data *d, const int *idx, int nb, mmspcl_rng *rng, mmspcl_error *err) {
    int m, i, t, k;
    for (m = 0; m < 3; m++) {
        const size_t per = (size_t)d->L[m] * d->D[m];
        if (!d->D[m]) continue;
        for (i = 0; i < nb; i++) {
            const float *src = d->x[m] + (size_t)idx[i] * per;
            M->lens[m][i] = d->lens[m][idx[i]];
            if (M->kind != ABL_LINEAR) {
                for (k = 0; k < (int)per; k++) M->x[m][(size_t)i * per + k] = src[k];
                continue;
            }
            for (k = 0; k < d->D[m]; k++) {
                double s = 0;
                for (t = 0; t < M->lens[m][i]; t++) s += src[(size_t)t * d->D[m] + k];
                M->x[m][(size_t)i * d->D[m] + k] = s / M->lens[m][i];
            }
        }
    }
    if (M->kind == ABL_MULT)
        return mmspcl_mult_seq_train_forward(&M->ms, &M->P, (const double *const *)M->x, d->L, (const int *const *)M->lens, nb, M->logits, rng, err);
    if (M->kind == ABL_PRUNE) {
        /* step by step as mmspcl_xprune_forward_seq, then pooled as linear */
        mmspcl_status st = mmspcl_xprune_train_forward_seq(&M->xp, &M->P, (const double *const *)M->x, d->L, (const int *const *)M->lens,
                                                           nb, M->seq, err);
        if (st) return st;
        abl_prune_pool(M, d, nb);
        return mmspcl_fusion_forward(&M->fu, &M->P, (const double *const *)M->tmp, nb, M->logits, rng, err);
    }
    if (M->kind == ABL_BOTTLENECK)   /* every step a token, padded steps masked */
        return mmspcl_fusion_forward_seq(&M->fu, &M->P, (const double *const *)M->x, (const int *const *)M->lens, nb, M->logits, rng, err);
    return mmspcl_fusion_forward(&M->fu, &M->P, (const double *const *)M->x, nb, M->logits, rng, err);
}

static void abl_model_backward(abl_model *M, const abl_data *d, const double *dl, int nb) {
    int m, i, t, k;
    if (M->kind == ABL_MULT) mmspcl_mult_seq_train_backward(&M->ms, &M->P, (const double *const *)M->x, dl, NULL);
    else if (M->kind == ABL_PRUNE) {   /* the fusion's input gradients, then through the pruning layer */
        for (m = 0; m < 3; m++)
            if (M->dtmp[m]) memset(M->dtmp[m], 0, sizeof(double) * (size_t)nb * M->xp.lay.width[m]);
        mmspcl_fusion_backward(&M->fu, &M->P, (const double *const *)M->tmp, nb, dl, M->dtmp);
        for (m = 0; m < 3; m++) {   /* the mean over real steps: each real step gets 1/len of it */
            const int W = M->xp.lay.width[m];
            if (!d->D[m]) continue;
            for (i = 0; i < nb; i++)
                for (t = 0; t < d->L[m]; t++)
                    for (k = 0; k < W; k++)
                        M->dseq[m][((size_t)i * d->L[m] + t) * W + k] = t < M->lens[m][i] ? M->dtmp[m][(size_t)i * W + k] / M->lens[m][i] : 0.0;
        }
        mmspcl_xprune_train_backward_seq(&M->xp, &M->P, (const double *const *)M->x, d->L, (const int *const *)M->lens, nb,
                                         (const double *const *)M->dseq, NULL);
    } else mmspcl_fusion_backward(&M->fu, &M->P, (const double *const *)M->x, nb, dl, NULL);
}

/* weighted F1 and accuracy of split s, evaluation mode, chunks of 256 */
mmspcl_status abl_fusion_evaluate(abl_model *M, const abl_data *d, int s, double *f1, double *acc, mmspcl_error *err) {
    int *idx = (int *)malloc(sizeof(int) * (size_t)(d->n + 1)), *yt = (int *)malloc(sizeof(int) * (size_t)(d->n + 1));
    int *yp = (int *)malloc(sizeof(int) * (size_t)(d->n + 1)), k = 0, i, j;
    int64_t *cm = (int64_t *)calloc((size_t)d->C * d->C, sizeof(int64_t));
    mmspcl_metrics mt;
    mmspcl_status st = MMSPCL_OK;
    if (!idx || !yt || !yp || !cm) st = mmspcl_error_set(err, MMSPCL_ERR_NOMEM, "out of memory");
    for (i = 0; !st && i < d->n; i++) if (d->split[i] == s) { idx[k] = i; yt[k++] = d->y[i]; }
    for (i = 0; !st && i < k; i += 256) {
        const int nb = k - i < 256 ? k - i : 256;
        st = abl_model_forward(M, d, idx + i, nb, NULL, err);
        for (j = 0; !st && j < nb; j++) {
            const double *z = M->logits + (size_t)j * d->C;
            int c, best = 0;
            for (c = 1; c < d->C; c++) if (z[c] > z[best]) best = c;
            yp[i + j] = best;
        }
    }
    if (!st) {
        mmspcl_confusion(yt, yp, k, d->C, cm);
        mmspcl_metrics_from_confusion(cm, d->C, NULL, &mt);
        *f1 = mt.weighted_f1; *acc = mt.accuracy;
    }
    free(idx); free(yt); free(yp); free(cm);
    return st;
}

/* epochs of shuffled batches (the last may be short); the best dev epoch's weights kept */
mmspcl_status abl_fusion_train(abl_model *M, const abl_data *d, const abl_fusion_cfg *o, abl_result *res, abl_epoch_fn fn,
                               void *user, mmspcl_error *err) {
    mmspcl_adamw_cfg ac;
    mmspcl_rng r;
    int *tr = (int *)malloc(sizeof(int) * (size_t)(d->n + 1)), ntr = 0, i, e, since = 0;
    double *best = (double *)malloc(sizeof(double) * (M->P.n + 1)), *dl = (double *)malloc(sizeof(double) * (size_t)o->batch * d->C);
    double best_f1 = -1;
    mmspcl_status st = MMSPCL_OK;
    if (!tr || !best || !dl) st = mmspcl_error_set(err, MMSPCL_ERR_NOMEM, "out of memory");
    mmspcl_adamw_defaults(&ac);
    ac.weight_decay = o->wd;
    mmspcl_rng_seed(&r, o->seed + 17);
    for (i = 0; !st && i < d->n; i++) if (d->split[i] == 0) tr[ntr++] = i;
    for (e = 0; !st && e < o->epochs; e++) {
        double loss = 0, f1 = 0, acc = 0;
        int steps = 0;
        mmspcl_rng_shuffle(&r, tr, ntr);
        for (i = 0; !st && i + 1 < ntr; i += o->batch) {
            const int nb = ntr - i < o->batch ? ntr - i : o->batch;
            int yb[1024], k;
            for (k = 0; k < nb; k++) yb[k] = d->y[tr[i + k]];
            if ((st = abl_model_forward(M, d, tr + i, nb, &r, err))) break;
            loss += mmspcl_ce_loss(M->logits, yb, nb, d->C, NULL, dl);
            mmspcl_params_zero_grad(&M->P);
            abl_model_backward(M, d, dl, nb);
            mmspcl_grad_clip(&M->P, o->clip);
            mmspcl_adamw_step(&M->P, &ac, o->lr);
            steps++;
        }
        if (st || (st = abl_fusion_evaluate(M, d, 1, &f1, &acc, err))) break;
        res->epochs_run = e + 1;
        if (fn) fn(user, e + 1, loss / (steps ? steps : 1), f1, acc);
        if (f1 > best_f1) { best_f1 = f1; res->best_epoch = e + 1; since = 0; memcpy(best, M->P.w, sizeof(double) * M->P.n); }
        else if (o->patience > 0 && ++since >= o->patience) break;
    }
    if (!st) memcpy(M->P.w, best, sizeof(double) * M->P.n);
    res->dev_f1 = best_f1;
    free(tr); free(best); free(dl);
    return st;
}

void abl_fusion_defaults(abl_fusion_cfg *o) {   /* examples/train_fusion's defaults */
    memset(o, 0, sizeof *o);
    o->kind = ABL_MULT; o->mods = MMSPCL_MOD_T | MMSPCL_MOD_A | MMSPCL_MOD_V;
    o->epochs = 40; o->batch = 32; o->patience = 0; o->d = 16; o->heads = 2; o->layers = 2; o->mem_layers = 1;
    o->pool = MMSPCL_POOL_LAST; o->prune_k = 4; o->fusion_tokens = 4; o->fusion_start = 1; o->bottleneck = MMSPCL_BOTTLENECK_MODALITY;
    o->lr = 3e-3; o->wd = 0.01; o->clip = 0.8; o->dropout = 0.1; o->seed = 1; o->prune_tau = NAN;
    o->prune_mods = 0; o->prune_joint = 0; o->prune_proj = 0;
}

mmspcl_status abl_fusion_run(const abl_data *d, const abl_fusion_cfg *c, abl_result *r, abl_epoch_fn fn, void *user,
                             mmspcl_error *err) {
    abl_data v = *d;   /* a view without the modalities left out */
    abl_model M;
    double acc = 0;
    int m, present = 0;
    mmspcl_status st;
    memset(r, 0, sizeof *r);
    for (m = 0; m < 3; m++) {
        if (!(c->mods & (1u << m)) || !d->D[m]) { v.x[m] = NULL; v.lens[m] = NULL; v.L[m] = v.D[m] = 0; continue; }
        present++;
    }
    if (present < 2) return mmspcl_error_set(err, MMSPCL_ERR_ARG, "fusion: needs two or three of the present modalities");
    if (c->epochs < 1 || c->batch < 1 || c->batch > 1024 || !(c->lr > 0) || c->prune_k < 1)
        return mmspcl_error_set(err, MMSPCL_ERR_ARG, "fusion: epochs >= 1, 1 <= batch <= 1024, lr > 0, K >= 1");
    st = abl_model_create(&M, &v, c, err);
    r->params = M.P.n;
    if (!st) st = abl_fusion_train(&M, &v, c, r, fn, user, err);
    if (!st) st = abl_fusion_evaluate(&M, &v, 2, &r->test_f1, &acc, err);
    r->test_acc = acc;
    abl_model_free(&M);
    return st;
}

/* ---- MSVE on the pooled modalities ---------------------------------------------------------- */
/* rows of split s, each modality the mean over its real steps */
static mmspcl_status abl_pooled(const abl_data *d, const int dims[3], int s, mmspcl_dataset *out, float *hold[3], int **y,
                                mmspcl_error *err) {
    int m, i, k = 0, t, j;
    *y = (int *)malloc(sizeof(int) * (size_t)(d->count[s] + 1));
    for (m = 0; m < 3; m++) hold[m] = dims[m] ? (float *)malloc(sizeof(float) * (size_t)(d->count[s] + 1) * dims[m]) : NULL;
    if (!*y || (dims[0] && !hold[0]) || (dims[1] && !hold[1]) || (dims[2] && !hold[2])) return mmspcl_error_set(err, MMSPCL_ERR_NOMEM, "out of memory");
    for (i = 0; i < d->n; i++) {
        if (d->split[i] != s) continue;
        for (m = 0; m < 3; m++) {
            const float *src = d->x[m] + (size_t)i * d->L[m] * d->D[m];
            if (!dims[m]) continue;
            for (j = 0; j < d->D[m]; j++) {
                double sum = 0;
                for (t = 0; t < d->lens[m][i]; t++) sum += src[(size_t)t * d->D[m] + j];
                hold[m][(size_t)k * d->D[m] + j] = (float)(sum / d->lens[m][i]);
            }
        }
        (*y)[k++] = d->y[i];
    }
    for (m = 0; m < 3; m++) out->x[m] = hold[m];
    out->y = *y;
    out->n = k;
    return MMSPCL_OK;
}

mmspcl_status abl_msve_run(const abl_data *d, const mmspcl_msve_cfg *cfg, const mmspcl_msve_train_cfg *tc, abl_result *r,
                           mmspcl_error *err) {
    mmspcl_msve_cfg c = *cfg;
    mmspcl_msve_model M;
    mmspcl_train_report rep;
    mmspcl_dataset ds[3];
    float *hold[3][3];
    int *y[3] = {NULL, NULL, NULL}, *pred = NULL, m, s;
    int64_t *cm = NULL;
    mmspcl_metrics mt;
    mmspcl_status st = MMSPCL_OK;
    memset(r, 0, sizeof *r);
    memset(hold, 0, sizeof hold);
    memset(&M, 0, sizeof M);
    c.n_classes = d->C;
    for (m = 0; m < 3; m++) c.dims[m] = cfg->dims[m] ? d->D[m] : 0;
    for (s = 0; s < 3 && !st; s++) st = abl_pooled(d, c.dims, s, &ds[s], hold[s], &y[s], err);
    if (!st && (st = mmspcl_msve_model_create(&M, &c, tc->seed, err))) memset(&M, 0, sizeof M);
    if (!st) { r->params = M.P.n; st = mmspcl_msve_train(&M, &ds[0], &ds[1], tc, &rep, NULL, NULL, err); }
    if (!st) {
        pred = (int *)malloc(sizeof(int) * (size_t)(ds[2].n + 1));
        cm = (int64_t *)calloc((size_t)d->C * d->C, sizeof(int64_t));
        if (!pred || !cm) st = mmspcl_error_set(err, MMSPCL_ERR_NOMEM, "out of memory");
    }
    if (!st) st = mmspcl_msve_model_predict(&M, ds[2].x, ds[2].n, 0, pred, NULL, err);
    if (!st) {
        mmspcl_confusion(ds[2].y, pred, ds[2].n, d->C, cm);
        mmspcl_metrics_from_confusion(cm, d->C, NULL, &mt);
        r->test_f1 = mt.weighted_f1; r->test_acc = mt.accuracy;
        r->dev_f1 = rep.best_val_f1; r->best_epoch = rep.best_epoch + 1; r->epochs_run = rep.epochs_run;
    }
    mmspcl_msve_model_free(&M);
    for (s = 0; s < 3; s++) { free(y[s]); for (m = 0; m < 3; m++) free(hold[s][m]); }
    free(pred); free(cm);
    return st;
}
