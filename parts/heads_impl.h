/* ---------------------------------------------------------------------------------------------
   MM-SPCL heads (implementation). Internal helpers: static, prefix mmspcl__heads_.
   ------------------------------------------------------------------------------------------ */

void mmspcl_head_linear_forward(const mmspcl_head_linear *l, const float *x, float *y, int n) {
    const int C = l->in, OC = l->out;
    int i;
MMSPCL__OMP_FOR
    for (i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * C;
        float *yi = y + (size_t)i * OC;
        int o, c;
        for (o = 0; o < OC; o++) {
            const float *wo = l->w + (size_t)o * C;
            float s = l->b ? l->b[o] : 0.0f;
            for (c = 0; c < C; c++) s += wo[c] * xi[c];
            yi[o] = s;
        }
    }
}

void mmspcl_head_ln_forward(const mmspcl_head_ln *l, const float *x, float *y, int n) {
    const int C = l->dim;
    int i, c;
    for (i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * C;
        float *yi = y + (size_t)i * C;
        double mean = 0, var = 0, rstd;
        for (c = 0; c < C; c++) mean += xi[c];
        mean /= C;
        for (c = 0; c < C; c++) var += (xi[c] - mean) * (xi[c] - mean);
        var /= C;
        rstd = 1.0 / sqrt(var + l->eps);
        for (c = 0; c < C; c++) yi[c] = (float)((xi[c] - mean) * rstd) * l->g[c] + l->b[c];
    }
}

static float mmspcl__heads_act(float x, mmspcl_act act) {
    if (act == MMSPCL_ACT_RELU) return x > 0 ? x : 0;
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
}

void mmspcl_head_mlp_forward(const mmspcl_head_mlp *m, const float *x, float *y, int n, float *hidden) {
    size_t i, nh = (size_t)n * m->fc1.out;
    mmspcl_head_linear_forward(&m->fc1, x, hidden, n);
    for (i = 0; i < nh; i++) hidden[i] = mmspcl__heads_act(hidden[i], m->act);
    mmspcl_head_linear_forward(&m->fc2, hidden, y, n);
}

size_t mmspcl_head_block_scratch(const mmspcl_head_block *b, int tq, int tk) {
    size_t D = (size_t)b->ln_q.dim, F = (size_t)b->ff.fc1.out;
    size_t t = (size_t)(tq > tk ? tq : tk);
    /* xln, kvln, q, k, v, ctx, tmp, att row, hidden */
    return 7 * t * D + t + t * F;
}

/* softmax-weighted sum for one head: ctx[tq][dh] (stride D) */
static void mmspcl__heads_attend(const float *q, const float *k, const float *v, float *ctx, int tq,
                                 int tk, int D, int h, int dh, const unsigned char *kmask, float *att) {
    const float scale = 1.0f / sqrtf((float)dh);
    int i, j, d;
    for (i = 0; i < tq; i++) {
        const float *qi = q + (size_t)i * D + h * dh;
        float *ci = ctx + (size_t)i * D + h * dh;
        float mx = -INFINITY, sum = 0;
        for (j = 0; j < tk; j++) {
            const float *kj = k + (size_t)j * D + h * dh;
            float s = 0;
            if (kmask && !kmask[j]) { att[j] = -INFINITY; continue; }
            for (d = 0; d < dh; d++) s += qi[d] * kj[d];
            att[j] = s * scale;
            if (att[j] > mx) mx = att[j];
        }
        for (d = 0; d < dh; d++) ci[d] = 0;
        if (mx == -INFINITY) continue; /* every key masked */
        for (j = 0; j < tk; j++) {
            att[j] = (kmask && !kmask[j]) ? 0.0f : expf(att[j] - mx);
            sum += att[j];
        }
        for (j = 0; j < tk; j++) {
            const float *vj = v + (size_t)j * D + h * dh;
            float p = att[j] / sum;
            if (p == 0) continue;
            for (d = 0; d < dh; d++) ci[d] += p * vj[d];
        }
    }
}

