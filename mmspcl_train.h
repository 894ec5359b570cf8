/* mmspcl_train.h - training for MM-SPCL's heads in plain C: SPCL loss with prototype queues and
   curriculum, MSVE, cross-modal pruning, fusion heads, AdamW. Needs mmspcl.h.
   Public domain / MIT dual licence (see mmspcl.h).

   HOW TO INCLUDE
     #include "mmspcl.h"
     #include "mmspcl_train.h"               declarations, anywhere
     In exactly one C or C++ file:   #define MMSPCL_TRAIN_IMPLEMENTATION before the include.
     MMSPCL_IMPLEMENTATION may be in the same file or in another one (the library archive).

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
     cfg.hidden = 64; cfg.dropout = 0.1;                     (combos 0: all seven)
     mmspcl_msve_model_create(&M, &cfg, seed, &err);
     mmspcl_msve_train_defaults(&tc);                        (k = 2, AdamW 1e-3, clip 5, ...)
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
     Optimiser        mmspcl_grad_clip (global L2 norm, as torch.nn.utils.clip_grad_norm_),
                      mmspcl_adamw_step (decoupled weight decay, as torch.optim.AdamW),
                      mmspcl_lr_cosine (linear warm-up then cosine, as transformers'
                      get_cosine_schedule_with_warmup)
     Layers           mmspcl_lin (Linear), mmspcl_ln (LayerNorm), mmspcl_act_* (GELU erf, ReLU),
                      mmspcl_dropout_*, mmspcl_mlp, mmspcl_attn_* (multi-head scaled dot-product
                      core with key masks), mmspcl_block (pre-LN transformer layer, self- or
                      cross-attention), mmspcl_ce_loss (softmax cross-entropy, class weights)
     SPCL             mmspcl_spcl_loss (loss and gradient for given prototypes),
                      mmspcl_spcl (per-class queues and prototypes), mmspcl_spcl_step,
                      mmspcl_class_means, mmspcl_curriculum_difficulty / _select
     Pruning          mmspcl_prune_train_forward / _backward (double twin of mmspcl_prune_apply)
     Fusion heads     mmspcl_fusion: LINEAR (a), MULT (b), MBT (c); forward, backward, save
     Models           mmspcl_msve_model + mmspcl_msve_train (early stopping on validation
                      weighted F1); mmspcl_spcl_model (optional pruning + fusion head + linear
                      classifier) + mmspcl_spcl_train (SPCL loss, curriculum, nearest-prototype
                      validation, as caskcsg/SPCL's train.py)
     Checkpoints      mmspcl_msve_model_save / _load, mmspcl_spcl_model_save / _load: f32 weight
                      files that mmspcl.h's loaders run at inference; with_optim = 1 adds the
                      AdamW state so that training resumes where it stopped

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
     Prototypes carry no gradient. Queues: one per class, initialised with the class mean; each
     batch first pushes its (detached) embeddings, an over-full queue drops one entry chosen at
     random (the original shuffles and keeps the last pool_size: the same distribution); the
     prototype of a class is the mean of K distinct random entries, or the class mean while the
     queue holds fewer than K. Defaults: temperature 0.08, pool_size 512, K 64.
     Curriculum (util_methods.py / train.py): difficulty_i = d(z_i, mean of its class) /
     sum_c d(z_i, mean_c), d = (1 - cos) / 2 + 1e-8; samples sorted easy -> hard; at epoch e of E
     the sample of rank r (of n) is kept with probability st + (ed - st) r / (n - 1),
     st = 1 - e/E, ed = e/E. (The original also drops the sample with index 0 every epoch, a
     side effect of masking indices by multiplication; we do not.)
     mmspcl_spcl_train follows train.py: a new cosine schedule every epoch (warm-up in the first
     only), batches without the last partial one, validation by nearest class mean.

   CHECKPOINT NAMES (f32; prefix "P")
     MSVE    P.n_classes P.hidden P.act P.combos P.dim.{t,a,v} (ints); P.mean.{m} P.std.{m};
             P.{t,a,ta,v,tv,av,tav}.fc{1,2}.{weight,bias}            -> mmspcl_msve_load(w, "P")
     LINEAR  P.dim.{t,a,v} P.out_dim; P.proj.{weight,bias}           -> mmspcl_fuse_linear_load
     MULT    P.d_model n_heads n_cross n_self ff_mult out_dim act seq.{m} tok.{m};
             P.in.{m}.* P.pos.{m} P.{i}_{j}.layer.{l}.{ln_q,ln_kv,attn.{q,k,v,o},ln_ff,ff.fc1,ff.fc2}.*
             P.{i}_{j}.ln.* P.out.*                                  -> mmspcl_mult_load
     MBT     P.d_model n_heads n_layers fusion_start n_fusion ff_mult out_dim act seq.{m} tok.{m};
             P.in.{m}.* P.pos.{m} P.fusion_tokens P.{m}.layer.{l}.* P.{m}.ln.* P.out.*
                                                                     -> mmspcl_mbt_load
     SPCL model  spcl.kind spcl.n_classes spcl.prune.{base,mod,K}; spcl.fusion.* (one of the
             three above); spcl.classifier.{weight,bias}; spcl.protos [C][out_dim]
     With the optimiser state: adamw.step (int), adamw.m.NAME, adamw.v.NAME for every tensor.
*/
#ifndef MMSPCL_TRAIN_H
#define MMSPCL_TRAIN_H

#include "mmspcl.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
   Random numbers: xoshiro256** seeded through splitmix64. Same seed, same stream, every platform.
   ------------------------------------------------------------------------------------------ */
typedef struct mmspcl_rng { uint64_t s[4]; } mmspcl_rng;
void mmspcl_rng_seed(mmspcl_rng *r, uint64_t seed);
uint64_t mmspcl_rng_u64(mmspcl_rng *r);
double mmspcl_rng_uniform(mmspcl_rng *r);          /* [0, 1), 53 random bits */
double mmspcl_rng_normal(mmspcl_rng *r);           /* N(0, 1), Box-Muller */
int mmspcl_rng_int(mmspcl_rng *r, int n);          /* uniform in 0..n-1 (n >= 1), unbiased */
void mmspcl_rng_shuffle(mmspcl_rng *r, int *a, int n); /* Fisher-Yates */

/* ---------------------------------------------------------------------------------------------
   Parameters: one flat array per role, tensors registered by name.
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
    int decay;             /* 1: AdamW weight decay applies (Linear weights, embeddings) */
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
   Optimiser
   ------------------------------------------------------------------------------------------ */
typedef struct mmspcl_adamw_cfg { double beta1, beta2, eps, weight_decay; } mmspcl_adamw_cfg;
void mmspcl_adamw_defaults(mmspcl_adamw_cfg *c);   /* 0.9, 0.999, 1e-8, 0.01 */
/* L2 norm of all gradients; when max_norm > 0 and the norm exceeds it, gradients are scaled by
   max_norm / (norm + 1e-6). Returns the norm before clipping. */
double mmspcl_grad_clip(mmspcl_params *P, double max_norm);
/* One step, t = ++P->step:  w -= lr * wd * w  (tensors with decay);  m = b1 m + (1-b1) g;
   v = b2 v + (1-b2) g^2;  w -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps). */
void mmspcl_adamw_step(mmspcl_params *P, const mmspcl_adamw_cfg *c, double lr);
/* base * step/warmup during warm-up, then base * 0.5 (1 + cos(pi * progress)) */
double mmspcl_lr_cosine(int64_t step, int64_t warmup, int64_t total, double base);

/* ---------------------------------------------------------------------------------------------
   Layers (n = rows; x [n][in] row-major; caches sized by the _cache_size functions)
   ------------------------------------------------------------------------------------------ */
/* y = x W^T + b; W [out][in] ("NAME.weight", decayed), b [out] ("NAME.bias").
   Init as torch.nn.Linear: U(-1/sqrt(in), 1/sqrt(in)) for both. */
typedef struct mmspcl_lin { size_t w, b; int in, out; } mmspcl_lin;
void mmspcl_lin_create(mmspcl_lin *l, mmspcl_params *P, const char *name, int in, int out,
                       mmspcl_rng *rng);
void mmspcl_lin_forward(const mmspcl_params *P, const mmspcl_lin *l, const double *x, double *y, int n);
/* dW += dy^T x, db += sum dy, dx += dy W (dx may be NULL) */
void mmspcl_lin_backward(mmspcl_params *P, const mmspcl_lin *l, const double *x, const double *dy,
                         double *dx, int n);

/* y = (x - mean) / sqrt(var + eps) * g + b over each row; stats [n][2] = mean, 1/sqrt(var+eps) */
typedef struct mmspcl_ln { size_t g, b; int dim; double eps; } mmspcl_ln;
void mmspcl_ln_create(mmspcl_ln *l, mmspcl_params *P, const char *name, int dim);
void mmspcl_ln_forward(const mmspcl_params *P, const mmspcl_ln *l, const double *x, double *y,
                       double *stats, int n);
void mmspcl_ln_backward(mmspcl_params *P, const mmspcl_ln *l, const double *x, const double *stats,
                        const double *dy, double *dx, int n);

/* GELU (erf form) or ReLU, elementwise; backward: dx += act'(x) dy */
void mmspcl_act_forward(mmspcl_act act, const double *x, double *y, size_t n);
void mmspcl_act_backward(mmspcl_act act, const double *x, const double *dy, double *dx, size_t n);

/* Inverted dropout: mask[i] = 0 with probability p, else 1/(1-p), drawn from rng in index
   order (rng NULL or p == 0: mask = 1); y = x * mask. backward: dx += dy * mask. */
void mmspcl_dropout_forward(mmspcl_rng *rng, double p, const double *x, double *y, double *mask,
                            size_t n);
void mmspcl_dropout_backward(const double *mask, const double *dy, double *dx, size_t n);

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

/* Multi-head scaled dot-product attention core for nb sequences: q [nb][tq][D], k, v
   [nb][tk][D]; head h owns columns h*D/H .. (h+1)*D/H. kmask [nb][tk] (1 = attend; NULL = all).
   probs [nb][H][tq][tk] (cache), ctx [nb][tq][D]. A query with every key masked gets ctx = 0. */
void mmspcl_attn_forward(const double *q, const double *k, const double *v, int nb, int tq, int tk,
                         int D, int H, const unsigned char *kmask, double *probs, double *ctx);
void mmspcl_attn_backward(const double *q, const double *k, const double *v, int nb, int tq, int tk,
                          int D, int H, const double *probs, const double *dctx, double *dq,
                          double *dk, double *dv);

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

/* Softmax cross-entropy, mean weighted as torch's CrossEntropyLoss(weight=w, ignore_index<0):
   loss = sum_i w[y_i] (-log softmax(z_i)[y_i]) / sum_i w[y_i] over rows with y_i >= 0.
   class_w NULL: all 1. dlogits [n][C] (may be NULL) is WRITTEN (not accumulated). */
double mmspcl_ce_loss(const double *logits, const int *y, int n, int C, const double *class_w,
                      double *dlogits);

/* ---------------------------------------------------------------------------------------------
   SPCL loss, queues, prototypes, curriculum (equations in the top comment)
   ------------------------------------------------------------------------------------------ */
typedef struct mmspcl_spcl_stats { int anchors, active; double mean_anchor_loss; } mmspcl_spcl_stats;
/* Loss of the batch z [n][dim] (labels y, < 0 = ignored) against prototypes [C][dim].
   dz (may be NULL) += dloss/dz. anchor_loss [n] (may be NULL) receives each l_i (0 for
   ignored rows). */
mmspcl_status mmspcl_spcl_loss(const double *z, const int *y, int n, int dim, const double *protos,
                               int C, double temperature, double *loss, double *dz,
                               double *anchor_loss, mmspcl_spcl_stats *stats, mmspcl_error *err);

typedef struct mmspcl_spcl {
    int n_classes, dim, pool_size, K;
    double temperature;
    double *pool;          /* [C][pool_size + 1][dim] */
    int *len;              /* [C] */
    int *idx;              /* scratch [pool_size + 1] */
    double *centers;       /* [C][dim]: the class means the queues start from */
    double *protos;        /* [C][dim]: the prototypes of the last step */
    mmspcl_rng rng;
} mmspcl_spcl;
mmspcl_status mmspcl_spcl_init(mmspcl_spcl *S, int n_classes, int dim, int pool_size, int K,
                               double temperature, uint64_t seed, mmspcl_error *err);
void mmspcl_spcl_free(mmspcl_spcl *S);
/* Every queue restarts as [centers_c] (centers [C][dim]: the class means, once per epoch). */
void mmspcl_spcl_reset(mmspcl_spcl *S, const double *centers);
void mmspcl_spcl_push(mmspcl_spcl *S, const double *z, const int *y, int n);
void mmspcl_spcl_prototypes(mmspcl_spcl *S);
/* push, prototypes, loss (the order of the original's forward) */
mmspcl_status mmspcl_spcl_step(mmspcl_spcl *S, const double *z, const int *y, int n, double *loss,
                               double *dz, mmspcl_spcl_stats *stats, mmspcl_error *err);

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
   Cross-modal pruning, training twin (selection as mmspcl_prune_apply, in double)
   ------------------------------------------------------------------------------------------ */
/* pruned [n][dp]; kept [n][ceil(dp/K)] (required: the backward reads it) */
mmspcl_status mmspcl_prune_train_forward(const double *base, int db, const double *prune, int dp,
                                         int K, int n, double *pruned, unsigned char *kept,
                                         mmspcl_error *err);
/* dprune += dpruned on kept heads (the base's gradient through pruning is zero: the choice of
   heads is piecewise constant) */
void mmspcl_prune_train_backward(const unsigned char *kept, int dp, int K, int n,
                                 const double *dpruned, double *dprune);

/* ---------------------------------------------------------------------------------------------
   Fusion heads (a) linear, (b) MulT, (c) MBT: structure as mmspcl_fuse_linear / mmspcl_mult /
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
    size_t pos[3], fusion_tokens;
    mmspcl_block *blocks;                /* MULT [n_pairs][L], MBT [n_mod][L] */
    mmspcl_ln *final_ln;                 /* MULT [n_pairs], MBT [n_mod] */
    mmspcl_lin out_proj;
    /* activations of the last forward (grown as needed) */
    double *act;
    size_t act_cap, *off;
    int act_n;
} mmspcl_fusion;
mmspcl_status mmspcl_fusion_create(mmspcl_fusion *f, mmspcl_params *P, const char *prefix,
                                   const mmspcl_fusion_cfg *cfg, mmspcl_rng *rng, mmspcl_error *err);
void mmspcl_fusion_free(mmspcl_fusion *f);
/* rng: dropout (NULL = evaluation) */
mmspcl_status mmspcl_fusion_forward(mmspcl_fusion *f, const mmspcl_params *P, const double *const x[3],
                                    int n, double *y, mmspcl_rng *rng, mmspcl_error *err);
/* After a forward with the same x and n. dx[m] += dL/dx[m] (dx, or any entry, may be NULL). */
void mmspcl_fusion_backward(mmspcl_fusion *f, mmspcl_params *P, const double *const x[3], int n,
                            const double *dy, double *const dx[3]);
/* hyper-parameter keys "outer.PREFIX.key" (outer NULL or "": "PREFIX.key"); the tensors come
   from mmspcl_params_write with the same outer prefix */
mmspcl_status mmspcl_fusion_write_config(const mmspcl_fusion *f, mmspcl_writer *wr, const char *outer);

/* ---------------------------------------------------------------------------------------------
   Data sets of per-utterance features (float, as they come from files): x[m] [n][dims[m]]
   ------------------------------------------------------------------------------------------ */
typedef struct mmspcl_dataset { const float *x[3]; const int *y; int n; } mmspcl_dataset;
typedef void (*mmspcl_train_log_fn)(void *user, int epoch, double train_loss, double val_f1);
typedef struct mmspcl_train_report {
    int epochs_run, best_epoch, steps;
    double first_loss, last_loss;  /* mean training loss of the first / last epoch */
    double best_val_f1;            /* validation weighted F1 at best_epoch */
} mmspcl_train_report;

/* ---------------------------------------------------------------------------------------------
   MSVE: one MLP per enabled combination; training sums the logits of k sampled combinations
   per batch before softmax cross-entropy; inference sums all enabled ones.
   ------------------------------------------------------------------------------------------ */
