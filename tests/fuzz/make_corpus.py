#!/usr/bin/python3
"""Writes the seed corpora tests/fuzz/corpus/<target>/ (docs/ROBUSTNESS.md).

Run from the repository root after `make` (it calls build/mmspcl-convert). The seeds are small
valid inputs: the test models' JSON files and small test files from tests/data, plus miniature
RoBERTa / CLIP checkpoints made here (random weights, a 40-token byte-level tokenizer) and the
weight files build/mmspcl-convert makes from them. Nothing is copied from ../shared (its files
keep their own licences): `make fuzz` passes ../shared's MELD CSVs and safetensors samples to the
fuzzers as extra read-only seed folders instead. Standard library only."""
import json, os, random, shutil, struct, subprocess, sys, zlib

ROOT = os.getcwd()
C = os.path.join(ROOT, "tests/fuzz/corpus")
TMP = os.path.join(ROOT, "build/fuzz/seeds")
SEP = b"\xff\xfe"
rng = random.Random(8)


def put(target, name, data):
    d = os.path.join(C, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def read(p):
    with open(p, "rb") as f:
        return f.read()


def safetensors(tensors):
    """tensors: list of (name, shape); F32 random values."""
    header, blobs, off = {}, [], 0
    for name, shape in tensors:
        n = 1
        for s in shape:
            n *= s
        b = struct.pack("<%df" % n, *[rng.uniform(-0.5, 0.5) for _ in range(n)])
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


# a 40-token byte-level BPE tokenizer: specials, letters, Ġ, a few merges
VOCAB = ["<s>", "<pad>", "</s>", "<unk>"] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + \
        ["Ġ", ".", ",", "!", "?", "<mask>", "Ġh", "he", "Ġhe", "ll"]
MERGES = ["Ġ h", "h e", "Ġh e", "l l"]


def roberta_mini(d, H=32, I=32, V=len(VOCAB), MP=12, L=1):
    os.makedirs(d, exist_ok=True)
    t = [("embeddings.word_embeddings.weight", [V, H]), ("embeddings.position_embeddings.weight", [MP, H]),
         ("embeddings.token_type_embeddings.weight", [1, H]), ("embeddings.LayerNorm.weight", [H]),
         ("embeddings.LayerNorm.bias", [H])]
    for l in range(L):
        p = "encoder.layer.%d." % l
        for q in ("query", "key", "value"):
            t += [(p + "attention.self.%s.weight" % q, [H, H]), (p + "attention.self.%s.bias" % q, [H])]
        t += [(p + "attention.output.dense.weight", [H, H]), (p + "attention.output.dense.bias", [H]),
              (p + "attention.output.LayerNorm.weight", [H]), (p + "attention.output.LayerNorm.bias", [H]),
              (p + "intermediate.dense.weight", [I, H]), (p + "intermediate.dense.bias", [I]),
              (p + "output.dense.weight", [H, I]), (p + "output.dense.bias", [H]),
              (p + "output.LayerNorm.weight", [H]), (p + "output.LayerNorm.bias", [H])]
    cfg = {"model_type": "roberta", "vocab_size": V, "hidden_size": H, "num_hidden_layers": L,
           "num_attention_heads": 2, "intermediate_size": I, "max_position_embeddings": MP,
           "type_vocab_size": 1, "pad_token_id": 1, "layer_norm_eps": 1e-5, "hidden_act": "gelu"}
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(safetensors(t))
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    with open(os.path.join(d, "vocab.json"), "w") as f:
        json.dump({tok: i for i, tok in enumerate(VOCAB)}, f, ensure_ascii=False)
    with open(os.path.join(d, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n" + "\n".join(MERGES) + "\n")
    return cfg


def clip_mini(d, H=32, I=32, P=4, S=8, PD=16):
    os.makedirs(d, exist_ok=True)
    T = (S // P) ** 2 + 1
    t = [("vision_model.embeddings.class_embedding", [H]),
         ("vision_model.embeddings.patch_embedding.weight", [H, 3, P, P]),
         ("vision_model.embeddings.position_embedding.weight", [T, H]),
         ("vision_model.pre_layrnorm.weight", [H]), ("vision_model.pre_layrnorm.bias", [H])]
    p = "vision_model.encoder.layers.0."
    for q in ("k_proj", "v_proj", "q_proj", "out_proj"):
        t += [(p + "self_attn.%s.weight" % q, [H, H]), (p + "self_attn.%s.bias" % q, [H])]
    t += [(p + "layer_norm1.weight", [H]), (p + "layer_norm1.bias", [H]), (p + "mlp.fc1.weight", [I, H]),
          (p + "mlp.fc1.bias", [I]), (p + "mlp.fc2.weight", [H, I]), (p + "mlp.fc2.bias", [H]),
          (p + "layer_norm2.weight", [H]), (p + "layer_norm2.bias", [H]),
          ("vision_model.post_layernorm.weight", [H]), ("vision_model.post_layernorm.bias", [H]),
          ("visual_projection.weight", [PD, H])]
    cfg = {"model_type": "clip_vision_model", "image_size": S, "patch_size": P, "num_channels": 3,
           "hidden_size": H, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": I,
           "projection_dim": PD, "layer_norm_eps": 1e-5, "hidden_act": "quick_gelu"}
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(safetensors(t))
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    with open(os.path.join(d, "preprocessor_config.json"), "w") as f:
        json.dump({"size": {"shortest_edge": S}, "crop_size": {"height": S, "width": S},
                   "image_mean": [0.48145466, 0.4578275, 0.40821073],
                   "image_std": [0.26862954, 0.26130258, 0.27577711]}, f)
    return cfg


def convert(src, out, typ):
    subprocess.run(["build/mmspcl-convert", src, out, "--type", typ, "--quiet"], check=True)
    return read(out)


def png_idat(p):
    """(zlib stream, raw size) of a PNG: IDAT data joined; raw size from IHDR."""
    b = read(p)
    pos, z, ihdr = 8, b"", None
    while pos + 12 <= len(b):
        n = struct.unpack(">I", b[pos:pos + 4])[0]
        typ, data = b[pos + 4:pos + 8], b[pos + 8:pos + 8 + n]
        if typ == b"IHDR":
            ihdr = data
        elif typ == b"IDAT":
            z += data
        pos += n + 12
    return z, len(zlib.decompress(z)) if z else 0


def main():
    if os.path.isdir(C):
        shutil.rmtree(C)
    os.makedirs(TMP, exist_ok=True)
    rdir, cdir = os.path.join(TMP, "roberta-mini"), os.path.join(TMP, "clip-mini")
    roberta_mini(rdir)
    clip_mini(cdir)

    # weights: files build/mmspcl-convert writes (q4_0 with tokenizer, f16, q8_0) and a
    # hand-made one with every key type
    put("weights", "roberta-mini-q4_0.mmw", convert(rdir, os.path.join(TMP, "r.mmw"), "q4_0"))
    put("weights", "clip-mini-f16.mmw", convert(cdir, os.path.join(TMP, "c.mmw"), "f16"))
    put("weights", "clip-mini-q8_0.mmw", convert(cdir, os.path.join(TMP, "c8.mmw"), "q8_0"))
    if os.path.exists("build/tests/tmp/tiny.mmw"):
        put("weights", "tiny.mmw", read("build/tests/tmp/tiny.mmw"))

    # safetensors: the miniature checkpoints and small hand-made files
    put("safetensors", "roberta-mini.safetensors", read(os.path.join(rdir, "model.safetensors")))
    put("safetensors", "clip-mini.safetensors", read(os.path.join(cdir, "model.safetensors")))
    h = b'{"__metadata__":{"format":"pt"},"a":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]},' \
        b'"b":{"dtype":"I64","shape":[],"data_offsets":[8,16]},"c":{"dtype":"F16","shape":[0],"data_offsets":[16,16]}}'
    put("safetensors", "dtypes.safetensors", struct.pack("<Q", len(h)) + h + bytes(range(16)))
    put("safetensors", "empty.safetensors", struct.pack("<Q", 2) + b"{}")

    # json: every JSON file the converter reads
    for name in ("roberta-tiny/config.json", "clip-tiny/config.json", "clip-tiny-full/config.json",
                 "roberta-tiny-sharded/model.safetensors.index.json"):
        put("json", name.replace("/", "-"), read(os.path.join("tests/data", name)))
    put("json", "vocab.json", read(os.path.join(rdir, "vocab.json")))
    put("json", "preprocessor_config.json", read(os.path.join(cdir, "preprocessor_config.json")))
    tok = {"model": {"type": "BPE", "vocab": {t: i for i, t in enumerate(VOCAB)},
                     "merges": [MERGES[0], MERGES[1].split(" "), MERGES[2], MERGES[3]]},
           "added_tokens": [{"id": 35, "content": "<mask>", "special": True}]}
    tokj = json.dumps(tok, ensure_ascii=False).encode()
    put("json", "tokenizer.json", tokj)
    put("json", "escapes.json", b'["\\u00e9\\ud83d\\ude00\\n\\"", -0.0, 1e308, 12345678901234567890, [], {}, true, null]')

    # config: option byte, config.json, then the tokenizer / preprocessor files
    for name, model, typ, files, f2, f3 in (
            ("roberta-tiny", 0, 0, 0, b"", b""), ("roberta-tiny-mlm", 1, 2, 0, b"", b""),
            ("clip-tiny", 2, 3, 0, b"", b""), ("clip-tiny-full", 3, 1, 0, b"", b"")):
        put("config", name, bytes([model | typ << 2 | files << 4]) + read(os.path.join("tests/data", name, "config.json")))
    cfg = read(os.path.join("tests/data/roberta-tiny/config.json"))
    put("config", "roberta-tiny-vocab-merges", bytes([0 | 1 << 4]) + cfg + SEP + read(os.path.join(rdir, "vocab.json")) + SEP +
        read(os.path.join(rdir, "merges.txt")))
    put("config", "roberta-tiny-tokenizer-json", bytes([0 | 2 << 4]) + cfg + SEP + tokj)
    put("config", "clip-tiny-preprocessor", bytes([2 | 3 << 4]) + read("tests/data/clip-tiny/config.json") + SEP +
        b'{"size": {"shortest_edge": 64}, "crop_size": 64, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}')

    # torchbin: the small .bin test files
    for f in sorted(os.listdir("tests/data/torchbin")):
        if f.endswith(".bin"):
            put("torchbin", f, read(os.path.join("tests/data/torchbin", f)))
    put("torchbin", "dtypes2.bin", read("tests/data/torchbin-dtypes.bin"))

    # image: the decoder test files (PNG of every colour type and depth, BMP, PPM/PGM)
    dec = "tests/data/images/dec"
    for f in sorted(os.listdir(dec)):
        if not f.endswith(".rgb") and not f.endswith(".txt"):
            put("image", f, read(os.path.join(dec, f)))

    # inflate: the IDAT streams of the PNG seeds, with their sizes; stored / fixed blocks
    for f in sorted(os.listdir(dec)):
        if f.endswith(".png"):
            z, n = png_idat(os.path.join(dec, f))
            if z:
                put("inflate", f + ".zlib", struct.pack("<I", n)[:3] + z)
    raw = bytes(range(256)) * 3 + b"abcabcabcabcabc" * 20
    for lvl in (0, 1, 9):
        put("inflate", "level%d.zlib" % lvl, struct.pack("<I", len(raw))[:3] + zlib.compress(raw, lvl))

    # meld: MELD's layout (main and dyadic splits), our own lines
    hdr = b"Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime\r\n"
    put("meld", "main.csv", hdr +
        b'1,"Hi, how are you?",Anna,joy,positive,0,0,1,1,"00:00:01,000","00:00:02,000"\r\n'
        b'2,Fine.,Ben,neutral,neutral,0,1,1,1,"00:00:02,100","00:00:03,000"\r\n'
        b'3,"She said ""no"".",Anna,sadness,negative,1,0,1,2,"00:01:00,000","00:01:01,500"\r\n')
    put("meld", "dyadic.csv",
        b"Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Old_Dialogue_ID,Old_Utterance_ID\n"
        b"What?,Cleo,surprise,negative,4,0,7,0\n\xef\xbb\xbf\n\"Two\nlines\",Dev,anger,negative,4,1,7,1\n")
    put("meld", "transcript.csv", b"\xef\xbb\xbfUtterance,Speaker\nhello,A\n,B\n")

    # bpe: flags byte, VOCAB lines, MERGES lines, TEXT
    vocab = "\n".join(VOCAB).encode()
    merges = ("#version: 0.2\n" + "\n".join(MERGES)).encode()
    texts = [b"Hello world! c\xc3\xa9c\xc3\xa9 herlolip", b"Rachel: Oh, honey. </s> for Oh, honey., Rachel feels <mask>",
             b"  \t\n it's  you'll 123 \xf0\x9f\x98\x80 \xff\xfe invalid \xc0\xaf", b"hello he llama"]
    for i, t in enumerate(texts):
        put("bpe", "text%d" % i, bytes([i & 3]) + vocab + SEP + merges + SEP + t)
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(C) for f in fs)
    print("corpus: %d bytes" % total)


if __name__ == "__main__":
    sys.exit(main())
