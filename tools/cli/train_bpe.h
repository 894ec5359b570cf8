/* tools/cli/train_bpe.h - the full RoBERTa BPE files (vocab.json, merges.txt) as arrays, for the
   commands that cut a vocabulary from them (mmspcl train, mmspcl pretrain; code in cmd_train.c). */
#ifndef MMSPCL_CLI_TRAIN_BPE_H
#define MMSPCL_CLI_TRAIN_BPE_H
#include "../convert/json.h"

typedef struct train_bpe {
    json_value *root;
    const char **vocab, **merges;   /* vocab.json by id ("" for holes), merges.txt lines */
    unsigned char *mtext;
    int64_t n_vocab, n_merges;
} train_bpe;
/* 0, or 1 after a message ("mmspcl train: ..."); free with train_bpe_free either way */
int train_load_bpe(train_bpe *b, const char *vocab_path, const char *merges_path);
void train_bpe_free(train_bpe *b);
#endif
