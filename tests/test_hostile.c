/* test_hostile.c — hostile input, one test function per class of defect (issue 14): bad input gets
   a clear error and nothing else. Each test feeds crafted inputs (written into
   build/tests/hostile/, or built in memory) and checks that they are refused, with the exit
   status or mmspcl_status documented, a message naming the field / key / byte, no output left
   behind (a refused conversion leaves neither OUT nor OUT.tmp, and an OUT that existed is
   unchanged) and the input files unchanged.
     1. names with NUL bytes (safetensors tensor names, dtypes, index keys, model_type): the
        converter read the parsed JSON after freeing it (ASan: heap-use-after-free)
     2. float and integer hyper-parameters out of range or not finite (RoBERTa, CLIP)
     3. the converter writing files the loader refuses (one validation: the loader's)
     4. mmspcl tokenize --vocab --merges taking what the converter refuses
     5. BMP offsets that point into the headers or the palette
   The same inputs are fuzz regressions (tests/fuzz/regressions/{safetensors,config,image}/).
   Run from the repository root (make test builds build/mmspcl-convert and build/mmspcl first). */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700
#endif
#define MMSPCL_IMPLEMENTATION
#include "mmspcl.h"
#include "tests/test.h"
#include "tools/convert/json.h"
#include "tools/convert/tokenizer_files.h"
#include "tools/convert/safetensors.c"

#include <sys/stat.h>

#define HD "build/tests/hostile"
#define CONVERT "build/mmspcl-convert"
#define CLI "build/mmspcl"

/* ---- helpers ------------------------------------------------------------------------------ */
static void put(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL, "cannot write %s", path);
    if (!f) return;
    if (n) fwrite(p, 1, n, f);
    fclose(f);
}
static void put_str(const char *path, const char *s) { put(path, s, strlen(s)); }
static int exists(const char *path) { struct stat sb; return lstat(path, &sb) == 0; }

static void fresh_dir(const char *dir) { test_run(NULL, "rm -rf '%s' && mkdir -p '%s'", dir, dir); }

/* dir := roberta-tiny (or clip-tiny) config.json + model.safetensors */
static void model_dir(const char *dir, const char *model) {
    test_run(NULL, "rm -rf '%s' && mkdir -p '%s' && cp tests/data/%s/config.json tests/data/%s/model.safetensors '%s/'",
             dir, dir, model, model, dir);
}

/* The files of dir (its regular files, by name), to compare before and after a run. */
typedef struct snap { int n; char name[16][96]; unsigned char *data[16]; size_t size[16]; } snap;

static void snap_take(snap *s, const char *dir) {
    char cmd[600], *list = NULL, *line, *save = NULL;
    s->n = 0;
    snprintf(cmd, sizeof cmd, "ls -1 '%s'", dir);
    test_run(&list, "%s", cmd);
    for (line = list ? strtok_r(list, "\n", &save) : NULL; line && s->n < 16; line = strtok_r(NULL, "\n", &save)) {
        char p[700];
        snprintf(s->name[s->n], sizeof s->name[s->n], "%s", line);
        snprintf(p, sizeof p, "%s/%s", dir, line);
        s->data[s->n] = test_read_file(p, &s->size[s->n]);
        s->n++;
    }
    free(list);
}

static void snap_same(snap *s, const char *dir, const char *what) {
    int i;
    for (i = 0; i < s->n; i++) {
        char p[700];
        size_t n = 0;
        unsigned char *now;
        snprintf(p, sizeof p, "%s/%s", dir, s->name[i]);
        now = test_read_file(p, &n);
        CHECK(now && s->data[i] && n == s->size[i] && memcmp(now, s->data[i], n) == 0, "%s: input %s changed", what, p);
        free(now);
        free(s->data[i]);
    }
    s->n = 0;
}

static int has(const char *msg, const char *want) { return !want || (msg && strstr(msg, want)); }

/* Runs the converter on dir (OUT in a folder of its own beside it, so the inputs are exactly
   dir's files) and checks the refusal: exit status 1, nothing on stdout, the message (stderr)
   holding want1 and want2, no OUT and no OUT.tmp, dir's files unchanged. With keep_out, OUT
   exists before the run and must be left as it was. */
