#!/usr/bin/env bash
# check_install.sh BUILD_DIR SRC_DIR [FLAGS] - install vsx into a scratch prefix and
# build a program against it twice: with pkg-config and with find_package.
# FLAGS (optional): compiler flags a sanitized build needs in its consumers.
set -euo pipefail
build=$1 src=$2 flags=${3:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
pc=$(dirname "$(find "$work/prefix" -name vsx.pc | head -1)")
libdir=$(dirname "$(find "$work/prefix" -name 'libvsx.so' | head -1)")
echo "installed: pkg-config dir $pc, libraries in $libdir"

# 1. pkg-config
PKG_CONFIG_PATH=$pc cc -Wall -Wextra -Werror $flags "$src/consumer.c" $(PKG_CONFIG_PATH=$pc pkg-config --cflags --libs vsx) -o "$work/c_pkgconfig"
LD_LIBRARY_PATH=$libdir "$work/c_pkgconfig"

# 2. find_package
cmake -S "$src/consumer" -B "$work/cm" -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_C_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="$flags" >/dev/null
cmake --build "$work/cm" >/dev/null
LD_LIBRARY_PATH=$libdir "$work/cm/consumer"
echo "install check: pkg-config and find_package consumers both work"
