/* test_media: audio and video in the main job (mmspcl classify --media, mmspcl.h 13.6) and the
   dataset extraction (mmspcl extract).
   1. classify --media on a model derived from weights/meld-text-q8_0.mmw with a hand-set audio
      head (meld_write_media_heads): an MSVE emotion head over t and the 88 eGeMAPS whose
      combination t says "neutral" with logit 3 and whose combination a says "anger" with
      logit relu(F0 mean in semitones - 30). The F0 of a pure tone is known without our code:
      12 log2(f / 27.5 Hz) semitones, 36 for 220 Hz, 29.37 for 150 Hz; so the 220 Hz turn is
      anger with p = e^6 / (e^6 + e^3 + 5) and the 150 Hz turn neutral with
      p = e^3 / (e^3 + 6), and a turn without its WAV (--missing text) neutral as the 150 Hz one.
      The messages: a model without media heads, a missing clip, --clip / --missing misuse.
   2. extract on a CSV of 6 rows in 3 dialogues with clips made from tests/data (tones, speech,
      test images): the files and their sizes; a's rows are encode-audio's, v's encode-image's
      and t's the classifier's own t view (mmspcl_classifier_features); shards 1/2 + 2/2 joined
      are byte for byte the unsharded run, and so is a run stopped by --max-rows, its .part
      files then given a torn tail (as a kill mid-write leaves them), and resumed; --missing
      skip, another job in the folder, option errors; examples/train_msve reads the output;
      train --media on the train + dev folders (--join DIR...) gives a model whose heads take
      t, a and v, and classify --media --clip votes with all three. */
#define MMSPCL_IMPLEMENTATION
#define MMSPCL_TRAIN_IMPLEMENTATION
#include "mmspcl.h"
#include "mmspcl_train.h"
#include "tests/test.h"
#include "tools/train/meld_recipe.c"   /* meld_write_media_heads */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TMP "build/tests/media"
#define MM "build/mmspcl"
#define BASE "weights/meld-text-q8_0.mmw"
#define AUDIO_MODEL TMP "/audio.mmw"
#define TONE220 "tests/data/audio/tone_220_48k_s24.wav"
#define TONE150 "tests/data/audio/tone_150_16k_f32_stereo.wav"

static char *g_out, *g_err;   /* standard output and error of the last sh() */
static int g_hidden;          /* the width of BASE's t view (its encoder's hidden size), read in main */

/* a shell command (stdin /dev/null), its stdout and stderr kept; returns the exit status */
#define sh(...) test_capture(&g_out, &g_err, TMP "/stderr.txt", __VA_ARGS__)

/* M's parameter `name` [out][in]: element (r, c) set to v */
static void set_param(mmspcl_msve_model *M, const char *name, int r, int c, double v) {
    const mmspcl_param_info *p = mmspcl_params_find(&M->P, name);
    const int64_t in = p && p->ndim == 2 ? p->shape[1] : 1;
    CHECK(p != NULL && (int64_t)r * in + c < (int64_t)p->n, "no parameter %s (%d, %d)", name, r, c);
    if (p && (int64_t)r * in + c < (int64_t)p->n) M->P.w[p->off + (size_t)r * (size_t)in + (size_t)c] = v;
}

/* the derived model of the top comment */
static int make_audio_model(void) {
    mmspcl_msve_cfg cfg;
    mmspcl_msve_model M;
    mmspcl_error err;
    size_t k;
    int ok;
    memset(&cfg, 0, sizeof cfg);
    cfg.n_classes = MMSPCL_NUM_EMOTIONS;
    cfg.dims[0] = g_hidden;            /* the shipped model's hidden size */
    cfg.dims[1] = MMSPCL_EGEMAPS_N;
    cfg.hidden = 1;
    cfg.act = MMSPCL_ACT_RELU;
    cfg.combos = MMSPCL_COMBO(MMSPCL_MOD_T) | MMSPCL_COMBO(MMSPCL_MOD_A);
    cfg.depth[MMSPCL_MOD_T] = cfg.depth[MMSPCL_MOD_A] = 2;   /* the hand weights below are 2-layer MLPs */
    if (mmspcl_msve_model_create(&M, &cfg, 1, &err)) { CHECK(0, "msve create: %s", err.msg); return -1; }
    for (k = 0; k < M.P.n; k++) M.P.w[k] = 0;
    set_param(&M, "t.fc1.bias", 0, 0, 1.0);      /* hidden 1 */
    set_param(&M, "t.fc2.weight", 0, 0, 3.0);    /* neutral: 3 */
    set_param(&M, "a.fc1.weight", 0, 0, 1.0);    /* F0semitoneFrom27.5Hz_sma3nz_amean */
    set_param(&M, "a.fc1.bias", 0, 0, -30.0);
    set_param(&M, "a.fc2.weight", 6, 0, 1.0);    /* anger: relu(F0 - 30) */
    ok = meld_write_media_heads(BASE, &M, NULL, "egemaps", AUDIO_MODEL, &err) == MMSPCL_OK;
    CHECK(ok, "meld_write_media_heads: %s", err.msg);
    mmspcl_msve_model_free(&M);
    return ok ? 0 : -1;
}

