/* train_fusion: train a fusion head over per-modality SEQUENCES and print the test split's
   weighted F1 of the epoch with the best dev weighted F1.

     build/examples/train_fusion --fusion mult --t t.f32 --len-t 16 --dim-t 8 [--lens-t lens_t.txt] \
                                 --a a.f32 --len-a 16 --dim-a 6 [--lens-a lens_a.txt] \
                                 --labels labels.txt --split split.txt [options]

   Feature files: float32 (little-endian) [n][L][D] per modality, rows in label order, zero-padded
   past each row's length; a lengths file has one length (1..L) per line (without one, a row ends
   after its last step that is not all zeros). A single vector per utterance is --len-x 1. Labels: one class per line; split: one
   of train / dev / test (or 0 / 1 / 2) per line, the formats of train_msve. At least two
   modalities.
   Fusions (docs/FUSION.md):
     mult        MulT as its code does it over the sequences (mmspcl_mult_seq, mmspcl.h 12.9)
     linear      each sequence mean-pooled over its real steps, concatenated, one Linear (fusion a)
     prune       pooled as linear; cross-modal pruning against t (mmspcl_xprune_train; heads of
                 --prune-k): the modalities of --prune-mods (default every other one: a and v
                 both, Table 4's {tav}); the arg-max rule (--prune-pool separate: every t head
                 zeroes its best head in each pruning modality; joint: its best head among all
                 of them) or with --prune-threshold T every head with a cosine >= T; with
                 --prune-proj D every modality first through its own Linear to D (the common
                 projection of the paper's section 8.3, trained with the rest); then the Linear
     bottleneck  MBT (mmspcl_fusion MBT): every step a token, learned positions; padded steps are
                 tokens too (no mask in that head); --bottleneck per-modality (scenic's MBT: one
                 token set shared by all modalities) or per-pair (the paper's equations 8-9: one
                 set per pair of modalities)
   Training: AdamW, cross-entropy, gradient clipping, dev weighted F1 after every epoch, the best
   epoch's weights kept, early stop after --patience epochs without a better dev F1 (default off:
   MulT can sit at chance for 5-15 epochs before it finds an alignment). */
#include "mmspcl.h"
#include "mmspcl_train.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { F_LINEAR, F_MULT, F_BOTTLENECK, F_PRUNE } fusion_kind;

typedef struct data {
    float *x[3];                 /* [n][L][D] */
    int *lens[3];                /* [n] */
    int L[3], D[3], n, C;
    int *y, *split;
} data;

typedef struct opts {
    fusion_kind kind;
    const char *path[3], *lens_path[3], *labels, *split, *save;
    int epochs, batch, patience, d, heads, layers, mem_layers, pool, prune_k, fusion_tokens, fusion_start, bottleneck;
    int prune_joint, prune_proj;
    unsigned prune_mods;                       /* 0: every modality but t */
    double lr, wd, clip, dropout, prune_tau;   /* prune_tau NAN: the arg-max rule */
    unsigned long long seed;
} opts;

typedef struct model {
    fusion_kind kind;
    mmspcl_params P;
    mmspcl_mult_seq_train ms;    /* mult */
    mmspcl_fusion fu;            /* linear, prune, bottleneck */
    mmspcl_xprune_train xp;      /* prune */
    double *x[3], *tmp[3], *dtmp[3], *logits;   /* one batch's inputs (double), pruned inputs, logits */
} model;

static const char *const mod_name[3] = { "t", "a", "v" };

