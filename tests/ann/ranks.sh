#!/usr/bin/env bash
# The same index on any number of ranks, and a file h5py reads as docs/index.md says. An
# ivf-flat index of Fashion-MNIST built on 1, 2 and 4 ranks (k-means with k-means++ init on
# a drawn sample, and with random init on all rows): every dataset and attribute bit-identical
# (so k-means gave the same centroids); a search on 2 ranks writes the same output as on 1.
source "$(dirname "$0")/../e2e/lib.sh"
data=$(fmnist_h5)
cd "$WORK"
K=$KILN_BIN
common=(--input "$data:/train/x" --nlist 64 --set index.threads=1)
for init in "--set index.kmeans_init=kmeans++ --set index.train_rows=20000" "--set index.kmeans_init=random"; do
  label=$(echo "$init" | sed 's/.*kmeans_init=\([a-z+]*\).*/\1/')
  for r in 1 2 4; do
    # shellcheck disable=SC2086
    mpiexec -n "$r" "$K" index build "${common[@]}" $init --output "idx-$label-$r.h5" >/dev/null 2>"build-$r.err" ||
      fail "$label on $r ranks: $(tail -3 "build-$r.err")"
  done
  if out=$("$PY" - "idx-$label-1.h5" "idx-$label-2.h5" "idx-$label-4.h5" <<'PY'
import sys, h5py, numpy as np
def contents(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
        attrs = {k: v for k, v in f.attrs.items() if k != "config"}
    return out, attrs
a, aa = contents(sys.argv[1])
for other in sys.argv[2:]:
    b, ba = contents(other)
    if sorted(a) != sorted(b):
        sys.exit(f"{other}: datasets {sorted(b)} vs {sorted(a)}")
    for k in a:
        if a[k].shape != b[k].shape or a[k].tobytes() != b[k].tobytes():
            sys.exit(f"{other}: dataset {k} differs")
    for k in aa:
        if str(aa[k]) != str(ba[k]):
            sys.exit(f"{other}: attribute {k}: {ba[k]} vs {aa[k]}")
print(f"{len(a)} datasets identical, centroids {a['ivf/centroids'].shape}")
PY
  ); then pass "$label init: 1, 2 and 4 ranks build the same index: $out"; else fail "$label init: $out"; fi
done

# the layout, as h5py sees it
if out=$("$PY" - idx-random-1.h5 <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    a = f.attrs
    n, d, nlist = int(a["rows"]), int(a["dim"]), int(a["nlist"])
    assert a["kind"] == "ivf-flat" and a["metric"] == "l2" and int(a["format"]) == 1, dict(a)
    assert f["vectors"].shape == (n, d) and f["vectors"].dtype == np.float32
    assert f["ids"].shape == (n,) and f["ids"].dtype == np.int64
    assert f["ivf/centroids"].shape == (nlist, d)
    off = f["ivf/offsets"][:]
    assert off.shape == (nlist + 1,) and off[0] == 0 and off[-1] == n and (np.diff(off) >= 0).all()
    assert sorted(f["ids"][:]) == list(range(n)), "ids are not a permutation of the rows"
    import zlib
    for name in ("vectors", "ids", "ivf/centroids", "ivf/offsets"):
        assert zlib.crc32(f[name][()].tobytes()) == int(f[name].attrs["crc32"]), name
    # every row sits in the list of its nearest centroid
    x, c = f["vectors"][:].astype(np.float64), f["ivf/centroids"][:].astype(np.float64)
    lists = np.repeat(np.arange(nlist), np.diff(off))
    near = np.argmin((c * c).sum(1)[None, :] - 2 * x[:2000] @ c.T, axis=1)
    assert (near == lists[:2000]).mean() > 0.999, (near == lists[:2000]).mean()
print(f"rows {n}, dim {d}, {nlist} lists of {np.diff(off).min()}..{np.diff(off).max()} rows, crc32s match")
PY
); then pass "h5py reads the index as documented: $out"; else fail "layout: $out"; fi

# a search on 2 ranks = on 1
"$PY" -c "
import h5py
with h5py.File('$data','r') as f, h5py.File('q.h5','w') as g: g['q'] = f['test/x'][:3000]"
$K index search --index idx-random-1.h5 --queries q.h5:/q --k 10 --nprobe 4 --set search.chunk_rows=500 \
  --output s1.h5 >/dev/null 2>s1.err || fail "search on 1 rank: $(tail -3 s1.err)"
mpiexec -n 2 "$K" index search --index idx-random-1.h5 --queries q.h5:/q --k 10 --nprobe 4 --set search.chunk_rows=500 \
  --output s2.h5 >/dev/null 2>s2.err || fail "search on 2 ranks: $(tail -3 s2.err)"
if out=$("$PY" - <<'PY'
import h5py, sys
with h5py.File("s1.h5", "r") as a, h5py.File("s2.h5", "r") as b:
    for k in ("ids", "distances"):
        if a[k][()].tobytes() != b[k][()].tobytes():
            sys.exit(f"{k} differ")
    print(f"ids and distances identical, {a['ids'].shape}")
PY
); then pass "search on 2 ranks = 1 rank: $out"; else fail "search on 2 ranks: $out"; fi
finish
