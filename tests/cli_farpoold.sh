#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Command-line behaviour of farpoold, as farpoold(8) describes it: bad usage
# exits 2 with a message on stderr, runtime failures exit 1, --help and
# --version exit 0, SIGTERM and SIGINT shut down cleanly with status 0, the
# port file holds the address, and a non-loopback address needs a secret.
#
# Usage: bash cli_farpoold.sh FARPOOLD FARPOOL_CLI
# Every command runs under timeout(1); daemons use ephemeral ports and are
# killed on exit whatever happens. Daemons are NOT run under timeout(1): it
# resumes a stopped child with SIGCONT, which undoes the ptrace stop that
# LeakSanitizer needs at exit, and an ASan farpoold then spins for ever. They
# run under `setpriv --pdeathsig KILL` instead, so they die with this script.
set -u

FARPOOLD=${1:?usage: $0 FARPOOLD FARPOOL_CLI}
FARPOOL=${2:?usage: $0 FARPOOLD FARPOOL_CLI}
T=10 # seconds any one command may take

[ -x "$FARPOOLD" ] || { echo "SKIP: $FARPOOLD is not executable"; exit 77; }
for tool in timeout python3; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool not found"; exit 77; }
done

CLI_NAME=cli_farpoold
. "$(dirname "$0")/common/cli.sh"

# start NAME ARGS...: farpoold ARGS in the background (common/cli.sh); sets $PID.
start() {
    start_farpoold "$@"
}