static void usage(FILE *o) {
    fprintf(o,
            "usage: train_fusion --fusion linear|mult|bottleneck|prune\n"
            "         [--t FILE --len-t L --dim-t D [--lens-t FILE]] [--a ...] [--v ...]   (two or three)\n"
            "         --labels FILE --split FILE\n"
            "         [--epochs 40] [--batch 32] [--lr 3e-3] [--weight-decay 0.01] [--clip 0.8]\n"
            "         [--patience 0 (off)] [--seed 1] [--dropout 0.1] [--save FILE]\n"
            "         mult:       [--d 16] [--heads 2] [--layers 2] [--mem-layers 1] [--pool last|mean]\n"
            "         bottleneck: [--d 16] [--heads 2] [--layers 2] [--fusion-tokens 4] [--fusion-start 1]\n"
            "                     [--bottleneck per-modality|per-pair (default per-modality)]\n"
            "         prune:      [--prune-k 4] [--prune-threshold T (default: the arg-max rule)]\n"
            "                     [--prune-mods a|v|av (default: every modality but t)]\n"
            "                     [--prune-pool separate|joint (arg-max rule; default separate)]\n"
            "                     [--prune-proj D (common projection width; default 0: none)]\n"
            "Feature files: float32 [n][L][D], zero-padded; lengths: one per line (default: up to the\n"
            "last step that is not all zeros).\n"
            "Labels: one class per line. Split: train/dev/test (or 0/1/2) per line.\n"
            "Prints the dev weighted F1 of every epoch and, last, 'test weighted F1 XX.XX'.\n");
}

/* one integer (or, for a split, a train/dev/test word) per line */
static int *read_column(const char *path, int split, int *count) {
    unsigned char *buf = NULL;
    size_t size = 0;
    mmspcl_error err;
    char *p, *line;
    int *v = NULL, n = 0, cap = 0, no = 0;
    if (mmspcl_read_file(path, (size_t)1 << 30, &buf, &size, &err)) { fprintf(stderr, "%s\n", err.msg); return NULL; }
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
            if (*end || x < 0 || x > (split ? 2 : 1 << 20)) {
                fprintf(stderr, "%s: line %d '%s' is not a %s\n", path, no, line, split ? "split (train, dev, test)" : "non-negative integer");
                free(v); mmspcl_free(buf); return NULL;
            }
        }
        if (n == cap) {
            int *q = (int *)realloc(v, sizeof(int) * (size_t)(cap = cap ? 2 * cap : 1024));
            if (!q) { fprintf(stderr, "%s: out of memory\n", path); free(v); mmspcl_free(buf); return NULL; }
            v = q;
        }
        v[n++] = (int)x;
    }
    mmspcl_free(buf);
    *count = n;
    if (!v) v = (int *)malloc(sizeof(int));
    return v;
}

/* features of modality m: [n][L][D] float32 LE, lengths checked, padding must be zeros */
static int load_modality(data *d, int m, const opts *o) {
    unsigned char *buf = NULL;
    size_t size = 0, per = (size_t)d->L[m] * d->D[m], i;
    mmspcl_error err;
    int rows, k, t;
    if (mmspcl_read_file(o->path[m], (size_t)1 << 34, &buf, &size, &err)) { fprintf(stderr, "%s\n", err.msg); return -1; }
    if (size % (4 * per)) {
        fprintf(stderr, "%s: %zu bytes is not a whole number of rows of %d x %d float32\n", o->path[m], size, d->L[m], d->D[m]);
        mmspcl_free(buf); return -1;
    }
    rows = (int)(size / (4 * per));
    if (d->n >= 0 && rows != d->n) { fprintf(stderr, "%s has %d rows, the other features %d\n", o->path[m], rows, d->n); mmspcl_free(buf); return -1; }
    d->n = rows;
    d->x[m] = (float *)malloc(size ? size : 4);
    if (!d->x[m]) { fprintf(stderr, "%s: out of memory\n", o->path[m]); mmspcl_free(buf); return -1; }
    for (i = 0; i < size / 4; i++) {
        const unsigned char *b = buf + 4 * i;
        const uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
        memcpy(&d->x[m][i], &u, 4);
    }
    mmspcl_free(buf);
    if (o->lens_path[m]) {
        if (!(d->lens[m] = read_column(o->lens_path[m], 0, &k))) return -1;
        if (k != rows) { fprintf(stderr, "%s has %d lengths for %d rows\n", o->lens_path[m], k, rows); return -1; }
    } else {   /* no lengths file: a row ends after its last step that is not all zeros */
        if (!(d->lens[m] = (int *)malloc(sizeof(int) * (size_t)(rows ? rows : 1)))) return -1;
        for (k = 0; k < rows; k++) {
            int len = 1;
            for (t = 0; t < d->L[m]; t++)
                for (i = 0; i < (size_t)d->D[m]; i++)
                    if (d->x[m][((size_t)k * d->L[m] + t) * d->D[m] + i] != 0.0f) { len = t + 1; break; }
            d->lens[m][k] = len;
        }
    }
    for (k = 0; k < rows; k++)
        if (d->lens[m][k] < 1 || d->lens[m][k] > d->L[m]) {
            fprintf(stderr, "%s: line %d: length %d is outside 1..%d\n", o->lens_path[m], k + 1, d->lens[m][k], d->L[m]);
            return -1;
        }
    for (k = 0; k < rows; k++) {
        for (t = d->lens[m][k]; t < d->L[m]; t++)
            for (i = 0; i < (size_t)d->D[m]; i++)
                if (d->x[m][((size_t)k * d->L[m] + t) * d->D[m] + i] != 0.0f) {
                    fprintf(stderr, "%s: row %d step %d is past its length %d but not zero (byte %zu)\n", o->path[m], k, t,
                            d->lens[m][k], 4 * (((size_t)k * d->L[m] + t) * d->D[m] + i));
                    return -1;
                }
    }
    return 0;
}

