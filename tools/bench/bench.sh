#!/bin/sh
# make bench: writes random-weight files shaped like RoBERTa-large and CLIP ViT-B/32's vision tower
# (f32, f32p = f32 in panels of 16 rows, q8_0, q4_0; tools/bench/make_weights.c) into $B/bench/ once, then times one linear layer
# (128 x 1024 x 4096) and the two encoders with build/mmspcl bench.
# THREADS (default 1), REPS (default 10) and SEQ (default 128) can be set in the environment.
# The side-by-side comparison with ONNX Runtime and PyTorch is tools/bench/compare.py.
set -e
B=${B:-build}
D=$B/bench
T=${THREADS:-1}
R=${REPS:-10}
mkdir -p "$D"
for m in roberta clip; do
    for t in f32 f32p q8_0 q4_0; do
        if [ ! -f "$D/$m-$t.mmw" ]; then
            echo "writing $D/$m-$t.mmw (random weights)"
            "$B/bench-make-weights" "$m" "$t" "$D/$m-$t.mmw"
        fi
    done
done
for t in f32 f32p q8_0 q4_0; do
    echo "== one linear layer, $t weights"
    "$B/mmspcl" bench -m "$D/roberta-$t.mmw" --matmul --threads "$T" --reps "$R"
done
for t in f32 f32p q8_0 q4_0; do
    echo "== RoBERTa-large shape, batch 1, ${SEQ:-128} tokens, $t"
    "$B/mmspcl" bench -m "$D/roberta-$t.mmw" --seq "${SEQ:-128}" --threads "$T" --reps "$R"
done
for t in f32 f32p q8_0 q4_0; do
    echo "== CLIP ViT-B/32 vision tower, one 224 x 224 image, $t"
    "$B/mmspcl" bench -m "$D/clip-$t.mmw" --image --threads "$T" --reps "$R"
done