typedef struct mmspcl_msve_cfg {
    int n_classes, dims[3], hidden;
    unsigned combos;       /* MMSPCL_COMBO bits (0: every combination of the present modalities) */
    mmspcl_act act;
    double dropout;
} mmspcl_msve_cfg;
typedef struct mmspcl_msve_model {
    mmspcl_msve_cfg cfg;
    mmspcl_params P;
    mmspcl_mlp mlp[8];
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
/* prefix.* as listed in the top comment; with_optim also stores the AdamW state */
mmspcl_status mmspcl_msve_model_save(const mmspcl_msve_model *M, const char *path, const char *prefix,
                                     int with_optim, mmspcl_error *err);
/* Rebuilds a model from a file written by mmspcl_msve_model_save (resume or fine-tune). */
mmspcl_status mmspcl_msve_model_load(mmspcl_msve_model *M, const mmspcl_weights *w, const char *prefix,
                                     mmspcl_error *err);

/* ---------------------------------------------------------------------------------------------
   SPCL model: optional cross-modal pruning -> fusion head -> embedding z; SPCL loss on z plus a
   linear classifier trained by cross-entropy on detached z (as the original's predictor), or
   cross-entropy alone through the whole head. Inference: nearest prototype (class means of the
   training embeddings) or the classifier.
   ------------------------------------------------------------------------------------------ */
typedef enum mmspcl_objective { MMSPCL_OBJ_SPCL = 0, MMSPCL_OBJ_CE = 1 } mmspcl_objective;
typedef struct mmspcl_spcl_model {
    int n_classes;
    int prune_base, prune_mod, prune_K;  /* modality indices 0..2, or prune_mod = -1: none */
    mmspcl_params P;
    mmspcl_fusion fusion;
    mmspcl_lin classifier;
    double *protos;                      /* [C][out_dim] */
    double *buf;
    size_t buf_cap;
} mmspcl_spcl_model;
mmspcl_status mmspcl_spcl_model_create(mmspcl_spcl_model *M, const mmspcl_fusion_cfg *fusion,
                                       int n_classes, int prune_base, int prune_mod, int prune_K,
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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* OpenMP: MMSPCL__T_PARALLEL(work) before a loop declares whether it is worth threads (about
   `work` multiply-adds); MMSPCL__T_OMP_FOR then splits the loop statically, or runs it on the
   calling thread. Starting threads for a few thousand flops costs more than it saves, much more
   on a busy machine. Results never depend on the thread count. */
#ifndef MMSPCL_TRAIN_MIN_PARALLEL_WORK
#define MMSPCL_TRAIN_MIN_PARALLEL_WORK 1e6
#endif
#ifdef _OPENMP
#include <omp.h>
#define MMSPCL__T_OMP_FOR _Pragma("omp parallel for schedule(static) if(mmspcl__t_par)")
#else
#define MMSPCL__T_OMP_FOR
#endif
#define MMSPCL__T_PARALLEL(work) const int mmspcl__t_par = (double)(work) >= MMSPCL_TRAIN_MIN_PARALLEL_WORK; (void)mmspcl__t_par

#ifndef MMSPCL_MALLOC
#define MMSPCL_MALLOC(sz) malloc(sz)
#define MMSPCL_REALLOC(p, sz) realloc(p, sz)
#define MMSPCL_FREE(p) free(p)
#endif

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
   Random numbers
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
   Parameters
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
   Optimiser
   ------------------------------------------------------------------------------------------ */
void mmspcl_adamw_defaults(mmspcl_adamw_cfg *c) {
    c->beta1 = 0.9; c->beta2 = 0.999; c->eps = 1e-8; c->weight_decay = 0.01;
}

#define MMSPCL__T_BLOCK 4096
/* sum of squares in fixed blocks (parallel), the block sums added in order: thread-independent */
static double mmspcl__t_sumsq(const double *x, size_t n) {
    const long nb = (long)((n + MMSPCL__T_BLOCK - 1) / MMSPCL__T_BLOCK);
    double *part = mmspcl__t_alloc((size_t)nb), total = 0.0;
    long b;
    if (!part) {
        size_t i;
        for (i = 0; i < n; i++) total += x[i] * x[i];
        return total;
    }
    MMSPCL__T_PARALLEL((double)n);
    MMSPCL__T_OMP_FOR
    for (b = 0; b < nb; b++) {
        size_t i, e = (size_t)(b + 1) * MMSPCL__T_BLOCK < n ? (size_t)(b + 1) * MMSPCL__T_BLOCK : n;
        double s = 0.0;
        for (i = (size_t)b * MMSPCL__T_BLOCK; i < e; i++) s += x[i] * x[i];
        part[b] = s;
    }
    for (b = 0; b < nb; b++) total += part[b];
    MMSPCL_FREE(part);
    return total;
}

double mmspcl_grad_clip(mmspcl_params *P, double max_norm) {
    double norm = sqrt(mmspcl__t_sumsq(P->g, P->n));
    if (max_norm > 0 && norm > max_norm) {
        const double c = max_norm / (norm + 1e-6);
        long i, n = (long)P->n;
        MMSPCL__T_PARALLEL((double)n);
        MMSPCL__T_OMP_FOR
        for (i = 0; i < n; i++) P->g[i] *= c;
    }
    return norm;
}

void mmspcl_adamw_step(mmspcl_params *P, const mmspcl_adamw_cfg *c, double lr) {
    double bc1, bc2;
    int t;
    P->step++;
    bc1 = 1.0 - pow(c->beta1, (double)P->step);
    bc2 = 1.0 - pow(c->beta2, (double)P->step);
    for (t = 0; t < P->n_info; t++) {
        const mmspcl_param_info *pi = &P->info[t];
        const double decay = pi->decay ? 1.0 - lr * c->weight_decay : 1.0;
        double *w = P->w + pi->off, *g = P->g + pi->off, *m = P->m + pi->off, *v = P->v + pi->off;
        long i, n = (long)pi->n;
        MMSPCL__T_PARALLEL(10.0 * (double)n);
        MMSPCL__T_OMP_FOR
        for (i = 0; i < n; i++) {
            w[i] *= decay;
            m[i] = c->beta1 * m[i] + (1.0 - c->beta1) * g[i];
            v[i] = c->beta2 * v[i] + (1.0 - c->beta2) * g[i] * g[i];
            w[i] -= lr * (m[i] / bc1) / (sqrt(v[i] / bc2) + c->eps);
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
   Linear: y[i][o] = b[o] + sum_c x[i][c] W[o][c]
   ------------------------------------------------------------------------------------------ */
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

/* ---------------------------------------------------------------------------------------------
   Layer norm: xh = (x - mean) * rstd, rstd = 1 / sqrt(var + eps) (biased var);  y = xh g + b
   backward: dg += dy xh; db += dy; dx = rstd (dxh - mean(dxh) - xh mean(dxh xh)), dxh = dy g
   ------------------------------------------------------------------------------------------ */
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

/* ---------------------------------------------------------------------------------------------
   Activations: GELU(x) = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), GELU'(x) = Phi(x) + x phi(x);
   ReLU(x) = max(x, 0), ReLU'(x) = [x > 0]
   ------------------------------------------------------------------------------------------ */
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

/* ---------------------------------------------------------------------------------------------
   Dropout (inverted)
   ------------------------------------------------------------------------------------------ */
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

/* ---------------------------------------------------------------------------------------------
   MLP: h = fc1 x; a = dropout(act(h)); y = fc2 a.   cache: h, a, mask, da, dh ([n][hidden] each)
   ------------------------------------------------------------------------------------------ */
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

/* ---------------------------------------------------------------------------------------------
   Attention core, one task per (sequence s, head h), dh = D / H, scale = 1 / sqrt(dh):
     a_ij = q_i . k_j * scale (masked keys: -inf);  p_i = softmax(a_i);  ctx_i = sum_j p_ij v_j
   backward:  dv_j += sum_i p_ij dctx_i;  dp_ij = dctx_i . v_j;
              da_ij = p_ij (dp_ij - sum_j' p_ij' dp_ij');
              dq_i += scale sum_j da_ij k_j;  dk_j += scale sum_i da_ij q_i
   ------------------------------------------------------------------------------------------ */
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

/* ---------------------------------------------------------------------------------------------
   Transformer block (pre-LN). Cache: forward values then backward scratch.
   ------------------------------------------------------------------------------------------ */
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

/* ---------------------------------------------------------------------------------------------
   Softmax cross-entropy with class weights:  loss = sum_i w_i (lse(z_i) - z_i[y_i]) / sum_i w_i,
   w_i = class_w[y_i];  dz_i = w_i (softmax(z_i) - onehot(y_i)) / sum_i w_i
   ------------------------------------------------------------------------------------------ */
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
   SPCL loss (see the top comment). cos(x, r) = x.r / (|x|' |r|'), |.|' = max(|.|, 1e-8):
     dcos/dx = r / (|x|' |r|') - cos x / (|x|' |x|)        (second term only when |x| > 1e-8)
   With e_a = exp(s_ia), T = pos + neg, prob = pos / T / (P + 1e-8), l = -log(prob + 1e-8):
     dl/ds_ia = -1/(prob + 1e-8) * e_a / (T^2 (P + 1e-8)) * (neg if a is a positive, -pos if not)
     ds_ia/dcos_ia = 1 / (2 temperature)
   ------------------------------------------------------------------------------------------ */
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

/* ---------------------------------------------------------------------------------------------
   Queues and prototypes
   ------------------------------------------------------------------------------------------ */
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
    mmspcl_spcl_push(S, z, y, n);
    mmspcl_spcl_prototypes(S);
    return mmspcl_spcl_loss(z, y, n, S->dim, S->protos, S->n_classes, S->temperature, loss, dz, NULL, stats, err);
}

/* ---------------------------------------------------------------------------------------------
   Class means and curriculum
   ------------------------------------------------------------------------------------------ */
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
   Cross-modal pruning, double twin. Selection exactly as mmspcl_prune_apply (same cosine code
   in double, so float inputs give the same heads).
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

/* ---------------------------------------------------------------------------------------------
   Fusion heads
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
        snprintf(name, sizeof name, "%s.fusion_tokens", prefix);
        sh[0] = cfg->n_fusion; sh[1] = D;
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
            mmspcl_ln_create(&f->final_ln[s], P, name, D);
        }
        snprintf(name, sizeof name, "%s.out", prefix);
        mmspcl_lin_create(&f->out_proj, P, name, f->n_mod * D, cfg->out_dim, rng);
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
        const size_t F = (size_t)f->cfg.n_fusion;
        for (s = 0; s < f->n_mod; s++) MMSPCL__T_PUT(N * f->cfg.seq[f->mods[s]] * D);
        for (l = 0; l < f->L; l++)
            for (s = 0; s < f->n_mod; s++)
                MMSPCL__T_PUT(N * (f->cfg.seq[f->mods[s]] + (l >= f->cfg.fusion_start ? F : 0)) * D);
        for (l = 0; l < f->L; l++)
            for (s = 0; s < f->n_mod; s++) {
                const int T = f->cfg.seq[f->mods[s]] + (l >= f->cfg.fusion_start ? (int)F : 0);
                MMSPCL__T_PUT(mmspcl_block_cache_size(&f->blocks[s * f->L + l], n, T, T));
            }
        for (l = 0; l < f->L; l++) MMSPCL__T_PUT(l >= f->cfg.fusion_start ? N * F * D : 0);
        for (s = 0; s < f->n_mod; s++) MMSPCL__T_PUT(N * f->cfg.seq[f->mods[s]] * D);       /* ZF */
        for (s = 0; s < f->n_mod; s++) MMSPCL__T_PUT(N * f->cfg.seq[f->mods[s]] * D);       /* FLN */
        for (s = 0; s < f->n_mod; s++) MMSPCL__T_PUT(N * f->cfg.seq[f->mods[s]] * 2);       /* FST */
        MMSPCL__T_PUT(N * f->n_mod * D);                       /* POOL */
        MMSPCL__T_PUT(N * (tmax + F) * D);                     /* TMP */
        for (s = 0; s < f->n_mod; s++) MMSPCL__T_PUT(N * f->cfg.seq[f->mods[s]] * D);       /* DZ */
        MMSPCL__T_PUT(N * F * D); MMSPCL__T_PUT(N * F * D);    /* DFSN0 DFSN1 */
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

mmspcl_status mmspcl_fusion_forward(mmspcl_fusion *f, const mmspcl_params *P, const double *const x[3],
                                    int n, double *y, mmspcl_rng *rng, mmspcl_error *err) {
    const int D = f->cfg.d_model, L = f->L;
    size_t need;
    int m, s, p, l;
    for (s = 0; s < f->n_mod; s++)
        if (!x[f->mods[s]]) return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "fusion: no input for modality %s", mmspcl__t_mod[f->mods[s]]);
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
    {   /* MBT */
        const int F = f->cfg.n_fusion, FS = f->cfg.fusion_start, NM = f->n_mod;
        const size_t fd = (size_t)F * D;
        double *pool = MMSPCL__T_A(f, MMSPCL__T_MB_FST(f, NM - 1) + 1), *tmp = MMSPCL__T_A(f, MMSPCL__T_MB_FST(f, NM - 1) + 2);
        int i;
        size_t q;
        for (s = 0; s < NM; s++) {
            m = f->mods[s];
            mmspcl__t_embed(P, &f->in_proj[m], f->pos[m], x[m], n, f->cfg.seq[m], MMSPCL__T_A(f, s));
        }
        if (FS < L) {
            double *f0 = MMSPCL__T_A(f, MMSPCL__T_MB_FSN(f, FS));
            for (i = 0; i < n; i++) memcpy(f0 + (size_t)i * fd, P->w + f->fusion_tokens, sizeof(double) * fd);
        }
        for (l = 0; l < L; l++) {
            const int fuse = l >= FS;
            double *fnext = (fuse && l + 1 < L) ? MMSPCL__T_A(f, MMSPCL__T_MB_FSN(f, l + 1)) : NULL;
            if (fnext) mmspcl__t_zero(fnext, (size_t)n * fd);
            for (s = 0; s < NM; s++) {
                const int T = f->cfg.seq[f->mods[s]], TT = T + (fuse ? F : 0);
                const double *zc = l == 0 ? MMSPCL__T_A(f, s) : MMSPCL__T_A(f, MMSPCL__T_MB_ZF(f, s));
                double *in = MMSPCL__T_A(f, MMSPCL__T_MB_IN(f, l, s)), *zf = MMSPCL__T_A(f, MMSPCL__T_MB_ZF(f, s));
                for (i = 0; i < n; i++) {
                    memcpy(in + (size_t)i * TT * D, zc + (size_t)i * T * D, sizeof(double) * (size_t)T * D);
                    if (fuse) memcpy(in + ((size_t)i * TT + T) * D, MMSPCL__T_A(f, MMSPCL__T_MB_FSN(f, l)) + (size_t)i * fd, sizeof(double) * fd);
                }
                mmspcl_block_forward(P, &f->blocks[s * L + l], in, tmp, n, TT, NULL, 0, NULL,
                                     MMSPCL__T_A(f, MMSPCL__T_MB_BC(f, l, s)), rng);
                for (i = 0; i < n; i++) {
                    memcpy(zf + (size_t)i * T * D, tmp + (size_t)i * TT * D, sizeof(double) * (size_t)T * D);
                    if (fnext) for (q = 0; q < fd; q++) fnext[(size_t)i * fd + q] += tmp[((size_t)i * TT + T) * D + q];
                }
            }
            if (fnext) for (q = 0; q < (size_t)n * fd; q++) fnext[q] /= NM;
        }
        for (s = 0; s < NM; s++) {
            const int T = f->cfg.seq[f->mods[s]];
            if (L == 0) memcpy(MMSPCL__T_A(f, MMSPCL__T_MB_ZF(f, s)), MMSPCL__T_A(f, s), sizeof(double) * (size_t)n * T * D);
            mmspcl_ln_forward(P, &f->final_ln[s], MMSPCL__T_A(f, MMSPCL__T_MB_ZF(f, s)), MMSPCL__T_A(f, MMSPCL__T_MB_FLN(f, s)),
                              MMSPCL__T_A(f, MMSPCL__T_MB_FST(f, s)), n * T);
            mmspcl__t_pool(MMSPCL__T_A(f, MMSPCL__T_MB_FLN(f, s)), n, T, D, pool + (size_t)s * D, NM * D);
        }
        mmspcl_lin_forward(P, &f->out_proj, pool, y, n);
    }
    return MMSPCL_OK;
}

void mmspcl_fusion_backward(mmspcl_fusion *f, mmspcl_params *P, const double *const x[3], int n,
                            const double *dy, double *const dx[3]) {
    const int D = f->cfg.d_model, L = f->L;
    int m, s, p, l, i;
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
    {   /* MBT */
        const int F = f->cfg.n_fusion, FS = f->cfg.fusion_start, NM = f->n_mod, end = MMSPCL__T_MB_END(f);
        const size_t fd = (size_t)F * D;
        double *pool = MMSPCL__T_A(f, MMSPCL__T_MB_FST(f, NM - 1) + 1);
        double *dfs_next = MMSPCL__T_A(f, end), *dfs_cur = MMSPCL__T_A(f, end + 1), *t;
        double *dout = MMSPCL__T_A(f, end + 2), *din = MMSPCL__T_A(f, end + 3);
        double *dpool = MMSPCL__T_A(f, end + 4), *dfln = MMSPCL__T_A(f, end + 5);
        size_t q;
        mmspcl__t_zero(dpool, (size_t)n * NM * D);
        mmspcl_lin_backward(P, &f->out_proj, pool, dy, dpool, n);
        for (s = 0; s < NM; s++) {
            const int T = f->cfg.seq[f->mods[s]];
            double *dz = MMSPCL__T_A(f, MMSPCL__T_MB_DZ(f, s));
            mmspcl__t_pool_backward(dpool + (size_t)s * D, NM * D, n, T, D, dfln);
            mmspcl__t_zero(dz, (size_t)n * T * D);
            mmspcl_ln_backward(P, &f->final_ln[s], MMSPCL__T_A(f, MMSPCL__T_MB_ZF(f, s)), MMSPCL__T_A(f, MMSPCL__T_MB_FST(f, s)),
                               dfln, dz, n * T);
        }
        mmspcl__t_zero(dfs_next, (size_t)n * fd);   /* dL / d(fusion state entering layer l + 1) */
        for (l = L - 1; l >= 0; l--) {
            const int fuse = l >= FS;
            mmspcl__t_zero(dfs_cur, (size_t)n * fd);
            for (s = 0; s < NM; s++) {
                const int T = f->cfg.seq[f->mods[s]], TT = T + (fuse ? F : 0);
                double *dz = MMSPCL__T_A(f, MMSPCL__T_MB_DZ(f, s));
                for (i = 0; i < n; i++) {
                    memcpy(dout + (size_t)i * TT * D, dz + (size_t)i * T * D, sizeof(double) * (size_t)T * D);
                    if (fuse)
                        for (q = 0; q < fd; q++)
                            dout[((size_t)i * TT + T) * D + q] = l + 1 < L ? dfs_next[(size_t)i * fd + q] / NM : 0.0;
                }
                mmspcl__t_zero(din, (size_t)n * TT * D);
                mmspcl_block_backward(P, &f->blocks[s * L + l], MMSPCL__T_A(f, MMSPCL__T_MB_IN(f, l, s)), n, TT, NULL, 0,
                                      MMSPCL__T_A(f, MMSPCL__T_MB_BC(f, l, s)), dout, din, NULL);
                for (i = 0; i < n; i++) {
                    memcpy(dz + (size_t)i * T * D, din + (size_t)i * TT * D, sizeof(double) * (size_t)T * D);
                    if (fuse) for (q = 0; q < fd; q++) dfs_cur[(size_t)i * fd + q] += din[((size_t)i * TT + T) * D + q];
                }
            }
            if (l == FS) {   /* the fusion state entering layer FS is the learned tokens, per sample */
                for (q = 0; q < fd; q++) {
                    double acc = 0.0;
                    for (i = 0; i < n; i++) acc += dfs_cur[(size_t)i * fd + q];
                    P->g[f->fusion_tokens + q] += acc;
                }
            }
            t = dfs_next; dfs_next = dfs_cur; dfs_cur = t;
        }
        for (s = 0; s < NM; s++) {
            m = f->mods[s];
            mmspcl__t_embed_backward(P, &f->in_proj[m], f->pos[m], x[m], n, f->cfg.seq[m], MMSPCL__T_A(f, MMSPCL__T_MB_DZ(f, s)), dx ? dx[m] : NULL);
        }
    }
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
        MMSPCL__T_KEY("n_fusion", c->n_fusion);
    }
#undef MMSPCL__T_KEY
    snprintf(key, sizeof key, "%s%s%s.dropout", outer && *outer ? outer : "", outer && *outer ? "." : "", f->prefix);
    st |= (int)mmspcl_writer_set_float(wr, key, c->dropout);
    return st ? MMSPCL_ERR_NOMEM : MMSPCL_OK;
}

/* ---------------------------------------------------------------------------------------------
   Helpers shared by the trainers
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
   MSVE model
   ------------------------------------------------------------------------------------------ */
mmspcl_status mmspcl_msve_model_create(mmspcl_msve_model *M, const mmspcl_msve_cfg *cfg,
                                       uint64_t seed, mmspcl_error *err) {
    mmspcl_rng rng;
    unsigned possible;
    int c, m;
    memset(M, 0, sizeof *M);
    M->cfg = *cfg;
    for (m = 0; m < 3; m++) if (cfg->dims[m] < 0) return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "msve: width of %s is %d", mmspcl__t_mod[m], cfg->dims[m]);
    if (cfg->n_classes < 2 || cfg->n_classes > MMSPCL_MAX_CLASSES || cfg->hidden < 1 || cfg->dropout < 0 || cfg->dropout >= 1)
        return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "msve: %d classes, hidden %d, dropout %g", cfg->n_classes, cfg->hidden, cfg->dropout);
    possible = mmspcl__t_possible_combos(cfg->dims);
    if (!cfg->combos) M->cfg.combos = possible;
    if ((M->cfg.combos & ~possible) || !(M->cfg.combos & MMSPCL_COMBOS_ALL))
        return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "msve: combinations 0x%x need absent modalities (possible 0x%x)", M->cfg.combos, possible);
    mmspcl_rng_seed(&rng, seed);
    mmspcl_params_init(&M->P);
    for (c = 1; c < 8; c++) {
        int in = 0;
        if (!(M->cfg.combos & MMSPCL_COMBO(c))) continue;
        for (m = 0; m < 3; m++) if (c & (1 << m)) in += cfg->dims[m];
        mmspcl_mlp_create(&M->mlp[c], &M->P, mmspcl__t_combo[c], in, cfg->hidden, cfg->n_classes, cfg->act, cfg->dropout, &rng);
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

/* per combination c: CAT_c [n][in] and the MLP cache; then the logits of one MLP */
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
        need += (size_t)n * M->mlp[c].fc1.in;
        M->act_off[8 + c] = need;
        need += mmspcl_mlp_cache_size(&M->mlp[c], n);
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
        const int in = M->mlp[c].fc1.in;
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
        mmspcl_mlp_forward(&M->P, &M->mlp[c], cat, first ? logits : lg, n, M->act + M->act_off[8 + c], rng);
        if (!first) for (q = 0; q < (size_t)n * C; q++) logits[q] += lg[q];
        first = 0;
    }
    return MMSPCL_OK;
}

