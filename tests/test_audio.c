/* test_audio.c - mmspcl.h 14. Audio against independent references (docs/AUDIO.md):
   1. WAV reading: the committed files of tests/data/audio (tools/reference/audio_ref.py: every
      sample format, mono / stereo / 3 channels, 8..48 kHz, an odd-sized chunk), files built here
      sample by sample (every format, extensible, 300 channels, odd chunks), reading in blocks of
      any size, rewinding; bad input (truncated headers at every length, chunk sizes past the end,
      0 channels, rates 0 and 2^31, a data size that is not whole frames, no samples, NaN and
      infinite floats, a file ending inside the data) is refused with the byte named.
   2. The resampler on a stepped sine sweep: passband ripple, stopband attenuation, images;
      streaming in odd blocks gives the same bits as one call.
   3. fbank / MFCC against torchaudio.compliance.kaldi (committed .f32): max |diff| <= 1e-3 max |ref|.
   4. F0 against Praat (committed .praat.txt) at the file's rate and through 16 kHz; formants,
      bandwidths, HNR, jitter and shimmer against Praat with the tolerances docs/AUDIO.md states.
   5. eGeMAPS: names, sanity on tones and silence, block-size independence, bounded memory.
   6. build/mmspcl encode-audio. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* the library's allocations, counted (bounded memory on long inputs) */
static size_t g_live, g_peak;
static void *t_malloc(size_t n) {
    size_t *p = (size_t *)malloc(n + 16);
    if (!p) return NULL;
    p[0] = n;
    g_live += n;
    if (g_live > g_peak) g_peak = g_live;
    return (char *)p + 16;
}
static void t_free(void *q) {
    if (!q) return;
    g_live -= *(size_t *)((char *)q - 16);
    free((char *)q - 16);
}
static void *t_realloc(void *q, size_t n) {
    void *r;
    size_t old;
    if (!q) return t_malloc(n);
    old = *(size_t *)((char *)q - 16);
    if (!(r = t_malloc(n))) return NULL;
    memcpy(r, q, old < n ? old : n);
    t_free(q);
    return r;
}
#define MMSPCL_MALLOC(sz) t_malloc(sz)
#define MMSPCL_REALLOC(p, sz) t_realloc(p, sz)
#define MMSPCL_FREE(p) t_free(p)
#define MMSPCL_IMPLEMENTATION
#include "mmspcl.h"
#include "tests/test.h"

#define DIR "tests/data/audio"
#define TMP "build/tests/audio"
#define MM "build/mmspcl"
#define TPI 3.14159265358979323846

/* ---- WAV files built here ------------------------------------------------------------------ */
typedef struct wbuf { unsigned char b[1 << 16]; size_t n; } wbuf;
static void put(wbuf *w, const void *p, size_t n) { memcpy(w->b + w->n, p, n); w->n += n; }
static void put16(wbuf *w, unsigned v) { unsigned char b[2] = {(unsigned char)v, (unsigned char)(v >> 8)}; put(w, b, 2); }
static void put32(wbuf *w, uint32_t v) {
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
    put(w, b, 4);
}
static void set32(wbuf *w, size_t at, uint32_t v) {
    w->b[at] = (unsigned char)v; w->b[at + 1] = (unsigned char)(v >> 8);
    w->b[at + 2] = (unsigned char)(v >> 16); w->b[at + 3] = (unsigned char)(v >> 24);
}
/* RIFF header + fmt chunk (tag 1, 3 or 0xFFFE with sub-format sub) + an odd "junk" chunk when odd. */
static void wav_head(wbuf *w, unsigned tag, unsigned sub, int ch, uint32_t rate, int bits, int container, int odd) {
    static const unsigned char tail[14] = {0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71};
    w->n = 0;
    put(w, "RIFF", 4); put32(w, 0); put(w, "WAVE", 4);
    put(w, "fmt ", 4); put32(w, tag == 0xFFFE ? 40 : 16);
    put16(w, tag); put16(w, (unsigned)ch); put32(w, rate); put32(w, rate * (uint32_t)(ch * container));
    put16(w, (unsigned)(ch * container)); put16(w, (unsigned)(tag == 0xFFFE ? container * 8 : bits));
    if (tag == 0xFFFE) { put16(w, 22); put16(w, (unsigned)bits); put32(w, 0); put16(w, sub); put(w, tail, 14); }
    if (odd) { put(w, "junk", 4); put32(w, 3); put(w, "abc\0", 4); }
}
static void wav_data(wbuf *w, const void *data, uint32_t n) {
    put(w, "data", 4); put32(w, n); put(w, data, n);
    set32(w, 4, (uint32_t)(w->n - 8));
}

/* Opens bytes, reads everything; the status of the first failure (open or read). */
static mmspcl_status read_mem(const wbuf *w, float *x, int cap, int *n, mmspcl_wav_reader *r, mmspcl_error *err) {
    mmspcl_status st = mmspcl_wav_open_memory(r, w->b, w->n, err);
    int got;
    *n = 0;
    if (st) return st;
    while (!(st = mmspcl_wav_read(r, x + *n, cap - *n, &got, err)) && got > 0) *n += got;
    mmspcl_wav_close(r);
    return st;
}

