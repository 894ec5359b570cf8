#define _POSIX_C_SOURCE 200809L /* clock_gettime */
/* mmspcl train --meld DIR -o MODEL [--seed N] [--resume CKPT] [--bpe DIR] [--q8 OUT] [recipe options]

   The front end of the MELD recipe (tools/train/meld_recipe.c, stages in meld_recipe.h): cut
   RoBERTa BPE, MLM pretraining on the train transcripts, SPCL fine-tuning with early stopping on
   dev, text views, MSVE heads. Reads DIR/train_sent_emo.csv and DIR/dev_sent_emo.csv (never the
   test split). */
#include "mmspcl.h"
#include "mmspcl_train.h"
#include "tools/train/meld_recipe.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"
#include "../convert/json.h"

#define CMD "train"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct { int tty, quiet; double t0, stage_t0, last_print; char stage[32]; } train_ui;

static void fmt_time(char *b, size_t n, double s) {
    if (s < 0) s = 0;
    if (s >= 3600) snprintf(b, n, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
    else snprintf(b, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
}

static void train_progress(void *user, const char *stage, int done, int total, const char *msg) {
    train_ui *ui = (train_ui *)user;
    const double t = now_s();
    char el[32], eta[32];
    if (strcmp(stage, ui->stage) != 0 || (total > 0 && done <= 1)) {
        snprintf(ui->stage, sizeof ui->stage, "%s", stage);
        ui->stage_t0 = t;
    }
    fmt_time(el, sizeof el, t - ui->t0);
    if (msg) {
        if (ui->tty) fprintf(stderr, "\r\033[K");
        fprintf(stderr, "[%s] %s\n", el, msg);
        return;
    }
    if (ui->quiet || total <= 0) return;
    fmt_time(eta, sizeof eta, done > 0 ? (t - ui->stage_t0) * (total - done) / done : 0);
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

int mmspcl_cmd_train(int argc, char **argv) {
    const char *meld_dir = NULL, *out = NULL, *bpe_dir = NULL, *q8 = NULL, *v;
    char path[1024], path2[1024], ckpt[1100], jerr[2048];
    meld_recipe r;
    meld_csv train, dev;
    mmspcl_error err;
    train_ui ui;
    json_value *root = NULL;
    const char **vocab = NULL, **merges = NULL;
    unsigned char *mtext = NULL;
    size_t mlen = 0, i, start;
    int64_t n_vocab = 0, n_merges = 0, id;
    int rc = 1, limit = 0, have_train = 0, have_dev = 0, no_ckpt = 0;
    int a;
    meld_recipe_defaults(&r);
    memset(&ui, 0, sizeof ui);
    for (a = 1; a < argc; a++) {
#define NUMARG(flag, field, conv) else if (!strcmp(argv[a], flag)) { if (!(v = cli_arg_value(CMD, argc, argv, &a))) return 2; r.field = conv(v); }
        if (!strcmp(argv[a], "--meld")) { if (!(meld_dir = cli_arg_value(CMD, argc, argv, &a))) return 2; }
        else if (!strcmp(argv[a], "-o")) { if (!(out = cli_arg_value(CMD, argc, argv, &a))) return 2; }
        else if (!strcmp(argv[a], "--bpe")) { if (!(bpe_dir = cli_arg_value(CMD, argc, argv, &a))) return 2; }
        else if (!strcmp(argv[a], "--q8")) { if (!(q8 = cli_arg_value(CMD, argc, argv, &a))) return 2; }
        else if (!strcmp(argv[a], "--resume")) { if (!(r.resume = cli_arg_value(CMD, argc, argv, &a))) return 2; }
        else if (!strcmp(argv[a], "--limit")) { if (!(v = cli_arg_value(CMD, argc, argv, &a))) return 2; limit = atoi(v); }
        else if (!strcmp(argv[a], "--no-checkpoint")) no_ckpt = 1;
        else if (!strcmp(argv[a], "--quiet")) ui.quiet = 1;
        else if (!strcmp(argv[a], "--seed")) { if (!(v = cli_arg_value(CMD, argc, argv, &a))) return 2; r.seed = strtoull(v, NULL, 10); }
        NUMARG("--hidden", hidden, atoi)
        NUMARG("--layers", layers, atoi)
        NUMARG("--heads", heads, atoi)
        NUMARG("--ffn", ffn, atoi)
        NUMARG("--max-len", max_len, atoi)
        NUMARG("--mlm-epochs", mlm_epochs, atoi)
        NUMARG("--mlm-lr", mlm_lr, atof)
        NUMARG("--epochs", spcl_epochs, atoi)
        NUMARG("--batch", batch, atoi)
        NUMARG("--patience", patience, atoi)
        NUMARG("--lr", lr, atof)
        NUMARG("--ce-weight", ce_weight, atof)
        NUMARG("--temperature", temperature, atof)
        NUMARG("--curriculum", curriculum, atoi)
        NUMARG("--holdout", holdout, atoi)
        NUMARG("--ngram-bits", ngram_bits, atoi)
        NUMARG("--msve-hidden", msve_hidden, atoi)
        NUMARG("--msve-epochs", msve_epochs, atoi)
        NUMARG("--msve-dropout", msve_dropout, atof)
        else {
            fprintf(stderr,
                    "usage: mmspcl train --meld DIR -o MODEL [--seed N] [--resume CKPT] [--bpe DIR] [--q8 OUT]\n"
                    "       [--hidden N --layers N --heads N --ffn N --max-len N --mlm-epochs N --epochs N --batch N\n"
                    "        --patience N --lr X --mlm-lr X --ce-weight X --temperature X --curriculum 0|1\n"
                    "        --ngram-bits N --msve-hidden N --msve-epochs N --msve-dropout X --holdout 0|1] [--limit DIALOGUES]\n"
                    "       [--no-checkpoint] [--quiet]\n"
                    "  DIR holds train_sent_emo.csv and dev_sent_emo.csv; --bpe DIR (vocab.json, merges.txt)\n"
                    "  defaults to DIR/../weights/roberta-bpe. A checkpoint MODEL.ckpt is written after each epoch.\n");
            return 2;
        }
#undef NUMARG
    }
    if (!meld_dir || !out) return cli_fail(CMD, "needs --meld DIR and -o MODEL (see mmspcl train --help)"), 2;
    ui.tty = isatty(2);
    ui.t0 = ui.last_print = now_s();
    if (!no_ckpt) { snprintf(ckpt, sizeof ckpt, "%s.ckpt", out); r.checkpoint = ckpt; }

    snprintf(path, sizeof path, "%s/train_sent_emo.csv", meld_dir);
    if (meld_csv_load(path, &train, &err)) { cli_fail(CMD, "%s", err.msg); goto done; }
    have_train = 1;
    snprintf(path, sizeof path, "%s/dev_sent_emo.csv", meld_dir);
    if (meld_csv_load(path, &dev, &err)) { cli_fail(CMD, "%s", err.msg); goto done; }
    have_dev = 1;
    meld_limit(&train, limit);
    meld_limit(&dev, limit ? (limit + 8) / 9 : 0);

    if (bpe_dir) snprintf(path, sizeof path, "%s/vocab.json", bpe_dir);
    else snprintf(path, sizeof path, "%s/../weights/roberta-bpe/vocab.json", meld_dir);
    if (bpe_dir) snprintf(path2, sizeof path2, "%s/merges.txt", bpe_dir);
    else snprintf(path2, sizeof path2, "%s/../weights/roberta-bpe/merges.txt", meld_dir);
    if (!(root = json_parse_file(path, jerr, sizeof jerr))) { cli_fail(CMD, "%s", jerr); goto done; }
    if (root->type != JSON_OBJECT) { cli_fail(CMD, "%s: not a JSON object", path); goto done; }
    for (i = 0; i < root->count; i++) {
        if (!json_int(&root->items[i], &id) || id < 0 || id >= (int64_t)1 << 30) { cli_fail(CMD, "%s: bad id", path); goto done; }
        if (id + 1 > n_vocab) n_vocab = id + 1;
    }
    vocab = (const char **)calloc((size_t)n_vocab + 1, sizeof *vocab);
    if (!vocab) { cli_fail(CMD, "out of memory"); goto done; }
    for (i = 0; i < root->count; i++) { json_int(&root->items[i], &id); vocab[id] = root->items[i].key; }
    for (id = 0; id < n_vocab; id++) if (!vocab[id]) vocab[id] = "";
    if (mmspcl_read_file(path2, (size_t)1 << 30, &mtext, &mlen, &err)) { cli_fail(CMD, "%s", err.msg); goto done; }
    for (i = 0; i < mlen; i++) n_merges += mtext[i] == '\n';
    if (!(merges = (const char **)calloc((size_t)n_merges + 1, sizeof *merges))) { cli_fail(CMD, "out of memory"); goto done; }
    n_merges = 0;
    for (i = start = 0; i <= mlen; i++)
        if (i == mlen || mtext[i] == '\n') {
            size_t e = i;
            if (e > start && mtext[e - 1] == '\r') e--;
            if (e > start) { mtext[e] = 0; merges[n_merges++] = (const char *)mtext + start; }
            start = i + 1;
        }
    fprintf(stderr, "[0m00s] train: %d utterances in %d dialogues, dev %d in %d; encoder %d x %d (heads %d, ffn %d), max_len %d, seed %llu\n",
            train.n_rows, train.n_dialogues, dev.n_rows, dev.n_dialogues, r.layers, r.hidden, r.heads, r.ffn, r.max_len,
            (unsigned long long)r.seed);
    if (meld_train(&r, &train, &dev, vocab, n_vocab, merges, n_merges, out, train_progress, &ui, &err)) {
        cli_fail(CMD, "%s", err.msg);
        goto done;
    }
    {
        char el[32];
        fmt_time(el, sizeof el, now_s() - ui.t0);
        fprintf(stderr, "[%s] wrote %s\n", el, out);
    }
    if (q8) {
        if (meld_quantize_file(out, q8, MMSPCL_Q8_0, &err)) { cli_fail(CMD, "%s", err.msg); goto done; }
        fprintf(stderr, "wrote %s (q8_0)\n", q8);
    }
    rc = 0;
done:
    if (have_train) meld_csv_free(&train);
    if (have_dev) meld_csv_free(&dev);
    free(vocab);
    free(merges);
    mmspcl_free(mtext);
    if (root) json_free(root);
    return rc;
}
