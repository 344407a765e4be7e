#!/usr/bin/env python3
"""An independent reference of ASHA (Li et al., "A System for Massively Parallel Hyperparameter
Tuning", MLSys 2020, Algorithm 2) under the clock `kiln sweep simulate` documents, written from
the paper, not from kiln's code. Prints the same JSON lines: every run, result and wait.

get_job: for k from the top rung down to 0, the candidates are the top floor(|rung k| / eta)
results of rung k; the first (best) of them not yet promoted goes to rung k + 1. Otherwise a
new trial starts at rung 0 while the budget lasts. Otherwise wait if any job runs, else stop.
Rungs: r_min * eta^k below r_max, then r_max. Objective (minimised): see simulate.c."""
import argparse
import json
import math

M64 = (1 << 64) - 1


def splitmix64(x):
    z = (x + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def unit(x):
    return (splitmix64(x & M64) >> 11) * (1.0 / 9007199254740992.0)


def value(i, k):
    return unit(i) * (1.0 + 1.0 / (k + 1.0)) + 0.05 * unit((1000003 * i + k + 1) & M64)


def fmt(x):
    return float.__repr__(float(x)) if x != int(x) else str(int(x))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int)
    ap.add_argument("--eta", type=int)
    ap.add_argument("--trials", type=int)
    ap.add_argument("--r-min", type=int)
    ap.add_argument("--r-max", type=int)
    a = ap.parse_args()
    rungs, r = [], a.r_min
    while r < a.r_max:
        rungs.append(r)
        r *= a.eta
    rungs.append(a.r_max)
    K = len(rungs)
    results = [dict() for _ in range(K)]   # rung -> {trial: value}
    promoted = [set() for _ in range(K)]   # trials promoted out of rung k
    running = {}                           # worker -> (trial, rung)
    n_trials = 0
    out = []

    def get_job():
        nonlocal n_trials
        for k in range(K - 2, -1, -1):
            ranked = sorted(results[k].items(), key=lambda tv: (tv[1], tv[0]))
            top = ranked[: len(ranked) // a.eta]
            promotable = [t for t, _ in top if t not in promoted[k]]
            if promotable:
                promoted[k].add(promotable[0])
                return ("run", promotable[0], k + 1)
        if n_trials < a.trials:
            n_trials += 1
            return ("run", n_trials - 1, 0)
        return ("wait",) if running else ("done",)

    free_at = [math.inf] * a.workers
    waiting = [False] * a.workers
    done = [False] * a.workers
    now = 0.0

    def decide(w):
        job = get_job()
        waiting[w] = job[0] == "wait"
        done[w] = job[0] == "done"
        free_at[w] = math.inf
        if job[0] == "run":
            _, t, k = job
            running[w] = (t, k)
            free_at[w] = now + rungs[k] - (rungs[k - 1] if k else 0)
            out.append({"t": now, "worker": w, "run": t, "rung": k})
        else:
            running.pop(w, None)
            if job[0] == "wait":
                out.append({"t": now, "worker": w, "wait": True})
                # waiting while work exists would be a scheduler bug: nothing promotable now
                for k in range(K - 1):
                    ranked = sorted(results[k].items(), key=lambda tv: (tv[1], tv[0]))
                    assert all(t in promoted[k] for t, _ in ranked[: len(ranked) // a.eta])
                assert n_trials >= a.trials

    for w in range(a.workers):
        decide(w)
    while True:
        live = [w for w in range(a.workers) if free_at[w] != math.inf]
        if not live:
            break
        w = min(live, key=lambda x: (free_at[x], x))
        now = free_at[w]
        t, k = running.pop(w)
        v = value(t, k)
        results[k][t] = v
        out.append({"t": now, "worker": w, "result": t, "rung": k, "value": v})
        decide(w)
        for x in range(a.workers):
            if waiting[x]:
                decide(x)
    for line in out:
        print(json.dumps(line))
    print(json.dumps({"summary": True, "trials": n_trials,
                      "promotions": sum(len(p) for p in promoted)}))


if __name__ == "__main__":
    main()
