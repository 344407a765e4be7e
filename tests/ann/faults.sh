#!/usr/bin/env bash
# Kills and bad input. kill -9 during a build (k-means continues from its saved iteration) and
# during a search, each followed by a rerun of the same command: the same index contents and
# the same search output as uninterrupted runs.
# Bad input gets one clear error and leaves no output: a query width other than the index's, k
# larger than the rows, nprobe larger than the lists, a NaN in the input (naming its row), an
# empty input, a damaged index file, a filter on an attribute the index lacks.
source "$(dirname "$0")/../e2e/lib.sh"
source "$(dirname "$0")/lib.sh"
data=$(fmnist_h5)
cd "$WORK"
K=$KILN_BIN
"$PY" - "$data" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    q = f["test/x"][:4000]
    x = f["train/x"][:]
with h5py.File("q.h5", "w") as f:
    f["q"] = q
    f["narrow"] = q[:, :100]
nan = x[:500].astype(np.float32)
nan[321, 7] = np.nan
with h5py.File("bad.h5", "w") as f:
    f["nan"] = nan
    f["empty"] = np.zeros((0, 784), np.float32)
    f["tiny"] = x[:5].astype(np.float32)
    f["words"] = np.zeros((10, 4), np.int64)
PY
build=(index build --input "$data:/train/x" --nlist 128 --set index.threads=1)
$K "${build[@]}" --output straight.h5 >/dev/null 2>&1 || fail "uninterrupted build"
# killed once k-means has saved some iterations: the rerun continues from them
$K "${build[@]}" --output killed.h5 >/dev/null 2>&1 &
pid=$!
until [ -e killed.h5.kmeans.h5 ] || ! kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
sleep 0.2
kill -9 "$pid" 2>/dev/null && pass "build killed with SIGKILL during k-means" || fail "the build ended before its kill"
wait "$pid" 2>/dev/null || true
[ ! -e killed.h5 ] || fail "a killed build left killed.h5 behind"
$K "${build[@]}" --output killed.h5 >/dev/null 2>rerun.err || fail "rerun after the kill: $(tail -3 rerun.err)"
grep -q "k-means continues from iteration" rerun.err && pass "the rerun $(grep -o 'k-means continues from iteration [0-9]* of [0-9]*' rerun.err)" ||
  fail "the rerun did not continue k-means: $(grep index: rerun.err)"
[ ! -e killed.h5.kmeans.h5 ] || fail "the k-means progress file outlived the build"
out=$(same_h5 straight.h5 killed.h5 2>&1) && pass "build rerun after kill -9 = uninterrupted: $out" || fail "build: $out"

search=(index search --index straight.h5 --queries q.h5:/q --k 10 --set search.chunk_rows=200 --set index.threads=1)
$K "${search[@]}" --output s-straight.h5 >/dev/null 2>&1 || fail "uninterrupted search"
$K "${search[@]}" --output s-killed.h5 >/dev/null 2>&1 &
pid=$!
until "$PY" -c "
import h5py, sys
try:
    with h5py.File('s-killed.h5.partial', 'r', locking=False) as f: sys.exit(0 if f['progress/done'][()].sum() >= 3 else 1)
except Exception: sys.exit(1)" 2>/dev/null || ! kill -0 "$pid" 2>/dev/null; do sleep 0.02; done
kill -9 "$pid" 2>/dev/null && pass "search killed with SIGKILL after some chunks" || fail "the search ended before its kill"
wait "$pid" 2>/dev/null || true
$K "${search[@]}" --output s-killed.h5 >/dev/null 2>rerun.err || fail "search rerun: $(tail -3 rerun.err)"
out=$(same_h5 s-straight.h5 s-killed.h5 2>&1) && pass "search rerun after kill -9 = uninterrupted: $out" || fail "search: $out"

# bad input: one error naming what is wrong, no output
expect_error "query width" "q.h5" "100" "784" -- $K index search --index straight.h5 --queries q.h5:/narrow --output "$WORK/out"
expect_error "k larger than the rows" "search.k" "60000" -- $K index search --index straight.h5 --queries q.h5:/q --k 70000 --output "$WORK/out"
expect_error "nprobe larger than the lists" "search.nprobe" "128" -- $K index search --index straight.h5 --queries q.h5:/q --nprobe 500 --output "$WORK/out"
expect_error "a NaN in the input" "row 321" "bad.h5" -- $K index build --input bad.h5:/nan --kind flat --output "$WORK/out"
expect_error "an empty input" "bad.h5" "N > 0" -- $K index build --input bad.h5:/empty --kind flat --output "$WORK/out"
expect_error "nlist larger than the rows" "index.nlist" -- $K index build --input bad.h5:/tiny --nlist 10 --output "$WORK/out"
expect_error "integer rows" "bad.h5" "int64" "float32 or uint8" -- $K index build --input bad.h5:/words --output "$WORK/out"
expect_error "no such dataset" "bad.h5" "/nothing" -- $K index build --input bad.h5:/nothing --output "$WORK/out"
expect_error "not FILE:/path" "FILE.h5:/dataset" -- $K index build --input bad.h5 --output "$WORK/out"
expect_error "a filter on a missing attribute" "search.filter" "label" -- \
  $K index search --index straight.h5 --queries q.h5:/q --filter label=3 --output "$WORK/out"
cp straight.h5 damaged.h5
size=$(stat -c %s damaged.h5)
"$PY" -c "import sys; f=open('damaged.h5','r+b'); f.seek($size // 2); b=f.read(1); f.seek($size // 2); f.write(bytes([b[0] ^ 0x55]))"
expect_error "a damaged index" "damaged.h5" "checksum" -- $K index search --index damaged.h5 --queries q.h5:/q --output "$WORK/out"
truncate -s $((size / 3)) damaged.h5
expect_error "a truncated index" "damaged.h5" -- $K index search --index damaged.h5 --queries q.h5:/q --output "$WORK/out"
finish
