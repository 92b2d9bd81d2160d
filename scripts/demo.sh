#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The main job on one machine: install what is missing, build, start a local
# pool of three memory nodes (a metadata node and two members, on loopback),
# write a synthetic Mixture-of-Experts model to local disk and put it into
# the pool (two copies of every slab), then serve it with an unmodified NumPy
# program (examples/moe_serve.py: np.memmap of the experts, a seeded router,
# top-k experts per token, madvise(WILLNEED) of the next token's experts)
# twice: (a) from the file on cold local disk, (b) under `farpool run --map`
# with a local cache a quarter of the model, so that experts are swapped in
# and out. Both must compute the same output. Then one node is killed, the
# model is served again from the copies left, the pool makes the lost copies
# again and every copy is verified. See docs/demo.md.
#
# Usage: scripts/demo.sh [SIZE]   (the model; default: sized to this machine,
#                                  at most 4G; at least 1G; e.g. 2G)
# Environment: FP_DEMO_SIZE (same as SIZE), FP_DEMO_TOKENS (default 32),
#   FP_DEMO_DIR (where the model is written; default /var/tmp, a disk),
#   FP_BUILD_DIR (default build/), FP_DEMO_PYTHON (a python3 with numpy).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${FP_BUILD_DIR:-$top/build}
tokens=${FP_DEMO_TOKENS:-32}
serve_py=$top/examples/moe_serve.py
say() { printf '%s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

"$top/scripts/install-deps.sh"
say "== building farpoold, farpool and the preload shim in $build"
blog=$(mktemp)
if ! { cmake -S "$top" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
    cmake --build "$build" --target farpoold farpool_cli; } >"$blog" 2>&1; then
    tail -40 "$blog" >&2
    rm -f "$blog"
    die "the build failed"
fi
rm -f "$blog"
farpool="$build/farpool"

py=
for cand in ${FP_DEMO_PYTHON:-} /usr/bin/python3 python3; do
    if "$cand" -c 'import numpy' 2>/dev/null; then py=$cand; break; fi
done
[ -n "$py" ] || die "no python3 with numpy (scripts/install-deps.sh installs python3-numpy)"

# The model's size: at most 4 GiB, and at most a sixth of the available memory
# (the pool keeps two copies, the page cache one, the cache a quarter) and a
# third of the free disk; in steps of 512 MiB.
dir=${FP_DEMO_DIR:-/var/tmp}
mem_avail=$(($(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo) * 1024))
disk_avail=$(df -B1 --output=avail "$dir" | tail -1)
size=${1:-${FP_DEMO_SIZE:-}}
if [ -n "$size" ]; then
    s=${size^^} s=${s%B} s=${s%I}
    s=$(numfmt --from=iec "$s" 2>/dev/null) || die "not a size: $size (e.g. 512M, 2G)"
    size=$s
else
    size=$((4 << 30))
    [ $((mem_avail / 6)) -lt "$size" ] && size=$((mem_avail / 6))
    [ $((disk_avail / 3)) -lt "$size" ] && size=$((disk_avail / 3))
    size=$((size / (512 << 20) * (512 << 20)))
    [ "$size" -ge $((1 << 30)) ] ||
        die "too little memory or disk for the demo (available: memory" \
            "$((mem_avail >> 20)) MiB, disk $((disk_avail >> 20)) MiB in $dir)"
fi
[ "$size" -ge $((1 << 30)) ] || die "the model must be at least 1G (the cache is at least 512M)"
[ "$(stat -f -c %T "$dir")" != tmpfs ] ||
    say "demo: note: $dir is a tmpfs: run (a) cannot read from a disk (set FP_DEMO_DIR)"

work=$(mktemp -d "$dir/farpool-demo.XXXXXX")
export XDG_CACHE_HOME=$work/xdg # the shim's checksum cache, removed with the rest
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_node NAME ARGS...: a farpoold on 127.0.0.1 with an ephemeral port, killed
# if this script dies; its address in $work/NAME.port, its pid in pids.
capacity=$((size + (256 << 20))) # two nodes left hold both copies after the kill
start_node() {
    local name=$1
    shift
    setpriv --pdeathsig KILL "$build/farpoold" --listen 127.0.0.1:0 --port-file "$work/$name.port" \
        --capacity "$capacity" --log-level warn "$@" 2>"$work/$name.log" &
    pids+=($!)
    for _ in $(seq 200); do
        [ -s "$work/$name.port" ] && return 0
        kill -0 "${pids[-1]}" 2>/dev/null || { cat "$work/$name.log" >&2; exit 1; }
        sleep 0.05
    done
    die "$name did not start"
}

# wait_for SECONDS CMD...: run CMD every 0.1 s until it succeeds; 1 if it never does.
wait_for() {
    local tries=$(($1 * 10))
    shift
    for _ in $(seq "$tries"); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}
pool_json_has() { timeout 20 "$farpool" status --pool "$FARPOOL_POOL" --json | grep -q "$1"; }

# drop_file FILE: the file's pages out of the page cache (written back first),
# with posix_fadvise(POSIX_FADV_DONTNEED) on this one file: the rest of the
# machine's page cache is left alone, and no root is needed.
drop_file() {
    "$py" -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.fsync(fd)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$1"
}
# cached_mib FILE: MiB of FILE in the page cache now (fincore).
cached_mib() {
    local b
    b=$(fincore --bytes --noheadings --output RES "$1" 2>/dev/null) || { echo "?"; return; }
    echo $((b >> 20))
}

# serve NAME CMD...: run CMD (a moe_serve.py serve --json), its JSON in
# $work/NAME.json, its stderr in $work/NAME.err, and the bytes it read from
# storage (the kernel's read_bytes of this subshell, which counts its reaped
# children) in $work/NAME.io. At most 10 minutes.
serve() {
    local name=$1
    shift
    # shellcheck disable=SC2016
    if ! timeout 600 bash -c '"$@"; rc=$?; sed -n "s/^read_bytes: //p" /proc/$$/io >&3; exit $rc' \
        serve "$@" >"$work/$name.json" 2>"$work/$name.err" 3>"$work/$name.io"; then
        cat "$work/$name.err" >&2
        die "run $name failed: $*"
    fi
    sed 's/^/   /' "$work/$name.json"
}
# field NAME KEY: KEY of run NAME's JSON. stat_of NAME FIELD: the shim's counter (0 if none).
field() {
    "$py" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' \
        "$work/$1.json" "$2"
}
stat_of() {
    sed -n "s/.*farpool-preload: stats: .* $2 \([0-9]*\).*/\1/p" "$work/$1.err" |
        head -1 | grep . || echo 0
}

say
say "== a pool of three memory nodes on loopback ($((capacity >> 20)) MiB each)"
start_node meta --meta-dir "$work/meta" --dead-after 2
FARPOOL_POOL="farpool://$(cat "$work/meta.port")"
export FARPOOL_POOL
start_node node1 --pool "$FARPOOL_POOL"
start_node node2 --pool "$FARPOOL_POOL"
wait_for 20 pool_json_has '"nodes_live":3' || die "the pool did not reach three live nodes"
"$farpool" status --pool "$FARPOOL_POOL"

model=$work/moe.bin
say
say "== a synthetic MoE model of $((size >> 20)) MiB written to local disk ($dir)"
"$py" "$serve_py" make "$model" --size "$size" | sed 's/^/   /'
say
say "== put into the pool as region 'moe' (2 copies of every slab, 2 MiB blocks)"
"$farpool" put "$model" moe --replicas 2 --granule 2M
"$farpool" ls

# The cache: a quarter of the model, but at least four tokens' experts (8
# layers x top-2 x 8 MiB = 128 MiB a token; 160 MiB of 2 MiB blocks): with
# less, the next token's hinted experts push out the blocks in use (a 1 GiB
# model with a 320 MiB cache fetched 1.4 times the bytes its tokens need).
cache=$((size / 4 / (2 << 20) * (2 << 20)))
[ "$cache" -ge $((512 << 20)) ] || cache=$((512 << 20))
run=("$farpool" run --map "*/moe.bin=moe" --cache "$cache" --prefault --stats --)
args=(serve "$model" --tokens "$tokens" --json)
say
say "== the shim checks the file against its region once (BLAKE2b of the whole file, kept in"
say "   \$XDG_CACHE_HOME/farpool): done now, so that it is not in the timing of run (b)"
"${run[@]}" "$py" -c 'import mmap, sys
f = open(sys.argv[1], "rb")
mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ).close()' "$model" 2>"$work/check.err" ||
    { cat "$work/check.err" >&2; die "the shim's check failed"; }
