/* Cross-modal pruning, the threshold variant (mmspcl_prune_threshold_apply and its double twin)
   on a hand-worked case, against the arg-max rule, with two pruning modalities, and bad
   arguments. Pruning as a layer (mmspcl_xprune / mmspcl_xprune_train: two pruning modalities
   separate or joint, the threshold rule, the common projection) followed by the Linear fusion,
   against PyTorch: tools/reference/prune_ref.py (tests/data/prune_ref/prune_ref.txt): the heads
   chosen, the output, every gradient, the float inference of the saved layer. */
#define MMSPCL_IMPLEMENTATION
#define MMSPCL_TRAIN_IMPLEMENTATION
#include "mmspcl.h"
#include "mmspcl_train.h"
#include "tests/test.h"

/* base: one head [1, 0]; pruning heads (K = 2): [2, 0] cos 1, [0, 3] cos 0, [1, 1] cos 0.7071,
   [-1, 0] cos -1, and a short last head [5] (compared with the base head's first value: cos 1) */
static const float base[2] = { 1, 0 };
static const float prune[9] = { 2, 0, 0, 3, 1, 1, -1, 0, 5 };

static void expect(double tau, const char *keep_want) {
    float out[9];
    double outd[9], based[2], pruned[9];
    unsigned char kept[5], keptd[5];
    mmspcl_error err;
    char got[6];
    int h, j;
    CHECK(!mmspcl_prune_threshold_apply(base, 2, prune, 9, 2, tau, 1, out, kept, &err), "tau %g: %s", tau, err.msg);
    for (h = 0; h < 5; h++) got[h] = (char)('0' + kept[h]);
    got[5] = 0;
    CHECK(!strcmp(got, keep_want), "tau %g: kept %s, want %s", tau, got, keep_want);
    for (j = 0; j < 9; j++) CHECK(out[j] == (kept[j / 2] ? prune[j] : 0.0f), "tau %g: value %d", tau, j);
    for (j = 0; j < 2; j++) based[j] = base[j];
    for (j = 0; j < 9; j++) outd[j] = prune[j];
    CHECK(!mmspcl_prune_train_threshold_forward(based, 2, outd, 9, 2, tau, 1, pruned, keptd, &err), "double: %s", err.msg);
    CHECK(!memcmp(kept, keptd, 5), "tau %g: the double twin chooses other heads", tau);
    for (j = 0; j < 9; j++) CHECK(pruned[j] == (double)out[j], "tau %g: double value %d", tau, j);
}


/* ---- against PyTorch: records "NAME NDIM S0 .. VALUES" (tools/reference/prune_ref.py) ---------- */
typedef test_ref_rec ref_rec;
typedef test_ref_file ref_file;

/* case C's record NAME ("C.NAME" in the file) */
static const ref_rec *ref_get(const ref_file *rf, const char *c, const char *name) {
    char full[200];
    snprintf(full, sizeof full, "%s.%s", c, name);
    return test_ref_get(rf, full);
}

/* max|got - want| <= 1e-4 max|want| (an all-zero reference: got must be below 1e-12) */
static void ref_compare(const char *what, const double *got, const double *want, size_t n, double *worst) {
    double dmax = 0, wmax = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        if (fabs(want[i]) > wmax) wmax = fabs(want[i]);
        if (fabs(got[i] - want[i]) > dmax) dmax = fabs(got[i] - want[i]);
    }
    if (worst && dmax > *worst) *worst = dmax;
    if (wmax == 0) CHECK(dmax < 1e-12, "%s: a zero reference, got %.3e", what, dmax);
    else CHECK(dmax <= 1e-4 * wmax, "%s: max|diff| %.3e, max|ref| %.3e", what, dmax, wmax);
}

/* PyTorch's name (proj_t.weight, fuse.bias) -> ours (xp.proj.t.weight, fuse.proj.bias) */
static const mmspcl_param_info *ref_param(const mmspcl_params *P, const char *torch_name) {
    char ours[200];
    if (!strncmp(torch_name, "proj_", 5)) snprintf(ours, sizeof ours, "xp.proj.%c%s", torch_name[5], torch_name + 6);
    else if (!strncmp(torch_name, "fuse.", 5)) snprintf(ours, sizeof ours, "fuse.proj.%s", torch_name + 5);
    else return NULL;
    return mmspcl_params_find(P, ours);
}

