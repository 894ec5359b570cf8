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
      an -o in a missing folder; an interrupted run leaves no .tmp;
   5. joint training (--fusion linear and prune, --features: a folder in mmspcl extract's layout
      with an 88-value audio vector per train and dev row that carries the emotion, a few rows
      left out): the SPCL loss falls, the file has the joint head (meld.joint.*) and the
      text-only parts, mmspcl_classifier_classify_media runs the joint head (the audio changes
      the answer; a turn without audio gets zeros), and so does its --q8 copy, classify (text only, and --media on two
      WAVs) and eval take the file, a resumed
      run writes the uninterrupted run's bytes, and --fusion without --features, an unknown kind
      and a pruning option of another kind are refused before any step.
   Needs ../shared/data/meld (skipped without it). */
#define MMSPCL_IMPLEMENTATION
#include "mmspcl.h"
#define MELD_CSV_IMPLEMENTATION
#include "tools/train/meld_csv.h"
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


/* ---- 5. joint training with a fusion head ---------------------------------------------------- */
#define FEATS TMP "/feats"
#define JDIM 88   /* the width of eGeMAPS, which mmspcl classify --media computes */

/* the audio vector of a row of emotion e: 1.5 at e, small noise elsewhere */
static void audio_of(int e, int64_t d, int64_t u, float *a) {
    int k;
    for (k = 0; k < JDIM; k++) a[k] = (k == e ? 1.5f : 0.0f) + 0.1f * (float)(((d * 31 + u * 7 + k * 13) % 11) - 5) / 5.0f;
}

/* FEATS: t-less extract folder of every train and dev row (but every 10th dev row and train
   dialogue 0's utterance 2: no features) */
static int write_feats(void) {
    static const char *const csv[2] = {MELD "/train_sent_emo.csv", MELD "/dev_sent_emo.csv"};
    static const char *const sp[2] = {"train", "dev"};
    FILE *fa, *fl, *fs, *fsp, *fr, *fm;
    meld_csv c;
    mmspcl_error err;
    int k, i, n = 0, bad = 0;
    if (test_run(NULL, "mkdir -p " FEATS)) return -1;
    fa = fopen(FEATS "/a.f32", "wb"); fl = fopen(FEATS "/labels.txt", "w"); fs = fopen(FEATS "/sentiment.txt", "w");
    fsp = fopen(FEATS "/split.txt", "w"); fr = fopen(FEATS "/rows.tsv", "w");
    if (!fa || !fl || !fs || !fsp || !fr) bad = 1;
    for (k = 0; k < 2 && !bad; k++) {
        if (meld_csv_load(csv[k], &c, &err)) { bad = 1; break; }
        for (i = 0; i < c.n_rows; i++) {
            const meld_row *r = &c.rows[i];
            float a[JDIM];
            if ((k == 1 && i % 10 == 3) || (k == 0 && r->dialogue_id == 0 && r->utterance_id == 2)) continue;
            audio_of(r->emotion, r->dialogue_id, r->utterance_id, a);
            bad |= fwrite(a, sizeof a, 1, fa) != 1;
            fprintf(fl, "%d\n", r->emotion);
            fprintf(fs, "%d\n", r->sentiment);
            fprintf(fsp, "%s\n", sp[k]);
            fprintf(fr, "%lld\t%lld\n", (long long)r->dialogue_id, (long long)r->utterance_id);
            n++;
        }
        meld_csv_free(&c);
    }
    if (fa) fclose(fa);
    if (fl) fclose(fl);
    if (fs) fclose(fs);
    if (fsp) fclose(fsp);
    if (fr) fclose(fr);
    if (bad || !(fm = fopen(FEATS "/extract.txt", "w"))) return -1;
    fprintf(fm, "rows %d\ndim.t 0\ndim.a %d\ndim.v 0\n", n, JDIM);
    fclose(fm);
    return 0;
}

