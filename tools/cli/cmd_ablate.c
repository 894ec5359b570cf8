/* mmspcl ablate --features DIR -o PREFIX [options]

   The grid of the paper's Tables 2-5 on any feature set in the files of examples/train_fusion /
   train_msve (tools/train/ablate.h): Table 2 fusion (linear, mult, bottleneck) x modality
   combination; Table 3 bottleneck size x fusion layer; Table 4 pruning modality x head size K;
   Table 5 MSVE variants. Every cell is one training run of the library's trainers (the same
   numbers as examples/train_fusion with the same options and seed), the test split's weighted
   F1 of the best dev epoch. Writes PREFIX.md (the tables and every run's details) and
   PREFIX.svg (a bar chart per table), both complete or not at all (docs/FUSION.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"
#include "tools/train/ablate.h"

#define CMD "ablate"
#define ABL_MAXR 8
#define ABL_MAXC 8

typedef struct abl_table {
    int id, nr, nc;
    const char *title, *row_head;
    char rows[ABL_MAXR][64], cols[ABL_MAXC][24];
    abl_result res[ABL_MAXR][ABL_MAXC];
    int ok[ABL_MAXR][ABL_MAXC];
} abl_table;

typedef struct abl_job {
    int table, row, col, msve;
    abl_fusion_cfg f;
    mmspcl_msve_cfg m;
    mmspcl_msve_train_cfg mt;
} abl_job;

typedef struct abl_args {
    const char *features, *out, *tables, *bsizes, *flayers, *ks;
    int L[3], D[3], quick, quiet, msve_epochs, msve_hidden;
    double msve_lr;
    abl_fusion_cfg f;
    int want[6], nb, nl, nk, b[ABL_MAXC], l[ABL_MAXC], k[ABL_MAXC];
} abl_args;

typedef struct abl_ui { int quiet, tty, job, jobs; double t0, run0; const char *what; int epochs; } abl_ui;

static double abl_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* "2,4,8" into v (at most max entries, each lo..hi); 0, or 2 after a usage message */
static int abl_int_list(const char *opt, const char *s, int lo, int hi, int *v, int *n, int max) {
    const char *p = s;
    *n = 0;
    for (;;) {
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p || (*end && *end != ',') || x < lo || x > hi || *n == max)
            return cli_usage_error(CMD, "%s '%s': expected up to %d comma-separated integers in %d..%d", opt, s, max, lo, hi);
        v[(*n)++] = (int)x;
        if (!*end) return 0;
        p = end + 1;
    }
}