/* the saved layer and fusion through mmspcl_xprune_forward / mmspcl_fuse_linear_forward (float) */
static void ref_float(const char *c, const mmspcl_params *P, const mmspcl_xprune_train *xp, const mmspcl_fusion *fu,
                      const double *const x[3], int n, const ref_rec *out) {
    mmspcl_writer *wr = mmspcl_writer_create();
    mmspcl_weights *w = NULL;
    mmspcl_error err;
    mmspcl_xprune h;
    mmspcl_fuse_linear fl;
    unsigned char *bytes = NULL;
    size_t nbytes = 0, i;
    float *hold = NULL, *xf[3], *yf[3], *of = (float *)malloc(sizeof(float) * out->n);
    double *od = (double *)malloc(sizeof(double) * out->n);
    int m, ok;
    for (m = 0; m < 3; m++) {
        xf[m] = (float *)malloc(sizeof(float) * (size_t)n * xp->cfg.dims[m]);
        yf[m] = (float *)malloc(sizeof(float) * (size_t)n * xp->lay.width[m]);
        for (i = 0; i < (size_t)n * xp->cfg.dims[m]; i++) xf[m][i] = (float)x[m][i];
    }
    ok = wr && !mmspcl_xprune_train_write_config(xp, wr) && !mmspcl_fusion_write_config(fu, wr, NULL) &&
         !mmspcl_params_write(P, wr, NULL, 0, &hold, &err) && !mmspcl_writer_save_to_memory(wr, &bytes, &nbytes, &err) &&
         !mmspcl_weights_from_memory(&w, bytes, nbytes, &err) && !mmspcl_xprune_load(&h, w, "xp", &err) &&
         !mmspcl_fuse_linear_load(&fl, w, "fuse", &err) &&
         !mmspcl_xprune_forward(&h, (const float *const *)xf, n, yf, NULL, &err) &&
         !mmspcl_fuse_linear_forward(&fl, (const float *const *)yf, n, of, &err);
    CHECK(ok, "%s: save, load, float forward: %s", c, err.msg);
    for (i = 0; i < out->n; i++) od[i] = of[i];
    if (ok) {
        char what[80];
        snprintf(what, sizeof what, "%s: float inference", c);
        ref_compare(what, od, out->v, out->n, NULL);
    }
    mmspcl_weights_free(w);
    mmspcl_writer_free(wr);
    free(bytes); free(hold); free(of); free(od);
    for (m = 0; m < 3; m++) { free(xf[m]); free(yf[m]); }
}

static void ref_case(const ref_file *rf, const char *c) {
    const ref_rec *cfg = ref_get(rf, c, "cfg"), *tau = ref_get(rf, c, "tau"), *W = ref_get(rf, c, "W"), *out = ref_get(rf, c, "out");
    static const char *const mn[3] = { "t", "a", "v" };
    mmspcl_xprune_cfg pc;
    mmspcl_xprune_train xp;
    mmspcl_fusion_cfg fc;
    mmspcl_fusion fu;
    mmspcl_params P;
    mmspcl_rng r;
    mmspcl_error err;
    double *x[3], *y[3], *dy[3], *dx[3], *o, worst = 0;
    int i, m, n, C, grads = 0, kept_ok = 1;
    if (!cfg || cfg->n != 9 || !tau || !W || !out) { CHECK(0, "%s: records missing", c); return; }
    memset(&pc, 0, sizeof pc);
    n = (int)cfg->v[0];
    for (m = 0; m < 3; m++) pc.dims[m] = (int)cfg->v[1 + m];
    pc.K = (int)cfg->v[4]; pc.proj_dim = (int)cfg->v[5]; pc.rule = (int)cfg->v[6]; pc.joint = (int)cfg->v[7]; pc.tau = tau->v[0];
    C = (int)cfg->v[8];
    mmspcl_params_init(&P);
    mmspcl_rng_seed(&r, 7);
    CHECK(!mmspcl_xprune_train_create(&xp, &P, "xp", &pc, &r, &err), "%s: create: %s", c, err.msg);
    mmspcl_fusion_defaults(&fc, MMSPCL_FUSION_LINEAR);
    for (m = 0; m < 3; m++) fc.dims[m] = xp.lay.width[m];
    fc.out_dim = C;
    CHECK(!mmspcl_fusion_create(&fu, &P, "fuse", &fc, &r, &err), "%s: fusion: %s", c, err.msg);
    for (i = 0; i < rf->n; i++) {   /* PyTorch's parameters into ours */
        char pre[64];
        const mmspcl_param_info *pi;
        snprintf(pre, sizeof pre, "%s.param.", c);
        if (strncmp(rf->r[i].name, pre, strlen(pre))) continue;
        pi = ref_param(&P, rf->r[i].name + strlen(pre));
        CHECK(pi && pi->n == rf->r[i].n, "%s has no place in ours", rf->r[i].name);
        if (pi && pi->n == rf->r[i].n) memcpy(P.w + pi->off, rf->r[i].v, sizeof(double) * pi->n);
    }
    for (m = 0; m < 3; m++) {
        char name[16];
        snprintf(name, sizeof name, "x.%s", mn[m]);
        x[m] = ref_get(rf, c, name)->v;
        y[m] = (double *)malloc(sizeof(double) * (size_t)n * xp.lay.width[m]);
        dy[m] = (double *)calloc((size_t)n * xp.lay.width[m], sizeof(double));
        dx[m] = (double *)calloc((size_t)n * pc.dims[m], sizeof(double));
    }
    o = (double *)malloc(sizeof(double) * (size_t)n * C);
    CHECK(!mmspcl_xprune_train_forward(&xp, &P, (const double *const *)x, n, y, &err) &&
          !mmspcl_fusion_forward(&fu, &P, (const double *const *)y, n, o, NULL, &err), "%s: forward: %s", c, err.msg);
    for (m = 1; m < 3; m++) {   /* the heads chosen */
        char name[16];
        const ref_rec *k;
        snprintf(name, sizeof name, "kept.%s", mn[m]);
        k = ref_get(rf, c, name);
        for (i = 0; k && i < n * xp.lay.np[m]; i++)
            kept_ok &= xp.kept[(size_t)(i / xp.lay.np[m]) * xp.lay.n_kept + xp.lay.koff[m] + i % xp.lay.np[m]] == (unsigned char)k->v[i];
        CHECK(k && (int)k->n == n * xp.lay.np[m], "%s: kept.%s shape", c, mn[m]);
    }
    CHECK(kept_ok, "%s: the heads zeroed differ from PyTorch's", c);
    {
        char what[80];
        snprintf(what, sizeof what, "%s: output", c);
        ref_compare(what, o, out->v, out->n, &worst);
    }
    mmspcl_params_zero_grad(&P);
    mmspcl_fusion_backward(&fu, &P, (const double *const *)y, n, W->v, dy);
    mmspcl_xprune_train_backward(&xp, &P, (const double *const *)x, n, (const double *const *)dy, dx);
    for (i = 0; i < rf->n; i++) {
        char pre[64];
        const mmspcl_param_info *pi;
        snprintf(pre, sizeof pre, "%s.grad.", c);
        if (strncmp(rf->r[i].name, pre, strlen(pre)) || !strncmp(rf->r[i].name + strlen(pre), "x.", 2)) continue;
        pi = ref_param(&P, rf->r[i].name + strlen(pre));
        if (pi && pi->n == rf->r[i].n) ref_compare(rf->r[i].name, P.g + pi->off, rf->r[i].v, pi->n, NULL);
        else CHECK(0, "%s: no tensor", rf->r[i].name);
        grads++;
    }
    for (m = 0; m < 3; m++) {
        char name[16];
        snprintf(name, sizeof name, "grad.x.%s", mn[m]);
        ref_compare(name, dx[m], ref_get(rf, c, name)->v, (size_t)n * pc.dims[m], NULL);
        grads++;
    }
    ref_float(c, &P, &xp, &fu, (const double *const *)x, n, out);
    printf("  vs PyTorch pruning %-10s  %d gradients compared, output max|diff| %.2e\n", c, grads, worst);
    for (m = 0; m < 3; m++) { free(y[m]); free(dy[m]); free(dx[m]); }
    free(o);
    mmspcl_xprune_train_free(&xp);
    mmspcl_fusion_free(&fu);
    mmspcl_params_free(&P);
}


