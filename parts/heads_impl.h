/* ---------------------------------------------------------------------------------------------
   MM-SPCL heads (implementation). Internal helpers: static, prefix mmspcl__heads_.
   The numeric work is done by the kernels; these functions only arrange rows and sequences.
   ------------------------------------------------------------------------------------------ */

mmspcl_head_linear mmspcl_head_linear_f32(const float *w, const float *b, int in, int out) {
    mmspcl_head_linear l;
    memset(&l, 0, sizeof l);
    l.w.dtype = MMSPCL_F32;
    l.w.ndim = 2;
    l.w.ne[0] = out;
    l.w.ne[1] = in;
    l.w.data = w;
    l.w.nbytes = sizeof(float) * (size_t)in * (size_t)out;
    l.b = b;
    l.in = in;
    l.out = out;
    return l;
}

mmspcl_status mmspcl_head_linear_forward(const mmspcl_head_linear *l, const float *x, float *y, int n) {
    if (n <= 0) return MMSPCL_OK;
    return mmspcl_linear(y, x, n, l->in, &l->w, l->b);
}

void mmspcl_head_ln_forward(const mmspcl_head_ln *l, const float *x, float *y, int n) {
    mmspcl_layernorm(y, x, l->g, l->b, n, l->dim, l->eps);
}

static void mmspcl__heads_act(float *x, size_t n, mmspcl_act act) {
    size_t i;
    if (act == MMSPCL_ACT_GELU) { mmspcl_gelu(x, n); return; }
    for (i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

mmspcl_status mmspcl_head_mlp_forward(const mmspcl_head_mlp *m, const float *x, float *y, int n,
                                      float *hidden) {
    mmspcl_status st = mmspcl_head_linear_forward(&m->fc1, x, hidden, n);
    if (st) return st;
    mmspcl__heads_act(hidden, (size_t)n * (size_t)m->fc1.out, m->act);
    return mmspcl_head_linear_forward(&m->fc2, hidden, y, n);
}

size_t mmspcl_head_block_scratch(const mmspcl_head_block *b, int nb, int tq, int tk) {
    size_t D = (size_t)b->ln_q.dim, F = (size_t)b->ff.fc1.out, nk = (size_t)(b->cross ? tk : tq);
    size_t q = (size_t)nb * (size_t)tq, k = (size_t)nb * nk;
    /* xln, q, ctx, tmp: q rows; kvln (cross), k, v: k rows; hidden; attention scratch */
    return 4 * q * D + (b->cross ? k * D : 0) + 2 * k * D + q * F + mmspcl_attention_scratch((int)nk);
}

mmspcl_status mmspcl_head_block_forward(const mmspcl_head_block *b, float *x, int nb, int tq,
                                        const float *src, int tk, const unsigned char *kmask,
                                        float *scratch) {
    const int D = b->ln_q.dim, H = b->attn.n_heads, dh = D / H, nk = b->cross ? tk : tq;
    const size_t qn = (size_t)nb * tq * D, kn = (size_t)nb * nk * D;
    float *xln = scratch, *q = xln + qn, *ctx = q + qn, *tmp = ctx + qn;
    float *kvln = tmp + qn, *k = kvln + (b->cross ? kn : 0), *v = k + kn, *hid = v + kn;
    float *att = hid + (size_t)nb * tq * b->ff.fc1.out;
    const float *kv = xln;
    mmspcl_status st;
    size_t i;
    int s;
    mmspcl_head_ln_forward(&b->ln_q, x, xln, nb * tq);
    if (b->cross) { mmspcl_head_ln_forward(&b->ln_kv, src, kvln, nb * tk); kv = kvln; }
    if ((st = mmspcl_head_linear_forward(&b->attn.q, xln, q, nb * tq))) return st;
    if ((st = mmspcl_head_linear_forward(&b->attn.k, kv, k, nb * nk))) return st;
    if ((st = mmspcl_head_linear_forward(&b->attn.v, kv, v, nb * nk))) return st;
    for (s = 0; s < nb; s++) {
        const unsigned char *ms = kmask ? kmask + (size_t)s * nk : NULL;
        float *cs = ctx + (size_t)s * tq * D;
        int j, any = !ms;
        for (j = 0; ms && j < nk; j++) any |= ms[j] != 0;
        if (!any) { for (i = 0; i < (size_t)tq * D; i++) cs[i] = 0.0f; continue; }
        mmspcl_attention(cs, D, q + (size_t)s * tq * D, D, k + (size_t)s * nk * D, v + (size_t)s * nk * D,
                         D, tq, nk, H, dh, ms, att);
    }
    if ((st = mmspcl_head_linear_forward(&b->attn.o, ctx, tmp, nb * tq))) return st;
    for (i = 0; i < qn; i++) x[i] += tmp[i];
    mmspcl_head_ln_forward(&b->ln_ff, x, xln, nb * tq);
    if ((st = mmspcl_head_mlp_forward(&b->ff, xln, tmp, nb * tq, hid))) return st;
    for (i = 0; i < qn; i++) x[i] += tmp[i];
    return MMSPCL_OK;
}

/* cosine as torch.nn.functional.cosine_similarity: a.b / (max(|a|, eps) max(|b|, eps)) */
static double mmspcl__heads_cos(const float *a, const float *b, int n) {
    double ab = 0, aa = 0, bb = 0;
    int i;
    for (i = 0; i < n; i++) { ab += (double)a[i] * b[i]; aa += (double)a[i] * a[i]; bb += (double)b[i] * b[i]; }
    aa = sqrt(aa); bb = sqrt(bb);
    return ab / ((aa > 1e-8 ? aa : 1e-8) * (bb > 1e-8 ? bb : 1e-8));
}

float mmspcl_score(const float *a, const float *b, int d) {
    return (float)((1.0 + mmspcl__heads_cos(a, b, d)) / 2.0 + 1e-8);
}

/* --- cross-modal pruning ------------------------------------------------------------------- */
/* one sample: o [dp] = xp with the chosen heads zeroed (o may be xp) */
static void mmspcl__heads_prune_row(const float *xb, int db, const float *xp, int dp, int K, float *o,
                                    unsigned char *kp) {
    const int nb = db / K, np = (dp + K - 1) / K;
    int hb, hp, j;
    memmove(o, xp, sizeof(float) * (size_t)dp);
    if (kp) for (hp = 0; hp < np; hp++) kp[hp] = 1;
    for (hb = 0; hb < nb; hb++) {
        int best = 0;
        double bc = -2;
        for (hp = 0; hp < np; hp++) {
            int w = (hp + 1) * K <= dp ? K : dp - hp * K;
            double c = mmspcl__heads_cos(xb + (size_t)hb * K, xp + (size_t)hp * K, w);
            if (c > bc) { bc = c; best = hp; }
        }
        if (kp) kp[best] = 0;
        for (j = best * K; j < (best + 1) * K && j < dp; j++) o[j] = 0.0f;
    }
}

mmspcl_status mmspcl_prune_apply(const float *base, int db, const float *prune, int dp, int K,
                                 int n, float *pruned, unsigned char *kept, mmspcl_error *err) {
    const int np = K > 0 ? (dp + K - 1) / K : 0;
    int i;
    if (K <= 0 || db <= 0 || dp <= 0 || db % K != 0 || n < 0)
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "prune: base width %d must be a positive multiple of head size %d (pruning width %d)", db, K, dp);
    MMSPCL__OMP_FOR
    for (i = 0; i < n; i++)
        mmspcl__heads_prune_row(base + (size_t)i * db, db, prune + (size_t)i * dp, dp, K, pruned + (size_t)i * dp,
                                kept ? kept + (size_t)i * np : NULL);
    return MMSPCL_OK;
}

mmspcl_status mmspcl_prune_forward(const float *base, int db, const float *prune, int dp, int K,
                                   int n, float *out, unsigned char *kept, mmspcl_error *err) {
    const int np = K > 0 ? (dp + K - 1) / K : 0;
    int i;
    if (K <= 0 || db <= 0 || dp <= 0 || db % K != 0 || n < 0)
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "prune: base width %d must be a positive multiple of head size %d (pruning width %d)", db, K, dp);
    MMSPCL__OMP_FOR
    for (i = 0; i < n; i++) {
        float *o = out + (size_t)i * (db + dp);
        memcpy(o, base + (size_t)i * db, sizeof(float) * (size_t)db);
        mmspcl__heads_prune_row(base + (size_t)i * db, db, prune + (size_t)i * dp, dp, K, o + db,
                                kept ? kept + (size_t)i * np : NULL);
    }
    return MMSPCL_OK;
}