/* in a classify --json array: the probability object `key` of the n-th object, class `cls` */
static double json_prob(const char *json, int n, const char *key, const char *cls) {
    const char *p = json;
    char pat[64];
    int i;
    for (i = 0; i <= n && p; i++) p = strstr(i ? p + 1 : p, "{\"dialogue\"");
    if (!p) return -1;
    snprintf(pat, sizeof pat, "\"%s\": {", key);
    if (!(p = strstr(p, pat))) return -1;
    snprintf(pat, sizeof pat, "\"%s\": ", cls);
    if (!(p = strstr(p, pat))) return -1;
    return atof(p + strlen(pat));
}

/* the value of string key `key` of the n-th object ("" when absent); returns 0 */
static int json_str(const char *json, int n, const char *key, char *out, size_t cap) {
    const char *p = json, *e;
    char pat[64];
    int i;
    out[0] = 0;
    for (i = 0; i <= n && p; i++) p = strstr(i ? p + 1 : p, "{\"dialogue\"");
    snprintf(pat, sizeof pat, "\"%s\": \"", key);
    if (!p || !(p = strstr(p, pat))) return 0;
    p += strlen(pat);
    e = strchr(p, '"');
    if (e && (size_t)(e - p) < cap) { memcpy(out, p, (size_t)(e - p)); out[e - p] = 0; }
    return 0;
}