static void test_wav_formats(void) {
    wbuf w;
    mmspcl_wav_reader r;
    mmspcl_error err;
    float x[2048];
    int n, i, ok;
    unsigned char d[4096];
    /* 8-bit unsigned: 0 128 255 -> -1 0 127/128 */
    wav_head(&w, 1, 0, 1, 8000, 8, 1, 1);
    d[0] = 0; d[1] = 128; d[2] = 255;
    wav_data(&w, d, 3);
    CHECK(read_mem(&w, x, 2048, &n, &r, &err) == MMSPCL_OK && n == 3 && x[0] == -1.0f && x[1] == 0 && x[2] == 127.0f / 128,
          "u8: %d samples (%s)", n, err.msg);
    CHECK(r.info.format == MMSPCL_WAV_PCM && r.info.bits == 8 && r.info.container == 1 && r.info.sample_rate == 8000, "u8 info");
    /* 16-bit stereo, averaged */
    wav_head(&w, 1, 0, 2, 44100, 16, 2, 0);
    { int16_t s[4] = {-32768, 32767, 1000, 3000}; memcpy(d, s, 8); }
    wav_data(&w, d, 8);
    CHECK(read_mem(&w, x, 2048, &n, &r, &err) == MMSPCL_OK && n == 2 && x[0] == (float)((-32768.0 + 32767.0) / 2 / 32768) &&
              x[1] == (float)(2000.0 / 32768),
          "s16 stereo: %d (%s)", n, err.msg);
    /* 24-bit extensible, 3 channels */
    wav_head(&w, 0xFFFE, 1, 3, 96000, 24, 3, 1);
    {
        static const int32_t v[6] = {-8388608, 8388607, 1, -1, 4194304, 0};
        for (i = 0; i < 6; i++) { d[3 * i] = (unsigned char)v[i]; d[3 * i + 1] = (unsigned char)(v[i] >> 8); d[3 * i + 2] = (unsigned char)(v[i] >> 16); }
        wav_data(&w, d, 18);
        CHECK(read_mem(&w, x, 2048, &n, &r, &err) == MMSPCL_OK && n == 2 && r.info.extensible && r.info.channels == 3 &&
                  fabs(x[0] - (-8388608.0 + 8388607.0 + 1.0) / 3 / 8388608) < 1e-7 && fabs(x[1] - (-1.0 + 4194304.0) / 3 / 8388608) < 1e-7,
              "s24 extensible 3 ch: %d %g %g (%s)", n, x[0], x[1], err.msg);
    }
    /* 32-bit integer */
    wav_head(&w, 1, 0, 1, 16000, 32, 4, 0);
    { int32_t s[2] = {INT32_MIN, 1 << 30}; memcpy(d, s, 8); }
    wav_data(&w, d, 8);
    CHECK(read_mem(&w, x, 2048, &n, &r, &err) == MMSPCL_OK && n == 2 && x[0] == -1.0f && x[1] == 0.5f, "s32 (%s)", err.msg);
    /* 12-bit PCM in a 16-bit container (left-justified) */
    wav_head(&w, 1, 0, 1, 16000, 12, 2, 0);
    { int16_t s[1] = {-16}; memcpy(d, s, 2); }
    wav_data(&w, d, 2);
    CHECK(read_mem(&w, x, 2048, &n, &r, &err) == MMSPCL_OK && n == 1 && x[0] == -16.0f / 32768 && r.info.bits == 12, "12-bit PCM (%s)", err.msg);
    /* float 32, float 64, float extensible */
    wav_head(&w, 3, 0, 1, 22050, 32, 4, 0);
    { float s[2] = {0.25f, -1.5f}; memcpy(d, s, 8); }
    wav_data(&w, d, 8);
    CHECK(read_mem(&w, x, 2048, &n, &r, &err) == MMSPCL_OK && n == 2 && x[0] == 0.25f && x[1] == -1.5f, "f32 (%s)", err.msg);
    wav_head(&w, 3, 0, 1, 22050, 64, 8, 1);
    { double s[2] = {0.125, -0.75}; memcpy(d, s, 16); }
    wav_data(&w, d, 16);
    CHECK(read_mem(&w, x, 2048, &n, &r, &err) == MMSPCL_OK && n == 2 && x[0] == 0.125f && x[1] == -0.75f && r.info.container == 8, "f64 (%s)", err.msg);
    wav_head(&w, 0xFFFE, 3, 2, 48000, 32, 4, 0);
    { float s[2] = {0.5f, 0.25f}; memcpy(d, s, 8); }
    wav_data(&w, d, 8);
    CHECK(read_mem(&w, x, 2048, &n, &r, &err) == MMSPCL_OK && n == 1 && x[0] == 0.375f && r.info.format == MMSPCL_WAV_FLOAT, "float extensible (%s)", err.msg);
    /* 300 channels */
    wav_head(&w, 1, 0, 300, 8000, 16, 2, 0);
    for (i = 0; i < 600; i++) { int16_t s = (int16_t)(i % 2 ? 300 : -100); memcpy(d + 2 * i, &s, 2); }
    wav_data(&w, d, 1200);
    ok = read_mem(&w, x, 2048, &n, &r, &err) == MMSPCL_OK && n == 2;
    CHECK(ok && fabs(x[0] - 100.0 / 32768) < 1e-7 && fabs(x[1] - 100.0 / 32768) < 1e-7, "300 channels: %d %g (%s)", n, x[0], err.msg);
}

/* What a file is refused with: the status and the message must name the given part. */
static void refused(const char *what, const wbuf *w, mmspcl_status want, const char *in_msg) {
    mmspcl_wav_reader r;
    mmspcl_error err;
    float x[4096];
    int n;
    mmspcl_status st;
    err.msg[0] = 0;
    st = read_mem(w, x, 4096, &n, &r, &err);
    CHECK(st == want && strstr(err.msg, in_msg) != NULL, "%s: status %s, message '%s' (wanted %s, '%s')", what, mmspcl_status_name(st), err.msg,
          mmspcl_status_name(want), in_msg);
}

