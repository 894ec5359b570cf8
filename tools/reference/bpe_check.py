#!/usr/bin/python3
"""Second opinion on tests/data/tokenizer/meld_ids.txt: a plain-Python GPT-2/RoBERTa byte-level BPE
(no `regex` package: the GPT-2 pre-tokenizer pattern
  's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+
is matched by hand with unicodedata) re-encodes every line and compares with the ids that
transformers.js wrote. Special tokens <s> <pad> </s> <unk> <mask> are split out first; <mask> has
lstrip (it swallows the whitespace before it).

Usage: tools/reference/bpe_check.py [meld_ids.txt]      exit status 0 when every line agrees
"""
import json
import os
import sys
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
SHARED = os.environ.get("MMSPCL_SHARED", os.path.normpath(os.path.join(ROOT, "..", "shared")))
BPE_DIR = os.path.join(SHARED, "data", "weights", "roberta-bpe")

# Unicode White_Space (what \s means in the Rust/Oniguruma regex Hugging Face tokenizers use)
WS = set("\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | {chr(c) for c in range(0x2000, 0x200b)}
CONTRACTIONS = ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d")
SPECIAL = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 50264}


def is_l(ch):
    return unicodedata.category(ch)[0] == "L"


def is_n(ch):
    return unicodedata.category(ch)[0] == "N"


def is_other(ch):
    return not (ch in WS or is_l(ch) or is_n(ch))


def pretokenize(s):
    out, i, n = [], 0, len(s)
    while i < n:
        m = next((c for c in CONTRACTIONS if s.startswith(c, i)), None)
        if m:
            out.append(m)
            i += len(m)
            continue
        done = False
        for cls in (is_l, is_n, is_other):
            j = i + 1 if (s[i] == " " and i + 1 < n and cls(s[i + 1])) else i
            if cls(s[j]):
                k = j
                while k < n and cls(s[k]):
                    k += 1
                out.append(s[i:k])
                i, done = k, True
                break
        if done:
            continue
        k = i
        while k < n and s[k] in WS:
            k += 1
        assert k > i
        if k < n and k - 1 > i:  # \s+(?!\S): leave the last space for the next word
            k -= 1
        out.append(s[i:k])
        i = k
    return out


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


class BPE:
    def __init__(self):
        self.vocab = json.load(open(os.path.join(BPE_DIR, "vocab.json"), encoding="utf-8"))
        lines = open(os.path.join(BPE_DIR, "merges.txt"), encoding="utf-8").read().split("\n")
        merges = [tuple(l.split(" ")) for l in lines if l and not l.startswith("#version")]
        self.rank = {m: r for r, m in enumerate(merges)}
        self.b2u = bytes_to_unicode()
        self.cache = {}

    def word(self, w):
        if w in self.cache:
            return self.cache[w]
        parts = [self.b2u[b] for b in w.encode("utf-8")]
        while len(parts) > 1:
            best = min(range(len(parts) - 1), key=lambda i: self.rank.get((parts[i], parts[i + 1]), 1 << 60))
            if (parts[best], parts[best + 1]) not in self.rank:
                break
            a, b = parts[best], parts[best + 1]
            merged, i = [], 0
            while i < len(parts):  # merge every occurrence of the best pair, left to right
                if i + 1 < len(parts) and parts[i] == a and parts[i + 1] == b:
                    merged.append(a + b)
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        ids = [self.vocab[p] for p in parts]
        self.cache[w] = ids
        return ids

    def encode(self, s):
        ids, seg, i = [], "", 0
        while i < len(s):
            tok = next((t for t in SPECIAL if s.startswith(t, i)), None)
            if tok is None:
                seg += s[i]
                i += 1
                continue
            if tok == "<mask>":
                seg = seg.rstrip("".join(WS))
            for w in pretokenize(seg):
                ids += self.word(w)
            ids.append(SPECIAL[tok])
            seg = ""
            i += len(tok)
        for w in pretokenize(seg):
            ids += self.word(w)
        return ids


def unescape(e):
    out, i = [], 0
    while i < len(e):
        c = e[i]
        if c == "\\":
            nx = e[i + 1]
            if nx == "x":
                out.append(chr(int(e[i + 2:i + 4], 16)))
                i += 4
                continue
            out.append({"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}[nx])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "data", "tokenizer", "meld_ids.txt")
    bpe = BPE()
    bad = 0
    with open(path, encoding="utf-8", newline="\n") as f:
        lines = f.read().split("\n")
    assert lines[-1] == ""
    for line in lines[:-1]:
        text, ids = line.split("\t", 1)
        want = [int(x) for x in ids.split()]
        got = bpe.encode(unescape(text))
        if got != want:
            bad += 1
            print("DIFF %r\n  file   %s\n  python %s" % (text, want, got))
    print("%d lines, %d differ" % (len(lines) - 1, bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
