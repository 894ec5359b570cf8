/* SPCL fine-tuning of a converted RoBERTa (mmspcl_train.h section 11, the recipe's step):
   1. dropout masks (mmspcl_roberta_train_dropout): rate p, values 0 and 1/(1-p), mean 1,
      deterministic from the key, different for another key or site; a training-mode forward
      with p = 0 is the evaluation forward bit for bit, with p > 0 it repeats under the same key;
      the backward with dropout on against central finite differences;
   2. mmspcl_roberta_train_from_weights: RobertaModel and RobertaForMaskedLM conversions give the
      same trainer, whose forward is mmspcl_roberta_forward's; f16 and bf16 matrices are read
      exactly; q8_0, a CLIP file and sequences past the position table are refused by name;
   3. freezing the bottom layers: no gradient and no AdamW step below, the same gradient above;
   4. exact against PyTorch autograd (tools/reference/spcl_finetune_ref.py, llm.c's test_gpt2
      way): one SPCL step of a small odd-sized RoBERTa on real MELD prompts, queues longer than K
      with the reference's seeded draws, CE heads on detached features, dropout off and on:
      the losses (<= 1e-5 relative), the gradient of every tensor (max |diff| <= 1e-4 max |ref|),
      the weights after clipping and one AdamW step with the decay mask (<= 1e-5 max |ref|);
   4b. the same step with a fusion head trained with the encoder (spcl_joint_ref.py: the SPCL
      loss and the heads on z = fusion(z_t, a, v), a Linear fusion head, and cross-modal pruning
      with a common projection before it): the fused z, the heads pruned, the losses, the
      gradient of every encoder and fusion tensor, the weights after clipping and AdamW;
   5. the augmentation prompts (mmspcl_spcl_prompts_query) against tools/reference/spcl_query_ref.py.
   Needs build/mmspcl-convert (make test builds it) and ../shared/data for part 5. */
#define MMSPCL_IMPLEMENTATION
#define MMSPCL_TRAIN_IMPLEMENTATION
#include "mmspcl.h"
#include "mmspcl_train.h"
#include "tools/convert/safetensors.c"
#define MELD_CSV_IMPLEMENTATION
#include "tools/train/meld_csv.h"
#include "tests/test.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TMP "build/tests/tmp/finetune"
#define REF "tests/data/finetune"

/* ---- 1. dropout ------------------------------------------------------------------------------ */
static void test_dropout_masks(void) {
    const float ps[3] = {0.1f, 0.5f, 0.9f};
    int k;
    for (k = 0; k < 3; k++) {
        const float p = ps[k], keep = 1.0f / (1.0f - p);
        const uint64_t n = 1u << 20;
        uint64_t i, zeros = 0, odd = 0, same_key = 0, same_site = 0;
        double mean = 0.0, rate;
        for (i = 0; i < n; i++) {
            const float a = mmspcl_roberta_train_dropout(42, 3, i, p);
            zeros += a == 0.0f;
            odd += a != 0.0f && a != keep;
            mean += a;
            same_key += (mmspcl_roberta_train_dropout(43, 3, i, p) == 0.0f) == (a == 0.0f);
            same_site += (mmspcl_roberta_train_dropout(42, 4, i, p) == 0.0f) == (a == 0.0f);
        }
        rate = (double)zeros / n;
        mean /= n;
        /* binomial: sd of the rate sqrt(p(1-p)/n) <= 5e-4; of the mean sd(mask) / sqrt(n) */
        CHECK(fabs(rate - p) < 3e-3, "dropout p=%.1f: rate %.5f", p, rate);
        CHECK(odd == 0, "dropout p=%.1f: %llu values neither 0 nor 1/(1-p) = %.9g", p, (unsigned long long)odd, keep);
        CHECK(fabs(mean - 1.0) < 6.0 * sqrt(p / (1.0 - p) / n), "dropout p=%.1f: mean mask %.6f (1/(1-p) scaling)", p, mean);
        /* another key or site: independent masks (agreement p^2 + (1-p)^2) */
        CHECK(fabs((double)same_key / n - (p * p + (1 - p) * (1 - p))) < 3e-3, "dropout p=%.1f: key 43 independent of 42", p);
        CHECK(fabs((double)same_site / n - (p * p + (1 - p) * (1 - p))) < 3e-3, "dropout p=%.1f: site 4 independent of 3", p);
        printf("  dropout p=%.1f: rate %.5f over 2^20, values {0, %.7f}, mean %.5f\n", p, rate, keep, mean);
    }
    CHECK(mmspcl_roberta_train_dropout(42, 3, 7, 0.3f) == mmspcl_roberta_train_dropout(42, 3, 7, 0.3f) &&
              mmspcl_roberta_train_dropout(1, 0, 0, 0.0f) == 1.0f && mmspcl_roberta_train_dropout(1, 0, 0, -1.0f) == 1.0f,
          "dropout: deterministic; p <= 0 keeps everything");
}

/* the mask rows of the passes (AVX-512 F + DQ where the CPU has them) against the definition:
   the same values for odd lengths, high indices and sites, rates near 0 and 1 */
static void test_mask_rows(void) {
    static const float ps[5] = {1e-7f, 0.1f, 0.5f, 0.9f, 0.9999999f};
    static const int ns[6] = {1, 7, 15, 16, 17, 333};
    float a[333], b[333], v[333];
    int k, t, bad = 0;
    for (k = 0; k < 5; k++)
        for (t = 0; t < 6; t++) {
            const uint64_t key = 0x123456789ull * (uint64_t)(k + 1) + (uint64_t)t, index0 = (uint64_t)t << (8 * t);
            const uint32_t site = 37u * (uint32_t)(k + t);
            mmspcl__rt_mask_scalar(a, key, site, index0, ns[t], ps[k]);
            mmspcl__rt_mask_row(b, key, site, index0, ns[t], ps[k], 1);
            bad += memcmp(a, b, sizeof(float) * (size_t)ns[t]) != 0;
        }
    CHECK(!bad, "dropout mask rows: %d of 30 differ from mmspcl_roberta_train_dropout", bad);
    for (t = 0, bad = 0; t < 6; t++) {   /* attention's o += p v: the AVX2 loop has the scalar one's bits */
        for (k = 0; k < ns[t]; k++) { a[k] = b[k] = 0.01f * (float)(k % 13) - 0.05f; v[k] = 0.3f - 0.007f * (float)k; }
        mmspcl__rt_axpy(a, 0.37f, v, ns[t], 0);
        mmspcl__rt_axpy(b, 0.37f, v, ns[t], 1);
        bad += memcmp(a, b, sizeof(float) * (size_t)ns[t]) != 0;
    }
    CHECK(!bad, "attention axpy: %d of 6 lengths differ from the scalar loop", bad);
}

