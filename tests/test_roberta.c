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

/* ---- packing: a batch is its sequences side by side -------------------------------------------
   A random RoBERTa in memory (hidden 64, 2 heads of 32: the AVX-512 attention takes them; FFN n_ffn)
   with Linear weights of type dt (FFN 132: GELU's SIMD code leaves 4 values of each row to the
   definition). Sequences of lengths 1, 7, 13, 2, 31, 5 in one packed batch must
   give the same bits as each alone (a batch of 1), and mmspcl_roberta_forward_rows the same bits as
   the rows of the whole forward. */
static uint64_t pk_rng = 0x9e3779b97f4a7c15ull;
static float pk_rand(void) {
    pk_rng ^= pk_rng << 13; pk_rng ^= pk_rng >> 7; pk_rng ^= pk_rng << 17;
    return (float)((pk_rng >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

static void pk_add(mmspcl_writer *w, const char *name, mmspcl_dtype dt, int64_t rows, int64_t cols, float scale,
                   float offset, void **keep) {   /* rows 0: a vector of cols */
    const int ndim = rows ? 2 : 1;
    const size_t rb = mmspcl_dtype_row_size(dt, cols);
    float *f = (float *)malloc(sizeof(float) * (size_t)cols);
    unsigned char *q = (unsigned char *)malloc(rb * (size_t)(rows ? rows : 1));
    int64_t shape[2], r, i;
    mmspcl_error err;
    if (!rows) rows = 1;
    shape[0] = rows; shape[1] = cols;
    for (r = 0; r < rows; r++) {
        for (i = 0; i < cols; i++) f[i] = offset + scale * pk_rand();
        mmspcl_quantize_row(dt, f, q + (size_t)r * rb, cols);
    }
    free(f);
    *keep = q;
    CHECK(mmspcl_writer_add_tensor(w, name, dt, ndim, ndim == 1 ? shape + 1 : shape, q,
                                   rb * (size_t)rows, &err) == MMSPCL_OK, "%s: %s", name, err.msg);
}

static void check_packing(mmspcl_dtype dt, int n_ffn) {
    enum { H = 64, V = 60, NL = 2, NB = 6, SEQ = 31 };
    static const int lens[NB] = {1, 7, 13, 2, 31, 5};
    mmspcl_writer *w = mmspcl_writer_create();
    mmspcl_weights *wt = NULL;
    mmspcl_roberta *m = NULL;
    mmspcl_error err;
    void *keep[8 + NL * 16];
    unsigned char *bytes = NULL;
    size_t size = 0;
    int nk = 0, l, i, b, t, rows[NB], same_alone = 1, same_rows = 1;
    int32_t ids[NB * SEQ];
    char name[96];
    float *full = (float *)malloc(sizeof(float) * NB * SEQ * H), *one = (float *)malloc(sizeof(float) * SEQ * H);
    float sel[NB * H];
    mmspcl_writer_set_str(w, "general.architecture", "roberta");
    mmspcl_writer_set_int(w, "roberta.vocab_size", V);
    mmspcl_writer_set_int(w, "roberta.hidden_size", H);
    mmspcl_writer_set_int(w, "roberta.num_hidden_layers", NL);
    mmspcl_writer_set_int(w, "roberta.num_attention_heads", 2);
    mmspcl_writer_set_int(w, "roberta.intermediate_size", n_ffn);
    mmspcl_writer_set_int(w, "roberta.max_position_embeddings", 40);
    mmspcl_writer_set_int(w, "roberta.type_vocab_size", 1);
    mmspcl_writer_set_int(w, "roberta.pad_token_id", 1);
    pk_add(w, "embeddings.word_embeddings.weight", MMSPCL_F32, V, H, 0.5f, 0, &keep[nk++]);
    pk_add(w, "embeddings.position_embeddings.weight", MMSPCL_F32, 40, H, 0.5f, 0, &keep[nk++]);
    pk_add(w, "embeddings.token_type_embeddings.weight", MMSPCL_F32, 1, H, 0.5f, 0, &keep[nk++]);
    pk_add(w, "embeddings.LayerNorm.weight", MMSPCL_F32, 0, H, 0.1f, 1, &keep[nk++]);
    pk_add(w, "embeddings.LayerNorm.bias", MMSPCL_F32, 0, H, 0.1f, 0, &keep[nk++]);
    for (l = 0; l < NL; l++) {
        static const char *const mats[] = {"attention.self.query", "attention.self.key", "attention.self.value",
                                           "attention.output.dense", "intermediate.dense", "output.dense"};
        static const char *const lns[] = {"attention.output.LayerNorm", "output.LayerNorm"};
        for (i = 0; i < 6; i++) {
            const int out = i == 4 ? n_ffn : H, in = i == 5 ? n_ffn : H;
            snprintf(name, sizeof name, "encoder.layer.%d.%s.weight", l, mats[i]);
            pk_add(w, name, dt, out, in, sqrtf(3.0f / (float)in), 0, &keep[nk++]);
            snprintf(name, sizeof name, "encoder.layer.%d.%s.bias", l, mats[i]);
            pk_add(w, name, MMSPCL_F32, 0, out, 0.1f, 0, &keep[nk++]);
        }
        for (i = 0; i < 2; i++) {
            snprintf(name, sizeof name, "encoder.layer.%d.%s.weight", l, lns[i]);
            pk_add(w, name, MMSPCL_F32, 0, H, 0.1f, 1, &keep[nk++]);
            snprintf(name, sizeof name, "encoder.layer.%d.%s.bias", l, lns[i]);
            pk_add(w, name, MMSPCL_F32, 0, H, 0.1f, 0, &keep[nk++]);
        }
    }
    CHECK(mmspcl_writer_save_to_memory(w, &bytes, &size, &err) == MMSPCL_OK, "save: %s", err.msg);
    CHECK(mmspcl_weights_from_memory(&wt, bytes, size, &err) == MMSPCL_OK, "open: %s", err.msg);
    CHECK(wt && mmspcl_roberta_load(&m, wt, NB, SEQ, &err) == MMSPCL_OK, "load: %s", err.msg);
    for (b = 0; b < NB; b++) {
        for (t = 0; t < SEQ; t++) ids[b * SEQ + t] = t < lens[b] ? 3 + (int32_t)((pk_rand() + 1.0f) * 0.5f * (V - 4)) : 1;
        rows[b] = (lens[b] * 5 + 3) % lens[b];
    }
    if (m) {
        CHECK(mmspcl_roberta_forward(m, ids, lens, NB, SEQ, full, &err) == MMSPCL_OK, "packed forward: %s", err.msg);
        for (b = 0; b < NB; b++) {   /* each alone, ids and output of its own length */
            CHECK(mmspcl_roberta_forward(m, ids + b * SEQ, &lens[b], 1, lens[b], one, &err) == MMSPCL_OK, "alone: %s", err.msg);
            same_alone &= !memcmp(one, full + (size_t)b * SEQ * H, sizeof(float) * (size_t)lens[b] * H);
        }
        CHECK(mmspcl_roberta_forward_rows(m, ids, lens, NB, SEQ, rows, sel, &err) == MMSPCL_OK, "rows: %s", err.msg);
        for (b = 0; b < NB; b++) same_rows &= !memcmp(sel + b * H, full + ((size_t)b * SEQ + rows[b]) * H, sizeof(float) * H);
        CHECK(mmspcl_roberta_forward_rows(m, ids + 2 * SEQ, &lens[2], 1, SEQ, &rows[2], sel, &err) == MMSPCL_OK, "rows, batch of 1");
        same_rows &= !memcmp(sel, full + ((size_t)2 * SEQ + rows[2]) * H, sizeof(float) * H);
        CHECK(same_alone, "%s FFN %d: a sequence in a packed batch differs from the same sequence alone", mmspcl_dtype_name(dt), n_ffn);
        CHECK(same_rows, "%s FFN %d: forward_rows differs from the rows of the whole forward", mmspcl_dtype_name(dt), n_ffn);
        rows[3] = lens[3];
        CHECK(mmspcl_roberta_forward_rows(m, ids, lens, NB, SEQ, rows, sel, &err) == MMSPCL_ERR_ARG && strstr(err.msg, "row 2"),
              "a row past its sequence is refused: %s", err.msg);
        printf("  packing %-5s FFN %3d: %d sequences (1..31 tokens) packed = alone, forward_rows = rows: %s\n",
               mmspcl_dtype_name(dt), n_ffn, NB, same_alone && same_rows ? "same bits" : "DIFFER");
    }
    mmspcl_roberta_free(m);
    mmspcl_weights_free(wt);
    mmspcl_free(bytes);
    mmspcl_writer_free(w);
    for (i = 0; i < nk; i++) free(keep[i]);
    free(full); free(one);
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
    check_packing(MMSPCL_F32, 132);    /* 132 = 16 x 8 + 4: GELU leaves a tail per row */
    check_packing(MMSPCL_BF16, 132);
    check_packing(MMSPCL_Q8_0, 160);
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
