/* tools/train/pretrain.c - MLM pretraining on the corpus, stage by stage (overview: pretrain.h). */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include "tools/train/pretrain.h"
#include "tools/train/meld_recipe.h"   /* meld_vocab_cut_keep */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void pretrain_defaults(pretrain_recipe *r) {
    memset(r, 0, sizeof *r);
    r->hidden = 256; r->layers = 4; r->heads = 4; r->ffn = 1024; r->max_len = 128;
    r->epochs = 3; r->batch = 32; r->lr = 5e-4; r->warmup_frac = 0.02; r->clip = 1.0; r->mask_p = 0.15;
    r->min_count = 4; r->dialogue_repeat = 2; r->ckpt_minutes = 10; r->glove_dim = 100; r->seed = 1;
}

static double pt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct pt_state {
    const pretrain_recipe *r;
    const pretrain_text *texts;
    int n_texts;
    const meld_csv *meld;
    meld_progress_fn progress;
    void *user;
    mmspcl_error *err;
    int ML;
    /* vocabulary */
    mmspcl_bpe *full, *tok;
    meld_vocab_cut vc;
    int64_t *count;                 /* [full vocabulary] token counts (pass 1) */
    unsigned char *keep;            /* [full vocabulary] */
    /* the pass over the units: which tokenizer, what to do with the ids */
    int pass;                       /* 1 count, 2 pack */
    int32_t *ubuf;
    int ucap;
    /* chunks: tokens back to back, chunk c is ctok[cstart[c] .. cstart[c] + clen[c]) */
    int32_t *ctok;
    int64_t nctok, capctok, *cstart;
    int *clen, n_chunks, capch, pos;   /* pos: tokens in the open chunk (0: none open) */
    unsigned char *cdialog;         /* [chunk] 1: from dialogue text */
    int cur_dialog;
    /* encoder and training */
    mmspcl_roberta_config cfg;
    mmspcl_roberta_train model;
    mmspcl_adamw_cfg opt;
    mmspcl_rng rng, rng_epoch;
    int *order, n_order, *mrows;
    int32_t *bids, *mtarget;
    int *blen;
    float *dout;
    int epoch0, batch0;
    int64_t step;
    meld_log log;
    double t0, last_ckpt;
} pt_state;

static void pt_free(pt_state *S) {
    mmspcl_bpe_free(S->full); mmspcl_bpe_free(S->tok);
    free(S->vc.vocab); free(S->vc.merges); free(S->count); free(S->keep); free(S->ubuf);
    free(S->ctok); free(S->cstart); free(S->clen); free(S->cdialog);
    mmspcl_roberta_train_free(&S->model);
    free(S->order); free(S->mrows); free(S->bids); free(S->mtarget); free(S->blen); free(S->dout);
    free(S->log.x);
    memset(S, 0, sizeof *S);
}

static mmspcl_status pt_oom(pt_state *S, const char *what) {
    return mmspcl_error_set(S->err, MMSPCL_ERR_NOMEM, "pretrain: out of memory (%s)", what);
}

/* ==== 1-3. units, counting and packing ==== */
static int pt_close_chunk(pt_state *S) {
    if (S->pos <= 1) { if (S->pos == 1) S->n_chunks--; S->pos = 0; return 0; }
    S->clen[S->n_chunks - 1] = S->pos;
    S->nctok += S->pos;
    S->pos = 0;
    return 0;
}

static int pt_open_chunk(pt_state *S) {
    if (S->n_chunks == S->capch) {
        const int nc = S->capch ? 2 * S->capch : 4096;
        int64_t *a = (int64_t *)realloc(S->cstart, sizeof(int64_t) * (size_t)nc);
        int *b;
        unsigned char *c;
        if (!a) return -1;
        S->cstart = a;
        if (!(b = (int *)realloc(S->clen, sizeof(int) * (size_t)nc))) return -1;
        S->clen = b;
        if (!(c = (unsigned char *)realloc(S->cdialog, (size_t)nc))) return -1;
        S->cdialog = c;
        S->capch = nc;
    }
    if (S->nctok + S->ML > S->capctok) {
        const int64_t nc = (S->capctok ? 2 * S->capctok : (int64_t)1 << 20) + S->ML;
        int32_t *p = (int32_t *)realloc(S->ctok, sizeof(int32_t) * (size_t)nc);
        if (!p) return -1;
        S->ctok = p;
        S->capctok = nc;
    }
    S->cstart[S->n_chunks] = S->nctok;
    S->clen[S->n_chunks] = 1;
    S->cdialog[S->n_chunks] = (unsigned char)S->cur_dialog;
    S->ctok[S->nctok] = mmspcl_bpe_bos_id(S->tok);
    S->n_chunks++;
    S->pos = 1;
    return 0;
}

