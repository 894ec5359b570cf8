/* test_convert.c — the JSON reader, the safetensors reader and build/mmspcl-convert end to end.
   Run from the repository root (make test builds build/mmspcl-convert first). Scratch files go
   to build/tests/tmp/convert/. The real RoBERTa vocab.json + merges.txt are read from
   ../shared/data/weights/roberta-bpe/ (copied into the scratch folder; skipped when absent). */
#define _XOPEN_SOURCE 700
#define MMSPCL_IMPLEMENTATION
#include "mmspcl.h"
#include "tools/convert/safetensors.c"
#include "tests/test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TMP "build/tests/tmp/convert"
#define CONV "build/mmspcl-convert"

static char g_stderr[8192];
static char g_cwd[1024];

/* ------------------------------------------------------------------------------------------ */
/* small helpers                                                                              */

static int exists(const char *p) { struct stat sb; return stat(p, &sb) == 0; }

static int spit_str(const char *path, const char *s) { return test_write_file(path, s, strlen(s)); }

static int clean_stderr(void) {
    return !strstr(g_stderr, "Sanitizer") && !strstr(g_stderr, "runtime error");
}

/* Runs the converter (extra: more arguments), keeps its stderr in g_stderr, returns the exit code. */
static int convert(const char *src, const char *out, const char *extra) {
    char *e;
    int rc = test_run(NULL, "%s '%s' '%s' %s 2> %s/stderr.txt", CONV, src, out, extra ? extra : "", TMP);
    char p[512];
    snprintf(p, sizeof p, "%s/stderr.txt", TMP);
    e = (char *)test_read_file(p, NULL);
    snprintf(g_stderr, sizeof g_stderr, "%s", e ? e : "");
    free(e);
    CHECK(clean_stderr(), "%s: sanitizer report: %s", src, g_stderr);
    return rc;
}

/* A bad input: exit code 1, a message containing `want`, no OUT and no OUT.tmp. */
static void expect_fail(const char *label, const char *src, const char *want) {
    char out[512], tmp[520];
    int rc;
    snprintf(out, sizeof out, "%s/bad.mmw", TMP);
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    remove(out);
    rc = convert(src, out, "--quiet");
    CHECK(rc == 1, "%s: exit code %d, want 1 (stderr: %s)", label, rc, g_stderr);
    CHECK(strstr(g_stderr, want) != NULL, "%s: message lacks '%s': %s", label, want, g_stderr);
    CHECK(strstr(g_stderr, "mmspcl-convert: error: ") != NULL, "%s: no error line: %s", label, g_stderr);
    CHECK(clean_stderr(), "%s: sanitizer report: %s", label, g_stderr);
    CHECK(!exists(out) && !exists(tmp), "%s: output or .tmp left behind", label);
}

/* ------------------------------------------------------------------------------------------ */
/* building safetensors files                                                                 */

typedef struct tt {
    char name[128];
    char dtype[16];
    int ndim;
    int64_t shape[4];
    uint64_t begin, end;
} tt;

typedef struct model {
    tt t[400];
    int n;
    unsigned char *data;
    size_t size, cap;
} model;

static uint32_t g_rng = 12345;
static float frand(void) {
    g_rng = g_rng * 1664525u + 1013904223u;
    return ((float)(g_rng >> 8) / 16777216.0f - 0.5f) * 0.2f;
}

static void model_add(model *m, const char *name, const char *dtype, int ndim, int64_t a, int64_t b) {
    tt *t = &m->t[m->n++];
    uint64_t nel = (uint64_t)a * (uint64_t)(ndim > 1 ? b : 1), i, es = strcmp(dtype, "F32") == 0 ? 4 : strcmp(dtype, "I64") == 0 ? 8 : 2;
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    snprintf(t->dtype, sizeof t->dtype, "%s", dtype);
    t->ndim = ndim;
    t->shape[0] = a;
    t->shape[1] = b;
    if (m->size + nel * es > m->cap) {
        m->cap = (m->size + nel * es) * 2 + 1024;
        m->data = (unsigned char *)realloc(m->data, m->cap);
    }
    t->begin = m->size;
    for (i = 0; i < nel; i++) {
        float f = frand();
        if (es == 4) memcpy(m->data + m->size + 4 * i, &f, 4);
        else if (es == 8) { int64_t v = (int64_t)i; memcpy(m->data + m->size + 8 * i, &v, 8); }
        else { uint16_t h = mmspcl_fp32_to_fp16(f); memcpy(m->data + m->size + 2 * i, &h, 2); }
    }
    m->size += nel * es;
    t->end = m->size;
}

