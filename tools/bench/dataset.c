/* dataset: the throughput of the real job, SPCL prompts of a MELD split through a RoBERTa encoder
   (issue 19, items 5 and 6; tools/bench/compare.py --dataset runs it beside ONNX Runtime and PyTorch).

     dataset prompts TOKENIZER.mmw MELD.csv EVERY OUT.txt
         the SPCL prompt of every utterance (mmspcl_spcl_prompts, max_len 256, dialogue by
         dialogue as mmspcl eval builds them), keeping utterances 0, EVERY, 2 EVERY, ... of the
         file; one line per prompt: "MASK_POS ID ID ...". TOKENIZER: any weight file with a
         RoBERTa tokenizer (the shipped weights/meld-text-q8_0.mmw).
     dataset prompts TOKENIZER.mmw MELD.csv EVERY OUT.txt BLOCK
         the same prompts sorted by length, cut into runs of BLOCK consecutive ones, every
         EVERY-th run kept: sorted padded batches of BLOCK (or of a divisor of it) pad exactly as
         on the whole split, which keeping every EVERY-th utterance does not (a sparse subset has
         gaps between lengths that batches must pad over).
     dataset run MODEL.mmw PROMPTS.txt THREADS REPS TOKENS [OUT.f32]
         every prompt through the encoder, REPS times (after a warm-up forward of the shortest
         prompt, which reads every weight page once): prompts sorted by
         length and cut into buckets of consecutive prompts with at most TOKENS tokens together
         (and at most 64 prompts); mmspcl_roberta_forward_rows packs each bucket's tokens, so no
         work is spent on padding, and keeps the <mask> rows (the last layer runs only them). Prints "result engine=mmspcl dtype=D threads=T tokens=TOKENS
         utt_per_s=... median_s=... min_s=... cpu_median_s=... runs=..." (wall time of a whole
         pass) and writes the <mask> rows, in the file's order, to OUT.f32 ([n][hidden] f32). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "mmspcl.h"
#define MELD_CSV_IMPLEMENTATION
#include "tools/train/meld_csv.h"

#define MAX_LEN MMSPCL_SPCL_MAX_LEN
#define MAX_BUCKET 64

static double now(clockid_t c) {
    struct timespec t;
    clock_gettime(c, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int fail(const char *what, const mmspcl_error *err) {
    fprintf(stderr, "dataset: %s: %s\n", what, err ? err->msg : "failed");
    return 1;
}

/* ---- prompts ----------------------------------------------------------------------------- */
typedef struct prompt_set { int n, cap, *len, *mask; int32_t *ids; } prompt_set;   /* ids [n][MAX_LEN] */

static int set_add(prompt_set *p, int mask, const int32_t *ids, int len) {
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 1024;
        p->len = (int *)realloc(p->len, sizeof(int) * (size_t)p->cap);
        p->mask = (int *)realloc(p->mask, sizeof(int) * (size_t)p->cap);
        p->ids = (int32_t *)realloc(p->ids, sizeof(int32_t) * (size_t)p->cap * MAX_LEN);
        if (!p->len || !p->mask || !p->ids) return 1;
    }
    p->len[p->n] = len;
    p->mask[p->n] = mask;
    memcpy(p->ids + (size_t)p->n * MAX_LEN, ids, sizeof(int32_t) * (size_t)len);
    p->n++;
    return 0;
}

static const prompt_set *g_set;
static int set_by_length(const void *a, const void *b) {
    const int i = *(const int *)a, j = *(const int *)b;
    return g_set->len[i] != g_set->len[j] ? g_set->len[i] - g_set->len[j] : i - j;
}

/* Which prompts to keep: block 0: every EVERY-th of the file; block B: the prompts sorted by length
   (ties in file order) cut into runs of B, every EVERY-th run kept (runs EVERY/2, EVERY/2 +
   EVERY, ...), so a padded batch of B or a divisor of B pads as on the whole set. */
static int write_subset(const prompt_set *all, int every, int block, const char *out_path) {
    FILE *f = fopen(out_path, "w");
    int *order = (int *)malloc(sizeof(int) * (size_t)(all->n ? all->n : 1)), i, j, kept = 0;
    if (!f || !order) { perror(out_path); if (f) fclose(f); free(order); return 1; }
    for (i = 0; i < all->n; i++) order[i] = i;
    if (block) { g_set = all; qsort(order, (size_t)all->n, sizeof(int), set_by_length); }
    for (i = 0; i < all->n; i++) {
        const int k = order[i];
        if (block ? (i / block) % every != every / 2 : i % every) continue;
        fprintf(f, "%d", all->mask[k]);
        for (j = 0; j < all->len[k]; j++) fprintf(f, " %d", (int)all->ids[(size_t)k * MAX_LEN + j]);
        fputc('\n', f);
        kept++;
    }
    free(order);
    if (fclose(f)) { perror(out_path); return 1; }
    if (block) fprintf(stderr, "dataset: %d prompts of %d (runs of %d by length, every %d-th run) to %s\n", kept, all->n, block, every, out_path);
    else fprintf(stderr, "dataset: %d prompts of %d utterances (every %d) to %s\n", kept, all->n, every, out_path);
    return 0;
}

