"""kao train stops a diverging run and never saves from it (src/train_guard.c), on 6 ORL identities:
 - AdamW at lr 10, and SGD with momentum 0.999 at lr 10: exit 1 at the first step with one message
   naming the step, the epoch and the settings to lower; no best.h5 or last.h5, and every HDF5 file in
   the run folder holds only finite numbers;
 - a healthy run finishes without an alarm; resumed with lr 10 (--allow-changed) it stops at its
   first new step and leaves its best.h5, last.h5 and checkpoints as they were;
 - --init with a NaN (in a weight, or in the ArcFace centres): refused before the run folder is made,
   naming the file and the tensor;
 - --init with a finite but huge weight: the loss (3e38) or the BN statistics (1e30) stop being
   finite, and the run stops naming the step (and the tensor), having saved nothing but its start;
 - --resume from a checkpoint whose optimizer state is not finite: refused, naming both.
"""
import glob
import hashlib
import os
import re
import shutil
import sys

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools"))
import kao_seal  # noqa: E402
import train_common as t  # noqa: E402


def nonfinite(run):
    """(file, dataset) of every float dataset under run that holds a value that is not finite."""
    bad = []
    for path in glob.glob(os.path.join(run, "**", "*.h5"), recursive=True):
        for name, value in t.datasets(path).items():
            if not isinstance(value, list) and np.asarray(value).dtype.kind == "f" and not np.isfinite(value).all():
                bad.append((os.path.relpath(path, run), name))
    return bad


def errors(out):
    return [line for line in out.splitlines() if "error:" in line.lower()]  # sanitizer reports too


def one_error(out, what):
    lines = errors(out)
    t.check(len(lines) == 1, f"{what}: {len(lines)} error lines:\n{out}")
    return lines[0] if lines else ""


def fingerprint(run):
    """Name -> digest of every file kao keeps in a run folder (best.h5, last.h5, checkpoints)."""
    files = [os.path.join(run, n) for n in ("best.h5", "last.h5")] + glob.glob(os.path.join(run, "checkpoints", "*"))
    return {os.path.relpath(p, run): hashlib.sha256(open(p, "rb").read()).hexdigest() for p in files if os.path.exists(p)}


def edited(src, dst, dataset, value):
    """The kao file src (copied to dst) with one element of dataset set to value, sealed again."""
    if dst != src:
        shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        a = f[dataset][()]
        a.flat[3] = value
        f[dataset][...] = a
    kao_seal.seal(dst)
    return dst


def diverging(ws, cfg, name, sets, lowered):
    """A fresh run with sets: stops at its first step naming it and what to lower, saves nothing."""
    run = ws.path(name)
    code, out = t.kao("train", "--config", cfg, "--out", run, *[a for s in sets for a in ("--set", s)])
    t.check(code == 1, f"{name}: exit {code}:\n{out}")
    line = one_error(out, name)
    t.check(re.search(r"step 1 \(epoch 1\): the weights are exploding", line) is not None, f"{name}: {line}")
    for setting in lowered:
        t.check(setting in line, f"{name}: the message does not name {setting}: {line}")
    for kept in ("best.h5", "last.h5"):
        t.check(not os.path.exists(os.path.join(run, kept)), f"{name}: {kept} was written")
    t.check(os.listdir(os.path.join(run, "checkpoints")) == ["ckpt-000000000.h5"],
            f"{name}: checkpoints {os.listdir(os.path.join(run, 'checkpoints'))}")
    t.check(nonfinite(run) == [], f"{name}: not finite: {nonfinite(run)}")
    print(f"{name}: {line}")