#define FB 3
#define FS 7
static const int f_lens[FB] = {5, 3, 7};
static const int32_t f_ids[FB][FS] = {{0, 5, 7, 4, 2, 1, 1}, {0, 9, 2, 1, 1, 1, 1}, {0, 6, 3, 8, 10, 4, 2}};
static float f_dir[FB * FS * 32];

static double fd_loss(mmspcl_roberta_train *m, int backward) {
    mmspcl_error err;
    float dout[FB * FS * 32];
    double L = 0.0;
    int i, n;
    if (mmspcl_roberta_train_forward(m, &f_ids[0][0], f_lens, FB, FS, &err)) { fprintf(stderr, "%s\n", err.msg); return 0; }
    n = m->T * m->cfg.hidden_size;
    for (i = 0; i < n; i++) L += (double)f_dir[i] * m->out[i];
    if (backward) {
        memcpy(dout, f_dir, sizeof(float) * (size_t)n);
        mmspcl_params_zero_grad(&m->P);
        mmspcl_roberta_train_backward(m, dout, NULL, &err);
    }
    return L;
}

static void test_dropout_forward_backward(void) {
    mmspcl_roberta_config c;
    mmspcl_roberta_train m;
    mmspcl_error err;
    mmspcl_rng rng;
    float eval[FB * FS * 16];
    double *ana;
    int i, p, checked = 0, bad = 0, same = 1, differs = 0;
    memset(&c, 0, sizeof c);
    c.vocab_size = 11; c.hidden_size = 16; c.num_layers = 2; c.num_heads = 2; c.intermediate_size = 24;
    c.max_positions = 10; c.type_vocab_size = 1; c.pad_id = 1; c.layer_norm_eps = 1e-5f;
    CHECK(mmspcl_roberta_train_create(&m, &c, 0, 3, 64, FS, &err) == MMSPCL_OK, "create: %s", err.msg);
    mmspcl_rng_seed(&rng, 5);
    for (i = 0; i < (int)m.P.n; i++) m.P.w[i] += 0.3 * mmspcl_rng_normal(&rng);
    mmspcl_roberta_train_sync(&m);
    for (i = 0; i < FB * FS * 16; i++) f_dir[i] = (float)mmspcl_rng_normal(&rng);
    fd_loss(&m, 0);
    memcpy(eval, m.out, sizeof(float) * (size_t)m.T * 16);
    m.train_mode = 1;                              /* p = 0: still the evaluation forward */
    fd_loss(&m, 0);
    for (i = 0; i < m.T * 16; i++) same &= eval[i] == m.out[i];
    CHECK(same, "training mode with dropout 0 is the evaluation forward");
    m.dropout_hidden = m.dropout_attn = 0.25f;
    m.dropout_key = 99;
    fd_loss(&m, 0);
    for (i = 0; i < m.T * 16; i++) differs += eval[i] != m.out[i];
    memcpy(eval, m.out, sizeof(float) * (size_t)m.T * 16);
    fd_loss(&m, 0);
    for (i = 0, same = 1; i < m.T * 16; i++) same &= eval[i] == m.out[i];
    CHECK(differs > m.T * 8 && same, "dropout on: the output changes (%d of %d), and repeats under the same key", differs, m.T * 16);
    m.dropout_key = 100;
    fd_loss(&m, 0);
    for (i = 0, differs = 0; i < m.T * 16; i++) differs += eval[i] != m.out[i];
    CHECK(differs > m.T * 8, "another key, other masks");
    /* the backward with the masks of the forward (key fixed): central differences */
    m.dropout_key = 7;
    ana = (double *)malloc(sizeof(double) * m.P.n);
    fd_loss(&m, 1);
    memcpy(ana, m.P.g, sizeof(double) * m.P.n);
    for (p = 0; p < m.P.n_info; p++) {
        const mmspcl_param_info *pi = &m.P.info[p];
        int k, nk = pi->n < 6 ? (int)pi->n : 6, tbad = 0;
        for (k = 0; k < nk; k++) {
            const size_t j = pi->off + (pi->n <= 6 ? (size_t)k : (size_t)mmspcl_rng_int(&rng, (int)pi->n));
            const double h = 1e-2, w0 = m.P.w[j];
            double lp, lm, num;
            m.P.w[j] = w0 + h; mmspcl_roberta_train_sync(&m); lp = fd_loss(&m, 0);
            m.P.w[j] = w0 - h; mmspcl_roberta_train_sync(&m); lm = fd_loss(&m, 0);
            m.P.w[j] = w0; mmspcl_roberta_train_sync(&m);
            num = (lp - lm) / (2 * h);
            checked++;
            if (fabs(num - ana[j]) > 0.03 * fmax(fabs(num), fabs(ana[j])) + 3e-3) {
                if (!tbad) fprintf(stderr, "  %s[%zu]: numeric %.6g analytic %.6g\n", pi->name, j - pi->off, num, ana[j]);
                tbad++;
            }
        }
        bad += tbad;
    }
    CHECK(bad == 0 && checked > 100, "backward with dropout 0.25 vs finite differences: %d of %d off", bad, checked);
    printf("  dropout forward/backward: finite differences with masks on, %d entries, %d off\n", checked, bad);
    free(ana);
    mmspcl_roberta_train_free(&m);
}

/* ---- 2. loading ------------------------------------------------------------------------------ */
static int convert(const char *src, const char *dst, const char *type) {
    return test_run(NULL, "build/mmspcl-convert %s %s --quiet %s%s 2>/dev/null", src, dst, type ? "--type " : "", type ? type : "");
}

/* a copy of the file with every 2-D tensor stored as bf16 */
static int write_bf16_copy(const char *in, const char *out) {
    mmspcl_weights *w = NULL;
    mmspcl_writer *wr = mmspcl_writer_create();
    mmspcl_error err;
    unsigned char *buf, *p;
    size_t total = 0;
    int64_t i;
    int ok;
    if (!wr || mmspcl_weights_read(&w, in, &err)) return -1;
    for (i = 0; i < w->n_tensors; i++) total += w->tensors[i].nbytes + 64;
    p = buf = (unsigned char *)malloc(total);
    for (i = 0; i < w->n_kv; i++) {
        const mmspcl_kv *kv = &w->kv[i];
        if (kv->type == MMSPCL_KV_INT) mmspcl_writer_set_int(wr, kv->key, kv->i);
        else if (kv->type == MMSPCL_KV_FLOAT) mmspcl_writer_set_float(wr, kv->key, kv->f);
        else if (kv->type == MMSPCL_KV_STR) mmspcl_writer_set_str(wr, kv->key, kv->str);
        else mmspcl_writer_set_str_array(wr, kv->key, kv->strs, kv->lens, kv->count);
    }
    for (i = 0; i < w->n_tensors; i++) {
        const mmspcl_tensor *t = &w->tensors[i];
        if (t->ndim == 2 && t->dtype == MMSPCL_F32) {
            const size_t n = (size_t)t->ne[0] * t->ne[1];
            mmspcl_quantize_row(MMSPCL_BF16, (const float *)t->data, p, (int64_t)n);
            mmspcl_writer_add_tensor(wr, t->name, MMSPCL_BF16, 2, t->ne, p, 2 * n, &err);
            p += (2 * n + 63) / 64 * 64;
        } else mmspcl_writer_add_tensor(wr, t->name, t->dtype, t->ndim, t->ne, t->data, t->nbytes, &err);
    }
    ok = mmspcl_writer_save(wr, out, NULL, NULL, &err) == MMSPCL_OK;
    mmspcl_writer_free(wr);
    mmspcl_weights_free(w);
    free(buf);
    return ok ? 0 : -1;
}

