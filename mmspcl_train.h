/* mmspcl_train.h - training for MM-SPCL's heads in plain C: SPCL loss with prototype queues and
   curriculum, MSVE, cross-modal pruning, fusion heads, AdamW. Needs mmspcl.h.
   Public domain / MIT dual licence (see mmspcl.h).

   HOW TO INCLUDE
     #include "mmspcl.h"
     #include "mmspcl_train.h"               declarations, anywhere
     In exactly one C or C++ file:   #define MMSPCL_TRAIN_IMPLEMENTATION before the include.
     MMSPCL_IMPLEMENTATION may be in the same file or in another one (the library archive).

   CONTENTS
     Every numbered title heads its section twice: over the declarations (in the include guard)
     and over the implementation (after IMPLEMENTATION), in the same order; a search for
     "9. MSVE" finds both; so does one for a subsection (N.M), "4.6 Attention core".
     The OpenMP and allocator macros are mmspcl.h's (INTERNALS SHARED BY BOTH IMPLEMENTATIONS).
      1. Random numbers
      2. Parameters
      3. Optimiser
      4. Layers
           4.1 Linear; 4.2 Layer norm; 4.3 Activations; 4.4 Dropout; 4.5 MLP; 4.6 Attention core;
           4.7 Transformer block; 4.8 Softmax cross-entropy
      5. SPCL loss, queues, prototypes, curriculum
           5.1 SPCL loss; 5.2 Queues and prototypes; 5.3 Class means and curriculum
      6. Cross-modal pruning, training twin
      7. Fusion heads
      8. Data sets and training reports
      9. MSVE
     10. SPCL model
     11. RoBERTa-layout encoder training
     12. Sequence MulT, training twin

   PRECISION AND THREADS
     Training computes in double: parameters, gradients, activations. Every backward pass is
     checked against central finite differences (tests/test_train.c), and the heads are small
     (MSVE is ~350K parameters) so double costs little. Checkpoints are written as f32 in the
     weight format of mmspcl.h, under the names its loaders read (mmspcl_msve_load, ...), so a
     trained head runs at inference with mmspcl.h alone.
     With -fopenmp, loops over independent rows / columns / (sequence, head) pairs run in
     parallel; every sum keeps one fixed order, so results are bit-identical for any number of
     threads. No global state: a model, its parameters and its random generator are structs the
     caller owns. Config: MMSPCL_TRAIN_MIN_PARALLEL_WORK (default 1e6 multiply-adds): smaller
     loops stay on the calling thread (starting threads costs more than they save there).

   QUICK START (MSVE on per-utterance features; examples/train_msve.c is the full program)
     mmspcl_msve_cfg cfg = {0};  mmspcl_msve_train_cfg tc;  mmspcl_msve_model M;
     cfg.n_classes = 7; cfg.dims[0] = 1024; cfg.dims[1] = 88; cfg.dims[2] = 512;
     cfg.hidden = 100; cfg.dropout = 0.1;                    (combos 0: all seven; depth[] 0:
                                                              the paper's mix, tv 2, tav 3, rest 1)
     mmspcl_msve_model_create(&M, &cfg, seed, &err);
     mmspcl_msve_train_defaults(&tc);                        (k = 2, AdamW 1e-4, clip 5, ...)
     mmspcl_msve_train(&M, &train, &dev, &tc, &report, NULL, NULL, &err);
     mmspcl_msve_model_predict(&M, test.x, test.n, 0, pred, NULL, &err);
     mmspcl_msve_model_save(&M, "msve.bin", "msve", 0, &err); -> mmspcl_msve_load(w, "msve")

   STYLE (llm.c)
     Each layer's _forward and _backward sit side by side and are plain loops over the
     equations written above them. Backward passes ACCUMULATE (+=) into input gradients and into
     the parameter gradients P->g, so residual and shared inputs need no extra code; call
     mmspcl_params_zero_grad before each step. A layer's cache (sized by its _cache_size) holds
     what its backward needs plus the backward's own scratch.

   API IN BRIEF
     Random numbers   mmspcl_rng_seed / _u64 / _uniform / _normal / _int / _shuffle (xoshiro256**)
     Parameters       mmspcl_params: every tensor of a model in one flat array w, its gradient g
                      and AdamW moments m, v; tensors are registered by name (mmspcl_params_add)
                      and layers keep offsets into w.
                      mmspcl_params_write / _read: checkpoint (f32), optionally with AdamW state
     Optimiser        mmspcl_grad_clip / _multi (global L2 norm, as torch.nn.utils.clip_grad_norm_,
                      over one or several parameter sets), mmspcl_adamw_step (decoupled weight
                      decay, as torch.optim.AdamW; per-tensor decay mask and frozen flag),
                      mmspcl_lr_cosine (linear warm-up then cosine, as transformers'
                      get_cosine_schedule_with_warmup)
     Layers           mmspcl_lin (Linear), mmspcl_ln (LayerNorm), mmspcl_act_* (GELU erf, ReLU),
                      mmspcl_dropout_*, mmspcl_mlp, mmspcl_attn_* (multi-head scaled dot-product
                      core with key masks), mmspcl_block (pre-LN transformer layer, self- or
                      cross-attention), mmspcl_ce_loss (softmax cross-entropy, class weights)
     SPCL             mmspcl_spcl_loss (loss and gradient for given prototypes),
                      mmspcl_spcl (per-class queues and prototypes), mmspcl_spcl_step,
                      mmspcl_class_means, mmspcl_curriculum_difficulty / _select
     Pruning          mmspcl_prune_train_forward / _backward (double twin of mmspcl_prune_apply);
                      mmspcl_xprune_train: pruning as a layer (two pruning modalities, the
                      threshold rule, the common projection), forward, backward, config
     Fusion heads     mmspcl_fusion: LINEAR (a), MULT (b), MBT (c); forward, backward, save;
                      mmspcl_fusion_forward_seq: MBT over sequences with a padding mask
                      mmspcl_mult_seq_train: MulT over sequences as its code does it (12)
     Models           mmspcl_msve_model + mmspcl_msve_train (early stopping on validation
                      weighted F1); mmspcl_spcl_model (mmspcl_pfusion: optional pruning layer
                      + fusion head; linear classifier) + mmspcl_spcl_train (SPCL loss, curriculum, nearest-prototype
                      validation, as caskcsg/SPCL's train.py)
     Checkpoints      mmspcl_msve_model_save / _load, mmspcl_spcl_model_save / _load: f32 weight
                      files that mmspcl.h's loaders run at inference; with_optim = 1 adds the
                      AdamW state so that training resumes where it stopped
     RoBERTa          mmspcl_roberta_train (f32 passes on the SIMD kernels, double master
                      weights): _create (new) or _from_weights (a converted checkpoint), _forward /
                      _backward (dropout in training mode: mmspcl_roberta_train_dropout's masks),
                      _freeze, _mlm_loss, _write_config / _write_tensors

   SPCL, AS THE ORIGINAL CODE (caskcsg/SPCL spcl_loss.py) DOES IT
     Score G(a,b) = (1 + cos(a,b)) / 2 + 1e-8, cos as torch's cosine_similarity (norms clamped
     at 1e-8). Anchors are the batch items; the candidates of anchor i are every other batch item
     and the C prototypes. s_ia = G(z_i, r_a) / temperature.
       pos_i = sum over a != i with label_a == label_i of exp(s_ia)     (own prototype included)
       neg_i = sum over a with label_a != label_i of exp(s_ia)
       P_i   = number of such positives
       l_i   = -log( pos_i / (pos_i + neg_i) / (P_i + 1e-8) + 1e-8 )
       loss  = sum of l_i over anchors with l_i > 0.3, / (their number + 1e-8)
     (pos_i / (pos_i + neg_i) <= 1, so l_i >= log P_i: only an anchor whose one positive is its
     prototype can fall under 0.3.)
     Prototypes carry no gradient. Queues: one per class, initialised with the class mean; the
     prototype of a class is the mean of K distinct random entries, or the class mean while the
     queue holds fewer than K. Each step (mmspcl_spcl_step) first samples the prototypes from the
     queues as they are, then pushes the batch's (detached) embeddings: the order of the
     original's HEAD (cd48939, spcl_loss.py:23-43, since 917b781; its Oct-2022 commits 4b5ea69
     and cd4b456 pushed first, which push_first = 1 selects). An over-full queue drops one entry chosen at random (the
     original shuffles and keeps the last pool_size: the same distribution). Defaults:
     temperature 0.08, pool_size 512, K 64 (config.py).
     Curriculum (util_methods.py / train.py): difficulty_i = d(z_i, mean of its class) /
     sum_c d(z_i, mean_c), d = (1 - cos) / 2 + 1e-8; samples sorted easy -> hard; at epoch e of E
     the sample of rank r (of n) is kept with probability st + (ed - st) r / (n - 1),
     st = 1 - e/E, ed = e/E. (The original also drops the sample with index 0 every epoch, a
     side effect of masking indices by multiplication; we do not.)
     mmspcl_spcl_train follows train.py: a new cosine schedule every epoch (warm-up in the first
     only), batches without the last partial one, validation by nearest class mean.

   CHECKPOINT NAMES (f32; prefix "P")
     MSVE    P.n_classes P.hidden P.act P.combos P.dim.{t,a,v} P.depth.{c} (ints; no depth key:
             2); P.mean.{m} P.std.{m}; P.{c}.fc{1..depth}.{weight,bias}, c over the enabled
             combinations of t, a, ta, v, tv, av, tav                -> mmspcl_msve_load(w, "P")
     LINEAR  P.dim.{t,a,v} P.out_dim; P.proj.{weight,bias}           -> mmspcl_fuse_linear_load
     MULT    P.d_model n_heads n_cross n_self ff_mult out_dim act seq.{m} tok.{m};
             P.in.{m}.* P.pos.{m} P.{i}_{j}.layer.{l}.{ln_q,ln_kv,attn.{q,k,v,o},ln_ff,ff.fc1,ff.fc2}.*
             P.{i}_{j}.ln.* P.out.*                                  -> mmspcl_mult_load
     MBT     P.d_model n_heads n_layers fusion_start n_fusion bottleneck readout ff_mult out_dim act
             seq.{m} tok.{m}; P.in.{m}.* P.pos.{m} P.fusion_tokens [sets * n_fusion][d]
             P.{m}.layer.{l}.* P.{m}.ln.* (readout 0; 1: one P.ln.*) P.out.*  -> mmspcl_mbt_load
     XPRUNE  P.dim.{t,a,v} base mods K rule joint proj_dim (ints), P.tau (float);
             P.proj.{m}.{weight,bias} (proj_dim > 0)                 -> mmspcl_xprune_load
     SPCL model  spcl.kind spcl.n_classes; spcl.prune.* (XPRUNE above, when pruned);
             spcl.fusion.* (one of the three fusion heads above); spcl.classifier.{weight,bias};
             spcl.protos [C][out_dim]. Files of before XPRUNE (spcl.prune.{base,mod,K}: one
             pruning modality, arg-max; mod -1: none) still load, as that XPRUNE layer.
     With the optimiser state: adamw.step (int), adamw.m.NAME, adamw.v.NAME for every tensor.
*/
#ifndef MMSPCL_TRAIN_H
#define MMSPCL_TRAIN_H

#include "mmspcl.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
   1. Random numbers
   xoshiro256** seeded through splitmix64. Same seed, same stream, every platform.
   ------------------------------------------------------------------------------------------ */
typedef struct mmspcl_rng { uint64_t s[4]; } mmspcl_rng;
void mmspcl_rng_seed(mmspcl_rng *r, uint64_t seed);
uint64_t mmspcl_rng_u64(mmspcl_rng *r);
double mmspcl_rng_uniform(mmspcl_rng *r);          /* [0, 1), 53 random bits */
double mmspcl_rng_normal(mmspcl_rng *r);           /* N(0, 1), Box-Muller */
int mmspcl_rng_int(mmspcl_rng *r, int n);          /* uniform in 0..n-1 (n >= 1), unbiased */
void mmspcl_rng_shuffle(mmspcl_rng *r, int *a, int n); /* Fisher-Yates */

/* ---------------------------------------------------------------------------------------------
   2. Parameters
   One flat array per role, tensors registered by name.
   ------------------------------------------------------------------------------------------ */
typedef enum mmspcl_init {
    MMSPCL_INIT_ZERO = 0,
    MMSPCL_INIT_ONE,
    MMSPCL_INIT_UNIFORM,   /* U(-scale, scale) */
    MMSPCL_INIT_NORMAL     /* N(0, scale^2) */
} mmspcl_init;

typedef struct mmspcl_param_info {
    char name[160];
    size_t off, n;
    int ndim;
    int64_t shape[4];
    int decay;             /* 1: AdamW weight decay applies (Linear weights, embeddings); 0 for
                              biases and LayerNorm, as transformers' no_decay = ['bias',
                              'LayerNorm.weight'] that caskcsg/SPCL's train.py uses */
    int frozen;            /* 1: mmspcl_adamw_step leaves the tensor (and its moments) alone */
} mmspcl_param_info;

typedef struct mmspcl_params {
    double *w, *g, *m, *v; /* values, gradients, AdamW first and second moments */
    size_t n, cap;
    mmspcl_param_info *info;
    int n_info, cap_info;
    int64_t step;          /* AdamW steps taken */
    int oom;               /* set when an mmspcl_params_add could not allocate */
} mmspcl_params;

void mmspcl_params_init(mmspcl_params *P);
void mmspcl_params_free(mmspcl_params *P);
/* Registers a tensor and initialises it; returns its offset into w/g/m/v (valid across later
   adds; the pointers P->w etc. may move). On failure sets P->oom and returns 0. */
size_t mmspcl_params_add(mmspcl_params *P, const char *name, int ndim, const int64_t *shape,
                         int decay, mmspcl_init init, double scale, mmspcl_rng *rng);
const mmspcl_param_info *mmspcl_params_find(const mmspcl_params *P, const char *name);
void mmspcl_params_zero_grad(mmspcl_params *P);
/* Adds every tensor to wr as f32 named "prefix.NAME" (prefix NULL or "": NAME); with_optim also
   adds the AdamW state (adamw.m.prefix.NAME, adamw.v.prefix.NAME, key adamw.step). The floats
   live in *hold until the caller frees it (MMSPCL_FREE) after mmspcl_writer_save. */
mmspcl_status mmspcl_params_write(const mmspcl_params *P, mmspcl_writer *wr, const char *prefix,
                                  int with_optim, float **hold, mmspcl_error *err);
/* Reads every registered tensor back (f32, same shape) and, when the file has it, the AdamW
   state (resume: then training continues where it stopped). */
mmspcl_status mmspcl_params_read(mmspcl_params *P, const mmspcl_weights *w, const char *prefix,
                                 mmspcl_error *err);

/* ---------------------------------------------------------------------------------------------
   3. Optimiser
   ------------------------------------------------------------------------------------------ */
typedef struct mmspcl_adamw_cfg { double beta1, beta2, eps, weight_decay; } mmspcl_adamw_cfg;
void mmspcl_adamw_defaults(mmspcl_adamw_cfg *c);   /* 0.9, 0.999, 1e-8, 0.01 */
/* L2 norm of all gradients; when max_norm > 0 and the norm exceeds it, gradients are scaled by
   max_norm / (norm + 1e-6). Returns the norm before clipping. */
double mmspcl_grad_clip(mmspcl_params *P, double max_norm);
/* The same over the gradients of n parameter sets together (one global norm, as
   clip_grad_norm_ over a model whose parameters live in several sets). */
double mmspcl_grad_clip_multi(mmspcl_params *const *P, int n, double max_norm);
/* One step, t = ++P->step:  w -= lr * wd * w  (tensors with decay);  m = b1 m + (1-b1) g;
   v = b2 v + (1-b2) g^2;  w -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps).
   Frozen tensors are skipped (as torch skips a parameter without a gradient). */
void mmspcl_adamw_step(mmspcl_params *P, const mmspcl_adamw_cfg *c, double lr);
/* base * step/warmup during warm-up, then base * 0.5 (1 + cos(pi * progress)) */
double mmspcl_lr_cosine(int64_t step, int64_t warmup, int64_t total, double base);

/* ---------------------------------------------------------------------------------------------
   4. Layers
   n = rows; x [n][in] row-major; caches sized by the _cache_size functions.
   ------------------------------------------------------------------------------------------ */
/* ---- 4.1 Linear -------------------------------------------------------------------------- */
/* y = x W^T + b; W [out][in] ("NAME.weight", decayed), b [out] ("NAME.bias").
   Init as torch.nn.Linear: U(-1/sqrt(in), 1/sqrt(in)) for both. */
typedef struct mmspcl_lin { size_t w, b; int in, out; } mmspcl_lin;
void mmspcl_lin_create(mmspcl_lin *l, mmspcl_params *P, const char *name, int in, int out,
                       mmspcl_rng *rng);
void mmspcl_lin_forward(const mmspcl_params *P, const mmspcl_lin *l, const double *x, double *y, int n);
/* dW += dy^T x, db += sum dy, dx += dy W (dx may be NULL) */
void mmspcl_lin_backward(mmspcl_params *P, const mmspcl_lin *l, const double *x, const double *dy,
                         double *dx, int n);

/* ---- 4.2 Layer norm ---------------------------------------------------------------------- */
/* y = (x - mean) / sqrt(var + eps) * g + b over each row; stats [n][2] = mean, 1/sqrt(var+eps) */
typedef struct mmspcl_ln { size_t g, b; int dim; double eps; } mmspcl_ln;
void mmspcl_ln_create(mmspcl_ln *l, mmspcl_params *P, const char *name, int dim);
void mmspcl_ln_forward(const mmspcl_params *P, const mmspcl_ln *l, const double *x, double *y,
                       double *stats, int n);
void mmspcl_ln_backward(mmspcl_params *P, const mmspcl_ln *l, const double *x, const double *stats,
                        const double *dy, double *dx, int n);

/* ---- 4.3 Activations --------------------------------------------------------------------- */
/* GELU (erf form) or ReLU, elementwise; backward: dx += act'(x) dy */
void mmspcl_act_forward(mmspcl_act act, const double *x, double *y, size_t n);
void mmspcl_act_backward(mmspcl_act act, const double *x, const double *dy, double *dx, size_t n);

/* ---- 4.4 Dropout ------------------------------------------------------------------------- */
/* Inverted dropout: mask[i] = 0 with probability p, else 1/(1-p), drawn from rng in index
   order (rng NULL or p == 0: mask = 1); y = x * mask. backward: dx += dy * mask. */
void mmspcl_dropout_forward(mmspcl_rng *rng, double p, const double *x, double *y, double *mask,
                            size_t n);
void mmspcl_dropout_backward(const double *mask, const double *dy, double *dx, size_t n);

/* ---- 4.5 MLP ----------------------------------------------------------------------------- */
/* y = fc2(dropout(act(fc1 x))) */
typedef struct mmspcl_mlp { mmspcl_lin fc1, fc2; mmspcl_act act; double dropout; } mmspcl_mlp;
void mmspcl_mlp_create(mmspcl_mlp *m, mmspcl_params *P, const char *name, int in, int hidden,
                       int out, mmspcl_act act, double dropout, mmspcl_rng *rng);
size_t mmspcl_mlp_cache_size(const mmspcl_mlp *m, int n);
/* rng: dropout stream (NULL = evaluation, no dropout) */
void mmspcl_mlp_forward(const mmspcl_params *P, const mmspcl_mlp *m, const double *x, double *y,
                        int n, double *cache, mmspcl_rng *rng);
void mmspcl_mlp_backward(mmspcl_params *P, const mmspcl_mlp *m, const double *x, const double *dy,
                         double *dx, int n, double *cache);

/* ---- 4.6 Attention core ------------------------------------------------------------------ */
/* Multi-head scaled dot-product attention core for nb sequences: q [nb][tq][D], k, v
   [nb][tk][D]; head h owns columns h*D/H .. (h+1)*D/H. kmask [nb][tk] (1 = attend; NULL = all).
   probs [nb][H][tq][tk] (cache), ctx [nb][tq][D]. A query with every key masked gets ctx = 0. */
void mmspcl_attn_forward(const double *q, const double *k, const double *v, int nb, int tq, int tk,
                         int D, int H, const unsigned char *kmask, double *probs, double *ctx);
void mmspcl_attn_backward(const double *q, const double *k, const double *v, int nb, int tq, int tk,
                          int D, int H, const double *probs, const double *dctx, double *dq,
                          double *dk, double *dv);

/* ---- 4.7 Transformer block --------------------------------------------------------------- */
/* Pre-LN transformer layer (the training twin of mmspcl_head_block):
     x1 = x + Wo Attn(Wq LN_q(x), Wk kv, Wv kv),   kv = cross ? LN_kv(src) : LN_q(x)
     y  = x1 + MLP(LN_ff(x1))                      (MLP hidden ff, dropout on its hidden layer)
   x, y [nb][tq][D] (distinct arrays); src [nb][tk][D]; kmask [nb][tk] (cross) or [nb][tq] (self). */
typedef struct mmspcl_block {
    mmspcl_ln ln_q, ln_kv, ln_ff;
    mmspcl_lin q, k, v, o;
    mmspcl_mlp ff;
    int D, H, cross;
} mmspcl_block;
void mmspcl_block_create(mmspcl_block *b, mmspcl_params *P, const char *name, int D, int H, int ff,
                         mmspcl_act act, int cross, double dropout, mmspcl_rng *rng);
size_t mmspcl_block_cache_size(const mmspcl_block *b, int nb, int tq, int tk);
void mmspcl_block_forward(const mmspcl_params *P, const mmspcl_block *b, const double *x, double *y,
                          int nb, int tq, const double *src, int tk, const unsigned char *kmask,
                          double *cache, mmspcl_rng *rng);
/* dx += dL/dx, dsrc += dL/dsrc (cross layers; may be NULL) */
void mmspcl_block_backward(mmspcl_params *P, const mmspcl_block *b, const double *x, int nb, int tq,
                           const double *src, int tk, double *cache, const double *dy, double *dx,
                           double *dsrc);

/* ---- 4.8 Softmax cross-entropy ----------------------------------------------------------- */
/* Softmax cross-entropy, mean weighted as torch's CrossEntropyLoss(weight=w, ignore_index<0):
   loss = sum_i w[y_i] (-log softmax(z_i)[y_i]) / sum_i w[y_i] over rows with y_i >= 0.
   class_w NULL: all 1. dlogits [n][C] (may be NULL) is WRITTEN (not accumulated). */
double mmspcl_ce_loss(const double *logits, const int *y, int n, int C, const double *class_w,
                      double *dlogits);

/* ---------------------------------------------------------------------------------------------
   5. SPCL loss, queues, prototypes, curriculum
   The equations are in the top comment.
   ------------------------------------------------------------------------------------------ */
/* ---- 5.1 SPCL loss ----------------------------------------------------------------------- */
typedef struct mmspcl_spcl_stats { int anchors, active; double mean_anchor_loss; } mmspcl_spcl_stats;
/* Loss of the batch z [n][dim] (labels y, < 0 = ignored) against prototypes [C][dim].
   dz (may be NULL) += dloss/dz. anchor_loss [n] (may be NULL) receives each l_i (0 for
   ignored rows). */
mmspcl_status mmspcl_spcl_loss(const double *z, const int *y, int n, int dim, const double *protos,
                               int C, double temperature, double *loss, double *dz,
                               double *anchor_loss, mmspcl_spcl_stats *stats, mmspcl_error *err);

/* ---- 5.2 Queues and prototypes ----------------------------------------------------------- */
typedef struct mmspcl_spcl {
    int n_classes, dim, pool_size, K;
    double temperature;
    double *pool;          /* [C][pool_size + 1][dim] */
    int *len;              /* [C] */
    int *idx;              /* scratch [pool_size + 1] */
    double *centers;       /* [C][dim]: the class means the queues start from */
    double *protos;        /* [C][dim]: the prototypes of the last step */
    mmspcl_rng rng;
    int push_first;        /* mmspcl_spcl_step's order. 0 (the default): prototypes, then push
                              (HEAD cd48939); 1: push, then prototypes (Oct-2022 commits) */
} mmspcl_spcl;
mmspcl_status mmspcl_spcl_init(mmspcl_spcl *S, int n_classes, int dim, int pool_size, int K,
                               double temperature, uint64_t seed, mmspcl_error *err);
void mmspcl_spcl_free(mmspcl_spcl *S);
/* Every queue restarts as [centers_c] (centers [C][dim]: the class means, once per epoch). */
void mmspcl_spcl_reset(mmspcl_spcl *S, const double *centers);
void mmspcl_spcl_push(mmspcl_spcl *S, const double *z, const int *y, int n);
void mmspcl_spcl_prototypes(mmspcl_spcl *S);
/* prototypes, push, loss (the original's HEAD); with S->push_first: push, prototypes, loss */
mmspcl_status mmspcl_spcl_step(mmspcl_spcl *S, const double *z, const int *y, int n, double *loss,
                               double *dz, mmspcl_spcl_stats *stats, mmspcl_error *err);

/* ---- 5.3 Class means and curriculum ------------------------------------------------------ */
/* means [C][dim] of the rows of each class, counts [C] (may be NULL); an empty class gets 0s */
void mmspcl_class_means(const double *z, const int *y, int n, int dim, int C, double *means,
                        int *counts);
/* diff [n] (classes with counts[c] == 0 are left out of the sum; counts may be NULL) */
void mmspcl_curriculum_difficulty(const double *z, const int *y, int n, int dim, const double *means,
                                  const int *counts, int C, double *diff);
/* Kept sample indices, easiest first, into keep [n]; returns how many. 0 <= epoch < n_epochs. */
int mmspcl_curriculum_select(const double *diff, int n, int epoch, int n_epochs, mmspcl_rng *rng,
                             int *keep);

/* ---------------------------------------------------------------------------------------------
   6. Cross-modal pruning, training twin
   The selection of mmspcl_prune_apply, in double.
   ------------------------------------------------------------------------------------------ */
/* pruned [n][dp]; kept [n][ceil(dp/K)] (required: the backward reads it) */
mmspcl_status mmspcl_prune_train_forward(const double *base, int db, const double *prune, int dp,
                                         int K, int n, double *pruned, unsigned char *kept,
                                         mmspcl_error *err);
/* dprune += dpruned on kept heads (the base's gradient through pruning is zero: the choice of
   heads is piecewise constant) */
void mmspcl_prune_train_backward(const unsigned char *kept, int dp, int K, int n,
                                 const double *dpruned, double *dprune);
/* The threshold variant of mmspcl_prune_threshold_apply, in double (same selection for float
   inputs); its backward is mmspcl_prune_train_backward. */
mmspcl_status mmspcl_prune_train_threshold_forward(const double *base, int db, const double *prune, int dp,
                                                   int K, double tau, int n, double *pruned,
                                                   unsigned char *kept, mmspcl_error *err);

/* Cross-modal pruning as a layer (Table 4's {tav} and the paper's section 8.3): a base modality
   and one or two pruning modalities, an optional common projection, the arg-max or the
   threshold rule; the training twin of mmspcl_xprune (mmspcl.h 12.3, the equations there; the
   same mmspcl_xprune_select chooses the heads). Output per modality y[m] [n][width[m]]: the
   base as it is, each pruning modality with its zeroed heads; feed them to any fusion head
   (mmspcl_fusion with dims = the widths). Parameters (proj_dim > 0 only): "PREFIX.proj.{t,a,v}",
   Linear [proj_dim][dims[m]] with bias, PyTorch's default init. */
typedef struct mmspcl_xprune_train {
    mmspcl_xprune_cfg cfg;     /* cfg.mods resolved (never 0) */
    mmspcl_xprune_layout lay;
    char prefix[96];
    mmspcl_lin proj[3];
    /* the last forward */
    int n, tmax;               /* samples, the longest T of the last forward (1 for single vectors) */
    unsigned char *kept;       /* [n][tmax][lay.n_kept]: 1 kept, 0 zeroed */
    double *g;                 /* backward scratch [n][tmax][widest] */
    size_t kept_cap, g_cap;
} mmspcl_xprune_train;
mmspcl_status mmspcl_xprune_train_create(mmspcl_xprune_train *p, mmspcl_params *P, const char *prefix,
                                         const mmspcl_xprune_cfg *cfg, mmspcl_rng *rng, mmspcl_error *err);
void mmspcl_xprune_train_free(mmspcl_xprune_train *p);
/* x[m] [n][dims[m]] -> y[m] [n][width[m]] for the present modalities (y may not alias x) */
mmspcl_status mmspcl_xprune_train_forward(mmspcl_xprune_train *p, const mmspcl_params *P, const double *const x[3],
                                          int n, double *const y[3], mmspcl_error *err);
/* After a forward with the same x: dx[m] += dL/dx[m] (dx or entries may be NULL; dy entries too),
   parameter gradients += (the choice of heads carries no gradient; zeroed heads pass none). */
void mmspcl_xprune_train_backward(mmspcl_xprune_train *p, mmspcl_params *P, const double *const x[3], int n,
                                  const double *const dy[3], double *const dx[3]);
/* Over sequences, as mmspcl_xprune_forward_seq: x[m] [n][T[m]][dims[m]] -> y[m] [n][T[m]][width[m]],
   lens[m] [n] real steps 1..T[m] (lens or an entry NULL: all T[m]); padded steps of y are zero;
   step s of the base prunes step s of each pruning modality that has one, a step without a base
   step passes unchanged. T = {1, 1, 1} and lens NULL is mmspcl_xprune_train_forward. The
   backward takes the forward's x, T, lens and n; padded steps pass no gradient. */
mmspcl_status mmspcl_xprune_train_forward_seq(mmspcl_xprune_train *p, const mmspcl_params *P, const double *const x[3],
                                              const int T[3], const int *const lens[3], int n, double *const y[3],
                                              mmspcl_error *err);
void mmspcl_xprune_train_backward_seq(mmspcl_xprune_train *p, mmspcl_params *P, const double *const x[3], const int T[3],
                                      const int *const lens[3], int n, const double *const dy[3], double *const dx[3]);
/* the keys mmspcl_xprune_load reads: "PREFIX.dim.{t,a,v}" base mods K rule joint proj_dim tau
   (the tensors come from mmspcl_params_write with prefix NULL) */
mmspcl_status mmspcl_xprune_train_write_config(const mmspcl_xprune_train *p, mmspcl_writer *wr);

/* ---------------------------------------------------------------------------------------------
   7. Fusion heads
   (a) linear, (b) MulT, (c) MBT: structure as mmspcl_fuse_linear / mmspcl_mult /
   mmspcl_mbt in mmspcl.h. Inputs x[m] [n][dims[m]] for modalities with dims[m] > 0; MULT and
   MBT read each as seq[m] tokens of dims[m] / seq[m] values. Output y [n][out_dim].
   ------------------------------------------------------------------------------------------ */
typedef enum mmspcl_fusion_kind { MMSPCL_FUSION_LINEAR = 0, MMSPCL_FUSION_MULT = 1, MMSPCL_FUSION_MBT = 2 } mmspcl_fusion_kind;
typedef struct mmspcl_fusion_cfg {
    mmspcl_fusion_kind kind;
    int dims[3];           /* input width of t, a, v (0 = absent) */
    int out_dim;           /* LINEAR: the text width (1024) in the paper */
    int seq[3];            /* MULT/MBT: tokens per modality (dims[m] % seq[m] == 0) */
    int d_model, n_heads, ff_mult;
    int n_cross, n_self;   /* MULT: 5 and 2 in the paper */
    int n_layers, fusion_start, n_fusion; /* MBT: 5, 2, 8 in the paper */
    int bottleneck;        /* MBT: MMSPCL_BOTTLENECK_MODALITY (0, scenic's) or _PAIR (the paper's
                              equations 8-9): the sharing rules of mmspcl_mbt in mmspcl.h */
    int readout;           /* MBT: MMSPCL_READOUT_MODALITY (0, ours: "PREFIX.{m}.ln", out from
                              n_mod d) or _JOINT (scenic's 'gap': one "PREFIX.ln" over every
                              modality's tokens, the mean over all real tokens, out from d) */
    mmspcl_act act;
    double dropout;        /* on the blocks' MLP hidden layer, training only */
} mmspcl_fusion_cfg;
void mmspcl_fusion_defaults(mmspcl_fusion_cfg *c, mmspcl_fusion_kind kind);

typedef struct mmspcl_fusion {
    mmspcl_fusion_cfg cfg;
    char prefix[96];
    int tok[3], n_mod, n_pairs, L;
    int mods[3], pa[6], pb[6];           /* present modalities; MULT pairs (queries, keys) */
    mmspcl_lin proj;                     /* LINEAR */
    mmspcl_lin in_proj[3];               /* MULT, MBT */
    size_t pos[3], fusion_tokens;        /* MBT: fusion_tokens [n_sets * n_fusion][d_model] */
    int n_sets, sets[3][2], nset[3], members; /* MBT: slot s shares sets[s][0..nset[s]-1]; a set
                                                 is the mean of its `members` modalities' outputs */
    mmspcl_block *blocks;                /* MULT [n_pairs][L], MBT [n_mod][L] */
    mmspcl_ln *final_ln;                 /* MULT [n_pairs], MBT [n_mod] */
    mmspcl_lin out_proj;
    /* activations of the last forward (grown as needed) */
    double *act;
    size_t act_cap, *off;
    int act_n;
    int *lens, lens_on[3];               /* MBT: the last forward's lengths, slot s at lens + s * act_n */
    unsigned char *mask;                 /* MBT: key mask scratch */
    size_t lens_cap, mask_cap;
} mmspcl_fusion;
mmspcl_status mmspcl_fusion_create(mmspcl_fusion *f, mmspcl_params *P, const char *prefix,
                                   const mmspcl_fusion_cfg *cfg, mmspcl_rng *rng, mmspcl_error *err);
void mmspcl_fusion_free(mmspcl_fusion *f);
/* rng: dropout (NULL = evaluation) */
mmspcl_status mmspcl_fusion_forward(mmspcl_fusion *f, const mmspcl_params *P, const double *const x[3],
                                    int n, double *y, mmspcl_rng *rng, mmspcl_error *err);
/* MBT over sequences with a padding mask (mmspcl_mbt_forward_seq's rules): lens[m] [n] real tokens
   of modality m (1..seq[m]; lens or an entry NULL: all real); padded tokens are never keys and
   never enter the readout. The lengths are copied: mmspcl_fusion_backward uses them. Other kinds
   take lens NULL only. */
mmspcl_status mmspcl_fusion_forward_seq(mmspcl_fusion *f, const mmspcl_params *P, const double *const x[3],
                                        const int *const lens[3], int n, double *y, mmspcl_rng *rng, mmspcl_error *err);
/* After a forward with the same x and n. dx[m] += dL/dx[m] (dx, or any entry, may be NULL). */
void mmspcl_fusion_backward(mmspcl_fusion *f, mmspcl_params *P, const double *const x[3], int n,
                            const double *dy, double *const dx[3]);
/* hyper-parameter keys "outer.PREFIX.key" (outer NULL or "": "PREFIX.key"); the tensors come
   from mmspcl_params_write with the same outer prefix */
mmspcl_status mmspcl_fusion_write_config(const mmspcl_fusion *f, mmspcl_writer *wr, const char *outer);

/* ---------------------------------------------------------------------------------------------
   8. Data sets and training reports
   Per-utterance features (float, as they come from files): x[m] [n][dims[m]].
   ------------------------------------------------------------------------------------------ */
typedef struct mmspcl_dataset { const float *x[3]; const int *y; int n; } mmspcl_dataset;
typedef void (*mmspcl_train_log_fn)(void *user, int epoch, double train_loss, double val_f1);
typedef struct mmspcl_train_report {
    int epochs_run, best_epoch, steps;
    double first_loss, last_loss;  /* mean training loss of the first / last epoch */
    double best_val_f1;            /* validation weighted F1 at best_epoch */
} mmspcl_train_report;

/* ---------------------------------------------------------------------------------------------
   9. MSVE
   One network per enabled combination (depth[c] Linear layers, act and dropout between them:
   mmspcl.h 12.6); training sums the logits of k sampled combinations per batch before softmax
   cross-entropy; inference sums all enabled ones. A depth-2 network is mmspcl_mlp exactly
   (same names, initialisation and dropout draws as before depths existed).
   ------------------------------------------------------------------------------------------ */
typedef struct mmspcl_msve_cfg {
    int n_classes, dims[3], hidden;
    unsigned combos;       /* MMSPCL_COMBO bits (0: every combination of the present modalities) */
    mmspcl_act act;
    double dropout;
    int depth[8];          /* Linear layers of combination c, 1..3; 0: the paper's depth of c
                              (MMSPCL_MSVE_PAPER_DEPTHS: tv 2, tav 3, the others 1) */
} mmspcl_msve_cfg;
/* parameters a model of cfg would have (combos 0 and depths 0 resolved as create does them);
   0 when cfg is refused */
size_t mmspcl_msve_param_count(const mmspcl_msve_cfg *cfg);
typedef struct mmspcl_msve_model {
    mmspcl_msve_cfg cfg;   /* as given, with combos and depth[] resolved */
    mmspcl_params P;
    mmspcl_lin fc[8][MMSPCL_MSVE_MAX_DEPTH];
    float *mean[3], *std[3];   /* input standardisation (set by mmspcl_msve_train), or NULL */
    double *act;
    size_t act_cap, act_off[17];
    int act_n;
    unsigned act_combos;
} mmspcl_msve_model;
mmspcl_status mmspcl_msve_model_create(mmspcl_msve_model *M, const mmspcl_msve_cfg *cfg,
                                       uint64_t seed, mmspcl_error *err);
void mmspcl_msve_model_free(mmspcl_msve_model *M);
/* logits [n][C] (double) = sum of the MLPs of `combos` (0: all enabled); rng: dropout */
mmspcl_status mmspcl_msve_model_forward(mmspcl_msve_model *M, const float *const x[3], int n,
                                        unsigned combos, double *logits, mmspcl_rng *rng,
                                        mmspcl_error *err);
void mmspcl_msve_model_backward(mmspcl_msve_model *M, const double *dlogits);
/* pred [n] by argmax of the summed logits (logits may be NULL) */
mmspcl_status mmspcl_msve_model_predict(mmspcl_msve_model *M, const float *const x[3], int n,
                                        unsigned combos, int *pred, double *logits, mmspcl_error *err);