static void test_classify_media(void) {
    static const char csv[] = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID\n"
                              "1,Hello there.,Dana,neutral,neutral,0,0\n"
                              "2,Where is the coffee?,Leo,neutral,neutral,0,1\n";
    const double p220 = exp(6.0) / (exp(6.0) + exp(3.0) + 5.0), p150 = exp(3.0) / (exp(3.0) + 6.0);
    char *text_only = NULL, e0[32], e1[32], m0[8], m1[8];
    test_write_file(TMP "/dlg.csv", csv, sizeof csv - 1);
    test_run(NULL, "mkdir -p " TMP "/clips && cp " TONE150 " " TMP "/clips/dia0_utt0.wav && cp " TONE220 " " TMP "/clips/dia0_utt1.wav");
    if (make_audio_model()) return;
    /* the text heads are those of the base model: without --media nothing changes */
    CHECK(sh(MM " classify -m " BASE " --json " TMP "/dlg.csv") == 0, "classify base: %s", g_err);
    text_only = g_out; g_out = NULL;
    CHECK(sh(MM " classify -m " AUDIO_MODEL " --json " TMP "/dlg.csv") == 0 && text_only && !strcmp(g_out, text_only),
          "the derived model classifies text as its base does: %s", g_err);
    json_str(text_only, 1, "emotion", e1, sizeof e1);
    CHECK(strcmp(e1, "anger") != 0, "text alone already says anger for turn 1: the test shows nothing (%s)", e1);
    /* with the clips */
    CHECK(sh(MM " classify -m " AUDIO_MODEL " --media " TMP "/clips --json " TMP "/dlg.csv") == 0, "classify --media: %s", g_err);
    json_str(g_out, 0, "emotion", e0, sizeof e0);
    json_str(g_out, 1, "emotion", e1, sizeof e1);
    json_str(g_out, 0, "modalities", m0, sizeof m0);
    json_str(g_out, 1, "modalities", m1, sizeof m1);
    CHECK(!strcmp(e0, "neutral") && !strcmp(e1, "anger"), "150 Hz turn neutral, 220 Hz turn anger: %s %s", e0, e1);
    CHECK(!strcmp(m0, "ta") && !strcmp(m1, "ta"), "modalities %s %s", m0, m1);
    CHECK(fabs(json_prob(g_out, 0, "emotion_probs", "neutral") - p150) < 0.01, "p(neutral | 150 Hz) %.4f, hand %.4f",
          json_prob(g_out, 0, "emotion_probs", "neutral"), p150);
    CHECK(fabs(json_prob(g_out, 1, "emotion_probs", "anger") - p220) < 0.01, "p(anger | 220 Hz) %.4f, hand %.4f",
          json_prob(g_out, 1, "emotion_probs", "anger"), p220);
    /* no media sentiment head: the text sentiment, unchanged */
    CHECK(fabs(json_prob(g_out, 1, "sentiment_probs", "neutral") - json_prob(text_only, 1, "sentiment_probs", "neutral")) < 1e-4,
          "sentiment comes from the text head");
    /* a missing clip: an error naming it, or with --missing text the turn votes with t alone */
    remove(TMP "/clips/dia0_utt1.wav");
    CHECK(sh(MM " classify -m " AUDIO_MODEL " --media " TMP "/clips " TMP "/dlg.csv") == 1 && strstr(g_err, "dia0_utt1.wav") &&
          strstr(g_err, "--missing text"), "missing clip: %s", g_err);
    CHECK(sh(MM " classify -m " AUDIO_MODEL " --media " TMP "/clips --missing text --json " TMP "/dlg.csv") == 0 &&
          strstr(g_err, "dia0_utt1.wav missing"), "--missing text: %s", g_err);
    json_str(g_out, 1, "emotion", e1, sizeof e1);
    json_str(g_out, 1, "modalities", m1, sizeof m1);
    CHECK(!strcmp(e1, "neutral") && !strcmp(m1, "t") && fabs(json_prob(g_out, 1, "emotion_probs", "neutral") - p150) < 1e-3,
          "turn without its clip: t alone, neutral %.4f (%s %s)", json_prob(g_out, 1, "emotion_probs", "neutral"), e1, m1);
    /* a model without media heads, and option misuse */
    CHECK(sh(MM " classify -m " BASE " --media " TMP "/clips " TMP "/dlg.csv") == 1 && strstr(g_err, "no audio or video head"),
          "base model with --media: %s", g_err);
    CHECK(sh(MM " classify -m " AUDIO_MODEL " --clip x.mmw " TMP "/dlg.csv") == 2 && strstr(g_err, "--media"), "--clip alone: %s", g_err);
    CHECK(sh(MM " classify -m " AUDIO_MODEL " --media " TMP "/clips --missing maybe " TMP "/dlg.csv") == 2 && strstr(g_err, "--missing"),
          "--missing maybe: %s", g_err);
    CHECK(sh(MM " classify -m " AUDIO_MODEL " --media " TMP "/clips --head lr " TMP "/dlg.csv") == 2, "--media with --head: %s", g_err);
    free(text_only);
}

/* ---- 2. extract ---------------------------------------------------------------------------- */
#define EX TMP "/ex"
#define EXA "--csv " EX "/train_x.csv --media " EX "/clips -m " BASE " --clip " EX "/clip.mmw -q"
static const char *const ex_files[] = {"a.f32", "t.f32", "v.f32", "labels.txt", "sentiment.txt", "split.txt", "rows.tsv", "skipped.tsv", "extract.txt"};
#define EX_NF ((int)(sizeof ex_files / sizeof ex_files[0]))

static int same_bytes(const char *a, const char *b) {
    size_t na, nb;
    unsigned char *x = test_read_file(a, &na), *y = test_read_file(b, &nb);
    const int same = x && y && na == nb && !memcmp(x, y, na);
    free(x); free(y);
    return same;
}

/* every output file of folder a equals folder b's */
static int same_outputs(const char *a, const char *b) {
    char pa[256], pb[256];
    int i, ok = 1;
    for (i = 0; i < EX_NF; i++) {
        snprintf(pa, sizeof pa, "%s/%s", a, ex_files[i]);
        snprintf(pb, sizeof pb, "%s/%s", b, ex_files[i]);
        if (!same_bytes(pa, pb)) { fprintf(stderr, "  %s differs from %s\n", pa, pb); ok = 0; }
    }
    return ok;
}

static long fsize(const char *p) { struct stat sb; return stat(p, &sb) == 0 ? (long)sb.st_size : -1; }

