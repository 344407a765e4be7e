#!/usr/bin/python3
"""Check that h5py reads a kiln checkpoint: each named dataset exists with the given shape,
is float32, and its crc32 attribute equals zlib.crc32 of its bytes; the root carries the meta
attributes. Usage: ckpt_h5py.py CKPT.h5 NAME=D0,D1,... [NAME=...]
Exits 1 with one line per problem, 2 on bad usage."""
import sys
import zlib

import h5py
import numpy as np

ROOT_ATTRS = ("step", "samples_seen", "tokens_seen", "seed", "data_epoch", "data_pos",
              "best_eval_loss", "config", "kiln_version", "format_version", "created")


def parse_spec(arg):
    name, sep, dims = arg.partition("=")
    if not sep or not name or not dims:
        raise ValueError(f"bad dataset spec {arg!r}; expected NAME=D0,D1,...")
    return name, tuple(int(d) for d in dims.split(","))


def check_dataset(f, path, name, shape):
    if name not in f or not isinstance(f[name], h5py.Dataset):
        return [f"{path}: no dataset '{name}'"]
    ds = f[name]
    problems = []
    if ds.shape != shape:
        problems.append(f"{path}: dataset '{name}' has shape {list(ds.shape)}, "
                        f"expected {list(shape)}")
    if ds.dtype != np.dtype("<f4"):
        problems.append(f"{path}: dataset '{name}' is {ds.dtype}, expected float32")
    if "crc32" not in ds.attrs:
        problems.append(f"{path}: dataset '{name}' has no crc32 attribute")
    else:
        want = int(ds.attrs["crc32"])
        got = zlib.crc32(np.ascontiguousarray(ds[()], dtype="<f4").tobytes())
        if want != got:
            problems.append(f"{path}: dataset '{name}' crc32 attribute {want:08x}, "
                            f"zlib.crc32 of its data {got:08x}")
    return problems


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    path = argv[1]
    try:
        specs = [parse_spec(a) for a in argv[2:]]
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        print(f"{path}: h5py cannot open it: {e}", file=sys.stderr)
        return 1
    with f:
        problems = [f"{path}: no root attribute '{a}'" for a in ROOT_ATTRS if a not in f.attrs]
        if "format_version" in f.attrs and int(f.attrs["format_version"]) != 1:
            problems.append(f"{path}: format_version {f.attrs['format_version']}, expected 1")
        for name, shape in specs:
            problems += check_dataset(f, path, name, shape)
    for p in problems:
        print(p, file=sys.stderr)
    if not problems:
        print(f"{path}: h5py check passed ({len(specs)} datasets)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
