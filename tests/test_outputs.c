/* Several outputs of one command, all or nothing (tools/cli/cli.c: cli_outs_commit,
   cli_out_weights; tools/cli/cli.h, "outputs"): a failure of any output, found while writing
   or when completing it, leaves no output created or changed and no temporary file. Each case
   puts an earlier file with known bytes at every output's name and checks them byte for byte:
   1. two files, the second's write fails late (a full device, root only) or its name is taken
      by a folder (refused at open, before any work);
   2. a weight file (written by mmspcl_writer_save to o->tmp) with a file, the weight file not
      written, or the file's write failing: neither is placed; both written: both are placed,
      the weight file loads;
   3. a rename that fails (a folder put at the second name after the outputs were opened): the
      temporary files are removed;
   4. a stale PATH.tmp.tmp of an interrupted weight write is removed, a foreign one refused.
   The commands' own checks are in test_cli (encode-image, train), test_ablate and test_media. */
#define _XOPEN_SOURCE 700 /* mknod, lstat */
#define MMSPCL_IMPLEMENTATION
#include "mmspcl.h"
#include "tests/test.h"
#include "tools/cli/cli.c"
#include <sys/stat.h>
#include <sys/types.h>
#ifdef __linux__
#include <sys/sysmacros.h>   /* makedev */
#endif

#define TMP "build/tests/outputs"

static int exists(const char *p) { struct stat sb; return lstat(p, &sb) == 0; }

/* a small weight file to o->tmp, as a command hands it to the library */
static int write_weights(const cli_out *o) {
    static const float x[4] = {1, 2, 3, 4};
    const int64_t sh[1] = {4};
    mmspcl_writer *wr = mmspcl_writer_create();
    mmspcl_error err;
    int rc = !wr || mmspcl_writer_add_tensor(wr, "x", MMSPCL_F32, 1, sh, x, sizeof x, &err) ||
             mmspcl_writer_save(wr, o->tmp, NULL, NULL, &err);
    mmspcl_writer_free(wr);
    return rc;
}

static void test_two_files(void) {
    cli_out a, b, *o[2];
    o[0] = &a; o[1] = &b;
    test_write_file(TMP "/one.md", "old md", 6);
    test_write_file(TMP "/one.svg", "old svg", 7);
    /* the second name is a folder: refused when it is opened, the first's temporary removed */
    test_run(NULL, "mkdir -p " TMP "/two.svg");
    test_write_file(TMP "/two.md", "old md", 6);
    CHECK(cli_out_open(&a, "test", TMP "/two.md") == 0, "open two.md");
    CHECK(cli_out_open(&b, "test", TMP "/two.svg") == 1, "a folder as the second output is refused at open");
    cli_out_discard(&a);
    CHECK(test_file_is(TMP "/two.md", "old md") && test_count_names(TMP, ".tmp-") == 0, "a refused second output: the first untouched, no temporary file");
#ifdef __linux__
    /* the second output is a full device: its write fails when it is completed; the first is
       complete by then and must not be placed */
    if (geteuid() == 0 && mknod(TMP "/full.svg", S_IFCHR | 0666, makedev(1, 7)) == 0) {
        test_write_file(TMP "/full.md", "old md", 6);
        CHECK(cli_out_open(&a, "test", TMP "/full.md") == 0 && cli_out_open(&b, "test", TMP "/full.svg") == 0, "open md, full device");
        fputs("new md\n", a.f);
        fputs("new svg\n", b.f);
        CHECK(cli_outs_commit(o, 2, "test") == 1, "a full device as the second output fails the commit");
        CHECK(test_file_is(TMP "/full.md", "old md") && test_count_names(TMP, ".tmp-") == 0, "the first output was placed although the second failed");
        remove(TMP "/full.svg");
    } else
#endif
        printf("not root (or no mknod): the full-device case skipped\n");
    /* both complete: both placed, nothing left */
    CHECK(cli_out_open(&a, "test", TMP "/one.md") == 0 && cli_out_open(&b, "test", TMP "/one.svg") == 0, "open md, svg");
    fputs("new md", a.f);
    fputs("new svg", b.f);
    CHECK(cli_outs_commit(o, 2, "test") == 0 && test_file_is(TMP "/one.md", "new md") && test_file_is(TMP "/one.svg", "new svg") &&
          test_count_names(TMP, ".tmp") == 0, "two outputs committed together");
    cli_outs_discard(o, 2);   /* after a commit: nothing to do */
    CHECK(test_file_is(TMP "/one.md", "new md") && test_file_is(TMP "/one.svg", "new svg"), "a discard after the commit removed an output");
}

