/* fuzz_config.c — the converter's handling of config.json and of the other small files it reads
   from a model folder (tools/convert/convert.c, included here with its main() renamed):
   model_type dispatch, every hyper-parameter's type and range checks (cfg_int / cfg_pos /
   cfg_float / cfg_str), the RoBERTa and CLIP mappings against real tensors, CLIP's
   preprocessor_config.json, and the tokenizer files (vocab.json + merges.txt or tokenizer.json).
   When a config maps, the tensors are converted (--type from the input), the weight file is
   written to memory and loaded back through mmspcl_weights_from_memory and the model loader:
   config.json -> weight file -> model, end to end.

   Input: one byte of options, then CONFIG 0xFF 0xFE FILE2 0xFF 0xFE FILE3.
     options bits 0-1: the checkpoint the config is applied to (tests/data/roberta-tiny,
                       roberta-tiny-mlm, clip-tiny, clip-tiny-full model.safetensors)
             bits 2-3: --type f32, f16, q8_0, q4_0
             bits 4-5: FILE2/FILE3 are 0 none, 1 vocab.json + merges.txt, 2 tokenizer.json,
                       3 preprocessor_config.json (FILE2)
   The files are written into a scratch folder per process under /tmp. Runs from the repository
   root (the checkpoints are read once from tests/data; without them the target does nothing). */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700
#endif
#define MMSPCL_IMPLEMENTATION
#include "mmspcl.h"
#include "tests/fuzz/fuzz.h"
#ifndef FUZZ_HAVE_SAFETENSORS_C
#define FUZZ_HAVE_SAFETENSORS_C
#include "tools/convert/safetensors.c"
#endif
#ifndef FUZZ_HAVE_TORCHBIN_C
#define FUZZ_HAVE_TORCHBIN_C
#include "tools/convert/torchbin.c"
#endif
/* gcc's -Wformat-truncation sees different inlining once main() is renamed: not the
   converter's warning to fix here */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif
#define main mmspcl_convert_main
#include "tools/convert/convert.c"
#undef main
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

static const char *const fuzz_config_models[4] = {
    "tests/data/roberta-tiny/model.safetensors", "tests/data/roberta-tiny-mlm/model.safetensors",
    "tests/data/clip-tiny/model.safetensors", "tests/data/clip-tiny-full/model.safetensors"};
static st_file fuzz_config_st[4];
static int fuzz_config_have[4];
static char fuzz_config_dir[64];

static void fuzz_config_init(void) {
    static int done;
    int i;
    if (done) return;
    done = 1;
    for (i = 0; i < 4; i++) {
        char err[256];
        fuzz_config_have[i] = st_open(fuzz_config_models[i], &fuzz_config_st[i], err, sizeof err) == 0;
    }
    snprintf(fuzz_config_dir, sizeof fuzz_config_dir, "/tmp/mmspcl-fuzz-config-%ld", (long)getpid());
    mkdir(fuzz_config_dir, 0700);
}

static void fuzz_config_file(const char *name, const uint8_t *p, size_t n, int present) {
    char path[160];
    snprintf(path, sizeof path, "%s/%s", fuzz_config_dir, name);
    if (!present) { unlink(path); return; }
    {
        FILE *f = fopen(path, "wb");
        if (!f) return;
        if (n) fwrite(p, 1, n, f);
        fclose(f);
    }
}