/* logits = sum_c MLP_c(x_c), so every MLP of the forward gets the same dlogits */
void mmspcl_msve_model_backward(mmspcl_msve_model *M, const double *dlogits) {
    int c;
    for (c = 1; c < 8; c++)
        if (M->act_combos & MMSPCL_COMBO(c))
            mmspcl_mlp_backward(&M->P, &M->mlp[c], M->act + M->act_off[c], dlogits, NULL, M->act_n,
                                M->act + M->act_off[8 + c]);
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
    c->epochs = 50; c->batch = 32; c->k = 2; c->warmup = 0; c->patience = 5;
    c->lr = 1e-3; c->weight_decay = 0.01; c->clip = 5.0;
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

static mmspcl_status mmspcl__t_msve_write(const mmspcl_msve_model *M, mmspcl_writer *wr, const char *prefix,
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
    st = mmspcl__t_msve_write(M, wr, prefix, with_optim, &hold, err);
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
    for (m = 1; m < 8; m++) if (inf.combos & MMSPCL_COMBO(m)) { cfg.hidden = inf.mlp[m].fc1.out; cfg.act = inf.mlp[m].act; break; }
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
   SPCL model: [pruning] -> fusion -> z; classifier on z
   ------------------------------------------------------------------------------------------ */
mmspcl_status mmspcl_spcl_model_create(mmspcl_spcl_model *M, const mmspcl_fusion_cfg *fusion,
                                       int n_classes, int prune_base, int prune_mod, int prune_K,
                                       uint64_t seed, mmspcl_error *err) {
    mmspcl_rng rng;
    mmspcl_status st;
    memset(M, 0, sizeof *M);
    M->n_classes = n_classes;
    M->prune_base = prune_base; M->prune_mod = prune_mod; M->prune_K = prune_K;
    if (n_classes < 2 || n_classes > MMSPCL_MAX_CLASSES) return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "spcl model: %d classes", n_classes);
    if (prune_mod >= 0) {
        if (prune_mod > 2 || prune_base < 0 || prune_base > 2 || prune_base == prune_mod || prune_K < 1 ||
            fusion->dims[prune_base] <= 0 || fusion->dims[prune_mod] <= 0 || fusion->dims[prune_base] % prune_K)
            return mmspcl__t_fail(err, MMSPCL_ERR_ARG, "spcl model: pruning base %d, modality %d, head size %d does not fit the widths", prune_base, prune_mod, prune_K);
    } else M->prune_mod = -1;
    mmspcl_rng_seed(&rng, seed);
    mmspcl_params_init(&M->P);
    if ((st = mmspcl_fusion_create(&M->fusion, &M->P, "fusion", fusion, &rng, err))) { mmspcl_params_free(&M->P); return st; }
    mmspcl_lin_create(&M->classifier, &M->P, "classifier", fusion->out_dim, n_classes, &rng);
    M->protos = mmspcl__t_alloc((size_t)n_classes * fusion->out_dim);
    if (M->P.oom || !M->protos) { mmspcl_spcl_model_free(M); return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "spcl model: out of memory"); }
    mmspcl__t_zero(M->protos, (size_t)n_classes * fusion->out_dim);
    return MMSPCL_OK;
}

void mmspcl_spcl_model_free(mmspcl_spcl_model *M) {
    mmspcl_fusion_free(&M->fusion);
    mmspcl_params_free(&M->P);
    MMSPCL_FREE(M->protos);
    MMSPCL_FREE(M->buf);
    memset(M, 0, sizeof *M);
}

/* doubles of the inputs (pruned where asked) for n rows, in M->buf; xd[m] point into it */
static mmspcl_status mmspcl__t_spcl_inputs(mmspcl_spcl_model *M, const float *const x[3], int n, double *xd[3],
                                           mmspcl_error *err) {
    const int *dims = M->fusion.cfg.dims;
    const int dp = M->prune_mod >= 0 ? dims[M->prune_mod] : 0, np = M->prune_mod >= 0 ? (dp + M->prune_K - 1) / M->prune_K : 0;
    size_t need = 0, off = 0, q;
    int m;
    for (m = 0; m < 3; m++) need += (size_t)n * dims[m];
    need += (size_t)n * dp + ((size_t)n * np + sizeof(double)) / sizeof(double) + 1;
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
    if (M->prune_mod >= 0) {
        double *pr = M->buf + off;
        unsigned char *kept = (unsigned char *)(pr + (size_t)n * dp);
        mmspcl_status st = mmspcl_prune_train_forward(xd[M->prune_base], dims[M->prune_base], xd[M->prune_mod], dp,
                                                      M->prune_K, n, pr, kept, err);
        if (st) return st;
        xd[M->prune_mod] = pr;
    }
    return MMSPCL_OK;
}

mmspcl_status mmspcl_spcl_model_embed(mmspcl_spcl_model *M, const float *const x[3], int n, double *z,
                                      mmspcl_error *err) {
    const int CH = 128, D = M->fusion.cfg.out_dim;
    int i, m;
    mmspcl_status st = MMSPCL_OK;
    for (i = 0; i < n && !st; i += CH) {
        const int nn = n - i < CH ? n - i : CH;
        const float *xs[3];
        double *xd[3];
        for (m = 0; m < 3; m++) xs[m] = x[m] ? x[m] + (size_t)i * M->fusion.cfg.dims[m] : NULL;
        if ((st = mmspcl__t_spcl_inputs(M, xs, nn, xd, err))) break;
        st = mmspcl_fusion_forward(&M->fusion, &M->P, (const double *const *)xd, nn, z + (size_t)i * D, NULL, err);
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
    const int D = M->fusion.cfg.out_dim, C = M->n_classes;
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
    const int C = M->n_classes, D = M->fusion.cfg.out_dim, n = train ? train->n : 0;
    const int B = cfg->batch > 1 ? cfg->batch : 32, E = cfg->epochs;
    const int *dims = M->fusion.cfg.dims;
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
            if ((st = mmspcl_fusion_forward(&M->fusion, &M->P, (const double *const *)xd, nb, z, &rng, err))) goto fail;
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
            mmspcl_fusion_backward(&M->fusion, &M->P, (const double *const *)xd, nb, dz, NULL);
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
    const int C = M->n_classes, D = M->fusion.cfg.out_dim;
    mmspcl_writer *wr = mmspcl_writer_create();
    float *hold = NULL, *pf = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)C * D);
    int64_t sh[2];
    size_t q;
    int st = 0;
    mmspcl_status s2 = MMSPCL_OK;
    if (!wr || !pf) { mmspcl_writer_free(wr); MMSPCL_FREE(pf); return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "spcl model: out of memory"); }
    for (q = 0; q < (size_t)C * D; q++) pf[q] = (float)M->protos[q];
    st |= (int)mmspcl_writer_set_int(wr, "spcl.kind", M->fusion.cfg.kind);
    st |= (int)mmspcl_writer_set_int(wr, "spcl.n_classes", C);
    st |= (int)mmspcl_writer_set_int(wr, "spcl.prune.base", M->prune_base);
    st |= (int)mmspcl_writer_set_int(wr, "spcl.prune.mod", M->prune_mod);
    st |= (int)mmspcl_writer_set_int(wr, "spcl.prune.K", M->prune_K);
    st |= (int)mmspcl_fusion_write_config(&M->fusion, wr, "spcl");
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

mmspcl_status mmspcl_spcl_model_load(mmspcl_spcl_model *M, const mmspcl_weights *w, mmspcl_error *err) {
    mmspcl_fusion_cfg fc;
    int64_t kind = -1, C = 0, pb = -1, pm = -1, pk = 0;
    double dropout = 0.0;
    const float *protos;
    int pc, pd, m;
    size_t q;
    mmspcl_status st;
    if (!mmspcl_weights_get_int(w, "spcl.kind", &kind) || !mmspcl_weights_get_int(w, "spcl.n_classes", &C) ||
        !mmspcl_weights_get_int(w, "spcl.prune.base", &pb) || !mmspcl_weights_get_int(w, "spcl.prune.mod", &pm) ||
        !mmspcl_weights_get_int(w, "spcl.prune.K", &pk))
        return mmspcl__t_fail(err, MMSPCL_ERR_NOT_FOUND, "spcl model: the keys spcl.kind, n_classes, prune.* are missing");
    if (kind < 0 || kind > 2 || pb < -1 || pb > 2 || pm < -1 || pm > 2 || pk < 0 || pk > (1 << 20))
        return mmspcl__t_fail(err, MMSPCL_ERR_FORMAT, "spcl model: kind %lld, pruning %lld/%lld/%lld", (long long)kind, (long long)pb, (long long)pm, (long long)pk);
    mmspcl_fusion_defaults(&fc, (mmspcl_fusion_kind)kind);
    if (kind == MMSPCL_FUSION_LINEAR) {
        mmspcl_fuse_linear f;
        if ((st = mmspcl_fuse_linear_load(&f, w, "spcl.fusion", err))) return st;
        for (m = 0; m < 3; m++) fc.dims[m] = f.dims[m];
        fc.out_dim = f.proj.out;
    } else if (kind == MMSPCL_FUSION_MULT) {
        mmspcl_mult f;
        if ((st = mmspcl_mult_load(&f, w, "spcl.fusion", err))) return st;
        for (m = 0; m < 3; m++) { fc.seq[m] = f.seq[m]; fc.dims[m] = f.seq[m] * f.tok[m]; }
        fc.d_model = f.d_model; fc.n_heads = f.n_heads; fc.n_cross = f.n_cross; fc.n_self = f.n_self;
        fc.ff_mult = f.ff_mult; fc.out_dim = f.out_dim; fc.act = f.act;
        mmspcl_mult_free(&f);
    } else {
        mmspcl_mbt f;
        if ((st = mmspcl_mbt_load(&f, w, "spcl.fusion", err))) return st;
        for (m = 0; m < 3; m++) { fc.seq[m] = f.seq[m]; fc.dims[m] = f.seq[m] * f.tok[m]; }
        fc.d_model = f.d_model; fc.n_heads = f.n_heads; fc.n_layers = f.n_layers; fc.fusion_start = f.fusion_start;
        fc.n_fusion = f.n_fusion; fc.ff_mult = f.ff_mult; fc.out_dim = f.out_dim; fc.act = f.act;
        mmspcl_mbt_free(&f);
    }
    fc.dropout = mmspcl_weights_get_float(w, "spcl.fusion.dropout", &dropout) ? dropout : 0.0;
    if ((st = mmspcl_protos_load(&protos, &pc, &pd, w, "spcl", err))) return st;
    if (pc != C || pd != fc.out_dim)
        return mmspcl__t_fail(err, MMSPCL_ERR_FORMAT, "spcl.protos is [%d][%d], expected [%lld][%d]", pc, pd, (long long)C, fc.out_dim);
    if ((st = mmspcl_spcl_model_create(M, &fc, (int)C, (int)pb, (int)pm, (int)pk, 0, err))) return st;
    if ((st = mmspcl_params_read(&M->P, w, "spcl", err))) { mmspcl_spcl_model_free(M); return st; }
    for (q = 0; q < (size_t)pc * pd; q++) M->protos[q] = protos[q];
    return MMSPCL_OK;
}

#ifndef MMSPCL_TRAIN_ROBERTA_IMPL
#define MMSPCL_TRAIN_ROBERTA_IMPL
#include <stdarg.h>
#ifdef _OPENMP
#include <omp.h>
#define MMSPCL__RT_OMP_FOR _Pragma("omp parallel for schedule(static)")
#define MMSPCL__RT_MAX_THREADS() omp_get_max_threads()
#define MMSPCL__RT_THREAD_ID() omp_get_thread_num()
#else
#define MMSPCL__RT_OMP_FOR
#define MMSPCL__RT_MAX_THREADS() 1
#define MMSPCL__RT_THREAD_ID() 0
#endif

/* ---------------------------------------------------------------------------------------------
   RoBERTa-layout encoder training (float32; API above)
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

/* dst[c][r] = src[r][c] for a [rows][cols] source */
static void mmspcl__rt_transpose(float *dst, const float *src, int rows, int cols) {
    int c0;
    MMSPCL__RT_OMP_FOR
    for (c0 = 0; c0 < cols; c0 += 16) {
        int r, c, ce = c0 + 16 < cols ? c0 + 16 : cols;
        for (r = 0; r < rows; r++)
            for (c = c0; c < ce; c++) dst[(size_t)c * rows + r] = src[(size_t)r * cols + c];
    }
}

typedef struct mmspcl__rt_scr { float *tmp, *xT, *dyT, *WT, *dW; } mmspcl__rt_scr;

/* Backward of y = x W^T + b (W at g/w offset woff, [out][in]; bias at boff, or (size_t)-1):
   dx (may be NULL) += dy W;  gW += dy^T x;  gb += column sums of dy. */