static int abl_parse(int argc, char **argv, abl_args *a) {
    int np, rc, i, n, t[6];
    const cli_opt opts[] = {
        CLI_OPT_REQ("--features", &a->features, "DIR", "t.f32 / a.f32 / v.f32, labels.txt, split.txt (lens_M.txt optional; extract.txt gives widths)"),
        CLI_OPT_REQ("-o, --output", &a->out, "PREFIX", "writes PREFIX.md and PREFIX.svg"),
        CLI_OPT_STR("--tables", &a->tables, "LIST", "tables of the paper to run, from 2,3,4,5", "2,3,4,5"),
        CLI_OPT_FLAG("--quick", &a->quick, "a small grid: 3 fusion epochs, 20 MSVE epochs, two bottleneck sizes, the first and last fusion layer, two K"),
        CLI_OPT_INT("--len-t", &a->L[0], 0, 1 << 16, "L", "steps per row of t.f32 (0: from extract.txt, else no t)"),
        CLI_OPT_INT("--dim-t", &a->D[0], 0, 1 << 20, "D", "features per step of t.f32"),
        CLI_OPT_INT("--len-a", &a->L[1], 0, 1 << 16, "L", "steps per row of a.f32"),
        CLI_OPT_INT("--dim-a", &a->D[1], 0, 1 << 20, "D", "features per step of a.f32"),
        CLI_OPT_INT("--len-v", &a->L[2], 0, 1 << 16, "L", "steps per row of v.f32"),
        CLI_OPT_INT("--dim-v", &a->D[2], 0, 1 << 20, "D", "features per step of v.f32"),
        CLI_OPT_INT("--epochs", &a->f.epochs, 1, 100000, "N", "epochs of every fusion run (train_fusion's default)"),
        CLI_OPT_INT("--patience", &a->f.patience, 0, 100000, "N", "fusion runs stop after N epochs without a better dev F1 (0: never)"),
        CLI_OPT_INT("--batch", &a->f.batch, 1, 1024, "N", "batch size of the fusion runs"),
        CLI_OPT_REAL("--lr", &a->f.lr, 1e-9, 1, "X", "AdamW learning rate of the fusion runs"),
        CLI_OPT_INT("--d", &a->f.d, 1, 4096, "N", "model width of mult and bottleneck"),
        CLI_OPT_INT("--heads", &a->f.heads, 1, 64, "N", "attention heads"),
        CLI_OPT_INT("--layers", &a->f.layers, 1, 64, "N", "cross-modal layers (mult), layers (bottleneck)"),
        CLI_OPT_REAL("--dropout", &a->f.dropout, 0, 0.95, "X", "dropout of the fusion runs"),
        CLI_OPT_STR("--bottleneck-sizes", &a->bsizes, "LIST", "Table 3's rows: fusion tokens B", "2,4,8"),
        CLI_OPT_STR("--fusion-layers", &a->flayers, "LIST", "Table 3's columns: the first fusion layer", "0 .. layers-1"),
        CLI_OPT_STR("--prune-k", &a->ks, "LIST", "Table 4's columns: head sizes K", "16,32,64 dividing t's width, else its largest power-of-2 divisors"),
        CLI_OPT_INT("--msve-epochs", &a->msve_epochs, 1, 100000, "N", "epochs at most of the MSVE runs (patience 10)"),
        CLI_OPT_INT("--msve-hidden", &a->msve_hidden, 1, 1 << 16, "N", "hidden width of MSVE's deeper networks"),
        CLI_OPT_REAL("--msve-lr", &a->msve_lr, 1e-9, 1, "X", "AdamW learning rate of the MSVE runs"),
        {"--seed", CLI_U64, &a->f.seed, 0, 18446744073709551615.0, "N", "random seed of every run (0 to 2^64-1)", NULL, 0, NULL},
        CLI_OPT_FLAG("-q, --quiet", &a->quiet, "no progress on stderr"),
        CLI_OPT_END};
    const cli_spec spec = {CMD, "--features DIR -o PREFIX [options]",
                           "The paper's ablation grid on a feature set: Table 2 fusion x modality combination, Table 3 bottleneck\n"
                           "size x fusion layer, Table 4 pruning modality x K, Table 5 MSVE variants; each cell one training run\n"
                           "(as examples/train_fusion / train_msve run it), the test weighted F1 of the best dev epoch.",
                           opts, NULL, 0,
                           "DIR holds float32 [n][L][D] files (zero-padded past each row's length; lens_t.txt etc. give lengths),\n"
                           "labels.txt (a class per line) and split.txt (train / dev / test per line): the files of align_task and of\n"
                           "mmspcl extract (L = 1, widths from extract.txt). Fusion runs mean-pool the sequences for linear and prune.\n"
                           "docs/FUSION.md, \"mmspcl ablate\", lists every run the tables make."};
    if ((rc = cli_parse(&spec, argc, argv, &np)) != CLI_GO) return rc;
    if (abl_int_list("--tables", a->tables, 2, 5, t, &n, 6)) return 2;
    for (i = 0; i < n; i++) a->want[t[i]] = 1;
    if (a->quick && a->f.epochs == 40) a->f.epochs = 3;
    if (a->quick && a->msve_epochs == 200) a->msve_epochs = 20;
    if (a->f.d % a->f.heads) return cli_usage_error(CMD, "--d %d is not a multiple of --heads %d", a->f.d, a->f.heads);
    if (abl_int_list("--bottleneck-sizes", a->bsizes ? a->bsizes : a->quick ? "2,4" : "2,4,8", 1, 256, a->b, &a->nb, ABL_MAXR)) return 2;
    if (a->flayers) {
        if (abl_int_list("--fusion-layers", a->flayers, 0, a->f.layers - 1, a->l, &a->nl, ABL_MAXC)) return 2;
    } else {
        for (a->nl = 0, i = 0; i < a->f.layers && a->nl < ABL_MAXC; i++)
            if (!a->quick || i == 0 || i == a->f.layers - 1) a->l[a->nl++] = i;
    }
    if (a->ks && abl_int_list("--prune-k", a->ks, 1, 1 << 20, a->k, &a->nk, ABL_MAXC)) return 2;
    return CLI_GO;
}

/* Table 4's K: --prune-k, else 16, 32, 64 where they divide t's width, else its largest
   power-of-2 divisors below it (at most 3; 2 with --quick) */
