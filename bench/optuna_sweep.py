#!/usr/bin/python3
"""Optuna peer of `kiln sweep` for bench/sweep_bench.sh: the same search space over the
Fashion-MNIST MLP (learning rate, weight decay, width, batch size, warm-up), the same budget
(trials), eta, first rung and full run, written as a user of Optuna would write it: an
objective that trains a PyTorch MLP, reports the test accuracy at each rung's step and asks
the SuccessiveHalvingPruner whether to stop; `--workers` processes share one study through
Optuna's journal file storage (its recommended way to run in parallel), each with one torch
thread, as kiln's workers each train with one thread. Prints one JSON object on stdout."""
import argparse
import json
import math
import multiprocessing
import os
import time


def parse():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--trials", type=int, default=81)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--eta", type=int, default=3)
    ap.add_argument("--r-min", type=int, default=100)
    ap.add_argument("--r-max", type=int, default=2700)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sampler", choices=("tpe", "random"), default="tpe")
    ap.add_argument("--dir", required=True, help="where the study's journal goes")
    return ap.parse_args()


def load(path):
    import h5py
    import torch
    with h5py.File(path, "r") as f:
        d = {k: torch.from_numpy(f[k][()]) for k in ("train/x", "train/y", "test/x", "test/y")}
    return (d["train/x"].float().div_(255.0), d["train/y"].long(),
            d["test/x"].float().div_(255.0), d["test/y"].long())


def worker(args, study_name, storage_path):
    import optuna
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    torch.set_num_threads(1)
    xtr, ytr, xte, yte = load(args.data)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(storage_path))
    study = optuna.load_study(study_name=study_name, storage=storage)

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-4, 1e-2, log=True)
        wd = trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True)
        width = trial.suggest_categorical("width", [128, 256, 512])
        batch = trial.suggest_categorical("batch_size", [64, 128, 256])
        warmup = trial.suggest_float("warmup_frac", 0.0, 0.2)
        model = nn.Sequential(nn.Linear(784, width), nn.GELU(approximate="tanh"),
                              nn.Linear(width, width), nn.GELU(approximate="tanh"),
                              nn.Linear(width, 10))
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
        warm = int(warmup * args.r_max)

        def lr_at(step):  # linear warm-up, then cosine to 1e-5, over the full run
            if step < warm:
                return (step + 1) / warm
            t = (step - warm) / max(1, args.r_max - warm)
            return (1e-5 + 0.5 * (lr - 1e-5) * (1 + math.cos(math.pi * t))) / lr
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
        rungs, r = [], args.r_min
        while r < args.r_max:
            rungs.append(r)
            r *= args.eta
        rungs.append(args.r_max)
        gen = torch.Generator().manual_seed(trial.number)
        perm, pos, acc = torch.randperm(len(xtr), generator=gen), 0, 0.0
        for step in range(1, args.r_max + 1):
            if pos + batch > len(perm):
                perm, pos = torch.randperm(len(xtr), generator=gen), 0
            idx = perm[pos:pos + batch]
            pos += batch
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if step in rungs:
                with torch.inference_mode():
                    acc = (model(xte).argmax(1) == yte).float().mean().item()
                trial.set_user_attr(f"samples_{step}", step * batch)
                trial.report(acc, step)
                if trial.should_prune():
                    raise optuna.TrialPruned()
        return acc

    from optuna.study import MaxTrialsCallback
    study.optimize(objective, callbacks=[MaxTrialsCallback(args.trials, states=None)])


def main():
    args = parse()
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    os.makedirs(args.dir, exist_ok=True)
    storage_path = os.path.join(args.dir, f"optuna-{os.getpid()}.log")
    storage = JournalStorage(JournalFileBackend(storage_path))
    sampler = (optuna.samplers.TPESampler(seed=args.seed) if args.sampler == "tpe"
               else optuna.samplers.RandomSampler(seed=args.seed))
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=args.r_min,
                                                    reduction_factor=args.eta,
                                                    min_early_stopping_rate=0)
    study = optuna.create_study(study_name="bench", storage=storage, direction="maximize",
                                sampler=sampler, pruner=pruner)
    t0 = time.time()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=worker, args=(args, "bench", storage_path))
             for _ in range(args.workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    wall = time.time() - t0
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = max((t.value for t in complete), default=float("nan"))
    # samples: every step trained, at its batch size (a pruned trial up to its last rung)
    samples = sum(max((v for k, v in t.user_attrs.items() if k.startswith("samples_")), default=0)
                  for t in trials)
    print(json.dumps({"optuna": optuna.__version__, "torch": __import__("torch").__version__,
                      "sampler": args.sampler, "trials": len(trials), "complete": len(complete),
                      "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in trials),
                      "best_accuracy": best, "wall_s": wall, "samples": samples,
                      "workers": args.workers}))


if __name__ == "__main__":
    main()
