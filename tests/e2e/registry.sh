#!/usr/bin/env bash
# The registry through the binary: `kiln train` registers its final and best-by-eval models
# with metrics and lineage; `kiln eval` of a registry URI reproduces the run's own final eval
# (1 and 2 ranks); reruns register nothing twice; a warm start from a URI loads exactly the
# registered parameters and records its parent; the `kiln registry` commands (show, ls,
# history, diff, verify finding a changed byte, gc asking first) and bad references, each
# failing with a message that names what is wrong and leaving no output.
source "$(dirname "$0")/lib.sh"
data=$(fmnist_h5)
cfg="$KILN_SRC/configs/fmnist-mlp.yaml"
export KILN_REGISTRY="$WORK/registry"
K="$KILN_BIN"
small=(--set data.path="$data" --set model.hidden=64 --set train.threads=1)
ver_dir() { echo "$KILN_REGISTRY/models/$1/versions/$2"; }

# --- kiln train registers final and best (periodic evals on 2 batches find a better step) ---
"$K" train "$cfg" "${small[@]}" --set train.steps=40 --set train.eval_every=5 \
  --set train.eval_batches=2 --set optim.lr=0.05 --set train.out_dir="$WORK/run" \
  --set registry.name=tiny --set registry.alias=staging >"$WORK/train.out" 2>"$WORK/train.log" ||
  fail "training with registry.name failed: $(tail -3 "$WORK/train.log")"
grep -q "registered: registry:tiny/1 (final), registry:tiny/2 (best by eval)" "$WORK/train.out" &&
  pass "train registered final and best: $(grep registered "$WORK/train.out")" ||
  fail "train did not register final and best: $(cat "$WORK/train.out")"
if "$PY" - "$WORK" "$KILN_REGISTRY" "$data" <<'PY'; then
import hashlib, json, sys
work, reg, data = sys.argv[1:]
sha = lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest()
summary = json.load(open(f"{work}/run/summary.json"))
marker = json.load(open(f"{work}/run/registry.json"))
assert marker == {"final": "registry:tiny/1", "best": "registry:tiny/2"}, marker
final = json.load(open(f"{reg}/models/tiny/versions/1/version.json"))
best = json.load(open(f"{reg}/models/tiny/versions/2/version.json"))
best_eval = json.load(open(f"{work}/run/best/eval.json"))
problems = []
def want(cond, what):
    if not cond: problems.append(what)
want(final["role"] == ["final"] and best["role"] == ["best"], "roles")
want(abs(final["metrics"]["eval_loss"] - summary["eval_loss"]) < 1e-6, "final eval_loss = summary")
want(final["metrics"]["eval_accuracy"] == summary["eval_accuracy"], "final accuracy = summary")
want(final["metrics"]["step"] == 40 and best["metrics"]["step"] == best_eval["step"] < 40, "steps")
want(best["metrics"]["eval_loss"] < final["metrics"]["eval_loss"], "best is better")
want(final["params"]["model.hidden"] == [64] and final["params"]["optim.lr"] == 0.05, "params")
want(final["lineage"]["data"][0]["sha256"] == sha(data), "data sha256 in lineage")
want("hidden: [64]" in final["lineage"]["config"], "config text in lineage")
want(final["lineage"]["source"].endswith("/run/ckpt/step-00000040.h5"), "source checkpoint")
for meta, src in ((final, f"{work}/run/ckpt/step-00000040.h5"),
                  (best, f"{work}/run/best/step-{best_eval['step']:08d}.h5")):
    a = meta["artifacts"][0]
    stored = f"{reg}/models/tiny/versions/{meta['version']}/{a['path']}"
    want(a["kind"] == "model" and a["sha256"] == sha(stored) == sha(src), f"artifact of v{meta['version']}")
want(final["user"] and final["created"].endswith("Z") and final["kiln_version"], "who/when")
if problems:
    print("registered metadata wrong:", problems); sys.exit(1)
PY
  pass "version.json of both: roles, metrics = summary.json, params, lineage (config, data sha256, source), artifact sha256 = checkpoint"
else
  fail "registered metadata"
fi
[ "$("$K" registry show tiny@staging --path)" = "$(ver_dir tiny 1)/model.h5" ] &&
  pass "registry show --path resolves @staging" || fail "show --path: $("$K" registry show tiny@staging --path 2>&1)"
