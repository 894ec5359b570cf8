/* build/mmspcl: the command-line front end. Each subcommand lives in tools/cli/cmd_NAME.c; what
   they share (options, files, JSON, the conventions) in tools/cli/cli.c. */
#include <stdio.h>
#include <string.h>
#include "cli.h"

/* Subcommands defined in other files of tools/cli/ (one line each in the table below). */
typedef struct { const char *name; mmspcl_cli_fn fn; const char *summary; } cli_command;

static const cli_command commands[] = {
    {"classify", mmspcl_cmd_classify, "emotion and sentiment of each utterance of a dialogue (text or MELD CSV)"},
    {"eval", mmspcl_cmd_eval, "per-class precision / recall / F1, confusion matrix and weighted F1 on a MELD CSV"},
    {"train", mmspcl_cmd_train, "train the MELD text classifier (MLM, SPCL, text views, MSVE heads)"},
    {"pretrain", mmspcl_cmd_pretrain, "MLM pretraining of a RoBERTa-layout encoder on the text corpus (for SPCL fine-tuning)"},
    {"heads", mmspcl_cmd_heads, "MSVE heads on the out-of-fold views of K fine-tunes; default head chosen on dev"},
    {"encode-text", mmspcl_cmd_encode_text, "RoBERTa hidden states of a text or of token ids"},
    {"encode-image", mmspcl_cmd_encode_image, "CLIP image embedding of a PNG, BMP or PPM file"},
    {"encode-audio", mmspcl_cmd_encode_audio, "speech features of a WAV file: eGeMAPS, log-mel, MFCC or F0"},
    {"extract", mmspcl_cmd_extract, "per-utterance t / a / v features of a MELD CSV for train_msve (resumable, sharded)"},
    {"tokenize", mmspcl_cmd_tokenize, "byte-level BPE token ids of a text or of the lines of a file"},
    {"inspect", mmspcl_cmd_inspect, "hyper-parameters, tokenizer and tensor table of a weight file"},
    {"ablate", mmspcl_cmd_ablate, "the paper's ablation tables 2-5 (fusion, bottlenecks, pruning, MSVE) on a feature set"},
    {"bench", mmspcl_cmd_bench, "time the encoder of a weight file (or one linear layer)"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out) {
    size_t i;
    fprintf(out, "mmspcl %s - MM-SPCL emotion recognition in conversation\n\n"
                 "usage: mmspcl COMMAND [options]\n"
                 "       mmspcl help [COMMAND]      this text, or COMMAND's options with their defaults\n"
                 "       mmspcl --version\n\ncommands:\n", MMSPCL_VERSION);
    for (i = 0; i < N_COMMANDS; i++) fprintf(out, "  %-13s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nEvery command takes -h / --help (its options, defaults and ranges) and --version.\n"
                 "Convert Hugging Face checkpoints with mmspcl-convert (mmspcl-convert --help).\n");
}

static const cli_command *find_command(const char *name) {
    size_t i;
    for (i = 0; i < N_COMMANDS; i++)
        if (!strcmp(name, commands[i].name)) return &commands[i];
    return NULL;
}

static int run(int argc, char **argv) {
    const cli_command *c;
    if (argc < 2) { usage(stderr); return 2; }
    if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        char *sub[3];
        if (argc < 3) { usage(stdout); return 0; }
        if (argc > 3) { fprintf(stderr, "mmspcl help: one command at a time (try 'mmspcl help')\n"); return 2; }
        if (!(c = find_command(argv[2]))) {
            fprintf(stderr, "mmspcl help: unknown command '%s' (try 'mmspcl help')\n", argv[2]);
            return 2;
        }
        sub[0] = argv[2];
        sub[1] = (char *)"--help";
        sub[2] = NULL;
        return c->fn(2, sub);
    }
    if (!strcmp(argv[1], "--version")) {
        if (argc > 2) { fprintf(stderr, "mmspcl: --version takes no arguments\n"); return 2; }
        printf("mmspcl %s\n", MMSPCL_VERSION);
        return 0;
    }
    if ((c = find_command(argv[1]))) return c->fn(argc - 1, argv + 1);
    if (argv[1][0] == '-') fprintf(stderr, "mmspcl: unknown option '%s' (try 'mmspcl help')\n", argv[1]);
    else fprintf(stderr, "mmspcl: unknown command '%s' (try 'mmspcl help')\n", argv[1]);
    return 2;
}

int main(int argc, char **argv) {
    const cli_command *c;
    int rc;
    cli_install_signals();
    rc = run(argc, argv);
    /* whatever the command: what it wrote to standard output must have reached it */
    c = argc >= 2 ? find_command(argv[1]) : NULL;
    if (cli_check_stdout(c ? c->name : NULL) && rc == 0) rc = 1;
    return rc;
}
