#!/usr/bin/env bash
# The one-shot check of the CUDA backend on a machine with an NVIDIA GPU (an H100; no network).
#
#   scripts/gpu_check.sh            on the GPU machine, from the repository root:
#       1. builds test_cuda_ops with -DKAO_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 (CMake, all cores),
#          or, when kao's CPU build dependencies (HDF5, libpng, OpenBLAS, inih, protobuf-c) are not
#          installed there, compiles cuda/*.cu with that machine's nvcc (a compile check) and runs
#          the test program from the bundle that --prepare made (see below; KAO_GPU_CHECK_FORCE_BUNDLE=1
#          takes this path even where kao builds, to test it). Warnings are shown, not errors
#          there (CI builds with -Werror; a newer compiler must not cost the GPU session);
#       2. runs test_cuda_ops with KAO_CUDA_SYNC=1 (every op waits for its kernels, so a fault is
#          reported by the op that caused it), then as it runs in training (asynchronous);
#       3. runs it under compute-sanitizer memcheck and racecheck when that tool is there, each
#          with a time limit (a sanitizer that runs out of time is reported, not failed);
#       4. prints a summary table last. Exit status 0 only when the build and both test runs
#          passed and no sanitizer found an error. Designed to finish in under 8 minutes.
#   scripts/gpu_check.sh --prepare  on a development machine (no GPU needed): builds test_cuda_ops
#       for sm_90 with -march=x86-64-v3 instead of -march=native and packs it, with the shared libraries a CUDA image may
#       lack (OpenBLAS, gfortran, gomp, cudart), into .gpu-check/bundle.tar.xz (~6 MB; ignored by
#       git through .git/info/exclude). Carry .gpu-check to the GPU machine. cuBLAS and cuDNN are
#       not packed (hundreds of MB): the GPU machine's own are used (toolkit or pip wheels).
#
# Logs go to $KAO_GPU_CHECK_LOGS (default build-gpu-check/logs).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"

build="build-gpu-check"
bundle_dir=.gpu-check
bundle="$bundle_dir/bundle.tar.xz"
t_start=$(date +%s.%N)

since() { echo "$(date +%s.%N) $1" | awk '{printf "%.1f", $1 - $2}'; }
note() { echo "gpu_check: $*"; }