void mmspcl_head_block_forward(const mmspcl_head_block *b, float *x, int tq, const float *src,
                               int tk, const unsigned char *kmask, float *scratch) {
    const int D = b->ln_q.dim, H = b->attn.n_heads, dh = D / H;
    size_t t = (size_t)((b->cross ? (tq > tk ? tq : tk) : tq)) * D;
    float *xln = scratch, *kvln = xln + t, *q = kvln + t, *k = q + t, *v = k + t, *ctx = v + t;
    float *tmp = ctx + t, *att = tmp + t, *hid = att + (t / D);
    const float *kv;
    int h, nk = b->cross ? tk : tq;
    size_t i, n = (size_t)tq * D;
    mmspcl_head_ln_forward(&b->ln_q, x, xln, tq);
    if (b->cross) { mmspcl_head_ln_forward(&b->ln_kv, src, kvln, tk); kv = kvln; }
    else kv = xln;
    mmspcl_head_linear_forward(&b->attn.q, xln, q, tq);
    mmspcl_head_linear_forward(&b->attn.k, kv, k, nk);
    mmspcl_head_linear_forward(&b->attn.v, kv, v, nk);
    for (h = 0; h < H; h++) mmspcl__heads_attend(q, k, v, ctx, tq, nk, D, h, dh, kmask, att);
    mmspcl_head_linear_forward(&b->attn.o, ctx, tmp, tq);
    for (i = 0; i < n; i++) x[i] += tmp[i];
    mmspcl_head_ln_forward(&b->ln_ff, x, xln, tq);
    mmspcl_head_mlp_forward(&b->ff, xln, tmp, tq, hid);
    for (i = 0; i < n; i++) x[i] += tmp[i];
}

float mmspcl_score(const float *a, const float *b, int d) {
    double ab = 0, aa = 0, bb = 0, den;
    int i;
    for (i = 0; i < d; i++) { ab += (double)a[i] * b[i]; aa += (double)a[i] * a[i]; bb += (double)b[i] * b[i]; }
    den = sqrt(aa * bb);
    return (float)((1.0 + (den > 1e-8 ? ab / den : ab / 1e-8)) / 2.0 + 1e-8);
}

/* --- cross-modal pruning ------------------------------------------------------------------- */
static double mmspcl__heads_cos(const float *a, const float *b, int n) {
    double ab = 0, aa = 0, bb = 0, den;
    int i;
    for (i = 0; i < n; i++) { ab += (double)a[i] * b[i]; aa += (double)a[i] * a[i]; bb += (double)b[i] * b[i]; }
    den = sqrt(aa * bb);
    return ab / (den > 1e-8 ? den : 1e-8);
}

mmspcl_status mmspcl_prune_forward(const float *base, int db, const float *prune, int dp, int K,
                                   int n, float *out, unsigned char *kept, mmspcl_error *err) {
    int i, nb, np;
    if (K <= 0 || db <= 0 || dp <= 0 || db % K != 0 || n < 0)
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "prune: base width %d must be a positive multiple of head size %d (pruning width %d)", db, K, dp);
    nb = db / K;
    np = (dp + K - 1) / K;
    for (i = 0; i < n; i++) {
        const float *xb = base + (size_t)i * db, *xp = prune + (size_t)i * dp;
        float *o = out + (size_t)i * (db + dp);
        unsigned char *kp = kept ? kept + (size_t)i * np : NULL;
        int hb, hp, j;
        memcpy(o, xb, sizeof(float) * (size_t)db);
        memcpy(o + db, xp, sizeof(float) * (size_t)dp);
        if (kp) for (hp = 0; hp < np; hp++) kp[hp] = 1;
        for (hb = 0; hb < nb; hb++) {
            int best = 0;
            double bc = -2;
            for (hp = 0; hp < np; hp++) {
                /* a short last pruning head is compared with the base head's first values */
                int w = (hp + 1) * K <= dp ? K : dp - hp * K;
                double c = mmspcl__heads_cos(xb + (size_t)hb * K, xp + (size_t)hp * K, w);
                if (c > bc) { bc = c; best = hp; }
            }
            if (kp) kp[best] = 0;
            for (j = best * K; j < (best + 1) * K && j < dp; j++) o[db + j] = 0;
        }
    }
    return MMSPCL_OK;
}

