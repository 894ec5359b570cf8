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
     prune       cross-modal pruning against t step by step over the sequences (step s of t prunes
                 step s of each pruning modality; steps past t's length pass unchanged; as
                 mmspcl_xprune_forward_seq at inference; mmspcl_xprune_train_forward_seq), heads of
                 --prune-k: the modalities of --prune-mods (default every other one: a and v
                 both, Table 4's {tav}); the arg-max rule (--prune-pool separate: every t head
                 zeroes its best head in each pruning modality; joint: its best head among all
                 of them) or with --prune-threshold T every head with a cosine >= T; with
                 --prune-proj D every step first through its modality's Linear to D (the common
                 projection of the paper's section 8.3, trained with the rest); then the pruned
                 steps mean-pooled over their real steps and the Linear, as linear
     bottleneck  MBT (mmspcl_fusion MBT): every step a token, learned positions, padded steps
                 masked (never keys, not in the readout); --bottleneck per-modality (scenic's MBT:
                 one token set shared by all modalities) or per-pair (the paper's equations 8-9:
                 one set per pair of modalities); --readout per-modality (ours: a norm and a mean
                 per modality, concatenated) or joint (scenic's 'gap': one norm, the mean over
                 every real token)
   Training: AdamW, cross-entropy, gradient clipping, dev weighted F1 after every epoch, the best
   epoch's weights kept, early stop after --patience epochs without a better dev F1 (default off:
   MulT can sit at chance for 5-15 epochs before it finds an alignment). */
#include "tools/train/ablate.c"   /* the data checks and the training loop, shared with `mmspcl ablate` */

typedef struct opts {
    abl_fusion_cfg c;            /* kind, sizes, optimiser, seed (abl_fusion_defaults) */
    const char *path[3], *lens_path[3], *labels, *split, *save;
    int L[3], D[3];
    const char *kind_opt[4];     /* per fusion kind, the last option given that only it takes */
} opts;

static const char *const mod_name[3] = { "t", "a", "v" };
static const char *const kind_name[4] = { "linear", "mult", "bottleneck", "prune" };   /* by abl_kind */

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
            "                     [--readout per-modality|joint (default per-modality; joint: scenic's)]\n"
            "         prune:      [--prune-k 4] [--prune-threshold T (default: the arg-max rule)]\n"
            "                     [--prune-mods a|v|av (default: every modality but t)]\n"
            "                     [--prune-pool separate|joint (arg-max rule; default separate)]\n"
            "                     [--prune-proj D (common projection width; default 0: none)]\n"
            "Feature files: float32 [n][L][D], zero-padded; lengths: one per line (default: up to the\n"
            "last step that is not all zeros).\n"
            "Labels: one class per line. Split: train/dev/test (or 0/1/2) per line.\n"
            "Prints the dev weighted F1 of every epoch and, last, 'test weighted F1 XX.XX'.\n");
}

static int save_model(const abl_model *M, const char *path, mmspcl_error *err) {
    mmspcl_writer *wr = mmspcl_writer_create();
    float *hold = NULL;
    int rc = -1;
    if (!wr) { snprintf(err->msg, sizeof err->msg, "out of memory"); return -1; }
    if (!(M->kind == ABL_MULT ? mmspcl_mult_seq_train_write_config(&M->ms, wr) : mmspcl_fusion_write_config(&M->fu, wr, NULL)) &&
        !(M->kind == ABL_PRUNE && mmspcl_xprune_train_write_config(&M->xp, wr)) &&
        !mmspcl_params_write(&M->P, wr, NULL, 0, &hold, err) && !mmspcl_writer_save(wr, path, NULL, NULL, err))
        rc = 0;
    else if (!err->msg[0]) snprintf(err->msg, sizeof err->msg, "%s: cannot write", path);
    mmspcl_writer_free(wr);
    mmspcl_free(hold);
    return rc;
}

/* the value of option a, or NULL when a is not one of the per-modality options */
static int modality_option(opts *o, const char *a, const char *v) {
    int m;
    for (m = 0; m < 3; m++) {
        char k[4][16];
        snprintf(k[0], 16, "--%s", mod_name[m]);
        snprintf(k[1], 16, "--len-%s", mod_name[m]);
        snprintf(k[2], 16, "--dim-%s", mod_name[m]);
        snprintf(k[3], 16, "--lens-%s", mod_name[m]);
        if (!strcmp(a, k[0])) { o->path[m] = v; return 1; }
        if (!strcmp(a, k[1])) { o->L[m] = atoi(v); return 1; }
        if (!strcmp(a, k[2])) { o->D[m] = atoi(v); return 1; }
        if (!strcmp(a, k[3])) { o->lens_path[m] = v; return 1; }
    }
    return 0;
}

