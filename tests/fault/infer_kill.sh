#!/usr/bin/env bash
# Exactly once: kiln infer killed with SIGKILL at five random points, each 1 to 4 chunks past
# what the previous kill left (alternately a single process and one rank of a 2-rank job;
# the kill lands while a later round is in flight), rerun after each kill, ends with an output identical,
# byte for byte, to an uninterrupted run; every kill leaves a .partial that h5py opens, whose
# done chunks only grow. SIGTERM (Slurm preemption) stops after the current round with exit
# 75, and the rerun finishes the same file.
source "$(dirname "$0")/../e2e/lib.sh"
data=$(fmnist_h5)
"$KILN_BIN" train "$KILN_SRC/configs/fmnist-mlp.yaml" --set data.path="$data" --set model.hidden=256,256 \
  --set train.steps=20 --set train.threads=1 --set train.out_dir="$WORK/run" >/dev/null 2>&1 ||
  fail "training the model"
"$PY" - "$data" "$WORK/big.h5" <<'PY'
import sys, h5py, numpy as np
x = h5py.File(sys.argv[1])["test/x"][()]
with h5py.File(sys.argv[2], "w") as f:
    f["x"] = np.concatenate([np.roll(x, k, axis=1) for k in range(12)])  # 120000 distinct rows
PY
args=(--model "$WORK/run/ckpt/step-00000020.h5" --input "$WORK/big.h5" --set infer.chunk_rows=2000
      --set infer.progress_interval=0.001) # a progress line after every round: the kills key on it
"$KILN_BIN" infer "${args[@]}" --output "$WORK/straight.h5" >/dev/null 2>"$WORK/straight.log" ||
  fail "uninterrupted run: $(tail -2 "$WORK/straight.log")"

done_chunks() { # chunks marked done in the .partial (h5py must open it)
  "$PY" -c "import h5py,sys; print(int(h5py.File(sys.argv[1])['progress/done'][()].sum()))" "$1" 2>/dev/null || echo "unreadable"
}
# Waits until the run's log reports at least $2 chunks done; fails if the run ($3) ends first.
# Keyed on progress rather than on time, so that a loaded machine moves the kill points but
# never past the end of the run.
wait_for_chunks() { # log target pid
  local n
  while kill -0 "$3" 2>/dev/null; do
    n=$(grep -o '^infer: [0-9]*' "$1" 2>/dev/null | tail -1 | grep -o '[0-9]*$' || true)
    [ "${n:-0}" -ge "$2" ] && return 0
    sleep 0.01
  done
  return 1
}
out="$WORK/killed.h5"
RANDOM=20261201 # the kill points are random, but the same in every run of this test
landed=0 tries=0 last=0 midway=0
while [ "$landed" -lt 5 ] && [ "$tries" -lt 12 ] && [ ! -e "$out" ]; do
  tries=$((tries + 1))
  ranks=$((1 + landed % 2))
  target=$((last + 1 + RANDOM % 4)) # 1 to 4 chunks past what the last kill left
  log="$WORK/kill$tries.log"
  if [ "$ranks" -eq 1 ]; then
    "$KILN_BIN" infer "${args[@]}" --output "$out" >/dev/null 2>"$log" &
  else
    mpiexec -n 2 "$KILN_BIN" infer "${args[@]}" --output "$out" >/dev/null 2>"$log" &
  fi
  job=$!
  victim=""
  if wait_for_chunks "$log" "$target" "$job"; then
    victim=$job
    if [ "$ranks" -eq 2 ]; then # one of the two ranks, alternately rank 0 and rank 1
      victim=""
      for pid in $(pgrep -f "output $out"); do
        tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$(( (landed / 2) % 2 ))" && victim=$pid
      done
    fi
  fi
  if [ -n "$victim" ] && kill -9 "$victim" 2>/dev/null; then
    wait "$job" 2>/dev/null || true
    if [ -e "$out" ]; then echo "kill $tries came after the run had finished"; break; fi
    landed=$((landed + 1))
    now=$(done_chunks "$out.partial")
    [ -e "$out.partial" ] || now=0 # killed before the .partial existed
    echo "kill $landed ($ranks rank(s), at >= $target chunks reported): $now of 60 chunks done"
    if [ "$now" = "unreadable" ] || [ "$now" -lt "$last" ]; then
      fail "after kill $landed the .partial has '$now' chunks done (before: $last)"
      now=$last
    fi
    [ "$now" -gt 0 ] && [ "$now" -lt 60 ] && midway=$((midway + 1))
    last=$now
  else
    wait "$job" 2>/dev/null || true
  fi
done
[ "$landed" -eq 5 ] && pass "5 kills landed (${tries} tries); each left a readable .partial whose done chunks only grew" ||
  fail "only $landed kills landed before the run finished; make the input longer"
[ "$midway" -ge 2 ] && pass "$midway kills landed with some but not all chunks done" ||
  fail "only $midway kills landed mid-way"
"$KILN_BIN" infer "${args[@]}" --output "$out" >"$WORK/final.out" 2>"$WORK/final.log" ||
  fail "the final rerun failed: $(tail -2 "$WORK/final.log")"
grep -o "[0-9]* computed now" "$WORK/final.out" >/dev/null && echo "final rerun: $(grep -o '[0-9]* rows ([0-9]* computed now)' "$WORK/final.out")"
cmp -s "$WORK/straight.h5" "$out" && pass "after 5 kills and reruns the output is byte-identical to the uninterrupted run" ||
  fail "the output after kills differs from the uninterrupted run"

# SIGTERM: stop after the current round, exit 75, rerun finishes the same file
"$KILN_BIN" infer "${args[@]}" --output "$WORK/term.h5" >/dev/null 2>"$WORK/term.log" &
job=$!
wait_for_chunks "$WORK/term.log" 10 "$job" || fail "the SIGTERM run ended before 10 chunks were done"
kill -TERM "$job"
rc=0
wait "$job" || rc=$?
if [ "$rc" -eq 75 ] && grep -q "stopped by a signal with [0-9]* of 60 chunks done" "$WORK/term.log" && [ ! -e "$WORK/term.h5" ]; then
  pass "SIGTERM: exit 75, $(grep -o 'stopped by a signal with [0-9]* of 60 chunks done' "$WORK/term.log")"
else
  fail "SIGTERM gave exit $rc: $(tail -2 "$WORK/term.log")"
fi
"$KILN_BIN" infer "${args[@]}" --output "$WORK/term.h5" >/dev/null 2>&1
cmp -s "$WORK/straight.h5" "$WORK/term.h5" && pass "the rerun after SIGTERM is byte-identical to the uninterrupted run" ||
  fail "the rerun after SIGTERM differs"
finish