/* --- fusion (a) ---------------------------------------------------------------------------- */
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

void mmspcl_fuse_linear_forward(const mmspcl_fuse_linear *f, const float *const x[3], int n, float *y) {
    unsigned mods = 0;
    int m, i, chunk = 64;
    float *buf;
    for (m = 0; m < 3; m++) if (f->dims[m] > 0) mods |= 1u << m;
    buf = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)chunk * f->proj.in);
    if (!buf) { /* small fallback: one row at a time on the stack is not possible for wide rows */
        for (i = 0; i < n; i++) {
            int o, c, off = 0;
            for (o = 0; o < f->proj.out; o++) y[(size_t)i * f->proj.out + o] = f->proj.b ? f->proj.b[o] : 0;
            for (m = 0; m < 3; m++) {
                if (!(mods & (1u << m))) continue;
                for (o = 0; o < f->proj.out; o++) {
                    float s = 0;
                    for (c = 0; c < f->dims[m]; c++)
                        s += f->proj.w[(size_t)o * f->proj.in + off + c] * x[m][(size_t)i * f->dims[m] + c];
                    y[(size_t)i * f->proj.out + o] += s;
                }
                off += f->dims[m];
            }
        }
        return;
    }
    for (i = 0; i < n; i += chunk) {
        int nn = n - i < chunk ? n - i : chunk;
        const float *xs[3];
        for (m = 0; m < 3; m++) xs[m] = x[m] ? x[m] + (size_t)i * f->dims[m] : NULL;
        mmspcl__heads_concat(xs, f->dims, mods, nn, buf);
        mmspcl_head_linear_forward(&f->proj, buf, y + (size_t)i * f->proj.out, nn);
    }
    MMSPCL_FREE(buf);
}

/* --- token sequences shared by MulT and MBT ------------------------------------------------ */
/* e [seq][D] = x [seq][tok] W^T + b + pos */
static void mmspcl__heads_embed(const mmspcl_head_linear *proj, const float *pos, const float *x,
                                int seq, float *e) {
    int t, d, D = proj->out;
    for (t = 0; t < seq; t++) {
        const float *xt = x + (size_t)t * proj->in;
        for (d = 0; d < D; d++) {
            const float *w = proj->w + (size_t)d * proj->in;
            float s = proj->b ? proj->b[d] : 0;
            int c;
            for (c = 0; c < proj->in; c++) s += w[c] * xt[c];
            e[(size_t)t * D + d] = s + pos[(size_t)t * D + d];
        }
    }
}

/* LN, then mean over tokens: out [D] */
static void mmspcl__heads_ln_pool(const mmspcl_head_ln *ln, const float *x, int seq, float *tmp, float *out) {
    int t, d, D = ln->dim;
    mmspcl_head_ln_forward(ln, x, tmp, seq);
    for (d = 0; d < D; d++) {
        float s = 0;
        for (t = 0; t < seq; t++) s += tmp[(size_t)t * D + d];
        out[d] = s / (float)seq;
    }
}

static size_t mmspcl__heads_max_block_scratch(const mmspcl_head_block *b, int nb, int tmax) {
    size_t s = 0, t;
    int i;
    for (i = 0; i < nb; i++) { t = mmspcl_head_block_scratch(&b[i], tmax, tmax); if (t > s) s = t; }
    return s;
}

