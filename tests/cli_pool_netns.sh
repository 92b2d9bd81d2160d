#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# A pool on etcd across network namespaces: three farpoold nodes, each in a
# namespace of its own (the first is the metadata service, storing the pool
# in etcd), and etcd in a fourth (bench/pool_netns.sh makes them, joined by a
# bridge to this namespace, where the clients run). A file is put with two
# copies of every slab, and two load clients do verified random reads and
# writes of their own regions throughout. Then, in turn:
#   - a member is killed with SIGKILL: the file reads back byte for byte from
#     the copies left, and the pool repairs to healthy;
#   - etcd is killed with SIGKILL: the data path goes on (the load clients'
#     handles keep reading and writing; only metadata calls may fail, each
#     one loudly), then etcd is restarted on its data and the pool is whole
#     again: healthy, the file byte for byte, `farpool verify` of every copy.
# The load clients must end with zero wrong bytes.
#
# Usage: bash cli_pool_netns.sh FARPOOLD FARPOOL_CLI [LOAD_CLIENT]
# (LOAD_CLIENT: default bench/farpool-load-client beside FARPOOLD.)
# Needs root (network namespaces), ip and tc (iproute2), etcd. Every command
# runs under timeout(1); the daemons die with the script (--pdeathsig), and
# pool_netns.sh deletes the namespaces and the bridge whatever happens.
set -u

FARPOOLD=${1:?usage: $0 FARPOOLD FARPOOL_CLI [LOAD_CLIENT]}
FARPOOL=${2:?usage: $0 FARPOOLD FARPOOL_CLI [LOAD_CLIENT]}
LOAD=${3:-$(dirname "$FARPOOLD")/bench/farpool-load-client}
HERE=$(cd "$(dirname "$0")" && pwd)
T=60 # seconds any one command may take

for bin in "$FARPOOLD" "$FARPOOL" "$LOAD"; do
    [ -x "$bin" ] || { echo "SKIP: $bin is not executable"; exit 77; }
done
for tool in timeout python3 cmp setpriv ip tc curl etcd; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool not found (scripts/install-deps.sh)"; exit 77; }
done
[ "$(id -u)" -eq 0 ] || { echo "SKIP: not root: network namespaces need CAP_NET_ADMIN"; exit 77; }

# Run again inside the four namespaces (which the outer call deletes at its end).
if [ -z "${FARPOOL_NETNS:-}" ]; then
    exec sh "$HERE/../bench/pool_netns.sh" run --nodes 4 --rate 10gbit -- bash "$0" "$@"
fi

CLI_NAME=cli_pool_netns
. "$HERE/common/cli.sh"
. "$HERE/common/etcd.sh"
unset FARPOOL_LOG_LEVEL FARPOOL_POOL
LOAD_PIDS=()

# Off loopback a secret is required: every daemon and client is given it.
head -c 32 /dev/urandom | base64 >"$TMP/secret"
chmod 600 "$TMP/secret"
export FARPOOL_SECRET_FILE=$TMP/secret

# FARPOOL_NETNS="TAG HOST_IP RATE_BITS NS0:IP0 NS1:IP1 NS2:IP2 NS3:IP3"
read -r _ _ _ N0 N1 N2 N3 <<<"$FARPOOL_NETNS"
ns_of() { echo "${1%%:*}"; }
ip_of() { echo "${1##*:}"; }

# until_ok SECONDS WHAT CMD...: rerun CMD until it succeeds; a failed check at the deadline.
until_ok() {
    local secs=$1 what=$2 deadline
    shift 2
    deadline=$(($(date +%s) + secs))
    while :; do
        "$@" && { ok; return 0; }
        [ "$(date +%s)" -ge "$deadline" ] && { fail "not $what within ${secs}s"; return 1; }
        sleep 0.2
    done
}

# healthy N: the pool lists N live nodes and every region is healthy.
healthy() {
    timeout 10 "$FARPOOL" status --pool "$URL" --json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin); n = int(sys.argv[1])
live = [x for x in d["nodes"] if x["state"] == "live"]
sys.exit(0 if len(live) == n and all(r["health"] == "healthy" for r in d["regions"]) else 1)' "$1"
}

# same_file NAME: `farpool get` of the file now gives it byte for byte.
same_file() {
    local name=$1
    rm -f "$TMP/back"
    run "$name" "$FARPOOL" get --pool "$URL" --quiet model "$TMP/back"
    if [ "$RC" -eq 0 ] && cmp -s "$TMP/model" "$TMP/back"; then ok; else
        fail "$name: get exited $RC or differs: $(head -c 300 "$TMP/$name.err")"
    fi
}

# etcd in the fourth namespace, reached from here over the bridge.
ETCD_HOST=$(ip_of "$N3") ETCD_NETNS=$(ns_of "$N3") start_etcd etcd || finish
ETCD_NETNS=$(ns_of "$N3")
URL=$ETCD_URL

# The three nodes. The first is the metadata service (and a member).
NODE_NETNS=$(ns_of "$N0") start_farpoold meta --listen "$(ip_of "$N0"):0" --meta-dir "$URL" \
    --dead-after 3 --capacity 256M --slab-size 2M --secret-file "$TMP/secret" || finish
