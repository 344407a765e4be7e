# Shared helpers for end-to-end tests: a fresh work dir, cached dataset imports, assertions.
# Sourced by each test script; KILN_BIN, KILN_SRC, KILN_PYTHON, KILN_TEST_TMP come from ctest.
set -euo pipefail
: "${KILN_BIN:?run through ctest}" "${KILN_SRC:?}" "${KILN_TEST_TMP:?}"
PY=${KILN_PYTHON:-/usr/bin/python3}
# mpiexec as root (CI runs as root) and with more ranks than the machine's cores
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
mkdir -p "$KILN_TEST_TMP"
WORK=$(mktemp -d "$KILN_TEST_TMP/$(basename "$0" .sh).XXXXXX")
trap 'rm -rf "$WORK"' EXIT
FAILED=0
PASSED=0

fail() { echo "FAIL: $*" >&2; FAILED=$((FAILED + 1)); }
pass() { echo "ok: $*"; PASSED=$((PASSED + 1)); }
finish() {
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ] && [ "$PASSED" -gt 0 ]
}

# Datasets are imported once per build tree and shared by the tests (import is tested itself).
fmnist_h5() {
  local out="$KILN_TEST_TMP/fashion-mnist.h5"
  [ -f "$out" ] || "$KILN_BIN" data import fashion-mnist /usr/share/datasets/fashion-mnist "$out" >/dev/null
  echo "$out"
}
fortunes_h5() {
  local out="$KILN_TEST_TMP/fortunes.h5"
  if [ ! -f "$out" ]; then
    # the package's plain-text files in name order (not the .dat indexes or .u8 links)
    local files
    files=$(ls -d /usr/share/games/fortunes/* | LC_ALL=C sort | grep -v -E '\.(dat|u8)$')
    # shellcheck disable=SC2086
    "$KILN_BIN" data import text $files "$out" >/dev/null
  fi
  echo "$out"
}

# json_get FILE KEY: a top-level number from a one-object JSON file.
json_get() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

# expect_error NAME NEEDLE... -- CMD...: CMD (stdin from /dev/null) must exit non-zero, print
# every NEEDLE on stderr, and leave $WORK/out absent.
expect_error() {
  local name=$1
  shift
  local needles=()
  while [ "$1" != "--" ]; do needles+=("$1"); shift; done
  shift
  rm -rf "$WORK/out"
  local rc=0
  "$@" >"$WORK/stdout" 2>"$WORK/stderr" </dev/null || rc=$?
  if [ "$rc" -eq 0 ]; then fail "$name: exit code 0"; return; fi
  for n in "${needles[@]}"; do
    grep -qF -- "$n" "$WORK/stderr" || { fail "$name: stderr lacks '$n': $(cat "$WORK/stderr")"; return; }
  done
  if [ -e "$WORK/out" ]; then fail "$name: left output in $WORK/out"; return; fi
  pass "$name (exit $rc): $(grep -m1 error "$WORK/stderr")"
}
