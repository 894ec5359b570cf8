/* ---------------------------------------------------------------------------------------------
   Images: PNG / BMP / PPM decoding (own inflate), Pillow-exact bicubic resize, CLIP preprocessing.
   ------------------------------------------------------------------------------------------ */

static uint32_t mmspcl__img_be32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}
static uint32_t mmspcl__img_le32(const unsigned char *p) {
    return ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | (uint32_t)p[0];
}
static unsigned mmspcl__img_le16(const unsigned char *p) { return (unsigned)p[0] | ((unsigned)p[1] << 8); }

/* Checks the limits and allocates out->rgb (w*h*3). */
static mmspcl_status mmspcl__img_alloc(mmspcl_image *out, int64_t w, int64_t h, const char *label,
                                       const char *fmt, mmspcl_error *err) {
    size_t n;
    if (w < 1 || h < 1)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: %s image has size %lld x %lld", label, fmt,
                            (long long)w, (long long)h);
    if (w > MMSPCL_IMAGE_MAX_SIDE || h > MMSPCL_IMAGE_MAX_SIDE || w * h > MMSPCL_IMAGE_MAX_PIXELS)
        return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED,
                            "%s: %s image of %lld x %lld pixels is over the limits (side %d, %lld pixels)",
                            label, fmt, (long long)w, (long long)h, MMSPCL_IMAGE_MAX_SIDE,
                            (long long)MMSPCL_IMAGE_MAX_PIXELS);
    n = (size_t)w * (size_t)h * 3;
    out->rgb = (unsigned char *)MMSPCL_MALLOC(n);
    if (!out->rgb)
        return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "%s: cannot allocate %zu bytes for the pixels", label, n);
    out->width = (int)w;
    out->height = (int)h;
    return MMSPCL_OK;
}

/* ---------------------------------------------------------------------------------------------
   PPM / PGM (binary P6 / P5)
   ------------------------------------------------------------------------------------------ */
static int mmspcl__img_pnm_space(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Reads one decimal header token after whitespace and comments; -1 on error. *pos is left on the
   byte that ended the token. */
static long mmspcl__img_pnm_token(const unsigned char *p, size_t n, size_t *pos) {
    size_t i = *pos;
    long v = 0;
    int digits = 0;
    for (;;) {
        if (i >= n) return -1;
        if (p[i] == '#') {
            while (i < n && p[i] != '\n' && p[i] != '\r') i++;
        } else if (mmspcl__img_pnm_space(p[i])) {
            i++;
        } else {
            break;
        }
    }
    while (i < n && p[i] >= '0' && p[i] <= '9') {
        if (++digits > 9) return -1;
        v = v * 10 + (p[i] - '0');
        i++;
    }
    if (!digits || i >= n) return -1;
    if (!mmspcl__img_pnm_space(p[i]) && p[i] != '#') return -1;
    *pos = i;
    return v;
}

static mmspcl_status mmspcl__img_pnm(const unsigned char *p, size_t n, mmspcl_image *out,
                                     const char *label, mmspcl_error *err) {
    int ch = p[1] == '6' ? 3 : 1;
    const char *fmt = ch == 3 ? "PPM (P6)" : "PGM (P5)";
    size_t pos = 2, need, i, np;
    long w, h, maxval;
    int bps;
    mmspcl_status st;
    if (n < 3 || !mmspcl__img_pnm_space(p[2]))
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: %s header: no whitespace after the magic", label, fmt);
    if ((w = mmspcl__img_pnm_token(p, n, &pos)) < 0 || (h = mmspcl__img_pnm_token(p, n, &pos)) < 0 ||
        (maxval = mmspcl__img_pnm_token(p, n, &pos)) < 0)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: %s header is malformed or truncated near byte %zu",
                            label, fmt, pos);
    if (maxval < 1 || maxval > 65535)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: %s maxval %ld (1..65535 allowed)", label, fmt, maxval);
    if (!mmspcl__img_pnm_space(p[pos]))
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: %s: a comment right after maxval (byte %zu)", label, fmt, pos);
    pos++; /* exactly one whitespace byte ends the header */
    if (w < 1 || h < 1 || w > MMSPCL_IMAGE_MAX_SIDE || h > MMSPCL_IMAGE_MAX_SIDE ||
        (int64_t)w * h > MMSPCL_IMAGE_MAX_PIXELS)
        return mmspcl__img_alloc(out, w, h, label, fmt, err); /* fails with the right message */
    bps = maxval > 255 ? 2 : 1;
    np = (size_t)w * (size_t)h * (size_t)ch;
    need = np * (size_t)bps;
    if (n - pos < need)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: %s of %ld x %ld needs %zu pixel bytes from byte %zu, the file has %zu",
                            label, fmt, w, h, need, pos, n - pos);
    if ((st = mmspcl__img_alloc(out, w, h, label, fmt, err))) return st;
    {
        const unsigned char *s = p + pos;
        unsigned char lut[256];
        int use_lut = bps == 1;
        if (use_lut) {
            int v;
            for (v = 0; v < 256; v++) {
                double r = rint((double)v / (double)maxval * 255.0);
                lut[v] = (unsigned char)(r > 255.0 ? 255 : r);
            }
        }
        for (i = 0; i < np; i++) {
            unsigned char v;
            if (use_lut) {
                v = lut[s[i]];
            } else {
                unsigned raw = ((unsigned)s[2 * i] << 8) | s[2 * i + 1];
                double r = rint((double)raw / (double)maxval * 255.0);
                v = (unsigned char)(r > 255.0 ? 255 : r);
            }
            if (ch == 3) {
                out->rgb[i] = v;
            } else {
                out->rgb[3 * i] = out->rgb[3 * i + 1] = out->rgb[3 * i + 2] = v;
            }
        }
    }
    return MMSPCL_OK;
}

/* ---------------------------------------------------------------------------------------------
   BMP
   ------------------------------------------------------------------------------------------ */
static int mmspcl__img_mask_shift(uint32_t m) { /* shift of a one-byte contiguous mask, else -1 */
    int s;
    for (s = 0; s <= 24; s += 8)
        if (m == (uint32_t)0xFF << s) return s;
    return -1;
}

