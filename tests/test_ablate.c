/* mmspcl ablate (tools/cli/cmd_ablate.c, tools/train/ablate.c): on a tiny synthetic alignment
   task (build/align_task) the tables have the paper's shape, and their cells are the numbers a
   direct build/examples/train_fusion run prints with the same options and seed (and, for
   Table 5, build/examples/train_msve on L = 1 features with an extract.txt manifest); the SVG
   holds a panel per table; bad input is refused with a message and leaves no output. Run from
   the repository root after make (it starts build/mmspcl, build/align_task and the examples). */
#define _XOPEN_SOURCE 700 /* mknod */
#include "tests/test.h"
#include <sys/stat.h>
#include <sys/types.h>
#ifdef __linux__
#include <sys/sysmacros.h>   /* makedev */
#endif

#define TMP "build/tests/ablate"
#define MM "build/mmspcl"
#define SHAPE " --len-t 16 --dim-t 8 --len-a 16 --dim-a 6 --len-v 16 --dim-v 4"

static char *g_out, *g_err;
static int sh(const char *fmt, const char *a, const char *b) {
    char cmd[3000];
    snprintf(cmd, sizeof cmd, fmt, a ? a : "", b ? b : "");
    return test_capture(&g_out, &g_err, TMP "/stderr.txt", "%s", cmd);
}
static int exists(const char *p) { struct stat sb; return stat(p, &sb) == 0; }

/* the cell of a Markdown table under "## Table N" in row `row`, column index col (0 = first
   value column) into out; 0 when found */
static int cell(const char *md, int table, const char *row, int col, char *out, size_t n) {
    char head[64], key[128];
    const char *p, *e;
    int k;
    snprintf(head, sizeof head, "## Table %d:", table);
    snprintf(key, sizeof key, "\n| %s |", row);
    if (!(p = strstr(md, head)) || !(p = strstr(p, key))) return -1;
    e = strstr(p + 1, "\n## ");
    if (e && p > e) return -1;
    p += strlen(key);
    for (k = 0; k < col; k++) if (!(p = strchr(p, '|'))) return -1; else p++;
    while (*p == ' ') p++;
    e = strchr(p, ' ');
    if (!e || (size_t)(e - p) >= n) return -1;
    memcpy(out, p, (size_t)(e - p));
    out[e - p] = 0;
    return 0;
}

/* the header line of table N ("| combination | linear | ..."), into out */
static int header(const char *md, int table, char *out, size_t n) {
    char head[64];
    const char *p, *e;
    snprintf(head, sizeof head, "## Table %d:", table);
    if (!(p = strstr(md, head)) || !(p = strstr(p, "\n| ")) || !(e = strchr(p + 1, '\n')) || (size_t)(e - p) >= n) return -1;
    memcpy(out, p + 1, (size_t)(e - p - 1));
    out[e - p - 1] = 0;
    return 0;
}

/* rows of table N (lines starting with "| " after the separator, up to a blank line) */
static int n_rows(const char *md, int table) {
    char head[64];
    const char *p;
    int n = 0;
    snprintf(head, sizeof head, "## Table %d:", table);
    if (!(p = strstr(md, head)) || !(p = strstr(p, "| --- |")) || !(p = strchr(p, '\n'))) return -1;
    for (p++; !strncmp(p, "| ", 2); p = strchr(p, '\n') + 1) n++;
    return n;
}

/* what a train_fusion run with the task's files and extra options prints: parameters, best
   epoch, its dev weighted F1, test accuracy and weighted F1, as "P E D A T" */
static void fusion_value(const char *mods, const char *opts, char *out, size_t n) {
    char cmd[2000], part[400];
    const char *p, *q, *r, *s2;
    int m;
    snprintf(cmd, sizeof cmd, "build/examples/train_fusion --labels " TMP "/d/labels.txt --split " TMP "/d/split.txt %s", opts);
    for (m = 0; mods[m]; m++) {
        const int L = 16, D = mods[m] == 't' ? 8 : mods[m] == 'a' ? 6 : 4;
        snprintf(part, sizeof part, " --%c " TMP "/d/%c.f32 --len-%c %d --dim-%c %d --lens-%c " TMP "/d/lens_%c.txt", mods[m], mods[m],
                 mods[m], L, mods[m], D, mods[m], mods[m]);
        strncat(cmd, part, sizeof cmd - strlen(cmd) - 1);
    }
    out[0] = 0;
    CHECK(sh("%s", cmd, NULL) == 0, "train_fusion %s %s: %s", mods, opts, g_err);
    p = strstr(g_out, " parameters\n");
    q = strstr(g_out, "\nbest epoch ");
    r = strstr(g_out, "\ntest accuracy ");
    s2 = strstr(g_out, "\ntest weighted F1 ");
    if (p && q && r && s2) {
        long params;
        int e;
        double dev, acc, f1;
        while (p > g_out && p[-1] != ' ') p--;
        params = strtol(p, NULL, 10);
        if (sscanf(q, "\nbest epoch %d (dev weighted F1 %lf)", &e, &dev) == 2 && sscanf(r, "\ntest accuracy %lf", &acc) == 1 &&
            sscanf(s2, "\ntest weighted F1 %lf", &f1) == 1)
            snprintf(out, n, "%ld %d %.2f %.2f %.2f", params, e, dev, acc, f1);
    }
}

