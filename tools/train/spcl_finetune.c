/* tools/train/spcl_finetune.c - SPCL fine-tuning of a converted RoBERTa, stage by stage
   (overview: spcl_finetune.h; defaults and their sources: docs/TRAINING.md). Every stage is a
   function of one ft_state; spcl_finetune at the end calls them in order. */
#include "tools/train/spcl_finetune.h"
#include "tools/train/meld_recipe.h"   /* meld_feats: the --features folder */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void spcl_ft_defaults(spcl_ft_recipe *r) {
    memset(r, 0, sizeof *r);
    r->max_len = 256; r->epochs = 10; r->batch = 32; r->micro_batch = 0; r->warmup = 128; r->patience = 5;
    r->lr = 1e-5; r->head_lr = 1e-3; r->weight_decay = 0.01; r->clip = 5.0;
    r->temperature = 0.08; r->pool_size = 512; r->K = 64; r->push_first = 0;
    r->curriculum = 1; r->augment = 1; r->augment_p = 0.2; r->dropout = 0.1;
    r->freeze = 0; r->max_steps = 0; r->sentiment = 1; r->seed = 42;
    r->fusion = NULL; r->features = NULL; r->fusion_dim = 0;
    r->prune_k = 16; r->prune_proj = 0; r->prune_mods = 0; r->prune_joint = 0; r->prune_tau = -2.0;
}

#define FT_C MMSPCL_NUM_EMOTIONS
#define FT_CHUNK 64   /* rows a fusion forward takes at a time in evaluation */

typedef struct ft_state {
    /* inputs */
    const spcl_ft_recipe *r;
    const meld_csv *train, *dev;
    meld_progress_fn progress;
    void *user;
    mmspcl_error *err;
    int H, ML, B, MB;               /* hidden width, prompt length, batch, micro-batch */
    /* 1. init */
    mmspcl_weights *init_w;
    mmspcl_bpe *tok;
    mmspcl_roberta_train model;
    /* 2. data: every training turn's prompt (base), dev; the epoch's set (base + extra prompts) */
    meld_prompts base, devp, ep;
    int32_t *q_ids;                 /* one dialogue's prompts, for the extra ones */
    int *q_len, *q_mask, *q_query, max_turns, *brow;
    /* 3. heads, optimiser, queues, buffers */
    mmspcl_params head_e, head_s;
    mmspcl_lin lin_e, lin_s;
    mmspcl_adamw_cfg opt;
    mmspcl_rng rng;                 /* extra prompts, curriculum, order */
    mmspcl_spcl spcl;
    int32_t *batch_ids;
    int *batch_len, *keep, *pred, *ye, *ys, *counts;
    float *dout, *train_t, *dev_t;
    double *z, *dz, *logits, *dlogits, *z_all, *means, *difficulty, *best, *best_means;
    /* joint training (r->fusion): z = fusion(z_t, a, v) [D] is what the loss and heads see */
    int joint, D, fkind, fdims[3];
    meld_feats feats;
    float *med[2][3];               /* [train, dev][a, v]: each CSV row's vector (zeros: none in the folder) */
    int *ep_row;                    /* the CSV row of the turn each epoch-set prompt asks about */
    mmspcl_params head_f;
    mmspcl_pfusion fu;
    double *zf, *dzf, *cx[3], *means_t, *best_means_t, *zdev;
    float *dev_f;
    /* progress (a checkpoint restores these) */
    int epoch0, bad, best_epoch, capped;
    int64_t step;
    double best_f1;
    meld_log log_spcl;
} ft_state;

static void ft_state_free(ft_state *S) {
    mmspcl_weights_free(S->init_w);
    mmspcl_bpe_free(S->tok);
    mmspcl_roberta_train_free(&S->model);
    meld_prompts_free(&S->base); meld_prompts_free(&S->devp); meld_prompts_free(&S->ep);
    free(S->q_ids); free(S->q_len); free(S->q_mask); free(S->q_query);
    mmspcl_params_free(&S->head_e); mmspcl_params_free(&S->head_s);
    if (S->spcl.pool) mmspcl_spcl_free(&S->spcl);
    free(S->batch_ids); free(S->batch_len); free(S->keep); free(S->pred); free(S->ye); free(S->ys); free(S->counts);
    free(S->dout); free(S->train_t); free(S->dev_t);
    free(S->z); free(S->dz); free(S->logits); free(S->dlogits); free(S->z_all); free(S->means); free(S->difficulty);
    free(S->best); free(S->best_means);
    free(S->log_spcl.x);
    meld_feats_free(&S->feats);
    free(S->med[0][1]); free(S->med[0][2]); free(S->med[1][1]); free(S->med[1][2]);
    free(S->ep_row); free(S->brow); free(S->zf); free(S->dzf); free(S->cx[0]); free(S->cx[1]); free(S->cx[2]);
    free(S->means_t); free(S->best_means_t); free(S->dev_f); free(S->zdev);
    mmspcl_pfusion_free(&S->fu);
    mmspcl_params_free(&S->head_f);
    memset(S, 0, sizeof *S);
}

static mmspcl_status ft_oom(ft_state *S, const char *what) {
    return mmspcl_error_set(S->err, MMSPCL_ERR_NOMEM, "spcl_finetune: out of memory (%s)", what);
}

/* the library's message of st, prefixed with "--init FILE: " */
static mmspcl_status ft_init_fail(ft_state *S, mmspcl_status st, const char *what) {
    char msg[256];
    snprintf(msg, sizeof msg, "%s", S->err && S->err->msg[0] ? S->err->msg : mmspcl_status_name(st));
    return mmspcl_error_set(S->err, st, "--init %.200s: %s%s", S->r->init, what, msg);
}

/* the library's message of st, prefixed with "OPTION VALUE: " */
static mmspcl_status ft_opt_fail(ft_state *S, mmspcl_status st, const char *opt, const char *value) {
    char msg[256];
    snprintf(msg, sizeof msg, "%s", S->err && S->err->msg[0] ? S->err->msg : mmspcl_status_name(st));
    return mmspcl_error_set(S->err, st, "%s %.200s: %s", opt, value, msg);
}

