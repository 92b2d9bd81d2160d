# SPDX-License-Identifier: MIT
# A real etcd (Debian's etcd-server) for the shell tests, sourced after
# common/cli.sh:
#
#   start_etcd NAME  etcd with a free client and peer port, its data under
#                 $TMP/NAME, its log in $TMP/NAME.log; waits until it answers
#                 (a range request), at most 20 s. Sets ETCD_PID, ETCD_ADDR
#                 (HOST:PORT) and ETCD_URL (etcd://ETCD_ADDR/farpool-NAME);
#                 killed with the script (PIDS, --pdeathsig). Skips the test
#                 (exit 77) where etcd is not installed. It listens on
#                 $ETCD_HOST (default 127.0.0.1), inside the network namespace
#                 $ETCD_NETNS if that is set.
#   restart_etcd NAME  start NAME's etcd again after it was killed, on the same
#                 ports and data (what it had stored survives); sets ETCD_PID.

# A TCP port on 127.0.0.1 free a moment ago.
free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# run_etcd NAME HOST CPORT PPORT: start it and wait until it answers; 1 if it does not.
run_etcd() {
    local name=$1 host=$2 cport=$3 pport=$4 deadline
    local ns=()
    [ -n "${ETCD_NETNS:-}" ] && ns=(ip netns exec "$ETCD_NETNS")
    setpriv --pdeathsig KILL "${ns[@]}" etcd --name "$name" --data-dir "$TMP/$name" \
        --listen-client-urls "http://$host:$cport" --advertise-client-urls "http://$host:$cport" \
        --listen-peer-urls "http://$host:$pport" --initial-advertise-peer-urls "http://$host:$pport" \
        --initial-cluster "$name=http://$host:$pport" >>"$TMP/$name.log" 2>&1 &
    ETCD_PID=$!
    PIDS+=("$ETCD_PID")
    deadline=$(($(date +%s) + 20))
    while kill -0 "$ETCD_PID" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do
        if curl -sf -m 2 -X POST -d '{"key":"AA=="}' "http://$host:$cport/v3/kv/range" >/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    kill -KILL "$ETCD_PID" 2>/dev/null
    wait "$ETCD_PID" 2>/dev/null
    return 1
}

start_etcd() {
    local name=$1 host=${ETCD_HOST:-127.0.0.1} cport pport try
    command -v etcd >/dev/null || { echo "SKIP: etcd not found (scripts/install-deps.sh installs etcd-server)"; exit 77; }
    for try in 1 2 3; do
        cport=$(free_port)
        pport=$(free_port)
        rm -rf "${TMP:?}/$name" "$TMP/$name.log"
        if run_etcd "$name" "$host" "$cport" "$pport"; then
            ETCD_ADDR=$host:$cport
            ETCD_URL=etcd://$ETCD_ADDR/farpool-$name
            echo "$host $cport $pport" >"$TMP/$name.ports"
            return 0
        fi
        # a port taken meanwhile by another program: try again with others
        grep -q "address already in use" "$TMP/$name.log" || break
    done
    fail "etcd $name did not answer within 20 s: $(tail -5 "$TMP/$name.log")"
    return 1
}

restart_etcd() {
    local name=$1 host cport pport
    read -r host cport pport <"$TMP/$name.ports"
    run_etcd "$name" "$host" "$cport" "$pport" && return 0
    fail "etcd $name did not answer within 20 s of its restart: $(tail -5 "$TMP/$name.log")"
    return 1
}
