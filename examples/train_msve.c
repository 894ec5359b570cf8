/* train_msve: train MSVE (one MLP per combination of text, audio and video features, logits of
   k sampled combinations summed per batch; all combinations vote at inference) on feature files,
   and print the metrics of the test split.

     build/examples/train_msve --t text.f32 --dim-t 1024 --a audio.f32 --dim-a 88 \
                               --v video.f32 --dim-v 512 --labels labels.txt --split split.txt \
                               [--save msve.bin]
     build/examples/train_msve --synthetic 2000      (no files: the synthetic set of the tests)
     build/examples/train_msve ... --combos t,ta,tv,tav       (the paper's final model: no a, v, av)
     build/examples/train_msve ... --depths 2                 (every combination a 2-layer MLP)

   Feature files: one raw little-endian float32 matrix per modality, rows in the same order as
   the labels (e.g. MELD utterances: z_t from mmspcl_spcl_embed_dialogue, z_v from the CLIP
   image tower, z_a openSMILE). Labels: one integer class per line. Split: one word per line,
   train / dev / test (or 0 / 1 / 2); without --split, a random 80/10/10 split. Early stopping
   uses the dev split's weighted F1; the test split is only scored at the end.
   Any modality may be left out; the combinations of the ones given are used (--combos: some).
   Networks (mmspcl.h 12.6): by default the paper's mix, one Linear per combination but tv
   (2 layers) and tav (3 layers), hidden 100: 351,101 parameters at 1024/88/512 and 7 classes;
   --depths tv=2,tav=3 / paper / 1 / 2 / 3 sets them (docs/FUSION.md, "MSVE"). */
#include "mmspcl.h"
#include "mmspcl_train.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const combo_name[8] = { "", "t", "a", "ta", "v", "tv", "av", "tav" };

static void usage(void) {
    fprintf(stderr,
            "usage: train_msve [--t FILE --dim-t N] [--a FILE --dim-a N] [--v FILE --dim-v N]\n"
            "                  --labels FILE [--split FILE] [--classes C]\n"
            "                  [--combos t,ta,tv,tav (default: all of the given modalities)]\n"
            "                  [--depths paper (tv=2,tav=3, the others 1) | tv=2,tav=3 | 1 | 2 | 3]\n"
            "                  [--hidden 100] [--k 2] [--epochs 50] [--batch 32] [--lr LR] [--dropout 0.1]\n"
            "                  [--weight-decay 0.01] [--patience 5] [--seed 1] [--save FILE]\n"
            "       train_msve --synthetic N [options]\n");
}

/* whole file; rows = bytes / (4 * dim) */
static float *read_f32(const char *path, int dim, int *rows) {
    FILE *f = fopen(path, "rb");
    long size;
    float *x;
    size_t i, n;
    const unsigned one = 1;
    if (!f) { fprintf(stderr, "%s: cannot open\n", path); return NULL; }
    if (fseek(f, 0, SEEK_END) || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) { fprintf(stderr, "%s: cannot seek\n", path); fclose(f); return NULL; }
    if (dim <= 0 || size % (4L * dim)) {
        fprintf(stderr, "%s: %ld bytes is not a whole number of rows of %d float32\n", path, size, dim);
        fclose(f);
        return NULL;
    }
    n = (size_t)size / 4;
    x = (float *)malloc(n ? n * 4 : 4);
    if (!x || fread(x, 4, n, f) != n) { fprintf(stderr, "%s: cannot read %zu floats\n", path, n); fclose(f); free(x); return NULL; }
    fclose(f);
    if (!*(const unsigned char *)&one)   /* big-endian host: the file is little-endian */
        for (i = 0; i < n; i++) {
            unsigned char *b = (unsigned char *)&x[i], t;
            t = b[0]; b[0] = b[3]; b[3] = t;
            t = b[1]; b[1] = b[2]; b[2] = t;
        }
    *rows = (int)(n / (size_t)dim);
    return x;
}