static void model_free(model *M) {
    int m;
    mmspcl_mult_seq_train_free(&M->ms);
    mmspcl_fusion_free(&M->fu);
    mmspcl_xprune_train_free(&M->xp);
    mmspcl_params_free(&M->P);
    for (m = 0; m < 3; m++) { free(M->x[m]); free(M->tmp[m]); free(M->dtmp[m]); }
    free(M->logits);
}

static int model_create(model *M, const data *d, const opts *o, mmspcl_error *err) {
    mmspcl_rng r;
    int m, B = o->batch > 256 ? o->batch : 256;
    memset(M, 0, sizeof *M);
    M->kind = o->kind;
    mmspcl_params_init(&M->P);
    mmspcl_rng_seed(&r, o->seed);
    if (o->kind == F_MULT) {
        mmspcl_mult_seq_cfg c;
        memset(&c, 0, sizeof c);
        for (m = 0; m < 3; m++) c.dims[m] = d->D[m];
        c.d = o->d; c.n_heads = o->heads; c.n_layers = o->layers; c.n_mem_layers = o->mem_layers;
        c.out_dim = d->C; c.pool = o->pool;
        if (mmspcl_mult_seq_train_create(&M->ms, &M->P, "fusion", &c, o->dropout, 0.0, &r, err)) return -1;
    } else {
        mmspcl_fusion_cfg c;
        mmspcl_fusion_defaults(&c, o->kind == F_BOTTLENECK ? MMSPCL_FUSION_MBT : MMSPCL_FUSION_LINEAR);
        c.out_dim = d->C;
        for (m = 0; m < 3; m++) {
            c.dims[m] = o->kind == F_BOTTLENECK ? d->L[m] * d->D[m] : d->D[m];
            c.seq[m] = o->kind == F_BOTTLENECK && d->D[m] ? d->L[m] : 0;
        }
        if (o->kind == F_BOTTLENECK) {
            c.d_model = o->d; c.n_heads = o->heads; c.n_layers = o->layers; c.fusion_start = o->fusion_start;
            c.n_fusion = o->fusion_tokens; c.dropout = o->dropout; c.bottleneck = o->bottleneck;
        }
        if (o->kind == F_PRUNE) {
            mmspcl_xprune_cfg pc;
            if (!d->D[0] || (o->prune_proj ? o->prune_proj : d->D[0]) % o->prune_k) {
                snprintf(err->msg, sizeof err->msg, "prune: t (the base) must be present with a width (after --prune-proj) that is a multiple of --prune-k %d", o->prune_k);
                return -1;
            }
            memset(&pc, 0, sizeof pc);
            for (m = 0; m < 3; m++) pc.dims[m] = d->D[m];
            pc.base = 0; pc.mods = o->prune_mods; pc.K = o->prune_k; pc.proj_dim = o->prune_proj; pc.joint = o->prune_joint;
            pc.rule = o->prune_tau == o->prune_tau ? MMSPCL_PRUNE_THRESHOLD : MMSPCL_PRUNE_ARGMAX;
            pc.tau = o->prune_tau;
            if (mmspcl_xprune_train_create(&M->xp, &M->P, "prune", &pc, &r, err)) return -1;
            for (m = 0; m < 3; m++) c.dims[m] = M->xp.lay.width[m];
        }
        if (mmspcl_fusion_create(&M->fu, &M->P, "fusion", &c, &r, err)) return -1;
    }
    for (m = 0; m < 3; m++) {
        const size_t w = (size_t)(o->kind == F_MULT || o->kind == F_BOTTLENECK ? d->L[m] : 1) * d->D[m];
        if (!d->D[m]) continue;
        const size_t wp = (size_t)(o->kind == F_PRUNE ? M->xp.lay.width[m] : 1);
        M->x[m] = (double *)malloc(sizeof(double) * (size_t)B * w);
        M->tmp[m] = (double *)malloc(sizeof(double) * (size_t)B * wp);
        M->dtmp[m] = (double *)malloc(sizeof(double) * (size_t)B * wp);
        if (!M->x[m] || !M->tmp[m] || !M->dtmp[m]) { snprintf(err->msg, sizeof err->msg, "out of memory"); return -1; }
    }
    M->logits = (double *)malloc(sizeof(double) * (size_t)B * d->C);
    if (!M->logits) { snprintf(err->msg, sizeof err->msg, "out of memory"); return -1; }
    return 0;
}

