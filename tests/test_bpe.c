/* Byte-level BPE tokenizer against Hugging Face's RoBERTa tokenizer, with the real vocabulary
   (../shared/data/weights/roberta-bpe/vocab.json, merges.txt), the ids that transformers.js
   wrote (tests/data/tokenizer/meld_ids.txt and fuzz_ids.txt, from tools/reference/tokenizer_ref.mjs
   and bpe_fuzz_ref.mjs) and every MELD
   utterance (../shared/data/meld/{train,dev,test}_sent_emo.csv) round-tripping through decode. */
#define MMSPCL_IMPLEMENTATION
#include "mmspcl.h"
#include "tests/test.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BPE_DIR "../shared/data/weights/roberta-bpe/"
#define MELD_DIR "../shared/data/meld/"

/* ---- a tiny reader for vocab.json: one flat object {"token": id, ...} ---------------------- */
static void put_utf8(char *o, size_t *k, unsigned long cp) {
    if (cp < 0x80) o[(*k)++] = (char)cp;
    else if (cp < 0x800) { o[(*k)++] = (char)(0xC0 | (cp >> 6)); o[(*k)++] = (char)(0x80 | (cp & 0x3F)); }
    else if (cp < 0x10000) {
        o[(*k)++] = (char)(0xE0 | (cp >> 12)); o[(*k)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[(*k)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        o[(*k)++] = (char)(0xF0 | (cp >> 18)); o[(*k)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        o[(*k)++] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[(*k)++] = (char)(0x80 | (cp & 0x3F));
    }
}

/* Parses the JSON string at s[*i] (at the opening quote) in place into out; returns its length. */
static long json_str(char *s, size_t n, size_t *i, char *out) {
    size_t k = 0;
    if (*i >= n || s[*i] != '"') return -1;
    for ((*i)++; *i < n && s[*i] != '"'; (*i)++) {
        if (s[*i] != '\\') { out[k++] = s[*i]; continue; }
        if (++*i >= n) return -1;
        switch (s[*i]) {
        case 'n': out[k++] = '\n'; break;
        case 't': out[k++] = '\t'; break;
        case 'r': out[k++] = '\r'; break;
        case 'b': out[k++] = '\b'; break;
        case 'f': out[k++] = '\f'; break;
        case 'u': {
            unsigned long cp;
            char hex[5];
            if (*i + 4 >= n) return -1;
            memcpy(hex, s + *i + 1, 4); hex[4] = 0;
            cp = strtoul(hex, NULL, 16);
            *i += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && *i + 6 < n && s[*i + 1] == '\\' && s[*i + 2] == 'u') {
                unsigned long lo;
                memcpy(hex, s + *i + 3, 4);
                lo = strtoul(hex, NULL, 16);
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                *i += 6;
            }
            put_utf8(out, &k, cp);
            break;
        }
        default: out[k++] = s[*i]; break;  /* \" \\ \/ */
        }
    }
    if (*i >= n) return -1;
    (*i)++;
    return (long)k;
}

typedef struct { char **strs; uint32_t *lens; int64_t n; char *buf; } str_list;

static int load_vocab(str_list *v) {
    size_t n, i = 0;
    char *s = (char *)test_read_file(BPE_DIR "vocab.json", &n), *tmp;
    int64_t cap = 1 << 16;
    if (!s) return 0;
    tmp = (char *)malloc(n + 1);
    v->strs = (char **)calloc((size_t)cap, sizeof(char *));
    v->lens = (uint32_t *)calloc((size_t)cap, sizeof(uint32_t));
    v->n = 0;
    v->buf = s;
    while (i < n && s[i] != '{') i++;
    i++;
    for (;;) {
        long len, id;
        char *start;
        while (i < n && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t' || s[i] == ',')) i++;
        if (i >= n || s[i] == '}') break;
        start = s + i;  /* the decoded string is written over its own (longer) source */
        len = json_str(s, n, &i, tmp);
        if (len < 0) break;
        memcpy(start, tmp, (size_t)len);
        start[len] = 0;  /* the closing quote position or earlier: always inside the source */
        while (i < n && (s[i] == ' ' || s[i] == ':')) i++;
        id = strtol(s + i, NULL, 10);
        while (i < n && ((s[i] >= '0' && s[i] <= '9') || s[i] == '-')) i++;
        if (id < 0 || id >= cap) break;
        v->strs[id] = start;
        v->lens[id] = (uint32_t)len;
        if (id + 1 > v->n) v->n = id + 1;
    }
    free(tmp);
    return v->n > 0;
}

static int load_merges(str_list *m) {
    size_t n, i, start = 0;
    char *s = (char *)test_read_file(BPE_DIR "merges.txt", &n);
    int64_t cap = 1 << 17;
    if (!s) return 0;
    m->buf = s;
    m->strs = (char **)calloc((size_t)cap, sizeof(char *));
    m->lens = (uint32_t *)calloc((size_t)cap, sizeof(uint32_t));
    m->n = 0;
    for (i = 0; i <= n && m->n < cap; i++) {
        if (i == n || s[i] == '\n') {
            size_t e = i;
            if (e > start && s[e - 1] == '\r') e--;
            if (e > start) {
                s[e] = 0;
                m->strs[m->n] = s + start;
                m->lens[m->n] = (uint32_t)(e - start);
                m->n++;
            }
            start = i + 1;
        }
    }
    return m->n > 0;
}

static void free_list(str_list *l) { free(l->strs); free(l->lens); free(l->buf); }

/* ---- helpers ------------------------------------------------------------------------------ */
static int32_t ids_buf[1 << 21];

static int encode_eq(const mmspcl_bpe *bpe, const char *text, size_t len, int flags,
                     const int32_t *want, int n_want) {
    int n = mmspcl_bpe_encode_ex(bpe, text, len, ids_buf, 1 << 21, flags), i;
    if (n != n_want) return 0;
    for (i = 0; i < n; i++) if (ids_buf[i] != want[i]) return 0;
    return 1;
}

static void print_ids(const char *what, const int32_t *ids, int n) {
    int i;
    fprintf(stderr, "  %s:", what);
    for (i = 0; i < n && i < 64; i++) fprintf(stderr, " %d", ids[i]);
    fputc('\n', stderr);
}

static char *dec_buf;
static size_t dec_cap;

/* decode the n ids in ids_buf and compare with text; returns 1 when equal */
static int decodes_to(const mmspcl_bpe *bpe, int n, const char *text, size_t len) {
    size_t got;
    if (n < 0 || n > (1 << 21)) return 0;
    got = mmspcl_bpe_decode(bpe, ids_buf, n, dec_buf, dec_cap);
    return got == len && got < dec_cap && (len == 0 || !memcmp(dec_buf, text, len));
}

/* encode, decode, compare bytes; returns 1 when equal */
static int round_trip(const mmspcl_bpe *bpe, const char *text, size_t len) {
    return decodes_to(bpe, mmspcl_bpe_encode(bpe, text, len, ids_buf, 1 << 21), text, len);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33);
}

/* ---- MELD CSV: the Utterance column (second field) of every row ---------------------------- */
typedef struct { char *text; size_t len; } utt;

static int read_meld(const char *path, utt **list, int *n, int *cap) {
    size_t sz, i = 0;
    char *s = (char *)test_read_file(path, &sz);
    int row = 0;
    if (!s) return 0;
    while (i < sz) {
        int field = 0;
        /* one record: fields separated by ',', ended by CRLF/LF outside quotes */
        for (;;) {
            char *out = NULL;
            size_t k = 0;
            if (field == 1) {
                out = (char *)malloc(sz - i + 1);
            }
            if (i < sz && s[i] == '"') {
                i++;
                while (i < sz) {
                    if (s[i] == '"') {
                        if (i + 1 < sz && s[i + 1] == '"') { if (out) out[k++] = '"'; i += 2; continue; }
                        i++;
                        break;
                    }
                    if (out) out[k++] = s[i];
                    i++;
                }
            }
            while (i < sz && s[i] != ',' && s[i] != '\n' && s[i] != '\r') { if (out) out[k++] = s[i]; i++; }
            if (out) {
                if (row > 0) {
                    if (*n == *cap) { *cap = *cap ? 2 * *cap : 1024; *list = (utt *)realloc(*list, (size_t)*cap * sizeof(utt)); }
                    (*list)[*n].text = out;
                    (*list)[*n].len = k;
                    (*n)++;
                } else free(out);
            }
            field++;
            if (i < sz && s[i] == ',') { i++; continue; }
            break;
        }
        while (i < sz && (s[i] == '\r' || s[i] == '\n')) i++;
        row++;
    }
    free(s);
    return row - 1;
}

/* ---- meld_ids.txt: ESCAPED_TEXT <TAB> ids ------------------------------------------------- */
static size_t unescape(const char *s, size_t n, char *out) {
    size_t i, k = 0;
    for (i = 0; i < n; i++) {
        if (s[i] != '\\' || i + 1 >= n) { out[k++] = s[i]; continue; }
        i++;
        switch (s[i]) {
        case 't': out[k++] = '\t'; break;
        case 'n': out[k++] = '\n'; break;
        case 'r': out[k++] = '\r'; break;
        case 'x': {
            char hex[3] = {0, 0, 0};
            if (i + 2 < n + 1) { hex[0] = s[i + 1]; hex[1] = s[i + 2]; }
            out[k++] = (char)strtoul(hex, NULL, 16);
            i += 2;
            break;
        }
        default: out[k++] = s[i]; break;
        }
    }
    return k;
}

/* every line of a reference file (ids from transformers.js) must be equal */
static void check_reference_file(const mmspcl_bpe *bpe, const char *path, int min_lines) {
    size_t sz, i = 0;
    char *s = (char *)test_read_file(path, &sz);
    int lines = 0, bad = 0;
    if (!s) {
        CHECK(0, "%s is missing", path);
        return;
    }
    while (i < sz) {
        size_t e = i, tab;
        char *text;
        size_t tlen;
        int32_t want[4096];
        int nw = 0;
        const char *p;
        while (e < sz && s[e] != '\n') e++;
        for (tab = i; tab < e && s[tab] != '\t'; tab++) {}
        if (e == i || s[i] == '#' || tab == e) { i = e + 1; continue; }
        text = (char *)malloc(tab - i + 1);
        tlen = unescape(s + i, tab - i, text);
        for (p = s + tab + 1; p < s + e && nw < 4096;) {
            char *end;
            long v = strtol(p, &end, 10);
            if (end == p) break;
            want[nw++] = (int32_t)v;
            p = end;
        }
        lines++;
        if (!encode_eq(bpe, text, tlen, 0, want, nw)) {
            int n = mmspcl_bpe_encode(bpe, text, tlen, ids_buf, 1 << 21);
            if (bad++ < 10) {
                fprintf(stderr, "%s line %d: \"%.*s\"\n", path, lines, (int)(tab - i), s + i);
                print_ids("want", want, nw);
                print_ids("got ", ids_buf, n);
            }
        }
        free(text);
        i = e + 1;
    }
    CHECK(lines >= min_lines, "%s has %d cases (expected %d or more)", path, lines, min_lines);
    CHECK(bad == 0, "%s: %d of %d lines differ from transformers.js", path, bad, lines);
    printf("%s: %d cases, %d differ\n", path, lines, bad);
    free(s);
}

static void check_meld(const mmspcl_bpe *bpe) {
    static const char *files[3] = {MELD_DIR "train_sent_emo.csv", MELD_DIR "dev_sent_emo.csv",
                                   MELD_DIR "test_sent_emo.csv"};
    utt *list = NULL;
    int n = 0, cap = 0, f, i, bad = 0, rows[3], reps;
    long long tokens = 0;
    size_t bytes = 0;
    clock_t t0;
    double best = 1e9;
    for (f = 0; f < 3; f++) {
        rows[f] = read_meld(files[f], &list, &n, &cap);
        CHECK(rows[f] > 0, "cannot read %s", files[f]);
    }
    CHECK(rows[0] == 9989 && rows[1] == 1109 && rows[2] == 2610, "MELD rows %d %d %d (want 9989 1109 2610)",
          rows[0], rows[1], rows[2]);
    for (i = 0; i < n; i++) {
        if (!round_trip(bpe, list[i].text, list[i].len)) {
            if (bad++ < 5) fprintf(stderr, "round trip fails: \"%.*s\"\n", (int)list[i].len, list[i].text);
        }
        bytes += list[i].len;
    }
    CHECK(bad == 0, "%d of %d MELD utterances do not round-trip", bad, n);
    /* timing: encode all utterances (best of 3) */
    for (reps = 0; reps < 3; reps++) {
        double dt;
        tokens = 0;
        t0 = clock();
        for (i = 0; i < n; i++) tokens += mmspcl_bpe_encode(bpe, list[i].text, list[i].len, ids_buf, 4096);
        dt = (double)(clock() - t0) / CLOCKS_PER_SEC;
        if (dt < best) best = dt;
    }
    printf("MELD: %d utterances (%zu bytes, %lld tokens) round-trip; encoding all takes %.1f ms\n",
           n, bytes, tokens, best * 1e3);
    CHECK(best < 0.5, "encoding all MELD utterances takes %.3f s", best);
    for (i = 0; i < n; i++) free(list[i].text);
    free(list);
}

static int memmem_simple(const char *h, size_t n, const char *needle) {
    size_t l = strlen(needle), i;
    for (i = 0; i + l <= n; i++) if (!memcmp(h + i, needle, l)) return 1;
    return 0;
}

static void check_random(const mmspcl_bpe *bpe) {
    static const char *frags[] = {" ", "  ", "\t", "\n", "\r\n", "'s", "'re", "'", "<mask>", " <mask>",
                                  "<s>", "</s>", "<", "é", "’", "日本", "😀", "\xC2\x85", "\xC2\xA0",
                                  "\xE3\x80\x80", "\xEF\xBB\xBF", "a", "Z", "9", "½", ".", "!", "\xF0\x9F",
                                  "\xED\xA0\x80", "\xC0\xAF", "\xFF", "\x80", "\0", "Hello", " world"};
    char *buf = (char *)malloc(1 << 16);
    int len, r, bad = 0, total = 0, badcount = 0, masked = 0;
    for (r = 0; r < 4000; r++) {
        int mode = r % 2;
        len = (r < 300) ? r : (int)(rnd() % (r < 3000 ? 200 : 5000));
        if (mode == 0) {
            int k;
            for (k = 0; k < len; k++) buf[k] = (char)(rnd() & 0xFF);
        } else {
            int k = 0;
            while (k < len) {
                const char *fr = frags[rnd() % (sizeof frags / sizeof frags[0])];
                size_t fl = (fr[0] == 0) ? 1 : strlen(fr);
                if (k + (int)fl > len) break;
                memcpy(buf + k, fr, fl);
                k += (int)fl;
            }
            len = k;
        }
        total++;
        {
            int n1 = mmspcl_bpe_encode(bpe, buf, (size_t)len, NULL, 0);
            int n2 = mmspcl_bpe_encode(bpe, buf, (size_t)len, ids_buf, 1 << 21);
            if (n1 != n2 || n1 < 0) badcount++;
        }
        /* <mask> swallows the whitespace before it, so such strings cannot come back byte for
           byte: there decode then encode must give the same ids again */
        if (len >= 6 && memmem_simple(buf, (size_t)len, "<mask>")) {
            int n1 = mmspcl_bpe_encode(bpe, buf, (size_t)len, ids_buf, 1 << 20), n2, k;
            size_t dl = mmspcl_bpe_decode(bpe, ids_buf, n1, dec_buf, dec_cap);
            n2 = mmspcl_bpe_encode(bpe, dec_buf, dl, ids_buf + (1 << 20), 1 << 20);
            for (k = 0; k < n1 && n1 == n2; k++) if (ids_buf[k] != ids_buf[(1 << 20) + k]) break;
            if (n1 != n2 || k != n1) bad++;
            masked++;
        } else if (!round_trip(bpe, buf, (size_t)len)) bad++;
    }
    CHECK(bad == 0, "%d of %d random byte strings do not round-trip byte-exactly", bad, total);
    CHECK(badcount == 0, "%d random strings: counting call and filling call disagree", badcount);
    printf("random: %d byte strings (%d with <mask>: ids stable through decode) ok\n", total - bad, masked);
    free(buf);
}

static void check_long(const mmspcl_bpe *bpe) {
    size_t n = 1 << 20, i;
    char *buf = (char *)malloc(n);
    static const char *words[] = {"Hello", " world", "!", " Monica", "'s", " feels", "\n", "  ", " 123", " café", "\xFF"};
    clock_t t0;
    int cnt;
    /* 1 MB of ordinary text */
    for (i = 0; i < n;) {
        const char *w = words[rnd() % (sizeof words / sizeof words[0])];
        size_t l = strlen(w);
        if (i + l > n) l = n - i;
        memcpy(buf + i, w, l);
        i += l;
    }
    t0 = clock();
    cnt = mmspcl_bpe_encode(bpe, buf, n, ids_buf, 1 << 21);
    printf("1 MB of text: %d tokens in %.1f ms\n", cnt, (double)(clock() - t0) * 1e3 / CLOCKS_PER_SEC);
    CHECK(cnt > 100000, "1 MB text gives %d tokens", cnt);
    CHECK(decodes_to(bpe, cnt, buf, n), "1 MB text does not round-trip");
    /* 1 MB single piece: letters only, then random invalid bytes only */
    for (i = 0; i < n; i++) buf[i] = (char)('a' + rnd() % 26);
    t0 = clock();
    cnt = mmspcl_bpe_encode(bpe, buf, n, ids_buf, 1 << 21);
    printf("1 MB one-word letters: %d tokens in %.1f ms\n", cnt, (double)(clock() - t0) * 1e3 / CLOCKS_PER_SEC);
    CHECK(cnt > 0 && decodes_to(bpe, cnt, buf, n), "1 MB of letters does not round-trip (%d)", cnt);
    for (i = 0; i < n; i++) buf[i] = (char)(0x80 + rnd() % 0x40);
    cnt = mmspcl_bpe_encode(bpe, buf, n, ids_buf, 1 << 21);
    CHECK(cnt > 0 && decodes_to(bpe, cnt, buf, n), "1 MB of continuation bytes does not round-trip (%d)", cnt);
    for (i = 0; i < n; i++) buf[i] = 'a';
    cnt = mmspcl_bpe_encode(bpe, buf, n, ids_buf, 1 << 21);
    CHECK(cnt > 0 && decodes_to(bpe, cnt, buf, n), "1 MB of 'a' does not round-trip (%d)", cnt);
    free(buf);
}

/* build/mmspcl tokenize (make test builds it before running the tests) */
static void run_cli(const char *args, const char *want) {
    char *out = NULL;
    int rc = test_run(&out, "build/mmspcl tokenize --vocab %svocab.json --merges %smerges.txt %s", BPE_DIR, BPE_DIR, args);
    if (!out) { CHECK(0, "cannot run build/mmspcl tokenize %s", args); return; }
    CHECK(rc == 0 && !strcmp(out, want), "build/mmspcl tokenize %s\n  printed: %s  want: %s", args, out, want);
    free(out);
}

static void check_cli(void) {
    FILE *f = fopen("build/mmspcl", "rb"), *t;
    const char *tmp = "build/test_bpe_lines.txt";
    if (!f) { printf("build/mmspcl not built: CLI check skipped\n"); return; }
    fclose(f);
    run_cli("--text 'Hello world! c\xC3\xA9" "c\xC3\xA9 herlolip'", "0 31414 232 328 740 1140 12695 69 46078 1588 2\n");
    run_cli("--no-special --text ' <mask>'", "50264\n");
    t = fopen(tmp, "wb");
    if (t) {
        fputs("Hey, Monica feels\r\n\nHello world!", t);
        fclose(t);
        run_cli("--no-special --file build/test_bpe_lines.txt", "13368 6 12811 2653\n\n31414 232 328\n");
        run_cli("--file build/test_bpe_lines.txt", "0 13368 6 12811 2653 2\n0 2\n0 31414 232 328 2\n");
        remove(tmp);
    }
}

/* accessors: sizes, special ids, token lookups both ways */
static void test_accessors(const mmspcl_bpe *bpe) {
    CHECK(mmspcl_bpe_vocab_size(bpe) == 50265, "vocab size %lld", (long long)mmspcl_bpe_vocab_size(bpe));
    CHECK(mmspcl_bpe_bos_id(bpe) == 0 && mmspcl_bpe_pad_id(bpe) == 1 && mmspcl_bpe_eos_id(bpe) == 2 &&
          mmspcl_bpe_unk_id(bpe) == 3 && mmspcl_bpe_mask_id(bpe) == 50264,
          "special ids %d %d %d %d %d", mmspcl_bpe_bos_id(bpe), mmspcl_bpe_pad_id(bpe),
          mmspcl_bpe_eos_id(bpe), mmspcl_bpe_unk_id(bpe), mmspcl_bpe_mask_id(bpe));
    CHECK(mmspcl_bpe_token_id(bpe, "\xC4\xA0the") == 5, "id of Ġthe");
    CHECK(mmspcl_bpe_token_id(bpe, "no-such-token-xyz") == -1 && mmspcl_bpe_token_id(bpe, "") == -1, "absent token");
    {
        size_t l = 0;
        const char *t = mmspcl_bpe_token_str(bpe, 5, &l);
        CHECK(t && l == 5 && !strcmp(t, "\xC4\xA0the"), "token_str(5)");
        CHECK(!mmspcl_bpe_token_str(bpe, -1, NULL) && !mmspcl_bpe_token_str(bpe, 50265, NULL), "token_str out of range");
    }
}

/* published ids (Hugging Face's RoBERTa tokenizer) */
static void test_published_ids(const mmspcl_bpe *bpe) {
    static const int32_t hello[] = {0, 31414, 232, 328, 740, 1140, 12695, 69, 46078, 1588, 2};
    static const int32_t mask[] = {50264};
    static const int32_t monica[] = {13368, 6, 12811, 2653};
    static const int32_t empty_sp[] = {0, 2};
    static const int32_t prompt[] = {0, 18393, 219, 35, 3592, 2, 50264, 2};
    const char *hs = "Hello world! c\xC3\xA9" "c\xC3\xA9 herlolip";
    CHECK(encode_eq(bpe, hs, strlen(hs), MMSPCL_BPE_ADD_SPECIAL, hello, 11), "Hello world! c\xC3\xA9" "c\xC3\xA9 herlolip");
    CHECK(encode_eq(bpe, hs, strlen(hs), 0, hello + 1, 9), "Hello world without specials");
    CHECK(encode_eq(bpe, " <mask>", 7, 0, mask, 1), "\" <mask>\" -> 50264 alone");
    CHECK(encode_eq(bpe, "Hey, Monica feels", 17, 0, monica, 4), "Hey, Monica feels");
    CHECK(encode_eq(bpe, "", 0, 0, NULL, 0), "empty string gives no ids");
    CHECK(encode_eq(bpe, NULL, 0, 0, NULL, 0), "NULL, 0 gives no ids");
    CHECK(encode_eq(bpe, "", 0, MMSPCL_BPE_ADD_SPECIAL, empty_sp, 2), "empty string with specials: 0 2");
    CHECK(encode_eq(bpe, "<s>Joey:hi</s> <mask></s>", 25, 0, prompt, 8), "special tokens inside the text");
    CHECK(mmspcl_bpe_encode(NULL, "a", 1, ids_buf, 10) == -1, "NULL tokenizer gives -1");
    CHECK(mmspcl_bpe_encode(bpe, NULL, 3, ids_buf, 10) == -1, "NULL text with len gives -1");
}

/* special tokens: lstrip only for <mask>, and the flag that turns splitting off */
static void test_special_tokens(const mmspcl_bpe *bpe) {
    int n = mmspcl_bpe_encode(bpe, "a <s>", 5, ids_buf, 100);
    CHECK(n == 3 && ids_buf[1] == 1437 && ids_buf[2] == 0, "\"a <s>\": <s> does not absorb the space (%d)", n);
    n = mmspcl_bpe_encode(bpe, "a \t\n<mask>b", 11, ids_buf, 100);
    CHECK(n == 3 && ids_buf[0] == 102 && ids_buf[1] == 50264 && ids_buf[2] == 428, "<mask> absorbs all whitespace before it (%d)", n);
    n = mmspcl_bpe_encode(bpe, "<mask> x", 8, ids_buf, 100);
    CHECK(n == 2 && ids_buf[0] == 50264 && ids_buf[1] == 3023, "<mask> keeps the space after it (%d)", n);
    n = mmspcl_bpe_encode(bpe, "a\xE3\x80\x80<mask>", 10, ids_buf, 100);
    CHECK(n == 2 && ids_buf[1] == 50264, "<mask> absorbs U+3000 (%d)", n);
    n = mmspcl_bpe_encode_ex(bpe, " <mask>", 7, ids_buf, 100, MMSPCL_BPE_NO_SPECIAL_SPLIT);
    CHECK(n > 1 && ids_buf[0] != 50264, "NO_SPECIAL_SPLIT treats <mask> as text (%d)", n);
    n = mmspcl_bpe_encode(bpe, "<<mask><masks", 13, ids_buf, 100);
    CHECK(n >= 3 && ids_buf[1] == 50264, "\"<<mask><masks\" (%d)", n);
}

/* buffer too small: the full count comes back and nothing past max_ids is written */
static void test_short_buffer(const mmspcl_bpe *bpe) {
    const char *t = "Hello world! How are you doing today?";
    int full = mmspcl_bpe_encode(bpe, t, strlen(t), ids_buf, 100), n;
    ids_buf[2] = -77;
    n = mmspcl_bpe_encode(bpe, t, strlen(t), ids_buf, 2);
    CHECK(n == full && full > 2 && ids_buf[2] == -77 && ids_buf[0] == 31414, "short buffer: %d vs %d", n, full);
    CHECK(mmspcl_bpe_encode(bpe, t, strlen(t), NULL, 0) == full, "counting with a NULL buffer");
}

/* decode: specials, out-of-range ids, a short buffer */
static void test_decode(const mmspcl_bpe *bpe) {
    static const int32_t ids[] = {0, 31414, 232, 328, 2, 50264, -5, 99999999};
    char small[8];
    size_t n = mmspcl_bpe_decode(bpe, ids, 8, dec_buf, dec_cap);
    CHECK(n == 25 && !strcmp(dec_buf, "<s>Hello world!</s><mask>"), "decode: %zu \"%s\"", n, dec_buf);
    n = mmspcl_bpe_decode(bpe, ids, 8, small, sizeof small);
    CHECK(n == 25 && !strcmp(small, "<s>Hell"), "decode into a short buffer: %zu \"%s\"", n, small);
    CHECK(mmspcl_bpe_decode(bpe, ids, 0, small, sizeof small) == 0 && small[0] == 0, "decode nothing");
}

/* the same tokenizer through a weight file */
static void test_weight_file(const mmspcl_bpe *bpe, const str_list *v, const str_list *m) {
    mmspcl_writer *wr = mmspcl_writer_create();
    mmspcl_bpe *bpe2 = NULL;
    mmspcl_error err;
    unsigned char *bytes = NULL;
    size_t size = 0;
    mmspcl_weights *w = NULL;
    const char *t = "Hey, Monica feels <mask> \xF0\x9F\x98\x80 x\xFFy";
    int n1, n2, same = 1, k;
    mmspcl_status st;
    st = mmspcl_writer_set_str_array(wr, "tokenizer.vocab", (const char *const *)v->strs, v->lens, v->n);
    if (!st) st = mmspcl_writer_set_str_array(wr, "tokenizer.merges", (const char *const *)m->strs + 1, m->lens + 1, m->n - 1);
    if (!st) st = mmspcl_writer_save_to_memory(wr, &bytes, &size, &err);
    if (!st) st = mmspcl_weights_from_memory(&w, bytes, size, &err);
    if (!st) st = mmspcl_bpe_from_weights(&bpe2, w, &err);
    CHECK(st == MMSPCL_OK, "tokenizer through a weight file: %s", st ? err.msg : "");
    if (!st) {
        mmspcl_weights_free(w);  /* the tokenizer keeps its own copy */
        w = NULL;
        n1 = mmspcl_bpe_encode(bpe, t, strlen(t), ids_buf, 1000);
        n2 = mmspcl_bpe_encode(bpe2, t, strlen(t), ids_buf + 1000, 1000);
        for (k = 0; k < n1 && k < n2; k++) same &= ids_buf[k] == ids_buf[1000 + k];
        CHECK(n1 == n2 && same && n1 > 0, "weight-file tokenizer encodes the same (%d vs %d)", n1, n2);
    }
    mmspcl_bpe_free(bpe2);
    mmspcl_weights_free(w);
    MMSPCL_FREE(bytes);
    mmspcl_writer_free(wr);
    /* a weight file without tokenizer keys */
    wr = mmspcl_writer_create();
    mmspcl_writer_set_int(wr, "x", 1);
    bytes = NULL;
    w = NULL;
    bpe2 = NULL;
    st = mmspcl_writer_save_to_memory(wr, &bytes, &size, &err);
    if (!st) st = mmspcl_weights_from_memory(&w, bytes, size, &err);
    if (!st) st = mmspcl_bpe_from_weights(&bpe2, w, &err);
    CHECK(st == MMSPCL_ERR_NOT_FOUND && bpe2 == NULL && strstr(err.msg, "tokenizer.vocab"),
          "missing tokenizer keys: %d %s", (int)st, err.msg);
    mmspcl_weights_free(w);
    MMSPCL_FREE(bytes);
    mmspcl_writer_free(wr);
}

/* bad merges are refused with a message naming them */
static void test_bad_merges(void) {
    static const char *vocab[] = {"a", "b", "ab", "c"};
    static const char *bad1[] = {"a b", "ab c"};
    static const char *bad2[] = {"a b", "abc"};
    static const char *good[] = {"#version: 0.2", "a b"};
    mmspcl_bpe *bpe2 = NULL;
    mmspcl_error err;
    int32_t ids[4];
    mmspcl_status st = mmspcl_bpe_from_arrays(&bpe2, vocab, NULL, 4, bad1, NULL, 2, &err);
    CHECK(st == MMSPCL_ERR_FORMAT && !bpe2 && strstr(err.msg, "merge 1"), "merge with unknown result: %s", err.msg);
    st = mmspcl_bpe_from_arrays(&bpe2, vocab, NULL, 4, bad2, NULL, 2, &err);
    CHECK(st == MMSPCL_ERR_FORMAT && !bpe2, "merge without a space: %s", err.msg);
    st = mmspcl_bpe_from_arrays(&bpe2, vocab, NULL, 0, good, NULL, 2, &err);
    CHECK(st == MMSPCL_ERR_ARG && !bpe2, "empty vocabulary refused");
    st = mmspcl_bpe_from_arrays(&bpe2, vocab, NULL, 4, good, NULL, 2, &err);
    CHECK(st == MMSPCL_OK, "tiny vocabulary: %s", st ? err.msg : "");
    if (!st) {
        /* bytes without a token are dropped (Hugging Face without unk_token does the same) */
        int n = mmspcl_bpe_encode(bpe2, "abxc", 4, ids, 4);
        CHECK(n == 2 && ids[0] == 2 && ids[1] == 3, "tiny vocabulary: abxc -> %d ids", n);
        CHECK(mmspcl_bpe_mask_id(bpe2) == -1, "tiny vocabulary has no <mask>");
        n = mmspcl_bpe_encode(bpe2, "<mask>", 6, ids, 4);
        CHECK(n == 1 && ids[0] == 0, "no <mask> token: plain text (only 'a' is known): %d", n);
    }
    mmspcl_bpe_free(bpe2);
    mmspcl_bpe_free(NULL);
}

int main(void) {
    str_list v = {NULL, NULL, 0, NULL}, m = {NULL, NULL, 0, NULL};
    mmspcl_bpe *bpe = NULL;
    mmspcl_error err;
    int ok_v = load_vocab(&v), ok_m = load_merges(&m);
    CHECK(ok_v && ok_m, "cannot read %svocab.json / merges.txt (run from the repository root)", BPE_DIR);
    if (!ok_v || !ok_m) return TEST_END();
    CHECK(v.n == 50265 && m.n == 50001, "vocab %lld merges %lld", (long long)v.n, (long long)m.n);
    dec_cap = (1 << 21) + 16;
    dec_buf = (char *)malloc(dec_cap);

    {
        clock_t t0 = clock();
        mmspcl_status st = mmspcl_bpe_from_arrays(&bpe, (const char *const *)v.strs, v.lens, v.n,
                                                  (const char *const *)m.strs, m.lens, m.n, &err);
        CHECK(st == MMSPCL_OK, "from_arrays: %s", st ? err.msg : "");
        if (st) return TEST_END();
        printf("loaded %lld tokens, 50000 merges in %.1f ms\n", (long long)mmspcl_bpe_vocab_size(bpe),
               (double)(clock() - t0) * 1e3 / CLOCKS_PER_SEC);
    }

    test_accessors(bpe);
    test_published_ids(bpe);
    test_special_tokens(bpe);
    test_short_buffer(bpe);
    test_decode(bpe);
    test_weight_file(bpe, &v, &m);
    test_bad_merges();
    check_reference_file(bpe, "tests/data/tokenizer/meld_ids.txt", 300);
    check_reference_file(bpe, "tests/data/tokenizer/fuzz_ids.txt", 1000);
    check_meld(bpe);
    check_random(bpe);
    check_long(bpe);
    check_cli();

    mmspcl_bpe_free(bpe);
    free_list(&v);
    free_list(&m);
    free(dec_buf);
    return TEST_END();
}
