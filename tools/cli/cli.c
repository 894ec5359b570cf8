/* tools/cli/cli.c - what every subcommand of build/mmspcl shares (declarations and the
   conventions: cli.h): messages, the option parser and the one numeric parser, input and output
   files (same-file refusal, temporary file + rename, signals), the standard output check, JSON. */
#if !defined(_WIN32) && !defined(_XOPEN_SOURCE)
#define _XOPEN_SOURCE 700 /* mkstemp, fchmod, realpath, lstat, fsync */
#endif
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cli.h"

/* ==== messages ============================================================================== */
static void cli_vmsg(const char *cmd, const char *fmt, va_list ap) {
    fprintf(stderr, "mmspcl %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

int cli_fail(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    cli_vmsg(cmd, fmt, ap);
    va_end(ap);
    return 1;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    cli_vmsg(cmd, fmt, ap);
    va_end(ap);
    fprintf(stderr, "(see mmspcl %s --help)\n", cmd);
    return 2;
}

int cli_fail_io(const char *cmd, const char *path, const mmspcl_error *err) {
    struct stat sb;
    if (path && strcmp(path, "-") != 0 && err && err->status == MMSPCL_ERR_IO) {
        int fd;
        if (stat(path, &sb) != 0) return cli_fail(cmd, "cannot open %s: %s", path, strerror(errno));
        if (S_ISDIR(sb.st_mode)) return cli_fail(cmd, "cannot read %s: %s", path, strerror(EISDIR));
        if ((fd = open(path, O_RDONLY)) < 0) return cli_fail(cmd, "cannot open %s: %s", path, strerror(errno));
        close(fd);
    }
    return cli_fail(cmd, "%s", err ? err->msg : "failed");
}

/* ==== numbers =============================================================================== */
int cli_parse_int(const char *cmd, const char *opt, const char *s, long long lo, long long hi, long long *out) {
    char *end;
    long long v;
    errno = 0;
    v = *s && !isspace((unsigned char)*s) ? strtoll(s, &end, 10) : 0;
    if (!*s || isspace((unsigned char)*s) || *end)
        return cli_usage_error(cmd, "%s '%s': not an integer (expected an integer from %lld to %lld)", opt, s, lo, hi);
    if (errno == ERANGE || v < lo || v > hi)
        return cli_usage_error(cmd, "%s %s: out of range (expected an integer from %lld to %lld)", opt, s, lo, hi);
    *out = v;
    return 0;
}

int cli_parse_real(const char *cmd, const char *opt, const char *s, double lo, double hi, double *out) {
    char *end;
    double v;
    errno = 0;
    v = *s && !isspace((unsigned char)*s) ? strtod(s, &end) : 0;
    if (!*s || isspace((unsigned char)*s) || *end || v != v)
        return cli_usage_error(cmd, "%s '%s': not a number (expected a number from %g to %g)", opt, s, lo, hi);
    if (errno == ERANGE || !(v >= lo && v <= hi))
        return cli_usage_error(cmd, "%s %s: out of range (expected a number from %g to %g)", opt, s, lo, hi);
    *out = v;
    return 0;
}

int cli_parse_u64(const char *cmd, const char *opt, const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
    char *end;
    unsigned long long v;
    errno = 0;
    v = isdigit((unsigned char)*s) ? strtoull(s, &end, 10) : 0;
    if (!isdigit((unsigned char)*s) || *end)
        return cli_usage_error(cmd, "%s '%s': not an unsigned integer (expected an integer from %llu to %llu)", opt, s,
                               (unsigned long long)lo, (unsigned long long)hi);
    if (errno == ERANGE || v < lo || v > hi)
        return cli_usage_error(cmd, "%s %s: out of range (expected an integer from %llu to %llu)", opt, s,
                               (unsigned long long)lo, (unsigned long long)hi);
    *out = (uint64_t)v;
    return 0;
}

/* ==== the option parser ===================================================================== */
/* 1 when name (n bytes) is one of the ", "-separated spellings of o */
static int cli_opt_has(const cli_opt *o, const char *name, size_t n) {
    const char *p = o->names;
    while (*p) {
        const char *e = strstr(p, ", ");
        const size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !strncmp(p, name, n)) return 1;
        p = e ? e + 2 : p + len;
    }
    return 0;
}

/* the first spelling of o, for messages */
static void cli_opt_first(const cli_opt *o, char *buf, size_t n) {
    const char *e = strstr(o->names, ", ");
    snprintf(buf, n, "%.*s", e ? (int)(e - o->names) : (int)strlen(o->names), o->names);
}

static int cli_set_value(const cli_spec *s, const cli_opt *o, const char *name, const char *v) {
    long long iv;
    double dv;
    uint64_t uv;
    int rc;
    switch (o->kind) {
    case CLI_STR: *(const char **)o->dst = v; return 0;
    case CLI_INT:
        if ((rc = cli_parse_int(s->name, name, v, (long long)o->lo, (long long)o->hi, &iv))) return rc;
        *(int *)o->dst = (int)iv;
        return 0;
    case CLI_REAL:
        if ((rc = cli_parse_real(s->name, name, v, o->lo, o->hi, &dv))) return rc;
        *(double *)o->dst = dv;
        return 0;
    case CLI_U64:
        if ((rc = cli_parse_u64(s->name, name, v, (uint64_t)o->lo, o->hi >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)o->hi, &uv)))
            return rc;
        *(uint64_t *)o->dst = uv;
        return 0;
    default: return 0;
    }
}

