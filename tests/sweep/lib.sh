# shellcheck shell=bash
# Shared by tests/sweep: a tiny Fashion-MNIST MLP sweep, fast enough to run whole many times.
# Sourced after tests/e2e/lib.sh. sweep_configs writes $WORK/train.yaml (every trial's
# training) and $WORK/sweep.yaml (the same plus a sweep section: lr and batch size searched,
# eta 2, rungs at 20, 40 and 80 steps, 8 trials; extra lines of the sweep section as arguments).
sweep_configs() {
  cat >"$WORK/train.yaml" <<YAML
model:
  kind: mlp
  hidden: [32]
data:
  path: $(fmnist_h5)
optim:
  name: adamw
schedule:
  kind: cosine
train:
  batch_size: 64
  log_every: 10
  ckpt_every: 10
  keep: 100
  threads: 1
YAML
  {
    cat "$WORK/train.yaml"
    cat <<YAML
sweep:
  dir: $WORK/sweep
  metric: eval_accuracy
  mode: max
  eta: 2
  r_min: 20
  r_max: 80
  trials: 8
  space:
    optim:
      lr: loguniform(1e-4, 1e-1)
    train:
      batch_size: choice(32, 64)
YAML
    for line in "$@"; do echo "  $line"; done
  } >"$WORK/sweep.yaml"
}

# sweep_json DIR: `kiln sweep status DIR --json` without what differs between runs (nothing
# today but the directory's name).
sweep_json() {
  "$KILN_BIN" sweep status "$1" --json | "$PY" -c 'import json,sys; d=json.load(sys.stdin); d.pop("sweep"); print(json.dumps(d, sort_keys=True))'
}

# journal_check STRAIGHT DIR: the invariants of DIR's journal: the sweep is complete, every
# trial reached its end, no result was recorded twice, every result has its trial's results of
# the rungs below; and (STRAIGHT, a `kiln sweep status --json` of the same sweep run apart, or
# - for none) each trial has STRAIGHT's values and results. Prints a summary.
journal_check() {
  "$KILN_BIN" sweep status "$2" --json >"$WORK/status.json" || return 1
  "$PY" - "$1" "$2" "$WORK/status.json" <<'PY'
import collections, json, sys
ref = {t["trial"]: t for t in json.load(open(sys.argv[1]))["trials"]} if sys.argv[1] != "-" else None
events = []
for line in open(sys.argv[2] + "/journal.jsonl"):
    try:
        events.append(json.loads(line))
    except ValueError:
        pass  # a line torn by a kill (terminated by the next writer, skipped by all)
results = collections.Counter((e["id"], e["rung"]) for e in events if e["e"] == "result")
twice = [k for k, n in results.items() if n > 1]
if twice:
    sys.exit(f"results recorded twice: {twice}")
done = sum(e["e"] == "done" for e in events)
if done != 1:
    sys.exit(f"{done} done events")
status = json.load(open(sys.argv[3]))
if not status["complete"]:
    sys.exit("the sweep is not complete")
for t in status["trials"]:
    if t["state"] not in ("done", "stopped"):
        sys.exit(f"trial {t['trial']} ended {t['state']}")
    r = ref.get(t["trial"]) if ref is not None else t
    if r is None or r["params"] != t["params"]:
        sys.exit(f"trial {t['trial']} has other values than the uninterrupted sweep's: {t['params']}")
    for k, v in enumerate(t["values"]):
        if v is not None and r["values"][k] is not None and v != r["values"][k]:
            sys.exit(f"trial {t['trial']} rung {k}: {v} here, {r['values'][k]} uninterrupted")
        if v is not None and any(w is None for w in t["values"][:k]):
            sys.exit(f"trial {t['trial']} has a result at rung {k} but not below")
n_results = sum(v is not None for t in status["trials"] for v in t["values"])
if n_results != len(results):
    sys.exit(f"{len(results)} result events but {n_results} results in the state")
leases = sum(e["e"] == "lease" for e in events)
# a lease with no result is one a kill or a signal cut short: a later lease resumed it
print(f"{len(status['trials'])} trials, {len(results)} results each recorded once, "
      f"{leases - len(results)} leases cut short and resumed")
PY
}