grep -q 'stats: region moe' "$work/check.err" ||
    { cat "$work/check.err" >&2; die "the shim did not serve $model from the pool"; }

say
drop_file "$model"
say "== (a) $tokens tokens from the file on cold local disk (its page cache dropped with"
say "   posix_fadvise DONTNEED: $(cached_mib "$model") MiB of it cached)"
serve disk "$py" "$serve_py" "${args[@]}"
disk_cached=$(cached_mib "$model")

say
drop_file "$model"
say "== (b) the same, unmodified, under farpool run --map '*/moe.bin=moe' --cache $((cache >> 20))M"
say "   --prefault --stats"
serve pool "${run[@]}" "$py" "$serve_py" "${args[@]}"

say
say "== (c) one node killed (SIGKILL), the same again from the copies left"
kill -KILL "${pids[2]}"
wait "${pids[2]}" 2>/dev/null || true
pids=("${pids[@]:0:2}")
drop_file "$model"
serve killed "${run[@]}" "$py" "$serve_py" "${args[@]}"

say
say "== results"
per_tok=$(field disk expert_bytes_per_token)
fmt='   %-28s %10s %8s %12s %12s %12s  %s\n'
# shellcheck disable=SC2059
printf "$fmt" run tokens/s faults "fetched MiB" "disk MiB" "local MiB" output
row() { # NAME LABEL LOCAL_MIB
    local faults=- fetched=-
    if [ "$1" != disk ]; then
        faults=$(stat_of "$1" faults)
        fetched=$(($(stat_of "$1" bytes_in) >> 20))
    fi
    # shellcheck disable=SC2059
    printf "$fmt" "$2" "$(field "$1" tokens_per_s)" "$faults" \
        "$fetched" "$(($(cat "$work/$1.io") >> 20))" "$3" "$(field "$1" output)"
}
row disk "(a) cold local disk" "$disk_cached"
row pool "(b) farpool run, 3 nodes" "$(($(stat_of pool cache_peak) >> 20))"
row killed "(c) farpool run, 1 node dead" "$(($(stat_of killed cache_peak) >> 20))"
say "   ($((per_tok >> 20)) MiB of experts per token; local MiB: the file's page cache after (a),"
say "   the shim's cache peak in (b) and (c), whose budget is $((cache >> 20)) MiB)"
out=$(field disk output)
if [ "$(field pool output)" != "$out" ] || [ "$(field killed output)" != "$out" ]; then
    die "the runs computed different outputs"
fi
say "   every run computed the same output"

say
say "== the pool declares the node dead and makes the lost copies again"
repaired() {
    pool_json_has '"nodes_dead":1' && timeout 20 "$farpool" ls --json | grep -q '"health":"healthy"'
}
wait_for 120 repaired || die "the pool did not repair the region within 120 s"
"$farpool" status --pool "$FARPOOL_POOL"
"$farpool" verify moe
