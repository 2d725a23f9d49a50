#!/usr/bin/env bash
# The one-shot check of the CUDA backend on a machine with an NVIDIA GPU (an H100; no network).
#
#   scripts/gpu_check.sh            on the GPU machine, from the repository root:
#       1. builds kao, test_cuda_ops, test_backend_ops and test_cuda_network with -DKAO_CUDA=ON
#          -DCMAKE_CUDA_ARCHITECTURES=90 (CMake, all cores), or, when kao's CPU build dependencies
#          (HDF5, libpng, zlib, OpenBLAS, inih, protobuf-c) are not installed there, compiles cuda/*.cu
#          with that machine's nvcc (a compile check) and runs the programs from the bundle that
#          --prepare made (see below; KAO_GPU_CHECK_FORCE_BUNDLE=1 takes this path even where kao
#          builds, to test it). Warnings are shown, not errors there (CI builds with -Werror; a
#          newer compiler must not cost the GPU session);
#       2. runs test_cuda_ops with KAO_CUDA_SYNC=1 (every op waits for its kernels, so a fault is
#          reported by the op that caused it), test_backend_ops likewise (the bf16 map ops against
#          the CPU's bf16 emulation), test_cuda_network (the network, training steps,
#          checkpoints and embeddings against the CPU), test_cuda_ops asynchronously and with the
#          convolutions' NCHW fallback forced (KAO_CUDA_CONV_NCHW=1) and with cuDNN's timing
#          choosing their algorithms (KAO_CUDA_AUTOTUNE=1), and the
#          demo's training run for 8 epochs with --device cuda and --device cpu (losses side by side);
#       3. benchmarks, on the same GPU one after the other: `kao bench --device cuda` (training at
#          224×224 batch 128 and 256, inference at batch 256; fp32, tf32 and bf16, and bf16 training with
#          KAO_CUDA_AUTOTUNE=1 (cuDNN's timing picks the convolution algorithms); the data loader with
#          all but two cores, against PyTorch's DataLoader), a per-op profile of a
#          training step (KAO_CUDA_SYNC=1), and tools/bench_torch.py --all-gpu (timm
#          tf_efficientnetv2_b0 + 512-d head + ArcFace over 1,000 classes + AdamW, channels-last,
#          fp32 and AMP bf16 eager, then torch.compile while time is left); pytorch-metric-learning
#          comes from the bundle's wheel where the machine lacks it;
#          Nsight Compute's per-kernel times of one kao training step, when ncu is there; kao embed
#          end to end on 4,000 PNGs (decoding ahead on worker threads while the GPU runs);
#       4. compute-sanitizer memcheck of test_cuda_ops in the time that is left (reported, not
#          failed, when it runs out of time);
#       5. prints a table last: each step's result, then the benchmark (images/s, kao/PyTorch,
#          peak GPU memory). Exit status 0 only when the build and the tests passed and the
#          sanitizer found no error. Designed to finish in under 8 minutes.
#   scripts/gpu_check.sh --prepare  on a development machine (no GPU needed): builds kao and the
#       three test programs for sm_90 with -march=x86-64-v3 instead of -march=native and packs them,
#       with the shared libraries a CUDA image may lack (HDF5, libpng, OpenBLAS, inih, protobuf-c,
#       gfortran, gomp, cudart), and the pytorch-metric-learning wheel, into .gpu-check/ (ignored
#       by git through .git/info/exclude). Carry .gpu-check to the GPU machine. cuBLAS and cuDNN
#       are not packed (hundreds of MB): the GPU machine's own are used (toolkit or pip wheels).
#
# Logs go to $KAO_GPU_CHECK_LOGS (default build-gpu-check/logs). With KAO_GPU_CHECK_OUT (the device
# tool's $OUT, which returns at most 8 files) the end also writes there: table.txt, bench.jsonl and
# logs.tgz (every log) — also when a step fails or the script is stopped by a signal. Each step's
# row is printed as it finishes too, so a run cut short still shows how far it got.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"

