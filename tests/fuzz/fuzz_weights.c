/* fuzz_weights.c — the weight file reader (mmspcl_weights_from_memory) and what reads a loaded
   file's contents: key lookups, every tensor's first row dequantized, the tokenizer from the
   file's keys (mmspcl_bpe_from_weights), and the model loaders (mmspcl_roberta_load,
   mmspcl_clip_load), whose hyper-parameters come from the file's keys. Seeds: small weight
   files (a RoBERTa and a CLIP test model with tokenizer keys). */
#define MMSPCL_IMPLEMENTATION
#include "mmspcl.h"
#include "tests/fuzz/fuzz.h"

#include <string.h>

FUZZ_TARGET(weights) {
    mmspcl_weights *w = NULL;
    mmspcl_error err;
    int64_t i;
    if (mmspcl_weights_from_memory(&w, data, size, &err) != MMSPCL_OK) {
        FUZZ_CHECK(w == NULL);
        return 0;
    }
    for (i = 0; i < w->n_kv; i++) {
        const mmspcl_kv *kv = &w->kv[i];
        int64_t iv;
        double fv;
        const char *sv;
        FUZZ_CHECK(mmspcl_weights_get(w, kv->key) != NULL);
        (void)mmspcl_weights_get_int(w, kv->key, &iv);
        (void)mmspcl_weights_get_float(w, kv->key, &fv);
        if (mmspcl_weights_get_str(w, kv->key, &sv)) FUZZ_CHECK(strlen(sv) <= kv->str_len);
        if (kv->type == MMSPCL_KV_STR_ARRAY) {
            int64_t k;
            for (k = 0; k < kv->count; k++) FUZZ_CHECK(strlen(kv->strs[k]) <= kv->lens[k]);
        }
    }
    for (i = 0; i < w->n_tensors; i++) {
        const mmspcl_tensor *t = &w->tensors[i];
        int64_t inner = t->ne[t->ndim - 1];
        size_t row = mmspcl_dtype_row_size(t->dtype, inner);
        FUZZ_CHECK(mmspcl_weights_find(w, t->name) != NULL);
        FUZZ_CHECK(row > 0 && row <= t->nbytes);
        FUZZ_CHECK((const unsigned char *)t->data >= w->bytes &&
                   (const unsigned char *)t->data + t->nbytes <= w->bytes + w->size);
        if (t->dtype != MMSPCL_I32 && inner <= 4096) {
            float buf[4096];
            FUZZ_CHECK(mmspcl_dequantize_row(t->dtype, t->data, buf, inner) == MMSPCL_OK);
        }
    }
    {
        mmspcl_bpe *tok = NULL;
        if (mmspcl_bpe_from_weights(&tok, w, &err) == MMSPCL_OK) {
            int32_t ids[64];
            static const char text[] = "Rachel: Oh, honey. for Oh, honey., Rachel feels <mask>";
            int n = mmspcl_bpe_encode(tok, text, sizeof text - 1, ids, 64);
            FUZZ_CHECK(n >= 0);
            mmspcl_bpe_free(tok);
        }
    }
    {
        mmspcl_roberta *m = NULL;
        mmspcl_status st = mmspcl_roberta_load(&m, w, 1, 8, &err);
#ifdef FUZZ_VERBOSE
        fprintf(stderr, "weights: roberta_load: %s\n", st ? err.msg : "ok");
#endif
        if (st == MMSPCL_OK) mmspcl_roberta_free(m);
    }
    {
        mmspcl_clip *m = NULL;
        mmspcl_status st = mmspcl_clip_load(&m, w, 1, &err);
#ifdef FUZZ_VERBOSE
        fprintf(stderr, "weights: clip_load: %s\n", st ? err.msg : "ok");
#endif
        if (st == MMSPCL_OK) mmspcl_clip_free(m);
    }
    mmspcl_weights_free(w);
    return 0;
}
