/* mmspcl classify -m MODEL [options] FILE|-

   FILE is a dialogue, one "Speaker: utterance" per line (a line without "Speaker:" gets the
   speaker "Speaker"; a blank line starts a new dialogue; lines starting with # are comments),
   or a MELD CSV (recognised by a header line with Utterance and Speaker columns, in any order,
   a UTF-8 BOM allowed), or - for standard input. Prints every utterance with its emotion,
   sentiment and their confidences (softmax probabilities of the heads); --json prints one JSON
   array of objects instead. --media DIR adds each turn's audio (DIR/diaX_uttY.wav -> eGeMAPS)
   and video (DIR/diaX_uttY.png -> CLIP, with --clip) for the model's media heads (mmspcl.h,
   13.6); X, Y are the CSV's Dialogue_ID and Utterance_ID, or in a text file the dialogue's and
   the turn's index from 0. */
#include "mmspcl.h"
#include "tools/train/meld_csv.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "media.h"

#define CMD "classify"

static int best_of(const float *p, int C) {
    int c, b = 0;
    for (c = 1; c < C; c++) if (p[c] > p[b]) b = c;
    return b;
}

/* 1 when the first record of t (a UTF-8 BOM skipped) is a CSV header with an Utterance and a
   Speaker column: MELD's main and dyadic splits, or any CSV with those columns. */
static int is_meld_csv(const char *t, size_t n) {
    size_t i = 0;
    int have_u = 0, have_s = 0;
    if (n >= 3 && !memcmp(t, "\xEF\xBB\xBF", 3)) i = 3;
    for (;;) {
        char field[32];
        size_t k = 0;
        int over = 0;
        if (i < n && t[i] == '"') {   /* quoted: "" is a quote, newlines belong to the field */
            for (i++; i < n; i++) {
                if (t[i] == '"' && (i + 1 >= n || t[i + 1] != '"')) { i++; break; }
                if (t[i] == '"') i++;
                if (k + 1 < sizeof field) field[k++] = t[i]; else over = 1;
            }
        }
        for (; i < n && t[i] != ',' && t[i] != '\n' && t[i] != '\r'; i++)
            if (k + 1 < sizeof field) field[k++] = t[i]; else over = 1;
        field[k] = 0;
        if (!over && !strcmp(field, "Utterance")) have_u = 1;
        if (!over && !strcmp(field, "Speaker")) have_s = 1;
        if (i < n && t[i] == ',') { i++; continue; }
        break;
    }
    return have_u && have_s;
}

/* the input, as turns grouped in dialogues */
typedef struct classify_input {
    meld_csv csv;
    mmspcl_dialogues dlg;
    int have_csv, have_dlg, n, n_dlg;
    mmspcl_turn *turns;
    int *dstart;
} classify_input;

/* the clip names of turn i: MELD's ids from a CSV, indices from 0 in a text file */
static void input_ids(const classify_input *in, int d, int i, long long *dia, long long *utt) {
    if (in->have_csv) { *dia = (long long)in->csv.rows[i].dialogue_id; *utt = (long long)in->csv.rows[i].utterance_id; }
    else { *dia = d; *utt = i - in->dstart[d]; }
}

static int input_parse(classify_input *in, const char *text, size_t len, const char *file, const char *format) {
    mmspcl_error err;
    int i, d;
    const int csv = !strcmp(format, "csv") || (!strcmp(format, "auto") && is_meld_csv(text, len));
    memset(in, 0, sizeof *in);
    if (csv) {
        if (meld_csv_parse(text, len, !strcmp(file, "-") ? "standard input" : file, &in->csv, &err)) return cli_fail(CMD, "%s", err.msg);
        in->have_csv = 1;
        in->n = in->csv.n_rows;
        in->n_dlg = in->csv.n_dialogues;
        in->turns = (mmspcl_turn *)malloc(sizeof *in->turns * (size_t)(in->n + 1));
        in->dstart = (int *)malloc(sizeof(int) * (size_t)(in->n_dlg + 1));
        if (!in->turns || !in->dstart) return cli_fail(CMD, "out of memory");
        for (i = 0; i < in->n; i++) { in->turns[i].speaker = in->csv.rows[i].speaker; in->turns[i].text = in->csv.rows[i].utterance; }
        for (d = 0; d <= in->n_dlg; d++) in->dstart[d] = in->csv.dialogue_start[d];
    } else {
        if (mmspcl_dialogues_parse(text, len, &in->dlg, &err)) return cli_fail(CMD, "%s", err.msg);
        in->have_dlg = 1;
        in->n = in->dlg.n_turns;
        in->n_dlg = in->dlg.n_dialogues;
        in->turns = in->dlg.turns;
        in->dstart = in->dlg.start;
    }
    if (in->n == 0) return cli_fail(CMD, "%s holds no utterances", !strcmp(file, "-") ? "standard input" : file);
    return 0;
}

