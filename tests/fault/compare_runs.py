"""Compare two kiln runs for bit-identical results.

usage: compare_runs.py [--train-curve] RUN_A RUN_B STEP [RTOL]
Checks that ckpt/step-STEP.h5 of both runs hold the same datasets (parameters and optimizer
state) and that both metrics.jsonl files hold the same loss curve (step, loss, lr, grad_norm,
eval_loss, eval_accuracy for every logged line; timings excluded). Without RTOL everything
must be bit-identical; with RTOL (e.g. 1e-5, for runs whose float sums are ordered
differently, as across ranks) the flat parameter vector (all model/ datasets, as kiln holds
them) and the flat optimizer state may each differ by RTOL relative in norm
(||a - b|| <= RTOL ||a||), and each curve value by RTOL relative. --train-curve compares the
training lines of the curves only (a sweep's trial evaluates at each rung, a straight run does
not; evaluations do not touch the training state). Exits non-zero with the first difference found."""
import json
import sys

import h5py
import numpy as np

CURVE_KEYS = ("step", "loss", "lr", "grad_norm", "eval_loss", "eval_accuracy")


def datasets(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def curve(run, train_only):
    rows = []
    with open(f"{run}/metrics.jsonl") as f:
        for line in f:
            d = json.loads(line)
            if train_only and "loss" not in d:
                continue
            rows.append(tuple((k, d.get(k)) for k in CURVE_KEYS))
    return rows


def close(x, y, rtol):
    if rtol is None:
        return x.shape == y.shape and np.array_equal(x.view(np.uint8), y.view(np.uint8))
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    return x.shape == y.shape and np.linalg.norm(x64 - y64) <= rtol * np.linalg.norm(x64)


def same_row(ra, rb, rtol):
    if rtol is None:
        return ra == rb
    for (ka, va), (kb, vb) in zip(ra, rb):
        if ka != kb or (va is None) != (vb is None):
            return False
        if va is not None and abs(va - vb) > rtol * max(abs(va), abs(vb), 1e-12):
            return False
    return True


def main():
    args = sys.argv[1:]
    train_only = "--train-curve" in args
    args = [a for a in args if a != "--train-curve"]
    a, b, step = args[0], args[1], int(args[2])
    rtol = float(args[3]) if len(args) > 3 else None
    name = f"ckpt/step-{step:08d}.h5"
    da, db = datasets(f"{a}/{name}"), datasets(f"{b}/{name}")
    if sorted(da) != sorted(db):
        sys.exit(f"dataset names differ: {sorted(set(da) ^ set(db))}")
    n_model = sum(1 for k in da if k.startswith("model/"))
    if n_model == 0:
        sys.exit("no model/ datasets in the checkpoint")
    for k in sorted(da):
        if da[k].shape != db[k].shape:
            sys.exit(f"dataset {k} has shape {da[k].shape} vs {db[k].shape}")
        if rtol is None and not close(da[k], db[k], None):
            diff = np.max(np.abs(da[k].astype(np.float64) - db[k].astype(np.float64)))
            sys.exit(f"dataset {k} differs (max abs diff {diff:.3g})")
    if rtol is not None:
        for group in ("model/", "optim/"):
            keys = sorted(k for k in da if k.startswith(group))
            flat_a = np.concatenate([da[k].ravel() for k in keys])
            flat_b = np.concatenate([db[k].ravel() for k in keys])
            if not close(flat_a, flat_b, rtol):
                rel = np.linalg.norm(flat_a.astype(np.float64) - flat_b) / np.linalg.norm(flat_a)
                sys.exit(f"{group} state differs: relative norm difference {rel:.3g} > {rtol:g}")
    ca, cb = curve(a, train_only), curve(b, train_only)
    if len(ca) != len(cb):
        sys.exit(f"metrics have {len(ca)} vs {len(cb)} lines")
    for ra, rb in zip(ca, cb):
        if not same_row(ra, rb, rtol):
            sys.exit(f"loss curves differ:\n  {ra}\n  {rb}")
    print(f"{'identical' if rtol is None else f'equal within {rtol:g}'}: {len(da)} datasets ({n_model} parameter tensors), {len(ca)} metric lines")


main()
