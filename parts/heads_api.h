/* ---------------------------------------------------------------------------------------------
   MM-SPCL heads (inference): the forward halves of everything mmspcl_train.h trains.

   Row-major, PyTorch layout (a Linear weight is [out][in]); Linear weights in any dtype the
   kernels take, the rest f32. Linear layers, layer norms, GELU and attention run on the kernels
   (mmspcl_linear, mmspcl_layernorm, mmspcl_gelu, mmspcl_attention). A head struct holds pointers
   into a loaded weight file (zero copy) or into the caller's own arrays; it owns only the small
   arrays of sub-structs that the _load functions allocate (free with _free). mmspcl_train.h
   trains every head in double precision and saves it in the names these loaders read.

   Small layers (float in, float out; n = rows)
     mmspcl_head_linear_forward   y = x W^T + b
     mmspcl_head_ln_forward       layer norm over the last dimension
     mmspcl_head_mlp_forward      fc2(act(fc1 x)), act = GELU (erf) or ReLU
     mmspcl_head_block_forward    pre-LN transformer layer, self- or cross-attention, key mask
   Method parts
     mmspcl_score                 G(a,b) = (1 + cos(a,b)) / 2 + 1e-8      (SPCL's score)
     mmspcl_prune_apply / _forward cross-modal pruning (heads of size K)
     mmspcl_fuse_linear_forward   fusion (a): Linear over the concatenation
     mmspcl_mult_forward          fusion (b): pairwise cross-modal attention (MulT)
     mmspcl_mbt_forward           fusion (c): attention bottlenecks (MBT)
     mmspcl_msve_forward          MSVE: sum of the enabled combinations' logits
     mmspcl_proto_classify        nearest prototype by G
   Metrics
     mmspcl_confusion, mmspcl_metrics_from_confusion (accuracy, per-class P/R/F1, weighted F1
     exactly as scikit-learn's average='weighted', zero_division=0)
   Loading what mmspcl_train.h saved
     mmspcl_msve_load, mmspcl_mult_load, mmspcl_mbt_load, mmspcl_fuse_linear_load,
     mmspcl_head_linear_load (SPCL's linear classifier), mmspcl_protos_load
     (each with a name prefix; tensor names are listed in mmspcl_train.h)
   ------------------------------------------------------------------------------------------ */

/* Modalities and their combinations. A combination is a bit mask over {t, a, v}; its input is
   the concatenation of its modalities in the order t, a, v. A SET of combinations is a bit mask
   over combination masks 1..7: bit c stands for combination c. */
#define MMSPCL_MOD_T 1
#define MMSPCL_MOD_A 2
#define MMSPCL_MOD_V 4
#define MMSPCL_COMBO(c) (1u << (c))
#define MMSPCL_COMBOS_ALL 0xFEu /* t, a, ta, v, tv, av, tav */
#define MMSPCL_MAX_CLASSES 64

typedef enum mmspcl_act { MMSPCL_ACT_GELU = 0, MMSPCL_ACT_RELU = 1 } mmspcl_act;

/* A Linear layer: w is a [out][in] weight view in any dtype mmspcl_linear takes (f32, f16, bf16,
   q8_0, q4_0); b is f32 [out] or NULL. mmspcl_head_linear_f32 wraps plain float arrays. */
typedef struct mmspcl_head_linear { mmspcl_tensor w; const float *b; int in, out; } mmspcl_head_linear;
typedef struct mmspcl_head_ln { const float *g, *b; int dim; float eps; } mmspcl_head_ln;
typedef struct mmspcl_head_mlp { mmspcl_head_linear fc1, fc2; mmspcl_act act; } mmspcl_head_mlp;
typedef struct mmspcl_head_mha { mmspcl_head_linear q, k, v, o; int n_heads; } mmspcl_head_mha;
/* Pre-LN transformer layer:  x += Wo Attn(Wq LN_q(x), Wk kv, Wv kv),  kv = cross ? LN_kv(src) : LN_q(x)
                              x += MLP(LN_ff(x))                                               */
typedef struct mmspcl_head_block {
    mmspcl_head_ln ln_q, ln_kv, ln_ff;
    mmspcl_head_mha attn;
    mmspcl_head_mlp ff;
    int cross;
} mmspcl_head_block;