# stop PID SIGNAL NAME: send SIGNAL and wait up to $T seconds; sets $RC.
stop() {
    local pid=$1 sig=$2 name=$3
    kill "-$sig" "$pid" 2>/dev/null
    for _ in $(seq 1 $((T * 20))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        fail "$name: farpoold still runs ${T}s after SIG$sig"
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid"
    RC=$?
}

SECRET="$TMP/secret"
(umask 077 && printf 'cli-test-secret-0123456789abcdef\n' >"$SECRET")
SHORT="$TMP/short-secret"
(umask 077 && printf 'too-short\n' >"$SHORT")

# --- bad usage: exit 2 and a message -----------------------------------------
expect 2 unknown_option "$FARPOOLD" --bogus-option && stderr_has unknown_option "bogus|unrecognized|invalid"
expect 2 capacity_abc "$FARPOOLD" --capacity abc && stderr_has capacity_abc "capacity"
expect 2 capacity_zero "$FARPOOLD" --capacity 0 && stderr_has capacity_zero "capacity"
expect 2 capacity_neg "$FARPOOLD" --capacity -1G
expect 2 capacity_lt_slab "$FARPOOLD" --capacity 32M && stderr_has capacity_lt_slab "capacity|slab"
expect 2 slab_3m "$FARPOOLD" --slab-size 3M && stderr_has slab_3m "slab-size"
expect 2 slab_32k "$FARPOOLD" --slab-size 32K && stderr_has slab_32k "slab-size"
expect 2 slab_2g "$FARPOOLD" --slab-size 2G --capacity 4G && stderr_has slab_2g "slab-size"
expect 2 slab_abc "$FARPOOLD" --slab-size abc && stderr_has slab_abc "slab-size"
expect 2 listen_nonsense "$FARPOOLD" --listen nonsense && stderr_has listen_nonsense "listen"
expect 2 listen_noport "$FARPOOLD" --listen 127.0.0.1 && stderr_has listen_noport "listen"
expect 2 listen_badport "$FARPOOLD" --listen 127.0.0.1:99999 && stderr_has listen_badport "listen"
expect 2 log_level "$FARPOOLD" --log-level loud && stderr_has log_level "log-level"
expect 2 handshake_zero "$FARPOOLD" --handshake-timeout 0 && stderr_has handshake_zero "handshake"
expect 2 idle_units "$FARPOOLD" --idle-timeout 5M && stderr_has idle_units "idle"
expect 2 extra_argument "$FARPOOLD" extra && stderr_has extra_argument "extra"
expect 2 missing_value "$FARPOOLD" --capacity

# --- help and version: exit 0 on stdout ----------------------------------------
expect 0 help "$FARPOOLD" --help
grep -q -- "--capacity" "$TMP/help.out" && ok || fail "--help does not mention --capacity"
grep -q -- "--secret-file" "$TMP/help.out" && ok || fail "--help does not mention --secret-file"
expect 0 help_short "$FARPOOLD" -h
expect 0 version "$FARPOOLD" --version
grep -Eq '^farpoold [0-9]+\.[0-9]+\.[0-9]+$' "$TMP/version.out" && ok ||
    fail "--version printed '$(cat "$TMP/version.out")', expected 'farpoold X.Y.Z'"
expect 0 version_short "$FARPOOLD" -V

# --- runtime failures: exit 1 ------------------------------------------------
# 0.0.0.0 is not loopback: refused without a secret, before anything is bound.
expect 1 wildcard_no_secret "$FARPOOLD" --listen 0.0.0.0:0 && stderr_has wildcard_no_secret "secret"
expect 1 secret_missing "$FARPOOLD" --secret-file "$TMP/does-not-exist" && stderr_has secret_missing "does-not-exist"
expect 1 secret_short "$FARPOOLD" --secret-file "$SHORT" && stderr_has secret_short "short"

# --- a daemon: port file, status, SIGTERM ------------------------------------
if start main --listen 127.0.0.1:0 --capacity 128M; then
    ADDR=$(cat "$TMP/main.port")
    if [[ "$ADDR" =~ ^127\.0\.0\.1:([0-9]+)$ ]] && [ "${BASH_REMATCH[1]}" -gt 0 ]; then ok; else
        fail "port file holds '$ADDR', expected 127.0.0.1:PORT"
    fi
    [ "$(wc -l <"$TMP/main.port")" -eq 1 ] && ok || fail "port file is not one line"
    [ ! -e "$TMP/main.port.tmp" ] && ok || fail "the port file's temporary file was left behind"
    # Something answers there.
    if [ -x "$FARPOOL" ]; then
        expect 0 status_main "$FARPOOL" status --node "$ADDR" --json
        grep -q '"capacity":134217728' "$TMP/status_main.out" && ok ||
            fail "farpool status of the daemon: $(cat "$TMP/status_main.out")"
    fi
    grep -q "listening on $ADDR" "$TMP/main.log" && ok || fail "log does not say 'listening on $ADDR'"

    # The same address again: cannot bind, exit 1.
    expect 1 port_in_use "$FARPOOLD" --listen "$ADDR" && stderr_has port_in_use "listen|in use"

    stop "$PID" TERM main
    [ "$RC" -eq 0 ] && ok || fail "farpoold exited $RC after SIGTERM, expected 0"
    grep -q "shutting down" "$TMP/main.log" && ok || fail "no 'shutting down' in the log after SIGTERM"
fi

# SIGINT as well, with a client connected.
if start sigint --listen 127.0.0.1:0; then
    ADDR=$(cat "$TMP/sigint.port")
    exec 3<>"/dev/tcp/${ADDR%:*}/${ADDR##*:}" || fail "cannot connect to $ADDR"
    stop "$PID" INT sigint
    exec 3>&- 3<&-
    [ "$RC" -eq 0 ] && ok || fail "farpoold exited $RC after SIGINT, expected 0"
    grep -q "shutting down" "$TMP/sigint.log" && ok || fail "no 'shutting down' in the log after SIGINT"
fi

# A port file that cannot be written: exit 1.
expect 1 port_file_unwritable "$FARPOOLD" --listen 127.0.0.1:0 --port-file "$TMP/no/such/dir/port"

# 0.0.0.0 with a secret: binds; then stopped.
if start wildcard --listen 0.0.0.0:0 --secret-file "$SECRET"; then
    ADDR=$(cat "$TMP/wildcard.port")
    [[ "$ADDR" =~ ^0\.0\.0\.0:[1-9][0-9]*$ ]] && ok || fail "port file holds '$ADDR', expected 0.0.0.0:PORT"
    grep -qi "secret required" "$TMP/wildcard.log" && ok || fail "log does not say a secret is required"
    stop "$PID" TERM wildcard
    [ "$RC" -eq 0 ] && ok || fail "farpoold on 0.0.0.0 exited $RC after SIGTERM, expected 0"
fi

# IPv6 loopback, if the machine has it.
if timeout "$T" python3 -c 'import socket; s = socket.socket(socket.AF_INET6); s.bind(("::1", 0))' 2>/dev/null; then
    if start ipv6 --listen '[::1]:0'; then
        ADDR=$(cat "$TMP/ipv6.port")
        [[ "$ADDR" =~ ^\[::1\]:[1-9][0-9]*$ ]] && ok || fail "port file holds '$ADDR', expected [::1]:PORT"
        stop "$PID" TERM ipv6
        [ "$RC" -eq 0 ] && ok || fail "farpoold on [::1] exited $RC after SIGTERM, expected 0"
    fi
fi

finish
