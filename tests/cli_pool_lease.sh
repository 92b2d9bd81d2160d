#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Members' liveness by etcd lease (farpoold(8), MEMBER LEASES): a pool with
# its metadata in a real etcd on loopback, a metadata node and two members,
# each holding PREFIX/members/<node id> under a lease of its --dead-after.
#   - every node's key is there, under a lease, valued with its address;
#   - a member SIGSTOPped past the service's --dead-after but within its own
#     lease's TTL is not declared dead (its key lives);
#   - etcd killed past the TTLs and started again on its data: the members
#     hold their keys again and nobody is declared dead;
#   - the metadata node SIGSTOPped until its own key expired, then resumed:
#     it takes the service and its key back, and nobody is declared dead;
#   - a member SIGKILLed: its key goes with its lease, and the service
#     declares it dead;
#   - a member stopped cleanly: its key goes at once (revoked), well within
#     its TTL, and the service declares it dead.
# Every wait is on a condition, with a deadline.
#
# Usage: bash cli_pool_lease.sh FARPOOLD FARPOOL_CLI
set -u

FARPOOLD=${1:?usage: $0 FARPOOLD FARPOOL_CLI}
FARPOOL=${2:?usage: $0 FARPOOLD FARPOOL_CLI}
T=30
SLAB=2M
DEAD=3      # the service's --dead-after, and m1's (its lease's TTL)
LONG_TTL=10 # m2's --dead-after: its lease's TTL

for bin in "$FARPOOLD" "$FARPOOL"; do
    [ -x "$bin" ] || { echo "SKIP: $bin is not executable"; exit 77; }
done
for tool in timeout python3 setpriv; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool not found"; exit 77; }
done

CLI_NAME=cli_pool_lease
. "$(dirname "$0")/common/cli.sh"
. "$(dirname "$0")/common/etcd.sh"
unset FARPOOL_SECRET_FILE FARPOOL_LOG_LEVEL FARPOOL_POOL

# keys: the members' lease keys in etcd, "ADDRESS LEASE" a line (LEASE 0: none), sorted.
keys() {
    python3 - "$ETCD_ADDR" "/farpool-etcd/members/" <<'PY'
import base64, json, sys, urllib.request
addr, prefix = sys.argv[1], sys.argv[2].encode()
end = prefix[:-1] + bytes([prefix[-1] + 1])
b64 = lambda b: base64.b64encode(b).decode()
req = urllib.request.Request("http://%s/v3/kv/range" % addr,
                             data=json.dumps({"key": b64(prefix), "range_end": b64(end)}).encode())
d = json.load(urllib.request.urlopen(req, timeout=5))
for kv in d.get("kvs", []):
    print(base64.b64decode(kv["value"]).decode(), kv.get("lease", "0"))
PY
}

# keys_are SECONDS EXPECTED: wait until `keys | cut -d' ' -f1` is EXPECTED (sorted addresses, one a line).
keys_are() {
    local deadline=$(($(date +%s) + $1))
    while :; do
        [ "$(keys 2>/dev/null | cut -d' ' -f1 | sort)" = "$2" ] && return 0
        [ "$(date +%s)" -ge "$deadline" ] && return 1
        sleep 0.1
    done
}

# node_is SECONDS ADDR EXPR: wait until EXPR (Python, n = ADDR's entry in status --json) holds.
node_is() {
    local deadline=$(($(date +%s) + $1)) addr=$2 expr=$3
    while :; do
        if timeout "$T" "$FARPOOL" status --pool "$ETCD_URL" --json >"$TMP/st.out" 2>"$TMP/st.err" &&
            python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
n = [n for n in d["nodes"] if n["address"] == sys.argv[2]][-1]
sys.exit(0 if eval(sys.argv[3]) else 1)' "$TMP/st.out" "$addr" "$expr" 2>/dev/null; then
            return 0
        fi
        [ "$(date +%s)" -ge "$deadline" ] && return 1
        sleep 0.1
    done
}

# log_has SECONDS NAME REGEX: wait until NAME's log matches REGEX.
log_has() {
    local deadline=$(($(date +%s) + $1))
    while ! grep -Eq -- "$3" "$TMP/$2.log"; do
        [ "$(date +%s)" -ge "$deadline" ] && return 1
        sleep 0.1
    done
}

start_etcd etcd || exit 1
ARGS=(--listen 127.0.0.1:0 --slab-size "$SLAB" --capacity 64M)
start_farpoold meta "${ARGS[@]}" --meta-dir "$ETCD_URL" --dead-after "$DEAD" || exit 1
META=$ADDR
META_PID=$PID
start_farpoold m1 "${ARGS[@]}" --pool "$ETCD_URL" --dead-after "$DEAD" || exit 1
M1=$ADDR
M1_PID=$PID
start_farpoold m2 "${ARGS[@]}" --pool "$ETCD_URL" --dead-after "$LONG_TTL" || exit 1
M2=$ADDR
M2_PID=$PID
ALL=$(printf '%s\n' "$META" "$M1" "$M2" | sort)

for a in "$META" "$M1" "$M2"; do
    node_is 20 "$a" 'n["state"] == "live"' && ok || fail "$a is not live within 20 s: $(cat "$TMP/st.out")"
done

