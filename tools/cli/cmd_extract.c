/* mmspcl extract --csv FILE --media DIR [-m TEXT_MODEL] [--clip CLIP_MODEL] [--shard I/N] -o OUTDIR
   mmspcl extract --join -o OUTDIR

   The per-utterance features of a MELD CSV as examples/train_msve reads them: a.f32 (88 eGeMAPS
   of DIR/diaX_uttY.wav), t.f32 (the SPCL <mask> embedding of -m's encoder, the classifier's t
   view when -m is a classifier file), v.f32 (--clip's embedding of DIR/diaX_uttY.png), raw
   little-endian float32 rows in the CSV's order, and labels.txt (emotion ids), sentiment.txt,
   split.txt (train / dev / test), rows.tsv (Dialogue_ID, Utterance_ID of each row) and
   skipped.tsv (rows left out by --missing skip), one line a row.

   Resumable: the files grow as NAME.part beside progress.txt, a committed index (the job, the
   dialogues done and every file's size) rewritten through a temporary file after each
   dialogue. A restart truncates the .part files to the sizes progress.txt names (dropping what a
   killed run half wrote) and goes on; on completion the .part files are renamed and
   extract.txt (the manifest) is written last, so the final names only ever hold whole files.
   --shard I/N takes the I-th of N contiguous runs of dialogues into OUTDIR/shard-I-of-N;
   --join concatenates complete shards in order into OUTDIR, the same bytes as one run. */
#if !defined(_WIN32) && !defined(_XOPEN_SOURCE)
#define _XOPEN_SOURCE 700 /* truncate, fsync, fileno, clock_gettime, isatty */
#endif
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "tools/train/meld_csv.h"
#include "cli.h"
#include "media.h"

#define CMD "extract"

enum { EX_T, EX_A, EX_V, EX_LABELS, EX_SENT, EX_SPLIT, EX_ROWS, EX_SKIPPED, EX_NFILES };
static const char *const ex_name[EX_NFILES] = {"t.f32", "a.f32", "v.f32", "labels.txt", "sentiment.txt", "split.txt", "rows.tsv", "skipped.tsv"};

typedef struct ex_job {
    const char *csv_path, *media, *model, *clip_path, *out, *split, *missing;
    int shard_i, shard_n, max_rows, quiet;
    meld_csv csv;
    int have_csv, d0, d1;            /* this shard: dialogues [d0, d1) */
    char dir[4000], sig[1300];       /* this shard's folder; the job (what the rows depend on) */
    mmspcl_weights *tw, *cw;
    mmspcl_roberta *enc;
    mmspcl_bpe *tok;
    mmspcl_clip *clip;
    int H, V, max_len;
    int on[EX_NFILES];               /* which files this job writes */
    FILE *f[EX_NFILES];
    long long size[EX_NFILES];
    int dlg_done, rows_done, skipped, run_rows, rows_total;
    double t_start, t_last;
} ex_job;

/* ==== small helpers ========================================================================= */
static double ex_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int ex_path(char *buf, size_t n, const char *dir, const char *name, const char *suffix) {
    const int k = snprintf(buf, n, "%s/%s%s", dir, name, suffix);
    if (k < 0 || (size_t)k >= n) return cli_fail(CMD, "%.60s...: path too long", dir);
    return 0;
}

/* FNV-1a 64 of the CSV's bytes: a restart against another file is refused */
static uint64_t ex_fnv(const unsigned char *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    size_t i;
    for (i = 0; i < n; i++) { h ^= p[i]; h *= 1099511628211ull; }
    return h;
}

static long long ex_file_bytes(const char *path) {
    struct stat sb;
    return path && stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

/* the split of the CSV's rows: --split, else train / dev / test in the file's name */
static int ex_split_of(ex_job *j) {
    const char *base = strrchr(j->csv_path, '/');
    base = base ? base + 1 : j->csv_path;
    if (j->split) {
        if (strcmp(j->split, "train") && strcmp(j->split, "dev") && strcmp(j->split, "test"))
            return cli_usage_error(CMD, "--split '%s': expected train, dev or test", j->split);
        return 0;
    }
    if (strstr(base, "train")) j->split = "train";
    else if (strstr(base, "dev") || strstr(base, "val")) j->split = "dev";
    else if (strstr(base, "test")) j->split = "test";
    else return cli_usage_error(CMD, "--csv %s: its name says no split (train, dev or test): give --split", j->csv_path);
    return 0;
}

/* a whole small text file (progress.txt, extract.txt) or NULL */
static char *ex_slurp(const char *path) {
    unsigned char *b = NULL;
    size_t n = 0;
    mmspcl_error err;
    if (mmspcl_read_file(path, (size_t)1 << 20, &b, &n, &err)) return NULL;
    return (char *)b;
}

/* text to path through path.tmp + rename: 0, or 1 after a message */
static int ex_write_atomic(const char *path, const char *text) {
    char tmp[4100];
    FILE *f;
    int ok;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (!(f = fopen(tmp, "wb"))) return cli_fail(CMD, "cannot create %s: %s", tmp, strerror(errno));
    ok = fputs(text, f) >= 0;
    ok = fflush(f) == 0 && ok;
    ok = fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        const int e = errno;
        remove(tmp);
        return cli_fail(CMD, "cannot write %s: %s", path, strerror(e));
    }
    return 0;
}

