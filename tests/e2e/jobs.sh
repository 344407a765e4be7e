#!/usr/bin/env bash
# The job runtime as a user meets it: every kind's --help and --help-config come from the job
# table; exit codes (0 done, 2 bad input or usage, 75 stopped) are the same for every kind;
# `kiln eval` is config-driven, its flags shorthands for its keys; a run directory and its
# ckpt/latest are accepted wherever a model is; `--stop-at` stops a run at a step with a
# checkpoint, and the continued run ends bit-identical to one trained straight through (the
# learning-rate schedule is train.steps'); a GPT deeper than any fixed table (48 layers) trains.
source "$(dirname "$0")/lib.sh"
data=$(fmnist_h5)
K="$KILN_BIN"
export KILN_REGISTRY="$WORK/registry"

# --- help and the table ---
"$K" --help >"$WORK/help" && for kind in train infer eval; do
  grep -q "^  $kind " "$WORK/help" || fail "kiln --help does not list job '$kind'"
done && pass "kiln --help lists the job kinds"
for kind in train infer eval; do
  "$K" $kind --help-config >"$WORK/$kind.keys" || fail "$kind --help-config"
  n=$(grep -c '^  [a-z_]*\.[a-z_.]* ' "$WORK/$kind.keys")
  dup=$(awk '/^  [a-z_]+\.[a-z_.]+ /{print $1}' "$WORK/$kind.keys" | sort | uniq -d)
  [ -z "$dup" ] && grep -q '^  backend.name ' "$WORK/$kind.keys" && grep -q '^  placement.bind ' "$WORK/$kind.keys" &&
    pass "$kind --help-config: $n keys, the shared sections once each" ||
    fail "$kind --help-config: duplicates '$dup' or a shared section missing"
done

# every number key of every kind (as kiln --help lists them) documents its range
kinds=$(sed -n '/^jobs/,/^$/p' "$WORK/help" | awk 'NR > 1 && NF {print $1}')
unranged=""
for kind in $kinds; do
  # a range is [lo,hi] with no space (a list default such as "[512, 512]" has one)
  "$K" $kind --help-config | awk -v k="$kind" '$2 ~ /^(int|int64|float)$/ &&
    $0 !~ / [[(][-0-9.e]*,[-0-9.e]*[])] / {print k": "$1}' >>"$WORK/unranged"
done
[ -n "$kinds" ] && [ ! -s "$WORK/unranged" ] &&
  pass "every number key of the $(echo $kinds | wc -w) kinds has a documented range" ||
  fail "number keys without a range: $(cat "$WORK/unranged" 2>/dev/null) (kinds: $kinds)"

# --- exit codes ---
code() { local rc=0; "$@" >/dev/null 2>"$WORK/code.err" </dev/null || rc=$?; echo "$rc"; }
[ "$(code "$K" train)" = 2 ] && [ "$(code "$K" eval --bogus 1)" = 2 ] &&
  [ "$(code "$K" infer --model x --input y)" = 2 ] &&
  [ "$(code "$K" train "$KILN_SRC/configs/fmnist-mlp.yaml" --set optim.lrr=1)" = 2 ] &&
  [ "$(code "$K" eval --model "$WORK/none" --input "$data")" = 2 ] &&
  pass "usage errors, unknown keys and a missing model exit 2" || fail "exit codes: $(cat "$WORK/code.err")"

# --- a run, stopped at a step and continued, against one trained straight through ---
train() { # out_dir extra...
  local out=$1
  shift
  "$K" train "$KILN_SRC/configs/fmnist-mlp.yaml" --set data.path="$data" --set model.hidden=32 \
    --set train.steps=40 --set train.log_every=10 --set train.eval_every=20 --set train.eval_batches=2 \
    --set schedule.kind=cosine --set train.threads=1 --set train.out_dir="$out" "$@"
}
train "$WORK/straight" >/dev/null 2>"$WORK/straight.log" || fail "straight run: $(tail -2 "$WORK/straight.log")"
train "$WORK/stopped" --stop-at 17 >"$WORK/stop.out" 2>"$WORK/stop.log" || fail "--stop-at 17: $(tail -2 "$WORK/stop.log")"
[ "$(cat "$WORK/stopped/ckpt/latest")" = "step-00000017.h5" ] && [ ! -e "$WORK/stopped/summary.json" ] &&
  pass "--stop-at 17 leaves a checkpoint at step 17 and no summary" ||
  fail "--stop-at: latest $(cat "$WORK/stopped/ckpt/latest" 2>/dev/null), $(ls "$WORK/stopped")"
