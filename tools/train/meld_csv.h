/* tools/train/meld_csv.h - the MELD transcripts reader of the MELD recipe, the CLI and the tests. */
#ifndef MELD_CSV_H
#define MELD_CSV_H
#include "mmspcl.h"

/* ---------------------------------------------------------------------------------------------
   MELD transcripts (CSV, RFC 4180, UTF-8, CRLF or LF)

   Reads the main split (Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,...)
   and the dyadic split (Utterance,Speaker,Emotion,...): columns are found by header name, extra
   columns are ignored. Rows are grouped into dialogues where Dialogue_ID changes, as SPCL does.
   A bad row (wrong field count, unknown label, non-numeric id, an unterminated quote) stops the
   parse with an error naming the file and line; nothing is dropped silently.
   A file without label columns (plain transcript) gets label -1.
   Emotion ids follow mmspcl_emotion_names, sentiment ids mmspcl_sentiment_names (mmspcl.h).

   A tool header, not part of the library (the MELD application: tools/train, tools/cli, tests):
   #define MELD_CSV_IMPLEMENTATION in one file before including it.
   ------------------------------------------------------------------------------------------ */
#define MELD_CSV_MAX_BYTES ((int64_t)1 << 31)   /* largest CSV parsed or loaded (2 GiB) */

typedef struct meld_row {
    const char *utterance, *speaker;   /* NUL-terminated, owned by the meld_csv */
    int emotion, sentiment;            /* ids, or -1 when the file has no such column */
    int64_t dialogue_id, utterance_id;
    int line;                          /* 1-based line number in the file */
} meld_row;

typedef struct meld_csv {
    meld_row *rows;
    int n_rows;
    int *dialogue_start;               /* dialogue d is rows[dialogue_start[d] .. dialogue_start[d+1]) */
    int n_dialogues;
    char *text;                        /* private: storage of the strings */
} meld_csv;

mmspcl_status meld_csv_parse(const char *bytes, size_t size, const char *label, meld_csv *out,
                                mmspcl_error *err);
mmspcl_status meld_csv_load(const char *path, meld_csv *out, mmspcl_error *err);
void meld_csv_free(meld_csv *m);

#endif /* MELD_CSV_H */

#ifdef MELD_CSV_IMPLEMENTATION
#ifndef MELD_CSV_IMPLEMENTATION_DONE
#define MELD_CSV_IMPLEMENTATION_DONE
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
   MELD transcripts
   ------------------------------------------------------------------------------------------ */
/* One CSV record starting at *pos: fields are unquoted in place into out (NUL-separated),
   starts[] receives each field's offset. Returns the field count, or -1 on an unterminated
   quote / text after a closing quote, -2 when there are more than max_fields fields. */
static int meld__csv_record(const char *s, size_t n, size_t *pos, char *out, size_t *out_len,
                              size_t *starts, int max_fields, int *lines) {
    size_t i = *pos, o = *out_len;
    int nf = 0;
    for (;;) {
        if (nf == max_fields) return -2;
        starts[nf++] = o;
        if (i < n && s[i] == '"') {
            i++;
            for (;;) {
                if (i >= n) return -1;
                if (s[i] == '"') {
                    if (i + 1 < n && s[i + 1] == '"') { out[o++] = '"'; i += 2; continue; }
                    i++;
                    break;
                }
                if (s[i] == '\n') (*lines)++;
                out[o++] = s[i++];
            }
            if (i < n && s[i] != ',' && s[i] != '\n' && s[i] != '\r') return -1;
        } else {
            while (i < n && s[i] != ',' && s[i] != '\n' && s[i] != '\r') out[o++] = s[i++];
        }
        out[o++] = 0;
        if (i < n && s[i] == ',') { i++; continue; }
        if (i < n && s[i] == '\r') i++;
        if (i < n && s[i] == '\n') i++;
        break;
    }
    *pos = i;
    *out_len = o;
    return nf;
}

