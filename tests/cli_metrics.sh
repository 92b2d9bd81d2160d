#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# farpoold --metrics and farpool status --clients --prometheus, as farpoold(8),
# farpool(1) and docs/operations.md describe them. A pool of three nodes on
# loopback, each serving its metrics on an ephemeral port (given three ways:
# --metrics 127.0.0.1:0, the config file's key, a bare port 0); every scrape
# is checked by `promtool check metrics` (any complaint fails) and for its
# Content-Type. Then: the counters move as the traffic says (a put of 3 MiB
# in 1 MiB slabs with 2 copies writes 6 MiB and allocates 6 slabs; a get
# reads 3 MiB; a missing region is a no_entry error; a malformed frame a
# protocol error), the histograms count what was served, no counter goes
# back between scrapes, the metadata node shows members by state and regions
# by health, and a killed member is seen dead and repaired (copies counted).
# Bad input: a bad --metrics value (exit 2), a path other than /metrics
# (404), a method other than GET (405), a malformed HTTP request (400, the
# daemon serves on), a metrics port taken (exit 1 and why). The client side:
# a program keeps a mapping of the region while status --clients
# --prometheus shows its counters.
#
# Usage: bash cli_metrics.sh FARPOOLD FARPOOL_CLI   ($FP_MAPWAIT: tests/metrics/mapwait)
# Every command runs under timeout(1); every wait is bounded; daemons use
# ephemeral loopback ports and are killed on exit whatever happens.
set -u

FARPOOLD=${1:?usage: $0 FARPOOLD FARPOOL_CLI}
FARPOOL=${2:?usage: $0 FARPOOLD FARPOOL_CLI}
MAPWAIT=${FP_MAPWAIT:-$(dirname "$FARPOOL")/tests/mapwait}
T=10 # seconds any one command may take

[ -x "$FARPOOLD" ] || { echo "SKIP: $FARPOOLD is not executable"; exit 77; }
for tool in timeout python3 curl promtool; do
    # promtool (Debian's prometheus) and curl are in scripts/install-deps.sh: missing is a bug.
    command -v "$tool" >/dev/null || { echo "FAIL: $tool not found (scripts/install-deps.sh)" >&2; exit 1; }
done
[ -x "$MAPWAIT" ] || { echo "FAIL: $MAPWAIT is not executable (set FP_MAPWAIT)" >&2; exit 1; }

CLI_NAME=cli_metrics
. "$(dirname "$0")/common/cli.sh"

# The samples of a scrape as a dict, and expressions over them.
cat >"$TMP/prom.py" <<'EOF'
import sys
def load(path):
    d = {}
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        series, value = line.rsplit(" ", 1)
        d[series] = float(value)
    return d
ms = [load(p) for p in sys.argv[1].split(",")]
m = ms[0]
def v(series):
    return m.get(series)
def s(series):  # summed over every scrape given
    return sum(x.get(series, 0) for x in ms)
print(eval(sys.argv[2]))
EOF

# prom NAMES EXPR: EXPR over the scrapes NAMES (comma-separated; v('series')
# of the first, s('series') summed over all, m the first's dict).
prom() {
    local files
    files=$(sed "s|\([^,]*\)|$TMP/\1.prom|g" <<<"$1")
    timeout "$T" python3 "$TMP/prom.py" "$files" "$2" 2>&1
}

# is NAME EXPR WHAT: EXPR over scrape NAME is True.
is() {
    local got
    got=$(prom "$1" "$2")
    if [ "$got" = True ]; then ok; else fail "$1: not $3 ($2 -> $got)"; fi
}

