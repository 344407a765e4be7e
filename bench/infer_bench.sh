#!/usr/bin/env bash
# Batch inference, end to end: `kiln infer` against bench/torch_infer.py (Debian's
# python3-torch reading and writing with h5py, the same durable per-chunk progress) on the
# trained Fashion-MNIST MLP and its test set repeated to BENCH_ROWS rows, in one run, pinned to
# the same cores; and kiln's compute rate against the OpenBLAS SGEMM rate on the forward GEMMs
# of the same shapes, measured in the same run. Both write the class probabilities only
# (kiln: infer.top_k=0); one more kiln run adds the top-5 for reference. Every side runs at
# every thread count in BENCH_THREADS, once per round, the sides taking turns within a round,
# and is scored by its best round at its best thread count (as bench/train_bench.sh; see
# bench/README.md). Prints a table and the issue's targets and writes
# bench/results/infer-<date>.json. Knobs (environment):
#   KILN_BUILD_DIR     build directory (default build; configured only if it does not exist)
#   BENCH_CPUS         cores to pin every process to (default 0,1)
#   BENCH_THREADS      thread counts to try (default "1 2")
#   BENCH_ROUNDS       rounds (default 3)
#   BENCH_SECONDS      timed seconds of each GEMM-rate run (default 5)
#   BENCH_ROWS         input rows, the 10000 test rows repeated (default 1000000, ~0.8 GB)
#   BENCH_MODEL        a kiln MLP checkpoint (default: train configs/fmnist-mlp.yaml first)
#   BENCH_TRAIN_STEPS  steps of that training (default: the config's)
#   BENCH_TMP          where the input and outputs go (default /tmp)
set -euo pipefail
cd "$(dirname "$0")/.."

build=${KILN_BUILD_DIR:-build}
py=${KILN_PYTHON:-/usr/bin/python3}
cpus=${BENCH_CPUS:-0,1}
thread_counts=${BENCH_THREADS:-1 2}
rounds=${BENCH_ROUNDS:-3}
gemm_s=${BENCH_SECONDS:-5}
rows=${BENCH_ROWS:-1000000}
chunk_rows=16384 batch=256 mlp_shape=784,512,512,10

