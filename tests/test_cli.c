/* build/mmspcl and build/mmspcl-convert as one tool: the conventions of tools/cli/cli.h.
   1. every subcommand (read from `mmspcl --help`'s table, checked against tools/cli/cmd_*.c):
      -h / --help (usage with defaults on stdout, exit 0, = `mmspcl help CMD`), an unknown option
      (exit 2, a message on stderr), --version, every option its usage lists exists, help on a
      full standard output exits 1; the same for mmspcl-convert and the top level;
   2. bad numbers (not a number, trailing junk, out of range) exit 2 naming the option and range;
   3. standard input (-) where a file is read; the OS reason in messages; heads of the right task;
   4. an output that is an input (same path, hard link, symbolic link) is refused and the input
      left byte for byte; an output in a missing folder leaves nothing; a device as output
      survives; train -o FOLDER fails before any training; stale and foreign PATH.tmp files;
      standard output on /dev/full exits 1;
   5. --json is valid UTF-8 and valid JSON (tools/convert/json.h, strict) on a dialogue and a
      CSV with invalid UTF-8 and control characters; classify --json has both tasks'
      probabilities; eval, inspect, tokenize, encode-text, encode-image --json;
   6. classify recognises a MELD CSV by its columns (any order, BOM).
   Uses tests/data (tiny RoBERTa and CLIP, converted here) and weights/meld-text-q8_0.mmw. */
#define _XOPEN_SOURCE 700 /* lstat, mknod */
#include "mmspcl.h"
#include "tests/test.h"
#include "tools/convert/json.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#ifdef __linux__
#include <sys/sysmacros.h>   /* makedev */
#endif
#include <time.h>

#define TMP "build/tests/cli"
#define MM "build/mmspcl"
#define CONV "build/mmspcl-convert"
#define MODEL "weights/meld-text-q8_0.mmw"
#define ROBERTA TMP "/roberta.mmw"
#define CLIP TMP "/clip.mmw"
#define PNG "tests/data/images/clip/clip_224_224.png"

static char *g_out, *g_err;   /* standard output and error of the last sh() */

/* Runs a shell command (stdin from /dev/null unless it redirects it), keeps its stdout and
   stderr in g_out / g_err; returns the exit status. */
#define sh(...) test_capture(&g_out, &g_err, TMP "/stderr.txt", __VA_ARGS__)

static int exists(const char *p) { struct stat sb; return lstat(p, &sb) == 0; }

static int copy_file(const char *from, const char *to) {
    size_t n;
    unsigned char *b = test_read_file(from, &n);
    int rc = b ? test_write_file(to, b, n) : -1;
    free(b);
    return rc;
}

