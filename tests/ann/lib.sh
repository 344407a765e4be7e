# Helpers of the ann tests (sourced after tests/e2e/lib.sh, in $WORK).

# ann_synthetic SEED: synthetic.h5 in the current directory: x float32 [20000, 32] around 64
# centres (scaled 4, unit noise), q [500, 32] from the same centres, group int32 [20000] (row % 5)
ann_synthetic() {
  "$PY" - "$1" <<'PY'
import sys, h5py, numpy as np
rng = np.random.default_rng(int(sys.argv[1]))
centres = rng.normal(size=(64, 32)).astype(np.float32) * 4
x = (centres[rng.integers(0, 64, 20000)] + rng.normal(size=(20000, 32))).astype(np.float32)
qs = (centres[rng.integers(0, 64, 500)] + rng.normal(size=(500, 32))).astype(np.float32)
with h5py.File("synthetic.h5", "w") as f:
    f["x"], f["q"] = x, qs
    f["group"] = (np.arange(20000) % 5).astype(np.int32)
PY
}

# check_recall NAME MIN INDEX QUERIES KNOB VALUE: `kiln index eval` at one setting (KNOB nprobe
# or ef); passes when its recall@10 is at least MIN
check_recall() {
  local name=$1 min=$2 index=$3 queries=$4 knob=$5 value=$6 r
  if $KILN_BIN index eval --index "$index" --queries "$queries" --k 10 --output "$name.json" \
    --set "eval.${knob}s=$value" --set eval.rounds=1 >"$name.out" 2>"$name.err"; then
    r=$("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(next(s["recall_at_k"] for s in d["settings"] if s[sys.argv[2]]==int(sys.argv[3])))' \
      "$name.json" "$knob" "$value")
    "$PY" -c "import sys; sys.exit(not $r >= $min)" && pass "$name: recall@10 $r >= $min at $knob $value" ||
      fail "$name: recall@10 $r < $min at $knob $value"
  else
    fail "$name: eval failed: $(tail -3 "$name.err")"
  fi
}

# same_h5 A B: every dataset of A and B byte-identical (prints how many; fails naming those that differ)
same_h5() {
  "$PY" - "$1" "$2" <<'PY'
import sys, h5py
def contents(p):
    out = {}
    with h5py.File(p, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()].tobytes()) if isinstance(o, h5py.Dataset) else None)
    return out
a, b = contents(sys.argv[1]), contents(sys.argv[2])
if a != b:
    sys.exit(f"differ in {[k for k in set(a) | set(b) if a.get(k) != b.get(k)]}")
print(f"{len(a)} datasets identical")
PY
}
