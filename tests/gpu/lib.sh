# Shared by the GPU script tests: the e2e helpers, a skip (exit 77, which ctest reports as
# skipped) when this build or machine has no GPU, and the number of GPUs visible.
source "$(dirname "${BASH_SOURCE[0]}")/../e2e/lib.sh"

# Skip only where the node has no GPU (the NVIDIA driver shows none); with a GPU present, a
# CUDA backend that does not start is a failure of the test that needs it.
skip_without_gpu() {
  if [ -z "$(ls /proc/driver/nvidia/gpus 2>/dev/null)" ] && [ ! -e /dev/nvidia0 ]; then
    echo "SKIP: no GPU to test on (the NVIDIA driver shows none)"
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