static void input_free(classify_input *in) {
    if (in->have_csv) { meld_csv_free(&in->csv); free(in->turns); free(in->dstart); }
    if (in->have_dlg) mmspcl_dialogues_free(&in->dlg);
}

/* emo [n][7], sent [n][3] (sent NULL: no sentiment) of every turn, dialogue by dialogue (views
   computed once per turn) */
static int classify_all(mmspcl_classifier *m, const classify_input *in, const char *head, const char *sent_head,
                        float *emo, float *sent) {
    const int H = m->hidden, D = MMSPCL_NUM_EMOTIONS + MMSPCL_NUM_SENTIMENTS;
    int d, longest = 1, rc = 1;
    float *t, *a, *v;
    mmspcl_error err;
    for (d = 0; d < in->n_dlg; d++)
        if (in->dstart[d + 1] - in->dstart[d] > longest) longest = in->dstart[d + 1] - in->dstart[d];
    t = (float *)malloc(sizeof(float) * (size_t)longest * H);
    v = (float *)malloc(sizeof(float) * (size_t)longest * H);
    a = (float *)malloc(sizeof(float) * (size_t)longest * D);
    if (!t || !v || !a) { cli_fail(CMD, "out of memory"); goto done; }
    for (d = 0; d < in->n_dlg; d++) {
        const int s = in->dstart[d], n = in->dstart[d + 1] - s;
        if (mmspcl_classifier_features(m, in->turns + s, n, t, a, v, &err) ||
            mmspcl_classifier_heads(m, t, a, v, n, head, sent_head, emo + (size_t)s * MMSPCL_NUM_EMOTIONS,
                                    sent ? sent + (size_t)s * MMSPCL_NUM_SENTIMENTS : NULL, &err)) {
            cli_fail(CMD, "dialogue %d: %s", d + 1, err.msg);
            goto done;
        }
    }
    rc = 0;
done:
    free(t); free(a); free(v);
    return rc;
}

/* what --media brings: the folder, the CLIP model for video, whether a missing clip falls back */
typedef struct media_opts {
    const char *dir;
    mmspcl_clip *clip;
    int use_audio, use_video, fallback;
    unsigned char *mods;             /* [n]: MMSPCL_MOD_* each turn had (for --json) */
} media_opts;

/* turn i's audio and video vectors into a, v (NULL: not used); mods: what it has */
static int media_turn(const media_opts *mo, const classify_input *in, int d, int i, float *a, float *v, unsigned char *mods) {
    char path[4096];
    long long dia, utt;
    int k, rc;
    input_ids(in, d, i, &dia, &utt);
    *mods = MMSPCL_MOD_T;
    for (k = 0; k < 2; k++) {
        if (!(k ? mo->use_video : mo->use_audio)) continue;
        if (cli_media_path(CMD, path, sizeof path, mo->dir, dia, utt, k ? "png" : "wav")) return 1;
        rc = k ? cli_media_video(CMD, mo->clip, path, v) : cli_media_audio(CMD, path, a);
        if (rc == CLI_MEDIA_MISSING && !mo->fallback)
            return cli_fail(CMD, "%s: no such file (the %s of dialogue %lld, utterance %lld; --missing text lets the turn vote without it)",
                            path, k ? "middle frame" : "sound", dia, utt);
        if (rc == CLI_MEDIA_MISSING) fprintf(stderr, "mmspcl " CMD ": note: %s missing: that turn votes without %s\n", path, k ? "video" : "audio");
        else if (rc) return 1;
        else *mods |= k ? MMSPCL_MOD_V : MMSPCL_MOD_A;
    }
    return 0;
}

