#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# `farpool run` and libfarpool-preload.so (docs/preload.md) against a real
# pool on loopback (a metadata node and two members): a 64 MiB file of random
# bytes put into the pool, then tests/preload/mapsum (libc only: mmap,
# madvise, read every byte, munmap the head, read the rest) run plainly and
# under `farpool run --cache 16M` (less than the file): the same output, and
# the shim's --stats show the bytes came from the pool. Also: a glob that
# matches nothing, a program that maps nothing, a pool that cannot be
# reached, a missing region, a stale
# region (the file changed after the put), a statically linked program, a
# child of fork() reading the parent's mapping, a member killed while the
# program runs (2 copies), numpy's memmap, part of the file mapped
# (tests/preload/mappart.c: SIGSEGV outside it, no read-ahead past it, then the
# whole file mapped in the same process), and bad usage (exit 2).
#
# Usage: bash cli_run.sh FARPOOLD FARPOOL_CLI; CTest also passes FP_MAPSUM
# (the mapsum program), FP_MAPSUM_SRC and FP_CC (for a static build of it),
# and FP_SANITIZED=1 for a sanitized build, whose shim cannot be preloaded
# into other programs: then only the usage checks run.
# Every command runs under timeout(1); daemons use ephemeral ports, run under
# `setpriv --pdeathsig KILL` and are killed on exit whatever happens.
set -u

FARPOOLD=${1:?usage: $0 FARPOOLD FARPOOL_CLI}
FARPOOL=${2:?usage: $0 FARPOOLD FARPOOL_CLI}
MAPSUM=${FP_MAPSUM:-$(dirname "$FARPOOL")/tests/mapsum}
T=60 # seconds any one command may take

for bin in "$FARPOOLD" "$FARPOOL" "$MAPSUM"; do
    [ -x "$bin" ] || { echo "SKIP: $bin is not executable"; exit 77; }
done
for tool in timeout setpriv cmp python3; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool not found"; exit 77; }
done

CLI_NAME=cli_run
. "$(dirname "$0")/common/cli.sh"
unset FARPOOL_SECRET_FILE FARPOOL_LOG_LEVEL FARPOOL_POOL LD_PRELOAD MAPSUM_HEAD
unset FARPOOL_PRELOAD_MAP FARPOOL_PRELOAD_CACHE FARPOOL_PRELOAD_STATS FARPOOL_PRELOAD_QUIET
export XDG_CACHE_HOME=$TMP/xdg