static void test_wav_bad(void) {
    wbuf w, t;
    mmspcl_wav_reader r;
    mmspcl_error err;
    unsigned char d[64];
    size_t cut;
    int bad = 0;
    memset(d, 0, sizeof d);
    wav_head(&w, 1, 0, 1, 16000, 16, 2, 1);
    wav_data(&w, d, 8);
    /* every truncation of a good file is refused: in the header at open, in the data when read */
    for (cut = 0; cut < w.n; cut++) {
        float x[16];
        int n;
        t = w;
        t.n = cut;
        if (read_mem(&t, x, 16, &n, &r, &err) != MMSPCL_ERR_FORMAT) bad++;
    }
    CHECK(bad == 0, "%d truncations of a %zu-byte file were not refused", bad, w.n);
    t = w; t.n -= 2;
    set32(&t, 4, (uint32_t)(t.n - 8));
    refused("file ends inside the data chunk (RIFF size fixed)", &t, MMSPCL_ERR_FORMAT, "runs past");
    t = w; set32(&t, 4, 1000);
    refused("RIFF size past the end", &t, MMSPCL_ERR_FORMAT, "RIFF size 1000");
    t = w; set32(&t, 40, 100);
    refused("junk chunk size past the end", &t, MMSPCL_ERR_FORMAT, "chunk 'junk' at byte 36");
    t = w; set32(&t, 16, 0xFFFFFFF0u);
    refused("fmt size 2^32 - 16", &t, MMSPCL_ERR_FORMAT, "fmt ");
    t = w; t.b[22] = 0; t.b[23] = 0;
    refused("0 channels", &t, MMSPCL_ERR_FORMAT, "0 channels");
    t = w; set32(&t, 24, 0);
    refused("rate 0", &t, MMSPCL_ERR_FORMAT, "sample rate 0");
    t = w; set32(&t, 24, 0x80000000u);
    refused("rate 2^31", &t, MMSPCL_ERR_FORMAT, "sample rate 2147483648");
    t = w; t.b[32] = 3;
    refused("block size 3 for 16-bit mono", &t, MMSPCL_ERR_FORMAT, "block size 3");
    t = w; t.b[34] = 40;
    refused("40-bit PCM", &t, MMSPCL_ERR_UNSUPPORTED, "40-bit");
    t = w; t.b[20] = 2;
    refused("ADPCM", &t, MMSPCL_ERR_UNSUPPORTED, "format tag 0x0002");
    memcpy(t.b, w.b, w.n); t = w; memcpy(t.b + 8, "WAVX", 4);
    refused("not WAVE", &t, MMSPCL_ERR_FORMAT, "not a RIFF/WAVE");
    /* odd data size for 16-bit; no samples; data before fmt; no data */
    wav_head(&t, 1, 0, 1, 16000, 16, 2, 0);
    wav_data(&t, d, 7);
    refused("odd data size", &t, MMSPCL_ERR_FORMAT, "not a whole number of 2-byte frames");
    wav_head(&t, 1, 0, 1, 16000, 16, 2, 0);
    wav_data(&t, d, 0);
    refused("0 samples", &t, MMSPCL_ERR_FORMAT, "holds no samples");
    t.n = 0;
    put(&t, "RIFF", 4); put32(&t, 16); put(&t, "WAVE", 4); put(&t, "data", 4); put32(&t, 4); put(&t, d, 4);
    refused("data before fmt", &t, MMSPCL_ERR_FORMAT, "before the fmt chunk");
    wav_head(&t, 1, 0, 1, 16000, 16, 2, 1);
    set32(&t, 4, (uint32_t)(t.n - 8));
    refused("no data chunk", &t, MMSPCL_ERR_FORMAT, "no data chunk");
    wav_head(&t, 0xFFFE, 1, 1, 16000, 16, 2, 0);
    t.b[50] = 0x11;
    wav_data(&t, d, 4);
    refused("extensible, unknown GUID", &t, MMSPCL_ERR_UNSUPPORTED, "GUID");
    {   /* NaN and infinity, found when read */
        float s[3] = {0.5f, 0, 0};
        uint32_t nan = 0x7fc00000u, inf = 0x7f800000u;
        memcpy(&s[1], &nan, 4);
        wav_head(&t, 3, 0, 1, 16000, 32, 4, 0);
        wav_data(&t, s, 12);
        refused("NaN float", &t, MMSPCL_ERR_FORMAT, "frame 1 channel 0 (byte 48) is not a finite number");
        memcpy(&s[2], &inf, 4);
        s[1] = 0;
        wav_head(&t, 3, 0, 1, 16000, 32, 4, 0);
        wav_data(&t, s, 12);
        refused("infinite float", &t, MMSPCL_ERR_FORMAT, "frame 2 channel 0");
    }
    CHECK(mmspcl_wav_open(&r, TMP "/does-not-exist.wav", &err) == MMSPCL_ERR_IO && strstr(err.msg, "does-not-exist"), "missing file: %s", err.msg);
    CHECK(mmspcl_wav_open(&r, "tests", &err) == MMSPCL_ERR_IO, "a folder: %s", err.msg);
}

/* ---- the committed files --------------------------------------------------------------------- */
typedef struct afile { char name[64], kind[8]; int rate, ch, bits; long long frames; } afile;
static afile g_files[16];
static int g_nfiles;

static void load_manifest(void) {
    char *t = (char *)test_read_file(DIR "/audio.txt", NULL), *line;
    CHECK(t != NULL, DIR "/audio.txt missing (run tools/reference/audio_ref.py)");
    if (!t) return;
    for (line = strtok(t, "\n"); line && g_nfiles < 16; line = strtok(NULL, "\n")) {
        afile *f = &g_files[g_nfiles];
        if (line[0] == '#') continue;
        if (sscanf(line, "%63s %d %d %7s %d %lld", f->name, &f->rate, &f->ch, f->kind, &f->bits, &f->frames) == 6) g_nfiles++;
    }
    free(t);
}

/* The mono samples of a committed file (read whole, in blocks of 4096). */
static float *load_wav(const afile *f, int64_t *n, mmspcl_wav_info *info) {
    char path[256];
    mmspcl_wav_reader r;
    mmspcl_error err;
    float *x = NULL;
    snprintf(path, sizeof path, DIR "/%.60s.wav", f->name);
    *n = 0;
    if (mmspcl_wav_open(&r, path, &err)) { CHECK(0, "%s: %s", path, err.msg); return NULL; }
    if (info) *info = r.info;
    if (mmspcl_wav_read_all(&r, 1 << 24, &x, n, &err)) CHECK(0, "%s: %s", path, err.msg);
    mmspcl_wav_close(&r);
    return x;
}

static void test_files_read(void) {
    int i;
    for (i = 0; i < g_nfiles; i++) {
        const afile *f = &g_files[i];
        mmspcl_wav_info in;
        int64_t n, k;
        float *x = load_wav(f, &n, &in), blk[7];
        const int want_fmt = f->kind[0] == 'f' ? MMSPCL_WAV_FLOAT : MMSPCL_WAV_PCM;
        char path[256];
        mmspcl_wav_reader r;
        mmspcl_error err;
        int got, same = 1, pass;
        if (!x) continue;
        CHECK(n == f->frames && in.sample_rate == f->rate && in.channels == f->ch && in.format == want_fmt && in.bits == f->bits,
              "%s: %lld frames %d Hz %d ch format %d %d bits", f->name, (long long)n, in.sample_rate, in.channels, in.format, in.bits);
        /* blocks of 7 from a file, twice (rewind), give the same samples */
        snprintf(path, sizeof path, DIR "/%.60s.wav", f->name);
        if (mmspcl_wav_open(&r, path, &err)) continue;
        for (pass = 0; pass < 2; pass++) {
            k = 0;
            while (!mmspcl_wav_read(&r, blk, 7, &got, &err) && got > 0) {
                int j;
                for (j = 0; j < got; j++) same &= k + j < n && blk[j] == x[k + j];
                k += got;
            }
            same &= k == n;
            if (pass == 0) CHECK(mmspcl_wav_rewind(&r, &err) == MMSPCL_OK, "%s: rewind: %s", f->name, err.msg);
        }
        mmspcl_wav_close(&r);
        CHECK(same, "%s: reading in blocks of 7 (and again after rewind) differs", f->name);
        mmspcl_free(x);
    }
}