static mmspcl_status mmspcl__rt_lin_bwd(mmspcl_rt *m, const float *x, int T, int in, size_t woff, int out,
                                        size_t boff, const float *dy, float *dx, const mmspcl__rt_scr *s) {
    mmspcl_tensor t;
    mmspcl_status st;
    size_t i, n;
    float *gw = m->g + woff;
    if (dx) {
        mmspcl__rt_transpose(s->WT, m->w + woff, out, in);            /* [in][out] */
        t = mmspcl__rt_view(s->WT, in, out);
        if ((st = mmspcl_linear(s->tmp, dy, T, out, &t, NULL))) return st;
        n = (size_t)T * in;
        for (i = 0; i < n; i++) dx[i] += s->tmp[i];
    }
    mmspcl__rt_transpose(s->dyT, dy, T, out);                         /* [out][T] */
    mmspcl__rt_transpose(s->xT, x, T, in);                            /* [in][T] */
    t = mmspcl__rt_view(s->xT, in, T);
    if ((st = mmspcl_linear(s->dW, s->dyT, out, T, &t, NULL))) return st;  /* [out][in] */
    n = (size_t)out * in;
    for (i = 0; i < n; i++) gw[i] += s->dW[i];
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
    MMSPCL__RT_OMP_FOR
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
static void mmspcl__rt_ln_bwd(mmspcl_rt *m, float *dx, const float *dy, const float *xhat, const float *inv,
                              size_t goff, size_t boff, int rows, int dim) {
    const float *g = m->w + goff;
    float *gg = m->g + goff, *gb = m->g + boff;
    int r, i;
    MMSPCL__RT_OMP_FOR
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

static float mmspcl__rt_gelu_grad(float x) {
    return 0.5f * (1.0f + erff(x * 0.70710678118654752f)) + x * expf(-0.5f * x * x) * 0.39894228040143268f;
}

/* Per-layer cache layout, every block sized for max_tokens rows */
enum { MMSPCL__RT_Q, MMSPCL__RT_K, MMSPCL__RT_V, MMSPCL__RT_CTX, MMSPCL__RT_H1, MMSPCL__RT_XH1, MMSPCL__RT_XH2,
       MMSPCL__RT_XOUT, MMSPCL__RT_NH };

static size_t mmspcl__rt_layer_floats(const mmspcl_rt *m) {
    const size_t T = (size_t)m->max_tokens, H = (size_t)m->cfg.hidden_size, I = (size_t)m->cfg.intermediate_size;
    return T * H * MMSPCL__RT_NH + 2 * T * I + 2 * T + (size_t)m->cfg.num_heads * T * (size_t)m->max_seq;
}
/* pointers into layer l's cache (l == -1: the embedding part) */
typedef struct mmspcl__rt_lc { float *h[MMSPCL__RT_NH], *f, *ga, *inv1, *inv2, *probs; } mmspcl__rt_lc;
static mmspcl__rt_lc mmspcl__rt_layer_cache(const mmspcl_rt *m, int l) {
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

void mmspcl_rt_free(mmspcl_rt *m) {
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

void mmspcl_rt_sync(mmspcl_rt *m) {
    long i, n = (long)m->P.n;
    MMSPCL__RT_OMP_FOR
    for (i = 0; i < n; i++) m->w[i] = (float)m->P.w[i];
}

static size_t mmspcl__rt_add(mmspcl_rt *m, const char *name, int64_t a, int64_t b, int decay, mmspcl_init init,
                             double scale, mmspcl_rng *rng) {
    int64_t shape[2];
    shape[0] = a;
    shape[1] = b;
    return mmspcl_params_add(&m->P, name, b ? 2 : 1, shape, decay, init, scale, rng);
}

mmspcl_status mmspcl_rt_create(mmspcl_rt *m, const mmspcl_roberta_config *cfg, int with_mlm,
                               uint64_t seed, int max_tokens, int max_seq, mmspcl_error *err) {
    const int H = cfg->hidden_size, I = cfg->intermediate_size, V = cfg->vocab_size;
    const double sd = 0.02;
    mmspcl_rng rng;
    char name[160];
    size_t big, scr;
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
    if (!(m->L = (mmspcl_rt_layer *)MMSPCL_MALLOC(sizeof *m->L * (size_t)cfg->num_layers))) goto oom;
    for (l = 0; l < cfg->num_layers; l++) {
        mmspcl_rt_layer *L = &m->L[l];
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
    big = (size_t)(I > H ? I : H);
    if (with_mlm && (size_t)V > big) big = (size_t)V;
    /* dx, dz, dh, dq, dk, dv, dctx [T][H]; dI [T][I]; tmp, xT, dyT [T][big]; WT, dW [H][big];
       attention rows [threads][max_seq] */
    scr = 7 * (size_t)max_tokens * H + (size_t)max_tokens * I + 3 * (size_t)max_tokens * big + 2 * (size_t)H * big +
          (size_t)MMSPCL__RT_MAX_THREADS() * (size_t)max_seq;
    m->scratch_n = scr;
    m->scratch = (float *)MMSPCL_MALLOC(sizeof(float) * scr);
    if (!m->w || !m->g || !m->starts || !m->lens || !m->tok || !m->posid || !m->cache || !m->scratch) goto oom;
    memset(m->g, 0, sizeof(float) * m->P.n);
    mmspcl_rt_sync(m);
    return MMSPCL_OK;
oom:
    mmspcl_rt_free(m);
    return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "rt_create: out of memory");
}

/* attention of one (sequence, head): probs [L][L] kept */
static void mmspcl__rt_attn_fwd(const float *q, const float *k, const float *v, float *ctx, float *probs, int L,
                                int H, int h, int hd) {
    const float scale = 1.0f / sqrtf((float)hd);
    int i, j, d;
    for (i = 0; i < L; i++) {
        float *p = probs + (size_t)i * L;
        const float *qi = q + (size_t)i * H + h * hd;
        float *oi = ctx + (size_t)i * H + h * hd;
        for (j = 0; j < L; j++) p[j] = mmspcl_dot_f32(qi, k + (size_t)j * H + h * hd, hd) * scale;
        mmspcl_softmax(p, L);
        for (d = 0; d < hd; d++) oi[d] = 0.0f;
        for (j = 0; j < L; j++) {
            const float *vj = v + (size_t)j * H + h * hd;
            if (p[j] == 0.0f) continue;
            for (d = 0; d < hd; d++) oi[d] += p[j] * vj[d];
        }
    }
}

static void mmspcl__rt_attn_bwd(const float *q, const float *k, const float *v, const float *probs,
                                const float *dctx, float *dq, float *dk, float *dv, float *dp, int L, int H,
                                int h, int hd) {
    const float scale = 1.0f / sqrtf((float)hd);
    int i, j, d;
    for (i = 0; i < L; i++) {
        const float *p = probs + (size_t)i * L, *di = dctx + (size_t)i * H + h * hd, *qi = q + (size_t)i * H + h * hd;
        float *dqi = dq + (size_t)i * H + h * hd;
        double s = 0.0;
        for (j = 0; j < L; j++) {
            dp[j] = mmspcl_dot_f32(di, v + (size_t)j * H + h * hd, hd);
            s += (double)p[j] * dp[j];
        }
        for (j = 0; j < L; j++) {
            const float ds = p[j] * (dp[j] - (float)s) * scale;
            const float *kj = k + (size_t)j * H + h * hd;
            float *dkj = dk + (size_t)j * H + h * hd, *dvj = dv + (size_t)j * H + h * hd;
            for (d = 0; d < hd; d++) {
                dqi[d] += ds * kj[d];
                dkj[d] += ds * qi[d];
                dvj[d] += p[j] * di[d];
            }
        }
    }
}

/* probs offset of sequence b: num_heads * sum of L^2 before it (fits: sum L^2 <= max_seq * T) */
static size_t mmspcl__rt_poff(const mmspcl_rt *m, int b) {
    size_t o = 0;
    int i;
    for (i = 0; i < b; i++) o += (size_t)m->lens[i] * m->lens[i];
    return o * (size_t)m->cfg.num_heads;
}

mmspcl_status mmspcl_rt_forward(mmspcl_rt *m, const int32_t *ids, const int *lengths, int batch, int seq,
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
    poff = (size_t *)MMSPCL_MALLOC(sizeof(size_t) * (size_t)batch);
    if (!poff) return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "rt_forward: out of memory");
    for (b = 0; b < batch; b++) poff[b] = mmspcl__rt_poff(m, b);
    x = MMSPCL__RT_X0(m);
    for (l = 0; l < c->num_layers; l++) {
        const mmspcl_rt_layer *L = &m->L[l];
        mmspcl__rt_lc lc = mmspcl__rt_layer_cache(m, l);
        float *q = lc.h[MMSPCL__RT_Q], *k = lc.h[MMSPCL__RT_K], *v = lc.h[MMSPCL__RT_V], *ctx = lc.h[MMSPCL__RT_CTX];
        float *h1 = lc.h[MMSPCL__RT_H1], *xo = lc.h[MMSPCL__RT_XOUT];
        size_t i, n;
        if ((st = mmspcl__rt_lin(q, x, T, H, w + L->wq, H, w + L->bq)) || (st = mmspcl__rt_lin(k, x, T, H, w + L->wk, H, w + L->bk)) ||
            (st = mmspcl__rt_lin(v, x, T, H, w + L->wv, H, w + L->bv)))
            goto fail;
        MMSPCL__RT_OMP_FOR
        for (task = 0; task < batch * nh; task++) {
            const int bb = task / nh, h = task % nh;
            const size_t s0 = (size_t)m->starts[bb] * H;
            mmspcl__rt_attn_fwd(q + s0, k + s0, v + s0, ctx + s0,
                                lc.probs + poff[bb] + (size_t)h * m->lens[bb] * m->lens[bb], m->lens[bb], H, h, hd);
        }
        if ((st = mmspcl__rt_lin(h1, ctx, T, H, w + L->wo, H, w + L->bo))) goto fail;
        n = (size_t)T * H;
        for (i = 0; i < n; i++) h1[i] += x[i];
        mmspcl__rt_ln(h1, h1, w + L->ln1_g, w + L->ln1_b, T, H, c->layer_norm_eps, lc.h[MMSPCL__RT_XH1], lc.inv1);
        if ((st = mmspcl__rt_lin(lc.f, h1, T, H, w + L->wi, I, w + L->bi))) goto fail;
        n = (size_t)T * I;
        for (i = 0; i < n; i++) lc.ga[i] = lc.f[i];
        mmspcl_gelu(lc.ga, n);
        if ((st = mmspcl__rt_lin(xo, lc.ga, T, I, w + L->wo2, H, w + L->bo2))) goto fail;
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

static void mmspcl__rt_flush(mmspcl_rt *m) {
    long i, n = (long)m->P.n;
    MMSPCL__RT_OMP_FOR
    for (i = 0; i < n; i++) { m->P.g[i] += m->g[i]; m->g[i] = 0.0f; }
}

mmspcl_status mmspcl_rt_backward(mmspcl_rt *m, const float *dout, float *demb, mmspcl_error *err) {
    const mmspcl_roberta_config *c = &m->cfg;
    const int H = c->hidden_size, I = c->intermediate_size, nh = c->num_heads, hd = H / nh, T = m->T;
    const size_t TM = (size_t)m->max_tokens;
    float *dx = m->scratch, *dz = dx + TM * H, *dh = dz + TM * H, *dq = dh + TM * H, *dk = dq + TM * H,
          *dv = dk + TM * H, *dctx = dv + TM * H, *dI = dctx + TM * H;
    mmspcl__rt_scr s;
    size_t bigc, i, n = (size_t)T * H, *poff;
    int l, task, b;
    mmspcl_status st = MMSPCL_OK;
    bigc = (size_t)(I > H ? I : H);
    if (m->mlm && (size_t)c->vocab_size > bigc) bigc = (size_t)c->vocab_size;
    s.tmp = dI + TM * I;
    s.xT = s.tmp + TM * bigc;
    s.dyT = s.xT + TM * bigc;
    s.WT = s.dyT + TM * bigc;
    s.dW = s.WT + (size_t)H * bigc;
    {
        float *attn_rows = s.dW + (size_t)H * bigc;
        poff = (size_t *)MMSPCL_MALLOC(sizeof(size_t) * (size_t)m->batch);
        if (!poff) return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "rt_backward: out of memory");
        for (b = 0; b < m->batch; b++) poff[b] = mmspcl__rt_poff(m, b);
        memcpy(dx, dout, sizeof(float) * n);
        for (l = c->num_layers - 1; l >= 0; l--) {
            const mmspcl_rt_layer *L = &m->L[l];
            mmspcl__rt_lc lc = mmspcl__rt_layer_cache(m, l);
            const float *xin = l ? mmspcl__rt_layer_cache(m, l - 1).h[MMSPCL__RT_XOUT] : MMSPCL__RT_X0(m);
            const float *h1 = lc.h[MMSPCL__RT_H1];
            size_t nI = (size_t)T * I;
            /* x_out = LN2(h1 + FFN(h1)) */
            mmspcl__rt_ln_bwd(m, dz, dx, lc.h[MMSPCL__RT_XH2], lc.inv2, L->ln2_g, L->ln2_b, T, H);
            memset(dI, 0, sizeof(float) * nI);
            if ((st = mmspcl__rt_lin_bwd(m, lc.ga, T, I, L->wo2, H, L->bo2, dz, dI, &s))) break;
            for (i = 0; i < nI; i++) dI[i] *= mmspcl__rt_gelu_grad(lc.f[i]);
            memcpy(dh, dz, sizeof(float) * n);                 /* residual */
            if ((st = mmspcl__rt_lin_bwd(m, h1, T, H, L->wi, I, L->bi, dI, dh, &s))) break;
            /* h1 = LN1(x_in + Wo ctx) */
            mmspcl__rt_ln_bwd(m, dz, dh, lc.h[MMSPCL__RT_XH1], lc.inv1, L->ln1_g, L->ln1_b, T, H);
            memset(dctx, 0, sizeof(float) * n);
            if ((st = mmspcl__rt_lin_bwd(m, lc.h[MMSPCL__RT_CTX], T, H, L->wo, H, L->bo, dz, dctx, &s))) break;
            memset(dq, 0, sizeof(float) * n);
            memset(dk, 0, sizeof(float) * n);
            memset(dv, 0, sizeof(float) * n);
            MMSPCL__RT_OMP_FOR
            for (task = 0; task < m->batch * nh; task++) {
                const int bb = task / nh, h = task % nh;
                const size_t s0 = (size_t)m->starts[bb] * H;
                mmspcl__rt_attn_bwd(lc.h[MMSPCL__RT_Q] + s0, lc.h[MMSPCL__RT_K] + s0, lc.h[MMSPCL__RT_V] + s0,
                                    lc.probs + poff[bb] + (size_t)h * m->lens[bb] * m->lens[bb], dctx + s0, dq + s0,
                                    dk + s0, dv + s0, attn_rows + (size_t)MMSPCL__RT_THREAD_ID() * m->max_seq,
                                    m->lens[bb], H, h, hd);
            }
            memcpy(dx, dz, sizeof(float) * n);                 /* residual */
            if ((st = mmspcl__rt_lin_bwd(m, xin, T, H, L->wq, H, L->bq, dq, dx, &s)) ||
                (st = mmspcl__rt_lin_bwd(m, xin, T, H, L->wk, H, L->bk, dk, dx, &s)) ||
                (st = mmspcl__rt_lin_bwd(m, xin, T, H, L->wv, H, L->bv, dv, dx, &s)))
                break;
        }
        MMSPCL_FREE(poff);
    }
    if (st) return mmspcl__t_fail(err, st, "rt_backward: layer %d failed (%s)", l, mmspcl_status_name(st));
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

double mmspcl_rt_mlm_loss(mmspcl_rt *m, const int *rows, const int32_t *target, int n, float *dout,
                          mmspcl_error *err) {
    const int H = m->cfg.hidden_size, V = m->cfg.vocab_size;
    const float *w = m->w;
    float *hs, *a, *ga, *y, *xh, *inv, *logits, *dy, *dga, *dh;
    mmspcl__rt_scr s;
    double loss = 0.0;
    int i, j;
    size_t need, mx;
    if (!m->mlm || n < 1) { mmspcl__t_fail(err, MMSPCL_ERR_ARG, "rt_mlm_loss: no MLM head or no rows"); return -1.0; }
    mx = (size_t)(V > H ? V : H);
    need = (size_t)n * (7 * (size_t)H + 1 + 2 * (size_t)V) + 3 * (size_t)n * mx + 2 * (size_t)H * mx;
    hs = (float *)MMSPCL_MALLOC(sizeof(float) * need);
    if (!hs) { mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "rt_mlm_loss: out of memory"); return -1.0; }
    a = hs + (size_t)n * H; ga = a + (size_t)n * H; y = ga + (size_t)n * H; xh = y + (size_t)n * H;
    dga = xh + (size_t)n * H; dh = dga + (size_t)n * H; inv = dh + (size_t)n * H;
    logits = inv + n; dy = logits + (size_t)n * V;
    s.tmp = dy + (size_t)n * V;
    s.xT = s.tmp + (size_t)n * mx;
    s.dyT = s.xT + (size_t)n * mx;
    s.WT = s.dyT + (size_t)n * mx;
    s.dW = s.WT + (size_t)H * mx;
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
    memset(dh, 0, sizeof(float) * (size_t)n * H);
    if (mmspcl__rt_lin_bwd(m, y, n, H, m->word, V, m->lm_bias, dy, dh, &s)) goto fail;
    mmspcl__rt_ln_bwd(m, dga, dh, xh, inv, m->lm_ln_g, m->lm_ln_b, n, H);
    for (i = 0; i < n * H; i++) dga[i] *= mmspcl__rt_gelu_grad(a[i]);
    memset(dh, 0, sizeof(float) * (size_t)n * H);
    if (mmspcl__rt_lin_bwd(m, hs, n, H, m->lm_w, H, m->lm_b, dga, dh, &s)) goto fail;
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

mmspcl_status mmspcl_rt_write_config(const mmspcl_rt *m, mmspcl_writer *wr, mmspcl_error *err) {
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

mmspcl_status mmspcl_rt_write_tensors(const mmspcl_rt *m, mmspcl_writer *wr, mmspcl_dtype dtype,
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
   MELD end to end (API above)
   ------------------------------------------------------------------------------------------ */
void mmspcl_meld_recipe_defaults(mmspcl_meld_recipe *r) {
    memset(r, 0, sizeof *r);
    r->hidden = 128; r->layers = 2; r->heads = 4; r->ffn = 256; r->max_len = 64;
    r->mlm_epochs = 6; r->mlm_batch = 32; r->mlm_lr = 5e-4;
    r->spcl_epochs = 6; r->batch = 32; r->patience = 2; r->warmup = 128;
    r->lr = 3e-4; r->head_lr = 1e-3; r->temperature = 0.08; r->ce_weight = 1.0; r->sent_weight = 0.5; r->clip = 1.0;
    r->pool_size = 512; r->K = 64; r->curriculum = 1; r->holdout = 1;
    r->ngram_bits = 17; r->msve_hidden = 64; r->msve_epochs = 25; r->msve_dropout = 0.3; r->msve_lr = 1e-3;
    r->seed = 1;
}

/* ---- n-gram view ---- */
static uint32_t mmspcl__ng_hash(const char *s, size_t n, uint32_t h) {
    size_t i;
    for (i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 16777619u; }
    return h;
}



/* ---- sparse n-gram TF-IDF and logistic regression (the "a" view) ---- */
typedef struct mmspcl__kv32 { uint32_t k; float v; } mmspcl__kv32;
static int mmspcl__kv_cmp(const void *a, const void *b) {
    const uint32_t x = ((const mmspcl__kv32 *)a)->k, y = ((const mmspcl__kv32 *)b)->k;
    return x < y ? -1 : x > y;
}
/* sort, merge duplicates (summing), sublinear tf * idf, l2-normalise; returns the new count */
static int mmspcl__kv_finish(mmspcl__kv32 *e, int n, const float *idf, int tf_log) {
    int i, o = 0;
    double norm = 0;
    if (!n) return 0;
    qsort(e, (size_t)n, sizeof *e, mmspcl__kv_cmp);
    for (i = 0; i < n; i++) {
        if (o && e[o - 1].k == e[i].k) e[o - 1].v += e[i].v;
        else e[o++] = e[i];
    }
    for (i = 0; i < o; i++) {
        if (tf_log) e[i].v = 1.0f + logf(e[i].v);
        if (idf) e[i].v *= idf[e[i].k];
        norm += (double)e[i].v * e[i].v;
    }
    if (norm > 0) for (i = 0; i < o; i++) e[i].v = (float)(e[i].v / sqrt(norm));
    return o;
}

int mmspcl_ngram_sparse(const char *text, int nbits, const float *idf, int32_t *idx, float *val, int cap) {
    const uint32_t mask = (1u << nbits) - 1u;
    char *buf;
    size_t L = strlen(text), n = 0, p, *st, *ln;
    mmspcl__kv32 *e;
    int nt = 0, nw = 0, ne = 0, ne2, i, k, g;
    buf = (char *)MMSPCL_MALLOC(L + 3);
    st = (size_t *)MMSPCL_MALLOC(sizeof(size_t) * (L + 2));
    ln = (size_t *)MMSPCL_MALLOC(sizeof(size_t) * (L + 2));
    e = (mmspcl__kv32 *)MMSPCL_MALLOC(sizeof(mmspcl__kv32) * (12 * L + 64));
    if (!buf || !st || !ln || !e) { MMSPCL_FREE(buf); MMSPCL_FREE(st); MMSPCL_FREE(ln); MMSPCL_FREE(e); return -1; }
    for (p = 0; p < L; p++) {
        unsigned char c = (unsigned char)text[p];
        if (c == 0xE2 && p + 2 < L && (unsigned char)text[p + 1] == 0x80 && (unsigned char)text[p + 2] == 0x99) { buf[n++] = '\''; p += 2; continue; }
        if (c == '"') continue;
        buf[n++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    buf[n] = 0;
    /* block 1: word tokens (letter/digit/' runs, other characters alone), uni- and bigrams */
    for (p = 0; p < n;) {
        unsigned char c = (unsigned char)buf[p];
        if (c <= ' ') { p++; continue; }
        st[nt] = p;
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '\'' || c >= 0x80) {
            while (p < n) {
                c = (unsigned char)buf[p];
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '\'' || c >= 0x80)) break;
                p++;
            }
        } else p++;
        ln[nt] = p - st[nt];
        nt++;
    }
    for (i = 0; i < nt; i++) { e[ne].k = mmspcl__ng_hash(buf + st[i], ln[i], 2166136261u) & mask; e[ne++].v = 1.0f; }
    for (i = 0; i + 1 < nt; i++) {
        uint32_t h = mmspcl__ng_hash(buf + st[i], ln[i], 2166136261u ^ 0x5bd1e995u);
        h = mmspcl__ng_hash(" ", 1, h);
        e[ne].k = mmspcl__ng_hash(buf + st[i + 1], ln[i + 1], h) & mask;
        e[ne++].v = 1.0f;
    }
    ne = mmspcl__kv_finish(e, ne, idf, 1);
    /* block 2: character 2..5-grams inside each space-separated word padded with spaces (char_wb) */
    ne2 = ne;
    for (p = 0; p < n;) {
        size_t s0, w;
        char tmp[256];
        while (p < n && (unsigned char)buf[p] <= ' ') p++;
        if (p >= n) break;
        s0 = p;
        while (p < n && (unsigned char)buf[p] > ' ') p++;
        w = p - s0 < sizeof tmp - 2 ? p - s0 : sizeof tmp - 2;
        tmp[0] = ' ';
        memcpy(tmp + 1, buf + s0, w);
        tmp[w + 1] = ' ';
        nw++;
        for (g = 2; g <= 5; g++)
            for (k = 0; k + g <= (int)w + 2; k++) {
                e[ne2].k = mmspcl__ng_hash(tmp + k, (size_t)g, 0x811c9dc5u ^ 0x27d4eb2du) & mask;
                e[ne2++].v = 1.0f;
            }
    }
    (void)nw;
    ne2 = ne + mmspcl__kv_finish(e + ne, ne2 - ne, idf, 1);
    /* both blocks (each l2-normalised) merged; colliding buckets add */
    k = mmspcl__kv_finish(e, ne2, NULL, 0);
    /* kv_finish re-normalised the union: scale back to the sum of two unit blocks */
    for (i = 0; i < k; i++) e[i].v *= (float)sqrt(2.0);
    for (i = 0; i < k && i < cap; i++) { idx[i] = (int32_t)e[i].k; val[i] = e[i].v; }
    MMSPCL_FREE(buf); MMSPCL_FREE(st); MMSPCL_FREE(ln); MMSPCL_FREE(e);
    return k;
}

/* CSR rows of a split */
typedef struct mmspcl__csr { int n; int64_t *ptr; int32_t *idx; float *val; } mmspcl__csr;
static void mmspcl__csr_free(mmspcl__csr *c) { MMSPCL_FREE(c->ptr); MMSPCL_FREE(c->idx); MMSPCL_FREE(c->val); memset(c, 0, sizeof *c); }
static int mmspcl__csr_build(mmspcl__csr *c, const mmspcl_meld *s, int nbits, const float *idf) {
    int64_t cap = 1 << 16, nnz = 0;
    int i, k, tmpcap = 1 << 16;
    int32_t *ti = (int32_t *)MMSPCL_MALLOC(sizeof(int32_t) * (size_t)tmpcap);
    float *tv = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)tmpcap);
    memset(c, 0, sizeof *c);
    c->n = s->n_rows;
    c->ptr = (int64_t *)MMSPCL_MALLOC(sizeof(int64_t) * (size_t)(s->n_rows + 1));
    c->idx = (int32_t *)MMSPCL_MALLOC(sizeof(int32_t) * (size_t)cap);
    c->val = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)cap);
    if (!ti || !tv || !c->ptr || !c->idx || !c->val) goto oom;
    c->ptr[0] = 0;
    for (i = 0; i < s->n_rows; i++) {
        k = mmspcl_ngram_sparse(s->rows[i].utterance, nbits, idf, ti, tv, tmpcap);
        if (k < 0) goto oom;
        if (k > tmpcap) k = tmpcap;
        if (nnz + k > cap) {
            int32_t *a;
            float *b;
            while (nnz + k > cap) cap *= 2;
            a = (int32_t *)MMSPCL_REALLOC(c->idx, sizeof(int32_t) * (size_t)cap);
            if (!a) goto oom;
            c->idx = a;
            b = (float *)MMSPCL_REALLOC(c->val, sizeof(float) * (size_t)cap);
            if (!b) goto oom;
            c->val = b;
        }
        memcpy(c->idx + nnz, ti, sizeof(int32_t) * (size_t)k);
        memcpy(c->val + nnz, tv, sizeof(float) * (size_t)k);
        nnz += k;
        c->ptr[i + 1] = nnz;
    }
    MMSPCL_FREE(ti); MMSPCL_FREE(tv);
    return 0;
oom:
    MMSPCL_FREE(ti); MMSPCL_FREE(tv);
    mmspcl__csr_free(c);
    return -1;
}

/* log-probabilities of a linear model W [C][F] (float) on one sparse row */
static void mmspcl__lr_logp(const float *W, const float *b, int C, int64_t F, const int32_t *idx, const float *val, int nnz,
                            float *out) {
    double z[MMSPCL_MAX_CLASSES], mx, s = 0;
    int c, j;
    for (c = 0; c < C; c++) {
        double a = b[c];
        for (j = 0; j < nnz; j++) a += (double)W[(size_t)c * F + idx[j]] * val[j];
        z[c] = a;
    }
    mx = z[0];
    for (c = 1; c < C; c++) if (z[c] > mx) mx = z[c];
    for (c = 0; c < C; c++) s += exp(z[c] - mx);
    for (c = 0; c < C; c++) out[c] = (float)(z[c] - mx - log(s));
}

/* Multinomial logistic regression, mean cross-entropy + lambda/2 |W|^2, SGD over the rows
   rows[0..n) (shuffled each epoch by rng), step eta0 / (1 + eta0 lambda t), the decay applied
   through a scale factor so each update touches only the row's features. W [C][F] out. */
static void mmspcl__lr_train(const mmspcl__csr *X, const int *y, const int *rows, int n, int C, int64_t F, double lambda,
                             int epochs, double eta0, mmspcl_rng *rng, float *W, float *b, int *order) {
    double *w = (double *)MMSPCL_MALLOC(sizeof(double) * (size_t)F * C), sc = 1.0, t = 0;
    double bb[MMSPCL_MAX_CLASSES];
    int e, i, j, c;
    int64_t f;
    if (!w) return;
    memset(w, 0, sizeof(double) * (size_t)F * C);
    for (c = 0; c < C; c++) bb[c] = 0;
    memcpy(order, rows, sizeof(int) * (size_t)n);
    for (e = 0; e < epochs; e++) {
        mmspcl_rng_shuffle(rng, order, n);
        for (i = 0; i < n; i++) {
            const int r = order[i];
            const int64_t a0 = X->ptr[r], a1 = X->ptr[r + 1];
            const double eta = eta0 / (1.0 + eta0 * lambda * t);
            double z[MMSPCL_MAX_CLASSES], mx, s = 0;
            for (c = 0; c < C; c++) z[c] = bb[c];
            for (j = (int)a0; j < (int)a1; j++) {
                const double *wr = w + (size_t)X->idx[j] * C;
                for (c = 0; c < C; c++) z[c] += sc * wr[c] * X->val[j];
            }
            mx = z[0];
            for (c = 1; c < C; c++) if (z[c] > mx) mx = z[c];
            for (c = 0; c < C; c++) { z[c] = exp(z[c] - mx); s += z[c]; }
            for (c = 0; c < C; c++) z[c] = z[c] / s - (c == y[r]);
            sc *= 1.0 - eta * lambda;
            for (j = (int)a0; j < (int)a1; j++) {
                double *wr = w + (size_t)X->idx[j] * C;
                for (c = 0; c < C; c++) wr[c] -= eta * z[c] * X->val[j] / sc;
            }
            for (c = 0; c < C; c++) bb[c] -= eta * z[c];
            if (sc < 1e-4) {
                for (f = 0; f < F * C; f++) w[f] *= sc;
                sc = 1.0;
            }
            t += 1;
        }
    }
    for (f = 0; f < F; f++)
        for (c = 0; c < C; c++) W[(size_t)c * F + f] = (float)(w[(size_t)f * C + c] * sc);
    for (c = 0; c < C; c++) b[c] = (float)bb[c];
    MMSPCL_FREE(w);
}

static double mmspcl__lr_eval(const float *W, const float *b, int C, int64_t F, const mmspcl__csr *X, const int *y, float *logp,
                              double *acc) {
    int i, c, correct = 0;
    int64_t cm[MMSPCL_MAX_CLASSES * MMSPCL_MAX_CLASSES];
    mmspcl_metrics mt;
    int *pred = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)X->n);
    float tmp[MMSPCL_MAX_CLASSES];
    if (!pred) return -1;
    for (i = 0; i < X->n; i++) {
        float *o = logp ? logp + (size_t)i * C : tmp;
        int best = 0;
        mmspcl__lr_logp(W, b, C, F, X->idx + X->ptr[i], X->val + X->ptr[i], (int)(X->ptr[i + 1] - X->ptr[i]), o);
        for (c = 1; c < C; c++) if (o[c] > o[best]) best = c;
        pred[i] = best;
        correct += best == y[i];
    }
    (void)correct;
    mmspcl_confusion(y, pred, X->n, C, cm);
    mmspcl_metrics_from_confusion(cm, C, NULL, &mt);
    MMSPCL_FREE(pred);
    if (acc) *acc = mt.accuracy;
    return mt.weighted_f1;
}

