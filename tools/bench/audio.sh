#!/bin/sh
# Speed of build/mmspcl encode-audio (docs/AUDIO.md, "Speed"): each feature on 10 minutes of
# speech made by repeating tests/data/audio files (16 kHz mono, and 44.1 kHz stereo, which is
# resampled), on one core. Prints the CPU seconds (user + system: what one core spends, whatever else the
# machine runs), the wall seconds and the multiple of real time. Not part of make test.
#   sh tools/bench/audio.sh [MINUTES]          (after make; B=build by default)
set -e
B=${B:-build}
MIN=${1:-10}
OUT=$B/bench/audio
mkdir -p "$OUT"
python3 - "$OUT" "$MIN" <<'PY'
import sys, wave
out, minutes = sys.argv[1], float(sys.argv[2])
for name in ("speech_m_16k", "speech_44k_stereo"):
    with wave.open(f"tests/data/audio/{name}.wav") as w:
        p, frames = w.getparams(), w.readframes(w.getnframes())
    reps = int(minutes * 60 * p.framerate / p.nframes + 0.5)
    with wave.open(f"{out}/{name}_{int(minutes)}min.wav", "wb") as w:
        w.setparams(p)
        w.writeframes(frames * reps)
PY
for f in "$OUT"/speech_m_16k_"${MIN%.*}"min.wav "$OUT"/speech_44k_stereo_"${MIN%.*}"min.wav; do
  secs=$(python3 -c "import wave,sys; w=wave.open(sys.argv[1]); print(w.getnframes()/w.getframerate())" "$f")
  for feat in egemaps fbank mfcc f0; do
    python3 - "$B/mmspcl" "$f" $feat "$OUT/out.f32" "$secs" <<'PY'
import os, resource, subprocess, sys, time
mm, wav, feat, out, secs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
env = dict(os.environ, OMP_NUM_THREADS="1")
t0 = time.time()
subprocess.run([mm, "encode-audio", "--wav", wav, "--features", feat, "-o", out], check=True, env=env, stderr=subprocess.DEVNULL)
wall = time.time() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = ru.ru_utime + ru.ru_stime
print("%-28s %-8s %6.0f s audio: %6.2f s CPU (%6.2f s wall): %5.0fx real time on one core" % (os.path.basename(wav), feat, secs, cpu, wall, secs / cpu))
PY
  done
done
