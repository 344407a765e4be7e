"""An independent reference for `kiln features build`: every feature of every spine row computed
from its definition by brute force in float64 (numpy masks over the rows of the key, no sorting,
no running sums), read from the same CSV files with Python's csv module. Used by reference.sh.

  python3 reference.py SPEC.yaml FEATURES.h5 SAMPLE CSV_DIR

compares /train/raw and /valid/raw (the features before transforms) within 1e-9 relative (NaN
where kiln has NaN), the labels, the split, and /train/x, /valid/x against the reference's
transforms fitted on the training rows (float32). SAMPLE: check only that many spine rows, drawn
evenly (0: all, and the transforms too). CSV_DIR holds TABLE.csv for every table. Prints what it compared; exits non-zero naming the first difference."""
import csv, datetime, math, re, sys
import numpy as np
import h5py
import yaml

NA = {"NA", "", "null", "NULL", "N/A"}


def parse_time(text):
    if text in NA:
        return None
    d = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if d.tzinfo is None:
        d = d.replace(tzinfo=datetime.timezone.utc)
    delta = d - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    return (delta.days * 86400 + delta.seconds) * 1000000 + delta.microseconds


def number(text):
    if text in NA:
        return math.nan
    bools = {"true": 1.0, "false": 0.0, "True": 1.0, "False": 0.0, "TRUE": 1.0, "FALSE": 0.0}
    return bools[text] if text in bools else float(text)


def load_spec(path):
    """The spec's keys, flattened (spine.time, ...), and its features."""
    doc = yaml.safe_load(open(path))
    spec = {k: str(v) for k, v in doc.items() if not isinstance(v, dict)}
    spec.update({f"spine.{k}": str(v) for k, v in doc["spine"].items()})
    return spec, {k: str(v) for k, v in doc["features"].items()}


class Table:
    def __init__(self, path):
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        self.header, self.rows = rows[0], rows[1:]

        self.cache = {}

    def text(self, col):
        if ("text", col) not in self.cache:
            i = self.header.index(col)
            self.cache["text", col] = [r[i] for r in self.rows]
        return self.cache["text", col]

    def times(self, col):
        if ("time", col) not in self.cache:
            self.cache["time", col] = [parse_time(t) for t in self.text(col)]
        return self.cache["time", col]


def parse_feature(line):
    body, *transforms = [p.strip() for p in line.split("|")]
    m = re.match(r"(\w+)\(([^)]*)\)\s*(.*)", body)
    kind, arg, rest = m.group(1), m.group(2), m.group(3).split()
    clauses = dict(zip(rest[0::2], rest[1::2]))
    return kind, arg, clauses, transforms


def duration_us(text):
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}[text[-1]]
    return round(float(text[:-1]) * unit * 1e6)


def aggregate(kind, v):
    v = v[~np.isnan(v)]
    if kind == "count":
        return float(len(v))
    if len(v) == 0:
        return math.nan
    if kind == "sum":
        return float(np.sum(v, dtype=np.float64))
    if kind == "mean":
        return float(np.mean(v, dtype=np.float64))
    if kind == "min":
        return float(v.min())
    if kind == "max":
        return float(v.max())
    if kind == "std":
        return float(np.std(v, ddof=1)) if len(v) > 1 else math.nan
    raise ValueError(kind)


def fnv1a64(text):
    h = 14695981039346656037
    for byte in text.encode():
        h = ((h ^ byte) * 1099511628211) % 2**64
    return h


def categorical(transforms):
    """codes and hash read a category's text: the feature's values are then its strings."""
    return bool(transforms) and (transforms[0] == "codes" or transforms[0].startswith(("codes(", "hash(")))


