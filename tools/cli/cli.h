/* Shared helpers of the mmspcl command-line front end (tools/cli/, code in tools/cli/cli.c).

   Conventions every subcommand follows (tests/test_cli.c checks them on each one):
     -h, --help        its usage, with every option's default and range, on stdout; exit 0
     --version         "mmspcl VERSION" on stdout; exit 0
     usage errors      (an unknown option, a missing or malformed value, a number out of its range,
                       a missing required option, the same file as input and output) a message
                       naming the option on stderr; exit 2
     runtime errors    (a file that cannot be read or written, a bad model) a message on stderr
                       with the OS reason where there is one; exit 1
     "-"               standard input wherever a file is read (at most one per command)
     outputs           written to PATH.tmp-XXXXXX beside PATH and renamed when complete (an
                       existing non-regular file such as a device is written in place and never
                       removed); standard output is checked at the end (exit 1 when it failed);
                       a command with several outputs renames them only when all are complete
                       (cli_outs_commit): on failure none is created or changed
     --json            one JSON document on stdout, valid for any input bytes (invalid UTF-8 is
                       written as U+FFFD, control characters escaped) */
#ifndef MMSPCL_CLI_H
#define MMSPCL_CLI_H
#include "mmspcl.h"
#include <stdio.h>

/* One subcommand: returns the process exit status (0 ok, 1 runtime error, 2 usage error). */
typedef int (*mmspcl_cli_fn)(int argc, char **argv);

/* ---- messages ------------------------------------------------------------------------------ */
/* Prints "mmspcl CMD: message" to stderr; returns 1. */
int cli_fail(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* The same, followed by "(see mmspcl CMD --help)"; returns 2. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* A library error about path: where the library's message lacks the OS reason (it could not
   open or read the file), "cannot open PATH: <strerror>" instead. Returns 1. */
int cli_fail_io(const char *cmd, const char *path, const mmspcl_error *err);

/* ---- options ------------------------------------------------------------------------------- */
typedef enum cli_kind {
    CLI_FLAG,     /* dst int *: set to 1 */
    CLI_STR,      /* dst const char **: the value */
    CLI_INT,      /* dst int *: an integer in [lo, hi] */
    CLI_REAL,     /* dst double *: a finite number in [lo, hi] */
    CLI_U64,      /* dst uint64_t *: an unsigned integer in [lo, hi] */
    CLI_OPTVAL    /* dst int *: set to 1; dst2 const char **: an optional value, given as
                     --name=VALUE or as the next argument when that starts with a digit */
} cli_kind;

typedef struct cli_opt {
    const char *names;   /* spellings separated by ", ": "-m, --model" */
    cli_kind kind;
    void *dst;
    double lo, hi;       /* CLI_INT / CLI_REAL / CLI_U64: the accepted range (inclusive) */
    const char *meta;    /* the value's name in the usage: "FILE", "N" */
    const char *help;    /* one line */
    const char *def;     /* the default as shown; NULL: taken from *dst (numbers), none (strings) */
    int required;
    void *dst2;          /* CLI_OPTVAL only */
} cli_opt;

typedef struct cli_spec {
    const char *name;       /* "classify" */
    const char *synopsis;   /* what follows "usage: mmspcl NAME " */
    const char *about;      /* a paragraph after the usage line (may be NULL) */
    const cli_opt *opts;    /* ends with an entry whose names is NULL */
    const char **pos;       /* receives the positional arguments (NULL: none accepted) */
    int max_pos;
    const char *notes;      /* printed after the options (may be NULL) */
} cli_spec;

/* Table entries (every field given: no -Wmissing-field-initializers). */
#define CLI_OPT_FLAG(names, dst, help) {names, CLI_FLAG, dst, 0, 0, NULL, help, NULL, 0, NULL}
#define CLI_OPT_STR(names, dst, meta, help, def) {names, CLI_STR, dst, 0, 0, meta, help, def, 0, NULL}
#define CLI_OPT_REQ(names, dst, meta, help) {names, CLI_STR, dst, 0, 0, meta, help, NULL, 1, NULL}
#define CLI_OPT_INT(names, dst, lo, hi, meta, help) {names, CLI_INT, dst, lo, hi, meta, help, NULL, 0, NULL}
#define CLI_OPT_REAL(names, dst, lo, hi, meta, help) {names, CLI_REAL, dst, lo, hi, meta, help, NULL, 0, NULL}
#define CLI_OPT_END {NULL, CLI_FLAG, NULL, 0, 0, NULL, NULL, NULL, 0, NULL}

