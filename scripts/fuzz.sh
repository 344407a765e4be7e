#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer into build-fuzz/, and runs each for FUZZ_SECONDS (default 30) from
# its seed corpus (tests/fuzz/corpus/TARGET, copied: new inputs stay in build-fuzz/corpus).
# Any crash, leak, hang (FUZZ_TIMEOUT seconds an input, default 10) or sanitizer report fails
# the run; the input that caused it is kept in build-fuzz/findings/ and printed. scripts/test.sh
# (CI) runs it; run longer by hand, e.g. FUZZ_SECONDS=600 bash scripts/fuzz.sh.
# Targets: all, or those named as arguments (fuzz_config fuzz_ckpt ...).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-30}
timeout_s=${FUZZ_TIMEOUT:-10}
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKILN_CUDA=OFF \
  -DKILN_FUZZ=ON -DKILN_NATIVE=OFF >/dev/null
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=($(ls tests/fuzz/fuzz_*.c | xargs -n1 basename | sed 's/\.c$//'))
cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]}" >/dev/null
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:fast_unwind_on_malloc=0:verify_asan_link_order=0
export LSAN_OPTIONS=suppressions=$PWD/scripts/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export OMPI_MCA_mca_base_component_disable_dlclose=1
cc -shared -fPIC -o build-fuzz/no_dlclose.so scripts/no_dlclose.c
mkdir -p build-fuzz/findings
failed=0
for t in "${targets[@]}"; do
  corpus=build-fuzz/corpus/$t
  mkdir -p "$corpus"
  [ -d "tests/fuzz/corpus/$t" ] && cp -n tests/fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
  log=build-fuzz/$t.log
  if (cd build-fuzz && LD_PRELOAD=$PWD/no_dlclose.so ./"$t" -max_total_time="$seconds" \
      -timeout="$timeout_s" -max_len=4096 -artifact_prefix=findings/"$t"- -print_final_stats=1 \
      "corpus/$t") >"$log" 2>&1; then
    echo "fuzz $t: ok, $(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$') runs in ${seconds}s, corpus $(ls "$corpus" | wc -l) inputs"
  else
    echo "fuzz $t: FINDING (log build-fuzz/$t.log):"
    grep -m3 -E "ERROR|runtime error|SUMMARY|Test unit written" "$log" || tail -20 "$log"
    failed=1
  fi
done
exit $failed
