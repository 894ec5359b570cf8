/* Tiny test harness: CHECK(cond, fmt, ...) counts; TEST_END() prints "N passed, M failed" and
   returns the exit status. Each test program is run from the repository root. */
#ifndef MMSPCL_TEST_H
#define MMSPCL_TEST_H
#include <stdio.h>
#include <math.h>
static int test_passed, test_failed;
#define CHECK(cond, ...) do { if (cond) test_passed++; else { test_failed++; \
    fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); fprintf(stderr, __VA_ARGS__); \
    fputc('\n', stderr); } } while (0)
#define TEST_END() (printf("%d passed, %d failed\n", test_passed, test_failed), test_failed ? 1 : 0)
#endif
