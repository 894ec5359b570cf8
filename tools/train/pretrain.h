/* tools/train/pretrain.h - masked-language-model pretraining of a RoBERTa-layout encoder on plain
   text (the corpus of ../shared/data/corpus: Friends transcripts, Project Gutenberg prose) and
   MELD's training transcripts, for `mmspcl train --init` to fine-tune with SPCL.

   One stage a function over one state struct (tools/train/pretrain.c):
     1. text        every source cut into units: a dialogue turn "speaker:text" (as the SPCL
                    prompt writes it, mmspcl_spcl_clean) or a prose paragraph; a dialogue or a
                    file is a document
     2. vocabulary  the units tokenised with the full RoBERTa BPE; kept: every token of MELD's
                    training units and every other token seen at least min_count times, closed
                    under the merges that build them, plus bytes and specials
                    (meld_vocab_cut_keep): nothing maps to <unk>
     3. chunks      the units re-tokenised with the cut BPE, each followed by </s>, packed into
                    chunks <s> u u u ... of at most max_len tokens (a new document starts a new
                    chunk; a unit longer than a chunk is cut into pieces)
     4. encoder     a new encoder with RobertaLMHead (decoder tied to the word embeddings);
                    optionally the word embeddings of whole-word tokens initialised from GloVe
     5. MLM         epochs over the chunks (dialogue chunks repeated dialogue_repeat times per
                    epoch), BERT masking (15 %: 80 % <mask>, 10 % random, 10 % kept), AdamW,
                    warm-up then cosine over the whole run, clipping; a checkpoint every
                    ckpt_minutes and at every epoch end; the run may stop early (max_minutes,
                    max_steps) and continue from its checkpoint later with the same schedule
     6. file        the encoder (roberta.*, no MLM head) and the cut tokenizer (tokenizer.*):
                    a weight file mmspcl train --init takes; also written when the run stops
                    early (the weights so far)
   Never reads MELD dev or test: the caller passes the training split only. */
#ifndef PRETRAIN_H
#define PRETRAIN_H
#include "tools/train/meld_common.h"

/* a source text: kind 0 dialogue lines ("Speaker: text"; a line starting with "====" or a
   blank line starts a new dialogue), kind 1 prose (paragraphs separated by blank lines) */
typedef struct pretrain_text {
    const char *name;
    const char *bytes;
    size_t size;
    int kind;
} pretrain_text;

typedef struct pretrain_recipe {
    int hidden, layers, heads, ffn, max_len;   /* 256, 4, 4, 1024, 128 */
    int epochs, batch;                         /* 3, 32 chunks */
    double lr, warmup_frac, clip, mask_p;      /* 5e-4, 0.02, 1.0, 0.15 */
    int min_count;                             /* 4: vocabulary threshold */
    int dialogue_repeat;                       /* 2: dialogue chunks per epoch */
    double max_minutes;                        /* 0: no limit; else stop (with a checkpoint) after that long */
    int64_t max_steps;                         /* 0: no limit; else stop after that many optimiser steps in total */
    double ckpt_minutes;                       /* 10 */
    const char *glove_words, *glove_vectors;   /* NULL: no GloVe initialisation */
    int glove_dim;                             /* 100 */
    uint64_t seed;                             /* 1 */
    const char *checkpoint;                    /* written during the run (NULL: none) */
    const char *resume;                        /* checkpoint to continue from (NULL: start fresh) */
} pretrain_recipe;
void pretrain_defaults(pretrain_recipe *r);

/* Pretrains on texts[0..n_texts) and the dialogues of meld_train (may be NULL), writes the
   encoder and tokenizer to out_path. vocab / merges: the full RoBERTa BPE. *finished: 1 when
   every epoch ran, 0 when max_minutes / max_steps stopped it (the file then holds the weights so
   far; --resume CHECKPOINT continues). progress stages: "text", "vocab", "data", "glove",
   "resume", "mlm" (steps, and a message every few hundred steps and per epoch), "file". */
mmspcl_status pretrain_run(const pretrain_recipe *r, const pretrain_text *texts, int n_texts, const meld_csv *meld_train,
                           const char *const *vocab, int64_t n_vocab, const char *const *merges, int64_t n_merges,
                           const char *out_path, meld_progress_fn progress, void *user, int *finished, mmspcl_error *err);
#endif
