# Shared by the GPU script tests: the e2e helpers, a skip (exit 77, which ctest reports as
# skipped) when this build or machine has no GPU, and the number of GPUs visible.
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"

# The backend is chosen before the data is opened: no dataset is needed to learn there is no GPU.
skip_without_gpu() {
  if ! "$KILN_BIN" train "$KILN_SRC/configs/gpt-fortunes.yaml" --set backend.name=cuda \
    --set data.path="$WORK/none.h5" --set train.out_dir="$WORK/probe" >/dev/null 2>"$WORK/probe.log" &&
    grep -q "no usable GPU\|has no CUDA backend" "$WORK/probe.log"; then
    echo "SKIP: no GPU to test on: $(grep -o 'backend "cuda".*' "$WORK/probe.log" | head -n 1)"
    exit 77
  fi
}

# GPUs on this node (NCCL needs one per rank); 1 without nvidia-smi, as the probe found one.
gpu_count() {
  if command -v nvidia-smi >/dev/null; then nvidia-smi -L | grep -c '^GPU'; else echo 1; fi
}

# seed_resume FROM TO: run directory TO starts as a copy of run FROM at its step-10 checkpoint
# (its metrics whole: the resumed run drops the lines after step 10 itself).
seed_resume() {
  mkdir -p "$2/ckpt"
  cp "$1/ckpt/step-00000010.h5" "$1/ckpt/step-00000010.h5.crc32" "$2/ckpt/"
  echo step-00000010.h5 >"$2/ckpt/latest"
  cp "$1/metrics.jsonl" "$2/"
}