/* --- fusion (a) ---------------------------------------------------------------------------- */
/* out [n][sum of the dims in mods] = concatenation of x[m] rows, m in t, a, v order */
static void mmspcl__heads_concat(const float *const x[3], const int dims[3], unsigned mods, int n,
                                 float *out) {
    int i, m, total = 0, off;
    for (m = 0; m < 3; m++) if (mods & (1u << m)) total += dims[m];
    for (i = 0; i < n; i++) {
        off = 0;
        for (m = 0; m < 3; m++) {
            if (!(mods & (1u << m))) continue;
            memcpy(out + (size_t)i * total + off, x[m] + (size_t)i * dims[m], sizeof(float) * (size_t)dims[m]);
            off += dims[m];
        }
    }
}

#define MMSPCL__HEADS_CHUNK 64

mmspcl_status mmspcl_fuse_linear_forward(const mmspcl_fuse_linear *f, const float *const x[3], int n,
                                         float *y, mmspcl_error *err) {
    unsigned mods = 0;
    int m, i;
    float *buf;
    for (m = 0; m < 3; m++) if (f->dims[m] > 0) {
        if (!x[m]) return mmspcl__fail(err, MMSPCL_ERR_ARG, "fuse_linear: modality %d has width %d but no input", m, f->dims[m]);
        mods |= 1u << m;
    }
    buf = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)MMSPCL__HEADS_CHUNK * (size_t)f->proj.in);
    if (!buf) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "fuse_linear: out of memory");
    for (i = 0; i < n; i += MMSPCL__HEADS_CHUNK) {
        int nn = n - i < MMSPCL__HEADS_CHUNK ? n - i : MMSPCL__HEADS_CHUNK;
        const float *xs[3];
        for (m = 0; m < 3; m++) xs[m] = x[m] ? x[m] + (size_t)i * f->dims[m] : NULL;
        mmspcl__heads_concat(xs, f->dims, mods, nn, buf);
        if (mmspcl_head_linear_forward(&f->proj, buf, y + (size_t)i * f->proj.out, nn)) {
            MMSPCL_FREE(buf);
            return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "fuse_linear: out of memory");
        }
    }
    MMSPCL_FREE(buf);
    return MMSPCL_OK;
}

/* --- token sequences shared by MulT and MBT ------------------------------------------------ */
/* e [ns][seq][D] = x [ns][seq][tok] W^T + b + pos */
static mmspcl_status mmspcl__heads_embed(const mmspcl_head_linear *proj, const float *pos, const float *x,
                                         int ns, int seq, float *e) {
    const int D = proj->out;
    size_t s, q, per = (size_t)seq * D;
    mmspcl_status st = mmspcl_head_linear_forward(proj, x, e, ns * seq);
    if (st) return st;
    for (s = 0; s < (size_t)ns; s++)
        for (q = 0; q < per; q++) e[s * per + q] += pos[q];
    return MMSPCL_OK;
}

