/* MELD end to end, small:
   1. the metrics eval prints, on hand-checked cases (numbers below worked out by hand and
      confirmed with scikit-learn 1.2.1: f1_score(average='weighted'), accuracy_score,
      precision_recall_fscore_support(zero_division=0));
   2. a short `mmspcl train` run (24 train dialogues, a 1-layer 32-wide encoder) lowers the MLM
      loss and writes a model the standard loaders read (mmspcl_roberta_load,
      mmspcl_bpe_from_weights: the cut vocabulary tokenizes training text as the full BPE does);
      the same run on one thread writes the same bytes;
   3. `mmspcl eval` ends with exactly "weighted_f1=0.XXXX accuracy=0.XXXX", and those numbers
      equal the metrics of `mmspcl classify --json`'s predictions on the same CSV;
   4. `mmspcl classify` prints one line per utterance: emotion, confidence, sentiment, confidence,
      "Speaker: text";
   5. a q8_0 copy (meld_quantize_file) loads and agrees with f32 on most utterances;
   6. the classifier loads from memory as from a file, with the same probabilities, and
      examples/classify_dialogue prints the same labels as `mmspcl classify`.
   Needs ../shared/data (MELD CSVs, RoBERTa BPE); without it parts 2-5 are skipped. */
#define MMSPCL_IMPLEMENTATION
#define MMSPCL_TRAIN_IMPLEMENTATION
#include "mmspcl.h"
#include "mmspcl_train.h"
#include "tests/test.h"
#include "tools/train/meld_recipe.c"   /* meld_quantize_file, the MELD CSV reader */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MELD "../shared/data/meld"
#define MODEL "build/tests/e2e.mmw"
#define MODEL_Q8 "build/tests/e2e-q8.mmw"
#define SMALL_CSV "build/tests/e2e_dev.csv"

static void metrics_case(const int *yt, const int *yp, int n, int C, double wf1, double acc, double macro,
                         const double *f1s) {
    int64_t cm[64];
    mmspcl_class_metrics pc[8];
    mmspcl_metrics mt;
    int c;
    mmspcl_confusion(yt, yp, n, C, cm);
    mmspcl_metrics_from_confusion(cm, C, pc, &mt);
    CHECK(fabs(mt.weighted_f1 - wf1) < 1e-9, "weighted F1 %.6f, expected %.6f", mt.weighted_f1, wf1);
    CHECK(fabs(mt.accuracy - acc) < 1e-9, "accuracy %.6f, expected %.6f", mt.accuracy, acc);
    CHECK(fabs(mt.macro_f1 - macro) < 1e-9, "macro F1 %.6f, expected %.6f", mt.macro_f1, macro);
    for (c = 0; c < C; c++) CHECK(fabs(pc[c].f1 - f1s[c]) < 1e-9, "class %d F1 %.6f, expected %.6f", c, pc[c].f1, f1s[c]);
}

/* what cmd printed on standard output, or NULL when it failed */
static char *run(const char *cmd) {
    char *out = NULL;
    if (test_run(&out, "%s", cmd) != 0) {
        fprintf(stderr, "command failed: %s\n", cmd);
        free(out);
        return NULL;
    }
    return out;
}

static int emotion_of(const char *s) {
    int c;
    for (c = 0; c < MMSPCL_NUM_EMOTIONS; c++) {
        size_t L = strlen(mmspcl_emotion_names[c]);
        if (!strncmp(s, mmspcl_emotion_names[c], L) && (s[L] == '"' || s[L] == ' ')) return c;
    }
    return -1;
}

