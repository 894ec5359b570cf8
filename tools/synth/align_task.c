/* align_task: writes a synthetic task whose label lies only in how two modalities' sequences
   align in time, in the file formats of build/examples/train_fusion.

     build/tools/align_task --out DIR [--n 3000] [--len 16] [--min-len 10] [--seed 1]
                            [--dim-t 8] [--dim-a 6] [--dim-v 4] [--amp 3] [--noise 1]
                            [--task offset|order]

   Every sample has three zero-padded sequences (t, a, v) of --len steps; its real lengths are
   drawn independently of everything else from min-len..len. Each step is N(0, noise^2) noise. t carries
   one event (a fixed pattern of norm --amp added to one step i), a carries one event of its own
   pattern at step j, v an event at a random step (a distractor). The class (uniform over 3) fixes
   only the relation of j to i:
     0  j = i          (in step)       1  j = i - s, s in 2..4  (a leads)
     2  j = i + s, s in 2..4  (a lags)
   With --task order, t is a sequence of random N(0, 1) steps and a follows it step by step
   through a fixed random matrix M (a_s = M t_k + noise, a as long as t, no events); the class
   fixes the correspondence k(s):  0  k = s (in step);  1  k = L - 1 - s (reversed);
   2  k = (s + 3) mod L (rotated by 3 steps). The same multiset of steps in every class, so the
   means are the same too.
   and (i, j) is drawn uniformly among the pairs that fit the lengths. A sequence's mean over its
   real steps is (pattern + noise) / length whatever the class: pooled single vectors carry no
   information about the label (chance: 33.3% weighted F1 at best in expectation), and the
   class can only be read from when things happen.
   Output: DIR/t.f32 a.f32 v.f32 (float32 [n][len][dim], little-endian), DIR/lens_t.txt
   lens_a.txt lens_v.txt, DIR/labels.txt, DIR/split.txt (train / dev / test, 80 / 10 / 10 in
   order). Every file is written as NAME.tmp; all are renamed only when all are complete (a name
   taken by a folder is refused first), so a failed run leaves an earlier DIR as it was. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct rng { uint64_t s; } rng;
static uint64_t rnext(rng *r) {  /* splitmix64 */
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double runif(rng *r) { return (double)(rnext(r) >> 11) * (1.0 / 9007199254740992.0); }
static int rint_(rng *r, int n) { return (int)(runif(r) * n); }
static double rnorm(rng *r) {
    double u = runif(r), v = runif(r);
    if (u < 1e-300) u = 1e-300;
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static void usage(FILE *o) {
    fprintf(o, "usage: align_task --out DIR [--n 3000] [--len 16] [--min-len 10] [--seed 1]\n"
               "                  [--dim-t 8] [--dim-a 6] [--dim-v 4] [--amp 3] [--noise 1] [--task offset|order]\n"
               "Writes t.f32 a.f32 v.f32, lens_{t,a,v}.txt, labels.txt, split.txt into DIR (which must exist):\n"
               "a 3-class task read only from the time offset between t's and a's events.\n");
}

/* (i, j) uniform among the pairs in [0, Lt) x [0, La) with the relation of class c */
static int pick_pair(rng *r, int c, int Lt, int La, int *pi, int *pj) {
    int i, j, n = 0, k;
    for (i = 0; i < Lt; i++)
        for (j = 0; j < La; j++) {
            const int d = j - i;
            n += c == 0 ? d == 0 : c == 1 ? (d <= -2 && d >= -4) : (d >= 2 && d <= 4);
        }
    if (n == 0) return -1;
    k = rint_(r, n);
    for (i = 0; i < Lt; i++)
        for (j = 0; j < La; j++) {
            const int d = j - i;
            if (!(c == 0 ? d == 0 : c == 1 ? (d <= -2 && d >= -4) : (d >= 2 && d <= 4))) continue;
            if (k-- == 0) { *pi = i; *pj = j; return 0; }
        }
    return -1;
}

static int put_f32(FILE *f, float v) {
    unsigned char b[4];
    uint32_t u;
    memcpy(&u, &v, 4);
    b[0] = (unsigned char)u; b[1] = (unsigned char)(u >> 8); b[2] = (unsigned char)(u >> 16); b[3] = (unsigned char)(u >> 24);
    return fwrite(b, 1, 4, f) == 4 ? 0 : -1;
}

typedef struct out_file { char path[4096], tmp[4096]; FILE *f; } out_file;

/* one sample of the order task: t random, a = M t in the class's step order, v a distractor */
static int write_order(out_file *o, rng *r, int c, const int L[3], int len, const int dims[3], double noise,
                       const double *mix, double *tt, const double *pv, int ev) {
    int s, k, j, bad = 0;
    for (s = 0; s < len; s++)
        for (k = 0; k < dims[0]; k++) {
            tt[(size_t)s * dims[0] + k] = s < L[0] ? rnorm(r) : 0.0;
            bad |= put_f32(o[0].f, (float)tt[(size_t)s * dims[0] + k]);
        }
    for (s = 0; s < len; s++) {
        const int src = c == 0 ? s : c == 1 ? L[1] - 1 - s : (s + 3) % L[1];
        for (j = 0; j < dims[1]; j++) {
            double v = 0.0;
            if (s < L[1]) {
                for (k = 0; k < dims[0]; k++) v += mix[(size_t)j * dims[0] + k] * tt[(size_t)src * dims[0] + k];
                v += noise * rnorm(r);
            }
            bad |= put_f32(o[1].f, (float)v);
        }
    }
    for (s = 0; s < len; s++)
        for (k = 0; k < dims[2]; k++)
            bad |= put_f32(o[2].f, (float)(s < L[2] ? noise * rnorm(r) + (s == ev ? pv[k] : 0.0) : 0.0));
    return bad;
}

static int open_out(out_file *o, const char *dir, const char *name, const char *mode) {
    if (strlen(dir) + strlen(name) + 8 > sizeof o->path) { fprintf(stderr, "align_task: folder name too long\n"); return -1; }
    snprintf(o->path, sizeof o->path, "%s/%s", dir, name);
    snprintf(o->tmp, sizeof o->tmp, "%s/%s.tmp", dir, name);
    o->f = fopen(o->tmp, mode);
    if (!o->f) { fprintf(stderr, "align_task: cannot create %s\n", o->tmp); return -1; }
    return 0;
}

int main(int argc, char **argv) {
    static const char *const names[8] = { "t.f32", "a.f32", "v.f32", "lens_t.txt", "lens_a.txt", "lens_v.txt", "labels.txt", "split.txt" };
    const char *dir = NULL;
    int n = 3000, len = 16, min_len = 10, dims[3] = { 8, 6, 4 }, i, m, t, k, bad = 0;
    double amp = 3.0, noise = 1.0, *pat[3], *mix, *tt;
    int order = 0;
    unsigned long long seed = 1;
    out_file o[8];
    rng r;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        if (!v) { fprintf(stderr, "align_task: %s needs a value\n", a); usage(stderr); return 2; }
        if (!strcmp(a, "--out")) dir = v;
        else if (!strcmp(a, "--n")) n = atoi(v);
        else if (!strcmp(a, "--len")) len = atoi(v);
        else if (!strcmp(a, "--min-len")) min_len = atoi(v);
        else if (!strcmp(a, "--seed")) seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--dim-t")) dims[0] = atoi(v);
        else if (!strcmp(a, "--dim-a")) dims[1] = atoi(v);
        else if (!strcmp(a, "--dim-v")) dims[2] = atoi(v);
        else if (!strcmp(a, "--amp")) amp = atof(v);
        else if (!strcmp(a, "--noise")) noise = atof(v);
        else if (!strcmp(a, "--task") && (!strcmp(v, "offset") || !strcmp(v, "order"))) order = !strcmp(v, "order");
        else { fprintf(stderr, "align_task: unknown option %s\n", a); usage(stderr); return 2; }
        i++;
    }
    if (!dir || n < 10 || min_len < 5 || len < min_len || len > 4096 || dims[0] < 1 || dims[1] < 1 || dims[2] < 1 || !(amp > 0) || !(noise >= 0)) {
        fprintf(stderr, "align_task: needs --out DIR, n >= 10, 5 <= min-len <= len <= 4096, dims >= 1, amp > 0, noise >= 0\n");
        return 2;
    }
    r.s = seed;
    for (m = 0; m < 3; m++) {   /* the fixed event patterns, norm amp */
        double nn = 0;
        pat[m] = (double *)malloc(sizeof(double) * (size_t)dims[m]);
        if (!pat[m]) return 1;
        for (k = 0; k < dims[m]; k++) { pat[m][k] = rnorm(&r); nn += pat[m][k] * pat[m][k]; }
        for (k = 0; k < dims[m]; k++) pat[m][k] *= amp / sqrt(nn);
    }
    mix = (double *)malloc(sizeof(double) * (size_t)dims[0] * dims[1]);   /* order: M [dim_a][dim_t] */
    tt = (double *)malloc(sizeof(double) * (size_t)len * dims[0]);
    if (!mix || !tt) return 1;
    for (k = 0; k < dims[0] * dims[1]; k++) mix[k] = rnorm(&r) / sqrt((double)dims[0]);
    for (k = 0; k < 8; k++) o[k].f = NULL;
    for (k = 0; k < 8 && !bad; k++) bad = open_out(&o[k], dir, names[k], k < 3 ? "wb" : "w");
    for (k = 0; k < 8 && !bad; k++) {   /* a name taken by a folder would fail its rename after the others: refuse now */
        struct stat sb;
        if (stat(o[k].path, &sb) == 0 && !S_ISREG(sb.st_mode)) { fprintf(stderr, "align_task: %s is not a regular file\n", o[k].path); bad = 1; }
    }
    for (i = 0; i < n && !bad; i++) {
        const int c = rint_(&r, 3);
        int L[3], ev[3];
        for (m = 0; m < 3; m++) L[m] = min_len + rint_(&r, len - min_len + 1);
        while (pick_pair(&r, c, L[0], L[1], &ev[0], &ev[1])) L[1] = min_len + rint_(&r, len - min_len + 1);
        ev[2] = rint_(&r, L[2]);
        if (order) { L[1] = L[0]; bad |= write_order(o, &r, c, L, len, dims, noise, mix, tt, pat[2], ev[2]); }
        for (m = 0; m < 3 && !order; m++) {
            for (t = 0; t < len; t++)
                for (k = 0; k < dims[m]; k++) {
                    double v = 0.0;
                    if (t < L[m]) v = noise * rnorm(&r) + (t == ev[m] ? pat[m][k] : 0.0);
                    bad |= put_f32(o[m].f, (float)v);
                }
            bad |= fprintf(o[3 + m].f, "%d\n", L[m]) < 0;
        }
        for (m = 0; m < 3 && order; m++) bad |= fprintf(o[3 + m].f, "%d\n", L[m]) < 0;
        bad |= fprintf(o[6].f, "%d\n", c) < 0;
        bad |= fprintf(o[7].f, "%s\n", i < n * 8 / 10 ? "train" : i < n * 9 / 10 ? "dev" : "test") < 0;
    }
    for (k = 0; k < 8; k++) if (o[k].f && fclose(o[k].f)) bad = 1;
    for (k = 0; k < 8; k++) {
        if (!o[k].f) continue;
        if (bad) remove(o[k].tmp);
        else if (rename(o[k].tmp, o[k].path)) { fprintf(stderr, "align_task: cannot rename %s\n", o[k].tmp); bad = 1; }
    }
    for (m = 0; m < 3; m++) free(pat[m]);
    free(mix); free(tt);
    if (bad) { fprintf(stderr, "align_task: writing into %s failed; nothing was written\n", dir); return 1; }
    printf("align_task: %d samples, %d steps (real %d..%d), dims t %d a %d v %d -> %s\n", n, len, min_len, len, dims[0], dims[1], dims[2], dir);
    return 0;
}
