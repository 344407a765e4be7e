#!/usr/bin/env bash
# Bad sweep input gets one clear error naming the key, a non-zero exit, and no sweep directory:
# all of it is found before any trial starts.
source "$(dirname "$0")/../e2e/lib.sh"
source "$(dirname "$0")/lib.sh"
sweep_configs

# with_space NAME SECTION KEY SPEC: the sweep config with only SECTION.KEY: SPEC searched
with_space() {
  sed '/^  space:$/,$d' "$WORK/sweep.yaml" >"$WORK/$1.yaml"
  printf '  space:\n    %s:\n      %s: %s\n' "$2" "$3" "$4" >>"$WORK/$1.yaml"
  echo "$WORK/$1.yaml"
}
sweep() { "$KILN_BIN" sweep "$@" --set sweep.dir="$WORK/out"; }

expect_error "unknown distribution" "sweep.space.optim.lr" "normal(0, 1)" "loguniform(lo, hi)" -- \
  sweep "$(with_space dist optim lr 'normal(0, 1)')"
expect_error "low >= high" "sweep.space.schedule.warmup_frac" "low must be below high" -- \
  sweep "$(with_space lohi schedule warmup_frac 'uniform(0.2, 0.1)')"
expect_error "low == high" "sweep.space.optim.lr" "low must be below high" -- \
  sweep "$(with_space lohi2 optim lr 'uniform(0.1, 0.1)')"
expect_error "int low > high" "sweep.space.train.batch_size" "low must not exceed high" -- \
  sweep "$(with_space intlohi train batch_size 'int(64, 32)')"
expect_error "loguniform with low <= 0" "sweep.space.optim.lr" "loguniform needs low > 0" -- \
  sweep "$(with_space log0 optim lr 'loguniform(0, 0.1)')"
expect_error "empty choice" "sweep.space.train.batch_size" "at least one value" -- \
  sweep "$(with_space empty train batch_size 'choice()')"
expect_error "bounds that are not numbers" "sweep.space.optim.lr" "numbers" -- \
  sweep "$(with_space nan optim lr 'uniform(a, b)')"
expect_error "a key that is not a config key" "sweep.space.optim.lrr" -- \
  sweep "$(with_space nokey optim lrr 'uniform(0.1, 0.2)')"
expect_error "a key the sweep sets itself" "sweep.space.train.steps" -- \
  sweep "$(with_space owned train steps 'int(10, 20)')"
expect_error "a value its key refuses" "sweep.space.optim.name" "adam" "adamw|sgd" -- \
  sweep "$(with_space refused optim name 'choice(adamw, adam)')"
expect_error "an int range beyond the key's" "sweep.space.train.batch_size" "-4" -- \
  sweep "$(with_space range train batch_size 'int(-4, 8)')"
expect_error "eta < 2" "sweep.eta" "1" -- sweep "$WORK/sweep.yaml" --set sweep.eta=1
expect_error "r_min > r_max" "sweep.r_min" "200" "sweep.r_max" -- \
  sweep "$WORK/sweep.yaml" --set sweep.r_min=200 --set sweep.r_max=100
expect_error "an objective training does not report" "sweep.metric" "bleu" "eval_loss|eval_accuracy" -- \
  sweep "$WORK/sweep.yaml" --set sweep.metric=bleu
expect_error "an unknown sampler" "sweep.sampler" "bayes" -- sweep "$WORK/sweep.yaml" --set sweep.sampler=bayes
expect_error "no budget" "sweep.trials" "budget" -- sweep "$WORK/sweep.yaml" --set sweep.trials=0
expect_error "ranks_per_trial not dividing the ranks" "sweep.ranks_per_trial" -- \
  sweep "$WORK/sweep.yaml" --set sweep.ranks_per_trial=2
expect_error "a bad training key beside the sweep" "optim.lr" -- sweep "$WORK/sweep.yaml" --set optim.lr=-1

# a sweep directory holding another sweep: refused before anything is written there
"$KILN_BIN" sweep "$WORK/sweep.yaml" --set sweep.trials=1 --set sweep.dir="$WORK/first" >/dev/null 2>&1 ||
  fail "a one-trial sweep failed"
cp -r "$WORK/first" "$WORK/first.before"
rc=0
"$KILN_BIN" sweep "$WORK/sweep.yaml" --set sweep.dir="$WORK/first" --set optim.name=sgd \
  >/dev/null 2>"$WORK/other.err" || rc=$?
if [ "$rc" -ne 0 ] && grep -q "holds another sweep" "$WORK/other.err" && diff -r "$WORK/first" "$WORK/first.before" >/dev/null; then
  pass "another sweep's directory (exit $rc): $(grep -m1 error "$WORK/other.err")"
else
  fail "another sweep's directory: exit $rc, $(cat "$WORK/other.err"), changed: $(diff -r "$WORK/first" "$WORK/first.before" | head -3)"
fi
finish