static void refused_convert(const char *what, const char *dir, const char *want1, const char *want2, int keep_out) {
    char out[600], tmp[620], errf[620], *so = NULL, *se;
    static const char old[] = "an older OUT, to be left alone";
    snap s;
    int rc;
    snprintf(out, sizeof out, "%s-out/out.mmw", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    snprintf(errf, sizeof errf, "%s-out/stderr.txt", dir);
    test_run(NULL, "rm -rf '%s-out' && mkdir -p '%s-out'", dir, dir);
    if (keep_out) put_str(out, old);
    snap_take(&s, dir);
    rc = test_run(&so, CONVERT " '%s' '%s' 2>'%s'", dir, out, errf);
    se = (char *)test_read_file(errf, NULL);
    CHECK(rc == 1, "%s: exit status %d, want 1 (%s)", what, rc, se ? se : "");
    CHECK(so && so[0] == 0, "%s: printed on stdout: %s", what, so ? so : "(nothing read)");
    CHECK(se && strstr(se, "mmspcl-convert: error: ") && has(se, want1) && has(se, want2),
          "%s: message lacks '%s' / '%s': %s", what, want1, want2 ? want2 : "", se ? se : "");
    if (keep_out) {
        size_t n = 0;
        unsigned char *o = test_read_file(out, &n);
        CHECK(o && n == sizeof old - 1 && memcmp(o, old, n) == 0, "%s: the existing OUT was changed", what);
        free(o);
    } else {
        CHECK(!exists(out), "%s: %s exists after a refused conversion", what, out);
    }
    CHECK(!exists(tmp), "%s: %s left behind", what, tmp);
    snap_same(&s, dir, what);
    free(so);
    free(se);
}

/* The converter on dir must succeed; returns the weight file (free it) or NULL. */
static mmspcl_weights *converted(const char *what, const char *dir) {
    char out[600], *se = NULL;
    mmspcl_weights *w = NULL;
    mmspcl_error err;
    int rc;
    snprintf(out, sizeof out, "%s-out/out.mmw", dir);
    test_run(NULL, "rm -rf '%s-out' && mkdir -p '%s-out'", dir, dir);
    rc = test_run(&se, CONVERT " '%s' '%s' --quiet 2>&1", dir, out);
    CHECK(rc == 0, "%s: conversion failed (%d): %s", what, rc, se ? se : "");
    free(se);
    if (rc == 0 && mmspcl_weights_read(&w, out, &err) != MMSPCL_OK) {
        CHECK(0, "%s: the written file does not open: %s", what, err.msg);
        w = NULL;
    }
    return w;
}

/* ---- 1. NUL bytes in names ---------------------------------------------------------------- */
/* A one-tensor safetensors file whose header is hdr (JSON). */
static size_t st_make(unsigned char *buf, const char *hdr, size_t data_bytes) {
    size_t n = strlen(hdr), i;
    for (i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(buf + 8, hdr, n);
    memset(buf + 8 + n, 0, data_bytes);
    return 8 + n + data_bytes;
}

static void test_nul_names(void) {
    static const char *const bad_name =
        "{\"embeddings.word_embeddings.weight\\u0000x\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}";
    static const char *const bad_dtype =
        "{\"w\": {\"dtype\": \"F32\\u0000\", \"shape\": [1], \"data_offsets\": [0, 4]}}";
    unsigned char buf[512];
    char err[512], dir[256], p[400];
    st_file f;
    size_t n;
    /* in memory: refused with the entry's byte offset (under ASan this was a use after free) */
    n = st_make(buf, bad_name, 4);
    err[0] = 0;
    CHECK(st_open_memory(buf, n, "nul.safetensors", &f, err, sizeof err) == -1 && f.tensors == NULL,
          "safetensors: a NUL in a tensor name is accepted");
    CHECK(strstr(err, "nul.safetensors: tensor entry at header byte") && strstr(err, "NUL byte at name byte 33") &&
              strstr(err, "embeddings.word_embeddings.weight\\u0000"),
          "safetensors NUL name message: %s", err);
    n = st_make(buf, bad_dtype, 4);
    err[0] = 0;
    CHECK(st_open_memory(buf, n, "dt.safetensors", &f, err, sizeof err) == -1 && strstr(err, "tensor 'w'") &&
              strstr(err, "dtype") && strstr(err, "NUL byte"),
          "safetensors: a NUL in a dtype: %s", err);
    /* the converter, end to end */
    snprintf(dir, sizeof dir, "%s/nul-name", HD);
    model_dir(dir, "roberta-tiny");
    n = st_make(buf, bad_name, 4);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    put(p, buf, n);
    refused_convert("NUL in a tensor name", dir, "model.safetensors: tensor entry at header byte", "NUL byte", 0);
    refused_convert("NUL in a tensor name, OUT existing", dir, "NUL byte", NULL, 1);
    /* a sharded index whose weight_map key holds a NUL */
    model_dir(dir, "roberta-tiny");
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    test_run(NULL, "mv '%s' '%s/model-1.safetensors'", p, dir);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    put_str(p, "{\"weight_map\": {\"embeddings.word_embeddings.weight\\u0000\": \"model-1.safetensors\"}}");
    refused_convert("NUL in a weight_map key", dir, "weight_map key 'embeddings.word_embeddings.weight\\u0000'",
                    "holds a NUL byte", 0);
    /* model_type "roberta\0..." was taken for "roberta" */
    model_dir(dir, "roberta-tiny");
    snprintf(p, sizeof p, "%s/config.json", dir);
    put_str(p, "{\"model_type\": \"roberta\\u0000bert\", \"vocab_size\": 300, \"hidden_size\": 32}");
    refused_convert("NUL in model_type", dir, "\"model_type\" (byte 15)", "without NUL bytes", 0);
    /* tokenizer.json's model.type and a token holding a NUL */
    model_dir(dir, "roberta-tiny");
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    put_str(p, "{\"model\": {\"type\": \"BPE\\u0000x\", \"vocab\": {\"a\": 0}, \"merges\": []}}");
    refused_convert("NUL in tokenizer.json's model.type", dir, "model type 'BPE\\u0000x' is not supported", NULL, 0);
    put_str(p, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"<s>\": 0, \"a\\u0000\": 1}, \"merges\": []}}");
    refused_convert("NUL in a token", dir, "token 'a\\u0000' (id at byte", "holds a NUL byte", 0);
}

/* ---- 2. hyper-parameters ------------------------------------------------------------------ */
typedef enum { KV_INT, KV_FLOAT, KV_STR } kv_kind;
typedef struct kv_set { const char *key; kv_kind kind; int64_t i; double f; const char *s; } kv_set;

/* A weight file holding the keys of base (then over, which replaces or adds), no tensors. */
static mmspcl_weights *keys_file(const kv_set *base, int nb, const kv_set *over, unsigned char **bytes) {
    mmspcl_writer *wr = mmspcl_writer_create();
    mmspcl_weights *w = NULL;
    size_t n = 0;
    int i;
    *bytes = NULL;
    if (!wr) return NULL;
    for (i = 0; i <= nb; i++) {
        const kv_set *k = i < nb ? &base[i] : over;
        if (!k || !k->key) continue;
        if (k->kind == KV_INT) mmspcl_writer_set_int(wr, k->key, k->i);
        else if (k->kind == KV_FLOAT) mmspcl_writer_set_float(wr, k->key, k->f);
        else mmspcl_writer_set_str(wr, k->key, k->s);
    }
    if (mmspcl_writer_save_to_memory(wr, bytes, &n, NULL) == MMSPCL_OK &&
        mmspcl_weights_from_memory(&w, *bytes, n, NULL) != MMSPCL_OK)
        w = NULL;
    mmspcl_writer_free(wr);
    return w;
}

static const kv_set roberta_keys[] = {
    {"general.architecture", KV_STR, 0, 0, "roberta"}, {"roberta.vocab_size", KV_INT, 300, 0, NULL},
    {"roberta.hidden_size", KV_INT, 32, 0, NULL},        {"roberta.num_hidden_layers", KV_INT, 2, 0, NULL},
    {"roberta.num_attention_heads", KV_INT, 4, 0, NULL}, {"roberta.intermediate_size", KV_INT, 64, 0, NULL},
    {"roberta.max_position_embeddings", KV_INT, 66, 0, NULL}, {"roberta.type_vocab_size", KV_INT, 1, 0, NULL},
    {"roberta.pad_token_id", KV_INT, 1, 0, NULL},         {"roberta.layer_norm_eps", KV_FLOAT, 0, 1e-5, NULL},
    {"roberta.hidden_act", KV_STR, 0, 0, "gelu"}};
static const kv_set clip_keys[] = {
    {"general.architecture", KV_STR, 0, 0, "clip_vision"}, {"clip.image_size", KV_INT, 64, 0, NULL},
    {"clip.patch_size", KV_INT, 16, 0, NULL},      {"clip.num_channels", KV_INT, 3, 0, NULL},
    {"clip.hidden_size", KV_INT, 32, 0, NULL},     {"clip.num_hidden_layers", KV_INT, 2, 0, NULL},
    {"clip.num_attention_heads", KV_INT, 4, 0, NULL}, {"clip.intermediate_size", KV_INT, 64, 0, NULL},
    {"clip.projection_dim", KV_INT, 16, 0, NULL},  {"clip.layer_norm_eps", KV_FLOAT, 0, 1e-5, NULL},
    {"clip.image_mean.0", KV_FLOAT, 0, 0.5, NULL}, {"clip.image_std.0", KV_FLOAT, 0, 0.5, NULL},
    {"clip.resize_shortest_edge", KV_INT, 64, 0, NULL}, {"clip.crop_size", KV_INT, 64, 0, NULL}};

/* over refused by the config check AND by the loader itself, with the same message naming want */
static void hparam_refused(int clip, const kv_set *over, const char *want) {
    unsigned char *bytes = NULL;
    mmspcl_weights *w = clip ? keys_file(clip_keys, (int)(sizeof clip_keys / sizeof clip_keys[0]), over, &bytes)
                             : keys_file(roberta_keys, (int)(sizeof roberta_keys / sizeof roberta_keys[0]), over, &bytes);
    mmspcl_error e1, e2;
    mmspcl_status s1, s2;
    char what[160];
    snprintf(what, sizeof what, "%s %s = %s%g", clip ? "clip" : "roberta", over->key, over->kind == KV_STR ? over->s : "",
             over->kind == KV_INT ? (double)over->i : over->f);
    CHECK(w != NULL, "%s: the test file does not open", what);
    if (!w) { mmspcl_free(bytes); return; }
    e1.msg[0] = e2.msg[0] = 0;
    if (clip) {
        mmspcl_clip_config cc;
        mmspcl_clip *m = NULL;
        s1 = mmspcl_clip_read_config(w, &cc, &e1);
        s2 = mmspcl_clip_load(&m, w, 1, &e2);
        CHECK(m == NULL, "%s: a model came back", what);
    } else {
        mmspcl_roberta_config rc;
        mmspcl_roberta *m = NULL;
        s1 = mmspcl_roberta_read_config(w, &rc, &e1);
        s2 = mmspcl_roberta_load(&m, w, 1, 4, &e2);
        CHECK(m == NULL, "%s: a model came back", what);
    }
    CHECK(s1 == MMSPCL_ERR_FORMAT || s1 == MMSPCL_ERR_UNSUPPORTED, "%s: accepted (%d)", what, (int)s1);
    CHECK(strstr(e1.msg, want) != NULL, "%s: the message lacks '%s': %s", what, want, e1.msg);
    CHECK(s2 == s1 && strcmp(e1.msg, e2.msg) == 0, "%s: the loader says otherwise: %s / %s", what, e1.msg, e2.msg);
    mmspcl_weights_free(w);
    mmspcl_free(bytes);
}

static void test_hparams(void) {
    const double nan = strtod("nan", NULL), inf = strtod("inf", NULL);
    unsigned char *bytes;
    mmspcl_weights *w;
    mmspcl_error err;
    char dir[256], p[400];
    size_t i;
    /* the base files themselves pass */
    w = keys_file(roberta_keys, (int)(sizeof roberta_keys / sizeof roberta_keys[0]), NULL, &bytes);
    {
        mmspcl_roberta_config rc;
        CHECK(w && mmspcl_roberta_read_config(w, &rc, &err) == MMSPCL_OK && rc.layer_norm_eps == 1e-5f && rc.max_positions == 66,
              "roberta base keys refused: %s", w ? err.msg : "");
    }
    mmspcl_weights_free(w);
    mmspcl_free(bytes);
    w = keys_file(clip_keys, (int)(sizeof clip_keys / sizeof clip_keys[0]), NULL, &bytes);
    {
        mmspcl_clip_config cc;
        CHECK(w && mmspcl_clip_read_config(w, &cc, &err) == MMSPCL_OK && cc.image_mean[0] == 0.5f && cc.crop_size == 64,
              "clip base keys refused: %s", w ? err.msg : "");
    }
    mmspcl_weights_free(w);
    mmspcl_free(bytes);
    {   /* RoBERTa: layer_norm_eps NaN or negative gave all-NaN output */
        const double bad_eps[] = {nan, -1e-5, 0.0, inf, -inf, 1e-300, 2.0};
        kv_set o = {"roberta.layer_norm_eps", KV_FLOAT, 0, 0, NULL};
        for (i = 0; i < sizeof bad_eps / sizeof bad_eps[0]; i++) {
            o.f = bad_eps[i];
            hparam_refused(0, &o, "'roberta.layer_norm_eps' = ");
        }
    }
    {
        const kv_set bad[] = {
            {"roberta.layer_norm_eps", KV_STR, 0, 0, "1e-5"},  {"roberta.vocab_size", KV_INT, 0, 0, NULL},
            {"roberta.hidden_size", KV_INT, 65537, 0, NULL},   {"roberta.num_hidden_layers", KV_INT, 1025, 0, NULL},
            {"roberta.num_attention_heads", KV_INT, 5, 0, NULL}, {"roberta.intermediate_size", KV_INT, -1, 0, NULL},
            {"roberta.max_position_embeddings", KV_INT, 2, 0, NULL}, {"roberta.type_vocab_size", KV_INT, 0, 0, NULL},
            {"roberta.pad_token_id", KV_INT, 300, 0, NULL},    {"roberta.hidden_size", KV_FLOAT, 0, 32.0, NULL},
            {"roberta.hidden_act", KV_STR, 0, 0, "relu"}};
        const char *const want[] = {"'roberta.layer_norm_eps' is not a number (it is a string)",
                                    "'roberta.vocab_size' = 0 is outside", "'roberta.hidden_size' = 65537 is outside",
                                    "'roberta.num_hidden_layers' = 1025", "'roberta.num_attention_heads' = 5",
                                    "'roberta.intermediate_size' = -1", "'roberta.max_position_embeddings' = 2 leaves no position",
                                    "'roberta.type_vocab_size' = 0", "'roberta.pad_token_id' = 300 is outside",
                                    "'roberta.hidden_size' (it is a float)", "roberta.hidden_act 'relu'"};
        for (i = 0; i < sizeof bad / sizeof bad[0]; i++) hparam_refused(0, &bad[i], want[i]);
    }
    {   /* CLIP: every float finite and in range, every size bounded, crop == image */
        const kv_set bad[] = {
            {"clip.layer_norm_eps", KV_FLOAT, 0, nan, NULL},   {"clip.layer_norm_eps", KV_FLOAT, 0, 0.0, NULL},
            {"clip.layer_norm_eps", KV_FLOAT, 0, -1.0, NULL},  {"clip.image_mean.0", KV_FLOAT, 0, 1e308, NULL},
            {"clip.image_mean.1", KV_FLOAT, 0, nan, NULL},     {"clip.image_mean.2", KV_FLOAT, 0, -inf, NULL},
            {"clip.image_std.0", KV_FLOAT, 0, 0.0, NULL},      {"clip.image_std.1", KV_FLOAT, 0, -0.5, NULL},
            {"clip.image_std.2", KV_FLOAT, 0, nan, NULL},      {"clip.image_std.0", KV_STR, 0, 0, "0.5"},
            {"clip.crop_size", KV_INT, 100000, 0, NULL},       {"clip.crop_size", KV_INT, 32, 0, NULL},
            {"clip.resize_shortest_edge", KV_INT, 0, 0, NULL}, {"clip.resize_shortest_edge", KV_INT, 100000, 0, NULL},
            {"clip.image_size", KV_INT, 8193, 0, NULL},        {"clip.patch_size", KV_INT, 15, 0, NULL},
            {"clip.num_channels", KV_INT, 17, 0, NULL},        {"clip.hidden_size", KV_INT, 30, 0, NULL},
            {"clip.projection_dim", KV_INT, -1, 0, NULL},      {"clip.patch_size", KV_STR, 0, 0, "16"}};
        const char *const want[] = {"'clip.layer_norm_eps' = nan", "'clip.layer_norm_eps' = 0 is out of range",
                                    "'clip.layer_norm_eps' = -1", "'clip.image_mean.0' = 1e+308 is out of range",
                                    "'clip.image_mean.1' = nan", "'clip.image_mean.2' = -inf", "'clip.image_std.0' = 0 is out",
                                    "'clip.image_std.1' = -0.5", "'clip.image_std.2' = nan",
                                    "'clip.image_std.0' is not a number (it is a string)", "'clip.crop_size' = 100000 is out of range",
                                    "crop_size 32 differs from image_size 64", "'clip.resize_shortest_edge' = 0",
                                    "'clip.resize_shortest_edge' = 100000", "'clip.image_size' = 8193",
                                    "image_size 64 is not a multiple of patch_size 15", "'clip.num_channels' = 17",
                                    "hidden_size 30 is not a multiple of num_attention_heads 4", "'clip.projection_dim' = -1",
                                    "'clip.patch_size' is not an integer (it is a string)"};
        for (i = 0; i < sizeof bad / sizeof bad[0]; i++) hparam_refused(1, &bad[i], want[i]);
    }
    /* the converter: the loader's check refuses what config.json or preprocessor_config.json
       would put in the file, naming the file and the key; nothing is written */
    snprintf(dir, sizeof dir, "%s/hparam", HD);
    model_dir(dir, "roberta-tiny");
    snprintf(p, sizeof p, "%s/config.json", dir);
    put_str(p, "{\"model_type\": \"roberta\", \"vocab_size\": 300, \"hidden_size\": 32, \"num_hidden_layers\": 2,"
               " \"num_attention_heads\": 4, \"intermediate_size\": 64, \"max_position_embeddings\": 66, \"type_vocab_size\": 1,"
               " \"layer_norm_eps\": 1e-40}");
    refused_convert("roberta layer_norm_eps 1e-40", dir, "config.json: the weight file would not load",
                    "'roberta.layer_norm_eps' = 1e-40 is outside [1e-30, 1]", 0);
    put_str(p, "{\"model_type\": \"roberta\", \"vocab_size\": 300, \"hidden_size\": 32, \"num_hidden_layers\": 2,"
               " \"num_attention_heads\": 4, \"intermediate_size\": 64, \"max_position_embeddings\": 66, \"type_vocab_size\": 1,"
               " \"layer_norm_eps\": -1}");
    refused_convert("roberta layer_norm_eps -1", dir, "layer_norm_eps -1 is not a small positive number", NULL, 0);
    put_str(p, "{\"model_type\": \"roberta\", \"vocab_size\": 300, \"hidden_size\": 32, \"num_hidden_layers\": 2,"
               " \"num_attention_heads\": 4, \"intermediate_size\": 64, \"max_position_embeddings\": 66, \"type_vocab_size\": 1,"
               " \"pad_token_id\": 65, \"layer_norm_eps\": 1e-5}");
    refused_convert("roberta pad_token_id with no position after it", dir,
                    "'roberta.max_position_embeddings' = 66 leaves no position after 'roberta.pad_token_id' = 65", NULL, 0);
    model_dir(dir, "clip-tiny");
    snprintf(p, sizeof p, "%s/preprocessor_config.json", dir);
    put_str(p, "{\"crop_size\": 100000}");
    refused_convert("clip crop_size 100000", dir, "preprocessor_config.json: the weight file would not load",
                    "'clip.crop_size' = 100000 is out of range", 0);
    put_str(p, "{\"crop_size\": {\"height\": 32, \"width\": 32}}");
    refused_convert("clip crop != image", dir, "preprocessor_config.json: the weight file would not load",
                    "crop_size 32 differs from image_size 64", 0);
    put_str(p, "{\"image_mean\": [1e308, 0.5, 0.5]}");
    refused_convert("clip image_mean 1e308", dir, "preprocessor_config.json", "'clip.image_mean.0' = 1e+308", 0);
    put_str(p, "{\"image_mean\": [0.5, 1e999, 0.5]}");
    refused_convert("clip image_mean inf", dir, "preprocessor_config.json", "'clip.image_mean.1' = inf", 0);
    put_str(p, "{\"image_std\": [0.5, 1e-9, 0.5]}");
    refused_convert("clip image_std 1e-9", dir, "preprocessor_config.json", "'clip.image_std.1' = 1e-09", 0);
    put_str(p, "{\"size\": {\"shortest_edge\": 70000}}");
    refused_convert("clip shortest_edge 70000", dir, "preprocessor_config.json", "'clip.resize_shortest_edge' = 70000", 0);
    /* and a sane preprocessor_config.json converts, to a file the loader takes */
    put_str(p, "{\"size\": {\"shortest_edge\": 72}, \"crop_size\": 64, \"image_mean\": [0.5, 0.4, 0.3], \"image_std\": [0.2, 0.25, 0.3]}");
    if ((w = converted("clip, sane preprocessor_config.json", dir)) != NULL) {
        mmspcl_clip *m = NULL;
        CHECK(mmspcl_clip_load(&m, w, 1, &err) == MMSPCL_OK && mmspcl_clip_get_config(m)->resize_shortest_edge == 72 &&
                  mmspcl_clip_get_config(m)->image_std[1] == 0.25f,
              "clip: the converted file does not load as written: %s", err.msg);
        mmspcl_clip_free(m);
        mmspcl_weights_free(w);
    }
}

/* ---- 3. the converter writes only what the loader loads ----------------------------------- */
/* vocab.json of the five special tokens, "Ġ", "t", "Ġt", "h", "e", "he" (ids 0..10) */
#define TOK_VOCAB "{\"<s>\": 0, \"<pad>\": 1, \"</s>\": 2, \"<unk>\": 3, \"<mask>\": 4, \"\\u0120\": 5, \"t\": 6," \
                  " \"\\u0120t\": 7, \"h\": 8, \"e\": 9, \"he\": 10}"

static void tok_files(const char *dir, const char *vocab, const void *merges, size_t merges_len) {
    char p[400];
    snprintf(p, sizeof p, "%s/vocab.json", dir);
    put_str(p, vocab);
    snprintf(p, sizeof p, "%s/merges.txt", dir);
    put(p, merges, merges_len);
}

static void test_converter_writes_what_loads(void) {
    char dir[256], p[400];
    char *big;
    size_t i;
    mmspcl_weights *w;
    mmspcl_error err;
    static const char unknown[] = "#version: 0.2\n\xc4\xa0 t\nx y\n";
    static const char bad_utf8[] = "\xc4\xa0 t\nh \xff" "e\n";
    static const char nul[] = "\xc4\xa0 t\nh\0 e\n";
    snprintf(dir, sizeof dir, "%s/tok", HD);
    model_dir(dir, "roberta-tiny");
    /* a merge naming tokens the vocabulary lacks: the loader refused the file */
    tok_files(dir, TOK_VOCAB, unknown, sizeof unknown - 1);
    refused_convert("merge of unknown tokens", dir, "merges.txt: line 3: bpe: merge 1 \"x y\": its left part is not in the vocabulary",
                    NULL, 0);
    /* a 1 MB merge line */
    big = (char *)malloc((1 << 20) + 16);
    if (big) {
        memcpy(big, "h e\n", 4);
        memset(big + 4, 'h', 1 << 20);
        memcpy(big + 4 + (1 << 20), " e\n", 3);
        tok_files(dir, TOK_VOCAB, big, (1 << 20) + 7);
        refused_convert("1 MB merge line", dir, "merges.txt: line 2: bpe: merge 1 \"hhhhhhhh", "is not in the vocabulary", 0);
        free(big);
    }
    /* invalid UTF-8, NUL */
    tok_files(dir, TOK_VOCAB, bad_utf8, sizeof bad_utf8 - 1);
    refused_convert("invalid UTF-8 in merges", dir, "merges.txt: merge 2 'h \\xFFe': its byte 3 (0xFF) is not valid UTF-8 (line 2)",
                    NULL, 0);
    tok_files(dir, TOK_VOCAB, nul, sizeof nul - 1);
    refused_convert("NUL in merges", dir, "merges.txt: merge 2 'h\\u0000 e': its byte 2 (0x00) is NUL (line 2)", NULL, 0);
    /* special tokens missing: RoBERTa and the SPCL prompt need them */
    tok_files(dir, "{\"<s>\": 0, \"<pad>\": 1, \"</s>\": 2, \"<unk>\": 3, \"\\u0120\": 4, \"t\": 5, \"\\u0120t\": 6}",
              "\xc4\xa0 t\n", 4);
    refused_convert("vocabulary without <mask>", dir, "vocab.json: bpe: the vocabulary lacks the special token <mask> (", NULL, 0);
    tok_files(dir, "{\"\\u0120\": 0, \"t\": 1, \"\\u0120t\": 2}", "\xc4\xa0 t\n", 4);
    refused_convert("vocabulary without special tokens", dir, "lacks the special tokens <s> <pad> </s> <unk> <mask>", NULL, 0);
    /* a token twice (JSON keeps both members), an empty token */
    tok_files(dir, "{\"<s>\": 0, \"<pad>\": 1, \"</s>\": 2, \"<unk>\": 3, \"<mask>\": 4, \"t\": 5, \"t\": 6}", "", 0);
    refused_convert("a token with two ids", dir, "vocab.json: bpe: token \"t\" has two ids, 5 and 6", NULL, 0);
    tok_files(dir, "{\"<s>\": 0, \"<pad>\": 1, \"</s>\": 2, \"<unk>\": 3, \"<mask>\": 4, \"\": 5}", "", 0);
    refused_convert("an empty token", dir, "vocab.json: bpe: token id 5 is empty", NULL, 0);
    /* tokenizer.json: the same checks, positions as model.merges[i] */
    test_run(NULL, "rm -f '%s/vocab.json' '%s/merges.txt'", dir, dir);
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    put_str(p, "{\"model\": {\"type\": \"BPE\", \"vocab\": " TOK_VOCAB ", \"merges\": [\"h e\", [\"\\u0120\", \"x\"]]}}");
    refused_convert("tokenizer.json: a merge of unknown tokens", dir,
                    "tokenizer.json: model.merges[1]: bpe: merge 1 \"\xc4\xa0 x\": its right part is not in the vocabulary", NULL, 0);
    put_str(p, "{\"added_tokens\": [{\"id\": 4, \"content\": \"<mask2>\"}], \"model\": {\"type\": \"BPE\", \"vocab\": " TOK_VOCAB
               ", \"merges\": []}}");
    refused_convert("tokenizer.json: an added token over another", dir, "added token '<mask2>' has id 4, which the vocabulary gives to '<mask>'",
                    NULL, 0);
    remove(p);
    /* CR-only merges.txt (old Mac files) dropped every merge; CR, LF and CRLF all end a line */
    {
        static const char *const ends[] = {"\r", "\n", "\r\n"};
        for (i = 0; i < 3; i++) {
            char m[96];
            snprintf(m, sizeof m, "#version: 0.2%s\xc4\xa0 t%s%sh e%s", ends[i], ends[i], ends[i], ends[i]);
            tok_files(dir, TOK_VOCAB, m, strlen(m));
            if ((w = converted(i == 0 ? "CR-only merges.txt" : i == 1 ? "LF merges.txt" : "CRLF merges.txt", dir)) != NULL) {
                const mmspcl_kv *kv = mmspcl_weights_get(w, "tokenizer.merges");
                mmspcl_bpe *bpe = NULL;
                int32_t ids[8];
                int n = -1;
                CHECK(kv && kv->count == 2 && strcmp(kv->strs[0], "\xc4\xa0 t") == 0 && strcmp(kv->strs[1], "h e") == 0,
                      "merges.txt with '%s' line ends: %lld merges", i == 0 ? "\\r" : i == 1 ? "\\n" : "\\r\\n",
                      kv ? (long long)kv->count : -1LL);
                if (mmspcl_bpe_from_weights(&bpe, w, &err) == MMSPCL_OK) n = mmspcl_bpe_encode(bpe, " the", 4, ids, 8);
                CHECK(n == 2 && ids[0] == 7 && ids[1] == 10, "line ends %zu: ' the' -> %d ids (%d %d), want 7 10", i, n,
                      n > 0 ? ids[0] : -1, n > 1 ? ids[1] : -1);
                mmspcl_bpe_free(bpe);
                mmspcl_weights_free(w);
            }
        }
    }
}

/* ---- 4. mmspcl tokenize --vocab --merges: the converter's checks -------------------------- */
static void cli_refused(const char *what, const char *vocab, const char *merges, const char *want) {
    char dir[256], v[400], m[400], errf[400], *so = NULL, *se;
    snap s;
    int rc;
    snprintf(dir, sizeof dir, "%s/cli", HD);
    fresh_dir(dir);
    snprintf(v, sizeof v, "%s/vocab.json", dir);
    snprintf(m, sizeof m, "%s/merges.txt", dir);
    put_str(v, vocab);
    put_str(m, merges);
    snprintf(errf, sizeof errf, "%s-stderr.txt", dir);
    snap_take(&s, dir);
    rc = test_run(&so, CLI " tokenize --vocab '%s' --merges '%s' --text ' the' 2>'%s'", v, m, errf);
    se = (char *)test_read_file(errf, NULL);
    CHECK(rc == 1, "tokenize, %s: exit status %d, want 1 (%s)", what, rc, se ? se : "");
    CHECK(so && so[0] == 0, "tokenize, %s: printed ids: %s", what, so ? so : "(nothing read)");
    CHECK(se && strstr(se, want), "tokenize, %s: the message lacks '%s': %s", what, want, se ? se : "");
    snap_same(&s, dir, what);
    free(so);
    free(se);
}

static void test_cli_tokenize(void) {
    char dir[256], v[400], m[400], *out = NULL;
    int rc;
    /* an id gap and a duplicate id: the converter refused them, the CLI made holes / kept one */
    cli_refused("id gap", "{\"<s>\": 0, \"<pad>\": 1, \"</s>\": 2, \"<unk>\": 3, \"<mask>\": 4, \"t\": 9}", "",
                "token 't' has id 9 but there are 6 tokens (ids must be 0..5 with no gaps");
    cli_refused("duplicate id", "{\"<s>\": 0, \"<pad>\": 1, \"</s>\": 2, \"<unk>\": 3, \"<mask>\": 4, \"t\": 5, \"h\": 5}", "",
                "id 5 is given to both 't' and 'h'");
    cli_refused("no <mask>", "{\"<s>\": 0, \"<pad>\": 1, \"</s>\": 2, \"<unk>\": 3, \"t\": 4}", "",
                "lacks the special token <mask>");
    cli_refused("merge of unknown tokens", TOK_VOCAB, "\xc4\xa0 t\nq r\n", "merges.txt: line 2: bpe: merge 1 \"q r\"");
    /* a NUL in merges.txt (written with put(): put_str stops at the NUL) */
    snprintf(dir, sizeof dir, "%s/cli", HD);
    snprintf(v, sizeof v, "%s/vocab.json", dir);
    snprintf(m, sizeof m, "%s/merges.txt", dir);
    put(m, "h\0 e\n", 5);
    rc = test_run(&out, CLI " tokenize --vocab '%s' --merges '%s' --text ' the' 2>&1", v, m);
    CHECK(rc == 1 && out && strstr(out, "merge 1 'h\\u0000 e': its byte 2 (0x00) is NUL (line 1)"),
          "tokenize: a NUL in merges.txt: %d %s", rc, out ? out : "");
    free(out);
    /* CR-only merges.txt: every merge kept (it was one long line before) */
    put_str(v, TOK_VOCAB);
    put_str(m, "#version: 0.2\r\xc4\xa0 t\rh e\r");
    rc = test_run(&out, CLI " tokenize --vocab '%s' --merges '%s' --text ' the' --no-special 2>&1", v, m);
    CHECK(rc == 0 && out && strcmp(out, "7 10\n") == 0, "tokenize with a CR-only merges.txt: %d %s", rc, out ? out : "");
    free(out);
}

/* ---- 5. BMP offsets --------------------------------------------------------------------- */
static void le16(unsigned char *p, unsigned v) { p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); }
static void le32(unsigned char *p, uint32_t v) { le16(p, v & 0xFFFF); le16(p + 2, v >> 16); }

/* A 2x2 BMP: header size hsize (12 or 40), bits, compression, ncolors palette entries declared
   (0: 2^bits for bits <= 8), pixel data at off (pixels zero, palette grey). Returns the size. */
static size_t bmp_make(unsigned char *b, uint32_t hsize, int bits, uint32_t compression, uint32_t ncolors, uint32_t off) {
    size_t stride = ((2 * (size_t)bits + 31) / 32) * 4, n = (off > 200 ? off : 200) + 2 * stride, i;
    memset(b, 0, n + 64);
    b[0] = 'B'; b[1] = 'M';
    le32(b + 2, (uint32_t)n);
    le32(b + 10, off);
    le32(b + 14, hsize);
    if (hsize == 12) {
        le16(b + 18, 2); le16(b + 20, 2); le16(b + 22, 1); le16(b + 24, (unsigned)bits);
    } else {
        le32(b + 18, 2); le32(b + 22, 2); le16(b + 26, 1); le16(b + 28, (unsigned)bits);
        le32(b + 30, compression);
        le32(b + 46, ncolors);
    }
    if (compression == 3) { le32(b + 54, 0xFF0000); le32(b + 58, 0xFF00); le32(b + 62, 0xFF); }
    for (i = 14 + hsize; bits <= 8 && i < off && i < n; i++) b[i] = 0x80;
    return n;
}

static void bmp_case(const char *what, unsigned char *b, size_t n, const char *want) {
    mmspcl_image img;
    mmspcl_error err;
    mmspcl_status st;
    char p[300];
    snap s;
    err.msg[0] = 0;
    st = mmspcl_image_decode(b, n, &img, &err);
    if (!want) {
        CHECK(st == MMSPCL_OK && img.width == 2 && img.height == 2, "BMP %s: refused: %s", what, err.msg);
        mmspcl_image_free(&img);
        return;
    }
    CHECK(st == MMSPCL_ERR_FORMAT && img.rgb == NULL && img.width == 0, "BMP %s: accepted (%d)", what, (int)st);
    CHECK(strstr(err.msg, want) != NULL, "BMP %s: the message lacks '%s': %s", what, want, err.msg);
    /* the same from a file: refused, the file unchanged */
    snprintf(p, sizeof p, "%s/bmp/x.bmp", HD);
    put(p, b, n);
    snap_take(&s, HD "/bmp");
    CHECK(mmspcl_image_load(p, &img, &err) == MMSPCL_ERR_FORMAT && strstr(err.msg, "x.bmp: BMP: ") && strstr(err.msg, want),
          "BMP %s from a file: %s", what, err.msg);
    snap_same(&s, HD "/bmp", what);
}

static void test_bmp_offsets(void) {
    unsigned char b[512];
    fresh_dir(HD "/bmp");
    bmp_case("24-bit, offset 54", b, bmp_make(b, 40, 24, 0, 0, 54), NULL);
    bmp_case("24-bit, offset 14", b, bmp_make(b, 40, 24, 0, 0, 14),
             "pixel data offset 14 (bytes 10-13) points inside the headers, which end at byte 54");
    bmp_case("24-bit, offset 0", b, bmp_make(b, 40, 24, 0, 0, 0), "pixel data offset 0 (bytes 10-13) points inside the headers");
    bmp_case("24-bit, offset 53", b, bmp_make(b, 40, 24, 0, 0, 53), "pixel data offset 53");
    bmp_case("8-bit, 4 colours, offset 70", b, bmp_make(b, 40, 8, 0, 4, 70), NULL);
    bmp_case("8-bit, 4 colours, offset 60", b, bmp_make(b, 40, 8, 0, 4, 60),
             "pixel data offset 60 (bytes 10-13) points inside the 4-entry palette (bytes 54 to 69)");
    bmp_case("1-bit, 16 colours declared, offset 70", b, bmp_make(b, 40, 1, 0, 16, 70),
             "points inside the 16-entry palette (bytes 54 to 117)");
    bmp_case("1-bit, OS/2, offset 32", b, bmp_make(b, 12, 1, 0, 0, 32), NULL);
    bmp_case("1-bit, OS/2, offset 28", b, bmp_make(b, 12, 1, 0, 0, 28),
             "pixel data offset 28 (bytes 10-13) points inside the 2-entry palette (bytes 26 to 31)");
    bmp_case("32-bit bit fields, offset 66", b, bmp_make(b, 40, 32, 3, 0, 66), NULL);
    bmp_case("32-bit bit fields, offset 54", b, bmp_make(b, 40, 32, 3, 0, 54),
             "pixel data offset 54 (bytes 10-13) points inside the headers, which end at byte 66");
}

/* ---- the fuzz regressions of these classes: each is refused with its class's message -------- */
static void test_regression_seeds(void) {
    static const struct { const char *file; const char *want; } seeds[] = {
        {"safetensors/hostile-nul-name.safetensors", "its name has a NUL byte at name byte 33"},
        {"safetensors/hostile-nul-dtype.safetensors", "(it contains a NUL byte)"},
        {"weights/hostile-roberta-eps-nan.mmw", "'roberta.layer_norm_eps' = nan"},
        {"weights/hostile-roberta-eps-negative.mmw", "'roberta.layer_norm_eps' = -1e-05"},
        {"weights/hostile-roberta-eps-string.mmw", "'roberta.layer_norm_eps' is not a number (it is a string)"},
        {"weights/hostile-roberta-pad-no-position.mmw", "leaves no position after 'roberta.pad_token_id' = 65"},
        {"weights/hostile-clip-mean-1e308.mmw", "'clip.image_mean.0' = 1e+308"},
        {"weights/hostile-clip-std-nan.mmw", "'clip.image_std.1' = nan"},
        {"weights/hostile-clip-crop-100000.mmw", "'clip.crop_size' = 100000"},
        {"weights/hostile-clip-eps-zero.mmw", "'clip.layer_norm_eps' = 0"},
        {"image/hostile-bmp-offset-0.bmp", "pixel data offset 0 (bytes 10-13) points inside the headers"},
        {"image/hostile-bmp-offset-14.bmp", "pixel data offset 14 (bytes 10-13) points inside the headers"},
        {"image/hostile-bmp-offset-in-palette.bmp", "points inside the 4-entry palette"},
        {"image/hostile-bmp-offset-in-declared-palette.bmp", "points inside the 16-entry palette"},
        {"image/hostile-bmp-os2-offset-in-palette.bmp", "points inside the 2-entry palette"},
        {"image/hostile-bmp-offset-in-masks.bmp", "which end at byte 66"}};
    size_t i;
    for (i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        char p[300], msg[512];
        size_t n = 0;
        unsigned char *b;
        int refused = 0;
        snprintf(p, sizeof p, "tests/fuzz/regressions/%s", seeds[i].file);
        msg[0] = 0;
        if (!(b = test_read_file(p, &n))) { CHECK(0, "%s is missing", p); continue; }
        if (!strncmp(seeds[i].file, "safetensors/", 12)) {
            st_file f;
            refused = st_open_memory(b, n, p, &f, msg, sizeof msg) != 0;
            if (!refused) st_close(&f);
        } else if (!strncmp(seeds[i].file, "weights/", 8)) {
            mmspcl_weights *w = NULL;
            mmspcl_error e;
            e.msg[0] = 0;
            if (mmspcl_weights_from_memory(&w, b, n, &e) == MMSPCL_OK) {
                const char *arch = "";
                mmspcl_weights_get_str(w, "general.architecture", &arch);
                if (!strcmp(arch, "roberta")) {
                    mmspcl_roberta *m = NULL;
                    refused = mmspcl_roberta_load(&m, w, 1, 4, &e) == MMSPCL_ERR_FORMAT;
                    mmspcl_roberta_free(m);
                } else {
                    mmspcl_clip *m = NULL;
                    refused = mmspcl_clip_load(&m, w, 1, &e) == MMSPCL_ERR_FORMAT;
                    mmspcl_clip_free(m);
                }
                mmspcl_weights_free(w);
            }
            snprintf(msg, sizeof msg, "%s", e.msg);
        } else {
            mmspcl_image img;
            mmspcl_error e;
            e.msg[0] = 0;
            refused = mmspcl_image_decode(b, n, &img, &e) == MMSPCL_ERR_FORMAT;
            if (!refused) mmspcl_image_free(&img);
            snprintf(msg, sizeof msg, "%s", e.msg);
        }
        CHECK(refused && strstr(msg, seeds[i].want), "regression %s: %s (want '%s')", p, refused ? msg : "accepted", seeds[i].want);
        free(b);
    }
}

int main(void) {
    test_run(NULL, "mkdir -p " HD);
    test_nul_names();
    test_hparams();
    test_converter_writes_what_loads();
    test_cli_tokenize();
    test_bmp_offsets();
    test_regression_seeds();
    return TEST_END();
}