static int ex_mkdir(const char *dir) {
    struct stat sb;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) return cli_fail(CMD, "cannot create the folder %s: %s", dir, strerror(errno));
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) return cli_fail(CMD, "-o %s: not a folder", dir);
    return 0;
}

/* Before any work: none of the names the files of `on` (NULL: all) and extract.txt end under in
   dir is taken by anything but a regular file (a folder there would fail a rename at the end,
   after the others were placed). 0, or 1 after a message. */
static int ex_check_names(const char *dir, const int *on) {
    char path[4100];
    struct stat sb;
    int i;
    for (i = 0; i <= EX_NFILES; i++) {
        if (i < EX_NFILES && on && !on[i]) continue;
        if (ex_path(path, sizeof path, dir, i < EX_NFILES ? ex_name[i] : "extract.txt", "")) return 1;
        if (lstat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
            return cli_fail(CMD, "%s exists and is not a regular file: the output cannot be written there", path);
    }
    return 0;
}

/* ==== the manifest and the progress index ================================================== */
/* "mmspcl-extract 1\njob ...\nshard I/N\n" then the counts, the dims (manifest) or the files'
   sizes (progress) */
static void ex_describe(const ex_job *j, char *buf, size_t n, int manifest) {
    size_t k = (size_t)snprintf(buf, n, "mmspcl-extract 1\njob %s\nshard %d/%d\nrows %d\nskipped %d\n", j->sig, j->shard_i, j->shard_n,
                                j->rows_done, j->skipped);
    int i;
    if (manifest) {
        snprintf(buf + k, n - k, "dim.t %d\ndim.a %d\ndim.v %d\n", j->H, MMSPCL_EGEMAPS_N, j->V);
        return;
    }
    k += (size_t)snprintf(buf + k, n - k, "dialogues %d\n", j->dlg_done);
    for (i = 0; i < EX_NFILES && k < n; i++)
        if (j->on[i]) k += (size_t)snprintf(buf + k, n - k, "size %s %lld\n", ex_name[i], j->size[i]);
}

/* the value of "key VALUE" in a description (NULL: absent); copies the rest of the line */
static const char *ex_field(const char *text, const char *key, char *out, size_t n) {
    const char *p = text;
    const size_t kl = strlen(key);
    for (; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, key, kl) && p[kl] == ' ') {
            const size_t len = strcspn(p + kl + 1, "\n");
            snprintf(out, n, "%.*s", (int)(len < n ? len : n - 1), p + kl + 1);
            return out;
        }
    return NULL;
}

/* ==== setting up ============================================================================ */
static int ex_models(ex_job *j) {
    mmspcl_error err;
    int64_t v;
    if (j->model) {
        if (cli_weights_open(CMD, j->model, &j->tw)) return 1;
        j->max_len = mmspcl_weights_get_int(j->tw, "meld.max_len", &v) && v >= 16 && v <= 4096 ? (int)v : MMSPCL_SPCL_MAX_LEN;
        if (mmspcl_roberta_load(&j->enc, j->tw, 8, j->max_len, &err) || mmspcl_bpe_from_weights(&j->tok, j->tw, &err))
            return cli_fail(CMD, "-m %s: %s", j->model, err.msg);
        j->H = mmspcl_roberta_get_config(j->enc)->hidden_size;
    }
    if (j->clip_path && cli_media_clip_open(CMD, j->clip_path, &j->cw, &j->clip, &j->V)) return 1;
    return 0;
}