/* the same from ablate's Runs table, row "| table | row | col |" */
static void runs_value(const char *md, int table, const char *row, const char *col, char *out, size_t n) {
    char key[200];
    const char *p;
    long params;
    int er, e;
    double dev, acc, f1;
    snprintf(key, sizeof key, "\n| %d | %s | %s | ", table, row, col);
    out[0] = 0;
    if ((p = strstr(md, "\n## Runs")) && (p = strstr(p, key)) &&
        sscanf(p + strlen(key), "%ld | %d | %d | %lf | %lf | %lf |", &params, &er, &e, &dev, &acc, &f1) == 6)
        snprintf(out, n, "%ld %d %.2f %.2f %.2f", params, e, dev, acc, f1);
}

/* the table's cell (test weighted F1), and parameters, best epoch, dev F1, test accuracy and F1
   of the Runs table, against a direct train_fusion run */
static void check_same(const char *md, int table, const char *row, int col, const char *colname, const char *mods, const char *opts) {
    char a[32] = "", b[64] = "", c[64] = "";
    CHECK(cell(md, table, row, col, a, sizeof a) == 0, "table %d row '%s' column %d missing", table, row, col);
    runs_value(md, table, row, colname, b, sizeof b);
    fusion_value(mods, opts, c, sizeof c);
    printf("  table %d, %s, %s: ablate %s (params, best epoch, dev F1, test acc, test F1: %s), train_fusion %s %s: %s\n", table, row,
           colname, a, b, mods, opts, c);
    CHECK(b[0] && !strcmp(b, c), "table %d, %s, %s: ablate %s, train_fusion %s", table, row, colname, b, c);
    CHECK(a[0] && strlen(c) > strlen(a) && !strcmp(c + strlen(c) - strlen(a), a), "table %d cell %s is the run's test F1 (%s)", table, a, c);
}

static void test_fusion_tables(void) {
    char *md, h[400];
    CHECK(sh("build/align_task --out " TMP "/d --n 400 --noise 0.3 > /dev/null", NULL, NULL) == 0, "align_task: %s", g_err);
    CHECK(sh(MM " ablate --features " TMP "/d" SHAPE " --tables 2 --epochs 2 -o " TMP "/t2", NULL, NULL) == 0, "ablate --tables 2: %s", g_err);
    CHECK(strstr(g_err, "[12/12] table 2, tav, bottleneck: test wF1") != NULL, "progress: a line per run: %s", g_err);
    md = (char *)test_read_file(TMP "/t2.md", NULL);
    CHECK(md != NULL, "t2.md written");
    if (!md) return;
    CHECK(header(md, 2, h, sizeof h) == 0 && !strcmp(h, "| combination | linear | mult | bottleneck |"), "table 2 header: %s", h);
    CHECK(n_rows(md, 2) == 4 && !strstr(md, "## Table 3"), "table 2: 4 rows (ta, tv, av, tav), no other table: %d", n_rows(md, 2));
    check_same(md, 2, "ta", 1, "mult", "ta", "--fusion mult --epochs 2");
    check_same(md, 2, "tav", 0, "linear", "tav", "--fusion linear --epochs 2");
    check_same(md, 2, "av", 2, "bottleneck", "av", "--fusion bottleneck --epochs 2");
    check_same(md, 2, "tav", 1, "mult", "tav", "--fusion mult --epochs 2");
    free(md);
    md = (char *)test_read_file(TMP "/t2.svg", NULL);
    CHECK(md && !strncmp(md, "<svg xmlns=\"http://www.w3.org/2000/svg\"", 39) && strstr(md, "Table 2: fusion x modality combination") &&
          strstr(md, "</svg>\n") && !strstr(md, "Table 3"), "t2.svg: one panel");
    free(md);
    /* Tables 3 and 4, the small grid */
    CHECK(sh(MM " ablate --features " TMP "/d" SHAPE " --tables 3,4 --quick -q -o " TMP "/t34", NULL, NULL) == 0 && g_err[0] == 0,
          "ablate --tables 3,4 --quick -q: %s", g_err);
    md = (char *)test_read_file(TMP "/t34.md", NULL);
    if (!md) { CHECK(0, "t34.md written"); return; }
    CHECK(header(md, 3, h, sizeof h) == 0 && !strcmp(h, "| fusion tokens | layer 0 | layer 1 |") && n_rows(md, 3) == 2, "table 3: %s", h);
    CHECK(header(md, 4, h, sizeof h) == 0 && !strcmp(h, "| pruned | K = 2 | K = 4 |") && n_rows(md, 4) == 3, "table 4: %s", h);
    check_same(md, 3, "B = 4", 1, "layer 1", "tav", "--fusion bottleneck --fusion-tokens 4 --fusion-start 1 --epochs 3");
    check_same(md, 3, "B = 2", 0, "layer 0", "tav", "--fusion bottleneck --fusion-tokens 2 --fusion-start 0 --epochs 3");
    check_same(md, 4, "a and v pruned against t", 1, "K = 4", "tav", "--fusion prune --prune-k 4 --epochs 3");
    check_same(md, 4, "v pruned against t", 0, "K = 2", "tv", "--fusion prune --prune-k 2 --epochs 3");
    free(md);
}

