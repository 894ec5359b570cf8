/* MSVE with a depth per combination (mmspcl.h 12.6, mmspcl_train.h 9): parameter counts worked
   out by hand, the combination and depth lists and their refusals, a depth-3 network against a
   hand calculation (float inference and double training), files without depth keys (depth 2),
   central finite differences of a mixed-depth model, and a save / load round trip. */
#define MMSPCL_IMPLEMENTATION
#define MMSPCL_TRAIN_IMPLEMENTATION
#include "mmspcl.h"
#include "mmspcl_train.h"
#include "tests/test.h"

#define T MMSPCL_MOD_T
#define A MMSPCL_MOD_A
#define V MMSPCL_MOD_V

static const char *tmp_path(const char *name, char *buf, size_t n) {
    FILE *f;
    snprintf(buf, n, "build/tests/%s", name);
    if ((f = fopen(buf, "wb"))) { fclose(f); return buf; }
    snprintf(buf, n, "/tmp/mmspcl_%s", name);
    return buf;
}

/* in -> classes Linear: 7 in + 7; in -> 100 -> 7: 100 in + 100 + 707; in -> 100 -> 100 -> 7:
   100 in + 100 + 10100 + 707. Combination widths at 1024/88/512: t 1024, a 88, ta 1112,
   v 512, tv 1536, av 600, tav 1624 (sum 6496). */
static void test_param_counts(void) {
    mmspcl_msve_cfg cfg;
    mmspcl_msve_model M;
    mmspcl_error err;
    int c;
    /* the paper's mix: five Linears 7 (1024 + 88 + 1112 + 512 + 600) + 35 = 23387;
       tv: 153600 + 100 + 707 = 154407; tav: 162400 + 100 + 10100 + 707 = 173307 */
    const size_t paper = 23387 + 154407 + 173307;
    memset(&cfg, 0, sizeof cfg);
    cfg.n_classes = 7; cfg.dims[0] = 1024; cfg.dims[1] = 88; cfg.dims[2] = 512; cfg.hidden = 100; cfg.act = MMSPCL_ACT_GELU;
    CHECK(mmspcl_msve_param_count(&cfg) == paper, "paper mix: %zu parameters, by hand %zu", mmspcl_msve_param_count(&cfg), paper);
    CHECK(paper == 351101, "the hand sum");
    CHECK(mmspcl_msve_model_create(&M, &cfg, 1, &err) == MMSPCL_OK, "create: %s", err.msg);
    CHECK(M.P.n == paper, "create: %zu parameters", M.P.n);
    CHECK(M.cfg.depth[T] == 1 && M.cfg.depth[A] == 1 && M.cfg.depth[T | A] == 1 && M.cfg.depth[V] == 1 && M.cfg.depth[T | V] == 2 &&
          M.cfg.depth[A | V] == 1 && M.cfg.depth[T | A | V] == 3, "create: the paper's depths");
    CHECK(mmspcl_params_find(&M.P, "tav.fc3.weight") && mmspcl_params_find(&M.P, "tv.fc2.bias") &&
          !mmspcl_params_find(&M.P, "tv.fc3.weight") && !mmspcl_params_find(&M.P, "t.fc2.weight"), "create: tensor names");
    printf("  MSVE, the paper's mix at 1024/88/512, 7 classes, hidden 100: %zu parameters\n", M.P.n);
    mmspcl_msve_model_free(&M);
    /* the paper's final model, {a, v, av} left out: minus 623, 3591, 4207 */
    CHECK(mmspcl_combos_parse("t,ta,tv,tav", &cfg.combos, &err) == MMSPCL_OK, "parse: %s", err.msg);
    CHECK(mmspcl_msve_param_count(&cfg) == paper - 623 - 3591 - 4207, "t,ta,tv,tav: %zu", mmspcl_msve_param_count(&cfg));
    /* every combination a 2-layer MLP of 64 (before depths): 64 * 6496 + 7 * 64 + 7 * 455 */
    cfg.combos = 0; cfg.hidden = 64;
    for (c = 1; c < 8; c++) cfg.depth[c] = 2;
    CHECK(mmspcl_msve_param_count(&cfg) == 419377, "all 2-layer, hidden 64: %zu", mmspcl_msve_param_count(&cfg));
    /* every combination one Linear: 7 * 6496 + 49; no hidden width needed */
    for (c = 1; c < 8; c++) cfg.depth[c] = 1;
    cfg.hidden = 0;
    CHECK(mmspcl_msve_param_count(&cfg) == 45521, "all linear: %zu", mmspcl_msve_param_count(&cfg));
    cfg.depth[T] = 4;
    CHECK(mmspcl_msve_model_create(&M, &cfg, 1, &err) == MMSPCL_ERR_ARG && strstr(err.msg, "depth 4 for t"), "depth 4 refused: %s", err.msg);
    cfg.depth[T] = 2;
    CHECK(mmspcl_msve_model_create(&M, &cfg, 1, &err) == MMSPCL_ERR_ARG && strstr(err.msg, "hidden 0"), "depth 2 without hidden refused: %s", err.msg);
    CHECK(mmspcl_msve_param_count(&cfg) == 0, "param count of a refused cfg is 0");
}

