/* tools/cli/media.h - the media of one utterance, as mmspcl classify --media and mmspcl extract
   read them (code in tools/cli/media.c). MELD's clip naming: DIR/diaX_uttY.wav, the sound
   (any WAV the reader takes; MELD's mp4 gives 16 kHz mono with the README's ffmpeg line), and
   DIR/diaX_uttY.png, the clip's middle frame (any image mmspcl_image_load takes), X the
   Dialogue_ID and Y the Utterance_ID. */
#ifndef MMSPCL_CLI_MEDIA_H
#define MMSPCL_CLI_MEDIA_H
#include "mmspcl.h"
#include <stddef.h>

#define CLI_MEDIA_MISSING 3   /* the file does not exist (nothing printed) */

/* DIR/diaX_uttY.EXT into buf (n bytes); 0, or 1 after a message when it does not fit. */
int cli_media_path(const char *cmd, char *buf, size_t n, const char *dir, long long dia, long long utt, const char *ext);
/* The 88 eGeMAPS functionals of a WAV file: 0, CLI_MEDIA_MISSING, or 1 after a message naming the file. */
int cli_media_audio(const char *cmd, const char *path, float *out);
/* A CLIP model for the video vectors: 0, or 1 after a message. *dim: its projection width. */
int cli_media_clip_open(const char *cmd, const char *path, mmspcl_weights **w, mmspcl_clip **clip, int *dim);
/* The projected CLIP embedding of an image file: 0, CLI_MEDIA_MISSING, or 1 after a message. */
int cli_media_video(const char *cmd, mmspcl_clip *clip, const char *path, float *out);
#endif