"$K" ckpt verify registry:tiny@staging | grep -q "versions/1/model.h5: ok" &&
  pass "kiln ckpt verify takes a registry URI" || fail "ckpt verify registry:tiny@staging"

# --- kiln eval of the registered model = the run's own final evaluation, on 1 and 2 ranks ---
"$K" eval --model registry:tiny@staging --input "$data" --output "$WORK/eval1.json" >/dev/null 2>&1
mpiexec -n 2 "$K" eval --model registry:tiny/1 --input "$data" --output "$WORK/eval2.json" >/dev/null 2>&1
if "$PY" - "$WORK" <<'PY'; then
import json, sys
w = sys.argv[1]
s = json.load(open(f"{w}/run/summary.json"))
e1, e2 = (json.load(open(f"{w}/eval{n}.json")) for n in (1, 2))
assert e1["resolved"] == e2["resolved"] == "registry:tiny/1" and e1["version"] == 1, (e1, e2)
assert e1["targets"] == e2["targets"] == 10000, (e1, e2)
for e in (e1, e2):
    assert abs(e["loss"] - s["eval_loss"]) < 1e-6 and abs(e["accuracy"] - s["eval_accuracy"]) < 1e-9, (e, s)
PY
  pass "kiln eval registry:tiny@staging (1 and 2 ranks) = the run's final eval: $(json_get "$WORK/eval1.json" loss)"
else
  fail "kiln eval differs from the training run's eval"
fi

# --- reruns register nothing twice, even when the run's own note of it is lost ---
"$K" train "$cfg" "${small[@]}" --set train.steps=40 --set train.eval_every=5 --set train.eval_batches=2 \
  --set optim.lr=0.05 --set train.out_dir="$WORK/run" --set registry.name=tiny >/dev/null 2>&1
rm "$WORK/run/registry.json"
"$K" train "$cfg" "${small[@]}" --set train.steps=40 --set train.eval_every=5 --set train.eval_batches=2 \
  --set optim.lr=0.05 --set train.out_dir="$WORK/run" --set registry.name=tiny >"$WORK/rerun.out" 2>&1
n=$(ls "$KILN_REGISTRY/models/tiny/versions" | wc -l)
[ "$n" -eq 2 ] && grep -q "registered: registry:tiny/1 (final), registry:tiny/2" "$WORK/rerun.out" &&
  pass "two reruns (one without registry.json) found versions 1 and 2 instead of adding more" ||
  fail "reruns left $n versions: $(cat "$WORK/rerun.out")"

# --- warm start: lr 0 for one step keeps exactly the registered parameters ---
"$K" train "$cfg" "${small[@]}" --set train.steps=1 --set optim.lr=0 --set train.out_dir="$WORK/warm" \
  --set train.init_from=registry:tiny@staging --set registry.name=tiny-warm >/dev/null 2>"$WORK/warm.log" ||
  fail "warm start failed: $(tail -3 "$WORK/warm.log")"
if "$PY" - "$WORK" "$(ver_dir tiny 1)/model.h5" "$(ver_dir tiny-warm 1)/version.json" <<'PY'; then
import json, sys, h5py, numpy as np
w, src, meta = sys.argv[1:]
with h5py.File(src) as a, h5py.File(f"{w}/warm/ckpt/step-00000001.h5") as b:
    for name in a["model"]:
        assert np.array_equal(a["model"][name][()], b["model"][name][()]), name
    assert 'init_from: "registry:tiny/1"' in b.attrs["config"], "alias not pinned in the config"
m = json.load(open(meta))
assert m["parent"] == "registry:tiny/1" and m["lineage"]["init_from"] == "registry:tiny/1", m["parent"]
PY
  pass "warm start from registry:tiny@staging: parameters bit-identical, alias pinned to tiny/1 in the config, parent recorded"
else
  fail "warm start did not load the registered parameters"
fi
grep -q "warm start: model parameters from registry:tiny/1" "$WORK/warm.log" && pass "warm start logged" ||
  fail "no warm start line: $(cat "$WORK/warm.log")"

