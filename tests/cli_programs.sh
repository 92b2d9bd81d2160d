#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Real, unmodified programs under `farpool run --map` (docs/preload.md), each
# run plainly and served from a real pool on loopback (a metadata node and two
# members) with a cache smaller than its file: the same output, and the
# shim's --stats show the bytes came from the pool.
#
#   forksum   tests/preload/forksum.c: maps a file, forks 4 children without
#             exec, each sums its quarter of the mapping; the parent sums it all
#   torch     Debian's python3-torch: torch.from_numpy of an np.memmap'ed
#             float32 weight matrix (no copy), a matmul with a seeded input
#   sqlite3   Debian's sqlite3 CLI, -readonly with PRAGMA mmap_size over the
#             file: aggregates over a table and lookups through its index
#   lost      a member killed while forksum runs on a region of one copy: the
#             program dies by SIGBUS with the library's line, printing nothing;
#             then forksum on a region of two copies, the member still gone:
#             its children map the region again and read the copies left
#
# What cli_run.sh covers (globs that match nothing, stale and missing
# regions, a static program, a member killed with 2 copies, numpy's memmap)
# is not repeated here.
#
# Usage: bash cli_programs.sh FARPOOLD FARPOOL_CLI; CTest also passes
# FP_FORKSUM (the forksum program) and FP_SANITIZED=1 for a sanitized build,
# whose shim cannot be preloaded into other programs: then the test skips.
# A program that is not installed (python3-torch, sqlite3: scripts/install-deps.sh)
# is said and its part skipped. Every command runs under timeout(1); daemons
# use ephemeral ports, run under `setpriv --pdeathsig KILL` and are killed on
# exit whatever happens.
set -u

FARPOOLD=${1:?usage: $0 FARPOOLD FARPOOL_CLI}
FARPOOL=${2:?usage: $0 FARPOOLD FARPOOL_CLI}
FORKSUM=${FP_FORKSUM:-$(dirname "$FARPOOL")/tests/forksum}
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3 # Debian's, whose python3-torch and python3-numpy are installed
T=60                # seconds any one command may take

for bin in "$FARPOOLD" "$FARPOOL" "$FORKSUM" "$PY"; do
    [ -x "$bin" ] || { echo "SKIP: $bin is not executable"; exit 77; }
done
for tool in timeout setpriv cmp python3; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool not found"; exit 77; }
done
if [ "${FP_SANITIZED:-0}" = 1 ]; then
    echo "SKIP: a sanitized build: its shim cannot be preloaded into other programs" \
        "(run cli_programs in a plain build)"
    exit 77
fi

CLI_NAME=cli_programs
. "$HERE/common/cli.sh"
unset FARPOOL_SECRET_FILE FARPOOL_LOG_LEVEL FARPOOL_POOL LD_PRELOAD
unset FARPOOL_PRELOAD_MAP FARPOOL_PRELOAD_CACHE FARPOOL_PRELOAD_STATS FARPOOL_PRELOAD_QUIET
export XDG_CACHE_HOME=$TMP/xdg

# served NAME REGION MIN: NAME's --stats show region REGION served, MIN bytes or more
# of it fetched from the pool, no fetch errors, and the shim said nothing else.
served() {
    local name=$1 region=$2 min=$3 got
    stderr_has "$name" "farpool-preload: stats: region $region "
    got=$(stat_of "$name" bytes_in)
    [ "$got" -ge "$min" ] && ok || fail "$name: $got bytes from the pool, expected $min or more"
    [ "$(stat_of "$name" fetch_errors)" -eq 0 ] && ok || fail "$name: fetch errors"
    [ "$(grep -c 'farpool-preload' "$TMP/$name.err")" -eq 1 ] && ok ||
        fail "$name: the shim said more than its stats: $(grep farpool-preload "$TMP/$name.err" | head -3)"
}

# put FILE NAME ARGS...: `farpool put` FILE into the pool as NAME; exit on failure.
put() {
    expect 0 "put_$2" "$FARPOOL" put "$1" "$2" --quiet "${P[@]}" "${@:3}" || exit 1
}

start_pool --slab-size 2M --capacity 512M || exit 1
P=(--pool "$URL")
RUN=("$FARPOOL" run "${P[@]}" --stats)
mkdir -p "$TMP/d"

# --- forksum: 4 children of fork() without exec, each reading its quarter ---------------
FORKDATA=$TMP/d/fork.bin
expect 0 fork_make "$PY" -c 'import random, sys; sys.stdout.buffer.write(random.Random(3).randbytes(64 << 20))' ||
    exit 1
mv "$TMP/fork_make.out" "$FORKDATA"
put "$FORKDATA" fork.bin --replicas 2
expect 0 fork_plain "$FORKSUM" "$FORKDATA"
grep -q '^children ok$' "$TMP/fork_plain.out" && ok || fail "fork_plain: $(cat "$TMP/fork_plain.out")"
expect 0 fork_served "${RUN[@]}" --cache 16M --map '*/fork.bin' -- "$FORKSUM" "$FORKDATA" &&
    same_out fork_plain fork_served
served fork_served fork.bin $((64 << 20))
stderr_lacks fork_served "forksum:"

# --- python3-torch: a matmul over an np.memmap'ed weight matrix ------------------------
if "$PY" -c 'import numpy, torch' 2>/dev/null; then
    W=$TMP/d/weights.f32
    MM=("$PY" "$HERE/preload/matmul.py")
    SHAPE=(4096 4096 20) # 64 MiB of float32, the seed
    expect 0 torch_make "${MM[@]}" make "$W" "${SHAPE[@]}" || exit 1
    put "$W" weights.f32 --replicas 2
    expect 0 torch_plain "${MM[@]}" run "$W" "${SHAPE[@]}"
    expect 0 torch_served "${RUN[@]}" --cache 16M --map '*/weights.f32' -- \
        "${MM[@]}" run "$W" "${SHAPE[@]}" && same_out torch_plain torch_served
    served torch_served weights.f32 $((64 << 20))
    stderr_lacks torch_served "Warning|Traceback"
