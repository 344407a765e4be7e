"""Check the bytes each rank reports holding against the formula of its ZeRO stage.

usage: zero_memory.py LOG STAGE WORLD BUCKET_MB OVERLAP BLOCKS [PRECISION]
LOG holds every rank's "memory: rank R holds params P B, grads G B, optimizer state O B
(ZeRO-S, shard [lo, hi) of N)" line; BLOCKS is the model's block sizes in parameters,
comma-separated, in model order, a trailing '*' marking a block that is reused (the GPT's tied
embedding). With n parameters, rank r's shard [n*r/W, n*(r+1)/W) of s elements and AdamW (two
states):
  stage 0: params 4n, grads 4n, optimizer 8n
  stage 1: params 4n, grads 4n, optimizer 8s
  stage 2: params 4n, grads 4(s + A), optimizer 8s
  stage 3: params 4(s + G), grads 4(s + A), optimizer 8s
where A, the gradient staging arena, is the buckets holding a reused block plus the largest
pair of buckets consecutive in backward order (with overlap; without it the largest bucket),
and G, the parameter gather buffer, is the largest block. Buckets are runs of whole blocks
taken from the last block, each closed once it holds at least BUCKET_MB MiB. With PRECISION
bf16 (train.precision on a GPU; default fp32) gradients, the gather buffer and the buckets'
size in elements count 2 bytes an element, and the fp32 master weights (4n, or 4s at stage 3)
have a bf16 copy (2n, or 2s). Prints one line per stage and world; exits non-zero on the first
mismatch."""
import re
import sys


def buckets(blocks, limit):
    out = []  # (numel, pinned) in backward order
    for numel, reused in reversed(blocks):
        if not out or out[-1][0] >= limit:
            out.append([0, False])
        out[-1][0] += numel
        out[-1][1] |= reused
    return out


def arena(blocks, limit, overlap):
    bs = buckets(blocks, limit)
    pinned = sum(n for n, p in bs if p)
    rest = [n for n, p in bs if not p]
    if overlap:
        pairs = [a + b for a, b in zip(rest, rest[1:])] + rest
        return pinned + max(pairs, default=0)
    return pinned + max(rest, default=0)


def expected(stage, n, shard, blocks, limit, overlap, elem):
    kept = n if stage < 3 else shard
    copy = 0 if elem == 4 else elem * kept
    params = 4 * kept + copy + (elem * max(b for b, _ in blocks) if stage == 3 else 0)
    grads = elem * (n if stage < 2 else shard + arena(blocks, limit, overlap))
    optim = 8 * (n if stage == 0 else shard)
    return params, grads, optim


def main():
    log, stage, world = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    elem = 2 if sys.argv[7:] == ["bf16"] else 4
    limit = int(float(sys.argv[4]) * 1048576) // elem
    overlap = sys.argv[5] == "true"
    blocks = [(int(b.rstrip("*")), b.endswith("*")) for b in sys.argv[6].split(",")]
    n = sum(b for b, _ in blocks)
    rows = re.findall(r"memory: rank (\d+) holds params (\d+) B, grads (\d+) B, optimizer state "
                      r"(\d+) B \(ZeRO-(\d), shard \[(\d+), (\d+)\) of (\d+)\)", open(log).read())
    rows.sort(key=lambda row: int(row[0]))  # ranks log in any order
    if len(rows) != world:
        sys.exit(f"{len(rows)} memory lines for {world} ranks in {log}")
    for row in rows:
        r, p, g, o, s, lo, hi, total = map(int, row)
        want_lo, want_hi = (n * r // world, n * (r + 1) // world) if stage else (0, n)
        if (s, lo, hi, total) != (stage, want_lo, want_hi, n):
            sys.exit(f"rank {r}: ZeRO-{s} shard [{lo}, {hi}) of {total}, expected ZeRO-{stage} "
                     f"[{want_lo}, {want_hi}) of {n}")
        want = expected(stage, n, hi - lo, blocks, limit, overlap, elem)
        if (p, g, o) != want:
            sys.exit(f"rank {r}: holds params/grads/optimizer {p}/{g}/{o} B, the ZeRO-{stage} "
                     f"formula gives {want[0]}/{want[1]}/{want[2]} B")
    print(f"ZeRO-{stage} x{world}: rank 0 holds params {rows[0][1]} B, grads {rows[0][2]} B, "
          f"optimizer {rows[0][3]} B")


main()