#define CLI_GO (-1)
/* Parses argv[1..argc) by spec (argv[0] is the command's name). Returns CLI_GO to go on, with
   *n_pos positional arguments in spec->pos; otherwise the exit status: 0 after --help or
   --version (printed on stdout), 2 after a usage error (printed on stderr). "--" ends the
   options; "-" is a positional argument; "--name=VALUE" is "--name VALUE". */
int cli_parse(const cli_spec *spec, int argc, char **argv, int *n_pos);
void cli_usage(const cli_spec *spec, FILE *f);

/* The one numeric parser: the whole of s must be a number in [lo, hi] (no "12abc", no
   leading blanks, no NaN or infinity). On a bad value, prints "mmspcl CMD: OPT 'S': ..." with
   the accepted range and returns 2; 0 on success. */
int cli_parse_int(const char *cmd, const char *opt, const char *s, long long lo, long long hi, long long *out);
int cli_parse_real(const char *cmd, const char *opt, const char *s, double lo, double hi, double *out);
int cli_parse_u64(const char *cmd, const char *opt, const char *s, uint64_t lo, uint64_t hi, uint64_t *out);

/* The classifier's heads (mmspcl.h, CLASSIFIER): --head of classify and eval. */
#define CLI_EMOTION_HEADS "emotion, lr, protos, linear, view.t, view.a, view.v"
#define CLI_SENTIMENT_HEADS "sentiment, lr, linear"
/* 0 when head (NULL: the default) is one of the task's heads, else 2 after a message naming
   them (and the other task's, when head is one of those). */
int cli_check_head(const char *cmd, const char *opt, const char *head, int sentiment);

/* ---- files --------------------------------------------------------------------------------- */
/* 1 when a and b name the same existing file (device and inode), else 0. */
int cli_same_file(const char *a, const char *b);
/* Refuses (exit status 2, message naming both options) when output out_path is the same file
   as any of the n inputs in_paths (NULL entries skipped; "-" is compared as the file standard
   input reads, when that is a regular file). 0 when they all differ. */
int cli_refuse_same(const char *cmd, const char *out_opt, const char *out_path, int n, const char *const *in_opts,
                    const char *const *in_paths);
/* At most one of the n paths may be "-" (standard input); 0, or 2 after a message. */
int cli_one_stdin(const char *cmd, int n, const char *const *opts, const char *const *paths);

/* Weights from path ("-": standard input, read whole), with cli_fail_io's messages: 0 or 1. */
int cli_weights_open(const char *cmd, const char *path, mmspcl_weights **w);
/* A classifier from path ("-": standard input); *hold keeps the bytes read from standard input
   (free it with mmspcl_weights_free after mmspcl_classifier_free). 0 or 1. */
int cli_classifier_load(const char *cmd, const char *path, mmspcl_classifier *m, mmspcl_weights **hold);

/* An output file: created as PATH.tmp-XXXXXX in PATH's folder (mode 0666 & ~umask, or the
   mode of the file it replaces), renamed over PATH by cli_out_commit. "-" is standard output.
   An existing PATH that is not a regular file (a device, a FIFO) is opened and written in place,
   and never removed. A folder, a missing folder or an unwritable one fails at cli_out_open,
   before any work, leaving nothing behind. */