static void test_metrics(void) {
    static const int yt[10] = {0, 0, 0, 1, 1, 2, 2, 2, 2, 3}, yp[10] = {0, 1, 0, 1, 1, 2, 0, 2, 3, 3};
    /* F1: 0: P 2/3 R 2/3 -> 2/3; 1: P 2/3 R 1 -> 0.8; 2: P 1 R 1/2 -> 2/3; 3: P 1/2 R 1 -> 2/3
       weighted (3*2/3 + 2*0.8 + 4*2/3 + 1*2/3) / 10 = 0.693333..., accuracy 0.7, macro 0.7 */
    static const double f1a[4] = {2.0 / 3, 0.8, 2.0 / 3, 2.0 / 3};
    /* class 1 never predicted (zero_division=0 -> 0): weighted (0.5 + 0 + 2 * 2/3) / 4 */
    static const int yt2[4] = {0, 1, 2, 2}, yp2[4] = {0, 0, 0, 2};
    static const double f1b[3] = {0.5, 0.0, 2.0 / 3};
    metrics_case(yt, yp, 10, 4, 6.9333333333333333 / 10, 0.7, 0.7, f1a);
    metrics_case(yt2, yp2, 4, 3, (0.5 + 4.0 / 3) / 4, 0.5, (0.5 + 2.0 / 3) / 3, f1b);
}

/* 2. a short training run */
static void test_training_run(void) {
    char *out = run("build/mmspcl train --meld " MELD " -o " MODEL " --limit 24 --hidden 32 --layers 1 --heads 2 --ffn 64"
                    " --max-len 48 --mlm-epochs 4 --mlm-lr 3e-3 --epochs 2 --msve-epochs 2 --ngram-bits 12"
                    " --msve-hidden 8 --no-checkpoint --quiet 2>&1");
    mmspcl_weights *w = NULL;
    mmspcl_error err;
    CHECK(out != NULL, "mmspcl train failed");
    free(out);
    CHECK(mmspcl_weights_open(&w, MODEL, &err) == MMSPCL_OK, "open %s: %s", MODEL, err.msg);
    if (w) {
        const mmspcl_tensor *lm = mmspcl_weights_find(w, "meld.log.mlm"), *ls = mmspcl_weights_find(w, "meld.log.spcl");
        mmspcl_roberta *enc = NULL;
        mmspcl_bpe *tok = NULL;
        CHECK(lm && lm->ndim == 2 && lm->ne[0] == 4 && lm->ne[1] == 3, "meld.log.mlm: 4 epochs of [epoch, loss, -]");
        if (lm && lm->ne[0] == 4) {
            const float *d = (const float *)lm->data;
            CHECK(d[3 * 3 + 1] < d[1] - 0.5f, "MLM loss %.3f -> %.3f: not lowered", d[1], d[3 * 3 + 1]);
            printf("MLM loss per epoch: %.3f %.3f %.3f %.3f\n", d[1], d[4], d[7], d[10]);
        }
        CHECK(ls && ls->ne[0] >= 1 && isfinite(((const float *)ls->data)[1]), "meld.log.spcl");
        CHECK(mmspcl_roberta_load(&enc, w, 2, 48, &err) == MMSPCL_OK, "roberta_load: %s", err.msg);
        CHECK(mmspcl_bpe_from_weights(&tok, w, &err) == MMSPCL_OK, "bpe_from_weights: %s", err.msg);
        if (tok) {
            /* the cut vocabulary keeps training words whole and spells any other text out */
            int32_t ids[64];
            char back[256];
            int n = mmspcl_bpe_encode(tok, "Joey: How you doin'? Zyxwvut!", 29, ids, 64);
            size_t L = mmspcl_bpe_decode(tok, ids, n, back, sizeof back);
            CHECK(n > 0 && n <= 64 && L == 29 && !memcmp(back, "Joey: How you doin'? Zyxwvut!", 29), "round trip: '%s'", back);
            CHECK(mmspcl_bpe_token_id(tok, "<mask>") == mmspcl_bpe_vocab_size(tok) - 1 &&
                  mmspcl_bpe_pad_id(tok) == 1 && mmspcl_bpe_bos_id(tok) == 0 && mmspcl_bpe_eos_id(tok) == 2, "special ids");
        }
        mmspcl_bpe_free(tok);
        mmspcl_roberta_free(enc);
        mmspcl_weights_free(w);
    }
}

/* deterministic for a seed, whatever the thread count: the same run on one thread gives the
   same bytes */
