#!/usr/bin/env bash
# Data parallelism changes nothing but speed: 20 steps of the MLP and of the GPT on 2 and 4
# ranks (same global batch) give the loss curve and final parameters of one process within
# 1e-5 relative (fp32 sums are ordered differently across ranks).
source "$(dirname "$0")/../e2e/lib.sh"
compare="$(dirname "$0")/../fault/compare_runs.py"

check_model() { # name config overrides...
  local name=$1 config=$2
  shift 2
  local common=(--set train.steps=20 --set train.log_every=1 --set train.eval_every=10
    --set train.ckpt_every=0 --set train.threads=1 "$@")
  "$KILN_BIN" train "$config" "${common[@]}" --set train.out_dir="$WORK/$name-1" >/dev/null 2>&1
  for n in 2 4; do
    # a small bucket so that several all-reduces overlap backward
    if mpiexec -n "$n" "$KILN_BIN" train "$config" "${common[@]}" --set parallel.bucket_mb=0.5 \
      --set train.out_dir="$WORK/$name-$n" >/dev/null 2>"$WORK/$name-$n.log"; then
      if out=$("$PY" "$compare" "$WORK/$name-1" "$WORK/$name-$n" 20 1e-5 2>&1); then
        pass "$name on $n ranks matches 1 process: $out"
      else
        fail "$name on $n ranks differs from 1 process: $out"
      fi
    else
      fail "$name on $n ranks failed: $(tail -n 3 "$WORK/$name-$n.log")"
    fi
  done
}

check_model mlp "$KILN_SRC/configs/fmnist-mlp.yaml" --set data.path="$(fmnist_h5)" --set train.batch_size=128
check_model gpt "$KILN_SRC/configs/gpt-fortunes.yaml" --set data.path="$(fortunes_h5)" \
  --set model.n_layer=2 --set model.n_embd=64 --set model.n_head=2 --set model.block_size=64 \
  --set train.batch_size=8 --set train.eval_batches=2
# A checkpoint written by 4 ranks resumes on 1 (whole tensors, a global data cursor): the run
# continues on the single-process curve.
mpiexec -n 4 "$KILN_BIN" train "$KILN_SRC/configs/fmnist-mlp.yaml" --set data.path="$(fmnist_h5)" \
  --set train.steps=20 --set train.log_every=1 --set train.eval_every=10 --set train.ckpt_every=10 \
  --set train.threads=1 --set train.out_dir="$WORK/mlp-4to1" >/dev/null 2>&1
rm -f "$WORK/mlp-4to1/ckpt/step-00000020.h5" "$WORK/mlp-4to1/ckpt/step-00000020.h5.crc32"
echo step-00000010.h5 > "$WORK/mlp-4to1/ckpt/latest"
"$KILN_BIN" train "$KILN_SRC/configs/fmnist-mlp.yaml" --set data.path="$(fmnist_h5)" \
  --set train.steps=20 --set train.log_every=1 --set train.eval_every=10 --set train.ckpt_every=10 \
  --set train.threads=1 --set train.out_dir="$WORK/mlp-4to1" >/dev/null 2>"$WORK/4to1.log"
if grep -q "resumed from .*step-00000010.h5" "$WORK/4to1.log" &&
  out=$("$PY" "$compare" "$WORK/mlp-1" "$WORK/mlp-4to1" 20 1e-5 2>&1); then
  pass "saved on 4 ranks at step 10, resumed on 1: $out"
else
  fail "4 -> 1 rank resume: ${out:-$(tail -n 3 "$WORK/4to1.log")}"
fi
finish
