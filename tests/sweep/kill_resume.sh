#!/usr/bin/env bash
# A sweep killed with SIGKILL at ten random points, each followed by a rerun of the same
# command, ends with the same trials, rung table (every trial's objective at every rung, bit
# for bit) and best trial as the same sweep run uninterrupted. Then with three workers (MPI),
# killed five times: every trial reaches its end state, no result is recorded twice, and each
# trial's results equal the uninterrupted sweep's (trial i has the same values whoever draws
# it, and training is deterministic).
source "$(dirname "$0")/../e2e/lib.sh"
source "$(dirname "$0")/lib.sh"
sweep_configs "max_retries: 1000" # every kill costs the trial in training a retry
cfg=$WORK/sweep.yaml

t0=$(date +%s.%N)
"$KILN_BIN" sweep "$cfg" --set sweep.dir="$WORK/straight" >/dev/null 2>"$WORK/straight.err" ||
  { fail "the uninterrupted sweep failed: $(tail -3 "$WORK/straight.err")"; finish; exit 1; }
T=$("$PY" -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$t0" "$(date +%s.%N)")
sweep_json "$WORK/straight" >"$WORK/straight.json"
pass "uninterrupted sweep: $(printf %.1f "$T") s"

# kill_reruns KILLS DIR CMD...: KILLS random points of the sweep's progress (journal lines of
# the uninterrupted sweep, which the killed one passes too, with more lines of its own for
# the leases a kill cuts short), each followed by up to 0.15 s more: runs CMD (in a session of
# its own, so that SIGKILL reaches mpiexec's children too) until DIR's journal reaches the
# next point, kills it, and at the end runs it to completion. Prints the kills that landed.
kill_reruns() {
  local kills=$1 dir=$2
  shift 2
  local landed=0 pid target lines
  lines=$(wc -l <"$WORK/straight/journal.jsonl")
  for target in $("$PY" -c "import random; print(*sorted(random.sample(range(2, int(0.8 * $lines)), $kills)))"); do
    setsid "$@" >>"$WORK/killed.out" 2>>"$WORK/killed.err" </dev/null &
    pid=$!
    while kill -0 "$pid" 2>/dev/null && [ "$(cat "$dir/journal.jsonl" 2>/dev/null | wc -l)" -lt "$target" ]; do
      sleep 0.01
    done
    sleep "$("$PY" -c "import random; print(round(random.uniform(0, 0.15), 3))")"
    if kill -0 "$pid" 2>/dev/null; then
      kill -9 -- "-$pid" 2>/dev/null || true
      landed=$((landed + 1))
      echo "kill $landed at journal line $target+" >>"$WORK/kills.log"
    fi
    wait "$pid" 2>/dev/null || true
  done
  "$@" >>"$WORK/killed.out" 2>>"$WORK/killed.err" </dev/null || echo "final rerun failed" >>"$WORK/kills.log"
  echo "$landed"
}

landed=$(kill_reruns 10 "$WORK/killed" "$KILN_BIN" sweep "$cfg" --set sweep.dir="$WORK/killed")
[ "$landed" -eq 10 ] && pass "1 worker: killed with SIGKILL at 10 random points, rerun each time: $(tr '\n' ' ' <"$WORK/kills.log")" ||
  fail "only $landed of 10 kills landed before the sweep finished: $(cat "$WORK/kills.log")"
grep -q "final rerun failed" "$WORK/kills.log" && fail "the final rerun failed: $(tail -3 "$WORK/killed.err")"
sweep_json "$WORK/killed" >"$WORK/killed.json"
if cmp -s "$WORK/straight.json" "$WORK/killed.json"; then
  pass "1 worker: the same trials, rung table and best as the uninterrupted sweep ($(json_get "$WORK/straight.json" best))"
else
  fail "1 worker: the killed sweep differs: $(diff <("$PY" -m json.tool "$WORK/straight.json") <("$PY" -m json.tool "$WORK/killed.json") | head -20)"
fi

out=$(journal_check "$WORK/straight.json" "$WORK/killed" 2>&1) &&
  pass "1 worker: journal: $out" || fail "1 worker: journal: $out"
resumed=$(sed -n "s/.*, \([0-9]*\) leases cut short.*/\1/p" <<<"$out")
[ "${resumed:-0}" -ge 3 ] && pass "1 worker: $resumed kills landed mid-trial" ||
  fail "1 worker: only ${resumed:-0} kills landed while a trial trained: $(cat "$WORK/kills.log")"

# three workers: the order of decisions depends on timing, the outcome per trial does not
: >"$WORK/kills.log"
mpi=(mpiexec -n 3 "$KILN_BIN" sweep "$cfg" --set sweep.dir="$WORK/multi")
landed=$(kill_reruns 5 "$WORK/multi" "${mpi[@]}")
[ "$landed" -eq 5 ] && pass "3 workers: killed with SIGKILL 5 times, rerun each time" ||
  fail "only $landed of 5 kills landed: $(cat "$WORK/kills.log")"
grep -q "final rerun failed" "$WORK/kills.log" && fail "3 workers: the final rerun failed: $(tail -3 "$WORK/killed.err")"
out=$(journal_check "$WORK/straight.json" "$WORK/multi" 2>&1) &&
  pass "3 workers: every trial reached its end once: $out" || fail "3 workers: $out"
grep -q '"e":"lease".*:g2"' "$WORK/multi/journal.jsonl" && pass "3 workers: the third worker took leases" ||
  fail "3 workers: no lease by worker g2"
finish
