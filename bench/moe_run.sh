#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# moe_run.sh: examples/moe_serve.py, a NumPy MoE server that knows nothing of
# farpool, served from a local pool by `farpool run` (issue 20, performance).
# Every figure is compared with a baseline of the same run.
#
#   1. Shim overhead. A pool on loopback (a metadata node and two members,
#      farpoold of the build tree), the model put into it; in rounds, the
#      program under `farpool run --map MODEL=REGION --cache C` (A) and the
#      same program mapping the region with libfarpool.so (`--api REGION
#      --cache C`, B), the same tokens and seed; also the plain np.memmap of
#      the file from a warm page cache (the ceiling). The order rotates from
#      round to round. Target: A / B >= 0.9.
#   2. A working set bigger than memory. A memory cgroup limited to a third
#      of the model (cgroup v1 memory.limit_in_bytes or v2 memory.max, a
#      fresh cgroup per run); the daemons stay outside it (they are the remote
#      memory). (a) the plain program in the cgroup, the model's pages dropped
#      from the page cache first: the page cache thrashes; (b) the same under
#      `farpool run --cache X`, X inside the limit (the limit less what the
#      program takes besides its cache, measured in a probe run, less a
#      margin). Target: (b) / (a) >= 3 in tokens per second. Also the bytes
#      each read per token: (a) from local storage, the process's read_bytes
#      (/proc/PID/io, which counts the reads it submitted to the block layer,
#      its page faults' read-ahead and madvise(WILLNEED) included); (b) from
#      the pool, the shim's --stats bytes_in.
#   3. What this machine can do, in the same run: the disk read cold
#      (O_DIRECT, sequential 1 MiB, random 4 KiB and random read-ahead-sized
#      reads of the model file) and loopback fetching (bench_net --quick).
#
# Usage: bench/moe_run.sh [OPTIONS]
#   --build DIR       build tree: farpoold, farpool, libfarpool-preload.so,
#                     libfarpool.so, bench/bench_net (default: build)
#   --size SIZE       model size for moe_serve.py make (default 2G)
#   --model FILE      use this model file (made by moe_serve.py make) instead
#                     of writing one; it is not deleted
#   --dir DIR         where the model is written (default /var/tmp; not tmpfs)
#   --runs N          rounds; figures are medians (default 5)
#   --tokens N        tokens per run of part 1 (default 64)
#   --cg-tokens N     tokens per run of part 2 (default 32)
#   --top-k K         experts per layer and token (default 2)
#   --seed S          router seed (default 1)
#   --cache SIZE      part 1's cache, both A and B (default: the model's size)
#   --limit SIZE      part 2's memory limit (default: a third of the model)
#   --cg-cache SIZE   part 2's cache (default: measured, see above)
#   --margin SIZE     part 2: room left under the limit (default 64M)
#   --granule SIZE    the region's block size for farpool put (default 2M: each
#                     block one huge page, moved into place, not copied)
#   --part LIST       overhead, cgroup, limits, all (default all); comma list
#   --timeout SEC     any one program run (default 900)
#   --quick           smoke run: 512M model, 2 rounds, 8 tokens
#   --cpu split|free  split (default, with 2 CPUs or more): the pool's daemons
#                     on the last CPU, every program run on the others, as
#                     memory nodes on other machines would leave this one's
#                     CPUs to the program (and farpool's engine thread shares
#                     the program's); free: no placement (on 2 vCPUs a run
#                     then goes 2-3x slower whenever the scheduler puts the
#                     engine beside a daemon)
#   --prefault on|off on (default): the pool rows take their cache's memory as
#                     the model is mapped (`farpool run --prefault`, the API's
#                     prefault), before the timed tokens, as a model server
#                     does once at start; off: at first touches, inside them
#                     (on these guests memory new to a process comes from the
#                     host at 0.3-0.6 GB/s, and such a run went 2-5x slower)
#   --python PATH     a python3 with numpy (default: /usr/bin/python3, else
#                     the first python3 in PATH that imports numpy)
# Environment: MOE_SIZE, MOE_RUNS, MOE_TOKENS, MOE_CG_TOKENS set the defaults.
#
# Markdown tables on stdout, one line per run on stderr. Exit status: 0 when it
# measured (a part skipped is said so), 1 on a failure (a daemon that does not
# start, a run that fails, outputs that differ, a model the shim does not
# serve), 2 on bad usage, 77 when nothing could be measured (part 2 alone
# without root). Part 2 needs root (cgroups, and dropping the page cache);
# without it the part is skipped. Everything it starts is stopped, and the
# cgroups and the temporary directory it made are removed, however it ends.
set -u

PROG=moe_run.sh
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(dirname "$HERE")

die() {
    echo "$PROG: $*" >&2
    exit 1
}
usage() {
    sed -n '/^# Usage:/,/^# Environment/p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# SIZE (digits with an optional K, M, G, T suffix) in bytes.
to_bytes() {
    local n=${1%[kKmMgGtT]} u=${1##*[0-9]}
    case $n in '' | *[!0-9]*) return 1 ;; esac
    case $u in
    '') echo "$n" ;;
    k | K) echo $((n << 10)) ;;
    m | M) echo $((n << 20)) ;;
    g | G) echo $((n << 30)) ;;
    t | T) echo $((n << 40)) ;;
    *) return 1 ;;
    esac
}
posint() {
    case $2 in '' | *[!0-9]*) echo "$PROG: $1 must be a positive integer, not '$2'" >&2; exit 2 ;; esac
    [ "$2" -ge 1 ] || { echo "$PROG: $1 must be at least 1" >&2; exit 2; }
}