def feature_values(kind, arg, cl, spine, spine_time, tables, rows_to_check, texts=False):
    """Each spine row's feature (NaN for NA); with texts, a category's string (None for NA)."""
    out = {}
    if kind in ("hour", "dow", "day", "month"):
        for i in rows_to_check:
            t = spine_time[i]
            if t is None:
                out[i] = math.nan
                continue
            d = datetime.datetime(1970, 1, 1) + datetime.timedelta(microseconds=t)
            out[i] = float({"hour": d.hour, "dow": d.weekday(), "day": d.day, "month": d.month}[kind])
        return out
    if kind == "column":
        vals = [(None if x in NA else x) if texts else number(x) for x in spine.text(arg)]
        return {i: vals[i] for i in rows_to_check}
    tname, col = arg.split(".")
    tab = tables[tname]
    by = cl["by"]
    skey, ekey = spine.text(by), tab.text(by)
    vals = np.array([None if x in NA else x for x in tab.text(col)], dtype=object) if texts else \
        np.array([number(x) for x in tab.text(col)])
    NONE = -2**63
    if kind != "lookup":
        etime = np.array([NONE if x is None else x for x in tab.times(cl.get("at", SPINE_TIME))], dtype=np.int64)
    created = np.array([2**62 if x is None else x for x in tab.times(cl["created"])], dtype=np.int64) \
        if "created" in cl else None
    groups = {}
    for j, k in enumerate(ekey):
        if k not in NA:
            groups.setdefault(k, []).append(j)
    groups = {k: np.array(v, dtype=np.int64) for k, v in groups.items()}
    for i in rows_to_check:
        k, t = skey[i], spine_time[i]
        idx = groups.get(k, np.zeros(0, np.int64)) if k not in NA else None
        if idx is None or (t is None and kind != "lookup"):
            out[i] = None if texts else math.nan
            continue
        if kind == "lookup":
            out[i] = vals[idx[0]] if len(idx) else (None if texts else math.nan)
            continue
        tt = etime[idx]
        ok = tt != NONE
        if kind == "asof":
            mask = ok & (tt <= t)
            if "within" in cl:
                mask &= t - tt <= duration_us(cl["within"])
            if created is not None:
                mask &= created[idx] <= t
            cand = idx[mask]
            if len(cand) == 0:
                out[i] = None if texts else math.nan
            else:
                best_t = tt[mask].max()
                out[i] = vals[cand[tt[mask] == best_t][-1]]  # the last row in input order among equal times
            continue
        mask = ok & (tt >= t - duration_us(cl["over"])) & (tt < t)
        if kind == "last":
            sel = idx[mask]
            sel = sel[~np.isnan(vals[sel])]
            if len(sel) == 0:
                out[i] = math.nan
            else:
                st = etime[sel]
                out[i] = vals[sel[st == st.max()][-1]]
            continue
        out[i] = aggregate(kind, vals[idx[mask]])
    return out


def transform(col, names, train):
    """The transforms applied in order, what each learned (a, b) as kiln stores them, and the
    lists: buckets' quantiles, codes' kept categories with their training rows."""
    x = col.copy()
    ind, learned, lists = None, [], {}
    for tr in names:
        a = b = 0.0
        if tr == "codes" or tr.startswith("codes("):  # x: the category's strings (None: NA)
            a = float(tr[6:-1]) if tr != "codes" else 1.0
            counts = {}
            for v in x[train]:
                if v is not None:
                    counts[v] = counts.get(v, 0) + 1
            kept = [k for k in sorted(counts, key=lambda k: (-counts[k], k)) if counts[k] >= a]
            code = {k: i + 1 for i, k in enumerate(kept)}
            x = np.array([math.nan if v is None else float(code.get(v, 0)) for v in x])
            lists["codes"] = (kept, [counts[k] for k in kept])
            b = float(len(kept))
        elif tr.startswith("hash("):
            a = float(tr[5:-1])
            x = np.array([math.nan if v is None else float(fnv1a64(v) % int(a)) for v in x])
        elif tr.startswith("buckets("):
            a = float(tr[8:-1])
            v = np.sort(x[train & ~np.isnan(x)])
            edges = []
            for i in range(1, int(a)):
                e = float(np.quantile(v, i / a)) if len(v) else None
                if e is not None and (not edges or e > edges[-1]):
                    edges.append(e)
            x = np.where(np.isnan(x), np.nan, np.searchsorted(np.array(edges), x, side="right").astype(np.float64))
            lists["buckets"] = edges
            b = float(len(edges))
        elif tr == "fill_mean":
            v = x[train & ~np.isnan(x)]
            a = v.mean() if len(v) else 0.0
            x[np.isnan(x)] = a
            b = v.std() if len(v) else 0.0
        elif tr.startswith("fill("):
            a = float(tr[5:-1])
            x[np.isnan(x)] = a
        elif tr == "indicator":
            ind = np.isnan(x).astype(np.float64)
        elif tr == "standardize":
            v = x[train & ~np.isnan(x)]
            a, b = (v.mean(), v.std()) if len(v) else (0.0, 0.0)
            x = (x - a) / b if b > 0 else x - a
        elif tr == "minmax":
            v = x[train & ~np.isnan(x)]
            a, b = (v.min(), v.max()) if len(v) else (0.0, 0.0)
            x = (x - a) / (b - a) if b > a else x - a
        elif tr == "log1p":
            with np.errstate(invalid="ignore", divide="ignore"):
                x = np.where(x > -1, np.log1p(np.where(x > -1, x, 0)), np.nan)
        elif tr.startswith("clip("):
            a, b = map(float, tr[5:-1].split(","))
            x = np.where(np.isnan(x), x, np.clip(x, a, b))
        learned.append((float(a), float(b)))
    return x.astype(np.float64), ind, learned, lists