/* ---- data ---- */
typedef struct mmspcl__md {
    int n, max_len;
    int32_t *ids;     /* [n][max_len] */
    int *len, *mask, *emo, *sent;
} mmspcl__md;

static void mmspcl__md_free(mmspcl__md *d) {
    MMSPCL_FREE(d->ids); MMSPCL_FREE(d->len); MMSPCL_FREE(d->mask); MMSPCL_FREE(d->emo); MMSPCL_FREE(d->sent);
    memset(d, 0, sizeof *d);
}

static mmspcl_status mmspcl__md_build(mmspcl__md *d, const mmspcl_meld *s, const mmspcl_bpe *tok, int max_len,
                                      mmspcl_error *err) {
    int di, i;
    mmspcl_turn *turns;
    mmspcl_status st = MMSPCL_OK;
    memset(d, 0, sizeof *d);
    d->n = s->n_rows;
    d->max_len = max_len;
    d->ids = (int32_t *)MMSPCL_MALLOC(sizeof(int32_t) * (size_t)s->n_rows * max_len);
    d->len = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)s->n_rows);
    d->mask = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)s->n_rows);
    d->emo = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)s->n_rows);
    d->sent = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)s->n_rows);
    turns = (mmspcl_turn *)MMSPCL_MALLOC(sizeof(mmspcl_turn) * (size_t)(s->n_rows + 1));
    if (!d->ids || !d->len || !d->mask || !d->emo || !d->sent || !turns) {
        MMSPCL_FREE(turns);
        mmspcl__md_free(d);
        return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "meld: out of memory");
    }
    for (i = 0; i < s->n_rows; i++) {
        turns[i].speaker = s->rows[i].speaker;
        turns[i].text = s->rows[i].utterance;
        d->emo[i] = s->rows[i].emotion;
        d->sent[i] = s->rows[i].sentiment;
    }
    for (di = 0; di < s->n_dialogues && !st; di++) {
        const int a = s->dialogue_start[di], b = s->dialogue_start[di + 1];
        st = mmspcl_spcl_prompts(tok, turns + a, b - a, max_len, d->ids + (size_t)a * max_len, d->len + a, d->mask + a, err);
    }
    MMSPCL_FREE(turns);
    if (st) mmspcl__md_free(d);
    return st;
}


/* rows[0..n) of src as a new set (ng not copied) */
static int mmspcl__md_subset(mmspcl__md *d, const mmspcl__md *src, const int *rows, int n) {
    int i;
    memset(d, 0, sizeof *d);
    d->n = n;
    d->max_len = src->max_len;
    d->ids = (int32_t *)MMSPCL_MALLOC(sizeof(int32_t) * (size_t)(n + 1) * src->max_len);
    d->len = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)(n + 1));
    d->mask = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)(n + 1));
    d->emo = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)(n + 1));
    d->sent = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)(n + 1));
    if (!d->ids || !d->len || !d->mask || !d->emo || !d->sent) { mmspcl__md_free(d); return -1; }
    for (i = 0; i < n; i++) {
        const int r = rows[i];
        memcpy(d->ids + (size_t)i * src->max_len, src->ids + (size_t)r * src->max_len, sizeof(int32_t) * src->max_len);
        d->len[i] = src->len[r]; d->mask[i] = src->mask[r]; d->emo[i] = src->emo[r]; d->sent[i] = src->sent[r];
    }
    return 0;
}

/* ---- vocabulary cut ---- */
typedef struct mmspcl__vcut {
    const char **vocab; int64_t n_vocab;      /* new id -> string (points into the full arrays) */
    const char **merges; int64_t n_merges;
    char *pool;                                /* "<mask>" etc. are in the full arrays already */
} mmspcl__vcut;

static mmspcl_status mmspcl__vocab_cut(mmspcl__vcut *vc, const mmspcl_bpe *full, const char *const *vocab, int64_t n_vocab,
                                       const char *const *merges, int64_t n_merges, const mmspcl__md *used,
                                       mmspcl_error *err) {
    unsigned char *keep = (unsigned char *)MMSPCL_MALLOC((size_t)n_vocab + 1);
    int32_t *mres = (int32_t *)MMSPCL_MALLOC(sizeof(int32_t) * (size_t)(n_merges + 1));
    int32_t *ml = (int32_t *)MMSPCL_MALLOC(sizeof(int32_t) * (size_t)(n_merges + 1));
    int32_t *mr = (int32_t *)MMSPCL_MALLOC(sizeof(int32_t) * (size_t)(n_merges + 1));
    int64_t i, r, nv = 0, nm = 0;
    char tmp[512];
    static const char *const specials[] = {"<s>", "<pad>", "</s>", "<unk>", "<mask>"};
    memset(vc, 0, sizeof *vc);
    if (!keep || !mres || !ml || !mr) goto oom;
    memset(keep, 0, (size_t)n_vocab);
    for (i = 0; i < (int64_t)used->n * used->max_len; i++) {
        const int row = (int)(i / used->max_len), col = (int)(i % used->max_len);
        if (col < used->len[row]) keep[used->ids[i]] = 1;
    }
    for (i = 0; i < 5; i++) { int32_t id = mmspcl_bpe_token_id(full, specials[i]); if (id >= 0) keep[id] = 1; }
    for (i = 0; i < n_vocab; i++) {   /* the byte alphabet: one code point */
        const unsigned char *s = (const unsigned char *)vocab[i];
        size_t L = strlen(vocab[i]);
        if (L == 1 || (L == 2 && s[0] >= 0xC0 && s[0] < 0xE0)) keep[i] = 1;
    }
    for (r = 0; r < n_merges; r++) {
        const char *sp = strchr(merges[r], ' ');
        size_t la;
        mres[r] = ml[r] = mr[r] = -1;
        if (!sp || strlen(merges[r]) >= sizeof tmp || merges[r][0] == '#') continue;
        la = (size_t)(sp - merges[r]);
        memcpy(tmp, merges[r], la); tmp[la] = 0;
        ml[r] = mmspcl_bpe_token_id(full, tmp);
        mr[r] = mmspcl_bpe_token_id(full, sp + 1);
        memcpy(tmp + la, sp + 1, strlen(sp + 1) + 1);
        mres[r] = mmspcl_bpe_token_id(full, tmp);
    }
    for (r = n_merges - 1; r >= 0; r--)   /* parts of kept tokens (made by earlier merges) */
        if (mres[r] >= 0 && keep[mres[r]] && ml[r] >= 0 && mr[r] >= 0) { keep[ml[r]] = 1; keep[mr[r]] = 1; }
    vc->vocab = (const char **)MMSPCL_MALLOC(sizeof(char *) * (size_t)n_vocab);
    vc->merges = (const char **)MMSPCL_MALLOC(sizeof(char *) * (size_t)(n_merges + 1));
    if (!vc->vocab || !vc->merges) goto oom;
    for (i = 0; i < n_vocab; i++) if (keep[i] && i != mmspcl_bpe_mask_id(full)) vc->vocab[nv++] = vocab[i];
    if (mmspcl_bpe_mask_id(full) >= 0) vc->vocab[nv++] = vocab[mmspcl_bpe_mask_id(full)];
    for (r = 0; r < n_merges; r++)
        if (mres[r] >= 0 && ml[r] >= 0 && mr[r] >= 0 && keep[mres[r]] && keep[ml[r]] && keep[mr[r]]) vc->merges[nm++] = merges[r];
    vc->n_vocab = nv;
    vc->n_merges = nm;
    MMSPCL_FREE(keep); MMSPCL_FREE(mres); MMSPCL_FREE(ml); MMSPCL_FREE(mr);
    return MMSPCL_OK;
oom:
    MMSPCL_FREE(keep); MMSPCL_FREE(mres); MMSPCL_FREE(ml); MMSPCL_FREE(mr);
    MMSPCL_FREE(vc->vocab); MMSPCL_FREE(vc->merges);
    return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "meld: out of memory cutting the vocabulary");
}

/* ---- training helpers ---- */
/* t (mask row) and v (mean over the prompt) of rows idx[0..n) */
static mmspcl_status mmspcl__rt_embed(mmspcl_rt *m, const mmspcl__md *d, const int *idx, int n, int B, float *t,
                                      float *v, mmspcl_meld_progress_fn progress, void *user, const char *stage,
                                      mmspcl_error *err) {
    const int H = m->cfg.hidden_size;
    int32_t *ids = (int32_t *)MMSPCL_MALLOC(sizeof(int32_t) * (size_t)B * d->max_len);
    int *lens = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)B);
    int i, b, j, k;
    mmspcl_status st = MMSPCL_OK;
    if (!ids || !lens) { st = mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "meld: out of memory"); goto done; }
    for (i = 0; i < n; i += B) {
        const int nb = n - i < B ? n - i : B;
        int start = 0;
        for (b = 0; b < nb; b++) {
            const int r = idx ? idx[i + b] : i + b;
            memcpy(ids + (size_t)b * d->max_len, d->ids + (size_t)r * d->max_len, sizeof(int32_t) * d->max_len);
            lens[b] = d->len[r];
        }
        if ((st = mmspcl_rt_forward(m, ids, lens, nb, d->max_len, err))) goto done;
        for (b = 0; b < nb; b++) {
            const int r = idx ? idx[i + b] : i + b;
            if (t) memcpy(t + (size_t)(i + b) * H, m->out + (size_t)(start + d->mask[r]) * H, sizeof(float) * H);
            if (v) {
                float *vr = v + (size_t)(i + b) * H;
                for (k = 0; k < H; k++) vr[k] = 0.0f;
                for (j = 0; j < lens[b]; j++)
                    for (k = 0; k < H; k++) vr[k] += m->out[(size_t)(start + j) * H + k];
                for (k = 0; k < H; k++) vr[k] /= (float)lens[b];
            }
            start += lens[b];
        }
        if (progress) progress(user, stage, i + nb, n, NULL);
    }
done:
    MMSPCL_FREE(ids);
    MMSPCL_FREE(lens);
    return st;
}

/* nearest class mean by G (cosine) */
static void mmspcl__proto_pred(const float *z, int n, int H, const double *means, int C, int *pred) {
    int i, c, k;
    for (i = 0; i < n; i++) {
        double best = -2;
        int bc = 0;
        for (c = 0; c < C; c++) {
            double dot = 0, na = 0, nb = 0, cs;
            for (k = 0; k < H; k++) {
                dot += (double)z[(size_t)i * H + k] * means[(size_t)c * H + k];
                na += (double)z[(size_t)i * H + k] * z[(size_t)i * H + k];
                nb += means[(size_t)c * H + k] * means[(size_t)c * H + k];
            }
            cs = dot / (fmax(sqrt(na), 1e-8) * fmax(sqrt(nb), 1e-8));
            if (cs > best) { best = cs; bc = c; }
        }
        pred[i] = bc;
    }
}

static double mmspcl__wf1(const int *y, const int *p, int n, int C, double *acc) {
    int64_t cm[MMSPCL_MAX_CLASSES * MMSPCL_MAX_CLASSES];
    mmspcl_metrics mt;
    mmspcl_confusion(y, p, n, C, cm);
    mmspcl_metrics_from_confusion(cm, C, NULL, &mt);
    if (acc) *acc = mt.accuracy;
    return mt.weighted_f1;
}

/* ---- the log kept in the model file ---- */
typedef struct mmspcl__mlog { float *x; int n, cap, w; } mmspcl__mlog;
static void mmspcl__mlog_add(mmspcl__mlog *l, double a, double b, double c) {
    if (l->n == l->cap) {
        int nc = l->cap ? 2 * l->cap : 64;
        float *p = (float *)MMSPCL_REALLOC(l->x, sizeof(float) * (size_t)nc * 3);
        if (!p) return;
        l->x = p;
        l->cap = nc;
    }
    l->x[l->n * 3] = (float)a; l->x[l->n * 3 + 1] = (float)b; l->x[l->n * 3 + 2] = (float)c;
    l->n++;
}
static mmspcl_status mmspcl__mlog_write(const mmspcl__mlog *l, mmspcl_writer *wr, const char *name, mmspcl_error *err) {
    int64_t sh[2];
    if (!l->n) return MMSPCL_OK;
    sh[0] = l->n; sh[1] = 3;
    return mmspcl_writer_add_tensor(wr, name, MMSPCL_F32, 2, sh, l->x, sizeof(float) * (size_t)l->n * 3, err);
}
static void mmspcl__mlog_read(mmspcl__mlog *l, const mmspcl_weights *w, const char *name) {
    const mmspcl_tensor *t = mmspcl_weights_find(w, name);
    int64_t i;
    if (!t || t->dtype != MMSPCL_F32 || t->ndim != 2 || t->ne[1] != 3) return;
    for (i = 0; i < t->ne[0]; i++) {
        const float *r = (const float *)t->data + i * 3;
        mmspcl__mlog_add(l, r[0], r[1], r[2]);
    }
}

static void mmspcl__msg(mmspcl_meld_progress_fn progress, void *user, const char *stage, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    if (!progress) return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    progress(user, stage, 0, 0, buf);
}