/* Writes m as a .safetensors file; hlen_override >= 0 replaces the header length field. */
static void model_write(const model *m, const char *path, int64_t hlen_override) {
    size_t cap = 1 << 20, n = 0;
    char *h = (char *)malloc(cap);
    unsigned char len8[8];
    FILE *f;
    int i, d;
    n += (size_t)snprintf(h + n, cap - n, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (i = 0; i < m->n; i++) {
        const tt *t = &m->t[i];
        n += (size_t)snprintf(h + n, cap - n, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t->name, t->dtype);
        for (d = 0; d < t->ndim; d++) n += (size_t)snprintf(h + n, cap - n, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        n += (size_t)snprintf(h + n, cap - n, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)t->begin,
                              (unsigned long long)t->end);
    }
    n += (size_t)snprintf(h + n, cap - n, "}");
    while (n % 8) h[n++] = ' ';
    {
        uint64_t L = hlen_override >= 0 ? (uint64_t)hlen_override : (uint64_t)n;
        for (i = 0; i < 8; i++) len8[i] = (unsigned char)(L >> (8 * i));
    }
    f = fopen(path, "wb");
    fwrite(len8, 1, 8, f);
    fwrite(h, 1, n, f);
    if (m->size) fwrite(m->data, 1, m->size, f);
    fclose(f);
    free(h);
}

/* Loads an existing safetensors file into a model (to mutate it). */
static int model_load(model *m, const char *path) {
    st_file f;
    char err[512];
    size_t i;
    memset(m, 0, sizeof *m);
    if (st_open(path, &f, err, sizeof err)) { fprintf(stderr, "%s\n", err); return -1; }
    m->cap = m->size = (size_t)f.data_size;
    m->data = (unsigned char *)malloc(m->size + 1);
    memcpy(m->data, f.data, m->size);
    for (i = 0; i < f.n; i++) {
        tt *t = &m->t[m->n++];
        int d;
        memset(t, 0, sizeof *t);
        snprintf(t->name, sizeof t->name, "%s", f.tensors[i].name);
        snprintf(t->dtype, sizeof t->dtype, "%s", f.tensors[i].dtype);
        t->ndim = f.tensors[i].ndim;
        for (d = 0; d < t->ndim; d++) t->shape[d] = f.tensors[i].shape[d];
        t->begin = f.tensors[i].begin;
        t->end = f.tensors[i].end;
    }
    st_close(&f);
    return 0;
}

static tt *model_find(model *m, const char *name) {
    int i;
    for (i = 0; i < m->n; i++)
        if (strcmp(m->t[i].name, name) == 0) return &m->t[i];
    return NULL;
}

/* A RoBERTa checkpoint with any sizes; gamma: old LayerNorm.gamma/beta names. */
static void gen_roberta(model *m, int64_t V, int64_t H, int64_t I, int64_t L, int64_t MP, int gamma, const char *dtype) {
    char n[128];
    int64_t l;
    const char *w = gamma ? "gamma" : "weight", *b = gamma ? "beta" : "bias";
    int q;
    static const char *const qkv[] = {"query", "key", "value"};
    memset(m, 0, sizeof *m);
    model_add(m, "embeddings.word_embeddings.weight", dtype, 2, V, H);
    model_add(m, "embeddings.position_embeddings.weight", dtype, 2, MP, H);
    model_add(m, "embeddings.token_type_embeddings.weight", dtype, 2, 1, H);
    snprintf(n, sizeof n, "embeddings.LayerNorm.%s", w); model_add(m, n, dtype, 1, H, 0);
    snprintf(n, sizeof n, "embeddings.LayerNorm.%s", b); model_add(m, n, dtype, 1, H, 0);
    for (l = 0; l < L; l++) {
        for (q = 0; q < 3; q++) {
            snprintf(n, sizeof n, "encoder.layer.%lld.attention.self.%s.weight", (long long)l, qkv[q]); model_add(m, n, dtype, 2, H, H);
            snprintf(n, sizeof n, "encoder.layer.%lld.attention.self.%s.bias", (long long)l, qkv[q]); model_add(m, n, dtype, 1, H, 0);
        }
        snprintf(n, sizeof n, "encoder.layer.%lld.attention.output.dense.weight", (long long)l); model_add(m, n, dtype, 2, H, H);
        snprintf(n, sizeof n, "encoder.layer.%lld.attention.output.dense.bias", (long long)l); model_add(m, n, dtype, 1, H, 0);
        snprintf(n, sizeof n, "encoder.layer.%lld.attention.output.LayerNorm.%s", (long long)l, w); model_add(m, n, dtype, 1, H, 0);
        snprintf(n, sizeof n, "encoder.layer.%lld.attention.output.LayerNorm.%s", (long long)l, b); model_add(m, n, dtype, 1, H, 0);
        snprintf(n, sizeof n, "encoder.layer.%lld.intermediate.dense.weight", (long long)l); model_add(m, n, dtype, 2, I, H);
        snprintf(n, sizeof n, "encoder.layer.%lld.intermediate.dense.bias", (long long)l); model_add(m, n, dtype, 1, I, 0);
        snprintf(n, sizeof n, "encoder.layer.%lld.output.dense.weight", (long long)l); model_add(m, n, dtype, 2, H, I);
        snprintf(n, sizeof n, "encoder.layer.%lld.output.dense.bias", (long long)l); model_add(m, n, dtype, 1, H, 0);
        snprintf(n, sizeof n, "encoder.layer.%lld.output.LayerNorm.%s", (long long)l, w); model_add(m, n, dtype, 1, H, 0);
        snprintf(n, sizeof n, "encoder.layer.%lld.output.LayerNorm.%s", (long long)l, b); model_add(m, n, dtype, 1, H, 0);
    }
}

static void roberta_config(const char *dir, int64_t V, int64_t H, int64_t I, int64_t L, int64_t MP, const char *model_type) {
    char p[512], s[1024];
    snprintf(p, sizeof p, "%s/config.json", dir);
    snprintf(s, sizeof s,
             "{\n  \"model_type\": \"%s\",\n  \"vocab_size\": %lld,\n  \"hidden_size\": %lld,\n"
             "  \"intermediate_size\": %lld,\n  \"num_hidden_layers\": %lld,\n  \"num_attention_heads\": 4,\n"
             "  \"max_position_embeddings\": %lld,\n  \"type_vocab_size\": 1,\n  \"layer_norm_eps\": 1e-05,\n"
             "  \"pad_token_id\": 1,\n  \"hidden_act\": \"gelu\"\n}\n",
             model_type, (long long)V, (long long)H, (long long)I, (long long)L, (long long)MP);
    spit_str(p, s);
}

/* ------------------------------------------------------------------------------------------ */
/* checking a converted file against its source                                               */

static int is_linear(const char *n) {
    static const char *const suf[] = {"attention.self.query.weight", "attention.self.key.weight",
                                      "attention.self.value.weight", "attention.output.dense.weight",
                                      "intermediate.dense.weight", "output.dense.weight", "q_proj.weight",
                                      "k_proj.weight", "v_proj.weight", "out_proj.weight", "mlp.fc1.weight",
                                      "mlp.fc2.weight", "visual_projection.weight", NULL};
    size_t i, ln = strlen(n);
    for (i = 0; suf[i]; i++) {
        size_t ls = strlen(suf[i]);
        if (ln >= ls && strcmp(n + ln - ls, suf[i]) == 0) return 1;
    }
    return 0;
}

static int dropped(const char *n) {
    static const char *const pre[] = {"lm_head.", "pooler.", "roberta.pooler.", "text_model.", "text_projection.",
                                      "logit_scale", NULL};
    size_t i, ln = strlen(n);
    if (ln >= 13 && strcmp(n + ln - 13, ".position_ids") == 0) return 1;
    for (i = 0; pre[i]; i++)
        if (strncmp(n, pre[i], strlen(pre[i])) == 0) return 1;
    return 0;
}

/* Every kept tensor of the source files reads back from `out_path`:
     f32 outputs bit-exact (f16/bf16 sources widened exactly),
     f16 outputs == the f16 source bytes (f16 source) or fp32_to_fp16 of the f32 value,
     q8_0/q4_0 outputs == mmspcl_quantize_row of the source rows, with the error bound below.
   Returns the number of tensors compared. */
static int check_against(const char *out_path, const char *const *src_paths, int n_src, mmspcl_dtype linear_type,
                         double *max_rel_err) {
    mmspcl_weights *w = NULL;
    mmspcl_error err;
    int compared = 0, k, bad = 0;
    size_t i;
    if (max_rel_err) *max_rel_err = 0;
    if (mmspcl_weights_read(&w, out_path, &err)) {
        CHECK(0, "%s: %s", out_path, err.msg);
        return 0;
    }
    for (k = 0; k < n_src; k++) {
        st_file f;
        char e[512];
        if (st_open(src_paths[k], &f, e, sizeof e)) { CHECK(0, "%s", e); continue; }
        for (i = 0; i < f.n; i++) {
            const st_tensor *s = &f.tensors[i];
            const char *name = s->name;
            const mmspcl_tensor *t;
            int64_t inner, rows, r, nel = (int64_t)s->nelem, j;
            mmspcl_dtype want;
            float *ref, *deq;
            int d;
            if (dropped(name)) continue;
            if (strncmp(name, "roberta.", 8) == 0) name += 8;
            t = mmspcl_weights_find(w, name);
            if (!t) { CHECK(0, "%s: tensor %s missing", out_path, name); bad++; continue; }
            compared++;
            CHECK(t->ndim == s->ndim, "%s: %s ndim %d vs %d", out_path, name, t->ndim, s->ndim);
            for (d = 0; d < s->ndim && d < t->ndim; d++)
                CHECK(t->ne[d] == s->shape[d], "%s: %s dim %d: %lld vs %lld", out_path, name, d, (long long)t->ne[d],
                      (long long)s->shape[d]);
            inner = s->shape[s->ndim - 1];
            rows = nel / inner;
            want = MMSPCL_F32;
            if (is_linear(name) && linear_type != MMSPCL_F32 && mmspcl_dtype_row_size(linear_type, inner) != 0)
                want = linear_type;
            CHECK(t->dtype == want, "%s: %s stored as %s, want %s", out_path, name, mmspcl_dtype_name(t->dtype),
                  mmspcl_dtype_name(want));
            if (t->dtype != want) continue;
            ref = (float *)malloc((size_t)nel * 4);
            deq = (float *)malloc((size_t)nel * 4);
            for (j = 0; j < nel; j++) {
                uint16_t h;
                if (strcmp(s->dtype, "F32") == 0) memcpy(&ref[j], s->data + 4 * j, 4);
                else {
                    memcpy(&h, s->data + 2 * j, 2);
                    ref[j] = strcmp(s->dtype, "F16") == 0 ? mmspcl_fp16_to_fp32(h) : mmspcl_bf16_to_fp32(h);
                }
            }
            if (want == MMSPCL_F32) {
                CHECK(t->nbytes == (size_t)nel * 4 && memcmp(t->data, ref, (size_t)nel * 4) == 0,
                      "%s: %s not bit-exact", out_path, name);
            } else if (want == MMSPCL_F16 || want == MMSPCL_BF16) {   /* the source's bits, or rounded once */
                const char *same_src = want == MMSPCL_F16 ? "F16" : "BF16";
                int same = 1;
                for (j = 0; j < nel && same; j++) {
                    uint16_t got, exp;
                    memcpy(&got, (const unsigned char *)t->data + 2 * j, 2);
                    if (strcmp(s->dtype, same_src) == 0) memcpy(&exp, s->data + 2 * j, 2);
                    else exp = want == MMSPCL_F16 ? mmspcl_fp32_to_fp16(ref[j]) : mmspcl_fp32_to_bf16(ref[j]);
                    same = got == exp;
                }
                CHECK(same, "%s: %s %s bits differ from the source", out_path, name, mmspcl_dtype_name(want));
            } else {
                /* q8_0 / q4_0: exactly what mmspcl_quantize_row makes of the source rows, and within
                   the bound per block of 32 (amax = largest |x| in the block):
                     q8_0: d = amax/127; |x - x^| <= d/2 (rounding) + 127*|d - f16(d)| <= 0.5625*d
                           (an f16 scale is within 2^-11 relative of d);
                     q4_0: d = amax/8; values are rounded to (q-8)*d, q in 0..15: the extreme of the
                           block's sign maps to -8 exactly; on the other side +8 does not exist, so
                           x/d in [7.5, 8] clamps to 7: |x - x^| <= d (plus 8*2^-11*d for the f16
                           scale), i.e. <= 1.004*d. Elsewhere the error is <= d/2. */
                size_t rb = mmspcl_dtype_row_size(want, inner);
                unsigned char *qb = (unsigned char *)malloc(rb);
                int same = 1, within = 1;
                for (r = 0; r < rows; r++) {
                    int64_t b;
                    mmspcl_quantize_row(want, ref + r * inner, qb, inner);
                    if (memcmp(qb, (const unsigned char *)t->data + r * rb, rb) != 0) same = 0;
                    mmspcl_dequantize_row(want, (const unsigned char *)t->data + r * rb, deq + r * inner, inner);
                    for (b = 0; b < inner; b += 32) {
                        float amax = 0;
                        double bound;
                        for (j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(ref[r * inner + b + j]));
                        bound = want == MMSPCL_Q8_0 ? 0.5625 * amax / 127.0 : 1.004 * amax / 8.0;
                        for (j = 0; j < 32; j++) {
                            double e2 = fabs((double)ref[r * inner + b + j] - deq[r * inner + b + j]);
                            if (e2 > bound + 1e-12) within = 0;
                            if (max_rel_err && amax > 0 && e2 / amax > *max_rel_err) *max_rel_err = e2 / amax;
                        }
                    }
                }
                CHECK(same, "%s: %s differs from mmspcl_quantize_row of the source", out_path, name);
                CHECK(within, "%s: %s error beyond the bound", out_path, name);
                free(qb);
            }
            free(ref);
            free(deq);
        }
        st_close(&f);
    }
    CHECK(compared == (int)w->n_tensors && !bad, "%s: %d tensors compared, file has %lld", out_path, compared,
          (long long)w->n_tensors);
    mmspcl_weights_free(w);
    return compared;
}

static int files_equal(const char *a, const char *b) {
    size_t na, nb;
    unsigned char *x = test_read_file(a, &na), *y = test_read_file(b, &nb);
    int eq = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return eq;
}

static int64_t kv_int(const mmspcl_weights *w, const char *k) {
    int64_t v = -12345;
    mmspcl_weights_get_int(w, k, &v);
    return v;
}

static double kv_float(const mmspcl_weights *w, const char *k) {
    double v = -12345;
    mmspcl_weights_get_float(w, k, &v);
    return v;
}

static const char *kv_str(const mmspcl_weights *w, const char *k) {
    const char *v = "";
    mmspcl_weights_get_str(w, k, &v);
    return v;
}

/* ------------------------------------------------------------------------------------------ */
/* tests                                                                                      */

static void test_json(void) {
    char err[256];
    json_value *v;
    const json_value *a, *x;
    int64_t i;
    static const char doc[] =
        "{\"a\": [1, -2.5e3, true, false, null, \"x\\u00e9\\ud83d\\ude00\\n\\/\"], \"b\": {\"c\": \"\\u0000z\"},"
        " \"a2\": 7, \"a2\": 8, \"big\": 9223372036854775807, \"bigger\": 9223372036854775808, \"f\": 2.0, "
        "\"raw\": \"\xc4\xa0the\"}";
    v = json_parse(doc, sizeof doc - 1, err, sizeof err);
    CHECK(v != NULL, "json: valid document refused: %s", err);
    if (v) {
        a = json_get(v, "a");
        CHECK(a && a->type == JSON_ARRAY && a->count == 6, "json: array");
        CHECK(a && a->items[0].is_int && a->items[0].integer == 1, "json: int");
        CHECK(a && a->items[1].type == JSON_NUMBER && a->items[1].number == -2500.0 && !a->items[1].is_int, "json: float");
        CHECK(a && a->items[2].type == JSON_BOOL && a->items[2].boolean == 1 && a->items[3].boolean == 0, "json: bools");
        CHECK(a && a->items[4].type == JSON_NULL, "json: null");
        x = json_at(a, 5);
        CHECK(x && x->len == 9 && memcmp(x->str, "x\xc3\xa9\xf0\x9f\x98\x80\n/", 9) == 0,
              "json: escapes and surrogate pair to UTF-8");
        x = json_get(json_get(v, "b"), "c");
        CHECK(x && x->len == 2 && x->str[0] == 0 && x->str[1] == 'z', "json: \\u0000 kept (length-aware)");
        CHECK(json_int(json_get(v, "a2"), &i) && i == 8, "json: duplicate key: last wins");
        CHECK(json_int(json_get(v, "big"), &i) && i == INT64_MAX, "json: int64 max exact");
        x = json_get(v, "bigger");
        CHECK(x && !x->is_int && x->number == 9223372036854775808.0, "json: past int64 stays a double");
        CHECK(json_int(json_get(v, "f"), &i) && i == 2, "json: 2.0 is integral");
        x = json_get(v, "raw");
        CHECK(x && x->len == 5 && memcmp(x->str, "\xc4\xa0the", 5) == 0, "json: raw UTF-8");
        CHECK(json_get(v, "nope") == NULL && json_get(a, "a") == NULL, "json: missing key / not an object");
        json_free(v);
    }
    {
        static const struct { const char *text, *want; } bad[] = {
            {"{\"a\" 1}", "byte 5 (line 1, column 6): expected ':'"},
            {"{\"a\": 1,}", "byte 8"},
            {"[1,]", "expected a value"},
            {"{\"a\": 1", "expected ',' or '}'"},
            {"[1 2]", "expected ',' or ']'"},
            {"\"\\ud800\"", "high surrogate"},
            {"\"\\udc00\"", "lone low surrogate"},
            {"\"\\x\"", "unknown escape"},
            {"[01]", "leading zero"},
            {"[1.]", "digit after '.'"},
            {"[1e]", "exponent"},
            {"\"a\nb\"", "control character"},
            {"\"\xff\"", "invalid UTF-8"},
            {"\"\xc0\xaf\"", "invalid UTF-8"},
            {"{} x", "after the JSON value"},
            {"", "text ends"},
            {"[NaN]", "expected a value"},
            {"tru", "unexpected"},
            {"\"abc", "unterminated string"},
            {"{\n  \"a\": [1,\n  2,,]}", "line 3, column 5"},
        };
        size_t k;
        for (k = 0; k < sizeof bad / sizeof bad[0]; k++) {
            v = json_parse(bad[k].text, strlen(bad[k].text), err, sizeof err);
            CHECK(v == NULL && strstr(err, bad[k].want) != NULL, "json: '%s' should fail with '%s', got '%s'",
                  bad[k].text, bad[k].want, v ? "(accepted)" : err);
            json_free(v);
        }
    }
    {
        /* nesting: 256 levels parse, 257 are refused (no unbounded recursion) */
        char deep[2 * 300 + 1];
        int d;
        for (d = 256; d <= 257; d++) {
            memset(deep, '[', (size_t)d);
            memset(deep + d, ']', (size_t)d);
            v = json_parse(deep, (size_t)(2 * d), err, sizeof err);
            if (d == 256) CHECK(v != NULL, "json: 256 levels refused: %s", err);
            else CHECK(v == NULL && strstr(err, "nesting deeper than 256"), "json: 257 levels: %s", v ? "accepted" : err);
            json_free(v);
        }
        memset(deep, '[', 600);
        v = json_parse(deep, 600, err, sizeof err);
        CHECK(v == NULL, "json: 600 open brackets accepted");
        json_free(v);
    }
}

static const char *shared_dir(const char *sub) {
    static char p[1024];
    static const char *const roots[] = {"../shared/data/weights", "/work/shared/data/weights", NULL};
    int i;
    for (i = 0; roots[i]; i++) {
        snprintf(p, sizeof p, "%s/%s", roots[i], sub);
        if (exists(p)) return p;
    }
    return NULL;
}

static void test_safetensors_reader(void) {
    const char *dir = shared_dir("safetensors-samples");
    char p[1200], err[512];
    st_file f;
    const st_tensor *t;
    float v[6];
    if (!dir) { printf("note: safetensors-samples not found under ../shared: conformance files skipped\n"); return; }
    snprintf(p, sizeof p, "%s/overall.safetensors", dir);
    CHECK(st_open(p, &f, err, sizeof err) == 0, "st: overall.safetensors: %s", err);
    if (f.n) {
        CHECK(f.n == 9, "st: overall has %zu tensors, want 9", f.n);
        t = st_find(&f, "f");
        CHECK(t && strcmp(t->dtype, "F32") == 0 && t->ndim == 1 && t->shape[0] == 6 && t->nbytes == 24, "st: f F32 [6]");
        if (t && t->nbytes == 24) {
            memcpy(v, t->data, 24);
            CHECK(v[0] == -3.0f && v[5] == 2.0f, "st: f values");
        }
        t = st_find(&f, "e");
        CHECK(t && strcmp(t->dtype, "F16") == 0 && t->elem_size == 2, "st: e F16");
        if (t) {
            uint16_t h;
            memcpy(&h, t->data, 2);
            CHECK(mmspcl_fp16_to_fp32(h) == -3.0f, "st: e[0] = -3");
        }
        t = st_find(&f, "d");
        CHECK(t && strcmp(t->dtype, "F64") == 0 && t->elem_size == 8, "st: d F64 known size");
        st_close(&f);
    }
}

static void test_quant_by_hand(void) {
    /* q8_0, one block worked by hand: x[0] = -127, x[j] = 8j - 127.7 (j = 1..31).
       amax = 127, so d = 127/127 = 1.0 -> f16 0x3C00, and 1/d = 1 exactly; q = round(x):
       q[0] = -127 (byte 0x81); q[j] = 8j - 128 because x is 0.3 below 8j - 127.5... i.e. 8j-127.7
       rounds to 8j - 128 (0.3 away): q[1] = -120 (0x88), q[15] = -8 (0xF8), q[16] = 0 (0x00),
       q[17] = 8 (0x08), q[31] = 120 (0x78). Dequantized: -127 exact, the others off by 0.3. */
    float x[32], y[32];
    mmspcl_block_q8_0 b8;
    mmspcl_block_q4_0 b4;
    int j, ok = 1;
    x[0] = -127.0f;
    for (j = 1; j < 32; j++) x[j] = 8.0f * (float)j - 127.7f;
    mmspcl_quantize_row(MMSPCL_Q8_0, x, &b8, 32);
    CHECK(b8.d == 0x3C00, "q8_0 by hand: d = 0x%04x, want 0x3C00", b8.d);
    CHECK((uint8_t)b8.q[0] == 0x81 && (uint8_t)b8.q[1] == 0x88 && (uint8_t)b8.q[15] == 0xF8 && b8.q[16] == 0 &&
          b8.q[17] == 8 && b8.q[31] == 120, "q8_0 by hand: q bytes");
    for (j = 1; j < 32; j++) ok &= b8.q[j] == 8 * j - 128;
    CHECK(ok, "q8_0 by hand: q[j] = 8j - 128");
    mmspcl_dequantize_row(MMSPCL_Q8_0, &b8, y, 32);
    CHECK(y[0] == -127.0f && fabsf(y[1] - x[1]) < 0.3001f && y[16] == 0.0f, "q8_0 by hand: dequantized");
    /* q4_0, one block by hand: x[0] = -8, x[j] = (j mod 16) - 8 + 0.25 (j = 1..31).
       The largest magnitude is x[0] = -8, so d = -8 / -8 = 1.0 -> 0x3C00; q = (int)(x/d + 8.5)
       clamped to 0..15: q[0] = (int)0.5 = 0, q[j] = (int)((j mod 16) + 0.75) = j mod 16 (q[16] = 0).
       Byte k packs q[k] (low nibble) and q[k+16] (high nibble): 0x00, 0x11, 0x22, ..., 0xFF.
       Dequantized (q - 8) * d: -8 exact, then (j mod 16) - 8, 0.25 below x. */
    x[0] = -8.0f;
    for (j = 1; j < 32; j++) x[j] = (float)(j % 16) - 8.0f + 0.25f;
    mmspcl_quantize_row(MMSPCL_Q4_0, x, &b4, 32);
    CHECK(b4.d == 0x3C00, "q4_0 by hand: d = 0x%04x, want 0x3C00", b4.d);
    ok = 1;
    for (j = 0; j < 16; j++) ok &= b4.q[j] == (uint8_t)(0x11 * j);
    CHECK(ok, "q4_0 by hand: bytes 00 11 22 .. FF");
    mmspcl_dequantize_row(MMSPCL_Q4_0, &b4, y, 32);
    ok = y[0] == -8.0f;
    for (j = 1; j < 32; j++) ok &= y[j] == (float)(j % 16) - 8.0f;
    CHECK(ok, "q4_0 by hand: dequantized");
}

/* The converted file of tests/data/VARIANT, read through a symlink named ALIAS (so general.source
   is ALIAS too), is byte-identical to want_out. */
static void check_variant_same_file(const char *variant, const char *alias, const char *want_out) {
    char p[4096], link[1200], dir[1100], out2[512];
    int rc;
    snprintf(p, sizeof p, "tests/data/%s", variant);
    if (!exists(p)) { printf("note: %s not present: skipped\n", p); return; }
    snprintf(dir, sizeof dir, "%s/alias-%s", TMP, variant);
    test_run(NULL, "mkdir -p '%s'", dir);
    snprintf(link, sizeof link, "%s/%s", dir, alias);
    remove(link);
    snprintf(p, sizeof p, "%s/tests/data/%s", g_cwd, variant);
    CHECK(symlink(p, link) == 0, "symlink %s", link);
    snprintf(out2, sizeof out2, "%s/%s.mmw", TMP, variant);
    rc = convert(link, out2, "--quiet");
    CHECK(rc == 0, "%s: rc %d: %s", variant, rc, g_stderr);
    CHECK(files_equal(want_out, out2), "%s: output differs from %s's", variant, alias);
}

static const char *const rt_src[] = {"tests/data/roberta-tiny/model.safetensors"};
static const char *const ct_src[] = {"tests/data/clip-tiny/model.safetensors"};

/* roberta-tiny, f32: bit-exact, metadata (TMP/roberta-tiny.mmw is the reference of the tests after) */
static void test_good_roberta(void) {
    char out[512];
    mmspcl_weights *w = NULL;
    mmspcl_error err;
    int rc;
    snprintf(out, sizeof out, "%s/roberta-tiny.mmw", TMP);
    rc = convert("tests/data/roberta-tiny", out, "--quiet");
    CHECK(rc == 0 && g_stderr[0] == 0, "roberta-tiny: rc %d, stderr '%s'", rc, g_stderr);
    CHECK(check_against(out, rt_src, 1, MMSPCL_F32, NULL) == 37, "roberta-tiny: 37 tensors");
    if (mmspcl_weights_read(&w, out, &err) == MMSPCL_OK) {
        CHECK(strcmp(kv_str(w, "general.architecture"), "roberta") == 0, "roberta: architecture");
        CHECK(strcmp(kv_str(w, "general.source"), "roberta-tiny") == 0, "roberta: source '%s'", kv_str(w, "general.source"));
        CHECK(strcmp(kv_str(w, "general.file_type"), "f32") == 0, "roberta: file_type");
        CHECK(kv_int(w, "roberta.vocab_size") == 300 && kv_int(w, "roberta.hidden_size") == 32 &&
              kv_int(w, "roberta.num_hidden_layers") == 2 && kv_int(w, "roberta.num_attention_heads") == 4 &&
              kv_int(w, "roberta.intermediate_size") == 64 && kv_int(w, "roberta.max_position_embeddings") == 66 &&
              kv_int(w, "roberta.type_vocab_size") == 1 && kv_int(w, "roberta.pad_token_id") == 1,
              "roberta: int hyper-parameters");
        CHECK(kv_float(w, "roberta.layer_norm_eps") == 1e-5, "roberta: layer_norm_eps");
        CHECK(strcmp(kv_str(w, "roberta.hidden_act"), "gelu") == 0, "roberta: hidden_act");
        CHECK(mmspcl_weights_get(w, "tokenizer.vocab") == NULL, "roberta-tiny has no tokenizer files");
        CHECK(mmspcl_weights_find(w, "embeddings.word_embeddings.weight") != NULL, "roberta: names without prefix");
        mmspcl_weights_free(w);
    } else CHECK(0, "%s", err.msg);
}

/* the same weights in other layouts give byte-identical files: the source folder is named
   roberta-tiny through a symlink so general.source matches too */
static void test_good_roberta_layouts(void) {
    static const char *const variants[] = {"roberta-tiny-mlm", "roberta-tiny-sharded", "roberta-tiny-bin",
                                           "roberta-tiny-bin-sharded", NULL};
    const char *mlm[] = {"tests/data/roberta-tiny-mlm/model.safetensors"};
    const char *shards[] = {"tests/data/roberta-tiny-sharded/model-00001-of-00002.safetensors",
                            "tests/data/roberta-tiny-sharded/model-00002-of-00002.safetensors"};
    char out[512], out2[512];
    int k, rc;
    snprintf(out, sizeof out, "%s/roberta-tiny.mmw", TMP);
    for (k = 0; variants[k]; k++) check_variant_same_file(variants[k], "roberta-tiny", out);
    /* and the index file itself as SRC works too */
    snprintf(out2, sizeof out2, "%s/sharded-index.mmw", TMP);
    rc = convert("tests/data/roberta-tiny-sharded/model.safetensors.index.json", out2, "--quiet");
    CHECK(rc == 0, "sharded via index file: %s", g_stderr);
    CHECK(check_against(out2, shards, 2, MMSPCL_F32, NULL) == 37, "sharded: 37 tensors bit-exact");
    snprintf(out2, sizeof out2, "%s/mlm.mmw", TMP);
    rc = convert("tests/data/roberta-tiny-mlm/config.json", out2, "--quiet");
    CHECK(rc == 0, "mlm via a file in the folder: %s", g_stderr);
    CHECK(check_against(out2, mlm, 1, MMSPCL_F32, NULL) == 37, "mlm: 37 tensors bit-exact, lm_head dropped");
}

/* f16 / bf16 sources: stored f32, equal to the source values widened; and --type f16 */
static void test_good_half(void) {
    const char *f16[] = {"tests/data/roberta-tiny-f16/model.safetensors"};
    const char *bf16[] = {"tests/data/roberta-tiny-bf16/model.safetensors"};
    char out2[512];
    int rc;
    snprintf(out2, sizeof out2, "%s/roberta-tiny-f16.mmw", TMP);
    rc = convert("tests/data/roberta-tiny-f16", out2, "--quiet");
    CHECK(rc == 0, "f16: %s", g_stderr);
    CHECK(check_against(out2, f16, 1, MMSPCL_F32, NULL) == 37, "f16 source widened");
    snprintf(out2, sizeof out2, "%s/roberta-tiny-bf16.mmw", TMP);
    rc = convert("tests/data/roberta-tiny-bf16", out2, "--quiet");
    CHECK(rc == 0, "bf16: %s", g_stderr);
    CHECK(check_against(out2, bf16, 1, MMSPCL_F32, NULL) == 37, "bf16 source widened");
    /* --type f16 on an f16 checkpoint: the Linear matrices keep their exact bits */
    snprintf(out2, sizeof out2, "%s/roberta-tiny-f16-f16.mmw", TMP);
    rc = convert("tests/data/roberta-tiny-f16", out2, "--type f16 --quiet");
    CHECK(rc == 0, "f16 -> f16: %s", g_stderr);
    CHECK(check_against(out2, f16, 1, MMSPCL_F16, NULL) == 37, "f16 -> --type f16 bit-exact");
    snprintf(out2, sizeof out2, "%s/roberta-tiny-bf16-f16.mmw", TMP);
    rc = convert("tests/data/roberta-tiny-bf16", out2, "--type=f16 --quiet");
    CHECK(rc == 0, "bf16 -> f16: %s", g_stderr);
    CHECK(check_against(out2, bf16, 1, MMSPCL_F16, NULL) == 37, "bf16 -> --type f16 rounded once");
    snprintf(out2, sizeof out2, "%s/roberta-tiny-f16.mmw", TMP);
    rc = convert("tests/data/roberta-tiny", out2, "--type f16 --quiet");
    CHECK(rc == 0, "f32 -> f16: %s", g_stderr);
    CHECK(check_against(out2, rt_src, 1, MMSPCL_F16, NULL) == 37, "f32 -> --type f16");
    /* --type bf16: a bf16 checkpoint keeps its bits, an f32 one is rounded once (nearest even) */
    snprintf(out2, sizeof out2, "%s/roberta-tiny-bf16-bf16.mmw", TMP);
    rc = convert("tests/data/roberta-tiny-bf16", out2, "--type bf16 --quiet");
    CHECK(rc == 0, "bf16 -> bf16: %s", g_stderr);
    CHECK(check_against(out2, bf16, 1, MMSPCL_BF16, NULL) == 37, "bf16 -> --type bf16 bit-exact");
    snprintf(out2, sizeof out2, "%s/roberta-tiny-f32-bf16.mmw", TMP);
    rc = convert("tests/data/roberta-tiny", out2, "--type=bf16 --quiet");
    CHECK(rc == 0, "f32 -> bf16: %s", g_stderr);
    CHECK(check_against(out2, rt_src, 1, MMSPCL_BF16, NULL) == 37, "f32 -> --type bf16");
}

/* --panels: the Linear weights (out a multiple of 16) as f32 {out / 16, in, 16}, every value
   where docs/FORMAT.md puts it; everything else byte-identical to the plain f32 file */
static void test_good_panels(void) {
    char out2[512], out3[512];
    mmspcl_weights *plain = NULL, *pan = NULL;
    mmspcl_error err;
    int rc;
    snprintf(out2, sizeof out2, "%s/roberta-tiny-f32p.mmw", TMP);
    rc = convert("tests/data/roberta-tiny", out2, "--panels --quiet");
    CHECK(rc == 0 && g_stderr[0] == 0, "--panels: rc %d: %s", rc, g_stderr);
    snprintf(out3, sizeof out3, "%s/roberta-tiny.mmw", TMP);
    if (mmspcl_weights_read(&plain, out3, &err) == MMSPCL_OK && mmspcl_weights_read(&pan, out2, &err) == MMSPCL_OK) {
        int64_t t, packed = 0, same = 1;
        CHECK(plain->n_tensors == pan->n_tensors, "--panels: %lld tensors, plain %lld", (long long)pan->n_tensors,
              (long long)plain->n_tensors);
        for (t = 0; t < plain->n_tensors && t < pan->n_tensors; t++) {
            const mmspcl_tensor *a = &plain->tensors[t], *b = mmspcl_weights_find(pan, a->name);
            if (!b) { same = 0; continue; }
            if (mmspcl_tensor_is_panels(b)) {
                int64_t o, k;
                packed++;
                same &= is_linear(a->name) && a->ndim == 2 && b->ne[0] * 16 == a->ne[0] && b->ne[1] == a->ne[1] &&
                        b->nbytes == a->nbytes;
                for (o = 0; same && o < a->ne[0]; o++)
                    for (k = 0; k < a->ne[1]; k++)
                        same &= ((const float *)b->data)[((o / 16) * a->ne[1] + k) * 16 + o % 16] ==
                                ((const float *)a->data)[o * a->ne[1] + k];
            } else {
                same &= !is_linear(a->name) && b->dtype == a->dtype && b->ndim == a->ndim && b->nbytes == a->nbytes &&
                        !memcmp(a->data, b->data, a->nbytes);
            }
        }
        CHECK(packed == 12 && same, "--panels: %lld Linear weights in panels (want 12), values in place: %d", (long long)packed, (int)same);
    } else CHECK(0, "--panels: %s", err.msg);
    mmspcl_weights_free(plain);
    mmspcl_weights_free(pan);
    snprintf(out3, sizeof out3, "%s/panels-q8.mmw", TMP);
    rc = convert("tests/data/roberta-tiny", out3, "--panels --type q8_0 --quiet");
    CHECK(rc == 2 && strstr(g_stderr, "--panels") && !exists(out3), "--panels with q8_0: rc %d: %s", rc, g_stderr);
}

/* q8_0 / q4_0: the error bound of each block */
static void test_good_quantized(void) {
    char out2[512], out3[512];
    mmspcl_weights *w = NULL;
    mmspcl_error err;
    double rel;
    int rc;
    snprintf(out2, sizeof out2, "%s/roberta-tiny-q8_0.mmw", TMP);
    rc = convert("tests/data/roberta-tiny", out2, "--type q8_0 --quiet");
    CHECK(rc == 0, "q8_0: %s", g_stderr);
    CHECK(check_against(out2, rt_src, 1, MMSPCL_Q8_0, &rel) == 37, "roberta q8_0");
    CHECK(rel > 0 && rel <= 0.5625 / 127, "q8_0: max error %.5f of the block's amax", rel);
    if (mmspcl_weights_read(&w, out2, &err) == MMSPCL_OK) {
        CHECK(strcmp(kv_str(w, "general.file_type"), "q8_0") == 0, "q8_0: file_type");
        mmspcl_weights_free(w);
    }
    snprintf(out3, sizeof out3, "%s/roberta-tiny-q4_0.mmw", TMP);
    rc = convert("tests/data/roberta-tiny", out3, "--type q4_0 --quiet");
    CHECK(rc == 0, "q4_0: %s", g_stderr);
    CHECK(check_against(out3, rt_src, 1, MMSPCL_Q4_0, &rel) == 37, "roberta q4_0");
    CHECK(rel > 0 && rel <= 1.004 / 8, "q4_0: max error %.5f of the block's amax", rel);
    /* k-types need rows of whole super-blocks (256): roberta-tiny's rows of 32 and 64 stay f32
       (bit-exact), and the file says what was asked */
    snprintf(out3, sizeof out3, "%s/roberta-tiny-q4_k.mmw", TMP);
    rc = convert("tests/data/roberta-tiny", out3, "--type q4_k --quiet");
    CHECK(rc == 0, "q4_k: %s", g_stderr);
    CHECK(check_against(out3, rt_src, 1, MMSPCL_Q4_K, NULL) == 37, "roberta q4_k: Linear rows of 32 / 64 stay f32");
    if (mmspcl_weights_read(&w, out3, &err) == MMSPCL_OK) {
        CHECK(strcmp(kv_str(w, "general.file_type"), "q4_k") == 0, "q4_k: file_type");
        mmspcl_weights_free(w);
    }
    CHECK(convert("tests/data/roberta-tiny", out3, "--type i32 --quiet") == 2 && strstr(g_stderr, "--type i32"), "--type i32 refused: %s",
          g_stderr);
}

/* CLIP vision-only checkpoint: bit-exact, metadata (TMP/clip-tiny.mmw is the reference of the
   layouts test) */
static void test_good_clip(void) {
    char out[512];
    mmspcl_weights *w = NULL;
    mmspcl_error err;
    int rc;
    snprintf(out, sizeof out, "%s/clip-tiny.mmw", TMP);
    rc = convert("tests/data/clip-tiny", out, "--quiet");
    CHECK(rc == 0 && g_stderr[0] == 0, "clip-tiny: rc %d: %s", rc, g_stderr);
    CHECK(check_against(out, ct_src, 1, MMSPCL_F32, NULL) == 40, "clip-tiny: 40 tensors bit-exact");
    if (mmspcl_weights_read(&w, out, &err) == MMSPCL_OK) {
        CHECK(strcmp(kv_str(w, "general.architecture"), "clip_vision") == 0, "clip: architecture");
        CHECK(kv_int(w, "clip.image_size") == 64 && kv_int(w, "clip.patch_size") == 16 &&
              kv_int(w, "clip.num_channels") == 3 && kv_int(w, "clip.hidden_size") == 32 &&
              kv_int(w, "clip.num_hidden_layers") == 2 && kv_int(w, "clip.num_attention_heads") == 4 &&
              kv_int(w, "clip.intermediate_size") == 64 && kv_int(w, "clip.projection_dim") == 16,
              "clip: int hyper-parameters");
        CHECK(kv_float(w, "clip.layer_norm_eps") == 1e-5 && strcmp(kv_str(w, "clip.hidden_act"), "quick_gelu") == 0,
              "clip: eps / act");
        CHECK(kv_float(w, "clip.image_mean.0") == 0.48145466 && kv_float(w, "clip.image_mean.2") == 0.40821073 &&
              kv_float(w, "clip.image_std.1") == 0.26130258, "clip: default mean/std");
        CHECK(kv_int(w, "clip.resize_shortest_edge") == 64 && kv_int(w, "clip.crop_size") == 64,
              "clip: default resize/crop = image_size");
        CHECK(mmspcl_weights_find(w, "vision_model.pre_layrnorm.weight") && mmspcl_weights_find(w, "visual_projection.weight") &&
              !mmspcl_weights_find(w, "vision_model.embeddings.position_ids"), "clip: names");
        mmspcl_weights_free(w);
    } else CHECK(0, "%s", err.msg);
}

/* CLIP: the full checkpoints (text tower skipped) give the same file; q4_0 and q8_0 */
static void test_good_clip_layouts(void) {
    static const char *const variants[] = {"clip-tiny-full", "clip-tiny-bin", NULL};
    const char *cf[] = {"tests/data/clip-tiny-full/model.safetensors"};
    char out[512], out2[512];
    int k, rc;
    snprintf(out, sizeof out, "%s/clip-tiny.mmw", TMP);
    for (k = 0; variants[k]; k++) check_variant_same_file(variants[k], "clip-tiny", out);
    snprintf(out2, sizeof out2, "%s/clip-full.mmw", TMP);
    convert("tests/data/clip-tiny-full", out2, "--quiet");
    CHECK(check_against(out2, cf, 1, MMSPCL_F32, NULL) == 40, "clip-tiny-full: vision tower bit-exact");
    snprintf(out2, sizeof out2, "%s/clip-q4.mmw", TMP);
    rc = convert("tests/data/clip-tiny", out2, "--type q4_0 --quiet");
    CHECK(rc == 0, "clip q4_0: %s", g_stderr);
    CHECK(check_against(out2, ct_src, 1, MMSPCL_Q4_0, NULL) == 40, "clip q4_0 (patch/position embeddings stay f32)");
    snprintf(out2, sizeof out2, "%s/clip-q8.mmw", TMP);
    rc = convert("tests/data/clip-tiny", out2, "--type q8_0 --quiet");
    CHECK(rc == 0, "clip q8_0: %s", g_stderr);
    CHECK(check_against(out2, ct_src, 1, MMSPCL_Q8_0, NULL) == 40, "clip q8_0");
}

/* progress: plain lines when stderr is not a terminal, at most ~20; none with --quiet */
static void test_good_progress(void) {
    char out2[512];
    int lines = 0, rc;
    const char *q;
    snprintf(out2, sizeof out2, "%s/progress.mmw", TMP);
    rc = convert("tests/data/roberta-tiny", out2, NULL);
    for (q = g_stderr; *q; q++) lines += *q == '\n';
    CHECK(rc == 0 && strstr(g_stderr, "converting: 37/37 tensors (100%)") && strstr(g_stderr, "(100%)\nmmspcl-convert: wrote") &&
          lines <= 20 && !strchr(g_stderr, '\r'), "progress lines (%d): %s", lines, g_stderr);
}

static void test_synthetic(void) {
    model m;
    char dir[512], out[600], p[700];
    int rc;
    mmspcl_weights *w = NULL;
    mmspcl_error err;
    const mmspcl_tensor *t;

    /* hidden 48 (not a multiple of 32), old gamma/beta names, an I64 position_ids (dropped
       silently), a classifier head (skipped with a note), q8_0 */
    snprintf(dir, sizeof dir, "%s/r48", TMP);
    test_run(NULL, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
    gen_roberta(&m, 10, 48, 64, 1, 8, 1, "F32");
    model_add(&m, "embeddings.position_ids", "I64", 2, 1, 8);
    model_add(&m, "classifier.dense.weight", "F32", 2, 48, 48);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    model_write(&m, p, -1);
    roberta_config(dir, 10, 48, 64, 1, 8, "roberta");
    snprintf(out, sizeof out, "%s/r48.mmw", TMP);
    rc = convert(dir, out, "--type q8_0");
    CHECK(rc == 0, "r48: %s", g_stderr);
    CHECK(strstr(g_stderr, "skipped 1 tensor the model does not use: classifier.dense.weight") != NULL,
          "r48: note about the classifier: %s", g_stderr);
    if (rc == 0 && mmspcl_weights_read(&w, out, &err) == MMSPCL_OK) {
        t = mmspcl_weights_find(w, "encoder.layer.0.attention.self.query.weight");
        CHECK(t && t->dtype == MMSPCL_F32, "r48: 48-wide query weight stays f32");
        t = mmspcl_weights_find(w, "encoder.layer.0.output.dense.weight");
        CHECK(t && t->dtype == MMSPCL_Q8_0 && t->ne[0] == 48 && t->ne[1] == 64, "r48: [48, 64] output.dense is q8_0");
        t = mmspcl_weights_find(w, "encoder.layer.0.intermediate.dense.weight");
        CHECK(t && t->dtype == MMSPCL_F32, "r48: [64, 48] intermediate stays f32");
        t = mmspcl_weights_find(w, "embeddings.LayerNorm.weight");
        {
            tt *g = model_find(&m, "embeddings.LayerNorm.gamma");
            CHECK(t && g && t->nbytes == 48 * 4 && memcmp(t->data, m.data + g->begin, 48 * 4) == 0,
                  "r48: LayerNorm.gamma -> LayerNorm.weight, bit-exact");
        }
        CHECK(mmspcl_weights_find(w, "encoder.layer.0.output.LayerNorm.bias") != NULL, "r48: beta -> bias");
        CHECK(w->n_tensors == 21, "r48: %lld tensors, want 21", (long long)w->n_tensors);
        mmspcl_weights_free(w);
        w = NULL;
    }
    /* an unknown tensor inside the encoder is refused */
    model_add(&m, "encoder.layer.0.attention.self.distance_embedding.weight", "F32", 2, 15, 6);
    model_write(&m, p, -1);
    expect_fail("unknown encoder tensor", dir, "unexpected tensor 'encoder.layer.0.attention.self.distance_embedding.weight'");
    free(m.data);

    /* a kept tensor with an integer dtype */
    gen_roberta(&m, 10, 32, 64, 1, 8, 0, "F32");
    snprintf(model_find(&m, "embeddings.LayerNorm.bias")->dtype, 16, "I32");
    model_write(&m, p, -1);
    roberta_config(dir, 10, 32, 64, 1, 8, "roberta");
    expect_fail("I32 tensor", dir, "tensor 'embeddings.LayerNorm.bias' (");
    expect_fail("I32 tensor", dir, "unsupported dtype I32");
    snprintf(model_find(&m, "embeddings.LayerNorm.bias")->dtype, 16, "Q3");
    model_write(&m, p, -1);
    expect_fail("unknown dtype", dir, "unsupported dtype Q3");
    free(m.data);

    /* F16 checkpoint generated here, converted with --type f16: Linear weights bit-identical */
    gen_roberta(&m, 10, 32, 64, 2, 8, 0, "F16");
    model_write(&m, p, -1);
    roberta_config(dir, 10, 32, 64, 2, 8, "roberta");
    rc = convert(dir, out, "--type f16 --quiet");
    CHECK(rc == 0, "synthetic f16: %s", g_stderr);
    if (rc == 0) {
        const char *src[1];
        src[0] = p;
        CHECK(check_against(out, src, 1, MMSPCL_F16, NULL) == 37, "synthetic f16 -> f16");
    }
    free(m.data);
}

static void test_tokenizer(void) {
    const char *bpe = shared_dir("roberta-bpe");
    char dir[512], out[600], p[700];
    mmspcl_weights *w = NULL;
    mmspcl_error err;
    const mmspcl_kv *kv;
    int rc;
    snprintf(dir, sizeof dir, "%s/tok", TMP);
    snprintf(out, sizeof out, "%s/tok.mmw", TMP);
    if (!bpe) {
        printf("note: ../shared/data/weights/roberta-bpe not found: the real-vocabulary test is skipped\n");
    } else {
        test_run(NULL, "rm -rf '%s' && mkdir -p '%s' && cp tests/data/roberta-tiny/config.json tests/data/roberta-tiny/model.safetensors "
                       "'%s/vocab.json' '%s/merges.txt' '%s/'", dir, dir, bpe, bpe, dir);
        rc = convert(dir, out, NULL);
        CHECK(rc == 0, "tokenizer: %s", g_stderr);
        CHECK(strstr(g_stderr, "note: the tokenizer has 50265 tokens but the embedding has 300 rows") != NULL,
              "tokenizer: vocab size note: %s", g_stderr);
        if (rc == 0 && mmspcl_weights_read(&w, out, &err) == MMSPCL_OK) {
            CHECK(strcmp(kv_str(w, "tokenizer.model"), "gpt2-bpe") == 0, "tokenizer.model");
            kv = mmspcl_weights_get(w, "tokenizer.vocab");
            CHECK(kv && kv->type == MMSPCL_KV_STR_ARRAY && kv->count == 50265, "vocab count");
            if (kv && kv->count == 50265) {
                CHECK(strcmp(kv->strs[31414], "Hello") == 0, "id 31414 = '%s'", kv->strs[31414]);
                CHECK(strcmp(kv->strs[50264], "<mask>") == 0, "id 50264 = '%s'", kv->strs[50264]);
                CHECK(strcmp(kv->strs[0], "<s>") == 0 && strcmp(kv->strs[1], "<pad>") == 0 && strcmp(kv->strs[2], "</s>") == 0,
                      "special ids 0..2");
                CHECK(strcmp(kv->strs[5], "\xc4\xa0the") == 0, "id 5 = 'Ġthe' (raw UTF-8): '%s'", kv->strs[5]);
            }
            kv = mmspcl_weights_get(w, "tokenizer.merges");
            CHECK(kv && kv->type == MMSPCL_KV_STR_ARRAY && kv->count == 50000, "merges count");
            if (kv && kv->count == 50000)
                CHECK(strcmp(kv->strs[0], "\xc4\xa0 t") == 0 && kv->lens[0] == 4, "first merge '%s'", kv->strs[0]);
            mmspcl_weights_free(w);
            w = NULL;
        }
    }
    /* tokenizer.json: merges as strings and as pairs, an added token past the model vocab */
    test_run(NULL, "rm -rf '%s' && mkdir -p '%s' && cp tests/data/roberta-tiny/config.json tests/data/roberta-tiny/model.safetensors '%s/'",
             dir, dir, dir);
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    /* (the merges' parts and results are tokens, and RoBERTa's five special tokens are there:
       the converter refuses a tokenizer the library would refuse or RoBERTa cannot use) */
    spit_str(p, "{\"version\": \"1.0\", \"added_tokens\": [{\"id\": 9, \"content\": \"<mask>\", \"special\": true},"
                " {\"id\": 4, \"content\": \"a\"}],\n"
                " \"model\": {\"type\": \"BPE\", \"vocab\": {\"<s>\": 0, \"<pad>\": 1, \"</s>\": 2, \"<unk>\": 3,"
                " \"a\": 4, \"b\": 5, \"ab\": 6, \"\\u0120\": 7, \"\\u0120a\": 8},\n"
                " \"merges\": [\"a b\", [\"\\u0120\", \"a\"]]}}");
    rc = convert(dir, out, "--quiet");
    CHECK(rc == 0, "tokenizer.json: %s", g_stderr);
    if (rc == 0 && mmspcl_weights_read(&w, out, &err) == MMSPCL_OK) {
        kv = mmspcl_weights_get(w, "tokenizer.vocab");
        CHECK(kv && kv->count == 10 && strcmp(kv->strs[8], "\xc4\xa0" "a") == 0 && strcmp(kv->strs[9], "<mask>") == 0,
              "tokenizer.json vocab");
        kv = mmspcl_weights_get(w, "tokenizer.merges");
        CHECK(kv && kv->count == 2 && strcmp(kv->strs[0], "a b") == 0 && strcmp(kv->strs[1], "\xc4\xa0 a") == 0,
              "tokenizer.json merges");
        mmspcl_weights_free(w);
        w = NULL;
    }
    spit_str(p, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 2}, \"merges\": []}}");
    expect_fail("vocab gap", dir, "token 'b' has id 2 but there are 2 tokens");
    spit_str(p, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []}}");
    expect_fail("vocab duplicate id", dir, "id 0 is given to both 'a' and 'b'");
    spit_str(p, "{\"model\": {\"type\": \"Unigram\", \"vocab\": [], \"merges\": []}}");
    expect_fail("not BPE", dir, "model type 'Unigram' is not supported");
    spit_str(p, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"ab\"]}}");
    expect_fail("bad merge", dir, "merge 1 'ab' is not two tokens separated by one space");
    remove(p);
    /* vocab.json + merges.txt by hand; "#version" header dropped, CRLF tolerated */
    snprintf(p, sizeof p, "%s/vocab.json", dir);
    spit_str(p, "{\"<s>\": 0, \"\\u0120\": 1, \"t\": 2, \"\\u0120t\": 3, \"<pad>\": 4, \"</s>\": 5, \"<unk>\": 6, \"<mask>\": 7}");
    snprintf(p, sizeof p, "%s/merges.txt", dir);
    spit_str(p, "#version: 0.2\r\n\xc4\xa0 t\r\n");
    rc = convert(dir, out, "--quiet");
    CHECK(rc == 0, "vocab.json + merges.txt: %s", g_stderr);
    if (rc == 0 && mmspcl_weights_read(&w, out, &err) == MMSPCL_OK) {
        kv = mmspcl_weights_get(w, "tokenizer.merges");
        CHECK(kv && kv->count == 1 && strcmp(kv->strs[0], "\xc4\xa0 t") == 0, "merges.txt: CRLF and header");
        kv = mmspcl_weights_get(w, "tokenizer.vocab");
        CHECK(kv && kv->count == 8 && strcmp(kv->strs[3], "\xc4\xa0t") == 0, "vocab.json");
        mmspcl_weights_free(w);
        w = NULL;
    }
    remove(p);
    expect_fail("vocab.json without merges.txt", dir, "has vocab.json but not merges.txt");
    snprintf(p, sizeof p, "%s/vocab.json", dir);
    spit_str(p, "{\"a\": 0, \"b\": 1,}");
    snprintf(p, sizeof p, "%s/merges.txt", dir);
    spit_str(p, "a b\n");
    expect_fail("bad vocab.json", dir, "vocab.json: byte 16 (line 1, column 17): expected a string key");
}