/* every value of the trainer equals the file's tensor read as floats */
static int same_as_file(const mmspcl_roberta_train *m, const mmspcl_weights *w) {
    float row[512];
    int t, ok = 1;
    for (t = 0; t < m->P.n_info && ok; t++) {
        const mmspcl_param_info *pi = &m->P.info[t];
        const mmspcl_tensor *tn = mmspcl_weights_find(w, pi->name);
        const int64_t rows = pi->ndim == 2 ? pi->shape[0] : 1, cols = pi->shape[pi->ndim - 1];
        int64_t r, k;
        if (!tn) return 0;
        for (r = 0; r < rows && ok; r++) {
            if (pi->ndim == 2) mmspcl_matrix_row(tn, r, row);
            else mmspcl_dequantize_row(tn->dtype, tn->data, row, cols);
            for (k = 0; k < cols; k++) ok &= m->P.w[pi->off + (size_t)r * cols + k] == (double)row[k];
        }
    }
    return ok;
}

static void test_from_weights(void) {
    static const char *const kinds[3] = {"f32", "f16", "bf16"};
    mmspcl_roberta_train a, b;
    mmspcl_weights *w = NULL, *w2 = NULL;
    mmspcl_roberta *r = NULL;
    mmspcl_error err;
    static const int32_t ids[2][6] = {{0, 17, 250, 9, 2, 1}, {0, 44, 2, 1, 1, 1}};
    static const int lens[2] = {5, 3};
    float hidden[2 * 6 * 32];
    int k, i, same;
    CHECK(convert("tests/data/roberta-tiny", TMP "-rt.mmw", NULL) == 0 && convert("tests/data/roberta-tiny-mlm", TMP "-mlm.mmw", NULL) == 0 &&
              convert("tests/data/roberta-tiny", TMP "-rt16.mmw", "f16") == 0 && convert("tests/data/roberta-tiny", TMP "-q8.mmw", "q8_0") == 0 &&
              convert("tests/data/clip-tiny", TMP "-clip.mmw", NULL) == 0 && write_bf16_copy(TMP "-rt.mmw", TMP "-rtbf16.mmw") == 0,
          "converting the tiny checkpoints");
    for (k = 0; k < 3; k++) {
        const char *path = k == 0 ? TMP "-rt.mmw" : k == 1 ? TMP "-rt16.mmw" : TMP "-rtbf16.mmw";
        double md = 0;
        int bb, t;
        CHECK(mmspcl_weights_open(&w, path, &err) == MMSPCL_OK, "%s: %s", path, err.msg);
        CHECK(mmspcl_roberta_train_from_weights(&a, w, 16, 8, &err) == MMSPCL_OK, "from_weights %s: %s", kinds[k], err.msg);
        CHECK(same_as_file(&a, w), "%s: the trainer holds the file's values exactly", kinds[k]);
        CHECK(mmspcl_roberta_load(&r, w, 2, 6, &err) == MMSPCL_OK && mmspcl_roberta_forward(r, &ids[0][0], lens, 2, 6, hidden, &err) == MMSPCL_OK,
              "%s: mmspcl_roberta_forward: %s", kinds[k], err.msg);
        CHECK(mmspcl_roberta_train_forward(&a, &ids[0][0], lens, 2, 6, &err) == MMSPCL_OK, "train forward: %s", err.msg);
        for (bb = 0, t = 0; bb < 2; t += lens[bb], bb++)
            for (i = 0; i < lens[bb] * 32; i++) md = fmax(md, fabs((double)hidden[bb * 6 * 32 + i] - a.out[(size_t)t * 32 + i]));
        /* f32 rows are the same floats; f16 files go through the inference kernels' own paths for
           that type, the trainer through f32 copies of the same values. bf16 files compute bf16 x
           bf16 (mmspcl_linear rounds each Linear input to bf16, 2^-9 relative): the forwards then
           differ by that rounding at each of the 12 Linear inputs of the 2 layers, each of
           relative size 2^-9 of the hidden state (|hidden| <= 4 here): 12 * 2^-9 * 4 = 0.094 */
        CHECK(md < (k == 0 ? 1e-6 : k == 1 ? 1e-4 : 12.0 * 4.0 / 512), "%s: trainer forward vs mmspcl_roberta_forward: max |diff| %.2e",
              kinds[k], md);
        printf("  from_weights %-4s: values exact, forward vs mmspcl_roberta_forward %.1e\n", kinds[k], md);
        mmspcl_roberta_free(r);
        r = NULL;
        if (k == 0) {   /* RobertaForMaskedLM's layout (roberta. prefix, lm_head) gives the same trainer */
            CHECK(mmspcl_weights_open(&w2, TMP "-mlm.mmw", &err) == MMSPCL_OK && mmspcl_roberta_train_from_weights(&b, w2, 16, 8, &err) == MMSPCL_OK,
                  "from_weights (MLM layout): %s", err.msg);
            same = b.P.n == a.P.n && !memcmp(a.P.w, b.P.w, sizeof(double) * a.P.n);
            CHECK(same, "RobertaModel and RobertaForMaskedLM checkpoints give the same trainer");
            mmspcl_roberta_train_free(&b);
            mmspcl_weights_free(w2);
            w2 = NULL;
            CHECK(mmspcl_roberta_train_from_weights(&b, w, 256, 65, &err) == MMSPCL_ERR_ARG && strstr(err.msg, "position table") &&
                      strstr(err.msg, "64"), "sequences past the position table refused: %s", err.msg);
        }
        mmspcl_roberta_train_free(&a);
        mmspcl_weights_free(w);
        w = NULL;
    }
    CHECK(mmspcl_weights_open(&w, TMP "-q8.mmw", &err) == MMSPCL_OK, "q8 file");
    CHECK(mmspcl_roberta_train_from_weights(&a, w, 16, 8, &err) == MMSPCL_ERR_UNSUPPORTED && strstr(err.msg, "q8_0"),
          "quantized weights refused: %s", err.msg);
    mmspcl_weights_free(w);
    CHECK(mmspcl_weights_open(&w, TMP "-clip.mmw", &err) == MMSPCL_OK, "clip file");
    CHECK(mmspcl_roberta_train_from_weights(&a, w, 16, 8, &err) != MMSPCL_OK && strstr(err.msg, "not a roberta"),
          "a CLIP file refused: %s", err.msg);
    printf("  refused: q8_0, CLIP (\"%s\"), a sequence past the position table\n", err.msg);
    mmspcl_weights_free(w);
}