/* ---- the SPCL model's pruning (mmspcl_spcl_model over mmspcl_pfusion) against PyTorch ---------- */
#define SPCL_PATH "build/tests/test_prune_spcl.mmw"

/* PyTorch's name -> the SPCL model's (prune.proj.t.weight, fusion.proj.bias) */
static const mmspcl_param_info *spcl_param(const mmspcl_params *P, const char *torch_name) {
    char ours[200];
    if (!strncmp(torch_name, "proj_", 5)) snprintf(ours, sizeof ours, "prune.proj.%c%s", torch_name[5], torch_name + 6);
    else if (!strncmp(torch_name, "fuse.", 5)) snprintf(ours, sizeof ours, "fusion.proj.%s", torch_name + 5);
    else return NULL;
    return mmspcl_params_find(P, ours);
}

/* case c through mmspcl_spcl_model (a Linear fusion head to C outputs = PyTorch's fuse): the
   heads, the output, every gradient (mmspcl_pfusion_backward), then saved, loaded and embedded
   from float inputs */
static void spcl_case(const ref_file *rf, const char *c) {
    static const char *const mn[3] = { "t", "a", "v" };
    const ref_rec *cfg = ref_get(rf, c, "cfg"), *tau = ref_get(rf, c, "tau"), *W = ref_get(rf, c, "W"), *out = ref_get(rf, c, "out");
    mmspcl_xprune_cfg pc;
    mmspcl_fusion_cfg fc;
    mmspcl_spcl_model M, M2;
    mmspcl_weights *w = NULL;
    mmspcl_error err;
    double *x[3], *dx[3], *o, *o2, worst = 0;
    float *xf[3];
    int i, m, n, C, grads = 0, kept_ok = 1;
    if (!cfg || cfg->n != 9 || !tau || !W || !out) { CHECK(0, "%s: records missing", c); return; }
    memset(&pc, 0, sizeof pc);
    n = (int)cfg->v[0];
    pc.K = (int)cfg->v[4]; pc.proj_dim = (int)cfg->v[5]; pc.rule = (int)cfg->v[6]; pc.joint = (int)cfg->v[7]; pc.tau = tau->v[0];
    C = (int)cfg->v[8];
    mmspcl_fusion_defaults(&fc, MMSPCL_FUSION_LINEAR);
    for (m = 0; m < 3; m++) fc.dims[m] = (int)cfg->v[1 + m];
    fc.out_dim = C;
    if (mmspcl_spcl_model_create(&M, &fc, 2, &pc, 9, &err)) { CHECK(0, "%s: spcl model: %s", c, err.msg); return; }
    CHECK(M.embed.has_prune && M.embed.prune.lay.mods == (MMSPCL_MOD_A | MMSPCL_MOD_V), "%s: a and v pruned against t", c);
    for (i = 0; i < rf->n; i++) {
        char pre[64];
        const mmspcl_param_info *pi;
        snprintf(pre, sizeof pre, "%s.param.", c);
        if (strncmp(rf->r[i].name, pre, strlen(pre))) continue;
        pi = spcl_param(&M.P, rf->r[i].name + strlen(pre));
        CHECK(pi && pi->n == rf->r[i].n, "spcl model: %s has no place", rf->r[i].name);
        if (pi && pi->n == rf->r[i].n) memcpy(M.P.w + pi->off, rf->r[i].v, sizeof(double) * pi->n);
    }
    for (m = 0; m < 3; m++) {
        char name[16];
        snprintf(name, sizeof name, "x.%s", mn[m]);
        x[m] = ref_get(rf, c, name)->v;
        dx[m] = (double *)calloc((size_t)n * fc.dims[m], sizeof(double));
        xf[m] = (float *)malloc(sizeof(float) * (size_t)n * fc.dims[m]);
        for (i = 0; i < n * fc.dims[m]; i++) xf[m][i] = (float)x[m][i];
    }
    o = (double *)malloc(sizeof(double) * (size_t)n * C);
    o2 = (double *)malloc(sizeof(double) * (size_t)n * C);
    CHECK(!mmspcl_pfusion_forward(&M.embed, &M.P, (const double *const *)x, n, o, NULL, &err), "%s: forward: %s", c, err.msg);
    for (m = 1; m < 3; m++) {
        const mmspcl_xprune_layout *l = &M.embed.prune.lay;
        char name[16];
        const ref_rec *k;
        snprintf(name, sizeof name, "kept.%s", mn[m]);
        k = ref_get(rf, c, name);
        for (i = 0; k && i < n * l->np[m] && i < (int)k->n; i++)
            kept_ok &= M.embed.prune.kept[(size_t)(i / l->np[m]) * l->n_kept + l->koff[m] + i % l->np[m]] == (unsigned char)k->v[i];
    }
    CHECK(kept_ok, "spcl model %s: the heads zeroed differ from PyTorch's", c);
    ref_compare("spcl model output", o, out->v, out->n, &worst);
    mmspcl_params_zero_grad(&M.P);
    mmspcl_pfusion_backward(&M.embed, &M.P, (const double *const *)x, n, W->v, dx);
    for (i = 0; i < rf->n; i++) {
        char pre[64];
        const mmspcl_param_info *pi;
        snprintf(pre, sizeof pre, "%s.grad.", c);
        if (strncmp(rf->r[i].name, pre, strlen(pre)) || !strncmp(rf->r[i].name + strlen(pre), "x.", 2)) continue;
        pi = spcl_param(&M.P, rf->r[i].name + strlen(pre));
        if (pi && pi->n == rf->r[i].n) ref_compare(rf->r[i].name, M.P.g + pi->off, rf->r[i].v, pi->n, NULL);
        else CHECK(0, "spcl model: %s: no tensor", rf->r[i].name);
        grads++;
    }
    for (m = 0; m < 3; m++) {
        char name[16];
        snprintf(name, sizeof name, "grad.x.%s", mn[m]);
        ref_compare(name, dx[m], ref_get(rf, c, name)->v, (size_t)n * fc.dims[m], NULL);
        grads++;
    }
    /* saved and loaded: the same layer (rule, joint, threshold, projection), the same output */
    CHECK(!mmspcl_spcl_model_save(&M, SPCL_PATH, 0, &err) && !mmspcl_weights_open(&w, SPCL_PATH, &err) &&
          !mmspcl_spcl_model_load(&M2, w, &err), "%s: spcl model save, load: %s", c, err.msg);
    if (w && M2.P.n == M.P.n) {
        CHECK(M2.embed.has_prune && M2.embed.prune.cfg.rule == pc.rule && M2.embed.prune.cfg.joint == pc.joint &&
              M2.embed.prune.cfg.proj_dim == pc.proj_dim && M2.embed.prune.cfg.K == pc.K &&
              (pc.rule != MMSPCL_PRUNE_THRESHOLD || M2.embed.prune.cfg.tau == pc.tau), "%s: the pruning layer comes back", c);
        CHECK(!mmspcl_spcl_model_embed(&M2, (const float *const *)xf, n, o2, &err), "%s: embed: %s", c, err.msg);
        ref_compare("spcl model, loaded, float inputs", o2, out->v, out->n, NULL);
        mmspcl_spcl_model_free(&M2);
    }
    mmspcl_weights_free(w);
    remove(SPCL_PATH);
    printf("  vs PyTorch, SPCL model pruning %-10s  %d gradients compared, output max|diff| %.2e\n", c, grads, worst);
    for (m = 0; m < 3; m++) { free(dx[m]); free(xf[m]); }
    free(o); free(o2);
    mmspcl_spcl_model_free(&M);
}

