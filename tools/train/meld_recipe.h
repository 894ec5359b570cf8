/* tools/train/meld_recipe.h - the MELD text recipe: a small RoBERTa-layout encoder trained from
   scratch on MELD's training split, then the MSVE heads that the classifier file carries.

   It is an application of the library, not part of it: mmspcl.h runs the file it writes
   (mmspcl_classifier_load), mmspcl_train.h provides every training piece, and this recipe puts
   them in order, one stage a function over one state struct (tools/train/meld_recipe.c):
     1. vocabulary  the RoBERTa BPE cut to the tokens the training split's SPCL prompts use,
                    closed under the merges that build them, plus the 256 byte tokens and the
                    specials. Merges whose parts or result were cut are dropped, so the cut
                    tokenizer encodes the training text to the same tokens (renumbered) and any
                    other text to smaller pieces: nothing maps to <unk>.
     2. data        SPCL prompts of train and dev; every 5th training dialogue (index % 5 == 4)
                    is held out of the encoder's training (the heads learn from it); MLM chunks
     3. encoder     a new encoder, the CE heads, the optimisers, the SPCL queues
     4. MLM         masked-language-model pretraining on the training dialogues
     5. SPCL        fine-tuning with the SPCL loss, queues and curriculum, CE heads, early stop on
                    dev weighted F1 of the nearest class mean
     6. views       t, v of the held-out rows and dev; the n-gram view (TF-IDF + logistic
                    regressions, chosen on dev, out-of-fold on train)
     7. heads       MSVE ensembles (emotion, sentiment) and single-view emotion heads
     8. file        the classifier file (its layout: mmspcl.h, "13. Classifier")
   A checkpoint (encoder and CE heads with their AdamW state, the best weights so far, the stage,
   epoch, random generators and logs) is written after every epoch of stages 4 and 5; resume
   continues from it with the same result as an uninterrupted run. */
#ifndef MELD_RECIPE_H
#define MELD_RECIPE_H
#include "mmspcl.h"
#include "mmspcl_train.h"
#include "tools/train/meld_common.h"   /* meld_csv.h, prompts, embedding, logs, meld_progress_fn */

typedef struct meld_recipe {
    int hidden, layers, heads, ffn, max_len;       /* encoder; max_len of the SPCL prompt */
    int mlm_epochs, mlm_batch; double mlm_lr;      /* batch in chunks of <= max_len tokens */
    int spcl_epochs, batch, patience, warmup;
    double lr, head_lr, temperature, ce_weight, sent_weight, clip;
    int pool_size, K, curriculum;
    int holdout;              /* 1: train dialogues with index % 5 == 4 train the heads, not the encoder */
    int ngram_bits, msve_hidden, msve_epochs; double msve_dropout, msve_lr;
    uint64_t seed;
    const char *checkpoint;   /* written after every epoch (NULL: none) */
    const char *resume;       /* checkpoint to continue from (NULL: start fresh) */
} meld_recipe;
void meld_recipe_defaults(meld_recipe *r);

/* Trains on train (dev only for early stopping and selection) and writes the classifier file to
   out_path (f32). vocab[n_vocab] / merges[n_merges]: the full RoBERTa BPE (vocab.json by id,
   merges.txt). */
mmspcl_status meld_train(const meld_recipe *r, const meld_csv *train, const meld_csv *dev,
                         const char *const *vocab, int64_t n_vocab, const char *const *merges,
                         int64_t n_merges, const char *out_path, meld_progress_fn progress, void *user,
                         mmspcl_error *err);

/* The RoBERTa BPE cut to the tokens keep[id] != 0 (n_vocab bytes; the caller's, updated) plus the
   five specials and the byte alphabet, closed under the merges that build kept tokens; merges
   whose parts or result were cut are dropped (stage 1 above). vocab / merges point into the full
   arrays; <mask> gets the last id. Free vc->vocab and vc->merges. */
typedef struct meld_vocab_cut {
    const char **vocab; int64_t n_vocab;      /* new id -> string (points into the full arrays) */
    const char **merges; int64_t n_merges;
} meld_vocab_cut;
mmspcl_status meld_vocab_cut_keep(meld_vocab_cut *vc, const mmspcl_bpe *full, const char *const *vocab, int64_t n_vocab,
                                  const char *const *merges, int64_t n_merges, unsigned char *keep, mmspcl_error *err);

