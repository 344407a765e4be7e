#!/usr/bin/env bash
# Resume is exact: N steps straight, versus a run killed with SIGKILL after its checkpoint at
# N/2 and continued with --resume auto, give bit-identical parameters, optimizer state and loss
# curve. Dropout is on so that the per-step random masks are part of what must match.
source "$(dirname "$0")/../e2e/lib.sh"

run_pair() { # name config steps overrides...
  local name=$1 config=$2 steps=$3
  shift 3
  local half=$((steps / 2))
  local common=(--set train.steps="$steps" --set train.ckpt_every="$half" --set train.log_every=1
    --set train.keep=10 --set train.threads=1 "$@")
  "$KILN_BIN" train "$config" "${common[@]}" --set train.out_dir="$WORK/$name-straight" \
    > /dev/null 2>"$WORK/$name-straight.log"
  KILN_LOG=warn "$KILN_BIN" train "$config" "${common[@]}" --set train.out_dir="$WORK/$name-killed" \
    > /dev/null 2>"$WORK/$name-killed.log" &
  local pid=$! ckpt
  ckpt=$(printf '%s/%s-killed/ckpt/step-%08d.h5' "$WORK" "$name" "$half")
  while [ ! -f "$ckpt" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.02; done
  # let it run a step or two past the checkpoint (steps the resume must redo), then kill it
  while kill -0 "$pid" 2>/dev/null &&
    [ "$(tail -n 1 "$WORK/$name-killed/metrics.jsonl" | sed 's/.*"step":\([0-9]*\).*/\1/')" -le "$((half + 1))" ]; do
    sleep 0.005
  done
  if kill -9 "$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null || true
    last=$(tail -n 1 "$WORK/$name-killed/metrics.jsonl" | sed 's/.*"step":\([0-9]*\).*/\1/')
    pass "$name: killed with SIGKILL at step ~$last of $steps (checkpoint at $half)"
  else
    fail "$name: the run finished before it could be killed; make it longer"
    return
  fi
  "$KILN_BIN" train "$config" "${common[@]}" --set train.out_dir="$WORK/$name-killed" --resume auto \
    > /dev/null 2>"$WORK/$name-resumed.log"
  grep -q "resumed from .*step-$(printf %08d "$half").h5" "$WORK/$name-resumed.log" &&
    pass "$name: resumed from the step-$half checkpoint" || fail "$name: did not resume from step $half"
  if "$PY" "$(dirname "$0")/compare_runs.py" "$WORK/$name-straight" "$WORK/$name-killed" "$steps"; then
    pass "$name: final parameters, optimizer state and loss curve bit-identical"
  else
    fail "$name: resumed run differs from the uninterrupted one"
  fi
}

run_pair mlp "$KILN_SRC/configs/fmnist-mlp.yaml" 200 --set data.path="$(fmnist_h5)" \
  --set model.dropout=0.1 --set train.eval_every=50
# Preemption: SIGUSR1 (what Slurm sends before the end) checkpoints at the end of the current
# step and exits with 75; rerunning continues to the same result as the uninterrupted run.
preempt() { # name config steps overrides... (reuses $name-straight from run_pair)
  local name=$1 config=$2 steps=$3
  shift 3
  local common=(--set train.steps="$steps" --set train.ckpt_every="$((steps / 2))" --set train.log_every=1
    --set train.keep=10 --set train.threads=1 "$@")
  "$KILN_BIN" train "$config" "${common[@]}" --set train.out_dir="$WORK/$name-usr1" \
    >/dev/null 2>"$WORK/$name-usr1.log" &
  local pid=$! rc=0
  local at
  while kill -0 "$pid" 2>/dev/null; do
    at=$(tail -n 1 "$WORK/$name-usr1/metrics.jsonl" 2>/dev/null | sed -n 's/.*"step":\([0-9]*\).*/\1/p' || true)
    [ "${at:-0}" -ge 30 ] && break
    sleep 0.005
  done
  kill -USR1 "$pid" 2>/dev/null
  wait "$pid" || rc=$?
  [ "$rc" -eq 75 ] && pass "$name: SIGUSR1 -> checkpoint and exit 75 ($(grep -m1 -o 'checkpointed step [0-9]*' "$WORK/$name-usr1.log"))" ||
    fail "$name: SIGUSR1 gave exit $rc: $(tail -n 2 "$WORK/$name-usr1.log")"
  "$KILN_BIN" train "$config" "${common[@]}" --set train.out_dir="$WORK/$name-usr1" >/dev/null 2>&1
  if "$PY" "$(dirname "$0")/compare_runs.py" "$WORK/$name-straight" "$WORK/$name-usr1" "$steps"; then
    pass "$name: preempted and rerun, bit-identical to the uninterrupted run"
  else
    fail "$name: preempted run differs"
  fi
}
preempt mlp "$KILN_SRC/configs/fmnist-mlp.yaml" 200 --set data.path="$(fmnist_h5)" \
  --set model.dropout=0.1 --set train.eval_every=50

run_pair gpt "$KILN_SRC/configs/gpt-fortunes.yaml" 40 --set data.path="$(fortunes_h5)" \
  --set model.n_layer=2 --set model.n_embd=64 --set model.n_head=2 --set model.block_size=64 \
  --set train.batch_size=8 --set train.micro_batch=4 --set model.dropout=0.1 \
  --set train.eval_every=10 --set train.eval_batches=2
finish