/* the joint file: layout, classify_media with and without audio */
static void joint_layout(const char *path, int kind, int pruned) {
    static const mmspcl_turn turns[3] = {{"Ross", "Hi."}, {"Rachel", "Oh no, what happened?"}, {"Ross", "I got the job!"}};
    mmspcl_classifier c;
    mmspcl_error err;
    float au[3 * JDIM], emo[3 * 7], emo2[3 * 7], sent[3 * 3], sum = 0;
    unsigned char mods[3] = {MMSPCL_MOD_A, MMSPCL_MOD_A, 0};
    int i, differ = 0;
    if (mmspcl_classifier_load(&c, path, &err)) { CHECK(0, "%s loads: %s", path, err.msg); return; }
    CHECK(c.has_joint && c.joint_kind == kind && c.joint_prune == pruned && c.joint_dim == 32 && c.audio_dim == JDIM && c.joint_protos &&
          c.joint_has_head[0] && c.joint_has_head[1] && c.protos && !c.lin_w[0] && c.audio_features && !strcmp(c.audio_features, "egemaps"),
          "%s: the joint head (fusion kind %d%s, z 32, audio %d, egemaps), meld.protos of t, no linear heads on t", path, kind,
          pruned ? " after pruning" : "", c.audio_dim);
    CHECK(!strcmp(mmspcl_classifier_default_head(&c, 0), "protos"), "text-only default: protos");
    for (i = 0; i < 3; i++) audio_of(i == 0 ? 0 : i == 1 ? 5 : 1, 1000, i, au + i * JDIM);
    CHECK(!mmspcl_classifier_classify_media(&c, turns, 3, au, NULL, mods, emo, sent, &err), "classify_media: %s", err.msg);
    for (i = 0; i < 21; i++) sum += emo[i];
    for (i = 0; i < 3 * JDIM; i++) au[i] = -au[i] * 3.0f;
    CHECK(!mmspcl_classifier_classify_media(&c, turns, 3, au, NULL, mods, emo2, NULL, &err), "classify_media again: %s", err.msg);
    for (i = 0; i < 14; i++) differ |= fabsf(emo[i] - emo2[i]) > 1e-6f;
    for (i = 14; i < 21; i++) differ |= (fabsf(emo[i] - emo2[i]) > 1e-6f) << 1;   /* turn 2 has no audio: zeros both times */
    CHECK(fabsf(sum - 3.0f) < 1e-4f && differ == 1, "joint probabilities sum to 1 (%.6f); other audio, other answer; no audio, the same",
          sum / 3);
    mmspcl_classifier_free(&c);
}

