/* Sequence MulT (mmspcl.h 12.9, mmspcl_train.h 12): the training twin's backward against central
   finite differences, the float inference of a saved head against the double forward, padding
   (padded steps never reach the output), bad input; and both against PyTorch: the committed
   outputs and gradients of tools/reference/mult_ref.py (tests/data/mult_ref/). The MBT fusion
   head (mmspcl_fusion MBT, mmspcl_mbt) against tools/reference/mbt_ref.py, a re-statement of
   scenic's bottleneck encoder (tests/data/mbt_ref/), in the same way. */
#define MMSPCL_IMPLEMENTATION
#define MMSPCL_TRAIN_IMPLEMENTATION
#include "mmspcl.h"
#include "mmspcl_train.h"
#include "tests/test.h"

typedef struct ms_case {
    mmspcl_mult_seq_cfg cfg;
    mmspcl_params P;
    mmspcl_mult_seq_train f;
    int n, T[3], *lens[3];
    double *x[3], *y, *wy;
} ms_case;

static void ms_free(ms_case *c) {
    int m;
    mmspcl_mult_seq_train_free(&c->f);
    mmspcl_params_free(&c->P);
    for (m = 0; m < 3; m++) { free(c->x[m]); free(c->lens[m]); }
    free(c->y); free(c->wy);
}

/* random inputs, zero past each sample's length (as the files of train_fusion are) */
static int ms_make(ms_case *c, const int dims[3], const int T[3], int pool, int n_mem, int padded, uint64_t seed) {
    mmspcl_rng r;
    mmspcl_error err;
    int m, i, t, j;
    memset(c, 0, sizeof *c);
    mmspcl_rng_seed(&r, seed);
    c->cfg.d = 8; c->cfg.n_heads = 2; c->cfg.n_layers = 2; c->cfg.n_mem_layers = n_mem;
    c->cfg.out_dim = 3; c->cfg.pool = pool;
    for (m = 0; m < 3; m++) { c->cfg.dims[m] = dims[m]; c->T[m] = T[m]; }
    c->n = 3;
    mmspcl_params_init(&c->P);
    if (mmspcl_mult_seq_train_create(&c->f, &c->P, "ms", &c->cfg, 0.0, 0.0, &r, &err)) { fprintf(stderr, "%s\n", err.msg); return -1; }
    for (m = 0; m < 3; m++) {
        if (!dims[m]) continue;
        c->x[m] = (double *)calloc((size_t)c->n * T[m] * dims[m], sizeof(double));
        c->lens[m] = (int *)malloc(sizeof(int) * (size_t)c->n);
        for (i = 0; i < c->n; i++) {
            c->lens[m][i] = padded ? 1 + (i * 7 + m) % T[m] : T[m];
            for (t = 0; t < c->lens[m][i]; t++)
                for (j = 0; j < dims[m]; j++) c->x[m][((size_t)i * T[m] + t) * dims[m] + j] = mmspcl_rng_normal(&r);
        }
    }
    c->y = (double *)malloc(sizeof(double) * (size_t)c->n * c->cfg.out_dim);
    c->wy = (double *)malloc(sizeof(double) * (size_t)c->n * c->cfg.out_dim);
    for (i = 0; i < c->n * c->cfg.out_dim; i++) c->wy[i] = mmspcl_rng_normal(&r);
    return 0;
}

static double ms_loss(ms_case *c) {
    double s = 0;
    int i;
    mmspcl_mult_seq_train_forward(&c->f, &c->P, (const double *const *)c->x, c->T, (const int *const *)c->lens, c->n, c->y, NULL, NULL);
    for (i = 0; i < c->n * c->cfg.out_dim; i++) s += c->y[i] * c->wy[i];
    return s;
}

/* relative error of one entry's analytic derivative against (L(v+h) - L(v-h)) / 2h */
static double ms_fd_entry(ms_case *c, double *v, double analytic) {
    const double h = 1e-5, keep = *v;
    double lp, lm, num, den;
    *v = keep + h; lp = ms_loss(c);
    *v = keep - h; lm = ms_loss(c);
    *v = keep;
    num = (lp - lm) / (2 * h);
    den = fabs(analytic) > fabs(num) ? fabs(analytic) : fabs(num);
    return fabs(analytic - num) / (den > 1e-6 ? den : 1e-6);
}

/* (seeds are picked so that no ReLU input lies within h of its kink: there central differences
   are wrong, not the backward) */
