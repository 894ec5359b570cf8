#!/bin/sh
# tests/fuzz/valgrind.sh BIN_DIR — valgrind memcheck over the command-line tools' main paths on
# the small test data (make test-valgrind builds BIN_DIR/mmspcl and BIN_DIR/mmspcl-convert).
# Paths: convert (safetensors f32/f16/q8_0/q4_0, sharded, PyTorch .bin, CLIP vision and full,
# with a tokenizer), inspect, tokenize (weight file and vocab.json + merges.txt, --text and
# --file), encode-text (--ids, --text --mask-only), encode-image (PNG, BMP, PPM), and error paths;
# then the unit tests named in VG_TESTS (BIN_DIR/tests/NAME), each run whole.
# Any memcheck error or leak (definite or possible) fails; so does an unexpected exit status.
# Prints "N passed, M failed" last. Run from the repository root.
set -u
bin=${1:-build/valgrind}
tmp=build/valgrind/tmp
rm -rf "$tmp"; mkdir -p "$tmp"
vg="valgrind -q --suppressions=tests/fuzz/valgrind.supp --leak-check=full --errors-for-leak-kinds=definite,possible --show-leak-kinds=definite,possible --error-exitcode=99"
pass=0; fail=0
# run WANT WHAT CMD...: WANT 0 = must succeed, 1 = must fail cleanly (an error message, no crash)
run() {
  want=$1; what=$2; shift 2
  $vg "$@" > "$tmp/out.txt" 2> "$tmp/err.txt"; rc=$?
  if [ $rc -eq 99 ] || [ $rc -gt 2 ] || { [ "$want" -eq 0 ] && [ $rc -ne 0 ]; } || { [ "$want" -ne 0 ] && [ $rc -eq 0 ]; }; then
    fail=$((fail + 1)); echo "FAIL $what (exit $rc)"; sed 's/^/  /' "$tmp/err.txt" | head -60
  else
    pass=$((pass + 1)); echo "ok   $what"
  fi
}
C="$bin/mmspcl-convert"; M="$bin/mmspcl"; D=tests/data
BPE=../shared/data/weights/roberta-bpe
mini=tests/fuzz/corpus/weights/roberta-mini-q4_0.mmw   # 40-token tokenizer, 12 positions

run 0 "convert roberta-tiny f32"          $C $D/roberta-tiny "$tmp/r.mmw" --quiet
run 0 "convert roberta-tiny q8_0"         $C $D/roberta-tiny "$tmp/r8.mmw" --type q8_0 --quiet
run 0 "convert roberta-tiny-sharded f16"  $C $D/roberta-tiny-sharded "$tmp/rs.mmw" --type f16 --quiet
run 0 "convert roberta-tiny-bin q4_0"     $C $D/roberta-tiny-bin "$tmp/rb.mmw" --type q4_0 --quiet
run 0 "convert roberta-tiny-bin-sharded"  $C $D/roberta-tiny-bin-sharded "$tmp/rbs.mmw" --quiet
run 0 "convert clip-tiny f32"             $C $D/clip-tiny "$tmp/c.mmw" --quiet
run 0 "convert clip-tiny-full q8_0"       $C $D/clip-tiny-full "$tmp/cf.mmw" --type q8_0
run 0 "convert clip-tiny-bin"             $C $D/clip-tiny-bin "$tmp/cb.mmw" --quiet
if [ -f $BPE/vocab.json ]; then
  mkdir -p "$tmp/rtok"
  cp $D/roberta-tiny/config.json $D/roberta-tiny/model.safetensors $BPE/vocab.json $BPE/merges.txt "$tmp/rtok/"
  run 0 "convert with vocab.json + merges.txt" $C "$tmp/rtok" "$tmp/rtok.mmw" --quiet
fi
run 1 "convert: folder without config.json" $C $D/torchbin "$tmp/bad.mmw" --quiet
run 1 "convert: missing source"           $C "$tmp/no-such-folder" "$tmp/bad.mmw" --quiet

run 0 "inspect roberta"                   $M inspect "$tmp/r.mmw"
run 0 "inspect clip q8_0"                 $M inspect "$tmp/cf.mmw"
run 1 "inspect: not a weight file"        $M inspect $D/roberta-tiny/config.json

run 0 "tokenize -m (weight file)"         $M tokenize -m $mini --text "hello he, llama!"
if [ -f $BPE/vocab.json ]; then
  run 0 "tokenize --vocab --merges --text" $M tokenize --vocab $BPE/vocab.json --merges $BPE/merges.txt --text "Hello world! cécé herlolip <mask>"
  run 0 "tokenize --file"                 $M tokenize --vocab $BPE/vocab.json --merges $BPE/merges.txt --file $D/prompt/meld_prompts.txt
fi
run 1 "tokenize: weight file without tokenizer" $M tokenize -m "$tmp/c.mmw" --text "x"

run 0 "encode-text --ids"                 $M encode-text -m "$tmp/r.mmw" --ids "0 7 9 2" -o "$tmp/t.f32"
run 0 "encode-text q8_0 --ids (text out)" $M encode-text -m "$tmp/r8.mmw" --ids "0 7 9 2"
run 0 "encode-text --text --mask-only"    $M encode-text -m $mini --text "he <mask>" --mask-only -o "$tmp/m.f32"
run 1 "encode-text: no <mask>"            $M encode-text -m "$tmp/r.mmw" --ids "0 7 2" --mask-only

run 0 "encode-image PNG"                  $M encode-image -m "$tmp/c.mmw" --image $D/images/clip/clip_224_224.png -o "$tmp/v.f32"
run 0 "encode-image BMP --pooled"         $M encode-image -m "$tmp/cf.mmw" --image $D/images/dec/pal8.bmp --pooled -o "$tmp/p.f32"
run 0 "encode-image PPM (text out)"       $M encode-image -m "$tmp/cb.mmw" --image $D/images/dec/p6.ppm
run 1 "encode-image: not an image"        $M encode-image -m "$tmp/c.mmw" --image $D/roberta-tiny/config.json -o "$tmp/x.f32"
run 1 "encode-image: RoBERTa weights"     $M encode-image -m "$tmp/r.mmw" --image $D/images/dec/p6.ppm -o "$tmp/x.f32"

# unit tests run whole (VG_TESTS, built by make test-valgrind into BIN_DIR/tests): their own
# allocations and the library's, with the threads they start
for t in ${VG_TESTS:-}; do
  run 0 "unit test $t"                    "$bin/tests/$t"
done

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