BUILD=build
SIZE=${MOE_SIZE:-2G}
MODEL=
DIR=/var/tmp
RUNS=${MOE_RUNS:-5}
TOKENS=${MOE_TOKENS:-64}
CG_TOKENS=${MOE_CG_TOKENS:-32}
TOPK=2
SEED=1
CACHE=
LIMIT=
CG_CACHE=
MARGIN=64M
GRANULE=2M
PARTS=all
T=900
CPU_MODE=split
PREFAULT=on
PY=${PYTHON:-}
while [ $# -gt 0 ]; do
    case $1 in
    --build | --size | --model | --dir | --runs | --tokens | --cg-tokens | --top-k | --seed | \
        --cache | --limit | --cg-cache | --margin | --granule | --part | --timeout | --python | --cpu | --prefault)
        [ $# -ge 2 ] || { echo "$PROG: $1 needs a value" >&2; exit 2; }
        case $1 in
        --build) BUILD=$2 ;;
        --size) SIZE=$2 ;;
        --model) MODEL=$2 ;;
        --dir) DIR=$2 ;;
        --runs) RUNS=$2 ;;
        --tokens) TOKENS=$2 ;;
        --cg-tokens) CG_TOKENS=$2 ;;
        --top-k) TOPK=$2 ;;
        --seed) SEED=$2 ;;
        --cache) CACHE=$2 ;;
        --limit) LIMIT=$2 ;;
        --cg-cache) CG_CACHE=$2 ;;
        --margin) MARGIN=$2 ;;
        --granule) GRANULE=$2 ;;
        --part) PARTS=$2 ;;
        --timeout) T=$2 ;;
        --python) PY=$2 ;;
        --cpu) CPU_MODE=$2 ;;
        --prefault) PREFAULT=$2 ;;
        esac
        shift 2
        ;;
    --quick)
        SIZE=512M RUNS=2 TOKENS=8 CG_TOKENS=8
        shift
        ;;
    -h | --help) usage ;;
    *) echo "$PROG: unknown argument '$1'" >&2; usage ;;
    esac
done
for v in RUNS TOKENS CG_TOKENS TOPK T; do posint "--$(echo $v | tr 'A-Z_' 'a-z-')" "${!v}"; done
case $SEED in '' | *[!0-9]*) echo "$PROG: --seed must be a number" >&2; exit 2 ;; esac
to_bytes "$SIZE" >/dev/null || { echo "$PROG: --size: not a size '$SIZE'" >&2; exit 2; }
MARGIN_B=$(to_bytes "$MARGIN") || { echo "$PROG: --margin: not a size '$MARGIN'" >&2; exit 2; }
for v in CACHE LIMIT CG_CACHE; do
    if [ -n "${!v}" ]; then
        to_bytes "${!v}" >/dev/null || { echo "$PROG: not a size '${!v}'" >&2; exit 2; }
    fi
done
DO_OVERHEAD=0 DO_CGROUP=0 DO_LIMITS=0
for p in ${PARTS//,/ }; do
    case $p in
    overhead) DO_OVERHEAD=1 ;;
    cgroup) DO_CGROUP=1 ;;
    limits) DO_LIMITS=1 ;;
    all) DO_OVERHEAD=1 DO_CGROUP=1 DO_LIMITS=1 ;;
    *) echo "$PROG: --part: unknown part '$p' (overhead, cgroup, limits, all)" >&2; exit 2 ;;
    esac
done

# --- what it runs ---------------------------------------------------------------------
BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || die "no build tree '$BUILD' (--build DIR)"
FARPOOLD=$BUILD/farpoold
FARPOOL=$BUILD/farpool
for f in "$FARPOOLD" "$FARPOOL"; do [ -x "$f" ] || die "$f is not there: build first"; done
[ -f "$BUILD/libfarpool-preload.so" ] || die "$BUILD/libfarpool-preload.so is not there"
[ -f "$BUILD/libfarpool.so" ] || die "$BUILD/libfarpool.so is not there"
SERVE=${MOE_SERVE:-$SRC/examples/moe_serve.py}
[ -f "$SERVE" ] || die "$SERVE is not there"
if [ -z "$PY" ]; then
    # The first python3 in PATH may be another installation without numpy (pyenv).
    for c in /usr/bin/python3 python3; do
        if "$c" -c 'import numpy' 2>/dev/null; then
            PY=$(command -v "$c")
            break
        fi
    done
    [ -n "$PY" ] || die "no python3 that imports numpy (apt-get install python3-numpy, or --python PATH)"
else
    "$PY" -c 'import numpy' 2>/dev/null || die "$PY cannot import numpy"
fi
for tool in timeout setpriv taskset; do
    command -v "$tool" >/dev/null || die "$tool not found (util-linux, coreutils)"
done
case $PREFAULT in
on) PF=(--prefault) ;;
off) PF=() ;;
*) echo "$PROG: --prefault must be on or off" >&2; exit 2 ;;
esac
# CPU placement: DAEMON_PIN and PROG_PIN prefix the daemons and the runs.
NCPU=$(nproc)
DAEMON_PIN=() PROG_PIN=()
case $CPU_MODE in
split)
    if [ "$NCPU" -ge 2 ]; then
        DAEMON_PIN=(taskset -c $((NCPU - 1)))
        PROG_PIN=(taskset -c 0-$((NCPU - 2)))
    else
        CPU_MODE=free
    fi
    ;;
free) ;;
*) echo "$PROG: --cpu must be split or free" >&2; exit 2 ;;
esac
IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1
if [ "$DO_CGROUP" = 1 ] && [ "$IS_ROOT" = 0 ]; then
    echo "$PROG: part 2 (cgroup) skipped: it needs root (a memory cgroup, dropping the page cache)" >&2
    DO_CGROUP=0
    if [ "$DO_OVERHEAD" = 0 ] && [ "$DO_LIMITS" = 0 ]; then exit 77; fi
fi

