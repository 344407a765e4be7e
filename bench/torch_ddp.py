#!/usr/bin/python3
"""PyTorch DistributedDataParallel peer of multi-rank `kiln train` for bench/scaling_bench.sh:
the MLP 784-512-512-10 (Linear + GELU tanh, AdamW lr 1e-3) or the GPT of bench/torch_train.py,
trained by --ranks processes (torch.multiprocessing spawn, gloo backend over localhost, CPU),
each on its own share of the cores with --threads threads, the global batch split evenly.

Intra-op and OpenBLAS threads are set to --threads, inter-op threads to 1: Debian's torch calls
the pthread build of OpenBLAS, which otherwise starts one thread per core in every rank. Each
rank samples its own shard of the data (its own permutation or windows); the step time does not
depend on which rows a rank takes. Run from the repository root (it reads data/*.h5). Prints one
JSON object on stdout: the median and mean wall time of rank 0's timed steps (after --warmup
untimed ones), in ms."""
import argparse
import json
import os
import statistics
import sys
import time


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", choices=["mlp", "gpt"], required=True)
    ap.add_argument("--ranks", type=int, default=1, help="data-parallel processes")
    ap.add_argument("--threads", type=int, default=1, help="threads per rank")
    ap.add_argument("--batch", type=int, help="global batch: rows (mlp, default 128) or "
                    "sequences (gpt, default 16)")
    ap.add_argument("--steps", type=int, default=200, help="timed optimizer steps")
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    ap.add_argument("--gpt", type=int, nargs=5, default=[4, 4, 256, 128, 256],
                    metavar=("L", "H", "C", "T", "V"))
    ap.add_argument("--port", type=int, default=29517, help="localhost port of the rendezvous")
    args = ap.parse_args()
    if args.batch is None:
        args.batch = 128 if args.model == "mlp" else 16
    if args.ranks < 1 or args.batch % args.ranks:
        ap.error(f"--batch {args.batch} must be a positive multiple of --ranks {args.ranks}")
    if args.steps < 1:
        ap.error("--steps must be at least 1")
    return args


def mlp_setup(torch, args, rank):
    """The model and a function drawing this rank's next batch (its own permutation)."""
    import h5py
    nn = torch.nn
    with h5py.File("data/fashion-mnist.h5", "r") as f:
        xs = torch.from_numpy(f["train/x"][:])  # uint8 (n, 784), scaled per batch as kiln does
        ys = torch.from_numpy(f["train/y"][:]).long()
    widths = [xs.shape[1], 512, 512, int(ys.max()) + 1]
    layers = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(nn.GELU(approximate="tanh"))
    per_rank = args.batch // args.ranks
    gen = torch.Generator().manual_seed(1234 + rank)
    state = {"order": torch.randperm(len(xs), generator=gen), "cursor": 0}

    def batch():
        if state["cursor"] + per_rank > len(xs):
            state["order"], state["cursor"] = torch.randperm(len(xs), generator=gen), 0
        idx = state["order"][state["cursor"]:state["cursor"] + per_rank]
        state["cursor"] += per_rank
        return (xs[idx].float().div_(255.0),), ys[idx]

    def loss_of(out, y):
        return torch.nn.functional.cross_entropy(out, y)

    def optimizer(model):
        return torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0, foreach=True)

    return nn.Sequential(*layers), batch, loss_of, 0.0, optimizer


def gpt_setup(torch, args, rank):
    import h5py
    from torch_train import GPT  # the same model bench/torch_train.py times on one process
    with h5py.File("data/fortunes.h5", "r") as f:
        tokens = torch.from_numpy(f["train/tokens"][:]).long()
    L, H, C, T, V = args.gpt
    per_rank = args.batch // args.ranks
    gen = torch.Generator().manual_seed(1234 + rank)
    offsets = torch.arange(T + 1)

    def batch():
        starts = torch.randint(0, len(tokens) - T - 1, (per_rank, 1), generator=gen)
        window = tokens[starts + offsets]
        return (window[:, :-1], window[:, 1:]), None

    def loss_of(out, _):
        return out  # GPT.forward returns the loss

    def optimizer(model):  # as bench/torch_train.py: decay on matrices only
        decay = [p for p in model.parameters() if p.dim() == 2]
        rest = [p for p in model.parameters() if p.dim() < 2]
        return torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                                  {"params": rest, "weight_decay": 0.0}],
                                 lr=1e-3, betas=(0.9, 0.95), foreach=True)

    return GPT(L, H, C, T, V), batch, loss_of, 1.0, optimizer


def pin(rank, args):
    """Rank r takes cores [r*threads, (r+1)*threads) of those this process may use, as kiln's
    hwloc placement does; wraps around when there are more ranks than cores."""
    cores = sorted(os.sched_getaffinity(0))
    mine = {cores[(rank * args.threads + i) % len(cores)] for i in range(args.threads)}
    os.sched_setaffinity(0, mine)
    return sorted(mine)


def worker(rank, args, result_path):
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    cores = pin(rank, args)
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(1234)  # the same initial weights on every rank, as DDP expects
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{args.port}", rank=rank,
                            world_size=args.ranks)
    setup = mlp_setup if args.model == "mlp" else gpt_setup
    model, batch, loss_of, clip, optimizer = setup(torch, args, rank)
    # gloo cannot broadcast the GPT's bool causal masks; they are constants, the same everywhere
    masks = [name for name, b in model.named_buffers() if b.dtype == torch.bool]
    DDP._set_params_and_buffers_to_ignore_for_model(model, masks)
    ddp = DDP(model) if args.ranks > 1 else model
    opt = optimizer(model)

    def step():
        opt.zero_grad(set_to_none=True)
        inputs, y = batch()
        loss = loss_of(ddp(*inputs), y)
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        return loss.item()

    for _ in range(args.warmup):
        step()
    dist.barrier()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)
    dist.barrier()
    if rank == 0:
        with open(result_path, "w") as f:
            json.dump({"model": args.model, "ranks": args.ranks, "threads": args.threads,
                       "global_batch": args.batch, "steps": args.steps, "cores_rank0": cores,
                       "median_ms": round(1e3 * statistics.median(times), 3),
                       "mean_ms": round(1e3 * statistics.fmean(times), 3),
                       "final_loss": round(loss, 4), "torch": torch.__version__}, f)
    dist.destroy_process_group()


def main():
    args = parse_args()
    n = str(args.threads)
    # before torch starts in the spawned ranks: OpenBLAS and OpenMP read these once, at load
    os.environ.update(OMP_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n, MKL_NUM_THREADS=n)
    import tempfile
    import torch.multiprocessing as mp
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as tmp:
        result = os.path.join(tmp, "result.json")
        mp.spawn(worker, args=(args, result), nprocs=args.ranks, join=True)
        with open(result) as f:
            print(f.read())


if __name__ == "__main__":
    main()
