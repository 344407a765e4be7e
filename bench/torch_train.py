#!/usr/bin/python3
"""PyTorch peer of `kiln train` for bench/train_bench.sh: the same models, optimizers, batch
shapes and data as configs/fmnist-mlp.yaml and configs/gpt-fortunes.yaml, timed over optimizer
steps only (data batch included, as in kiln). AdamW runs its multi-tensor (foreach) path,
PyTorch's fastest on the CPU here (about 25% less optimizer time than the default). Prints one
JSON object on stdout."""
import argparse
import json
import math
import time

import h5py
import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    """Pre-LN transformer block: causal self-attention, then a 4x GELU MLP."""

    def __init__(self, C, H, T):
        super().__init__()
        self.H = H
        self.ln1, self.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.qkv, self.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.fc, self.fcproj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)
        self.register_buffer("mask", torch.ones(T, T, dtype=torch.bool).tril())

    def attention(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.H, C // self.H).transpose(1, 2) for t in (q, k, v))
        # torch 1.13 has no F.scaled_dot_product_attention: masked softmax by hand
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // self.H))
        att = att.masked_fill(~self.mask[:T, :T], float("-inf")).softmax(dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(B, T, C))

    def forward(self, x):
        x = x + self.attention(self.ln1(x))
        return x + self.fcproj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, L, H, C, T, V):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(T, C)
        self.blocks = nn.ModuleList(Block(C, H, T) for _ in range(L))
        self.lnf = nn.LayerNorm(C)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for b in self.blocks:
            x = b(x)
        logits = F.linear(self.lnf(x), self.wte.weight)  # LM head tied to the embedding
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))


def mlp_setup(args):
    with h5py.File(args.data or "data/fashion-mnist.h5", "r") as f:
        xs = torch.from_numpy(f["train/x"][:])  # uint8 (n, 784), scaled per batch as kiln does
        ys = torch.from_numpy(f["train/y"][:]).long()
    widths = [xs.shape[1], *args.hidden, int(ys.max()) + 1]
    layers = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(nn.GELU(approximate="tanh"))
    model = nn.Sequential(*layers)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0, foreach=True)
    order, cursor = torch.randperm(len(xs)), 0

    def loss_fn():
        nonlocal order, cursor
        if cursor + args.batch > len(order):
            order, cursor = torch.randperm(len(xs)), 0
        idx = order[cursor:cursor + args.batch]
        cursor += args.batch
        return F.cross_entropy(model(xs[idx].float().div_(255.0)), ys[idx])

    return model, opt, loss_fn, 0.0, args.batch, "samples_per_s"


def gpt_setup(args):
    with h5py.File(args.data or "data/fortunes.h5", "r") as f:
        tokens = torch.from_numpy(f["train/tokens"][:]).long()
    L, H, C, T, V = args.gpt
    model = GPT(L, H, C, T, V)
    # decoupled weight decay on matrices only (not biases or norms), as kiln
    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95), foreach=True)
    offsets = torch.arange(T + 1)

    def loss_fn():
        starts = torch.randint(0, len(tokens) - T - 1, (args.batch, 1))
        window = tokens[starts + offsets]
        return model(window[:, :-1], window[:, 1:])

    return model, opt, loss_fn, 1.0, args.batch * T, "tokens_per_s"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", choices=["mlp", "gpt"], required=True)
    ap.add_argument("--threads", type=int, required=True, help="intra-op threads")
    ap.add_argument("--steps", type=int, default=100, help="timed optimizer steps (at least)")
    ap.add_argument("--seconds", type=float, default=0.0,
                    help="keep taking timed steps until this many seconds have passed")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    ap.add_argument("--batch", type=int, help="rows (mlp, default 128) or sequences (gpt, 16)")
    ap.add_argument("--hidden", type=int, nargs="+", default=[512, 512], help="mlp widths")
    ap.add_argument("--gpt", type=int, nargs=5, default=[4, 4, 256, 128, 256],
                    metavar=("L", "H", "C", "T", "V"))
    ap.add_argument("--data", help="dataset HDF5 (default data/fashion-mnist.h5 or data/fortunes.h5)")
    args = ap.parse_args()
    if args.steps < 1:
        ap.error("--steps must be at least 1")
    if args.batch is None:
        args.batch = 128 if args.model == "mlp" else 16
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(1234)

    setup = mlp_setup if args.model == "mlp" else gpt_setup
    model, opt, loss_fn, clip, units_per_step, rate_key = setup(args)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        if clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        return loss

    for _ in range(args.warmup):
        step()
    steps, t0 = 0, time.perf_counter()
    while steps < args.steps or time.perf_counter() - t0 < args.seconds:
        loss = step()
        steps += 1
    seconds = time.perf_counter() - t0
    print(json.dumps({"model": args.model, "threads": args.threads, "steps": steps,
                      "seconds": round(seconds, 3),
                      rate_key: round(units_per_step * steps / seconds, 1),
                      "final_loss": round(loss.item(), 4), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
