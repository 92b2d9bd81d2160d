#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The farpool test command: installs what is missing (scripts/install-deps.sh),
# then runs these stages in order and stops at the first that fails:
#
#   format  clang-format check (scripts/check-format.sh)
#   normal  gcc RelWithDebInfo build in build/, ctest
#   asan    clang ASan+UBSan build in build-asan/, ctest
#   tsan    clang TSan build in build-tsan/, ctest
#   fuzz    clang libFuzzer build in build-fuzz/, each target run for
#           FP_FUZZ_SECONDS over a copy of its seed corpus
#
# Environment:
#   FP_TEST_ONLY     comma list of stages to run (default: all, in the order above)
#   FP_JOBS          parallel build and ctest jobs (default: nproc)
#   FP_FUZZ_SECONDS  seconds per fuzz target (default: 30)
#
# The last line is "test.sh: N passed, M failed", counting stages; the exit
# status is non-zero if a stage failed.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

all_stages=(format normal asan tsan fuzz)
jobs=${FP_JOBS:-$(nproc)}
fuzz_seconds=${FP_FUZZ_SECONDS:-30}

if ! [[ "$jobs" =~ ^[1-9][0-9]*$ ]]; then
    echo "test.sh: FP_JOBS must be a positive integer, not '$jobs'" >&2
    exit 2
