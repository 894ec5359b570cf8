/* RoBERTa encoder against PyTorch: tests/data/roberta-tiny* (tools/reference/roberta_ref.py)
   are converted with build/mmspcl-convert and run through mmspcl_roberta_forward.
   Bounds (f32, f16, bf16 checkpoints): max |diff| <= 1e-4 * max |ref| over each sequence and
   cosine >= 0.99999 per token. Conversions: cosine per token >= 0.9999 (--type f16, --type bf16: bf16 x bf16 compute), 0.999
   (q8_0), 0.98 (q4_0).
   f32 with --panels (Linear weights in panels of 16 rows): the same bits as plain f32. */
#define MMSPCL_IMPLEMENTATION
#include "mmspcl.h"
#include "tests/test.h"
#include <stdlib.h>
#include <string.h>

#define MAXB 8
typedef struct {
    int batch, seq, hidden;
    int n[MAXB];
    int32_t ids[MAXB][512];
    float *ref[MAXB];   /* n[b] x hidden */
} expected;

static int read_expected(const char *path, expected *e) {
    FILE *f = fopen(path, "r");
    char word[64];
    int b = -1;
    memset(e, 0, sizeof *e);
    if (!f) return -1;
    while (fscanf(f, "%63s", word) == 1) {
        if (word[0] == '#') { int ch; while ((ch = fgetc(f)) != '\n' && ch != EOF) {} continue; }
        if (!strcmp(word, "batch")) { if (fscanf(f, "%d %d", &e->batch, &e->seq) != 2) break; }
        else if (!strcmp(word, "input")) {
            int i;
            b++;
            if (b >= MAXB || fscanf(f, "%d", &e->n[b]) != 1 || e->n[b] > 512) break;
            for (i = 0; i < e->n[b]; i++) if (fscanf(f, "%d", &e->ids[b][i]) != 1) break;
        } else if (!strcmp(word, "hidden")) {
            int n, i;
            if (fscanf(f, "%d %d", &n, &e->hidden) != 2 || n != e->n[b]) break;
            e->ref[b] = (float *)malloc((size_t)n * e->hidden * sizeof(float));
            for (i = 0; i < n * e->hidden; i++) if (fscanf(f, "%f", &e->ref[b][i]) != 1) break;
        } else if (!strcmp(word, "pooled")) {
            int n, i; float dummy;
            if (fscanf(f, "%d", &n) != 1) break;
            for (i = 0; i < n; i++) if (fscanf(f, "%f", &dummy) != 1) break;
        }
    }
    fclose(f);
    return b + 1 == e->batch ? 0 : -1;
}

static void free_expected(expected *e) { int b; for (b = 0; b < MAXB; b++) free(e->ref[b]); }

/* Converts SRC with --type TYPE (panels: and --panels) and compares every real token with the
   reference; keep (may be NULL) receives the hidden states (free them). */
