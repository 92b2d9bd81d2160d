#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# load.sh: a load test of a farpool pool with faults (issue 21, "load with
# faults"). N client processes (farpool-load-client) do verified random reads
# and writes of their own regions on a pool of three nodes on 127.0.0.1 (the
# metadata node, itself a member, and two members), in two phases:
#
#   1. no faults: N clients for S seconds;
#   2. the same load while, in turn:
#      a. a member is killed (SIGKILL); the script waits until the pool
#         declares it dead and repair has made every region healthy again,
#         then starts it again on the same address (a new, empty member) and
#         waits until it is live;
#      b. the metadata node is killed (SIGKILL) and started again with the
#         same --meta-dir and address; the script waits until the pool shows
#         three live members and every region healthy (its old self is
#         declared dead: it came back empty, and its copies are repaired).
#      c. (--meta etcd) etcd itself is killed (SIGKILL) and started again on
#         its data; the script waits until the pool is healthy and takes a
#         change again (a put).
#      S/3 seconds of load run before a, between the faults, and after the last.
#
# The pool's records are kept by the metadata node in SQLite (--meta-dir
# DIR, the default) or, with --meta etcd, in a real etcd on 127.0.0.1
# (Debian's etcd-server) that the script starts: every node and client then
# names the pool etcd://HOST:PORT/PREFIX.
#
# Checks (exit 1 if any fails, with what failed on stderr):
#   - no wrong byte, in any read or in each client's final sweep of its region;
#   - every client ends in time (each under a deadline) and prints its report;
#   - no error in phase 1; in phase 2 every failed call a client counted is
#     printed by it with its time, and each lies within a fault window (from
#     the kill to the pool being healthy again, plus a grace of the lease TTL
#     and GRACE_S seconds: a lease given back while the metadata node was down
#     lingers that long); the counts by kind add up to the lines printed;
#   - no client logs that its writer lease was lost;
#   - every daemon's VmRSS, sampled every 0.2 s from /proc/PID/status, stays
#     under its capacity (--capacity) plus RSS_MARGIN MiB: a node's memory is
#     its slabs (at most the capacity) plus connections' buffers, SQLite on
#     the metadata node and the binary: tens of MiB, whatever the load.
#
# Output: a table (phase, clients, requests, rps, p50, p99, max latency of a
# request, errors by kind, wrong bytes, max RSS per daemon), the ratios of
# phase 2 to phase 1, and how long each fault took to heal.
#
# Usage: load.sh [--clients N] [--seconds S] [--quick] [--size SIZE]
#                [--farpoold PATH] [--farpool PATH] [--client PATH]
#                [--json FILE] [--keep-tmp] [--meta dir|etcd]
#   --quick: a CI size (4 clients, 4 s per phase, 8 MiB regions, --heal 40).
#   --heal S: seconds each fault may take to heal (default 120).
#   --no-meta-restart: phase 2 without fault b (the member fault alone).
#   --meta dir|etcd: where the pool's records live (default dir).
#   Paths default to the build tree beside this script's source tree
#   ($FP_BUILD_DIR, else ../build): BUILD/farpoold, BUILD/farpool,
#   BUILD/bench/farpool-load-client.
#   --json FILE: the summary as JSON too.
# Every process it starts is killed on exit, whatever happens (trap).
set -u

PROG=load.sh
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${FP_BUILD_DIR:-$HERE/../build}
FARPOOLD=$BUILD/farpoold
FARPOOL=$BUILD/farpool
CLIENT=$BUILD/bench/farpool-load-client
CLIENTS=16
SECS=20
SIZE_MIB=16
JSON_OUT=
KEEP_TMP=0
SLAB=2M
LEASE_TTL=5     # seconds: the metadata node's --lease-ttl
DEAD_AFTER=3    # seconds: --dead-after
GRACE_S=5       # seconds after a fault window an error may still be reported
RSS_MARGIN=64   # MiB above --capacity a daemon's RSS may reach
T=30            # seconds any one farpool command may take
HEAL_S=120      # seconds a fault may take to heal (--heal)
META_RESTART=1  # 0: fault b is left out (--no-meta-restart)
META_KIND=dir   # dir: SQLite under the metadata node's --meta-dir; etcd: a real etcd (--meta)