META_PID=$PID
NODE_NETNS=$(ns_of "$N1") start_farpoold m1 --listen "$(ip_of "$N1"):0" --pool "$URL" \
    --capacity 256M --slab-size 2M --secret-file "$TMP/secret" || finish
M1_PID=$PID
NODE_NETNS=$(ns_of "$N2") start_farpoold m2 --listen "$(ip_of "$N2"):0" --pool "$URL" \
    --capacity 256M --slab-size 2M --secret-file "$TMP/secret" || finish
until_ok 30 "3 live nodes" healthy 3

# A file with two copies of every slab.
head -c $((48 << 20)) /dev/urandom >"$TMP/model"
run put "$FARPOOL" put --pool "$URL" --quiet --replicas 2 "$TMP/model" model
if [ "$RC" -eq 0 ]; then ok; else fail "put exited $RC: $(head -c 300 "$TMP/put.err")"; finish; fi
same_file get_first

# Two load clients through everything that follows; they stop on the stop file.
for id in 1 2; do
    setpriv --pdeathsig KILL timeout 300 "$LOAD" --pool "$URL" --id "$id" --size 8M \
        --replicas 2 --seconds 240 --stop-file "$TMP/stop" --ready-file "$TMP/ready$id" \
        --timeout-ms 3000 >"$TMP/load$id.out" 2>"$TMP/load$id.err" &
    LOAD_PIDS+=($!)
    PIDS+=($!)
done
until_ok 30 "both load clients ready" test -e "$TMP/ready1" -a -e "$TMP/ready2"

now_ms() { date +%s%3N; }

# A member killed: the file from the copies left, then repaired.
W1_FROM=$(now_ms)
kill -KILL "$M1_PID"
{ wait "$M1_PID"; } 2>/dev/null
same_file get_member_dead
until_ok 60 "healthy again on 2 nodes after the member's death" healthy 2
W1_TO=$(now_ms)
same_file get_repaired

# etcd killed: the data path goes on without it, for a while.
W2_FROM=$(now_ms)
kill -KILL "$ETCD_PID"
wait "$ETCD_PID" 2>/dev/null
sleep 2 # the load clients keep going meanwhile (counted below); not a wait for a condition
for id in 1 2; do
    kill -0 "${LOAD_PIDS[$((id - 1))]}" 2>/dev/null && ok || fail "load client $id died with etcd down"
done
run get_no_etcd "$FARPOOL" get --pool "$URL" --quiet model "$TMP/back_no_etcd"
if [ "$RC" -ne 0 ]; then
    # A metadata call fails loudly and leaves no file; never a wrong one.
    stderr_has get_no_etcd 'etcd|not connected|unavailable|timed out|error'
    [ -e "$TMP/back_no_etcd" ] && fail "a failed get left $TMP/back_no_etcd" || ok
else
    cmp -s "$TMP/model" "$TMP/back_no_etcd" && ok || fail "get with etcd down gave other bytes"
fi

# etcd back on its data: the pool is whole again.
restart_etcd etcd || finish
until_ok 60 "healthy on 2 nodes after etcd's restart" healthy 2
same_file get_etcd_back
run verify "$FARPOOL" verify --pool "$URL" --quiet model
[ "$RC" -eq 0 ] && ok || fail "verify exited $RC: $(head -c 300 "$TMP/verify.err")"
# ... and changes again: the service took its key back (a new put, then rm).
head -c $((4 << 20)) /dev/urandom >"$TMP/second"
until_ok 30 "a put accepted after etcd's restart" \
    timeout "$T" "$FARPOOL" put --pool "$URL" --quiet --force "$TMP/second" second
W2_TO=$(now_ms)
run rm_second "$FARPOOL" rm --pool "$URL" second
[ "$RC" -eq 0 ] && ok || fail "rm after etcd's restart exited $RC: $(head -c 300 "$TMP/rm_second.err")"

# The load clients: zero wrong bytes, and each ended by itself.
touch "$TMP/stop"
for id in 1 2; do
    wait "${LOAD_PIDS[$((id - 1))]}"
    rc=$?
    out=$(tail -1 "$TMP/load$id.out")
    wrong=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["wrong_bytes"])' "$out" 2>/dev/null)
    if [ "$rc" -eq 0 ] && [ "$wrong" = 0 ]; then ok; else
        fail "load client $id exited $rc, wrong bytes '${wrong:-?}': $(tail -5 "$TMP/load$id.err")"
    fi
    echo "load client $id: $out" | cut -c1-400
    # Every error it met came during a fault: the member's death up to the
    # repair, or etcd's absence up to the service taking its key back.
    outside=$(sed -n 's/.* error t_ms=\([0-9]*\) .*/\1/p' "$TMP/load$id.err" |
        awk -v a="$W1_FROM" -v b="$W1_TO" -v c="$W2_FROM" -v d="$W2_TO" \
            '!(($1 >= a && $1 <= b) || ($1 >= c && $1 <= d))' | head -3)
    [ -z "$outside" ] && ok || fail "load client $id: errors outside the fault windows (t_ms $outside): $(grep -m3 ' error t_ms=' "$TMP/load$id.err")"
done
finish