static mmspcl_status mmspcl__img_bmp(const unsigned char *p, size_t n, mmspcl_image *out,
                                     const char *label, mmspcl_error *err) {
    uint32_t off, hsize, compression = 0, ncolors = 0;
    int64_t w, h;
    int bits, topdown = 0, sh[3] = {16, 8, 0};
    size_t stride, pal_off, pal_entry, y;
    unsigned char pal[256][3];
    int npal = 0;
    mmspcl_status st;
    if (n < 18) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: BMP: %zu bytes is shorter than the headers", label, n);
    off = mmspcl__img_le32(p + 10);
    hsize = mmspcl__img_le32(p + 14);
    if (hsize != 12 && hsize != 40 && hsize != 52 && hsize != 56 && hsize != 64 && hsize != 108 && hsize != 124)
        return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "%s: BMP: info header size %u at byte 14 is not supported",
                            label, (unsigned)hsize);
    if (n < 14 + (size_t)hsize)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: BMP: the %u-byte info header is truncated", label, (unsigned)hsize);
    if (hsize == 12) {
        w = mmspcl__img_le16(p + 18);
        h = mmspcl__img_le16(p + 20);
        if (mmspcl__img_le16(p + 22) != 1)
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: BMP: planes is not 1", label);
        bits = (int)mmspcl__img_le16(p + 24);
        pal_entry = 3;
    } else {
        int32_t hh = (int32_t)mmspcl__img_le32(p + 22);
        w = (int32_t)mmspcl__img_le32(p + 18);
        if (hh < 0) {
            if (hh == INT32_MIN) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: BMP: height %d", label, (int)hh);
            topdown = 1;
            h = -(int64_t)hh;
        } else {
            h = hh;
        }
        if (mmspcl__img_le16(p + 26) != 1)
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: BMP: planes is not 1", label);
        bits = (int)mmspcl__img_le16(p + 28);
        compression = mmspcl__img_le32(p + 30);
        ncolors = mmspcl__img_le32(p + 46);
        pal_entry = 4;
    }
    if (bits != 1 && bits != 4 && bits != 8 && bits != 24 && bits != 32)
        return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "%s: BMP: %d bits per pixel is not supported (1, 4, 8, 24, 32)",
                            label, bits);
    if (compression == 3 && bits == 32) {
        uint32_t m[3];
        size_t mo = hsize >= 52 ? 14 + 40 : 14 + (size_t)hsize;
        int c;
        if (n < mo + 12)
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: BMP: bit-field masks are truncated", label);
        for (c = 0; c < 3; c++) m[c] = mmspcl__img_le32(p + mo + 4 * (size_t)c);
        if (!(m[0] == 0 && m[1] == 0 && m[2] == 0)) {
            for (c = 0; c < 3; c++)
                if ((sh[c] = mmspcl__img_mask_shift(m[c])) < 0)
                    return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED,
                                        "%s: BMP: bit-field masks r=0x%08x g=0x%08x b=0x%08x are not supported "
                                        "(one whole byte each)", label, (unsigned)m[0], (unsigned)m[1], (unsigned)m[2]);
        }
    } else if (compression != 0) {
        static const char *const names[] = {"BI_RGB", "RLE8", "RLE4", "BI_BITFIELDS", "JPEG", "PNG", "BI_ALPHABITFIELDS"};
        return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "%s: BMP: compression %s (%u) with %d bits is not supported",
                            label, compression < 7 ? names[compression] : "unknown", (unsigned)compression, bits);
    }
    if (w < 1 || h < 1 || w > MMSPCL_IMAGE_MAX_SIDE || h > MMSPCL_IMAGE_MAX_SIDE || w * h > MMSPCL_IMAGE_MAX_PIXELS)
        return mmspcl__img_alloc(out, w, h, label, "BMP", err);
    if (bits <= 8) {
        size_t k, avail, maxc = (size_t)1 << bits;
        size_t count = ncolors ? ncolors : maxc;
        if (ncolors > 65536)
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: BMP: palette of %u colours", label, (unsigned)ncolors);
        if (count > maxc) count = maxc;
        pal_off = 14 + (size_t)hsize;
        if (pal_off > n || (n - pal_off) / pal_entry < count || pal_off + count * pal_entry > off)
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: BMP: the %zu-entry palette at byte %zu is truncated",
                                label, count, pal_off);
        avail = count;
        for (k = 0; k < 256; k++) {
            if (k < avail) {
                const unsigned char *e = p + pal_off + k * pal_entry;
                pal[k][0] = e[2]; pal[k][1] = e[1]; pal[k][2] = e[0];
            } else {
                pal[k][0] = pal[k][1] = pal[k][2] = 0;
            }
        }
        npal = (int)avail;
    }
    stride = (((size_t)w * (size_t)bits + 31) / 32) * 4;
    if (off > n || (n - off) / stride < (size_t)h)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT,
                            "%s: BMP: %lld rows of %zu bytes from byte %u run past the end of the file (%zu bytes)",
                            label, (long long)h, stride, (unsigned)off, n);
    if ((st = mmspcl__img_alloc(out, w, h, label, "BMP", err))) return st;
    (void)npal;
    for (y = 0; y < (size_t)h; y++) {
        const unsigned char *row = p + off + stride * (topdown ? y : (size_t)h - 1 - y);
        unsigned char *o = out->rgb + y * (size_t)w * 3;
        size_t x;
        if (bits == 24) {
            for (x = 0; x < (size_t)w; x++) {
                o[3 * x] = row[3 * x + 2]; o[3 * x + 1] = row[3 * x + 1]; o[3 * x + 2] = row[3 * x];
            }
        } else if (bits == 32) {
            for (x = 0; x < (size_t)w; x++) {
                uint32_t v = mmspcl__img_le32(row + 4 * x);
                o[3 * x] = (unsigned char)(v >> sh[0]);
                o[3 * x + 1] = (unsigned char)(v >> sh[1]);
                o[3 * x + 2] = (unsigned char)(v >> sh[2]);
            }
        } else {
            for (x = 0; x < (size_t)w; x++) {
                size_t bit = x * (size_t)bits;
                unsigned idx = (row[bit >> 3] >> (8 - bits - (int)(bit & 7))) & ((1u << bits) - 1);
                o[3 * x] = pal[idx][0]; o[3 * x + 1] = pal[idx][1]; o[3 * x + 2] = pal[idx][2];
            }
        }
    }
    return MMSPCL_OK;
}

/* ---------------------------------------------------------------------------------------------
   Inflate (RFC 1950 zlib wrapper around RFC 1951 deflate)
   ------------------------------------------------------------------------------------------ */
#define MMSPCL__IMG_FASTBITS 10

typedef struct mmspcl__img_huff {
    uint16_t fast[1 << MMSPCL__IMG_FASTBITS]; /* (length << 9) | symbol; 0: not in the table */
    uint16_t count[16];                       /* codes of each length */
    uint16_t sym[320];                        /* symbols in canonical order */
} mmspcl__img_huff;

typedef struct mmspcl__img_inflate {
    const unsigned char *in;
    size_t n, pos;   /* pos: next byte to load into the bit buffer */
    uint64_t bits;
    int nbits;
    size_t phantom;  /* zero bits loaded past the end of the input */
    unsigned char *out;
    size_t out_n, out_pos;
    const char *label;
    mmspcl_error *err;
} mmspcl__img_inflate;

static void mmspcl__img_fill(mmspcl__img_inflate *s) {
    while (s->nbits <= 56) {
        uint64_t b = 0;
        if (s->pos < s->n) b = s->in[s->pos];
        else s->phantom += 8;
        s->pos++;
        s->bits |= b << s->nbits;
        s->nbits += 8;
    }
}

/* Bits are consumed; returns nonzero when that ran past the end of the stream. */
static int mmspcl__img_consume(mmspcl__img_inflate *s, int k) {
    s->bits >>= k;
    s->nbits -= k;
    return (size_t)s->nbits < s->phantom;
}

static int mmspcl__img_getbits(mmspcl__img_inflate *s, int k, unsigned *v) {
    if (s->nbits < k) mmspcl__img_fill(s);
    *v = (unsigned)(s->bits & (((uint64_t)1 << k) - 1));
    return mmspcl__img_consume(s, k);
}

static mmspcl_status mmspcl__img_zfail(mmspcl__img_inflate *s, const char *what) {
    size_t at = s->pos > (size_t)(s->nbits / 8) ? s->pos - (size_t)(s->nbits / 8) : 0;
    if (at > s->n) at = s->n;
    return mmspcl__fail(s->err, MMSPCL_ERR_FORMAT, "%s: PNG image data (zlib): %s (compressed byte %zu, output byte %zu)",
                        s->label, what, at, s->out_pos);
}

/* Builds a canonical Huffman code from code lengths (0 = unused). kind: 0 code-length code
   (must be complete), 1 literal/length or distance (incomplete only as a single 1-bit code). */
static int mmspcl__img_huff_build(mmspcl__img_huff *h, const unsigned char *len, int n, int kind) {
    uint16_t offs[16];
    int i, l, left, total = 0, maxlen = 0;
    memset(h->count, 0, sizeof h->count);
    memset(h->fast, 0, sizeof h->fast);
    for (i = 0; i < n; i++) h->count[len[i]]++;
    h->count[0] = 0;
    left = 1;
    for (l = 1; l < 16; l++) {
        left <<= 1;
        left -= h->count[l];
        if (left < 0) return -1; /* over-subscribed */
        total += h->count[l];
        if (h->count[l]) maxlen = l;
    }
    if (left > 0 && total > 0 && (kind == 0 || maxlen != 1)) return -2; /* incomplete */
    offs[1] = 0;
    for (l = 1; l < 15; l++) offs[l + 1] = (uint16_t)(offs[l] + h->count[l]);
    for (i = 0; i < n; i++)
        if (len[i]) h->sym[offs[len[i]]++] = (uint16_t)i;
    /* fast table: canonical codes (MSB first) stored bit-reversed, as deflate sends them */
    {
        unsigned code = 0;
        int k = 0;
        for (l = 1; l <= MMSPCL__IMG_FASTBITS; l++) {
            int c;
            for (c = 0; c < h->count[l]; c++, k++, code++) {
                unsigned rev = 0, t = code, j;
                int b;
                for (b = 0; b < l; b++) { rev = (rev << 1) | (t & 1); t >>= 1; }
                for (j = rev; j < (1u << MMSPCL__IMG_FASTBITS); j += 1u << l)
                    h->fast[j] = (uint16_t)((l << 9) | h->sym[k]);
            }
            code <<= 1;
        }
    }
    return 0;
}

