#!/usr/bin/env bash
# Data-parallel scaling and checkpoint bandwidth of kiln, in one run, against the peers measured
# in the same run: PyTorch DistributedDataParallel (gloo, CPU; bench/torch_ddp.py) on the same
# models, ranks and global batch, and `dd ... conv=fsync` of the same bytes to the same
# filesystem. Every rank runs 1 thread on its own core; 1 rank x 1 thread is the baseline.
# Prints the tables and the targets, writes bench/results/scaling-<date>.json.
# Knobs (environment):
#   KILN_BUILD_DIR     build directory (default build; configured only if it does not exist)
#   KILN_PYTHON        Python with torch and h5py (default /usr/bin/python3, Debian's)
#   BENCH_PARTS        which parts to run (default "scaling ckpt")
#   BENCH_REPEATS      runs of every scaling configuration, interleaved (default 3)
#   BENCH_MLP_STEPS    optimizer steps per MLP run (default 1000; the first 50 are not timed)
#   BENCH_GPT_STEPS    optimizer steps per GPT run (default 12; the first 2 are not timed)
#   BENCH_CKPT_HIDDEN  hidden widths of the MLP whose checkpoints are timed (default 4096,4096:
#                      20M parameters, a 240 MB file with AdamW's m and v)
#   BENCH_CKPT_SAVES   checkpoints (and dd runs) to time (default 5)
#   BENCH_CKPT_GAP     seconds of pause before each save and each paused dd run (default 5)
#   BENCH_DIR          scratch directory: run outputs, checkpoints and dd's file (default a new
#                      directory under TMPDIR or /tmp); it is removed at the end
set -euo pipefail
cd "$(dirname "$0")/.."

build=${KILN_BUILD_DIR:-build}
py=${KILN_PYTHON:-/usr/bin/python3}
parts=${BENCH_PARTS:-scaling ckpt}
repeats=${BENCH_REPEATS:-3}
mlp_steps=${BENCH_MLP_STEPS:-1000}
gpt_steps=${BENCH_GPT_STEPS:-12}
ckpt_hidden=${BENCH_CKPT_HIDDEN:-4096,4096}
ckpt_saves=${BENCH_CKPT_SAVES:-5}
ckpt_gap=${BENCH_CKPT_GAP:-5}
mlp_warmup=50 gpt_warmup=2
mlp_batch=128 gpt_batch=16 # global batches of the issue

bench_name=scaling_bench
source bench/lib.sh

for f in data/fashion-mnist.h5 data/fortunes.h5; do
    [ -f "$f" ] || die "$f is missing: import it as the header of configs/*.yaml shows"
done
require_torch
command -v mpiexec >/dev/null || die "mpiexec not found (apt-get install openmpi-bin)"
[ "$(nproc)" -ge 2 ] || die "needs 2 cores: one per rank"
[ "$mlp_steps" -gt "$mlp_warmup" ] && [ "$gpt_steps" -gt "$gpt_warmup" ] ||
    die "BENCH_MLP_STEPS must exceed $mlp_warmup and BENCH_GPT_STEPS $gpt_warmup (the untimed steps)"
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi

tmp=${BENCH_DIR:-}
if [ -n "$tmp" ]; then
    [ ! -e "$tmp" ] || die "BENCH_DIR '$tmp' exists; name a new directory (it is removed at the end)"
    mkdir -p "$tmp"
else
    tmp=$(mktemp -d)
fi
tmp=$(cd "$tmp" && pwd)
trap 'rm -rf "$tmp"' EXIT

bench_build kiln

# kiln_run NAME RANKS MODEL [--set k=v ...]: one training run, 1 thread per rank, no periodic
# eval or checkpoint, a metrics line (with comm_wait_s) every step. Keeps the log and metrics.
kiln_run() {
    local name=$1 ranks=$2 model=$3
    shift 3
    local out="$tmp/$name" cfg=configs/fmnist-mlp.yaml steps=$mlp_steps batch=$mlp_batch
    if [ "$model" = gpt ]; then cfg=configs/gpt-fortunes.yaml steps=$gpt_steps batch=$gpt_batch; fi
    mpiexec -n "$ranks" "$build/kiln" train "$cfg" --resume never --set train.threads=1 \
        --set "train.steps=$steps" --set "train.batch_size=$batch" --set train.eval_every=0 \
        --set train.ckpt_every=0 --set train.log_every=1 --set "train.out_dir=$out" "$@" \
        >"$out.log" 2>&1 || { tail -20 "$out.log"; die "kiln run $name failed"; }
    rm -rf "$out/ckpt" # the end-of-run checkpoint: not measured here, only disk used
}