/* one unit's ids (without </s>) into the chunks, cut into pieces that fit */
static int pt_pack(pt_state *S, const int32_t *ids, int n) {
    const int32_t eos = mmspcl_bpe_eos_id(S->tok);
    while (n > 0) {
        const int piece = n < S->ML - 2 ? n : S->ML - 2;
        if (S->pos && S->pos + piece + 1 > S->ML) pt_close_chunk(S);
        if (!S->pos && pt_open_chunk(S)) return -1;
        memcpy(S->ctok + S->nctok + S->pos, ids, sizeof(int32_t) * (size_t)piece);
        S->ctok[S->nctok + S->pos + piece] = eos;
        S->pos += piece + 1;
        ids += piece;
        n -= piece;
    }
    return 0;
}

/* one unit of text: pass 1 counts its tokens under the full BPE (always_keep: MELD's), pass 2
   packs its tokens under the cut BPE */
static mmspcl_status pt_unit(pt_state *S, const char *text, size_t len, int always_keep) {
    const mmspcl_bpe *tok = S->pass == 1 ? S->full : S->tok;
    int n = mmspcl_bpe_encode(tok, text, len, S->ubuf, S->ucap), i;
    if (n < 0) return pt_oom(S, "tokenising");
    if (n > S->ucap) {
        int32_t *p = (int32_t *)realloc(S->ubuf, sizeof(int32_t) * (size_t)n);
        if (!p) return pt_oom(S, "tokenising");
        S->ubuf = p;
        S->ucap = n;
        n = mmspcl_bpe_encode(tok, text, len, S->ubuf, S->ucap);
    }
    if (S->pass == 1) {
        for (i = 0; i < n; i++) {
            S->count[S->ubuf[i]]++;
            if (always_keep) S->keep[S->ubuf[i]] = 1;
        }
        return MMSPCL_OK;
    }
    return pt_pack(S, S->ubuf, n) ? pt_oom(S, "chunks") : MMSPCL_OK;
}

/* a new document: the open chunk is closed */
static void pt_document(pt_state *S, int dialog) {
    if (S->pass == 2) pt_close_chunk(S);
    S->cur_dialog = dialog;
}

/* "Speaker: text" lines; "====" lines and blank lines start a new dialogue */
static mmspcl_status pt_dialogue_text(pt_state *S, const pretrain_text *t) {
    const char *p = t->bytes, *end = t->bytes + t->size;
    mmspcl_status st = MMSPCL_OK;
    pt_document(S, 1);
    while (p < end && !st) {
        const char *e = memchr(p, '\n', (size_t)(end - p)), *colon;
        size_t L;
        char spk[48], *s, *line;
        if (!e) e = end;
        L = (size_t)(e - p);
        if (L && p[L - 1] == '\r') L--;
        if (!L || (L >= 4 && !memcmp(p, "====", 4))) { pt_document(S, 1); p = e + 1; continue; }
        if (!(line = (char *)malloc(L + 1))) return pt_oom(S, "text");
        memcpy(line, p, L);
        line[L] = 0;
        colon = strstr(line, ": ");
        spk[0] = 0;
        if (colon && colon - line > 0 && colon - line < 41) {
            memcpy(spk, line, (size_t)(colon - line));
            spk[colon - line] = 0;
            colon += 2;
            while (*colon == ' ') colon++;
        } else colon = line;
        s = mmspcl_spcl_clean(spk, spk[0] ? ":" : "", colon);
        free(line);
        if (!s) return pt_oom(S, "text");
        st = pt_unit(S, s, strlen(s), 0);
        mmspcl_free(s);
        p = e + 1;
    }
    return st;
}