bench_name=infer_bench
source bench/lib.sh
[ -f data/fashion-mnist.h5 ] || die "data/fashion-mnist.h5 is missing: import it as the header of configs/fmnist-mlp.yaml shows"
require_torch
pin=()
command -v taskset >/dev/null && pin=(taskset -c "$cpus")
tmp=$(mktemp -d "${BENCH_TMP:-/tmp}/infer_bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

bench_build kiln kiln_bench_gemm
model=${BENCH_MODEL:-}
if [ -z "$model" ]; then
    steps=()
    [ -n "${BENCH_TRAIN_STEPS:-}" ] && steps=(--set "train.steps=$BENCH_TRAIN_STEPS")
    say "training configs/fmnist-mlp.yaml for the model"
    "${pin[@]}" "$build/kiln" train configs/fmnist-mlp.yaml "${steps[@]}" --set "train.out_dir=$tmp/train" \
        >"$tmp/train.log" 2>&1 || { tail -20 "$tmp/train.log"; die "training failed"; }
    model="$tmp/train/ckpt/$(head -n 1 "$tmp/train/ckpt/latest")"
fi
say "input: the test set repeated to $rows rows"
"$py" - data/fashion-mnist.h5 "$tmp/in.h5" "$rows" <<'EOF'
import sys, h5py, numpy as np
x = h5py.File(sys.argv[1])["test/x"][()]
rows = int(sys.argv[3])
with h5py.File(sys.argv[2], "w") as f:
    d = f.create_dataset("x", (rows, x.shape[1]), np.uint8)
    for lo in range(0, rows, len(x)):
        d[lo:min(rows, lo + len(x))] = x[:min(len(x), rows - lo)]
EOF

now() { date +%s.%N; }
# The limit at t threads is the better of one GEMM on t threads and t single-threaded GEMMs
# side by side (how kiln infer splits its forwards), each unbound and bound.
run_gemm() { # threads round
    local bind mode
    for bind in false true; do
        for mode in threads workers; do
            [ "$mode" = workers ] && [ "$1" -eq 1 ] && continue
            OMP_PROC_BIND=$bind "${pin[@]}" "$build/bench/kiln_bench_gemm" --forward "--$mode" "$1" \
                --seconds "$gemm_s" --mlp "$batch,$mlp_shape" --gpt 1,1,64,16,64 \
                >"$tmp/gemm-$1-$mode-bind_$bind-r$2.json"
        done
    done
}
run_kiln() { # name threads extra-args...: kiln's own report and the wall time around it
    local name=$1 t=$2
    shift 2
    rm -f "$tmp/kiln.h5"
    local t0
    t0=$(now)
    "${pin[@]}" "$build/kiln" infer --model "$model" --input "$tmp/in.h5" --output "$tmp/kiln.h5" \
        --set "infer.threads=$t" --set "infer.chunk_rows=$chunk_rows" --set "infer.batch=$batch" "$@" \
        >"$tmp/$name.out" 2>"$tmp/$name.log" || { tail -20 "$tmp/$name.log"; die "kiln infer failed"; }
    echo "$t0 $(now)" >"$tmp/$name.wall"
}
run_torch() { # name threads
    rm -f "$tmp/torch.h5"
    local t0
    t0=$(now)
    "${pin[@]}" "$py" bench/torch_infer.py --model "$model" --input "$tmp/in.h5" --output "$tmp/torch.h5" \
        --threads "$2" --chunk-rows "$chunk_rows" --batch "$batch" >"$tmp/$1.json"
    echo "$t0 $(now)" >"$tmp/$1.wall"
}

for r in $(seq 1 "$rounds"); do
    for t in $thread_counts; do
        say "round $r/$rounds, threads=$t: OpenBLAS forward SGEMM rate, kiln infer, torch_infer.py"
        run_gemm "$t" "$r"
        run_kiln "kiln-$t-r$r" "$t" --set infer.top_k=0
        run_torch "torch-$t-r$r" "$t"
    done
done
max_t=$(echo "$thread_counts" | tr ' ' '\n' | sort -n | tail -1)
say "threads=$max_t: kiln infer (probabilities and top-5)"
run_kiln "kiln-top5" "$max_t" --set infer.top_k=5

mkdir -p bench/results
result="bench/results/infer-$(date +%Y%m%d-%H%M%S).json"
cpu_model=$(lscpu | sed -n 's/^Model name: *//p')
kiln_rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git status --porcelain -- src include CMakeLists.txt 2>/dev/null)" ] && kiln_rev="$kiln_rev+dirty"
load=$(cut -d' ' -f1 /proc/loadavg)

"$py" - "$tmp" "$result" "$thread_counts" "$rounds" "$cpu_model" "$cpus" "$kiln_rev" "$rows" "$load" <<'EOF'
import datetime, glob, json, re, statistics, sys
import h5py, numpy as np
tmp, result, threads, rounds, cpu_model, cpus, kiln_rev, rows, load = sys.argv[1:10]
threads, rounds, rows = threads.split(), range(1, int(rounds) + 1), int(rows)
wall = lambda name: (lambda a, b: float(b) - float(a))(*open(f"{tmp}/{name}.wall").read().split())
REPORT = re.compile(r"([\d.]+) s end to end, (\d+) rows/s; compute (\d+) rows/s per rank "
                    r"\(rank 0: read ([\d.]+) s, compute ([\d.]+) s, write ([\d.]+) s\)")


def kiln_run(name):
    m = REPORT.search(open(f"{tmp}/{name}.out").read())
    e2e, _, compute_rate, read_s, compute_s, write_s = map(float, m.groups())
    return dict(seconds=e2e, rows_per_s=rows / e2e, wall_s=wall(name), compute_rows_per_s=compute_rate,
                read_s=read_s, compute_s=compute_s, write_s=write_s)


def gemm_round(t, r):
    """Round r's limit at t threads: the best of its configurations (one GEMM on t threads or
    t single-threaded side by side; unbound or bound)."""
    runs = []
    for f in sorted(glob.glob(f"{tmp}/gemm-{t}-*-r{r}.json")):
        g = json.load(open(f))
        mode = f"{t} single-threaded side by side" if g["workers"] > 1 else f"one on {t} threads"
        bound = "bound" if "bind_true" in f else "unbound"
        runs.append(dict(g["models"]["mlp"], mode=f"{mode}, {bound}", workers=g["workers"]))
    return max(runs, key=lambda g: g["gflops"])


def best(runs, key):
    """The run with the highest `key` in {threads: [run per round]}, with its threads."""
    return max(((t, x) for t, xs in runs.items() for x in xs), key=lambda tx: tx[1][key])