die() {
    echo "$PROG: $*" >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case $1 in
    --clients) CLIENTS=${2:?}; shift ;;
    --seconds) SECS=${2:?}; shift ;;
    --size) SIZE_MIB=${2:?}; shift ;;
    --quick) CLIENTS=4; SECS=4; SIZE_MIB=8; HEAL_S=40 ;;
    --heal) HEAL_S=${2:?}; shift ;;
    --no-meta-restart) META_RESTART=0 ;;
    --meta) META_KIND=${2:?}; shift ;;
    --farpoold) FARPOOLD=${2:?}; shift ;;
    --farpool) FARPOOL=${2:?}; shift ;;
    --client) CLIENT=${2:?}; shift ;;
    --json) JSON_OUT=${2:?}; shift ;;
    --keep-tmp) KEEP_TMP=1 ;;
    -h | --help) sed -n '3,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
    esac
    shift
done
case $CLIENTS$SECS$SIZE_MIB$HEAL_S in *[!0-9]*) die "--clients, --seconds and --size take whole numbers" ;; esac
[ "$CLIENTS" -ge 1 ] && [ "$CLIENTS" -le 256 ] || die "--clients: 1 to 256"
[ "$SECS" -ge 1 ] || die "--seconds: at least 1"
[ "$SIZE_MIB" -ge 1 ] || die "--size: at least 1 (MiB)"
case $META_KIND in dir | etcd) ;; *) die "--meta: dir or etcd" ;; esac
[ "$META_KIND" = dir ] || command -v etcd >/dev/null ||
    die "etcd not found (scripts/install-deps.sh installs etcd-server)"
for bin in "$FARPOOLD" "$FARPOOL" "$CLIENT"; do
    [ -x "$bin" ] || die "$bin is not executable (build it, or name it with an option)"
done
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
for tool in timeout setpriv "$PY"; do
    command -v "$tool" >/dev/null || die "$tool not found"
done

# Each node holds every region's copies with one member down: N x SIZE of
# the 2 x N x SIZE on two nodes, plus room.
CAP_MIB=$((CLIENTS * SIZE_MIB + 128))
RSS_BOUND_KB=$(((CAP_MIB + RSS_MARGIN) * 1024))

