#!/usr/bin/python3
"""MulT reference: forward outputs and every gradient for tests/test_mult_seq.c.

A plain-torch re-statement of MulT following the structure of its original code
(yaohungt/Multimodal-Transformer: src/models.py MULTModel, modules/transformer.py
TransformerEncoder / TransformerEncoderLayer, modules/multihead_attention.py, modules/
position_embedding.py, fairseq-derived), written here from a reading of it:
  - inputs [batch, seq, features] -> transpose -> Conv1d(kernel 1, bias=False) per modality
    -> [seq, batch, d];
  - TransformerEncoder: x = sqrt(d) * x_in + sinusoidal positions (fairseq: make_positions on the
    input's first channel, padding_idx 0 -> the zero row, position t + 1 otherwise; sin half then
    cos half, frequencies exp(-j ln(10000) / (half - 1))), the same for keys/values; then its
    layers, then a final LayerNorm;
  - TransformerEncoderLayer (normalize_before): residual + MHA(LN0(x), LN0(x_k), LN0(x_v)) with the
    ONE layer norm layer_norms[0]; residual + fc2(ReLU(fc1(LN1(x)))), fc1 4d wide;
  - MultiheadAttention: in_proj_weight [3d][d] / in_proj_bias cut in q, k, v thirds, q scaled by
    head_dim^-0.5, softmax, out_proj;
  - MULTModel with lonly = aonly = vonly: trans_l_with_a, trans_l_with_v, ... (5 pairs + ...),
    trans_{l,a,v}_mem over the concatenated pair outputs (2d wide, max(layers, 3) layers), the last
    step h[-1] of each, concatenated; proj2(ReLU(proj1(z))) + z; out_layer.
One addition (named, off for the first case): a key padding mask (MulT has none) and the last
REAL step instead of h[-1], for right-padded sequences: case "padded".
Eval mode (no dropout), float64. Weights random (every term matters): Linear/Conv weights
N(0, 1/fan_in), biases N(0, 0.1^2), LayerNorm gamma 1 + N(0, 0.1^2), beta N(0, 0.1^2).
Loss = sum(output * W) with a fixed random W; gradients by autograd.

Writes tests/data/mult_ref/mult_ref.txt: records "NAME NDIM S0 .. S_{NDIM-1} V0 V1 ..." (whitespace
separated, %.10g): cfg (ints), for each parameter param.<MulT state_dict name>, then per case
(full, padded): <case>.x.{l,a,v}, <case>.lens.{l,a,v}, <case>.W, <case>.out,
<case>.grad.<parameter name>, <case>.grad.x.{l,a,v}.
Run: tools/reference/mult_ref.py [--out DIR]
"""
import argparse
import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from reflib import write_records


def sinusoid_table(num, dim):
    half = dim // 2
    step = math.log(10000) / (half - 1)
    freq = torch.exp(torch.arange(half, dtype=torch.float64) * -step)
    ang = torch.arange(num, dtype=torch.float64).unsqueeze(1) * freq.unsqueeze(0)
    table = torch.cat([torch.sin(ang), torch.cos(ang)], dim=1)
    if dim % 2 == 1:
        table = torch.cat([table, torch.zeros(num, 1, dtype=torch.float64)], dim=1)
    table[0, :] = 0  # padding_idx 0
    return table


def positions_of(first_channel):
    """fairseq make_positions, right padding: t + 1 where the value is not 0 (padding_idx), else 0"""
    bsz, seq = first_channel.shape
    pos = torch.arange(1, seq + 1).unsqueeze(0).expand(bsz, seq)
    return torch.where(first_channel != 0, pos, torch.zeros_like(pos))


def sinusoidal_embed(x_first, dim):
    """x_first [batch, seq] -> [batch, seq, dim], detached as the original's"""
    table = sinusoid_table(x_first.shape[1] + 1, dim)
    return table[positions_of(x_first)].detach()


