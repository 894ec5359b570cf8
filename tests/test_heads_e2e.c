/* The issue-18 recipe end to end, tiny: tools/train/meld_model.sh with a 1-layer, 32-wide
   encoder on a few kilobytes of each corpus file and 6 MELD dialogues:
   1. mmspcl pretrain writes an encoder + tokenizer file that train --init takes; a run cut by
      --max-steps and resumed from its checkpoint ends at the uninterrupted run's step count and
      weights (checkpoints keep f32: within 1e-5 relative of each other); a checkpoint of
      another kind is refused before any step, leaving no output;
   2. train --init --folds 2 --fold F writes the out-of-fold views of exactly fold F's rows;
   3. mmspcl heads writes a classifier with meld.view_t "scores", the MSVE and single-view heads,
      the n-gram view and a default head chosen among the method's (emotion MSVE or protos);
      classify and eval take it and its q8_0 copy; mmspcl_classifier_scores equals the cosine
      to meld.protos and the linear heads' logits computed here by hand; heads refuses an
      incomplete set of out-of-fold files;
   4. running the script again redoes nothing.
   Needs ../shared/data/meld and ../shared/data/corpus (skipped without them). */
#define MMSPCL_IMPLEMENTATION
#include "mmspcl.h"
#include "tests/test.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TMP "build/tests/tmp/heads-e2e"
#define MELD "../shared/data/meld"
#define CORPUS "../shared/data/corpus"
#define PT_ARGS "--hidden 32 --layers 1 --heads 2 --ffn 64 --max-len 64 --batch 8 --min-count 2 --corpus-mb 0.01 --epochs 2"
#define PT "OMP_NUM_THREADS=1 build/mmspcl pretrain --corpus " CORPUS " --meld " MELD " --limit 6 --quiet " PT_ARGS
#define SCRIPT "OMP_NUM_THREADS=1 MMSPCL=build/mmspcl NICE= K=2 LIMIT=6 PRETRAIN_ARGS='" PT_ARGS "' " \
               "FT_ARGS='--max-len 64 --batch 8 --epochs 2 --lr 1e-3' HEADS_ARGS='--epochs 10' tools/train/meld_model.sh " TMP "/model"

/* relative max difference of two tensors of the same name in two files (-1: missing) */
static double tensor_diff(const char *a, const char *b, const char *name) {
    mmspcl_weights *wa = NULL, *wb = NULL;
    mmspcl_error err;
    const mmspcl_tensor *ta, *tb;
    double md = -1, mx = 0;
    int64_t i, n;
    if (mmspcl_weights_open(&wa, a, &err) || mmspcl_weights_open(&wb, b, &err)) goto done;
    ta = mmspcl_weights_find(wa, name);
    tb = mmspcl_weights_find(wb, name);
    if (!ta || !tb || ta->dtype != MMSPCL_F32 || tb->dtype != MMSPCL_F32 || ta->nbytes != tb->nbytes) goto done;
    n = mmspcl_tensor_nelements(ta);
    md = 0;
    for (i = 0; i < n; i++) {
        const double x = ((const float *)ta->data)[i], y = ((const float *)tb->data)[i];
        md = fmax(md, fabs(x - y));
        mx = fmax(mx, fabs(x));
    }
    md = mx > 0 ? md / mx : md;
done:
    mmspcl_weights_free(wa);
    mmspcl_weights_free(wb);
    return md;
}

