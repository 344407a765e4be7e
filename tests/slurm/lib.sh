# shellcheck shell=bash
# A real single-node Slurm for tests: munged, slurmctld and slurmd from Debian's packages,
# started as root in this test's work directory with their own munge key and socket, config,
# state, spool and logs, and ports found free, so several of these (and a site's own Slurm)
# can run on one machine at once. Only the daemons started here are stopped, on any exit:
# the EXIT trap, and a watchdog (its own session) should the test be killed outright.
#
# Sourced by tests/slurm/*.sh after tests/e2e/lib.sh. Gives:
#   slurm_start            start the cluster; exports SLURM_CONF for sbatch/squeue/scontrol
#   slurm_submit ARGS...   sbatch --parsable ARGS (logs in $SLURM_LOGS), prints the job id
#   slurm_wait JOB [S]     wait (at most S seconds, default 240) until the job has left the
#                          queue for good; 0 only if it COMPLETED with exit code 0
#   slurm_field JOB KEY    a field of `scontrol show job` (JobState, ExitCode, Restarts ...)
#   slurm_log JOB          the job's output file
SLURM_NODE=kiln0
# A requeued job's old credential stays revoked on the node this long (Slurm's default is
# 120 s); until then the job may not start again there, and Slurm holds it back meanwhile.
SLURM_CRED_EXPIRE=${SLURM_CRED_EXPIRE:-5}

if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: tests/slurm start slurmd, which runs as root (CI runs as root)"
  exit 77
fi
for d in munged slurmctld slurmd sbatch; do
  command -v "$d" >/dev/null || { echo "FAIL: $d not found: bash scripts/deps.sh installs slurm-wlm and munge" >&2; exit 1; }
done

SLURM_DIR=$WORK/slurm
SLURM_LOGS=$WORK/logs
SLURM_PIDS=()

# Three consecutive free ports for slurmctld, slurmd and the start of srun's range (32 ports).
slurm_free_ports() {
  "$PY" - <<'EOF'
import random, socket
def free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()
for _ in range(500):
    base = random.randrange(20000, 60000)
    if all(free(p) for p in range(base, base + 34)):
        print(base, base + 1, base + 2)
        break
EOF
}

# The node as slurmd sees it (sockets, cores, threads), so slurmd does not drain it as
# misconfigured; memory is declared small: the jobs here need little.
slurm_node_line() {
  local hw
  hw=$(slurmd -C | head -n 1)
  local field out="NodeName=$SLURM_NODE NodeAddr=127.0.0.1"
  for field in CPUs Boards SocketsPerBoard CoresPerSocket ThreadsPerCore; do
    out="$out $(tr ' ' '\n' <<<"$hw" | grep "^$field=")"
  done
  echo "$out RealMemory=1000 State=UNKNOWN"
}