def close(a, b, rel=1e-9):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= rel * max(1.0, abs(a), abs(b))


def check_lists(name, lists, stored):
    """buckets' quantiles within 1e-12, codes' categories and their training rows exactly."""
    if "buckets" in lists:
        got, want = stored["buckets"], np.array(lists["buckets"])
        if got is None or got.shape != want.shape or not np.allclose(got, want, rtol=1e-12, atol=0):
            sys.exit(f"{name}: buckets stored {got}, reference {want}")
    if "codes" in lists:
        if stored["codes"] != lists["codes"][0] or list(stored["codes_rows"]) != lists["codes"][1]:
            sys.exit(f"{name}: codes stored {stored['codes']} {stored['codes_rows']}, reference {lists['codes']}")


def check_stats(name, v, got, hist):
    """/stats/NAME (count, missing share, mean, std, min, max, quantiles) and /histograms/NAME
    against numpy over the training rows."""
    ok = v[~np.isnan(v)]
    q = [float(np.quantile(ok, p)) if len(ok) else math.nan for p in (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)]
    want = [len(ok), 1 - len(ok) / len(v), ok.mean() if len(ok) else math.nan,
            ok.std(ddof=1) if len(ok) > 1 else math.nan, ok.min() if len(ok) else math.nan,
            ok.max() if len(ok) else math.nan] + q
    for k, (g, w) in enumerate(zip(got, want)):
        if not close(float(g), float(w)):
            sys.exit(f"{name}: statistic {k} is {g}, numpy says {w}")
    counts = np.histogram(ok, bins=20, range=(ok.min(), ok.max()))[0] if len(ok) else np.zeros(20)
    if not (hist == counts).all():
        sys.exit(f"{name}: histogram {list(hist)}, numpy's {list(counts)}")


SPINE_TIME = None