/* paragraphs (blank-line separated, lines joined by spaces); the file is one document */
static mmspcl_status pt_prose_text(pt_state *S, const pretrain_text *t) {
    const char *p = t->bytes, *end = t->bytes + t->size;
    char *para = (char *)malloc(t->size + 1);
    size_t n = 0;
    mmspcl_status st = MMSPCL_OK;
    if (!para) return pt_oom(S, "text");
    pt_document(S, 0);
    while (p <= end && !st) {
        const char *e = p < end ? memchr(p, '\n', (size_t)(end - p)) : NULL;
        size_t L, a = 0;
        if (!e) e = end;
        L = (size_t)(e - p);
        while (L && (p[L - 1] == '\r' || p[L - 1] == ' ' || p[L - 1] == '\t')) L--;
        while (a < L && (p[a] == ' ' || p[a] == '\t')) a++;
        if (a < L) {
            if (n) para[n++] = ' ';
            memcpy(para + n, p + a, L - a);
            n += L - a;
        }
        if ((a >= L || e == end) && n) { st = pt_unit(S, para, n, 0); n = 0; }
        p = e + 1;
    }
    free(para);
    return st;
}

/* MELD's training dialogues, turn by turn as the SPCL prompt writes them */
static mmspcl_status pt_meld_text(pt_state *S) {
    int d, i;
    mmspcl_status st = MMSPCL_OK;
    for (d = 0; S->meld && d < S->meld->n_dialogues && !st; d++) {
        pt_document(S, 1);
        for (i = S->meld->dialogue_start[d]; i < S->meld->dialogue_start[d + 1] && !st; i++) {
            char *s = mmspcl_spcl_clean(S->meld->rows[i].speaker, ":", S->meld->rows[i].utterance);
            if (!s) return pt_oom(S, "text");
            st = pt_unit(S, s, strlen(s), 1);
            mmspcl_free(s);
        }
    }
    return st;
}

static mmspcl_status pt_all_units(pt_state *S) {
    mmspcl_status st = pt_meld_text(S);
    int i;
    for (i = 0; i < S->n_texts && !st; i++)
        st = S->texts[i].kind == 0 ? pt_dialogue_text(S, &S->texts[i]) : pt_prose_text(S, &S->texts[i]);
    pt_document(S, 0);
    return st;
}

static mmspcl_status pt_stage_vocab(pt_state *S, const char *const *vocab, int64_t n_vocab, const char *const *merges,
                                    int64_t n_merges) {
    int64_t i, kept = 0, total = 0;
    mmspcl_status st;
    if ((st = mmspcl_bpe_from_arrays(&S->full, vocab, NULL, n_vocab, merges, NULL, n_merges, S->err))) return st;
    S->count = (int64_t *)calloc((size_t)n_vocab + 1, sizeof(int64_t));
    S->keep = (unsigned char *)calloc((size_t)n_vocab + 1, 1);
    if (!S->count || !S->keep) return pt_oom(S, "vocabulary");
    S->pass = 1;
    if ((st = pt_all_units(S))) return st;
    for (i = 0; i < n_vocab; i++) {
        total += S->count[i];
        if (S->count[i] >= S->r->min_count) S->keep[i] = 1;
    }
    for (i = 0; i < n_vocab; i++) kept += S->keep[i] ? S->count[i] : 0;
    if ((st = meld_vocab_cut_keep(&S->vc, S->full, vocab, n_vocab, merges, n_merges, S->keep, S->err))) return st;
    if ((st = mmspcl_bpe_from_arrays(&S->tok, S->vc.vocab, NULL, S->vc.n_vocab, S->vc.merges, NULL, S->vc.n_merges, S->err)))
        return st;
    meld_msg(S->progress, S->user, "vocab", "%lld tokens of text (full BPE); vocabulary cut to %lld tokens and %lld merges "
             "(MELD train's tokens and those seen >= %d times: %.2f%% of the text)", (long long)total, (long long)S->vc.n_vocab,
             (long long)S->vc.n_merges, S->r->min_count, total ? 100.0 * kept / total : 0.0);
    return MMSPCL_OK;
}

static mmspcl_status pt_stage_chunks(pt_state *S) {
    int c, nd = 0;
    mmspcl_status st;
    S->pass = 2;
    if ((st = pt_all_units(S))) return st;
    if (S->n_chunks < 1) return mmspcl_error_set(S->err, MMSPCL_ERR_ARG, "pretrain: no text to train on");
    for (c = 0; c < S->n_chunks; c++) nd += S->cdialog[c];
    meld_msg(S->progress, S->user, "data", "%d chunks of <= %d tokens (%d of dialogue, %d of prose), %lld tokens", S->n_chunks, S->ML,
             nd, S->n_chunks - nd, (long long)S->nctok);
    return MMSPCL_OK;
}

