#!/bin/sh
# tools/bench/threads.sh: does a default-thread mmspcl job collapse when the machine is busy?
# (issue 19, item 1; docs/PERFORMANCE.md "Threads"). Two workloads:
#   eval    build/mmspcl eval on the shipped classifier (weights/meld-text-q8_0.mmw) and the first
#           $EVAL_ROWS utterances of MELD test ($MELD/test_sent_emo.csv)
#   encode  build/mmspcl encode-text on a roberta-base-shaped random f32 checkpoint
#           (tools/bench/make_weights.c, written once to $B/bench/roberta-base-f32.mmw), 128 ids
# and, per round, in this order (so that host noise hits every case alike):
#   1thr     one job, --threads 1, machine otherwise as it is
#   default  one job, default threads (all usable cores)
#   2jobs    two default-thread jobs started together: the slower one's wall time
#   2x1thr   two --threads 1 jobs started together (the floor for 2jobs: what sharing the
#            machine costs a single thread, caches, memory, the host's other tenants)
#   busy1    --threads 1 while a busy loop (yes > /dev/null) holds a core
#   busy     default threads while the busy loop holds a core
# Prints per case the median wall time over $ROUNDS rounds, then the bars:
#   2jobs / 1thr <= 1.15 and busy / 1thr <= 1.1 (2jobs / 2x1thr and busy / busy1, against the
#   single-thread jobs in the same conditions, also shown).
# NICE=-20 runs everything (the jobs and the busy loop alike) in a session of its own whose
# scheduler autogroup has that niceness (Linux with autogroups gives each session a fair share
# whatever its threads' nice values), so that other tenants of a shared host take little of the
# cores while it measures. Without NICE the numbers include whatever else the host runs.
# WORKLOADS="eval" (or "encode") runs one of the two. MMSPCL=path picks another binary; LEGACY=1 sets the thread count with OMP_NUM_THREADS (for a
# build from before --threads existed: this script then measures the old OpenMP code).
set -e
if [ -n "$NICE" ] && [ -z "$THREADS_SH_NICED" ]; then
    THREADS_SH_NICED=1 exec setsid sh -c 'echo "$NICE" > /proc/self/autogroup 2>/dev/null; exec sh "$0" "$@"' "$0" "$@"
fi
B=${B:-build}
BIN=${MMSPCL:-$B/mmspcl}
ROUNDS=${ROUNDS:-5}
EVAL_ROWS=${EVAL_ROWS:-400}
MELD=${MELD:-../shared/data/meld}
[ -d "$MELD" ] || MELD=/work/shared/data/meld
TMP=${TMPDIR:-/tmp}/mmspcl-threads.$$
mkdir -p "$TMP" "$B/bench"
trap 'kill $SPIN 2>/dev/null; rm -rf "$TMP"' EXIT INT TERM
SPIN=

RB=$B/bench/roberta-base-f32.mmw
if [ ! -f "$RB" ]; then
    [ -x "$B/bench-make-weights" ] || make --no-print-directory "$B/bench-make-weights" >/dev/null
    echo "writing $RB (random weights)"
    "$B/bench-make-weights" roberta-base f32 "$RB"
fi
head -n $((EVAL_ROWS + 1)) "$MELD/test_sent_emo.csv" > "$TMP/test.csv"
IDS="0 $(seq -s ' ' 1000 1125) 2"

# one job of workload $1 with thread setting $2 (1 or "default"), output to $TMP/out.$3
job() {
    T=; E=
    if [ "$2" = 1 ]; then if [ -n "$LEGACY" ]; then E=OMP_NUM_THREADS=1; else T="--threads 1"; fi; fi
    case $1 in
    eval) env $E "$BIN" eval -m weights/meld-text-q8_0.mmw --csv "$TMP/test.csv" $T > "$TMP/out.$3" ;;
    encode) env $E "$BIN" encode-text -m "$RB" --ids "$IDS" $T -o "$TMP/out.$3.f32" ;;
    esac
}

now() { date +%s.%N; }

# wall seconds of one job
one() { t0=$(now); job "$1" "$2" a; t1=$(now); echo "$t0 $t1" | awk '{printf "%.3f", $2 - $1}'; }

# wall seconds of the slower of two jobs started together
two() {
    t0=$(now)
    ( job "$1" "$2" a; now > "$TMP/ta" ) &
    p1=$!
    ( job "$1" "$2" b; now > "$TMP/tb" ) &
    p2=$!
    wait $p1 $p2
    awk -v t0="$t0" 'NR == 1 {a = $1} NR == 2 {b = $1} END {m = a > b ? a : b; printf "%.3f", m - t0}' "$TMP/ta" "$TMP/tb"
}

spin_on() { yes > /dev/null & SPIN=$!; sleep 0.3; }
spin_off() { kill $SPIN; wait $SPIN 2>/dev/null || true; SPIN=; }

median() { sort -n | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "binary $BIN; $(nproc) CPUs online; $ROUNDS rounds; autogroup $(cat /proc/self/autogroup 2>/dev/null); load average $(cut -d' ' -f1-3 /proc/loadavg)"
for w in ${WORKLOADS:-eval encode}; do
    job $w 1 warm   # page cache, CPU features
    for c in 1thr default 2jobs 2x1thr busy1 busy; do : > "$TMP/$w.$c"; done
    r=0
    while [ $r -lt "$ROUNDS" ]; do
        one $w 1 >> "$TMP/$w.1thr"; echo >> "$TMP/$w.1thr"
        one $w default >> "$TMP/$w.default"; echo >> "$TMP/$w.default"
        two $w default >> "$TMP/$w.2jobs"; echo >> "$TMP/$w.2jobs"
        two $w 1 >> "$TMP/$w.2x1thr"; echo >> "$TMP/$w.2x1thr"
        spin_on
        one $w 1 >> "$TMP/$w.busy1"; echo >> "$TMP/$w.busy1"
        one $w default >> "$TMP/$w.busy"; echo >> "$TMP/$w.busy"
        spin_off
        r=$((r + 1))
    done
    for c in 1thr default 2jobs 2x1thr busy1 busy; do eval "m_$c=$(median < "$TMP/$w.$c")"; done
    printf '%-7s median s: 1thr %s  default %s  2jobs %s  2x1thr %s  busy1 %s  busy %s  (runs: %s)\n' $w \
        "$m_1thr" "$m_default" "$m_2jobs" "$m_2x1thr" "$m_busy1" "$m_busy" "$(tr '\n' ' ' < "$TMP/$w.busy")"
    awk -v a="$m_2jobs" -v a1="$m_2x1thr" -v b="$m_busy" -v s="$m_1thr" -v s1="$m_busy1" -v w=$w 'BEGIN {
        printf "%-7s 2jobs / 1thr = %.2f (bar <= 1.15); busy / 1thr = %.2f (bar <= 1.1); 2jobs / 2x1thr = %.2f; busy / busy1 = %.2f\n",
               w, a / s, b / s, a / a1, b / s1 }'
done
