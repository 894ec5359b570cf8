#!/usr/bin/python3
"""mmspcl against ONNX Runtime and PyTorch on the same weights and inputs, side by side.

  tools/bench/compare.py [--rounds R] [--reps N] [--threads 1,2] [--models roberta,clip] [--dir D]
                         [--no-torch] [--no-ort] [--accuracy N]

Steps (each skipped when its output is already there):
  1. random-weight checkpoints in Hugging Face layout: RoBERTa-large shape (24 layers, hidden 1024,
     16 heads, FFN 4096) and CLIP ViT-B/32's vision tower, written by tools/reference/roberta_ref.py
     --large and clip_ref.py --large into /tmp/mmspcl-ref/ (RoBERTa-large takes minutes);
  2. the same weights as mmspcl files (f32, q8_0, q4_0; build/mmspcl-convert) and as ONNX
     (tools/bench/export_onnx.py: torch.onnx.export, opset 13) in D (default /tmp/mmspcl-bench);
  3. onnxruntime-node installed into D/ort with npm (ONNXRUNTIME_NODE_INSTALL_CUDA=skip);
  4. one input per model: 128 token ids (<s>, random ids, <mask>, </s>) and one 224 x 224 image;
  5. R rounds; each round runs every engine once (N timed runs after 2 warm-up runs, each engine
     in its own process): mmspcl f32 / q8_0 / q4_0 (OMP_WAIT_POLICY=PASSIVE), ONNX Runtime f32 (its
     default thread pool), PyTorch f32 and dynamic int8
     (quantize_dynamic on nn.Linear; oneDNN engine), for each thread count; PyTorch runs with
     OpenBLAS (OPENBLAS_CORETYPE=SKYLAKEX OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=threads, the
     environment's OPENBLAS_L2_SIZE removed; when the system BLAS is the reference one, Debian's
     libopenblas0-pthread is fetched with apt-get download into D and put on LD_LIBRARY_PATH);
  6. the outputs are checked against PyTorch f32 (cosine of the <mask> row / the class token) and
     q8_0 / q4_0 against f32 over --accuracy (default 100) inputs with tools/bench/accuracy.c.
--dataset (issue 19, items 5-6): instead, the SPCL prompts of MELD test (tools/bench/dataset.c
prompts; every --every-th utterance, lengths up to 256) through the RoBERTa-large checkpoint:
mmspcl (dataset.c run: sorted prompts in length buckets of <= --tokens tokens, packed, no work on
padding, only the <mask> rows through the last layer; --dtypes f32,q8_0; --block B: every --every-th run of B
prompts sorted by length, so that batches pad as on the whole split), ONNX Runtime (tools/bench/ort_dataset.mjs on export_onnx.py's
roberta-batch graph) and PyTorch (tools/bench/torch_dataset.py), both fed sorted, padded batches
of each of --batches; --reps passes each per round, engines interleaved; utterances per second
(median over the passes), ratios to ONNX Runtime's best batching, <mask> rows vs PyTorch f32.
Written to D/dataset-results.md.
Prints a table (median over all timed runs, min, CPU time) with ratios to ONNX Runtime and to
PyTorch int8, and writes it as Markdown to D/results.md. Wall times suffer from other processes on
a shared machine; CPU time (all threads of the process) much less, so both are shown.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
REF = "/tmp/mmspcl-ref"
PY = "/usr/bin/python3"
MASK_ID = 50264
# mmspcl's weight files: f32p is f32 with the Linear weights in panels of 16 rows (--panels)
MMSPCL_TYPES = ("f32", "f32p", "q8_0", "q4_0")
CONVERT_ARGS = {"f32": ["--type", "f32"], "f32p": ["--type", "f32", "--panels"], "q8_0": ["--type", "q8_0"],
                "q4_0": ["--type", "q4_0"]}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(cmd, env=None, cwd=ROOT):
    log("  $ " + " ".join(cmd))
    p = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        log(p.stdout[-4000:] + p.stderr[-4000:])
        raise SystemExit("failed: %s" % " ".join(cmd))
    return p.stdout


def results(out):
    rows = []
    for line in out.splitlines():
        if line.startswith("result "):
            rows.append(dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv))
    return rows


def prepare(a):
    D = a.dir
    os.makedirs(D, exist_ok=True)
    run(["make", "-s", "build/mmspcl", "build/mmspcl-convert", "build/libmmspcl.a"])
    run(["cc", "-std=c99", "-O2", "-fopenmp", "-I.", "tools/bench/accuracy.c", "build/libmmspcl.a", "-o",
         os.path.join(D, "accuracy"), "-lm"])
    srcs = {"roberta": os.path.join(REF, "roberta-large"), "clip": os.path.join(REF, "clip-vit-b32")}
    for m in a.models:
        if not os.path.exists(os.path.join(srcs[m], "model.safetensors")):
            script = "roberta_ref.py" if m == "roberta" else "clip_ref.py"
            log("writing the %s reference checkpoint (this takes minutes)" % m)
            run([PY, os.path.join(ROOT, "tools/reference", script), "--large"])
        for dt in MMSPCL_TYPES:
            out = os.path.join(D, "%s-%s.mmw" % (m, dt))
            if not os.path.exists(out):
                run([os.path.join(ROOT, "build/mmspcl-convert"), srcs[m], out, "--quiet"] + CONVERT_ARGS[dt])
        onnx = os.path.join(D, "%s.onnx" % m)
        if not a.no_ort and not os.path.exists(onnx):
            args = [PY, os.path.join(ROOT, "tools/bench/export_onnx.py"), m, srcs[m], onnx]
            run(args + (["128"] if m == "roberta" else []))
    if not a.no_ort and not os.path.exists(os.path.join(D, "ort/node_modules/onnxruntime-node")):
        os.makedirs(os.path.join(D, "ort"), exist_ok=True)
        env = dict(os.environ, ONNXRUNTIME_NODE_INSTALL_CUDA="skip")
        run(["npm", "install", "--no-audit", "--no-fund", "onnxruntime-node"], env=env, cwd=os.path.join(D, "ort"))
    r = np.random.RandomState(9)
    ids = [0] + list(r.randint(3, MASK_ID, size=125)) + [MASK_ID, 2]
    with open(os.path.join(D, "ids128.txt"), "w") as f:
        f.write(" ".join(str(int(i)) for i in ids) + "\n")
    (r.rand(3, 224, 224) * 4 - 2).astype("<f4").tofile(os.path.join(D, "pixels.f32"))
    return srcs


def openblas_dir(D):
    """A folder holding OpenBLAS's libblas.so.3 for PyTorch (Debian's torch calls the system BLAS,
    which may be the slow reference one). Installed OpenBLAS if any, else libopenblas0-pthread
    fetched with apt-get download and unpacked into D (the system is not changed)."""
    for d in ("/usr/lib/x86_64-linux-gnu/openblas-pthread", "/usr/lib/aarch64-linux-gnu/openblas-pthread"):
        if os.path.exists(os.path.join(d, "libblas.so.3")):
            return d
    root = os.path.join(D, "openblas")
    found = [os.path.join(r, "libblas.so.3") for r, _, f in os.walk(root) if "libblas.so.3" in f]
    if not found:
        os.makedirs(root, exist_ok=True)
        run(["apt-get", "download", "libopenblas0-pthread"], cwd=root)
        deb = [f for f in os.listdir(root) if f.endswith(".deb")][0]
        run(["dpkg", "-x", deb, "root"], cwd=root)
        found = [os.path.join(r, "libblas.so.3") for r, _, f in os.walk(root) if "libblas.so.3" in f]
    return os.path.dirname(found[0])


def openblas_coretype():
    """SKYLAKEX where the CPU has AVX-512 (the kernels OpenBLAS would not pick by itself), else
    HASWELL (AVX2): SKYLAKEX on an AVX2-only CPU dies of an illegal instruction."""
    cpu = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    return "SKYLAKEX" if " avx512f" in cpu else "HASWELL"


def time_round(a, m, src, table, first):
    D = a.dir
    inp = os.path.join(D, "ids128.txt" if m == "roberta" else "pixels.f32")
    for t in a.threads:
        for dt in MMSPCL_TYPES:
            cmd = [os.path.join(ROOT, "build/mmspcl"), "bench", "-m", os.path.join(D, "%s-%s.mmw" % (m, dt)),
                   "--threads", str(t), "--reps", str(a.reps), "--warmup", "2"]
            cmd += ["--ids", inp, "--seq", "128"] if m == "roberta" else ["--pixels", inp]
            if first:
                cmd += ["--out", os.path.join(D, "out-%s-mmspcl-%s-%d.f32" % (m, dt, t))]
            # passive waiting: on a shared, busy machine spinning OpenMP threads burn the time
            # slices the other thread needs (PyTorch below runs the same way)
            env = dict(os.environ, OMP_NUM_THREADS=str(t), OMP_WAIT_POLICY="PASSIVE")
            for row in results(run(cmd, env=env)):
                table.setdefault(("mmspcl", dt, t), []).append(row)
    if not a.no_ort:
        env = dict(os.environ, ORT_NODE_MODULES=os.path.join(D, "ort/node_modules"))
        cmd = ["node", os.path.join(ROOT, "tools/bench/ort_bench.mjs"), os.path.join(D, "%s.onnx" % m), m, inp,
               ",".join(str(t) for t in a.threads), str(a.reps), "2", os.path.join(D, "out-%s-ort" % m)]
        for row in results(run(cmd, env=env)):
            table.setdefault(("onnxruntime", "f32", int(row["threads"])), []).append(row)
    if not a.no_torch:
        for t in a.torch_threads:
            env = dict(os.environ)
            env.pop("OPENBLAS_CORETYPE", None)
            env.pop("OPENBLAS_L2_SIZE", None)
            env.update(OPENBLAS_CORETYPE=openblas_coretype(), OMP_WAIT_POLICY="PASSIVE", OPENBLAS_NUM_THREADS=str(t),
                       OMP_NUM_THREADS=str(t), LD_LIBRARY_PATH=a.openblas)
            cmd = [PY, os.path.join(ROOT, "tools/bench/torch_bench.py"), m, src, inp, str(t), str(a.reps), "2",
                   os.path.join(D, "out-%s-torch-%d" % (m, t))]
            for row in results(run(cmd, env=env)):
                table.setdefault(("pytorch", row["dtype"], t), []).append(row)


def summarize(rows):
    runs = []
    for r in rows:
        if "runs" in r:
            runs += [float(x) for x in r["runs"].split(",")]
    med = statistics.median(runs) if runs else statistics.median(float(r["median_ms"]) for r in rows)
    return dict(median=med, min=min(float(r["min_ms"]) for r in rows),
                cpu_median=statistics.median(float(r["cpu_median_ms"]) for r in rows),
                cpu_min=min(float(r["cpu_min_ms"]) for r in rows),
                round_medians=[float(r["median_ms"]) for r in rows])


def cosine(x, y):
    return float(np.dot(x, y) / np.sqrt(np.dot(x, x) * np.dot(y, y)))


def agreement(a, m):
    D, H = a.dir, (1024 if m == "roberta" else 768)
    ref_path = os.path.join(D, "out-%s-torch-%d-f32.f32" % (m, a.torch_threads[0]))
    if not os.path.exists(ref_path):
        return {}
    pick = (lambda v: v.reshape(-1, H)[-2]) if m == "roberta" else (lambda v: v.reshape(-1, H)[0])
    ref = pick(np.fromfile(ref_path, dtype="<f4"))
    out = {}
    for name in sorted(os.listdir(D)):
        if name.startswith("out-%s-" % m) and name.endswith(".f32"):
            out[name[len("out-%s-" % m):-4]] = cosine(ref, pick(np.fromfile(os.path.join(D, name), dtype="<f4")))
    return out


# ---- --dataset: the MELD test prompts through RoBERTa-large, utterances per second ------------
MELD_TEST = os.path.join(ROOT, "..", "shared", "data", "meld", "test_sent_emo.csv")


def prepare_dataset(a):
    D = a.dir
    os.makedirs(D, exist_ok=True)
    run(["make", "-s", "build/mmspcl", "build/mmspcl-convert", "build/libmmspcl.a"])
    run(["cc", "-std=c99", "-O2", "-fopenmp", "-I.", "tools/bench/dataset.c", "build/libmmspcl.a", "-o",
         os.path.join(D, "dataset"), "-lm", "-pthread"])
    src = os.path.join(REF, "roberta-large")
    if not os.path.exists(os.path.join(src, "model.safetensors")):
        log("writing the RoBERTa-large reference checkpoint (this takes minutes)")
        run([PY, os.path.join(ROOT, "tools/reference/roberta_ref.py"), "--large"])
    for dt in a.dtypes:
        out = os.path.join(D, "roberta-%s.mmw" % dt)
        if not os.path.exists(out):
            run([os.path.join(ROOT, "build/mmspcl-convert"), src, out, "--quiet"] + CONVERT_ARGS.get(dt, ["--type", dt]))
    onnx = os.path.join(D, "roberta-batch.onnx")
    if not a.no_ort and not os.path.exists(onnx):
        run([PY, os.path.join(ROOT, "tools/bench/export_onnx.py"), "roberta-batch", src, onnx])
    if not a.no_ort and not os.path.exists(os.path.join(D, "ort/node_modules/onnxruntime-node")):
        os.makedirs(os.path.join(D, "ort"), exist_ok=True)
        env = dict(os.environ, ONNXRUNTIME_NODE_INSTALL_CUDA="skip")
        run(["npm", "install", "--no-audit", "--no-fund", "onnxruntime-node"], env=env, cwd=os.path.join(D, "ort"))
    prompts = os.path.join(D, "prompts-every%d%s.txt" % (a.every, "-block%d" % a.block if a.block else ""))
    if not os.path.exists(prompts):
        run([os.path.join(D, "dataset"), "prompts", a.prompt_tokenizer, a.meld,
             str(a.every), prompts] + ([str(a.block)] if a.block else []))
    return src, prompts


def dataset_round(a, src, prompts, table, first):
    D = a.dir
    for t in a.threads:
        for dt in a.dtypes:
            cmd = [os.path.join(D, "dataset"), "run", os.path.join(D, "roberta-%s.mmw" % dt), prompts, str(t),
                   str(a.reps), str(a.tokens)] + ([os.path.join(D, "z-mmspcl-%s-%d.f32" % (dt, t))] if first else [])
            for row in results(run(cmd)):
                table.setdefault(("mmspcl", dt, t, "buckets"), []).append(row)
        if not a.no_ort:
            env = dict(os.environ, ORT_NODE_MODULES=os.path.join(D, "ort/node_modules"))
            cmd = ["node", os.path.join(ROOT, "tools/bench/ort_dataset.mjs"), os.path.join(D, "roberta-batch.onnx"),
                   prompts, str(t), str(a.reps), a.batches] + ([os.path.join(D, "z-ort-%d" % t)] if first else [])
            for row in results(run(cmd, env=env)):
                table.setdefault(("onnxruntime", "f32", t, row["batch"]), []).append(row)
        if not a.no_torch:
            env = dict(os.environ)
            env.pop("OPENBLAS_CORETYPE", None)
            env.pop("OPENBLAS_L2_SIZE", None)
            env.update(OPENBLAS_CORETYPE=openblas_coretype(), OMP_WAIT_POLICY="PASSIVE", OPENBLAS_NUM_THREADS=str(t),
                       OMP_NUM_THREADS=str(t), LD_LIBRARY_PATH=a.openblas)
            cmd = [PY, os.path.join(ROOT, "tools/bench/torch_dataset.py"), src, prompts, str(t), str(a.reps),
                   a.batches] + ([os.path.join(D, "z-torch-%d" % t)] if first else []) + (["--int8"] if a.torch_int8 else [])
            for row in results(run(cmd, env=env)):
                table.setdefault(("pytorch", row["dtype"], t, row["batch"]), []).append(row)


def dataset_agreement(a, n):
    """cosine of every engine's <mask> rows with PyTorch f32's (first batch size, first thread count)"""
    D = a.dir
    ref = os.path.join(D, "z-torch-%d-f32-%s.f32" % (a.threads[0], a.batches.split(",")[0]))
    if not os.path.exists(ref):
        return {}
    R = np.fromfile(ref, dtype="<f4").reshape(n, -1)
    out = {}
    for name in sorted(os.listdir(D)):
        if name.startswith("z-") and name.endswith(".f32") and os.path.join(D, name) != ref:
            Z = np.fromfile(os.path.join(D, name), dtype="<f4").reshape(n, -1)
            c = [cosine(R[i], Z[i]) for i in range(n)]
            out[name[2:-4]] = (float(np.mean(c)), float(np.min(c)))
    return out


def dataset_main(a):
    src, prompts = prepare_dataset(a)
    n = sum(1 for _ in open(prompts))
    a.openblas = "" if a.no_torch else openblas_dir(a.dir)
    table, t0 = {}, time.time()
    load0 = open("/proc/loadavg").read().split()[:3]
    for r in range(a.rounds):
        log("dataset round %d/%d" % (r + 1, a.rounds))
        dataset_round(a, src, prompts, table, r == 0)
    S = {}
    for k, rows in table.items():
        runs = [float(x) for row in rows for x in row["runs"].split(",")]
        S[k] = dict(ups=n / statistics.median(runs), med=statistics.median(runs),
                    cpu=statistics.median(float(row["cpu_median_s"]) for row in rows))
    best = {}
    for (e, dt, t, b), v in S.items():
        if (e, dt, t) not in best or v["ups"] > S[best[(e, dt, t)]]["ups"]:
            best[(e, dt, t)] = (e, dt, t, b)
    cpu = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    model_name = re.search(r"model name\s*:\s*(.*)", cpu)
    lens = [len(l.split()) - 1 for l in open(prompts)]
    lines = ["machine: %s, %d CPUs; load average before %s, after %s; %d rounds x %d passes; %.0f s" % (
        model_name.group(1) if model_name else "?", os.cpu_count(), load0, open("/proc/loadavg").read().split()[:3],
        a.rounds, a.reps, time.time() - t0),
        "", "%d prompts (MELD test, %s; %d tokens, %.1f a prompt on average, longest %d)" % (
            n, "every %d-th run of %d prompts sorted by length" % (a.every, a.block) if a.block else
            "every %d-th utterance" % a.every, sum(lens), sum(lens) / n, max(lens)), "",
        "| engine | weights | threads | batching | utterances/s | median s a pass | CPU s | vs ORT f32 best (same threads) |",
        "|---|---|---|---|---|---|---|---|"]
    for k in sorted(S, key=lambda k: (k[2], ["mmspcl", "onnxruntime", "pytorch"].index(k[0]), k[1], str(k[3]))):
        v, o = S[k], best.get(("onnxruntime", "f32", k[2]))
        ratio = "%.2f" % (v["ups"] / S[o]["ups"]) if o else "-"
        batching = "length buckets <= %d tokens" % a.tokens if k[3] == "buckets" else "sorted, padded, %s a batch" % k[3]
        star = " (best)" if best.get(k[:3]) == k and k[0] != "mmspcl" else ""
        lines.append("| %s | %s | %d | %s%s | %.2f | %.1f | %.1f | %s |" % (k[0], k[1], k[2], batching, star, v["ups"],
                                                                            v["med"], v["cpu"], ratio))
    ag = dataset_agreement(a, n)
    if ag:
        lines += ["", "<mask> rows vs PyTorch f32 (mean / min cosine over the prompts): " +
                  ", ".join("%s %.6f / %.6f" % (k, m, mn) for k, (m, mn) in sorted(ag.items()))]
    for t in a.threads:
        o = best.get(("onnxruntime", "f32", t))
        if o and ("mmspcl", "f32", t) in best:
            lines.append("- %d thread(s): mmspcl f32 / ORT f32 (best batching) throughput = %.2f (bar >= 1.3)" % (
                t, S[best[("mmspcl", "f32", t)]]["ups"] / S[o]["ups"]))
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(a.dir, "dataset-results.md"), "w") as f:
        f.write(text + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--torch-threads", default="1")
    ap.add_argument("--models", default="roberta,clip")
    ap.add_argument("--dir", default=os.environ.get("MMSPCL_BENCH_DIR", "/tmp/mmspcl-bench"))
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-ort", action="store_true")
    ap.add_argument("--accuracy", type=int, default=100)
    ap.add_argument("--dataset", action="store_true", help="the MELD test prompts instead (see the docstring)")
    ap.add_argument("--every", type=int, default=40, help="--dataset: every N-th prompt of MELD test")
    ap.add_argument("--tokens", type=int, default=512, help="--dataset: mmspcl's bucket size in tokens")
    ap.add_argument("--block", type=int, default=0, help="--dataset: keep every --every-th run of BLOCK prompts sorted "
                    "by length instead of every --every-th utterance (batches of BLOCK or a divisor pad as on the whole split)")
    ap.add_argument("--batches", default="8,16,32", help="--dataset: ORT / PyTorch batch sizes")
    ap.add_argument("--dtypes", default="f32,q8_0", help="--dataset: mmspcl weight types")
    ap.add_argument("--torch-int8", action="store_true", help="--dataset: PyTorch dynamic int8 rows too")
    ap.add_argument("--meld", default=MELD_TEST)
    ap.add_argument("--prompt-tokenizer", default=os.path.join(ROOT, "weights/meld-text-q8_0.mmw"),
                    help="--dataset: the weight file whose tokenizer builds the prompts (the recorded runs of "
                         "docs/PERFORMANCE.md used `git show 7b44b3a:weights/meld-text-q8_0.mmw`: 96 prompts, 11,043 tokens)")
    a = ap.parse_args()
    a.threads = [int(t) for t in a.threads.split(",")]
    if a.dataset:
        a.dtypes = a.dtypes.split(",")
        return dataset_main(a)
    a.torch_threads = [int(t) for t in a.torch_threads.split(",")]
    a.models = a.models.split(",")
    srcs = prepare(a)
    a.openblas = "" if a.no_torch else openblas_dir(a.dir)
    tables = {m: {} for m in a.models}
    t0 = time.time()
    for r in range(a.rounds):
        for m in a.models:
            log("round %d/%d: %s" % (r + 1, a.rounds, m))
            time_round(a, m, srcs[m], tables[m], r == 0)
    acc = {}
    for m in a.models:
        for dt in ("q8_0", "q4_0"):
            if a.accuracy > 0:
                out = run([os.path.join(a.dir, "accuracy"), m, os.path.join(a.dir, "%s-f32.mmw" % m),
                           os.path.join(a.dir, "%s-%s.mmw" % (m, dt)), str(a.accuracy)],
                          env=dict(os.environ, OMP_NUM_THREADS="2"))
                acc[(m, dt)] = results(out)[0]
    lines = []
    cpu = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    model_name = re.search(r"model name\s*:\s*(.*)", cpu)
    lines.append("machine: %s, %d CPUs; load average before/after: %s; %d rounds x %d timed runs per engine (%.0f s)"
                 % (model_name.group(1) if model_name else "?", os.cpu_count(),
                    open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else "?",
                    a.rounds, a.reps, time.time() - t0))
    for m in a.models:
        T = tables[m]
        S = {k: summarize(v) for k, v in T.items()}
        title = "RoBERTa-large shape, batch 1, 128 tokens" if m == "roberta" else "CLIP ViT-B/32 vision tower, one 224x224 image"
        lines.append("")
        lines.append("### " + title)
        lines.append("")
        lines.append("| engine | weights | threads | median ms | min ms | CPU ms (median) | vs ORT f32 (median / CPU) | vs PyTorch int8 1 thread (median / CPU) |")
        lines.append("|---|---|---|---|---|---|---|---|")
        ti = S.get(("pytorch", "int8", 1))
        for k in sorted(S, key=lambda k: (k[2], ["mmspcl", "onnxruntime", "pytorch"].index(k[0]), k[1])):
            s = S[k]
            ort = S.get(("onnxruntime", "f32", k[2]))
            r1 = "%.2f / %.2f" % (s["median"] / ort["median"], s["cpu_median"] / ort["cpu_median"]) if ort else "-"
            r2 = "%.2f / %.2f" % (s["median"] / ti["median"], s["cpu_median"] / ti["cpu_median"]) if ti else "-"
            lines.append("| %s | %s | %d | %.1f | %.1f | %.1f | %s | %s |" % (k[0], k[1], k[2], s["median"], s["min"],
                                                                             s["cpu_median"], r1, r2))
        ag = agreement(a, m)
        if ag:
            lines.append("")
            lines.append("Output vs PyTorch f32 (cosine of the %s): %s" % (
                "<mask> row" if m == "roberta" else "class token",
                ", ".join("%s %.6f" % (k, v) for k, v in sorted(ag.items()))))
        for dt in ("q8_0", "q4_0"):
            if (m, dt) in acc:
                r = acc[(m, dt)]
                lines.append("")
                lines.append("%s vs f32 over %s inputs: mean cosine %s, min %s" % (dt, r["inputs"], r["mean_cos"], r["min_cos"]))
        bars = []
        mm = lambda dt: S.get(("mmspcl", dt, 1))
        for dt in ("f32", "f32p"):
            if mm(dt) and ("onnxruntime", "f32", 1) in S:
                o = S[("onnxruntime", "f32", 1)]
                bars.append("%s / ORT f32 (1 thread): %.2f (median), %.2f (CPU), %.2f (min); bar <= 1.0" % (
                    dt, mm(dt)["median"] / o["median"], mm(dt)["cpu_median"] / o["cpu_median"], mm(dt)["min"] / o["min"]))
        if m == "roberta" and ti:
            for dt, bar in (("q8_0", 1.3), ("q4_0", 1.5)):
                if mm(dt):
                    bars.append("%s / PyTorch int8 (1 thread): %.2f (median), %.2f (CPU); bar <= %.1f" % (dt, mm(dt)["median"] / ti["median"], mm(dt)["cpu_median"] / ti["cpu_median"], bar))
        if bars:
            lines.append("")
            lines += ["- " + b for b in bars]
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(a.dir, "results.md"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
