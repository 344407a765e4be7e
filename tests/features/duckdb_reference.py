"""A second independent reference for `kiln features build`: every feature of every spine row
written as SQL for DuckDB (PyPI, installed by scripts/deps.sh into data/python/) over the same
CSV files, read by DuckDB's own CSV reader. Used by reference.sh.

  python3 duckdb_reference.py SPEC.yaml FEATURES.h5 CSV_DIR

The SQL is the textbook one, nothing of kiln's algorithm:
  - AGG(T.C) by KEY over W [at TIME]: the events and the spine rows in one union, and AGG over
    the window frame PARTITION BY KEY ORDER BY TIME RANGE BETWEEN W PRECEDING AND 1 MICROSECOND
    PRECEDING, i.e. event times in [t - W, t) (the spine rows carry NULL values, so they count
    nowhere); count, sum, avg, min, max, stddev_samp, and for last arg_max(value, (time, row))
    over the non-NULL values;
  - asof(T.C) by KEY [at TIME] [within D] [created C]: a join on the key with time <= t
    (t - time <= D, created <= t), the newest row by (time, row) kept with QUALIFY;
  - lookup(T.C) by KEY: a LEFT JOIN on the key;
  - hour()/dow()/day()/month(): DuckDB's date parts of the spine time in UTC (dow: isodow - 1);
  - column(C): the spine's column.
Types are DuckDB's CSV sniffer's over the whole file (the NA tokens kiln's import takes are
SQL NULL): numbers and booleans (0/1) as DOUBLE, timestamps in seconds, text as the code of
its category (0, 1, ... in order of first appearance, as kiln codes them); keys compare as
they are typed (text by its text, integers and timestamps by value). Keys or times that are
NULL are no events; a spine row with a NULL key or time has NULL features.

Compares /train/raw and /valid/raw (the features before transforms; columns in
/features/raw_names order; rows via /train/row, /valid/row, the 0-based spine rows in CSV order)
with SQL NULL as NaN, and the rows of each split (a time and a label; valid_from). Tolerance:
|kiln - duckdb| <= 1e-9 * max(1, |kiln|, |duckdb|) (1e-9 relative; absolute near zero, where a
windowed sum may cancel and the two sum in different orders). Prints one line of what it
compared; exits non-zero naming the first mismatch."""
import os, re, sys
import numpy as np
import h5py
import duckdb
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import duration_us, load_spec, parse_feature  # the spec's syntax only

NA_TOKENS = ["NA", "", "null", "NULL", "N/A"]  # kiln data import csv's default NA tokens
AGG_SQL = {"count": "count(v)", "sum": "sum(v)", "mean": "avg(v)", "min": "min(v)", "max": "max(v)",
           "std": "stddev_samp(v)", "last": "arg_max(v, (t, r)) FILTER (WHERE v IS NOT NULL)"}
PART_SQL = {"hour": "hour(t)", "dow": "isodow(t) - 1", "day": "day(t)", "month": "month(t)"}


def q(name):
    return '"' + name.replace('"', '""') + '"'


