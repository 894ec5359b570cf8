/* Shared helpers of the mmspcl command-line front end (tools/cli/). */
#ifndef MMSPCL_CLI_H
#define MMSPCL_CLI_H
#include "mmspcl.h"

/* One subcommand: returns the process exit status (0 ok, 1 runtime error, 2 usage error). */
typedef int (*mmspcl_cli_fn)(int argc, char **argv);

/* Prints "mmspcl CMD: message" to stderr; returns 1. */
int cli_fail(const char *cmd, const char *fmt, ...);
/* Value of "--name VALUE" at argv[*i] (advances *i), or NULL after printing a usage error. */
const char *cli_arg_value(const char *cmd, int argc, char **argv, int *i);
/* Writes n floats little-endian to path; 0 on success. */
int cli_write_f32(const char *path, const float *x, size_t n);

int mmspcl_cmd_inspect(int argc, char **argv);
int mmspcl_cmd_tokenize(int argc, char **argv);
int mmspcl_cmd_encode_image(int argc, char **argv);
int mmspcl_cmd_bench(int argc, char **argv);
int mmspcl_cmd_encode_text(int argc, char **argv);
int mmspcl_cmd_train(int argc, char **argv);
int mmspcl_cmd_eval(int argc, char **argv);
int mmspcl_cmd_classify(int argc, char **argv);
#endif
