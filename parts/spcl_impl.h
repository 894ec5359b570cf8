/* ---------------------------------------------------------------------------------------------
   SPCL prompt and text embedding
   ------------------------------------------------------------------------------------------ */

/* SPCL's MELD cleaning: ’ -> ', drop ". Returns a new NUL-terminated string (caller frees). */
static char *mmspcl__spcl_clean(const char *speaker, const char *sep, const char *text) {
    size_t ns = strlen(speaker), np = strlen(sep), nt = strlen(text), i, o = 0;
    char *s = (char *)MMSPCL_MALLOC(ns + np + nt + 1);
    if (!s) return NULL;
    memcpy(s, speaker, ns);
    memcpy(s + ns, sep, np);
    o = ns + np;
    for (i = 0; i < nt; i++) {
        if ((unsigned char)text[i] == 0xE2 && i + 2 < nt && (unsigned char)text[i + 1] == 0x80 &&
            (unsigned char)text[i + 2] == 0x99) { s[o++] = '\''; i += 2; continue; }
        if (text[i] == '"') continue;
        s[o++] = text[i];
    }
    s[o] = 0;
    return s;
}

/* bpe(text) appended to a growing id list. */
static mmspcl_status mmspcl__spcl_tokenize(const mmspcl_bpe *tok, const char *text, int32_t **ids,
                                           int *n, int *cap) {
    size_t len = strlen(text);
    for (;;) {
        int need = mmspcl_bpe_encode(tok, text, len, *ids + *n, *cap - *n);
        if (need < 0) return MMSPCL_ERR_ARG;
        if (need <= *cap - *n) { *n += need; return MMSPCL_OK; }
        {
            int nc = (*n + need) * 2 + 64;
            int32_t *p = (int32_t *)MMSPCL_REALLOC(*ids, (size_t)nc * sizeof(int32_t));
            if (!p) return MMSPCL_ERR_NOMEM;
            *ids = p;
            *cap = nc;
        }
    }
}

mmspcl_status mmspcl_spcl_prompts(const mmspcl_bpe *tok, const mmspcl_turn *turns, int n_turns,
                                  int max_len, int32_t *ids, int *lengths, int *mask_pos,
                                  mmspcl_error *err) {
    int32_t *all = NULL, *query = NULL;
    int *start = NULL, n_all = 0, cap_all = 0, n_query = 0, cap_query = 0, t;
    const int32_t bos = mmspcl_bpe_token_id(tok, "<s>"), eos = mmspcl_bpe_token_id(tok, "</s>");
    const int32_t mask = mmspcl_bpe_token_id(tok, "<mask>"), pad = mmspcl_bpe_token_id(tok, "<pad>");
    mmspcl_status st = MMSPCL_OK;
    if (n_turns < 1 || max_len < 16) return mmspcl__fail(err, MMSPCL_ERR_ARG, "spcl_prompts: need >= 1 turn and max_len >= 16");
    if (bos < 0 || eos < 0 || mask < 0)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "spcl_prompts: the vocabulary lacks <s>, </s> or <mask>");
    if (!(start = (int *)MMSPCL_MALLOC((size_t)(n_turns + 1) * sizeof(int)))) {
        st = mmspcl__fail(err, MMSPCL_ERR_NOMEM, "spcl_prompts: out of memory");
        goto done;
    }
    /* u_j for every turn, stored back to back: u_j = all[start[j] .. start[j+1]) */
    for (t = 0; t < n_turns; t++) {
        char *s = mmspcl__spcl_clean(turns[t].speaker ? turns[t].speaker : "", ":", turns[t].text ? turns[t].text : "");
        start[t] = n_all;
        if (!s) { st = MMSPCL_ERR_NOMEM; break; }
        st = mmspcl__spcl_tokenize(tok, s, &all, &n_all, &cap_all);
        MMSPCL_FREE(s);
        if (st) break;
        if (n_all + 1 > cap_all) {
            int32_t *p = (int32_t *)MMSPCL_REALLOC(all, (size_t)(cap_all + 64) * sizeof(int32_t));
            if (!p) { st = MMSPCL_ERR_NOMEM; break; }
            all = p;
            cap_all += 64;
        }
        all[n_all++] = eos;
    }
    start[n_turns] = n_all;
    if (!st) st = mmspcl__spcl_tokenize(tok, "For utterance:", &query, &n_query, &cap_query);
    if (st) { st = mmspcl__fail(err, st, "spcl_prompts: tokenising failed (%s)", mmspcl_status_name(st)); goto done; }

    for (t = 0; t < n_turns; t++) {
        int32_t *tail = NULL;
        int n_tail = 0, cap_tail = 0, l = 0, j, len_t = start[t + 1] - start[t], total, skip, o;
        char *p = mmspcl__spcl_clean(turns[t].speaker ? turns[t].speaker : "", " feels <mask>", "");
        if (!p) { st = mmspcl__fail(err, MMSPCL_ERR_NOMEM, "spcl_prompts: out of memory"); goto done; }
        st = mmspcl__spcl_tokenize(tok, p, &tail, &n_tail, &cap_tail);
        MMSPCL_FREE(p);
        if (st) { MMSPCL_FREE(tail); st = mmspcl__fail(err, st, "spcl_prompts: tokenising failed"); goto done; }
        for (j = 0; j < t; j++) {          /* SPCL's loop: the first start that leaves room */
            l = j;
            if ((start[t + 1] - start[j]) + 8 + len_t <= max_len) break;
        }
        if (l < t - MMSPCL_SPCL_MAX_CONTEXT) l = t - MMSPCL_SPCL_MAX_CONTEXT;
        total = 1 + (start[t + 1] - start[l]) + n_query + len_t + n_tail + 1;
        skip = total > max_len ? total - max_len : 0;   /* keep the last max_len ids */
        o = 0;
#define MMSPCL__EMIT(id) do { if (skip > 0) skip--; else ids[(size_t)t * max_len + o++] = (id); } while (0)
        MMSPCL__EMIT(bos);
        for (j = start[l]; j < start[t + 1]; j++) MMSPCL__EMIT(all[j]);
        for (j = 0; j < n_query; j++) MMSPCL__EMIT(query[j]);
        for (j = start[t]; j < start[t + 1]; j++) MMSPCL__EMIT(all[j]);
        for (j = 0; j < n_tail; j++) MMSPCL__EMIT(tail[j]);
        MMSPCL__EMIT(eos);
#undef MMSPCL__EMIT
        MMSPCL_FREE(tail);
        lengths[t] = o;
        mask_pos[t] = 0;
        for (j = 0; j < o; j++)
            if (ids[(size_t)t * max_len + j] == mask) { mask_pos[t] = j; break; }
        for (j = o; j < max_len; j++) ids[(size_t)t * max_len + j] = pad >= 0 ? pad : 1;
    }
