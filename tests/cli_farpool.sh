#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Command-line behaviour of the farpool tool, as farpool(1) describes it:
# `status` in text and JSON (with the keys the manual lists), `bench rw`,
# secrets from --secret-file and FARPOOL_SECRET_FILE, and the exit codes
# (0 success, 1 runtime failure, 2 bad usage).
#
# Usage: bash cli_farpool.sh FARPOOLD FARPOOL_CLI
# Every command runs under timeout(1); daemons use ephemeral ports and are
# killed on exit whatever happens. Daemons are NOT run under timeout(1): it
# resumes a stopped child with SIGCONT, which undoes the ptrace stop that
# LeakSanitizer needs at exit, and an ASan farpoold then spins for ever. They
# run under `setpriv --pdeathsig KILL` instead, so they die with this script.
set -u

FARPOOLD=${1:?usage: $0 FARPOOLD FARPOOL_CLI}
FARPOOL=${2:?usage: $0 FARPOOLD FARPOOL_CLI}
T=20 # seconds any one command may take
MAN="$(cd "$(dirname "$0")/.." && pwd)/man/farpool.1"

for bin in "$FARPOOLD" "$FARPOOL"; do
    [ -x "$bin" ] || { echo "SKIP: $bin is not executable"; exit 77; }
done
for tool in timeout python3; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool not found"; exit 77; }
done

CLI_NAME=cli_farpool
. "$(dirname "$0")/common/cli.sh"

# The tool reads these; start from a clean environment.
unset FARPOOL_SECRET_FILE FARPOOL_LOG_LEVEL

# has NAME STREAM REGEX: out or err of NAME matches REGEX (grep -E).
has() {
    if grep -Eq -- "$3" "$TMP/$1.$2"; then ok; else
        fail "$1: std$2 does not match /$3/:"
        sed 's/^/    /' "$TMP/$1.$2" | head -20 >&2
    fi
}

# start NAME ARGS...: farpoold in the background on 127.0.0.1:0; sets $ADDR.
start() {
    local name=$1 pid
    shift
    setpriv --pdeathsig KILL "$FARPOOLD" --listen 127.0.0.1:0 --port-file "$TMP/$name.port" "$@" \
        >"$TMP/$name.log" 2>&1 </dev/null &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 1 200); do
        if [ -s "$TMP/$name.port" ]; then
            ADDR=$(cat "$TMP/$name.port")
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "cannot start farpoold $*:" >&2
    cat "$TMP/$name.log" >&2
    exit 1
}