static void test_one_thread_same_bytes(void) {
    char *out = run("OMP_NUM_THREADS=1 build/mmspcl train --meld " MELD " -o build/tests/e2e-1thread.mmw --limit 24 --hidden 32"
                    " --layers 1 --heads 2 --ffn 64 --max-len 48 --mlm-epochs 4 --mlm-lr 3e-3 --epochs 2 --msve-epochs 2"
                    " --ngram-bits 12 --msve-hidden 8 --no-checkpoint --quiet 2>&1");
    FILE *f1 = fopen(MODEL, "rb"), *f2 = fopen("build/tests/e2e-1thread.mmw", "rb");
    int same = f1 && f2, c1, c2;
    while (same) {
        c1 = fgetc(f1);
        c2 = fgetc(f2);
        if (c1 != c2) same = 0;
        if (c1 == EOF || c2 == EOF) break;
    }
    CHECK(out && same, "a second run of the same training (1 thread) wrote a different file");
    if (f1) fclose(f1);
    if (f2) fclose(f2);
    free(out);
}

/* a small CSV: the header and the first 40 rows of dev */
static void write_small_csv(void) {
    FILE *in = fopen(MELD "/dev_sent_emo.csv", "rb"), *o = fopen(SMALL_CSV, "wb");
    char line[4096];
    int k = 0;
    while (in && o && k < 41 && fgets(line, sizeof line, in)) { fputs(line, o); k++; }
    if (in) fclose(in);
    if (o) fclose(o);
    CHECK(k == 41, "cannot write %s", SMALL_CSV);
}

/* 3. eval's last line == metrics of classify --json's predictions */
static void test_eval_matches_classify(void) {
    char *ev = run("build/mmspcl eval -m " MODEL " --csv " SMALL_CSV " --svg build/tests/e2e.svg");
    char *js = run("build/mmspcl classify -m " MODEL " --json " SMALL_CSV);
    meld_csv data;
    mmspcl_error err;
    CHECK(ev && js, "eval / classify failed");
    if (ev && js && meld_csv_load(SMALL_CSV, &data, &err) == MMSPCL_OK) {
        const char *last = ev + strlen(ev);
        double f1 = -1, acc = -1;
        int yp[64], yt[64], n = 0, i;
        const char *p = js;
        int64_t cm[64];
        mmspcl_metrics mt;
        char want[64];
        while (last > ev && last[-1] == '\n') last--;
        while (last > ev && last[-1] != '\n') last--;
        CHECK(sscanf(last, "weighted_f1=%lf accuracy=%lf", &f1, &acc) == 2, "eval's last line: '%s'", last);
        snprintf(want, sizeof want, "weighted_f1=%.4f accuracy=%.4f\n", f1, acc);
        CHECK(!strcmp(last, want) && strlen(last) == strlen("weighted_f1=0.0000 accuracy=0.0000\n"),
              "last line is not exactly weighted_f1=0.XXXX accuracy=0.XXXX: '%s'", last);
        while ((p = strstr(p, "\"emotion\": \"")) && n < 64) {
            p += 12;
            yp[n++] = emotion_of(p);
        }
        CHECK(n == data.n_rows && n == 40, "classify --json gave %d predictions for %d rows", n, data.n_rows);
        for (i = 0; i < n && i < data.n_rows; i++) yt[i] = data.rows[i].emotion;
        mmspcl_confusion(yt, yp, n, MMSPCL_NUM_EMOTIONS, cm);
        mmspcl_metrics_from_confusion(cm, MMSPCL_NUM_EMOTIONS, NULL, &mt);
        CHECK(fabs(mt.weighted_f1 - f1) < 6e-5 && fabs(mt.accuracy - acc) < 6e-5,
              "eval says %.4f/%.4f, classify's predictions give %.4f/%.4f", f1, acc, mt.weighted_f1, mt.accuracy);
        CHECK(strstr(js, "\"sentiment\": \"") && strstr(js, "\"emotion_confidence\": ") && js[0] == '[', "JSON fields");
        CHECK(strstr(ev, "confusion (rows: true, columns: predicted)") && strstr(ev, "precision"), "eval's table");
        meld_csv_free(&data);
        {
            FILE *s = fopen("build/tests/e2e.svg", "rb");
            char head[8] = {0};
            CHECK(s && fread(head, 1, 4, s) == 4 && !memcmp(head, "<svg", 4), "SVG written");
            if (s) fclose(s);
        }
    }
    free(ev);
    free(js);
}

