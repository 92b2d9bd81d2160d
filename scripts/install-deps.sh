#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install the build and test dependencies of farpool on Debian 12 (bookworm).
# Idempotent: asks dpkg which packages are missing first, and does nothing (in
# well under a second) when none are. Runs apt-get only as root; otherwise it
# prints the command to run and exits 1.
set -euo pipefail

packages=(
    build-essential cmake ninja-build pkg-config
    clang clang-format libclang-rt-14-dev
    libsodium-dev libcmocka-dev libsqlite3-dev
    libinih-dev libsystemd-dev
    libmemcached-dev memcached gnuplot-nox iproute2 procps
    python3-numpy python3-torch sqlite3 stress-ng
    man-db groff-base
    libmicrohttpd-dev prometheus curl
    etcd-server libcurl4-openssl-dev libjson-c-dev
)

missing=()
for pkg in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != ii* ]]; then
        missing+=("$pkg")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

install_cmd=(apt-get install -y --no-install-recommends "${missing[@]}")
if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps.sh: missing packages: ${missing[*]}" >&2
    echo "install-deps.sh: run as root:" >&2
    echo "  apt-get update && DEBIAN_FRONTEND=noninteractive ${install_cmd[*]}" >&2
    exit 1
fi

echo "install-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update
"${install_cmd[@]}"
