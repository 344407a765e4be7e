#!/usr/bin/env bash
# Sweeps: kiln's ASHA against random search to the end and against Optuna, and the scheduler
# at scale, in one run on this machine. The Fashion-MNIST MLP over lr, weight decay, width,
# batch size and warm-up (configs/fmnist-sweep.yaml's space), BENCH_TRIALS trials, eta 3, rungs
# from 100 steps to BENCH_R_MAX, BENCH_WORKERS workers of one thread each:
#   1. kiln ASHA against kiln random search that trains every trial to r_max (scheduler none),
#      the same sampler and seed (so the same trials): the best test accuracy each finds, the
#      samples each trains on, and the wall time. Target: ASHA within 0.2 points of random
#      search's best at no more than 1/3 of its compute.
#   2. worker utilisation of the ASHA sweep (busy worker-seconds / (workers x wall time),
#      target >= 95%) and the scheduler's own cost per decision (lock, catch up on the journal,
#      decide, append; median over every decision of every worker, target < 20 ms).
#   3. Optuna (PyPI's newest, into bench/.venv; Debian's python3-optuna 3.1 as a second
#      reference when BENCH_DEBIAN_OPTUNA=1): its SuccessiveHalvingPruner with the same eta and
#      rungs, the same budget, trials training the MLP in PyTorch (bench/optuna_sweep.py), on the
#      same cores and workers; kiln runs the same with TPE, as Optuna's default sampler is TPE.
#      Target: kiln at least 3x faster to an equal or better best accuracy.
#   4. the scheduler at scale, simulated: BENCH_SIM_WORKERS workers and BENCH_SIM_TRIALS trials
#      on one journal, split over BENCH_SIM_PROCESSES processes (real lock contention):
#      decisions a second, p99 of a decision, rebuild of the state from the journal. Targets:
#      p99 < 100 ms, rebuild < 2 s.
# Prints a table and the targets, and writes bench/results/sweep-<date>.json.
set -euo pipefail
cd "$(dirname "$0")/.."

build=${KILN_BUILD_DIR:-build}
cpus=${BENCH_CPUS:-0,1}
workers=${BENCH_WORKERS:-2}
trials=${BENCH_TRIALS:-81}
r_min=${BENCH_R_MIN:-100}
r_max=${BENCH_R_MAX:-2700}
seed=${BENCH_SEED:-1}
sim_workers=${BENCH_SIM_WORKERS:-1000}
sim_trials=${BENCH_SIM_TRIALS:-10000}
sim_processes=${BENCH_SIM_PROCESSES:-8}

bench_name=sweep_bench
source bench/lib.sh
[ -f data/fashion-mnist.h5 ] || die "data/fashion-mnist.h5 is missing: import it as the header of configs/fmnist-sweep.yaml shows"
pin=()
command -v taskset >/dev/null && pin=(taskset -c "$cpus")
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
tmp=$(mktemp -d "$PWD/bench/.sweep.XXXXXX") # on the disk the sweeps would use, not a tmpfs
trap 'rm -rf "$tmp"' EXIT
bench_build kiln
kiln=$build/kiln

bench_venv
py=${torch_pythons[-1]}
if ! "$py" -c 'import optuna' 2>/dev/null; then
    say "installing optuna from PyPI into bench/.venv"
    "$py" -m pip install --upgrade --progress-bar off optuna >"$tmp/pip-optuna.log" 2>&1 ||
        { tail -20 "$tmp/pip-optuna.log"; die "pip install optuna failed"; }
fi
optuna_pythons=("$py")
if [ "${BENCH_DEBIAN_OPTUNA:-0}" = 1 ]; then
    /usr/bin/python3 -c 'import optuna' 2>/dev/null || apt-get install -y python3-optuna >"$tmp/apt.log" 2>&1 || true
    /usr/bin/python3 -c 'import optuna, torch' 2>/dev/null && optuna_pythons=(/usr/bin/python3 "$py")
fi

# run_kiln NAME SETS...: the sweep of configs/fmnist-sweep.yaml with this bench's budget on
# $workers MPI workers; prints nothing, leaves $tmp/NAME (the sweep), NAME.wall, NAME.err
run_kiln() {
    local name=$1
    shift
    say "kiln sweep $name ($*)"
    local t0 t1
    t0=$(date +%s.%N)
    "${pin[@]}" mpiexec -n "$workers" --bind-to none "$kiln" sweep configs/fmnist-sweep.yaml \
        --set data.path=data/fashion-mnist.h5 --set sweep.dir="$tmp/$name" --set sweep.trials="$trials" \
        --set sweep.r_min="$r_min" --set sweep.r_max="$r_max" --set sweep.eta=3 --set sweep.seed="$seed" \
        --set train.threads=1 --set train.log_every=1000 --set train.ckpt_every=0 "$@" \
        >"$tmp/$name.out" 2>"$tmp/$name.err" || { tail -5 "$tmp/$name.err"; die "kiln sweep $name failed"; }
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc >"$tmp/$name.wall"
    "$kiln" sweep status "$tmp/$name" --json >"$tmp/$name.json"
}