/* the rows idx[0..nb-1] as the model's inputs, then its forward: M->logits [nb][C] */
static int model_forward(model *M, const data *d, const int *idx, int nb, int *lens[3], mmspcl_rng *rng, mmspcl_error *err) {
    int m, i, t, k;
    for (m = 0; m < 3; m++) {
        const size_t per = (size_t)d->L[m] * d->D[m];
        if (!d->D[m]) continue;
        for (i = 0; i < nb; i++) {
            const float *src = d->x[m] + (size_t)idx[i] * per;
            lens[m][i] = d->lens[m][idx[i]];
            if (M->kind == F_MULT || M->kind == F_BOTTLENECK) {
                for (k = 0; k < (int)per; k++) M->x[m][(size_t)i * per + k] = src[k];
                continue;
            }
            for (k = 0; k < d->D[m]; k++) {   /* mean over the real steps */
                double s = 0;
                for (t = 0; t < lens[m][i]; t++) s += src[(size_t)t * d->D[m] + k];
                M->x[m][(size_t)i * d->D[m] + k] = s / lens[m][i];
            }
        }
    }
    if (M->kind == F_MULT)
        return mmspcl_mult_seq_train_forward(&M->ms, &M->P, (const double *const *)M->x, d->L, (const int *const *)lens, nb, M->logits, rng, err) ? -1 : 0;
    if (M->kind == F_PRUNE)
        return mmspcl_xprune_train_forward(&M->xp, &M->P, (const double *const *)M->x, nb, M->tmp, err) ||
               mmspcl_fusion_forward(&M->fu, &M->P, (const double *const *)M->tmp, nb, M->logits, rng, err) ? -1 : 0;
    return mmspcl_fusion_forward(&M->fu, &M->P, (const double *const *)M->x, nb, M->logits, rng, err) ? -1 : 0;
}

static void model_backward(model *M, const double *dlogits, int nb) {
    int m;
    if (M->kind == F_MULT) mmspcl_mult_seq_train_backward(&M->ms, &M->P, (const double *const *)M->x, dlogits, NULL);
    else if (M->kind == F_PRUNE) {   /* the fusion's input gradients, then through the pruning layer */
        for (m = 0; m < 3; m++)
            if (M->dtmp[m]) memset(M->dtmp[m], 0, sizeof(double) * (size_t)nb * M->xp.lay.width[m]);
        mmspcl_fusion_backward(&M->fu, &M->P, (const double *const *)M->tmp, nb, dlogits, M->dtmp);
        mmspcl_xprune_train_backward(&M->xp, &M->P, (const double *const *)M->x, nb, (const double *const *)M->dtmp, NULL);
    } else mmspcl_fusion_backward(&M->fu, &M->P, (const double *const *)M->x, nb, dlogits, NULL);
}

