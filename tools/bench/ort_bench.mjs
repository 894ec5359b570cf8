// node tools/bench/ort_bench.mjs MODEL.onnx roberta|clip INPUT THREADS[,THREADS...] REPS WARMUP [OUT_PREFIX]
// Times ONNX Runtime (CPU, sequential execution, all graph optimisations) on one input:
// roberta: INPUT is a text file of token ids (batch 1); clip: raw float32 pixels [1, 3, S, S].
// One session per thread count, timed round-robin; prints "result engine=ort ..." lines and
// writes the first run's output to OUT_PREFIX-THREADS.f32. The onnxruntime-node package is
// looked up in ORT_NODE_MODULES (a node_modules folder) or the usual places.
import { createRequire } from 'module';
import fs from 'fs';
import path from 'path';

const req = createRequire(process.env.ORT_NODE_MODULES ? path.join(process.env.ORT_NODE_MODULES, 'x.js') : import.meta.url);
const ort = req('onnxruntime-node');
const [model, kind, input, threadList, repsS, warmS, outPrefix] = process.argv.slice(2);
const reps = parseInt(repsS || '10'), warm = parseInt(warmS || '2');

let feeds;
if (kind === 'roberta') {
  const ids = fs.readFileSync(input, 'utf8').trim().split(/\s+/).map((s) => BigInt(s));
  feeds = { ids: new ort.Tensor('int64', BigInt64Array.from(ids), [1, ids.length]) };
} else {
  const buf = fs.readFileSync(input);
  const px = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
  const S = Math.round(Math.sqrt(px.length / 3));
  feeds = { pixels: new ort.Tensor('float32', Float32Array.from(px), [1, 3, S, S]) };
}

const sessions = [];
for (const t of threadList.split(',').map((s) => parseInt(s))) {
  const s = await ort.InferenceSession.create(model, {
    intraOpNumThreads: t, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all',
  });
  sessions.push({ t, s, wall: [], cpu: [] });
}
const now = () => Number(process.hrtime.bigint()) / 1e6;
const cpuNow = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e3; };
for (const x of sessions) {
  for (let i = 0; i < warm; i++) {
    const r = await x.s.run(feeds);
    if (i === 0 && outPrefix) {
      const o = r[x.s.outputNames[0]].data;
      fs.writeFileSync(`${outPrefix}-${x.t}.f32`, Buffer.from(o.buffer, o.byteOffset, o.byteLength));
    }
  }
}
for (let i = 0; i < reps; i++) {
  for (const x of sessions) {
    const t0 = now(), c0 = cpuNow();
    await x.s.run(feeds);
    x.wall.push(now() - t0);
    x.cpu.push(cpuNow() - c0);
  }
}
const med = (v) => { const s = [...v].sort((a, b) => a - b); const n = s.length; return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2; };
for (const x of sessions) {
  console.log(`result engine=ort dtype=f32 threads=${x.t} median_ms=${med(x.wall).toFixed(3)} min_ms=${Math.min(...x.wall).toFixed(3)} ` +
              `cpu_median_ms=${med(x.cpu).toFixed(3)} cpu_min_ms=${Math.min(...x.cpu).toFixed(3)} runs=${x.wall.join(',')}`);
}
