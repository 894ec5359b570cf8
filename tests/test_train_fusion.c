/* build/examples/train_fusion end to end on small files written here: every --fusion trains and
   ends with "test weighted F1 XX.XX", a saved MulT head loads with mmspcl_mult_seq_load, --help,
   and bad input is refused naming the file, the line or the byte (never a crash). */
#define MMSPCL_IMPLEMENTATION
#include "mmspcl.h"
#include "tests/test.h"

#define TMP "build/tests/tmp/fusion"
#define N 60

static void write_floats(const char *path, const float *x, size_t n) {
    unsigned char *b = (unsigned char *)malloc(4 * n + 1);
    size_t i;
    for (i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        b[4 * i] = (unsigned char)u; b[4 * i + 1] = (unsigned char)(u >> 8);
        b[4 * i + 2] = (unsigned char)(u >> 16); b[4 * i + 3] = (unsigned char)(u >> 24);
    }
    CHECK(test_write_file(path, b, 4 * n) == 0, "write %s", path);
    free(b);
}

static void write_text(const char *path, const char *s) { CHECK(test_write_file(path, s, strlen(s)) == 0, "write %s", path); }

/* the files' contents, kept for the inference checks */
static float t[N * 4 * 8], a[N * 3 * 4];
static int lens_t[N], lens_a[N];

/* t: 4 steps of 8, a: 3 steps of 4, lengths 1..L, zero padding; labels 0..2; split 40/10/10 */
static void make_files(void) {
    char lt[N * 4], la[N * 4], lab[N * 4], sp[N * 8];
    size_t pt = 0, pa = 0, pl = 0, ps = 0;
    int i, s, k;
    unsigned r = 12345;
    memset(t, 0, sizeof t); memset(a, 0, sizeof a);
    for (i = 0; i < N; i++) {
        const int Lt = 1 + i % 4, La = 1 + (i / 2) % 3, c = i % 3;
        lens_t[i] = Lt; lens_a[i] = La;
        for (s = 0; s < Lt; s++) for (k = 0; k < 8; k++) { r = r * 1103515245u + 12345u; t[(i * 4 + s) * 8 + k] = (float)((int)(r >> 16) % 200 - 100) / 50.0f + (k == c ? 2.0f : 0.0f); }
        for (s = 0; s < La; s++) for (k = 0; k < 4; k++) { r = r * 1103515245u + 12345u; a[(i * 3 + s) * 4 + k] = (float)((int)(r >> 16) % 200 - 100) / 50.0f; }
        pt += (size_t)sprintf(lt + pt, "%d\n", Lt);
        pa += (size_t)sprintf(la + pa, "%d\n", La);
        pl += (size_t)sprintf(lab + pl, "%d\n", c);
        ps += (size_t)sprintf(sp + ps, "%s\n", i < 40 ? "train" : i < 50 ? "dev" : "test");
    }
    write_floats(TMP "/t.f32", t, N * 4 * 8);
    write_floats(TMP "/a.f32", a, N * 3 * 4);
    write_text(TMP "/lens_t.txt", lt);
    write_text(TMP "/lens_a.txt", la);
    write_text(TMP "/labels.txt", lab);
    write_text(TMP "/split.txt", sp);
}

#define ARGS "--t " TMP "/t.f32 --len-t 4 --dim-t 8 --lens-t " TMP "/lens_t.txt --a " TMP "/a.f32 --len-a 3 --dim-a 4 " \
             "--lens-a " TMP "/lens_a.txt --labels " TMP "/labels.txt --split " TMP "/split.txt"

static void test_kinds(void) {
    static const char *const kinds[4] = { "linear", "mult", "bottleneck", "prune" };
    int k;
    for (k = 0; k < 4; k++) {
        char *out = NULL, *last;
        double f1 = -1;
        int rc = test_run(&out, "build/examples/train_fusion --fusion %s " ARGS " --epochs 2 --d 8 --heads 2 2>&1", kinds[k]);
        CHECK(rc == 0 && out, "--fusion %s: exit %d: %s", kinds[k], rc, out ? out : "");
        last = out ? strstr(out, "test weighted F1 ") : NULL;
        CHECK(last && sscanf(last, "test weighted F1 %lf", &f1) == 1 && f1 >= 0 && f1 <= 100 && !strchr(last, '\n')[1],
              "--fusion %s: the last line is 'test weighted F1 XX.XX'", kinds[k]);
        CHECK(out && strstr(out, "epoch   2") && strstr(out, "dev weighted F1"), "--fusion %s: per-epoch dev F1", kinds[k]);
        free(out);
    }
}