/* one token per line: numbers (labels) or train/dev/test words (split) */
static int *read_ints(const char *path, int *count, int split) {
    FILE *f = fopen(path, "r");
    char word[64];
    int *v = NULL, n = 0, cap = 0, line = 0;
    if (!f) { fprintf(stderr, "%s: cannot open\n", path); return NULL; }
    while (fscanf(f, "%63s", word) == 1) {
        int x;
        char *end;
        line++;
        if (split && !strcmp(word, "train")) x = 0;
        else if (split && (!strcmp(word, "dev") || !strcmp(word, "val"))) x = 1;
        else if (split && !strcmp(word, "test")) x = 2;
        else {
            x = (int)strtol(word, &end, 10);
            if (*end || x < 0 || (split && x > 2)) { fprintf(stderr, "%s: entry %d '%s' is not a %s\n", path, line, word, split ? "split name" : "class"); fclose(f); free(v); return NULL; }
        }
        if (n == cap) {
            int *p = (int *)realloc(v, sizeof(int) * (size_t)(cap = cap ? 2 * cap : 1024));
            if (!p) { fclose(f); free(v); return NULL; }
            v = p;
        }
        v[n++] = x;
    }
    fclose(f);
    *count = n;
    return v;
}

/* the rows of one split, copied */
static void take_split(float *const x[3], const int dims[3], const int *y, const int *split, int n, int which,
                       float *out[3], int **yo, int *no) {
    int i, m, k = 0;
    for (i = 0; i < n; i++) k += split[i] == which;
    for (m = 0; m < 3; m++) out[m] = dims[m] ? (float *)malloc(sizeof(float) * (size_t)(k ? k : 1) * dims[m]) : NULL;
    *yo = (int *)malloc(sizeof(int) * (size_t)(k ? k : 1));
    *no = k;
    for (i = 0, k = 0; i < n; i++) {
        if (split[i] != which) continue;
        for (m = 0; m < 3; m++)
            if (dims[m]) memcpy(out[m] + (size_t)k * dims[m], x[m] + (size_t)i * dims[m], sizeof(float) * dims[m]);
        (*yo)[k++] = y[i];
    }
}

/* the synthetic set of tests/test_train.c: 4 classes = two bits; t carries bit 1, a bit 2, v their
   xor, each as +-0.9 on 2 of 24 features with unit noise */
static void synthetic(int n, uint64_t seed, float *x[3], int dims[3], int **y) {
    mmspcl_rng r;
    int i, m, d;
    mmspcl_rng_seed(&r, seed);
    *y = (int *)malloc(sizeof(int) * (size_t)n);
    for (m = 0; m < 3; m++) { dims[m] = 24; x[m] = (float *)malloc(sizeof(float) * (size_t)n * 24); }
    for (i = 0; i < n; i++) {
        const int c = mmspcl_rng_int(&r, 4), bit[3] = { c & 1, c >> 1, (c & 1) ^ (c >> 1) };
        (*y)[i] = c;
        for (m = 0; m < 3; m++)
            for (d = 0; d < 24; d++) x[m][(size_t)i * 24 + d] = (float)(mmspcl_rng_normal(&r) + (d < 2 ? (bit[m] ? 0.9 : -0.9) : 0.0));
    }
}

static void print_metrics(const char *title, const int *y, const int *pred, int n, int C, int details) {
    int64_t *cm = (int64_t *)calloc((size_t)C * C, sizeof(int64_t));
    mmspcl_class_metrics *pc = (mmspcl_class_metrics *)calloc((size_t)C, sizeof *pc);
    mmspcl_metrics mt;
    int c, k;
    mmspcl_confusion(y, pred, n, C, cm);
    mmspcl_metrics_from_confusion(cm, C, pc, &mt);
    printf("%-22s accuracy %6.2f  weighted F1 %6.2f  macro F1 %6.2f\n", title, 100 * mt.accuracy, 100 * mt.weighted_f1, 100 * mt.macro_f1);
    if (details) {
        printf("\n  class  precision  recall     F1  support\n");
        for (c = 0; c < C; c++)
            printf("  %5d  %9.2f  %6.2f  %5.2f  %7lld\n", c, 100 * pc[c].precision, 100 * pc[c].recall, 100 * pc[c].f1, (long long)pc[c].support);
        printf("\n  confusion matrix (rows: true class, columns: predicted)\n");
        for (c = 0; c < C; c++) {
            printf("  %3d |", c);
            for (k = 0; k < C; k++) printf(" %6lld", (long long)cm[(size_t)c * C + k]);
            printf("\n");
        }
        printf("\n");
    }
    free(cm);
    free(pc);
}

