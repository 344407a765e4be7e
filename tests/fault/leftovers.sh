#!/usr/bin/env bash
# What dead processes leave is cleaned up: `kiln registry register` killed with SIGKILL while it
# copies a large checkpoint, again and again, leaves staging copies that the next registration
# removes (and `kiln registry gc` too); a checkpoint directory where a kill during pruning left
# a sidecar without its checkpoint (and a save's tmp and space reservation) is tidied by the
# next save; `kiln registry verify` then finds nothing wrong.
source "$(dirname "$0")/../e2e/lib.sh"
data=$(fmnist_h5)
K="$KILN_BIN"
reg="$WORK/registry"
"$K" train "$KILN_SRC/configs/fmnist-mlp.yaml" --set data.path="$data" --set model.hidden=2048,2048 \
  --set train.steps=1 --set train.threads=1 --set train.out_dir="$WORK/big" >/dev/null 2>&1 ||
  fail "training the big model"
ckpt="$WORK/big/ckpt/step-00000001.h5" # about 80 MB: a copy takes long enough to be killed
staging="$reg/models/big/.staging"
"$K" registry --registry "$reg" register big "$ckpt" >/dev/null 2>&1 || fail "first registration"
kills=0
for delay in 0 0.01 0.02 0.03 0.04; do
  "$K" registry --registry "$reg" register big "$ckpt" >/dev/null 2>&1 &
  pid=$!
  # kill it once its copy has begun (a staging entry with bytes in it), whatever the load
  until [ -n "$(find "$staging" -mindepth 2 -type f -size +0 2>/dev/null | head -1)" ] || ! kill -0 "$pid" 2>/dev/null; do
    sleep 0.005
  done
  sleep "$delay"
  kill -9 "$pid" 2>/dev/null && kills=$((kills + 1))
  wait "$pid" 2>/dev/null || true
done
left=$(ls "$staging" 2>/dev/null | wc -l)
[ "$left" -gt 0 ] && pass "$kills kills during registration left $left staging copies ($(du -sm "$staging" | cut -f1) MB)" ||
  fail "the kills left no staging copy to clean (kills $kills): the test did not test anything"
"$K" registry --registry "$reg" register big "$ckpt" >/dev/null 2>"$WORK/reg.log" &&
  [ "$(ls "$staging" | wc -l)" -eq 0 ] &&
  pass "the next registration removed every dead writer's staging copy" ||
  fail "after the next registration: $(ls "$staging" | wc -l) staging entries; $(cat "$WORK/reg.log")"
mkdir -p "$staging/$(hostname | cut -d. -f1).999999999.zzzzzz"
"$K" registry --registry "$reg" gc big --keep 5 --yes >/dev/null 2>&1 && [ "$(ls "$staging" | wc -l)" -eq 0 ] &&
  pass "registry gc removes a dead writer's staging copy too" || fail "gc left $(ls "$staging")"
"$K" registry --registry "$reg" verify big >"$WORK/verify.txt" 2>&1 &&
  pass "registry verify: every version whole ($(grep -c ': ok ' "$WORK/verify.txt") artifacts)" ||
  fail "verify after the kills: $(grep -v ': ok ' "$WORK/verify.txt" | head -3)"

# --- a checkpoint directory as a kill during pruning (and during a save) leaves it ---
run=(train "$KILN_SRC/configs/fmnist-mlp.yaml" --set data.path="$data" --set model.hidden=32
     --set train.threads=1 --set train.ckpt_every=5 --set train.keep=2 --set train.out_dir="$WORK/run")
"$K" "${run[@]}" --set train.steps=10 >/dev/null 2>&1 || fail "run to 10"
d="$WORK/run/ckpt"
rm "$d/step-00000005.h5"                   # pruning unlinks the .h5 first, then was killed
touch "$d/step-00000015.h5.tmp" "$d/step-00000015.h5.tmp.reserve" "$d/latest.1234.tmp"
"$K" "${run[@]}" --set train.steps=20 >/dev/null 2>"$WORK/run.log" || fail "resume: $(tail -2 "$WORK/run.log")"
ls "$d" >"$WORK/left.txt"
if ! grep -q "step-00000005.h5.crc32\|\.tmp\|\.reserve" "$WORK/left.txt"; then
  pass "the next save removed the orphan sidecar, the tmp, the reservation: $(tr '\n' ' ' <"$WORK/left.txt")"
else
  fail "left in the checkpoint directory: $(tr '\n' ' ' <"$WORK/left.txt")"
fi
finish
