/* `mmspcl train --init` end to end, small: a converted random RoBERTa (tests/data/roberta-tiny-bf16,
   bf16 safetensors, with the 300-token BPE of tests/data/finetune/tokenizer-300) fine-tuned for
   24 steps on 3 MELD dialogues:
   1. the printed SPCL loss falls; the classifier file has the layout of mmspcl.h's
      "13. Classifier" for a fine-tuned file (roberta.*, tokenizer.*, meld.max_len, meld.protos,
      meld.linear.{emotion,sentiment}.*, meld.default_head "protos", meld.log.spcl) and no .tmp is
      left; mmspcl classify and eval accept it and its --q8 copy;
   2. one thread and two write the same bytes; micro-batches of 3 (gradient accumulation) give the
      steps of the whole batch of 8 (the same printed losses: the contrastive loss sees the whole
      batch, under the same dropout masks);
   3. a run cut by --max-steps at the end of its first epoch, resumed from its checkpoint,
      writes the bytes of the uninterrupted run;
   4. refused with a clear message before any training step, leaving nothing: --init a CLIP file,
      a file without a tokenizer, a vocabulary without <mask>, --max-len past the position table,
      an -o in a missing folder; an interrupted run leaves no .tmp.
   Needs ../shared/data/meld (skipped without it). */
#define MMSPCL_IMPLEMENTATION
#include "mmspcl.h"
#include "tests/test.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TMP "build/tests/tmp/ft-e2e"
#define MELD "../shared/data/meld"
#define BASE "OMP_NUM_THREADS=1 build/mmspcl train --init " TMP "/tiny.mmw --meld " MELD " --limit 3 --max-len 64 --batch 8 --quiet"
#define RUN BASE " --lr 3e-3 --warmup 0 --epochs 20 --curriculum 0 --patience 0 --max-steps 24"

static int no_tmp_left(void) {
    char *out = NULL;
    int none;
    test_run(&out, "ls -a " TMP " | grep -c 'tmp' || true");
    none = out && atoi(out) == 0;
    free(out);
    return none;
}

/* the SPCL losses of the "step N: spcl loss X" lines */
static int step_losses(const char *log, double *l, int max) {
    const char *p = log;
    int n = 0;
    while (p && (p = strstr(p, "] step ")) && n < max) {
        const char *q = strstr(p, ": spcl loss ");
        if (!q) break;
        l[n++] = atof(q + 12);
        p = q;
    }
    return n;
}

static void test_layout(void) {
    mmspcl_weights *w = NULL;
    mmspcl_classifier c;
    mmspcl_error err;
    const mmspcl_tensor *t;
    const char *s = NULL;
    int64_t ml = 0;
    CHECK(mmspcl_weights_open(&w, TMP "/ft.mmw", &err) == MMSPCL_OK, "open: %s", err.msg);
    if (!w) return;
    CHECK(mmspcl_weights_get_str(w, "general.architecture", &s) && !strcmp(s, "roberta") &&
              mmspcl_weights_find(w, "encoder.layer.1.output.LayerNorm.weight") && mmspcl_weights_get(w, "tokenizer.vocab") &&
              mmspcl_weights_get(w, "tokenizer.merges"), "roberta.* and tokenizer.*");
    CHECK(mmspcl_weights_get_int(w, "meld.max_len", &ml) && ml == 64, "meld.max_len 64");
    CHECK((t = mmspcl_weights_find(w, "meld.protos")) && t->ndim == 2 && t->ne[0] == 7 && t->ne[1] == 32, "meld.protos [7][32]");
    CHECK((t = mmspcl_weights_find(w, "meld.linear.emotion.weight")) && t->ne[0] == 7 && t->ne[1] == 32 &&
              (t = mmspcl_weights_find(w, "meld.linear.emotion.bias")) && t->ne[0] == 7 &&
              (t = mmspcl_weights_find(w, "meld.linear.sentiment.weight")) && t->ne[0] == 3 &&
              (t = mmspcl_weights_find(w, "meld.linear.sentiment.bias")) && t->ne[0] == 3, "meld.linear.{emotion,sentiment}.*");
    CHECK(mmspcl_weights_get_str(w, "meld.default_head", &s) && !strcmp(s, "protos") && mmspcl_weights_find(w, "meld.log.spcl"),
          "meld.default_head protos, meld.log.spcl");
    CHECK(!mmspcl_weights_find(w, "meld.emotion.t.fc1.weight") && !mmspcl_weights_find(w, "meld.idf"), "no MSVE or n-gram parts");
    mmspcl_weights_free(w);
    CHECK(mmspcl_classifier_load(&c, TMP "/ft.mmw", &err) == MMSPCL_OK, "mmspcl_classifier_load: %s", err.msg);
    CHECK(!strcmp(mmspcl_classifier_default_head(&c, 0), "protos") && !strcmp(mmspcl_classifier_default_head(&c, 1), "linear"),
          "default heads: protos, linear (%s, %s)", mmspcl_classifier_default_head(&c, 0), mmspcl_classifier_default_head(&c, 1));
    mmspcl_classifier_free(&c);
}

