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
   2. extract (below). */
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

/* a shell command (stdin /dev/null), its stdout and stderr kept; returns the exit status */
static int sh(const char *fmt, ...) TEST_PRINTF(1, 2);
static int sh(const char *fmt, ...) {
    char cmd[3500];
    va_list ap;
    int rc;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    free(g_out);
    free(g_err);
    rc = test_run(&g_out, "(%s) < /dev/null 2> " TMP "/stderr.txt", cmd);
    if (!g_out) g_out = (char *)calloc(1, 1);
    g_err = (char *)test_read_file(TMP "/stderr.txt", NULL);
    if (!g_err) g_err = (char *)calloc(1, 1);
    return rc;
}

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
    cfg.dims[0] = 128;                 /* the shipped model's hidden size */
    cfg.dims[1] = MMSPCL_EGEMAPS_N;
    cfg.hidden = 1;
    cfg.act = MMSPCL_ACT_RELU;
    cfg.combos = MMSPCL_COMBO(MMSPCL_MOD_T) | MMSPCL_COMBO(MMSPCL_MOD_A);
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

/* the value of string key `key` of the n-th object */
static void json_str(const char *json, int n, const char *key, char *out, size_t cap) {
    const char *p = json, *e;
    char pat[64];
    int i;
    out[0] = 0;
    for (i = 0; i <= n && p; i++) p = strstr(i ? p + 1 : p, "{\"dialogue\"");
    snprintf(pat, sizeof pat, "\"%s\": \"", key);
    if (!p || !(p = strstr(p, pat))) return;
    p += strlen(pat);
    e = strchr(p, '"');
    if (e && (size_t)(e - p) < cap) { memcpy(out, p, (size_t)(e - p)); out[e - p] = 0; }
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

int main(void) {
    FILE *f = fopen(MM, "rb");
    CHECK(f != NULL, "%s must be built (make test builds it)", MM);
    if (!f) return TEST_END();
    fclose(f);
    test_run(NULL, "rm -rf " TMP " && mkdir -p " TMP);
    test_classify_media();
    free(g_out);
    free(g_err);
    return TEST_END();
}