static void test_weights(void) {
    cli_out w, f, *o[2];
    mmspcl_weights *mw = NULL;
    mmspcl_error err;
    o[0] = &w; o[1] = &f;
    test_write_file(TMP "/m.mmw", "old model", 9);
    test_write_file(TMP "/m.txt", "old text", 8);
    /* the weight file never written (the command failed before): the text file is not placed */
    CHECK(cli_out_weights(&w, "test", "-o", TMP "/m.mmw") == 0 && w.weights && w.tmp && !strcmp(w.tmp, TMP "/m.mmw.tmp"), "weights output");
    CHECK(cli_out_open(&f, "test", TMP "/m.txt") == 0, "open m.txt");
    fputs("new text", f.f);
    CHECK(cli_outs_commit(o, 2, "test") == 1, "a weight file not written fails the commit");
    CHECK(test_file_is(TMP "/m.mmw", "old model") && test_file_is(TMP "/m.txt", "old text") && test_count_names(TMP, ".tmp") == 0,
          "an unwritten weight file: an output changed or a temporary file left");
    /* the weight file written, the text file's write fails (the stream in error): neither placed */
    CHECK(cli_out_weights(&w, "test", "-o", TMP "/m.mmw") == 0 && write_weights(&w) == 0 && exists(TMP "/m.mmw.tmp"), "weights to m.mmw.tmp");
    CHECK(cli_out_open(&f, "test", TMP "/m.txt") == 0, "open m.txt");
    fputs("new text", f.f);
    (void)fgetc(f.f);   /* reading a write-only stream sets its error flag: the write failed */
    CHECK(cli_outs_commit(o, 2, "test") == 1, "a failed text output fails the commit");
    CHECK(test_file_is(TMP "/m.mmw", "old model") && test_file_is(TMP "/m.txt", "old text") && test_count_names(TMP, ".tmp") == 0,
          "a failed second output: the weight file was placed or a temporary file left");
    /* both written: both placed; the weight file loads */
    CHECK(cli_out_weights(&w, "test", "-o", TMP "/m.mmw") == 0 && write_weights(&w) == 0, "weights to m.mmw.tmp");
    CHECK(cli_out_open(&f, "test", TMP "/m.txt") == 0, "open m.txt");
    fputs("new text", f.f);
    CHECK(cli_outs_commit(o, 2, "test") == 0 && test_file_is(TMP "/m.txt", "new text") && test_count_names(TMP, ".tmp") == 0, "weights + text committed");
    CHECK(mmspcl_weights_read(&mw, TMP "/m.mmw", &err) == MMSPCL_OK && mmspcl_weights_find(mw, "x"), "the committed weight file loads");
    mmspcl_weights_free(mw);
    /* a folder as a weight output is refused before any work */
    test_run(NULL, "mkdir -p " TMP "/d.mmw");
    CHECK(cli_out_weights(&w, "test", "--q8", TMP "/d.mmw") == 1 && !w.tmp, "a folder as a weight output");
}

static void test_rename_fails(void) {
    cli_out a, b, *o[2];
    o[0] = &a; o[1] = &b;
    /* the folder appears after the outputs were opened: the second rename fails; its temporary
       file is removed (the first, renamed before, stays: cli.h says so) */
    remove(TMP "/r2.txt");
    CHECK(cli_out_open(&a, "test", TMP "/r1.txt") == 0 && cli_out_open(&b, "test", TMP "/r2.txt") == 0, "open r1, r2");
    test_run(NULL, "mkdir -p " TMP "/r2.txt");
    fputs("r1", a.f);
    fputs("r2", b.f);
    CHECK(cli_outs_commit(o, 2, "test") == 1 && test_count_names(TMP, ".tmp") == 0, "a failed rename: temporary files left");
}

static void test_stale(void) {
    cli_out w;
    static const char partial[] = "MMSPCLWF partial";
    test_write_file(TMP "/s.mmw.tmp.tmp", partial, sizeof partial - 1);
    CHECK(cli_out_weights(&w, "test", "-o", TMP "/s.mmw") == 0 && !exists(TMP "/s.mmw.tmp.tmp"), "a stale PATH.tmp.tmp is removed");
    cli_out_discard(&w);
    test_write_file(TMP "/s.mmw.tmp.tmp", "user data", 9);
    CHECK(cli_out_weights(&w, "test", "-o", TMP "/s.mmw") == 1 && test_file_is(TMP "/s.mmw.tmp.tmp", "user data"), "a foreign PATH.tmp.tmp is refused and kept");
    remove(TMP "/s.mmw.tmp.tmp");
}

int main(void) {
    test_run(NULL, "rm -rf " TMP " && mkdir -p " TMP);
    test_two_files();
    test_weights();
    test_rename_fails();
    test_stale();
    return TEST_END();
}