static void test_pretrain(void) {
    char *out = NULL;
    int rc;
    double d;
    rc = test_run(&out, PT " --max-steps 8 -o " TMP "/p8.mmw 2>&1");
    CHECK(rc == 0 && strstr(out, "stopped early"), "pretrain --max-steps 8 stops early (exit %d): %s", rc, out ? out : "");
    free(out);
    rc = test_run(&out, PT " --resume " TMP "/p8.mmw.ckpt -o " TMP "/p8.mmw 2>&1");
    CHECK(rc == 0 && strstr(out, "resuming") && strstr(out, "(8 steps done)"), "resumed from the checkpoint (exit %d): %s", rc, out ? out : "");
    free(out);
    rc = test_run(&out, PT " -o " TMP "/pall.mmw 2>&1");
    CHECK(rc == 0, "uninterrupted pretraining (exit %d): %s", rc, out ? out : "");
    free(out);
    test_run(&out, "build/mmspcl inspect " TMP "/p8.mmw | grep -E 'pretrain.(steps|finished)' | tr -s ' ' | tr '\\n' ' '; "
                   "build/mmspcl inspect " TMP "/pall.mmw | grep -E 'pretrain.(steps|finished)' | tr -s ' ' | tr '\\n' ' '");
    {
        char half[256] = "";
        const size_t n = out ? strlen(out) / 2 : 0;
        if (out && n < sizeof half) memcpy(half, out, n);
        CHECK(out && n > 10 && strstr(out, "pretrain.finished 1") && !strncmp(out, out + n, n), "resumed and uninterrupted runs: the same step "
              "count, finished: %s", out ? out : "");
    }
    free(out);
    d = tensor_diff(TMP "/p8.mmw", TMP "/pall.mmw", "encoder.layer.0.attention.self.query.weight");
    CHECK(d >= 0 && d < 1e-5, "resumed weights within 1e-5 of the uninterrupted run's (max relative difference %.3g)", d);
    d = tensor_diff(TMP "/p8.mmw", TMP "/pall.mmw", "embeddings.word_embeddings.weight");
    CHECK(d >= 0 && d < 1e-5, "resumed word embeddings within 1e-5 (max relative difference %.3g)", d);
    rc = test_run(&out, PT " --resume " TMP "/model/fold0.mmw -o " TMP "/bad.mmw 2>&1");
    CHECK(rc == 1 && strstr(out, "not a checkpoint of this pretraining") && access(TMP "/bad.mmw", F_OK) != 0,
          "--resume of another file refused, nothing written (exit %d): %s", rc, out ? out : "");
    free(out);
}

/* oof.rows of fold f are exactly the rows of dialogues d % 2 == f among the first 6 */
static void test_oof(int f) {
    char path[128];
    mmspcl_weights *w = NULL;
    mmspcl_error err;
    const mmspcl_tensor *r;
    snprintf(path, sizeof path, TMP "/model/fold%d.mmw.oof", f);
    CHECK(mmspcl_weights_open(&w, path, &err) == MMSPCL_OK, "%s: %s", path, err.msg);
    if (!w) return;
    r = mmspcl_weights_find(w, "oof.rows");
    CHECK(r && r->dtype == MMSPCL_I32 && r->ne[0] > 0 && mmspcl_weights_find(w, "oof.scores") &&
          mmspcl_weights_find(w, "oof.scores")->ne[1] == MMSPCL_SCORES_DIM, "%s holds oof.rows and oof.scores [n][%d]", path, MMSPCL_SCORES_DIM);
    mmspcl_weights_free(w);
}

