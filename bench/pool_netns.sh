#!/bin/sh
# SPDX-License-Identifier: MIT
#
# pool_netns.sh: network namespaces for bench_pool's striping measurement.
#
# N memory nodes, each in a network namespace of its own, joined to the root
# namespace by a bridge: one veth pair per node, its root end enslaved to the
# bridge, its node end in the namespace. The bridge and the node ends share a
# private /24 of 10.215.0.0/16 that overlaps no address or route of this
# machine: the bridge is .1 (where the client is), node I is .(10+I). The node
# end's egress (data flowing node -> client) is shaped with tbf to RATE, the
# same for every node; nothing else is shaped. Nodes reach one another over
# the bridge, with no forwarding in the root namespace.
#
# It creates only what it names with its tag (the PID of the `run` or `up`
# that made it): namespaces fpool-TAG-I, a bridge fpbTAG and veth pairs
# fpTAGhI (root end) / fpTAGnI (node end), and deletes only those. Nothing
# global is changed (no sysctl, no route outside its own devices).
#
#   pool_netns.sh run [--nodes N] [--rate RATE] [--burst BYTES] -- CMD [ARGS...]
#       Create, run CMD with FARPOOL_NETNS (see below) in its environment, and
#       delete everything on exit, whether CMD succeeds, fails or is killed,
#       and when this script is interrupted (trap on EXIT, INT, TERM, HUP).
#       Exits with CMD's status. Processes left in the namespaces are killed.
#   pool_netns.sh up [--nodes N] [--rate RATE] [--burst BYTES] [--tag TAG]
#       Create and print the FARPOOL_NETNS value; a failure part way deletes
#       what was made. `down --tag TAG` undoes it.
#   pool_netns.sh down --tag TAG
#   pool_netns.sh stale
#       Delete what runs that are gone (their tag names no live process) left.
#
# FARPOOL_NETNS="TAG HOST_IP RATE_BITS NS0:IP0 NS1:IP1 ...".
#
# RATE as tc takes it (4gbit, 500mbit; default 4gbit). BYTES: the token
# bucket's depth (default: 1 ms at RATE, at least 128 KiB, so that a 64 KiB
# GSO packet passes whole and the hrtimer-driven bucket never starves).
#
# Needs root (CAP_NET_ADMIN), ip(8) and tc(8) from iproute2.
set -u

PROG=pool_netns.sh
NET_BASE=10.215

die() {
    echo "$PROG: $*" >&2
    exit 1
}

usage() {
    sed -n '/^#   pool_netns.sh/,/^# FARPOOL_NETNS/p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# RATE in bits per second (tc's units: bit, kbit, mbit, gbit, tbit, bps ...).
rate_bits() {
    awk -v r="$1" 'BEGIN {
        n = r + 0; u = tolower(substr(r, length(n "") + 1));
        if (n <= 0) exit 1;
        if (u == "" || u == "bit") m = 1;
        else if (u == "kbit") m = 1e3; else if (u == "mbit") m = 1e6;
        else if (u == "gbit") m = 1e9; else if (u == "tbit") m = 1e12;
        else if (u == "bps") m = 8; else if (u == "kbps") m = 8e3;
        else if (u == "mbps") m = 8e6; else if (u == "gbps") m = 8e9;
        else exit 1;
        printf "%.0f\n", n * m }'
}

# A /24 of NET_BASE that overlaps nothing here: no address in it, no route
# inside it, and no route containing it but the default route.
pick_subnet() {
    start=$(($$ % 250))
    i=0
    while [ $i -lt 250 ]; do
        x=$(((start + i) % 250 + 1))
        net="$NET_BASE.$x.0/24"
        if [ -z "$(ip -4 route show table all root "$net" 2>/dev/null)" ] &&
            ! ip -4 route show table all match "$net" 2>/dev/null | grep -qv '^default' &&
            ! ip -4 -o addr show | grep -q " $NET_BASE\.$x\."; then
            echo "$x"
            return 0
        fi
        i=$((i + 1))
    done
    return 1
}

# Delete what tag $1 made. Quiet: parts may not exist.
teardown() {
    t=$1
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^fpool-$t-[0-9]*\$"); do
        # Processes still in the namespace: started for this run, inside it.
        pids=$(ip netns pids "$ns" 2>/dev/null)
        # shellcheck disable=SC2086 # $pids is a list
        if [ -n "$pids" ]; then
            kill -TERM $pids 2>/dev/null
            sleep 1
            pids=$(ip netns pids "$ns" 2>/dev/null)
            [ -n "$pids" ] && kill -KILL $pids 2>/dev/null
        fi
        ip netns del "$ns" 2>/dev/null
    done
    for dev in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' |
        grep -E "^fp${t}h[0-9]+\$"); do
        ip link del "$dev" 2>/dev/null
    done
    ip link del "fpb$t" 2>/dev/null
    return 0
}

