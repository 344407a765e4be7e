#!/usr/bin/env bash
# The samplers. TPE against random search on the Branin function (kiln sweep simulate, 100
# trials each, five seeds): TPE's median regret (best found - the optimum) is at most half of
# random's. Grid: every point of the grid exactly once. Warm start: a TPE sweep seeded with an
# earlier sweep's finished trials models them from its first trial (its values are not the
# random draw the same seed gives), and an earlier sweep that did not search a key is refused.
source "$(dirname "$0")/../e2e/lib.sh"
source "$(dirname "$0")/lib.sh"

for sampler in random tpe; do
  for seed in 1 2 3 4 5; do
    "$KILN_BIN" sweep simulate --objective branin --sampler "$sampler" --trials 100 --r-min 1 --r-max 1 \
      --seed "$seed" --quiet >>"$WORK/$sampler.jsonl" || fail "simulate --sampler $sampler --seed $seed"
  done
done
# the simulation's one rung doubles the function: its optimum is 2 * 0.397887
if out=$("$PY" - "$WORK/random.jsonl" "$WORK/tpe.jsonl" <<'PY'
import json, statistics, sys
opt = 2 * 0.39788735772973816
regret = [statistics.median(json.loads(l)["best_value"] - opt for l in open(p)) for p in sys.argv[1:]]
msg = f"median regret over 5 seeds: random {regret[0]:.3f}, tpe {regret[1]:.3f}"
if not regret[1] <= 0.5 * regret[0]:
    sys.exit(msg)
print(msg)
PY
); then pass "TPE beats random search on Branin: $out"; else fail "TPE is not better than random: $out"; fi

sweep_configs
sed -i 's/lr: loguniform(1e-4, 1e-1)/lr: choice(0.001, 0.01, 0.1)/' "$WORK/sweep.yaml"
if "$KILN_BIN" sweep "$WORK/sweep.yaml" --set sweep.sampler=grid --set sweep.trials=0 --set sweep.scheduler=none \
  --set sweep.dir="$WORK/grid" >/dev/null 2>"$WORK/grid.err"; then
  "$KILN_BIN" sweep status "$WORK/grid" --json >"$WORK/grid.json"
  out=$("$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
pts = sorted((float(t["params"]["optim.lr"]), int(t["params"]["train.batch_size"])) for t in d["trials"])
want = sorted((lr, b) for lr in (0.001, 0.01, 0.1) for b in (32, 64))
print("ok" if pts == want and all(t["state"] == "done" for t in d["trials"]) else "BAD", len(pts), "points:", pts)' "$WORK/grid.json")
  case "$out" in ok*) pass "grid: ${out#ok }" ;; *) fail "grid: $out" ;; esac
else
  fail "grid sweep failed: $(tail -3 "$WORK/grid.err")"
fi

# warm start: the earlier sweep (random, 8 trials), then TPE seeded with its finished trials
sweep_configs
"$KILN_BIN" sweep "$WORK/sweep.yaml" --set sweep.dir="$WORK/earlier" >/dev/null 2>"$WORK/earlier.err" ||
  fail "the earlier sweep failed: $(tail -3 "$WORK/earlier.err")"
"$KILN_BIN" sweep "$WORK/sweep.yaml" --set sweep.dir="$WORK/warm" --set sweep.sampler=tpe --set sweep.tpe_startup=3 \
  --set sweep.warm_start="$WORK/earlier" --set sweep.trials=2 >/dev/null 2>"$WORK/warm.err" ||
  fail "the warm-started sweep failed: $(tail -3 "$WORK/warm.err")"
"$KILN_BIN" sweep status "$WORK/earlier" --json >"$WORK/earlier.json"
"$KILN_BIN" sweep status "$WORK/warm" --json >"$WORK/warm.json" 2>/dev/null || true
out=$("$PY" - "$WORK/earlier.json" "$WORK/warm.json" <<'PY'
import json, sys
earlier, warm = (json.load(open(p)) for p in sys.argv[1:])
finished = [t for t in earlier["trials"] if t["values"][-1] is not None]
first = warm["trials"][0]["params"]
# the same seed: a random draw of trial 0 is the earlier sweep's trial 0
if first == earlier["trials"][0]["params"]:
    sys.exit(f"the warm-started sweep's trial 0 is the random draw {first}")
print(f"trial 0 drawn by TPE from {len(finished)} finished trials: {first}")
PY
) && pass "warm start: $out" || fail "warm start: $out"
sed -i 's/      batch_size: choice(32, 64)/      batch_size: choice(32, 64)\n    schedule:\n      warmup_frac: uniform(0, 0.2)/' "$WORK/sweep.yaml"
expect_error "warm start from a sweep that did not search a key" "sweep.warm_start" "schedule.warmup_frac" -- \
  "$KILN_BIN" sweep "$WORK/sweep.yaml" --set sweep.dir="$WORK/out" --set sweep.sampler=tpe --set sweep.warm_start="$WORK/earlier"
expect_error "warm start from a directory that is no sweep" "sweep.warm_start" "$WORK/nothing" -- \
  "$KILN_BIN" sweep "$WORK/sweep.yaml" --set sweep.dir="$WORK/out" --set sweep.warm_start="$WORK/nothing"
finish
