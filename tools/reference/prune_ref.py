#!/usr/bin/python3
"""Cross-modal pruning with two pruning modalities and a common projection, for tests/test_prune.c.

The MM-SPCL paper's cross-modal pruning, re-stated in plain torch from its description: split the
base modality (text) and a pruning modality into heads of K values; for every base head, the
pruning head with the highest cosine similarity is zeroed; concatenate; fuse. Added here as the
paper has them for its Table 4 and section 8.3:
  - two pruning modalities ({tav}: audio AND video pruned against text): either each on its own
    ("separate": every base head zeroes its best head in a and its best head in v) or as one
    pool ("joint": every base head zeroes the single best head among a's and v's heads);
  - the threshold rule (section 8.3): a pruning head is zeroed when its cosine with at least one
    base head is >= tau;
  - the common projection (section 8.3): every modality first through its own Linear into one
    width, so the heads of different modalities live in one learned space before the split.
A pruning modality's last head is shorter when K does not divide its width and is compared with
the first values of each base head. Cosine: torch.nn.functional.cosine_similarity. Ties cannot
decide: the script refuses to write when a best cosine is within 1e-6 of the runner-up or of tau.
After pruning: one Linear over [t ; a' ; v'] to 4 outputs. Loss = sum(out * W); gradients by
autograd (the choice of heads is piecewise constant: no gradient through it; zeroed heads pass
none). float64, 5 samples, random weights.
Cases: proj_sep (projection to 12, K 4, arg-max, separate), proj_joint (the same weights, joint),
proj_thr (the same weights, threshold 0.5), raw_sep (no projection: t 8, a 11, v 13, K 4,
arg-max, separate; short last heads), raw_thr (no projection, threshold 0.3).
Writes tests/data/prune_ref/prune_ref.txt, records "NAME NDIM S0 .. VALUES" as mult_ref.py's:
<case>.cfg [n, dim_t, dim_a, dim_v, K, proj_dim, rule (0 arg-max, 1 threshold), joint, C],
<case>.tau, <case>.param.<name>, <case>.x.{t,a,v}, <case>.W, <case>.out, <case>.kept.{a,v},
<case>.grad.<name>, <case>.grad.x.{t,a,v}.
Run: tools/reference/prune_ref.py [--out DIR]
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


def head_cosines(base, prune, K):
    """[n, base heads, pruning heads] cosines; a short last pruning head meets each base head's first values"""
    n, db = base.shape
    hb = base.view(n, db // K, K)
    cols = []
    for start in range(0, prune.shape[1], K):
        h = prune[:, start:start + K]
        cols.append(F.cosine_similarity(hb[:, :, :h.shape[1]], h.unsqueeze(1).expand(-1, hb.shape[1], -1), dim=2))
    return torch.stack(cols, dim=2)


def check_margin(c, tau=None):
    if tau is not None:
        assert (c - tau).abs().min().item() > 1e-6, "a cosine lies within 1e-6 of the threshold"
        return
    top = c.topk(2, dim=-1).values
    assert (top[..., 0] - top[..., 1]).min().item() > 1e-6, "a best cosine lies within 1e-6 of the runner-up"


class PruneFuse(nn.Module):
    def __init__(self, dims, K, proj_dim, C):
        super().__init__()
        self.K, self.proj_dim = K, proj_dim
        widths = {m: proj_dim if proj_dim else dims[m] for m in MODS}
        if proj_dim:
            for m in MODS:
                setattr(self, "proj_" + m, nn.Linear(dims[m], proj_dim).double())
        self.fuse = nn.Linear(sum(widths.values()), C).double()

    def forward(self, xs, rule, joint, tau):
        u = {m: getattr(self, "proj_" + m)(xs[m]) if self.proj_dim else xs[m] for m in MODS}
        with torch.no_grad():   # which heads go: piecewise constant, no gradient
            cos = {m: head_cosines(u["t"], u[m], self.K) for m in ("a", "v")}
            keep = {}
            if rule == "threshold":
                for m in ("a", "v"):
                    check_margin(cos[m], tau)
                    keep[m] = ~(cos[m] >= tau).any(dim=1)
            elif joint:
                both = torch.cat([cos["a"], cos["v"]], dim=2)
                check_margin(both)
                mask = torch.ones(both.shape[0], both.shape[2], dtype=torch.bool)
                mask.scatter_(1, both.argmax(dim=2), False)
                na = cos["a"].shape[2]
                keep["a"], keep["v"] = mask[:, :na], mask[:, na:]
            else:
                for m in ("a", "v"):
                    check_margin(cos[m])
                    mask = torch.ones(cos[m].shape[0], cos[m].shape[2], dtype=torch.bool)
                    mask.scatter_(1, cos[m].argmax(dim=2), False)
                    keep[m] = mask
        pruned = {m: u[m] * keep[m].double().repeat_interleave(self.K, dim=1)[:, :u[m].shape[1]] for m in ("a", "v")}
        return self.fuse(torch.cat([u["t"], pruned["a"], pruned["v"]], dim=1)), keep


def init(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / math.sqrt(p.shape[1]))


def run_case(lines, case, model, xs, rule, joint, tau, dims, C):
    model.zero_grad()
    for m in MODS:
        xs[m].grad = None
    W = torch.randn(xs["t"].shape[0], C, dtype=torch.float64)
    y, keep = model(xs, rule, joint, tau)
    (y * W).sum().backward()
    lines.append(fmt(case + ".cfg", torch.tensor([xs["t"].shape[0], dims["t"], dims["a"], dims["v"], model.K, model.proj_dim,
                                                  1 if rule == "threshold" else 0, 1 if joint else 0, C])))
    lines.append(fmt(case + ".tau", torch.tensor([tau if tau is not None else 0.0], dtype=torch.float64)))
    for name, p in model.named_parameters():
        lines.append(fmt(case + ".param." + name, p))
    for m in MODS:
        lines.append(fmt(case + ".x." + m, xs[m]))
    lines.append(fmt(case + ".W", W))
    lines.append(fmt(case + ".out", y))
    for m in ("a", "v"):
        lines.append(fmt(case + ".kept." + m, keep[m].double()))
    for name, p in model.named_parameters():
        lines.append(fmt(case + ".grad." + name, p.grad))
    for m in MODS:
        lines.append(fmt(case + ".grad.x." + m, xs[m].grad))
    print(case, "kept a", keep["a"].int().tolist(), "v", keep["v"].int().tolist())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "prune_ref"))
    args = ap.parse_args()
    torch.manual_seed(84)
    n, C, K = 5, 4, 4
    lines = []
    dims = {"t": 10, "a": 7, "v": 9}
    model = PruneFuse(dims, K, 12, C)
    init(model)
    xs = {m: torch.randn(n, dims[m], dtype=torch.float64, requires_grad=True) for m in MODS}
    run_case(lines, "proj_sep", model, xs, "argmax", False, None, dims, C)
    run_case(lines, "proj_joint", model, xs, "argmax", True, None, dims, C)
    run_case(lines, "proj_thr", model, xs, "threshold", False, 0.5, dims, C)
    dims = {"t": 8, "a": 11, "v": 13}
    model = PruneFuse(dims, K, 0, C)
    init(model)
    xs = {m: torch.randn(n, dims[m], dtype=torch.float64, requires_grad=True) for m in MODS}
    run_case(lines, "raw_sep", model, xs, "argmax", False, None, dims, C)
    run_case(lines, "raw_thr", model, xs, "threshold", False, 0.3, dims, C)
    path = os.path.join(args.out, "prune_ref.txt")
    write_records(path, lines)
    print("wrote", path)


if __name__ == "__main__":
    main()
