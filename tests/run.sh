#!/bin/sh
# Runs each test program given, shows its output, and sums the "N passed, M failed" lines.
passed=0; failed=0; broken=""
for t in "$@"; do
  out=$("$t" 2>&1); rc=$?
  last=$(printf '%s\n' "$out" | tail -n 1)
  p=$(printf '%s' "$last" | sed -n 's/^\([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed$/\1/p')
  f=$(printf '%s' "$last" | sed -n 's/^\([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed$/\2/p')
  if [ -z "$p" ]; then p=0; f=1; fi
  if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  printf '%s\n' "$out" | grep -v '^[0-9]* passed, [0-9]* failed$' | sed "s|^|  |"
  printf '%-40s %s passed, %s failed\n' "$(basename "$t")" "$p" "$f"
  passed=$((passed + p)); failed=$((failed + f))
  [ "$f" -ne 0 ] && broken="$broken $(basename "$t")"
done
[ -n "$broken" ] && echo "failing:$broken"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
