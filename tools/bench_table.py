#!/usr/bin/env python3
"""The GPU benchmark's summary: JSON lines from `kao bench --device cuda` and
`tools/bench_torch.py --all-gpu` (scripts/gpu_check.sh collects both in one file) as one table per
workload: images/s and peak GPU memory of kao (fp32, tf32, bf16, and bf16 with KAO_CUDA_AUTOTUNE=1)
and of each PyTorch setting, and kao's speed as a multiple of PyTorch's fp32 eager and of its best
eager setting (AMP bf16 as a rule); then the data loaders' images/s (`kao bench --mode load`,
tools/bench_loader_torch.py).
PyTorch's "fp32" lets cuDNN use TF32 (its default; the tf32_conv field says so): kao tf32 is the
like-for-like comparison in fp32 data, kao bf16 against PyTorch's AMP bf16 in mixed precision.
PyTorch runs with cudnn.benchmark (it times cuDNN's algorithms and keeps the fastest, whether
deterministic or not); kao takes the first deterministic algorithm of cuDNN's heuristics, or with
KAO_CUDA_AUTOTUNE=1 the fastest deterministic one by cuDNN's timing.

With --ncu FILE (the CSV of `ncu --csv --metrics gpu__time_duration.sum` over one kao training
step) it also prints where the GPU time goes: the kernels with the most total time.

Usage: python tools/bench_table.py bench.jsonl [--ncu ncu.csv]
"""
import csv
import json
import sys

UNIT_NS = {"nsecond": 1.0, "ns": 1.0, "usecond": 1e3, "us": 1e3, "msecond": 1e6, "ms": 1e6, "second": 1e9, "s": 1e9}


def kernel_times(path):
    """Total ns and launches per kernel name, from ncu's CSV (one row per launch and metric)."""
    totals = {}
    with open(path, newline="") as f:
        lines = [line for line in f if line.startswith('"')]  # ncu prints its own notes before the table
    for row in csv.DictReader(lines):
        if row.get("Metric Name") != "gpu__time_duration.sum":
            continue
        ns = float(row["Metric Value"].replace(",", "")) * UNIT_NS.get(row.get("Metric Unit", "nsecond"), 1.0)
        name = row["Kernel Name"].split("(")[0][:70]
        t, n = totals.get(name, (0.0, 0))
        totals[name] = (t + ns, n + 1)
    return totals


def print_kernels(path, top=15):
    totals = kernel_times(path)
    whole = sum(t for t, _ in totals.values())
    if not whole:
        print(f"\n{path}: no kernel times")
        return
    print(f"\nGPU time by kernel, one training step ({whole / 1e6:.2f} ms in {sum(n for _, n in totals.values())} launches)")
    for name, (t, n) in sorted(totals.items(), key=lambda kv: -kv[1][0])[:top]:
        print(f"{t / 1e6:>9.3f} ms {100 * t / whole:>5.1f}% {n:>5}x  {name}")


def setting(line):
    if line["engine"].startswith("kao"):
        tuned = " autotuned" if "autotuned" in line.get("device", "") else ""  # KAO_CUDA_AUTOTUNE=1
        return f"kao {line.get('precision', 'fp32')}{tuned}"
    name = f"torch {line['precision']}"
    return name + (" compiled" if line.get("compile") else " eager")


def main():
    rows, loads = {}, []
    for text in open(sys.argv[1]):
        text = text.strip()
        if not text.startswith("{"):
            continue
        line = json.loads(text)
        if line["mode"] == "load":
            loads.append(line)
            continue
        rows.setdefault((line["mode"], line["batch"]), {})[setting(line)] = line
    kaos = ["kao fp32", "kao tf32", "kao bf16", "kao bf16 autotuned"]
    torches = ["torch fp32 eager", "torch bf16 eager", "torch bf16 compiled"]
    order = kaos + torches
    print(f"\n{'workload':<14} {'setting':<20} {'images/s':>10} {'ms/batch':>9} {'peak GPU MiB':>13}  note")
    for (mode, batch), settings in sorted(rows.items()):
        for name in order:
            line = settings.get(name)
            if not line:
                continue
            if "error" in line:
                print(f"{mode} {batch:<8} {name:<20} {'-':>10} {'-':>9} {'-':>13}  {line['error'][:60]}")
                continue
            peak = line.get("peak_device_mib", line.get("peak_gpu_mib", float("nan")))
            print(f"{mode} {batch:<8} {name:<20} {line['images_per_s']:>10.1f} {line['ms_per_batch']:>9.2f} "
                  f"{peak:>13.0f}")
        eager = [settings[n]["images_per_s"] for n in torches[:2] if "images_per_s" in settings.get(n, {})]
        fp32 = settings.get("torch fp32 eager", {}).get("images_per_s")
        for name in kaos:
            kao = settings.get(name, {}).get("images_per_s")
            if kao and eager:
                print(f"{'':<14} {name} / torch fp32 eager {kao / fp32 if fp32 else float('nan'):.2f}x, "
                      f"/ best torch eager {kao / max(eager):.2f}x")
    if loads:
        print(f"\n{'data loader':<24} {'workers':>7} {'images/s':>10}")
        for line in loads:
            print(f"{line['engine'][:24]:<24} {line['workers']:>7} {line['images_per_s']:>10.1f}")


if __name__ == "__main__":
    main()
    if "--ncu" in sys.argv:
        print_kernels(sys.argv[sys.argv.index("--ncu") + 1])
