"""kao train on a GPU (--device cuda), through the whole program: the loader's pinned batches
copied while the GPU computes, validation and checkpoints from device memory.
 - A run on the device finishes, names the device, and its losses are finite; in bf16 too.
 - Its weights do not depend on the run: a second run, killed while writing a checkpoint and
   resumed on the device, ends with the first run's weights bit for bit (deterministic
   algorithms only, one seed).
 - A run killed on the device resumes on the CPU and finishes (the checkpoints are the same files).
Skips (exit 77, ctest's skip code, never a pass) where kao has no CUDA device: built without CUDA
or without a GPU. The CUDA emulator's build (tests/cuda_emu) runs it on the CPU."""
import math
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_common as t  # noqa: E402

EVERY = 3


def compare(ref, run, what):
    for name in ["best.h5", "last.h5"]:
        bad = t.same_arrays(t.datasets(os.path.join(ref, name)), t.datasets(os.path.join(run, name)))
        t.check(not bad, f"{what}: {name} differs from the uninterrupted device run in {bad[:5]}")


ws = t.Workspace()
try:
    root = ws.data("orl6", [f"s{i}" for i in range(1, 7)])
    cfg = ws.config("device.ini", root, extra=f"\n[checkpoint]\nevery_steps = {EVERY}\nkeep = 3\n")
    opts = ["--config", cfg, "--set", "train.epochs=2", "--device", "cuda"]
    ref = ws.path("device")
    code, out = t.kao("train", *opts, "--out", ref, timeout=900)
    if code == 1 and ("device cuda: this kao was built without CUDA" in out or "device cuda: no usable GPU" in out):
        print(f"SKIPPED: no CUDA device: {out.strip().splitlines()[-1]}")
        ws.cleanup()
        sys.exit(77)
    t.check(code == 0 and "device: " in out, f"--device cuda: exit {code}:\n{out[-1500:]}")
    print(next(line for line in out.splitlines() if "device: " in line).strip())
    losses = [row["loss"] for row in t.metrics(ref)[0]]
    t.check(losses and all(math.isfinite(float(v)) for v in losses), f"device run: step losses {losses}")

    code, out = t.kao("train", *opts, "--out", ws.path("bf16"), "--set", "train.precision=bf16", timeout=900)
    t.check(code == 0 and "precision: bf16" in out, f"bf16 on the device: exit {code}:\n{out[-800:]}")
    if code == 0:
        losses = [float(row["loss"]) for row in t.metrics(ws.path("bf16"))[0]]
        t.check(all(math.isfinite(v) for v in losses), f"bf16 on the device: step losses {losses}")

    # Killed (SIGKILL) while writing its second checkpoint — at the same step however fast the
    # device is — then resumed from the first.
    kill = {"KAO_TEST_KILL_DURING_CHECKPOINT": "2"}
    run = ws.path("killed")
    code, out = t.kao("train", *opts, "--out", run, extra_env=kill, timeout=900)
    t.check(code == -signal.SIGKILL, f"the run to be killed: exit {code}:\n{out[-800:]}")
    code, out = t.kao("train", "--resume", run, timeout=900)
    t.check(code == 0, f"resume on the device: exit {code}:\n{out[-800:]}")
    compare(ref, run, "a device run killed and resumed")

    run = ws.path("to_cpu")
    code, out = t.kao("train", *opts, "--out", run, extra_env=kill, timeout=900)
    t.check(code == -signal.SIGKILL, f"the run to be moved: exit {code}:\n{out[-800:]}")
    code, out = t.kao("train", "--resume", run, "--device", "cpu", timeout=900)
    t.check(code == 0 and "device: CPU" in out, f"resume on the CPU: exit {code}:\n{out[-800:]}")
finally:
    ws.cleanup()
t.finish("test_train_device")