/* Decodes one symbol; -1 on an invalid code or when the input ran out. */
static int mmspcl__img_huff_decode(mmspcl__img_inflate *s, const mmspcl__img_huff *h) {
    unsigned e;
    int l, code = 0, first = 0, index = 0;
    uint64_t b;
    if (s->nbits < 16) mmspcl__img_fill(s);
    e = h->fast[s->bits & ((1u << MMSPCL__IMG_FASTBITS) - 1)];
    if (e) {
        if (mmspcl__img_consume(s, (int)(e >> 9))) return -1;
        return (int)(e & 511);
    }
    b = s->bits;
    for (l = 1; l < 16; l++) {
        int count = h->count[l];
        code |= (int)(b & 1);
        b >>= 1;
        if (code - count < first) {
            if (mmspcl__img_consume(s, l)) return -1;
            return h->sym[index + (code - first)];
        }
        index += count;
        first += count;
        first <<= 1;
        code <<= 1;
    }
    return -1;
}

static const uint16_t mmspcl__img_lbase[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
                                               35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const unsigned char mmspcl__img_lext[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
                                                   3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t mmspcl__img_dbase[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129,
                                               193, 257, 385, 513, 769, 1025, 1537, 2049, 3073,
                                               4097, 6145, 8193, 12289, 16385, 24577};
static const unsigned char mmspcl__img_dext[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6,
                                                   6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

static mmspcl_status mmspcl__img_codes(mmspcl__img_inflate *s, const mmspcl__img_huff *lit,
                                       const mmspcl__img_huff *dist) {
    for (;;) {
        int sym = mmspcl__img_huff_decode(s, lit);
        if (sym < 0) return mmspcl__img_zfail(s, "invalid literal/length code or data truncated");
        if (sym < 256) {
            if (s->out_pos >= s->out_n) return mmspcl__img_zfail(s, "more data than the image needs");
            s->out[s->out_pos++] = (unsigned char)sym;
        } else if (sym == 256) {
            return MMSPCL_OK;
        } else {
            unsigned extra, len, d;
            int ds;
            sym -= 257;
            if (sym >= 29) return mmspcl__img_zfail(s, "invalid length symbol");
            if (mmspcl__img_getbits(s, mmspcl__img_lext[sym], &extra)) return mmspcl__img_zfail(s, "data truncated");
            len = mmspcl__img_lbase[sym] + extra;
            ds = mmspcl__img_huff_decode(s, dist);
            if (ds < 0) return mmspcl__img_zfail(s, "invalid distance code or data truncated");
            if (ds >= 30) return mmspcl__img_zfail(s, "invalid distance symbol");
            if (mmspcl__img_getbits(s, mmspcl__img_dext[ds], &extra)) return mmspcl__img_zfail(s, "data truncated");
            d = mmspcl__img_dbase[ds] + extra;
            if (d > s->out_pos) return mmspcl__img_zfail(s, "distance reaches before the start of the data");
            if (len > s->out_n - s->out_pos) return mmspcl__img_zfail(s, "more data than the image needs");
            {
                unsigned char *o = s->out + s->out_pos;
                const unsigned char *from = o - d;
                unsigned i;
                for (i = 0; i < len; i++) o[i] = from[i];
                s->out_pos += len;
            }
        }
    }
}

static mmspcl_status mmspcl__img_dynamic(mmspcl__img_inflate *s, mmspcl__img_huff *lit, mmspcl__img_huff *dist) {
    static const unsigned char order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    unsigned char lens[320];
    unsigned hlit, hdist, hclen, v;
    int i, nlen, ndist, ncode;
    if (mmspcl__img_getbits(s, 5, &hlit) || mmspcl__img_getbits(s, 5, &hdist) || mmspcl__img_getbits(s, 4, &hclen))
        return mmspcl__img_zfail(s, "data truncated");
    nlen = (int)hlit + 257;
    ndist = (int)hdist + 1;
    ncode = (int)hclen + 4;
    if (nlen > 286 || ndist > 30) return mmspcl__img_zfail(s, "too many length or distance symbols");
    memset(lens, 0, sizeof lens);
    for (i = 0; i < ncode; i++) {
        if (mmspcl__img_getbits(s, 3, &v)) return mmspcl__img_zfail(s, "data truncated");
        lens[order[i]] = (unsigned char)v;
    }
    if (mmspcl__img_huff_build(lit, lens, 19, 0)) return mmspcl__img_zfail(s, "invalid code-length code");
    memset(lens, 0, sizeof lens);
    for (i = 0; i < nlen + ndist;) {
        int sym = mmspcl__img_huff_decode(s, lit), rep;
        unsigned char val = 0;
        if (sym < 0) return mmspcl__img_zfail(s, "invalid code-length symbol or data truncated");
        if (sym < 16) {
            lens[i++] = (unsigned char)sym;
            continue;
        }
        if (sym == 16) {
            if (i == 0) return mmspcl__img_zfail(s, "length repeat with no previous length");
            val = lens[i - 1];
            if (mmspcl__img_getbits(s, 2, &v)) return mmspcl__img_zfail(s, "data truncated");
            rep = 3 + (int)v;
        } else if (sym == 17) {
            if (mmspcl__img_getbits(s, 3, &v)) return mmspcl__img_zfail(s, "data truncated");
            rep = 3 + (int)v;
        } else {
            if (mmspcl__img_getbits(s, 7, &v)) return mmspcl__img_zfail(s, "data truncated");
            rep = 11 + (int)v;
        }
        if (i + rep > nlen + ndist) return mmspcl__img_zfail(s, "code lengths repeat past the end");
        while (rep--) lens[i++] = val;
    }
    if (lens[256] == 0) return mmspcl__img_zfail(s, "no end-of-block code");
    if (mmspcl__img_huff_build(lit, lens, nlen, 1)) return mmspcl__img_zfail(s, "invalid literal/length code lengths");
    if (mmspcl__img_huff_build(dist, lens + nlen, ndist, 1)) return mmspcl__img_zfail(s, "invalid distance code lengths");
    return mmspcl__img_codes(s, lit, dist);
}

/* Inflates a zlib stream into exactly out_n bytes. */
static mmspcl_status mmspcl__img_zlib(const unsigned char *in, size_t n, unsigned char *out, size_t out_n,
                                      const char *label, mmspcl_error *err) {
    mmspcl__img_inflate s;
    mmspcl__img_huff *lit, *dist;
    mmspcl_status st = MMSPCL_OK;
    unsigned last = 0, type, v;
    uint32_t a = 1, b = 0, want;
    size_t i;
    memset(&s, 0, sizeof s);
    s.in = in; s.n = n; s.out = out; s.out_n = out_n; s.label = label; s.err = err;
    if (n < 2) return mmspcl__img_zfail(&s, "stream shorter than its 2-byte header");
    if ((in[0] & 15) != 8 || (in[0] >> 4) > 7 || ((unsigned)in[0] * 256 + in[1]) % 31 != 0)
        return mmspcl__img_zfail(&s, "bad zlib header");
    if (in[1] & 32) return mmspcl__img_zfail(&s, "zlib preset dictionary is not allowed in PNG");
    s.pos = 2;
    lit = (mmspcl__img_huff *)MMSPCL_MALLOC(2 * sizeof *lit);
    if (!lit) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "%s: out of memory for inflate tables", label);
    dist = lit + 1;
    while (!last && !st) {
        if (mmspcl__img_getbits(&s, 1, &last) || mmspcl__img_getbits(&s, 2, &type)) {
            st = mmspcl__img_zfail(&s, "data truncated");
            break;
        }
        if (type == 0) {
            unsigned len, nlen;
            mmspcl__img_consume(&s, s.nbits & 7); /* to a byte boundary */
            if (mmspcl__img_getbits(&s, 16, &len) || mmspcl__img_getbits(&s, 16, &nlen)) {
                st = mmspcl__img_zfail(&s, "data truncated");
            } else if (len != (~nlen & 0xFFFFu)) {
                st = mmspcl__img_zfail(&s, "stored block length does not match its complement");
            } else if (len > out_n - s.out_pos) {
                st = mmspcl__img_zfail(&s, "more data than the image needs");
            } else {
                unsigned k;
                for (k = 0; k < len; k++) {
                    if (mmspcl__img_getbits(&s, 8, &v)) { st = mmspcl__img_zfail(&s, "data truncated"); break; }
                    out[s.out_pos++] = (unsigned char)v;
                }
            }
        } else if (type == 1) {
            unsigned char lens[320];
            for (i = 0; i < 144; i++) lens[i] = 8;
            for (; i < 256; i++) lens[i] = 9;
            for (; i < 280; i++) lens[i] = 7;
            for (; i < 288; i++) lens[i] = 8;
            for (i = 0; i < 32; i++) lens[288 + i] = 5;
            mmspcl__img_huff_build(lit, lens, 288, 1);
            mmspcl__img_huff_build(dist, lens + 288, 32, 1);
            st = mmspcl__img_codes(&s, lit, dist);
        } else if (type == 2) {
            st = mmspcl__img_dynamic(&s, lit, dist);
        } else {
            st = mmspcl__img_zfail(&s, "invalid block type 3");
        }
    }
    MMSPCL_FREE(lit);
    if (st) return st;
    if (s.out_pos != out_n) {
        char msg[96];
        snprintf(msg, sizeof msg, "data ends after %zu of the %zu bytes the image needs", s.out_pos, out_n);
        return mmspcl__img_zfail(&s, msg);
    }
    mmspcl__img_consume(&s, s.nbits & 7);
    want = 0;
    for (i = 0; i < 4; i++) {
        if (mmspcl__img_getbits(&s, 8, &v)) return mmspcl__img_zfail(&s, "Adler-32 checksum is missing");
        want = (want << 8) | v;
    }
    for (i = 0; i < out_n;) { /* Adler-32 in blocks short enough not to overflow */
        size_t end = i + 5552 < out_n ? i + 5552 : out_n;
        for (; i < end; i++) { a += out[i]; b += a; }
        a %= 65521u;
        b %= 65521u;
    }
    if (((b << 16) | a) != want) {
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG image data (zlib): Adler-32 mismatch (stored %08x, computed %08x)",
                            label, (unsigned)want, (unsigned)((b << 16) | a));
    }
    return MMSPCL_OK;
}

/* ---------------------------------------------------------------------------------------------
   PNG
   ------------------------------------------------------------------------------------------ */
static const uint32_t mmspcl__img_crc_table[256] = { /* CRC-32, reflected polynomial 0xEDB88320 */
    0x00000000u, 0x77073096u, 0xee0e612cu, 0x990951bau, 0x076dc419u, 0x706af48fu,
    0xe963a535u, 0x9e6495a3u, 0x0edb8832u, 0x79dcb8a4u, 0xe0d5e91eu, 0x97d2d988u,
    0x09b64c2bu, 0x7eb17cbdu, 0xe7b82d07u, 0x90bf1d91u, 0x1db71064u, 0x6ab020f2u,
    0xf3b97148u, 0x84be41deu, 0x1adad47du, 0x6ddde4ebu, 0xf4d4b551u, 0x83d385c7u,
    0x136c9856u, 0x646ba8c0u, 0xfd62f97au, 0x8a65c9ecu, 0x14015c4fu, 0x63066cd9u,
    0xfa0f3d63u, 0x8d080df5u, 0x3b6e20c8u, 0x4c69105eu, 0xd56041e4u, 0xa2677172u,
    0x3c03e4d1u, 0x4b04d447u, 0xd20d85fdu, 0xa50ab56bu, 0x35b5a8fau, 0x42b2986cu,
    0xdbbbc9d6u, 0xacbcf940u, 0x32d86ce3u, 0x45df5c75u, 0xdcd60dcfu, 0xabd13d59u,
    0x26d930acu, 0x51de003au, 0xc8d75180u, 0xbfd06116u, 0x21b4f4b5u, 0x56b3c423u,
    0xcfba9599u, 0xb8bda50fu, 0x2802b89eu, 0x5f058808u, 0xc60cd9b2u, 0xb10be924u,
    0x2f6f7c87u, 0x58684c11u, 0xc1611dabu, 0xb6662d3du, 0x76dc4190u, 0x01db7106u,
    0x98d220bcu, 0xefd5102au, 0x71b18589u, 0x06b6b51fu, 0x9fbfe4a5u, 0xe8b8d433u,
    0x7807c9a2u, 0x0f00f934u, 0x9609a88eu, 0xe10e9818u, 0x7f6a0dbbu, 0x086d3d2du,
    0x91646c97u, 0xe6635c01u, 0x6b6b51f4u, 0x1c6c6162u, 0x856530d8u, 0xf262004eu,
    0x6c0695edu, 0x1b01a57bu, 0x8208f4c1u, 0xf50fc457u, 0x65b0d9c6u, 0x12b7e950u,
    0x8bbeb8eau, 0xfcb9887cu, 0x62dd1ddfu, 0x15da2d49u, 0x8cd37cf3u, 0xfbd44c65u,
    0x4db26158u, 0x3ab551ceu, 0xa3bc0074u, 0xd4bb30e2u, 0x4adfa541u, 0x3dd895d7u,
    0xa4d1c46du, 0xd3d6f4fbu, 0x4369e96au, 0x346ed9fcu, 0xad678846u, 0xda60b8d0u,
    0x44042d73u, 0x33031de5u, 0xaa0a4c5fu, 0xdd0d7cc9u, 0x5005713cu, 0x270241aau,
    0xbe0b1010u, 0xc90c2086u, 0x5768b525u, 0x206f85b3u, 0xb966d409u, 0xce61e49fu,
    0x5edef90eu, 0x29d9c998u, 0xb0d09822u, 0xc7d7a8b4u, 0x59b33d17u, 0x2eb40d81u,
    0xb7bd5c3bu, 0xc0ba6cadu, 0xedb88320u, 0x9abfb3b6u, 0x03b6e20cu, 0x74b1d29au,
    0xead54739u, 0x9dd277afu, 0x04db2615u, 0x73dc1683u, 0xe3630b12u, 0x94643b84u,
    0x0d6d6a3eu, 0x7a6a5aa8u, 0xe40ecf0bu, 0x9309ff9du, 0x0a00ae27u, 0x7d079eb1u,
    0xf00f9344u, 0x8708a3d2u, 0x1e01f268u, 0x6906c2feu, 0xf762575du, 0x806567cbu,
    0x196c3671u, 0x6e6b06e7u, 0xfed41b76u, 0x89d32be0u, 0x10da7a5au, 0x67dd4accu,
    0xf9b9df6fu, 0x8ebeeff9u, 0x17b7be43u, 0x60b08ed5u, 0xd6d6a3e8u, 0xa1d1937eu,
    0x38d8c2c4u, 0x4fdff252u, 0xd1bb67f1u, 0xa6bc5767u, 0x3fb506ddu, 0x48b2364bu,
    0xd80d2bdau, 0xaf0a1b4cu, 0x36034af6u, 0x41047a60u, 0xdf60efc3u, 0xa867df55u,
    0x316e8eefu, 0x4669be79u, 0xcb61b38cu, 0xbc66831au, 0x256fd2a0u, 0x5268e236u,
    0xcc0c7795u, 0xbb0b4703u, 0x220216b9u, 0x5505262fu, 0xc5ba3bbeu, 0xb2bd0b28u,
    0x2bb45a92u, 0x5cb36a04u, 0xc2d7ffa7u, 0xb5d0cf31u, 0x2cd99e8bu, 0x5bdeae1du,
    0x9b64c2b0u, 0xec63f226u, 0x756aa39cu, 0x026d930au, 0x9c0906a9u, 0xeb0e363fu,
    0x72076785u, 0x05005713u, 0x95bf4a82u, 0xe2b87a14u, 0x7bb12baeu, 0x0cb61b38u,
    0x92d28e9bu, 0xe5d5be0du, 0x7cdcefb7u, 0x0bdbdf21u, 0x86d3d2d4u, 0xf1d4e242u,
    0x68ddb3f8u, 0x1fda836eu, 0x81be16cdu, 0xf6b9265bu, 0x6fb077e1u, 0x18b74777u,
    0x88085ae6u, 0xff0f6a70u, 0x66063bcau, 0x11010b5cu, 0x8f659effu, 0xf862ae69u,
    0x616bffd3u, 0x166ccf45u, 0xa00ae278u, 0xd70dd2eeu, 0x4e048354u, 0x3903b3c2u,
    0xa7672661u, 0xd06016f7u, 0x4969474du, 0x3e6e77dbu, 0xaed16a4au, 0xd9d65adcu,
    0x40df0b66u, 0x37d83bf0u, 0xa9bcae53u, 0xdebb9ec5u, 0x47b2cf7fu, 0x30b5ffe9u,
    0xbdbdf21cu, 0xcabac28au, 0x53b39330u, 0x24b4a3a6u, 0xbad03605u, 0xcdd70693u,
    0x54de5729u, 0x23d967bfu, 0xb3667a2eu, 0xc4614ab8u, 0x5d681b02u, 0x2a6f2b94u,
    0xb40bbe37u, 0xc30c8ea1u, 0x5a05df1bu, 0x2d02ef8du,
};

static uint32_t mmspcl__img_crc32(const unsigned char *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    size_t i;
    for (i = 0; i < n; i++) c = mmspcl__img_crc_table[(c ^ p[i]) & 255] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static unsigned char mmspcl__img_paeth(int a, int b, int c) {
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    if (pa <= pb && pa <= pc) return (unsigned char)a;
    if (pb <= pc) return (unsigned char)b;
    return (unsigned char)c;
}

/* Undoes the filters of `rows` rows of `rb` bytes (plus the filter byte) in place. */
static mmspcl_status mmspcl__img_unfilter(unsigned char *d, size_t rows, size_t rb, size_t bpp,
                                          const char *label, mmspcl_error *err) {
    size_t y, x;
    for (y = 0; y < rows; y++) {
        unsigned char *r = d + y * (rb + 1) + 1;
        const unsigned char *up = y ? r - (rb + 1) : NULL;
        unsigned ft = r[-1];
        switch (ft) {
        case 0: break;
        case 1: for (x = bpp; x < rb; x++) r[x] = (unsigned char)(r[x] + r[x - bpp]); break;
        case 2: if (up) for (x = 0; x < rb; x++) r[x] = (unsigned char)(r[x] + up[x]); break;
        case 3:
            for (x = 0; x < rb; x++) {
                unsigned a = x >= bpp ? r[x - bpp] : 0, b = up ? up[x] : 0;
                r[x] = (unsigned char)(r[x] + ((a + b) >> 1));
            }
            break;
        case 4:
            for (x = 0; x < rb; x++) {
                int a = x >= bpp ? r[x - bpp] : 0, b = up ? up[x] : 0, c = (up && x >= bpp) ? up[x - bpp] : 0;
                r[x] = (unsigned char)(r[x] + mmspcl__img_paeth(a, b, c));
            }
            break;
        default:
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: row %zu has filter type %u (0..4 allowed)",
                                label, y, ft);
        }
    }
    return MMSPCL_OK;
}

/* Converts one unfiltered row of n pixels to RGB, writing pixel i at o + i*step*3. */
static void mmspcl__img_png_row(const unsigned char *r, size_t n, int ctype, int depth,
                                const unsigned char (*pal)[3], unsigned char *o, size_t step) {
    size_t i;
    int bps = depth == 16 ? 2 : 1; /* bytes per sample when depth >= 8 */
    for (i = 0; i < n; i++, o += 3 * step) {
        switch (ctype) {
        case 2: o[0] = r[3 * bps * i]; o[1] = r[3 * bps * i + bps]; o[2] = r[3 * bps * i + 2 * bps]; break;
        case 6: o[0] = r[4 * bps * i]; o[1] = r[4 * bps * i + bps]; o[2] = r[4 * bps * i + 2 * bps]; break;
        case 4: o[0] = o[1] = o[2] = r[2 * bps * i]; break;
        default: {
            unsigned v;
            if (depth >= 8) {
                v = r[bps * i];
            } else {
                size_t bit = i * (size_t)depth;
                v = (r[bit >> 3] >> (8 - depth - (int)(bit & 7))) & ((1u << depth) - 1);
            }
            if (ctype == 3) {
                o[0] = pal[v][0]; o[1] = pal[v][1]; o[2] = pal[v][2];
            } else {
                unsigned char g = (unsigned char)(depth == 1 ? v * 255 : depth == 2 ? v * 85 : depth == 4 ? v * 17 : v);
                o[0] = o[1] = o[2] = g;
            }
        }
        }
    }
}

static mmspcl_status mmspcl__img_png(const unsigned char *p, size_t n, mmspcl_image *out,
                                     const char *label, mmspcl_error *err) {
    static const int a7x0[7] = {0, 4, 0, 2, 0, 1, 0}, a7y0[7] = {0, 0, 4, 0, 2, 0, 1};
    static const int a7dx[7] = {8, 8, 4, 4, 2, 2, 1}, a7dy[7] = {8, 8, 8, 4, 4, 2, 2};
    unsigned char pal[256][3];
    int have_ihdr = 0, have_plte = 0, have_iend = 0, seen_idat = 0, idat_done = 0;
    int64_t w = 0, h = 0;
    int depth = 0, ctype = 0, interlace = 0, channels = 1, npal = 0, pass;
    size_t pos = 8, idat_total = 0, idat_first = 0, raw_n = 0, bpp;
    unsigned char *z = NULL, *raw = NULL;
    mmspcl_status st;
    memset(pal, 0, sizeof pal);
    /* pass 1: walk and check every chunk, read IHDR and PLTE, measure IDAT */
    while (!have_iend) {
        uint32_t len, crc;
        const unsigned char *type, *data;
        int c;
        if (n - pos < 12)
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: truncated at byte %zu (no IEND chunk)", label, pos);
        len = mmspcl__img_be32(p + pos);
        type = p + pos + 4;
        data = p + pos + 8;
        if (len > 0x7FFFFFFFu || (size_t)len > n - pos - 12)
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: chunk at byte %zu has length %u, past the end of the file (%zu bytes)",
                                label, pos, (unsigned)len, n);
        for (c = 0; c < 4; c++)
            if (!((type[c] >= 'A' && type[c] <= 'Z') || (type[c] >= 'a' && type[c] <= 'z')))
                return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: chunk at byte %zu has an invalid type", label, pos);
        crc = mmspcl__img_crc32(type, (size_t)len + 4);
        if (crc != mmspcl__img_be32(data + len))
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: CRC mismatch in chunk %.4s at byte %zu",
                                label, (const char *)type, pos);
        if (!have_ihdr && memcmp(type, "IHDR", 4) != 0)
            return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: the first chunk is %.4s, not IHDR", label, (const char *)type);
        if (seen_idat && memcmp(type, "IDAT", 4) != 0) idat_done = 1;
        if (!memcmp(type, "IHDR", 4)) {
            static const char *const names[7] = {"grey", "?", "RGB", "palette", "grey+alpha", "?", "RGBA"};
            int ok;
            if (have_ihdr) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: second IHDR at byte %zu", label, pos);
            if (len != 13) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: IHDR length %u (13 expected)", label, (unsigned)len);
            have_ihdr = 1;
            w = mmspcl__img_be32(data);
            h = mmspcl__img_be32(data + 4);
            depth = data[8];
            ctype = data[9];
            interlace = data[12];
            if (w < 1 || h < 1 || w > 0x7FFFFFFF || h > 0x7FFFFFFF)
                return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: IHDR size %lld x %lld", label, (long long)w, (long long)h);
            switch (ctype) {
            case 0: ok = depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16; channels = 1; break;
            case 3: ok = depth == 1 || depth == 2 || depth == 4 || depth == 8; channels = 1; break;
            case 2: ok = depth == 8 || depth == 16; channels = 3; break;
            case 4: ok = depth == 8 || depth == 16; channels = 2; break;
            case 6: ok = depth == 8 || depth == 16; channels = 4; break;
            default:
                return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: colour type %d is invalid", label, ctype);
            }
            if (!ok)
                return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: bit depth %d is invalid for colour type %d (%s)",
                                    label, depth, ctype, names[ctype]);
            if (data[10] != 0 || data[11] != 0)
                return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: compression method %d / filter method %d (0 expected)",
                                    label, data[10], data[11]);
            if (interlace > 1)
                return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: interlace method %d", label, interlace);
            if (w > MMSPCL_IMAGE_MAX_SIDE || h > MMSPCL_IMAGE_MAX_SIDE || w * h > MMSPCL_IMAGE_MAX_PIXELS)
                return mmspcl__img_alloc(out, w, h, label, "PNG", err);
        } else if (!memcmp(type, "PLTE", 4)) {
            if (seen_idat) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: PLTE after IDAT", label);
            if (have_plte) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: second PLTE", label);
            if (len % 3 || len == 0 || len > 768)
                return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: PLTE length %u", label, (unsigned)len);
            have_plte = 1;
            npal = (int)(len / 3);
            memcpy(pal, data, len);
        } else if (!memcmp(type, "IDAT", 4)) {
            if (idat_done) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: IDAT chunks are not consecutive (byte %zu)", label, pos);
            if (!seen_idat) idat_first = pos;
            seen_idat = 1;
            idat_total += len;
        } else if (!memcmp(type, "IEND", 4)) {
            have_iend = 1;
        } else if (!(type[0] & 32)) {
            return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "%s: PNG: unknown critical chunk %.4s at byte %zu",
                                label, (const char *)type, pos);
        }
        pos += (size_t)len + 12;
    }
    if (!seen_idat) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: no IDAT chunk", label);
    if (ctype == 3 && !have_plte) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: palette image without PLTE", label);
    (void)npal; /* indices past the palette give black */
    bpp = (size_t)channels * (size_t)depth / 8;
    if (bpp == 0) bpp = 1;
    /* expected decompressed size */
    for (pass = 0; pass < (interlace ? 7 : 1); pass++) {
        int64_t pw = interlace ? (w - a7x0[pass] + a7dx[pass] - 1) / a7dx[pass] : w;
        int64_t ph = interlace ? (h - a7y0[pass] + a7dy[pass] - 1) / a7dy[pass] : h;
        if (pw <= 0 || ph <= 0) continue;
        raw_n += (size_t)ph * (((size_t)pw * (size_t)channels * (size_t)depth + 7) / 8 + 1);
    }
    /* deflate expands at most 1032:1 (a 258-byte match in 2 bits): refuse before allocating */
    if ((uint64_t)raw_n / 1032 > (uint64_t)idat_total + 64)
        return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: PNG: %zu bytes of IDAT cannot hold the %zu bytes a %lld x %lld image needs",
                            label, idat_total, raw_n, (long long)w, (long long)h);
    z = (unsigned char *)MMSPCL_MALLOC(idat_total ? idat_total : 1);
    raw = (unsigned char *)MMSPCL_MALLOC(raw_n);
    if (!z || !raw) {
        MMSPCL_FREE(z); MMSPCL_FREE(raw);
        return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "%s: PNG: out of memory (%zu + %zu bytes)", label, idat_total, raw_n);
    }
    /* pass 2: gather the IDAT data */
    {
        size_t q = idat_first, zpos = 0;
        while (q + 8 <= n && !memcmp(p + q + 4, "IDAT", 4)) {
            uint32_t len = mmspcl__img_be32(p + q);
            memcpy(z + zpos, p + q + 8, len);
            zpos += len;
            q += (size_t)len + 12;
        }
    }
    st = mmspcl__img_zlib(z, idat_total, raw, raw_n, label, err);
    MMSPCL_FREE(z);
    if (!st) st = mmspcl__img_alloc(out, w, h, label, "PNG", err);
    if (!st) {
        size_t off = 0;
        for (pass = 0; pass < (interlace ? 7 : 1) && !st; pass++) {
            size_t x0 = interlace ? (size_t)a7x0[pass] : 0, y0 = interlace ? (size_t)a7y0[pass] : 0;
            size_t dx = interlace ? (size_t)a7dx[pass] : 1, dy = interlace ? (size_t)a7dy[pass] : 1;
            int64_t pw = interlace ? (w - a7x0[pass] + a7dx[pass] - 1) / a7dx[pass] : w;
            int64_t ph = interlace ? (h - a7y0[pass] + a7dy[pass] - 1) / a7dy[pass] : h;
            size_t rb, y;
            if (pw <= 0 || ph <= 0) continue;
            rb = ((size_t)pw * (size_t)channels * (size_t)depth + 7) / 8;
            st = mmspcl__img_unfilter(raw + off, (size_t)ph, rb, bpp, label, err);
            for (y = 0; y < (size_t)ph && !st; y++)
                mmspcl__img_png_row(raw + off + y * (rb + 1) + 1, (size_t)pw, ctype, depth,
                                    (const unsigned char(*)[3])pal,
                                    out->rgb + ((y0 + y * dy) * (size_t)w + x0) * 3, dx);
            off += (size_t)ph * (rb + 1);
        }
        if (st) mmspcl_image_free(out);
    }
    MMSPCL_FREE(raw);
    return st;
}

