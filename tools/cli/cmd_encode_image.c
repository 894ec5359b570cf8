/* mmspcl encode-image -m WEIGHTS --image FILE [-o OUT.f32] [--pooled] [--dump-pixels P.f32] [--json]
   CLIP vision tower: image file -> projected embedding (or the pooled class token), raw float32. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

#define CMD "encode-image"

/* {"image", "width", "height", "kind": "projected" | "pooled", "floats", "output": PATH | null,
   "vector": [...] | null (null when written to -o)} */
static void print_json(const char *image, const mmspcl_image *img, int pooled, const char *out, const float *vec, size_t n) {
    size_t k;
    printf("{\"image\": ");
    cli_json_str(stdout, image);
    printf(", \"width\": %d, \"height\": %d, \"kind\": \"%s\", \"floats\": %zu, \"output\": ", img->width, img->height,
           pooled ? "pooled" : "projected", n);
    cli_json_str(stdout, out);
    printf(", \"vector\": ");
    if (out) { printf("null}\n"); return; }
    printf("[");
    for (k = 0; k < n; k++) {
        if (k) printf(", ");
        cli_json_num(stdout, vec[k], 9);
    }
    printf("]}\n");
}

/* refuses outputs that are an input or each other; 0 or 2 */
static int check_paths(const char *model, const char *image, const char *out, const char *dump, int json) {
    const char *in_opts[2] = {"-m", "--image"}, *in_paths[2];
    int rc;
    in_paths[0] = model; in_paths[1] = image;
    if ((rc = cli_one_stdin(CMD, 2, in_opts, in_paths))) return rc;
    if (out && (rc = cli_refuse_same(CMD, "-o", out, 2, in_opts, in_paths))) return rc;
    if (dump && (rc = cli_refuse_same(CMD, "--dump-pixels", dump, 2, in_opts, in_paths))) return rc;
    if (out && dump && (!strcmp(out, dump) || cli_same_file(out, dump)))
        return cli_usage_error(CMD, "-o %s and --dump-pixels %s are the same file", out, dump);
    if (json && ((out && !strcmp(out, "-")) || (dump && !strcmp(dump, "-"))))
        return cli_usage_error(CMD, "--json and an output to standard output (-) cannot be combined");
    return 0;
}

int mmspcl_cmd_encode_image(int argc, char **argv) {
    const char *model = NULL, *image = NULL, *out = NULL, *dump = NULL;
    int pooled = 0, json = 0, np, rc;
    mmspcl_weights *w = NULL;
    mmspcl_clip *m = NULL;
    mmspcl_image img = {0, 0, NULL};
    mmspcl_error err;
    const mmspcl_clip_config *c;
    float *pixels = NULL, *vec = NULL;
    size_t n_vec, n_px, k;
    cli_out o, od, *outs[2];
    const cli_opt opts[] = {
        CLI_OPT_REQ("-m, --model", &model, "WEIGHTS", "weight file of a CLIP vision tower (mmspcl-convert), - for standard input"),
        CLI_OPT_REQ("--image", &image, "FILE", "PNG, BMP or binary PPM/PGM, - for standard input"),
        CLI_OPT_STR("-o, --output, --out", &out, "OUT.f32", "write the vector as raw little-endian float32, - for standard output",
                    "print it as text"),
        CLI_OPT_FLAG("--pooled", &pooled, "the post-layernorm class token (hidden_size floats) instead of the projected embedding"),
        CLI_OPT_STR("--dump-pixels", &dump, "FILE", "also write the preprocessed 3 x S x S input (float32, channels first)", NULL),
        CLI_OPT_FLAG("--json", &json, "one JSON object (image size, kind, vector) on standard output"),
        CLI_OPT_END};
    const cli_spec spec = {CMD, "-m WEIGHTS --image FILE [options]",
                           "CLIP vision tower: the projected image embedding (not normalised) or the pooled class token.",
                           opts, NULL, 0,
                           "JSON: {\"image\", \"width\", \"height\", \"kind\" (projected or pooled), \"floats\", \"output\" (the -o file\n"
                           "or null), \"vector\" (null with -o)}"};
    memset(&o, 0, sizeof o);
    memset(&od, 0, sizeof od);
    if ((rc = cli_parse(&spec, argc, argv, &np)) != CLI_GO) return rc;
    if ((rc = check_paths(model, image, out, dump, json))) return rc;
    if ((out && cli_out_open(&o, CMD, out)) || (dump && cli_out_open(&od, CMD, dump))) { cli_out_discard(&o); return 1; }
    outs[0] = out ? &o : NULL;
    outs[1] = dump ? &od : NULL;
    rc = 1;
    if (cli_weights_open(CMD, model, &w)) goto done;
    if (mmspcl_clip_load(&m, w, 1, &err)) { cli_fail(CMD, "%s: %s", model, err.msg); goto done; }
    c = mmspcl_clip_get_config(m);
    if (!pooled && c->projection_dim == 0) { cli_fail(CMD, "%s has no visual_projection: use --pooled", model); goto done; }
    if (mmspcl_image_load(image, &img, &err)) { cli_fail_io(CMD, image, &err); goto done; }
    n_px = (size_t)3 * (size_t)c->image_size * (size_t)c->image_size;
    n_vec = (size_t)(pooled ? c->hidden_size : c->projection_dim);
    pixels = (float *)malloc(n_px * sizeof(float));
    vec = (float *)malloc(n_vec * sizeof(float));
    if (!pixels || !vec) { cli_fail(CMD, "out of memory"); goto done; }
    if (mmspcl_clip_preprocess_image(m, &img, pixels, &err)) { cli_fail(CMD, "%s: %s", image, err.msg); goto done; }
    if (dump && cli_out_f32(&od, CMD, pixels, n_px)) goto done;
    if (mmspcl_clip_forward(m, pixels, 1, pooled ? NULL : vec, pooled ? vec : NULL, &err)) { cli_fail(CMD, "%s", err.msg); goto done; }
    if (out && cli_out_f32(&o, CMD, vec, n_vec)) goto done;
    if (cli_outs_commit(outs, 2, CMD)) goto done;   /* -o and --dump-pixels: both or neither */
    if (out) {
        if (!json)
            fprintf(stderr, "mmspcl encode-image: %s (%dx%d) -> %s: %zu float32 (%s)\n", image, img.width, img.height, out, n_vec,
                    pooled ? "pooled class token" : "projected image embedding");
    }
    if (json) print_json(image, &img, pooled, out, vec, n_vec);
    else if (!out)
        for (k = 0; k < n_vec; k++) printf(k + 1 < n_vec ? "%.9g " : "%.9g\n", vec[k]);
    rc = 0;
done:
    cli_outs_discard(outs, 2);
    free(pixels);
    free(vec);
    mmspcl_image_free(&img);
    mmspcl_clip_free(m);
    mmspcl_weights_free(w);
    return rc;
}