/* the fusion kind an option belongs to alone, or -1 for an option every kind takes */
static int option_kind(const char *a) {
    static const struct { const char *name; int kind; } only[] = {
        {"--mem-layers", ABL_MULT}, {"--pool", ABL_MULT}, {"--bottleneck", ABL_BOTTLENECK}, {"--readout", ABL_BOTTLENECK},
        {"--fusion-tokens", ABL_BOTTLENECK}, {"--fusion-start", ABL_BOTTLENECK}, {"--prune-k", ABL_PRUNE},
        {"--prune-threshold", ABL_PRUNE}, {"--prune-proj", ABL_PRUNE}, {"--prune-pool", ABL_PRUNE}, {"--prune-mods", ABL_PRUNE}};
    size_t k;
    for (k = 0; k < sizeof only / sizeof only[0]; k++)
        if (!strcmp(a, only[k].name)) return only[k].kind;
    return -1;
}

static int parse(int argc, char **argv, opts *o) {
    int i;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 1; }
        if (!v) { fprintf(stderr, "train_fusion: %s needs a value\n", a); return -1; }
        i++;
        if (option_kind(a) >= 0) o->kind_opt[option_kind(a)] = a;
        if (modality_option(o, a, v)) continue;
        if (!strcmp(a, "--fusion")) {
            if (!strcmp(v, "linear")) o->c.kind = ABL_LINEAR;
            else if (!strcmp(v, "mult")) o->c.kind = ABL_MULT;
            else if (!strcmp(v, "bottleneck")) o->c.kind = ABL_BOTTLENECK;
            else if (!strcmp(v, "prune")) o->c.kind = ABL_PRUNE;
            else { fprintf(stderr, "train_fusion: --fusion %s: expected linear, mult, bottleneck or prune\n", v); return -1; }
        } else if (!strcmp(a, "--labels")) o->labels = v;
        else if (!strcmp(a, "--split")) o->split = v;
        else if (!strcmp(a, "--save")) o->save = v;
        else if (!strcmp(a, "--epochs")) o->c.epochs = atoi(v);
        else if (!strcmp(a, "--batch")) o->c.batch = atoi(v);
        else if (!strcmp(a, "--patience")) o->c.patience = atoi(v);
        else if (!strcmp(a, "--d")) o->c.d = atoi(v);
        else if (!strcmp(a, "--heads")) o->c.heads = atoi(v);
        else if (!strcmp(a, "--layers")) o->c.layers = atoi(v);
        else if (!strcmp(a, "--mem-layers")) o->c.mem_layers = atoi(v);
        else if (!strcmp(a, "--prune-k")) o->c.prune_k = atoi(v);
        else if (!strcmp(a, "--prune-threshold")) o->c.prune_tau = atof(v);
        else if (!strcmp(a, "--fusion-tokens")) o->c.fusion_tokens = atoi(v);
        else if (!strcmp(a, "--fusion-start")) o->c.fusion_start = atoi(v);
        else if (!strcmp(a, "--lr")) o->c.lr = atof(v);
        else if (!strcmp(a, "--weight-decay")) o->c.wd = atof(v);
        else if (!strcmp(a, "--clip")) o->c.clip = atof(v);
        else if (!strcmp(a, "--dropout")) o->c.dropout = atof(v);
        else if (!strcmp(a, "--seed")) o->c.seed = (uint64_t)strtoull(v, NULL, 10);
        else if (!strcmp(a, "--prune-proj")) o->c.prune_proj = atoi(v);
        else if (!strcmp(a, "--prune-pool")) {
            if (strcmp(v, "separate") && strcmp(v, "joint")) { fprintf(stderr, "train_fusion: --prune-pool %s: expected separate or joint\n", v); return -1; }
            o->c.prune_joint = !strcmp(v, "joint");
        } else if (!strcmp(a, "--prune-mods")) {
            if (strcmp(v, "a") && strcmp(v, "v") && strcmp(v, "av")) { fprintf(stderr, "train_fusion: --prune-mods %s: expected a, v or av\n", v); return -1; }
            o->c.prune_mods = (strchr(v, 'a') ? MMSPCL_MOD_A : 0u) | (strchr(v, 'v') ? MMSPCL_MOD_V : 0u);
        } else if (!strcmp(a, "--bottleneck")) {
            if (strcmp(v, "per-modality") && strcmp(v, "per-pair")) { fprintf(stderr, "train_fusion: --bottleneck %s: expected per-modality or per-pair\n", v); return -1; }
            o->c.bottleneck = !strcmp(v, "per-pair") ? MMSPCL_BOTTLENECK_PAIR : MMSPCL_BOTTLENECK_MODALITY;
        } else if (!strcmp(a, "--readout")) {
            if (strcmp(v, "per-modality") && strcmp(v, "joint")) { fprintf(stderr, "train_fusion: --readout %s: expected per-modality or joint\n", v); return -1; }
            o->c.readout = !strcmp(v, "joint") ? MMSPCL_READOUT_JOINT : MMSPCL_READOUT_MODALITY;
        } else if (!strcmp(a, "--pool")) {
            if (strcmp(v, "last") && strcmp(v, "mean")) { fprintf(stderr, "train_fusion: --pool %s: expected last or mean\n", v); return -1; }
            o->c.pool = !strcmp(v, "mean") ? MMSPCL_POOL_MEAN : MMSPCL_POOL_LAST;
        } else { fprintf(stderr, "train_fusion: unknown option %s\n", a); return -1; }
    }
    return 0;
}

