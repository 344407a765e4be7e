#!/usr/bin/python3
"""GPU training throughput of kiln against PyTorch on GPT-2-124M shapes, in one run, on the same
GPU: L=12, H=12, C=768, T=1024, bf16 (kiln: train.precision=bf16; PyTorch: bf16 autocast,
torch.compile where it works, fused AdamW). Vocabulary: kiln's byte-level text data (V=256) on
both sides. Prints a table with tokens/s and MFU and whether the targets are met (MFU >= 45%,
kiln >= PyTorch's tokens/s), and writes bench/results/gpu-<date>.json.

MFU = tokens/s x training FLOPs per token / the GPU's dense bf16 peak, with nanoGPT's count
(kiln's own): 6 x matmul parameters (12 L C^2 + V C, the head tied to the embedding) +
12 L C T for the attention scores and mixing.

  bench/gpu_bench.py --data data/fortunes.h5          # build/kiln must be built with CUDA
  bench/gpu_bench.py --self-check                      # the CPU-side parts only (ctest)
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time

# Dense bf16 tensor-core peaks (datasheets, no sparsity), by a substring of the device name.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}
TARGET_MFU = 0.45


def train_flops_per_token(L, C, T, V):
    """nanoGPT's training FLOPs per token: forward + backward of every matmul, and attention."""
    matmul_params = 12 * L * C * C + V * C
    return 6 * matmul_params + 12 * L * C * T


def mfu(tokens_per_s, flops_per_token, peak_tflops):
    return tokens_per_s * flops_per_token / (peak_tflops * 1e12)


def gpt_param_count(L, C, T, V):
    """Parameters of kiln's GPT (and GPT-2): embeddings, L blocks with biases, final LayerNorm."""
    per_block = 2 * C + (3 * C * C + 3 * C) + (C * C + C) + 2 * C + (4 * C * C + 4 * C) + (4 * C * C + C)
    return V * C + T * C + L * per_block + 2 * C


def peak_for(device_name, override):
    if override:
        return override
    for key, tflops in PEAK_BF16_TFLOPS.items():
        if key in device_name:
            return tflops
    raise SystemExit(f"gpu_bench: no bf16 peak known for '{device_name}': pass --peak-tflops")


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--self-check", action="store_true", help="check the formulas and exit")
    ap.add_argument("--kiln", default="build/kiln", help="kiln binary built with CUDA")
    ap.add_argument("--data", default="data/fortunes.h5", help="text dataset from `kiln data import text`")
    ap.add_argument("--batch", type=int, default=8, help="sequences per step (both sides)")
    ap.add_argument("--steps", type=int, default=50, help="optimizer steps per side")
    ap.add_argument("--warmup", type=int, default=10, help="steps not timed")
    ap.add_argument("--shape", type=int, nargs=4, default=[12, 12, 768, 1024], metavar=("L", "H", "C", "T"))
    ap.add_argument("--vocab", type=int, default=256, help="V (kiln's text data is byte-level)")
    ap.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak (default: by name)")
    ap.add_argument("--no-compile", action="store_true", help="PyTorch eager only")
    ap.add_argument("--out", help="results JSON (default bench/results/gpu-<date>.json)")
    args = ap.parse_args(argv)
    L, H, C, T = args.shape
    if min(args.shape) <= 0 or C % H:
        ap.error(f"--shape L H C T: positive, C a multiple of H (got {args.shape})")
    if args.batch <= 0 or args.steps <= 0 or args.warmup < 0 or args.warmup >= args.steps:
        ap.error("--batch and --steps must be positive and --warmup in [0, steps)")
    return args