/* the CSV, its split, this shard's dialogues, the job's signature and folder */
static int ex_setup(ex_job *j) {
    unsigned char *bytes = NULL;
    size_t len = 0;
    mmspcl_error err;
    const char *base = strrchr(j->csv_path, '/');
    int rc;
    if ((rc = ex_split_of(j))) return rc;
    if (mmspcl_read_file(j->csv_path, (size_t)1 << 31, &bytes, &len, &err)) return cli_fail_io(CMD, j->csv_path, &err);
    if (meld_csv_parse((const char *)bytes, len, j->csv_path, &j->csv, &err)) { mmspcl_free(bytes); return cli_fail(CMD, "%s", err.msg); }
    j->have_csv = 1;
    if (j->shard_n > j->csv.n_dialogues) {
        mmspcl_free(bytes);
        return cli_usage_error(CMD, "--shard %d/%d: %s has only %d dialogues", j->shard_i, j->shard_n, j->csv_path, j->csv.n_dialogues);
    }
    j->d0 = (int)((int64_t)j->csv.n_dialogues * (j->shard_i - 1) / j->shard_n);
    j->d1 = (int)((int64_t)j->csv.n_dialogues * j->shard_i / j->shard_n);
    j->rows_total = j->csv.dialogue_start[j->d1] - j->csv.dialogue_start[j->d0];
    snprintf(j->sig, sizeof j->sig, "csv=%s bytes=%zu fnv=%016llx split=%s missing=%s t=%d:%lld v=%d:%lld a=egemaps",
             base ? base + 1 : j->csv_path, len, (unsigned long long)ex_fnv(bytes, len), j->split, j->missing, j->H,
             ex_file_bytes(j->model), j->V, ex_file_bytes(j->clip_path));
    mmspcl_free(bytes);
    if (ex_mkdir(j->out)) return 1;
    if (j->shard_n > 1) {
        snprintf(j->dir, sizeof j->dir, "%s/shard-%d-of-%d", j->out, j->shard_i, j->shard_n);
        if (ex_mkdir(j->dir)) return 1;
    } else {
        snprintf(j->dir, sizeof j->dir, "%s", j->out);
    }
    memset(j->on, 0, sizeof j->on);
    j->on[EX_T] = j->model != NULL;
    j->on[EX_V] = j->clip_path != NULL;
    j->on[EX_A] = j->on[EX_LABELS] = j->on[EX_SENT] = j->on[EX_SPLIT] = j->on[EX_ROWS] = j->on[EX_SKIPPED] = 1;
    return ex_check_names(j->dir, j->on);
}

/* Opens the .part files: fresh, or cut back to a progress index of the same job. 0; 1 after a
   message; 3 when the folder already holds this job complete. */
static int ex_open(ex_job *j) {
    char path[4100], val[1300], want[1300], *text;
    int i, resume = 0;
    if (ex_path(path, sizeof path, j->dir, "extract.txt", "") ) return 1;
    if ((text = ex_slurp(path))) {
        const int same = ex_field(text, "job", val, sizeof val) && !strcmp(val, j->sig);
        mmspcl_free(text);
        if (!same) return cli_fail(CMD, "%s holds an extraction of another job: use another -o, or remove it", path);
        return 3;
    }
    if (ex_path(path, sizeof path, j->dir, "progress.txt", "")) return 1;
    if ((text = ex_slurp(path))) {
        if (!ex_field(text, "job", val, sizeof val) || strcmp(val, j->sig)) {
            mmspcl_free(text);
            return cli_fail(CMD, "%s: the run it records is of another job (CSV, models, split or --missing differ): use another -o, or remove it", path);
        }
        snprintf(want, sizeof want, "%d/%d", j->shard_i, j->shard_n);
        resume = ex_field(text, "shard", val, sizeof val) && !strcmp(val, want);
        j->dlg_done = ex_field(text, "dialogues", val, sizeof val) ? atoi(val) : 0;
        j->rows_done = ex_field(text, "rows", val, sizeof val) ? atoi(val) : 0;
        j->skipped = ex_field(text, "skipped", val, sizeof val) ? atoi(val) : 0;
        for (i = 0; i < EX_NFILES && resume; i++) {
            char key[64];
            if (!j->on[i]) continue;
            snprintf(key, sizeof key, "size %s", ex_name[i]);
            resume = ex_field(text, key, val, sizeof val) != NULL;
            j->size[i] = resume ? atoll(val) : 0;
        }
        mmspcl_free(text);
        if (!resume || j->dlg_done < 0 || j->dlg_done > j->d1 - j->d0)
            return cli_fail(CMD, "%s is damaged (no shard %d/%d, dialogue count or file sizes): remove the folder's progress.txt to start over",
                            path, j->shard_i, j->shard_n);
    }
    for (i = 0; i < EX_NFILES; i++) {
        if (!j->on[i]) continue;
        if (ex_path(path, sizeof path, j->dir, ex_name[i], ".part")) return 1;
        if (resume && (ex_file_bytes(path) < j->size[i] || truncate(path, (off_t)j->size[i]) != 0))
            return cli_fail(CMD, "%s: shorter than the %lld bytes progress.txt committed (or cannot be cut back): remove the folder's progress.txt to start over",
                            path, j->size[i]);
        if (!(j->f[i] = fopen(path, resume ? "ab" : "wb"))) return cli_fail(CMD, "cannot open %s: %s", path, strerror(errno));
        if (!resume) j->size[i] = 0;
    }
    if (resume && !j->quiet)
        fprintf(stderr, "mmspcl " CMD ": %s: resuming after %d of %d dialogues (%d rows)\n", j->dir, j->dlg_done, j->d1 - j->d0, j->rows_done);
    return 0;
}

