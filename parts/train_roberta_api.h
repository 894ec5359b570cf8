#ifndef MMSPCL_TRAIN_ROBERTA_API
#define MMSPCL_TRAIN_ROBERTA_API
/* ---------------------------------------------------------------------------------------------
   RoBERTa-layout encoder training (float32)

   The forward pass mirrors mmspcl_roberta_forward (mmspcl.h) step by step: word +
   position (pad_id + running count of non-pad tokens) + token type 0 embeddings, LayerNorm, then
   per layer q/k/v projections, per-sequence softmax attention (a packed batch: every sequence
   attends only to its own tokens, which is what a padding mask does), output projection,
   residual + post-LN, GELU (erf) FFN, residual + post-LN. Every matmul of the forward and the
   backward runs through mmspcl_linear (a backward matmul is a linear with a transposed operand,
   copied into scratch), so training runs at the kernels' SIMD speed, with OpenMP inside the
   kernels; results are bit-identical for any thread count.

   Parameters live twice: the double master copy in an mmspcl_params (AdamW, clipping, the
   checkpoint writer of mmspcl_train.h work on it) and a float mirror the passes read
   (mmspcl_rt_sync after each optimiser step). Tensor names are Hugging Face's
   (embeddings.word_embeddings.weight, encoder.layer.N.attention.self.query.weight, ...), so
   mmspcl_params_write(&m->P, wr, "", ...) plus mmspcl_rt_write_config gives a file that
   mmspcl_roberta_load reads. The optional masked-language-model head is RobertaLMHead:
   lm_head.dense -> GELU -> lm_head.layer_norm -> decoder tied to the word embeddings + lm_head.bias.

     mmspcl_rt m;
     mmspcl_rt_create(&m, &cfg, 1, seed, max_tokens, max_seq, &err);
     mmspcl_rt_forward(&m, ids, lengths, batch, seq, &err);     packed hidden: m.out [T][H]
     (compute dL/dout into dout [T][H]; for MLM: mmspcl_rt_mlm_loss)
     mmspcl_rt_backward(&m, dout, &err);                         gradients += into m.P.g
     mmspcl_grad_clip(&m.P, 5); mmspcl_adamw_step(&m.P, &cfg, lr); mmspcl_rt_sync(&m);
   ------------------------------------------------------------------------------------------ */
typedef struct mmspcl_rt_layer {
    size_t wq, bq, wk, bk, wv, bv, wo, bo, ln1_g, ln1_b, wi, bi, wo2, bo2, ln2_g, ln2_b;
} mmspcl_rt_layer;

typedef struct mmspcl_rt {
    mmspcl_roberta_config cfg;
    mmspcl_params P;            /* double master weights, gradients, AdamW moments */
    float *w;                   /* float mirror of P.w (same offsets) */
    float *g;                   /* float gradients of the last backward (same offsets) */
    size_t word, pos, type, eln_g, eln_b;
    mmspcl_rt_layer *L;
    int mlm;                    /* 1: the MLM head exists */
    size_t lm_w, lm_b, lm_ln_g, lm_ln_b, lm_bias;
    int max_tokens, max_seq;
    /* the last forward */
    int T, batch;
    int *starts, *lens;         /* [batch] packed offsets and lengths */
    int32_t *tok, *posid;       /* [T] */
    float *out;                 /* [T][H] final hidden states (packed) */
    float *cache;               /* activations kept for the backward */
    float *scratch;             /* backward scratch */
    size_t cache_n, scratch_n;
} mmspcl_rt;

/* max_tokens: most tokens in one packed batch; max_seq: longest sequence. */
mmspcl_status mmspcl_rt_create(mmspcl_rt *m, const mmspcl_roberta_config *cfg, int with_mlm,
                               uint64_t seed, int max_tokens, int max_seq, mmspcl_error *err);
void mmspcl_rt_free(mmspcl_rt *m);
/* float mirror <- P.w (after an optimiser step, params_read, or editing P.w) */
void mmspcl_rt_sync(mmspcl_rt *m);
/* ids [batch][seq], lengths[b] real tokens in row b; result in m->out, packed [T][H]. */
mmspcl_status mmspcl_rt_forward(mmspcl_rt *m, const int32_t *ids, const int *lengths, int batch,
                                int seq, mmspcl_error *err);
/* dout [T][H] = dL/d(m->out) of the last forward; ADDS dL/dparams into m->P.g (zero it first
   with mmspcl_params_zero_grad). demb [T][H] (may be NULL) receives dL/d(embedding sum), the
   input of the embedding LayerNorm (for checks). */
mmspcl_status mmspcl_rt_backward(mmspcl_rt *m, const float *dout, float *demb, mmspcl_error *err);
/* Masked-LM loss (mean cross-entropy over n rows of the last forward): rows[i] is a packed
   token index, target[i] its true id. Adds the head's gradients into m->P.g and writes
   dL/d(m->out) into dout [T][H] (rows not listed are set to 0). Needs with_mlm. */
double mmspcl_rt_mlm_loss(mmspcl_rt *m, const int *rows, const int32_t *target, int n, float *dout,
                          mmspcl_error *err);
/* general.architecture = "roberta" and the roberta.* hyper-parameters, as tools/convert writes */
mmspcl_status mmspcl_rt_write_config(const mmspcl_rt *m, mmspcl_writer *wr, mmspcl_error *err);
/* The encoder tensors (not the MLM head) into wr: matrices as dtype (f32, f16, q8_0, q4_0),
   vectors f32. hold receives a buffer to free after mmspcl_writer_save. */
mmspcl_status mmspcl_rt_write_tensors(const mmspcl_rt *m, mmspcl_writer *wr, mmspcl_dtype dtype,
                                      void **hold, mmspcl_error *err);