unset LD_PRELOAD FARPOOL_SECRET_FILE FARPOOL_LOG_LEVEL FARPOOL_POOL
unset FARPOOL_PRELOAD_MAP FARPOOL_PRELOAD_CACHE FARPOOL_PRELOAD_STATS FARPOOL_PRELOAD_QUIET
unset FARPOOL_PRELOAD_READAHEAD FARPOOL_PRELOAD_ROOT
export FARPOOL_LIB=$BUILD/libfarpool.so

# --- cleanup --------------------------------------------------------------------------
[ -d "$DIR" ] || die "--dir $DIR is not a directory"
[ "$(stat -f -c %T "$DIR")" = tmpfs ] && [ -z "$MODEL" ] &&
    die "--dir $DIR is tmpfs: the model must be on a disk"
TMP=$(mktemp -d "$DIR/moe_run.XXXXXX") || die "cannot make a directory in $DIR"
export XDG_CACHE_HOME=$TMP/xdg # the shim's checksum cache
PIDS=()
CGROUPS=()
CHILD=
cleanup() {
    local pid cg
    if [ -n "$CHILD" ]; then
        kill -TERM "$CHILD" 2>/dev/null # timeout(1) passes it on to the program
        wait "$CHILD" 2>/dev/null
    fi
    for pid in "${PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    for cg in "${CGROUPS[@]}"; do
        [ -d "$cg" ] || continue
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            for pid in $(cat "$cg/cgroup.procs" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
            rmdir "$cg" 2>/dev/null && break
            sleep 0.2
        done
        [ -d "$cg" ] && echo "$PROG: could not remove cgroup $cg" >&2
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# --- helpers in Python: the JSON and stats, the page cache, the disk, the report ----
H=$TMP/h.py
cat >"$H" <<'PYEOF'
import json, mmap, os, random, re, statistics, sys, time

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None

def cmd_result(out, err, io):
    """tokens_per_s seconds tokens output expert_bytes_per_token read_bytes bytes_in
    faults evictions cache_peak fetch_errors, tab-separated ('-' where absent)."""
    d = {}
    for line in open(out):
        line = line.strip()
        if line.startswith("{"):
            d = json.loads(line)
    st = {}
    served = False
    for line in open(err, errors="replace"):
        if "farpool-preload: stats: region" in line:
            served = True
            for k, v in re.findall(r"(\w+) (\d+)", line.split("):", 1)[1]):
                st[k] = st.get(k, 0) + int(v)
    rb = "-"
    if os.path.exists(io):
        for line in open(io):
            if line.startswith("read_bytes:"):
                rb = line.split()[1]
    f = [d.get("tokens_per_s"), d.get("seconds"), d.get("tokens"), d.get("output"),
         d.get("expert_bytes_per_token"), rb]
    f += [st.get(k) if served else None
          for k in ("bytes_in", "faults", "evictions", "cache_peak", "fetch_errors")]
    print("\t".join("-" if x is None else str(x) for x in f))

def cmd_stat(err, field):
    for line in open(err, errors="replace"):
        m = re.search(r"farpool-preload: stats: .* %s (\d+)" % field, line)
        if m:
            print(m.group(1)); return
    print(0)

def cmd_drop(path):
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd) if False else None
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)

def cmd_disk(path, ra_bytes):
    """O_DIRECT reads of the file: sequential 1 MiB (up to 1 GiB or 3 s), random
    4 KiB and random ra_bytes (2 s each, queue depth 1). Prints GB/s and IOPS."""
    size = os.path.getsize(path)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    out = {}
    def run(block, rand, limit_bytes, limit_s):
        buf = mmap.mmap(-1, block)
        n = size // block
        rng = random.Random(7)
        done, i, t0 = 0, 0, time.perf_counter()
        while done < limit_bytes and time.perf_counter() - t0 < limit_s:
            blk = rng.randrange(n) if rand else i % n
            got = os.preadv(fd, [buf], blk * block)
            if got <= 0:
                break
            done += got; i += 1
        dt = time.perf_counter() - t0
        return done / dt / 1e9, i / dt
    # A first, untimed pass of a few reads, so that a cold device wakes up.
    run(1 << 20, False, 8 << 20, 1)
    out["seq_1m_gbs"], _ = run(1 << 20, False, min(size, 1 << 30), 3)
    out["rand_4k_gbs"], out["rand_4k_iops"] = run(4096, True, 1 << 40, 2)
    out["rand_ra_gbs"], out["rand_ra_iops"] = run(ra_bytes, True, 1 << 40, 2)
    os.close(fd)
    print(json.dumps(out))

def cmd_net(path):
    d = json.load(open(path))
    o = {}
    for r in d["rows"]:
        if r["metric"].startswith("stream 1 MiB"):
            o["raw_stream_gbs"], o["fp_stream_gbs"] = r["raw"], r["farpool"]
        if r["metric"].startswith("64 KiB latency median"):
            o["raw_64k_us"], o["fp_64k_us"] = r["raw"], r["farpool"]
    print(json.dumps(o))

# --- the report ---------------------------------------------------------------------
def fmt(x, nd=2):
    return "-" if x is None else ("%.*f" % (nd, x))

def mib(x):
    return "-" if x is None else "%.1f" % (x / 2**20)

def load_rows(tsv):
    rows = []
    cols = ("part row round rc tps seconds tokens output ebpt read_bytes bytes_in faults "
            "evictions cache_peak fetch_errors cg_peak cg_failcnt cg_majflt dev_bytes others").split()
    for line in open(tsv):
        v = line.rstrip("\n").split("\t")
        r = dict(zip(cols, v))
        for k in cols:
            if k in ("part", "row", "output"):
                continue
            r[k] = None if r.get(k) in (None, "-", "") else float(r[k])
        rows.append(r)
    return rows