/* ---- 3. freezing ----------------------------------------------------------------------------- */
static void test_freeze(void) {
    mmspcl_roberta_train a, b;
    mmspcl_weights *w = NULL;
    mmspcl_error err;
    mmspcl_adamw_cfg ac;
    mmspcl_rng rng;
    double *w0;
    int t, i, frozen_zero = 1, above_same = 1, frozen_kept = 1, trained = 0;
    CHECK(mmspcl_weights_open(&w, TMP "-rt.mmw", &err) == MMSPCL_OK, "rt file");
    if (mmspcl_roberta_train_from_weights(&a, w, 64, FS, &err) || mmspcl_roberta_train_from_weights(&b, w, 64, FS, &err)) {
        CHECK(0, "from_weights: %s", err.msg);
        return;
    }
    mmspcl_rng_seed(&rng, 11);
    for (i = 0; i < FB * FS * 32; i++) f_dir[i] = (float)mmspcl_rng_normal(&rng);
    mmspcl_roberta_train_freeze(&b, 1);
    fd_loss(&a, 1);
    fd_loss(&b, 1);
    for (t = 0; t < b.P.n_info; t++) {
        const mmspcl_param_info *pi = &b.P.info[t];
        for (i = 0; i < (int)pi->n; i++) {
            if (pi->frozen) frozen_zero &= b.P.g[pi->off + i] == 0.0;
            else above_same &= b.P.g[pi->off + i] == a.P.g[pi->off + i];
        }
    }
    CHECK(frozen_zero, "freeze 1: no gradient for the embeddings and layer 0");
    CHECK(above_same, "freeze 1: layer 1 gets the unfrozen run's gradient, bit for bit");
    w0 = (double *)malloc(sizeof(double) * b.P.n);
    memcpy(w0, b.P.w, sizeof(double) * b.P.n);
    mmspcl_adamw_defaults(&ac);
    mmspcl_adamw_step(&b.P, &ac, 1e-2);
    for (t = 0; t < b.P.n_info; t++) {
        const mmspcl_param_info *pi = &b.P.info[t];
        for (i = 0; i < (int)pi->n; i++) {
            if (pi->frozen) frozen_kept &= b.P.w[pi->off + i] == w0[pi->off + i] && b.P.m[pi->off + i] == 0.0;
            else trained += b.P.w[pi->off + i] != w0[pi->off + i];
        }
    }
    CHECK(frozen_kept && trained > 1000, "AdamW leaves frozen tensors (and their moments) alone, updates the rest (%d)", trained);
    free(w0);
    mmspcl_roberta_train_free(&a);
    mmspcl_roberta_train_free(&b);
    mmspcl_weights_free(w);
}

/* ---- 4. one SPCL step against PyTorch ---------------------------------------------------------- */
typedef struct ref_t {
    int V, H, L, nh, I, P, pad, C, pool, K, n_prefill, n;
    double temperature, lr_enc, lr_head, wd, clip;
    uint64_t seed;
    int prefill_y[256], len[32], mask[32], emo[32], sent[32];
    int32_t ids[32][64];
    char nodecay[8300];
} ref_t;

static int read_ref(ref_t *r, FILE *f) {
    char line[8192];
    int b = 0;
    memset(r, 0, sizeof *r);
    while (fgets(line, sizeof line, f)) {
        char *p = line;
        int k, off;
        if (line[0] == '#') continue;
        if (sscanf(line, "model %d %d %d %d %d %d %d", &r->V, &r->H, &r->L, &r->nh, &r->I, &r->P, &r->pad) == 7) continue;
        if (sscanf(line, "spcl %d %d %d %lf %llu", &r->C, &r->pool, &r->K, &r->temperature, (unsigned long long *)&r->seed) == 5) continue;
        if (sscanf(line, "optim %lf %lf %lf %lf", &r->lr_enc, &r->lr_head, &r->wd, &r->clip) == 4) continue;
        if (!strncmp(line, "nodecay ", 8)) {
            line[strcspn(line, "\n")] = 0;
            snprintf(r->nodecay, sizeof r->nodecay, " %.8190s ", line + 8);
            continue;
        }
        if (sscanf(line, "prefill %d%n", &r->n_prefill, &off) == 1) {
            p = line + off;
            for (k = 0; k < r->n_prefill && k < 256; k++) r->prefill_y[k] = (int)strtol(p, &p, 10);
            continue;
        }
        if (sscanf(line, "batch %d", &r->n) == 1) continue;
        if (sscanf(line, "row %d %d %d %d%n", &r->len[b], &r->mask[b], &r->emo[b], &r->sent[b], &off) == 4 && b < 32) {
            p = line + off;
            for (k = 0; k < r->len[b]; k++) r->ids[b][k] = (int32_t)strtol(p, &p, 10);
            if (++b == r->n) return 0;
        }
    }
    return -1;
}

/* the next "case" block: name, p, key, losses, norms; -1 at the end */
static int read_case(FILE *f, char *name, float *p, uint64_t *key, double *loss, double *norm) {
    char line[8192];
    double pd = 0;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "case %15s %lf %llu", name, &pd, (unsigned long long *)key) == 3) *p = (float)pd;
        else if (sscanf(line, "loss %lf %lf %lf", &loss[0], &loss[1], &loss[2]) == 3) {}
        else if (sscanf(line, "gradnorm %lf %lf", &norm[0], &norm[1]) == 2) {}
        else if (!strncmp(line, "end", 3)) return 0;
    }
    return -1;
}

static const float *st_f32(const st_file *sf, const char *name, uint64_t n) {
    const st_tensor *t = st_find(sf, name);
    if (!t || strcmp(t->dtype, "F32") || t->nelem != n) {
        CHECK(0, "expected.safetensors: %s missing or of the wrong size", name);
        return NULL;
    }
    return (const float *)t->data;
}

/* max |ours - ref| over the tensor, and max |ref| */
static void tensor_diff(const double *ours, const float *ref, size_t n, double *md, double *mr) {
    size_t i;
    *md = *mr = 0;
    for (i = 0; i < n; i++) {
        *md = fmax(*md, fabs(ours[i] - ref[i]));
        *mr = fmax(*mr, fabs((double)ref[i]));
    }
}

/* compares every tensor of P (and the heads) with "<prefix>.NAME": max|diff| <= tol * max|ref|.
   A tensor whose reference is zero up to rounding (max |ref| < 1e-9 of the largest over all
   tensors: the attention key biases, whose gradient is zero by construction as softmax ignores
   a shift shared by a whole row) must be zero up to float rounding instead: max |ours| <= 1e-6
   of that largest value. *worst_name receives the tensor of the worst ratio. */
