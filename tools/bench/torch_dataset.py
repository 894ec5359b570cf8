#!/usr/bin/python3
"""torch_dataset.py HF_FOLDER PROMPTS THREADS REPS BATCHES [OUT_PREFIX] [--int8]

PyTorch on the dataset job (tools/bench/dataset.c prompts: one "MASK_POS ID ID ..." a line):
prompts sorted by length, cut into padded batches of B (each padded to its longest prompt, pad id
1, attention mask), every batch through tools/bench/torch_models.RobertaEncoder, REPS passes for
each B in BATCHES (e.g. 8,16,32), round-robin. Prints "result engine=torch dtype=f32|int8
threads=T batch=B prompts=N utt_per_s=... median_s=... min_s=... cpu_median_s=... runs=..." and
writes each B's <mask> rows ([n][hidden] f32, the file's order) to OUT_PREFIX-DTYPE-B.f32.
--int8: also dynamic int8 (quantize_dynamic on nn.Linear). Run it with OPENBLAS_CORETYPE=SKYLAKEX
OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=T (tools/bench/torch_bench.py says why)."""
import copy
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_models  # noqa: E402


def read_prompts(path):
    out = []
    for line in open(path):
        v = [int(t) for t in line.split()]
        if len(v) > 1:
            out.append((v[0], v[1:]))
    return out


def batches(prompts, B, pad):
    order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i][1]), i))
    for s in range(0, len(order), B):
        idx = order[s:s + B]
        T = max(len(prompts[i][1]) for i in idx)
        ids = torch.full((len(idx), T), pad, dtype=torch.int64)
        mask = torch.zeros((len(idx), T), dtype=torch.int64)
        for r, i in enumerate(idx):
            n = len(prompts[i][1])
            ids[r, :n] = torch.tensor(prompts[i][1])
            mask[r, :n] = 1
        yield idx, ids, mask


def one_pass(model, prompts, B, pad, z):
    for idx, ids, mask in batches(prompts, B, pad):
        h = model(ids, mask)
        if z is not None:
            for r, i in enumerate(idx):
                mp = prompts[i][0] if 0 <= prompts[i][0] < len(prompts[i][1]) else 0
                z[i] = h[r, mp].numpy()


def main():
    args = [a for a in sys.argv[1:] if a != "--int8"]
    folder, path, threads, reps, blist = args[:5]
    out_prefix = args[5] if len(args) > 5 else None
    threads, reps, blist = int(threads), int(reps), [int(b) for b in blist.split(",")]
    torch.set_num_threads(threads)
    torch.set_grad_enabled(False)
    if "onednn" in torch.backends.quantized.supported_engines:
        torch.backends.quantized.engine = "onednn"
    m = torch_models.RobertaEncoder(folder)
    prompts = read_prompts(path)
    engines = [("f32", m)]
    if "--int8" in sys.argv:
        engines.append(("int8", torch.quantization.quantize_dynamic(copy.deepcopy(m), {torch.nn.Linear}, dtype=torch.qint8)))
    H = m.word.shape[1]
    runs = {}
    for name, mod in engines:  # warm-up: the shortest prompt
        one_pass(mod, prompts[:1], 1, m.pad, None)
    for rep in range(reps):
        for name, mod in engines:
            for B in blist:
                z = np.zeros((len(prompts), H), dtype="<f4") if rep == 0 and out_prefix else None
                t0, c0 = time.perf_counter(), time.process_time()
                one_pass(mod, prompts, B, m.pad, z)
                runs.setdefault((name, B), []).append((time.perf_counter() - t0, time.process_time() - c0))
                if z is not None:
                    z.tofile("%s-%s-%d.f32" % (out_prefix, name, B))
    for (name, B), v in runs.items():
        wall, cpu = [w for w, _ in v], [c for _, c in v]
        med = statistics.median(wall)
        print("result engine=torch dtype=%s threads=%d batch=%d prompts=%d utt_per_s=%.3f median_s=%.3f min_s=%.3f "
              "cpu_median_s=%.3f runs=%s" % (name, threads, B, len(prompts), len(prompts) / med, med, min(wall),
                                             statistics.median(cpu), ",".join("%.3f" % w for w in wall)), flush=True)


if __name__ == "__main__":
    main()
