#!/usr/bin/python3
"""One step of SPCL fine-tuning with a fusion head trained together with the encoder (the
MM-SPCL paper's "feed the fused representation back into SPCL"), with PyTorch autograd
(float64), for tests/test_finetune.c.

The step of spcl_finetune_ref.py (the same small random RobertaModel from
tests/data/finetune/model.safetensors, the same 11 MELD prompts, <mask> feature z_t, queues,
clipping, AdamW), except that what the SPCL loss, the queues, the prototypes and the linear
heads see is the fused representation
    z = fusion(z_t, a, v)
of the trainable z_t and fixed per-utterance audio and video vectors a [11][5], v [11][7]:
  linear  z = W [z_t ; a ; v] + b, W [10][36] (mmspcl_fusion LINEAR, fusion (a) of the paper)
  prune   cross-modal pruning first (prune_ref.py's layer: every modality through its own Linear
          into 12 values (the common projection), heads of K = 4, each of the 3 heads of t zeroes
          its best-matching head of a and of v, separately; the choice carries no gradient), then
          z = W [u_t ; u_a' ; u_v'] + b, W [10][36]
  loss    SPCL(z, labels, prototypes of the queues over z) + CE(emotion head(z.detach())) +
          CE(sentiment head(z.detach())); the gradient flows from z through the fusion head (and
          the projections) into the encoder
  clip    clip_grad_norm_(encoder + fusion head + emotion head, 1) (train.py:117 clips every
          parameter of the model, which now includes the fusion head); the sentiment head alone
  AdamW   one step from zero moments, lr 1e-5 encoder, 1e-3 fusion head and linear heads
          (train.py:17-20: the pretrained model's parameters at ptmlr, every other one at lr),
          weight decay 0.01 except names containing 'bias' or 'LayerNorm.weight'
Dropout off. Parameters are written under the names of mmspcl_train.h (fusion.proj.*,
prune.proj.{t,a,v}.*, emotion.*, sentiment.*; the encoder's Hugging Face names), random, rounded
to float32 (what the file stores); inputs likewise. The pruning choice is decided with a margin:
the script refuses to write when a best cosine is within 1e-6 of the runner-up.

Outputs (tests/data/finetune/): joint.txt (see HEADER), joint.safetensors (f32: <case>.init.NAME,
<case>.x.{a,v}, <case>.centers, <case>.prefill, <case>.z, <case>.kept.{a,v}, <case>.grad.NAME for
every tensor, <case>.after.NAME after clipping and one AdamW step).
Run: tools/reference/spcl_joint_ref.py [--out DIR]
"""
import argparse
import math
import os
import sys
from collections import OrderedDict

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import reflib  # noqa: E402
import spcl_finetune_ref as ft  # noqa: E402
from mmspcl_streams import Queues  # noqa: E402
from prune_ref import check_margin, head_cosines  # noqa: E402

D, DIM_A, DIM_V, K, PROJ = 10, 5, 7, 4, 12
CASES = (("linear", 0), ("prune", PROJ))

HEADER = """\
# One SPCL step with a fusion head trained with the encoder, PyTorch autograd
# (tools/reference/spcl_joint_ref.py, PyTorch %s, float64 from float32 values). The encoder,
# the batch, the queue settings, the prefill labels and the optimiser settings are those of
# expected.txt beside this file. Lines:
#   case <name> <out_dim> <dim a> <dim v> <prune K (0: no pruning)> <projection width>
#     select <class> <positions...> | select <class> mean               the prototypes' draws
#     loss <spcl> <ce emotion> <ce sentiment>
#     gradnorm <encoder + fusion + emotion head> <sentiment head>        before clipping
#   end
"""


def rnd(shape, g, scale=1.0):
    return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).float().double()


def linear_init(n_out, n_in, g):
    bound = 1.0 / math.sqrt(n_in)   # torch.nn.Linear's default init
    return (((torch.rand(n_out, n_in, generator=g, dtype=torch.float64) * 2 - 1) * bound).float().double(),
            ((torch.rand(n_out, generator=g, dtype=torch.float64) * 2 - 1) * bound).float().double())


def fuse(p, zt, a, v, proj):
    """z and the kept flags (None without pruning)"""
    if not proj:
        return torch.cat([zt, a, v], 1) @ p["fusion.proj.weight"].t() + p["fusion.proj.bias"], None
    u = {m: x @ p["prune.proj.%s.weight" % m].t() + p["prune.proj.%s.bias" % m] for m, x in (("t", zt), ("a", a), ("v", v))}
    keep = {}
    with torch.no_grad():   # which heads go: piecewise constant, no gradient
        for m in ("a", "v"):
            c = head_cosines(u["t"], u[m], K)
            check_margin(c)
            mask = torch.ones(c.shape[0], c.shape[2], dtype=torch.bool)
            mask.scatter_(1, c.argmax(dim=2), False)
            keep[m] = mask
    pr = {m: u[m] * keep[m].double().repeat_interleave(K, dim=1)[:, :u[m].shape[1]] for m in ("a", "v")}
    return torch.cat([u["t"], pr["a"], pr["v"]], 1) @ p["fusion.proj.weight"].t() + p["fusion.proj.bias"], keep