/* ---------------------------------------------------------------------------------------------
   Format detection, public decode / load / free
   ------------------------------------------------------------------------------------------ */
static mmspcl_status mmspcl__img_decode(const unsigned char *p, size_t n, mmspcl_image *out,
                                        const char *label, mmspcl_error *err) {
    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    const char *fmt = NULL;
    if (n >= 8 && !memcmp(p, png_sig, 8)) return mmspcl__img_png(p, n, out, label, err);
    if (n >= 2 && p[0] == 'B' && p[1] == 'M') return mmspcl__img_bmp(p, n, out, label, err);
    if (n >= 2 && p[0] == 'P' && (p[1] == '5' || p[1] == '6')) return mmspcl__img_pnm(p, n, out, label, err);
    if (n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) fmt = "JPEG";
    else if (n >= 6 && (!memcmp(p, "GIF87a", 6) || !memcmp(p, "GIF89a", 6))) fmt = "GIF";
    else if (n >= 12 && !memcmp(p, "RIFF", 4) && !memcmp(p + 8, "WEBP", 4)) fmt = "WebP";
    else if (n >= 4 && (!memcmp(p, "II*\0", 4) || !memcmp(p, "MM\0*", 4))) fmt = "TIFF";
    else if (n >= 12 && !memcmp(p + 4, "ftyp", 4)) fmt = "HEIF/AVIF (ISO media)";
    else if (n >= 4 && !memcmp(p, "qoif", 4)) fmt = "QOI";
    else if (n >= 4 && p[0] == 0 && p[1] == 0 && (p[2] == 1 || p[2] == 2) && p[3] == 0) fmt = "ICO/CUR";
    else if (n >= 4 && !memcmp(p, "8BPS", 4)) fmt = "Photoshop PSD";
    else if (n >= 12 && !memcmp(p, "\0\0\0\x0CjP  ", 8)) fmt = "JPEG 2000";
    else if (n >= 4 && !memcmp(p, "\x76\x2f\x31\x01", 4)) fmt = "OpenEXR";
    else if (n >= 2 && p[0] == 'P' && p[1] >= '1' && p[1] <= '4') fmt = "plain-text or 1-bit PNM (P1-P4)";
    else if (n >= 2 && p[0] == 'P' && p[1] == '7') fmt = "PAM (P7)";
    if (fmt)
        return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "%s: %s images are not supported (PNG, BMP, binary PPM/PGM are)",
                            label, fmt);
    if (n == 0) return mmspcl__fail(err, MMSPCL_ERR_FORMAT, "%s: empty image data", label);
    return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED,
                        "%s: unknown image format (first bytes %02x %02x %02x %02x; PNG, BMP, binary PPM/PGM are supported)",
                        label, p[0], n > 1 ? p[1] : 0, n > 2 ? p[2] : 0, n > 3 ? p[3] : 0);
}