/* without lengths files a row ends after its last step that is not all zeros */
static void test_inferred_lengths(void) {
    char *out = NULL;
    int rc = test_run(&out, "build/examples/train_fusion --fusion mult --t " TMP "/t.f32 --len-t 4 --dim-t 8 --a " TMP "/a.f32 --len-a 3 "
                            "--dim-a 4 --labels " TMP "/labels.txt --split " TMP "/split.txt --epochs 1 --d 8 2>&1");
    CHECK(rc == 0 && out && strstr(out, "test weighted F1 "), "no lengths files: exit %d: %s", rc, out ? out : "");
    free(out);
}

static void test_saved_mult(void) {
    mmspcl_weights *w = NULL;
    mmspcl_mult_seq m;
    mmspcl_error err;
    int rc = test_run(NULL, "build/examples/train_fusion --fusion mult " ARGS " --epochs 1 --d 8 --save " TMP "/m.mmw >/dev/null 2>&1");
    CHECK(rc == 0, "mult --save: exit %d", rc);
    CHECK(!mmspcl_weights_open(&w, TMP "/m.mmw", &err) && !mmspcl_mult_seq_load(&m, w, "fusion", &err), "saved head loads: %s", err.msg);
    if (w) { CHECK(m.cfg.d == 8 && m.cfg.dims[0] == 8 && m.cfg.dims[1] == 4 && m.cfg.out_dim == 3, "saved config"); mmspcl_mult_seq_free(&m); }
    mmspcl_weights_free(w);
}

/* per-pair bottlenecks train, save and load with their sharing rule */
static void test_saved_pair_bottleneck(void) {
    mmspcl_weights *w = NULL;
    mmspcl_mbt m;
    mmspcl_error err;
    int rc = test_run(NULL, "build/examples/train_fusion --fusion bottleneck --bottleneck per-pair " ARGS " --epochs 1 --d 8 --save " TMP "/b.mmw >/dev/null 2>&1");
    CHECK(rc == 0, "bottleneck per-pair --save: exit %d", rc);
    memset(&m, 0, sizeof m);
    CHECK(!mmspcl_weights_open(&w, TMP "/b.mmw", &err) && !mmspcl_mbt_load(&m, w, "fusion", &err), "saved MBT loads: %s", err.msg);
    if (w) CHECK(m.bottleneck == MMSPCL_BOTTLENECK_PAIR && m.n_sets == 1 && m.n_fusion == 4, "saved sharing rule (%d, %d sets)", m.bottleneck, m.n_sets);
    mmspcl_mbt_free(&m);
    mmspcl_weights_free(w);
}

/* scenic's readout trains, saves and loads; the saved head's float inference over the test rows,
   with their lengths (the padding mask), gives the accuracy train_fusion printed */
