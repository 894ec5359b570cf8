/* ---------------------------------------------------------------------------------------------
   MELD transcripts
   ------------------------------------------------------------------------------------------ */
const char *const mmspcl_emotion_names[MMSPCL_NUM_EMOTIONS] = {"neutral", "joy", "sadness", "surprise",
                                                                "fear", "disgust", "anger"};
const char *const mmspcl_sentiment_names[MMSPCL_NUM_SENTIMENTS] = {"neutral", "positive", "negative"};

static int mmspcl__name_index(const char *const *names, int n, const char *s) {
    int i, j;
    for (i = 0; i < n; i++) {
        for (j = 0; names[i][j] && s[j] && (s[j] | 32) == names[i][j]; j++) {}
        if (!names[i][j] && !s[j]) return i;
    }
    return -1;
}
int mmspcl_emotion_id(const char *name) { return mmspcl__name_index(mmspcl_emotion_names, MMSPCL_NUM_EMOTIONS, name); }
int mmspcl_sentiment_id(const char *name) { return mmspcl__name_index(mmspcl_sentiment_names, MMSPCL_NUM_SENTIMENTS, name); }

/* One CSV record starting at *pos: fields are unquoted in place into out (NUL-separated),
   starts[] receives each field's offset. Returns the field count, or -1 on an unterminated
   quote / text after a closing quote, -2 when there are more than max_fields fields. */
static int mmspcl__csv_record(const char *s, size_t n, size_t *pos, char *out, size_t *out_len,
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

static int mmspcl__parse_int64(const char *s, int64_t *v) {
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

mmspcl_status mmspcl_meld_parse(const char *bytes, size_t size, const char *label, mmspcl_meld *out,
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
    if ((uint64_t)size > (uint64_t)MMSPCL_MELD_MAX_BYTES || size > (SIZE_MAX - 64) / 2)  /* 32-bit: size * 2 */
        return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "%s: %zu bytes is over the limit of %lld (MMSPCL_MELD_MAX_BYTES)",
                            label, size, (long long)MMSPCL_MELD_MAX_BYTES);
    if (!(out->text = (char *)MMSPCL_MALLOC(size * 2 + 64)))
        return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "%s: out of memory for %zu bytes", label, size);
    nf = mmspcl__csv_record(bytes, size, &pos, out->text, &olen, starts, 64, &line);
    if (nf <= 0) { st = mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: line 1: cannot read the header", label); goto fail; }
    n_header = nf;
    header = out->text;
    for (i = 0; i < NCOL; i++) {
        int f;
        col[i] = -1;
        for (f = 0; f < nf; f++) if (!strcmp(header + starts[f], colnames[i])) col[i] = f;
    }
    if (col[UTT] < 0 || col[SPK] < 0) {
        st = mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: line 1: the header has no Utterance or Speaker column", label);
        goto fail;
    }
    while (pos < size) {
        mmspcl_meld_row *r;
        int row_line = ++line;
        if (bytes[pos] == '\n' || bytes[pos] == '\r') {         /* blank line */
            if (bytes[pos] == '\r') pos++;
            if (pos < size && bytes[pos] == '\n') pos++;
            continue;
        }
        nf = mmspcl__csv_record(bytes, size, &pos, out->text, &olen, starts, 64, &line);
        if (nf < 0) { st = mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: line %d: %s", label, row_line, nf == -1 ? "bad quoting" : "too many fields"); goto fail; }
        if (nf != n_header) {
            st = mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: line %d: %d fields, the header has %d", label, row_line, nf, n_header);
            goto fail;
        }
        if (out->n_rows == cap) {
            int nc = cap ? cap * 2 : 1024;
            mmspcl_meld_row *p = (mmspcl_meld_row *)MMSPCL_REALLOC(out->rows, (size_t)nc * sizeof *p);
            if (!p) { st = mmspcl__fail(err, MMSPCL_ERR_NOMEM, "%s: out of memory", label); goto fail; }
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
            st = mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: line %d: unknown emotion '%.40s'", label, row_line, out->text + starts[col[EMO]]);
            goto fail;
        }
        if (col[SEN] >= 0 && (r->sentiment = mmspcl_sentiment_id(out->text + starts[col[SEN]])) < 0) {
            st = mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: line %d: unknown sentiment '%.40s'", label, row_line, out->text + starts[col[SEN]]);
            goto fail;
        }
        if ((col[DIA] >= 0 && mmspcl__parse_int64(out->text + starts[col[DIA]], &r->dialogue_id)) ||
            (col[UID] >= 0 && mmspcl__parse_int64(out->text + starts[col[UID]], &r->utterance_id))) {
            st = mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: line %d: Dialogue_ID / Utterance_ID is not a number", label, row_line);
            goto fail;
        }
        if (out->n_dialogues + 2 > dcap) {
            int nc = dcap ? dcap * 2 : 256;
            int *p = (int *)MMSPCL_REALLOC(out->dialogue_start, (size_t)nc * sizeof *p);
            if (!p) { st = mmspcl__fail(err, MMSPCL_ERR_NOMEM, "%s: out of memory", label); goto fail; }
            out->dialogue_start = p;
            dcap = nc;
        }
        if (out->n_rows == 0 || r->dialogue_id != out->rows[out->n_rows - 1].dialogue_id)
            out->dialogue_start[out->n_dialogues++] = out->n_rows;
        out->n_rows++;
    }
    if (out->n_rows == 0) { st = mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: no rows after the header", label); goto fail; }
    out->dialogue_start[out->n_dialogues] = out->n_rows;
    return MMSPCL_OK;
fail:
    mmspcl_meld_free(out);
    return st;
}

#ifndef MMSPCL_NO_STDIO
mmspcl_status mmspcl_meld_load(const char *path, mmspcl_meld *out, mmspcl_error *err) {
    const int64_t max_bytes = MMSPCL_MELD_MAX_BYTES; /* a variable: no -Wtype-limits where long is 32 bits */
    FILE *f = fopen(path, "rb");
    char *buf;
    long len;
    mmspcl_status st;
    memset(out, 0, sizeof *out);
    if (!f) return mmspcl__fail(err, MMSPCL_ERR_IO, "%s: cannot open", path);
    if (fseek(f, 0, SEEK_END) || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) { fclose(f); return mmspcl__fail(err, MMSPCL_ERR_IO, "%s: cannot read", path); }
    /* checked before allocating; a folder may report a huge size: read one byte first */
    if (len > 0 && (fgetc(f) == EOF || fseek(f, 0, SEEK_SET))) { fclose(f); return mmspcl__fail(err, MMSPCL_ERR_IO, "%s: cannot read (a folder?)", path); }
    if ((int64_t)len > max_bytes) { fclose(f); return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "%s: %ld bytes is over the limit of %lld (MMSPCL_MELD_MAX_BYTES)", path, len, (long long)max_bytes); }
    if (!(buf = (char *)MMSPCL_MALLOC((size_t)len + 1))) { fclose(f); return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "%s: out of memory", path); }
    if (fread(buf, 1, (size_t)len, f) != (size_t)len) { fclose(f); MMSPCL_FREE(buf); return mmspcl__fail(err, MMSPCL_ERR_IO, "%s: short read", path); }
    fclose(f);
    st = mmspcl_meld_parse(buf, (size_t)len, path, out, err);
    MMSPCL_FREE(buf);
    return st;
}
#endif

void mmspcl_meld_free(mmspcl_meld *m) {
    MMSPCL_FREE(m->rows);
    MMSPCL_FREE(m->dialogue_start);
    MMSPCL_FREE(m->text);
    memset(m, 0, sizeof *m);
}