/* a copy of file src without the keys starting with drop, plus the int keys k[i] = v[i] */
static int rewrite_keys(const char *src, const char *dst, const char *drop, const char *const *k, const int64_t *v, int nk) {
    mmspcl_weights *w = NULL;
    mmspcl_writer *wr = mmspcl_writer_create();
    mmspcl_error err;
    int64_t i;
    int bad = !wr || mmspcl_weights_open(&w, src, &err);
    for (i = 0; !bad && i < w->n_kv; i++) {
        const mmspcl_kv *kv = &w->kv[i];
        if (!strncmp(kv->key, drop, strlen(drop))) continue;
        if (kv->type == MMSPCL_KV_INT) bad = mmspcl_writer_set_int(wr, kv->key, kv->i);
        else if (kv->type == MMSPCL_KV_FLOAT) bad = mmspcl_writer_set_float(wr, kv->key, kv->f);
        else if (kv->type == MMSPCL_KV_STR) bad = mmspcl_writer_set_str(wr, kv->key, kv->str);
        else bad = mmspcl_writer_set_str_array(wr, kv->key, kv->strs, kv->lens, kv->count);
    }
    for (i = 0; !bad && i < nk; i++) bad = mmspcl_writer_set_int(wr, k[i], v[i]);
    for (i = 0; !bad && i < w->n_tensors; i++) {
        const mmspcl_tensor *t = &w->tensors[i];
        bad = mmspcl_writer_add_tensor(wr, t->name, t->dtype, t->ndim, t->ne, t->data, t->nbytes, &err);
    }
    if (!bad) bad = mmspcl_writer_save(wr, dst, NULL, NULL, &err);
    mmspcl_writer_free(wr);
    mmspcl_weights_free(w);
    return bad;
}

