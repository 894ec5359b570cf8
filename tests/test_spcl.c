/* SPCL prompt ids for MELD dialogues against tools/reference/spcl_prompt_ref.py (SPCL's own
   logic re-stated in Python over an independent BPE), and z_t = hidden state at <mask>. */
#define MMSPCL_IMPLEMENTATION
#include "mmspcl.h"
#define MELD_CSV_IMPLEMENTATION
#include "tools/train/meld_csv.h"
#include "tests/test.h"
#include <stdlib.h>
#include <string.h>

#define TMP "build/tests/tmp/spcl"

static mmspcl_bpe *load_tokenizer(mmspcl_weights **w) {
    mmspcl_error err;
    mmspcl_bpe *tok = NULL;
    /* the tiny RoBERTa with the real RoBERTa vocabulary: one weight file, as users get it */
    if (system("mkdir -p " TMP " && cp tests/data/roberta-tiny/config.json tests/data/roberta-tiny/model.safetensors "
               "../shared/data/weights/roberta-bpe/vocab.json ../shared/data/weights/roberta-bpe/merges.txt " TMP "/ && "
               "build/mmspcl-convert " TMP " " TMP ".mmw --quiet 2>/dev/null") != 0) {
        CHECK(0, "cannot convert " TMP);
        return NULL;
    }
    if (mmspcl_weights_open(w, TMP ".mmw", &err) || mmspcl_bpe_from_weights(&tok, *w, &err)) CHECK(0, "%s", err.msg);
    return tok;
}

