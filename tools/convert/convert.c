/* convert.c — mmspcl-convert: Hugging Face checkpoint folder -> one mmspcl weight file.

     mmspcl-convert SRC OUT [--type f32|f16|bf16|q8_0|q4_0|q4_k|q5_k] [--panels] [--quiet]
     mmspcl-convert SRC -o OUT ...;  mmspcl-convert --help | --version

   SRC is a model folder (or a file inside it: then its folder is used). Read: config.json, the
   weights (model.safetensors, model.safetensors.index.json + shards, pytorch_model.bin or
   pytorch_model.bin.index.json + shards, in that order of preference unless SRC names one of
   them), preprocessor_config.json (CLIP) and the tokenizer (vocab.json + merges.txt, else
   tokenizer.json; RoBERTa only). The mapping, what gets quantized and the metadata keys are
   documented in docs/CONVERT.md. libc only (POSIX for mmap, isatty, signals).
   Conventions as build/mmspcl's (tools/cli/cli.h): --help on stdout (exit 0), usage errors exit 2,
   OUT is never one of the files read (compared by device and inode, exit 2), never a folder or a
   device, and is written as OUT.tmp and renamed (a stale OUT.tmp of an interrupted run is removed,
   any other file of that name refused). */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700 /* POSIX 2008 + realpath */
#endif
#include "mmspcl.h"
#include "json.h"
#include "tokenizer_files.h"
#include "safetensors.h"
#include "torchbin.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define CV_PATH 4096
#define CV_NAME 256

/* ---------------------------------------------------------------------------------------------
   Source tensors: one list whatever the file format
   ------------------------------------------------------------------------------------------ */
typedef enum { SRC_F32, SRC_F16, SRC_BF16, SRC_OTHER } src_dtype;

typedef struct src_tensor {
    const char *name;          /* owned by the st_file / tb_file */
    const char *dtype_name;    /* for messages */
    src_dtype dtype;
    int ndim;
    int64_t shape[8];
    uint64_t nelem;
    const unsigned char *data;
    uint64_t nbytes;
    const char *file;          /* file it came from (messages) */
} src_tensor;

typedef struct out_tensor {
    char name[CV_NAME];
    const src_tensor *src;
    int linear;                /* a Linear layer's weight matrix: may be stored as --type */
    int ndim;
    int64_t shape[MMSPCL_MAX_DIMS];
    mmspcl_dtype dtype;
    void *buf;                 /* owned converted data, or NULL when data points into the source */
    const void *data;
    size_t nbytes;
} out_tensor;

typedef tf_list strlist;   /* tokenizer_files.h: strings, lengths, source lines */

typedef enum { ARCH_ROBERTA, ARCH_CLIP } arch_t;