static int meld__parse_int64(const char *s, int64_t *v) {
    int64_t x = 0;
    int neg = 0;
    if (*s == '-') { neg = 1; s++; }
    if (!*s) return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || x > (INT64_MAX - 9) / 10) return -1;
        x = x * 10 + (*s - '0');
    }
    *v = neg ? -x : x;
    return 0;
}

mmspcl_status meld_csv_parse(const char *bytes, size_t size, const char *label, meld_csv *out,
                                mmspcl_error *err) {
    enum { UTT, SPK, EMO, SEN, DIA, UID, NCOL };
    static const char *const colnames[NCOL] = {"Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID"};
    size_t starts[64], pos = 0, olen = 0;
    int col[NCOL], nf, i, line = 1, n_header, cap = 0, dcap = 0;
    char *header;
    mmspcl_status st = MMSPCL_OK;
    memset(out, 0, sizeof *out);
    if (size >= 3 && (unsigned char)bytes[0] == 0xEF && (unsigned char)bytes[1] == 0xBB && (unsigned char)bytes[2] == 0xBF) pos = 3;
    /* unquoting never lengthens a field: the copy fits in size + one NUL per field */
    if ((uint64_t)size > (uint64_t)MELD_CSV_MAX_BYTES || size > (SIZE_MAX - 64) / 2)  /* 32-bit: size * 2 */
        return mmspcl_error_set(err, MMSPCL_ERR_UNSUPPORTED, "%s: %zu bytes is over the limit of %lld (MELD_CSV_MAX_BYTES)",
                            label, size, (long long)MELD_CSV_MAX_BYTES);
    if (!(out->text = (char *)malloc(size * 2 + 64)))
        return mmspcl_error_set(err, MMSPCL_ERR_NOMEM, "%s: out of memory for %zu bytes", label, size);
    nf = meld__csv_record(bytes, size, &pos, out->text, &olen, starts, 64, &line);
    if (nf <= 0) { st = mmspcl_error_set(err, MMSPCL_ERR_FORMAT, "%s: line 1: cannot read the header", label); goto fail; }
    n_header = nf;
    header = out->text;
    for (i = 0; i < NCOL; i++) {
        int f;
        col[i] = -1;
        for (f = 0; f < nf; f++)
            if (!strcmp(header + starts[f], colnames[i])) {
                if (col[i] >= 0) {   /* which of the two would be meant is a guess: refuse */
                    st = mmspcl_error_set(err, MMSPCL_ERR_FORMAT, "%s: line 1: column %s appears twice (fields %d and %d)", label,
                                          colnames[i], col[i] + 1, f + 1);
                    goto fail;
                }
                col[i] = f;
            }
    }
    if (col[UTT] < 0 || col[SPK] < 0) {
        st = mmspcl_error_set(err, MMSPCL_ERR_FORMAT, "%s: line 1: the header has no Utterance or Speaker column", label);
        goto fail;
    }
    while (pos < size) {
        meld_row *r;
        int row_line = ++line;
        if (bytes[pos] == '\n' || bytes[pos] == '\r') {         /* blank line */
            if (bytes[pos] == '\r') pos++;
            if (pos < size && bytes[pos] == '\n') pos++;
            continue;
        }
        nf = meld__csv_record(bytes, size, &pos, out->text, &olen, starts, 64, &line);
        if (nf < 0) { st = mmspcl_error_set(err, MMSPCL_ERR_FORMAT, "%s: line %d: %s", label, row_line, nf == -1 ? "bad quoting" : "too many fields"); goto fail; }
        if (nf != n_header) {
            st = mmspcl_error_set(err, MMSPCL_ERR_FORMAT, "%s: line %d: %d fields, the header has %d", label, row_line, nf, n_header);
            goto fail;
        }
        if (out->n_rows == cap) {
            int nc = cap ? cap * 2 : 1024;
            meld_row *p = (meld_row *)realloc(out->rows, (size_t)nc * sizeof *p);
            if (!p) { st = mmspcl_error_set(err, MMSPCL_ERR_NOMEM, "%s: out of memory", label); goto fail; }
            out->rows = p;
            cap = nc;
        }
        r = &out->rows[out->n_rows];
        /* offsets now, pointers once the text buffer stops moving (it never moves: sized once) */
        r->utterance = out->text + starts[col[UTT]];
        r->speaker = out->text + starts[col[SPK]];
        r->line = row_line;
        r->emotion = r->sentiment = -1;
        r->dialogue_id = r->utterance_id = -1;
        if (col[EMO] >= 0 && (r->emotion = mmspcl_emotion_id(out->text + starts[col[EMO]])) < 0) {
            st = mmspcl_error_set(err, MMSPCL_ERR_FORMAT, "%s: line %d: unknown emotion '%.40s'", label, row_line, out->text + starts[col[EMO]]);
            goto fail;
        }
        if (col[SEN] >= 0 && (r->sentiment = mmspcl_sentiment_id(out->text + starts[col[SEN]])) < 0) {
            st = mmspcl_error_set(err, MMSPCL_ERR_FORMAT, "%s: line %d: unknown sentiment '%.40s'", label, row_line, out->text + starts[col[SEN]]);
            goto fail;
        }
        if ((col[DIA] >= 0 && meld__parse_int64(out->text + starts[col[DIA]], &r->dialogue_id)) ||
            (col[UID] >= 0 && meld__parse_int64(out->text + starts[col[UID]], &r->utterance_id))) {
            st = mmspcl_error_set(err, MMSPCL_ERR_FORMAT, "%s: line %d: Dialogue_ID / Utterance_ID is not a number", label, row_line);
            goto fail;
        }
        if (out->n_dialogues + 2 > dcap) {
            int nc = dcap ? dcap * 2 : 256;
            int *p = (int *)realloc(out->dialogue_start, (size_t)nc * sizeof *p);
            if (!p) { st = mmspcl_error_set(err, MMSPCL_ERR_NOMEM, "%s: out of memory", label); goto fail; }
            out->dialogue_start = p;
            dcap = nc;
        }
        if (out->n_rows == 0 || r->dialogue_id != out->rows[out->n_rows - 1].dialogue_id)
            out->dialogue_start[out->n_dialogues++] = out->n_rows;
        out->n_rows++;
    }
    if (out->n_rows == 0) { st = mmspcl_error_set(err, MMSPCL_ERR_FORMAT, "%s: no rows after the header", label); goto fail; }
    out->dialogue_start[out->n_dialogues] = out->n_rows;
    return MMSPCL_OK;
fail:
    meld_csv_free(out);
    return st;
}

mmspcl_status meld_csv_load(const char *path, meld_csv *out, mmspcl_error *err) {
    const int64_t max_bytes = MELD_CSV_MAX_BYTES; /* a variable: no -Wtype-limits where size_t is 32 bits */
    unsigned char *buf = NULL;
    size_t len;
    mmspcl_status st;
    memset(out, 0, sizeof *out);
    if ((uint64_t)max_bytes > (uint64_t)(SIZE_MAX / 2)) st = mmspcl_read_file(path, SIZE_MAX / 2, &buf, &len, err);
    else st = mmspcl_read_file(path, (size_t)max_bytes, &buf, &len, err);
    if (st) return st;
    st = meld_csv_parse((const char *)buf, len, path, out, err);
    mmspcl_free(buf);
    return st;
}

void meld_csv_free(meld_csv *m) {
    free(m->rows);
    free(m->dialogue_start);
    free(m->text);
    memset(m, 0, sizeof *m);
}
#endif /* MELD_CSV_IMPLEMENTATION_DONE */
#endif /* MELD_CSV_IMPLEMENTATION */
