#!/usr/bin/python3
"""Per-pair attention bottlenecks (the paper's equations 8-9) for tests/test_mult_seq.c.

The MM-SPCL paper's bottleneck fusion reads as "a bottleneck token set between each pair of
modalities" (equations 8-9), where scenic's MBT (mbt_ref.py) shares ONE set among all modalities.
Re-stated here in plain torch from those equations, with the encoder blocks of mbt_ref.py
(scenic's EncoderBlock: pre-LN, x + MHA(LN0 x), x + Dense_1(GELU(Dense_0(LN1 x)))):
  - modalities t, a, v; pairs (t,a), (t,v), (a,v), each with its own learned bottleneck
    B_ij [n_bottlenecks][d] (parameters bottleneck_ta, bottleneck_tv, bottleneck_av);
  - per modality: token embedding (Linear) + learned positions;
  - layers before fusion_layer: each modality through its own block on its own tokens;
  - from fusion_layer on (eq. 8): modality m's block runs on [z_m ; B_p for the pairs p that hold
    m, in pair order]; z_m is the first part of its output and each B_p part is that modality's
    update of B_p;
  - eq. 9: B_ij = (update by i + update by j) / 2, the state the next layer reads;
  - readout as mbt_ref.py / the library: LayerNorm per modality, mean over its tokens,
    concatenation, output Linear.
With two modalities this is scenic's MBT exactly (one pair, the mean over its two members).
Sizes small and odd: t 3 tokens of 5, a 4 of 3, v 2 of 7; d 6, 3 heads, MLP 12, 3 layers, fusion
from layer 1, 2 bottleneck tokens per pair, 4 outputs; 3 samples. Random weights, float64.
Loss = sum(out * W). Writes tests/data/mbt_ref/mbt_pair_ref.txt, records as mult_ref.py's:
cfg, param.<name>, x.{t,a,v}, W, out, grad.<name>, grad.x.{t,a,v}.
Run: tools/reference/mbt_pair_ref.py [--out DIR]
"""
import argparse
import math
import os

import torch
from torch import nn

from mbt_ref import EncoderBlock
from mult_ref import fmt

MODS = ("t", "a", "v")
PAIRS = (("t", "a"), ("t", "v"), ("a", "v"))


class PairBottleneckMBT(nn.Module):
    def __init__(self, seq, tok, d, heads, mlp, layers, fusion_layer, n_bottlenecks, out_dim):
        super().__init__()
        self.layers, self.fusion_layer = layers, fusion_layer
        for m in MODS:
            setattr(self, "embedding_" + m, nn.Linear(tok[m], d).double())
            setattr(self, "posembed_input_" + m, nn.Parameter(torch.empty(seq[m], d, dtype=torch.float64)))
            for lyr in range(layers):
                setattr(self, "encoderblock_%d_%s" % (lyr, m), EncoderBlock(d, heads, mlp))
            setattr(self, "encoder_norm_" + m, nn.LayerNorm(d, eps=1e-5).double())
        for i, j in PAIRS:
            setattr(self, "bottleneck_" + i + j, nn.Parameter(torch.empty(n_bottlenecks, d, dtype=torch.float64)))
        self.output_projection = nn.Linear(len(MODS) * d, out_dim).double()

    def forward(self, xs):
        x = {m: getattr(self, "embedding_" + m)(xs[m]) + getattr(self, "posembed_input_" + m) for m in MODS}
        n = xs[MODS[0]].shape[0]
        B = {p: getattr(self, "bottleneck_" + p[0] + p[1]).unsqueeze(0).expand(n, -1, -1) for p in PAIRS}
        for lyr in range(self.layers):
            if lyr < self.fusion_layer:
                for m in MODS:
                    x[m] = getattr(self, "encoderblock_%d_%s" % (lyr, m))(x[m])
                continue
            updates = {p: [] for p in PAIRS}
            for m in MODS:
                mine = [p for p in PAIRS if m in p]
                out = getattr(self, "encoderblock_%d_%s" % (lyr, m))(torch.cat([x[m]] + [B[p] for p in mine], dim=1))
                t_mod, nb = x[m].shape[1], B[mine[0]].shape[1]
                x[m] = out[:, :t_mod]
                for k, p in enumerate(mine):                       # eq. 8: m's update of B_p
                    updates[p].append(out[:, t_mod + k * nb:t_mod + (k + 1) * nb])
            B = {p: (updates[p][0] + updates[p][1]) / 2 for p in PAIRS}   # eq. 9
        pooled = [getattr(self, "encoder_norm_" + m)(x[m]).mean(dim=1) for m in MODS]
        return self.output_projection(torch.cat(pooled, dim=1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "mbt_ref"))
    args = ap.parse_args()
    torch.manual_seed(89)
    n, seq, tok = 3, {"t": 3, "a": 4, "v": 2}, {"t": 5, "a": 3, "v": 7}
    d, heads, mlp, layers, fusion_layer, nb, C = 6, 3, 12, 3, 1, 2, 4
    model = PairBottleneckMBT(seq, tok, d, heads, mlp, layers, fusion_layer, nb, C)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ("LayerNorm" in name or "encoder_norm" in name) and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            elif "posembed" in name or name.startswith("bottleneck"):
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
    path = os.path.join(args.out, "mbt_pair_ref.txt")
    with open(path + ".tmp", "w") as f:
        f.writelines(lines)
    os.replace(path + ".tmp", path)
    print("out", y.detach().numpy().round(4).tolist())
    print("wrote", path)


if __name__ == "__main__":
    main()
