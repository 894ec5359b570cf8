/* fuzz_bpe.c — the byte-level BPE tokenizer: loading a vocabulary and merges
   (mmspcl_bpe_from_arrays, the same code mmspcl_bpe_from_weights runs, and the tools' stricter
   check mmspcl_bpe_from_arrays_ex(..., MMSPCL_BPE_STRICT), which must refuse whatever the loader
   refuses) and encoding arbitrary
   bytes (pre-tokenisation, UTF-8 handling, special tokens, merging) and decoding ids.

   Input: VOCAB 0xFF 0xFE MERGES 0xFF 0xFE TEXT. VOCAB is one token per line ('\n'), MERGES one
   "left right" per line; TEXT is any bytes. The first byte picks encode flags. Two tokenizers
   see TEXT:
     - the one built from VOCAB / MERGES (when it loads): encode, decode, lookups must not crash;
     - a fixed byte-level tokenizer (RoBERTa's vocab.json + merges.txt from ../shared when
       present, else 256 byte tokens, a few merges and the special tokens), for which
       decode(encode(x)) == x must hold with MMSPCL_BPE_NO_SPECIAL_SPLIT, and a short id buffer
       must give the same count and the same leading ids. */
#define MMSPCL_IMPLEMENTATION
#include "mmspcl.h"
#include "tests/fuzz/fuzz.h"
#include "tests/test.h"
#include "tools/convert/json.h"

#include <string.h>

#define FUZZ_BPE_DIR "../shared/data/weights/roberta-bpe/"
#define FUZZ_BPE_MAX_LINES 8192

static mmspcl_bpe *fuzz_bpe_fixed;

