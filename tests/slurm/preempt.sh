#!/usr/bin/env bash
# Preemption on a real Slurm: jobs/train.sbatch (2 ranks, srun --mpi=pmix) interrupted
# mid-run three ways, each finishing with the same parameters, optimizer state and loss curve,
# bit for bit, as the same job left alone:
#   - SIGUSR1 to the job's steps (what --signal=USR1@90 sends before the time limit):
#     kiln checkpoints, exits 75, the script requeues the job, the job resumes;
#   - SIGUSR1 to the batch shell only (--signal=B:USR1): the script passes it on to the ranks;
#   - `scontrol requeue` (what an admin or a preempting job does): SIGTERM, checkpoint,
#     Slurm requeues, the job resumes.
# And jobs/infer.sbatch, sent SIGUSR1 mid-way: it stops after a round of chunks, requeues and
# finishes only the missing chunks into an output byte-identical to an uninterrupted job's.
source "$(dirname "$0")/../e2e/lib.sh"
source "$(dirname "$0")/lib.sh"
slurm_start

STEPS=1200
TRAIN=(--set data.path="$(fmnist_h5)" --set model.hidden=128,128 --set model.dropout=0.1
  --set train.steps=$STEPS --set train.ckpt_every=400 --set train.log_every=1 --set train.keep=10
  --set train.eval_every=300 --set train.eval_batches=4)
export KILN=$KILN_BIN

# submit NAME: the training job with its run in $WORK/NAME; prints the job id. Submitted from
# the checkout by a relative path, as users do (the script finds jobs/kiln_job.sh from it).
submit() {
  (cd "$KILN_SRC" && slurm_submit --chdir="$WORK" --job-name="$1" jobs/train.sbatch \
    "$KILN_SRC/configs/fmnist-mlp.yaml" "${TRAIN[@]}" --set train.out_dir="$WORK/$1")
}

# last_step RUN: the step of the run's newest metrics line (0 before the first)
last_step() {
  tail -n 1 "$WORK/$1/metrics.jsonl" 2>/dev/null | sed -n 's/.*"step":\([0-9]*\).*/\1/p' | grep . || echo 0
}

# interrupt NAME HOW...: submit, run HOW (a command taking the job id) once the run is past a
# quarter of its steps, wait for the job to finish after its requeue, compare with `straight`
interrupt() {
  local name=$1 job
  shift
  job=$(submit "$name")
  local t0=$SECONDS
  while [ "$(last_step "$name")" -lt $((STEPS / 4)) ] && [ $((SECONDS - t0)) -lt 120 ]; do sleep 0.05; done
  "$@" "$job"
  if ! slurm_wait "$job"; then
    # the whole backtrace of a crash: the log goes with the test's directory
    fail "$name: job $job ended $(slurm_field "$job" JobState) $(slurm_field "$job" ExitCode): $(grep -v '^\[kiln' "$(slurm_log "$job")" | tail -n 40)"
    return
  fi
  local log stopped resumed restarts
  log=$(slurm_log "$job")
  stopped=$(sed -n 's/.*checkpointed step \([0-9]*\), exiting for requeue.*/\1/p' "$log" | head -n 1)
  resumed=$(sed -n 's/.*resumed from .*step-0*\([0-9]*\)\.h5.*/\1/p' "$log" | head -n 1)
  restarts=$(slurm_field "$job" Restarts)
  if [ -n "$stopped" ] && [ "$stopped" -lt "$STEPS" ] && [ "$resumed" = "$stopped" ] && [ "$restarts" = 1 ]; then
    pass "$name: stopped at step $stopped of $STEPS with a checkpoint, requeued once, resumed from step $resumed"
  else
    fail "$name: stopped '$stopped', resumed '$resumed', restarts '$restarts'; log: $(grep -E 'kiln job|stop|resumed' "$log")"
  fi
  if "$PY" "$KILN_SRC/tests/fault/compare_runs.py" "$WORK/straight" "$WORK/$name" "$STEPS"; then
    pass "$name: final parameters, optimizer state and loss curve bit-identical to the uninterrupted job"
  else
    fail "$name: differs from the uninterrupted job"
  fi
}

