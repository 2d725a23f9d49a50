"""kao train checkpoints and resume: an interrupted-and-resumed run ends with the same weights, bit
for bit, as an uninterrupted one, and writes the same metrics, whether it was stopped by
 - SIGTERM (finishes the step, saves, exits 3 with the resume command),
 - SIGKILL in the middle of a checkpoint write (KAO_TEST_KILL_DURING_CHECKPOINT, checkpoint.h): the
   earlier checkpoints stay intact and readable, the temporary file is cleaned up on resume,
 - SIGKILL at an arbitrary moment (and, once, the newest checkpoint then damaged on disk: resume
   skips it, naming it, and continues from the one before);
for both samplers (m-per-class with drop path, shuffled with a short last batch), with augmentation
and two loader workers, and for both optimizers of the ArcFace W (AdamW; SGD with momentum, whose buffer
is checkpointed). Resuming with a changed config or data set is refused with an explanation,
and goes ahead with --allow-changed.
The runs use two compute threads, as the resumed run does: bit-identical results are promised for
the same thread count."""
import os
import random
import shutil
import signal
import sys
import time

import h5py

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_common as t  # noqa: E402

ws = t.Workspace()
EVERY = 3
THREADS = 2


def wait_for(path, proc, timeout=120):
    end = time.time() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None or time.time() > end:
            return False
        time.sleep(0.005)
    return True


def ckpt(run, step):
    return os.path.join(run, "checkpoints", f"ckpt-{step:09d}.h5")


def compare(ref, run, what):
    for name in ["best.h5", "last.h5"]:
        bad = t.same_arrays(t.datasets(os.path.join(ref, name)), t.datasets(os.path.join(run, name)))
        t.check(not bad, f"{what}: {name} differs from the uninterrupted run in {bad[:5]}")
    t.check(t.metric_rows(ref) == t.metric_rows(run), f"{what}: metrics.csv differs from the uninterrupted run")


def resume(run, what, *extra):
    code, out = t.kao("train", "--resume", run, *extra)
    t.check(code == 0, f"{what}: resume exited {code}:\n{out}")
    return out