TMP=$(mktemp -d "${TMPDIR:-/tmp}/farpool-load.XXXXXX")
declare -A DPID  # daemon name -> pid
CPIDS=()         # clients
PIDS=()          # etcd (tests/common/etcd.sh adds it)
SAMPLER=
cleanup() {
    [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null && wait "$SAMPLER" 2>/dev/null
    for pid in "${CPIDS[@]}" "${DPID[@]}" "${PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [ "$KEEP_TMP" = 1 ]; then echo "$PROG: logs kept in $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

FAILS=0
fail() {
    echo "$PROG: FAIL: $*" >&2
    FAILS=$((FAILS + 1))
}
now_ms() { date +%s%3N; }
log() { echo "$PROG: [$(date +%T)] $*" >&2; }

# start NAME LISTEN ARGS...: farpoold on LISTEN in the background (its log
# appended to $TMP/NAME.log); waits until it listens; sets DPID[NAME], ADDR.
start() {
    local name=$1 listen=$2 pid
    shift 2
    rm -f "$TMP/$name.port"
    echo "--- start $(date +%T.%N)" >>"$TMP/$name.log"
    setpriv --pdeathsig KILL "$FARPOOLD" --listen "$listen" --port-file "$TMP/$name.port" \
        --slab-size "$SLAB" --capacity "${CAP_MIB}M" "$@" >>"$TMP/$name.log" 2>&1 </dev/null &
    pid=$!
    DPID[$name]=$pid
    echo "$pid" >"$TMP/$name.pid"
    for _ in $(seq 1 $((T * 20))); do
        if [ -s "$TMP/$name.port" ]; then
            ADDR=$(head -1 "$TMP/$name.port")
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    fail "$name: farpoold $* did not listen on $listen"
    tail -5 "$TMP/$name.log" | sed 's/^/    log: /' >&2
    return 1
}

# status NAME: `farpool status --json` into $TMP/NAME.json; 1 if it fails.
status() {
    timeout "$T" "$FARPOOL" status --pool "$URL" --json >"$TMP/$1.json" 2>"$TMP/$1.err" </dev/null
}

# until_pool SECONDS WHAT EXPR: poll status until the Python EXPR (d: the
# JSON) holds; 1 (a failed check) at the deadline.
until_pool() {
    local secs=$1 what=$2 expr=$3 deadline
    deadline=$(($(date +%s) + secs))
    while :; do
        if status poll && [ "$("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(bool(eval(sys.argv[2])))' \
            "$TMP/poll.json" "$expr" 2>/dev/null)" = True ]; then
            return 0
        fi
        [ "$(date +%s)" -ge "$deadline" ] && break
        sleep 0.2
    done
    fail "the pool is not $what within $secs s: $(head -c 600 "$TMP/poll.json" 2>/dev/null) $(head -c 200 "$TMP/poll.err" 2>/dev/null)"
    return 1
}

# Python expressions over the status JSON.
live3='sum(n["state"] == "live" for n in d["nodes"]) == 3'
healthy() { # healthy PHASE: all of the phase's N regions healthy (and nothing lost)
    echo 'len([r for r in d["regions"] if r["name"].startswith("load-p'"$1"'-")]) == '"$CLIENTS"' and all(r["health"] == "healthy" for r in d["regions"])'
}
is_dead() { echo 'any(n["address"] == "'"$1"'" and n["state"] == "dead" for n in d["nodes"])'; }

# The RSS sampler: every 0.2 s, "PHASE NAME KB" of each daemon.
echo setup >"$TMP/phase"
(
    while :; do
        ph=$(cat "$TMP/phase" 2>/dev/null)
        for name in meta m1 m2; do
            pid=$(cat "$TMP/$name.pid" 2>/dev/null) || continue
            kb=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$pid/status" 2>/dev/null)
            [ -n "$kb" ] && echo "$ph $name $kb"
        done
        sleep 0.2
    done
) >"$TMP/rss.log" 2>/dev/null &
SAMPLER=$!

# --- the pool ------------------------------------------------------------
META_DIR=$TMP/meta
if [ "$META_KIND" = etcd ]; then
    . "$HERE/../tests/common/etcd.sh"
    start_etcd etcd || exit 1
    META_DIR=$ETCD_URL
    log "etcd at $ETCD_ADDR (pid $ETCD_PID)"
fi
start meta 127.0.0.1:0 --meta-dir "$META_DIR" --dead-after "$DEAD_AFTER" --lease-ttl "$LEASE_TTL" || exit 1
META=$ADDR
URL="farpool://$META"
[ "$META_KIND" = etcd ] && URL=$ETCD_URL
start m1 127.0.0.1:0 --pool "$URL" || exit 1
M1=$ADDR
start m2 127.0.0.1:0 --pool "$URL" || exit 1
M2=$ADDR
until_pool 30 "3 live nodes" "$live3" || exit 1
log "pool $URL: members $META (metadata), $M1, $M2; ${CAP_MIB} MiB each; $CLIENTS clients of ${SIZE_MIB} MiB regions"

# clients PHASE SECONDS: start the N clients; wait until each made its region.
clients() {
    local phase=$1 secs=$2 deadline
    CPIDS=()
    rm -f "$TMP/stop.$phase"
    for i in $(seq 0 $((CLIENTS - 1))); do
        # -k: a client that ignores SIGTERM is killed 5 s later (rc 137).
        timeout -k 5 $((secs + 60)) "$CLIENT" --pool "$URL" --id "$i" --name "load-p$phase-$i" \
            --size "${SIZE_MIB}M" --seconds "$secs" --stop-file "$TMP/stop.$phase" \
            --ready-file "$TMP/ready.$phase.$i" >"$TMP/c$phase.$i.out" 2>"$TMP/c$phase.$i.err" </dev/null &
        CPIDS+=($!)
    done
    deadline=$(($(date +%s) + T * 2))
    for i in $(seq 0 $((CLIENTS - 1))); do
        while [ ! -e "$TMP/ready.$phase.$i" ]; do
            if [ "$(date +%s)" -ge "$deadline" ] || ! kill -0 "${CPIDS[$i]}" 2>/dev/null; then
                fail "phase $phase: client $i did not make its region: $(head -c 300 "$TMP/c$phase.$i.err")"
                return 1
            fi
            sleep 0.05
        done
    done
}

# reap PHASE: wait for every client (each under its own deadline); record exit codes.
reap() {
    local phase=$1 rc
    for i in $(seq 0 $((CLIENTS - 1))); do
        wait "${CPIDS[$i]}"
        rc=$?
        echo "$rc" >"$TMP/c$phase.$i.rc"
        case $rc in
        0) ;;
        3) fail "phase $phase: client $i read wrong bytes: $(grep -m3 'WRONG' "$TMP/c$phase.$i.err")" ;;
        124 | 137) fail "phase $phase: client $i hung: killed at its deadline" ;;
        *) fail "phase $phase: client $i exited $rc: $(tail -3 "$TMP/c$phase.$i.err")" ;;
        esac
        [ -s "$TMP/c$phase.$i.out" ] || fail "phase $phase: client $i printed no report"
    done
    CPIDS=()
}