/* ==== 1. init: encoder and tokenizer of the --init file ==== */
static mmspcl_status ft_stage_init(ft_state *S) {
    const spcl_ft_recipe *r = S->r;
    const mmspcl_roberta_config *c;
    mmspcl_status st;
    const char *name = NULL;
    if (!r->init) return mmspcl_error_set(S->err, MMSPCL_ERR_ARG, "spcl_finetune: no --init model");
    if ((st = mmspcl_weights_open(&S->init_w, r->init, S->err))) return st;
    if ((st = mmspcl_roberta_train_from_weights(&S->model, S->init_w, S->MB * S->ML, S->ML, S->err)))
        return ft_init_fail(S, st, st == MMSPCL_ERR_ARG ? "--max-len: " : "");
    c = &S->model.cfg;
    if ((st = mmspcl_bpe_from_weights(&S->tok, S->init_w, S->err)))
        return ft_init_fail(S, st, "no usable tokenizer (convert the checkpoint with its vocab.json and merges.txt): ");
    if (mmspcl_bpe_mask_id(S->tok) < 0 || mmspcl_bpe_bos_id(S->tok) < 0 || mmspcl_bpe_eos_id(S->tok) < 0)
        return mmspcl_error_set(S->err, MMSPCL_ERR_FORMAT, "--init %s: the vocabulary has no %s token: SPCL's prompt needs <s>, </s> "
                                "and <mask>", r->init, mmspcl_bpe_mask_id(S->tok) < 0 ? "<mask>" : mmspcl_bpe_bos_id(S->tok) < 0 ? "<s>" : "</s>");
    if (mmspcl_bpe_vocab_size(S->tok) > c->vocab_size)
        return mmspcl_error_set(S->err, MMSPCL_ERR_FORMAT, "--init %s: the tokenizer has %lld ids, the encoder's embedding table %d rows",
                                r->init, (long long)mmspcl_bpe_vocab_size(S->tok), c->vocab_size);
    S->H = c->hidden_size;
    mmspcl_roberta_train_freeze(&S->model, r->freeze);
    S->model.dropout_hidden = S->model.dropout_attn = (float)r->dropout;
    mmspcl_weights_get_str(S->init_w, "general.name", &name);
    meld_msg(S->progress, S->user, "init", "encoder of %s%s%s%s: %d layers x %d (heads %d, ffn %d, %d positions), vocabulary %lld; "
             "%d bottom layers frozen", r->init, name ? " (" : "", name ? name : "", name ? ")" : "", c->num_layers, c->hidden_size,
             c->num_heads, c->intermediate_size, c->max_positions, (long long)mmspcl_bpe_vocab_size(S->tok), S->model.frozen_layers);
    return MMSPCL_OK;
}

/* ==== 2. data ==== */
static mmspcl_status ft_stage_data(ft_state *S) {
    const meld_csv *tr = S->train;
    int d, n = tr->n_rows;
    mmspcl_status st;
    if ((st = meld_prompts_build(&S->base, tr, S->tok, S->ML, S->err)) || (st = meld_prompts_build(&S->devp, S->dev, S->tok, S->ML, S->err)))
        return st;
    /* the epoch's set: at most one extra prompt per turn (2n rows, filled every epoch) */
    if (!(S->keep = (int *)calloc((size_t)2 * n + 1, sizeof(int))) || meld_prompts_subset(&S->ep, &S->base, S->keep, 2 * n))
        return ft_oom(S, "prompts");
    for (d = 0; d < tr->n_dialogues; d++)
        if (tr->dialogue_start[d + 1] - tr->dialogue_start[d] > S->max_turns) S->max_turns = tr->dialogue_start[d + 1] - tr->dialogue_start[d];
    S->q_ids = (int32_t *)malloc(sizeof(int32_t) * (size_t)(S->max_turns + 1) * S->ML);
    S->q_len = (int *)malloc(sizeof(int) * (size_t)(S->max_turns + 1));
    S->q_mask = (int *)malloc(sizeof(int) * (size_t)(S->max_turns + 1));
    S->q_query = (int *)malloc(sizeof(int) * (size_t)(S->max_turns + 1));
    if (!S->q_ids || !S->q_len || !S->q_mask || !S->q_query) return ft_oom(S, "prompts");
    meld_msg(S->progress, S->user, "data", "%d train prompts in %d dialogues, %d dev prompts, max_len %d", n, tr->n_dialogues,
             S->devp.n, S->ML);
    return MMSPCL_OK;
}

/* ==== 2b. joint training: the fusion head and the media of every train and dev row ==== */
static int ft_key_cmp(const void *a, const void *b) {
    const int64_t x = ((const int64_t *)a)[0], y = ((const int64_t *)b)[0];
    return x < y ? -1 : x > y;
}

/* S->med[sp][m] [rows of csv][fdims[m]]: the folder's vector of each row of split sp (matched by
   Dialogue_ID and Utterance_ID), zeros where it has none; *missing counts those */
static mmspcl_status ft_media_rows(ft_state *S, int sp, const meld_csv *csv, int *missing) {
    const meld_feats *f = &S->feats;
    int64_t *keys = (int64_t *)malloc(sizeof(int64_t) * 2 * ((size_t)f->n + 1)), probe[2], *hit;
    int i, m, nk = 0;
    *missing = 0;
    if (!keys) return ft_oom(S, "features");
    for (i = 0; i < f->n; i++)
        if (f->split[i] == sp) { keys[2 * nk] = f->dia[i] * 1000000 + f->utt[i]; keys[2 * nk + 1] = i; nk++; }
    qsort(keys, (size_t)nk, 2 * sizeof(int64_t), ft_key_cmp);
    for (m = 1; m < 3; m++)
        if (S->fdims[m] && !(S->med[sp][m] = (float *)calloc((size_t)csv->n_rows * S->fdims[m] + 1, sizeof(float)))) { free(keys); return ft_oom(S, "features"); }
    for (i = 0; i < csv->n_rows; i++) {
        probe[0] = csv->rows[i].dialogue_id * 1000000 + csv->rows[i].utterance_id;
        if (!(hit = (int64_t *)bsearch(probe, keys, (size_t)nk, 2 * sizeof(int64_t), ft_key_cmp))) { (*missing)++; continue; }
        for (m = 1; m < 3; m++)
            if (S->fdims[m])
                memcpy(S->med[sp][m] + (size_t)i * S->fdims[m], f->x[m] + (size_t)hit[1] * S->fdims[m], sizeof(float) * S->fdims[m]);
    }
    free(keys);
    return MMSPCL_OK;
}

/* the fusion head over z_t [H], a, v: kind from --fusion, the pruning layer for "prune" */
static mmspcl_status ft_fusion_create(ft_state *S) {
    static const char *const kinds[4] = {"linear", "mult", "bottleneck", "prune"};
    const spcl_ft_recipe *r = S->r;
    mmspcl_fusion_cfg fc;
    mmspcl_xprune_cfg pc;
    mmspcl_rng rng;
    int k, m;
    for (k = 0; k < 4 && strcmp(r->fusion, kinds[k]); k++) {}
    if (k == 4) return mmspcl_error_set(S->err, MMSPCL_ERR_ARG, "--fusion '%s': expected linear, mult, bottleneck or prune", r->fusion);
    S->fkind = k == 3 ? MMSPCL_FUSION_LINEAR : k;
    mmspcl_fusion_defaults(&fc, (mmspcl_fusion_kind)S->fkind);
    for (m = 0; m < 3; m++) { fc.dims[m] = S->fdims[m]; fc.seq[m] = 1; }
    fc.out_dim = S->D;
    fc.dropout = 0.0;   /* the encoder's dropout is the recipe's (docs/TRAINING.md) */
    memset(&pc, 0, sizeof pc);
    pc.base = 0; pc.mods = r->prune_mods; pc.K = r->prune_k; pc.proj_dim = r->prune_proj; pc.joint = r->prune_joint;
    pc.rule = r->prune_tau > -1.0 ? MMSPCL_PRUNE_THRESHOLD : MMSPCL_PRUNE_ARGMAX;
    pc.tau = r->prune_tau;
    mmspcl_rng_seed(&rng, r->seed + 11);   /* its own stream: the text-only run's draws stay as they were */
    mmspcl_params_init(&S->head_f);
    if (mmspcl_pfusion_create(&S->fu, &S->head_f, "fusion", "prune", &fc, k == 3 ? &pc : NULL, &rng, S->err))
        return ft_opt_fail(S, S->err ? S->err->status : MMSPCL_ERR_ARG, "--fusion", r->fusion);
    return MMSPCL_OK;
}

