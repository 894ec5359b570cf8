/* mmspcl encode-image -m WEIGHTS --image FILE [-o OUT.f32] [--pooled] [--dump-pixels P.f32]
   CLIP vision tower: image file -> projected embedding (or the pooled class token), raw float32. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

static const char *const encode_image_usage =
    "usage: mmspcl encode-image -m WEIGHTS --image FILE [-o OUT.f32] [--pooled] [--dump-pixels P.f32]\n"
    "  -m, --model FILE      weight file of a CLIP vision tower (mmspcl-convert of a Hugging Face CLIP)\n"
    "  --image FILE          PNG, BMP or binary PPM/PGM\n"
    "  -o, --out FILE        write the vector as raw little-endian float32 (default: print it as text)\n"
    "  --pooled              the post-layernorm class token (hidden_size floats) instead of the\n"
    "                        projected image embedding (projection_dim floats, not normalised)\n"
    "  --dump-pixels FILE    also write the preprocessed 3 x S x S input (float32, channels first)\n";

int mmspcl_cmd_encode_image(int argc, char **argv) {
    const char *model = NULL, *image = NULL, *out = NULL, *dump = NULL;
    int pooled = 0, i, rc = 1;
    mmspcl_weights *w = NULL;
    mmspcl_clip *m = NULL;
    mmspcl_image img = {0, 0, NULL};
    mmspcl_error err;
    const mmspcl_clip_config *c;
    float *pixels = NULL, *vec = NULL;
    size_t n_vec, n_px;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { fputs(encode_image_usage, stdout); return 0; }
        else if (!strcmp(a, "-m") || !strcmp(a, "--model")) { if (!(model = cli_arg_value("encode-image", argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--image")) { if (!(image = cli_arg_value("encode-image", argc, argv, &i))) return 2; }
        else if (!strcmp(a, "-o") || !strcmp(a, "--out")) { if (!(out = cli_arg_value("encode-image", argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--dump-pixels")) { if (!(dump = cli_arg_value("encode-image", argc, argv, &i))) return 2; }
        else if (!strcmp(a, "--pooled")) pooled = 1;
        else { cli_fail("encode-image", "unknown option '%s'", a); fputs(encode_image_usage, stderr); return 2; }
    }
    if (!model || !image) {
        cli_fail("encode-image", "%s", !model ? "-m WEIGHTS is required" : "--image FILE is required");
        fputs(encode_image_usage, stderr);
        return 2;
    }

    if (mmspcl_weights_open(&w, model, &err)) { cli_fail("encode-image", "%s", err.msg); goto done; }
    if (mmspcl_clip_load(&m, w, 1, &err)) { cli_fail("encode-image", "%s: %s", model, err.msg); goto done; }
    c = mmspcl_clip_get_config(m);
    if (!pooled && c->projection_dim == 0) {
        cli_fail("encode-image", "%s has no visual_projection: use --pooled", model);
        goto done;
    }
    if (mmspcl_image_load(image, &img, &err)) { cli_fail("encode-image", "%s", err.msg); goto done; }

    n_px = (size_t)3 * (size_t)c->image_size * (size_t)c->image_size;
    n_vec = (size_t)(pooled ? c->hidden_size : c->projection_dim);
    pixels = (float *)malloc(n_px * sizeof(float));
    vec = (float *)malloc(n_vec * sizeof(float));
    if (!pixels || !vec) { cli_fail("encode-image", "out of memory"); goto done; }
    if (mmspcl_clip_preprocess_image(m, &img, pixels, &err)) { cli_fail("encode-image", "%s: %s", image, err.msg); goto done; }
    if (dump && cli_write_f32(dump, pixels, n_px)) { cli_fail("encode-image", "cannot write %s", dump); goto done; }
    if (mmspcl_clip_forward(m, pixels, 1, pooled ? NULL : vec, pooled ? vec : NULL, &err)) {
        cli_fail("encode-image", "%s", err.msg);
        goto done;
    }
    if (out) {
        if (cli_write_f32(out, vec, n_vec)) { cli_fail("encode-image", "cannot write %s", out); goto done; }
        fprintf(stderr, "mmspcl encode-image: %s (%dx%d) -> %s: %zu float32 (%s)\n", image, img.width, img.height,
                out, n_vec, pooled ? "pooled class token" : "projected image embedding");
    } else {
        size_t k;
        for (k = 0; k < n_vec; k++) printf(k + 1 < n_vec ? "%.9g " : "%.9g\n", vec[k]);
    }
    rc = 0;
done:
    free(pixels);
    free(vec);
    mmspcl_image_free(&img);
    mmspcl_clip_free(m);
    if (w) mmspcl_weights_free(w);
    return rc;
}
