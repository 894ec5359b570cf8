/* RoBERTa-layout encoder training (mmspcl_train.h):
   - the training forward equals mmspcl_roberta_forward on the same weights (written to a weight
     file in memory with the roberta.* keys and loaded by the standard loader);
   - a packed batch gives each sequence exactly the output of running it alone (padding masks;
     the kernels compute every row the same way whatever the batch);
   - every parameter group's gradient (and the MLM head's, tied embeddings included) against
     central finite differences on a tiny configuration.
   The passes run in float32, so the finite differences use a step of 1e-2 on a loss computed in
   double and the bound is |num - ana| <= 0.03 * max(|num|, |ana|) + 3e-3 (float rounding of the
   loss is ~1e-6 relative; the step's truncation error is O(h^2) ~ 1e-4). */
#define MMSPCL_IMPLEMENTATION
#define MMSPCL_TRAIN_IMPLEMENTATION
#include "mmspcl.h"
#include "mmspcl_train.h"
#include "tests/test.h"
#include <stdlib.h>

#define B 3
#define S 7
static const int lens[B] = {5, 3, 7};
static const int32_t ids[B][S] = {{0, 5, 7, 4, 2, 1, 1}, {0, 9, 2, 1, 1, 1, 1}, {0, 6, 1, 8, 10, 4, 2}};
static float rdir[B * S * 16];
static const int mrows[3] = {2, 6, 12};
static const int32_t mtgt[3] = {3, 8, 5};

/* L = sum_t r_t . out_t + MLM loss at mrows */
static double loss_of(mmspcl_roberta_train *m, float *dout, int backward) {
    mmspcl_error err;
    double L = 0.0, lm;
    int i, n;
    if (mmspcl_roberta_train_forward(m, &ids[0][0], lens, B, S, &err)) { fprintf(stderr, "%s\n", err.msg); return 0; }
    n = m->T * m->cfg.hidden_size;
    for (i = 0; i < n; i++) L += (double)rdir[i] * m->out[i];
    lm = mmspcl_roberta_train_mlm_loss(m, mrows, mtgt, 3, dout, &err);
    L += lm;
    if (backward) {
        for (i = 0; i < n; i++) dout[i] += rdir[i];
        mmspcl_params_zero_grad(&m->P);
        mmspcl_roberta_train_backward(m, dout, NULL, &err);
    }
    return L;
}

