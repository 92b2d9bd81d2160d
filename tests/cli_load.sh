#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The load test with faults at a CI size: bench/load.sh --quick (4 clients of
# farpool-load-client doing verified random reads and writes on a pool of
# three nodes on loopback; phase 1 without faults, phase 2 while a member is
# killed and started again and the metadata node is killed and started again).
# It fails on a wrong byte, an error outside a fault, a client that crashed or
# hung, or a daemon's RSS over its bound; load.sh says which. Every wait in it
# is on a condition with a deadline; its sleeps only shape the load.
#
# Usage: bash cli_load.sh FARPOOLD FARPOOL_CLI
# FP_LOAD_META=etcd (CTest's cli_load_etcd): the pool's records in a real etcd,
# which is killed and started again too (load.sh --meta etcd).
# Skips (77) when the load client is not built (benchmarks off), or etcd is
# wanted and not installed.
set -u

FARPOOLD=${1:?usage: $0 FARPOOLD FARPOOL_CLI}
FARPOOL=${2:?usage: $0 FARPOOLD FARPOOL_CLI}
CLIENT=$(dirname "$FARPOOLD")/bench/farpool-load-client
for bin in "$FARPOOLD" "$FARPOOL"; do
    [ -x "$bin" ] || { echo "SKIP: $bin is not executable"; exit 77; }
done
[ -x "$CLIENT" ] || { echo "SKIP: $CLIENT is not built (the benchmarks are off)"; exit 77; }
if [ "${FP_LOAD_META:-dir}" = etcd ] && ! command -v etcd >/dev/null; then
    echo "SKIP: etcd not found (scripts/install-deps.sh installs etcd-server)"
    exit 77
fi
for tool in timeout setpriv; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool not found"; exit 77; }
done
unset FARPOOL_SECRET_FILE FARPOOL_LOG_LEVEL FARPOOL_POOL

# load.sh kills everything it started on exit; a bound on the whole of it too.
timeout -k 10 280 bash "$(dirname "$0")/../bench/load.sh" --quick --meta "${FP_LOAD_META:-dir}" \
    --farpoold "$FARPOOLD" --farpool "$FARPOOL" --client "$CLIENT"
rc=$?
case $rc in
0) echo "cli_load: passed" ;;
124 | 137) echo "cli_load: FAIL: load.sh ran past 280 s" >&2 ;;
*) echo "cli_load: FAIL: load.sh exited $rc" >&2 ;;
esac
[ "$rc" -eq 0 ] || exit 1
exit 0