# --- phase 1: no faults ------------------------------------------------------
echo 1 >"$TMP/phase"
log "phase 1: $CLIENTS clients, $SECS s, no faults"
clients 1 "$SECS" || exit 1
reap 1
: >"$TMP/windows"

# --- phase 2: the same load with faults --------------------------------------
echo 2 >"$TMP/phase"
STEADY=$(((SECS + 2) / 3))
log "phase 2: $CLIENTS clients; $STEADY s, a member killed, $STEADY s, the metadata node killed, $STEADY s"
clients 2 $((SECS + 3 * HEAL_S + 60)) || exit 1
sleep "$STEADY" # load before the first fault (shapes the run; decides nothing)

# a. a member killed, declared dead, repaired around, started again.
M1_PORT=${M1##*:}
t0=$(now_ms)
kill -KILL "${DPID[m1]}"
wait "${DPID[m1]}" 2>/dev/null
log "killed member $M1 (pid ${DPID[m1]})"
H_OK=1
if until_pool "$HEAL_S" "showing $M1 dead" "$(is_dead "$M1")"; then
    t_dead=$(now_ms)
    log "  declared dead after $(((t_dead - t0))) ms"
    if until_pool "$HEAL_S" "healthy after $M1 died" "$(healthy 2)"; then
        t_repaired=$(now_ms)
        log "  every region healthy again after $(((t_repaired - t0))) ms"
    else H_OK=0; fi
else H_OK=0; fi
start m1 "127.0.0.1:$M1_PORT" --pool "$URL" || H_OK=0
until_pool "$HEAL_S" "3 live nodes after $M1 came back" "$live3" || H_OK=0
t1=$(now_ms)
log "  $M1 back (a new member) after $((t1 - t0)) ms"
echo "$t0 $t1 member" >>"$TMP/windows"
echo "member_dead_ms=$((${t_dead:-$t1} - t0)) member_repaired_ms=$((${t_repaired:-$t1} - t0)) member_back_ms=$((t1 - t0))" >"$TMP/heal.member"

if [ "$H_OK" = 1 ] && [ "$META_RESTART" = 1 ]; then
    sleep "$STEADY"
    # b. the metadata node killed and started again on the same address and directory.
    META_PORT=${META##*:}
    t0=$(now_ms)
    kill -KILL "${DPID[meta]}"
    wait "${DPID[meta]}" 2>/dev/null
    log "killed the metadata node $META (pid ${DPID[meta]})"
    if start meta "127.0.0.1:$META_PORT" --meta-dir "$META_DIR" --dead-after "$DEAD_AFTER" \
        --lease-ttl "$LEASE_TTL"; then
        t_listen=$(now_ms)
        log "  listening again after $((t_listen - t0)) ms"
        until_pool "$HEAL_S" "3 live nodes and healthy after the metadata node's restart" \
            "$live3 and $(healthy 2)" &&
            log "  3 live nodes, every region healthy after $(($(now_ms) - t0)) ms"
    fi
    t1=$(now_ms)
    echo "$t0 $t1 meta" >>"$TMP/windows"
    echo "meta_listening_ms=$((${t_listen:-$t1} - t0)) meta_healthy_ms=$((t1 - t0))" >"$TMP/heal.meta"
    sleep "$STEADY"
    if [ "$META_KIND" = etcd ]; then
        # c. etcd killed and started again on its data.
        t0=$(now_ms)
        kill -KILL "$ETCD_PID"
        wait "$ETCD_PID" 2>/dev/null
        log "killed etcd (pid $ETCD_PID)"
        sleep 1 # etcd away for a while (shapes the run; decides nothing)
        head -c $((1 << 20)) /dev/urandom >"$TMP/probe"
        if restart_etcd etcd; then
            log "  etcd answering again after $(($(now_ms) - t0)) ms"
            until_pool "$HEAL_S" "healthy after etcd's restart" "$live3 and $(healthy 2)"
            deadline=$(($(date +%s) + HEAL_S))
            until timeout "$T" "$FARPOOL" put --pool "$URL" --quiet --force "$TMP/probe" probe \
                >/dev/null 2>"$TMP/probe.err"; do
                [ "$(date +%s)" -ge "$deadline" ] && { fail "no put accepted within $HEAL_S s of etcd's restart: $(tail -2 "$TMP/probe.err")"; break; }
                sleep 0.2
            done
            log "  healthy and taking changes after $(($(now_ms) - t0)) ms"
        fi
        t1=$(now_ms)
        echo "$t0 $t1 etcd" >>"$TMP/windows"
        echo "etcd_back_ms=$((t1 - t0))" >"$TMP/heal.etcd"
        sleep "$STEADY"
    fi
else
    sleep "$STEADY"
fi
touch "$TMP/stop.2"
reap 2
echo done >"$TMP/phase"
kill "$SAMPLER" 2>/dev/null
wait "$SAMPLER" 2>/dev/null
SAMPLER=

# --- the report ----------------------------------------------------------------
"$PY" - "$TMP" "$CLIENTS" "$RSS_BOUND_KB" "$((LEASE_TTL + GRACE_S))" "$JSON_OUT" \
    "$CAP_MIB" "$RSS_MARGIN" "$SIZE_MIB" <<'EOF' >"$TMP/report.txt" 2>"$TMP/report.err"
import glob, json, os, re, sys
tmp, nclients, rss_bound, grace_s, json_out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
cap_mib, margin, size = int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8]) << 20
fails = []
windows = []
for line in open(os.path.join(tmp, "windows")):
    a, b, what = line.split()
    windows.append((int(a), int(b) + grace_s * 1000, what))
