#!/usr/bin/env bash
# Training throughput of kiln against PyTorch (Debian's python3-torch), in one run, pinned to
# the same cores, on the same shapes and data; and of both against the OpenBLAS SGEMM rate on
# the models' own GEMM shapes, measured in the same run. Each side runs at every thread count
# in BENCH_THREADS and is scored at its best. Prints a table and the targets, and writes
# bench/results/train-<date>.json. Knobs (environment):
#   KILN_BUILD_DIR  build directory (default build; configured only if it does not exist)
#   BENCH_CPUS      cores to pin every process to (default 0,1)
#   BENCH_THREADS   thread counts to try (default "1 2")
#   BENCH_SECONDS   timed seconds per training run (default 25)
set -euo pipefail
cd "$(dirname "$0")/.."

build=${KILN_BUILD_DIR:-build}
py=${KILN_PYTHON:-/usr/bin/python3}
cpus=${BENCH_CPUS:-0,1}
thread_counts=${BENCH_THREADS:-1 2}
run_s=${BENCH_SECONDS:-25}

# The issue's shapes, handed to every side explicitly.
mlp_batch=128 mlp_in=784 mlp_hidden=512,512 mlp_out=10
gpt_batch=16 gpt_l=4 gpt_h=4 gpt_c=256 gpt_t=128 gpt_v=256

bench_name=train_bench
source bench/lib.sh

for f in data/fashion-mnist.h5 data/fortunes.h5; do
    [ -f "$f" ] || die "$f is missing: import it as the header of configs/*.yaml shows"
done
require_torch
pin=()
command -v taskset >/dev/null && pin=(taskset -c "$cpus")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

bench_build kiln kiln_bench_gemm

# Unbound and bound: on some VMs unbound OpenMP threads get packed onto one vCPU and the
# OpenMP build of OpenBLAS drops to a fraction of its rate; the limit is the better of the two.
run_gemm() { # threads
    local bind
    for bind in false true; do
        OMP_PROC_BIND=$bind "${pin[@]}" "$build/bench/kiln_bench_gemm" --threads "$1" \
            --mlp "$mlp_batch,$mlp_in,$mlp_hidden,$mlp_out" \
            --gpt "$gpt_batch,$gpt_l,$gpt_c,$gpt_t,$gpt_v" >"$tmp/gemm-$1-bind_$bind.json"
    done
}

# Steps for about run_s seconds of kiln, sized from the GEMM rate at the same thread count
# (assuming kiln reaches 60% of it: this only sizes the run, it measures nothing).
kiln_steps() { # model threads
    "$py" - "$tmp/gemm-$2-bind_false.json" "$1" "$run_s" <<'EOF'
import json, math, sys
g = json.load(open(sys.argv[1]))["models"][sys.argv[2]]
flops_per_step = g["flops_per_sample" if sys.argv[2] == "mlp" else "flops_per_token"] * g["units_per_step"]
print(max(20, math.ceil(float(sys.argv[3]) * 0.6 * g["gflops"] * 1e9 / flops_per_step)))
EOF
}

run_kiln() { # model threads steps
    local out="$tmp/kiln-$1-$2" cfg
    local args=(--resume never --set "train.threads=$2" --set "train.steps=$3"
        --set train.eval_every=0 --set train.ckpt_every=0 --set "train.out_dir=$out")
    if [ "$1" = mlp ]; then
        cfg=configs/fmnist-mlp.yaml
        args+=(--set "model.hidden=$mlp_hidden" --set "train.batch_size=$mlp_batch")
    else
        cfg=configs/gpt-fortunes.yaml
        args+=(--set "model.n_layer=$gpt_l" --set "model.n_head=$gpt_h" --set "model.n_embd=$gpt_c"
            --set "model.block_size=$gpt_t" --set "train.batch_size=$gpt_batch")
    fi
    "${pin[@]}" "$build/kiln" train "$cfg" "${args[@]}" >"$out.log" 2>&1 ||
        { tail -20 "$out.log"; die "kiln train $1 failed"; }
    cp "$out/summary.json" "$tmp/kiln-$1-$2.json"
}

