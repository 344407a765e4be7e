#!/usr/bin/env bash
# Training throughput of kiln against PyTorch (Debian's python3-torch), in one run, pinned to
# the same cores, on the same shapes and data; and of both against the OpenBLAS SGEMM rate on
# the models' own GEMM shapes, measured in the same run. Every side runs at every thread count
# in BENCH_THREADS, once per round, the sides taking turns within a round; each side is scored
# by its best round at its best thread count (see bench/README.md: on a shared VM interference
# only ever slows a run down, and a side measured once can land in a slow spell that another
# side missed). Prints a table and the targets, and writes bench/results/train-<date>.json.
# Knobs (environment):
#   KILN_BUILD_DIR  build directory (default build; configured only if it does not exist)
#   BENCH_CPUS      cores to pin every process to (default 0,1)
#   BENCH_THREADS   thread counts to try (default "1 2")
#   BENCH_ROUNDS    rounds (default 5)
#   BENCH_SECONDS   timed seconds of every run: a training run, each GEMM-rate run (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."

build=${KILN_BUILD_DIR:-build}
py=${KILN_PYTHON:-/usr/bin/python3}
cpus=${BENCH_CPUS:-0,1}
thread_counts=${BENCH_THREADS:-1 2}
rounds=${BENCH_ROUNDS:-5}
run_s=${BENCH_SECONDS:-5}

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
run_gemm() { # threads round
    local bind
    for bind in false true; do
        OMP_PROC_BIND=$bind "${pin[@]}" "$build/bench/kiln_bench_gemm" --threads "$1" \
            --seconds "$run_s" --mlp "$mlp_batch,$mlp_in,$mlp_hidden,$mlp_out" \
            --gpt "$gpt_batch,$gpt_l,$gpt_c,$gpt_t,$gpt_v" >"$tmp/gemm-$1-bind_$bind-r$2.json"
    done
}

# Steps for at least run_s seconds of kiln, sized from the GEMM rate at the same thread count
# as if kiln reached all of it: its window is then no shorter than the GEMM's and PyTorch's
# (a shorter window would catch a quiet spell more easily). This only sizes the run.
kiln_steps() { # model threads
    "$py" - "$tmp/gemm-$2-bind_false-r1.json" "$1" "$run_s" <<'EOF'
import json, math, sys
g = json.load(open(sys.argv[1]))["models"][sys.argv[2]]
flops_per_step = g["flops_per_sample" if sys.argv[2] == "mlp" else "flops_per_token"] * g["units_per_step"]
print(max(20, math.ceil(float(sys.argv[3]) * g["gflops"] * 1e9 / flops_per_step)))
EOF
}

run_kiln() { # model threads steps round
    local out="$tmp/kiln-$1-$2-r$4" cfg
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
    cp "$out/summary.json" "$out.json"
    rm -rf "$out"
}

