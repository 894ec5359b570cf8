#!/usr/bin/python3
"""RoBERTa reference: a small random RobertaModel in Hugging Face layout + expected outputs.

Written from the equations of Hugging Face's modeling_roberta.py (RobertaModel, eager attention):
  pos   = cumsum(ids != pad) * (ids != pad) + pad          (per row; real tokens start at pad+1)
  x     = LN_emb(word[ids] + position[pos] + token_type[0])
  per layer (post-LN):
    q,k,v = x W^T + b (query/key/value), split into heads of d = hidden/heads
    p     = softmax(q k^T / sqrt(d) + (1 - mask) * finfo(f32).min)      (mask over keys)
    a     = LN_attn(concat_heads(p v) W_o^T + b_o + x)
    x     = LN_out(gelu_erf(a W_i^T + b_i) W_2^T + b_2 + a)
  last_hidden_state = x; pooler_output = tanh(x[:, 0] W_p^T + b_p)
The forward runs in float64 from the stored weights; a cross-check against torch.nn's own
TransformerEncoderLayer (post-LN, erf GELU) runs every time.

Usage:
  tools/reference/roberta_ref.py            writes tests/data/roberta-tiny{,-mlm,-sharded,-f16,-bf16}/
  tools/reference/roberta_ref.py --large    roberta-large shape (24 x 1024, 16 heads, FFN 4096,
                                            vocab 50265, 514 positions) into /tmp/mmspcl-ref/roberta-large/
                                            (about 1.4 GB; never committed)
  --out DIR                                 write somewhere else (tiny: DIR/roberta-tiny..., large: DIR)
"""
import argparse
import math
import os
import sys
from collections import OrderedDict

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reflib  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

TINY = dict(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64, max_position_embeddings=66, type_vocab_size=1,
            pad_token_id=1, layer_norm_eps=1e-5)
LARGE = dict(vocab_size=50265, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
             intermediate_size=4096, max_position_embeddings=514, type_vocab_size=1,
             pad_token_id=1, layer_norm_eps=1e-5)


def hf_config(c, arch="RobertaModel", torch_dtype="float32"):
    return OrderedDict([
        ("architectures", [arch]),
        ("attention_probs_dropout_prob", 0.1),
        ("bos_token_id", 0),
        ("classifier_dropout", None),
        ("eos_token_id", 2),
        ("hidden_act", "gelu"),
        ("hidden_dropout_prob", 0.1),
        ("hidden_size", c["hidden_size"]),
        ("initializer_range", 0.02),
        ("intermediate_size", c["intermediate_size"]),
        ("layer_norm_eps", c["layer_norm_eps"]),
        ("max_position_embeddings", c["max_position_embeddings"]),
        ("model_type", "roberta"),
        ("num_attention_heads", c["num_attention_heads"]),
        ("num_hidden_layers", c["num_hidden_layers"]),
        ("pad_token_id", c["pad_token_id"]),
        ("position_embedding_type", "absolute"),
        ("torch_dtype", torch_dtype),
        ("transformers_version", "4.40.0"),
        ("type_vocab_size", c["type_vocab_size"]),
        ("use_cache", True),
        ("vocab_size", c["vocab_size"]),
    ])