#define CLI_MAX_OPTS 64
#define CLI_DEF_LEN 160
static void cli_opt_default(const cli_opt *o, char *buf, size_t n);
static void cli_usage_defs(const cli_spec *s, FILE *f, char (*defs)[CLI_DEF_LEN]);

int cli_parse(const cli_spec *s, int argc, char **argv, int *n_pos) {
    unsigned char seen[CLI_MAX_OPTS];
    char defs[CLI_MAX_OPTS][CLI_DEF_LEN];   /* the defaults as they were before any option */
    int i, k, np = 0, only_pos = 0, rc;
    memset(seen, 0, sizeof seen);
    for (k = 0; s->opts[k].names && k < CLI_MAX_OPTS; k++) cli_opt_default(&s->opts[k], defs[k], CLI_DEF_LEN);
    *n_pos = 0;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *eq, *v = NULL;
        const cli_opt *o = NULL;
        char name[64];
        size_t n;
        if (only_pos || a[0] != '-' || !strcmp(a, "-")) {
            if (!s->pos || np >= s->max_pos) return cli_usage_error(s->name, "unexpected argument '%s'", a);
            s->pos[np++] = a;
            continue;
        }
        if (!strcmp(a, "--")) { only_pos = 1; continue; }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { cli_usage_defs(s, stdout, defs); return 0; }
        if (!strcmp(a, "--version")) { printf("mmspcl %s\n", MMSPCL_VERSION); return 0; }
        eq = a[1] == '-' ? strchr(a, '=') : NULL;
        n = eq ? (size_t)(eq - a) : strlen(a);
        for (k = 0; s->opts[k].names && !o; k++)
            if (cli_opt_has(&s->opts[k], a, n)) o = &s->opts[k];
        snprintf(name, sizeof name, "%.*s", (int)(n < 60 ? n : 60), a);
        if (!o && !strcmp(name, "--threads")) {   /* every command's, unless it has its own */
            long long t;
            if (eq) v = eq + 1;
            else if (i + 1 < argc) v = argv[++i];
            else return cli_usage_error(s->name, "--threads needs a value (N)");
            if ((rc = cli_parse_int(s->name, "--threads", v, 1, 1024, &t))) return rc;
            mmspcl_set_threads((int)t);
            continue;
        }
        if (!o) return cli_usage_error(s->name, "unknown option '%s'", name);
        if (o - s->opts < CLI_MAX_OPTS) seen[o - s->opts] = 1;
        if (o->kind == CLI_FLAG) {
            if (eq) return cli_usage_error(s->name, "%s takes no value", name);
            *(int *)o->dst = 1;
            continue;
        }
        if (o->kind == CLI_OPTVAL) {
            *(int *)o->dst = 1;
            if (eq) v = eq + 1;
            else if (i + 1 < argc && isdigit((unsigned char)argv[i + 1][0])) v = argv[++i];
            if (v) *(const char **)o->dst2 = v;
            continue;
        }
        if (eq) v = eq + 1;
        else if (i + 1 < argc) v = argv[++i];
        else return cli_usage_error(s->name, "%s needs a value (%s)", name, o->meta ? o->meta : "VALUE");
        if ((rc = cli_set_value(s, o, name, v))) return rc;
    }
    for (k = 0; s->opts[k].names && k < CLI_MAX_OPTS; k++)
        if (s->opts[k].required && !seen[k]) {
            char name[64];
            cli_opt_first(&s->opts[k], name, sizeof name);
            return cli_usage_error(s->name, "%s %s is required", name, s->opts[k].meta ? s->opts[k].meta : "");
        }
    *n_pos = np;
    return CLI_GO;
}