static int cmd_prompts(const char *tok_path, const char *csv_path, int every, int block, const char *out_path) {
    mmspcl_weights *w = NULL;
    mmspcl_bpe *tok = NULL;
    meld_csv data;
    mmspcl_error err;
    prompt_set all;
    int32_t *ids = NULL;
    int *len = NULL, *mask = NULL, d, rc = 1;
    memset(&data, 0, sizeof data);
    memset(&all, 0, sizeof all);
    if (mmspcl_weights_open(&w, tok_path, &err) || mmspcl_bpe_from_weights(&tok, w, &err)) { fail(tok_path, &err); goto done; }
    if (meld_csv_load(csv_path, &data, &err)) { fail(csv_path, &err); goto done; }
    for (d = 0; d < data.n_dialogues; d++) {
        const int s = data.dialogue_start[d], n = data.dialogue_start[d + 1] - s;
        mmspcl_turn *turns = (mmspcl_turn *)malloc(sizeof(mmspcl_turn) * (size_t)n);
        int t;
        ids = (int32_t *)realloc(ids, sizeof(int32_t) * (size_t)n * MAX_LEN);
        len = (int *)realloc(len, sizeof(int) * (size_t)n);
        mask = (int *)realloc(mask, sizeof(int) * (size_t)n);
        if (!turns || !ids || !len || !mask) { free(turns); fprintf(stderr, "dataset: out of memory\n"); goto done; }
        for (t = 0; t < n; t++) { turns[t].speaker = data.rows[s + t].speaker; turns[t].text = data.rows[s + t].utterance; }
        if (mmspcl_spcl_prompts(tok, turns, n, MAX_LEN, ids, len, mask, &err)) { free(turns); fail(csv_path, &err); goto done; }
        for (t = 0; t < n; t++)
            if (set_add(&all, mask[t], ids + (size_t)t * MAX_LEN, len[t])) { free(turns); fprintf(stderr, "dataset: out of memory\n"); goto done; }
        free(turns);
    }
    rc = write_subset(&all, every, block, out_path);
done:
    free(ids); free(len); free(mask);
    free(all.len); free(all.mask); free(all.ids);
    meld_csv_free(&data);
    mmspcl_bpe_free(tok);
    mmspcl_weights_free(w);
    return rc;
}

/* ---- run --------------------------------------------------------------------------------- */
typedef struct prompts { int n, *len, *mask, *order; int32_t *ids; } prompts;   /* ids [n][MAX_LEN] */

static int read_prompts(const char *path, prompts *p) {
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    int cap_n = 0;
    memset(p, 0, sizeof *p);
    if (!f) { perror(path); return 1; }
    while (getline(&line, &cap, f) > 0) {
        char *s = line, *e;
        int k = 0;
        if (p->n == cap_n) {
            cap_n = cap_n ? 2 * cap_n : 1024;
            p->len = (int *)realloc(p->len, sizeof(int) * (size_t)cap_n);
            p->mask = (int *)realloc(p->mask, sizeof(int) * (size_t)cap_n);
            p->ids = (int32_t *)realloc(p->ids, sizeof(int32_t) * (size_t)cap_n * MAX_LEN);
            if (!p->len || !p->mask || !p->ids) { fclose(f); free(line); return 1; }
        }
        p->mask[p->n] = (int)strtol(s, &e, 10);
        for (s = e; k < MAX_LEN; s = e, k++) {
            long v = strtol(s, &e, 10);
            if (e == s) break;
            p->ids[(size_t)p->n * MAX_LEN + k] = (int32_t)v;
        }
        if (k == 0) continue;
        p->len[p->n++] = k;
    }
    free(line);
    fclose(f);
    return p->n ? 0 : 1;
}

static const prompts *g_sort;
static int by_length(const void *a, const void *b) {
    const int i = *(const int *)a, j = *(const int *)b;
    return g_sort->len[i] != g_sort->len[j] ? g_sort->len[i] - g_sort->len[j] : i - j;
}

