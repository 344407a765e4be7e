#!/usr/bin/env bash
# ASHA's decisions against an independent reference of the paper's algorithm
# (tests/sweep/asha_reference.py): for eta 2, 3, 4 and 1, 3, 8 workers, driven by the same
# deterministic simulated objective and clock, kiln's scheduler makes exactly the same runs,
# promotions, results and waits, and waits only when no promotion and no new trial exist (the
# reference asserts that). Once more through a real journal file: the same decisions.
source "$(dirname "$0")/../e2e/lib.sh"
compare() { # label args...
  local label=$1
  shift
  "$KILN_BIN" sweep simulate "$@" >"$WORK/kiln.jsonl" 2>"$WORK/kiln.err" || { fail "$label: kiln: $(cat "$WORK/kiln.err")"; return; }
  local ref=()
  for a in "$@"; do [ "$a" = --journal ] && break; ref+=("$a"); done
  "$PY" "$KILN_SRC/tests/sweep/asha_reference.py" "${ref[@]}" >"$WORK/ref.jsonl" 2>"$WORK/ref.err" ||
    { fail "$label: the reference: $(tail -3 "$WORK/ref.err")"; return; }
  if out=$("$PY" - "$WORK/kiln.jsonl" "$WORK/ref.jsonl" <<'PY'
import json, sys
def events(path):
    ev, summary = [], None
    for line in open(path):
        d = json.loads(line)
        if d.get("summary"):
            summary = d
            continue
        kind = "run" if "run" in d else "result" if "result" in d else "wait"
        ev.append((d["t"], d["worker"], kind, d.get("run", d.get("result")), d.get("rung"),
                   round(d["value"], 12) if "value" in d else None))
    return ev, summary
k, ks = events(sys.argv[1])
r, rs = events(sys.argv[2])
for i, (a, b) in enumerate(zip(k, r)):
    if a != b:
        sys.exit(f"event {i} differs: kiln {a}, reference {b}")
if len(k) != len(r):
    sys.exit(f"kiln made {len(k)} events, the reference {len(r)}")
if (ks["trials"], ks["promotions"]) != (rs["trials"], rs["promotions"]):
    sys.exit(f"summaries differ: {ks} / {rs}")
waits = sum(e[2] == "wait" for e in k)
print(f"{len(k)} events, {ks['trials']} trials, {ks['promotions']} promotions, {waits} waits")
PY
  ); then pass "$label: the same as the reference: $out"; else fail "$label: $out"; fi
}
for eta in 2 3 4; do
  for workers in 1 3 8; do
    compare "eta $eta, $workers workers" --workers "$workers" --eta "$eta" --trials 40 --r-min 1 \
      --r-max $((eta * eta * eta))
  done
done
compare "eta 3, 3 workers, r_max not a power (rungs 2, 6, 18, 20)" --workers 3 --eta 3 --trials 30 \
  --r-min 2 --r-max 20
compare "eta 2, 8 workers through a journal file" --workers 8 --eta 2 --trials 40 --r-min 1 --r-max 8 \
  --journal "$WORK/journal"
finish