static void test_gradients(const char *what, const int dims[3], const int T[3], int pool, int n_mem, int padded,
                           uint64_t seed) {
    ms_case c;
    double *g, *dx[3] = { NULL, NULL, NULL }, worst = 0, e;
    size_t i, k, checked = 0;
    int m;
    if (ms_make(&c, dims, T, pool, n_mem, padded, seed)) { CHECK(0, "%s: create", what); return; }
    ms_loss(&c);
    mmspcl_params_zero_grad(&c.P);
    for (m = 0; m < 3; m++) if (dims[m]) dx[m] = (double *)calloc((size_t)c.n * T[m] * dims[m], sizeof(double));
    mmspcl_mult_seq_train_backward(&c.f, &c.P, (const double *const *)c.x, c.wy, dx);
    g = (double *)malloc(sizeof(double) * c.P.n);
    memcpy(g, c.P.g, sizeof(double) * c.P.n);
    for (k = 0; k < (size_t)c.P.n_info; k++) {   /* a few entries of every tensor */
        const mmspcl_param_info *pi = &c.P.info[k];
        size_t step = pi->n > 3 ? pi->n / 3 : 1;
        if (pi->frozen) { for (i = 0; i < pi->n; i++) CHECK(g[pi->off + i] == 0, "%s: frozen %s has a gradient", what, pi->name); continue; }
        for (i = 0; i < pi->n; i += step) {
            e = ms_fd_entry(&c, &c.P.w[pi->off + i], g[pi->off + i]);
            if (e > worst) worst = e;
            if (e > 1e-4) fprintf(stderr, "  %s %s[%zu]: rel err %.2e (analytic %.6e)\n", what, pi->name, i, e, g[pi->off + i]);
            checked++;
        }
    }
    for (m = 0; m < 3; m++) {
        if (!dims[m]) continue;
        for (i = 0; i < (size_t)c.n * T[m] * dims[m]; i += 7) {
            const size_t s = i / ((size_t)T[m] * dims[m]), t = (i / dims[m]) % T[m];
            if ((int)t >= c.lens[m][s]) { CHECK(dx[m][i] == 0, "%s: padded step has gradient", what); continue; }
            e = ms_fd_entry(&c, &c.x[m][i], dx[m][i]);
            if (e > worst) worst = e;
            checked++;
        }
        free(dx[m]);
    }
    printf("  grad %-40s %5zu entries  max rel err %.2e\n", what, checked, worst);
    CHECK(worst <= 1e-4, "%s: gradient relative error %.3e", what, worst);
    free(g);
    ms_free(&c);
}

/* save -> load -> float forward equals the double forward; padded values do not matter */
static void test_inference(const char *what, const int dims[3], const int T[3], int pool) {
    ms_case c;
    mmspcl_writer *wr = NULL;
    mmspcl_weights *w = NULL;
    mmspcl_mult_seq hs;
    mmspcl_error err;
    unsigned char *bytes = NULL;
    size_t nbytes = 0, i;
    float *hold = NULL, *xf[3] = { NULL, NULL, NULL }, *yf, *yf2;
    double worst = 0, ymax = 0;
    int m, ok;
    if (ms_make(&c, dims, T, pool, 2, 1, 5)) { CHECK(0, "%s: create", what); return; }
    ms_loss(&c);
    ok = (wr = mmspcl_writer_create()) != NULL && !mmspcl_mult_seq_train_write_config(&c.f, wr) &&
         !mmspcl_params_write(&c.P, wr, NULL, 0, &hold, &err) && !mmspcl_writer_save_to_memory(wr, &bytes, &nbytes, &err) &&
         !mmspcl_weights_from_memory(&w, bytes, nbytes, &err) && !mmspcl_mult_seq_load(&hs, w, "ms", &err);
    CHECK(ok, "%s: save and load: %s", what, err.msg);
    if (!ok) { ms_free(&c); return; }
    for (m = 0; m < 3; m++) {
        if (!dims[m]) continue;
        xf[m] = (float *)malloc(sizeof(float) * (size_t)c.n * T[m] * dims[m]);
        for (i = 0; i < (size_t)c.n * T[m] * dims[m]; i++) xf[m][i] = (float)c.x[m][i];
    }
    yf = (float *)malloc(sizeof(float) * (size_t)c.n * 3);
    yf2 = (float *)malloc(sizeof(float) * (size_t)c.n * 3);
    CHECK(!mmspcl_mult_seq_forward(&hs, (const float *const *)xf, T, (const int *const *)c.lens, c.n, yf, &err), "%s: forward: %s", what, err.msg);
    for (i = 0; i < (size_t)c.n * 3; i++) {
        if (fabs(c.y[i]) > ymax) ymax = fabs(c.y[i]);
        if (fabs(yf[i] - c.y[i]) > worst) worst = fabs(yf[i] - c.y[i]);
    }
    printf("  %-46s float vs double max|diff| %.2e (max|y| %.2f)\n", what, worst, ymax);
    CHECK(worst <= 1e-4 * ymax, "%s: float inference differs by %.3e", what, worst);
    /* garbage in the padding changes nothing */
    for (m = 0; m < 3; m++) {
        int s, t, j;
        if (!dims[m]) continue;
        for (s = 0; s < c.n; s++)
            for (t = c.lens[m][s]; t < T[m]; t++)
                for (j = 0; j < dims[m]; j++) xf[m][((size_t)s * T[m] + t) * dims[m] + j] = 1e3f * (float)(j + t + 1);
    }
    mmspcl_mult_seq_forward(&hs, (const float *const *)xf, T, (const int *const *)c.lens, c.n, yf2, &err);
    CHECK(!memcmp(yf, yf2, sizeof(float) * (size_t)c.n * 3), "%s: values in the padding change the output", what);
    /* bad lengths are refused naming the sample */
    c.lens[0][1] = T[0] + 1;
    CHECK(mmspcl_mult_seq_forward(&hs, (const float *const *)xf, T, (const int *const *)c.lens, c.n, yf2, &err) == MMSPCL_ERR_ARG &&
          strstr(err.msg, "sample 1"), "%s: a length past T is refused (%s)", what, err.msg);
    mmspcl_mult_seq_free(&hs);
    mmspcl_weights_free(w);
    mmspcl_writer_free(wr);
    free(bytes); free(hold); free(yf); free(yf2);
    for (m = 0; m < 3; m++) free(xf[m]);
    ms_free(&c);
}