mmspcl_head_linear mmspcl_head_linear_f32(const float *w, const float *b, int in, int out);
/* y[n][out] = x[n][in] W^T + b   (mmspcl_linear; MMSPCL_ERR_NOMEM is its only failure) */
mmspcl_status mmspcl_head_linear_forward(const mmspcl_head_linear *l, const float *x, float *y, int n);
void mmspcl_head_ln_forward(const mmspcl_head_ln *l, const float *x, float *y, int n);
/* hidden: n * fc1.out floats of scratch */
mmspcl_status mmspcl_head_mlp_forward(const mmspcl_head_mlp *m, const float *x, float *y, int n,
                                      float *hidden);
/* Floats of scratch mmspcl_head_block_forward needs for nb sequences of tq (and tk) tokens. */
size_t mmspcl_head_block_scratch(const mmspcl_head_block *b, int nb, int tq, int tk);
/* nb sequences at once: x [nb][tq][D] is updated in place; src [nb][tk][D] (cross layers only);
   kmask [nb][tk] for cross layers, [nb][tq] for self layers (1 = attend; NULL = all). A query
   whose keys are all masked gets a zero attention output. */
mmspcl_status mmspcl_head_block_forward(const mmspcl_head_block *b, float *x, int nb, int tq,
                                        const float *src, int tk, const unsigned char *kmask,
                                        float *scratch);

/* SPCL score, on float vectors of length d. Zero vectors have cosine 0. */
float mmspcl_score(const float *a, const float *b, int d);

/* Cross-modal pruning for n samples. base [n][db], prune [n][dp]; both are cut into heads of K
   values (K is 16, 32 or 64 in the paper; any K > 0 works). db must be a multiple of K; the last
   pruning head is shorter when K does not divide dp, and is then compared with the first values
   of each base head. For every base head, the pruning head with the highest cosine similarity
   (ties: the lowest index; a zero vector has cosine 0) is zeroed. A pruning head can be chosen by
   several base heads; at most db/K heads are zeroed.
   mmspcl_prune_apply: pruned [n][dp] = prune with the chosen heads zeroed.
   mmspcl_prune_forward: out [n][db + dp] = base ++ pruned (the concatenation the heads fuse).
   kept (optional) [n][ceil(dp/K)] receives 1 for kept pruning heads, 0 for zeroed ones. */
mmspcl_status mmspcl_prune_apply(const float *base, int db, const float *prune, int dp, int K,
                                 int n, float *pruned, unsigned char *kept, mmspcl_error *err);
mmspcl_status mmspcl_prune_forward(const float *base, int db, const float *prune, int dp, int K,
                                   int n, float *out, unsigned char *kept, mmspcl_error *err);

/* Fusion (a): y = W [x_t ; x_a ; x_v] + b over the modalities with dims[m] > 0. */
typedef struct mmspcl_fuse_linear { int dims[3]; mmspcl_head_linear proj; } mmspcl_fuse_linear;
mmspcl_status mmspcl_fuse_linear_forward(const mmspcl_fuse_linear *f, const float *const x[3], int n,
                                         float *y, mmspcl_error *err);

/* Sequence heads: modality m is a sequence of seq[m] tokens of tok[m] floats per sample
   (for example a 1024-d text vector as 64 tokens of 16), m over the modalities with seq[m] > 0.
   Each token is projected to d_model and a learned position embedding is added. */

/* Fusion (b), MulT: one transformer per ordered pair (i, j), i != j: n_cross cross-attention
   layers (queries from i, keys/values from j's embedded tokens) then n_self self-attention
   layers, a final layer norm and a mean over i's tokens; the pair outputs are concatenated
   and projected to out_dim. Pairs are ordered i-major over present modalities. */
typedef struct mmspcl_mult {
    int seq[3], tok[3];
    int d_model, n_heads, n_cross, n_self, ff_mult, out_dim, n_pairs;
    mmspcl_act act;
    mmspcl_head_linear in_proj[3];
    const float *pos[3];             /* [seq[m]][d_model] */
    mmspcl_head_block *blocks;       /* [n_pairs][n_cross + n_self] (owned) */
    mmspcl_head_ln *final_ln;        /* [n_pairs] (owned) */
    mmspcl_head_linear out_proj;     /* n_pairs * d_model -> out_dim */
} mmspcl_mult;
mmspcl_status mmspcl_mult_forward(const mmspcl_mult *m, const float *const x[3], int n, float *y,
                                  mmspcl_error *err);
void mmspcl_mult_free(mmspcl_mult *m);