# --- bad usage: exit 2 ----------------------------------------------------------
P=(--pool farpool://127.0.0.1:1) # never reached
expect 2 no_map "$FARPOOL" run "${P[@]}" -- true && stderr_has no_map "--map"
expect 2 no_cmd "$FARPOOL" run --map '*.bin' "${P[@]}" && stderr_has no_cmd "command"
expect 2 bad_cache "$FARPOOL" run --map '*.bin' --cache lots "${P[@]}" -- true &&
    stderr_has bad_cache "cache"
expect 2 bad_ra "$FARPOOL" run --map '*.bin' --readahead maybe "${P[@]}" -- true &&
    stderr_has bad_ra "readahead"
expect 2 bad_region "$FARPOOL" run --map '*.bin=a/b' "${P[@]}" -- true
expect 2 bad_option "$FARPOOL" run --bogus --map '*.bin' "${P[@]}" -- true
expect 2 no_pool "$FARPOOL" run --map '*.bin' -- true && stderr_has no_pool "FARPOOL_POOL|--pool"
expect 0 help "$FARPOOL" run --help
grep -q -- '--map GLOB' "$TMP/help.out" && ok || fail "run --help does not show --map"
expect 0 help_all "$FARPOOL" --help
grep -q '^  run ' "$TMP/help_all.out" && ok || fail "farpool --help does not list run"
expect 127 no_such_cmd "$FARPOOL" run --map '*.bin' "${P[@]}" -- "$TMP/no-such-program"

if [ "${FP_SANITIZED:-0}" = 1 ]; then
    echo "note: a sanitized build: its shim cannot be preloaded into other programs;" \
        "the runs under farpool run are skipped (run cli_run in a plain build)"
    finish
fi

# A program that maps nothing: runs as without the shim; the glob is said to match nothing.
expect 0 true_run "$FARPOOL" run --map '*/data.bin' "${P[@]}" -- echo hello
[ "$(cat "$TMP/true_run.out")" = hello ] && ok || fail "echo under farpool run: $(cat "$TMP/true_run.out")"
stderr_has true_run "matched no file"
stderr_lacks true_run "cannot use the pool" # no context made: the pool was never asked
expect 0 true_quiet "$FARPOOL" run --quiet --map '*/data.bin' "${P[@]}" -- echo hello
[ ! -s "$TMP/true_quiet.err" ] && ok || fail "run --quiet said: $(head -c 300 "$TMP/true_quiet.err")"

# --- the pool -----------------------------------------------------------------------
start_pool --slab-size 2M --capacity 256M || exit 1
P=(--pool "$URL")

mkdir -p "$TMP/d" "$TMP/stale"
DATA=$TMP/d/data.bin
head -c $((64 << 20)) /dev/urandom >"$DATA"
expect 0 put "$FARPOOL" put "$DATA" data.bin --replicas 2 --quiet "${P[@]}" || exit 1

# --- served: the same bytes, fetched from the pool -----------------------------------
RUN=("$FARPOOL" run "${P[@]}" --cache 16M --stats)
expect 0 plain "$MAPSUM" "$DATA"
expect 0 served "${RUN[@]}" --map '*/data.bin' -- "$MAPSUM" "$DATA" && same_out plain served
stderr_has served "farpool-preload: stats: region data.bin"
[ "$(stat_of served bytes_in)" -ge $((64 << 20)) ] && ok ||
    fail "served: the stats show $(stat_of served bytes_in) bytes from the pool, not the file's 64 MiB"
[ "$(stat_of served faults)" -gt 0 ] || [ "$(stat_of served prefetch_hinted)" -gt 0 ] && ok ||
    fail "served: no faults nor hinted prefetches in the stats: $(cat "$TMP/served.err")"
[ "$(stat_of served fetch_errors)" -eq 0 ] && ok || fail "served: fetch errors"
[ "$(stat_of served cache_peak)" -le $((16 << 20)) ] && ok ||
    fail "served: the cache held $(stat_of served cache_peak) bytes, over --cache 16M"
stderr_lacks served "warn|error:|matched no file"
ls "$XDG_CACHE_HOME"/farpool/blake2b-* >/dev/null 2>&1 && ok ||
    fail "no checksum cached under \$XDG_CACHE_HOME/farpool"
# Again, the checksum from the cache; a bare basename glob; readahead off.
expect 0 served2 "${RUN[@]}" --readahead off --map 'data.*' -- "$MAPSUM" "$DATA" &&
    same_out plain served2
stderr_has served2 "stats: region data.bin"
# --prefault, on a region of 2 MiB blocks: the cache's memory taken as the file is
# mapped; the same bytes, within the budget.
expect 0 put2m "$FARPOOL" put "$DATA" data2m --granule 2M --replicas 1 --quiet "${P[@]}" || exit 1
expect 0 prefault "${RUN[@]}" --prefault --map '*/data.bin=data2m' -- "$MAPSUM" "$DATA" &&
    same_out plain prefault
stderr_has prefault "stats: region data2m"
[ "$(stat_of prefault cache_peak)" -le $((16 << 20)) ] && ok ||
    fail "prefault: the cache held $(stat_of prefault cache_peak) bytes, over --cache 16M"
stderr_lacks prefault "warn|error:"
# The first block unmapped whole: gone (SIGSEGV) as in the plain run, the rest read.
MAPSUM_HEAD=65536 expect 0 plain_head "$MAPSUM" "$DATA"
MAPSUM_HEAD=65536 expect 0 served_head "${RUN[@]}" --map '*/data.bin' -- "$MAPSUM" "$DATA" &&
    same_out plain_head served_head
grep -q '^head unmapped$' "$TMP/served_head.out" && ok || fail "served_head: the head is still mapped"

# Part of the file mapped (24 MiB at 8 MiB) and read in order with a cache of 4 MiB: the
# bytes beside it are gone (SIGSEGV, as outside a real mmap), the read-ahead stops at its
# end (bytes_in about the part, not the file), the engine never fetches into the blocks
# outside (no "error:" lines); then the whole file mapped in the same process reads whole
# (the blocks fenced before are fetched again, no stale poison: no SIGBUS), and once it is
# unmapped the bytes beside the part are gone again.
MAPPART=${FP_MAPPART:-$(dirname "$MAPSUM")/mappart}
if [ -x "$MAPPART" ]; then
    PART=(--cache 4M --stats --map '*/data.bin' --)
    expect 0 plain_part "$MAPPART" "$DATA" $((8 << 20)) $((24 << 20)) whole
    MAPPART_OUTSIDE=1 expect 0 served_part "$FARPOOL" run "${P[@]}" "${PART[@]}" \
        "$MAPPART" "$DATA" $((8 << 20)) $((24 << 20)) &&
        [ "$(head -1 "$TMP/served_part.out")" = "$(head -1 "$TMP/plain_part.out")" ] && ok ||
        fail "served_part: $(head -1 "$TMP/served_part.out") vs $(head -1 "$TMP/plain_part.out")"
    [ "$(sed -n 2,3p "$TMP/served_part.out" | tr '\n' ' ')" = "before: signal 11 after: signal 11 " ] &&
        ok || fail "served_part: beside the mapping: $(sed -n 2,3p "$TMP/served_part.out")"
    stderr_lacks served_part "error:"
    n=$(stat_of served_part bytes_in)
    [ "$n" -ge $((24 << 20)) ] && [ "$n" -le $((26 << 20)) ] && ok ||
        fail "served_part: $n bytes from the pool for a 24 MiB part (read ahead past it?)"
    MAPPART_OUTSIDE=1 expect 0 served_whole "$FARPOOL" run "${P[@]}" "${PART[@]}" \
        "$MAPPART" "$DATA" $((8 << 20)) $((24 << 20)) whole &&
        [ "$(grep fnv1a64 "$TMP/served_whole.out")" = "$(cat "$TMP/plain_part.out")" ] && ok ||
        fail "served_whole: $(cat "$TMP/served_whole.out") vs $(cat "$TMP/plain_part.out")"
    [ "$(grep -c ': signal 11$' "$TMP/served_whole.out")" = 4 ] && ok ||
        fail "served_whole: beside the part: $(grep -v fnv1a64 "$TMP/served_whole.out")"
    stderr_lacks served_whole "error:"
else
    echo "note: $MAPPART not built: the partial mapping checks are skipped"
fi

# Threads mapping, reading and unmapping the file at once, beside the main mapping.
MAPSUM_THREADS=8 expect 0 plain_threads "$MAPSUM" "$DATA"
MAPSUM_THREADS=8 expect 0 served_threads "${RUN[@]}" --map '*/data.bin' -- "$MAPSUM" "$DATA" &&
    same_out plain_threads served_threads
stderr_lacks served_threads "error:"

# fork() without exec: the child maps the region again at the same address and reads it.
MAPSUM_FORK=1 expect 0 plain_fork "$MAPSUM" "$DATA"
MAPSUM_FORK=1 expect 0 served_fork "${RUN[@]}" --map '*/data.bin' -- "$MAPSUM" "$DATA" &&
    same_out plain_fork served_fork
grep -q '^child fnv1a64 ' "$TMP/served_fork.out" && ok || fail "served_fork: the child said nothing"
stderr_lacks served_fork "cannot map|error:"

# --- not served: a glob that matches nothing, a missing region, a stale one -----------
expect 0 nomatch "${RUN[@]}" --map '*/other.bin' -- "$MAPSUM" "$DATA" && same_out plain nomatch
stderr_has nomatch "--map \*/other.bin matched no file"
stderr_lacks nomatch "stats: region"
expect 0 noregion "${RUN[@]}" --map '*/data.bin=no-such' -- "$MAPSUM" "$DATA" &&
    same_out plain noregion
stderr_has noregion "no region no-such"
[ "$(grep -c farpool-preload "$TMP/noregion.err")" -eq 1 ] && ok ||
    fail "noregion: not one line: $(cat "$TMP/noregion.err")"
expect 0 nopool "$FARPOOL" run --pool farpool://127.0.0.1:1 --map '*/data.bin' -- "$MAPSUM" "$DATA" &&
    same_out plain nopool
stderr_has nopool "cannot use the pool"
[ "$(grep -c farpool-preload "$TMP/nopool.err")" -eq 1 ] && ok ||
    fail "nopool: not one line: $(cat "$TMP/nopool.err")"
cp "$DATA" "$TMP/stale/data.bin"
printf 'X' | dd of="$TMP/stale/data.bin" bs=1 seek=12345 conv=notrunc status=none
expect 0 plain_stale "$MAPSUM" "$TMP/stale/data.bin"
expect 0 stale "${RUN[@]}" --map '*/data.bin' -- "$MAPSUM" "$TMP/stale/data.bin" &&
    same_out plain_stale stale
stderr_has stale "other bytes"
[ "$(grep -c farpool-preload "$TMP/stale.err")" -eq 1 ] && ok ||
    fail "stale: not one line: $(cat "$TMP/stale.err")"
cmp -s "$TMP/plain.out" "$TMP/plain_stale.out" && fail "the stale file has the same checksum"

# --- a statically linked program --------------------------------------------------------
if [ -n "${FP_CC:-}" ] && [ -n "${FP_MAPSUM_SRC:-}" ] &&
    "$FP_CC" -static -O2 -o "$TMP/mapsum.static" "$FP_MAPSUM_SRC" 2>"$TMP/static_cc.err"; then
    expect 0 static "${RUN[@]}" --map '*/data.bin' -- "$TMP/mapsum.static" "$DATA" &&
        same_out plain static
    stderr_has static "statically linked"
else
    echo "note: no static build of mapsum (no libc.a?): the static case is not checked"
fi

# --- a member killed while the program runs, with 2 copies of every slab ----------------
WAIT=$TMP/go
timeout "$T" "${RUN[@]}" --map '*/data.bin' -- "$MAPSUM" "$DATA" "$WAIT" \
    >"$TMP/kill.out" 2>"$TMP/kill.err" </dev/null &
KPID=$!
for _ in $(seq 1 $((T * 20))); do
    [ -e "$WAIT.ready" ] && break
    kill -0 "$KPID" 2>/dev/null || break
    sleep 0.05
done
[ -e "$WAIT.ready" ] || fail "kill: mapsum did not start"
kill -KILL "$M1_PID"
touch "$WAIT"
wait "$KPID"
RC=$?
[ "$RC" -eq 0 ] && ok || fail "kill: mapsum under farpool run exited $RC: $(head -c 600 "$TMP/kill.err")"
same_out plain kill
[ "$(stat_of kill fetch_errors)" -eq 0 ] && ok || fail "kill: fetch errors: $(cat "$TMP/kill.err")"

# --- numpy's memmap -------------------------------------------------------------------
PY=
for py in python3 /usr/bin/python3; do
    if "$py" -c 'import numpy' 2>/dev/null; then
        PY=$py
        break
    fi
done
if [ -n "$PY" ]; then
    NP='import numpy as np, sys; m = np.memmap(sys.argv[1], dtype=np.uint8, mode="r"); print(int(m.sum(dtype=np.uint64)), m.shape[0])'
    expect 0 np_plain "$PY" -c "$NP" "$DATA"
    expect 0 np_served "${RUN[@]}" --map '*/data.bin' -- "$PY" -c "$NP" "$DATA" &&
        same_out np_plain np_served
    [ "$(stat_of np_served bytes_in)" -ge $((64 << 20)) ] && ok ||
        fail "np_served: not served from the pool: $(head -c 600 "$TMP/np_served.err")"
else
    echo "note: python3-numpy is not installed (scripts/install-deps.sh installs it): the memmap case is skipped"
fi

finish
