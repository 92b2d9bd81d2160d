#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# `farpool bench moe` from the command line, as farpool-bench(1) and
# bench/README.md describe it. First the dispatch: a farpool alone in a
# directory, with no farpool-bench beside it or in PATH, says that it needs
# farpool-bench and exits 1 (checked in a build without the benchmarks too);
# `farpool bench moe --help` runs the farpool-bench beside farpool and prints
# what `farpool-bench moe --help` prints. Then `farpool bench moe` itself:
# --help; bad arguments exit 2 with a message on stderr and nothing on
# stdout; a --quick run of every strategy (8 experts of 4M and 8M) exits 0,
# prints a table per size and the targets, writes the CSV (and the PNG when
# gnuplot is there), its strategies agree on every checksum, and it leaves no
# file behind; SIGTERM in the middle of a run (while its disk file exists,
# while its memcached runs) stops its children and removes its files.
#
# Usage: bash cli_bench_moe.sh FARPOOLD FARPOOL_CLI
# The runs use --no-drop-caches (the experts' file is made cold with
# POSIX_FADV_DONTNEED) so that a test does not empty the page cache of the
# whole machine under the other tests, and put the disk file under /var/tmp
# (O_DIRECT does not work on tmpfs). Every command runs under timeout(1).
set -u

FARPOOLD=${1:?usage: $0 FARPOOLD FARPOOL_CLI}
FARPOOL=${2:?usage: $0 FARPOOLD FARPOOL_CLI}
T=20  # seconds a failing or helping command may take
TRUN=150 # seconds the quick run may take (sanitizer builds are slower)

for bin in "$FARPOOLD" "$FARPOOL"; do
    [ -x "$bin" ] || { echo "SKIP: $bin is not executable"; exit 77; }