static void test_saved_joint_bottleneck(void) {
    mmspcl_weights *w = NULL;
    mmspcl_mbt m;
    mmspcl_error err;
    char *out = NULL, *p;
    float y[10 * 3];
    double printed = -1;
    const float *x[3];
    const int *lens[3];
    int rc = test_run(&out, "build/examples/train_fusion --fusion bottleneck --readout joint " ARGS " --epochs 2 --d 8 --save " TMP "/bj.mmw 2>&1");
    int i, c, right = 0;
    CHECK(rc == 0 && out && (p = strstr(out, "test accuracy ")) && sscanf(p, "test accuracy %lf", &printed) == 1, "bottleneck --readout joint --save: exit %d", rc);
    memset(&m, 0, sizeof m);
    CHECK(!mmspcl_weights_open(&w, TMP "/bj.mmw", &err) && !mmspcl_mbt_load(&m, w, "fusion", &err), "saved MBT loads: %s", err.msg);
    x[0] = t + 50 * 4 * 8; x[1] = a + 50 * 3 * 4; x[2] = NULL;
    lens[0] = lens_t + 50; lens[1] = lens_a + 50; lens[2] = NULL;
    if (w) {
        CHECK(m.readout == MMSPCL_READOUT_JOINT && m.out_proj.in == 8, "saved readout %d (out from %d)", m.readout, m.out_proj.in);
        CHECK(!mmspcl_mbt_forward_seq(&m, x, lens, 10, y, &err), "saved MBT forward: %s", err.msg);
        for (i = 0; i < 10; i++) {
            int best = 0;
            for (c = 1; c < 3; c++) if (y[i * 3 + c] > y[i * 3 + best]) best = c;
            right += best == (50 + i) % 3;
        }
        CHECK(fabs(10.0 * right - printed) < 1e-6, "float inference with lengths: accuracy %d0.00, train_fusion printed %.2f", right, printed);
    }
    mmspcl_mbt_free(&m);
    mmspcl_weights_free(w);
    free(out);
}

/* pruning with the common projection and the joint pool trains, saves and loads (mmspcl_xprune_load) */
static void test_saved_prune(void) {
    mmspcl_weights *w = NULL;
    mmspcl_xprune p;
    mmspcl_fuse_linear fl;
    mmspcl_error err;
    int rc = test_run(NULL, "build/examples/train_fusion --fusion prune --prune-proj 8 --prune-pool joint " ARGS " --epochs 1 --save " TMP "/p.mmw >/dev/null 2>&1");
    CHECK(rc == 0, "prune --prune-proj --save: exit %d", rc);
    CHECK(!mmspcl_weights_open(&w, TMP "/p.mmw", &err) && !mmspcl_xprune_load(&p, w, "prune", &err) && !mmspcl_fuse_linear_load(&fl, w, "fusion", &err),
          "saved pruning layer and fusion load: %s", err.msg);
    if (w) CHECK(p.cfg.proj_dim == 8 && p.cfg.joint == 1 && p.cfg.K == 4 && p.lay.mods == MMSPCL_MOD_A && fl.dims[0] == 8 && fl.dims[1] == 8,
                 "saved pruning config");
    mmspcl_weights_free(w);
}

/* exit status 1 or 2 and a message that contains want */
static void expect_fail(const char *what, const char *args, const char *want) {
    char *out = NULL;
    int rc = test_run(&out, "build/examples/train_fusion %s 2>&1", args);
    CHECK((rc == 1 || rc == 2) && out && strstr(out, want), "%s: exit %d, wanted '%s' in: %s", what, rc, want, out ? out : "");
    free(out);
}