/* a file of before the pruning layer (spcl.prune.{base,mod,K}: v against t by arg-max) loads
   as that layer with mods = {v} and embeds as the model it was saved from; a half legacy
   record is refused naming the keys */
static void test_spcl_legacy(const ref_file *rf) {
    static const char *const lk[3] = { "spcl.prune.base", "spcl.prune.mod", "spcl.prune.K" };
    const int64_t lv[3] = { 0, 2, 4 }, lv2[2] = { 0, 2 };
    const ref_rec *xr[3] = { ref_get(rf, "raw_sep", "x.t"), ref_get(rf, "raw_sep", "x.a"), ref_get(rf, "raw_sep", "x.v") };
    mmspcl_xprune_cfg pc;
    mmspcl_fusion_cfg fc;
    mmspcl_spcl_model M, M2;
    mmspcl_weights *w = NULL;
    mmspcl_error err;
    float *xf[3];
    double z[5 * 6], z2[5 * 6], md = 0;
    int m, i;
    if (!xr[0] || !xr[1] || !xr[2]) { CHECK(0, "raw_sep inputs missing"); return; }
    mmspcl_fusion_defaults(&fc, MMSPCL_FUSION_LINEAR);
    fc.dims[0] = 8; fc.dims[1] = 11; fc.dims[2] = 13; fc.out_dim = 6;
    memset(&pc, 0, sizeof pc);
    pc.base = 0; pc.mods = MMSPCL_MOD_V; pc.K = 4;
    CHECK(!mmspcl_spcl_model_create(&M, &fc, 3, &pc, 4, &err), "legacy: create: %s", err.msg);
    for (m = 0; m < 3; m++) {
        xf[m] = (float *)malloc(sizeof(float) * xr[m]->n);
        for (i = 0; i < (int)xr[m]->n; i++) xf[m][i] = (float)xr[m]->v[i];
    }
    mmspcl_spcl_model_embed(&M, (const float *const *)xf, 5, z, NULL);
    CHECK(!mmspcl_spcl_model_save(&M, SPCL_PATH, 0, &err) && !rewrite_keys(SPCL_PATH, SPCL_PATH ".old", "spcl.prune.", lk, lv, 3),
          "legacy: writing the old keys");
    CHECK(!mmspcl_weights_open(&w, SPCL_PATH ".old", &err) && !mmspcl_spcl_model_load(&M2, w, &err), "legacy file loads: %s", err.msg);
    if (M2.P.n == M.P.n) {
        mmspcl_spcl_model_embed(&M2, (const float *const *)xf, 5, z2, NULL);
        for (i = 0; i < 5 * 6; i++) md = fmax(md, fabs(z2[i] - z[i]));
        CHECK(M2.embed.has_prune && M2.embed.prune.cfg.mods == MMSPCL_MOD_V && M2.embed.prune.cfg.rule == MMSPCL_PRUNE_ARGMAX &&
              M2.embed.prune.cfg.K == 4 && !M2.embed.prune.cfg.proj_dim && md < 1e-6,
              "legacy: v pruned against t by arg-max in heads of 4, same embeddings (%.1e)", md);
        mmspcl_spcl_model_free(&M2);
    }
    mmspcl_weights_free(w);
    w = NULL;
    CHECK(!rewrite_keys(SPCL_PATH, SPCL_PATH ".old", "spcl.prune.", lk, lv2, 2) && !mmspcl_weights_open(&w, SPCL_PATH ".old", &err) &&
          mmspcl_spcl_model_load(&M2, w, &err) == MMSPCL_ERR_NOT_FOUND && strstr(err.msg, "spcl.prune.K"),
          "legacy: spcl.prune.mod without spcl.prune.K is refused naming it: %s", err.msg);
    mmspcl_weights_free(w);
    remove(SPCL_PATH);
    remove(SPCL_PATH ".old");
    for (m = 0; m < 3; m++) free(xf[m]);
    mmspcl_spcl_model_free(&M);
}

static void test_reference(void) {
    static const char *const cases[5] = { "proj_sep", "proj_joint", "proj_thr", "raw_sep", "raw_thr" };
    ref_file rf;
    int k;
    if (test_ref_load(&rf, "tests/data/prune_ref/prune_ref.txt")) { CHECK(0, "cannot read tests/data/prune_ref/prune_ref.txt"); return; }
    for (k = 0; k < 5; k++) ref_case(&rf, cases[k]);
    for (k = 0; k < 5; k++) spcl_case(&rf, cases[k]);
    test_spcl_legacy(&rf);
    test_ref_free(&rf);
}