static void test_joint(void) {
    char *log = NULL, *a = NULL, *b = NULL;
    double l[64], first = 0, last = 0;
    size_t na = 0, nb = 0;
    char l_path[256];
    int n, i, rc;
    CHECK(write_feats() == 0, "writing " FEATS);
    rc = test_run(&log, RUN " --fusion linear --features " FEATS " --fusion-dim 32 -o " TMP "/joint.mmw --q8 " TMP "/joint-q8.mmw 2>&1");
    n = step_losses(log, l, 64);
    for (i = 0; i < 6 && n == 24; i++) { first += l[i] / 6; last += l[n - 6 + i] / 6; }
    CHECK(rc == 0 && n == 24 && strstr(log, "1 of ") && strstr(log, " train and "), "joint: 24 steps ran, one train row without features "
          "(exit %d, %d steps): %s", rc, n, rc ? log : "");
    CHECK(last < first - 0.05, "joint: the SPCL loss on z falls: %.4f (steps 1-6) -> %.4f (steps 19-24)", first, last);
    printf("  joint (--fusion linear, audio 88 -> z 32): spcl loss %.4f (steps 1-6) -> %.4f (steps 19-24)\n", first, last);
    free(log);
    joint_layout(TMP "/joint.mmw", 0, 0);
    joint_layout(TMP "/joint-q8.mmw", 0, 0);   /* the encoder quantized, the joint head f32 */
    rc = test_run(&log, RUN " --fusion prune --prune-k 8 --prune-proj 16 --features " FEATS " --fusion-dim 32 --no-checkpoint -o " TMP
                  "/jprune.mmw 2>&1");
    CHECK(rc == 0 && step_losses(log, l, 64) == 24, "joint, --fusion prune: 24 steps (exit %d): %s", rc, rc ? log : "");
    free(log);
    joint_layout(TMP "/jprune.mmw", 0, 1);
    for (i = 1; i < 3; i++) {   /* MulT and MBT over the single vectors: train a few steps, run the file */
        rc = test_run(&log, RUN " --fusion %s --features " FEATS " --fusion-dim 32 --max-steps 3 --no-checkpoint -o " TMP "/jk%d.mmw 2>&1",
                      i == 1 ? "mult" : "bottleneck", i);
        CHECK(rc == 0, "joint, --fusion %s (exit %d): %s", i == 1 ? "mult" : "bottleneck", rc, rc ? log : "");
        free(log);
        snprintf(l_path, sizeof l_path, TMP "/jk%d.mmw", i);
        joint_layout(l_path, i, 0);
    }
    rc = test_run(&log, "build/mmspcl classify -m " TMP "/joint.mmw examples/dialogue.txt >/dev/null 2>&1 && "
                        "build/mmspcl eval -m " TMP "/joint.mmw --csv " TMP "/dev30.csv 2>&1 | tail -n 1");
    CHECK(rc == 0 && log && !strncmp(log, "weighted_f1=", 12), "classify and eval take the joint file (text only): %s", log ? log : "");
    free(log);
    test_write_file(TMP "/dlg.csv", "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID\n1,Hello there.,Dana,neutral,"
                    "neutral,0,0\n2,Where is the coffee?,Leo,neutral,neutral,0,1\n", 155);
    rc = test_run(&log, "mkdir -p " TMP "/clips && cp tests/data/audio/tone_150_16k_f32_stereo.wav " TMP "/clips/dia0_utt0.wav && "
                        "cp tests/data/audio/tone_220_48k_s24.wav " TMP "/clips/dia0_utt1.wav && build/mmspcl classify -m " TMP
                        "/joint.mmw --media " TMP "/clips --json " TMP "/dlg.csv 2>&1");
    CHECK(rc == 0 && log && strstr(log, "\"emotion\"") && strstr(log, "\"sentiment\""), "classify --media runs the joint head on two WAVs: %s",
          log ? log : "");
    free(log);
    {   /* resumed after epoch 1: the bytes of the uninterrupted run */
        char *o = NULL, *p;
        int steps0 = 0;
        rc = test_run(&o, BASE " --epochs 2 --fusion linear --features " FEATS " -o " TMP "/jfull.mmw 2>&1");
        p = o ? strstr(o, "SPCL epoch 1/2: ") : NULL;
        if (p && (p = strstr(p, " prompts (curriculum), "))) steps0 = atoi(p + 23);
        free(o);
        rc |= test_run(NULL, BASE " --epochs 2 --fusion linear --features " FEATS " --max-steps %d -o " TMP "/jcut.mmw 2>/dev/null", steps0);
        rc |= test_run(NULL, BASE " --epochs 2 --fusion linear --features " FEATS " --resume " TMP "/jcut.mmw.ckpt -o " TMP
                             "/jres.mmw 2>/dev/null");
        a = (char *)test_read_file(TMP "/jfull.mmw", &na);
        b = (char *)test_read_file(TMP "/jres.mmw", &nb);
        CHECK(rc == 0 && steps0 > 0 && a && b && na == nb && !memcmp(a, b, na), "joint, resumed after epoch 1: the uninterrupted bytes");
        free(a); free(b);
    }
    refused("--fusion without --features", BASE " --fusion linear -o " TMP "/bad.mmw", "needs --features");
    refused("--fusion nope", BASE " --fusion nope --features " FEATS " -o " TMP "/bad.mmw", "expected linear, mult, bottleneck or prune");
    refused("--prune-proj with --fusion linear", BASE " --fusion linear --prune-proj 8 --features " FEATS " -o " TMP "/bad.mmw",
            "options of --fusion prune");
    refused("--features not an extract folder", BASE " --fusion mult --features " TMP "/src -o " TMP "/bad.mmw", TMP "/src/extract.txt");
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
    /* 5. joint training */
    test_joint();
    return TEST_END();
}
