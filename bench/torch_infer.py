#!/usr/bin/python3
"""PyTorch peer of `kiln infer` for bench/infer_bench.sh, end to end: read the rows of an HDF5
dataset with h5py a chunk at a time, run the MLP with the weights of a kiln checkpoint (read
with h5py), and write the class probabilities with h5py into a preallocated chunked dataset,
with the same durable progress as kiln: after each chunk the file is flushed and fsynced, then
the chunk is marked done in progress/done, flushed and fsynced again. Prints one JSON object.

--variant picks how the forward passes run, as a user of that PyTorch would write them:
  eager           under torch.no_grad()
  inference_mode  under torch.inference_mode() (this script's only way before the variants)
  compile         torch.compile (default backend, inductor; static shapes) of the same forward,
                  under torch.inference_mode(); it is compiled for every batch shape the run
                  will see before the clock starts, and that time is reported as compile_s,
                  outside `seconds` (the wall time around the process holds it)
A variant this PyTorch cannot run (compile before 2.0, or torch.compile failing) prints
"unsupported" with the reason and exits 0. --probe prints what this PyTorch supports."""
import argparse
import json
import os
import time
import traceback

import h5py
import numpy as np
import torch
import torch.nn.functional as F


def load_mlp(path):
    """[(weight, bias)] of model/fc0.. in the checkpoint, as torch tensors."""
    with h5py.File(path) as f:
        m = f["model"]
        n = len([k for k in m if k.endswith(".weight")])
        return [(torch.from_numpy(m[f"fc{i}.weight"][()]), torch.from_numpy(m[f"fc{i}.bias"][()]))
                for i in range(n)]


def forward(layers, x):
    for i, (w, b) in enumerate(layers):
        x = F.linear(x, w, b)
        if i < len(layers) - 1:
            x = F.gelu(x, approximate="tanh")
    return x.softmax(dim=1)


def compile_forward(layers, batch_rows, inputs):
    """torch.compile of forward on these layers, compiled (by running it) for every batch shape
    in batch_rows; returns (compiled forward, seconds the compiles took)."""
    compiled = torch.compile(lambda x: forward(layers, x), dynamic=False)
    t0 = time.perf_counter()
    for n in sorted(batch_rows):
        compiled(torch.zeros(n, inputs))
    return compiled, time.perf_counter() - t0


def durable_flush(f, fd):
    f.flush()
    os.fsync(fd)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--probe", action="store_true",
                    help="print this PyTorch's version and whether it has torch.compile")
    ap.add_argument("--variant", choices=["eager", "inference_mode", "compile"],
                    default="inference_mode")
    ap.add_argument("--model", help="kiln checkpoint (MLP)")
    ap.add_argument("--input")
    ap.add_argument("--dataset", default="x")
    ap.add_argument("--output")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--chunk-rows", type=int, default=16384)
    ap.add_argument("--batch", type=int, default=256)
    a = ap.parse_args()
    no_compile = None if hasattr(torch, "compile") else "no torch.compile (it came in 2.0)"
    if a.probe:
        print(json.dumps({"torch": torch.__version__, "missing": {"compile": no_compile}}))
        return
    if not (a.model and a.input and a.output):
        ap.error("--model, --input and --output are required")
    report = dict(torch=torch.__version__, variant=a.variant, threads=a.threads)
    if a.variant == "compile" and no_compile:
        print(json.dumps(dict(report, unsupported=no_compile)))
        return
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    layers = load_mlp(a.model)
    classes = layers[-1][0].shape[0]
    with h5py.File(a.input, "r") as fin:
        rows, inputs = fin[a.dataset].shape
    run, compile_s = forward, 0.0
    grad_mode = torch.no_grad if a.variant == "eager" else torch.inference_mode
    if a.variant == "compile":
        # every batch shape of the run: whole batches, and the tails of chunks
        shapes = {min(a.batch, hi - lo - r) for lo in range(0, rows, a.chunk_rows)
                  for hi in [min(rows, lo + a.chunk_rows)] for r in range(0, hi - lo, a.batch)}
        try:
            with grad_mode():
                compiled, compile_s = compile_forward(layers, shapes, inputs)
        except Exception as e:  # no compiler, an inductor bug: reported, not a crash
            traceback.print_exc()
            msg = str(e).strip().splitlines()
            print(json.dumps(dict(report, unsupported="torch.compile failed: " +
                                  f"{type(e).__name__}: {msg[0] if msg else ''}"[:300])))
            return
        run = lambda _, x: compiled(x)
    t_start = time.perf_counter()
    compute_s = 0.0
    with h5py.File(a.input, "r") as fin, h5py.File(a.output + ".partial", "w") as fout:
        x = fin[a.dataset]
        n_chunks = (rows + a.chunk_rows - 1) // a.chunk_rows
        probs = fout.create_dataset("probs", (rows, classes), np.float32,
                                    chunks=(min(a.chunk_rows, rows), classes))
        done = fout.create_dataset("progress/done", (n_chunks,), np.uint8, fillvalue=0)
        fd = os.open(a.output + ".partial", os.O_RDONLY)
        with grad_mode():
            for c in range(n_chunks):
                lo, hi = c * a.chunk_rows, min(rows, (c + 1) * a.chunk_rows)
                chunk = torch.from_numpy(x[lo:hi])
                t0 = time.perf_counter()
                out = torch.cat([run(layers, chunk[r:r + a.batch].float() / 255.0)
                                 for r in range(0, hi - lo, a.batch)])
                compute_s += time.perf_counter() - t0
                probs[lo:hi] = out.numpy()
                durable_flush(fout, fd)
                done[c] = 1
                durable_flush(fout, fd)
        os.close(fd)
    os.rename(a.output + ".partial", a.output)
    seconds = time.perf_counter() - t_start
    print(json.dumps(dict(report, rows=rows, seconds=seconds, rows_per_s=rows / seconds,
                          compute_s=compute_s, compute_rows_per_s=rows / compute_s,
                          compile_s=compile_s)))


if __name__ == "__main__":
    main()