rss = {}
for line in open(os.path.join(tmp, "rss.log")):
    p = line.split()
    if len(p) != 3 or not p[2].isdigit():
        continue
    key = (p[0], p[1])
    rss[key] = max(rss.get(key, 0), int(p[2]))
err_re = re.compile(r'error t_ms=(\d+) op=(\S+) status="([^"]*)"')

def pct(hist, q):
    total = sum(hist.values())
    if total == 0:
        return 0.0
    want = max(1, int(q / 100.0 * total + 0.999999))
    seen = 0
    for b in sorted(hist):
        seen += hist[b]
        if seen >= want:
            return b / 1e3
    return 0.0

summary = {}
for phase in ("1", "2"):
    reps, hist, kinds = [], {}, {}
    lease_lost, outside, no_sweep = [], [], []
    for i in range(nclients):
        out = os.path.join(tmp, "c%s.%d.out" % (phase, i))
        try:
            rep = json.loads(open(out).read().strip().splitlines()[-1])
        except Exception:
            continue  # reap() said so
        reps.append(rep)
        if rep["sweep_bytes"] + rep["unverifiable_bytes"] < size:
            no_sweep.append(i)
        for b, c in rep["hist_ns"]:
            hist[b] = hist.get(b, 0) + c
        for k, c in rep["errors_by_kind"].items():
            kinds[k] = kinds.get(k, 0) + c
        lines = 0
        for line in open(os.path.join(tmp, "c%s.%d.err" % (phase, i)), errors="replace"):
            m = err_re.search(line)
            if m:
                lines += 1
                t = int(m.group(1))
                if phase == "1" or not any(a <= t <= b for a, b, _ in windows):
                    outside.append((t, i, "%s: %s" % (m.group(2), m.group(3))))
            if "lease" in line and "lost" in line:
                lease_lost.append("client %d: %s" % (i, line.strip()))
        if lines != rep["errors"]:
            fails.append("phase %s: client %d counted %d errors but printed %d" % (phase, i, rep["errors"], lines))
    wrong = sum(r["wrong_bytes"] for r in reps)
    if wrong:
        fails.append("phase %s: %d wrong bytes" % (phase, wrong))
    if outside:
        by = {}
        for t, i, k in outside:
            by.setdefault(k, []).append((t, i))
        end = max((b - grace_s * 1000 for a, b, _ in windows), default=0)
        fails.append("phase %s: %d errors outside the fault windows (each + %d s): %s" % (
            phase, len(outside), grace_s, "; ".join(
                "%d x '%s' from clients %s, %.1f s to %.1f s after the last fault healed" % (
                    len(v), k, sorted(set(i for _, i in v)), (min(v)[0] - end) / 1e3, (max(v)[0] - end) / 1e3)
                for k, v in sorted(by.items()))))
    if no_sweep:
        fails.append("phase %s: clients %s could not read their whole region back at the end (the final sweep)" % (phase, no_sweep))
    if lease_lost:
        fails.append("phase %s: writer leases lost: %s" % (phase, lease_lost[:3]))
    summary[phase] = {
        "clients": len(reps),
        "requests": sum(r["requests"] for r in reps),
        "reads": sum(r["reads"] for r in reps),
        "writes": sum(r["writes"] for r in reps),
        "rps": sum(r["rps"] for r in reps),
        "p50_us": pct(hist, 50), "p99_us": pct(hist, 99),
        "max_us": max((r["max_us"] for r in reps), default=0.0),
        "errors": sum(r["errors"] for r in reps), "errors_by_kind": kinds,
        "wrong_bytes": wrong,
        "verified_mib": sum(r["verified_bytes"] for r in reps) / 2**20,
        "sessions": sum(r["sessions"] for r in reps),
        "max_rss_kb": {n: rss.get((phase, n), 0) for n in ("meta", "m1", "m2")},
    }