static void check_model_as(const char *src, const char *type, int panels, const expected *e, double min_cos, int exact,
                           float **keep) {
    char cmd[512], out[256];
    mmspcl_weights *w = NULL;
    mmspcl_roberta *m = NULL;
    mmspcl_error err;
    int32_t *ids;
    int lengths[MAXB], b, t;
    float *hidden;
    snprintf(out, sizeof out, "build/tests/tmp/%s-%s%s.mmw", strrchr(src, '/') + 1, type, panels ? "p" : "");
    snprintf(cmd, sizeof cmd, "build/mmspcl-convert %s %s --type %s%s --quiet", src, out, type, panels ? " --panels" : "");
    CHECK(system(cmd) == 0, "%s", cmd);
    if (mmspcl_weights_open(&w, out, &err)) { CHECK(0, "open %s: %s", out, err.msg); return; }
    if (panels) {
        const mmspcl_tensor *q = mmspcl_weights_find(w, "encoder.layer.0.attention.self.query.weight");
        CHECK(q && mmspcl_tensor_is_panels(q) && mmspcl_matrix_rows(q) == e->hidden && q->ne[1] == e->hidden,
              "%s: Linear weights stored as panels", out);
    }
    if (mmspcl_roberta_load(&m, w, e->batch, e->seq, &err)) { CHECK(0, "load %s: %s", out, err.msg); mmspcl_weights_free(w); return; }
    ids = (int32_t *)calloc((size_t)e->batch * e->seq, sizeof *ids);
    hidden = (float *)malloc((size_t)e->batch * e->seq * e->hidden * sizeof(float));
    for (b = 0; b < e->batch; b++) {
        for (t = 0; t < e->seq; t++) ids[b * e->seq + t] = t < e->n[b] ? e->ids[b][t] : 1;
        lengths[b] = e->n[b];
    }
    CHECK(mmspcl_roberta_forward(m, ids, lengths, e->batch, e->seq, hidden, &err) == MMSPCL_OK, "forward: %s", err.msg);
    for (b = 0; b < e->batch; b++) {
        double maxref = 0, maxdiff = 0, mincos = 1;
        for (t = 0; t < e->n[b] * e->hidden; t++) {
            double d = fabs(hidden[(size_t)b * e->seq * e->hidden + t] - e->ref[b][t]);
            maxref = fmax(maxref, fabs(e->ref[b][t]));
            maxdiff = fmax(maxdiff, d);
        }
        for (t = 0; t < e->n[b]; t++)
            mincos = fmin(mincos, test_cosine(hidden + ((size_t)b * e->seq + t) * e->hidden, e->ref[b] + (size_t)t * e->hidden,
                                                    (size_t)e->hidden));
        if (exact) CHECK(maxdiff <= 1e-4 * maxref, "%s %s seq %d: max diff %g > 1e-4 * %g", src, type, b, maxdiff, maxref);
        CHECK(mincos >= min_cos, "%s %s seq %d: min cosine %.7f < %g", src, type, b, mincos, min_cos);
        printf("  %-34s %-5s seq %d (%2d tokens): max|diff| %.3g (max|ref| %.3g), min cosine %.8f\n",
               src, panels ? "f32p" : type, b, e->n[b], maxdiff, maxref, mincos);
    }
    {   /* one thread must give the same bits as many */
        float *h1 = (float *)malloc((size_t)e->batch * e->seq * e->hidden * sizeof(float));
        int saved = mmspcl_threads();
        mmspcl_set_threads(1);
        mmspcl_roberta_forward(m, ids, lengths, e->batch, e->seq, h1, &err);
        mmspcl_set_threads(saved > 1 ? saved : 2);
        CHECK(memcmp(h1, hidden, (size_t)e->batch * e->seq * e->hidden * sizeof(float)) == 0, "%s: 1 thread differs from %d", type, saved);
        mmspcl_set_threads(saved);
        free(h1);
    }
    free(ids);
    if (keep) *keep = hidden;
    else free(hidden);
    mmspcl_roberta_free(m);
    mmspcl_weights_free(w);
}

static void check_model(const char *src, const char *type, const expected *e, double min_cos, int exact) {
    check_model_as(src, type, 0, e, min_cos, exact, NULL);
}

