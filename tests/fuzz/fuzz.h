/* fuzz.h — shared by the fuzz targets in tests/fuzz/ (docs/ROBUSTNESS.md).

   Each tests/fuzz/fuzz_NAME.c is one target. Its body is written as
       FUZZ_TARGET(NAME) { ... use data[0..size) ...; return 0; }
   which becomes
     - libFuzzer's `int LLVMFuzzerTestOneInput(const uint8_t *, size_t)` when the file is built on
       its own (make fuzz: clang -fsanitize=fuzzer,address,undefined), or with
       tests/fuzz/replay_main.c (any compiler: runs the files and folders given as arguments);
     - `static int fuzz_NAME(const uint8_t *, size_t)` when FUZZ_REPLAY_ALL is defined:
       tests/test_fuzz_replay.c includes every target into one program and replays the seed
       corpora and the regression inputs through each of them under `make test`.
   A target never prints on bad input (the library returns an error). FUZZ_CHECK states an
   invariant that must hold for every input (e.g. decode(encode(x)) == x): it aborts under
   libFuzzer (a finding) and counts a failure in the replay test. */
#ifndef MMSPCL_FUZZ_H
#define MMSPCL_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef FUZZ_REPLAY_ALL
#define FUZZ_TARGET(name) static int fuzz_##name(const uint8_t *data, size_t size)
static int fuzz_check_failures;
#define FUZZ_CHECK(cond) do { if (!(cond)) { fuzz_check_failures++; \
    fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); } } while (0)
#else
#ifdef __cplusplus
#define FUZZ_EXTERN_C extern "C"
#else
#define FUZZ_EXTERN_C
#endif
#define FUZZ_TARGET(name) \
    FUZZ_EXTERN_C int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size); \
    FUZZ_EXTERN_C int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
#define FUZZ_CHECK(cond) do { if (!(cond)) { \
    fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); abort(); } } while (0)
#endif

#if defined(__GNUC__) || defined(__clang__)
#define FUZZ_FN static __attribute__((unused))
#else
#define FUZZ_FN static
#endif

/* Little helpers for targets that split one input into several parts. */
typedef struct fuzz_reader { const uint8_t *p; size_t n; } fuzz_reader;

FUZZ_FN unsigned fuzz_u8(fuzz_reader *r) {
    unsigned v;
    if (!r->n) return 0;
    v = r->p[0];
    r->p++;
    r->n--;
    return v;
}

/* The next part up to (not including) the 2-byte separator "\xff\xfe", or the rest. */
FUZZ_FN const uint8_t *fuzz_part(fuzz_reader *r, size_t *len) {
    const uint8_t *start = r->p;
    size_t i;
    for (i = 0; i + 1 < r->n; i++)
        if (r->p[i] == 0xff && r->p[i + 1] == 0xfe) {
            *len = i;
            r->p += i + 2;
            r->n -= i + 2;
            return start;
        }
    *len = r->n;
    r->p += r->n;
    r->n = 0;
    return start;
}

#endif