def cmd_report(tsv, meta_path):
    meta = {}
    for line in open(meta_path):
        k, _, v = line.rstrip("\n").partition("=")
        meta[k] = v
    rows = load_rows(tsv)
    ok = True
    def sel(part, row):
        return [r for r in rows if r["part"] == part and r["row"] == row]
    def per_round_ratio(part, num, den):
        a = {r["round"]: r["tps"] for r in sel(part, num)}
        b = {r["round"]: r["tps"] for r in sel(part, den)}
        return [a[k] / b[k] for k in a if k in b and a[k] and b[k]]
    outputs = {}
    for r in rows:
        if r["rc"] == 0 and r["output"] not in (None, "-"):
            outputs.setdefault(r["part"], set()).add(r["output"])
    print("Model %s: %s; %s tokens per run (part 1), %s (part 2), top-%s, seed %s; %s rounds, "
          "medians." % (meta["model"], meta["model_desc"], meta["tokens"], meta["cg_tokens"],
                        meta["topk"], meta["seed"], meta["runs"]))
    print("Machine: %s; load average %s at the start, %s at the end; %s." %
          (meta["machine"], meta["load_start"], meta.get("load_end", "-"), meta.get("cpus", "-")))
    print()
    ebpt = med([r["ebpt"] for r in rows])
    if sel("1", "shim"):
        print("## 1. Shim overhead (pool on loopback, cache %s MiB, every run starts with an "
              "empty cache)" % meta["cache_mib"])
        print()
        print("| row | tokens/s (median) | runs | vs API | vs warm page cache | bytes from the pool per token (MiB) |")
        print("|---|--:|--:|--:|--:|--:|")
        api = med([r["tps"] for r in sel("1", "api")])
        ref = med([r["tps"] for r in sel("1", "plain")])
        for row, label in (("shim", "A: np.memmap under `farpool run --map`"),
                           ("api", "B: the same program, --api (libfarpool.so by ctypes)"),
                           ("plain", "np.memmap of the file, warm page cache (ceiling)")):
            rs = sel("1", row)
            if not rs:
                continue
            t = med([r["tps"] for r in rs])
            bi = med([r["bytes_in"] / r["tokens"] if r["bytes_in"] is not None else None
                      for r in rs])
            print("| %s | %s | %s | %s | %s | %s |" % (
                label, fmt(t), " ".join(fmt(r["tps"]) for r in rs),
                fmt(t / api, 3) + "x" if api and t else "-",
                fmt(t / ref, 3) + "x" if ref and t else "-", mib(bi)))
        rr = per_round_ratio("1", "shim", "api")
        if rr:
            m = med(rr)
            print()
            print("A / B, the median of the rounds' own ratios: **%.3fx** (rounds: %s); "
                  "target >= 0.9x: %s." % (m, ", ".join("%.3f" % x for x in rr),
                                           "met" if m >= 0.9 else "not met"))
        print()
    if sel("2", "plain") or sel("2", "shim"):
        print("## 2. Working set bigger than memory (cgroup %s, limit %s MiB = model / %s; "
              "farpool cache %s MiB)" % (meta["cg_kind"], meta["limit_mib"], meta["limit_div"],
                                         meta["cg_cache_mib"]))
        print()
        print("The program besides its cache took %s MiB of the cgroup in a probe run "
              "(peak %s MiB less the shim's cache_peak %s MiB); margin %s MiB." %
              (meta["probe_overhead_mib"], meta["probe_peak_mib"], meta["probe_cache_mib"],
               meta["margin_mib"]))
        print()
        print("| row | tokens/s (median) | runs | local disk read per token (MiB) | from the pool per token (MiB) | per token / needed | read rate (GB/s) | cgroup peak (MiB) | limit hits |")
        print("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
        for row, label in (("plain", "(a) np.memmap of the file, cold page cache, in the cgroup"),
                           ("shim", "(b) the same under `farpool run --map --cache`, in the cgroup")):
            rs = sel("2", row)
            if not rs:
                continue
            t = med([r["tps"] for r in rs])
            rd = med([r["read_bytes"] / r["tokens"] if r["read_bytes"] is not None and r["tokens"] else None for r in rs])
            bi = med([r["bytes_in"] / r["tokens"] if r["bytes_in"] is not None else None for r in rs])
            moved = bi if row == "shim" else rd
            key = "bytes_in" if row == "shim" else "read_bytes"
            rate = med([r[key] / r["seconds"] / 1e9 if r[key] is not None and r["seconds"] else None
                        for r in rs])
            print("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                label, fmt(t, 3), " ".join(fmt(r["tps"], 3) for r in rs), mib(rd), mib(bi),
                fmt(moved / ebpt, 2) + "x" if moved is not None and ebpt else "-", fmt(rate, 2),
                mib(med([r["cg_peak"] for r in rs])),
                fmt(med([r["cg_failcnt"] for r in rs]), 0)))
        print()
        print("A token needs %s MiB of experts (expert_bytes_per_token)." % mib(ebpt))
        rr = per_round_ratio("2", "shim", "plain")
        if rr:
            m = med(rr)
            print("(b) / (a), the median of the rounds' own ratios: **%.2fx** (rounds: %s); "
                  "target >= 3x: %s." % (m, ", ".join("%.2f" % x for x in rr),
                                         "met" if m >= 3 else "not met"))
        dev = med([r["dev_bytes"] / r["tokens"] if r["dev_bytes"] is not None and r["tokens"] else None
                   for r in sel("2", "plain")])
        if dev is not None:
            print("Cross-check of (a): the block device %s read %s MiB per token during its runs "
                  "(the whole machine's reads)." % (meta["dev"], mib(dev)))
        print()
    lim = {}
    if meta.get("disk"):
        lim.update(json.loads(meta["disk"]))
    if meta.get("net"):
        lim.update(json.loads(meta["net"]))
    if lim:
        print("## 3. This machine, the same run")
        print()
        print("| what | figure |")
        print("|---|--:|")
        ra = int(meta["ra_kib"])
        if "seq_1m_gbs" in lim:
            print("| disk, O_DIRECT sequential 1 MiB reads | %.2f GB/s |" % lim["seq_1m_gbs"])
            print("| disk, O_DIRECT random 4 KiB reads, one at a time | %.0f IOPS (%.3f GB/s) |" %
                  (lim["rand_4k_iops"], lim["rand_4k_gbs"]))
            print("| disk, O_DIRECT random %d KiB reads (the read-ahead window), one at a time | %.0f IOPS (%.2f GB/s) |" %
                  (ra, lim["rand_ra_iops"], lim["rand_ra_gbs"]))
        if "fp_stream_gbs" in lim:
            print("| loopback, farpool READ stream 1 MiB x16 (bench_net --quick) | %.2f GB/s (raw TCP one-way %.2f) |" %
                  (lim["fp_stream_gbs"], lim["raw_stream_gbs"]))
            print("| loopback, 64 KiB READ round trip, median | %.1f us (raw %.1f) |" %
                  (lim["fp_64k_us"], lim["raw_64k_us"]))
        print()
        rd = med([r["read_bytes"] / r["tokens"] if r["read_bytes"] is not None and r["tokens"] else None for r in sel("2", "plain")])
        bi = med([r["bytes_in"] / r["tokens"] if r["bytes_in"] is not None else None for r in sel("2", "shim")])
        ta = med([r["tps"] for r in sel("2", "plain")])
        tb = med([r["tps"] for r in sel("2", "shim")])
        # The compute of a token: the warm page cache row of part 1, if measured.
        ref = med([r["tps"] for r in sel("1", "plain")])
        def bound(name, moved, gbs, made):
            io = moved / (gbs * 1e9)
            line = ("%s: %s MiB per token at %.2f GB/s is %.1f ms, at most %.2f tokens/s" %
                    (name, mib(moved), gbs, io * 1e3, 1 / io))
            if ref:
                line += ("; with the compute (%.1f ms per token from a warm page cache, part 1) "
                         "not overlapped, %.2f" % (1e3 / ref, 1 / (io + 1 / ref)))
            print(line + "; it made %s." % fmt(made, 3))
            print()
        if rd and "seq_1m_gbs" in lim:
            bound("(a) at the disk's sequential rate", rd, lim["seq_1m_gbs"], ta)
        if bi and "fp_stream_gbs" in lim:
            bound("(b) at the loopback READ stream", bi, lim["fp_stream_gbs"], tb)
        print()
    for part in ("1", "2"):
        o = [r["others"] for r in rows if r["part"] == part and r["others"] is not None]
        if o:
            print("Part %s: other processes kept %.2f CPUs busy during a run (median; at most %.2f)." %
                  (part, med(o), max(o)))
    print()
    for part, outs in sorted(outputs.items()):
        if len(outs) != 1:
            ok = False
            print("**Outputs differ** in part %s: %s" % (part, ", ".join(sorted(outs))))
    failed = [r for r in rows if r["rc"] != 0]
    for r in failed:
        ok = False
        print("**Run failed**: part %s row %s round %d exited %d" % (r["part"], r["row"], r["round"], r["rc"]))
    if ok and outputs:
        print("Every run of a part computed the same output (%s)." %
              "; ".join("part %s: %s" % (p, next(iter(o))) for p, o in sorted(outputs.items())))
    sys.exit(0 if ok else 1)