/* ==== 4. encoder ==== */
/* 1 when token s is a whole word ("Ġword" or "word": letters and '), lower-cased into low */
static int pt_glove_word(const char *s, char *low, size_t cap) {
    size_t k, L;
    if (!strncmp(s, "\xC4\xA0", 2)) s += 2;
    L = strlen(s);
    if (!L || L >= cap) return 0;
    for (k = 0; k < L; k++) {
        const char c = s[k];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '\'')) return 0;
        low[k] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    low[L] = 0;
    return 1;
}

/* GloVe: the word embedding of a whole-word token becomes a fixed random projection of the
   word's vector (lower-cased lookup), all such rows scaled together to the initialisation's
   standard deviation (0.02); other rows keep their random values */
static mmspcl_status pt_glove_apply(pt_state *S, const mmspcl_bpe *wt, const float *vecs, int64_t nrows) {
    const int H = S->cfg.hidden_size, G = S->r->glove_dim;
    double *R = (double *)malloc(sizeof(double) * (size_t)H * G), ss = 0, sc;
    int32_t *gid = (int32_t *)malloc(sizeof(int32_t) * (size_t)S->vc.n_vocab);
    int64_t id, hit = 0;
    mmspcl_rng rr;
    size_t i;
    int k, j;
    if (!R || !gid) { free(R); free(gid); return pt_oom(S, "glove"); }
    mmspcl_rng_seed(&rr, S->r->seed + 99);
    for (i = 0; i < (size_t)H * G; i++) R[i] = mmspcl_rng_normal(&rr) / sqrt((double)G);
    for (id = 0; id < S->vc.n_vocab; id++) {
        char low[64];
        double *row = S->model.P.w + S->model.word + (size_t)id * H;
        gid[id] = pt_glove_word(S->vc.vocab[id], low, sizeof low) ? mmspcl_bpe_token_id(wt, low) : -1;
        if (gid[id] < 0 || gid[id] >= nrows) { gid[id] = -1; continue; }
        for (k = 0; k < H; k++) {
            double a = 0;
            for (j = 0; j < G; j++) a += R[(size_t)k * G + j] * vecs[(size_t)gid[id] * G + j];
            row[k] = a;
            ss += a * a;
        }
        hit++;
    }
    sc = hit ? 0.02 / sqrt(ss / ((double)hit * H)) : 1.0;
    for (id = 0; id < S->vc.n_vocab; id++)
        if (gid[id] >= 0)
            for (k = 0; k < H; k++) S->model.P.w[S->model.word + (size_t)id * H + k] *= sc;
    mmspcl_roberta_train_sync(&S->model);
    meld_msg(S->progress, S->user, "glove", "word embeddings of %lld of %lld tokens initialised from GloVe (%lld words, %d-d)",
             (long long)hit, (long long)S->vc.n_vocab, (long long)nrows, G);
    free(R); free(gid);
    return MMSPCL_OK;
}

