#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# libfarpool as a user meets it: installed with `cmake --install` into a
# temporary prefix, found with pkg-config, linked as the shared library. Checks
#   - the README's C example is examples/quickstart.c, word for word;
#   - it builds with `cc prog.c $(pkg-config --cflags --libs farpool)` against
#     the installed headers and libfarpool.so (not the static archive), with
#     -Wall -Wextra -Werror;
#   - it runs against the installed farpoold and reads back what it wrote;
#   - libfarpool.so exports exactly the FARPOOL_API functions of the installed
#     headers, each under a FARPOOL_ version node, and nothing of the server,
#     the benchmarks or the library's internals;
#   - libfarpool.so and libfarpool.a hold no code of the server (fp_server,
#     fp_slab, fp_region_table: that is farpoold's, in the unshipped fp_server);
#   - the installed farpool holds no benchmark code (bench_, moe_, tiers_);
#     `farpool bench moe --help` runs the installed farpool-bench (when the
#     build has the benchmarks), or says it needs one and exits 1; no installed
#     program has a path of the build tree among its constants;
#   - pkg-config's version is the installed programs' and the library's;
#   - the man pages are installed: farpool(1), farpoold(8), and a man3 page or
#     alias for every FARPOOL_API function, which `man` finds in the prefix.
#
# Usage: bash pkg_install.sh BUILD_DIR SOURCE_DIR CC [CFLAGS]
# CFLAGS: what the build's own objects need to link (a sanitizer's flags).
set -u

BUILD=${1:?usage: $0 BUILD_DIR SOURCE_DIR CC [CFLAGS]}
SRC=${2:?usage: $0 BUILD_DIR SOURCE_DIR CC [CFLAGS]}
CC=${3:?usage: $0 BUILD_DIR SOURCE_DIR CC [CFLAGS]}
read -r -a EXTRA <<<"${4:-}"
T=60 # seconds any one command may take