slurm_write_conf() {
  local ctld_port=$1 d_port=$2 srun_lo=$3
  cat > "$SLURM_DIR/slurm.conf" <<EOF
# written by tests/slurm/lib.sh for one test run
ClusterName=kilntest
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SrunPortRange=$srun_lo-$((srun_lo + 31))
AuthType=auth/munge
CredType=cred/munge
# cred_expire: how long a requeued job waits before it may start again (default 120 s)
AuthInfo=socket=$SLURM_DIR/munge-run/munge.socket,cred_expire=$SLURM_CRED_EXPIRE
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$SLURM_DIR/state
SlurmdSpoolDir=$SLURM_DIR/spool
TmpFS=$SLURM_DIR/tmp
SlurmctldPidFile=$SLURM_DIR/run/slurmctld.pid
SlurmdPidFile=$SLURM_DIR/run/slurmd.pid
SlurmctldLogFile=$SLURM_DIR/log/slurmctld.log
SlurmdLogFile=$SLURM_DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
SchedulerType=sched/backfill
ReturnToService=2
JobRequeue=1
KillWait=30
MinJobAge=3600
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
$(slurm_node_line)
PartitionName=debug Nodes=$SLURM_NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

# Processes of this cluster that outlived their daemons: slurmstepd holding its files, and
# job tasks (kiln, srun) working in this test's directory. Nothing else is touched.
slurm_leftovers() {
  local p pid fd
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [ "$pid" = $$ ] && continue
    case "$(cat "$p/comm" 2>/dev/null)" in
      slurmstepd)
        for fd in "$p"/fd/*; do
          case "$(readlink "$fd" 2>/dev/null)" in "$SLURM_DIR"/*) echo "$pid"; break ;; esac
        done ;;
      kiln | srun) case "$(readlink "$p/cwd" 2>/dev/null)" in "$WORK" | "$WORK"/*) echo "$pid" ;; esac ;;
    esac
  done
}

# 1 while a process runs (a zombie, not yet reaped by this shell, has ended).
slurm_alive() { [ -e "/proc/$1" ] && ! grep -q '^[0-9]* (.*) Z' "/proc/$1/stat" 2>/dev/null; }

# Cancel the jobs, give them a moment to end, then stop what slurm_start started.
slurm_stop() {
  local pid
  if [ -n "${SLURM_CONF:-}" ] && [ ${#SLURM_PIDS[@]} -gt 0 ]; then
    scancel --quiet --user=root 2>/dev/null || true
    for _ in $(seq 50); do
      [ -z "$(squeue -h 2>/dev/null)" ] && break
      sleep 0.2
    done
  fi
  local pids leftovers
  mapfile -t leftovers < <(slurm_leftovers)
  pids=("${SLURM_PIDS[@]}" "${leftovers[@]}")
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 50); do
    local alive=0
    for pid in "${pids[@]}"; do slurm_alive "$pid" && alive=1; done
    [ "$alive" -eq 0 ] && break
    sleep 0.2
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  [ -z "${SLURM_WATCHDOG:-}" ] || kill "$SLURM_WATCHDOG" 2>/dev/null || true
  wait 2>/dev/null || true # reap the daemons this shell started
  SLURM_PIDS=()
}

# The EXIT trap. set +e: the clean-up goes on past anything that fails in it.
slurm_on_exit() {
  local rc=$?
  set +e
  if [ "$rc" -ne 0 ] && [ -d "$SLURM_DIR/log" ]; then
    echo "--- slurm daemon logs (last lines) ---" >&2
    tail -n 15 "$SLURM_DIR"/log/*.log >&2 2>/dev/null
  fi
  slurm_stop
  rm -rf "$WORK"
  exit "$rc"
}

slurm_start() {
  mkdir -p "$SLURM_DIR"/{munge-etc,munge-run,state,spool,tmp,run,log} "$SLURM_LOGS"
  chmod 700 "$SLURM_DIR/munge-etc"
  chmod 755 "$SLURM_DIR/munge-run"
  head -c 1024 /dev/urandom > "$SLURM_DIR/munge-etc/munge.key"
  chmod 400 "$SLURM_DIR/munge-etc/munge.key"
  read -r ctld_port d_port srun_lo < <(slurm_free_ports)
  [ -n "${srun_lo:-}" ] || { echo "FAIL: no free ports for Slurm" >&2; exit 1; }
  slurm_write_conf "$ctld_port" "$d_port" "$srun_lo"
  export SLURM_CONF=$SLURM_DIR/slurm.conf
  # jobs (and Open MPI / PMIx inside them) keep their temporary files here too
  export TMPDIR=$SLURM_DIR/tmp
  trap slurm_on_exit EXIT
  trap 'exit 143' TERM INT

  # foreground daemons: their pids are ours to stop, no pid-file races
  munged --foreground --force --key-file="$SLURM_DIR/munge-etc/munge.key" \
    --socket="$SLURM_DIR/munge-run/munge.socket" --pid-file="$SLURM_DIR/run/munged.pid" \
    --seed-file="$SLURM_DIR/munge-etc/seed" --log-file="$SLURM_DIR/log/munged.log" \
    >>"$SLURM_DIR/log/munged.out" 2>&1 &
  SLURM_PIDS+=($!)
  for _ in $(seq 100); do [ -S "$SLURM_DIR/munge-run/munge.socket" ] && break; sleep 0.1; done
  slurmctld -D -f "$SLURM_CONF" >>"$SLURM_DIR/log/slurmctld.out" 2>&1 &
  SLURM_PIDS+=($!)
  slurmd -D -f "$SLURM_CONF" -N "$SLURM_NODE" >>"$SLURM_DIR/log/slurmd.out" 2>&1 &
  SLURM_PIDS+=($!)
  # should this shell be killed without running its trap, stop the daemons anyway
  setsid bash -c 'while kill -0 '$$' 2>/dev/null; do sleep 1; done; kill '"${SLURM_PIDS[*]}"' 2>/dev/null' \
    </dev/null >/dev/null 2>&1 &
  SLURM_WATCHDOG=$!

  local state=""
  for _ in $(seq 150); do
    state=$(sinfo -h -n "$SLURM_NODE" -o %T 2>/dev/null || true)
    [ "$state" = idle ] && break
    sleep 0.2
  done
  if [ "$state" != idle ]; then
    echo "FAIL: the test Slurm did not come up (node state '$state')" >&2
    exit 1
  fi
  echo "slurm: controller on port $ctld_port, node $SLURM_NODE idle ($(slurm_node_line | cut -d' ' -f3-7))"
}

slurm_field() {
  scontrol show job -o "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}

slurm_submit() {
  sbatch --parsable --output="$SLURM_LOGS/%x-%j.out" "$@"
}

slurm_log() { ls "$SLURM_LOGS"/*-"$1".out 2>/dev/null | head -n 1; }

# Wait for a job to finish: requeues included (each waits cred_expire before it starts again).
slurm_wait() {
  local job=$1 limit=${2:-240} t0=$SECONDS state reason
  while [ $((SECONDS - t0)) -lt "$limit" ]; do
    state=$(slurm_field "$job" JobState)
    reason=$(slurm_field "$job" Reason)
    case "$state" in
      COMPLETED | FAILED | CANCELLED | TIMEOUT | OUT_OF_MEMORY | NODE_FAIL | BOOT_FAIL | DEADLINE | PREEMPTED)
        [ "$state" = COMPLETED ] && [ "$(slurm_field "$job" ExitCode)" = 0:0 ]
        return ;;
      "") echo "job $job is unknown to the controller" >&2; return 1 ;;
    esac
    sleep 0.3
  done
  echo "job $job still $state ($reason) after ${limit}s" >&2
  scancel "$job"
  return 1
}
