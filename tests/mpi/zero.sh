#!/usr/bin/env bash
# ZeRO-1: the optimizer state is sharded across data-parallel ranks. 20 steps on 2 and 4 ranks
# match one process within 1e-5; each rank holds its share of the optimizer state as the formula
# says; a ZeRO-1 checkpoint from 4 ranks resumes on 2 ranks with ZeRO-0 and on 1 rank.
source "$(dirname "$0")/../e2e/lib.sh"
compare="$(dirname "$0")/../fault/compare_runs.py"
cfg="$KILN_SRC/configs/fmnist-mlp.yaml"
common=(--set data.path="$(fmnist_h5)" --set train.steps=20 --set train.log_every=1
  --set train.eval_every=10 --set train.ckpt_every=10 --set train.threads=1 --set train.keep=5)
n_params=669706 # 784*512+512 + 512*512+512 + 512*10+10

"$KILN_BIN" train "$cfg" "${common[@]}" --set train.out_dir="$WORK/one" >/dev/null 2>&1
for n in 2 4; do
  KILN_LOG=debug KILN_LOG_ALL_RANKS=1 mpiexec -n "$n" "$KILN_BIN" train "$cfg" "${common[@]}" \
    --set parallel.zero=1 --set train.out_dir="$WORK/z$n" >/dev/null 2>"$WORK/z$n.log" ||
    fail "ZeRO-1 on $n ranks failed: $(tail -n 3 "$WORK/z$n.log")"
  out=$("$PY" "$compare" "$WORK/one" "$WORK/z$n" 20 1e-5 2>&1) &&
    pass "ZeRO-1 on $n ranks matches 1 process: $out" || fail "ZeRO-1 on $n ranks: $out"
  # AdamW keeps m and v: each rank 2 x 4 bytes x its shard, shards splitting n_params evenly
  if "$PY" - "$WORK/z$n.log" "$n" "$n_params" <<'PY'
import re, sys
log, world, n = open(sys.argv[1]).read(), int(sys.argv[2]), int(sys.argv[3])
rows = re.findall(r"memory: rank (\d+) holds params (\d+) B, grads (\d+) B, optimizer state (\d+) B "
                  r"\(ZeRO-1, shard \[(\d+), (\d+)\)", log)
assert len(rows) == world, f"{len(rows)} memory lines for {world} ranks"
for r, p, g, o, lo, hi in rows:
    r, p, g, o, lo, hi = map(int, (r, p, g, o, lo, hi))
    assert lo == n * r // world and hi == n * (r + 1) // world, f"rank {r} shard [{lo},{hi})"
    assert o == 2 * 4 * (hi - lo), f"rank {r}: optimizer {o} B != 2 x 4 x {hi - lo}"
    assert p == 4 * n, f"rank {r}: params {p} B != 4 x {n}"
    assert g == 4 * n + 4 * (hi - lo), f"rank {r}: grads {g} B"
print(f"{world} ranks: optimizer state {o} B on the last, {2 * 4 * n} B replicated")
PY
  then pass "ZeRO-1 memory on $n ranks matches the formula"; else fail "ZeRO-1 memory on $n ranks"; fi
done

# the GPT (tied embedding, many small tensors cut by shard boundaries) on 2 ranks
gpt=(--set data.path="$(fortunes_h5)" --set model.n_layer=2 --set model.n_embd=64 --set model.n_head=2
  --set model.block_size=64 --set train.batch_size=8 --set train.eval_batches=2 --set train.steps=20
  --set train.log_every=1 --set train.eval_every=10 --set train.ckpt_every=0 --set train.threads=1)
"$KILN_BIN" train "$KILN_SRC/configs/gpt-fortunes.yaml" "${gpt[@]}" --set train.out_dir="$WORK/gpt1" >/dev/null 2>&1
mpiexec -n 2 "$KILN_BIN" train "$KILN_SRC/configs/gpt-fortunes.yaml" "${gpt[@]}" --set parallel.zero=1 \
  --set train.out_dir="$WORK/gpt-z2" >/dev/null 2>&1 || fail "GPT ZeRO-1 on 2 ranks failed"
out=$("$PY" "$compare" "$WORK/gpt1" "$WORK/gpt-z2" 20 1e-5 2>&1) &&
  pass "GPT ZeRO-1 on 2 ranks matches 1 process: $out" || fail "GPT ZeRO-1 on 2 ranks: $out"

# resume the 4-rank ZeRO-1 run from its step-10 checkpoint on 2 ranks (ZeRO-0) and on 1 rank
for target in "2 0" "1 0"; do
  set -- $target
  dir="$WORK/from4-to$1"
  mkdir -p "$dir/ckpt"
  cp "$WORK/z4/ckpt/step-00000010.h5" "$WORK/z4/ckpt/step-00000010.h5.crc32" "$dir/ckpt/"
  echo step-00000010.h5 > "$dir/ckpt/latest"
  head -n 11 "$WORK/z4/metrics.jsonl" > "$dir/metrics.jsonl"
  launch=()
  [ "$1" -gt 1 ] && launch=(mpiexec -n "$1")
  "${launch[@]}" "$KILN_BIN" train "$cfg" "${common[@]}" --set parallel.zero="$2" \
    --set train.out_dir="$dir" >/dev/null 2>"$dir.log" || fail "resume on $1 rank(s) failed"
  grep -q "resumed from .*step-00000010.h5" "$dir.log" &&
    out=$("$PY" "$compare" "$WORK/one" "$dir" 20 1e-5 2>&1) &&
    pass "ZeRO-1 x4 checkpoint resumed on $1 rank(s) with ZeRO-$2: $out" ||
    fail "ZeRO-1 x4 -> $1 rank(s): ${out:-$(tail -n 3 "$dir.log")}"
done
finish
