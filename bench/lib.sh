# Shared by the bench scripts: messages, the peer check and the build. The caller sets
# `bench_name`, `build` (build directory), `py` and `tmp` (its scratch directory) first.
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
