#!/usr/bin/python3
"""MBT reference (attention bottlenecks, per modality as scenic has it) for tests/test_mult_seq.c.

A plain-torch re-statement of the bottleneck encoder of google-research/scenic
(scenic/projects/mbt/model.py: EncoderBlock, Encoder with use_bottleneck, MBT), written here
from a reading of it:
  - per modality: tokens -> embedding (a Linear: the patch embedding conv of scenic) + learned
    position embedding (AddPositionEmbs);
  - EncoderBlock (pre-LN ViT layer): x + MHA(LN0 x) (query/key/value/out projections with bias,
    q scaled by head_dim^-0.5), then x + Dense_1(GELU(Dense_0(LN1 x)));
  - layers before fusion_layer: every modality through its own block (share_encoder False);
  - from fusion_layer on: each modality's block runs on [its tokens ; bottleneck], the bottleneck
    outputs are averaged over the modalities (jnp.mean(jnp.stack(bottle, -1), -1)) and feed the
    next layer; the bottleneck starts as the learned 'bottleneck' parameter;
  - readout 'gap' (scenic's default classifier): the modalities' tokens concatenated
    (jnp.concatenate(x_out, axis=1)), ONE LayerNorm 'encoder_norm', the mean over all tokens,
    then output_projection (a Dense from d to the classes).
Additions, named (scenic's MBT has none of them): a key padding mask, as flax's
MultiHeadDotProductAttention applies a `mask` (masked logits set to the dtype's most negative
value before the softmax): sample i of modality m has lens[m][i] real tokens; its padded tokens
are never keys (the bottleneck tokens always are) and the readout's mean runs over real tokens
only. And the library's own readout ('ours', mmspcl_mbt READOUT_MODALITY): a LayerNorm per
modality (encoder_norm_M), the mean over that modality's real tokens, the concatenation, then
output_projection from n_mod d. Departures kept: scenic's flax nn.gelu is the tanh approximation
(here, as in the library, the erf form) and flax's LayerNorm epsilon is 1e-6 (here 1e-5).
Sizes are small and odd: t 3 tokens of 5, a 4 of 3, v 2 of 7; d 6, 3 heads, MLP 12, 3 layers,
fusion from layer 1, 2 bottleneck tokens, 4 outputs; 3 samples. Random weights, float64.
Three cases, each its own weights: 'full' (readout ours, every token real), 'padded' (ours,
lengths t 3 1 2, a 2 4 1, v 1 2 2, random values in the padding), 'gap' (scenic's readout,
padded the same way). Loss = sum(out * W). Writes tests/data/mbt_ref/mbt_ref.txt, records as
mult_ref.py's, per case: <case>.cfg (n, seq t a v, tok t a v, d, heads, mlp/d, layers,
fusion_layer, n_bottlenecks, C, readout 0 ours / 1 gap), <case>.param.<name>, <case>.x.{t,a,v},
<case>.lens.{t,a,v} (padded cases), <case>.W, <case>.out, <case>.grad.<name>, <case>.grad.x.{t,a,v}.
Run: tools/reference/mbt_ref.py [--out DIR]
"""
import argparse
import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from mult_ref import fmt
from reflib import write_records

MODS = ("t", "a", "v")


