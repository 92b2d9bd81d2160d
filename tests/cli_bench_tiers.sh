#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# `farpool bench tiers` (farpool-bench tiers, through farpool) from the
# outside: usage errors exit 2 with a message and nothing on stdout; --help; a
# tiny --quick run of every tier this machine allows exits 0, prints the
# tables and writes tiers.csv (and the PNGs when gnuplot is there) into a
# temporary directory; without gnuplot it still writes the CSV; and whether it
# ends normally or by SIGINT, it leaves no process, namespace, veth or file
# behind.
#
# The netns tier must run when this test is root and can create a network
# namespace itself (it tries one first); otherwise the run must say it skipped
# it. Leftover processes are found by a tag in their environment: every child
# of the benchmark (farpoold, `ip netns exec`) inherits it.
#
# Usage: bash cli_bench_tiers.sh FARPOOLD FARPOOL_CLI
# Kept tiny (--size 8M, few samples, one run) so that it finishes in seconds
# under ASan and TSan too.
set -u

FARPOOLD=${1:?usage: $0 FARPOOLD FARPOOL_CLI}
FARPOOL=${2:?usage: $0 FARPOOLD FARPOOL_CLI}
T=150 # seconds a benchmark run may take (sanitizer builds are slow)

for bin in "$FARPOOLD" "$FARPOOL"; do
    [ -x "$bin" ] || { echo "SKIP: $bin is not executable"; exit 77; }
done
command -v timeout >/dev/null || { echo "SKIP: timeout not found"; exit 77; }
# `farpool bench tiers` runs the farpool-bench beside farpool (cli_bench_moe
# checks that dispatch).
if [ ! -x "$(dirname "$FARPOOL")/farpool-bench" ]; then
    echo "SKIP: no farpool-bench beside $FARPOOL (built without the benchmarks)"
    exit 77
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/cli_bench_tiers.XXXXXX")
# The disk tier's file goes on a disk: /var/tmp if possible (TMPDIR may be tmpfs).
DISK=$(mktemp -d /var/tmp/cli_bench_tiers.XXXXXX 2>/dev/null) || DISK=$(mktemp -d "$TMP/disk.XXXXXX")
TAG="cli_bench_tiers.$$.$RANDOM"
BGPID=
cleanup() {
    if [ -n "$BGPID" ]; then
        kill -KILL "$BGPID" 2>/dev/null
        wait "$BGPID" 2>/dev/null
    fi
    rm -rf "$TMP" "$DISK"
}
trap cleanup EXIT

unset FARPOOL_SECRET_FILE FARPOOL_LOG_LEVEL

FAILS=0
CHECKS=0
fail() {
    echo "FAIL: $*" >&2
    FAILS=$((FAILS + 1))
}
ok() {
    CHECKS=$((CHECKS + 1))
}

# run NAME CMD...: under timeout, tagged; output in $TMP/NAME.{out,err}; sets $RC.
run() {
    local name=$1
    shift
    FP_TEST_TAG="$TAG" timeout "$T" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" </dev/null
    RC=$?
}