static mmspcl_status ft_stage_joint(ft_state *S) {
    const spcl_ft_recipe *r = S->r;
    const int n2 = 2 * S->base.n + 1, nd = S->devp.n, rows = S->B > FT_CHUNK ? S->B : FT_CHUNK;
    int miss[2], m;
    mmspcl_status st;
    S->D = S->H;
    if (!r->fusion) {
        if (r->features) return mmspcl_error_set(S->err, MMSPCL_ERR_ARG, "--features %s without --fusion: nothing would read it", r->features);
        return MMSPCL_OK;
    }
    if (!r->features) return mmspcl_error_set(S->err, MMSPCL_ERR_ARG, "--fusion %s needs --features DIR (mmspcl extract's a.f32 / v.f32)", r->fusion);
    if (r->fusion_dim < 0 || r->fusion_dim > (1 << 16)) return mmspcl_error_set(S->err, MMSPCL_ERR_ARG, "--fusion-dim %d", r->fusion_dim);
    S->D = r->fusion_dim > 0 ? r->fusion_dim : S->H;
    if ((st = meld_feats_load(&S->feats, r->features, 0, S->err))) return st;   /* the message names the file */
    S->fdims[0] = S->H; S->fdims[1] = S->feats.dims[1]; S->fdims[2] = S->feats.dims[2];
    if (!S->fdims[1] && !S->fdims[2]) return mmspcl_error_set(S->err, MMSPCL_ERR_FORMAT, "--features %s has neither a.f32 nor v.f32", r->features);
    if ((st = ft_media_rows(S, 0, S->train, &miss[0])) || (st = ft_media_rows(S, 1, S->dev, &miss[1]))) return st;
    if (miss[0] == S->train->n_rows)
        return mmspcl_error_set(S->err, MMSPCL_ERR_FORMAT, "--features %s has no row of the training split's dialogues (split.txt, rows.tsv)", r->features);
    if ((st = ft_fusion_create(S))) return st;
    S->joint = 1;
    S->ep_row = (int *)malloc(sizeof(int) * (size_t)n2);
    S->brow = (int *)malloc(sizeof(int) * (size_t)S->B);
    S->zf = (double *)malloc(sizeof(double) * (size_t)S->B * S->D);
    S->dzf = (double *)malloc(sizeof(double) * (size_t)S->B * S->D);
    for (m = 0; m < 3; m++) S->cx[m] = (double *)malloc(sizeof(double) * ((size_t)rows * S->fdims[m] + 1));
    S->means_t = (double *)malloc(sizeof(double) * FT_C * S->H);
    S->best_means_t = (double *)calloc((size_t)FT_C * S->H, sizeof(double));
    S->zdev = (double *)malloc(sizeof(double) * ((size_t)nd * S->D + 1));
    S->dev_f = (float *)malloc(sizeof(float) * ((size_t)nd * S->D + 1));
    if (!S->ep_row || !S->brow || !S->zf || !S->dzf || !S->cx[0] || !S->cx[1] || !S->cx[2] || !S->means_t || !S->best_means_t ||
        !S->zdev || !S->dev_f)
        return ft_oom(S, "fusion");
    meld_msg(S->progress, S->user, "data", "joint training: --fusion %s over t %d%s%.0d%s%.0d -> %d (%zu parameters); %s: %d of %d train and "
             "%d of %d dev rows without features (zeros)", r->fusion, S->H, S->fdims[1] ? ", a " : "", S->fdims[1], S->fdims[2] ? ", v " : "",
             S->fdims[2], S->D, S->head_f.n, r->features, miss[0], S->train->n_rows, miss[1], S->dev->n_rows);
    return MMSPCL_OK;
}

/* The epoch's training set: each turn's prompt, followed, for turns t > 3 with probability
   augment_p, by the prompt with t's context asking about turn q drawn from first..t-1 (the
   labels are q's), as build_dataset(train=True) orders them. */
static mmspcl_status ft_epoch_set(ft_state *S) {
    const meld_csv *tr = S->train;
    meld_prompts *E = &S->ep;
    const int ML = S->ML;
    mmspcl_turn turns[1024];
    int d, o = 0;
    mmspcl_status st;
    for (d = 0; d < tr->n_dialogues; d++) {
        const int a = tr->dialogue_start[d], n = tr->dialogue_start[d + 1] - a;
        int t, any = 0;
        for (t = 0; t < n; t++) {
            S->q_query[t] = t;
            if (S->r->augment && t > 3 && mmspcl_rng_uniform(&S->rng) < S->r->augment_p) {
                S->q_query[t] = S->base.first[a + t] + mmspcl_rng_int(&S->rng, t - S->base.first[a + t]);
                any = 1;
            }
        }
        if (any) {
            if (n > 1024) return mmspcl_error_set(S->err, MMSPCL_ERR_ARG, "spcl_finetune: dialogue %d has %d turns (1024 at most)", d, n);
            for (t = 0; t < n; t++) { turns[t].speaker = tr->rows[a + t].speaker; turns[t].text = tr->rows[a + t].utterance; }
            if ((st = mmspcl_spcl_prompts_query(S->tok, turns, n, S->q_query, ML, S->q_ids, S->q_len, S->q_mask, NULL, S->err))) return st;
        }
        for (t = 0; t < n; t++) {
            const int r = a + t;
            memcpy(E->ids + (size_t)o * ML, S->base.ids + (size_t)r * ML, sizeof(int32_t) * ML);
            E->len[o] = S->base.len[r]; E->mask[o] = S->base.mask[r]; E->emo[o] = S->base.emo[r]; E->sent[o] = S->base.sent[r];
            if (S->ep_row) S->ep_row[o] = r;
            E->first[o++] = S->base.first[r];
            if (S->q_query[t] == t) continue;
            memcpy(E->ids + (size_t)o * ML, S->q_ids + (size_t)t * ML, sizeof(int32_t) * ML);
            E->len[o] = S->q_len[t]; E->mask[o] = S->q_mask[t];
            E->emo[o] = S->base.emo[a + S->q_query[t]]; E->sent[o] = S->base.sent[a + S->q_query[t]];
            if (S->ep_row) S->ep_row[o] = a + S->q_query[t];
            E->first[o++] = S->base.first[r];
        }
    }
    E->n = o;
    return MMSPCL_OK;
}