/* classify_all with the media heads: every turn's clips read, then its dialogue classified */
static int classify_media_all(mmspcl_classifier *m, const classify_input *in, media_opts *mo, float *emo, float *sent) {
    const int da = m->audio_dim > 0 ? m->audio_dim : 1, dv = m->video_dim > 0 ? m->video_dim : 1;
    int d, i, longest = 1, rc = 1;
    float *a, *v;
    mmspcl_error err;
    for (d = 0; d < in->n_dlg; d++)
        if (in->dstart[d + 1] - in->dstart[d] > longest) longest = in->dstart[d + 1] - in->dstart[d];
    a = (float *)calloc((size_t)longest * da, sizeof(float));
    v = (float *)calloc((size_t)longest * dv, sizeof(float));
    if (!a || !v) { cli_fail(CMD, "out of memory"); goto done; }
    for (d = 0; d < in->n_dlg; d++) {
        const int s = in->dstart[d], n = in->dstart[d + 1] - s;
        for (i = s; i < s + n; i++)
            if (media_turn(mo, in, d, i, a + (size_t)(i - s) * da, v + (size_t)(i - s) * dv, mo->mods + i)) goto done;
        if (mmspcl_classifier_classify_media(m, in->turns + s, n, mo->use_audio ? a : NULL, mo->use_video ? v : NULL, mo->mods + s,
                                             emo + (size_t)s * MMSPCL_NUM_EMOTIONS, sent ? sent + (size_t)s * MMSPCL_NUM_SENTIMENTS : NULL,
                                             &err)) {
            cli_fail(CMD, "dialogue %d: %s", d + 1, err.msg);
            goto done;
        }
    }
    rc = 0;
done:
    free(a); free(v);
    return rc;
}

/* What the model's media heads take against what the options give: 0, 1 or 2 after a message. */
static int media_check(const mmspcl_classifier *m, const char *model, const char *clip_path, const char *missing, media_opts *mo) {
    if (!m->has_media[0] && !m->has_media[1] && !m->has_joint)
        return cli_fail(CMD, "--media: %s has no audio or video head (meld.media.*, meld.joint.*), so it classifies from text only: run without --media, "
                             "or give it media heads with mmspcl train --media (docs/AUDIO.md, section 9)", model);
    mo->fallback = !strcmp(missing, "text");
    mo->use_audio = m->audio_dim > 0;
    mo->use_video = m->video_dim > 0 && clip_path;
    if (m->audio_dim > 0 && (m->audio_dim != MMSPCL_EGEMAPS_N || (m->audio_features && strcmp(m->audio_features, "egemaps"))))
        return cli_fail(CMD, "%s: its audio head takes %d values of '%s'; mmspcl classify computes the %d eGeMAPS functionals", model,
                        m->audio_dim, m->audio_features ? m->audio_features : "unnamed features", MMSPCL_EGEMAPS_N);
    if (m->video_dim > 0 && !clip_path && !mo->fallback)
        return cli_usage_error(CMD, "%s has a video head (CLIP embeddings of width %d): give --clip CLIP_MODEL, or --missing text to vote without video",
                               model, m->video_dim);
    if (m->video_dim > 0 && !clip_path)
        fprintf(stderr, "mmspcl " CMD ": note: no --clip: the video head goes unused, turns vote without video\n");
    if (!m->video_dim && clip_path)
        fprintf(stderr, "mmspcl " CMD ": note: %s has no video head: --clip %s is not used\n", model, clip_path);
    if (!m->audio_dim) fprintf(stderr, "mmspcl " CMD ": note: %s has no audio head: the .wav files are not read\n", model);
    return 0;
}

static void print_probs(const char *key, const float *p, int C, const char *const *names) {
    int c;
    if (!p) { printf(", \"%s\": null", key); return; }
    printf(", \"%s\": {", key);
    for (c = 0; c < C; c++) {
        printf("%s\"%s\": ", c ? ", " : "", names[c]);
        cli_json_fixed(stdout, p[c], 4);
    }
    printf("}");
}

/* JSON: [{"dialogue", "turn", "speaker", "utterance", "emotion", "emotion_confidence",
   "sentiment", "sentiment_confidence", "emotion_probs": {7}, "sentiment_probs": {3}}, ...];
   the sentiment keys are null when the model has no sentiment head (sent NULL) */