/* the default and range of o, as the usage shows them ("" when there is nothing to show) */
static void cli_opt_default(const cli_opt *o, char *buf, size_t n) {
    buf[0] = 0;
    switch (o->kind) {
    case CLI_INT:
        if (o->def) snprintf(buf, n, "; %.0f..%.0f (default %s)", o->lo, o->hi, o->def);
        else snprintf(buf, n, "; %.0f..%.0f (default %d)", o->lo, o->hi, *(const int *)o->dst);
        break;
    case CLI_REAL:
        if (o->def) snprintf(buf, n, "; %g to %g (default %s)", o->lo, o->hi, o->def);
        else snprintf(buf, n, "; %g to %g (default %g)", o->lo, o->hi, *(const double *)o->dst);
        break;
    case CLI_U64:
        if (o->def) snprintf(buf, n, " (default %s)", o->def);
        else snprintf(buf, n, " (default %llu)", (unsigned long long)*(const uint64_t *)o->dst);
        break;
    case CLI_STR: case CLI_OPTVAL:
        if (o->def) snprintf(buf, n, " (default: %s)", o->def);
        break;
    default: break;
    }
    if (o->required) snprintf(buf + strlen(buf), n - strlen(buf), " [required]");
}

void cli_usage(const cli_spec *s, FILE *f) {
    char defs[CLI_MAX_OPTS][CLI_DEF_LEN];
    int k;
    for (k = 0; s->opts[k].names && k < CLI_MAX_OPTS; k++) cli_opt_default(&s->opts[k], defs[k], CLI_DEF_LEN);
    cli_usage_defs(s, f, defs);
}

static void cli_usage_defs(const cli_spec *s, FILE *f, char (*defs)[CLI_DEF_LEN]) {
    int k;
    fprintf(f, "usage: mmspcl %s %s\n", s->name, s->synopsis);
    if (s->about) fprintf(f, "%s\n", s->about);
    fprintf(f, "\noptions:\n");
    for (k = 0; s->opts[k].names; k++) {
        const cli_opt *o = &s->opts[k];
        char left[96];
        const char *def = k < CLI_MAX_OPTS ? defs[k] : "";
        snprintf(left, sizeof left, "%s%s%s%s", o->names, o->meta ? " " : "", o->kind == CLI_OPTVAL ? "[" : "",
                 o->meta ? o->meta : "");
        if (o->kind == CLI_OPTVAL && o->meta) snprintf(left + strlen(left), sizeof left - strlen(left), "]");
        if (strlen(left) > 24) fprintf(f, "  %s\n  %-24s  %s%s\n", left, "", o->help, def);
        else fprintf(f, "  %-24s  %s%s\n", left, o->help, def);
    }
    for (k = 0; s->opts[k].names && !cli_opt_has(&s->opts[k], "--threads", 9); k++) {}
    if (!s->opts[k].names)
        fprintf(f, "  %-24s  %s; 1..1024 (default %d: MMSPCL_NUM_THREADS, else OMP_NUM_THREADS, else the cores this\n"
                   "  %-24s  process may use; several jobs at once: --threads 1 each)\n",
                "--threads N", "threads of the kernels", mmspcl_default_threads(), "");
    fprintf(f, "  %-24s  %s\n", "-h, --help", "this help, on standard output");
    fprintf(f, "  %-24s  %s\n", "--version", "the version of mmspcl");
    if (s->notes) fprintf(f, "\n%s\n", s->notes);
}

/* ==== heads ================================================================================= */
static int cli_in_list(const char *s, const char *list) {
    const size_t n = strlen(s);
    const char *p = list;
    while (*p) {
        const char *e = strstr(p, ", ");
        const size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !strncmp(p, s, n)) return 1;
        p = e ? e + 2 : p + len;
    }
    return 0;
}