# scrape NAME URL: GET URL into $TMP/NAME.prom; 200, the exposition's
# Content-Type, and promtool finds nothing to say. Returns 1 if any fails.
scrape() {
    local name=$1 url=$2 info lint
    info=$(timeout "$T" curl -sS --max-time "$T" -o "$TMP/$name.prom" -w '%{http_code} %{content_type}' "$url" 2>&1)
    if [ "${info%% *}" != 200 ]; then
        fail "$name: GET $url: $info"
        return 1
    fi
    case "${info#* }" in
    "text/plain; version=0.0.4"*) ;;
    *) fail "$name: Content-Type '${info#* }'"; return 1 ;;
    esac
    lint=$(timeout "$T" promtool check metrics <"$TMP/$name.prom" 2>&1)
    if [ $? -ne 0 ] || [ -n "$lint" ]; then
        fail "$name: promtool check metrics: $lint"
        return 1
    fi
    ok
}

# until_prom SECS NAME URL EXPR: scrape until EXPR holds; 1 at the deadline.
until_prom() {
    local secs=$1 name=$2 url=$3 expr=$4 deadline
    deadline=$(($(date +%s) + secs))
    while :; do
        if scrape "$name" "$url" && [ "$(prom "$name" "$expr")" = True ]; then
            return 0
        fi
        [ "$(date +%s)" -ge "$deadline" ] && return 1
        sleep 0.2
    done
}

# metrics_url NAME: the URL the log of daemon NAME says its metrics are at (waits $T s).
metrics_url() {
    local url
    for _ in $(seq 1 $((T * 20))); do
        url=$(sed -n 's|.*info: metrics on \(http://[^ ]*\).*|\1|p' "$TMP/$1.log" | head -1)
        if [ -n "$url" ]; then
            echo "$url"
            return 0
        fi
        sleep 0.05
    done
    fail "$1: no 'metrics on' line in its log within ${T}s: $(tail -3 "$TMP/$1.log")"
    return 1
}

# monotonic OLD NEW: no counter, histogram bucket, _sum or _count of OLD is larger in NEW.
monotonic() {
    local out
    out=$(timeout "$T" python3 - "$TMP/$1.prom" "$TMP/$2.prom" <<'EOF'
import re, sys
def load(path):
    text = open(path).read()
    kinds = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    d = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        series, value = line.rsplit(" ", 1)
        name = series.split("{")[0]
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if kinds.get(name) == "counter" or kinds.get(base) == "histogram":
            d[series] = float(value)
    return d
old, new = load(sys.argv[1]), load(sys.argv[2])
bad = [k for k in old if k not in new or new[k] < old[k]]
print("ok" if old and not bad else "went back or vanished: %s" % bad[:5])
EOF
    )
    if [ "$out" = ok ]; then ok; else fail "$1 -> $2: $out"; fi
}

# --- bad usage ---------------------------------------------------------------
expect 2 bad_addr "$FARPOOLD" --metrics nowhere && stderr_has bad_addr "invalid --metrics 'nowhere'"
expect 2 bad_port "$FARPOOLD" --metrics 127.0.0.1:99999 && stderr_has bad_port "invalid --metrics"
expect 2 bad_empty "$FARPOOLD" --metrics ""
expect 0 bare "$FARPOOLD" --metrics 9100 --print-config
grep -qx 'metrics = 127.0.0.1:9100' "$TMP/bare.out" && ok ||
    fail "a bare port is not 127.0.0.1:PORT: $(grep metrics "$TMP/bare.out")"
expect 0 unset "$FARPOOLD" --print-config
grep -qx '# metrics =' "$TMP/unset.out" && ok || fail "metrics is on by default: $(grep metrics "$TMP/unset.out")"

# --- a pool of three, metrics on each ------------------------------------------
SLAB=1M
POOL_ARGS=(--listen 127.0.0.1:0 --slab-size "$SLAB" --capacity 64M)
start_farpoold meta "${POOL_ARGS[@]}" --meta-dir "$TMP/meta" --dead-after 2 \
    --metrics 127.0.0.1:0 || exit 1
META_PID=$PID
URL="farpool://$ADDR"
printf '[farpoold]\nmetrics = 127.0.0.1:0\n' >"$TMP/m1.conf"
start_farpoold m1 --config "$TMP/m1.conf" "${POOL_ARGS[@]}" --pool "$URL" || exit 1
M1=$ADDR
start_farpoold m2 "${POOL_ARGS[@]}" --pool "$URL" --metrics 0 || exit 1
M2_PID=$PID
MX_META=$(metrics_url meta) || exit 1
MX_M1=$(metrics_url m1) || exit 1
MX_M2=$(metrics_url m2) || exit 1
case "$MX_M2" in http://127.0.0.1:*/metrics) ok ;; *) fail "--metrics 0 is not on loopback: $MX_M2" ;; esac

