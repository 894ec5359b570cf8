/* embed_dialogue: z_t (the RoBERTa state at <mask> of SPCL's prompt) for every turn of a dialogue.

     build/examples/embed_dialogue MODEL.mmw [dialogue.txt]

   MODEL.mmw is a converted RoBERTa checkpoint with its tokenizer (mmspcl-convert of a folder
   holding config.json, model.safetensors, vocab.json and merges.txt). dialogue.txt has one
   "Speaker: utterance" per line (default: a short built-in dialogue). Prints the first values of
   each z_t. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mmspcl.h"

static char *copy_string(const char *s) {
    char *d = (char *)malloc(strlen(s) + 1);
    if (d) strcpy(d, s);
    return d;
}

int main(int argc, char **argv) {
    mmspcl_turn builtin[3] = {{"Rachel", "What are you doing here?"}, {"Ross", "I came to say I'm sorry."},
                              {"Rachel", "Oh, honey."}};
    mmspcl_turn *turns = builtin;
    int n = 3, t, H;
    char line[4096];
    mmspcl_weights *w;
    mmspcl_bpe *tok;
    mmspcl_roberta *m;
    mmspcl_error err;
    float *z;

    if (argc < 2) { fprintf(stderr, "usage: %s MODEL.mmw [dialogue.txt]\n", argv[0]); return 2; }
    if (argc > 2) {   /* "Speaker: text" lines */
        FILE *f = fopen(argv[2], "r");
        if (!f) { fprintf(stderr, "cannot open %s\n", argv[2]); return 1; }
        turns = NULL;
        for (n = 0; fgets(line, sizeof line, f);) {
            char *colon = strchr(line, ':');
            if (!colon) continue;
            line[strcspn(line, "\r\n")] = 0;
            *colon = 0;
            turns = (mmspcl_turn *)realloc(turns, sizeof *turns * (size_t)(n + 1));
            turns[n].speaker = copy_string(line);
            turns[n].text = copy_string(colon[1] == ' ' ? colon + 2 : colon + 1);
            n++;
        }
        fclose(f);
    }
    if (mmspcl_weights_open(&w, argv[1], &err) || mmspcl_bpe_from_weights(&tok, w, &err) ||
        mmspcl_roberta_load(&m, w, 8, MMSPCL_SPCL_MAX_LEN, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    H = mmspcl_roberta_get_config(m)->hidden_size;
    z = (float *)malloc(sizeof(float) * (size_t)n * (size_t)H);
    if (mmspcl_spcl_embed_dialogue(m, tok, turns, n, MMSPCL_SPCL_MAX_LEN, z, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    for (t = 0; t < n; t++)
        printf("%-10s z_t[0..3] = %+.4f %+.4f %+.4f %+.4f   (%s)\n", turns[t].speaker, z[t * H], z[t * H + 1], z[t * H + 2], z[t * H + 3], turns[t].text);
    free(z);
    mmspcl_roberta_free(m);
    mmspcl_bpe_free(tok);
    mmspcl_weights_free(w);
    return 0;
}
