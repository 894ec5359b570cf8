/* tools/train/spcl_finetune.h - SPCL fine-tuning of a converted RoBERTa checkpoint on MELD, as
   caskcsg/SPCL's train.py trains sup-simcse-roberta-large (HEAD cd48939; docs/TRAINING.md gives
   the line of the original each default follows, and every deliberate difference).

   An application of the library (mmspcl_train.h does the training, mmspcl.h runs the result),
   one stage a function over one state struct (tools/train/spcl_finetune.c):
     1. init    the encoder (mmspcl_roberta_train_from_weights) and the tokenizer of the --init
                file; refused before any data is read: a file that is not a RoBERTa encoder, no
                tokenizer or one without <s> </s> <mask>, max_len past the position table
     2. data    SPCL prompts of train and dev (max_len 256, mmspcl_spcl_prompts)
     3. heads   linear emotion and sentiment heads on detached features, AdamW, the SPCL queues
     (resume)   a checkpoint restores the weights, the optimiser state, the random generators,
                the best epoch so far and the logs: the run continues as if never stopped
     4. train   for e = 0..E: the epoch's training set (every turn's prompt plus, for turns > 3
                with probability 0.2, a prompt with the same context asking about a random
                earlier turn: data_process.py:74-83), its embeddings in evaluation mode, the
                class means; from e = 1 the dev weighted F1 by nearest class mean (early stop
                after `patience` epochs without a better one); the curriculum's selection; the
                queues restart at the class means; then (e < E) the epoch's steps: dropout on
                (RoBERTa's training mode), SPCL loss with the queues in HEAD's order, CE heads on
                detached features, clipping, AdamW (a cosine schedule rebuilt every epoch,
                warm-up in the first); a checkpoint after the epoch
     5. file    the classifier file of the best epoch (mmspcl.h, "13. Classifier"): roberta.*,
                tokenizer.*, meld.max_len, meld.protos (the class means of the training set's
                embeddings: SPCL's inference), meld.linear.{emotion,sentiment}.{weight,bias},
                meld.default_head "protos", meld.log.spcl; written as OUT.tmp and renamed
   A batch of `batch` prompts may run as micro-batches (gradient accumulation): the contrastive
   loss still sees the whole batch (its embeddings first, under the dropout masks of the step,
   then every micro-batch again with the same masks for the backward), so the step is the one
   of the whole batch.
   With a fusion head (r->fusion), stage 3 also builds it (mmspcl_pfusion over z_t and the
   folder's a and v of each prompt's turn, matched by split, Dialogue_ID, Utterance_ID; a turn
   the folder lacks gets zeros), the SPCL loss, the queues, the curriculum, the class means and
   the linear heads work on z = fusion(z_t, a, v), the gradient flows through the fusion head
   into the encoder, and the file gets the joint head (meld.joint.*: mmspcl.h 13.6) besides
   meld.protos of z_t (text-only classification). */
#ifndef SPCL_FINETUNE_H
#define SPCL_FINETUNE_H
#include "tools/train/meld_common.h"

typedef struct spcl_ft_recipe {
    const char *init;          /* weight file: a RoBERTa encoder and its tokenizer (mmspcl-convert) */
    int max_len;               /* 256 */
    int epochs;                /* 10 */
    int batch, micro_batch;    /* 32; 0: the whole batch at once */
    int warmup, patience;      /* 128, 5 */
    double lr, head_lr;        /* 1e-5 encoder, 1e-3 heads */
    double weight_decay, clip; /* 0.01 (not biases and LayerNorm), 5 */
    double temperature;        /* 0.08 */
    int pool_size, K;          /* 512, 64 */
    int push_first;            /* 0: queues in HEAD's order (prototypes, then push) */
    int curriculum;            /* 1 */
    int augment;               /* 1: data_process.py's extra prompts */
    double augment_p;          /* 0.2 */
    double dropout;            /* 0.1: hidden and attention dropout (RoBERTa's configs) */
    int freeze;                /* 0: the embeddings and the bottom `freeze` layers stay fixed */
    int64_t max_steps;         /* 0: no limit; else stop after that many optimiser steps */
    int sentiment;             /* 1: a sentiment head too */
    uint64_t seed;             /* 42 (train.py's argparse default) */
    const char *checkpoint;    /* written after every epoch (NULL: none) */
    const char *resume;        /* checkpoint to continue from (NULL: start fresh) */
    /* joint training with a fusion head (docs/TRAINING.md, "Joint training"): the SPCL loss,
       the queues, the class means and the linear heads see z = fusion(z_t, a, v) */
    const char *fusion;        /* NULL: none; "linear", "mult", "bottleneck", or "prune" (pruning, then linear) */
    const char *features;      /* mmspcl extract folder with a.f32 and/or v.f32 of the train and dev rows */
    int fusion_dim;            /* width of z (0: the encoder's hidden size) */
    int prune_k, prune_proj;   /* "prune": head size (16), common projection width (0: none) */
    unsigned prune_mods;       /* "prune": pruning modalities, MMSPCL_MOD_* (0: a and v, those present) */
    int prune_joint;           /* "prune", arg-max rule: 1 one pool over a's and v's heads */
    double prune_tau;          /* "prune": > -1 the threshold rule with this threshold; else arg-max */
} spcl_ft_recipe;
void spcl_ft_defaults(spcl_ft_recipe *r);

/* Fine-tunes r->init on train (dev for early stopping) and writes the classifier file to
   out_path. progress stages: "init", "data", "resume", "embed", "dev", "spcl" (one message per
   step: "step S: spcl ..., ce ..."; an epoch summary "SPCL epoch E/N: ..."), "file". */
mmspcl_status spcl_finetune(const spcl_ft_recipe *r, const meld_csv *train, const meld_csv *dev, const char *out_path,
                            meld_progress_fn progress, void *user, mmspcl_error *err);
#endif
