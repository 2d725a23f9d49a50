#!/usr/bin/env bash
# Fuzzes kao's readers of outside input with libFuzzer (tests/fuzz: images, config, pairs files,
# split manifests, weights and checkpoints, safetensors, Keras HDF5, ONNX --check):
#   bash scripts/fuzz.sh [minutes]      (default 1: the whole run, shared out among the harnesses)
# Builds build-fuzz (clang, -DKAO_FUZZ=ON: ASan, UBSan and coverage over the whole library), makes
# the seed corpus (tests/fuzz/make_seeds.py), then runs each harness for its share with a 10 s
# timeout per input (a hang) and a 2 GB memory limit. Corpora stay in build-fuzz/corpus/<target>,
# so a longer run builds on the shorter ones. Prints per harness: executions, crashes (leaks and
# sanitizer reports included), timeouts, out-of-memory; exit status 1 when any harness found
# something, with the input that reproduces it (build-fuzz/artifacts/<target>/).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
minutes="${1:-1}"
build=build-fuzz
bin="$build/tests/fuzz" # the harnesses (tests/fuzz/CMakeLists.txt)

cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKAO_FUZZ=ON >/dev/null
cmake --build "$build" -j "$(nproc)" --target fuzz kao >/dev/null

# Seeds again when their script changed.
if [ ! -f "$build/seeds/.made" ] || [ tests/fuzz/make_seeds.py -nt "$build/seeds/.made" ]; then
    rm -rf "$build/seeds"
    "$(bash scripts/setup_python.sh)" tests/fuzz/make_seeds.py "$build/seeds" "$build/kao"
    touch "$build/seeds/.made"
fi

targets=(image config pairs split weights safetensors keras onnx_check)
seconds=$(( minutes * 60 / ${#targets[@]} ))
[ "$seconds" -ge 5 ] || seconds=5

dict_of() {
    case "$1" in
        weights | keras) echo tests/fuzz/dict/hdf5.dict ;;
        onnx_check) echo tests/fuzz/dict/onnx.dict ;;
        *) echo "tests/fuzz/dict/$1.dict" ;;
    esac
}

# The harnesses' temp files (fuzz_common.c) go under the build folder, left over ones from a
# crashed run included.
export TMPDIR="$here/$build/tmp"
rm -rf "$TMPDIR"
mkdir -p "$TMPDIR" "$build/logs"
export UBSAN_OPTIONS=print_stacktrace=1

# The harnesses whose readers fork (h5sandbox.c: libhdf5 reads unsealed files in a child): the
# child inherits ASan, under which a hostile file's gigabyte allocations in libhdf5 take seconds
# (shadow memory) where they take milliseconds in kao's normal build. Allocations over 1 GB fail
# there instead (libhdf5 reports it; kao_malloc aborts, which counts as a finding). The child's own
# crashes are contained by design: only the parent's findings count (below).
asan_of() {
    case "$1" in
        weights | keras) echo allocator_may_return_null=1:max_allocation_size_mb=1024 ;;
    esac
}

stat_of() { grep -m1 "^stat::$1:" "$2" | awk '{print $2}' || true; }

found=0 total_runs=0 total_findings=0
for t in "${targets[@]}"; do
    corpus="$build/corpus/$t" artifacts="$build/artifacts/$t" log="$build/logs/$t.log"
    rm -rf "$artifacts"
    mkdir -p "$corpus" "$artifacts"
    rc=0
    ASAN_OPTIONS="$(asan_of "$t")" "$bin/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$artifacts/" -dict="$(dict_of "$t")" "$corpus" "$build/seeds/$t" \
        >"$log" 2>&1 || rc=$?
    # libFuzzer stops at its first finding, exits non-zero and names the input last; other files in
    # artifacts/ are a sandbox child's (see asan_of) or slow units, and are removed.
    crashes=0 timeouts=0 ooms=0 repro=""
    if [ "$rc" -ne 0 ]; then
        repro="$(grep -o "Test unit written to .*" "$log" | tail -1 | sed 's/^Test unit written to //')"
        case "$(basename "${repro:-crash-}")" in
            timeout-*) timeouts=1 ;;
            oom-*) ooms=1 ;;
            *) crashes=1 ;; # crash-, leak-, or a death without an input written
        esac
    fi
    find "$artifacts" -type f ! -path "$repro" -delete
    runs="$(stat_of number_of_executed_units "$log")"
    total_runs=$(( total_runs + ${runs:-0} )) total_findings=$(( total_findings + crashes + timeouts + ooms ))
    printf 'fuzz %-11s %9s executions, %d crashes, %d timeouts/hangs, %d OOMs (%d s, corpus %d files)\n' "$t" \
        "${runs:-?}" "$crashes" "$timeouts" "$ooms" "$seconds" "$(find "$corpus" -type f | wc -l)"
    if [ "$rc" -ne 0 ]; then
        found=1
        echo "    reproduce: ASAN_OPTIONS=$(asan_of "$t") $bin/fuzz_$t ${repro:-(no input written: see the log)}"
        echo "    log: $log"
    fi
done
echo "fuzz: ${#targets[@]} harnesses, $total_runs executions, $total_findings findings (crashes, hangs, OOMs)"
exit "$found"