int main(int argc, char **argv) {
    expected e;
    static const struct { const char *dir; } variants[] = {
        {"tests/data/roberta-tiny"}, {"tests/data/roberta-tiny-f16"}, {"tests/data/roberta-tiny-bf16"}};
    size_t i;
    if (system("mkdir -p build/tests/tmp") != 0) return 1;
    if (argc > 1) {   /* one-off check of a big reference folder (e.g. roberta_ref.py --large) */
        char path[512];
        snprintf(path, sizeof path, "%s/expected.txt", argv[1]);
        CHECK(read_expected(path, &e) == 0, "cannot read %s", path);
        check_model(argv[1], argc > 2 ? argv[2] : "f32", &e, argc > 2 && strcmp(argv[2], "f32") ? (strcmp(argv[2], "q4_0") ? 0.999 : 0.98) : 0.99999,
                    argc <= 2 || !strcmp(argv[2], "f32"));
        free_expected(&e);
        return TEST_END();
    }
    for (i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/expected.txt", variants[i].dir);
        CHECK(read_expected(path, &e) == 0, "cannot read %s", path);
        if (i == 0) {   /* f32 Linear weights in panels: the same bits as the 2-D weights */
            float *flat = NULL, *pan = NULL;
            check_model_as(variants[i].dir, "f32", 0, &e, 0.99999, 1, &flat);
            check_model_as(variants[i].dir, "f32", 1, &e, 0.99999, 1, &pan);
            CHECK(flat && pan && !memcmp(flat, pan, (size_t)e.batch * e.seq * e.hidden * sizeof(float)),
                  "roberta-tiny: --panels gives other bits than the 2-D f32 weights");
            free(flat); free(pan);
        } else {
            check_model(variants[i].dir, "f32", &e, 0.99999, 1);
        }
        if (i == 0) {
            check_model(variants[i].dir, "f16", &e, 0.9999, 0);
            check_model(variants[i].dir, "bf16", &e, 0.9999, 0);   /* bf16 x bf16 compute */
            check_model(variants[i].dir, "q8_0", &e, 0.999, 0);
            check_model(variants[i].dir, "q4_0", &e, 0.98, 0);
        }
        free_expected(&e);
    }
    {   /* the CLI: encode-text --ids writes [tokens x hidden] float32 equal to the reference */
        char cmd[1024];
        int n = 0, t;
        float got[11 * 32];
        FILE *f;
        CHECK(read_expected("tests/data/roberta-tiny/expected.txt", &e) == 0, "expected.txt");
        n = snprintf(cmd, sizeof cmd, "build/mmspcl encode-text -m build/tests/tmp/roberta-tiny-f32.mmw -o build/tests/tmp/cli.f32 --ids \"");
        for (t = 0; t < e.n[0]; t++) n += snprintf(cmd + n, sizeof cmd - (size_t)n, "%d ", e.ids[0][t]);
        snprintf(cmd + n, sizeof cmd - (size_t)n, "\"");
        CHECK(e.n[0] == 11 && system(cmd) == 0, "%s", cmd);
        f = fopen("build/tests/tmp/cli.f32", "rb");
        CHECK(f && fread(got, sizeof(float), 11 * 32, f) == 11 * 32 && fgetc(f) == EOF, "cli.f32 has 11 x 32 floats");
        if (f) fclose(f);
        for (t = 0, n = 0; t < 11 * 32; t++) n += fabs(got[t] - e.ref[0][t]) <= 1e-4 * 4;
        CHECK(n == 11 * 32, "encode-text output differs from the reference (%d of %d close)", n, 11 * 32);
        CHECK(system("build/mmspcl encode-text -m build/tests/tmp/roberta-tiny-f32.mmw --ids \"0 7 2\" --mask-only 2>/dev/null") != 0,
              "--mask-only without a <mask> fails");
        free_expected(&e);
    }
    {   /* bad arguments are refused with a message, not a crash */
        mmspcl_weights *w;
        mmspcl_roberta *m;
        mmspcl_error err;
        int32_t ids[4] = {0, 5000, 2, 1};
        int len = 3;
        float h[4 * 64];
        if (mmspcl_weights_open(&w, "build/tests/tmp/roberta-tiny-f32.mmw", &err) == MMSPCL_OK) {
            CHECK(mmspcl_roberta_load(&m, w, 1, 4, &err) == MMSPCL_OK, "%s", err.msg);
            CHECK(mmspcl_roberta_forward(m, ids, &len, 1, 4, h, &err) == MMSPCL_ERR_ARG && strstr(err.msg, "5000"),
                  "out-of-vocabulary id: %s", err.msg);
            len = 9;
            CHECK(mmspcl_roberta_forward(m, ids, &len, 1, 4, h, &err) == MMSPCL_ERR_ARG, "length past seq");
            mmspcl_roberta_free(m);
            CHECK(mmspcl_roberta_load(&m, w, 1, 1000, &err) == MMSPCL_ERR_ARG, "max_seq past the positions");
            mmspcl_weights_free(w);
        }
    }
    return TEST_END();
}
