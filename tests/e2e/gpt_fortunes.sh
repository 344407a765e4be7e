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
finish
