#!/usr/bin/env bash
# kiln infer: the same output file, byte for byte, from 1, 2 and 4 ranks (MLP and GPT);
# classifier probabilities, top-k and embeddings equal a float64 numpy forward of the
# checkpoint's weights; GPT losses and next-token probabilities agree with each other across
# inputs one token longer; the file's checksums are what h5py computes; registering the output
# as a batch-score artifact; a finished output is accepted again, another job's is refused; and
# bad input (width, dtype, sequence length, dataset, alias, model, layer) fails before any
# output exists, naming what is wrong.
source "$(dirname "$0")/lib.sh"
data=$(fmnist_h5)
export KILN_REGISTRY="$WORK/registry"
K="$KILN_BIN"

"$K" train "$KILN_SRC/configs/fmnist-mlp.yaml" --set data.path="$data" --set model.hidden=64,32 \
  --set train.steps=30 --set train.threads=1 --set train.out_dir="$WORK/mlp" \
  --set registry.name=fm --set registry.alias=prod >/dev/null 2>"$WORK/mlp.log" ||
  fail "training the MLP: $(tail -2 "$WORK/mlp.log")"
"$K" train "$KILN_SRC/configs/gpt-fortunes.yaml" --set data.path="$(fortunes_h5)" --set model.n_layer=2 \
  --set model.n_embd=32 --set model.n_head=2 --set model.block_size=32 --set train.steps=20 \
  --set train.batch_size=8 --set train.eval_batches=1 --set train.threads=1 \
  --set train.out_dir="$WORK/gpt" >/dev/null 2>"$WORK/gpt.log" || fail "training the GPT: $(tail -2 "$WORK/gpt.log")"
gpt="$WORK/gpt/ckpt/step-00000020.h5"
"$PY" - "$WORK" "$(fortunes_h5)" <<'PY'
import sys, h5py, numpy as np
w, text = sys.argv[1:]
t = h5py.File(text)["val/tokens"][:]
n, W = 1500, 16
with h5py.File(f"{w}/seq.h5", "w") as f:
    f["tokens"] = np.stack([t[i * W:(i + 1) * W] for i in range(n)]).astype(np.int32)
    f["tokens17"] = np.stack([t[i * W:(i + 1) * W + 1] for i in range(n)]).astype(np.uint8)
    f["too_long"] = np.zeros((4, 33), np.int32)
with h5py.File(f"{w}/bad.h5", "w") as f:
    f["x"] = np.zeros((20, 100), np.uint8)
    f["x64"] = np.zeros((20, 784), np.float64)
PY

mlp=(--model registry:fm@prod --input "$data" --set infer.dataset=test/x --set infer.chunk_rows=1024
  --set infer.batch=300 --set infer.embed=gelu1)
for n in 1 2 4; do
  mpiexec -n "$n" "$K" infer "${mlp[@]}" --output "$WORK/mlp$n.h5" >"$WORK/mlp$n.out" 2>"$WORK/mlp$n.log" ||
    fail "MLP inference on $n ranks: $(tail -2 "$WORK/mlp$n.log")"
done
cmp -s "$WORK/mlp1.h5" "$WORK/mlp2.h5" && cmp -s "$WORK/mlp1.h5" "$WORK/mlp4.h5" &&
  pass "MLP: 1, 2 and 4 ranks write the same file, byte for byte ($(grep -o '[0-9]* chunks on 4 ranks' "$WORK/mlp4.out"))" ||
  fail "MLP outputs differ between rank counts"
[ ! -e "$WORK/mlp1.h5.partial" ] && pass "no .partial left once complete" || fail "a .partial was left"