/* weighted F1 (and accuracy) of the rows of split s, in evaluation mode */
static int evaluate(model *M, const data *d, int s, int B, int *lens[3], double *f1, double *acc, mmspcl_error *err) {
    int *idx = (int *)malloc(sizeof(int) * (size_t)(d->n + 1)), *yt = (int *)malloc(sizeof(int) * (size_t)(d->n + 1));
    int *yp = (int *)malloc(sizeof(int) * (size_t)(d->n + 1)), k = 0, i, j, rc = 0;
    int64_t *cm = (int64_t *)calloc((size_t)d->C * d->C, sizeof(int64_t));
    mmspcl_metrics mt;
    if (!idx || !yt || !yp || !cm) { free(idx); free(yt); free(yp); free(cm); return -1; }
    for (i = 0; i < d->n; i++) if (d->split[i] == s) { idx[k] = i; yt[k++] = d->y[i]; }
    for (i = 0; i < k && !rc; i += B) {
        const int nb = k - i < B ? k - i : B;
        rc = model_forward(M, d, idx + i, nb, lens, NULL, err);
        for (j = 0; !rc && j < nb; j++) {
            const double *z = M->logits + (size_t)j * d->C;
            int c, best = 0;
            for (c = 1; c < d->C; c++) if (z[c] > z[best]) best = c;
            yp[i + j] = best;
        }
    }
    if (!rc) {
        mmspcl_confusion(yt, yp, k, d->C, cm);
        mmspcl_metrics_from_confusion(cm, d->C, NULL, &mt);
        *f1 = mt.weighted_f1; *acc = mt.accuracy;
    }
    free(idx); free(yt); free(yp); free(cm);
    return rc;
}

/* epochs of shuffled batches; the best dev epoch's weights end up in M->P.w */
static int train(model *M, const data *d, const opts *o, int *lens[3], mmspcl_error *err) {
    mmspcl_adamw_cfg ac;
    mmspcl_rng r;
    int *tr = (int *)malloc(sizeof(int) * (size_t)(d->n + 1)), ntr = 0, i, e, since = 0, best_e = -1;
    double *best = (double *)malloc(sizeof(double) * (M->P.n + 1)), *dl = (double *)malloc(sizeof(double) * (size_t)o->batch * d->C);
    double best_f1 = -1;
    if (!tr || !best || !dl) { free(tr); free(best); free(dl); snprintf(err->msg, sizeof err->msg, "out of memory"); return -1; }
    mmspcl_adamw_defaults(&ac);
    ac.weight_decay = o->wd;
    mmspcl_rng_seed(&r, o->seed + 17);
    for (i = 0; i < d->n; i++) if (d->split[i] == 0) tr[ntr++] = i;
    for (e = 0; e < o->epochs; e++) {
        double loss = 0, f1 = 0, acc = 0;
        int steps = 0;
        mmspcl_rng_shuffle(&r, tr, ntr);
        for (i = 0; i + 1 < ntr; i += o->batch) {   /* every row, the last batch may be short */
            const int nb = ntr - i < o->batch ? ntr - i : o->batch;
            int yb[1024], k;
            for (k = 0; k < nb; k++) yb[k] = d->y[tr[i + k]];
            if (model_forward(M, d, tr + i, nb, lens, &r, err)) goto fail;
            loss += mmspcl_ce_loss(M->logits, yb, nb, d->C, NULL, dl);
            mmspcl_params_zero_grad(&M->P);
            model_backward(M, dl, nb);
            mmspcl_grad_clip(&M->P, o->clip);
            mmspcl_adamw_step(&M->P, &ac, o->lr);
            steps++;
        }
        if (evaluate(M, d, 1, 256, lens, &f1, &acc, err)) goto fail;
        printf("epoch %3d  train loss %.4f  dev weighted F1 %6.2f  dev accuracy %6.2f%s\n", e + 1, loss / (steps ? steps : 1),
               100 * f1, 100 * acc, f1 > best_f1 ? "  (best)" : "");
        fflush(stdout);
        if (f1 > best_f1) { best_f1 = f1; best_e = e; since = 0; memcpy(best, M->P.w, sizeof(double) * M->P.n); }
        else if (o->patience > 0 && ++since >= o->patience) break;
    }
    memcpy(M->P.w, best, sizeof(double) * M->P.n);
    printf("best epoch %d (dev weighted F1 %.2f)\n", best_e + 1, 100 * best_f1);
    free(tr); free(best); free(dl);
    return 0;
fail:
    free(tr); free(best); free(dl);
    return -1;
}