int cli_check_head(const char *cmd, const char *opt, const char *head, int sentiment) {
    const char *own = sentiment ? CLI_SENTIMENT_HEADS : CLI_EMOTION_HEADS;
    if (!head || cli_in_list(head, own)) return 0;
    if (cli_in_list(head, sentiment ? CLI_EMOTION_HEADS : CLI_SENTIMENT_HEADS))
        return cli_usage_error(cmd, "%s %s is %s head; %s heads are: %s", opt, head, sentiment ? "an emotion" : "a sentiment",
                               sentiment ? "sentiment" : "emotion", own);
    return cli_usage_error(cmd, "%s '%s': unknown head (%s heads: %s)", opt, head, sentiment ? "sentiment" : "emotion", own);
}

/* ==== input files =========================================================================== */
int cli_same_file(const char *a, const char *b) {
    struct stat sa, sb;
    if (!a || !b || stat(a, &sa) != 0 || stat(b, &sb) != 0) return 0;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int cli_refuse_same(const char *cmd, const char *out_opt, const char *out_path, int n, const char *const *in_opts,
                    const char *const *in_paths) {
    struct stat so, si;
    int i;
    if (!out_path || !strcmp(out_path, "-") || stat(out_path, &so) != 0) return 0;   /* a new file is no input */
    for (i = 0; i < n; i++) {
        if (!in_paths[i]) continue;
        if (strcmp(in_paths[i], "-") != 0 ? stat(in_paths[i], &si) != 0 : fstat(STDIN_FILENO, &si) != 0) continue;
        if (si.st_dev == so.st_dev && si.st_ino == so.st_ino && (S_ISREG(so.st_mode) || strcmp(in_paths[i], "-") != 0))
            return cli_usage_error(cmd, "%s %s is the same file as %s %s%s: refusing to overwrite an input", out_opt, out_path,
                                   in_opts[i], in_paths[i], strcmp(in_paths[i], "-") ? "" : " (standard input)");
    }
    return 0;
}

int cli_one_stdin(const char *cmd, int n, const char *const *opts, const char *const *paths) {
    int i, first = -1;
    for (i = 0; i < n; i++)
        if (paths[i] && !strcmp(paths[i], "-")) {
            if (first >= 0) return cli_usage_error(cmd, "%s and %s are both standard input (-): only one can be", opts[first], opts[i]);
            first = i;
        }
    return 0;
}

int cli_weights_open(const char *cmd, const char *path, mmspcl_weights **w) {
    mmspcl_error err;
    mmspcl_status st = !strcmp(path, "-") ? mmspcl_weights_read(w, path, &err) : mmspcl_weights_open(w, path, &err);
    if (st) { *w = NULL; return cli_fail_io(cmd, path, &err); }
    return 0;
}

int cli_classifier_load(const char *cmd, const char *path, mmspcl_classifier *m, mmspcl_weights **hold) {
    mmspcl_error err;
    *hold = NULL;
    memset(m, 0, sizeof *m);
    if (strcmp(path, "-") != 0) {
        if (mmspcl_classifier_load(m, path, &err)) return cli_fail_io(cmd, path, &err);
        return 0;
    }
    /* standard input: read whole (64-byte aligned) and used in place */
    if (cli_weights_open(cmd, path, hold)) return 1;
    if (mmspcl_classifier_from_memory(m, (*hold)->bytes, (*hold)->size, &err)) {
        mmspcl_weights_free(*hold);
        *hold = NULL;
        return cli_fail(cmd, "standard input: %s", err.msg);
    }
    return 0;
}

/* ==== temporary files and signals =========================================================== */
#define CLI_TMP_SLOTS 16
static char *volatile cli_tmp_paths[CLI_TMP_SLOTS];

static void cli_on_signal(int sig) {
    int i;
    for (i = 0; i < CLI_TMP_SLOTS; i++)
        if (cli_tmp_paths[i]) unlink(cli_tmp_paths[i]);
    signal(sig, SIG_DFL);
    raise(sig);
}

void cli_install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = cli_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

int cli_tmp_register(const char *path) {
    int i;
    for (i = 0; i < CLI_TMP_SLOTS; i++)
        if (!cli_tmp_paths[i]) {
            char *p = (char *)malloc(strlen(path) + 1);
            if (!p) return -1;
            strcpy(p, path);
            cli_tmp_paths[i] = p;
            return i;
        }
    return -1;
}

void cli_tmp_unregister(int slot) {
    char *p;
    if (slot < 0 || slot >= CLI_TMP_SLOTS || !cli_tmp_paths[slot]) return;
    p = cli_tmp_paths[slot];
    cli_tmp_paths[slot] = NULL;
    free(p);
}

/* "PATH.tmp-XXXXXX" (free it) */
static char *cli_tmp_template(const char *path) {
    char *t = (char *)malloc(strlen(path) + 12);
    if (t) { strcpy(t, path); strcat(t, ".tmp-XXXXXX"); }
    return t;
}

static mode_t cli_umask(void) {
    const mode_t m = umask(0);
    umask(m);
    return m;
}

/* ==== outputs =============================================================================== */
int cli_out_open(cli_out *o, const char *cmd, const char *path) {
    struct stat sb;
    char *real = NULL;
    const char *target = path;
    int fd, have_mode = 0;
    mode_t mode = 0;
    memset(o, 0, sizeof *o);
    o->slot = -1;
    if (!strcmp(path, "-")) { o->f = stdout; o->is_stdout = 1; return 0; }
    /* a link to a file: the file it points to is replaced, the link kept */
    if (lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode) && (real = realpath(path, NULL)) != NULL) target = real;
    if (stat(target, &sb) == 0) {
        if (S_ISDIR(sb.st_mode)) { free(real); return cli_fail(cmd, "cannot write %s: %s", path, strerror(EISDIR)); }
        if (!S_ISREG(sb.st_mode)) {   /* a device, a FIFO: written in place, never removed */
            if (!(o->f = fopen(target, "wb"))) { const int e = errno; free(real); return cli_fail(cmd, "cannot open %s: %s", path, strerror(e)); }
            o->path = real ? real : (char *)malloc(strlen(path) + 1);
            if (!real && o->path) strcpy(o->path, path);
            return 0;
        }
        if (access(target, W_OK) != 0) { const int e = errno; free(real); return cli_fail(cmd, "cannot write %s: %s", path, strerror(e)); }
        mode = sb.st_mode & 07777;
        have_mode = 1;
    }
    if (!(o->tmp = cli_tmp_template(target)) || (!real && !(o->path = (char *)malloc(strlen(path) + 1)))) {
        free(o->tmp); free(real);
        o->tmp = NULL;
        return cli_fail(cmd, "out of memory");
    }
    if (real) o->path = real;
    else strcpy(o->path, path);
    if ((fd = mkstemp(o->tmp)) < 0) {
        const int e = errno;
        cli_fail(cmd, "cannot create %s: %s", path, strerror(e));
        free(o->tmp); free(o->path);
        memset(o, 0, sizeof *o);
        return 1;
    }
    o->slot = cli_tmp_register(o->tmp);
    if (fchmod(fd, have_mode ? mode : (mode_t)(0666 & ~cli_umask())) != 0) { /* the 0600 of mkstemp stays */ }
    if (!(o->f = fdopen(fd, "wb"))) {
        const int e = errno;
        close(fd);
        cli_out_discard(o);
        return cli_fail(cmd, "cannot write %s: %s", path, strerror(e));
    }
    return 0;
}