static int ex_setup(void) {
    static const char csv[] = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID\n"
                              "1,Hello there.,Dana,neutral,neutral,0,0\n"
                              "2,Where is the coffee?,Leo,anger,negative,0,1\n"
                              "3,I got the job!,Ann,joy,positive,1,0\n"
                              "4,No way!,Bob,surprise,positive,1,1\n"
                              "5,That is sad.,Ann,sadness,negative,1,2\n"
                              "6,I am scared.,Cy,fear,negative,2,0\n";
    static const char *const wav[6] = {"tone_150_16k_f32_stereo", "tone_220_48k_s24", "speech_m_16k", "speech_f_22k", "speech_8k_u8", "tone_300_8k_f64"};
    static const char *const png[6] = {"clip_224_224", "edges97x311_224_224", "thin5x900_224_224", "clip_224_224", "edges97x311_224_224", "thin5x900_224_224"};
    static const int dia[6] = {0, 0, 1, 1, 1, 2}, utt[6] = {0, 1, 0, 1, 2, 0};
    int i, bad = 0;
    test_run(NULL, "mkdir -p " EX "/clips");
    test_write_file(EX "/train_x.csv", csv, sizeof csv - 1);
    test_write_file(EX "/nosplit.csv", csv, sizeof csv - 1);
    for (i = 0; i < 6; i++)
        bad |= test_run(NULL, "cp tests/data/audio/%s.wav " EX "/clips/dia%d_utt%d.wav && cp tests/data/images/clip/%s.png " EX "/clips/dia%d_utt%d.png",
                        wav[i], dia[i], utt[i], png[i], dia[i], utt[i]);
    bad |= test_run(NULL, "build/mmspcl-convert tests/data/clip-tiny " EX "/clip.mmw --quiet");
    CHECK(!bad, "extract fixtures (build/mmspcl-convert built?)");
    return bad ? -1 : 0;
}

/* t.f32 of the unsharded run against the classifier's t view, computed here */
static void ex_check_t(void) {
    mmspcl_classifier m;
    mmspcl_error err;
    mmspcl_turn turns[3] = {{"Ann", "I got the job!"}, {"Bob", "No way!"}, {"Ann", "That is sad."}};
    const int H = g_hidden;
    float *t = (float *)calloc((size_t)3 * (size_t)H, sizeof *t);
    size_t n;
    unsigned char *got = test_read_file(EX "/out/t.f32", &n);
    int i, ok = 0;
    double worst = 0;
    if (t && !mmspcl_classifier_load(&m, BASE, &err) && m.hidden == H && !mmspcl_classifier_features(&m, turns, 3, t, NULL, NULL, &err) &&
        got && n == (size_t)6 * (size_t)H * 4) {
        const float *g = (const float *)got + 2 * H;   /* dialogue 1: rows 2..4 */
        ok = 1;
        for (i = 0; i < 3 * H; i++) if (fabs(g[i] - t[i]) > worst) worst = fabs(g[i] - t[i]);
    }
    CHECK(ok && worst <= 1e-5, "t.f32 rows of dialogue 1 are the classifier's t view: max |diff| %g", worst);
    mmspcl_classifier_free(&m);
    free(got);
    free(t);
}