static void print_results(const classify_input *in, const float *emo, const float *sent, const unsigned char *mods, int json) {
    int d, i, first = 1;
    if (json) printf("[");
    for (d = 0; d < in->n_dlg; d++)
        for (i = in->dstart[d]; i < in->dstart[d + 1]; i++) {
            const float *pe = emo + (size_t)i * MMSPCL_NUM_EMOTIONS, *ps = sent ? sent + (size_t)i * MMSPCL_NUM_SENTIMENTS : NULL;
            const int be = best_of(pe, MMSPCL_NUM_EMOTIONS), bs = ps ? best_of(ps, MMSPCL_NUM_SENTIMENTS) : 0;
            if (json) {
                printf("%s\n  {\"dialogue\": %d, \"turn\": %d, \"speaker\": ", first ? "" : ",", d, i - in->dstart[d]);
                cli_json_str(stdout, in->turns[i].speaker);
                printf(", \"utterance\": ");
                cli_json_str(stdout, in->turns[i].text);
                printf(", \"emotion\": \"%s\", \"emotion_confidence\": ", mmspcl_emotion_names[be]);
                cli_json_fixed(stdout, pe[be], 4);
                if (ps) {
                    printf(", \"sentiment\": \"%s\", \"sentiment_confidence\": ", mmspcl_sentiment_names[bs]);
                    cli_json_fixed(stdout, ps[bs], 4);
                } else {
                    printf(", \"sentiment\": null, \"sentiment_confidence\": null");
                }
                print_probs("emotion_probs", pe, MMSPCL_NUM_EMOTIONS, mmspcl_emotion_names);
                print_probs("sentiment_probs", ps, MMSPCL_NUM_SENTIMENTS, mmspcl_sentiment_names);
                if (mods)
                    printf(", \"modalities\": \"t%s%s\"", mods[i] & MMSPCL_MOD_A ? "a" : "", mods[i] & MMSPCL_MOD_V ? "v" : "");
                printf("}");
                first = 0;
            } else {
                if (i == in->dstart[d] && d > 0) printf("\n");
                if (ps)
                    printf("%-8s %3.0f%%  %-8s %3.0f%%  %s: %s\n", mmspcl_emotion_names[be], 100.0 * pe[be],
                           mmspcl_sentiment_names[bs], 100.0 * ps[bs], in->turns[i].speaker, in->turns[i].text);
                else
                    printf("%-8s %3.0f%%  %-8s %4s  %s: %s\n", mmspcl_emotion_names[be], 100.0 * pe[be], "-", "-",
                           in->turns[i].speaker, in->turns[i].text);
            }
        }
    if (json) printf("\n]\n");
}