static double compare_all(const st_file *sf, const char *prefix, mmspcl_params *const *Ps, int nP, int grads, double tol,
                          const char *what, char *worst_name, size_t wn) {
    double worst = 0, global = 0, md, mr;
    int k, t, pass, n = 0, bad = 0, zeros = 0;
    for (pass = 0; pass < 2; pass++)
        for (k = 0; k < nP; k++)
            for (t = 0; t < Ps[k]->n_info; t++) {
                const mmspcl_param_info *pi = &Ps[k]->info[t];
                char nm[300];
                const float *ref;
                snprintf(nm, sizeof nm, "%s.%s", prefix, pi->name);
                if (!(ref = st_f32(sf, nm, pi->n))) continue;
                tensor_diff((grads ? Ps[k]->g : Ps[k]->w) + pi->off, ref, pi->n, &md, &mr);
                if (pass == 0) { global = fmax(global, mr); continue; }
                n++;
                if (grads && mr < 1e-9 * global) {
                    zeros++;
                    if (md > 1e-6 * global) { bad++; fprintf(stderr, "  %s: should be zero, max |ours| %.3g\n", nm, md); }
                    continue;
                }
                if (md > tol * mr) { bad++; fprintf(stderr, "  %s: max |diff| %.3g, max |ref| %.3g\n", nm, md, mr); }
                if (mr > 0 && md / mr > worst) { worst = md / mr; snprintf(worst_name, wn, "%s", pi->name); }
            }
    CHECK(bad == 0 && n > 30, "%s (%s): %d of %d tensors over %.0e x max |ref|", what, prefix, bad, n, tol);
    if (zeros) printf("  %s: %d tensors zero by construction (key biases), ours within float rounding\n", prefix, zeros);
    return worst;
}

static void test_parity(void) {
    FILE *f = fopen(REF "/expected.txt", "r");
    st_file sf;
    char serr[512], name[16];
    ref_t R;
    mmspcl_weights *w = NULL;
    mmspcl_error err;
    int cases = 0;
    memset(&sf, 0, sizeof sf);
    if (!f || read_ref(&R, f) || st_open(REF "/expected.safetensors", &sf, serr, sizeof serr)) {
        CHECK(0, "reading %s (run tools/reference/spcl_finetune_ref.py)", REF);
        if (f) fclose(f);
        return;
    }
    CHECK(convert(REF, TMP "-ref.mmw", NULL) == 0 && mmspcl_weights_open(&w, TMP "-ref.mmw", &err) == MMSPCL_OK, "converting %s", REF);
    for (;;) {
        mmspcl_roberta_train m;
        mmspcl_params Pe, Ps;
        mmspcl_lin le, ls;
        mmspcl_spcl S;
        mmspcl_rng rng;
        mmspcl_adamw_cfg ac;
        mmspcl_params *both[2], *all[3];
        double loss_ref[3], norm_ref[2], loss[3], norm[2], *z, *dz, *pre, logits[32 * 7], dl[32 * 7], worst_g, worst_w = 0;
        const float *hw;
        float p = 0, *dout;
        uint64_t key = 0;
        int32_t ids[32 * 64];
        int b, k, T = 0, t, ok = 1, dec_ok = 1;
        char nm[200], wg[160] = "", ww[160] = "";
        if (read_case(f, name, &p, &key, loss_ref, norm_ref)) break;
        if (mmspcl_roberta_train_from_weights(&m, w, 32 * 64, 64, &err)) { CHECK(0, "from_weights: %s", err.msg); break; }
        for (t = 0; t < m.P.n_info; t++) {   /* the decay mask: train.py's no_decay names */
            char pat[200];
            snprintf(pat, sizeof pat, " %s ", m.P.info[t].name);
            dec_ok &= m.P.info[t].decay == (strstr(R.nodecay, pat) == NULL);
        }
        mmspcl_params_init(&Pe);
        mmspcl_params_init(&Ps);
        mmspcl_rng_seed(&rng, 1);
        mmspcl_lin_create(&le, &Pe, "emotion", R.H, R.C, &rng);
        mmspcl_lin_create(&ls, &Ps, "sentiment", R.H, 3, &rng);
        for (k = 0; k < 4; k++) {
            mmspcl_params *P = k < 2 ? &Pe : &Ps;
            const mmspcl_param_info *pi = &P->info[k % 2];
            snprintf(nm, sizeof nm, "init.head.%s", pi->name);
            if ((hw = st_f32(&sf, nm, pi->n))) for (t = 0; t < (int)pi->n; t++) P->w[pi->off + t] = hw[t];
            snprintf(nm, sizeof nm, " %s ", pi->name);
            dec_ok &= pi->decay == (strstr(R.nodecay, nm) == NULL);
        }
        CHECK(dec_ok, "%s: weight decay on every tensor but biases and LayerNorm (train.py's no_decay)", name);
        /* queues: class means, pre-filled (the reference's draws follow the same generator) */
        z = (double *)calloc((size_t)(R.n_prefill + R.n) * R.H, sizeof(double));
        dz = (double *)calloc((size_t)R.n * R.H, sizeof(double));
        pre = z + (size_t)R.n * R.H;
        dout = (float *)calloc((size_t)32 * 64 * R.H, sizeof(float));
        CHECK(mmspcl_spcl_init(&S, R.C, R.H, R.pool, R.K, R.temperature, R.seed, &err) == MMSPCL_OK, "spcl init");
        if ((hw = st_f32(&sf, "centers", (uint64_t)R.C * R.H))) for (k = 0; k < R.C * R.H; k++) S.centers[k] = hw[k];
        mmspcl_spcl_reset(&S, S.centers);
        if ((hw = st_f32(&sf, "prefill", (uint64_t)R.n_prefill * R.H))) for (k = 0; k < R.n_prefill * R.H; k++) pre[k] = hw[k];
        mmspcl_spcl_push(&S, pre, R.prefill_y, R.n_prefill);
        /* forward (training mode for the dropout case), z at <mask> */
        for (b = 0; b < R.n; b++) memcpy(ids + b * 64, R.ids[b], sizeof(int32_t) * 64);
        m.train_mode = p > 0;
        m.dropout_hidden = m.dropout_attn = p;
        m.dropout_key = key;
        CHECK(mmspcl_roberta_train_forward(&m, ids, R.len, R.n, 64, &err) == MMSPCL_OK, "forward: %s", err.msg);
        for (b = 0, T = 0; b < R.n; T += R.len[b], b++)
            for (k = 0; k < R.H; k++) z[b * R.H + k] = m.out[(size_t)(T + R.mask[b]) * R.H + k];
        mmspcl_params_zero_grad(&m.P);
        CHECK(mmspcl_spcl_step(&S, z, R.emo, R.n, &loss[0], dz, NULL, &err) == MMSPCL_OK, "spcl step");
        mmspcl_lin_forward(&Pe, &le, z, logits, R.n);
        loss[1] = mmspcl_ce_loss(logits, R.emo, R.n, R.C, NULL, dl);
        mmspcl_lin_backward(&Pe, &le, z, dl, NULL, R.n);           /* detached: no gradient into z */
        mmspcl_lin_forward(&Ps, &ls, z, logits, R.n);
        loss[2] = mmspcl_ce_loss(logits, R.sent, R.n, 3, NULL, dl);
        mmspcl_lin_backward(&Ps, &ls, z, dl, NULL, R.n);
        for (b = 0, T = 0; b < R.n; T += R.len[b], b++)
            for (k = 0; k < R.H; k++) dout[(size_t)(T + R.mask[b]) * R.H + k] = (float)dz[b * R.H + k];
        CHECK(mmspcl_roberta_train_backward(&m, dout, NULL, &err) == MMSPCL_OK, "backward: %s", err.msg);
        for (k = 0; k < 3; k++) ok &= test_close(loss[k], loss_ref[k], 1e-5, 0);
        CHECK(ok, "%s: losses spcl %.9g ce %.9g %.9g, PyTorch %.9g %.9g %.9g", name, loss[0], loss[1], loss[2], loss_ref[0],
              loss_ref[1], loss_ref[2]);
        all[0] = &m.P; all[1] = &Pe; all[2] = &Ps;
        snprintf(nm, sizeof nm, "%s.grad", name);
        worst_g = compare_all(&sf, nm, all, 3, 1, 1e-4, "gradient of every tensor", wg, sizeof wg);
        both[0] = &m.P; both[1] = &Pe;
        norm[0] = mmspcl_grad_clip_multi(both, 2, R.clip);
        norm[1] = mmspcl_grad_clip(&Ps, R.clip);
        CHECK(test_close(norm[0], norm_ref[0], 1e-5, 0) && test_close(norm[1], norm_ref[1], 1e-5, 0),
              "%s: gradient norms %.9g %.9g, PyTorch %.9g %.9g", name, norm[0], norm[1], norm_ref[0], norm_ref[1]);
        if (p == 0) {   /* clip + one AdamW step: the weights after */
            mmspcl_adamw_defaults(&ac);
            ac.weight_decay = R.wd;
            mmspcl_adamw_step(&m.P, &ac, R.lr_enc);
            mmspcl_adamw_step(&Pe, &ac, R.lr_head);
            mmspcl_adamw_step(&Ps, &ac, R.lr_head);
            worst_w = compare_all(&sf, "nodrop.after", all, 3, 0, 1e-5, "weights after clipping and one AdamW step", ww, sizeof ww);
        }
        printf("  vs PyTorch, %-6s: spcl loss %.9f (rel diff %.1e), ce rel diff %.1e %.1e, gradient norm %.1e;\n"
               "                      worst gradient max|diff|/max|ref| %.1e (%s)\n",
               name, loss[0], fabs(loss[0] - loss_ref[0]) / loss_ref[0], fabs(loss[1] - loss_ref[1]) / loss_ref[1],
               fabs(loss[2] - loss_ref[2]) / loss_ref[2], fabs(norm[0] - norm_ref[0]) / norm_ref[0], worst_g, wg);
        if (p == 0) printf("                      weights after clip + AdamW: worst %.1e (%s)\n", worst_w, ww);
        free(z); free(dz); free(dout);
        mmspcl_spcl_free(&S);
        mmspcl_params_free(&Pe);
        mmspcl_params_free(&Ps);
        mmspcl_roberta_train_free(&m);
        cases++;
    }
    CHECK(cases == 2, "2 reference cases (dropout off, on): %d", cases);
    fclose(f);
    st_close(&sf);
    mmspcl_weights_free(w);
}


