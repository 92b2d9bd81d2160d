#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The pool commands of the farpool tool, as farpool(1) describes them, against
# a real pool on loopback: a metadata node (farpoold --meta-dir, itself the
# first member) and two members (farpoold --pool). put, ls, get, cat, verify,
# rm, status --pool and node drain; --force and a put over a taken name; a put
# interrupted by SIGINT and one killed with SIGKILL leave no region; failed
# gets leave no file; --json output parses; bad usage exits 2.
#
# Usage: bash cli_pool.sh FARPOOLD FARPOOL_CLI
# Every command runs under timeout(1); daemons use ephemeral ports and are
# killed on exit whatever happens. Daemons are NOT run under timeout(1): it
# resumes a stopped child with SIGCONT, which undoes the ptrace stop that
# LeakSanitizer needs at exit, and an ASan farpoold then spins for ever. They
# run under `setpriv --pdeathsig KILL` instead, so they die with this script.
set -u

FARPOOLD=${1:?usage: $0 FARPOOLD FARPOOL_CLI}
FARPOOL=${2:?usage: $0 FARPOOLD FARPOOL_CLI}
T=30        # seconds any one command may take
T_BIG=120   # ... one that moves the 200 MiB file
LEASE=2     # the metadata node's --lease-ttl: how long a killed put's region lingers
SLAB=2M

for bin in "$FARPOOLD" "$FARPOOL"; do
    [ -x "$bin" ] || { echo "SKIP: $bin is not executable"; exit 77; }
done
for tool in timeout python3 cmp setpriv; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool not found"; exit 77; }
done

CLI_NAME=cli_pool
. "$(dirname "$0")/common/cli.sh"

# The tool reads these; start from a clean environment.
unset FARPOOL_SECRET_FILE FARPOOL_LOG_LEVEL FARPOOL_POOL

# json_ok NAME: the stdout of NAME is valid JSON.
json_ok() {
    if python3 -m json.tool "$TMP/$1.out" >/dev/null 2>"$TMP/$1.json_err"; then ok; else
        fail "$1: stdout is not JSON ($(head -c 200 "$TMP/$1.json_err")): $(head -c 300 "$TMP/$1.out")"
    fi
}

# py NAME EXPR: evaluate the Python expression EXPR with d = the JSON on NAME's stdout; print it.
py() {
    python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
        "$TMP/$1.out" "$2" 2>/dev/null
}

# check NAME EXPR WHAT: the Python expression EXPR over NAME's JSON is True.
check() {
    if [ "$(py "$1" "$2")" = "True" ]; then ok; else
        fail "$1: not $3 ($2): $(head -c 400 "$TMP/$1.out")"
    fi
}

# until_true SECONDS NAME EXPR CMD...: rerun CMD (JSON on stdout) until EXPR holds; 1 at the deadline.
until_true() {
    local secs=$1 name=$2 expr=$3 deadline
    shift 3
    deadline=$(($(date +%s) + secs))
    while :; do
        run "$name" "$@"
        if [ "$RC" -eq 0 ] && [ "$(py "$name" "$expr")" = "True" ]; then
            return 0
        fi
        [ "$(date +%s)" -ge "$deadline" ] && return 1
        sleep 0.2
    done
}

# start NAME ARGS...: farpoold on 127.0.0.1, an ephemeral port (common/cli.sh); sets $PID, $ADDR.
start() {
    local name=$1
    shift
    start_farpoold "$name" --listen 127.0.0.1:0 "$@"
}

# The files: 20 MiB and another 20 MiB of random bytes, 200 MiB for the interrupted puts, empty.
head -c $((20 << 20)) /dev/urandom >"$TMP/data.bin"
head -c $((20 << 20 | 12345)) /dev/urandom >"$TMP/data2.bin"
head -c $((200 << 20)) /dev/urandom >"$TMP/big.bin"
: >"$TMP/empty.bin"

