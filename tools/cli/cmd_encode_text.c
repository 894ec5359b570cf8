/* mmspcl encode-text -m WEIGHTS (--text T | --ids "0 31414 2") [-o OUT.f32] [--mask-only]
   RoBERTa encoder: last hidden states [tokens x hidden] as raw float32, or only the <mask> row. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

static const char *const encode_text_usage =
    "usage: mmspcl encode-text -m WEIGHTS (--text TEXT | --ids \"ID ID ...\") [-o OUT.f32] [--mask-only]\n"
    "  -m, --model FILE   weight file of a RoBERTa encoder (mmspcl-convert of a Hugging Face RoBERTa)\n"
    "  --text TEXT        tokenised with the weight file's tokenizer as <s> TEXT </s>\n"
    "  --ids LIST         token ids, used as given (no <s> </s> added)\n"
    "  -o, --out FILE     raw little-endian float32, [tokens x hidden] (default: print as text)\n"
    "  --mask-only        only the hidden state at the first <mask> (hidden floats)\n";

#define CMD "encode-text"

/* "0 31414 2" -> ids; returns the count or -1 on a bad number. */
static int parse_ids(const char *s, int32_t **out) {
    int n = 0, cap = 0;
    int32_t *ids = NULL;
    char *end;
    for (;;) {
        long v;
        while (*s == ' ' || *s == '\t' || *s == ',') s++;
        if (!*s) break;
        v = strtol(s, &end, 10);
        if (end == s || v < 0 || v > 0x7fffffffL) { free(ids); return -1; }
        if (n == cap) {
            int32_t *p = (int32_t *)realloc(ids, sizeof *ids * (size_t)(cap = cap ? cap * 2 : 64));
            if (!p) { free(ids); return -1; }
            ids = p;
        }
        ids[n++] = (int32_t)v;
        s = end;
    }
    *out = ids;
    return n;
}

int mmspcl_cmd_encode_text(int argc, char **argv) {
    const char *model = NULL, *text = NULL, *id_list = NULL, *out = NULL;
    int mask_only = 0, i, n = 0, rc = 1, mask_pos = -1;
    mmspcl_weights *w = NULL;
    mmspcl_roberta *m = NULL;
    mmspcl_bpe *tok = NULL;
    mmspcl_error err;
    int32_t *ids = NULL, mask_id = -1;
    float *hidden = NULL;
    int H;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fputs(encode_text_usage, stdout); return 0; }
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) { if (!(model = cli_arg_value(CMD, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--text")) { if (!(text = cli_arg_value(CMD, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--ids")) { if (!(id_list = cli_arg_value(CMD, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "-o") || !strcmp(a, "--out")) { if (!(out = cli_arg_value(CMD, argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--mask-only")) mask_only = 1;
        else { cli_fail(CMD, "unknown option '%s'", a); fputs(encode_text_usage, stderr); return 2; }
    }
    if (!model || !text == !id_list) {
        cli_fail(CMD, "%s", !model ? "-m WEIGHTS is required" : "give exactly one of --text and --ids");
        fputs(encode_text_usage, stderr);
        return 2;
    }
    if (mmspcl_weights_open(&w, model, &err)) { cli_fail(CMD, "%s", err.msg); goto done; }
    if (text || mask_only) {
        if (mmspcl_bpe_from_weights(&tok, w, &err)) {
            if (text) { cli_fail(CMD, "%s: %s (use --ids)", model, err.msg); goto done; }
        } else {
            mask_id = mmspcl_bpe_mask_id(tok);
        }
    }
    if (text) {
        int need = mmspcl_bpe_encode_ex(tok, text, strlen(text), NULL, 0, MMSPCL_BPE_ADD_SPECIAL);
        if (need < 0 || !(ids = (int32_t *)malloc(sizeof *ids * (size_t)(need + 1)))) { cli_fail(CMD, "cannot tokenise"); goto done; }
        n = mmspcl_bpe_encode_ex(tok, text, strlen(text), ids, need, MMSPCL_BPE_ADD_SPECIAL);
    } else if ((n = parse_ids(id_list, &ids)) <= 0) {
        cli_fail(CMD, "--ids: expected a list of non-negative integers");
        goto done;
    }
    if (mask_only) {
        if (mask_id < 0) mask_id = 50264;  /* RoBERTa's <mask> when the file has no tokenizer */
        for (i = 0; i < n && mask_pos < 0; i++) if (ids[i] == mask_id) mask_pos = i;
        if (mask_pos < 0) { cli_fail(CMD, "--mask-only: the input has no <mask> (id %d)", mask_id); goto done; }
    }
    if (mmspcl_roberta_load(&m, w, 1, n, &err)) { cli_fail(CMD, "%s: %s", model, err.msg); goto done; }
    H = mmspcl_roberta_get_config(m)->hidden_size;
    if (!(hidden = (float *)malloc(sizeof(float) * (size_t)n * H))) { cli_fail(CMD, "out of memory"); goto done; }
    if (mmspcl_roberta_forward(m, ids, &n, 1, n, hidden, &err)) { cli_fail(CMD, "%s", err.msg); goto done; }
    {
        const float *v = mask_only ? hidden + (size_t)mask_pos * H : hidden;
        size_t count = mask_only ? (size_t)H : (size_t)n * H, k;
        if (out) {
            if (cli_write_f32(out, v, count)) { cli_fail(CMD, "cannot write %s", out); goto done; }
        } else {
            for (k = 0; k < count; k++) printf("%.7g%c", v[k], (k + 1) % (size_t)H ? ' ' : '\n');
        }
    }
    rc = 0;
done:
    free(ids);
    free(hidden);
    mmspcl_bpe_free(tok);
    mmspcl_roberta_free(m);
    mmspcl_weights_free(w);
    return rc;
}
