/* mmspcl bench -m WEIGHTS [--seq N] [--batch B] [--threads T] [--image] [--reps R] [--warmup W]
                 [--ids FILE] [--pixels FILE] [-o FILE] [--matmul [MxKxN]]
   Times the encoder a weight file holds (RoBERTa or CLIP's vision tower): warm-up, then repeated
   forwards; prints median / min wall and CPU time, GFLOP/s, % of a measured FMA peak, the peak
   RSS and the activation arena. --matmul times one linear layer (128 x 1024 x 4096 by default)
   of the same dtype instead. --train times a training step of a RoBERTa encoder instead of a
   forward (mmspcl_train.h: forward in training mode with dropout 0.1, backward, clipping,
   AdamW; FLOPs counted as 3 forwards). Timing lines are also printed as "result key=value ..."
   for scripts. */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200112L
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>
#include "cli.h"
#include "mmspcl_train.h"
#if defined(__unix__) || defined(__APPLE__)
#include <sys/resource.h>
#define BENCH_HAVE_RUSAGE 1
#endif

#define CMD "bench"

static double now_wall(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double now_cpu(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double thread_cpu(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ---- measured single-core peaks: FMA (f32) and int8 dot products -------------------------- */
#define BENCH_R12(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11)
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
/* 24 independent FMA chains (enough for 2 pipes x 4-cycle latency); returns flops done. */
static __attribute__((target("avx512f,fma"))) double fma_loop_avx512(long n, float *sink) {
    const __m512 m = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(1e-3f);
    __m512 s;
    long k;
#define BENCH_D(i) __m512 a##i = _mm512_set1_ps((float)i), b##i = _mm512_set1_ps((float)i + 0.5f);
    BENCH_R12(BENCH_D)
    for (k = 0; k < n; k++) {
#define BENCH_F(i) a##i = _mm512_fmadd_ps(a##i, m, c); b##i = _mm512_fmadd_ps(b##i, m, c);
        BENCH_R12(BENCH_F)
    }
    s = _mm512_setzero_ps();
#define BENCH_S(i) s = _mm512_add_ps(s, _mm512_add_ps(a##i, b##i));
    BENCH_R12(BENCH_S)
    *sink = _mm512_reduce_add_ps(s);
    return (double)n * 24 * 32;
}
static __attribute__((target("avx2,fma"))) double fma_loop_avx2(long n, float *sink) {
    const __m256 m = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(1e-3f);
    __m256 s;
    float t[8];
    long k;
    int i;
#define BENCH_D2(i) __m256 a##i = _mm256_set1_ps((float)i);
    BENCH_R12(BENCH_D2)
    for (k = 0; k < n; k++) {
#define BENCH_F2(i) a##i = _mm256_fmadd_ps(a##i, m, c);
        BENCH_R12(BENCH_F2)
    }
    s = _mm256_setzero_ps();
#define BENCH_S2(i) s = _mm256_add_ps(s, a##i);
    BENCH_R12(BENCH_S2)
    _mm256_storeu_ps(t, s);
    for (i = 0; i < 8; i++) *sink += t[i];
    return (double)n * 12 * 16;
}
/* vpdpbusd zmm: 24 independent chains (registers zmm8 .. zmm31), 24 per iteration (64
   multiply-adds = 128 ops each). In assembly: written with intrinsics, chains that start equal
   are merged by the compiler (the same instruction on the same values) and the rest get register
   copies added in the loop, so the loop would count 24 where it does 13 (a peak 1.85 x too high). */
#define BENCH_VD(r) "vpdpbusd %%zmm0, %%zmm1, %%zmm" #r "\n\t"
#define BENCH_VD8(a, b, c, d, e, f, g, h) BENCH_VD(a) BENCH_VD(b) BENCH_VD(c) BENCH_VD(d) BENCH_VD(e) BENCH_VD(f) BENCH_VD(g) BENCH_VD(h)
static __attribute__((target("avx512f,avx512vnni"))) double vnni_loop(long n, float *sink) {
    long k = n;
    if (n <= 0) return 0.0;
    __asm__ volatile("vpternlogd $0xff, %%zmm0, %%zmm0, %%zmm0\n\t"
                     "vpabsb %%zmm0, %%zmm1\n\t"
                     "1:\n\t" BENCH_VD8(8, 9, 10, 11, 12, 13, 14, 15) BENCH_VD8(16, 17, 18, 19, 20, 21, 22, 23)
                     BENCH_VD8(24, 25, 26, 27, 28, 29, 30, 31)
                     "dec %0\n\t"
                     "jnz 1b\n\t"
                     : "+r"(k)
                     :
                     : "cc", "memory", "xmm0", "xmm1", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16",
                       "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28",
                       "xmm29", "xmm30", "xmm31");
    *sink += 0.0f;
    return (double)n * 24 * 128;
}
#endif

/* Best of reps short runs of n iterations, in ops per thread-CPU-second (other processes' time
   slices do not count); kind 0: f32 FMA, 1: int8 dot products. 0 when this build / CPU has no
   such loop. */
static double measure_peak(int kind, int reps, long n) {
    double best = 0.0;
    float sink = 0.0f;
    int rep;
    (void)kind; (void)n; /* unused where there is no x86 loop (ARM) */
    for (rep = 0; rep < reps; rep++) {
        double t0 = thread_cpu(), ops = 0.0, dt;
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
        __builtin_cpu_init();
        if (kind == 0 && __builtin_cpu_supports("avx512f")) ops = fma_loop_avx512(n, &sink);
        else if (kind == 0 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ops = fma_loop_avx2(n, &sink);
        else if (kind == 1 && __builtin_cpu_supports("avx512vnni")) ops = vnni_loop(n, &sink);
#endif
        dt = thread_cpu() - t0;
        if (ops > 0 && dt > 0 && ops / dt > best) best = ops / dt;
    }
    if (sink == 12345.0f) printf(" ");   /* keeps the loops */
    return best;
}

static long peak_rss_kib(void) {
#ifdef BENCH_HAVE_RUSAGE
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) return ru.ru_maxrss;   /* KiB on Linux */
#endif
    return -1;
}

static unsigned lcg(unsigned *s) { *s = *s * 1664525u + 1013904223u; return *s >> 8; }

/* ---- the timed work ------------------------------------------------------------------------ */
typedef struct bench_ctx {
    mmspcl_roberta_train *rt;     /* --train */
    float *dout;
    mmspcl_roberta *rob;
    mmspcl_clip *clip;
    int32_t *ids;
    int *lengths;
    float *pixels, *outbuf, *x, *y;
    int batch, seq, M, K, N;
    mmspcl_tensor W;
} bench_ctx;

static int run_once(bench_ctx *b, mmspcl_error *err) {
    if (b->rt) {   /* one training step: forward (dropout), backward of sum(dout . out), clip, AdamW */
        mmspcl_adamw_cfg ac;
        mmspcl_adamw_defaults(&ac);
        b->rt->dropout_key++;
        if (mmspcl_roberta_train_forward(b->rt, b->ids, b->lengths, b->batch, b->seq, err)) return 1;
        mmspcl_params_zero_grad(&b->rt->P);
        if (mmspcl_roberta_train_backward(b->rt, b->dout, NULL, err)) return 1;
        mmspcl_grad_clip(&b->rt->P, 5.0);
        mmspcl_adamw_step(&b->rt->P, &ac, 1e-5);
        mmspcl_roberta_train_sync(b->rt);
        return 0;
    }
    if (b->rob) return mmspcl_roberta_forward(b->rob, b->ids, b->lengths, b->batch, b->seq, b->outbuf, err) != MMSPCL_OK;
    if (b->clip) return mmspcl_clip_forward(b->clip, b->pixels, b->batch, NULL, b->outbuf, err) != MMSPCL_OK;
    if (mmspcl_linear(b->y, b->x, b->M, b->K, &b->W, NULL) != MMSPCL_OK) {
        snprintf(err->msg, sizeof err->msg, "linear failed");
        return 1;
    }
    return 0;
}

/* A --pixels or --ids file holds at least as many values as one forward takes; only that many
   are read (a larger file is accepted), so these read a bounded prefix with stdio rather than
   the whole file with mmspcl_read_file. "-" is standard input. Returns 0, or 1 after a message. */
static int read_ids(const char *path, int32_t *ids, int max, int *n) {
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    char tok[32];
    int rc = 0;
    *n = 0;
    if (!f) return cli_fail(CMD, "cannot open %s: %s", path, strerror(errno));
    while (*n < max && fscanf(f, "%31s", tok) == 1) {
        char *end;
        long v;
        errno = 0;
        v = strtol(tok, &end, 10);
        if (*end || errno || v < 0 || v > 0x7fffffffL) { rc = cli_fail(CMD, "%s: token %d '%s' is not an id (0 to 2147483647)", path, *n + 1, tok); break; }
        ids[(*n)++] = (int32_t)v;
    }
    if (!rc && ferror(f)) rc = cli_fail(CMD, "cannot read %s: %s", path, strerror(errno));
    if (f != stdin) fclose(f);
    return rc;
}

static int read_pixels(const char *path, float *px, size_t n, size_t *got) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    int rc = 0;
    if (!f) return cli_fail(CMD, "cannot open %s: %s", path, strerror(errno));
    *got = fread(px, sizeof(float), n, f);
    if (*got < n && ferror(f)) rc = cli_fail(CMD, "cannot read %s: %s", path, strerror(errno));
    if (f != stdin) fclose(f);
    return rc;
}

/* The command line, parsed. */
typedef struct bench_opts {
    const char *model, *ids_path, *px_path, *out_path, *mm;
    int seq, batch, threads, image, reps, warmup, matmul, train;
} bench_opts;

/* What the setup and the timed runs measure, for the report. */
typedef struct bench_stats {
    const char *arch, *dtype;
    double flops, arena, wsize, peak, peak_int;
    int int_path;                 /* 1: q* weights on a CPU with a measured int8 peak (rated against it) */
    double *wall, *cpu, *ratio;   /* per timed run: seconds, CPU seconds, rate / peak sample (int8 or FMA, by int_path) */
    size_t out_n;                 /* floats of the output --out writes */
    long rss;
} bench_stats;

#define BENCH_PARSED CLI_GO

/* Fills o from argv; BENCH_PARSED to go on, else the exit status (--help: 0, usage errors: 2). */
static int bench_parse_args(int argc, char **argv, bench_opts *o) {
    const char *in_opts[3] = {"-m", "--ids", "--pixels"}, *in_paths[3];
    int np, rc;
    memset(o, 0, sizeof *o);
    o->seq = 128; o->batch = 1; o->reps = 10; o->warmup = 2;
    {
        const cli_opt opts[] = {
            CLI_OPT_REQ("-m, --model", &o->model, "FILE", "weight file (RoBERTa or CLIP vision tower; any weight dtype), - for standard input"),
            CLI_OPT_INT("--seq", &o->seq, 1, 65536, "N", "tokens per sequence (RoBERTa)"),
            CLI_OPT_INT("--batch", &o->batch, 1, 4096, "B", "sequences / images per forward"),
            {"--threads", CLI_INT, &o->threads, 1, 1024, "T", "threads (mmspcl_set_threads)", "MMSPCL_NUM_THREADS, OMP_NUM_THREADS or the usable cores", 0, NULL},
            CLI_OPT_FLAG("--image", &o->image, "the file must be a CLIP vision tower (checked; the model type is read from the file)"),
            CLI_OPT_FLAG("--train", &o->train, "time a training step of a RoBERTa encoder (forward with dropout, backward, AdamW)"),
            CLI_OPT_INT("--reps", &o->reps, 1, 1000000, "R", "timed forwards"),
            CLI_OPT_INT("--warmup", &o->warmup, 0, 1000000, "W", "untimed forwards before them"),
            CLI_OPT_STR("--ids", &o->ids_path, "FILE", "token ids (whitespace-separated) instead of deterministic random ones",
                        NULL),
            CLI_OPT_STR("--pixels", &o->px_path, "FILE", "raw float32 3 x S x S preprocessed image instead of random pixels", NULL),
            CLI_OPT_STR("-o, --output, --out", &o->out_path, "FILE",
                        "write the output as raw float32: RoBERTa [batch][seq][hidden], CLIP pooled [batch][hidden]", NULL),
            {"--matmul", CLI_OPTVAL, &o->matmul, 0, 0, "MxKxN", "time one linear layer y = x W^T, W of the file's dtype",
             "128x1024x4096", 0, &o->mm},
            CLI_OPT_END};
        const cli_spec spec = {CMD, "-m FILE [options]",
                               "Times the encoder a weight file holds: warm-up, then repeated forwards; median / min wall and\n"
                               "CPU time, GFLOP/s, % of a measured FMA peak, peak RSS and the activation arena. Timing lines\n"
                               "are also printed as \"result key=value ...\" for scripts.",
                               opts, NULL, 0, NULL};
        if ((rc = cli_parse(&spec, argc, argv, &np)) != CLI_GO) return rc;
    }
    in_paths[0] = o->model; in_paths[1] = o->ids_path; in_paths[2] = o->px_path;
    if ((rc = cli_one_stdin(CMD, 3, in_opts, in_paths))) return rc;
    if (o->out_path && (rc = cli_refuse_same(CMD, "-o", o->out_path, 3, in_opts, in_paths))) return rc;
    if (o->mm) {   /* MxKxN, each a whole number, and a size that fits in memory */
        long long d[3];
        const char *p = o->mm;
        char part[24];
        int k;
        for (k = 0; k < 3; k++) {
            size_t len = strcspn(p, "x");
            if (len >= sizeof part || (k < 2 && p[len] != 'x') || (k == 2 && p[len]))
                return cli_usage_error(CMD, "--matmul '%s': expected MxKxN (three whole numbers)", o->mm);
            memcpy(part, p, len);
            part[len] = 0;
            if ((rc = cli_parse_int(CMD, k == 0 ? "--matmul M" : k == 1 ? "--matmul K" : "--matmul N", part, k == 1 ? 32 : 1, 65536, &d[k])))
                return rc;
            p += len + (k < 2);
        }
        if (d[0] * d[1] > (1LL << 28) || d[1] * d[2] > (1LL << 28) || d[0] * d[2] > (1LL << 28))
            return cli_usage_error(CMD, "--matmul %s: each of M*K, K*N and M*N must be at most 2^28", o->mm);
    }
    return BENCH_PARSED;
}

/* The dtype a report names for an encoder: that of the first tensor whose name has `marker`
   (a large matrix of every layer), "f32-panels" for the f32 panel layout. */
static const char *bench_layer_dtype(const mmspcl_weights *w, const char *marker) {
    int64_t t;
    for (t = 0; t < w->n_tensors; t++)
        if (strstr(w->tensors[t].name, marker))
            return mmspcl_tensor_is_panels(&w->tensors[t]) ? "f32-panels" : mmspcl_dtype_name(w->tensors[t].dtype);
    return "f32";
}

/* --matmul: one linear layer with a weight of the file's largest matrix dtype (the first 2-D
   tensor that is not f32, or f32 panels when the file stores its matrices so), filled with
   deterministic random values. Returns 0, or the exit status (1, 2) after a message. */
static int bench_setup_matmul(bench_ctx *b, const mmspcl_weights *w, const char *mm, bench_stats *r) {
    int64_t t;
    unsigned s = 1;
    size_t rb, n;
    unsigned char *wq;
    float *wf;
    int panels = 0;
    b->M = 128; b->K = 1024; b->N = 4096;
    if (mm && sscanf(mm, "%dx%dx%d", &b->M, &b->K, &b->N) != 3) return cli_usage_error(CMD, "--matmul takes MxKxN");
    for (t = 0; t < w->n_tensors; t++) {
        if (w->tensors[t].ndim == 2 && w->tensors[t].dtype != MMSPCL_F32) { b->W.dtype = w->tensors[t].dtype; break; }
        if (mmspcl_tensor_is_panels(&w->tensors[t])) { panels = 1; break; }
    }
    if (panels && b->N % MMSPCL_PANEL) { cli_fail(CMD, "--matmul with f32 panels needs N a multiple of %d", MMSPCL_PANEL); return 2; }
    rb = mmspcl_dtype_row_size(b->W.dtype, b->K);
    if (b->M < 1 || b->K < 32 || b->N < 1 || !rb) { cli_fail(CMD, "bad --matmul shape for %s", mmspcl_dtype_name(b->W.dtype)); return 2; }
    wf = (float *)malloc((size_t)b->K * sizeof(float));
    wq = (unsigned char *)malloc(rb * (size_t)b->N);
    b->x = (float *)malloc((size_t)b->M * b->K * sizeof(float));
    b->y = (float *)malloc((size_t)b->M * b->N * sizeof(float));
    if (!wf || !wq || !b->x || !b->y) { free(wf); free(wq); return cli_fail(CMD, "out of memory"); }
    for (n = 0; n < (size_t)b->M * b->K; n++) b->x[n] = (float)(lcg(&s) % 20001) / 10000.0f - 1.0f;
    for (t = 0; t < b->N; t++) {
        for (n = 0; n < (size_t)b->K; n++) wf[n] = ((float)(lcg(&s) % 20001) / 10000.0f - 1.0f) * 0.03f;
        mmspcl_quantize_row(b->W.dtype, wf, wq + (size_t)t * rb, b->K);
    }
    free(wf);
    b->W.name = CMD;
    b->W.ndim = 2; b->W.ne[0] = b->N; b->W.ne[1] = b->K; b->W.data = wq; b->W.nbytes = rb * (size_t)b->N;
    if (panels) {   /* the same values in panels of 16 rows, as the file stores its matrices */
        float *pw = (float *)malloc(rb * (size_t)b->N);
        if (!pw) return cli_fail(CMD, "out of memory");   /* wq is b->W.data: the caller frees it */
        mmspcl_pack_panels((const float *)wq, b->N, b->K, pw);
        free(wq);
        b->W.ndim = 3; b->W.ne[0] = b->N / MMSPCL_PANEL; b->W.ne[2] = MMSPCL_PANEL; b->W.data = pw;
    }
    /* integer weights repacked once for this CPU's kernel, as the model loaders do (a no-op elsewhere) */
    if (mmspcl_tensor_pack(&b->W) != MMSPCL_OK) return cli_fail(CMD, "out of memory");
    r->flops = 2.0 * b->M * b->K * b->N;
    r->dtype = panels ? "f32-panels" : mmspcl_dtype_name(b->W.dtype);
    r->wsize = (double)b->W.nbytes;
    return 0;
}

/* A RoBERTa encoder: batch x seq token ids, from --ids (every sequence the same) or
   deterministic random ones between <s> and </s>. Returns 0, or the exit status after a message. */
static int bench_setup_roberta(bench_ctx *b, mmspcl_weights *w, const bench_opts *o, bench_stats *r,
                               mmspcl_error *err) {
    const mmspcl_roberta_config *c;
    unsigned s = 12345;
    int n_ids = 0, i, j;
    const int batch = o->batch, seq = o->seq;
    if (o->image) { cli_fail(CMD, "%s holds a RoBERTa encoder, not an image tower", o->model); return 2; }
    if (o->train) {
        if (!(b->rt = (mmspcl_roberta_train *)calloc(1, sizeof *b->rt))) return cli_fail(CMD, "out of memory");
        if (mmspcl_roberta_train_from_weights(b->rt, w, batch * seq, seq, err)) {
            free(b->rt);
            b->rt = NULL;
            return cli_fail(CMD, "%s: %s", o->model, err->msg);
        }
        b->rt->train_mode = 1;
        b->rt->dropout_hidden = b->rt->dropout_attn = 0.1f;
        c = &b->rt->cfg;
    } else {
        if (mmspcl_roberta_load(&b->rob, w, batch, seq, err)) return cli_fail(CMD, "%s: %s", o->model, err->msg);
        c = mmspcl_roberta_get_config(b->rob);
    }
    b->batch = batch; b->seq = seq;
    b->ids = (int32_t *)malloc((size_t)batch * seq * sizeof(int32_t));
    b->lengths = (int *)malloc((size_t)batch * sizeof(int));
    r->out_n = (size_t)batch * seq * c->hidden_size;
    b->outbuf = (float *)malloc(r->out_n * sizeof(float));
    if (!b->ids || !b->lengths || !b->outbuf) return cli_fail(CMD, "out of memory");
    if (o->ids_path && read_ids(o->ids_path, b->ids, seq, &n_ids)) return 1;
    if (o->ids_path && n_ids != seq) return cli_fail(CMD, "%s: needs %d token ids (found %d)", o->ids_path, seq, n_ids);
    for (i = 0; i < batch; i++) {
        b->lengths[i] = seq;
        for (j = 0; j < seq; j++) {
            int32_t *id = &b->ids[(size_t)i * seq + j];
            if (o->ids_path) *id = b->ids[j];
            else *id = j == 0 ? 0 : j == seq - 1 ? 2 : (int32_t)(3 + lcg(&s) % (unsigned)(c->vocab_size - 3));
            if (*id < 0 || *id >= c->vocab_size) return cli_fail(CMD, "token id %d outside the vocabulary", *id);
        }
    }
    {   /* FLOPs: linear layers + attention (QK^T and PV); a training step: about 3 forwards */
        double T = (double)batch * seq, H = c->hidden_size, I = c->intermediate_size, L = c->num_layers;
        r->flops = L * (T * (8.0 * H * H + 4.0 * H * I) + (double)batch * 4.0 * seq * seq * H) * (b->rt ? 3.0 : 1.0);
    }
    if (b->rt) {   /* the training "arena": the cache and scratch of the passes, float mirrors and double master state */
        size_t k, n = (size_t)batch * seq * c->hidden_size;
        if (!(b->dout = (float *)malloc(n * sizeof(float)))) return cli_fail(CMD, "out of memory");
        for (k = 0; k < n; k++) b->dout[k] = (float)(lcg(&s) % 2001) / 1000.0f - 1.0f;
        r->arena = (double)(b->rt->cache_n + b->rt->scratch_n) * sizeof(float) + (double)b->rt->P.n * (2 * sizeof(float) + 4 * sizeof(double));
    } else r->arena = (double)mmspcl_roberta_arena_bytes(b->rob);
    r->dtype = bench_layer_dtype(w, "intermediate.dense.weight");
    return 0;
}

/* A CLIP vision tower: batch copies of one image, from --pixels or deterministic random pixels.
   Returns 0, or the exit status after a message. */
static int bench_setup_clip(bench_ctx *b, mmspcl_weights *w, const bench_opts *o, bench_stats *r,
                            mmspcl_error *err) {
    const mmspcl_clip_config *c;
    size_t npx, n;
    int i;
    const int batch = o->batch;
    if (mmspcl_clip_load(&b->clip, w, batch, err)) return cli_fail(CMD, "%s: %s", o->model, err->msg);
    c = mmspcl_clip_get_config(b->clip);
    b->batch = batch;
    npx = (size_t)c->num_channels * c->image_size * c->image_size;
    b->pixels = (float *)malloc((size_t)batch * npx * sizeof(float));
    r->out_n = (size_t)batch * c->hidden_size;
    b->outbuf = (float *)malloc(r->out_n * sizeof(float));
    if (!b->pixels || !b->outbuf) return cli_fail(CMD, "out of memory");
    if (o->px_path) {
        size_t got = 0;
        if (read_pixels(o->px_path, b->pixels, npx, &got)) return 1;
        if (got != npx) return cli_fail(CMD, "%s: needs %zu float32 pixels (found %zu)", o->px_path, npx, got);
    } else {
        unsigned s = 777;
        for (n = 0; n < npx; n++) b->pixels[n] = (float)(lcg(&s) % 40001) / 10000.0f - 2.0f;
    }
    for (i = 1; i < batch; i++) memcpy(b->pixels + (size_t)i * npx, b->pixels, npx * sizeof(float));
    {
        double T = c->num_tokens, H = c->hidden_size, I = c->intermediate_size, L = c->num_layers, P = c->patch_size;
        r->flops = batch * (L * (T * (8.0 * H * H + 4.0 * H * I) + 4.0 * T * T * H) +
                            2.0 * c->num_patches * H * c->num_channels * P * P);
    }
    r->arena = (double)mmspcl_clip_arena_bytes(b->clip);
    r->dtype = bench_layer_dtype(w, "fc1.weight");
    return 0;
}

/* Measures the core's peaks, then warm-up and timed runs into r->wall / cpu / ratio (allocated
   here, freed by the caller). 0, or 1 after a message. */
static int bench_time_runs(bench_ctx *b, const bench_opts *o, bench_stats *r, mmspcl_error *err) {
    int i;
    r->wall = (double *)malloc((size_t)o->reps * sizeof(double));
    r->cpu = (double *)malloc((size_t)o->reps * sizeof(double));
    r->ratio = (double *)malloc((size_t)o->reps * sizeof(double));
    if (!r->wall || !r->cpu || !r->ratio) return cli_fail(CMD, "out of memory");
    r->peak = measure_peak(0, 5, 2000000);
    r->peak_int = measure_peak(1, 5, 2000000);
    r->int_path = r->dtype[0] == 'q' && r->peak_int > 0;
    for (i = 0; i < o->warmup; i++)
        if (run_once(b, err)) return cli_fail(CMD, "%s", err->msg);
    for (i = 0; i < o->reps; i++) {
        /* --matmul: a short peak sample right before each run, so that each run's rate is
           compared with the peak the core gave at that moment (other processes share the cores):
           the int8 dot-product peak for q* weights (their integer path), else the FMA peak */
        const double p = o->matmul && o->threads == 1 ? measure_peak(r->int_path, 1, 300000) : 0.0;
        double t0 = now_wall(), c0 = now_cpu();
        if (run_once(b, err)) return cli_fail(CMD, "%s", err->msg);
        r->wall[i] = now_wall() - t0;
        r->cpu[i] = now_cpu() - c0;
        r->ratio[i] = p > 0 ? r->flops / r->cpu[i] / p : 0.0;
    }
    r->rss = peak_rss_kib();
    return 0;
}

/* The human-readable lines, then one "result key=value ..." line for scripts. */
static void bench_report(const bench_ctx *b, const bench_opts *o, bench_stats *r) {
    const int reps = o->reps, threads = o->threads, matmul = o->matmul;
    const double flops = r->flops, peak = r->peak, *wall = r->wall, *cpu = r->cpu;
    double wmed, cmed, best_rate;
    qsort(r->wall, (size_t)reps, sizeof *r->wall, cmp_double);
    qsort(r->cpu, (size_t)reps, sizeof *r->cpu, cmp_double);
    wmed = median(r->wall, reps);
    cmed = median(r->cpu, reps);
    best_rate = flops / wall[0];
    printf("model      %s (%s weights, %s), %s\n", o->model, r->dtype,
           matmul ? "one linear layer" : !strcmp(r->arch, "roberta") ? "RoBERTa" : "CLIP vision",
           matmul ? "" : b->rt ? "training" : b->rob ? "text" : "image");
    if (matmul) printf("shape      %d x %d x %d (rows x in x out)\n", b->M, b->K, b->N);
    else if (b->rt) printf("input      batch %d x %d tokens, one training step (forward with dropout 0.1, backward, clip, AdamW)\n",
                           o->batch, o->seq);
    else if (b->rob) printf("input      batch %d x %d tokens\n", o->batch, o->seq);
    else printf("input      batch %d image(s)\n", o->batch);
    printf("threads    %d; %d warm-up + %d timed runs\n", threads, o->warmup, reps);
    printf("time       median %.2f ms, min %.2f ms (wall); CPU median %.2f ms, min %.2f ms (all threads)\n",
           1e3 * wmed, 1e3 * wall[0], 1e3 * cmed, 1e3 * cpu[0]);
    printf("rate       %.1f GFLOP/s at the median, %.1f at the min (%.2f GFLOP per run); per CPU-second %.1f\n",
           flops / wmed * 1e-9, best_rate * 1e-9, flops * 1e-9, flops / cpu[0] * 1e-9);
    if (peak > 0)
        printf("peak       f32 FMA %.1f GFLOP/s per core (measured): min time at %.0f%% of %d core(s), min CPU time at %.0f%%\n",
               peak * 1e-9, 100.0 * best_rate / (peak * threads), threads, 100.0 * flops / cpu[0] / peak);
    if (r->peak_int > 0) {   /* q* weights take the integer path: their rate against this peak */
        printf("           int8 dot products (vpdpbusd zmm) %.0f GOP/s per core (measured)", r->peak_int * 1e-9);
        if (matmul && r->int_path) printf(": min CPU time at %.0f%%", 100.0 * flops / cpu[0] / r->peak_int);
        printf("\n");
    }
    if (matmul && threads == 1 && peak > 0) {
        qsort(r->ratio, (size_t)reps, sizeof *r->ratio, cmp_double);
        printf("vs peak    each run's CPU-time rate / a%s peak sample taken just before it: median %.0f%%, best %.0f%%\n",
               r->int_path ? "n int8 dot-product" : "n FMA", 100.0 * median(r->ratio, reps),
               100.0 * r->ratio[reps - 1]);
    }
    printf("memory     peak RSS %.1f MiB; weights %.1f MiB; activation arena %.1f MiB; RSS - weights - arena = %.1f MiB\n",
           r->rss / 1024.0, r->wsize / 1048576.0, r->arena / 1048576.0,
           r->rss / 1024.0 - r->wsize / 1048576.0 - r->arena / 1048576.0);
    printf("result dtype=%s threads=%d median_ms=%.3f min_ms=%.3f cpu_median_ms=%.3f cpu_min_ms=%.3f gflop=%.4f "
           "peak_gflops=%.1f peak_int_gops=%.1f rss_kib=%ld weights_bytes=%.0f arena_bytes=%.0f",
           r->dtype, threads, 1e3 * wmed, 1e3 * wall[0], 1e3 * cmed, 1e3 * cpu[0], flops * 1e-9, peak * 1e-9,
           r->peak_int * 1e-9, r->rss, r->wsize, r->arena);
    if (matmul && threads == 1 && peak > 0)
        printf(" peak_ratio_median=%.3f peak_ratio_best=%.3f", median(r->ratio, reps), r->ratio[reps - 1]);
    printf("\n");
}

int mmspcl_cmd_bench(int argc, char **argv) {
    bench_opts o;
    bench_stats r;
    bench_ctx b;
    mmspcl_weights *w = NULL;
    mmspcl_error err;
    cli_out out;
    int rc;

    memset(&out, 0, sizeof out);
    if ((rc = bench_parse_args(argc, argv, &o)) != BENCH_PARSED) return rc;
    if (o.out_path && o.matmul) return cli_usage_error(CMD, "-o writes an encoder's output: not with --matmul");
    if (o.train && (o.matmul || o.image || o.out_path)) return cli_usage_error(CMD, "--train times a RoBERTa training step: not with --matmul, --image or -o");
    if (o.out_path && cli_out_open(&out, CMD, o.out_path)) return 1;
    o.threads = mmspcl_set_threads(o.threads);   /* 0: the default (mmspcl.h, 15. Threads); training's OpenMP too */
    memset(&b, 0, sizeof b);
    memset(&r, 0, sizeof r);
    r.arch = "";
    r.dtype = "f32";
    err.msg[0] = 0;
    rc = 1;
    if (cli_weights_open(CMD, o.model, &w)) goto done;
    r.wsize = (double)w->size;
    mmspcl_weights_get_str(w, "general.architecture", &r.arch);
    if (o.matmul) rc = bench_setup_matmul(&b, w, o.mm, &r);
    else if (!strcmp(r.arch, "roberta")) rc = bench_setup_roberta(&b, w, &o, &r, &err);
    else if (o.train) rc = cli_fail(CMD, "--train: %s holds '%s', not a RoBERTa encoder", o.model, r.arch);
    else rc = bench_setup_clip(&b, w, &o, &r, &err);
    if (rc) goto done;
    rc = 1;
    if (bench_time_runs(&b, &o, &r, &err)) goto done;
    if (o.out_path && (cli_out_f32(&out, CMD, b.outbuf, r.out_n) || cli_out_commit(&out, CMD))) goto done;
    bench_report(&b, &o, &r);
    rc = 0;
done:
    cli_out_discard(&out);
    free(r.wall);
    free(r.cpu);
    free(r.ratio);
    free(b.ids);
    free(b.lengths);
    free(b.pixels);
    free(b.outbuf);
    free(b.x);
    free(b.y);
    mmspcl_tensor_pack_free(&b.W);
    free((void *)b.W.data);
    mmspcl_roberta_free(b.rob);
    if (b.rt) mmspcl_roberta_train_free(b.rt);
    free(b.rt);
    free(b.dout);
    mmspcl_clip_free(b.clip);
    mmspcl_weights_free(w);
    return rc;
}
