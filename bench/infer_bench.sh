#!/usr/bin/env bash
# Batch inference, end to end: `kiln infer` against bench/torch_infer.py (Debian's
# python3-torch reading and writing with h5py, the same durable per-chunk progress) on the
# trained Fashion-MNIST MLP and its test set repeated to BENCH_ROWS rows, in one run, pinned to
# the same cores; and kiln's compute rate against the OpenBLAS SGEMM rate on the forward GEMMs
# of the same shapes, measured in the same run. Both write the class probabilities only
# (kiln: infer.top_k=0); one more kiln run adds the top-5 for reference. Every side runs at
# every thread count in BENCH_THREADS and is scored at its best. Prints a table and the issue's
# targets and writes bench/results/infer-<date>.json. Knobs (environment):
#   KILN_BUILD_DIR     build directory (default build; configured only if it does not exist)
#   BENCH_CPUS         cores to pin every process to (default 0,1)
#   BENCH_THREADS      thread counts to try (default "1 2")
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
run_gemm() { # threads
    local bind mode
    for bind in false true; do
        for mode in threads workers; do
            [ "$mode" = workers ] && [ "$1" -eq 1 ] && continue
            OMP_PROC_BIND=$bind "${pin[@]}" "$build/bench/kiln_bench_gemm" --forward "--$mode" "$1" \
                --mlp "$batch,$mlp_shape" --gpt 1,1,64,16,64 >"$tmp/gemm-$1-$mode-bind_$bind.json"
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
run_torch() { # threads
    rm -f "$tmp/torch.h5"
    local t0
    t0=$(now)
    "${pin[@]}" "$py" bench/torch_infer.py --model "$model" --input "$tmp/in.h5" --output "$tmp/torch.h5" \
        --threads "$1" --chunk-rows "$chunk_rows" --batch "$batch" >"$tmp/torch-$1.json"
    echo "$t0 $(now)" >"$tmp/torch-$1.wall"
}

for t in $thread_counts; do
    say "threads=$t: OpenBLAS forward SGEMM rate"
    run_gemm "$t"
    say "threads=$t: kiln infer (probabilities)"
    run_kiln "kiln-$t" "$t" --set infer.top_k=0
    say "threads=$t: torch_infer.py"
    run_torch "$t"
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

"$py" - "$tmp" "$result" "$thread_counts" "$cpu_model" "$cpus" "$kiln_rev" "$rows" "$load" <<'EOF'
import datetime, glob, json, re, sys
import h5py, numpy as np
tmp, result, threads, cpu_model, cpus, kiln_rev, rows, load = sys.argv[1:9]
threads, rows = threads.split(), int(rows)
wall = lambda name: (lambda a, b: float(b) - float(a))(*open(f"{tmp}/{name}.wall").read().split())
REPORT = re.compile(r"([\d.]+) s end to end, (\d+) rows/s; compute (\d+) rows/s per rank "
                    r"\(rank 0: read ([\d.]+) s, compute ([\d.]+) s, write ([\d.]+) s\)")


def kiln_run(name):
    m = REPORT.search(open(f"{tmp}/{name}.out").read())
    e2e, _, compute_rate, read_s, compute_s, write_s = map(float, m.groups())
    return dict(seconds=e2e, rows_per_s=rows / e2e, wall_s=wall(name), compute_rows_per_s=compute_rate,
                read_s=read_s, compute_s=compute_s, write_s=write_s)


def best_gemm(t):
    runs = []
    for f in sorted(glob.glob(f"{tmp}/gemm-{t}-*.json")):
        g = json.load(open(f))
        mode = f"{t} single-threaded side by side" if g["workers"] > 1 else f"one on {t} threads"
        bound = "bound" if f.endswith("bind_true.json") else "unbound"
        runs.append(dict(g["models"]["mlp"], mode=f"{mode}, {bound}", workers=g["workers"]))
    return max(runs, key=lambda g: g["gflops"])


gemm = {t: best_gemm(t) for t in threads}
flops_per_row = gemm[threads[0]]["flops_per_sample"]  # forward GEMMs of one row
kiln = {t: kiln_run(f"kiln-{t}") for t in threads}
torch = {t: dict(json.load(open(f"{tmp}/torch-{t}.json")), wall_s=wall(f"torch-{t}")) for t in threads}
top5 = kiln_run("kiln-top5")
kt = max(threads, key=lambda t: kiln[t]["rows_per_s"])
tt = max(threads, key=lambda t: torch[t]["rows_per_s"])
ct = max(threads, key=lambda t: kiln[t]["compute_rows_per_s"])
gt = max(threads, key=lambda t: gemm[t]["gflops"])
kiln_gflops = kiln[ct]["compute_rows_per_s"] * flops_per_row / 1e9
with h5py.File(f"{tmp}/torch.h5") as a, h5py.File(f"{tmp}/kiln.h5") as b:
    agree = float(np.abs(a["probs"][:200000] - b["probs"][:200000]).max())

print(f"\n{rows} rows, end to end (input file to finished output; wall time of the process in brackets):\n"
      "| threads | kiln rows/s | PyTorch rows/s | kiln / PyTorch | kiln compute rows/s | PyTorch compute rows/s "
      "| forward GEMM GFLOP/s |\n|---|---|---|---|---|---|---|")
for t in threads:
    k, p = kiln[t], torch[t]
    print(f"| {t} | {k['rows_per_s']:.0f} ({k['wall_s']:.2f} s) | {p['rows_per_s']:.0f} ({p['wall_s']:.2f} s) "
          f"| {k['rows_per_s'] / p['rows_per_s']:.2f}x | {k['compute_rows_per_s']:.0f} "
          f"| {p['compute_rows_per_s']:.0f} | {gemm[t]['gflops']:.1f} ({gemm[t]['mode']}) |")
print(f"| {kt} (top-5 too) | {top5['rows_per_s']:.0f} ({top5['wall_s']:.2f} s) | | | "
      f"{top5['compute_rows_per_s']:.0f} | | |")
print(f"\nkiln {kt} thr: read {kiln[kt]['read_s']:.2f} s, compute {kiln[kt]['compute_s']:.2f} s, "
      f"write {kiln[kt]['write_s']:.2f} s; kiln and PyTorch probabilities agree within {agree:.1e}")
ratio = kiln[kt]["rows_per_s"] / torch[tt]["rows_per_s"]
frac = kiln_gflops / gemm[gt]["gflops"]
targets = [("kiln end to end >= 1.2x PyTorch", ratio >= 1.2, f"{ratio:.2f}x ({kt} vs {tt} threads)"),
           ("kiln compute >= 85% of the GEMM rate", frac >= 0.85,
            f"{frac:.0%} ({kiln_gflops:.1f} of {gemm[gt]['gflops']:.1f} GFLOP/s)")]
print(f"\ntargets (load average {load} at the end):")
for name, met, got in targets:
    print(f"  {'MET   ' if met else 'MISSED'} {name}: {got}")
json.dump(dict(date=datetime.datetime.now().isoformat(timespec="seconds"), cpu=cpu_model, cpus=cpus,
               kiln_rev=kiln_rev, rows=rows, load_average=float(load), flops_per_row=flops_per_row,
               kiln=kiln, torch=torch, kiln_top5=top5, gemm=gemm, probs_max_diff=agree,
               targets=[dict(target=n, met=m, measured=v) for n, m, v in targets]),
          open(result, "w"), indent=1)
print(f"\nwrote {result}")
EOF
