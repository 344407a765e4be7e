#!/usr/bin/env bash
# A 4-rank ZeRO-3 job whose collective checkpoint write is killed half-way (fault injection:
# the save of step 20 stops after half its datasets and the last rank exits while the others
# wait inside the collective write) ends, leaves the step-10 checkpoint and `latest` valid, and
# --resume auto finishes bit-identically to an uninterrupted 4-rank run.
source "$(dirname "$0")/../e2e/lib.sh"
cfg="$KILN_SRC/configs/fmnist-mlp.yaml"
common=(--set data.path="$(fmnist_h5)" --set train.steps=30 --set train.ckpt_every=10
  --set train.log_every=1 --set train.threads=1 --set train.keep=5 --set parallel.zero=3
  --set parallel.bucket_mb=0.5)
ranks=4

mpiexec -n $ranks "$KILN_BIN" train "$cfg" "${common[@]}" --set train.out_dir="$WORK/straight" \
  >/dev/null 2>&1 || fail "uninterrupted run failed"
rc=0
mpiexec -n $ranks -x KILN_FAULT_CKPT_STEP=20 "$KILN_BIN" train "$cfg" "${common[@]}" \
  --set train.out_dir="$WORK/run" >/dev/null 2>"$WORK/run.log" || rc=$?
ck="$WORK/run/ckpt"
[ "$rc" -ne 0 ] && pass "job ended with $rc when the writer died mid-checkpoint" || fail "job exited 0"
[ -s "$ck/step-00000020.h5.tmp" ] && [ ! -f "$ck/step-00000020.h5" ] &&
  pass "the half-written step-20 file stayed a .tmp" || fail "unexpected files: $(ls "$ck")"
[ "$(cat "$ck/latest")" = "step-00000010.h5" ] && "$KILN_BIN" ckpt verify "$ck/step-00000010.h5" >/dev/null &&
  pass "latest still names step 10, which verifies" || fail "latest: $(cat "$ck/latest" 2>&1)"
mpiexec -n $ranks "$KILN_BIN" train "$cfg" "${common[@]}" --set train.out_dir="$WORK/run" \
  >/dev/null 2>"$WORK/resume.log" || fail "resume failed: $(tail -n 3 "$WORK/resume.log")"
grep -q "resumed from .*step-00000010.h5" "$WORK/resume.log" && pass "resumed from step 10" ||
  fail "did not resume from step 10"
[ ! -e "$ck/step-00000020.h5.tmp" ] && pass "the next save removed the stale .tmp" ||
  fail "stale tmp left: $(ls "$ck")"
if out=$("$PY" "$(dirname "$0")/compare_runs.py" "$WORK/straight" "$WORK/run" 30 2>&1); then
  pass "final state after the crash and resume: $out"
else
  fail "resumed run differs: $out"
fi
finish
