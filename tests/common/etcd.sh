# SPDX-License-Identifier: MIT
# A real etcd (Debian's etcd-server) for the shell tests, sourced after
# common/cli.sh:
#
#   start_etcd NAME  etcd on 127.0.0.1 with a free client and peer port, its
#                 data under $TMP/NAME, its log in $TMP/NAME.log; waits until it
#                 answers (a range request), at most 20 s. Sets ETCD_PID,
#                 ETCD_ADDR (HOST:PORT) and ETCD_URL (etcd://ETCD_ADDR/farpool-NAME);
#                 killed with the script (PIDS, --pdeathsig). Skips the test
#                 (exit 77) where etcd is not installed.

# A TCP port on 127.0.0.1 free a moment ago.
free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_etcd() {
    local name=$1 cport pport deadline try
    command -v etcd >/dev/null || { echo "SKIP: etcd not found (scripts/install-deps.sh installs etcd-server)"; exit 77; }
    for try in 1 2 3; do
        cport=$(free_port)
        pport=$(free_port)
        rm -rf "${TMP:?}/$name"
        setpriv --pdeathsig KILL etcd --name "$name" --data-dir "$TMP/$name" \
            --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
            --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
            --initial-cluster "$name=http://127.0.0.1:$pport" >"$TMP/$name.log" 2>&1 &
        ETCD_PID=$!
        PIDS+=("$ETCD_PID")
        deadline=$(($(date +%s) + 20))
        while kill -0 "$ETCD_PID" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do
            if curl -sf -m 2 -X POST -d '{"key":"AA=="}' "http://127.0.0.1:$cport/v3/kv/range" >/dev/null; then
                ETCD_ADDR=127.0.0.1:$cport
                ETCD_URL=etcd://$ETCD_ADDR/farpool-$name
                return 0
            fi
            sleep 0.1
        done
        kill -KILL "$ETCD_PID" 2>/dev/null
        wait "$ETCD_PID" 2>/dev/null
        # a port taken meanwhile by another program: try again with others
        grep -q "address already in use" "$TMP/$name.log" || break
    done
    fail "etcd $name did not answer within 20 s: $(tail -5 "$TMP/$name.log")"
    return 1
}