ws = t.Workspace()
try:
    root = ws.data("orl6", [f"s{i}" for i in range(1, 7)])
    cfg = ws.config("tiny.ini", root, threads=2)

    diverging(ws, cfg, "adamw_lr10", ["train.lr=10", "train.head_lr=10"],
              ["train.lr (now 10)", "train.head_lr (now 10)"])
    diverging(ws, cfg, "sgd_momentum", ["train.optimizer=sgd", "train.momentum=0.999", "train.lr=10", "train.head_lr=10"],
              ["train.lr (now 10)", "train.momentum (now 0.999)", "train.grad_clip"])

    # a healthy run: no alarm
    healthy = ws.path("healthy")
    code, out = t.kao("train", "--config", cfg, "--out", healthy, "--set", "train.epochs=2")
    t.check(code == 0 and "diverging" not in out, f"healthy run: exit {code}:\n{out}")
    t.check(nonfinite(healthy) == [], f"healthy run: not finite: {nonfinite(healthy)}")
    best = os.path.join(healthy, "best.h5")

    # --init with a NaN: nothing is written, not even the run folder
    for tensor in ["blocks.1.0.conv_exp.weight", "arcface/W"]:
        init = edited(best, ws.path("nan.h5"), tensor, np.nan)
        run = ws.path("init_nan")
        code, out = t.kao("train", "--config", cfg, "--out", run, "--init", init)
        line = one_error(out, f"--init with NaN in {tensor}")
        t.check(code == 1 and f"{init}: {tensor} holds nan" in line, f"--init with NaN in {tensor}: exit {code}: {line}")
        t.check(not os.path.exists(run), f"--init with NaN in {tensor}: {run} was made")

    # --init with huge weights: the loss, or the BN statistics, overflow; only the start is saved
    for value, tensor, expected in [(3e38, "conv_stem.weight", r"step 1 \(epoch 1\): the loss is not finite \(nan\)"),
                                    (1e30, "conv_stem.weight", r"step 3 \(epoch 1\): bn1\.running_var holds inf")]:
        init = edited(best, ws.path("huge.h5"), tensor, value)
        run = ws.path(f"init_{value:g}")
        code, out = t.kao("train", "--config", cfg, "--out", run, "--init", init)
        line = one_error(out, f"--init with {value:g}")
        t.check(code == 1 and re.search(expected, line) and f"check the start weights ({init})" in line,
                f"--init with {value:g} in {tensor}: exit {code}: {line}")
        t.check(os.listdir(os.path.join(run, "checkpoints")) == ["ckpt-000000000.h5"] and nonfinite(run) == [],
                f"--init with {value:g}: checkpoints {os.listdir(os.path.join(run, 'checkpoints'))}, "
                f"not finite {nonfinite(run)}")
        print(f"--init with {value:g}: {line}")

    # the healthy run resumed at lr 10: stops at once, its files stay as they were
    before = fingerprint(healthy)
    code, out = t.kao("train", "--resume", healthy, "--allow-changed", "--set", "train.epochs=4", "--set",
                      "train.lr=10", "--set", "train.head_lr=10")
    line = one_error(out, "resumed at lr 10")
    t.check(code == 1 and re.search(r"step 7 \(epoch 3\): the weights are exploding", line),
            f"resumed at lr 10: exit {code}: {line}")
    t.check(fingerprint(healthy) == before and "best.h5" in before and "last.h5" in before,
            f"resumed at lr 10: files changed: {before} -> {fingerprint(healthy)}")

    # a checkpoint that is not finite is not resumed from
    newest = os.path.join(healthy, "checkpoints", "ckpt-000000006.h5")
    edited(newest, newest, "optimizer/model/conv_stem.weight.exp_avg_sq", np.inf)
    code, out = t.kao("train", "--resume", healthy, "--allow-changed", "--set", "train.epochs=4")
    line = one_error(out, "resume from a checkpoint that is not finite")
    t.check(code == 1 and f"{newest}: optimizer/model/conv_stem.weight.exp_avg_sq holds inf" in line,
            f"resume from a checkpoint that is not finite: exit {code}: {line}")
finally:
    ws.cleanup()
t.finish("test_train_divergence")