static void ex_check_run(void) {
    char *lab;
    CHECK(sh(MM " extract " EXA " -o " EX "/out") == 0, "extract: %s", g_err);
    CHECK(fsize(EX "/out/a.f32") == 6 * 88 * 4 && fsize(EX "/out/t.f32") == 6L * g_hidden * 4 && fsize(EX "/out/v.f32") == 6 * 16 * 4 &&
          fsize(EX "/out/skipped.tsv") == 0 && fsize(EX "/out/progress.txt") < 0, "extract: file sizes");
    lab = (char *)test_read_file(EX "/out/labels.txt", NULL);
    CHECK(lab && !strcmp(lab, "0\n6\n1\n3\n2\n4\n"), "labels.txt: %s", lab ? lab : "(none)");
    free(lab);
    lab = (char *)test_read_file(EX "/out/split.txt", NULL);
    CHECK(lab && !strcmp(lab, "train\ntrain\ntrain\ntrain\ntrain\ntrain\n"), "split.txt from the CSV's name");
    free(lab);
    /* a row: encode-audio's bytes (and its F0 mean the tone's 29.37 semitones); v: encode-image's */
    CHECK(sh(MM " encode-audio --wav " EX "/clips/dia1_utt1.wav -o " EX "/a3.f32 && " MM " encode-image -m " EX "/clip.mmw --image " EX
             "/clips/dia1_utt1.png -o " EX "/v3.f32 && dd if=" EX "/out/a.f32 of=" EX "/a3x.f32 bs=352 skip=3 count=1 2>/dev/null && dd if=" EX
             "/out/v.f32 of=" EX "/v3x.f32 bs=64 skip=3 count=1 2>/dev/null") == 0 &&
          same_bytes(EX "/a3.f32", EX "/a3x.f32") && same_bytes(EX "/v3.f32", EX "/v3x.f32"), "row 3 = encode-audio / encode-image: %s", g_err);
    {
        size_t n;
        unsigned char *a = test_read_file(EX "/out/a.f32", &n);
        CHECK(a && n >= 4 && fabs(((const float *)a)[0] - 12.0 * log2(150.0 / 27.5)) < 0.1, "a row 0: F0 mean of the 150 Hz tone");
        free(a);
    }
    ex_check_t();
}

static void ex_check_shards_resume(void) {
    CHECK(sh(MM " extract " EXA " --shard 2/2 -o " EX "/sh") == 0 && sh(MM " extract --join -o " EX "/sh") == 1 && strstr(g_err, "shard 1/2"),
          "--join with shard 1 missing: %s", g_err);
    CHECK(sh(MM " extract " EXA " --shard 1/2 -o " EX "/sh") == 0 && sh(MM " extract --join -o " EX "/sh") == 0, "shard 1/2, join: %s", g_err);
    CHECK(same_outputs(EX "/out", EX "/sh"), "shards 1/2 + 2/2 joined == one run");
    /* interrupted after the first dialogue, torn tails appended, resumed */
    CHECK(sh(MM " extract " EXA " --max-rows 1 -o " EX "/re") == 0 && fsize(EX "/re/extract.txt") < 0 && fsize(EX "/re/progress.txt") > 0 &&
          fsize(EX "/re/a.f32") < 0, "--max-rows 1 stops with the work in .part files: %s", g_err);
    test_run(NULL, "printf 'torn' >> " EX "/re/t.f32.part && printf '9' >> " EX "/re/labels.txt.part && printf 'x' >> " EX "/re/a.f32.part");
    CHECK(sh(MM " extract " EXA " -o " EX "/re") == 0 && same_outputs(EX "/out", EX "/re"), "interrupted + resumed == one run: %s", g_err);
    CHECK(sh(MM " extract " EXA " -o " EX "/re") == 0 && same_outputs(EX "/out", EX "/re"), "a complete folder is left alone: %s", g_err);
    CHECK(sh(MM " extract " EXA " --split dev -o " EX "/re") == 1 && strstr(g_err, "another job"), "another job's folder: %s", g_err);
}

static void ex_check_errors(void) {
    char *s;
    test_run(NULL, "cp -r " EX "/clips " EX "/clips2 && rm " EX "/clips2/dia1_utt1.wav");
    CHECK(sh(MM " extract --csv " EX "/train_x.csv --media " EX "/clips2 -o " EX "/miss") == 1 && strstr(g_err, "dia1_utt1.wav") &&
          strstr(g_err, "--missing skip"), "missing clip: %s", g_err);
    CHECK(sh(MM " extract --csv " EX "/train_x.csv --media " EX "/clips2 --missing skip -q -o " EX "/miss2") == 0 &&
          fsize(EX "/miss2/a.f32") == 5 * 88 * 4 && fsize(EX "/miss2/t.f32") < 0, "--missing skip: %s", g_err);
    s = (char *)test_read_file(EX "/miss2/skipped.tsv", NULL);
    CHECK(s && !strncmp(s, "1\t1\t", 4) && strstr(s, "dia1_utt1.wav"), "skipped.tsv: %s", s ? s : "(none)");
    free(s);
    CHECK(sh(MM " extract --csv " EX "/nosplit.csv --media " EX "/clips -o " EX "/x") == 2 && strstr(g_err, "--split"), "no split: %s", g_err);
    CHECK(sh(MM " extract " EXA " --shard 3/2 -o " EX "/x") == 2 && strstr(g_err, "--shard"), "--shard 3/2: %s", g_err);
    CHECK(sh(MM " extract " EXA " --shard 1/9 -o " EX "/x") == 2 && strstr(g_err, "3 dialogues"), "--shard 1/9: %s", g_err);
    CHECK(sh(MM " extract " EXA " --shard two -o " EX "/x") == 2, "--shard two: %s", g_err);
    CHECK(sh(MM " extract " EXA " --missing maybe -o " EX "/x") == 2 && strstr(g_err, "--missing"), "--missing maybe: %s", g_err);
    CHECK(sh(MM " extract " EXA) == 2 && strstr(g_err, "-o"), "no -o: %s", g_err);
    CHECK(sh(MM " extract --join --csv " EX "/train_x.csv -o " EX "/sh") == 2, "--join with --csv: %s", g_err);
    CHECK(sh(MM " extract --csv - --media " EX "/clips -o " EX "/x") == 2, "--csv -: %s", g_err);
    CHECK(sh(MM " extract --csv " EX "/train_none.csv --media " EX "/clips -o " EX "/x") == 1 && strstr(g_err, "train_none.csv"), "no CSV: %s", g_err);
}