static void cli_out_release(cli_out *o) {
    if (o->tmp) cli_tmp_unregister(o->slot);
    free(o->tmp);
    free(o->path);
    memset(o, 0, sizeof *o);
    o->slot = -1;
}

void cli_out_discard(cli_out *o) {
    if (o->f && !o->is_stdout) fclose(o->f);
    o->f = NULL;
    if (o->tmp) unlink(o->tmp);
    cli_out_release(o);
}

/* The first step of a commit: the file complete under its temporary name (flushed, synced and
   closed; a weight file: there). 0, or 1 after a message with the output discarded. */
static int cli_out_complete(cli_out *o, const char *cmd) {
    int bad, e = 0;
    if (o->is_stdout) return 0;   /* checked at the end (cli_check_stdout) */
    if (o->weights) {
        struct stat sb;
        if (o->tmp && stat(o->tmp, &sb) == 0 && S_ISREG(sb.st_mode)) return 0;
        cli_fail(cmd, "internal error: %s was not written", o->path ? o->path : "a weight file");
        cli_out_discard(o);
        return 1;
    }
    if (!o->f) return cli_fail(cmd, "internal error: output not open");
    errno = 0;
    bad = fflush(o->f) != 0 || ferror(o->f);
    if (bad) e = errno ? errno : EIO;
    if (!bad && o->tmp && fsync(fileno(o->f)) != 0 && errno != EINVAL && errno != EROFS) { bad = 1; e = errno; }
    if (fclose(o->f) != 0 && !bad) { bad = 1; e = errno ? errno : EIO; }
    o->f = NULL;
    if (bad) {
        cli_fail(cmd, "cannot write %s: %s", o->path, strerror(e));
        cli_out_discard(o);
        return 1;
    }
    return 0;
}

