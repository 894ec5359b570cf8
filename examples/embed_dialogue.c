/* embed_dialogue: z_t (the RoBERTa state at <mask> of SPCL's prompt) for every turn of a dialogue.

     build/examples/embed_dialogue MODEL.mmw [dialogue.txt]

   MODEL.mmw is a converted RoBERTa checkpoint with its tokenizer (mmspcl-convert of a folder
   holding config.json, model.safetensors, vocab.json and merges.txt). dialogue.txt is read as
   `mmspcl classify` reads it (mmspcl_dialogues_parse: one "Speaker: utterance" per line, # starts
   a comment, a blank line a new dialogue; each dialogue is embedded on its own); without it, a
   short built-in dialogue. Prints the first values of each z_t. */
#include <stdio.h>
#include <stdlib.h>
#include "mmspcl.h"

static mmspcl_turn builtin_turns[3] = {{"Rachel", "What are you doing here?"}, {"Ross", "I came to say I'm sorry."},
                                       {"Rachel", "Oh, honey."}};
static int builtin_start[2] = {0, 3};

/* z_t of one dialogue's turns, printed */
static int embed_one(mmspcl_roberta *m, const mmspcl_bpe *tok, const mmspcl_turn *turns, int n, mmspcl_error *err) {
    const int H = mmspcl_roberta_get_config(m)->hidden_size;
    float *z = (float *)malloc(sizeof(float) * ((size_t)n * (size_t)H + 1));
    int t;
    if (!z) { fprintf(stderr, "out of memory\n"); return 1; }
    if (mmspcl_spcl_embed_dialogue(m, tok, turns, n, MMSPCL_SPCL_MAX_LEN, z, err)) {
        fprintf(stderr, "%s\n", err->msg);
        free(z);
        return 1;
    }
    for (t = 0; t < n; t++)
        printf("%-10s z_t[0..3] = %+.4f %+.4f %+.4f %+.4f   (%s)\n", turns[t].speaker, z[t * H], z[t * H + 1], z[t * H + 2],
               z[t * H + 3], turns[t].text);
    free(z);
    return 0;
}

int main(int argc, char **argv) {
    mmspcl_dialogues file = {NULL, 0, NULL, 0, NULL};
    mmspcl_weights *w = NULL;
    mmspcl_bpe *tok = NULL;
    mmspcl_roberta *m = NULL;
    mmspcl_error err;
    const mmspcl_turn *turns = builtin_turns;
    const int *start = builtin_start;
    int n_dialogues = 1, d, rc = 1;
    if (argc < 2 || argc > 3) { fprintf(stderr, "usage: %s MODEL.mmw [dialogue.txt]\n", argv[0]); return 2; }
    if (argc > 2) {
        unsigned char *text = NULL;
        size_t size = 0;
        if (mmspcl_read_file(argv[2], (size_t)1 << 30, &text, &size, &err) ||
            mmspcl_dialogues_parse((const char *)text, size, &file, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            mmspcl_free(text);
            return 1;
        }
        mmspcl_free(text);
        turns = file.turns;
        start = file.start;
        n_dialogues = file.n_dialogues;
    }
    if (mmspcl_weights_open(&w, argv[1], &err) || mmspcl_bpe_from_weights(&tok, w, &err) ||
        mmspcl_roberta_load(&m, w, 8, MMSPCL_SPCL_MAX_LEN, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        goto done;
    }
    for (d = 0; d < n_dialogues; d++) {
        if (d > 0) printf("\n");
        if (embed_one(m, tok, turns + start[d], start[d + 1] - start[d], &err)) goto done;
    }
    rc = 0;
done:
    mmspcl_roberta_free(m);
    mmspcl_bpe_free(tok);
    mmspcl_weights_free(w);
    mmspcl_dialogues_free(&file);
    return rc;
}
