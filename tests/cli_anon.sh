#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# `farpool run --anon-over` (docs/preload.md): anonymous memory of unmodified
# programs in private pool regions, against a real pool on loopback (a
# metadata node and two members). tests/preload/anonmix (libc only: the
# malloc family across the threshold, mmap, partial munmap, madvise DONTNEED
# and PAGEOUT, mremap, fork with and without exec) run plainly and served:
# the same output, and --stats show bytes went to and from the pool; again
# with --granule 16K; its --file mode (mremap of a served file, a writable
# MAP_PRIVATE mapping of one); numpy's np.ones of 1 GiB under --anon-over
# 64M --cache 256M (sums, a strided write and read pass) and np.memmap
# mode "c" (copy-on-write) of a served file; stress-ng --vm 1 --vm-bytes 1G
# --vm-method all --verify -t 20 (no verification failure); a program
# killed with its regions held (the pool drops them); a pool that cannot be
# reached (the kernel's memory, one line); bad usage (exit 2).
#
# Usage: bash cli_anon.sh FARPOOLD FARPOOL_CLI; CTest also passes FP_ANONMIX
# and FP_SANITIZED=1 for a sanitized build, whose shim cannot be preloaded
# into other programs: then only the usage checks run.
set -u

FARPOOLD=${1:?usage: $0 FARPOOLD FARPOOL_CLI}
FARPOOL=${2:?usage: $0 FARPOOLD FARPOOL_CLI}
ANONMIX=${FP_ANONMIX:-$(dirname "$FARPOOL")/tests/anonmix}
T=120        # seconds any one command may take
T_STRESS=300 # ... the stress-ng run (below)
LEASE=4      # the metadata node's --lease-ttl: how long a killed program's regions linger

for bin in "$FARPOOLD" "$FARPOOL" "$ANONMIX"; do
    [ -x "$bin" ] || { echo "SKIP: $bin is not executable"; exit 77; }
done
for tool in timeout setpriv cmp python3; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool not found"; exit 77; }
done

CLI_NAME=cli_anon
. "$(dirname "$0")/common/cli.sh"
unset FARPOOL_SECRET_FILE FARPOOL_LOG_LEVEL FARPOOL_POOL LD_PRELOAD
unset FARPOOL_PRELOAD_MAP FARPOOL_PRELOAD_CACHE FARPOOL_PRELOAD_STATS FARPOOL_PRELOAD_QUIET
unset FARPOOL_PRELOAD_ANON_OVER FARPOOL_PRELOAD_GRANULE
export XDG_CACHE_HOME=$TMP/xdg

stderr_lacks() {
    if grep -Eqi -- "$2" "$TMP/$1.err"; then
        fail "$1: stderr matches /$2/: $(grep -Ei -- "$2" "$TMP/$1.err" | head -3)"
    else ok; fi
}
same_out() {
    if [ -s "$TMP/$1.out" ] && cmp -s "$TMP/$1.out" "$TMP/$2.out"; then ok; else
        fail "$2 printed other than $1: $(head -c 400 "$TMP/$2.out") vs $(head -c 400 "$TMP/$1.out")"
    fi
}
# anon_stat NAME FIELD: the anonymous regions' counter FIELD on NAME's stderr (0 if none):
# the last line, the program's own (children of fork() that exit say theirs first).
anon_stat() {
    sed -n "s/.*farpool-preload: stats: anon .* $2 \([0-9]*\).*/\1/p" "$TMP/$1.err" | tail -1 |
        grep . || echo 0
}
# served NAME MIN: NAME's anonymous memory went to and from the pool (MIN bytes in at least).
served() {
    if [ "$(anon_stat "$1" bytes_in)" -ge "$2" ] && [ "$(anon_stat "$1" bytes_out)" -gt 0 ] &&
        [ "$(anon_stat "$1" fetch_errors)" -eq 0 ]; then ok; else
        fail "$1: not served (bytes_in >= $2, bytes_out > 0, no fetch error): $(grep 'stats: anon' "$TMP/$1.err" | head -2)"
    fi
}