class MHA(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.h, self.hd = heads, d // heads
        self.query = nn.Linear(d, d).double()
        self.key = nn.Linear(d, d).double()
        self.value = nn.Linear(d, d).double()
        self.out = nn.Linear(d, d).double()

    def forward(self, x, mask=None):
        b, t, d = x.shape
        q = self.query(x).view(b, t, self.h, self.hd).transpose(1, 2) * self.hd ** -0.5
        k = self.key(x).view(b, t, self.h, self.hd).transpose(1, 2)
        v = self.value(x).view(b, t, self.h, self.hd).transpose(1, 2)
        logits = q @ k.transpose(-1, -2)
        if mask is not None:   # [b, keys] -> broadcast over heads and queries, as flax's mask
            logits = torch.where(mask[:, None, None, :], logits, torch.finfo(logits.dtype).min)
        att = F.softmax(logits, dim=-1)
        return self.out((att @ v).transpose(1, 2).reshape(b, t, d))


class EncoderBlock(nn.Module):
    def __init__(self, d, heads, mlp):
        super().__init__()
        self.LayerNorm_0 = nn.LayerNorm(d, eps=1e-5).double()
        self.MultiHeadDotProductAttention_0 = MHA(d, heads)
        self.LayerNorm_1 = nn.LayerNorm(d, eps=1e-5).double()
        self.Dense_0 = nn.Linear(d, mlp).double()
        self.Dense_1 = nn.Linear(mlp, d).double()

    def forward(self, inputs, mask=None):
        x = self.MultiHeadDotProductAttention_0(self.LayerNorm_0(inputs), mask) + inputs
        y = self.Dense_1(F.gelu(self.Dense_0(self.LayerNorm_1(x))))
        return y + x


def valid_masks(xs, lens):
    """per modality [n, T] True at real tokens (all True without lengths)"""
    return {m: (torch.ones(xs[m].shape[:2], dtype=torch.bool) if lens is None else
                torch.arange(xs[m].shape[1]).unsqueeze(0) < lens[m].unsqueeze(1)) for m in MODS}


def with_bottleneck(mask, nb):
    """the key mask of [tokens ; nb bottleneck tokens]: bottleneck tokens are always keys"""
    return torch.cat([mask, torch.ones(mask.shape[0], nb, dtype=torch.bool)], dim=1)


class Readout(nn.Module):
    """'gap': scenic's encoder_norm over every modality's tokens, mean over all (real) tokens;
    'ours': encoder_norm_M and a mean per modality, concatenated; then output_projection"""

    def __init__(self, d, out_dim, readout):
        super().__init__()
        self.readout = readout
        if readout == "gap":
            self.encoder_norm = nn.LayerNorm(d, eps=1e-5).double()
            self.output_projection = nn.Linear(d, out_dim).double()
        else:
            for m in MODS:
                setattr(self, "encoder_norm_" + m, nn.LayerNorm(d, eps=1e-5).double())
            self.output_projection = nn.Linear(len(MODS) * d, out_dim).double()

    def forward(self, x, valid):
        if self.readout == "gap":
            x_out = torch.cat([x[m] for m in MODS], dim=1)
            w = torch.cat([valid[m] for m in MODS], dim=1).unsqueeze(2).double()
            encoded = self.encoder_norm(x_out)
            return self.output_projection((encoded * w).sum(dim=1) / w.sum(dim=1))
        pooled = []
        for m in MODS:
            w = valid[m].unsqueeze(2).double()
            pooled.append((getattr(self, "encoder_norm_" + m)(x[m]) * w).sum(dim=1) / w.sum(dim=1))
        return self.output_projection(torch.cat(pooled, dim=1))


class MBT(nn.Module):
    def __init__(self, seq, tok, d, heads, mlp, layers, fusion_layer, n_bottlenecks, out_dim, readout):
        super().__init__()
        self.layers, self.fusion_layer = layers, fusion_layer
        for m in MODS:
            setattr(self, "embedding_" + m, nn.Linear(tok[m], d).double())
            setattr(self, "posembed_input_" + m, nn.Parameter(torch.empty(seq[m], d, dtype=torch.float64)))
            for lyr in range(layers):
                setattr(self, "encoderblock_%d_%s" % (lyr, m), EncoderBlock(d, heads, mlp))
        self.bottleneck = nn.Parameter(torch.empty(n_bottlenecks, d, dtype=torch.float64))
        self.head = Readout(d, out_dim, readout)

    def forward(self, xs, lens=None):
        x = {m: getattr(self, "embedding_" + m)(xs[m]) + getattr(self, "posembed_input_" + m) for m in MODS}
        valid = valid_masks(xs, lens)
        n = xs[MODS[0]].shape[0]
        bottleneck = self.bottleneck.unsqueeze(0).expand(n, -1, -1)
        for lyr in range(self.layers):
            if lyr < self.fusion_layer:
                for m in MODS:
                    x[m] = getattr(self, "encoderblock_%d_%s" % (lyr, m))(x[m], valid[m])
            else:
                bottle = []
                for m in MODS:
                    t_mod = x[m].shape[1]
                    in_mod = torch.cat([x[m], bottleneck], dim=1)
                    out_mod = getattr(self, "encoderblock_%d_%s" % (lyr, m))(in_mod, with_bottleneck(valid[m], bottleneck.shape[1]))
                    x[m] = out_mod[:, :t_mod]
                    bottle.append(out_mod[:, t_mod:])
                bottleneck = torch.mean(torch.stack(bottle, dim=-1), dim=-1)
        return self.head(x, valid)


def init_params(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ("LayerNorm" in name or "encoder_norm" in name) and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            elif "posembed" in name or "bottleneck" in name:
                p.copy_(0.5 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / math.sqrt(p.shape[1]))


SEQ, TOK = {"t": 3, "a": 4, "v": 2}, {"t": 5, "a": 3, "v": 7}
D, HEADS, MLP, LAYERS, FUSION_LAYER, NB, C, N = 6, 3, 12, 3, 1, 2, 4, 3
LENS = {"t": torch.tensor([3, 1, 2]), "a": torch.tensor([2, 4, 1]), "v": torch.tensor([1, 2, 2])}
CASES = (("full", "ours", False), ("padded", "ours", True), ("gap", "gap", True))


def name_of(model, name):
    """parameter names as the records carry them: the readout's without the module prefix"""
    return name[5:] if name.startswith("head.") else name


def write_cases(make_model, path):
    """every case of CASES: a model (make_model(readout)), random weights, inputs, output and the
    gradients of sum(out * W) into `path`"""
    lines = []
    for case, readout, padded in CASES:
        model = make_model(readout)
        init_params(model)
        lines.append(fmt(case + ".cfg", torch.tensor([N, SEQ["t"], SEQ["a"], SEQ["v"], TOK["t"], TOK["a"], TOK["v"], D, HEADS,
                                                      MLP // D, LAYERS, FUSION_LAYER, NB, C, 1 if readout == "gap" else 0])))
        for name, p in model.named_parameters():
            lines.append(fmt("%s.param.%s" % (case, name_of(model, name)), p))
        xs = {m: torch.randn(N, SEQ[m], TOK[m], dtype=torch.float64, requires_grad=True) for m in MODS}
        W = torch.randn(N, C, dtype=torch.float64)
        y = model(xs, LENS if padded else None)
        (y * W).sum().backward()
        for m in MODS:
            lines.append(fmt("%s.x.%s" % (case, m), xs[m]))
            if padded:
                lines.append(fmt("%s.lens.%s" % (case, m), LENS[m]))
        lines.append(fmt(case + ".W", W))
        lines.append(fmt(case + ".out", y))
        for name, p in model.named_parameters():
            lines.append(fmt("%s.grad.%s" % (case, name_of(model, name)), p.grad))
        for m in MODS:
            lines.append(fmt("%s.grad.x.%s" % (case, m), xs[m].grad))
        print(case, "out", y.detach().numpy().round(4).tolist())
    write_records(path, lines)
    print("wrote", path)


def run(make_model, filename, seed):
    """the command line of both scripts: --out DIR (default tests/data/mbt_ref)"""
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "mbt_ref"))
    args = ap.parse_args()
    torch.manual_seed(seed)
    write_cases(make_model, os.path.join(args.out, filename))


def main():
    run(lambda readout: MBT(SEQ, TOK, D, HEADS, MLP, LAYERS, FUSION_LAYER, NB, C, readout), "mbt_ref.txt", 2021)


if __name__ == "__main__":
    main()
