#!/usr/bin/env bash
# A sweep as a Slurm job array on a real single-node Slurm: jobs/sweep.sbatch --array=0-2,
# each task a worker of the same sweep directory. The node has 2 cores, so two tasks run and
# the third joins late. Mid-trial, one task is cancelled (scancel: SIGTERM, it gives its trial
# back, the job stays cancelled) and one requeued (scontrol requeue: SIGTERM, it gives its
# trial back, Slurm starts it again and it rejoins). The sweep completes with no trial lost or
# duplicated: every trial reaches its end, each result is recorded once, and each trial's
# results equal those of the same sweep run on one process apart.
source "$(dirname "$0")/../e2e/lib.sh"
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/../sweep/lib.sh"
slurm_start
# trials long enough (a second or more a rung) to be caught mid-training
sweep_configs "max_retries: 10" "lease_s: 20"
sed -i -e 's/hidden: \[32\]/hidden: [128, 128]/' -e 's/r_min: 20/r_min: 200/' -e 's/r_max: 80/r_max: 1600/' \
  -e 's/trials: 8/trials: 10/' -e 's/eta: 2/eta: 3/' "$WORK/sweep.yaml"
"$KILN_BIN" sweep "$WORK/sweep.yaml" --set sweep.dir="$WORK/straight" >/dev/null 2>"$WORK/straight.err" ||
  { fail "the sweep on one process failed: $(tail -3 "$WORK/straight.err")"; finish; exit 1; }
"$KILN_BIN" sweep status "$WORK/straight" --json >"$WORK/straight.json"
export KILN=$KILN_BIN

array=$(cd "$KILN_SRC" && slurm_submit --chdir="$WORK" --job-name=sweep --array=0-2 \
  --output="$SLURM_LOGS/sweep-%A_%a.out" jobs/sweep.sbatch "$WORK/sweep.yaml")
log() { echo "$SLURM_LOGS/sweep-${array}_$1.out"; }
# wait_training TASK: until the task's worker has started a trial and trained a while in it
wait_training() {
  local t0=$SECONDS
  until grep -q "to rung" "$(log "$1")" 2>/dev/null; do
    [ $((SECONDS - t0)) -lt 120 ] || { fail "task $1 started no trial in 120 s"; return 1; }
    sleep 0.1
  done
  sleep 0.3
}

wait_training 1 && scancel "${array}_1" && pass "task 1 cancelled while training $(grep 'to rung' "$(log 1)" | tail -1 | sed 's/.*sweep: //')"
wait_training 2 && scontrol requeue "${array}_2" && pass "task 2 requeued while training $(grep 'to rung' "$(log 2)" | tail -1 | sed 's/.*sweep: //')"

for task in 0 1 2; do slurm_wait "${array}_$task" 400 || true; done
states=$(for task in 0 1 2; do echo -n "$task:$(slurm_field "${array}_$task" JobState) "; done)
[ "$(slurm_field "${array}_0" JobState)" = COMPLETED ] && [ "$(slurm_field "${array}_1" JobState)" = CANCELLED ] &&
  [ "$(slurm_field "${array}_2" JobState)" = COMPLETED ] && [ "$(slurm_field "${array}_2" Restarts)" -ge 1 ] &&
  pass "tasks ended $states(task 2 restarted $(slurm_field "${array}_2" Restarts) time)" ||
  fail "tasks ended $states; logs: $(tail -n 4 "$(log 0)" "$(log 1)" "$(log 2)")"
releases=$(grep -c '"e":"release"' "$WORK/sweep/journal.jsonl" || true)
[ "$releases" -ge 2 ] && pass "the cancelled and the requeued task each gave their trial back ($releases releases)" ||
  fail "$releases trials given back, expected 2: $(grep -h -E 'signal|given back|exit' "$(log 1)" "$(log 2)" | head -5)"
grep -q "resumed from" "$(log 0)" "$(log 2)" && pass "a trial given back was resumed from its checkpoint by another worker" ||
  fail "no worker resumed a trial from a checkpoint"
if out=$(journal_check "$WORK/straight.json" "$WORK/sweep" 2>&1); then
  pass "no trial lost or duplicated: $out; results equal to the sweep on one process"
else
  fail "$out"
fi
finish