# torch_run NAME RANKS MODEL
torch_run() {
    local steps=$mlp_steps warmup=$mlp_warmup
    if [ "$3" = gpt ]; then steps=$gpt_steps warmup=$gpt_warmup; fi
    "$py" bench/torch_ddp.py --model "$3" --ranks "$2" --threads 1 --steps $((steps - warmup)) \
        --warmup "$warmup" >"$tmp/$1.json" 2>"$tmp/$1.log" || { tail -20 "$tmp/$1.log"; die "torch run $1 failed"; }
}

# The configurations: 1 rank bound to one core is the baseline; "half" is 1 rank at the
# per-rank batch of 2 ranks, what each rank computes with no communication at all.
scaling() {
    local rep model
    for rep in $(seq "$repeats"); do
        for model in mlp gpt; do
            say "repeat $rep/$repeats: $model"
            kiln_run "kiln-$model-1-r$rep" 1 "$model" --set placement.cores_per_rank=1
            kiln_run "kiln-$model-2-r$rep" 2 "$model"
            kiln_run "kiln-$model-2-b1-r$rep" 2 "$model" --set parallel.bucket_mb=1
            kiln_run "kiln-$model-2-b1-sync-r$rep" 2 "$model" --set parallel.bucket_mb=1 \
                --set parallel.overlap=false
            torch_run "torch-$model-1-r$rep" 1 "$model"
            torch_run "torch-$model-2-r$rep" 2 "$model"
        done
        # MLP only (a GPT run costs ~15 s more: its end-of-run eval reads the whole split)
        kiln_run "kiln-mlp-1-half-r$rep" 1 mlp --set placement.cores_per_rank=1 \
            --set "train.batch_size=$((mlp_batch / 2))"
        kiln_run "kiln-mlp-2-sync-r$rep" 2 mlp --set parallel.overlap=false
        kiln_run "kiln-mlp-2-zero1-r$rep" 2 mlp --set parallel.zero=1
    done
}

# kiln logs "checkpoint PATH: BYTES bytes durable in S s" for each save (from the start of the
# HDF5 write to the renamed file, its sidecar and `latest`, all fsynced); dd writes as many
# bytes to the same directory with conv=fsync. On VMs that hand freed memory back to the host
# (virtio-balloon free page reporting), a write into the page cache seconds after the last one
# faults every page back in and runs several times slower than one right after a delete. So
# both sides are timed after the same pause (each save in its own one-step run, the end-of-run
# checkpoint), and dd back-to-back is reported too, as the page cache's best case.
ckpt() {
    local bytes i
    say "checkpoint: MLP hidden [$ckpt_hidden], $ckpt_saves saves to $tmp, ${ckpt_gap}s apart"
    for i in $(seq "$ckpt_saves"); do
        sleep "$ckpt_gap"
        "$build/kiln" train configs/fmnist-mlp.yaml --resume never --set "model.hidden=[$ckpt_hidden]" \
            --set train.steps=1 --set train.eval_every=0 --set train.ckpt_every=0 \
            --set "train.out_dir=$tmp/ckpt-$i" >>"$tmp/ckpt-run.log" 2>&1 ||
            { tail -20 "$tmp/ckpt-run.log"; die "kiln checkpoint run failed"; }
        rm -rf "$tmp/ckpt-$i"
    done
    bytes=$(sed -n 's/.*checkpoint .*: \([0-9]*\) bytes durable in .*/\1/p' "$tmp/ckpt-run.log" | head -1)
    [ -n "$bytes" ] || die "no 'bytes durable' line in $tmp/ckpt-run.log"
    dd_runs "$bytes" "$ckpt_gap" dd-paused.log
    dd_runs "$bytes" 0 dd-warm.log
}

dd_runs() { # BYTES PAUSE LOG
    local i
    for i in $(seq "$ckpt_saves"); do
        sleep "$2"
        dd if=/dev/zero of="$tmp/dd.bin" bs=4M count="$1" iflag=count_bytes conv=fsync \
            2>>"$tmp/$3" || die "dd failed"
        rm -f "$tmp/dd.bin"
    done
}

for part in $parts; do
    case $part in
        scaling | ckpt) "$part" ;;
        *) die "BENCH_PARTS: unknown part '$part' (scaling, ckpt)" ;;
    esac
