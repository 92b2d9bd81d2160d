#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Check that every C source and header under include/ src/ tools/ tests/ bench/ examples/
# (tracked, or untracked and not ignored) is formatted per .clang-format.
# Prints the offending files and exits 1 if any; fix with clang-format -i FILE.
# CLANG_FORMAT overrides the binary (default: clang-format, Debian's 14).
set -euo pipefail

cd "$(dirname "$0")/.."
clang_format=${CLANG_FORMAT:-clang-format}

if ! command -v "$clang_format" >/dev/null 2>&1; then
    echo "check-format.sh: $clang_format not found (apt-get install clang-format)" >&2
    exit 1
fi

mapfile -t files < <(git ls-files -co --exclude-standard -- include src tools tests bench examples |
    grep -E '\.[ch]$' | sort -u)

bad=()
for f in "${files[@]}"; do
    [[ -f "$f" ]] || continue # listed by git but deleted in the work tree
    if ! "$clang_format" --dry-run -Werror "$f" >/dev/null 2>&1; then
        bad+=("$f")
    fi
done

if [[ ${#bad[@]} -ne 0 ]]; then
    echo "check-format.sh: ${#bad[@]} of ${#files[@]} files are not clang-formatted:" >&2
    for f in "${bad[@]}"; do
        echo "  $f" >&2
    done
    echo "check-format.sh: fix with: clang-format -i FILE (see the diff: clang-format FILE | diff FILE -)" >&2
    exit 1
fi
echo "check-format.sh: ${#files[@]} files OK"