/* LN over every token, then the mean over each sequence's tokens: out row s at out + s * ld */
static void mmspcl__heads_ln_pool(const mmspcl_head_ln *ln, const float *x, int ns, int seq, float *tmp,
                                  float *out, int ld) {
    int s, t, d, D = ln->dim;
    mmspcl_head_ln_forward(ln, x, tmp, ns * seq);
    for (s = 0; s < ns; s++)
        for (d = 0; d < D; d++) {
            float acc = 0;
            for (t = 0; t < seq; t++) acc += tmp[((size_t)s * seq + t) * D + d];
            out[(size_t)s * ld + d] = acc / (float)seq;
        }
}

static size_t mmspcl__heads_max_block_scratch(const mmspcl_head_block *b, int nblocks, int ns, int tmax) {
    size_t s = 0, t;
    int i;
    for (i = 0; i < nblocks; i++) { t = mmspcl_head_block_scratch(&b[i], ns, tmax, tmax); if (t > s) s = t; }
    return s;
}

mmspcl_status mmspcl_mult_forward(const mmspcl_mult *m, const float *const x[3], int n, float *y,
                                  mmspcl_error *err) {
    const int D = m->d_model, L = m->n_cross + m->n_self, CH = MMSPCL__HEADS_CHUNK;
    int tmax = 1, etot = 0, mi, i;
    size_t bs;
    float *buf;
    mmspcl_status st = MMSPCL_OK;
    for (mi = 0; mi < 3; mi++) if (m->seq[mi] > 0) {
        if (!x[mi]) return mmspcl__fail(err, MMSPCL_ERR_ARG, "mult: modality %d has %d tokens but no input", mi, m->seq[mi]);
        if (m->seq[mi] > tmax) tmax = m->seq[mi];
        etot += m->seq[mi];
    }
    bs = mmspcl__heads_max_block_scratch(m->blocks, m->n_pairs * L, CH, tmax);
    buf = (float *)MMSPCL_MALLOC(sizeof(float) * ((size_t)CH * ((size_t)etot * D + 2 * (size_t)tmax * D + (size_t)m->n_pairs * D) + bs));
    if (!buf) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "mult: out of memory for a chunk of %d samples", CH);
    for (i = 0; i < n && !st; i += CH) {
        const int ns = n - i < CH ? n - i : CH;
        float *e[3], *h, *tmp, *pooled, *bscr, *p = buf;
        int a, b2, pi = 0, l;
        for (mi = 0; mi < 3; mi++) {
            e[mi] = NULL;
            if (m->seq[mi] <= 0) continue;
            e[mi] = p; p += (size_t)CH * m->seq[mi] * D;
            if (!st) st = mmspcl__heads_embed(&m->in_proj[mi], m->pos[mi], x[mi] + (size_t)i * m->seq[mi] * m->tok[mi], ns, m->seq[mi], e[mi]);
        }
        h = p; p += (size_t)CH * tmax * D;
        tmp = p; p += (size_t)CH * tmax * D;
        pooled = p; p += (size_t)CH * m->n_pairs * D;
        bscr = p;
        for (a = 0; a < 3 && !st; a++) {
            if (m->seq[a] <= 0) continue;
            for (b2 = 0; b2 < 3 && !st; b2++) {
                const mmspcl_head_block *blk;
                if (b2 == a || m->seq[b2] <= 0) continue;
                blk = m->blocks + (size_t)pi * L;
                memcpy(h, e[a], sizeof(float) * (size_t)ns * m->seq[a] * D);
                for (l = 0; l < L && !st; l++)
                    st = mmspcl_head_block_forward(&blk[l], h, ns, m->seq[a], blk[l].cross ? e[b2] : NULL,
                                                   m->seq[b2], NULL, bscr);
                mmspcl__heads_ln_pool(&m->final_ln[pi], h, ns, m->seq[a], tmp, pooled + (size_t)pi * D, m->n_pairs * D);
                pi++;
            }
        }
        if (!st) st = mmspcl_head_linear_forward(&m->out_proj, pooled, y + (size_t)i * m->out_dim, ns);
    }
    MMSPCL_FREE(buf);
    if (st) return mmspcl__fail(err, st, "mult: out of memory in a kernel");
    return MMSPCL_OK;
}

void mmspcl_mult_free(mmspcl_mult *m) {
    MMSPCL_FREE(m->blocks);
    MMSPCL_FREE(m->final_ln);
    m->blocks = NULL;
    m->final_ln = NULL;
}