/* ==== the work ============================================================================== */
/* every .part file flushed to disk, their sizes recorded, then the index replaced */
static int ex_commit(ex_job *j) {
    char path[4100], text[2048];
    int i;
    for (i = 0; i < EX_NFILES; i++) {
        if (!j->f[i]) continue;
        if (fflush(j->f[i]) != 0 || fsync(fileno(j->f[i])) != 0)
            return cli_fail(CMD, "cannot write %s/%s.part: %s", j->dir, ex_name[i], strerror(errno));
        j->size[i] = (long long)ftell(j->f[i]);
    }
    ex_describe(j, text, sizeof text, 0);
    if (ex_path(path, sizeof path, j->dir, "progress.txt", "")) return 1;
    return ex_write_atomic(path, text);
}

static void ex_progress(ex_job *j, int final) {
    const double now = ex_now(), el = now - j->t_start;
    const int done = j->rows_done + j->skipped, tty = isatty(2);
    const double rate = el > 0 ? j->run_rows / el : 0, left = rate > 0 ? (j->rows_total - done) / rate : 0;
    char bar[32];
    int k, w;
    if (j->quiet || (!final && now - j->t_last < (tty ? 0.2 : 10.0))) return;
    j->t_last = now;
    w = j->rows_total ? (int)(30.0 * done / j->rows_total) : 30;
    for (k = 0; k < 30; k++) bar[k] = k < w ? '=' : ' ';
    bar[30] = 0;
    fprintf(stderr, "%s[%s] %d/%d rows  %.1f rows/s  ETA %d:%02d:%02d%s", tty ? "\r" : "", bar, done, j->rows_total, rate,
            (int)(left / 3600), (int)(left / 60) % 60, (int)left % 60, tty && !final ? "" : "\n");
}

/* the row's a and v: 0 kept, 2 skipped (--missing skip), 1 after a message */
static int ex_media(ex_job *j, const meld_row *r, float *a, float *v, char *why, size_t nwhy) {
    char path[4100];
    int k, rc;
    for (k = 0; k < 2; k++) {
        if (k && !j->clip) break;
        if (cli_media_path(CMD, path, sizeof path, j->media, (long long)r->dialogue_id, (long long)r->utterance_id, k ? "png" : "wav")) return 1;
        rc = k ? cli_media_video(CMD, j->clip, path, v) : cli_media_audio(CMD, path, a);
        if (rc == CLI_MEDIA_MISSING && strcmp(j->missing, "skip"))
            return cli_fail(CMD, "%s: no such file (%s line %d; --missing skip leaves such rows out)", path, j->csv_path, r->line);
        if (rc == CLI_MEDIA_MISSING) { snprintf(why, nwhy, "%s", path); return 2; }
        if (rc) return 1;
    }
    return 0;
}

static int ex_put_f32(ex_job *j, int which, const float *x, int n) {
    if (fwrite(x, sizeof(float), (size_t)n, j->f[which]) != (size_t)n)
        return cli_fail(CMD, "cannot write %s/%s.part: %s", j->dir, ex_name[which], strerror(errno));
    return 0;
}

/* one dialogue: t of all its turns (the context), then each row's media and lines */
static int ex_dialogue(ex_job *j, int d, float *t, float *a, float *v, mmspcl_turn *turns) {
    const int s = j->csv.dialogue_start[d], n = j->csv.dialogue_start[d + 1] - s;
    mmspcl_error err;
    int i, rc;
    char why[4100];
    for (i = 0; i < n; i++) { turns[i].speaker = j->csv.rows[s + i].speaker; turns[i].text = j->csv.rows[s + i].utterance; }
    if (j->enc && mmspcl_spcl_embed_dialogue(j->enc, j->tok, turns, n, j->max_len, t, &err))
        return cli_fail(CMD, "%s line %d: %s", j->csv_path, j->csv.rows[s].line, err.msg);
    for (i = 0; i < n; i++) {
        const meld_row *r = &j->csv.rows[s + i];
        if ((rc = ex_media(j, r, a, v, why, sizeof why)) == 1) return 1;
        if (rc == 2) {
            fprintf(j->f[EX_SKIPPED], "%lld\t%lld\t%s\n", (long long)r->dialogue_id, (long long)r->utterance_id, why);
            j->skipped++;
            continue;
        }
        if ((j->enc && ex_put_f32(j, EX_T, t + (size_t)i * j->H, j->H)) || ex_put_f32(j, EX_A, a, MMSPCL_EGEMAPS_N) ||
            (j->clip && ex_put_f32(j, EX_V, v, j->V)))
            return 1;
        fprintf(j->f[EX_LABELS], "%d\n", r->emotion);
        fprintf(j->f[EX_SENT], "%d\n", r->sentiment);
        fprintf(j->f[EX_SPLIT], "%s\n", j->split);
        fprintf(j->f[EX_ROWS], "%lld\t%lld\n", (long long)r->dialogue_id, (long long)r->utterance_id);
        j->rows_done++;
    }
    j->run_rows += n;
    return 0;
}