/* ---- resampler ------------------------------------------------------------------------------ */
/* Amplitude of the f-Hz sinusoid in y (least squares), and the RMS of what is left. */
static double fit_tone(const float *y, int n, double f, int rate, double *resid) {
    double a = 0, b = 0, aa = 0, bb = 0, ab = 0, det, ca, cb, e = 0;
    int i;
    for (i = 0; i < n; i++) {
        double c = cos(2 * TPI * f * i / rate), s = sin(2 * TPI * f * i / rate);
        a += y[i] * c; b += y[i] * s; aa += c * c; bb += s * s; ab += c * s;
    }
    det = aa * bb - ab * ab;
    ca = (a * bb - b * ab) / det;
    cb = (b * aa - a * ab) / det;
    for (i = 0; i < n; i++) {
        double r = y[i] - ca * cos(2 * TPI * f * i / rate) - cb * sin(2 * TPI * f * i / rate);
        e += r * r;
    }
    *resid = sqrt(e / n);
    return sqrt(ca * ca + cb * cb);
}

/* A stepped sine sweep through in -> out: worst passband deviation (dB) up to 7/16 of the lower
   rate, worst stopband attenuation (dB) from half the lower rate (downsampling), worst image
   level (dB under the tone, upsampling). */
static void sweep(int in, int out, double step, double *ripple, double *stop, double *image) {
    const int lo = in < out ? in : out, n_in = (int)((int64_t)in * 1200 / out) + 400;
    const double pe = 0.4375 * lo, se = 0.5 * lo;
    float *x = (float *)malloc(sizeof(float) * (size_t)n_in), *y = (float *)malloc(sizeof(float) * (size_t)(4 * n_in + 64));
    mmspcl_resampler r;
    mmspcl_error err;
    double f;
    *ripple = 0;
    *stop = *image = 1e9;
    if (mmspcl_resampler_init(&r, in, out, &err)) { CHECK(0, "resampler %d -> %d: %s", in, out, err.msg); return; }
    for (f = step; f < in / 2.0; f += step) {
        int i, got;
        double resid, a;
        if (f > pe && f < se) continue;
        for (i = 0; i < n_in; i++) x[i] = (float)(0.5 * sin(2 * TPI * f * i / in));
        mmspcl_resampler_reset(&r);
        if (mmspcl_resample(&r, x, n_in, 1, y, 4 * n_in + 64, &got, &err)) {
            CHECK(0, "resample %d -> %d: %s", in, out, err.msg);
            break;
        }
        a = fit_tone(y + 150, got - 300, f, out, &resid);
        if (f <= pe) {
            double g = fabs(20 * log10(a / 0.5)), im = -20 * log10(resid * sqrt(2.0) / 0.5 + 1e-30);
            if (g > *ripple) *ripple = g;
            if (out > in && im < *image) *image = im;
        } else {
            double e = 0, att;
            for (i = 150; i < got - 150; i++) e += (double)y[i] * y[i];
            att = -20 * log10(sqrt(2 * e / (got - 300)) / 0.5 + 1e-30);
            if (att < *stop) *stop = att;
        }
    }
    mmspcl_resampler_free(&r);
    free(x);
    free(y);
}

static void test_resampler(void) {
    static const int rates[][2] = {{48000, 16000}, {44100, 16000}, {8000, 16000}, {44101, 16000}};
    int i;
    for (i = 0; i < 4; i++) {
        double ripple, stop, image;
        const int in = rates[i][0], out = rates[i][1];
        sweep(in, out, i == 0 ? 50.0 : 125.0, &ripple, &stop, &image);
        printf("resample %d -> %d: passband ripple %.5f dB (to %.0f Hz)", in, out, ripple, 0.4375 * (in < out ? in : out));
        if (out < in) printf(", stopband %.1f dB (from %d Hz)\n", stop, out / 2);
        else printf(", images %.1f dB down\n", image);
        CHECK(ripple <= 0.001, "%d -> %d: passband ripple %.5f dB > 0.001", in, out, ripple);
        if (out < in) CHECK(stop >= 90.0, "%d -> %d: stopband %.1f dB < 90", in, out, stop);
        else CHECK(image >= 95.0, "%d -> %d: images %.1f dB < 95", in, out, image);
    }
    {   /* odd blocks give the same bits as one call; the count is ceil(n out / in) */
        static float x[30011], a[20000], b[20000];
        mmspcl_resampler r;
        mmspcl_error err;
        int k, got, na = 0, nb = 0, same = 1;
        for (k = 0; k < 30011; k++) x[k] = (float)sin(k * 0.01) * (float)cos(k * 0.0007);
        mmspcl_resampler_init(&r, 44100, 16000, &err);
        mmspcl_resample(&r, x, 30011, 1, a, 20000, &na, &err);
        mmspcl_resampler_free(&r);
        mmspcl_resampler_init(&r, 44100, 16000, &err);
        for (k = 0; k < 30011; k += 997) {
            int m = 30011 - k < 997 ? 30011 - k : 997;
            CHECK(mmspcl_resample_bound(&r, m) <= 20000 - nb, "bound");
            mmspcl_resample(&r, x + k, m, k + m >= 30011, b + nb, (int)mmspcl_resample_bound(&r, m), &got, &err);
            nb += got;
        }
        mmspcl_resampler_free(&r);
        for (k = 0; k < na && k < nb; k++) same &= a[k] == b[k];
        CHECK(na == nb && same && na == mmspcl_resample_count(44100, 16000, 30011) && na == 10889,
              "resampler: %d outputs in one call, %d in blocks (same: %d)", na, nb, same);
        mmspcl_resampler_init(&r, 44100, 16000, &err);
        CHECK(mmspcl_resample(&r, x, 4096, 0, a, 10, &got, &err) == MMSPCL_ERR_ARG, "too little room is refused");
        mmspcl_resampler_free(&r);
        CHECK(mmspcl_resampler_init(&r, 0, 16000, &err) == MMSPCL_ERR_ARG, "rate 0 refused");
    }
}

