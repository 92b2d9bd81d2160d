#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The main job on one machine: install what is missing, build, start a local
# memory node (farpoold) and run a real workload against it: write a region,
# read it back, verify every byte, print throughput and the node's status.
#
# Usage: scripts/demo.sh [SIZE]      (default 1G; e.g. 256M)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
size=${1:-1G}
build=${FP_BUILD_DIR:-$top/build}

"$top/scripts/install-deps.sh"
cmake -S "$top" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
# `farpool bench rw` runs farpool-bench, built beside farpool.
cmake --build "$build" --target farpoold farpool_cli farpool_bench farpool >/dev/null

work=$(mktemp -d)
pid=""
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        wait "$pid" || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "== starting a memory node on loopback (capacity 2G, ephemeral port)"
"$build/farpoold" --listen 127.0.0.1:0 --port-file "$work/port" --capacity 2G \
    --log-level warn 2>"$work/farpoold.log" &
pid=$!
for _ in $(seq 100); do
    [ -s "$work/port" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/farpoold.log" >&2; exit 1; }
    sleep 0.05
done
node=$(cat "$work/port")
echo "   farpoold pid $pid listening on $node"

echo "== workload: write $size to the node, read it back, verify"
"$build/farpool" bench rw --node "$node" --size "$size"

echo "== node status"
"$build/farpool" status --node "$node"