static mmspcl_status pt_glove(pt_state *S) {
    const pretrain_recipe *r = S->r;
    unsigned char *words = NULL, *vecs = NULL;
    size_t nw = 0, nv = 0, i;
    mmspcl_bpe *wt = NULL;
    const char **list = NULL;
    float *fv = NULL;
    int64_t id, nrows = 0;
    mmspcl_status st;
    if (!r->glove_words) return MMSPCL_OK;
    if ((st = mmspcl_read_file(r->glove_words, (size_t)1 << 30, &words, &nw, S->err)) ||
        (st = mmspcl_read_file(r->glove_vectors, (size_t)1 << 32, &vecs, &nv, S->err)))
        goto done;
    for (i = 0; i < nw; i++) nrows += words[i] == '\n';
    if (r->glove_dim < 1 || nv != (size_t)nrows * r->glove_dim * 4) {
        st = mmspcl_error_set(S->err, MMSPCL_ERR_FORMAT, "pretrain: %s has %zu bytes, not %lld words x %d float32", r->glove_vectors, nv,
                              (long long)nrows, r->glove_dim);
        goto done;
    }
    /* the words as a vocabulary without merges: mmspcl_bpe_token_id finds a word's row */
    list = (const char **)malloc(sizeof(char *) * (size_t)(nrows + 1));
    fv = (float *)malloc(nv + 4);
    if (!list || !fv) { st = pt_oom(S, "glove"); goto done; }
    memcpy(fv, vecs, nv);   /* little-endian file, little-endian host */
    for (i = 0, id = 0; i < nw && id < nrows; id++) {
        list[id] = (const char *)words + i;
        while (i < nw && words[i] != '\n') i++;
        if (i < nw) words[i++] = 0;
    }
    if (!(st = mmspcl_bpe_from_arrays(&wt, list, NULL, nrows, NULL, NULL, 0, S->err))) st = pt_glove_apply(S, wt, fv, nrows);
done:
    mmspcl_bpe_free(wt);
    free(list); free(fv);
    mmspcl_free(words); mmspcl_free(vecs);
    return st;
}

static mmspcl_status pt_stage_encoder(pt_state *S) {
    const pretrain_recipe *r = S->r;
    const int B = r->batch, ML = S->ML;
    mmspcl_status st;
    int c;
    memset(&S->cfg, 0, sizeof S->cfg);
    S->cfg.vocab_size = (int)S->vc.n_vocab; S->cfg.hidden_size = r->hidden; S->cfg.num_layers = r->layers;
    S->cfg.num_heads = r->heads; S->cfg.intermediate_size = r->ffn; S->cfg.max_positions = ML + 2;
    S->cfg.type_vocab_size = 1; S->cfg.pad_id = mmspcl_bpe_pad_id(S->tok); S->cfg.layer_norm_eps = 1e-5f;
    if ((st = mmspcl_roberta_train_create(&S->model, &S->cfg, 1, r->seed, B * ML, ML, S->err))) return st;
    mmspcl_adamw_defaults(&S->opt);
    mmspcl_rng_seed(&S->rng, r->seed ^ 0x9E3779B97F4A7C15ull);
    S->n_order = 0;
    for (c = 0; c < S->n_chunks; c++) S->n_order += S->cdialog[c] ? (r->dialogue_repeat > 0 ? r->dialogue_repeat : 0) : 1;
    S->order = (int *)malloc(sizeof(int) * (size_t)(S->n_order + 1));
    S->mrows = (int *)malloc(sizeof(int) * (size_t)B * ML);
    S->mtarget = (int32_t *)malloc(sizeof(int32_t) * (size_t)B * ML);
    S->bids = (int32_t *)malloc(sizeof(int32_t) * (size_t)B * ML);
    S->blen = (int *)malloc(sizeof(int) * (size_t)B);
    S->dout = (float *)malloc(sizeof(float) * (size_t)B * ML * r->hidden);
    if (!S->order || !S->mrows || !S->mtarget || !S->bids || !S->blen || !S->dout) return pt_oom(S, "buffers");
    if (S->n_order < 1) return mmspcl_error_set(S->err, MMSPCL_ERR_ARG, "pretrain: no chunk to train on (--dialogue-repeat 0 and no prose)");
    return pt_glove(S);
}

/* the epoch's chunk list before its shuffle: every chunk, dialogue chunks dialogue_repeat times */
static void pt_fill_order(pt_state *S) {
    int c, k, o = 0;
    for (c = 0; c < S->n_chunks; c++)
        for (k = 0; k < (S->cdialog[c] ? S->r->dialogue_repeat : 1); k++) S->order[o++] = c;
}

/* ==== checkpoints ==== */
static mmspcl_status pt_write_tokenizer(pt_state *S, mmspcl_writer *wr) {
    if (mmspcl_writer_set_str(wr, "tokenizer.model", "gpt2-bpe") ||
        mmspcl_writer_set_str_array(wr, "tokenizer.vocab", S->vc.vocab, NULL, S->vc.n_vocab) ||
        mmspcl_writer_set_str_array(wr, "tokenizer.merges", S->vc.merges, NULL, S->vc.n_merges))
        return pt_oom(S, "file");
    return MMSPCL_OK;
}

