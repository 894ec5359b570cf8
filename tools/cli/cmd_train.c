#define _POSIX_C_SOURCE 200809L /* clock_gettime */
/* mmspcl train --meld DIR -o MODEL [--seed N] [--resume CKPT] [--bpe DIR] [--q8 OUT] [recipe options]

   The front end of the MELD recipe (tools/train/meld_recipe.c, stages in meld_recipe.h): cut
   RoBERTa BPE, MLM pretraining on the train transcripts, SPCL fine-tuning with early stopping on
   dev, text views, MSVE heads. Reads DIR/train_sent_emo.csv and DIR/dev_sent_emo.csv (never the
   test split). Every output (MODEL, --q8, the checkpoint MODEL.ckpt) is checked before any
   training starts; none may be one of the inputs. The progress line's ETA is for the whole run
   (every stage still to come, from the resume point with --resume).

   mmspcl train --init MODEL --meld DIR -o OUT [options]: SPCL fine-tuning of a converted RoBERTa
   checkpoint instead (tools/train/spcl_finetune.c; train_finetune below).

   mmspcl train --media FEATS -m MODEL -o OUT: audio / video heads on mmspcl extract's features
   (meld_train_media; train_media below). */
#include "mmspcl.h"
#include "mmspcl_train.h"
#include "tools/train/meld_recipe.h"
#include "tools/train/spcl_finetune.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"
#include "train_bpe.h"

