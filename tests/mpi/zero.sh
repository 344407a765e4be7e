#!/usr/bin/env bash
# ZeRO changes where the training state lives, not the result. For the MLP and the GPT, 20 steps
# with ZeRO 1, 2 and 3 on 1, 2 and 4 ranks match one process (ZeRO-0) within 1e-5; every rank
# holds the bytes its stage's formula gives (zero_memory.py), and on 4 ranks the GPT's
# gradients shrink from ZeRO-1 to ZeRO-2 and its parameters from ZeRO-2 to ZeRO-3. A checkpoint
# saved on 4 ranks with ZeRO-3 resumes on 2 ranks with ZeRO-1 and on 1 rank with ZeRO-0, on the
# uninterrupted run's curve (both models; the GPT's tied embedding is sharded like the rest).
# The GPT clips its gradient's global norm in every step, so every stage is compared with
# clipping computed from the shards.
source "$(dirname "$0")/../e2e/lib.sh"
compare="$(dirname "$0")/../fault/compare_runs.py"
memory="$(dirname "$0")/zero_memory.py"
stages=(1 2 3)
top=${stages[-1]}
bucket_mb=0.1 # several buckets even for these small models, so ZeRO-2/3 staging is below the model

mlp_cfg="$KILN_SRC/configs/fmnist-mlp.yaml"
mlp=(--set data.path="$(fmnist_h5)" --set train.ckpt_every=10)
mlp_blocks="401920,262656,5130" # 784x512+512, 512x512+512, 512x10+10
gpt_cfg="$KILN_SRC/configs/gpt-fortunes.yaml"
gpt=(--set data.path="$(fortunes_h5)" --set model.n_layer=4 --set model.n_embd=64 --set model.n_head=2
  --set model.block_size=64 --set train.batch_size=8 --set train.eval_batches=2 --set train.ckpt_every=10
  --set optim.grad_clip=1.0)
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

held() { # NAME params|grads: the bytes rank 0 reports holding
  grep -o "memory: rank 0 holds params [0-9]* B, grads [0-9]* B" "$WORK/$1.log" |
    awk -v what="$2" '{ print (what == "params" ? $6 : $9) }'
}

shrinks() { # WHAT FROM TO: rank 0 of the GPT on 4 ranks holds fewer WHAT bytes at stage TO
  local a b
  a=$(held "gpt-z$2-4" "$1") b=$(held "gpt-z$3-4" "$1")
  [ -n "$a" ] && [ -n "$b" ] && [ "$b" -lt "$a" ] &&
    pass "GPT on 4 ranks: ZeRO-$3 holds $b B of $1, ZeRO-$2 $a B" ||
    fail "GPT on 4 ranks: ZeRO-$3's $1 bytes '$b' not below ZeRO-$2's '$a'"
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
clipped=$("$PY" -c 'import json, sys
print(sum(json.loads(l).get("grad_norm", 0) > 1.0 for l in open(sys.argv[1])))' "$WORK/gpt-1/metrics.jsonl")
[ "$clipped" -gt 0 ] && pass "the GPT's gradient norm exceeds optim.grad_clip=1.0 in $clipped of 20 steps" ||
  fail "the GPT never clips, so clipping over shards is not compared"
shrinks grads 1 2
shrinks params 2 3

# resume the 4-rank run of the highest stage from its step-10 checkpoint on 2 ranks with ZeRO-1
# and on 1 rank with ZeRO-0 (the resumed run drops the metrics lines after step 10 itself)
resume_from() { # MODEL CONFIG RANKS STAGE ARGS...
  local model=$1 cfg=$2 ranks=$3 stage=$4 from="$WORK/$1-z$top-4" out=
  shift 4
  local name="$model-from-z$top-4-to-z$stage-$ranks"
  mkdir -p "$WORK/$name/ckpt"
  cp "$from/ckpt/step-00000010.h5" "$from/ckpt/step-00000010.h5.crc32" "$WORK/$name/ckpt/"
  echo step-00000010.h5 > "$WORK/$name/ckpt/latest"
  cp "$from/metrics.jsonl" "$WORK/$name/"
  train "$name" "$ranks" "$stage" "$cfg" "$@" &&
    grep -q "resumed from .*step-00000010.h5" "$WORK/$name.log" &&
    out=$("$PY" "$compare" "$WORK/$model-1" "$WORK/$name" 20 1e-5 2>&1) &&
    pass "$model ZeRO-$top x4 checkpoint resumed on $ranks rank(s) with ZeRO-$stage: $out" ||
    fail "$model ZeRO-$top x4 -> ZeRO-$stage x$ranks: ${out:-$(tail -n 3 "$WORK/$name.log")}"
}
for target in "2 1" "1 0"; do
  set -- $target
  resume_from mlp "$mlp_cfg" "$1" "$2" "${mlp[@]}"
  resume_from gpt "$gpt_cfg" "$1" "$2" "${gpt[@]}"
done
finish
