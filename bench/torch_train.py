#!/usr/bin/python3
"""PyTorch peer of `kiln train` for bench/train_bench.sh: the same models, optimizers, batch
shapes and data as configs/fmnist-mlp.yaml and configs/gpt-fortunes.yaml, timed over optimizer
steps only (data batch included, as in kiln). Prints one JSON object on stdout.

--variant picks how the model is written, as a user of that PyTorch would write it: `eager`
(plain modules, the GPT's attention a masked softmax by hand, AdamW's multi-tensor foreach path,
the fastest path of torch 1.13 on the CPU), or a `+`-joined set of
  compile  torch.compile(model), default backend (inductor); the compile happens in the
           untimed warm-up and is reported as compile_s
  sdpa     the GPT's attention through F.scaled_dot_product_attention(is_causal=True)
           (nothing to change in the MLP)
  fused    AdamW(fused=True) where this PyTorch has it on the CPU (2.4 on), else foreach; the
           JSON's "adamw" says which ran
A variant this PyTorch cannot run (compile before 2.0, sdpa before 2.0, or torch.compile
failing) is not a crash: the JSON then holds "unsupported" with the reason, and the exit status
is 0. --probe prints what this PyTorch supports and exits."""
import argparse
import json
import math
import time
import traceback

import h5py
import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    """Pre-LN transformer block: causal self-attention, then a 4x GELU MLP."""

    def __init__(self, C, H, T, sdpa=False):
        super().__init__()
        self.H, self.sdpa = H, sdpa
        self.ln1, self.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.qkv, self.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.fc, self.fcproj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)
        self.register_buffer("mask", torch.ones(T, T, dtype=torch.bool).tril())

    def attention(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.H, C // self.H).transpose(1, 2) for t in (q, k, v))
        if self.sdpa:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # torch 1.13 has no F.scaled_dot_product_attention: masked softmax by hand
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // self.H))
            att = att.masked_fill(~self.mask[:T, :T], float("-inf")).softmax(dim=-1)
            y = att @ v
        return self.proj(y.transpose(1, 2).reshape(B, T, C))

    def forward(self, x):
        x = x + self.attention(self.ln1(x))
        return x + self.fcproj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, L, H, C, T, V, sdpa=False):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(T, C)
        self.blocks = nn.ModuleList(Block(C, H, T, sdpa) for _ in range(L))
        self.lnf = nn.LayerNorm(C)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for b in self.blocks:
            x = b(x)
        logits = F.linear(self.lnf(x), self.wte.weight)  # LM head tied to the embedding
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1))


FEATURES = ("compile", "sdpa", "fused")


def fused_adamw_cpu():
    """None if AdamW(fused=True) steps on the CPU in this PyTorch, else why not."""
    p = nn.Parameter(torch.zeros(2))
    p.grad = torch.ones(2)
    try:
        torch.optim.AdamW([p], lr=1e-3, fused=True).step()
    except TypeError:
        return "AdamW has no fused=True (it came in 2.0, for the CPU in 2.4)"
    except (RuntimeError, ValueError) as e:  # 2.0 to 2.3: CUDA only
        return f"no fused AdamW on the CPU (it came in 2.4): {str(e).splitlines()[0]}"
    return None


def probe():
    """{feature: None if this PyTorch has it, else why not}."""
    return {"compile": None if hasattr(torch, "compile") else "no torch.compile (it came in 2.0)",
            "sdpa": None if hasattr(F, "scaled_dot_product_attention")
            else "no F.scaled_dot_product_attention (it came in 2.0)",
            "fused": fused_adamw_cpu()}


def adamw(params, args, **kw):
    """AdamW as the variant asks: fused where this PyTorch has it on the CPU, else foreach."""
    if args.fused and args.fused_ok:
        return torch.optim.AdamW(params, fused=True, **kw)
    return torch.optim.AdamW(params, foreach=True, **kw)


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
    fwd = torch.compile(model) if args.compile else model
    opt = adamw(model.parameters(), args, lr=1e-3, weight_decay=0.0)
    order, cursor = torch.randperm(len(xs)), 0

    def loss_fn():
        nonlocal order, cursor
        if cursor + args.batch > len(order):
            order, cursor = torch.randperm(len(xs)), 0
        idx = order[cursor:cursor + args.batch]
        cursor += args.batch
        return F.cross_entropy(fwd(xs[idx].float().div_(255.0)), ys[idx])

    return model, opt, loss_fn, 0.0, args.batch, "samples_per_s"