/* ---- 4b. the same step with a fusion head trained with the encoder (spcl_joint_ref.py) --------- */
/* the next "case" of joint.txt: name, out_dim, dim a, dim v, K, projection; losses, norms */
static int read_joint_case(FILE *f, char *name, int *cfg, double *loss, double *norm) {
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "case %15s %d %d %d %d %d", name, &cfg[0], &cfg[1], &cfg[2], &cfg[3], &cfg[4]) == 6) {}
        else if (sscanf(line, "loss %lf %lf %lf", &loss[0], &loss[1], &loss[2]) == 3) {}
        else if (sscanf(line, "gradnorm %lf %lf", &norm[0], &norm[1]) == 2) {}
        else if (!strncmp(line, "end", 3)) return 0;
    }
    return -1;
}

/* every tensor of P from "<prefix>.NAME"; 0 when all were there */
static int load_init(const st_file *sf, const char *prefix, mmspcl_params *P) {
    int t, k, bad = 0;
    for (t = 0; t < P->n_info; t++) {
        char nm[300];
        const float *v;
        snprintf(nm, sizeof nm, "%s.%s", prefix, P->info[t].name);
        if (!(v = st_f32(sf, nm, P->info[t].n))) { bad = 1; continue; }
        for (k = 0; k < (int)P->info[t].n; k++) P->w[P->info[t].off + k] = v[k];
    }
    return bad;
}

/* one joint case: z_t from the encoder, z = mmspcl_pfusion(z_t, a, v), SPCL and CE heads on z,
   the backward through the fusion head into the encoder, clipping, AdamW */