int main(void) {
    mmspcl_weights *w = NULL;
    mmspcl_bpe *tok = load_tokenizer(&w);
    FILE *f = fopen("tests/data/prompt/meld_prompts.txt", "r");
    char line[16384], csv_name[64], path[256];
    int dialogues = 0, turns_ok = 0, turns = 0;
    if (!tok || !f) { CHECK(0, "setup failed"); return TEST_END(); }
    while (fgets(line, sizeof line, f)) {
        int dia, max_len, n_turns, t, d;
        meld_csv meld;
        mmspcl_error err;
        mmspcl_turn *tt;
        int32_t *ids;
        int *lengths, *mask_pos;
        if (sscanf(line, "dialogue %63s %d %d %d", csv_name, &dia, &max_len, &n_turns) != 4) continue;
        snprintf(path, sizeof path, "../shared/data/meld/%s", csv_name);
        if (meld_csv_load(path, &meld, &err)) { CHECK(0, "%s", err.msg); break; }
        for (d = 0; d < meld.n_dialogues && meld.rows[meld.dialogue_start[d]].dialogue_id != dia; d++) {}
        CHECK(d < meld.n_dialogues && meld.dialogue_start[d + 1] - meld.dialogue_start[d] == n_turns, "%s dialogue %d", csv_name, dia);
        tt = (mmspcl_turn *)calloc((size_t)n_turns, sizeof *tt);
        ids = (int32_t *)calloc((size_t)n_turns * max_len, sizeof *ids);
        lengths = (int *)calloc((size_t)n_turns, sizeof(int));
        mask_pos = (int *)calloc((size_t)n_turns, sizeof(int));
        for (t = 0; t < n_turns; t++) {
            tt[t].speaker = meld.rows[meld.dialogue_start[d] + t].speaker;
            tt[t].text = meld.rows[meld.dialogue_start[d] + t].utterance;
        }
        CHECK(mmspcl_spcl_prompts(tok, tt, n_turns, max_len, ids, lengths, mask_pos, &err) == MMSPCL_OK, "%s", err.msg);
        for (t = 0; t < n_turns; t++) {
            int rt, rn, rm, off, k, same = 1;
            char *p;
            if (!fgets(line, sizeof line, f) || sscanf(line, "turn %d %d %d%n", &rt, &rn, &rm, &off) != 3) { CHECK(0, "bad reference line"); break; }
            p = line + off;
            same = rn == lengths[t] && rm == mask_pos[t];
            for (k = 0; k < rn && same; k++) same = strtol(p, &p, 10) == ids[(size_t)t * max_len + k];
            for (k = lengths[t]; k < max_len && same; k++) same = ids[(size_t)t * max_len + k] == 1;  /* <pad> */
            CHECK(same, "%s dialogue %d max_len %d turn %d: ids differ (ours %d ids, mask at %d; reference %d, %d)",
                  csv_name, dia, max_len, t, lengths[t], mask_pos[t], rn, rm);
            turns_ok += same;
            turns++;
        }
        dialogues++;
        free(tt); free(ids); free(lengths); free(mask_pos);
        meld_csv_free(&meld);
    }
    fclose(f);
    printf("  %d dialogues, %d/%d prompts identical to the reference\n", dialogues, turns_ok, turns);
    CHECK(dialogues == 6, "expected 6 reference dialogues, read %d", dialogues);
    {   /* z_t is the hidden state at <mask>. The tiny model knows 300 tokens: give it a
           50265-row word embedding (seeded random) so real prompts run, then compare
           mmspcl_spcl_embed_dialogue (batches of 2) with one forward over all turns. */
        mmspcl_writer *wr = mmspcl_writer_create();
        mmspcl_weights *big = NULL;
        mmspcl_roberta *m = NULL, *m_all = NULL;
        mmspcl_error err;
        mmspcl_turn tt[5] = {{"Ross", "Hi."}, {"Rachel", "Oh, \"honey\"… I’m fine!"}, {"Ross", "Okay"},
                             {"Monica", "What?"}, {"Ross", "Nothing."}};
        int32_t ids[5 * 96];
        int lengths[5], mask_pos[5], t, i;
        int64_t shape[2] = {50265, 32}, k;
        unsigned seed = 1;
        float *emb = (float *)malloc(sizeof(float) * 50265 * 32), z[5 * 32], *hidden = (float *)malloc(sizeof(float) * 5 * 96 * 32);
        double worst = 0;
        for (k = 0; k < 50265 * 32; k++) { seed = seed * 1664525u + 1013904223u; emb[k] = (float)((seed >> 9) & 0xffff) / 65536.0f - 0.5f; }
        for (i = 0; i < w->n_kv; i++) {
            const mmspcl_kv *kv = &w->kv[i];
            if (kv->type == MMSPCL_KV_INT) mmspcl_writer_set_int(wr, kv->key, !strcmp(kv->key, "roberta.vocab_size") ? 50265 : kv->i);
            else if (kv->type == MMSPCL_KV_FLOAT) mmspcl_writer_set_float(wr, kv->key, kv->f);
            else if (kv->type == MMSPCL_KV_STR) mmspcl_writer_set_str(wr, kv->key, kv->str);
            else mmspcl_writer_set_str_array(wr, kv->key, kv->strs, kv->lens, kv->count);
        }
        for (i = 0; i < w->n_tensors; i++) {
            const mmspcl_tensor *tn = &w->tensors[i];
            if (!strcmp(tn->name, "embeddings.word_embeddings.weight")) mmspcl_writer_add_tensor(wr, tn->name, MMSPCL_F32, 2, shape, emb, sizeof(float) * 50265 * 32, &err);
            else mmspcl_writer_add_tensor(wr, tn->name, tn->dtype, tn->ndim, tn->ne, tn->data, tn->nbytes, &err);
        }
        CHECK(mmspcl_writer_save(wr, TMP "-bigvocab.mmw", NULL, NULL, &err) == MMSPCL_OK, "%s", err.msg);
        mmspcl_writer_free(wr);
        CHECK(mmspcl_weights_open(&big, TMP "-bigvocab.mmw", &err) == MMSPCL_OK, "%s", err.msg);
        CHECK(mmspcl_roberta_load(&m, big, 2, 64, &err) == MMSPCL_OK, "%s", err.msg);
        CHECK(mmspcl_roberta_load(&m_all, big, 5, 64, &err) == MMSPCL_OK, "%s", err.msg);
        CHECK(mmspcl_spcl_embed_dialogue(m, tok, tt, 5, 64, z, &err) == MMSPCL_OK, "%s", err.msg);
        CHECK(mmspcl_spcl_prompts(tok, tt, 5, 64, ids, lengths, mask_pos, &err) == MMSPCL_OK, "%s", err.msg);
        CHECK(mmspcl_roberta_forward(m_all, ids, lengths, 5, 64, hidden, &err) == MMSPCL_OK, "%s", err.msg);
        for (t = 0; t < 5; t++) {
            CHECK(ids[t * 64 + mask_pos[t]] == 50264 && mask_pos[t] == lengths[t] - 2, "turn %d: <mask> is the second-last id", t);
            for (i = 0; i < 32; i++) worst = fmax(worst, fabs(z[t * 32 + i] - hidden[((size_t)t * 64 + mask_pos[t]) * 32 + i]));
        }
        CHECK(worst == 0, "z_t differs from the forward's hidden state at <mask> by %g", worst);
        free(emb);
        free(hidden);
        mmspcl_roberta_free(m);
        mmspcl_roberta_free(m_all);
        mmspcl_weights_free(big);
    }
    mmspcl_bpe_free(tok);
    mmspcl_weights_free(w);
    return TEST_END();
}
