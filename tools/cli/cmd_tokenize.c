/* mmspcl tokenize: byte-level BPE ids of a text, as Hugging Face's tokenizer(text)["input_ids"].

   mmspcl tokenize (-m WEIGHTS | --vocab vocab.json --merges merges.txt)
                   (--text "..." | --file F) [--no-special] [--split-special-off]

   Prints the ids space-separated on one line; with --file, one line of ids per input line (the
   line without its "\n" or "\r\n"; F may be "-" for standard input). By default the ids are
   wrapped in <s> ... </s> (0 ... 2 for RoBERTa) as tokenizer(text) does; --no-special leaves them
   out (add_special_tokens=False). Special tokens written in the text ("<mask>") are recognised
   unless --split-special-off is given. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "../convert/json.h"

#define CMD "tokenize"

/* No limit of the tokenizer's own: a merges file or --file input as large as memory allows. */
#define TOK_MAX_FILE (SIZE_MAX / 2)

/* The whole of path ("-": standard input), NUL-terminated, freed with mmspcl_free; NULL when it
   cannot be read (the callers say so in their own words: "PATH: cannot read"). */
static char *tok_read_file(const char *path, size_t *n) {
    unsigned char *buf;
    if (mmspcl_read_file(path, TOK_MAX_FILE, &buf, n, NULL)) return NULL;
    return (char *)buf;
}

/* vocab.json ({"token": id}) and merges.txt ("left right" per line) -> tokenizer */
static int tok_load_files(mmspcl_bpe **bpe, const char *vocab_path, const char *merges_path) {
    char jerr[1024];
    json_value *root = json_parse_file(vocab_path, jerr, sizeof jerr);
    const char **vocab = NULL, **merges = NULL;
    uint32_t *vlens = NULL, *mlens = NULL;
    int64_t n_vocab = 0, n_merges = 0, id;
    char *mtext = NULL;
    size_t mlen = 0, i, start;
    mmspcl_error err;
    int rc = 1;
    if (!root) return cli_fail(CMD, "%s", jerr);
    if (root->type != JSON_OBJECT) { cli_fail(CMD, "%s: not a JSON object {\"token\": id}", vocab_path); goto out; }
    for (i = 0; i < root->count; i++) {
        if (!json_int(&root->items[i], &id) || id < 0 || id >= (int64_t)1 << 30) {
            cli_fail(CMD, "%s: the id of token \"%.40s\" (byte %zu) is not an integer in 0..2^30",
                     vocab_path, root->items[i].key, root->items[i].offset);
            goto out;
        }
        if (id + 1 > n_vocab) n_vocab = id + 1;
    }
    vocab = (const char **)calloc((size_t)(n_vocab ? n_vocab : 1), sizeof *vocab);
    vlens = (uint32_t *)calloc((size_t)(n_vocab ? n_vocab : 1), sizeof *vlens);
    if (!vocab || !vlens) { cli_fail(CMD, "out of memory"); goto out; }
    for (i = 0; i < root->count; i++) {
        json_int(&root->items[i], &id);
        vocab[id] = root->items[i].key;
        vlens[id] = (uint32_t)root->items[i].key_len;
    }
    mtext = tok_read_file(merges_path, &mlen);
    if (!mtext) { cli_fail(CMD, "%s: cannot read", merges_path); goto out; }
    for (i = 0; i < mlen; i++) n_merges += mtext[i] == '\n';
    merges = (const char **)calloc((size_t)n_merges + 1, sizeof *merges);
    mlens = (uint32_t *)calloc((size_t)n_merges + 1, sizeof *mlens);
    if (!merges || !mlens) { cli_fail(CMD, "out of memory"); goto out; }
    n_merges = 0;
    for (i = start = 0; i <= mlen; i++) {
        if (i == mlen || mtext[i] == '\n') {
            size_t e = i;
            if (e > start && mtext[e - 1] == '\r') e--;
            if (e > start) {  /* empty lines are skipped */
                mtext[e] = 0;
                merges[n_merges] = mtext + start;
                mlens[n_merges++] = (uint32_t)(e - start);
            }
            start = i + 1;
        }
    }
    if (mmspcl_bpe_from_arrays(bpe, vocab, vlens, n_vocab, merges, mlens, n_merges, &err)) {
        cli_fail(CMD, "%s + %s: %s", vocab_path, merges_path, err.msg);
        goto out;
    }
    rc = 0;
out:
    free(vocab);
    free(vlens);
    free(merges);
    free(mlens);
    mmspcl_free(mtext);
    json_free(root);
    return rc;
}

