/* mmspcl tokenize: byte-level BPE ids of a text, as Hugging Face's tokenizer(text)["input_ids"].

   mmspcl tokenize (-m WEIGHTS | --vocab vocab.json --merges merges.txt)
                   (--text "..." | --file F) [--no-special] [--split-special-off] [--json]

   Prints the ids space-separated on one line; with --file, one line of ids per input line (the
   line without its "\n" or "\r\n"; F may be "-" for standard input). By default the ids are
   wrapped in <s> ... </s> (0 ... 2 for RoBERTa) as tokenizer(text) does; --no-special leaves them
   out (add_special_tokens=False). Special tokens written in the text ("<mask>") are recognised
   unless --split-special-off is given. --json prints [{"text", "ids"}, ...] instead (one object
   for --text, one per line for --file). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "../convert/json.h"
#include "../convert/tokenizer_files.h"

#define CMD "tokenize"

/* No limit of the tokenizer's own: a merges file or --file input as large as memory allows. */
#define TOK_MAX_FILE (SIZE_MAX / 2)

/* The whole of path ("-": standard input), NUL-terminated, freed with mmspcl_free; NULL when it
   cannot be read (err says why). */
static char *tok_read_file(const char *path, size_t *n, mmspcl_error *err) {
    unsigned char *buf;
    if (mmspcl_read_file(path, TOK_MAX_FILE, &buf, n, err)) return NULL;
    return (char *)buf;
}

/* vocab.json ({"token": id}) and merges.txt ("left right" per line) -> tokenizer, with the checks
   mmspcl-convert makes (tools/convert/tokenizer_files.h: dense ids, LF / CRLF / CR lines, the
   library's own checks and RoBERTa's special tokens) */
static int tok_load_files(mmspcl_bpe **bpe, const char *vocab_path, const char *merges_path) {
    char msg[1024];
    json_value *root = NULL;
    tf_list vocab, merges;
    char *text;
    size_t len = 0;
    mmspcl_error err;
    int rc = 1;
    memset(&vocab, 0, sizeof vocab);
    memset(&merges, 0, sizeof merges);
    /* read through mmspcl_read_file: "-" is standard input */
    if (!(text = tok_read_file(vocab_path, &len, &err))) return cli_fail_io(CMD, vocab_path, &err);
    root = json_parse(text, len, msg, sizeof msg);
    mmspcl_free(text);
    if (!root) return cli_fail(CMD, "%s: %s", vocab_path, msg);
    if (tf_vocab(&vocab, vocab_path, root, NULL, msg, sizeof msg)) { cli_fail(CMD, "%s", msg); goto out; }
    if (!(text = tok_read_file(merges_path, &len, &err))) { cli_fail_io(CMD, merges_path, &err); goto out; }
    if (tf_merges_text(&merges, merges_path, text, len, msg, sizeof msg) ||
        tf_check(&vocab, &merges, vocab_path, merges_path, bpe, msg, sizeof msg))
        cli_fail(CMD, "%s", msg);
    else
        rc = 0;
    mmspcl_free(text);
out:
    tf_list_free(&vocab);
    tf_list_free(&merges);
    json_free(root);
    return rc;
}

/* the ids of text[0..len): a line of ids, or with json one {"text", "ids"} object */
static int tok_print(const mmspcl_bpe *bpe, const char *text, size_t len, int flags, int json, int first,
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
    if (json) {
        printf("%s\n  {\"text\": ", first ? "" : ",");
        cli_json_strn(stdout, text, len);
        printf(", \"ids\": [");
        for (i = 0; i < n; i++) printf(i ? ", %d" : "%d", (int)(*ids)[i]);
        printf("]}");
        return 0;
    }
    for (i = 0; i < n; i++) printf(i ? " %d" : "%d", (int)(*ids)[i]);
    putchar('\n');
    return 0;
}

/* the tokenizer of -m, or of --vocab + --merges; 0 or 1 after a message */
static int tok_load(mmspcl_bpe **bpe, const char *model, const char *vocab, const char *merges) {
    mmspcl_weights *w = NULL;
    mmspcl_error err;
    if (!model) return tok_load_files(bpe, vocab, merges);
    if (cli_weights_open(CMD, model, &w)) return 1;
    if (mmspcl_bpe_from_weights(bpe, w, &err)) {
        mmspcl_weights_free(w);
        return cli_fail(CMD, "%s: %s", model, err.msg);
    }
    mmspcl_weights_free(w);
    return 0;
}