/* ---- fbank and MFCC against torchaudio -------------------------------------------------------- */
static void test_fbank(void) {
    int i, kind;
    for (i = 0; i < g_nfiles; i++) {
        const afile *f = &g_files[i];
        int64_t n;
        float *x = load_wav(f, &n, NULL);
        if (!x) continue;
        for (kind = 0; kind < 2; kind++) {
            char path[256];
            size_t sz = 0, k;
            float *ref, *got, *got2;
            mmspcl_fbank fb;
            mmspcl_error err;
            int64_t frames;
            double md = 0, mr = 0;
            int dim, done = 0, same = 1;
            snprintf(path, sizeof path, DIR "/%.60s.%s.f32", f->name, kind ? "mfcc" : "fbank");
            ref = (float *)test_read_file(path, &sz);
            if (mmspcl_fbank_init(&fb, kind ? MMSPCL_MFCC : MMSPCL_FBANK, f->rate, &err)) { CHECK(0, "%s", err.msg); free(ref); continue; }
            frames = mmspcl_fbank_frames(&fb, n);
            dim = fb.dim;
            got = (float *)calloc((size_t)(frames * dim + 1), sizeof(float));
            got2 = (float *)calloc((size_t)(frames * dim + 1), sizeof(float));
            CHECK(ref && sz == (size_t)(frames * dim) * 4, "%s: %zu bytes for %lld frames", path, sz, (long long)frames);
            CHECK(mmspcl_fbank_compute(fb.kind, f->rate, x, n, got, &err) == MMSPCL_OK, "%s", err.msg);
            for (k = 0; ref && k < sz / 4; k++) {
                double d = fabs(got[k] - ref[k]);
                if (d > md || d != d) md = d;
                if (fabs(ref[k]) > mr) mr = fabs(ref[k]);
            }
            printf("%-7s %-24s %4lld frames: max |diff| %.3g, max |ref| %.3g (%.2g of it)\n", kind ? "mfcc" : "fbank", f->name,
                   (long long)frames, md, mr, md / mr);
            CHECK(md <= 1e-3 * mr, "%s %s: max |diff| %g > 1e-3 x %g", f->name, kind ? "mfcc" : "fbank", md, mr);
            for (k = 0; k < (size_t)n; k += 333) {   /* streaming in blocks of 333 */
                int m = n - (int64_t)k < 333 ? (int)(n - (int64_t)k) : 333, g;
                mmspcl_fbank_push(&fb, x + k, m, got2 + (size_t)done * dim, (int)(frames - done), &g, &err);
                done += g;
            }
            for (k = 0; k < (size_t)(frames * dim); k++) same &= got[k] == got2[k];
            CHECK(done == frames && same, "%s: streaming gives %d frames (same bits: %d)", f->name, done, same);
            mmspcl_fbank_free(&fb);
            free(ref);
            free(got);
            free(got2);
        }
        mmspcl_free(x);
    }
}

/* ---- F0 and the voice measures against Praat -------------------------------------------------- */
typedef struct praat { long long n; double t1, jitter, shimmer, *v; } praat;   /* v: n rows of 8 */