/* the three splits' folders concatenated (docs/MELD.md) train examples/train_msve */
static void ex_check_train_msve(void) {
    FILE *f = fopen("build/examples/train_msve", "rb");
    if (!f) { printf("  (build/examples/train_msve not built: make examples; its check skipped)\n"); return; }
    fclose(f);
    CHECK(sh(MM " extract " EXA " --split dev -o " EX "/dev && " MM " extract " EXA " --split test -o " EX "/test && mkdir -p " EX
             "/all && for f in t.f32 a.f32 v.f32 labels.txt split.txt; do cat " EX "/out/$f " EX "/dev/$f " EX "/test/$f > " EX
             "/all/$f; done") == 0, "three splits: %s", g_err);
    CHECK(sh("build/examples/train_msve --t " EX "/all/t.f32 --dim-t %d --a " EX "/all/a.f32 --dim-a 88 --v " EX "/all/v.f32 --dim-v 16 --labels " EX
             "/all/labels.txt --split " EX "/all/split.txt --classes 7 --epochs 2", g_hidden) == 0 && strstr(g_out, "18 rows (train 6, dev 6, test 6)"),
          "train_msve reads extract's files: %s %s", g_out, g_err);
}

/* train and dev folders joined (--join DIR...), media heads trained on them (train --media),
   then classify --media with video: every turn votes with t, a and v */
