/* mmspcl encode-text -m WEIGHTS (--text T | --ids "0 31414 2") [-o OUT.f32] [--mask-only] [--json]
   RoBERTa encoder: last hidden states [tokens x hidden] as raw float32, or only the <mask> row;
   as text or JSON on standard output without -o. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

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
        if (end == s || v < 0 || v > 0x7fffffffL || (*end && *end != ' ' && *end != '\t' && *end != ',')) { free(ids); return -1; }
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

/* {"ids": [...], "rows": R, "hidden": H, "mask_position": P | null, "output": PATH | null,
   "vectors": [[H floats] x R] | null (null when written to -o)} */
static void print_json(const int32_t *ids, int n, int rows, int H, int mask_pos, const char *out, const float *v) {
    int i, k;
    printf("{\"ids\": [");
    for (i = 0; i < n; i++) printf("%s%d", i ? ", " : "", (int)ids[i]);
    printf("], \"rows\": %d, \"hidden\": %d, \"mask_position\": ", rows, H);
    if (mask_pos >= 0) printf("%d", mask_pos); else printf("null");
    printf(", \"output\": ");
    cli_json_str(stdout, out);
    printf(", \"vectors\": ");
    if (out) { printf("null}\n"); return; }
    printf("[");
    for (i = 0; i < rows; i++) {
        printf("%s\n  [", i ? "," : "");
        for (k = 0; k < H; k++) {
            if (k) printf(", ");
            cli_json_num(stdout, v[(size_t)i * H + k], 9);
        }
        printf("]");
    }
    printf("]}\n");
}

/* the ids of --text (tokenized with the file's tokenizer; --ids are parsed before); the mask
   position for --mask-only; 0 or 1 after a message */
static int encode_text_ids(mmspcl_weights *w, const char *model, const char *text, int mask_only, int32_t **ids, int *n,
                           int *mask_pos) {
    mmspcl_bpe *tok = NULL;
    mmspcl_error err;
    int32_t mask_id = -1;
    int i, rc = 1;
    *mask_pos = -1;
    if (text || mask_only) {
        if (mmspcl_bpe_from_weights(&tok, w, &err)) {
            if (text) return cli_fail(CMD, "%s: %s (use --ids)", model, err.msg);
        } else {
            mask_id = mmspcl_bpe_mask_id(tok);
        }
    }
    if (text) {
        int need = mmspcl_bpe_encode_ex(tok, text, strlen(text), NULL, 0, MMSPCL_BPE_ADD_SPECIAL);
        if (need < 0 || !(*ids = (int32_t *)malloc(sizeof **ids * (size_t)(need + 1)))) { cli_fail(CMD, "cannot tokenise"); goto done; }
        *n = mmspcl_bpe_encode_ex(tok, text, strlen(text), *ids, need, MMSPCL_BPE_ADD_SPECIAL);
    }
    if (mask_only) {
        if (mask_id < 0) mask_id = 50264;  /* RoBERTa's <mask> when the file has no tokenizer */
        for (i = 0; i < *n && *mask_pos < 0; i++) if ((*ids)[i] == mask_id) *mask_pos = i;
        if (*mask_pos < 0) { cli_fail(CMD, "--mask-only: the input has no <mask> (id %d)", mask_id); goto done; }
    }
    rc = 0;
done:
    mmspcl_bpe_free(tok);
    return rc;
}

int mmspcl_cmd_encode_text(int argc, char **argv) {
    const char *model = NULL, *text = NULL, *id_list = NULL, *out = NULL;
    int mask_only = 0, json = 0, n = 0, rc, np, mask_pos = -1, H;
    mmspcl_weights *w = NULL;
    mmspcl_roberta *m = NULL;
    mmspcl_error err;
    int32_t *ids = NULL;
    float *hidden = NULL;
    cli_out o;
    const cli_opt opts[] = {
        CLI_OPT_REQ("-m, --model", &model, "FILE", "weight file of a RoBERTa encoder (mmspcl-convert), - for standard input"),
        CLI_OPT_STR("--text", &text, "TEXT", "tokenised with the file's tokenizer as <s> TEXT </s>", NULL),
        CLI_OPT_STR("--ids", &id_list, "LIST", "token ids (\"0 31414 2\"), used as given", NULL),
        CLI_OPT_STR("-o, --output, --out", &out, "OUT.f32", "raw little-endian float32 [tokens x hidden], - for standard output",
                    "print the vectors as text"),
        CLI_OPT_FLAG("--mask-only", &mask_only, "only the hidden state at the first <mask> (hidden floats)"),
        CLI_OPT_FLAG("--json", &json, "one JSON object (ids, shape, vectors) on standard output"),
        CLI_OPT_END};
    const cli_spec spec = {CMD, "-m FILE (--text TEXT | --ids LIST) [options]",
                           "RoBERTa encoder: the last hidden states of a text or of token ids.", opts, NULL, 0,
                           "JSON: {\"ids\", \"rows\", \"hidden\", \"mask_position\" (or null), \"output\" (the -o file or null),\n"
                           "\"vectors\": [[floats] per row] (null with -o)}"};
    const char *in_opts[1] = {"-m"};
    memset(&o, 0, sizeof o);
    if ((rc = cli_parse(&spec, argc, argv, &np)) != CLI_GO) return rc;
    if (!text == !id_list) return cli_usage_error(CMD, "give exactly one of --text and --ids");
    if (json && out && !strcmp(out, "-")) return cli_usage_error(CMD, "-o - and --json would both write standard output");
    if (out && (rc = cli_refuse_same(CMD, "-o", out, 1, in_opts, &model))) return rc;
    if (id_list && (n = parse_ids(id_list, &ids)) <= 0)
        return cli_usage_error(CMD, "--ids '%s': expected a list of integers from 0 to 2147483647", id_list);
    if (out && cli_out_open(&o, CMD, out)) { free(ids); return 1; }
    rc = 1;
    if (cli_weights_open(CMD, model, &w) || encode_text_ids(w, model, text, mask_only, &ids, &n, &mask_pos)) goto done;
    if (mmspcl_roberta_load(&m, w, 1, n, &err)) { cli_fail(CMD, "%s: %s", model, err.msg); goto done; }
    H = mmspcl_roberta_get_config(m)->hidden_size;
    if (!(hidden = (float *)malloc(sizeof(float) * (size_t)n * H))) { cli_fail(CMD, "out of memory"); goto done; }
    if (mmspcl_roberta_forward(m, ids, &n, 1, n, hidden, &err)) { cli_fail(CMD, "%s", err.msg); goto done; }
    {
        const float *v = mask_only ? hidden + (size_t)mask_pos * H : hidden;
        const int rows = mask_only ? 1 : n;
        size_t count = (size_t)rows * H, k;
        if (out && (cli_out_f32(&o, CMD, v, count) || cli_out_commit(&o, CMD))) goto done;
        if (json) print_json(ids, n, rows, H, mask_only ? mask_pos : -1, out, v);
        else if (!out)
            for (k = 0; k < count; k++) printf("%.7g%c", v[k], (k + 1) % (size_t)H ? ' ' : '\n');
    }
    rc = 0;
done:
    cli_out_discard(&o);
    free(ids);
    free(hidden);
    mmspcl_roberta_free(m);
    mmspcl_weights_free(w);
    return rc;
}