done

mkdir -p bench/results
result="bench/results/scaling-$(date +%Y%m%d-%H%M%S).json"
kiln_rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain -- src include CMakeLists.txt 2>/dev/null)" ]; then
    kiln_rev="$kiln_rev+dirty"
fi
machine=$(printf '%s; %s cores; %s; Open MPI %s; %s on %s' \
    "$(lscpu | sed -n 's/^Model name: *//p')" "$(nproc)" "$(uname -r)" \
    "$(mpiexec --version | sed -n "s/.*(Open[A-Za-z ]*) //p" | head -1)" \
    "$(findmnt -no FSTYPE,SOURCE -T "$tmp" | tr -s ' ')" "$tmp")

"$py" - "$tmp" "$result" "$parts" "$repeats" "$machine" "$kiln_rev" "$mlp_warmup" "$gpt_warmup" <<'EOF'
import datetime, json, re, statistics, sys
tmp, result, parts, repeats, machine, kiln_rev, mlp_warmup, gpt_warmup = sys.argv[1:9]
parts, repeats = parts.split(), int(repeats)
warmup = {"mlp": int(mlp_warmup), "gpt": int(gpt_warmup)}
TARGET_EFFICIENCY, TARGET_CKPT = 0.90, 0.70
med = statistics.median


def kiln_run(name, model):
    """One run: the median step time and the mean all-reduce wait per step, in ms, over the
    timed steps (metrics.jsonl, one line a step), and its all-reduce bucket count."""
    d = f"{tmp}/{name}"
    summary = json.load(open(f"{d}/summary.json"))
    unit = "samples" if model == "mlp" else "tokens"
    per_step = summary[f"{unit}_seen"] / summary["steps"]
    steps = [json.loads(l) for l in open(f"{d}/metrics.jsonl") if '"comm_wait_s"' in l]
    steps = steps[warmup[model]:]
    buckets = re.search(r"(\d+) all-reduce buckets", open(f"{d}.log").read())
    return dict(step_ms=1e3 * med(per_step / s[f"{unit}_per_s"] for s in steps),
                wait_ms=1e3 * statistics.fmean(s["comm_wait_s"] for s in steps),
                summary_step_ms=1e3 * per_step / summary[f"{unit}_per_s"],
                buckets=int(buckets.group(1)) if buckets else None)


def config(side, model, variant):
    """Every repeat of one configuration, and their medians."""
    runs = []
    for r in range(1, repeats + 1):
        name = f"{side}-{model}-{variant}-r{r}"
        if side == "kiln":
            runs.append(kiln_run(name, model))
        else:
            runs.append({"step_ms": json.load(open(f"{tmp}/{name}.json"))["median_ms"]})
    agg = {k: med(run[k] for run in runs) for k in runs[0] if k != "buckets"}
    return dict(agg, buckets=runs[0].get("buckets"), runs=runs)


out = dict(date=datetime.datetime.now().isoformat(timespec="seconds"), machine=machine,
           kiln_rev=kiln_rev, repeats=repeats, targets=[])