/* One pass over every prompt in buckets; mask rows into z [n][H] (NULL: not kept). */
static int pass(mmspcl_roberta *m, const prompts *p, int tokens, int H, int32_t *ids, float *hidden, float *z) {
    mmspcl_error err;
    int i = 0;
    while (i < p->n) {
        int nb = 0, total = 0, seq = 0, b;
        int lens[MAX_BUCKET], rows[MAX_BUCKET];
        while (i + nb < p->n && nb < MAX_BUCKET && (nb == 0 || total + p->len[p->order[i + nb]] <= tokens)) {
            total += p->len[p->order[i + nb]];
            nb++;
        }
        seq = p->len[p->order[i + nb - 1]];   /* sorted: the last is the longest */
        for (b = 0; b < nb; b++) {
            const int k = p->order[i + b];
            lens[b] = p->len[k];
            rows[b] = p->mask[k] >= 0 && p->mask[k] < lens[b] ? p->mask[k] : 0;
            memcpy(ids + (size_t)b * seq, p->ids + (size_t)k * MAX_LEN, sizeof(int32_t) * (size_t)lens[b]);
        }
        /* the <mask> rows alone: the last layer skips the other rows */
        if (mmspcl_roberta_forward_rows(m, ids, lens, nb, seq, rows, hidden, &err)) return fail("forward", &err);
        if (z)
            for (b = 0; b < nb; b++)
                memcpy(z + (size_t)p->order[i + b] * H, hidden + (size_t)b * H, sizeof(float) * (size_t)H);
        i += nb;
    }
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmd_run(const char *model, const char *path, int threads, int reps, int tokens, const char *out_path) {
    mmspcl_weights *w = NULL;
    mmspcl_roberta *m = NULL;
    mmspcl_error err;
    prompts p;
    int32_t *ids = NULL;
    float *hidden = NULL, *z = NULL;
    double wall[64], cpu[64];
    int i, H, rc = 1;
    if (read_prompts(path, &p)) { fprintf(stderr, "dataset: no prompts in %s\n", path); return 1; }
    if (reps > 64) reps = 64;
    mmspcl_set_threads(threads);
    p.order = (int *)malloc(sizeof(int) * (size_t)p.n);
    for (i = 0; i < p.n; i++) p.order[i] = i;
    g_sort = &p;
    qsort(p.order, (size_t)p.n, sizeof(int), by_length);
    if (mmspcl_weights_open(&w, model, &err) || mmspcl_roberta_load(&m, w, MAX_BUCKET, MAX_LEN, &err)) { fail(model, &err); goto done; }
    H = mmspcl_roberta_get_config(m)->hidden_size;
    ids = (int32_t *)malloc(sizeof(int32_t) * MAX_BUCKET * MAX_LEN);
    hidden = (float *)malloc(sizeof(float) * (size_t)MAX_BUCKET * (size_t)H);   /* the <mask> rows of a bucket */
    z = (float *)malloc(sizeof(float) * (size_t)p.n * (size_t)H);
    if (!ids || !hidden || !z) { fprintf(stderr, "dataset: out of memory\n"); goto done; }
    {   /* warm-up: the shortest prompt alone (every weight page read once) */
        prompts one = p;
        one.n = 1;
        if (pass(m, &one, tokens, H, ids, hidden, NULL)) goto done;
    }
    for (i = 0; i < reps; i++) {   /* the first pass keeps the outputs */
        const double t0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
        if (pass(m, &p, tokens, H, ids, hidden, i ? NULL : z)) goto done;
        wall[i] = now(CLOCK_MONOTONIC) - t0;
        cpu[i] = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
    }
    {
        double ws[64], cs[64];
        memcpy(ws, wall, sizeof(double) * (size_t)reps);
        memcpy(cs, cpu, sizeof(double) * (size_t)reps);
        qsort(ws, (size_t)reps, sizeof(double), cmp_double);
        qsort(cs, (size_t)reps, sizeof(double), cmp_double);
        const char *dtype = "?";
        mmspcl_weights_get_str(w, "general.file_type", &dtype);
        printf("result engine=mmspcl dtype=%s threads=%d tokens=%d prompts=%d utt_per_s=%.3f median_s=%.3f min_s=%.3f "
               "cpu_median_s=%.3f runs=", dtype, mmspcl_threads(), tokens,
               p.n, p.n / ws[reps / 2], ws[reps / 2], ws[0], cs[reps / 2]);
        for (i = 0; i < reps; i++) printf("%s%.3f", i ? "," : "", wall[i]);
        printf("\n");
    }
    if (out_path) {
        FILE *f = fopen(out_path, "wb");
        if (!f || fwrite(z, sizeof(float) * (size_t)H, (size_t)p.n, f) != (size_t)p.n || fclose(f)) { perror(out_path); goto done; }
    }
    rc = 0;
done:
    free(ids); free(hidden); free(z);
    free(p.len); free(p.mask); free(p.ids); free(p.order);
    mmspcl_roberta_free(m);
    mmspcl_weights_free(w);
    return rc;
}

int main(int argc, char **argv) {
    if ((argc == 6 || argc == 7) && !strcmp(argv[1], "prompts") && atoi(argv[4]) >= 1 && (argc == 6 || atoi(argv[6]) >= 1))
        return cmd_prompts(argv[2], argv[3], atoi(argv[4]), argc == 7 ? atoi(argv[6]) : 0, argv[5]);
    if ((argc == 7 || argc == 8) && !strcmp(argv[1], "run") && atoi(argv[4]) >= 1 && atoi(argv[5]) >= 1 && atoi(argv[6]) >= 1)
        return cmd_run(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]), atoi(argv[6]), argc == 8 ? argv[7] : NULL);
    fprintf(stderr, "usage: dataset prompts TOKENIZER.mmw MELD.csv EVERY OUT.txt [BLOCK]\n"
                    "       dataset run MODEL.mmw PROMPTS.txt THREADS REPS TOKENS [OUT.f32]\n");
    return 2;
}
