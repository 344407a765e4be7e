#!/usr/bin/env bash
# IVF-PQ at scale: 1,000,000 x 128 float32 built by kiln on 1 and 2 ranks against FAISS, in one run.
#   data    made here, from seed 0 (numpy's default_rng): 4,096 centres drawn N(0, 1) in 128
#           dimensions, each row a centre (chosen uniformly) plus N(0, 0.5^2) noise, then all
#           rows scaled by 10; 10,000 queries drawn the same way. A clustered set of SIFT's
#           width and size (no SIFT1M can be downloaded here); about 512 MB, kept in
#           bench/.data/scale-1m-128.h5 between runs.
#   kiln    `kiln index build --kind ivf-pq --nlist 1024 --set index.pq_m=16` (16 bytes a row,
#           k-means on 262,144 sampled rows, 10 iterations; 25 per PQ part), wall time of the
#           command: 1 rank x 1 thread, 2 ranks x 1 thread (the 2-rank speed-up on this
#           machine's 2 cores) and 1 rank x 2 threads; then `kiln index eval` at nprobe 16
#   FAISS   IVF1024,PQ16 (PyPI's newest faiss-cpu in bench/.venv), train on the same number of
#           rows, add all, on 1 and 2 threads; recall@10 at nprobe 16 against the same exact answer
# Writes bench/results/ann-scale-<date>.json.
set -euo pipefail
cd "$(dirname "$0")/.."

