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
  - the key padding mask and both readouts of mbt_ref.py ('ours': LayerNorm per modality, mean
    over its real tokens, concatenation, output Linear; 'gap': scenic's one encoder_norm over
    every modality's tokens, mean over all real tokens, output Linear from d).
With two modalities this is scenic's MBT exactly (one pair, the mean over its two members).
Sizes small and odd: t 3 tokens of 5, a 4 of 3, v 2 of 7; d 6, 3 heads, MLP 12, 3 layers, fusion
from layer 1, 2 bottleneck tokens per pair, 4 outputs; 3 samples. Random weights, float64.
The cases of mbt_ref.py ('full', 'padded', 'gap'; the same lengths). Loss = sum(out * W).
Writes tests/data/mbt_ref/mbt_pair_ref.txt, records as mbt_ref.py's, per case.
Run: tools/reference/mbt_pair_ref.py [--out DIR]
"""
import torch
from torch import nn

from mbt_ref import (C, D, FUSION_LAYER, HEADS, LAYERS, MLP, NB, SEQ, TOK, EncoderBlock, Readout, valid_masks,
                     run, with_bottleneck)

MODS = ("t", "a", "v")
PAIRS = (("t", "a"), ("t", "v"), ("a", "v"))


class PairBottleneckMBT(nn.Module):
    def __init__(self, seq, tok, d, heads, mlp, layers, fusion_layer, n_bottlenecks, out_dim, readout):
        super().__init__()
        self.layers, self.fusion_layer = layers, fusion_layer
        for m in MODS:
            setattr(self, "embedding_" + m, nn.Linear(tok[m], d).double())
            setattr(self, "posembed_input_" + m, nn.Parameter(torch.empty(seq[m], d, dtype=torch.float64)))
            for lyr in range(layers):
                setattr(self, "encoderblock_%d_%s" % (lyr, m), EncoderBlock(d, heads, mlp))
        for i, j in PAIRS:
            setattr(self, "bottleneck_" + i + j, nn.Parameter(torch.empty(n_bottlenecks, d, dtype=torch.float64)))
        self.head = Readout(d, out_dim, readout)

    def forward(self, xs, lens=None):
        x = {m: getattr(self, "embedding_" + m)(xs[m]) + getattr(self, "posembed_input_" + m) for m in MODS}
        valid = valid_masks(xs, lens)
        n = xs[MODS[0]].shape[0]
        B = {p: getattr(self, "bottleneck_" + p[0] + p[1]).unsqueeze(0).expand(n, -1, -1) for p in PAIRS}
        for lyr in range(self.layers):
            if lyr < self.fusion_layer:
                for m in MODS:
                    x[m] = getattr(self, "encoderblock_%d_%s" % (lyr, m))(x[m], valid[m])
                continue
            updates = {p: [] for p in PAIRS}
            for m in MODS:
                mine = [p for p in PAIRS if m in p]
                t_mod, nb = x[m].shape[1], B[mine[0]].shape[1]
                out = getattr(self, "encoderblock_%d_%s" % (lyr, m))(torch.cat([x[m]] + [B[p] for p in mine], dim=1),
                                                                     with_bottleneck(valid[m], nb * len(mine)))
                x[m] = out[:, :t_mod]
                for k, p in enumerate(mine):                       # eq. 8: m's update of B_p
                    updates[p].append(out[:, t_mod + k * nb:t_mod + (k + 1) * nb])
            B = {p: (updates[p][0] + updates[p][1]) / 2 for p in PAIRS}   # eq. 9
        return self.head(x, valid)


def main():
    run(lambda readout: PairBottleneckMBT(SEQ, TOK, D, HEADS, MLP, LAYERS, FUSION_LAYER, NB, C, readout), "mbt_pair_ref.txt", 89)


if __name__ == "__main__":
    main()
