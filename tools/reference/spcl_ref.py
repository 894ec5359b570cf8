#!/usr/bin/python3
"""SPCL loss reference for tests/test_train.c (writes tests/data/spcl/spcl_ref.txt).

The loss of SPCL (Song et al. 2022) as the original code computes it (caskcsg/SPCL,
spcl_loss.py: SupProtoConLoss, the non-decoupled branch), written here from its equations in
float64 with PyTorch autograd for the gradient:

  queues   one per class, starting as [class mean]; prototype of class c = mean of K random queue
           entries when the queue holds >= K, else the class mean. HEAD (cd48939) samples the
           prototypes first and then pushes the batch's detached embeddings (order protos_first);
           the Oct-2022 code pushed first (order push_first).
  score    G(a, b) = (1 + cosine_similarity(a, b)) / 2 + 1e-8, divided by the temperature
  anchor i of the batch, candidates: the other batch items and the C prototypes
           pos_i = sum of exp(score) over candidates of i's class, neg_i over the others
           prob_i = pos_i / (pos_i + neg_i) / (|P_i| + 1e-8),  l_i = -log(prob_i + 1e-8)
  loss     mean of l_i over the anchors with l_i > 0.3 (sum / (count + 1e-8))

Cases:
  paper_t0.08, readme_t0.05, t0.5   one push-first step where every queue holds exactly K entries
                                    or fewer (deterministic whatever the draw)
  seq_*                             seeded sequences of steps whose queues grow past K and past
                                    pool_size: the random K-of-L draws and the drops follow
                                    mmspcl_train.h's generator (mmspcl_streams.py re-states it),
                                    and the positions drawn are written as "select" lines.

The loss is computed twice, as the original's masked score matrix and as a plain loop over
anchors; the script refuses to write if they disagree. Gradients are d loss / d reps.

Output format (one item per line, numbers separated by spaces, %.17g):
  case NAME / order push_first|protos_first / classes C / dim D / pool P / K K / temperature T /
  seed S / centers ... (C*D)
  then per step: step I / labels ... / reps ... (n*D) / select C POS... (one line per class:
  the K queue positions drawn, or "select C mean") / protos ... (C*D) / anchor_loss ... (n) /
  loss L / grad ... (n*D) / endstep
  and end.
Run: tools/reference/spcl_ref.py [--out DIR]
"""
import argparse
import os

import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mmspcl_streams import Queues  # noqa: E402

torch.set_default_dtype(torch.float64)


def score(x, y):
    return (1 + F.cosine_similarity(x, y, dim=-1)) / 2 + 1e-8


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


def step_lines(reps0, labels, protos, sel, temperature):
    """One step: loss (both forms), gradient; the lines of the step."""
    reps = reps0.clone().requires_grad_(True)
    loss, anchor = loss_matrix(reps, labels, protos, temperature)
    check = loss_loop(reps.detach(), labels, protos, temperature)
    if abs(float(loss) - float(check)) > 1e-12 * max(1.0, abs(float(loss))):
        raise SystemExit("matrix and loop forms disagree: %r %r" % (float(loss), float(check)))
    loss.backward()
    lines = ["labels " + " ".join(str(int(l)) for l in labels), "reps " + fmt(reps.detach())]
    for c, s in enumerate(sel):
        lines.append("select %d " % c + ("mean" if s is None else " ".join(str(i) for i in s)))
    lines += ["protos " + fmt(protos), "anchor_loss " + fmt(anchor.detach()), "loss " + fmt(loss.detach()),
              "grad " + fmt(reps.grad), "endstep"]
    return lines, float(loss), anchor.detach()


def header(name, order, C, dim, pool, K, temperature, seed, centers):
    return ["case " + name, "order " + order, "classes %d" % C, "dim %d" % dim, "pool %d" % pool, "K %d" % K,
            "temperature %.17g" % temperature, "seed %d" % seed, "centers " + fmt(centers)]


def sequence_case(name, order, C, dim, pool, K, temperature, seed, steps, gen):
    """steps batches of random reps (labels drawn so that some classes fill their queues past
    pool, others stay under K for a while), through the queues in the given order."""
    centers = torch.randn(C, dim, generator=gen)
    Q = Queues(list(centers), pool, K, seed)
    lines = header(name, order, C, dim, pool, K, temperature, seed, centers)
    drawn = 0
    for st in range(steps):
        n = 6 + st % 3
        labels = torch.tensor([[0, 0, 1, 0, 2, 1, 0, 3][(i + st) % 8] % C for i in range(n)])
        reps = torch.randn(n, dim, generator=gen) + 0.8 * centers[labels]
        if order == "push_first":
            Q.push(reps, labels)
            protos, sel = Q.prototypes()
        else:
            protos, sel = Q.prototypes()
            Q.push(reps, labels)
        drawn += sum(1 for s in sel if s is not None)
        sl, loss, _ = step_lines(reps, labels, torch.stack(protos), sel, temperature)
        lines += ["step %d" % st] + sl
        print("%s step %d: loss %.10f, queue lengths %s" % (name, st, loss, [len(q) for q in Q.entries]))
    if drawn == 0 or max(len(q) for q in Q.entries) < pool:
        raise SystemExit("%s: the queues never reached K / pool_size" % name)
    return lines + ["end"]


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
        Q = Queues(list(centers), pool_size, K, 1)
        Q.push(reps0, labels)
        protos, sel = Q.prototypes()
        if [len(q) for q in Q.entries] != [3, 3, 2]:
            raise SystemExit("the hand-made case must keep every queue at <= K entries")
        sl, loss, anchor = step_lines(reps0, labels, torch.stack(protos), sel, temperature)
        lines += header(name, "push_first", 3, 4, pool_size, K, temperature, 1, centers) + ["step 0"] + sl + ["end"]
        print("%s: loss %.10f, anchors %s" % (name, loss, fmt(anchor)))
    gen = torch.Generator().manual_seed(2333)
    lines += sequence_case("seq_head_t0.08", "protos_first", 4, 5, 6, 3, 0.08, 77, 5, gen)
    lines += sequence_case("seq_head_t0.5", "protos_first", 3, 6, 5, 2, 0.5, 12345, 4, gen)
    lines += sequence_case("seq_pushfirst_t0.08", "push_first", 4, 5, 6, 3, 0.08, 9, 5, gen)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "spcl_ref.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