run_kiln asha --set sweep.scheduler=asha --set sweep.sampler=random
run_kiln full --set sweep.scheduler=none --set sweep.sampler=random
run_kiln tpe --set sweep.scheduler=asha --set sweep.sampler=tpe
optuna_runs=()
for p in "${optuna_pythons[@]}"; do
    i=${#optuna_runs[@]}
    say "optuna ($p): $trials trials, SuccessiveHalvingPruner(min_resource=$r_min, reduction_factor=3)"
    "${pin[@]}" "$p" bench/optuna_sweep.py --data data/fashion-mnist.h5 --trials "$trials" --workers "$workers" \
        --eta 3 --r-min "$r_min" --r-max "$r_max" --seed "$seed" --dir "$tmp/optuna-$i" \
        >"$tmp/optuna-$i.json" 2>"$tmp/optuna-$i.err" || { tail -5 "$tmp/optuna-$i.err"; die "the Optuna side failed"; }
    optuna_runs+=("$tmp/optuna-$i.json")
done
say "simulated scale: $sim_workers workers, $sim_trials trials, $sim_processes processes on one journal"
"$kiln" sweep simulate --workers "$sim_workers" --trials "$sim_trials" --eta 3 --r-min 1 --r-max 81 \
    --journal "$tmp/sim" --processes "$sim_processes" --quiet >"$tmp/sim.json"

mkdir -p bench/results
out=bench/results/sweep-$(date +%Y-%m-%d).json
"$py" - "$tmp" "$workers" "$out" "${optuna_runs[@]}" <<'PYEOF'
import json, re, sys, glob, platform, datetime
tmp, workers, out, optuna_files = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]

def kiln_side(name):
    status = json.load(open(f"{tmp}/{name}.json"))
    rungs = status["rungs"]
    wall = float(open(f"{tmp}/{name}.wall").read())
    samples = 0
    for t in status["trials"]:
        batch = int(t["params"]["train.batch_size"])
        for k, v in enumerate(t["values"]):
            if v is not None:
                samples += (rungs[k] - (rungs[k - 1] if k else 0)) * batch
    busy = 0.0
    for line in open(f"{tmp}/{name}/journal.jsonl"):
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("e") in ("result", "fail"):
            busy += e.get("busy", 0.0)
    medians = [float(m) for m in re.findall(r"decisions, median ([0-9.]+) ms", open(f"{tmp}/{name}.err").read())]
    decisions = [int(m) for m in re.findall(r": (\d+) decisions, median", open(f"{tmp}/{name}.err").read())]
    best = status.get("best", {})
    return {"best_accuracy": best.get("value") if best.get("rung") == len(rungs) - 1 else None,
            "best_trial": best.get("trial"), "samples": samples, "wall_s": wall,
            "utilisation": busy / (workers * wall), "busy_s": busy,
            "decision_median_ms": sorted(medians)[len(medians) // 2] if medians else None,
            "decisions": sum(decisions), "trials": len(status["trials"])}

asha, full, tpe = kiln_side("asha"), kiln_side("full"), kiln_side("tpe")
optuna = [json.load(open(f)) for f in optuna_files]
sim = json.load(open(f"{tmp}/sim.json"))
res = {"date": datetime.date.today().isoformat(), "machine": platform.processor() or platform.machine(),
       "workers": workers, "asha": asha, "full": full, "tpe": tpe, "optuna": optuna, "sim": sim}
json.dump(res, open(out, "w"), indent=1)

def pct(x):
    return f"{100 * x:.2f}%" if x is not None else "-"
print(f"\n{'side':44s} {'best acc':>9s} {'samples':>12s} {'wall s':>8s}")
for label, s in (("kiln ASHA, random sampler", asha), ("kiln random search, every trial to r_max", full),
                 ("kiln ASHA, TPE", tpe)):
    print(f"{label:44s} {pct(s['best_accuracy']):>9s} {s['samples']:>12,d} {s['wall_s']:>8.1f}")
for o in optuna:
    label = f"Optuna {o['optuna']} SHA pruner, TPE, torch {o['torch'].split('+')[0]}"
    print(f"{label:44s} {pct(o['best_accuracy']):>9s} {o['samples']:>12,d} {o['wall_s']:>8.1f}")
print("\ntargets:")
gap = 100 * (full["best_accuracy"] - asha["best_accuracy"])
ratio = asha["samples"] / full["samples"]
print(f"  ASHA within 0.2 points of random search's best: {gap:+.2f} points "
      f"({'met' if gap <= 0.2 else 'MISSED'})")
print(f"  ASHA compute <= 1/3 of random search's: {ratio:.3f} ({'met' if ratio <= 1 / 3 else 'MISSED'})")
print(f"  worker utilisation >= 95%: ASHA {pct(asha['utilisation'])}, TPE {pct(tpe['utilisation'])}, "
      f"full {pct(full['utilisation'])} ({'met' if min(asha['utilisation'], tpe['utilisation']) >= 0.95 else 'MISSED'})")
dm = max(x["decision_median_ms"] for x in (asha, full, tpe))
print(f"  decision median < 20 ms: {dm:.2f} ms at most over the three sweeps ({'met' if dm < 20 else 'MISSED'})")
for o in optuna:
    speed = o["wall_s"] / tpe["wall_s"]
    better = tpe["best_accuracy"] >= o["best_accuracy"]
    print(f"  kiln >= 3x faster than Optuna {o['optuna']} to an equal or better best: {speed:.2f}x, "
          f"best {pct(tpe['best_accuracy'])} vs {pct(o['best_accuracy'])} "
          f"({'met' if speed >= 3 and better else 'MISSED'})")
dps = sim["decisions"] / sim["wall_s"]
print(f"  simulated {sim['processes']} processes, {sim['trials']} trials: {dps:,.0f} decisions/s, "
      f"p99 {1e3 * sim['decision_p99_s']:.2f} ms ({'met' if sim['decision_p99_s'] < 0.1 else 'MISSED'}), "
      f"rebuild {sim['rebuild_s']:.3f} s of {sim['journal_lines']} lines ({'met' if sim['rebuild_s'] < 2 else 'MISSED'})")
print(f"\nwrote {out}")
PYEOF