typedef struct mmspcl_msve_train_cfg {
    int epochs, batch, k, warmup, patience;
    double lr, weight_decay, clip;
    int standardize;           /* compute mean/std of the training features (1) */
    const double *class_weights; /* [C] for the cross-entropy, or NULL */
    uint64_t seed;
} mmspcl_msve_train_cfg;
void mmspcl_msve_train_defaults(mmspcl_msve_train_cfg *c);
/* Trains on train, evaluates val's weighted F1 after every epoch (never a test split), stops
   after `patience` epochs without improvement (0: never), and leaves the best epoch's weights
   in M. val may be NULL (then the last epoch is kept). */
mmspcl_status mmspcl_msve_train(mmspcl_msve_model *M, const mmspcl_dataset *train,
                                const mmspcl_dataset *val, const mmspcl_msve_train_cfg *cfg,
                                mmspcl_train_report *rep, mmspcl_train_log_fn log, void *user,
                                mmspcl_error *err);
/* prefix.* (as listed in the top comment) into a writer, to build a larger file; *hold receives
   a buffer to free after mmspcl_writer_save; with_optim also stores the AdamW state */
mmspcl_status mmspcl_msve_model_write(const mmspcl_msve_model *M, mmspcl_writer *wr, const char *prefix,
                                      int with_optim, float **hold, mmspcl_error *err);
/* The same as a file of its own */
mmspcl_status mmspcl_msve_model_save(const mmspcl_msve_model *M, const char *path, const char *prefix,
                                     int with_optim, mmspcl_error *err);
/* Rebuilds a model from a file written by mmspcl_msve_model_save (resume or fine-tune). */
mmspcl_status mmspcl_msve_model_load(mmspcl_msve_model *M, const mmspcl_weights *w, const char *prefix,
                                     mmspcl_error *err);

/* ---------------------------------------------------------------------------------------------
   10. SPCL model
   Optional cross-modal pruning -> fusion head -> embedding z; SPCL loss on z plus a
   linear classifier trained by cross-entropy on detached z (as the original's predictor), or
   cross-entropy alone through the whole head. Inference: nearest prototype (class means of the
   training embeddings) or the classifier.
   ------------------------------------------------------------------------------------------ */
/* Optional cross-modal pruning (mmspcl_xprune_train: one or two pruning modalities, arg-max or
   threshold rule, separate or joint, common projection), then a fusion head over its outputs:
   z = fusion(prune(x_t, x_a, x_v)). The embedding of the SPCL model, and of the joint training
   of the encoder with a fusion head (mmspcl train --init --fusion, docs/TRAINING.md).
   Parameters: the fusion head's under fusion_prefix (created first), then the pruning
   projection's under prune_prefix (proj_dim > 0 only). */
typedef struct mmspcl_pfusion {
    int dims[3];                  /* input widths of t, a, v (0 = absent) */
    int has_prune;
    mmspcl_xprune_train prune;
    mmspcl_fusion fusion;         /* cfg.dims = the pruning layer's output widths */
    double *y, *dy;               /* the last forward's pruned inputs, backward scratch */
    size_t cap;
} mmspcl_pfusion;
/* fusion->dims are the input widths; prune NULL: none (its dims are taken from fusion->dims) */
mmspcl_status mmspcl_pfusion_create(mmspcl_pfusion *f, mmspcl_params *P, const char *fusion_prefix,
                                    const char *prune_prefix, const mmspcl_fusion_cfg *fusion,
                                    const mmspcl_xprune_cfg *prune, mmspcl_rng *rng, mmspcl_error *err);
void mmspcl_pfusion_free(mmspcl_pfusion *f);
/* x[m] [n][dims[m]] (double) -> z [n][out_dim]; rng: dropout (NULL = evaluation) */
mmspcl_status mmspcl_pfusion_forward(mmspcl_pfusion *f, const mmspcl_params *P, const double *const x[3], int n,
                                     double *z, mmspcl_rng *rng, mmspcl_error *err);
/* after a forward with the same x and n: parameter gradients +=, dx[m] += dL/dx[m] (dx or any
   entry may be NULL) */
void mmspcl_pfusion_backward(mmspcl_pfusion *f, mmspcl_params *P, const double *const x[3], int n,
                             const double *dz, double *const dx[3]);
/* the keys of the pruning layer (mmspcl_xprune_load's, under "PREFIX.") and of the fusion head
   (under "outer.FUSION_PREFIX.", mmspcl_fusion_write_config); the tensors come from
   mmspcl_params_write with prefix outer. No pruning: no pruning keys. */
mmspcl_status mmspcl_pfusion_write_config(const mmspcl_pfusion *f, mmspcl_writer *wr, const char *outer,
                                          const char *prune_prefix);
/* Rebuilds the structure written above (weights: mmspcl_params_read on P afterwards): the
   fusion head from "PREFIX.fusion_name" (mmspcl_fuse_linear_load / _mult_load / _mbt_load by
   kind, dropout from "PREFIX.fusion_name.dropout" when there), the pruning layer from
   prune_key (mmspcl_xprune_load) when that file has "prune_key.mods" */
mmspcl_status mmspcl_pfusion_load_config(const mmspcl_weights *w, mmspcl_fusion_kind kind, const char *fusion_key,
                                         const char *prune_key, mmspcl_fusion_cfg *fusion, mmspcl_xprune_cfg *prune,
                                         int *has_prune, mmspcl_error *err);

typedef enum mmspcl_objective { MMSPCL_OBJ_SPCL = 0, MMSPCL_OBJ_CE = 1 } mmspcl_objective;
typedef struct mmspcl_spcl_model {
    int n_classes;
    mmspcl_params P;
    mmspcl_pfusion embed;                /* [pruning] -> fusion: z [n][out_dim] */
    mmspcl_lin classifier;
    double *protos;                      /* [C][out_dim] */
    double *buf;
    size_t buf_cap;
} mmspcl_spcl_model;
/* fusion->dims: the input widths; prune: NULL (none) or a pruning layer (its dims are taken from
   fusion->dims). Parameter names: fusion.*, prune.proj.*, classifier.* */
mmspcl_status mmspcl_spcl_model_create(mmspcl_spcl_model *M, const mmspcl_fusion_cfg *fusion,
                                       int n_classes, const mmspcl_xprune_cfg *prune,
                                       uint64_t seed, mmspcl_error *err);
void mmspcl_spcl_model_free(mmspcl_spcl_model *M);
/* z [n][out_dim] in evaluation mode */
mmspcl_status mmspcl_spcl_model_embed(mmspcl_spcl_model *M, const float *const x[3], int n, double *z,
                                      mmspcl_error *err);
/* pred_proto / pred_linear [n] (either may be NULL) */
mmspcl_status mmspcl_spcl_model_predict(mmspcl_spcl_model *M, const float *const x[3], int n,
                                        int *pred_proto, int *pred_linear, mmspcl_error *err);

typedef struct mmspcl_spcl_train_cfg {
    mmspcl_objective objective;
    double temperature;        /* 0.08 */
    int pool_size, K;          /* 512, 64 */
    int curriculum;            /* 1 */
    int epochs, batch, warmup, patience;   /* 10, 32, 128, 5 */
    double lr, weight_decay, clip;         /* 1e-3, 0.01, 5 */
    uint64_t seed;
} mmspcl_spcl_train_cfg;
void mmspcl_spcl_train_defaults(mmspcl_spcl_train_cfg *c);
/* The loop of the original train.py: each epoch embeds the training set, takes the class means,
   scores val by nearest class mean (weighted F1) from the second epoch on, keeps the best,
   samples the curriculum, resets the queues to the class means and trains on the selection.
   Leaves the best epoch's weights in M and its class means in M->protos. */
mmspcl_status mmspcl_spcl_train(mmspcl_spcl_model *M, const mmspcl_dataset *train,
                                const mmspcl_dataset *val, const mmspcl_spcl_train_cfg *cfg,
                                mmspcl_train_report *rep, mmspcl_train_log_fn log, void *user,
                                mmspcl_error *err);
mmspcl_status mmspcl_spcl_model_save(const mmspcl_spcl_model *M, const char *path, int with_optim,
                                     mmspcl_error *err);
/* Rebuilds a model from a file written by mmspcl_spcl_model_save: structure, weights,
   prototypes and (when saved) the AdamW state, to resume training or to evaluate in double. */
mmspcl_status mmspcl_spcl_model_load(mmspcl_spcl_model *M, const mmspcl_weights *w, mmspcl_error *err);

/* ---------------------------------------------------------------------------------------------
   11. RoBERTa-layout encoder training
   In float32 (the heads above train in double).

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
   (mmspcl_roberta_train_sync after each optimiser step). Tensor names are Hugging Face's
   (embeddings.word_embeddings.weight, encoder.layer.N.attention.self.query.weight, ...), so
   mmspcl_params_write(&m->P, wr, "", ...) plus mmspcl_roberta_train_write_config gives a file that
   mmspcl_roberta_load reads. The optional masked-language-model head is RobertaLMHead:
   lm_head.dense -> GELU -> lm_head.layer_norm -> decoder tied to the word embeddings + lm_head.bias.

     mmspcl_roberta_train m;
     mmspcl_roberta_train_create(&m, &cfg, 1, seed, max_tokens, max_seq, &err);
     mmspcl_roberta_train_forward(&m, ids, lengths, batch, seq, &err);     packed hidden: m.out [T][H]
     (compute dL/dout into dout [T][H]; for MLM: mmspcl_roberta_train_mlm_loss)
     mmspcl_roberta_train_backward(&m, dout, &err);                         gradients += into m.P.g
     mmspcl_grad_clip(&m.P, 5); mmspcl_adamw_step(&m.P, &cfg, lr); mmspcl_roberta_train_sync(&m);

   FINE-TUNING A CONVERTED CHECKPOINT
     mmspcl_roberta_train_from_weights builds the trainer from any weight file with a RoBERTa
     encoder (mmspcl-convert of a RobertaModel, RobertaForMaskedLM or sup-simcse checkpoint:
     the converter strips the "roberta." prefix and drops pooler / lm_head); matrices may be
     f32, f16 or bf16 (or f32 panels) in the file, training runs on f32/double copies. Quantized
     weights and other architectures (a CLIP file) are refused naming what was found.
     Decay mask: Linear weights and the embedding tables decay, biases and LayerNorm do not (as
     caskcsg/SPCL's no_decay = ['bias', 'LayerNorm.weight']).
   DROPOUT (RoBERTa's training mode, as Hugging Face's modeling_roberta places it)
     With m->train_mode = 1 the forward applies inverted dropout at the four places of
     RobertaModel.train(): after the embedding LayerNorm (hidden_dropout_prob), on the attention
     probabilities (attention_probs_dropout_prob), on the attention output dense before its
     residual + LayerNorm, and on the FFN output dense before its residual + LayerNorm (both
     hidden_dropout_prob). A mask element is 0 with probability p, else 1/(1-p); it is a hash of
     (m->dropout_key, site, index) (mmspcl_roberta_train_dropout), so masks need no storage,
     are the same for any thread count, and the same key gives the same masks: a forward can be
     recomputed exactly, and a batch split into micro-batches (m->dropout_row0 = the index of the
     micro-batch's first sequence in the batch) gets the masks of the whole batch.
     Sites: 0 the embeddings; for layer l, 1 + 3l the attention probabilities, 2 + 3l the
     attention output, 3 + 3l the FFN output. Index, with r = dropout_row0 + b the row of sequence
     b and S = max_seq: token i, column c: (r * S + i) * hidden + c; attention probabilities of
     head h, query i, key j (sequence of L tokens): (r * num_heads + h) * S * S + i * L + j.
     train_mode 0 (the default, evaluation) or p = 0: no dropout, bit-identical to before.
   FREEZING  mmspcl_roberta_train_freeze(m, n): the embeddings and layers 0..n-1 get no gradient
     (the backward stops above them) and AdamW leaves them alone.
   ------------------------------------------------------------------------------------------ */
typedef struct mmspcl_roberta_train_layer {
    size_t wq, bq, wk, bk, wv, bv, wo, bo, ln1_g, ln1_b, wi, bi, wo2, bo2, ln2_g, ln2_b;
} mmspcl_roberta_train_layer;

typedef struct mmspcl_roberta_train {
    mmspcl_roberta_config cfg;
    mmspcl_params P;            /* double master weights, gradients, AdamW moments */
    float *w;                   /* float mirror of P.w (same offsets) */
    float *g;                   /* float gradients of the last backward (same offsets) */
    size_t word, pos, type, eln_g, eln_b;
    mmspcl_roberta_train_layer *L;
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
    /* training mode: dropout (set by the caller; 0 after create: evaluation) */
    int train_mode;             /* 1: dropout on in the forward */
    float dropout_hidden;       /* hidden_dropout_prob (0.1 in RoBERTa's configs) */
    float dropout_attn;         /* attention_probs_dropout_prob (0.1) */
    uint64_t dropout_key;       /* the masks of the next forward */
    int dropout_row0;           /* the row of the forward's first sequence in its batch (0) */
    int frozen_layers;          /* mmspcl_roberta_train_freeze */
    int fwd_dropout;            /* the last forward: 1 when it applied dropout, with fwd_key, fwd_row0 */
    uint64_t fwd_key;
    int fwd_row0;
    /* the backward's matrix-product packing buffers, in scratch (mmspcl_gemm_f32_ws): one for
       the layer-wide products (work_threads threads), one per thread for attention's */
    size_t work_big, work_attn;
    int work_threads;
} mmspcl_roberta_train;

/* max_tokens: most tokens in one packed batch; max_seq: longest sequence. */
mmspcl_status mmspcl_roberta_train_create(mmspcl_roberta_train *m, const mmspcl_roberta_config *cfg, int with_mlm,
                               uint64_t seed, int max_tokens, int max_seq, mmspcl_error *err);
void mmspcl_roberta_train_free(mmspcl_roberta_train *m);
/* float mirror <- P.w (after an optimiser step, params_read, or editing P.w) */
void mmspcl_roberta_train_sync(mmspcl_roberta_train *m);
/* ids [batch][seq], lengths[b] real tokens in row b; result in m->out, packed [T][H]. */
mmspcl_status mmspcl_roberta_train_forward(mmspcl_roberta_train *m, const int32_t *ids, const int *lengths, int batch,
                                int seq, mmspcl_error *err);
/* dout [T][H] = dL/d(m->out) of the last forward; ADDS dL/dparams into m->P.g (zero it first
   with mmspcl_params_zero_grad), with the dropout masks of that forward. demb [T][H] (may be
   NULL; not written when layers are frozen) receives dL/d(embedding sum), the input of the
   embedding LayerNorm (for checks). */
mmspcl_status mmspcl_roberta_train_backward(mmspcl_roberta_train *m, const float *dout, float *demb, mmspcl_error *err);
/* Masked-LM loss (mean cross-entropy over n rows of the last forward): rows[i] is a packed
   token index, target[i] its true id. Adds the head's gradients into m->P.g and writes
   dL/d(m->out) into dout [T][H] (rows not listed are set to 0). Needs with_mlm. */
double mmspcl_roberta_train_mlm_loss(mmspcl_roberta_train *m, const int *rows, const int32_t *target, int n, float *dout,
                          mmspcl_error *err);
/* A trainer holding the encoder of a weight file (general.architecture "roberta", the
   tensors of mmspcl_roberta_load; f32, f16, bf16 or f32 panels; no MLM head). max_seq must fit
   the position table (max_position_embeddings - pad_token_id - 1). */
mmspcl_status mmspcl_roberta_train_from_weights(mmspcl_roberta_train *m, const mmspcl_weights *w, int max_tokens,
                                                int max_seq, mmspcl_error *err);
/* The dropout mask element of (key, site, index): 0 with probability p, else 1 / (1 - p); 1 when
   p <= 0. A hash (splitmix64's finaliser, twice): no state, any order, any thread. */
float mmspcl_roberta_train_dropout(uint64_t key, uint32_t site, uint64_t index, float p);
/* Freezes the embeddings and encoder layers 0..n_layers-1 (0: none; at most num_layers). */
void mmspcl_roberta_train_freeze(mmspcl_roberta_train *m, int n_layers);
/* general.architecture = "roberta" and the roberta.* hyper-parameters, as tools/convert writes */
mmspcl_status mmspcl_roberta_train_write_config(const mmspcl_roberta_train *m, mmspcl_writer *wr, mmspcl_error *err);
/* The encoder tensors (not the MLM head) into wr: matrices as dtype (f32, f16, q8_0, q4_0),
   vectors f32. hold receives a buffer to free after mmspcl_writer_save. */
mmspcl_status mmspcl_roberta_train_write_tensors(const mmspcl_roberta_train *m, mmspcl_writer *wr, mmspcl_dtype dtype,
                                      void **hold, mmspcl_error *err);

/* ---------------------------------------------------------------------------------------------
   12. Sequence MulT, training twin
   mmspcl_mult_seq of mmspcl.h (MulT as its code does it, the equations there) in double, with
   its backward. Parameters live in the caller's mmspcl_params under "PREFIX." + the names
   mmspcl_mult_seq_load reads. Init as MulT: the layers' Linear weights xavier-uniform (q, k, v
   over the [3D][D] in_proj_weight they come from), their biases 0; the in-projection, proj1,
   proj2 and out as torch's Conv1d / Linear defaults. The in-projection's bias is frozen at 0
   (Conv1d bias=False) and gets no gradient.
   Inputs: x[m] [n][T[m]][dims[m]] double, lens[m] [n] (NULL: all T[m]). relu_dropout is on the
   layers' FFN hidden layer, out_dropout on the output block's hidden layer (MulT's
   relu_dropout / out_dropout); rng NULL = evaluation.
   ------------------------------------------------------------------------------------------ */
typedef struct mmspcl_mult_seq_train {
    mmspcl_mult_seq_cfg cfg;
    double relu_dropout, out_dropout;
    char prefix[96];
    int n_mod, mods[3], n_pairs, pa[6], pb[6], Dm;
    mmspcl_lin in_proj[3];
    mmspcl_block *cross;                 /* [n_pairs][n_layers] */
    mmspcl_ln cross_ln[6];
    mmspcl_block *mem;                   /* [n_mod][n_mem_layers] */
    mmspcl_ln mem_ln[3];
    mmspcl_mlp res;
    mmspcl_lin out;
    /* the last forward */
    int n, T[3];
    double *act, **ptr;
    size_t act_cap;
    unsigned char *mask[3];
    size_t mask_cap[3];
} mmspcl_mult_seq_train;
mmspcl_status mmspcl_mult_seq_train_create(mmspcl_mult_seq_train *f, mmspcl_params *P, const char *prefix,
                                           const mmspcl_mult_seq_cfg *cfg, double relu_dropout,
                                           double out_dropout, mmspcl_rng *rng, mmspcl_error *err);
void mmspcl_mult_seq_train_free(mmspcl_mult_seq_train *f);
mmspcl_status mmspcl_mult_seq_train_forward(mmspcl_mult_seq_train *f, const mmspcl_params *P,
                                            const double *const x[3], const int T[3],
                                            const int *const lens[3], int n, double *y, mmspcl_rng *rng,
                                            mmspcl_error *err);
/* After a forward with the same x: parameter gradients += into P->g, dx[m] += dL/dx[m] (dx or
   any entry may be NULL). */
void mmspcl_mult_seq_train_backward(mmspcl_mult_seq_train *f, mmspcl_params *P, const double *const x[3],
                                    const double *dy, double *const dx[3]);
/* the hyper-parameter keys "PREFIX.dim.t" ... that mmspcl_mult_seq_load reads (the tensors come
   from mmspcl_params_write with prefix NULL) */
mmspcl_status mmspcl_mult_seq_train_write_config(const mmspcl_mult_seq_train *f, mmspcl_writer *wr);

#ifdef __cplusplus
}
#endif

#endif /* MMSPCL_TRAIN_H */

/* =============================================================================================
   IMPLEMENTATION
   ========================================================================================== */
#ifdef MMSPCL_TRAIN_IMPLEMENTATION
#ifndef MMSPCL_TRAIN_IMPLEMENTATION_DONE
#define MMSPCL_TRAIN_IMPLEMENTATION_DONE

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* OpenMP: MMSPCL__T_PARALLEL(work) before a loop declares whether it is worth threads (about
   `work` multiply-adds); MMSPCL__T_OMP_FOR then splits the loop statically, or runs it on the
   calling thread. Starting threads for a few thousand flops costs more than it saves, much more
   on a busy machine. Results never depend on the thread count. MMSPCL__OMP_FOR_IF (under
   MMSPCL__T_OMP_FOR), MMSPCL__OMP_FOR, MMSPCL__THREAD_ID, MMSPCL__MAX_THREADS and the
   allocator macros are mmspcl.h's: the internals both implementations share. */
#ifndef MMSPCL_TRAIN_MIN_PARALLEL_WORK
#define MMSPCL_TRAIN_MIN_PARALLEL_WORK 1e6
#endif
#define MMSPCL__T_OMP_FOR MMSPCL__OMP_FOR_IF(mmspcl__t_par)
#define MMSPCL__T_PARALLEL(work) const int mmspcl__t_par = (double)(work) >= MMSPCL_TRAIN_MIN_PARALLEL_WORK; (void)mmspcl__t_par