# Create N namespaces for tag $TAG; prints FARPOOL_NETNS. On failure the
# caller's trap (or up's own) tears down.
setup() {
    [ "$(id -u)" -eq 0 ] || die "not root: network namespaces need CAP_NET_ADMIN"
    command -v ip >/dev/null 2>&1 || die "ip(8) not found (install iproute2)"
    command -v tc >/dev/null 2>&1 || die "tc(8) not found (install iproute2)"
    bits=$(rate_bits "$RATE") || die "invalid --rate '$RATE' (e.g. 4gbit, 500mbit)"
    if [ -z "$BURST" ]; then
        BURST=$(awk -v b="$bits" 'BEGIN { v = b / 8 / 1000; if (v < 131072) v = 131072;
                                          printf "%.0f\n", v }')
    fi
    x=$(pick_subnet) || die "no free /24 in $NET_BASE.0.0/16"
    br="fpb$TAG"
    ip link add "$br" type bridge || die "cannot create bridge $br"
    ip addr add "$NET_BASE.$x.1/24" dev "$br" || die "cannot address $br"
    ip link set "$br" up || die "cannot bring $br up"
    out="$TAG $NET_BASE.$x.1 $bits"
    i=0
    while [ $i -lt "$NODES" ]; do
        ns="fpool-$TAG-$i"
        h="fp${TAG}h$i"
        n="fp${TAG}n$i"
        addr="$NET_BASE.$x.$((10 + i))"
        ip netns add "$ns" || die "cannot create namespace $ns"
        ip link add "$h" type veth peer name "$n" netns "$ns" || die "cannot create veth $h"
        ip link set "$h" master "$br" || die "cannot attach $h to $br"
        ip link set "$h" up || die "cannot bring $h up"
        ip -n "$ns" link set lo up || die "cannot bring lo up in $ns"
        ip -n "$ns" addr add "$addr/24" dev "$n" || die "cannot address $n"
        ip -n "$ns" link set "$n" up || die "cannot bring $n up"
        # The node's egress: what it sends to the client (and to other nodes).
        tc -n "$ns" qdisc add dev "$n" root tbf rate "$RATE" burst "$BURST" latency 20ms ||
            die "cannot shape $n in $ns with tbf"
        out="$out $ns:$addr"
        i=$((i + 1))
    done
    echo "$out"
}

# Tags of runs that are gone.
stale() {
    for t in $( (ip netns list 2>/dev/null | awk '{print $1}' | sed -n 's/^fpool-\([0-9]*\)-[0-9]*$/\1/p'
        ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed -n 's/^fpb\([0-9]*\)$/\1/p') |
        sort -u); do
        if [ "$t" != "$$" ] && ! kill -0 "$t" 2>/dev/null; then
            teardown "$t"
            echo "$PROG: deleted the namespaces of run $t, which is gone" >&2
        fi
    done
}

cmd=${1:-}
[ -n "$cmd" ] || usage
shift
NODES=3
RATE=4gbit
BURST=
TAG=
while [ $# -gt 0 ]; do
    case $1 in
    --nodes)
        [ $# -ge 2 ] || usage
        NODES=$2
        shift 2
        ;;
    --rate)
        [ $# -ge 2 ] || usage
        RATE=$2
        shift 2
        ;;
    --burst)
        [ $# -ge 2 ] || usage
        BURST=$2
        shift 2
        ;;
    --tag)
        [ $# -ge 2 ] || usage
        TAG=$2
        shift 2
        ;;
    --)
        shift
        break
        ;;
    -h | --help) usage ;;
    *) break ;;
    esac
done
case $NODES in
'' | *[!0-9]*) die "invalid --nodes '$NODES'" ;;
esac
if [ "$NODES" -lt 1 ] || [ "$NODES" -gt 16 ]; then
    die "--nodes must be 1 to 16"
fi
case $TAG in
*[!0-9]*) die "invalid --tag '$TAG' (digits)" ;;
esac

case $cmd in
run)
    [ $# -ge 1 ] || usage
    TAG=$$
    # Torn down however this ends; the child's status is kept.
    trap 'teardown "$TAG"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
    stale
    FARPOOL_NETNS=$(setup) || exit 1
    export FARPOOL_NETNS
    # In the background, so that a signal to this script is handled at once
    # (a trap waits for a foreground command); it is passed on as SIGTERM.
    "$@" &
    child=$!
    trap 'kill -TERM $child 2>/dev/null; wait $child; exit 130' INT
    trap 'kill -TERM $child 2>/dev/null; wait $child; exit 143' TERM
    trap 'kill -TERM $child 2>/dev/null; wait $child; exit 129' HUP
    wait $child
    exit $?
    ;;
up)
    [ -n "$TAG" ] || TAG=$$
    stale
    trap 'teardown "$TAG"' EXIT
    setup || exit 1
    trap - EXIT
    ;;
down)
    [ -n "$TAG" ] || die "down needs --tag TAG"
    teardown "$TAG"
    ;;
stale) stale ;;
*) usage ;;
esac
