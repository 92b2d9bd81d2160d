# SPDX-License-Identifier: MIT
# What the shell tests of the command-line programs (tests/cli_*.sh) share,
# sourced by them after they set CLI_NAME (their name) and T (seconds any one
# command may take):
#
#   $TMP          a scratch directory, removed at exit
#   PIDS          daemons started here; killed (and reaped) at exit, whatever happens
#   fail MSG, ok  count a failed / a passed check; finish ends with their summary
#   run NAME CMD  CMD under timeout $T, stdout and stderr in $TMP/NAME.{out,err};
#                 sets RC and MS (milliseconds it took)
#   expect CODE NAME CMD   run, and check the exit code; for a failure, that
#                 stderr says why and stdout is empty
#   stderr_has NAME REGEX  NAME's stderr matches REGEX (grep -E, no case)
#   stderr_lacks NAME REGEX  ... does not match REGEX (grep -E)
#   same_out A B  runs A and B printed the same on stdout (and something)
#   stat_of NAME FIELD  the preload shim's --stats counter FIELD on NAME's
#                 stderr (0 if none)
#   start_farpoold NAME ARGS  farpoold ARGS --port-file $TMP/NAME.port in the
#                 background, its log in $TMP/NAME.log; sets PID and ADDR;
#                 returns 1 (a failed check) if it does not listen within $T s;
#                 inside the network namespace $NODE_NETNS if that is set
#   start_pool ARGS  a pool on 127.0.0.1: a metadata node (meta, itself the
#                 first member, --dead-after 3) and two members (m1, m2), each
#                 given ARGS; waits for 3 live nodes. Sets URL, META_PID,
#                 M1_PID, M2_PID; needs $FARPOOLD, $FARPOOL and python3
#
# Daemons are NOT run under timeout(1): it resumes a stopped child with
# SIGCONT, which undoes the ptrace stop that LeakSanitizer needs at exit, and
# an ASan farpoold then spins for ever. They run under `setpriv --pdeathsig
# KILL` instead, so they die with the script.

TMP=$(mktemp -d "${TMPDIR:-/tmp}/$CLI_NAME.XXXXXX")
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    rm -rf "$TMP"
}
trap cleanup EXIT

FAILS=0
CHECKS=0
fail() {
    echo "FAIL: $*" >&2
    FAILS=$((FAILS + 1))
}
ok() {
    CHECKS=$((CHECKS + 1))
}

run() {
    local name=$1 t0
    shift
    t0=$(date +%s%N)
    timeout "$T" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" </dev/null
    RC=$?
    MS=$((($(date +%s%N) - t0) / 1000000))
}

expect() {
    local code=$1 name=$2
    shift 2
    run "$name" "$@"
    if [ "$RC" -ne "$code" ]; then
        fail "$name: '$*' exited $RC, expected $code"
        sed 's/^/    stderr: /' "$TMP/$name.err" | head -5 >&2
        return 1
    fi
    if [ "$code" -ne 0 ]; then
        if [ ! -s "$TMP/$name.err" ]; then
            fail "$name: exit $code without a message on stderr"
            return 1
        fi
        if [ -s "$TMP/$name.out" ]; then
            fail "$name: a failure printed on stdout: $(head -c 200 "$TMP/$name.out")"
            return 1
        fi
    fi
    ok
}

stderr_has() {
    if grep -Eqi -- "$2" "$TMP/$1.err"; then ok; else
        fail "$1: stderr does not match /$2/: $(head -c 300 "$TMP/$1.err")"
    fi
}

stderr_lacks() {
    if grep -Eq -- "$2" "$TMP/$1.err"; then
        fail "$1: stderr matches /$2/: $(grep -E -- "$2" "$TMP/$1.err" | head -3)"
    else ok; fi
}

same_out() {
    if [ -s "$TMP/$1.out" ] && cmp -s "$TMP/$1.out" "$TMP/$2.out"; then ok; else
        fail "$2 printed other than $1: $(head -c 300 "$TMP/$2.out") vs $(head -c 300 "$TMP/$1.out")"
    fi
}

stat_of() {
    sed -n "s/.*farpool-preload: stats: .* $2 \([0-9]*\).*/\1/p" "$TMP/$1.err" | head -1 |
        grep . || echo 0
}

start_farpoold() {
    local name=$1 ns=()
    shift
    [ -n "${NODE_NETNS:-}" ] && ns=(ip netns exec "$NODE_NETNS")
    rm -f "$TMP/$name.port"
    setpriv --pdeathsig KILL "${ns[@]}" "$FARPOOLD" --port-file "$TMP/$name.port" "$@" \
        >"$TMP/$name.log" 2>&1 </dev/null &
    PID=$!
    PIDS+=("$PID")
    for _ in $(seq 1 $((T * 20))); do
        if [ -s "$TMP/$name.port" ] && grep -q $'\n' "$TMP/$name.port" 2>/dev/null; then
            ADDR=$(head -1 "$TMP/$name.port")
            return 0
        fi
        if ! kill -0 "$PID" 2>/dev/null; then
            fail "$name: farpoold $* exited before listening"
            sed 's/^/    log: /' "$TMP/$name.log" >&2
            return 1
        fi
        sleep 0.05
    done
    fail "$name: farpoold $* wrote no port file in ${T}s"
    return 1
}

start_pool() {
    local deadline
    start_farpoold meta --listen 127.0.0.1:0 --meta-dir "$TMP/meta" --dead-after 3 "$@" || return 1
    META_PID=$PID
    URL="farpool://$ADDR"
    start_farpoold m1 --listen 127.0.0.1:0 --pool "$URL" "$@" || return 1
    M1_PID=$PID
    start_farpoold m2 --listen 127.0.0.1:0 --pool "$URL" "$@" || return 1
    M2_PID=$PID
    deadline=$(($(date +%s) + 20))
    for _ in $(seq 1 200); do
        if timeout "$T" "$FARPOOL" status --pool "$URL" --json 2>/dev/null |
            python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if len(d["nodes"]) == 3 and all(n["state"] == "live" for n in d["nodes"]) else 1)'; then
            return 0
        fi
        [ "$(date +%s)" -ge "$deadline" ] && break
        sleep 0.1
    done
    fail "the pool at $URL has no 3 live nodes in 20 s"
    return 1
}

finish() {
    if [ "$FAILS" -ne 0 ]; then
        echo "$CLI_NAME: $FAILS of $((CHECKS + FAILS)) checks failed" >&2
        exit 1
    fi
    echo "$CLI_NAME: all $CHECKS checks passed"
    exit 0
}
