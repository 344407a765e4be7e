#!/usr/bin/env bash
# A tiny real sweep of the Fashion-MNIST MLP on 2 MPI workers: both workers train trials, the
# sweep completes, its best trial is in the registry (lineage: the sweep) with the objective
# the sweep measured, and `kiln sweep report` writes a page that headless Chromium renders:
# the page's script ran to its end (it marks the body data-ready) and the screenshot is not
# blank (it holds the plots' colors).
source "$(dirname "$0")/../e2e/lib.sh"
source "$(dirname "$0")/lib.sh"
sweep_configs
reg=$WORK/registry
if mpiexec -n 2 "$KILN_BIN" sweep "$WORK/sweep.yaml" --set registry.path="$reg" \
  --set registry.name=fmnist-sweep --set registry.alias=best >"$WORK/sweep.out" 2>"$WORK/sweep.err"; then
  pass "2 workers: $(grep -m1 '^kiln sweep:' "$WORK/sweep.out")"
else
  fail "the sweep failed: $(tail -5 "$WORK/sweep.err")"
  finish
  exit 1
fi
for g in g0 g1; do
  grep -q "\"e\":\"lease\".*:$g\"" "$WORK/sweep/journal.jsonl" && pass "worker $g trained trials" ||
    fail "worker $g took no lease"
done
[ "$(grep -c '^registered:' "$WORK/sweep.out")" -eq 1 ] && pass "registered once: $(grep '^registered:' "$WORK/sweep.out")" ||
  fail "expected one registration: $(grep registered "$WORK/sweep.out")"
"$KILN_BIN" sweep status "$WORK/sweep" --json >"$WORK/status.json"
"$KILN_BIN" registry --registry "$reg" show fmnist-sweep@best >"$WORK/version.json" 2>"$WORK/reg.err" ||
  fail "registry show: $(cat "$WORK/reg.err")"
if out=$("$PY" - "$WORK/status.json" "$WORK/version.json" "$WORK/sweep" <<'PY'
import json, sys
status, version = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
best = status["best"]
if not status["complete"] or status["registered"] != version["version"]:
    sys.exit(f"complete {status['complete']}, registered {status['registered']}, version {version['version']}")
if version["lineage"]["sweep"] != sys.argv[3] or version["lineage"]["sweep_trial"] != best["trial"]:
    sys.exit(f"lineage {version['lineage']} is not the sweep's best trial {best['trial']}")
if version["metrics"]["eval_accuracy"] != best["value"]:
    sys.exit(f"registered eval_accuracy {version['metrics']['eval_accuracy']} != the sweep's {best['value']}")
if best["rung"] != len(status["rungs"]) - 1:
    sys.exit(f"the best is at rung {best['rung']}, not the last")
if best["value"] < 0.7:
    sys.exit(f"the best accuracy {best['value']} is below 0.7: the trials did not learn")
print(f"version {version['version']}: trial {best['trial']}, eval_accuracy {best['value']}")
PY
); then pass "the registry holds the best trial: $out"; else fail "registry: $out"; fi
# the registered model is usable: evaluate it again
if "$KILN_BIN" eval --model registry:fmnist-sweep@best --registry "$reg" --input "$(fmnist_h5)" --output "$WORK/eval.json" >"$WORK/eval.out" 2>"$WORK/eval.err"; then
  # the same accuracy as the sweep measured on the same split
  acc=$(json_get "$WORK/eval.json" accuracy)
  best=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["best"]["value"])' "$WORK/status.json")
  "$PY" -c "import sys; sys.exit(abs($acc - $best) > 1e-12)" &&
    pass "kiln eval of the registered model: accuracy $acc, as the sweep measured" ||
    fail "kiln eval of the registered model: accuracy $acc, the sweep measured $best"
else
  fail "kiln eval of the registered model: $(tail -3 "$WORK/eval.err")"
fi

"$KILN_BIN" sweep report "$WORK/sweep" --out "$WORK/report.html" >/dev/null 2>"$WORK/report.err" ||
  fail "report: $(cat "$WORK/report.err")"
if ! command -v chromium >/dev/null; then
  fail "chromium not found: bash scripts/deps.sh installs it"
else
  browser=(chromium --headless --no-sandbox --disable-gpu --user-data-dir="$WORK/chromium" --window-size=1400,2400)
  timeout 120 "${browser[@]}" --dump-dom "file://$WORK/report.html" >"$WORK/dom.html" 2>"$WORK/chromium.err" || true
  grep -q 'data-ready="1"' "$WORK/dom.html" && pass "Chromium ran the report's script to its end" ||
    fail "the report's script did not finish in Chromium: $(grep -i error "$WORK/chromium.err" | head -3)"
  timeout 120 "${browser[@]}" --screenshot="$WORK/report.png" "file://$WORK/report.html" >/dev/null 2>&1 || true
  if out=$("$PY" - "$WORK/report.png" <<'PY'
import sys
from PIL import Image
img = Image.open(sys.argv[1]).convert("RGB")
colors = img.getcolors(maxcolors=1 << 20) or []
inked = sum(n for n, c in colors if c != (255, 255, 255)) / (img.width * img.height)
# the plots' palette: the red of the best trial's curve and the blue of trial 0's
def near(c, ref): return sum(abs(a - b) for a, b in zip(c, ref)) < 60
has = {name: any(near(c, ref) for n, c in colors) for name, ref in (("red", (192, 0, 0)), ("blue", (76, 114, 176)))}
if inked < 0.02 or not all(has.values()):
    sys.exit(f"blank or plotless: {inked:.1%} of the page inked, colors {has}")
print(f"{img.width}x{img.height}, {inked:.1%} inked, {len(colors)} colors")
PY
  ); then pass "the report renders: $out"; else fail "the report's screenshot: $out"; fi
fi
finish
