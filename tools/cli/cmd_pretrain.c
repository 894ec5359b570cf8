#define _POSIX_C_SOURCE 200809L /* clock_gettime, opendir */
/* mmspcl pretrain --corpus DIR --meld DIR -o OUT.mmw [options]

   MLM pretraining of a RoBERTa-layout encoder (tools/train/pretrain.h) on the corpus folder
   (DIR/friends-transcripts.txt as dialogue lines, DIR/gutenberg/NAME.txt as prose; what exists of
   them) and MELD's training transcripts (DIR/train_sent_emo.csv only: never dev or test). OUT
   is a weight file with the encoder and its cut tokenizer for `mmspcl train --init`. A
   checkpoint OUT.ckpt is written every --ckpt-minutes and at every epoch end; --max-minutes /
   --max-steps stop the run early (OUT then holds the weights so far) and `--resume OUT.ckpt`
   with the same options continues it with the same schedule. */
#include "mmspcl.h"
#include "mmspcl_train.h"
#include "tools/train/pretrain.h"
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"
#include "train_bpe.h"

#define CMD "pretrain"
#define PT_MAX_TEXTS 256

static double pt_cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct pt_ui { int tty, quiet; double t0, last; } pt_ui;

static void pt_progress(void *user, const char *stage, int done, int total, const char *msg) {
    pt_ui *ui = (pt_ui *)user;
    const double t = pt_cli_now(), el = t - ui->t0;
    if (msg) {
        if (ui->tty) fprintf(stderr, "\r\033[K");
        fprintf(stderr, "[%dm%02ds] %s\n", (int)(el / 60), (int)el % 60, msg);
        return;
    }
    if (ui->quiet || total <= 0 || (t - ui->last < (ui->tty ? 0.5 : 60.0) && done < total)) return;
    ui->last = t;
    {
        const double eta = done > 0 ? el / done * (total - done) : -1;
        if (ui->tty) fprintf(stderr, "\r\033[K%s %d/%d  elapsed %dm%02ds  eta %dm", stage, done, total, (int)(el / 60), (int)el % 60,
                             eta < 0 ? 0 : (int)(eta / 60));
        else fprintf(stderr, "[%dm%02ds] %s %d/%d (eta %dm)\n", (int)(el / 60), (int)el % 60, stage, done, total, eta < 0 ? 0 : (int)(eta / 60));
        fflush(stderr);
    }
}