mmspcl_status mmspcl_mbt_forward(const mmspcl_mbt *m, const float *const x[3], int n, float *y,
                                 mmspcl_error *err) {
    const int D = m->d_model, L = m->n_layers, F = m->n_fusion, CH = MMSPCL__HEADS_CHUNK;
    int tmax = 1, ztot = 0, mi, i;
    size_t bs;
    float *buf;
    mmspcl_status st = MMSPCL_OK;
    for (mi = 0; mi < 3; mi++) if (m->seq[mi] > 0) {
        if (!x[mi]) return mmspcl__fail(err, MMSPCL_ERR_ARG, "mbt: modality %d has %d tokens but no input", mi, m->seq[mi]);
        if (m->seq[mi] + F > tmax) tmax = m->seq[mi] + F;
        ztot += m->seq[mi];
    }
    bs = mmspcl__heads_max_block_scratch(m->blocks, m->n_mod * L, CH, tmax);
    buf = (float *)MMSPCL_MALLOC(sizeof(float) * ((size_t)CH * ((size_t)ztot * D + 2 * (size_t)F * D + 2 * (size_t)tmax * D + (size_t)m->n_mod * D) + bs));
    if (!buf) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "mbt: out of memory for a chunk of %d samples", CH);
    for (i = 0; i < n && !st; i += CH) {
        const int ns = n - i < CH ? n - i : CH;
        float *z[3], *fsn, *fnew, *u, *tmp, *pooled, *bscr, *p = buf;
        int l, slot, s;
        size_t q, fd = (size_t)F * D;
        for (mi = 0; mi < 3; mi++) {
            z[mi] = NULL;
            if (m->seq[mi] <= 0) continue;
            z[mi] = p; p += (size_t)CH * m->seq[mi] * D;
            if (!st) st = mmspcl__heads_embed(&m->in_proj[mi], m->pos[mi], x[mi] + (size_t)i * m->seq[mi] * m->tok[mi], ns, m->seq[mi], z[mi]);
        }
        fsn = p; p += (size_t)CH * fd;
        fnew = p; p += (size_t)CH * fd;
        u = p; p += (size_t)CH * tmax * D;
        tmp = p; p += (size_t)CH * tmax * D;
        pooled = p; p += (size_t)CH * m->n_mod * D;
        bscr = p;
        for (s = 0; s < ns; s++) memcpy(fsn + (size_t)s * fd, m->fusion_tokens, sizeof(float) * fd);
        for (l = 0; l < L && !st; l++) {
            const int fuse = l >= m->fusion_start;
            if (fuse) for (q = 0; q < (size_t)ns * fd; q++) fnew[q] = 0.0f;
            for (mi = 0, slot = 0; mi < 3 && !st; mi++) {
                const int T = m->seq[mi];
                const mmspcl_head_block *blk;
                if (T <= 0) continue;
                blk = &m->blocks[(size_t)slot * L + l];
                slot++;
                if (!fuse) { st = mmspcl_head_block_forward(blk, z[mi], ns, T, NULL, 0, NULL, bscr); continue; }
                /* u = [own tokens ; fusion tokens] per sample */
                for (s = 0; s < ns; s++) {
                    memcpy(u + (size_t)s * (T + F) * D, z[mi] + (size_t)s * T * D, sizeof(float) * (size_t)T * D);
                    memcpy(u + ((size_t)s * (T + F) + T) * D, fsn + (size_t)s * fd, sizeof(float) * fd);
                }
                st = mmspcl_head_block_forward(blk, u, ns, T + F, NULL, 0, NULL, bscr);
                for (s = 0; s < ns; s++) {
                    memcpy(z[mi] + (size_t)s * T * D, u + (size_t)s * (T + F) * D, sizeof(float) * (size_t)T * D);
                    for (q = 0; q < fd; q++) fnew[(size_t)s * fd + q] += u[((size_t)s * (T + F) + T) * D + q];
                }
            }
            if (fuse) for (q = 0; q < (size_t)ns * fd; q++) fsn[q] = fnew[q] / (float)m->n_mod;
        }
        for (mi = 0, slot = 0; mi < 3; mi++) {
            if (m->seq[mi] <= 0) continue;
            mmspcl__heads_ln_pool(&m->final_ln[mi], z[mi], ns, m->seq[mi], tmp, pooled + (size_t)slot * D, m->n_mod * D);
            slot++;
        }
        if (!st) st = mmspcl_head_linear_forward(&m->out_proj, pooled, y + (size_t)i * m->out_dim, ns);
    }
    MMSPCL_FREE(buf);
    if (st) return mmspcl__fail(err, st, "mbt: out of memory in a kernel");
    return MMSPCL_OK;
}

void mmspcl_mbt_free(mmspcl_mbt *m) {
    MMSPCL_FREE(m->blocks);
    m->blocks = NULL;
}

/* --- MSVE ---------------------------------------------------------------------------------- */
mmspcl_status mmspcl_msve_forward(const mmspcl_msve *m, const float *const x[3], int n,
                                  unsigned combos, float *logits, mmspcl_error *err) {
    const int C = m->n_classes, CH = MMSPCL__HEADS_CHUNK;
    int c, mi, i, maxin = 0, maxh = 0, dtot = 0;
    float *buf, *z[3], *cat, *hid, *lg;
    size_t q;
    if (combos == 0) combos = m->combos;
    if (combos & ~m->combos)
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "msve: combinations 0x%x are not enabled (enabled 0x%x)", combos, m->combos);
    for (c = 1; c < 8; c++) {
        if (!(combos & MMSPCL_COMBO(c))) continue;
        for (mi = 0; mi < 3; mi++)
            if ((c & (1 << mi)) && (m->dims[mi] <= 0 || !x[mi]))
                return mmspcl__fail(err, MMSPCL_ERR_ARG, "msve: combination %d needs modality %d", c, mi);
        if (m->mlp[c].fc1.in > maxin) maxin = m->mlp[c].fc1.in;
        if (m->mlp[c].fc1.out > maxh) maxh = m->mlp[c].fc1.out;
    }
    for (mi = 0; mi < 3; mi++) if (m->dims[mi] > 0) dtot += m->dims[mi];
    buf = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)CH * ((size_t)dtot + maxin + maxh + C));
    if (!buf) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "msve: out of memory for a chunk of %d rows", CH);
    for (i = 0; i < n; i += CH) {
        int nn = n - i < CH ? n - i : CH, r;
        float *p = buf;
        for (mi = 0; mi < 3; mi++) {
            z[mi] = NULL;
            if (m->dims[mi] <= 0 || !x[mi]) continue;
            z[mi] = p; p += (size_t)CH * m->dims[mi];
            for (r = 0; r < nn; r++) {
                int d;
                for (d = 0; d < m->dims[mi]; d++) {
                    float v = x[mi][(size_t)(i + r) * m->dims[mi] + d];
                    if (m->mean[mi]) v -= m->mean[mi][d];
                    if (m->std[mi]) v /= m->std[mi][d];
                    z[mi][(size_t)r * m->dims[mi] + d] = v;
                }
            }
        }
        cat = p; p += (size_t)CH * maxin;
        hid = p; p += (size_t)CH * maxh;
        lg = p;
        for (q = 0; q < (size_t)nn * C; q++) logits[(size_t)i * C + q] = 0;
        for (c = 1; c < 8; c++) {
            if (!(combos & MMSPCL_COMBO(c))) continue;
            mmspcl__heads_concat((const float *const *)z, m->dims, (unsigned)c, nn, cat);
            if (mmspcl_head_mlp_forward(&m->mlp[c], cat, lg, nn, hid)) {
                MMSPCL_FREE(buf);
                return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "msve: out of memory in a kernel");
            }
            for (q = 0; q < (size_t)nn * C; q++) logits[(size_t)i * C + q] += lg[q];
        }
    }
    MMSPCL_FREE(buf);
    return MMSPCL_OK;
}