build="build-gpu-check"
bundle_dir=.gpu-check
bundle="$bundle_dir/bundle.tar.xz"
programs=(kao tests/test_cuda_ops tests/test_backend_ops tests/test_cuda_network)
t_start=$(date +%s.%N)
budget=470 # seconds for everything (the device call gets ~8 minutes)

since() { echo "$(date +%s.%N) $1" | awk '{printf "%.1f", $1 - $2}'; }
left() { awk -v e="$(since "$t_start")" -v b="$budget" 'BEGIN {print int(b - e)}'; }
note() { echo "gpu_check: $*"; }

# A fingerprint of everything that goes into the programs, to tell whether a bundle is current.
source_stamp() {
    cat CMakeLists.txt cuda/* include/kao/*.h src/*.c src/*.h src/cli/*.c src/cli/*.h tests/test_cuda_*.c \
        tests/backend_parity.h tests/check.h 2>/dev/null | sha256sum | cut -c1-16
}

# ---- --prepare: the bundle, built here --------------------------------------------------------
if [ "${1:-}" = "--prepare" ]; then
    prep="build-gpu-prepare"
    # x86-64-v3 (AVX2, FMA) instead of this machine's -march=native: the GPU machine's CPU differs.
    cmake -S . -B "$prep" -DCMAKE_BUILD_TYPE=Release -DKAO_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
        -DKAO_NATIVE=OFF -DCMAKE_C_FLAGS=-march=x86-64-v3 >/dev/null
    cmake --build "$prep" -j "$(nproc)" --target kao test_cuda_ops test_backend_ops test_cuda_network
    stage="$(mktemp -d)"
    mkdir -p "$stage/lib" "$stage/tests" "$bundle_dir"
    for p in "${programs[@]}"; do cp "$prep/$p" "$stage/$p"; done
    # Every shared library they load except the C/C++ runtime (the machine's own is newer), the
    # driver, cuBLAS and cuDNN. A library that uses GLIBC_PRIVATE symbols is part of glibc itself
    # (libresolv, which HDF5's curl pulls in through Kerberos): it works only with the glibc it
    # was built with, so the machine's own is used; bundled, it could stop every program loading.
    for p in "${programs[@]}"; do ldd "$prep/$p"; done | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | sort -u |
        while read -r name path; do
            case "$name" in
            linux-vdso* | ld-linux* | libc.so* | libm.so* | libpthread.so* | libdl.so* | librt.so* | \
                libstdc++.so* | libgcc_s.so* | libcuda.so* | libcublas* | libcudnn*) ;;
            *) objdump -T "$path" | grep -c GLIBC_PRIVATE >/dev/null || cp -L "$path" "$stage/lib/$name" ;;
            esac
        done
    # The newest glibc any of them needs: the GPU machine's must be at least that.
    glibc_needed="$(objdump -T "$stage"/lib/* "${programs[@]/#/$stage/}" | grep -o 'GLIBC_2\.[0-9]*' | sort -V | tail -1)"
    source_stamp >"$stage/source_stamp"
    tar -C "$stage" -cJf "$bundle" .
    rm -rf "$stage"
    # The GPU machine's image has torch and timm but not pytorch-metric-learning (pure Python).
    mkdir -p "$bundle_dir/wheels"
    python3 -m pip download -q --no-deps --only-binary=:all: -d "$bundle_dir/wheels" pytorch-metric-learning==2.8.1 ||
        note "could not fetch the pytorch-metric-learning wheel: PyTorch training will not be benchmarked"
    mkdir -p .git/info
    grep -qx "/$bundle_dir/" .git/info/exclude 2>/dev/null || echo "/$bundle_dir/" >>.git/info/exclude
    note "wrote $bundle ($(du -h "$bundle" | cut -f1)): ${programs[*]}, $(tar -tJf "$bundle" | grep -c 'lib/') libraries" \
        "(needing $glibc_needed or newer);" \
        "wheels: $(ls "$bundle_dir/wheels" 2>/dev/null | tr '\n' ' '); carry $bundle_dir"
    exit 0
fi

# ---- on the GPU machine -------------------------------------------------------------------------
logs="${KAO_GPU_CHECK_LOGS:-$build/logs}"
mkdir -p "$build" "$logs"
gpu_name="?"
nvcc_version=""
rows=()   # "step|result|seconds"
failed=0
row() {
    rows+=("$1|$2|$3")
    printf 'gpu_check: %-34s %-58s %8s\n' "$1" "$2" "$3"
}

# The tables, printed last and (KAO_GPU_CHECK_OUT) saved with the logs: on any exit.
tables() {
    echo
    [ -f "$logs/profile.txt" ] && sed -n '/^op/,$p' "$logs/profile.txt" | head -20
    echo
    echo "gpu_check: $gpu_name, nvcc ${nvcc_version:-?}, logs in $logs"
    printf '%-34s %-58s %8s\n' "step" "result" "seconds"
    for r in "${rows[@]}"; do
        IFS='|' read -r step result secs <<<"$r"
        printf '%-34s %-58s %8s\n' "$step" "$result" "$secs"
    done
    printf '%-34s %-58s %8s\n' "total" "$([ "$failed" -eq 0 ] && echo PASS || echo FAIL)" "$(since "$t_start")"
    local ncu=()
    [ -s "$logs/ncu.csv" ] && ncu=(--ncu "$logs/ncu.csv")
    if [ -s "$logs/bench.jsonl" ]; then python3 tools/bench_table.py "$logs/bench.jsonl" "${ncu[@]}" || true; fi
}
finish() {
    local out="${KAO_GPU_CHECK_OUT:-}"
    if [ -n "$out" ]; then
        mkdir -p "$out"
        tables | tee "$out/table.txt"
        [ -f "$logs/bench.jsonl" ] && cp "$logs/bench.jsonl" "$out/"
        tar -C "$logs" -czf "$out/logs.tgz" . 2>/dev/null || true
    else
        tables
    fi
}
trap finish EXIT
trap 'failed=1; exit 1' INT TERM

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
# the GPU time still yields test results. bin: the folder holding kao and tests/.
bin=""
t=$(date +%s.%N)
# Warnings are not errors here: this machine's compilers may be newer than CI's (which builds with
# -Werror), and a new warning in unrelated C code must not cost the GPU session.
warnings() { grep -c 'warning' "$1" || true; }
tried_cmake=0
if [ "${KAO_GPU_CHECK_FORCE_BUNDLE:-0}" != "1" ] &&
    pkg-config --exists hdf5 libpng zlib openblas inih libprotobuf-c 2>/dev/null && command -v protoc-c >/dev/null; then
    tried_cmake=1
    cmake_args=(-DCMAKE_BUILD_TYPE=Release -DKAO_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90)
    [ -n "$cudnn_lib_dir" ] && cmake_args+=("-DCUDNN_LIBRARY=$cudnn_lib_dir/libcudnn.so.9")
    [ -n "$cudnn_include" ] && cmake_args+=("-DCUDNN_INCLUDE_DIR=$cudnn_include")
    if cmake -S . -B "$build" "${cmake_args[@]}" >"$logs/build.log" 2>&1 &&
        cmake --build "$build" -j "$(nproc)" --target kao test_cuda_ops test_backend_ops test_cuda_network >>"$logs/build.log" 2>&1; then
        bin="$build"
        row "build (cmake, sm_90)" "ok, $(warnings "$logs/build.log") warning lines" "$(since "$t")"
    else
        row "build (cmake, sm_90)" "FAILED (logs/build.log)" "$(since "$t")"
        tail -30 "$logs/build.log"
        failed=1
    fi
else
    note "kao's CPU build dependencies are not all installed here (or KAO_GPU_CHECK_FORCE_BUNDLE=1)"
fi
if [ -z "$bin" ] && [ "$tried_cmake" -eq 0 ]; then
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
if [ -z "$bin" ]; then
    t=$(date +%s.%N)
    if [ -f "$bundle" ]; then
        rm -rf "$build/bundle" && mkdir -p "$build/bundle"
        tar -C "$build/bundle" -xJf "$bundle"
        bin="$build/bundle"
        export LD_LIBRARY_PATH="$here/$build/bundle/lib:$LD_LIBRARY_PATH"
        state="ok, built from these sources"
        [ "$(cat "$build/bundle/source_stamp")" = "$(source_stamp)" ] ||
            state="ok, but STALE: built from other sources (rerun --prepare)"
        # Whether the programs load here at all (a library missing or too new for this glibc).
        for p in "${programs[@]}"; do ldd "$bin/$p"; done >"$logs/bundle_ldd.log" 2>&1 || true
        if ! "$bin/kao" --version >"$logs/bundle_load.log" 2>&1; then
            state="FAILED to load: $(head -c 120 "$logs/bundle_load.log" | tr '\n' ' ')"
            grep 'not found' "$logs/bundle_ldd.log" | sort -u | head -5 || true
            failed=1
        fi
        row "prepared bundle" "$state" "$(since "$t")"
    else
        row "bundle" "MISSING: run --prepare where kao builds, carry $bundle_dir" "0.0"
        failed=1
    fi
fi

# ---- 2. the tests ----------------------------------------------------------------------------
# A test run: its summary line ("N passed, N failed") or why it ended.
run_test() {
    local label="$1" log="$2" name="$3"
    shift 3
    local t rc=0
    t=$(date +%s.%N)
    timeout 240 "$@" >"$log" 2>&1 || rc=$?
    local summary
    summary="$(grep -E "^$name: [0-9]+ passed" "$log" | tail -1 | sed "s/^$name: //" || true)"
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

if [ -n "$bin" ]; then
    ops="$bin/tests/test_cuda_ops"
    # KAO_CUDA_VERBOSE=1: each convolution's cuDNN choice (and what was passed over) into the logs
    run_test "test_cuda_ops, KAO_CUDA_SYNC=1" "$logs/test_ops_sync.log" test_cuda_ops \
        env KAO_CUDA_SYNC=1 KAO_CUDA_VERBOSE=1 "$ops"
    # the bf16 instances of the map ops against the CPU's bf16 emulation, synced as above
    run_test "test_backend_ops (bf16), KAO_CUDA_SYNC=1" "$logs/test_backend_ops.log" test_backend_ops \
        env KAO_CUDA_SYNC=1 KAO_CUDA_VERBOSE=1 "$bin/tests/test_backend_ops" --gpu
    run_test "test_cuda_network" "$logs/test_network.log" test_cuda_network env KAO_SOURCE_DIR="$here" \
        "$bin/tests/test_cuda_network"
    run_test "test_cuda_ops, asynchronous" "$logs/test_ops_async.log" test_cuda_ops "$ops"
    # cuDNN's NCHW fallback (conv.cu), which runs only where NHWC has no deterministic algorithm
    run_test "test_cuda_ops, NCHW fallback forced" "$logs/test_ops_nchw.log" test_cuda_ops \
        env KAO_CUDA_CONV_NCHW=1 "$ops"
    # the convolutions with the algorithms cuDNN's timing picks (KAO_CUDA_AUTOTUNE=1)
    run_test "test_cuda_ops, autotuned" "$logs/test_ops_autotune.log" test_cuda_ops \
        env KAO_CUDA_AUTOTUNE=1 KAO_CUDA_VERBOSE=1 "$ops"
    grep -m1 '^test_cuda_ops: [^0-9]' "$logs/test_ops_async.log" || true # the device it ran on

    # ---- kao train end to end: the demo's run (configs/demo.ini: tiny b0, 64×64, ORL s1–s30) for 8
    # epochs on the GPU and on the CPU: loader, pinned batches, validation and checkpoints on the
    # device; the two must learn alike (their numbers differ by rounding only).
    data="$build/orl30"
    rm -rf "$data" && mkdir -p "$data"
    for i in $(seq 1 30); do ln -s "$here/data/orl/s$i" "$data/s$i"; done
    train=(train --config configs/demo.ini --data "$data" --follow-symlinks --set train.epochs=8 --set early_stop.patience=0
        --set train.threads=0 --set train.workers=auto)
    epoch_line() { grep -m1 '^epoch 8/8:' "$1/train.log" 2>/dev/null || true; }
    summary() { sed -n 's/.*train loss \([0-9.]*\).*| \([0-9.]*\) img\/s.*val loss \([0-9.]*\).*/train \1, val \3, \2 img\/s/p'; }
    for run in "cuda fp32" "cuda bf16" "cpu fp32"; do
        read -r device precision <<<"$run"
        name="${device}_$precision"
        t=$(date +%s.%N)
        rm -rf "$build/run_$name"
        rc=0
        timeout 120 "$bin/kao" "${train[@]}" --device "$device" --set train.precision="$precision" \
            --out "$build/run_$name" >"$logs/train_$name.log" 2>&1 || rc=$?
        if [ "$rc" -eq 0 ]; then
            row "kao train --device $device, $precision (demo)" "$(epoch_line "$build/run_$name" | summary)" \
                "$(since "$t")"
        else
            row "kao train --device $device, $precision (demo)" "FAILED rc $rc (logs/train_$name.log)" "$(since "$t")"
            tail -5 "$logs/train_$name.log"
            failed=1
        fi
    done

    # ---- 3. benchmark: kao, then PyTorch, on this GPU ---------------------------------------------
    bench="$logs/bench.jsonl"
    : >"$bench"
    t=$(date +%s.%N)
    # the last two: convolution algorithms chosen by cuDNN's timing instead of its heuristics
    configs=("train 128 fp32" "train 256 fp32" "infer 256 fp32" "train 128 tf32" "train 256 tf32" "infer 256 tf32"
        "train 128 bf16" "train 256 bf16" "infer 256 bf16" "train 128 bf16 autotune" "train 256 bf16 autotune")
    for config in "${configs[@]}"; do
        read -r mode batch precision autotune <<<"$config"
        KAO_CUDA_AUTOTUNE=$([ -n "$autotune" ] && echo 1 || echo 0) timeout 120 "$bin/kao" bench --device cuda \
            --mode "$mode" --batch "$batch" --precision "$precision" --steps 10 --warmup 3 >>"$bench" \
            2>>"$logs/bench.err" || note "kao bench $config failed (logs/bench.err)"
    done
    # The training data loader on this machine's cores, into page-locked memory: can it feed the GPU?
    workers=$(($(nproc) > 3 ? $(nproc) - 2 : 1))
    timeout 60 "$bin/kao" bench --mode load --device cuda --data "$here/data/orl" --workers "$workers" --batch 128 \
        --steps 20 --warmup 3 >>"$bench" 2>>"$logs/bench.err" || note "kao bench --mode load failed (logs/bench.err)"
    done_configs=$(grep '"engine": "kao' "$bench" | grep -vc '"mode": "load"' || true)
    row "kao bench (fp32, tf32, bf16, tuned, load)" "$done_configs of ${#configs[@]} configurations" "$(since "$t")"
    t=$(date +%s.%N)
    KAO_CUDA_SYNC=1 KAO_CUDA_VERBOSE=1 timeout 120 "$bin/kao" bench --device cuda --mode train --batch 128 --steps 3 \
        --warmup 1 --profile >"$logs/profile.txt" 2>&1 || true
    row "kao profile (train 128, synced)" "logs/profile.txt" "$(since "$t")"
    # kao embed end to end: the ORL faces ten times over (4,000 PNGs) at 224x224 in bf16, decoded
    # ahead on worker threads while the GPU runs; with the demo's tiny network the GPU waits for the
    # decoding, so this is what the host side delivers (compare the loader row)
    t=$(date +%s.%N)
    rc=0
    orl10=()
    for _ in $(seq 10); do orl10+=("$here/data/orl"); done
    timeout 120 "$bin/kao" embed --weights "$build/run_cuda_bf16/best.h5" --device cuda --precision bf16 --size 224 \
        --batch 256 "${orl10[@]}" --out "$build/embed.npy" >"$logs/embed.log" 2>&1 || rc=$?
    rate="$(tr '\r' '\n' <"$logs/embed.log" | sed -n 's/^embedded \([0-9]*\)\/.*(\([0-9.]*\) images\/s)/\1 images, \2 img\/s/p' | tail -1)"
    row "kao embed --device cuda (4,000, bf16)" "$([ "$rc" -eq 0 ] && echo "$rate" || echo "rc $rc (logs/embed.log)")" \
        "$(since "$t")"
    # Per-kernel GPU times of one training step (Nsight Compute replays each kernel: slow, bounded).
    # --clock-control none: the card's clocks stay as found (ncu's default locks them to base).
    if command -v ncu >/dev/null && [ "$(left)" -gt 240 ]; then
        t=$(date +%s.%N)
        rc=0
        timeout 90 ncu --clock-control none --csv --metrics gpu__time_duration.sum "$bin/kao" bench --device cuda --mode train \
            --batch 128 --steps 1 --warmup 0 >"$logs/ncu.csv" 2>"$logs/ncu.err" || rc=$?
        row "ncu kernel times (train 128)" "$([ "$rc" -eq 0 ] && echo "ok, logs/ncu.csv" || echo "rc $rc (logs/ncu.err)")" \
            "$(since "$t")"
    fi

    t=$(date +%s.%N)
    if ! python3 -c 'import pytorch_metric_learning' 2>/dev/null && ls "$bundle_dir"/wheels/*.whl >/dev/null 2>&1; then
        PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --upgrade --no-index --no-deps --no-compile --target /tmp/kao-site "$bundle_dir"/wheels/*.whl &&
            export PYTHONPATH="/tmp/kao-site${PYTHONPATH:+:$PYTHONPATH}"
    fi
    torch_time=$(($(left) - 60)) # leave a minute for the sanitizer and the table
    [ "$torch_time" -gt 300 ] && torch_time=300
    if [ "$torch_time" -gt 30 ]; then
        rc=0
        PYTHONUNBUFFERED=1 timeout "$torch_time" python3 tools/bench_torch.py --all-gpu --steps 10 --warmup 3 \
            >>"$bench" 2>"$logs/bench_torch.err" || rc=$?
        state="$(grep -c '"engine": "pytorch' "$bench" || true) configurations"
        timeout 60 python3 tools/bench_loader_torch.py --data "$here/data/orl" --workers "$workers" --batch 128 \
            --steps 20 --warmup 3 >>"$bench" 2>>"$logs/bench_torch.err" || true
        [ "$rc" -eq 124 ] && state="$state (stopped after $torch_time s: torch.compile is slow to start)"
        row "PyTorch bench (--all-gpu)" "$state" "$(since "$t")"
    else
        row "PyTorch bench" "not run (time)" "0.0"
    fi

    # ---- 4. sanitizer, within what is left -----------------------------------------------------
    if command -v compute-sanitizer >/dev/null; then
        sanitize_time=$(($(left) - 10))
        [ "$sanitize_time" -gt 150 ] && sanitize_time=150
        if [ "$sanitize_time" -lt 30 ]; then
            row "compute-sanitizer memcheck" "not run (time)" "0.0"
        else
            t=$(date +%s.%N)
            rc=0
            timeout "$sanitize_time" compute-sanitizer --tool memcheck --error-exitcode 99 "$ops" \
                >"$logs/memcheck.log" 2>&1 || rc=$?
            case "$rc" in
            0) row "compute-sanitizer memcheck" "ok" "$(since "$t")" ;;
            124) row "compute-sanitizer memcheck" "timeout after $sanitize_time s (not a failure)" "$(since "$t")" ;;
            99) row "compute-sanitizer memcheck" "ERRORS (logs/memcheck.log)" "$(since "$t")"
                grep -E '^=========' "$logs/memcheck.log" | head -20 || true
                failed=1 ;;
            *) row "compute-sanitizer memcheck" "FAILED rc $rc (logs/memcheck.log)" "$(since "$t")"
               tail -5 "$logs/memcheck.log" || true
               failed=1 ;;
            esac
        fi
    else
        row "compute-sanitizer" "not installed" "0.0"
    fi
fi

# ---- 5. the tables: printed by finish (trap EXIT) -----------------------------------------------
exit "$failed"