if __name__ == "__main__":
    c, a = sys.argv[1], sys.argv[2:]
    {"result": cmd_result, "stat": cmd_stat, "drop": cmd_drop, "disk": lambda p, r: cmd_disk(p, int(r)),
     "net": cmd_net, "report": cmd_report}[c](*a)
PYEOF

META=$TMP/meta
ROWS=$TMP/rows.tsv
: >"$ROWS"
meta() { echo "$1=$2" >>"$META"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
meta machine "$(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), kernel $(uname -r)"
meta load_start "$(loadavg)"
if [ "$CPU_MODE" = split ]; then
    meta cpus "daemons on CPU $((NCPU - 1)), the program runs on CPUs 0-$((NCPU - 2)) (--cpu split)"
else
    meta cpus "no CPU placement (--cpu free)"
fi
meta cpus "$(sed -n 's/^cpus=//p' "$META"); pool rows --prefault $PREFAULT"
echo "$PROG: load average $(loadavg); busiest processes:" >&2
ps -eo pcpu,comm --sort=-pcpu | sed -n '2,4p' | sed 's/^/    /' >&2

# --- the model --------------------------------------------------------------------------
if [ -z "$MODEL" ]; then
    MODEL=$TMP/moe-model.bin
    echo "$PROG: writing a model of $SIZE to $MODEL" >&2
    timeout "$T" "$PY" "$SERVE" make "$MODEL" --size "$SIZE" --seed "$SEED" >"$TMP/make.out" 2>"$TMP/make.err" ||
        die "moe_serve.py make failed: $(tail -3 "$TMP/make.err")"
    sync "$MODEL" 2>/dev/null || sync
fi
MODEL=$(realpath "$MODEL") || die "no model file"
[ -f "$MODEL" ] || die "$MODEL is not a file"
MODEL_B=$(stat -c %s "$MODEL")
MODEL_DESC=$("$PY" -c 'import json,sys; h=json.loads(open(sys.argv[1],"rb").read(4096)); print("%d layers x %d experts of %d MiB" % (h["layers"], h["experts"], 2*h["d_model"]*h["d_ff"]*4 >> 20))' "$MODEL") ||
    die "$MODEL is not a moe_serve.py model"
meta model "$(basename "$MODEL") $((MODEL_B >> 20)) MiB"
meta model_desc "$MODEL_DESC"
meta tokens "$TOKENS"
meta cg_tokens "$CG_TOKENS"
meta topk "$TOPK"
meta seed "$SEED"
meta runs "$RUNS"
# The block device under the model, for the cross-check of part 2 (a).
DEVNUM=$(stat -c '%Hd:%Ld' "$MODEL" 2>/dev/null)
DEVSTAT=/sys/dev/block/$DEVNUM/stat
[ -r "$DEVSTAT" ] || DEVSTAT=
DEVNAME=$( [ -n "$DEVSTAT" ] && basename "$(readlink -f "/sys/dev/block/$DEVNUM")")
meta dev "${DEVNAME:-?}"
RA_KIB=128
if [ -n "$DEVNAME" ]; then
    q=/sys/class/block/$DEVNAME/queue/read_ahead_kb
    [ -r "$q" ] || q=/sys/class/block/$DEVNAME/../queue/read_ahead_kb
    [ -r "$q" ] && RA_KIB=$(cat "$q")
fi
meta ra_kib "$RA_KIB"
dev_sectors() { [ -n "$DEVSTAT" ] && awk '{print $3}' "$DEVSTAT" || echo 0; }
# CPU ticks: the machine's busy time (user, nice, system of /proc/stat; not irq and
# softirq, which loopback traffic makes and no process is charged with)
# and the daemons' (utime + stime), for what other processes took during a run.
busy_ticks() { awk '$1 == "cpu" {print $2 + $3 + $4; exit}' /proc/stat; }
daemon_ticks() {
    local pid t=0 st
    for pid in "${PIDS[@]}"; do
        st=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        st=${st##*) }
        # shellcheck disable=SC2086 # fields
        set -- $st
        t=$((t + ${12} + ${13}))
    done
    echo "$t"
}
HZ=$(getconf CLK_TCK)

# --- the pool ---------------------------------------------------------------------------
start_node() {
    local name=$1
    shift
    "${DAEMON_PIN[@]}" setpriv --pdeathsig KILL "$FARPOOLD" --listen 127.0.0.1:0 --port-file "$TMP/$name.port" \
        --log-level warn "$@" >"$TMP/$name.log" 2>&1 </dev/null &
    PID=$!
    PIDS+=("$PID")
    for _ in $(seq 1 200); do
        if [ -s "$TMP/$name.port" ] && grep -q $'\n' "$TMP/$name.port" 2>/dev/null; then
            ADDR=$(head -1 "$TMP/$name.port")
            return 0
        fi
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.05
    done
    die "farpoold $name did not start: $(tail -3 "$TMP/$name.log")"
}
POOL_URL=
start_pool() {
    local cap=$(((MODEL_B >> 20) + 512))M live=0
    start_node meta --meta-dir "$TMP/meta.d" --capacity "$cap"
    POOL_URL=farpool://$ADDR
    start_node m1 --pool "$POOL_URL" --capacity "$cap"
    start_node m2 --pool "$POOL_URL" --capacity "$cap"
    for _ in $(seq 1 200); do
        if timeout 30 "$FARPOOL" status --pool "$POOL_URL" --json 2>/dev/null | "$PY" -c \
            'import json,sys; d=json.load(sys.stdin); sys.exit(0 if len(d["nodes"]) == 3 and all(n["state"] == "live" for n in d["nodes"]) else 1)'; then
            live=1
            break
        fi
        sleep 0.1
    done
    [ "$live" = 1 ] || die "the pool has no 3 live nodes in 20 s"
    local t0
    t0=$(date +%s%N)
    timeout "$T" "$FARPOOL" put "$MODEL" moe --replicas 1 --granule "$GRANULE" --quiet --pool "$POOL_URL" \
        >"$TMP/put.out" 2>"$TMP/put.err" || die "farpool put failed: $(tail -3 "$TMP/put.err")"
    echo "$PROG: pool $POOL_URL (3 nodes), model put as region moe (granule $GRANULE, 1 copy) in" \
        "$((($(date +%s%N) - t0) / 1000000)) ms" >&2
}
NEED_POOL=$((DO_OVERHEAD + DO_CGROUP))
[ "$NEED_POOL" -gt 0 ] && start_pool

# --- one run ----------------------------------------------------------------------------
# run_one PART ROW ROUND CGROUP_DIR CMD...: CMD under timeout $T, in CGROUP_DIR when
# not empty (the wrapper shell moves itself there, then runs CMD as its child and
# writes its own /proc/PID/io, which then includes the reaped child's reads).
# Appends a row to $ROWS and a line to stderr.
WRAP='cg=$1 io=$2; shift 2; if [ -n "$cg" ]; then echo $$ >"$cg/cgroup.procs" || exit 125; fi
"$@"; rc=$?; cat /proc/$$/io >"$io"; cat /proc/$$/stat >"$io.stat"; exit $rc'
run_one() {
    local part=$1 row=$2 round=$3 cg=$4 name s0 s1 rc res peak=- failcnt=- majflt=-
    shift 4
    name=$part-$row-$round
    s0=$(dev_sectors) b0=$(busy_ticks) d0=$(daemon_ticks) w0=$(date +%s%N)
    # In the background, so that a signal to this script is handled at once.
    timeout "$T" "${PROG_PIN[@]}" sh -c "$WRAP" sh "$cg" "$TMP/$name.io" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" </dev/null &
    CHILD=$!
    wait "$CHILD"
    rc=$?
    CHILD=
    s1=$(dev_sectors) b1=$(busy_ticks) d1=$(daemon_ticks) w1=$(date +%s%N)
    # Others: the machine's busy time less the program's (its wrapper's children's,
    # which the program's threads are) and the daemons', in CPUs over the run.
    own=0
    if [ -s "$TMP/$name.io.stat" ]; then
        own=$(sed 's/.*) //' "$TMP/$name.io.stat" | awk '{print $14 + $15 + $12 + $13}')
    fi
    others=$(awk -v b=$((b1 - b0)) -v o="$own" -v d=$((d1 - d0)) -v hz="$HZ" -v w=$((w1 - w0)) \
        'BEGIN { x = (b - o - d) / hz / (w / 1e9); if (x < 0) x = 0; printf "%.2f", x }')
    if [ -n "$cg" ]; then
        if [ "$CG_KIND" = v1 ]; then
            peak=$(cat "$cg/memory.max_usage_in_bytes")
            failcnt=$(cat "$cg/memory.failcnt")
            majflt=$(awk '$1 == "total_pgmajfault" {print $2}' "$cg/memory.stat")
        else
            peak=$(cat "$cg/memory.peak" 2>/dev/null || echo -)
            failcnt=$(awk '$1 == "max" {print $2}' "$cg/memory.events")
            majflt=$(awk '$1 == "pgmajfault" {print $2}' "$cg/memory.stat")
        fi
    fi
    res=$("$PY" "$H" result "$TMP/$name.out" "$TMP/$name.err" "$TMP/$name.io")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$part" "$row" "$round" "$rc" "$res" "$peak" \
        "$failcnt" "${majflt:--}" "$(((s1 - s0) * 512))" "$others" >>"$ROWS"
    echo "$PROG: part $part $row round $round: rc $rc, $(echo "$res" | awk -F'\t' '{printf "%s tokens/s, read_bytes %s, bytes_in %s", $1, $6, $7}')${cg:+, cgroup peak $peak}, others $others CPUs" >&2
    if [ "$rc" -ne 0 ]; then
        echo "$PROG: $* exited $rc:" >&2
        tail -5 "$TMP/$name.err" | sed 's/^/    /' >&2
        return 1
    fi
    if [ "$row" = shim ] && ! grep -q 'farpool-preload: stats: region moe ' "$TMP/$name.err"; then
        echo "$PROG: the shim did not serve the model from the pool:" >&2
        sed 's/^/    /' "$TMP/$name.err" | head -5 >&2
        return 1
    fi
    if grep -v 'farpool-preload: stats:' "$TMP/$name.err" | grep -Eqi 'warn|error|cannot|other bytes'; then
        echo "$PROG: the shim warned:" >&2
        grep -v 'farpool-preload: stats:' "$TMP/$name.err" | head -5 | sed 's/^/    /' >&2
    fi
    return 0
}
# cmd_of ROW CACHE TOKENS: the command line of a row, into CMD.
cmd_of() {
    local row=$1 cache=$2 tokens=$3
    local serve=("$PY" "$SERVE" serve "$MODEL" --tokens "$tokens" --top-k "$TOPK" --seed "$SEED" --json)
    case $row in
    plain) CMD=("${serve[@]}") ;;
    shim) CMD=("$FARPOOL" run --pool "$POOL_URL" --map "$MODEL=moe" --cache "$cache" "${PF[@]}" --stats -- "${serve[@]}") ;;
    api) CMD=("${serve[@]}" --api moe --pool "$POOL_URL" --cache "$cache" "${PF[@]}") ;;
    esac
}