if out=$("$PY" - "$WORK" "$data" "$KILN_REGISTRY/models/fm/versions/1/model.h5" 2>&1 <<'PY'
import hashlib, sys, zlib, h5py, numpy as np
w, data, ckpt = sys.argv[1:]
o = h5py.File(f"{w}/mlp1.h5")
x = h5py.File(data)["test/x"][:]
y = h5py.File(data)["test/y"][:]
m = h5py.File(ckpt)["model"]
def gelu(v):
    return 0.5 * v * (1 + np.tanh(np.sqrt(2 / np.pi) * (v + 0.044715 * v ** 3)))
h = x.astype(np.float64) / 255.0
acts = []
for i in range(3):
    h = h @ m[f"fc{i}.weight"][()].astype(np.float64).T + m[f"fc{i}.bias"][()]
    if i < 2:
        h = gelu(h)
        acts.append(h)
p = np.exp(h - h.max(1, keepdims=True))
p /= p.sum(1, keepdims=True)
probs, idx, top = o["probs"][()], o["topk_index"][()], o["topk_prob"][()]
err = np.abs(probs - p).max()
assert err < 1e-5, f"probs differ from the float64 forward by {err}"
assert np.array_equal(top, np.take_along_axis(probs, idx, 1)), "topk_prob != probs at topk_index"
assert (np.diff(top, axis=1) <= 0).all() and np.array_equal(idx[:, 0], probs.argmax(1)), "top-k order"
emb_err = np.abs(o["embedding"][()] - acts[1]).max() / np.abs(acts[1]).max()
assert emb_err < 1e-5, f"gelu1 embedding differs by {emb_err} (relative)"
for name in ("probs", "topk_index", "topk_prob", "embedding"):
    assert o[name].attrs["crc32"] == zlib.crc32(o[name][()].tobytes()), f"crc32 of {name}"
assert o.attrs["input_crc32"] == zlib.crc32(x.tobytes()), "input_crc32"
assert o.attrs["complete"] == 1 and o.attrs["model_id"] == "registry:fm/1" and o.attrs["model_version"] == 1
assert o.attrs["model_sha256"] == hashlib.sha256(open(ckpt, "rb").read()).hexdigest(), "model_sha256"
assert o["progress/done"][()].all(), "every chunk marked done"
print(f"probs within {err:.1e} of float64, embedding within {emb_err:.1e}, "
      f"accuracy {(probs.argmax(1) == y).mean():.4f}")
PY
); then
  pass "MLP output = float64 numpy forward of the registered weights; crc32s, input_crc32, model sha256 as h5py computes them: $out"
else
  fail "MLP output check: $out"
fi
"$K" eval --model registry:fm@prod --input "$data" --output "$WORK/eval.json" >/dev/null 2>&1
acc=$("$PY" -c "import h5py,sys; o=h5py.File(sys.argv[1]); y=h5py.File(sys.argv[2])['test/y'][:]; print((o['probs'][:].argmax(1)==y).mean())" "$WORK/mlp1.h5" "$data")
[ "$acc" = "$(json_get "$WORK/eval.json" accuracy)" ] && pass "argmax of the probabilities gives kiln eval's accuracy ($acc)" ||
  fail "accuracy from infer $acc != kiln eval $(json_get "$WORK/eval.json" accuracy)"

# --- GPT ---
for n in 1 2; do
  mpiexec -n "$n" "$K" infer --model "$gpt" --input "$WORK/seq.h5" --output "$WORK/gpt$n.h5" \
    --set infer.chunk_rows=200 --set infer.embed=lnf >/dev/null 2>"$WORK/gpt$n.log" ||
    fail "GPT inference on $n ranks: $(tail -2 "$WORK/gpt$n.log")"
done
"$K" infer --model "$gpt" --input "$WORK/seq.h5" --output "$WORK/gpt17.h5" --set infer.dataset=tokens17 \
  --set infer.chunk_rows=200 >/dev/null 2>&1
cmp -s "$WORK/gpt1.h5" "$WORK/gpt2.h5" && pass "GPT: 1 and 2 ranks write the same file, byte for byte" ||
  fail "GPT outputs differ between rank counts"
if out=$("$PY" - "$WORK" 2>&1 <<'PY'
import sys, zlib, h5py, numpy as np
w = sys.argv[1]
a, b = h5py.File(f"{w}/gpt1.h5"), h5py.File(f"{w}/gpt17.h5")
seq = h5py.File(f"{w}/seq.h5")["tokens17"][()]
W = 16
la, lb = a["loss"][()].astype(np.float64), b["loss"][()].astype(np.float64)
# the 17-token row adds one prediction, of token 16 after the 16-token row: its -log p
added = W * lb - (W - 1) * la
idx, p = a["next_topk_index"][()], a["next_topk_prob"][()]
hit = idx == seq[:, W][:, None]
rows = hit.any(1)
err = np.abs(added[rows] - (-np.log(p[hit].astype(np.float64)))).max()
assert rows.sum() > 100 and err < 1e-4, f"{rows.sum()} rows, error {err}"
assert a["embedding"].shape == (1500, 32) and np.isfinite(a["embedding"][()]).all()
assert (np.diff(p, axis=1) <= 0).all() and (p.sum(1) <= 1 + 1e-6).all()
for name in ("loss", "next_topk_index", "next_topk_prob", "embedding"):
    assert a[name].attrs["crc32"] == zlib.crc32(a[name][()].tobytes()), name
print(f"{rows.sum()} rows checked, loss and next-token probability agree within {err:.1e} nats")
PY
); then
  pass "GPT: per-sequence loss of W+1 tokens = that of W tokens plus -log p(next) from next_topk: $out"