/* The second: the temporary file renamed over PATH (written in place: nothing to do). 0, or 1
   after a message with the temporary file removed. */
static int cli_out_place(cli_out *o, const char *cmd) {
    if (!o->is_stdout && o->tmp && rename(o->tmp, o->path) != 0) {
        const int e = errno;
        cli_fail(cmd, "cannot rename %s to %s: %s", o->tmp, o->path, strerror(e));
        cli_out_discard(o);
        return 1;
    }
    cli_out_release(o);
    return 0;
}

int cli_outs_commit(cli_out *const *o, int n, const char *cmd) {
    int i;
    for (i = 0; i < n; i++)
        if (o[i] && cli_out_complete(o[i], cmd)) { cli_outs_discard(o, n); return 1; }
    for (i = 0; i < n; i++)
        if (o[i] && cli_out_place(o[i], cmd)) { cli_outs_discard(o, n); return 1; }
    return 0;
}

void cli_outs_discard(cli_out *const *o, int n) {
    int i;
    for (i = 0; i < n; i++)
        if (o[i]) cli_out_discard(o[i]);
}

int cli_out_commit(cli_out *o, const char *cmd) { return cli_outs_commit(&o, 1, cmd); }

int cli_out_f32(cli_out *o, const char *cmd, const float *x, size_t n) {
    unsigned char b[4096];
    size_t i, k = 0;
    for (i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        b[k++] = (unsigned char)u; b[k++] = (unsigned char)(u >> 8);
        b[k++] = (unsigned char)(u >> 16); b[k++] = (unsigned char)(u >> 24);
        if (k == sizeof b || i + 1 == n) {
            if (fwrite(b, 1, k, o->f) != k) return cli_fail(cmd, "cannot write %s: %s", o->path ? o->path : "standard output", strerror(errno));
            k = 0;
        }
    }
    return 0;
}

int cli_write_f32(const char *cmd, const char *path, const float *x, size_t n) {
    cli_out o;
    if (cli_out_open(&o, cmd, path)) return 1;
    if (cli_out_f32(&o, cmd, x, n)) { cli_out_discard(&o); return 1; }
    return cli_out_commit(&o, cmd);
}

/* ==== weight files written by the library (mmspcl_writer_save: PATH.tmp, renamed) =========== */
/* tmp, the temporary name a weight file `path` is written through: when it exists and is an
   interrupted write (empty, or starting with the weight-file magic "MMSPCLWF", docs/FORMAT.md),
   removed; anything else refused. 0, or 1 after a message. */
static int cli_clear_stale(const char *cmd, const char *tmp, const char *path) {
    struct stat sb;
    char head[8];
    size_t got = 0;
    FILE *f;
    if (lstat(tmp, &sb) != 0) return 0;
    f = S_ISREG(sb.st_mode) ? fopen(tmp, "rb") : NULL;
    if (f) { got = fread(head, 1, sizeof head, f); fclose(f); }
    if (!f || !((sb.st_size == 0) || (got == 8 && !memcmp(head, "MMSPCLWF", 8))))
        return cli_fail(cmd, "%s exists and is not a partial mmspcl file; %s is written through it: move it away", tmp, path);
    if (unlink(tmp) != 0) return cli_fail(cmd, "cannot remove the stale %s: %s", tmp, strerror(errno));
    fprintf(stderr, "mmspcl %s: removed %s, left by an interrupted write\n", cmd, tmp);
    return 0;
}

