#!/usr/bin/env bash
# Search results against references. flat search of Fashion-MNIST (the 60,000 training images
# as the base, 300 test images as queries, L2, k = 10) equals a float64 brute force in numpy:
# the same neighbours (where two candidates are not within float32 rounding of each other)
# and the same distances to 1e-4. ivf-flat and the other metrics are measured by
# `kiln index eval` against that exact search, with stated thresholds: on Fashion-MNIST
# (nlist 100) recall@10 >= 0.95 at nprobe 8; on synthetic clustered data (20,000 x 32 around
# 64 centres) recall@10 >= 0.97 at nprobe 8, for l2, ip and cosine. A filtered flat search
# equals the float64 brute force over the rows that pass the filter.
source "$(dirname "$0")/../e2e/lib.sh"
source "$(dirname "$0")/lib.sh"
data=$(fmnist_h5)
cd "$WORK"
"$PY" - "$data" "$WORK" <<'PY'
import sys, h5py, numpy as np
data, work = sys.argv[1:]
with h5py.File(data, "r") as f:
    q = f["test/x"][:300]
with h5py.File(f"{work}/queries.h5", "w") as f:
    f["q"] = q
PY
ann_synthetic 7

K=$KILN_BIN
$K index build --input "$data:/train/x" --output flat.h5 --kind flat \
  --set index.attributes="label=$data:/train/y" >build.out 2>build.err || fail "flat build: $(tail -3 build.err)"
$K index search --index flat.h5 --queries queries.h5:/q --k 10 --output flat-out.h5 >/dev/null 2>search.err ||
  fail "flat search: $(tail -3 search.err)"
$K index search --index flat.h5 --queries queries.h5:/q --k 10 --filter label=3,5 --output flat-filtered.h5 \
  >/dev/null 2>search.err || fail "filtered search: $(tail -3 search.err)"
if out=$("$PY" - "$data" <<'PY'
import sys, h5py, numpy as np
data = sys.argv[1]
with h5py.File(data, "r") as f:
    x = f["train/x"][:].astype(np.float64)
    y = f["train/y"][:]
with h5py.File("queries.h5", "r") as f:
    q = f["q"][:].astype(np.float64)

def check(out, allowed):
    with h5py.File(out, "r") as f:
        ids, dist = f["ids"][:], f["distances"][:]
    d = (q * q).sum(1)[:, None] - 2 * q @ x.T + (x * x).sum(1)[None, :]
    d[:, ~allowed] = np.inf
    order = np.argsort(d, axis=1, kind="stable")[:, :10]
    swaps = 0
    for i in range(len(q)):
        truth = d[i, order[i]]
        if not np.allclose(dist[i], truth, rtol=1e-4, atol=1e-2):
            sys.exit(f"{out}: query {i}: distances {dist[i][:3]} vs float64 {truth[:3]}")
        if not allowed[ids[i]].all():
            sys.exit(f"{out}: query {i} returned a row the filter excludes")
        for j in range(10):
            if ids[i, j] != order[i, j]:
                # only where float32 cannot tell the two apart
                if abs(d[i, ids[i, j]] - truth[j]) > 1e-5 * max(1.0, truth[j]):
                    sys.exit(f"{out}: query {i} rank {j}: id {ids[i, j]} (d {d[i, ids[i, j]]}) vs {order[i, j]} (d {truth[j]})")
                swaps += 1
    return swaps

s1 = check("flat-out.h5", np.ones(len(x), bool))
s2 = check("flat-filtered.h5", np.isin(y, [3, 5]))
print(f"300 queries x 10: equal to float64 ({s1} and {s2} swaps of equal distances)")
PY
); then pass "flat and filtered flat search: $out"; else fail "flat search: $out"; fi

$K index build --input "$data:/train/x" --output ivf.h5 --nlist 100 >/dev/null 2>build.err || fail "ivf build: $(tail -3 build.err)"
check_recall "fashion-mnist ivf-flat l2" 0.95 ivf.h5 queries.h5:/q nprobe 8
for metric in l2 ip cosine; do
  $K index build --input synthetic.h5:/x --output "syn-$metric.h5" --nlist 64 --metric "$metric" >/dev/null 2>build.err ||
    fail "synthetic $metric build: $(tail -3 build.err)"
  check_recall "synthetic ivf-flat $metric" 0.97 "syn-$metric.h5" synthetic.h5:/q nprobe 8
done
# ip and cosine against numpy: the flat index's answers
$K index build --input synthetic.h5:/x --output syn-flat-cos.h5 --kind flat --metric cosine >/dev/null 2>&1 &&
  $K index search --index syn-flat-cos.h5 --queries synthetic.h5:/q --k 5 --output syn-cos-out.h5 >/dev/null 2>&1 ||
  fail "cosine flat search"
if out=$("$PY" - <<'PY'
import h5py, numpy as np, sys
with h5py.File("synthetic.h5", "r") as f:
    x, q = f["x"][:].astype(np.float64), f["q"][:].astype(np.float64)
with h5py.File("syn-cos-out.h5", "r") as f:
    ids, sim = f["ids"][:], f["distances"][:]
xs = x / np.linalg.norm(x, axis=1, keepdims=True)
qs = q / np.linalg.norm(q, axis=1, keepdims=True)
s = qs @ xs.T
truth = np.sort(s, axis=1)[:, ::-1][:, :5]
if not np.allclose(sim, truth, atol=1e-5):
    sys.exit(f"cosine similarities differ: {sim[0]} vs {truth[0]}")
got = s[np.arange(len(q))[:, None], ids]
if not np.allclose(got, truth, atol=1e-5):
    sys.exit("returned ids do not have the top similarities")
print("500 queries: cosine similarities equal to float64")
PY
); then pass "cosine flat: $out"; else fail "cosine flat: $out"; fi
finish