/* the score view against a hand computation from the file's tensors */
static void test_scores(const char *path) {
    mmspcl_classifier m;
    mmspcl_error err;
    mmspcl_turn turns[2] = {{"Rachel", "I'm so happy!"}, {"Ross", "What? No way."}};
    float t[2 * 64], s[2 * MMSPCL_SCORES_DIM], w[MMSPCL_NUM_EMOTIONS * 64];
    const char *vt = NULL, *dh = NULL;
    double worst = 0;
    int i, c, k, H;
    CHECK(mmspcl_classifier_load(&m, path, &err) == MMSPCL_OK, "load %s: %s", path, err.msg);
    if (!m.enc) return;
    H = m.hidden;
    CHECK(mmspcl_weights_get_str(m.w, "meld.view_t", &vt) && !strcmp(vt, "scores") && m.t_scores, "meld.view_t is scores");
    dh = mmspcl_classifier_default_head(&m, 0);
    CHECK(dh && (!strcmp(dh, "emotion") || !strcmp(dh, "protos")), "default emotion head is the method's: %s", dh ? dh : "(none)");
    CHECK(H <= 64 && mmspcl_classifier_features(&m, turns, 2, t, NULL, NULL, &err) == MMSPCL_OK &&
          mmspcl_classifier_scores(&m, t, 2, s, &err) == MMSPCL_OK, "scores: %s", err.msg);
    for (i = 0; i < 2 && H <= 64; i++) {
        const float *ti = t + (size_t)i * H;
        for (c = 0; c < MMSPCL_NUM_EMOTIONS; c++) {   /* cosine to the class means */
            double d = 0, na = 0, nb = 0;
            for (k = 0; k < H; k++) { d += ti[k] * m.protos[c * H + k]; na += ti[k] * ti[k]; nb += m.protos[c * H + k] * m.protos[c * H + k]; }
            worst = fmax(worst, fabs(s[i * MMSPCL_SCORES_DIM + c] - d / sqrt(na * nb)));
        }
        for (c = 0; c < MMSPCL_NUM_EMOTIONS + MMSPCL_NUM_SENTIMENTS; c++) {   /* the linear heads' logits */
            const int task = c >= MMSPCL_NUM_EMOTIONS, row = task ? c - MMSPCL_NUM_EMOTIONS : c;
            double z = m.lin_b[task][row];
            mmspcl_matrix_row(m.lin_w[task], row, w);
            for (k = 0; k < H; k++) z += (double)w[k] * ti[k];
            worst = fmax(worst, fabs(s[i * MMSPCL_SCORES_DIM + MMSPCL_NUM_EMOTIONS + c] - z) / fmax(1.0, fabs(z)));
        }
    }
    CHECK(worst < 1e-4, "score view = cosine to meld.protos and the linear logits computed by hand (worst difference %.3g)", worst);
    mmspcl_classifier_free(&m);
}

static void test_cli(void) {
    char *out = NULL;
    int rc;
    rc = test_run(&out, "build/mmspcl classify -m " TMP "/model/meld-text-q8_0.mmw examples/dialogue.txt 2>&1");
    CHECK(rc == 0 && strstr(out, "Dana:"), "classify takes the q8_0 model (exit %d): %s", rc, out ? out : "");
    free(out);
    rc = test_run(&out, "build/mmspcl eval -m " TMP "/model/meld-text.mmw --csv " MELD "/dev_sent_emo.csv --all-heads 2>&1 | "
                        "grep -E '^head=(emotion|view.t|view.a|protos|lr|sentiment) |^weighted_f1=' | wc -l");
    CHECK(rc == 0 && out && atoi(out) == 8, "eval --all-heads scores the MSVE, single-view, protos and n-gram heads (both tasks) (%s lines)", out ? out : "");
    free(out);
    rc = test_run(&out, "build/mmspcl heads -m " TMP "/model/full.mmw --meld " MELD " --limit 6 -o " TMP "/bad.mmw " TMP
                        "/model/fold0.mmw.oof 2>&1");
    CHECK(rc == 1 && strstr(out, "in no out-of-fold file") && access(TMP "/bad.mmw", F_OK) != 0,
          "heads refuses one fold of two, nothing written (exit %d): %s", rc, out ? out : "");
    free(out);
}

int main(void) {
    char *out = NULL;
    int rc;
    if (access(MELD "/train_sent_emo.csv", R_OK) != 0 || access(CORPUS "/friends-transcripts.txt", R_OK) != 0) {
        printf("  (skipped: " MELD " or " CORPUS " not available)\n");
        return TEST_END();
    }
    CHECK(test_run(NULL, "rm -rf " TMP " && mkdir -p " TMP) == 0, "temporary folder");
    rc = test_run(&out, SCRIPT " 2>&1");
    CHECK(rc == 0 && access(TMP "/model/meld-text-q8_0.mmw", R_OK) == 0, "meld_model.sh end to end (exit %d): %s", rc, out ? out : "");
    free(out);
    test_oof(0);
    test_oof(1);
    test_scores(TMP "/model/meld-text.mmw");
    test_cli();
    test_pretrain();
    rc = test_run(&out, SCRIPT " 2>&1");
    CHECK(rc == 0 && strstr(out, "pretraining done") && strstr(out, "fold1 done") && strstr(out, "full done") && strstr(out, "heads done"),
          "a second run redoes nothing (exit %d): %s", rc, out ? out : "");
    free(out);
    return TEST_END();
}