mmspcl_status mmspcl_image_decode(const void *bytes, size_t size, mmspcl_image *out, mmspcl_error *err) {
    mmspcl_status st;
    if (!out) return mmspcl__fail(err, MMSPCL_ERR_ARG, "image_decode: NULL output");
    out->width = out->height = 0;
    out->rgb = NULL;
    if (!bytes && size) return mmspcl__fail(err, MMSPCL_ERR_ARG, "image_decode: NULL bytes");
    st = mmspcl__img_decode((const unsigned char *)bytes, bytes ? size : 0, out, "image", err);
    if (st) mmspcl_image_free(out);
    return st;
}

void mmspcl_image_free(mmspcl_image *img) {
    if (!img) return;
    MMSPCL_FREE(img->rgb);
    img->rgb = NULL;
    img->width = img->height = 0;
}

#ifndef MMSPCL_NO_STDIO
mmspcl_status mmspcl_image_load(const char *path, mmspcl_image *out, mmspcl_error *err) {
    const int64_t max_bytes = MMSPCL_IMAGE_MAX_FILE_BYTES;
    const uint64_t max_size = (uint64_t)(SIZE_MAX - 1);
    FILE *f;
    long len;
    unsigned char *buf;
    mmspcl_status st;
    if (!out) return mmspcl__fail(err, MMSPCL_ERR_ARG, "image_load: NULL output");
    out->width = out->height = 0;
    out->rgb = NULL;
    if (!path) return mmspcl__fail(err, MMSPCL_ERR_ARG, "image_load: NULL path");
    if (!(f = fopen(path, "rb"))) return mmspcl__fail(err, MMSPCL_ERR_IO, "%s: cannot open", path);
    if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return mmspcl__fail(err, MMSPCL_ERR_IO, "%s: cannot find the file size (not a regular file?)", path);
    }
    /* through variables: where long is 32 bits a constant bound would warn (-Wtype-limits) */
    if ((int64_t)len > max_bytes || (uint64_t)len > max_size) {
        int unreadable = getc(f) == EOF && ferror(f); /* a directory reports a huge size */
        fclose(f);
        if (unreadable) return mmspcl__fail(err, MMSPCL_ERR_IO, "%s: cannot read (a directory?)", path);
        return mmspcl__fail(err, MMSPCL_ERR_UNSUPPORTED, "%s: %ld bytes is over the image file limit", path, len);
    }
    buf = (unsigned char *)MMSPCL_MALLOC((size_t)len + 1);
    if (!buf) {
        fclose(f);
        return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "%s: cannot allocate %ld bytes", path, len);
    }
    if (len && fread(buf, 1, (size_t)len, f) != (size_t)len) {
        fclose(f);
        MMSPCL_FREE(buf);
        return mmspcl__fail(err, MMSPCL_ERR_IO, "%s: short read", path);
    }
    fclose(f);
    st = mmspcl__img_decode(buf, (size_t)len, out, path, err);
    if (st) mmspcl_image_free(out);
    MMSPCL_FREE(buf);
    return st;
}
#endif

