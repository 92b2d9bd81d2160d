#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# farpoold's configuration file (--config), as farpoold(8) describes it: every
# key read, the command line over the file over the defaults, and each kind
# of bad file (unknown key, bad value, repeated key, other section, indented,
# cut or malformed line, missing file) an error naming FILE:LINE that exits 2
# (1 for a file that cannot be read). Then real daemons: one started from a
# file alone serves what it says; the secret as a systemd credential
# ($CREDENTIALS_DIRECTORY); READY=1 and STOPPING=1 sent to $NOTIFY_SOCKET.
#
# Usage: bash cli_config.sh FARPOOLD FARPOOL_CLI
set -u

FARPOOLD=${1:?usage: $0 FARPOOLD FARPOOL_CLI}
FARPOOL=${2:?usage: $0 FARPOOLD FARPOOL_CLI}
T=10 # seconds any one command may take

[ -x "$FARPOOLD" ] || { echo "SKIP: $FARPOOLD is not executable"; exit 77; }
for tool in timeout python3 setpriv; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool not found"; exit 77; }
done

CLI_NAME=cli_config
. "$(dirname "$0")/common/cli.sh"

# conf NAME LINES...: write $TMP/NAME.conf, one argument a line.
conf() {
    local name=$1
    shift
    printf '%s\n' "$@" >"$TMP/$name.conf"
}

# out_is NAME FILE: NAME's stdout is FILE's text.
out_is() {
    if cmp -s "$TMP/$1.out" "$2"; then ok; else
        fail "$1: stdout differs from $(basename "$2"): $(diff "$2" "$TMP/$1.out" | head -10)"
    fi
}

# --- every key, read from a file ----------------------------------------------
# Two files between them set every key to a value other than its default
# (meta-dir and pool exclude each other, as do secret-file and
# secret-credential); --print-config writes them back in the same format.
cat >"$TMP/every1.expect" <<EOF
[farpoold]
listen = 127.0.0.1:7171
capacity = 3G
slab-size = 128M
secret-file = $TMP/secret
# secret-credential =
port-file = $TMP/every.port
handshake-timeout = 7
idle-timeout = 90
log-level = debug
meta-dir = $TMP/meta
# pool =
advertise = 127.0.0.1:7272
dead-after = 9
replicas = 3
repair-rate = 64M
lease-ttl = 20
metrics = 127.0.0.1:9191
EOF
{
    echo "# every key but pool and secret-credential"
    echo "; a comment of the other kind"
    echo
    echo "[farpoold]"
    grep -v '^#' "$TMP/every1.expect" | sed -n '2,$p' | sed 's/ = /=/; 3s/=/ =   /'
} >"$TMP/every1.conf"
expect 0 every1 "$FARPOOLD" --config "$TMP/every1.conf" --print-config && out_is every1 "$TMP/every1.expect"

cat >"$TMP/every2.expect" <<EOF
[farpoold]
listen = [::1]:7070
capacity = 1G
slab-size = 64M
# secret-file =
secret-credential = farpool-secret
# port-file =
handshake-timeout = 5
idle-timeout = 300
log-level = trace
# meta-dir =
pool = farpool://127.0.0.1:7070
# advertise =
dead-after = 5
# replicas =
repair-rate = 256M
lease-ttl = 10
# metrics =
EOF
# No section at all, a value with an inline comment, CRLF line ends.
printf '%s\r\n' "listen = [::1]:7070" "secret-credential = farpool-secret ; systemd's name" \
    "log-level = TRACE" "pool = farpool://127.0.0.1:7070" >"$TMP/every2.conf"
expect 0 every2 "$FARPOOLD" --config "$TMP/every2.conf" --print-config && out_is every2 "$TMP/every2.expect"

# The defaults, with no file; an empty file changes nothing.
expect 0 defaults "$FARPOOLD" --print-config
: >"$TMP/empty.conf"
expect 0 empty "$FARPOOLD" --config "$TMP/empty.conf" --print-config && same_out defaults empty
grep -qx 'capacity = 1G' "$TMP/defaults.out" && ok || fail "defaults: no 'capacity = 1G' line"

# --- the command line over the file -------------------------------------------
conf over "capacity = 4G" "slab-size = 1M" "log-level = warn" "listen = 127.0.0.1:7000"
expect 0 over1 "$FARPOOLD" --config "$TMP/over.conf" --capacity 2G -s 2M --print-config
grep -qx 'capacity = 2G' "$TMP/over1.out" && grep -qx 'slab-size = 2M' "$TMP/over1.out" &&
    grep -qx 'log-level = warn' "$TMP/over1.out" && grep -qx 'listen = 127.0.0.1:7000' "$TMP/over1.out" &&
    ok || fail "over1: the command line did not override the file: $(cat "$TMP/over1.out")"
