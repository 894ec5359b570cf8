#!/bin/sh
# tools/train/meld_model.sh OUTDIR - the MELD text model of issue 18, start to end, resumable:
#   1. mmspcl pretrain              MLM on the corpus + MELD train          OUTDIR/pretrained.mmw
#   2. mmspcl train --init ... --folds K --fold F, F = 0..K-1             OUTDIR/foldF.mmw(.oof)
#      mmspcl train --init ...      (all of train)                          OUTDIR/full.mmw
#   3. mmspcl heads                 MSVE on the out-of-fold views           OUTDIR/meld-text.mmw
#                                   and its q8_0 copy                       OUTDIR/meld-text-q8_0.mmw
# Run it again after an interruption: finished stages are skipped (their outputs exist), an
# interrupted one continues from its checkpoint (--resume). Pretraining stopped by its time box
# (PRETRAIN_MINUTES) is continued by the next run until its schedule is done; set
# PRETRAIN_MINUTES=0 for no limit, or SKIP_PRETRAIN_WAIT=1 to go on with the weights so far.
# Environment (defaults in brackets):
#   MMSPCL [build/mmspcl]  MELD [../shared/data/meld]  CORPUS [../shared/data/corpus]
#   K [3] folds   JOBS [1] fine-tunes at a time   LIMIT [] --limit DIALOGUES for every stage
#   PRETRAIN_ARGS, FT_ARGS, HEADS_ARGS: options of each stage (defaults below)
#   NICE [nice -n 5]   ONLY_PRETRAIN [0]: 1 stops after stage 1 (make pretrain)
#   NO_PRETRAIN [0]: 1 fine-tunes OUTDIR/pretrained.mmw as it is, even unfinished
set -eu
OUT=${1:?usage: tools/train/meld_model.sh OUTDIR}
MMSPCL=${MMSPCL:-build/mmspcl}
MELD=${MELD:-../shared/data/meld}
CORPUS=${CORPUS:-../shared/data/corpus}
K=${K:-3}
JOBS=${JOBS:-1}
NICE=${NICE:-nice -n 5}
PRETRAIN_MINUTES=${PRETRAIN_MINUTES:-75}
PRETRAIN_ARGS=${PRETRAIN_ARGS:---hidden 256 --layers 3 --heads 4 --ffn 768 --max-len 96 --epochs 1 --dialogue-repeat 2 --min-count 8 --glove $CORPUS/glove}
FT_ARGS=${FT_ARGS:---max-len 64 --epochs 4 --patience 2 --lr 1e-4}
HEADS_ARGS=${HEADS_ARGS:-}
LIM=""
[ -n "${LIMIT:-}" ] && LIM="--limit $LIMIT"
mkdir -p "$OUT"
log() { echo "meld_model.sh: $*" >&2; }

# 1. pretraining: done when the file says pretrain.finished 1
P="$OUT/pretrained.mmw"
finished() { [ -f "$P" ] && $MMSPCL inspect "$P" 2>/dev/null | grep -Eq 'pretrain[.]finished +1$'; }
if finished; then
  log "pretraining done ($P)"
elif [ "${NO_PRETRAIN:-0}" = 1 ] && [ -f "$P" ]; then
  log "NO_PRETRAIN=1: fine-tuning $P as it is (pretraining unfinished)"
else
  RES=""
  [ -f "$P.ckpt" ] && RES="--resume $P.ckpt"
  log "pretraining ${RES:+(resuming) }for at most $PRETRAIN_MINUTES minutes"
  # shellcheck disable=SC2086
  $NICE $MMSPCL pretrain --corpus "$CORPUS" --meld "$MELD" -o "$P" $PRETRAIN_ARGS $LIM --max-minutes "$PRETRAIN_MINUTES" $RES --quiet
  if ! finished && [ "${SKIP_PRETRAIN_WAIT:-0}" != 1 ]; then
    log "pretraining stopped by its time box: run this script again to continue it (SKIP_PRETRAIN_WAIT=1: fine-tune the weights so far)"
    exit 3
  fi
fi

[ "${ONLY_PRETRAIN:-0}" = 1 ] && { log "pretraining only (ONLY_PRETRAIN=1): $P"; exit 0; }

# 2. fine-tunes: K without their fold, one on all of train
finetune() {   # NAME [--folds K --fold F]
  name=$1; shift
  if [ -f "$OUT/$name.mmw" ] && { [ $# -eq 0 ] || [ -f "$OUT/$name.mmw.oof" ]; }; then log "$name done"; return 0; fi
  RES=""
  [ -f "$OUT/$name.mmw.ckpt" ] && RES="--resume $OUT/$name.mmw.ckpt"
  log "fine-tuning $name $*${RES:+ (resuming)}"
  # shellcheck disable=SC2086
  $NICE $MMSPCL train --init "$P" --meld "$MELD" -o "$OUT/$name.mmw" $FT_ARGS $LIM "$@" $RES --quiet > "$OUT/$name.log" 2>&1 || {
    log "fine-tuning $name failed: see $OUT/$name.log"; tail -3 "$OUT/$name.log" >&2; return 1; }
}
F=0; running=0; OOFS=""
while [ $F -le "$K" ]; do   # F = K: the fine-tune on all of train
  if [ $F -lt "$K" ]; then finetune "fold$F" --folds "$K" --fold $F & OOFS="$OOFS $OUT/fold$F.mmw.oof"; else finetune full & fi
  running=$((running + 1))
  if [ $running -ge "$JOBS" ]; then wait; running=0; fi
  F=$((F + 1))
done
wait
for f in $OOFS $OUT/full.mmw; do [ -f "$f" ] || { log "missing $f (a fine-tune failed)"; exit 1; }; done

# 3. heads
if [ -f "$OUT/meld-text-q8_0.mmw" ]; then
  log "heads done"
else
  log "heads on $K out-of-fold files"
  # shellcheck disable=SC2086
  $NICE $MMSPCL heads -m "$OUT/full.mmw" --meld "$MELD" -o "$OUT/meld-text.mmw" --q8 "$OUT/meld-text-q8_0.mmw" $HEADS_ARGS $LIM $OOFS 2> "$OUT/heads.log" || {
    log "heads failed: see $OUT/heads.log"; tail -3 "$OUT/heads.log" >&2; exit 1; }
  grep -E "head:|head of the model|TF-IDF \+ LR \(|wrote" "$OUT/heads.log" >&2 || true
fi
log "done: $OUT/meld-text-q8_0.mmw"