def run_kiln(args, tmp):
    """kiln train on the GPU; the rate of the steps after warmup, from metrics.jsonl."""
    L, H, C, T = args.shape
    out = os.path.join(tmp, "kiln")
    sets = {"backend.name": "cuda", "train.precision": "bf16", "model.n_layer": L, "model.n_head": H,
            "model.n_embd": C, "model.block_size": T, "model.dropout": 0, "train.batch_size": args.batch,
            "train.steps": args.steps, "train.log_every": 1, "train.eval_every": 0,
            "train.eval_batches": 1, "train.ckpt_every": 0, "data.path": args.data,
            "train.out_dir": out}
    cmd = [args.kiln, "train", "configs/gpt-fortunes.yaml", "--resume", "never"]
    for k, v in sets.items():
        cmd += ["--set", f"{k}={v}"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    lines = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl")) if '"tokens_per_s"' in l]
    timed = [l["tokens_per_s"] for l in lines if l["step"] > args.warmup]
    # one line per step: the harmonic mean is total tokens over total time
    return len(timed) / sum(1.0 / r for r in timed), lines[-1]["loss"]


def run_torch(args):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    L, H, C, T = args.shape
    V, dev = args.vocab, "cuda"

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
            self.qkv, self.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
            self.fc, self.fcproj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

        def forward(self, x):
            B = x.shape[0]
            q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
            q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
            return x + self.fcproj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(T, C)
            self.blocks = nn.ModuleList(Block() for _ in range(L))
            self.lnf = nn.LayerNorm(C)

        def forward(self, idx, targets):
            x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
            for b in self.blocks:
                x = b(x)
            logits = F.linear(self.lnf(x), self.wte.weight)
            return F.cross_entropy(logits.view(-1, V).float(), targets.reshape(-1))

    torch.manual_seed(1234)
    model = GPT().to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    compiled, why = model, "eager (--no-compile)"
    if not args.no_compile:
        try:
            compiled, why = torch.compile(model), "torch.compile"
        except Exception as e:  # noqa: BLE001 - report why and run eager
            compiled, why = model, f"eager (torch.compile failed: {e})"
    tokens = torch.randint(0, V, (args.batch, T + 1), device=dev)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = compiled(tokens[:, :-1], tokens[:, 1:])
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    try:
        for _ in range(args.warmup):
            step()
    except Exception as e:  # noqa: BLE001 - a compile failure shows at the first call
        if compiled is model:
            raise
        compiled, why = model, f"eager (torch.compile failed: {e})"
        for _ in range(args.warmup):
            step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(args.steps - args.warmup):
        loss = step()
    torch.cuda.synchronize()
    rate = args.batch * T * (args.steps - args.warmup) / (time.perf_counter() - t0)
    return rate, loss.item(), why, torch.__version__, torch.cuda.get_device_name(0)


def self_check():
    """The CPU-side parts: the FLOP and parameter counts against known figures, MFU, parsing."""
    failures, checks = [], [0]

    def expect(what, got, want):
        checks[0] += 1
        if got != want:
            failures.append(f"{what}: got {got}, want {want}")

    # GPT-2 small (V=50257, T=1024): 124,439,808 parameters, the head tied to the embedding
    expect("GPT-2 124M parameters", gpt_param_count(12, 768, 1024, 50257), 124439808)
    expect("flops/token L=1 C=2 T=3 V=5", train_flops_per_token(1, 2, 3, 5), 6 * (48 + 10) + 72)
    expect("MFU", round(mfu(1e6, 5e8, 1000.0), 12), 0.5)
    expect("peak by name", peak_for("NVIDIA H200", None), 989.0)
    expect("peak override", peak_for("unknown", 100.0), 100.0)
    a = parse_args(["--batch", "4", "--steps", "20", "--warmup", "5"])
    expect("parsed shape", a.shape, [12, 12, 768, 1024])
    for bad in (["--shape", "12", "5", "768", "1024"], ["--steps", "5", "--warmup", "5"]):
        try:
            with open(os.devnull, "w") as null:
                stderr, sys.stderr = sys.stderr, null
                try:
                    parse_args(bad)
                finally:
                    sys.stderr = stderr
            checks[0] += 1
            failures.append(f"{bad} was accepted")
        except SystemExit as e:
            expect(f"exit code of {bad}", e.code, 2)
    for f in failures:
        print("FAIL:", f)
    print(f"{checks[0] - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


def main():
    args = parse_args(sys.argv[1:])
    if args.self_check:
        return self_check()
    L, H, C, T = args.shape
    flops = train_flops_per_token(L, C, T, args.vocab)
    with tempfile.TemporaryDirectory() as tmp:
        k_rate, k_loss = run_kiln(args, tmp)
    t_rate, t_loss, t_mode, t_version, device = run_torch(args)
    peak = peak_for(device, args.peak_tflops)
    k_mfu, t_mfu = mfu(k_rate, flops, peak), mfu(t_rate, flops, peak)
    print(f"\n{device}, bf16 peak {peak:.0f} TFLOP/s; L={L} H={H} C={C} T={T} V={args.vocab}, "
          f"batch {args.batch}, {flops / 1e9:.3f} GFLOP per token\n"
          "| side | tokens/s | MFU |\n|---|---|---|\n"
          f"| kiln (bf16) | {k_rate:.0f} | {100 * k_mfu:.1f}% |\n"
          f"| PyTorch {t_version}, {t_mode} | {t_rate:.0f} | {100 * t_mfu:.1f}% |")
    targets = [(f"kiln MFU >= {TARGET_MFU:.0%}", k_mfu >= TARGET_MFU, f"{k_mfu:.1%}"),
               ("kiln tokens/s >= PyTorch's", k_rate >= t_rate, f"{k_rate / t_rate:.2f}x")]
    for name, met, got in targets:
        print(f"  {'MET   ' if met else 'MISSED'} {name}: {got}")
    out = args.out or f"bench/results/gpu-{datetime.datetime.now():%Y%m%d-%H%M%S}.json"
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    json.dump(dict(date=datetime.datetime.now().isoformat(timespec="seconds"), device=device,
                   peak_bf16_tflops=peak, shape=dict(L=L, H=H, C=C, T=T, V=args.vocab, batch=args.batch),
                   flops_per_token=flops, kiln=dict(tokens_per_s=k_rate, mfu=k_mfu, final_loss=k_loss),
                   torch=dict(tokens_per_s=t_rate, mfu=t_mfu, final_loss=t_loss, mode=t_mode,
                              version=t_version),
                   targets=[dict(target=n, met=m, measured=v) for n, m, v in targets]),
              open(out, "w"), indent=1)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
