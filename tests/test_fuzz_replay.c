/* test_fuzz_replay.c — replays every seed (tests/fuzz/corpus/<target>/) and every regression
   input (tests/fuzz/regressions/<target>/, crashes the fuzzers once found) through EVERY fuzz
   target, not only its own: a PNG through the JSON reader, a weight file through the CSV reader.
   Each (input, target) pair passes when the target returns without tripping one of its
   invariants (FUZZ_CHECK); a crash ends the program, which `make test` counts as a failure.
   The targets are the libFuzzer entry points of tests/fuzz/ (docs/ROBUSTNESS.md), compiled here
   with FUZZ_REPLAY_ALL so that all of them live in one program. Run from the repository root. */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700
#endif
#define FUZZ_REPLAY_ALL
#define MMSPCL_IMPLEMENTATION
#include "mmspcl.h"
#define MELD_CSV_IMPLEMENTATION
#include "tools/train/meld_csv.h"
#include "tests/test.h"
#include "tests/fuzz/fuzz.h"

#include "tests/fuzz/fuzz_weights.c"
#include "tests/fuzz/fuzz_safetensors.c"
#include "tests/fuzz/fuzz_json.c"
#include "tests/fuzz/fuzz_config.c"
#include "tests/fuzz/fuzz_torchbin.c"
#include "tests/fuzz/fuzz_bpe.c"
#include "tests/fuzz/fuzz_image.c"
#include "tests/fuzz/fuzz_inflate.c"
#include "tests/fuzz/fuzz_meld.c"
#include "tests/fuzz/fuzz_dialogues.c"
#include "tests/fuzz/fuzz_wav.c"

#include <dirent.h>
#include <string.h>

typedef int (*replay_fn)(const uint8_t *data, size_t size);
static const struct { const char *name; replay_fn fn; } replay_targets[] = {
    {"weights", fuzz_weights}, {"safetensors", fuzz_safetensors}, {"json", fuzz_json},
    {"config", fuzz_config},   {"torchbin", fuzz_torchbin},       {"bpe", fuzz_bpe},
    {"image", fuzz_image},     {"inflate", fuzz_inflate},         {"meld", fuzz_meld},
    {"dialogues", fuzz_dialogues}, {"wav", fuzz_wav}};
#define REPLAY_N ((int)(sizeof replay_targets / sizeof replay_targets[0]))

static int replay_dir(const char *dir) {
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, alphasort), i, files = 0;
    for (i = 0; i < n; i++) {
        char path[1024];
        size_t size = 0;
        unsigned char *data;
        int t;
        if (names[i]->d_name[0] == '.') { free(names[i]); continue; }
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        free(names[i]);
        if (!(data = test_read_file(path, &size))) continue;  /* a folder, or unreadable */
        files++;
        for (t = 0; t < REPLAY_N; t++) {
            int before = fuzz_check_failures;
            /* an exact-size copy per target, so one target cannot hide another's overread */
            unsigned char *copy = (unsigned char *)malloc(size ? size : 1);
            if (!copy) { CHECK(0, "out of memory"); break; }
            memcpy(copy, data, size);
            replay_targets[t].fn(copy, size);
            free(copy);
            CHECK(fuzz_check_failures == before, "%s through target %s: an invariant failed", path, replay_targets[t].name);
        }
        free(data);
    }
    free(names);
    return files;
}

/* Limits no fuzz input can reach (sizes past what a test can allocate): refused before any
   allocation or read past the bytes given, with the limit named. */
static void limits(void) {
    static const char small[4] = "abc";
    meld_csv m;
    mmspcl_error err;
    err.msg[0] = 0;
    CHECK(meld_csv_parse(small, (size_t)MELD_CSV_MAX_BYTES + 1, "big.csv", &m, &err) == MMSPCL_ERR_UNSUPPORTED &&
              strstr(err.msg, "MELD_CSV_MAX_BYTES") != NULL,
          "MELD: a CSV over MELD_CSV_MAX_BYTES is refused by size (%s)", err.msg);
    CHECK(m.rows == NULL && m.text == NULL, "MELD: nothing allocated for a refused size");
    err.msg[0] = 0;
    CHECK(meld_csv_load("tests", &m, &err) == MMSPCL_ERR_IO, "MELD: loading a folder is an i/o error (%s)", err.msg);
}

int main(void) {
    limits();
    int t, seeds = 0, regressions = 0;
    for (t = 0; t < REPLAY_N; t++) {
        char dir[256];
        int got;
        snprintf(dir, sizeof dir, "tests/fuzz/corpus/%s", replay_targets[t].name);
        got = replay_dir(dir);
        CHECK(got > 0, "%s: no seed inputs (run tests/fuzz/make_corpus.py)", dir);
        seeds += got;
        snprintf(dir, sizeof dir, "tests/fuzz/regressions/%s", replay_targets[t].name);
        regressions += replay_dir(dir);  /* may be empty or absent */
    }
    printf("fuzz replay: %d seeds and %d regression inputs, each through %d targets\n", seeds, regressions, REPLAY_N);
    return TEST_END();
}