static void ex_check_train_media(void) {
    char m[8];
    int i, all = 1;
    CHECK(sh(MM " extract --join -q -o " EX "/tv " EX "/out " EX "/dev") == 0 && fsize(EX "/tv/a.f32") == 12 * 88 * 4 &&
          fsize(EX "/tv/labels.txt") == 24, "--join of two folders: %s", g_err);
    CHECK(sh(MM " extract --join -q -o " EX "/tv2 " EX "/out " EX "/sh/shard-1-of-2") == 1 && strstr(g_err, "one shard"),
          "--join of a lone shard: %s", g_err);
    CHECK(sh(MM " extract --join -q -o " EX "/out " EX "/out " EX "/dev") == 2, "--join into one of its inputs: %s", g_err);
    /* all or nothing: a folder where a later file goes is refused before any file is written; the
       files an earlier run left stay byte for byte, and no manifest, .part or .tmp file appears */
    test_run(NULL, "mkdir -p " EX "/tv3/sentiment.txt " EX "/nx/labels.txt");
    test_write_file(EX "/tv3/a.f32", "earlier", 7);
    test_write_file(EX "/earlier", "earlier", 7);
    CHECK(sh(MM " extract --join -q -o " EX "/tv3 " EX "/out " EX "/dev") == 1 && strstr(g_err, "sentiment.txt"),
          "--join with a folder at OUTDIR/sentiment.txt: %s", g_err);
    CHECK(same_bytes(EX "/tv3/a.f32", EX "/earlier") && fsize(EX "/tv3/labels.txt") < 0 && fsize(EX "/tv3/extract.txt") < 0 &&
          test_run(NULL, "ls " EX "/tv3 | grep -q tmp") != 0, "--join failed: an earlier file changed, or a new one left");
    CHECK(sh(MM " extract " EXA " -o " EX "/nx") == 1 && strstr(g_err, "labels.txt"), "extract with a folder at OUTDIR/labels.txt: %s", g_err);
    CHECK(fsize(EX "/nx/a.f32") < 0 && fsize(EX "/nx/a.f32.part") < 0 && fsize(EX "/nx/progress.txt") < 0,
          "extract refused: files were written");
    CHECK(sh(MM " train --media " EX "/tv -m " AUDIO_MODEL " -o " EX "/x.mmw") == 1 && strstr(g_err, "t view"),
          "features of another model refused: %s", g_err);
    CHECK(sh(MM " train --media " EX "/tv -m " BASE " -o " EX "/av.mmw --epochs 3") == 0 && strstr(g_err, "emotion head over t+a+v"),
          "train --media: %s", g_err);
    CHECK(sh(MM " classify -m " EX "/av.mmw --media " EX "/clips " EX "/train_x.csv") == 2 && strstr(g_err, "--clip"),
          "a video head without --clip: %s", g_err);
    CHECK(sh(MM " classify -m " EX "/av.mmw --media " EX "/clips --clip " EX "/clip.mmw --json " EX "/train_x.csv") == 0,
          "classify with audio and video: %s", g_err);
    for (i = 0; i < 6; i++) { json_str(g_out, i, "modalities", m, sizeof m); all &= !strcmp(m, "tav"); }
    CHECK(all, "every turn voted with t, a and v");
    CHECK(sh(MM " classify -m " EX "/av.mmw --media " EX "/clips --missing text --json " EX "/train_x.csv") == 0 &&
          strstr(g_err, "video head goes unused") && json_str(g_out, 0, "modalities", m, sizeof m) == 0 && !strcmp(m, "ta"),
          "no --clip with --missing text: votes with t and a: %s", g_err);
    /* the paper's final model leaves out a, v and av; depths from the list, the head in the file */
    CHECK(sh(MM " train --media " EX "/tv -m " BASE " -o " EX "/av2.mmw --epochs 2 --combos t,ta,tv,tav --depths tav=2") == 0,
          "train --media --combos t,ta,tv,tav: %s", g_err);
    {
        mmspcl_weights *w = NULL;
        mmspcl_msve h;
        mmspcl_error err;
        CHECK(mmspcl_weights_open(&w, EX "/av2.mmw", &err) == MMSPCL_OK && mmspcl_msve_load(&h, w, "meld.media.emotion", &err) == MMSPCL_OK &&
              h.combos == (MMSPCL_COMBO(1) | MMSPCL_COMBO(3) | MMSPCL_COMBO(5) | MMSPCL_COMBO(7)) && h.depth[1] == 1 && h.depth[5] == 2 &&
              h.depth[7] == 2 && h.hidden == 100, "--combos / --depths reach the file: combos 0x%x, depths %d %d %d", h.combos, h.depth[1],
              h.depth[5], h.depth[7]);
        mmspcl_weights_free(w);
    }
    CHECK(sh(MM " train --media " EX "/tv -m " BASE " -o " EX "/av3.mmw --combos t,tt") == 2 && strstr(g_err, "'tt' repeats 't'") &&
          fsize(EX "/av3.mmw") < 0, "a bad --combos is a usage error: %s", g_err);
    CHECK(sh(MM " train --media " EX "/tv -m " BASE " -o " EX "/av3.mmw --depths tav=4") == 2 && strstr(g_err, "--depths"),
          "a bad --depths is a usage error: %s", g_err);
}

static void test_extract(void) {
    if (ex_setup()) return;
    ex_check_run();
    ex_check_shards_resume();
    ex_check_errors();
    ex_check_train_msve();
    ex_check_train_media();
}

int main(void) {
    FILE *f = fopen(MM, "rb");
    CHECK(f != NULL, "%s must be built (make test builds it)", MM);
    if (!f) return TEST_END();
    fclose(f);
    {
        mmspcl_classifier m;
        mmspcl_error err;
        CHECK(mmspcl_classifier_load(&m, BASE, &err) == MMSPCL_OK, "%s: %s", BASE, err.msg);
        g_hidden = m.hidden;
        mmspcl_classifier_free(&m);
        if (g_hidden <= 0) return TEST_END();
    }
    test_run(NULL, "rm -rf " TMP " && mkdir -p " TMP);
    test_classify_media();
    test_extract();
    free(g_out);
    free(g_err);
    return TEST_END();
}
