"""Compare two kiln runs for bit-identical results.

usage: compare_runs.py RUN_A RUN_B STEP
Checks that ckpt/step-STEP.h5 of both runs hold the same datasets with identical bytes
(parameters and optimizer state) and that both metrics.jsonl files hold the same loss curve
(step, loss, lr, grad_norm, eval_loss, eval_accuracy for every logged line; timings excluded).
Exits non-zero with the first difference found."""
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


def curve(run):
    rows = []
    with open(f"{run}/metrics.jsonl") as f:
        for line in f:
            d = json.loads(line)
            rows.append(tuple((k, d.get(k)) for k in CURVE_KEYS))
    return rows


def main():
    a, b, step = sys.argv[1], sys.argv[2], int(sys.argv[3])
    name = f"ckpt/step-{step:08d}.h5"
    da, db = datasets(f"{a}/{name}"), datasets(f"{b}/{name}")
    if sorted(da) != sorted(db):
        sys.exit(f"dataset names differ: {sorted(set(da) ^ set(db))}")
    n_model = sum(1 for k in da if k.startswith("model/"))
    if n_model == 0:
        sys.exit("no model/ datasets in the checkpoint")
    for k in sorted(da):
        if da[k].shape != db[k].shape or not np.array_equal(da[k].view(np.uint8), db[k].view(np.uint8)):
            diff = np.max(np.abs(da[k].astype(np.float64) - db[k].astype(np.float64)))
            sys.exit(f"dataset {k} differs (max abs diff {diff:.3g})")
    ca, cb = curve(a), curve(b)
    if len(ca) != len(cb):
        sys.exit(f"metrics have {len(ca)} vs {len(cb)} lines")
    for ra, rb in zip(ca, cb):
        if ra != rb:
            sys.exit(f"loss curves differ:\n  {ra}\n  {rb}")
    print(f"identical: {len(da)} datasets ({n_model} parameter tensors), {len(ca)} metric lines")


main()