static void joint_case(const st_file *sf, const ref_t *R, const mmspcl_weights *w, const char *name, const int *cfg,
                       const double *loss_ref, const double *norm_ref) {
    const int D = cfg[0], n = R->n, H = R->H;
    mmspcl_roberta_train m;
    mmspcl_params Pf, Pe, Ps, *all[4], *clip[3];
    mmspcl_pfusion fu;
    mmspcl_fusion_cfg fc;
    mmspcl_xprune_cfg pc;
    mmspcl_lin le, ls;
    mmspcl_spcl S;
    mmspcl_rng rng;
    mmspcl_adamw_cfg ac;
    mmspcl_error err;
    double loss[3], norm[2], *zt, *dzt, *z, *dz, *pre, *xa, *xv, logits[32 * 7], dl[32 * 7], worst_g, worst_w, md, mr;
    const double *x[3];
    double *dx[3];
    const float *v;
    float *dout;
    int32_t ids[32 * 64];
    int b, k, T, ok = 1, kept_ok = 1;
    char nm[200], wg[160] = "", ww[160] = "";
    if (mmspcl_roberta_train_from_weights(&m, w, 32 * 64, 64, &err)) { CHECK(0, "from_weights: %s", err.msg); return; }
    mmspcl_params_init(&Pf); mmspcl_params_init(&Pe); mmspcl_params_init(&Ps);
    mmspcl_rng_seed(&rng, 1);
    mmspcl_fusion_defaults(&fc, MMSPCL_FUSION_LINEAR);
    fc.dims[0] = H; fc.dims[1] = cfg[1]; fc.dims[2] = cfg[2]; fc.out_dim = D;
    memset(&pc, 0, sizeof pc);
    pc.K = cfg[3]; pc.proj_dim = cfg[4]; pc.rule = MMSPCL_PRUNE_ARGMAX;   /* a and v against t, separately */
    CHECK(!mmspcl_pfusion_create(&fu, &Pf, "fusion", "prune", &fc, cfg[3] ? &pc : NULL, &rng, &err), "%s: fusion: %s", name, err.msg);
    mmspcl_lin_create(&le, &Pe, "emotion", D, R->C, &rng);
    mmspcl_lin_create(&ls, &Ps, "sentiment", D, 3, &rng);
    snprintf(nm, sizeof nm, "%s.init", name);
    CHECK(!load_init(sf, nm, &Pf) && !load_init(sf, nm, &Pe) && !load_init(sf, nm, &Ps), "%s: the initial fusion and heads", name);
    zt = (double *)calloc((size_t)n * H, sizeof(double));
    dzt = (double *)calloc((size_t)n * H, sizeof(double));
    z = (double *)calloc((size_t)(n + R->n_prefill) * D, sizeof(double));
    dz = (double *)calloc((size_t)n * D, sizeof(double));
    pre = z + (size_t)n * D;
    xa = (double *)calloc((size_t)n * cfg[1], sizeof(double));
    xv = (double *)calloc((size_t)n * cfg[2], sizeof(double));
    dout = (float *)calloc((size_t)32 * 64 * H, sizeof(float));
    snprintf(nm, sizeof nm, "%s.x.a", name);
    if ((v = st_f32(sf, nm, (uint64_t)n * cfg[1]))) for (k = 0; k < n * cfg[1]; k++) xa[k] = v[k];
    snprintf(nm, sizeof nm, "%s.x.v", name);
    if ((v = st_f32(sf, nm, (uint64_t)n * cfg[2]))) for (k = 0; k < n * cfg[2]; k++) xv[k] = v[k];
    CHECK(mmspcl_spcl_init(&S, R->C, D, R->pool, R->K, R->temperature, R->seed, &err) == MMSPCL_OK, "spcl init");
    snprintf(nm, sizeof nm, "%s.centers", name);
    if ((v = st_f32(sf, nm, (uint64_t)R->C * D))) for (k = 0; k < R->C * D; k++) S.centers[k] = v[k];
    mmspcl_spcl_reset(&S, S.centers);
    snprintf(nm, sizeof nm, "%s.prefill", name);
    if ((v = st_f32(sf, nm, (uint64_t)R->n_prefill * D))) for (k = 0; k < R->n_prefill * D; k++) pre[k] = v[k];
    mmspcl_spcl_push(&S, pre, R->prefill_y, R->n_prefill);
    /* forward: encoder, z_t at <mask>, fusion */
    for (b = 0; b < n; b++) memcpy(ids + b * 64, R->ids[b], sizeof(int32_t) * 64);
    m.train_mode = 0;
    CHECK(mmspcl_roberta_train_forward(&m, ids, R->len, n, 64, &err) == MMSPCL_OK, "forward: %s", err.msg);
    for (b = 0, T = 0; b < n; T += R->len[b], b++)
        for (k = 0; k < H; k++) zt[b * H + k] = m.out[(size_t)(T + R->mask[b]) * H + k];
    x[0] = zt; x[1] = xa; x[2] = xv;
    CHECK(!mmspcl_pfusion_forward(&fu, &Pf, x, n, z, NULL, &err), "%s: fusion forward: %s", name, err.msg);
    snprintf(nm, sizeof nm, "%s.z", name);
    if ((v = st_f32(sf, nm, (uint64_t)n * D))) {
        tensor_diff(z, v, (size_t)n * D, &md, &mr);
        CHECK(md <= 1e-4 * mr, "%s: the fused z, max |diff| %.3g, max |ref| %.3g", name, md, mr);
    }
    for (k = 1; cfg[3] && k < 3; k++) {   /* the heads pruning zeroes */
        const mmspcl_xprune_layout *l = &fu.prune.lay;
        int i;
        snprintf(nm, sizeof nm, "%s.kept.%s", name, k == 1 ? "a" : "v");
        if (!(v = st_f32(sf, nm, (uint64_t)n * l->np[k]))) continue;
        for (i = 0; i < n * l->np[k]; i++) kept_ok &= fu.prune.kept[(size_t)(i / l->np[k]) * l->n_kept + l->koff[k] + i % l->np[k]] == (unsigned char)v[i];
    }
    CHECK(kept_ok, "%s: the heads pruning zeroes are PyTorch's", name);
    /* losses and backward: SPCL through the fusion into the encoder, CE heads on detached z */
    mmspcl_params_zero_grad(&m.P); mmspcl_params_zero_grad(&Pf);
    CHECK(mmspcl_spcl_step(&S, z, R->emo, n, &loss[0], dz, NULL, &err) == MMSPCL_OK, "spcl step");
    mmspcl_lin_forward(&Pe, &le, z, logits, n);
    loss[1] = mmspcl_ce_loss(logits, R->emo, n, R->C, NULL, dl);
    mmspcl_lin_backward(&Pe, &le, z, dl, NULL, n);
    mmspcl_lin_forward(&Ps, &ls, z, logits, n);
    loss[2] = mmspcl_ce_loss(logits, R->sent, n, 3, NULL, dl);
    mmspcl_lin_backward(&Ps, &ls, z, dl, NULL, n);
    dx[0] = dzt; dx[1] = dx[2] = NULL;
    mmspcl_pfusion_backward(&fu, &Pf, x, n, dz, dx);
    for (b = 0, T = 0; b < n; T += R->len[b], b++)
        for (k = 0; k < H; k++) dout[(size_t)(T + R->mask[b]) * H + k] = (float)dzt[b * H + k];
    CHECK(mmspcl_roberta_train_backward(&m, dout, NULL, &err) == MMSPCL_OK, "backward: %s", err.msg);
    for (k = 0; k < 3; k++) ok &= test_close(loss[k], loss_ref[k], 1e-5, 0);
    CHECK(ok, "%s: losses spcl %.9g ce %.9g %.9g, PyTorch %.9g %.9g %.9g", name, loss[0], loss[1], loss[2], loss_ref[0], loss_ref[1],
          loss_ref[2]);
    all[0] = &m.P; all[1] = &Pf; all[2] = &Pe; all[3] = &Ps;
    snprintf(nm, sizeof nm, "%s.grad", name);
    worst_g = compare_all(sf, nm, all, 4, 1, 1e-4, "gradient of every tensor, encoder and fusion", wg, sizeof wg);
    clip[0] = &m.P; clip[1] = &Pf; clip[2] = &Pe;
    norm[0] = mmspcl_grad_clip_multi(clip, 3, R->clip);
    norm[1] = mmspcl_grad_clip(&Ps, R->clip);
    CHECK(test_close(norm[0], norm_ref[0], 1e-5, 0) && test_close(norm[1], norm_ref[1], 1e-5, 0),
          "%s: gradient norms %.9g %.9g, PyTorch %.9g %.9g", name, norm[0], norm[1], norm_ref[0], norm_ref[1]);
    mmspcl_adamw_defaults(&ac);
    ac.weight_decay = R->wd;
    mmspcl_adamw_step(&m.P, &ac, R->lr_enc);
    mmspcl_adamw_step(&Pf, &ac, R->lr_head);
    mmspcl_adamw_step(&Pe, &ac, R->lr_head);
    mmspcl_adamw_step(&Ps, &ac, R->lr_head);
    snprintf(nm, sizeof nm, "%s.after", name);
    worst_w = compare_all(sf, nm, all, 4, 0, 1e-5, "weights after clipping and one AdamW step", ww, sizeof ww);
    printf("  joint (fusion %s) vs PyTorch: spcl loss %.9f (rel diff %.1e), gradient norm rel diff %.1e;\n"
           "                      worst gradient max|diff|/max|ref| %.1e (%s), weights after AdamW %.1e (%s)\n",
           name, loss[0], fabs(loss[0] - loss_ref[0]) / loss_ref[0], fabs(norm[0] - norm_ref[0]) / norm_ref[0], worst_g, wg, worst_w, ww);
    free(zt); free(dzt); free(z); free(dz); free(xa); free(xv); free(dout);
    mmspcl_spcl_free(&S);
    mmspcl_pfusion_free(&fu);
    mmspcl_params_free(&Pf); mmspcl_params_free(&Pe); mmspcl_params_free(&Ps);
    mmspcl_roberta_train_free(&m);
}

