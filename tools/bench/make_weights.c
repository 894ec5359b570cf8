/* make_weights roberta|roberta-base|clip DTYPE OUT [--layers N] [--vocab V]
   Writes a weight file with random weights in the shape of RoBERTa-large (24 layers, hidden 1024,
   16 heads, FFN 4096, vocab 50265), RoBERTa-base (roberta-base: 12 layers, hidden 768, 12 heads,
   FFN 3072, vocab 50265; the training-step comparison tools/bench/train_compare.sh) or CLIP ViT-B/32's vision tower (12 layers, hidden 768, 12
   heads, FFN 3072, 224 px, patch 32, projection 512), Linear matrices stored as DTYPE (f32, f32p =
   f32 in panels of 16 rows as mmspcl-convert --panels writes them, f16, bf16, q8_0, q4_0, q4_k, q5_k), everything else f32 -- what mmspcl-convert writes from a Hugging Face
   checkpoint, without needing one. Weights ~ U(-a, a) with a = sqrt(3 / fan_in) (variance 1/fan_in),
   biases and LayerNorm shifts ~ U(-0.01, 0.01), LayerNorm scales 1 + U(-0.01, 0.01). For make bench. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "mmspcl.h"

static unsigned long long rng = 88172645463325252ull;
static float urand(void) {   /* xorshift64, uniform in [-1, 1) */
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

static void **owned;
static int n_owned;
static int g_panels;   /* f32p: f32 Linear weights in panels of 16 rows (mmspcl-convert --panels) */

/* linear: a Linear weight (stored as DTYPE, or as panels for f32p) */
static int add(mmspcl_writer *w, const char *name, mmspcl_dtype dt, int ndim, const int64_t *shape, float scale,
               float offset, int linear) {
    int64_t n = 1, rows, cols, r, i, pshape[3];
    size_t rb;
    float *f;
    unsigned char *q;
    mmspcl_error err;
    for (i = 0; i < ndim; i++) n *= shape[i];
    cols = shape[ndim - 1];
    rows = n / cols;
    rb = mmspcl_dtype_row_size(dt, cols);
    f = (float *)malloc((size_t)cols * sizeof(float));
    q = (unsigned char *)malloc(rb * (size_t)rows);
    if (!f || !q) { fprintf(stderr, "make_weights: out of memory\n"); return -1; }
    for (r = 0; r < rows; r++) {
        for (i = 0; i < cols; i++) f[i] = offset + scale * urand();
        mmspcl_quantize_row(dt, f, q + (size_t)r * rb, cols);
    }
    free(f);
    if (g_panels && linear && rows % MMSPCL_PANEL == 0) {   /* f32 panels {out / 16, in, 16} */
        unsigned char *pq = (unsigned char *)malloc(rb * (size_t)rows);
        if (!pq || mmspcl_pack_panels((const float *)q, rows, cols, (float *)pq)) { fprintf(stderr, "make_weights: out of memory\n"); return -1; }
        free(q);
        q = pq;
        pshape[0] = rows / MMSPCL_PANEL; pshape[1] = cols; pshape[2] = MMSPCL_PANEL;
        ndim = 3;
        shape = pshape;
    }
    owned = (void **)realloc(owned, sizeof(void *) * (size_t)(n_owned + 1));
    owned[n_owned++] = q;
    if (mmspcl_writer_add_tensor(w, name, dt, ndim, shape, q, rb * (size_t)rows, &err)) {
        fprintf(stderr, "make_weights: %s\n", err.msg);
        return -1;
    }
    return 0;
}

#define SHAPE1(a) (s[0] = (a), s)
#define SHAPE2(a, b) (s[0] = (a), s[1] = (b), s)

