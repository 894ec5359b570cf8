/* mmspcl heads -m MODEL --meld DIR -o OUT FOLD.oof... : MSVE heads on out-of-fold views
   (tools/train/meld_heads.h). MODEL: `mmspcl train --init P` on all of train; FOLD.oof: the K
   files of `mmspcl train --init P --folds K --fold F`. Reads DIR/train_sent_emo.csv and
   DIR/dev_sent_emo.csv (never test); OUT is MODEL with the heads, the default ones chosen on dev. */
#include "mmspcl.h"
#include "mmspcl_train.h"
#include "tools/train/meld_heads.h"
#include "tools/train/meld_recipe.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

#define CMD "heads"
#define HEADS_MAX_OOF 64

static void heads_progress(void *user, const char *stage, int done, int total, const char *msg) {
    (void)user; (void)done; (void)total;
    if (msg) fprintf(stderr, "%s: %s\n", stage, msg);
}

int mmspcl_cmd_heads(int argc, char **argv) {
    const char *model = NULL, *meld_dir = NULL, *out = NULL, *q8 = NULL, *pos[HEADS_MAX_OOF + 1];
    char train_csv[4096], dev_csv[4096];
    meld_heads_recipe r;
    meld_csv train, dev;
    mmspcl_error err;
    cli_out om, oq, *outs[2];
    int np = 0, rc, limit = 0, have_train = 0, have_dev = 0, i;
    meld_heads_defaults(&r);
    memset(&om, 0, sizeof om);
    memset(&oq, 0, sizeof oq);
    {
        const cli_opt opts[] = {
            CLI_OPT_REQ("-m, --model", &model, "MODEL", "the classifier of mmspcl train --init on all of train"),
            CLI_OPT_REQ("--meld", &meld_dir, "DIR", "folder of train_sent_emo.csv and dev_sent_emo.csv"),
            CLI_OPT_REQ("-o, --output", &out, "OUT", "MODEL with the MSVE heads and the n-gram view"),
            CLI_OPT_STR("--q8", &q8, "Q8OUT", "also write a q8_0 copy", NULL),
            {"--limit", CLI_INT, &limit, 1, 2147483647.0, "DIALOGUES", "the first DIALOGUES train dialogues (dev: a ninth), as train --limit", "all", 0, NULL},
            CLI_OPT_INT("--hidden", &r.hidden, 1, 4096, "N", "MSVE MLP width"),
            CLI_OPT_INT("--epochs", &r.epochs, 1, 10000, "N", "MSVE epochs at most"),
            CLI_OPT_INT("--patience", &r.patience, 0, 10000, "N", "stop after N epochs without a better dev F1 (0: never)"),
            CLI_OPT_REAL("--lr", &r.lr, 0, 1, "X", "AdamW learning rate"),
            CLI_OPT_REAL("--dropout", &r.dropout, 0, 0.95, "X", "MLP dropout while training"),
            CLI_OPT_INT("--ngram-bits", &r.ngram_bits, 4, 24, "N", "2^N hashed n-gram buckets"),
            {"--seed", CLI_U64, &r.seed, 0, 18446744073709551615.0, "N", "random seed (0 to 2^64-1)", NULL, 0, NULL},
            CLI_OPT_END};
        const cli_spec spec = {CMD, "-m MODEL --meld DIR -o OUT FOLD.oof...",
                               "MSVE heads that learn from every training row honestly: out-of-fold score views of the <mask> state\n"
                               "(FOLD.oof of mmspcl train --init ... --folds K --fold F, all K) and of the n-gram view; the default\n"
                               "heads (MSVE or SPCL prototypes; MSVE or linear) chosen on dev (tools/train/meld_heads.h). Never reads test.",
                               opts, pos, HEADS_MAX_OOF, NULL};
        if ((rc = cli_parse(&spec, argc, argv, &np)) != CLI_GO) return rc;
    }
    if (np < 1) return cli_usage_error(CMD, "give the out-of-fold files of all K folds (FOLD.oof...)");
    if ((size_t)snprintf(train_csv, sizeof train_csv, "%s/train_sent_emo.csv", meld_dir) >= sizeof train_csv ||
        (size_t)snprintf(dev_csv, sizeof dev_csv, "%s/dev_sent_emo.csv", meld_dir) >= sizeof dev_csv)
        return cli_usage_error(CMD, "a path is too long");
    {
        const char *in_opts[HEADS_MAX_OOF + 3], *in_paths[HEADS_MAX_OOF + 3];
        in_opts[0] = "-m"; in_paths[0] = model; in_opts[1] = in_opts[2] = "--meld"; in_paths[1] = train_csv; in_paths[2] = dev_csv;
        for (i = 0; i < np; i++) { in_opts[3 + i] = "FOLD.oof"; in_paths[3 + i] = pos[i]; }
        if ((rc = cli_refuse_same(CMD, "-o", out, np + 3, in_opts, in_paths)) || (q8 && (rc = cli_refuse_same(CMD, "--q8", q8, np + 3, in_opts, in_paths))))
            return rc;
        if (q8 && (!strcmp(q8, out) || cli_same_file(q8, out))) return cli_usage_error(CMD, "--q8 %s is the same file as -o %s", q8, out);
    }
    outs[0] = &om; outs[1] = q8 ? &oq : NULL;
    if ((rc = cli_out_weights(&om, CMD, "-o", out)) || (q8 && (rc = cli_out_weights(&oq, CMD, "--q8", q8)))) { cli_outs_discard(outs, 2); return rc; }
    rc = 1;
    if (meld_csv_load(train_csv, &train, &err)) { cli_fail_io(CMD, train_csv, &err); goto done; }
    have_train = 1;
    if (meld_csv_load(dev_csv, &dev, &err)) { cli_fail_io(CMD, dev_csv, &err); goto done; }
    have_dev = 1;
    if (limit > 0 && limit < train.n_dialogues) { train.n_dialogues = limit; train.n_rows = train.dialogue_start[limit]; }
    if (limit > 0 && (limit + 8) / 9 < dev.n_dialogues) { dev.n_dialogues = (limit + 8) / 9; dev.n_rows = dev.dialogue_start[dev.n_dialogues]; }
    if (meld_heads_build(&r, model, pos, np, &train, &dev, om.tmp, heads_progress, NULL, &err)) { cli_fail(CMD, "%s", err.msg); goto done; }
    if (q8 && meld_quantize_file(om.tmp, oq.tmp, MMSPCL_Q8_0, &err)) { cli_fail(CMD, "%s", err.msg); goto done; }
    if (cli_outs_commit(outs, 2, CMD)) goto done;   /* -o and --q8: both or neither */
    fprintf(stderr, "wrote %s\n", out);
    if (q8) fprintf(stderr, "wrote %s (q8_0)\n", q8);
    rc = 0;
done:
    cli_outs_discard(outs, 2);
    if (have_train) meld_csv_free(&train);
    if (have_dev) meld_csv_free(&dev);
    return rc;
}