# --- bad references and names fail before any output ---
o=(--set train.out_dir="$WORK/out")
expect_error "init_from with other shapes" "train.init_from 'registry:tiny/1'" "model/fc0.weight" \
  "expected float32 [32,784], found float32 [64,784]" -- \
  "$K" train "$cfg" "${o[@]}" --set data.path="$data" --set model.hidden=32 --set train.init_from=registry:tiny@staging
expect_error "init_from a missing alias" "has no alias 'prod' (aliases: staging -> 1)" -- \
  "$K" train "$cfg" "${o[@]}" --set data.path="$data" --set train.init_from=registry:tiny@prod
expect_error "init_from an unknown model" "no model 'nope' in registry" "models: tiny, tiny-warm" -- \
  "$K" train "$cfg" "${o[@]}" --set data.path="$data" --set train.init_from=registry:nope@prod
expect_error "init_from a missing file" "train.init_from '$WORK/none.h5'" "no such file" -- \
  "$K" train "$cfg" "${o[@]}" --set data.path="$data" --set train.init_from="$WORK/none.h5"
expect_error "registry.name with a separator" "registry.name '../up'" "not valid" -- \
  "$K" train "$cfg" "${o[@]}" --set data.path="$data" --set registry.name=../up
expect_error "eval of registry:../x" "registry URI 'registry:../x@y'" "model name '..' is not valid" -- \
  "$K" eval --model registry:../x@y --input "$data" --output "$WORK/out"
expect_error "eval of a slash path in a URI" "registry URI 'registry:tiny/1/../2'" -- \
  "$K" eval --model registry:tiny/1/../2 --input "$data" --output "$WORK/out"
expect_error "show of a missing version" "model 'tiny' in registry" "has no version 99 (versions 1 to 2" -- \
  "$K" registry show registry:tiny/99
expect_error "alias to a missing version" "has no version 7" -- "$K" registry alias tiny prod 7
expect_error "resume from a missing alias" "has no alias 'gone'" -- \
  "$K" train "$cfg" "${o[@]}" --set data.path="$data" --resume registry:tiny@gone

# --- ls, history, diff ---
"$K" registry ls | grep -qE "^tiny +2 +2  staging -> 1" && pass "registry ls lists tiny" ||
  fail "registry ls: $("$K" registry ls)"
"$K" registry history tiny | grep -q "alias     staging: 1" && pass "history records the alias move" ||
  fail "history: $("$K" registry history tiny)"
"$K" registry diff tiny/1 tiny@latest | grep -qE "^\* eval_loss" && pass "diff marks the differing eval_loss" ||
  fail "diff: $("$K" registry diff tiny/1 tiny@latest)"

# --- verify finds a changed byte ---
"$K" registry verify >/dev/null && pass "verify passes on an untouched registry" || fail "verify failed untouched"
f="$(ver_dir tiny 2)/model.h5"
"$PY" -c "import sys; f=open(sys.argv[1],'r+b'); f.seek(5000); b=f.read(1); f.seek(5000); f.write(bytes([b[0]^1]))" "$f"
rc=0
"$K" registry verify >"$WORK/verify.out" 2>"$WORK/verify.err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "registry:tiny/2: CHANGED artifact 'model.h5'" "$WORK/verify.out" &&
  grep -q "registry:tiny/1: ok" "$WORK/verify.out" && grep -q "1 problem found" "$WORK/verify.err" &&
  pass "verify finds the changed byte in tiny/2 (exit 1): $(grep CHANGED "$WORK/verify.out" | cut -c1-90)..." ||
  fail "verify (rc $rc): $(cat "$WORK/verify.out" "$WORK/verify.err")"

# --- gc asks first, keeps aliased versions ---
rc=0
"$K" registry gc tiny --keep 0 </dev/null >/dev/null 2>"$WORK/gc.err" || rc=$?
[ "$rc" -eq 2 ] && grep -q "not removing without --yes" "$WORK/gc.err" && [ -d "$(ver_dir tiny 2)" ] &&
  pass "gc without --yes and no terminal removes nothing" || fail "gc without --yes: rc $rc $(cat "$WORK/gc.err")"
"$K" registry gc tiny --keep 0 --yes | grep -q "removed 1 version" && [ ! -d "$(ver_dir tiny 2)" ] &&
  [ -d "$(ver_dir tiny 1)" ] && pass "gc --yes removed unaliased tiny/2 and kept tiny/1 (staging)" ||
  fail "gc --yes"
finish