int cli_check_weights_output(const char *cmd, const char *opt, const char *path) {
    struct stat sb;
    char *probe, *tmp;
    int fd;
    if (!strcmp(path, "-")) return cli_usage_error(cmd, "%s: a weight file cannot be written to standard output", opt);
    if (stat(path, &sb) == 0) {
        if (S_ISDIR(sb.st_mode)) return cli_fail(cmd, "%s %s: cannot write: %s", opt, path, strerror(EISDIR));
        if (!S_ISREG(sb.st_mode))
            return cli_fail(cmd, "%s %s: not a regular file (a weight file is written beside it and renamed over it)", opt, path);
    }
    if (!(probe = cli_tmp_template(path))) return cli_fail(cmd, "out of memory");
    if ((fd = mkstemp(probe)) < 0) {
        const int e = errno;
        free(probe);
        return cli_fail(cmd, "%s %s: cannot create the file: %s", opt, path, strerror(e));
    }
    close(fd);
    unlink(probe);
    free(probe);
    if (!(tmp = (char *)malloc(strlen(path) + 5))) return cli_fail(cmd, "out of memory");
    strcpy(tmp, path);
    strcat(tmp, ".tmp");
    if (cli_clear_stale(cmd, tmp, path)) { free(tmp); return 1; }
    cli_tmp_register(tmp);
    free(tmp);
    return 0;
}

int cli_out_weights(cli_out *o, const char *cmd, const char *opt, const char *path) {
    const size_t n = strlen(path);
    char *tt;
    int rc;
    memset(o, 0, sizeof *o);
    o->slot = -1;
    if ((rc = cli_check_weights_output(cmd, opt, path))) return rc;
    o->path = (char *)malloc(n + 1);
    o->tmp = (char *)malloc(n + 5);
    tt = (char *)malloc(n + 9);
    if (!o->path || !o->tmp || !tt) { free(tt); cli_out_release(o); return cli_fail(cmd, "out of memory"); }
    memcpy(o->path, path, n + 1);
    memcpy(o->tmp, path, n); memcpy(o->tmp + n, ".tmp", 5);
    memcpy(tt, o->tmp, n + 4); memcpy(tt + n + 4, ".tmp", 5);
    if (cli_clear_stale(cmd, tt, o->tmp)) { free(tt); cli_out_release(o); return 1; }
    o->weights = 1;
    o->slot = cli_tmp_register(tt);   /* the library's own temporary file; o->tmp is registered above */
    free(tt);
    return 0;
}

/* ==== standard output ======================================================================= */
int cli_check_stdout(const char *cmd) {
    int bad, e;
    errno = 0;
    bad = fflush(stdout) != 0;
    e = errno;
    if (!bad && !ferror(stdout)) return 0;
    fprintf(stderr, "mmspcl%s%s: cannot write to standard output: %s\n", cmd ? " " : "", cmd ? cmd : "", strerror(e ? e : EIO));
    return 1;
}

/* ==== JSON ================================================================================== */
/* length of the valid UTF-8 sequence at p (RFC 3629: no overlongs, surrogates or > U+10FFFF),
   0 when the bytes there are not one */
static size_t cli_utf8_len(const unsigned char *p, const unsigned char *e) {
    const unsigned c = p[0];
    unsigned lo = 0x80, hi = 0xBF;
    size_t n, i;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) { n = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else return 0;
    if ((size_t)(e - p) < n || p[1] < lo || p[1] > hi) return 0;
    for (i = 2; i < n; i++) if ((p[i] & 0xC0) != 0x80) return 0;
    return n;
}

void cli_json_strn(FILE *f, const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s, *e = p + n;
    fputc('"', f);
    while (p < e) {
        const unsigned c = *p;
        size_t len;
        if (c < 0x80) {
            if (c == '"' || c == '\\') { fputc('\\', f); fputc((int)c, f); }
            else if (c == '\n') fputs("\\n", f);
            else if (c == '\r') fputs("\\r", f);
            else if (c == '\t') fputs("\\t", f);
            else if (c < 0x20 || c == 0x7f) fprintf(f, "\\u%04x", c);
            else fputc((int)c, f);
            p++;
        } else if ((len = cli_utf8_len(p, e)) != 0) {
            fwrite(p, 1, len, f);
            p += len;
        } else {
            fputs("\xEF\xBF\xBD", f);   /* U+FFFD for each byte that starts no valid sequence */
            p++;
        }
    }
    fputc('"', f);
}

void cli_json_str(FILE *f, const char *s) {
    if (!s) fputs("null", f);
    else cli_json_strn(f, s, strlen(s));
}

void cli_json_fixed(FILE *f, double v, int decimals) {
    if (v != v || v > 1.7976931348623157e308 || v < -1.7976931348623157e308) fputs("null", f);
    else fprintf(f, "%.*f", decimals, v);
}

void cli_json_num(FILE *f, double v, int digits) {
    if (v != v || v > 1.7976931348623157e308 || v < -1.7976931348623157e308) fputs("null", f);
    else fprintf(f, "%.*g", digits, v);
}