/* --- prototypes and metrics ---------------------------------------------------------------- */
void mmspcl_proto_classify(const float *z, int n, int dim, const float *protos, int n_classes,
                           int *pred, float *scores) {
    int i;
    MMSPCL__OMP_FOR
    for (i = 0; i < n; i++) {
        int c, best = 0;
        float bs = -1;
        for (c = 0; c < n_classes; c++) {
            float s = mmspcl_score(z + (size_t)i * dim, protos + (size_t)c * dim, dim);
            if (scores) scores[(size_t)i * n_classes + c] = s;
            if (s > bs) { bs = s; best = c; }
        }
        pred[i] = best;
    }
}

void mmspcl_argmax_rows(const float *x, int n, int C, int *out) {
    int i, c;
    for (i = 0; i < n; i++) {
        const float *r = x + (size_t)i * C;
        int best = 0;
        for (c = 1; c < C; c++) if (r[c] > r[best]) best = c;
        out[i] = best;
    }
}

void mmspcl_confusion(const int *y_true, const int *y_pred, int n, int n_classes, int64_t *cm) {
    int i;
    for (i = 0; i < n_classes * n_classes; i++) cm[i] = 0;
    for (i = 0; i < n; i++) {
        if (y_true[i] < 0 || y_true[i] >= n_classes || y_pred[i] < 0 || y_pred[i] >= n_classes) continue;
        cm[(size_t)y_true[i] * n_classes + y_pred[i]]++;
    }
}

void mmspcl_metrics_from_confusion(const int64_t *cm, int n_classes, mmspcl_class_metrics *per_class,
                                   mmspcl_metrics *out) {
    int64_t total = 0, correct = 0;
    int c, k, present = 0;
    double wf = 0, wp = 0, wr = 0, mf = 0;
    for (c = 0; c < n_classes; c++) {
        int64_t tp = cm[(size_t)c * n_classes + c], sup = 0, pred = 0;
        double p, r, f;
        for (k = 0; k < n_classes; k++) { sup += cm[(size_t)c * n_classes + k]; pred += cm[(size_t)k * n_classes + c]; }
        p = pred > 0 ? (double)tp / (double)pred : 0.0;
        r = sup > 0 ? (double)tp / (double)sup : 0.0;
        f = (p + r) > 0 ? 2 * p * r / (p + r) : 0.0;
        if (per_class) { per_class[c].precision = p; per_class[c].recall = r; per_class[c].f1 = f; per_class[c].support = sup; }
        total += sup;
        correct += tp;
        wf += (double)sup * f; wp += (double)sup * p; wr += (double)sup * r;
        /* scikit-learn's macro average runs over the labels present in y_true or y_pred */
        if (sup > 0 || pred > 0) { mf += f; present++; }
    }
    out->n = total;
    out->accuracy = total ? (double)correct / (double)total : 0.0;
    out->weighted_f1 = total ? wf / (double)total : 0.0;
    out->weighted_precision = total ? wp / (double)total : 0.0;
    out->weighted_recall = total ? wr / (double)total : 0.0;
    out->macro_f1 = present ? mf / present : 0.0;
}

/* --- loading ------------------------------------------------------------------------------- */
static const char *const mmspcl__heads_mod_name[3] = { "t", "a", "v" };
static const char *const mmspcl__heads_combo_name[8] = { "", "t", "a", "ta", "v", "tv", "av", "tav" };

static mmspcl_status mmspcl__heads_f32(const mmspcl_weights *w, const char *name, int ndim,
                                       int64_t d0, int64_t d1, const float **out, mmspcl_error *err) {
    const mmspcl_tensor *t = NULL;
    int64_t ne[2];
    mmspcl_status st;
    ne[0] = d0; ne[1] = d1;
    st = mmspcl_weights_expect(w, name, ndim, ne, &t, err);
    if (st) return st;
    if (t->dtype != MMSPCL_F32)
        return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "tensor %s: heads need f32, file has %s", name, mmspcl_dtype_name(t->dtype));
    *out = (const float *)t->data;
    return MMSPCL_OK;
}

static mmspcl_status mmspcl__heads_int(const mmspcl_weights *w, const char *prefix, const char *key,
                                       int lo, int hi, int *out, mmspcl_error *err) {
    char name[256];
    int64_t v;
    snprintf(name, sizeof name, "%s.%s", prefix, key);
    if (!mmspcl_weights_get_int(w, name, &v))
        return mmspcl__fail(err, MMSPCL_ERR_NOT_FOUND, "integer key %s is missing", name);
    if (v < lo || v > hi)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "key %s = %lld is outside %d..%d", name, (long long)v, lo, hi);
    *out = (int)v;
    return MMSPCL_OK;
}