try:
    root = ws.data("orl10", [f"s{i}" for i in range(1, 11)])
    extra = f"\n[checkpoint]\nevery_steps = {EVERY}\nkeep = 3\n"
    configs = {"m_per_class": ws.config("m.ini", root, threads=THREADS, extra=extra),
               "shuffle": ws.config("s.ini", root, threads=THREADS, extra=extra)}
    # The ArcFace W's own optimizer: AdamW in the m-per-class runs (TINY's), SGD with momentum and decay in
    # the shuffled ones, whose momentum buffer the checkpoints must carry.
    overrides = {"m_per_class": ["--set", "train.sampler=m_per_class", "--set", "train.m_per_class=4"],
                 "shuffle": ["--set", "train.drop_path_rate=0", "--set", "arcface.optimizer=sgd", "--set",
                             "arcface.lr=0.5", "--set", "arcface.momentum=0.9", "--set", "arcface.weight_decay=1e-4"]}
    W_STATE = {"m_per_class": ("adamw", "W.exp_avg_sq"), "shuffle": ("sgd", "W.momentum_buffer")}
    for sampler, cfg in configs.items():
        opts = ["--config", cfg, *overrides[sampler]]
        ref = ws.path(f"ref_{sampler}")
        t0 = time.time()
        t.kao("train", *opts, "--out", ref, check_exit=0)
        print(f"{sampler}: uninterrupted run {time.time() - t0:.1f} s")
        steps = len(t.metrics(ref)[0])

        # SIGTERM after the second step checkpoint
        run = ws.path(f"term_{sampler}")
        p = t.start("train", *opts, "--out", run)
        t.check(wait_for(ckpt(run, 2 * EVERY), p), f"{sampler}: no checkpoint at step {2 * EVERY}")
        p.send_signal(signal.SIGTERM)
        out = p.communicate()[0]
        t.check(p.returncode == 3, f"{sampler}: SIGTERM: exit {p.returncode}, expected 3:\n{out}")
        t.check(f"kao train --resume {run}" in out, f"{sampler}: no resume hint:\n{out[-500:]}")
        # a changed config or data set is refused, naming the change
        code, out = t.kao("train", "--resume", run, "--set", "train.lr=0.004")
        t.check(code == 1 and "train.lr = 0.004 (the run has 0.005)" in out and "--allow-changed" in out,
                f"{sampler}: changed config: exit {code}:\n{out}")
        more = ws.path(f"orl11_{sampler}")
        shutil.copytree(root, more, symlinks=True)
        os.symlink(os.path.join(t.ORL, "s11"), os.path.join(more, "s11"))
        code, out = t.kao("train", "--resume", run, "--data", more)
        t.check(code == 1 and "the data set changed" in out and "s11" in out,
                f"{sampler}: changed data set: exit {code}:\n{out}")
        resumed_at = max(int(n[5:14]) for n in os.listdir(os.path.join(run, "checkpoints")))
        resume(run, "SIGTERM")
        compare(ref, run, f"{sampler}, SIGTERM")
        # TensorBoard: the resumed process's event file starts a session at the checkpoint's step
        tb = sorted(os.listdir(os.path.join(run, "tb")), key=lambda n: int(n.split(".")[-2]))
        starts = [e["step"] for e in t.tb_events(os.path.join(run, "tb", tb[-1])) if e.get("session_start")]
        t.check(len(tb) == 2 and starts == [resumed_at], f"{sampler}: event files {tb}, session starts {starts}, "
                f"resumed at {resumed_at}")
        t.check(len(t.metrics(run)[0]) == steps, f"{sampler}: step rows after the resume")

        # SIGKILL inside the 4th checkpoint save (step 0, 3, 6, then this one)
        run = ws.path(f"killsave_{sampler}")
        code, out = t.kao("train", *opts, "--out", run, extra_env={"KAO_TEST_KILL_DURING_CHECKPOINT": "4"})
        t.check(code == -signal.SIGKILL, f"{sampler}: kill during save: exit {code}")
        names = sorted(os.listdir(os.path.join(run, "checkpoints")))
        temps = [n for n in names if ".tmp." in n]
        t.check(len(temps) == 1, f"{sampler}: expected one half-written temporary file, found {names}")
        for n in names:
            if ".tmp." in n:
                continue
            with h5py.File(os.path.join(run, "checkpoints", n), "r") as f:
                t.check(f.attrs["format"] == "kao-checkpoint" and "optimizer/arcface/steps" in f,
                        f"{sampler}: {n} damaged by the interrupted save")
                kind, state = W_STATE[sampler]
                t.check(f["optimizer/arcface"].attrs["type"] == kind and f"optimizer/arcface/{state}" in f,
                        f"{sampler}: {n} lacks W's {kind} state {state}: {list(f['optimizer/arcface'])}")
        out = resume(run, "kill during save")
        t.check("left by an interrupted save" in out, f"{sampler}: the temporary file was not reported")
        t.check(not [n for n in os.listdir(os.path.join(run, "checkpoints")) if ".tmp." in n],
                f"{sampler}: temporary file left behind")
        compare(ref, run, f"{sampler}, SIGKILL during a checkpoint write")

        # SIGKILL at a random moment after a random checkpoint
        rng = random.Random(sampler)
        run = ws.path(f"kill_{sampler}")
        at = EVERY * rng.randrange(1, max(2, steps // EVERY))
        p = t.start("train", *opts, "--out", run)
        wait_for(ckpt(run, at), p)
        time.sleep(rng.uniform(0, 0.05))
        p.kill()
        p.communicate()
        print(f"{sampler}: killed after checkpoint {at} (exit {p.returncode})")
        if sampler == "shuffle":
            # and then the newest checkpoint damaged on disk (one byte in the middle): its seal
            # fails, resume says so and continues from the one before, with the same result
            cdir = os.path.join(run, "checkpoints")
            newest = sorted(n for n in os.listdir(cdir) if ".tmp." not in n)[-1]
            with open(os.path.join(cdir, newest), "r+b") as f:
                f.seek(os.path.getsize(f.name) // 2)
                byte = f.read(1)
                f.seek(-1, os.SEEK_CUR)
                f.write(bytes([byte[0] ^ 0x20]))
            out = resume(run, "SIGKILL, newest checkpoint damaged")
            t.check(f"warning: skipping {os.path.join(cdir, newest)}: " in out and "damaged: CRC-32" in out,
                    f"{sampler}: the damaged checkpoint {newest} was not reported:\n{out[-800:]}")
        else:
            resume(run, "SIGKILL")
        compare(ref, run, f"{sampler}, SIGKILL")

    # Devices: a run on a device with memory of its own (weights, batches and optimizer state copied
    # over and back, validation and checkpoints from it), through --device cpu-detached, the CPU's
    # ops driven as a GPU is: the same weights as the CPU run; and a run stopped there and resumed
    # on the CPU ends as the uninterrupted one (the CUDA backend itself: tests/test_cuda_network.c).
    opts = ["--config", configs["m_per_class"], *overrides["m_per_class"]]
    ref = ws.path("ref_m_per_class")
    run = ws.path("detached")
    code, out = t.kao("train", *opts, "--out", run, "--device", "cpu-detached")
    t.check(code == 0 and "device: CPU" in out and "memory of its own" in out,
            f"--device cpu-detached: exit {code}:\n{out[-800:]}")
    compare(ref, run, "--device cpu-detached")
    run = ws.path("moved")
    p = t.start("train", *opts, "--out", run, "--device", "cpu-detached")
    t.check(wait_for(ckpt(run, 2 * EVERY), p), f"moved run: no checkpoint at step {2 * EVERY}")
    p.send_signal(signal.SIGTERM)
    p.communicate()
    resume(run, "moved from the device to the CPU", "--device", "cpu")
    compare(ref, run, "a run moved from a device to the CPU")
    # bf16 mixed precision (train.precision = bf16, which the detached backend emulates as a GPU
    # computes it): a run stopped and resumed gives the uninterrupted run's weights bit for bit.
    bf16 = [*opts, "--device", "cpu-detached", "--set", "train.precision=bf16"]
    ref16 = ws.path("bf16")
    code, out = t.kao("train", *bf16, "--out", ref16)
    t.check(code == 0 and "precision: bf16" in out, f"bf16: exit {code}:\n{out[-800:]}")
    print("last epoch's training loss: fp32 {}, bf16 {}".format(*(t.metrics(r)[1][-1]["loss"] for r in (ref, ref16))))
    run = ws.path("bf16_stopped")
    p = t.start("train", *bf16, "--out", run)
    t.check(wait_for(ckpt(run, 2 * EVERY), p), f"bf16 run: no checkpoint at step {2 * EVERY}")
    p.send_signal(signal.SIGTERM)
    p.communicate()
    resume(run, "bf16 stopped")
    compare(ref16, run, "a bf16 run stopped and resumed")
    code, out = t.kao("train", *opts, "--out", ws.path("nowhere"), "--set", "train.precision=bf16")
    t.check(code == 1 and "--device cpu-detached emulates it" in out, f"bf16 on the CPU: exit {code}:\n{out}")

    code, out = t.kao("train", *opts, "--out", ws.path("nowhere"), "--device", "tpu")
    t.check(code == 1 and "unknown device 'tpu'" in out, f"--device tpu: exit {code}:\n{out}")

    # --allow-changed continues a run whose config changed, and records the new config
    run = ws.path("term_shuffle")
    code, out = t.kao("train", "--resume", run, "--set", "train.epochs=5", "--allow-changed")
    t.check(code == 0 and "resuming with a changed config: train.epochs = 5 (the run has 4)" in out,
            f"--allow-changed: exit {code}:\n{out}")
    t.check(len(t.metrics(run)[1]) == 5, "--allow-changed: the fifth epoch was not trained")
    with open(os.path.join(run, "config.ini")) as f:
        t.check("epochs = 5" in f.read(), "config.ini does not record the changed config")
finally:
    ws.cleanup()
t.finish("test_train_resume")
