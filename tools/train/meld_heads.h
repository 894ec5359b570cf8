/* tools/train/meld_heads.h - MSVE heads that learn from every training row honestly: the views of
   each training row come from an encoder that never saw it (out-of-fold), the heads then run on
   the encoder fine-tuned on all of train.

   Inputs (the recipe tools/train/meld_model.sh makes them):
     model   the classifier of `mmspcl train --init PRETRAINED` on all of train (protos and the
             linear heads: the score view, mmspcl.h 13)
     oof     the K files of `mmspcl train --init PRETRAINED --folds K --fold F` (F = 0..K-1):
             the score view of fold F's rows under the encoder fine-tuned on the other folds
   Views (mmspcl.h, 13. Classifier; meld.view_t "scores"):
     t  the score view of the <mask> state: cosine to the 7 class means and the linear heads'
        10 logits [17]; out-of-fold on train, from `model` on dev and at inference
     a  the n-gram view: TF-IDF logistic regressions' log-probabilities [10], out-of-fold on
        train (5 folds by dialogue, meld_ngram_fit)
   Heads (MSVE, mmspcl_msve_train, inputs standardised on train, early stop on dev weighted F1):
   emotion (t, a), sentiment (t, a), view.t, view.a. The default heads are chosen on dev only:
   emotion: the MSVE ensemble or the SPCL prototypes (nearest class mean of t) of `model`;
   sentiment: the MSVE ensemble or the linear head. Every head's dev weighted F1 and accuracy go
   to meld.log.heads (ids: 0 emotion, 1 sentiment, 2 view.t, 3 view.a, 5 protos, 10 / 11 the
   n-gram regressions, 20 / 21 the linear heads). The output is `model` with these parts added
   (its own MSVE / n-gram parts, if any, replaced). Never reads the test split. */
#ifndef MELD_HEADS_H
#define MELD_HEADS_H
#include "tools/train/meld_common.h"

typedef struct meld_heads_recipe {
    int hidden, epochs, patience, ngram_bits;   /* 64, 60, 8, 17 */
    double lr, dropout;                         /* 1e-3, 0.3 */
    uint64_t seed;                              /* 1 */
} meld_heads_recipe;
void meld_heads_defaults(meld_heads_recipe *r);

mmspcl_status meld_heads_build(const meld_heads_recipe *r, const char *model_path, const char *const *oof_paths, int n_oof,
                               const meld_csv *train, const meld_csv *dev, const char *out_path, meld_progress_fn progress,
                               void *user, mmspcl_error *err);
#endif