/* TMP/bad: roberta-tiny's config.json and a rewritten model.safetensors, broken one way at a
   time; the tests below leave the valid rewrite in place for the next one */
static void bad_dir(char *dir, size_t dn, char *p, size_t pn) {
    snprintf(dir, dn, "%s/bad", TMP);
    snprintf(p, pn, "%s/model.safetensors", dir);
}

/* broken safetensors files: truncations, header length, data_offsets, shapes, a tensor missing,
   the header JSON. 0 when roberta-tiny cannot be loaded (then the other bad-input tests are
   skipped too). */
static int test_bad_safetensors(void) {
    model m;
    char dir[512], p[700], q[700];
    unsigned char *buf;
    size_t n;
    tt *a, *b;
    const char *rt = "tests/data/roberta-tiny";

    bad_dir(dir, sizeof dir, p, sizeof p);
    test_run(NULL, "rm -rf '%s' && mkdir -p '%s' && cp %s/config.json '%s/'", dir, dir, rt, dir);
    if (model_load(&m, "tests/data/roberta-tiny/model.safetensors")) { CHECK(0, "cannot load roberta-tiny"); return 0; }

    /* the unmodified rewrite converts (the builder is sound) */
    model_write(&m, p, -1);
    snprintf(q, sizeof q, "%s/ok.mmw", TMP);
    CHECK(convert(dir, q, "--quiet") == 0, "rewritten roberta-tiny converts: %s", g_stderr);

    /* truncated: the data section ends early; a file cut inside the header; an empty file */
    buf = test_read_file(p, &n);
    test_write_file(p, buf, n - 100);
    expect_fail("truncated data", dir, "end past the data section");
    test_write_file(p, buf, 200);
    expect_fail("truncated header", dir, "runs past the end of the file");
    test_write_file(p, buf, 5);
    expect_fail("5-byte file", dir, "shorter than the 8-byte header length");
    free(buf);
    /* header length past the end / past 100 MB */
    model_write(&m, p, 1000000);
    expect_fail("header length past the end", dir, "header length 1000000 (bytes 0-7) runs past the end");
    /* overlapping data_offsets */
    a = model_find(&m, "embeddings.LayerNorm.weight");
    b = model_find(&m, "embeddings.LayerNorm.bias");
    {
        tt save = *a;
        a->begin = b->begin + 4;
        a->end = b->end + 4;
        model_write(&m, p, -1);
        expect_fail("overlap", dir, "overlap in the data section");
        /* out of range */
        a->begin = m.size - 64;
        a->end = m.size + 64;
        model_write(&m, p, -1);
        expect_fail("out of range", dir, "end past the data section");
        /* begin after end */
        a->begin = save.end;
        a->end = save.begin;
        model_write(&m, p, -1);
        expect_fail("begin > end", dir, "begin after end");
        /* size disagrees with the shape */
        a->begin = save.begin;
        a->end = save.end - 4;
        model_write(&m, p, -1);
        expect_fail("size mismatch", dir, "hold 124 bytes but F32 shape needs 128");
        *a = save;
        /* shapes that overflow */
        a->ndim = 3;
        a->shape[0] = a->shape[1] = a->shape[2] = (int64_t)1 << 32;
        model_write(&m, p, -1);
        expect_fail("shape overflow", dir, "shape overflows");
        a->ndim = 2;
        a->shape[0] = a->shape[1] = (int64_t)1 << 31;
        model_write(&m, p, -1);
        expect_fail("shape x dtype overflow", dir, "shape overflows (byte size");
        a->ndim = 1;
        a->shape[0] = -32;
        model_write(&m, p, -1);
        expect_fail("negative dim", dir, "shape[0] is not a non-negative integer");
        *a = save;
        /* a shape that disagrees with config.json */
        a->shape[0] = 16;
        a->end = a->begin + 64;
        model_write(&m, p, -1);
        expect_fail("shape vs config", dir, "tensor 'embeddings.LayerNorm.weight' (");
        expect_fail("shape vs config", dir, "has shape [16] but config.json implies [32] (hidden_size)");
        *a = save;
    }
    /* a tensor missing (pooler.* is not needed: rename one the encoder needs) */
    {
        tt *mt = model_find(&m, "encoder.layer.1.output.dense.bias"), save = *mt;
        snprintf(mt->name, sizeof mt->name, "pooler.extra");
        model_write(&m, p, -1);
        expect_fail("missing tensor", dir, "tensor 'encoder.layer.1.output.dense.bias' is missing from the checkpoint");
        *mt = save;
    }
    /* header JSON broken */
    {
        FILE *f = fopen(p, "wb");
        static const char h[] = "{\"a\": [1, 2";
        unsigned char l8[8] = {11, 0, 0, 0, 0, 0, 0, 0};
        fwrite(l8, 1, 8, f);
        fwrite(h, 1, 11, f);
        fclose(f);
        expect_fail("bad header JSON", dir, "JSON header (file bytes 8..19): byte 11");
        f = fopen(p, "wb");
        l8[0] = 2;
        fwrite(l8, 1, 8, f);
        fwrite("[]", 1, 2, f);
        fclose(f);
        expect_fail("header not an object", dir, "the JSON header must be an object, found array");
    }
    model_write(&m, p, -1);
    free(m.data);
    return 1;
}