static void test_cli_accepts(void) {
    char *out = NULL;
    int rc, lines = 0;
    const char *p;
    rc = test_run(&out, "build/mmspcl classify -m " TMP "/ft.mmw examples/dialogue.txt 2>&1");
    for (p = out; p && *p; p++) lines += *p == '\n';
    CHECK(rc == 0 && lines >= 3, "mmspcl classify on the fine-tuned file (rc %d, %d lines)", rc, lines);
    free(out);
    rc = test_run(&out, "head -n 31 " MELD "/dev_sent_emo.csv > " TMP "/dev30.csv && build/mmspcl eval -m " TMP "/ft.mmw --csv " TMP
                        "/dev30.csv 2>&1 | tail -n 1");
    CHECK(rc == 0 && out && !strncmp(out, "weighted_f1=", 12), "mmspcl eval on the fine-tuned file: %s", out ? out : "");
    free(out);
    rc = test_run(&out, "build/mmspcl classify -m " TMP "/ft-q8.mmw examples/dialogue.txt >/dev/null 2>&1");
    CHECK(rc == 0, "mmspcl classify on the --q8 copy (rc %d)", rc);
    free(out);
}

/* a copy of tiny.mmw whose vocabulary spells <mask> differently */
static void write_no_mask(void) {
    mmspcl_weights *w = NULL;
    mmspcl_writer *wr = mmspcl_writer_create();
    mmspcl_error err;
    int64_t i, k;
    if (mmspcl_weights_read(&w, TMP "/tiny.mmw", &err)) { CHECK(0, "%s", err.msg); return; }
    for (i = 0; i < w->n_kv; i++) {
        const mmspcl_kv *kv = &w->kv[i];
        if (kv->type == MMSPCL_KV_INT) mmspcl_writer_set_int(wr, kv->key, kv->i);
        else if (kv->type == MMSPCL_KV_FLOAT) mmspcl_writer_set_float(wr, kv->key, kv->f);
        else if (kv->type == MMSPCL_KV_STR) mmspcl_writer_set_str(wr, kv->key, kv->str);
        else {
            const char **v = (const char **)malloc(sizeof(char *) * (size_t)kv->count);
            for (k = 0; k < kv->count; k++) v[k] = strcmp(kv->strs[k], "<mask>") ? kv->strs[k] : "<msk>";
            mmspcl_writer_set_str_array(wr, kv->key, v, NULL, kv->count);
            free(v);
        }
    }
    for (i = 0; i < w->n_tensors; i++)
        mmspcl_writer_add_tensor(wr, w->tensors[i].name, w->tensors[i].dtype, w->tensors[i].ndim, w->tensors[i].ne, w->tensors[i].data,
                                 w->tensors[i].nbytes, &err);
    CHECK(mmspcl_writer_save(wr, TMP "/nomask.mmw", NULL, NULL, &err) == MMSPCL_OK, "nomask: %s", err.msg);
    mmspcl_writer_free(wr);
    mmspcl_weights_free(w);
}

