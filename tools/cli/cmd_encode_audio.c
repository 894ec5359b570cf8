/* mmspcl encode-audio --wav FILE [--features egemaps|fbank|mfcc|f0] [-o OUT.f32] [--json]
   Speech features of a WAV file at 16 kHz (mmspcl.h, 14. Audio; docs/AUDIO.md): the 88 eGeMAPS
   functionals, 80 log-mel energies or 13 MFCCs a 10 ms frame, or F0 a 10 ms frame (Hz, 0
   unvoiced). Rows are written as they complete, so a file of any length takes bounded memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"

#define CMD "encode-audio"

static const struct { const char *name; int feature; const char *what; } features[] = {
    {"egemaps", MMSPCL_EGEMAPS, "the 88 eGeMAPS v02 functionals of the whole file"},
    {"fbank", MMSPCL_FBANK, "80 log-mel energies a frame (Kaldi / torchaudio fbank)"},
    {"mfcc", MMSPCL_MFCC, "13 MFCCs a frame (Kaldi / torchaudio mfcc, c0 = log energy)"},
    {"f0", MMSPCL_F0, "F0 a frame in Hz, 0 when unvoiced (Praat's autocorrelation method)"}};
#define N_FEATURES ((int)(sizeof features / sizeof features[0]))

/* Where the rows go: the -o file (raw float32), text on standard output, or JSON. */
typedef struct sink {
    cli_out *o;
    int json, feature;
    long long rows;
} sink;

static mmspcl_status put_rows(void *user, const float *x, int n, int dim, mmspcl_error *err) {
    sink *s = (sink *)user;
    int i, k;
    if (s->o) {
        if (cli_out_f32(s->o, CMD, x, (size_t)n * (size_t)dim)) return mmspcl_error_set(err, MMSPCL_ERR_IO, "(reported)");
    } else {
        for (i = 0; i < n; i++) {
            if (s->json) {
                printf(s->rows + i ? ",\n  " : "\n  ");
                if (dim > 1) printf("[");
            }
            for (k = 0; k < dim; k++) {
                const double v = x[(size_t)i * dim + k];
                if (s->json) {
                    if (k) printf(", ");
                    cli_json_num(stdout, v, 9);
                } else {
                    printf(k + 1 < dim ? "%.9g " : "%.9g\n", v);
                }
            }
            if (s->json && dim > 1) printf("]");
        }
    }
    s->rows += n;
    return MMSPCL_OK;
}

static void json_head(const char *wav, const mmspcl_wav_info *in, const char *feat, int feature, const char *out) {
    int i;
    printf("{\"wav\": ");
    cli_json_str(stdout, wav);
    printf(", \"sample_rate\": %d, \"channels\": %d, \"frames\": %lld, \"seconds\": ", in->sample_rate, in->channels,
           (long long)in->frames);
    cli_json_num(stdout, (double)in->frames / in->sample_rate, 9);
    printf(", \"features\": \"%s\", \"rate\": %d, \"dim\": %d, \"output\": ", feat, MMSPCL_AUDIO_RATE, mmspcl_audio_dim(feature));
    cli_json_str(stdout, out);
    if (feature == MMSPCL_EGEMAPS) {
        printf(", \"names\": [");
        for (i = 0; i < MMSPCL_EGEMAPS_N; i++) {
            if (i) printf(", ");
            cli_json_str(stdout, mmspcl_egemaps_names[i]);
        }
        printf("]");
    }
    printf(", \"values\": ");
    if (out) printf("null");
    else printf("[");
}

int mmspcl_cmd_encode_audio(int argc, char **argv) {
    const char *wav = NULL, *out = NULL, *feat = "egemaps";
    int json = 0, np, rc, feature = -1, i;
    mmspcl_wav_reader r;
    mmspcl_error err;
    mmspcl_status st;
    cli_out o;
    sink s;
    const cli_opt opts[] = {
        CLI_OPT_REQ("--wav", &wav, "FILE", "a RIFF/WAVE file (PCM 8-32 bit, float 32/64, extensible; any rate and channels), - for standard input"),
        CLI_OPT_STR("--features", &feat, "KIND", "egemaps, fbank, mfcc or f0", "egemaps"),
        CLI_OPT_STR("-o, --output, --out", &out, "OUT.f32", "write the rows as raw little-endian float32, - for standard output",
                    "print them as text"),
        CLI_OPT_FLAG("--json", &json, "one JSON object (file, rate, features, rows) on standard output"),
        CLI_OPT_END};
    const cli_spec spec = {CMD, "--wav FILE [options]",
                           "Speech features of a WAV file, resampled to 16 kHz and mixed to mono: the 88 eGeMAPS v02 functionals\n"
                           "(one row), or a row every 10 ms: 80 log-mel energies (fbank), 13 MFCCs (mfcc) or F0 in Hz, 0 when\n"
                           "unvoiced (f0). Definitions and measured accuracies: docs/AUDIO.md.",
                           opts, NULL, 0,
                           "JSON: {\"wav\", \"sample_rate\", \"channels\", \"frames\", \"seconds\", \"features\", \"rate\" (16000), \"dim\",\n"
                           "\"output\" (the -o file or null), \"names\" (egemaps), \"values\" (rows; null with -o), \"rows\"}.\n"
                           "From standard input, f0 and egemaps take the silence threshold's peak from the samples read so far\n"
                           "(a file is read twice: first for its peak)."};
    memset(&o, 0, sizeof o);
    if ((rc = cli_parse(&spec, argc, argv, &np)) != CLI_GO) return rc;
    for (i = 0; i < N_FEATURES; i++)
        if (!strcmp(feat, features[i].name)) feature = features[i].feature;
    if (feature < 0) return cli_usage_error(CMD, "--features '%s': one of egemaps, fbank, mfcc, f0", feat);
    if (out) {
        const char *in_opts[1] = {"--wav"}, *in_paths[1];
        in_paths[0] = wav;
        if ((rc = cli_refuse_same(CMD, "-o", out, 1, in_opts, in_paths))) return rc;
        if (json && !strcmp(out, "-")) return cli_usage_error(CMD, "--json and -o - (standard output) cannot be combined");
    }
    if (out && cli_out_open(&o, CMD, out)) return 1;
    if ((st = mmspcl_wav_open(&r, wav, &err))) {
        cli_out_discard(&o);
        return cli_fail_io(CMD, wav, &err);
    }
    memset(&s, 0, sizeof s);
    s.o = out ? &o : NULL;
    s.json = json;
    s.feature = feature;
    if (json) json_head(wav, &r.info, feat, feature, out);
    st = mmspcl_audio_encode(&r, feature, put_rows, &s, &err);
    mmspcl_wav_close(&r);
    if (st) {
        if (json) printf("]}\n");
        cli_out_discard(&o);
        return strcmp(err.msg, "(reported)") ? cli_fail(CMD, "%s", err.msg) : 1;
    }
    if (out && cli_out_commit(&o, CMD)) return 1;
    if (json) printf("%s, \"rows\": %lld}\n", out ? "" : "\n]", s.rows);
    else if (out)
        fprintf(stderr, "mmspcl " CMD ": %s -> %s: %lld rows of %d float32 (%s)\n", wav, out, s.rows, mmspcl_audio_dim(feature), feat);
    return 0;
}