/* config.json problems: truncated, model_type, sizes and layer counts that disagree with the
   tensors, a type error, deep nesting, missing */
static void test_bad_config(void) {
    char dir[512], p[700], q[700];
    size_t n;
    char *cfg;

    bad_dir(dir, sizeof dir, p, sizeof p);
    snprintf(q, sizeof q, "%s/config.json", dir);
    cfg = (char *)test_read_file("tests/data/roberta-tiny/config.json", &n);
    test_write_file(q, cfg, n / 2);
    expect_fail("truncated config.json", dir, "config.json: byte");
    spit_str(q, "{\"model_type\": \"bert\", \"hidden_size\": 32}");
    expect_fail("unknown model_type", dir, "model_type 'bert' is not supported");
    expect_fail("unknown model_type names tensors", dir, "found 'embeddings.LayerNorm.bias'");
    spit_str(q, "{\"hidden_size\": 32, \"num_attention_heads\": 4}");
    {
        /* no model_type: the layout is recognised from the tensor names; defaults fail the shape check */
        expect_fail("no model_type, defaults", dir, "config and weights do not match");
    }
    {
        char *s = (char *)malloc(n + 64), *at;
        memcpy(s, cfg, n);
        s[n] = 0;
        at = strstr(s, "\"hidden_size\": 32");
        memcpy(at, "\"hidden_size\": 64", 17);
        spit_str(q, s);
        expect_fail("hidden_size mismatch", dir, "has shape [300, 32] but config.json implies [300, 64]");
        memcpy(at, "\"hidden_size\": 32", 17);
        at = strstr(s, "\"num_hidden_layers\": 2");
        memcpy(at, "\"num_hidden_layers\": 1", 22);
        spit_str(q, s);
        expect_fail("layer count (fewer)", dir, "num_hidden_layers = 1 but the checkpoint has layer encoder.layer.1.*");
        memcpy(at, "\"num_hidden_layers\": 3", 22);
        spit_str(q, s);
        expect_fail("layer count (more)", dir, "num_hidden_layers = 3 but the checkpoint has only 2 layers");
        memcpy(at, "\"num_hidden_layers\": 2", 22);
        at = strstr(s, "\"hidden_act\": \"gelu\"");
        memcpy(at, "\"hidden_act\": 12345 ", 20);
        spit_str(q, s);
        expect_fail("config type error", dir, "\"hidden_act\" (byte");
        free(s);
    }
    {
        char deep[700];
        memset(deep, '[', 600);
        deep[600] = 0;
        spit_str(q, deep);
        expect_fail("deep JSON config", dir, "nesting deeper than 256 levels");
    }
    test_write_file(q, cfg, n);
    free(cfg);
    remove(q);
    expect_fail("missing config.json", dir, "config.json: not found");
}