#ifdef __cplusplus
extern "C" {
#endif

/* Errors go through mmspcl.h's mmspcl_error_set (one place for the message format). */
#define mmspcl__t_fail mmspcl_error_set

static double *mmspcl__t_alloc(size_t n) { return (double *)MMSPCL_MALLOC(sizeof(double) * (n ? n : 1)); }
static void mmspcl__t_zero(double *x, size_t n) { if (n) memset(x, 0, sizeof(double) * n); }
static const char *const mmspcl__t_mod[3] = { "t", "a", "v" };
static const char *const mmspcl__t_combo[8] = { "", "t", "a", "ta", "v", "tv", "av", "tav" };

/* ---------------------------------------------------------------------------------------------
   1. Random numbers
   ------------------------------------------------------------------------------------------ */
static uint64_t mmspcl__t_splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static uint64_t mmspcl__t_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void mmspcl_rng_seed(mmspcl_rng *r, uint64_t seed) {
    int i;
    for (i = 0; i < 4; i++) r->s[i] = mmspcl__t_splitmix(&seed);
}

uint64_t mmspcl_rng_u64(mmspcl_rng *r) {
    uint64_t *s = r->s, res = mmspcl__t_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t;
    s[3] = mmspcl__t_rotl(s[3], 45);
    return res;
}

double mmspcl_rng_uniform(mmspcl_rng *r) { return (double)(mmspcl_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

double mmspcl_rng_normal(mmspcl_rng *r) {
    double u1 = 1.0 - mmspcl_rng_uniform(r), u2 = mmspcl_rng_uniform(r);   /* u1 in (0, 1] */
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

int mmspcl_rng_int(mmspcl_rng *r, int n) {
    uint64_t lim, x;
    if (n <= 1) return 0;
    lim = UINT64_MAX - UINT64_MAX % (uint64_t)n;
    do x = mmspcl_rng_u64(r); while (x >= lim);
    return (int)(x % (uint64_t)n);
}

void mmspcl_rng_shuffle(mmspcl_rng *r, int *a, int n) {
    int i;
    for (i = n - 1; i > 0; i--) {
        int j = mmspcl_rng_int(r, i + 1), t = a[i];
        a[i] = a[j]; a[j] = t;
    }
}

/* ---------------------------------------------------------------------------------------------
   2. Parameters
   ------------------------------------------------------------------------------------------ */
void mmspcl_params_init(mmspcl_params *P) { memset(P, 0, sizeof *P); }

void mmspcl_params_free(mmspcl_params *P) {
    MMSPCL_FREE(P->w); MMSPCL_FREE(P->g); MMSPCL_FREE(P->m); MMSPCL_FREE(P->v);
    MMSPCL_FREE(P->info);
    memset(P, 0, sizeof *P);
}

static int mmspcl__t_grow(double **p, size_t cap) {
    double *q = (double *)MMSPCL_REALLOC(*p, sizeof(double) * cap);
    if (!q) return 0;
    *p = q;
    return 1;
}

size_t mmspcl_params_add(mmspcl_params *P, const char *name, int ndim, const int64_t *shape,
                         int decay, mmspcl_init init, double scale, mmspcl_rng *rng) {
    size_t n = 1, off, i;
    mmspcl_param_info *t;
    int d;
    if (P->oom || ndim < 1 || ndim > 4) { P->oom = 1; return 0; }
    for (d = 0; d < ndim; d++) n *= (size_t)shape[d];
    if (P->n + n > P->cap) {
        size_t cap = P->cap ? P->cap : 1024;
        while (cap < P->n + n) cap *= 2;
        if (!mmspcl__t_grow(&P->w, cap) || !mmspcl__t_grow(&P->g, cap) || !mmspcl__t_grow(&P->m, cap) ||
            !mmspcl__t_grow(&P->v, cap)) { P->oom = 1; return 0; }
        P->cap = cap;
    }
    if (P->n_info == P->cap_info) {
        int cap = P->cap_info ? 2 * P->cap_info : 64;
        mmspcl_param_info *q = (mmspcl_param_info *)MMSPCL_REALLOC(P->info, sizeof(mmspcl_param_info) * (size_t)cap);
        if (!q) { P->oom = 1; return 0; }
        P->info = q;
        P->cap_info = cap;
    }
    off = P->n;
    t = &P->info[P->n_info++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->off = off; t->n = n; t->ndim = ndim; t->decay = decay;
    for (d = 0; d < ndim; d++) t->shape[d] = shape[d];
    for (i = 0; i < n; i++) {
        double v = 0.0;
        if (init == MMSPCL_INIT_ONE) v = 1.0;
        else if (init == MMSPCL_INIT_UNIFORM) v = scale * (2.0 * mmspcl_rng_uniform(rng) - 1.0);
        else if (init == MMSPCL_INIT_NORMAL) v = scale * mmspcl_rng_normal(rng);
        P->w[off + i] = v;
        P->g[off + i] = P->m[off + i] = P->v[off + i] = 0.0;
    }
    P->n += n;
    return off;
}

const mmspcl_param_info *mmspcl_params_find(const mmspcl_params *P, const char *name) {
    int i;
    for (i = 0; i < P->n_info; i++) if (!strcmp(P->info[i].name, name)) return &P->info[i];
    return NULL;
}

void mmspcl_params_zero_grad(mmspcl_params *P) { mmspcl__t_zero(P->g, P->n); }

static void mmspcl__t_pname(char *buf, size_t size, const char *role, const char *prefix, const char *name) {
    snprintf(buf, size, "%s%s%s%s", role, prefix && *prefix ? prefix : "", prefix && *prefix ? "." : "", name);
}

mmspcl_status mmspcl_params_write(const mmspcl_params *P, mmspcl_writer *wr, const char *prefix,
                                  int with_optim, float **hold, mmspcl_error *err) {
    const size_t roles = with_optim ? 3 : 1;
    float *f = (float *)MMSPCL_MALLOC(sizeof(float) * (P->n * roles + 1));
    size_t i, r;
    int t;
    mmspcl_status st;
    *hold = f;
    if (!f) return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "params: out of memory for %zu floats", P->n * roles);
    for (r = 0; r < roles; r++) {
        const double *src = r == 0 ? P->w : r == 1 ? P->m : P->v;
        for (i = 0; i < P->n; i++) f[r * P->n + i] = (float)src[i];
    }
    for (r = 0; r < roles; r++)
        for (t = 0; t < P->n_info; t++) {
            const mmspcl_param_info *pi = &P->info[t];
            char name[400];
            mmspcl__t_pname(name, sizeof name, r == 0 ? "" : r == 1 ? "adamw.m." : "adamw.v.", prefix, pi->name);
            st = mmspcl_writer_add_tensor(wr, name, MMSPCL_F32, pi->ndim, pi->shape, f + r * P->n + pi->off,
                                          sizeof(float) * pi->n, err);
            if (st) return st;
        }
    if (with_optim && (st = mmspcl_writer_set_int(wr, "adamw.step", P->step)))
        return mmspcl__t_fail(err, st, "params: cannot set adamw.step");
    return MMSPCL_OK;
}

static mmspcl_status mmspcl__t_read_tensor(const mmspcl_weights *w, const char *name, const mmspcl_param_info *pi,
                                           double *dst, int optional, mmspcl_error *err) {
    const mmspcl_tensor *t = mmspcl_weights_find(w, name);
    size_t i;
    int d;
    if (!t) return optional ? MMSPCL_ERR_NOT_FOUND : mmspcl__t_fail(err, MMSPCL_ERR_NOT_FOUND, "tensor %s is missing", name);
    if (t->dtype != MMSPCL_F32 || t->ndim != pi->ndim)
        return mmspcl__t_fail(err, MMSPCL_ERR_FORMAT, "tensor %s: expected f32 with %d dimensions", name, pi->ndim);
    for (d = 0; d < pi->ndim; d++)
        if (t->ne[d] != pi->shape[d])
            return mmspcl__t_fail(err, MMSPCL_ERR_FORMAT, "tensor %s: dimension %d is %lld, expected %lld", name, d,
                                  (long long)t->ne[d], (long long)pi->shape[d]);
    for (i = 0; i < pi->n; i++) dst[i] = ((const float *)t->data)[i];
    return MMSPCL_OK;
}

mmspcl_status mmspcl_params_read(mmspcl_params *P, const mmspcl_weights *w, const char *prefix,
                                 mmspcl_error *err) {
    int t, have_optim;
    int64_t step = 0;
    mmspcl_status st;
    have_optim = mmspcl_weights_get_int(w, "adamw.step", &step);
    for (t = 0; t < P->n_info; t++) {
        const mmspcl_param_info *pi = &P->info[t];
        char name[400];
        mmspcl__t_pname(name, sizeof name, "", prefix, pi->name);
        if ((st = mmspcl__t_read_tensor(w, name, pi, P->w + pi->off, 0, err))) return st;
        if (!have_optim) continue;
        mmspcl__t_pname(name, sizeof name, "adamw.m.", prefix, pi->name);
        if ((st = mmspcl__t_read_tensor(w, name, pi, P->m + pi->off, 0, err))) return st;
        mmspcl__t_pname(name, sizeof name, "adamw.v.", prefix, pi->name);
        if ((st = mmspcl__t_read_tensor(w, name, pi, P->v + pi->off, 0, err))) return st;
    }
    if (have_optim) P->step = step;
    return MMSPCL_OK;
}

/* ---------------------------------------------------------------------------------------------
   3. Optimiser
   ------------------------------------------------------------------------------------------ */
void mmspcl_adamw_defaults(mmspcl_adamw_cfg *c) {
    c->beta1 = 0.9; c->beta2 = 0.999; c->eps = 1e-8; c->weight_decay = 0.01;
}

#define MMSPCL__T_BLOCK 4096
/* sum of squares of one block: four partial sums (i mod 4), added pairwise at the end */
static double mmspcl__t_sumsq_block(const double *x, size_t n) {
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += x[i] * x[i];
        s1 += x[i + 1] * x[i + 1];
        s2 += x[i + 2] * x[i + 2];
        s3 += x[i + 3] * x[i + 3];
    }
    for (; i < n; i++) s0 += x[i] * x[i];
    return (s0 + s1) + (s2 + s3);
}
/* sum of squares in fixed blocks (parallel), the block sums added in order: thread-independent */
static double mmspcl__t_sumsq(const double *x, size_t n) {
    const long nb = (long)((n + MMSPCL__T_BLOCK - 1) / MMSPCL__T_BLOCK);
    double *part = mmspcl__t_alloc((size_t)nb), total = 0.0;
    long b;
    if (!part) {
        for (b = 0; b < nb; b++) {
            const size_t i0 = (size_t)b * MMSPCL__T_BLOCK;
            total += mmspcl__t_sumsq_block(x + i0, n - i0 < MMSPCL__T_BLOCK ? n - i0 : MMSPCL__T_BLOCK);
        }
        return total;
    }
    {
        MMSPCL__T_PARALLEL((double)n);
        MMSPCL__T_OMP_FOR
        for (b = 0; b < nb; b++) {
            const size_t i0 = (size_t)b * MMSPCL__T_BLOCK;
            part[b] = mmspcl__t_sumsq_block(x + i0, n - i0 < MMSPCL__T_BLOCK ? n - i0 : MMSPCL__T_BLOCK);
        }
    }
    for (b = 0; b < nb; b++) total += part[b];
    MMSPCL_FREE(part);
    return total;
}

double mmspcl_grad_clip_multi(mmspcl_params *const *P, int n, double max_norm) {
    double sum = 0.0, norm;
    int k;
    for (k = 0; k < n; k++) sum += mmspcl__t_sumsq(P[k]->g, P[k]->n);
    norm = sqrt(sum);
    if (max_norm > 0 && norm > max_norm) {
        const double c = max_norm / (norm + 1e-6);
        for (k = 0; k < n; k++) {
            long i, ne = (long)P[k]->n;
            double *g = P[k]->g;
            MMSPCL__T_PARALLEL((double)ne);
            MMSPCL__T_OMP_FOR
            for (i = 0; i < ne; i++) g[i] *= c;
        }
    }
    return norm;
}

double mmspcl_grad_clip(mmspcl_params *P, double max_norm) { return mmspcl_grad_clip_multi(&P, 1, max_norm); }

/* The AdamW update of n values (mmspcl_adamw_step's loop): the definition, and an AVX2 kernel
   with the same operations in the same order (double multiplies, adds, divisions and square
   roots, no fused multiply-add: the same bits; tests/test_train.c compares them). */
typedef struct mmspcl__t_adamw_k { double decay, b1, ob1, b2, ob2, bc1, bc2, lr, eps; } mmspcl__t_adamw_k;
static void mmspcl__t_adamw_scalar(double *w, double *m, double *v, const double *g, size_t n, const mmspcl__t_adamw_k *k) {
    size_t i;
    for (i = 0; i < n; i++) {
        w[i] *= k->decay;
        m[i] = k->b1 * m[i] + k->ob1 * g[i];
        v[i] = k->b2 * v[i] + k->ob2 * g[i] * g[i];
        w[i] -= k->lr * (m[i] / k->bc1) / (sqrt(v[i] / k->bc2) + k->eps);
    }
}
#if !defined(MMSPCL_NO_SIMD) && defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define MMSPCL__T_X86 1
static __attribute__((target("avx2"))) void mmspcl__t_adamw_avx2(double *w, double *m, double *v, const double *g, size_t n,
                                                                  const mmspcl__t_adamw_k *k) {
    const __m256d decay = _mm256_set1_pd(k->decay), b1 = _mm256_set1_pd(k->b1), ob1 = _mm256_set1_pd(k->ob1);
    const __m256d b2 = _mm256_set1_pd(k->b2), ob2 = _mm256_set1_pd(k->ob2), bc1 = _mm256_set1_pd(k->bc1);
    const __m256d bc2 = _mm256_set1_pd(k->bc2), lr = _mm256_set1_pd(k->lr), eps = _mm256_set1_pd(k->eps);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const __m256d gi = _mm256_loadu_pd(g + i);
        const __m256d wi = _mm256_mul_pd(_mm256_loadu_pd(w + i), decay);
        const __m256d mi = _mm256_add_pd(_mm256_mul_pd(b1, _mm256_loadu_pd(m + i)), _mm256_mul_pd(ob1, gi));
        const __m256d vi = _mm256_add_pd(_mm256_mul_pd(b2, _mm256_loadu_pd(v + i)), _mm256_mul_pd(_mm256_mul_pd(ob2, gi), gi));
        const __m256d den = _mm256_add_pd(_mm256_sqrt_pd(_mm256_div_pd(vi, bc2)), eps);
        _mm256_storeu_pd(m + i, mi);
        _mm256_storeu_pd(v + i, vi);
        _mm256_storeu_pd(w + i, _mm256_sub_pd(wi, _mm256_div_pd(_mm256_mul_pd(lr, _mm256_div_pd(mi, bc1)), den)));
    }
    mmspcl__t_adamw_scalar(w + i, m + i, v + i, g + i, n - i, k);
}
#endif
/* simd: 0 the definition, 1 the AVX2 kernel where the CPU has it */
static void mmspcl__t_adamw_run(double *w, double *m, double *v, const double *g, size_t n, const mmspcl__t_adamw_k *k,
                                int simd) {
#ifdef MMSPCL__T_X86
    if (simd && __builtin_cpu_supports("avx2")) {
        mmspcl__t_adamw_avx2(w, m, v, g, n, k);
        return;
    }
#endif
    (void)simd;
    mmspcl__t_adamw_scalar(w, m, v, g, n, k);
}

void mmspcl_adamw_step(mmspcl_params *P, const mmspcl_adamw_cfg *c, double lr) {
    mmspcl__t_adamw_k k;
    int t;
    P->step++;
    k.bc1 = 1.0 - pow(c->beta1, (double)P->step);
    k.bc2 = 1.0 - pow(c->beta2, (double)P->step);
    k.b1 = c->beta1; k.ob1 = 1.0 - c->beta1; k.b2 = c->beta2; k.ob2 = 1.0 - c->beta2;
    k.lr = lr; k.eps = c->eps;
    for (t = 0; t < P->n_info; t++) {
        const mmspcl_param_info *pi = &P->info[t];
        double *w = P->w + pi->off, *g = P->g + pi->off, *m = P->m + pi->off, *v = P->v + pi->off;
        const long n = pi->frozen ? 0 : (long)pi->n, nb = (n + MMSPCL__T_BLOCK - 1) / MMSPCL__T_BLOCK;
        long b;
        mmspcl__t_adamw_k kt = k;
        kt.decay = pi->decay ? 1.0 - lr * c->weight_decay : 1.0;
        {
            MMSPCL__T_PARALLEL(10.0 * (double)n);
            MMSPCL__T_OMP_FOR
            for (b = 0; b < nb; b++) {
                const size_t i0 = (size_t)b * MMSPCL__T_BLOCK;
                mmspcl__t_adamw_run(w + i0, m + i0, v + i0, g + i0,
                                    (size_t)n - i0 < MMSPCL__T_BLOCK ? (size_t)n - i0 : MMSPCL__T_BLOCK, &kt, 1);
            }
        }
    }
}

double mmspcl_lr_cosine(int64_t step, int64_t warmup, int64_t total, double base) {
    double progress;
    if (step < warmup) return base * (double)step / (double)(warmup > 1 ? warmup : 1);
    progress = (double)(step - warmup) / (double)(total - warmup > 1 ? total - warmup : 1);
    if (progress > 1.0) progress = 1.0;
    return base * 0.5 * (1.0 + cos(3.14159265358979323846 * progress));
}

/* ---------------------------------------------------------------------------------------------
   4. Layers
   ------------------------------------------------------------------------------------------ */
/* ---- 4.1 Linear -----------------------------------------------------------------------------
   y[i][o] = b[o] + sum_c x[i][c] W[o][c] */
void mmspcl_lin_create(mmspcl_lin *l, mmspcl_params *P, const char *name, int in, int out,
                       mmspcl_rng *rng) {
    char buf[200];
    int64_t sh[2];
    const double bound = 1.0 / sqrt((double)in);
    sh[0] = out; sh[1] = in;
    l->in = in; l->out = out;
    snprintf(buf, sizeof buf, "%s.weight", name);
    l->w = mmspcl_params_add(P, buf, 2, sh, 1, MMSPCL_INIT_UNIFORM, bound, rng);
    snprintf(buf, sizeof buf, "%s.bias", name);
    l->b = mmspcl_params_add(P, buf, 1, sh, 0, MMSPCL_INIT_UNIFORM, bound, rng);
}

void mmspcl_lin_forward(const mmspcl_params *P, const mmspcl_lin *l, const double *x, double *y, int n) {
    const int C = l->in, OC = l->out;
    const double *W = P->w + l->w, *B = P->w + l->b;
    int i;
    MMSPCL__T_PARALLEL((double)n * C * OC);
    MMSPCL__T_OMP_FOR
    for (i = 0; i < n; i++) {
        const double *xi = x + (size_t)i * C;
        double *yi = y + (size_t)i * OC;
        int o, c;
        for (o = 0; o < OC; o++) {
            const double *wo = W + (size_t)o * C;
            double s = B[o];
            for (c = 0; c < C; c++) s += wo[c] * xi[c];
            yi[o] = s;
        }
    }
}

/* dW[o][c] += sum_i dy[i][o] x[i][c]   db[o] += sum_i dy[i][o]   (parallel over o)
   dx[i][c] += sum_o dy[i][o] W[o][c]                              (parallel over i) */
void mmspcl_lin_backward(mmspcl_params *P, const mmspcl_lin *l, const double *x, const double *dy,
                         double *dx, int n) {
    const int C = l->in, OC = l->out;
    const double *W = P->w + l->w;
    double *dW = P->g + l->w, *dB = P->g + l->b;
    int o, i;
    MMSPCL__T_PARALLEL((double)n * C * OC);
    MMSPCL__T_OMP_FOR
    for (o = 0; o < OC; o++) {
        double *dwo = dW + (size_t)o * C, sb = 0.0;
        int r, c;
        for (r = 0; r < n; r++) {
            const double d = dy[(size_t)r * OC + o];
            const double *xr = x + (size_t)r * C;
            if (d == 0.0) continue;
            sb += d;
            for (c = 0; c < C; c++) dwo[c] += d * xr[c];
        }
        dB[o] += sb;
    }
    if (!dx) return;
    MMSPCL__T_OMP_FOR
    for (i = 0; i < n; i++) {
        double *dxi = dx + (size_t)i * C;
        int oo, c;
        for (oo = 0; oo < OC; oo++) {
            const double d = dy[(size_t)i * OC + oo];
            const double *wo = W + (size_t)oo * C;
            if (d == 0.0) continue;
            for (c = 0; c < C; c++) dxi[c] += d * wo[c];
        }
    }
}

/* ---- 4.2 Layer norm -------------------------------------------------------------------------
   xh = (x - mean) * rstd, rstd = 1 / sqrt(var + eps) (biased var);  y = xh g + b
   backward: dg += dy xh; db += dy; dx = rstd (dxh - mean(dxh) - xh mean(dxh xh)), dxh = dy g */
void mmspcl_ln_create(mmspcl_ln *l, mmspcl_params *P, const char *name, int dim) {
    char buf[200];
    int64_t sh[1];
    sh[0] = dim;
    l->dim = dim; l->eps = 1e-5;
    snprintf(buf, sizeof buf, "%s.weight", name);
    l->g = mmspcl_params_add(P, buf, 1, sh, 0, MMSPCL_INIT_ONE, 0, NULL);
    snprintf(buf, sizeof buf, "%s.bias", name);
    l->b = mmspcl_params_add(P, buf, 1, sh, 0, MMSPCL_INIT_ZERO, 0, NULL);
}

void mmspcl_ln_forward(const mmspcl_params *P, const mmspcl_ln *l, const double *x, double *y,
                       double *stats, int n) {
    const int C = l->dim;
    const double *g = P->w + l->g, *b = P->w + l->b;
    int i;
    MMSPCL__T_PARALLEL(5.0 * n * C);
    MMSPCL__T_OMP_FOR
    for (i = 0; i < n; i++) {
        const double *xi = x + (size_t)i * C;
        double *yi = y + (size_t)i * C, mean = 0.0, var = 0.0, rstd;
        int c;
        for (c = 0; c < C; c++) mean += xi[c];
        mean /= C;
        for (c = 0; c < C; c++) var += (xi[c] - mean) * (xi[c] - mean);
        var /= C;
        rstd = 1.0 / sqrt(var + l->eps);
        for (c = 0; c < C; c++) yi[c] = (xi[c] - mean) * rstd * g[c] + b[c];
        stats[2 * (size_t)i] = mean;
        stats[2 * (size_t)i + 1] = rstd;
    }
}

void mmspcl_ln_backward(mmspcl_params *P, const mmspcl_ln *l, const double *x, const double *stats,
                        const double *dy, double *dx, int n) {
    const int C = l->dim;
    const double *g = P->w + l->g;
    double *dg = P->g + l->g, *db = P->g + l->b;
    int i, c;
    MMSPCL__T_PARALLEL(5.0 * n * C);
    MMSPCL__T_OMP_FOR
    for (c = 0; c < C; c++) {
        double sg = 0.0, sb = 0.0;
        int r;
        for (r = 0; r < n; r++) {
            const double xh = (x[(size_t)r * C + c] - stats[2 * (size_t)r]) * stats[2 * (size_t)r + 1];
            sg += dy[(size_t)r * C + c] * xh;
            sb += dy[(size_t)r * C + c];
        }
        dg[c] += sg;
        db[c] += sb;
    }
    MMSPCL__T_OMP_FOR
    for (i = 0; i < n; i++) {
        const double *xi = x + (size_t)i * C, *dyi = dy + (size_t)i * C;
        const double mean = stats[2 * (size_t)i], rstd = stats[2 * (size_t)i + 1];
        double *dxi = dx + (size_t)i * C, m1 = 0.0, m2 = 0.0;
        int k;
        for (k = 0; k < C; k++) {
            const double dxh = dyi[k] * g[k];
            m1 += dxh;
            m2 += dxh * (xi[k] - mean) * rstd;
        }
        m1 /= C;
        m2 /= C;
        for (k = 0; k < C; k++) dxi[k] += rstd * (dyi[k] * g[k] - m1 - (xi[k] - mean) * rstd * m2);
    }
}

/* ---- 4.3 Activations ------------------------------------------------------------------------
   GELU(x) = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), GELU'(x) = Phi(x) + x phi(x);
   ReLU(x) = max(x, 0), ReLU'(x) = [x > 0] */
void mmspcl_act_forward(mmspcl_act act, const double *x, double *y, size_t n) {
    size_t i;
    if (act == MMSPCL_ACT_RELU) { for (i = 0; i < n; i++) y[i] = x[i] > 0.0 ? x[i] : 0.0; return; }
    for (i = 0; i < n; i++) y[i] = 0.5 * x[i] * (1.0 + erf(x[i] * 0.70710678118654752));
}

void mmspcl_act_backward(mmspcl_act act, const double *x, const double *dy, double *dx, size_t n) {
    size_t i;
    if (act == MMSPCL_ACT_RELU) { for (i = 0; i < n; i++) if (x[i] > 0.0) dx[i] += dy[i]; return; }
    for (i = 0; i < n; i++) {
        const double cdf = 0.5 * (1.0 + erf(x[i] * 0.70710678118654752));
        const double pdf = 0.3989422804014327 * exp(-0.5 * x[i] * x[i]);
        dx[i] += dy[i] * (cdf + x[i] * pdf);
    }
}

/* ---- 4.4 Dropout ----------------------------------------------------------------------------
   Inverted. */
void mmspcl_dropout_forward(mmspcl_rng *rng, double p, const double *x, double *y, double *mask,
                            size_t n) {
    size_t i;
    const double keep = 1.0 / (1.0 - p);
    for (i = 0; i < n; i++) {
        mask[i] = (!rng || p <= 0.0) ? 1.0 : (mmspcl_rng_uniform(rng) < p ? 0.0 : keep);
        y[i] = x[i] * mask[i];
    }
}

void mmspcl_dropout_backward(const double *mask, const double *dy, double *dx, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) dx[i] += dy[i] * mask[i];
}

/* ---- 4.5 MLP --------------------------------------------------------------------------------
   h = fc1 x; a = dropout(act(h)); y = fc2 a.   cache: h, a, mask, da, dh ([n][hidden] each) */
void mmspcl_mlp_create(mmspcl_mlp *m, mmspcl_params *P, const char *name, int in, int hidden,
                       int out, mmspcl_act act, double dropout, mmspcl_rng *rng) {
    char buf[200];
    snprintf(buf, sizeof buf, "%s.fc1", name);
    mmspcl_lin_create(&m->fc1, P, buf, in, hidden, rng);
    snprintf(buf, sizeof buf, "%s.fc2", name);
    mmspcl_lin_create(&m->fc2, P, buf, hidden, out, rng);
    m->act = act;
    m->dropout = dropout;
}

size_t mmspcl_mlp_cache_size(const mmspcl_mlp *m, int n) { return 5 * (size_t)n * (size_t)m->fc1.out; }

void mmspcl_mlp_forward(const mmspcl_params *P, const mmspcl_mlp *m, const double *x, double *y,
                        int n, double *cache, mmspcl_rng *rng) {
    const size_t nh = (size_t)n * m->fc1.out;
    double *h = cache, *a = h + nh, *mask = a + nh;
    mmspcl_lin_forward(P, &m->fc1, x, h, n);
    mmspcl_act_forward(m->act, h, a, nh);
    mmspcl_dropout_forward(rng, m->dropout, a, a, mask, nh);
    mmspcl_lin_forward(P, &m->fc2, a, y, n);
}

void mmspcl_mlp_backward(mmspcl_params *P, const mmspcl_mlp *m, const double *x, const double *dy,
                         double *dx, int n, double *cache) {
    const size_t nh = (size_t)n * m->fc1.out;
    double *h = cache, *a = h + nh, *mask = a + nh, *da = mask + nh, *dh = da + nh;
    size_t i;
    mmspcl__t_zero(da, nh);
    mmspcl__t_zero(dh, nh);
    mmspcl_lin_backward(P, &m->fc2, a, dy, da, n);
    for (i = 0; i < nh; i++) da[i] *= mask[i];
    mmspcl_act_backward(m->act, h, da, dh, nh);
    mmspcl_lin_backward(P, &m->fc1, x, dh, dx, n);
}

/* ---- 4.6 Attention core ---------------------------------------------------------------------
   One task per (sequence s, head h), dh = D / H, scale = 1 / sqrt(dh):
     a_ij = q_i . k_j * scale (masked keys: -inf);  p_i = softmax(a_i);  ctx_i = sum_j p_ij v_j
   backward:  dv_j += sum_i p_ij dctx_i;  dp_ij = dctx_i . v_j;
              da_ij = p_ij (dp_ij - sum_j' p_ij' dp_ij');
              dq_i += scale sum_j da_ij k_j;  dk_j += scale sum_i da_ij q_i */
void mmspcl_attn_forward(const double *q, const double *k, const double *v, int nb, int tq, int tk,
                         int D, int H, const unsigned char *kmask, double *probs, double *ctx) {
    const int dh = D / H;
    const double scale = 1.0 / sqrt((double)dh);
    int task;
    MMSPCL__T_PARALLEL(2.0 * nb * tq * tk * D);
    MMSPCL__T_OMP_FOR
    for (task = 0; task < nb * H; task++) {
        const int s = task / H, h = task % H;
        const unsigned char *ms = kmask ? kmask + (size_t)s * tk : NULL;
        int i, j, d;
        for (i = 0; i < tq; i++) {
            const double *qi = q + ((size_t)s * tq + i) * D + h * dh;
            double *pi = probs + (((size_t)s * H + h) * tq + i) * tk;
            double *ci = ctx + ((size_t)s * tq + i) * D + h * dh;
            double mx = -HUGE_VAL, sum = 0.0;
            for (j = 0; j < tk; j++) {
                const double *kj = k + ((size_t)s * tk + j) * D + h * dh;
                double a = 0.0;
                if (ms && !ms[j]) continue;
                for (d = 0; d < dh; d++) a += qi[d] * kj[d];
                pi[j] = a * scale;
                if (pi[j] > mx) mx = pi[j];
            }
            for (j = 0; j < tk; j++) {
                if (ms && !ms[j]) { pi[j] = 0.0; continue; }
                pi[j] = exp(pi[j] - mx);
                sum += pi[j];
            }
            for (d = 0; d < dh; d++) ci[d] = 0.0;
            if (sum == 0.0) continue;   /* every key masked */
            for (j = 0; j < tk; j++) {
                const double *vj = v + ((size_t)s * tk + j) * D + h * dh;
                pi[j] /= sum;
                for (d = 0; d < dh; d++) ci[d] += pi[j] * vj[d];
            }
        }
    }
}

void mmspcl_attn_backward(const double *q, const double *k, const double *v, int nb, int tq, int tk,
                          int D, int H, const double *probs, const double *dctx, double *dq,
                          double *dk, double *dv) {
    const int dh = D / H;
    const double scale = 1.0 / sqrt((double)dh);
    int task;
    MMSPCL__T_PARALLEL(4.0 * nb * tq * tk * D);
    MMSPCL__T_OMP_FOR
    for (task = 0; task < nb * H; task++) {
        const int s = task / H, h = task % H;
        int i, j, d;
        for (i = 0; i < tq; i++) {
            const double *qi = q + ((size_t)s * tq + i) * D + h * dh;
            const double *pi = probs + (((size_t)s * H + h) * tq + i) * tk;
            const double *dci = dctx + ((size_t)s * tq + i) * D + h * dh;
            double *dqi = dq + ((size_t)s * tq + i) * D + h * dh, dot = 0.0;
            for (j = 0; j < tk; j++) {
                const double *vj = v + ((size_t)s * tk + j) * D + h * dh;
                double *dvj = dv + ((size_t)s * tk + j) * D + h * dh, dp = 0.0;
                if (pi[j] == 0.0) continue;
                for (d = 0; d < dh; d++) { dp += dci[d] * vj[d]; dvj[d] += pi[j] * dci[d]; }
                dot += pi[j] * dp;
            }
            for (j = 0; j < tk; j++) {
                const double *vj = v + ((size_t)s * tk + j) * D + h * dh;
                const double *kj = k + ((size_t)s * tk + j) * D + h * dh;
                double *dkj = dk + ((size_t)s * tk + j) * D + h * dh, dp = 0.0, da;
                if (pi[j] == 0.0) continue;
                for (d = 0; d < dh; d++) dp += dci[d] * vj[d];
                da = pi[j] * (dp - dot) * scale;
                for (d = 0; d < dh; d++) { dqi[d] += da * kj[d]; dkj[d] += da * qi[d]; }
            }
        }
    }
}

/* ---- 4.7 Transformer block ------------------------------------------------------------------
   Pre-LN. Cache: forward values then backward scratch. */
void mmspcl_block_create(mmspcl_block *b, mmspcl_params *P, const char *name, int D, int H, int ff,
                         mmspcl_act act, int cross, double dropout, mmspcl_rng *rng) {
    char buf[200];
    memset(b, 0, sizeof *b);
    b->D = D; b->H = H; b->cross = cross;
    snprintf(buf, sizeof buf, "%s.ln_q", name);
    mmspcl_ln_create(&b->ln_q, P, buf, D);
    if (cross) { snprintf(buf, sizeof buf, "%s.ln_kv", name); mmspcl_ln_create(&b->ln_kv, P, buf, D); }
    snprintf(buf, sizeof buf, "%s.attn.q", name); mmspcl_lin_create(&b->q, P, buf, D, D, rng);
    snprintf(buf, sizeof buf, "%s.attn.k", name); mmspcl_lin_create(&b->k, P, buf, D, D, rng);
    snprintf(buf, sizeof buf, "%s.attn.v", name); mmspcl_lin_create(&b->v, P, buf, D, D, rng);
    snprintf(buf, sizeof buf, "%s.attn.o", name); mmspcl_lin_create(&b->o, P, buf, D, D, rng);
    snprintf(buf, sizeof buf, "%s.ln_ff", name);
    mmspcl_ln_create(&b->ln_ff, P, buf, D);
    snprintf(buf, sizeof buf, "%s.ff", name);
    mmspcl_mlp_create(&b->ff, P, buf, D, ff, D, act, dropout, rng);
}

typedef struct mmspcl__t_bc {
    double *xln, *st1, *kvln, *st2, *q, *k, *v, *p, *ctx, *x1, *fln, *st3, *mlp;   /* forward */
    double *d1, *d2, *dq, *dk, *dv, *dkv;                                          /* backward */
} mmspcl__t_bc;

static size_t mmspcl__t_block_carve(const mmspcl_block *b, int nb, int tq, int tk, double *base,
                                    mmspcl__t_bc *c) {
    const size_t D = (size_t)b->D, nq = (size_t)nb * tq, tkk = (size_t)(b->cross ? tk : tq), nk = (size_t)nb * tkk;
    double *p = base;
    size_t used = 0;
#define MMSPCL__T_TAKE(field, count) do { size_t cnt_ = (count); c->field = p ? p + used : NULL; used += cnt_; } while (0)
    MMSPCL__T_TAKE(xln, nq * D);  MMSPCL__T_TAKE(st1, 2 * nq);
    MMSPCL__T_TAKE(kvln, b->cross ? nk * D : 0); MMSPCL__T_TAKE(st2, b->cross ? 2 * nk : 0);
    MMSPCL__T_TAKE(q, nq * D); MMSPCL__T_TAKE(k, nk * D); MMSPCL__T_TAKE(v, nk * D);
    MMSPCL__T_TAKE(p, nq * (size_t)b->H * tkk);
    MMSPCL__T_TAKE(ctx, nq * D); MMSPCL__T_TAKE(x1, nq * D);
    MMSPCL__T_TAKE(fln, nq * D); MMSPCL__T_TAKE(st3, 2 * nq);
    MMSPCL__T_TAKE(mlp, mmspcl_mlp_cache_size(&b->ff, (int)nq));
    MMSPCL__T_TAKE(d1, nq * D); MMSPCL__T_TAKE(d2, nq * D);
    MMSPCL__T_TAKE(dq, nq * D); MMSPCL__T_TAKE(dk, nk * D); MMSPCL__T_TAKE(dv, nk * D);
    MMSPCL__T_TAKE(dkv, nk * D);
#undef MMSPCL__T_TAKE
    return used;
}

size_t mmspcl_block_cache_size(const mmspcl_block *b, int nb, int tq, int tk) {
    mmspcl__t_bc c;
    return mmspcl__t_block_carve(b, nb, tq, tk, NULL, &c);
}

void mmspcl_block_forward(const mmspcl_params *P, const mmspcl_block *b, const double *x, double *y,
                          int nb, int tq, const double *src, int tk, const unsigned char *kmask,
                          double *cache, mmspcl_rng *rng) {
    const int D = b->D, nk = b->cross ? tk : tq;
    const size_t nq = (size_t)nb * tq * D;
    const double *kv;
    mmspcl__t_bc c;
    size_t i;
    mmspcl__t_block_carve(b, nb, tq, tk, cache, &c);
    mmspcl_ln_forward(P, &b->ln_q, x, c.xln, c.st1, nb * tq);
    kv = c.xln;
    if (b->cross) { mmspcl_ln_forward(P, &b->ln_kv, src, c.kvln, c.st2, nb * tk); kv = c.kvln; }
    mmspcl_lin_forward(P, &b->q, c.xln, c.q, nb * tq);
    mmspcl_lin_forward(P, &b->k, kv, c.k, nb * nk);
    mmspcl_lin_forward(P, &b->v, kv, c.v, nb * nk);
    mmspcl_attn_forward(c.q, c.k, c.v, nb, tq, nk, D, b->H, kmask, c.p, c.ctx);
    mmspcl_lin_forward(P, &b->o, c.ctx, y, nb * tq);
    for (i = 0; i < nq; i++) c.x1[i] = x[i] + y[i];
    mmspcl_ln_forward(P, &b->ln_ff, c.x1, c.fln, c.st3, nb * tq);
    mmspcl_mlp_forward(P, &b->ff, c.fln, y, nb * tq, c.mlp, rng);
    for (i = 0; i < nq; i++) y[i] += c.x1[i];
}

void mmspcl_block_backward(mmspcl_params *P, const mmspcl_block *b, const double *x, int nb, int tq,
                           const double *src, int tk, double *cache, const double *dy, double *dx,
                           double *dsrc) {
    const int D = b->D, nk = b->cross ? tk : tq;
    const size_t nq = (size_t)nb * tq * D, nkd = (size_t)nb * nk * D;
    double *dx1, *dfln, *dctx, *dxln;
    mmspcl__t_bc c;
    size_t i;
    mmspcl__t_block_carve(b, nb, tq, tk, cache, &c);
    dx1 = c.d1; dfln = c.d2;
    /* y = x1 + MLP(LN_ff(x1)) */
    memcpy(dx1, dy, sizeof(double) * nq);
    mmspcl__t_zero(dfln, nq);
    mmspcl_mlp_backward(P, &b->ff, c.fln, dy, dfln, nb * tq, c.mlp);
    mmspcl_ln_backward(P, &b->ln_ff, c.x1, c.st3, dfln, dx1, nb * tq);
    /* x1 = x + Wo ctx */
    for (i = 0; i < nq; i++) dx[i] += dx1[i];
    dctx = c.d2;
    mmspcl__t_zero(dctx, nq);
    mmspcl_lin_backward(P, &b->o, c.ctx, dx1, dctx, nb * tq);
    mmspcl__t_zero(c.dq, nq); mmspcl__t_zero(c.dk, nkd); mmspcl__t_zero(c.dv, nkd);
    mmspcl_attn_backward(c.q, c.k, c.v, nb, tq, nk, D, b->H, c.p, dctx, c.dq, c.dk, c.dv);
    /* q = Wq xln, k = Wk kv, v = Wv kv */
    dxln = c.d1;
    mmspcl__t_zero(dxln, nq);
    mmspcl_lin_backward(P, &b->q, c.xln, c.dq, dxln, nb * tq);
    if (b->cross) {
        mmspcl__t_zero(c.dkv, nkd);
        mmspcl_lin_backward(P, &b->k, c.kvln, c.dk, c.dkv, nb * nk);
        mmspcl_lin_backward(P, &b->v, c.kvln, c.dv, c.dkv, nb * nk);
        if (dsrc) mmspcl_ln_backward(P, &b->ln_kv, src, c.st2, c.dkv, dsrc, nb * tk);
        else {  /* still accumulate ln_kv's own gradients */
            double *tmp = c.dk;
            mmspcl__t_zero(tmp, nkd);
            mmspcl_ln_backward(P, &b->ln_kv, src, c.st2, c.dkv, tmp, nb * tk);
        }
    } else {
        mmspcl_lin_backward(P, &b->k, c.xln, c.dk, dxln, nb * tq);
        mmspcl_lin_backward(P, &b->v, c.xln, c.dv, dxln, nb * tq);
    }
    mmspcl_ln_backward(P, &b->ln_q, x, c.st1, dxln, dx, nb * tq);
}

/* ---- 4.8 Softmax cross-entropy --------------------------------------------------------------
   With class weights:  loss = sum_i w_i (lse(z_i) - z_i[y_i]) / sum_i w_i,
   w_i = class_w[y_i];  dz_i = w_i (softmax(z_i) - onehot(y_i)) / sum_i w_i */
double mmspcl_ce_loss(const double *logits, const int *y, int n, int C, const double *class_w,
                      double *dlogits) {
    double wsum = 0.0, loss = 0.0;
    int i, c;
    for (i = 0; i < n; i++) if (y[i] >= 0 && y[i] < C) wsum += class_w ? class_w[y[i]] : 1.0;
    for (i = 0; i < n; i++) {
        const double *z = logits + (size_t)i * C;
        double *dz = dlogits ? dlogits + (size_t)i * C : NULL, mx = z[0], sum = 0.0, w;
        if (y[i] < 0 || y[i] >= C || wsum <= 0.0) {
            if (dz) for (c = 0; c < C; c++) dz[c] = 0.0;
            continue;
        }
        w = class_w ? class_w[y[i]] : 1.0;
        for (c = 1; c < C; c++) if (z[c] > mx) mx = z[c];
        for (c = 0; c < C; c++) sum += exp(z[c] - mx);
        loss += w * (log(sum) + mx - z[y[i]]);
        if (dz) for (c = 0; c < C; c++) dz[c] = w * (exp(z[c] - mx) / sum - (c == y[i])) / wsum;
    }
    return wsum > 0.0 ? loss / wsum : 0.0;
}

/* ---------------------------------------------------------------------------------------------
   5. SPCL loss, queues, prototypes, curriculum
   ------------------------------------------------------------------------------------------ */
/* ---- 5.1 SPCL loss --------------------------------------------------------------------------
   See the top comment. cos(x, r) = x.r / (|x|' |r|'), |.|' = max(|.|, 1e-8):
     dcos/dx = r / (|x|' |r|') - cos x / (|x|' |x|)        (second term only when |x| > 1e-8)
   With e_a = exp(s_ia), T = pos + neg, prob = pos / T / (P + 1e-8), l = -log(prob + 1e-8):
     dl/ds_ia = -1/(prob + 1e-8) * e_a / (T^2 (P + 1e-8)) * (neg if a is a positive, -pos if not)
     ds_ia/dcos_ia = 1 / (2 temperature) */
static double mmspcl__t_dot(const double *a, const double *b, int n) {
    double s = 0.0;
    int i;
    for (i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

mmspcl_status mmspcl_spcl_loss(const double *z, const int *y, int n, int dim, const double *protos,
                               int C, double temperature, double *loss, double *dz,
                               double *anchor_loss, mmspcl_spcl_stats *stats, mmspcl_error *err) {
    const int N = n + C;
    const double eps = 1e-8, inv2t = 1.0 / (2.0 * temperature);
    double *nrm, *cs, *G, *lv, total = 0.0;
    int i, j, active = 0, anchors = 0;
    if (n < 0 || dim <= 0 || C <= 0 || !(temperature > 0.0))
        return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "spcl_loss: n %d, dim %d, classes %d, temperature %g", n, dim, C, temperature);
    nrm = mmspcl__t_alloc((size_t)N + (size_t)n * N * 2 + (size_t)n);
    if (!nrm) return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "spcl_loss: out of memory for a batch of %d", n);
    cs = nrm + N;                 /* [n][N] cosines */
    G = cs + (size_t)n * N;       /* [n][N] dloss/dcos */
    lv = G + (size_t)n * N;       /* [n] anchor losses, < 0 for rows that are not anchors */
#define MMSPCL__T_REP(a) ((a) < n ? z + (size_t)(a) * dim : protos + (size_t)((a) - n) * dim)
#define MMSPCL__T_LAB(a) ((a) < n ? y[a] : (a) - n)
    for (j = 0; j < N; j++) nrm[j] = sqrt(mmspcl__t_dot(MMSPCL__T_REP(j), MMSPCL__T_REP(j), dim));
    MMSPCL__T_PARALLEL(2.0 * n * N * dim);
    MMSPCL__T_OMP_FOR
    for (i = 0; i < n; i++) {
        const double *zi = z + (size_t)i * dim;
        const double ni = nrm[i] > eps ? nrm[i] : eps;
        double *ci = cs + (size_t)i * N, *gi = G + (size_t)i * N;
        double mx = -HUGE_VAL, pos = 0.0, neg = 0.0, P = 0.0, prob;
        int a;
        for (a = 0; a < N; a++) {
            const double na = nrm[a] > eps ? nrm[a] : eps;
            ci[a] = mmspcl__t_dot(zi, MMSPCL__T_REP(a), dim) / (ni * na);
            gi[a] = 0.0;
        }
        lv[i] = -1.0;
        if (y[i] < 0 || y[i] >= C) continue;
        for (a = 0; a < N; a++) {
            const double s = ((1.0 + ci[a]) / 2.0 + eps) / temperature;
            if (a == i || MMSPCL__T_LAB(a) < 0 || MMSPCL__T_LAB(a) >= C) continue;
            if (s > mx) mx = s;
        }
        for (a = 0; a < N; a++) {
            double e;
            if (a == i || MMSPCL__T_LAB(a) < 0 || MMSPCL__T_LAB(a) >= C) continue;
            e = exp(((1.0 + ci[a]) / 2.0 + eps) / temperature - mx);
            if (MMSPCL__T_LAB(a) == y[i]) { pos += e; P += 1.0; } else neg += e;
            gi[a] = e;   /* kept for the gradient */
        }
        prob = pos / (pos + neg) / (P + eps);
        lv[i] = -log(prob + eps);
        /* gradient factors, scaled below by 1 / (number of active anchors + eps) */
        for (a = 0; a < N; a++) {
            const double T = pos + neg;
            if (gi[a] == 0.0) continue;
            gi[a] = -1.0 / (prob + eps) * gi[a] / (T * T * (P + eps)) *
                    (MMSPCL__T_LAB(a) == y[i] ? neg : -pos) * inv2t;
        }
    }
    for (i = 0; i < n; i++) {
        if (lv[i] < 0.0) continue;
        anchors++;
        if (lv[i] > 0.3) { active++; total += lv[i]; }
    }
    *loss = total / (active + eps);
    if (anchor_loss) for (i = 0; i < n; i++) anchor_loss[i] = lv[i] < 0.0 ? 0.0 : lv[i];
    if (stats) {
        double s = 0.0;
        for (i = 0; i < n; i++) if (lv[i] >= 0.0) s += lv[i];
        stats->anchors = anchors;
        stats->active = active;
        stats->mean_anchor_loss = anchors ? s / anchors : 0.0;
    }
    if (dz) {
        const double scale = 1.0 / (active + eps);
        MMSPCL__T_OMP_FOR
        for (j = 0; j < n; j++) {
            const double *zj = z + (size_t)j * dim;
            const double nj = nrm[j] > eps ? nrm[j] : eps;
            double *dzj = dz + (size_t)j * dim;
            int a, d;
            /* j as the anchor */
            if (lv[j] > 0.3)
                for (a = 0; a < N; a++) {
                    const double g = G[(size_t)j * N + a] * scale;
                    const double *ra = MMSPCL__T_REP(a);
                    const double na = nrm[a] > eps ? nrm[a] : eps, c = cs[(size_t)j * N + a];
                    if (g == 0.0) continue;
                    for (d = 0; d < dim; d++)
                        dzj[d] += g * (ra[d] / (nj * na) - (nrm[j] > eps ? c * zj[d] / (nj * nj) : 0.0));
                }
            /* j as another anchor's candidate: d cos(z_i, z_j) / d z_j */
            for (a = 0; a < n; a++) {
                const double g = lv[a] > 0.3 ? G[(size_t)a * N + j] * scale : 0.0;
                const double *za = z + (size_t)a * dim;
                const double na = nrm[a] > eps ? nrm[a] : eps, c = cs[(size_t)a * N + j];
                if (g == 0.0) continue;
                for (d = 0; d < dim; d++)
                    dzj[d] += g * (za[d] / (na * nj) - (nrm[j] > eps ? c * zj[d] / (nj * nj) : 0.0));
            }
        }
    }
#undef MMSPCL__T_REP
#undef MMSPCL__T_LAB
    MMSPCL_FREE(nrm);
    return MMSPCL_OK;
}

/* ---- 5.2 Queues and prototypes ----------------------------------------------------------- */
mmspcl_status mmspcl_spcl_init(mmspcl_spcl *S, int n_classes, int dim, int pool_size, int K,
                               double temperature, uint64_t seed, mmspcl_error *err) {
    memset(S, 0, sizeof *S);
    if (n_classes < 2 || dim < 1 || pool_size < 1 || K < 1 || !(temperature > 0.0))
        return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "spcl: classes %d, dim %d, pool %d, K %d, temperature %g",
                              n_classes, dim, pool_size, K, temperature);
    S->n_classes = n_classes; S->dim = dim; S->pool_size = pool_size; S->K = K;
    S->temperature = temperature;
    S->pool = mmspcl__t_alloc((size_t)n_classes * (pool_size + 1) * dim);
    S->centers = mmspcl__t_alloc((size_t)n_classes * dim);
    S->protos = mmspcl__t_alloc((size_t)n_classes * dim);
    S->len = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)n_classes);
    S->idx = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)(pool_size + 1));
    if (!S->pool || !S->centers || !S->protos || !S->len || !S->idx) {
        mmspcl_spcl_free(S);
        return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "spcl: out of memory for %d queues of %d x %d", n_classes, pool_size, dim);
    }
    mmspcl__t_zero(S->centers, (size_t)n_classes * dim);
    mmspcl_rng_seed(&S->rng, seed);
    mmspcl_spcl_reset(S, S->centers);
    return MMSPCL_OK;
}

void mmspcl_spcl_free(mmspcl_spcl *S) {
    MMSPCL_FREE(S->pool); MMSPCL_FREE(S->centers); MMSPCL_FREE(S->protos);
    MMSPCL_FREE(S->len); MMSPCL_FREE(S->idx);
    memset(S, 0, sizeof *S);
}

void mmspcl_spcl_reset(mmspcl_spcl *S, const double *centers) {
    const size_t dim = (size_t)S->dim, slot = (size_t)(S->pool_size + 1) * dim;
    int c;
    if (centers != S->centers) memcpy(S->centers, centers, sizeof(double) * S->n_classes * dim);
    for (c = 0; c < S->n_classes; c++) {
        memcpy(S->pool + c * slot, S->centers + c * dim, sizeof(double) * dim);
        S->len[c] = 1;
    }
}

void mmspcl_spcl_push(mmspcl_spcl *S, const double *z, const int *y, int n) {
    const size_t dim = (size_t)S->dim, slot = (size_t)(S->pool_size + 1) * dim;
    int i;
    for (i = 0; i < n; i++) {
        double *q;
        if (y[i] < 0 || y[i] >= S->n_classes) continue;
        q = S->pool + (size_t)y[i] * slot;
        memcpy(q + (size_t)S->len[y[i]] * dim, z + (size_t)i * dim, sizeof(double) * dim);
        if (++S->len[y[i]] > S->pool_size) {   /* drop one entry chosen uniformly at random */
            const int r = mmspcl_rng_int(&S->rng, S->len[y[i]]), last = S->len[y[i]] - 1;
            if (r != last) memcpy(q + (size_t)r * dim, q + (size_t)last * dim, sizeof(double) * dim);
            S->len[y[i]]--;
        }
    }
}

void mmspcl_spcl_prototypes(mmspcl_spcl *S) {
    const size_t dim = (size_t)S->dim, slot = (size_t)(S->pool_size + 1) * dim;
    int c, j;
    size_t d;
    for (c = 0; c < S->n_classes; c++) {
        double *p = S->protos + c * dim;
        const double *q = S->pool + c * slot;
        if (S->len[c] < S->K) { memcpy(p, S->centers + c * dim, sizeof(double) * dim); continue; }
        for (j = 0; j < S->len[c]; j++) S->idx[j] = j;
        for (d = 0; d < dim; d++) p[d] = 0.0;
        for (j = 0; j < S->K; j++) {   /* K distinct entries: a partial Fisher-Yates shuffle */
            const int r = j + mmspcl_rng_int(&S->rng, S->len[c] - j), t = S->idx[j];
            S->idx[j] = S->idx[r]; S->idx[r] = t;
            for (d = 0; d < dim; d++) p[d] += q[(size_t)S->idx[j] * dim + d];
        }
        for (d = 0; d < dim; d++) p[d] /= S->K;
    }
}

mmspcl_status mmspcl_spcl_step(mmspcl_spcl *S, const double *z, const int *y, int n, double *loss,
                               double *dz, mmspcl_spcl_stats *stats, mmspcl_error *err) {
    if (S->push_first) {
        mmspcl_spcl_push(S, z, y, n);
        mmspcl_spcl_prototypes(S);
    } else {
        mmspcl_spcl_prototypes(S);
        mmspcl_spcl_push(S, z, y, n);
    }
    return mmspcl_spcl_loss(z, y, n, S->dim, S->protos, S->n_classes, S->temperature, loss, dz, NULL, stats, err);
}

/* ---- 5.3 Class means and curriculum ------------------------------------------------------ */
void mmspcl_class_means(const double *z, const int *y, int n, int dim, int C, double *means,
                        int *counts) {
    int i, c, d;
    mmspcl__t_zero(means, (size_t)C * dim);
    if (counts) for (c = 0; c < C; c++) counts[c] = 0;
    for (c = 0; c < C; c++) {
        int cnt = 0;
        for (i = 0; i < n; i++) {
            if (y[i] != c) continue;
            cnt++;
            for (d = 0; d < dim; d++) means[(size_t)c * dim + d] += z[(size_t)i * dim + d];
        }
        if (cnt) for (d = 0; d < dim; d++) means[(size_t)c * dim + d] /= cnt;
        if (counts) counts[c] = cnt;
    }
}

/* (1 - cos) / 2 + 1e-8, cos as torch's (norms clamped at 1e-8) */
static double mmspcl__t_dist(const double *a, const double *b, int dim) {
    double na = sqrt(mmspcl__t_dot(a, a, dim)), nb = sqrt(mmspcl__t_dot(b, b, dim));
    na = na > 1e-8 ? na : 1e-8;
    nb = nb > 1e-8 ? nb : 1e-8;
    return (1.0 - mmspcl__t_dot(a, b, dim) / (na * nb)) / 2.0 + 1e-8;
}

void mmspcl_curriculum_difficulty(const double *z, const int *y, int n, int dim, const double *means,
                                  const int *counts, int C, double *diff) {
    int i;
    MMSPCL__T_PARALLEL(2.0 * n * C * dim);
    MMSPCL__T_OMP_FOR
    for (i = 0; i < n; i++) {
        double sum = 0.0;
        int c;
        for (c = 0; c < C; c++)
            if (!counts || counts[c] > 0) sum += mmspcl__t_dist(z + (size_t)i * dim, means + (size_t)c * dim, dim);
        diff[i] = (y[i] >= 0 && y[i] < C) ? mmspcl__t_dist(z + (size_t)i * dim, means + (size_t)y[i] * dim, dim) / sum : 1.0;
    }
}