static int save_model(const model *M, const char *path, mmspcl_error *err) {
    mmspcl_writer *wr = mmspcl_writer_create();
    float *hold = NULL;
    int rc = -1;
    if (!wr) { snprintf(err->msg, sizeof err->msg, "out of memory"); return -1; }
    if (!(M->kind == F_MULT ? mmspcl_mult_seq_train_write_config(&M->ms, wr) : mmspcl_fusion_write_config(&M->fu, wr, NULL)) &&
        !(M->kind == F_PRUNE && mmspcl_xprune_train_write_config(&M->xp, wr)) &&
        !mmspcl_params_write(&M->P, wr, NULL, 0, &hold, err) && !mmspcl_writer_save(wr, path, NULL, NULL, err))
        rc = 0;
    else if (!err->msg[0]) snprintf(err->msg, sizeof err->msg, "%s: cannot write", path);
    mmspcl_writer_free(wr);
    mmspcl_free(hold);
    return rc;
}

/* the value of option a, or NULL when a is not one of the per-modality options */
static int modality_option(opts *o, data *d, const char *a, const char *v) {
    int m;
    for (m = 0; m < 3; m++) {
        char k[4][16];
        snprintf(k[0], 16, "--%s", mod_name[m]);
        snprintf(k[1], 16, "--len-%s", mod_name[m]);
        snprintf(k[2], 16, "--dim-%s", mod_name[m]);
        snprintf(k[3], 16, "--lens-%s", mod_name[m]);
        if (!strcmp(a, k[0])) { o->path[m] = v; return 1; }
        if (!strcmp(a, k[1])) { d->L[m] = atoi(v); return 1; }
        if (!strcmp(a, k[2])) { d->D[m] = atoi(v); return 1; }
        if (!strcmp(a, k[3])) { o->lens_path[m] = v; return 1; }
    }
    return 0;
}