static mmspcl_status pt_put_rng(pt_state *S, mmspcl_writer *wr, const char *name, const mmspcl_rng *g) {
    int64_t sh[1];
    sh[0] = (int64_t)(sizeof g->s / 4);
    return mmspcl_writer_add_tensor(wr, name, MMSPCL_I32, 1, sh, g->s, sizeof g->s, S->err);
}

/* the checkpoint: weights with AdamW state (f32), the MLM head, the tokenizer, where the run is */
static mmspcl_status pt_checkpoint(pt_state *S, int epoch, int batch) {
    mmspcl_writer *wr;
    float *hold = NULL;
    mmspcl_status st;
    if (!S->r->checkpoint) return MMSPCL_OK;
    if (!(wr = mmspcl_writer_create())) return pt_oom(S, "checkpoint");
    st = mmspcl_roberta_train_write_config(&S->model, wr, S->err);
    if (!st) st = pt_write_tokenizer(S, wr);
    if (!st) st = mmspcl_params_write(&S->model.P, wr, "", 1, &hold, S->err);
    if (!st && (mmspcl_writer_set_str(wr, "ckpt.kind", "pretrain") || mmspcl_writer_set_int(wr, "ckpt.epoch", epoch) ||
                mmspcl_writer_set_int(wr, "ckpt.batch", batch) || mmspcl_writer_set_int(wr, "ckpt.step", S->step) ||
                mmspcl_writer_set_int(wr, "ckpt.n_chunks", S->n_chunks) || mmspcl_writer_set_int(wr, "ckpt.n_order", S->n_order)))
        st = pt_oom(S, "checkpoint");
    if (!st) st = pt_put_rng(S, wr, "ckpt.rng", &S->rng);
    if (!st) st = pt_put_rng(S, wr, "ckpt.rng_epoch", &S->rng_epoch);
    if (!st) st = meld_log_write(&S->log, wr, "meld.log.mlm", S->err);
    if (!st) st = mmspcl_writer_save(wr, S->r->checkpoint, NULL, NULL, S->err);
    mmspcl_writer_free(wr);
    free(hold);
    S->last_ckpt = pt_now();
    return st;
}

static int pt_get_rng(const mmspcl_weights *w, const char *name, mmspcl_rng *g) {
    const mmspcl_tensor *t = mmspcl_weights_find(w, name);
    if (!t || t->dtype != MMSPCL_I32 || t->nbytes != sizeof g->s) return -1;
    memcpy(g->s, t->data, sizeof g->s);
    return 0;
}

static mmspcl_status pt_resume(pt_state *S) {
    mmspcl_weights *w = NULL;
    int64_t v[5];
    const char *kind = NULL;
    mmspcl_status st;
    if (!S->r->resume) return MMSPCL_OK;
    if ((st = mmspcl_weights_read(&w, S->r->resume, S->err))) return st;
    if (!mmspcl_weights_get_str(w, "ckpt.kind", &kind) || strcmp(kind, "pretrain") || !mmspcl_weights_get_int(w, "ckpt.epoch", &v[0]) ||
        !mmspcl_weights_get_int(w, "ckpt.batch", &v[1]) || !mmspcl_weights_get_int(w, "ckpt.step", &v[2]) ||
        !mmspcl_weights_get_int(w, "ckpt.n_chunks", &v[3]) || !mmspcl_weights_get_int(w, "ckpt.n_order", &v[4]) ||
        v[3] != S->n_chunks || v[4] != S->n_order || pt_get_rng(w, "ckpt.rng", &S->rng) || pt_get_rng(w, "ckpt.rng_epoch", &S->rng_epoch)) {
        mmspcl_weights_free(w);
        return mmspcl_error_set(S->err, MMSPCL_ERR_FORMAT, "--resume %s is not a checkpoint of this pretraining (another corpus, "
                                "vocabulary threshold, chunk length or --dialogue-repeat, or not written by mmspcl pretrain)", S->r->resume);
    }
    if ((st = mmspcl_params_read(&S->model.P, w, "", S->err))) { mmspcl_weights_free(w); return st; }
    mmspcl_roberta_train_sync(&S->model);
    S->epoch0 = (int)v[0]; S->batch0 = (int)v[1]; S->step = v[2];
    meld_log_read(&S->log, w, "meld.log.mlm");
    mmspcl_weights_free(w);
    meld_msg(S->progress, S->user, "resume", "resuming %s at epoch %d, batch %d (%lld steps done)", S->r->resume, S->epoch0 + 1,
             S->batch0, (long long)S->step);
    return MMSPCL_OK;
}