int main(int argc, char **argv) {
    mmspcl_dtype dt;
    mmspcl_writer *w;
    mmspcl_error err;
    int64_t s[4];
    char name[160];
    int layers = -1, vocab = 50265, i, l, rc = 0;
    g_panels = argc >= 3 && !strcmp(argv[2], "f32p");
    if (argc < 4 || (mmspcl_dtype_from_name(g_panels ? "f32" : argv[2], &dt)) || (strcmp(argv[1], "roberta") && strcmp(argv[1], "roberta-base") && strcmp(argv[1], "clip"))) {
        fprintf(stderr, "usage: make_weights roberta|roberta-base|clip f32|f32p|f16|bf16|q8_0|q4_0|q4_k|q5_k OUT [--layers N] [--vocab V]\n");
        return 2;
    }
    for (i = 4; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--layers")) layers = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--vocab")) vocab = atoi(argv[i + 1]);
    }
    w = mmspcl_writer_create();
    mmspcl_writer_set_str(w, "general.file_type", g_panels ? "f32" : argv[2]);
    mmspcl_writer_set_str(w, "general.source", "tools/bench/make_weights (random)");
    if (!strncmp(argv[1], "roberta", 7)) {
        const int base = !strcmp(argv[1], "roberta-base");
        const int H = base ? 768 : 1024, I = base ? 3072 : 4096, NH = base ? 12 : 16;
        float a = sqrtf(3.0f / H), a2 = sqrtf(3.0f / I);
        if (layers < 0) layers = base ? 12 : 24;
        mmspcl_writer_set_str(w, "general.architecture", "roberta");
        mmspcl_writer_set_int(w, "roberta.vocab_size", vocab);
        mmspcl_writer_set_int(w, "roberta.hidden_size", H);
        mmspcl_writer_set_int(w, "roberta.num_hidden_layers", layers);
        mmspcl_writer_set_int(w, "roberta.num_attention_heads", NH);
        mmspcl_writer_set_int(w, "roberta.intermediate_size", I);
        mmspcl_writer_set_int(w, "roberta.max_position_embeddings", 514);
        mmspcl_writer_set_int(w, "roberta.type_vocab_size", 1);
        mmspcl_writer_set_int(w, "roberta.pad_token_id", 1);
        mmspcl_writer_set_float(w, "roberta.layer_norm_eps", 1e-5);
        mmspcl_writer_set_str(w, "roberta.hidden_act", "gelu");
        rc |= add(w, "embeddings.word_embeddings.weight", MMSPCL_F32, 2, SHAPE2(vocab, H), 0.5f, 0, 0);
        rc |= add(w, "embeddings.position_embeddings.weight", MMSPCL_F32, 2, SHAPE2(514, H), 0.5f, 0, 0);
        rc |= add(w, "embeddings.token_type_embeddings.weight", MMSPCL_F32, 2, SHAPE2(1, H), 0.5f, 0, 0);
        rc |= add(w, "embeddings.LayerNorm.weight", MMSPCL_F32, 1, SHAPE1(H), 0.01f, 1, 0);
        rc |= add(w, "embeddings.LayerNorm.bias", MMSPCL_F32, 1, SHAPE1(H), 0.01f, 0, 0);
        for (l = 0; l < layers && !rc; l++) {
            static const char *const mats[] = {"attention.self.query", "attention.self.key", "attention.self.value",
                                               "attention.output.dense", "intermediate.dense", "output.dense"};
            static const char *const lns[] = {"attention.output.LayerNorm", "output.LayerNorm"};
            for (i = 0; i < 6; i++) {
                const int out = i == 4 ? I : H, in = i == 5 ? I : H;
                snprintf(name, sizeof name, "encoder.layer.%d.%s.weight", l, mats[i]);
                rc |= add(w, name, dt, 2, SHAPE2(out, in), i == 5 ? a2 : a, 0, 1);
                snprintf(name, sizeof name, "encoder.layer.%d.%s.bias", l, mats[i]);
                rc |= add(w, name, MMSPCL_F32, 1, SHAPE1(out), 0.01f, 0, 0);
            }
            for (i = 0; i < 2; i++) {
                snprintf(name, sizeof name, "encoder.layer.%d.%s.weight", l, lns[i]);
                rc |= add(w, name, MMSPCL_F32, 1, SHAPE1(H), 0.01f, 1, 0);
                snprintf(name, sizeof name, "encoder.layer.%d.%s.bias", l, lns[i]);
                rc |= add(w, name, MMSPCL_F32, 1, SHAPE1(H), 0.01f, 0, 0);
            }
        }
    } else {
        const int H = 768, I = 3072, P = 32, S = 224, T = 1 + (S / P) * (S / P);
        float a = sqrtf(3.0f / H), a2 = sqrtf(3.0f / I);
        static const double mean[3] = {0.48145466, 0.4578275, 0.40821073}, stdv[3] = {0.26862954, 0.26130258, 0.27577711};
        if (layers < 0) layers = 12;
        mmspcl_writer_set_str(w, "general.architecture", "clip_vision");
        mmspcl_writer_set_int(w, "clip.image_size", S);
        mmspcl_writer_set_int(w, "clip.patch_size", P);
        mmspcl_writer_set_int(w, "clip.num_channels", 3);
        mmspcl_writer_set_int(w, "clip.hidden_size", H);
        mmspcl_writer_set_int(w, "clip.num_hidden_layers", layers);
        mmspcl_writer_set_int(w, "clip.num_attention_heads", 12);
        mmspcl_writer_set_int(w, "clip.intermediate_size", I);
        mmspcl_writer_set_int(w, "clip.projection_dim", 512);
        mmspcl_writer_set_float(w, "clip.layer_norm_eps", 1e-5);
        mmspcl_writer_set_str(w, "clip.hidden_act", "quick_gelu");
        for (i = 0; i < 3; i++) {
            snprintf(name, sizeof name, "clip.image_mean.%d", i);
            mmspcl_writer_set_float(w, name, mean[i]);
            snprintf(name, sizeof name, "clip.image_std.%d", i);
            mmspcl_writer_set_float(w, name, stdv[i]);
        }
        mmspcl_writer_set_int(w, "clip.resize_shortest_edge", S);
        mmspcl_writer_set_int(w, "clip.crop_size", S);
        s[0] = H; s[1] = 3; s[2] = P; s[3] = P;
        rc |= add(w, "vision_model.embeddings.patch_embedding.weight", MMSPCL_F32, 4, s, sqrtf(3.0f / (3 * P * P)), 0, 0);
        rc |= add(w, "vision_model.embeddings.class_embedding", MMSPCL_F32, 1, SHAPE1(H), 0.5f, 0, 0);
        rc |= add(w, "vision_model.embeddings.position_embedding.weight", MMSPCL_F32, 2, SHAPE2(T, H), 0.5f, 0, 0);
        rc |= add(w, "vision_model.pre_layrnorm.weight", MMSPCL_F32, 1, SHAPE1(H), 0.01f, 1, 0);
        rc |= add(w, "vision_model.pre_layrnorm.bias", MMSPCL_F32, 1, SHAPE1(H), 0.01f, 0, 0);
        for (l = 0; l < layers && !rc; l++) {
            static const char *const mats[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                               "self_attn.out_proj", "mlp.fc1", "mlp.fc2"};
            static const char *const lns[] = {"layer_norm1", "layer_norm2"};
            for (i = 0; i < 6; i++) {
                const int out = i == 4 ? I : H, in = i == 5 ? I : H;
                snprintf(name, sizeof name, "vision_model.encoder.layers.%d.%s.weight", l, mats[i]);
                rc |= add(w, name, dt, 2, SHAPE2(out, in), i == 5 ? a2 : a, 0, 1);
                snprintf(name, sizeof name, "vision_model.encoder.layers.%d.%s.bias", l, mats[i]);
                rc |= add(w, name, MMSPCL_F32, 1, SHAPE1(out), 0.01f, 0, 0);
            }
            for (i = 0; i < 2; i++) {
                snprintf(name, sizeof name, "vision_model.encoder.layers.%d.%s.weight", l, lns[i]);
                rc |= add(w, name, MMSPCL_F32, 1, SHAPE1(H), 0.01f, 1, 0);
                snprintf(name, sizeof name, "vision_model.encoder.layers.%d.%s.bias", l, lns[i]);
                rc |= add(w, name, MMSPCL_F32, 1, SHAPE1(H), 0.01f, 0, 0);
            }
        }
        rc |= add(w, "vision_model.post_layernorm.weight", MMSPCL_F32, 1, SHAPE1(H), 0.01f, 1, 0);
        rc |= add(w, "vision_model.post_layernorm.bias", MMSPCL_F32, 1, SHAPE1(H), 0.01f, 0, 0);
        rc |= add(w, "visual_projection.weight", dt, 2, SHAPE2(512, H), a, 0, 1);
    }
    if (!rc && mmspcl_writer_save(w, argv[3], NULL, NULL, &err)) { fprintf(stderr, "make_weights: %s\n", err.msg); rc = 1; }
    mmspcl_writer_free(w);
    for (i = 0; i < n_owned; i++) free(owned[i]);
    free(owned);
    return rc ? 1 : 0;
}