static void abl_default_ks(abl_args *a, int Dt) {
    static const int paper[3] = {16, 32, 64};
    int i, p, max = a->quick ? 2 : 3;
    if (a->ks) return;
    for (a->nk = 0, i = 0; i < 3 && a->nk < max; i++) if (Dt % paper[i] == 0 && paper[i] <= Dt) a->k[a->nk++] = paper[i];
    if (a->nk) return;
    for (p = 1; 2 * p < Dt && Dt % (2 * p) == 0; p *= 2) {}
    for (; p >= 1 && a->nk < max; p /= 2) if (p < Dt) a->k[a->nk++] = p;
    for (i = 0; i < a->nk / 2; i++) { const int t = a->k[i]; a->k[i] = a->k[a->nk - 1 - i]; a->k[a->nk - 1 - i] = t; }
}

static void abl_mods_name(unsigned mods, char *out) {
    int n = 0;
    if (mods & MMSPCL_MOD_T) out[n++] = 't';
    if (mods & MMSPCL_MOD_A) out[n++] = 'a';
    if (mods & MMSPCL_MOD_V) out[n++] = 'v';
    out[n] = 0;
}

static abl_job *abl_add(abl_job *jobs, int *nj, abl_table *t, int row, int col, const abl_fusion_cfg *f) {
    abl_job *j = &jobs[(*nj)++];
    memset(j, 0, sizeof *j);
    j->table = t->id; j->row = row; j->col = col;
    if (f) j->f = *f;
    t->ok[row][col] = 1;
    return j;
}

/* Tables 2-4: fusion runs */
static void abl_fusion_tables(abl_args *a, const abl_data *d, abl_table *T, abl_job *jobs, int *nj) {
    static const char *const kname[3] = {"linear", "mult", "bottleneck"};
    static const abl_kind kind[3] = {ABL_LINEAR, ABL_MULT, ABL_BOTTLENECK};
    static const unsigned combos[4] = {MMSPCL_MOD_T | MMSPCL_MOD_A, MMSPCL_MOD_T | MMSPCL_MOD_V, MMSPCL_MOD_A | MMSPCL_MOD_V,
                                       MMSPCL_MOD_T | MMSPCL_MOD_A | MMSPCL_MOD_V};
    unsigned present = (d->D[0] ? 1u : 0u) | (d->D[1] ? 2u : 0u) | (d->D[2] ? 4u : 0u);
    abl_fusion_cfg f;
    int i, j;
    if (a->want[2]) {
        abl_table *t = &T[2];
        for (j = 0; j < 3; j++) snprintf(t->cols[t->nc++], sizeof t->cols[0], "%s", kname[j]);
        for (i = 0; i < 4; i++) {
            if ((combos[i] & present) != combos[i]) continue;
            abl_mods_name(combos[i], t->rows[t->nr]);
            for (j = 0; j < 3; j++) { f = a->f; f.kind = kind[j]; f.mods = combos[i]; abl_add(jobs, nj, t, t->nr, j, &f); }
            t->nr++;
        }
    }
    if (a->want[3]) {
        abl_table *t = &T[3];
        for (j = 0; j < a->nl; j++) snprintf(t->cols[t->nc++], sizeof t->cols[0], "layer %d", a->l[j]);
        for (i = 0; i < a->nb; i++) {
            snprintf(t->rows[t->nr], sizeof t->rows[0], "B = %d", a->b[i]);
            for (j = 0; j < a->nl; j++) {
                f = a->f; f.kind = ABL_BOTTLENECK; f.mods = present; f.fusion_tokens = a->b[i]; f.fusion_start = a->l[j];
                abl_add(jobs, nj, t, t->nr, j, &f);
            }
            t->nr++;
        }
    }
    if (a->want[4] && d->D[0]) {
        abl_table *t = &T[4];
        abl_default_ks(a, d->D[0]);
        for (j = 0; j < a->nk; j++) snprintf(t->cols[t->nc++], sizeof t->cols[0], "K = %d", a->k[j]);
        for (i = 0; i < 3; i++) {
            const unsigned mods = i == 0 ? MMSPCL_MOD_T | MMSPCL_MOD_A : i == 1 ? MMSPCL_MOD_T | MMSPCL_MOD_V : present;
            if ((mods & present) != mods || (i == 2 && present != 7u)) continue;
            snprintf(t->rows[t->nr], sizeof t->rows[0], "%s pruned against t", i == 0 ? "a" : i == 1 ? "v" : "a and v");
            for (j = 0; j < a->nk; j++) {
                if (d->D[0] % a->k[j]) continue;
                f = a->f; f.kind = ABL_PRUNE; f.mods = mods; f.prune_k = a->k[j];
                abl_add(jobs, nj, t, t->nr, j, &f);
            }
            t->nr++;
        }
    }
}