/* ---------------------------------------------------------------------------------------------
   MELD end to end: vocabulary cut, MLM pretraining, SPCL fine-tuning, text views, MSVE heads.

   Vocabulary: the RoBERTa BPE cut to the tokens the training split's SPCL prompts use, closed
   under the merges that build them, plus the 256 byte tokens and the specials. Merges whose
   parts or result were cut are dropped, so the cut tokenizer encodes the training text to the
   same tokens (renumbered) and any other text to smaller pieces: nothing maps to <unk>.
   Views of an utterance (the MSVE "modalities"):
     t  the encoder's hidden state at the SPCL prompt's <mask>            [hidden]
     a  the n-gram view: log-probabilities of two logistic regressions (7 emotions, 3
        sentiments) on hashed TF-IDF of the utterance's word uni+bigrams and character
        2..5-grams (2^ngram_bits buckets)                                    [10]
     v  the mean of the encoder's hidden states over the whole prompt      [hidden]
   Model file: the encoder (roberta.* keys, tokenizer.vocab/merges, so mmspcl_roberta_load and
   mmspcl_bpe_from_weights read it), meld.* keys, meld.idf, meld.protos (class means of t), MSVE
   heads meld.emotion.* and meld.sentiment.* (mmspcl_msve_load), single-view emotion heads
   meld.view.{t,a,v}.*, and the training log meld.log.{mlm,spcl,msve}.
   ------------------------------------------------------------------------------------------ */
typedef struct mmspcl_meld_recipe {
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
} mmspcl_meld_recipe;
void mmspcl_meld_recipe_defaults(mmspcl_meld_recipe *r);

/* stage "mlm" / "spcl" / "embed" / "msve"...; done of total steps in the stage; msg: a line
   summarising an epoch (NULL during an epoch) */
typedef void (*mmspcl_meld_progress_fn)(void *user, const char *stage, int done, int total,
                                        const char *msg);

/* Trains on train (dev only for early stopping and selection) and writes the model to out_path
   (f32). vocab[n_vocab] / merges[n_merges]: the full RoBERTa BPE (vocab.json by id, merges.txt). */
mmspcl_status mmspcl_meld_train(const mmspcl_meld_recipe *r, const mmspcl_meld *train,
                                const mmspcl_meld *dev, const char *const *vocab, int64_t n_vocab,
                                const char *const *merges, int64_t n_merges, const char *out_path,
                                mmspcl_meld_progress_fn progress, void *user, mmspcl_error *err);

/* Copies a weight file, storing 2-D tensors whose rows are a multiple of 32 as dtype
   (meld.protos and meld.log.* stay f32). */
mmspcl_status mmspcl_meld_quantize_file(const char *in_path, const char *out_path, mmspcl_dtype dtype,
                                        mmspcl_error *err);

/* Sparse hashed TF-IDF of a text: word uni+bigrams (lower-cased; ’ is '; letter/digit/' runs,
   other characters alone) and character 2..5-grams of each space-padded word, each block
   (1 + log tf) * idf and l2-normalised, buckets mod 2^nbits. Writes at most cap (index, value)
   pairs sorted by index; returns the full count (-1: out of memory). idf NULL: 1. */
int mmspcl_ngram_sparse(const char *text, int nbits, const float *idf, int32_t *idx, float *val, int cap);

/* A trained MELD model, ready for inference (mmspcl.h only). */
typedef struct mmspcl_meld_model {
    mmspcl_weights *w;
    mmspcl_roberta *enc;
    mmspcl_bpe *tok;
    mmspcl_msve emotion, sentiment;
    int has_sentiment;
    const float *idf, *protos;
    float *lr_w[2];                  /* emotion [7][2^bits], sentiment [3][2^bits] (dequantized) */
    const float *lr_b[2];
    int hidden, max_len, ngram_bits, max_batch;
    int emo_lr, sent_lr;             /* 1: the default head is the n-gram LR (it beat the MSVE on dev) */
    double dev_f1[2][2];             /* [emotion, sentiment][MSVE, LR] dev weighted F1 from the training log */
} mmspcl_meld_model;
mmspcl_status mmspcl_meld_model_load(mmspcl_meld_model *m, const char *path, mmspcl_error *err);
void mmspcl_meld_model_free(mmspcl_meld_model *m);
/* The three views of every turn of a dialogue: t, v [n][hidden], a [n][10]. */
mmspcl_status mmspcl_meld_features(mmspcl_meld_model *m, const mmspcl_turn *turns, int n, float *t,
                                   float *a, float *v, mmspcl_error *err);
/* Class probabilities (softmax of the summed MSVE logits) for every turn: emo [n][7],
   sent [n][3] (may be NULL). head: NULL (the default: for each task, whichever of the MSVE
   ensemble and the n-gram LR had the higher dev weighted F1 in training), "emotion" (the ensemble), "view.t", "view.a",
   "view.v" (single-view heads), "lr" (the n-gram logistic regression alone), "protos" (nearest class mean of t, scores G as probabilities
   after a softmax with temperature 0.08). */
mmspcl_status mmspcl_meld_predict(mmspcl_meld_model *m, const mmspcl_turn *turns, int n,
                                  const char *head, float *emo, float *sent, mmspcl_error *err);
/* The heads on views already computed (mmspcl_meld_features): head as above (emo may be NULL),
   sent_head NULL (default), "sentiment" (MSVE) or "lr". */
mmspcl_status mmspcl_meld_heads(mmspcl_meld_model *m, const float *t, const float *a, const float *v, int n,
                                const char *head, const char *sent_head, float *emo, float *sent, mmspcl_error *err);
#endif /* MMSPCL_TRAIN_ROBERTA_API */