class MHA(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.d, self.h = d, heads
        self.hd = d // heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d, d, dtype=torch.float64))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * d, dtype=torch.float64))
        self.out_proj = nn.Linear(d, d).double()

    def forward(self, query, key, value, key_pad=None):
        tgt, bsz, d = query.shape
        w, b = self.in_proj_weight, self.in_proj_bias
        q = F.linear(query, w[:d], b[:d]) * self.hd ** -0.5
        k = F.linear(key, w[d:2 * d], b[d:2 * d])
        v = F.linear(value, w[2 * d:], b[2 * d:])
        q = q.contiguous().view(tgt, bsz * self.h, self.hd).transpose(0, 1)
        k = k.contiguous().view(-1, bsz * self.h, self.hd).transpose(0, 1)
        v = v.contiguous().view(-1, bsz * self.h, self.hd).transpose(0, 1)
        att = torch.bmm(q, k.transpose(1, 2))                     # [bsz*h, tgt, src]
        if key_pad is not None:                                    # the addition: [bsz, src], True = pad
            m = key_pad.repeat_interleave(self.h, dim=0).unsqueeze(1)
            att = att.masked_fill(m, float("-inf"))
        att = F.softmax(att, dim=-1)
        out = torch.bmm(att, v).transpose(0, 1).contiguous().view(tgt, bsz, d)
        return self.out_proj(out)


class EncoderLayer(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.self_attn = MHA(d, heads)
        self.fc1 = nn.Linear(d, 4 * d).double()
        self.fc2 = nn.Linear(4 * d, d).double()
        self.layer_norms = nn.ModuleList([nn.LayerNorm(d).double() for _ in range(2)])

    def forward(self, x, x_k=None, x_v=None, key_pad=None):
        residual = x
        x = self.layer_norms[0](x)
        if x_k is None:
            x = self.self_attn(x, x, x, key_pad)
        else:
            x = self.self_attn(x, self.layer_norms[0](x_k), self.layer_norms[0](x_v), key_pad)
        x = residual + x
        residual = x
        x = self.layer_norms[1](x)
        x = self.fc2(F.relu(self.fc1(x)))
        return residual + x


class Encoder(nn.Module):
    def __init__(self, d, heads, layers):
        super().__init__()
        self.d = d
        self.layers = nn.ModuleList([EncoderLayer(d, heads) for _ in range(layers)])
        self.layer_norm = nn.LayerNorm(d).double()

    def embed(self, x_in):  # x_in [seq, batch, d]
        x = math.sqrt(self.d) * x_in
        return x + sinusoidal_embed(x_in.transpose(0, 1)[:, :, 0], self.d).transpose(0, 1)

    def forward(self, x_in, x_in_k=None, key_pad=None):
        x = self.embed(x_in)
        x_k = self.embed(x_in_k) if x_in_k is not None else None
        for layer in self.layers:
            x = layer(x, x_k, x_k, key_pad) if x_k is not None else layer(x, key_pad=key_pad)
        return self.layer_norm(x)


class MulT(nn.Module):
    MODS = "lav"

    def __init__(self, orig, d, heads, layers, out_dim):
        super().__init__()
        self.d = d
        for m, od in zip(self.MODS, orig):
            setattr(self, "proj_" + m, nn.Conv1d(od, d, kernel_size=1, padding=0, bias=False).double())
        for a in self.MODS:
            for b in self.MODS:
                if a != b:
                    setattr(self, "trans_%s_with_%s" % (a, b), Encoder(d, heads, layers))
        for a in self.MODS:
            setattr(self, "trans_%s_mem" % a, Encoder(2 * d, heads, max(layers, 3)))
        comb = 6 * d
        self.proj1 = nn.Linear(comb, comb).double()
        self.proj2 = nn.Linear(comb, comb).double()
        self.out_layer = nn.Linear(comb, out_dim).double()

    def forward(self, xs, lens=None):
        proj = {}
        for m in self.MODS:
            proj[m] = getattr(self, "proj_" + m)(xs[m].transpose(1, 2)).permute(2, 0, 1)  # [seq, batch, d]
        pad = {m: None for m in self.MODS}
        if lens is not None:
            for m in self.MODS:
                pad[m] = torch.arange(xs[m].shape[1]).unsqueeze(0) >= lens[m].unsqueeze(1)
        lasts = []
        for a in self.MODS:
            hs = [getattr(self, "trans_%s_with_%s" % (a, b))(proj[a], proj[b], pad[b]) for b in self.MODS if b != a]
            h = getattr(self, "trans_%s_mem" % a)(torch.cat(hs, dim=2), key_pad=pad[a])
            if lens is None:
                lasts.append(h[-1])
            else:
                lasts.append(h[lens[a] - 1, torch.arange(h.shape[1])])
        z = torch.cat(lasts, dim=1)
        zp = self.proj2(F.relu(self.proj1(z))) + z
        return self.out_layer(zp)


def fmt(name, t):
    t = t.detach().to(torch.float64).contiguous()
    vals = " ".join("%.10g" % v for v in t.reshape(-1).tolist())
    return "%s %d %s %s\n" % (name, t.dim(), " ".join(str(s) for s in t.shape), vals)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "mult_ref"))
    args = ap.parse_args()
    torch.manual_seed(1917)
    n, T, orig, d, heads, layers, C = 3, {"l": 5, "a": 4, "v": 6}, (7, 5, 3), 6, 3, 2, 4
    model = MulT(orig, d, heads, layers, C)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / math.sqrt(p.shape[1] * (p.shape[2] if p.dim() == 3 else 1)))
    model.eval()
    out_lines = [fmt("cfg", torch.tensor([n, T["l"], T["a"], T["v"], orig[0], orig[1], orig[2], d, heads, layers, max(layers, 3), C]))]
    for name, p in model.named_parameters():
        out_lines.append(fmt("param." + name, p))
    cases = {"full": {m: torch.full((n,), T[m]) for m in "lav"},
             "padded": {"l": torch.tensor([5, 2, 4]), "a": torch.tensor([1, 4, 3]), "v": torch.tensor([6, 3, 1])}}
    for case, lens in cases.items():
        xs = {}
        for i, m in enumerate("lav"):
            x = torch.randn(n, T[m], orig[i], dtype=torch.float64)
            x = x * (torch.arange(T[m]).unsqueeze(0) < lens[m].unsqueeze(1)).unsqueeze(2)
            xs[m] = x.requires_grad_(True)
        W = torch.randn(n, C, dtype=torch.float64)
        model.zero_grad()
        y = model(xs, lens if case == "padded" else None)
        (y * W).sum().backward()
        for m in "lav":
            out_lines.append(fmt("%s.x.%s" % (case, m), xs[m]))
            out_lines.append(fmt("%s.lens.%s" % (case, m), lens[m]))
        out_lines.append(fmt(case + ".W", W))
        out_lines.append(fmt(case + ".out", y))
        for name, p in model.named_parameters():
            out_lines.append(fmt("%s.grad.%s" % (case, name), p.grad))
        for m in "lav":
            out_lines.append(fmt("%s.grad.x.%s" % (case, m), xs[m].grad))
        print("%s: out %s" % (case, y.detach().numpy().round(4).tolist()))
    path = os.path.join(args.out, "mult_ref.txt")
    write_records(path, out_lines)
    print("wrote", path)


if __name__ == "__main__":
    main()
