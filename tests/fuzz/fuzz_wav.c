/* fuzz_wav.c — WAV reading (mmspcl_wav_open_memory / _read: every chunk, format and size field)
   and what follows a file that reads: fbank and MFCC at its rate, F0, the resampler to 16 kHz and
   eGeMAPS on the first second. Invariants: a refused file leaves nothing open; a file that opens
   has 1.. channels, a rate in range, at least one frame, all inside the bytes given; reading in
   blocks of any size yields exactly its frames or an error; PCM samples lie in [-1, 1]; the
   frame counts of every feature are what their formulas say. Seeds: the small WAV files of
   tests/fuzz/corpus/wav (every format, odd chunks, extensible; tests/fuzz/make_corpus.py). */
#define MMSPCL_IMPLEMENTATION
#include "mmspcl.h"
#include "tests/fuzz/fuzz.h"
#include "tests/test.h"

#include <string.h>

#define FUZZ_WAV_MAX 16000   /* samples analysed (the first second at 16 kHz) */

static void fuzz_wav_features(const float *x, int n, int rate) {
    mmspcl_error err;
    float *out, *x16;
    int kind, got;
    mmspcl_fbank fb;
    mmspcl_resampler rs;
    if (rate >= 400 && n > 0) {
        for (kind = 0; kind < 2; kind++) {
            if (mmspcl_fbank_init(&fb, kind, rate, &err) != MMSPCL_OK) continue;
            out = (float *)malloc(sizeof(float) * (size_t)(mmspcl_fbank_frames(&fb, n) * fb.dim + 1));
            if (out) {
                FUZZ_CHECK(mmspcl_fbank_push(&fb, x, n, out, (int)mmspcl_fbank_frames(&fb, n), &got, &err) == MMSPCL_OK);
                FUZZ_CHECK(got == mmspcl_fbank_frames(&fb, n));
                free(out);
            }
            mmspcl_fbank_free(&fb);
        }
    }
    if (rate >= 2000 && n > 0) {
        out = (float *)malloc(sizeof(float) * (size_t)(mmspcl_pitch_frames(rate, n) + 1));
        if (out) {
            FUZZ_CHECK(mmspcl_pitch_compute(rate, x, n, out, &err) == MMSPCL_OK);
            free(out);
        }
    }
    if (mmspcl_resampler_init(&rs, rate, 16000, &err) != MMSPCL_OK) return;
    x16 = (float *)malloc(sizeof(float) * (size_t)(mmspcl_resample_bound(&rs, n) + 1));
    if (x16 && mmspcl_resample(&rs, x, n, 1, x16, (int)mmspcl_resample_bound(&rs, n), &got, &err) == MMSPCL_OK) {
        float e[MMSPCL_EGEMAPS_N];
        FUZZ_CHECK(got == mmspcl_resample_count(rate, 16000, n));
        if (got > FUZZ_WAV_MAX) got = FUZZ_WAV_MAX;
        FUZZ_CHECK(mmspcl_egemaps_compute(x16, got, e, &err) == MMSPCL_OK);
    }
    free(x16);
    mmspcl_resampler_free(&rs);
}

FUZZ_TARGET(wav) {
    mmspcl_wav_reader r;
    mmspcl_error err;
    float *x;
    int n = 0, got, block, pcm;
    int64_t want;
    mmspcl_status st;
    if (mmspcl_wav_open_memory(&r, data, size, &err) != MMSPCL_OK) {
        FUZZ_CHECK(r.buf == NULL && r.mem == NULL);
        return 0;
    }
    FUZZ_CHECK(r.info.channels >= 1 && r.info.sample_rate >= 1 && r.info.sample_rate <= MMSPCL_WAV_MAX_RATE && r.info.frames >= 1);
    FUZZ_CHECK(r.info.data_offset >= 12 && (uint64_t)r.info.data_offset + (uint64_t)r.info.frames * (uint64_t)r.info.channels * (uint64_t)r.info.container <= size);
    pcm = r.info.format == MMSPCL_WAV_PCM;
    want = r.info.frames < FUZZ_WAV_MAX ? r.info.frames : FUZZ_WAV_MAX;
    block = 1 + (int)(size % 613);   /* a block size the input chooses */
    x = (float *)malloc(sizeof(float) * (size_t)(want + block));
    if (!x) { mmspcl_wav_close(&r); return 0; }
    while (n < want && (st = mmspcl_wav_read(&r, x + n, block, &got, &err)) == MMSPCL_OK && got > 0) {
        int i;
        for (i = 0; i < got; i++) FUZZ_CHECK(x[n + i] == x[n + i] && (!pcm || (x[n + i] >= -1.0f && x[n + i] <= 1.0f)));
        n += got;
    }
    mmspcl_wav_close(&r);
    if (n > want) n = (int)want;
    if (n == want) fuzz_wav_features(x, n, r.info.sample_rate);
    free(x);
    return 0;
}