scrape meta0 "$MX_META" || exit 1
scrape m1_0 "$MX_M1"
scrape m2_0 "$MX_M2"
is meta0 "v('farpool_capacity_bytes') == 64 << 20" "the capacity"
is meta0 "v('farpool_slab_size_bytes') == 1 << 20" "the slab size"
is m1_0 "v('farpool_requests_total{op=\"read\"}') == 0 and v('farpool_bytes_total{op=\"write\"}') == 0" \
    "a member that served nothing"
is m1_0 "v('farpool_pool_members{state=\"live\"}') is None" "a member without the pool's metrics"
is meta0 "all(v('farpool_errors_total{kind=\"%s\"}' % k) == 0 for k in ['protocol', 'no_entry', 'timed_out', 'auth', 'no_space'])" \
    "errors by kind, none yet"
if until_prom 20 meta_live "$MX_META" "v('farpool_pool_members{state=\"live\"}') == 3"; then ok; else
    fail "the metadata node does not count 3 live members in 20 s: $(grep pool_members "$TMP/meta_live.prom")"
fi
is meta_live "v('farpool_pool_regions{health=\"healthy\"}') == 0" "an empty pool"

# --- traffic moves the counters --------------------------------------------
head -c $((3 << 20)) /dev/urandom >"$TMP/data.bin"
expect 0 put "$FARPOOL" put "$TMP/data.bin" data --pool "$URL" --quiet
if until_prom 10 meta_put "$MX_META" "v('farpool_pool_regions{health=\"healthy\"}') == 1"; then ok; else
    fail "the metadata node does not count the region healthy: $(grep pool_regions "$TMP/meta_put.prom")"
fi
scrape m1_put "$MX_M1"
scrape m2_put "$MX_M2"
PUT=meta_put,m1_put,m2_put
is $PUT "s('farpool_bytes_total{op=\"write\"}') == 2 * (3 << 20)" "3 MiB written twice over the nodes"
is $PUT "s('farpool_slabs') == 6" "3 slabs of 2 copies over the nodes"
is $PUT "s('farpool_used_bytes') == 6 << 20" "6 MiB used over the nodes"
is $PUT "s('farpool_request_duration_seconds_count{op=\"write\"}') > 0" "WRITEs timed"
is $PUT "s('farpool_request_duration_seconds_count{op=\"write\"}') <= s('farpool_requests_total{op=\"write\"}') + s('farpool_requests_total{op=\"writev\"}')" \
    "no more WRITEs timed than answered"
for n in meta_put m1_put m2_put; do
    is "$n" "v('farpool_request_duration_seconds_count{op=\"write\"}') == v('farpool_request_duration_seconds_bucket{op=\"write\",le=\"+Inf\"}')" \
        "a histogram's count that is its +Inf bucket"
    is "$n" "v('farpool_request_duration_seconds_sum{op=\"write\"}') >= 0" "a duration sum"
done

expect 0 get "$FARPOOL" get data "$TMP/back.bin" --pool "$URL" --quiet
cmp -s "$TMP/data.bin" "$TMP/back.bin" && ok || fail "get returned other bytes"
scrape meta_get "$MX_META"
scrape m1_get "$MX_M1"
scrape m2_get "$MX_M2"
GET=meta_get,m1_get,m2_get
is $GET "s('farpool_bytes_total{op=\"read\"}') >= 3 << 20" "3 MiB read over the nodes"
is $GET "s('farpool_request_duration_seconds_count{op=\"read\"}') > 0" "READs timed"
W_PUT=$(prom $PUT "s('farpool_bytes_total{op=\"write\"}')")
is $GET "s('farpool_bytes_total{op=\"write\"}') == $W_PUT" "a get that wrote nothing"
for n in meta m1 m2; do
    monotonic "${n}_put" "${n}_get"