build=${KILN_BUILD_DIR:-build}
rows=${BENCH_ROWS:-1000000}
nq=${BENCH_QUERIES:-10000}
bench_name=ann_scale
source bench/lib.sh
tmp=$(mktemp -d "$PWD/bench/.scale.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
bench_build kiln
kiln=$(realpath "$build/kiln")
py=$PWD/bench/.venv/bin/python
"$py" -c 'import faiss, h5py, numpy' 2>/dev/null || die "$py lacks faiss, h5py or numpy: run bench/ann_bench.sh once (it installs them)"
mpi=(mpiexec --oversubscribe)
[ "$(id -u)" = 0 ] && mpi+=(--allow-run-as-root)

mkdir -p bench/.data
data=bench/.data/scale-$((rows / 1000))k-128.h5
if [ ! -f "$data" ]; then
    say "making $data ($rows x 128, $nq queries)"
    "$py" - "$data" "$rows" "$nq" <<'PY'
import sys, h5py, numpy as np
path, n, nq = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
centres = rng.normal(size=(4096, 128)).astype(np.float32)
def draw(m):
    out = np.empty((m, 128), np.float32)
    for at in range(0, m, 100000):
        k = min(100000, m - at)
        out[at:at + k] = (centres[rng.integers(0, 4096, k)] + 0.5 * rng.normal(size=(k, 128))) * 10
    return out
with h5py.File(path + ".tmp", "w") as f:
    f["x"] = draw(n)
    f["q"] = draw(nq)
import os
os.replace(path + ".tmp", path)
PY
fi
base=$PWD/$data:/x
queries=$PWD/$data:/q
cd "$tmp"
wall() { # NAME CMD...: its wall seconds into NAME.wall, output into NAME.out/.err
    local name=$1
    shift
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >"$name.out" 2>"$name.err" || { tail -5 "$name.err"; die "$name failed"; }
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc >"$name.wall"
}
pq=(index build --input "$base" --kind ivf-pq --nlist 1024 --set index.pq_m=16)
say "kiln: 1 rank x 1 thread"
wall r1t1 "$kiln" "${pq[@]}" --output r1t1.h5 --set index.threads=1
say "kiln: 2 ranks x 1 thread"
wall r2t1 "${mpi[@]}" -n 2 "$kiln" "${pq[@]}" --output r2t1.h5 --set index.threads=1
say "kiln: 1 rank x 2 threads"
wall r1t2 "$kiln" "${pq[@]}" --output r1t2.h5 --set index.threads=2
"$py" -c "
import sys, h5py, numpy as np
a, b = h5py.File('r1t1.h5', 'r'), h5py.File('r2t1.h5', 'r')
sys.exit(any(not np.array_equal(a[n][()], b[n][()]) for n in ('pq/codes', 'ids', 'ivf/centroids', 'pq/codebooks')))" ||
    die "the 1-rank and 2-rank builds differ"
say "exact answer (kiln flat, 1,000 queries) and kiln's recall at nprobe 16"
"$py" -c "import h5py, sys; h5py.File('q1k.h5', 'w')['q'] = h5py.File(sys.argv[1], 'r')['q'][:1000]" "${queries%:/q}"
wall eval "$kiln" index eval --index r1t2.h5 --queries q1k.h5:/q --k 10 --output eval.json --set eval.nprobes=16 \
    --set eval.rounds=1
say "FAISS IVF1024,PQ16 on 1 and 2 threads"
"$py" - "${queries%:/q}" eval.json >faiss.json <<'PY'
import sys, json, time, h5py, numpy as np, faiss
with h5py.File(sys.argv[1], "r") as f:
    x, q = f["x"][:], f["q"][:1000]
out = {"faiss": faiss.__version__}
truth = faiss.IndexFlatL2(128)
truth.add(x)
_, gt = truth.search(q, 10)
for t in (1, 2):
    faiss.omp_set_num_threads(t)
    idx = faiss.index_factory(128, "IVF1024,PQ16")
    t0 = time.perf_counter()
    idx.train(x[np.random.default_rng(0).choice(len(x), 262144, replace=False)])
    t1 = time.perf_counter()
    idx.add(x)
    t2 = time.perf_counter()
    idx.nprobe = 16
    _, got = idx.search(q, 10)
    recall = float(np.mean([len(set(got[i]) & set(gt[i])) / 10 for i in range(len(q))]))
    out[f"t{t}"] = {"train_s": t1 - t0, "add_s": t2 - t1, "build_s": t2 - t0, "recall": recall}
print(json.dumps(out))
PY
cd "$OLDPWD"
mkdir -p bench/results
out=bench/results/ann-scale-$(date +%Y-%m-%d).json
"$py" - "$tmp" "$out" "$rows" <<'PY'
import sys, json, datetime, platform
tmp, out, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
wall = lambda n: float(open(f"{tmp}/{n}.wall").read())
f = json.load(open(f"{tmp}/faiss.json"))
ev = json.load(open(f"{tmp}/eval.json"))["settings"][0]
res = {"date": datetime.date.today().isoformat(), "machine": platform.processor() or platform.machine(),
       "rows": rows, "dim": 128, "index": "IVF1024,PQ16", "faiss_version": f["faiss"],
       "kiln": {"r1t1_s": wall("r1t1"), "r2t1_s": wall("r2t1"), "r1t2_s": wall("r1t2"), "recall_nprobe16": ev["recall_at_k"]},
       "faiss": {"t1": f["t1"], "t2": f["t2"]}}
json.dump(res, open(out, "w"), indent=1)
k = res["kiln"]
print(f"\n{rows} x 128 as IVF1024,PQ16 (16 bytes a row), build wall seconds:")
print(f"  kiln  1 rank x 1 thread   {k['r1t1_s']:7.1f}")
print(f"  kiln  2 ranks x 1 thread  {k['r2t1_s']:7.1f}   2-rank speed-up {k['r1t1_s'] / k['r2t1_s']:.2f}x")
print(f"  kiln  1 rank x 2 threads  {k['r1t2_s']:7.1f}")
print(f"  FAISS 1 thread            {f['t1']['build_s']:7.1f}   (train {f['t1']['train_s']:.1f}, add {f['t1']['add_s']:.1f})")
print(f"  FAISS 2 threads           {f['t2']['build_s']:7.1f}   (train {f['t2']['train_s']:.1f}, add {f['t2']['add_s']:.1f})")
print(f"  kiln vs FAISS on 2 cores: {f['t2']['build_s'] / min(k['r2t1_s'], k['r1t2_s']):.2f}x faster; "
      f"recall@10 at nprobe 16: kiln {k['recall_nprobe16']:.4f}, FAISS {f['t2']['recall']:.4f}")
print(f"wrote {out}")
PY