static int check_opts(const opts *o) {
    int m, present = 0;
    for (m = 0; m < 4; m++)
        if (m != (int)o->c.kind && o->kind_opt[m]) {
            fprintf(stderr, "train_fusion: %s is an option of --fusion %s, not of --fusion %s\n", o->kind_opt[m], kind_name[m], kind_name[o->c.kind]);
            return -1;
        }
    for (m = 0; m < 3; m++) {
        if (!o->path[m]) continue;
        present++;
        if (o->L[m] < 1 || o->D[m] < 1) { fprintf(stderr, "train_fusion: --%s needs --len-%s >= 1 and --dim-%s >= 1\n", mod_name[m], mod_name[m], mod_name[m]); return -1; }
    }
    if (present < 2 || !o->labels || !o->split) { fprintf(stderr, "train_fusion: needs two or three modalities, --labels and --split\n"); return -1; }
    if (o->c.epochs < 1 || o->c.batch < 1 || o->c.batch > 1024 || !(o->c.lr > 0) || o->c.prune_k < 1 || o->c.prune_proj < 0) {
        fprintf(stderr, "train_fusion: --epochs >= 1, 1 <= --batch <= 1024, --lr > 0, --prune-k >= 1, --prune-proj >= 0\n");
        return -1;
    }
    for (m = 1; m < 3; m++)
        if ((o->c.prune_mods & (1u << m)) && !o->path[m]) {
            fprintf(stderr, "train_fusion: --prune-mods names %s, which has no --%s file\n", mod_name[m], mod_name[m]);
            return -1;
        }
    return 0;
}

/* each epoch's line: loss, dev weighted F1 and accuracy, "(best)" when the dev F1 improved */
static void print_epoch(void *user, int epoch, double loss, double f1, double acc) {
    double *best_f1 = (double *)user;
    printf("epoch %3d  train loss %.4f  dev weighted F1 %6.2f  dev accuracy %6.2f%s\n", epoch, loss, 100 * f1, 100 * acc,
           f1 > *best_f1 ? "  (best)" : "");
    fflush(stdout);
    if (f1 > *best_f1) *best_f1 = f1;
}

int main(int argc, char **argv) {
    opts o;
    abl_data d;
    abl_model M;
    abl_result res;
    mmspcl_error err;
    int rc = 1, pr;
    double f1 = 0, acc = 0, best_f1 = -1;
    memset(&o, 0, sizeof o);
    memset(&d, 0, sizeof d);
    memset(&M, 0, sizeof M);
    memset(&res, 0, sizeof res);
    memset(&err, 0, sizeof err);
    abl_fusion_defaults(&o.c);
    if ((pr = parse(argc, argv, &o)) != 0) { if (pr < 0) usage(stderr); return pr > 0 ? 0 : 2; }
    if (check_opts(&o)) { usage(stderr); return 2; }
    if (abl_data_load_files(&d, o.path, o.lens_path, o.L, o.D, o.labels, o.split, &err)) { fprintf(stderr, "%s\n", err.msg); goto done; }
    printf("%d rows (train %d, dev %d, test %d), %d classes; t %dx%d a %dx%d v %dx%d\n", d.n, d.count[0], d.count[1], d.count[2], d.C,
           d.L[0], d.D[0], d.L[1], d.D[1], d.L[2], d.D[2]);
    if (abl_model_create(&M, &d, &o.c, &err)) { fprintf(stderr, "train_fusion: %s\n", err.msg); goto done; }
    printf("fusion %s: %zu parameters\n", kind_name[o.c.kind], M.P.n);
    if (abl_fusion_train(&M, &d, &o.c, &res, print_epoch, &best_f1, &err)) { fprintf(stderr, "train_fusion: %s\n", err.msg); goto done; }
    printf("best epoch %d (dev weighted F1 %.2f)\n", res.best_epoch, 100 * res.dev_f1);
    if (abl_fusion_evaluate(&M, &d, 2, &f1, &acc, &err)) { fprintf(stderr, "train_fusion: %s\n", err.msg); goto done; }
    if (o.save && save_model(&M, o.save, &err)) { fprintf(stderr, "train_fusion: %s\n", err.msg); goto done; }
    if (o.save) printf("saved %s\n", o.save);
    printf("test accuracy %.2f\n", 100 * acc);
    printf("test weighted F1 %.2f\n", 100 * f1);
    rc = 0;
done:
    abl_model_free(&M);
    abl_data_free(&d);
    return rc;
}