static void test_parse(void) {
    static const struct { const char *s; unsigned want; } ok[] = {
        {"t,ta,tv,tav", (1u << T) | (1u << (T | A)) | (1u << (T | V)) | (1u << (T | A | V))},
        {"at,vt,vat", (1u << (T | A)) | (1u << (T | V)) | (1u << (T | A | V))},
        {"a", 1u << A}, {"all", MMSPCL_COMBOS_ALL}, {"t,a,ta,v,tv,av,tav", MMSPCL_COMBOS_ALL}};
    static const struct { const char *s, *msg; } bad[] = {
        {"", "empty list"}, {"t,,a", "empty entry"}, {"t,", "empty entry"}, {"tx", "unknown letter 'x'"},
        {"tt", "repeats 't'"}, {"ta,at", "ta is listed twice"}, {"T", "unknown letter 'T'"}, {"t a", "unknown letter ' '"}};
    static const struct { const char *s, *msg; } bad_depth[] = {
        {"", "empty list"}, {"tv=4", "not COMBINATION=DEPTH"}, {"tv", "not COMBINATION=DEPTH"}, {"q=2", "unknown letter 'q'"},
        {"tv=2,vt=1", "tv is listed twice"}, {"tv=22", "not COMBINATION=DEPTH"}, {"=2", "empty entry"}, {"0", "not COMBINATION=DEPTH"}};
    mmspcl_error err;
    unsigned set;
    int i, d[8] = {0, 2, 2, 2, 2, 2, 2, 2}, keep[8];
    for (i = 0; i < (int)(sizeof ok / sizeof ok[0]); i++)
        CHECK(mmspcl_combos_parse(ok[i].s, &set, &err) == MMSPCL_OK && set == ok[i].want, "combos '%s': 0x%x", ok[i].s, set);
    for (i = 0; i < (int)(sizeof bad / sizeof bad[0]); i++) {
        set = 12345;
        CHECK(mmspcl_combos_parse(bad[i].s, &set, &err) == MMSPCL_ERR_ARG && strstr(err.msg, bad[i].msg) && set == 12345,
              "combos '%s' refused naming '%s': %s", bad[i].s, bad[i].msg, err.msg);
    }
    CHECK(mmspcl_depths_parse("tv=3,at=1", d, &err) == MMSPCL_OK && d[T | V] == 3 && d[T | A] == 1 && d[T] == 2, "depths tv=3,at=1");
    CHECK(mmspcl_depths_parse("paper", d, &err) == MMSPCL_OK && d[T] == 1 && d[T | V] == 2 && d[T | A | V] == 3 && d[A | V] == 1, "depths paper");
    CHECK(mmspcl_depths_parse("2", d, &err) == MMSPCL_OK && d[T] == 2 && d[T | A | V] == 2 && d[0] == 0, "depths 2");
    memcpy(keep, d, sizeof d);
    for (i = 0; i < (int)(sizeof bad_depth / sizeof bad_depth[0]); i++)
        CHECK(mmspcl_depths_parse(bad_depth[i].s, d, &err) == MMSPCL_ERR_ARG && strstr(err.msg, bad_depth[i].msg) && !memcmp(d, keep, sizeof d),
              "depths '%s' refused naming '%s', nothing set: %s", bad_depth[i].s, bad_depth[i].msg, err.msg);
    CHECK(!strcmp(mmspcl_combo_name(T | A | V), "tav") && !strcmp(mmspcl_combo_name(T | V), "tv") && !strcmp(mmspcl_combo_name(0), "") &&
          !strcmp(mmspcl_combo_name(8), ""), "combo names");
}

