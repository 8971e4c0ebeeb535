#!/usr/bin/env bash
# run-tests.sh - build vsx twice (release, and Debug with ASan+UBSan) and
# run every test in both.  Works on a fresh Debian 12 machine: it installs
# what is missing first (as root).  Build trees go to ./build and
# ./build-asan.
set -euo pipefail
cd "$(dirname "$0")/.."
bash cmake/bootstrap.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo
bash cmake/bootstrap.sh build-asan -DCMAKE_BUILD_TYPE=Debug -DVSX_SANITIZE=ON
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
echo "== tests: release build"
(cd build && ctest --output-on-failure --timeout 900)
echo "== tests: AddressSanitizer + UndefinedBehaviorSanitizer build"
# The sanitizers look for memory and undefined-behaviour errors, which a
# quarter of the random fault sweep reaches as well as all of it does (the
# release run sweeps all 1000 seeds); this keeps the suite well under 15
# minutes on 2 cores.
# The programs' end-to-end runs repeat over UDP what they do over AF_XDP
# (the same program code); the sanitizer build runs the AF_XDP ones.
(cd build-asan && VSX_MBR_SWEEP=${VSX_MBR_SWEEP:-250} ctest --output-on-failure --timeout 900 \
   -E '^(kv_crash_local|kv_crash_udp|chat_demo_udp|chat_partition_udp)$')
echo "== every test passed, in both builds; ${SECONDS} s in all (builds included)"
