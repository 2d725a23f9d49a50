#!/usr/bin/env bash
# Installs kao's system dependencies on a bare Debian machine (needs root or sudo).
# Build: compiler, CMake, libhdf5, libpng, libjpeg-turbo (its TurboJPEG API), zlib (the HDF5 seals'
# CRC-32), OpenBLAS, OpenMP (gcc's libgomp), libinih (configs), protobuf-c (ONNX export), cJSON
# (safetensors headers). clang with libFuzzer and its OpenMP for the fuzz harnesses (scripts/fuzz.sh). Python 3 with
# venv for the tools and the comparison tests.
set -euo pipefail

packages=(build-essential cmake pkg-config libhdf5-dev hdf5-tools libpng-dev libturbojpeg0-dev zlib1g-dev
          libopenblas-dev libinih-dev libprotobuf-c-dev protobuf-c-compiler libcjson-dev clang libclang-rt-dev libomp-dev python3 python3-venv python3-pip)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "install_deps: system packages present"
    exit 0
fi
echo "install_deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