/* unknown layout: no model_type, tensors that are neither RoBERTa nor CLIP; then no weights at all */
static void test_bad_layout(void) {
    char dir[512], p[700], q[700];
    model g;

    bad_dir(dir, sizeof dir, p, sizeof p);
    snprintf(q, sizeof q, "%s/config.json", dir);
    spit_str(q, "{\"hidden_size\": 4}");
    memset(&g, 0, sizeof g);
    model_add(&g, "transformer.h.0.attn.c_attn.weight", "F32", 2, 4, 12);
    model_write(&g, p, -1);
    free(g.data);
    expect_fail("unknown layout", dir, "match neither the RoBERTa nor the CLIP layout; found 'transformer.h.0.attn.c_attn.weight'");
    spit_str(q, "{\"model_type\": \"roberta\"}");
    expect_fail("roberta without its tensors", dir, "has no 'embeddings.word_embeddings.weight'");
    spit_str(q, "{\"model_type\": \"clip\"}");
    expect_fail("clip without its tensors", dir, "has no 'vision_model.embeddings.patch_embedding.weight'");

    /* no weights at all */
    test_run(NULL, "rm -f '%s/model.safetensors'", dir);
    expect_fail("no weights", dir, "no weights found");
    expect_fail("no such folder", "build/tests/tmp/convert/does-not-exist", "no such file or folder");
}

