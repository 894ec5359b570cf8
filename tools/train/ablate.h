/* The ablation grid of `mmspcl ablate` (tools/cli/cmd_ablate.c): a feature set in the files of
   examples/train_fusion and examples/train_msve (DIR/{t,a,v}.f32 float32 [n][L][D] zero-padded,
   DIR/lens_{t,a,v}.txt optional, DIR/labels.txt, DIR/split.txt; mmspcl extract's folders are the
   L = 1 case) and the two trainers the grid runs:
     abl_fusion_run   one fusion head over a subset of the modalities, trained by the same
                      functions examples/train_fusion uses (abl_model_create, abl_fusion_train,
                      abl_fusion_evaluate): the same numbers as a train_fusion run with the same
                      options; tests/test_ablate.c)
     abl_msve_run     MSVE (mmspcl_msve_train) on the sequences mean-pooled over real steps
   Everything reports through mmspcl_error; nothing prints. */
#ifndef MMSPCL_ABLATE_H
#define MMSPCL_ABLATE_H
#include "mmspcl.h"
#include "mmspcl_train.h"

typedef struct abl_data {
    float *x[3];                 /* [n][L][D] (NULL: absent) */
    int *lens[3];                /* [n] real steps, 1..L */
    int L[3], D[3], n, C;
    int *y, *split;              /* classes 0..C-1; 0 train, 1 dev, 2 test */
    int count[3];                /* rows per split */
} abl_data;

/* Loads dir's files. L[m], D[m] (> 0) give the shape of modality m's file; 0, 0: taken from
   dir/extract.txt (mmspcl extract's manifest: dim.m, L = 1) when it exists, else the modality
   is absent; a file given a shape must exist. Checks as train_fusion: whole rows, the same row
   count everywhere, lengths 1..L, zeros past each length, labels >= 0, every split non-empty. */
mmspcl_status abl_data_load(abl_data *d, const char *dir, const int L[3], const int D[3], mmspcl_error *err);
/* The same checks over named files (examples/train_fusion): path[m] NULL: modality m absent, else
   L[m], D[m] >= 1; lens_path[m] NULL: lengths inferred (up to the last step not all zeros). */
mmspcl_status abl_data_load_files(abl_data *d, const char *const path[3], const char *const lens_path[3], const int L[3],
                                  const int D[3], const char *labels, const char *split, mmspcl_error *err);
void abl_data_free(abl_data *d);

typedef enum { ABL_LINEAR, ABL_MULT, ABL_BOTTLENECK, ABL_PRUNE } abl_kind;

/* train_fusion's options (its defaults: abl_fusion_defaults) and the modalities used */
typedef struct abl_fusion_cfg {
    abl_kind kind;
    unsigned mods;               /* MMSPCL_MOD_* bits, at least two present ones */
    int epochs, batch, patience, d, heads, layers, mem_layers, pool, prune_k, fusion_tokens, fusion_start, bottleneck;
    int prune_joint, prune_proj;
    int readout;                 /* bottleneck: MMSPCL_READOUT_MODALITY (ours) or _JOINT (scenic's) */
    unsigned prune_mods;         /* 0: every present modality but t */
    double lr, wd, clip, dropout, prune_tau;   /* prune_tau NAN: the arg-max rule */
    uint64_t seed;
} abl_fusion_cfg;
void abl_fusion_defaults(abl_fusion_cfg *c);

typedef struct abl_result {
    double test_f1, test_acc, dev_f1;   /* weighted F1 / accuracy in 0..1 */
    int best_epoch, epochs_run;          /* best_epoch counted from 1 */
    size_t params;
} abl_result;

/* called after every epoch (epoch from 1; dev weighted F1 and accuracy in 0..1), may be NULL */
typedef void (*abl_epoch_fn)(void *user, int epoch, double loss, double dev_f1, double dev_acc);

/* One fusion head and its batch buffers (batches up to 1024 rows). abl_fusion_run is
   abl_model_create, abl_fusion_train, abl_fusion_evaluate(split 2) over the chosen modalities;
   examples/train_fusion calls the three itself (it prints and saves between them). */
typedef struct abl_model {
    abl_kind kind;
    mmspcl_params P;
    mmspcl_mult_seq_train ms;    /* mult */
    mmspcl_fusion fu;            /* linear, prune, bottleneck */
    mmspcl_xprune_train xp;      /* prune */
    double *x[3], *tmp[3], *dtmp[3], *logits;   /* one batch's inputs, the fusion's inputs (prune: the pooled pruned steps), logits */
    double *seq[3], *dseq[3];    /* prune: one batch's pruned sequences [nb][L][width] and their gradients */
    int *lens[3];
} abl_model;
/* weights from c->seed; every modality of d with D[m] != 0 is an input. Free M even on failure. */
mmspcl_status abl_model_create(abl_model *M, const abl_data *d, const abl_fusion_cfg *c, mmspcl_error *err);
void abl_model_free(abl_model *M);
/* c->epochs epochs of shuffled batches (generator c->seed + 17), dev F1 after each, early stop
   after c->patience (> 0) epochs without a better one; the best dev epoch's weights end in M->P.w;
   r->best_epoch, epochs_run, dev_f1 set */
mmspcl_status abl_fusion_train(abl_model *M, const abl_data *d, const abl_fusion_cfg *c, abl_result *r, abl_epoch_fn fn,
                               void *user, mmspcl_error *err);
/* weighted F1 and accuracy (0..1) of split s (0 train, 1 dev, 2 test), evaluation mode */
mmspcl_status abl_fusion_evaluate(abl_model *M, const abl_data *d, int s, double *f1, double *acc, mmspcl_error *err);

mmspcl_status abl_fusion_run(const abl_data *d, const abl_fusion_cfg *c, abl_result *r, abl_epoch_fn fn, void *user,
                             mmspcl_error *err);
/* MSVE over the mean-pooled modalities of cfg->dims != 0 (their widths are set from d); tc as
   mmspcl_msve_train takes it; model seed = tc->seed (as examples/train_msve) */
mmspcl_status abl_msve_run(const abl_data *d, const mmspcl_msve_cfg *cfg, const mmspcl_msve_train_cfg *tc, abl_result *r,
                           mmspcl_error *err);
#endif
