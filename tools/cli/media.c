/* tools/cli/media.c - an utterance's audio and video vectors from MELD-named clip files
   (declarations and naming: media.h). */
#if !defined(_WIN32) && !defined(_XOPEN_SOURCE)
#define _XOPEN_SOURCE 700 /* stat */
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cli.h"
#include "media.h"

int cli_media_path(const char *cmd, char *buf, size_t n, const char *dir, long long dia, long long utt, const char *ext) {
    const int k = snprintf(buf, n, "%s/dia%lld_utt%lld.%s", dir, dia, utt, ext);
    if (k < 0 || (size_t)k >= n) return cli_fail(cmd, "--media %.60s...: the path of a clip is over %zu bytes", dir, n - 1);
    return 0;
}

/* 1 when path does not exist (so the caller may fall back); other stat failures are reported
   by the reader that opens it */
static int cli_media_absent(const char *path) {
    struct stat sb;
    return stat(path, &sb) != 0 && errno == ENOENT;
}

typedef struct media_one { float *out; int rows; } media_one;

static mmspcl_status media_take(void *user, const float *rows, int n_rows, int dim, mmspcl_error *err) {
    media_one *o = (media_one *)user;
    (void)err;
    if (n_rows > 0 && dim == MMSPCL_EGEMAPS_N && !o->rows) memcpy(o->out, rows, sizeof(float) * MMSPCL_EGEMAPS_N);
    o->rows += n_rows;
    return MMSPCL_OK;
}

int cli_media_audio(const char *cmd, const char *path, float *out) {
    mmspcl_wav_reader r;
    mmspcl_error err;
    mmspcl_status st;
    media_one o;
    if (cli_media_absent(path)) return CLI_MEDIA_MISSING;
    if (mmspcl_wav_open(&r, path, &err)) return cli_fail_io(cmd, path, &err);
    o.out = out;
    o.rows = 0;
    st = mmspcl_audio_encode(&r, MMSPCL_EGEMAPS, media_take, &o, &err);
    mmspcl_wav_close(&r);
    if (st) return cli_fail(cmd, "%s: %s", path, err.msg);
    if (o.rows != 1) return cli_fail(cmd, "%s: no eGeMAPS row came out", path);
    return 0;
}

int cli_media_clip_open(const char *cmd, const char *path, mmspcl_weights **w, mmspcl_clip **clip, int *dim) {
    mmspcl_error err;
    *clip = NULL;
    if (cli_weights_open(cmd, path, w)) return 1;
    if (mmspcl_clip_load(clip, *w, 1, &err)) {
        cli_fail(cmd, "--clip %s: %s", path, err.msg);
        mmspcl_weights_free(*w);
        *w = NULL;
        return 1;
    }
    *dim = mmspcl_clip_get_config(*clip)->projection_dim;
    if (*dim <= 0) {
        cli_fail(cmd, "--clip %s has no visual_projection (a CLIP vision tower with its projection is needed)", path);
        mmspcl_clip_free(*clip);
        mmspcl_weights_free(*w);
        *clip = NULL;
        *w = NULL;
        return 1;
    }
    return 0;
}

int cli_media_video(const char *cmd, mmspcl_clip *clip, const char *path, float *out) {
    mmspcl_image img = {0, 0, NULL};
    mmspcl_error err;
    mmspcl_status st;
    if (cli_media_absent(path)) return CLI_MEDIA_MISSING;
    if (mmspcl_image_load(path, &img, &err)) return cli_fail_io(cmd, path, &err);
    st = mmspcl_clip_embed_image(clip, &img, out, &err);
    mmspcl_image_free(&img);
    if (st) return cli_fail(cmd, "%s: %s", path, err.msg);
    return 0;
}