/* ---- against PyTorch: tests/data/mult_ref/mult_ref.txt (tools/reference/mult_ref.py) ----------
   records "NAME NDIM S0 .. VALUES"; MulT's parameter names mapped onto ours: modality l is t,
   trans_X_with_Y -> X_Y, trans_X_mem -> X_mem, layers.i -> layer.i, layer_norms.0 -> ln_q,
   layer_norms.1 -> ln_ff, self_attn.in_proj_{weight,bias} -> attn.{q,k,v} (thirds),
   self_attn.out_proj -> attn.o, fc1/fc2 -> ff.fc1/ff.fc2, layer_norm -> ln, proj_X -> proj.X,
   proj1/proj2 -> res.fc1/res.fc2, out_layer -> out. */
typedef test_ref_rec ref_rec;
typedef test_ref_file ref_file;

/* our tensor name (and the row range of MulT's tensor it takes) for a MulT parameter name */
static int ref_map(const char *mult, char *ours, size_t cap, int *third) {
    static const char *const mods = "lav", *const ours_m[3] = { "t", "a", "v" };
    char a = 0, b = 0, rest[160] = "";
    int layer = -1, k, pos = 0;
    *third = -1;
    if (sscanf(mult, "proj_%c.%159s", &a, rest) == 2 && strchr(mods, a)) {
        snprintf(ours, cap, "ms.proj.%s.%s", ours_m[strchr(mods, a) - mods], rest);
        return 0;
    }
    if (!strncmp(mult, "proj1.", 6)) { snprintf(ours, cap, "ms.res.fc1.%s", mult + 6); return 0; }
    if (!strncmp(mult, "proj2.", 6)) { snprintf(ours, cap, "ms.res.fc2.%s", mult + 6); return 0; }
    if (!strncmp(mult, "out_layer.", 10)) { snprintf(ours, cap, "ms.out.%s", mult + 10); return 0; }
    if (sscanf(mult, "trans_%c_with_%c.%n", &a, &b, &pos) == 2 && pos > 0) {
        k = snprintf(ours, cap, "ms.%s_%s", ours_m[strchr(mods, a) - mods], ours_m[strchr(mods, b) - mods]);
    } else if (sscanf(mult, "trans_%c_mem.%n", &a, &pos) == 1 && pos > 0) {
        k = snprintf(ours, cap, "ms.%s_mem", ours_m[strchr(mods, a) - mods]);
    } else return -1;
    mult += pos;
    if (!strncmp(mult, "layer_norm.", 11)) { snprintf(ours + k, cap - (size_t)k, ".ln.%s", mult + 11); return 0; }
    if (sscanf(mult, "layers.%d.%159s", &layer, rest) != 2) return -1;
    k += snprintf(ours + k, cap - (size_t)k, ".layer.%d.", layer);
    if (!strncmp(rest, "self_attn.in_proj_", 18)) { *third = 0; snprintf(ours + k, cap - (size_t)k, "attn.q.%s", rest + 18); return 0; }
    if (!strncmp(rest, "self_attn.out_proj.", 19)) { snprintf(ours + k, cap - (size_t)k, "attn.o.%s", rest + 19); return 0; }
    if (!strncmp(rest, "layer_norms.0.", 14)) { snprintf(ours + k, cap - (size_t)k, "ln_q.%s", rest + 14); return 0; }
    if (!strncmp(rest, "layer_norms.1.", 14)) { snprintf(ours + k, cap - (size_t)k, "ln_ff.%s", rest + 14); return 0; }
    if (!strncmp(rest, "fc1.", 4) || !strncmp(rest, "fc2.", 4)) { snprintf(ours + k, cap - (size_t)k, "ff.%s", rest); return 0; }
    return -1;
}

/* the (up to three) parameter slices of ours that hold MulT tensor r, in its row order */
static int ref_slices(const mmspcl_params *P, const char *mult_name, const mmspcl_param_info *out[3]) {
    char ours[240];
    int third, i;
    if (ref_map(mult_name, ours, sizeof ours, &third)) return 0;
    if (third < 0) { out[0] = mmspcl_params_find(P, ours); return out[0] ? 1 : 0; }
    for (i = 0; i < 3; i++) {   /* attn.q.X -> attn.k.X, attn.v.X */
        char *q = strstr(ours, ".attn.");
        q[6] = "qkv"[i];
        if (!(out[i] = mmspcl_params_find(P, ours))) return 0;
    }
    return 3;
}

