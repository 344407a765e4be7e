#!/usr/bin/python3
"""PyTorch peer of `kiln infer` for bench/infer_bench.sh, end to end: read the rows of an HDF5
dataset with h5py a chunk at a time, run the MLP with the weights of a kiln checkpoint (read
with h5py), and write the class probabilities with h5py into a preallocated chunked dataset,
with the same durable progress as kiln: after each chunk the file is flushed and fsynced, then
the chunk is marked done in progress/done, flushed and fsynced again. Prints one JSON object."""
import argparse
import json
import os
import time

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


def durable_flush(f, fd):
    f.flush()
    os.fsync(fd)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="kiln checkpoint (MLP)")
    ap.add_argument("--input", required=True)
    ap.add_argument("--dataset", default="x")
    ap.add_argument("--output", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--chunk-rows", type=int, default=16384)
    ap.add_argument("--batch", type=int, default=256)
    a = ap.parse_args()
    t_start = time.perf_counter()
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    layers = load_mlp(a.model)
    classes = layers[-1][0].shape[0]
    compute_s = 0.0
    with h5py.File(a.input, "r") as fin, h5py.File(a.output + ".partial", "w") as fout:
        x = fin[a.dataset]
        rows = x.shape[0]
        n_chunks = (rows + a.chunk_rows - 1) // a.chunk_rows
        probs = fout.create_dataset("probs", (rows, classes), np.float32,
                                    chunks=(min(a.chunk_rows, rows), classes))
        done = fout.create_dataset("progress/done", (n_chunks,), np.uint8, fillvalue=0)
        fd = os.open(a.output + ".partial", os.O_RDONLY)
        with torch.inference_mode():
            for c in range(n_chunks):
                lo, hi = c * a.chunk_rows, min(rows, (c + 1) * a.chunk_rows)
                chunk = torch.from_numpy(x[lo:hi])
                t0 = time.perf_counter()
                out = torch.cat([forward(layers, chunk[r:r + a.batch].float() / 255.0)
                                 for r in range(0, hi - lo, a.batch)])
                compute_s += time.perf_counter() - t0
                probs[lo:hi] = out.numpy()
                durable_flush(fout, fd)
                done[c] = 1
                durable_flush(fout, fd)
        os.close(fd)
    os.rename(a.output + ".partial", a.output)
    seconds = time.perf_counter() - t_start
    print(json.dumps(dict(torch=torch.__version__, threads=a.threads, rows=rows, seconds=seconds,
                          rows_per_s=rows / seconds, compute_s=compute_s,
                          compute_rows_per_s=rows / compute_s)))


if __name__ == "__main__":
    main()