done

# A region that is not there: the metadata node counts a no_entry error.
NOENT0=$(prom meta_get "v('farpool_errors_total{kind=\"no_entry\"}')")
expect 1 get_missing "$FARPOOL" get nosuch "$TMP/nosuch.bin" --pool "$URL"
scrape meta_noent "$MX_META"
is meta_noent "v('farpool_errors_total{kind=\"no_entry\"}') > $NOENT0" "a no_entry error counted"
is meta_noent "v('farpool_requests_total{op=\"pool_open\"}') >= 2" "POOL_OPENs counted"

# A malformed frame to m1: a protocol (or version) error, and m1 serves on.
timeout "$T" python3 - "$M1" <<'EOF' || fail "could not send a malformed frame to $M1"
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=5)
s.sendall(b"\xff" * 24)
try:
    s.recv(4096)
except OSError:
    pass
s.close()
EOF
if until_prom 10 m1_bad "$MX_M1" "v('farpool_errors_total{kind=\"protocol\"}') + v('farpool_errors_total{kind=\"version\"}') + v('farpool_errors_total{kind=\"auth\"}') >= 1"; then ok; else
    fail "m1 does not count the malformed frame: $(grep errors_total "$TMP/m1_bad.prom" | grep -v ' 0$')"
fi
monotonic m1_get m1_bad

# --- HTTP bad input ----------------------------------------------------------
BASE=${MX_META%/metrics}
code=$(timeout "$T" curl -s --max-time "$T" -o /dev/null -w '%{http_code}' "$BASE/")
[ "$code" = 404 ] && ok || fail "GET / answered $code, not 404"
code=$(timeout "$T" curl -s --max-time "$T" -o /dev/null -w '%{http_code}' "$BASE/metrics/x")
[ "$code" = 404 ] && ok || fail "GET /metrics/x answered $code, not 404"
hdrs=$(timeout "$T" curl -s --max-time "$T" -D - -o /dev/null -X POST -d 'x=1' "$MX_META")
grep -q '^HTTP/1.1 405' <<<"$hdrs" && grep -qi '^Allow: GET, HEAD' <<<"$hdrs" && ok ||
    fail "POST /metrics: $(head -c 300 <<<"$hdrs")"
code=$(timeout "$T" curl -s --max-time "$T" -o /dev/null -w '%{http_code}' -X DELETE "$MX_META")
[ "$code" = 405 ] && ok || fail "DELETE /metrics answered $code, not 405"
code=$(timeout "$T" curl -s --max-time "$T" -o "$TMP/head.out" -w '%{http_code}' -I "$MX_META")
[ "$code" = 200 ] && ok || fail "HEAD /metrics answered $code"
out=$(timeout "$T" python3 - "${BASE#http://}" <<'EOF'
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
s = socket.create_connection((host, int(port)), timeout=5)
s.sendall(b"\x16\x03\x01 not HTTP at all\r\n\r\n")
data = b""
try:
    while len(data) < 4096:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
except OSError:
    pass
print(data.split(b"\r\n")[0].decode("latin-1") or "closed")
EOF
)
case "$out" in "HTTP/1.1 400"* | closed) ok ;; *) fail "a malformed HTTP request got: $out" ;; esac
kill -0 "$META_PID" 2>/dev/null && ok || fail "the metadata node died of a malformed HTTP request"
scrape meta_after "$MX_META" && monotonic meta_noent meta_after

# --- the client side: a mapping's counters --------------------------------------
rm -f "$TMP/go" "$TMP/go.ready"
# mapwait waits 30 s at most; it dies with this script.
setpriv --pdeathsig KILL "$MAPWAIT" "$URL" data "$TMP/go" >"$TMP/mapwait.out" 2>"$TMP/mapwait.err" </dev/null &
MW_PID=$!
PIDS+=("$MW_PID")
for _ in $(seq 1 $((T * 20))); do
    [ -e "$TMP/go.ready" ] && break
    kill -0 "$MW_PID" 2>/dev/null || break
    sleep 0.05
