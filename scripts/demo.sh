#!/usr/bin/env bash
# kao's main job on its built-in default, on a fresh Debian machine:
#   1. installs the system packages and builds kao (Release);
#   2. trains a small tf_efficientnetv2_b0 (width 0.25, depth 0.5, 64×64 input) with ArcFace on 30
#      of the 40 built-in ORL identities (data/orl/s1 … s30; configs/demo.ini), with a stratified
#      train/val split, early stopping and checkpoints — from random initialisation, since a fresh
#      machine has no ImageNet weights (with them: --init b0_imagenet.h5, see README);
#   3. exports the best model to ONNX with a signature;
#   4. verifies on the 10 identities held out from training (s31 … s40): every pair, the summary
#      (accuracy at cosine 0.4, ROC AUC, EER, TAR@FAR) and the ROC/histogram plots.
# Everything lands in runs/demo/ (KAO_DEMO_DIR to change): run/ (the training run folder: config,
# split, metrics.csv, checkpoints, best.h5), model.onnx, pairs.tsv, roc.png, hist.png.
# KAO_BUILD_DIR: the build folder to use (default build/).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
demo="${KAO_DEMO_DIR:-$here/runs/demo}"
start=$(date +%s)

bash scripts/install_deps.sh
build="${KAO_BUILD_DIR:-$here/build}"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j "$(nproc)" --target kao >/dev/null
kao="$build/kao"

rm -rf "$demo"
mkdir -p "$demo/data/train" "$demo/data/heldout"
for i in $(seq 1 40); do
    side=train
    [ "$i" -gt 30 ] && side=heldout
    ln -s "$here/data/orl/s$i" "$demo/data/$side/s$i"
done

echo "== training on 30 identities (configs/demo.ini)"
# --follow-symlinks: the identity folders are links into data/orl, out of the demo's data roots
"$kao" train --config configs/demo.ini --data "$demo/data/train" --follow-symlinks --out "$demo/run"

echo "== exporting ONNX"
"$kao" export --weights "$demo/run/best.h5" --size 64 \
    --signature "kao demo: tf_efficientnetv2_b0 (0.25/0.5) ArcFace on ORL faces (Olivetti Research Laboratory)" \
    --out "$demo/model.onnx"
"$kao" export --check "$demo/model.onnx"

echo "== verifying on the 10 held-out identities"
"$kao" verify --weights "$demo/run/best.h5" --size 64 --layout folders --no-pairs --follow-symlinks \
    --pairs-out "$demo/pairs.tsv" --roc "$demo/roc.png" --hist "$demo/hist.png" "$demo/data/heldout"

echo "== done in $(( $(date +%s) - start )) s; results in $demo (model.onnx, pairs.tsv, roc.png, hist.png, run/)"
