/* accuracy roberta|clip REF.mmw TEST.mmw [N]
   Mean (and min) cosine similarity between the encoder outputs of two weight files of the same
   model (typically f32 and its q8_0 / q4_0 conversion) over N (default 100) deterministic random
   inputs. RoBERTa: the last hidden state at the <mask> token (id 50264, or vocab - 1), inputs of
   16 .. max tokens (<s> random ids <mask> </s>). CLIP: the pooled class token (post-layernorm) of
   smooth random images (a few random sinusoids per channel plus a little noise). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "mmspcl.h"

static unsigned lcg(unsigned *s) { *s = *s * 1664525u + 1013904223u; return *s >> 8; }
static double frand(unsigned *s) { return (double)(lcg(s) & 0xffffff) / 16777216.0; }

static double cosine(const float *a, const float *b, int n) {
    double ab = 0, aa = 0, bb = 0;
    int i;
    for (i = 0; i < n; i++) { ab += (double)a[i] * b[i]; aa += (double)a[i] * a[i]; bb += (double)b[i] * b[i]; }
    return ab / sqrt(aa * bb + 1e-300);
}

int main(int argc, char **argv) {
    const int N = argc > 4 ? atoi(argv[4]) : 100, B = 10;
    mmspcl_weights *w[2] = {NULL, NULL};
    mmspcl_error err;
    double sum = 0, mn = 2;
    int i, k, done, rc = 1;
    if (argc < 4 || (strcmp(argv[1], "roberta") && strcmp(argv[1], "clip")) || N < 1) {
        fprintf(stderr, "usage: accuracy roberta|clip REF.mmw TEST.mmw [N]\n");
        return 2;
    }
    for (k = 0; k < 2; k++)
        if (mmspcl_weights_open(&w[k], argv[2 + k], &err)) { fprintf(stderr, "accuracy: %s\n", err.msg); goto out; }
    if (!strcmp(argv[1], "roberta")) {
        const int seq = 128;
        mmspcl_roberta *m[2] = {NULL, NULL};
        int32_t *ids = (int32_t *)malloc(sizeof(int32_t) * B * seq);
        int lengths[10], H = 0, vocab, mask;
        float *hid[2];
        unsigned s = 2024;
        for (k = 0; k < 2; k++)
            if (mmspcl_roberta_load(&m[k], w[k], B, seq, &err)) { fprintf(stderr, "accuracy: %s\n", err.msg); goto out; }
        H = mmspcl_roberta_get_config(m[0])->hidden_size;
        vocab = mmspcl_roberta_get_config(m[0])->vocab_size;
        mask = vocab > 50264 ? 50264 : vocab - 1;
        hid[0] = (float *)malloc(sizeof(float) * B * seq * H);
        hid[1] = (float *)malloc(sizeof(float) * B * seq * H);
        for (done = 0; done < N; done += B) {
            const int nb = N - done < B ? N - done : B;
            for (i = 0; i < nb; i++) {
                int t, L = 16 + (int)(lcg(&s) % (unsigned)(seq - 15));
                lengths[i] = L;
                for (t = 0; t < L; t++)
                    ids[i * seq + t] = t == 0 ? 0 : t == L - 1 ? 2 : t == L - 2 ? mask : 3 + (int32_t)(lcg(&s) % (unsigned)(vocab - 4));
            }
            for (k = 0; k < 2; k++)
                if (mmspcl_roberta_forward(m[k], ids, lengths, nb, seq, hid[k], &err)) { fprintf(stderr, "accuracy: %s\n", err.msg); goto out; }
            for (i = 0; i < nb; i++) {
                const size_t at = ((size_t)i * seq + (size_t)(lengths[i] - 2)) * H;
                double c = cosine(hid[0] + at, hid[1] + at, H);
                sum += c;
                mn = c < mn ? c : mn;
            }
        }
        for (k = 0; k < 2; k++) mmspcl_roberta_free(m[k]);
        free(ids); free(hid[0]); free(hid[1]);
    } else {
        mmspcl_clip *m[2] = {NULL, NULL};
        int S, H, c, y, x;
        float *px, *pooled[2];
        unsigned s = 77;
        for (k = 0; k < 2; k++)
            if (mmspcl_clip_load(&m[k], w[k], B, &err)) { fprintf(stderr, "accuracy: %s\n", err.msg); goto out; }
        S = mmspcl_clip_get_config(m[0])->image_size;
        H = mmspcl_clip_get_config(m[0])->hidden_size;
        px = (float *)malloc(sizeof(float) * B * 3 * S * S);
        pooled[0] = (float *)malloc(sizeof(float) * B * H);
        pooled[1] = (float *)malloc(sizeof(float) * B * H);
        for (done = 0; done < N; done += B) {
            const int nb = N - done < B ? N - done : B;
            for (i = 0; i < nb; i++)
                for (c = 0; c < 3; c++) {
                    double fx[4], fy[4], ph[4], amp[4];
                    int j;
                    for (j = 0; j < 4; j++) {
                        fx[j] = 0.2 * frand(&s); fy[j] = 0.2 * frand(&s);
                        ph[j] = 6.2831853 * frand(&s); amp[j] = 0.8 * frand(&s);
                    }
                    for (y = 0; y < S; y++)
                        for (x = 0; x < S; x++) {
                            double v = 0.3 * (frand(&s) - 0.5);
                            for (j = 0; j < 4; j++) v += amp[j] * sin(fx[j] * x + fy[j] * y + ph[j]);
                            px[(((size_t)i * 3 + c) * S + y) * S + x] = (float)v;
                        }
                }
            for (k = 0; k < 2; k++)
                if (mmspcl_clip_forward(m[k], px, nb, NULL, pooled[k], &err)) { fprintf(stderr, "accuracy: %s\n", err.msg); goto out; }
            for (i = 0; i < nb; i++) {
                double cs = cosine(pooled[0] + (size_t)i * H, pooled[1] + (size_t)i * H, H);
                sum += cs;
                mn = cs < mn ? cs : mn;
            }
        }
        for (k = 0; k < 2; k++) mmspcl_clip_free(m[k]);
        free(px); free(pooled[0]); free(pooled[1]);
    }
    printf("result accuracy model=%s inputs=%d mean_cos=%.6f min_cos=%.6f ref=%s test=%s\n", argv[1], N, sum / N, mn,
           argv[2], argv[3]);
    rc = 0;
out:
    mmspcl_weights_free(w[0]);
    mmspcl_weights_free(w[1]);
    return rc;
}