train "$WORK/stopped" >/dev/null 2>"$WORK/cont.log" || fail "continuing: $(tail -2 "$WORK/cont.log")"
if "$PY" - "$WORK/straight/ckpt/step-00000040.h5" "$WORK/stopped/ckpt/step-00000040.h5" \
  "$WORK/straight/metrics.jsonl" "$WORK/stopped/metrics.jsonl" <<'PY'
import h5py, json, sys
a, b = h5py.File(sys.argv[1]), h5py.File(sys.argv[2])
names = []
a.visit(lambda n: names.append(n) if isinstance(a[n], h5py.Dataset) else None)
assert names and all((a[n][()] == b[n][()]).all() for n in names), "tensors differ"
lr = lambda p: [(d["step"], d["lr"]) for d in map(json.loads, open(p)) if "lr" in d]
assert lr(sys.argv[3]) == lr(sys.argv[4]), "learning rates differ"
PY
then pass "stopped at 17 and continued: every tensor and the lr schedule equal the straight run's"
else fail "stop-at and continue differ from the straight run"; fi

lines=$(wc -l <"$WORK/straight/metrics.jsonl")
train "$WORK/straight" >/dev/null 2>&1 && [ "$(wc -l <"$WORK/straight/metrics.jsonl")" -eq "$lines" ] &&
  pass "rerunning a finished run logs nothing twice ($lines metrics lines)" ||
  fail "rerun of a finished run: $lines -> $(wc -l <"$WORK/straight/metrics.jsonl") metrics lines"

# --- eval: flags, a config file, a run directory, ckpt/latest ---
"$K" eval --model "$WORK/straight/ckpt/step-00000040.h5" --input "$data" --output "$WORK/flags.json" \
  >/dev/null 2>&1 || fail "eval with flags"
cat >"$WORK/eval.yaml" <<EOF2
eval:
  model: $WORK/straight
  input: $data
  output: $WORK/config.json
EOF2
"$K" eval "$WORK/eval.yaml" >/dev/null 2>&1 || fail "eval from a config"
"$K" eval --model "$WORK/straight/ckpt/latest" --input "$data" --output "$WORK/latest.json" \
  >/dev/null 2>&1 || fail "eval --model RUN/ckpt/latest"
for f in config latest; do
  [ "$(json_get "$WORK/$f.json" loss)" = "$(json_get "$WORK/flags.json" loss)" ] &&
    [ "$(json_get "$WORK/$f.json" resolved)" = "$WORK/straight/ckpt/step-00000040.h5" ] ||
    fail "eval via $f: $(cat "$WORK/$f.json")"
done && pass "eval from flags, from a config with a run directory, and from ckpt/latest: the same loss"
"$K" infer --model "$WORK/straight" --input "$data" --set infer.dataset=test/x --output "$WORK/s.h5" \
  >/dev/null 2>&1 && pass "infer takes a run directory" || fail "infer --model RUN_DIR"

# --- a GPT deeper than any fixed table ---
"$K" train "$KILN_SRC/configs/gpt-fortunes.yaml" --set data.path="$(fortunes_h5)" --set model.n_layer=48 \
  --set model.n_embd=16 --set model.n_head=1 --set model.block_size=8 --set train.steps=2 \
  --set train.batch_size=4 --set train.eval_batches=1 --set train.threads=1 \
  --set train.out_dir="$WORK/deep" >/dev/null 2>"$WORK/deep.log" &&
  pass "a 48-layer GPT trains (it crashed on a 512-entry tensor table)" ||
  fail "48-layer GPT: $(tail -2 "$WORK/deep.log")"
finish