# ... wherever --config stands on the command line.
expect 0 over2 "$FARPOOLD" -L error --config "$TMP/over.conf" --print-config
grep -qx 'log-level = error' "$TMP/over2.out" && grep -qx 'capacity = 4G' "$TMP/over2.out" &&
    ok || fail "over2: -L before --config did not win: $(cat "$TMP/over2.out")"
# A bad value on the command line is still the command line's error.
expect 2 over_bad "$FARPOOLD" --config "$TMP/over.conf" --capacity 4X &&
    stderr_has over_bad "invalid --capacity '4X'"
# Settings that exclude each other, one from each place.
conf meta "meta-dir = $TMP/meta"
expect 2 meta_pool "$FARPOOLD" --config "$TMP/meta.conf" --pool farpool://127.0.0.1:7070 &&
    stderr_has meta_pool "meta-dir and --pool exclude"
conf cred "secret-credential = secret"
expect 2 cred_file "$FARPOOLD" --config "$TMP/cred.conf" --secret-file "$TMP/secret" &&
    stderr_has cred_file "secret-file and --secret-credential exclude"
# A capacity under the slab size, the two from the two places.
conf slab "slab-size = 256M"
expect 2 slab_cap "$FARPOOLD" --config "$TMP/slab.conf" --capacity 128M &&
    stderr_has slab_cap "at least one slab"

# --- bad files: FILE:LINE and the key -----------------------------------------
conf badkey "[farpoold]" "capacity = 2G" "capacty = 3G"
expect 2 badkey "$FARPOOLD" --config "$TMP/badkey.conf" &&
    stderr_has badkey "badkey\\.conf:3: unknown key 'capacty'"
# Options that are no settings are no keys.
for key in config print-config help version; do
    conf "nokey_$key" "$key = 1"
    expect 2 "nokey_$key" "$FARPOOLD" --config "$TMP/nokey_$key.conf" &&
        stderr_has "nokey_$key" ":1: unknown key '$key'"
done
# A bad value of every key ("-": empty).
while read -r key value; do
    [ "$value" = - ] && value=
    conf "bad_$key" "# line 1" "$key = $value"
    expect 2 "bad_$key" "$FARPOOLD" --config "$TMP/bad_$key.conf" &&
        stderr_has "bad_$key" "bad_$key\\.conf:2: invalid $key '$value' \\("
done <<'EOF'
listen 127.0.0.1:99999
capacity 0
slab-size 12Q
secret-file -
secret-credential ../secret
port-file -
handshake-timeout 0
idle-timeout 1M
log-level loud
meta-dir -
pool gopher://127.0.0.1:2379/farpool
advertise nowhere
dead-after 86401
replicas 5
repair-rate 0
lease-ttl -1
metrics 127.0.0.1:99999
EOF
conf twice "capacity = 2G" "slab-size = 1M" "capacity = 3G"
expect 2 twice "$FARPOOLD" --config "$TMP/twice.conf" &&
    stderr_has twice ":3: key 'capacity' given twice \\(first on line 1\\)"
conf section "capacity = 2G" "[farpool]" "slab-size = 1M"
expect 2 section "$FARPOOLD" --config "$TMP/section.conf" && stderr_has section ":2: section \\[farpool\\]"
conf indented "[farpoold]" "capacity = 2G" "  slab-size = 1M"
expect 2 indented "$FARPOOLD" --config "$TMP/indented.conf" && stderr_has indented ":3: an indented line"
conf syntax "capacity = 2G" "" "just words"
expect 2 syntax "$FARPOOLD" --config "$TMP/syntax.conf" && stderr_has syntax ":3: expected KEY = VALUE"
conf unclosed "[farpoold"
expect 2 unclosed "$FARPOOLD" --config "$TMP/unclosed.conf" && stderr_has unclosed ":1: expected KEY = VALUE"
# The first error is the one reported, a syntax error before a bad key.
conf first "junk" "bogus = 1"
expect 2 first "$FARPOOLD" --config "$TMP/first.conf" && stderr_has first ":1: expected KEY = VALUE"
conf first2 "bogus = 1" "junk"
expect 2 first2 "$FARPOOLD" --config "$TMP/first2.conf" && stderr_has first2 ":1: unknown key 'bogus'"
conf long "meta-dir = /$(printf 'd%.0s' $(seq 1 300))"
expect 2 long "$FARPOOLD" --config "$TMP/long.conf" && stderr_has long ":1: line longer than 197 characters"
printf 'capacity = 2G\nslab-size = 1M\0junk\n' >"$TMP/nul.conf"
expect 2 nul "$FARPOOLD" --config "$TMP/nul.conf" && stderr_has nul ":2: a NUL byte"

