#!/usr/bin/env bash
# configs/gpt-fortunes.yaml: after 600 steps the validation loss is at most 2.70 nats/byte.
source "$(dirname "$0")/lib.sh"
data=$(fortunes_h5)
"$KILN_BIN" train "$KILN_SRC/configs/gpt-fortunes.yaml" --set data.path="$data" \
  --set train.out_dir="$WORK/run" > "$WORK/out.txt"
cat "$WORK/out.txt"
loss=$(json_get "$WORK/run/summary.json" eval_loss)
if "$PY" -c "import sys; sys.exit(0 if $loss <= 2.70 else 1)"; then
  pass "validation loss $loss <= 2.70"
else
  fail "validation loss $loss > 2.70"
fi
ckpt="$WORK/run/ckpt/$(head -n 1 "$WORK/run/ckpt/latest")"
if "$PY" "$(dirname "$0")/ckpt_h5py.py" "$ckpt" model/wte=256,256 model/wpe=128,256 \
  model/h0.attn.qkv.weight=768,256 model/h3.mlp.proj.weight=256,1024 model/lnf.weight=256; then
  pass "h5py reads $(basename "$ckpt") with the GPT's weights in their shapes"
else
  fail "h5py check of $ckpt"
fi
finish