class Db:
    def __init__(self, csv_dir):
        self.con = duckdb.connect()
        self.con.execute("SET TimeZone = 'UTC'")
        # the as-of joins' time predicates as a range join, not as a filter on a hash join of
        # the key (three airports: billions of pairs)
        self.con.execute("SET prefer_range_joins = true")
        self.csv_dir, self.types = csv_dir, {}

    def table(self, name):
        """TABLE.csv as a table (insertion order kept: rowid is the 0-based data row); its types."""
        if name not in self.types:
            path = os.path.join(self.csv_dir, f"{name}.csv").replace("'", "''")
            self.con.execute(f"CREATE TABLE {q(name)} AS SELECT * FROM read_csv('{path}', header = true, "
                             f"nullstr = {NA_TOKENS!r}, sample_size = -1)")
            self.types[name] = {c: t for c, t, *_ in self.con.execute(f"DESCRIBE {q(name)}").fetchall()}
        return self.types[name]

    def value(self, table, col, alias):
        """COL of TABLE (aliased ALIAS) as a number, and any join that takes (category codes)."""
        ty = self.table(table)[col]
        c = f"{alias}.{q(col)}"
        if ty == "VARCHAR":
            codes = (f"LEFT JOIN (SELECT {q(col)} AS s, row_number() OVER (ORDER BY min(rowid)) - 1 AS code "
                     f"FROM {q(table)} WHERE {q(col)} IS NOT NULL GROUP BY {q(col)}) codes ON codes.s = {c}")
            return "CAST(codes.code AS DOUBLE)", codes
        if "TIME" in ty or ty == "DATE":
            return f"epoch_us(CAST({c} AS TIMESTAMPTZ)) / 1e6", ""
        return f"CAST({c} AS DOUBLE)", ""

    def key(self, table, col, other_table, alias):
        """The key COL as compared: as typed, or as text where the two tables type it differently."""
        same = self.table(table)[col] == self.table(other_table)[col]
        return f"{alias}.{q(col)}" if same else f"CAST({alias}.{q(col)} AS VARCHAR)"

    def feature(self, line, spine, time):
        """The feature of every spine row, NaN for NULL, as an array indexed by the spine's row."""
        kind, arg, cl, _ = parse_feature(line)
        n = self.con.execute(f"SELECT count(*) FROM {q(spine)}").fetchone()[0]
        sp = f"SELECT rowid AS row, CAST({q(time)} AS TIMESTAMPTZ) AS t FROM {q(spine)}"
        if kind in PART_SQL:
            sql = f"SELECT row, {PART_SQL[kind]} FROM ({sp})"
        elif kind == "column":
            v, join = self.value(spine, arg, "s")
            sql = f"SELECT s.rowid, {v} FROM {q(spine)} s {join}"
        else:
            table, col = arg.split(".")
            by = cl["by"]
            v, join = self.value(table, col, "e")
            ek, sk = self.key(table, by, spine, "e"), self.key(spine, by, table, "s")
            sp_k = f"SELECT s.rowid AS row, {sk} AS k, CAST(s.{q(time)} AS TIMESTAMPTZ) AS t FROM {q(spine)} s"
            at = "NULL" if kind == "lookup" else f"e.{q(cl.get('at', time))}"
            ev = (f"SELECT {ek} AS k, CAST({at} AS TIMESTAMPTZ) AS t, e.rowid AS r, {v} AS v"
                  + (f", CAST(e.{q(cl['created'])} AS TIMESTAMPTZ) AS c" if "created" in cl else "")
                  + f" FROM {q(table)} e {join} WHERE e.{q(by)} IS NOT NULL")
            if kind == "lookup":
                sql = f"SELECT sp.row, ev.v FROM ({sp_k}) sp LEFT JOIN ({ev}) ev ON ev.k = sp.k"
            elif kind == "asof":
                cond = "ev.t <= sp.t"
                if "within" in cl:
                    cond += f" AND ev.t >= sp.t - INTERVAL {duration_us(cl['within'])} MICROSECONDS"
                if "created" in cl:
                    cond += " AND ev.c <= sp.t"
                sql = (f"SELECT sp.row, m.v FROM ({sp_k}) sp LEFT JOIN (SELECT sp.row, ev.v FROM ({sp_k}) sp "
                       f"JOIN ({ev}) ev ON ev.k = sp.k AND {cond} "
                       f"QUALIFY row_number() OVER (PARTITION BY sp.row ORDER BY ev.t DESC, ev.r DESC) = 1) m "
                       f"ON m.row = sp.row")
            else:
                frame = (f"PARTITION BY k ORDER BY t RANGE BETWEEN INTERVAL {duration_us(cl['over'])} MICROSECONDS "
                         f"PRECEDING AND INTERVAL 1 MICROSECOND PRECEDING")
                both = (f"SELECT k, t, r, v, NULL AS row FROM ({ev}) WHERE t IS NOT NULL UNION ALL "
                        f"SELECT k, t, NULL, NULL, row FROM ({sp_k}) WHERE k IS NOT NULL AND t IS NOT NULL")
                sql = (f"SELECT sp.row, w.x FROM ({sp_k}) sp LEFT JOIN "
                       f"(SELECT row, {AGG_SQL[kind]} OVER ({frame}) AS x FROM ({both})) w ON w.row = sp.row")
        rows, vals = self.con.execute(f"SELECT row, coalesce(CAST(x AS DOUBLE), 'NaN'::DOUBLE) "
                                      f"FROM ({sql}) AS f(row, x) ORDER BY row").fetchnumpy().values()
        if len(rows) != n or (rows != np.arange(n)).any():
            sys.exit(f"{line}: the SQL gave {len(rows)} rows for {n} spine rows (two rows with one key?)")
        return np.asarray(vals, dtype=np.float64)

    def splits(self, spine, time, label_col, valid_from):
        """The spine rows of each split: a time and a label, before valid_from or not."""
        t = f"CAST({q(time)} AS TIMESTAMPTZ)"
        cut = f"CAST('{valid_from}' AS TIMESTAMPTZ)" if valid_from else "NULL"
        out = {}
        for s, cond in (("train", f"({cut} IS NULL OR {t} < {cut})"), ("valid", f"{t} >= {cut}")):
            out[s] = self.con.execute(f"SELECT rowid FROM {q(spine)} WHERE {t} IS NOT NULL AND {q(label_col)} "
                                      f"IS NOT NULL AND {cond} ORDER BY rowid").fetchnumpy()["rowid"]
        return out