typedef struct mmspcl__t_key { double v; int i; } mmspcl__t_key;
static int mmspcl__t_key_cmp(const void *a, const void *b) {
    const mmspcl__t_key *x = (const mmspcl__t_key *)a, *y = (const mmspcl__t_key *)b;
    if (x->v < y->v) return -1;
    if (x->v > y->v) return 1;
    return (x->i > y->i) - (x->i < y->i);
}

int mmspcl_curriculum_select(const double *diff, int n, int epoch, int n_epochs, mmspcl_rng *rng,
                             int *keep) {
    const double st = 1.0 - (double)epoch / n_epochs, ed = (double)epoch / n_epochs;
    mmspcl__t_key *k = (mmspcl__t_key *)MMSPCL_MALLOC(sizeof(mmspcl__t_key) * (size_t)(n > 0 ? n : 1));
    int r, m = 0;
    if (!k) { for (r = 0; r < n; r++) keep[r] = r; return n; }
    for (r = 0; r < n; r++) { k[r].v = diff[r]; k[r].i = r; }
    qsort(k, (size_t)n, sizeof *k, mmspcl__t_key_cmp);
    for (r = 0; r < n; r++) {
        const double p = n > 1 ? st + (ed - st) / (n - 1) * r : st;
        if (mmspcl_rng_uniform(rng) < p) keep[m++] = k[r].i;
    }
    MMSPCL_FREE(k);
    return m;
}

/* ---------------------------------------------------------------------------------------------
   6. Cross-modal pruning, training twin
   Selection exactly as mmspcl_prune_apply (same cosine code in double, so float inputs
   give the same heads).
   ------------------------------------------------------------------------------------------ */
static double mmspcl__t_cos(const double *a, const double *b, int n) {
    double ab = 0, aa = 0, bb = 0;
    int i;
    for (i = 0; i < n; i++) { ab += a[i] * b[i]; aa += a[i] * a[i]; bb += b[i] * b[i]; }
    aa = sqrt(aa); bb = sqrt(bb);
    return ab / ((aa > 1e-8 ? aa : 1e-8) * (bb > 1e-8 ? bb : 1e-8));
}

mmspcl_status mmspcl_prune_train_forward(const double *base, int db, const double *prune, int dp,
                                         int K, int n, double *pruned, unsigned char *kept,
                                         mmspcl_error *err) {
    int i, np;
    if (K <= 0 || db <= 0 || dp <= 0 || db % K != 0 || n < 0)
        return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "prune: base width %d must be a positive multiple of head size %d (pruning width %d)", db, K, dp);
    np = (dp + K - 1) / K;
    MMSPCL__T_PARALLEL((double)n * db * ((dp + K - 1) / K));
    MMSPCL__T_OMP_FOR
    for (i = 0; i < n; i++) {
        const double *xb = base + (size_t)i * db, *xp = prune + (size_t)i * dp;
        double *o = pruned + (size_t)i * dp;
        unsigned char *kp = kept + (size_t)i * np;
        int hb, hp, j;
        for (hp = 0; hp < np; hp++) kp[hp] = 1;
        for (hb = 0; hb < db / K; hb++) {
            int best = 0;
            double bc = -2;
            for (hp = 0; hp < np; hp++) {
                const int w = (hp + 1) * K <= dp ? K : dp - hp * K;
                const double c = mmspcl__t_cos(xb + (size_t)hb * K, xp + (size_t)hp * K, w);
                if (c > bc) { bc = c; best = hp; }
            }
            kp[best] = 0;
        }
        for (j = 0; j < dp; j++) o[j] = kp[j / K] ? xp[j] : 0.0;
    }
    return MMSPCL_OK;
}

void mmspcl_prune_train_backward(const unsigned char *kept, int dp, int K, int n,
                                 const double *dpruned, double *dprune) {
    const int np = (dp + K - 1) / K;
    int i, j;
    for (i = 0; i < n; i++)
        for (j = 0; j < dp; j++)
            if (kept[(size_t)i * np + j / K]) dprune[(size_t)i * dp + j] += dpruned[(size_t)i * dp + j];
}

mmspcl_status mmspcl_prune_train_threshold_forward(const double *base, int db, const double *prune, int dp,
                                                   int K, double tau, int n, double *pruned,
                                                   unsigned char *kept, mmspcl_error *err) {
    int i, np;
    if (K <= 0 || db <= 0 || dp <= 0 || db % K != 0 || n < 0 || tau != tau)
        return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "prune: base width %d must be a positive multiple of head size %d (pruning width %d), threshold a number", db, K, dp);
    np = (dp + K - 1) / K;
    for (i = 0; i < n; i++) {
        const double *xb = base + (size_t)i * db, *xp = prune + (size_t)i * dp;
        int hb, hp, j;
        for (hp = 0; hp < np; hp++) {
            const int w = (hp + 1) * K <= dp ? K : dp - hp * K;
            int drop = 0;
            for (hb = 0; hb < db / K && !drop; hb++) drop = mmspcl__t_cos(xb + (size_t)hb * K, xp + (size_t)hp * K, w) >= tau;
            kept[(size_t)i * np + hp] = (unsigned char)!drop;
            for (j = hp * K; j < hp * K + w; j++) pruned[(size_t)i * dp + j] = drop ? 0.0 : xp[j];
        }
    }
    return MMSPCL_OK;
}

/* ---- cross-modal pruning as a layer ---- */
void mmspcl_xprune_train_free(mmspcl_xprune_train *p) {
    MMSPCL_FREE(p->kept);
    MMSPCL_FREE(p->g);
    memset(p, 0, sizeof *p);
}

mmspcl_status mmspcl_xprune_train_create(mmspcl_xprune_train *p, mmspcl_params *P, const char *prefix,
                                         const mmspcl_xprune_cfg *cfg, mmspcl_rng *rng, mmspcl_error *err) {
    char name[200];
    int m;
    mmspcl_status st;
    memset(p, 0, sizeof *p);
    if ((st = mmspcl_xprune_plan(cfg, &p->lay, err))) return st;
    p->cfg = *cfg;
    p->cfg.mods = p->lay.mods;
    snprintf(p->prefix, sizeof p->prefix, "%s", prefix);
    for (m = 0; m < 3 && cfg->proj_dim > 0; m++) {
        if (cfg->dims[m] <= 0) continue;
        snprintf(name, sizeof name, "%s.proj.%s", prefix, mmspcl__t_mod[m]);
        mmspcl_lin_create(&p->proj[m], P, name, cfg->dims[m], cfg->proj_dim, rng);
    }
    if (P->oom) return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "prune: out of memory");
    return MMSPCL_OK;
}

/* the real steps of modality m in sample i (all T[m] without lengths) */
static int mmspcl__t_xprune_len(const int T[3], const int *const lens[3], int m, int i) {
    return lens && lens[m] ? lens[m][i] : T[m];
}

/* checks x / y / T / lens as the inference twin does, sizes the kept flags and the backward
   scratch for n samples of tmax steps; *tmax = the longest T */
static mmspcl_status mmspcl__t_xprune_prepare(mmspcl_xprune_train *p, const double *const x[3], const int T[3],
                                              const int *const lens[3], int n, double *const y[3], int *tmax,
                                              mmspcl_error *err) {
    const mmspcl_xprune_layout *l = &p->lay;
    size_t widest = 1, rows;
    int m, i;
    *tmax = 1;
    if (n < 0) return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "prune: %d samples", n);
    for (m = 0; m < 3; m++) {
        if (p->cfg.dims[m] <= 0) continue;
        if (!x[m] || !y[m] || T[m] < 1)
            return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "prune: modality %s has width %d but no input or output (steps %d)", mmspcl__t_mod[m], p->cfg.dims[m], T[m]);
        for (i = 0; lens && lens[m] && i < n; i++)
            if (lens[m][i] < 1 || lens[m][i] > T[m])
                return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "prune: sample %d of %s has length %d (steps 1..%d)", i, mmspcl__t_mod[m], lens[m][i], T[m]);
        if (T[m] > *tmax) *tmax = T[m];
        if ((size_t)l->width[m] > widest) widest = (size_t)l->width[m];
    }
    rows = (size_t)n * (size_t)*tmax;
    if (rows * l->n_kept > p->kept_cap) {
        unsigned char *q = (unsigned char *)MMSPCL_REALLOC(p->kept, rows * l->n_kept);
        if (!q) return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "prune: out of memory for %d samples of %d steps", n, *tmax);
        p->kept = q; p->kept_cap = rows * l->n_kept;
    }
    if (rows * widest > p->g_cap) {
        double *q = (double *)MMSPCL_REALLOC(p->g, sizeof(double) * rows * widest);
        if (!q) return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "prune: out of memory for %d samples of %d steps", n, *tmax);
        p->g = q; p->g_cap = rows * widest;
    }
    p->n = n;
    p->tmax = *tmax;
    return MMSPCL_OK;
}

/* The training twin of mmspcl_xprune_forward_seq (mmspcl.h 12.3): the projection on every step,
   padded steps zero, then at each step s of sample i the heads chosen among the modalities that
   have a step s (none when the base has not: such steps pass unchanged). */
mmspcl_status mmspcl_xprune_train_forward_seq(mmspcl_xprune_train *p, const mmspcl_params *P, const double *const x[3],
                                              const int T[3], const int *const lens[3], int n, double *const y[3],
                                              mmspcl_error *err) {
    const mmspcl_xprune_layout *l = &p->lay;
    const int b = p->cfg.base;
    const double *row[3] = { NULL, NULL, NULL };
    int m, i, j, s, tmax;
    mmspcl_status st = mmspcl__t_xprune_prepare(p, x, T, lens, n, y, &tmax, err);
    if (st) return st;
    for (m = 0; m < 3; m++) {
        const size_t W = (size_t)l->width[m];
        if (p->cfg.dims[m] <= 0) continue;
        if (p->cfg.proj_dim > 0) mmspcl_lin_forward(P, &p->proj[m], x[m], y[m], n * T[m]);
        else memcpy(y[m], x[m], sizeof(double) * (size_t)n * T[m] * W);
        for (i = 0; i < n; i++)   /* padded steps: zero */
            for (j = mmspcl__t_xprune_len(T, lens, m, i) * (int)W; j < T[m] * (int)W; j++) y[m][(size_t)i * T[m] * W + j] = 0.0;
    }
    for (i = 0; i < n; i++)
        for (s = 0; s < tmax; s++) {
            unsigned char *ks = p->kept + ((size_t)i * tmax + s) * l->n_kept;
            unsigned real = 0;
            for (m = 0; m < 3; m++) {
                row[m] = NULL;
                if (p->cfg.dims[m] > 0 && s < mmspcl__t_xprune_len(T, lens, m, i)) {
                    real |= 1u << m;
                    row[m] = y[m] + ((size_t)i * T[m] + s) * l->width[m];
                }
            }
            if (!(real & (1u << b))) real = 0;   /* no base step: nothing is compared */
            mmspcl_xprune_select_some(&p->cfg, l, row, real, ks);
            for (m = 0; m < 3; m++)
                for (j = 0; (real & l->mods & (1u << m)) && j < l->width[m]; j++)
                    if (!ks[l->koff[m] + j / p->cfg.K]) y[m][((size_t)i * T[m] + s) * l->width[m] + j] = 0.0;
        }
    return MMSPCL_OK;
}

void mmspcl_xprune_train_backward_seq(mmspcl_xprune_train *p, mmspcl_params *P, const double *const x[3], const int T[3],
                                      const int *const lens[3], int n, const double *const dy[3], double *const dx[3]) {
    const mmspcl_xprune_layout *l = &p->lay;
    int m, i, j, s;
    for (m = 0; m < 3; m++) {
        const int W = l->width[m], pruned = (int)((l->mods >> m) & 1u);
        const double *g = dy ? dy[m] : NULL;
        double *d = dx ? dx[m] : NULL;
        if (p->cfg.dims[m] <= 0 || !g) continue;
        /* padded steps are constant zeros, and zeroed heads pass no gradient */
        for (i = 0; i < n; i++)
            for (s = 0; s < T[m]; s++) {
                const size_t r = (size_t)i * T[m] + s;
                const int pad = s >= mmspcl__t_xprune_len(T, lens, m, i);
                const unsigned char *ks = p->kept + ((size_t)i * p->tmax + s) * l->n_kept;
                for (j = 0; j < W; j++) p->g[r * W + j] = pad || (pruned && !ks[l->koff[m] + j / p->cfg.K]) ? 0.0 : g[r * W + j];
            }
        if (p->cfg.proj_dim > 0) mmspcl_lin_backward(P, &p->proj[m], x[m], p->g, d, n * T[m]);
        else if (d) for (j = 0; j < n * T[m] * W; j++) d[j] += p->g[j];
    }
}

mmspcl_status mmspcl_xprune_train_forward(mmspcl_xprune_train *p, const mmspcl_params *P, const double *const x[3],
                                          int n, double *const y[3], mmspcl_error *err) {
    const int T[3] = { 1, 1, 1 };
    return mmspcl_xprune_train_forward_seq(p, P, x, T, NULL, n, y, err);
}

void mmspcl_xprune_train_backward(mmspcl_xprune_train *p, mmspcl_params *P, const double *const x[3], int n,
                                  const double *const dy[3], double *const dx[3]) {
    const int T[3] = { 1, 1, 1 };
    mmspcl_xprune_train_backward_seq(p, P, x, T, NULL, n, dy, dx);
}

mmspcl_status mmspcl_xprune_train_write_config(const mmspcl_xprune_train *p, mmspcl_writer *wr) {
    char key[200];
    int m, st = 0;
#define MMSPCL__T_PKEY(k, v) do { snprintf(key, sizeof key, "%s.%s", p->prefix, k); st |= (int)mmspcl_writer_set_int(wr, key, (int64_t)(v)); } while (0)
    for (m = 0; m < 3; m++) {
        char k2[16];
        snprintf(k2, sizeof k2, "dim.%s", mmspcl__t_mod[m]);
        MMSPCL__T_PKEY(k2, p->cfg.dims[m]);
    }
    MMSPCL__T_PKEY("base", p->cfg.base); MMSPCL__T_PKEY("mods", p->cfg.mods); MMSPCL__T_PKEY("K", p->cfg.K);
    MMSPCL__T_PKEY("rule", p->cfg.rule); MMSPCL__T_PKEY("joint", p->cfg.joint); MMSPCL__T_PKEY("proj_dim", p->cfg.proj_dim);
#undef MMSPCL__T_PKEY
    snprintf(key, sizeof key, "%s.tau", p->prefix);
    st |= (int)mmspcl_writer_set_float(wr, key, p->cfg.rule == MMSPCL_PRUNE_THRESHOLD ? p->cfg.tau : 0.0);
    return st ? MMSPCL_ERR_NOMEM : MMSPCL_OK;
}

/* ---------------------------------------------------------------------------------------------
   7. Fusion heads
   ------------------------------------------------------------------------------------------ */
void mmspcl_fusion_defaults(mmspcl_fusion_cfg *c, mmspcl_fusion_kind kind) {
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->out_dim = 1024;
    c->d_model = 64; c->n_heads = 4; c->ff_mult = 2;
    c->n_cross = 5; c->n_self = 2;
    c->n_layers = 5; c->fusion_start = 2; c->n_fusion = 8;
    c->act = MMSPCL_ACT_GELU;
    c->dropout = 0.1;
}

void mmspcl_fusion_free(mmspcl_fusion *f) {
    MMSPCL_FREE(f->blocks); MMSPCL_FREE(f->final_ln); MMSPCL_FREE(f->act); MMSPCL_FREE(f->off);
    MMSPCL_FREE(f->lens); MMSPCL_FREE(f->mask);
    memset(f, 0, sizeof *f);
}

mmspcl_status mmspcl_fusion_create(mmspcl_fusion *f, mmspcl_params *P, const char *prefix,
                                   const mmspcl_fusion_cfg *cfg, mmspcl_rng *rng, mmspcl_error *err) {
    char name[200];
    int m, a, b, l, s, D = cfg->d_model, in = 0, n_off;
    memset(f, 0, sizeof *f);
    f->cfg = *cfg;
    snprintf(f->prefix, sizeof f->prefix, "%s", prefix);
    for (m = 0; m < 3; m++) {
        if (cfg->dims[m] < 0) return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "fusion: modality %s has width %d", mmspcl__t_mod[m], cfg->dims[m]);
        if (cfg->dims[m] == 0) continue;
        f->mods[f->n_mod++] = m;
        in += cfg->dims[m];
        if (cfg->kind != MMSPCL_FUSION_LINEAR) {
            if (f->cfg.seq[m] <= 0) f->cfg.seq[m] = 1;
            if (cfg->dims[m] % f->cfg.seq[m])
                return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "fusion: width %d of %s is not a multiple of its %d tokens", cfg->dims[m], mmspcl__t_mod[m], f->cfg.seq[m]);
            f->tok[m] = cfg->dims[m] / f->cfg.seq[m];
        } else f->cfg.seq[m] = 0;
    }
    if (cfg->out_dim <= 0 || f->n_mod < (cfg->kind == MMSPCL_FUSION_LINEAR ? 1 : 2))
        return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "fusion: %d modalities, out_dim %d", f->n_mod, cfg->out_dim);
    if (cfg->kind == MMSPCL_FUSION_LINEAR) {
        snprintf(name, sizeof name, "%s.proj", prefix);
        mmspcl_lin_create(&f->proj, P, name, in, cfg->out_dim, rng);
        f->off = (size_t *)MMSPCL_MALLOC(sizeof(size_t) * 4);
        if (!f->off || P->oom) { mmspcl_fusion_free(f); return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "fusion: out of memory"); }
        return MMSPCL_OK;
    }
    if (D <= 0 || cfg->n_heads <= 0 || D % cfg->n_heads || cfg->ff_mult <= 0)
        return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "fusion: d_model %d, n_heads %d, ff_mult %d", D, cfg->n_heads, cfg->ff_mult);
    if (cfg->kind == MMSPCL_FUSION_MULT) {
        if (cfg->n_cross < 0 || cfg->n_self < 0 || cfg->n_cross + cfg->n_self < 1)
            return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "mult: %d cross and %d self layers", cfg->n_cross, cfg->n_self);
        f->L = cfg->n_cross + cfg->n_self;
    } else if (cfg->kind == MMSPCL_FUSION_MBT) {
        if (cfg->n_layers < 1 || cfg->fusion_start < 0 || cfg->fusion_start > cfg->n_layers || cfg->n_fusion < 1)
            return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "mbt: %d layers, fusion from %d, %d fusion tokens", cfg->n_layers, cfg->fusion_start, cfg->n_fusion);
        f->L = cfg->n_layers;
    } else return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "fusion: unknown kind %d", (int)cfg->kind);
    for (s = 0; s < f->n_mod; s++) {
        int64_t sh[2];
        m = f->mods[s];
        snprintf(name, sizeof name, "%s.in.%s", prefix, mmspcl__t_mod[m]);
        mmspcl_lin_create(&f->in_proj[m], P, name, f->tok[m], D, rng);
        snprintf(name, sizeof name, "%s.pos.%s", prefix, mmspcl__t_mod[m]);
        sh[0] = f->cfg.seq[m]; sh[1] = D;
        f->pos[m] = mmspcl_params_add(P, name, 2, sh, 1, MMSPCL_INIT_NORMAL, 0.02, rng);
    }
    if (cfg->kind == MMSPCL_FUSION_MULT) {
        for (a = 0; a < f->n_mod; a++)
            for (b = 0; b < f->n_mod; b++)
                if (a != b) { f->pa[f->n_pairs] = f->mods[a]; f->pb[f->n_pairs] = f->mods[b]; f->n_pairs++; }
        f->blocks = (mmspcl_block *)MMSPCL_MALLOC(sizeof(mmspcl_block) * (size_t)(f->n_pairs * f->L));
        f->final_ln = (mmspcl_ln *)MMSPCL_MALLOC(sizeof(mmspcl_ln) * (size_t)f->n_pairs);
        n_off = 16 + f->n_pairs * (2 * f->L + 3);
        if (!f->blocks || !f->final_ln) { mmspcl_fusion_free(f); return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "fusion: out of memory"); }
        for (s = 0; s < f->n_pairs; s++) {
            for (l = 0; l < f->L; l++) {
                snprintf(name, sizeof name, "%s.%s_%s.layer.%d", prefix, mmspcl__t_mod[f->pa[s]], mmspcl__t_mod[f->pb[s]], l);
                mmspcl_block_create(&f->blocks[s * f->L + l], P, name, D, cfg->n_heads, cfg->ff_mult * D, cfg->act,
                                    l < cfg->n_cross, cfg->dropout, rng);
            }
            snprintf(name, sizeof name, "%s.%s_%s.ln", prefix, mmspcl__t_mod[f->pa[s]], mmspcl__t_mod[f->pb[s]]);
            mmspcl_ln_create(&f->final_ln[s], P, name, D);
        }
        snprintf(name, sizeof name, "%s.out", prefix);
        mmspcl_lin_create(&f->out_proj, P, name, f->n_pairs * D, cfg->out_dim, rng);
    } else {
        int64_t sh[2];
        int p = 0;
        if (cfg->bottleneck != MMSPCL_BOTTLENECK_MODALITY && cfg->bottleneck != MMSPCL_BOTTLENECK_PAIR)
            return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "mbt: bottleneck %d is neither per modality (%d) nor per pair (%d)", cfg->bottleneck, MMSPCL_BOTTLENECK_MODALITY, MMSPCL_BOTTLENECK_PAIR);
        if (cfg->readout != MMSPCL_READOUT_MODALITY && cfg->readout != MMSPCL_READOUT_JOINT)
            return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "mbt: readout %d is neither per modality (%d) nor joint (%d)", cfg->readout, MMSPCL_READOUT_MODALITY, MMSPCL_READOUT_JOINT);
        if (cfg->bottleneck == MMSPCL_BOTTLENECK_PAIR) {
            for (a = 0; a < f->n_mod; a++)
                for (b = a + 1; b < f->n_mod; b++) { f->sets[a][f->nset[a]++] = p; f->sets[b][f->nset[b]++] = p; p++; }
            f->n_sets = p; f->members = 2;
        } else {
            for (a = 0; a < f->n_mod; a++) f->nset[a] = 1;
            f->n_sets = 1; f->members = f->n_mod;
        }
        snprintf(name, sizeof name, "%s.fusion_tokens", prefix);
        sh[0] = (int64_t)f->n_sets * cfg->n_fusion; sh[1] = D;
        f->fusion_tokens = mmspcl_params_add(P, name, 2, sh, 1, MMSPCL_INIT_NORMAL, 0.02, rng);
        f->blocks = (mmspcl_block *)MMSPCL_MALLOC(sizeof(mmspcl_block) * (size_t)(f->n_mod * f->L));
        f->final_ln = (mmspcl_ln *)MMSPCL_MALLOC(sizeof(mmspcl_ln) * (size_t)f->n_mod);
        n_off = 32 + f->n_mod * (2 * f->L + 8) + f->L;
        if (!f->blocks || !f->final_ln) { mmspcl_fusion_free(f); return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "fusion: out of memory"); }
        for (s = 0; s < f->n_mod; s++) {
            m = f->mods[s];
            for (l = 0; l < f->L; l++) {
                snprintf(name, sizeof name, "%s.%s.layer.%d", prefix, mmspcl__t_mod[m], l);
                mmspcl_block_create(&f->blocks[s * f->L + l], P, name, D, cfg->n_heads, cfg->ff_mult * D, cfg->act, 0,
                                    cfg->dropout, rng);
            }
            snprintf(name, sizeof name, "%s.%s.ln", prefix, mmspcl__t_mod[m]);
            if (cfg->readout == MMSPCL_READOUT_MODALITY) mmspcl_ln_create(&f->final_ln[s], P, name, D);
        }
        snprintf(name, sizeof name, "%s.ln", prefix);
        if (cfg->readout == MMSPCL_READOUT_JOINT) mmspcl_ln_create(&f->final_ln[0], P, name, D);
        snprintf(name, sizeof name, "%s.out", prefix);
        mmspcl_lin_create(&f->out_proj, P, name, (cfg->readout == MMSPCL_READOUT_JOINT ? 1 : f->n_mod) * D, cfg->out_dim, rng);
    }
    f->off = (size_t *)MMSPCL_MALLOC(sizeof(size_t) * (size_t)n_off);
    if (!f->off || P->oom) { mmspcl_fusion_free(f); return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "fusion: out of memory"); }
    return MMSPCL_OK;
}

/* Activation layout for n samples: f->off[k] is the offset of array k in f->act.
   LINEAR: CAT, DCAT.
   MULT:   E(m) 0..2 | H(p,l) p < NP, l <= L | BC(p,l) | FLN(p) | FST(p) | POOL | DH0 DH1 DE(m) DPOOL DFLN
   MBT:    Z0(s) | IN(l,s) | BC(l,s) | FSN(l) | ZF(s) | FLN(s) | FST(s) | POOL TMP | DZ(s) | DFSN0 DFSN1
           DOUT DIN DPOOL DFLN */
#define MMSPCL__T_MU_H(f, p, l) (3 + (p) * ((f)->L + 1) + (l))
#define MMSPCL__T_MU_BC(f, p, l) (3 + (f)->n_pairs * ((f)->L + 1) + (p) * (f)->L + (l))
#define MMSPCL__T_MU_FLN(f, p) (3 + (f)->n_pairs * (2 * (f)->L + 1) + (p))
#define MMSPCL__T_MU_FST(f, p) (3 + (f)->n_pairs * (2 * (f)->L + 2) + (p))
#define MMSPCL__T_MU_END(f) (3 + (f)->n_pairs * (2 * (f)->L + 3))
#define MMSPCL__T_MB_IN(f, l, s) ((f)->n_mod + (l) * (f)->n_mod + (s))
#define MMSPCL__T_MB_BC(f, l, s) ((f)->n_mod * (1 + (f)->L) + (l) * (f)->n_mod + (s))
#define MMSPCL__T_MB_FSN(f, l) ((f)->n_mod * (1 + 2 * (f)->L) + (l))
#define MMSPCL__T_MB_ZF(f, s) ((f)->n_mod * (1 + 2 * (f)->L) + (f)->L + (s))
#define MMSPCL__T_MB_FLN(f, s) ((f)->n_mod * (2 + 2 * (f)->L) + (f)->L + (s))
#define MMSPCL__T_MB_FST(f, s) ((f)->n_mod * (3 + 2 * (f)->L) + (f)->L + (s))
#define MMSPCL__T_MB_DZ(f, s) ((f)->n_mod * (4 + 2 * (f)->L) + (f)->L + 2 + (s))
#define MMSPCL__T_MB_END(f) ((f)->n_mod * (5 + 2 * (f)->L) + (f)->L + 2)
#define MMSPCL__T_A(f, k) ((f)->act + (f)->off[k])

static size_t mmspcl__t_fusion_layout(mmspcl_fusion *f, int n) {
    const size_t D = (size_t)f->cfg.d_model, N = (size_t)n;
    size_t used = 0, tmax = 1;
    int k = 0, m, p, l, s;
#define MMSPCL__T_PUT(count) do { f->off[k++] = used; used += (count); } while (0)
    if (f->cfg.kind == MMSPCL_FUSION_LINEAR) {
        MMSPCL__T_PUT(N * f->proj.in);
        MMSPCL__T_PUT(N * f->proj.in);
        return used;
    }
    for (m = 0; m < 3; m++) if ((size_t)f->cfg.seq[m] > tmax && f->cfg.dims[m]) tmax = (size_t)f->cfg.seq[m];
    if (f->cfg.kind == MMSPCL_FUSION_MULT) {
        for (m = 0; m < 3; m++) MMSPCL__T_PUT(f->cfg.dims[m] ? N * f->cfg.seq[m] * D : 0);
        for (p = 0; p < f->n_pairs; p++)
            for (l = 0; l <= f->L; l++) MMSPCL__T_PUT(N * f->cfg.seq[f->pa[p]] * D);
        for (p = 0; p < f->n_pairs; p++)
            for (l = 0; l < f->L; l++)
                MMSPCL__T_PUT(mmspcl_block_cache_size(&f->blocks[p * f->L + l], n, f->cfg.seq[f->pa[p]], f->cfg.seq[f->pb[p]]));
        for (p = 0; p < f->n_pairs; p++) MMSPCL__T_PUT(N * f->cfg.seq[f->pa[p]] * D);
        for (p = 0; p < f->n_pairs; p++) MMSPCL__T_PUT(N * f->cfg.seq[f->pa[p]] * 2);
        MMSPCL__T_PUT(N * f->n_pairs * D);                     /* POOL */
        MMSPCL__T_PUT(N * tmax * D); MMSPCL__T_PUT(N * tmax * D); /* DH0 DH1 */
        for (m = 0; m < 3; m++) MMSPCL__T_PUT(f->cfg.dims[m] ? N * f->cfg.seq[m] * D : 0);
        MMSPCL__T_PUT(N * f->n_pairs * D);                     /* DPOOL */
        MMSPCL__T_PUT(N * tmax * D);                           /* DFLN */
    } else {
        /* F: the bottleneck tokens one modality's layer sees; FS: every set's tokens */
        const size_t F = (size_t)f->cfg.n_fusion * (size_t)f->nset[0], FS = (size_t)f->cfg.n_fusion * (size_t)f->n_sets;
        for (s = 0; s < f->n_mod; s++) MMSPCL__T_PUT(N * f->cfg.seq[f->mods[s]] * D);
        for (l = 0; l < f->L; l++)
            for (s = 0; s < f->n_mod; s++)
                MMSPCL__T_PUT(N * (f->cfg.seq[f->mods[s]] + (l >= f->cfg.fusion_start ? F : 0)) * D);
        for (l = 0; l < f->L; l++)
            for (s = 0; s < f->n_mod; s++) {
                const int T = f->cfg.seq[f->mods[s]] + (l >= f->cfg.fusion_start ? (int)F : 0);
                MMSPCL__T_PUT(mmspcl_block_cache_size(&f->blocks[s * f->L + l], n, T, T));
            }
        for (l = 0; l < f->L; l++) MMSPCL__T_PUT(l >= f->cfg.fusion_start ? N * FS * D : 0);
        for (s = 0; s < f->n_mod; s++) MMSPCL__T_PUT(N * f->cfg.seq[f->mods[s]] * D);       /* ZF */
        for (s = 0; s < f->n_mod; s++) MMSPCL__T_PUT(N * f->cfg.seq[f->mods[s]] * D);       /* FLN */
        for (s = 0; s < f->n_mod; s++) MMSPCL__T_PUT(N * f->cfg.seq[f->mods[s]] * 2);       /* FST */
        MMSPCL__T_PUT(N * f->n_mod * D);                       /* POOL */
        MMSPCL__T_PUT(N * (tmax + F) * D);                     /* TMP */
        for (s = 0; s < f->n_mod; s++) MMSPCL__T_PUT(N * f->cfg.seq[f->mods[s]] * D);       /* DZ */
        MMSPCL__T_PUT(N * FS * D); MMSPCL__T_PUT(N * FS * D);  /* DFSN0 DFSN1 */
        MMSPCL__T_PUT(N * (tmax + F) * D); MMSPCL__T_PUT(N * (tmax + F) * D); /* DOUT DIN */
        MMSPCL__T_PUT(N * f->n_mod * D);                       /* DPOOL */
        MMSPCL__T_PUT(N * tmax * D);                           /* DFLN */
    }
#undef MMSPCL__T_PUT
    return used;
}

/* e [n][T][D] = x [n][T][tok] W^T + b + pos */
static void mmspcl__t_embed(const mmspcl_params *P, const mmspcl_lin *proj, size_t pos, const double *x,
                            int n, int T, double *e) {
    const size_t per = (size_t)T * proj->out;
    size_t s, q;
    mmspcl_lin_forward(P, proj, x, e, n * T);
    for (s = 0; s < (size_t)n; s++)
        for (q = 0; q < per; q++) e[s * per + q] += P->w[pos + q];
}

static void mmspcl__t_embed_backward(mmspcl_params *P, const mmspcl_lin *proj, size_t pos, const double *x,
                                     int n, int T, const double *de, double *dx) {
    const size_t per = (size_t)T * proj->out;
    size_t s, q;
    for (q = 0; q < per; q++) {
        double acc = 0.0;
        for (s = 0; s < (size_t)n; s++) acc += de[s * per + q];
        P->g[pos + q] += acc;
    }
    mmspcl_lin_backward(P, proj, x, de, dx, n * T);
}

/* out[s * ld + d] = mean over t of x[s][t][d] */
static void mmspcl__t_pool(const double *x, int n, int T, int D, double *out, int ld) {
    int s, t, d;
    for (s = 0; s < n; s++)
        for (d = 0; d < D; d++) {
            double acc = 0.0;
            for (t = 0; t < T; t++) acc += x[((size_t)s * T + t) * D + d];
            out[(size_t)s * ld + d] = acc / T;
        }
}

static void mmspcl__t_pool_backward(const double *dout, int ld, int n, int T, int D, double *dx) {
    int s, t, d;
    for (s = 0; s < n; s++)
        for (t = 0; t < T; t++)
            for (d = 0; d < D; d++) dx[((size_t)s * T + t) * D + d] = dout[(size_t)s * ld + d] / T;
}

/* MBT lengths and masks: real tokens of slot s in sample i (all when no lengths were given) */
static int mmspcl__t_mbt_len(const mmspcl_fusion *f, int s, int i) {
    return f->lens_on[s] ? f->lens[(size_t)s * f->act_n + i] : f->cfg.seq[f->mods[s]];
}

/* the key mask of slot s over TT = T + extra tokens (its real tokens, then every bottleneck one);
   NULL when every token is real */
static const unsigned char *mmspcl__t_mbt_mask(mmspcl_fusion *f, int s, int n, int TT) {
    const int T = f->cfg.seq[f->mods[s]];
    int i, t;
    if (!f->lens_on[s]) return NULL;
    for (i = 0; i < n; i++) {
        const int len = mmspcl__t_mbt_len(f, s, i);
        for (t = 0; t < TT; t++) f->mask[(size_t)i * TT + t] = t < len || t >= T;
    }
    return f->mask;
}

/* the readout's weight of a real token of slot s in sample i: 1 / its length (ours), 1 / the
   sum of every slot's length (joint) */
static double mmspcl__t_mbt_weight(const mmspcl_fusion *f, int s, int i) {
    int k, tot = 0;
    if (f->cfg.readout != MMSPCL_READOUT_JOINT) return 1.0 / mmspcl__t_mbt_len(f, s, i);
    for (k = 0; k < f->n_mod; k++) tot += mmspcl__t_mbt_len(f, k, i);
    return 1.0 / tot;
}

/* where sample i's readout of slot s starts in the pool: ours, row s of the concatenation of
   n_mod rows of D; joint, the one D-wide row that every slot adds to */
static size_t mmspcl__t_mbt_row(const mmspcl_fusion *f, int s, int i) {
    const size_t D = (size_t)f->cfg.d_model;
    return f->cfg.readout == MMSPCL_READOUT_JOINT ? (size_t)i * D : ((size_t)i * f->n_mod + s) * D;
}

/* readout of slot s: pool += weight x the sum of the real tokens of x [n][T][D] */
static void mmspcl__t_mbt_pool(const mmspcl_fusion *f, int s, const double *x, int n, double *pool) {
    const int D = f->cfg.d_model, T = f->cfg.seq[f->mods[s]];
    int i, t, d;
    for (i = 0; i < n; i++) {
        const int len = mmspcl__t_mbt_len(f, s, i);
        const double w = mmspcl__t_mbt_weight(f, s, i);
        double *o = pool + mmspcl__t_mbt_row(f, s, i);
        for (d = 0; d < D; d++) {
            double acc = 0.0;
            for (t = 0; t < len; t++) acc += x[((size_t)i * T + t) * D + d];
            o[d] += acc * w;
        }
    }
}

/* dx [n][T][D] = the readout's gradient: weight x dpool at real tokens, 0 at padded ones */
static void mmspcl__t_mbt_pool_backward(const mmspcl_fusion *f, int s, const double *dpool, int n, double *dx) {
    const int D = f->cfg.d_model, T = f->cfg.seq[f->mods[s]];
    int i, t, d;
    for (i = 0; i < n; i++) {
        const int len = mmspcl__t_mbt_len(f, s, i);
        const double w = mmspcl__t_mbt_weight(f, s, i), *g = dpool + mmspcl__t_mbt_row(f, s, i);
        for (t = 0; t < T; t++)
            for (d = 0; d < D; d++) dx[((size_t)i * T + t) * D + d] = t < len ? g[d] * w : 0.0;
    }
}

/* MBT forward (mmspcl_fusion_forward's third kind): layer l of slot s runs on [z_s ; the sets
   sets[s][0..nset[s]-1] of the fusion state FSN(l)] (padded tokens of z_s masked as keys); the
   next state is, per set, the mean of its members' outputs of its tokens. */