/* 4. classify's text output */
static void test_classify_text(void) {
    char *out = run("printf 'Monica: Okay, everybody relax.\\nRoss: I am so happy for you!\\nno speaker here\\n' | "
                    "build/mmspcl classify -m " MODEL " -");
    CHECK(out != NULL, "classify - failed");
    if (out) {
        char emo[32], sent[32], rest[256];
        int pe, ps, lines = 0, ok = 0;
        const char *p = out;
        while (*p) {
            const char *nl = strchr(p, '\n');
            if (sscanf(p, "%31s %d%% %31s %d%% %255[^\n]", emo, &pe, sent, &ps, rest) == 5 &&
                mmspcl_emotion_id(emo) >= 0 && mmspcl_sentiment_id(sent) >= 0 && pe >= 0 && pe <= 100 && ps >= 0 && ps <= 100)
                ok++;
            lines++;
            if (!nl) break;
            p = nl + 1;
        }
        CHECK(lines == 3 && ok == 3, "classify printed %d lines, %d well formed:\n%s", lines, ok, out);
        CHECK(strstr(out, "Monica: Okay, everybody relax.") && strstr(out, "Speaker: no speaker here"), "speakers:\n%s", out);
        free(out);
    }
}

/* 5. q8_0 copy */
static void test_q8_copy(void) {
    mmspcl_error err;
    mmspcl_classifier a, b;
    meld_csv data;
    CHECK(meld_quantize_file(MODEL, MODEL_Q8, MMSPCL_Q8_0, &err) == MMSPCL_OK, "quantize: %s", err.msg);
    if (mmspcl_classifier_load(&a, MODEL, &err) == MMSPCL_OK) {
        if (mmspcl_classifier_load(&b, MODEL_Q8, &err) == MMSPCL_OK) {
            if (meld_csv_load(SMALL_CSV, &data, &err) == MMSPCL_OK) {
                float ea[40 * 7], eb[40 * 7];
                mmspcl_turn turns[40];
                int i, pa[40], pb[40], same = 0;
                for (i = 0; i < 40; i++) { turns[i].speaker = data.rows[i].speaker; turns[i].text = data.rows[i].utterance; }
                CHECK(mmspcl_classifier_classify(&a, turns, 40, NULL, ea, NULL, &err) == MMSPCL_OK, "predict f32: %s", err.msg);
                CHECK(mmspcl_classifier_classify(&b, turns, 40, NULL, eb, NULL, &err) == MMSPCL_OK, "predict q8: %s", err.msg);
                mmspcl_argmax_rows(ea, 40, 7, pa);
                mmspcl_argmax_rows(eb, 40, 7, pb);
                for (i = 0; i < 40; i++) same += pa[i] == pb[i];
                CHECK(same >= 36, "q8_0 agrees with f32 on %d of 40 utterances", same);
                meld_csv_free(&data);
            }
            mmspcl_classifier_free(&b);
        } else CHECK(0, "load q8: %s", err.msg);
        mmspcl_classifier_free(&a);
    } else CHECK(0, "load: %s", err.msg);
}

