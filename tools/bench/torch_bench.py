#!/usr/bin/python3
"""torch_bench.py roberta|clip HF_FOLDER INPUT THREADS REPS WARMUP [OUT_PREFIX]

Times PyTorch f32 and dynamic int8 (torch.quantization.quantize_dynamic on every nn.Linear, the
oneDNN engine: VNNI integer dot products where the CPU has them) on one input, round-robin, and
prints "result engine=torch ..." lines. Run it with OPENBLAS_CORETYPE=SKYLAKEX OMP_WAIT_POLICY=PASSIVE
OPENBLAS_NUM_THREADS=THREADS and without OPENBLAS_L2_SIZE (Debian's OpenBLAS otherwise picks its
AVX2 kernels and fights torch's own threads). Writes the first outputs to OUT_PREFIX-{f32,int8}.f32."""
import copy
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_models  # noqa: E402


def main():
    kind, folder, inp, threads, reps, warm = sys.argv[1:7]
    out_prefix = sys.argv[7] if len(sys.argv) > 7 else None
    threads, reps, warm = int(threads), int(reps), int(warm)
    torch.set_num_threads(threads)
    torch.set_grad_enabled(False)
    if "onednn" in torch.backends.quantized.supported_engines:
        torch.backends.quantized.engine = "onednn"
    if kind == "roberta":
        m = torch_models.RobertaEncoder(folder)
        ids = [int(t) for t in open(inp).read().split()]
        x = torch.tensor([ids], dtype=torch.int64)
    else:
        m = torch_models.ClipVision(folder)
        px = np.fromfile(inp, dtype="<f4")
        S = int(round((px.size / 3) ** 0.5))
        x = torch.from_numpy(px.copy()).reshape(1, 3, S, S)
    q = torch.quantization.quantize_dynamic(copy.deepcopy(m), {torch.nn.Linear}, dtype=torch.qint8)
    engines = [("f32", m, [], []), ("int8", q, [], [])]
    for name, mod, _, _ in engines:
        for i in range(warm):
            y = mod(x)
            if i == 0 and out_prefix:
                y.detach().numpy().astype("<f4").tofile("%s-%s.f32" % (out_prefix, name))
    for _ in range(reps):
        for name, mod, wall, cpu in engines:
            t0, c0 = time.perf_counter(), time.process_time()
            mod(x)
            wall.append(1e3 * (time.perf_counter() - t0))
            cpu.append(1e3 * (time.process_time() - c0))
    for name, _, wall, cpu in engines:
        print("result engine=torch dtype=%s threads=%d median_ms=%.3f min_ms=%.3f cpu_median_ms=%.3f cpu_min_ms=%.3f "
              "engine_q=%s runs=%s" % (name, threads, statistics.median(wall), min(wall), statistics.median(cpu),
                                       min(cpu), torch.backends.quantized.engine,
                                       ",".join("%.3f" % w for w in wall)), flush=True)


if __name__ == "__main__":
    main()
