#!/usr/bin/env bash
# Side-by-side benchmark on this machine, in one run: kao against PyTorch/timm (and onnxruntime
# on timm's own ONNX export for inference). Prints each engine's JSON line, then a table with
# images/s, ms per batch, peak RSS and the kao/PyTorch ratio.
#   bash scripts/bench.sh [infer|train|load|all]      (default: all)
# Workloads (issues 2 and 3): tf_efficientnetv2_b0, 512-d embedding head, 2 threads;
#   infer: 224×224 at batch 32 and batch 1;
#   train: one full step (ArcFace over 1,000 classes, AdamW) at 224×224 batch 32 and 112×112 batch 64;
#   load: the training data loader (decode + kao train's default augmentation to 224×224, batch 64)
#         on data/orl with 2 workers, against PyTorch's DataLoader with the torchvision equivalent.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
what="${1:-all}"
threads="${KAO_BENCH_THREADS:-2}"
steps="${KAO_BENCH_STEPS:-5}"
python="$(bash scripts/setup_python.sh)"
if [ ! -x build/kao ]; then
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build build -j "$(nproc)" --target kao >/dev/null
fi
results="$(mktemp)"
trap 'rm -f "$results"' EXIT

run() { # label, then the command
    local label="$1"; shift
    local line
    line="$("$@" | head -n 1)"
    echo "$line"
    echo "$label $line" >>"$results"
}

if [ "$what" = infer ] || [ "$what" = all ]; then
    for batch in 32 1; do
        s=$steps; [ "$batch" = 1 ] && s=$((steps * 4))
        run "infer-b$batch" build/kao bench --mode infer --size 224 --batch "$batch" --threads "$threads" --steps "$s" --warmup 2
        run "infer-b$batch" "$python" tools/bench_torch.py --mode infer --size 224 --batch "$batch" --threads "$threads" --steps "$s"
        run "infer-b$batch" "$python" tools/bench_torch.py --mode infer --size 224 --batch "$batch" --threads "$threads" --steps "$s" --onnxruntime
    done
fi
if [ "$what" = train ] || [ "$what" = all ]; then
    for cfg in "224 32" "112 64"; do
        set -- $cfg
        run "train-$1-b$2" build/kao bench --mode train --size "$1" --batch "$2" --threads "$threads" --steps 3 --warmup 1
        run "train-$1-b$2" "$python" tools/bench_torch.py --mode train --size "$1" --batch "$2" --threads "$threads" --steps 3 --warmup 1
    done
fi
if [ "$what" = load ] || [ "$what" = all ]; then
    run "load-b64" build/kao bench --mode load --data data/orl --workers "$threads" --batch 64 --steps 10 --warmup 2
    run "load-b64" "$python" tools/bench_loader_torch.py --data data/orl --workers "$threads" --batch 64 --steps 10 \
        --warmup 2
fi

"$python" - "$results" <<'PY'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    label, payload = line.split(" ", 1)
    rows.setdefault(label, []).append(json.loads(payload))
print(f"\n{'workload':<14} {'engine':<22} {'images/s':>9} {'ms/batch':>9} {'peak MiB':>9} {'kao/this':>9}")
for label, entries in rows.items():
    kao = next(e for e in entries if e["engine"].startswith("kao"))
    for e in entries:
        ratio = kao["images_per_s"] / e["images_per_s"]
        ms = e.get("ms_per_batch", 1e3 * e.get("batch", 0) / e["images_per_s"])
        print(f"{label:<14} {e['engine'][:22]:<22} {e['images_per_s']:>9.1f} {ms:>9.1f} "
              f"{e['peak_rss_mib']:>9.0f} {ratio:>8.2f}x")
PY
