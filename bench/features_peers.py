"""The peers of bench/features_bench.sh: the same four features of every flight computed by DuckDB
(SQL: RANGE window frames, ASOF JOIN), Polars (rolling with group_by, join_asof) and pandas
(groupby().rolling, merge_asof), each from the CSV files, import and features timed apart:

  origin_dep_delay_1h   mean(flights.dep_delay) by origin over [t - 1h, t)
  origin_flights_1h     count(flights.dep_delay) by origin over [t - 1h, t)
  plane_arr_delay_7d    mean(flights.arr_delay) by tailnum over [t - 7d, t)
  temp                  the latest weather.temp of the origin at or before t, within 3h

  python features_peers.py FLIGHTS.csv WEATHER.csv SYSTEM OUT.npy

prints one JSON line {system, import_s, features_s, rows, peak_rss_mb} and saves the features,
in the flights' file order, as float64 [rows, 4] (NaN where there is nothing) for the check."""
import json, resource, sys, time
import numpy as np

flights_csv, weather_csv, system, out = sys.argv[1:5]
NAMES = ["origin_dep_delay_1h", "origin_flights_1h", "plane_arr_delay_7d", "temp"]


def duckdb_run():
    import duckdb
    con = duckdb.connect()
    con.execute(f"SET threads = {sys.argv[5] if len(sys.argv) > 5 else 2}")
    t0 = time.perf_counter()
    con.execute(f"CREATE TABLE flights AS SELECT row_number() OVER () - 1 AS rid, * FROM "
                f"read_csv('{flights_csv}', nullstr='NA', header=true, timestampformat='%Y-%m-%dT%H:%M:%SZ')")
    con.execute(f"CREATE TABLE weather AS SELECT * FROM read_csv('{weather_csv}', nullstr='NA', header=true, "
                f"timestampformat='%Y-%m-%dT%H:%M:%SZ')")
    t1 = time.perf_counter()
    res = con.execute("""
        WITH w AS (
          SELECT rid,
            AVG(dep_delay) OVER (PARTITION BY origin ORDER BY time_hour
              RANGE BETWEEN INTERVAL 1 HOUR PRECEDING AND INTERVAL 1 MICROSECOND PRECEDING) AS a,
            COUNT(dep_delay) OVER (PARTITION BY origin ORDER BY time_hour
              RANGE BETWEEN INTERVAL 1 HOUR PRECEDING AND INTERVAL 1 MICROSECOND PRECEDING) AS b,
            CASE WHEN tailnum IS NULL THEN NULL ELSE AVG(arr_delay) OVER (PARTITION BY tailnum ORDER BY time_hour
              RANGE BETWEEN INTERVAL 7 DAY PRECEDING AND INTERVAL 1 MICROSECOND PRECEDING) END AS c
          FROM flights),
        j AS (
          SELECT f.rid, CASE WHEN f.time_hour - x.time_hour <= INTERVAL 3 HOUR THEN x.temp END AS d
          FROM flights f ASOF LEFT JOIN weather x ON f.origin = x.origin AND f.time_hour >= x.time_hour)
        SELECT w.a, w.b, w.c, j.d FROM w JOIN j USING (rid) ORDER BY w.rid""").fetchnumpy()
    t2 = time.perf_counter()
    cols = [np.ma.filled(np.ma.asarray(res[k], dtype=np.float64), np.nan) for k in ("a", "b", "c", "d")]
    x = np.stack(cols, axis=1)
    return t1 - t0, t2 - t1, x


def polars_run():
    import polars as pl
    t0 = time.perf_counter()
    stamp = pl.col("time_hour").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", time_zone="UTC")
    f = pl.read_csv(flights_csv, null_values="NA", infer_schema_length=None).with_columns(stamp).with_row_index("rid")
    w = pl.read_csv(weather_csv, null_values="NA", infer_schema_length=None).with_columns(stamp)
    t1 = time.perf_counter()
    parts = []
    for key, period in (("origin", "1h"), ("tailnum", "7d")):
        col = "dep_delay" if key == "origin" else "arr_delay"
        g = f.filter(pl.col(key).is_not_null()).sort([key, "time_hour", "rid"])
        r = g.rolling(index_column="time_hour", period=period, closed="left", group_by=key).agg(
            pl.col(col).mean().alias("m"), pl.col(col).count().alias("n"))
        # one result row per input row, each group's rows in input order; groups in any order
        r = r.sort([key, "time_hour"], maintain_order=True)
        parts.append(g.select("rid").with_columns(r.select("m", "n")))
    o, t = parts
    wj = w.sort(["time_hour"])
    aj = f.sort("time_hour").join_asof(wj.select("origin", "time_hour", "temp"), on="time_hour", by="origin",
                                      strategy="backward", tolerance="3h")
    t2 = time.perf_counter()
    n = f.height
    x = np.full((n, 4), np.nan)
    rid = o["rid"].to_numpy()
    x[rid, 0] = o["m"].to_numpy().astype(np.float64)
    x[rid, 1] = o["n"].to_numpy().astype(np.float64)
    rid = t["rid"].to_numpy()
    x[rid, 2] = t["m"].to_numpy().astype(np.float64)
    x[aj["rid"].to_numpy(), 3] = aj["temp"].to_numpy().astype(np.float64)
    return t1 - t0, t2 - t1, x


def pandas_run():
    import pandas as pd
    t0 = time.perf_counter()
    f = pd.read_csv(flights_csv, na_values=["NA"], keep_default_na=False, parse_dates=["time_hour"])
    w = pd.read_csv(weather_csv, na_values=["NA"], keep_default_na=False, parse_dates=["time_hour"])
    t1 = time.perf_counter()
    f["rid"] = np.arange(len(f))
    n = len(f)
    x = np.full((n, 4), np.nan)
    for key, col, period, cols in (("origin", "dep_delay", "1h", (0, 1)), ("tailnum", "arr_delay", "7D", (2,))):
        g = f[f[key].notna() & (f[key] != "")].sort_values([key, "time_hour", "rid"])
        roll = g.groupby(key, sort=False).rolling(period, on="time_hour", closed="left")[col]
        m = roll.mean().to_numpy()
        x[g["rid"].to_numpy(), cols[0]] = m
        if len(cols) > 1:  # an empty window counts 0 (pandas gives NaN)
            x[g["rid"].to_numpy(), cols[1]] = np.nan_to_num(roll.count().to_numpy(), nan=0.0)
    fs = f.sort_values("time_hour")
    ws = w.sort_values("time_hour")
    j = pd.merge_asof(fs, ws[["origin", "time_hour", "temp"]], on="time_hour", by="origin",
                      tolerance=pd.Timedelta("3h"), direction="backward")
    x[j["rid"].to_numpy(), 3] = j["temp"].to_numpy()
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, x


run = {"duckdb": duckdb_run, "polars": polars_run, "pandas": pandas_run}[system]
imp, feat, x = run()
np.save(out, x)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"system": system, "import_s": imp, "features_s": feat, "rows": int(x.shape[0]), "peak_rss_mb": peak}))