#define CMD "train"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void fmt_time(char *b, size_t n, double s) {
    if (s < 0) s = 0;
    if (s >= 3600) snprintf(b, n, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
    else snprintf(b, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
}

/* ==== the whole run's ETA ======================================================================
   The work still to come, in units of one encoder forward of one prompt (TRAIN_U_STEP and
   TRAIN_U_MLM for training steps; measured single-threaded, full MELD recipe), from the sizes the recipe reports ("data" message) and the resume
   point ("resume" message); the rate is measured on this process's own work. The n-gram and
   head stages, which report no steps, are counted by their messages, their size estimated in
   the same units from the floating-point work they do compared with one encoder forward. */
#define TRAIN_U_STEP 3.0   /* a training step of one prompt, forward + backward */
#define TRAIN_U_MLM 2.7    /* an MLM step of one chunk (max_len tokens, packed), with its vocabulary head */

typedef struct train_plan {
    int known;
    int n_all, n_enc, n_held, n_dev, n_chunks, start_stage, start_epoch;
    double mlm_end, spcl_end, views_end, ngram_end, total;   /* position at the end of each stage */
    double pos, measured, t0;                                /* position, units measured here, since */
    char inst_stage[16];                                     /* the progress instance being counted */
    int inst_done;
} train_plan;

typedef struct train_ui {
    int tty, quiet;
    double t0, last_print;
    const meld_recipe *r;
    train_plan plan;
} train_ui;

static void plan_compute(train_plan *p, const meld_recipe *r) {
    /* flops of one encoder forward of a prompt (max_len tokens): the n-gram and head stages in its units */
    const double L = r->layers, T = r->max_len, H = r->hidden, F = r->ffn;
    const double enc = L * T * (8.0 * H * H + 4.0 * H * F) + 4.0 * L * T * T * H;
    /* n-gram: per train row about 2 tasks x 130 SGD passes over ~250 features x 10 classes, scalar
       and cache-bound: about 6.5x the cost of as many of the encoder's SIMD flops (measured) */
    const double ngram = p->n_all * 2.6e6 * 6.5 / enc;
    /* heads: 5 MSVE models, epochs x held rows x hidden x inputs x 6 (forward + backward); early
       stopping runs about half the epochs: about 5x as many encoder flops (measured) */
    const double msve = (double)r->msve_epochs * p->n_held * r->msve_hidden * (2.0 * (2.0 * H + 10.0) + 2.0 * H + 10.0) * 6.0 * 5.0 / enc;
    const double kept = p->n_enc * (r->curriculum ? 0.5 : 1.0);
    double u = 0.0;
    int e;
    if (p->start_stage == 0) u += TRAIN_U_MLM * p->n_chunks * (r->mlm_epochs - p->start_epoch);
    p->mlm_end = u;
    for (e = p->start_stage == 0 ? 0 : p->start_epoch; e <= r->spcl_epochs; e++) {
        u += p->n_enc + (e > 0 ? p->n_dev : 0);
        if (e < r->spcl_epochs) u += TRAIN_U_STEP * kept;
    }
    p->spcl_end = u;
    p->views_end = u += p->n_held + p->n_dev;
    p->ngram_end = u += ngram;
    p->total = u + msve;
}

static void plan_advance(train_plan *p, double units, double floor_pos) {
    if (p->pos < floor_pos) p->pos = floor_pos;
    p->pos += units;
    p->measured += units;
}

/* a message: the sizes, the resume point, or work done without steps */
static void plan_message(train_plan *p, const meld_recipe *r, const char *stage, const char *msg, double t) {
    const char *at;
    int a[6];
    if (!strcmp(stage, "data") &&
        sscanf(msg, "%d train prompts (%d train the encoder, %d the heads), %d dev prompts, %d MLM chunks of <= %d tokens",
               &a[0], &a[1], &a[2], &a[3], &a[4], &a[5]) == 6) {
        p->n_all = a[0]; p->n_enc = a[1]; p->n_held = a[2]; p->n_dev = a[3]; p->n_chunks = a[4];
        p->known = 1;
        p->t0 = t;
        plan_compute(p, r);
    } else if (!strcmp(stage, "resume") && (at = strstr(msg, " at stage ")) && sscanf(at, " at stage %d epoch %d", &a[0], &a[1]) == 2) {
        p->start_stage = a[0];
        p->start_epoch = a[1];
        if (p->known) plan_compute(p, r);
    } else if (!p->known) {
        return;
    } else if (!strcmp(stage, "spcl") && strstr(msg, "dev weighted F1")) {
        plan_advance(p, p->n_dev, 0.0);          /* the dev embedding of an evaluation */
    } else if (!strcmp(stage, "spcl") && !strncmp(msg, "SPCL: best", 10)) {
        if (p->pos < p->spcl_end) p->pos = p->spcl_end;   /* early stopping skips the rest */
    } else if (!strcmp(stage, "ngram")) {
        plan_advance(p, (p->ngram_end - p->views_end) / 14.0, p->views_end);   /* 2 tasks x 7 messages */
    } else if (!strcmp(stage, "msve") && strstr(msg, " head: ")) {
        plan_advance(p, (p->total - p->ngram_end) / 5.0, p->ngram_end);        /* 5 heads */
    }
}

/* a step: done of total in stage */
static void plan_step(train_plan *p, const meld_recipe *r, const char *stage, int done, int total) {
    const int fresh = strcmp(stage, p->inst_stage) != 0 || done < p->inst_done;
    const int delta = fresh ? (!strcmp(stage, "mlm") ? 1 : done) : done - p->inst_done;
    double per = 1.0, floor_pos = 0.0;
    snprintf(p->inst_stage, sizeof p->inst_stage, "%s", stage);
    p->inst_done = done;
    if (!p->known || delta <= 0) return;
    if (!strcmp(stage, "mlm")) per = total > 0 ? TRAIN_U_MLM * p->n_chunks * r->mlm_epochs / total : 0.0;
    else if (!strcmp(stage, "spcl")) per = TRAIN_U_STEP;
    if (fresh && !strcmp(stage, "embed")) floor_pos = p->mlm_end;
    if (fresh && !strcmp(stage, "features")) floor_pos = p->spcl_end;
    plan_advance(p, delta * per, floor_pos);
}

/* seconds to the end of the run (-1: not known yet) */
static double plan_eta(const train_plan *p, double t) {
    if (!p->known || p->measured <= 0 || t <= p->t0) return -1.0;
    return (p->total > p->pos ? p->total - p->pos : 0.0) * (t - p->t0) / p->measured;
}

static void train_progress(void *user, const char *stage, int done, int total, const char *msg) {
    train_ui *ui = (train_ui *)user;
    const double t = now_s();
    double left;
    char el[32], eta[32];
    if (msg) plan_message(&ui->plan, ui->r, stage, msg, t);
    else plan_step(&ui->plan, ui->r, stage, done, total);
    left = plan_eta(&ui->plan, t);
    fmt_time(el, sizeof el, t - ui->t0);
    fmt_time(eta, sizeof eta, left);
    if (msg) {
        if (ui->tty) fprintf(stderr, "\r\033[K");
        if (left > 0 && strcmp(stage, "data") && strcmp(stage, "resume")) fprintf(stderr, "[%s] %s (eta %s)\n", el, msg, eta);
        else fprintf(stderr, "[%s] %s\n", el, msg);
        return;
    }
    if (ui->quiet || total <= 0) return;
    if (left < 0) snprintf(eta, sizeof eta, "?");
    if (ui->tty) {
        const int W = 30, fill = (int)((double)W * done / total);
        int i;
        if (t - ui->last_print < 0.2 && done < total) return;
        ui->last_print = t;
        fprintf(stderr, "\r\033[K%-8s [", stage);
        for (i = 0; i < W; i++) fputc(i < fill ? '#' : '.', stderr);
        fprintf(stderr, "] %d/%d  elapsed %s  eta %s", done, total, el, eta);
        fflush(stderr);
    } else if (t - ui->last_print >= 30.0 || done == total) {
        ui->last_print = t;
        fprintf(stderr, "[%s] %s %d/%d (eta %s)\n", el, stage, done, total, eta);
    }
}

/* keep the first n_dialogues dialogues of a split (for quick runs) */
static void meld_limit(meld_csv *m, int n_dialogues) {
    if (n_dialogues <= 0 || n_dialogues >= m->n_dialogues) return;
    m->n_dialogues = n_dialogues;
    m->n_rows = m->dialogue_start[n_dialogues];
}

/* the train and dev splits, cut to the first `limit` dialogues (dev: a ninth as many) when
   limit > 0; 1 after printing the error */
static int train_load_splits(const char *train_csv, const char *dev_csv, int limit, meld_csv *train, meld_csv *dev,
                             int *have_train, int *have_dev) {
    mmspcl_error err;
    if (meld_csv_load(train_csv, train, &err)) return cli_fail_io(CMD, train_csv, &err), 1;
    *have_train = 1;
    if (meld_csv_load(dev_csv, dev, &err)) return cli_fail_io(CMD, dev_csv, &err), 1;
    *have_dev = 1;
    meld_limit(train, limit);
    meld_limit(dev, limit ? (limit + 8) / 9 : 0);
    return 0;
}

/* ==== options and paths ======================================================================= */
typedef struct train_args {
    const char *meld_dir, *out, *bpe_dir, *q8;
    int limit, no_ckpt;
    char train_csv[4096], dev_csv[4096], vocab[4096], merges[4096], ckpt[4200];
} train_args;

static int train_parse(int argc, char **argv, meld_recipe *r, train_args *a, train_ui *ui) {
    int np, rc;
    const cli_opt opts[] = {
        CLI_OPT_REQ("--meld", &a->meld_dir, "DIR", "folder of train_sent_emo.csv and dev_sent_emo.csv"),
        CLI_OPT_REQ("-o, --output", &a->out, "MODEL", "the classifier file to write (f32); the checkpoint is MODEL.ckpt"),
        {"--seed", CLI_U64, &r->seed, 0, 18446744073709551615.0, "N", "random seed (0 to 2^64-1)", NULL, 0, NULL},
        CLI_OPT_STR("--resume", &r->resume, "CKPT", "continue from a checkpoint (MODEL.ckpt of an interrupted run)", NULL),
        CLI_OPT_STR("--bpe", &a->bpe_dir, "DIR", "vocab.json and merges.txt of the RoBERTa BPE", "DIR/../weights/roberta-bpe"),
        CLI_OPT_STR("--q8", &a->q8, "OUT", "also write a q8_0 copy of the model", NULL),
        {"--limit", CLI_INT, &a->limit, 1, 2147483647.0, "DIALOGUES", "train on the first DIALOGUES dialogues (dev: a ninth)", "all", 0, NULL},
        CLI_OPT_FLAG("--no-checkpoint", &a->no_ckpt, "no MODEL.ckpt after each epoch"),
        CLI_OPT_FLAG("--quiet", &ui->quiet, "no progress bar (epoch summaries still printed)"),
        CLI_OPT_INT("--hidden", &r->hidden, 8, 4096, "N", "encoder width (a multiple of --heads)"),
        CLI_OPT_INT("--layers", &r->layers, 1, 48, "N", "encoder layers"),
        CLI_OPT_INT("--heads", &r->heads, 1, 64, "N", "attention heads"),
        CLI_OPT_INT("--ffn", &r->ffn, 1, 65536, "N", "feed-forward width"),
        CLI_OPT_INT("--max-len", &r->max_len, 16, 512, "N", "tokens of an SPCL prompt"),
        CLI_OPT_INT("--mlm-epochs", &r->mlm_epochs, 0, 1000, "N", "MLM pretraining epochs"),
        CLI_OPT_REAL("--mlm-lr", &r->mlm_lr, 1e-8, 1, "X", "MLM peak learning rate"),
        CLI_OPT_INT("--epochs", &r->spcl_epochs, 1, 1000, "N", "SPCL fine-tuning epochs"),
        CLI_OPT_INT("--batch", &r->batch, 1, 256, "N", "SPCL batch (rows)"),
        CLI_OPT_INT("--patience", &r->patience, 0, 1000, "N", "stop after N epochs without a better dev F1 (0: never)"),
        CLI_OPT_REAL("--lr", &r->lr, 1e-8, 1, "X", "SPCL peak learning rate"),
        CLI_OPT_REAL("--ce-weight", &r->ce_weight, 0, 100, "X", "weight of the cross-entropy heads"),
        CLI_OPT_REAL("--temperature", &r->temperature, 1e-3, 100, "X", "SPCL temperature"),
        CLI_OPT_INT("--curriculum", &r->curriculum, 0, 1, "0|1", "curriculum sampling by difficulty"),
        CLI_OPT_INT("--holdout", &r->holdout, 0, 1, "0|1", "every 5th dialogue trains the heads, not the encoder"),
        CLI_OPT_INT("--ngram-bits", &r->ngram_bits, 4, 24, "N", "2^N hashed n-gram buckets"),
        CLI_OPT_INT("--msve-hidden", &r->msve_hidden, 1, 4096, "N", "MSVE head width"),
        CLI_OPT_INT("--msve-epochs", &r->msve_epochs, 1, 1000, "N", "MSVE head epochs"),
        CLI_OPT_REAL("--msve-dropout", &r->msve_dropout, 0, 0.95, "X", "MSVE dropout"),
        CLI_OPT_END};
    const cli_spec spec = {CMD, "--meld DIR -o MODEL [options]",
                           "Trains the MELD text classifier: cut RoBERTa BPE, MLM pretraining, SPCL fine-tuning with early\n"
                           "stopping on dev, text views, MSVE heads (tools/train/meld_recipe.h). Never reads the test split.",
                           opts, NULL, 0,
                           "Every output (MODEL, --q8 OUT, MODEL.ckpt) is checked before training starts; none may be an input.\n"
                           "With --init MODEL: SPCL fine-tuning of a converted RoBERTa instead (mmspcl train --init MODEL --help).\n"
                           "With --media FEATS: audio / video heads for a classifier (mmspcl train --media FEATS --help)."};
    if ((rc = cli_parse(&spec, argc, argv, &np)) != CLI_GO) return rc;
    if (r->hidden % r->heads) return cli_usage_error(CMD, "--hidden %d is not a multiple of --heads %d", r->hidden, r->heads);
    if (a->limit && a->limit < 5 && r->holdout)
        return cli_usage_error(CMD, "--limit %d: with --holdout 1 every 5th dialogue trains the heads: give at least 5 (or --holdout 0)",
                               a->limit);
    if ((size_t)snprintf(a->train_csv, sizeof a->train_csv, "%s/train_sent_emo.csv", a->meld_dir) >= sizeof a->train_csv ||
        (size_t)snprintf(a->dev_csv, sizeof a->dev_csv, "%s/dev_sent_emo.csv", a->meld_dir) >= sizeof a->dev_csv ||
        (size_t)snprintf(a->vocab, sizeof a->vocab, "%s%s/vocab.json", a->bpe_dir ? a->bpe_dir : a->meld_dir,
                         a->bpe_dir ? "" : "/../weights/roberta-bpe") >= sizeof a->vocab ||
        (size_t)snprintf(a->merges, sizeof a->merges, "%s%s/merges.txt", a->bpe_dir ? a->bpe_dir : a->meld_dir,
                         a->bpe_dir ? "" : "/../weights/roberta-bpe") >= sizeof a->merges ||
        (size_t)snprintf(a->ckpt, sizeof a->ckpt, "%s.ckpt", a->out) >= sizeof a->ckpt)
        return cli_usage_error(CMD, "a path is too long");
    if (!a->no_ckpt) r->checkpoint = a->ckpt;
    return CLI_GO;
}

/* Before any work: no output is an input or another output, and each can be written; om and
   oq (--q8) are the outputs, written all or nothing (the checkpoint is not one of them: it
   stays for --resume whatever happens). */
static int train_check_paths(const meld_recipe *r, train_args *a, cli_out *om, cli_out *oq) {
    const char *in_opts[5] = {"--meld", "--meld", "--bpe", "--bpe", "--resume"};
    const char *in_paths[5];
    int rc;
    in_paths[0] = a->train_csv; in_paths[1] = a->dev_csv; in_paths[2] = a->vocab; in_paths[3] = a->merges; in_paths[4] = r->resume;
    if ((rc = cli_refuse_same(CMD, "-o", a->out, 5, in_opts, in_paths)) ||
        (a->q8 && (rc = cli_refuse_same(CMD, "--q8", a->q8, 5, in_opts, in_paths))) ||
        (r->checkpoint && (rc = cli_refuse_same(CMD, "the checkpoint", r->checkpoint, 4, in_opts, in_paths))))
        return rc;   /* the checkpoint may be --resume: it is read whole before it is rewritten */
    if (a->q8 && (!strcmp(a->q8, a->out) || cli_same_file(a->q8, a->out)))
        return cli_usage_error(CMD, "--q8 %s is the same file as -o %s", a->q8, a->out);
    if (a->q8 && r->checkpoint && (!strcmp(a->q8, r->checkpoint) || cli_same_file(a->q8, r->checkpoint)))
        return cli_usage_error(CMD, "--q8 %s is the same file as the checkpoint", a->q8);
    if (r->resume && strcmp(r->resume, "-") && access(r->resume, R_OK) != 0)
        return cli_fail(CMD, "cannot open --resume %s: %s", r->resume, strerror(errno));
    if ((rc = cli_out_weights(om, CMD, "-o", a->out)) || (a->q8 && (rc = cli_out_weights(oq, CMD, "--q8", a->q8))) ||
        (r->checkpoint && (rc = cli_check_weights_output(CMD, "the checkpoint", r->checkpoint))))
        return rc;
    return 0;
}

int train_load_bpe(train_bpe *b, const char *vocab_path, const char *merges_path) {
    char jerr[8192];
    mmspcl_error err;
    size_t mlen = 0, i, start;
    int64_t id;
    memset(b, 0, sizeof *b);
    if (!(b->root = json_parse_file(vocab_path, jerr, sizeof jerr))) {
        if (access(vocab_path, R_OK) != 0) return cli_fail(CMD, "cannot open %s: %s", vocab_path, strerror(errno));
        return cli_fail(CMD, "%s", jerr);
    }
    if (b->root->type != JSON_OBJECT) return cli_fail(CMD, "%s: not a JSON object", vocab_path);
    for (i = 0; i < b->root->count; i++) {
        if (!json_int(&b->root->items[i], &id) || id < 0 || id >= (int64_t)1 << 30) return cli_fail(CMD, "%s: bad id", vocab_path);
        if (id + 1 > b->n_vocab) b->n_vocab = id + 1;
    }
    if (!(b->vocab = (const char **)calloc((size_t)b->n_vocab + 1, sizeof *b->vocab))) return cli_fail(CMD, "out of memory");
    for (i = 0; i < b->root->count; i++) { json_int(&b->root->items[i], &id); b->vocab[id] = b->root->items[i].key; }
    for (id = 0; id < b->n_vocab; id++) if (!b->vocab[id]) b->vocab[id] = "";
    if (mmspcl_read_file(merges_path, (size_t)1 << 30, &b->mtext, &mlen, &err)) return cli_fail_io(CMD, merges_path, &err);
    for (i = 0; i < mlen; i++) b->n_merges += b->mtext[i] == '\n';
    if (!(b->merges = (const char **)calloc((size_t)b->n_merges + 1, sizeof *b->merges))) return cli_fail(CMD, "out of memory");
    b->n_merges = 0;
    for (i = start = 0; i <= mlen; i++)
        if (i == mlen || b->mtext[i] == '\n') {
            size_t e = i;
            if (e > start && b->mtext[e - 1] == '\r') e--;
            if (e > start) { b->mtext[e] = 0; b->merges[b->n_merges++] = (const char *)b->mtext + start; }
            start = i + 1;
        }
    return 0;
}

void train_bpe_free(train_bpe *b) {
    free(b->vocab);
    free(b->merges);
    mmspcl_free(b->mtext);
    if (b->root) json_free(b->root);
}

/* ==== mmspcl train --init: SPCL fine-tuning of a converted RoBERTa ============================== */
typedef struct ft_args {
    const char *meld_dir, *out, *q8, *oof, *prune_mods, *prune_pool;
    int limit, no_ckpt, max_steps, folds, fold;
    char train_csv[4096], dev_csv[4096], ckpt[4200], oof_buf[4200];
} ft_args;

/* ---- --folds K --fold F: out-of-fold features ---- */
/* dst: the dialogues d of src with (d % K == F) == in_fold, rows copied (strings shared);
   rows[i] the source row of dst's row i (may be NULL). Free dst->rows, dst->dialogue_start. */
static int ft_fold_subset(const meld_csv *src, int K, int F, int in_fold, meld_csv *dst, int *rows) {
    int d, i, n = 0, nd = 0;
    memset(dst, 0, sizeof *dst);
    dst->rows = (meld_row *)malloc(sizeof(meld_row) * (size_t)(src->n_rows + 1));
    dst->dialogue_start = (int *)malloc(sizeof(int) * (size_t)(src->n_dialogues + 1));
    if (!dst->rows || !dst->dialogue_start) return -1;
    for (d = 0; d < src->n_dialogues; d++) {
        if ((d % K == F) != in_fold) continue;
        dst->dialogue_start[nd++] = n;
        for (i = src->dialogue_start[d]; i < src->dialogue_start[d + 1]; i++) {
            if (rows) rows[n] = i;
            dst->rows[n++] = src->rows[i];
        }
    }
    dst->dialogue_start[nd] = n;
    dst->n_rows = n;
    dst->n_dialogues = nd;
    return 0;
}

/* OOF file: the classifier `model` (fine-tuned without fold F) on fold F's dialogues: the score
   view (mmspcl_classifier_scores) and t of each of its rows, with the rows' indices in train */
static int ft_write_oof(const char *model, const meld_csv *fold, const int *rows, int K, int F, int n_train, const char *path) {
    mmspcl_classifier m;
    mmspcl_error err;
    mmspcl_writer *wr = NULL;
    mmspcl_turn *turns = (mmspcl_turn *)malloc(sizeof(mmspcl_turn) * (size_t)(fold->n_rows + 1));
    float *t = NULL, *sc = NULL;
    int64_t sh[2];
    int d, i, rc = 1, H;
    if (!turns) return cli_fail(CMD, "out of memory");
    if (mmspcl_classifier_load(&m, model, &err)) { free(turns); return cli_fail(CMD, "%s", err.msg); }
    H = m.hidden;
    t = (float *)malloc(sizeof(float) * (size_t)(fold->n_rows + 1) * H);
    sc = (float *)malloc(sizeof(float) * (size_t)(fold->n_rows + 1) * MMSPCL_SCORES_DIM);
    if (!t || !sc || !(wr = mmspcl_writer_create())) { cli_fail(CMD, "out of memory"); goto done; }
    for (i = 0; i < fold->n_rows; i++) { turns[i].speaker = fold->rows[i].speaker; turns[i].text = fold->rows[i].utterance; }
    for (d = 0; d < fold->n_dialogues; d++) {
        const int a = fold->dialogue_start[d], n = fold->dialogue_start[d + 1] - a;
        if (mmspcl_classifier_features(&m, turns + a, n, t + (size_t)a * H, NULL, NULL, &err)) { cli_fail(CMD, "%s", err.msg); goto done; }
    }
    if (mmspcl_classifier_scores(&m, t, fold->n_rows, sc, &err)) { cli_fail(CMD, "%s", err.msg); goto done; }
    if (mmspcl_writer_set_str(wr, "general.name", "mmspcl-oof") || mmspcl_writer_set_int(wr, "oof.folds", K) ||
        mmspcl_writer_set_int(wr, "oof.fold", F) || mmspcl_writer_set_int(wr, "oof.train_rows", n_train) ||
        mmspcl_writer_set_int(wr, "oof.hidden", H)) { cli_fail(CMD, "out of memory"); goto done; }
    sh[0] = fold->n_rows; sh[1] = MMSPCL_SCORES_DIM;
    if (mmspcl_writer_add_tensor(wr, "oof.rows", MMSPCL_I32, 1, sh, rows, sizeof(int32_t) * (size_t)fold->n_rows, &err) ||
        mmspcl_writer_add_tensor(wr, "oof.scores", MMSPCL_F32, 2, sh, sc, sizeof(float) * (size_t)fold->n_rows * MMSPCL_SCORES_DIM, &err))
        { cli_fail(CMD, "%s", err.msg); goto done; }
    sh[1] = H;
    if (mmspcl_writer_add_tensor(wr, "oof.t", MMSPCL_F32, 2, sh, t, sizeof(float) * (size_t)fold->n_rows * H, &err) ||
        mmspcl_writer_save(wr, path, NULL, NULL, &err))
        { cli_fail(CMD, "%s", err.msg); goto done; }
    rc = 0;
done:
    if (wr) mmspcl_writer_free(wr);
    free(turns); free(t); free(sc);
    mmspcl_classifier_free(&m);
    return rc;
}

static int ft_parse(int argc, char **argv, spcl_ft_recipe *r, ft_args *a, train_ui *ui) {
    int np, rc;
    const cli_opt opts[] = {
        CLI_OPT_REQ("--init", &r->init, "MODEL", "the weight file to fine-tune: a RoBERTa encoder with its tokenizer (mmspcl-convert)"),
        CLI_OPT_REQ("--meld", &a->meld_dir, "DIR", "folder of train_sent_emo.csv and dev_sent_emo.csv"),
        CLI_OPT_REQ("-o, --output", &a->out, "OUT", "the classifier file to write (f32); the checkpoint is OUT.ckpt"),
        {"--seed", CLI_U64, &r->seed, 0, 18446744073709551615.0, "N", "random seed (0 to 2^64-1)", NULL, 0, NULL},
        CLI_OPT_STR("--resume", &r->resume, "CKPT", "continue from a checkpoint (OUT.ckpt of an interrupted run)", NULL),
        CLI_OPT_STR("--q8", &a->q8, "Q8OUT", "also write a q8_0 copy of the classifier", NULL),
        {"--limit", CLI_INT, &a->limit, 1, 2147483647.0, "DIALOGUES", "train on the first DIALOGUES dialogues (dev: a ninth)", "all", 0, NULL},
        {"--max-steps", CLI_INT, &a->max_steps, 0, 2147483647.0, "N", "stop after N optimiser steps (0: no limit)", NULL, 0, NULL},
        CLI_OPT_INT("--freeze", &r->freeze, 0, 1024, "N", "keep the embeddings and the bottom N layers fixed"),
        CLI_OPT_FLAG("--no-checkpoint", &a->no_ckpt, "no OUT.ckpt after each epoch"),
        CLI_OPT_FLAG("--quiet", &ui->quiet, "no progress bar (steps and epoch summaries still printed)"),
        {"--folds", CLI_INT, &a->folds, 2, 100, "K", "train on the dialogues d with d % K != --fold only, then write OUT.oof", "none", 0, NULL},
        {"--fold", CLI_INT, &a->fold, 0, 99, "F", "the held-out fold (0..K-1): its rows' views go to --oof", "0", 0, NULL},
        CLI_OPT_STR("--oof", &a->oof, "FILE", "the out-of-fold views (mmspcl heads reads them)", "OUT.oof"),
        CLI_OPT_INT("--max-len", &r->max_len, 16, 4096, "N", "tokens of an SPCL prompt (must fit the model's positions)"),
        CLI_OPT_INT("--epochs", &r->epochs, 1, 1000, "N", "epochs (the curriculum ramps over them)"),
        CLI_OPT_INT("--batch", &r->batch, 2, 4096, "N", "prompts per optimiser step (the contrastive batch)"),
        CLI_OPT_INT("--micro-batch", &r->micro_batch, 0, 4096, "N", "prompts per forward pass, for memory (0: the whole batch)"),
        CLI_OPT_REAL("--lr", &r->lr, 0, 1, "X", "encoder peak learning rate"),
        CLI_OPT_REAL("--head-lr", &r->head_lr, 0, 1, "X", "linear heads' peak learning rate"),
        CLI_OPT_REAL("--weight-decay", &r->weight_decay, 0, 1, "X", "AdamW weight decay (not on biases and LayerNorm)"),
        CLI_OPT_INT("--warmup", &r->warmup, 0, 1000000, "N", "warm-up steps of the first epoch"),
        CLI_OPT_REAL("--clip", &r->clip, 0, 1e9, "X", "gradient clipping norm (0: none)"),
        CLI_OPT_INT("--patience", &r->patience, 0, 1000, "N", "stop after N epochs without a better dev F1 (0: never)"),
        CLI_OPT_REAL("--temperature", &r->temperature, 1e-3, 100, "X", "SPCL temperature"),
        CLI_OPT_INT("--pool", &r->pool_size, 1, 1 << 20, "N", "SPCL queue length per class"),
        CLI_OPT_INT("--k", &r->K, 1, 1 << 20, "N", "queue entries averaged into a prototype"),
        CLI_OPT_FLAG("--push-first", &r->push_first, "push the batch into the queues before sampling (the Oct-2022 order)"),
        CLI_OPT_INT("--curriculum", &r->curriculum, 0, 1, "0|1", "curriculum sampling by difficulty"),
        CLI_OPT_INT("--augment", &r->augment, 0, 1, "0|1", "extra prompts asking about an earlier turn (SPCL's training data)"),
        CLI_OPT_REAL("--dropout", &r->dropout, 0, 0.95, "X", "hidden and attention dropout while training"),
        CLI_OPT_INT("--sentiment", &r->sentiment, 0, 1, "0|1", "train a sentiment head too"),
        CLI_OPT_STR("--fusion", &r->fusion, "KIND", "joint training: linear, mult, bottleneck or prune (pruning + linear) over t, a, v", NULL),
        CLI_OPT_STR("--features", &r->features, "DIR", "with --fusion: mmspcl extract folder with a.f32 / v.f32 of the train and dev rows", NULL),
        CLI_OPT_INT("--fusion-dim", &r->fusion_dim, 0, 1 << 16, "N", "width of the fused z (0: the encoder's hidden size)"),
        CLI_OPT_INT("--prune-k", &r->prune_k, 1, 1 << 16, "K", "--fusion prune: head size (divides t's width, or --prune-proj)"),
        CLI_OPT_STR("--prune-mods", &a->prune_mods, "MODS", "--fusion prune: the pruning modalities (a, v or av)", "those present"),
        CLI_OPT_INT("--prune-proj", &r->prune_proj, 0, 1 << 16, "N", "--fusion prune: common projection width (0: none)"),
        CLI_OPT_STR("--prune-pool", &a->prune_pool, "separate|joint", "--fusion prune, arg-max: each pruning modality, or one pool", "separate"),
        CLI_OPT_REAL("--prune-threshold", &r->prune_tau, -1, 1, "T", "--fusion prune: the threshold rule with this cosine (default arg-max)"),
        CLI_OPT_END};
    const cli_spec spec = {CMD, "--init MODEL --meld DIR -o OUT [options]",
                           "SPCL fine-tuning of a converted RoBERTa checkpoint, as caskcsg/SPCL trains sup-simcse-roberta-large\n"
                           "(tools/train/spcl_finetune.h; each default's source: docs/TRAINING.md). Never reads the test split.",
                           opts, NULL, 0,
                           "Every output (OUT, --q8, OUT.ckpt) is checked before training starts; none may be an input. The model,\n"
                           "its tokenizer (<mask>) and --max-len are checked before the first training step."};
    if ((rc = cli_parse(&spec, argc, argv, &np)) != CLI_GO) return rc;
    r->max_steps = a->max_steps;
    if (a->prune_mods) {
        if (!a->prune_mods[0] || strspn(a->prune_mods, "av") != strlen(a->prune_mods))
            return cli_usage_error(CMD, "--prune-mods '%s': give a, v or av", a->prune_mods);
        r->prune_mods = (strchr(a->prune_mods, 'a') ? MMSPCL_MOD_A : 0u) | (strchr(a->prune_mods, 'v') ? MMSPCL_MOD_V : 0u);
    }
    if (a->prune_pool && strcmp(a->prune_pool, "separate") && strcmp(a->prune_pool, "joint"))
        return cli_usage_error(CMD, "--prune-pool '%s': give separate or joint", a->prune_pool);
    r->prune_joint = a->prune_pool && !strcmp(a->prune_pool, "joint");
    if (r->fusion && strcmp(r->fusion, "prune") && (a->prune_mods || r->prune_proj || a->prune_pool || r->prune_tau > -1.5))
        return cli_usage_error(CMD, "--prune-mods, --prune-proj, --prune-pool and --prune-threshold are options of --fusion prune, not of --fusion %s",
                               r->fusion);
    if (r->fusion && a->folds) return cli_usage_error(CMD, "--folds writes text score views: not with --fusion");
    if (!r->fusion && r->features) return cli_usage_error(CMD, "--features %s needs --fusion KIND", r->features);
    if (r->fusion && !r->features) return cli_usage_error(CMD, "--fusion %s needs --features DIR (mmspcl extract's a.f32 / v.f32)", r->fusion);
    if (a->folds && a->fold >= a->folds) return cli_usage_error(CMD, "--fold %d: give 0..%d for --folds %d", a->fold, a->folds - 1, a->folds);
    if (!a->folds && a->oof) return cli_usage_error(CMD, "--oof needs --folds K --fold F");
    if (a->folds && !a->oof) {
        if ((size_t)snprintf(a->oof_buf, sizeof a->oof_buf, "%s.oof", a->out) >= sizeof a->oof_buf) return cli_usage_error(CMD, "a path is too long");
        a->oof = a->oof_buf;
    }
    if ((size_t)snprintf(a->train_csv, sizeof a->train_csv, "%s/train_sent_emo.csv", a->meld_dir) >= sizeof a->train_csv ||
        (size_t)snprintf(a->dev_csv, sizeof a->dev_csv, "%s/dev_sent_emo.csv", a->meld_dir) >= sizeof a->dev_csv ||
        (size_t)snprintf(a->ckpt, sizeof a->ckpt, "%s.ckpt", a->out) >= sizeof a->ckpt)
        return cli_usage_error(CMD, "a path is too long");
    if (!a->no_ckpt) r->checkpoint = a->ckpt;
    return CLI_GO;
}

/* as train_check_paths; the outputs: om (-o), oo (--oof), oq (--q8) */
static int ft_check_paths(const spcl_ft_recipe *r, const ft_args *a, cli_out *om, cli_out *oo, cli_out *oq) {
    const char *in_opts[4] = {"--init", "--meld", "--meld", "--resume"};
    const char *in_paths[4];
    int rc;
    in_paths[0] = r->init; in_paths[1] = a->train_csv; in_paths[2] = a->dev_csv; in_paths[3] = r->resume;
    if ((rc = cli_refuse_same(CMD, "-o", a->out, 4, in_opts, in_paths)) ||
        (a->q8 && (rc = cli_refuse_same(CMD, "--q8", a->q8, 4, in_opts, in_paths))) ||
        (r->checkpoint && (rc = cli_refuse_same(CMD, "the checkpoint", r->checkpoint, 3, in_opts, in_paths))))
        return rc;   /* the checkpoint may be --resume: it is read whole before it is rewritten */
    if (a->q8 && (!strcmp(a->q8, a->out) || cli_same_file(a->q8, a->out)))
        return cli_usage_error(CMD, "--q8 %s is the same file as -o %s", a->q8, a->out);
    if (a->oof && ((rc = cli_refuse_same(CMD, "--oof", a->oof, 4, in_opts, in_paths)) ||
                   (!strcmp(a->oof, a->out) && (rc = cli_usage_error(CMD, "--oof %s is the same file as -o", a->oof)))))
        return rc;
    if (a->oof && (rc = cli_out_weights(oo, CMD, "--oof", a->oof))) return rc;
    if (access(r->init, R_OK) != 0) return cli_fail(CMD, "cannot open --init %s: %s", r->init, strerror(errno));
    if (r->resume && access(r->resume, R_OK) != 0) return cli_fail(CMD, "cannot open --resume %s: %s", r->resume, strerror(errno));
    if ((rc = cli_out_weights(om, CMD, "-o", a->out)) || (a->q8 && (rc = cli_out_weights(oq, CMD, "--q8", a->q8))) ||
        (r->checkpoint && (rc = cli_check_weights_output(CMD, "the checkpoint", r->checkpoint))))
        return rc;
    return 0;
}

static int train_finetune(int argc, char **argv) {
    spcl_ft_recipe r;
    ft_args a;
    meld_csv train, dev, fit, held;
    mmspcl_error err;
    train_ui ui;
    cli_out om, oo, oq, *outs[3];
    int rc, have_train = 0, have_dev = 0, *rows = NULL;
    memset(&om, 0, sizeof om); memset(&oo, 0, sizeof oo); memset(&oq, 0, sizeof oq);
    spcl_ft_defaults(&r);
    memset(&fit, 0, sizeof fit);
    memset(&held, 0, sizeof held);
    memset(&ui, 0, sizeof ui);
    memset(&a, 0, sizeof a);
    if ((rc = ft_parse(argc, argv, &r, &a, &ui)) != CLI_GO) return rc;
    outs[0] = &om; outs[1] = a.oof ? &oo : NULL; outs[2] = a.q8 ? &oq : NULL;
    if ((rc = ft_check_paths(&r, &a, &om, &oo, &oq))) { cli_outs_discard(outs, 3); return rc; }
    ui.tty = isatty(2);
    ui.t0 = ui.last_print = now_s();
    rc = 1;
    if (train_load_splits(a.train_csv, a.dev_csv, a.limit, &train, &dev, &have_train, &have_dev)) goto done;
    if (a.folds) {
        if (!(rows = (int *)malloc(sizeof(int) * (size_t)(train.n_rows + 1))) || ft_fold_subset(&train, a.folds, a.fold, 0, &fit, NULL) ||
            ft_fold_subset(&train, a.folds, a.fold, 1, &held, rows)) { cli_fail(CMD, "out of memory"); goto done; }
        if (fit.n_rows < 1 || held.n_rows < 1) { cli_fail(CMD, "--folds %d --fold %d: %d dialogues leave fold %d empty or nothing to train on",
                                                           a.folds, a.fold, train.n_dialogues, a.fold); goto done; }
    }
    fprintf(stderr, "[0m00s] train --init %s: %d utterances in %d dialogues%s, dev %d in %d; max_len %d, batch %d, %d epochs, seed %llu\n",
            r.init, a.folds ? fit.n_rows : train.n_rows, a.folds ? fit.n_dialogues : train.n_dialogues,
            a.folds ? " (the other folds)" : "", dev.n_rows, dev.n_dialogues, r.max_len, r.batch, r.epochs, (unsigned long long)r.seed);
    if (spcl_finetune(&r, a.folds ? &fit : &train, &dev, om.tmp, train_progress, &ui, &err)) {
        cli_fail(CMD, "%s", err.msg);
        goto done;
    }
    if (a.folds && ft_write_oof(om.tmp, &held, rows, a.folds, a.fold, train.n_rows, oo.tmp)) goto done;
    if (a.q8 && meld_quantize_file(om.tmp, oq.tmp, MMSPCL_Q8_0, &err)) { cli_fail(CMD, "%s", err.msg); goto done; }
    if (cli_outs_commit(outs, 3, CMD)) goto done;   /* -o, --oof and --q8: all or none */
    fprintf(stderr, "wrote %s\n", a.out);
    if (a.folds) fprintf(stderr, "wrote %s: out-of-fold views of the %d rows of fold %d of %d\n", a.oof, held.n_rows, a.fold, a.folds);
    if (a.q8) fprintf(stderr, "wrote %s (q8_0)\n", a.q8);
    rc = 0;
done:
    cli_outs_discard(outs, 3);
    free(fit.rows); free(fit.dialogue_start); free(held.rows); free(held.dialogue_start);
    free(rows);
    if (have_train) meld_csv_free(&train);
    if (have_dev) meld_csv_free(&dev);
    return rc;
}

/* ==== mmspcl train --media: audio / video heads for a classifier ================================ */
static void media_progress(void *user, const char *stage, int done, int total, const char *msg) {
    (void)user; (void)done; (void)total;
    if (msg) fprintf(stderr, "%s: %s\n", stage, msg);
}

static int train_media(int argc, char **argv) {
    const char *feats = NULL, *base = NULL, *out = NULL, *combos = NULL, *depths = NULL;
    meld_media_recipe r;
    mmspcl_error err;
    int np, rc;
    meld_media_defaults(&r);
    {
        const cli_opt opts[] = {
            CLI_OPT_REQ("--media", &feats, "FEATS", "a folder of mmspcl extract -m MODEL (t, a and maybe v; train and dev rows)"),
            CLI_OPT_REQ("-m, --model", &base, "MODEL", "the classifier file the heads join (the -m of extract)"),
            CLI_OPT_REQ("-o, --output", &out, "OUT", "the classifier file to write: MODEL with meld.media.* heads"),
            CLI_OPT_STR("--combos", &combos, "LIST", "combinations, e.g. t,ta,tv,tav", "all of the folder's modalities"),
            CLI_OPT_STR("--depths", &depths, "LIST", "Linear layers per combination: paper (tv=2,tav=3, the others 1), tv=2,tav=3, 1, 2 or 3", "paper"),
            CLI_OPT_INT("--hidden", &r.hidden, 1, 1 << 16, "N", "hidden width of the combinations with 2 or 3 layers"),
            CLI_OPT_INT("--epochs", &r.epochs, 1, 100000, "N", "epochs at most"),
            CLI_OPT_INT("--patience", &r.patience, 0, 100000, "N", "stop after N epochs without a better dev F1 (0: never)"),
            CLI_OPT_REAL("--lr", &r.lr, 0, 1, "X", "AdamW learning rate"),
            CLI_OPT_REAL("--dropout", &r.dropout, 0, 0.95, "X", "dropout of the MLPs while training"),
            {"--seed", CLI_U64, &r.seed, 0, 18446744073709551615.0, "N", "random seed (0 to 2^64-1)", NULL, 0, NULL},
            CLI_OPT_END};
        const cli_spec spec = {CMD, "--media FEATS -m MODEL -o OUT [options]",
                               "Audio and video heads for a classifier (mmspcl.h 13.6): an MSVE head per task over MODEL's t view and\n"
                               "the eGeMAPS / CLIP vectors of mmspcl extract, trained on the folder's train rows, stopped on its dev rows.",
                               opts, NULL, 0,
                               "FEATS: one extract folder holding the train and dev rows (the two runs' files concatenated, docs/MELD.md).\n"
                               "mmspcl classify -m OUT --media DIR then uses them (docs/AUDIO.md, section 9)."};
        if ((rc = cli_parse(&spec, argc, argv, &np)) != CLI_GO) return rc;
    }
    {
        const char *in_opts[1] = {"-m"}, *in_paths[1];
        in_paths[0] = base;
        if ((rc = cli_refuse_same(CMD, "-o", out, 1, in_opts, in_paths))) return rc;
    }
    if (combos && mmspcl_combos_parse(combos, &r.combos, &err)) return cli_usage_error(CMD, "--combos: %s", err.msg);
    if (depths && mmspcl_depths_parse(depths, r.depth, &err)) return cli_usage_error(CMD, "--depths: %s", err.msg);
    if (cli_check_weights_output(CMD, "-o", out)) return 1;
    if (meld_train_media(&r, base, feats, out, media_progress, NULL, &err)) return cli_fail(CMD, "%s", err.msg);
    fprintf(stderr, "wrote %s\n", out);
    return 0;
}

int mmspcl_cmd_train(int argc, char **argv) {
    meld_recipe r;
    train_args a;
    meld_csv train, dev;
    mmspcl_error err;
    train_ui ui;
    train_bpe bpe;
    cli_out om, oq, *outs[2];
    int rc, have_train = 0, have_dev = 0;
    for (rc = 1; rc < argc && strcmp(argv[rc], "--"); rc++)   /* --init: the fine-tuning recipe */
        if (!strcmp(argv[rc], "--init") || !strncmp(argv[rc], "--init=", 7)) return train_finetune(argc, argv);
    for (rc = 1; rc < argc && strcmp(argv[rc], "--"); rc++)   /* --media: heads for the clips' audio and video */
        if (!strcmp(argv[rc], "--media") || !strncmp(argv[rc], "--media=", 8)) return train_media(argc, argv);
    meld_recipe_defaults(&r);
    memset(&ui, 0, sizeof ui);
    memset(&a, 0, sizeof a);
    memset(&bpe, 0, sizeof bpe);
    memset(&om, 0, sizeof om); memset(&oq, 0, sizeof oq);
    ui.r = &r;
    if ((rc = train_parse(argc, argv, &r, &a, &ui)) != CLI_GO) return rc;
    outs[0] = &om; outs[1] = a.q8 ? &oq : NULL;
    if ((rc = train_check_paths(&r, &a, &om, &oq))) { cli_outs_discard(outs, 2); return rc; }
    ui.tty = isatty(2);
    ui.t0 = ui.last_print = now_s();
    rc = 1;
    if (train_load_splits(a.train_csv, a.dev_csv, a.limit, &train, &dev, &have_train, &have_dev)) goto done;
    if (train_load_bpe(&bpe, a.vocab, a.merges)) goto done;
    fprintf(stderr, "[0m00s] train: %d utterances in %d dialogues, dev %d in %d; encoder %d x %d (heads %d, ffn %d), max_len %d, seed %llu\n",
            train.n_rows, train.n_dialogues, dev.n_rows, dev.n_dialogues, r.layers, r.hidden, r.heads, r.ffn, r.max_len,
            (unsigned long long)r.seed);
    if (meld_train(&r, &train, &dev, bpe.vocab, bpe.n_vocab, bpe.merges, bpe.n_merges, om.tmp, train_progress, &ui, &err)) {
        cli_fail(CMD, "%s", err.msg);
        goto done;
    }
    if (a.q8 && meld_quantize_file(om.tmp, oq.tmp, MMSPCL_Q8_0, &err)) { cli_fail(CMD, "%s", err.msg); goto done; }
    if (cli_outs_commit(outs, 2, CMD)) goto done;   /* -o and --q8: both or neither */
    {
        char el[32];
        fmt_time(el, sizeof el, now_s() - ui.t0);
        fprintf(stderr, "[%s] wrote %s\n", el, a.out);
    }
    if (a.q8) fprintf(stderr, "wrote %s (q8_0)\n", a.q8);
    rc = 0;
done:
    cli_outs_discard(outs, 2);
    if (have_train) meld_csv_free(&train);
    if (have_dev) meld_csv_free(&dev);
    train_bpe_free(&bpe);
    return rc;
}