done:
    MMSPCL_FREE(all);
    MMSPCL_FREE(query);
    MMSPCL_FREE(start);
    return st;
}

mmspcl_status mmspcl_spcl_embed_dialogue(mmspcl_roberta *m, const mmspcl_bpe *tok,
                                         const mmspcl_turn *turns, int n_turns, int max_len,
                                         float *z, mmspcl_error *err) {
    const int H = m->cfg.hidden_size;
    const int max_batch = m->max_tokens / max_len > 0 ? m->max_tokens / max_len : 1;
    int32_t *ids = (int32_t *)MMSPCL_MALLOC((size_t)n_turns * max_len * sizeof(int32_t));
    int *lengths = (int *)MMSPCL_MALLOC((size_t)n_turns * sizeof(int));
    int *mask_pos = (int *)MMSPCL_MALLOC((size_t)n_turns * sizeof(int));
    float *hidden = (float *)MMSPCL_MALLOC((size_t)max_batch * max_len * H * sizeof(float));
    mmspcl_status st;
    int t0, b;
    if (!ids || !lengths || !mask_pos || !hidden) {
        st = mmspcl__fail(err, MMSPCL_ERR_NOMEM, "spcl_embed_dialogue: out of memory");
        goto done;
    }
    if ((st = mmspcl_spcl_prompts(tok, turns, n_turns, max_len, ids, lengths, mask_pos, err))) goto done;
    for (t0 = 0; t0 < n_turns; t0 += max_batch) {
        int nb = n_turns - t0 < max_batch ? n_turns - t0 : max_batch;
        if ((st = mmspcl_roberta_forward(m, ids + (size_t)t0 * max_len, lengths + t0, nb, max_len, hidden, err))) goto done;
        for (b = 0; b < nb; b++)
            memcpy(z + (size_t)(t0 + b) * H, hidden + ((size_t)b * max_len + mask_pos[t0 + b]) * H, (size_t)H * sizeof(float));
    }
done:
    MMSPCL_FREE(ids);
    MMSPCL_FREE(lengths);
    MMSPCL_FREE(mask_pos);
    MMSPCL_FREE(hidden);
    return st;
}
