#!/usr/bin/env bash
# Checkpoints hold the fp32 master weights and AdamW state whatever train.precision is, so a
# run changes precision across a resume: a bf16 GPT run checkpointed at step 10 resumes in fp32
# (and an fp32 one in bf16) and finishes within 2% of the uninterrupted fp32 loss curve; the
# bf16 run itself reports 16 bytes a parameter. Exits 77 (skipped) without a GPU.
source "$(dirname "$0")/../e2e/lib.sh"
cfg="$KILN_SRC/configs/gpt-fortunes.yaml"
# the backend is chosen before the data is opened: no dataset needed to learn there is no GPU
if ! "$KILN_BIN" train "$cfg" --set backend.name=cuda --set data.path="$WORK/none.h5" \
  --set train.out_dir="$WORK/probe" >/dev/null 2>"$WORK/probe.log" &&
  grep -q "no usable GPU\|has no CUDA backend" "$WORK/probe.log"; then
  echo "SKIP: no GPU to test on: $(grep -o 'backend "cuda".*' "$WORK/probe.log" | head -n 1)"
  exit 77
fi
common=(--set data.path="$(fortunes_h5)" --set model.n_layer=2 --set model.n_embd=64
  --set model.n_head=2 --set model.block_size=64 --set train.batch_size=8 --set train.steps=20
  --set train.log_every=1 --set train.eval_every=0 --set train.eval_batches=2
  --set train.ckpt_every=10 --set train.keep=5 --set backend.name=cuda)

train() { # out_dir precision extra...
  local out=$1 precision=$2
  shift 2
  "$KILN_BIN" train "$cfg" "${common[@]}" --set train.precision="$precision" \
    --set train.out_dir="$out" "$@" >/dev/null 2>"$out.log"
}

train "$WORK/fp32" fp32 || fail "fp32 run failed: $(tail -n 3 "$WORK/fp32.log")"
train "$WORK/bf16" bf16 || fail "bf16 run failed: $(tail -n 3 "$WORK/bf16.log")"
grep -q "16.00 B per parameter, bf16" "$WORK/bf16.log" &&
  pass "bf16 run: 16 bytes a parameter" || fail "bf16 memory line: $(grep memory: "$WORK/bf16.log")"

# a copy of a run's step-10 checkpoint (and its metrics so far), resumed in another precision
resume() { # from to precision (run names under $WORK)
  local from=$WORK/$1 to=$WORK/$2 precision=$3
  mkdir -p "$to/ckpt"
  cp "$from/ckpt/step-00000010.h5" "$from/ckpt/step-00000010.h5.crc32" "$to/ckpt/"
  echo step-00000010.h5 >"$to/ckpt/latest"
  head -n 10 "$from/metrics.jsonl" >"$to/metrics.jsonl"
  train "$to" "$precision" --resume auto || fail "$1 resumed in $precision failed: $(tail -n 3 "$to.log")"
  grep -q "resumed from .*step-00000010.h5" "$to.log" && pass "$1 resumed in $precision at step 10" ||
    fail "$2 did not resume from step 10"
}
resume bf16 bf16-to-fp32 fp32
resume fp32 fp32-to-bf16 bf16

# every run's losses against the uninterrupted fp32 curve, step by step
for run in bf16 bf16-to-fp32 fp32-to-bf16; do
  if out=$("$PY" - "$WORK/fp32/metrics.jsonl" "$WORK/$run/metrics.jsonl" <<'PY'
import json, sys
def losses(path):
    return {d["step"]: d["loss"] for d in map(json.loads, open(path)) if "loss" in d}
ref, got = losses(sys.argv[1]), losses(sys.argv[2])
assert sorted(got) == list(range(1, 21)), f"steps {sorted(got)}"
worst = max(abs(got[s] - ref[s]) / ref[s] for s in ref)
assert worst <= 0.02, f"loss strays {100 * worst:.2f}% from fp32 (limit 2%)"
print(f"within {100 * worst:.2f}% of the fp32 curve over 20 steps")
PY
  ); then pass "$run: $out"; else fail "$run: $out"; fi
done
finish
