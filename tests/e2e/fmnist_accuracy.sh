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
# h5py reads the trained checkpoint and finds every weight with its shape and checksum
ckpt="$WORK/run/ckpt/$(head -n 1 "$WORK/run/ckpt/latest")"
if "$PY" "$(dirname "$0")/ckpt_h5py.py" "$ckpt" model/fc0.weight=512,784 model/fc0.bias=512 \
  model/fc1.weight=512,512 model/fc1.bias=512 model/fc2.weight=10,512 model/fc2.bias=10 \
  optim/m/fc0.weight=512,784 optim/v/fc2.bias=10; then
  pass "h5py reads $(basename "$ckpt") with the MLP's weights in their shapes"
else
  fail "h5py check of $ckpt"
fi
finish
