"""`kao bench` end to end: both modes print one JSON line with the device and precision they ran
with; the device stand-in (--device cpu-detached, the CPU's ops driven as a GPU is) runs both modes,
in fp32 and in its emulation of bf16;
--mode load times the data loader on ORL's images; an unknown device or precision, a GPU mode on the
CPU, --device cuda without a GPU and a load from a missing data folder each give one "kao: error:"
line and a non-zero exit; a load without --data is a usage error (exit 2). Prints "N passed, N failed"; exit status 1 on any failure.
"""
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kaotest import ORL, check, finish, kao  # noqa: E402

tiny = ["--width-mult", "0.25", "--depth-mult", "0.5", "--size", "32", "--batch", "2", "--steps", "1",
        "--warmup", "0", "--classes", "5", "--embedding", "8"]
for device, precision in [("cpu", "fp32"), ("cpu-detached", "fp32"), ("cpu-detached", "bf16")]:
    for mode in ["infer", "train"]:
        p = kao("bench", "--mode", mode, "--device", device, "--precision", precision, *tiny)
        line = p.stdout.strip().splitlines()[0] if p.returncode == 0 and p.stdout.strip() else "{}"
        r = json.loads(line)
        check(p.returncode == 0 and r.get("mode") == mode and r.get("precision") == precision and
              r.get("device", "").startswith("CPU") and r.get("images_per_s", 0) > 0,
              f"kao bench --mode {mode} --device {device} --precision {precision}: exit {p.returncode}, "
              f"{p.stdout!r} {p.stderr!r}")
        check(("memory of its own" in r.get("device", "")) == (device == "cpu-detached"),
              f"--device {device} is named in the output: {r.get('device')!r}")

# --mode load: the loader over ORL's 400 PNGs (3 timed batches of 8 after 1 warm-up), on the CPU and
# into the stand-in device's host memory.
for device in ["cpu", "cpu-detached"]:
    p = kao("bench", "--mode", "load", "--data", ORL, "--workers", "2", "--size", "64", "--batch", "8",
            "--steps", "3", "--warmup", "1", "--device", device)
    r = json.loads(p.stdout.strip().splitlines()[0]) if p.returncode == 0 and p.stdout.strip() else {}
    check(r.get("mode") == "load" and r.get("images") == 24 and r.get("failed_images") == 0 and
          r.get("images_per_s", 0) > 0 and r.get("worker_ms_per_image", 0) > 0,
          f"kao bench --mode load --device {device}: exit {p.returncode}, {p.stdout!r} {p.stderr!r}")


def fails(what, args, needle):
    p = kao("bench", *args, *tiny)
    lines = [line for line in p.stderr.splitlines() if line]
    check(p.returncode != 0 and len(lines) == 1 and lines[0].startswith("kao: error:") and needle in lines[0],
          f"{what}: exit {p.returncode}, expected one error line naming '{needle}': {p.stderr!r}")


fails("unknown device", ["--device", "tpu"], "unknown device 'tpu'")
fails("load from a missing folder", ["--mode", "load", "--data", "/nonexistent/faces"], "/nonexistent/faces")
fails("unknown precision", ["--precision", "fp16"], "unknown precision 'fp16'")
fails("tf32 on the CPU", ["--precision", "tf32"], "tf32 is a GPU mode")
fails("bf16 on the CPU", ["--precision", "bf16"], "cpu-detached emulates it")
p = kao("bench", "--mode", "load")
check(p.returncode == 2 and "--mode load needs --data" in p.stderr, f"load without --data: {p.returncode} {p.stderr!r}")
if shutil.which("nvidia-smi") is None:  # no GPU here: a CUDA request must say why it cannot be met
    fails("a GPU where there is none", ["--device", "cuda"], "device cuda")
finish("test_bench_cli")