/* Table 5: MSVE variants on the pooled modalities */
static void abl_msve_table(abl_args *a, const abl_data *d, abl_table *T, abl_job *jobs, int *nj) {
    static const char *const name[6] = {"paper depths, all combinations", "paper depths, t ta tv tav (the paper's final)",
                                        "every combination 2 layers", "every combination one Linear",
                                        "paper depths, k = 1 combination per batch", "tav alone (no vote)"};
    abl_table *t = &T[5];
    int v, c;
    if (!a->want[5]) return;
    snprintf(t->cols[t->nc++], sizeof t->cols[0], "test wF1");
    for (v = 0; v < 6; v++) {
        abl_job j0;
        memset(&j0.m, 0, sizeof j0.m);
        for (c = 0; c < 3; c++) j0.m.dims[c] = d->D[c];
        j0.m.hidden = a->msve_hidden; j0.m.act = MMSPCL_ACT_GELU; j0.m.dropout = 0.1;
        mmspcl_msve_train_defaults(&j0.mt);
        j0.mt.epochs = a->msve_epochs; j0.mt.lr = a->msve_lr; j0.mt.seed = a->f.seed;
        if (v == 1) {
            if (!d->D[0]) continue;
            j0.m.combos = MMSPCL_COMBO(1) | (d->D[1] ? MMSPCL_COMBO(3) : 0) | (d->D[2] ? MMSPCL_COMBO(5) : 0) |
                          (d->D[1] && d->D[2] ? MMSPCL_COMBO(7) : 0);
        }
        if (v == 2 || v == 3) for (c = 1; c < 8; c++) j0.m.depth[c] = v == 2 ? 2 : 1;
        if (v == 4) j0.mt.k = 1;
        if (v == 5) { if (!d->D[0] || !d->D[1] || !d->D[2]) continue; j0.m.combos = MMSPCL_COMBO(7); }
        snprintf(t->rows[t->nr], sizeof t->rows[0], "%s", name[v]);
        {
            abl_job *j = abl_add(jobs, nj, t, t->nr, 0, NULL);
            j->msve = 1; j->m = j0.m; j->mt = j0.mt;
        }
        t->nr++;
    }
}

static void abl_epoch(void *user, int epoch, double loss, double f1, double acc) {
    abl_ui *u = (abl_ui *)user;
    (void)loss; (void)acc;
    if (u->quiet || !u->tty) return;
    fprintf(stderr, "\r[%d/%d] %s: epoch %d/%d, dev wF1 %.2f   ", u->job, u->jobs, u->what, epoch, u->epochs, 100 * f1);
}

static void abl_job_name(const abl_table *T, const abl_job *j, char *out, size_t n) {
    const abl_table *t = &T[j->table];
    snprintf(out, n, "table %d, %s, %s", j->table, t->rows[j->row], t->cols[j->col]);
}

/* every job in order; progress on stderr (a line per run; epochs on a terminal) */
static int abl_run_all(const abl_data *d, abl_table *T, abl_job *jobs, int nj, abl_ui *u) {
    int i;
    mmspcl_error err;
    for (i = 0; i < nj; i++) {
        abl_job *j = &jobs[i];
        abl_result *r = &T[j->table].res[j->row][j->col];
        char what[160];
        double el, left;
        abl_job_name(T, j, what, sizeof what);
        u->job = i + 1; u->what = what; u->run0 = abl_now(); u->epochs = j->msve ? j->mt.epochs : j->f.epochs;
        memset(&err, 0, sizeof err);
        if (j->msve ? abl_msve_run(d, &j->m, &j->mt, r, &err) : abl_fusion_run(d, &j->f, r, abl_epoch, u, &err)) {
            if (u->tty && !u->quiet) fputc('\n', stderr);
            return cli_fail(CMD, "%s: %s", what, err.msg);
        }
        el = abl_now() - u->t0;
        left = el / (i + 1) * (nj - i - 1);
        if (!u->quiet)
            fprintf(stderr, "%s[%d/%d] %s: test wF1 %.2f (dev %.2f, best epoch %d of %d, %zu parameters) %.1f s; %.0f s left\n",
                    u->tty ? "\r" : "", i + 1, nj, what, 100 * r->test_f1, 100 * r->dev_f1, r->best_epoch, r->epochs_run, r->params,
                    abl_now() - u->run0, left);
    }
    return 0;
}

