#!/usr/bin/python3
"""SPCL loss reference for tests/test_train.c (writes tests/data/spcl/spcl_ref.txt).

The loss of SPCL (Song et al. 2022) as the original code computes it (caskcsg/SPCL,
spcl_loss.py: SupProtoConLoss, the non-decoupled branch), written here from its equations in
float64 with PyTorch autograd for the gradient:

  queues   one per class, starting as [class mean]; each batch first appends its detached
           embeddings; prototype of class c = mean of K random queue entries when the queue
           holds >= K, else the class mean. The cases below are built so that every queue holds
           either exactly K entries (the prototype is the mean of all of them, whatever the
           random draw) or fewer than K (the class mean): the result is deterministic.
  score    G(a, b) = (1 + cosine_similarity(a, b)) / 2 + 1e-8, divided by the temperature
  anchor i of the batch, candidates: the other batch items and the C prototypes
           pos_i = sum of exp(score) over candidates of i's class, neg_i over the others
           prob_i = pos_i / (pos_i + neg_i) / (|P_i| + 1e-8),  l_i = -log(prob_i + 1e-8)
  loss     mean of l_i over the anchors with l_i > 0.3 (sum / (count + 1e-8))

The loss is computed twice, as the original's masked score matrix and as a plain loop over
anchors; the script refuses to write if they disagree. Gradients are d loss / d reps.

Output format (one item per line, numbers separated by spaces, %.17g):
  case NAME / classes C / dim D / pool P / K K / temperature T / labels ... / centers ... (C*D) /
  reps ... (n*D) / protos ... (C*D) / anchor_loss ... (n) / loss L / grad ... (n*D) / end
Run: tools/reference/spcl_ref.py [--out DIR]
"""
import argparse
import os

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)


def score(x, y):
    return (1 + F.cosine_similarity(x, y, dim=-1)) / 2 + 1e-8


def prototypes(reps, labels, centers, pool_size, K):
    """Queues start as [center]; the batch (detached) is appended; len >= K -> mean of K entries
    (here always all of them), else the center."""
    C = centers.shape[0]
    protos = []
    for c in range(C):
        pool = [centers[c]] + [reps[i].detach() for i in range(reps.shape[0]) if labels[i] == c]
        pool = pool[-pool_size:]
        if len(pool) >= K:
            assert len(pool) == K, "reference cases keep every queue at <= K entries"
            protos.append(torch.stack(pool).mean(0))
        else:
            protos.append(centers[c])
    return torch.stack(protos)


def loss_matrix(reps, labels, protos, temperature):
    n, C = reps.shape[0], protos.shape[0]
    allr = torch.cat([reps, protos], 0)
    alll = torch.cat([labels, torch.arange(C)], 0)
    N = n + C
    s = score(allr.unsqueeze(1).expand(N, N, -1), allr.unsqueeze(0).expand(N, N, -1))
    s = s * (1 - torch.eye(N)) / temperature
    s = s[:n]
    s = s - s.max()
    same = (alll.unsqueeze(0) == alll.unsqueeze(1)).double()[:n]
    notself = (1 - torch.eye(N))[:n]
    e = torch.exp(s)
    pos = (e * same * notself).sum(-1)
    neg = (e * (1 - same)).sum(-1)
    prob = pos / (pos + neg) / ((same * notself).sum(-1) + 1e-8)
    anchor = -torch.log(prob + 1e-8)
    mask = (anchor > 0.3).double()
    return (anchor * mask).sum() / (mask.sum() + 1e-8), anchor


def loss_loop(reps, labels, protos, temperature):
    n, C = reps.shape[0], protos.shape[0]
    cands = [(reps[a], int(labels[a])) for a in range(n)] + [(protos[c], c) for c in range(C)]
    ls = []
    for i in range(n):
        pos = neg = 0.0
        npos = 0
        for a, (r, la) in enumerate(cands):
            if a == i:
                continue
            e = torch.exp(score(reps[i], r) / temperature)
            if la == int(labels[i]):
                pos = pos + e
                npos += 1
            else:
                neg = neg + e
        ls.append(-torch.log(pos / (pos + neg) / (npos + 1e-8) + 1e-8))
    ls = torch.stack(ls)
    active = [l for l in ls if float(l) > 0.3]
    return sum(active) / (len(active) + 1e-8)


def fmt(xs):
    return " ".join("%.17g" % float(x) for x in torch.as_tensor(xs).reshape(-1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "spcl"))
    args = ap.parse_args()
    # A hand-made batch: 3 classes in 4 dimensions. Classes 0 and 1 appear twice (their queues
    # reach K = 3 entries: center + 2), class 2 once (its queue stays under K: prototype = center).
    # Item 3 (class 2) sits next to its center, so its anchor loss falls under 0.3 at t = 0.08.
    centers = torch.tensor([[1.0, 0.2, 0.0, 0.0], [0.0, 1.0, 0.3, 0.0], [0.0, 0.0, -0.2, 1.0]])
    reps0 = torch.tensor([[0.9, 0.1, 0.1, 0.0],
                          [0.1, 0.8, 0.2, -0.1],
                          [0.7, -0.2, 0.3, 0.1],
                          [0.05, 0.0, -0.15, 1.1],
                          [0.3, 0.5, -0.4, 0.2]])
    labels = torch.tensor([0, 1, 0, 2, 1])
    lines = ["# SPCL loss reference (tools/reference/spcl_ref.py, PyTorch %s, float64)" % torch.__version__]
    for name, temperature in (("paper_t0.08", 0.08), ("readme_t0.05", 0.05), ("t0.5", 0.5)):
        pool_size, K = 8, 3
        reps = reps0.clone().requires_grad_(True)
        protos = prototypes(reps, labels, centers, pool_size, K)
        loss, anchor = loss_matrix(reps, labels, protos, temperature)
        check = loss_loop(reps.detach(), labels, protos, temperature)
        if abs(float(loss) - float(check)) > 1e-12 * max(1.0, abs(float(loss))):
            raise SystemExit("matrix and loop forms disagree: %r %r" % (float(loss), float(check)))
        loss.backward()
        lines += ["case " + name, "classes 3", "dim 4", "pool %d" % pool_size, "K %d" % K,
                  "temperature %.17g" % temperature, "labels " + " ".join(str(int(l)) for l in labels),
                  "centers " + fmt(centers), "reps " + fmt(reps.detach()), "protos " + fmt(protos),
                  "anchor_loss " + fmt(anchor.detach()), "loss " + fmt(loss.detach()),
                  "grad " + fmt(reps.grad), "end"]
        print("%s: loss %.10f, anchors %s" % (name, float(loss), fmt(anchor.detach())))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "spcl_ref.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