/* bad configurations are refused with a message naming the problem */
static void test_plan_errors(void) {
    mmspcl_xprune_cfg c;
    mmspcl_xprune_layout l;
    mmspcl_error err;
    memset(&c, 0, sizeof c);
    c.dims[0] = 8; c.dims[1] = 6; c.dims[2] = 5; c.K = 4;
    CHECK(!mmspcl_xprune_plan(&c, &l, &err) && l.mods == (MMSPCL_MOD_A | MMSPCL_MOD_V) && l.np[1] == 2 && l.np[2] == 2 && l.n_kept == 4,
          "default pruning set: a and v");
    c.mods = MMSPCL_MOD_T | MMSPCL_MOD_A;
    CHECK(mmspcl_xprune_plan(&c, &l, &err) == MMSPCL_ERR_ARG && strstr(err.msg, "not the base t"), "the base cannot be pruned: %s", err.msg);
    c.mods = 0; c.K = 3;
    CHECK(mmspcl_xprune_plan(&c, &l, &err) == MMSPCL_ERR_ARG && strstr(err.msg, "multiple of head size 3"), "K must divide the base: %s", err.msg);
    c.K = 4; c.proj_dim = 6;
    CHECK(mmspcl_xprune_plan(&c, &l, &err) == MMSPCL_ERR_ARG && strstr(err.msg, "base width 6"), "K must divide the projection: %s", err.msg);
    c.proj_dim = 0; c.rule = MMSPCL_PRUNE_THRESHOLD; c.tau = (double)NAN;
    CHECK(mmspcl_xprune_plan(&c, &l, &err) == MMSPCL_ERR_ARG, "a NaN threshold is refused");
    c.rule = MMSPCL_PRUNE_ARGMAX; c.dims[2] = 0; c.mods = MMSPCL_MOD_V;
    CHECK(mmspcl_xprune_plan(&c, &l, &err) == MMSPCL_ERR_ARG && strstr(err.msg, "v is not present"), "an absent pruning modality: %s", err.msg);
    c.mods = 0; c.dims[0] = 0;
    CHECK(mmspcl_xprune_plan(&c, &l, &err) == MMSPCL_ERR_ARG && strstr(err.msg, "base modality 0 is not present"), "an absent base: %s", err.msg);
}

/* pruning over sequences (mmspcl_xprune_forward_seq), arg-max rule, a and v each on their own,
   checked step by step against mmspcl_prune_apply (hand-checked above): at a step where the base
   and a pruning modality are both real, that modality's step is pruned by the base's step; a step
   past the base's length passes unchanged (all heads kept); padded steps are zero whatever the
   input holds there; the base passes unchanged. */
static void test_seq(void) {
    enum { N = 2, TT = 3, TA = 2, TV = 3, DT = 4, DA = 4, DV = 6, K = 2 };
    static const int lt[N] = { 3, 1 }, la[N] = { 2, 2 }, lv[N] = { 3, 1 };
    const int T[3] = { TT, TA, TV };
    const int *const lens[3] = { lt, la, lv };
    float xt[N * TT * DT], xa[N * TA * DA], xv[N * TV * DV], yt[N * TT * DT], ya[N * TA * DA], yv[N * TV * DV];
    float want[DV];
    unsigned char kept[N * TT * 5], k1[3];
    const float *x[3] = { xt, xa, xv };
    float *y[3] = { yt, ya, yv };
    mmspcl_xprune p;
    mmspcl_error err;
    int i, s, j, m;
    unsigned r = 12345;
    memset(&p, 0, sizeof p);
    p.cfg.dims[0] = DT; p.cfg.dims[1] = DA; p.cfg.dims[2] = DV; p.cfg.K = K;
    CHECK(!mmspcl_xprune_plan(&p.cfg, &p.lay, &err) && p.lay.n_kept == 5, "seq plan: %s", err.msg);
    for (m = 0; m < 3; m++)
        for (j = 0; j < N * T[m] * p.cfg.dims[m]; j++) { r = r * 1103515245u + 12345u; ((float *)x[m])[j] = (float)((r >> 16) % 2001) / 1000.0f - 1.0f; }
    CHECK(!mmspcl_xprune_forward_seq(&p, x, T, lens, N, y, kept, &err), "forward_seq: %s", err.msg);
    for (i = 0; i < N; i++)
        for (s = 0; s < TT; s++) {
            const float *bt = xt + ((size_t)i * TT + s) * DT;
            for (j = 0; j < DT; j++) CHECK(yt[((size_t)i * TT + s) * DT + j] == (s < lt[i] ? bt[j] : 0.0f), "seq: base sample %d step %d value %d", i, s, j);
            for (m = 1; m < 3; m++) {
                const int d = p.cfg.dims[m], len = lens[m][i];
                const float *xs = x[m] + ((size_t)i * T[m] + s) * d;
                const float *ys = y[m] + ((size_t)i * T[m] + s) * d;
                if (s >= T[m]) continue;
                if (s >= len) memset(want, 0, sizeof want);                       /* padding */
                else if (s >= lt[i]) memcpy(want, xs, sizeof(float) * (size_t)d);  /* no base step */
                else CHECK(!mmspcl_prune_apply(bt, DT, xs, d, K, 1, want, k1, &err), "prune_apply: %s", err.msg);
                for (j = 0; j < d; j++) CHECK(ys[j] == want[j], "seq: %s sample %d step %d value %d: %g, want %g", m == 1 ? "a" : "v", i, s, j, ys[j], want[j]);
                if (s < len && s < lt[i])
                    for (j = 0; j < d / K; j++) CHECK(kept[((size_t)i * TT + s) * 5 + p.lay.koff[m] + j] == k1[j], "seq: kept flag %d of %s, sample %d step %d", j, m == 1 ? "a" : "v", i, s);
                else
                    for (j = 0; j < d / K; j++) CHECK(kept[((size_t)i * TT + s) * 5 + p.lay.koff[m] + j] == 1, "seq: a step not compared keeps its heads (%s, sample %d step %d)", m == 1 ? "a" : "v", i, s);
            }
        }
    /* a length outside 1..T is refused, naming the sample */
    {
        static const int bad[N] = { 3, 0 };
        const int *const lb[3] = { bad, la, lv };
        CHECK(mmspcl_xprune_forward_seq(&p, x, T, lb, N, y, NULL, &err) == MMSPCL_ERR_ARG && strstr(err.msg, "sample 1 of t"), "length 0: %s", err.msg);
    }
}

