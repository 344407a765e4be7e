#!/usr/bin/env bash
# Failures stay contained: a trial whose loss goes non-finite is failed with its error and the
# sweep goes on to its best among the others; a trial whose process dies more often than
# sweep.max_retries is failed as such; a sweep in which every trial fails stops with a
# summary of the errors and a non-zero exit.
source "$(dirname "$0")/../e2e/lib.sh"
source "$(dirname "$0")/lib.sh"
sweep_configs
# SGD at learning rates of 1e11 and more makes the loss non-finite within a few steps
sed -i 's/lr: loguniform(1e-4, 1e-1)/lr: choice(0.01, 1e12)/' "$WORK/sweep.yaml"
sed -i 's/^  trials: 8/  trials: 6/' "$WORK/sweep.yaml"
if "$KILN_BIN" sweep "$WORK/sweep.yaml" --set sweep.sampler=grid --set sweep.trials=0 --set optim.name=sgd --set optim.grad_clip=0 \
  --set sweep.dir="$WORK/mixed" >"$WORK/mixed.out" 2>"$WORK/mixed.err"; then
  "$KILN_BIN" sweep status "$WORK/mixed" --json >"$WORK/mixed.json"
  if out=$("$PY" - "$WORK/mixed.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
failed = [t for t in d["trials"] if t["state"] == "failed"]
good = [t for t in d["trials"] if t["state"] != "failed"]
if not failed or not good:
    sys.exit(f"{len(failed)} failed, {len(good)} not: {[(t['params'], t['state']) for t in d['trials']]}")
for t in failed:
    if float(t["params"]["optim.lr"]) != 1e12 or "non-finite" not in t.get("error", ""):
        sys.exit(f"trial {t['trial']} failed with {t['params']}: {t.get('error')}")
best = next(t for t in d["trials"] if t["trial"] == d["best"]["trial"])
if best["state"] == "failed":
    sys.exit("the best trial is a failed one")
print(f"{len(failed)} failed ({failed[0]['error'][:80]}...), {len(good)} finished, best trial {best['trial']}")
PY
  ); then pass "non-finite loss: $out"; else fail "non-finite loss: $out"; fi
else
  fail "a sweep with some failing trials exited non-zero: $(tail -3 "$WORK/mixed.err")"
fi

# every trial fails: exit 1 with the errors summarised
sed -i 's/lr: choice(0.01, 1e12)/lr: choice(1e11, 1e12)/' "$WORK/sweep.yaml"
rc=0
"$KILN_BIN" sweep "$WORK/sweep.yaml" --set sweep.dir="$WORK/allfail" --set optim.name=sgd --set optim.grad_clip=0 \
  >"$WORK/allfail.out" 2>"$WORK/allfail.err" || rc=$?
if [ "$rc" -eq 1 ] && grep -q "every one of the 6 trials failed: 6 like trial 0.s: non-finite loss" "$WORK/allfail.err" &&
  grep -q "non-finite" "$WORK/allfail.err"; then
  pass "every trial failed: exit 1, $(grep -m1 'every one' "$WORK/allfail.err" | cut -c1-200)"
else
  fail "every trial failed: exit $rc: $(tail -3 "$WORK/allfail.err")"
fi

# a trial whose process dies (SIGKILL mid-trial) more often than max_retries (0) is failed
cfg=(sweep "$WORK/sweep.yaml" --set sweep.dir="$WORK/dies" --set sweep.max_retries=0 --set optim.lr=0.01)
sed -i 's/lr: choice(1e11, 1e12)/lr: choice(0.01, 0.02)/' "$WORK/sweep.yaml"
setsid "$KILN_BIN" "${cfg[@]}" >/dev/null 2>"$WORK/dies.err" &
pid=$!
until grep -q '"e":"lease"' "$WORK/dies/journal.jsonl" 2>/dev/null || ! kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
kill -9 "$pid" 2>/dev/null && pass "killed the sweep while trial 0 trained" || fail "the sweep ended before its kill"
wait "$pid" 2>/dev/null || true
if "$KILN_BIN" "${cfg[@]}" >"$WORK/dies.out" 2>>"$WORK/dies.err"; then
  "$KILN_BIN" sweep status "$WORK/dies" --json >"$WORK/dies.json"
  out=$("$PY" - "$WORK/dies.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
t0, others = d["trials"][0], d["trials"][1:]
ok = t0["state"] == "failed" and "died" in t0.get("error", "") and all(t["state"] != "failed" for t in others)
states = sorted(set(t["state"] for t in others))
print(("" if ok else "BAD ") + f"trial 0 {t0['state']}: {t0.get('error')}; the others: {states}")
PY
  )
  case "$out" in BAD*) fail "a dying trial: $out" ;; *) pass "a dying trial: $out" ;; esac
else
  fail "the rerun after the kill failed: $(tail -3 "$WORK/dies.err")"
fi
finish