static int same_bytes(const char *a, const char *b) {
    size_t na, nb;
    unsigned char *x = test_read_file(a, &na), *y = test_read_file(b, &nb);
    int same = x && y && na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

/* ---- UTF-8 and JSON validity ---------------------------------------------------------------- */
/* 1 when s[0..n) is valid UTF-8 (RFC 3629), checked here independently of the tools */
static int valid_utf8(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        const unsigned c = s[i];
        unsigned long cp;
        size_t k, len;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
        else return 0;
        if (i + len > n) return 0;
        for (k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += len;
    }
    return 1;
}

/* g_out as JSON: valid UTF-8, no raw control character, parsed strictly (NULL: not JSON) */
static json_value *parse_out(const char *what) {
    char jerr[256];
    json_value *v;
    size_t i, n = strlen(g_out);
    int raw_ctl = 0;
    CHECK(valid_utf8((const unsigned char *)g_out, n), "%s: output is not valid UTF-8", what);
    for (i = 0; i < n; i++) raw_ctl |= (unsigned char)g_out[i] < 0x20 && g_out[i] != '\n' && g_out[i] != ' ';
    CHECK(!raw_ctl, "%s: a raw control character in the JSON", what);
    v = json_parse(g_out, n, jerr, sizeof jerr);
    CHECK(v != NULL, "%s: not valid JSON: %s\n%.400s", what, jerr, g_out);
    return v;
}

/* ---- 1. conventions, walked over every subcommand ------------------------------------------ */
#define MAX_CMDS 32
static char g_cmds[MAX_CMDS][32];
static int g_ncmds;

/* the command table, as `mmspcl --help` prints it ("  NAME  summary" under "commands:") */
static void read_commands(void) {
    const char *p;
    CHECK(sh(MM " --help") == 0 && g_err[0] == 0, "mmspcl --help: rc or stderr: %s", g_err);
    p = strstr(g_out, "commands:\n");
    CHECK(p != NULL, "mmspcl --help has no commands: section");
    if (!p) return;
    for (p += 10; *p == ' ' && g_ncmds < MAX_CMDS; p = strchr(p, '\n') + 1) {
        if (sscanf(p, " %31s", g_cmds[g_ncmds]) == 1) g_ncmds++;
        if (!strchr(p, '\n')) break;
    }
    CHECK(g_ncmds >= 8, "only %d commands in mmspcl --help", g_ncmds);
}

/* every tools/cli/cmd_NAME.c is a command of the table (NAME with - for _), and back */
static void check_command_files(void) {
    DIR *d = opendir("tools/cli");
    struct dirent *e;
    int files = 0, i;
    CHECK(d != NULL, "cannot list tools/cli");
    if (!d) return;
    while ((e = readdir(d))) {
        char name[64];
        size_t n = strlen(e->d_name), k;
        int found = 0;
        if (strncmp(e->d_name, "cmd_", 4) || n < 7 || strcmp(e->d_name + n - 2, ".c") || n - 6 >= sizeof name) continue;
        memcpy(name, e->d_name + 4, n - 6);
        name[n - 6] = 0;
        for (k = 0; name[k]; k++) if (name[k] == '_') name[k] = '-';
        for (i = 0; i < g_ncmds; i++) found |= !strcmp(g_cmds[i], name);
        CHECK(found, "tools/cli/%s: command '%s' is not in mmspcl --help", e->d_name, name);
        files++;
    }
    closedir(d);
    CHECK(files == g_ncmds, "%d cmd_*.c files, %d commands in the table", files, g_ncmds);
}

/* every spelling of every option the usage lists is accepted (no "unknown option") */
static void check_listed_options(const char *cmd, const char *help) {
    const char *p = strstr(help, "\noptions:\n");
    int n = 0;
    CHECK(p != NULL, "%s --help: no options: section", cmd);
    if (!p) return;
    for (p += 10; p && *p == ' '; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        char line[256], *s, *tok;
        size_t len = strcspn(p, "\n");
        if (len >= sizeof line || p[2] != '-') continue;
        memcpy(line, p, len);
        line[len] = 0;
        s = line + 2;
        /* "  -m, --model FILE   help": the spellings are the words before the first that is
           neither an option nor followed by "," */
        for (tok = strtok(s, " "); tok && tok[0] == '-'; tok = strtok(NULL, " ")) {
            char opt[64];
            size_t tl = strlen(tok);
            int comma = tl && tok[tl - 1] == ',';
            if (comma) tok[tl - 1] = 0;
            snprintf(opt, sizeof opt, "%s", tok);
            if (strcmp(opt, "-h") && strcmp(opt, "--help") && strcmp(opt, "--version")) {
                sh(MM " %s %s 1", cmd, opt);
                CHECK(!strstr(g_err, "unknown option"), "%s %s (listed in its usage) is unknown: %s", cmd, opt, g_err);
                n++;
            }
            if (!comma) break;
        }
    }
    CHECK(n > 0 || !strcmp(cmd, "inspect"), "%s: no options found in the usage", cmd);
}

static void test_conventions(void) {
    int i;
    char version[64], *help;
    snprintf(version, sizeof version, "mmspcl %s\n", MMSPCL_VERSION);
    read_commands();
    check_command_files();
    for (i = 0; i < g_ncmds; i++) {
        const char *c = g_cmds[i];
        char want[1100];
        snprintf(want, sizeof want, "usage: mmspcl %s ", c);
        CHECK(sh(MM " %s --help", c) == 0 && !strncmp(g_out, want, strlen(want)) && g_err[0] == 0,
              "%s --help: rc, usage on stdout, nothing on stderr: %.80s / %s", c, g_out, g_err);
        CHECK(strstr(g_out, "--help") && strstr(g_out, "--version"), "%s --help does not list -h/--help and --version", c);
        /* inspect and tokenize have flags and inputs only: nothing with a default */
        CHECK(strstr(g_out, "default") || !strcmp(c, "inspect") || !strcmp(c, "tokenize"), "%s --help shows no defaults", c);
        help = g_out;
        g_out = NULL;
        CHECK(sh(MM " %s -h", c) == 0 && !strcmp(g_out, help), "%s -h differs from --help", c);
        CHECK(sh(MM " help %s", c) == 0 && !strcmp(g_out, help), "mmspcl help %s differs from %s --help", c, c);
        CHECK(sh(MM " %s --bogus-option", c) == 2 && g_out[0] == 0 && strstr(g_err, "unknown option") && strstr(g_err, "--bogus-option"),
              "%s --bogus-option: want exit 2, a message on stderr: rc, out '%s', err '%s'", c, g_out, g_err);
        CHECK(sh(MM " %s --version", c) == 0 && !strcmp(g_out, version), "%s --version: '%s'", c, g_out);
        CHECK(sh(MM " %s --help > /dev/full", c) == 1 && strstr(g_err, "standard output"), "%s --help > /dev/full: %s", c, g_err);
        check_listed_options(c, help);
        free(help);
    }
    /* the top level */
    CHECK(sh(MM) == 2 && strstr(g_err, "usage"), "mmspcl alone: usage on stderr, exit 2");
    CHECK(sh(MM " --version") == 0 && !strcmp(g_out, version), "mmspcl --version: '%s'", g_out);
    CHECK(sh(MM " no-such-command") == 2 && strstr(g_err, "unknown command"), "unknown command: %s", g_err);
    CHECK(sh(MM " --bogus") == 2 && strstr(g_err, "unknown option"), "mmspcl --bogus: %s", g_err);
    CHECK(sh(MM " help no-such-command") == 2, "mmspcl help no-such-command: exit 2");
    CHECK(sh(MM " help > /dev/full") == 1 && sh(MM " --version > /dev/full") == 1, "top-level output to /dev/full: exit 1");
    sh(MM " --help");
    {   /* the top-level usage names only options that exist */
        const char *p = g_out;
        char opts[16][32];
        int n = 0, k;
        while ((p = strstr(p, " --")) && n < 16) {
            if (sscanf(p + 1, "%31[-a-z]", opts[n]) == 1 && strlen(opts[n]) > 2) n++;
            p += 3;
        }
        for (k = 0; k < n; k++) CHECK(sh(MM " %s", opts[k]) == 0, "mmspcl --help lists %s, which fails", opts[k]);
    }
    /* the converter */
    CHECK(sh(CONV " --help") == 0 && !strncmp(g_out, "usage: mmspcl-convert", 21) && strstr(g_out, "default") && g_err[0] == 0,
          "mmspcl-convert --help: %s", g_err);
    CHECK(sh(CONV " -h") == 0 && strstr(g_out, "usage:"), "mmspcl-convert -h");
    CHECK(sh(CONV " --version") == 0 && !strcmp(g_out, version), "mmspcl-convert --version: '%s'", g_out);
    CHECK(sh(CONV " --bogus x y") == 2 && g_out[0] == 0 && strstr(g_err, "unknown option"), "mmspcl-convert --bogus: %s", g_err);
    CHECK(sh(CONV " --help > /dev/full") == 1, "mmspcl-convert --help > /dev/full: exit 1");
    CHECK(sh(CONV " tests/data/roberta-tiny " TMP "/x.mmw --type q5_1") == 2 && !exists(TMP "/x.mmw"), "--type q5_1: exit 2");
    CHECK(sh(CONV " tests/data/roberta-tiny") == 2, "mmspcl-convert with one argument: exit 2");
}

/* ---- 2. numbers ------------------------------------------------------------------------------ */
/* args must be refused with exit 2 and a message naming opt and containing range */
static void bad(const char *args, const char *opt, const char *range) {
    int rc = sh(MM " %s", args);
    CHECK(rc == 2 && strstr(g_err, opt) && (!range || strstr(g_err, range)) && g_out[0] == 0,
          "'%s': want exit 2 naming %s and %s; rc %d, stderr: %s", args, opt, range ? range : "-", rc, g_err);
}

static void test_numbers(void) {
    const char *t = "train --meld " TMP "/meld -o " TMP "/num.mmw";
    char a[512];
#define TRAIN_BAD(extra, opt, range) (snprintf(a, sizeof a, "%s %s", t, extra), bad(a, opt, range))
    TRAIN_BAD("--lr abc", "--lr", "1e-08");
    TRAIN_BAD("--lr 0", "--lr", "1e-08");
    TRAIN_BAD("--lr nan", "--lr", NULL);
    TRAIN_BAD("--seed abc", "--seed", "18446744073709551615");
    TRAIN_BAD("--seed -1", "--seed", NULL);
    TRAIN_BAD("--limit -3", "--limit", "2147483647");
    TRAIN_BAD("--limit 0", "--limit", "1");
    TRAIN_BAD("--batch 0", "--batch", "256");
    TRAIN_BAD("--batch 257", "--batch", "256");
    TRAIN_BAD("--batch 12abc", "--batch", "256");
    TRAIN_BAD("--batch ' 12'", "--batch", NULL);
    TRAIN_BAD("--hidden 99999999999999999999", "--hidden", "4096");
    TRAIN_BAD("--epochs 1.5", "--epochs", NULL);
    TRAIN_BAD("--msve-dropout 1", "--msve-dropout", "0.95");
    TRAIN_BAD("--curriculum 2", "--curriculum", NULL);
    TRAIN_BAD("--hidden 100 --heads 3", "--heads", NULL);
    TRAIN_BAD("--batch", "--batch", NULL);
    bad("bench -m " ROBERTA " --seq 12abc", "--seq", "65536");
    bad("bench -m " ROBERTA " --threads 999999", "--threads", "1024");
    bad("bench -m " ROBERTA " --threads 0", "--threads", "1024");
    bad("bench -m " ROBERTA " --batch -1", "--batch", NULL);
    bad("bench -m " ROBERTA " --reps 0", "--reps", NULL);
    bad("bench -m " ROBERTA " --warmup x", "--warmup", NULL);
    bad("bench -m " ROBERTA " --matmul 12x", "--matmul", NULL);
    bad("bench -m " ROBERTA " --matmul 0x64x64", "--matmul", NULL);
    bad("bench -m " ROBERTA " --matmul 4x16x4", "--matmul", "32");
    bad("encode-text -m " ROBERTA " --ids '0 12abc 2'", "--ids", NULL);
    bad("encode-text -m " ROBERTA " --ids '0 -1 2'", "--ids", NULL);
    bad("classify -m " MODEL " --head bogus examples/dialogue.txt", "--head", "view.t");
    bad("classify -m " MODEL " --sentiment-head view.t examples/dialogue.txt", "--sentiment-head", "sentiment, lr");
    bad("classify -m " MODEL " --format xml examples/dialogue.txt", "--format", NULL);
    bad("eval -m " MODEL " --csv " TMP "/labels.csv --sentiment --head view.t", "--head", "sentiment, lr");
    bad("eval -m " MODEL " --csv " TMP "/labels.csv --head sentiment", "--head", "view.t");
    bad("classify -m - -", "standard input", NULL);
    bad("tokenize --vocab - --merges - --text hi", "standard input", NULL);
#undef TRAIN_BAD
}

/* ---- 3. standard input, messages, heads ------------------------------------------------------ */
static void test_inputs(void) {
    char *want;
    CHECK(sh(MM " classify -m " MODEL " examples/dialogue.txt") == 0, "classify: %s", g_err);
    want = g_out;
    g_out = NULL;
    CHECK(sh(MM " classify -m " MODEL " - < examples/dialogue.txt") == 0 && want && g_out && !strcmp(g_out, want), "classify - differs");
    CHECK(sh(MM " classify -m - examples/dialogue.txt < " MODEL) == 0 && want && g_out && !strcmp(g_out, want), "classify -m - differs: %s", g_err);
    free(want);
    CHECK(sh(MM " eval -m " MODEL " --csv " TMP "/labels.csv") == 0, "eval: %s", g_err);
    want = g_out;
    g_out = NULL;
    CHECK(sh(MM " eval -m " MODEL " --csv - < " TMP "/labels.csv") == 0 && strstr(g_out, "weighted_f1="), "eval --csv -: %s", g_err);
    {   /* compare from the first table row (the header line names the input) */
        const char *got = g_out ? strstr(g_out, "class ") : NULL, *ref = want ? strstr(want, "class ") : NULL;
        CHECK(got && ref && !strcmp(got, ref), "eval --csv - scores differently");
    }
    free(want);
    CHECK(sh(MM " inspect - < " ROBERTA) == 0 && strstr(g_out, "tensors ("), "inspect -: %s", g_err);
    CHECK(sh(MM " encode-image -m " CLIP " --image - --json < " PNG) == 0, "encode-image --image -: %s", g_err);
    CHECK(sh(MM " tokenize -m " MODEL " --file - < examples/dialogue.txt") == 0 && strchr(g_out, '\n'), "tokenize --file -: %s", g_err);
    /* the OS reason */
    CHECK(sh(MM " classify -m " MODEL " " TMP "/missing.txt") == 1 && strstr(g_err, "missing.txt") && strstr(g_err, strerror(ENOENT)),
          "a missing file: %s", g_err);
    CHECK(sh(MM " classify -m " MODEL " " TMP) == 1 && strstr(g_err, strerror(EISDIR)), "a folder as input: %s", g_err);
    CHECK(sh(MM " inspect " TMP "/missing.mmw") == 1 && strstr(g_err, strerror(ENOENT)), "inspect a missing file: %s", g_err);
    CHECK(sh(MM " eval -m " TMP "/missing.mmw --csv " TMP "/labels.csv") == 1 && strstr(g_err, strerror(ENOENT)), "eval -m missing: %s", g_err);
    CHECK(sh(MM " tokenize --vocab " TMP "/missing.json --merges " TMP "/m.txt --text a") == 1 && strstr(g_err, strerror(ENOENT)),
          "tokenize --vocab missing: %s", g_err);
    /* the head scored is the head named */
    CHECK(sh(MM " eval -m " MODEL " --csv " TMP "/labels.csv --sentiment --head lr") == 0 && strstr(g_out, "task: sentiment, head: lr"),
          "eval --sentiment --head lr: %.200s", g_out);
    CHECK(sh(MM " eval -m " MODEL " --csv " TMP "/labels.csv --head view.t") == 0 && strstr(g_out, "task: emotion, head: view.t"),
          "eval --head view.t: %.200s", g_out);
    /* --all-heads: the heads the model has, one note (not an error) naming the ones it lacks */
    CHECK(sh(MM " eval -m " MODEL " --csv " TMP "/labels.csv --all-heads --sentiment") == 0, "eval --all-heads: %s", g_err);
    {
        int lines = 0, err_lines = 0;
        const char *p;
        for (p = g_out; p && (p = strstr(p, "head=")); p++) lines += p == g_out || p[-1] == '\n';
        for (p = g_err; p && *p; p++) err_lines += *p == '\n';
        CHECK(lines == 9 && !strstr(g_out, "no emotion head") && !strstr(g_out, "no sentiment head") && !strstr(g_out, "classifier:"),
              "eval --all-heads: 9 head lines, no error line (%d): %.300s", lines, g_out);
        CHECK(!strstr(g_out, "head=view.v") && strstr(g_out, "head=linear    task=emotion") && strstr(g_out, "head=linear    task=sentiment"),
              "eval --all-heads: the lacking head is not scored, the linear heads are: %.300s", g_out);
        CHECK(err_lines == 1 && strstr(g_err, "mmspcl eval: note: " MODEL " lacks view.v (emotion); the heads it has are scored"),
              "eval --all-heads: one note naming the lacking heads: %s", g_err);
        CHECK(strstr(g_out, "task: sentiment, head: "), "eval --all-heads --sentiment: the sentiment report follows: %.300s", g_out);
    }
}

/* ---- 4. outputs ------------------------------------------------------------------------------ */
/* cmd (with %s for the output) must be refused with exit 2 and input left as saved */
static void refused(const char *label, const char *cmd, const char *input, const char *saved) {
    int rc = sh("%s", cmd);
    CHECK(rc == 2 && strstr(g_err, "same file"), "%s: want exit 2 'same file'; rc %d: %s", label, rc, g_err);
    CHECK(same_bytes(input, saved), "%s: the input %s changed", label, input);
}

static void test_same_file(void) {
    copy_file(PNG, TMP "/a.png");
    copy_file(PNG, TMP "/a.png.saved");
    copy_file(ROBERTA, TMP "/r.saved");
    copy_file(TMP "/labels.csv", TMP "/labels.saved");
    refused("encode-image --image a.png -o a.png", MM " encode-image -m " CLIP " --image " TMP "/a.png -o " TMP "/a.png", TMP "/a.png", TMP "/a.png.saved");
    refused("encode-image --dump-pixels = --image", MM " encode-image -m " CLIP " --image " TMP "/a.png --dump-pixels ./" TMP "/a.png",
            TMP "/a.png", TMP "/a.png.saved");
    refused("encode-image --image - -o the file on standard input", MM " encode-image -m " CLIP " --image - -o " TMP "/a.png < " TMP "/a.png",
            TMP "/a.png", TMP "/a.png.saved");
    refused("encode-text -o = -m", MM " encode-text -m " ROBERTA " --ids '0 5 2' -o " ROBERTA, ROBERTA, TMP "/r.saved");
    test_run(NULL, "ln -f " ROBERTA " " TMP "/hard.mmw && ln -sf roberta.mmw " TMP "/soft.mmw");
    refused("encode-text -o a hard link of -m", MM " encode-text -m " ROBERTA " --ids '0 5 2' -o " TMP "/hard.mmw", ROBERTA, TMP "/r.saved");
    refused("encode-text -o a symbolic link to -m", MM " encode-text -m " ROBERTA " --ids '0 5 2' -o " TMP "/soft.mmw", ROBERTA, TMP "/r.saved");
    refused("bench -o = -m", MM " bench -m " ROBERTA " --reps 1 -o " ROBERTA, ROBERTA, TMP "/r.saved");
    refused("eval --svg = --csv", MM " eval -m " MODEL " --csv " TMP "/labels.csv --svg " TMP "/labels.csv", TMP "/labels.csv", TMP "/labels.saved");
    refused("train -o = a --meld file", MM " train --meld " TMP "/meld -o " TMP "/meld/train_sent_emo.csv", TMP "/meld/train_sent_emo.csv",
            TMP "/labels.saved");
    refused("train -o = --resume", MM " train --meld " TMP "/meld -o " ROBERTA " --resume " ROBERTA, ROBERTA, TMP "/r.saved");
    refused("train --q8 = --resume", MM " train --meld " TMP "/meld -o " TMP "/q.mmw --q8 " ROBERTA " --resume " ROBERTA, ROBERTA, TMP "/r.saved");
    CHECK(sh(MM " train --meld " TMP "/meld -o " TMP "/q.mmw --q8 " TMP "/q.mmw") == 2 && strstr(g_err, "same file"), "--q8 = -o: %s", g_err);
    /* the converter: OUT against every file it reads */
    test_run(NULL, "rm -rf " TMP "/rt && cp -r tests/data/roberta-tiny " TMP "/rt && cp " TMP "/rt/model.safetensors " TMP "/st.saved"
                   " && cp " TMP "/rt/config.json " TMP "/cfg.saved && ln -f " TMP "/rt/config.json " TMP "/cfg-link.json");
    refused("mmspcl-convert D D/model.safetensors", CONV " " TMP "/rt " TMP "/rt/model.safetensors", TMP "/rt/model.safetensors", TMP "/st.saved");
    refused("mmspcl-convert D/model.safetensors D/model.safetensors", CONV " " TMP "/rt/model.safetensors " TMP "/rt/model.safetensors",
            TMP "/rt/model.safetensors", TMP "/st.saved");
    refused("mmspcl-convert D D/config.json (hard link)", CONV " " TMP "/rt " TMP "/cfg-link.json", TMP "/rt/config.json", TMP "/cfg.saved");
    CHECK(test_count_names(TMP "/rt", ".tmp") == 0, "mmspcl-convert left a .tmp in the source folder");
}

static void test_outputs(void) {
    time_t t0;
    static const char partial[] = "MMSPCLWF partial";
    /* an output in a missing folder: exit 1, nothing left */
    CHECK(sh(MM " encode-text -m " ROBERTA " --ids '0 5 2' -o " TMP "/nodir/x.f32") == 1 && strstr(g_err, strerror(ENOENT)), "%s", g_err);
    CHECK(sh(MM " encode-image -m " CLIP " --image " PNG " -o " TMP "/nodir/x.f32") == 1, "encode-image -o nodir/: %s", g_err);
    CHECK(sh(MM " encode-image -m " CLIP " --image " PNG " --dump-pixels " TMP "/nodir/p.f32") == 1, "--dump-pixels nodir/: %s", g_err);
    CHECK(sh(MM " eval -m " MODEL " --csv " TMP "/labels.csv --svg " TMP "/nodir/x.svg") == 1 && g_out[0] == 0, "eval --svg nodir/: %s", g_err);
    CHECK(sh(MM " bench -m " ROBERTA " --reps 1 --seq 8 -o " TMP "/nodir/x.f32") == 1, "bench -o nodir/: %s", g_err);
    CHECK(sh(CONV " tests/data/roberta-tiny " TMP "/nodir/x.mmw --quiet") == 1, "convert to nodir/: %s", g_err);
    CHECK(sh(MM " train --meld " TMP "/meld -o " TMP "/nodir/m.mmw") == 1, "train -o nodir/: %s", g_err);
    CHECK(!exists(TMP "/nodir") && test_count_names(TMP, "nodir") == 0, "an output in a missing folder left something");
    /* a good output leaves no temporary file, and is the same on standard output */
    CHECK(sh(MM " encode-text -m " ROBERTA " --ids '0 5 2' -o " TMP "/ok.f32") == 0 && exists(TMP "/ok.f32"), "encode-text -o: %s", g_err);
    CHECK(sh(MM " encode-text -m " ROBERTA " --ids '0 5 2' -o - > " TMP "/ok2.f32") == 0 && same_bytes(TMP "/ok.f32", TMP "/ok2.f32"),
          "encode-text -o - differs from -o FILE");
    CHECK(sh(MM " eval -m " MODEL " --csv " TMP "/labels.csv --svg " TMP "/ok.svg") == 0 && exists(TMP "/ok.svg"), "eval --svg: %s", g_err);
    CHECK(test_count_names(TMP, ".tmp-") == 0, "a temporary file was left behind");
    /* a device as output: written in place, never removed (a private node of /dev/full, root only) */
#ifdef __linux__
    if (geteuid() == 0 && mknod(TMP "/full", S_IFCHR | 0666, makedev(1, 7)) == 0) {
        struct stat sb;
        CHECK(sh(MM " encode-text -m " ROBERTA " --ids '0 5 2' -o " TMP "/full") == 1 && strstr(g_err, strerror(ENOSPC)),
              "-o a full device: %s", g_err);
        CHECK(stat(TMP "/full", &sb) == 0 && S_ISCHR(sb.st_mode), "the device given as output is gone");
        CHECK(sh(MM " eval -m " MODEL " --csv " TMP "/labels.csv --svg " TMP "/full") == 1, "--svg a full device: %s", g_err);
        CHECK(stat(TMP "/full", &sb) == 0 && S_ISCHR(sb.st_mode), "the device given as --svg is gone");
        CHECK(sh(CONV " tests/data/roberta-tiny " TMP "/full --quiet") == 1 && stat(TMP "/full", &sb) == 0 && S_ISCHR(sb.st_mode),
              "mmspcl-convert to a device: %s", g_err);
        CHECK(sh(MM " train --meld " TMP "/meld -o " TMP "/full") == 1 && stat(TMP "/full", &sb) == 0 && S_ISCHR(sb.st_mode),
              "train -o a device: %s", g_err);
        /* two outputs, both or neither: the second fails after the work, the first stays as it was */
        test_write_file(TMP "/vec.f32", "earlier", 7);
        CHECK(sh(MM " encode-image -m " CLIP " --image " PNG " -o " TMP "/vec.f32 --dump-pixels " TMP "/full") == 1 &&
              strstr(g_err, strerror(ENOSPC)), "encode-image --dump-pixels a full device: %s", g_err);
        CHECK(test_file_is(TMP "/vec.f32", "earlier"), "encode-image: -o was replaced although --dump-pixels failed");
        CHECK(test_count_names(TMP, "full.") == 0 && test_count_names(TMP, "vec.f32.tmp") == 0, "a temporary file of the device output was left");
    } else
#endif
    {
        printf("not root (or no mknod): the device-output checks skipped\n");
    }
    /* train -o FOLDER: refused before any training, no FOLDER.ckpt */
    test_run(NULL, "mkdir -p " TMP "/adir");
    t0 = time(NULL);
    CHECK(sh(MM " train --meld " TMP "/meld -o " TMP "/adir") == 1 && strstr(g_err, strerror(EISDIR)), "train -o FOLDER: %s", g_err);
    CHECK(time(NULL) - t0 < 3 && !exists(TMP "/adir.ckpt") && !exists(TMP "/adir.tmp"), "train -o FOLDER trained or left a file");
    test_write_file(TMP "/m.mmw", "earlier", 7);
    CHECK(sh(MM " train --meld " TMP "/meld -o " TMP "/m.mmw --q8 " TMP "/adir") == 1 && strstr(g_err, strerror(EISDIR)) &&
          !exists(TMP "/m.mmw.ckpt") && !exists(TMP "/m.mmw.tmp"),
          "train --q8 FOLDER: %s", g_err);
    CHECK(test_file_is(TMP "/m.mmw", "earlier"), "train --q8 FOLDER: an earlier -o file was changed");
    remove(TMP "/m.mmw");
    /* PATH.tmp of an interrupted write is removed; anyone else's is refused and kept */
    test_write_file(TMP "/st.mmw.tmp", "user data", 9);
    CHECK(sh(MM " train --meld " TMP "/meld -o " TMP "/st.mmw") == 1 && strstr(g_err, "st.mmw.tmp"), "a foreign st.mmw.tmp: %s", g_err);
    CHECK(exists(TMP "/st.mmw.tmp"), "a foreign PATH.tmp was removed");
    remove(TMP "/st.mmw.tmp");
    test_write_file(TMP "/st.mmw.ckpt.tmp", partial, sizeof partial - 1);
    sh(MM " train --meld " TMP "/meld -o " TMP "/st.mmw");   /* fails later: the tiny CSV is no MELD data */
    CHECK(!exists(TMP "/st.mmw.ckpt.tmp") && strstr(g_err, "interrupted"), "a stale MODEL.ckpt.tmp was kept: %s", g_err);
    test_write_file(TMP "/conv.mmw.tmp", partial, sizeof partial - 1);
    CHECK(sh(CONV " tests/data/roberta-tiny " TMP "/conv.mmw") == 0 && !exists(TMP "/conv.mmw.tmp") && exists(TMP "/conv.mmw"),
          "mmspcl-convert with a stale OUT.tmp: %s", g_err);
    test_write_file(TMP "/conv2.mmw.tmp", "keep me", 7);
    CHECK(sh(CONV " tests/data/roberta-tiny " TMP "/conv2.mmw --quiet") == 1 && exists(TMP "/conv2.mmw.tmp") && !exists(TMP "/conv2.mmw"),
          "mmspcl-convert with a foreign OUT.tmp: %s", g_err);
    /* standard output on a full device: exit 1 with a message */
    {
        static const char *const cmds[] = {
            "classify -m " MODEL " examples/dialogue.txt", "classify -m " MODEL " --json examples/dialogue.txt",
            "eval -m " MODEL " --csv " TMP "/labels.csv", "eval -m " MODEL " --csv " TMP "/labels.csv --json",
            "inspect " ROBERTA, "inspect --json " ROBERTA, "help", "help classify", "--version", "encode-text -m " ROBERTA " --ids '0 5 2'",
            "encode-text -m " ROBERTA " --ids '0 5 2' -o -", "encode-image -m " CLIP " --image " PNG,
            "encode-image -m " CLIP " --image " PNG " --json", "tokenize -m " MODEL " --text hello",
            "bench -m " ROBERTA " --reps 1 --warmup 0 --seq 8"};
        size_t k;
        for (k = 0; k < sizeof cmds / sizeof cmds[0]; k++)
            CHECK(sh(MM " %s > /dev/full", cmds[k]) == 1 && strstr(g_err, "standard output") && strstr(g_err, strerror(ENOSPC)),
                  "%s > /dev/full: exit status or message: %s", cmds[k], g_err);
    }
}

/* ---- 5, 6. JSON and CSV detection ------------------------------------------------------------ */
/* the array of classify --json: n objects, each with both tasks' probabilities summing to 1 */
static void check_classify_json(const char *what, int n_want, const char *speaker0) {
    json_value *v = parse_out(what);
    size_t i;
    if (!v) return;
    CHECK(v->type == JSON_ARRAY && (int)v->count == n_want, "%s: %d objects, want %d", what, (int)v->count, n_want);
    for (i = 0; v->type == JSON_ARRAY && i < v->count; i++) {
        const json_value *o = &v->items[i], *ep = json_get(o, "emotion_probs"), *sp = json_get(o, "sentiment_probs");
        double se = 0, ss = 0;
        size_t k;
        CHECK(ep && ep->type == JSON_OBJECT && ep->count == 7 && sp && sp->type == JSON_OBJECT && sp->count == 3,
              "%s[%d]: emotion_probs (7) and sentiment_probs (3)", what, (int)i);
        for (k = 0; ep && k < ep->count; k++) se += ep->items[k].number;
        for (k = 0; sp && k < sp->count; k++) ss += sp->items[k].number;
        CHECK(fabs(se - 1) < 2e-3 && fabs(ss - 1) < 2e-3, "%s[%d]: probabilities sum to %g and %g", what, (int)i, se, ss);
        CHECK(json_get(o, "utterance") && json_get(o, "utterance")->type == JSON_STRING && json_get(o, "sentiment") &&
              json_get(o, "sentiment_confidence"), "%s[%d]: fields", what, (int)i);
    }
    if (speaker0 && v->type == JSON_ARRAY && v->count) {
        const json_value *s = json_get(&v->items[0], "speaker");
        CHECK(s && s->type == JSON_STRING && !strcmp(s->str, speaker0), "%s: first speaker '%s', want '%s'", what,
              s && s->type == JSON_STRING ? s->str : "?", speaker0);
    }
    json_free(v);
}

static void test_json(void) {
    /* invalid UTF-8 (a lone Latin-1 byte, FF FE, a bad continuation, a surrogate, over U+10FFFF, a
       truncated sequence), control characters, quotes and backslashes */
    static const char dlg[] = "Ann: caf\xe9 \xff\xfe ok \x01\x1b end\n"
                              "B\x7f" "ob: \xc3\x28 \xed\xa0\x80 \xf4\x90\x80\x80 tab\there \"q\" \\ back\r\n"
                              "\n"
                              "C\xe2\x82: truncated \xe2\x82\n"
                              "Dee: \xc0\xaf overlong \xe0\x80\xaf and fine \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\n";
    static const char csv[] = "\xEF\xBB\xBF" "Speaker,Emotion,Utterance\r\nJoey,joy,\"Hi \xff, \"\"you\"\"\"\r\nRoss,anger,\"Line\nbreak \x02\"\r\n";
    static const char csv2[] = "Utterance,Speaker\nHello there,Monica\n";
    json_value *v;
    test_write_file(TMP "/bad.txt", dlg, sizeof dlg - 1);
    test_write_file(TMP "/cols.csv", csv, sizeof csv - 1);
    test_write_file(TMP "/dyadic.csv", csv2, sizeof csv2 - 1);
    CHECK(sh(MM " classify -m " MODEL " --json " TMP "/bad.txt") == 0, "classify --json bad.txt: %s", g_err);
    check_classify_json("classify --json on invalid UTF-8", 4, "Ann");
    CHECK(strstr(g_out, "caf\xEF\xBF\xBD") && strstr(g_out, "\\u0001") && strstr(g_out, "\\\"q\\\""), "U+FFFD / escapes missing");
    CHECK(sh(MM " classify -m " MODEL " " TMP "/bad.txt") == 0, "classify (text) on invalid UTF-8: %s", g_err);
    CHECK(sh(MM " classify -m " MODEL " --json " TMP "/cols.csv") == 0, "classify a CSV with other columns: %s", g_err);
    check_classify_json("classify --json, CSV with a BOM, columns in another order", 2, "Joey");
    CHECK(sh(MM " classify -m " MODEL " --json " TMP "/dyadic.csv") == 0, "classify Utterance,Speaker CSV: %s", g_err);
    check_classify_json("classify --json, Utterance,Speaker CSV", 1, "Monica");
    CHECK(sh(MM " classify -m " MODEL " --json --format text " TMP "/dyadic.csv") == 0, "--format text: %s", g_err);
    check_classify_json("classify --format text on a CSV", 2, "Speaker");
    /* eval, inspect, tokenize, the encoders */
    CHECK(sh(MM " eval -m " MODEL " --csv " TMP "/labels.csv --json --all-heads") == 0, "eval --json: %s", g_err);
    if ((v = parse_out("eval --json"))) {
        const json_value *c = json_get(v, "classes"), *a = json_get(v, "all_heads"), *f = json_get(v, "weighted_f1");
        const json_value *l = json_get(v, "lacking_heads");
        CHECK(c && c->type == JSON_ARRAY && c->count == 7 && a && a->type == JSON_ARRAY && a->count == 9 && f && f->type == JSON_NUMBER,
              "eval --json: classes, all_heads (the 9 heads the model has), weighted_f1");
        CHECK(l && l->type == JSON_ARRAY && l->count == 1 && a && a->count == 9 && !json_get(&a->items[0], "error") &&
              json_get(&l->items[0], "head") && json_get(&l->items[0], "head")->type == JSON_STRING &&
              !strcmp(json_get(&l->items[0], "head")->str, "view.v"), "eval --json: lacking_heads names view.v (emotion) only");
        json_free(v);
    }
    CHECK(sh(MM " inspect --json " MODEL) == 0, "inspect --json: %s", g_err);
    if ((v = parse_out("inspect --json"))) {
        const json_value *t = json_get(v, "tensors"), *m = json_get(v, "metadata");
        CHECK(t && t->type == JSON_ARRAY && t->count > 10 && m && m->type == JSON_OBJECT, "inspect --json: tensors, metadata");
        json_free(v);
    }
    CHECK(sh(MM " tokenize -m " MODEL " --json --file " TMP "/bad.txt") == 0, "tokenize --json: %s", g_err);
    if ((v = parse_out("tokenize --json"))) {
        CHECK(v->type == JSON_ARRAY && v->count == 5 && json_get(&v->items[0], "ids"), "tokenize --json: one object per line");
        json_free(v);
    }
    CHECK(sh(MM " encode-text -m " ROBERTA " --ids '0 5 6 2' --json") == 0, "encode-text --json: %s", g_err);
    if ((v = parse_out("encode-text --json"))) {
        const json_value *vec = json_get(v, "vectors");
        CHECK(vec && vec->type == JSON_ARRAY && vec->count == 4, "encode-text --json: 4 rows");
        json_free(v);
    }
    CHECK(sh(MM " encode-image -m " CLIP " --image " PNG " --json") == 0, "encode-image --json: %s", g_err);
    if ((v = parse_out("encode-image --json"))) {
        const json_value *vec = json_get(v, "vector"), *n = json_get(v, "floats");
        CHECK(vec && vec->type == JSON_ARRAY && n && (double)vec->count == n->number && vec->count > 0, "encode-image --json: vector");
        json_free(v);
    }
}

/* tiny models and a labelled CSV (built from the dialogue, no MELD data needed) */
static int setup(void) {
    static const char labels[] = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID\n"
                                 "1,Guess what? I got the apartment!,Dana,joy,positive,0,0\n"
                                 "2,No way! That's amazing!,Leo,surprise,positive,0,1\n"
                                 "3,The landlord hates pets.,Dana,sadness,negative,0,2\n"
                                 "4,So what now?,Leo,neutral,neutral,0,3\n"
                                 "5,I am so angry at him.,Ann,anger,negative,1,0\n"
                                 "6,That is disgusting.,Bob,disgust,negative,1,1\n"
                                 "7,I am scared.,Ann,fear,negative,1,2\n";
    test_run(NULL, "rm -rf " TMP " && mkdir -p " TMP "/meld");
    test_write_file(TMP "/labels.csv", labels, sizeof labels - 1);
    test_write_file(TMP "/meld/train_sent_emo.csv", labels, sizeof labels - 1);
    test_write_file(TMP "/meld/dev_sent_emo.csv", labels, sizeof labels - 1);
    if (test_run(NULL, CONV " tests/data/roberta-tiny " ROBERTA " --quiet") != 0 || test_run(NULL, CONV " tests/data/clip-tiny " CLIP " --quiet") != 0) {
        CHECK(0, "cannot convert the tiny models (build/mmspcl-convert)");
        return -1;
    }
    return 0;
}

int main(void) {
    FILE *f = fopen(MM, "rb"), *g = fopen(CONV, "rb");
    struct flock lk;
    int lock = open("build/tests/cli.lock", O_RDWR | O_CREAT, 0644);
    /* one run at a time in this tree (TMP is shared) */
    memset(&lk, 0, sizeof lk);
    lk.l_type = F_WRLCK;
    lk.l_whence = SEEK_SET;
    if (lock >= 0) fcntl(lock, F_SETLKW, &lk);
    CHECK(f && g, "%s and %s must be built (make test builds them)", MM, CONV);
    if (f) fclose(f);
    if (g) fclose(g);
    if (!f || !g || setup()) return TEST_END();
    test_conventions();
    test_numbers();
    test_inputs();
    test_same_file();
    test_outputs();
    test_json();
    free(g_out);
    free(g_err);
    return TEST_END();
}