/* the training twin over sequences (mmspcl_xprune_train_forward_seq / _backward_seq, what
   train_fusion --fusion prune trains over sequences): its output and kept flags equal the saved
   layer's float mmspcl_xprune_forward_seq (checked step by step above), padded steps and their
   gradients are zero, and the gradients of L = sum(y * G) with respect to the projections and
   the inputs equal central differences. Both rules, a and v pruned against t. */
static double seq_loss(mmspcl_xprune_train *xp, const mmspcl_params *P, double *const x[3], const int T[3],
                       const int *const lens[3], int n, double *const y[3], double *const G[3]) {
    mmspcl_error err;
    double L = 0;
    int m, j;
    if (mmspcl_xprune_train_forward_seq(xp, P, (const double *const *)x, T, lens, n, y, &err)) return NAN;
    for (m = 0; m < 3; m++)
        for (j = 0; j < n * T[m] * xp->lay.width[m]; j++) L += y[m][j] * G[m][j];
    return L;
}

static void seq_train_case(int threshold, int proj) {
    enum { N = 3 };
    static const int lt[N] = { 3, 1, 2 }, la[N] = { 2, 2, 1 }, lv[N] = { 3, 1, 3 };
    const int T[3] = { 3, 2, 3 };
    const int *const lens[3] = { lt, la, lv };
    const char *what = threshold ? "threshold" : "arg-max";
    mmspcl_xprune_cfg pc;
    mmspcl_xprune_train xp;
    mmspcl_xprune h;
    mmspcl_params P;
    mmspcl_rng r;
    mmspcl_error err;
    mmspcl_writer *wr = mmspcl_writer_create();
    mmspcl_weights *w = NULL;
    unsigned char *bytes = NULL, *kf;
    size_t nbytes = 0;
    float *hold = NULL, *xf[3], *yf[3];
    double *x[3], *y[3], *G[3], *dx[3], worst_f = 0, worst_g = 0, worst_x = 0;
    int m, i, j, s, ok, kept_same = 1, pad_ok = 1;
    memset(&pc, 0, sizeof pc);
    pc.dims[0] = 4; pc.dims[1] = 6; pc.dims[2] = 4; pc.K = 2; pc.proj_dim = proj ? 4 : 0;
    pc.rule = threshold ? MMSPCL_PRUNE_THRESHOLD : MMSPCL_PRUNE_ARGMAX; pc.tau = 0.3;
    mmspcl_params_init(&P);
    mmspcl_rng_seed(&r, 99);
    CHECK(!mmspcl_xprune_train_create(&xp, &P, "xp", &pc, &r, &err), "seq train create: %s", err.msg);
    for (m = 0; m < 3; m++) {
        const size_t nx = (size_t)N * T[m] * pc.dims[m], ny = (size_t)N * T[m] * xp.lay.width[m];
        x[m] = (double *)malloc(sizeof(double) * nx); dx[m] = (double *)calloc(nx, sizeof(double));
        y[m] = (double *)malloc(sizeof(double) * ny); G[m] = (double *)malloc(sizeof(double) * ny);
        xf[m] = (float *)malloc(sizeof(float) * nx); yf[m] = (float *)malloc(sizeof(float) * ny);
        for (j = 0; j < (int)nx; j++) { x[m][j] = (float)(2 * mmspcl_rng_uniform(&r) - 1); xf[m][j] = (float)x[m][j]; }   /* padding holds values too */
        for (j = 0; j < (int)ny; j++) G[m][j] = 2 * mmspcl_rng_uniform(&r) - 1;
    }
    kf = (unsigned char *)malloc((size_t)N * 3 * xp.lay.n_kept);
    CHECK(!isnan(seq_loss(&xp, &P, x, T, lens, N, y, G)), "seq train forward");
    ok = wr && kf && !mmspcl_xprune_train_write_config(&xp, wr) && !mmspcl_params_write(&P, wr, NULL, 0, &hold, &err) &&
         !mmspcl_writer_save_to_memory(wr, &bytes, &nbytes, &err) && !mmspcl_weights_from_memory(&w, bytes, nbytes, &err) &&
         !mmspcl_xprune_load(&h, w, "xp", &err) && !mmspcl_xprune_forward_seq(&h, (const float *const *)xf, T, lens, N, yf, kf, &err);
    CHECK(ok, "seq train (%s): save, load, float forward_seq: %s", what, err.msg);
    for (m = 0; ok && m < 3; m++)
        for (i = 0; i < N; i++)
            for (s = 0; s < T[m]; s++)
                for (j = 0; j < xp.lay.width[m]; j++) {
                    const size_t k = ((size_t)i * T[m] + s) * xp.lay.width[m] + j;
                    if (fabs(y[m][k] - yf[m][k]) > worst_f) worst_f = fabs(y[m][k] - yf[m][k]);
                    if (s >= lens[m][i] && y[m][k] != 0.0) pad_ok = 0;
                }
    for (j = 0; ok && j < N * 3 * xp.lay.n_kept; j++) kept_same &= kf[j] == xp.kept[j];
    CHECK(ok && worst_f <= 1e-5 && kept_same && pad_ok, "seq train (%s): as the float layer: max |diff| %.2e, kept flags %s, padding %s", what,
          worst_f, kept_same ? "equal" : "differ", pad_ok ? "zero" : "not zero");
    mmspcl_params_zero_grad(&P);
    seq_loss(&xp, &P, x, T, lens, N, y, G);
    mmspcl_xprune_train_backward_seq(&xp, &P, (const double *const *)x, T, lens, N, (const double *const *)G, dx);
    for (j = 0; j < (int)P.n; j++) {   /* the projections' parameters */
        const double keep = P.w[j], e = 1e-6;
        double lp, lm;
        P.w[j] = keep + e; lp = seq_loss(&xp, &P, x, T, lens, N, y, G);
        P.w[j] = keep - e; lm = seq_loss(&xp, &P, x, T, lens, N, y, G);
        P.w[j] = keep;
        if (fabs((lp - lm) / (2 * e) - P.g[j]) > worst_g) worst_g = fabs((lp - lm) / (2 * e) - P.g[j]);
    }
    for (m = 0; m < 3; m++)
        for (j = 0; j < N * T[m] * pc.dims[m]; j++) {
            const double keep = x[m][j], e = 1e-6;
            double lp, lm;
            x[m][j] = keep + e; lp = seq_loss(&xp, &P, x, T, lens, N, y, G);
            x[m][j] = keep - e; lm = seq_loss(&xp, &P, x, T, lens, N, y, G);
            x[m][j] = keep;
            if (fabs((lp - lm) / (2 * e) - dx[m][j]) > worst_x) worst_x = fabs((lp - lm) / (2 * e) - dx[m][j]);
        }
    CHECK(worst_g <= 1e-6 && worst_x <= 1e-6 && (proj ? P.n > 0 : P.n == 0),
          "seq train (%s, %s): gradients vs central differences: parameters %.2e (%zu), inputs %.2e", what, proj ? "projection" : "no projection",
          worst_g, P.n, worst_x);
    printf("  seq train %-9s %-13s vs float forward_seq %.1e, gradients vs differences %.1e / %.1e\n", what, proj ? "projection" : "no projection",
           worst_f, worst_g, worst_x);
    mmspcl_weights_free(w);
    mmspcl_writer_free(wr);
    free(bytes); free(hold); free(kf);
    for (m = 0; m < 3; m++) { free(x[m]); free(dx[m]); free(y[m]); free(G[m]); free(xf[m]); free(yf[m]); }
    mmspcl_xprune_train_free(&xp);
    mmspcl_params_free(&P);
}

