#!/usr/bin/env bash
# bootstrap.sh BUILD_DIR [cmake args...] - make a fresh Debian 12 machine
# ready to build vsx, then configure and build into BUILD_DIR.
# Installs only the Debian packages that are missing (needs root for that),
# and mounts bpffs when it is not mounted (the AF_XDP tests pin nothing,
# but libxdp looks for it).
set -euo pipefail
build=$1; shift
packages=(cmake make gcc clang llvm pkg-config libxdp-dev libbpf-dev libelf-dev libev-dev check
          iproute2 tshark python3 xdp-tools)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: need root to install packages (or install them yourself: apt-get install -y ${missing[*]})" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q "${missing[@]}"
fi
if [ "$(id -u)" -eq 0 ] && ! mountpoint -q /sys/fs/bpf; then
  mount -t bpf bpf /sys/fs/bpf || echo "bootstrap: could not mount bpffs on /sys/fs/bpf (AF_XDP tests may skip)" >&2
fi
src=$(cd "$(dirname "$0")/.." && pwd)
cmake -S "$src" -B "$build" "$@" >/dev/null
cmake --build "$build" -j"$(nproc)"