def gpt_setup(args):
    with h5py.File(args.data or "data/fortunes.h5", "r") as f:
        tokens = torch.from_numpy(f["train/tokens"][:]).long()
    L, H, C, T, V = args.gpt
    model = GPT(L, H, C, T, V, sdpa=args.sdpa)
    fwd = torch.compile(model) if args.compile else model
    # decoupled weight decay on matrices only (not biases or norms), as kiln
    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = adamw([{"params": decay, "weight_decay": 0.1},
                 {"params": no_decay, "weight_decay": 0.0}], args, lr=1e-3, betas=(0.9, 0.95))
    offsets = torch.arange(T + 1)

    def loss_fn():
        starts = torch.randint(0, len(tokens) - T - 1, (args.batch, 1))
        window = tokens[starts + offsets]
        return fwd(window[:, :-1], window[:, 1:])

    return model, opt, loss_fn, 1.0, args.batch * T, "tokens_per_s"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--probe", action="store_true",
                    help="print this PyTorch's version and which of compile, sdpa, fused it has")
    ap.add_argument("--model", choices=["mlp", "gpt"])
    ap.add_argument("--variant", default="eager",
                    help="eager, or a +-joined set of compile, sdpa, fused (default eager)")
    ap.add_argument("--threads", type=int, help="intra-op threads")
    ap.add_argument("--steps", type=int, default=100, help="timed optimizer steps (at least)")
    ap.add_argument("--seconds", type=float, default=0.0,
                    help="keep taking timed steps until this many seconds have passed")
    ap.add_argument("--warmup", type=int, default=5,
                    help="untimed steps first (the compile happens in the first)")
    ap.add_argument("--batch", type=int, help="rows (mlp, default 128) or sequences (gpt, 16)")
    ap.add_argument("--hidden", type=int, nargs="+", default=[512, 512], help="mlp widths")
    ap.add_argument("--gpt", type=int, nargs=5, default=[4, 4, 256, 128, 256],
                    metavar=("L", "H", "C", "T", "V"))
    ap.add_argument("--data", help="dataset HDF5 (default data/fashion-mnist.h5 or data/fortunes.h5)")
    args = ap.parse_args()
    if args.probe:
        print(json.dumps({"torch": torch.__version__, "missing": probe()}))
        return
    if args.model is None or args.threads is None:
        ap.error("--model and --threads are required")
    if args.steps < 1 or args.warmup < 1:
        ap.error("--steps and --warmup must be at least 1")
    features = [] if args.variant == "eager" else args.variant.split("+")
    if not all(f in FEATURES for f in features) or len(set(features)) < len(features):
        ap.error(f"--variant: eager or a +-joined set of {', '.join(FEATURES)}")
    for f in FEATURES:
        setattr(args, f, f in features)
    if args.batch is None:
        args.batch = 128 if args.model == "mlp" else 16
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(1234)

    report = {"model": args.model, "variant": args.variant, "threads": args.threads,
              "torch": torch.__version__}
    missing = probe()
    args.fused_ok = args.fused and missing["fused"] is None
    unsupported = [missing[f] for f in ("compile", "sdpa") if getattr(args, f) and missing[f]]
    if unsupported:
        print(json.dumps(dict(report, unsupported="; ".join(unsupported))))
        return
    report["adamw"] = "fused" if args.fused_ok else "foreach"
    if args.fused and not args.fused_ok:
        report["adamw_fallback"] = missing["fused"]
    report["attention"] = ("sdpa" if args.sdpa else "manual softmax") if args.model == "gpt" else None

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

    # The first step compiles (torch.compile is lazy); the steps after it are the warm-up.
    t0 = time.perf_counter()
    try:
        step()
    except Exception as e:  # a failed torch.compile (no compiler, an inductor bug) is reported
        if not args.compile:
            raise
        traceback.print_exc()
        msg = str(e).strip().splitlines()
        print(json.dumps(dict(report, unsupported="torch.compile failed: " +
                              f"{type(e).__name__}: {msg[0] if msg else ''}"[:300])))
        return
    first_step_s = time.perf_counter() - t0
    for _ in range(args.warmup - 1):
        step()
    warmup_s = time.perf_counter() - t0
    steps, t0 = 0, time.perf_counter()
    while steps < args.steps or time.perf_counter() - t0 < args.seconds:
        loss = step()
        steps += 1
    seconds = time.perf_counter() - t0
    report.update(steps=steps, seconds=round(seconds, 3),
                  **{rate_key: round(units_per_step * steps / seconds, 1)},
                  final_loss=round(loss.item(), 4), warmup_s=round(warmup_s, 3),
                  first_step_s=round(first_step_s, 3))
    if args.compile:  # the compile: the first step's time beyond a compiled step's
        report["compile_s"] = round(max(0.0, first_step_s - seconds / steps), 3)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