static void mmspcl__t_mbt_forward(mmspcl_fusion *f, const mmspcl_params *P, const double *const x[3], int n,
                                  double *y, mmspcl_rng *rng) {
    const int D = f->cfg.d_model, L = f->L, F = f->cfg.n_fusion, FS = f->cfg.fusion_start, NM = f->n_mod;
    const int joint = f->cfg.readout == MMSPCL_READOUT_JOINT;
    const size_t fd = (size_t)F * D, fsd = (size_t)f->n_sets * fd;
    double *pool = MMSPCL__T_A(f, MMSPCL__T_MB_FST(f, NM - 1) + 1), *tmp = MMSPCL__T_A(f, MMSPCL__T_MB_FST(f, NM - 1) + 2);
    int i, s, l, j, m;
    size_t q;
    for (s = 0; s < NM; s++) {
        m = f->mods[s];
        mmspcl__t_embed(P, &f->in_proj[m], f->pos[m], x[m], n, f->cfg.seq[m], MMSPCL__T_A(f, s));
    }
    if (FS < L) {
        double *f0 = MMSPCL__T_A(f, MMSPCL__T_MB_FSN(f, FS));
        for (i = 0; i < n; i++) memcpy(f0 + (size_t)i * fsd, P->w + f->fusion_tokens, sizeof(double) * fsd);
    }
    for (l = 0; l < L; l++) {
        const int fuse = l >= FS;
        const double *fcur = fuse ? MMSPCL__T_A(f, MMSPCL__T_MB_FSN(f, l)) : NULL;
        double *fnext = (fuse && l + 1 < L) ? MMSPCL__T_A(f, MMSPCL__T_MB_FSN(f, l + 1)) : NULL;
        if (fnext) mmspcl__t_zero(fnext, (size_t)n * fsd);
        for (s = 0; s < NM; s++) {
            const int T = f->cfg.seq[f->mods[s]], K = fuse ? f->nset[s] : 0, TT = T + K * F;
            const double *zc = l == 0 ? MMSPCL__T_A(f, s) : MMSPCL__T_A(f, MMSPCL__T_MB_ZF(f, s));
            double *in = MMSPCL__T_A(f, MMSPCL__T_MB_IN(f, l, s)), *zf = MMSPCL__T_A(f, MMSPCL__T_MB_ZF(f, s));
            for (i = 0; i < n; i++) {
                memcpy(in + (size_t)i * TT * D, zc + (size_t)i * T * D, sizeof(double) * (size_t)T * D);
                for (j = 0; j < K; j++)
                    memcpy(in + ((size_t)i * TT + T + (size_t)j * F) * D, fcur + (size_t)i * fsd + (size_t)f->sets[s][j] * fd,
                           sizeof(double) * fd);
            }
            mmspcl_block_forward(P, &f->blocks[s * L + l], in, tmp, n, TT, NULL, 0, mmspcl__t_mbt_mask(f, s, n, TT),
                                 MMSPCL__T_A(f, MMSPCL__T_MB_BC(f, l, s)), rng);
            for (i = 0; i < n; i++) {
                memcpy(zf + (size_t)i * T * D, tmp + (size_t)i * TT * D, sizeof(double) * (size_t)T * D);
                if (fnext)
                    for (j = 0; j < K; j++) {
                        double *dst = fnext + (size_t)i * fsd + (size_t)f->sets[s][j] * fd;
                        const double *src = tmp + ((size_t)i * TT + T + (size_t)j * F) * D;
                        for (q = 0; q < fd; q++) dst[q] += src[q];
                    }
            }
        }
        if (fnext) for (q = 0; q < (size_t)n * fsd; q++) fnext[q] /= f->members;
    }
    mmspcl__t_zero(pool, (size_t)n * (joint ? 1 : NM) * D);
    for (s = 0; s < NM; s++) {
        const int T = f->cfg.seq[f->mods[s]];
        if (L == 0) memcpy(MMSPCL__T_A(f, MMSPCL__T_MB_ZF(f, s)), MMSPCL__T_A(f, s), sizeof(double) * (size_t)n * T * D);
        mmspcl_ln_forward(P, &f->final_ln[joint ? 0 : s], MMSPCL__T_A(f, MMSPCL__T_MB_ZF(f, s)), MMSPCL__T_A(f, MMSPCL__T_MB_FLN(f, s)),
                          MMSPCL__T_A(f, MMSPCL__T_MB_FST(f, s)), n * T);
        mmspcl__t_mbt_pool(f, s, MMSPCL__T_A(f, MMSPCL__T_MB_FLN(f, s)), n, pool);
    }
    mmspcl_lin_forward(P, &f->out_proj, pool, y, n);
}

/* MBT backward: the forward's steps in reverse; a set's gradient reaches each member's tokens
   divided by `members`, and the learned tokens collect the state's gradient at fusion_start. */
static void mmspcl__t_mbt_backward(mmspcl_fusion *f, mmspcl_params *P, const double *const x[3], int n,
                                   const double *dy, double *const dx[3]) {
    const int D = f->cfg.d_model, L = f->L, F = f->cfg.n_fusion, FS = f->cfg.fusion_start, NM = f->n_mod;
    const int end = MMSPCL__T_MB_END(f), joint = f->cfg.readout == MMSPCL_READOUT_JOINT;
    const size_t fd = (size_t)F * D, fsd = (size_t)f->n_sets * fd;
    double *pool = MMSPCL__T_A(f, MMSPCL__T_MB_FST(f, NM - 1) + 1);
    double *dfs_next = MMSPCL__T_A(f, end), *dfs_cur = MMSPCL__T_A(f, end + 1), *t;
    double *dout = MMSPCL__T_A(f, end + 2), *din = MMSPCL__T_A(f, end + 3);
    double *dpool = MMSPCL__T_A(f, end + 4), *dfln = MMSPCL__T_A(f, end + 5);
    int i, s, l, j, m;
    size_t q;
    mmspcl__t_zero(dpool, (size_t)n * NM * D);
    mmspcl_lin_backward(P, &f->out_proj, pool, dy, dpool, n);
    for (s = 0; s < NM; s++) {
        const int T = f->cfg.seq[f->mods[s]];
        double *dz = MMSPCL__T_A(f, MMSPCL__T_MB_DZ(f, s));
        mmspcl__t_mbt_pool_backward(f, s, dpool, n, dfln);
        mmspcl__t_zero(dz, (size_t)n * T * D);
        mmspcl_ln_backward(P, &f->final_ln[joint ? 0 : s], MMSPCL__T_A(f, MMSPCL__T_MB_ZF(f, s)), MMSPCL__T_A(f, MMSPCL__T_MB_FST(f, s)),
                           dfln, dz, n * T);
    }
    mmspcl__t_zero(dfs_next, (size_t)n * fsd);   /* dL / d(fusion state entering layer l + 1) */
    for (l = L - 1; l >= 0; l--) {
        const int fuse = l >= FS;
        mmspcl__t_zero(dfs_cur, (size_t)n * fsd);
        for (s = 0; s < NM; s++) {
            const int T = f->cfg.seq[f->mods[s]], K = fuse ? f->nset[s] : 0, TT = T + K * F;
            double *dz = MMSPCL__T_A(f, MMSPCL__T_MB_DZ(f, s));
            for (i = 0; i < n; i++) {
                memcpy(dout + (size_t)i * TT * D, dz + (size_t)i * T * D, sizeof(double) * (size_t)T * D);
                for (j = 0; j < K; j++) {
                    const double *g = dfs_next + (size_t)i * fsd + (size_t)f->sets[s][j] * fd;
                    double *o = dout + ((size_t)i * TT + T + (size_t)j * F) * D;
                    for (q = 0; q < fd; q++) o[q] = l + 1 < L ? g[q] / f->members : 0.0;
                }
            }
            mmspcl__t_zero(din, (size_t)n * TT * D);
            mmspcl_block_backward(P, &f->blocks[s * L + l], MMSPCL__T_A(f, MMSPCL__T_MB_IN(f, l, s)), n, TT, NULL, 0,
                                  MMSPCL__T_A(f, MMSPCL__T_MB_BC(f, l, s)), dout, din, NULL);
            for (i = 0; i < n; i++) {
                memcpy(dz + (size_t)i * T * D, din + (size_t)i * TT * D, sizeof(double) * (size_t)T * D);
                for (j = 0; j < K; j++) {
                    double *g = dfs_cur + (size_t)i * fsd + (size_t)f->sets[s][j] * fd;
                    const double *o = din + ((size_t)i * TT + T + (size_t)j * F) * D;
                    for (q = 0; q < fd; q++) g[q] += o[q];
                }
            }
        }
        if (l == FS) {   /* the fusion state entering layer FS is the learned tokens, per sample */
            for (q = 0; q < fsd; q++) {
                double acc = 0.0;
                for (i = 0; i < n; i++) acc += dfs_cur[(size_t)i * fsd + q];
                P->g[f->fusion_tokens + q] += acc;
            }
        }
        t = dfs_next; dfs_next = dfs_cur; dfs_cur = t;
    }
    for (s = 0; s < NM; s++) {
        m = f->mods[s];
        mmspcl__t_embed_backward(P, &f->in_proj[m], f->pos[m], x[m], n, f->cfg.seq[m], MMSPCL__T_A(f, MMSPCL__T_MB_DZ(f, s)),
                                 dx ? dx[m] : NULL);
    }
}

mmspcl_status mmspcl_fusion_forward(mmspcl_fusion *f, const mmspcl_params *P, const double *const x[3],
                                    int n, double *y, mmspcl_rng *rng, mmspcl_error *err) {
    return mmspcl_fusion_forward_seq(f, P, x, NULL, n, y, rng, err);
}

/* MBT: checks and copies the lengths (f->lens, f->lens_on) and sizes the key mask scratch */
static mmspcl_status mmspcl__t_fusion_lens(mmspcl_fusion *f, const int *const lens[3], int n, mmspcl_error *err) {
    int s, i, tt = 1;
    for (s = 0; s < f->n_mod; s++) {
        const int m = f->mods[s], T = f->cfg.seq[m];
        f->lens_on[s] = lens && lens[m];
        if (f->lens_on[s] && f->cfg.kind != MMSPCL_FUSION_MBT)
            return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "fusion: lengths (a padding mask) are for MBT only, not kind %d", (int)f->cfg.kind);
        for (i = 0; f->lens_on[s] && i < n; i++)
            if (lens[m][i] < 1 || lens[m][i] > T)
                return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "mbt: sample %d of %s has length %d (tokens 1..%d)", i, mmspcl__t_mod[m], lens[m][i], T);
        if (T + f->nset[s] * f->cfg.n_fusion > tt) tt = T + f->nset[s] * f->cfg.n_fusion;
    }
    if ((size_t)3 * n > f->lens_cap) {
        int *q = (int *)MMSPCL_REALLOC(f->lens, sizeof(int) * (size_t)3 * n);
        if (!q) return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "fusion: out of memory for %d lengths", n);
        f->lens = q; f->lens_cap = (size_t)3 * n;
    }
    if ((size_t)n * tt > f->mask_cap) {
        unsigned char *q = (unsigned char *)MMSPCL_REALLOC(f->mask, (size_t)n * tt);
        if (!q) return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "fusion: out of memory for a mask of %d samples", n);
        f->mask = q; f->mask_cap = (size_t)n * tt;
    }
    for (s = 0; s < f->n_mod; s++)
        if (f->lens_on[s]) memcpy(f->lens + (size_t)s * n, lens[f->mods[s]], sizeof(int) * (size_t)n);
    return MMSPCL_OK;
}

mmspcl_status mmspcl_fusion_forward_seq(mmspcl_fusion *f, const mmspcl_params *P, const double *const x[3],
                                        const int *const lens[3], int n, double *y, mmspcl_rng *rng, mmspcl_error *err) {
    const int D = f->cfg.d_model, L = f->L;
    size_t need;
    int m, s, p, l;
    mmspcl_status st;
    for (s = 0; s < f->n_mod; s++)
        if (!x[f->mods[s]]) return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "fusion: no input for modality %s", mmspcl__t_mod[f->mods[s]]);
    if ((st = mmspcl__t_fusion_lens(f, lens, n, err))) return st;
    need = mmspcl__t_fusion_layout(f, n);
    if (need > f->act_cap) {
        double *q = (double *)MMSPCL_REALLOC(f->act, sizeof(double) * need);
        if (!q) return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "fusion: out of memory for %zu activations", need);
        f->act = q;
        f->act_cap = need;
    }
    f->act_n = n;
    if (f->cfg.kind == MMSPCL_FUSION_LINEAR) {
        double *cat = MMSPCL__T_A(f, 0);
        int i, off = 0;
        for (m = 0; m < 3; m++) {
            if (!f->cfg.dims[m]) continue;
            for (i = 0; i < n; i++)
                memcpy(cat + (size_t)i * f->proj.in + off, x[m] + (size_t)i * f->cfg.dims[m], sizeof(double) * f->cfg.dims[m]);
            off += f->cfg.dims[m];
        }
        mmspcl_lin_forward(P, &f->proj, cat, y, n);
        return MMSPCL_OK;
    }
    if (f->cfg.kind == MMSPCL_FUSION_MULT) {
        double *pool = MMSPCL__T_A(f, MMSPCL__T_MU_END(f));
        for (m = 0; m < 3; m++)
            if (f->cfg.dims[m]) mmspcl__t_embed(P, &f->in_proj[m], f->pos[m], x[m], n, f->cfg.seq[m], MMSPCL__T_A(f, m));
        for (p = 0; p < f->n_pairs; p++) {
            const int a = f->pa[p], b = f->pb[p], Ta = f->cfg.seq[a], Tb = f->cfg.seq[b];
            memcpy(MMSPCL__T_A(f, MMSPCL__T_MU_H(f, p, 0)), MMSPCL__T_A(f, a), sizeof(double) * (size_t)n * Ta * D);
            for (l = 0; l < L; l++) {
                const mmspcl_block *blk = &f->blocks[p * L + l];
                mmspcl_block_forward(P, blk, MMSPCL__T_A(f, MMSPCL__T_MU_H(f, p, l)), MMSPCL__T_A(f, MMSPCL__T_MU_H(f, p, l + 1)),
                                     n, Ta, blk->cross ? MMSPCL__T_A(f, b) : NULL, Tb, NULL,
                                     MMSPCL__T_A(f, MMSPCL__T_MU_BC(f, p, l)), rng);
            }
            mmspcl_ln_forward(P, &f->final_ln[p], MMSPCL__T_A(f, MMSPCL__T_MU_H(f, p, L)), MMSPCL__T_A(f, MMSPCL__T_MU_FLN(f, p)),
                              MMSPCL__T_A(f, MMSPCL__T_MU_FST(f, p)), n * Ta);
            mmspcl__t_pool(MMSPCL__T_A(f, MMSPCL__T_MU_FLN(f, p)), n, Ta, D, pool + (size_t)p * D, f->n_pairs * D);
        }
        mmspcl_lin_forward(P, &f->out_proj, pool, y, n);
        return MMSPCL_OK;
    }
    mmspcl__t_mbt_forward(f, P, x, n, y, rng);
    return MMSPCL_OK;
}

void mmspcl_fusion_backward(mmspcl_fusion *f, mmspcl_params *P, const double *const x[3], int n,
                            const double *dy, double *const dx[3]) {
    const int D = f->cfg.d_model, L = f->L;
    int m, p, l, i;
    if (f->cfg.kind == MMSPCL_FUSION_LINEAR) {
        double *cat = MMSPCL__T_A(f, 0), *dcat = MMSPCL__T_A(f, 1);
        int off = 0, d;
        mmspcl__t_zero(dcat, (size_t)n * f->proj.in);
        mmspcl_lin_backward(P, &f->proj, cat, dy, dcat, n);
        for (m = 0; m < 3; m++) {
            if (!f->cfg.dims[m]) continue;
            if (dx && dx[m])
                for (i = 0; i < n; i++)
                    for (d = 0; d < f->cfg.dims[m]; d++)
                        dx[m][(size_t)i * f->cfg.dims[m] + d] += dcat[(size_t)i * f->proj.in + off + d];
            off += f->cfg.dims[m];
        }
        return;
    }
    if (f->cfg.kind == MMSPCL_FUSION_MULT) {
        const int end = MMSPCL__T_MU_END(f);
        /* POOL = end, DH0, DH1, DE(m) = end + 3 + m, DPOOL = end + 6, DFLN = end + 7 */
        double *pool = MMSPCL__T_A(f, end), *dh0 = MMSPCL__T_A(f, end + 1), *dh1 = MMSPCL__T_A(f, end + 2);
        double *dpool = MMSPCL__T_A(f, end + 6), *dfln = MMSPCL__T_A(f, end + 7);
        for (m = 0; m < 3; m++) if (f->cfg.dims[m]) mmspcl__t_zero(MMSPCL__T_A(f, end + 3 + m), (size_t)n * f->cfg.seq[m] * D);
        mmspcl__t_zero(dpool, (size_t)n * f->n_pairs * D);
        mmspcl_lin_backward(P, &f->out_proj, pool, dy, dpool, n);
        for (p = 0; p < f->n_pairs; p++) {
            const int a = f->pa[p], b = f->pb[p], Ta = f->cfg.seq[a], Tb = f->cfg.seq[b];
            const size_t na = (size_t)n * Ta * D;
            double *dh = dh0, *dprev = dh1, *t;
            size_t q;
            mmspcl__t_pool_backward(dpool + (size_t)p * D, f->n_pairs * D, n, Ta, D, dfln);
            mmspcl__t_zero(dh, na);
            mmspcl_ln_backward(P, &f->final_ln[p], MMSPCL__T_A(f, MMSPCL__T_MU_H(f, p, L)), MMSPCL__T_A(f, MMSPCL__T_MU_FST(f, p)),
                               dfln, dh, n * Ta);
            for (l = L - 1; l >= 0; l--) {
                const mmspcl_block *blk = &f->blocks[p * L + l];
                mmspcl__t_zero(dprev, na);
                mmspcl_block_backward(P, blk, MMSPCL__T_A(f, MMSPCL__T_MU_H(f, p, l)), n, Ta, blk->cross ? MMSPCL__T_A(f, b) : NULL,
                                      Tb, MMSPCL__T_A(f, MMSPCL__T_MU_BC(f, p, l)), dh, dprev,
                                      blk->cross ? MMSPCL__T_A(f, end + 3 + b) : NULL);
                t = dh; dh = dprev; dprev = t;
            }
            for (q = 0; q < na; q++) MMSPCL__T_A(f, end + 3 + a)[q] += dh[q];
        }
        for (m = 0; m < 3; m++)
            if (f->cfg.dims[m])
                mmspcl__t_embed_backward(P, &f->in_proj[m], f->pos[m], x[m], n, f->cfg.seq[m], MMSPCL__T_A(f, end + 3 + m), dx ? dx[m] : NULL);
        return;
    }
    mmspcl__t_mbt_backward(f, P, x, n, dy, dx);
}

mmspcl_status mmspcl_fusion_write_config(const mmspcl_fusion *f, mmspcl_writer *wr, const char *outer) {
    char key[400];
    const mmspcl_fusion_cfg *c = &f->cfg;
    int m, st = 0;
#define MMSPCL__T_KEY(k, v) do { snprintf(key, sizeof key, "%s%s%s.%s", outer && *outer ? outer : "", outer && *outer ? "." : "", f->prefix, k); st |= (int)mmspcl_writer_set_int(wr, key, (int64_t)(v)); } while (0)
    MMSPCL__T_KEY("out_dim", c->out_dim);
    for (m = 0; m < 3; m++) {
        char k2[32];
        if (c->kind == MMSPCL_FUSION_LINEAR) { snprintf(k2, sizeof k2, "dim.%s", mmspcl__t_mod[m]); MMSPCL__T_KEY(k2, c->dims[m]); continue; }
        snprintf(k2, sizeof k2, "seq.%s", mmspcl__t_mod[m]); MMSPCL__T_KEY(k2, c->dims[m] ? c->seq[m] : 0);
        snprintf(k2, sizeof k2, "tok.%s", mmspcl__t_mod[m]); MMSPCL__T_KEY(k2, c->dims[m] ? f->tok[m] : 0);
    }
    if (c->kind != MMSPCL_FUSION_LINEAR) {
        MMSPCL__T_KEY("d_model", c->d_model); MMSPCL__T_KEY("n_heads", c->n_heads);
        MMSPCL__T_KEY("ff_mult", c->ff_mult); MMSPCL__T_KEY("act", c->act);
    }
    if (c->kind == MMSPCL_FUSION_MULT) { MMSPCL__T_KEY("n_cross", c->n_cross); MMSPCL__T_KEY("n_self", c->n_self); }
    if (c->kind == MMSPCL_FUSION_MBT) {
        MMSPCL__T_KEY("n_layers", c->n_layers); MMSPCL__T_KEY("fusion_start", c->fusion_start);
        MMSPCL__T_KEY("n_fusion", c->n_fusion); MMSPCL__T_KEY("bottleneck", c->bottleneck);
        MMSPCL__T_KEY("readout", c->readout);
    }
#undef MMSPCL__T_KEY
    snprintf(key, sizeof key, "%s%s%s.dropout", outer && *outer ? outer : "", outer && *outer ? "." : "", f->prefix);
    st |= (int)mmspcl_writer_set_float(wr, key, c->dropout);
    return st ? MMSPCL_ERR_NOMEM : MMSPCL_OK;
}

/* ---------------------------------------------------------------------------------------------
   8. Data sets and training reports
   Helpers shared by the trainers: combinations, weighted F1, checks and batches of data sets.
   ------------------------------------------------------------------------------------------ */
static unsigned mmspcl__t_possible_combos(const int dims[3]) {
    unsigned s = 0;
    int c;
    for (c = 1; c < 8; c++)
        if ((!(c & 1) || dims[0] > 0) && (!(c & 2) || dims[1] > 0) && (!(c & 4) || dims[2] > 0)) s |= MMSPCL_COMBO(c);
    return s;
}

static double mmspcl__t_weighted_f1(const int *y, const int *pred, int n, int C) {
    int64_t *cm = (int64_t *)MMSPCL_MALLOC(sizeof(int64_t) * (size_t)C * C);
    mmspcl_metrics mt;
    if (!cm) return 0.0;
    mmspcl_confusion(y, pred, n, C, cm);
    mmspcl_metrics_from_confusion(cm, C, NULL, &mt);
    MMSPCL_FREE(cm);
    return mt.weighted_f1;
}

static mmspcl_status mmspcl__t_check_data(const mmspcl_dataset *d, const int dims[3], int C, const char *what,
                                          mmspcl_error *err) {
    int m, i;
    if (!d || d->n < 1 || !d->y) return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "%s set is empty", what);
    for (m = 0; m < 3; m++)
        if (dims[m] > 0 && !d->x[m]) return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "%s set has no %s features", what, mmspcl__t_mod[m]);
    for (i = 0; i < d->n; i++)
        if (d->y[i] < 0 || d->y[i] >= C)
            return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "%s set: label %d of row %d is outside 0..%d", what, d->y[i], i, C - 1);
    return MMSPCL_OK;
}

/* copies the rows idx[0..n) of each modality into xb[m] (floats) and their labels into yb */
static void mmspcl__t_gather(const mmspcl_dataset *d, const int dims[3], const int *idx, int n, float *const xb[3],
                             int *yb) {
    int m, i;
    for (i = 0; i < n; i++) {
        yb[i] = d->y[idx[i]];
        for (m = 0; m < 3; m++)
            if (dims[m] > 0)
                memcpy(xb[m] + (size_t)i * dims[m], d->x[m] + (size_t)idx[i] * dims[m], sizeof(float) * (size_t)dims[m]);
    }
}

/* ---------------------------------------------------------------------------------------------
   9. MSVE
   The model and its trainer.
   ------------------------------------------------------------------------------------------ */
/* cfg's combinations and depths resolved (0: all possible / the paper's); refusals in err */
static mmspcl_status mmspcl__t_msve_resolve(const mmspcl_msve_cfg *cfg, mmspcl_msve_cfg *out, mmspcl_error *err) {
    static const int paper[8] = MMSPCL_MSVE_PAPER_DEPTHS;
    unsigned possible;
    int c, m, deep = 0;
    *out = *cfg;
    for (m = 0; m < 3; m++) if (cfg->dims[m] < 0) return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "msve: width of %s is %d", mmspcl__t_mod[m], cfg->dims[m]);
    if (cfg->n_classes < 2 || cfg->n_classes > MMSPCL_MAX_CLASSES || cfg->dropout < 0 || cfg->dropout >= 1)
        return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "msve: %d classes, dropout %g", cfg->n_classes, cfg->dropout);
    possible = mmspcl__t_possible_combos(cfg->dims);
    if (!cfg->combos) out->combos = possible;
    for (c = 1; c < 8; c++)
        if ((out->combos & ~possible) & MMSPCL_COMBO(c))
            return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "msve: combination %s needs a modality of width 0 (widths t %d, a %d, v %d)",
                                  mmspcl__t_combo[c], cfg->dims[0], cfg->dims[1], cfg->dims[2]);
    if ((out->combos & ~possible) || !(out->combos & MMSPCL_COMBOS_ALL))
        return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "msve: combinations 0x%x: none enabled", out->combos);
    for (c = 0; c < 8; c++) {
        if (c == 0 || !(out->combos & MMSPCL_COMBO(c))) { out->depth[c] = 0; continue; }
        if (!cfg->depth[c]) out->depth[c] = paper[c];
        if (out->depth[c] < 1 || out->depth[c] > MMSPCL_MSVE_MAX_DEPTH)
            return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "msve: depth %d for %s (1..%d)", out->depth[c], mmspcl__t_combo[c], MMSPCL_MSVE_MAX_DEPTH);
        deep |= out->depth[c] > 1;
    }
    if (cfg->hidden < 1) {
        if (deep) return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "msve: hidden %d", cfg->hidden);
        out->hidden = 1;   /* unused: every network is one Linear */
    }
    return MMSPCL_OK;
}

size_t mmspcl_msve_param_count(const mmspcl_msve_cfg *cfg) {
    mmspcl_msve_cfg r;
    size_t total = 0;
    int c, m, l;
    if (mmspcl__t_msve_resolve(cfg, &r, NULL)) return 0;
    for (c = 1; c < 8; c++) {
        size_t in = 0;
        if (!r.depth[c]) continue;
        for (m = 0; m < 3; m++) if (c & (1 << m)) in += (size_t)r.dims[m];
        for (l = 0; l < r.depth[c]; l++) {
            const size_t li = l ? (size_t)r.hidden : in, lo = l == r.depth[c] - 1 ? (size_t)r.n_classes : (size_t)r.hidden;
            total += li * lo + lo;
        }
    }
    return total;
}

mmspcl_status mmspcl_msve_model_create(mmspcl_msve_model *M, const mmspcl_msve_cfg *cfg,
                                       uint64_t seed, mmspcl_error *err) {
    mmspcl_rng rng;
    mmspcl_status st;
    int c, m, l;
    memset(M, 0, sizeof *M);
    if ((st = mmspcl__t_msve_resolve(cfg, &M->cfg, err))) return st;
    mmspcl_rng_seed(&rng, seed);
    mmspcl_params_init(&M->P);
    for (c = 1; c < 8; c++) {   /* fc1, fc2, ... of each combination, in the order mmspcl_mlp_create draws them */
        int in = 0;
        if (!M->cfg.depth[c]) continue;
        for (m = 0; m < 3; m++) if (c & (1 << m)) in += cfg->dims[m];
        for (l = 0; l < M->cfg.depth[c]; l++) {
            char name[32];
            const int li = l ? M->cfg.hidden : in, lo = l == M->cfg.depth[c] - 1 ? M->cfg.n_classes : M->cfg.hidden;
            snprintf(name, sizeof name, "%s.fc%d", mmspcl__t_combo[c], l + 1);
            mmspcl_lin_create(&M->fc[c][l], &M->P, name, li, lo, &rng);
        }
    }
    if (M->P.oom) { mmspcl_msve_model_free(M); return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "msve: out of memory for the parameters"); }
    return MMSPCL_OK;
}

void mmspcl_msve_model_free(mmspcl_msve_model *M) {
    int m;
    mmspcl_params_free(&M->P);
    for (m = 0; m < 3; m++) { MMSPCL_FREE(M->mean[m]); MMSPCL_FREE(M->std[m]); }
    MMSPCL_FREE(M->act);
    memset(M, 0, sizeof *M);
}

/* Combination c's network, layers l = 0 .. D-1 (D = depth[c]):
     u_0 = CAT;  h_l = fc_{l+1} u_l;  u_{l+1} = dropout(act(h_l)) (l < D-1);  logits = h_{D-1}
   cache: for each of the D-1 hidden layers h, u, mask, du, dh ([n][hidden] each), the layout
   of mmspcl_mlp's cache (so depth 2 is mmspcl_mlp). */
static size_t mmspcl__t_msve_cache(const mmspcl_msve_model *M, int c, int n) {
    return 5 * (size_t)n * (size_t)M->cfg.hidden * (size_t)(M->cfg.depth[c] - 1);
}

static void mmspcl__t_msve_net_forward(mmspcl_msve_model *M, int c, const double *cat, double *y, int n, double *cache,
                                       mmspcl_rng *rng) {
    const size_t nh = (size_t)n * M->cfg.hidden;
    const double *u = cat;
    int l;
    for (l = 0; l < M->cfg.depth[c] - 1; l++) {
        double *h = cache + 5 * nh * (size_t)l, *a = h + nh, *mask = a + nh;
        mmspcl_lin_forward(&M->P, &M->fc[c][l], u, h, n);
        mmspcl_act_forward(M->cfg.act, h, a, nh);
        mmspcl_dropout_forward(rng, M->cfg.dropout, a, a, mask, nh);
        u = a;
    }
    mmspcl_lin_forward(&M->P, &M->fc[c][l], u, y, n);
}

static void mmspcl__t_msve_net_backward(mmspcl_msve_model *M, int c, const double *cat, const double *dy, int n,
                                        double *cache) {
    const size_t nh = (size_t)n * M->cfg.hidden;
    const double *g = dy;
    size_t i;
    int l;
    for (l = M->cfg.depth[c] - 1; l > 0; l--) {   /* layer l's input is hidden layer l-1's u */
        double *h = cache + 5 * nh * (size_t)(l - 1), *a = h + nh, *mask = a + nh, *da = mask + nh, *dh = da + nh;
        mmspcl__t_zero(da, nh);
        mmspcl__t_zero(dh, nh);
        mmspcl_lin_backward(&M->P, &M->fc[c][l], a, g, da, n);
        for (i = 0; i < nh; i++) da[i] *= mask[i];
        mmspcl_act_backward(M->cfg.act, h, da, dh, nh);
        g = dh;
    }
    mmspcl_lin_backward(&M->P, &M->fc[c][0], cat, g, NULL, n);
}

/* per combination c: CAT_c [n][in] and the network's cache; then the logits of one network */
mmspcl_status mmspcl_msve_model_forward(mmspcl_msve_model *M, const float *const x[3], int n,
                                        unsigned combos, double *logits, mmspcl_rng *rng,
                                        mmspcl_error *err) {
    const int C = M->cfg.n_classes;
    size_t need = 0, q;
    int c, m, i, first = 1;
    if (!combos) combos = M->cfg.combos;
    if (combos & ~M->cfg.combos)
        return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "msve: combinations 0x%x are not enabled (enabled 0x%x)", combos, M->cfg.combos);
    for (m = 0; m < 3; m++)
        if (M->cfg.dims[m] && !x[m]) return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "msve: no %s features", mmspcl__t_mod[m]);
    for (c = 1; c < 8; c++) {
        if (!(combos & MMSPCL_COMBO(c))) continue;
        M->act_off[c] = need;
        need += (size_t)n * M->fc[c][0].in;
        M->act_off[8 + c] = need;
        need += mmspcl__t_msve_cache(M, c, n);
    }
    M->act_off[16] = need;
    need += (size_t)n * C;
    if (need > M->act_cap) {
        double *p = (double *)MMSPCL_REALLOC(M->act, sizeof(double) * need);
        if (!p) return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "msve: out of memory for %zu activations", need);
        M->act = p;
        M->act_cap = need;
    }
    M->act_n = n;
    M->act_combos = combos;
    for (c = 1; c < 8; c++) {
        double *cat = M->act + M->act_off[c], *lg = M->act + M->act_off[16];
        const int in = M->fc[c][0].in;
        if (!(combos & MMSPCL_COMBO(c))) continue;
        /* standardised concatenation in t, a, v order */
        for (i = 0; i < n; i++) {
            int off = 0, d;
            for (m = 0; m < 3; m++) {
                if (!(c & (1 << m))) continue;
                for (d = 0; d < M->cfg.dims[m]; d++) {
                    double v = x[m][(size_t)i * M->cfg.dims[m] + d];
                    if (M->mean[m]) v -= M->mean[m][d];
                    if (M->std[m]) v /= M->std[m][d];
                    cat[(size_t)i * in + off + d] = v;
                }
                off += M->cfg.dims[m];
            }
        }
        mmspcl__t_msve_net_forward(M, c, cat, first ? logits : lg, n, M->act + M->act_off[8 + c], rng);
        if (!first) for (q = 0; q < (size_t)n * C; q++) logits[q] += lg[q];
        first = 0;
    }
    return MMSPCL_OK;
}

/* logits = sum_c NET_c(x_c), so every network of the forward gets the same dlogits */
void mmspcl_msve_model_backward(mmspcl_msve_model *M, const double *dlogits) {
    int c;
    for (c = 1; c < 8; c++)
        if (M->act_combos & MMSPCL_COMBO(c))
            mmspcl__t_msve_net_backward(M, c, M->act + M->act_off[c], dlogits, M->act_n, M->act + M->act_off[8 + c]);
}

mmspcl_status mmspcl_msve_model_predict(mmspcl_msve_model *M, const float *const x[3], int n,
                                        unsigned combos, int *pred, double *logits, mmspcl_error *err) {
    const int C = M->cfg.n_classes, CH = 256;
    double *lg = mmspcl__t_alloc((size_t)CH * C);
    int i, r, c, m;
    mmspcl_status st = MMSPCL_OK;
    if (!lg) return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "msve: out of memory");
    for (i = 0; i < n && !st; i += CH) {
        const int nn = n - i < CH ? n - i : CH;
        const float *xs[3];
        for (m = 0; m < 3; m++) xs[m] = x[m] ? x[m] + (size_t)i * M->cfg.dims[m] : NULL;
        st = mmspcl_msve_model_forward(M, xs, nn, combos, lg, NULL, err);
        for (r = 0; r < nn && !st; r++) {
            const double *row = lg + (size_t)r * C;
            int best = 0;
            for (c = 1; c < C; c++) if (row[c] > row[best]) best = c;
            if (pred) pred[i + r] = best;
            if (logits) memcpy(logits + (size_t)(i + r) * C, row, sizeof(double) * C);
        }
    }
    MMSPCL_FREE(lg);
    return st;
}

void mmspcl_msve_train_defaults(mmspcl_msve_train_cfg *c) {
    memset(c, 0, sizeof *c);
    /* the paper's lr 1e-4; at it the best dev epoch came late (37-62 on train_msve --synthetic
       3000, seeds 1-3): 200 epochs, patience 10 (docs/FUSION.md, "MSVE") */
    c->epochs = 200; c->batch = 32; c->k = 2; c->warmup = 0; c->patience = 10;
    c->lr = 1e-4; c->weight_decay = 0.01; c->clip = 5.0;
    c->standardize = 1;
    c->seed = 1;
}

/* mean and standard deviation of every feature of the training set (std 1 for constants) */
static mmspcl_status mmspcl__t_standardize(mmspcl_msve_model *M, const mmspcl_dataset *d, mmspcl_error *err) {
    int m, i, k;
    for (m = 0; m < 3; m++) {
        const int D = M->cfg.dims[m];
        if (!D) continue;
        MMSPCL_FREE(M->mean[m]); MMSPCL_FREE(M->std[m]);
        M->mean[m] = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)D);
        M->std[m] = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)D);
        if (!M->mean[m] || !M->std[m]) return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "msve: out of memory");
        for (k = 0; k < D; k++) {
            double s = 0.0, s2 = 0.0, mu, sd;
            for (i = 0; i < d->n; i++) s += d->x[m][(size_t)i * D + k];
            mu = s / d->n;
            for (i = 0; i < d->n; i++) { const double v = d->x[m][(size_t)i * D + k] - mu; s2 += v * v; }
            sd = sqrt(s2 / d->n);
            M->mean[m][k] = (float)mu;
            M->std[m][k] = sd > 1e-6 ? (float)sd : 1.0f;
        }
    }
    return MMSPCL_OK;
}

mmspcl_status mmspcl_msve_train(mmspcl_msve_model *M, const mmspcl_dataset *train,
                                const mmspcl_dataset *val, const mmspcl_msve_train_cfg *cfg,
                                mmspcl_train_report *rep, mmspcl_train_log_fn log, void *user,
                                mmspcl_error *err) {
    const int C = M->cfg.n_classes, n = train ? train->n : 0, B = cfg->batch > 0 ? cfg->batch : 32;
    const int steps_per_epoch = (n + B - 1) / B;
    const int64_t total = (int64_t)cfg->epochs * steps_per_epoch;
    mmspcl_train_report r;
    mmspcl_adamw_cfg opt;
    mmspcl_rng rng;
    float *xb[3] = { NULL, NULL, NULL };
    double *logits = NULL, *dlogits = NULL, *best = NULL;
    int *idx = NULL, *yb = NULL, *pred = NULL, enabled[7], n_enabled = 0, k, c, m, e, bad = 0;
    mmspcl_status st;
    memset(&r, 0, sizeof r);
    r.best_val_f1 = -1.0;
    r.best_epoch = -1;
    if ((st = mmspcl__t_check_data(train, M->cfg.dims, C, "training", err))) return st;
    if (val && (st = mmspcl__t_check_data(val, M->cfg.dims, C, "validation", err))) return st;
    if (cfg->epochs < 1) return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "msve: %d epochs", cfg->epochs);
    if (cfg->standardize && (st = mmspcl__t_standardize(M, train, err))) return st;
    for (c = 1; c < 8; c++) if (M->cfg.combos & MMSPCL_COMBO(c)) enabled[n_enabled++] = c;
    k = cfg->k < 1 || cfg->k > n_enabled ? n_enabled : cfg->k;
    mmspcl_adamw_defaults(&opt);
    opt.weight_decay = cfg->weight_decay;
    mmspcl_rng_seed(&rng, cfg->seed);
    for (m = 0; m < 3; m++)
        if (M->cfg.dims[m] && !(xb[m] = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)B * M->cfg.dims[m]))) goto oom;
    logits = mmspcl__t_alloc((size_t)B * C);
    dlogits = mmspcl__t_alloc((size_t)B * C);
    best = mmspcl__t_alloc(M->P.n);
    idx = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)n);
    yb = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)B);
    pred = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)(val ? val->n : 1));
    if (!logits || !dlogits || !best || !idx || !yb || !pred) goto oom;
    for (e = 0; e < n; e++) idx[e] = e;
    for (e = 0; e < cfg->epochs; e++) {
        double sum = 0.0, f1 = -1.0;
        int b;
        mmspcl_rng_shuffle(&rng, idx, n);
        for (b = 0; b < n; b += B) {
            const int nb = n - b < B ? n - b : B;
            const float *xc[3];
            unsigned set = 0;
            int j;
            mmspcl__t_gather(train, M->cfg.dims, idx + b, nb, xb, yb);
            for (j = 0; j < k; j++) {   /* k distinct combinations: a partial Fisher-Yates shuffle */
                const int t = j + mmspcl_rng_int(&rng, n_enabled - j), tmp = enabled[j];
                enabled[j] = enabled[t]; enabled[t] = tmp;
                set |= MMSPCL_COMBO(enabled[j]);
            }
            for (m = 0; m < 3; m++) xc[m] = xb[m];
            mmspcl_params_zero_grad(&M->P);
            if ((st = mmspcl_msve_model_forward(M, xc, nb, set, logits, &rng, err))) goto fail;
            sum += mmspcl_ce_loss(logits, yb, nb, C, cfg->class_weights, dlogits);
            mmspcl_msve_model_backward(M, dlogits);
            mmspcl_grad_clip(&M->P, cfg->clip);
            mmspcl_adamw_step(&M->P, &opt, mmspcl_lr_cosine(M->P.step, cfg->warmup, total, cfg->lr));
            r.steps++;
        }
        sum /= steps_per_epoch;
        if (e == 0) r.first_loss = sum;
        r.last_loss = sum;
        r.epochs_run = e + 1;
        if (val) {
            if ((st = mmspcl_msve_model_predict(M, val->x, val->n, 0, pred, NULL, err))) goto fail;
            f1 = mmspcl__t_weighted_f1(val->y, pred, val->n, C);
            if (f1 > r.best_val_f1) {
                r.best_val_f1 = f1;
                r.best_epoch = e;
                memcpy(best, M->P.w, sizeof(double) * M->P.n);
                bad = 0;
            } else bad++;
        } else r.best_epoch = e;
        if (log) log(user, e, sum, f1);
        if (val && cfg->patience > 0 && bad >= cfg->patience) break;
    }
    if (val) memcpy(M->P.w, best, sizeof(double) * M->P.n);
    st = MMSPCL_OK;
    goto done;
