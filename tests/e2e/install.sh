#!/usr/bin/env bash
# `cmake --install` puts the kiln binary, the public headers, the library, a pkg-config file
# and the Slurm job scripts under the prefix, and a program built against them with pkg-config links and runs.
source "$(dirname "$0")/lib.sh"
build_dir=$(dirname "$(dirname "$KILN_BIN")")
[ -f "$build_dir/CMakeCache.txt" ] || build_dir=$(dirname "$KILN_BIN")
cmake --install "$build_dir" --prefix "$WORK/prefix" >/dev/null
[ -x "$WORK/prefix/bin/kiln" ] && pass "binary installed" || fail "no bin/kiln"
"$WORK/prefix/bin/kiln" version | grep -q "^kiln " && pass "installed binary runs" || fail "installed kiln does not run"
[ -f "$WORK/prefix/include/kiln/backend.h" ] && pass "headers installed" || fail "no include/kiln/backend.h"
[ -x "$WORK/prefix/share/kiln/jobs/train.sbatch" ] && [ -f "$WORK/prefix/share/kiln/jobs/kiln_job.sh" ] &&
  pass "Slurm job scripts installed" || fail "no share/kiln/jobs/train.sbatch + kiln_job.sh"
pc=$(find "$WORK/prefix" -name kiln.pc | head -1)
[ -n "$pc" ] && pass "pkg-config file installed: ${pc#"$WORK"/}" || fail "no kiln.pc"
cat > "$WORK/use_kiln.c" <<'C'
#include <stdio.h>
#include <kiln/backend.h>
#include <kiln/rng.h>
int main(void)
{
    const kiln_backend *be = kiln_backend_cpu();
    float x[3] = {1, 2, 3};
    be->ops.scale(x, 2.0f, 3, NULL);
    printf("%s %g %g\n", be->name, x[2], kiln_rng_uniform(1, 2, 3));
    return kiln_backend_validate(be) == KILN_OK && x[2] == 6.0f ? 0 : 1;
}
C
export PKG_CONFIG_PATH="$(dirname "$pc")"
if cc "$WORK/use_kiln.c" -o "$WORK/use_kiln" $(pkg-config --cflags --libs kiln) 2>"$WORK/cc.log" &&
  "$WORK/use_kiln" >"$WORK/run.log"; then
  pass "a program built with pkg-config kiln runs: $(cat "$WORK/run.log")"
else
  fail "building against the installed kiln failed: $(cat "$WORK/cc.log" "$WORK/run.log" 2>/dev/null)"
fi
# the CMake package: find_package(kiln) and kiln::kiln, headers that include hdf5.h too
mkdir -p "$WORK/cmake_use"
cat > "$WORK/cmake_use/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.22)
project(use_kiln C)
find_package(kiln 0.1 REQUIRED)
add_executable(use_kiln use_kiln.c)
target_link_libraries(use_kiln PRIVATE kiln::kiln)
CM
cat > "$WORK/cmake_use/use_kiln.c" <<'C'
#include <stdio.h>
#include <kiln/chunked.h>
#include <kiln/backend.h>
int main(void)
{
    const kiln_backend *be = kiln_backend_cpu();
    float x[2] = {3, 4}, n = 0;
    be->ops.row_sq_norms(&n, x, 1, 2, NULL);
    printf("%s %g %d\n", be->name, n, (int)H5T_NATIVE_INT64 > 0);
    return n == 25.0f ? 0 : 1;
}
C
if cmake -S "$WORK/cmake_use" -B "$WORK/cmake_use/build" -DCMAKE_PREFIX_PATH="$WORK/prefix" \
  >"$WORK/cmake.log" 2>&1 && cmake --build "$WORK/cmake_use/build" >>"$WORK/cmake.log" 2>&1 &&
  "$WORK/cmake_use/build/use_kiln" >"$WORK/cmake_run.log"; then
  pass "a CMake project with find_package(kiln) and kiln::kiln builds and runs: $(cat "$WORK/cmake_run.log")"
else
  fail "find_package(kiln): $(tail -20 "$WORK/cmake.log")"
fi
if grep -rq -- "-march=native" "$WORK/prefix/lib"*/cmake/kiln "$pc"; then
  fail "-march=native leaks into the installed package's interface"
else
  pass "no -march=native in the installed package's interface"
fi
finish