done
for tool in timeout python3; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool not found"; exit 77; }
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/cli_bench_moe.XXXXXX")
DISK=
BG=
cleanup() {
    [ -n "$BG" ] && kill -KILL "$BG" 2>/dev/null && wait "$BG" 2>/dev/null
    rm -rf "$TMP" ${DISK:+"$DISK"}
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

# run NAME SECONDS CMD...: keep stdout/stderr in $TMP/NAME.{out,err}; sets $RC.
run() {
    local name=$1 secs=$2
    shift 2
    timeout "$secs" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" </dev/null
    RC=$?
}

# usage NAME ARGS...: `farpool bench moe ARGS` exits 2, says why, prints nothing on stdout.
usage() {
    local name=$1
    shift
    run "$name" "$T" "$FARPOOL" bench moe "$@"
    if [ "$RC" -ne 2 ]; then
        fail "$name: 'bench moe $*' exited $RC, expected 2"
        sed 's/^/    stderr: /' "$TMP/$name.err" | head -5 >&2
        return 1
    fi
    if [ ! -s "$TMP/$name.err" ]; then
        fail "$name: exit 2 without a message on stderr"
    elif [ -s "$TMP/$name.out" ]; then
        fail "$name: a usage error printed on stdout: $(head -c 200 "$TMP/$name.out")"
    else
        ok
    fi
}

# has NAME STREAM REGEX: out or err of NAME matches REGEX (grep -E).
has() {
    if grep -Eq -- "$3" "$TMP/$1.$2"; then ok; else
        fail "$1: std$2 does not match /$3/:"
        sed 's/^/    /' "$TMP/$1.$2" | head -30 >&2
    fi
}

# --- the dispatch: a farpool without farpool-bench -----------------------------
# Copied alone into an empty directory, run with a PATH of one empty directory:
# no farpool-bench beside it, none in PATH.
mkdir -p "$TMP/lone" "$TMP/nobin"
cp "$FARPOOL" "$TMP/lone/farpool"
run lone "$T" env PATH="$TMP/nobin" "$TMP/lone/farpool" bench moe --help
if [ "$RC" -eq 1 ]; then ok; else fail "lone: a farpool without farpool-bench exited $RC, expected 1"; fi
has lone err "^farpool: farpool bench needs farpool-bench, which this installation lacks; build with -DFP_BUILD_BENCH=ON$"
[ -s "$TMP/lone.out" ] && fail "lone: printed on stdout: $(head -c 200 "$TMP/lone.out")" || ok

BENCH=$(dirname "$FARPOOL")/farpool-bench
if [ ! -x "$BENCH" ]; then
    if [ "$FAILS" -ne 0 ]; then
        echo "cli_bench_moe: $FAILS of $((CHECKS + FAILS)) checks failed"
        exit 1
    fi
    echo "SKIP: no $BENCH (built without the benchmarks); the dispatch without it passed $CHECKS checks"
    exit 77
fi
DISK=$(mktemp -d /var/tmp/cli_bench_moe.XXXXXX)

# --- the dispatch: farpool-bench beside farpool ------------------------------------
# PATH holds no farpool-bench: the one beside farpool is found by farpool's own path.
run via_farpool "$T" env PATH="$TMP/nobin:$PATH" "$FARPOOL" bench moe --help
[ "$RC" -eq 0 ] && ok || fail "farpool bench moe --help, through the dispatch, exited $RC"
run direct "$T" "$BENCH" moe --help
[ "$RC" -eq 0 ] && ok || fail "farpool-bench moe --help exited $RC"
has direct out "^Usage: farpool-bench moe "
if cmp -s "$TMP/via_farpool.out" "$TMP/direct.out"; then ok; else
    fail "farpool bench moe --help printed other than farpool-bench moe --help:"
    diff "$TMP/direct.out" "$TMP/via_farpool.out" | head -10 | sed 's/^/    /' >&2
fi

# --- help ---------------------------------------------------------------------
run help "$T" "$FARPOOL" bench moe --help
[ "$RC" -eq 0 ] && ok || fail "bench moe --help exited $RC"
for opt in --experts --sizes --top-k --batches --budget --seed --runs --strategies --dir --out \
    --out-dir --quick --farpoold --memcached; do
    has help out -- "$opt"
done
run help_short "$T" "$FARPOOL" bench moe -h
[ "$RC" -eq 0 ] && ok || fail "bench moe -h exited $RC"

# --- bad arguments: exit 2 -------------------------------------------------------
usage bad_size --sizes lots && has bad_size err "size"
usage odd_size --sizes 3M && has odd_size err "multiple of 2M"
usage big_size --sizes 16G && has big_size err "8G"
usage empty_size --sizes 4M,,8M
usage zero_experts --experts 0 && has zero_experts err "experts"
usage topk_zero --top-k 0 && has topk_zero err "top-k"
usage topk_many --experts 4 --top-k 5 && has topk_many err "top-k 5"
usage small_budget --top-k 2 --budget 1 && has small_budget err "budget"
usage budget_junk --budget lots && has budget_junk err "budget"
usage bad_strategy --strategies dram,nope && has bad_strategy err "nope"
usage runs_zero --runs 0 && has runs_zero err "runs"
usage bad_skew --skew -1 && has bad_skew err "skew"
usage bad_seed --seed x && has bad_seed err "seed"
usage no_value --batches && has no_value err "needs a value"
usage unknown --bogus && has unknown err "bogus"
usage extra_arg extra && has extra_arg err "extra"
usage no_farpoold --farpoold /nonexistent/farpoold && has no_farpoold err "farpoold"
usage no_dir --dir /nonexistent/dir && has no_dir err "dir"

# --- a quick run of every strategy -----------------------------------------------------
run quick "$TRUN" "$FARPOOL" bench moe --quick --farpoold "$FARPOOLD" --dir "$DISK" \
    --out-dir "$TMP" --out quick --no-drop-caches --time-limit 60
if [ "$RC" -ne 0 ]; then
    fail "the quick run exited $RC"
    sed 's/^/    stderr: /' "$TMP/quick.err" | tail -30 >&2
fi
has quick out "^### Experts of 4M"
has quick out "^### Experts of 8M"
has quick out "^\| strategy \| loads \| load ms \| unload ms"
for label in "local DRAM" "cold disk, mmap" "farpool 4 KiB, no prefetch" "farpool 2 MiB" \
    "farpool 2 MiB \+ hints"; do
    has quick out "^\| $label"
done
has quick out "Checksum of the runs at 4M: [0-9a-f]{16} \(all strategies agree\)"
has quick out "Checksum of the runs at 8M: [0-9a-f]{16} \(all strategies agree\)"
has quick out "^### Targets"
has quick out "page faults <= 1% of 4 KiB"
has quick out "^CSV: "
[ -s "$TMP/quick.csv" ] && ok || fail "the quick run wrote no $TMP/quick.csv"
if command -v gnuplot >/dev/null; then
    if [ -s "$TMP/quick.png" ] && [ "$(head -c 4 "$TMP/quick.png" | tail -c 3)" = "PNG" ]; then
        ok
    else
        fail "gnuplot is installed but the quick run drew no PNG"
    fi
fi
# Every strategy is in the CSV; the measured ones of a size share one checksum;
# the farpool ones, which always run here, are measured.
if timeout "$T" python3 - "$TMP/quick.csv" <<'EOF'; then ok; else fail "quick.csv: see above"; fi
import csv, sys
raw = list(csv.reader(open(sys.argv[1])))
assert all(len(r) == len(raw[0]) for r in raw), "rows with a different number of fields"
rows = list(csv.DictReader(open(sys.argv[1])))
want = {"dram", "mmap", "direct", "memcached", "fp4k", "fp2m", "fp2m-hint"}
for size in ("4M", "8M"):
    mine = [r for r in rows if r["expert_size"] == size]
    assert {r["strategy"] for r in mine} == want, (size, [r["strategy"] for r in mine])
    for r in mine:
        assert r["outcome"] in ("measured", "skipped"), (size, r["strategy"], r["outcome"], r["note"])
        if r["outcome"] == "skipped":
            print("note: %s at %s skipped: %s" % (r["strategy"], size, r["note"]))
    measured = [r for r in mine if r["outcome"] == "measured"]
    for s in ("dram", "mmap", "fp4k", "fp2m", "fp2m-hint"):
        assert any(r["strategy"] == s for r in measured), (size, s, "not measured")
    sums = {r["checksum"] for r in measured}
    assert len(sums) == 1, (size, sums)
    for r in measured:
        assert r["wrong"] == "0" and r["truncated"] == "0", (size, r["strategy"])
        assert int(r["loads"]) > 0 and int(r["unloads"]) > 0, (size, r["strategy"])
        if r["strategy"] != "dram":
            assert float(r["load_ms_median"]) > 0, (size, r["strategy"])
            assert float(r["bytes_moved_per_run"]) >= int(r["loads"]) * int(r["expert_bytes"]) * 0.9, \
                (size, r["strategy"], r["bytes_moved_per_run"])
        if r["strategy"] == "fp4k":  # no prefetch: one fault per 4 KiB page
            pages = int(r["expert_bytes"]) // 4096
            assert float(r["faults_farpool_per_load"]) >= pages, (size, r["faults_farpool_per_load"])
            assert float(r["faults_app_per_load"]) >= pages, (size, r["faults_app_per_load"])
EOF
# It removed what it made.
if [ -z "$(ls -A "$DISK")" ]; then ok; else fail "the quick run left files in $DISK: $(ls "$DISK")"; fi
for f in "$TMP"/quick.png.gp; do
    [ -e "$f" ] && fail "the quick run left its gnuplot script $f"
done

# --- SIGTERM in the middle: children stopped, files removed ----------------------------------
# interrupt NAME READY ARGS...: start `bench moe ARGS` in the background, wait
# until READY (a shell test) holds, SIGTERM it; it must exit 143 (128 +
# SIGTERM), its children must be gone and $DISK empty.
interrupt() {
    local name=$1 ready=$2 children pid
    shift 2
    "$FARPOOL" bench moe --farpoold "$FARPOOLD" --dir "$DISK" --out-dir "$TMP" --out "$name" \
        --no-drop-caches "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" </dev/null &
    BG=$!
    for _ in $(seq 1 600); do
        eval "$ready" && break
        kill -0 "$BG" 2>/dev/null || break
        sleep 0.05
    done
    if ! eval "$ready"; then
        fail "$name: never got to the point of interrupting it ($ready)"
        sed 's/^/    stderr: /' "$TMP/$name.err" | tail -10 >&2
    fi
    children=$(ps -o pid= --ppid "$BG" | tr -d ' ')
    kill -TERM "$BG"
    wait "$BG"
    RC=$?
    BG=
    [ "$RC" -eq 143 ] && ok || fail "$name: the interrupted run exited $RC, expected 143"
    for pid in $children; do
        if kill -0 "$pid" 2>/dev/null; then
            fail "$name: child $pid ($(ps -o comm= -p "$pid")) outlived the interrupted run"
        else
            ok
        fi
    done
    if [ -z "$(ls -A "$DISK")" ]; then ok; else fail "$name: left files: $(ls "$DISK")"; fi
}
# While the experts' disk file exists.
interrupt term_disk '[ -n "$(ls -A "$DISK")" ]' --experts 8 --sizes 64M --batches 200 \
    --strategies mmap
# While memcached (then farpoold) runs.
interrupt term_children '[ -n "$(ps -o pid= --ppid "$BG")" ]' --experts 8 --sizes 64M \
    --batches 200 --strategies memcached,fp2m

if [ "$FAILS" -ne 0 ]; then
    echo "cli_bench_moe: $FAILS of $((CHECKS + FAILS)) checks failed"
    exit 1
fi
echo "cli_bench_moe: all $CHECKS checks passed"
