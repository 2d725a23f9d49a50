"""kao train when the disk fills: a resumed run whose next checkpoint cannot be written (no file may
grow past 2 MB, which a 3 MB checkpoint needs; the 1 MB weights files still fit) stops with exit
status 1 and one error line naming the checkpoint, leaves no temporary file, and leaves every
earlier checkpoint byte for byte as it was. Resumed again with room, it ends with the same weights
and metrics, bit for bit, as a run that was never interrupted: nothing was lost.

Before kao stopped installing HDF5's exit handler (src/h5io.c), the failed write turned into a
segfault inside exit(), after the error message."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_common as t  # noqa: E402

ws = t.Workspace()
EVERY = 3
LIMIT = 2 << 20


def files_in(folder):
    return {n: open(os.path.join(folder, n), "rb").read() for n in sorted(os.listdir(folder))}


def temp_files(run):
    return [os.path.join(d, n) for d, _, names in os.walk(run) for n in names if ".tmp." in n]


try:
    root = ws.data("orl8", [f"s{i}" for i in range(1, 9)])
    cfg = ws.config("c.ini", root, threads=2, extra=f"\n[checkpoint]\nevery_steps = {EVERY}\nkeep = 3\n")
    ref = ws.path("ref")
    t.kao("train", "--config", cfg, "--out", ref, check_exit=0)

    run = ws.path("run")
    p = t.start("train", "--config", cfg, "--out", run)
    first = os.path.join(run, "checkpoints", f"ckpt-{EVERY:09d}.h5")
    end = time.time() + 120
    while not os.path.exists(first) and p.poll() is None and time.time() < end:
        time.sleep(0.005)
    p.send_signal(signal.SIGTERM)
    out = p.communicate()[0]
    t.check(p.returncode == 3, f"SIGTERM: exit {p.returncode}, expected 3:\n{out[-500:]}")
    checkpoints = os.path.join(run, "checkpoints")
    before = files_in(checkpoints)
    t.check(all(len(b) > LIMIT for b in before.values()),
            f"the checkpoints must outgrow the limit: {[len(b) for b in before.values()]}")

    code, out = t.kao("train", "--resume", run, max_file_bytes=LIMIT)
    errors = [line for line in out.splitlines() if line.startswith("kao: error:")]
    t.check(code == 1, f"disk full: exit {code}, expected 1:\n{out[-800:]}")
    t.check(len(errors) == 1 and "checkpoints/ckpt-" in errors[0] and "(disk full?)" in errors[0],
            f"disk full: expected one error naming the checkpoint: {errors}")
    t.check(not temp_files(run), f"temporary files left behind: {temp_files(run)}")
    after = files_in(checkpoints)
    t.check(all(after.get(n) == b for n, b in before.items()),
            f"earlier checkpoints changed or gone: before {sorted(before)}, after {sorted(after)}")
    print(f"disk full: {errors[0] if errors else out[-200:]}")

    t.kao("train", "--resume", run, check_exit=0)
    for name in ["best.h5", "last.h5"]:
        bad = t.same_arrays(t.datasets(os.path.join(ref, name)), t.datasets(os.path.join(run, name)))
        t.check(not bad, f"{name} differs from the uninterrupted run in {bad[:5]}")
    t.check(t.metric_rows(ref) == t.metric_rows(run), "metrics.csv differs from the uninterrupted run")
finally:
    ws.cleanup()
t.finish("test_train_disk_full")