# --- every node holds its key, under a lease ---------------------------------
keys_are 20 "$ALL" && ok || fail "the lease keys are not the three nodes' addresses: $(keys 2>&1)"
[ "$(keys | awk '$2 == 0' | wc -l)" -eq 0 ] && ok || fail "a key without a lease: $(keys)"
grep -q "registered /farpool-etcd/members/" "$TMP/m1.log" && ok ||
    fail "m1 does not say it registered its key: $(tail -5 "$TMP/m1.log")"

# --- late heartbeats, a live key: not dead -------------------------------------
kill -STOP "$M2_PID"
if node_is 30 "$M2" "n['seen_ms'] > ($DEAD + 1) * 1000"; then
    # silent past the service's --dead-after, within its own lease's TTL
    python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if [n for n in d["nodes"] if n["address"] == sys.argv[2]][-1]["state"] == "live" else 1)' \
        "$TMP/st.out" "$M2" && ok || fail "m2, stopped within its lease's TTL, is not live: $(cat "$TMP/st.out")"
else
    fail "m2's heartbeats did not stop: $(cat "$TMP/st.out")"
fi
kill -CONT "$M2_PID"
node_is 20 "$M2" 'n["seen_ms"] < 2000' && ok || fail "m2 does not heartbeat again: $(cat "$TMP/st.out")"
grep -q "member $M2 is dead" "$TMP/meta.log" && fail "m2 was declared dead: $(grep dead "$TMP/meta.log")" || ok

# --- etcd away past every TTL, then back: nobody is dead ---------------------
kill -KILL "$ETCD_PID"
wait "$ETCD_PID" 2>/dev/null
# the service's own lease not renewed within its TTL (--dead-after): etcd was away that long
log_has 30 meta "not renewed within its TTL" && ok || fail "the service did not notice etcd away: $(tail -5 "$TMP/meta.log")"
log_has 30 m1 "cannot renew this node's lease key" && ok || fail "m1 did not notice etcd away: $(tail -5 "$TMP/m1.log")"
restart_etcd etcd || exit 1
log_has 30 m1 "held again" && ok || fail "m1 does not hold its key again: $(tail -5 "$TMP/m1.log")"
keys_are 30 "$ALL" && ok || fail "the keys are not all back after etcd's restart: $(keys 2>&1)"
log_has 30 meta "lease keys can be read again" && ok || fail "the service does not read the keys again: $(tail -5 "$TMP/meta.log")"
for a in "$META" "$M1" "$M2"; do
    node_is 20 "$a" 'n["state"] == "live"' && ok || fail "$a is not live after etcd's restart: $(cat "$TMP/st.out")"
done
grep -q " is dead " "$TMP/meta.log" && fail "a member was declared dead: $(grep ' is dead ' "$TMP/meta.log")" || ok

# --- the metadata node paused past its TTL: nobody is dead ------------------
# Its own member key (and P/service) expire while it is stopped; resumed, it
# takes both back and declares nobody dead, itself included.
kill -STOP "$META_PID"
keys_are 30 "$(printf '%s\n' "$M1" "$M2" | sort)" && ok || fail "the stopped metadata node's key did not expire: $(keys 2>&1)"
kill -CONT "$META_PID"
keys_are 30 "$ALL" && ok || fail "the metadata node does not hold its key again: $(keys 2>&1)"
log_has 30 meta "metadata service again" && ok || fail "the service did not take its key back: $(tail -5 "$TMP/meta.log")"
for a in "$META" "$M1" "$M2"; do
    node_is 20 "$a" 'n["state"] == "live"' && ok || fail "$a is not live after the service's pause: $(cat "$TMP/st.out")"
done
grep -q " is dead " "$TMP/meta.log" && fail "a member was declared dead: $(grep ' is dead ' "$TMP/meta.log")" || ok

# --- SIGKILL: the key goes with the lease, the member is dead ----------------
kill -KILL "$M1_PID"
wait "$M1_PID" 2>/dev/null
t0=$(date +%s)
# the key within its TTL (and etcd's expiry sweep), the death right after
keys_are $((DEAD + 15)) "$(printf '%s\n' "$META" "$M2" | sort)" && ok || fail "m1's key outlived it: $(keys 2>&1)"
node_is $((DEAD + 15)) "$M1" 'n["state"] == "dead"' && ok || fail "m1 was not declared dead: $(cat "$TMP/st.out")"
echo "m1 declared dead $(($(date +%s) - t0)) s after its SIGKILL (lease TTL $DEAD s)"
grep -q "member $M1 is dead (its etcd lease key is gone)" "$TMP/meta.log" && ok ||
    fail "the service does not say m1's key went: $(grep dead "$TMP/meta.log")"

# --- a clean stop: revoked at once -------------------------------------------
kill -TERM "$M2_PID"
t0=$(date +%s)
keys_are $((LONG_TTL / 2)) "$META" && ok || fail "m2's key was not revoked at its stop: $(keys 2>&1)"
node_is $((LONG_TTL / 2)) "$M2" 'n["state"] == "dead"' && ok || fail "m2 was not declared dead at its stop: $(cat "$TMP/st.out")"
echo "m2 declared dead $(($(date +%s) - t0)) s after its SIGTERM (lease TTL $LONG_TTL s)"
wait "$M2_PID" 2>/dev/null
grep -q "revoked" "$TMP/m2.log" && ok || fail "m2 does not say it revoked its key: $(tail -5 "$TMP/m2.log")"

kill -TERM "$META_PID"
wait "$META_PID" 2>/dev/null
keys_are 5 "" && ok || fail "the metadata node's key outlived its stop: $(keys 2>&1)"
finish