/* ==== 3. heads, optimiser, queues, buffers ==== */
static mmspcl_status ft_stage_heads(ft_state *S) {
    const spcl_ft_recipe *r = S->r;
    const int H = S->H, D = S->D, n2 = 2 * S->base.n + 1, nd = S->devp.n, B = S->B;
    mmspcl_status st;
    mmspcl_rng_seed(&S->rng, r->seed);
    mmspcl_params_init(&S->head_e);
    mmspcl_params_init(&S->head_s);
    mmspcl_lin_create(&S->lin_e, &S->head_e, "emotion", D, FT_C, &S->rng);
    mmspcl_lin_create(&S->lin_s, &S->head_s, "sentiment", D, MMSPCL_NUM_SENTIMENTS, &S->rng);
    if (S->head_e.oom || S->head_s.oom) return ft_oom(S, "heads");
    mmspcl_adamw_defaults(&S->opt);
    S->opt.weight_decay = r->weight_decay;
    if ((st = mmspcl_spcl_init(&S->spcl, FT_C, D, r->pool_size, r->K, r->temperature, r->seed + 7, S->err))) return st;
    S->spcl.push_first = r->push_first;
    S->batch_ids = (int32_t *)malloc(sizeof(int32_t) * (size_t)S->MB * S->ML);
    S->batch_len = (int *)malloc(sizeof(int) * (size_t)S->MB);
    S->pred = (int *)malloc(sizeof(int) * (size_t)(nd > n2 ? nd : n2));
    S->ye = (int *)malloc(sizeof(int) * (size_t)B);
    S->ys = (int *)malloc(sizeof(int) * (size_t)B);
    S->counts = (int *)malloc(sizeof(int) * FT_C);
    S->dout = (float *)malloc(sizeof(float) * (size_t)S->MB * S->ML * H);
    S->train_t = (float *)malloc(sizeof(float) * (size_t)n2 * H);
    S->dev_t = (float *)malloc(sizeof(float) * (size_t)(nd + 1) * H);
    S->z = (double *)malloc(sizeof(double) * (size_t)B * H);
    S->dz = (double *)malloc(sizeof(double) * (size_t)B * H);
    S->logits = (double *)malloc(sizeof(double) * (size_t)B * FT_C);
    S->dlogits = (double *)malloc(sizeof(double) * (size_t)B * FT_C);
    S->z_all = (double *)malloc(sizeof(double) * (size_t)n2 * (H > D ? H : D));
    S->means = (double *)malloc(sizeof(double) * FT_C * D);
    S->difficulty = (double *)malloc(sizeof(double) * (size_t)n2);
    S->best = (double *)malloc(sizeof(double) * (S->model.P.n + S->head_e.n + S->head_s.n + S->head_f.n));
    S->best_means = (double *)calloc((size_t)FT_C * D, sizeof(double));
    if (!S->batch_ids || !S->batch_len || !S->pred || !S->ye || !S->ys || !S->counts || !S->dout || !S->train_t || !S->dev_t ||
        !S->z || !S->dz || !S->logits || !S->dlogits || !S->z_all || !S->means || !S->difficulty || !S->best || !S->best_means)
        return ft_oom(S, "buffers");
    return MMSPCL_OK;
}

/* ==== checkpoints: every double exactly (raw bytes in I32 tensors), so a resumed run is the
   uninterrupted one; the best weights so far as f32 (what the model file stores) ==== */
static mmspcl_status ft_put(const ft_state *S, mmspcl_writer *wr, const char *name, const void *x, size_t bytes) {
    int64_t sh[1];
    sh[0] = (int64_t)(bytes / 4);
    return mmspcl_writer_add_tensor(wr, name, MMSPCL_I32, 1, sh, x, bytes, S->err);
}

static int ft_get(const mmspcl_weights *w, const char *name, void *x, size_t bytes) {
    const mmspcl_tensor *t = mmspcl_weights_find(w, name);
    if (!t || t->dtype != MMSPCL_I32 || t->nbytes != bytes) return -1;
    memcpy(x, t->data, bytes);
    return 0;
}

static mmspcl_status ft_put_params(const ft_state *S, mmspcl_writer *wr, const char *tag, const mmspcl_params *P) {
    char nm[64];
    mmspcl_status st;
    snprintf(nm, sizeof nm, "ckpt.%s.w", tag);
    if ((st = ft_put(S, wr, nm, P->w, sizeof(double) * P->n))) return st;
    snprintf(nm, sizeof nm, "ckpt.%s.m", tag);
    if ((st = ft_put(S, wr, nm, P->m, sizeof(double) * P->n))) return st;
    snprintf(nm, sizeof nm, "ckpt.%s.v", tag);
    if ((st = ft_put(S, wr, nm, P->v, sizeof(double) * P->n))) return st;
    snprintf(nm, sizeof nm, "ckpt.%s.step", tag);
    return mmspcl_writer_set_int(wr, nm, P->step);
}

static int ft_get_params(const mmspcl_weights *w, const char *tag, mmspcl_params *P) {
    char nm[64];
    int64_t v;
    snprintf(nm, sizeof nm, "ckpt.%s.w", tag);
    if (ft_get(w, nm, P->w, sizeof(double) * P->n)) return -1;
    snprintf(nm, sizeof nm, "ckpt.%s.m", tag);
    if (ft_get(w, nm, P->m, sizeof(double) * P->n)) return -1;
    snprintf(nm, sizeof nm, "ckpt.%s.v", tag);
    if (ft_get(w, nm, P->v, sizeof(double) * P->n)) return -1;
    snprintf(nm, sizeof nm, "ckpt.%s.step", tag);
    if (!mmspcl_weights_get_int(w, nm, &v)) return -1;
    P->step = v;
    return 0;
}

static mmspcl_status ft_checkpoint_write(const ft_state *S, int epoch) {
    const size_t nb = S->model.P.n + S->head_e.n + S->head_s.n + S->head_f.n;
    mmspcl_writer *wr;
    float *bf = NULL;
    size_t k;
    int64_t sh[1];
    mmspcl_status st;
    if (!S->r->checkpoint) return MMSPCL_OK;
    if (!(wr = mmspcl_writer_create()) || !(bf = (float *)malloc(sizeof(float) * nb))) {
        mmspcl_writer_free(wr);
        return mmspcl_error_set(S->err, MMSPCL_ERR_NOMEM, "checkpoint: out of memory");
    }
    for (k = 0; k < nb; k++) bf[k] = (float)S->best[k];
    sh[0] = (int64_t)nb;
    st = mmspcl_writer_set_str(wr, "ckpt.kind", "spcl_finetune");
    if (!st) st = mmspcl_writer_set_int(wr, "ckpt.epoch", epoch);
    if (!st) st = mmspcl_writer_set_int(wr, "ckpt.step", S->step);
    if (!st) st = mmspcl_writer_set_int(wr, "ckpt.bad", S->bad);
    if (!st) st = mmspcl_writer_set_int(wr, "ckpt.best_epoch", S->best_epoch);
    if (!st) st = mmspcl_writer_set_float(wr, "ckpt.best_f1", S->best_f1);
    if (!st) st = ft_put(S, wr, "ckpt.rng", S->rng.s, sizeof S->rng.s);
    if (!st) st = ft_put(S, wr, "ckpt.qrng", S->spcl.rng.s, sizeof S->spcl.rng.s);
    if (!st) st = ft_put_params(S, wr, "encoder", &S->model.P);
    if (!st) st = ft_put_params(S, wr, "emotion", &S->head_e);
    if (!st) st = ft_put_params(S, wr, "sentiment", &S->head_s);
    if (!st) st = ft_put(S, wr, "ckpt.best_means", S->best_means, sizeof(double) * FT_C * S->D);
    if (!st && S->joint) st = ft_put_params(S, wr, "fusion", &S->head_f);
    if (!st && S->joint) st = ft_put(S, wr, "ckpt.best_means_t", S->best_means_t, sizeof(double) * FT_C * S->H);
    if (!st) st = mmspcl_writer_add_tensor(wr, "ckpt.best", MMSPCL_F32, 1, sh, bf, sizeof(float) * nb, S->err);
    if (!st) st = meld_log_write(&S->log_spcl, wr, "meld.log.spcl", S->err);
    if (!st) st = mmspcl_writer_save(wr, S->r->checkpoint, NULL, NULL, S->err);
    mmspcl_writer_free(wr);
    free(bf);
    return st;
}