fi
if ! [[ "$fuzz_seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "test.sh: FP_FUZZ_SECONDS must be a positive integer, not '$fuzz_seconds'" >&2
    exit 2
fi

stages=()
if [[ -n "${FP_TEST_ONLY:-}" ]]; then
    IFS=',' read -r -a wanted <<<"$FP_TEST_ONLY"
    for w in "${wanted[@]}"; do
        w=${w// /}
        [[ -n "$w" ]] || continue
        if [[ " ${all_stages[*]} " != *" $w "* ]]; then
            echo "test.sh: unknown stage '$w' in FP_TEST_ONLY (stages: ${all_stages[*]})" >&2
            exit 2
        fi
    done
    # Keep the canonical order whatever the order of the list.
    for s in "${all_stages[@]}"; do
        for w in "${wanted[@]}"; do
            if [[ "${w// /}" == "$s" ]]; then
                stages+=("$s")
                break
            fi
        done
    done
else
    stages=("${all_stages[@]}")
fi
if [[ ${#stages[@]} -eq 0 ]]; then
    echo "test.sh: FP_TEST_ONLY selects no stage (stages: ${all_stages[*]})" >&2
    exit 2
fi

banner() {
    echo
    echo "=================================================================="
    echo "== test.sh: $*"
    echo "=================================================================="
}

# configure DIR COMPILER CMAKE_ARGS...: configure DIR with Ninja, starting over
# when an earlier configuration used another generator or compiler.
configure() {
    local dir=$1 cc=$2
    shift 2
    local cache="$dir/CMakeCache.txt"
    if [[ -f "$cache" ]]; then
        local gen compiler
        gen=$(sed -n 's/^CMAKE_GENERATOR:INTERNAL=//p' "$cache")
        compiler=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$cache")
        if [[ "$gen" != "Ninja" || "$(basename "$compiler")" != "$cc" ]]; then
            echo "test.sh: $dir was configured with '$gen' / '$compiler'; reconfiguring"
            rm -rf "$cache" "$dir/CMakeFiles"
        fi
    fi
    cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_C_COMPILER="$cc" \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"
}

run_ctest() {
    local dir=$1
    ctest --test-dir "$dir" --output-on-failure --no-tests=error -j "$jobs"
}

stage_format() {
    "$root/scripts/check-format.sh"
}

stage_normal() {
    configure build gcc
    cmake --build build -j "$jobs"
    run_ctest build
}

stage_asan() {
    configure build-asan clang -DFP_SANITIZE=address
    cmake --build build-asan -j "$jobs"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        run_ctest build-asan
}

stage_tsan() {
    configure build-tsan clang -DFP_SANITIZE=thread
    cmake --build build-tsan -j "$jobs"
    # clang 14's TSan cannot map its shadow memory on kernels with more ASLR
    # entropy (vm.mmap_rnd_bits > 28); without randomization it always can.
    local norandom=()
    if command -v setarch >/dev/null 2>&1 && setarch "$(uname -m)" -R true 2>/dev/null; then
        norandom=(setarch "$(uname -m)" -R)
    fi
    TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
        "${norandom[@]}" ctest --test-dir build-tsan --output-on-failure --no-tests=error \
        -j "$jobs"
}

# Longest input per fuzz target; frames need room for a full READV args part.
fuzz_max_len() {
    case "$1" in
    fuzz_frame) echo 65536 ;;
    *) echo 4096 ;;
    esac
}

stage_fuzz() {
    local targets=() src name corpus work art log max_len
    for src in tests/fuzz/fuzz_*.c; do
        targets+=("$(basename "$src" .c)")
    done
    if [[ ${#targets[@]} -eq 0 ]]; then
        echo "test.sh: no tests/fuzz/fuzz_*.c" >&2
        return 1
    fi

    configure build-fuzz clang -DFP_FUZZ=ON -DFP_BUILD_BENCH=OFF
    cmake --build build-fuzz -j "$jobs" --target "${targets[@]}"

    for name in "${targets[@]}"; do
        corpus="tests/fuzz/corpus/${name#fuzz_}"
        work="build-fuzz/fuzz-run/$name/corpus"
        art="build-fuzz/fuzz-run/$name/artifacts"
        log="build-fuzz/fuzz-run/$name/log.txt"
        max_len=$(fuzz_max_len "$name")
        if [[ ! -d "$corpus" ]]; then
            echo "test.sh: $name has no seed corpus $corpus" >&2
            return 1
        fi
        # libFuzzer adds inputs to its first corpus directory: give it a copy.
        rm -rf "build-fuzz/fuzz-run/$name"
        mkdir -p "$work" "$art"
        cp -R "$corpus/." "$work/"

        echo "test.sh: fuzzing $name for ${fuzz_seconds}s (seeds: $corpus, log: $log)"
        if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
            "build-fuzz/tests/fuzz/$name" -max_total_time="$fuzz_seconds" -timeout=10 -use_value_profile=1 \
            -rss_limit_mb=2048 -max_len="$max_len" -print_final_stats=1 \
            -artifact_prefix="$art/" "$work" >"$log" 2>&1; then
            # From the first report line (a failed CHECK, a sanitizer or a
            # libFuzzer error) on; the whole log stays in $log.
            awk '/check failed|==[0-9]+==ERROR|runtime error|ERROR: libFuzzer/ { p = 1 }
                 p && n++ < 40' "$log" >&2
            grep -E '^artifact_prefix' "$log" >&2 || tail -n 30 "$log" >&2
            echo "test.sh: $name failed; input saved in $art/; reproduce with:" >&2
            echo "  build-fuzz/tests/fuzz/$name $art/<file>" >&2
            return 1
        fi
        grep -E '^(#[0-9]+[[:space:]]+DONE|Done [0-9]+ runs)' "$log" || true
    done
}

if ! "$root/scripts/install-deps.sh"; then
    echo "test.sh: dependencies missing; see above" >&2
    exit 1
fi

passed=0
failed=0
failed_stage=
start_all=$SECONDS
for s in "${stages[@]}"; do
    banner "stage $s ($((passed + 1))/${#stages[@]})"
    start=$SECONDS
    set +e
    (
        set -euo pipefail
        "stage_$s"
    )
    rc=$?
    set -e
    if [[ $rc -eq 0 ]]; then
        echo "test.sh: stage $s passed in $((SECONDS - start))s"
        passed=$((passed + 1))
    else
        echo "test.sh: stage $s FAILED (exit $rc) after $((SECONDS - start))s" >&2
        failed=$((failed + 1))
        failed_stage=$s
        break
    fi
done

banner "summary ($((SECONDS - start_all))s)"
if [[ -n "$failed_stage" ]]; then
    not_run=()
    seen=0
    for s in "${stages[@]}"; do
        if [[ $seen -eq 1 ]]; then
            not_run+=("$s")
        fi
        if [[ "$s" == "$failed_stage" ]]; then
            seen=1
        fi
    done
    echo "test.sh: failed stage: $failed_stage${not_run[*]:+; not run: ${not_run[*]}}"
fi
echo "test.sh: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