def main():
    global SPINE_TIME
    spec_path, out_path = sys.argv[1], sys.argv[2]
    sample = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    spec, feats = load_spec(spec_path)
    csv_dir = sys.argv[4] if len(sys.argv) > 4 else "."  # the tables' CSV files: CSV_DIR/TABLE.csv
    SPINE_TIME = spec["spine.time"]
    names = sorted(feats)  # kiln keeps the features in key order
    tables = {}
    spine = Table(f"{csv_dir}/{spec['spine.table']}.csv")
    tables[spec["spine.table"]] = spine
    for line in feats.values():
        kind, arg, cl, _ = parse_feature(line)
        if "." in arg:
            t = arg.split(".")[0]
            if t not in tables:
                tables[t] = Table(f"{csv_dir}/{t}.csv")
    spine_time = spine.times(SPINE_TIME)
    n = len(spine.rows)
    lab_col, op, thr = re.match(r"\s*(\S+)\s*(>=|<=|==|!=|>|<)\s*(\S+)", spec["spine.label"]).groups()
    lab = np.array([number(x) for x in spine.text(lab_col)])
    keep = ~np.isnan(lab) & np.array([t is not None for t in spine_time])
    valid_from = parse_time(spec["valid_from"]) if spec.get("valid_from") else 2**62
    train = keep & np.array([t is not None and t < valid_from for t in spine_time])
    y = {">": lab > float(thr), ">=": lab >= float(thr), "<": lab < float(thr), "<=": lab <= float(thr),
         "==": lab == float(thr), "!=": lab != float(thr)}[op]
    with h5py.File(out_path, "r") as f:
        got_names = [s.decode() if isinstance(s, bytes) else s for s in f["features/names"][:]]
        rows = {s: f[f"{s}/row"][:] for s in ("train", "valid")}
        raw = {s: f[f"{s}/raw"][:] for s in ("train", "valid")}
        xs = {s: f[f"{s}/x"][:] for s in ("train", "valid")}
        fit_a, fit_b = f["features/transform_a"][:], f["features/transform_b"][:]
        ys = {s: f[f"{s}/y"][:] for s in ("train", "valid")}
        def strings(path):
            return [v.decode() if isinstance(v, bytes) else v for v in f[path][:]] if path in f else None
        cats = {n: strings(f"features/categories/{n}") for n in feats}
        stored = {n: {"buckets": f[f"features/buckets/{n}"][:] if f"features/buckets/{n}" in f else None,
                      "codes": strings(f"features/codes/{n}"),
                      "codes_rows": f[f"features/codes_rows/{n}"][:] if f"features/codes_rows/{n}" in f else None}
                  for n in feats}
        stats = {n: (f[f"stats/{n}"][:], f[f"histograms/{n}"][:]) for n in feats}
    assert list(rows["train"]) == list(np.flatnonzero(train)), "the training rows"
    assert list(rows["valid"]) == list(np.flatnonzero(keep & ~train)), "the validation rows"
    for s in ("train", "valid"):
        assert (ys[s] == y[rows[s]]).all(), f"{s}/y"
    check = range(n) if not sample else sorted(set(np.linspace(0, n - 1, sample).astype(int)))
    where = {}
    for s in ("train", "valid"):
        for pos, r in enumerate(rows[s]):
            where[int(r)] = (s, pos)
    compared = 0
    full = {}
    for j, name in enumerate(names):
        kind, arg, cl, transforms = parse_feature(feats[name])
        texts = categorical(transforms)
        ref = feature_values(kind, arg, cl, spine, spine_time, tables, range(n) if not sample else check, texts)
        for i in check:
            if i not in where:
                continue
            s, pos = where[i]
            got = raw[s][pos, j]
            if texts:  # kiln's raw value is the string's position in /features/categories/NAME
                got = None if math.isnan(got) else cats[name][int(got)]
                if got != ref[i]:
                    sys.exit(f"feature {name} ({feats[name]}), spine row {i}: kiln {got!r}, reference {ref[i]!r}")
            elif not close(got, ref[i]):
                sys.exit(f"feature {name} ({feats[name]}), spine row {i} (line {i + 2}): kiln {got!r}, "
                         f"reference {ref[i]!r}")
            compared += 1
        if not sample:
            full[name] = np.array([ref[i] for i in range(n)], dtype=object if texts else np.float64)
    xcols = 0
    if not sample:  # the transforms, over every row
        col = 0
        for name in names:
            kind, arg, cl, transforms = parse_feature(feats[name])
            x, ind, learned, lists = transform(full[name], transforms, train)
            j = names.index(name)
            check_lists(name, lists, stored[name])
            if not categorical(transforms):
                check_stats(name, full[name][train], *stats[name])
            for t, (a, b) in enumerate(learned):
                if transforms[t] in ("log1p", "indicator"):
                    continue
                if not (close(fit_a[j, t], a) and (transforms[t] == "fill_mean" or transforms[t].startswith("fill(")
                                                    or close(fit_b[j, t], b))):
                    sys.exit(f"{name}: transform {transforms[t]} stored ({fit_a[j, t]}, {fit_b[j, t]}), "
                             f"reference ({a}, {b})")
            for s in ("train", "valid"):
                want = x[rows[s]].astype(np.float32)
                got = xs[s][:, col]
                bad = ~((got == want) | (np.isnan(got) & np.isnan(want)) |
                        (np.abs(got - want) <= 1e-5 * np.maximum(1, np.abs(want))))
                if bad.any():
                    k = int(np.flatnonzero(bad)[0])
                    sys.exit(f"x column {name} ({s} row {k}): kiln {got[k]!r}, reference {want[k]!r}")
            assert got_names[col] == name, (got_names[col], name)
            col += 1
            if ind is not None:
                for s in ("train", "valid"):
                    assert (xs[s][:, col] == ind[rows[s]]).all(), f"{name}_missing ({s})"
                col += 1
        xcols = col
    print(f"{compared} feature values of {len(check)} spine rows x {len(names)} features within 1e-9"
          + (f", {xcols} transformed columns and what their transforms learned (quantiles, codes), the "
             f"statistics and histograms" if xcols else ""))


if __name__ == "__main__":
    main()