oom:
    st = mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "msve: out of memory for a batch of %d", B);
fail:
done:
    for (m = 0; m < 3; m++) MMSPCL_FREE(xb[m]);
    MMSPCL_FREE(logits); MMSPCL_FREE(dlogits); MMSPCL_FREE(best);
    MMSPCL_FREE(idx); MMSPCL_FREE(yb); MMSPCL_FREE(pred);
    if (rep) *rep = r;
    return st;
}

mmspcl_status mmspcl_msve_model_write(const mmspcl_msve_model *M, mmspcl_writer *wr, const char *prefix,
                                      int with_optim, float **hold, mmspcl_error *err) {
    char key[400];
    int m, st = 0;
    int64_t sh[1];
#define MMSPCL__T_SET(k, v) do { snprintf(key, sizeof key, "%s.%s", prefix, k); st |= (int)mmspcl_writer_set_int(wr, key, (int64_t)(v)); } while (0)
    MMSPCL__T_SET("n_classes", M->cfg.n_classes);
    MMSPCL__T_SET("hidden", M->cfg.hidden);
    MMSPCL__T_SET("act", M->cfg.act);
    MMSPCL__T_SET("combos", M->cfg.combos);
    for (m = 0; m < 3; m++) {
        char k2[16];
        snprintf(k2, sizeof k2, "dim.%s", mmspcl__t_mod[m]);
        MMSPCL__T_SET(k2, M->cfg.dims[m]);
    }
    for (m = 1; m < 8; m++) {
        char k2[16];
        if (!M->cfg.depth[m]) continue;
        snprintf(k2, sizeof k2, "depth.%s", mmspcl__t_combo[m]);
        MMSPCL__T_SET(k2, M->cfg.depth[m]);
    }
#undef MMSPCL__T_SET
    snprintf(key, sizeof key, "%s.dropout", prefix);
    st |= (int)mmspcl_writer_set_float(wr, key, M->cfg.dropout);
    if (st) return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "msve: cannot set the keys");
    for (m = 0; m < 3; m++) {
        mmspcl_status s2;
        if (!M->cfg.dims[m] || !M->mean[m]) continue;
        sh[0] = M->cfg.dims[m];
        snprintf(key, sizeof key, "%s.mean.%s", prefix, mmspcl__t_mod[m]);
        if ((s2 = mmspcl_writer_add_tensor(wr, key, MMSPCL_F32, 1, sh, M->mean[m], sizeof(float) * (size_t)sh[0], err))) return s2;
        snprintf(key, sizeof key, "%s.std.%s", prefix, mmspcl__t_mod[m]);
        if ((s2 = mmspcl_writer_add_tensor(wr, key, MMSPCL_F32, 1, sh, M->std[m], sizeof(float) * (size_t)sh[0], err))) return s2;
    }
    return mmspcl_params_write(&M->P, wr, prefix, with_optim, hold, err);
}

mmspcl_status mmspcl_msve_model_save(const mmspcl_msve_model *M, const char *path, const char *prefix,
                                     int with_optim, mmspcl_error *err) {
    mmspcl_writer *wr = mmspcl_writer_create();
    float *hold = NULL;
    mmspcl_status st;
    if (!wr) return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "msve: out of memory");
    st = mmspcl_msve_model_write(M, wr, prefix, with_optim, &hold, err);
    if (!st) st = mmspcl_writer_save(wr, path, NULL, NULL, err);
    mmspcl_writer_free(wr);
    MMSPCL_FREE(hold);
    return st;
}

mmspcl_status mmspcl_msve_model_load(mmspcl_msve_model *M, const mmspcl_weights *w, const char *prefix,
                                     mmspcl_error *err) {
    mmspcl_msve inf;
    mmspcl_msve_cfg cfg;
    char key[400];
    double dropout = 0.0;
    int m;
    mmspcl_status st;
    if ((st = mmspcl_msve_load(&inf, w, prefix, err))) return st;
    memset(&cfg, 0, sizeof cfg);
    cfg.n_classes = inf.n_classes;
    for (m = 0; m < 3; m++) cfg.dims[m] = inf.dims[m];
    cfg.combos = inf.combos;
    cfg.hidden = inf.hidden;
    cfg.act = inf.act;
    for (m = 1; m < 8; m++) cfg.depth[m] = inf.depth[m];
    snprintf(key, sizeof key, "%s.dropout", prefix);
    if (mmspcl_weights_get_float(w, key, &dropout)) cfg.dropout = dropout;
    if ((st = mmspcl_msve_model_create(M, &cfg, 0, err))) return st;
    for (m = 0; m < 3; m++) {
        if (!inf.mean[m] || !inf.std[m]) continue;
        M->mean[m] = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)cfg.dims[m]);
        M->std[m] = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)cfg.dims[m]);
        if (!M->mean[m] || !M->std[m]) { mmspcl_msve_model_free(M); return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "msve: out of memory"); }
        memcpy(M->mean[m], inf.mean[m], sizeof(float) * (size_t)cfg.dims[m]);
        memcpy(M->std[m], inf.std[m], sizeof(float) * (size_t)cfg.dims[m]);
    }
    if ((st = mmspcl_params_read(&M->P, w, prefix, err))) { mmspcl_msve_model_free(M); return st; }
    return MMSPCL_OK;
}

/* ---------------------------------------------------------------------------------------------
   10. SPCL model
   [pruning] -> fusion -> z; classifier on z.
   ------------------------------------------------------------------------------------------ */
/* ---- pruning, then fusion ---- */
void mmspcl_pfusion_free(mmspcl_pfusion *f) {
    if (f->has_prune) mmspcl_xprune_train_free(&f->prune);
    mmspcl_fusion_free(&f->fusion);
    MMSPCL_FREE(f->y);
    MMSPCL_FREE(f->dy);
    memset(f, 0, sizeof *f);
}

mmspcl_status mmspcl_pfusion_create(mmspcl_pfusion *f, mmspcl_params *P, const char *fusion_prefix,
                                    const char *prune_prefix, const mmspcl_fusion_cfg *fusion,
                                    const mmspcl_xprune_cfg *prune, mmspcl_rng *rng, mmspcl_error *err) {
    mmspcl_fusion_cfg fc = *fusion;
    mmspcl_xprune_cfg pc;
    mmspcl_xprune_layout lay;
    mmspcl_status st;
    int m;
    memset(f, 0, sizeof *f);
    for (m = 0; m < 3; m++) f->dims[m] = fusion->dims[m] > 0 ? fusion->dims[m] : 0;
    if (prune) {   /* the widths after pruning feed the fusion head */
        pc = *prune;
        for (m = 0; m < 3; m++) pc.dims[m] = f->dims[m];
        if ((st = mmspcl_xprune_plan(&pc, &lay, err))) return st;
        for (m = 0; m < 3; m++) fc.dims[m] = lay.width[m];
    }
    if ((st = mmspcl_fusion_create(&f->fusion, P, fusion_prefix, &fc, rng, err))) return st;
    if (prune) {
        if ((st = mmspcl_xprune_train_create(&f->prune, P, prune_prefix, &pc, rng, err))) { mmspcl_pfusion_free(f); return st; }
        f->has_prune = 1;
    }
    return MMSPCL_OK;
}

mmspcl_status mmspcl_pfusion_forward(mmspcl_pfusion *f, const mmspcl_params *P, const double *const x[3], int n,
                                     double *z, mmspcl_rng *rng, mmspcl_error *err) {
    const int *w = f->fusion.cfg.dims;
    const size_t need = (size_t)n * (size_t)(w[0] + w[1] + w[2]) + 1;
    double *y[3];
    mmspcl_status st;
    int m;
    size_t off = 0;
    if (!f->has_prune) return mmspcl_fusion_forward(&f->fusion, P, x, n, z, rng, err);
    if (need > f->cap) {
        double *a = (double *)MMSPCL_REALLOC(f->y, sizeof(double) * need), *b;
        if (a) f->y = a;
        b = (double *)MMSPCL_REALLOC(f->dy, sizeof(double) * need);
        if (b) f->dy = b;
        if (!a || !b) return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "fusion: out of memory for %d rows", n);
        f->cap = need;
    }
    for (m = 0; m < 3; m++) {
        y[m] = w[m] > 0 ? f->y + off : NULL;
        off += (size_t)n * w[m];
    }
    if ((st = mmspcl_xprune_train_forward(&f->prune, P, x, n, y, err))) return st;
    return mmspcl_fusion_forward(&f->fusion, P, (const double *const *)y, n, z, rng, err);
}

void mmspcl_pfusion_backward(mmspcl_pfusion *f, mmspcl_params *P, const double *const x[3], int n,
                             const double *dz, double *const dx[3]) {
    const int *w = f->fusion.cfg.dims;
    double *y[3], *dy[3];
    size_t off = 0;
    int m;
    if (!f->has_prune) { mmspcl_fusion_backward(&f->fusion, P, x, n, dz, dx); return; }
    for (m = 0; m < 3; m++) {
        y[m] = w[m] > 0 ? f->y + off : NULL;
        dy[m] = w[m] > 0 ? f->dy + off : NULL;
        off += (size_t)n * w[m];
    }
    mmspcl__t_zero(f->dy, off);
    mmspcl_fusion_backward(&f->fusion, P, (const double *const *)y, n, dz, dy);
    mmspcl_xprune_train_backward(&f->prune, P, x, n, (const double *const *)dy, dx);
}

mmspcl_status mmspcl_pfusion_write_config(const mmspcl_pfusion *f, mmspcl_writer *wr, const char *outer,
                                          const char *prune_prefix) {
    const mmspcl_xprune_cfg *c = &f->prune.cfg;
    char key[240];
    int m, st = 0;
    if (f->has_prune) {
#define MMSPCL__T_XKEY(k, v) do { snprintf(key, sizeof key, "%s.%s", prune_prefix, k); st |= (int)mmspcl_writer_set_int(wr, key, (int64_t)(v)); } while (0)
        for (m = 0; m < 3; m++) {
            char k2[16];
            snprintf(k2, sizeof k2, "dim.%s", mmspcl__t_mod[m]);
            MMSPCL__T_XKEY(k2, c->dims[m] > 0 ? c->dims[m] : 0);
        }
        MMSPCL__T_XKEY("base", c->base); MMSPCL__T_XKEY("mods", c->mods); MMSPCL__T_XKEY("K", c->K);
        MMSPCL__T_XKEY("rule", c->rule); MMSPCL__T_XKEY("joint", c->joint); MMSPCL__T_XKEY("proj_dim", c->proj_dim);
#undef MMSPCL__T_XKEY
        snprintf(key, sizeof key, "%s.tau", prune_prefix);
        st |= (int)mmspcl_writer_set_float(wr, key, c->rule == MMSPCL_PRUNE_THRESHOLD ? c->tau : 0.0);
        if (st) return MMSPCL_ERR_NOMEM;
    }
    return mmspcl_fusion_write_config(&f->fusion, wr, outer);
}

mmspcl_status mmspcl_pfusion_load_config(const mmspcl_weights *w, mmspcl_fusion_kind kind, const char *fusion_key,
                                         const char *prune_key, mmspcl_fusion_cfg *fc, mmspcl_xprune_cfg *pc,
                                         int *has_prune, mmspcl_error *err) {
    char key[240];
    double dropout = 0.0;
    int64_t v;
    int m;
    mmspcl_status st;
    mmspcl_fusion_defaults(fc, kind);
    if (kind == MMSPCL_FUSION_LINEAR) {
        mmspcl_fuse_linear f;
        if ((st = mmspcl_fuse_linear_load(&f, w, fusion_key, err))) return st;
        for (m = 0; m < 3; m++) fc->dims[m] = f.dims[m];
        fc->out_dim = f.proj.out;
    } else if (kind == MMSPCL_FUSION_MULT) {
        mmspcl_mult f;
        if ((st = mmspcl_mult_load(&f, w, fusion_key, err))) return st;
        for (m = 0; m < 3; m++) { fc->seq[m] = f.seq[m]; fc->dims[m] = f.seq[m] * f.tok[m]; }
        fc->d_model = f.d_model; fc->n_heads = f.n_heads; fc->n_cross = f.n_cross; fc->n_self = f.n_self;
        fc->ff_mult = f.ff_mult; fc->out_dim = f.out_dim; fc->act = f.act;
        mmspcl_mult_free(&f);
    } else if (kind == MMSPCL_FUSION_MBT) {
        mmspcl_mbt f;
        if ((st = mmspcl_mbt_load(&f, w, fusion_key, err))) return st;
        for (m = 0; m < 3; m++) { fc->seq[m] = f.seq[m]; fc->dims[m] = f.seq[m] * f.tok[m]; }
        fc->d_model = f.d_model; fc->n_heads = f.n_heads; fc->n_layers = f.n_layers; fc->fusion_start = f.fusion_start;
        fc->n_fusion = f.n_fusion; fc->ff_mult = f.ff_mult; fc->out_dim = f.out_dim; fc->act = f.act; fc->bottleneck = f.bottleneck; fc->readout = f.readout;
        mmspcl_mbt_free(&f);
    } else return mmspcl__t_fail(err, MMSPCL_ERR_FORMAT, "%s: fusion kind %d (0 linear, 1 mult, 2 bottleneck)", fusion_key, (int)kind);
    snprintf(key, sizeof key, "%s.dropout", fusion_key);
    fc->dropout = mmspcl_weights_get_float(w, key, &dropout) ? dropout : 0.0;
    *has_prune = 0;
    if (prune_key) snprintf(key, sizeof key, "%s.mods", prune_key);
    if (prune_key && mmspcl_weights_get_int(w, key, &v)) {
        mmspcl_xprune h;
        if ((st = mmspcl_xprune_load(&h, w, prune_key, err))) return st;
        *pc = h.cfg;
        for (m = 0; m < 3; m++) fc->dims[m] = pc->dims[m];   /* the inputs are the pruning layer's */
        *has_prune = 1;
    }
    return MMSPCL_OK;
}

/* ---- the SPCL model ---- */
mmspcl_status mmspcl_spcl_model_create(mmspcl_spcl_model *M, const mmspcl_fusion_cfg *fusion,
                                       int n_classes, const mmspcl_xprune_cfg *prune,
                                       uint64_t seed, mmspcl_error *err) {
    mmspcl_rng rng;
    mmspcl_status st;
    memset(M, 0, sizeof *M);
    M->n_classes = n_classes;
    if (n_classes < 2 || n_classes > MMSPCL_MAX_CLASSES) return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "spcl model: %d classes", n_classes);
    mmspcl_rng_seed(&rng, seed);
    mmspcl_params_init(&M->P);
    if ((st = mmspcl_pfusion_create(&M->embed, &M->P, "fusion", "prune", fusion, prune, &rng, err))) {
        mmspcl_params_free(&M->P);
        return st;
    }
    mmspcl_lin_create(&M->classifier, &M->P, "classifier", fusion->out_dim, n_classes, &rng);
    M->protos = mmspcl__t_alloc((size_t)n_classes * fusion->out_dim);
    if (M->P.oom || !M->protos) { mmspcl_spcl_model_free(M); return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "spcl model: out of memory"); }
    mmspcl__t_zero(M->protos, (size_t)n_classes * fusion->out_dim);
    return MMSPCL_OK;
}

void mmspcl_spcl_model_free(mmspcl_spcl_model *M) {
    mmspcl_pfusion_free(&M->embed);
    mmspcl_params_free(&M->P);
    MMSPCL_FREE(M->protos);
    MMSPCL_FREE(M->buf);
    memset(M, 0, sizeof *M);
}

/* doubles of the inputs for n rows, in M->buf; xd[m] point into it */
static mmspcl_status mmspcl__t_spcl_inputs(mmspcl_spcl_model *M, const float *const x[3], int n, double *xd[3],
                                           mmspcl_error *err) {
    const int *dims = M->embed.dims;
    size_t need = 1, off = 0, q;
    int m;
    for (m = 0; m < 3; m++) need += (size_t)n * dims[m];
    if (need > M->buf_cap) {
        double *p = (double *)MMSPCL_REALLOC(M->buf, sizeof(double) * need);
        if (!p) return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "spcl model: out of memory for %d rows", n);
        M->buf = p;
        M->buf_cap = need;
    }
    for (m = 0; m < 3; m++) {
        xd[m] = NULL;
        if (!dims[m]) continue;
        if (!x[m]) return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "spcl model: no %s features", mmspcl__t_mod[m]);
        xd[m] = M->buf + off;
        for (q = 0; q < (size_t)n * dims[m]; q++) xd[m][q] = x[m][q];
        off += (size_t)n * dims[m];
    }
    return MMSPCL_OK;
}

mmspcl_status mmspcl_spcl_model_embed(mmspcl_spcl_model *M, const float *const x[3], int n, double *z,
                                      mmspcl_error *err) {
    const int CH = 128, D = M->embed.fusion.cfg.out_dim;
    int i, m;
    mmspcl_status st = MMSPCL_OK;
    for (i = 0; i < n && !st; i += CH) {
        const int nn = n - i < CH ? n - i : CH;
        const float *xs[3];
        double *xd[3];
        for (m = 0; m < 3; m++) xs[m] = x[m] ? x[m] + (size_t)i * M->embed.dims[m] : NULL;
        if ((st = mmspcl__t_spcl_inputs(M, xs, nn, xd, err))) break;
        st = mmspcl_pfusion_forward(&M->embed, &M->P, (const double *const *)xd, nn, z + (size_t)i * D, NULL, err);
    }
    return st;
}

/* nearest prototype by G over double vectors */
static void mmspcl__t_proto_classify(const double *z, int n, int dim, const double *protos, int C, int *pred) {
    int i;
    MMSPCL__T_PARALLEL(2.0 * n * C * dim);
    MMSPCL__T_OMP_FOR
    for (i = 0; i < n; i++) {
        int c, best = 0;
        double bs = -1.0;
        for (c = 0; c < C; c++) {
            const double s = (1.0 + mmspcl__t_cos(z + (size_t)i * dim, protos + (size_t)c * dim, dim)) / 2.0 + 1e-8;
            if (s > bs) { bs = s; best = c; }
        }
        pred[i] = best;
    }
}

mmspcl_status mmspcl_spcl_model_predict(mmspcl_spcl_model *M, const float *const x[3], int n,
                                        int *pred_proto, int *pred_linear, mmspcl_error *err) {
    const int D = M->embed.fusion.cfg.out_dim, C = M->n_classes;
    double *z = mmspcl__t_alloc((size_t)n * D), *lg = mmspcl__t_alloc((size_t)n * C);
    mmspcl_status st;
    int i, c;
    if (!z || !lg) { MMSPCL_FREE(z); MMSPCL_FREE(lg); return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "spcl model: out of memory"); }
    st = mmspcl_spcl_model_embed(M, x, n, z, err);
    if (!st && pred_proto) mmspcl__t_proto_classify(z, n, D, M->protos, C, pred_proto);
    if (!st && pred_linear) {
        mmspcl_lin_forward(&M->P, &M->classifier, z, lg, n);
        for (i = 0; i < n; i++) {
            int best = 0;
            for (c = 1; c < C; c++) if (lg[(size_t)i * C + c] > lg[(size_t)i * C + best]) best = c;
            pred_linear[i] = best;
        }
    }
    MMSPCL_FREE(z);
    MMSPCL_FREE(lg);
    return st;
}

void mmspcl_spcl_train_defaults(mmspcl_spcl_train_cfg *c) {
    memset(c, 0, sizeof *c);
    c->objective = MMSPCL_OBJ_SPCL;
    c->temperature = 0.08; c->pool_size = 512; c->K = 64; c->curriculum = 1;
    c->epochs = 10; c->batch = 32; c->warmup = 128; c->patience = 5;
    c->lr = 1e-3; c->weight_decay = 0.01; c->clip = 5.0;
    c->seed = 1;
}

mmspcl_status mmspcl_spcl_train(mmspcl_spcl_model *M, const mmspcl_dataset *train,
                                const mmspcl_dataset *val, const mmspcl_spcl_train_cfg *cfg,
                                mmspcl_train_report *rep, mmspcl_train_log_fn log, void *user,
                                mmspcl_error *err) {
    const int C = M->n_classes, D = M->embed.fusion.cfg.out_dim, n = train ? train->n : 0;
    const int B = cfg->batch > 1 ? cfg->batch : 32, E = cfg->epochs;
    const int *dims = M->embed.dims;
    mmspcl_train_report r;
    mmspcl_adamw_cfg opt;
    mmspcl_rng rng;
    mmspcl_spcl S;
    float *xb[3] = { NULL, NULL, NULL };
    double *zall = NULL, *zval = NULL, *centers = NULL, *diff = NULL, *z = NULL, *dz = NULL, *lg = NULL, *dlg = NULL;
    double *best = NULL, *best_protos = NULL;
    int *counts = NULL, *sel = NULL, *yb = NULL, *pred = NULL, e, m, bad = 0, have_best = 0;
    mmspcl_status st;
    memset(&r, 0, sizeof r);
    memset(&S, 0, sizeof S);
    r.best_val_f1 = -1.0;
    r.best_epoch = -1;
    if ((st = mmspcl__t_check_data(train, dims, C, "training", err))) return st;
    if (val && (st = mmspcl__t_check_data(val, dims, C, "validation", err))) return st;
    if (E < 1) return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "spcl: %d epochs", E);
    if ((st = mmspcl_spcl_init(&S, C, D, cfg->pool_size, cfg->K, cfg->temperature, cfg->seed ^ 0x5bd1e995u, err))) return st;
    mmspcl_adamw_defaults(&opt);
    opt.weight_decay = cfg->weight_decay;
    mmspcl_rng_seed(&rng, cfg->seed);
    for (m = 0; m < 3; m++)
        if (dims[m] && !(xb[m] = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)B * dims[m]))) goto oom;
    zall = mmspcl__t_alloc((size_t)n * D);
    zval = mmspcl__t_alloc((size_t)(val ? val->n : 1) * D);
    centers = mmspcl__t_alloc((size_t)C * D);
    diff = mmspcl__t_alloc((size_t)n);
    z = mmspcl__t_alloc((size_t)B * D);
    dz = mmspcl__t_alloc((size_t)B * D);
    lg = mmspcl__t_alloc((size_t)B * C);
    dlg = mmspcl__t_alloc((size_t)B * C);
    best = mmspcl__t_alloc(M->P.n);
    best_protos = mmspcl__t_alloc((size_t)C * D);
    counts = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)C);
    sel = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)n);
    yb = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)B);
    pred = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)(val ? val->n : 1));
    if (!zall || !zval || !centers || !diff || !z || !dz || !lg || !dlg || !best || !best_protos || !counts || !sel || !yb || !pred)
        goto oom;
    for (e = 0; e <= E; e++) {
        double sum = 0.0, f1 = -1.0;
        int n_sel, n_batches, b, i;
        /* embeddings of the whole training set and their class means */
        if ((st = mmspcl_spcl_model_embed(M, train->x, n, zall, err))) goto fail;
        mmspcl_class_means(zall, train->y, n, D, C, centers, counts);
        if (e > 0) {   /* the epoch just trained, scored by nearest class mean */
            if (val) {
                if ((st = mmspcl_spcl_model_embed(M, val->x, val->n, zval, err))) goto fail;
                mmspcl__t_proto_classify(zval, val->n, D, centers, C, pred);
                f1 = mmspcl__t_weighted_f1(val->y, pred, val->n, C);
            }
            if (!val || f1 > r.best_val_f1) {
                r.best_val_f1 = f1;
                r.best_epoch = e - 1;
                memcpy(best, M->P.w, sizeof(double) * M->P.n);
                memcpy(best_protos, centers, sizeof(double) * (size_t)C * D);
                have_best = 1;
                bad = 0;
            } else bad++;
            if (log) log(user, e - 1, r.last_loss, f1);
            if (val && cfg->patience > 0 && bad >= cfg->patience) break;
        }
        if (e == E) break;
        /* curriculum: easy to hard */
        if (cfg->curriculum) {
            mmspcl_curriculum_difficulty(zall, train->y, n, D, centers, counts, C, diff);
            n_sel = mmspcl_curriculum_select(diff, n, e, E, &rng, sel);
        } else {
            for (i = 0; i < n; i++) sel[i] = i;
            n_sel = n;
        }
        mmspcl_rng_shuffle(&rng, sel, n_sel);
        n_batches = n_sel >= B ? n_sel / B : (n_sel >= 2 ? 1 : 0);    /* drop_last, as the original */
        mmspcl_spcl_reset(&S, centers);
        for (b = 0; b < n_batches; b++) {
            const int nb = n_sel >= B ? B : n_sel;
            const float *xc[3];
            double *xd[3], l_spcl = 0.0, l_ce;
            /* the original builds a new cosine schedule every epoch (warm-up in the first only) */
            const int64_t warm = e == 0 ? (cfg->warmup < n_batches ? cfg->warmup : n_batches) : 0;
            mmspcl__t_gather(train, dims, sel + (size_t)b * B, nb, xb, yb);
            for (m = 0; m < 3; m++) xc[m] = xb[m];
            if ((st = mmspcl__t_spcl_inputs(M, xc, nb, xd, err))) goto fail;
            if ((st = mmspcl_pfusion_forward(&M->embed, &M->P, (const double *const *)xd, nb, z, &rng, err))) goto fail;
            mmspcl_params_zero_grad(&M->P);
            mmspcl__t_zero(dz, (size_t)nb * D);
            mmspcl_lin_forward(&M->P, &M->classifier, z, lg, nb);
            l_ce = mmspcl_ce_loss(lg, yb, nb, C, NULL, dlg);
            if (cfg->objective == MMSPCL_OBJ_SPCL) {
                if ((st = mmspcl_spcl_step(&S, z, yb, nb, &l_spcl, dz, NULL, err))) goto fail;
                mmspcl_lin_backward(&M->P, &M->classifier, z, dlg, NULL, nb);   /* detached features */
            } else {
                mmspcl_lin_backward(&M->P, &M->classifier, z, dlg, dz, nb);
            }
            mmspcl_pfusion_backward(&M->embed, &M->P, (const double *const *)xd, nb, dz, NULL);
            mmspcl_grad_clip(&M->P, cfg->clip);
            mmspcl_adamw_step(&M->P, &opt, mmspcl_lr_cosine(b, warm, n_batches, cfg->lr));
            sum += l_spcl + l_ce;
            r.steps++;
        }
        r.last_loss = n_batches ? sum / n_batches : 0.0;
        if (e == 0) r.first_loss = r.last_loss;
        r.epochs_run = e + 1;
    }
    if (have_best) {
        memcpy(M->P.w, best, sizeof(double) * M->P.n);
        memcpy(M->protos, best_protos, sizeof(double) * (size_t)C * D);
    }
    st = MMSPCL_OK;
    goto done;
oom:
    st = mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "spcl: out of memory for %d samples", n);
fail:
done:
    mmspcl_spcl_free(&S);
    for (m = 0; m < 3; m++) MMSPCL_FREE(xb[m]);
    MMSPCL_FREE(zall); MMSPCL_FREE(zval); MMSPCL_FREE(centers); MMSPCL_FREE(diff); MMSPCL_FREE(z); MMSPCL_FREE(dz);
    MMSPCL_FREE(lg); MMSPCL_FREE(dlg); MMSPCL_FREE(best); MMSPCL_FREE(best_protos);
    MMSPCL_FREE(counts); MMSPCL_FREE(sel); MMSPCL_FREE(yb); MMSPCL_FREE(pred);
    if (rep) *rep = r;
    return st;
}

mmspcl_status mmspcl_spcl_model_save(const mmspcl_spcl_model *M, const char *path, int with_optim,
                                     mmspcl_error *err) {
    const int C = M->n_classes, D = M->embed.fusion.cfg.out_dim;
    mmspcl_writer *wr = mmspcl_writer_create();
    float *hold = NULL, *pf = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)C * D);
    int64_t sh[2];
    size_t q;
    int st = 0;
    mmspcl_status s2 = MMSPCL_OK;
    if (!wr || !pf) { mmspcl_writer_free(wr); MMSPCL_FREE(pf); return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "spcl model: out of memory"); }
    for (q = 0; q < (size_t)C * D; q++) pf[q] = (float)M->protos[q];
    st |= (int)mmspcl_writer_set_int(wr, "spcl.kind", M->embed.fusion.cfg.kind);
    st |= (int)mmspcl_writer_set_int(wr, "spcl.n_classes", C);
    st |= (int)mmspcl_pfusion_write_config(&M->embed, wr, "spcl", "spcl.prune");
    if (st) s2 = mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "spcl model: cannot set the keys");
    sh[0] = C; sh[1] = D;
    if (!s2) s2 = mmspcl_writer_add_tensor(wr, "spcl.protos", MMSPCL_F32, 2, sh, pf, sizeof(float) * (size_t)C * D, err);
    if (!s2) s2 = mmspcl_params_write(&M->P, wr, "spcl", with_optim, &hold, err);
    if (!s2) s2 = mmspcl_writer_save(wr, path, NULL, NULL, err);
    mmspcl_writer_free(wr);
    MMSPCL_FREE(hold);
    MMSPCL_FREE(pf);
    return s2;
}

/* files of before the pruning layer: spcl.prune.{base,mod,K}, one pruning modality by arg-max
   (mod -1: none), the same selection as that layer with mods = {mod}, separate, no projection */
static mmspcl_status mmspcl__t_spcl_legacy_prune(const mmspcl_weights *w, const mmspcl_fusion_cfg *fc, mmspcl_xprune_cfg *pc,
                                                 int *has_prune, mmspcl_error *err) {
    int64_t pb = -1, pm = -1, pk = 0;
    int m;
    if (!mmspcl_weights_get_int(w, "spcl.prune.mod", &pm)) return MMSPCL_OK;   /* no pruning keys: none */
    if (!mmspcl_weights_get_int(w, "spcl.prune.base", &pb) || !mmspcl_weights_get_int(w, "spcl.prune.K", &pk))
        return mmspcl__t_fail(err, MMSPCL_ERR_NOT_FOUND, "spcl model: spcl.prune.mod without spcl.prune.base and spcl.prune.K");
    if (pm == -1) return MMSPCL_OK;
    if (pb < 0 || pb > 2 || pm < 0 || pm > 2 || pb == pm || pk < 1 || pk > (1 << 20))
        return mmspcl__t_fail(err, MMSPCL_ERR_FORMAT, "spcl model: spcl.prune.base %lld, spcl.prune.mod %lld, spcl.prune.K %lld",
                              (long long)pb, (long long)pm, (long long)pk);
    memset(pc, 0, sizeof *pc);
    for (m = 0; m < 3; m++) pc->dims[m] = fc->dims[m];
    pc->base = (int)pb; pc->mods = 1u << pm; pc->K = (int)pk; pc->rule = MMSPCL_PRUNE_ARGMAX;
    *has_prune = 1;
    return MMSPCL_OK;
}

mmspcl_status mmspcl_spcl_model_load(mmspcl_spcl_model *M, const mmspcl_weights *w, mmspcl_error *err) {
    mmspcl_fusion_cfg fc;
    mmspcl_xprune_cfg pc;
    int64_t kind = -1, C = 0;
    const float *protos;
    int pc_n, pd, has_prune = 0;
    size_t q;
    mmspcl_status st;
    if (!mmspcl_weights_get_int(w, "spcl.kind", &kind) || !mmspcl_weights_get_int(w, "spcl.n_classes", &C))
        return mmspcl__t_fail(err, MMSPCL_ERR_NOT_FOUND, "spcl model: the keys spcl.kind and spcl.n_classes are missing");
    if (kind < 0 || kind > 2) return mmspcl__t_fail(err, MMSPCL_ERR_FORMAT, "spcl model: spcl.kind %lld", (long long)kind);
    memset(&pc, 0, sizeof pc);
    if ((st = mmspcl_pfusion_load_config(w, (mmspcl_fusion_kind)kind, "spcl.fusion", "spcl.prune", &fc, &pc, &has_prune, err))) return st;
    if (!has_prune && (st = mmspcl__t_spcl_legacy_prune(w, &fc, &pc, &has_prune, err))) return st;
    if ((st = mmspcl_protos_load(&protos, &pc_n, &pd, w, "spcl", err))) return st;
    if (pc_n != C || pd != fc.out_dim)
        return mmspcl__t_fail(err, MMSPCL_ERR_FORMAT, "spcl.protos is [%d][%d], expected [%lld][%d]", pc_n, pd, (long long)C, fc.out_dim);
    if ((st = mmspcl_spcl_model_create(M, &fc, (int)C, has_prune ? &pc : NULL, 0, err))) return st;
    if ((st = mmspcl_params_read(&M->P, w, "spcl", err))) { mmspcl_spcl_model_free(M); return st; }
    for (q = 0; q < (size_t)pc_n * pd; q++) M->protos[q] = protos[q];
    return MMSPCL_OK;
}


/* ---------------------------------------------------------------------------------------------
   11. RoBERTa-layout encoder training
   In float32; the API is over the declarations.
   ------------------------------------------------------------------------------------------ */
static mmspcl_tensor mmspcl__rt_view(const float *d, int64_t rows, int64_t cols) {
    mmspcl_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = MMSPCL_F32;
    t.ndim = 2;
    t.ne[0] = rows;
    t.ne[1] = cols;
    t.data = d;
    t.nbytes = (size_t)rows * (size_t)cols * sizeof(float);
    return t;
}

/* y[T][out] = x[T][in] W^T + b, W a float [out][in] array */
static mmspcl_status mmspcl__rt_lin(float *y, const float *x, int T, int in, const float *W, int out,
                                    const float *b) {
    mmspcl_tensor t = mmspcl__rt_view(W, out, in);
    return mmspcl_linear(y, x, T, in, &t, b);
}

/* Backward of y = x W^T + b (W at g/w offset woff, [out][in]; bias at boff, or (size_t)-1):
   dx (may be NULL) = (dx_add ? dx : 0) + dy W;  gW += dy^T x;  gb += column sums of dy.
   Both products are mmspcl_gemm_f32 on the operands in place (transposes by packing). */
/* the backward's scratch after dx .. dI: attention [work_threads][2 max_seq^2 + work_attn], then
   the layers' packing buffer [work_big] */
static float *mmspcl__rt_attn_scratch(const mmspcl_roberta_train *m) {
    const size_t TM = (size_t)m->max_tokens;
    return m->scratch + 7 * TM * (size_t)m->cfg.hidden_size + TM * (size_t)m->cfg.intermediate_size;
}
static float *mmspcl__rt_big_work(const mmspcl_roberta_train *m) {
    return mmspcl__rt_attn_scratch(m) +
           (size_t)m->work_threads * (2 * (size_t)m->max_seq * (size_t)m->max_seq + m->work_attn);
}

static mmspcl_status mmspcl__rt_lin_bwd(mmspcl_roberta_train *m, const float *x, int T, int in, size_t woff, int out,
                                        size_t boff, const float *dy, float *dx, int dx_add) {
    float *work = mmspcl__rt_big_work(m);
    mmspcl_status st;
    if (dx && (st = mmspcl_gemm_f32_ws(0, 0, T, in, out, dy, out, m->w + woff, in, dx, in, dx_add, work, m->work_big))) return st;
    if ((st = mmspcl_gemm_f32_ws(1, 0, out, in, T, dy, out, x, in, m->g + woff, in, 1, work, m->work_big))) return st;
    if (boff != (size_t)-1) {
        float *gb = m->g + boff;
        int r, o;
        for (r = 0; r < T; r++)
            for (o = 0; o < out; o++) gb[o] += dy[(size_t)r * out + o];
    }
    return MMSPCL_OK;
}

/* LayerNorm forward exactly as mmspcl_layernorm, keeping xhat and 1/std */
static void mmspcl__rt_ln(float *y, const float *x, const float *g, const float *b, int rows, int dim,
                          float eps, float *xhat, float *inv_out) {
    int r;
    MMSPCL__OMP_FOR
    for (r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * dim;
        float *yr = y + (size_t)r * dim, *hr = xhat + (size_t)r * dim;
        double mean = 0.0, var = 0.0;
        float inv;
        int i;
        for (i = 0; i < dim; i++) mean += xr[i];
        mean /= dim;
        for (i = 0; i < dim; i++) { double d = xr[i] - mean; var += d * d; }
        var /= dim;
        inv = (float)(1.0 / sqrt(var + eps));
        for (i = 0; i < dim; i++) {
            hr[i] = (xr[i] - (float)mean) * inv;
            yr[i] = hr[i] * g[i] + b[i];
        }
        inv_out[r] = inv;
    }
}