/* checkpoint: encoder + heads with AdamW state, the best weights so far, stage/epoch, rngs, logs */
static mmspcl_status mmspcl__ckpt_write(const char *path, const mmspcl_rt *m, const mmspcl_params *Ph,
                                        const double *best, int stage, int epoch, double best_f1, int bad,
                                        const mmspcl_rng *rng, const mmspcl_rng *qrng, const mmspcl__mlog *lm,
                                        const mmspcl__mlog *ls, mmspcl_error *err) {
    mmspcl_writer *wr = mmspcl_writer_create();
    float *h1 = NULL, *h2 = NULL, *hb = NULL, *hm = NULL;
    int64_t sh[1];
    mmspcl_status st;
    int i;
    char key[64];
    if (!wr) return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "checkpoint: out of memory");
    st = mmspcl_params_write(&m->P, wr, "", 1, &h1, err);
    if (!st) st = mmspcl_params_write(Ph, wr, "heads", 0, &h2, err);
    if (!st) {
        mmspcl_writer_set_int(wr, "ckpt.stage", stage);
        mmspcl_writer_set_int(wr, "ckpt.epoch", epoch);
        mmspcl_writer_set_int(wr, "ckpt.bad", bad);
        mmspcl_writer_set_float(wr, "ckpt.best_f1", best_f1);
        for (i = 0; i < 4; i++) {
            snprintf(key, sizeof key, "ckpt.rng.%d", i);
            mmspcl_writer_set_int(wr, key, (int64_t)rng->s[i]);
            snprintf(key, sizeof key, "ckpt.qrng.%d", i);
            mmspcl_writer_set_int(wr, key, (int64_t)qrng->s[i]);
        }
        mmspcl_writer_set_int(wr, "ckpt.head_step", Ph->step);
        hm = (float *)MMSPCL_MALLOC(sizeof(float) * (2 * Ph->n + 1));
        if (!hm) st = mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "checkpoint: out of memory");
        else {
            size_t k;
            for (k = 0; k < Ph->n; k++) { hm[k] = (float)Ph->m[k]; hm[Ph->n + k] = (float)Ph->v[k]; }
            sh[0] = (int64_t)(2 * Ph->n);
            st = mmspcl_writer_add_tensor(wr, "ckpt.head_moments", MMSPCL_F32, 1, sh, hm, sizeof(float) * (size_t)sh[0], err);
        }
        if (!st && best) {
            hb = (float *)MMSPCL_MALLOC(sizeof(float) * (m->P.n + Ph->n));
            if (!hb) st = mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "checkpoint: out of memory");
            else {
                size_t k;
                for (k = 0; k < m->P.n + Ph->n; k++) hb[k] = (float)best[k];
                sh[0] = (int64_t)(m->P.n + Ph->n);
                st = mmspcl_writer_add_tensor(wr, "ckpt.best", MMSPCL_F32, 1, sh, hb, sizeof(float) * (size_t)sh[0], err);
            }
        }
    }
    if (!st) st = mmspcl__mlog_write(lm, wr, "meld.log.mlm", err);
    if (!st) st = mmspcl__mlog_write(ls, wr, "meld.log.spcl", err);
    if (!st) st = mmspcl_writer_save(wr, path, NULL, NULL, err);
    mmspcl_writer_free(wr);
    MMSPCL_FREE(h1); MMSPCL_FREE(h2); MMSPCL_FREE(hb); MMSPCL_FREE(hm);
    return st;
}