int mmspcl_cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *vocab = NULL, *merges = NULL, *text = NULL, *file = NULL;
    mmspcl_bpe *bpe = NULL;
    mmspcl_error err;
    int no_special = 0, split_off = 0, json = 0, flags, np, rc, cap = 1024, first = 1;
    int32_t *ids = NULL;
    const char *in_opts[4] = {"-m", "--vocab", "--merges", "--file"}, *in_paths[4];
    const cli_opt opts[] = {
        CLI_OPT_STR("-m, --model", &model, "WEIGHTS", "weight file holding a tokenizer (tokenizer.vocab, tokenizer.merges)", NULL),
        CLI_OPT_STR("--vocab", &vocab, "FILE", "vocab.json ({\"token\": id}); with --merges, instead of -m", NULL),
        CLI_OPT_STR("--merges", &merges, "FILE", "merges.txt (\"left right\" per line)", NULL),
        CLI_OPT_STR("--text", &text, "TEXT", "the text to tokenise", NULL),
        CLI_OPT_STR("--file", &file, "F", "one line of ids per line of F (without its \\n or \\r\\n); - for standard input", NULL),
        CLI_OPT_FLAG("--no-special", &no_special, "without <s> ... </s> (add_special_tokens=False)"),
        CLI_OPT_FLAG("--split-special-off", &split_off, "\"<mask>\", \"<s>\", ... in the text are plain text"),
        CLI_OPT_FLAG("--json", &json, "one JSON array of {\"text\", \"ids\"} (one per --file line)"),
        CLI_OPT_END};
    const cli_spec spec = {CMD, "(-m WEIGHTS | --vocab vocab.json --merges merges.txt) (--text TEXT | --file F) [options]",
                           "Byte-level BPE ids as Hugging Face's tokenizer(text)[\"input_ids\"], space-separated on one line.",
                           opts, NULL, 0, "Any of the files may be - (standard input), one at a time."};
    if ((rc = cli_parse(&spec, argc, argv, &np)) != CLI_GO) return rc;
    if (!model == !(vocab || merges)) return cli_usage_error(CMD, "give either -m WEIGHTS or --vocab and --merges");
    if (!model && (!vocab || !merges)) return cli_usage_error(CMD, "--vocab and --merges go together");
    if (!text == !file) return cli_usage_error(CMD, "give exactly one of --text and --file");
    in_paths[0] = model; in_paths[1] = vocab; in_paths[2] = merges; in_paths[3] = file;
    if ((rc = cli_one_stdin(CMD, 4, in_opts, in_paths))) return rc;
    flags = (no_special ? 0 : MMSPCL_BPE_ADD_SPECIAL) | (split_off ? MMSPCL_BPE_NO_SPECIAL_SPLIT : 0);
    if (tok_load(&bpe, model, vocab, merges)) return 1;
    ids = (int32_t *)malloc((size_t)cap * sizeof(int32_t));
    if (!ids) { mmspcl_bpe_free(bpe); return cli_fail(CMD, "out of memory"); }
    if (json) printf("[");
    if (text) {
        rc = tok_print(bpe, text, strlen(text), flags, json, 1, &ids, &cap);
    } else {
        size_t n = 0, p = 0;
        char *buf = tok_read_file(file, &n, &err);
        if (!buf) rc = cli_fail_io(CMD, file, &err);
        while (buf && p < n && !rc) {
            const char *nl = (const char *)memchr(buf + p, '\n', n - p);
            size_t e = nl ? (size_t)(nl - buf) : n, next = nl ? e + 1 : n;
            if (e > p && buf[e - 1] == '\r') e--;
            rc = tok_print(bpe, buf + p, e - p, flags, json, first, &ids, &cap);
            first = 0;
            p = next;
        }
        mmspcl_free(buf);
    }
    if (json && !rc) printf("\n]\n");
    free(ids);
    mmspcl_bpe_free(bpe);
    return rc;
}
