#!/usr/bin/env bash
# ZeRO changes where the training state lives, not the result. For the MLP and the GPT, 20 steps
# with ZeRO 1 and 2 on 1, 2 and 4 ranks match one process (ZeRO-0) within 1e-5; every rank
# holds the bytes its stage's formula gives (zero_memory.py), and on 4 ranks ZeRO-2 holds less
# gradient memory than ZeRO-1. A checkpoint saved on 4 ranks with the highest stage resumes on
# 2 ranks with ZeRO-1 and on 1 rank with ZeRO-0, on the uninterrupted run's curve.
source "$(dirname "$0")/../e2e/lib.sh"
compare="$(dirname "$0")/../fault/compare_runs.py"
memory="$(dirname "$0")/zero_memory.py"
stages=(1 2)
top=${stages[-1]}
bucket_mb=0.1 # several buckets even for these small models, so ZeRO-2 staging is below the model

mlp_cfg="$KILN_SRC/configs/fmnist-mlp.yaml"
mlp=(--set data.path="$(fmnist_h5)" --set train.ckpt_every=10)
mlp_blocks="401920,262656,5130" # 784x512+512, 512x512+512, 512x10+10
gpt_cfg="$KILN_SRC/configs/gpt-fortunes.yaml"
gpt=(--set data.path="$(fortunes_h5)" --set model.n_layer=4 --set model.n_embd=64 --set model.n_head=2
  --set model.block_size=64 --set train.batch_size=8 --set train.eval_batches=2 --set train.ckpt_every=0)
# embedding (256 + 64) x 64, tied to the LM head; 4 blocks of 12C^2 + 13C; final LayerNorm 2C
gpt_blocks="20480*,49984,49984,49984,49984,128"

# train NAME RANKS STAGE CONFIG ARGS...: a 20-step run into $WORK/NAME, every rank's log in NAME.log
train() {
  local name=$1 ranks=$2 stage=$3 cfg=$4
  shift 4
  local launch=()
  [ "$ranks" -gt 1 ] && launch=(mpiexec -n "$ranks")
  KILN_LOG=debug KILN_LOG_ALL_RANKS=1 "${launch[@]}" "$KILN_BIN" train "$cfg" --set train.steps=20 \
    --set train.log_every=1 --set train.eval_every=10 --set train.threads=1 --set train.keep=5 \
    --set parallel.bucket_mb=$bucket_mb --set parallel.zero="$stage" "$@" \
    --set train.out_dir="$WORK/$name" >/dev/null 2>"$WORK/$name.log"
}

check_memory() { # NAME STAGE RANKS BLOCKS
  local out
  out=$("$PY" "$memory" "$WORK/$1.log" "$2" "$3" "$bucket_mb" true "$4" 2>&1) &&
    pass "$1 memory: $out" || fail "$1 memory: $out"
}

grad_bytes() { # NAME: the gradient bytes rank 0 reports
  sed -n 's/.*memory: rank 0 holds params [0-9]* B, grads \([0-9]*\) B.*/\1/p' "$WORK/$1.log"
}

check_model() { # MODEL CONFIG BLOCKS ARGS...
  local model=$1 cfg=$2 blocks=$3
  shift 3
  train "$model-1" 1 0 "$cfg" "$@" || fail "$model on 1 process failed: $(tail -n 3 "$WORK/$model-1.log")"
  check_memory "$model-1" 0 1 "$blocks"
  for stage in "${stages[@]}"; do
    for n in 1 2 4; do
      local name="$model-z$stage-$n" out
      if ! train "$name" "$n" "$stage" "$cfg" "$@"; then
        fail "$name failed: $(tail -n 3 "$WORK/$name.log")"
        continue
      fi
      out=$("$PY" "$compare" "$WORK/$model-1" "$WORK/$name" 20 1e-5 2>&1) &&
        pass "$model ZeRO-$stage on $n rank(s) matches 1 process: $out" || fail "$name: $out"
      check_memory "$name" "$stage" "$n" "$blocks"
    done
  done
}

check_model mlp "$mlp_cfg" "$mlp_blocks" "${mlp[@]}"
check_model gpt "$gpt_cfg" "$gpt_blocks" "${gpt[@]}"
g1=$(grad_bytes gpt-z1-4) g2=$(grad_bytes gpt-z2-4)
[ -n "$g1" ] && [ -n "$g2" ] && [ "$g2" -lt "$g1" ] &&
  pass "GPT on 4 ranks: ZeRO-2 holds $g2 B of gradients, ZeRO-1 $g1 B" ||
  fail "GPT on 4 ranks: ZeRO-2 gradient bytes '$g2' not below ZeRO-1's '$g1'"

# resume the 4-rank run of the highest stage from its step-10 checkpoint on 2 ranks with ZeRO-1
# and on 1 rank with ZeRO-0
for target in "2 1" "1 0"; do
  set -- $target
  name="from-z$top-4-to-z$2-$1"
  mkdir -p "$WORK/$name/ckpt"
  cp "$WORK/mlp-z$top-4/ckpt/step-00000010.h5" "$WORK/mlp-z$top-4/ckpt/step-00000010.h5.crc32" \
    "$WORK/$name/ckpt/"
  echo step-00000010.h5 > "$WORK/$name/ckpt/latest"
  head -n 11 "$WORK/mlp-z$top-4/metrics.jsonl" > "$WORK/$name/metrics.jsonl"
  out=
  train "$name" "$1" "$2" "$mlp_cfg" "${mlp[@]}" && grep -q "resumed from .*step-00000010.h5" "$WORK/$name.log" &&
    out=$("$PY" "$compare" "$WORK/mlp-1" "$WORK/$name" 20 1e-5 2>&1) &&
    pass "ZeRO-$top x4 checkpoint resumed on $1 rank(s) with ZeRO-$2: $out" ||
    fail "ZeRO-$top x4 -> ZeRO-$2 x$1: ${out:-$(tail -n 3 "$WORK/$name.log")}"
done
finish