/* the .part files closed, then renamed to their names (all or none: a failed rename puts the
   ones before back, so progress.txt still describes the folder), then the manifest */
static int ex_finish(ex_job *j) {
    char from[4100], to[4100], text[2048];
    int i, k, bad = 0;
    for (i = 0; i < EX_NFILES; i++) {
        if (!j->f[i]) continue;
        if (fclose(j->f[i]) != 0 && !bad) bad = cli_fail(CMD, "cannot write %s/%s.part: %s", j->dir, ex_name[i], strerror(errno));
        j->f[i] = NULL;
    }
    if (bad) return 1;
    for (i = 0; i < EX_NFILES; i++) {
        if (!j->on[i]) continue;
        if (ex_path(from, sizeof from, j->dir, ex_name[i], ".part") || ex_path(to, sizeof to, j->dir, ex_name[i], "")) return 1;
        if (rename(from, to) != 0) {
            cli_fail(CMD, "cannot rename %s to %s: %s", from, to, strerror(errno));
            for (k = 0; k < i; k++)
                if (j->on[k] && !ex_path(from, sizeof from, j->dir, ex_name[k], ".part") && !ex_path(to, sizeof to, j->dir, ex_name[k], ""))
                    rename(to, from);
            return 1;
        }
    }
    ex_describe(j, text, sizeof text, 1);
    if (ex_path(to, sizeof to, j->dir, "extract.txt", "") || ex_write_atomic(to, text)) return 1;
    if (ex_path(to, sizeof to, j->dir, "progress.txt", "")) return 1;
    remove(to);
    return 0;
}

static int ex_run(ex_job *j) {
    int longest = 1, d, rc = 1, n_before;
    float *t = NULL, *a = NULL, *v = NULL;
    mmspcl_turn *turns = NULL;
    for (d = j->d0; d < j->d1; d++)
        if (j->csv.dialogue_start[d + 1] - j->csv.dialogue_start[d] > longest) longest = j->csv.dialogue_start[d + 1] - j->csv.dialogue_start[d];
    t = (float *)malloc(sizeof(float) * (size_t)longest * (size_t)(j->H > 0 ? j->H : 1));
    a = (float *)malloc(sizeof(float) * MMSPCL_EGEMAPS_N);
    v = (float *)malloc(sizeof(float) * (size_t)(j->V > 0 ? j->V : 1));
    turns = (mmspcl_turn *)malloc(sizeof *turns * (size_t)longest);
    if (!t || !a || !v || !turns) { cli_fail(CMD, "out of memory"); goto done; }
    j->t_start = j->t_last = ex_now();
    n_before = j->rows_done + j->skipped;
    for (d = j->d0 + j->dlg_done; d < j->d1; d++) {
        if (ex_dialogue(j, d, t, a, v, turns)) goto done;
        j->dlg_done++;
        if (ex_commit(j)) goto done;
        ex_progress(j, 0);
        if (j->max_rows > 0 && j->rows_done + j->skipped - n_before >= j->max_rows && d + 1 < j->d1) {
            ex_progress(j, 1);
            if (!j->quiet)
                fprintf(stderr, "mmspcl " CMD ": stopped after %d rows (--max-rows); run the same command again to go on\n",
                        j->rows_done + j->skipped - n_before);
            rc = 0;
            goto done;
        }
    }
    ex_progress(j, 1);
    if (ex_finish(j)) goto done;
    if (!j->quiet)
        fprintf(stderr, "mmspcl " CMD ": %s: %d rows (%d skipped), t %d a %d v %d floats a row\n", j->dir, j->rows_done, j->skipped, j->H,
                MMSPCL_EGEMAPS_N, j->V);
    rc = 0;
done:
    free(t); free(a); free(v); free(turns);
    return rc;
}