# A fingerprint of everything that goes into test_cuda_ops, to tell whether a bundle is current.
source_stamp() {
    cat CMakeLists.txt cuda/* include/kao/*.h src/*.c src/*.h tests/test_cuda_ops.c tests/check.h 2>/dev/null |
        sha256sum | cut -c1-16
}

# ---- --prepare: the bundle, built here --------------------------------------------------------
if [ "${1:-}" = "--prepare" ]; then
    prep="build-gpu-prepare"
    # x86-64-v3 (AVX2, FMA) instead of this machine's -march=native: the GPU machine's CPU differs.
    cmake -S . -B "$prep" -DCMAKE_BUILD_TYPE=Release -DKAO_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
        -DKAO_NATIVE=OFF -DCMAKE_C_FLAGS=-march=x86-64-v3 >/dev/null
    cmake --build "$prep" -j "$(nproc)" --target test_cuda_ops
    stage="$(mktemp -d)"
    mkdir -p "$stage/lib" "$bundle_dir"
    cp "$prep/tests/test_cuda_ops" "$stage/"
    # Every shared library it loads except the C/C++ runtime (the machine's own is newer), the
    # driver, cuBLAS and cuDNN.
    ldd "$prep/tests/test_cuda_ops" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' |
        while read -r name path; do
            case "$name" in
            linux-vdso* | ld-linux* | libc.so* | libm.so* | libpthread.so* | libdl.so* | librt.so* | \
                libstdc++.so* | libgcc_s.so* | libcuda.so* | libcublas* | libcudnn*) ;;
            *) cp -L "$path" "$stage/lib/$name" ;;
            esac
        done
    source_stamp >"$stage/source_stamp"
    tar -C "$stage" -cJf "$bundle" .
    rm -rf "$stage"
    mkdir -p .git/info
    grep -qx "/$bundle_dir/" .git/info/exclude 2>/dev/null || echo "/$bundle_dir/" >>.git/info/exclude
    note "wrote $bundle ($(du -h "$bundle" | cut -f1)): $(tar -tJf "$bundle" | grep -c 'lib/') libraries; carry $bundle_dir"
    exit 0
fi

# ---- on the GPU machine -------------------------------------------------------------------------
logs="${KAO_GPU_CHECK_LOGS:-$build/logs}"
mkdir -p "$build" "$logs"
rows=()   # "step|result|seconds"
failed=0
row() { rows+=("$1|$2|$3"); }

gpu_name="$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1 || true)"
[ -n "$gpu_name" ] || gpu_name="(nvidia-smi gave nothing)"
nvcc_version="$(nvcc --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p' || true)"
note "GPU: $gpu_name; nvcc ${nvcc_version:-missing}"

# The directory holding a shared library: ldconfig's cache, the toolkit, pip's nvidia wheels, a search.
lib_dir() {
    local name="$1" path=""
    path="$(ldconfig -p 2>/dev/null | awk -v n="$name" '$1 == n {print $NF; exit}' || true)"
    if [ -z "$path" ]; then
        local roots=(/usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib)
        local py_nvidia
        py_nvidia="$(python3 -c 'import nvidia; print(list(nvidia.__path__)[0])' 2>/dev/null || true)"
        [ -n "$py_nvidia" ] && roots+=("$py_nvidia")
        path="$(find "${roots[@]}" -name "$name" 2>/dev/null | head -1 || true)"
        [ -n "$path" ] || path="$(find /usr /opt -name "$name" -not -path '*/proc/*' 2>/dev/null | head -1 || true)"
    fi
    [ -n "$path" ] && dirname "$path"
    return 0
}
cudnn_lib_dir="$(lib_dir libcudnn.so.9)"
cublas_lib_dir="$(lib_dir libcublas.so.13)"
cudnn_include=""
for d in /usr/local/cuda/include /usr/include "${cudnn_lib_dir:-/nonexistent}/../include"; do
    if [ -f "$d/cudnn.h" ]; then cudnn_include="$(cd "$d" && pwd)"; break; fi
done
note "cuDNN: lib ${cudnn_lib_dir:-not found}, include ${cudnn_include:-not found}; cuBLAS: ${cublas_lib_dir:-not found}"
export LD_LIBRARY_PATH="${cudnn_lib_dir:+$cudnn_lib_dir:}${cublas_lib_dir:+$cublas_lib_dir:}${LD_LIBRARY_PATH:-}"

# ---- 1. build --------------------------------------------------------------------------------
# With kao's CPU dependencies: the CMake build. Without them (or when that build fails): a compile
# check of cuda/*.cu with this machine's nvcc (if CMake was not tried) and the prepared bundle, so
# the GPU time still yields test results.
binary=""
t=$(date +%s.%N)
# Warnings are not errors here: this machine's compilers may be newer than CI's (which builds with
# -Werror), and a new warning in unrelated C code must not cost the GPU session.
warnings() { grep -c 'warning' "$1" || true; }
tried_cmake=0
if [ "${KAO_GPU_CHECK_FORCE_BUNDLE:-0}" != "1" ] &&
    pkg-config --exists hdf5 libpng openblas inih libprotobuf-c 2>/dev/null && command -v protoc-c >/dev/null; then
    tried_cmake=1
    cmake_args=(-DCMAKE_BUILD_TYPE=Release -DKAO_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90)
    [ -n "$cudnn_lib_dir" ] && cmake_args+=("-DCUDNN_LIBRARY=$cudnn_lib_dir/libcudnn.so.9")
    [ -n "$cudnn_include" ] && cmake_args+=("-DCUDNN_INCLUDE_DIR=$cudnn_include")
    if cmake -S . -B "$build" "${cmake_args[@]}" >"$logs/build.log" 2>&1 &&
        cmake --build "$build" -j "$(nproc)" --target test_cuda_ops >>"$logs/build.log" 2>&1; then
        binary="$build/tests/test_cuda_ops"
        row "build (cmake, sm_90)" "ok, $(warnings "$logs/build.log") warning lines" "$(since "$t")"
    else
        row "build (cmake, sm_90)" "FAILED (logs/build.log)" "$(since "$t")"
        tail -30 "$logs/build.log"
        failed=1
    fi
else
    note "kao's CPU build dependencies are not all installed here (or KAO_GPU_CHECK_FORCE_BUNDLE=1)"
fi
if [ -z "$binary" ] && [ "$tried_cmake" -eq 0 ]; then
    t=$(date +%s.%N)
    mkdir -p "$build/nvcc"
    inc=(-Iinclude)
    [ -n "$cudnn_include" ] && inc+=("-I$cudnn_include")
    # shellcheck disable=SC2016 # $(basename {}) is for the inner sh
    if printf '%s\n' cuda/*.cu | xargs -P "$(nproc)" -I{} sh -c \
        'nvcc -std=c++17 -O3 -arch=sm_90 -Xcompiler=-Wall,-Wextra,-Wshadow,-Wno-unused-parameter '"${inc[*]}"' -c {} -o '"$build"'/nvcc/$(basename {}).o' \
        >"$logs/build.log" 2>&1; then
        row "nvcc cuda/*.cu (sm_90)" "ok, $(warnings "$logs/build.log") warning lines" "$(since "$t")"
    else
        row "nvcc cuda/*.cu (sm_90)" "FAILED (logs/build.log)" "$(since "$t")"
        tail -30 "$logs/build.log"
        failed=1
    fi
fi
if [ -z "$binary" ]; then
    t=$(date +%s.%N)
    if [ -f "$bundle" ]; then
        rm -rf "$build/bundle" && mkdir -p "$build/bundle"
        tar -C "$build/bundle" -xJf "$bundle"
        binary="$build/bundle/test_cuda_ops"
        export LD_LIBRARY_PATH="$here/$build/bundle/lib:$LD_LIBRARY_PATH"
        state="ok, built from these sources"
        [ "$(cat "$build/bundle/source_stamp")" = "$(source_stamp)" ] ||
            state="ok, but STALE: built from other sources (rerun --prepare)"
        row "prepared bundle" "$state" "$(since "$t")"
    else
        row "bundle" "MISSING: run --prepare where kao builds, carry $bundle_dir" "0.0"
        failed=1
    fi
fi

# ---- 2. the tests ----------------------------------------------------------------------------
# A test run: its summary line ("N passed, N failed") or why it ended.
run_test() {
    local label="$1" log="$2"
    shift 2
    local t rc=0
    t=$(date +%s.%N)
    timeout 240 "$@" >"$log" 2>&1 || rc=$?
    local summary
    summary="$(grep -E '^test_cuda_ops: [0-9]+ passed' "$log" | tail -1 | sed 's/^test_cuda_ops: //' || true)"
    if [ "$rc" -eq 0 ]; then
        row "$label" "ok: $summary" "$(since "$t")"
    else
        case "$rc" in
        77) row "$label" "$(head -1 "$log" | cut -c1-58)" "$(since "$t")" ;;
        124) row "$label" "TIMEOUT after 240 s" "$(since "$t")" ;;
        *) row "$label" "FAILED rc $rc: ${summary:-see $log}" "$(since "$t")" ;;
        esac
        grep -E '^FAIL|internal error|SKIPPED' "$log" | head -20 || true
        failed=1
    fi
}

if [ -n "$binary" ]; then
    run_test "test_cuda_ops, KAO_CUDA_SYNC=1" "$logs/test_sync.log" env KAO_CUDA_SYNC=1 "$binary"
    run_test "test_cuda_ops, asynchronous" "$logs/test_async.log" "$binary"
    grep -m1 '^test_cuda_ops: [^0-9]' "$logs/test_async.log" || true # the device it ran on

    # ---- 3. sanitizers, within what is left of the 8 minutes ----------------------------------
    if command -v compute-sanitizer >/dev/null; then
        for tool in memcheck racecheck; do
            elapsed="$(since "$t_start")"
            left="$(awk -v e="$elapsed" 'BEGIN {l = int(420 - e); print (l > 150 ? 150 : l)}')"
            if [ "$left" -lt 30 ]; then
                row "compute-sanitizer $tool" "not run (time)" "0.0"
                continue
            fi
            t=$(date +%s.%N)
            rc=0
            timeout "$left" compute-sanitizer --tool "$tool" --error-exitcode 99 "$binary" \
                >"$logs/$tool.log" 2>&1 || rc=$?
            case "$rc" in
            0) row "compute-sanitizer $tool" "ok" "$(since "$t")" ;;
            124) row "compute-sanitizer $tool" "timeout after $left s (not a failure)" "$(since "$t")" ;;
            99) row "compute-sanitizer $tool" "ERRORS (logs/$tool.log)" "$(since "$t")"
                grep -E '^=========' "$logs/$tool.log" | head -20 || true
                failed=1 ;;
            *) row "compute-sanitizer $tool" "FAILED rc $rc (logs/$tool.log)" "$(since "$t")"
               tail -5 "$logs/$tool.log" || true
               failed=1 ;;
            esac
        done
    else
        row "compute-sanitizer" "not installed" "0.0"
    fi
fi

# ---- 4. the table ------------------------------------------------------------------------------
echo
echo "gpu_check: $gpu_name, nvcc ${nvcc_version:-?}, logs in $logs"
printf '%-34s %-58s %8s\n' "step" "result" "seconds"
for r in "${rows[@]}"; do
    IFS='|' read -r step result secs <<<"$r"
    printf '%-34s %-58s %8s\n' "$step" "$result" "$secs"
done
printf '%-34s %-58s %8s\n' "total" "$([ "$failed" -eq 0 ] && echo PASS || echo FAIL)" "$(since "$t_start")"
exit "$failed"