/* dx = d LayerNorm (written, not accumulated); g/b gradients accumulated in row order */
static void mmspcl__rt_ln_bwd(mmspcl_roberta_train *m, float *dx, const float *dy, const float *xhat, const float *inv,
                              size_t goff, size_t boff, int rows, int dim) {
    const float *g = m->w + goff;
    float *gg = m->g + goff, *gb = m->g + boff;
    int r, i;
    MMSPCL__OMP_FOR
    for (r = 0; r < rows; r++) {
        const float *dyr = dy + (size_t)r * dim, *hr = xhat + (size_t)r * dim;
        float *dxr = dx + (size_t)r * dim;
        double m1 = 0.0, m2 = 0.0;
        int j;
        for (j = 0; j < dim; j++) {
            double d = (double)dyr[j] * g[j];
            m1 += d;
            m2 += d * hr[j];
        }
        m1 /= dim;
        m2 /= dim;
        for (j = 0; j < dim; j++)
            dxr[j] = (float)(inv[r] * ((double)dyr[j] * g[j] - m1 - hr[j] * m2));
    }
    for (r = 0; r < rows; r++)
        for (i = 0; i < dim; i++) {
            gg[i] += dy[(size_t)r * dim + i] * xhat[(size_t)r * dim + i];
            gb[i] += dy[(size_t)r * dim + i];
        }
}

/* d[i] *= GELU'(f[i]) (mmspcl_gelu_grad), in blocks over the threads */
static void mmspcl__rt_gelu_bwd(float *d, const float *f, size_t n) {
    const long nb = (long)((n + 4095) / 4096);
    long b;
    MMSPCL__OMP_FOR
    for (b = 0; b < nb; b++) {
        const size_t i0 = (size_t)b * 4096;
        mmspcl_gelu_grad(d + i0, f + i0, n - i0 < 4096 ? n - i0 : 4096);
    }
}

/* Per-layer cache layout, every block sized for max_tokens rows */
enum { MMSPCL__RT_Q, MMSPCL__RT_K, MMSPCL__RT_V, MMSPCL__RT_CTX, MMSPCL__RT_H1, MMSPCL__RT_XH1, MMSPCL__RT_XH2,
       MMSPCL__RT_XOUT, MMSPCL__RT_NH };

static size_t mmspcl__rt_layer_floats(const mmspcl_roberta_train *m) {
    const size_t T = (size_t)m->max_tokens, H = (size_t)m->cfg.hidden_size, I = (size_t)m->cfg.intermediate_size;
    return T * H * MMSPCL__RT_NH + 2 * T * I + 2 * T + (size_t)m->cfg.num_heads * T * (size_t)m->max_seq;
}
/* pointers into layer l's cache (l == -1: the embedding part) */
typedef struct mmspcl__rt_lc { float *h[MMSPCL__RT_NH], *f, *ga, *inv1, *inv2, *probs; } mmspcl__rt_lc;
static mmspcl__rt_lc mmspcl__rt_layer_cache(const mmspcl_roberta_train *m, int l) {
    const size_t T = (size_t)m->max_tokens, H = (size_t)m->cfg.hidden_size, I = (size_t)m->cfg.intermediate_size;
    float *base = m->cache + 2 * T * H + T + (size_t)l * mmspcl__rt_layer_floats(m);
    mmspcl__rt_lc c;
    int i;
    for (i = 0; i < MMSPCL__RT_NH; i++) c.h[i] = base + (size_t)i * T * H;
    base += T * H * MMSPCL__RT_NH;
    c.f = base; base += T * I;
    c.ga = base; base += T * I;
    c.inv1 = base; base += T;
    c.inv2 = base; base += T;
    c.probs = base;
    return c;
}
/* embedding part: xhat0 [T][H], x0 (LN output) [T][H], inv0 [T] */
#define MMSPCL__RT_XHAT0(m) ((m)->cache)
#define MMSPCL__RT_X0(m) ((m)->cache + (size_t)(m)->max_tokens * (m)->cfg.hidden_size)
#define MMSPCL__RT_INV0(m) ((m)->cache + 2 * (size_t)(m)->max_tokens * (m)->cfg.hidden_size)

void mmspcl_roberta_train_free(mmspcl_roberta_train *m) {
    if (!m) return;
    mmspcl_params_free(&m->P);
    MMSPCL_FREE(m->w);
    MMSPCL_FREE(m->g);
    MMSPCL_FREE(m->L);
    MMSPCL_FREE(m->starts);
    MMSPCL_FREE(m->lens);
    MMSPCL_FREE(m->tok);
    MMSPCL_FREE(m->posid);
    MMSPCL_FREE(m->cache);
    MMSPCL_FREE(m->scratch);
    memset(m, 0, sizeof *m);
}

void mmspcl_roberta_train_sync(mmspcl_roberta_train *m) {
    long i, n = (long)m->P.n;
    MMSPCL__OMP_FOR
    for (i = 0; i < n; i++) m->w[i] = (float)m->P.w[i];
}

/* packing buffer sizes of the backward's products (mmspcl__rt_lin_bwd, mmspcl__rt_attn_bwd) */
static void mmspcl__rt_work_sizes(mmspcl_roberta_train *m) {
    const int T = m->max_tokens, H = m->cfg.hidden_size, I = m->cfg.intermediate_size, L = m->max_seq;
    const int hd = H / m->cfg.num_heads, nt = MMSPCL__MAX_THREADS();
    const int io[3][2] = {{H, H}, {H, I}, {I, H}};
    size_t w, big = 0, at = 0;
    int k;
    for (k = 0; k < 3; k++) {   /* dx = dy W: T x in x out; dW = dy^T x: out x in x T */
        if ((w = mmspcl_gemm_f32_work(T, io[k][0], io[k][1], nt)) > big) big = w;
        if ((w = mmspcl_gemm_f32_work(io[k][1], io[k][0], T, nt)) > big) big = w;
    }
    at = mmspcl_gemm_f32_work(L, L, hd, 1);               /* dctx V^T */
    if ((w = mmspcl_gemm_f32_work(L, hd, L, 1)) > at) at = w;   /* dV, dQ, dK */
    m->work_big = big;
    m->work_attn = at;
    m->work_threads = nt;
}

static size_t mmspcl__rt_add(mmspcl_roberta_train *m, const char *name, int64_t a, int64_t b, int decay, mmspcl_init init,
                             double scale, mmspcl_rng *rng) {
    int64_t shape[2];
    shape[0] = a;
    shape[1] = b;
    return mmspcl_params_add(&m->P, name, b ? 2 : 1, shape, decay, init, scale, rng);
}

mmspcl_status mmspcl_roberta_train_create(mmspcl_roberta_train *m, const mmspcl_roberta_config *cfg, int with_mlm,
                               uint64_t seed, int max_tokens, int max_seq, mmspcl_error *err) {
    const int H = cfg->hidden_size, I = cfg->intermediate_size, V = cfg->vocab_size;
    const double sd = 0.02;
    mmspcl_rng rng;
    char name[160];
    size_t scr;
    int l;
    memset(m, 0, sizeof *m);
    if (H < 1 || cfg->num_heads < 1 || H % cfg->num_heads || I < 1 || V < 1 || cfg->num_layers < 1 ||
        max_tokens < 1 || max_seq < 1 || max_seq > max_tokens || cfg->type_vocab_size < 1 ||
        max_seq > cfg->max_positions - cfg->pad_id - 1 || cfg->pad_id < 0 || cfg->pad_id >= V)
        return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "rt_create: inconsistent configuration (hidden %d, heads %d, max_seq %d, positions %d)",
                            H, cfg->num_heads, max_seq, cfg->max_positions);
    m->cfg = *cfg;
    m->mlm = with_mlm;
    m->max_tokens = max_tokens;
    m->max_seq = max_seq;
    mmspcl_rng_seed(&rng, seed);
    mmspcl_params_init(&m->P);
    m->word = mmspcl__rt_add(m, "embeddings.word_embeddings.weight", V, H, 1, MMSPCL_INIT_NORMAL, sd, &rng);
    m->pos = mmspcl__rt_add(m, "embeddings.position_embeddings.weight", cfg->max_positions, H, 1, MMSPCL_INIT_NORMAL, sd, &rng);
    m->type = mmspcl__rt_add(m, "embeddings.token_type_embeddings.weight", cfg->type_vocab_size, H, 1, MMSPCL_INIT_NORMAL, sd, &rng);
    m->eln_g = mmspcl__rt_add(m, "embeddings.LayerNorm.weight", H, 0, 0, MMSPCL_INIT_ONE, 0, &rng);
    m->eln_b = mmspcl__rt_add(m, "embeddings.LayerNorm.bias", H, 0, 0, MMSPCL_INIT_ZERO, 0, &rng);
    if (!(m->L = (mmspcl_roberta_train_layer *)MMSPCL_MALLOC(sizeof *m->L * (size_t)cfg->num_layers))) goto oom;
    for (l = 0; l < cfg->num_layers; l++) {
        mmspcl_roberta_train_layer *L = &m->L[l];
#define MMSPCL__RTN(s) (snprintf(name, sizeof name, "encoder.layer.%d.%s", l, s), name)
        L->wq = mmspcl__rt_add(m, MMSPCL__RTN("attention.self.query.weight"), H, H, 1, MMSPCL_INIT_NORMAL, sd, &rng);
        L->bq = mmspcl__rt_add(m, MMSPCL__RTN("attention.self.query.bias"), H, 0, 0, MMSPCL_INIT_ZERO, 0, &rng);
        L->wk = mmspcl__rt_add(m, MMSPCL__RTN("attention.self.key.weight"), H, H, 1, MMSPCL_INIT_NORMAL, sd, &rng);
        L->bk = mmspcl__rt_add(m, MMSPCL__RTN("attention.self.key.bias"), H, 0, 0, MMSPCL_INIT_ZERO, 0, &rng);
        L->wv = mmspcl__rt_add(m, MMSPCL__RTN("attention.self.value.weight"), H, H, 1, MMSPCL_INIT_NORMAL, sd, &rng);
        L->bv = mmspcl__rt_add(m, MMSPCL__RTN("attention.self.value.bias"), H, 0, 0, MMSPCL_INIT_ZERO, 0, &rng);
        L->wo = mmspcl__rt_add(m, MMSPCL__RTN("attention.output.dense.weight"), H, H, 1, MMSPCL_INIT_NORMAL, sd, &rng);
        L->bo = mmspcl__rt_add(m, MMSPCL__RTN("attention.output.dense.bias"), H, 0, 0, MMSPCL_INIT_ZERO, 0, &rng);
        L->ln1_g = mmspcl__rt_add(m, MMSPCL__RTN("attention.output.LayerNorm.weight"), H, 0, 0, MMSPCL_INIT_ONE, 0, &rng);
        L->ln1_b = mmspcl__rt_add(m, MMSPCL__RTN("attention.output.LayerNorm.bias"), H, 0, 0, MMSPCL_INIT_ZERO, 0, &rng);
        L->wi = mmspcl__rt_add(m, MMSPCL__RTN("intermediate.dense.weight"), I, H, 1, MMSPCL_INIT_NORMAL, sd, &rng);
        L->bi = mmspcl__rt_add(m, MMSPCL__RTN("intermediate.dense.bias"), I, 0, 0, MMSPCL_INIT_ZERO, 0, &rng);
        L->wo2 = mmspcl__rt_add(m, MMSPCL__RTN("output.dense.weight"), H, I, 1, MMSPCL_INIT_NORMAL, sd, &rng);
        L->bo2 = mmspcl__rt_add(m, MMSPCL__RTN("output.dense.bias"), H, 0, 0, MMSPCL_INIT_ZERO, 0, &rng);
        L->ln2_g = mmspcl__rt_add(m, MMSPCL__RTN("output.LayerNorm.weight"), H, 0, 0, MMSPCL_INIT_ONE, 0, &rng);
        L->ln2_b = mmspcl__rt_add(m, MMSPCL__RTN("output.LayerNorm.bias"), H, 0, 0, MMSPCL_INIT_ZERO, 0, &rng);
#undef MMSPCL__RTN
    }
    if (with_mlm) {
        m->lm_w = mmspcl__rt_add(m, "lm_head.dense.weight", H, H, 1, MMSPCL_INIT_NORMAL, sd, &rng);
        m->lm_b = mmspcl__rt_add(m, "lm_head.dense.bias", H, 0, 0, MMSPCL_INIT_ZERO, 0, &rng);
        m->lm_ln_g = mmspcl__rt_add(m, "lm_head.layer_norm.weight", H, 0, 0, MMSPCL_INIT_ONE, 0, &rng);
        m->lm_ln_b = mmspcl__rt_add(m, "lm_head.layer_norm.bias", H, 0, 0, MMSPCL_INIT_ZERO, 0, &rng);
        m->lm_bias = mmspcl__rt_add(m, "lm_head.bias", V, 0, 0, MMSPCL_INIT_ZERO, 0, &rng);
    }
    if (m->P.oom) goto oom;
    /* HF zeroes the padding rows of the word and position tables */
    memset(m->P.w + m->word + (size_t)cfg->pad_id * H, 0, sizeof(double) * (size_t)H);
    memset(m->P.w + m->pos + (size_t)cfg->pad_id * H, 0, sizeof(double) * (size_t)H);
    m->w = (float *)MMSPCL_MALLOC(sizeof(float) * m->P.n);
    m->g = (float *)MMSPCL_MALLOC(sizeof(float) * m->P.n);
    m->starts = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)max_tokens);
    m->lens = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)max_tokens);
    m->tok = (int32_t *)MMSPCL_MALLOC(sizeof(int32_t) * (size_t)max_tokens);
    m->posid = (int32_t *)MMSPCL_MALLOC(sizeof(int32_t) * (size_t)max_tokens);
    m->cache_n = 2 * (size_t)max_tokens * H + (size_t)max_tokens + mmspcl__rt_layer_floats(m) * (size_t)cfg->num_layers;
    m->cache = (float *)MMSPCL_MALLOC(sizeof(float) * m->cache_n);
    /* dx, dz, dh, dq, dk, dv, dctx [T][H]; dI [T][I]; attention [threads][2][max_seq][max_seq];
       packing buffers: attention's [threads][work_attn], the layers' [work_big] */
    mmspcl__rt_work_sizes(m);
    scr = 7 * (size_t)max_tokens * H + (size_t)max_tokens * I +
          (size_t)m->work_threads * (2 * (size_t)max_seq * (size_t)max_seq + m->work_attn) + m->work_big;
    m->scratch_n = scr;
    m->scratch = (float *)MMSPCL_MALLOC(sizeof(float) * scr);
    if (!m->w || !m->g || !m->starts || !m->lens || !m->tok || !m->posid || !m->cache || !m->scratch) goto oom;
    memset(m->g, 0, sizeof(float) * m->P.n);
    mmspcl_roberta_train_sync(m);
    return MMSPCL_OK;
oom:
    mmspcl_roberta_train_free(m);
    return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "rt_create: out of memory");
}

/* One tensor of the file into the trainer's tensor pi (same shape; f32, f16, bf16 or f32 panels) */
static mmspcl_status mmspcl__rt_load_tensor(mmspcl_roberta_train *m, const mmspcl_weights *w, const mmspcl_param_info *pi,
                                            float *row, mmspcl_error *err) {
    const mmspcl_tensor *t = mmspcl_weights_find(w, pi->name);
    const int64_t rows = pi->ndim == 2 ? pi->shape[0] : 1, cols = pi->shape[pi->ndim - 1];
    int64_t r, k, tr, tc;
    mmspcl_status st;
    if (!t) return mmspcl__t_fail(err, MMSPCL_ERR_NOT_FOUND, "tensor %s is missing (not a RoBERTa encoder file?)", pi->name);
    if (t->dtype != MMSPCL_F32 && t->dtype != MMSPCL_F16 && t->dtype != MMSPCL_BF16)
        return mmspcl__t_fail(err, MMSPCL_ERR_UNSUPPORTED, "tensor %s is %s: training starts from f32, f16 or bf16 weights "
                              "(convert the checkpoint with --type f32 or f16)", pi->name, mmspcl_dtype_name(t->dtype));
    if (pi->ndim == 2 && mmspcl_tensor_is_panels(t)) { tr = mmspcl_matrix_rows(t); tc = mmspcl_matrix_cols(t); }
    else if (t->ndim == pi->ndim) { tr = pi->ndim == 2 ? t->ne[0] : 1; tc = t->ne[t->ndim - 1]; }
    else tr = tc = -1;
    if (tr != rows || tc != cols)
        return mmspcl__t_fail(err, MMSPCL_ERR_FORMAT, "tensor %s has shape %s%lld x %lld, expected %lld x %lld", pi->name,
                              tr < 0 ? "(other dimensions) " : "", (long long)tr, (long long)tc, (long long)rows, (long long)cols);
    for (r = 0; r < rows; r++) {
        if (pi->ndim == 2) st = mmspcl_matrix_row(t, r, row);
        else st = mmspcl_dequantize_row(t->dtype, t->data, row, cols);
        if (st) return mmspcl__t_fail(err, st, "tensor %s: cannot read row %lld", pi->name, (long long)r);
        for (k = 0; k < cols; k++) {
            if (!(row[k] == row[k]) || row[k] - row[k] != 0.0f)
                return mmspcl__t_fail(err, MMSPCL_ERR_FORMAT, "tensor %s: value [%lld][%lld] is not finite", pi->name,
                                      (long long)r, (long long)k);
            m->P.w[pi->off + (size_t)r * cols + k] = row[k];
        }
    }
    return MMSPCL_OK;
}

mmspcl_status mmspcl_roberta_train_from_weights(mmspcl_roberta_train *m, const mmspcl_weights *w, int max_tokens,
                                                int max_seq, mmspcl_error *err) {
    mmspcl_roberta_config c;
    mmspcl_roberta *probe = NULL;
    mmspcl_status st;
    float *row;
    int t;
    memset(m, 0, sizeof *m);
    /* mmspcl.h's loader checks the architecture, the hyper-parameters and every tensor's shape
       (one token of activations: nothing is run) */
    if ((st = mmspcl_roberta_load(&probe, w, 1, 1, err))) return st;
    c = *mmspcl_roberta_get_config(probe);
    mmspcl_roberta_free(probe);
    if (max_seq < 1 || max_seq > c.max_positions - c.pad_id - 1)
        return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "sequences of %d tokens do not fit the encoder's position table "
                              "(max_position_embeddings %d, pad_token_id %d: at most %d tokens)", max_seq, c.max_positions,
                              c.pad_id, c.max_positions - c.pad_id - 1);
    if ((st = mmspcl_roberta_train_create(m, &c, 0, 0, max_tokens, max_seq, err))) return st;
    if (!(row = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)(c.vocab_size > c.intermediate_size ?
                                                                 (c.vocab_size > c.hidden_size ? c.vocab_size : c.hidden_size) :
                                                                 (c.intermediate_size > c.hidden_size ? c.intermediate_size : c.hidden_size))))) {
        mmspcl_roberta_train_free(m);
        return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "rt_from_weights: out of memory");
    }
    for (t = 0; t < m->P.n_info && !st; t++) st = mmspcl__rt_load_tensor(m, w, &m->P.info[t], row, err);
    MMSPCL_FREE(row);
    if (st) { mmspcl_roberta_train_free(m); return st; }
    mmspcl_roberta_train_sync(m);
    return MMSPCL_OK;
}

static uint64_t mmspcl__rt_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

float mmspcl_roberta_train_dropout(uint64_t key, uint32_t site, uint64_t index, float p) {
    uint64_t h;
    if (!(p > 0.0f)) return 1.0f;
    h = mmspcl__rt_mix(key ^ mmspcl__rt_mix(((uint64_t)site << 48) + index + 0x9E3779B97F4A7C15ull));
    return (double)(h >> 11) * (1.0 / 9007199254740992.0) < (double)p ? 0.0f : 1.0f / (1.0f - p);
}

/* out[j] = mmspcl_roberta_train_dropout(key, site, index0 + j, p) for j < n (p > 0): the
   definition, and an AVX-512 (F + DQ) kernel with the same bits, 16 indices at a time. The
   kernel compares the 53-bit draw h >> 11 with ceil(p 2^53) as integers: for an integer x below
   2^53, x 2^-53 < p exactly when x < ceil(p 2^53). */
static void mmspcl__rt_mask_scalar(float *out, uint64_t key, uint32_t site, uint64_t index0, int n, float p) {
    int j;
    for (j = 0; j < n; j++) out[j] = mmspcl_roberta_train_dropout(key, site, index0 + (uint64_t)j, p);
}
#ifdef MMSPCL__T_X86
/* GCC 12's AVX-512 headers trip -W(maybe-)uninitialized in C++ (GCC bug 105593, fixed in 13) */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define MMSPCL__T_POP_DIAGNOSTIC 1
#endif
static inline __attribute__((always_inline, target("avx512f,avx512dq"))) __m512i mmspcl__rt_mix512(__m512i z) {
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)), _mm512_set1_epi64((long long)0xBF58476D1CE4E5B9ull));
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)), _mm512_set1_epi64((long long)0x94D049BB133111EBull));
    return _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
}
static __attribute__((target("avx512f,avx512dq"))) void mmspcl__rt_mask_avx512(float *out, uint64_t key, uint32_t site,
                                                                              uint64_t index0, int n, float p) {
    const __m512i step = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0), kv = _mm512_set1_epi64((long long)key);
    const __m512i thr = _mm512_set1_epi64((long long)(uint64_t)ceil((double)p * 9007199254740992.0));
    const __m512 keep = _mm512_set1_ps(1.0f / (1.0f - p));
    uint64_t base = ((uint64_t)site << 48) + index0 + 0x9E3779B97F4A7C15ull;
    int j;
    for (j = 0; j < n; j += 16, base += 16) {
        const __m512i z0 = _mm512_add_epi64(_mm512_set1_epi64((long long)base), step);
        const __m512i z1 = _mm512_add_epi64(z0, _mm512_set1_epi64(8));
        const __m512i h0 = _mm512_srli_epi64(mmspcl__rt_mix512(_mm512_xor_si512(kv, mmspcl__rt_mix512(z0))), 11);
        const __m512i h1 = _mm512_srli_epi64(mmspcl__rt_mix512(_mm512_xor_si512(kv, mmspcl__rt_mix512(z1))), 11);
        const __mmask16 kept = (__mmask16)(_mm512_cmpge_epu64_mask(h0, thr) | (_mm512_cmpge_epu64_mask(h1, thr) << 8));
        const __m512 v = _mm512_maskz_mov_ps(kept, keep);
        if (n - j >= 16) _mm512_storeu_ps(out + j, v);
        else _mm512_mask_storeu_ps(out + j, (__mmask16)((1u << (n - j)) - 1u), v);
    }
}
#ifdef MMSPCL__T_POP_DIAGNOSTIC
#pragma GCC diagnostic pop
#undef MMSPCL__T_POP_DIAGNOSTIC
#endif
#endif
/* simd: 0 the definition, 1 the AVX-512 kernel where the CPU has it */
static void mmspcl__rt_mask_row(float *out, uint64_t key, uint32_t site, uint64_t index0, int n, float p, int simd) {
#ifdef MMSPCL__T_X86
    if (simd && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")) {
        mmspcl__rt_mask_avx512(out, key, site, index0, n, p);
        return;
    }
#endif
    (void)simd;
    mmspcl__rt_mask_scalar(out, key, site, index0, n, p);
}

/* The dropout of the attention probabilities of one (sequence, head): p > 0 when it applies;
   element (i, j) of the [L][L] block at probability offset base. */
typedef struct mmspcl__rt_adrop { float p; uint64_t key, base; uint32_t site; } mmspcl__rt_adrop;
#define MMSPCL__RT_MCHUNK 128   /* mask values made at a time (a stack buffer) */
/* mk[j - j0] = mask of (i, j) for j0 <= j < j0 + n (1 without dropout) */
static void mmspcl__rt_amask(float *mk, const mmspcl__rt_adrop *a, int i, int j0, int n, int L) {
    int j;
    if (a->p > 0.0f) mmspcl__rt_mask_row(mk, a->key, a->site, a->base + (uint64_t)i * (uint64_t)L + (uint64_t)j0, n, a->p, 1);
    else for (j = 0; j < n; j++) mk[j] = 1.0f;
}

/* o[d] += a * v[d] for d < n, each element a multiply then an add (no fused multiply-add): the
   scalar loop, and AVX2 on 8 elements at a time with the same operations (the same bits) */
static void mmspcl__rt_axpy_scalar(float *o, float a, const float *v, int n) {
    int d;
    for (d = 0; d < n; d++) o[d] += a * v[d];
}
#ifdef MMSPCL__T_X86
static __attribute__((target("avx2"))) void mmspcl__rt_axpy_avx2(float *o, float a, const float *v, int n) {
    const __m256 av = _mm256_set1_ps(a);
    int d = 0;
    for (; d + 8 <= n; d += 8) _mm256_storeu_ps(o + d, _mm256_add_ps(_mm256_loadu_ps(o + d), _mm256_mul_ps(av, _mm256_loadu_ps(v + d))));
    mmspcl__rt_axpy_scalar(o + d, a, v + d, n - d);
}
#endif
static void mmspcl__rt_axpy(float *o, float a, const float *v, int n, int simd) {
#ifdef MMSPCL__T_X86
    if (simd && __builtin_cpu_supports("avx2")) { mmspcl__rt_axpy_avx2(o, a, v, n); return; }
#endif
    (void)simd;
    mmspcl__rt_axpy_scalar(o, a, v, n);
}

/* attention of one (sequence, head): probs [L][L] kept (before dropout) */
static void mmspcl__rt_attn_fwd(const float *q, const float *k, const float *v, float *ctx, float *probs, int L,
                                int H, int h, int hd, const mmspcl__rt_adrop *dr) {
    const float scale = 1.0f / sqrtf((float)hd);
    float mk[MMSPCL__RT_MCHUNK];
    int i, j, j0, d;
    for (i = 0; i < L; i++) {
        float *p = probs + (size_t)i * L;
        const float *qi = q + (size_t)i * H + h * hd;
        float *oi = ctx + (size_t)i * H + h * hd;
        for (j = 0; j < L; j++) p[j] = mmspcl_dot_f32(qi, k + (size_t)j * H + h * hd, hd) * scale;
        mmspcl_softmax(p, L);
        for (d = 0; d < hd; d++) oi[d] = 0.0f;
        for (j0 = 0; j0 < L; j0 += MMSPCL__RT_MCHUNK) {
            const int n = L - j0 < MMSPCL__RT_MCHUNK ? L - j0 : MMSPCL__RT_MCHUNK;
            mmspcl__rt_amask(mk, dr, i, j0, n, L);
            for (j = j0; j < j0 + n; j++) {
                const float *vj = v + (size_t)j * H + h * hd;
                const float pj = p[j] * mk[j - j0];
                if (pj == 0.0f) continue;
                mmspcl__rt_axpy(oi, pj, vj, hd, 1);
            }
        }
    }
}

/* ctx = (P o M) V with P = softmax(S) kept and M the dropout mask (1 without dropout):
   dV = (P o M)^T dctx;  dP = (dctx V^T) o M;  dS = P o (dP - rowsum(P o dP)) * scale;
   dQ = dS K;  dK = dS^T Q. The head's columns of dq, dk, dv are written (not accumulated).
   The four products are mmspcl_gemm_f32 calls (on the calling thread: this runs inside the
   loop over (sequence, head)). dp, pm: scratch [L][L] each; work: their packing buffer (nw
   floats). Returns the first failure. */
static mmspcl_status mmspcl__rt_attn_bwd(const float *q, const float *k, const float *v, const float *probs,
                                         const float *dctx, float *dq, float *dk, float *dv, float *dp, float *pm,
                                         float *work, size_t nw, int L, int H, int h, int hd, const mmspcl__rt_adrop *dr) {
    const float scale = 1.0f / sqrtf((float)hd);
    const size_t o = (size_t)h * hd;
    mmspcl_status st;
    float mk[MMSPCL__RT_MCHUNK];
    int i, j, j0;
    if ((st = mmspcl_gemm_f32_ws(0, 1, L, L, hd, dctx + o, H, v + o, H, dp, L, 0, work, nw))) return st;   /* dctx V^T */
    for (i = 0; i < L; i++) {
        const float *p = probs + (size_t)i * L;
        float *dpi = dp + (size_t)i * L, *pmi = pm + (size_t)i * L;
        double s = 0.0;
        for (j0 = 0; j0 < L; j0 += MMSPCL__RT_MCHUNK) {
            const int n = L - j0 < MMSPCL__RT_MCHUNK ? L - j0 : MMSPCL__RT_MCHUNK;
            mmspcl__rt_amask(mk, dr, i, j0, n, L);
            for (j = j0; j < j0 + n; j++) {
                dpi[j] *= mk[j - j0];
                pmi[j] = p[j] * mk[j - j0];
                s += (double)p[j] * dpi[j];
            }
        }
        for (j = 0; j < L; j++) dpi[j] = p[j] * (dpi[j] - (float)s) * scale;   /* dS */
    }
    if ((st = mmspcl_gemm_f32_ws(1, 0, L, hd, L, pm, L, dctx + o, H, dv + o, H, 0, work, nw)) ||
        (st = mmspcl_gemm_f32_ws(0, 0, L, hd, L, dp, L, k + o, H, dq + o, H, 0, work, nw)) ||
        (st = mmspcl_gemm_f32_ws(1, 0, L, hd, L, dp, L, q + o, H, dk + o, H, 0, work, nw)))
        return st;
    return MMSPCL_OK;
}

/* x [T][H] (packed, the last forward's sequences) *= the dropout mask of site (nothing when the
   forward has no dropout or p is 0) */
static void mmspcl__rt_drop_rows(const mmspcl_roberta_train *m, float *x, uint32_t site, float p) {
    const int H = m->cfg.hidden_size;
    int b;
    if (!m->fwd_dropout || !(p > 0.0f)) return;
    MMSPCL__OMP_FOR
    for (b = 0; b < m->batch; b++) {
        const uint64_t r = (uint64_t)(m->fwd_row0 + b) * (uint64_t)m->max_seq;
        float mk[MMSPCL__RT_MCHUNK];
        int i, c, c0;
        for (i = 0; i < m->lens[b]; i++) {
            float *xr = x + (size_t)(m->starts[b] + i) * H;
            for (c0 = 0; c0 < H; c0 += MMSPCL__RT_MCHUNK) {
                const int n = H - c0 < MMSPCL__RT_MCHUNK ? H - c0 : MMSPCL__RT_MCHUNK;
                mmspcl__rt_mask_row(mk, m->fwd_key, site, (r + (uint64_t)i) * (uint64_t)H + (uint64_t)c0, n, p, 1);
                for (c = 0; c < n; c++) xr[c0 + c] *= mk[c];
            }
        }
    }
}

static void mmspcl__rt_adrop_set(mmspcl__rt_adrop *d, const mmspcl_roberta_train *m, int b, int h, int l) {
    d->p = m->fwd_dropout ? m->dropout_attn : 0.0f;
    d->key = m->fwd_key;
    d->base = ((uint64_t)(m->fwd_row0 + b) * (uint64_t)m->cfg.num_heads + (uint64_t)h) * (uint64_t)m->max_seq * (uint64_t)m->max_seq;
    d->site = 1 + 3 * (uint32_t)l;
}

void mmspcl_roberta_train_freeze(mmspcl_roberta_train *m, int n_layers) {
    char pre[64];
    int t, l;
    if (n_layers < 0) n_layers = 0;
    if (n_layers > m->cfg.num_layers) n_layers = m->cfg.num_layers;
    m->frozen_layers = n_layers;
    for (t = 0; t < m->P.n_info; t++) {
        mmspcl_param_info *pi = &m->P.info[t];
        pi->frozen = 0;
        if (n_layers > 0 && !strncmp(pi->name, "embeddings.", 11)) pi->frozen = 1;
        for (l = 0; l < n_layers; l++) {
            snprintf(pre, sizeof pre, "encoder.layer.%d.", l);
            if (!strncmp(pi->name, pre, strlen(pre))) pi->frozen = 1;
        }
    }
}

/* probs offset of sequence b: num_heads * sum of L^2 before it (fits: sum L^2 <= max_seq * T) */
static size_t mmspcl__rt_poff(const mmspcl_roberta_train *m, int b) {
    size_t o = 0;
    int i;
    for (i = 0; i < b; i++) o += (size_t)m->lens[i] * m->lens[i];
    return o * (size_t)m->cfg.num_heads;
}

mmspcl_status mmspcl_roberta_train_forward(mmspcl_roberta_train *m, const int32_t *ids, const int *lengths, int batch, int seq,
                                mmspcl_error *err) {
    const mmspcl_roberta_config *c = &m->cfg;
    const int H = c->hidden_size, I = c->intermediate_size, nh = c->num_heads, hd = H / nh;
    const float *w = m->w;
    float *x;
    int b, t, T = 0, l, task;
    size_t *poff;
    mmspcl_status st;
    if (batch < 1 || seq < 1 || batch > m->max_tokens) return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "rt_forward: empty or oversized batch");
    for (b = 0; b < batch; b++) {
        if (lengths[b] < 1 || lengths[b] > seq || lengths[b] > m->max_seq)
            return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "rt_forward: sequence %d has length %d (1..%d allowed)", b, lengths[b],
                                seq < m->max_seq ? seq : m->max_seq);
        for (t = 0; t < lengths[b]; t++)
            if (ids[(size_t)b * seq + t] < 0 || ids[(size_t)b * seq + t] >= c->vocab_size)
                return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "rt_forward: token id %d at [%d][%d] is outside the vocabulary (%d)",
                                    ids[(size_t)b * seq + t], b, t, c->vocab_size);
        T += lengths[b];
        if (T > m->max_tokens)
            return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "rt_forward: more than the %d tokens the trainer was created for", m->max_tokens);
    }
    m->T = T;
    m->batch = batch;
    for (b = 0, T = 0; b < batch; b++) {
        int pos = c->pad_id;
        m->starts[b] = T;
        m->lens[b] = lengths[b];
        for (t = 0; t < lengths[b]; t++, T++) {
            int32_t id = ids[(size_t)b * seq + t];
            m->tok[T] = id;
            m->posid[T] = id != c->pad_id ? ++pos : c->pad_id;
        }
    }
    memset(m->g, 0, sizeof(float) * m->P.n);
    /* embeddings -> LayerNorm; the sum goes through the layer-0 output buffer as scratch */
    x = mmspcl__rt_layer_cache(m, 0).h[MMSPCL__RT_XOUT];
    for (t = 0; t < T; t++) {
        const float *we = w + m->word + (size_t)m->tok[t] * H, *pe = w + m->pos + (size_t)m->posid[t] * H,
                    *te = w + m->type;
        float *row = x + (size_t)t * H;
        int i;
        for (i = 0; i < H; i++) row[i] = 0.0f;
        for (i = 0; i < H; i++) row[i] += we[i];
        for (i = 0; i < H; i++) row[i] += pe[i];
        for (i = 0; i < H; i++) row[i] += te[i];
    }
    mmspcl__rt_ln(MMSPCL__RT_X0(m), x, w + m->eln_g, w + m->eln_b, T, H, c->layer_norm_eps, MMSPCL__RT_XHAT0(m),
                  MMSPCL__RT_INV0(m));
    m->fwd_dropout = m->train_mode && (m->dropout_hidden > 0.0f || m->dropout_attn > 0.0f);
    m->fwd_key = m->dropout_key;
    m->fwd_row0 = m->dropout_row0;
    mmspcl__rt_drop_rows(m, MMSPCL__RT_X0(m), 0, m->dropout_hidden);
    poff = (size_t *)MMSPCL_MALLOC(sizeof(size_t) * (size_t)batch);
    if (!poff) return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "rt_forward: out of memory");
    for (b = 0; b < batch; b++) poff[b] = mmspcl__rt_poff(m, b);
    x = MMSPCL__RT_X0(m);
    for (l = 0; l < c->num_layers; l++) {
        const mmspcl_roberta_train_layer *L = &m->L[l];
        mmspcl__rt_lc lc = mmspcl__rt_layer_cache(m, l);
        float *q = lc.h[MMSPCL__RT_Q], *k = lc.h[MMSPCL__RT_K], *v = lc.h[MMSPCL__RT_V], *ctx = lc.h[MMSPCL__RT_CTX];
        float *h1 = lc.h[MMSPCL__RT_H1], *xo = lc.h[MMSPCL__RT_XOUT];
        size_t i, n;
        if ((st = mmspcl__rt_lin(q, x, T, H, w + L->wq, H, w + L->bq)) || (st = mmspcl__rt_lin(k, x, T, H, w + L->wk, H, w + L->bk)) ||
            (st = mmspcl__rt_lin(v, x, T, H, w + L->wv, H, w + L->bv)))
            goto fail;
        MMSPCL__OMP_FOR
        for (task = 0; task < batch * nh; task++) {
            const int bb = task / nh, h = task % nh;
            const size_t s0 = (size_t)m->starts[bb] * H, pb = poff[bb] + (size_t)h * m->lens[bb] * m->lens[bb];
            mmspcl__rt_adrop dr;
            mmspcl__rt_adrop_set(&dr, m, bb, h, l);
            mmspcl__rt_attn_fwd(q + s0, k + s0, v + s0, ctx + s0, lc.probs + pb, m->lens[bb], H, h, hd, &dr);
        }
        if ((st = mmspcl__rt_lin(h1, ctx, T, H, w + L->wo, H, w + L->bo))) goto fail;
        mmspcl__rt_drop_rows(m, h1, 2 + 3 * (uint32_t)l, m->dropout_hidden);
        n = (size_t)T * H;
        for (i = 0; i < n; i++) h1[i] += x[i];
        mmspcl__rt_ln(h1, h1, w + L->ln1_g, w + L->ln1_b, T, H, c->layer_norm_eps, lc.h[MMSPCL__RT_XH1], lc.inv1);
        if ((st = mmspcl__rt_lin(lc.f, h1, T, H, w + L->wi, I, w + L->bi))) goto fail;
        n = (size_t)T * I;
        for (i = 0; i < n; i++) lc.ga[i] = lc.f[i];
        mmspcl_gelu(lc.ga, n);
        if ((st = mmspcl__rt_lin(xo, lc.ga, T, I, w + L->wo2, H, w + L->bo2))) goto fail;
        mmspcl__rt_drop_rows(m, xo, 3 + 3 * (uint32_t)l, m->dropout_hidden);
        n = (size_t)T * H;
        for (i = 0; i < n; i++) xo[i] += h1[i];
        mmspcl__rt_ln(xo, xo, w + L->ln2_g, w + L->ln2_b, T, H, c->layer_norm_eps, lc.h[MMSPCL__RT_XH2], lc.inv2);
        x = xo;
    }
    MMSPCL_FREE(poff);
    m->out = x;
    return MMSPCL_OK;
