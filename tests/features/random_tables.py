"""Random event tables with the hard cases of feature builds, and a spec over them, written into
the current directory for tests/features/*.sh: events.csv (unsorted times on a 10-minute grid,
so many ties; NA values, keys and times), spine.csv (keys without events, a label), snap.csv
(as-of rows, some created after they are valid), static.csv (not every key; an NA), and
spec.yaml (every aggregate over two windows, as-of with a tolerance and a creation time, a
lookup, the time parts, a spine column, every transform: buckets, codes with rare categories
and NAs, hash). Seeded: the same files every run."""
import csv, random, datetime
rng = random.Random(7)
base = datetime.datetime(2013, 1, 1, tzinfo=datetime.timezone.utc)
def ts(minutes):
    return (base + datetime.timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
keys = [f"k{i}" for i in range(25)] + ["solo"]
# events: unsorted times on a 10-minute grid (many ties), NA values, keys and times
with open("events.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["key", "time", "value", "flag"])
    for i in range(4000):
        k = rng.choice(keys[:-1])
        t = 10 * rng.randrange(0, 6 * 24 * 20)
        v = "NA" if rng.random() < 0.08 else f"{rng.gauss(5, 20):.6g}"
        w.writerow(["NA" if rng.random() < 0.01 else k, "NA" if rng.random() < 0.01 else ts(t), v,
                    rng.choice(["true", "false"])])
    w.writerow(["solo", ts(600), "42.5", "true"])  # a key with one row
# the spine: its own keys (some without events), times on the same grid, a label
with open("spine.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["key", "time", "delay", "size"])
    for i in range(1500):
        k = rng.choice(keys + ["none1", "none2"])
        w.writerow([k, ts(10 * rng.randrange(0, 6 * 24 * 20)), "NA" if rng.random() < 0.03 else f"{rng.gauss(10, 30):.4g}",
                    f"{rng.randrange(1, 500)}"])
# as-of rows: a value valid from `time`, known from `created` (sometimes later)
with open("snap.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["key", "time", "created", "level"])
    for i in range(2000):
        t = 10 * rng.randrange(0, 6 * 24 * 20)
        w.writerow([rng.choice(keys), ts(t), ts(t + rng.choice([0, 0, 0, 30, 240])), f"{rng.uniform(-5, 5):.5f}"])
# a static table (not every key)
with open("static.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["key", "seats", "kind"])
    for k in keys[:20]:
        kind = rng.choice(["common"] * 8 + ["mid"] * 4 + ["rare", "NA"])
        w.writerow([k, "NA" if k == "k3" else rng.randrange(50, 300), kind])
with open("spec.yaml", "w") as f:
    f.write("""tables: tables.h5
spine: {table: spine, time: time, label: delay > 15}
valid_from: "2013-01-15T00:00:00Z"
features:
  c1: count(events.value) by key over 1h
  c2: count(events.value) by key over 2d | standardize
  s1: sum(events.value) by key over 1h | fill(0)
  m1: mean(events.value) by key over 3h | indicator | fill_mean | standardize
  lo: min(events.value) by key over 1d | fill_mean | minmax
  hi: max(events.value) by key over 1d | clip(-10,30)
  sd: std(events.value) by key over 2d | fill_mean
  la: last(events.value) by key over 6h | fill(-1)
  fl: mean(events.flag) by key over 1d
  asof_level: asof(snap.level) by key within 2h | indicator | fill(0)
  asof_known: asof(snap.level) by key created created | fill_mean | standardize
  seats: lookup(static.seats) by key | log1p | standardize
  hour: hour()
  dow: dow() | minmax
  day: day()
  month: month()
  size: column(size) | log1p
  size_q: column(size) | buckets(10)
  m_q: mean(events.value) by key over 1d | fill_mean | buckets(4)
  kind_code: lookup(static.kind) by key | codes(30) | indicator | fill(-1)
  key_code: column(key) | codes(40)
  key_hash: column(key) | hash(7)
""")
