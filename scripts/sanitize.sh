#!/usr/bin/env bash
# Builds kiln with -fsanitize=address,undefined into build-asan/ (CPU backend, debug info) and
# runs the unit, MPI and sweep tests under it; any report fails the run. scripts/test.sh (CI) calls it
# after the main test suite. Extra args go to ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKILN_CUDA=OFF -DKILN_SANITIZE=ON \
  -DKILN_NATIVE=OFF -DKILN_WERROR=ON >/dev/null
cmake --build build-asan -j"$(nproc)"
cc -shared -fPIC -o build-asan/no_dlclose.so scripts/no_dlclose.c
# Leaks inside MPI, hwloc and HDF5 (their start-up and shutdown) are theirs and suppressed by
# library name (scripts/lsan.supp); full stacks, and plugins kept mapped (no_dlclose.so), so
# that every leak is attributed. Only kiln's programs carry the sanitizer (the shells and
# Python of the script tests do not), so the shim is preloaded without it.
export LD_PRELOAD="$PWD/build-asan/no_dlclose.so"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:fast_unwind_on_malloc=0:detect_stack_use_after_return=1:verify_asan_link_order=0
export LSAN_OPTIONS=suppressions=$PWD/scripts/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
cd build-asan
ctest --output-on-failure --timeout 1800 -j1 -L 'unit|mpi|sweep' "$@"