for tool in cmake pkg-config nm readelf timeout setpriv; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool not found"; exit 77; }
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/pkg_install.XXXXXX")
PREFIX=$TMP/prefix
PID=
cleanup() {
    if [ -n "$PID" ]; then
        kill -KILL "$PID" 2>/dev/null
        wait "$PID" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
unset FARPOOL_SECRET_FILE FARPOOL_LOG_LEVEL

FAILS=0
fail() {
    echo "FAIL: $*" >&2
    FAILS=$((FAILS + 1))
}

# --- install -------------------------------------------------------------------
if ! timeout "$T" cmake --install "$BUILD" --prefix "$PREFIX" >"$TMP/install.log" 2>&1; then
    cat "$TMP/install.log" >&2
    echo "FAIL: cmake --install $BUILD --prefix $PREFIX" >&2
    exit 1
fi
PC=$(find "$PREFIX" -name farpool.pc -print -quit)
[ -n "$PC" ] || { echo "FAIL: no farpool.pc installed" >&2; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$PC")
LIBDIR=$(pkg-config --variable=libdir farpool)
LIB=$LIBDIR/libfarpool.so
[ -e "$LIB" ] || { echo "FAIL: pkg-config's libdir $LIBDIR has no libfarpool.so" >&2; exit 1; }
for f in "$PREFIX/bin/farpoold" "$PREFIX/bin/farpool" "$PREFIX/include/farpool/farpool.h" \
    "$PREFIX/include/farpool/status.h"; do
    [ -e "$f" ] || fail "not installed: ${f#"$PREFIX"/}"
done
# farpool-bench: installed when the build has the benchmarks (CTest says so in
# FP_BENCH_BUILT; run by hand, the build tree's farpool-bench does).
PROGS=(farpoold farpool)
if [ "${FP_BENCH_BUILT:-}" = ON ] || { [ -z "${FP_BENCH_BUILT:-}" ] && [ -e "$BUILD/farpool-bench" ]; }; then
    PROGS+=(farpool-bench)
    for f in "$PREFIX/bin/farpool-bench" "$PREFIX/share/man/man1/farpool-bench.1"; do
        [ -e "$f" ] || fail "not installed: ${f#"$PREFIX"/}"
    done
elif [ -e "$PREFIX/bin/farpool-bench" ]; then
    fail "bin/farpool-bench installed by a build that has none"
fi

# --- versions --------------------------------------------------------------------
VERSION=$(pkg-config --modversion farpool)
for prog in "${PROGS[@]}"; do
    got=$(timeout "$T" "$PREFIX/bin/$prog" --version 2>&1)
    [ "$got" = "$prog $VERSION" ] || fail "$prog --version says '$got', pkg-config '$VERSION'"
done

# --- exported symbols --------------------------------------------------------------
# Declared: every FARPOOL_API function of the installed headers.
sed -n 's/^FARPOOL_API [^(]*[ *]\([a-z_0-9]*\)(.*/\1/p' "$PREFIX"/include/farpool/*.h |
    sort -u >"$TMP/declared"
# Exported: what the dynamic symbol table defines, and under which version.
nm -D --defined-only "$LIB" | awk '$2 ~ /^[TDBRW]$/ { print $3 }' >"$TMP/exported.raw"
sed 's/@.*//' "$TMP/exported.raw" | sort -u >"$TMP/exported"
if ! diff -u "$TMP/declared" "$TMP/exported" >"$TMP/sym.diff"; then
    fail "libfarpool.so exports other symbols than the headers' FARPOOL_API functions (- declared only, + exported only):"
    sed 's/^/    /' "$TMP/sym.diff" >&2
fi
if grep -v '@@FARPOOL_[0-9.]*$' "$TMP/exported.raw" >"$TMP/unversioned"; then
    fail "symbols outside a FARPOOL_ version node: $(tr '\n' ' ' <"$TMP/unversioned")"
fi
[ -s "$TMP/declared" ] || fail "no FARPOOL_API declaration found in the installed headers"

# --- man pages ---------------------------------------------------------------------
# farpool(1), farpoold(8), libfarpool(3) and a man3 page (or `.so` alias) under
# every FARPOOL_API function's name, which man finds in the prefix and formats
# (an alias through the page it names).
MANDIR=$PREFIX/share/man
for f in man1/farpool.1 man8/farpoold.8 man3/libfarpool.3 $(sed 's|.*|man3/&.3|' "$TMP/declared"); do
    [ -f "$MANDIR/$f" ] || fail "not installed: share/man/$f"
done
if command -v man >/dev/null; then
    # man -w follows an alias to the page it names.
    for fn in farpool_map farpool_unmap; do
        page=$(MANPATH=$MANDIR timeout "$T" man -w "$fn" 2>&1)
        [ "$page" = "$MANDIR/man3/farpool_map.3" ] || fail "man -w $fn in the prefix says '$page'"
    done
    MANPATH=$MANDIR MANWIDTH=80 timeout "$T" man farpool_unmap 2>"$TMP/man.err" |
        sed 's/.\x08//g' | tr -s ' ' >"$TMP/man.out"
    grep -q 'farpool_map, farpool_sync, farpool_unmap' "$TMP/man.out" && [ ! -s "$TMP/man.err" ] ||
        fail "man farpool_unmap (installed) did not show farpool_map(3): $(head -3 "$TMP/man.err")"
else
    echo "note: no man: the installed pages are not looked up"
fi

# --- what the installed library holds: the client, not the server ------------------
# syms FILE: the names of FILE's defined symbols, hidden ones too (its whole
# symbol table); nothing, and a note, if it has none (a stripped file).
syms() {
    if nm --defined-only "$1" >"$TMP/nm.out" 2>/dev/null; then
        awk 'NF >= 2 { print $NF }' "$TMP/nm.out"
    else
        echo "note: ${1##*/} has no symbol table (stripped?): not checked" >&2
    fi
}
for f in "$LIB" "$LIBDIR/libfarpool.a"; do
    [ -e "$f" ] || { fail "not installed: ${f##*/}"; continue; }
    syms "$f" | grep -E '^(fp_server|fp_slab|fp_region_table)' | sort -u >"$TMP/server_syms"
    [ -s "$TMP/server_syms" ] &&
        fail "${f##*/} holds the server's code: $(head -5 "$TMP/server_syms" | tr '\n' ' ')"
done

# --- the installed programs: no benchmark in farpool, no build tree anywhere ---------
# farpool links no benchmark code: `farpool bench` execs farpool-bench.
syms "$PREFIX/bin/farpool" | grep -E '^(bench_|moe_|tiers_)' | sort -u >"$TMP/bench_syms"
[ -s "$TMP/bench_syms" ] &&
    fail "bin/farpool holds benchmark code: $(head -5 "$TMP/bench_syms" | tr '\n' ' ')"
# No program has the build tree's path (of farpoold, say) among its constants.
BUILD_ABS=$(cd "$BUILD" && pwd)
for prog in "${PROGS[@]}"; do
    if readelf -p .rodata "$PREFIX/bin/$prog" 2>/dev/null | grep -qF "$BUILD_ABS/"; then
        fail "bin/$prog has a path of the build tree compiled in: $(readelf -p .rodata \
            "$PREFIX/bin/$prog" | grep -F "$BUILD_ABS/" | head -3 | tr -s ' ' | tr '\n' ' ')"
    fi
done
# `farpool bench` runs the installed farpool-bench beside it, whatever PATH
# says; without one it says so and exits 1.
mkdir -p "$TMP/nobin"
timeout "$T" env PATH="$TMP/nobin" "$PREFIX/bin/farpool" bench moe --help >"$TMP/bench.out" \
    2>"$TMP/bench.err"
RC=$?
if [[ " ${PROGS[*]} " == *" farpool-bench "* ]]; then
    [ "$RC" -eq 0 ] && grep -q '^Usage: farpool-bench moe' "$TMP/bench.out" ||
        fail "farpool bench moe --help (installed) exited $RC: $(head -3 "$TMP/bench.err")"
else
    [ "$RC" -eq 1 ] && grep -q 'needs farpool-bench' "$TMP/bench.err" ||
        fail "farpool bench without farpool-bench exited $RC: $(head -3 "$TMP/bench.err")"
fi

# --- the README's example ------------------------------------------------------------
# The C block that follows the line naming examples/quickstart.c.
awk '/<!-- examples\/quickstart.c -->/ { want = 1; next }
     want && /^```c$/ { inside = 1; next }
     inside && /^```$/ { exit }
     inside { print }' "$SRC/README.md" >"$TMP/readme_example.c"
if ! diff -u "$SRC/examples/quickstart.c" "$TMP/readme_example.c" >"$TMP/example.diff"; then
    fail "README.md's example differs from examples/quickstart.c:"
    head -20 "$TMP/example.diff" | sed 's/^/    /' >&2
fi

# shellcheck disable=SC2046 # pkg-config's words are meant to split
if ! timeout "$T" "$CC" -std=c11 -Wall -Wextra -Werror "${EXTRA[@]}" "$SRC/examples/quickstart.c" \
    $(pkg-config --cflags --libs farpool) -Wl,-rpath,"$LIBDIR" -o "$TMP/quickstart" \
    >"$TMP/cc.log" 2>&1; then
    fail "the example does not build against the installed library:"
    sed 's/^/    /' "$TMP/cc.log" >&2
    exit 1
fi
if ! ldd "$TMP/quickstart" | grep -q "libfarpool.so.* => $LIBDIR/libfarpool.so"; then
    fail "the example is not linked to the installed libfarpool.so:"
    ldd "$TMP/quickstart" | sed 's/^/    /' >&2
fi

# --- run it against the installed farpoold ---------------------------------------------
setpriv --pdeathsig KILL "$PREFIX/bin/farpoold" --listen 127.0.0.1:0 --port-file "$TMP/port" \
    --capacity 512M --log-level warn >"$TMP/farpoold.log" 2>&1 </dev/null &
PID=$!
for _ in $(seq 1 400); do
    [ -s "$TMP/port" ] && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.05
done
if [ ! -s "$TMP/port" ]; then
    cat "$TMP/farpoold.log" >&2
    echo "FAIL: the installed farpoold did not start" >&2
    exit 1
fi
NODE=$(cat "$TMP/port")
if ! timeout "$T" "$TMP/quickstart" "$NODE" >"$TMP/run.out" 2>"$TMP/run.err"; then
    fail "the example failed against $NODE:"
    sed 's/^/    /' "$TMP/run.out" "$TMP/run.err" >&2
elif ! grep -Eq '^read back 256 MiB: [1-9][0-9]* blocks fetched' "$TMP/run.out"; then
    fail "the example said: $(cat "$TMP/run.out")"
fi
# The example deleted its region: the node holds nothing now.
if ! timeout "$T" "$PREFIX/bin/farpool" status --node "$NODE" >"$TMP/status.out" 2>&1; then
    fail "farpool status --node $NODE: $(cat "$TMP/status.out")"
elif ! grep -Eq '^used +0 ' "$TMP/status.out"; then
    fail "the node still holds memory after the example: $(grep '^used' "$TMP/status.out")"
fi

# --- the shim of `farpool run` ------------------------------------------------------
# libfarpool-preload.so is installed beside libfarpool and exports the
# interposed functions only (those src/preload/preload.map names); the installed farpool finds it (a program that
# maps nothing runs as it is, and hears which --map matched nothing).
SHIM=$LIBDIR/libfarpool-preload.so
if [ ! -e "$SHIM" ]; then
    fail "not installed: libfarpool-preload.so in $LIBDIR"
else
    nm -D --defined-only "$SHIM" | awk '$2 ~ /^[TDBRW]$/ { print $3 }' | sed 's/@.*//' | sort -u \
        >"$TMP/shim_exported"
    # The global names of its version script, exactly.
    awk '/global:/ { on = 1; next } /local:/ { on = 0 } on && /;/ { gsub(/[ \t;]/, ""); print }' \
        "$SRC/src/preload/preload.map" | sort -u >"$TMP/shim_expected"
    [ "$(wc -l <"$TMP/shim_expected")" -ge 8 ] || fail "cannot read the shim's names from preload.map"
    diff -u "$TMP/shim_expected" "$TMP/shim_exported" >"$TMP/shim.diff" ||
        fail "libfarpool-preload.so exports other symbols than the interposed functions: $(tr '\n' ' ' <"$TMP/shim.diff")"
    if [ -z "${4:-}" ]; then # a sanitized shim cannot be preloaded into sh
        timeout "$T" "$PREFIX/bin/farpool" run --map '*/none' --pool farpool://127.0.0.1:1 -- \
            sh -c 'printf "%s" "$LD_PRELOAD"' >"$TMP/run.ld" 2>"$TMP/run.ld.err"
        [ "$(cat "$TMP/run.ld")" = "$(cd "$LIBDIR" && pwd -P)/libfarpool-preload.so" ] ||
            fail "the installed farpool run preloads '$(cat "$TMP/run.ld")' ($(head -c 300 "$TMP/run.ld.err")), not $SHIM"
    fi
fi

if [ "$FAILS" -ne 0 ]; then
    echo "pkg_install.sh: $FAILS failure(s)" >&2
    exit 1
fi
echo "pkg_install.sh: ok (farpool $VERSION installed in a temporary prefix; example built and run)"