/* max|got - want| <= 1e-4 max|want| */
static void ref_compare(const char *what, const double *got, const double *want, size_t n) {
    double dmax = 0, wmax = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        if (fabs(want[i]) > wmax) wmax = fabs(want[i]);
        if (fabs(got[i] - want[i]) > dmax) dmax = fabs(got[i] - want[i]);
    }
    /* a key bias's gradient is exactly 0 (softmax ignores what every key adds alike): both sides
       are rounding noise there, and both must be */
    if (wmax < 1e-12) CHECK(dmax < 1e-12, "%s: a zero gradient is %.3e", what, dmax);
    else CHECK(dmax <= 1e-4 * wmax, "%s: max|diff| %.3e, max|ref| %.3e", what, dmax, wmax);
}

static void ref_inference(const char *what, const mmspcl_params *P, mmspcl_status (*write_cfg)(const void *, mmspcl_writer *),
                          const void *head, const float *const x[3], const int T[3], const int *const lens[3], int n,
                          const ref_rec *out);
static mmspcl_status write_cfg_ms(const void *f, mmspcl_writer *wr);

static void test_reference(void) {
    ref_file rf;
    const ref_rec *cfg;
    mmspcl_mult_seq_cfg c;
    mmspcl_params P;
    mmspcl_mult_seq_train f;
    mmspcl_rng r;
    mmspcl_error err;
    static const char *const cases[2] = { "full", "padded" }, *const ml = "lav";
    int i, k, m, T[3], n, mapped = 0, grads = 0;
    double worst_out = 0;
    if (test_ref_load(&rf, "tests/data/mult_ref/mult_ref.txt") || !(cfg = test_ref_get(&rf, "cfg")) || cfg->n != 12) {
        CHECK(0, "cannot read tests/data/mult_ref/mult_ref.txt");
        return;
    }
    memset(&c, 0, sizeof c);
    n = (int)cfg->v[0];
    for (m = 0; m < 3; m++) { T[m] = (int)cfg->v[1 + m]; c.dims[m] = (int)cfg->v[4 + m]; }
    c.d = (int)cfg->v[7]; c.n_heads = (int)cfg->v[8]; c.n_layers = (int)cfg->v[9]; c.n_mem_layers = (int)cfg->v[10];
    c.out_dim = (int)cfg->v[11]; c.pool = MMSPCL_POOL_LAST;
    mmspcl_params_init(&P);
    mmspcl_rng_seed(&r, 1);
    CHECK(!mmspcl_mult_seq_train_create(&f, &P, "ms", &c, 0, 0, &r, &err), "create: %s", err.msg);
    /* every MulT parameter into ours; every one of ours (but the frozen zero biases) set */
    {
        unsigned char *set = (unsigned char *)calloc(P.n, 1);
        size_t q;
        for (i = 0; i < rf.n; i++) {
            const mmspcl_param_info *sl[3];
            int ns, j;
            size_t off = 0;
            if (strncmp(rf.r[i].name, "param.", 6)) continue;
            ns = ref_slices(&P, rf.r[i].name + 6, sl);
            CHECK(ns > 0, "MulT tensor %s has no place in ours", rf.r[i].name);
            for (j = 0; j < ns; j++) {
                CHECK(off + sl[j]->n <= rf.r[i].n, "%s: size", rf.r[i].name);
                if (off + sl[j]->n > rf.r[i].n) break;
                memcpy(P.w + sl[j]->off, rf.r[i].v + off, sizeof(double) * sl[j]->n);
                memset(set + sl[j]->off, 1, sl[j]->n);
                off += sl[j]->n;
            }
            CHECK(off == rf.r[i].n, "%s: %zu of %zu values mapped", rf.r[i].name, off, rf.r[i].n);
            mapped++;
        }
        for (k = 0; k < P.n_info; k++)
            if (!P.info[k].frozen) for (q = 0; q < P.info[k].n; q++) CHECK(set[P.info[k].off + q], "%s not set from MulT", P.info[k].name);
        free(set);
    }
    for (k = 0; k < 2; k++) {
        char name[200];
        double *x[3], *dx[3], *y = (double *)malloc(sizeof(double) * (size_t)n * c.out_dim);
        int *lens[3];
        const ref_rec *W, *out;
        for (m = 0; m < 3; m++) {
            const ref_rec *xr, *lr;
            snprintf(name, sizeof name, "%s.x.%c", cases[k], ml[m]); xr = test_ref_get(&rf, name);
            snprintf(name, sizeof name, "%s.lens.%c", cases[k], ml[m]); lr = test_ref_get(&rf, name);
            x[m] = xr->v;
            dx[m] = (double *)calloc(xr->n, sizeof(double));
            lens[m] = (int *)malloc(sizeof(int) * (size_t)n);
            for (i = 0; i < n; i++) lens[m][i] = (int)lr->v[i];
        }
        snprintf(name, sizeof name, "%s.W", cases[k]); W = test_ref_get(&rf, name);
        snprintf(name, sizeof name, "%s.out", cases[k]); out = test_ref_get(&rf, name);
        CHECK(!mmspcl_mult_seq_train_forward(&f, &P, (const double *const *)x, T, (const int *const *)lens, n, y, NULL, &err), "%s: %s", cases[k], err.msg);
        snprintf(name, sizeof name, "%s: output", cases[k]);
        ref_compare(name, y, out->v, out->n);
        {   /* the float inference of the same weights (save, load, mmspcl_mult_seq_forward) */
            float *xf[3];
            size_t q, cnt;
            for (m = 0; m < 3; m++) {
                cnt = (size_t)n * T[m] * c.dims[m];
                xf[m] = (float *)malloc(sizeof(float) * cnt);
                for (q = 0; q < cnt; q++) xf[m][q] = (float)x[m][q];
            }
            snprintf(name, sizeof name, "%s: float inference", cases[k]);
            ref_inference(name, &P, write_cfg_ms, &f, (const float *const *)xf, T, (const int *const *)lens, n, out);
            for (m = 0; m < 3; m++) free(xf[m]);
        }
        for (i = 0; i < (int)out->n; i++) if (fabs(y[i] - out->v[i]) > worst_out) worst_out = fabs(y[i] - out->v[i]);
        mmspcl_params_zero_grad(&P);
        mmspcl_mult_seq_train_backward(&f, &P, (const double *const *)x, W->v, dx);
        for (i = 0; i < rf.n; i++) {   /* each MulT gradient against ours, concatenated in its order */
            const mmspcl_param_info *sl[3];
            char pre[40];
            int ns, j;
            size_t off = 0;
            double *g;
            snprintf(pre, sizeof pre, "%s.grad.", cases[k]);
            if (strncmp(rf.r[i].name, pre, strlen(pre)) || !strncmp(rf.r[i].name + strlen(pre), "x.", 2)) continue;
            ns = ref_slices(&P, rf.r[i].name + strlen(pre), sl);
            g = (double *)malloc(sizeof(double) * rf.r[i].n);
            for (j = 0; j < ns; j++) { memcpy(g + off, P.g + sl[j]->off, sizeof(double) * sl[j]->n); off += sl[j]->n; }
            if (off == rf.r[i].n) ref_compare(rf.r[i].name, g, rf.r[i].v, rf.r[i].n);
            else CHECK(0, "%s: shape", rf.r[i].name);
            free(g);
            grads++;
        }
        for (m = 0; m < 3; m++) {
            snprintf(name, sizeof name, "%s.grad.x.%c", cases[k], ml[m]);
            ref_compare(name, dx[m], test_ref_get(&rf, name)->v, test_ref_get(&rf, name)->n);
            free(dx[m]); free(lens[m]);
        }
        free(y);
    }
    printf("  vs PyTorch MulT: %d tensors mapped, %d gradients compared, output max|diff| %.2e\n", mapped, grads, worst_out);
    mmspcl_mult_seq_train_free(&f);
    mmspcl_params_free(&P);
    test_ref_free(&rf);
}

