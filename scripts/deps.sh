#!/usr/bin/env bash
# Installs what kiln needs from Debian's packages (as root, or via sudo). Does nothing when
# everything is already installed, so it runs offline on a prepared machine.
set -euo pipefail
packages=(build-essential cmake pkg-config libopenmpi-dev openmpi-bin libhdf5-openmpi-dev
  hdf5-tools libhwloc-dev hwloc libopenblas-dev libyaml-dev zlib1g-dev libopenblas-openmp-dev
  dataset-fashion-mnist fortunes python3-h5py python3-numpy libjansson-dev nettle-dev slurm-wlm munge jq
  clang libclang-rt-14-dev libomp-dev chromium python3-pil)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
