#!/usr/bin/env bash
# Sharded indexes (index.shards): the input cut into 4 row ranges, each an index built by a
# group of ranks, searched together with a merged top k. On synthetic clustered data (20,000 x
# 32): a sharded flat index answers exactly as the one-file flat index (ids and distances), and
# so does a search of it on 2 and 4 ranks (whose groups hold 2 and 1 shards each); a filtered
# search too. ivf-flat and HNSW shards built on 1 and 2 ranks are the same files, and their
# recall@10 through the manifest is >= 0.97 (nprobe 16, ef 64). h5py reads the manifest as
# docs/index.md says. A build killed with SIGKILL after its first shard keeps that shard and
# ends with the files of an uninterrupted build. A shard swapped for another file is refused,
# naming it. Registered by eval, the version holds the manifest and the shards; search takes
# its URI; `registry verify` opens it as an index and, after one byte of a shard changes,
# reports it and exits 1.
source "$(dirname "$0")/../e2e/lib.sh"
source "$(dirname "$0")/lib.sh"
cd "$WORK"
K=$KILN_BIN
MPI=(mpiexec --allow-run-as-root --oversubscribe)
ann_synthetic 17
sharded=(--set index.shards=4 --set index.threads=1)

# flat: one file and 4 shards; searched on 1, 2 and 4 ranks
$K index build --input synthetic.h5:/x --output flat.h5 --kind flat >/dev/null 2>b.err || fail "flat: $(tail -3 b.err)"
$K index build --input synthetic.h5:/x --output flat4.h5 --kind flat "${sharded[@]}" \
  --set index.attributes=group=synthetic.h5:/group >/dev/null 2>b.err || fail "flat shards: $(tail -3 b.err)"
$K index build --input synthetic.h5:/x --output flat-attr.h5 --kind flat --set index.attributes=group=synthetic.h5:/group \
  >/dev/null 2>b.err || fail "flat with attributes: $(tail -3 b.err)"
search=(--queries synthetic.h5:/q --k 10 --set search.chunk_rows=128)
$K index search --index flat.h5 "${search[@]}" --output one.h5 >/dev/null 2>s.err || fail "search: $(tail -3 s.err)"
for r in 1 2 4; do
  "${MPI[@]}" -n $r "$K" index search --index flat4.h5 "${search[@]}" --output "shards-$r.h5" >/dev/null 2>s.err ||
    fail "sharded search on $r ranks: $(tail -3 s.err)"
done
$K index search --index flat-attr.h5 "${search[@]}" --filter group=1,3 --output one-f.h5 >/dev/null 2>s.err ||
  fail "filtered search: $(tail -3 s.err)"
"${MPI[@]}" -n 2 "$K" index search --index flat4.h5 "${search[@]}" --filter group=1,3 --output shards-f.h5 >/dev/null 2>s.err ||
  fail "filtered sharded search: $(tail -3 s.err)"
if out=$("$PY" - <<'PY'
import h5py, numpy as np
def load(p):
    with h5py.File(p, "r") as f:
        return f["ids"][:], f["distances"][:]
ids, d = load("one.h5")
for r in (1, 2, 4):
    i2, d2 = load(f"shards-{r}.h5")
    assert (i2 == ids).all(), f"{r} ranks: ids differ in {(i2 != ids).any(1).sum()} queries"
    assert (d2 == d).all(), f"{r} ranks: distances differ by {np.abs(d2 - d).max()}"
fi, fd = load("one-f.h5")
si, sd = load("shards-f.h5")
assert (fi == si).all() and (fd == sd).all(), "filtered results differ"
assert np.isin(si % 5, [1, 3]).all(), "a filtered row does not pass"
print(f"{len(ids)} queries x 10: ids and distances identical on 1, 2 and 4 ranks, and filtered")
PY
); then pass "sharded flat = one-file flat: $out"; else fail "sharded flat: $out"; fi

# the manifest as h5py sees it
if out=$("$PY" - <<'PY'
import zlib, h5py, numpy as np
with h5py.File("flat4.h5", "r") as f:
    assert f.attrs["shards"] == 4 and f.attrs["rows"] == 20000 and f.attrs["kind"] == "flat", dict(f.attrs)
    first, rows = f["shards/first_row"][:], f["shards/rows"][:]
    assert (first == [0, 5000, 10000, 15000]).all() and (rows == 5000).all(), (first, rows)
    crcs = f["shards/file_crc32"][:]
    for s in range(4):
        name = f"{f.attrs['shard_stem']}.shard-{s:05d}-of-00004.h5"
        data = open(name, "rb").read()
        assert zlib.crc32(data) == crcs[s] and len(data) == f["shards/file_bytes"][s], name
        with h5py.File(name, "r") as g:
            assert g.attrs["first_row"] == first[s] and g["vectors"].shape == (5000, 32), name
    with h5py.File("synthetic.h5", "r") as src:
        assert zlib.crc32(src["x"][:].tobytes()) == f.attrs["input_crc32"], "input_crc32 of the whole input"
print("shard table, file checksums, each shard's rows and the whole input's crc32 as documented")
PY
); then pass "h5py reads the manifest: $out"; else fail "manifest layout: $out"; fi