static int pt_name_cmp(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* one file as a text of the given kind, cut to max_bytes (0: whole) at a line end */
static int pt_add_file(pretrain_text *t, int *n, unsigned char **hold, const char *path, int kind, long long max_bytes) {
    mmspcl_error err;
    unsigned char *b = NULL;
    size_t len = 0;
    if (*n >= PT_MAX_TEXTS) return cli_fail(CMD, "more than %d corpus files", PT_MAX_TEXTS);
    if (mmspcl_read_file(path, (size_t)1 << 32, &b, &len, &err)) return cli_fail_io(CMD, path, &err);
    if (max_bytes > 0 && len > (size_t)max_bytes) {
        len = (size_t)max_bytes;
        while (len > 0 && b[len - 1] != '\n') len--;
    }
    hold[*n] = b;
    t[*n].name = path; t[*n].bytes = (const char *)b; t[*n].size = len; t[*n].kind = kind;
    (*n)++;
    return 0;
}

/* DIR/friends-transcripts.txt (dialogue) and DIR/gutenberg/NAME.txt (prose, sorted by name) */
static int pt_load_corpus(const char *dir, long long max_bytes, pretrain_text *t, int *n, unsigned char **hold, char **names) {
    char path[4200];
    DIR *d;
    struct dirent *e;
    int nn = 0, i, found = 0;
    snprintf(path, sizeof path, "%s/friends-transcripts.txt", dir);
    if (access(path, R_OK) == 0) {
        if (!(names[nn] = strdup(path)) || pt_add_file(t, n, hold, names[nn], 0, max_bytes)) return 1;
        nn++; found++;
    }
    snprintf(path, sizeof path, "%s/gutenberg", dir);
    if ((d = opendir(path))) {
        char *list[PT_MAX_TEXTS];
        int nl = 0;
        while ((e = readdir(d)) && nl < PT_MAX_TEXTS - 2) {
            const size_t L = strlen(e->d_name);
            if (L > 4 && !strcmp(e->d_name + L - 4, ".txt") && strncmp(e->d_name, "LICENSE", 7)) {
                snprintf(path, sizeof path, "%s/gutenberg/%s", dir, e->d_name);
                if (!(list[nl++] = strdup(path))) { closedir(d); return cli_fail(CMD, "out of memory"); }
            }
        }
        closedir(d);
        qsort(list, (size_t)nl, sizeof list[0], pt_name_cmp);
        for (i = 0; i < nl; i++) {
            names[nn++] = list[i];
            if (pt_add_file(t, n, hold, list[i], 1, max_bytes)) { for (i++; i < nl; i++) names[nn++] = list[i]; return 1; }
            found++;
        }
    }
    if (!found) return cli_fail(CMD, "--corpus %s has neither friends-transcripts.txt nor gutenberg/*.txt", dir);
    return 0;
}

typedef struct pt_args {
    const char *corpus, *meld_dir, *out, *bpe_dir, *glove_dir;
    int limit, no_ckpt;
    long long corpus_bytes;
    double corpus_mb;
    char train_csv[4096], vocab[4096], merges[4096], ckpt[4200], gw[4200], gv[4200];
} pt_args;

static int pt_parse(int argc, char **argv, pretrain_recipe *r, pt_args *a, pt_ui *ui) {
    int np, rc, max_steps = 0;
    const cli_opt opts[] = {
        CLI_OPT_REQ("--corpus", &a->corpus, "DIR", "friends-transcripts.txt and gutenberg/*.txt (../shared/data/corpus)"),
        CLI_OPT_REQ("--meld", &a->meld_dir, "DIR", "folder of train_sent_emo.csv (dev and test are never read)"),
        CLI_OPT_REQ("-o, --output", &a->out, "OUT", "the pretrained encoder with its tokenizer; the checkpoint is OUT.ckpt"),
        CLI_OPT_STR("--bpe", &a->bpe_dir, "DIR", "vocab.json and merges.txt of the RoBERTa BPE", "DIR/../weights/roberta-bpe"),
        CLI_OPT_STR("--resume", &r->resume, "CKPT", "continue from a checkpoint (OUT.ckpt; the same options)", NULL),
        CLI_OPT_STR("--glove", &a->glove_dir, "DIR", "initialise word embeddings from DIR/words.txt + DIR/vectors.f32", NULL),
        CLI_OPT_INT("--glove-dim", &r->glove_dim, 1, 512, "N", "GloVe vector width"),
        {"--seed", CLI_U64, &r->seed, 0, 18446744073709551615.0, "N", "random seed (0 to 2^64-1)", NULL, 0, NULL},
        CLI_OPT_INT("--hidden", &r->hidden, 8, 4096, "N", "encoder width (a multiple of --heads)"),
        CLI_OPT_INT("--layers", &r->layers, 1, 48, "N", "encoder layers"),
        CLI_OPT_INT("--heads", &r->heads, 1, 64, "N", "attention heads"),
        CLI_OPT_INT("--ffn", &r->ffn, 1, 65536, "N", "feed-forward width"),
        CLI_OPT_INT("--max-len", &r->max_len, 16, 1024, "N", "tokens of a chunk (the position table; fine-tuning's --max-len at most)"),
        CLI_OPT_INT("--epochs", &r->epochs, 1, 1000, "N", "epochs over the chunks (the cosine schedule spans them)"),
        CLI_OPT_INT("--batch", &r->batch, 1, 1024, "N", "chunks per step"),
        CLI_OPT_REAL("--lr", &r->lr, 1e-8, 1, "X", "peak learning rate"),
        CLI_OPT_REAL("--warmup", &r->warmup_frac, 0, 1, "X", "warm-up, as a fraction of all steps"),
        CLI_OPT_INT("--min-count", &r->min_count, 1, 1 << 30, "N", "vocabulary: tokens seen at least N times (and all of MELD train's)"),
        CLI_OPT_INT("--dialogue-repeat", &r->dialogue_repeat, 0, 100, "N", "each dialogue chunk N times per epoch"),
        CLI_OPT_REAL("--max-minutes", &r->max_minutes, 0, 1e7, "M", "stop after M minutes with a checkpoint (0: no limit)"),
        {"--max-steps", CLI_INT, &max_steps, 0, 2147483647.0, "N", "stop after N steps in all (0: no limit)", NULL, 0, NULL},
        CLI_OPT_REAL("--ckpt-minutes", &r->ckpt_minutes, 0, 1e7, "M", "a checkpoint every M minutes (0: at epoch ends only)"),
        {"--limit", CLI_INT, &a->limit, 1, 2147483647.0, "DIALOGUES", "only the first DIALOGUES MELD training dialogues", "all", 0, NULL},
        CLI_OPT_REAL("--corpus-mb", &a->corpus_mb, 0, 1e6, "MB", "only the first MB megabytes of each corpus file (0: whole)"),
        CLI_OPT_FLAG("--no-checkpoint", &a->no_ckpt, "no OUT.ckpt"),
        CLI_OPT_FLAG("--quiet", &ui->quiet, "no progress bar (messages still printed)"),
        CLI_OPT_END};
    const cli_spec spec = {CMD, "--corpus DIR --meld DIR -o OUT [options]",
                           "Masked-language-model pretraining of a RoBERTa-layout encoder on the corpus and MELD's training\n"
                           "transcripts (tools/train/pretrain.h); OUT is what mmspcl train --init fine-tunes. Never reads MELD dev or test.",
                           opts, NULL, 0,
                           "Time-boxed runs: --max-minutes M writes OUT.ckpt and OUT (the weights so far); run the same command with\n"
                           "--resume OUT.ckpt to continue (the schedule is the one of the whole run)."};
    if ((rc = cli_parse(&spec, argc, argv, &np)) != CLI_GO) return rc;
    r->max_steps = max_steps;
    a->corpus_bytes = (long long)(a->corpus_mb * 1e6);
    if (r->hidden % r->heads) return cli_usage_error(CMD, "--hidden %d is not a multiple of --heads %d", r->hidden, r->heads);
    if ((size_t)snprintf(a->train_csv, sizeof a->train_csv, "%s/train_sent_emo.csv", a->meld_dir) >= sizeof a->train_csv ||
        (size_t)snprintf(a->vocab, sizeof a->vocab, "%s%s/vocab.json", a->bpe_dir ? a->bpe_dir : a->meld_dir,
                         a->bpe_dir ? "" : "/../weights/roberta-bpe") >= sizeof a->vocab ||
        (size_t)snprintf(a->merges, sizeof a->merges, "%s%s/merges.txt", a->bpe_dir ? a->bpe_dir : a->meld_dir,
                         a->bpe_dir ? "" : "/../weights/roberta-bpe") >= sizeof a->merges ||
        (size_t)snprintf(a->ckpt, sizeof a->ckpt, "%s.ckpt", a->out) >= sizeof a->ckpt ||
        (a->glove_dir && ((size_t)snprintf(a->gw, sizeof a->gw, "%s/words.txt", a->glove_dir) >= sizeof a->gw ||
                          (size_t)snprintf(a->gv, sizeof a->gv, "%s/vectors.f32", a->glove_dir) >= sizeof a->gv)))
        return cli_usage_error(CMD, "a path is too long");
    if (!a->no_ckpt) r->checkpoint = a->ckpt;
    if (a->glove_dir) { r->glove_words = a->gw; r->glove_vectors = a->gv; }
    return CLI_GO;
}

static int pt_check_paths(const pretrain_recipe *r, const pt_args *a) {
    const char *in_opts[3] = {"--meld", "--resume", "--bpe"};
    const char *in_paths[3];
    int rc;
    in_paths[0] = a->train_csv; in_paths[1] = r->resume; in_paths[2] = a->vocab;
    if ((rc = cli_refuse_same(CMD, "-o", a->out, 3, in_opts, in_paths))) return rc;
    if (r->checkpoint && (!strcmp(r->checkpoint, a->out) || cli_same_file(r->checkpoint, a->out)))
        return cli_usage_error(CMD, "-o %s is the checkpoint's path", a->out);
    if (r->resume && access(r->resume, R_OK) != 0) return cli_fail(CMD, "cannot open --resume %s: %s", r->resume, strerror(errno));
    if (r->glove_words && (access(r->glove_words, R_OK) != 0 || access(r->glove_vectors, R_OK) != 0))
        return cli_fail(CMD, "cannot open --glove %s/words.txt or vectors.f32: %s", a->glove_dir, strerror(errno));
    if (cli_check_weights_output(CMD, "-o", a->out) || (r->checkpoint && cli_check_weights_output(CMD, "the checkpoint", r->checkpoint)))
        return 1;
    return 0;
}

int mmspcl_cmd_pretrain(int argc, char **argv) {
    pretrain_recipe r;
    pt_args a;
    pt_ui ui;
    train_bpe bpe;
    meld_csv train;
    mmspcl_error err;
    pretrain_text texts[PT_MAX_TEXTS];
    unsigned char *hold[PT_MAX_TEXTS];
    char *names[PT_MAX_TEXTS];
    int rc, n = 0, have_train = 0, finished = 0, i;
    pretrain_defaults(&r);
    memset(&a, 0, sizeof a); memset(&ui, 0, sizeof ui); memset(&bpe, 0, sizeof bpe);
    memset(hold, 0, sizeof hold); memset(names, 0, sizeof names);
    if ((rc = pt_parse(argc, argv, &r, &a, &ui)) != CLI_GO) return rc;
    if ((rc = pt_check_paths(&r, &a))) return rc;
    ui.tty = isatty(2);
    ui.t0 = pt_cli_now();
    rc = 1;
    if (meld_csv_load(a.train_csv, &train, &err)) { cli_fail_io(CMD, a.train_csv, &err); goto done; }
    have_train = 1;
    if (a.limit > 0 && a.limit < train.n_dialogues) { train.n_dialogues = a.limit; train.n_rows = train.dialogue_start[a.limit]; }
    if (pt_load_corpus(a.corpus, a.corpus_bytes, texts, &n, hold, names) || train_load_bpe(&bpe, a.vocab, a.merges)) goto done;
    fprintf(stderr, "[0m00s] pretrain: %d corpus files and %d MELD training dialogues; encoder %d x %d (heads %d, ffn %d), chunks of %d, "
            "%d epochs, seed %llu\n", n, train.n_dialogues, r.layers, r.hidden, r.heads, r.ffn, r.max_len, r.epochs,
            (unsigned long long)r.seed);
    if (pretrain_run(&r, texts, n, &train, bpe.vocab, bpe.n_vocab, bpe.merges, bpe.n_merges, a.out, pt_progress, &ui, &finished, &err)) {
        cli_fail(CMD, "%s", err.msg);
        goto done;
    }
    if (!finished && r.checkpoint)
        fprintf(stderr, "pretrain: stopped early; continue with the same command and --resume %s\n", r.checkpoint);
    rc = 0;
done:
    if (have_train) meld_csv_free(&train);
    for (i = 0; i < PT_MAX_TEXTS; i++) { mmspcl_free(hold[i]); free(names[i]); }
    train_bpe_free(&bpe);
    return rc;
}