job=$(submit straight)
if slurm_wait "$job" && [ -f "$WORK/straight/summary.json" ]; then
  log=$(slurm_log "$job")
  grep -q "slurm: job $job step 0 'straight' on $SLURM_NODE (1 node): task 0 of 2, local 0 of 2" "$log" &&
    grep -q "\[kiln $job.0 r0 " "$log" &&
    pass "uninterrupted job $job: 2 ranks under srun --mpi=pmix, the log names the job and step" ||
    fail "job $job's log lacks the Slurm line or prefix: $(grep -m 3 'kiln' "$log")"
  grep -q "placement: local rank 0/2, cores 0-0.*1 threads" "$log" &&
    pass "placement from Slurm: local rank 0 of 2, 1 core (--cpus-per-task=1)" ||
    fail "placement: $(grep placement "$log")"
else
  fail "the uninterrupted job $job failed: $(tail -n 5 "$(slurm_log "$job")")"
  finish
  exit 1
fi

usr1_steps() { scancel --signal=USR1 "$1"; }
usr1_batch() { scancel --batch --signal=USR1 "$1"; }
requeue() { scontrol requeue "$1"; }
interrupt usr1-steps usr1_steps
interrupt usr1-batch usr1_batch
interrupt requeue requeue

# batch inference: a wider model over the 60000 training rows, in 60 chunks
"$KILN_BIN" train "$KILN_SRC/configs/fmnist-mlp.yaml" --set data.path="$(fmnist_h5)" --set train.steps=2 \
  --set train.out_dir="$WORK/scorer" >/dev/null 2>&1 || fail "training the model to score with"
INFER=(--model "$WORK/scorer/ckpt/step-00000002.h5" --input "$(fmnist_h5)" --set infer.dataset=train/x
  --set infer.chunk_rows=1000 --set infer.progress_interval=0.2)
infer_job() { # NAME: submit the scoring job writing $WORK/NAME.h5
  slurm_submit --chdir="$WORK" --job-name="$1" "$KILN_SRC/jobs/infer.sbatch" "${INFER[@]}" --output "$WORK/$1.h5"
}
job=$(infer_job scores-straight)
slurm_wait "$job" || fail "uninterrupted infer job $job: $(tail -n 5 "$(slurm_log "$job")")"
job=$(infer_job scores-usr1)
t0=$SECONDS
until grep -qE '^infer: ([1-9][0-9])/60' "$(slurm_log "$job")" 2>/dev/null || [ $((SECONDS - t0)) -gt 120 ]; do sleep 0.1; done
scancel --signal=USR1 "$job"
if slurm_wait "$job"; then
  log=$(slurm_log "$job")
  stopped=$(sed -n 's/.*stopped by a signal with \([0-9]*\) of 60 chunks.*/\1/p' "$log" | head -n 1)
  [ -n "$stopped" ] && [ "$stopped" -lt 60 ] && [ "$(slurm_field "$job" Restarts)" = 1 ] &&
    grep -q "resuming '$WORK/scores-usr1.h5.partial'" "$log" &&
    pass "infer: stopped by SIGUSR1 with $stopped of 60 chunks done, requeued once, resumed the partial output" ||
    fail "infer: stopped '$stopped', restarts $(slurm_field "$job" Restarts): $(grep -E 'kiln job|stopped|resum' "$log")"
  cmp "$WORK/scores-straight.h5" "$WORK/scores-usr1.h5" &&
    pass "infer: the requeued job's output is byte-identical to the uninterrupted job's" ||
    fail "infer: outputs differ"
else
  fail "interrupted infer job $job: $(slurm_field "$job" JobState) $(tail -n 5 "$(slurm_log "$job")")"
fi
finish