static void refused(const char *what, const char *cmd, const char *want) {
    char *out = NULL;
    int rc = test_run(&out, "%s 2>&1", cmd);
    CHECK(rc != 0 && out && strstr(out, want) && !strstr(out, "] step ") && access(TMP "/bad.mmw", F_OK) != 0 && no_tmp_left(),
          "%s: exit %d, expected a message with '%s' before any step, nothing written: %s", what, rc, want, out ? out : "");
    if (out) {
        char *nl = strstr(out, "mmspcl train: ");
        if (nl) printf("  refused, %s: %.*s\n", what, (int)strcspn(nl, "\n"), nl);
    }
    free(out);
}

static void test_refusals(void) {
    write_no_mask();
    CHECK(test_run(NULL, "build/mmspcl-convert tests/data/clip-tiny " TMP "/clip.mmw --quiet 2>/dev/null && "
                         "build/mmspcl-convert tests/data/roberta-tiny " TMP "/notok.mmw --quiet 2>/dev/null") == 0, "convert");
    refused("a CLIP file", "build/mmspcl train --init " TMP "/clip.mmw --meld " MELD " --limit 3 --max-len 64 -o " TMP "/bad.mmw",
            "not a roberta encoder");
    refused("no tokenizer", "build/mmspcl train --init " TMP "/notok.mmw --meld " MELD " --limit 3 --max-len 64 -o " TMP "/bad.mmw",
            "tokenizer");
    refused("no <mask>", "build/mmspcl train --init " TMP "/nomask.mmw --meld " MELD " --limit 3 --max-len 64 -o " TMP "/bad.mmw",
            "<mask>");
    refused("--max-len 256 on 66 positions", "build/mmspcl train --init " TMP "/tiny.mmw --meld " MELD " --limit 3 -o " TMP "/bad.mmw",
            "position table");
    refused("-o in a missing folder", "build/mmspcl train --init " TMP "/tiny.mmw --meld " MELD " --limit 3 --max-len 64 -o " TMP
            "/missing/bad.mmw", TMP "/missing");
    {   /* SIGINT in the middle of a run: no .tmp of the model or of its checkpoint stays */
        int rc = test_run(NULL, "(" BASE " --epochs 400 --patience 0 --curriculum 0 -o " TMP "/int.mmw 2>/dev/null & p=$!; "
                                "sleep 0.6; kill -INT $p; wait $p; exit 0)");
        CHECK(rc == 0 && access(TMP "/int.mmw", F_OK) != 0 && no_tmp_left(), "an interrupted run leaves no .tmp and no model");
    }
}