static const char *const abl_title[6] = {"", "", "fusion x modality combination", "bottleneck size x first fusion layer (MBT)",
                                         "cross-modal pruning: pruning modality x head size K", "MSVE variants (pooled vectors)"};
static const char *const abl_rowhead[6] = {"", "", "combination", "fusion tokens", "pruned", "variant"};

static void abl_markdown(FILE *f, const abl_args *a, const abl_data *d, const abl_table *T, const abl_job *jobs, int nj) {
    int ti, i, j;
    fprintf(f, "# mmspcl ablate: %s\n\n", a->features);
    fprintf(f, "%d rows (train %d, dev %d, test %d), %d classes; t %dx%d, a %dx%d, v %dx%d (steps x features); seed %llu.\n",
            d->n, d->count[0], d->count[1], d->count[2], d->C, d->L[0], d->D[0], d->L[1], d->D[1], d->L[2], d->D[2],
            (unsigned long long)a->f.seed);
    fprintf(f, "Fusion runs: %d epochs (patience %d), batch %d, lr %g, d %d, %d heads, %d layers, dropout %g (examples/train_fusion's\n"
               "training); MSVE runs: at most %d epochs, lr %g, hidden %d. Cells: test weighted F1 (%%) at the best dev epoch.\n",
            a->f.epochs, a->f.patience, a->f.batch, a->f.lr, a->f.d, a->f.heads, a->f.layers, a->f.dropout, a->msve_epochs, a->msve_lr,
            a->msve_hidden);
    for (ti = 2; ti <= 5; ti++) {
        const abl_table *t = &T[ti];
        if (!a->want[ti]) continue;
        fprintf(f, "\n## Table %d: %s\n\n| %s |", ti, abl_title[ti], abl_rowhead[ti]);
        for (j = 0; j < t->nc; j++) fprintf(f, " %s |", t->cols[j]);
        fprintf(f, "\n| --- |");
        for (j = 0; j < t->nc; j++) fprintf(f, " --- |");
        fprintf(f, "\n");
        if (!t->nr) fprintf(f, "(no run: %s)\n", ti == 4 ? "pruning needs t and a or v" : "too few modalities");
        for (i = 0; i < t->nr; i++) {
            fprintf(f, "| %s |", t->rows[i]);
            for (j = 0; j < t->nc; j++)
                if (t->ok[i][j]) fprintf(f, " %.2f |", 100 * t->res[i][j].test_f1);
                else fprintf(f, " - |");
            fprintf(f, "\n");
        }
    }
    fprintf(f, "\n## Runs\n\n| table | row | column | parameters | epochs run | best epoch | dev wF1 | test accuracy | test wF1 |\n"
               "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (i = 0; i < nj; i++) {
        const abl_result *r = &T[jobs[i].table].res[jobs[i].row][jobs[i].col];
        fprintf(f, "| %d | %s | %s | %zu | %d | %d | %.2f | %.2f | %.2f |\n", jobs[i].table, T[jobs[i].table].rows[jobs[i].row],
                T[jobs[i].table].cols[jobs[i].col], r->params, r->epochs_run, r->best_epoch, 100 * r->dev_f1, 100 * r->test_acc,
                100 * r->test_f1);
    }
}

static void abl_xml(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else fputc(*s, f);
    }
}