def make_weights(c, seed):
    """Random weights (float32) under the exact RobertaModel state_dict names, in HF's order.
    Scales keep activations O(1) so that every term matters: linear W ~ N(0, 1/fan_in),
    biases ~ N(0, 0.1^2), LayerNorm gamma ~ 1 + N(0, 0.1^2), beta ~ N(0, 0.1^2)."""
    g = torch.Generator().manual_seed(seed)
    H, I, V, P = c["hidden_size"], c["intermediate_size"], c["vocab_size"], c["max_position_embeddings"]
    pad = c["pad_token_id"]

    def rn(*shape, std=1.0):
        return torch.randn(*shape, generator=g, dtype=torch.float32) * std

    W = OrderedDict()

    def linear(name, n_out, n_in):
        W[name + ".weight"] = rn(n_out, n_in, std=1.0 / math.sqrt(n_in))
        W[name + ".bias"] = rn(n_out, std=0.1)

    def ln(name, n):
        W[name + ".weight"] = 1.0 + rn(n, std=0.1)
        W[name + ".bias"] = rn(n, std=0.1)

    W["embeddings.word_embeddings.weight"] = rn(V, H)
    W["embeddings.position_embeddings.weight"] = rn(P, H, std=0.5)
    W["embeddings.token_type_embeddings.weight"] = rn(c["type_vocab_size"], H, std=0.5)
    # nn.Embedding(padding_idx=pad) starts that row at zero, as in a fresh HF model
    W["embeddings.word_embeddings.weight"][pad].zero_()
    W["embeddings.position_embeddings.weight"][pad].zero_()
    ln("embeddings.LayerNorm", H)
    for i in range(c["num_hidden_layers"]):
        p = "encoder.layer.%d." % i
        linear(p + "attention.self.query", H, H)
        linear(p + "attention.self.key", H, H)
        linear(p + "attention.self.value", H, H)
        linear(p + "attention.output.dense", H, H)
        ln(p + "attention.output.LayerNorm", H)
        linear(p + "intermediate.dense", I, H)
        linear(p + "output.dense", H, I)
        ln(p + "output.LayerNorm", H)
    linear("pooler.dense", H, H)
    return W


def make_lm_head(c, seed):
    """RobertaLMHead tensors as RobertaForMaskedLM saves them (decoder.weight is tied to the word
    embeddings and decoder.bias to lm_head.bias, so neither is stored)."""
    g = torch.Generator().manual_seed(seed)
    H, V = c["hidden_size"], c["vocab_size"]
    W = OrderedDict()
    W["lm_head.dense.weight"] = torch.randn(H, H, generator=g) / math.sqrt(H)
    W["lm_head.dense.bias"] = torch.randn(H, generator=g) * 0.1
    W["lm_head.layer_norm.weight"] = 1.0 + torch.randn(H, generator=g) * 0.1
    W["lm_head.layer_norm.bias"] = torch.randn(H, generator=g) * 0.1
    W["lm_head.bias"] = torch.randn(V, generator=g) * 0.1
    return W


def pad_batch(seqs, pad):
    L = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), L), pad, dtype=torch.int64)
    mask = torch.zeros((len(seqs), L), dtype=torch.int64)
    for b, s in enumerate(seqs):
        ids[b, :len(s)] = torch.tensor(s, dtype=torch.int64)
        mask[b, :len(s)] = 1
    return ids, mask


def position_ids(ids, pad):
    m = (ids != pad).long()
    return torch.cumsum(m, dim=1) * m + pad