static int tok_print(const mmspcl_bpe *bpe, const char *text, size_t len, int flags,
                     int32_t **ids, int *cap) {
    int n = mmspcl_bpe_encode_ex(bpe, text, len, *ids, *cap, flags), i;
    if (n > *cap) {
        int32_t *nb = (int32_t *)realloc(*ids, (size_t)n * sizeof(int32_t));
        if (!nb) return cli_fail(CMD, "out of memory for %d ids", n);
        *ids = nb;
        *cap = n;
        n = mmspcl_bpe_encode_ex(bpe, text, len, *ids, *cap, flags);
    }
    if (n < 0) return cli_fail(CMD, "cannot encode %zu bytes (too long or out of memory)", len);
    for (i = 0; i < n; i++) printf(i ? " %d" : "%d", (int)(*ids)[i]);
    putchar('\n');
    return 0;
}

int mmspcl_cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *vocab = NULL, *merges = NULL, *text = NULL, *file = NULL;
    mmspcl_weights *w = NULL;
    mmspcl_bpe *bpe = NULL;
    mmspcl_error err;
    int flags = MMSPCL_BPE_ADD_SPECIAL, i, rc = 0, cap = 1024;
    int32_t *ids = NULL;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = NULL;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) dst = &model;
        else if (!strcmp(a, "--vocab")) dst = &vocab;
        else if (!strcmp(a, "--merges")) dst = &merges;
        else if (!strcmp(a, "--text")) dst = &text;
        else if (!strcmp(a, "--file")) dst = &file;
        else if (!strcmp(a, "--no-special")) { flags &= ~MMSPCL_BPE_ADD_SPECIAL; continue; }
        else if (!strcmp(a, "--split-special-off")) { flags |= MMSPCL_BPE_NO_SPECIAL_SPLIT; continue; }
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { model = vocab = merges = text = file = NULL; i = -1; break; }
        else { cli_fail(CMD, "unknown option '%s'", a); i = -2; break; }
        if (!(*dst = cli_arg_value(CMD, argc, argv, &i))) return 2;
    }
    if (i < 0 || (!model == !(vocab && merges)) || (!!vocab != !!merges) || (!text == !file)) {
        FILE *o = i == -1 ? stdout : stderr;
        fprintf(o, "usage: mmspcl tokenize (-m WEIGHTS | --vocab vocab.json --merges merges.txt)\n"
                   "                       (--text \"...\" | --file F) [--no-special] [--split-special-off]\n"
                   "  prints the ids space-separated (--file: one line of ids per input line; F may be -)\n"
                   "  --no-special          without <s> ... </s> (add_special_tokens=False)\n"
                   "  --split-special-off   \"<mask>\", \"<s>\", ... in the text are plain text\n");
        return i == -1 ? 0 : 2;
    }
    if (model) {
        if (mmspcl_weights_open(&w, model, &err)) return cli_fail(CMD, "%s", err.msg);
        if (mmspcl_bpe_from_weights(&bpe, w, &err)) {
            mmspcl_weights_free(w);
            return cli_fail(CMD, "%s: %s", model, err.msg);
        }
        mmspcl_weights_free(w);
    } else if (tok_load_files(&bpe, vocab, merges)) {
        return 1;
    }
    ids = (int32_t *)malloc((size_t)cap * sizeof(int32_t));
    if (!ids) { mmspcl_bpe_free(bpe); return cli_fail(CMD, "out of memory"); }
    if (text) {
        rc = tok_print(bpe, text, strlen(text), flags, &ids, &cap);
    } else {
        size_t n = 0, p = 0;
        char *buf = tok_read_file(file, &n);
        if (!buf) rc = cli_fail(CMD, "%s: cannot read", file);
        while (buf && p < n && !rc) {
            const char *nl = (const char *)memchr(buf + p, '\n', n - p);
            size_t e = nl ? (size_t)(nl - buf) : n, next = nl ? e + 1 : n;
            if (e > p && buf[e - 1] == '\r') e--;
            rc = tok_print(bpe, buf + p, e - p, flags, &ids, &cap);
            p = next;
        }
        mmspcl_free(buf);
    }
    if (fflush(stdout) != 0 && !rc) rc = cli_fail(CMD, "cannot write the output");
    free(ids);
    mmspcl_bpe_free(bpe);
    return rc;
}