/* ---------------------------------------------------------------------------------------------
   Pillow-exact bicubic resampling (same arithmetic as libImaging/Resample.c, written anew)
   ------------------------------------------------------------------------------------------ */
#define MMSPCL__IMG_PREC 22 /* fraction bits of the fixed-point coefficients (32 - 8 - 2) */

static double mmspcl__img_bicubic(double x) { /* a = -0.5 */
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((-0.5 + 2.0) * x - (-0.5 + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * -0.5;
    return 0.0;
}

typedef struct mmspcl__img_coeffs {
    int ksize;
    int *lo, *cnt;  /* first source index and number of taps of each output index */
    int32_t *k;     /* ksize per output index */
} mmspcl__img_coeffs;

/* Coefficients for output indices first .. first+count-1 of an in_size -> out_size resampling. */
static int mmspcl__img_coeffs_make(mmspcl__img_coeffs *c, int in_size, int out_size, int first, int count) {
    double scale = (double)(float)in_size / out_size, fscale = scale < 1.0 ? 1.0 : scale;
    double support = 2.0 * fscale, ss = 1.0 / fscale;
    double *wbuf;
    int i, ksize = (int)ceil(support) * 2 + 1;
    c->ksize = ksize;
    c->lo = (int *)MMSPCL_MALLOC(sizeof(int) * 2 * (size_t)count);
    c->k = (int32_t *)MMSPCL_MALLOC(sizeof(int32_t) * (size_t)ksize * (size_t)count);
    wbuf = (double *)MMSPCL_MALLOC(sizeof(double) * (size_t)ksize);
    if (!c->lo || !c->k || !wbuf) {
        MMSPCL_FREE(c->lo); MMSPCL_FREE(c->k); MMSPCL_FREE(wbuf);
        c->lo = NULL; c->k = NULL;
        return -1;
    }
    c->cnt = c->lo + count;
    for (i = 0; i < count; i++) {
        double center = 0.0 + ((double)(first + i) + 0.5) * scale, ww = 0.0;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5), x;
        int32_t *k = c->k + (size_t)i * (size_t)ksize;
        if (xmin < 0) xmin = 0;
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        if (xmax > ksize) xmax = ksize;
        if (xmax < 0) xmax = 0;
        for (x = 0; x < xmax; x++) {
            double v = mmspcl__img_bicubic(((double)(x + xmin) - center + 0.5) * ss);
            wbuf[x] = v;
            ww += v;
        }
        for (x = 0; x < xmax; x++) {
            double v = ww != 0.0 ? wbuf[x] / ww : wbuf[x];
            k[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << MMSPCL__IMG_PREC)) : (int32_t)(0.5 + v * (1 << MMSPCL__IMG_PREC));
        }
        for (; x < ksize; x++) k[x] = 0;
        c->lo[i] = xmin;
        c->cnt[i] = xmax;
    }
    MMSPCL_FREE(wbuf);
    return 0;
}

