"""Check a run's loss curve against a reference run's, step by step.

usage: curve_within.py REF_METRICS GOT_METRICS STEPS LIMIT
Both metrics.jsonl files must log the loss of every step 1..STEPS (GOT exactly those steps);
every |got - ref| / ref must be at most LIMIT (0.02: bf16's tolerance against fp32). Prints the
largest deviation; exits non-zero naming the first failure."""
import json
import sys


def losses(path):
    return {d["step"]: d["loss"] for d in map(json.loads, open(path)) if "loss" in d}


def main():
    ref, got = losses(sys.argv[1]), losses(sys.argv[2])
    steps, limit = int(sys.argv[3]), float(sys.argv[4])
    want = list(range(1, steps + 1))
    if sorted(got) != want or any(s not in ref for s in want):
        sys.exit(f"steps logged: {sorted(got)} against the reference's {sorted(ref)}, expected 1..{steps}")
    worst = max(abs(got[s] - ref[s]) / ref[s] for s in want)
    if worst > limit:
        sys.exit(f"loss strays {100 * worst:.2f}% from the reference (limit {100 * limit:g}%)")
    print(f"within {100 * worst:.2f}% of the reference curve over {steps} steps")


main()