gemm = {t: [gemm_round(t, r) for r in rounds] for t in threads}
flops_per_row = gemm[threads[0]][0]["flops_per_sample"]  # forward GEMMs of one row
kiln = {t: [kiln_run(f"kiln-{t}-r{r}") for r in rounds] for t in threads}
torch = {t: [dict(json.load(open(f"{tmp}/torch-{t}-r{r}.json")), wall_s=wall(f"torch-{t}-r{r}"))
             for r in rounds] for t in threads}
top5 = kiln_run("kiln-top5")
kt, k_best = best(kiln, "rows_per_s")
tt, t_best = best(torch, "rows_per_s")
ct, c_best = best(kiln, "compute_rows_per_s")
gt, g_best = best(gemm, "gflops")
kiln_gflops = c_best["compute_rows_per_s"] * flops_per_row / 1e9
# Cross-check, not the target: kiln's compute against the limit of its own round.
paired = [kiln[ct][i]["compute_rows_per_s"] * flops_per_row / 1e9 /
          max(gemm[t][i]["gflops"] for t in threads) for i in range(len(rounds))]
with h5py.File(f"{tmp}/torch.h5") as a, h5py.File(f"{tmp}/kiln.h5") as b:
    agree = float(np.abs(a["probs"][:200000] - b["probs"][:200000]).max())

fmt = lambda runs, key, d=0: " / ".join(f"{x[key]:.{d}f}" for x in runs)
print(f"\n{rows} rows, every round (rows/s end to end: input file to finished output; "
      "GEMM: the round's best configuration):\n"
      "| threads | kiln rows/s | PyTorch rows/s | kiln compute rows/s | PyTorch compute rows/s "
      "| forward GEMM GFLOP/s |\n|---|---|---|---|---|---|")
for t in threads:
    print(f"| {t} | {fmt(kiln[t], 'rows_per_s')} | {fmt(torch[t], 'rows_per_s')} "
          f"| {fmt(kiln[t], 'compute_rows_per_s')} | {fmt(torch[t], 'compute_rows_per_s')} "
          f"| {fmt(gemm[t], 'gflops', 1)} |")
print(f"| {kt} (top-5 too, once) | {top5['rows_per_s']:.0f} | | {top5['compute_rows_per_s']:.0f} | | |")
print(f"\nbest rounds: kiln {k_best['rows_per_s']:.0f} rows/s end to end ({kt} thr, "
      f"{k_best['wall_s']:.2f} s wall; read {k_best['read_s']:.2f} s, compute "
      f"{k_best['compute_s']:.2f} s, write {k_best['write_s']:.2f} s), PyTorch "
      f"{t_best['rows_per_s']:.0f} ({tt} thr, {t_best['wall_s']:.2f} s wall); kiln compute "
      f"{c_best['compute_rows_per_s']:.0f} rows/s ({ct} thr); limit {g_best['gflops']:.1f} GFLOP/s "
      f"({g_best['mode']}); kiln compute against its own round's limit, median "
      f"{statistics.median(paired):.0%}; kiln and PyTorch probabilities agree within {agree:.1e}")
ratio = k_best["rows_per_s"] / t_best["rows_per_s"]
frac = kiln_gflops / g_best["gflops"]
targets = [("kiln end to end >= 1.2x PyTorch", ratio >= 1.2, f"{ratio:.2f}x ({kt} vs {tt} threads)"),
           ("kiln compute >= 85% of the GEMM rate", frac >= 0.85,
            f"{frac:.0%} ({kiln_gflops:.1f} of {g_best['gflops']:.1f} GFLOP/s)")]
print(f"\ntargets (load average {load} at the end):")
for name, met, got in targets:
    print(f"  {'MET   ' if met else 'MISSED'} {name}: {got}")
json.dump(dict(date=datetime.datetime.now().isoformat(timespec="seconds"), cpu=cpu_model, cpus=cpus,
               kiln_rev=kiln_rev, rows=rows, rounds=len(rounds), load_average=float(load),
               flops_per_row=flops_per_row, kiln=kiln, torch=torch, kiln_top5=top5, gemm=gemm,
               kiln_compute_frac_paired=paired, probs_max_diff=agree,
               targets=[dict(target=n, met=m, measured=v) for n, m, v in targets]),
          open(result, "w"), indent=1)
print(f"\nwrote {result}")
EOF
