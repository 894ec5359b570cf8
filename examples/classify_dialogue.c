/* classify_dialogue: the emotion and sentiment of every turn of a dialogue, with mmspcl.h alone.

     cc -O2 -fopenmp -I. examples/classify_dialogue.c build/libmmspcl.a -lm -o classify_dialogue
     ./classify_dialogue weights/meld-text-q8_0.mmw examples/dialogue.txt

   DIALOGUE.txt holds one "Speaker: utterance" per line; a blank line starts a new dialogue
   (each dialogue is classified on its own: a turn's context is the turns before it). Prints,
   per turn, the emotion and sentiment with their probabilities, as `mmspcl classify` does. (This file is the program; build/libmmspcl.a holds the library's implementation, or
   #define MMSPCL_IMPLEMENTATION before the include in one file of your own.) */
#include "mmspcl.h"
#include <stdio.h>
#include <stdlib.h>

static int argmax(const float *p, int n) {
    int c, best = 0;
    for (c = 1; c < n; c++) if (p[c] > p[best]) best = c;
    return best;
}

int main(int argc, char **argv) {
    mmspcl_classifier model;
    mmspcl_dialogues dialogues;
    mmspcl_error err;
    unsigned char *text;
    size_t size;
    float *emo, *sent;
    int d, t, rc = 1;
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL.mmw DIALOGUE.txt\n", argv[0]);
        return 2;
    }
    if (mmspcl_classifier_load(&model, argv[1], &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    if (mmspcl_read_file(argv[2], (size_t)1 << 30, &text, &size, &err) ||
        mmspcl_dialogues_parse((const char *)text, size, &dialogues, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        mmspcl_classifier_free(&model);
        return 1;
    }
    mmspcl_free(text);
    emo = (float *)malloc(sizeof(float) * ((size_t)dialogues.n_turns * MMSPCL_NUM_EMOTIONS + 1));
    sent = (float *)malloc(sizeof(float) * ((size_t)dialogues.n_turns * MMSPCL_NUM_SENTIMENTS + 1));
    for (d = 0; emo && sent && d < dialogues.n_dialogues; d++) {
        const int first = dialogues.start[d], n = dialogues.start[d + 1] - first;
        if (mmspcl_classifier_classify(&model, dialogues.turns + first, n, NULL, emo + (size_t)first * MMSPCL_NUM_EMOTIONS,
                                       sent + (size_t)first * MMSPCL_NUM_SENTIMENTS, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            goto done;
        }
        if (d > 0) printf("\n");
        for (t = first; t < first + n; t++) {
            const float *pe = emo + (size_t)t * MMSPCL_NUM_EMOTIONS, *ps = sent + (size_t)t * MMSPCL_NUM_SENTIMENTS;
            const int e = argmax(pe, MMSPCL_NUM_EMOTIONS), s = argmax(ps, MMSPCL_NUM_SENTIMENTS);
            printf("%-8s %3.0f%%  %-8s %3.0f%%  %s: %s\n", mmspcl_emotion_names[e], 100.0 * pe[e], mmspcl_sentiment_names[s],
                   100.0 * ps[s], dialogues.turns[t].speaker, dialogues.turns[t].text);
        }
    }
    rc = emo && sent ? 0 : 1;
    if (rc) fprintf(stderr, "out of memory\n");
done:
    free(emo);
    free(sent);
    mmspcl_dialogues_free(&dialogues);
    mmspcl_classifier_free(&model);
    return rc;
}
