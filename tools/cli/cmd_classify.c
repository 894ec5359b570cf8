/* mmspcl classify -m MODEL FILE|- [--json] [--head H]

   FILE is a dialogue, one "Speaker: utterance" per line (a line without "Speaker:" gets the
   speaker "Speaker"; a blank line starts a new dialogue; lines starting with # are comments),
   or a MELD CSV (recognised by its header), or - for standard input. Prints every utterance
   with its emotion, sentiment and their confidences (softmax probabilities of the MSVE heads);
   --json prints one JSON array of objects instead. */
#include "mmspcl.h"
#include "tools/train/meld_csv.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

#define CMD "classify"

static void json_str(const char *s) {
    putchar('"');
    for (; *s; s++) {
        const unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c == '\n') printf("\\n");
        else if (c == '\r') printf("\\r");
        else if (c == '\t') printf("\\t");
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static int best_of(const float *p, int C) {
    int c, b = 0;
    for (c = 1; c < C; c++) if (p[c] > p[b]) b = c;
    return b;
}

int mmspcl_cmd_classify(int argc, char **argv) {
    const char *model = NULL, *file = NULL, *head = NULL;
    int json = 0, a, i, d, rc = 1, n = 0, n_dlg = 0, first = 1;
    int *dstart = NULL;
    mmspcl_turn *turns = NULL;
    meld_csv csv;
    int have_csv = 0;
    mmspcl_classifier m;
    mmspcl_error err;
    unsigned char *text = NULL;
    mmspcl_dialogues dlg;
    int have_dlg = 0;
    size_t len = 0;
    float *emo = NULL, *sent = NULL;
    for (a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "-m")) { if (!(model = cli_arg_value(CMD, argc, argv, &a))) return 2; }
        else if (!strcmp(argv[a], "--json")) json = 1;
        else if (!strcmp(argv[a], "--head")) { if (!(head = cli_arg_value(CMD, argc, argv, &a))) return 2; }
        else if (!file && (argv[a][0] != '-' || !strcmp(argv[a], "-"))) file = argv[a];
        else { fprintf(stderr, "usage: mmspcl classify -m MODEL FILE|- [--json] [--head H]\n"); return 2; }
    }
    if (!model || !file) { fprintf(stderr, "usage: mmspcl classify -m MODEL FILE|- [--json] [--head H]\n"); return 2; }
    if (mmspcl_read_file(file, (size_t)1 << 31, &text, &len, &err)) return cli_fail(CMD, "%s", err.msg);
    if (mmspcl_classifier_load(&m, model, &err)) { mmspcl_free(text); return cli_fail(CMD, "%s", err.msg); }
    if (!strncmp((const char *)text, "Sr No.,", 7) || !strncmp((const char *)text, "\xEF\xBB\xBFSr No.,", 10) ||
        !strncmp((const char *)text, "Utterance,Speaker", 17)) {
        if (meld_csv_parse((const char *)text, len, file, &csv, &err)) { cli_fail(CMD, "%s", err.msg); goto done; }
        have_csv = 1;
        n = csv.n_rows;
        n_dlg = csv.n_dialogues;
        turns = (mmspcl_turn *)malloc(sizeof *turns * (size_t)(n + 1));
        dstart = (int *)malloc(sizeof(int) * (size_t)(n_dlg + 1));
        if (!turns || !dstart) { cli_fail(CMD, "out of memory"); goto done; }
        for (i = 0; i < n; i++) { turns[i].speaker = csv.rows[i].speaker; turns[i].text = csv.rows[i].utterance; }
        for (d = 0; d <= n_dlg; d++) dstart[d] = csv.dialogue_start[d];
    } else {
        if (mmspcl_dialogues_parse((const char *)text, len, &dlg, &err)) { cli_fail(CMD, "%s", err.msg); goto done; }
        have_dlg = 1;
        n = dlg.n_turns;
        n_dlg = dlg.n_dialogues;
        turns = dlg.turns;
        dstart = dlg.start;
    }
    if (n == 0) { cli_fail(CMD, "%s holds no utterances", file); goto done; }
    emo = (float *)malloc(sizeof(float) * (size_t)n * MMSPCL_NUM_EMOTIONS);
    sent = (float *)malloc(sizeof(float) * (size_t)n * MMSPCL_NUM_SENTIMENTS);
    if (!emo || !sent) { cli_fail(CMD, "out of memory"); goto done; }
    for (d = 0; d < n_dlg; d++) {
        const int s = dstart[d], e = dstart[d + 1];
        if (mmspcl_classifier_classify(&m, turns + s, e - s, head, emo + (size_t)s * MMSPCL_NUM_EMOTIONS,
                                sent + (size_t)s * MMSPCL_NUM_SENTIMENTS, &err)) {
            cli_fail(CMD, "%s", err.msg);
            goto done;
        }
    }
    if (json) printf("[");
    for (d = 0; d < n_dlg; d++)
        for (i = dstart[d]; i < dstart[d + 1]; i++) {
            const float *pe = emo + (size_t)i * MMSPCL_NUM_EMOTIONS, *ps = sent + (size_t)i * MMSPCL_NUM_SENTIMENTS;
            const int be = best_of(pe, MMSPCL_NUM_EMOTIONS), bs = best_of(ps, MMSPCL_NUM_SENTIMENTS);
            if (json) {
                int c;
                printf("%s\n  {\"dialogue\": %d, \"turn\": %d, \"speaker\": ", first ? "" : ",", d, i - dstart[d]);
                json_str(turns[i].speaker);
                printf(", \"utterance\": ");
                json_str(turns[i].text);
                printf(", \"emotion\": \"%s\", \"emotion_confidence\": %.4f, \"sentiment\": \"%s\", \"sentiment_confidence\": %.4f,"
                       " \"emotion_probs\": {", mmspcl_emotion_names[be], pe[be], mmspcl_sentiment_names[bs], ps[bs]);
                for (c = 0; c < MMSPCL_NUM_EMOTIONS; c++) printf("%s\"%s\": %.4f", c ? ", " : "", mmspcl_emotion_names[c], pe[c]);
                printf("}}");
                first = 0;
            } else {
                if (i == dstart[d] && d > 0) printf("\n");
                printf("%-8s %3.0f%%  %-8s %3.0f%%  %s: %s\n", mmspcl_emotion_names[be], 100.0 * pe[be],
                       mmspcl_sentiment_names[bs], 100.0 * ps[bs], turns[i].speaker, turns[i].text);
            }
        }
    if (json) printf("\n]\n");
    rc = 0;
done:
    if (have_csv) { meld_csv_free(&csv); free(turns); free(dstart); }
    if (have_dlg) mmspcl_dialogues_free(&dlg);
    free(emo); free(sent); mmspcl_free(text);
    mmspcl_classifier_free(&m);
    return rc;
}