else
    echo "note: python3-torch is not installed (scripts/install-deps.sh installs it): the torch case is skipped"
fi

# --- sqlite3: a read-only database, mapped whole (PRAGMA mmap_size) ---------------------
if command -v sqlite3 >/dev/null && "$PY" -c 'import sqlite3' 2>/dev/null; then
    DB=$TMP/d/rows.db
    expect 0 db_make "$PY" "$HERE/preload/mkdb.py" "$DB" 800000 21 || exit 1
    DBSIZE=$(stat -c %s "$DB")
    put "$DB" rows.db --replicas 2
    SQL="PRAGMA mmap_size=$((1 << 30));
SELECT count(*), sum(k), total(v), sum(length(s)), min(s), max(s) FROM t;
EXPLAIN QUERY PLAN SELECT count(*), sum(id) FROM t WHERE k BETWEEN 100000000000 AND 300000000000;
SELECT count(*), sum(id) FROM t WHERE k BETWEEN 100000000000 AND 300000000000;
EXPLAIN QUERY PLAN SELECT id, k, v, s FROM t WHERE k >= 1000000000000 ORDER BY k LIMIT 5;
SELECT id, k, v, s FROM t WHERE k >= 1000000000000 ORDER BY k LIMIT 5;
SELECT id, k, s FROM t WHERE id IN (1, 4242, 799999);"
    expect 0 db_plain sqlite3 -readonly "$DB" "$SQL"
    # mmap_size took (not capped below the file), and the lookups go through the index.
    [ "$(head -1 "$TMP/db_plain.out")" = $((1 << 30)) ] && ok ||
        fail "db_plain: PRAGMA mmap_size says $(head -1 "$TMP/db_plain.out")"
    [ "$(grep -c 'USING .*INDEX t_k' "$TMP/db_plain.out")" -eq 2 ] && ok ||
        fail "db_plain: the lookups do not use the index: $(cat "$TMP/db_plain.out")"
    expect 0 db_served "${RUN[@]}" --cache 16M --map '*/rows.db' -- sqlite3 -readonly "$DB" "$SQL" &&
        same_out db_plain db_served
    # The table's pages are all read; the index's only in part.
    served db_served rows.db $((DBSIZE / 2))
else
    echo "note: sqlite3 is not installed (scripts/install-deps.sh installs it): the sqlite3 case is skipped"
fi

# --- lost: a member killed while forksum runs, on a region of one copy ---------------------
# Every block has one copy; the ones on the killed member cannot be fetched: the
# access gets SIGBUS and the library says why. The program dies by SIGBUS before
# printing anything: never a sum of other bytes.
LOST=$TMP/d/lost.bin
head -c $((32 << 20)) "$FORKDATA" >"$LOST"
m1_used() {
    timeout "$T" "$FARPOOL" status "${P[@]}" --json |
        python3 -c 'import json, sys; print(sum(n["used"] for n in json.load(sys.stdin)["nodes"] if n["address"] == sys.argv[1]))' \
            "$(head -1 "$TMP/m1.port")"
}
USED0=$(m1_used)
put "$LOST" lost.bin --replicas 1
USED1=$(m1_used)
# The member to kill holds some of the region (the placement balances the members' use).
if [ -n "$USED0" ] && [ -n "$USED1" ] && [ "$USED1" -gt "$USED0" ]; then
    ok
    WAIT=$TMP/go
    # (in a subshell, whose "Bus error" goes to /dev/null, the program's lines to lost.err)
    (
        timeout "$T" "${RUN[@]}" --cache 8M --map '*/lost.bin' -- "$FORKSUM" "$LOST" "$WAIT" \
            >"$TMP/lost.out" 2>"$TMP/lost.err" </dev/null
        exit $?
    ) 2>/dev/null &
    KPID=$!
    for _ in $(seq 1 $((T * 20))); do
        [ -e "$WAIT.ready" ] && break
        kill -0 "$KPID" 2>/dev/null || break
        sleep 0.05
    done
    [ -e "$WAIT.ready" ] && ok || fail "lost: forksum did not start: $(head -c 300 "$TMP/lost.err")"
    kill -KILL "$M1_PID"
    wait "$M1_PID" 2>/dev/null
    touch "$WAIT"
    wait "$KPID"
    RC=$?
    [ "$RC" -eq $((128 + $(kill -l BUS))) ] && ok ||
        fail "lost: forksum exited $RC, not by SIGBUS: $(head -c 600 "$TMP/lost.err")"
    [ ! -s "$TMP/lost.out" ] && ok || fail "lost: forksum printed $(head -c 300 "$TMP/lost.out")"
    stderr_has lost "error: region lost.bin: cannot fetch block .* accesses to it get SIGBUS"
else
    fail "lost: the member to kill holds none of lost.bin (used $USED0, then $USED1)"
fi

# The same member gone, a region of two copies: the parent and each child of fork()
# (a mapping of its own, made again at fork) read the copies left; nothing is said
# but the library's lines about the member it cannot reach.
expect 0 fork_after_loss "${RUN[@]}" --cache 16M --map '*/fork.bin' -- "$FORKSUM" "$FORKDATA" &&
    same_out fork_plain fork_after_loss
[ "$(stat_of fork_after_loss fetch_errors)" -eq 0 ] && ok || fail "fork_after_loss: fetch errors"
stderr_lacks fork_after_loss "forksum:|SIGBUS|cannot map"

finish
