#!/usr/bin/env bash
# Configures and builds kiln into build/ (warnings are errors). Extra args go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DKILN_WERROR=ON "$@" >/dev/null
cmake --build build -j"$(nproc)"