/* NAME.weight [out][in] in any kernel dtype, NAME.bias f32 [out] */
static mmspcl_status mmspcl__heads_linear(mmspcl_head_linear *l, const mmspcl_weights *w, const char *name,
                                          int in, int out, mmspcl_error *err) {
    char buf[512];
    const mmspcl_tensor *t = NULL;
    int64_t ne[2];
    mmspcl_status st;
    memset(l, 0, sizeof *l);
    l->in = in; l->out = out;
    snprintf(buf, sizeof buf, "%s.weight", name);
    ne[0] = out; ne[1] = in;
    if ((st = mmspcl_weights_expect(w, buf, 2, ne, &t, err))) return st;
    if (t->dtype == MMSPCL_I32 || mmspcl_dtype_row_size(t->dtype, in) == 0)
        return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "tensor %s: dtype %s cannot hold rows of %d values", buf, mmspcl_dtype_name(t->dtype), in);
    l->w = *t;
    snprintf(buf, sizeof buf, "%s.bias", name);
    return mmspcl__heads_f32(w, buf, 1, out, 0, &l->b, err);
}

mmspcl_status mmspcl_head_linear_load(mmspcl_head_linear *l, const mmspcl_weights *w, const char *name,
                                      mmspcl_error *err) {
    char buf[512];
    const mmspcl_tensor *t;
    snprintf(buf, sizeof buf, "%s.weight", name);
    t = mmspcl_weights_find(w, buf);
    if (!t) return mmspcl__fail(err, MMSPCL_ERR_NOT_FOUND, "tensor %s is missing", buf);
    if (t->ndim != 2 || t->ne[0] < 1 || t->ne[1] < 1 || t->ne[0] > (1 << 24) || t->ne[1] > (1 << 24))
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "tensor %s: expected [out][in]", buf);
    return mmspcl__heads_linear(l, w, name, (int)t->ne[1], (int)t->ne[0], err);
}

static mmspcl_status mmspcl__heads_lnorm(mmspcl_head_ln *l, const mmspcl_weights *w, const char *name,
                                         int dim, mmspcl_error *err) {
    char buf[512];
    mmspcl_status st;
    l->dim = dim; l->eps = 1e-5f;
    snprintf(buf, sizeof buf, "%s.weight", name);
    if ((st = mmspcl__heads_f32(w, buf, 1, dim, 0, &l->g, err))) return st;
    snprintf(buf, sizeof buf, "%s.bias", name);
    return mmspcl__heads_f32(w, buf, 1, dim, 0, &l->b, err);
}

static mmspcl_status mmspcl__heads_mlpl(mmspcl_head_mlp *m, const mmspcl_weights *w, const char *name,
                                        int in, int hidden, int out, mmspcl_act act, mmspcl_error *err) {
    char buf[512];
    mmspcl_status st;
    m->act = act;
    snprintf(buf, sizeof buf, "%s.fc1", name);
    if ((st = mmspcl__heads_linear(&m->fc1, w, buf, in, hidden, err))) return st;
    snprintf(buf, sizeof buf, "%s.fc2", name);
    return mmspcl__heads_linear(&m->fc2, w, buf, hidden, out, err);
}

static mmspcl_status mmspcl__heads_blockl(mmspcl_head_block *b, const mmspcl_weights *w, const char *name,
                                          int D, int H, int ff, mmspcl_act act, int cross, mmspcl_error *err) {
    char buf[512];
    mmspcl_status st;
    static const char *const qkvo[4] = { "q", "k", "v", "o" };
    mmspcl_head_linear *lin[4];
    int i;
    memset(b, 0, sizeof *b);
    b->cross = cross;
    b->attn.n_heads = H;
    lin[0] = &b->attn.q; lin[1] = &b->attn.k; lin[2] = &b->attn.v; lin[3] = &b->attn.o;
    snprintf(buf, sizeof buf, "%s.ln_q", name);
    if ((st = mmspcl__heads_lnorm(&b->ln_q, w, buf, D, err))) return st;
    if (cross) {
        snprintf(buf, sizeof buf, "%s.ln_kv", name);
        if ((st = mmspcl__heads_lnorm(&b->ln_kv, w, buf, D, err))) return st;
    }
    for (i = 0; i < 4; i++) {
        snprintf(buf, sizeof buf, "%s.attn.%s", name, qkvo[i]);
        if ((st = mmspcl__heads_linear(lin[i], w, buf, D, D, err))) return st;
    }
    snprintf(buf, sizeof buf, "%s.ln_ff", name);
    if ((st = mmspcl__heads_lnorm(&b->ln_ff, w, buf, D, err))) return st;
    snprintf(buf, sizeof buf, "%s.ff", name);
    return mmspcl__heads_mlpl(&b->ff, w, buf, D, ff * D, D, act, err);
}