/* ==== --join ================================================================================ */
/* N of OUTDIR's shard-I-of-N folders (0: none; -1 after a message: several N) */
static int ex_shard_count(const char *out) {
    DIR *dir = opendir(out);
    struct dirent *e;
    int n = 0;
    if (!dir) { cli_fail(CMD, "cannot open the folder %s: %s", out, strerror(errno)); return -1; }
    while ((e = readdir(dir))) {
        int i, k, used = 0;
        char again[64];
        if (sscanf(e->d_name, "shard-%d-of-%d%n", &i, &k, &used) != 2 || e->d_name[used] || k < 1) continue;
        snprintf(again, sizeof again, "shard-%d-of-%d", i, k);
        if (strcmp(again, e->d_name)) continue;
        if (n && n != k) { closedir(dir); cli_fail(CMD, "%s holds shards of %d and of %d: join one set", out, n, k); return -1; }
        n = k;
    }
    closedir(dir);
    return n;
}

/* appends file `from` to f: 0, or 1 after a message */
static int ex_append(FILE *f, const char *from, const char *to) {
    char buf[1 << 16];
    size_t got;
    FILE *g = fopen(from, "rb");
    if (!g) return cli_fail(CMD, "cannot open %s: %s", from, strerror(errno));
    while ((got = fread(buf, 1, sizeof buf, g)) > 0)
        if (fwrite(buf, 1, got, f) != got) { fclose(g); return cli_fail(CMD, "cannot write %s: %s", to, strerror(errno)); }
    if (ferror(g)) { fclose(g); return cli_fail(CMD, "cannot read %s: %s", from, strerror(errno)); }
    fclose(g);
    return 0;
}

/* the folders' manifests, counts summed into *j (sig, rows, skipped, dims): shards of one job
   (shards 1), or whole extractions (shards 0: other CSVs or splits, the same models) */
static int ex_join_check(ex_job *j, char **dir, int n, int shards) {
    char path[4100], val[1300], *text;
    const char *mp;
    int i;
    for (i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/extract.txt", dir[i]);
        if (!(text = ex_slurp(path)))
            return shards ? cli_fail(CMD, "shard %d/%d is not complete (no %s): run it (again) before --join", i + 1, n, path)
                          : cli_fail(CMD, "%s is not a complete extraction (no %s)", dir[i], path);
        if (!shards && (!ex_field(text, "shard", val, sizeof val) || strcmp(val, "1/1"))) {
            mmspcl_free(text);
            return cli_fail(CMD, "%s holds one shard: join its shards first (mmspcl extract --join -o THAT_FOLDER)", dir[i]);
        }
        mp = ex_field(text, "job", val, sizeof val) ? strstr(val, " t=") : NULL;
        if (!mp || (i > 0 && strcmp(shards ? val : mp, shards ? j->sig : strstr(j->sig, " t=")))) {
            mmspcl_free(text);
            return cli_fail(CMD, "%s: %s", path, shards ? "another job than shard 1's (CSV, models, split or --missing differ)"
                                                        : "features of other models than the first folder's (t, v widths and files)");
        }
        if (shards) snprintf(j->sig, sizeof j->sig, "%s", val);
        else if (i == 0) snprintf(j->sig, sizeof j->sig, "joined=%d%s", n, mp);
        j->rows_done += ex_field(text, "rows", val, sizeof val) ? atoi(val) : 0;
        j->skipped += ex_field(text, "skipped", val, sizeof val) ? atoi(val) : 0;
        j->H = ex_field(text, "dim.t", val, sizeof val) ? atoi(val) : 0;
        j->V = ex_field(text, "dim.v", val, sizeof val) ? atoi(val) : 0;
        mmspcl_free(text);
    }
    return 0;
}

/* file k of the folders concatenated in order into tmp: 0, or 1 after a message (tmp removed) */
static int ex_join_one(char **dir, int n, int k, const char *tmp, const char *to) {
    char from[4100];
    FILE *f;
    int i, ok;
    if (!(f = fopen(tmp, "wb"))) return cli_fail(CMD, "cannot create %s: %s", tmp, strerror(errno));
    for (i = 0; i < n; i++) {
        snprintf(from, sizeof from, "%s/%s", dir[i], ex_name[k]);
        if (ex_append(f, from, to)) { fclose(f); remove(tmp); return 1; }
    }
    ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0 || !ok) { const int e = errno; remove(tmp); return cli_fail(CMD, "cannot write %s: %s", to, strerror(e)); }
    return 0;
}

/* the folders' files concatenated in order into j->out, all or none: every file complete under
   NAME.tmp first (a failure removes them: an earlier join's files and manifest stay as they
   were); then the old manifest removed, the files renamed and the new manifest written */