# --- bad usage: exit 2 ----------------------------------------------------------
P=(--pool farpool://127.0.0.1:1) # never reached
expect 2 bad_anon "$FARPOOL" run --anon-over lots "${P[@]}" -- true && stderr_has bad_anon "anon-over"
expect 2 small_anon "$FARPOOL" run --anon-over 100 "${P[@]}" -- true && stderr_has small_anon "4K"
expect 2 bad_granule "$FARPOOL" run --anon-over 1M --granule 3K "${P[@]}" -- true &&
    stderr_has bad_granule "granule"
expect 2 no_map_no_anon "$FARPOOL" run "${P[@]}" -- true && stderr_has no_map_no_anon "anon-over"
expect 0 help "$FARPOOL" run --help
for opt in --map --anon-over --granule --cache --pool --readahead --stats --quiet --secret-file; do
    grep -q -- "$opt" "$TMP/help.out" && ok || fail "run --help does not show $opt"
done

if [ "${FP_SANITIZED:-0}" = 1 ]; then
    echo "note: a sanitized build: its shim cannot be preloaded into other programs;" \
        "the runs under farpool run are skipped (run cli_anon in a plain build)"
    finish
fi

# Without a pool the program runs on the kernel's memory, with one line.
expect 0 nopool "$FARPOOL" run --anon-over 8M "${P[@]}" -- "$ANONMIX" 16
grep -q '^anonmix: ok$' "$TMP/nopool.out" && ok || fail "nopool: $(tail -3 "$TMP/nopool.out")"
stderr_has nopool "cannot use the pool.*anonymous memory is the kernel's"
[ "$(grep -c farpool-preload "$TMP/nopool.err")" -eq 1 ] && ok ||
    fail "nopool: not one line: $(cat "$TMP/nopool.err")"

# --- the pool: 3 GiB, anonymous regions have one copy --------------------------------
POOL_ARGS=(--listen 127.0.0.1:0 --slab-size 2M --capacity 1536M)
start_farpoold meta "${POOL_ARGS[@]}" --meta-dir "$TMP/meta" --dead-after 3 --lease-ttl "$LEASE" ||
    finish
URL="farpool://$ADDR"
start_farpoold m1 "${POOL_ARGS[@]}" --pool "$URL" || finish
start_farpoold m2 "${POOL_ARGS[@]}" --pool "$URL" || finish
P=(--pool "$URL")
pool_json() {
    timeout "$T" "$FARPOOL" status "${P[@]}" --json 2>/dev/null | python3 -c "$1"
}
live=0
for _ in $(seq 1 200); do
    if pool_json 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if len(d["nodes"]) == 3 and all(n["state"] == "live" for n in d["nodes"]) else 1)'; then
        live=1
        break
    fi
    sleep 0.1
done
[ "$live" = 1 ] || { fail "the pool has no 3 live nodes in 20 s"; finish; }
# no_regions WHAT: the pool holds no anonymous region (anon.PID.N) within 10 lease times.
no_regions() {
    for _ in $(seq 1 $((LEASE * 100))); do
        if timeout "$T" "$FARPOOL" ls "${P[@]}" --all >"$TMP/ls.out" 2>&1 &&
            ! grep -q 'anon\.' "$TMP/ls.out"; then
            ok
            return
        fi
        sleep 0.1
    done
    fail "$1: the pool still holds anonymous regions: $(grep 'anon\.' "$TMP/ls.out" | head -3)"
}

# --- the C program: the same output plainly and served -------------------------------
RUN=("$FARPOOL" run "${P[@]}" --stats)
expect 0 plain "$ANONMIX" 32
grep -q '^anonmix: ok$' "$TMP/plain.out" && ok || fail "plain anonmix: $(grep FAIL "$TMP/plain.out")"
expect 0 mix "${RUN[@]}" --anon-over 8M --cache 16M -- "$ANONMIX" 32 && same_out plain mix
served mix $((64 << 20))
[ "$(anon_stat mix cache_peak)" -le $((16 << 20)) ] && ok ||
    fail "mix: the cache held $(anon_stat mix cache_peak) bytes, over --cache 16M"
stderr_lacks mix "error:|cannot |warn"
expect 0 mix_granule "${RUN[@]}" --anon-over 8M --cache 16M --granule 16K -- "$ANONMIX" 32 &&
    same_out plain mix_granule
served mix_granule $((64 << 20))
stderr_lacks mix_granule "error:|cannot |warn"
# Every region is gone once the programs are (the child that exec'd: when its lease runs out).
no_regions "after anonmix"

# A served file: mremap of a read-only mapping, a writable MAP_PRIVATE one (a private copy).
mkdir -p "$TMP/d"
DATA=$TMP/d/data.bin
head -c $((16 << 20)) /dev/urandom >"$DATA"
cp "$DATA" "$TMP/data.orig"
expect 0 put "$FARPOOL" put "$DATA" data.bin --replicas 2 --quiet "${P[@]}" || finish
expect 0 file_plain "$ANONMIX" --file "$DATA"
expect 0 file_served "${RUN[@]}" --map '*/data.bin' --anon-over 8M --cache 8M -- \
    "$ANONMIX" --file "$DATA" && same_out file_plain file_served