mmspcl_status mmspcl_msve_load(mmspcl_msve *m, const mmspcl_weights *w, const char *prefix,
                               mmspcl_error *err) {
    char key[512];
    int c, mi, hidden, act, combos;
    mmspcl_status st;
    memset(m, 0, sizeof *m);
    if ((st = mmspcl__heads_int(w, prefix, "n_classes", 2, MMSPCL_MAX_CLASSES, &m->n_classes, err))) return st;
    if ((st = mmspcl__heads_int(w, prefix, "hidden", 1, 1 << 20, &hidden, err))) return st;
    if ((st = mmspcl__heads_int(w, prefix, "act", 0, 1, &act, err))) return st;
    if ((st = mmspcl__heads_int(w, prefix, "combos", 2, 0xFE, &combos, err))) return st;
    m->combos = (unsigned)combos & MMSPCL_COMBOS_ALL;
    for (mi = 0; mi < 3; mi++) {
        snprintf(key, sizeof key, "dim.%s", mmspcl__heads_mod_name[mi]);
        if ((st = mmspcl__heads_int(w, prefix, key, 0, 1 << 24, &m->dims[mi], err))) return st;
        if (m->dims[mi] == 0) continue;
        snprintf(key, sizeof key, "%s.mean.%s", prefix, mmspcl__heads_mod_name[mi]);
        if (mmspcl_weights_find(w, key) && (st = mmspcl__heads_f32(w, key, 1, m->dims[mi], 0, &m->mean[mi], err))) return st;
        snprintf(key, sizeof key, "%s.std.%s", prefix, mmspcl__heads_mod_name[mi]);
        if (mmspcl_weights_find(w, key) && (st = mmspcl__heads_f32(w, key, 1, m->dims[mi], 0, &m->std[mi], err))) return st;
    }
    for (c = 1; c < 8; c++) {
        int in = 0;
        if (!(m->combos & MMSPCL_COMBO(c))) continue;
        for (mi = 0; mi < 3; mi++) if (c & (1 << mi)) {
            if (m->dims[mi] == 0)
                return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: combination %s enabled but modality %s has width 0", prefix, mmspcl__heads_combo_name[c], mmspcl__heads_mod_name[mi]);
            in += m->dims[mi];
        }
        snprintf(key, sizeof key, "%s.%s", prefix, mmspcl__heads_combo_name[c]);
        if ((st = mmspcl__heads_mlpl(&m->mlp[c], w, key, in, hidden, m->n_classes, (mmspcl_act)act, err))) return st;
    }
    return MMSPCL_OK;
}

/* common part of MulT and MBT: per-modality token shapes, input projections, positions */
static mmspcl_status mmspcl__heads_seq_load(const mmspcl_weights *w, const char *prefix, int *seq, int *tok,
                                            int D, mmspcl_head_linear *in_proj, const float **pos,
                                            int *n_mod, mmspcl_error *err) {
    char key[512];
    int mi;
    mmspcl_status st;
    *n_mod = 0;
    for (mi = 0; mi < 3; mi++) {
        snprintf(key, sizeof key, "seq.%s", mmspcl__heads_mod_name[mi]);
        if ((st = mmspcl__heads_int(w, prefix, key, 0, 1 << 16, &seq[mi], err))) return st;
        snprintf(key, sizeof key, "tok.%s", mmspcl__heads_mod_name[mi]);
        if ((st = mmspcl__heads_int(w, prefix, key, 0, 1 << 20, &tok[mi], err))) return st;
        if (seq[mi] == 0) continue;
        if (tok[mi] == 0) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: modality %s has tokens of width 0", prefix, mmspcl__heads_mod_name[mi]);
        (*n_mod)++;
        snprintf(key, sizeof key, "%s.in.%s", prefix, mmspcl__heads_mod_name[mi]);
        if ((st = mmspcl__heads_linear(&in_proj[mi], w, key, tok[mi], D, err))) return st;
        snprintf(key, sizeof key, "%s.pos.%s", prefix, mmspcl__heads_mod_name[mi]);
        if ((st = mmspcl__heads_f32(w, key, 2, seq[mi], D, &pos[mi], err))) return st;
    }
    if (*n_mod < 2) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: needs at least two modalities", prefix);
    return MMSPCL_OK;
}

mmspcl_status mmspcl_mult_load(mmspcl_mult *m, const mmspcl_weights *w, const char *prefix,
                               mmspcl_error *err) {
    char key[512];
    int act, a, b, p = 0, l, L, n_mod;
    mmspcl_status st;
    memset(m, 0, sizeof *m);
    if ((st = mmspcl__heads_int(w, prefix, "d_model", 1, 1 << 16, &m->d_model, err))) return st;
    if ((st = mmspcl__heads_int(w, prefix, "n_heads", 1, m->d_model, &m->n_heads, err))) return st;
    if (m->d_model % m->n_heads) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: d_model %d not a multiple of n_heads %d", prefix, m->d_model, m->n_heads);
    if ((st = mmspcl__heads_int(w, prefix, "n_cross", 0, 64, &m->n_cross, err))) return st;
    if ((st = mmspcl__heads_int(w, prefix, "n_self", 0, 64, &m->n_self, err))) return st;
    if ((st = mmspcl__heads_int(w, prefix, "ff_mult", 1, 64, &m->ff_mult, err))) return st;
    if ((st = mmspcl__heads_int(w, prefix, "out_dim", 1, 1 << 20, &m->out_dim, err))) return st;
    if ((st = mmspcl__heads_int(w, prefix, "act", 0, 1, &act, err))) return st;
    m->act = (mmspcl_act)act;
    if ((st = mmspcl__heads_seq_load(w, prefix, m->seq, m->tok, m->d_model, m->in_proj, m->pos, &n_mod, err))) return st;
    m->n_pairs = n_mod * (n_mod - 1);
    L = m->n_cross + m->n_self;
    m->blocks = (mmspcl_head_block *)MMSPCL_MALLOC(sizeof(mmspcl_head_block) * (size_t)(m->n_pairs * L + 1));
    m->final_ln = (mmspcl_head_ln *)MMSPCL_MALLOC(sizeof(mmspcl_head_ln) * (size_t)m->n_pairs);
    if (!m->blocks || !m->final_ln) { mmspcl_mult_free(m); return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "%s: out of memory", prefix); }
    for (a = 0; a < 3; a++) {
        if (!m->seq[a]) continue;
        for (b = 0; b < 3; b++) {
            if (b == a || !m->seq[b]) continue;
            for (l = 0; l < L; l++) {
                snprintf(key, sizeof key, "%s.%s_%s.layer.%d", prefix, mmspcl__heads_mod_name[a], mmspcl__heads_mod_name[b], l);
                if ((st = mmspcl__heads_blockl(&m->blocks[(size_t)p * L + l], w, key, m->d_model, m->n_heads, m->ff_mult, m->act, l < m->n_cross, err))) { mmspcl_mult_free(m); return st; }
            }
            snprintf(key, sizeof key, "%s.%s_%s.ln", prefix, mmspcl__heads_mod_name[a], mmspcl__heads_mod_name[b]);
            if ((st = mmspcl__heads_lnorm(&m->final_ln[p], w, key, m->d_model, err))) { mmspcl_mult_free(m); return st; }
            p++;
        }
    }
    snprintf(key, sizeof key, "%s.out", prefix);
    if ((st = mmspcl__heads_linear(&m->out_proj, w, key, m->n_pairs * m->d_model, m->out_dim, err))) { mmspcl_mult_free(m); return st; }
    return MMSPCL_OK;
}