FUZZ_TARGET(config) {
    static const mmspcl_dtype types[4] = {MMSPCL_F32, MMSPCL_F16, MMSPCL_Q8_0, MMSPCL_Q4_0};
    fuzz_reader r;
    const uint8_t *cp, *f2, *f3;
    size_t cn, n2, n3, i;
    unsigned opt;
    int model, files, ok = 0;
    conv c;
    char err[600];
    const json_value *mtv;
    const char *mt = NULL;
    fuzz_config_init();
    r.p = data;
    r.n = size;
    opt = fuzz_u8(&r);
    model = (int)(opt & 3);
    files = (int)((opt >> 4) & 3);
    if (!fuzz_config_have[model]) return 0;
    cp = fuzz_part(&r, &cn);
    f2 = fuzz_part(&r, &n2);
    f3 = fuzz_part(&r, &n3);
    fuzz_config_file("vocab.json", f2, n2, files == 1);
    fuzz_config_file("merges.txt", f3, n3, files == 1);
    fuzz_config_file("tokenizer.json", f2, n2, files == 2);
    fuzz_config_file("preprocessor_config.json", f2, n2, files == 3);

    memset(&c, 0, sizeof c);
    c.type = types[(opt >> 2) & 3];
    c.quiet = 1;
    snprintf(c.dir, sizeof c.dir, "%s", fuzz_config_dir);
    snprintf(c.weights, sizeof c.weights, "%s", fuzz_config_models[model]);
    snprintf(c.source_name, sizeof c.source_name, "fuzz");
    /* what run() does after reading the files, on the checkpoint opened once */
    if (!(c.config = json_parse((const char *)cp, cn, err, sizeof err))) goto out;
    if (c.config->type != JSON_OBJECT) goto out;
    mtv = json_get(c.config, "model_type");
    if (mtv && mtv->type != JSON_NULL) {
        if (mtv->type != JSON_STRING || strlen(mtv->str) != mtv->len) goto out;  /* as run() */
        mt = mtv->str;
    }
    if (add_st_file(&c, &fuzz_config_st[model], fuzz_config_models[model])) goto out;
    if (!(c.used = (unsigned char *)calloc(c.n_src ? c.n_src : 1, 1))) goto out;
    if (!(c.w = mmspcl_writer_create())) goto out;
    if (!mt) {
        if (find_src_index(&c, "vision_model.embeddings.patch_embedding.weight") >= 0)
            mt = json_get(c.config, "vision_config") ? "clip" : "clip_vision_model";
        else if (find_src_index(&c, "embeddings.word_embeddings.weight") >= 0 ||
                 find_src_index(&c, "roberta.embeddings.word_embeddings.weight") >= 0)
            mt = "roberta";
        else
            goto out;
    }
    if (strcmp(mt, "roberta") == 0) {
        c.arch = ARCH_ROBERTA;
        if (map_roberta(&c, mt) || read_tokenizer(&c)) goto out;
    } else if (strcmp(mt, "clip") == 0 || strcmp(mt, "clip_vision_model") == 0) {
        c.arch = ARCH_CLIP;
        if (map_clip(&c, mt)) goto out;
    } else {
        goto out;
    }
    if (c.have_tok) {
        if (mmspcl_writer_set_str(c.w, "tokenizer.model", "gpt2-bpe") ||
            mmspcl_writer_set_str_array(c.w, "tokenizer.vocab", (const char *const *)c.vocab.s, c.vocab.len,
                                        (int64_t)c.vocab.n) ||
            mmspcl_writer_set_str_array(c.w, "tokenizer.merges", (const char *const *)c.merges.s, c.merges.len,
                                        (int64_t)c.merges.n))
            goto out;
    }
    for (i = 0; i < c.n_out; i++) {
        mmspcl_error merr;
        out_tensor *o = &c.out[i];
        if (convert_tensor(&c, o)) goto out;
        if (mmspcl_writer_add_tensor(c.w, o->name, o->dtype, o->ndim, o->shape, o->data, o->nbytes, &merr)) goto out;
    }
    ok = 1;
    {
        /* the file it would write, loaded back as a user would */
        unsigned char *bytes = NULL;
        size_t nbytes = 0;
        mmspcl_error merr;
        mmspcl_weights *w = NULL;
        FUZZ_CHECK(mmspcl_writer_save_to_memory(c.w, &bytes, &nbytes, &merr) == MMSPCL_OK);
        if (bytes) {
            FUZZ_CHECK(mmspcl_weights_from_memory(&w, bytes, nbytes, &merr) == MMSPCL_OK);
            if (w) {
                /* whatever the converter writes, the library loads (issue 14): the model with one
                   position (the converter checked at least one follows pad_token_id), and the
                   tokenizer, which also has RoBERTa's special tokens */
                if (c.arch == ARCH_ROBERTA) {
                    mmspcl_roberta *m = NULL;
                    mmspcl_bpe *tok = NULL;
                    FUZZ_CHECK(mmspcl_roberta_load(&m, w, 1, 1, &merr) == MMSPCL_OK);
                    mmspcl_roberta_free(m);
                    if (c.have_tok) {
                        FUZZ_CHECK(mmspcl_bpe_from_weights(&tok, w, &merr) == MMSPCL_OK);
                        FUZZ_CHECK(!tok || mmspcl_bpe_mask_id(tok) >= 0);
                        mmspcl_bpe_free(tok);
                    }
                } else {
                    mmspcl_clip *m = NULL;
                    FUZZ_CHECK(mmspcl_clip_load(&m, w, 1, &merr) == MMSPCL_OK);
                    mmspcl_clip_free(m);
                }
                mmspcl_weights_free(w);
            }
            MMSPCL_FREE(bytes);
        }
    }
out:
#ifdef FUZZ_VERBOSE
    fprintf(stderr, "config: %s\n", ok ? "converted and loaded" : c.err[0] ? c.err : err);
#endif
    (void)ok;
    cleanup(&c);
    return 0;
}