mmspcl_status mmspcl_mult_forward(const mmspcl_mult *m, const float *const x[3], int n, float *y,
                                  mmspcl_error *err) {
    const int D = m->d_model, L = m->n_cross + m->n_self;
    int tmax = 1, etot = 0, mi, failed = 0;
    size_t bs, per;
    for (mi = 0; mi < 3; mi++) if (m->seq[mi] > 0) { if (m->seq[mi] > tmax) tmax = m->seq[mi]; etot += m->seq[mi]; }
    bs = mmspcl__heads_max_block_scratch(m->blocks, m->n_pairs * L, tmax);
    per = (size_t)etot * D + 2 * (size_t)tmax * D + (size_t)m->n_pairs * D + bs;
    {
        float *all = (float *)MMSPCL_MALLOC(sizeof(float) * per * (size_t)MMSPCL__MAX_THREADS());
        int i;
        if (!all) failed = 1;
        else
        MMSPCL__OMP_FOR
        for (i = 0; i < n; i++) {
            float *s = all + per * (size_t)MMSPCL__THREAD_ID();
            float *e[3], *h, *tmp, *pooled, *bscr, *p;
            int a, b2, p_i = 0, l, mi;
            p = s;
            for (mi = 0; mi < 3; mi++) {
                e[mi] = NULL;
                if (m->seq[mi] <= 0) continue;
                e[mi] = p; p += (size_t)m->seq[mi] * D;
                mmspcl__heads_embed(&m->in_proj[mi], m->pos[mi], x[mi] + (size_t)i * m->seq[mi] * m->tok[mi], m->seq[mi], e[mi]);
            }
            h = p; p += (size_t)tmax * D;
            tmp = p; p += (size_t)tmax * D;
            pooled = p; p += (size_t)m->n_pairs * D;
            bscr = p;
            for (a = 0; a < 3; a++) {
                if (m->seq[a] <= 0) continue;
                for (b2 = 0; b2 < 3; b2++) {
                    const mmspcl_head_block *blk;
                    if (b2 == a || m->seq[b2] <= 0) continue;
                    blk = m->blocks + (size_t)p_i * L;
                    memcpy(h, e[a], sizeof(float) * (size_t)m->seq[a] * D);
                    for (l = 0; l < L; l++)
                        mmspcl_head_block_forward(&blk[l], h, m->seq[a], blk[l].cross ? e[b2] : NULL,
                                                  m->seq[b2], NULL, bscr);
                    mmspcl__heads_ln_pool(&m->final_ln[p_i], h, m->seq[a], tmp, pooled + (size_t)p_i * D);
                    p_i++;
                }
            }
            mmspcl_head_linear_forward(&m->out_proj, pooled, y + (size_t)i * m->out_dim, 1);
        }
        MMSPCL_FREE(all);
    }
    if (failed) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "mult: cannot allocate %zu floats of scratch", per);
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
    const int D = m->d_model, L = m->n_layers, F = m->n_fusion;
    int tmax = 1, ztot = 0, mi, failed = 0;
    size_t bs, per;
    for (mi = 0; mi < 3; mi++) if (m->seq[mi] > 0) { if (m->seq[mi] + F > tmax) tmax = m->seq[mi] + F; ztot += m->seq[mi] + F; }
    bs = mmspcl__heads_max_block_scratch(m->blocks, m->n_mod * L, tmax);
    per = (size_t)ztot * D + 2 * (size_t)F * D + (size_t)tmax * D + (size_t)m->n_mod * D + bs;
    {
        float *all = (float *)MMSPCL_MALLOC(sizeof(float) * per * (size_t)MMSPCL__MAX_THREADS());
        int i;
        if (!all) failed = 1;
        else
        MMSPCL__OMP_FOR
        for (i = 0; i < n; i++) {
            float *s = all + per * (size_t)MMSPCL__THREAD_ID();
            float *z[3], *fsn, *fnew, *tmp, *pooled, *bscr, *p;
            int l, slot, mi;
            size_t q;
            p = s;
            for (mi = 0; mi < 3; mi++) {
                z[mi] = NULL;
                if (m->seq[mi] <= 0) continue;
                z[mi] = p; p += (size_t)(m->seq[mi] + F) * D;
                mmspcl__heads_embed(&m->in_proj[mi], m->pos[mi], x[mi] + (size_t)i * m->seq[mi] * m->tok[mi], m->seq[mi], z[mi]);
            }
            fsn = p; p += (size_t)F * D;
            fnew = p; p += (size_t)F * D;
            tmp = p; p += (size_t)tmax * D;
            pooled = p; p += (size_t)m->n_mod * D;
            bscr = p;
            memcpy(fsn, m->fusion_tokens, sizeof(float) * (size_t)F * D);
            for (l = 0; l < L; l++) {
                int fuse = l >= m->fusion_start;
                if (fuse) for (q = 0; q < (size_t)F * D; q++) fnew[q] = 0;
                for (mi = 0, slot = 0; mi < 3; mi++) {
                    int T;
                    if (m->seq[mi] <= 0) continue;
                    T = m->seq[mi];
                    if (fuse) memcpy(z[mi] + (size_t)T * D, fsn, sizeof(float) * (size_t)F * D);
                    mmspcl_head_block_forward(&m->blocks[(size_t)slot * L + l], z[mi], fuse ? T + F : T,
                                              NULL, 0, NULL, bscr);
                    if (fuse) for (q = 0; q < (size_t)F * D; q++) fnew[q] += z[mi][(size_t)T * D + q];
                    slot++;
                }
                if (fuse) for (q = 0; q < (size_t)F * D; q++) fsn[q] = fnew[q] / (float)m->n_mod;
            }
            for (mi = 0, slot = 0; mi < 3; mi++) {
                if (m->seq[mi] <= 0) continue;
                mmspcl__heads_ln_pool(&m->final_ln[mi], z[mi], m->seq[mi], tmp, pooled + (size_t)slot * D);
                slot++;
            }
            mmspcl_head_linear_forward(&m->out_proj, pooled, y + (size_t)i * m->out_dim, 1);
        }
        MMSPCL_FREE(all);
    }
    if (failed) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "mbt: cannot allocate %zu floats of scratch", per);
    return MMSPCL_OK;
}