static int ex_join_files(ex_job *j, char **dir, int n) {
    char to[4100], tmp[EX_NFILES][4200], text[2048];
    int k, on[EX_NFILES], bad = 0;
    for (k = 0; k < EX_NFILES; k++) {
        on[k] = !((k == EX_T && !j->H) || (k == EX_V && !j->V));
        tmp[k][0] = 0;
    }
    if (ex_check_names(j->out, on)) return 1;
    for (k = 0; k < EX_NFILES && !bad; k++) {
        if (!on[k]) continue;
        if (ex_path(to, sizeof to, j->out, ex_name[k], "")) { bad = 1; break; }
        snprintf(tmp[k], sizeof tmp[k], "%s.tmp", to);
        if (ex_join_one(dir, n, k, tmp[k], to)) { tmp[k][0] = 0; bad = 1; }
    }
    if (!bad && (ex_path(to, sizeof to, j->out, "extract.txt", "") || (remove(to) != 0 && errno != ENOENT &&
                                                                        cli_fail(CMD, "cannot remove %s: %s", to, strerror(errno)))))
        bad = 1;
    for (k = 0; k < EX_NFILES; k++) {
        if (!tmp[k][0]) continue;
        if (bad) { remove(tmp[k]); continue; }
        snprintf(to, sizeof to, "%.*s", (int)(strlen(tmp[k]) - 4), tmp[k]);
        if (rename(tmp[k], to) != 0) { bad = cli_fail(CMD, "cannot rename %s to %s: %s", tmp[k], to, strerror(errno)); remove(tmp[k]); }
    }
    if (bad) return 1;
    j->shard_i = j->shard_n = 1;
    ex_describe(j, text, sizeof text, 1);
    return ex_path(to, sizeof to, j->out, "extract.txt", "") || ex_write_atomic(to, text);
}

/* --join -o OUTDIR: OUTDIR's shard-I-of-N folders; --join -o OUTDIR DIR...: those folders */
static int ex_join(ex_job *j, const char *const *pos, int np) {
    const int n = np ? np : ex_shard_count(j->out);
    char **dir;
    int i, rc = 1;
    if (n < 0) return 1;
    if (n == 0) return cli_fail(CMD, "--join: %s holds no shard-I-of-N folders (made by --shard I/N -o %s)", j->out, j->out);
    for (i = 0; i < np; i++)
        if (!strcmp(pos[i], j->out) || cli_same_file(pos[i], j->out)) return cli_usage_error(CMD, "--join: -o %s is one of the folders joined", j->out);
    if (np && ex_mkdir(j->out)) return 1;
    if (!(dir = (char **)calloc((size_t)n, sizeof *dir))) return cli_fail(CMD, "out of memory");
    for (i = 0; i < n; i++) {
        if (!(dir[i] = (char *)malloc(4100))) { cli_fail(CMD, "out of memory"); goto done; }
        if (np) snprintf(dir[i], 4100, "%s", pos[i]);
        else snprintf(dir[i], 4100, "%s/shard-%d-of-%d", j->out, i + 1, n);
    }
    if (ex_join_check(j, dir, n, !np) || ex_join_files(j, dir, n)) goto done;
    if (!j->quiet)
        fprintf(stderr, "mmspcl " CMD ": joined %d %s into %s: %d rows (%d skipped)\n", n, np ? "folders" : "shards", j->out, j->rows_done, j->skipped);
    rc = 0;
done:
    for (i = 0; i < n; i++) free(dir[i]);
    free(dir);
    return rc;
}

/* ==== the command =========================================================================== */
static int ex_parse_shard(ex_job *j, const char *s) {
    long long i, n;
    char a[32], b[32];
    const char *slash = s ? strchr(s, '/') : NULL;
    j->shard_i = j->shard_n = 1;
    if (!s) return 0;
    if (!slash || slash - s >= (long)sizeof a || strlen(slash + 1) >= sizeof b)
        return cli_usage_error(CMD, "--shard '%s': expected I/N (shard I of N, 1 <= I <= N)", s);
    snprintf(a, sizeof a, "%.*s", (int)(slash - s), s);
    snprintf(b, sizeof b, "%s", slash + 1);
    if (cli_parse_int(CMD, "--shard N", b, 1, 100000, &n) || cli_parse_int(CMD, "--shard I", a, 1, n, &i)) return 2;
    j->shard_i = (int)i;
    j->shard_n = (int)n;
    return 0;
}

static void ex_free(ex_job *j) {
    int i;
    for (i = 0; i < EX_NFILES; i++) if (j->f[i]) fclose(j->f[i]);
    if (j->have_csv) meld_csv_free(&j->csv);
    mmspcl_roberta_free(j->enc);
    mmspcl_bpe_free(j->tok);
    mmspcl_clip_free(j->clip);
    mmspcl_weights_free(j->tw);
    mmspcl_weights_free(j->cw);
}