mmspcl_status mmspcl_mbt_load(mmspcl_mbt *m, const mmspcl_weights *w, const char *prefix,
                              mmspcl_error *err) {
    char key[512];
    int act, mi, slot = 0, l;
    mmspcl_status st;
    memset(m, 0, sizeof *m);
    if ((st = mmspcl__heads_int(w, prefix, "d_model", 1, 1 << 16, &m->d_model, err))) return st;
    if ((st = mmspcl__heads_int(w, prefix, "n_heads", 1, m->d_model, &m->n_heads, err))) return st;
    if (m->d_model % m->n_heads) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: d_model %d not a multiple of n_heads %d", prefix, m->d_model, m->n_heads);
    if ((st = mmspcl__heads_int(w, prefix, "n_layers", 1, 64, &m->n_layers, err))) return st;
    if ((st = mmspcl__heads_int(w, prefix, "fusion_start", 0, m->n_layers, &m->fusion_start, err))) return st;
    if ((st = mmspcl__heads_int(w, prefix, "n_fusion", 1, 1 << 12, &m->n_fusion, err))) return st;
    if ((st = mmspcl__heads_int(w, prefix, "ff_mult", 1, 64, &m->ff_mult, err))) return st;
    if ((st = mmspcl__heads_int(w, prefix, "out_dim", 1, 1 << 20, &m->out_dim, err))) return st;
    if ((st = mmspcl__heads_int(w, prefix, "act", 0, 1, &act, err))) return st;
    m->act = (mmspcl_act)act;
    if ((st = mmspcl__heads_seq_load(w, prefix, m->seq, m->tok, m->d_model, m->in_proj, m->pos, &m->n_mod, err))) return st;
    snprintf(key, sizeof key, "%s.fusion_tokens", prefix);
    if ((st = mmspcl__heads_f32(w, key, 2, m->n_fusion, m->d_model, &m->fusion_tokens, err))) return st;
    m->blocks = (mmspcl_head_block *)MMSPCL_MALLOC(sizeof(mmspcl_head_block) * (size_t)(m->n_mod * m->n_layers));
    if (!m->blocks) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "%s: out of memory", prefix);
    for (mi = 0; mi < 3; mi++) {
        if (!m->seq[mi]) continue;
        for (l = 0; l < m->n_layers; l++) {
            snprintf(key, sizeof key, "%s.%s.layer.%d", prefix, mmspcl__heads_mod_name[mi], l);
            if ((st = mmspcl__heads_blockl(&m->blocks[(size_t)slot * m->n_layers + l], w, key, m->d_model, m->n_heads, m->ff_mult, m->act, 0, err))) { mmspcl_mbt_free(m); return st; }
        }
        snprintf(key, sizeof key, "%s.%s.ln", prefix, mmspcl__heads_mod_name[mi]);
        if ((st = mmspcl__heads_lnorm(&m->final_ln[mi], w, key, m->d_model, err))) { mmspcl_mbt_free(m); return st; }
        slot++;
    }
    snprintf(key, sizeof key, "%s.out", prefix);
    if ((st = mmspcl__heads_linear(&m->out_proj, w, key, m->n_mod * m->d_model, m->out_dim, err))) { mmspcl_mbt_free(m); return st; }
    return MMSPCL_OK;
}

mmspcl_status mmspcl_fuse_linear_load(mmspcl_fuse_linear *f, const mmspcl_weights *w,
                                      const char *prefix, mmspcl_error *err) {
    char key[512];
    int mi, in = 0, out;
    mmspcl_status st;
    memset(f, 0, sizeof *f);
    for (mi = 0; mi < 3; mi++) {
        snprintf(key, sizeof key, "dim.%s", mmspcl__heads_mod_name[mi]);
        if ((st = mmspcl__heads_int(w, prefix, key, 0, 1 << 24, &f->dims[mi], err))) return st;
        in += f->dims[mi];
    }
    if ((st = mmspcl__heads_int(w, prefix, "out_dim", 1, 1 << 20, &out, err))) return st;
    snprintf(key, sizeof key, "%s.proj", prefix);
    return mmspcl__heads_linear(&f->proj, w, key, in, out, err);
}

mmspcl_status mmspcl_protos_load(const float **protos, int *n_classes, int *dim,
                                 const mmspcl_weights *w, const char *prefix, mmspcl_error *err) {
    char key[512];
    const mmspcl_tensor *t;
    snprintf(key, sizeof key, "%s.protos", prefix);
    t = mmspcl_weights_find(w, key);
    if (!t) return mmspcl__fail(err, MMSPCL_ERR_NOT_FOUND, "tensor %s is missing", key);
    if (t->dtype != MMSPCL_F32 || t->ndim != 2 || t->ne[0] < 1 || t->ne[0] > MMSPCL_MAX_CLASSES || t->ne[1] < 1 || t->ne[1] > (1 << 24))
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "tensor %s: expected f32 [classes][dim]", key);
    *protos = (const float *)t->data;
    *n_classes = (int)t->ne[0];
    *dim = (int)t->ne[1];
    return MMSPCL_OK;
}
