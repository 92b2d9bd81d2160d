#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The man pages of man/ as man(1) and groff see them. Checks
#   - every page formats without a single warning, under man-db
#     (`man --warnings -l`, UTF-8, 80 columns) and under `groff -man -ww -z`;
#     an alias page (one line, `.so man3/PAGE.3`, as liburing has them) through
#     the page it names, which must exist and not be an alias itself;
#   - a section 3 page fits 80 columns;
#   - every FARPOOL_API function of include/farpool/*.h has a page or an alias
#     under its own name, whose NAME lists it and whose SYNOPSIS shows the
#     header's prototype (words and punctuation, not spacing); every section 3
#     page but libfarpool.3 is named after such a function (no stale page);
#   - every farpool page a SEE ALSO (or any .BR) names exists;
#   - a page's EXAMPLES program (an .EX block that starts with #include)
#     compiles against include/ with -Wall -Wextra -Werror (when CC is given).
#
# Usage: bash man_lint.sh SOURCE_DIR [CC]
set -u

SRC=${1:?usage: $0 SOURCE_DIR [CC]}
CC=${2:-}
SRC=$(cd "$SRC" && pwd) || exit 1
MAN=$SRC/man
T=30 # seconds any one command may take

for tool in man groff timeout; do
    command -v "$tool" >/dev/null || { echo "SKIP: $tool not found (man-db, groff)"; exit 77; }
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/man_lint.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
# `.so man3/X.3` is resolved against the current directory: give it one
# where man3/ (and man1/, man8/) are man/.
mkdir -p "$TMP/root"
for s in 1 3 5 7 8; do ln -s "$MAN" "$TMP/root/man$s"; done

FAILS=0
fail() {
    echo "FAIL: $*" >&2
    FAILS=$((FAILS + 1))
}

# alias_target FILE: the page an alias names (man3/X.3 -> X.3), or nothing.
alias_target() {
    [ "$(wc -l <"$1")" -eq 1 ] || return 0
    sed -n 's|^\.so man[1-8]/\([A-Za-z0-9_.-]*\.[1-8]\)$|\1|p' "$1"
}

# render FILE: the page as text, 80 columns (FILE relative to $TMP/root).
render() {
    (cd "$TMP/root" && LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 MAN_KEEP_FORMATTING='' \
        timeout "$T" man -E UTF-8 -l "$1" 2>/dev/null) | sed 's/.\x08//g'
}

shopt -s nullglob
PAGES=("$MAN"/*.[1-8])
[ "${#PAGES[@]}" -gt 0 ] || { echo "FAIL: no man page in $MAN" >&2; exit 1; }

# --- formatting: no warning, 80 columns -------------------------------------------
for f in "${PAGES[@]}"; do
    base=${f##*/}
    sec=${base##*.}
    rel=man$sec/$base
    target=$(alias_target "$f")
    if grep -q '^\.so' "$f" && [ -z "$target" ]; then
        fail "$base: a .so page must be exactly one line, '.so man3/PAGE.3'"
        continue
    fi
    if [ -n "$target" ]; then
        if [ ! -f "$MAN/$target" ]; then
            fail "$base: names $target, which man/ does not have"
            continue
        fi
        [ -z "$(alias_target "$MAN/$target")" ] || fail "$base: names $target, itself an alias"
    fi
    (cd "$TMP/root" && LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 timeout "$T" \
        man --warnings -E UTF-8 -l -Tutf8 -Z "$rel" >/dev/null 2>"$TMP/warn")
    (cd "$TMP/root" && timeout "$T" groff -man -ww -z "$rel" 2>>"$TMP/warn")
    if [ -s "$TMP/warn" ]; then
        fail "$base: warnings from man/groff:"
        sed 's/^/    /' "$TMP/warn" >&2
    fi
    if [ "$sec" = 3 ]; then
        render "$rel" | awk -v f="$base" 'length($0) > 80 {
            printf "FAIL: %s: a line of %d columns: %s\n", f, length($0), $0 > "/dev/stderr"
            bad = 1 } END { exit bad }' || FAILS=$((FAILS + 1))
    fi
done

