/* build/mmspcl: the command-line front end. Each subcommand lives in tools/cli/cmd_NAME.c. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "cli.h"

/* Subcommands defined in other files of tools/cli/ (one line each in the table below). */
typedef struct { const char *name; mmspcl_cli_fn fn; const char *summary; } cli_command;

static const cli_command commands[] = {
    {"inspect", mmspcl_cmd_inspect, "inspect FILE [--seq N]   list a weight file's hyper-parameters and tensors"},
    {"tokenize", mmspcl_cmd_tokenize, "tokenize (-m W | --vocab V --merges M) (--text T | --file F) [--no-special]   BPE ids"},
    {"encode-text", mmspcl_cmd_encode_text, "encode-text -m W (--text T | --ids \"0 31414 2\") [-o OUT.f32] [--mask-only]   RoBERTa hidden states"},
    {"encode-image", mmspcl_cmd_encode_image, "encode-image -m W --image FILE [-o OUT.f32] [--pooled] [--dump-pixels P.f32]   CLIP image embedding"},
    {"bench", mmspcl_cmd_bench, "bench -m W [--seq N] [--batch B] [--threads T] [--image] [--matmul [MxKxN]]   time the encoder"},
    {"train", mmspcl_cmd_train, "train --meld DIR -o MODEL [--seed N] [--resume CKPT] [--q8 OUT]   train the MELD text model (SPCL + MSVE)"},
    {"eval", mmspcl_cmd_eval, "eval -m MODEL --csv FILE [--svg OUT.svg] [--head H]   per-class P/R/F1, confusion, weighted F1"},
    {"classify", mmspcl_cmd_classify, "classify -m MODEL FILE|- [--json]   emotion and sentiment of each utterance of a dialogue"},
};

int cli_fail(const char *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "mmspcl %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

const char *cli_arg_value(const char *cmd, int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        cli_fail(cmd, "%s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

int cli_write_f32(const char *path, const float *x, size_t n) {
    FILE *f = fopen(path, "wb");
    size_t i;
    if (!f) return -1;
    for (i = 0; i < n; i++) {
        unsigned char b[4];
        uint32_t u;
        memcpy(&u, &x[i], 4);
        b[0] = (unsigned char)u; b[1] = (unsigned char)(u >> 8);
        b[2] = (unsigned char)(u >> 16); b[3] = (unsigned char)(u >> 24);
        if (fwrite(b, 1, 4, f) != 4) { fclose(f); remove(path); return -1; }
    }
    if (fclose(f) != 0) { remove(path); return -1; }
    return 0;
}

static void usage(FILE *out) {
    size_t i;
    fprintf(out, "mmspcl %s - MM-SPCL emotion recognition in conversation\n\nusage: mmspcl COMMAND [options]\n\ncommands:\n", MMSPCL_VERSION);
    fprintf(out, "  %-10s %s\n", "help", "this text");
    for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nConvert checkpoints with mmspcl-convert SRC OUT [--type f32|f16|q8_0|q4_0].\n");
}

int main(int argc, char **argv) {
    size_t i;
    if (argc < 2) { usage(stderr); return 2; }
    if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) { usage(stdout); return 0; }
    if (!strcmp(argv[1], "--version")) { printf("mmspcl %s\n", MMSPCL_VERSION); return 0; }
    for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "mmspcl: unknown command '%s' (try 'mmspcl help')\n", argv[1]);
    return 2;
}