int mmspcl_cmd_classify(int argc, char **argv) {
    const char *model = NULL, *head = NULL, *sent_head = NULL, *format = "auto", *pos[1] = {NULL};
    const char *media = NULL, *clip_path = NULL, *missing = "error";
    int json = 0, np, rc;
    const cli_opt opts[] = {
        CLI_OPT_REQ("-m, --model", &model, "MODEL", "classifier file (mmspcl train; weights/meld-text-q8_0.mmw), - for standard input"),
        CLI_OPT_STR("--head", &head, "H", "emotion head: " CLI_EMOTION_HEADS, "the model's default_head, else the better on dev"),
        CLI_OPT_STR("--sentiment-head", &sent_head, "H", "sentiment head: " CLI_SENTIMENT_HEADS, "the model's; none when it has none"),
        CLI_OPT_STR("--format", &format, "F", "input: auto, text (Speaker: utterance lines) or csv", "auto: csv when the first line has Utterance and Speaker columns"),
        CLI_OPT_FLAG("--json", &json, "one JSON array, an object per utterance (probabilities of both tasks)"),
        CLI_OPT_STR("--media", &media, "DIR", "clips diaX_uttY.wav / .png for the model's audio / video heads", "text only"),
        CLI_OPT_STR("--clip", &clip_path, "MODEL", "CLIP vision tower (mmspcl-convert) for the video head, with --media", NULL),
        CLI_OPT_STR("--missing", &missing, "M", "a missing clip file: error, or text (that turn votes without it)", "error"),
        CLI_OPT_END};
    const cli_spec spec = {CMD, "-m MODEL [options] FILE|-",
                           "Emotion and sentiment of each utterance of a dialogue: FILE holds one \"Speaker: utterance\" per\n"
                           "line (a blank line starts a new dialogue, # starts a comment) or is a MELD CSV; - reads standard input.",
                           opts, pos, 1,
                           "JSON: [{\"dialogue\", \"turn\", \"speaker\", \"utterance\", \"emotion\", \"emotion_confidence\", \"sentiment\",\n"
                           "\"sentiment_confidence\", \"emotion_probs\": {7 names}, \"sentiment_probs\": {3 names}}, ...] (the sentiment\n"
                           "keys null for a model without a sentiment head); invalid UTF-8 in the input is written as U+FFFD.\n"
                           "--media DIR: X, Y of diaX_uttY are the CSV's Dialogue_ID and Utterance_ID (in a text file the dialogue's\n"
                           "and the turn's index from 0); the turns vote with the media heads (mmspcl.h, 13.6), and --json adds\n"
                           "\"modalities\" (t, ta, tv or tav: what the turn had)."};
    const char *in_opts[3] = {"-m", "FILE", "--clip"}, *in_paths[3];
    unsigned char *text = NULL;
    size_t len = 0;
    mmspcl_classifier m;
    mmspcl_weights *hold = NULL, *clip_w = NULL;
    mmspcl_error err;
    classify_input in;
    media_opts mo;
    int clip_dim = 0, want_sent;
    float *emo = NULL, *sent = NULL;

    if ((rc = cli_parse(&spec, argc, argv, &np)) != CLI_GO) return rc;
    if (np != 1) return cli_usage_error(CMD, "FILE is required (- for standard input)");
    if ((rc = cli_check_head(CMD, "--head", head, 0)) || (rc = cli_check_head(CMD, "--sentiment-head", sent_head, 1))) return rc;
    if (strcmp(format, "auto") && strcmp(format, "text") && strcmp(format, "csv"))
        return cli_usage_error(CMD, "--format '%s': expected auto, text or csv", format);
    if (!media && (clip_path || strcmp(missing, "error"))) return cli_usage_error(CMD, "%s needs --media DIR", clip_path ? "--clip" : "--missing");
    if (strcmp(missing, "error") && strcmp(missing, "text")) return cli_usage_error(CMD, "--missing '%s': expected error or text", missing);
    if (media && (head || sent_head)) return cli_usage_error(CMD, "--media uses the media heads: it takes no --head or --sentiment-head");
    in_paths[0] = model; in_paths[1] = pos[0]; in_paths[2] = clip_path;
    if ((rc = cli_one_stdin(CMD, clip_path ? 3 : 2, in_opts, in_paths))) return rc;
    memset(&mo, 0, sizeof mo);
    memset(&in, 0, sizeof in);
    if (mmspcl_read_file(pos[0], (size_t)1 << 31, &text, &len, &err)) return cli_fail_io(CMD, pos[0], &err);
    if (cli_classifier_load(CMD, model, &m, &hold)) { mmspcl_free(text); return 1; }
    rc = 1;
    if (media) {
        mo.dir = media;
        if ((rc = media_check(&m, model, clip_path, missing, &mo))) goto done;
        rc = 1;
        if (mo.use_video && cli_media_clip_open(CMD, clip_path, &clip_w, &mo.clip, &clip_dim)) goto done;
        if (mo.use_video && clip_dim != m.video_dim) {
            cli_fail(CMD, "--clip %s gives embeddings of width %d, the model's video head takes %d", clip_path, clip_dim, m.video_dim);
            goto done;
        }
    }
    if (input_parse(&in, (const char *)text, len, pos[0], format)) goto done;
    emo = (float *)malloc(sizeof(float) * (size_t)in.n * MMSPCL_NUM_EMOTIONS);
    /* no sentiment head in the file and none asked for: emotion only */
    want_sent = sent_head || mmspcl_classifier_default_head(&m, 1) || (media && (m.has_media[1] || m.joint_has_head[1]));
    if (want_sent) sent = (float *)malloc(sizeof(float) * (size_t)in.n * MMSPCL_NUM_SENTIMENTS);
    if (!emo || (!sent && want_sent)) { cli_fail(CMD, "out of memory"); goto done; }
    if (media && !(mo.mods = (unsigned char *)malloc((size_t)in.n))) { cli_fail(CMD, "out of memory"); goto done; }
    if (media ? classify_media_all(&m, &in, &mo, emo, sent) : classify_all(&m, &in, head, sent_head, emo, sent)) goto done;
    print_results(&in, emo, sent, mo.mods, json);
    rc = 0;
done:
    input_free(&in);
    free(emo); free(sent); mmspcl_free(text); free(mo.mods);
    mmspcl_clip_free(mo.clip);
    mmspcl_weights_free(clip_w);
    mmspcl_classifier_free(&m);
    mmspcl_weights_free(hold);
    return rc;
}
