#!/usr/bin/env bash
# The README's second command (and CI's): install, build, run every test with ctest, then build
# with AddressSanitizer and UndefinedBehaviorSanitizer and run the unit and MPI tests under them,
# then run the fuzz targets for a bounded time.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh
(cd build && ctest --output-on-failure --timeout 1800 -j1 "$@")
bash scripts/sanitize.sh
# every reader of outside input under libFuzzer, a bounded time each (FUZZ_SECONDS)
bash scripts/fuzz.sh