int main(void) {
    float out[9], two[2 * 9];
    unsigned char kept[5], kept2[2 * 5];
    mmspcl_error err;
    expect(0.7, "01010");    /* heads 0 (cos 1), 2 (0.7071) and 4 (1) reach 0.7 */
    expect(0.71, "01110");   /* head 2 no longer does */
    expect(-0.5, "00010");   /* only head 3 (cos -1) stays */
    expect(1.5, "11111");    /* above every cosine: nothing pruned */
    expect(-1.0, "00000");   /* every cosine is >= -1 */
    /* the arg-max rule zeroes exactly the best match (the first head with cos 1) */
    CHECK(!mmspcl_prune_apply(base, 2, prune, 9, 2, 1, out, kept, &err), "argmax");
    CHECK(kept[0] == 0 && kept[1] && kept[2] && kept[3] && kept[4], "argmax keeps all but head 0");
    /* rows are independent: two rows give each row's own answer */
    memcpy(two, prune, sizeof prune);
    memcpy(two + 9, prune, sizeof prune);
    two[9 + 2] = 7;   /* row 1, head 1 = [7, 3]: cos 0.919 */
    {
        const float b2[4] = { 1, 0, 1, 0 };
        float o2[18];
        CHECK(!mmspcl_prune_threshold_apply(b2, 2, two, 9, 2, 0.9, 2, o2, kept2, &err), "two rows");
        CHECK(kept2[1] == 1 && kept2[5 + 1] == 0, "row 1's head 1 (cos 0.919) goes, row 0's (cos 0) stays");
    }
    CHECK(mmspcl_prune_threshold_apply(base, 2, prune, 9, 3, 0.5, 1, out, kept, &err) == MMSPCL_ERR_ARG && strstr(err.msg, "head size 3"),
          "a base width that is not a multiple of K is refused: %s", err.msg);
    CHECK(mmspcl_prune_threshold_apply(base, 2, prune, 9, 2, (double)NAN, 1, out, kept, &err) == MMSPCL_ERR_ARG,
          "a NaN threshold is refused");
    test_plan_errors();
    test_seq();
    seq_train_case(0, 1);
    seq_train_case(1, 0);
    seq_train_case(1, 1);
    test_reference();
    return TEST_END();
}