static int parse(int argc, char **argv, opts *o, data *d) {
    int i;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 1; }
        if (!v) { fprintf(stderr, "train_fusion: %s needs a value\n", a); return -1; }
        i++;
        if (modality_option(o, d, a, v)) continue;
        if (!strcmp(a, "--fusion")) {
            if (!strcmp(v, "linear")) o->kind = F_LINEAR;
            else if (!strcmp(v, "mult")) o->kind = F_MULT;
            else if (!strcmp(v, "bottleneck")) o->kind = F_BOTTLENECK;
            else if (!strcmp(v, "prune")) o->kind = F_PRUNE;
            else { fprintf(stderr, "train_fusion: --fusion %s: expected linear, mult, bottleneck or prune\n", v); return -1; }
        } else if (!strcmp(a, "--labels")) o->labels = v;
        else if (!strcmp(a, "--split")) o->split = v;
        else if (!strcmp(a, "--save")) o->save = v;
        else if (!strcmp(a, "--epochs")) o->epochs = atoi(v);
        else if (!strcmp(a, "--batch")) o->batch = atoi(v);
        else if (!strcmp(a, "--patience")) o->patience = atoi(v);
        else if (!strcmp(a, "--d")) o->d = atoi(v);
        else if (!strcmp(a, "--heads")) o->heads = atoi(v);
        else if (!strcmp(a, "--layers")) o->layers = atoi(v);
        else if (!strcmp(a, "--mem-layers")) o->mem_layers = atoi(v);
        else if (!strcmp(a, "--prune-k")) o->prune_k = atoi(v);
        else if (!strcmp(a, "--prune-threshold")) o->prune_tau = atof(v);
        else if (!strcmp(a, "--fusion-tokens")) o->fusion_tokens = atoi(v);
        else if (!strcmp(a, "--fusion-start")) o->fusion_start = atoi(v);
        else if (!strcmp(a, "--lr")) o->lr = atof(v);
        else if (!strcmp(a, "--weight-decay")) o->wd = atof(v);
        else if (!strcmp(a, "--clip")) o->clip = atof(v);
        else if (!strcmp(a, "--dropout")) o->dropout = atof(v);
        else if (!strcmp(a, "--seed")) o->seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--prune-proj")) o->prune_proj = atoi(v);
        else if (!strcmp(a, "--prune-pool")) {
            if (strcmp(v, "separate") && strcmp(v, "joint")) { fprintf(stderr, "train_fusion: --prune-pool %s: expected separate or joint\n", v); return -1; }
            o->prune_joint = !strcmp(v, "joint");
        } else if (!strcmp(a, "--prune-mods")) {
            if (strcmp(v, "a") && strcmp(v, "v") && strcmp(v, "av")) { fprintf(stderr, "train_fusion: --prune-mods %s: expected a, v or av\n", v); return -1; }
            o->prune_mods = (strchr(v, 'a') ? MMSPCL_MOD_A : 0u) | (strchr(v, 'v') ? MMSPCL_MOD_V : 0u);
        } else if (!strcmp(a, "--bottleneck")) {
            if (strcmp(v, "per-modality") && strcmp(v, "per-pair")) { fprintf(stderr, "train_fusion: --bottleneck %s: expected per-modality or per-pair\n", v); return -1; }
            o->bottleneck = !strcmp(v, "per-pair") ? MMSPCL_BOTTLENECK_PAIR : MMSPCL_BOTTLENECK_MODALITY;
        } else if (!strcmp(a, "--pool")) {
            if (strcmp(v, "last") && strcmp(v, "mean")) { fprintf(stderr, "train_fusion: --pool %s: expected last or mean\n", v); return -1; }
            o->pool = !strcmp(v, "mean") ? MMSPCL_POOL_MEAN : MMSPCL_POOL_LAST;
        } else { fprintf(stderr, "train_fusion: unknown option %s\n", a); return -1; }
    }
    return 0;
}

static int check_opts(const opts *o, const data *d) {
    int m, present = 0;
    for (m = 0; m < 3; m++) {
        if (!o->path[m]) continue;
        present++;
        if (d->L[m] < 1 || d->D[m] < 1) { fprintf(stderr, "train_fusion: --%s needs --len-%s >= 1 and --dim-%s >= 1\n", mod_name[m], mod_name[m], mod_name[m]); return -1; }
    }
    if (present < 2 || !o->labels || !o->split) { fprintf(stderr, "train_fusion: needs two or three modalities, --labels and --split\n"); return -1; }
    if (o->epochs < 1 || o->batch < 1 || o->batch > 1024 || !(o->lr > 0) || o->prune_k < 1 || o->prune_proj < 0) {
        fprintf(stderr, "train_fusion: --epochs >= 1, 1 <= --batch <= 1024, --lr > 0, --prune-k >= 1, --prune-proj >= 0\n");
        return -1;
    }
    for (m = 1; m < 3; m++)
        if ((o->prune_mods & (1u << m)) && !o->path[m]) {
            fprintf(stderr, "train_fusion: --prune-mods names %s, which has no --%s file\n", mod_name[m], mod_name[m]);
            return -1;
        }
    return 0;
}

static void data_free(data *d) {
    int m;
    for (m = 0; m < 3; m++) { free(d->x[m]); free(d->lens[m]); }
    free(d->y); free(d->split);
}