done
if [ -e "$TMP/go.ready" ]; then
    ok
    expect 0 clients "$FARPOOL" status --clients --prometheus
    lint=$(timeout "$T" promtool check metrics <"$TMP/clients.out" 2>&1)
    [ $? -eq 0 ] && [ -z "$lint" ] && ok || fail "status --clients --prometheus: promtool: $lint"
    cp "$TMP/clients.out" "$TMP/clients.prom"
    L="pid=\\\"$MW_PID\\\",region=\\\"data\\\",node=\\\""
    is clients "[k for k in m if k.startswith('farpool_client_region_size_bytes{$L') and m[k] == 3 << 20] != []" \
        "mapwait's mapping of 3 MiB"
    is clients "[k for k in m if k.startswith('farpool_client_bytes_total{$L') and 'direction=\"in\"' in k and m[k] >= 3 << 20] != []" \
        "3 MiB fetched by the mapping"
    is clients "[k for k in m if k.startswith('farpool_client_faults_total{$L') and 'kind=\"missing\"' in k and m[k] > 0] != []" \
        "faults counted"
    is clients "v('farpool_client_mappings') >= 1" "the mappings counted"
    : >"$TMP/go"
else
    fail "mapwait did not map the region: $(head -c 300 "$TMP/mapwait.err")"
fi
wait "$MW_PID"
RC=$?
[ "$RC" -eq 0 ] && ok || fail "mapwait exited $RC: $(head -c 300 "$TMP/mapwait.err")"
want=$(timeout "$T" python3 -c '
import sys
h = 0xcbf29ce484222325
for b in open(sys.argv[1], "rb").read():
    h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
print("%016x" % h)' "$TMP/data.bin")
[ "$(cat "$TMP/mapwait.out")" = "$want" ] && ok || fail "mapwait read other bytes: $(cat "$TMP/mapwait.out") vs $want"
expect 2 prom_node "$FARPOOL" status --node "$M1" --prometheus && stderr_has prom_node "farpoold --metrics"
expect 2 prom_json "$FARPOOL" status --clients --json --prometheus

# --- a member killed: dead, repaired, copies counted ------------------------------
kill -KILL "$M2_PID"
if until_prom 20 meta_dead "$MX_META" "v('farpool_pool_members{state=\"dead\"}') == 1 and v('farpool_pool_members{state=\"live\"}') == 2"; then ok; else
    fail "the metadata node does not count m2 dead: $(grep pool_members "$TMP/meta_dead.prom")"
fi
if until_prom 30 meta_repaired "$MX_META" "v('farpool_pool_regions{health=\"healthy\"}') == 1 and v('farpool_pool_repair_copied_slabs_total') >= 1"; then ok; else
    fail "no repair counted: $(grep -E 'pool_regions|repair' "$TMP/meta_repaired.prom")"
fi
is meta_repaired "v('farpool_pool_repair_copied_bytes_total') == v('farpool_pool_repair_copied_slabs_total') * (1 << 20)" \
    "copied bytes that are copied slabs of 1 MiB"
monotonic meta_after meta_repaired

# --- the metrics port taken: a clear error, exit 1 -----------------------------------
PORT=${BASE##*:}
expect 1 taken "$FARPOOLD" --listen 127.0.0.1:0 --metrics "127.0.0.1:$PORT" &&
    stderr_has taken "cannot serve metrics on 127.0.0.1:$PORT: address already in use"

# --- shutdown with the metrics thread running ----------------------------------------
kill -TERM "$META_PID"
for _ in $(seq 1 $((T * 20))); do
    kill -0 "$META_PID" 2>/dev/null || break
    sleep 0.05
done
if kill -0 "$META_PID" 2>/dev/null; then fail "the metadata node still runs ${T}s after SIGTERM"; fi
wait "$META_PID"
RC=$?
[ "$RC" -eq 0 ] && ok || fail "the metadata node exited $RC after SIGTERM: $(tail -3 "$TMP/meta.log")"

finish
