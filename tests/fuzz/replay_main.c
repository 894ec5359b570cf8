/* replay_main.c — a main() for any fuzz target, for builds without libFuzzer (gcc, valgrind,
   cross compilers):
       cc -I. tests/fuzz/fuzz_image.c tests/fuzz/replay_main.c -lm -o fuzz_image
       ./fuzz_image tests/fuzz/corpus/image tests/fuzz/regressions/image crash-1234
   Every argument is a file or a folder (its regular files, not recursive). Each input is copied
   into a buffer of exactly its size (so ASan / valgrind see reads past the end) and passed to
   LLVMFuzzerTestOneInput. Prints one line per input with -v, and a summary. Exit status 0 when
   every input ran (a crash ends the program, as under libFuzzer). */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/test.h"

#ifdef __cplusplus
extern "C"
#endif
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int verbose;

static int run_file(const char *path) {
    size_t n;
    unsigned char *data = test_read_file(path, &n), *buf;
    if (!data) { fprintf(stderr, "%s: cannot read\n", path); return -1; }
    buf = (unsigned char *)malloc(n ? n : 1);
    if (!buf) { free(data); fprintf(stderr, "%s: out of memory\n", path); return -1; }
    memcpy(buf, data, n);   /* test_read_file adds a NUL: the copy has exactly n bytes */
    free(data);
    if (verbose) fprintf(stderr, "%s (%zu bytes)\n", path, n);
    LLVMFuzzerTestOneInput(buf, n);  /* exactly n bytes: a read past them is caught */
    free(buf);
    return 0;
}

int main(int argc, char **argv) {
    int i, files = 0, bad = 0;
    for (i = 1; i < argc; i++) {
        struct stat sb;
        if (strcmp(argv[i], "-v") == 0) { verbose = 1; continue; }
        if (argv[i][0] == '-') continue;  /* libFuzzer flags given by habit: ignored */
        if (stat(argv[i], &sb) != 0) { fprintf(stderr, "%s: not found\n", argv[i]); bad++; continue; }
        if (S_ISDIR(sb.st_mode)) {
            DIR *d = opendir(argv[i]);
            struct dirent *e;
            if (!d) { fprintf(stderr, "%s: cannot open folder\n", argv[i]); bad++; continue; }
            while ((e = readdir(d)) != NULL) {
                char p[4096];
                struct stat fs;
                if (e->d_name[0] == '.') continue;
                snprintf(p, sizeof p, "%s/%s", argv[i], e->d_name);
                if (stat(p, &fs) != 0 || !S_ISREG(fs.st_mode)) continue;
                if (run_file(p)) bad++; else files++;
            }
            closedir(d);
        } else {
            if (run_file(argv[i])) bad++; else files++;
        }
    }
    printf("replayed %d input%s%s\n", files, files == 1 ? "" : "s", bad ? " (some could not be read)" : "");
    return bad ? 1 : 0;
}
