#!/usr/bin/env bash
# One output, one run: a second `kiln infer` on the same --output started while the first
# writes, and a second `kiln train` on the same train.out_dir (on 2 ranks), each fail at once
# naming the process that holds the output (pid, host), and the first runs finish whole (h5py
# opens the output; the run's metrics hold every line). A holder killed with SIGKILL holds
# nothing: the rerun takes the output over and finishes it. A requeued job waits for its old
# self (KILN_OUTPUT_WAIT) instead of failing.
source "$(dirname "$0")/../e2e/lib.sh"
data=$(fmnist_h5)
K="$KILN_BIN"
"$K" train "$KILN_SRC/configs/fmnist-mlp.yaml" --set data.path="$data" --set model.hidden=128 \
  --set train.steps=10 --set train.threads=1 --set train.out_dir="$WORK/model" >/dev/null 2>&1 ||
  fail "training the model"
"$PY" - "$data" "$WORK/big.h5" <<'PY'
import sys, h5py, numpy as np
x = h5py.File(sys.argv[1])["test/x"][()]
with h5py.File(sys.argv[2], "w") as f:
    f["x"] = np.concatenate([np.roll(x, k, axis=1) for k in range(8)])  # 80000 rows
PY
args=(--model "$WORK/model" --input "$WORK/big.h5" --set infer.chunk_rows=1000 --set infer.threads=1
      --set infer.progress_interval=0.001)
started() { # log pid: the run reports progress (it holds its output by then)
  while kill -0 "$2" 2>/dev/null; do grep -q '^infer: [0-9]' "$1" 2>/dev/null && return 0; sleep 0.01; done
  return 1
}
# The first run is paused (SIGSTOP) while the second one tries, so that it is certainly still
# writing however fast the machine is, and resumed (SIGCONT) after.

# --- two infers, one output ---
"$K" infer "${args[@]}" --output "$WORK/out.h5" >/dev/null 2>"$WORK/first.log" &
first=$!
started "$WORK/first.log" "$first" || fail "the first infer ended before it started writing"
kill -STOP "$first"
rc=0
"$K" infer "${args[@]}" --output "$WORK/out.h5" >/dev/null 2>"$WORK/second.log" || rc=$?
kill -CONT "$first"
wait "$first" || fail "the first infer failed: $(tail -2 "$WORK/first.log")"
if [ "$rc" -ne 0 ] && grep -q "'$WORK/out.h5' is in use by another run (pid $first on host $(hostname)" "$WORK/second.log" &&
  "$PY" -c "import h5py,sys; f=h5py.File(sys.argv[1]); assert f.attrs['complete'] == 1" "$WORK/out.h5"; then
  pass "a second infer on the same output fails at once: $(grep -o 'in use by another run ([^)]*)' "$WORK/second.log")"
else
  fail "second infer: rc $rc, $(cat "$WORK/second.log" | tail -2)"
fi
[ ! -e "$WORK/out.h5.lock" ] && pass "the finished run leaves no lock file" || fail "out.h5.lock left behind"

# --- a holder killed with SIGKILL holds nothing ---
"$K" infer "${args[@]}" --output "$WORK/killed.h5" >/dev/null 2>"$WORK/k.log" &
victim=$!
started "$WORK/k.log" "$victim" && kill -9 "$victim"
wait "$victim" 2>/dev/null || true
[ -e "$WORK/killed.h5.lock" ] || fail "a killed holder's lock file should be left (stale)"
"$K" infer "${args[@]}" --output "$WORK/killed.h5" >/dev/null 2>"$WORK/k2.log" &&
  cmp -s "$WORK/out.h5" "$WORK/killed.h5" &&
  pass "after kill -9 of the holder, the rerun takes the output over and finishes it (same bytes)" ||
  fail "rerun after a killed holder: $(tail -2 "$WORK/k2.log")"

# --- a requeued job waits for its old self ---
"$K" infer "${args[@]}" --output "$WORK/requeue.h5" >/dev/null 2>"$WORK/old.log" &
old=$!
started "$WORK/old.log" "$old"
KILN_OUTPUT_WAIT=600 "$K" infer "${args[@]}" --output "$WORK/requeue.h5" >"$WORK/new.out" 2>"$WORK/new.log" &&
  ! kill -0 "$old" 2>/dev/null && grep -q "is complete already" "$WORK/new.out" &&
  pass "with KILN_OUTPUT_WAIT a second run waits for the holder, then finds the output complete" ||
  fail "waiting for the holder: $(tail -2 "$WORK/new.log")"
wait "$old" || true

# --- two trainings, one run directory (the first on 2 ranks) ---
train=(train "$KILN_SRC/configs/fmnist-mlp.yaml" --set data.path="$data" --set model.hidden=64
       --set train.steps=300 --set train.log_every=1 --set train.threads=1 --set train.out_dir="$WORK/run")
mpiexec -n 2 "$K" "${train[@]}" >/dev/null 2>"$WORK/t1.log" &
t1=$!
until [ -s "$WORK/run/metrics.jsonl" ] || ! kill -0 "$t1" 2>/dev/null; do sleep 0.01; done
ranks=$(pgrep -f "out_dir=$WORK/run" | grep -v "^$t1\$" || true)
kill -STOP $ranks
rc=0
"$K" "${train[@]}" >/dev/null 2>"$WORK/t2.log" || rc=$?
kill -CONT $ranks
wait "$t1" || fail "the first training failed: $(tail -2 "$WORK/t1.log")"
lines=$(grep -c '"loss"' "$WORK/run/metrics.jsonl" || true)
if [ "$rc" -ne 0 ] && grep -q "train.out_dir '$WORK/run' is in use by another run (pid [0-9]* on host" "$WORK/t2.log" &&
  [ "$lines" -eq 300 ]; then
  pass "a second training on the same train.out_dir fails at once; the first logs all 300 steps"
else
  fail "second training: rc $rc, $lines metrics lines, $(tail -2 "$WORK/t2.log")"
fi
finish