/* 6. from memory, the same as from a file; the example prints what mmspcl classify prints */
static void test_from_memory(void) {
    mmspcl_classifier a, b;
    mmspcl_error err;
    unsigned char *bytes = NULL;
    size_t size = 0;
    static const mmspcl_turn turns[3] = {{"Monica", "Okay, everybody relax."}, {"Ross", "I am so happy for you!"},
                                         {"Monica", "What? Why would you do that?"}};
    float ea[3 * 7], eb[3 * 7], sa[3 * 3], sb[3 * 3];
    CHECK(mmspcl_read_file(MODEL, (size_t)1 << 30, &bytes, &size, &err) == MMSPCL_OK, "read %s: %s", MODEL, err.msg);
    if (!bytes) return;
    if (mmspcl_classifier_load(&a, MODEL, &err) == MMSPCL_OK) {
        if (mmspcl_classifier_from_memory(&b, bytes, size, &err) != MMSPCL_OK) CHECK(0, "from_memory: %s", err.msg);
        else {
            CHECK(mmspcl_classifier_classify(&a, turns, 3, NULL, ea, sa, &err) == MMSPCL_OK, "classify: %s", err.msg);
            CHECK(mmspcl_classifier_classify(&b, turns, 3, NULL, eb, sb, &err) == MMSPCL_OK, "classify: %s", err.msg);
            CHECK(!memcmp(ea, eb, sizeof ea) && !memcmp(sa, sb, sizeof sa), "from memory gives other probabilities");
            mmspcl_classifier_free(&b);
        }
        CHECK(mmspcl_classifier_classify(&a, turns, 3, "no-such-head", ea, NULL, &err) == MMSPCL_ERR_ARG &&
              strstr(err.msg, "no-such-head"), "unknown head: %s", err.msg);
        mmspcl_classifier_free(&a);
    } else CHECK(0, "load: %s", err.msg);
    /* a file that is not a classifier: refused, naming it */
    CHECK(mmspcl_classifier_from_memory(&b, bytes, 64, &err) != MMSPCL_OK && err.msg[0], "a truncated file loads");
    mmspcl_free(bytes);
}

static void test_example_same_labels(void) {
    char *cli = run("build/mmspcl classify -m weights/meld-text-q8_0.mmw examples/dialogue.txt");
    char *ex = run("build/examples/classify_dialogue weights/meld-text-q8_0.mmw examples/dialogue.txt");
    CHECK(cli && ex && cli[0] && !strcmp(cli, ex), "classify_dialogue and mmspcl classify differ:\n%s---\n%s", cli ? cli : "",
          ex ? ex : "");
    free(cli);
    free(ex);
}

/* 7. the classifier's optional parts: a copy of MODEL without the listed keys / tensor prefixes
   (drop: NULL-terminated), plus the linear heads when lin_classes[k] > 0 ([lin_classes[k]][H],
   fixed pseudo-random values) and the string key extra_key = extra_value when given */
static int derive(const char *out, const char *const *drop, const int lin_classes[2], const char *extra_key,
                  const char *extra_value, float *lin[2], int H) {
    mmspcl_weights *w = NULL;
    mmspcl_writer *wr = mmspcl_writer_create();
    mmspcl_error err;
    int64_t i, sh[2];
    int k, ok = 1;
    if (!wr || mmspcl_weights_read(&w, MODEL, &err)) { mmspcl_writer_free(wr); return 0; }
    for (i = 0; i < w->n_kv; i++) {
        const mmspcl_kv *kv = &w->kv[i];
        int skip = 0, d;
        for (d = 0; drop[d]; d++) skip |= !strncmp(kv->key, drop[d], strlen(drop[d]));
        if (skip) continue;
        if (kv->type == MMSPCL_KV_INT) mmspcl_writer_set_int(wr, kv->key, kv->i);
        else if (kv->type == MMSPCL_KV_FLOAT) mmspcl_writer_set_float(wr, kv->key, kv->f);
        else if (kv->type == MMSPCL_KV_STR) mmspcl_writer_set_str(wr, kv->key, kv->str);
        else mmspcl_writer_set_str_array(wr, kv->key, kv->strs, kv->lens, kv->count);
    }
    for (i = 0; i < w->n_tensors; i++) {
        const mmspcl_tensor *t = &w->tensors[i];
        int skip = 0, d;
        for (d = 0; drop[d]; d++) skip |= !strncmp(t->name, drop[d], strlen(drop[d]));
        if (!skip) ok &= mmspcl_writer_add_tensor(wr, t->name, t->dtype, t->ndim, t->ne, t->data, t->nbytes, &err) == MMSPCL_OK;
    }
    for (k = 0; k < 2; k++) {
        static const char *const wn[2] = {"meld.linear.emotion.weight", "meld.linear.sentiment.weight"};
        static const char *const bn[2] = {"meld.linear.emotion.bias", "meld.linear.sentiment.bias"};
        const int C = lin_classes[k];
        int j;
        if (C <= 0) continue;
        for (j = 0; j < C * H + C; j++) lin[k][j] = (float)((j * 7919 % 1000) / 1000.0 - 0.5) * (j < C * H ? 0.2f : 1.0f);
        sh[0] = C; sh[1] = H;
        ok &= mmspcl_writer_add_tensor(wr, wn[k], MMSPCL_F32, 2, sh, lin[k], sizeof(float) * (size_t)C * H, &err) == MMSPCL_OK;
        ok &= mmspcl_writer_add_tensor(wr, bn[k], MMSPCL_F32, 1, sh, lin[k] + C * H, sizeof(float) * (size_t)C, &err) == MMSPCL_OK;
    }
    if (extra_key) mmspcl_writer_set_str(wr, extra_key, extra_value);
    ok &= mmspcl_writer_save(wr, out, NULL, NULL, &err) == MMSPCL_OK;
    mmspcl_writer_free(wr);
    mmspcl_weights_free(w);
    return ok;
}

