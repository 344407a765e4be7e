# Shared by the bench scripts: messages, the peer check, the build, and the install of the
# PyTorch peers. The caller sets `bench_name`, `build` (build directory), `py` and `tmp` (its
# scratch directory) first, as each function needs them.
say() { echo "[$bench_name] $*" >&2; }
die() { say "error: $*"; exit 1; }

require_torch() {
    "$py" -c 'import torch, h5py' 2>/dev/null ||
        die "$py lacks torch or h5py (apt-get install python3-torch python3-h5py)"
}

# bench_build TARGET...: configure $build if it is new, then build the targets.
bench_build() {
    if [ ! -f "$build/CMakeCache.txt" ]; then
        say "configuring $build"
        cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DKILN_CUDA=OFF >"$tmp/build.log" 2>&1 ||
            { cat "$tmp/build.log"; die "cmake configure failed"; }
    fi
    say "building $* in $build"
    cmake --build "$build" -j2 --target "$@" >>"$tmp/build.log" 2>&1 ||
        { tail -40 "$tmp/build.log"; die "build failed"; }
}

# bench_venv: the install step of the PyTorch peers, run by the bench scripts themselves (the
# tests never download anything). PyPI's newest torch, numpy and h5py go into a virtual
# environment of the bench's own, bench/.venv (gitignored), made with `python3 -m venv` from
# the python3 on PATH; skipped when that environment already imports them. Debian's
# python3-torch (and python3-h5py) is installed with apt-get when /usr/bin/python3 lacks it, as
# the second reference; if that cannot be done the bench says so and goes on with PyPI's only.
# Sets torch_pythons: the interpreters with torch and h5py, Debian's first. BENCH_TORCH_PYTHONS
# overrides the list (and the installs). Needs $tmp.
bench_venv() {
    if [ -n "${BENCH_TORCH_PYTHONS:-}" ]; then
        torch_pythons=()
        local p
        for p in $BENCH_TORCH_PYTHONS; do
            "$p" -c 'import torch, h5py, numpy' 2>/dev/null || die "$p lacks torch, h5py or numpy"
            torch_pythons+=("$p")
        done
        return
    fi
    local venv=bench/.venv
    if ! "$venv/bin/python" -c 'import torch, numpy, h5py' 2>/dev/null; then
        say "installing torch, numpy and h5py from PyPI into $venv (once; the torch wheel is large)"
        if [ ! -x "$venv/bin/python" ]; then
            python3 -m venv "$venv" >"$tmp/venv.log" 2>&1 ||
                { cat "$tmp/venv.log"; die "python3 -m venv $venv failed"; }
        fi
        "$venv/bin/python" -m pip install --upgrade --progress-bar off torch numpy h5py \
            >"$tmp/pip.log" 2>&1 || { tail -30 "$tmp/pip.log"; die "pip install into $venv failed"; }
    fi
    if ! /usr/bin/python3 -c 'import torch, h5py' 2>/dev/null; then
        say "installing Debian's python3-torch for /usr/bin/python3"
        if [ "$(id -u)" != 0 ]; then
            say "not root: cannot apt-get install python3-torch; measuring PyPI's torch only"
        elif ! { apt-get install -y python3-torch python3-h5py >"$tmp/apt.log" 2>&1 ||
                 { apt-get update >>"$tmp/apt.log" 2>&1 &&
                   apt-get install -y python3-torch python3-h5py >>"$tmp/apt.log" 2>&1; }; }; then
            tail -5 "$tmp/apt.log" >&2
            say "Debian's python3-torch is unavailable: measuring PyPI's torch only"
        fi
    fi
    torch_pythons=()
    /usr/bin/python3 -c 'import torch, h5py' 2>/dev/null && torch_pythons+=(/usr/bin/python3)
    torch_pythons+=("$venv/bin/python")
}

# bench_sides OUT VARIANTS PYTHON...: the PyTorch sides, every interpreter (whose probe, the
# JSON of its peer script's --probe, is $tmp/probe-<index>.json) times every variant (eager,
# inference_mode, or +-joined features), one a line in OUT, tab-separated: id, interpreter,
# variant, label ("torch 2.5.1 compile") and, where that PyTorch lacks a feature the variant
# needs, why (such a side is listed but not run). Fused AdamW alone needs CPU support; in a
# combination it falls back to foreach and the run says so.
bench_sides() {
    local out=$1 variants=$2
    shift 2
    "${torch_pythons[-1]}" - "$tmp" "$out" "$variants" "$@" <<'PYEOF'
import json, sys
tmp, out, variants, pythons = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4:]
probes = [json.load(open(f"{tmp}/probe-{i}.json")) for i in range(len(pythons))]
versions = [p["torch"].split("+")[0] for p in probes]
with open(out, "w") as f:
    for i, (python, probe) in enumerate(zip(pythons, probes)):
        for v in variants:
            feats = [x for x in v.split("+") if x not in ("eager", "inference_mode")]
            why = [probe["missing"][x] for x in feats if probe["missing"].get(x)
                   and not (x == "fused" and len(feats) > 1)]
            label = f"torch {versions[i]}" + (f" ({python})" if versions.count(versions[i]) > 1 else "")
            f.write("\t".join([f"t{i}-{v}", python, v, f"{label} {v}", "; ".join(why)]) + "\n")
PYEOF
}