for (ph, n), kb in sorted(rss.items()):
    if kb > rss_bound:
        fails.append("%s's RSS reached %d KiB in phase %s, over the bound %d KiB" % (n, kb, ph, rss_bound))
heal = {}
for f in glob.glob(os.path.join(tmp, "heal.*")):
    for kv in open(f).read().split():
        k, v = kv.split("=")
        heal[k] = int(v)

fmt = "%-6s %7s %9s %9s %8s %8s %9s %7s %6s  %s"
print(fmt % ("phase", "clients", "requests", "rps", "p50_us", "p99_us", "max_us", "errors", "wrong", "max RSS MiB (meta m1 m2)"))
for ph, name in (("1", "clean"), ("2", "faults")):
    s = summary[ph]
    print(fmt % (name, s["clients"], s["requests"], "%.0f" % s["rps"], "%.1f" % s["p50_us"], "%.1f" % s["p99_us"],
                 "%.0f" % s["max_us"], s["errors"], s["wrong_bytes"],
                 " ".join("%.1f" % (s["max_rss_kb"][n] / 1024) for n in ("meta", "m1", "m2"))))
for ph in ("1", "2"):
    for k, c in sorted(summary[ph]["errors_by_kind"].items()):
        print("  phase %s errors: %-40s %d" % (ph, k, c))
a, b = summary["1"], summary["2"]
ratio = lambda x, y: (x / y) if y else float("nan")
print("faults/clean: rps %.2f, p50 %.2f, p99 %.2f, max %.2f" % (
    ratio(b["rps"], a["rps"]), ratio(b["p50_us"], a["p50_us"]), ratio(b["p99_us"], a["p99_us"]), ratio(b["max_us"], a["max_us"])))
print("verified MiB read: clean %.0f, faults %.0f; sessions %d, %d" % (a["verified_mib"], b["verified_mib"], a["sessions"], b["sessions"]))
print("healing (ms from the kill): " + ", ".join("%s %d" % kv for kv in sorted(heal.items())))
print("RSS bound: %d MiB (capacity %d MiB + %d MiB)" % (rss_bound // 1024, cap_mib, margin))
if json_out:
    json.dump({"phases": summary, "heal_ms": heal, "rss_bound_kb": rss_bound, "fails": fails}, open(json_out, "w"), indent=1)
for f in fails:
    print("FAIL: " + f, file=sys.stderr)
sys.exit(1 if fails else 0)
EOF
RC=$?
cat "$TMP/report.txt"
[ -s "$TMP/report.err" ] && sed "s/^/$PROG: /" "$TMP/report.err" >&2
[ "$RC" -ne 0 ] && FAILS=$((FAILS + 1))
if [ "$FAILS" -ne 0 ]; then
    echo "$PROG: $FAILS check(s) failed" >&2
    KEEP_TMP=1
    exit 1
fi
echo "$PROG: ok: no wrong byte, every error within a fault, every client done, RSS under the bound"
exit 0