run_torch() { # model threads round
    local shape=(--batch "$mlp_batch" --hidden ${mlp_hidden//,/ })
    [ "$1" = gpt ] && shape=(--batch "$gpt_batch" --gpt "$gpt_l" "$gpt_h" "$gpt_c" "$gpt_t" "$gpt_v")
    "${pin[@]}" "$py" bench/torch_train.py --model "$1" --threads "$2" --steps 10 \
        --seconds "$run_s" "${shape[@]}" >"$tmp/torch-$1-$2-r$3.json"
}

declare -A steps
for r in $(seq 1 "$rounds"); do
    for t in $thread_counts; do
        say "round $r/$rounds, threads=$t: OpenBLAS SGEMM rate, then kiln and PyTorch on each model"
        run_gemm "$t" "$r"
        for model in mlp gpt; do
            [ -n "${steps[$model-$t]:-}" ] || steps[$model-$t]=$(kiln_steps "$model" "$t")
            run_kiln "$model" "$t" "${steps[$model-$t]}" "$r"
            run_torch "$model" "$t" "$r"
        done
    done
done

mkdir -p bench/results
result="bench/results/train-$(date +%Y%m%d-%H%M%S).json"
cpu_model=$(lscpu | sed -n 's/^Model name: *//p')
kiln_rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain -- src include CMakeLists.txt 2>/dev/null)" ]; then
    kiln_rev="$kiln_rev+dirty"
fi

"$py" - "$tmp" "$result" "$thread_counts" "$rounds" "$cpu_model" "$cpus" "$kiln_rev" \
    "$((12 * gpt_l * gpt_c * gpt_t))" <<'EOF'
import datetime, json, statistics, sys
tmp, result, threads, rounds, cpu_model, cpus, kiln_rev, attn_flops = sys.argv[1:9]
threads, rounds, attn_flops = threads.split(), range(1, int(rounds) + 1), float(attn_flops)
load = lambda name: json.load(open(f"{tmp}/{name}.json"))


def gemm_run(t, r, model):
    """Round r's GEMM rate at t threads: the better of the unbound and bound runs."""
    runs = [dict(load(f"gemm-{t}-bind_{b}-r{r}")["models"][model], omp_proc_bind=b == "true")
            for b in ("false", "true")]
    return max(runs, key=lambda g: g["gflops"])


def best(per_thread):
    """(threads, round index, rate) of the fastest run in {threads: [rate per round]}."""
    return max(((t, i, v) for t, vs in per_thread.items() for i, v in enumerate(vs)),
               key=lambda x: x[2])


TARGET_RATIO, TARGET_MLP_GEMM = 1.3, 0.80

rows = []
for model, key, unit in (("mlp", "samples_per_s", "sample"), ("gpt", "tokens_per_s", "token")):
    kiln = {t: [load(f"kiln-{model}-{t}-r{r}")[key] for r in rounds] for t in threads}
    torch = {t: [load(f"torch-{model}-{t}-r{r}")[key] for r in rounds] for t in threads}
    gemm = {t: [gemm_run(t, r, model) for r in rounds] for t in threads}
    # The matmul work a step must do: forward, weight gradients, input gradients (none for the
    # MLP's pixels) = the GEMMs timed by kiln_bench_gemm, plus nanoGPT's 12*L*C*T attention
    # FLOPs for the GPT (equal to kiln's own figure there; for the MLP kiln's 6 x MACs also
    # counts the pixel gradient that neither side computes).
    flops = gemm[threads[0]][0][f"flops_per_{unit}"] + (attn_flops if model == "gpt" else 0.0)
    kt, _, k_rate = best(kiln)
    tt, _, t_rate = best(torch)
    gt, gi, peak = best({t: [g["gflops"] for g in gs] for t, gs in gemm.items()})
    # Cross-check, not the target: kiln against the limit of its own round, round by round.
    paired = [kiln[kt][i] * flops / 1e9 / max(gemm[t][i]["gflops"] for t in threads)
              for i in range(len(rounds))]
    rows.append(dict(model=model, unit=unit, kiln_rate=k_rate, kiln_threads=int(kt),
                     torch_rate=t_rate, torch_threads=int(tt), ratio=k_rate / t_rate,
                     flops_per_unit=flops, kiln_gflops=k_rate * flops / 1e9,
                     torch_gflops=t_rate * flops / 1e9, gemm_gflops=peak, gemm_threads=int(gt),
                     gemm_omp_proc_bind=gemm[gt][gi]["omp_proc_bind"],
                     kiln_frac_gemm=k_rate * flops / 1e9 / peak,
                     torch_frac_gemm=t_rate * flops / 1e9 / peak,
                     kiln_frac_gemm_paired_median=statistics.median(paired),
                     rounds={t: dict(kiln=kiln[t], torch=torch[t],
                                     gemm_gflops=[g["gflops"] for g in gemm[t]]) for t in threads}))

print("\nbest round of each side (samples/s or tokens/s; GFLOP/s):\n"
      "| model | kiln | PyTorch | kiln / PyTorch | kiln GFLOP/s | GEMM GFLOP/s "
      "| kiln % of GEMM | PyTorch % of GEMM | kiln % of its round's GEMM, median |\n"
      "|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['model']} | {r['kiln_rate']:.0f} {r['unit']}s/s ({r['kiln_threads']} thr) "
          f"| {r['torch_rate']:.0f} {r['unit']}s/s ({r['torch_threads']} thr) | {r['ratio']:.2f}x "
          f"| {r['kiln_gflops']:.1f} | {r['gemm_gflops']:.1f} ({r['gemm_threads']} thr) "
          f"| {100 * r['kiln_frac_gemm']:.0f}% | {100 * r['torch_frac_gemm']:.0f}% "
          f"| {100 * r['kiln_frac_gemm_paired_median']:.0f}% |")
print("\nevery round (samples/s or tokens/s; GEMM in GFLOP/s, the better binding):\n"
      "| model | threads | kiln | PyTorch | GEMM |\n|---|---|---|---|---|")
for r in rows:
    for t, v in r["rounds"].items():
        fmt = lambda xs, d=0: " / ".join(f"{x:.{d}f}" for x in xs)
        print(f"| {r['model']} | {t} | {fmt(v['kiln'])} | {fmt(v['torch'])} "
              f"| {fmt(v['gemm_gflops'], 1)} |")

mlp = rows[0]
targets = [(f"kiln >= {TARGET_RATIO}x PyTorch on {r['model']}", r["ratio"] >= TARGET_RATIO,
            f"{r['ratio']:.2f}x") for r in rows]
targets.append((f"kiln >= {TARGET_MLP_GEMM:.0%} of the GEMM rate on mlp",
                mlp["kiln_frac_gemm"] >= TARGET_MLP_GEMM, f"{mlp['kiln_frac_gemm']:.0%}"))
print("\ntargets:")
for name, met, got in targets:
    print(f"  {'MET   ' if met else 'MISSED'} {name}: {got}")

first = load(f"gemm-{threads[0]}-bind_false-r1")
json.dump(dict(date=datetime.datetime.now().isoformat(timespec="seconds"), cpu=cpu_model,
               cpus=cpus, kiln_rev=kiln_rev, rounds=len(rounds), openblas=first["openblas"],
               torch=load(f"torch-mlp-{threads[0]}-r1")["torch"], summary=rows,
               targets=[dict(target=n, met=m, measured=v) for n, m, v in targets]),
          open(result, "w"), indent=1)
print(f"\nwrote {result}")
EOF