fail:
    MMSPCL_FREE(poff);
    return mmspcl__t_fail(err, st, "rt_forward: layer %d failed (%s)", l, mmspcl_status_name(st));
}

static void mmspcl__rt_flush(mmspcl_roberta_train *m) {
    long i, n = (long)m->P.n;
    MMSPCL__OMP_FOR
    for (i = 0; i < n; i++) { m->P.g[i] += m->g[i]; m->g[i] = 0.0f; }
}

mmspcl_status mmspcl_roberta_train_backward(mmspcl_roberta_train *m, const float *dout, float *demb, mmspcl_error *err) {
    const mmspcl_roberta_config *c = &m->cfg;
    const int H = c->hidden_size, I = c->intermediate_size, nh = c->num_heads, hd = H / nh, T = m->T;
    const size_t TM = (size_t)m->max_tokens, LL = (size_t)m->max_seq * m->max_seq;
    float *dx = m->scratch, *dz = dx + TM * H, *dh = dz + TM * H, *dq = dh + TM * H, *dk = dq + TM * H,
          *dv = dk + TM * H, *dctx = dv + TM * H, *dI = dctx + TM * H, *attn_scr = mmspcl__rt_attn_scratch(m);
    const size_t per_thread = 2 * LL + m->work_attn;
    const int nthr = m->work_threads;   /* the scratch has room for these */
    size_t i, n = (size_t)T * H, *poff;
    int l, task, b;
    mmspcl_status st = MMSPCL_OK;
    (void)i;
    poff = (size_t *)MMSPCL_MALLOC(sizeof(size_t) * (size_t)m->batch);
    if (!poff) return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "rt_backward: out of memory");
    for (b = 0; b < m->batch; b++) poff[b] = mmspcl__rt_poff(m, b);
    memcpy(dx, dout, sizeof(float) * n);
    for (l = c->num_layers - 1; l >= m->frozen_layers; l--) {
        const mmspcl_roberta_train_layer *L = &m->L[l];
        mmspcl__rt_lc lc = mmspcl__rt_layer_cache(m, l);
        const float *xin = l ? mmspcl__rt_layer_cache(m, l - 1).h[MMSPCL__RT_XOUT] : MMSPCL__RT_X0(m);
        const float *h1 = lc.h[MMSPCL__RT_H1];
        const float *dzm = dz;   /* dz through the dropout mask of the dense output (dq is free here) */
        mmspcl_status ast = MMSPCL_OK;
        /* x_out = LN2(h1 + dropout(FFN(h1))) */
        mmspcl__rt_ln_bwd(m, dz, dx, lc.h[MMSPCL__RT_XH2], lc.inv2, L->ln2_g, L->ln2_b, T, H);
        if (m->fwd_dropout && m->dropout_hidden > 0.0f) {
            memcpy(dq, dz, sizeof(float) * n);
            mmspcl__rt_drop_rows(m, dq, 3 + 3 * (uint32_t)l, m->dropout_hidden);
            dzm = dq;
        }
        if ((st = mmspcl__rt_lin_bwd(m, lc.ga, T, I, L->wo2, H, L->bo2, dzm, dI, 0))) break;
        mmspcl__rt_gelu_bwd(dI, lc.f, (size_t)T * I);
        memcpy(dh, dz, sizeof(float) * n);                 /* residual */
        if ((st = mmspcl__rt_lin_bwd(m, h1, T, H, L->wi, I, L->bi, dI, dh, 1))) break;
        /* h1 = LN1(x_in + dropout(Wo ctx)) */
        mmspcl__rt_ln_bwd(m, dz, dh, lc.h[MMSPCL__RT_XH1], lc.inv1, L->ln1_g, L->ln1_b, T, H);
        dzm = dz;
        if (m->fwd_dropout && m->dropout_hidden > 0.0f) {
            memcpy(dq, dz, sizeof(float) * n);
            mmspcl__rt_drop_rows(m, dq, 2 + 3 * (uint32_t)l, m->dropout_hidden);
            dzm = dq;
        }
        if ((st = mmspcl__rt_lin_bwd(m, lc.h[MMSPCL__RT_CTX], T, H, L->wo, H, L->bo, dzm, dctx, 0))) break;
        (void)nthr;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nthr)
#endif
        for (task = 0; task < m->batch * nh; task++) {
            const int bb = task / nh, h = task % nh;
            const size_t s0 = (size_t)m->starts[bb] * H, pb = poff[bb] + (size_t)h * m->lens[bb] * m->lens[bb];
            float *scr = attn_scr + (size_t)MMSPCL__THREAD_ID() * per_thread;
            mmspcl__rt_adrop dr;
            mmspcl_status e;
            mmspcl__rt_adrop_set(&dr, m, bb, h, l);
            e = mmspcl__rt_attn_bwd(lc.h[MMSPCL__RT_Q] + s0, lc.h[MMSPCL__RT_K] + s0, lc.h[MMSPCL__RT_V] + s0, lc.probs + pb,
                                    dctx + s0, dq + s0, dk + s0, dv + s0, scr, scr + LL, scr + 2 * LL, m->work_attn,
                                    m->lens[bb], H, h, hd, &dr);
            if (e) {
#ifdef _OPENMP
                MMSPCL__PRAGMA(omp critical)   /* without OpenMP: no pragma (-Wunknown-pragmas) */
#endif
                ast = e;
            }
        }
        if ((st = ast)) break;
        {   /* the lowest trainable layer of a frozen stack passes no gradient down */
            float *dxin = l == m->frozen_layers && l > 0 ? NULL : dx;
            memcpy(dx, dz, sizeof(float) * n);             /* residual */
            if ((st = mmspcl__rt_lin_bwd(m, xin, T, H, L->wq, H, L->bq, dq, dxin, 1)) ||
                (st = mmspcl__rt_lin_bwd(m, xin, T, H, L->wk, H, L->bk, dk, dxin, 1)) ||
                (st = mmspcl__rt_lin_bwd(m, xin, T, H, L->wv, H, L->bv, dv, dxin, 1)))
                break;
        }
    }
    MMSPCL_FREE(poff);
    if (st) return mmspcl__t_fail(err, st, "rt_backward: layer %d failed (%s)", l, mmspcl_status_name(st));
    if (m->frozen_layers > 0) {
        mmspcl__rt_flush(m);
        return MMSPCL_OK;
    }
    /* x0 = dropout(LN(embeddings)) */
    mmspcl__rt_drop_rows(m, dx, 0, m->dropout_hidden);
    mmspcl__rt_ln_bwd(m, dz, dx, MMSPCL__RT_XHAT0(m), MMSPCL__RT_INV0(m), m->eln_g, m->eln_b, T, H);
    if (demb) memcpy(demb, dz, sizeof(float) * n);
    {
        float *gw = m->g + m->word, *gp = m->g + m->pos, *gt = m->g + m->type;
        int t, j;
        for (t = 0; t < T; t++) {
            const float *d = dz + (size_t)t * H;
            float *a = gw + (size_t)m->tok[t] * H, *p = gp + (size_t)m->posid[t] * H;
            for (j = 0; j < H; j++) { a[j] += d[j]; p[j] += d[j]; gt[j] += d[j]; }
        }
    }
    mmspcl__rt_flush(m);
    return MMSPCL_OK;
}

double mmspcl_roberta_train_mlm_loss(mmspcl_roberta_train *m, const int *rows, const int32_t *target, int n, float *dout,
                          mmspcl_error *err) {
    const int H = m->cfg.hidden_size, V = m->cfg.vocab_size;
    const float *w = m->w;
    float *hs, *a, *ga, *y, *xh, *inv, *logits, *dy, *dga, *dh;
    double loss = 0.0;
    int i, j;
    size_t need;
    if (!m->mlm || n < 1) { mmspcl__t_fail(err, MMSPCL_ERR_ARG, "rt_mlm_loss: no MLM head or no rows"); return -1.0; }
    need = (size_t)n * (7 * (size_t)H + 1 + 2 * (size_t)V);
    hs = (float *)MMSPCL_MALLOC(sizeof(float) * need);
    if (!hs) { mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "rt_mlm_loss: out of memory"); return -1.0; }
    a = hs + (size_t)n * H; ga = a + (size_t)n * H; y = ga + (size_t)n * H; xh = y + (size_t)n * H;
    dga = xh + (size_t)n * H; dh = dga + (size_t)n * H; inv = dh + (size_t)n * H;
    logits = inv + n; dy = logits + (size_t)n * V;
    for (i = 0; i < n; i++) memcpy(hs + (size_t)i * H, m->out + (size_t)rows[i] * H, sizeof(float) * H);
    if (mmspcl__rt_lin(a, hs, n, H, w + m->lm_w, H, w + m->lm_b)) goto fail;
    memcpy(ga, a, sizeof(float) * (size_t)n * H);
    mmspcl_gelu(ga, (size_t)n * H);
    mmspcl__rt_ln(y, ga, w + m->lm_ln_g, w + m->lm_ln_b, n, H, m->cfg.layer_norm_eps, xh, inv);
    if (mmspcl__rt_lin(logits, y, n, H, w + m->word, V, w + m->lm_bias)) goto fail;
    for (i = 0; i < n; i++) {
        float *lg = logits + (size_t)i * V, *d = dy + (size_t)i * V, mx = lg[0];
        double sum = 0.0;
        for (j = 1; j < V; j++) if (lg[j] > mx) mx = lg[j];
        for (j = 0; j < V; j++) sum += exp((double)(lg[j] - mx));
        loss += log(sum) - (double)(lg[target[i]] - mx);
        for (j = 0; j < V; j++) d[j] = (float)(exp((double)(lg[j] - mx)) / sum / n);
        d[target[i]] -= 1.0f / (float)n;
    }
    if (mmspcl__rt_lin_bwd(m, y, n, H, m->word, V, m->lm_bias, dy, dh, 0)) goto fail;
    mmspcl__rt_ln_bwd(m, dga, dh, xh, inv, m->lm_ln_g, m->lm_ln_b, n, H);
    mmspcl__rt_gelu_bwd(dga, a, (size_t)n * H);
    if (mmspcl__rt_lin_bwd(m, hs, n, H, m->lm_w, H, m->lm_b, dga, dh, 0)) goto fail;
    memset(dout, 0, sizeof(float) * (size_t)m->T * H);
    for (i = 0; i < n; i++) {
        float *o = dout + (size_t)rows[i] * H;
        for (j = 0; j < H; j++) o[j] += dh[(size_t)i * H + j];
    }
    MMSPCL_FREE(hs);
    return loss / n;
fail:
    MMSPCL_FREE(hs);
    mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "rt_mlm_loss: a linear layer failed");
    return -1.0;
}

mmspcl_status mmspcl_roberta_train_write_config(const mmspcl_roberta_train *m, mmspcl_writer *wr, mmspcl_error *err) {
    const mmspcl_roberta_config *c = &m->cfg;
    if (mmspcl_writer_set_str(wr, "general.architecture", "roberta") ||
        mmspcl_writer_set_int(wr, "roberta.vocab_size", c->vocab_size) ||
        mmspcl_writer_set_int(wr, "roberta.hidden_size", c->hidden_size) ||
        mmspcl_writer_set_int(wr, "roberta.num_hidden_layers", c->num_layers) ||
        mmspcl_writer_set_int(wr, "roberta.num_attention_heads", c->num_heads) ||
        mmspcl_writer_set_int(wr, "roberta.intermediate_size", c->intermediate_size) ||
        mmspcl_writer_set_int(wr, "roberta.max_position_embeddings", c->max_positions) ||
        mmspcl_writer_set_int(wr, "roberta.type_vocab_size", c->type_vocab_size) ||
        mmspcl_writer_set_int(wr, "roberta.pad_token_id", c->pad_id) ||
        mmspcl_writer_set_float(wr, "roberta.layer_norm_eps", c->layer_norm_eps) ||
        mmspcl_writer_set_str(wr, "roberta.hidden_act", "gelu"))
        return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "rt_write_config: out of memory");
    return MMSPCL_OK;
}

mmspcl_status mmspcl_roberta_train_write_tensors(const mmspcl_roberta_train *m, mmspcl_writer *wr, mmspcl_dtype dtype,
                                      void **hold, mmspcl_error *err) {
    size_t total = 0, off = 0;
    unsigned char *buf;
    int t;
    mmspcl_status st;
    *hold = NULL;
    for (t = 0; t < m->P.n_info; t++) {
        const mmspcl_param_info *pi = &m->P.info[t];
        if (!strncmp(pi->name, "lm_head.", 8)) continue;
        total += pi->n * sizeof(float) + 64;
    }
    if (!(buf = (unsigned char *)MMSPCL_MALLOC(total + 1))) return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "rt_write: out of memory");
    *hold = buf;
    for (t = 0; t < m->P.n_info; t++) {
        const mmspcl_param_info *pi = &m->P.info[t];
        mmspcl_dtype dt = MMSPCL_F32;
        const float *src = m->w + pi->off;
        size_t bytes;
        int64_t r;
        if (!strncmp(pi->name, "lm_head.", 8)) continue;
        /* matrices of the layers are quantized; embedding tables too (rows are gathered) */
        if (pi->ndim == 2 && pi->shape[1] % 32 == 0) dt = dtype;
        bytes = mmspcl_dtype_row_size(dt, pi->shape[pi->ndim - 1]) * (size_t)(pi->ndim == 2 ? pi->shape[0] : 1);
        for (r = 0; r < (pi->ndim == 2 ? pi->shape[0] : 1); r++) {
            const int64_t cols = pi->shape[pi->ndim - 1];
            if ((st = mmspcl_quantize_row(dt, src + r * cols, buf + off + (size_t)r * mmspcl_dtype_row_size(dt, cols), cols)))
                return mmspcl__t_fail(err, st, "rt_write: cannot convert %s", pi->name);
        }
        if ((st = mmspcl_writer_add_tensor(wr, pi->name, dt, pi->ndim, pi->shape, buf + off, bytes, err))) return st;
        off += (bytes + 63) / 64 * 64;
    }
    return MMSPCL_OK;
}

/* ---------------------------------------------------------------------------------------------
   12. Sequence MulT, training twin
   ------------------------------------------------------------------------------------------ */
/* the arrays of one forward / backward over n samples, carved from f->act */
typedef struct mmspcl__t_ms {
    double *emb[3];            /* [n][T_m][d]: sqrt(d) proj(x_m) + pos */
    double **h, **bc;          /* pair p: h[p (L+1) + l] [n][T_a][d] (l = 0 is emb[a]); bc[p L + l] */
    double *cln[6], *cst[6];   /* pair p's final layer norm out [n][T_a][d] and stats */
    double **g, **mbc;         /* target s: g[s (Lm+1) + l] [n][T_a][Dm]; mbc[s Lm + l] */
    double *mln[3], *mst[3];   /* target s's final layer norm */
    double *z, *rc, *r;        /* [n][Z] pooled rows; output block cache; z + block */
    double *pd, *pm;           /* sinusoids [Tmax][d], [Tmax][Dm] */
    double *dz, *dr, *dg[2], *dh[2], *dcln, *demb[3];   /* backward */
} mmspcl__t_ms;

static size_t mmspcl__t_ms_carve(mmspcl_mult_seq_train *f, int n, const int T[3], double *base, mmspcl__t_ms *a) {
    const size_t N = (size_t)n, d = (size_t)f->cfg.d, Dm = (size_t)f->Dm, Z = (size_t)f->n_mod * Dm;
    const int L = f->cfg.n_layers, Lm = f->cfg.n_mem_layers;
    size_t used = 0, tmax = 1;
    int s, p, l;
#define MMSPCL__T_MS(ptr, count) do { size_t c_ = (count); (ptr) = base ? base + used : NULL; used += c_; } while (0)
    for (s = 0; s < 3; s++) { a->emb[s] = a->demb[s] = NULL; }
    a->h = f->ptr;
    a->bc = a->h + f->n_pairs * (L + 1);
    a->g = a->bc + f->n_pairs * L;
    a->mbc = a->g + f->n_mod * (Lm + 1);
    for (s = 0; s < f->n_mod; s++) if ((size_t)T[f->mods[s]] > tmax) tmax = (size_t)T[f->mods[s]];
    for (s = 0; s < f->n_mod; s++) MMSPCL__T_MS(a->emb[f->mods[s]], N * T[f->mods[s]] * d);
    for (p = 0; p < f->n_pairs; p++) {
        const int Ta = T[f->pa[p]], Tb = T[f->pb[p]];
        a->h[p * (L + 1)] = a->emb[f->pa[p]];
        for (l = 1; l <= L; l++) MMSPCL__T_MS(a->h[p * (L + 1) + l], N * Ta * d);
        for (l = 0; l < L; l++) MMSPCL__T_MS(a->bc[p * L + l], mmspcl_block_cache_size(&f->cross[p * L + l], n, Ta, Tb));
        MMSPCL__T_MS(a->cln[p], N * Ta * d);
        MMSPCL__T_MS(a->cst[p], N * Ta * 2);
    }
    for (s = 0; s < f->n_mod; s++) {
        const int Ta = T[f->mods[s]];
        for (l = 0; l <= Lm; l++) MMSPCL__T_MS(a->g[s * (Lm + 1) + l], N * Ta * Dm);
        for (l = 0; l < Lm; l++) MMSPCL__T_MS(a->mbc[s * Lm + l], mmspcl_block_cache_size(&f->mem[s * Lm + l], n, Ta, Ta));
        MMSPCL__T_MS(a->mln[s], N * Ta * Dm);
        MMSPCL__T_MS(a->mst[s], N * Ta * 2);
    }
    MMSPCL__T_MS(a->z, N * Z);
    MMSPCL__T_MS(a->rc, mmspcl_mlp_cache_size(&f->res, n));
    MMSPCL__T_MS(a->r, N * Z);
    MMSPCL__T_MS(a->pd, tmax * d);
    MMSPCL__T_MS(a->pm, tmax * Dm);
    MMSPCL__T_MS(a->dz, N * Z);
    MMSPCL__T_MS(a->dr, N * Z);
    MMSPCL__T_MS(a->dg[0], N * tmax * Dm);
    MMSPCL__T_MS(a->dg[1], N * tmax * Dm);
    MMSPCL__T_MS(a->dh[0], N * tmax * d);
    MMSPCL__T_MS(a->dh[1], N * tmax * d);
    MMSPCL__T_MS(a->dcln, N * tmax * d);
    for (s = 0; s < f->n_mod; s++) MMSPCL__T_MS(a->demb[f->mods[s]], N * T[f->mods[s]] * d);
#undef MMSPCL__T_MS
    return used;
}

void mmspcl_mult_seq_train_free(mmspcl_mult_seq_train *f) {
    int m;
    MMSPCL_FREE(f->cross); MMSPCL_FREE(f->mem); MMSPCL_FREE(f->act); MMSPCL_FREE(f->ptr);
    for (m = 0; m < 3; m++) MMSPCL_FREE(f->mask[m]);
    memset(f, 0, sizeof *f);
}

/* MulT's init of a layer's Linear: xavier-uniform over [fan_out][in] (fan_out: the rows of the
   tensor it is cut from), bias 0 */
static void mmspcl__t_ms_xavier(mmspcl_params *P, const mmspcl_lin *l, int fan_out, mmspcl_rng *rng) {
    const double bound = sqrt(6.0 / (double)(l->in + fan_out));
    size_t i;
    for (i = 0; i < (size_t)l->in * l->out; i++) P->w[l->w + i] = (2.0 * mmspcl_rng_uniform(rng) - 1.0) * bound;
    for (i = 0; i < (size_t)l->out; i++) P->w[l->b + i] = 0.0;
}

/* one MulT layer (a block with ONE layer norm for queries and keys/values, ReLU FFN of 4 D) */
static void mmspcl__t_ms_layer(mmspcl_block *b, mmspcl_params *P, const char *name, int D, int H, int cross,
                               double dropout, mmspcl_rng *rng) {
    mmspcl_block_create(b, P, name, D, H, 4 * D, MMSPCL_ACT_RELU, 0, dropout, rng);
    if (P->oom) return;
    b->cross = cross;       /* created as a self layer: no ln_kv tensor; keys share ln_q */
    b->ln_kv = b->ln_q;
    mmspcl__t_ms_xavier(P, &b->q, 3 * D, rng);
    mmspcl__t_ms_xavier(P, &b->k, 3 * D, rng);
    mmspcl__t_ms_xavier(P, &b->v, 3 * D, rng);
    mmspcl__t_ms_xavier(P, &b->o, D, rng);
    mmspcl__t_ms_xavier(P, &b->ff.fc1, 4 * D, rng);
    mmspcl__t_ms_xavier(P, &b->ff.fc2, D, rng);
}

static mmspcl_status mmspcl__t_ms_check(const mmspcl_mult_seq_cfg *c, mmspcl_error *err) {
    int m, present = 0;
    for (m = 0; m < 3; m++) {
        if (c->dims[m] < 0) return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "mult_seq: modality %s has width %d", mmspcl__t_mod[m], c->dims[m]);
        present += c->dims[m] > 0;
    }
    if (present < 2) return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "mult_seq: %d modalities (needs 2 or 3)", present);
    if (c->d < 4 || c->n_heads < 1 || c->d % c->n_heads || c->n_layers < 1 || c->n_mem_layers < 0 || c->out_dim < 1 ||
        (c->pool != MMSPCL_POOL_LAST && c->pool != MMSPCL_POOL_MEAN))
        return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "mult_seq: d %d (>= 4), %d heads (dividing d), %d cross and %d memory layers, out_dim %d, pool %d",
                              c->d, c->n_heads, c->n_layers, c->n_mem_layers, c->out_dim, c->pool);
    return MMSPCL_OK;
}

mmspcl_status mmspcl_mult_seq_train_create(mmspcl_mult_seq_train *f, mmspcl_params *P, const char *prefix,
                                           const mmspcl_mult_seq_cfg *cfg, double relu_dropout,
                                           double out_dropout, mmspcl_rng *rng, mmspcl_error *err) {
    char name[240];
    int a, b, s, p, l, L, Lm, Z;
    mmspcl_status st;
    memset(f, 0, sizeof *f);
    if ((st = mmspcl__t_ms_check(cfg, err))) return st;
    f->cfg = *cfg; f->relu_dropout = relu_dropout; f->out_dropout = out_dropout;
    snprintf(f->prefix, sizeof f->prefix, "%s", prefix);
    for (a = 0; a < 3; a++) if (cfg->dims[a] > 0) f->mods[f->n_mod++] = a;
    for (a = 0; a < f->n_mod; a++)
        for (b = 0; b < f->n_mod; b++)
            if (a != b) { f->pa[f->n_pairs] = f->mods[a]; f->pb[f->n_pairs] = f->mods[b]; f->n_pairs++; }
    f->Dm = (f->n_mod - 1) * cfg->d;
    L = cfg->n_layers; Lm = cfg->n_mem_layers; Z = f->n_mod * f->Dm;
    f->cross = (mmspcl_block *)MMSPCL_MALLOC(sizeof(mmspcl_block) * (size_t)f->n_pairs * L);
    f->mem = (mmspcl_block *)MMSPCL_MALLOC(sizeof(mmspcl_block) * (size_t)(f->n_mod * Lm + 1));
    f->ptr = (double **)MMSPCL_MALLOC(sizeof(double *) * (size_t)(f->n_pairs * (2 * L + 1) + f->n_mod * (2 * Lm + 1)));
    if (!f->cross || !f->mem || !f->ptr) { mmspcl_mult_seq_train_free(f); return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "mult_seq: out of memory"); }
    for (s = 0; s < f->n_mod; s++) {
        const mmspcl_param_info *pi;
        snprintf(name, sizeof name, "%s.proj.%s", prefix, mmspcl__t_mod[f->mods[s]]);
        mmspcl_lin_create(&f->in_proj[f->mods[s]], P, name, cfg->dims[f->mods[s]], cfg->d, rng);
        if (P->oom) break;
        mmspcl__t_zero(P->w + f->in_proj[f->mods[s]].b, (size_t)cfg->d);   /* Conv1d(bias=False) */
        snprintf(name, sizeof name, "%s.proj.%s.bias", prefix, mmspcl__t_mod[f->mods[s]]);
        if ((pi = mmspcl_params_find(P, name)) != NULL) P->info[pi - P->info].frozen = 1;
    }
    for (p = 0; p < f->n_pairs && !P->oom; p++) {
        for (l = 0; l < L; l++) {
            snprintf(name, sizeof name, "%s.%s_%s.layer.%d", prefix, mmspcl__t_mod[f->pa[p]], mmspcl__t_mod[f->pb[p]], l);
            mmspcl__t_ms_layer(&f->cross[p * L + l], P, name, cfg->d, cfg->n_heads, 1, relu_dropout, rng);
        }
        snprintf(name, sizeof name, "%s.%s_%s.ln", prefix, mmspcl__t_mod[f->pa[p]], mmspcl__t_mod[f->pb[p]]);
        mmspcl_ln_create(&f->cross_ln[p], P, name, cfg->d);
    }
    for (s = 0; s < f->n_mod && !P->oom; s++) {
        for (l = 0; l < Lm; l++) {
            snprintf(name, sizeof name, "%s.%s_mem.layer.%d", prefix, mmspcl__t_mod[f->mods[s]], l);
            mmspcl__t_ms_layer(&f->mem[s * Lm + l], P, name, f->Dm, cfg->n_heads, 0, relu_dropout, rng);
        }
        snprintf(name, sizeof name, "%s.%s_mem.ln", prefix, mmspcl__t_mod[f->mods[s]]);
        mmspcl_ln_create(&f->mem_ln[s], P, name, f->Dm);
    }
    snprintf(name, sizeof name, "%s.res", prefix);
    mmspcl_mlp_create(&f->res, P, name, Z, Z, Z, MMSPCL_ACT_RELU, out_dropout, rng);
    snprintf(name, sizeof name, "%s.out", prefix);
    mmspcl_lin_create(&f->out, P, name, Z, cfg->out_dim, rng);
    if (P->oom) { mmspcl_mult_seq_train_free(f); return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "mult_seq: out of memory"); }
    return MMSPCL_OK;
}

/* masks from lengths (checked), buffers for n samples of T steps */
static mmspcl_status mmspcl__t_ms_prepare(mmspcl_mult_seq_train *f, const double *const x[3], const int T[3],
                                          const int *const lens[3], int n, mmspcl__t_ms *a, mmspcl_error *err) {
    size_t need;
    int s, i, t;
    for (s = 0; s < f->n_mod; s++) {
        const int m = f->mods[s];
        const size_t nm = (size_t)n * (T[m] > 0 ? T[m] : 1);
        if (!x[m] || T[m] < 1) return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "mult_seq: modality %s has no input (steps %d)", mmspcl__t_mod[m], T[m]);
        if (nm > f->mask_cap[m]) {
            unsigned char *q = (unsigned char *)MMSPCL_REALLOC(f->mask[m], nm);
            if (!q) return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "mult_seq: out of memory for masks");
            f->mask[m] = q; f->mask_cap[m] = nm;
        }
        for (i = 0; i < n; i++) {
            const int len = lens && lens[m] ? lens[m][i] : T[m];
            if (len < 1 || len > T[m]) return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "mult_seq: sample %d of %s has length %d (steps 1..%d)", i, mmspcl__t_mod[m], len, T[m]);
            for (t = 0; t < T[m]; t++) f->mask[m][(size_t)i * T[m] + t] = t < len;
        }
    }
    need = mmspcl__t_ms_carve(f, n, T, NULL, a);
    if (need > f->act_cap) {
        double *q = (double *)MMSPCL_REALLOC(f->act, sizeof(double) * need);
        if (!q) return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "mult_seq: out of memory for %zu activations", need);
        f->act = q; f->act_cap = need;
    }
    mmspcl__t_ms_carve(f, n, T, f->act, a);
    f->n = n;
    for (s = 0; s < 3; s++) f->T[s] = T[s];
    return MMSPCL_OK;
}

/* target s, forward: its pairs' encoders, memory encoder, pooled row into z */
static void mmspcl__t_ms_target_forward(mmspcl_mult_seq_train *f, const mmspcl_params *P, int s, mmspcl__t_ms *a,
                                        mmspcl_rng *rng) {
    const int d = f->cfg.d, Dm = f->Dm, tg = f->mods[s], Ta = f->T[tg], n = f->n, L = f->cfg.n_layers;
    const int Lm = f->cfg.n_mem_layers, Z = f->n_mod * Dm;
    const double scm = sqrt((double)Dm);
    double *g0 = a->g[s * (Lm + 1)], *gl;
    int k, l, i, t, j;
    for (k = 0; k < f->n_mod - 1; k++) {
        const int p = s * (f->n_mod - 1) + k, src = f->pb[p];
        for (l = 0; l < L; l++)
            mmspcl_block_forward(P, &f->cross[p * L + l], a->h[p * (L + 1) + l], a->h[p * (L + 1) + l + 1], n, Ta,
                                 a->emb[src], f->T[src], f->mask[src], a->bc[p * L + l], rng);
        mmspcl_ln_forward(P, &f->cross_ln[p], a->h[p * (L + 1) + L], a->cln[p], a->cst[p], n * Ta);
        for (i = 0; i < n; i++)
            for (t = 0; t < Ta; t++)
                for (j = 0; j < d; j++)
                    g0[((size_t)i * Ta + t) * Dm + k * d + j] = scm * a->cln[p][((size_t)i * Ta + t) * d + j] + a->pm[(size_t)t * Dm + k * d + j];
    }
    for (l = 0; l < Lm; l++)
        mmspcl_block_forward(P, &f->mem[s * Lm + l], a->g[s * (Lm + 1) + l], a->g[s * (Lm + 1) + l + 1], n, Ta,
                             NULL, 0, f->mask[tg], a->mbc[s * Lm + l], rng);
    gl = a->g[s * (Lm + 1) + Lm];
    mmspcl_ln_forward(P, &f->mem_ln[s], gl, a->mln[s], a->mst[s], n * Ta);
    for (i = 0; i < n; i++) {
        const unsigned char *mk = f->mask[tg] + (size_t)i * Ta;
        const double *src = a->mln[s] + (size_t)i * Ta * Dm;
        double *o = a->z + (size_t)i * Z + (size_t)s * Dm;
        int len = 0;
        for (t = 0; t < Ta; t++) len += mk[t] != 0;
        if (f->cfg.pool == MMSPCL_POOL_LAST) { memcpy(o, src + (size_t)(len - 1) * Dm, sizeof(double) * (size_t)Dm); continue; }
        for (j = 0; j < Dm; j++) o[j] = 0.0;
        for (t = 0; t < len; t++) for (j = 0; j < Dm; j++) o[j] += src[(size_t)t * Dm + j] / len;
    }
}

mmspcl_status mmspcl_mult_seq_train_forward(mmspcl_mult_seq_train *f, const mmspcl_params *P,
                                            const double *const x[3], const int T[3],
                                            const int *const lens[3], int n, double *y, mmspcl_rng *rng,
                                            mmspcl_error *err) {
    const int d = f->cfg.d, Z = f->n_mod * f->Dm;
    const double sc = sqrt((double)d);
    mmspcl__t_ms a;
    mmspcl_status st;
    int s, tmax = 1;
    size_t q, i;
    if ((st = mmspcl__t_ms_prepare(f, x, T, lens, n, &a, err))) return st;
    for (s = 0; s < f->n_mod; s++) if (T[f->mods[s]] > tmax) tmax = T[f->mods[s]];
    mmspcl_sinusoids(a.pd, tmax, d);
    mmspcl_sinusoids(a.pm, tmax, f->Dm);
    for (s = 0; s < f->n_mod; s++) {
        const int m = f->mods[s];
        const size_t per = (size_t)T[m] * d;
        mmspcl_lin_forward(P, &f->in_proj[m], x[m], a.emb[m], n * T[m]);
        for (i = 0; i < (size_t)n; i++)
            for (q = 0; q < per; q++) a.emb[m][i * per + q] = sc * a.emb[m][i * per + q] + a.pd[q];
    }
    for (s = 0; s < f->n_mod; s++) mmspcl__t_ms_target_forward(f, P, s, &a, rng);
    /* z + proj2(dropout(ReLU(proj1 z))), then out */
    mmspcl_mlp_forward(P, &f->res, a.z, a.r, n, a.rc, rng);
    for (q = 0; q < (size_t)n * Z; q++) a.r[q] += a.z[q];
    mmspcl_lin_forward(P, &f->out, a.r, y, n);
    return MMSPCL_OK;
}

/* target s, backward from dz: the memory encoder, then each pair's encoder into demb */
static void mmspcl__t_ms_target_backward(mmspcl_mult_seq_train *f, mmspcl_params *P, int s, mmspcl__t_ms *a) {
    const int d = f->cfg.d, Dm = f->Dm, tg = f->mods[s], Ta = f->T[tg], n = f->n, L = f->cfg.n_layers;
    const int Lm = f->cfg.n_mem_layers, Z = f->n_mod * Dm;
    const size_t ng = (size_t)n * Ta * Dm, nh = (size_t)n * Ta * d;
    const double scm = sqrt((double)Dm);
    double *dg = a->dg[0], *dprev = a->dg[1], *dmln = a->dg[1], *tt;
    int k, l, i, t, j;
    /* pooling: into the final layer norm's output */
    mmspcl__t_zero(dmln, ng);
    for (i = 0; i < n; i++) {
        const unsigned char *mk = f->mask[tg] + (size_t)i * Ta;
        const double *dzi = a->dz + (size_t)i * Z + (size_t)s * Dm;
        int len = 0;
        for (t = 0; t < Ta; t++) len += mk[t] != 0;
        for (t = 0; t < len; t++) {
            if (f->cfg.pool == MMSPCL_POOL_LAST && t != len - 1) continue;
            for (j = 0; j < Dm; j++)
                dmln[((size_t)i * Ta + t) * Dm + j] = f->cfg.pool == MMSPCL_POOL_LAST ? dzi[j] : dzi[j] / len;
        }
    }
    mmspcl__t_zero(dg, ng);
    mmspcl_ln_backward(P, &f->mem_ln[s], a->g[s * (Lm + 1) + Lm], a->mst[s], dmln, dg, n * Ta);
    for (l = Lm - 1; l >= 0; l--) {
        mmspcl__t_zero(dprev, ng);
        mmspcl_block_backward(P, &f->mem[s * Lm + l], a->g[s * (Lm + 1) + l], n, Ta, NULL, 0, a->mbc[s * Lm + l], dg, dprev, NULL);
        tt = dg; dg = dprev; dprev = tt;
    }
    for (k = 0; k < f->n_mod - 1; k++) {
        const int p = s * (f->n_mod - 1) + k, src = f->pb[p];
        double *dh = a->dh[0], *dhp = a->dh[1];
        for (i = 0; i < n * Ta; i++)
            for (j = 0; j < d; j++) a->dcln[(size_t)i * d + j] = scm * dg[(size_t)i * Dm + k * d + j];
        mmspcl__t_zero(dh, nh);
        mmspcl_ln_backward(P, &f->cross_ln[p], a->h[p * (L + 1) + L], a->cst[p], a->dcln, dh, n * Ta);
        for (l = L - 1; l >= 0; l--) {
            mmspcl__t_zero(dhp, nh);
            mmspcl_block_backward(P, &f->cross[p * L + l], a->h[p * (L + 1) + l], n, Ta, a->emb[src], f->T[src],
                                  a->bc[p * L + l], dh, dhp, a->demb[src]);
            tt = dh; dh = dhp; dhp = tt;
        }
        for (i = 0; i < (int)nh; i++) a->demb[tg][i] += dh[i];
    }
}

void mmspcl_mult_seq_train_backward(mmspcl_mult_seq_train *f, mmspcl_params *P, const double *const x[3],
                                    const double *dy, double *const dx[3]) {
    const int n = f->n, d = f->cfg.d, Z = f->n_mod * f->Dm;
    const double sc = sqrt((double)d);
    mmspcl__t_ms a;
    size_t q;
    int s;
    mmspcl__t_ms_carve(f, n, f->T, f->act, &a);
    mmspcl__t_zero(a.dr, (size_t)n * Z);
    mmspcl_lin_backward(P, &f->out, a.r, dy, a.dr, n);
    memcpy(a.dz, a.dr, sizeof(double) * (size_t)n * Z);
    mmspcl_mlp_backward(P, &f->res, a.z, a.dr, a.dz, n, a.rc);
    for (s = 0; s < f->n_mod; s++) mmspcl__t_zero(a.demb[f->mods[s]], (size_t)n * f->T[f->mods[s]] * d);
    for (s = 0; s < f->n_mod; s++) mmspcl__t_ms_target_backward(f, P, s, &a);
    for (s = 0; s < f->n_mod; s++) {
        const int m = f->mods[s];
        double *de = a.demb[m];
        for (q = 0; q < (size_t)n * f->T[m] * d; q++) de[q] *= sc;
        mmspcl_lin_backward(P, &f->in_proj[m], x[m], de, dx ? dx[m] : NULL, n * f->T[m]);
        mmspcl__t_zero(P->g + f->in_proj[m].b, (size_t)d);   /* no bias: no gradient */
    }
}

mmspcl_status mmspcl_mult_seq_train_write_config(const mmspcl_mult_seq_train *f, mmspcl_writer *wr) {
    char key[200];
    int m, st = 0;
    const mmspcl_mult_seq_cfg *c = &f->cfg;
#define MMSPCL__T_MSKEY(k, v) do { snprintf(key, sizeof key, "%s.%s", f->prefix, k); st |= (int)mmspcl_writer_set_int(wr, key, (int64_t)(v)); } while (0)
    for (m = 0; m < 3; m++) {
        char k2[16];
        snprintf(k2, sizeof k2, "dim.%s", mmspcl__t_mod[m]);
        MMSPCL__T_MSKEY(k2, c->dims[m]);
    }
    MMSPCL__T_MSKEY("d", c->d); MMSPCL__T_MSKEY("n_heads", c->n_heads); MMSPCL__T_MSKEY("n_layers", c->n_layers);
    MMSPCL__T_MSKEY("n_mem_layers", c->n_mem_layers); MMSPCL__T_MSKEY("out_dim", c->out_dim); MMSPCL__T_MSKEY("pool", c->pool);
#undef MMSPCL__T_MSKEY
    return st ? MMSPCL_ERR_NOMEM : MMSPCL_OK;
}

#ifdef __cplusplus
}
#endif

#endif /* MMSPCL_TRAIN_IMPLEMENTATION_DONE */
#endif /* MMSPCL_TRAIN_IMPLEMENTATION */
