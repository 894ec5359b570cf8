/* embed_frame: the video side of MM-SPCL for one utterance.

   A MELD utterance's clip, given as a folder of extracted frames (PNG, BMP or PPM/PGM, e.g. from
   `ffmpeg -i dia0_utt0.mp4 frames/%05d.png`), is represented by its middle frame: the image files
   are sorted by name and the one at index n/2 goes through CLIP's image tower.

     embed_frame WEIGHTS FRAMES_DIR [OUT.f32]

   WEIGHTS: a CLIP vision tower converted with `mmspcl-convert openai/clip-vit-base-patch32 clip.mmspcl`.
   Prints the chosen frame and the projected embedding (z_v before L2 normalisation) as text, or
   writes it to OUT.f32 as raw little-endian float32.

   Build: cc -std=c99 -O2 -I. examples/embed_frame.c build/libmmspcl.a -lm  (add -fopenmp to use threads) */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include "mmspcl.h"

/* Does the name end with one of the extensions the decoders read? (case-insensitive) */
static int is_image_name(const char *name) {
    static const char *const ext[] = {".png", ".bmp", ".ppm", ".pgm", ".pnm"};
    size_t n = strlen(name), i, j;
    for (i = 0; i < sizeof ext / sizeof ext[0]; i++) {
        size_t k = strlen(ext[i]);
        if (n <= k) continue;
        for (j = 0; j < k && tolower((unsigned char)name[n - k + j]) == ext[i][j]; j++) {}
        if (j == k) return 1;
    }
    return 0;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The image files of dir, sorted by name (byte order, so 00009.png < 00010.png); NULL when the
   folder cannot be read. */
static char **list_frames(const char *dir, size_t *count) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0, cap = 0;
    *count = 0;
    if (!d) return NULL;
    if (!(names = (char **)malloc((cap = 64) * sizeof *names))) { closedir(d); return NULL; }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !is_image_name(e->d_name)) continue;
        if (n == cap) {
            char **grown = (char **)realloc(names, (cap *= 2) * sizeof *names);
            if (!grown) break;
            names = grown;
        }
        if (!(names[n] = (char *)malloc(strlen(e->d_name) + 1))) break;
        strcpy(names[n++], e->d_name);
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, by_name);
    *count = n;
    return names;
}

/* n floats, little-endian, to path through path.tmp and a rename: a failed write leaves no
   half-written path (and an earlier path as it was) */
static int write_f32(const char *path, const float *x, size_t n) {
    char tmp[4200];
    FILE *f;
    size_t i;
    int bad = 0;
    if (strlen(path) + 5 > sizeof tmp) return -1;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (!(f = fopen(tmp, "wb"))) return -1;
    for (i = 0; i < n && !bad; i++) {
        unsigned char b[4];
        uint32_t u;
        memcpy(&u, &x[i], 4);
        b[0] = (unsigned char)u; b[1] = (unsigned char)(u >> 8);
        b[2] = (unsigned char)(u >> 16); b[3] = (unsigned char)(u >> 24);
        bad = fwrite(b, 1, 4, f) != 4;
    }
    bad |= fflush(f) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) { remove(tmp); return -1; }
    return 0;
}

int main(int argc, char **argv) {
    mmspcl_weights *w = NULL;
    mmspcl_clip *clip = NULL;
    mmspcl_image img = {0, 0, NULL};
    mmspcl_error err;
    char **frames, path[4096];
    size_t n_frames = 0, i;
    float *embed = NULL;
    int dim, rc = 1;

    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s WEIGHTS FRAMES_DIR [OUT.f32]\n", argv[0]);
        return 2;
    }
    /* 1. the middle frame */
    frames = list_frames(argv[2], &n_frames);
    if (!frames && n_frames == 0) {
        fprintf(stderr, "%s: cannot read the folder %s\n", argv[0], argv[2]);
        goto done;
    }
    if (n_frames == 0) {
        fprintf(stderr, "%s: no PNG/BMP/PPM/PGM frames in %s\n", argv[0], argv[2]);
        goto done;
    }
    snprintf(path, sizeof path, "%s/%s", argv[2], frames[n_frames / 2]);

    /* 2. the model: weights (mmap'ed) and the vision tower for one image at a time */
    if (mmspcl_weights_open(&w, argv[1], &err) || mmspcl_clip_load(&clip, w, 1, &err)) {
        fprintf(stderr, "%s: %s\n", argv[1], err.msg);
        goto done;
    }
    dim = mmspcl_clip_get_config(clip)->projection_dim;

    /* 3. decode, preprocess (shortest side, centre crop, CLIP mean/std) and embed */
    if (mmspcl_image_load(path, &img, &err)) { fprintf(stderr, "%s\n", err.msg); goto done; }
    embed = (float *)malloc((size_t)(dim > 0 ? dim : 1) * sizeof(float));
    if (!embed) goto done;
    if (mmspcl_clip_embed_image(clip, &img, embed, &err)) { fprintf(stderr, "%s: %s\n", path, err.msg); goto done; }

    /* 4. print or write */
    fprintf(stderr, "frame %zu of %zu: %s (%dx%d) -> %d floats\n", n_frames / 2 + 1, n_frames, path, img.width,
            img.height, dim);
    if (argc == 4) {
        if (write_f32(argv[3], embed, (size_t)dim)) { fprintf(stderr, "cannot write %s\n", argv[3]); goto done; }
    } else {
        int k;
        for (k = 0; k < dim; k++) printf(k + 1 < dim ? "%.9g " : "%.9g\n", embed[k]);
    }
    rc = 0;
done:
    free(embed);
    mmspcl_image_free(&img);
    mmspcl_clip_free(clip);
    if (w) mmspcl_weights_free(w);
    for (i = 0; i < n_frames; i++) free(frames[i]);
    free(frames);
    return rc;
}