else
  fail "GPT output check: $out"
fi

# --- registration as a batch-score artifact, a finished output accepted again ---
cp "$WORK/mlp1.h5" "$WORK/scores.h5"
"$K" infer "${mlp[@]}" --output "$WORK/scores.h5" --set infer.register=true >"$WORK/reg.out" 2>&1
"$K" infer "${mlp[@]}" --output "$WORK/scores.h5" --set infer.register=true >>"$WORK/reg.out" 2>&1
if grep -q "is complete already" "$WORK/reg.out" && cmp -s "$WORK/mlp1.h5" "$WORK/scores.h5" &&
  "$PY" - "$KILN_REGISTRY/models/fm/versions/1/version.json" "$WORK/scores.h5" <<'PY'; then
import hashlib, json, sys
meta, out = sys.argv[1:]
arts = [a for a in json.load(open(meta))["artifacts"] if a["kind"] == "batch_scores"]
assert len(arts) == 1, arts
a = arts[0]
assert a["external"] and a["name"] == "scores.h5" and a["path"].endswith("/scores.h5")
assert a["sha256"] == hashlib.sha256(open(out, "rb").read()).hexdigest()
PY
  pass "infer.register: the output is a batch_scores artifact of registry:fm/1 (once, with its sha256); a finished output is left as it is"
else
  fail "batch-score registration: $(cat "$WORK/reg.out")"
fi
"$K" registry verify fm >/dev/null && pass "registry verify checks the batch-score artifact too" || fail "verify after registering scores"

# --- bad input fails before any output exists ---
bad() { # name needles... -- args...: like expect_error, and no OUT.partial either
  expect_error "$@"
  [ ! -e "$WORK/out.partial" ] || fail "$1: left $WORK/out.partial"
}
o=(--output "$WORK/out")
bad "input width differs from the model" "dataset '/x' in '$WORK/bad.h5' has rows of 100 values" \
  "model 'registry:fm@prod' takes 784" -- "$K" infer --model registry:fm@prod --input "$WORK/bad.h5" "${o[@]}"
bad "input of the wrong dtype" "dataset '/x64' in '$WORK/bad.h5' is float64" "uint8 or float32" -- \
  "$K" infer --model registry:fm@prod --input "$WORK/bad.h5" --set infer.dataset=x64 "${o[@]}"
bad "missing alias" "has no alias 'production' (aliases: prod -> 1)" -- \
  "$K" infer --model registry:fm@production --input "$data" "${o[@]}"
bad "unknown model" "no model 'fmnist' in registry" "(models: fm)" -- \
  "$K" infer --model registry:fmnist@prod --input "$data" "${o[@]}"
bad "missing input dataset" "no dataset '/x' in '$data'" "infer.dataset" -- \
  "$K" infer --model registry:fm@prod --input "$data" "${o[@]}"
bad "unknown layer" "infer.embed 'fc7'" "gelu0..gelu1" -- \
  "$K" infer --model registry:fm@prod --input "$data" --set infer.dataset=test/x --set infer.embed=fc7 "${o[@]}"
bad "sequences longer than block_size" "holds sequences of 33 tokens" "takes 2 to 32" -- \
  "$K" infer --model "$gpt" --input "$WORK/seq.h5" --set infer.dataset=too_long "${o[@]}"
bad "register with a path model" "infer.register" "is not a registry" -- \
  "$K" infer --model "$gpt" --input "$WORK/seq.h5" --set infer.register=true "${o[@]}"
bad "registry:../x" "registry URI 'registry:../x@prod'" -- \
  "$K" infer --model registry:../x@prod --input "$data" "${o[@]}"

# --- another job's output is never taken for this one's ---
cp "$WORK/mlp1.h5" "$WORK/taken.h5"
rc=0
"$K" infer --model "$WORK/mlp/ckpt/step-00000030.h5" --input "$data" --set infer.dataset=test/x \
  --set infer.top_k=3 --output "$WORK/taken.h5" >/dev/null 2>"$WORK/taken.log" || rc=$?
[ "$rc" -ne 0 ] && grep -q "'$WORK/taken.h5' belongs to another job: its model is 'registry:fm@prod'" "$WORK/taken.log" &&
  cmp -s "$WORK/mlp1.h5" "$WORK/taken.h5" && pass "an output made by another job is refused and left alone: $(grep -o 'its model is [^.]*' "$WORK/taken.log")" ||
  fail "another job's output: rc $rc $(cat "$WORK/taken.log")"
finish
