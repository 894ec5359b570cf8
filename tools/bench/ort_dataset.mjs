// node tools/bench/ort_dataset.mjs MODEL.onnx PROMPTS THREADS REPS BATCHES [OUT_PREFIX]
// ONNX Runtime (CPU, sequential execution, all graph optimisations) on the dataset job: the
// prompts of tools/bench/dataset.c ("MASK_POS ID ID ..." a line) sorted by length and cut into
// padded batches of B (pad id 1, mask 0 on padding) for each B in BATCHES (e.g. 8,16,32), REPS
// passes each, round-robin, through the graph of export_onnx.py roberta-batch (inputs ids, mask
// [B, T]). Prints "result engine=ort dtype=f32 threads=T batch=B prompts=N utt_per_s=...
// median_s=... min_s=... cpu_median_s=... runs=..." and writes each B's <mask> rows ([n][hidden]
// f32, the file's order) to OUT_PREFIX-B.f32. onnxruntime-node: from ORT_NODE_MODULES or the usual places.
import { createRequire } from 'module';
import fs from 'fs';
import path from 'path';

const req = createRequire(process.env.ORT_NODE_MODULES ? path.join(process.env.ORT_NODE_MODULES, 'x.js') : import.meta.url);
const ort = req('onnxruntime-node');
const [model, input, threadsS, repsS, batchS, outPrefix] = process.argv.slice(2);
const threads = parseInt(threadsS), reps = parseInt(repsS), blist = batchS.split(',').map((s) => parseInt(s));
const PAD = 1n;

const prompts = fs.readFileSync(input, 'utf8').split('\n').map((l) => l.trim().split(/\s+/).map((s) => parseInt(s)))
  .filter((v) => v.length > 1).map((v) => ({ mask: v[0], ids: v.slice(1) }));
const order = prompts.map((_, i) => i).sort((a, b) => prompts[a].ids.length - prompts[b].ids.length || a - b);

function batches(B) {
  const out = [];
  for (let s = 0; s < order.length; s += B) {
    const idx = order.slice(s, s + B), T = Math.max(...idx.map((i) => prompts[i].ids.length));
    const ids = new BigInt64Array(idx.length * T).fill(PAD), mask = new BigInt64Array(idx.length * T);
    idx.forEach((i, r) => prompts[i].ids.forEach((t, j) => { ids[r * T + j] = BigInt(t); mask[r * T + j] = 1n; }));
    out.push({ idx, T, feeds: { ids: new ort.Tensor('int64', ids, [idx.length, T]), mask: new ort.Tensor('int64', mask, [idx.length, T]) } });
  }
  return out;
}

const s = await ort.InferenceSession.create(model, {
  intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all',
});
const now = () => Number(process.hrtime.bigint()) / 1e9;
const cpuNow = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };
const plans = blist.map((B) => ({ B, list: batches(B), wall: [], cpu: [] }));
await s.run(batches(1)[0].feeds);   // warm-up: the shortest prompt
for (let rep = 0; rep < reps; rep++) {
  for (const p of plans) {
    const t0 = now(), c0 = cpuNow();
    let z = null;
    for (const b of p.list) {
      const r = await s.run(b.feeds);
      if (rep === 0 && outPrefix) {
        const h = r[s.outputNames[0]].data, H = h.length / (b.idx.length * b.T);
        if (!z) z = new Float32Array(prompts.length * H);
        b.idx.forEach((i, row) => {
          const mp = prompts[i].mask >= 0 && prompts[i].mask < prompts[i].ids.length ? prompts[i].mask : 0;
          z.set(h.subarray((row * b.T + mp) * H, (row * b.T + mp + 1) * H), i * H);
        });
      }
    }
    p.wall.push(now() - t0);
    p.cpu.push(cpuNow() - c0);
    if (z) fs.writeFileSync(`${outPrefix}-${p.B}.f32`, Buffer.from(z.buffer));
  }
}
const med = (v) => { const q = [...v].sort((a, b) => a - b); const n = q.length; return n % 2 ? q[(n - 1) / 2] : (q[n / 2 - 1] + q[n / 2]) / 2; };
for (const p of plans) {
  console.log(`result engine=ort dtype=f32 threads=${threads} batch=${p.B} prompts=${prompts.length} ` +
              `utt_per_s=${(prompts.length / med(p.wall)).toFixed(3)} median_s=${med(p.wall).toFixed(3)} min_s=${Math.min(...p.wall).toFixed(3)} ` +
              `cpu_median_s=${med(p.cpu).toFixed(3)} runs=${p.wall.map((w) => w.toFixed(3)).join(',')}`);
}