/* ---- MBT against PyTorch: tests/data/mbt_ref/mbt_ref.txt (tools/reference/mbt_ref.py) ---------
   scenic's names onto ours: embedding_M -> mbt.in.M, posembed_input_M -> mbt.pos.M, bottleneck ->
   mbt.fusion_tokens, encoderblock_L_M -> mbt.M.layer.L (LayerNorm_0 ln_q, the attention's
   query/key/value/out attn.q/k/v/o, LayerNorm_1 ln_ff, Dense_0/Dense_1 ff.fc1/ff.fc2),
   encoder_norm_M -> mbt.M.ln (readout ours), encoder_norm -> mbt.ln (scenic's 'gap'),
   output_projection -> mbt.out. */
static int mbt_map(const char *s, char *ours, size_t cap, int *slice) {
    static const char *const from[7] = { "LayerNorm_0.", "MultiHeadDotProductAttention_0.query.", "MultiHeadDotProductAttention_0.key.",
                                         "MultiHeadDotProductAttention_0.value.", "MultiHeadDotProductAttention_0.out.", "LayerNorm_1.", "Dense_" };
    static const char *const to[7] = { "ln_q.", "attn.q.", "attn.k.", "attn.v.", "attn.o.", "ln_ff.", "ff.fc" };
    char m = 0, rest[160] = "";
    static const char *const pairs[3] = { "bottleneck_ta", "bottleneck_tv", "bottleneck_av" };
    int l = -1, i, pos = 0;
    *slice = -1;
    for (i = 0; i < 3; i++)   /* per-pair sets: slices of fusion_tokens in pair order */
        if (!strcmp(s, pairs[i])) { *slice = i; snprintf(ours, cap, "mbt.fusion_tokens"); return 0; }
    if (sscanf(s, "posembed_input_%c", &m) == 1) { snprintf(ours, cap, "mbt.pos.%c", m); return 0; }
    if (!strcmp(s, "bottleneck")) { snprintf(ours, cap, "mbt.fusion_tokens"); return 0; }
    if (sscanf(s, "embedding_%c.%159s", &m, rest) == 2) { snprintf(ours, cap, "mbt.in.%c.%s", m, rest); return 0; }
    if (sscanf(s, "encoder_norm_%c.%159s", &m, rest) == 2) { snprintf(ours, cap, "mbt.%c.ln.%s", m, rest); return 0; }
    if (!strncmp(s, "output_projection.", 18)) { snprintf(ours, cap, "mbt.out.%s", s + 18); return 0; }
    if (!strncmp(s, "encoder_norm.", 13)) { snprintf(ours, cap, "mbt.ln.%s", s + 13); return 0; }   /* 'gap': the one norm */
    if (sscanf(s, "encoderblock_%d_%c.%n", &l, &m, &pos) != 2 || !pos) return -1;
    for (i = 0; i < 7; i++)
        if (!strncmp(s + pos, from[i], strlen(from[i]))) {
            const char *tail = s + pos + strlen(from[i]);
            if (i == 6) snprintf(ours, cap, "mbt.%c.layer.%d.ff.fc%c%s", m, l, tail[0] + 1, tail + 1);   /* Dense_0 -> fc1 */
            else snprintf(ours, cap, "mbt.%c.layer.%d.%s%s", m, l, to[i], tail);
            return 0;
        }
    return -1;
}

