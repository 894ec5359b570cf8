#!/usr/bin/python3
"""Image references from Pillow (Debian's python3-pil) for tests/test_image.c.

1. Decoder files (tests/data/images/dec/): small PNG, BMP and PPM/PGM files written byte by byte
   here (PNG: every colour type and bit depth the C decoder reads, each of the five filter types,
   stored / fixed / dynamic deflate blocks made by Python's zlib, several IDAT chunks, ancillary
   chunks, Adam7 interlacing; one PNG saved by Pillow itself), and next to each one the
   pixels Pillow decodes, .convert("RGB") (NAME.EXT.rgb). Manifest: dec/decode.txt, one line per file:
       FILE WIDTH HEIGHT EXPECTED.rgb   (# comments say what the file exercises)
   Two files are not Pillow's answer, because Pillow gives something no caller wants there:
   16-bit grey PNG (Pillow clips the 16-bit value to 255; we keep the high byte, as Pillow does
   for 16-bit RGB) and 16-bit PGM (Pillow clips likewise; we scale as it does for 8-bit maxval).

2. CLIP preprocessing references (tests/data/images/clip/): Hugging Face's CLIPImageProcessor
   pipeline, replayed with Pillow and numpy (transformers is not installed here; the steps are
   those of transformers' image_transforms.py):
       img  = Image.open(f).convert("RGB")                      (convert_rgb: drops alpha)
       (h, w) = get_resize_output_image_size(size=S, default_to_square=False):
                short, long = sorted; new_long = int(S * long / short)
       img  = img.resize((w, h), Image.BICUBIC)                 (PIL; no reducing_gap)
       crop = center_crop(C): top = (h - C) // 2, left = (w - C) // 2, zero padding if smaller
       x    = (crop.astype(float64) * (1/255)).astype(float32)   (rescale)
       x    = (x - mean.astype(float32)) / std.astype(float32)   (normalize, float32)
       out  = x.transpose(2, 0, 1)                               (channels first)
   Inputs: synthetic images defined by a formula the C test recomputes (synth() below), and
   ../shared/data/images/CLIP.png (read at test time, never copied). Outputs: the uint8 crop
   (NAME_S_C.u8 raw, or .png for the 224 ones to stay small), plus for two cases the float32
   tensor (NAME_S_C.f32, little-endian [3][C][C]). Manifest: clip/clip.txt:
       NAME SOURCE W H S C RESIZED_W RESIZED_H U8FILE F32FILE|-
   SOURCE is synth:SEED:KIND or a path relative to the repository root.
   Also clip/clip_png.txt: CRC-32 and size of Pillow's RGB decode of CLIP.png.

Usage: tools/reference/image_ref.py     (writes tests/data/images/; deterministic)
"""
import io
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = os.path.join(ROOT, "tests", "data", "images")
CLIP_PNG = "../shared/data/images/CLIP.png"  # relative to the repository root
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


