#!/usr/bin/env bash
# libkiln.a exports no unprefixed symbol: every global it defines is kiln_... (C) or a C++
# (CUDA) symbol whose name is kiln_..., so linking kiln into a program cannot clash with the
# program's own names. Compiler runtime symbols (DW.ref.__gxx_personality_v0) are not kiln's.
set -euo pipefail
lib=${KILN_LIB:?path of libkiln.a}
bad=$(nm -g --defined-only "$lib" | awk 'NF == 3 { print $3 }' | grep -v '^DW\.ref\.' |
  c++filt | sed -E 's/^(void|float|double|int|kiln_status) //' | grep -v '^kiln_' | sort -u || true)
n=$(nm -g --defined-only "$lib" | awk 'NF == 3' | wc -l)
if [ -n "$bad" ]; then
  echo "FAIL: libkiln.a exports symbols without the kiln_ prefix:"
  echo "$bad"
  exit 1
fi
echo "PASS: all $n global symbols of libkiln.a are kiln_-prefixed"