static int load_praat(const afile *f, praat *p) {
    char path[256], *t, *s;
    long long i;
    int k;
    snprintf(path, sizeof path, DIR "/%.60s.praat.txt", f->name);
    memset(p, 0, sizeof *p);
    if (!(t = (char *)test_read_file(path, NULL))) { CHECK(0, "%s missing", path); return 0; }
    if (sscanf(t, "# frames %lld t1 %lf", &p->n, &p->t1) != 2 || !(s = strchr(t, '\n')) ||
        sscanf(s + 1, "# jitter_local %lf shimmer_local_dB %lf", &p->jitter, &p->shimmer) != 2 || !(s = strchr(s + 1, '\n'))) {
        CHECK(0, "%s: bad header", path);
        free(t);
        return 0;
    }
    p->v = (double *)calloc((size_t)(8 * p->n + 8), sizeof(double));
    for (i = 0; i < p->n; i++)
        for (k = 0; k < 8; k++) p->v[8 * i + k] = strtod(s, &s);
    free(t);
    return 1;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double median(double *v, int n) {
    if (n <= 0) return 0;
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}
static int is_tone(const afile *f) { return strncmp(f->name, "speech", 6) != 0; }

/* voicing agreement and the median relative F0 error of frames both call voiced */
static void f0_vs_praat(const char *what, const afile *f, const praat *p, const float *f0, int64_t n, double t0) {
    double *e = (double *)malloc(sizeof(double) * (size_t)(p->n + 1)), med, bound = is_tone(f) ? 0.005 : 0.02;
    long long i, agree = 0;
    int ne = 0;
    for (i = 0; i < p->n && i < n; i++) {
        const double pf = p->v[8 * i];
        agree += (pf > 0) == (f0[i] > 0);
        if (pf > 0 && f0[i] > 0) e[ne++] = fabs(f0[i] - pf) / pf;
    }
    med = median(e, ne);
    printf("F0 %-6s %-24s %lld frames (Praat %lld): voicing agreement %.3f, median rel. error %.2g\n", what, f->name, (long long)n, p->n,
           (double)agree / (double)p->n, med);
    CHECK(n == p->n && fabs(t0 - p->t1) < 1e-6, "%s %s: %lld frames from %.6f s, Praat %lld from %.6f", what, f->name, (long long)n, t0, p->n, p->t1);
    CHECK((double)agree >= 0.95 * (double)p->n, "%s %s: voicing agreement %.3f < 0.95", what, f->name, (double)agree / (double)p->n);
    CHECK(ne > 0 && med <= bound, "%s %s: median F0 error %.3g > %.3g", what, f->name, med, bound);
    free(e);
}

static mmspcl_status collect(void *user, const float *rows, int n, int dim, mmspcl_error *err) {
    float **dst = (float **)user;
    (void)err;
    memcpy(*dst, rows, sizeof(float) * (size_t)n * (size_t)dim);
    *dst += (size_t)n * (size_t)dim;
    return MMSPCL_OK;
}

static void test_f0(void) {
    int i;
    for (i = 0; i < g_nfiles; i++) {
        const afile *f = &g_files[i];
        praat p;
        int64_t n, nf, n16, nf16;
        float *x = load_wav(f, &n, NULL), *f0, *f016, *dst;
        mmspcl_error err;
        mmspcl_pitch pt;
        char path[256];
        unsigned char *bytes;
        size_t size;
        mmspcl_wav_reader r;
        if (!x || !load_praat(f, &p)) { mmspcl_free(x); continue; }
        nf = mmspcl_pitch_frames(f->rate, n);
        f0 = (float *)calloc((size_t)nf + 1, sizeof(float));
        CHECK(mmspcl_pitch_compute(f->rate, x, n, f0, &err) == MMSPCL_OK, "%s", err.msg);
        mmspcl_pitch_init(&pt, f->rate, n, 1, &err);
        f0_vs_praat("native", f, &p, f0, nf, mmspcl_pitch_time(&pt, 0));
        mmspcl_pitch_free(&pt);
        {   /* forced decisions after 2 undecided frames (survivors merge within ~64 on speech; this
               forces one decision in speech_m_16k):
               still Praat's answer within the bounds, every frame out once */
            mmspcl_audio_peak pk;
            float *g = (float *)calloc((size_t)nf + 1, sizeof(float));
            int64_t k, got = 0;
            memset(&pk, 0, sizeof pk);
            mmspcl_audio_peak_add(&pk, x, n);
            mmspcl_pitch_init(&pt, f->rate, n, mmspcl_audio_peak_value(&pk), &err);
            pt.decide_lag = 2;
            for (k = 0; k < n; k += 1000) {
                mmspcl_pitch_push(&pt, x + k, n - k < 1000 ? (int)(n - k) : 1000, &err);
                got += mmspcl_pitch_take(&pt, g + got, NULL, (int)(nf - got));
            }
            mmspcl_pitch_finish(&pt, &err);
            got += mmspcl_pitch_take(&pt, g + got, NULL, (int)(nf - got));
            CHECK(got == nf, "%s: %lld frames with forced decisions, %lld expected", f->name, (long long)got, (long long)nf);
            f0_vs_praat("forced", f, &p, g, nf, mmspcl_pitch_time(&pt, 0));
            mmspcl_pitch_free(&pt);
            free(g);
        }
        /* the command line's path: the file in memory, resampled to 16 kHz */
        snprintf(path, sizeof path, DIR "/%.60s.wav", f->name);
        bytes = test_read_file(path, &size);
        n16 = mmspcl_resample_count(f->rate, 16000, n);
        nf16 = mmspcl_pitch_frames(16000, n16);
        f016 = (float *)calloc((size_t)nf16 + 1, sizeof(float));
        dst = f016;
        CHECK(bytes && !mmspcl_wav_open_memory(&r, bytes, size, &err) && !mmspcl_audio_encode(&r, MMSPCL_F0, collect, &dst, &err),
              "%s: %s", f->name, err.msg);
        mmspcl_wav_close(&r);
        CHECK(dst - f016 == nf16, "%s: %lld F0 rows, %lld expected", f->name, (long long)(dst - f016), (long long)nf16);
        mmspcl_pitch_init(&pt, 16000, n16, 1, &err);
        f0_vs_praat("16 kHz", f, &p, f016, nf16, mmspcl_pitch_time(&pt, 0));
        mmspcl_pitch_free(&pt);
        free(bytes);
        free(f016);
        free(f0);
        mmspcl_free(x);
        free(p.v);
    }
}

/* LLD rows of a committed file through eGeMAPS at 16 kHz (n rows). */
static float *llds(const afile *f, int64_t *n_rows, float out88[MMSPCL_EGEMAPS_N]) {
    int64_t n, n16;
    float *x = load_wav(f, &n, NULL), *x16, *rows;
    mmspcl_resampler rs;
    mmspcl_audio_peak pk;
    mmspcl_egemaps *g = NULL;
    mmspcl_error err;
    int got;
    *n_rows = 0;
    if (!x) return NULL;
    n16 = mmspcl_resample_count(f->rate, 16000, n);
    x16 = (float *)malloc(sizeof(float) * (size_t)(n16 + 8));
    mmspcl_resampler_init(&rs, f->rate, 16000, &err);
    mmspcl_resample(&rs, x, (int)n, 1, x16, (int)n16 + 8, &got, &err);
    mmspcl_resampler_free(&rs);
    memset(&pk, 0, sizeof pk);
    mmspcl_audio_peak_add(&pk, x, n);
    rows = (float *)calloc((size_t)(mmspcl_pitch_frames(16000, n16) + 1) * MMSPCL_EGEMAPS_LLD, sizeof(float));
    if (mmspcl_egemaps_new(&g, n16, mmspcl_audio_peak_value(&pk), 1, &err) || mmspcl_egemaps_push(g, x16, got, &err) ||
        mmspcl_egemaps_finish(g, out88, &err))
        CHECK(0, "%s: egemaps: %s", f->name, err.msg);
    else
        *n_rows = mmspcl_egemaps_take_lld(g, rows, (int)mmspcl_pitch_frames(16000, n16) + 1);
    mmspcl_egemaps_free(g);
    mmspcl_free(x);
    free(x16);
    return rows;
}

static void test_voice_measures(void) {
    int i, k;
    for (i = 0; i < g_nfiles; i++) {
        const afile *f = &g_files[i];
        praat p;
        int64_t n, t;
        float e88[MMSPCL_EGEMAPS_N], *L = llds(f, &n, e88);
        double *ef[3], *eb[3], *eh, jit = 0, shim = 0, mf[3], mb[3], mh;
        int nf[3] = {0, 0, 0}, nh = 0, njs = 0, speech = !is_tone(f), pure = !strncmp(f->name, "tone", 4) || !strncmp(f->name, "sweep", 5);
        if (!L || !load_praat(f, &p)) { free(L); continue; }
        eh = (double *)malloc(sizeof(double) * (size_t)(7 * p.n + 7));
        for (k = 0; k < 3; k++) { ef[k] = eh + (1 + k) * p.n; eb[k] = eh + (4 + k) * p.n; }
        for (t = 0; t < p.n && t < n; t++) {
            const double *v = p.v + 8 * t;
            const float *row = L + MMSPCL_EGEMAPS_LLD * t;
            if (!(v[0] > 0 && row[0] > 0)) continue;
            for (k = 0; k < 3; k++)
                if (v[1 + k] > 0 && row[12 + 3 * k] > 0) {
                    ef[k][nf[k]] = fabs(row[12 + 3 * k] - v[1 + k]) / v[1 + k];
                    eb[k][nf[k]++] = fabs(row[13 + 3 * k] - v[4 + k]) / v[4 + k];
                }
            if (v[7] != 0) eh[nh++] = fabs(row[9] - v[7]);
            if (row[7] > 0) { jit += row[7]; shim += row[8]; njs++; }
        }
        for (k = 0; k < 3; k++) { mb[k] = median(eb[k], nf[k]); mf[k] = median(ef[k], nf[k]); }
        mh = median(eh, nh);
        jit = njs ? jit / njs : 0;
        shim = njs ? shim / njs : 0;
        printf("voice  %-24s F1-F3 median rel. error %.3f %.3f %.3f, bandwidths %.2f %.2f %.2f, HNR median |diff| %.2f dB, "
               "jitter %.4f (Praat %.4f), shimmer %.2f dB (Praat %.2f)\n",
               f->name, mf[0], mf[1], mf[2], mb[0], mb[1], mb[2], mh, jit, p.jitter, shim, p.shimmer);
        if (speech) {
            for (k = 0; k < 3; k++) {
                CHECK(nf[k] > 10 && mf[k] <= 0.03, "%s: F%d median error %.3f > 3%% (%d frames)", f->name, k + 1, mf[k], nf[k]);
                CHECK(mb[k] <= 0.35, "%s: B%d median error %.2f > 35%%", f->name, k + 1, mb[k]);
            }
            CHECK(nh > 10 && mh <= 3.0, "%s: HNR median |diff| %.2f dB > 3", f->name, mh);
            CHECK(jit >= 0.5 * p.jitter && jit <= 2 * p.jitter, "%s: jitter %.4f, Praat %.4f: not within a factor 2", f->name, jit, p.jitter);
            CHECK(fabs(shim - p.shimmer) <= 0.5, "%s: shimmer %.2f dB, Praat %.2f: more than 0.5 dB apart", f->name, shim, p.shimmer);
        } else {
            CHECK(mh <= 6.0, "%s: HNR median |diff| %.2f dB > 6", f->name, mh);
            if (pure) CHECK(njs > 0 && jit < 0.001 + p.jitter && shim < 0.1, "%s: jitter %.4f shimmer %.3f on a tone", f->name, jit, shim);
        }
        free(eh);
        free(L);
        free(p.v);
    }
}

/* ---- eGeMAPS ---------------------------------------------------------------------------------- */
static void test_egemaps(void) {
    float a[MMSPCL_EGEMAPS_N], b[MMSPCL_EGEMAPS_N], *x = (float *)malloc(sizeof(float) * 48000);
    mmspcl_egemaps *g;
    mmspcl_error err;
    int i, j, uniq = 1, finite = 1, same = 1;
    for (i = 0; i < MMSPCL_EGEMAPS_N; i++)
        for (j = 0; j < i; j++) uniq &= strcmp(mmspcl_egemaps_names[i], mmspcl_egemaps_names[j]) != 0;
    CHECK(uniq && !strcmp(mmspcl_egemaps_names[0], "F0semitoneFrom27.5Hz_sma3nz_amean") &&
              !strcmp(mmspcl_egemaps_names[87], "equivalentSoundLevel_dBp") && !strcmp(mmspcl_egemaps_names[40], "F1frequency_sma3nz_amean"),
          "eGeMAPS names");
    /* a 3 s tone at 200 Hz, then the same pushed in blocks of 1000 */
    for (i = 0; i < 48000; i++) x[i] = (float)(0.3 * sin(2 * TPI * 200.0 * i / 16000) + 0.2 * sin(2 * TPI * 600.0 * i / 16000));
    CHECK(mmspcl_egemaps_compute(x, 48000, a, &err) == MMSPCL_OK, "egemaps: %s", err.msg);
    mmspcl_egemaps_new(&g, 48000, 0.5, 0, &err);
    for (i = 0; i < 48000; i += 1000) mmspcl_egemaps_push(g, x + i, 1000, &err);
    mmspcl_egemaps_finish(g, b, &err);
    mmspcl_egemaps_free(g);
    for (i = 0; i < MMSPCL_EGEMAPS_N; i++) {
        finite &= a[i] == a[i] && fabs(a[i]) < 1e30;
        same &= a[i] == b[i];
    }
    CHECK(finite && same, "egemaps of a tone: finite %d, blocks of 1000 give the same %d", finite, same);
    CHECK(fabs(a[0] - 12 * log2(200 / 27.5)) < 0.01 && a[1] < 1e-3 && fabs(a[5]) < 0.01, "tone: F0 mean %.4f semitones (%.4f), CV %g, range %g", a[0],
          12 * log2(200 / 27.5), a[1], a[5]);
    CHECK(a[30] < 1e-3 && a[32] < 0.05 && a[34] > 30, "tone: jitter %g shimmer %g HNR %g", a[30], a[32], a[34]);
    CHECK(fabs(a[82] - 1 / 3.0) < 1e-6 && fabs(a[83] - 2.96) < 0.02 && a[85] == 0, "tone: %g voiced segments a second of %g s, unvoiced %g",
          a[82], a[83], a[85]);
    /* silence: finite, nothing voiced, one unvoiced segment, the level at its floor */
    memset(x, 0, sizeof(float) * 48000);
    CHECK(mmspcl_egemaps_compute(x, 48000, a, &err) == MMSPCL_OK, "silence: %s", err.msg);
    for (i = 0, finite = 1; i < MMSPCL_EGEMAPS_N; i++) finite &= a[i] == a[i] && fabs(a[i]) < 1e30;
    CHECK(finite && a[0] == 0 && a[30] == 0 && a[82] == 0 && fabs(a[85] - 2.97) < 0.02 && a[87] < -150,
          "silence: F0 %g, jitter %g, voiced segments %g, unvoiced %g s, level %g", a[0], a[30], a[82], a[85], a[87]);
    CHECK(mmspcl_egemaps_compute(x, 100, a, &err) == MMSPCL_OK && a[0] == 0, "a sound shorter than one frame: %s", err.msg);
    free(x);
}

/* A 40 s WAV in memory through every feature: what the library holds stays far below the file. */
static mmspcl_status discard(void *user, const float *rows, int n, int dim, mmspcl_error *err) {
    (void)rows; (void)err;
    *(long long *)user += (long long)n * dim;
    return MMSPCL_OK;
}

static void test_bounded_memory(void) {
    const int rate = 44100, secs = 40, n = rate * secs;
    const size_t bytes = 44 + (size_t)n * 2;
    unsigned char *w = (unsigned char *)malloc(bytes);
    int16_t *s = (int16_t *)(w + 44);
    int i, feat;
    wbuf h;
    wav_head(&h, 1, 0, 1, (uint32_t)rate, 16, 2, 0);
    memcpy(w, h.b, 36);
    memcpy(w + 36, "data", 4);
    for (i = 0; i < 4; i++) w[40 + i] = (unsigned char)((uint32_t)(n * 2) >> (8 * i));
    for (i = 0; i < 4; i++) w[4 + i] = (unsigned char)((uint32_t)(bytes - 8) >> (8 * i));
    for (i = 0; i < n; i++) {   /* a gliding tone, voiced half the time */
        double t = (double)i / rate, v = (fmod(t, 1.0) < 0.5) ? 0.4 * sin(2 * TPI * (120 + 40 * sin(t)) * t) : 0.002 * sin(i * 1.7);
        s[i] = (int16_t)(v * 32767);
    }
    for (feat = 0; feat < 4; feat++) {
        mmspcl_wav_reader r;
        mmspcl_error err;
        long long vals = 0, want;
        g_peak = g_live;
        CHECK(!mmspcl_wav_open_memory(&r, w, bytes, &err) && !mmspcl_audio_encode(&r, feat, discard, &vals, &err), "%d s, feature %d: %s", secs, feat, err.msg);
        mmspcl_wav_close(&r);
        want = feat == MMSPCL_EGEMAPS ? 88 : feat == MMSPCL_F0 ? mmspcl_pitch_frames(16000, 16000 * secs) : (1 + (16000 * secs - 400) / 160) * (feat ? 13 : 80);
        printf("%d s at 44.1 kHz (%zu bytes), feature %d: %lld values, at most %zu bytes held by the library\n", secs, bytes, feat, vals, g_peak);
        CHECK(vals == want, "feature %d: %lld values, %lld expected", feat, vals, want);
        CHECK(g_peak < (feat == MMSPCL_EGEMAPS ? 1500000u : 600000u), "feature %d: %zu bytes held for a %zu-byte file", feat, g_peak, bytes);
    }
    free(w);
}

/* ---- build/mmspcl encode-audio ------------------------------------------------------------------ */
static void test_cli(void) {
    const char *wav = DIR "/speech_m_16k.wav";
    char *out = NULL;
    size_t sz = 0, rsz = 0, k;
    float *got, *ref;
    double md = 0, mr = 0;
    int rc;
    rc = test_run(NULL, "mkdir -p " TMP " && " MM " encode-audio --wav %s --features fbank -o " TMP "/fb.f32 2> " TMP "/err.txt", wav);
    got = (float *)test_read_file(TMP "/fb.f32", &sz);
    ref = (float *)test_read_file(DIR "/speech_m_16k.fbank.f32", &rsz);
    CHECK(rc == 0 && got && ref && sz == rsz, "encode-audio --features fbank -o: rc %d, %zu bytes (%zu)", rc, sz, rsz);
    for (k = 0; got && ref && sz == rsz && k < sz / 4; k++) {
        if (fabs(got[k] - ref[k]) > md) md = fabs(got[k] - ref[k]);
        if (fabs(ref[k]) > mr) mr = fabs(ref[k]);
    }
    CHECK(md <= 1e-3 * mr, "encode-audio fbank vs torchaudio: %g", md);
    free(got);
    free(ref);
    rc = test_run(NULL, MM " encode-audio --wav - --features mfcc -o " TMP "/mf.f32 < %s 2> /dev/null", wav);
    got = (float *)test_read_file(TMP "/mf.f32", &sz);
    ref = (float *)test_read_file(DIR "/speech_m_16k.mfcc.f32", &rsz);
    md = mr = 0;
    for (k = 0; got && ref && sz == rsz && k < sz / 4; k++) {
        if (fabs(got[k] - ref[k]) > md) md = fabs(got[k] - ref[k]);
        if (fabs(ref[k]) > mr) mr = fabs(ref[k]);
    }
    CHECK(rc == 0 && got && ref && sz == rsz && md <= 1e-3 * mr, "encode-audio --wav - mfcc: rc %d %zu bytes (%zu), max diff %g", rc, sz, rsz, md);
    free(got);
    free(ref);
    rc = test_run(NULL, MM " encode-audio --wav %s -o " TMP "/eg.f32 2> /dev/null", DIR "/speech_44k_stereo.wav");
    got = (float *)test_read_file(TMP "/eg.f32", &sz);
    CHECK(rc == 0 && sz == 88 * 4 && got[0] > 10 && got[0] < 40, "encode-audio egemaps: rc %d, %zu bytes, F0 mean %g st", rc, sz, got ? got[0] : 0);
    free(got);
    rc = test_run(&out, MM " encode-audio --wav %s --features f0", DIR "/tone_220_48k_s24.wav");
    {
        int lines = 0, near = 0;
        char *p = out;
        while (p && *p) {
            double v = strtod(p, &p);
            lines++;
            near += fabs(v - 220) < 1;
            while (*p == '\n') p++;
        }
        CHECK(rc == 0 && lines == 47 && near == 47, "encode-audio f0 on a 220 Hz tone: %d lines, %d near 220 Hz", lines, near);
    }
    free(out);
    {   /* F0 from standard input (no peak pass: the running peak) still agrees with Praat */
        praat pr;
        afile f8;
        memset(&f8, 0, sizeof f8);
        strcpy(f8.name, "speech_8k_u8");
        rc = test_run(&out, MM " encode-audio --wav - --features f0 < " DIR "/speech_8k_u8.wav");
        if (load_praat(&f8, &pr)) {
            long long i, agree = 0, n = 0;
            char *p = out;
            for (i = 0; p && *p && i < pr.n; i++, n++) agree += (strtod(p, &p) > 0) == (pr.v[8 * i] > 0);
            CHECK(rc == 0 && n == pr.n && agree >= 0.95 * (double)pr.n, "f0 from standard input: %lld of %lld frames agree with Praat on voicing", agree, n);
            free(pr.v);
        }
        free(out);
    }
    rc = test_run(&out, MM " encode-audio --wav %s --features f0 --json", DIR "/tone_300_8k_f64.wav");
    CHECK(rc == 0 && out && strstr(out, "\"features\": \"f0\"") && strstr(out, "\"rows\": 27}") && strstr(out, "\"sample_rate\": 8000"),
          "encode-audio --json: %s", out ? out : "(none)");
    free(out);
    rc = test_run(&out, MM " encode-audio --wav %s --json", DIR "/tone_300_8k_f64.wav");
    CHECK(rc == 0 && out && strstr(out, "\"names\": [\"F0semitoneFrom27.5Hz_sma3nz_amean\"") && strstr(out, "\"rows\": 1}"), "egemaps --json");
    free(out);
    CHECK(test_run(NULL, MM " encode-audio --wav %s --features spectrogram 2> /dev/null", wav) == 2, "an unknown --features is a usage error");
    CHECK(test_run(NULL, MM " encode-audio 2> /dev/null") == 2, "--wav is required");
    CHECK(test_run(NULL, MM " encode-audio --wav %s -o %s 2> /dev/null", wav, wav) == 2, "-o the input is refused");
    CHECK(test_run(&out, "printf 'RIFF\\044\\0\\0\\0WAVEfmt ' > " TMP "/bad.wav && " MM " encode-audio --wav " TMP "/bad.wav -o " TMP "/bad.f32 2>&1") == 1 &&
              out && strstr(out, "bad.wav: RIFF size 36 runs past the end of the file (16 bytes)") && test_run(NULL, "test -e " TMP "/bad.f32") != 0,
          "a truncated WAV: exit 1 naming it, no output left: %s", out ? out : "");
    free(out);
}

int main(void) {
    load_manifest();
    test_wav_formats();
    test_wav_bad();
    test_files_read();
    test_resampler();
    test_fbank();
    test_f0();
    test_voice_measures();
    test_egemaps();
    test_bounded_memory();
    test_cli();
    return TEST_END();
}