/* one panel of grouped bars (rows = groups, columns = bars), y 0..100 */
static void abl_svg_panel(FILE *f, const abl_table *t, int y0) {
    static const char *const colour[ABL_MAXC] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f"};
    const int W = 760, H = 220, x0 = 60, pw = W - x0 - 20;
    const double gw = t->nr ? (double)pw / t->nr : pw, bw = gw * 0.8 / (t->nc ? t->nc : 1);
    int i, j, g;
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"14\" font-weight=\"bold\">Table %d: ", x0, y0 + 16, t->id);
    abl_xml(f, abl_title[t->id]);
    fprintf(f, " (test weighted F1, %%)</text>\n");
    for (g = 0; g <= 100; g += 25) {
        const double y = y0 + 30 + H * (1 - g / 100.0);
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"%d\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">%d</text>\n",
                x0, y, x0 + pw, y, x0 - 4, y + 3, g);
    }
    for (i = 0; i < t->nr; i++) {
        const double gx = x0 + i * gw + gw * 0.1;
        for (j = 0; j < t->nc; j++) {
            double v, h;
            if (!t->ok[i][j]) continue;
            v = 100 * t->res[i][j].test_f1;
            h = H * v / 100.0;
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>%.2f</title></rect>\n", gx + j * bw,
                    y0 + 30 + H - h, bw * 0.95, h, colour[j], v);
        }
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">", gx + gw * 0.4, y0 + 30 + H + 14);
        abl_xml(f, t->rows[i]);
        fprintf(f, "</text>\n");
    }
    for (j = 0; j < t->nc; j++) {
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\"/><text x=\"%d\" y=\"%d\" font-size=\"11\">", x0 + 120 * j,
                y0 + 30 + H + 24, colour[j], x0 + 14 + 120 * j, y0 + 30 + H + 33);
        abl_xml(f, t->cols[j]);
        fprintf(f, "</text>\n");
    }
}

static void abl_svg(FILE *f, const abl_args *a, const abl_table *T) {
    int ti, n = 0, y = 10;
    for (ti = 2; ti <= 5; ti++) n += a->want[ti];
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"780\" height=\"%d\" font-family=\"sans-serif\">\n"
               "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", 20 + 300 * n);
    for (ti = 2; ti <= 5; ti++) if (a->want[ti]) { abl_svg_panel(f, &T[ti], y); y += 300; }
    fprintf(f, "</svg>\n");
}

int mmspcl_cmd_ablate(int argc, char **argv) {
    abl_args a;
    abl_data d;
    abl_table *T = NULL;
    abl_job *jobs = NULL;
    abl_ui u;
    cli_out md, svg, *outs[2];
    mmspcl_error err;
    char path[2][4200];
    int rc, nj = 0, i;
    memset(&a, 0, sizeof a);
    memset(&d, 0, sizeof d);
    memset(&md, 0, sizeof md);
    memset(&svg, 0, sizeof svg);
    outs[0] = &md; outs[1] = &svg;
    abl_fusion_defaults(&a.f);
    a.tables = "2,3,4,5"; a.msve_epochs = 200; a.msve_hidden = 100; a.msve_lr = 1e-4;
    if ((rc = abl_parse(argc, argv, &a)) != CLI_GO) return rc;
    snprintf(path[0], sizeof path[0], "%s.md", a.out);
    snprintf(path[1], sizeof path[1], "%s.svg", a.out);
    if (abl_data_load(&d, a.features, a.L, a.D, &err)) { abl_data_free(&d); return cli_fail(CMD, "%s", err.msg); }
    rc = 1;
    T = (abl_table *)calloc(6, sizeof *T);
    jobs = (abl_job *)calloc(6 * ABL_MAXR * ABL_MAXC, sizeof *jobs);
    if (!T || !jobs) { cli_fail(CMD, "out of memory"); goto done; }
    for (i = 0; i < 6; i++) T[i].id = i;
    abl_fusion_tables(&a, &d, T, jobs, &nj);
    abl_msve_table(&a, &d, T, jobs, &nj);
    if (!nj) { rc = cli_fail(CMD, "%s: the tables asked for have no run (modalities t %d, a %d, v %d wide)", a.features, d.D[0], d.D[1], d.D[2]); goto done; }
    if (cli_out_open(&md, CMD, path[0]) || cli_out_open(&svg, CMD, path[1])) goto done;
    memset(&u, 0, sizeof u);
    u.quiet = a.quiet; u.tty = isatty(2); u.jobs = nj; u.t0 = abl_now();
    if (!a.quiet)
        fprintf(stderr, "ablate %s: %d rows (train %d, dev %d, test %d), %d classes; %d runs\n", a.features, d.n, d.count[0], d.count[1],
                d.count[2], d.C, nj);
    if (abl_run_all(&d, T, jobs, nj, &u)) goto done;
    abl_markdown(md.f, &a, &d, T, jobs, nj);
    abl_svg(svg.f, &a, T);
    if (cli_outs_commit(outs, 2, CMD)) goto done;   /* both or neither */
    if (!a.quiet) fprintf(stderr, "wrote %s and %s (%.0f s)\n", path[0], path[1], abl_now() - u.t0);
    rc = 0;
done:
    cli_outs_discard(outs, 2);
    abl_data_free(&d);
    free(T); free(jobs);
    return rc;
}