def main():
    spec_path, out_path, csv_dir = sys.argv[1:4]
    spec, feats = load_spec(spec_path)
    spine, time = spec["spine.table"], spec["spine.time"]
    db = Db(csv_dir)
    db.table(spine)
    with h5py.File(out_path, "r") as f:
        names = [s.decode() if isinstance(s, bytes) else s for s in f["features/raw_names"][:]]
        rows = {s: f[f"{s}/row"][:] for s in ("train", "valid")}
        raw = {s: f[f"{s}/raw"][:] for s in ("train", "valid")}
    if names != sorted(feats):
        sys.exit(f"/features/raw_names {names}, the spec's features {sorted(feats)}")
    label_col = re.match(r"\s*(\S+?)\s*(>=|<=|==|!=|>|<)", spec["spine.label"]).group(1)
    want = db.splits(spine, time, label_col, spec.get("valid_from"))
    for s in ("train", "valid"):
        if len(want[s]) != len(rows[s]) or (want[s] != rows[s]).any():
            sys.exit(f"/{s}/row: kiln {len(rows[s])} rows, DuckDB {len(want[s])}")
    compared = 0
    for j, name in enumerate(names):
        ref = db.feature(feats[name], spine, time)
        for s in ("train", "valid"):
            got, exp = raw[s][:, j], ref[rows[s]]
            nan = np.isnan(got) | np.isnan(exp)
            ok = np.where(nan, np.isnan(got) & np.isnan(exp),
                          np.abs(got - exp) <= 1e-9 * np.maximum(1, np.maximum(np.abs(got), np.abs(exp))))
            if not ok.all():
                i = int(np.flatnonzero(~ok)[0])
                sys.exit(f"feature {name} ({feats[name]}), spine row {rows[s][i]} (line {rows[s][i] + 2}): "
                         f"kiln {got[i]!r}, DuckDB {exp[i]!r}")
            compared += len(got)
    n_rows = len(rows["train"]) + len(rows["valid"])
    print(f"DuckDB {duckdb.__version__}: {compared} feature values of the {n_rows} labelled spine rows x "
          f"{len(names)} features within 1e-9, and the rows of both splits")


if __name__ == "__main__":
    main()
