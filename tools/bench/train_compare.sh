#!/bin/sh
# One training step of mmspcl (build/mmspcl bench --train) against PyTorch
# (tools/bench/torch_train_step.py) at roberta-base shape (12 layers x 768, 12 heads, FFN 3072,
# batch 8 x 128 tokens), the two engines alternating in one run: ROUNDS rounds (default 3), each
# running mmspcl then PyTorch with REPS timed steps (default 2) after WARMUP (default 1).
# THREADS (default 1). Prints every round's medians (wall and CPU time), then the medians over rounds
# and the ratios. CPU time (all threads of the process) is the steadier number on a shared host.
# Debian's torch calls the system libblas.so.3, here the reference BLAS; as tools/bench/compare.py
# does, libopenblas0-pthread is fetched with apt-get download into $B/bench/openblas and put on
# LD_LIBRARY_PATH (the system is not changed). Needs build/mmspcl and build/bench-make-weights.
set -e
B=${B:-build}
D=$B/bench
T=${THREADS:-1}
R=${ROUNDS:-3}
N=${REPS:-2}
W=${WARMUP:-1}
SEQ=${SEQ:-128}
BATCH=${BATCH:-8}
M=$D/roberta-base-f32.mmw
mkdir -p "$D"
[ -f "$M" ] || "$B/bench-make-weights" roberta-base f32 "$M"
OB=/usr/lib/x86_64-linux-gnu/openblas-pthread
if [ ! -f "$OB/libblas.so.3" ]; then
    OB=$D/openblas/root/usr/lib/x86_64-linux-gnu/openblas-pthread
    if [ ! -f "$OB/libblas.so.3" ]; then
        mkdir -p "$D/openblas"
        (cd "$D/openblas" && apt-get download libopenblas0-pthread && dpkg -x libopenblas0-pthread_*.deb root)
    fi
fi
# OpenBLAS core type: SKYLAKEX needs AVX-512 (on an AVX2-only CPU such as Zen 3 it dies with
# SIGILL, "Illegal instruction"); HASWELL is its AVX2 + FMA kernel set. CORETYPE overrides.
CT=${CORETYPE:-$(grep -q avx512f /proc/cpuinfo && echo SKYLAKEX || echo HASWELL)}
ENV="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE=$CT OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=$T OMP_NUM_THREADS=$T"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), OpenBLAS core $CT, threads $T, batch $BATCH x $SEQ, $R rounds x $N steps"
ms=""; ts=""; mc=""; tc=""
i=1
while [ "$i" -le "$R" ]; do
    ra=$($ENV "$B/mmspcl" bench --train -m "$M" --seq "$SEQ" --batch "$BATCH" --threads "$T" --reps "$N" --warmup "$W" | sed -n 's/^result //p')
    rb=$($ENV LD_LIBRARY_PATH="$OB" /usr/bin/python3 tools/bench/torch_train_step.py --seq "$SEQ" --batch "$BATCH" \
            --threads "$T" --reps "$N" --warmup "$W" | sed -n 's/^result //p')
    a=$(echo " $ra" | sed -n 's/.* median_ms=\([0-9.]*\).*/\1/p'); ac=$(echo "$ra" | sed -n 's/.*cpu_median_ms=\([0-9.]*\).*/\1/p')
    b=$(echo "$rb" | sed -n 's/^median_ms=\([0-9.]*\).*/\1/p'); bc=$(echo "$rb" | sed -n 's/.*cpu_median_ms=\([0-9.]*\).*/\1/p')
    echo "round $i: mmspcl $a ms (CPU $ac), torch $b ms (CPU $bc), ratio $(echo "$a $b" | awk '{printf "%.3f", $1 / $2}') (CPU $(echo "$ac $bc" | awk '{printf "%.3f", $1 / $2}'))"
    ms="$ms $a"; ts="$ts $b"; mc="$mc $ac"; tc="$tc $bc"
    i=$((i + 1))
done
med() { echo "$@" | tr ' ' '\n' | sed '/^$/d' | sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
a=$(med $ms); b=$(med $ts); ac=$(med $mc); bc=$(med $tc)
echo "result threads=$T mmspcl_median_ms=$a torch_median_ms=$b ratio=$(echo "$a $b" | awk '{printf "%.3f", $1 / $2}') mmspcl_cpu_ms=$ac torch_cpu_ms=$bc cpu_ratio=$(echo "$ac $bc" | awk '{printf "%.3f", $1 / $2}')"