# A port with nothing listening: bound by python, then released.
free_port() {
    timeout "$T" python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

SECRET="$TMP/secret"
WRONG="$TMP/wrong"
(umask 077 && printf 'cli-test-secret-0123456789abcdef\n' >"$SECRET")
(umask 077 && printf 'not-the-secret-0123456789abcdef\n' >"$WRONG")

start plain --capacity 256M --slab-size 64M
NODE=$ADDR

# --- status, text ------------------------------------------------------------
expect 0 status "$FARPOOL" status --node "$NODE"
for field in node capacity used free slabs clients "bytes read" "bytes written" requests errors uptime; do
    has status out "^$field +[^ ]"
done
has status out "^capacity +256M \(268435456 bytes\)"
has status out "^used +0 \(0 bytes"
has status out "^free +256M \(268435456 bytes\)"
has status out "^slabs +0 of 64M"
has status out "^clients +1$"
expect 0 status_short "$FARPOOL" status -n "$NODE"

# --- status, JSON --------------------------------------------------------------
# The keys farpool(1) lists under --json, read from the manual when it is there.
KEYS="node capacity used free slab_size slabs clients bytes_read bytes_written requests errors uptime_ms"
if [ -r "$MAN" ]; then
    MAN_KEYS=$(timeout "$T" python3 - "$MAN" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
# The key list sits between .RS and .RE after the mention of --json.
start = text.index(r"\-\-json ,")
block = text[text.index(".RS", start):text.index(".RE", start)]
print(" ".join(re.findall(r"^\.(?:TP 15|TQ)\n\.B (\w+)$", block, re.M)))
EOF
    )
    if [ "$(tr ' ' '\n' <<<"$MAN_KEYS" | sort)" = "$(tr ' ' '\n' <<<"$KEYS" | sort)" ]; then ok; else
        fail "farpool(1) lists JSON keys '$MAN_KEYS', this test expects '$KEYS'"
    fi
fi
expect 0 json "$FARPOOL" status --node "$NODE" --json
if timeout "$T" python3 - "$TMP/json.out" "$NODE" $KEYS <<'EOF'; then ok; else fail "status --json: $(cat "$TMP/json.out")"; fi
import json, sys
path, node, keys = sys.argv[1], sys.argv[2], sys.argv[3:]
with open(path) as f:
    text = f.read()
obj = json.loads(text)  # raises on invalid JSON
assert text.count("\n") == 1 and text.endswith("\n"), "not one line"
assert isinstance(obj, dict), "not an object"
assert sorted(obj) == sorted(keys), "keys %s" % sorted(obj)
assert obj["node"] == node, obj["node"]
for k in keys:
    if k != "node":
        assert type(obj[k]) is int and obj[k] >= 0, k
assert obj["capacity"] == 256 << 20 and obj["slab_size"] == 64 << 20
assert obj["used"] == 0 and obj["free"] == obj["capacity"] and obj["slabs"] == 0
assert obj["clients"] == 1
EOF
timeout "$T" python3 -c 'import json, sys; json.load(sys.stdin)' <"$TMP/json.out" && ok || fail "status --json is not valid JSON"

# --- bench rw -------------------------------------------------------------------
expect 0 bench "$FARPOOL" bench rw --node "$NODE" --size 32M
has bench out "^write +[0-9]+\.[0-9] MB/s"
has bench out "^read +[0-9]+\.[0-9] MB/s"
has bench out "verified"
# It freed its slabs, and the bytes went through the node.
expect 0 json_after "$FARPOOL" status --node "$NODE" --json
timeout "$T" python3 - "$TMP/json_after.out" <<'EOF' && ok || fail "after bench rw 32M: $(cat "$TMP/json_after.out")"
import json, sys
obj = json.load(open(sys.argv[1]))
assert obj["slabs"] == 0 and obj["used"] == 0, "slabs not freed"
assert obj["bytes_written"] >= 32 << 20 and obj["bytes_read"] >= 32 << 20, "bytes not counted"
EOF
# An odd size that still spans two slabs.
expect 0 bench_odd "$FARPOOL" bench rw --node "$NODE" --size 65544
has bench_odd out "verified"
expect 0 bench_two_slabs "$FARPOOL" bench rw --node "$NODE" --size 100M
# More than the node has: a runtime failure.
expect 1 bench_too_big "$FARPOOL" bench rw --node "$NODE" --size 1G
has bench_too_big err "no space|cannot allocate"

# --- usage errors: exit 2 --------------------------------------------------------
expect 2 no_args "$FARPOOL"
expect 2 status_no_node "$FARPOOL" status && has status_no_node err "--node"
expect 2 bench_no_node "$FARPOOL" bench rw && has bench_no_node err "--node"
expect 2 bench_no_name "$FARPOOL" bench
expect 2 bench_unknown "$FARPOOL" bench nonsense --node "$NODE"
expect 2 bench_bad_size "$FARPOOL" bench rw --node "$NODE" --size lots && has bench_bad_size err "size"
expect 2 bench_size_zero "$FARPOOL" bench rw --node "$NODE" --size 0
expect 2 unknown_command "$FARPOOL" frobnicate && has unknown_command err "frobnicate"
expect 2 status_bad_option "$FARPOOL" status --node "$NODE" --bogus
expect 2 status_extra_arg "$FARPOOL" status --node "$NODE" extra

# --- help and version --------------------------------------------------------------
expect 0 help "$FARPOOL" --help
has help out "status"
has help out "bench rw"
expect 0 help_short "$FARPOOL" -h
expect 0 status_help "$FARPOOL" status --help
has status_help out "--json"
expect 0 bench_help "$FARPOOL" bench rw --help
has bench_help out "--size"
expect 0 version "$FARPOOL" --version
has version out '^farpool [0-9]+\.[0-9]+\.[0-9]+$'
if run daemon_version "$FARPOOLD" --version; [ "$RC" -eq 0 ]; then
    [ "$(cut -d' ' -f2 "$TMP/version.out")" = "$(cut -d' ' -f2 "$TMP/daemon_version.out")" ] && ok ||
        fail "farpool and farpoold report different versions"
fi

# --- unreachable node: exit 1, quickly, with a message ---------------------------------
PORT=$(free_port)
expect 1 unreachable "$FARPOOL" status --node "127.0.0.1:$PORT"
has unreachable err "127.0.0.1:$PORT"
[ "$MS" -lt 3000 ] && ok || fail "status of an unreachable node took $MS ms"
expect 1 unreachable_bench "$FARPOOL" bench rw --node "127.0.0.1:$PORT" --size 1M
[ "$MS" -lt 3000 ] && ok || fail "bench rw of an unreachable node took $MS ms"
# A malformed address fails (1 or 2: the manual is not explicit) with a message.
run bad_address "$FARPOOL" status --node nonsense
{ [ "$RC" -eq 1 ] || [ "$RC" -eq 2 ]; } && [ -s "$TMP/bad_address.err" ] && ok ||
    fail "status --node nonsense exited $RC: $(cat "$TMP/bad_address.err")"

# --- secrets ------------------------------------------------------------------------------
start secret --capacity 128M --slab-size 64M --secret-file "$SECRET"
SNODE=$ADDR
expect 1 secret_none "$FARPOOL" status --node "$SNODE" && has secret_none err "secret"
FARPOOL_SECRET_FILE="$SECRET" expect 0 secret_env "$FARPOOL" status --node "$SNODE"
has secret_env out "^capacity +128M"
FARPOOL_SECRET_FILE="$WRONG" expect 1 secret_env_wrong "$FARPOOL" status --node "$SNODE"
has secret_env_wrong err "secret|auth"
expect 0 secret_option "$FARPOOL" status --node "$SNODE" --secret-file "$SECRET"
expect 1 secret_option_wrong "$FARPOOL" status --node "$SNODE" --secret-file "$WRONG"
# --secret-file wins over the environment.
FARPOOL_SECRET_FILE="$WRONG" expect 0 secret_option_over_env "$FARPOOL" status --node "$SNODE" --secret-file "$SECRET"
FARPOOL_SECRET_FILE="$SECRET" expect 0 secret_bench "$FARPOOL" bench rw --node "$SNODE" --size 8M
has secret_bench out "verified"
FARPOOL_SECRET_FILE="$TMP/missing" expect 1 secret_env_missing "$FARPOOL" status --node "$SNODE"
FARPOOL_SECRET_FILE="$SECRET" expect 0 secret_json "$FARPOOL" status --node "$SNODE" --json
timeout "$T" python3 -c 'import json, sys; json.load(sys.stdin)' <"$TMP/secret_json.out" && ok || fail "status --json with a secret is not valid JSON"

finish