static mmspcl_status ft_resume(ft_state *S) {
    const size_t nb = S->model.P.n + S->head_e.n + S->head_s.n + S->head_f.n;
    const spcl_ft_recipe *r = S->r;
    mmspcl_weights *w = NULL;
    const mmspcl_tensor *bt;
    const char *kind = NULL;
    int64_t v[4];
    size_t k;
    mmspcl_status st;
    if (!r->resume) return MMSPCL_OK;
    if ((st = mmspcl_weights_read(&w, r->resume, S->err))) return st;
    bt = mmspcl_weights_find(w, "ckpt.best");
    if (!mmspcl_weights_get_str(w, "ckpt.kind", &kind) || strcmp(kind, "spcl_finetune") || !mmspcl_weights_get_int(w, "ckpt.epoch", &v[0]) ||
        !mmspcl_weights_get_int(w, "ckpt.step", &v[1]) || !mmspcl_weights_get_int(w, "ckpt.bad", &v[2]) ||
        !mmspcl_weights_get_int(w, "ckpt.best_epoch", &v[3]) ||
        !mmspcl_weights_get_float(w, "ckpt.best_f1", &S->best_f1) || ft_get(w, "ckpt.rng", S->rng.s, sizeof S->rng.s) ||
        ft_get(w, "ckpt.qrng", S->spcl.rng.s, sizeof S->spcl.rng.s) || ft_get_params(w, "encoder", &S->model.P) ||
        ft_get_params(w, "emotion", &S->head_e) || ft_get_params(w, "sentiment", &S->head_s) ||
        ft_get(w, "ckpt.best_means", S->best_means, sizeof(double) * FT_C * S->D) || !bt || bt->dtype != MMSPCL_F32 ||
        (S->joint && (ft_get_params(w, "fusion", &S->head_f) || ft_get(w, "ckpt.best_means_t", S->best_means_t, sizeof(double) * FT_C * S->H))) ||
        (size_t)bt->ne[0] != nb) {
        mmspcl_weights_free(w);
        return mmspcl_error_set(S->err, MMSPCL_ERR_FORMAT, "--resume %s is not a checkpoint of this fine-tuning (another model, "
                                "other sizes, or not written by mmspcl train --init)", r->resume);
    }
    for (k = 0; k < nb; k++) S->best[k] = ((const float *)bt->data)[k];
    S->epoch0 = (int)v[0] + 1; S->step = v[1]; S->bad = (int)v[2]; S->best_epoch = (int)v[3];
    S->capped = r->max_steps > 0 && S->step >= r->max_steps;   /* this run's --max-steps */
    meld_log_read(&S->log_spcl, w, "meld.log.spcl");
    mmspcl_weights_free(w);
    mmspcl_roberta_train_sync(&S->model);
    meld_msg(S->progress, S->user, "resume", "resuming %s after epoch %d (%lld steps, best dev weighted F1 %.4f)", r->resume,
             S->epoch0 - 1, (long long)S->step, S->best_f1);
    return MMSPCL_OK;
}

/* ==== 4. training ==== */
/* micro-batch mb of the step's rows keep[b0 ..): forward; with z, the features at <mask> */
static mmspcl_status ft_forward_micro(ft_state *S, int b0, int mb, int train, double *z) {
    const meld_prompts *E = &S->ep;
    const int ML = S->ML, H = S->H, n = S->B - mb * S->MB < S->MB ? S->B - mb * S->MB : S->MB;
    int i, k, start = 0;
    mmspcl_status st;
    for (i = 0; i < n; i++) {
        const int row = S->keep[b0 + mb * S->MB + i];
        memcpy(S->batch_ids + (size_t)i * ML, E->ids + (size_t)row * ML, sizeof(int32_t) * ML);
        S->batch_len[i] = E->len[row];
    }
    S->model.train_mode = train;
    /* the masks of the step, at the rows of the whole batch: the same in the recomputation for
       the backward, and whatever the micro-batch size */
    S->model.dropout_key = (S->r->seed ^ 0xD1B54A32D192ED03ull) + (uint64_t)S->step * 0x9E3779B97F4A7C15ull;
    S->model.dropout_row0 = mb * S->MB;
    if ((st = mmspcl_roberta_train_forward(&S->model, S->batch_ids, S->batch_len, n, ML, S->err))) return st;
    for (i = 0; z && i < n; i++) {
        const float *zr = S->model.out + (size_t)(start + E->mask[S->keep[b0 + mb * S->MB + i]]) * H;
        for (k = 0; k < H; k++) z[(size_t)(mb * S->MB + i) * H + k] = zr[k];
        start += S->batch_len[i];
    }
    return MMSPCL_OK;
}

/* the encoder's backward for micro-batch mb of the last forward, dL/dz from S->dz */
static mmspcl_status ft_backward_micro(ft_state *S, int b0, int mb) {
    const int H = S->H, n = S->model.batch;
    int i, k, start = 0;
    memset(S->dout, 0, sizeof(float) * (size_t)S->model.T * H);
    for (i = 0; i < n; i++) {
        float *o = S->dout + (size_t)(start + S->ep.mask[S->keep[b0 + mb * S->MB + i]]) * H;
        for (k = 0; k < H; k++) o[k] = (float)S->dz[(size_t)(mb * S->MB + i) * H + k];
        start += S->batch_len[i];
    }
    return mmspcl_roberta_train_backward(&S->model, S->dout, NULL, S->err);
}

/* CE of a linear head on the (detached) features z [B][D]: its gradient goes to the head only */
static double ft_ce_head(ft_state *S, const double *z, mmspcl_params *P, const mmspcl_lin *head, const int *y, int C) {
    double l;
    mmspcl_lin_forward(P, head, z, S->logits, S->B);
    l = mmspcl_ce_loss(S->logits, y, S->B, C, NULL, S->dlogits);
    mmspcl_lin_backward(P, head, z, S->dlogits, NULL, S->B);
    return l;
}