/* ==== 5. MLM ==== */
/* one batch of chunks order[b ..): masking, forward, loss, backward, step; the loss */
static mmspcl_status pt_batch(pt_state *S, int b, int nb, int64_t total, double *loss) {
    const int ML = S->ML;
    const int32_t mask_id = mmspcl_bpe_mask_id(S->tok), bos = mmspcl_bpe_bos_id(S->tok), eos = mmspcl_bpe_eos_id(S->tok);
    int T = 0, nm = 0, i, j;
    mmspcl_status st;
    *loss = -1.0;
    for (i = 0; i < nb; i++) {
        const int c = S->order[b + i], L = S->clen[S->order[b + i]];
        int32_t *row = S->bids + (size_t)i * ML;
        memcpy(row, S->ctok + S->cstart[c], sizeof(int32_t) * (size_t)L);
        S->blen[i] = L;
        for (j = 0; j < L; j++) {
            double u;
            if (row[j] == bos || row[j] == eos || mmspcl_rng_uniform(&S->rng) >= S->r->mask_p) continue;
            S->mrows[nm] = T + j;
            S->mtarget[nm++] = row[j];
            u = mmspcl_rng_uniform(&S->rng);
            if (u < 0.8) row[j] = mask_id;
            else if (u < 0.9) row[j] = 4 + mmspcl_rng_int(&S->rng, S->cfg.vocab_size - 5);
        }
        T += L;
    }
    if (!nm) return MMSPCL_OK;
    if ((st = mmspcl_roberta_train_forward(&S->model, S->bids, S->blen, nb, ML, S->err))) return st;
    mmspcl_params_zero_grad(&S->model.P);
    *loss = mmspcl_roberta_train_mlm_loss(&S->model, S->mrows, S->mtarget, nm, S->dout, S->err);
    if (*loss < 0) return S->err ? S->err->status : MMSPCL_ERR_NOMEM;
    if ((st = mmspcl_roberta_train_backward(&S->model, S->dout, NULL, S->err))) return st;
    mmspcl_grad_clip(&S->model.P, S->r->clip);
    mmspcl_adamw_step(&S->model.P, &S->opt,
                      mmspcl_lr_cosine(S->step, (int64_t)(S->r->warmup_frac * (double)total), total, S->r->lr));
    mmspcl_roberta_train_sync(&S->model);
    S->step++;
    return MMSPCL_OK;
}

/* 1 when the run must stop now (time or step budget) */
static int pt_budget_spent(const pt_state *S) {
    if (S->r->max_steps > 0 && S->step >= S->r->max_steps) return 1;
    return S->r->max_minutes > 0 && pt_now() - S->t0 >= 60.0 * S->r->max_minutes;
}

static mmspcl_status pt_stage_mlm(pt_state *S, int *finished) {
    const pretrain_recipe *r = S->r;
    const int B = r->batch, spe = (S->n_order + B - 1) / B;
    const int64_t total = (int64_t)spe * r->epochs;
    int e, b;
    mmspcl_status st;
    *finished = 0;
    for (e = S->epoch0; e < r->epochs; e++) {
        double sum = 0.0, win = 0.0;
        int nsum = 0, nwin = 0;
        pt_fill_order(S);   /* then shuffled by the stream as it was at the epoch's start */
        if (e == S->epoch0 && S->batch0 > 0) {
            mmspcl_rng now = S->rng;
            S->rng = S->rng_epoch;
            mmspcl_rng_shuffle(&S->rng, S->order, S->n_order);
            S->rng = now;
        } else {
            S->rng_epoch = S->rng;
            mmspcl_rng_shuffle(&S->rng, S->order, S->n_order);
        }
        for (b = e == S->epoch0 ? S->batch0 * B : 0; b < S->n_order; b += B) {
            const int nb = S->n_order - b < B ? S->n_order - b : B;
            double loss;
            if (pt_budget_spent(S)) {
                meld_msg(S->progress, S->user, "mlm", "budget spent after %lld of %lld steps (epoch %d, batch %d): checkpoint written",
                         (long long)S->step, (long long)total, e + 1, b / B);
                return pt_checkpoint(S, e, b / B);
            }
            if ((st = pt_batch(S, b, nb, total, &loss))) return st;
            if (loss >= 0) { sum += loss; nsum++; win += loss; nwin++; }
            if (S->progress) S->progress(S->user, "mlm", (int)S->step, (int)total, NULL);
            if (nwin == 200) {
                meld_msg(S->progress, S->user, "mlm", "step %lld/%lld: MLM loss %.4f (mean of the last 200)", (long long)S->step,
                         (long long)total, win / nwin);
                win = 0; nwin = 0;
            }
            if (r->ckpt_minutes > 0 && pt_now() - S->last_ckpt >= 60.0 * r->ckpt_minutes && (st = pt_checkpoint(S, e, b / B + 1))) return st;
        }
        meld_log_add(&S->log, e + 1, nsum ? sum / nsum : 0.0, (double)S->step);
        meld_msg(S->progress, S->user, "mlm", "MLM epoch %d/%d: loss %.4f (%lld steps)", e + 1, r->epochs, nsum ? sum / nsum : 0.0,
                 (long long)S->step);
        if ((st = pt_checkpoint(S, e + 1, 0))) return st;
    }
    *finished = 1;
    return MMSPCL_OK;
}

