#!/bin/sh
# tests/fuzz/run.sh NAME SECONDS [BIN]: runs the libFuzzer build of target NAME (default
# build/fuzz/fuzz_NAME, made by `make fuzz`) for SECONDS on its corpus, from the repository root.
#   new inputs    build/fuzz/work/NAME/ (tests/fuzz/corpus/NAME/ is read, never written)
#   crashes       build/fuzz/crashes/NAME/, then copied to tests/fuzz/regressions/NAME/
#                 (inputs merely slower than 10 s go to build/fuzz/slow/ and do not fail)
#   log           build/fuzz/NAME.log; the last line printed here sums runs and coverage
# Extra read-only seeds from ../shared (not copied into the repository) where present.
# Exit status: 0 when the run ended without a finding, 1 otherwise.
set -u
name=$1; secs=$2; bin=${3:-build/fuzz/fuzz_$name}
work=build/fuzz/work/$name; crashes=build/fuzz/crashes/$name; log=build/fuzz/$name.log
mkdir -p "$work" "$crashes" "tests/fuzz/regressions/$name"
extra=""
case $name in
  safetensors) [ -d ../shared/data/weights/safetensors-samples ] && extra=../shared/data/weights/safetensors-samples ;;
esac
opts="-max_total_time=$secs -timeout=30 -rss_limit_mb=2560 -print_final_stats=1"
[ -f "tests/fuzz/$name.dict" ] && opts="$opts -dict=tests/fuzz/$name.dict"
# shellcheck disable=SC2086
"$bin" $opts -artifact_prefix="$crashes/" "$work" "tests/fuzz/corpus/$name" $extra > "$log" 2>&1
rc=$?
found=0
for f in "$crashes"/*; do
  [ -f "$f" ] || continue
  case $(basename "$f") in
    slow-unit-*)  # over 10 s once, not a failure: on a loaded machine this is mostly a stall
      mkdir -p build/fuzz/slow; mv "$f" build/fuzz/slow/
      echo "fuzz $name: note: slow input kept in build/fuzz/slow/$(basename "$f") (replay it to check)"
      continue ;;
  esac
  found=1
  cp "$f" "tests/fuzz/regressions/$name/"
  echo "fuzz $name: FINDING $(basename "$f") -> tests/fuzz/regressions/$name/ (log: $log)"
  rm -f "$f"
done
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | sed 's/cov: //')
ft=$(grep -o 'ft: [0-9]*' "$log" | tail -n 1 | sed 's/ft: //')
corp=$(ls "$work" | wc -l)
echo "fuzz $name: ${secs}s, ${runs:-?} runs, cov ${cov:-?}, ft ${ft:-?}, $corp new corpus inputs, exit $rc"
[ $rc -eq 0 ] && [ $found -eq 0 ]
