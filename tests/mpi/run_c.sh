#!/usr/bin/env bash
# Runs an MPI test program (tests/mpi/test_*.c) on 3 ranks in a fresh work directory.
source "$(dirname "$0")/../e2e/lib.sh"
prog=${1:?usage: run_c.sh PROGRAM}
if mpiexec -n 3 "$prog" "$WORK"; then pass "$(basename "$prog") on 3 ranks"; else fail "$(basename "$prog") on 3 ranks"; fi
finish