def forward(W, ids, mask, c, dt=torch.float64):
    """Returns (last_hidden_state [B, L, H], pooler_output [B, H]) in dtype dt."""
    w = {k: v.to(dt) for k, v in W.items()}
    H, nh = c["hidden_size"], c["num_attention_heads"]
    d = H // nh
    eps = c["layer_norm_eps"]
    B, L = ids.shape
    pos = position_ids(ids, c["pad_token_id"])
    x = (w["embeddings.word_embeddings.weight"][ids]
         + w["embeddings.position_embeddings.weight"][pos]
         + w["embeddings.token_type_embeddings.weight"][torch.zeros_like(ids)])
    x = F.layer_norm(x, (H,), w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    # HF's extended attention mask: (1 - mask) * finfo(model dtype = float32).min, over keys
    ext = (1.0 - mask.to(dt))[:, None, None, :] * torch.finfo(torch.float32).min

    def lin(t, name):
        return t @ w[name + ".weight"].t() + w[name + ".bias"]

    def heads(t):
        return t.view(B, L, nh, d).transpose(1, 2)

    for i in range(c["num_hidden_layers"]):
        p = "encoder.layer.%d." % i
        q = heads(lin(x, p + "attention.self.query"))
        k = heads(lin(x, p + "attention.self.key"))
        v = heads(lin(x, p + "attention.self.value"))
        s = q @ k.transpose(-1, -2) / math.sqrt(d) + ext
        ctx = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, L, H)
        a = F.layer_norm(lin(ctx, p + "attention.output.dense") + x, (H,),
                         w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"], eps)
        h = lin(a, p + "intermediate.dense")
        h = 0.5 * h * (1.0 + torch.erf(h / math.sqrt(2.0)))  # HF "gelu" = exact erf GELU
        x = F.layer_norm(lin(h, p + "output.dense") + a, (H,),
                         w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
    pooled = torch.tanh(lin(x[:, 0], "pooler.dense"))
    return x, pooled


def crosscheck(W, ids, mask, c, hidden):
    """Same encoder through torch.nn.TransformerEncoderLayer (an implementation that is not ours)."""
    w = {k: v.double() for k, v in W.items()}
    H = c["hidden_size"]
    pos = position_ids(ids, c["pad_token_id"])
    x = F.embedding(ids, w["embeddings.word_embeddings.weight"]) + \
        F.embedding(pos, w["embeddings.position_embeddings.weight"]) + \
        w["embeddings.token_type_embeddings.weight"][0]
    x = F.layer_norm(x, (H,), w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], c["layer_norm_eps"])
    for i in range(c["num_hidden_layers"]):
        p = "encoder.layer.%d." % i
        layer = torch.nn.TransformerEncoderLayer(H, c["num_attention_heads"], c["intermediate_size"], dropout=0.0,
                                                 activation=F.gelu, layer_norm_eps=c["layer_norm_eps"],
                                                 batch_first=True, norm_first=False).double()
        with torch.no_grad():
            a = layer.self_attn
            a.in_proj_weight.copy_(torch.cat([w[p + "attention.self.%s.weight" % n] for n in ("query", "key", "value")]))
            a.in_proj_bias.copy_(torch.cat([w[p + "attention.self.%s.bias" % n] for n in ("query", "key", "value")]))
            a.out_proj.weight.copy_(w[p + "attention.output.dense.weight"])
            a.out_proj.bias.copy_(w[p + "attention.output.dense.bias"])
            layer.linear1.weight.copy_(w[p + "intermediate.dense.weight"])
            layer.linear1.bias.copy_(w[p + "intermediate.dense.bias"])
            layer.linear2.weight.copy_(w[p + "output.dense.weight"])
            layer.linear2.bias.copy_(w[p + "output.dense.bias"])
            layer.norm1.weight.copy_(w[p + "attention.output.LayerNorm.weight"])
            layer.norm1.bias.copy_(w[p + "attention.output.LayerNorm.bias"])
            layer.norm2.weight.copy_(w[p + "output.LayerNorm.weight"])
            layer.norm2.bias.copy_(w[p + "output.LayerNorm.bias"])
        layer.train()  # dropout is 0; train mode keeps torch off its nested-tensor fast path
        with torch.no_grad():
            x = layer(x, src_key_padding_mask=(mask == 0))
    err = 0.0
    for b in range(ids.shape[0]):
        n = int(mask[b].sum())
        err = max(err, float((x[b, :n] - hidden[b, :n]).abs().max()))
    return err


HEADER = """\
# Expected RobertaModel outputs, written by tools/reference/roberta_ref.py (PyTorch %s, float64
# arithmetic on the stored weights, printed as %%.9g). Lines:
#   model roberta <vocab> <hidden> <layers> <heads> <intermediate> <max_positions> <pad_id> <eps>
#   weights <F32|F16|BF16>                 (dtype of the checkpoint the numbers were computed from)
#   batch <B> <L>                          B sequences, padded to L tokens with pad_id, mask 0 on pads
# then for each sequence b = 0..B-1, in order:
#   input <n> <id_0> ... <id_n-1>          the n real tokens (no pads)
#   hidden <n> <hidden>                    followed by n lines of <hidden> floats: last_hidden_state
#                                          of the real tokens (pads' outputs are not given)
#   pooled <hidden>                        followed by 1 line: pooler_output = tanh(dense(h[0]))
# Position ids: pos = cumsum(id != pad) * (id != pad) + pad, i.e. pad+1, pad+2, ... on real tokens.
# Comment lines start with '#' and only appear at the top.
"""


def write_expected(path, W, seqs, c, wdtype):
    ids, mask = pad_batch(seqs, c["pad_token_id"])
    hidden, pooled = forward(W, ids, mask, c)
    with open(path, "w") as f:
        f.write(HEADER % torch.__version__)
        f.write("model roberta %d %d %d %d %d %d %d %s\n" % (
            c["vocab_size"], c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"],
            c["intermediate_size"], c["max_position_embeddings"], c["pad_token_id"], reflib.f9(c["layer_norm_eps"])))
        f.write("weights %s\n" % wdtype)
        f.write("batch %d %d\n" % ids.shape)
        for b, s in enumerate(seqs):
            n = len(s)
            f.write("input %d %s\n" % (n, " ".join(str(t) for t in s)))
            f.write("hidden %d %d\n" % (n, c["hidden_size"]))
            for t in range(n):
                f.write(reflib.row(hidden[b, t].tolist()) + "\n")
            f.write("pooled %d\n" % c["hidden_size"])
            f.write(reflib.row(pooled[b].tolist()) + "\n")
    return ids, mask, hidden, pooled


def check_unpadded(W, seqs, c, hidden, pooled):
    """Each sequence alone (no padding) must give the same numbers as inside the padded batch."""
    err = 0.0
    for b, s in enumerate(seqs):
        ids, mask = pad_batch([s], c["pad_token_id"])
        h1, p1 = forward(W, ids, mask, c)
        err = max(err, float((h1[0] - hidden[b, :len(s)]).abs().max()), float((p1[0] - pooled[b]).abs().max()))
    return err


def make_inputs(c, seed, lengths):
    g = torch.Generator().manual_seed(seed)
    V = c["vocab_size"]
    seqs = []
    for n in lengths:
        body = torch.randint(3, V, (n - 2,), generator=g).tolist()
        seqs.append([0] + body + [2])
    return seqs


def rounded(W, dt):
    return OrderedDict((k, v.to(dt).to(torch.float32)) for k, v in W.items())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--large", action="store_true", help="roberta-large shape, written to /tmp (not committed)")
    ap.add_argument("--out", help="output folder")
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))

    if args.large:
        c = LARGE
        out = args.out or "/tmp/mmspcl-ref/roberta-large"
        os.makedirs(out, exist_ok=True)
        W = make_weights(c, seed=1024)
        seqs = make_inputs(c, seed=1025, lengths=[128, 37])
        seqs[1][5] = 50264  # a <mask> inside
        reflib.write_json(os.path.join(out, "config.json"), hf_config(c))
        reflib.write_safetensors(os.path.join(out, "model.safetensors"), W)
        ids, mask, hidden, pooled = write_expected(os.path.join(out, "expected.txt"), W, seqs, c, "F32")
        print("large: cross-check vs torch.nn max |diff| = %.3g" % crosscheck(W, ids, mask, c, hidden))
        print("wrote", out)
        return

    c = TINY
    base = args.out or os.path.join(ROOT, "tests", "data")
    W = make_weights(c, seed=20240601)
    # three inputs of different lengths; the longest uses every position (64 = max_positions - 2)
    seqs = make_inputs(c, seed=7, lengths=[11, 64, 5])
    seqs[0][4] = 2       # a </s> inside the first sequence (as in RoBERTa's "</s></s>" pair encoding)
    seqs[0][6] = 0       # and a <s>
    seqs[1][10] = 3      # smallest and largest ordinary ids
    seqs[1][11] = c["vocab_size"] - 1

    d = os.path.join(base, "roberta-tiny")
    os.makedirs(d, exist_ok=True)
    reflib.write_json(os.path.join(d, "config.json"), hf_config(c))
    reflib.write_safetensors(os.path.join(d, "model.safetensors"), W)
    ids, mask, hidden, pooled = write_expected(os.path.join(d, "expected.txt"), W, seqs, c, "F32")
    e1 = crosscheck(W, ids, mask, c, hidden)
    e2 = check_unpadded(W, seqs, c, hidden, pooled)
    h32, p32 = forward(W, ids, mask, c, dt=torch.float32)
    e3 = max(float((h32 - hidden)[mask.bool()].abs().max()), float((p32 - pooled).abs().max()))
    print("roberta-tiny: vs torch.nn.TransformerEncoderLayer %.3g, padded vs alone %.3g, f32 vs f64 %.3g"
          % (e1, e2, e3))
    assert e1 < 1e-10 and e2 < 1e-10 and e3 < 1e-4

    # RobertaForMaskedLM layout: "roberta." prefix, no pooler (add_pooling_layer=False), lm_head.*
    d = os.path.join(base, "roberta-tiny-mlm")
    os.makedirs(d, exist_ok=True)
    Wm = OrderedDict(("roberta." + k, v) for k, v in W.items() if not k.startswith("pooler."))
    Wm.update(make_lm_head(c, seed=99))
    reflib.write_json(os.path.join(d, "config.json"), hf_config(c, arch="RobertaForMaskedLM"))
    reflib.write_safetensors(os.path.join(d, "model.safetensors"), Wm)

    # sharded: embeddings + layer 0 in shard 1, layer 1 + pooler in shard 2
    d = os.path.join(base, "roberta-tiny-sharded")
    os.makedirs(d, exist_ok=True)
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    part = [OrderedDict(), OrderedDict()]
    for k, v in W.items():
        part[0 if (k.startswith("embeddings.") or k.startswith("encoder.layer.0.")) else 1][k] = v
    total = 0
    for n, p in zip(names, part):
        total += reflib.write_safetensors(os.path.join(d, n), p)
    wmap = OrderedDict((k, names[i]) for i in range(2) for k in sorted(part[i]))
    reflib.write_json(os.path.join(d, "model.safetensors.index.json"),
                      OrderedDict([("metadata", {"total_size": total}), ("weight_map", wmap)]))
    reflib.write_json(os.path.join(d, "config.json"), hf_config(c))

    # half-precision checkpoints; their expected outputs come from the rounded weights
    for tag, dt, st in (("f16", torch.float16, "F16"), ("bf16", torch.bfloat16, "BF16")):
        d = os.path.join(base, "roberta-tiny-" + tag)
        os.makedirs(d, exist_ok=True)
        reflib.write_json(os.path.join(d, "config.json"),
                          hf_config(c, torch_dtype={"f16": "float16", "bf16": "bfloat16"}[tag]))
        reflib.write_safetensors(os.path.join(d, "model.safetensors"), W, dtype=dt)
        Wr = rounded(W, dt)
        back = reflib.read_safetensors(os.path.join(d, "model.safetensors"))
        assert all(torch.equal(back[k].float(), Wr[k]) for k in W)
        _, _, hr, pr = write_expected(os.path.join(d, "expected.txt"), Wr, seqs, c, st)
        print("roberta-tiny-%s: max |hidden - f32 hidden| = %.3g" % (tag, float((hr - hidden)[mask.bool()].abs().max())))

    # read back what was written
    back = reflib.read_safetensors(os.path.join(base, "roberta-tiny", "model.safetensors"))
    assert list(back) == sorted(W) and all(torch.equal(back[k], W[k]) for k in W)
    print("wrote", ", ".join("roberta-tiny" + s for s in ("", "-mlm", "-sharded", "-f16", "-bf16")), "under", base)


if __name__ == "__main__":
    main()