/* set a Linear's weight [out][in] and bias of the training model */
static void set_lin(mmspcl_msve_model *M, const mmspcl_lin *l, const double *w, const double *b) {
    memcpy(M->P.w + l->w, w, sizeof(double) * (size_t)l->in * l->out);
    memcpy(M->P.w + l->b, b, sizeof(double) * (size_t)l->out);
}

/* t only (2 wide), hidden 2, 2 classes, ReLU, depth 3:
     W1 = [[1, -1], [2, 0.5]] b1 = [0, -1]; W2 = [[1, 1], [-1, 2]] b2 = [0.5, 0]; W3 = [[1, 0], [2, -1]] b3 = [0, 1]
   x = [1, 3]: h1 = [-2, 2.5] -> [0, 2.5]; h2 = [3, 5]; logits [3, 6 - 5 + 1] = [3, 2]
   x = [3, 1]: h1 = [2, 5.5];  h2 = [8, 9];   logits [8, 16 - 9 + 1] = [8, 8]
   and the same W1, W2 as a depth-2 file without depth keys: x = [1, 3] -> [3, 5], x = [3, 1] -> [8, 9] */
static void test_hand(void) {
    static const double w1[4] = {1, -1, 2, 0.5}, b1[2] = {0, -1}, w2[4] = {1, 1, -1, 2}, b2[2] = {0.5, 0}, w3[4] = {1, 0, 2, -1}, b3[2] = {0, 1};
    static const float x[4] = {1, 3, 3, 1}, want3[4] = {3, 2, 8, 8}, want2[4] = {3, 5, 8, 9};
    const float *xs[3];
    float lf[4], fw[12];
    double ld[4];
    mmspcl_msve_cfg cfg;
    mmspcl_msve_model M;
    mmspcl_msve inf;
    mmspcl_weights *w = NULL;
    mmspcl_writer *wr;
    mmspcl_error err;
    char path[256];
    int i;
    int64_t sh[2] = {2, 2}, sb[1] = {2};
    xs[0] = x; xs[1] = xs[2] = NULL;
    memset(&cfg, 0, sizeof cfg);
    cfg.n_classes = 2; cfg.dims[0] = 2; cfg.hidden = 2; cfg.act = MMSPCL_ACT_RELU; cfg.depth[T] = 3;
    CHECK(mmspcl_msve_model_create(&M, &cfg, 3, &err) == MMSPCL_OK && M.cfg.combos == (1u << T), "hand: create %s", err.msg);
    set_lin(&M, &M.fc[T][0], w1, b1); set_lin(&M, &M.fc[T][1], w2, b2); set_lin(&M, &M.fc[T][2], w3, b3);
    CHECK(mmspcl_msve_model_forward(&M, xs, 2, 0, ld, NULL, &err) == MMSPCL_OK, "hand: forward");
    for (i = 0; i < 4; i++) CHECK(ld[i] == want3[i], "hand depth 3, training forward: logit %d is %g, by hand %g", i, ld[i], want3[i]);
    CHECK(mmspcl_msve_model_save(&M, tmp_path("test_msve_hand.mmw", path, sizeof path), "msve", 0, &err) == MMSPCL_OK, "hand: save %s", err.msg);
    CHECK(mmspcl_weights_open(&w, path, &err) == MMSPCL_OK && mmspcl_msve_load(&inf, w, "msve", &err) == MMSPCL_OK, "hand: load %s", err.msg);
    CHECK(inf.depth[T] == 3 && inf.hidden == 2 && inf.fc[T][2].out == 2, "hand: loaded depth 3");
    CHECK(mmspcl_msve_forward(&inf, xs, 2, 0, lf, &err) == MMSPCL_OK, "hand: float forward");
    for (i = 0; i < 4; i++) CHECK(lf[i] == want3[i], "hand depth 3, float inference: logit %d is %g, by hand %g", i, lf[i], want3[i]);
    mmspcl_weights_free(w);
    mmspcl_msve_model_free(&M);
    remove(path);
    /* a file of before depths: no msve.depth.* keys, t.fc1 and t.fc2 */
    for (i = 0; i < 4; i++) { fw[i] = (float)w1[i]; fw[6 + i] = (float)w2[i]; }
    for (i = 0; i < 2; i++) { fw[4 + i] = (float)b1[i]; fw[10 + i] = (float)b2[i]; }
    wr = mmspcl_writer_create();
    mmspcl_writer_set_int(wr, "msve.n_classes", 2); mmspcl_writer_set_int(wr, "msve.hidden", 2); mmspcl_writer_set_int(wr, "msve.act", 1);
    mmspcl_writer_set_int(wr, "msve.combos", 1 << T); mmspcl_writer_set_int(wr, "msve.dim.t", 2);
    mmspcl_writer_set_int(wr, "msve.dim.a", 0); mmspcl_writer_set_int(wr, "msve.dim.v", 0);
    mmspcl_writer_add_tensor(wr, "msve.t.fc1.weight", MMSPCL_F32, 2, sh, fw, 16, &err);
    mmspcl_writer_add_tensor(wr, "msve.t.fc1.bias", MMSPCL_F32, 1, sb, fw + 4, 8, &err);
    mmspcl_writer_add_tensor(wr, "msve.t.fc2.weight", MMSPCL_F32, 2, sh, fw + 6, 16, &err);
    mmspcl_writer_add_tensor(wr, "msve.t.fc2.bias", MMSPCL_F32, 1, sb, fw + 10, 8, &err);
    CHECK(mmspcl_writer_save(wr, path, NULL, NULL, &err) == MMSPCL_OK, "old file: save %s", err.msg);
    CHECK(mmspcl_weights_open(&w, path, &err) == MMSPCL_OK && mmspcl_msve_load(&inf, w, "msve", &err) == MMSPCL_OK, "old file: load %s", err.msg);
    CHECK(inf.depth[T] == 2, "old file: depth 2");
    CHECK(mmspcl_msve_forward(&inf, xs, 2, 0, lf, &err) == MMSPCL_OK, "old file: forward");
    for (i = 0; i < 4; i++) CHECK(lf[i] == want2[i], "old file (depth 2): logit %d is %g, by hand %g", i, lf[i], want2[i]);
    CHECK(mmspcl_msve_model_load(&M, w, "msve", &err) == MMSPCL_OK && M.cfg.depth[T] == 2 && M.P.n == 12, "old file: training load %s", err.msg);
    mmspcl_msve_model_free(&M);
    mmspcl_weights_free(w);
    /* a depth key out of range is refused, naming the key */
    mmspcl_writer_set_int(wr, "msve.depth.t", 4);
    CHECK(mmspcl_writer_save(wr, path, NULL, NULL, &err) == MMSPCL_OK, "bad depth: save");
    CHECK(mmspcl_weights_open(&w, path, &err) == MMSPCL_OK && mmspcl_msve_load(&inf, w, "msve", &err) == MMSPCL_ERR_FORMAT &&
          strstr(err.msg, "msve.depth.t"), "depth 4 in a file refused: %s", err.msg);
    mmspcl_weights_free(w);
    mmspcl_writer_free(wr);
    remove(path);
}