/* ---- the recipe ---- */
mmspcl_status mmspcl_meld_train(const mmspcl_meld_recipe *r, const mmspcl_meld *train,
                                const mmspcl_meld *dev, const char *const *vocab, int64_t n_vocab,
                                const char *const *merges, int64_t n_merges, const char *out_path,
                                mmspcl_meld_progress_fn progress, void *user, mmspcl_error *err) {
    const int C = MMSPCL_NUM_EMOTIONS, CS = MMSPCL_NUM_SENTIMENTS, H = r->hidden, D = MMSPCL_NUM_EMOTIONS + MMSPCL_NUM_SENTIMENTS, ML = r->max_len;
    const int64_t F = (int64_t)1 << r->ngram_bits;
    mmspcl_bpe *full = NULL, *tok = NULL;
    mmspcl__vcut vc;
    mmspcl__md dtr, ddv, tmpd, denc, dho;
    int *ho_rows = NULL, *enc_rows = NULL;
    float *aho = NULL;
    mmspcl_rt m;
    mmspcl_roberta_config cfg;
    mmspcl_params Ph;
    mmspcl_lin head_e, head_s;
    mmspcl_adamw_cfg opt, hopt;
    mmspcl_rng rng;
    mmspcl_spcl S;
    mmspcl__mlog lm, ls, lv;
    mmspcl_writer *wr = NULL;
    mmspcl_status st = MMSPCL_OK;
    int32_t *chunks = NULL, *bids = NULL, *old2new = NULL;
    int *clen = NULL, n_chunks = 0, *order = NULL, *blen = NULL, *keep = NULL, *rows = NULL, *pred = NULL;
    float *tt = NULL, *tv = NULL, *dt = NULL, *dv = NULL, *dout = NULL, *idf = NULL, *hold_list[12];
    float *lrw[2] = {NULL, NULL}, lrb[2][MMSPCL_MAX_CLASSES], *atr = NULL, *adv = NULL;
    double *zd = NULL, *dz = NULL, *lg = NULL, *dlg = NULL, *means = NULL, *diff = NULL, *best = NULL, *zall = NULL;
    int32_t *tgt = NULL;
    int start_stage = 0, start_epoch = 0, e, i, j, k, bad = 0, n_hold = 0, best_epoch = -1;
    double best_f1 = -1.0;
    void *enc_hold = NULL;
    mmspcl_msve_model ME, MS, MV[3];
    int have_me = 0, have_ms = 0, have_mv[3] = {0, 0, 0};
    memset(&vc, 0, sizeof vc);
    memset(&dtr, 0, sizeof dtr); memset(&ddv, 0, sizeof ddv); memset(&tmpd, 0, sizeof tmpd);
    memset(&denc, 0, sizeof denc); memset(&dho, 0, sizeof dho);
    memset(&m, 0, sizeof m); memset(&S, 0, sizeof S);
    memset(&lm, 0, sizeof lm); memset(&ls, 0, sizeof ls); memset(&lv, 0, sizeof lv);
    mmspcl_params_init(&Ph);
    for (i = 0; i < 12; i++) hold_list[i] = NULL;

    /* 1. vocabulary: the full BPE, the train prompts, the cut */
    if ((st = mmspcl_bpe_from_arrays(&full, vocab, NULL, n_vocab, merges, NULL, n_merges, err))) goto done;
    if ((st = mmspcl__md_build(&tmpd, train, full, ML, err))) goto done;
    if ((st = mmspcl__vocab_cut(&vc, full, vocab, n_vocab, merges, n_merges, &tmpd, err))) goto done;
    mmspcl__md_free(&tmpd);
    if ((st = mmspcl_bpe_from_arrays(&tok, vc.vocab, NULL, vc.n_vocab, vc.merges, NULL, vc.n_merges, err))) goto done;
    mmspcl__msg(progress, user, "vocab", "vocabulary cut to %lld tokens and %lld merges (from %lld / %lld)",
                (long long)vc.n_vocab, (long long)vc.n_merges, (long long)n_vocab, (long long)n_merges);
    if ((st = mmspcl__md_build(&dtr, train, tok, ML, err)) || (st = mmspcl__md_build(&ddv, dev, tok, ML, err))) goto done;
    /* every 5th training dialogue (index % 5 == 4) is held out of the encoder's supervised
       training: the MSVE heads learn from its features, which the encoder has not fitted */
    {
        int di, ne_ = 0, nh_ = 0;
        ho_rows = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)(dtr.n + 1));
        enc_rows = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)(dtr.n + 1));
        if (!ho_rows || !enc_rows) goto oom;
        for (di = 0; di < train->n_dialogues; di++)
            for (i = train->dialogue_start[di]; i < train->dialogue_start[di + 1]; i++) {
                if (di % 5 == 4 && r->holdout) ho_rows[nh_++] = i;
                else enc_rows[ne_++] = i;
            }
        if (!r->holdout) { memcpy(ho_rows, enc_rows, sizeof(int) * (size_t)ne_); nh_ = ne_; }
        if (mmspcl__md_subset(&denc, &dtr, enc_rows, ne_) || mmspcl__md_subset(&dho, &dtr, ho_rows, nh_)) goto oom;
    }
    (void)old2new;

    /* 2. encoder */
    memset(&cfg, 0, sizeof cfg);
    cfg.vocab_size = (int)vc.n_vocab; cfg.hidden_size = H; cfg.num_layers = r->layers; cfg.num_heads = r->heads;
    cfg.intermediate_size = r->ffn; cfg.max_positions = ML + 2; cfg.type_vocab_size = 1;
    cfg.pad_id = mmspcl_bpe_pad_id(tok); cfg.layer_norm_eps = 1e-5f;
    {
        int maxb = r->batch > r->mlm_batch ? r->batch : r->mlm_batch;
        if ((st = mmspcl_rt_create(&m, &cfg, 1, r->seed, maxb * ML, ML, err))) goto done;
    }
    mmspcl_rng_seed(&rng, r->seed ^ 0x9E3779B97F4A7C15ull);
    mmspcl_lin_create(&head_e, &Ph, "emotion", H, C, &rng);
    mmspcl_lin_create(&head_s, &Ph, "sentiment", H, CS, &rng);
    if (Ph.oom) goto oom;
    mmspcl_adamw_defaults(&opt);
    mmspcl_adamw_defaults(&hopt);
    if ((st = mmspcl_spcl_init(&S, C, H, r->pool_size, r->K, r->temperature, r->seed + 7, err))) goto done;

    /* MLM chunks: each train dialogue as <s> u_0 u_1 ... cut into pieces of <= ML tokens */
    {
        int cap = 0, di;
        const int32_t bos = mmspcl_bpe_bos_id(tok), eos = mmspcl_bpe_eos_id(tok);
        for (di = 0; di < train->n_dialogues; di++) {
            const int a = train->dialogue_start[di], b = train->dialogue_start[di + 1];
            int pos = 0;
            for (i = a; i <= b; i++) {
                /* u_i is the prompt's context copy of turn i: take it from the last prompt of the
                   dialogue would lose truncated turns; re-encode instead */
                int32_t u[512];
                int nu = 0;
                if (i < b) {
                    char *s = mmspcl_spcl_clean(train->rows[i].speaker, ":", train->rows[i].utterance);
                    if (!s) goto oom;
                    nu = mmspcl_bpe_encode(tok, s, strlen(s), u, 510);
                    MMSPCL_FREE(s);
                    if (nu > 510 || nu < 0) nu = nu < 0 ? 0 : 510;
                    if (nu > ML - 2) nu = ML - 2;
                    u[nu++] = eos;
                }
                if (i == b || pos + nu > ML) {   /* close the current chunk */
                    if (pos > 1) { clen[n_chunks - 1] = pos; }
                    else if (pos == 1) n_chunks--;
                    pos = 0;
                    if (i == b) break;
                }
                if (pos == 0) {
                    if (n_chunks == cap) {
                        int nc = cap ? cap * 2 : 1024;
                        int32_t *p = (int32_t *)MMSPCL_REALLOC(chunks, sizeof(int32_t) * (size_t)nc * ML);
                        int *q;
                        if (!p) goto oom;
                        chunks = p;
                        q = (int *)MMSPCL_REALLOC(clen, sizeof(int) * (size_t)nc);
                        if (!q) goto oom;
                        clen = q;
                        cap = nc;
                    }
                    n_chunks++;
                    chunks[(size_t)(n_chunks - 1) * ML] = bos;
                    pos = 1;
                }
                memcpy(chunks + (size_t)(n_chunks - 1) * ML + pos, u, sizeof(int32_t) * (size_t)nu);
                pos += nu;
                clen[n_chunks - 1] = pos;
            }
        }
    }
    mmspcl__msg(progress, user, "data", "%d train prompts (%d train the encoder, %d the heads), %d dev prompts, %d MLM chunks of <= %d tokens",
                dtr.n, denc.n, dho.n, ddv.n, n_chunks, ML);

    {
        const int B = r->batch > r->mlm_batch ? r->batch : r->mlm_batch;
        bids = (int32_t *)MMSPCL_MALLOC(sizeof(int32_t) * (size_t)B * ML);
        blen = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)B);
        rows = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)B * ML);
        tgt = (int32_t *)MMSPCL_MALLOC(sizeof(int32_t) * (size_t)B * ML);
        dout = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)B * ML * H);
        order = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)(n_chunks > dtr.n ? n_chunks : dtr.n));
        keep = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)dtr.n);
        zd = (double *)MMSPCL_MALLOC(sizeof(double) * (size_t)B * H);
        dz = (double *)MMSPCL_MALLOC(sizeof(double) * (size_t)B * H);
        lg = (double *)MMSPCL_MALLOC(sizeof(double) * (size_t)B * C);
        dlg = (double *)MMSPCL_MALLOC(sizeof(double) * (size_t)B * C);
        tt = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)dtr.n * H);
        tv = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)dtr.n * H);
        dt = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)ddv.n * H);
        dv = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)ddv.n * H);
        zall = (double *)MMSPCL_MALLOC(sizeof(double) * (size_t)dtr.n * H);
        means = (double *)MMSPCL_MALLOC(sizeof(double) * (size_t)C * H);
        diff = (double *)MMSPCL_MALLOC(sizeof(double) * (size_t)dtr.n);
        pred = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)(dtr.n > ddv.n ? dtr.n : ddv.n));
        best = (double *)MMSPCL_MALLOC(sizeof(double) * (m.P.n + Ph.n));
        if (!bids || !blen || !rows || !tgt || !dout || !order || !keep || !zd || !dz || !lg || !dlg || !tt || !tv ||
            !dt || !dv || !zall || !means || !diff || !pred || !best)
            goto oom;
    }

    /* resume */
    if (r->resume) {
        mmspcl_weights *w = NULL;
        int64_t v;
        char key[64];
        if ((st = mmspcl_weights_read(&w, r->resume, err))) goto done;
        if ((st = mmspcl_params_read(&m.P, w, "", err))) { mmspcl_weights_free(w); goto done; }
        {   /* heads: values (heads.NAME), moments (ckpt.head_moments), step (ckpt.head_step) */
            const mmspcl_tensor *hmt = mmspcl_weights_find(w, "ckpt.head_moments");
            int ti;
            size_t k;
            for (ti = 0; ti < Ph.n_info; ti++) {
                char nm[200];
                const mmspcl_tensor *ht;
                snprintf(nm, sizeof nm, "heads.%s", Ph.info[ti].name);
                ht = mmspcl_weights_find(w, nm);
                if (!ht || ht->dtype != MMSPCL_F32 || (size_t)mmspcl_tensor_nelements(ht) != Ph.info[ti].n) {
                    st = mmspcl__t_fail(err, MMSPCL_ERR_FORMAT, "%s: tensor %s missing or of the wrong size", r->resume, nm);
                    mmspcl_weights_free(w);
                    goto done;
                }
                for (k = 0; k < Ph.info[ti].n; k++) Ph.w[Ph.info[ti].off + k] = ((const float *)ht->data)[k];
            }
            if (hmt && hmt->dtype == MMSPCL_F32 && (size_t)hmt->ne[0] == 2 * Ph.n)
                for (k = 0; k < Ph.n; k++) { Ph.m[k] = ((const float *)hmt->data)[k]; Ph.v[k] = ((const float *)hmt->data)[Ph.n + k]; }
            if (mmspcl_weights_get_int(w, "ckpt.head_step", &v)) Ph.step = v;
        }
        mmspcl_rt_sync(&m);
        if (mmspcl_weights_get_int(w, "ckpt.stage", &v)) start_stage = (int)v;
        if (mmspcl_weights_get_int(w, "ckpt.epoch", &v)) start_epoch = (int)v + 1;
        if (mmspcl_weights_get_int(w, "ckpt.bad", &v)) bad = (int)v;
        mmspcl_weights_get_float(w, "ckpt.best_f1", &best_f1);
        for (i = 0; i < 4; i++) {
            snprintf(key, sizeof key, "ckpt.rng.%d", i);
            if (mmspcl_weights_get_int(w, key, &v)) rng.s[i] = (uint64_t)v;
            snprintf(key, sizeof key, "ckpt.qrng.%d", i);
            if (mmspcl_weights_get_int(w, key, &v)) S.rng.s[i] = (uint64_t)v;
        }
        {
            const mmspcl_tensor *bt = mmspcl_weights_find(w, "ckpt.best");
            if (bt && bt->dtype == MMSPCL_F32 && (size_t)bt->ne[0] == m.P.n + Ph.n)
                for (i = 0; i < (int)(m.P.n + Ph.n); i++) best[i] = ((const float *)bt->data)[i];
        }
        mmspcl__mlog_read(&lm, w, "meld.log.mlm");
        mmspcl__mlog_read(&ls, w, "meld.log.spcl");
        mmspcl_weights_free(w);
        mmspcl__msg(progress, user, "resume", "resuming %s at stage %d epoch %d", r->resume, start_stage, start_epoch);
    }

    /* 3. MLM pretraining on the train dialogues */
    if (start_stage == 0) {
        const int B = r->mlm_batch, spe = (n_chunks + B - 1) / B;
        const int64_t total = (int64_t)spe * r->mlm_epochs;
        const int32_t mask_id = mmspcl_bpe_mask_id(tok);
        for (e = start_epoch; e < r->mlm_epochs; e++) {
            double sum = 0.0;
            int nsum = 0, b;
            for (i = 0; i < n_chunks; i++) order[i] = i;
            mmspcl_rng_shuffle(&rng, order, n_chunks);
            for (b = 0; b < n_chunks; b += B) {
                const int nb = n_chunks - b < B ? n_chunks - b : B;
                int T = 0, nm = 0;
                double loss;
                for (i = 0; i < nb; i++) {
                    const int c = order[b + i];
                    int32_t *row = bids + (size_t)i * ML;
                    memcpy(row, chunks + (size_t)c * ML, sizeof(int32_t) * (size_t)clen[c]);
                    blen[i] = clen[c];
                    for (j = 0; j < clen[c]; j++) {
                        const int32_t id = row[j];
                        if (id == mmspcl_bpe_bos_id(tok) || id == mmspcl_bpe_eos_id(tok)) continue;
                        if (mmspcl_rng_uniform(&rng) >= 0.15) continue;
                        rows[nm] = T + j;
                        tgt[nm++] = id;
                        {
                            const double u = mmspcl_rng_uniform(&rng);
                            if (u < 0.8) row[j] = mask_id;
                            else if (u < 0.9) row[j] = 4 + mmspcl_rng_int(&rng, cfg.vocab_size - 5);
                        }
                    }
                    T += clen[c];
                }
                if (!nm) continue;
                if ((st = mmspcl_rt_forward(&m, bids, blen, nb, ML, err))) goto done;
                mmspcl_params_zero_grad(&m.P);
                loss = mmspcl_rt_mlm_loss(&m, rows, tgt, nm, dout, err);
                if (loss < 0) { st = err ? err->status : MMSPCL_ERR_NOMEM; goto done; }
                if ((st = mmspcl_rt_backward(&m, dout, NULL, err))) goto done;
                mmspcl_grad_clip(&m.P, r->clip);
                mmspcl_adamw_step(&m.P, &opt, mmspcl_lr_cosine(m.P.step, total / 20, total, r->mlm_lr));
                mmspcl_rt_sync(&m);
                sum += loss;
                nsum++;
                if (progress) progress(user, "mlm", (int)(e * spe + b / B + 1), (int)total, NULL);
            }
            mmspcl__mlog_add(&lm, e + 1, sum / (nsum ? nsum : 1), 0.0);
            mmspcl__msg(progress, user, "mlm", "MLM epoch %d/%d: loss %.4f", e + 1, r->mlm_epochs, sum / (nsum ? nsum : 1));
            if (r->checkpoint &&
                (st = mmspcl__ckpt_write(r->checkpoint, &m, &Ph, NULL, 0, e, best_f1, bad, &rng, &S.rng, &lm, &ls, err)))
                goto done;
        }
        start_stage = 1;
        start_epoch = 0;
        /* a fresh optimiser for fine-tuning */
        memset(m.P.m, 0, sizeof(double) * m.P.n);
        memset(m.P.v, 0, sizeof(double) * m.P.n);
        m.P.step = 0;
    }

    /* 4. SPCL fine-tuning: SPCL loss with queues + curriculum, CE heads, early stop on dev F1 */
    if (start_stage == 1) {
        const int B = r->batch, E = r->spcl_epochs;
        const int64_t total = (int64_t)E * ((denc.n + B - 1) / B);
        for (e = start_epoch; e <= E; e++) {
            int counts[MMSPCL_MAX_CLASSES], nk, b, nsum = 0;
            double sum = 0.0, f1 = -1.0, acc = 0.0;
            /* embed train: class means, curriculum; score dev with them (the model after epoch e-1) */
            if ((st = mmspcl__rt_embed(&m, &denc, NULL, denc.n, B, tt, NULL, progress, user, "embed", err))) goto done;
            for (i = 0; i < denc.n * H; i++) zall[i] = tt[i];
            mmspcl_class_means(zall, denc.emo, denc.n, H, C, means, counts);
            if (e > 0) {
                if ((st = mmspcl__rt_embed(&m, &ddv, NULL, ddv.n, B, dt, NULL, NULL, NULL, NULL, err))) goto done;
                mmspcl__proto_pred(dt, ddv.n, H, means, C, pred);
                f1 = mmspcl__wf1(ddv.emo, pred, ddv.n, C, &acc);
                if (ls.n) ls.x[(ls.n - 1) * 3 + 2] = (float)f1;
                if (f1 > best_f1) {
                    best_f1 = f1;
                    best_epoch = e;
                    bad = 0;
                    memcpy(best, m.P.w, sizeof(double) * m.P.n);
                    memcpy(best + m.P.n, Ph.w, sizeof(double) * Ph.n);
                } else bad++;
                mmspcl__msg(progress, user, "spcl", "SPCL epoch %d/%d: dev weighted F1 %.4f accuracy %.4f (nearest class mean)%s",
                            e, E, f1, acc, bad ? "" : "  best");
                if (r->checkpoint &&
                    (st = mmspcl__ckpt_write(r->checkpoint, &m, &Ph, best, 1, e - 1, best_f1, bad, &rng, &S.rng, &lm, &ls, err)))
                    goto done;
                if (e == E || (r->patience > 0 && bad >= r->patience)) break;
            }
            if (r->curriculum) {
                mmspcl_curriculum_difficulty(zall, denc.emo, denc.n, H, means, counts, C, diff);
                nk = mmspcl_curriculum_select(diff, denc.n, e, E, &rng, keep);
            } else {
                for (i = 0; i < denc.n; i++) keep[i] = i;
                nk = denc.n;
            }
            mmspcl_rng_shuffle(&rng, keep, nk);
            mmspcl_spcl_reset(&S, means);
            for (b = 0; b < nk; b += B) {
                const int nb = nk - b < B ? nk - b : B;
                int ye[256], ys[256], start = 0;
                double loss = 0.0, l2;
                mmspcl_spcl_stats stt;
                for (i = 0; i < nb; i++) {
                    const int rr = keep[b + i];
                    memcpy(bids + (size_t)i * ML, denc.ids + (size_t)rr * ML, sizeof(int32_t) * ML);
                    blen[i] = denc.len[rr];
                    ye[i] = denc.emo[rr];
                    ys[i] = denc.sent[rr];
                }
                if ((st = mmspcl_rt_forward(&m, bids, blen, nb, ML, err))) goto done;
                for (i = 0; i < nb; i++) {
                    const float *zr = m.out + (size_t)(start + denc.mask[keep[b + i]]) * H;
                    for (k = 0; k < H; k++) zd[(size_t)i * H + k] = zr[k];
                    start += blen[i];
                }
                memset(dz, 0, sizeof(double) * (size_t)nb * H);
                mmspcl_params_zero_grad(&m.P);
                mmspcl_params_zero_grad(&Ph);
                if ((st = mmspcl_spcl_step(&S, zd, ye, nb, &loss, dz, &stt, err))) goto done;
                if (r->ce_weight > 0) {
                    mmspcl_lin_forward(&Ph, &head_e, zd, lg, nb);
                    l2 = mmspcl_ce_loss(lg, ye, nb, C, NULL, dlg);
                    for (i = 0; i < nb * C; i++) dlg[i] *= r->ce_weight;
                    mmspcl_lin_backward(&Ph, &head_e, zd, dlg, dz, nb);
                    loss += r->ce_weight * l2;
                }
                if (r->sent_weight > 0) {
                    mmspcl_lin_forward(&Ph, &head_s, zd, lg, nb);
                    l2 = mmspcl_ce_loss(lg, ys, nb, CS, NULL, dlg);
                    for (i = 0; i < nb * CS; i++) dlg[i] *= r->sent_weight;
                    mmspcl_lin_backward(&Ph, &head_s, zd, dlg, dz, nb);
                    loss += r->sent_weight * l2;
                }
                memset(dout, 0, sizeof(float) * (size_t)m.T * H);
                for (i = 0, start = 0; i < nb; i++) {
                    float *o = dout + (size_t)(start + denc.mask[keep[b + i]]) * H;
                    for (k = 0; k < H; k++) o[k] = (float)dz[(size_t)i * H + k];
                    start += blen[i];
                }
                if ((st = mmspcl_rt_backward(&m, dout, NULL, err))) goto done;
                mmspcl_grad_clip(&m.P, r->clip);
                mmspcl_adamw_step(&m.P, &opt, mmspcl_lr_cosine(m.P.step, r->warmup, total, r->lr));
                mmspcl_adamw_step(&Ph, &hopt, mmspcl_lr_cosine(Ph.step, r->warmup, total, r->head_lr));
                mmspcl_rt_sync(&m);
                sum += loss;
                nsum++;
                if (progress) progress(user, "spcl", b + nb, nk, NULL);
            }
            mmspcl__mlog_add(&ls, e + 1, sum / (nsum ? nsum : 1), -1.0);
            mmspcl__msg(progress, user, "spcl", "SPCL epoch %d/%d: %d of %d samples (curriculum), loss %.4f", e + 1, E, nk,
                        denc.n, sum / (nsum ? nsum : 1));
        }
        if (best_epoch >= 0 || best_f1 >= 0) {
            memcpy(m.P.w, best, sizeof(double) * m.P.n);
            memcpy(Ph.w, best + m.P.n, sizeof(double) * Ph.n);
            mmspcl_rt_sync(&m);
        }
        mmspcl__msg(progress, user, "spcl", "SPCL: best dev weighted F1 %.4f (kept)", best_f1);
    }

    /* 5. views and MSVE heads */
    if ((st = mmspcl__rt_embed(&m, &dho, NULL, dho.n, r->batch, tt, tv, progress, user, "features", err)) ||
        (st = mmspcl__rt_embed(&m, &ddv, NULL, ddv.n, r->batch, dt, dv, NULL, NULL, NULL, err)))
        goto done;
    for (i = 0; i < dho.n * H; i++) zall[i] = tt[i];
    mmspcl_class_means(zall, dho.emo, dho.n, H, C, means, NULL);
    /* the n-gram view: TF-IDF (idf from train) + logistic regression for emotion and sentiment,
       hyper-parameters chosen on dev; the train rows get out-of-fold log-probabilities (5 folds
       by dialogue) so the MSVE heads see the view as it behaves on unseen text */
    {
        mmspcl__csr xtr, xdv;
        int *df = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)F), *allr = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)dtr.n);
        int *ord = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)dtr.n), *fold = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)dtr.n);
        float *lp = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)(dtr.n > ddv.n ? dtr.n : ddv.n) * C);
        int64_t q;
        int task, di;
        static const double lambdas[3] = {1e-5, 3e-5, 1e-4};
        static const int epochs[2] = {8, 16};
        memset(&xtr, 0, sizeof xtr); memset(&xdv, 0, sizeof xdv);
        idf = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)F);
        lrw[0] = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)F * C);
        lrw[1] = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)F * CS);
        atr = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)dtr.n * D);
        adv = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)ddv.n * D);
        if (!df || !allr || !ord || !fold || !lp || !idf || !lrw[0] || !lrw[1] || !atr || !adv ||
            mmspcl__csr_build(&xtr, train, r->ngram_bits, NULL)) {
            MMSPCL_FREE(df); MMSPCL_FREE(allr); MMSPCL_FREE(ord); MMSPCL_FREE(fold); MMSPCL_FREE(lp);
            mmspcl__csr_free(&xtr);
            goto oom;
        }
        memset(df, 0, sizeof(int) * (size_t)F);
        for (q = 0; q < xtr.ptr[xtr.n]; q++) df[xtr.idx[q]]++;
        for (q = 0; q < F; q++) idf[q] = (float)(log((1.0 + dtr.n) / (1.0 + df[q])) + 1.0);
        mmspcl__csr_free(&xtr);
        if (mmspcl__csr_build(&xtr, train, r->ngram_bits, idf) || mmspcl__csr_build(&xdv, dev, r->ngram_bits, idf)) {
            MMSPCL_FREE(df); MMSPCL_FREE(allr); MMSPCL_FREE(ord); MMSPCL_FREE(fold); MMSPCL_FREE(lp);
            mmspcl__csr_free(&xtr); mmspcl__csr_free(&xdv);
            goto oom;
        }
        for (i = 0; i < dtr.n; i++) allr[i] = i;
        for (di = 0; di < train->n_dialogues; di++)
            for (i = train->dialogue_start[di]; i < train->dialogue_start[di + 1]; i++) fold[i] = di % 5;
        for (task = 0; task < 2; task++) {
            const int CC = task ? CS : C, *yy = task ? dtr.sent : dtr.emo, *yd = task ? ddv.sent : ddv.emo;
            double bestf = -1, bl = 1e-5, acc;
            int be = 8, li, ei, f;
            for (li = 0; li < 3; li++)
                for (ei = 0; ei < 2; ei++) {
                    mmspcl_rng lr_rng;
                    double f1;
                    mmspcl_rng_seed(&lr_rng, r->seed + 31);
                    mmspcl__lr_train(&xtr, yy, allr, dtr.n, CC, F, lambdas[li], epochs[ei], 0.5, &lr_rng, lrw[task], lrb[task], ord);
                    f1 = mmspcl__lr_eval(lrw[task], lrb[task], CC, F, &xdv, yd, NULL, &acc);
                    mmspcl__msg(progress, user, "ngram", "%s TF-IDF + LR, lambda %g, %d epochs: dev weighted F1 %.4f accuracy %.4f",
                                task ? "sentiment" : "emotion", lambdas[li], epochs[ei], f1, acc);
                    if (f1 > bestf) { bestf = f1; bl = lambdas[li]; be = epochs[ei]; }
                }
            /* out-of-fold train features */
            for (f = 0; f < 5; f++) {
                mmspcl_rng lr_rng;
                int nf = 0;
                for (i = 0; i < dtr.n; i++) if (fold[i] != f) allr[nf++] = i;
                mmspcl_rng_seed(&lr_rng, r->seed + 37 + f);
                mmspcl__lr_train(&xtr, yy, allr, nf, CC, F, bl, be, 0.5, &lr_rng, lrw[task], lrb[task], ord);
                for (i = 0; i < dtr.n; i++)
                    if (fold[i] == f)
                        mmspcl__lr_logp(lrw[task], lrb[task], CC, F, xtr.idx + xtr.ptr[i], xtr.val + xtr.ptr[i],
                                        (int)(xtr.ptr[i + 1] - xtr.ptr[i]), atr + (size_t)i * D + (task ? C : 0));
            }
            for (i = 0; i < dtr.n; i++) allr[i] = i;
            {   /* the final model on all of train */
                mmspcl_rng lr_rng;
                mmspcl_rng_seed(&lr_rng, r->seed + 31);
                mmspcl__lr_train(&xtr, yy, allr, dtr.n, CC, F, bl, be, 0.5, &lr_rng, lrw[task], lrb[task], ord);
            }
            bestf = mmspcl__lr_eval(lrw[task], lrb[task], CC, F, &xdv, yd, lp, &acc);
            for (i = 0; i < ddv.n; i++) memcpy(adv + (size_t)i * D + (task ? C : 0), lp + (size_t)i * CC, sizeof(float) * CC);
            mmspcl__mlog_add(&lv, 10 + task, bestf, acc);
            mmspcl__msg(progress, user, "ngram", "%s TF-IDF + LR (lambda %g, %d epochs): dev weighted F1 %.4f accuracy %.4f",
                        task ? "sentiment" : "emotion", bl, be, bestf, acc);
        }
        MMSPCL_FREE(df); MMSPCL_FREE(allr); MMSPCL_FREE(ord); MMSPCL_FREE(fold); MMSPCL_FREE(lp);
        mmspcl__csr_free(&xtr); mmspcl__csr_free(&xdv);
        if (!(aho = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)(dho.n + 1) * D))) goto oom;
        for (i = 0; i < dho.n; i++) memcpy(aho + (size_t)i * D, atr + (size_t)ho_rows[i] * D, sizeof(float) * D);
    }
    {
        mmspcl_dataset trs, dvs;
        mmspcl_msve_cfg mc;
        mmspcl_msve_train_cfg tc;
        mmspcl_train_report rep;
        float *mstd[3][2];
        const char *vname[3] = {"t", "a", "v"};
        const int vd[3] = {H, D, H};
        double acc;
        int mi;
        /* every view standardised with the train statistics */
        for (mi = 0; mi < 3; mi++) {
            const float *x = mi == 0 ? tt : mi == 1 ? aho : tv;
            const int W = vd[mi];
            mstd[mi][0] = (float *)MMSPCL_MALLOC(sizeof(float) * W);
            mstd[mi][1] = (float *)MMSPCL_MALLOC(sizeof(float) * W);
            if (!mstd[mi][0] || !mstd[mi][1]) goto oom;
            hold_list[n_hold++] = mstd[mi][0];
            hold_list[n_hold++] = mstd[mi][1];
            for (k = 0; k < W; k++) {
                double s = 0, s2 = 0;
                for (i = 0; i < dho.n; i++) s += x[(size_t)i * W + k];
                s /= dho.n;
                for (i = 0; i < dho.n; i++) s2 += (x[(size_t)i * W + k] - s) * (x[(size_t)i * W + k] - s);
                mstd[mi][0][k] = (float)s;
                mstd[mi][1][k] = (float)(sqrt(s2 / dho.n) > 1e-6 ? sqrt(s2 / dho.n) : 1.0);
            }
        }
        trs.x[0] = tt; trs.x[1] = aho; trs.x[2] = tv; trs.y = dho.emo; trs.n = dho.n;
        dvs.x[0] = dt; dvs.x[1] = adv; dvs.x[2] = dv; dvs.y = ddv.emo; dvs.n = ddv.n;
        mmspcl_msve_train_defaults(&tc);
        tc.epochs = r->msve_epochs; tc.standardize = 0; tc.lr = r->msve_lr; tc.seed = r->seed + 11; tc.patience = 5;
        memset(&mc, 0, sizeof mc);
        mc.n_classes = C; mc.hidden = r->msve_hidden; mc.act = MMSPCL_ACT_GELU; mc.dropout = r->msve_dropout;
        for (k = 0; k < 5; k++) {   /* 0 emotion ensemble, 1 sentiment ensemble, 2..4 single views */
            mmspcl_msve_model *M = k == 0 ? &ME : k == 1 ? &MS : &MV[k - 2];
            mc.dims[0] = H; mc.dims[1] = D; mc.dims[2] = H; mc.combos = 0;
            mc.n_classes = k == 1 ? CS : C;
            if (k >= 2) {
                const int vi = k - 2;
                mc.dims[0] = vi == 0 ? H : 0; mc.dims[1] = vi == 1 ? D : 0; mc.dims[2] = vi == 2 ? H : 0;
            }
            if ((st = mmspcl_msve_model_create(M, &mc, r->seed + 100 + k, err))) goto done;
            if (k == 0) have_me = 1; else if (k == 1) have_ms = 1; else have_mv[k - 2] = 1;
            for (mi = 0; mi < 3; mi++)
                if (mc.dims[mi]) {
                    M->mean[mi] = (float *)MMSPCL_MALLOC(sizeof(float) * vd[mi]);
                    M->std[mi] = (float *)MMSPCL_MALLOC(sizeof(float) * vd[mi]);
                    if (!M->mean[mi] || !M->std[mi]) goto oom;
                    memcpy(M->mean[mi], mstd[mi][0], sizeof(float) * vd[mi]);
                    memcpy(M->std[mi], mstd[mi][1], sizeof(float) * vd[mi]);
                }
            trs.y = k == 1 ? dho.sent : dho.emo;
            dvs.y = k == 1 ? ddv.sent : ddv.emo;
            if ((st = mmspcl_msve_train(M, &trs, &dvs, &tc, &rep, NULL, NULL, err))) goto done;
            if ((st = mmspcl_msve_model_predict(M, dvs.x, dvs.n, 0, pred, NULL, err))) goto done;
            {
                const double f1 = mmspcl__wf1(dvs.y, pred, dvs.n, k == 1 ? CS : C, &acc);
                mmspcl__mlog_add(&lv, k, f1, acc);
                mmspcl__msg(progress, user, "msve", "%s head: dev weighted F1 %.4f accuracy %.4f (epoch %d of %d run)",
                            k == 0 ? "emotion MSVE (t,a,v)" : k == 1 ? "sentiment MSVE (t,a,v)" : vname[k - 2],
                            f1, acc, rep.best_epoch + 1, rep.epochs_run);
            }
        }
        mmspcl__proto_pred(dt, ddv.n, H, means, C, pred);
        {
            const double f1 = mmspcl__wf1(ddv.emo, pred, ddv.n, C, &acc);
            mmspcl__mlog_add(&lv, 5, f1, acc);
            mmspcl__msg(progress, user, "msve", "t by nearest class mean: dev weighted F1 %.4f accuracy %.4f", f1, acc);
        }
    }

    /* 6. the model file */
    if (!(wr = mmspcl_writer_create())) goto oom;
    {
        float *hm = NULL, *pm = NULL;
        int64_t sh[2];
        const char *heads[5] = {"meld.emotion", "meld.sentiment", "meld.view.t", "meld.view.a", "meld.view.v"};
        if ((st = mmspcl_rt_write_config(&m, wr, err))) goto done;
        if ((st = mmspcl_rt_write_tensors(&m, wr, MMSPCL_F32, &enc_hold, err))) goto done;
        if (mmspcl_writer_set_str(wr, "tokenizer.model", "gpt2-bpe") ||
            mmspcl_writer_set_str_array(wr, "tokenizer.vocab", vc.vocab, NULL, vc.n_vocab) ||
            mmspcl_writer_set_str_array(wr, "tokenizer.merges", vc.merges, NULL, vc.n_merges) ||
            mmspcl_writer_set_str(wr, "general.name", "mmspcl-meld-text") ||
            mmspcl_writer_set_str(wr, "general.source", "trained by mmspcl train on MELD train_sent_emo.csv (GPL-3.0 data)") ||
            mmspcl_writer_set_int(wr, "meld.max_len", ML) || mmspcl_writer_set_int(wr, "meld.ngram_bits", r->ngram_bits) ||
            mmspcl_writer_set_int(wr, "meld.seed", (int64_t)r->seed) ||
            mmspcl_writer_set_float(wr, "meld.dev_f1_spcl", best_f1))
            goto oom;
        sh[0] = F;
        if ((st = mmspcl_writer_add_tensor(wr, "meld.idf", MMSPCL_F32, 1, sh, idf, sizeof(float) * (size_t)F, err))) goto done;
        sh[0] = C; sh[1] = F;
        if ((st = mmspcl_writer_add_tensor(wr, "meld.lr.emotion.weight", MMSPCL_F32, 2, sh, lrw[0], sizeof(float) * (size_t)(C * F), err))) goto done;
        if ((st = mmspcl_writer_add_tensor(wr, "meld.lr.emotion.bias", MMSPCL_F32, 1, sh, lrb[0], sizeof(float) * (size_t)C, err))) goto done;
        sh[0] = CS;
        if ((st = mmspcl_writer_add_tensor(wr, "meld.lr.sentiment.weight", MMSPCL_F32, 2, sh, lrw[1], sizeof(float) * (size_t)(CS * F), err))) goto done;
        if ((st = mmspcl_writer_add_tensor(wr, "meld.lr.sentiment.bias", MMSPCL_F32, 1, sh, lrb[1], sizeof(float) * (size_t)CS, err))) goto done;
        pm = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)C * H);
        if (!pm) goto oom;
        hold_list[n_hold++] = pm;
        for (i = 0; i < C * H; i++) pm[i] = (float)means[i];
        sh[0] = C; sh[1] = H;
        if ((st = mmspcl_writer_add_tensor(wr, "meld.protos", MMSPCL_F32, 2, sh, pm, sizeof(float) * (size_t)C * H, err))) goto done;
        for (k = 0; k < 5; k++) {
            const mmspcl_msve_model *M = k == 0 ? &ME : k == 1 ? &MS : &MV[k - 2];
            if ((st = mmspcl__t_msve_write(M, wr, heads[k], 0, &hm, err))) { MMSPCL_FREE(hm); goto done; }
            hold_list[n_hold++] = hm;
            hm = NULL;
        }
        if ((st = mmspcl__mlog_write(&lm, wr, "meld.log.mlm", err)) || (st = mmspcl__mlog_write(&ls, wr, "meld.log.spcl", err)) ||
            (st = mmspcl__mlog_write(&lv, wr, "meld.log.heads", err)))
            goto done;
        if ((st = mmspcl_writer_save(wr, out_path, NULL, NULL, err))) goto done;
    }
    goto done;
