/* mmspcl classify -m MODEL FILE|- [--json] [--head H]

   FILE is a dialogue, one "Speaker: utterance" per line (a line without "Speaker:" gets the
   speaker "Speaker"; a blank line starts a new dialogue; lines starting with # are comments),
   or a MELD CSV (recognised by its header), or - for standard input. Prints every utterance
   with its emotion, sentiment and their confidences (softmax probabilities of the MSVE heads);
   --json prints one JSON array of objects instead. */
#include "mmspcl.h"
#include "mmspcl_train.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

#define CMD "classify"

static char *slurp(const char *path, size_t *n) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    size_t cap = 1 << 16, len = 0, got;
    char *buf;
    if (!f) return NULL;
    buf = (char *)malloc(cap + 1);
    while (buf && (got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            char *p = (char *)realloc(buf, cap * 2 + 1);
            if (!p) { free(buf); buf = NULL; break; }
            buf = p;
            cap *= 2;
        }
    }
    if (f != stdin) fclose(f);
    if (buf) { buf[len] = 0; *n = len; }
    return buf;
}

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
    int json = 0, a, i, d, rc = 1, n = 0, cap = 0, n_dlg = 0, first = 1;
    int *dstart = NULL;
    mmspcl_turn *turns = NULL;
    mmspcl_meld csv;
    int have_csv = 0;
    mmspcl_meld_model m;
    mmspcl_error err;
    char *text = NULL;
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
    if (!(text = slurp(file, &len))) return cli_fail(CMD, "cannot read %s", file);
    if (mmspcl_meld_model_load(&m, model, &err)) { free(text); return cli_fail(CMD, "%s", err.msg); }
    if (!strncmp(text, "Sr No.,", 7) || !strncmp(text, "\xEF\xBB\xBFSr No.,", 10) || !strncmp(text, "Utterance,Speaker", 17)) {
        if (mmspcl_meld_parse(text, len, file, &csv, &err)) { cli_fail(CMD, "%s", err.msg); goto done; }
        have_csv = 1;
        n = csv.n_rows;
        n_dlg = csv.n_dialogues;
        turns = (mmspcl_turn *)malloc(sizeof *turns * (size_t)(n + 1));
        dstart = (int *)malloc(sizeof(int) * (size_t)(n_dlg + 1));
        if (!turns || !dstart) { cli_fail(CMD, "out of memory"); goto done; }
        for (i = 0; i < n; i++) { turns[i].speaker = csv.rows[i].speaker; turns[i].text = csv.rows[i].utterance; }
        for (d = 0; d <= n_dlg; d++) dstart[d] = csv.dialogue_start[d];
    } else {
        char *p = text, *end = text + len;
        int blank = 1;
        dstart = (int *)malloc(sizeof(int) * (len + 2));
        if (!dstart) { cli_fail(CMD, "out of memory"); goto done; }
        while (p < end) {
            char *nl = (char *)memchr(p, '\n', (size_t)(end - p)), *line = p, *colon, *e;
            if (!nl) nl = end;
            *nl = 0;
            e = nl;
            while (e > line && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t')) *--e = 0;
            while (*line == ' ' || *line == '\t') line++;
            p = nl + 1;
            if (!*line) { blank = 1; continue; }
            if (*line == '#') continue;
            if (n == cap) {
                mmspcl_turn *q = (mmspcl_turn *)realloc(turns, sizeof *turns * (size_t)(cap = cap ? cap * 2 : 64));
                if (!q) { cli_fail(CMD, "out of memory"); goto done; }
                turns = q;
            }
            colon = strchr(line, ':');
            if (colon && colon - line <= 40 && colon[1] == ' ') {
                *colon = 0;
                turns[n].speaker = line;
                turns[n].text = colon + 2;
            } else {
                turns[n].speaker = "Speaker";
                turns[n].text = line;
            }
            if (blank) dstart[n_dlg++] = n;
            blank = 0;
            n++;
        }
        dstart[n_dlg] = n;
    }
    if (n == 0) { cli_fail(CMD, "%s holds no utterances", file); goto done; }
    emo = (float *)malloc(sizeof(float) * (size_t)n * MMSPCL_NUM_EMOTIONS);
    sent = (float *)malloc(sizeof(float) * (size_t)n * MMSPCL_NUM_SENTIMENTS);
    if (!emo || !sent) { cli_fail(CMD, "out of memory"); goto done; }
    for (d = 0; d < n_dlg; d++) {
        const int s = dstart[d], e = dstart[d + 1];
        if (mmspcl_meld_predict(&m, turns + s, e - s, head, emo + (size_t)s * MMSPCL_NUM_EMOTIONS,
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
    if (have_csv) mmspcl_meld_free(&csv);
    free(turns); free(dstart); free(emo); free(sent); free(text);
    mmspcl_meld_model_free(&m);
    return rc;
}