/* ---- central finite differences of a mixed-depth model (dropout masks fixed by the seed) ---- */
typedef struct fd_ctx { mmspcl_msve_model *M; const float *x[3]; const int *y; int n; unsigned set; } fd_ctx;
static double fd_loss(fd_ctx *c) {
    double lg[10 * 3];
    mmspcl_rng dr;
    mmspcl_rng_seed(&dr, 77);
    mmspcl_msve_model_forward(c->M, c->x, c->n, c->set, lg, &dr, NULL);
    return mmspcl_ce_loss(lg, c->y, c->n, 3, NULL, NULL);
}

static void test_fd(mmspcl_act act, const char *name) {
    float xt[10 * 5], xa[10 * 3], xv[10 * 4];
    int y[10] = {0, 1, 2, 0, 1, 2, 0, 1, 2, 1}, i;
    double lg[30], dl[30], *g, worst = 0;
    mmspcl_msve_cfg cfg;
    mmspcl_msve_model M;
    mmspcl_rng r;
    fd_ctx c;
    size_t k;
    mmspcl_rng_seed(&r, 5);
    for (i = 0; i < 50; i++) xt[i] = (float)mmspcl_rng_normal(&r);
    for (i = 0; i < 30; i++) xa[i] = (float)mmspcl_rng_normal(&r);
    for (i = 0; i < 40; i++) xv[i] = (float)mmspcl_rng_normal(&r);
    memset(&cfg, 0, sizeof cfg);
    cfg.n_classes = 3; cfg.dims[0] = 5; cfg.dims[1] = 3; cfg.dims[2] = 4; cfg.hidden = 4; cfg.act = act; cfg.dropout = 0.25;
    cfg.depth[T] = 1; cfg.depth[A] = 3; cfg.depth[T | A] = 2; cfg.depth[V] = 3; cfg.depth[T | V] = 1; cfg.depth[A | V] = 2; cfg.depth[T | A | V] = 3;
    CHECK(mmspcl_msve_model_create(&M, &cfg, 9, NULL) == MMSPCL_OK, "fd: create");
    for (i = 0; i < 3; i++) { M.mean[i] = (float *)calloc(8, sizeof(float)); M.std[i] = (float *)malloc(8 * sizeof(float)); }
    for (i = 0; i < 8; i++) { M.mean[0][i] = 0.1f * i; M.std[0][i] = 1.0f + 0.2f * i; M.std[1][i] = 0.7f; M.std[2][i] = 1.3f; }
    c.M = &M; c.x[0] = xt; c.x[1] = xa; c.x[2] = xv; c.y = y; c.n = 10; c.set = 0;
    {
        mmspcl_rng dr;
        mmspcl_rng_seed(&dr, 77);
        mmspcl_params_zero_grad(&M.P);
        mmspcl_msve_model_forward(&M, c.x, 10, 0, lg, &dr, NULL);
        mmspcl_ce_loss(lg, y, 10, 3, NULL, dl);
        mmspcl_msve_model_backward(&M, dl);
    }
    g = (double *)malloc(sizeof(double) * M.P.n);
    memcpy(g, M.P.g, sizeof(double) * M.P.n);
    for (k = 0; k < M.P.n; k++) {   /* every parameter */
        const double keep = M.P.w[k], h = 1e-5;
        double lp, lm, num, den, e;
        M.P.w[k] = keep + h; lp = fd_loss(&c);
        M.P.w[k] = keep - h; lm = fd_loss(&c);
        M.P.w[k] = keep;
        num = (lp - lm) / (2 * h);
        den = fabs(num) > fabs(g[k]) ? fabs(num) : fabs(g[k]);
        e = fabs(num - g[k]) / (den > 1e-6 ? den : 1e-6);
        if (e > worst) worst = e;
    }
    printf("  grad msve, depths t1 a3 ta2 v3 tv1 av2 tav3, %s, dropout 0.25: %zu parameters, max rel err %.2e\n", name, M.P.n, worst);
    CHECK(worst < 1e-4, "fd %s: max rel err %.3e", name, worst);
    free(g);
    mmspcl_msve_model_free(&M);
}

