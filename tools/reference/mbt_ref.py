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
    next layer; the bottleneck starts as the learned 'bottleneck' parameter.
Named departures (the library's MBT readout, mmspcl_mbt_forward): scenic's flax nn.gelu is the
tanh approximation and its readout is one encoder_norm over all modalities' tokens, then the mean
over all of them ('gap') and output_projection; here, as in the library, GELU is the erf form and
the readout is a LayerNorm per modality, the mean over that modality's tokens, the concatenation,
then the output Linear.
Sizes are small and odd: t 3 tokens of 5, a 4 of 3, v 2 of 7; d 6, 3 heads, MLP 12, 3 layers,
fusion from layer 1, 2 bottleneck tokens, 4 outputs; 3 samples. Random weights, float64.
Loss = sum(out * W). Writes tests/data/mbt_ref/mbt_ref.txt, records as mult_ref.py's:
cfg, param.<name>, x.{t,a,v}, W, out, grad.<name>, grad.x.{t,a,v}.
Run: tools/reference/mbt_ref.py [--out DIR]
"""
import argparse
import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from mult_ref import fmt

MODS = ("t", "a", "v")


class MHA(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.h, self.hd = heads, d // heads
        self.query = nn.Linear(d, d).double()
        self.key = nn.Linear(d, d).double()
        self.value = nn.Linear(d, d).double()
        self.out = nn.Linear(d, d).double()

    def forward(self, x):
        b, t, d = x.shape
        q = self.query(x).view(b, t, self.h, self.hd).transpose(1, 2) * self.hd ** -0.5
        k = self.key(x).view(b, t, self.h, self.hd).transpose(1, 2)
        v = self.value(x).view(b, t, self.h, self.hd).transpose(1, 2)
        att = F.softmax(q @ k.transpose(-1, -2), dim=-1)
        return self.out((att @ v).transpose(1, 2).reshape(b, t, d))


class EncoderBlock(nn.Module):
    def __init__(self, d, heads, mlp):
        super().__init__()
        self.LayerNorm_0 = nn.LayerNorm(d, eps=1e-5).double()
        self.MultiHeadDotProductAttention_0 = MHA(d, heads)
        self.LayerNorm_1 = nn.LayerNorm(d, eps=1e-5).double()
        self.Dense_0 = nn.Linear(d, mlp).double()
        self.Dense_1 = nn.Linear(mlp, d).double()

    def forward(self, inputs):
        x = self.MultiHeadDotProductAttention_0(self.LayerNorm_0(inputs)) + inputs
        y = self.Dense_1(F.gelu(self.Dense_0(self.LayerNorm_1(x))))
        return y + x


class MBT(nn.Module):
    def __init__(self, seq, tok, d, heads, mlp, layers, fusion_layer, n_bottlenecks, out_dim):
        super().__init__()
        self.layers, self.fusion_layer = layers, fusion_layer
        for m in MODS:
            setattr(self, "embedding_" + m, nn.Linear(tok[m], d).double())
            setattr(self, "posembed_input_" + m, nn.Parameter(torch.empty(seq[m], d, dtype=torch.float64)))
            for lyr in range(layers):
                setattr(self, "encoderblock_%d_%s" % (lyr, m), EncoderBlock(d, heads, mlp))
            setattr(self, "encoder_norm_" + m, nn.LayerNorm(d, eps=1e-5).double())
        self.bottleneck = nn.Parameter(torch.empty(n_bottlenecks, d, dtype=torch.float64))
        self.output_projection = nn.Linear(len(MODS) * d, out_dim).double()

    def forward(self, xs):
        x = {m: getattr(self, "embedding_" + m)(xs[m]) + getattr(self, "posembed_input_" + m) for m in MODS}
        n = xs[MODS[0]].shape[0]
        bottleneck = self.bottleneck.unsqueeze(0).expand(n, -1, -1)
        for lyr in range(self.layers):
            if lyr < self.fusion_layer:
                for m in MODS:
                    x[m] = getattr(self, "encoderblock_%d_%s" % (lyr, m))(x[m])
            else:
                bottle = []
                for m in MODS:
                    t_mod = x[m].shape[1]
                    out_mod = getattr(self, "encoderblock_%d_%s" % (lyr, m))(torch.cat([x[m], bottleneck], dim=1))
                    x[m] = out_mod[:, :t_mod]
                    bottle.append(out_mod[:, t_mod:])
                bottleneck = torch.mean(torch.stack(bottle, dim=-1), dim=-1)
        pooled = [getattr(self, "encoder_norm_" + m)(x[m]).mean(dim=1) for m in MODS]
        return self.output_projection(torch.cat(pooled, dim=1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "mbt_ref"))
    args = ap.parse_args()
    torch.manual_seed(2021)
    n, seq, tok = 3, {"t": 3, "a": 4, "v": 2}, {"t": 5, "a": 3, "v": 7}
    d, heads, mlp, layers, fusion_layer, nb, C = 6, 3, 12, 3, 1, 2, 4
    model = MBT(seq, tok, d, heads, mlp, layers, fusion_layer, nb, C)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ("LayerNorm" in name or "encoder_norm" in name) and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            elif "posembed" in name or name == "bottleneck":
                p.copy_(0.5 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / math.sqrt(p.shape[1]))
    lines = [fmt("cfg", torch.tensor([n, seq["t"], seq["a"], seq["v"], tok["t"], tok["a"], tok["v"], d, heads, mlp // d, layers, fusion_layer, nb, C]))]
    for name, p in model.named_parameters():
        lines.append(fmt("param." + name, p))
    xs = {m: torch.randn(n, seq[m], tok[m], dtype=torch.float64, requires_grad=True) for m in MODS}
    W = torch.randn(n, C, dtype=torch.float64)
    y = model(xs)
    (y * W).sum().backward()
    for m in MODS:
        lines.append(fmt("x." + m, xs[m]))
    lines.append(fmt("W", W))
    lines.append(fmt("out", y))
    for name, p in model.named_parameters():
        lines.append(fmt("grad." + name, p.grad))
    for m in MODS:
        lines.append(fmt("grad.x." + m, xs[m].grad))
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "mbt_ref.txt")
    with open(path + ".tmp", "w") as f:
        f.writelines(lines)
    os.replace(path + ".tmp", path)
    print("out", y.detach().numpy().round(4).tolist())
    print("wrote", path)


if __name__ == "__main__":
    main()