# expect CODE NAME CMD...: exits CODE; a failure says why on stderr, not stdout.
expect() {
    local code=$1 name=$2
    shift 2
    run "$name" "$@"
    if [ "$RC" -ne "$code" ]; then
        fail "$name: '$*' exited $RC, expected $code"
        sed 's/^/    stderr: /' "$TMP/$name.err" | tail -15 >&2
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

# has NAME STREAM REGEX: out or err of NAME matches REGEX (grep -E).
has() {
    if grep -Eq -- "$3" "$TMP/$1.$2"; then ok; else
        fail "$1: std$2 does not match /$3/:"
        sed 's/^/    /' "$TMP/$1.$2" | head -30 >&2
    fi
}

# Processes still carrying the tag (the benchmark's children that outlived it).
tagged() {
    grep -ls "FP_TEST_TAG=$TAG" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3 | tr '\n' ' '
}

# no_leftovers WHAT NS: nothing of a finished run remains.
no_leftovers() {
    local what=$1 ns=$2 left
    left=$(tagged)
    left=${left% }
    [ -z "$left" ] && ok || fail "$what: processes left running: $(ps -o pid=,args= -p "${left// /,}" 2>/dev/null)"
    if [ -n "$ns" ]; then
        if ip netns list 2>/dev/null | grep -qw -- "$ns"; then
            fail "$what: namespace $ns still exists"
        else ok; fi
        if ip -o link show 2>/dev/null | grep -q "fpt${ns##*-}a"; then
            fail "$what: veth fpt${ns##*-}a still exists"
        else ok; fi
    fi
    if [ -n "$(ls -A "$DISK")" ]; then
        fail "$what: files left in --dir: $(ls -A "$DISK")"
    else ok; fi
}

COMMON=(--farpoold "$FARPOOLD" --dir "$DISK")

# --- usage errors: exit 2, a message, nothing on stdout -------------------------
expect 2 runs_zero "$FARPOOL" bench tiers --runs 0 && has runs_zero err "runs"
expect 2 runs_junk "$FARPOOL" bench tiers --runs many && has runs_junk err "runs"
expect 2 runs_missing "$FARPOOL" bench tiers --runs && has runs_missing err "runs"
expect 2 size_odd "$FARPOOL" bench tiers --size 12M && has size_odd err "size"
expect 2 size_small "$FARPOOL" bench tiers --size 4M && has size_small err "size"
expect 2 size_junk "$FARPOOL" bench tiers --size lots && has size_junk err "size"
expect 2 samples_bad "$FARPOOL" bench tiers --samples 0 && has samples_bad err "samples"
expect 2 tiers_bad "$FARPOOL" bench tiers --tiers dram,tape && has tiers_bad err "tiers"
expect 2 tiers_empty "$FARPOOL" bench tiers --tiers "" && has tiers_empty err "tiers"
expect 2 cpu_bad "$FARPOOL" bench tiers --cpu many && has cpu_bad err "cpu"
expect 2 dir_missing "$FARPOOL" bench tiers --dir "$TMP/nonexistent" && has dir_missing err "dir"
expect 2 outdir_missing "$FARPOOL" bench tiers --out-dir "$TMP/nonexistent" && has outdir_missing err "out-dir"
expect 2 unknown_opt "$FARPOOL" bench tiers --bogus && has unknown_opt err "bogus"
expect 2 extra_arg "$FARPOOL" bench tiers extra && has extra_arg err "extra"

# --- help -----------------------------------------------------------------------------
expect 0 help "$FARPOOL" bench tiers --help
for opt in --runs --quick --size --samples --tiers --dir --out-dir --farpoold --cpu; do
    has help out "$opt"
done
expect 0 help_short "$FARPOOL" bench tiers -h

# --- can this machine run the netns tier? ---------------------------------------------
NETNS=0
if [ "$(id -u)" -eq 0 ] && command -v ip >/dev/null; then
    probe="cli-bench-tiers-probe-$$"
    if ip netns add "$probe" 2>/dev/null; then
        ip netns del "$probe" && NETNS=1
    fi
fi
echo "cli_bench_tiers: netns tier $([ "$NETNS" -eq 1 ] && echo expected || echo not expected)"

# --- a tiny run of every tier ------------------------------------------------------------
mkdir -p "$TMP/out"
expect 0 quick "$FARPOOL" bench tiers --quick --size 8M --samples 50 --runs 1 \
    --out-dir "$TMP/out" "${COMMON[@]}"
has quick out "^### Random 4 KiB access latency"
has quick out "^### Sequential bandwidth by block size"
has quick out "^\| tier \| 4K \| 16K \| 64K \| 256K \| 1M \| 2M \| 4M \| 8M \|$"
has quick out "^\| local DRAM \| [0-9.]+ \| [0-9.]+ \| 1\.00x \|"
has quick out "^\| pool loopback \(mapped\) \| [0-9.]+ \| [0-9.]+ \|"
has quick out "^\| pool loopback \(node API\) \| [0-9.]+ \| [0-9.]+ \|"
has quick err "^run 1/1: local DRAM"
if [ "$NETNS" -eq 1 ]; then
    has quick out "^\| pool netns \(mapped\) \| [0-9.]+ \| [0-9.]+ \|"
    has quick out "^\| pool netns \(node API\) \| [0-9.]+ \| [0-9.]+ \|"
else
    has quick out "^- netns: skipped: "
fi
# The disk tier runs, or says why not (a --dir on tmpfs, say).
grep -q "^| local disk cold (O_DIRECT) |" "$TMP/quick.out" || has quick out "^- disk: skipped: "
NS=$(grep -o "in namespace farpool-tiers-[0-9]*" "$TMP/quick.out" | awk '{print $3}')
[ "$NETNS" -eq 0 ] || [ -n "$NS" ] && ok || fail "quick: no namespace named in the output"
no_leftovers quick "$NS"

# The CSV: its header, the rows of each measured series, positive figures.
CSV="$TMP/out/tiers.csv"
if [ -s "$CSV" ]; then ok; else fail "quick: no $CSV"; fi
if awk -F, -v netns="$NETNS" '
    NR == 1 { if ($0 != "series,label,measure,block_bytes,value,unit,vs_dram,vs_disk,runs") bad = "header: " $0; next }
    { n[$1]++; if ($5 == "" || $5 + 0 <= 0) bad = "line " NR ": no figure: " $0 }
    $1 == "dram" && $3 == "bandwidth" && $7 != "1.00000" { bad = "dram vs itself: " $0 }
    END {
        if (bad != "") { print bad; exit 1 }
        want = "dram loopback loopback-api" (netns ? " netns netns-api" : "")
        split(want, s, " ")
        for (i in s) if (n[s[i]] != 10) { print s[i] ": " n[s[i]] + 0 " rows, want 10"; exit 1 }
    }' "$CSV" >"$TMP/csv_check.txt"; then ok; else
    fail "quick: tiers.csv: $(cat "$TMP/csv_check.txt")"
fi
if command -v gnuplot >/dev/null; then
    for png in tiers_bandwidth.png tiers_latency.png; do
        if [ "$(head -c 4 "$TMP/out/$png" 2>/dev/null | od -An -c | tr -d ' ')" = "211PNG" ]; then ok; else
            fail "quick: $png missing or not a PNG"
        fi
    done
fi

# --- a subset of tiers, and no gnuplot: the CSV still comes -------------------------------
mkdir -p "$TMP/out2"
expect 0 noplot env PATH=/nonexistent "$FARPOOL" bench tiers --quick --size 8M --samples 20 \
    --tiers dram --out-dir "$TMP/out2" "${COMMON[@]}"
has noplot err "gnuplot not found"
has noplot out "^\| local DRAM \|"
if grep -Eq "^\| (pool|local disk)" "$TMP/noplot.out"; then fail "noplot: --tiers dram measured more"; else ok; fi
[ -s "$TMP/out2/tiers.csv" ] && [ ! -e "$TMP/out2/tiers_latency.png" ] && ok ||
    fail "noplot: expected tiers.csv and no PNG in $TMP/out2: $(ls "$TMP/out2")"

# --- SIGINT in the middle: everything is cleaned up ----------------------------------------
FP_TEST_TAG="$TAG" "$FARPOOL" bench tiers --quick --size 8M --samples 50 --runs 64 \
    --out-dir "$TMP/out" "${COMMON[@]}" >"$TMP/sigint.out" 2>"$TMP/sigint.err" </dev/null &
BGPID=$!
SIGPID=$BGPID
# Wait until it measures (its first run line), bounded.
for _ in $(seq 1 600); do
    grep -q "^run 1/64" "$TMP/sigint.err" && break
    kill -0 "$BGPID" 2>/dev/null || break
    sleep 0.1
done
if grep -q "^run 1/64" "$TMP/sigint.err"; then ok; else
    fail "sigint: the run did not start measuring: $(tail -5 "$TMP/sigint.err")"
fi
kill -INT "$BGPID" 2>/dev/null
for _ in $(seq 1 300); do
    kill -0 "$BGPID" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$BGPID" 2>/dev/null; then
    fail "sigint: still running 30 s after SIGINT"
    kill -KILL "$BGPID" 2>/dev/null
fi
wait "$BGPID"
RC=$?
BGPID=
[ "$RC" -eq 130 ] && ok || fail "sigint: exited $RC, expected 130"
SNS=""
[ "$NETNS" -eq 1 ] && SNS="farpool-tiers-$SIGPID" # the namespace is named after the run's PID
no_leftovers sigint "$SNS"

if [ "$FAILS" -ne 0 ]; then
    echo "cli_bench_tiers: $FAILS of $((CHECKS + FAILS)) checks failed" >&2
    exit 1
fi
echo "cli_bench_tiers: all $CHECKS checks passed"
exit 0