/* a trained mixed-depth model, saved and loaded: the float inference agrees with the double
   forward; a resumed model predicts the same */
static void test_roundtrip(void) {
    enum { N = 80 };
    float xt[N * 6], xa[N * 3], xv[N * 4], lf[N * 3];
    int y[N], i;
    double ld[N * 3], ld2[N * 3], md = 0, mx = 0;
    const float *xs[3];
    mmspcl_msve_cfg cfg;
    mmspcl_msve_train_cfg tc;
    mmspcl_msve_model M, M2;
    mmspcl_msve inf;
    mmspcl_dataset d;
    mmspcl_weights *w = NULL;
    mmspcl_error err;
    mmspcl_rng r;
    char path[256];
    mmspcl_rng_seed(&r, 11);
    for (i = 0; i < N; i++) {
        int k;
        y[i] = i % 3;
        for (k = 0; k < 6; k++) xt[i * 6 + k] = (float)(mmspcl_rng_normal(&r) + (k == y[i]));
        for (k = 0; k < 3; k++) xa[i * 3 + k] = (float)(mmspcl_rng_normal(&r) + (k == y[i]));
        for (k = 0; k < 4; k++) xv[i * 4 + k] = (float)mmspcl_rng_normal(&r);
    }
    xs[0] = xt; xs[1] = xa; xs[2] = xv;
    memset(&cfg, 0, sizeof cfg);
    cfg.n_classes = 3; cfg.dims[0] = 6; cfg.dims[1] = 3; cfg.dims[2] = 4; cfg.hidden = 5; cfg.act = MMSPCL_ACT_GELU; cfg.dropout = 0.1;
    CHECK(mmspcl_combos_parse("t,ta,tv,tav", &cfg.combos, &err) == MMSPCL_OK, "roundtrip: combos");
    CHECK(mmspcl_msve_model_create(&M, &cfg, 4, &err) == MMSPCL_OK, "roundtrip: create %s", err.msg);
    d.x[0] = xt; d.x[1] = xa; d.x[2] = xv; d.y = y; d.n = N;
    mmspcl_msve_train_defaults(&tc);
    tc.epochs = 3;
    CHECK(mmspcl_msve_train(&M, &d, NULL, &tc, NULL, NULL, NULL, &err) == MMSPCL_OK, "roundtrip: train %s", err.msg);
    CHECK(mmspcl_msve_model_save(&M, tmp_path("test_msve_rt.mmw", path, sizeof path), "m", 1, &err) == MMSPCL_OK, "roundtrip: save %s", err.msg);
    CHECK(mmspcl_weights_open(&w, path, &err) == MMSPCL_OK && mmspcl_msve_load(&inf, w, "m", &err) == MMSPCL_OK, "roundtrip: load %s", err.msg);
    CHECK(inf.combos == cfg.combos && inf.depth[T] == 1 && inf.depth[T | V] == 2 && inf.depth[T | A | V] == 3 && inf.depth[A] == 0,
          "roundtrip: combinations and depths");
    mmspcl_msve_forward(&inf, xs, N, 0, lf, NULL);
    mmspcl_msve_model_predict(&M, xs, N, 0, NULL, ld, NULL);
    for (i = 0; i < N * 3; i++) {
        if (fabs(lf[i] - ld[i]) > md) md = fabs(lf[i] - ld[i]);
        if (fabs(ld[i]) > mx) mx = fabs(ld[i]);
    }
    printf("  msve round trip: float inference vs double forward, max|diff| %.1e (max|logit| %.2f)\n", md, mx);
    CHECK(md <= 1e-5 * (1 + mx), "roundtrip: float inference agrees (%.2e)", md);
    CHECK(mmspcl_msve_model_load(&M2, w, "m", &err) == MMSPCL_OK && M2.P.n == M.P.n && M2.cfg.depth[T | A | V] == 3, "roundtrip: resume load %s", err.msg);
    mmspcl_msve_model_predict(&M2, xs, N, 0, NULL, ld2, NULL);
    for (md = 0, i = 0; i < N * 3; i++) if (fabs(ld2[i] - ld[i]) > md) md = fabs(ld2[i] - ld[i]);
    CHECK(md <= 1e-5 * (1 + mx), "roundtrip: resumed model agrees (%.2e)", md);
    mmspcl_msve_model_free(&M);
    mmspcl_msve_model_free(&M2);
    mmspcl_weights_free(w);
    remove(path);
}

int main(void) {
    test_param_counts();
    test_parse();
    test_hand();
    test_fd(MMSPCL_ACT_GELU, "GELU");
    test_fd(MMSPCL_ACT_RELU, "ReLU");
    test_roundtrip();
    return TEST_END();
}
