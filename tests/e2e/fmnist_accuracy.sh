#!/usr/bin/env bash
# configs/fmnist-mlp.yaml must reach at least 88% test accuracy on Fashion-MNIST.
source "$(dirname "$0")/lib.sh"
data=$(fmnist_h5)
"$KILN_BIN" train "$KILN_SRC/configs/fmnist-mlp.yaml" --set data.path="$data" \
  --set train.out_dir="$WORK/run" > "$WORK/out.txt"
cat "$WORK/out.txt"
acc=$(json_get "$WORK/run/summary.json" eval_accuracy)
if "$PY" -c "import sys; sys.exit(0 if $acc >= 0.88 else 1)"; then
  pass "test accuracy $acc >= 0.88"
else
  fail "test accuracy $acc < 0.88"
fi
finish