/* The n-gram view (stage 6): hashed TF-IDF of word uni+bigrams and character 2-5-grams
   (mmspcl_ngram_sparse, 2^bits buckets, idf from train), multinomial logistic regressions for
   emotion and sentiment (L2 strength and epochs chosen on dev), their out-of-fold
   log-probabilities on train (5 folds by dialogue: d % 5) and their dev log-probabilities. */
typedef struct meld_ngram {
    int bits;
    int64_t F;                         /* 2^bits */
    float *idf, *w[2], b[2][MMSPCL_MAX_CLASSES];   /* w[0] [7][F], w[1] [3][F] */
    float *train_lp, *dev_lp;          /* [rows][10]: 7 emotion then 3 sentiment log-probabilities */
    double dev_f1[2], dev_acc[2];      /* the final regressions on dev: emotion, sentiment */
} meld_ngram;
mmspcl_status meld_ngram_fit(meld_ngram *g, int bits, uint64_t seed, const meld_csv *train, const meld_csv *dev,
                             meld_progress_fn progress, void *user, mmspcl_error *err);
/* meld.ngram_bits, meld.idf, meld.lr.{emotion,sentiment}.{weight,bias} (f32) into wr; g must
   outlive the save */
mmspcl_status meld_ngram_write(const meld_ngram *g, mmspcl_writer *wr, mmspcl_error *err);
void meld_ngram_free(meld_ngram *g);
/* every key of w but `skip` and those starting with skip_prefix (either NULL: none) into wr */
mmspcl_status meld_copy_keys(const mmspcl_weights *w, mmspcl_writer *wr, const char *skip, const char *skip_prefix,
                             mmspcl_error *err);

/* Copies a classifier file, storing 2-D f32 tensors whose rows are a multiple of 32 as dtype
   (meld.protos and meld.log.* stay f32). */
mmspcl_status meld_quantize_file(const char *in_path, const char *out_path, mmspcl_dtype dtype,
                                 mmspcl_error *err);
/* Copies the classifier file base_path (without its own meld.media.*) adding media heads
   (mmspcl.h, 13.6): emo as meld.media.emotion and sent as meld.media.sentiment (either NULL:
   none), MSVE models over t [hidden], a, v; audio_features (NULL: not named) as
   meld.media.audio. The output is written whole or not at all. */
mmspcl_status meld_write_media_heads(const char *base_path, const mmspcl_msve_model *emo, const mmspcl_msve_model *sent,
                                     const char *audio_features, const char *out_path, mmspcl_error *err);

/* Media heads trained on the features `mmspcl extract -m BASE` wrote to folder feats (rows of
   split train train them, dev stops them early; t must be BASE's own t view, which the folder's
   manifest records): an MSVE head per task over t, a, v (as many as the folder has), inputs
   standardised on train; base_path + the heads written to out_path (meld_write_media_heads).
   combos: the combinations (MMSPCL_COMBO bits; 0: all those of the folder's modalities), each
   one Linear per layer of depth[c] (0: the paper's depth, mmspcl.h 12.6). */
typedef struct meld_media_recipe {
    int hidden, epochs, patience;
    double lr, dropout;
    uint64_t seed;
    unsigned combos;
    int depth[8];
} meld_media_recipe;
void meld_media_defaults(meld_media_recipe *r);
mmspcl_status meld_train_media(const meld_media_recipe *r, const char *base_path, const char *feats, const char *out_path,
                               meld_progress_fn progress, void *user, mmspcl_error *err);

/* A folder of mmspcl extract: rows, widths, split and labels of each row, and (rows.tsv) its
   Dialogue_ID / Utterance_ID. need_t: t.f32 is required (else it is not read). */
typedef struct meld_feats {
    int n, dims[3];
    float *x[3];                     /* [n][dims[m]] (NULL: width 0, or t not read) */
    int *y[2], *split;               /* emotion, sentiment ids; 0 train, 1 dev, 2 test */
    int64_t *dia, *utt;              /* [n] from rows.tsv */
    char *manifest;
} meld_feats;
mmspcl_status meld_feats_load(meld_feats *f, const char *dir, int need_t, mmspcl_error *err);
void meld_feats_free(meld_feats *f);
#endif