/* the library's float inference of a saved head (mmspcl_mbt_load or mmspcl_mult_seq_load)
   against PyTorch's output */
static void ref_inference(const char *what, const mmspcl_params *P, mmspcl_status (*write_cfg)(const void *, mmspcl_writer *),
                          const void *head, const float *const x[3], const int T[3], const int *const lens[3], int n,
                          const ref_rec *out) {
    mmspcl_writer *wr = mmspcl_writer_create();
    mmspcl_weights *w = NULL;
    mmspcl_error err;
    unsigned char *bytes = NULL;
    size_t nbytes = 0, i;
    float *hold = NULL, *y = (float *)malloc(sizeof(float) * out->n);
    double *yd = (double *)malloc(sizeof(double) * out->n);
    int ok = wr && !write_cfg(head, wr) && !mmspcl_params_write(P, wr, NULL, 0, &hold, &err) &&
             !mmspcl_writer_save_to_memory(wr, &bytes, &nbytes, &err) && !mmspcl_weights_from_memory(&w, bytes, nbytes, &err);
    CHECK(ok, "%s: save", what);
    if (ok && T) {
        mmspcl_mult_seq m;
        ok = !mmspcl_mult_seq_load(&m, w, "ms", &err) && !mmspcl_mult_seq_forward(&m, x, T, lens, n, y, &err);
        if (m.cross) mmspcl_mult_seq_free(&m);
    } else if (ok) {
        mmspcl_mbt m;
        ok = !mmspcl_mbt_load(&m, w, "mbt", &err) && !mmspcl_mbt_forward_seq(&m, x, lens, n, y, &err);
        mmspcl_mbt_free(&m);
    }
    CHECK(ok, "%s: load and forward: %s", what, err.msg);
    for (i = 0; i < out->n; i++) yd[i] = y[i];
    if (ok) ref_compare(what, yd, out->v, out->n);
    mmspcl_weights_free(w);
    mmspcl_writer_free(wr);
    free(bytes); free(hold); free(y); free(yd);
}

static mmspcl_status write_cfg_mbt(const void *f, mmspcl_writer *wr) { return mmspcl_fusion_write_config((const mmspcl_fusion *)f, wr, NULL); }
static mmspcl_status write_cfg_ms(const void *f, mmspcl_writer *wr) { return mmspcl_mult_seq_train_write_config((const mmspcl_mult_seq_train *)f, wr); }

/* where reference tensor `name` (n values) lives in P: the offset, or (size_t)-1 */
static size_t mbt_place(const mmspcl_params *P, const char *name, size_t n) {
    char ours[240];
    int slice;
    const mmspcl_param_info *pi = mbt_map(name, ours, sizeof ours, &slice) ? NULL : mmspcl_params_find(P, ours);
    if (!pi) return (size_t)-1;
    if (slice < 0) return pi->n == n ? pi->off : (size_t)-1;
    return (size_t)(slice + 1) * n <= pi->n ? pi->off + (size_t)slice * n : (size_t)-1;
}

/* the padding of x (n samples, seq tokens of tok values) filled with large values */
static void mbt_fill_padding(double *x, float *xf, int n, int seq, int tok, const int *lens) {
    int i, t, j;
    for (i = 0; i < n; i++)
        for (t = lens[i]; t < seq; t++)
            for (j = 0; j < tok; j++) {
                const size_t q = ((size_t)i * seq + t) * tok + j;
                x[q] = 1e3 * (j + t + 1) * (i % 2 ? -1 : 1);
                xf[q] = (float)x[q];
            }
}

