/* CLIP vision tower against PyTorch (tests/data/clip-tiny/expected.txt, tools/reference/clip_ref.py).
   Weight files: build/mmspcl-convert (f32, q8_0, q4_0, and the full CLIPModel checkpoint), plus
   files built here with the writer API straight from the safetensors (independent of the
   converter; also used for the error cases). Also mmspcl_clip_embed_image and
   `build/mmspcl encode-image` on PPM files written here. */
#define MMSPCL_IMPLEMENTATION
#include "mmspcl.h"
#include "tests/test.h"
#include <stdlib.h>
#include <string.h>

#define TMP "build/tests/tmp"
#define TINY "tests/data/clip-tiny"

/* ---- expected.txt ------------------------------------------------------------------------ */
typedef struct {
    int S, P, C, W, L, H, I, proj;
    double eps;
    int batch, T;
    float *pixels, *hidden, *pooled, *embeds;  /* [batch][...] */
} ref_t;

static int read_floats(FILE *f, float *x, size_t n) {
    size_t i;
    for (i = 0; i < n; i++)
        if (fscanf(f, "%f", &x[i]) != 1) return 0;
    return 1;
}

static int expect_word(FILE *f, const char *w) {
    char buf[64];
    return fscanf(f, "%63s", buf) == 1 && strcmp(buf, w) == 0;
}

static int load_ref(const char *path, ref_t *r) {
    FILE *f = fopen(path, "r");
    char line[4096];
    int b, c, s, s2, t, w;
    memset(r, 0, sizeof *r);
    if (!f) return 0;
    while (fgets(line, sizeof line, f) && line[0] == '#') {}
    if (sscanf(line, "model clip_vision %d %d %d %d %d %d %d %d %lf", &r->S, &r->P, &r->C, &r->W, &r->L,
               &r->H, &r->I, &r->proj, &r->eps) != 9) goto bad;
    if (!expect_word(f, "weights") || !expect_word(f, "F32") || !expect_word(f, "batch") ||
        fscanf(f, "%d", &r->batch) != 1) goto bad;
    r->T = 1 + (r->S / r->P) * (r->S / r->P);
    r->pixels = (float *)malloc(sizeof(float) * (size_t)r->batch * (size_t)(r->C * r->S * r->S));
    r->hidden = (float *)malloc(sizeof(float) * (size_t)r->batch * (size_t)(r->T * r->W));
    r->pooled = (float *)malloc(sizeof(float) * (size_t)r->batch * (size_t)r->W);
    r->embeds = (float *)malloc(sizeof(float) * (size_t)r->batch * (size_t)r->proj);
    for (b = 0; b < r->batch; b++) {
        if (!expect_word(f, "image") || fscanf(f, "%d", &c) != 1 || c != b) goto bad;
        if (!expect_word(f, "pixels") || fscanf(f, "%d %d %d", &c, &s, &s2) != 3 || c != r->C || s != r->S) goto bad;
        if (!read_floats(f, r->pixels + (size_t)b * (size_t)(r->C * r->S * r->S), (size_t)(r->C * r->S * r->S))) goto bad;
        if (!expect_word(f, "hidden") || fscanf(f, "%d %d", &t, &w) != 2 || t != r->T || w != r->W) goto bad;
        if (!read_floats(f, r->hidden + (size_t)b * (size_t)(r->T * r->W), (size_t)(r->T * r->W))) goto bad;
        if (!expect_word(f, "pooled") || fscanf(f, "%d", &w) != 1 || w != r->W) goto bad;
        if (!read_floats(f, r->pooled + (size_t)b * (size_t)r->W, (size_t)r->W)) goto bad;
        if (!expect_word(f, "image_embeds") || fscanf(f, "%d", &w) != 1 || w != r->proj) goto bad;
        if (!read_floats(f, r->embeds + (size_t)b * (size_t)r->proj, (size_t)r->proj)) goto bad;
    }
    fclose(f);
    return 1;
bad:
    fclose(f);
    return 0;
}