/* the fusion inputs of n rows: x[0] = t (td, double [n][H], or the floats tf into S->cx[0]),
   x[1], x[2] the media (into S->cx) of split sp's CSV rows rows[i] (rows NULL: row0 + i) */
static void ft_fusion_inputs(ft_state *S, int sp, const int *rows, int row0, int n, const double *td, const float *tf,
                             const double *x[3]) {
    int i, m, k;
    if (!td)
        for (i = 0; i < n * S->H; i++) S->cx[0][i] = tf[i];
    x[0] = td ? td : S->cx[0];
    for (m = 1; m < 3; m++) {
        const int dm = S->fdims[m];
        x[m] = NULL;
        if (!dm) continue;
        for (i = 0; i < n; i++) {
            const float *src = S->med[sp][m] + (size_t)(rows ? rows[i] : row0 + i) * dm;
            for (k = 0; k < dm; k++) S->cx[m][(size_t)i * dm + k] = src[k];
        }
        x[m] = S->cx[m];
    }
}

/* z [n][D] in evaluation mode of n rows with z_t tf [n][H] of split sp (rows: their CSV rows,
   NULL: 0..n-1) */
static mmspcl_status ft_fuse_all(ft_state *S, int sp, const int *rows, int n, const float *tf, double *z) {
    const double *x[3];
    int i;
    mmspcl_status st;
    for (i = 0; i < n; i += FT_CHUNK) {
        const int nn = n - i < FT_CHUNK ? n - i : FT_CHUNK;
        ft_fusion_inputs(S, sp, rows ? rows + i : NULL, i, nn, NULL, tf + (size_t)i * S->H, x);
        if ((st = mmspcl_pfusion_forward(&S->fu, &S->head_f, x, nn, z + (size_t)i * S->D, NULL, S->err))) return st;
    }
    return MMSPCL_OK;
}

/* One optimiser step on the rows keep[b0 .. b0+B): k of total in the epoch, warm-up steps */
static mmspcl_status ft_step(ft_state *S, int b0, int k, int total, int warm, double *l_spcl, double *l_ce) {
    const spcl_ft_recipe *r = S->r;
    const int nmb = (S->B + S->MB - 1) / S->MB;
    mmspcl_params *both[3];
    mmspcl_spcl_stats stats;
    const double *x[3];
    double lr, hlr, l_sent = 0.0, *z = S->z, *dz = S->dz;
    int i, mb;
    mmspcl_status st;
    for (i = 0; i < S->B; i++) { S->ye[i] = S->ep.emo[S->keep[b0 + i]]; S->ys[i] = S->ep.sent[S->keep[b0 + i]]; }
    for (mb = 0; mb < nmb; mb++)
        if ((st = ft_forward_micro(S, b0, mb, 1, S->z))) return st;
    mmspcl_params_zero_grad(&S->model.P);
    mmspcl_params_zero_grad(&S->head_e);
    mmspcl_params_zero_grad(&S->head_s);
    memset(S->dz, 0, sizeof(double) * (size_t)S->B * S->H);
    if (S->joint) {   /* z = fusion(z_t, a, v): what the loss and the heads see */
        for (i = 0; i < S->B; i++) S->brow[i] = S->ep_row[S->keep[b0 + i]];
        ft_fusion_inputs(S, 0, S->brow, 0, S->B, S->z, NULL, x);
        if ((st = mmspcl_pfusion_forward(&S->fu, &S->head_f, x, S->B, S->zf, NULL, S->err))) return st;
        mmspcl_params_zero_grad(&S->head_f);
        memset(S->dzf, 0, sizeof(double) * (size_t)S->B * S->D);
        z = S->zf;
        dz = S->dzf;
    }
    if ((st = mmspcl_spcl_step(&S->spcl, z, S->ye, S->B, l_spcl, dz, &stats, S->err))) return st;
    *l_ce = ft_ce_head(S, z, &S->head_e, &S->lin_e, S->ye, FT_C);
    if (r->sentiment) l_sent = ft_ce_head(S, z, &S->head_s, &S->lin_s, S->ys, MMSPCL_NUM_SENTIMENTS);
    if (S->joint) {   /* through the fusion head: dL/dz_t into S->dz */
        double *dx[3];
        dx[0] = S->dz; dx[1] = dx[2] = NULL;
        mmspcl_pfusion_backward(&S->fu, &S->head_f, x, S->B, S->dzf, dx);
    }
    for (mb = nmb - 1; mb >= 0; mb--) {   /* the last micro-batch's activations are still there */
        if (mb != nmb - 1 && (st = ft_forward_micro(S, b0, mb, 1, NULL))) return st;
        if ((st = ft_backward_micro(S, b0, mb))) return st;
    }
    both[0] = &S->model.P;
    both[1] = &S->head_e;
    both[2] = &S->head_f;   /* the fusion head is part of the model train.py:117 clips */
    mmspcl_grad_clip_multi(both, S->joint ? 3 : 2, r->clip);
    mmspcl_grad_clip(&S->head_s, r->clip);
    lr = mmspcl_lr_cosine(k, warm, total, r->lr);
    hlr = mmspcl_lr_cosine(k, warm, total, r->head_lr);
    mmspcl_adamw_step(&S->model.P, &S->opt, lr);
    if (S->joint) mmspcl_adamw_step(&S->head_f, &S->opt, hlr);
    mmspcl_adamw_step(&S->head_e, &S->opt, hlr);
    if (r->sentiment) mmspcl_adamw_step(&S->head_s, &S->opt, hlr);
    mmspcl_roberta_train_sync(&S->model);
    S->step++;
    meld_msg(S->progress, S->user, "spcl", "step %lld: spcl loss %.4f (%d of %d anchors over 0.3), ce emotion %.4f%s%.4f, lr %.3g",
             (long long)S->step, *l_spcl, stats.active, stats.anchors, *l_ce, r->sentiment ? ", sentiment " : "",
             r->sentiment ? l_sent : 0.0, lr);
    return MMSPCL_OK;
}

/* Before epoch e: the epoch's set, its embeddings, the class means; for e > 0 the dev score of
   the model after epoch e-1 (the best kept); *stop on the last epoch, patience or max_steps. */
/* joint: the class means of z_t (the file's text-only meld.protos) into S->means_t, then
   S->z_all = z = fusion(z_t, a, v) of the epoch's set */
static mmspcl_status ft_joint_embed(ft_state *S) {
    const int H = S->H;
    int i;
    for (i = 0; i < S->ep.n * H; i++) S->z_all[i] = S->train_t[i];
    mmspcl_class_means(S->z_all, S->ep.emo, S->ep.n, H, FT_C, S->means_t, S->counts);
    return ft_fuse_all(S, 0, S->ep_row, S->ep.n, S->train_t, S->z_all);
}

/* dev's z (joint: fused, then as floats in S->dev_f) scored by nearest class mean */
static mmspcl_status ft_dev_predict(ft_state *S) {
    const int nd = S->devp.n, D = S->D;
    int k;
    mmspcl_status st;
    if (!S->joint) { meld_nearest_mean(S->dev_t, nd, S->H, S->means, FT_C, S->pred); return MMSPCL_OK; }
    if ((st = ft_fuse_all(S, 1, NULL, nd, S->dev_t, S->zdev))) return st;
    for (k = 0; k < nd * D; k++) S->dev_f[k] = (float)S->zdev[k];
    meld_nearest_mean(S->dev_f, nd, D, S->means, FT_C, S->pred);
    return MMSPCL_OK;
}