/* one case of path: mbt_ref.txt (scenic's per-modality MBT) or mbt_pair_ref.txt (per pair, the
   paper's equations 8-9: tools/reference/mbt_pair_ref.py); cases full, padded (a key padding
   mask), gap (scenic's readout, padded) */
static void test_mbt_reference(const char *path, int bottleneck, const char *cs) {
    ref_file rf;
    const ref_rec *cfg, *W, *out, *lr[3] = { NULL, NULL, NULL };
    mmspcl_fusion_cfg c;
    mmspcl_fusion f;
    mmspcl_params P;
    mmspcl_rng r;
    mmspcl_error err;
    static const char *const mn = "tav";
    char name[220];
    double *x[3], *dx[3], *y, *y2;
    float *xf[3];
    int *lens[3] = { NULL, NULL, NULL }, i, m, n, mapped = 0, grads = 0, padded;
    const size_t pl = strlen(cs) + 7;   /* "CASE.param." */
    snprintf(name, sizeof name, "%s.cfg", cs);
    if (test_ref_load(&rf, path)) { CHECK(0, "cannot read %s", path); return; }
    if (!(cfg = test_ref_get(&rf, name)) || cfg->n != 15) { CHECK(0, "%s: no %s", path, name); test_ref_free(&rf); return; }
    mmspcl_fusion_defaults(&c, MMSPCL_FUSION_MBT);
    n = (int)cfg->v[0];
    for (m = 0; m < 3; m++) { c.seq[m] = (int)cfg->v[1 + m]; c.dims[m] = c.seq[m] * (int)cfg->v[4 + m]; }
    c.d_model = (int)cfg->v[7]; c.n_heads = (int)cfg->v[8]; c.ff_mult = (int)cfg->v[9]; c.n_layers = (int)cfg->v[10];
    c.fusion_start = (int)cfg->v[11]; c.n_fusion = (int)cfg->v[12]; c.out_dim = (int)cfg->v[13];
    c.readout = (int)cfg->v[14] ? MMSPCL_READOUT_JOINT : MMSPCL_READOUT_MODALITY;
    c.act = MMSPCL_ACT_GELU; c.dropout = 0; c.bottleneck = bottleneck;
    mmspcl_params_init(&P);
    mmspcl_rng_seed(&r, 3);
    CHECK(!mmspcl_fusion_create(&f, &P, "mbt", &c, &r, &err), "mbt create: %s", err.msg);
    {
        unsigned char *set = (unsigned char *)calloc(P.n, 1);
        size_t q;
        int k;
        snprintf(name, sizeof name, "%s.param.", cs);
        for (i = 0; i < rf.n; i++) {
            size_t off;
            if (strncmp(rf.r[i].name, name, pl)) continue;
            off = mbt_place(&P, rf.r[i].name + pl, rf.r[i].n);
            CHECK(off != (size_t)-1, "reference tensor %s has no place in ours", rf.r[i].name);
            if (off == (size_t)-1) continue;
            memcpy(P.w + off, rf.r[i].v, sizeof(double) * rf.r[i].n);
            memset(set + off, 1, rf.r[i].n);
            mapped++;
        }
        for (k = 0; k < P.n_info; k++) for (q = 0; q < P.info[k].n; q++) CHECK(set[P.info[k].off + q], "%s not set from the reference", P.info[k].name);
        free(set);
    }
    for (m = 0; m < 3; m++) {
        size_t q;
        const ref_rec *xr;
        snprintf(name, sizeof name, "%s.x.%c", cs, mn[m]);
        xr = test_ref_get(&rf, name);
        x[m] = (double *)malloc(sizeof(double) * xr->n);
        memcpy(x[m], xr->v, sizeof(double) * xr->n);
        dx[m] = (double *)calloc(xr->n, sizeof(double));
        xf[m] = (float *)malloc(sizeof(float) * xr->n);
        for (q = 0; q < xr->n; q++) xf[m][q] = (float)xr->v[q];
        snprintf(name, sizeof name, "%s.lens.%c", cs, mn[m]);
        if ((lr[m] = test_ref_get(&rf, name)) != NULL) {
            lens[m] = (int *)malloc(sizeof(int) * lr[m]->n);
            for (q = 0; q < lr[m]->n; q++) lens[m][q] = (int)lr[m]->v[q];
        }
    }
    padded = lens[0] != NULL;
    snprintf(name, sizeof name, "%s.W", cs); W = test_ref_get(&rf, name);
    snprintf(name, sizeof name, "%s.out", cs); out = test_ref_get(&rf, name);
    y = (double *)malloc(sizeof(double) * out->n);
    y2 = (double *)malloc(sizeof(double) * out->n);
    CHECK(!mmspcl_fusion_forward_seq(&f, &P, (const double *const *)x, (const int *const *)lens, n, y, NULL, &err), "mbt forward: %s", err.msg);
    snprintf(name, sizeof name, "mbt %s: output", cs);
    ref_compare(name, y, out->v, out->n);
    mmspcl_params_zero_grad(&P);
    mmspcl_fusion_backward(&f, &P, (const double *const *)x, n, W->v, dx);
    snprintf(name, sizeof name, "%s.grad.", cs);
    for (i = 0; i < rf.n; i++) {
        size_t off;
        const size_t gl = strlen(name);
        if (strncmp(rf.r[i].name, name, gl) || !strncmp(rf.r[i].name + gl, "x.", 2)) continue;
        off = mbt_place(&P, rf.r[i].name + gl, rf.r[i].n);
        if (off != (size_t)-1) ref_compare(rf.r[i].name, P.g + off, rf.r[i].v, rf.r[i].n);
        else CHECK(0, "%s: no tensor", rf.r[i].name);
        grads++;
    }
    for (m = 0; m < 3; m++) {
        const ref_rec *gr;
        snprintf(name, sizeof name, "%s.grad.x.%c", cs, mn[m]);
        gr = test_ref_get(&rf, name);
        ref_compare(name, dx[m], gr->v, gr->n);
        for (i = 0; padded && i < n; i++) {   /* padded tokens: exactly no gradient */
            const size_t per = gr->n / n, from = (size_t)lens[m][i] * (per / c.seq[m]);
            size_t q;
            for (q = from; q < per; q++) CHECK(dx[m][(size_t)i * per + q] == 0.0, "%s: padded input %zu has a gradient", name, q);
        }
    }
    snprintf(name, sizeof name, "mbt %s: float inference", cs);
    ref_inference(name, &P, write_cfg_mbt, &f, (const float *const *)xf, NULL, (const int *const *)lens, n, out);
    if (padded) {   /* values written into the padding change nothing, double and float */
        for (m = 0; m < 3; m++) mbt_fill_padding(x[m], xf[m], n, c.seq[m], c.dims[m] / c.seq[m], lens[m]);
        CHECK(!mmspcl_fusion_forward_seq(&f, &P, (const double *const *)x, (const int *const *)lens, n, y2, NULL, &err), "mbt forward: %s", err.msg);
        CHECK(!memcmp(y, y2, sizeof(double) * out->n), "mbt %s: values in the padding change the double output", cs);
        snprintf(name, sizeof name, "mbt %s: float inference, garbage in the padding", cs);
        ref_inference(name, &P, write_cfg_mbt, &f, (const float *const *)xf, NULL, (const int *const *)lens, n, out);
        lens[1][2] = c.seq[1] + 1;   /* a length past seq is refused, naming the sample */
        CHECK(mmspcl_fusion_forward_seq(&f, &P, (const double *const *)x, (const int *const *)lens, n, y2, NULL, &err) == MMSPCL_ERR_ARG &&
              strstr(err.msg, "sample 2 of a"), "mbt %s: a length past seq is refused (%s)", cs, err.msg);
    }
    {
        double worst = 0;
        for (i = 0; i < (int)out->n; i++) if (fabs(y[i] - out->v[i]) > worst) worst = fabs(y[i] - out->v[i]);
        printf("  vs PyTorch MBT (%s, %s): %d tensors mapped, %d gradients compared, output max|diff| %.2e\n",
               bottleneck ? "per pair, the paper's eqs. 8-9" : "scenic's bottleneck encoder", cs, mapped, grads, worst);
    }
    for (m = 0; m < 3; m++) { free(x[m]); free(dx[m]); free(xf[m]); free(lens[m]); }
    free(y); free(y2);
    mmspcl_fusion_free(&f);
    mmspcl_params_free(&P);
    test_ref_free(&rf);
}