static void test_classifier_parts(void) {
    static const char *const no_ngram_msve[] = {"meld.lr.", "meld.idf", "meld.ngram_bits", "meld.emotion.", "meld.sentiment.",
                                                "meld.view.", NULL};
    static const char *const no_heads[] = {"meld.lr.", "meld.idf", "meld.ngram_bits", "meld.emotion.", "meld.sentiment.",
                                           "meld.view.", "meld.protos", NULL};
    static const char *const no_ngram[] = {"meld.lr.", "meld.idf", "meld.ngram_bits", NULL};
    static const mmspcl_turn turns[2] = {{"Monica", "Okay, everybody relax."}, {"Ross", "I am so happy for you!"}};
    const char *path = "build/tests/e2e-parts.mmw";
    mmspcl_classifier m;
    mmspcl_error err;
    float *lin[2], t[2 * 64], emo[2 * 7], sent[2 * 3];
    const int both[2] = {7, 3}, emo_only[2] = {7, 0}, wrong[2] = {3, 0}, none[2] = {0, 0};
    int H, i, c;
    if (mmspcl_classifier_load(&m, MODEL, &err)) { CHECK(0, "load: %s", err.msg); return; }
    H = m.hidden;
    mmspcl_classifier_free(&m);
    CHECK(H <= 64, "hidden %d", H);
    lin[0] = (float *)malloc(sizeof(float) * (size_t)(7 * H + 7));
    lin[1] = (float *)malloc(sizeof(float) * (size_t)(3 * H + 3));
    /* protos + linear heads, no n-gram view, no MSVE: the SPCL fine-tuning layout */
    CHECK(derive(path, no_ngram_msve, both, NULL, NULL, lin, H), "write %s", path);
    if (mmspcl_classifier_load(&m, path, &err) == MMSPCL_OK) {
        CHECK(!strcmp(mmspcl_classifier_default_head(&m, 0), "linear") && !strcmp(mmspcl_classifier_default_head(&m, 1), "linear"),
              "defaults: %s / %s", mmspcl_classifier_default_head(&m, 0), mmspcl_classifier_default_head(&m, 1));
        CHECK(mmspcl_classifier_classify(&m, turns, 2, NULL, emo, sent, &err) == MMSPCL_OK, "classify: %s", err.msg);
        CHECK(mmspcl_classifier_features(&m, turns, 2, t, NULL, NULL, &err) == MMSPCL_OK, "features: %s", err.msg);
        for (i = 0; i < 2; i++) {   /* softmax(W t + b), by hand in double */
            double z[7], mx = -1e300, s = 0, worst = 0;
            for (c = 0; c < 7; c++) {
                int k;
                z[c] = lin[0][7 * H + c];
                for (k = 0; k < H; k++) z[c] += (double)lin[0][c * H + k] * t[i * H + k];
                mx = z[c] > mx ? z[c] : mx;
            }
            for (c = 0; c < 7; c++) s += exp(z[c] - mx);
            for (c = 0; c < 7; c++) worst = fmax(worst, fabs(exp(z[c] - mx) / s - emo[i * 7 + c]));
            CHECK(worst < 1e-5, "turn %d: the linear head's probabilities differ by %g from softmax(W t + b)", i, worst);
        }
        CHECK(mmspcl_classifier_classify(&m, turns, 2, "lr", emo, NULL, &err) == MMSPCL_ERR_ARG && strstr(err.msg, "it has: protos, linear"),
              "a head the file lacks: %s", err.msg);
        CHECK(mmspcl_classifier_classify(&m, turns, 2, "protos", emo, NULL, &err) == MMSPCL_OK, "protos: %s", err.msg);
        mmspcl_classifier_free(&m);
    } else CHECK(0, "load parts: %s", err.msg);
    /* the file names its default */
    CHECK(derive(path, no_ngram_msve, emo_only, "meld.default_head", "protos", lin, H), "write");
    if (mmspcl_classifier_load(&m, path, &err) == MMSPCL_OK) {
        CHECK(!strcmp(mmspcl_classifier_default_head(&m, 0), "protos") && !mmspcl_classifier_default_head(&m, 1), "named default");
        CHECK(mmspcl_classifier_classify(&m, turns, 2, NULL, emo, sent, &err) == MMSPCL_ERR_NOT_FOUND && strstr(err.msg, "sentiment"),
              "no sentiment head: %s", err.msg);
        CHECK(mmspcl_classifier_classify(&m, turns, 2, NULL, emo, NULL, &err) == MMSPCL_OK, "emotion only: %s", err.msg);
        mmspcl_classifier_free(&m);
    } else CHECK(0, "load named default: %s", err.msg);
    CHECK(derive(path, no_ngram_msve, emo_only, "meld.default_head", "emotion", lin, H), "write");
    CHECK(mmspcl_classifier_load(&m, path, &err) == MMSPCL_ERR_FORMAT && strstr(err.msg, "meld.default_head"), "a default the file lacks: %s", err.msg);
    /* refused: a linear head of the wrong class count, no emotion head at all, MSVE without its n-gram view */
    CHECK(derive(path, no_ngram_msve, wrong, NULL, NULL, lin, H), "write");
    CHECK(mmspcl_classifier_load(&m, path, &err) != MMSPCL_OK && strstr(err.msg, "meld.linear.emotion.weight"), "3-class linear head: %s", err.msg);
    CHECK(derive(path, no_heads, none, NULL, NULL, lin, H), "write");
    CHECK(mmspcl_classifier_load(&m, path, &err) == MMSPCL_ERR_FORMAT && strstr(err.msg, "no emotion head"), "no head: %s", err.msg);
    CHECK(derive(path, no_ngram, none, NULL, NULL, lin, H), "write");
    CHECK(mmspcl_classifier_load(&m, path, &err) == MMSPCL_ERR_FORMAT && strstr(err.msg, "n-gram view"), "MSVE without a: %s", err.msg);
    free(lin[0]);
    free(lin[1]);
}

int main(void) {
    FILE *f;
    test_metrics();
    if (!(f = fopen(MELD "/train_sent_emo.csv", "rb"))) {
        printf("(no %s: training checks skipped)\n", MELD);
        return TEST_END();
    }
    fclose(f);
    test_training_run();
    test_one_thread_same_bytes();
    write_small_csv();
    test_eval_matches_classify();
    test_classify_text();
    test_q8_copy();
    test_from_memory();
    test_example_same_labels();
    test_classifier_parts();
    return TEST_END();
}