grep -q '^file: ok$' "$TMP/file_served.out" && ok || fail "file_served: $(cat "$TMP/file_served.out")"
stderr_has file_served "stats: region data.bin"
[ "$(anon_stat file_served bytes_in)" -gt 0 ] && ok ||
    fail "file_served: the private mapping was not served: $(cat "$TMP/file_served.err")"
stderr_lacks file_served "error:|cannot |warn"
cmp -s "$DATA" "$TMP/data.orig" && ok || fail "the private mapping's writes reached the file"

# --- numpy --------------------------------------------------------------------------
PY=
for py in /usr/bin/python3 python3; do
    if "$py" -c 'import numpy' 2>/dev/null; then
        PY=$py
        break
    fi
done
if [ -n "$PY" ]; then
    NP='
import numpy as np
n = (1 << 30) // 8
a = np.ones(n)
s1 = float(a.sum())
a[::4096] = 3.0
s2 = float(a[::4096].sum())
s3 = float(a.sum())
b = a[1::4096].copy()
ok = s1 == n and s2 == 3.0 * len(a[::4096]) and s3 == n + 2.0 * len(a[::4096]) and bool((b == 1.0).all())
print(s1, s2, s3, "ok" if ok else "WRONG")
'
    expect 0 np_plain "$PY" -c "$NP"
    expect 0 np_served "${RUN[@]}" --anon-over 64M --cache 256M -- "$PY" -c "$NP" &&
        same_out np_plain np_served
    grep -q ' ok$' "$TMP/np_served.out" && ok || fail "np_served: $(cat "$TMP/np_served.out")"
    served np_served $((1 << 30))
    [ "$(anon_stat np_served cache_peak)" -le $((256 << 20)) ] && ok ||
        fail "np_served: the cache held $(anon_stat np_served cache_peak) bytes, over --cache 256M"
    stderr_lacks np_served "error:|cannot |warn"

    # np.memmap mode "c": a writable MAP_PRIVATE mapping of a served file.
    NPC='
import numpy as np, sys
m = np.memmap(sys.argv[1], dtype=np.uint8, mode="c")
s = int(m.sum(dtype=np.uint64))
m[::7] = 5
print(s, int(m.sum(dtype=np.uint64)), int(np.fromfile(sys.argv[1], dtype=np.uint8).sum(dtype=np.uint64)))
'
    expect 0 npc_plain "$PY" -c "$NPC" "$DATA"
    expect 0 npc_served "${RUN[@]}" --map '*/data.bin' --anon-over 1M --cache 8M -- "$PY" -c "$NPC" \
        "$DATA" && same_out npc_plain npc_served
    [ "$(anon_stat npc_served bytes_in)" -gt 0 ] && ok ||
        fail "npc_served: the copy-on-write memmap was not served: $(cat "$TMP/npc_served.err")"
    cmp -s "$DATA" "$TMP/data.orig" && ok || fail "np.memmap mode c wrote to the file"

    # A program killed while it holds a region: the pool drops it when its lease runs out.
    run np_killed "${RUN[@]}" --anon-over 64M -- "$PY" -c \
        'import numpy as np, os, signal; a = np.ones(1 << 24); os.kill(os.getpid(), signal.SIGKILL)'
    [ "$RC" -eq 137 ] && ok || fail "np_killed: exited $RC, not killed: $(head -c 300 "$TMP/np_killed.err")"
    no_regions "after a killed program"
else
    echo "note: python3-numpy is not installed (scripts/install-deps.sh installs it): the numpy cases are skipped"
fi

# --- stress-ng ------------------------------------------------------------------------
if command -v stress-ng >/dev/null; then
    # stress-ng looks at its -t timer only between passes over the 1 GiB, and a
    # pass served through a 256 MiB cache is slow with the other CPU busy:
    # this command alone may take up to T_STRESS.
    T=$T_STRESS expect 0 stress "${RUN[@]}" --anon-over 64M --cache 256M -- \
        stress-ng --vm 1 --vm-bytes 1G --vm-method all --verify -t 20 --metrics-brief
    stderr_has stress "successful run completed"
    if grep -v 'farpool-preload: stats:' "$TMP/stress.out" "$TMP/stress.err" |
        grep -Eqi 'fail|error|corrupt'; then
        fail "stress: $(grep -Ehi 'fail|error|corrupt' "$TMP/stress.out" "$TMP/stress.err" | head -5)"
    else ok; fi
    served stress $((1 << 30))
    no_regions "after stress-ng"
else
    echo "note: stress-ng is not installed (scripts/install-deps.sh installs it): its case is skipped"
fi

finish