static mmspcl_status ft_evaluate(ft_state *S, int e, int *stop) {
    const spcl_ft_recipe *r = S->r;
    const int H = S->H, D = S->D;
    double f1, acc = 0.0;
    int i;
    mmspcl_status st;
    *stop = 0;
    if ((st = ft_epoch_set(S))) return st;
    S->model.train_mode = 0;
    if ((st = meld_embed(&S->model, &S->ep, NULL, S->ep.n, S->MB, S->train_t, NULL, S->progress, S->user, "embed", S->err))) return st;
    if (S->joint) {
        if ((st = ft_joint_embed(S))) return st;
    } else
        for (i = 0; i < S->ep.n * H; i++) S->z_all[i] = S->train_t[i];
    mmspcl_class_means(S->z_all, S->ep.emo, S->ep.n, D, FT_C, S->means, S->counts);
    if (e > 0) {
        if ((st = meld_embed(&S->model, &S->devp, NULL, S->devp.n, S->MB, S->dev_t, NULL, S->progress, S->user, "dev", S->err))) return st;
        if ((st = ft_dev_predict(S))) return st;
        f1 = meld_weighted_f1(S->devp.emo, S->pred, S->devp.n, FT_C, &acc);
        if (S->log_spcl.n) S->log_spcl.x[(S->log_spcl.n - 1) * 3 + 2] = (float)f1;
        if (f1 > S->best_f1) {
            S->best_f1 = f1;
            S->best_epoch = e;
            S->bad = 0;
            memcpy(S->best, S->model.P.w, sizeof(double) * S->model.P.n);
            memcpy(S->best + S->model.P.n, S->head_e.w, sizeof(double) * S->head_e.n);
            memcpy(S->best + S->model.P.n + S->head_e.n, S->head_s.w, sizeof(double) * S->head_s.n);
            memcpy(S->best_means, S->means, sizeof(double) * FT_C * D);
            if (S->joint) {
                memcpy(S->best + S->model.P.n + S->head_e.n + S->head_s.n, S->head_f.w, sizeof(double) * S->head_f.n);
                memcpy(S->best_means_t, S->means_t, sizeof(double) * FT_C * H);
            }
        } else S->bad++;
        meld_msg(S->progress, S->user, "dev", "after epoch %d: dev weighted F1 %.4f accuracy %.4f (nearest class mean of %d train "
                 "prompts)%s", e, f1, acc, S->ep.n, S->bad ? "" : "  best");
    }
    *stop = e == r->epochs || S->capped || (e > 0 && r->patience > 0 && S->bad >= r->patience);
    return MMSPCL_OK;
}

static mmspcl_status ft_epoch(ft_state *S, int e) {
    const spcl_ft_recipe *r = S->r;
    int nk, i, b, total, warm;
    double sum = 0.0, ce = 0.0;
    mmspcl_status st;
    if (r->curriculum) {
        mmspcl_curriculum_difficulty(S->z_all, S->ep.emo, S->ep.n, S->D, S->means, S->counts, FT_C, S->difficulty);
        nk = mmspcl_curriculum_select(S->difficulty, S->ep.n, e, r->epochs, &S->rng, S->keep);
    } else {
        for (i = 0; i < S->ep.n; i++) S->keep[i] = i;
        nk = S->ep.n;
    }
    mmspcl_rng_shuffle(&S->rng, S->keep, nk);
    mmspcl_spcl_reset(&S->spcl, S->means);
    total = nk / S->B;                               /* drop_last */
    warm = e == 0 ? (r->warmup < total ? r->warmup : total) : 0;
    for (b = 0; b < total; b++) {
        double ls = 0.0, lc = 0.0;
        if (r->max_steps > 0 && S->step >= r->max_steps) { S->capped = 1; break; }
        if ((st = ft_step(S, b * S->B, b, total, warm, &ls, &lc))) return st;
        sum += ls;
        ce += lc;
        if (S->progress) S->progress(S->user, "spcl", b + 1, total, NULL);
    }
    meld_log_add(&S->log_spcl, e + 1, b ? sum / b : 0.0, -1.0);
    meld_msg(S->progress, S->user, "spcl", "SPCL epoch %d/%d: %d of %d prompts (curriculum), %d steps, mean spcl loss %.4f, ce %.4f", e + 1,
             r->epochs, nk, S->ep.n, b, b ? sum / b : 0.0, b ? ce / b : 0.0);
    if (r->max_steps > 0 && S->step >= r->max_steps) S->capped = 1;
    return ft_checkpoint_write(S, e);
}

static mmspcl_status ft_stage_train(ft_state *S) {
    int e, stop;
    mmspcl_status st;
    for (e = S->epoch0; e <= S->r->epochs; e++) {
        if ((st = ft_evaluate(S, e, &stop))) return st;
        if (stop) break;
        if ((st = ft_epoch(S, e))) return st;
    }
    if (S->best_epoch > 0) {   /* the weights of the best epoch */
        memcpy(S->model.P.w, S->best, sizeof(double) * S->model.P.n);
        memcpy(S->head_e.w, S->best + S->model.P.n, sizeof(double) * S->head_e.n);
        memcpy(S->head_s.w, S->best + S->model.P.n + S->head_e.n, sizeof(double) * S->head_s.n);
        if (S->joint) memcpy(S->head_f.w, S->best + S->model.P.n + S->head_e.n + S->head_s.n, sizeof(double) * S->head_f.n);
        mmspcl_roberta_train_sync(&S->model);
    } else {   /* no evaluation ran: the last means */
        memcpy(S->best_means, S->means, sizeof(double) * FT_C * S->D);
        if (S->joint) memcpy(S->best_means_t, S->means_t, sizeof(double) * FT_C * S->H);
    }
    meld_msg(S->progress, S->user, "spcl", "SPCL: best dev weighted F1 %.4f after epoch %d (kept), %lld steps", S->best_f1,
             S->best_epoch, (long long)S->step);
    return MMSPCL_OK;
}

/* ==== 5. the classifier file ==== */
static mmspcl_status ft_copy_tokenizer(ft_state *S, mmspcl_writer *wr) {
    const mmspcl_weights *w = S->init_w;
    int64_t i;
    for (i = 0; i < w->n_kv; i++) {
        const mmspcl_kv *kv = &w->kv[i];
        int bad = 0;
        if (strncmp(kv->key, "tokenizer.", 10)) continue;
        if (kv->type == MMSPCL_KV_INT) bad = mmspcl_writer_set_int(wr, kv->key, kv->i);
        else if (kv->type == MMSPCL_KV_FLOAT) bad = mmspcl_writer_set_float(wr, kv->key, kv->f);
        else if (kv->type == MMSPCL_KV_STR) bad = mmspcl_writer_set_str(wr, kv->key, kv->str);
        else bad = mmspcl_writer_set_str_array(wr, kv->key, kv->strs, kv->lens, kv->count);
        if (bad) return ft_oom(S, "model file");
    }
    return MMSPCL_OK;
}