def run_case(W32, seqs, masks, labels, proj, g, c):
    H, C = c["hidden_size"], ft.SPCL["classes"]
    enc = OrderedDict((k, v.double().clone().requires_grad_(True)) for k, v in W32.items() if not k.startswith("pooler."))
    init = OrderedDict()
    widths = (proj, proj, proj) if proj else (H, DIM_A, DIM_V)
    if proj:
        for m, n_in in (("t", H), ("a", DIM_A), ("v", DIM_V)):
            init["prune.proj.%s.weight" % m], init["prune.proj.%s.bias" % m] = linear_init(proj, n_in, g)
    init["fusion.proj.weight"], init["fusion.proj.bias"] = linear_init(D, sum(widths), g)
    for name, n_out in (("emotion", C), ("sentiment", 3)):
        init[name + ".weight"], init[name + ".bias"] = linear_init(n_out, D, g)
    a, v = rnd((len(seqs), DIM_A), g), rnd((len(seqs), DIM_V), g)
    centers = rnd((C, D), g)
    prefill_y = [cl for k in range(max(ft.PREFILL)) for cl in range(C) if k < ft.PREFILL[cl]]
    prefill = (rnd((len(prefill_y), D), g) + 0.5 * centers[prefill_y]).float().double()
    hd = OrderedDict((k, t.clone().requires_grad_(True)) for k, t in init.items())
    zt = torch.stack([ft.forward_seq(enc, s, c, (None, b, ft.MAX_SEQ), 0.0)[masks[b]] for b, s in enumerate(seqs)])
    z, keep = fuse(hd, zt, a, v, proj)
    ye = torch.tensor([e for e, _ in labels])
    ys = torch.tensor([s for _, s in labels])
    Q = Queues(list(centers), ft.SPCL["pool"], ft.SPCL["K"], ft.SPCL["seed"])
    Q.push(prefill, prefill_y)
    protos, sel = Q.prototypes()
    Q.push(z.detach(), ye)
    l_spcl = ft.spcl_loss(z, ye, torch.stack(protos), ft.SPCL["temperature"])
    zd = z.detach()
    l_e = F.cross_entropy(zd @ hd["emotion.weight"].t() + hd["emotion.bias"], ye)
    l_s = F.cross_entropy(zd @ hd["sentiment.weight"].t() + hd["sentiment.bias"], ys)
    (l_spcl + l_e + l_s).backward()
    grads = OrderedDict((k, t.grad.detach().clone()) for k, t in list(enc.items()) + list(hd.items()))
    joint = list(enc.values()) + [t for k, t in hd.items() if not k.startswith("sentiment.")]
    n1 = float(torch.nn.utils.clip_grad_norm_(joint, ft.CLIP))
    n2 = float(torch.nn.utils.clip_grad_norm_([hd["sentiment.weight"], hd["sentiment.bias"]], ft.CLIP))
    groups = [{"params": [t], "lr": ft.LR_HEAD if k in hd else ft.LR_ENC,
               "weight_decay": 0.0 if any(nd in k for nd in ft.NO_DECAY) else ft.WD}
              for k, t in list(enc.items()) + list(hd.items())]
    torch.optim.AdamW(groups, betas=(0.9, 0.999), eps=1e-8).step()
    after = OrderedDict((k, t.detach().clone()) for k, t in list(enc.items()) + list(hd.items()))
    out = OrderedDict()
    for k, t in init.items():
        out["init." + k] = t
    out["x.a"], out["x.v"], out["centers"], out["prefill"], out["z"] = a, v, centers, prefill, z.detach()
    if keep:
        out["kept.a"], out["kept.v"] = keep["a"].double(), keep["v"].double()
    for k, t in grads.items():
        out["grad." + k] = t
    for k, t in after.items():
        out["after." + k] = t
    return (float(l_spcl), float(l_e), float(l_s)), sel, (n1, n2), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ft.ROOT, "tests", "data", "finetune"))
    args = ap.parse_args()
    seqs0, masks, labels = ft.load_batch()
    remap, V = ft.compact_vocab(seqs0)
    seqs = [[remap[i] for i in s] for s in seqs0]
    c = dict(ft.CFG, vocab_size=V)
    W = reflib.read_safetensors(os.path.join(args.out, "model.safetensors"))
    assert W["embeddings.word_embeddings.weight"].shape[0] == V, "model.safetensors is not spcl_finetune_ref.py's"
    g = torch.Generator().manual_seed(4242)
    lines = [HEADER % torch.__version__]
    tensors = OrderedDict()
    for case, proj in CASES:
        losses, sel, norms, out = run_case(W, seqs, masks, labels, proj, g, c)
        lines.append("case %s %d %d %d %d %d" % (case, D, DIM_A, DIM_V, K if proj else 0, proj))
        for cl, s in enumerate(sel):
            lines.append("select %d %s" % (cl, "mean" if s is None else " ".join(map(str, s))))
        lines.append("loss %.17g %.17g %.17g" % losses)
        lines.append("gradnorm %.17g %.17g" % norms)
        lines.append("end")
        for k, t in out.items():
            tensors["%s.%s" % (case, k)] = t.float()
        print("%s: spcl %.9f  ce emotion %.6f  ce sentiment %.6f  grad norms %.4f %.4f" % ((case,) + losses + norms))
    with open(os.path.join(args.out, "joint.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    reflib.write_safetensors(os.path.join(args.out, "joint.safetensors"), tensors)
    print("wrote", os.path.join(args.out, "joint.txt"), "and joint.safetensors")


if __name__ == "__main__":
    main()