# The shim's checksum of the model, computed once here (reading the whole file) and
# kept in $XDG_CACHE_HOME: no measured run pays it, nor charges it to a cgroup.
if [ "$NEED_POOL" -gt 0 ]; then
    cmd_of shim 64M 1
    run_one 0 shim 0 "" "${CMD[@]}" || die "the warm-up under farpool run failed"
fi

# --- 1. shim overhead -----------------------------------------------------------------
if [ "$DO_OVERHEAD" = 1 ]; then
    CACHE_B=$( [ -n "$CACHE" ] && to_bytes "$CACHE" || echo $(((MODEL_B + (1 << 20) - 1) >> 20 << 20)))
    meta cache_mib $((CACHE_B >> 20))
    cat "$MODEL" >/dev/null # the reference row reads a warm page cache
    echo "$PROG: part 1, shim overhead: $RUNS rounds of $TOKENS tokens, cache $((CACHE_B >> 20)) MiB" >&2
    ROWS1=(shim api plain)
    # An untimed run of each first (the daemons' and the page cache's first touches).
    for row in "${ROWS1[@]}"; do
        cmd_of "$row" "$CACHE_B" "$TOKENS"
        run_one 1w "$row" 0 "" "${CMD[@]}" || die "part 1: the warm-up of $row failed"
    done
    for r in $(seq 1 "$RUNS"); do
        for i in 0 1 2; do
            row=${ROWS1[$(((r + i) % 3))]}
            cmd_of "$row" "$CACHE_B" "$TOKENS"
            run_one 1 "$row" "$r" "" "${CMD[@]}" || die "part 1: a run failed"
        done
    done