# --- files that cannot be read: exit 1 ------------------------------------------
expect 1 missing "$FARPOOLD" --config "$TMP/no-such.conf" &&
    stderr_has missing "cannot read configuration file .*no-such\\.conf: No such file"
expect 1 directory "$FARPOOLD" --config "$TMP" && stderr_has directory "cannot read configuration file"
expect 2 no_arg "$FARPOOLD" --config

# --- a daemon started from its file ---------------------------------------------
(umask 077 && printf 'cli-config-secret-0123456789abcdef\n' >"$TMP/secret")
conf daemon "[farpoold]" "listen = 127.0.0.1:0" "capacity = 96M" "slab-size = 2M" \
    "secret-file = $TMP/secret" "log-level = debug"
# start_farpoold passes --port-file (the command line) over the file's none.
if start_farpoold daemon --config "$TMP/daemon.conf"; then
    ok
    expect 0 daemon_status "$FARPOOL" status --node "$ADDR" --json --secret-file "$TMP/secret" &&
        python3 - "$TMP/daemon_status.out" <<'EOF' && ok || fail "daemon_status: $(cat "$TMP/daemon_status.out")"
import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if d["capacity"] == 96 << 20 and d["slab_size"] == 2 << 20 else 1)
EOF
    expect 1 daemon_nosecret "$FARPOOL" status --node "$ADDR"
    grep -q 'secret required' "$TMP/daemon.log" && ok || fail "daemon: no 'secret required' in its log"
fi

# --- the secret as a systemd credential -------------------------------------------
mkdir "$TMP/creds" && cp "$TMP/secret" "$TMP/creds/farpool-secret" && chmod 400 "$TMP/creds/farpool-secret"
conf credd "listen = 127.0.0.1:0" "capacity = 64M" "slab-size = 1M" "secret-credential = farpool-secret"
if CREDENTIALS_DIRECTORY=$TMP/creds start_farpoold credd --config "$TMP/credd.conf"; then
    ok
    expect 0 credd_status "$FARPOOL" status --node "$ADDR" --secret-file "$TMP/secret"
    expect 1 credd_nosecret "$FARPOOL" status --node "$ADDR"
fi
expect 1 cred_unset env -u CREDENTIALS_DIRECTORY "$FARPOOLD" --config "$TMP/credd.conf" &&
    stderr_has cred_unset "CREDENTIALS_DIRECTORY is not set"
expect 1 cred_missing env CREDENTIALS_DIRECTORY="$TMP/creds" "$FARPOOLD" --config "$TMP/credd.conf" \
    --secret-credential other && stderr_has cred_missing "other"

# --- sd_notify: READY=1 once listening, STOPPING=1 on SIGTERM ------------------------
# A datagram socket stands in for systemd's; the listener prints each message
# and exits once it has seen STOPPING=1 (or after T seconds).
python3 - "$TMP/notify.sock" "$T" >"$TMP/notify.out" 2>&1 <<'EOF' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    s.settimeout(max(0.01, deadline - time.monotonic()))
    try:
        msg = s.recv(4096).decode()
    except socket.timeout:
        break
    print(msg.replace("\n", "|"), flush=True)
    if "STOPPING=1" in msg:
        break
EOF
LISTENER=$!
PIDS+=("$LISTENER")
for _ in $(seq 1 $((T * 20))); do
    [ -S "$TMP/notify.sock" ] && break
    sleep 0.05
done
if NOTIFY_SOCKET=$TMP/notify.sock start_farpoold notify --listen 127.0.0.1:0; then
    for _ in $(seq 1 $((T * 20))); do
        grep -q 'READY=1' "$TMP/notify.out" && break
        sleep 0.05
    done
    grep -q "READY=1|STATUS=listening on $ADDR" "$TMP/notify.out" && ok ||
        fail "notify: no READY=1 with the address: $(cat "$TMP/notify.out")"
    kill -TERM "$PID"
    wait "$PID"
    RC=$?
    [ "$RC" -eq 0 ] && ok || fail "notify: farpoold exited $RC after SIGTERM"
    wait "$LISTENER"
    grep -q 'STOPPING=1' "$TMP/notify.out" && ok || fail "notify: no STOPPING=1: $(cat "$TMP/notify.out")"
fi

finish
