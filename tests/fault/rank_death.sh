#!/usr/bin/env bash
# A rank killed with SIGKILL mid-training does not hang the others: the job ends within 60 s,
# non-zero, naming the lost rank; --resume auto then finishes with the same final parameters as
# an uninterrupted run on the same ranks.
source "$(dirname "$0")/../e2e/lib.sh"
cfg="$KILN_SRC/configs/fmnist-mlp.yaml"
common=(--set data.path="$(fmnist_h5)" --set train.steps=300 --set train.ckpt_every=100
  --set train.log_every=1 --set train.eval_every=100 --set train.threads=1 --set train.keep=5)

mpiexec -n 2 "$KILN_BIN" train "$cfg" "${common[@]}" --set train.out_dir="$WORK/straight" \
  >/dev/null 2>"$WORK/straight.log" || fail "uninterrupted 2-rank run failed"

mpiexec -n 2 "$KILN_BIN" train "$cfg" "${common[@]}" --set train.out_dir="$WORK/run" \
  >/dev/null 2>"$WORK/run.log" &
job=$!
ckpt=$(printf '%s/run/ckpt/step-%08d.h5' "$WORK" 100)
while [ ! -f "$ckpt" ] && kill -0 "$job" 2>/dev/null; do sleep 0.02; done
victim=""
for pid in $(pgrep -f "out_dir=$WORK/run"); do
  if tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1'; then victim=$pid; fi
done
if [ -z "$victim" ]; then
  fail "could not find rank 1 (the run ended before the kill?)"
else
  t0=$(date +%s)
  kill -9 "$victim"
  rc=0
  wait "$job" || rc=$?
  elapsed=$(( $(date +%s) - t0 ))
  [ "$rc" -ne 0 ] && pass "job exited with $rc after rank 1 was killed" || fail "job exited 0"
  [ "$elapsed" -le 60 ] && pass "the job ended ${elapsed}s after the kill (limit 60 s)" ||
    fail "the job took ${elapsed}s to end"
  grep -qiE "rank 1.*(signal 9|killed)" "$WORK/run.log" &&
    pass "the log names the lost rank: $(grep -m1 -iE 'rank 1' "$WORK/run.log")" ||
    fail "the log does not name rank 1: $(tail -n 5 "$WORK/run.log")"
fi
mpiexec -n 2 "$KILN_BIN" train "$cfg" "${common[@]}" --set train.out_dir="$WORK/run" --resume auto \
  >/dev/null 2>"$WORK/resume.log" || fail "resume failed: $(tail -n 3 "$WORK/resume.log")"
if out=$("$PY" "$(dirname "$0")/compare_runs.py" "$WORK/straight" "$WORK/run" 300 2>&1); then
  pass "after the resume: $out"
else
  fail "resumed run differs: $out"
fi
finish