# --- every public function has its page, with the header's prototype -------------------
# One line per declaration: the prototype, spacing normalised.
norm() { tr -s ' \t\n' ' ' | sed -e 's/ *\([(),;*]\) */\1/g' -e 's/^ //' -e 's/ $//'; }
awk '/^FARPOOL_API / { want = 1; line = "" }
     want { line = line " " $0; if ($0 ~ /;/) { print line; want = 0 } }' \
    "$SRC"/include/farpool/*.h | sed 's/^ *FARPOOL_API //' >"$TMP/decls"
: >"$TMP/declared"
while IFS= read -r decl; do
    fn=$(sed -n 's/^[^(]*[ *]\([a-z_0-9]*\)(.*/\1/p' <<<"$decl")
    [ -n "$fn" ] || { fail "cannot read a function's name from: $decl"; continue; }
    echo "$fn" >>"$TMP/declared"
    page=$MAN/$fn.3
    if [ ! -f "$page" ]; then
        fail "$fn (FARPOOL_API in include/farpool/) has no man page: add man/$fn.3, or an alias '.so man3/PAGE.3' to the page of its family"
        continue
    fi
    target=$(alias_target "$page")
    shown=${target:-$fn.3}
    text=$(render "man3/$shown")
    name_sec=$(sed -n '/^NAME$/,/^[A-Z]/p' <<<"$text" | sed '1d;$d')
    grep -Eq "(^|[ ,])$fn(,|[ ]|$)" <<<"$name_sec" ||
        fail "$fn: man/$shown does not list it in its NAME section"
    want=$(norm <<<"$decl")
    sed -n '/^SYNOPSIS$/,/^DESCRIPTION$/p' <<<"$text" | norm >"$TMP/synopsis"
    grep -qF -- "$want" "$TMP/synopsis" ||
        fail "$fn: the SYNOPSIS of man/$shown does not show its prototype as the header has it: $want"
done <"$TMP/decls"
[ -s "$TMP/declared" ] || fail "no FARPOOL_API declaration found in include/farpool/"
for f in "$MAN"/*.3; do
    base=${f##*/}
    [ "$base" = libfarpool.3 ] && continue
    grep -qx "${base%.3}" "$TMP/declared" ||
        fail "$base: no FARPOOL_API function of that name (a stale page or alias?)"
done

# --- the pages other pages name ---------------------------------------------------------
for f in "${PAGES[@]}"; do
    sed -n 's/^\.BR \(\(lib\)\{0,1\}farpool[a-z_0-9-]*\) (\([1-8]\)).*/\1.\3/p' "$f" | sort -u |
        while read -r ref; do
            [ -f "$MAN/$ref" ] || echo "${f##*/} names ${ref%.*}(${ref##*.}), which man/ does not have"
        done
done >"$TMP/refs"
if [ -s "$TMP/refs" ]; then
    fail "pages name pages that do not exist:"
    sed 's/^/    /' "$TMP/refs" >&2
fi

# --- the example programs compile -------------------------------------------------------
if [ -n "$CC" ]; then
    for f in "$MAN"/*.3; do
        awk '/^\.SH EXAMPLES/ { ex = 1; next } /^\.SH / { ex = 0 }
             ex && /^\.EX/ { inside = 1; n = 0; next }
             inside && /^\.EE/ { inside = 0; if (prog) exit; next }
             inside { if (n++ == 0 && $0 ~ /^#include/) prog = 1; if (prog) print }' "$f" |
            sed -e 's/\\-/-/g' -e 's/\\&//g' -e 's/\\(aq/'"'"'/g' -e 's/\\(dq/"/g' \
                -e 's/\\e/\\/g' >"$TMP/example.c"
        [ -s "$TMP/example.c" ] || continue
        if ! timeout "$T" "$CC" -std=c11 -Wall -Wextra -Werror -fsyntax-only -I"$SRC/include" \
            "$TMP/example.c" >"$TMP/cc.log" 2>&1; then
            fail "${f##*/}: its example does not compile:"
            sed 's/^/    /' "$TMP/cc.log" >&2
        fi
    done
else
    echo "note: no CC given: the pages' examples are not compiled"
fi

if [ "$FAILS" -ne 0 ]; then
    echo "man_lint.sh: $FAILS failure(s)" >&2
    exit 1
fi
echo "man_lint.sh: ok (${#PAGES[@]} pages, $(wc -l <"$TMP/declared") functions with a page)"