/* sharded: missing shard, bad index JSON, tensor in the wrong shard */
static void test_bad_sharded(void) {
    char dir[512], q[700];
    snprintf(dir, sizeof dir, "%s/bad-sharded", TMP);
    test_run(NULL, "rm -rf '%s' && mkdir -p '%s' && cp tests/data/roberta-tiny-sharded/* '%s/' && rm '%s/model-00002-of-00002.safetensors'",
             dir, dir, dir, dir);
    expect_fail("missing shard", dir, "shard 'model-00002-of-00002.safetensors' (holding tensor 'encoder.layer.1.");
    expect_fail("missing shard", dir, "is missing");
    test_run(NULL, "cp tests/data/roberta-tiny-sharded/model-00002-of-00002.safetensors '%s/'", dir);
    snprintf(q, sizeof q, "%s/model.safetensors.index.json", dir);
    spit_str(q, "{\"metadata\": {}, \"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\",,}}");
    expect_fail("bad index JSON", dir, "model.safetensors.index.json: byte 72 (line 1, column 73): expected a string key, found ','");
    spit_str(q, "{\"metadata\": {}}");
    expect_fail("index without weight_map", dir, "no \"weight_map\"");
    spit_str(q, "{\"weight_map\": {\"embeddings.LayerNorm.bias\": \"model-00001-of-00002.safetensors\",\n"
                "  \"embeddings.word_embeddings.weight\": \"model-00002-of-00002.safetensors\"}}");
    expect_fail("tensor in the wrong shard", dir, "should be in shard 'model-00002-of-00002.safetensors' but another shard holds it");
    spit_str(q, "{\"weight_map\": {\"embeddings.nope\": \"model-00001-of-00002.safetensors\"}}");
    expect_fail("tensor in no shard", dir, "tensor 'embeddings.nope' should be in shard 'model-00001-of-00002.safetensors' but no shard holds it");
    spit_str(q, "{\"weight_map\": {\"x\": \"../../etc/passwd\"}}");
    expect_fail("shard outside the folder", dir, "must name a shard file in the same folder");
}