static void test_parity_joint(void) {
    FILE *f = fopen(REF "/expected.txt", "r"), *fj = fopen(REF "/joint.txt", "r");
    st_file sf;
    char serr[512], name[16];
    ref_t R;
    mmspcl_weights *w = NULL;
    mmspcl_error err;
    double loss[3], norm[2];
    int cfg[5], cases = 0;
    memset(&sf, 0, sizeof sf);
    if (!f || !fj || read_ref(&R, f) || st_open(REF "/joint.safetensors", &sf, serr, sizeof serr)) {
        CHECK(0, "reading %s/joint.* (run tools/reference/spcl_joint_ref.py)", REF);
        if (f) fclose(f);
        if (fj) fclose(fj);
        return;
    }
    CHECK(convert(REF, TMP "-joint.mmw", NULL) == 0 && mmspcl_weights_open(&w, TMP "-joint.mmw", &err) == MMSPCL_OK, "converting %s", REF);
    while (w && !read_joint_case(fj, name, cfg, loss, norm)) {
        joint_case(&sf, &R, w, name, cfg, loss, norm);
        cases++;
    }
    CHECK(cases == 2, "2 joint cases (linear, pruning + linear): %d", cases);
    fclose(f);
    fclose(fj);
    st_close(&sf);
    mmspcl_weights_free(w);
}

/* ---- 5. augmentation prompts ------------------------------------------------------------------ */
static void test_query_prompts(void) {
    FILE *f = fopen("tests/data/prompt/meld_prompts_query.txt", "r");
    mmspcl_weights *w = NULL;
    mmspcl_bpe *tok = NULL;
    mmspcl_error err;
    meld_csv meld;
    mmspcl_turn tt[64];
    int32_t ids[64 * 256];
    int len[64], mask[64], first[64], query[64], n_turns = 0, max_len = 0, checked = 0, good = 0, have = 0, j;
    char line[16384];
    if (test_run(NULL, "mkdir -p " TMP "-bpe && cp tests/data/roberta-tiny/config.json tests/data/roberta-tiny/model.safetensors "
                       "../shared/data/weights/roberta-bpe/vocab.json ../shared/data/weights/roberta-bpe/merges.txt " TMP "-bpe/ 2>/dev/null") ||
        convert(TMP "-bpe", TMP "-bpe.mmw", NULL) || mmspcl_weights_open(&w, TMP "-bpe.mmw", &err) || mmspcl_bpe_from_weights(&tok, w, &err) || !f) {
        printf("  (augmentation prompts skipped: ../shared/data/weights/roberta-bpe not available)\n");
        if (f) fclose(f);
        mmspcl_weights_free(w);
        return;
    }
    while (fgets(line, sizeof line, f)) {
        char csv[64], path[256];
        int dia, t, q, fr, n, mp, off, k, d, same;
        char *p;
        if (sscanf(line, "dialogue %63s %d %d %d", csv, &dia, &max_len, &n_turns) == 4) {
            if (have) meld_csv_free(&meld);
            snprintf(path, sizeof path, "../shared/data/meld/%s", csv);
            have = meld_csv_load(path, &meld, &err) == MMSPCL_OK;
            CHECK(have && n_turns <= 64 && max_len <= 256, "%s: %s", path, have ? "too long" : err.msg);
            if (!have || n_turns > 64 || max_len > 256) break;
            for (d = 0; d < meld.n_dialogues && meld.rows[meld.dialogue_start[d]].dialogue_id != dia; d++) {}
            for (j = 0; j < n_turns; j++) {
                tt[j].speaker = meld.rows[meld.dialogue_start[d] + j].speaker;
                tt[j].text = meld.rows[meld.dialogue_start[d] + j].utterance;
            }
            continue;
        }
        if (sscanf(line, "query %d %d %d %d %d%n", &t, &q, &fr, &n, &mp, &off) != 5 || !have) continue;
        for (j = 0; j < n_turns; j++) query[j] = j;
        query[t] = q;
        if (mmspcl_spcl_prompts_query(tok, tt, n_turns, query, max_len, ids, len, mask, first, &err)) { CHECK(0, "%s", err.msg); break; }
        p = line + off;
        same = len[t] == n && mask[t] == mp && first[t] == fr;
        for (k = 0; k < n && same; k++) same = strtol(p, &p, 10) == ids[(size_t)t * max_len + k];
        CHECK(same, "max_len %d: prompt %d asking about turn %d differs from the reference (%d ids, mask %d, first %d; ref %d, %d, %d)",
              max_len, t, q, len[t], mask[t], first[t], n, mp, fr);
        good += same;
        checked++;
    }
    fclose(f);
    if (have) meld_csv_free(&meld);
    query[0] = 1;
    CHECK(mmspcl_spcl_prompts_query(tok, tt, 2, query, 64, ids, len, mask, NULL, &err) == MMSPCL_ERR_ARG, "a query past its turn is refused");
    mmspcl_bpe_free(tok);
    mmspcl_weights_free(w);
    printf("  augmentation prompts (context of t, asking about q < t): %d/%d as the reference\n", good, checked);
    CHECK(checked > 30 && good == checked, "augmentation prompts: %d of %d as the reference", good, checked);
}

int main(void) {
    if (test_run(NULL, "mkdir -p build/tests/tmp") != 0) CHECK(0, "mkdir");
    test_dropout_masks();
    test_mask_rows();
    test_dropout_forward_backward();
    test_from_weights();
    test_freeze();
    test_parity();
    test_parity_joint();
    test_query_prompts();
    return TEST_END();
}