int main(void) {
    mmspcl_roberta_config c;
    mmspcl_roberta_train m;
    mmspcl_error err;
    mmspcl_rng rng;
    float dout[B * S * 16];
    int i, t, checked = 0, bad = 0;

    memset(&c, 0, sizeof c);
    c.vocab_size = 11; c.hidden_size = 16; c.num_layers = 2; c.num_heads = 2; c.intermediate_size = 32;
    c.max_positions = 10; c.type_vocab_size = 1; c.pad_id = 1; c.layer_norm_eps = 1e-5f;
    CHECK(mmspcl_roberta_train_create(&m, &c, 1, 42, 64, S, &err) == MMSPCL_OK, "create: %s", err.msg);
    /* bigger random weights than the 0.02 init so every path carries signal */
    mmspcl_rng_seed(&rng, 7);
    for (i = 0; i < (int)m.P.n; i++) m.P.w[i] += 0.3 * mmspcl_rng_normal(&rng);
    mmspcl_roberta_train_sync(&m);
    for (i = 0; i < B * S * 16; i++) rdir[i] = (float)mmspcl_rng_normal(&rng);

    /* 1. forward == mmspcl_roberta_forward */
    {
        mmspcl_writer *wr = mmspcl_writer_create();
        unsigned char *bytes = NULL;
        size_t size = 0;
        void *hold = NULL;
        mmspcl_weights *w = NULL;
        mmspcl_roberta *r = NULL;
        float hidden[B * S * 16];
        double md = 0;
        int b;
        CHECK(mmspcl_roberta_train_write_config(&m, wr, &err) == MMSPCL_OK, "config");
        CHECK(mmspcl_roberta_train_write_tensors(&m, wr, MMSPCL_F32, &hold, &err) == MMSPCL_OK, "tensors: %s", err.msg);
        CHECK(mmspcl_writer_save_to_memory(wr, &bytes, &size, &err) == MMSPCL_OK, "save: %s", err.msg);
        CHECK(mmspcl_weights_from_memory(&w, bytes, size, &err) == MMSPCL_OK, "open: %s", err.msg);
        CHECK(mmspcl_roberta_load(&r, w, B, S, &err) == MMSPCL_OK, "load: %s", err.msg);
        CHECK(mmspcl_roberta_forward(r, &ids[0][0], lens, B, S, hidden, &err) == MMSPCL_OK, "fwd: %s", err.msg);
        CHECK(mmspcl_roberta_train_forward(&m, &ids[0][0], lens, B, S, &err) == MMSPCL_OK, "rt fwd");
        for (b = 0, t = 0; b < B; b++)
            for (i = 0; i < lens[b] * 16; i++) {
                double d = fabs((double)hidden[b * S * 16 + i] - m.out[(size_t)t * 16 + i]);
                if (d > md) md = d;
                if (i == lens[b] * 16 - 1) t += lens[b];
            }
        CHECK(md == 0.0, "training forward differs from mmspcl_roberta_forward by %g", md);
        mmspcl_roberta_free(r);
        mmspcl_weights_free(w);
        free(bytes);
        mmspcl_writer_free(wr);
        MMSPCL_FREE(hold);
    }
    /* 2. padding: each sequence alone == its rows in the packed batch */
    {
        float packed[B * S * 16];
        int b, start = 0;
        double md = 0;
        mmspcl_roberta_train_forward(&m, &ids[0][0], lens, B, S, &err);
        memcpy(packed, m.out, sizeof(float) * m.T * 16);
        for (b = 0; b < B; b++) {
            mmspcl_roberta_train_forward(&m, ids[b], &lens[b], 1, S, &err);
            for (i = 0; i < lens[b] * 16; i++) {
                double d = fabs((double)packed[start * 16 + i] - m.out[i]);
                if (d > md) md = d;
            }
            start += lens[b];
        }
        CHECK(md == 0, "a sequence alone differs from its packed rows by %g", md);
    }
    /* 3. gradients: every tensor, up to 12 entries each (pad rows and unused ids included) */
    {
        double *ana = (double *)malloc(sizeof(double) * m.P.n);
        int p;
        loss_of(&m, dout, 1);
        memcpy(ana, m.P.g, sizeof(double) * m.P.n);
        for (p = 0; p < m.P.n_info; p++) {
            const mmspcl_param_info *pi = &m.P.info[p];
            int k, nk = pi->n < 12 ? (int)pi->n : 12, tbad = 0;
            for (k = 0; k < nk; k++) {
                size_t j = pi->off + (pi->n <= 12 ? (size_t)k : (size_t)mmspcl_rng_int(&rng, (int)pi->n));
                const double h = 1e-2, w0 = m.P.w[j];
                double lp, lmn, num;
                m.P.w[j] = w0 + h; mmspcl_roberta_train_sync(&m); lp = loss_of(&m, dout, 0);
                m.P.w[j] = w0 - h; mmspcl_roberta_train_sync(&m); lmn = loss_of(&m, dout, 0);
                m.P.w[j] = w0; mmspcl_roberta_train_sync(&m);
                num = (lp - lmn) / (2 * h);
                checked++;
                if (fabs(num - ana[j]) > 0.03 * fmax(fabs(num), fabs(ana[j])) + 3e-3) {
                    if (!tbad) fprintf(stderr, "  %s[%zu]: numeric %.6g analytic %.6g\n", pi->name, j - pi->off, num, ana[j]);
                    tbad++;
                }
            }
            bad += tbad;
            CHECK(tbad == 0, "gradient of %s: %d of %d entries off", pi->name, tbad, nk);
        }
        CHECK(checked > 200, "only %d gradient entries checked", checked);
        printf("gradient check: %d entries in %d tensors, %d off\n", checked, m.P.n_info, bad);
        free(ana);
    }
    /* 4. a few AdamW steps on the MLM loss lower it */
    {
        mmspcl_adamw_cfg ac;
        double first = 0, last = 0;
        int s;
        mmspcl_adamw_defaults(&ac);
        for (s = 0; s < 30; s++) {
            double l = loss_of(&m, dout, 0);
            int rowsall[3];
            (void)l;
            memcpy(rowsall, mrows, sizeof rowsall);
            l = mmspcl_roberta_train_mlm_loss(&m, rowsall, mtgt, 3, dout, &err);
            if (s == 0) first = l;
            last = l;
            mmspcl_params_zero_grad(&m.P);
            mmspcl_roberta_train_backward(&m, dout, NULL, &err);
            mmspcl_grad_clip(&m.P, 5.0);
            mmspcl_adamw_step(&m.P, &ac, 1e-2);
            mmspcl_roberta_train_sync(&m);
        }
        CHECK(last < 0.5 * first, "MLM loss %g -> %g after 30 steps", first, last);
    }
    mmspcl_roberta_train_free(&m);
    return TEST_END();
}
