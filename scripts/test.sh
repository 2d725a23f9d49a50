#!/usr/bin/env bash
# Sets up everything on a bare Debian machine and runs all of kao's tests:
#   1. system packages and the Python tools environment;
#   2. a Release build with warnings as errors, and its ctest suite;
#   3. an ASan/UBSan build and the same suite under the sanitizers (but the demo, and the Keras
#      comparison whose C reader the fuzz pass covers under the same sanitizers);
#   4. a one-minute libFuzzer pass over every reader of outside input (scripts/fuzz.sh 1);
#   5. where the CUDA toolkit is installed: a compile-and-link check of the CUDA backend, and the
#      backend's GPU tests run on the CPU emulator (tests/cuda_emu) under ASan/UBSan.
# KAO_SKIP_SANITIZE=1 skips steps 3 and 4 (quicker local runs).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
jobs="$(nproc)"

bash scripts/install_deps.sh
KAO_PYTHON="$(bash scripts/setup_python.sh)"
export KAO_PYTHON

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DKAO_WERROR=ON >/dev/null
cmake --build build -j "$jobs"
(cd build && ctest --output-on-failure -j "$jobs")

if [ "${KAO_SKIP_SANITIZE:-0}" != "1" ]; then
    cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DKAO_SANITIZE=ON -DKAO_WERROR=ON >/dev/null
    cmake --build build-asan -j "$jobs"
    (cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j "$jobs" -LE slow)
    bash scripts/fuzz.sh 1
fi

if command -v nvcc >/dev/null 2>&1; then
    cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DKAO_CUDA=ON -DKAO_WERROR=ON >/dev/null
    cmake --build build-cuda -j "$jobs"
    echo "test: CUDA backend compiled and linked (its GPU tests run only on a machine with a GPU)"
    cmake -S . -B build-cuda-emu -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKAO_CUDA_EMULATOR=ON -DKAO_SANITIZE=ON \
        -DKAO_WERROR=ON >/dev/null
    cmake --build build-cuda-emu -j "$jobs" --target cuda_emulator_tests
    (cd build-cuda-emu && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j "$jobs" -L cuda_emulator)
    echo "test: the CUDA backend's host code and kernels ran on the CPU emulator (not a GPU check)"
fi