/* Fusion (c), attention bottlenecks (Nagrani et al. 2021): one transformer per modality of
   n_layers layers; layers before fusion_start see only their own tokens; from fusion_start on
   each modality's layer sees its tokens followed by n_fusion shared fusion tokens, and the
   fusion tokens are then averaged over the modalities. Output: each modality's tokens through a
   final layer norm, mean-pooled, concatenated, projected to out_dim. */
typedef struct mmspcl_mbt {
    int seq[3], tok[3];
    int d_model, n_heads, n_layers, fusion_start, n_fusion, ff_mult, out_dim, n_mod;
    mmspcl_act act;
    mmspcl_head_linear in_proj[3];
    const float *pos[3];
    const float *fusion_tokens;      /* [n_fusion][d_model] */
    mmspcl_head_block *blocks;       /* [n_mod][n_layers] over present modalities (owned) */
    mmspcl_head_ln final_ln[3];
    mmspcl_head_linear out_proj;     /* n_mod * d_model -> out_dim */
} mmspcl_mbt;
mmspcl_status mmspcl_mbt_forward(const mmspcl_mbt *m, const float *const x[3], int n, float *y,
                                 mmspcl_error *err);
void mmspcl_mbt_free(mmspcl_mbt *m);

/* MSVE: one MLP per enabled combination c (index = combination mask 1..7); the input of each
   modality is first standardised, (x - mean) / std, when mean/std are given. */
typedef struct mmspcl_msve {
    int n_classes;
    int dims[3];
    unsigned combos;                 /* enabled set (MMSPCL_COMBO bits) */
    mmspcl_head_mlp mlp[8];
    const float *mean[3], *std[3];
} mmspcl_msve;
/* logits [n][n_classes] = sum over the combinations in `combos` (0: all enabled) of their MLP's
   logits. x[m] is [n][dims[m]] (unused modalities may be NULL). */
mmspcl_status mmspcl_msve_forward(const mmspcl_msve *m, const float *const x[3], int n,
                                  unsigned combos, float *logits, mmspcl_error *err);

/* Nearest prototype by G: pred[i] = argmax_c G(z_i, protos_c); scores [n][C] optional. */
void mmspcl_proto_classify(const float *z, int n, int dim, const float *protos, int n_classes,
                           int *pred, float *scores);
/* argmax over each row of [n][C] (ties: the lowest index) */
void mmspcl_argmax_rows(const float *x, int n, int C, int *out);

/* Metrics. cm[t * C + p] counts samples of true class t predicted as p (labels outside
   0..C-1 are skipped). */
typedef struct mmspcl_class_metrics { double precision, recall, f1; int64_t support; } mmspcl_class_metrics;
typedef struct mmspcl_metrics {
    int64_t n;
    double accuracy, macro_f1, weighted_f1, weighted_precision, weighted_recall;
} mmspcl_metrics;
void mmspcl_confusion(const int *y_true, const int *y_pred, int n, int n_classes, int64_t *cm);
/* per_class may be NULL. Precision/recall/F1 of a class with no predictions / no support is 0
   (scikit-learn's zero_division=0). weighted = sum_c support_c * score_c / sum_c support_c. */
void mmspcl_metrics_from_confusion(const int64_t *cm, int n_classes, mmspcl_class_metrics *per_class,
                                   mmspcl_metrics *out);

/* Loading heads saved by mmspcl_train.h (zero copy: w must outlive the head). Linear weights may
   be in any dtype mmspcl_linear takes (a converter may quantize them); everything else is f32.
   mmspcl_head_linear_load reads NAME.weight [out][in] and NAME.bias [out] (in, out from the file). */
mmspcl_status mmspcl_head_linear_load(mmspcl_head_linear *l, const mmspcl_weights *w, const char *name,
                                      mmspcl_error *err);
mmspcl_status mmspcl_msve_load(mmspcl_msve *m, const mmspcl_weights *w, const char *prefix,
                               mmspcl_error *err);
mmspcl_status mmspcl_mult_load(mmspcl_mult *m, const mmspcl_weights *w, const char *prefix,
                               mmspcl_error *err);
mmspcl_status mmspcl_mbt_load(mmspcl_mbt *m, const mmspcl_weights *w, const char *prefix,
                              mmspcl_error *err);
mmspcl_status mmspcl_fuse_linear_load(mmspcl_fuse_linear *f, const mmspcl_weights *w,
                                      const char *prefix, mmspcl_error *err);
/* prefix.protos [C][dim] (SPCL class means), pointer into w */
mmspcl_status mmspcl_protos_load(const float **protos, int *n_classes, int *dim,
                                 const mmspcl_weights *w, const char *prefix, mmspcl_error *err);
