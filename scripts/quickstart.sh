#!/usr/bin/env bash
# The README's first command: install, build, import Fashion-MNIST, train the MLP, print the
# test accuracy.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh
mkdir -p data
[ -f data/fashion-mnist.h5 ] ||
  ./build/kiln data import fashion-mnist /usr/share/datasets/fashion-mnist data/fashion-mnist.h5
./build/kiln train configs/fmnist-mlp.yaml "$@"
