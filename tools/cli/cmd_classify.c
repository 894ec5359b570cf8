/* mmspcl classify -m MODEL [options] FILE|-

   FILE is a dialogue, one "Speaker: utterance" per line (a line without "Speaker:" gets the
   speaker "Speaker"; a blank line starts a new dialogue; lines starting with # are comments),
   or a MELD CSV (recognised by a header line with Utterance and Speaker columns, in any order,
   a UTF-8 BOM allowed), or - for standard input. Prints every utterance with its emotion,
   sentiment and their confidences (softmax probabilities of the heads); --json prints one JSON
   array of objects instead. */
#include "mmspcl.h"
#include "tools/train/meld_csv.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

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
static void print_results(const classify_input *in, const float *emo, const float *sent, int json) {
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
    int json = 0, np, rc;
    const cli_opt opts[] = {
        CLI_OPT_REQ("-m, --model", &model, "MODEL", "classifier file (mmspcl train; weights/meld-text-q8_0.mmw), - for standard input"),
        CLI_OPT_STR("--head", &head, "H", "emotion head: " CLI_EMOTION_HEADS, "the model's default_head, else the better on dev"),
        CLI_OPT_STR("--sentiment-head", &sent_head, "H", "sentiment head: " CLI_SENTIMENT_HEADS, "the model's; none when it has none"),
        CLI_OPT_STR("--format", &format, "F", "input: auto, text (Speaker: utterance lines) or csv", "auto: csv when the first line has Utterance and Speaker columns"),
        CLI_OPT_FLAG("--json", &json, "one JSON array, an object per utterance (probabilities of both tasks)"),
        CLI_OPT_END};
    const cli_spec spec = {CMD, "-m MODEL [options] FILE|-",
                           "Emotion and sentiment of each utterance of a dialogue: FILE holds one \"Speaker: utterance\" per\n"
                           "line (a blank line starts a new dialogue, # starts a comment) or is a MELD CSV; - reads standard input.",
                           opts, pos, 1,
                           "JSON: [{\"dialogue\", \"turn\", \"speaker\", \"utterance\", \"emotion\", \"emotion_confidence\", \"sentiment\",\n"
                           "\"sentiment_confidence\", \"emotion_probs\": {7 names}, \"sentiment_probs\": {3 names}}, ...] (the sentiment\n"
                           "keys null for a model without a sentiment head); invalid UTF-8 in the input is written as U+FFFD."};
    const char *in_opts[2] = {"-m", "FILE"}, *in_paths[2];
    unsigned char *text = NULL;
    size_t len = 0;
    mmspcl_classifier m;
    mmspcl_weights *hold = NULL;
    mmspcl_error err;
    classify_input in;
    float *emo = NULL, *sent = NULL;

    if ((rc = cli_parse(&spec, argc, argv, &np)) != CLI_GO) return rc;
    if (np != 1) return cli_usage_error(CMD, "FILE is required (- for standard input)");
    if ((rc = cli_check_head(CMD, "--head", head, 0)) || (rc = cli_check_head(CMD, "--sentiment-head", sent_head, 1))) return rc;
    if (strcmp(format, "auto") && strcmp(format, "text") && strcmp(format, "csv"))
        return cli_usage_error(CMD, "--format '%s': expected auto, text or csv", format);
    in_paths[0] = model; in_paths[1] = pos[0];
    if ((rc = cli_one_stdin(CMD, 2, in_opts, in_paths))) return rc;
    if (mmspcl_read_file(pos[0], (size_t)1 << 31, &text, &len, &err)) return cli_fail_io(CMD, pos[0], &err);
    if (cli_classifier_load(CMD, model, &m, &hold)) { mmspcl_free(text); return 1; }
    rc = 1;
    if (input_parse(&in, (const char *)text, len, pos[0], format)) goto done;
    emo = (float *)malloc(sizeof(float) * (size_t)in.n * MMSPCL_NUM_EMOTIONS);
    /* no sentiment head in the file and none asked for: emotion only */
    if (sent_head || mmspcl_classifier_default_head(&m, 1))
        sent = (float *)malloc(sizeof(float) * (size_t)in.n * MMSPCL_NUM_SENTIMENTS);
    if (!emo || (!sent && (sent_head || mmspcl_classifier_default_head(&m, 1)))) { cli_fail(CMD, "out of memory"); goto done; }
    if (classify_all(&m, &in, head, sent_head, emo, sent)) goto done;
    print_results(&in, emo, sent, json);
    rc = 0;
done:
    input_free(&in);
    free(emo); free(sent); mmspcl_free(text);
    mmspcl_classifier_free(&m);
    mmspcl_weights_free(hold);
    return rc;
}
