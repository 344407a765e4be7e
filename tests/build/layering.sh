#!/usr/bin/env bash
# The include graph against the layers table of docs/develop.md: every `#include "kiln/X.h"`
# and every `#include "../folder/..."` in src/ and include/kiln/ must name a layer at or below
# the including file's own. Also: every folder under src/ and every public header has a layer.
set -euo pipefail
src=${KILN_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
python3 - "$src" <<'PY'
import os, re, sys
src = sys.argv[1]
doc = open(os.path.join(src, "docs/develop.md")).read()
block = re.search(r"```layers\n(.*?)```", doc, re.S)
if not block:
    sys.exit("docs/develop.md has no ```layers block")
rank, owner = {}, {}
for i, line in enumerate(l for l in block.group(1).splitlines() if l.strip()):
    layer, _, headers = line.partition(":")
    rank[layer.strip()] = i
    for h in headers.split():
        owner[h] = layer.strip()
problems = []
for h in sorted(os.listdir(os.path.join(src, "include/kiln"))):
    if h.endswith(".h") and h[:-2] not in owner:
        problems.append(f"include/kiln/{h}: no layer owns it in docs/develop.md")
for d in sorted(os.listdir(os.path.join(src, "src"))):
    if os.path.isdir(os.path.join(src, "src", d)) and d not in rank:
        problems.append(f"src/{d}/: not in the layers table of docs/develop.md")
inc = re.compile(r'^\s*#\s*include\s+"(?:kiln/(\w+)\.h|\.\./(\w+)/[^"]+)"', re.M)
def check(path, layer):
    for m in inc.finditer(open(path, errors="replace").read()):
        target = owner.get(m.group(1)) if m.group(1) else m.group(2)
        what = f"kiln/{m.group(1)}.h" if m.group(1) else f"../{m.group(2)}/"
        if target is None or target not in rank:
            problems.append(f"{os.path.relpath(path, src)}: includes {what}, which has no layer")
        elif rank[target] > rank[layer]:
            problems.append(f"{os.path.relpath(path, src)} ({layer}) includes {what} ({target}): "
                            f"a layer above it")
checked = 0
for d in sorted(rank):
    folder = os.path.join(src, "src", d)
    for f in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if f.endswith((".c", ".h")):
            check(os.path.join(folder, f), d)
            checked += 1
for h, layer in owner.items():
    p = os.path.join(src, "include/kiln", h + ".h")
    if os.path.exists(p):
        check(p, layer)
        checked += 1
if problems:
    print("\n".join("FAIL: " + p for p in problems))
    sys.exit(1)
print(f"PASS: {checked} files include only their own layer or those below it "
      f"({' < '.join(sorted(rank, key=rank.get))})")
PY