if "scaling" in parts:
    out["torch"] = json.load(open(f"{tmp}/torch-mlp-1-r1.json"))["torch"]
    rows = []
    for model in ("mlp", "gpt"):
        k1, k2 = config("kiln", model, "1"), config("kiln", model, "2")
        t1, t2 = config("torch", model, "1"), config("torch", model, "2")
        rows.append(dict(model=model, kiln_1=k1, kiln_2=k2, torch_1=t1, torch_2=t2,
                         kiln_efficiency=k1["step_ms"] / (2 * k2["step_ms"]),
                         torch_efficiency=t1["step_ms"] / (2 * t2["step_ms"]),
                         kiln_b1=config("kiln", model, "2-b1"),
                         kiln_b1_sync=config("kiln", model, "2-b1-sync")))
    mlp = rows[0]
    mlp.update(kiln_sync=config("kiln", "mlp", "2-sync"), kiln_half=config("kiln", "mlp", "1-half"),
               kiln_zero1=config("kiln", "mlp", "2-zero1"))
    mlp["bound_without_comm"] = mlp["kiln_1"]["step_ms"] / (2 * mlp["kiln_half"]["step_ms"])
    out["scaling"] = rows

    print("\nstep time (ms, median), 1 thread per rank, same global batch; efficiency = "
          "throughput(2 ranks) / (2 x throughput(1 rank)):\n"
          "| model | kiln 1 rank | kiln 2 ranks | kiln efficiency | DDP 1 rank | DDP 2 ranks "
          "| DDP efficiency | DDP / kiln at 2 ranks |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['kiln_1']['step_ms']:.2f} | {r['kiln_2']['step_ms']:.2f} "
              f"| {r['kiln_efficiency']:.0%} | {r['torch_1']['step_ms']:.2f} "
              f"| {r['torch_2']['step_ms']:.2f} | {r['torch_efficiency']:.0%} "
              f"| {r['torch_2']['step_ms'] / r['kiln_2']['step_ms']:.2f}x |")
    print("\nkiln, 2 ranks: all-reduce wait (ms a step, mean) with and without overlap:\n"
          "| model | bucket_mb | buckets | overlap | step ms | comm wait ms |\n|---|---|---|---|---|---|")
    for r in rows:
        variants = [("25", "true", r["kiln_2"]), ("1", "true", r["kiln_b1"]),
                    ("1", "false", r["kiln_b1_sync"])]
        if r["model"] == "mlp":
            variants.insert(1, ("25", "false", r["kiln_sync"]))
        for mb, overlap, c in variants:
            print(f"| {r['model']} | {mb} | {c['buckets']} | {overlap} | {c['step_ms']:.2f} "
                  f"| {c['wait_ms']:.3f} |")
    print(f"\nmlp: 1 rank at the per-rank batch (64 rows) takes {mlp['kiln_half']['step_ms']:.2f} ms, "
          f"so 2 ranks cannot beat {mlp['bound_without_comm']:.0%} even with free communication; "
          f"2 ranks with ZeRO-1: {mlp['kiln_zero1']['step_ms']:.2f} ms "
          f"({mlp['kiln_1']['step_ms'] / (2 * mlp['kiln_zero1']['step_ms']):.0%}), "
          f"wait {mlp['kiln_zero1']['wait_ms']:.3f} ms")
    for r in rows:
        out["targets"].append(dict(target=f"kiln 2-rank efficiency >= {TARGET_EFFICIENCY:.0%} on {r['model']}",
                                   met=r["kiln_efficiency"] >= TARGET_EFFICIENCY,
                                   measured=f"{r['kiln_efficiency']:.0%}"))

if "ckpt" in parts:
    log = open(f"{tmp}/ckpt-run.log").read()
    saves = [(int(b), float(s)) for b, s in re.findall(r"checkpoint .*: (\d+) bytes durable in ([0-9.]+) s", log)]
    dd = {k: [float(s) for s in re.findall(r"copied, ([0-9.e+-]+) s", open(f"{tmp}/dd-{k}.log").read())]
          for k in ("paused", "warm")}
    nbytes = saves[0][0]
    kiln_s = med(s for _, s in saves)
    ck = dict(bytes=nbytes, kiln_s=[s for _, s in saves], kiln_mb_s=nbytes / kiln_s / 1e6)
    for k, runs in dd.items():
        ck[f"dd_{k}_s"], ck[f"dd_{k}_mb_s"] = runs, nbytes / med(runs) / 1e6
        ck[f"ratio_{k}"] = ck["kiln_mb_s"] / ck[f"dd_{k}_mb_s"]
    out["ckpt"] = ck
    print(f"\ncheckpoint write, {nbytes / 1e6:.0f} MB, median of {len(saves)} saves and of "
          f"{len(dd['paused'])} dd runs each (MB/s):\n"
          "| kiln save | dd after the same pause | kiln / dd | dd back-to-back | kiln / dd |\n"
          "|---|---|---|---|---|\n"
          f"| {ck['kiln_mb_s']:.0f} | {ck['dd_paused_mb_s']:.0f} | {ck['ratio_paused']:.0%} "
          f"| {ck['dd_warm_mb_s']:.0f} | {ck['ratio_warm']:.0%} |")
    out["targets"].append(dict(target=f"checkpoint write >= {TARGET_CKPT:.0%} of dd (same pause)",
                               met=ck["ratio_paused"] >= TARGET_CKPT,
                               measured=f"{ck['ratio_paused']:.0%}"))

print("\ntargets:")
for t in out["targets"]:
    print(f"  {'MET   ' if t['met'] else 'MISSED'} {t['target']}: {t['measured']}")
json.dump(out, open(result, "w"), indent=1)
print(f"\nwrote {result}")
EOF
