#!/usr/bin/env bash
# A promoted trial continues from its rung's checkpoint with the learning-rate schedule of a
# run to r_max: a trial ASHA promoted twice (rungs 20 -> 40 -> 80) ends with parameters and
# optimizer state bit-identical to `kiln train` of the same config straight to 80 steps, and
# with the same training curve. Dropout is on, so the random masks must match too.
source "$(dirname "$0")/../e2e/lib.sh"
source "$(dirname "$0")/lib.sh"
sweep_configs
sed -i 's/hidden: \[32\]/hidden: [32]\n  dropout: 0.1/' "$WORK/train.yaml" "$WORK/sweep.yaml"
"$KILN_BIN" sweep "$WORK/sweep.yaml" >"$WORK/sweep.out" 2>"$WORK/sweep.err" ||
  { fail "the sweep failed: $(tail -3 "$WORK/sweep.err")"; finish; exit 1; }
"$KILN_BIN" sweep status "$WORK/sweep" --json >"$WORK/status.json"
# every trial ASHA took to the last rung: its id and its values as --set arguments
mapfile -t promoted < <("$PY" - "$WORK/status.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for t in d["trials"]:
    if t["rung"] == len(d["rungs"]) - 1 and t["state"] == "done":
        print(t["trial"], " ".join(f"--set {k}={v}" for k, v in t["params"].items()))
PY
)
[ "${#promoted[@]}" -ge 2 ] && pass "${#promoted[@]} trials promoted twice (to 80 steps)" ||
  fail "expected at least 2 trials promoted to the last rung, found ${#promoted[@]}"
for row in "${promoted[@]}"; do
  read -r id sets <<<"$row"
  trial=$(printf '%s/sweep/trials/%05d' "$WORK" "$id")
  for step in 20 40; do
    [ -f "$trial/ckpt/$(printf 'step-%08d.h5' "$step")" ] || fail "trial $id: no checkpoint at rung step $step"
  done
  # shellcheck disable=SC2086
  "$KILN_BIN" train "$WORK/train.yaml" --set train.steps=80 $sets --set train.out_dir="$WORK/straight-$id" \
    >/dev/null 2>"$WORK/straight-$id.err" || { fail "trial $id: straight run failed: $(tail -2 "$WORK/straight-$id.err")"; continue; }
  if out=$("$PY" "$KILN_SRC/tests/fault/compare_runs.py" --train-curve "$trial" "$WORK/straight-$id" 80 2>&1); then
    pass "trial $id ($sets): promoted twice = trained straight: $out"
  else
    fail "trial $id: the promoted trial differs from the straight run: $out"
  fi
done
finish
