#!/usr/bin/env bash
# A full disk, on a small tmpfs this test mounts (and unmounts; skipped where mounting is not
# allowed): a 2-rank training whose second checkpoint does not fit ends within 60 s on every
# rank with "No space left on device" naming the file, the previous checkpoint still valid
# and `latest` on it, and resumes from it once there is room; one process exits 1 with the same
# message (it segfaulted at MPI shutdown before); a 2-rank kiln infer whose output does not fit
# fails before writing, leaving no output, and finishes once there is room.
source "$(dirname "$0")/../e2e/lib.sh"
data=$(fmnist_h5)
K="$KILN_BIN"
disk="$WORK/disk"
mkdir -p "$disk"
if ! mount -t tmpfs -o size=14m tmpfs "$disk" 2>"$WORK/mount.log"; then
  echo "SKIP: cannot mount a tmpfs here: $(cat "$WORK/mount.log")"
  exit 77
fi
trap 'umount "$disk" 2>/dev/null; rm -rf "$WORK"' EXIT
resize() { mount -o remount,size="$1" "$disk"; }

train=(train "$KILN_SRC/configs/fmnist-mlp.yaml" --set data.path="$data" --set train.steps=30
       --set train.ckpt_every=10 --set train.keep=3 --set train.threads=1 --set train.log_every=10)
# --- 2 ranks: the step-10 checkpoint (8 MiB) fits in 14 MiB, the step-20 one does not ---
rc=0
start=$(date +%s)
timeout 120 mpiexec -n 2 "$K" "${train[@]}" --set train.out_dir="$disk/run" >/dev/null 2>"$WORK/2.log" || rc=$?
took=$(( $(date +%s) - start ))
if [ "$rc" -eq 1 ] && [ "$took" -le 60 ] &&
  grep -q "checkpoint '$disk/run/ckpt/step-00000020.h5.tmp' not written (the previous one is kept).*No space left on device" "$WORK/2.log" &&
  [ "$(cat "$disk/run/ckpt/latest")" = step-00000010.h5 ] && "$K" ckpt verify "$disk/run/ckpt/step-00000010.h5" >/dev/null &&
  [ -z "$(ls "$disk/run/ckpt" | grep -v '^step-00000010.h5\(.crc32\)\?$\|^latest$')" ]; then
  pass "2 ranks, disk full at the second checkpoint: exit 1 after ${took} s, step 10 valid and latest, nothing else left"
else
  fail "2 ranks on a full disk: rc $rc after ${took} s; $(grep error "$WORK/2.log" | head -2); ckpt: $(ls "$disk/run/ckpt" | tr '\n' ' ')"
fi
resize 40m
mpiexec -n 2 "$K" "${train[@]}" --set train.out_dir="$disk/run" >/dev/null 2>"$WORK/2b.log" &&
  grep -q "resumed from $disk/run/ckpt/step-00000010.h5 at step 10" "$WORK/2b.log" &&
  [ "$(cat "$disk/run/ckpt/latest")" = step-00000030.h5 ] &&
  pass "with room again the rerun resumes from step 10 and finishes" ||
  fail "resume after the full disk: $(tail -2 "$WORK/2b.log")"
rm -rf "$disk/run"
resize 14m

# --- one process ---
rc=0
"$K" "${train[@]}" --set train.out_dir="$disk/one" >/dev/null 2>"$WORK/1.log" || rc=$?
[ "$rc" -eq 1 ] && grep -q "No space left on device" "$WORK/1.log" && ! grep -q "Segmentation\|signal" "$WORK/1.log" &&
  pass "1 process: exit 1 with a clean message, no crash at shutdown" ||
  fail "1 process on a full disk: rc $rc, $(grep -m2 'error\|Segm' "$WORK/1.log")"
rm -rf "$disk/one"

# --- kiln infer: 60000 rows of probabilities and top-5 (4.6 MiB) on 3 MiB ---
"$K" train "$KILN_SRC/configs/fmnist-mlp.yaml" --set data.path="$data" --set model.hidden=32 \
  --set train.steps=5 --set train.threads=1 --set train.out_dir="$WORK/model" >/dev/null 2>&1 || fail "model"
resize 3m
rc=0
infer=(infer --model "$WORK/model" --input "$data" --set infer.dataset=train/x --set infer.chunk_rows=2000
       --output "$disk/scores.h5")
timeout 120 mpiexec -n 2 "$K" "${infer[@]}" >/dev/null 2>"$WORK/i.log" || rc=$?
[ "$rc" -eq 1 ] && grep -q "output '$disk/scores.h5.partial': No space left on device: it needs" "$WORK/i.log" &&
  [ -z "$(ls "$disk")" ] && pass "2-rank infer that does not fit: fails before writing, leaves nothing" ||
  fail "infer on a full disk: rc $rc, $(grep -m2 error "$WORK/i.log"); left: $(ls "$disk")"
resize 10m
mpiexec -n 2 "$K" "${infer[@]}" >/dev/null 2>"$WORK/i2.log" &&
  "$PY" -c "import h5py,sys; assert h5py.File(sys.argv[1]).attrs['complete'] == 1" "$disk/scores.h5" &&
  pass "with room the same infer finishes" || fail "infer after resize: $(tail -2 "$WORK/i2.log")"
finish