typedef struct conv {
    /* options */
    const char *src_arg, *out_path;
    mmspcl_dtype type;
    int panels;                /* --panels: f32 Linear weights in panels of 16 rows */
    int quiet, tty;
    int usage_error;           /* the failure is the arguments' (exit 2): OUT is an input */
    struct stat out_st;        /* OUT's device and inode when it exists (out_exists) */
    int out_exists;
    /* paths */
    char dir[CV_PATH];
    char weights[CV_PATH];     /* the weights file or index chosen */
    char source_name[CV_NAME];
    /* inputs */
    json_value *config;
    st_file *st;
    size_t n_st;
    tb_file *tb;
    size_t n_tb;
    char **files;              /* file names of st / tb entries, for messages */
    src_tensor *src;
    size_t n_src, cap_src;
    unsigned char *used;
    /* model */
    arch_t arch;
    const char *prefix;        /* RoBERTa: "" or "roberta." */
    out_tensor *out;
    size_t n_out, cap_out;
    size_t n_skipped;
    char skipped[512];
    /* tokenizer */
    int have_tok;
    strlist vocab, merges;
    /* output */
    mmspcl_writer *w;
    int last_step;
    int bar_open;              /* a terminal progress bar line is not finished */
    char err[1024];
} conv;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int fail(conv *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    return -1;
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void note(conv *c, const char *fmt, ...) {
    va_list ap;
    if (c->quiet) return;
    fputs("mmspcl-convert: note: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ---------------------------------------------------------------------------------------------
   Signals: an interrupted run removes OUT.tmp
   ------------------------------------------------------------------------------------------ */
static char g_tmp_path[CV_PATH + 8];

static void on_signal(int sig) {
    if (g_tmp_path[0]) unlink(g_tmp_path);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

/* ---------------------------------------------------------------------------------------------
   Small helpers
   ------------------------------------------------------------------------------------------ */
static int is_file(const char *p) { struct stat sb; return stat(p, &sb) == 0 && S_ISREG(sb.st_mode); }

/* -1 (after fail, exit 2) when path, a file the converter reads, is OUT itself (device and inode:
   hard links and symbolic links included); 0 otherwise */
static int refuse_output_input(conv *c, const char *path) {
    struct stat sb;
    if (!c->out_exists || stat(path, &sb) != 0 || sb.st_dev != c->out_st.st_dev || sb.st_ino != c->out_st.st_ino) return 0;
    c->usage_error = 1;
    return fail(c, "OUT %s is the same file as the input %s: refusing to overwrite an input", c->out_path, path);
}

static int join(conv *c, char *dst, const char *dir, const char *name) {
    int n = snprintf(dst, CV_PATH, "%s/%s", dir, name);
    if (n < 0 || n >= CV_PATH) return fail(c, "path too long: %s/%s", dir, name);
    return 0;
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t pos = 0;
    int i;
    pos += (size_t)snprintf(buf + pos, n - pos, "[");
    for (i = 0; i < ndim && pos < n; i++)
        pos += (size_t)snprintf(buf + pos, n - pos, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (pos < n) snprintf(buf + pos, n - pos, "]");
}

static void strlist_free(strlist *l) { tf_list_free(l); }

/* ---------------------------------------------------------------------------------------------
   Progress: a bar on a terminal, at most ~20 plain lines otherwise, nothing with --quiet
   ------------------------------------------------------------------------------------------ */
static void progress(conv *c, const char *phase, uint64_t done, uint64_t total, int bytes) {
    int pct;
    if (c->quiet || total == 0) return;
    pct = (int)(done * 100 / total);
    if (c->tty) {
        char bar[41];
        int i, fill = pct * 40 / 100;
        if (pct == c->last_step && done != total) return;
        c->last_step = pct;
        for (i = 0; i < 40; i++) bar[i] = i < fill ? '#' : '.';
        bar[40] = 0;
        if (bytes)
            fprintf(stderr, "\r%-10s [%s] %3d%%  %.1f/%.1f MB ", phase, bar, pct, done / 1e6, total / 1e6);
        else
            fprintf(stderr, "\r%-10s [%s] %3d%%  %llu/%llu tensors ", phase, bar, pct,
                    (unsigned long long)done, (unsigned long long)total);
        c->bar_open = done != total;
        if (done == total) fputc('\n', stderr);
        fflush(stderr);
    } else {
        int step = pct / 20;  /* one line per 20%: at most ~11 lines in all */
        if (step <= c->last_step) return;
        c->last_step = step;
        if (bytes)
            fprintf(stderr, "%s: %.1f/%.1f MB (%d%%)\n", phase, done / 1e6, total / 1e6, pct);
        else
            fprintf(stderr, "%s: %llu/%llu tensors (%d%%)\n", phase, (unsigned long long)done,
                    (unsigned long long)total, pct);
    }
}

static void write_progress(void *user, uint64_t done, uint64_t total) {
    progress((conv *)user, "writing", done, total, 1);
}

/* ---------------------------------------------------------------------------------------------
   Loading the weights
   ------------------------------------------------------------------------------------------ */
static int add_src(conv *c, const src_tensor *t) {
    size_t i;
    for (i = 0; i < c->n_src; i++)
        if (strcmp(c->src[i].name, t->name) == 0)
            return fail(c, "tensor '%s' appears in both %s and %s", t->name, c->src[i].file, t->file);
    if (c->n_src == c->cap_src) {
        size_t nc = c->cap_src ? c->cap_src * 2 : 256;
        src_tensor *ns = (src_tensor *)realloc(c->src, nc * sizeof *ns);
        if (!ns) return fail(c, "out of memory");
        c->src = ns;
        c->cap_src = nc;
    }
    c->src[c->n_src++] = *t;
    return 0;
}

static int add_st_file(conv *c, const st_file *f, const char *file) {
    size_t i;
    for (i = 0; i < f->n; i++) {
        const st_tensor *s = &f->tensors[i];
        src_tensor t;
        memset(&t, 0, sizeof t);
        t.name = s->name;
        t.dtype_name = s->dtype;
        t.dtype = strcmp(s->dtype, "F32") == 0 ? SRC_F32 : strcmp(s->dtype, "F16") == 0 ? SRC_F16
                  : strcmp(s->dtype, "BF16") == 0 ? SRC_BF16 : SRC_OTHER;
        t.ndim = s->ndim;
        memcpy(t.shape, s->shape, sizeof t.shape);
        t.nelem = s->nelem;
        t.data = s->data;
        t.nbytes = s->nbytes;
        t.file = file;
        if (add_src(c, &t)) return -1;
    }
    return 0;
}

static int add_tb_file(conv *c, const tb_file *f, const char *file) {
    int i, d;
    for (i = 0; i < f->n; i++) {
        const tb_tensor *s = &f->tensors[i];
        src_tensor t;
        memset(&t, 0, sizeof t);
        t.name = s->name;
        t.dtype_name = tb_dtype_name(s->dtype);
        t.dtype = s->dtype == TB_F32 ? SRC_F32 : s->dtype == TB_F16 ? SRC_F16 : s->dtype == TB_BF16 ? SRC_BF16 : SRC_OTHER;
        t.ndim = s->ndim;
        t.nelem = 1;
        for (d = 0; d < s->ndim && d < 8; d++) { t.shape[d] = s->shape[d]; t.nelem *= (uint64_t)s->shape[d]; }
        t.data = (const unsigned char *)s->data;
        t.nbytes = s->nbytes;
        t.file = file;
        if (add_src(c, &t)) return -1;
    }
    return 0;
}

/* Opens one weights file (safetensors or PyTorch) and adds its tensors. */
static int open_weights_file(conv *c, const char *path, int torch) {
    char err[512];
    size_t k = c->n_st + c->n_tb;
    char **nf;
    if (refuse_output_input(c, path)) return -1;
    if (!(nf = (char **)realloc(c->files, (k + 1) * sizeof *nf))) return fail(c, "out of memory");
    c->files = nf;
    if (!(c->files[k] = (char *)malloc(strlen(path) + 1))) return fail(c, "out of memory");
    strcpy(c->files[k], path);
    if (torch) {
        tb_file *nt = (tb_file *)realloc(c->tb, (c->n_tb + 1) * sizeof *nt);
        if (!nt) { free(c->files[k]); return fail(c, "out of memory"); }
        c->tb = nt;
        if (tb_read(path, &c->tb[c->n_tb], err, sizeof err) != 0) { free(c->files[k]); return fail(c, "%s", err); }
        c->n_tb++;
        return add_tb_file(c, &c->tb[c->n_tb - 1], c->files[k]);
    } else {
        st_file *ns = (st_file *)realloc(c->st, (c->n_st + 1) * sizeof *ns);
        if (!ns) { free(c->files[k]); return fail(c, "out of memory"); }
        c->st = ns;
        if (st_open(path, &c->st[c->n_st], err, sizeof err) != 0) { free(c->files[k]); return fail(c, "%s", err); }
        c->n_st++;
        return add_st_file(c, &c->st[c->n_st - 1], c->files[k]);
    }
}

static int find_src_index(const conv *c, const char *name) {
    size_t i;
    for (i = 0; i < c->n_src; i++)
        if (strcmp(c->src[i].name, name) == 0) return (int)i;
    return -1;
}

/* Sharded checkpoint: the index's weight_map names every tensor's shard. */
static int open_index(conv *c, const char *index_path, int torch) {
    char err[600], path[CV_PATH];
    json_value *idx = json_parse_file(index_path, err, sizeof err);
    const json_value *wm;
    size_t i, j;
    int rc = -1;
    if (!idx) return fail(c, "%s", err);
    wm = json_get(idx, "weight_map");
    if (idx->type != JSON_OBJECT || !wm || wm->type != JSON_OBJECT || wm->count == 0) {
        fail(c, "%s: no \"weight_map\" object (a sharded checkpoint index maps tensor names to shard files)", index_path);
        goto out;
    }
    for (i = 0; i < wm->count; i++) {
        const json_value *e = &wm->items[i];
        int seen = 0;
        if (strlen(e->key) != e->key_len) {
            char show[256];
            fail(c, "%s: weight_map key '%s' (value at byte %zu) holds a NUL byte: tensor names must not contain NUL",
                 index_path, tf_show(show, e->key, e->key_len), e->offset);
            goto out;
        }
        if (e->type != JSON_STRING || e->len == 0 || strlen(e->str) != e->len || strchr(e->str, '/') ||
            strcmp(e->str, ".") == 0 || strcmp(e->str, "..") == 0) {
            fail(c, "%s: weight_map entry '%s' (byte %zu) must name a shard file in the same folder", index_path,
                 e->key, e->offset);
            goto out;
        }
        for (j = 0; j < i; j++)
            if (wm->items[j].len == e->len && memcmp(wm->items[j].str, e->str, e->len) == 0) { seen = 1; break; }
        if (seen) continue;
        if (join(c, path, c->dir, e->str)) goto out;
        if (!is_file(path)) {
            fail(c, "%s: shard '%s' (holding tensor '%s') is missing: %s not found", index_path, e->str, e->key, path);
            goto out;
        }
    }
    for (i = 0; i < wm->count; i++) {
        const json_value *e = &wm->items[i];
        int seen = 0;
        for (j = 0; j < i; j++)
            if (wm->items[j].len == e->len && memcmp(wm->items[j].str, e->str, e->len) == 0) { seen = 1; break; }
        if (seen) continue;
        if (join(c, path, c->dir, e->str) || open_weights_file(c, path, torch)) goto out;
    }
    /* every tensor the index names must be in the shard it names */
    for (i = 0; i < wm->count; i++) {
        const json_value *e = &wm->items[i];
        int k = find_src_index(c, e->key);
        if (k < 0 || strcmp(base_name(c->src[k].file), e->str) != 0) {
            fail(c, "%s: tensor '%s' should be in shard '%s' but %s", index_path, e->key, e->str,
                 k < 0 ? "no shard holds it" : "another shard holds it");
            goto out;
        }
    }
    rc = 0;
out:
    json_free(idx);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
   Config access with Hugging Face's defaults
   ------------------------------------------------------------------------------------------ */
static int cfg_int(conv *c, const json_value *cfg, const char *where, const char *key, int64_t def, int64_t *out) {
    const json_value *v = json_get(cfg, key);
    if (!v || v->type == JSON_NULL) { *out = def; return 0; }
    if (!json_int(v, out))
        return fail(c, "%s: \"%s\" (byte %zu) must be an integer, found a %s", where, key, v->offset, json_type_name(v->type));
    return 0;
}

static int cfg_pos(conv *c, const json_value *cfg, const char *where, const char *key, int64_t def, int64_t *out) {
    if (cfg_int(c, cfg, where, key, def, out)) return -1;
    if (*out <= 0 || *out > ((int64_t)1 << 31))
        return fail(c, "%s: \"%s\" = %lld is not a positive size", where, key, (long long)*out);
    return 0;
}

static int cfg_float(conv *c, const json_value *cfg, const char *where, const char *key, double def, double *out) {
    const json_value *v = json_get(cfg, key);
    if (!v || v->type == JSON_NULL) { *out = def; return 0; }
    if (v->type != JSON_NUMBER)
        return fail(c, "%s: \"%s\" (byte %zu) must be a number, found a %s", where, key, v->offset, json_type_name(v->type));
    *out = v->number;
    return 0;
}

static int cfg_str(conv *c, const json_value *cfg, const char *where, const char *key, const char *def, const char **out) {
    const json_value *v = json_get(cfg, key);
    if (!v || v->type == JSON_NULL) { *out = def; return 0; }
    if (v->type != JSON_STRING || strlen(v->str) != v->len)
        return fail(c, "%s: \"%s\" (byte %zu) must be a string, found a %s", where, key, v->offset, json_type_name(v->type));
    *out = v->str;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
   The mapping: each expected output tensor, its source and its shape
   ------------------------------------------------------------------------------------------ */
/* Adds the output tensor `name` taken from source `src_name` (alt: an alternative source name,
   e.g. LayerNorm.gamma) with the expected shape; `why` explains the shape in messages. */
static int expect(conv *c, const char *name, const char *src_name, const char *alt, int linear, const char *why,
                  int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    int k = find_src_index(c, src_name), ka = alt ? find_src_index(c, alt) : -1, i;
    int64_t want[4];
    out_tensor *o;
    const src_tensor *s;
    want[0] = d0; want[1] = d1; want[2] = d2; want[3] = d3;
    if (k >= 0 && ka >= 0)
        return fail(c, "both '%s' and '%s' are present (%s); expected one", src_name, alt, c->src[k].file);
    if (k < 0) k = ka;
    if (k < 0) return fail(c, "tensor '%s' is missing from the checkpoint (%s)", src_name, c->weights);
    s = &c->src[k];
    c->used[k] = 1;
    if (s->ndim != ndim || memcmp(s->shape, want, sizeof(int64_t) * (size_t)ndim) != 0) {
        char a[96], b[96];
        shape_str(a, sizeof a, s->ndim, s->shape);
        shape_str(b, sizeof b, ndim, want);
        return fail(c, "tensor '%s' (%s) has shape %s but config.json implies %s (%s): config and weights do not match",
                    s->name, s->file, a, b, why);
    }
    if (s->dtype == SRC_OTHER)
        return fail(c, "tensor '%s' (%s): unsupported dtype %s (the converter reads F32, F16 and BF16)",
                    s->name, s->file, s->dtype_name);
    if (c->n_out == c->cap_out) {
        size_t nc = c->cap_out ? c->cap_out * 2 : 256;
        out_tensor *no = (out_tensor *)realloc(c->out, nc * sizeof *no);
        if (!no) return fail(c, "out of memory");
        c->out = no;
        c->cap_out = nc;
    }
    o = &c->out[c->n_out++];
    memset(o, 0, sizeof *o);
    if (strlen(name) >= sizeof o->name) return fail(c, "tensor name too long: %s", name);
    strcpy(o->name, name);
    o->src = s;
    o->linear = linear;
    o->ndim = ndim;
    for (i = 0; i < ndim; i++) o->shape[i] = want[i];
    return 0;
}

/* Largest N+1 such that a source tensor starts with `pre` followed by "N.", or 0. */
static int64_t count_layers(const conv *c, const char *pre) {
    size_t i, pl = strlen(pre);
    int64_t best = 0;
    for (i = 0; i < c->n_src; i++) {
        const char *n = c->src[i].name, *p;
        int64_t v = 0;
        if (strncmp(n, pre, pl) != 0) continue;
        p = n + pl;
        if (*p < '0' || *p > '9') continue;
        while (*p >= '0' && *p <= '9' && v < 100000000) v = v * 10 + (*p++ - '0');
        if (*p == '.' && v + 1 > best) best = v + 1;
    }
    return best;
}

static int check_layers(conv *c, const char *pre, int64_t want) {
    int64_t have = count_layers(c, pre);
    if (have > want)
        return fail(c, "config.json says num_hidden_layers = %lld but the checkpoint has layer %s%lld.*: config and weights do not match",
                    (long long)want, pre, (long long)(have - 1));
    if (have < want)
        return fail(c, "config.json says num_hidden_layers = %lld but the checkpoint has only %lld layers (%s0..%lld)",
                    (long long)want, (long long)have, pre, (long long)have - 1);
    return 0;
}

static int starts(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }
static int ends(const char *s, const char *p) {
    size_t n = strlen(s), m = strlen(p);
    return n >= m && strcmp(s + n - m, p) == 0;
}

/* Tensors not mapped: dropped silently when known, refused inside the model's own namespace
   (they would change what the model computes), skipped with a note otherwise. */
static int leftovers(conv *c, const char *const *silent, const char *const *own) {
    size_t i, j;
    for (i = 0; i < c->n_src; i++) {
        const char *n = c->src[i].name;
        int drop = 0;
        if (c->used[i]) continue;
        if (ends(n, ".position_ids") || strcmp(n, "position_ids") == 0) continue;
        for (j = 0; silent[j]; j++)
            if (starts(n, silent[j]) || strcmp(n, silent[j]) == 0) drop = 1;
        if (drop) continue;
        for (j = 0; own[j]; j++)
            if (starts(n, own[j]))
                return fail(c, "unexpected tensor '%s' (%s) inside the model: this converter does not know what it does",
                            n, c->src[i].file);
        if (c->n_skipped < 4) {
            size_t l = strlen(c->skipped);
            snprintf(c->skipped + l, sizeof c->skipped - l, "%s%s", l ? ", " : "", n);
        }
        c->n_skipped++;
    }
    return 0;
}

static void found_names(const conv *c, char *buf, size_t n) {
    size_t i, pos = 0;
    buf[0] = 0;
    for (i = 0; i < c->n_src && i < 4 && pos < n; i++)
        pos += (size_t)snprintf(buf + pos, n - pos, "%s'%s'", i ? ", " : "", c->src[i].name);
    if (c->n_src > 4 && pos < n) snprintf(buf + pos, n - pos, ", ... (%zu tensors)", c->n_src);
    if (c->n_src == 0) snprintf(buf, n, "no tensors");
}

/* The loader's own check of the metadata set so far (tensors are added later): the file's keys
   go through mmspcl_roberta_read_config / mmspcl_clip_read_config, the functions
   mmspcl_roberta_load / mmspcl_clip_load start with, so what they would refuse is refused here,
   before anything is written. from: the files the keys came from, for the message. */
static int loader_check(conv *c, const char *from) {
    unsigned char *bytes = NULL;
    size_t n = 0;
    mmspcl_weights *w = NULL;
    mmspcl_error e;
    mmspcl_status st = mmspcl_writer_save_to_memory(c->w, &bytes, &n, &e);
    if (!st) st = mmspcl_weights_from_memory(&w, bytes, n, &e);
    if (!st && c->arch == ARCH_ROBERTA) {
        mmspcl_roberta_config rc;
        st = mmspcl_roberta_read_config(w, &rc, &e);
    } else if (!st) {
        mmspcl_clip_config cc;
        st = mmspcl_clip_read_config(w, &cc, &e);
    }
    mmspcl_weights_free(w);
    mmspcl_free(bytes);
    if (st == MMSPCL_ERR_NOMEM) return fail(c, "out of memory");
    if (st) return fail(c, "%s/%s: the weight file would not load, so it is not written: %s", c->dir, from, e.msg);
    return 0;
}

static int map_roberta(conv *c, const char *mt) {
    const json_value *cfg = c->config;
    const char *W = "config.json", *act, *pet, *P;
    int64_t V, H, L, NH, I, MP, TV, PAD, l;
    double eps;
    char on[CV_NAME], sn[CV_NAME + 16], alt[CV_NAME + 16];
    static const char *const silent_bare[] = {"pooler.", "lm_head.", NULL};
    static const char *const silent_pre[] = {"roberta.pooler.", "lm_head.", NULL};
    static const char *const own_bare[] = {"embeddings.", "encoder.", NULL};
    static const char *const own_pre[] = {"roberta.embeddings.", "roberta.encoder.", NULL};
    int has_pre = find_src_index(c, "roberta.embeddings.word_embeddings.weight") >= 0;
    int has_bare = find_src_index(c, "embeddings.word_embeddings.weight") >= 0;
    (void)mt;
    if (has_pre && has_bare)
        return fail(c, "%s holds both 'roberta.embeddings.*' and 'embeddings.*': which encoder is meant?", c->weights);
    if (!has_pre && !has_bare) {
        char f[400];
        found_names(c, f, sizeof f);
        return fail(c, "config.json says model_type 'roberta' but %s has no 'embeddings.word_embeddings.weight' "
                       "(nor 'roberta.embeddings.word_embeddings.weight'); found %s", c->weights, f);
    }
    P = c->prefix = has_pre ? "roberta." : "";
    if (cfg_pos(c, cfg, W, "vocab_size", 50265, &V) || cfg_pos(c, cfg, W, "hidden_size", 768, &H) ||
        cfg_pos(c, cfg, W, "num_hidden_layers", 12, &L) || cfg_pos(c, cfg, W, "num_attention_heads", 12, &NH) ||
        cfg_pos(c, cfg, W, "intermediate_size", 3072, &I) || cfg_pos(c, cfg, W, "max_position_embeddings", 512, &MP) ||
        cfg_pos(c, cfg, W, "type_vocab_size", 2, &TV) || cfg_int(c, cfg, W, "pad_token_id", 1, &PAD) ||
        cfg_float(c, cfg, W, "layer_norm_eps", 1e-12, &eps) || cfg_str(c, cfg, W, "hidden_act", "gelu", &act) ||
        cfg_str(c, cfg, W, "position_embedding_type", "absolute", &pet))
        return -1;
    if (strcmp(pet, "absolute") != 0)
        return fail(c, "config.json: position_embedding_type '%s' is not supported (only 'absolute')", pet);
    if (H % NH)
        return fail(c, "config.json: hidden_size %lld is not a multiple of num_attention_heads %lld", (long long)H, (long long)NH);
    if (PAD < 0 || PAD >= V)
        return fail(c, "config.json: pad_token_id %lld is outside the vocabulary (vocab_size %lld)", (long long)PAD, (long long)V);
    if (!(eps > 0) || eps > 1)
        return fail(c, "config.json: layer_norm_eps %g is not a small positive number", eps);

#define E(oname, linear, why, nd, a, b) do { \
        snprintf(on, sizeof on, "%s", oname); snprintf(sn, sizeof sn, "%s%s", P, on); \
        if (expect(c, on, sn, NULL, linear, why, nd, a, b, 0, 0)) return -1; } while (0)
#define LN(base, why) do { \
        snprintf(on, sizeof on, "%s.weight", base); snprintf(sn, sizeof sn, "%s%s", P, on); \
        snprintf(alt, sizeof alt, "%s%s.gamma", P, base); \
        if (expect(c, on, sn, alt, 0, why, 1, H, 0, 0, 0)) return -1; \
        snprintf(on, sizeof on, "%s.bias", base); snprintf(sn, sizeof sn, "%s%s", P, on); \
        snprintf(alt, sizeof alt, "%s%s.beta", P, base); \
        if (expect(c, on, sn, alt, 0, why, 1, H, 0, 0, 0)) return -1; } while (0)

    E("embeddings.word_embeddings.weight", 0, "vocab_size x hidden_size", 2, V, H);
    E("embeddings.position_embeddings.weight", 0, "max_position_embeddings x hidden_size", 2, MP, H);
    E("embeddings.token_type_embeddings.weight", 0, "type_vocab_size x hidden_size", 2, TV, H);
    LN("embeddings.LayerNorm", "hidden_size");
    snprintf(sn, sizeof sn, "%sencoder.layer.", P);
    if (check_layers(c, sn, L)) return -1;
    for (l = 0; l < L; l++) {
        char b[96], t[160];
        static const char *const qkv[] = {"query", "key", "value"};
        int q;
        snprintf(b, sizeof b, "encoder.layer.%lld.", (long long)l);
        for (q = 0; q < 3; q++) {
            snprintf(t, sizeof t, "%sattention.self.%s.weight", b, qkv[q]); E(t, 1, "hidden_size x hidden_size", 2, H, H);
            snprintf(t, sizeof t, "%sattention.self.%s.bias", b, qkv[q]); E(t, 0, "hidden_size", 1, H, 0);
        }
        snprintf(t, sizeof t, "%sattention.output.dense.weight", b); E(t, 1, "hidden_size x hidden_size", 2, H, H);
        snprintf(t, sizeof t, "%sattention.output.dense.bias", b); E(t, 0, "hidden_size", 1, H, 0);
        snprintf(t, sizeof t, "%sattention.output.LayerNorm", b); LN(t, "hidden_size");
        snprintf(t, sizeof t, "%sintermediate.dense.weight", b); E(t, 1, "intermediate_size x hidden_size", 2, I, H);
        snprintf(t, sizeof t, "%sintermediate.dense.bias", b); E(t, 0, "intermediate_size", 1, I, 0);
        snprintf(t, sizeof t, "%soutput.dense.weight", b); E(t, 1, "hidden_size x intermediate_size", 2, H, I);
        snprintf(t, sizeof t, "%soutput.dense.bias", b); E(t, 0, "hidden_size", 1, H, 0);
        snprintf(t, sizeof t, "%soutput.LayerNorm", b); LN(t, "hidden_size");
    }
#undef E
#undef LN
    if (leftovers(c, *P ? silent_pre : silent_bare, *P ? own_pre : own_bare)) return -1;

    if (mmspcl_writer_set_str(c->w, "general.architecture", "roberta") ||
        mmspcl_writer_set_str(c->w, "general.source", c->source_name) ||
        mmspcl_writer_set_str(c->w, "general.file_type", mmspcl_dtype_name(c->type)) ||
        mmspcl_writer_set_int(c->w, "roberta.vocab_size", V) ||
        mmspcl_writer_set_int(c->w, "roberta.hidden_size", H) ||
        mmspcl_writer_set_int(c->w, "roberta.num_hidden_layers", L) ||
        mmspcl_writer_set_int(c->w, "roberta.num_attention_heads", NH) ||
        mmspcl_writer_set_int(c->w, "roberta.intermediate_size", I) ||
        mmspcl_writer_set_int(c->w, "roberta.max_position_embeddings", MP) ||
        mmspcl_writer_set_int(c->w, "roberta.type_vocab_size", TV) ||
        mmspcl_writer_set_int(c->w, "roberta.pad_token_id", PAD) ||
        mmspcl_writer_set_float(c->w, "roberta.layer_norm_eps", eps) ||
        mmspcl_writer_set_str(c->w, "roberta.hidden_act", act))
        return fail(c, "out of memory");
    return loader_check(c, "config.json");
}

/* preprocessor_config.json: "size": 224 or {"shortest_edge": 224}; "crop_size": 224 or
   {"height": 224, "width": 224}; "image_mean"/"image_std": 3 numbers. */
static int clip_preprocessor(conv *c, int64_t image_size) {
    static const double mean_def[3] = {0.48145466, 0.4578275, 0.40821073};
    static const double std_def[3] = {0.26862954, 0.26130258, 0.27577711};
    double mean[3], sd[3];
    int64_t resize = image_size, crop = image_size;
    char path[CV_PATH], err[600], key[32];
    json_value *pp = NULL;
    const json_value *v;
    int i, rc = -1;
    memcpy(mean, mean_def, sizeof mean);
    memcpy(sd, std_def, sizeof sd);
    if (join(c, path, c->dir, "preprocessor_config.json")) return -1;
    if (is_file(path)) {
        const char *W = "preprocessor_config.json";
        if (!(pp = json_parse_file(path, err, sizeof err))) return fail(c, "%s", err);
        if (pp->type != JSON_OBJECT) { fail(c, "%s: not a JSON object", path); goto out; }
        if ((v = json_get(pp, "size")) && v->type != JSON_NULL) {
            if (v->type == JSON_OBJECT) {
                if (cfg_pos(c, v, W, "shortest_edge", 0, &resize)) {
                    fail(c, "%s: \"size\" (byte %zu) must be a number or {\"shortest_edge\": N} (only shortest-edge resizing is supported)", path, v->offset);
                    goto out;
                }
            } else if (cfg_pos(c, pp, W, "size", 0, &resize)) goto out;
        }
        if ((v = json_get(pp, "crop_size")) && v->type != JSON_NULL) {
            if (v->type == JSON_OBJECT) {
                int64_t h, w;
                if (cfg_pos(c, v, W, "height", 0, &h) || cfg_pos(c, v, W, "width", 0, &w)) goto out;
                if (h != w) { fail(c, "%s: crop_size %lldx%lld is not square (only square crops are supported)", path, (long long)h, (long long)w); goto out; }
                crop = h;
            } else if (cfg_pos(c, pp, W, "crop_size", 0, &crop)) goto out;
        }
        for (i = 0; i < 2; i++) {
            const char *k = i ? "image_std" : "image_mean";
            double *dst = i ? sd : mean;
            int j;
            if (!(v = json_get(pp, k)) || v->type == JSON_NULL) continue;
            if (v->type != JSON_ARRAY || v->count != 3) { fail(c, "%s: \"%s\" (byte %zu) must be an array of 3 numbers", path, k, v->offset); goto out; }
            for (j = 0; j < 3; j++) {
                if (v->items[j].type != JSON_NUMBER) { fail(c, "%s: \"%s\"[%d] is not a number", path, k, j); goto out; }
                dst[j] = v->items[j].number;
            }
            if (i && (sd[0] <= 0 || sd[1] <= 0 || sd[2] <= 0)) { fail(c, "%s: image_std must be positive", path); goto out; }
        }
    }
    for (i = 0; i < 3; i++) {
        snprintf(key, sizeof key, "clip.image_mean.%d", i);
        if (mmspcl_writer_set_float(c->w, key, mean[i])) { fail(c, "out of memory"); goto out; }
    }
    for (i = 0; i < 3; i++) {
        snprintf(key, sizeof key, "clip.image_std.%d", i);
        if (mmspcl_writer_set_float(c->w, key, sd[i])) { fail(c, "out of memory"); goto out; }
    }
    if (mmspcl_writer_set_int(c->w, "clip.resize_shortest_edge", resize) ||
        mmspcl_writer_set_int(c->w, "clip.crop_size", crop)) { fail(c, "out of memory"); goto out; }
    rc = 0;
out:
    json_free(pp);
    return rc;
}

static int map_clip(conv *c, const char *mt) {
    const json_value *vc = c->config;
    const char *W = "config.json", *act;
    int full = strcmp(mt, "clip") == 0;
    int64_t IMG, PS, CH, H, L, NH, I, PD = 0, l, np;
    double eps;
    int has_proj;
    char t[CV_NAME];
    static const char *const silent_full[] = {"text_model.", "text_projection.", "logit_scale", NULL};
    static const char *const silent_vis[] = {NULL};
    static const char *const own[] = {"vision_model.", "visual_projection.", NULL};
    if (find_src_index(c, "vision_model.embeddings.patch_embedding.weight") < 0) {
        char f[400];
        found_names(c, f, sizeof f);
        return fail(c, "config.json says model_type '%s' but %s has no 'vision_model.embeddings.patch_embedding.weight'; found %s",
                    mt, c->weights, f);
    }
    if (full) {
        const json_value *v = json_get(c->config, "vision_config");
        if (v && v->type != JSON_OBJECT && v->type != JSON_NULL)
            return fail(c, "config.json: \"vision_config\" (byte %zu) must be an object", v->offset);
        if (cfg_pos(c, c->config, W, "projection_dim", 512, &PD)) return -1;
        vc = v && v->type == JSON_OBJECT ? v : NULL;  /* absent: all defaults */
        W = "config.json (vision_config)";
    }
    if (cfg_pos(c, vc, W, "image_size", 224, &IMG) || cfg_pos(c, vc, W, "patch_size", 32, &PS) ||
        cfg_pos(c, vc, W, "num_channels", 3, &CH) || cfg_pos(c, vc, W, "hidden_size", 768, &H) ||
        cfg_pos(c, vc, W, "num_hidden_layers", 12, &L) || cfg_pos(c, vc, W, "num_attention_heads", 12, &NH) ||
        cfg_pos(c, vc, W, "intermediate_size", 3072, &I) ||
        (!full && cfg_pos(c, vc, W, "projection_dim", 512, &PD)) ||
        cfg_float(c, vc, W, "layer_norm_eps", 1e-5, &eps) || cfg_str(c, vc, W, "hidden_act", "quick_gelu", &act))
        return -1;
    if (IMG % PS)
        return fail(c, "%s: image_size %lld is not a multiple of patch_size %lld", W, (long long)IMG, (long long)PS);
    if (H % NH)
        return fail(c, "%s: hidden_size %lld is not a multiple of num_attention_heads %lld", W, (long long)H, (long long)NH);
    if (!(eps > 0) || eps > 1) return fail(c, "%s: layer_norm_eps %g is not a small positive number", W, eps);
    np = (IMG / PS) * (IMG / PS) + 1;

#define E(oname, linear, why, nd, a, b, cc, d) do { \
        if (expect(c, oname, oname, NULL, linear, why, nd, a, b, cc, d)) return -1; } while (0)
    E("vision_model.embeddings.class_embedding", 0, "hidden_size", 1, H, 0, 0, 0);
    E("vision_model.embeddings.patch_embedding.weight", 0, "hidden_size x num_channels x patch_size x patch_size", 4, H, CH, PS, PS);
    E("vision_model.embeddings.position_embedding.weight", 0, "(image_size/patch_size)^2+1 x hidden_size", 2, np, H, 0, 0);
    E("vision_model.pre_layrnorm.weight", 0, "hidden_size", 1, H, 0, 0, 0);
    E("vision_model.pre_layrnorm.bias", 0, "hidden_size", 1, H, 0, 0, 0);
    if (check_layers(c, "vision_model.encoder.layers.", L)) return -1;
    for (l = 0; l < L; l++) {
        static const char *const proj[] = {"k_proj", "v_proj", "q_proj", "out_proj"};
        int q;
        for (q = 0; q < 4; q++) {
            snprintf(t, sizeof t, "vision_model.encoder.layers.%lld.self_attn.%s.weight", (long long)l, proj[q]);
            E(t, 1, "hidden_size x hidden_size", 2, H, H, 0, 0);
            snprintf(t, sizeof t, "vision_model.encoder.layers.%lld.self_attn.%s.bias", (long long)l, proj[q]);
            E(t, 0, "hidden_size", 1, H, 0, 0, 0);
        }
        snprintf(t, sizeof t, "vision_model.encoder.layers.%lld.layer_norm1.weight", (long long)l); E(t, 0, "hidden_size", 1, H, 0, 0, 0);
        snprintf(t, sizeof t, "vision_model.encoder.layers.%lld.layer_norm1.bias", (long long)l); E(t, 0, "hidden_size", 1, H, 0, 0, 0);
        snprintf(t, sizeof t, "vision_model.encoder.layers.%lld.mlp.fc1.weight", (long long)l); E(t, 1, "intermediate_size x hidden_size", 2, I, H, 0, 0);
        snprintf(t, sizeof t, "vision_model.encoder.layers.%lld.mlp.fc1.bias", (long long)l); E(t, 0, "intermediate_size", 1, I, 0, 0, 0);
        snprintf(t, sizeof t, "vision_model.encoder.layers.%lld.mlp.fc2.weight", (long long)l); E(t, 1, "hidden_size x intermediate_size", 2, H, I, 0, 0);
        snprintf(t, sizeof t, "vision_model.encoder.layers.%lld.mlp.fc2.bias", (long long)l); E(t, 0, "hidden_size", 1, H, 0, 0, 0);
        snprintf(t, sizeof t, "vision_model.encoder.layers.%lld.layer_norm2.weight", (long long)l); E(t, 0, "hidden_size", 1, H, 0, 0, 0);
        snprintf(t, sizeof t, "vision_model.encoder.layers.%lld.layer_norm2.bias", (long long)l); E(t, 0, "hidden_size", 1, H, 0, 0, 0);
    }
    E("vision_model.post_layernorm.weight", 0, "hidden_size", 1, H, 0, 0, 0);
    E("vision_model.post_layernorm.bias", 0, "hidden_size", 1, H, 0, 0, 0);
    /* CLIPModel and CLIPVisionModelWithProjection have the projection; CLIPVisionModel not */
    has_proj = full || find_src_index(c, "visual_projection.weight") >= 0;
    if (has_proj) E("visual_projection.weight", 1, "projection_dim x hidden_size", 2, PD, H, 0, 0);
#undef E
    if (leftovers(c, full ? silent_full : silent_vis, own)) return -1;

    if (mmspcl_writer_set_str(c->w, "general.architecture", "clip_vision") ||
        mmspcl_writer_set_str(c->w, "general.source", c->source_name) ||
        mmspcl_writer_set_str(c->w, "general.file_type", mmspcl_dtype_name(c->type)) ||
        mmspcl_writer_set_int(c->w, "clip.image_size", IMG) ||
        mmspcl_writer_set_int(c->w, "clip.patch_size", PS) ||
        mmspcl_writer_set_int(c->w, "clip.num_channels", CH) ||
        mmspcl_writer_set_int(c->w, "clip.hidden_size", H) ||
        mmspcl_writer_set_int(c->w, "clip.num_hidden_layers", L) ||
        mmspcl_writer_set_int(c->w, "clip.num_attention_heads", NH) ||
        mmspcl_writer_set_int(c->w, "clip.intermediate_size", I) ||
        mmspcl_writer_set_int(c->w, "clip.projection_dim", has_proj ? PD : 0) ||
        mmspcl_writer_set_float(c->w, "clip.layer_norm_eps", eps) ||
        mmspcl_writer_set_str(c->w, "clip.hidden_act", act))
        return fail(c, "out of memory");
    /* config.json's keys first (the preprocessing ones at their defaults), then with
       preprocessor_config.json's: each refusal names the file it comes from */
    if (loader_check(c, W) || clip_preprocessor(c, IMG)) return -1;
    return loader_check(c, "preprocessor_config.json");
}

/* ---------------------------------------------------------------------------------------------
   Tokenizer: vocab.json + merges.txt, or tokenizer.json
   ------------------------------------------------------------------------------------------ */
/* The checks are those of tokenizer_files.h, which mmspcl tokenize --vocab --merges runs too,
   ending in the library's own (mmspcl_bpe_from_arrays_ex, MMSPCL_BPE_STRICT): what the converter
   writes, mmspcl_bpe_from_weights loads. */

/* The largest merges.txt taken: the reader this replaced refused 2 GiB and more, in the words
   "larger than 1 GB" (kept, with that limit, so that the converter's behaviour stays the same). */
#define CV_MAX_MERGES_BYTES (((size_t)1 << 31) - 1)

static int read_merges_txt(conv *c, const char *path) {
    unsigned char *raw;
    size_t n = 0;
    mmspcl_status st;
    int open_errno, rc;
    errno = 0;
    st = mmspcl_read_file(path, CV_MAX_MERGES_BYTES, &raw, &n, NULL);
    open_errno = errno;   /* why fopen failed, for the message below */
    if (st == MMSPCL_ERR_UNSUPPORTED) return fail(c, "%s: larger than 1 GB", path);
    if (st == MMSPCL_ERR_NOMEM) return fail(c, "out of memory");
    if (st) return fail(c, "%s: cannot open: %s", path, strerror(open_errno));
    rc = tf_merges_text(&c->merges, path, (const char *)raw, n, c->err, sizeof c->err);
    mmspcl_free(raw);
    return rc;
}

static int read_tokenizer(conv *c) {
    char vj[CV_PATH], mt[CV_PATH], tj[CV_PATH], err[600];
    const char *vfile = vj, *mfile = mt;
    json_value *j = NULL;
    int rc = -1;
    if (join(c, vj, c->dir, "vocab.json") || join(c, mt, c->dir, "merges.txt") || join(c, tj, c->dir, "tokenizer.json"))
        return -1;
    if (is_file(vj) || is_file(mt)) {
        if (!is_file(vj) || !is_file(mt))
            return fail(c, "%s has %s but not %s: the BPE tokenizer needs both", c->dir,
                        is_file(vj) ? "vocab.json" : "merges.txt", is_file(vj) ? "merges.txt" : "vocab.json");
        if (!(j = json_parse_file(vj, err, sizeof err))) return fail(c, "%s", err);
        if (tf_vocab(&c->vocab, vj, j, NULL, c->err, sizeof c->err) || read_merges_txt(c, mt)) goto out;
    } else if (is_file(tj)) {
        const json_value *m, *type;
        if (!(j = json_parse_file(tj, err, sizeof err))) return fail(c, "%s", err);
        m = json_get(j, "model");
        type = json_get(m, "type");
        if (!m || m->type != JSON_OBJECT) { fail(c, "%s: no \"model\" object", tj); goto out; }
        if (type && (type->type != JSON_STRING || strlen(type->str) != type->len || strcmp(type->str, "BPE") != 0)) {
            char show[256];
            fail(c, "%s: model type '%s' is not supported (only BPE; byte %zu)", tj,
                 type->type == JSON_STRING ? tf_show(show, type->str, type->len) : "?", type->offset);
            goto out;
        }
        if (tf_vocab(&c->vocab, tj, json_get(m, "vocab"), json_get(j, "added_tokens"), c->err, sizeof c->err) ||
            tf_merges_json(&c->merges, tj, json_get(m, "merges"), c->err, sizeof c->err))
            goto out;
        vfile = mfile = tj;
    } else {
        return 0;  /* no tokenizer files: weights only */
    }
    /* the loader's own checks, before anything is written */
    if (tf_check(&c->vocab, &c->merges, vfile, mfile, NULL, c->err, sizeof c->err)) goto out;
    c->have_tok = 1;
    rc = 0;
out:
    json_free(j);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
   Converting the data
   ------------------------------------------------------------------------------------------ */
static void widen_row(const src_tensor *s, uint64_t first, int64_t n, float *dst) {
    int64_t i;
    if (s->dtype == SRC_F32) {
        memcpy(dst, s->data + first * 4, (size_t)n * 4);
    } else {
        const unsigned char *p = s->data + first * 2;
        for (i = 0; i < n; i++) {
            uint16_t h = (uint16_t)(p[2 * i] | (p[2 * i + 1] << 8));
            dst[i] = s->dtype == SRC_F16 ? mmspcl_fp16_to_fp32(h) : mmspcl_bf16_to_fp32(h);
        }
    }
}

/* A Linear weight [out, in] as f32 panels {out / 16, in, 16} (docs/FORMAT.md, mmspcl_pack_panels). */
static int convert_panels(conv *c, out_tensor *o) {
    const src_tensor *s = o->src;
    const int64_t rows = o->shape[0], cols = o->shape[1];
    float *flat;
    if (s->nelem > SIZE_MAX / sizeof(float) || !(o->buf = malloc(s->nelem ? s->nelem * sizeof(float) : 1)) ||
        !(flat = (float *)malloc(s->nelem ? s->nelem * sizeof(float) : 1)))
        return fail(c, "tensor '%s': out of memory", o->name);
    widen_row(s, 0, (int64_t)s->nelem, flat);
    mmspcl_pack_panels(flat, rows, cols, (float *)o->buf);
    free(flat);
    o->data = o->buf;
    o->nbytes = (size_t)s->nelem * sizeof(float);
    o->ndim = 3;
    o->shape[0] = rows / MMSPCL_PANEL;
    o->shape[1] = cols;
    o->shape[2] = MMSPCL_PANEL;
    return 0;
}

static int convert_tensor(conv *c, out_tensor *o) {
    const src_tensor *s = o->src;
    int64_t inner = o->shape[o->ndim - 1], rows = (int64_t)(s->nelem / (uint64_t)inner), r;
    size_t row_bytes;
    int nthreads = 1, failed = 0;
    float *tmp;
    o->dtype = MMSPCL_F32;
    if (o->linear && c->type != MMSPCL_F32 && mmspcl_dtype_row_size(c->type, inner) != 0)   /* blocks must fit the rows */
        o->dtype = c->type;
    if (c->panels && o->linear && o->dtype == MMSPCL_F32 && o->ndim == 2 && o->shape[0] % MMSPCL_PANEL == 0)
        return convert_panels(c, o);
    /* same bits in and out: point into the source, no copy */
    if ((o->dtype == MMSPCL_F32 && s->dtype == SRC_F32) || (o->dtype == MMSPCL_F16 && s->dtype == SRC_F16) ||
        (o->dtype == MMSPCL_BF16 && s->dtype == SRC_BF16)) {
        o->data = s->data;
        o->nbytes = (size_t)s->nbytes;
        return 0;
    }
    row_bytes = mmspcl_dtype_row_size(o->dtype, inner);
    if (row_bytes == 0 || (uint64_t)rows > SIZE_MAX / row_bytes)
        return fail(c, "tensor '%s': cannot store %lld x %lld as %s", o->name, (long long)rows, (long long)inner,
                    mmspcl_dtype_name(o->dtype));
    o->nbytes = row_bytes * (size_t)rows;
    if (!(o->buf = malloc(o->nbytes ? o->nbytes : 1)))
        return fail(c, "tensor '%s': out of memory (%zu bytes)", o->name, o->nbytes);
    o->data = o->buf;
#ifdef _OPENMP
    nthreads = omp_get_max_threads();
    if (nthreads < 1) nthreads = 1;
    if (rows < 64) nthreads = 1;
#endif
    if ((uint64_t)inner > SIZE_MAX / sizeof(float) / (size_t)nthreads ||
        !(tmp = (float *)malloc((size_t)inner * sizeof(float) * (size_t)nthreads)))
        return fail(c, "tensor '%s': out of memory", o->name);
#ifdef _OPENMP
#pragma omp parallel for num_threads(nthreads) schedule(static) reduction(|:failed)
#endif
    for (r = 0; r < rows; r++) {
        int th = 0;
        float *row;
#ifdef _OPENMP
        th = omp_get_thread_num();
#endif
        row = tmp + (size_t)th * (size_t)inner;
        widen_row(s, (uint64_t)r * (uint64_t)inner, inner, row);
        if (mmspcl_quantize_row(o->dtype, row, (unsigned char *)o->buf + (size_t)r * row_bytes, inner) != MMSPCL_OK)
            failed |= 1;
    }
    free(tmp);
    if (failed) return fail(c, "tensor '%s': conversion to %s failed", o->name, mmspcl_dtype_name(o->dtype));
    return 0;
}

/* ---------------------------------------------------------------------------------------------
   Driver
   ------------------------------------------------------------------------------------------ */
static int locate(conv *c) {
    struct stat sb;
    static const char *const names[] = {"model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                                        "pytorch_model.bin.index.json"};
    const char *chosen = NULL;
    size_t n;
    int i;
    if (stat(c->src_arg, &sb) != 0)
        return fail(c, "%s: no such file or folder", c->src_arg);
    n = strlen(c->src_arg);
    if (n >= CV_PATH) return fail(c, "%s: path too long", c->src_arg);
    if (S_ISDIR(sb.st_mode)) {
        strcpy(c->dir, c->src_arg);
    } else {
        const char *slash = strrchr(c->src_arg, '/');
        if (!slash) strcpy(c->dir, ".");
        else if (slash == c->src_arg) strcpy(c->dir, "/");
        else { memcpy(c->dir, c->src_arg, (size_t)(slash - c->src_arg)); c->dir[slash - c->src_arg] = 0; }
        for (i = 0; i < 4; i++)
            if (strcmp(base_name(c->src_arg), names[i]) == 0) chosen = names[i];
    }
    /* trailing slashes off, then the last component names the source */
    n = strlen(c->dir);
    while (n > 1 && c->dir[n - 1] == '/') c->dir[--n] = 0;
    {
        const char *b = base_name(c->dir);
        char real[PATH_MAX];
        if ((!*b || strcmp(b, ".") == 0 || strcmp(b, "..") == 0) && realpath(c->dir, real)) b = base_name(real);
        snprintf(c->source_name, sizeof c->source_name, "%s", *b ? b : "/");
    }
    if (!chosen)
        for (i = 0; i < 4 && !chosen; i++) {
            char p[CV_PATH];
            if (join(c, p, c->dir, names[i])) return -1;
            if (is_file(p)) chosen = names[i];
        }
    if (!chosen)
        return fail(c, "%s: no weights found (looked for model.safetensors, model.safetensors.index.json, "
                       "pytorch_model.bin, pytorch_model.bin.index.json)", c->dir);
    return join(c, c->weights, c->dir, chosen);
}

/* OUT's folder takes a new file (probed with a unique name, removed at once); OUT.tmp, the
   writer's temporary name, is free: removed when it is a partial weight file left by an
   interrupted run (empty or starting with the magic "MMSPCLWF"), refused when it is anything else */
static int check_output_folder(conv *c) {
    char probe[CV_PATH + 16];
    struct stat sb;
    int fd;
    snprintf(probe, sizeof probe, "%s.tmp-XXXXXX", c->out_path);
    if ((fd = mkstemp(probe)) < 0) return fail(c, "%s: cannot create the output (%s)", c->out_path, strerror(errno));
    close(fd);
    unlink(probe);
    snprintf(g_tmp_path, sizeof g_tmp_path, "%s.tmp", c->out_path);
    if (lstat(g_tmp_path, &sb) == 0) {
        char head[8];
        size_t got = 0;
        FILE *f = S_ISREG(sb.st_mode) ? fopen(g_tmp_path, "rb") : NULL;
        if (f) { got = fread(head, 1, sizeof head, f); fclose(f); }
        if (!f || !(sb.st_size == 0 || (got == 8 && memcmp(head, "MMSPCLWF", 8) == 0))) {
            char keep[CV_PATH + 8];
            snprintf(keep, sizeof keep, "%s", g_tmp_path);
            g_tmp_path[0] = 0;   /* not ours: never removed */
            return fail(c, "%s exists and is not a partial mmspcl file; %s is written through it: move it away", keep, c->out_path);
        }
        if (unlink(g_tmp_path) != 0) {
            char keep[CV_PATH + 8];
            snprintf(keep, sizeof keep, "%s", g_tmp_path);
            g_tmp_path[0] = 0;
            return fail(c, "cannot remove the stale %s (%s)", keep, strerror(errno));
        }
        note(c, "removed %s, left by an interrupted run", g_tmp_path);
    }
    return 0;
}

/* every file of SRC's folder the converter may read, and SRC itself, against OUT (the shards
   of an index are checked as they are opened) */
static int refuse_inputs_in_folder(conv *c) {
    static const char *const names[] = {"config.json", "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                                        "pytorch_model.bin.index.json", "vocab.json", "merges.txt", "tokenizer.json",
                                        "preprocessor_config.json"};
    char p[CV_PATH];
    size_t i;
    if (refuse_output_input(c, c->src_arg) || refuse_output_input(c, c->weights)) return -1;
    for (i = 0; i < sizeof names / sizeof names[0]; i++)
        if (join(c, p, c->dir, names[i]) == 0 && refuse_output_input(c, p)) return -1;
    return 0;
}

static int run(conv *c) {
    char path[CV_PATH], err[600], f[400];
    const json_value *mtv;
    const char *mt = NULL;
    size_t i;
    uint64_t total_bytes = 0;
    mmspcl_error merr;
    struct stat sb;

    /* the output first: fail early when it cannot be written */
    if (strlen(c->out_path) >= CV_PATH) return fail(c, "%s: path too long", c->out_path);
    if (stat(c->out_path, &sb) == 0) {
        if (S_ISDIR(sb.st_mode)) return fail(c, "%s: is a folder; give the output file's name", c->out_path);
        if (!S_ISREG(sb.st_mode))
            return fail(c, "%s: not a regular file (the output is written beside it as OUT.tmp and renamed over it)", c->out_path);
        c->out_st = sb;
        c->out_exists = 1;
    }
    if (check_output_folder(c)) return -1;
    if (locate(c) || refuse_inputs_in_folder(c)) return -1;
    if (join(c, path, c->dir, "config.json")) return -1;
    if (!is_file(path))
        return fail(c, "%s: not found (a Hugging Face model folder needs config.json)", path);
    if (!(c->config = json_parse_file(path, err, sizeof err))) return fail(c, "%s", err);
    if (c->config->type != JSON_OBJECT) return fail(c, "%s: not a JSON object", path);
    mtv = json_get(c->config, "model_type");
    if (mtv && mtv->type != JSON_NULL) {
        if (mtv->type != JSON_STRING || strlen(mtv->str) != mtv->len)
            return fail(c, "%s: \"model_type\" (byte %zu) must be a string without NUL bytes", path, mtv->offset);
        mt = mtv->str;
    }

    /* weights */
    if (ends(c->weights, ".index.json")) {
        if (open_index(c, c->weights, ends(c->weights, "pytorch_model.bin.index.json"))) return -1;
    } else if (open_weights_file(c, c->weights, ends(c->weights, ".bin"))) {
        return -1;
    }
    if (!(c->used = (unsigned char *)calloc(c->n_src ? c->n_src : 1, 1))) return fail(c, "out of memory");
    if (!(c->w = mmspcl_writer_create())) return fail(c, "out of memory");

    /* layout */
    if (!mt) {
        if (find_src_index(c, "vision_model.embeddings.patch_embedding.weight") >= 0)
            mt = json_get(c->config, "vision_config") ? "clip" : "clip_vision_model";
        else if (find_src_index(c, "embeddings.word_embeddings.weight") >= 0 ||
                 find_src_index(c, "roberta.embeddings.word_embeddings.weight") >= 0)
            mt = "roberta";
    }
    found_names(c, f, sizeof f);
    if (!mt)
        return fail(c, "%s: config.json has no model_type and the tensors match neither the RoBERTa nor the CLIP "
                       "layout; found %s", c->dir, f);
    if (strcmp(mt, "roberta") == 0) {
        c->arch = ARCH_ROBERTA;
        if (map_roberta(c, mt)) return -1;
        if (read_tokenizer(c)) return -1;
    } else if (strcmp(mt, "clip") == 0 || strcmp(mt, "clip_vision_model") == 0) {
        c->arch = ARCH_CLIP;
        if (map_clip(c, mt)) return -1;
    } else {
        return fail(c, "%s: model_type '%s' is not supported (supported: roberta, clip, clip_vision_model); found %s",
                    c->dir, mt, f);
    }
    if (c->n_skipped)
        note(c, "skipped %zu tensor%s the model does not use: %s%s", c->n_skipped, c->n_skipped > 1 ? "s" : "",
             c->skipped, c->n_skipped > 4 ? ", ..." : "");
    if (c->have_tok) {
        int64_t V = 0;
        if (mmspcl_writer_set_str(c->w, "tokenizer.model", "gpt2-bpe") ||
            mmspcl_writer_set_str_array(c->w, "tokenizer.vocab", (const char *const *)c->vocab.s, c->vocab.len,
                                        (int64_t)c->vocab.n) ||
            mmspcl_writer_set_str_array(c->w, "tokenizer.merges", (const char *const *)c->merges.s, c->merges.len,
                                        (int64_t)c->merges.n))
            return fail(c, "out of memory");
        cfg_int(c, c->config, "config.json", "vocab_size", 50265, &V);
        if ((int64_t)c->vocab.n != V)
            note(c, "the tokenizer has %zu tokens but the embedding has %lld rows", c->vocab.n, (long long)V);
    }

    /* data */
    c->last_step = c->tty ? -1 : 0;
    for (i = 0; i < c->n_out; i++) {
        out_tensor *o = &c->out[i];
        if (convert_tensor(c, o)) return -1;
        if (mmspcl_writer_add_tensor(c->w, o->name, o->dtype, o->ndim, o->shape, o->data, o->nbytes, &merr))
            return fail(c, "%s", merr.msg);
        total_bytes += o->nbytes;
        progress(c, "converting", i + 1, c->n_out, 0);
    }
    c->last_step = c->tty ? -1 : 0;
    if (mmspcl_writer_save(c->w, c->out_path, write_progress, c, &merr))
        return fail(c, "%s", merr.msg);
    g_tmp_path[0] = 0;
    if (!c->quiet)
        fprintf(stderr, "mmspcl-convert: wrote %s (%s, %zu tensors, %s, %.1f MB%s)\n", c->out_path,
                c->arch == ARCH_ROBERTA ? "roberta" : "clip_vision", c->n_out, mmspcl_dtype_name(c->type),
                total_bytes / 1e6, c->have_tok ? ", with tokenizer" : "");
    return 0;
}

static void cleanup(conv *c) {
    size_t i;
    for (i = 0; i < c->n_out; i++) free(c->out[i].buf);
    free(c->out);
    free(c->src);
    free(c->used);
    for (i = 0; i < c->n_st; i++) st_close(&c->st[i]);
    free(c->st);
    for (i = 0; i < c->n_tb; i++) tb_free(&c->tb[i]);
    free(c->tb);
    for (i = 0; i < c->n_st + c->n_tb; i++) free(c->files[i]);
    free(c->files);
    json_free(c->config);
    strlist_free(&c->vocab);
    strlist_free(&c->merges);
    mmspcl_writer_free(c->w);
}

static void usage(FILE *f) {
    fputs("usage: mmspcl-convert SRC OUT [--type f32|f16|bf16|q8_0|q4_0|q4_k|q5_k] [--panels] [--quiet]\n"
          "       mmspcl-convert SRC -o OUT [options]\n"
          "  SRC   a Hugging Face model folder (config.json + model.safetensors, a sharded\n"
          "        model.safetensors.index.json, pytorch_model.bin or pytorch_model.bin.index.json,\n"
          "        and for RoBERTa vocab.json + merges.txt or tokenizer.json), or a file inside it\n"
          "  OUT   the mmspcl weight file to write (written as OUT.tmp, renamed when complete); never one\n"
          "        of the files read, a folder or a device\n"
          "  -o, --output OUT   OUT as an option instead of the second argument\n"
          "  -t, --type T   store Linear weight matrices as T: f32, f16, bf16, q8_0, q4_0, q4_k or q5_k\n"
          "                 (default f32; everything else stays f32; q8_0 / q4_0 need rows of whole blocks\n"
          "                 of 32, q4_k / q5_k of 256, else that matrix stays f32). bf16 weights are\n"
          "                 computed bf16 x bf16 -> f32 (activations rounded to bf16)\n"
          "  --panels   f32 Linear weights in panels of 16 rows: the same results, faster SIMD kernels\n"
          "             for few rows at a time (docs/FORMAT.md) (default: off)\n"
          "  -q, --quiet    no progress or notes on stderr (errors still go there) (default: off)\n"
          "  -h, --help     this help, on standard output\n"
          "  --version      the version of mmspcl\n"
          "Supported: RoBERTa (model_type roberta) and CLIP's vision tower (clip, clip_vision_model).\n"
          "Exit status: 0 written, 1 a conversion error, 2 bad arguments. See docs/CONVERT.md.\n", f);
}

/* a usage error: the message, a pointer to --help, exit status 2 */
static int usage_error(const char *fmt, const char *arg) {
    fputs("mmspcl-convert: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\n(see mmspcl-convert --help)\n", stderr);
    return 2;
}

/* --help and --version print on stdout: it must have been written */
static int stdout_status(int rc) {
    int e;
    errno = 0;
    if (fflush(stdout) == 0 && !ferror(stdout)) return rc;
    e = errno ? errno : EIO;
    fprintf(stderr, "mmspcl-convert: cannot write to standard output: %s\n", strerror(e));
    return rc ? rc : 1;
}

/* Fills c's options and pos from argv: -1 to go on, else the exit status. */
static int parse_args(conv *c, int argc, char **argv, const char **pos, int *npos) {
    int i, only_pos = 0;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *tv = NULL;
        if (only_pos || a[0] != '-' || !a[1]) {
            if (*npos == 2 || (*npos == 1 && c->out_path)) return usage_error("too many arguments (%s)", a);
            pos[(*npos)++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) { only_pos = 1; continue; }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) { usage(stdout); return 0; }
        if (strcmp(a, "--version") == 0) { printf("mmspcl %s\n", MMSPCL_VERSION); return 0; }
        if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) { c->quiet = 1; continue; }
        if (strcmp(a, "--panels") == 0) { c->panels = 1; continue; }
        if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0 || strncmp(a, "--output=", 9) == 0) {
            if (a[1] == '-' && a[8] == '=') c->out_path = a + 9;
            else if (i + 1 >= argc) return usage_error("%s needs a value (OUT)", a);
            else c->out_path = argv[++i];
            if (*npos == 2) return usage_error("%s: OUT is given twice", a);
            continue;
        }
        if (strcmp(a, "--type") == 0 || strcmp(a, "-t") == 0) {
            if (i + 1 >= argc) return usage_error("%s needs a value (f32, f16, bf16, q8_0, q4_0, q4_k or q5_k)", a);
            tv = argv[++i];
        } else if (strncmp(a, "--type=", 7) == 0) {
            tv = a + 7;
        } else {
            return usage_error("unknown option '%s'", a);
        }
        if (mmspcl_dtype_from_name(tv, &c->type) != 0 ||
            c->type == MMSPCL_I32)
            return usage_error("--type %s: must be f32, f16, bf16, q8_0, q4_0, q4_k or q5_k", tv);
    }
    return -1;
}

int main(int argc, char **argv) {
    conv c;
    int rc;
    const char *pos[2] = {NULL, NULL};
    int npos = 0;
    memset(&c, 0, sizeof c);
    c.type = MMSPCL_F32;
    if ((rc = parse_args(&c, argc, argv, pos, &npos)) >= 0) return stdout_status(rc);
    if (c.out_path && npos == 1) pos[npos++] = c.out_path;
    if (npos != 2) {
        usage(stderr);
        return 2;
    }
    if (c.panels && c.type != MMSPCL_F32) {
        fprintf(stderr, "mmspcl-convert: --panels stores f32 weights; it cannot be combined with --type %s\n", mmspcl_dtype_name(c.type));
        return 2;
    }
    if (strcmp(pos[0], "-") == 0) return usage_error("SRC %s: standard input is not supported (SRC is a folder of several files)", pos[0]);
    if (strcmp(pos[1], "-") == 0) return usage_error("OUT %s: a weight file is written to a file (OUT.tmp, renamed), not to standard output", pos[1]);
    c.src_arg = pos[0];
    c.out_path = pos[1];
    c.tty = isatty(2);
    install_signals();
    rc = run(&c);
    if (rc) {
        if (g_tmp_path[0]) unlink(g_tmp_path);  /* belt and braces: the writer removes it too */
        if (c.bar_open) fputc('\n', stderr);
        fprintf(stderr, "mmspcl-convert: error: %s\n", c.err);
    }
    cleanup(&c);
    return stdout_status(rc ? (c.usage_error ? 2 : 1) : 0);
}