/* L = 1 features with extract.txt (mmspcl extract's layout): Table 5 against train_msve */
static void test_msve_table(void) {
    enum { N = 150 };
    static float t[N * 5], a[N * 3], v[N * 4];
    char labels[N * 3], split[N * 7], *md = NULL, want[32] = "", got[32] = "", h[200];
    const char *p;
    int i, k, lp = 0, sp = 0;
    unsigned s = 12345;
    for (i = 0; i < N; i++) {
        const int y = i % 3;
        for (k = 0; k < 5; k++) { s = s * 1103515245u + 12345u; t[i * 5 + k] = (float)((s >> 16) % 1000) / 500.0f - 1.0f + (k == y); }
        for (k = 0; k < 3; k++) { s = s * 1103515245u + 12345u; a[i * 3 + k] = (float)((s >> 16) % 1000) / 500.0f - 1.0f + 0.5f * (k == y); }
        for (k = 0; k < 4; k++) { s = s * 1103515245u + 12345u; v[i * 4 + k] = (float)((s >> 16) % 1000) / 500.0f - 1.0f; }
        lp += sprintf(labels + lp, "%d\n", y);
        sp += sprintf(split + sp, "%s\n", i < 100 ? "train" : i < 125 ? "dev" : "test");
    }
    test_run(NULL, "mkdir -p " TMP "/x");
    test_write_file(TMP "/x/t.f32", t, sizeof t);
    test_write_file(TMP "/x/a.f32", a, sizeof a);
    test_write_file(TMP "/x/v.f32", v, sizeof v);
    test_write_file(TMP "/x/labels.txt", labels, (size_t)lp);
    test_write_file(TMP "/x/split.txt", split, (size_t)sp);
    {
        static const char manifest[] = "mmspcl-extract 1\nrows 150\ndim.t 5\ndim.a 3\ndim.v 4\n";
        test_write_file(TMP "/x/extract.txt", manifest, sizeof manifest - 1);
    }
    CHECK(sh(MM " ablate --features " TMP "/x --tables 5 --msve-epochs 6 -q -o " TMP "/t5", NULL, NULL) == 0, "ablate --tables 5: %s", g_err);
    md = (char *)test_read_file(TMP "/t5.md", NULL);
    CHECK(md && header(md, 5, h, sizeof h) == 0 && !strcmp(h, "| variant | test wF1 |") && n_rows(md, 5) == 6, "table 5: 6 variants: %s", h);
    CHECK(md && strstr(md, "t 1x5, a 1x3, v 1x4"), "widths from extract.txt");
    if (md) cell(md, 5, "paper depths, all combinations", 0, got, sizeof got);
    CHECK(sh("build/examples/train_msve --t " TMP "/x/t.f32 --dim-t 5 --a " TMP "/x/a.f32 --dim-a 3 --v " TMP "/x/v.f32 --dim-v 4 "
             "--labels " TMP "/x/labels.txt --split " TMP "/x/split.txt --epochs 6%s%s", NULL, NULL) == 0, "train_msve: %s", g_err);
    if ((p = strstr(g_out, "test, MSVE (all vote)")) && (p = strstr(p, "weighted F1"))) {   /* "weighted F1 %6.2f" */
        p += 11;
        while (*p == ' ') p++;
        snprintf(want, sizeof want, "%.*s", (int)strcspn(p, " "), p);
    }
    printf("  table 5, paper depths, all combinations: ablate %s, train_msve %s\n", got, want);
    CHECK(got[0] && !strcmp(got, want), "table 5 cell %s, train_msve %s", got, want);
    free(md);
}