/* ---- comparisons ------------------------------------------------------------------------- */
/* max |got - ref| / max |ref| and the worst cosine over `rows` rows of n values */
static void compare(const float *got, const float *ref, int rows, size_t n, double *rel, double *cos_min) {
    double md = 0, mr = 0;
    size_t i;
    int r;
    *cos_min = 1.0;
    for (i = 0; i < (size_t)rows * n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (!(d <= md)) md = d;  /* NaN wins */
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    for (r = 0; r < rows; r++) {
        double c = test_cosine(got + (size_t)r * n, ref + (size_t)r * n, n);
        if (!(c >= *cos_min)) *cos_min = c;
    }
    *rel = mr > 0 ? md / mr : md;
}

/* ---- a minimal safetensors reader (F32 only, what clip_ref.py writes) ---------------------- */
typedef struct { char name[160]; int ndim; int64_t shape[4]; size_t off, end; } st_entry;

static const char *st_string(const char *p, char *out, size_t cap) {
    size_t n = 0;
    if (*p != '"') return NULL;
    for (p++; *p && *p != '"'; p++) if (n + 1 < cap) out[n++] = *p;
    out[n] = 0;
    return *p == '"' ? p + 1 : NULL;
}

static const char *st_ints(const char *p, int64_t *v, int cap, int *n) {
    *n = 0;
    if (*p++ != '[') return NULL;
    while (*p && *p != ']') {
        char *end;
        long long x = strtoll(p, &end, 10);
        if (end == p) return NULL;
        if (*n < cap) v[(*n)++] = x;
        p = end;
        if (*p == ',') p++;
    }
    return *p == ']' ? p + 1 : NULL;
}

/* Parses the header (compact JSON as reflib writes it); returns the number of entries, data base. */
static int st_parse(const unsigned char *file, size_t size, st_entry *e, int cap, size_t *base) {
    uint64_t hl = 0;
    const char *p, *end;
    int n = 0, i;
    for (i = 7; i >= 0; i--) hl = (hl << 8) | file[i];
    if (8 + hl > size) return -1;
    *base = 8 + (size_t)hl;
    p = (const char *)file + 8;
    end = p + hl;
    if (*p++ != '{') return -1;
    while (p < end && *p == '"') {
        char key[160], field[32], dt[16];
        if (!(p = st_string(p, key, sizeof key)) || *p++ != ':' || *p++ != '{') return -1;
        if (!strcmp(key, "__metadata__")) {
            while (p < end && *p != '}') p++;
            p++;
        } else {
            if (n >= cap) return -1;
            memset(&e[n], 0, sizeof e[n]);
            snprintf(e[n].name, sizeof e[n].name, "%s", key);
            while (p < end && *p != '}') {
                int64_t v[4];
                int k;
                if (!(p = st_string(p, field, sizeof field)) || *p++ != ':') return -1;
                if (!strcmp(field, "dtype")) {
                    if (!(p = st_string(p, dt, sizeof dt)) || strcmp(dt, "F32") != 0) return -1;
                } else if (!strcmp(field, "shape")) {
                    if (!(p = st_ints(p, e[n].shape, 4, &e[n].ndim))) return -1;
                } else {
                    if (!(p = st_ints(p, v, 4, &k)) || k != 2) return -1;
                    e[n].off = (size_t)v[0];
                    e[n].end = (size_t)v[1];
                }
                if (*p == ',') p++;
            }
            p++;
            n++;
        }
        if (*p == ',') p++;
    }
    return n;
}

/* Options for building a weight file from the safetensors, to make broken variants. */
typedef struct {
    const char *arch;         /* general.architecture */
    const char *drop;         /* leave this tensor out */
    const char *transpose;    /* store this 2-D tensor with its dimensions swapped */
    mmspcl_dtype vec_dtype;   /* dtype for every non-matrix tensor */
    int image_size;           /* clip.image_size */
    const char *act;          /* clip.hidden_act */
} build_opts;

/* Builds a weight file for clip-tiny from the safetensors and the model line of expected.txt. */
static int build_file(const ref_t *r, const char *path, const build_opts *o, mmspcl_error *err) {
    size_t size, base;
    unsigned char *file = test_read_file(TINY "/model.safetensors", &size);
    st_entry e[128];
    void *conv[128];
    int n, i, ok;
    mmspcl_writer *w = mmspcl_writer_create();
    if (!file || !w) return 0;
    n = st_parse(file, size, e, 128, &base);
    if (n <= 0) { free(file); mmspcl_writer_free(w); return 0; }
    mmspcl_writer_set_str(w, "general.architecture", o->arch);
    mmspcl_writer_set_int(w, "clip.image_size", o->image_size);
    mmspcl_writer_set_int(w, "clip.patch_size", r->P);
    mmspcl_writer_set_int(w, "clip.num_channels", r->C);
    mmspcl_writer_set_int(w, "clip.hidden_size", r->W);
    mmspcl_writer_set_int(w, "clip.num_hidden_layers", r->L);
    mmspcl_writer_set_int(w, "clip.num_attention_heads", r->H);
    mmspcl_writer_set_int(w, "clip.intermediate_size", r->I);
    mmspcl_writer_set_int(w, "clip.projection_dim", r->proj);
    mmspcl_writer_set_float(w, "clip.layer_norm_eps", r->eps);
    mmspcl_writer_set_str(w, "clip.hidden_act", o->act ? o->act : "quick_gelu");
    for (i = 0; i < n; i++) {
        const float *data = (const float *)(file + base + e[i].off);
        int64_t shape[4], nel = 1;
        mmspcl_dtype dt = MMSPCL_F32;
        int d, is_matrix = e[i].ndim == 2 && strstr(e[i].name, "position_embedding") == NULL;
        conv[i] = NULL;
        if (o->drop && !strcmp(o->drop, e[i].name)) continue;
        for (d = 0; d < e[i].ndim; d++) { shape[d] = e[i].shape[d]; nel *= shape[d]; }
        if (o->transpose && !strcmp(o->transpose, e[i].name)) { shape[0] = e[i].shape[1]; shape[1] = e[i].shape[0]; }
        if (!is_matrix && e[i].ndim != 4 && o->vec_dtype != MMSPCL_F32) {
            dt = o->vec_dtype;
            conv[i] = malloc(mmspcl_dtype_row_size(dt, nel));
            mmspcl_quantize_row(dt, data, conv[i], nel);
        }
        if (mmspcl_writer_add_tensor(w, e[i].name, dt, e[i].ndim, shape, conv[i] ? conv[i] : data,
                                     mmspcl_dtype_row_size(dt, nel), err)) {
            free(file); mmspcl_writer_free(w); return 0;
        }
    }
    ok = mmspcl_writer_save(w, path, NULL, NULL, err) == MMSPCL_OK;
    for (i = 0; i < n; i++) free(conv[i]);
    mmspcl_writer_free(w);
    free(file);
    return ok;
}

/* ---- runs -------------------------------------------------------------------------------- */
typedef struct { float *embeds, *pooled, *hidden; } outputs;

static int run_file(const char *path, const ref_t *r, int max_batch, outputs *out, mmspcl_error *err) {
    mmspcl_weights *w;
    mmspcl_clip *m;
    int ok;
    out->embeds = (float *)calloc((size_t)r->batch * (size_t)r->proj, sizeof(float));
    out->pooled = (float *)calloc((size_t)r->batch * (size_t)r->W, sizeof(float));
    out->hidden = (float *)calloc((size_t)r->batch * (size_t)r->T * (size_t)r->W, sizeof(float));
    if (mmspcl_weights_open(&w, path, err)) return 0;
    if (mmspcl_clip_load(&m, w, max_batch, err)) { mmspcl_weights_free(w); return 0; }
    ok = mmspcl_clip_forward(m, r->pixels, r->batch, out->embeds, out->pooled, err) == MMSPCL_OK;
    if (ok && max_batch >= r->batch)
        memcpy(out->hidden, mmspcl_clip_last_hidden(m), sizeof(float) * (size_t)r->batch * (size_t)r->T * (size_t)r->W);
    mmspcl_clip_free(m);
    mmspcl_weights_free(w);
    return ok;
}

static void free_outputs(outputs *o) { free(o->embeds); free(o->pooled); free(o->hidden); }

static int same_bits(const outputs *a, const outputs *b, const ref_t *r) {
    return !memcmp(a->embeds, b->embeds, sizeof(float) * (size_t)r->batch * (size_t)r->proj) &&
           !memcmp(a->pooled, b->pooled, sizeof(float) * (size_t)r->batch * (size_t)r->W);
}

/* Checks embeds and pooled (and hidden when asked) against the reference. */
static void check_close(const char *what, const outputs *o, const ref_t *r, double rel_bound,
                        double cos_bound, int with_hidden) {
    double rel, cmin;
    compare(o->embeds, r->embeds, r->batch, (size_t)r->proj, &rel, &cmin);
    printf("  %-28s embeds: max|diff|/max|ref| %.3g, cosine >= %.9f\n", what, rel, cmin);
    CHECK(rel <= rel_bound && cmin >= cos_bound, "%s: embeds rel %.3g cos %.9f", what, rel, cmin);
    compare(o->pooled, r->pooled, r->batch, (size_t)r->W, &rel, &cmin);
    printf("  %-28s pooled: max|diff|/max|ref| %.3g, cosine >= %.9f\n", what, rel, cmin);
    CHECK(rel <= rel_bound && cmin >= cos_bound, "%s: pooled rel %.3g cos %.9f", what, rel, cmin);
    if (with_hidden) {
        compare(o->hidden, r->hidden, r->batch * r->T, (size_t)r->W, &rel, &cmin);
        CHECK(rel <= rel_bound && cmin >= cos_bound, "%s: hidden rel %.3g cos %.9f", what, rel, cmin);
    }
}

static int convert(const char *src, const char *dst, const char *type) {
    return test_run(NULL, "build/mmspcl-convert %s %s%s%s > " TMP "/clip-convert.log 2>&1", src, dst,
                    type ? " --type " : "", type ? type : "") == 0;
}

/* Loading a broken file must fail with `status` and a message containing `needle`. */
static void check_load_fails(const char *what, const ref_t *r, const build_opts *o, mmspcl_status status,
                             const char *needle) {
    mmspcl_error err;
    mmspcl_weights *w = NULL;
    mmspcl_clip *m = (mmspcl_clip *)&err;   /* must come back NULL */
    mmspcl_status st;
    memset(&err, 0, sizeof err);
    if (!build_file(r, TMP "/clip-bad.mmspcl", o, &err)) { CHECK(0, "%s: cannot build: %s", what, err.msg); return; }
    if (mmspcl_weights_open(&w, TMP "/clip-bad.mmspcl", &err)) { CHECK(0, "%s: cannot open: %s", what, err.msg); return; }
    st = mmspcl_clip_load(&m, w, 2, &err);
    CHECK(st == status && m == NULL && strstr(err.msg, needle) != NULL, "%s: status %d, message '%s'", what,
          (int)st, err.msg);
    if (st == MMSPCL_OK) mmspcl_clip_free(m);
    mmspcl_weights_free(w);
}

/* ---- images and the CLI ------------------------------------------------------------------ */
static float *read_f32_file(const char *path, size_t *n) {
    size_t bytes, i;
    unsigned char *b = test_read_file(path, &bytes);
    float *x;
    if (!b) return NULL;
    *n = bytes / 4;
    x = (float *)malloc(*n * sizeof(float) + 1);
    for (i = 0; i < *n; i++) {
        uint32_t u = (uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 | (uint32_t)b[4 * i + 2] << 16 |
                     (uint32_t)b[4 * i + 3] << 24;
        memcpy(&x[i], &u, 4);
    }
    free(b);
    return x;
}

/* A binary PPM of w x h pixels: a colour pattern, or one colour when uniform. */
static int write_ppm(const char *path, int w, int h, int uniform) {
    FILE *f = fopen(path, "wb");
    int x, y;
    if (!f) return 0;
    fprintf(f, "P6\n%d %d\n255\n", w, h);
    for (y = 0; y < h; y++)
        for (x = 0; x < w; x++) {
            unsigned char px[3];
            px[0] = (unsigned char)(uniform ? 200 : (x * 7 + y * 3) & 255);
            px[1] = (unsigned char)(uniform ? 100 : (x * x + y * 5) & 255);
            px[2] = (unsigned char)(uniform ? 30 : ((x ^ y) * 11) & 255);
            fwrite(px, 1, 3, f);
        }
    return fclose(f) == 0;
}

static int file_contains(const char *path, const char *needle) {
    char *b = (char *)test_read_file(path, NULL);
    int found = b && strstr(b, needle) != NULL;
    free(b);
    return found;
}

static void check_images_and_cli(const ref_t *r) {
    mmspcl_error err;
    mmspcl_weights *w;
    mmspcl_clip *m;
    mmspcl_image img = {0, 0, NULL};
    const mmspcl_clip_config *c;
    size_t npx = (size_t)3 * (size_t)r->S * (size_t)r->S, n, i;
    float *px = (float *)malloc(npx * sizeof(float)), *e1 = (float *)malloc((size_t)r->proj * sizeof(float));
    float *e2 = (float *)malloc((size_t)r->proj * sizeof(float)), *pooled = (float *)malloc((size_t)r->W * sizeof(float));
    float *got;
    int ok = 1, rc;
    memset(&err, 0, sizeof err);
    if (mmspcl_weights_open(&w, TMP "/clip-tiny-w.mmspcl", &err) || mmspcl_clip_load(&m, w, 2, &err)) {
        CHECK(0, "images: %s", err.msg);
        return;
    }
    c = mmspcl_clip_get_config(m);
    /* a uniform image stays uniform through resize and crop: every value is (v/255 - mean) / std */
    CHECK(write_ppm(TMP "/clip-uniform.ppm", 90, 70, 1), "cannot write a PPM");
    CHECK(mmspcl_image_load(TMP "/clip-uniform.ppm", &img, &err) == MMSPCL_OK, "image load: %s", err.msg);
    CHECK(mmspcl_clip_preprocess_image(m, &img, px, &err) == MMSPCL_OK, "preprocess: %s", err.msg);
    for (i = 0; i < npx; i++) {
        static const float v[3] = {200, 100, 30};
        int ch = (int)(i / ((size_t)r->S * (size_t)r->S));
        float want = ((v[ch] / 255.0f) - c->image_mean[ch]) / c->image_std[ch];
        if (fabsf(px[i] - want) > 1e-5f) ok = 0;
    }
    CHECK(ok, "uniform image: preprocessed values are not (v/255 - mean)/std");
    mmspcl_image_free(&img);

    /* embed_image == preprocess + forward, and the CLI writes the same bits */
    CHECK(write_ppm(TMP "/clip-pattern.ppm", 97, 61, 0), "cannot write a PPM");
    CHECK(mmspcl_image_load(TMP "/clip-pattern.ppm", &img, &err) == MMSPCL_OK, "image load: %s", err.msg);
    CHECK(mmspcl_clip_embed_image(m, &img, e1, &err) == MMSPCL_OK, "embed: %s", err.msg);
    CHECK(mmspcl_clip_preprocess_image(m, &img, px, &err) == MMSPCL_OK, "preprocess: %s", err.msg);
    CHECK(mmspcl_clip_forward(m, px, 1, e2, pooled, &err) == MMSPCL_OK, "forward: %s", err.msg);
    CHECK(!memcmp(e1, e2, (size_t)r->proj * sizeof(float)), "embed_image differs from preprocess + forward");

    remove(TMP "/clip-e.f32");
    rc = test_run(NULL, "build/mmspcl encode-image -m " TMP "/clip-tiny-w.mmspcl --image " TMP "/clip-pattern.ppm -o "
                  TMP "/clip-e.f32 --dump-pixels " TMP "/clip-p.f32 2>" TMP "/clip-cli.err");
    CHECK(rc == 0, "encode-image exit status %d", rc);
    got = read_f32_file(TMP "/clip-e.f32", &n);
    CHECK(got && n == (size_t)r->proj && !memcmp(got, e1, n * sizeof(float)), "encode-image -o: wrong vector");
    free(got);
    got = read_f32_file(TMP "/clip-p.f32", &n);
    CHECK(got && n == npx && !memcmp(got, px, n * sizeof(float)), "encode-image --dump-pixels: wrong pixels");
    free(got);
    rc = test_run(NULL, "build/mmspcl encode-image -m " TMP "/clip-tiny-w.mmspcl --image " TMP "/clip-pattern.ppm --pooled -o "
                  TMP "/clip-e.f32 2>" TMP "/clip-cli.err");
    got = read_f32_file(TMP "/clip-e.f32", &n);
    CHECK(rc == 0 && got && n == (size_t)r->W && !memcmp(got, pooled, n * sizeof(float)), "encode-image --pooled");
    free(got);
    /* clear errors */
    rc = test_run(NULL, "build/mmspcl encode-image -m " TMP "/clip-tiny-w.mmspcl --image " TMP "/no-such-frame.png -o "
                  TMP "/clip-e.f32 2>" TMP "/clip-cli.err");
    CHECK(rc == 1 && file_contains(TMP "/clip-cli.err", "no-such-frame.png"), "missing image: status %d", rc);
    rc = test_run(NULL, "build/mmspcl encode-image -m " TMP "/clip-roberta.mmspcl --image " TMP "/clip-pattern.ppm -o "
                  TMP "/clip-e.f32 2>" TMP "/clip-cli.err");
    CHECK(rc == 1 && file_contains(TMP "/clip-cli.err", "not a CLIP vision tower"), "wrong architecture: status %d", rc);
    rc = test_run(NULL, "build/mmspcl encode-image --image " TMP "/clip-pattern.ppm 2>" TMP "/clip-cli.err");
    CHECK(rc == 2 && file_contains(TMP "/clip-cli.err", "-m WEIGHTS"), "no model: status %d", rc);
    mmspcl_image_free(&img);
    mmspcl_clip_free(m);
    mmspcl_weights_free(w);
    free(px); free(e1); free(e2); free(pooled);
}

/* The settings of a correct weight file; each test changes one of them. */
static build_opts base_opts(const ref_t *r) {
    build_opts o;
    o.arch = "clip_vision";
    o.drop = NULL;
    o.transpose = NULL;
    o.vec_dtype = MMSPCL_F32;
    o.image_size = r->S;
    o.act = NULL;
    return o;
}

/* 1. writer-built f32 file: exact against PyTorch (float64 reference); its outputs in *ref_f32.
   2. batch of one (chunks of 1 image): the same bits */
static void test_writer_f32(const ref_t *r, outputs *ref_f32) {
    mmspcl_error err;
    build_opts opts = base_opts(r);
    outputs o;
    memset(&err, 0, sizeof err);
    CHECK(build_file(r, TMP "/clip-tiny-w.mmspcl", &opts, &err), "build: %s", err.msg);
    CHECK(run_file(TMP "/clip-tiny-w.mmspcl", r, 2, ref_f32, &err), "forward: %s", err.msg);
    check_close("writer f32, batch 2", ref_f32, r, 1e-4, 0.99999, 1);

    CHECK(run_file(TMP "/clip-tiny-w.mmspcl", r, 1, &o, &err), "forward: %s", err.msg);
    CHECK(same_bits(&o, ref_f32, r), "max_batch 1 and 2 differ");
    free_outputs(&o);
}

/* 3. one and two threads: the same bits */
static void test_threads(const ref_t *r, const outputs *ref_f32) {
    mmspcl_error err;
    int saved = mmspcl_threads();
    outputs o1, o2;
    memset(&err, 0, sizeof err);
    mmspcl_set_threads(1);
    CHECK(run_file(TMP "/clip-tiny-w.mmspcl", r, 2, &o1, &err), "forward: %s", err.msg);
    mmspcl_set_threads(2);
    CHECK(run_file(TMP "/clip-tiny-w.mmspcl", r, 2, &o2, &err), "forward: %s", err.msg);
    CHECK(same_bits(&o1, &o2, r) && same_bits(&o1, ref_f32, r), "1 and 2 threads differ");
    /* a model loaded with 1 thread and run with 3 (the arena grows) */
    {
        mmspcl_weights *w;
        mmspcl_clip *m;
        outputs o3;
        mmspcl_set_threads(1);
        if (mmspcl_weights_open(&w, TMP "/clip-tiny-w.mmspcl", &err) == MMSPCL_OK) {
            if (mmspcl_clip_load(&m, w, 2, &err) == MMSPCL_OK) {
                o3.embeds = (float *)calloc((size_t)r->batch * (size_t)r->proj, sizeof(float));
                o3.pooled = (float *)calloc((size_t)r->batch * (size_t)r->W, sizeof(float));
                o3.hidden = NULL;
                mmspcl_set_threads(3);
                CHECK(mmspcl_clip_forward(m, r->pixels, r->batch, o3.embeds, o3.pooled, &err) == MMSPCL_OK,
                      "forward: %s", err.msg);
                CHECK(same_bits(&o3, &o1, r), "1-thread load, 3-thread forward differs");
                free_outputs(&o3);
                mmspcl_clip_free(m);
            }
            mmspcl_weights_free(w);
        }
    }
    free_outputs(&o1);
    free_outputs(&o2);
    mmspcl_set_threads(saved);
}

/* 4. f16 vectors and position embeddings (widened at load): close */
static void test_f16_vectors(const ref_t *r) {
    mmspcl_error err;
    build_opts opts = base_opts(r);
    outputs o;
    memset(&err, 0, sizeof err);
    opts.vec_dtype = MMSPCL_F16;
    CHECK(build_file(r, TMP "/clip-tiny-w16.mmspcl", &opts, &err), "build: %s", err.msg);
    CHECK(run_file(TMP "/clip-tiny-w16.mmspcl", r, 2, &o, &err), "forward f16 vectors: %s", err.msg);
    check_close("writer, f16 vectors", &o, r, 1e-2, 0.9999, 0);
    free_outputs(&o);
}

/* 5. broken files fail cleanly, naming what is wrong (and TMP/clip-roberta.mmspcl is written
   for the CLI's wrong-architecture case) */
static void test_broken_files(const ref_t *r) {
    mmspcl_error err;
    build_opts opts = base_opts(r);
    memset(&err, 0, sizeof err);
    opts.arch = "roberta";
    check_load_fails("architecture", r, &opts, MMSPCL_ERR_UNSUPPORTED, "roberta");
    CHECK(build_file(r, TMP "/clip-roberta.mmspcl", &opts, &err), "build: %s", err.msg);
    opts.arch = "clip_vision";
    opts.transpose = "vision_model.encoder.layers.1.mlp.fc1.weight";
    check_load_fails("transposed fc1", r, &opts, MMSPCL_ERR_FORMAT, "vision_model.encoder.layers.1.mlp.fc1.weight");
    opts.transpose = NULL;
    opts.drop = "vision_model.post_layernorm.bias";
    check_load_fails("missing tensor", r, &opts, MMSPCL_ERR_NOT_FOUND, "vision_model.post_layernorm.bias");
    opts.drop = NULL;
    opts.image_size = 2 * r->S;  /* position embeddings no longer fit */
    check_load_fails("image size", r, &opts, MMSPCL_ERR_FORMAT, "position_embedding");
    opts.image_size = r->S + 1;
    check_load_fails("image size", r, &opts, MMSPCL_ERR_FORMAT, "patch_size");
    opts.image_size = r->S;
    opts.act = "relu";
    check_load_fails("hidden_act", r, &opts, MMSPCL_ERR_UNSUPPORTED, "relu");
}

/* hidden_act gelu (erf): loads, and changes the result by about what gelu - quick_gelu does */
static void test_gelu(const ref_t *r) {
    mmspcl_error err;
    build_opts opts = base_opts(r);
    outputs o;
    double rel, cmin;
    memset(&err, 0, sizeof err);
    opts.act = "gelu";
    CHECK(build_file(r, TMP "/clip-tiny-gelu.mmspcl", &opts, &err), "build: %s", err.msg);
    CHECK(run_file(TMP "/clip-tiny-gelu.mmspcl", r, 2, &o, &err), "forward gelu: %s", err.msg);
    compare(o.embeds, r->embeds, r->batch, (size_t)r->proj, &rel, &cmin);
    CHECK(rel > 1e-4 && cmin > 0.9, "gelu: rel %.3g, cosine %.6f against the quick_gelu reference", rel, cmin);
    free_outputs(&o);
}

/* 6. the converter: f32 as exact as above, bit-identical to the writer-built file */
static void test_converter_f32(const ref_t *r, const outputs *ref_f32) {
    mmspcl_error err;
    outputs o;
    memset(&err, 0, sizeof err);
    if (convert(TINY, TMP "/clip-tiny.mmspcl", NULL)) {
        CHECK(run_file(TMP "/clip-tiny.mmspcl", r, 2, &o, &err), "forward converted f32: %s", err.msg);
        check_close("converted f32", &o, r, 1e-4, 0.99999, 1);
        CHECK(same_bits(&o, ref_f32, r), "converted and writer-built files give different results");
        free_outputs(&o);
    } else {
        CHECK(0, "build/mmspcl-convert " TINY " failed (see " TMP "/clip-convert.log)");
    }
    /* f32 Linear weights in panels of 16 rows: the same bits */
    if (convert(TINY, TMP "/clip-tiny-f32p.mmspcl", "f32 --panels")) {
        mmspcl_weights *pw;
        CHECK(run_file(TMP "/clip-tiny-f32p.mmspcl", r, 2, &o, &err), "forward converted f32 panels: %s", err.msg);
        CHECK(same_bits(&o, ref_f32, r), "--panels gives other bits than the 2-D f32 weights");
        free_outputs(&o);
        if (mmspcl_weights_open(&pw, TMP "/clip-tiny-f32p.mmspcl", &err) == MMSPCL_OK) {
            const mmspcl_tensor *t = mmspcl_weights_find(pw, "vision_model.encoder.layers.0.mlp.fc1.weight");
            CHECK(t && mmspcl_tensor_is_panels(t), "clip --panels: fc1 stored as panels");
            mmspcl_weights_free(pw);
        }
    } else {
        CHECK(0, "build/mmspcl-convert --panels " TINY " failed (see " TMP "/clip-convert.log)");
    }
}

/* the full CLIPModel checkpoint (safetensors, and PyTorch .bin: zip, pickle): only the vision
   tower is kept, same numbers */
static void test_converter_full(const ref_t *r, const outputs *ref_f32) {
    mmspcl_error err;
    outputs o;
    memset(&err, 0, sizeof err);
    if (convert("tests/data/clip-tiny-full", TMP "/clip-tiny-full.mmspcl", NULL)) {
        CHECK(run_file(TMP "/clip-tiny-full.mmspcl", r, 2, &o, &err), "forward converted full: %s", err.msg);
        check_close("converted full CLIP f32", &o, r, 1e-4, 0.99999, 1);
        CHECK(same_bits(&o, ref_f32, r), "clip-tiny-full gives different results from clip-tiny");
        free_outputs(&o);
    } else {
        CHECK(0, "build/mmspcl-convert tests/data/clip-tiny-full failed (see " TMP "/clip-convert.log)");
    }
    if (convert("tests/data/clip-tiny-bin", TMP "/clip-tiny-bin.mmspcl", NULL)) {
        CHECK(run_file(TMP "/clip-tiny-bin.mmspcl", r, 2, &o, &err), "forward converted .bin: %s", err.msg);
        CHECK(same_bits(&o, ref_f32, r), "clip-tiny-bin gives different results from clip-tiny");
        free_outputs(&o);
    } else {
        CHECK(0, "build/mmspcl-convert tests/data/clip-tiny-bin failed (see " TMP "/clip-convert.log)");
    }
}

/* converted f16, q8_0, q4_0: cosine against PyTorch over a bound per type */
static void test_converter_quantized(const ref_t *r) {
    static const char *const types[3] = {"f16", "q8_0", "q4_0"};
    static const double cos_bound[3] = {0.9999, 0.999, 0.98};
    mmspcl_error err;
    outputs o;
    int i;
    memset(&err, 0, sizeof err);
    for (i = 0; i < 3; i++) {
        char path[128], what[64];
        double rel, c1, c2;
        snprintf(path, sizeof path, TMP "/clip-tiny-%s.mmspcl", types[i]);
        snprintf(what, sizeof what, "converted %s", types[i]);
        if (!convert(TINY, path, types[i])) {
            CHECK(0, "build/mmspcl-convert --type %s failed (see " TMP "/clip-convert.log)", types[i]);
            continue;
        }
        CHECK(run_file(path, r, 2, &o, &err), "forward %s: %s", types[i], err.msg);
        compare(o.embeds, r->embeds, r->batch, (size_t)r->proj, &rel, &c1);
        printf("  %-28s embeds: max|diff|/max|ref| %.3g, cosine >= %.6f\n", what, rel, c1);
        compare(o.pooled, r->pooled, r->batch, (size_t)r->W, &rel, &c2);
        printf("  %-28s pooled: max|diff|/max|ref| %.3g, cosine >= %.6f\n", what, rel, c2);
        CHECK(c1 >= cos_bound[i] && c2 >= cos_bound[i], "%s: cosine %.6f / %.6f < %g", types[i], c1, c2,
              cos_bound[i]);
        free_outputs(&o);
    }
}

/* 8. argument errors, and the config accessors */
static void test_argument_errors(const ref_t *r) {
    mmspcl_error err;
    mmspcl_weights *w;
    mmspcl_clip *m;
    memset(&err, 0, sizeof err);
    if (mmspcl_weights_open(&w, TMP "/clip-tiny-w.mmspcl", &err) == MMSPCL_OK) {
        CHECK(mmspcl_clip_load(&m, w, 0, &err) == MMSPCL_ERR_ARG && m == NULL, "max_batch 0 accepted");
        if (mmspcl_clip_load(&m, w, 3, &err) == MMSPCL_OK) {
            const mmspcl_clip_config *c = mmspcl_clip_get_config(m);
            CHECK(c->image_size == r->S && c->hidden_size == r->W && c->projection_dim == r->proj &&
                  c->num_tokens == r->T && c->crop_size == r->S && c->resize_shortest_edge == r->S &&
                  fabsf(c->image_mean[0] - 0.48145466f) < 1e-7f && fabsf(c->image_std[2] - 0.27577711f) < 1e-7f,
                  "config accessors");
            CHECK(mmspcl_clip_arena_bytes(m) > 0, "arena size");
            CHECK(mmspcl_clip_last_hidden(m) == NULL, "last hidden before a forward");
            CHECK(mmspcl_clip_forward(m, NULL, 1, NULL, NULL, &err) == MMSPCL_ERR_ARG, "NULL pixels accepted");
            CHECK(mmspcl_clip_forward(m, r->pixels, 0, NULL, NULL, &err) == MMSPCL_OK, "empty batch");
            mmspcl_clip_free(m);
        }
        mmspcl_weights_free(w);
    }
}

int main(void) {
    ref_t r;
    outputs ref_f32;
    if (test_run(NULL, "mkdir -p " TMP) != 0) { CHECK(0, "cannot create " TMP); return TEST_END(); }
    if (!load_ref(TINY "/expected.txt", &r)) { CHECK(0, "cannot read " TINY "/expected.txt"); return TEST_END(); }
    CHECK(r.batch == 2 && r.proj > 0, "expected.txt: batch %d", r.batch);

    test_writer_f32(&r, &ref_f32);
    test_threads(&r, &ref_f32);
    test_f16_vectors(&r);
    test_broken_files(&r);
    test_gelu(&r);
    test_converter_f32(&r, &ref_f32);
    test_converter_full(&r, &ref_f32);
    test_converter_quantized(&r);
    /* 7. images: preprocessing with the file's settings, embed_image, the CLI */
    check_images_and_cli(&r);
    test_argument_errors(&r);

    free_outputs(&ref_f32);
    free(r.pixels); free(r.hidden); free(r.pooled); free(r.embeds);
    return TEST_END();
}
