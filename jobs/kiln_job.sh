# shellcheck shell=bash
# What every jobs/*.sbatch script shares: where kiln is, the srun line, and preemption.
# Sourced by the sbatch scripts (see docs/slurm.md); not a job itself.
#
# Variables a user or site may set (sbatch passes the submitting shell's environment on):
#   KILN               the kiln binary (default: `kiln` on PATH, else the checkout's
#                      build/kiln or the install's bin/kiln next to KILN_HOME)
#   KILN_MPI           srun's --mpi plugin (default pmix: Debian's Open MPI 4.1 talks PMIx to
#                      Slurm's mpi/pmix; pmi2 needs an Open MPI built --with-pmi). `srun
#                      --mpi=list` shows a site's plugins.
#   KILN_SRUN_ARGS     extra srun options, word-split (e.g. "--cpu-bind=cores")
#   KILN_MAX_REQUEUES  how often a preempted job requeues itself (default 50)
#
# Preemption: kiln catches SIGUSR1 and SIGTERM, agrees across ranks, checkpoints at the end of
# the step and exits 75. kiln_job_run then requeues the job (same job id, so the same run
# directory), and the requeued job resumes from `latest`. Signals reach the ranks either way:
#   --signal=USR1@90    Slurm signals the job steps, i.e. the ranks themselves (the default
#                       in these scripts).
#   --signal=B:USR1@90  Slurm signals the batch shell only; the trap below passes it on to the
#                       ranks with `scancel --signal=USR1` (steps only). Without the trap bash
#                       would die of USR1 and take the job down without a checkpoint.
# A scancel or a Slurm preemption sends SIGTERM to the ranks and to this shell: bash dies
# (no trap for TERM on purpose: a cancelled job must not requeue itself), kiln checkpoints
# within KillWait, and Slurm itself requeues the job where the preemption says so.

: "${SLURM_JOB_ID:?this runs inside a Slurm job (sbatch jobs/NAME.sbatch ...)}"
KILN_MPI=${KILN_MPI:-pmix}
KILN_MAX_REQUEUES=${KILN_MAX_REQUEUES:-50}
KILN_EXIT_PREEMPTED=75
if [ -z "${KILN:-}" ]; then
  KILN=$(command -v kiln || true)
  [ -n "$KILN" ] || KILN=$KILN_HOME/build/kiln
  # installed: KILN_HOME is PREFIX/share/kiln
  [ -x "$KILN" ] || KILN=$KILN_HOME/../../bin/kiln
fi
[ -x "$KILN" ] || { echo "kiln job: no kiln binary at '$KILN' (set KILN or build $KILN_HOME)" >&2; exit 2; }

kiln_job_say() { echo "[kiln job $SLURM_JOB_ID restart ${SLURM_RESTART_COUNT:-0} $(date +%FT%T)] $*" >&2; }

# Pass a signal the batch shell got (--signal=B:...) on to the job's steps.
kiln_job_forward() {
  kiln_job_say "batch shell got SIG$1: passing it on to the ranks"
  scancel --signal="$1" "$SLURM_JOB_ID" || kiln_job_say "scancel --signal=$1 failed"
}

# kiln_job_run SUBCOMMAND ARGS...: srun kiln on every task of the job; on exit 75 requeue the
# job. Exits with kiln's code (never returns).
kiln_job_run() {
  kiln_job_say "srun --mpi=$KILN_MPI $KILN $*"
  trap 'kiln_job_forward USR1' USR1
  # srun does not inherit --cpus-per-task from the allocation since Slurm 22.05
  # shellcheck disable=SC2086
  srun --mpi="$KILN_MPI" ${SLURM_CPUS_PER_TASK:+--cpus-per-task=$SLURM_CPUS_PER_TASK} \
    ${KILN_SRUN_ARGS:-} "$KILN" "$@" &
  local pid=$! rc="" r
  # a trapped signal interrupts `wait` (status > 128) while srun runs on: wait again. If srun
  # ended just then, one more `wait` still returns its own status (127 once already reaped).
  while [ -z "$rc" ]; do
    wait "$pid"
    r=$?
    kill -0 "$pid" 2>/dev/null && continue
    rc=$r
    if [ "$r" -gt 128 ]; then
      wait "$pid" 2>/dev/null
      r=$?
      [ "$r" -eq 127 ] || rc=$r
    fi
  done
  trap - USR1
  if [ "$rc" -eq "$KILN_EXIT_PREEMPTED" ]; then
    if [ "${SLURM_RESTART_COUNT:-0}" -ge "$KILN_MAX_REQUEUES" ]; then
      kiln_job_say "preempted (exit 75) but already requeued $KILN_MAX_REQUEUES times (KILN_MAX_REQUEUES): giving up; rerun to resume"
      exit "$rc"
    fi
    kiln_job_say "preempted: kiln checkpointed and exited 75; requeueing (the job resumes from latest)"
    # the requeue ends this script: Slurm kills the job and queues it again
    scontrol requeue "$SLURM_JOB_ID" && sleep 60
    kiln_job_say "scontrol requeue did not take (is requeue allowed here? --requeue, JobRequeue): exit 75"
  fi
  kiln_job_say "kiln exited $rc"
  exit "$rc"
}