int main(void) {
    char *log = NULL, *a = NULL, *b = NULL;
    double l[64], first = 0, last = 0;
    size_t na = 0, nb = 0;
    int n, i, rc;
    if (access(MELD "/train_sent_emo.csv", R_OK) != 0) {
        printf("  (skipped: " MELD " not available)\n");
        return TEST_END();
    }
    CHECK(test_run(NULL, "rm -rf " TMP " && mkdir -p " TMP "/src && cp tests/data/roberta-tiny-bf16/config.json "
                         "tests/data/roberta-tiny-bf16/model.safetensors tests/data/finetune/tokenizer-300/vocab.json "
                         "tests/data/finetune/tokenizer-300/merges.txt " TMP "/src/ && build/mmspcl-convert " TMP "/src " TMP
                         "/tiny.mmw --quiet") == 0, "converting roberta-tiny-bf16 with its tokenizer");
    /* 1. the loss falls; layout; classify / eval */
    rc = test_run(&log, RUN " -o " TMP "/ft.mmw --q8 " TMP "/ft-q8.mmw 2>&1");
    n = step_losses(log, l, 64);
    for (i = 0; i < 6 && n == 24; i++) { first += l[i] / 6; last += l[n - 6 + i] / 6; }
    CHECK(rc == 0 && n == 24, "24 steps ran (exit %d, %d steps): %s", rc, n, rc ? log : "");
    CHECK(last < first - 0.05, "the SPCL loss falls: mean of the first 6 steps %.4f, of the last 6 %.4f", first, last);
    printf("  24 steps on 3 dialogues: spcl loss %.4f (steps 1-6) -> %.4f (steps 19-24)\n", first, last);
    CHECK(no_tmp_left(), "no .tmp left after a run");
    free(log);
    test_layout();
    test_cli_accepts();
    /* 2. threads */
    rc = test_run(NULL, "%s", "OMP_NUM_THREADS=2 " RUN " -o " TMP "/ft2.mmw --no-checkpoint 2>/dev/null");
    a = (char *)test_read_file(TMP "/ft.mmw", &na);
    b = (char *)test_read_file(TMP "/ft2.mmw", &nb);
    CHECK(rc == 0 && a && b && na == nb && !memcmp(a, b, na), "one thread and two: the same bytes");
    free(a); free(b);
    {
        char *o1 = NULL, *o2 = NULL, *p1, *p2;
        int same = 1, k = 0;
        test_run(&o1, BASE " --lr 3e-3 --warmup 0 --epochs 20 --curriculum 0 --patience 0 --max-steps 6 --no-checkpoint -o " TMP
                      "/mb0.mmw 2>&1");
        test_run(&o2, BASE " --lr 3e-3 --warmup 0 --epochs 20 --curriculum 0 --patience 0 --max-steps 6 --no-checkpoint --micro-batch 3 -o "
                      TMP "/mb3.mmw 2>&1");
        for (p1 = o1, p2 = o2; p1 && p2 && (p1 = strstr(p1, "] step ")) && (p2 = strstr(p2, "] step ")); p1++, p2++, k++) {
            const size_t n1 = strcspn(p1, "\n"), n2 = strcspn(p2, "\n");
            same &= n1 == n2 && !strncmp(p1, p2, n1);
        }
        CHECK(k == 6 && same, "--micro-batch 3 of --batch 8: the same %d steps' losses as the whole batch", k);
        free(o1); free(o2);
    }
    /* 3. resume: uninterrupted 3 epochs == stopped by --max-steps after the first, resumed */
    {
        char *o = NULL, *p;
        int steps0 = 0;
        rc = test_run(&o, BASE " --epochs 3 -o " TMP "/full.mmw 2>&1");
        p = o ? strstr(o, "SPCL epoch 1/3: ") : NULL;
        if (p && (p = strstr(p, " prompts (curriculum), "))) steps0 = atoi(p + 23);
        CHECK(rc == 0 && steps0 > 0, "uninterrupted run (%d steps in its first epoch)", steps0);
        free(o);
        rc = test_run(NULL, BASE " --epochs 3 --max-steps %d -o " TMP "/cut.mmw 2>/dev/null", steps0);
        CHECK(rc == 0 && access(TMP "/cut.mmw.ckpt", R_OK) == 0, "the cut run wrote its checkpoint");
        rc = test_run(NULL, BASE " --epochs 3 --resume " TMP "/cut.mmw.ckpt -o " TMP "/resumed.mmw 2>/dev/null");
        a = (char *)test_read_file(TMP "/full.mmw", &na);
        b = (char *)test_read_file(TMP "/resumed.mmw", &nb);
        CHECK(rc == 0 && a && b && na == nb && !memcmp(a, b, na), "resumed after epoch 1: the bytes of the uninterrupted run");
        free(a); free(b);
    }
    /* 4. refusals */
    test_refusals();
    return TEST_END();
}