fi

# --- 2. a working set bigger than memory ----------------------------------------------
CG_KIND=
CG_BASE=
if [ "$DO_CGROUP" = 1 ]; then
    # v2: a cgroup2 mount whose controllers include memory; v1: the memory hierarchy.
    while read -r _ mnt fstype opts _; do
        if [ "$fstype" = cgroup2 ] && grep -qw memory "$mnt/cgroup.controllers" 2>/dev/null; then
            CG_KIND=v2 CG_BASE=$mnt
            break
        fi
        if [ "$fstype" = cgroup ] && [[ ",$opts," == *,memory,* ]]; then
            CG_KIND=v1 CG_BASE=$mnt
        fi
    done </proc/mounts
    [ -n "$CG_KIND" ] || die "no memory cgroup controller mounted (v1 or v2)"
    if [ "$CG_KIND" = v2 ] && ! grep -qw memory "$CG_BASE/cgroup.subtree_control"; then
        echo +memory >"$CG_BASE/cgroup.subtree_control" ||
            die "cannot enable the memory controller in $CG_BASE/cgroup.subtree_control"
    fi
    meta cg_kind "$CG_KIND ($CG_BASE)"
    # new_cgroup [LIMIT]: a fresh cgroup in CG (removed at exit, or by del_cgroup).
    CG_N=0
    new_cgroup() {
        CG_N=$((CG_N + 1))
        CG=$CG_BASE/farpool-moe-$$-$CG_N
        mkdir "$CG" || die "cannot make cgroup $CG"
        CGROUPS+=("$CG")
        [ -n "${1:-}" ] || return 0
        if [ "$CG_KIND" = v1 ]; then
            echo "$1" >"$CG/memory.limit_in_bytes" || die "cannot set $CG/memory.limit_in_bytes"
        else
            echo "$1" >"$CG/memory.max" || die "cannot set $CG/memory.max"
            [ -w "$CG/memory.swap.max" ] && echo 0 >"$CG/memory.swap.max"
        fi
    }
    del_cgroup() {
        for _ in $(seq 1 50); do
            rmdir "$CG" 2>/dev/null && return 0
            sleep 0.1
        done
        echo "$PROG: could not remove $CG yet (removed at exit)" >&2
    }
    # drop_model: the model's pages out of the page cache (POSIX_FADV_DONTNEED, which
    # drops the clean pages no process maps, whichever cgroup they are charged to),
    # checked with fincore; else all clean caches (drop_caches).
    drop_model() {
        "$PY" "$H" drop "$MODEL"
        local res
        res=$(fincore --bytes --noheadings --output RES "$MODEL" 2>/dev/null | tr -d ' ')
        if [ -z "$res" ] || [ "$res" -gt $((4 << 20)) ]; then
            sync
            echo 1 >/proc/sys/vm/drop_caches
        fi
    }
    LIMIT_DIV=3
    LIMIT_B=$( [ -n "$LIMIT" ] && to_bytes "$LIMIT" || echo $((MODEL_B / 3 >> 12 << 12)))
    [ -n "$LIMIT" ] && LIMIT_DIV=$(awk -v m="$MODEL_B" -v l="$LIMIT_B" 'BEGIN { printf "%.2f", m / l }')
    meta limit_mib $((LIMIT_B >> 20))
    meta limit_div "$LIMIT_DIV"
    meta margin_mib $((MARGIN_B >> 20))
    # The probe: the program under the shim with a small cache, in a cgroup with no
    # limit: what it takes besides its cache (Python, numpy, page tables, the shim).
    PROBE_CACHE=$((32 << 20))
    new_cgroup
    cmd_of shim "$PROBE_CACHE" "$CG_TOKENS"
    drop_model
    run_one 2p shim 0 "$CG" "${CMD[@]}" || die "part 2: the probe run failed"
    if [ "$CG_KIND" = v1 ]; then PEAK=$(cat "$CG/memory.max_usage_in_bytes"); else
        PEAK=$(cat "$CG/memory.peak" 2>/dev/null) || die "no memory.peak in $CG (kernel < 5.19?): give --cg-cache"
    fi
    del_cgroup
    PCACHE=$("$PY" "$H" stat "$TMP/2p-shim-0.err" cache_peak)
    OVER=$((PEAK - PCACHE))
    meta probe_peak_mib $((PEAK >> 20))
    meta probe_cache_mib $((PCACHE >> 20))
    meta probe_overhead_mib $((OVER >> 20))
    if [ -n "$CG_CACHE" ]; then
        CG_CACHE_B=$(to_bytes "$CG_CACHE")
    else
        CG_CACHE_B=$(((LIMIT_B - OVER - MARGIN_B) >> 20 << 20))
    fi
    [ "$CG_CACHE_B" -ge $((32 << 20)) ] ||
        die "part 2: the limit $((LIMIT_B >> 20)) MiB leaves no room for a cache (the program takes $((OVER >> 20)) MiB besides it): a bigger --size"
    meta cg_cache_mib $((CG_CACHE_B >> 20))
    echo "$PROG: part 2: cgroup $CG_KIND, limit $((LIMIT_B >> 20)) MiB; the program takes" \
        "$((OVER >> 20)) MiB besides its cache; cache $((CG_CACHE_B >> 20)) MiB;" \
        "$RUNS rounds of $CG_TOKENS tokens" >&2
    for r in $(seq 1 "$RUNS"); do
        if [ $((r % 2)) = 1 ]; then order="plain shim"; else order="shim plain"; fi
        for row in $order; do
            cmd_of "$row" "$CG_CACHE_B" "$CG_TOKENS"
            new_cgroup "$LIMIT_B"
            drop_model
            run_one 2 "$row" "$r" "$CG" "${CMD[@]}" || die "part 2: a run failed"
            del_cgroup
        done
    done
fi

# --- 3. the machine's own limits ---------------------------------------------------------
if [ "$DO_LIMITS" = 1 ]; then
    echo "$PROG: part 3: the disk (O_DIRECT) and loopback (bench_net --quick)" >&2
    if DISK=$("$PY" "$H" disk "$MODEL" $((RA_KIB << 10)) 2>"$TMP/disk.err"); then
        meta disk "$DISK"
    else
        echo "$PROG: the disk measurement failed: $(tail -1 "$TMP/disk.err")" >&2
    fi
    if [ -x "$BUILD/bench/bench_net" ]; then
        if timeout 120 "$BUILD/bench/bench_net" --quick --runs 1 --json >"$TMP/net.json" 2>"$TMP/net.err"; then
            meta net "$("$PY" "$H" net "$TMP/net.json")"
        else
            echo "$PROG: bench_net failed: $(tail -2 "$TMP/net.err")" >&2
        fi
    else
        echo "$PROG: no $BUILD/bench/bench_net (a build without benchmarks): loopback not measured" >&2
    fi
fi

meta load_end "$(loadavg)"
"$PY" "$H" report "$ROWS" "$META"