run_torch() { # model threads
    local shape=(--batch "$mlp_batch" --hidden ${mlp_hidden//,/ })
    [ "$1" = gpt ] && shape=(--batch "$gpt_batch" --gpt "$gpt_l" "$gpt_h" "$gpt_c" "$gpt_t" "$gpt_v")
    "${pin[@]}" "$py" bench/torch_train.py --model "$1" --threads "$2" --steps 10 \
        --seconds "$run_s" "${shape[@]}" >"$tmp/torch-$1-$2.json"
}

for t in $thread_counts; do
    say "threads=$t: OpenBLAS SGEMM rate"
    run_gemm "$t"
    for model in mlp gpt; do
        steps=$(kiln_steps "$model" "$t")
        say "threads=$t: kiln $model ($steps steps)"
        run_kiln "$model" "$t" "$steps"
        say "threads=$t: torch $model"
        run_torch "$model" "$t"
    done
done

mkdir -p bench/results
result="bench/results/train-$(date +%Y%m%d-%H%M%S).json"
cpu_model=$(lscpu | sed -n 's/^Model name: *//p')
kiln_rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain -- src include CMakeLists.txt 2>/dev/null)" ]; then
    kiln_rev="$kiln_rev+dirty"
fi

"$py" - "$tmp" "$result" "$thread_counts" "$cpu_model" "$cpus" "$kiln_rev" \
    "$((12 * gpt_l * gpt_c * gpt_t))" <<'EOF'
import datetime, json, sys
tmp, result, threads, cpu_model, cpus, kiln_rev, attn_flops = sys.argv[1:8]
threads, attn_flops = threads.split(), float(attn_flops)
load = lambda name: json.load(open(f"{tmp}/{name}.json"))
gemm = {t: [load(f"gemm-{t}-bind_{b}") for b in ("false", "true")] for t in threads}


def best_gemm(t, model):
    """The better of the unbound and bound runs at t threads."""
    runs = [dict(g["models"][model], omp_proc_bind=b) for g, b in zip(gemm[t], (False, True))]
    return max(runs, key=lambda r: r["gflops"])


TARGET_RATIO, TARGET_MLP_GEMM = 1.3, 0.80

rows, runs = [], []
for model, key, unit in (("mlp", "samples_per_s", "sample"), ("gpt", "tokens_per_s", "token")):
    kiln = {t: load(f"kiln-{model}-{t}") for t in threads}
    torch = {t: load(f"torch-{model}-{t}") for t in threads}
    g = {t: best_gemm(t, model) for t in threads}
    # The matmul work a step must do: forward, weight gradients, input gradients (none for the
    # MLP's pixels) = the GEMMs timed by kiln_bench_gemm, plus nanoGPT's 12*L*C*T attention
    # FLOPs for the GPT (equal to kiln's own figure there; for the MLP kiln's 6 x MACs also
    # counts the pixel gradient that neither side computes).
    flops = g[threads[0]][f"flops_per_{unit}"] + (attn_flops if model == "gpt" else 0.0)
    kt = max(threads, key=lambda t: kiln[t][key])
    tt = max(threads, key=lambda t: torch[t][key])
    gt = max(threads, key=lambda t: g[t]["gflops"])
    k_rate, t_rate, peak = kiln[kt][key], torch[tt][key], g[gt]["gflops"]
    rows.append(dict(model=model, unit=unit, kiln_rate=k_rate, kiln_threads=int(kt),
                     torch_rate=t_rate, torch_threads=int(tt), ratio=k_rate / t_rate,
                     flops_per_unit=flops, kiln_gflops=k_rate * flops / 1e9,
                     torch_gflops=t_rate * flops / 1e9, gemm_gflops=peak, gemm_threads=int(gt),
                     kiln_frac_gemm=k_rate * flops / 1e9 / peak,
                     torch_frac_gemm=t_rate * flops / 1e9 / peak))
    for t in threads:
        runs.append(dict(model=model, threads=int(t), kiln=kiln[t], torch=torch[t],
                         gemm_gflops=[x["models"][model]["gflops"] for x in gemm[t]]))

print("\n| model | kiln | PyTorch | kiln / PyTorch | kiln GFLOP/s | GEMM GFLOP/s "
      "| kiln % of GEMM | PyTorch % of GEMM |\n|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['model']} | {r['kiln_rate']:.0f} {r['unit']}s/s ({r['kiln_threads']} thr) "
          f"| {r['torch_rate']:.0f} {r['unit']}s/s ({r['torch_threads']} thr) | {r['ratio']:.2f}x "
          f"| {r['kiln_gflops']:.1f} | {r['gemm_gflops']:.1f} ({r['gemm_threads']} thr) "
          f"| {100 * r['kiln_frac_gemm']:.0f}% | {100 * r['torch_frac_gemm']:.0f}% |")
print("\nevery run (samples/s or tokens/s; GEMM in GFLOP/s, unbound / OMP_PROC_BIND=true):\n"
      "| model | threads | kiln | PyTorch | GEMM |\n|---|---|---|---|---|")
for r in runs:
    key = "samples_per_s" if r["model"] == "mlp" else "tokens_per_s"
    print(f"| {r['model']} | {r['threads']} | {r['kiln'][key]:.0f} | {r['torch'][key]:.0f} "
          f"| {r['gemm_gflops'][0]:.1f} / {r['gemm_gflops'][1]:.1f} |")

mlp = rows[0]
targets = [(f"kiln >= {TARGET_RATIO}x PyTorch on {r['model']}", r["ratio"] >= TARGET_RATIO,
            f"{r['ratio']:.2f}x") for r in rows]
targets.append((f"kiln >= {TARGET_MLP_GEMM:.0%} of the GEMM rate on mlp",
                mlp["kiln_frac_gemm"] >= TARGET_MLP_GEMM, f"{mlp['kiln_frac_gemm']:.0%}"))
print("\ntargets:")
for name, met, got in targets:
    print(f"  {'MET   ' if met else 'MISSED'} {name}: {got}")

json.dump(dict(date=datetime.datetime.now().isoformat(timespec="seconds"), cpu=cpu_model,
               cpus=cpus, kiln_rev=kiln_rev, openblas=gemm[threads[0]][0]["openblas"],
               torch=runs[0]["torch"]["torch"], summary=rows, runs=runs,
               targets=[dict(target=n, met=m, measured=v) for n, m, v in targets]),
          open(result, "w"), indent=1)
print(f"\nwrote {result}")
EOF