static int load_data(data *d, const opts *o) {
    int m, k, i, cnt[3] = { 0, 0, 0 };
    for (m = 0; m < 3; m++) {
        if (!o->path[m]) { d->L[m] = d->D[m] = 0; continue; }
        if (load_modality(d, m, o)) return -1;
    }
    if (!(d->y = read_column(o->labels, 0, &k))) return -1;
    if (k != d->n) { fprintf(stderr, "%s has %d labels for %d feature rows\n", o->labels, k, d->n); return -1; }
    if (!(d->split = read_column(o->split, 1, &k))) return -1;
    if (k != d->n) { fprintf(stderr, "%s has %d entries for %d rows\n", o->split, k, d->n); return -1; }
    for (i = 0; i < d->n; i++) { if (d->y[i] + 1 > d->C) d->C = d->y[i] + 1; cnt[d->split[i]]++; }
    if (d->C < 2 || d->C > MMSPCL_MAX_CLASSES) { fprintf(stderr, "%s: %d classes (2..%d)\n", o->labels, d->C, MMSPCL_MAX_CLASSES); return -1; }
    if (cnt[0] < 2 || cnt[1] < 1 || cnt[2] < 1) { fprintf(stderr, "%s: every split needs rows (train %d, dev %d, test %d)\n", o->split, cnt[0], cnt[1], cnt[2]); return -1; }
    printf("%d rows (train %d, dev %d, test %d), %d classes; t %dx%d a %dx%d v %dx%d\n", d->n, cnt[0], cnt[1], cnt[2], d->C,
           d->L[0], d->D[0], d->L[1], d->D[1], d->L[2], d->D[2]);
    return 0;
}

int main(int argc, char **argv) {
    static const char *const kind_name[4] = { "linear", "mult", "bottleneck", "prune" };
    opts o;
    data d;
    model M;
    mmspcl_error err;
    int *lens[3] = { NULL, NULL, NULL }, m, rc = 1, pr;
    double f1 = 0, acc = 0;
    memset(&o, 0, sizeof o);
    memset(&d, 0, sizeof d);
    memset(&M, 0, sizeof M);
    memset(&err, 0, sizeof err);
    o.kind = F_MULT; o.epochs = 40; o.batch = 32; o.patience = 0; o.d = 16; o.heads = 2; o.layers = 2; o.mem_layers = 1;
    o.pool = MMSPCL_POOL_LAST; o.prune_k = 4; o.fusion_tokens = 4; o.fusion_start = 1; o.bottleneck = MMSPCL_BOTTLENECK_MODALITY;
    o.lr = 3e-3; o.wd = 0.01; o.clip = 0.8; o.dropout = 0.1; o.seed = 1; o.prune_tau = NAN;
    d.n = -1;
    if ((pr = parse(argc, argv, &o, &d)) != 0) { if (pr < 0) usage(stderr); return pr > 0 ? 0 : 2; }
    if (check_opts(&o, &d)) { usage(stderr); return 2; }
    if (load_data(&d, &o)) goto done;
    for (m = 0; m < 3; m++) if (!(lens[m] = (int *)malloc(sizeof(int) * 1024))) goto done;
    if (model_create(&M, &d, &o, &err)) { fprintf(stderr, "train_fusion: %s\n", err.msg); goto done; }
    printf("fusion %s: %zu parameters\n", kind_name[o.kind], M.P.n);
    if (train(&M, &d, &o, lens, &err) || evaluate(&M, &d, 2, 256, lens, &f1, &acc, &err)) { fprintf(stderr, "train_fusion: %s\n", err.msg); goto done; }
    if (o.save && save_model(&M, o.save, &err)) { fprintf(stderr, "train_fusion: %s\n", err.msg); goto done; }
    if (o.save) printf("saved %s\n", o.save);
    printf("test accuracy %.2f\n", 100 * acc);
    printf("test weighted F1 %.2f\n", 100 * f1);
    rc = 0;
done:
    model_free(&M);
    data_free(&d);
    for (m = 0; m < 3; m++) free(lens[m]);
    return rc;
}
