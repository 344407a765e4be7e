#!/usr/bin/env bash
# Checkpoints hold the fp32 master weights and AdamW state whatever train.precision is, so a
# run changes precision across a resume: a bf16 GPT run checkpointed at step 10 resumes in fp32
# (and an fp32 one in bf16) and finishes within 2% of the uninterrupted fp32 loss curve; the
# bf16 run itself reports 16 bytes a parameter. Exits 77 (skipped) without a GPU.
source "$(dirname "$0")/lib.sh"
skip_without_gpu
cfg="$KILN_SRC/configs/gpt-fortunes.yaml"
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
  local to=$WORK/$2 precision=$3
  seed_resume "$WORK/$1" "$to"
  train "$to" "$precision" --resume auto || fail "$1 resumed in $precision failed: $(tail -n 3 "$to.log")"
  grep -q "resumed from .*step-00000010.h5" "$to.log" && pass "$1 resumed in $precision at step 10" ||
    fail "$2 did not resume from step 10"
}
resume bf16 bf16-to-fp32 fp32
resume fp32 fp32-to-bf16 bf16

# every run's losses against the uninterrupted fp32 curve, step by step
for run in bf16 bf16-to-fp32 fp32-to-bf16; do
  if out=$("$PY" "$(dirname "$0")/curve_within.py" "$WORK/fp32/metrics.jsonl" \
    "$WORK/$run/metrics.jsonl" 20 0.02 2>&1); then pass "$run: $out"; else fail "$run: $out"; fi
done
finish