oom:
    st = mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "meld_train: out of memory");
done:
    if (wr) mmspcl_writer_free(wr);
    for (i = 0; i < n_hold; i++) MMSPCL_FREE(hold_list[i]);
    MMSPCL_FREE(enc_hold);
    if (have_me) mmspcl_msve_model_free(&ME);
    if (have_ms) mmspcl_msve_model_free(&MS);
    for (i = 0; i < 3; i++) if (have_mv[i]) mmspcl_msve_model_free(&MV[i]);
    mmspcl_bpe_free(full); mmspcl_bpe_free(tok);
    MMSPCL_FREE(vc.vocab); MMSPCL_FREE(vc.merges);
    mmspcl__md_free(&dtr); mmspcl__md_free(&ddv); mmspcl__md_free(&tmpd);
    mmspcl__md_free(&denc); mmspcl__md_free(&dho); MMSPCL_FREE(ho_rows); MMSPCL_FREE(enc_rows); MMSPCL_FREE(aho);
    mmspcl_rt_free(&m);
    mmspcl_params_free(&Ph);
    if (S.pool) mmspcl_spcl_free(&S);
    MMSPCL_FREE(chunks); MMSPCL_FREE(clen); MMSPCL_FREE(bids); MMSPCL_FREE(blen); MMSPCL_FREE(rows); MMSPCL_FREE(tgt);
    MMSPCL_FREE(dout); MMSPCL_FREE(order); MMSPCL_FREE(keep); MMSPCL_FREE(zd); MMSPCL_FREE(dz); MMSPCL_FREE(lg);
    MMSPCL_FREE(dlg); MMSPCL_FREE(tt); MMSPCL_FREE(tv); MMSPCL_FREE(dt); MMSPCL_FREE(dv); MMSPCL_FREE(zall);
    MMSPCL_FREE(means); MMSPCL_FREE(diff); MMSPCL_FREE(pred); MMSPCL_FREE(best); MMSPCL_FREE(idf);
    MMSPCL_FREE(lrw[0]); MMSPCL_FREE(lrw[1]); MMSPCL_FREE(atr); MMSPCL_FREE(adv);
    MMSPCL_FREE(lm.x); MMSPCL_FREE(ls.x); MMSPCL_FREE(lv.x);
    return st;
}

/* ---- quantized copy ---- */
mmspcl_status mmspcl_meld_quantize_file(const char *in_path, const char *out_path, mmspcl_dtype dtype,
                                        mmspcl_error *err) {
    mmspcl_weights *w = NULL;
    mmspcl_writer *wr = NULL;
    unsigned char *buf = NULL;
    size_t total = 0, off = 0;
    int64_t i;
    mmspcl_status st;
    if ((st = mmspcl_weights_read(&w, in_path, err))) return st;
    if (!(wr = mmspcl_writer_create())) { st = mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "quantize: out of memory"); goto done; }
    for (i = 0; i < w->n_kv; i++) {
        const mmspcl_kv *kv = &w->kv[i];
        int bad = 0;
        if (!strcmp(kv->key, "general.file_type")) continue;
        if (kv->type == MMSPCL_KV_INT) bad = mmspcl_writer_set_int(wr, kv->key, kv->i);
        else if (kv->type == MMSPCL_KV_FLOAT) bad = mmspcl_writer_set_float(wr, kv->key, kv->f);
        else if (kv->type == MMSPCL_KV_STR) bad = mmspcl_writer_set_str(wr, kv->key, kv->str);
        else bad = mmspcl_writer_set_str_array(wr, kv->key, kv->strs, kv->lens, kv->count);
        if (bad) { st = mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "quantize: out of memory"); goto done; }
    }
    mmspcl_writer_set_str(wr, "general.file_type", mmspcl_dtype_name(dtype));
    for (i = 0; i < w->n_tensors; i++) total += w->tensors[i].nbytes + 64;
    if (!(buf = (unsigned char *)MMSPCL_MALLOC(total + 1))) { st = mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "quantize: out of memory"); goto done; }
    for (i = 0; i < w->n_tensors; i++) {
        const mmspcl_tensor *t = &w->tensors[i];
        const int q = t->dtype == MMSPCL_F32 && t->ndim == 2 && t->ne[1] % 32 == 0 && strncmp(t->name, "meld.protos", 11) &&
                      strncmp(t->name, "meld.log", 8);
        const mmspcl_dtype dt = q ? dtype : t->dtype;
        size_t bytes = t->nbytes;
        if (q) {
            int64_t r;
            bytes = mmspcl_dtype_row_size(dt, t->ne[1]) * (size_t)t->ne[0];
            for (r = 0; r < t->ne[0]; r++)
                mmspcl_quantize_row(dt, (const float *)t->data + r * t->ne[1], buf + off + (size_t)r * mmspcl_dtype_row_size(dt, t->ne[1]), t->ne[1]);
        } else memcpy(buf + off, t->data, bytes);
        if ((st = mmspcl_writer_add_tensor(wr, t->name, dt, t->ndim, t->ne, buf + off, bytes, err))) goto done;
        off += (bytes + 63) / 64 * 64;
    }
    st = mmspcl_writer_save(wr, out_path, NULL, NULL, err);
done:
    if (wr) mmspcl_writer_free(wr);
    MMSPCL_FREE(buf);
    mmspcl_weights_free(w);
    return st;
}

/* ---- inference ---- */
void mmspcl_meld_model_free(mmspcl_meld_model *m) {
    if (!m) return;
    mmspcl_roberta_free(m->enc);
    mmspcl_bpe_free(m->tok);
    mmspcl_weights_free(m->w);
    MMSPCL_FREE(m->lr_w[0]);
    MMSPCL_FREE(m->lr_w[1]);
    memset(m, 0, sizeof *m);
}

mmspcl_status mmspcl_meld_model_load(mmspcl_meld_model *m, const char *path, mmspcl_error *err) {
    int64_t v;
    mmspcl_status st;
    const mmspcl_tensor *t;
    memset(m, 0, sizeof *m);
    if ((st = mmspcl_weights_open(&m->w, path, err))) return st;
    if (!mmspcl_weights_get_int(m->w, "meld.max_len", &v) || v < 16 || v > 4096) {
        st = mmspcl__t_fail(err, MMSPCL_ERR_FORMAT, "%s is not a MELD model (no meld.max_len): train one with mmspcl train", path);
        goto fail;
    }
    m->max_len = (int)v;
    m->max_batch = 16;
    if (!mmspcl_weights_get_int(m->w, "meld.ngram_bits", &v) || v < 4 || v > 24) {
        st = mmspcl__t_fail(err, MMSPCL_ERR_FORMAT, "%s: meld.ngram_bits missing or outside 4..24", path);
        goto fail;
    }
    m->ngram_bits = (int)v;
    t = mmspcl_weights_find(m->w, "meld.idf");
    if (!t || t->dtype != MMSPCL_F32 || t->ndim != 1 || t->ne[0] != ((int64_t)1 << m->ngram_bits)) {
        st = mmspcl__t_fail(err, MMSPCL_ERR_FORMAT, "%s: meld.idf must be f32 [2^%d]", path, m->ngram_bits);
        goto fail;
    }
    m->idf = (const float *)t->data;
    {
        static const char *const wn[2] = {"meld.lr.emotion.weight", "meld.lr.sentiment.weight"};
        static const char *const bn[2] = {"meld.lr.emotion.bias", "meld.lr.sentiment.bias"};
        const int CC[2] = {MMSPCL_NUM_EMOTIONS, MMSPCL_NUM_SENTIMENTS};
        const int64_t F = (int64_t)1 << m->ngram_bits;
        int k, c;
        for (k = 0; k < 2; k++) {
            const mmspcl_tensor *tb = mmspcl_weights_find(m->w, bn[k]);
            t = mmspcl_weights_find(m->w, wn[k]);
            if (!t || t->ndim != 2 || t->ne[0] != CC[k] || t->ne[1] != F || !tb || tb->dtype != MMSPCL_F32 || tb->ne[0] != CC[k] ||
                mmspcl_dtype_row_size(t->dtype, F) * (size_t)CC[k] != t->nbytes) {
                st = mmspcl__t_fail(err, MMSPCL_ERR_FORMAT, "%s: %s must be [%d][2^%d] and %s f32 [%d]", path, wn[k], CC[k],
                                    m->ngram_bits, bn[k], CC[k]);
                goto fail;
            }
            if (!(m->lr_w[k] = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)(CC[k] * F)))) {
                st = mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "out of memory");
                goto fail;
            }
            for (c = 0; c < CC[k]; c++)
                mmspcl_dequantize_row(t->dtype, (const unsigned char *)t->data + (size_t)c * mmspcl_dtype_row_size(t->dtype, F),
                                      m->lr_w[k] + (size_t)c * F, F);
            m->lr_b[k] = (const float *)tb->data;
        }
    }
    if ((st = mmspcl_roberta_load(&m->enc, m->w, m->max_batch, m->max_len, err))) goto fail;
    m->hidden = mmspcl_roberta_get_config(m->enc)->hidden_size;
    if ((st = mmspcl_bpe_from_weights(&m->tok, m->w, err))) goto fail;
    t = mmspcl_weights_find(m->w, "meld.protos");
    if (t && t->dtype == MMSPCL_F32 && t->ndim == 2 && t->ne[0] == MMSPCL_NUM_EMOTIONS && t->ne[1] == m->hidden)
        m->protos = (const float *)t->data;
    {   /* default heads: the better on dev of the MSVE ensemble and the LR (meld.log.heads rows
           [k, dev F1, dev accuracy]: k 0/1 MSVE emotion/sentiment, 10/11 LR emotion/sentiment) */
        const mmspcl_tensor *lh = mmspcl_weights_find(m->w, "meld.log.heads");
        int64_t r_;
        m->dev_f1[0][0] = m->dev_f1[0][1] = m->dev_f1[1][0] = m->dev_f1[1][1] = -1;
        if (lh && lh->dtype == MMSPCL_F32 && lh->ndim == 2 && lh->ne[1] == 3)
            for (r_ = 0; r_ < lh->ne[0]; r_++) {
                const float *row = (const float *)lh->data + r_ * 3;
                const int k = (int)row[0];
                if (k == 0 || k == 1) m->dev_f1[k][0] = row[1];
                if (k == 10 || k == 11) m->dev_f1[k - 10][1] = row[1];
            }
        m->emo_lr = m->dev_f1[0][1] > m->dev_f1[0][0];
        m->sent_lr = m->dev_f1[1][1] > m->dev_f1[1][0];
    }
    if ((st = mmspcl_msve_load(&m->emotion, m->w, "meld.emotion", err))) goto fail;
    if (mmspcl_weights_get_int(m->w, "meld.sentiment.n_classes", &v)) {
        if ((st = mmspcl_msve_load(&m->sentiment, m->w, "meld.sentiment", err))) goto fail;
        m->has_sentiment = 1;
    }
    return MMSPCL_OK;
fail:
    mmspcl_meld_model_free(m);
    return st;
}

mmspcl_status mmspcl_meld_features(mmspcl_meld_model *m, const mmspcl_turn *turns, int n, float *t,
                                   float *a, float *v, mmspcl_error *err) {
    const int H = m->hidden, ML = m->max_len, B = m->max_batch;
    int32_t *ids = (int32_t *)MMSPCL_MALLOC(sizeof(int32_t) * (size_t)n * ML);
    int *len = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)n), *mask = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)n);
    float *hid = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)B * ML * H);
    int i, b, j, k;
    mmspcl_status st;
    if (!ids || !len || !mask || !hid) { st = mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "meld_features: out of memory"); goto done; }
    if ((st = mmspcl_spcl_prompts(m->tok, turns, n, ML, ids, len, mask, err))) goto done;
    for (i = 0; i < n; i += B) {
        const int nb = n - i < B ? n - i : B;
        if ((st = mmspcl_roberta_forward(m->enc, ids + (size_t)i * ML, len + i, nb, ML, hid, err))) goto done;
        for (b = 0; b < nb; b++) {
            const float *hb = hid + (size_t)b * ML * H;
            if (t) memcpy(t + (size_t)(i + b) * H, hb + (size_t)mask[i + b] * H, sizeof(float) * H);
            if (v) {
                float *vr = v + (size_t)(i + b) * H;
                for (k = 0; k < H; k++) vr[k] = 0.0f;
                for (j = 0; j < len[i + b]; j++)
                    for (k = 0; k < H; k++) vr[k] += hb[(size_t)j * H + k];
                for (k = 0; k < H; k++) vr[k] /= (float)len[i + b];
            }
        }
    }
    if (a) {
        const int64_t F = (int64_t)1 << m->ngram_bits;
        const int D = MMSPCL_NUM_EMOTIONS + MMSPCL_NUM_SENTIMENTS;
        int cap = 1024, nz;
        int32_t *ix = (int32_t *)MMSPCL_MALLOC(sizeof(int32_t) * (size_t)cap);
        float *vx = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)cap);
        for (i = 0; i < n && !st; i++) {
            const char *txt = turns[i].text ? turns[i].text : "";
            for (;;) {
                nz = ix && vx ? mmspcl_ngram_sparse(txt, m->ngram_bits, m->idf, ix, vx, cap) : -1;
                if (nz < 0) { st = mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "meld_features: out of memory"); break; }
                if (nz <= cap) break;
                cap = nz;
                MMSPCL_FREE(ix); MMSPCL_FREE(vx);
                ix = (int32_t *)MMSPCL_MALLOC(sizeof(int32_t) * (size_t)cap);
                vx = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)cap);
            }
            if (st) break;
            mmspcl__lr_logp(m->lr_w[0], m->lr_b[0], MMSPCL_NUM_EMOTIONS, F, ix, vx, nz, a + (size_t)i * D);
            mmspcl__lr_logp(m->lr_w[1], m->lr_b[1], MMSPCL_NUM_SENTIMENTS, F, ix, vx, nz, a + (size_t)i * D + MMSPCL_NUM_EMOTIONS);
        }
        MMSPCL_FREE(ix); MMSPCL_FREE(vx);
    }
done:
    MMSPCL_FREE(ids); MMSPCL_FREE(len); MMSPCL_FREE(mask); MMSPCL_FREE(hid);
    return st;
}

static void mmspcl__softmax_rows(float *x, int n, int C) {
    int i;
    for (i = 0; i < n; i++) mmspcl_softmax(x + (size_t)i * C, C);
}

mmspcl_status mmspcl_meld_heads(mmspcl_meld_model *m, const float *t, const float *a, const float *v, int n,
                                const char *head, const char *sent_head, float *emo, float *sent, mmspcl_error *err) {
    const int H = m->hidden, D = MMSPCL_NUM_EMOTIONS + MMSPCL_NUM_SENTIMENTS;
    const float *x[3];
    mmspcl_msve single;
    int i, c;
    mmspcl_status st = MMSPCL_OK;
    x[0] = t; x[1] = a; x[2] = v;
    if (!head) head = m->emo_lr ? "lr" : "emotion";
    if (!sent_head) sent_head = m->sent_lr || !m->has_sentiment ? "lr" : "sentiment";
    if (emo) {
        if (!strcmp(head, "emotion")) {
            if ((st = mmspcl_msve_forward(&m->emotion, x, n, 0, emo, err))) return st;
        } else if (!strcmp(head, "lr")) {
            for (i = 0; i < n; i++) memcpy(emo + (size_t)i * MMSPCL_NUM_EMOTIONS, a + (size_t)i * D, sizeof(float) * MMSPCL_NUM_EMOTIONS);
        } else if (!strcmp(head, "protos")) {
            if (!m->protos) return mmspcl__t_fail(err, MMSPCL_ERR_NOT_FOUND, "meld_predict: the model has no meld.protos");
            int *pp = (int *)MMSPCL_MALLOC(sizeof(int) * (size_t)(n + 1));
            if (!pp) return mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "meld_predict: out of memory");
            mmspcl_proto_classify(t, n, H, m->protos, MMSPCL_NUM_EMOTIONS, pp, emo);
            MMSPCL_FREE(pp);
            for (i = 0; i < n * MMSPCL_NUM_EMOTIONS; i++) emo[i] /= 0.08f;
        } else {
            char prefix[64];
            snprintf(prefix, sizeof prefix, "meld.%s", head);
            if ((st = mmspcl_msve_load(&single, m->w, prefix, err))) return st;
            if ((st = mmspcl_msve_forward(&single, x, n, 0, emo, err))) return st;
        }
        mmspcl__softmax_rows(emo, n, MMSPCL_NUM_EMOTIONS);
    }
    if (sent) {
        if (!strcmp(sent_head, "lr")) {
            for (i = 0; i < n; i++)
                memcpy(sent + (size_t)i * MMSPCL_NUM_SENTIMENTS, a + (size_t)i * D + MMSPCL_NUM_EMOTIONS, sizeof(float) * MMSPCL_NUM_SENTIMENTS);
        } else if (m->has_sentiment) {
            if ((st = mmspcl_msve_forward(&m->sentiment, x, n, 0, sent, err))) return st;
        } else
            for (i = 0; i < n; i++) for (c = 0; c < MMSPCL_NUM_SENTIMENTS; c++) sent[i * MMSPCL_NUM_SENTIMENTS + c] = (float)(c == 0);
        mmspcl__softmax_rows(sent, n, MMSPCL_NUM_SENTIMENTS);
    }
    return st;
}

mmspcl_status mmspcl_meld_predict(mmspcl_meld_model *m, const mmspcl_turn *turns, int n,
                                  const char *head, float *emo, float *sent, mmspcl_error *err) {
    const int H = m->hidden, D = MMSPCL_NUM_EMOTIONS + MMSPCL_NUM_SENTIMENTS;
    float *t = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)n * H), *v = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)n * H);
    float *a = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)n * D);
    mmspcl_status st;
    if (!t || !v || !a) st = mmspcl__t_fail(err, MMSPCL_ERR_NOMEM, "meld_predict: out of memory");
    else if (!(st = mmspcl_meld_features(m, turns, n, t, a, v, err)))
        st = mmspcl_meld_heads(m, t, a, v, n, head, NULL, emo, sent, err);
    MMSPCL_FREE(t); MMSPCL_FREE(v); MMSPCL_FREE(a);
    return st;
}
#endif /* MMSPCL_TRAIN_ROBERTA_IMPL */


#ifdef __cplusplus
}
#endif

#endif /* MMSPCL_TRAIN_IMPLEMENTATION_DONE */
#endif /* MMSPCL_TRAIN_IMPLEMENTATION */