/* a head of P as PREFIX.NAME.{weight,bias} (f32 copies in hold) */
static mmspcl_status ft_write_head(ft_state *S, mmspcl_writer *wr, const mmspcl_params *P, const char *prefix, const char *name,
                                   float **hold) {
    char nm[64];
    int t;
    size_t k;
    mmspcl_status st;
    if (!(*hold = (float *)malloc(sizeof(float) * P->n))) return ft_oom(S, "model file");
    for (k = 0; k < P->n; k++) (*hold)[k] = (float)P->w[k];
    for (t = 0; t < P->n_info; t++) {
        const mmspcl_param_info *pi = &P->info[t];
        snprintf(nm, sizeof nm, "%s.%s.%s", prefix, name, pi->ndim == 2 ? "weight" : "bias");
        if ((st = mmspcl_writer_add_tensor(wr, nm, MMSPCL_F32, pi->ndim, pi->shape, *hold + pi->off, sizeof(float) * pi->n, S->err)))
            return st;
    }
    return MMSPCL_OK;
}

/* the joint head (mmspcl.h 13.6): meld.joint.kind, .fusion.*, .prune.*, .protos (class means of
   z), .audio; the linear heads on z follow as meld.joint.linear.* */
static mmspcl_status ft_write_joint(ft_state *S, mmspcl_writer *wr, void **hold) {
    const int D = S->D;
    float *protos;
    int64_t sh[2];
    int i;
    mmspcl_status st;
    if (mmspcl_writer_set_int(wr, "meld.joint.kind", S->fkind) || mmspcl_pfusion_write_config(&S->fu, wr, "meld.joint", "meld.joint.prune") ||
        (S->fdims[1] && mmspcl_writer_set_str(wr, "meld.joint.audio", "egemaps")))
        return ft_oom(S, "model file");
    if ((st = mmspcl_params_write(&S->head_f, wr, "meld.joint", 0, (float **)&hold[0], S->err))) return st;
    if (!(protos = (float *)malloc(sizeof(float) * FT_C * D))) return ft_oom(S, "model file");
    hold[1] = protos;
    for (i = 0; i < FT_C * D; i++) protos[i] = (float)S->best_means[i];
    sh[0] = FT_C; sh[1] = D;
    return mmspcl_writer_add_tensor(wr, "meld.joint.protos", MMSPCL_F32, 2, sh, protos, sizeof(float) * FT_C * D, S->err);
}

static mmspcl_status ft_write_model(ft_state *S, mmspcl_writer *wr, void **hold) {
    const int H = S->H;
    char src[600];
    float *protos;
    int64_t sh[2];
    int i;
    mmspcl_status st;
    snprintf(src, sizeof src, "SPCL fine-tuning (mmspcl train --init) of %.400s on MELD train_sent_emo.csv (GPL-3.0 data)", S->r->init);
    if ((st = mmspcl_roberta_train_write_config(&S->model, wr, S->err)) ||
        (st = mmspcl_roberta_train_write_tensors(&S->model, wr, MMSPCL_F32, &hold[0], S->err)) || (st = ft_copy_tokenizer(S, wr)))
        return st;
    if (mmspcl_writer_set_str(wr, "general.name", "mmspcl-spcl-finetune") || mmspcl_writer_set_str(wr, "general.source", src) ||
        mmspcl_writer_set_int(wr, "meld.max_len", S->ML) || mmspcl_writer_set_int(wr, "meld.seed", (int64_t)S->r->seed) ||
        mmspcl_writer_set_float(wr, "meld.dev_f1_spcl", S->best_f1) || mmspcl_writer_set_str(wr, "meld.default_head", "protos"))
        return ft_oom(S, "model file");
    if (!(protos = (float *)malloc(sizeof(float) * FT_C * H))) return ft_oom(S, "model file");
    hold[1] = protos;
    for (i = 0; i < FT_C * H; i++) protos[i] = (float)(S->joint ? S->best_means_t : S->best_means)[i];
    sh[0] = FT_C; sh[1] = H;
    if ((st = mmspcl_writer_add_tensor(wr, "meld.protos", MMSPCL_F32, 2, sh, protos, sizeof(float) * FT_C * H, S->err)) ||
        (S->joint && (st = ft_write_joint(S, wr, hold + 4))) ||
        (st = ft_write_head(S, wr, &S->head_e, S->joint ? "meld.joint.linear" : "meld.linear", "emotion", (float **)&hold[2])) ||
        (S->r->sentiment &&
         (st = ft_write_head(S, wr, &S->head_s, S->joint ? "meld.joint.linear" : "meld.linear", "sentiment", (float **)&hold[3]))))
        return st;
    return meld_log_write(&S->log_spcl, wr, "meld.log.spcl", S->err);
}

static mmspcl_status ft_stage_file(ft_state *S, const char *out_path) {
    void *hold[6] = {NULL, NULL, NULL, NULL, NULL, NULL};
    mmspcl_writer *wr = mmspcl_writer_create();
    mmspcl_status st;
    int i;
    if (!wr) return ft_oom(S, "model file");
    st = ft_write_model(S, wr, hold);
    if (!st) st = mmspcl_writer_save(wr, out_path, NULL, NULL, S->err);
    mmspcl_writer_free(wr);
    for (i = 0; i < 4; i++) free(hold[i]);
    mmspcl_free(hold[4]);   /* mmspcl_params_write's buffer */
    free(hold[5]);
    if (!st) meld_msg(S->progress, S->user, "file", "model complete");
    return st;
}

/* ==== the recipe ==== */
mmspcl_status spcl_finetune(const spcl_ft_recipe *r, const meld_csv *train, const meld_csv *dev, const char *out_path,
                            meld_progress_fn progress, void *user, mmspcl_error *err) {
    ft_state S;
    mmspcl_status st;
    memset(&S, 0, sizeof S);
    S.r = r; S.train = train; S.dev = dev; S.progress = progress; S.user = user; S.err = err;
    S.ML = r->max_len; S.B = r->batch; S.MB = r->micro_batch > 0 && r->micro_batch < r->batch ? r->micro_batch : r->batch;
    S.best_f1 = -1.0;
    if (S.B < 2 || S.ML < 16 || r->epochs < 1 || train->n_rows < 1 || dev->n_rows < 1)
        return mmspcl_error_set(err, MMSPCL_ERR_ARG, "spcl_finetune: batch %d (>= 2), max_len %d (>= 16), epochs %d, %d train and %d dev rows",
                                S.B, S.ML, r->epochs, train->n_rows, dev->n_rows);
    if (!(st = ft_stage_init(&S)) && !(st = ft_stage_data(&S)) && !(st = ft_stage_joint(&S)) && !(st = ft_stage_heads(&S)) &&
        !(st = ft_resume(&S)) &&
        !(st = ft_stage_train(&S)))
        st = ft_stage_file(&S, out_path);
    ft_state_free(&S);
    return st;
}