# ivf-flat and HNSW shards: the same files on 1 and 2 ranks; recall through the manifest
for kind in ivf-flat hnsw; do
  for r in 1 2; do
    "${MPI[@]}" -n $r "$K" index build --input synthetic.h5:/x --output "$kind-$r.h5" --kind $kind "${sharded[@]}" \
      >/dev/null 2>b.err || fail "$kind shards on $r ranks: $(tail -3 b.err)"
  done
  for s in 0 1 2 3; do
    f="shard-0000$s-of-00004.h5"
    same_h5 "$kind-1.$f" "$kind-2.$f" >/dev/null 2>&1 || fail "$kind shard $s differs between 1 and 2 ranks"
  done
  same_h5 "$kind-1.h5" "$kind-2.h5" >/dev/null 2>&1 && pass "$kind: 4 shards and the manifest identical on 1 and 2 ranks" ||
    fail "$kind: manifests differ"
done
check_recall "sharded ivf-flat" 0.97 ivf-flat-1.h5 synthetic.h5:/q nprobe 16
check_recall "sharded hnsw" 0.97 hnsw-1.h5 synthetic.h5:/q ef 64

# kill -9 once the first shard is written: the rerun keeps it and ends where a straight build does
$K index build --input synthetic.h5:/x --output killed.h5 --kind hnsw "${sharded[@]}" >/dev/null 2>&1 &
pid=$!
until [ -e killed.shard-00000-of-00004.h5 ] || ! kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
kill -9 "$pid" 2>/dev/null && pass "sharded build killed with SIGKILL after its first shard" ||
  fail "the sharded build ended before its kill"
wait "$pid" 2>/dev/null || true
[ ! -e killed.h5 ] || fail "a killed build left its manifest behind"
$K index build --input synthetic.h5:/x --output killed.h5 --kind hnsw "${sharded[@]}" >/dev/null 2>rerun.err ||
  fail "rerun: $(tail -3 rerun.err)"
grep -q "shard 0 of 4 (.*) was built by an earlier run; kept" rerun.err && pass "the rerun kept the finished shard" ||
  fail "the rerun did not keep shard 0: $(grep shard rerun.err | head -3)"
for s in 0 1 2 3; do
  f="shard-0000$s-of-00004.h5"
  out=$(same_h5 "hnsw-1.$f" "killed.$f" 2>&1) || fail "after kill -9, shard $s: $out"
done
pass "after kill -9 and a rerun, the 4 shards equal an uninterrupted build's"

# a shard swapped for another file is refused by name
cp flat4.shard-00002-of-00004.h5 saved.h5
cp flat4.shard-00001-of-00004.h5 flat4.shard-00002-of-00004.h5
expect_error "a swapped shard" "shard 2 of index 'flat4.h5'" "is not the file the index was made of" -- \
  "$K" index search --index flat4.h5 "${search[@]}" --output swapped.h5
[ ! -e swapped.h5 ] && [ ! -e swapped.h5.partial ] || fail "a refused search left output"
mv saved.h5 flat4.shard-00002-of-00004.h5

# registered: the manifest and its shards; search by URI; registry verify opens it
reg="$WORK/reg"
$K index eval --index hnsw-1.h5 --queries synthetic.h5:/q --k 10 --set eval.rounds=1 --set eval.efs=32,64 \
  --set registry.path="$reg" --set registry.name=shi --set registry.alias=production >/dev/null 2>e.err ||
  fail "eval and register: $(tail -3 e.err)"
$K index search --index hnsw-1.h5 "${search[@]}" --output file.h5 >/dev/null 2>s.err || fail "search: $(tail -3 s.err)"
"${MPI[@]}" -n 2 "$K" index search --index registry:shi@production --set registry.path="$reg" "${search[@]}" \
  --output uri.h5 >/dev/null 2>s.err || fail "search by URI: $(tail -3 s.err)"
out=$(same_h5 file.h5 uri.h5 2>&1) && pass "search of registry:shi@production = search of the file: $out" ||
  fail "by URI: $out"
$K registry --registry "$reg" verify shi >verify.out 2>&1 && grep -q "registry:shi/1: ok, opens as a kiln index" verify.out &&
  [ "$(grep -c ': ok .*shard-' verify.out)" -eq 4 ] && pass "registry verify: manifest and 4 shards, opened as an index" ||
  fail "registry verify: $(cat verify.out)"
victim=$(ls "$reg"/models/shi/versions/1/*shard-00003*)
chmod u+w "$victim"
printf 'X' | dd of="$victim" bs=1 seek=4000 conv=notrunc 2>/dev/null
rc=0
$K registry --registry "$reg" verify shi >verify.out 2>&1 || rc=$?
[ "$rc" -eq 1 ] && grep -q "CHANGED artifact 'hnsw-1.shard-00003-of-00004.h5'" verify.out &&
  grep -q "DOES NOT OPEN: its index file .* shard 3 of index" verify.out &&
  pass "registry verify finds a changed shard (exit 1, named twice: bytes and index)" ||
  fail "verify after a changed shard (rc $rc): $(cat verify.out)"
finish