static void test_refusals(void) {
    CHECK(sh(MM " ablate --features " TMP "/none" SHAPE " -o " TMP "/r", NULL, NULL) == 1 && strstr(g_err, TMP "/none/t.f32") &&
          !exists(TMP "/r.md") && !exists(TMP "/r.svg"), "missing folder: %s", g_err);
    CHECK(sh(MM " ablate --features " TMP "/d" SHAPE " --tables 2,7 -o " TMP "/r", NULL, NULL) == 2 && strstr(g_err, "--tables"),
          "--tables 7: %s", g_err);
    CHECK(sh(MM " ablate --features " TMP "/d" SHAPE " --fusion-layers 2 -o " TMP "/r", NULL, NULL) == 2 && strstr(g_err, "--fusion-layers"),
          "a fusion layer past --layers: %s", g_err);
    CHECK(sh(MM " ablate --features " TMP "/d --len-t 16 --dim-t 9 --len-a 16 --dim-a 6 -o " TMP "/r", NULL, NULL) == 1 &&
          strstr(g_err, "t.f32") && strstr(g_err, "not a whole number of rows"), "a wrong width: %s", g_err);
    CHECK(sh(MM " ablate --features " TMP "/d" SHAPE " --epochs 1 -o " TMP "/no/such/dir/r", NULL, NULL) == 1 && !exists(TMP "/r.md"),
          "an output folder that does not exist fails before any run: %s", g_err);
    CHECK(!strstr(g_err, "[1/"), "no run started");
    CHECK(sh(MM " ablate --features " TMP "/d --len-t 16 --dim-t 8 --tables 2 -o " TMP "/r", NULL, NULL) == 1 && strstr(g_err, "no run") &&
          !exists(TMP "/r.md"), "one modality: table 2 has no run: %s", g_err);
    /* OUT.md and OUT.svg, both or neither: the second's name a folder (refused before any run) or
       a full device (its write fails after the runs); an earlier OUT.md stays byte for byte */
    test_run(NULL, "mkdir -p " TMP "/both.svg");
    test_write_file(TMP "/both.md", "earlier", 7);
    CHECK(sh(MM " ablate --features " TMP "/d" SHAPE " --tables 2 --epochs 1 -o " TMP "/both", NULL, NULL) == 1 &&
          strstr(g_err, "both.svg") && !strstr(g_err, "[1/"), "OUT.svg a folder: refused before any run: %s", g_err);
    CHECK(test_file_is(TMP "/both.md", "earlier"), "OUT.svg a folder: OUT.md was changed");
#ifdef __linux__
    if (geteuid() == 0 && mknod(TMP "/full.svg", S_IFCHR | 0666, makedev(1, 7)) == 0) {
        test_write_file(TMP "/full.md", "earlier", 7);
        CHECK(sh(MM " ablate --features " TMP "/d" SHAPE " --tables 2 --epochs 1 -q -o " TMP "/full", NULL, NULL) == 1 &&
              strstr(g_err, "full.svg"), "OUT.svg a full device: %s", g_err);
        CHECK(test_file_is(TMP "/full.md", "earlier"), "OUT.svg could not be written, but OUT.md was replaced");
        remove(TMP "/full.svg");
    } else
#endif
        printf("not root (or no mknod): the full-device case skipped\n");
    CHECK(!exists(TMP "/both.md.tmp") && test_run(NULL, "ls " TMP " | grep -q 'tmp-'") != 0, "a temporary file was left");
}

int main(void) {
    test_run(NULL, "rm -rf " TMP " && mkdir -p " TMP "/d");
    test_fusion_tables();
    test_msve_table();
    test_refusals();
    free(g_out);
    free(g_err);
    return TEST_END();
}