# ------------------------------------------------------------------------------------------------
# Synthetic images: the C test computes the same formula (tests/test_image.c: synth()).
#   h = (x*73856093) ^ (y*19349663) ^ (c*83492791) ^ (seed*2654435761)      (mod 2^32)
#   h = ((h ^ (h >> 13)) * 0x5bd1e995) mod 2^32;  h ^= h >> 15;  noise = h & 255
#   kind 0: noise
#   kind 1: gradient + noise: g = (x*255 // max(w-1,1) * (c+1) + y*255 // max(h-1,1) * (3-c)) // 4
#           v = (3*g + noise) // 4
#   kind 2: hard-edged blocks: b = ((x // 7) + 2*(y // 5) + c) % 3;  v = 0, 255, or noise
# ------------------------------------------------------------------------------------------------
def synth(w, h, seed, kind):
    M = 0xFFFFFFFF
    y, x = np.meshgrid(np.arange(h, dtype=np.uint64), np.arange(w, dtype=np.uint64), indexing="ij")
    out = np.zeros((h, w, 3), dtype=np.uint8)
    for c in range(3):
        hh = ((x * 73856093) & M) ^ ((y * 19349663) & M) ^ np.uint64((c * 83492791) & M) ^ np.uint64((seed * 2654435761) & M)
        hh = ((hh ^ (hh >> np.uint64(13))) * np.uint64(0x5BD1E995)) & np.uint64(M)
        hh = hh ^ (hh >> np.uint64(15))
        noise = (hh & np.uint64(255)).astype(np.int64)
        xi, yi = x.astype(np.int64), y.astype(np.int64)
        if kind == 0:
            v = noise
        elif kind == 1:
            g = (xi * 255 // max(w - 1, 1) * (c + 1) + yi * 255 // max(h - 1, 1) * (3 - c)) // 4
            v = (3 * g + noise) // 4
        else:
            b = ((xi // 7) + 2 * (yi // 5) + c) % 3
            v = np.where(b == 0, 0, np.where(b == 1, 255, noise))
        out[:, :, c] = v.astype(np.uint8)
    return out


# ------------------------------------------------------------------------------------------------
# PNG writing by hand
# ------------------------------------------------------------------------------------------------
def chunk(t, data):
    return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data) & 0xFFFFFFFF)


def pack_row(samples, depth):
    """samples: 1-D ints; depth 1/2/4/8/16 -> packed bytes (big-endian for 16)."""
    if depth == 8:
        return bytes(int(s) for s in samples)
    if depth == 16:
        return b"".join(struct.pack(">H", int(s)) for s in samples)
    out = bytearray((len(samples) * depth + 7) // 8)
    for i, s in enumerate(samples):
        bit = i * depth
        out[bit // 8] |= int(s) << (8 - depth - bit % 8)
    return bytes(out)


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def filter_rows(rows, bpp, filters):
    """rows: list of bytes (unfiltered); filters: list of filter types -> filtered stream bytes."""
    out = bytearray()
    prev = bytes(len(rows[0])) if rows else b""
    for r, ft in zip(rows, filters):
        f = bytearray(len(r))
        for i in range(len(r)):
            a = r[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][ft]
            f[i] = (r[i] - pred) & 255
        out.append(ft)
        out += f
        prev = r
    return bytes(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def make_png(samples, depth, ctype, filters=None, interlace=False, plte=None, trns=None,
             level=9, strategy=zlib.Z_DEFAULT_STRATEGY, idat_split=0, extra=(), flush_every=0):
    """samples: array [h][w][channels] of sample values. Returns (png bytes, first block type)."""
    h, w, ch = samples.shape
    bpp = max(1, ch * depth // 8)
    if interlace:
        passes = []
        for (x0, y0, dx, dy) in ADAM7:
            sub = samples[y0::dy, x0::dx]
            if sub.shape[0] and sub.shape[1]:
                passes.append(sub)
    else:
        passes = [samples]
    raw = b""
    rowno = 0
    for sub in passes:
        rows = [pack_row(sub[y].reshape(-1), depth) for y in range(sub.shape[0])]
        fts = []
        for _ in rows:
            fts.append(filters[rowno % len(filters)] if filters else 0)
            rowno += 1
        raw += filter_rows(rows, bpp, fts)
    co = zlib.compressobj(level, zlib.DEFLATED, 15, 9, strategy)
    if flush_every:
        z = b""
        for i in range(0, len(raw), flush_every):
            z += co.compress(raw[i:i + flush_every]) + co.flush(zlib.Z_FULL_FLUSH)
        z += co.flush()
    else:
        z = co.compress(raw) + co.flush()
    btype = (z[2] >> 1) & 3
    png = b"\x89PNG\r\n\x1a\n"
    png += chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 1 if interlace else 0))
    for e in extra:
        png += e
    if plte is not None:
        png += chunk(b"PLTE", bytes(plte))
    if trns is not None:
        png += chunk(b"tRNS", bytes(trns))
    if idat_split:
        for i in range(0, len(z), idat_split):
            png += chunk(b"IDAT", z[i:i + idat_split])
    else:
        png += chunk(b"IDAT", z)
    png += chunk(b"IEND", b"")
    return png, btype


# ------------------------------------------------------------------------------------------------
# BMP writing by hand
# ------------------------------------------------------------------------------------------------
def make_bmp(rgb, bits=24, topdown=False, header=40, bitfields=None, palette=None, indices=None):
    h, w = (indices.shape if indices is not None else rgb.shape[:2])
    stride = ((w * bits + 31) // 32) * 4
    rows = []
    for y in range(h):
        if bits == 24:
            r = bytes(rgb[y, :, ::-1].reshape(-1))
        elif bits == 32:
            r = b""
            for x in range(w):
                R, G, B = (int(v) for v in rgb[y, x])
                if bitfields is None:
                    r += bytes([B, G, R, 0x5A])
                else:
                    m = bitfields
                    sh = [((mm & -mm).bit_length() - 1) for mm in m[:3]]
                    a_sh = ((m[3] & -m[3]).bit_length() - 1) if len(m) > 3 and m[3] else None
                    v = (R << sh[0]) | (G << sh[1]) | (B << sh[2])
                    if a_sh is not None:
                        v |= 0x77 << a_sh
                    r += struct.pack("<I", v)
        else:
            r = pack_row(indices[y], bits)
        rows.append(r + bytes(stride - len(r)))
    if not topdown:
        rows = rows[::-1]
    pix = b"".join(rows)
    pal = b""
    if palette is not None:
        for (R, G, B) in palette:
            pal += bytes([B, G, R]) + (b"" if header == 12 else b"\0")
    masks = b""
    compression = 0
    if bitfields is not None:
        compression = 3
        if header == 40:
            masks = struct.pack("<III", *bitfields[:3])
    if header == 12:
        dib = struct.pack("<IHHHH", 12, w, h, 1, bits)
    else:
        dib = struct.pack("<IiiHHIIiiII", header, w, -h if topdown else h, 1, bits, compression,
                          len(pix), 2835, 2835, len(palette) if palette is not None else 0, 0)
        if header > 40:
            m = list(bitfields) if bitfields is not None else [0, 0, 0, 0]
            m = (m + [0, 0, 0, 0])[:4]
            dib += struct.pack("<IIII", *m)
            dib += bytes(header - len(dib))
    off = 14 + len(dib) + len(masks) + len(pal)
    fh = b"BM" + struct.pack("<IHHI", off + len(pix), 0, 0, off)
    return fh + dib + masks + pal + pix


def pillow_rgb(data):
    im = Image.open(io.BytesIO(data))
    im.load()
    return im.convert("RGB").tobytes(), im.size, im.mode


# ------------------------------------------------------------------------------------------------
def write_decoder_files():
    d = os.path.join(OUT, "dec")
    os.makedirs(d, exist_ok=True)
    manifest = []
    btypes = set()

    def add(name, data, note, expected=None, size=None):
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
        if expected is None:
            expected, size, mode = pillow_rgb(data)
        else:
            mode = "formula"
        with open(os.path.join(d, name + ".rgb"), "wb") as f:
            f.write(expected)
        manifest.append("%s %d %d %s.rgb  # %s (expected from %s)" % (name, size[0], size[1], name, note,
                                                                        "Pillow" if mode != "formula" else "formula"))

    rng = np.random.RandomState(1234)
    # RGB 8-bit, all five filters (row r uses filter r % 5), dynamic Huffman
    img = synth(40, 25, 3, 1)
    png, bt = make_png(img, 8, 2, filters=[0, 1, 2, 3, 4])
    assert bt == 2, bt
    btypes.add(bt)
    add("rgb8_filters_dynamic.png", png, "RGB 8-bit, filters 0-4 by row, dynamic Huffman")
    # RGBA, Paeth/Avg/Sub, fixed Huffman
    img = np.concatenate([synth(17, 9, 4, 2), rng.randint(0, 256, (9, 17, 1)).astype(np.uint8)], axis=2)
    png, bt = make_png(img, 8, 6, filters=[4, 3, 1, 2, 0], strategy=zlib.Z_FIXED)
    assert bt == 1, bt
    btypes.add(bt)
    add("rgba8_fixed.png", png, "RGBA 8-bit (alpha dropped), fixed Huffman")
    # grey 8 stored blocks (level 0), with gAMA and tEXt ancillary chunks
    img = synth(23, 7, 5, 1)[:, :, :1]
    png, bt = make_png(img, 8, 0, filters=[2, 3, 4, 1, 0], level=0,
                       extra=[chunk(b"gAMA", struct.pack(">I", 45455)), chunk(b"tEXt", b"Comment\0mmspcl")])
    assert bt == 0, bt
    btypes.add(bt)
    add("grey8_stored.png", png, "grey 8-bit, stored deflate blocks, ancillary chunks")
    # grey+alpha 8, split into many IDAT chunks, several deflate blocks (full flushes)
    img = np.concatenate([synth(19, 13, 6, 2)[:, :, :1], synth(19, 13, 7, 0)[:, :, :1]], axis=2)
    png, _ = make_png(img, 8, 4, filters=[1, 4, 2], idat_split=7, flush_every=50)
    add("greyalpha8_multi_idat.png", png, "grey+alpha 8-bit, 7-byte IDAT chunks, deflate full flushes")
    # palette 8/4/2/1 bits (tRNS on one)
    for depth, w, h in ((8, 21, 6), (4, 13, 5), (2, 11, 4), (1, 19, 3)):
        n = 1 << depth
        npal = min(n, 200)
        pal = rng.randint(0, 256, (npal, 3)).astype(np.uint8)
        idx = rng.randint(0, npal, (h, w, 1))
        png, _ = make_png(idx, depth, 3, filters=[0, 1, 2, 3, 4], plte=pal.reshape(-1).tolist(),
                          trns=[0, 128, 255] if depth == 4 else None)
        add("pal%d.png" % depth, png, "palette %d-bit" % depth)
    # grey 1/2/4
    for depth, w, h in ((1, 17, 3), (2, 9, 5), (4, 7, 4)):
        s = rng.randint(0, 1 << depth, (h, w, 1))
        png, _ = make_png(s, depth, 0, filters=[4, 3, 2, 1, 0])
        add("grey%d.png" % depth, png, "grey %d-bit" % depth)
    # Adam7 interlaced
    img = synth(11, 9, 8, 2)
    png, _ = make_png(img, 8, 2, filters=[4, 1, 3, 2, 0], interlace=True)
    add("rgb8_adam7.png", png, "RGB 8-bit, Adam7 interlaced")
    idx = rng.randint(0, 4, (7, 10, 1))
    png, _ = make_png(idx, 2, 3, filters=[1, 2], interlace=True, plte=[255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 99, 199])
    add("pal2_adam7.png", png, "palette 2-bit, Adam7 interlaced")
    png, _ = make_png(synth(3, 2, 9, 0), 8, 2, interlace=True)
    add("rgb8_adam7_3x2.png", png, "RGB 3x2, Adam7 with empty passes")
    png, _ = make_png(synth(1, 1, 9, 0), 8, 2)
    add("rgb8_1x1.png", png, "RGB 1x1")
    # 16-bit
    img16 = rng.randint(0, 65536, (5, 6, 3))
    png, _ = make_png(img16, 16, 2, filters=[0, 1, 2, 3, 4])
    add("rgb16.png", png, "RGB 16-bit (high byte)")
    assert pillow_rgb(png)[0] == (img16 >> 8).astype(np.uint8).tobytes()
    img16a = rng.randint(0, 65536, (4, 5, 4))
    png, _ = make_png(img16a, 16, 6, filters=[3, 4])
    add("rgba16.png", png, "RGBA 16-bit (high byte)")
    g16 = rng.randint(0, 65536, (3, 7, 1))
    png, _ = make_png(g16, 16, 0, filters=[1, 4, 3])
    hi = (g16[:, :, 0] >> 8).astype(np.uint8)
    add("grey16.png", png, "grey 16-bit (high byte; Pillow clips instead)",
        expected=np.repeat(hi[:, :, None], 3, axis=2).tobytes(), size=(7, 3))
    # a PNG written by Pillow itself (adaptive filters, zlib's choice of blocks)
    buf = io.BytesIO()
    Image.fromarray(synth(97, 61, 10, 2)).save(buf, format="PNG", optimize=True)
    add("pillow_saved.png", buf.getvalue(), "RGB 97x61 saved by Pillow (optimize=True)")
    assert btypes == {0, 1, 2}

    # BMP
    img = synth(5, 3, 11, 0)  # width 5: 15-byte rows padded to 16
    add("rgb24_bottomup.bmp", make_bmp(img, 24), "BMP 24-bit bottom-up, row padding")
    add("rgb24_topdown.bmp", make_bmp(synth(6, 4, 12, 0), 24, topdown=True), "BMP 24-bit top-down")
    add("rgb32.bmp", make_bmp(synth(4, 3, 13, 0), 32), "BMP 32-bit BI_RGB (BGRX)")
    add("rgb32_bitfields.bmp", make_bmp(synth(3, 5, 14, 0), 32, bitfields=(0xFF0000, 0xFF00, 0xFF)),
        "BMP 32-bit BI_BITFIELDS, masks after a 40-byte header")
    add("rgba32_v5.bmp", make_bmp(synth(4, 2, 15, 0), 32, header=124, topdown=True,
                                  bitfields=(0xFF, 0xFF00, 0xFF0000, 0xFF000000)),
        "BMP 32-bit V5 header, RGBA masks, top-down")
    add("rgb24_os2.bmp", make_bmp(synth(3, 3, 16, 0), 24, header=12), "BMP OS/2 12-byte header, 24-bit")
    pal = rng.randint(0, 256, (16, 3)).astype(np.uint8)
    add("pal8.bmp", make_bmp(None, 8, palette=pal.tolist(), indices=rng.randint(0, 16, (4, 7))), "BMP 8-bit palette")
    add("pal4.bmp", make_bmp(None, 4, palette=pal.tolist(), indices=rng.randint(0, 16, (3, 9))), "BMP 4-bit palette")
    add("pal1.bmp", make_bmp(None, 1, palette=[(200, 10, 30), (5, 250, 120)], indices=rng.randint(0, 2, (5, 11))),
        "BMP 1-bit palette")

    # PPM / PGM
    img = synth(4, 3, 17, 0)
    add("p6.ppm", b"P6\n# a comment\n4 3\n#another\n255\n" + img.tobytes(), "P6 maxval 255, comments")
    add("p5.pgm", b"P5 5 2 255\n" + synth(5, 2, 18, 0)[:, :, 0].tobytes(), "P5 maxval 255")
    v = rng.randint(0, 101, (2, 3, 3)).astype(np.uint8)
    add("p6_max100.ppm", b"P6\n3 2\n100\n" + v.tobytes(), "P6 maxval 100 (scaled)")
    v16 = rng.randint(0, 1001, (3, 2, 3)).astype(">u2")
    add("p6_max1000.ppm", b"P6 2 3 1000\n" + v16.tobytes(), "P6 maxval 1000, 2-byte samples")
    g16 = rng.randint(0, 1001, (2, 4)).astype(">u2")
    scaled = np.minimum(255, np.array([[round(int(a) / 1000 * 255) for a in r] for r in g16])).astype(np.uint8)
    add("p5_max1000.pgm", b"P5 4 2 1000\n" + g16.tobytes(), "P5 maxval 1000 (scaled; Pillow makes mode I)",
        expected=np.repeat(scaled[:, :, None], 3, axis=2).tobytes(), size=(4, 2))

    with open(os.path.join(d, "decode.txt"), "w") as f:
        f.write("# written by tools/reference/image_ref.py: FILE WIDTH HEIGHT EXPECTED_RGB  # what\n")
        f.write("\n".join(manifest) + "\n")
    print("decoder files:", len(manifest))


# ------------------------------------------------------------------------------------------------
def hf_resize_size(w, h, S):
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = S, int(S * long / short)
    return (new_short, new_long) if w <= h else (new_long, new_short)  # (width, height)


def hf_center_crop(a, C):
    h, w = a.shape[:2]
    top, left = (h - C) // 2, (w - C) // 2
    if top >= 0 and left >= 0 and top + C <= h and left + C <= w:
        return a[top:top + C, left:left + C]
    nh, nw = max(C, h), max(C, w)
    pad = np.zeros((nh, nw, 3), dtype=a.dtype)
    tp, lp = -(-(nh - h) // 2), -(-(nw - w) // 2)
    pad[tp:tp + h, lp:lp + w] = a
    top += tp
    left += lp
    return pad[max(0, top):min(nh, top + C), max(0, left):min(nw, left + C)]


def hf_preprocess(im, S, C):
    w, h = hf_resize_size(im.size[0], im.size[1], S)
    r = im.resize((w, h), Image.BICUBIC)
    crop = hf_center_crop(np.asarray(r), C)
    x = (crop.astype(np.float64) * (1 / 255)).astype(np.float32)
    x = (x - np.array(MEAN, dtype=np.float32)) / np.array(STD, dtype=np.float32)
    return (w, h), crop, np.ascontiguousarray(x.transpose(2, 0, 1)).astype("<f4")


def write_clip_files():
    d = os.path.join(OUT, "clip")
    os.makedirs(d, exist_ok=True)
    images = [  # name, source, (w, h, seed, kind) for synth
        ("grad300x200", (300, 200, 21, 1)),
        ("edges97x311", (97, 311, 22, 2)),
        ("noise640x480", (640, 480, 23, 0)),
        ("one1x1", (1, 1, 24, 0)),
        ("thin5x900", (5, 900, 25, 1)),
        ("wide1000x3", (1000, 3, 26, 2)),
        ("small50x40", (50, 40, 27, 2)),
        ("clip", CLIP_PNG),
    ]
    cases = [(S, S) for S in (64,)] + [(224, 224)]
    lines = []
    for name, src in images:
        if isinstance(src, str):
            im = Image.open(os.path.join(ROOT, src)).convert("RGB")
            source = src
        else:
            w, h, seed, kind = src
            im = Image.fromarray(synth(w, h, seed, kind))
            source = "synth:%d:%d" % (seed, kind)
        todo = [(64, 64)]
        if name in ("clip", "edges97x311", "thin5x900"):
            todo.append((224, 224))
        if name == "grad300x200":
            todo.append((64, 80))  # crop larger than the resized side: zero padding
        for S, C in todo:
            (rw, rh), crop, f32 = hf_preprocess(im, S, C)
            base = "%s_%d_%d" % (name, S, C)
            if S == 224:
                u8 = base + ".png"
                Image.fromarray(np.ascontiguousarray(crop)).save(os.path.join(d, u8), optimize=True)
            else:
                u8 = base + ".u8"
                with open(os.path.join(d, u8), "wb") as f:
                    f.write(np.ascontiguousarray(crop).tobytes())
            ff = "-"
            if (name, S, C) in (("clip", 64, 64), ("noise640x480", 64, 64)):
                ff = base + ".f32"
                with open(os.path.join(d, ff), "wb") as f:
                    f.write(f32.tobytes())
            lines.append("%s %s %d %d %d %d %d %d %s %s" % (name, source, im.size[0], im.size[1], S, C, rw, rh, u8, ff))
    with open(os.path.join(d, "clip.txt"), "w") as f:
        f.write("# written by tools/reference/image_ref.py: NAME SOURCE W H S CROP RESIZED_W RESIZED_H U8 F32|-\n")
        f.write("\n".join(lines) + "\n")
    rgb = Image.open(os.path.join(ROOT, CLIP_PNG)).convert("RGB").tobytes()
    with open(os.path.join(d, "clip_png.txt"), "w") as f:
        f.write("# CLIP.png decoded by Pillow, .convert('RGB'): WIDTH HEIGHT CRC32_OF_RGB_BYTES\n")
        f.write("2162 762 %08x\n" % (zlib.crc32(rgb) & 0xFFFFFFFF))
    print("clip cases:", len(lines))


if __name__ == "__main__":
    write_decoder_files()
    write_clip_files()
    total = 0
    for dp, _, fs in os.walk(OUT):
        for fn in fs:
            total += os.path.getsize(os.path.join(dp, fn))
    print("tests/data/images: %d bytes" % total)
    if total > 500_000:
        sys.exit("too big")