typedef struct cli_out {
    FILE *f;
    char *path, *tmp;     /* tmp NULL: writing in place (standard output, a device) */
    int is_stdout, slot;
    int weights;          /* 1: a weight file the library writes to tmp (cli_out_weights); f is NULL */
} cli_out;
int cli_out_open(cli_out *o, const char *cmd, const char *path);   /* 0, or 1 after a message */
/* Flushes, closes and renames; 0, or 1 after a message (the temporary file removed). */
int cli_out_commit(cli_out *o, const char *cmd);
/* Closes and removes the temporary file (never PATH); safe on a zeroed or committed cli_out. */
void cli_out_discard(cli_out *o);
/* A weight file as one of several outputs: cli_check_weights_output's checks, then o->tmp is
   PATH.tmp, the name to give mmspcl_writer_save (which writes PATH.tmp.tmp and renames it to
   PATH.tmp; a stale PATH.tmp.tmp is treated as PATH.tmp is), renamed over PATH by
   cli_out_commit / cli_outs_commit. 0, or 1 after a message (2 for "-"). */
int cli_out_weights(cli_out *o, const char *cmd, const char *opt, const char *path);
/* Several outputs, all or nothing: first every file is completed (flushed, synced, closed; a
   weight file must exist under its temporary name), then, only when all are, each is renamed
   over its PATH. On a failure every temporary file not yet renamed is removed and 1 returned
   after a message: no PATH is created or changed (a rename itself fails only when the folder
   changes under the command; the outputs renamed before it then stay). NULL entries are
   skipped. 0 when all are in place. */
int cli_outs_commit(cli_out *const *o, int n, const char *cmd);
void cli_outs_discard(cli_out *const *o, int n);
/* n floats, little-endian float32, to an output; 0 or 1 after a message. */
int cli_out_f32(cli_out *o, const char *cmd, const float *x, size_t n);
/* The whole of path ("-": standard output) through a cli_out: 0 or 1 after a message. */
int cli_write_f32(const char *cmd, const char *path, const float *x, size_t n);

/* Checks before any work that path can be written by mmspcl_writer_save (PATH.tmp, renamed):
   not a folder nor an existing non-regular file, its folder exists and takes a new file. A
   PATH.tmp left by an interrupted write (empty or starting with the weight-file magic) is
   removed; any other PATH.tmp is refused (the writer would overwrite it). PATH.tmp is then
   registered for removal should a signal end the process. 0, or 1 after a message (2 for "-"). */
int cli_check_weights_output(const char *cmd, const char *opt, const char *path);

/* Installs SIGINT / SIGTERM / SIGHUP handlers that remove the registered temporary files. */
void cli_install_signals(void);
/* Registers a temporary file for removal on a signal: its slot, or -1 when full. */
int cli_tmp_register(const char *path);
void cli_tmp_unregister(int slot);

/* ---- standard output ----------------------------------------------------------------------- */
/* fflush + ferror of stdout: 0 when everything written reached it, else 1 after a message. */
int cli_check_stdout(const char *cmd);

/* ---- JSON ---------------------------------------------------------------------------------- */
/* s as a JSON string: invalid UTF-8 as U+FFFD, control characters, quote and backslash escaped. */
void cli_json_str(FILE *f, const char *s);
void cli_json_strn(FILE *f, const char *s, size_t n);
/* A number ("%.*g"); null when it is not finite (JSON has no NaN or infinity). */
void cli_json_num(FILE *f, double v, int digits);
/* A number with a fixed count of decimals ("%.*f"); null when it is not finite. */
void cli_json_fixed(FILE *f, double v, int decimals);

int mmspcl_cmd_inspect(int argc, char **argv);
int mmspcl_cmd_tokenize(int argc, char **argv);
int mmspcl_cmd_encode_image(int argc, char **argv);
int mmspcl_cmd_encode_audio(int argc, char **argv);
int mmspcl_cmd_extract(int argc, char **argv);
int mmspcl_cmd_bench(int argc, char **argv);
int mmspcl_cmd_encode_text(int argc, char **argv);
int mmspcl_cmd_train(int argc, char **argv);
int mmspcl_cmd_pretrain(int argc, char **argv);
int mmspcl_cmd_heads(int argc, char **argv);
int mmspcl_cmd_eval(int argc, char **argv);
int mmspcl_cmd_classify(int argc, char **argv);
int mmspcl_cmd_ablate(int argc, char **argv);
#endif