static void mmspcl__img_coeffs_free(mmspcl__img_coeffs *c) {
    MMSPCL_FREE(c->lo);
    MMSPCL_FREE(c->k);
    c->lo = NULL; c->k = NULL;
}

static unsigned char mmspcl__img_clip8(int64_t v) {
    if (v < 0) return 0;
    v >>= MMSPCL__IMG_PREC;
    return (unsigned char)(v > 255 ? 255 : v);
}

/* The window [x0, x0+cw) x [y0, y0+ch) of the dw x dh bicubic resize of src (w x h RGB, `stride`
   bytes per row), written to dst with `dstride` bytes per row. The window lies inside dw x dh. */
static mmspcl_status mmspcl__img_resample(const unsigned char *src, int w, int h, size_t stride,
                                          int dw, int dh, int x0, int y0, int cw, int ch,
                                          unsigned char *dst, size_t dstride) {
    mmspcl__img_coeffs cx, cy;
    const unsigned char *t; /* rows after the horizontal pass */
    unsigned char *tmp = NULL;
    size_t tstride;
    int need_h = dw != w, need_v = dh != h, r0, r1, xx, yy;
    memset(&cx, 0, sizeof cx);
    memset(&cy, 0, sizeof cy);
    if (cw <= 0 || ch <= 0) return MMSPCL_OK;
    if (need_v) {
        if (mmspcl__img_coeffs_make(&cy, h, dh, y0, ch)) return MMSPCL_ERR_NOMEM;
        r0 = cy.lo[0];
        r1 = cy.lo[ch - 1] + cy.cnt[ch - 1];
        for (yy = 0; yy < ch; yy++) { /* rows used by the window */
            if (cy.lo[yy] < r0) r0 = cy.lo[yy];
            if (cy.lo[yy] + cy.cnt[yy] > r1) r1 = cy.lo[yy] + cy.cnt[yy];
        }
    } else {
        r0 = y0;
        r1 = y0 + ch;
    }
    if (need_h) {
        int r;
        if (mmspcl__img_coeffs_make(&cx, w, dw, x0, cw)) { mmspcl__img_coeffs_free(&cy); return MMSPCL_ERR_NOMEM; }
        tstride = (size_t)cw * 3;
        tmp = (unsigned char *)MMSPCL_MALLOC(tstride * (size_t)(r1 > r0 ? r1 - r0 : 1));
        if (!tmp) { mmspcl__img_coeffs_free(&cx); mmspcl__img_coeffs_free(&cy); return MMSPCL_ERR_NOMEM; }
        for (r = r0; r < r1; r++) {
            const unsigned char *s = src + (size_t)r * stride;
            unsigned char *o = tmp + (size_t)(r - r0) * tstride;
            for (xx = 0; xx < cw; xx++) {
                const int32_t *k = cx.k + (size_t)xx * (size_t)cx.ksize;
                const unsigned char *sp = s + (size_t)cx.lo[xx] * 3;
                int64_t a0 = 1 << (MMSPCL__IMG_PREC - 1), a1 = a0, a2 = a0;
                int n = cx.cnt[xx], x;
                for (x = 0; x < n; x++) {
                    a0 += (int64_t)sp[3 * x] * k[x];
                    a1 += (int64_t)sp[3 * x + 1] * k[x];
                    a2 += (int64_t)sp[3 * x + 2] * k[x];
                }
                o[3 * xx] = mmspcl__img_clip8(a0);
                o[3 * xx + 1] = mmspcl__img_clip8(a1);
                o[3 * xx + 2] = mmspcl__img_clip8(a2);
            }
        }
        t = tmp;
        mmspcl__img_coeffs_free(&cx);
    } else {
        t = src + (size_t)r0 * stride + (size_t)x0 * 3;
        tstride = stride;
    }
    for (yy = 0; yy < ch; yy++) {
        unsigned char *o = dst + (size_t)yy * dstride;
        if (!need_v) {
            memcpy(o, t + (size_t)yy * tstride, (size_t)cw * 3);
            continue;
        }
        {
            const int32_t *k = cy.k + (size_t)yy * (size_t)cy.ksize;
            const unsigned char *base = t + (size_t)(cy.lo[yy] - r0) * tstride;
            int n = cy.cnt[yy];
            for (xx = 0; xx < cw * 3; xx++) {
                int64_t a = 1 << (MMSPCL__IMG_PREC - 1);
                const unsigned char *sp = base + xx;
                int y;
                for (y = 0; y < n; y++) a += (int64_t)sp[(size_t)y * tstride] * k[y];
                o[xx] = mmspcl__img_clip8(a);
            }
        }
    }
    MMSPCL_FREE(tmp);
    mmspcl__img_coeffs_free(&cy);
    return MMSPCL_OK;
}