/* ==== 6. the file ==== */
static mmspcl_status pt_stage_file(pt_state *S, const char *out_path, int finished) {
    mmspcl_writer *wr = mmspcl_writer_create();
    void *hold = NULL;
    mmspcl_status st;
    if (!wr) return pt_oom(S, "file");
    st = mmspcl_roberta_train_write_config(&S->model, wr, S->err);
    if (!st) st = mmspcl_roberta_train_write_tensors(&S->model, wr, MMSPCL_F32, &hold, S->err);
    if (!st) st = pt_write_tokenizer(S, wr);
    if (!st && (mmspcl_writer_set_str(wr, "general.name", "mmspcl-pretrained") ||
                mmspcl_writer_set_str(wr, "general.source", "MLM pretraining by mmspcl pretrain (corpus + MELD train)") ||
                mmspcl_writer_set_int(wr, "pretrain.steps", S->step) || mmspcl_writer_set_int(wr, "pretrain.finished", finished) ||
                mmspcl_writer_set_int(wr, "pretrain.seed", (int64_t)S->r->seed)))
        st = pt_oom(S, "file");
    if (!st) st = meld_log_write(&S->log, wr, "meld.log.mlm", S->err);
    if (!st) st = mmspcl_writer_save(wr, out_path, NULL, NULL, S->err);
    mmspcl_writer_free(wr);
    free(hold);
    if (!st) meld_msg(S->progress, S->user, "file", "wrote %s (%lld steps%s)", out_path, (long long)S->step, finished ? "" : ", unfinished");
    return st;
}

mmspcl_status pretrain_run(const pretrain_recipe *r, const pretrain_text *texts, int n_texts, const meld_csv *meld_train,
                           const char *const *vocab, int64_t n_vocab, const char *const *merges, int64_t n_merges,
                           const char *out_path, meld_progress_fn progress, void *user, int *finished, mmspcl_error *err) {
    pt_state S;
    mmspcl_status st;
    int fin = 0;
    memset(&S, 0, sizeof S);
    S.r = r; S.texts = texts; S.n_texts = n_texts; S.meld = meld_train; S.progress = progress; S.user = user; S.err = err;
    S.ML = r->max_len;
    S.t0 = S.last_ckpt = pt_now();
    if (r->max_len < 16 || r->batch < 1 || r->epochs < 1 || r->hidden % r->heads)
        return mmspcl_error_set(err, MMSPCL_ERR_ARG, "pretrain: max_len %d (>= 16), batch %d, epochs %d, hidden %d / heads %d", r->max_len,
                                r->batch, r->epochs, r->hidden, r->heads);
    if (!(st = pt_stage_vocab(&S, vocab, n_vocab, merges, n_merges)) && !(st = pt_stage_chunks(&S)) && !(st = pt_stage_encoder(&S)) &&
        !(st = pt_resume(&S)) && !(st = pt_stage_mlm(&S, &fin)))
        st = pt_stage_file(&S, out_path, fin);
    if (finished) *finished = fin;
    pt_free(&S);
    return st;
}
