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
finish