/* output not writable: its folder is a regular file (works as root too), a read-only folder, a
   folder as OUT; and bad arguments */
static void test_bad_output(void) {
    const char *rt = "tests/data/roberta-tiny";
    char dir[512], p[700], out[800];
    int rc;
    snprintf(p, sizeof p, "%s/a-file", TMP);
    spit_str(p, "x");
    snprintf(out, sizeof out, "%s/out.mmw", p);
    rc = convert(rt, out, "--quiet");
    CHECK(rc == 1 && strstr(g_stderr, "cannot create the output"), "unwritable output: rc %d: %s", rc, g_stderr);
    if (geteuid() != 0) {
        snprintf(dir, sizeof dir, "%s/ro", TMP);
        test_run(NULL, "mkdir -p '%s' && chmod 555 '%s'", dir, dir);
        snprintf(out, sizeof out, "%s/out.mmw", dir);
        rc = convert(rt, out, "--quiet");
        CHECK(rc == 1 && strstr(g_stderr, "cannot create the output") && !exists(out), "read-only folder: %s", g_stderr);
        test_run(NULL, "chmod 755 '%s'", dir);
    }
    /* a folder as OUT */
    rc = convert(rt, TMP, "--quiet");
    CHECK(rc == 1 && strstr(g_stderr, "is a folder"), "OUT is a folder: %s", g_stderr);
    /* bad arguments */
    rc = test_run(NULL, "%s tests/data/roberta-tiny %s/x.mmw --type q5_1 2>/dev/null", CONV, TMP);
    CHECK(rc == 2 && !exists(TMP "/x.mmw"), "--type q5_1 refused (rc %d)", rc);
    rc = test_run(NULL, "%s tests/data/roberta-tiny 2>/dev/null", CONV);
    CHECK(rc == 2, "one argument: usage (rc %d)", rc);
}

int main(void) {
    if (!getcwd(g_cwd, sizeof g_cwd)) g_cwd[0] = 0;
    if (!exists(CONV)) {
        CHECK(0, "%s not built (run make test)", CONV);
        return TEST_END();
    }
    test_run(NULL, "rm -rf " TMP " && mkdir -p " TMP);
    test_json();
    test_safetensors_reader();
    test_quant_by_hand();
    test_good_roberta();
    test_good_roberta_layouts();
    test_good_half();
    test_good_panels();
    test_good_quantized();
    test_good_clip();
    test_good_clip_layouts();
    test_good_progress();
    test_synthetic();
    test_tokenizer();
    if (test_bad_safetensors()) {
        test_bad_config();
        test_bad_layout();
        test_bad_sharded();
        test_bad_output();
    }
    return TEST_END();
}