int mmspcl_cmd_extract(int argc, char **argv) {
    const char *shard = NULL, *pos[64];
    int join = 0, np, rc;
    ex_job j;
    memset(&j, 0, sizeof j);
    j.missing = "error";
    {
        const cli_opt opts[] = {
            CLI_OPT_STR("--csv", &j.csv_path, "FILE", "a MELD CSV (Dialogue_ID, Utterance_ID, Speaker, Utterance, Emotion, Sentiment)", NULL),
            CLI_OPT_STR("--media", &j.media, "DIR", "clips DIR/diaX_uttY.wav (and .png with --clip)", NULL),
            CLI_OPT_STR("-m, --model", &j.model, "TEXT_MODEL", "classifier or converted RoBERTa: t.f32, the SPCL <mask> embedding", "no t.f32"),
            CLI_OPT_STR("--clip", &j.clip_path, "CLIP_MODEL", "CLIP vision tower: v.f32, the middle frame's embedding", "no v.f32"),
            CLI_OPT_STR("--split", &j.split, "S", "train, dev or test for split.txt", "from the CSV's name"),
            CLI_OPT_STR("--shard", &shard, "I/N", "the I-th of N contiguous runs of dialogues, into OUTDIR/shard-I-of-N", "1/1: all, into OUTDIR"),
            CLI_OPT_STR("--missing", &j.missing, "M", "a missing clip file: error, or skip (the row left out, listed in skipped.tsv)", "error"),
            CLI_OPT_INT("--max-rows", &j.max_rows, 0, 1e9, "N", "stop (resumable) after about N more rows, at a dialogue's end; 0: no limit"),
            CLI_OPT_FLAG("--join", &join, "concatenate OUTDIR's complete shard-I-of-N folders (or the DIRs given) into OUTDIR"),
            CLI_OPT_FLAG("-q, --quiet", &j.quiet, "no progress bar or summary on stderr"),
            CLI_OPT_STR("-o, --output, --out", &j.out, "OUTDIR", "the folder of the feature files (created; its parent must exist)", NULL),
            CLI_OPT_END};
        const cli_spec spec = {CMD, "--csv FILE --media DIR [-m TEXT_MODEL] [--clip CLIP_MODEL] [--shard I/N] -o OUTDIR\n"
                                    "       mmspcl extract --join -o OUTDIR [DIR...]",
                               "Per-utterance features of a MELD CSV for examples/train_msve: a.f32 (88 eGeMAPS of diaX_uttY.wav),\n"
                               "t.f32 (-m), v.f32 (--clip, of diaX_uttY.png), labels.txt (emotion ids), sentiment.txt, split.txt,\n"
                               "rows.tsv (Dialogue_ID, Utterance_ID), skipped.tsv; extract.txt, written last, says the folder is complete.",
                               opts, pos, 64,
                               "Resumable: run the same command again after an interruption; rows already committed (every\n"
                               "dialogue, in progress.txt) are kept and the rest is done. --join gives the bytes of one unsharded\n"
                               "run. --join -o OUTDIR DIR...: complete extractions (e.g. the train and dev splits' folders), the same\n"
                               "models, concatenated in that order. Slurm arrays and GNU parallel: docs/MELD.md."};
        if ((rc = cli_parse(&spec, argc, argv, &np)) != CLI_GO) return rc;
    }
    if (!j.out) return cli_usage_error(CMD, "-o OUTDIR is required");
    if (join) {
        if (j.csv_path || j.media || j.model || j.clip_path || shard || j.split || j.max_rows)
            return cli_usage_error(CMD, "--join takes only -o OUTDIR (and --quiet)");
        return ex_join(&j, pos, np);
    }
    if (np) return cli_usage_error(CMD, "unexpected argument '%s' (folders are for --join)", pos[0]);
    if (!j.csv_path || !j.media) return cli_usage_error(CMD, "%s is required", j.csv_path ? "--media DIR" : "--csv FILE");
    if (strcmp(j.missing, "error") && strcmp(j.missing, "skip")) return cli_usage_error(CMD, "--missing '%s': expected error or skip", j.missing);
    if (!strcmp(j.csv_path, "-") || (j.model && !strcmp(j.model, "-")) || (j.clip_path && !strcmp(j.clip_path, "-")))
        return cli_usage_error(CMD, "files only: a restart has to read the same CSV and models again (no - for standard input)");
    if ((rc = ex_parse_shard(&j, shard))) return rc;
    rc = 1;
    if (!ex_models(&j) && !(rc = ex_setup(&j))) {
        rc = ex_open(&j);
        if (rc == 3) {
            if (!j.quiet) fprintf(stderr, "mmspcl " CMD ": %s is complete already (extract.txt): nothing to do\n", j.dir);
            rc = 0;
        } else if (!rc) {
            rc = ex_run(&j);
        }
    }
    ex_free(&j);
    return rc;
}