static void test_bad_input(void) {
    char *out = NULL;
    float bad[2 * 4 * 8];
    CHECK(test_run(&out, "build/examples/train_fusion --help") == 0 && out && strstr(out, "usage: train_fusion"), "--help");
    free(out);
    expect_fail("unknown fusion", "--fusion lstm " ARGS, "expected linear, mult, bottleneck or prune");
    expect_fail("unknown option", "--frobnicate 1 " ARGS, "unknown option --frobnicate");
    expect_fail("one modality", "--t " TMP "/t.f32 --len-t 4 --dim-t 8 --labels " TMP "/labels.txt --split " TMP "/split.txt", "two or three modalities");
    expect_fail("missing file", "--t " TMP "/nope.f32 --len-t 4 --dim-t 8 --a " TMP "/a.f32 --len-a 3 --dim-a 4 --labels " TMP "/labels.txt --split " TMP "/split.txt", "nope.f32");
    expect_fail("wrong shape", "--t " TMP "/t.f32 --len-t 7 --dim-t 8 --a " TMP "/a.f32 --len-a 3 --dim-a 4 --labels " TMP "/labels.txt --split " TMP "/split.txt", "7680 bytes is not a whole number of rows of 7 x 8");
    write_text(TMP "/lens_bad.txt", "1\n9\n");
    expect_fail("length count", "--t " TMP "/t.f32 --len-t 4 --dim-t 8 --lens-t " TMP "/lens_bad.txt --a " TMP "/a.f32 --len-a 3 --dim-a 4 --labels " TMP "/labels.txt --split " TMP "/split.txt", "2 lengths for 60 rows");
    {   /* a length past L, on its line */
        char s[N * 4];
        size_t p = 0;
        int i;
        for (i = 0; i < N; i++) p += (size_t)sprintf(s + p, "%d\n", i == 7 ? 5 : 1);
        write_text(TMP "/lens_long.txt", s);
    }
    expect_fail("length past L", "--t " TMP "/t.f32 --len-t 4 --dim-t 8 --lens-t " TMP "/lens_long.txt --a " TMP "/a.f32 --len-a 3 --dim-a 4 --labels " TMP "/labels.txt --split " TMP "/split.txt", "line 8: length 5 is outside 1..4");
    memset(bad, 0, sizeof bad);
    bad[1 * 4 * 8 + 3 * 8 + 2] = 1.0f;   /* row 1, step 3: past its length 1 */
    write_floats(TMP "/t_pad.f32", bad, 2 * 4 * 8);
    write_text(TMP "/lens2.txt", "1\n1\n");
    write_text(TMP "/lab2.txt", "0\n1\n");
    write_text(TMP "/sp2.txt", "train\ntest\n");
    expect_fail("padding not zero", "--t " TMP "/t_pad.f32 --len-t 4 --dim-t 8 --lens-t " TMP "/lens2.txt --a " TMP "/t_pad.f32 --len-a 4 --dim-a 8 --labels " TMP "/lab2.txt --split " TMP "/sp2.txt", "row 1 step 3 is past its length 1 but not zero (byte 232)");
    write_text(TMP "/sp_bad.txt", "train\nmaybe\n");
    expect_fail("split word", "--t " TMP "/t_pad.f32 --len-t 4 --dim-t 8 --a " TMP "/t_pad.f32 --len-a 4 --dim-a 8 --labels " TMP "/lab2.txt --split " TMP "/sp_bad.txt", "line 2 'maybe' is not a split");
    expect_fail("label count", "--fusion linear --t " TMP "/t.f32 --len-t 4 --dim-t 8 --a " TMP "/a.f32 --len-a 3 --dim-a 4 --labels " TMP "/lab2.txt --split " TMP "/split.txt", "2 labels for 60 feature rows");
    expect_fail("bottleneck rule", "--fusion bottleneck --bottleneck per-triple " ARGS, "expected per-modality or per-pair");
    expect_fail("readout", "--fusion bottleneck --readout gap " ARGS, "--readout gap: expected per-modality or joint");
    expect_fail("readout of another kind", "--fusion mult --readout joint " ARGS, "--readout is an option of --fusion bottleneck, not of --fusion mult");
    expect_fail("prune pool", "--fusion prune --prune-pool both " ARGS, "expected separate or joint");
    expect_fail("prune modalities", "--fusion prune --prune-mods tv " ARGS, "expected a, v or av");
    expect_fail("absent pruning modality", "--fusion prune --prune-mods v " ARGS, "names v, which has no --v file");
    expect_fail("projection not a multiple of K", "--fusion prune --prune-proj 6 " ARGS, "multiple of --prune-k 4");
    expect_fail("option of another kind", "--fusion mult --prune-k 2 " ARGS, "--prune-k is an option of --fusion prune, not of --fusion mult");
    expect_fail("option of another kind, given first", "--bottleneck per-pair --fusion linear " ARGS, "--bottleneck is an option of --fusion bottleneck, not of --fusion linear");
    expect_fail("prune head size", "--fusion prune --prune-k 3 " ARGS, "multiple of --prune-k 3");
    CHECK(test_run(NULL, "build/examples/train_fusion --fusion prune --prune-threshold 0.5 " ARGS " --epochs 1 >/dev/null 2>&1") == 0,
          "prune with a threshold runs");
}

int main(void) {
    CHECK(test_run(NULL, "mkdir -p " TMP) == 0, "mkdir");
    make_files();
    test_bad_input();
    test_kinds();
    test_saved_mult();
    test_saved_pair_bottleneck();
    test_saved_joint_bottleneck();
    test_saved_prune();
    test_inferred_lengths();
    return TEST_END();
}
