#!/usr/bin/python3
"""One RoBERTa training step in plain PyTorch (no transformers package), the step
`mmspcl bench --train` times: forward in training mode with dropout 0.1 at Hugging Face's four
places (embedding LayerNorm, attention probabilities, attention output dense, FFN output dense),
backward of sum(dout * out) over the whole [batch][seq][hidden] output (dout fixed, uniform in
[-1, 1]), gradient-norm clipping at 5, one AdamW step (lr 1e-5, betas 0.9/0.999, eps 1e-8,
weight decay 0.01 on Linear weights and embedding tables, none on biases and LayerNorm).
Random weights; timing does not depend on their values.

usage: torch_train_step.py [--layers 12] [--hidden 768] [--heads 12] [--ffn 3072] [--vocab 50265]
                           [--seq 128] [--batch 8] [--threads 1] [--reps 3] [--warmup 1]
Prints per-step times and "result median_ms=... min_ms=... cpu_median_ms=..." (medians of the timed
steps; CPU: this process, all threads).
Run it as tools/bench/train_compare.sh does (docs/PERFORMANCE.md): env -u OPENBLAS_CORETYPE -u
OPENBLAS_L2_SIZE OPENBLAS_CORETYPE=SKYLAKEX OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=1
OMP_NUM_THREADS=1 /usr/bin/python3 tools/bench/torch_train_step.py ...
"""
import argparse, math, statistics, time
import torch
import torch.nn as nn
import torch.nn.functional as F


class Layer(nn.Module):
    def __init__(s, H, NH, I, p):
        super().__init__()
        s.NH, s.p = NH, p
        s.q, s.k, s.v, s.o = (nn.Linear(H, H) for _ in range(4))
        s.ln1 = nn.LayerNorm(H, eps=1e-5)
        s.i = nn.Linear(H, I)
        s.o2 = nn.Linear(I, H)
        s.ln2 = nn.LayerNorm(H, eps=1e-5)

    def forward(s, x):
        B, S, H = x.shape
        d = H // s.NH
        sh = lambda t: t.view(B, S, s.NH, d).transpose(1, 2)
        q, k, v = sh(s.q(x)), sh(s.k(x)), sh(s.v(x))
        a = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d)
        a = F.dropout(a.softmax(-1), s.p, s.training)
        c = torch.matmul(a, v).transpose(1, 2).reshape(B, S, H)
        x = s.ln1(F.dropout(s.o(c), s.p, s.training) + x)
        h = F.gelu(s.i(x))
        return s.ln2(F.dropout(s.o2(h), s.p, s.training) + x)


class Roberta(nn.Module):
    def __init__(s, L, H, NH, I, V, p, pad=1):
        super().__init__()
        s.pad, s.p = pad, p
        s.word = nn.Embedding(V, H)
        s.pos = nn.Embedding(514, H)
        s.tok = nn.Embedding(1, H)
        s.ln = nn.LayerNorm(H, eps=1e-5)
        s.layers = nn.ModuleList(Layer(H, NH, I, p) for _ in range(L))

    def forward(s, ids):
        m = (ids != s.pad).int()
        pos = torch.cumsum(m, 1) * m + s.pad          # RoBERTa's create_position_ids_from_input_ids
        x = s.word(ids) + s.pos(pos) + s.tok(torch.zeros_like(ids))
        x = F.dropout(s.ln(x), s.p, s.training)
        for l in s.layers:
            x = l(x)
        return x


def main():
    ap = argparse.ArgumentParser()
    for k, v in dict(layers=12, hidden=768, heads=12, ffn=3072, vocab=50265, seq=128, batch=8,
                     threads=1, reps=3, warmup=1).items():
        ap.add_argument("--" + k, type=int, default=v)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    m = Roberta(a.layers, a.hidden, a.heads, a.ffn, a.vocab, 0.1)
    m.train()
    decay = [p for n, p in m.named_parameters() if n.endswith("weight") and "ln" not in n]
    nodecay = [p for n, p in m.named_parameters() if not (n.endswith("weight") and "ln" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": nodecay, "weight_decay": 0.0}],
                            lr=1e-5, betas=(0.9, 0.999), eps=1e-8)
    g = torch.Generator().manual_seed(12345)
    ids = torch.randint(3, a.vocab, (a.batch, a.seq), generator=g)
    ids[:, 0], ids[:, -1] = 0, 2
    dout = torch.rand(a.batch, a.seq, a.hidden, generator=g) * 2 - 1

    def step():
        opt.zero_grad(set_to_none=False)
        out = m(ids)
        (out * dout).sum().backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 5.0)
        opt.step()

    n_par = sum(p.numel() for p in m.parameters())
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {n_par} parameters, "
          f"batch {a.batch} x {a.seq} tokens, {a.layers} x {a.hidden} (heads {a.heads}, ffn {a.ffn})", flush=True)
    for _ in range(a.warmup):
        step()
    ts, cs = [], []
    for _ in range(a.reps):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        ts.append((time.perf_counter() - t0) * 1e3)
        cs.append((time.process_time() - c0) * 1e3)
        print(f"step {ts[-1]:.1f} ms (CPU {cs[-1]:.1f} ms)", flush=True)
    print(f"result median_ms={statistics.median(ts):.3f} min_ms={min(ts):.3f} cpu_median_ms={statistics.median(cs):.3f}",
          flush=True)


if __name__ == "__main__":
    main()