mmspcl_status mmspcl_image_resize_bicubic(const unsigned char *src, int w, int h, unsigned char *dst, int dw, int dh) {
    if (!src || !dst || w < 1 || h < 1 || dw < 1 || dh < 1 || w > MMSPCL_IMAGE_MAX_SIDE || h > MMSPCL_IMAGE_MAX_SIDE ||
        dw > MMSPCL_IMAGE_MAX_SIDE || dh > MMSPCL_IMAGE_MAX_SIDE)
        return MMSPCL_ERR_ARG;
    return mmspcl__img_resample(src, w, h, (size_t)w * 3, dw, dh, 0, 0, dw, dh, dst, (size_t)dw * 3);
}

/* ---------------------------------------------------------------------------------------------
   CLIP preprocessing
   ------------------------------------------------------------------------------------------ */
mmspcl_status mmspcl_clip_resize_size(int w, int h, int shortest_edge, int *out_w, int *out_h) {
    int shorter, longer, nl;
    double v;
    if (w < 1 || h < 1 || w > MMSPCL_IMAGE_MAX_SIDE || h > MMSPCL_IMAGE_MAX_SIDE || shortest_edge < 1 ||
        shortest_edge > MMSPCL_CLIP_MAX_SIZE || !out_w || !out_h)
        return MMSPCL_ERR_ARG;
    shorter = w <= h ? w : h;
    longer = w <= h ? h : w;
    /* Python: int(S * long / short): exact product, correctly rounded division, truncation */
    v = (double)((int64_t)shortest_edge * longer) / (double)shorter;
    nl = (int)v;
    if (w <= h) { *out_w = shortest_edge; *out_h = nl; }
    else { *out_w = nl; *out_h = shortest_edge; }
    return MMSPCL_OK;
}

static int mmspcl__img_floordiv2(int v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); }

mmspcl_status mmspcl_clip_resize_crop(const unsigned char *rgb, int width, int height, size_t stride,
                                      int shortest_edge, int crop, unsigned char *out, mmspcl_error *err) {
    int rw, rh, top, left, ys, ye, xs, xe;
    mmspcl_status st;
    if (!rgb || !out) return mmspcl__fail(err, MMSPCL_ERR_ARG, "clip_resize_crop: NULL argument");
    if (width < 1 || height < 1 || width > MMSPCL_IMAGE_MAX_SIDE || height > MMSPCL_IMAGE_MAX_SIDE ||
        (int64_t)width * height > MMSPCL_IMAGE_MAX_PIXELS)
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "clip preprocessing: image size %d x %d is outside 1..%d", width, height,
                            MMSPCL_IMAGE_MAX_SIDE);
    if (stride < (size_t)width * 3)
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "clip preprocessing: stride %zu < width * 3 = %zu", stride, (size_t)width * 3);
    if (shortest_edge < 1 || shortest_edge > MMSPCL_CLIP_MAX_SIZE || crop < 1 || crop > MMSPCL_CLIP_MAX_SIZE)
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "clip preprocessing: shortest_edge %d / crop %d outside 1..%d",
                            shortest_edge, crop, MMSPCL_CLIP_MAX_SIZE);
    mmspcl_clip_resize_size(width, height, shortest_edge, &rw, &rh);
    top = mmspcl__img_floordiv2(rh - crop);
    left = mmspcl__img_floordiv2(rw - crop);
    ys = top < 0 ? 0 : top;
    ye = top + crop > rh ? rh : top + crop;
    xs = left < 0 ? 0 : left;
    xe = left + crop > rw ? rw : left + crop;
    if (top < 0 || left < 0 || top + crop > rh || left + crop > rw)
        memset(out, 0, (size_t)crop * (size_t)crop * 3); /* padding (crop larger than the image) */
    st = mmspcl__img_resample(rgb, width, height, stride, rw, rh, xs, ys, xe - xs, ye - ys,
                              out + ((size_t)(ys - top) * (size_t)crop + (size_t)(xs - left)) * 3, (size_t)crop * 3);
    if (st) return mmspcl__fail(err, st, "clip preprocessing: out of memory resizing %d x %d to %d x %d", width, height, rw, rh);
    return MMSPCL_OK;
}

mmspcl_status mmspcl_clip_preprocess_rgb(const unsigned char *rgb, int width, int height, size_t stride,
                                         int shortest_edge, int crop, const float mean[3], const float stdev[3],
                                         float *out, mmspcl_error *err) {
    unsigned char *u8;
    size_t n, i;
    int c;
    mmspcl_status st;
    if (!mean || !stdev || !out) return mmspcl__fail(err, MMSPCL_ERR_ARG, "clip_preprocess: NULL argument");
    for (c = 0; c < 3; c++)
        if (!(stdev[c] != 0.0f)) return mmspcl__fail(err, MMSPCL_ERR_ARG, "clip_preprocess: std[%d] is zero", c);
    if (crop < 1 || crop > MMSPCL_CLIP_MAX_SIZE)
        return mmspcl__fail(err, MMSPCL_ERR_ARG, "clip_preprocess: crop %d outside 1..%d", crop, MMSPCL_CLIP_MAX_SIZE);
    n = (size_t)crop * (size_t)crop;
    u8 = (unsigned char *)MMSPCL_MALLOC(n * 3);
    if (!u8) return mmspcl__fail(err, MMSPCL_ERR_NOMEM, "clip_preprocess: cannot allocate %zu bytes", n * 3);
    st = mmspcl_clip_resize_crop(rgb, width, height, stride, shortest_edge, crop, u8, err);
    if (!st) {
        for (c = 0; c < 3; c++) {
            float lut[256];
            int v;
            for (v = 0; v < 256; v++) {
                /* Hugging Face: rescale in float64 then cast to float32; normalise in float32 */
                float x = (float)((double)v * (1.0 / 255.0));
                lut[v] = (x - mean[c]) / stdev[c];
            }
            for (i = 0; i < n; i++) out[(size_t)c * n + i] = lut[u8[3 * i + (size_t)c]];
        }
    }
    MMSPCL_FREE(u8);
    return st;
}

mmspcl_status mmspcl_clip_preprocess(const mmspcl_image *img, int shortest_edge, int crop, const float mean[3],
                                     const float stdev[3], float *out, mmspcl_error *err) {
    if (!img || !img->rgb) return mmspcl__fail(err, MMSPCL_ERR_ARG, "clip_preprocess: NULL or empty image");
    return mmspcl_clip_preprocess_rgb(img->rgb, img->width, img->height, (size_t)img->width * 3, shortest_edge, crop,
                                      mean, stdev, out, err);
}