int main(void) {
    const int d3[3] = { 5, 3, 4 }, T3[3] = { 4, 3, 5 }, d2[3] = { 6, 0, 3 }, T2[3] = { 3, 1, 4 };
    test_gradients("3 modalities, last step, padded", d3, T3, MMSPCL_POOL_LAST, 2, 1, 11);
    test_gradients("3 modalities, mean, padded", d3, T3, MMSPCL_POOL_MEAN, 1, 1, 12);
    test_gradients("t and v, no memory layers, full", d2, T2, MMSPCL_POOL_LAST, 0, 0, 11);
    test_inference("inference, 3 modalities, last", d3, T3, MMSPCL_POOL_LAST);
    test_inference("inference, t and v, mean", d2, T2, MMSPCL_POOL_MEAN);
    test_reference();
    {
        static const char *const cases[3] = { "full", "padded", "gap" };
        int k;
        for (k = 0; k < 3; k++) {
            test_mbt_reference("tests/data/mbt_ref/mbt_ref.txt", MMSPCL_BOTTLENECK_MODALITY, cases[k]);
            test_mbt_reference("tests/data/mbt_ref/mbt_pair_ref.txt", MMSPCL_BOTTLENECK_PAIR, cases[k]);
        }
    }
    return TEST_END();
}