/* The GPT-2 unicode string of byte b (1 or 2 UTF-8 bytes). */
static size_t fuzz_bpe_byte_str(int b, char *u) {
    static int map[256], made;
    int cp;
    if (!made) {
        int k, n = 0;
        for (k = 0; k < 256; k++) {
            int keep = (k >= '!' && k <= '~') || (k >= 0xA1 && k <= 0xAC) || (k >= 0xAE && k <= 0xFF);
            map[k] = keep ? k : 256 + n++;
        }
        made = 1;
    }
    cp = map[b];
    if (cp < 0x80) { u[0] = (char)cp; return 1; }
    u[0] = (char)(0xC0 | (cp >> 6));
    u[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

/* RoBERTa's files, as tools/cli/cmd_tokenize.c loads them. */
static mmspcl_bpe *fuzz_bpe_load_roberta(void) {
    size_t vn = 0, mn = 0, i, nm = 0, cap = 0;
    char *vtext = (char *)test_read_file(FUZZ_BPE_DIR "vocab.json", &vn);
    char *mtext = (char *)test_read_file(FUZZ_BPE_DIR "merges.txt", &mn);
    char err[256], *p, **merges = NULL;
    const char **vocab = NULL;
    json_value *root = NULL;
    mmspcl_bpe *bpe = NULL;
    int64_t n_vocab = 0, id;
    if (!vtext || !mtext || !vn || !mn || !(root = json_parse(vtext, vn, err, sizeof err)) || root->type != JSON_OBJECT)
        goto out;
    for (i = 0; i < root->count; i++)
        if (json_int(&root->items[i], &id) && id >= n_vocab && id < 1 << 20) n_vocab = id + 1;
    if (!(vocab = (const char **)calloc((size_t)n_vocab + 1, sizeof *vocab))) goto out;
    for (i = 0; i < root->count; i++)
        if (json_int(&root->items[i], &id) && id >= 0 && id < n_vocab) vocab[id] = root->items[i].key;
    for (p = mtext; p < mtext + mn;) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        if (nm == cap) {
            char **nmv = (char **)realloc(merges, (cap = cap ? cap * 2 : 1024) * sizeof *nmv);
            if (!nmv) goto out;
            merges = nmv;
        }
        if (*p) merges[nm++] = p;
        p = nl ? nl + 1 : mtext + mn;
    }
    if (mmspcl_bpe_from_arrays(&bpe, vocab, NULL, n_vocab, (const char *const *)merges, NULL, (int64_t)nm, NULL))
        bpe = NULL;
out:
    json_free(root);
    free(vocab);
    free(merges);
    free(vtext);
    free(mtext);
    return bpe;
}

/* 256 byte tokens, the special tokens and merges "Ġ t", "h e", "Ġt he". */
static mmspcl_bpe *fuzz_bpe_load_small(void) {
    static char store[256][3];
    static const char *const extra[] = {"<s>", "<pad>", "</s>", "<unk>", "<mask>", "Ġt", "he", "Ġthe"};
    static const char *const merges[] = {"Ġ t", "h e", "Ġt he"};
    const char *vocab[256 + 8];
    mmspcl_bpe *bpe = NULL;
    int b;
    for (b = 0; b < 256; b++) {
        size_t l = fuzz_bpe_byte_str(b, store[b]);
        store[b][l] = 0;
        vocab[b] = store[b];
    }
    for (b = 0; b < 8; b++) vocab[256 + b] = extra[b];
    if (mmspcl_bpe_from_arrays(&bpe, vocab, NULL, 256 + 8, merges, NULL, 3, NULL)) return NULL;
    return bpe;
}

/* Splits a part into lines (at most FUZZ_BPE_MAX_LINES); the copies live in `store`. */
static int64_t fuzz_bpe_lines(const uint8_t *p, size_t n, char *store, const char **lines, uint32_t *lens) {
    int64_t k = 0;
    size_t i, start = 0;
    memcpy(store, p, n);
    store[n] = 0;
    for (i = 0; i <= n && k < FUZZ_BPE_MAX_LINES; i++)
        if (i == n || store[i] == '\n') {
            if (i == n && start == n && k > 0) break;
            store[i] = 0;
            lines[k] = store + start;
            lens[k] = (uint32_t)(i - start);
            k++;
            start = i + 1;
        }
    return k;
}

static void fuzz_bpe_run(const mmspcl_bpe *bpe, const uint8_t *text, size_t len, int flags, int roundtrip) {
    int32_t small[8], *ids;
    int n = mmspcl_bpe_encode_ex(bpe, (const char *)text, len, NULL, 0, flags), m, k;
    char *back;
    size_t blen;
    FUZZ_CHECK(n >= 0);
    if (n < 0) return;
    if (!(ids = (int32_t *)malloc(((size_t)n + 1) * sizeof *ids))) return;
    m = mmspcl_bpe_encode_ex(bpe, (const char *)text, len, ids, n, flags);
    FUZZ_CHECK(m == n);
    m = mmspcl_bpe_encode_ex(bpe, (const char *)text, len, small, 8, flags);
    FUZZ_CHECK(m == n);
    for (k = 0; k < n && k < 8; k++) FUZZ_CHECK(small[k] == ids[k]);
    for (k = 0; k < n; k++) FUZZ_CHECK(ids[k] >= 0 && ids[k] < mmspcl_bpe_vocab_size(bpe));
    blen = mmspcl_bpe_decode(bpe, ids, n, NULL, 0);
    if ((back = (char *)malloc(blen + 1)) != NULL) {
        FUZZ_CHECK(mmspcl_bpe_decode(bpe, ids, n, back, blen + 1) == blen);
        if (roundtrip) FUZZ_CHECK(blen == len && memcmp(back, text, len) == 0);
        /* a short output buffer: snprintf semantics */
        FUZZ_CHECK(mmspcl_bpe_decode(bpe, ids, n, back, blen / 2 + 1) == blen);
        FUZZ_CHECK(strlen(back) <= blen / 2);
        free(back);
    }
    for (k = 0; k < n && k < 16; k++) {
        size_t tl = 0;
        const char *ts = mmspcl_bpe_token_str(bpe, ids[k], &tl);
        if (ts && strlen(ts) == tl) FUZZ_CHECK(mmspcl_bpe_token_id(bpe, ts) >= 0);
    }
    free(ids);
}

FUZZ_TARGET(bpe) {
    fuzz_reader r;
    const uint8_t *vp, *mp, *tp;
    size_t vn, mn, tn;
    int flags;
    static int loaded;
    if (!loaded) {
        loaded = 1;
        fuzz_bpe_fixed = fuzz_bpe_load_roberta();
        if (!fuzz_bpe_fixed) fuzz_bpe_fixed = fuzz_bpe_load_small();
    }
    r.p = data;
    r.n = size;
    flags = (int)(fuzz_u8(&r) & 3);
    vp = fuzz_part(&r, &vn);
    mp = fuzz_part(&r, &mn);
    tp = fuzz_part(&r, &tn);
    if (fuzz_bpe_fixed) {
        fuzz_bpe_run(fuzz_bpe_fixed, tp, tn, flags, 0);
        fuzz_bpe_run(fuzz_bpe_fixed, tp, tn, MMSPCL_BPE_NO_SPECIAL_SPLIT, 1);
    }
    {
        char *vs = (char *)malloc(vn + 1), *ms = (char *)malloc(mn + 1);
        const char **vl = (const char **)malloc(FUZZ_BPE_MAX_LINES * sizeof *vl);
        const char **ml = (const char **)malloc(FUZZ_BPE_MAX_LINES * sizeof *ml);
        uint32_t *vlen = (uint32_t *)malloc(FUZZ_BPE_MAX_LINES * sizeof *vlen);
        uint32_t *mlen = (uint32_t *)malloc(FUZZ_BPE_MAX_LINES * sizeof *mlen);
        if (vs && ms && vl && ml && vlen && mlen) {
            int64_t nv = fuzz_bpe_lines(vp, vn, vs, vl, vlen), nm = fuzz_bpe_lines(mp, mn, ms, ml, mlen);
            mmspcl_bpe *bpe = NULL;
            mmspcl_error err;
            int64_t bad = -2;
            mmspcl_status loose, strict;
            if (mn == 0) nm = 0;
            /* the tools' check (MMSPCL_BPE_STRICT, nothing kept): it refuses whatever the loader
               refuses, and names a merge index that exists */
            strict = mmspcl_bpe_from_arrays_ex(NULL, vl, vlen, nv, ml, mlen, nm, MMSPCL_BPE_STRICT, &bad, &err);
            FUZZ_CHECK(bad == -1 || (bad >= 0 && bad < nm));
            FUZZ_CHECK(strict != MMSPCL_OK || bad == -1);
            loose = mmspcl_bpe_from_arrays(&bpe, vl, vlen, nv, ml, mlen, nm, &err);
            FUZZ_CHECK(loose == MMSPCL_OK || strict != MMSPCL_OK);
            if (loose == MMSPCL_OK) {
                int32_t special[5];
                int k;
                special[0] = mmspcl_bpe_bos_id(bpe); special[1] = mmspcl_bpe_pad_id(bpe);
                special[2] = mmspcl_bpe_eos_id(bpe); special[3] = mmspcl_bpe_unk_id(bpe);
                special[4] = mmspcl_bpe_mask_id(bpe);
                for (k = 0; k < 5; k++) FUZZ_CHECK(special[k] >= -1 && special[k] < nv);
                fuzz_bpe_run(bpe, tp, tn, flags, 0);
                mmspcl_bpe_free(bpe);
            } else {
                FUZZ_CHECK(bpe == NULL);
            }
        }
        free(vs); free(ms); free(vl); free(ml); free(vlen); free(mlen);
    }
    return 0;
}