static void log_epoch(void *user, int epoch, double loss, double f1) {
    (void)user;
    printf("epoch %3d  train loss %.4f  dev weighted F1 %.2f\n", epoch, loss, 100 * f1);
    fflush(stdout);
}

int main(int argc, char **argv) {
    const char *path[3] = { NULL, NULL, NULL }, *labels = NULL, *split_path = NULL, *save = NULL;
    int dims[3] = { 0, 0, 0 }, C = 0, n = -1, n_synth = 0, i, m, c;
    float *x[3] = { NULL, NULL, NULL }, *xs[3][3];
    int *y = NULL, *split = NULL, *ys[3], ns[3], *pred;
    mmspcl_msve_cfg cfg;
    mmspcl_msve_train_cfg tc;
    mmspcl_msve_model M;
    mmspcl_train_report rep;
    const char *combos = NULL, *depths = NULL;
    mmspcl_dataset tr, dev;
    mmspcl_error err;
    mmspcl_rng r;
    memset(&cfg, 0, sizeof cfg);
    cfg.hidden = 100;
    cfg.act = MMSPCL_ACT_GELU;
    cfg.dropout = 0.1;
    mmspcl_msve_train_defaults(&tc);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int used = 1;
        if (!v) { usage(); return 2; }
        if (!strcmp(a, "--t")) path[0] = v;
        else if (!strcmp(a, "--a")) path[1] = v;
        else if (!strcmp(a, "--v")) path[2] = v;
        else if (!strcmp(a, "--dim-t")) dims[0] = atoi(v);
        else if (!strcmp(a, "--dim-a")) dims[1] = atoi(v);
        else if (!strcmp(a, "--dim-v")) dims[2] = atoi(v);
        else if (!strcmp(a, "--labels")) labels = v;
        else if (!strcmp(a, "--split")) split_path = v;
        else if (!strcmp(a, "--classes")) C = atoi(v);
        else if (!strcmp(a, "--hidden")) cfg.hidden = atoi(v);
        else if (!strcmp(a, "--combos")) combos = v;
        else if (!strcmp(a, "--depths")) depths = v;
        else if (!strcmp(a, "--dropout")) cfg.dropout = atof(v);
        else if (!strcmp(a, "--k")) tc.k = atoi(v);
        else if (!strcmp(a, "--epochs")) tc.epochs = atoi(v);
        else if (!strcmp(a, "--batch")) tc.batch = atoi(v);
        else if (!strcmp(a, "--lr")) tc.lr = atof(v);
        else if (!strcmp(a, "--weight-decay")) tc.weight_decay = atof(v);
        else if (!strcmp(a, "--patience")) tc.patience = atoi(v);
        else if (!strcmp(a, "--seed")) tc.seed = (uint64_t)strtoull(v, NULL, 10);
        else if (!strcmp(a, "--save")) save = v;
        else if (!strcmp(a, "--synthetic")) n_synth = atoi(v);
        else used = 0;
        if (!used) { fprintf(stderr, "unknown option %s\n", a); usage(); return 2; }
        i++;
    }
    if (n_synth > 0) {
        synthetic(n_synth, tc.seed + 1000, x, dims, &y);
        n = n_synth;
        C = 4;
    } else {
        if (!labels || (!path[0] && !path[1] && !path[2])) { usage(); return 2; }
        for (m = 0; m < 3; m++) {
            int rows;
            if (!path[m]) { dims[m] = 0; continue; }
            if (!(x[m] = read_f32(path[m], dims[m], &rows))) return 1;
            if (n >= 0 && rows != n) { fprintf(stderr, "%s has %d rows, the other features %d\n", path[m], rows, n); return 1; }
            n = rows;
        }
        if (!(y = read_ints(labels, &i, 0))) return 1;
        if (i != n) { fprintf(stderr, "%s has %d labels for %d feature rows\n", labels, i, n); return 1; }
        for (i = 0; i < n; i++) if (y[i] + 1 > C) C = y[i] + 1;
    }
    if (split_path) {
        int k;
        if (!(split = read_ints(split_path, &k, 1))) return 1;
        if (k != n) { fprintf(stderr, "%s has %d entries for %d rows\n", split_path, k, n); return 1; }
    } else {
        split = (int *)malloc(sizeof(int) * (size_t)n);
        mmspcl_rng_seed(&r, tc.seed + 7);
        for (i = 0; i < n; i++) { const double u = mmspcl_rng_uniform(&r); split[i] = u < 0.8 ? 0 : u < 0.9 ? 1 : 2; }
    }
    for (c = 0; c < 3; c++) take_split(x, dims, y, split, n, c, xs[c], &ys[c], &ns[c]);
    printf("%d rows (train %d, dev %d, test %d), %d classes, features t %d a %d v %d\n", n, ns[0], ns[1], ns[2], C, dims[0], dims[1], dims[2]);
    if (ns[0] < 2 || ns[1] < 1 || ns[2] < 1) { fprintf(stderr, "every split needs rows\n"); return 1; }
    cfg.n_classes = C;
    for (m = 0; m < 3; m++) cfg.dims[m] = dims[m];
    if ((combos && mmspcl_combos_parse(combos, &cfg.combos, &err)) || (depths && mmspcl_depths_parse(depths, cfg.depth, &err))) {
        fprintf(stderr, "train_msve: %s\n", err.msg);
        return 2;
    }
    if (mmspcl_msve_model_create(&M, &cfg, tc.seed, &err)) { fprintf(stderr, "train_msve: %s\n", err.msg); return 1; }
    printf("MSVE: hidden %d, k = %d, lr %g, %zu parameters; layers:", M.cfg.hidden, tc.k, tc.lr, M.P.n);
    for (c = 1; c < 8; c++) if (M.cfg.depth[c]) printf(" %s %d", combo_name[c], M.cfg.depth[c]);
    printf("\n");
    for (m = 0; m < 3; m++) { tr.x[m] = xs[0][m]; dev.x[m] = xs[1][m]; }
    tr.y = ys[0]; tr.n = ns[0];
    dev.y = ys[1]; dev.n = ns[1];
    if (mmspcl_msve_train(&M, &tr, &dev, &tc, &rep, log_epoch, NULL, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    printf("best epoch %d (dev weighted F1 %.2f), %d steps\n\n", rep.best_epoch, 100 * rep.best_val_f1, rep.steps);
    pred = (int *)malloc(sizeof(int) * (size_t)ns[2]);
    for (c = 1; c < 8; c++) {   /* what each combination of the trained ensemble says alone */
        char title[64];
        if (!(M.cfg.combos & MMSPCL_COMBO(c))) continue;
        mmspcl_msve_model_predict(&M, (const float *const *)xs[2], ns[2], MMSPCL_COMBO(c), pred, NULL, NULL);
        snprintf(title, sizeof title, "test, %s alone", combo_name[c]);
        print_metrics(title, ys[2], pred, ns[2], C, 0);
    }
    mmspcl_msve_model_predict(&M, (const float *const *)xs[2], ns[2], 0, pred, NULL, NULL);
    print_metrics("test, MSVE (all vote)", ys[2], pred, ns[2], C, 1);
    if (save) {
        if (mmspcl_msve_model_save(&M, save, "msve", 0, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        printf("saved %s (load with mmspcl_msve_load(w, \"msve\"))\n", save);
    }
    mmspcl_msve_model_free(&M);
    for (c = 0; c < 3; c++) { for (m = 0; m < 3; m++) free(xs[c][m]); free(ys[c]); }
    for (m = 0; m < 3; m++) free(x[m]);
    free(y); free(split); free(pred);
    return 0;
}
