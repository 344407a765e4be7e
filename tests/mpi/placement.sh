#!/usr/bin/env bash
# hwloc placement: `kiln topo` plans disjoint core shares, and two ranks of a real run bind
# themselves to them (read back from the OS) with one thread per core of their share.
source "$(dirname "$0")/../e2e/lib.sh"
cores=$(hwloc-calc --number-of core machine:0 2>/dev/null || nproc)

"$KILN_BIN" topo --ranks-per-node 2 > "$WORK/topo.txt"
rows=$(grep -cE '^  [01] ' "$WORK/topo.txt")
[ "$rows" -eq 2 ] && pass "kiln topo plans 2 ranks: $(tr '\n' ' ' < "$WORK/topo.txt")" ||
  fail "kiln topo output: $(cat "$WORK/topo.txt")"

KILN_LOG=debug KILN_LOG_ALL_RANKS=1 mpiexec -n 2 "$KILN_BIN" train "$KILN_SRC/configs/fmnist-mlp.yaml" \
  --set data.path="$(fmnist_h5)" --set train.steps=2 --set train.out_dir="$WORK/run" \
  >/dev/null 2>"$WORK/run.log" || fail "2-rank run failed: $(tail -n 3 "$WORK/run.log")"
pus0=$(sed -n 's/.*r0 .*placement: .* PUs \([0-9,-]*\), \([0-9]*\) threads.*/\1/p' "$WORK/run.log")
pus1=$(sed -n 's/.*r1 .*placement: .* PUs \([0-9,-]*\), \([0-9]*\) threads.*/\1/p' "$WORK/run.log")
thr1=$(sed -n 's/.*r1 .*placement: .* PUs [0-9,-]*, \([0-9]*\) threads.*/\1/p' "$WORK/run.log")
if [ -n "$pus0" ] && [ -n "$pus1" ]; then
  overlap=$("$PY" -c '
import sys
def pus(s):
    out = set()
    for part in s.split(","):
        a, _, b = part.partition("-")
        out.update(range(int(a), int(b or a) + 1))
    return out
print(len(pus(sys.argv[1]) & pus(sys.argv[2])))' "$pus0" "$pus1")
  [ "$overlap" -eq 0 ] && pass "rank 0 bound to PUs $pus0, rank 1 to PUs $pus1: disjoint" ||
    fail "ranks share PUs: $pus0 / $pus1"
else
  fail "no bound PUs in the log: $(grep placement "$WORK/run.log")"
fi
want=$(( cores / 2 > 0 ? cores / 2 : 1 ))
[ "$thr1" = "$want" ] && pass "rank 1 runs $thr1 threads ($cores cores / 2 ranks)" ||
  fail "rank 1 runs '$thr1' threads, expected $want"
finish