void mmspcl_mbt_free(mmspcl_mbt *m) {
    MMSPCL_FREE(m->blocks);
    m->blocks = NULL;
}

/* --- MSVE ---------------------------------------------------------------------------------- */
mmspcl_status mmspcl_msve_forward(const mmspcl_msve *m, const float *const x[3], int n,
                                  unsigned combos, float *logits, mmspcl_error *err) {
    const int C = m->n_classes, chunk = 128;
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
    buf = (float *)MMSPCL_MALLOC(sizeof(float) * (size_t)chunk * ((size_t)dtot + maxin + maxh + C));
    if (!buf) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "msve: out of memory for a chunk of %d rows", chunk);
    for (i = 0; i < n; i += chunk) {
        int nn = n - i < chunk ? n - i : chunk, r;
        float *p = buf;
        for (mi = 0; mi < 3; mi++) {
            z[mi] = NULL;
            if (m->dims[mi] <= 0 || !x[mi]) continue;
            z[mi] = p; p += (size_t)chunk * m->dims[mi];
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
        cat = p; p += (size_t)chunk * maxin;
        hid = p; p += (size_t)chunk * maxh;
        lg = p;
        for (q = 0; q < (size_t)nn * C; q++) logits[(size_t)i * C + q] = 0;
        for (c = 1; c < 8; c++) {
            if (!(combos & MMSPCL_COMBO(c))) continue;
            mmspcl__heads_concat((const float *const *)z, m->dims, (unsigned)c, nn, cat);
            mmspcl_head_mlp_forward(&m->mlp[c], cat, lg, nn, hid);
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

static mmspcl_status mmspcl__heads_linear(mmspcl_head_linear *l, const mmspcl_weights *w, const char *name,
                                          int in, int out, mmspcl_error *err) {
    char buf[512];
    mmspcl_status st;
    l->in = in; l->out = out;
    snprintf(buf, sizeof buf, "%s.weight", name);
    if ((st = mmspcl__heads_f32(w, buf, 2, out, in, &l->w, err))) return st;
    snprintf(buf, sizeof buf, "%s.bias", name);
    return mmspcl__heads_f32(w, buf, 1, out, 0, &l->b, err);
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
