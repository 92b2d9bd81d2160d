#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The systemd units in dist/systemd/ pass `systemd-analyze verify` (offline:
# no running systemd is needed), with their paths filled in as `cmake
# --install` fills them but ExecStart= the farpoold of this build (verify
# checks that it exists), and Documentation=man:farpoold(8) found in this
# tree's man/. Their exposure by `systemd-analyze security --offline=yes`
# stays at most 2.0 ("OK"; 1.2 when written). The example configuration
# file, dist/farpoold.conf, is one that farpoold accepts.
#
# Usage: bash systemd_verify.sh FARPOOLD SOURCE_DIR
set -u

FARPOOLD=${1:?usage: $0 FARPOOLD SOURCE_DIR}
SRC=${2:?usage: $0 FARPOOLD SOURCE_DIR}
T=30 # seconds any one command may take
THRESHOLD=20 # systemd-analyze security's exposure, times 10

[ -x "$FARPOOLD" ] || { echo "SKIP: $FARPOOLD is not executable"; exit 77; }
for tool in systemd-analyze timeout; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool not found"; exit 77; }
done

CLI_NAME=systemd_verify
. "$(dirname "$0")/common/cli.sh"

FARPOOLD=$(realpath "$FARPOOLD")
# Documentation= is checked by running man(1); without man, it is not.
man_opt=--man=yes
if command -v man >/dev/null; then
    mkdir -p "$TMP/man/man8"
    ln -s "$SRC/man/farpoold.8" "$TMP/man/man8/farpoold.8"
    export MANPATH=$TMP/man
else
    echo "man(1) not found: Documentation= is not checked"
    man_opt=--man=no
fi

mkdir "$TMP/units"
units=()
for in in "$SRC"/dist/systemd/*.service.in; do
    unit=$(basename "$in" .in)
    sed -e "s|@FARPOOLD@|$FARPOOLD|g" -e "s|@SYSCONFDIR@|/etc|g" "$in" >"$TMP/units/$unit"
    if grep -n '@[A-Z_]*@' "$TMP/units/$unit"; then
        fail "$unit: a placeholder is left"
    else ok; fi
    grep -q "^ExecStart=$FARPOOLD --config /etc/farpool/" "$TMP/units/$unit" && ok ||
        fail "$unit: ExecStart= does not run $FARPOOLD --config /etc/farpool/..."
    case $unit in
    *@.service)
        # a template is verified as an instance
        cp "$TMP/units/$unit" "$TMP/units/${unit%@.service}@test.service"
        units+=("$TMP/units/${unit%@.service}@test.service")
        ;;
    *) units+=("$TMP/units/$unit") ;;
    esac
done
[ "${#units[@]}" -ge 2 ] && ok || fail "fewer than 2 units in $SRC/dist/systemd: ${units[*]}"

for unit in "${units[@]}"; do
    name=$(basename "$unit")
    expect 0 "verify_$name" systemd-analyze verify "$man_opt" "$unit"
    if [ -s "$TMP/verify_$name.err" ]; then
        fail "verify_$name: systemd-analyze verify warned: $(head -5 "$TMP/verify_$name.err")"
    fi
    run "security_$name" systemd-analyze security --offline=yes --threshold="$THRESHOLD" "$unit"
    level=$(sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p' "$TMP/security_$name.out")
    echo "$name: exposure $level"
    if [ "$RC" -ne 0 ]; then
        fail "security_$name: exposure ${level:-?} over $THRESHOLD/10: $(grep '✗' "$TMP/security_$name.out" | head -20)"
    else ok; fi
done

# The example configuration, as installed to /etc/farpool/farpoold.conf.
expect 0 example_conf "$FARPOOLD" --config "$SRC/dist/farpoold.conf" --print-config &&
    grep -qx 'secret-credential = secret' "$TMP/example_conf.out" && ok ||
    fail "example_conf: the example does not take the secret from the unit's credential"
for unit in "${units[@]}"; do
    grep -q '^LoadCredential=secret:/etc/farpool/secret$' "$unit" && ok ||
        fail "$(basename "$unit") does not load the credential 'secret' the example names"
done

finish
