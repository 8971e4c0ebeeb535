#!/usr/bin/env bash
# run-demo.sh - build vsx on a fresh Debian 12 machine (installing what is
# missing) and run the main demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash cmake/bootstrap.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo
exec ./build/demos/vsx-sim-group "$@"