# --- bad usage: exit 2, before any pool is needed ---------------------------
expect 2 no_pool "$FARPOOL" ls && stderr_has no_pool "FARPOOL_POOL|--pool"
expect 2 no_pool_put "$FARPOOL" put "$TMP/data.bin" data && stderr_has no_pool_put "pool"
expect 2 bad_url "$FARPOOL" ls --pool 'etcd://127.0.0.1:1' && stderr_has bad_url "pool URL"
expect 2 junk_url "$FARPOOL" ls --pool 'farpool://' && stderr_has junk_url "pool URL"
P=(--pool farpool://127.0.0.1:1) # never reached: usage is checked first
expect 2 put_no_name "$FARPOOL" put "$TMP/data.bin" "${P[@]}" && stderr_has put_no_name "NAME"
expect 2 put_bad_rate "$FARPOOL" put "$TMP/data.bin" x --rate 0 "${P[@]}" && stderr_has put_bad_rate "rate"
expect 2 put_extra "$FARPOOL" put "$TMP/data.bin" a b "${P[@]}"
expect 2 put_bad_option "$FARPOOL" put --bogus "$TMP/data.bin" data "${P[@]}"
expect 2 put_bad_granule "$FARPOOL" put "$TMP/data.bin" data --granule 3K "${P[@]}" &&
    stderr_has put_bad_granule "granule"
expect 2 put_granule_junk "$FARPOOL" put "$TMP/data.bin" data --granule lots "${P[@]}"
expect 2 put_granule_4m "$FARPOOL" put "$TMP/data.bin" data --granule 4M "${P[@]}"
expect 2 put_bad_replicas "$FARPOOL" put "$TMP/data.bin" data --replicas 0 "${P[@]}" &&
    stderr_has put_bad_replicas "replicas"
expect 2 put_replicas_5 "$FARPOOL" put "$TMP/data.bin" data --replicas 5 "${P[@]}"
expect 2 put_bad_name "$FARPOOL" put "$TMP/data.bin" 'bad/name' "${P[@]}" &&
    stderr_has put_bad_name "name"
expect 2 get_no_file "$FARPOOL" get data "${P[@]}" && stderr_has get_no_file "FILE"
expect 2 cat_no_name "$FARPOOL" cat "${P[@]}"
expect 2 verify_no_name "$FARPOOL" verify "${P[@]}"
expect 2 rm_no_name "$FARPOOL" rm "${P[@]}"
expect 2 rm_bad_name "$FARPOOL" rm 'a b' "${P[@]}"
expect 2 ls_extra "$FARPOOL" ls extra "${P[@]}"
expect 2 node_no_sub "$FARPOOL" node "${P[@]}"
expect 2 node_bad_sub "$FARPOOL" node fill 127.0.0.1:1 "${P[@]}"
expect 2 drain_no_addr "$FARPOOL" node drain "${P[@]}"
expect 2 status_two "$FARPOOL" status --pool farpool://127.0.0.1:1 --clients
for cmd in put get cat verify ls rm node; do
    expect 0 "help_$cmd" "$FARPOOL" "$cmd" --help
done
expect 0 help "$FARPOOL" --help
for cmd in put get cat verify ls rm status "node drain"; do
    grep -q "  $cmd" "$TMP/help.out" && ok || fail "farpool --help does not list '$cmd'"
done

# --- the pool: a metadata node and two members ------------------------------
# FP_TEST_META=etcd: the same tests with the pool's records in a real etcd
# (the metadata node's --meta-dir and everyone's --pool are its etcd:// URL).
POOL_ARGS=(--slab-size "$SLAB" --capacity 256M)
if [ "${FP_TEST_META:-sqlite}" = etcd ]; then
    . "$(dirname "$0")/common/etcd.sh"
    start_etcd etcd || exit 1
    META_DIR=$ETCD_URL
else
    META_DIR=$TMP/meta
fi
start meta --meta-dir "$META_DIR" --lease-ttl "$LEASE" --dead-after 3 "${POOL_ARGS[@]}" || exit 1
META=$ADDR
if [ "${FP_TEST_META:-sqlite}" = etcd ]; then URL=$ETCD_URL; else URL="farpool://$META"; fi
start m1 --pool "$URL" "${POOL_ARGS[@]}" || exit 1
M1=$ADDR
start m2 --pool "$URL" "${POOL_ARGS[@]}" || exit 1
M2=$ADDR
P=(--pool "$URL")

if until_true 20 status_live \
    'len(d["nodes"]) == 3 and all(n["state"] == "live" for n in d["nodes"])' \
    "$FARPOOL" status "${P[@]}" --json; then ok; else
    fail "the pool does not show 3 live nodes within 20 s: $(head -c 600 "$TMP/status_live.out") $(head -c 300 "$TMP/status_live.err")"
    sed 's/^/    meta log: /' "$TMP/meta.log" | tail -20 >&2
    exit 1
fi
json_ok status_live
check status_live 'sorted(n["address"] for n in d["nodes"]) == sorted(["'"$META"'", "'"$M1"'", "'"$M2"'"])' \
    "the three nodes' addresses"
check status_live 'd["totals"]["capacity"] == 3 * 256 * 2**20' "a total capacity of 768 MiB"
check status_live 'd["totals"]["regions"] == 0 and d["regions"] == []' "an empty pool"
for k in address capacity used state seen_ms; do
    check status_live "all('$k' in n for n in d['nodes'])" "nodes with '$k'"
done
for k in capacity used free regions; do
    check status_live "'$k' in d['totals']" "totals with '$k'"
done
expect 0 status_human "$FARPOOL" status "${P[@]}"
[ "$(grep -cE '  live +[0-9.]+ s ago$' "$TMP/status_human.out")" -eq 3 ] && ok ||
    fail "status --pool does not show 3 live nodes: $(cat "$TMP/status_human.out")"
# $FARPOOL_POOL instead of --pool; status without --node uses it too.
FARPOOL_POOL=$URL expect 0 env_ls "$FARPOOL" ls
FARPOOL_POOL=$URL expect 0 env_status "$FARPOOL" status --json && json_ok env_status
# --node and --clients still work beside --pool.
expect 0 status_node "$FARPOOL" status --node "$M1" --json && json_ok status_node
expect 0 status_clients "$FARPOOL" status --clients --json && json_ok status_clients
expect 0 ls_empty_json "$FARPOOL" ls "${P[@]}" --json && json_ok ls_empty_json

# --- put, ls, get, cat, verify -----------------------------------------------
expect 0 put "$FARPOOL" put "$TMP/data.bin" data "${P[@]}"
grep -q "data" "$TMP/put.out" && ok || fail "put printed no summary: $(cat "$TMP/put.out")"
[ ! -s "$TMP/put.err" ] && ok || fail "put wrote on a stderr that is no terminal: $(head -c 300 "$TMP/put.err")"
expect 0 put_quiet "$FARPOOL" put "$TMP/data.bin" data.q --quiet --replicas 1 --granule 2M "${P[@]}"
[ ! -s "$TMP/put_quiet.out" ] && ok || fail "put --quiet printed: $(cat "$TMP/put_quiet.out")"

expect 0 ls_json "$FARPOOL" ls "${P[@]}" --json && json_ok ls_json
SUM=$(python3 -c 'import hashlib, sys; print(hashlib.blake2b(open(sys.argv[1], "rb").read(), digest_size=32).hexdigest())' "$TMP/data.bin")
check ls_json '[r["name"] for r in d] == ["data", "data.q"]' "the two regions, in name order"
check ls_json 'd[0]["size"] == 20 * 2**20 and d[0]["replicas"] == 2 and d[0]["health"] == "healthy"' \
    "data: 20 MiB, 2 replicas, healthy"
check ls_json 'd[0]["checksum"] == "'"$SUM"'"' "data's checksum the BLAKE2b-256 of the file"
check ls_json 'd[1]["replicas"] == 1 and d[1]["granule"] == 2 * 2**20' "data.q: 1 replica of 2 MiB granule"
check ls_json 'all(r["state"] == "ready" and r["created_ms"] > 0 for r in d)' "ready regions with a creation time"
expect 0 ls "$FARPOOL" ls "${P[@]}"
grep -Eq "^data +20\.0 MiB +64K +2 +healthy +${SUM:0:12} " "$TMP/ls.out" && ok ||
    fail "ls does not show data as 20 MiB, 64K, 2 replicas, healthy, ${SUM:0:12}: $(cat "$TMP/ls.out")"
expect 0 status_regions "$FARPOOL" status "${P[@]}" --json && json_ok status_regions
check status_regions 'd["totals"]["regions"] == 2 and d["totals"]["used"] >= 3 * 20 * 2**20' \
    "2 regions holding at least 3 x 20 MiB"

expect 0 get "$FARPOOL" get data "$TMP/out.bin" "${P[@]}"
cmp -s "$TMP/data.bin" "$TMP/out.bin" && ok || fail "get: $TMP/out.bin differs from what was put"
ls -a "$TMP" | grep -q '\.farpool-' && fail "get left a temporary file: $(ls -a "$TMP")" || ok
mkdir "$TMP/dir"
expect 0 get_dir "$FARPOOL" get data.q "$TMP/dir" "${P[@]}" -q
cmp -s "$TMP/data.bin" "$TMP/dir/data.q" && ok || fail "get into a directory: no identical DIR/NAME"
timeout "$T" "$FARPOOL" cat data "${P[@]}" 2>"$TMP/cat.err" | cmp -s - "$TMP/data.bin" && ok ||
    fail "cat | cmp: differs ($(head -c 300 "$TMP/cat.err"))"
expect 0 verify "$FARPOOL" verify data "${P[@]}"
[ "$(grep -c '^copy .* ok' "$TMP/verify.out")" -eq 2 ] && tail -1 "$TMP/verify.out" | grep -qx ok && ok ||
    fail "verify does not say ok for 2 copies: $(cat "$TMP/verify.out")"
expect 0 verify_json "$FARPOOL" verify data "${P[@]}" --json && json_ok verify_json
check verify_json 'd["ok"] is True and [c["status"] for c in d["copies"]] == ["ok", "ok"]' "2 copies ok"
check verify_json 'all(c["checksum"] == "'"$SUM"'" and c["fallback_slabs"] == 0 for c in d["copies"])' \
    "each copy hashing to the stored checksum, none from another"
expect 0 verify_q "$FARPOOL" verify data.q "${P[@]}" --json && check verify_q 'len(d["copies"]) == 1' "1 copy"

# --- failures ------------------------------------------------------------------
expect 1 put_missing "$FARPOOL" put "$TMP/no-such-file" x "${P[@]}" && stderr_has put_missing "no-such-file"
expect 1 put_empty "$FARPOOL" put "$TMP/empty.bin" empty "${P[@]}" && stderr_has put_empty "empty"
expect 1 put_dir "$FARPOOL" put "$TMP/dir" x "${P[@]}" && stderr_has put_dir "regular file"
echo old >"$TMP/keep.txt"
expect 1 get_missing "$FARPOOL" get nothing-here "$TMP/keep.txt" "${P[@]}" && stderr_has get_missing "nothing-here"
[ "$(cat "$TMP/keep.txt")" = old ] && ok || fail "a failed get changed the existing FILE"
expect 1 get_missing_new "$FARPOOL" get nothing-here "$TMP/new.bin" "${P[@]}"
[ ! -e "$TMP/new.bin" ] && ok || fail "a failed get left FILE"
expect 1 get_no_dir "$FARPOOL" get data "$TMP/no/such/dir/f" "${P[@]}"
expect 1 cat_missing "$FARPOOL" cat nothing-here "${P[@]}"
expect 1 verify_missing "$FARPOOL" verify nothing-here "${P[@]}"
expect 1 rm_missing "$FARPOOL" rm nothing-here "${P[@]}" && stderr_has rm_missing "nothing-here"
expect 1 unreachable "$FARPOOL" ls --pool farpool://127.0.0.1:1 && stderr_has unreachable "127.0.0.1:1"
expect 1 drain_unknown "$FARPOOL" node drain 127.0.0.1:1 --no-wait "${P[@]}"

# A put over a taken name fails and keeps the old region; --force replaces it.
expect 1 put_taken "$FARPOOL" put "$TMP/data2.bin" data "${P[@]}" && stderr_has put_taken "exists|--force"
expect 0 get_kept "$FARPOOL" get data "$TMP/kept.bin" "${P[@]}"
cmp -s "$TMP/data.bin" "$TMP/kept.bin" && ok || fail "a refused put changed the region"
expect 0 put_force "$FARPOOL" put "$TMP/data2.bin" data --force "${P[@]}"
grep -q "replaced" "$TMP/put_force.out" && ok || fail "put --force does not say it replaced: $(cat "$TMP/put_force.out")"
expect 0 get_forced "$FARPOOL" get data "$TMP/out.bin" "${P[@]}"
cmp -s "$TMP/data2.bin" "$TMP/out.bin" && ok || fail "get after put --force: not the new file"
expect 0 ls_forced "$FARPOOL" ls "${P[@]}" --json
check ls_forced '[r["name"] for r in d].count("data") == 1 and [r for r in d if r["name"] == "data"][0]["size"] == 20 * 2**20 + 12345' \
    "one region data, of the new size"
expect 0 put_force_new "$FARPOOL" put "$TMP/data.bin" fresh --force "${P[@]}" # --force with nothing to replace

# --- interrupted puts leave nothing ---------------------------------------------
expect 0 used_before "$FARPOOL" status "${P[@]}" --json
USED_BEFORE=$(py used_before 'd["totals"]["used"]')

# interrupt SIGNAL NAME: start a put of big.bin as NAME, send SIGNAL once its
# unpublished region exists; sets $RC to the put's exit status. Not under
# timeout(1), which cannot pass SIGKILL on: a deadline of its own instead.
interrupt() {
    local sig=$1 name=$2 pid deadline
    # --rate: 200 MiB take 10 s however fast the machine, so the put is still
    # under way when the signal comes (unpaced, a fast one ended first).
    "$FARPOOL" put "$TMP/big.bin" "$name" "${P[@]}" --rate 20M >"$TMP/$name.out" 2>"$TMP/$name.err" </dev/null &
    pid=$!
    PIDS+=("$pid")
    deadline=$(($(date +%s) + T))
    while kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do
        run "${name}_ls" "$FARPOOL" ls --all --json "${P[@]}"
        [ "$(py "${name}_ls" '"'"$name"'" in [r["name"] for r in d if r["state"] == "pending"]')" = True ] && break
        sleep 0.05
    done
    sleep 0.2 # some bytes copied, the signal handler installed
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid"
        RC=$?
        fail "$name: the put of 200 MiB ended (exit $RC) before it could be interrupted: $(head -c 300 "$TMP/$name.err")"
        return 1
    fi
    [ "$(py "${name}_ls" '"'"$name"'" in [r["name"] for r in d if r["state"] == "pending"]')" = True ] && ok ||
        fail "$name: ls --all never showed the put's region as pending: $(head -c 300 "$TMP/${name}_ls.out")"
    # stderr to /dev/null: no "Killed" from bash when it reaps the put.
    {
        kill "-$sig" "$pid"
        deadline=$(($(date +%s) + T))
        while kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do
            sleep 0.05
        done
        if kill -0 "$pid" 2>/dev/null; then
            fail "$name: the put still runs ${T}s after SIG$sig" 2>&3
            kill -KILL "$pid"
        fi
        wait "$pid"
        RC=$?
    } 3>&2 2>/dev/null
}

# One after the other: both at once would not fit (2 x 2 x 200 MiB of 768 MiB).
for sig in INT KILL; do
    name=$([ "$sig" = INT ] && echo sigint || echo killed)
    if interrupt "$sig" "$name"; then
        if [ "$sig" = INT ]; then
            [ "$RC" -eq 1 ] && ok || fail "put interrupted by SIGINT exited $RC, expected 1"
            stderr_has sigint "interrupt"
        else
            [ "$RC" -eq 137 ] && ok || fail "put killed exited $RC, expected 137"
        fi
    fi
    expect 0 "${name}_gone" "$FARPOOL" ls "${P[@]}" --json
    check "${name}_gone" '"'"$name"'" not in [r["name"] for r in d]' "without the interrupted put's region"
    # Its unpublished region goes once its writer is gone: at once after SIGINT
    # (closed), once its lease ($LEASE s) runs out after SIGKILL.
    if until_true $((LEASE * 5 + 10)) "${name}_dropped" '"'"$name"'" not in [r["name"] for r in d]' \
        "$FARPOOL" ls --all --json "${P[@]}"; then ok; else
        fail "$name: the pool still holds the interrupted put's region: $(head -c 400 "$TMP/${name}_dropped.out")"
    fi
    expect 1 "${name}_get" "$FARPOOL" get "$name" "$TMP/$name.bin" "${P[@]}"
    [ ! -e "$TMP/$name.bin" ] && ok || fail "$name: a failed get left FILE"
done
# ...and so do their slabs, once the members' heartbeats say so.
if until_true 20 used_after 'd["totals"]["used"] <= '"$USED_BEFORE" "$FARPOOL" status "${P[@]}" --json; then ok; else
    fail "the interrupted puts' slabs were not freed: used $(py used_after 'd["totals"]["used"]') bytes, $USED_BEFORE before"
fi

# --- rm --------------------------------------------------------------------------
for name in data data.q fresh; do
    expect 0 "rm_$name" "$FARPOOL" rm "$name" "${P[@]}"
done
expect 0 ls_after_rm "$FARPOOL" ls "${P[@]}" --json && check ls_after_rm 'd == []' "an empty pool after rm"
expect 1 get_removed "$FARPOOL" get data "$TMP/removed.bin" "${P[@]}"
expect 1 rm_again "$FARPOOL" rm data "${P[@]}"

# --- a complete 200 MiB put, then drain a member: its 2 x 200 MiB fit the other two -------
T=$T_BIG expect 0 put_big "$FARPOOL" put "$TMP/big.bin" big "${P[@]}" --granule 2M
T=$T_BIG expect 0 verify_big "$FARPOOL" verify big "${P[@]}" --quiet
T=$T_BIG expect 0 drain "$FARPOOL" node drain "$M2" "${P[@]}"
grep -q "drained" "$TMP/drain.out" && ok || fail "drain does not say the member is drained: $(cat "$TMP/drain.out")"
expect 0 status_drained "$FARPOOL" status "${P[@]}" --json
check status_drained 'any(n["state"] == "gone" and n["used"] == 0 for n in d["nodes"] if n["address"] == "'"$M2"'")' \
    "$M2 gone, holding nothing"
T=$T_BIG expect 0 verify_drained "$FARPOOL" verify big "${P[@]}" --json
check verify_drained 'd["ok"] is True' "big still verifying after the drain"
T=$T_BIG expect 0 get_drained "$FARPOOL" get big "$TMP/big.out" "${P[@]}"
cmp -s "$TMP/big.bin" "$TMP/big.out" && ok || fail "get after the drain: differs"
rm -f "$TMP/big.out"

expect 0 rm_big "$FARPOOL" rm big "${P[@]}"

finish
