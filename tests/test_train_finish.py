"""kao train at the end of its schedule:
 - early stopping's patience running out at the last scheduled epoch says nothing about early
   stopping (the run ends there anyway);
 - Ctrl-C (SIGINT) after the last epoch's training, here during its checkpoint save
   (KAO_TEST_SIGINT_DURING_CHECKPOINT, checkpoint.h), leaves a complete run: exit 0 and the done
   line, not exit 3; the same signal one epoch earlier still interrupts (exit 3, resumable);
 - --resume of a finished run says it is already complete, trains nothing, exits 0 and reports no
   speed (no step ran, so there is none to report)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_common as t  # noqa: E402

ws = t.Workspace()
EPOCHS = 2


def train(*args, sigint_at_save=None):
    env = {"KAO_TEST_SIGINT_DURING_CHECKPOINT": str(sigint_at_save)} if sigint_at_save else None
    return t.kao("train", *args, extra_env=env)


def resume_finished(run, what):
    code, out = train("--resume", run)
    t.check(code == 0 and "this run is already complete: 2 epochs" in out and "done: 2 epochs" in out,
            f"{what}: resuming the finished run: exit {code}:\n{out[-800:]}")
    t.check("images/s" not in out and "training:" not in out, f"{what}: resuming trained or timed:\n{out[-800:]}")
    t.check(len(t.metrics(run)[1]) == EPOCHS, f"{what}: resuming added epoch rows")


try:
    root = ws.data("orl5", [f"s{i}" for i in range(1, 6)])
    cfg = ws.config("c.ini", root, threads=2)
    opts = ["--config", cfg, "--set", f"train.epochs={EPOCHS}", "--set", "checkpoint.every_steps=0"]

    # patience 1 with a huge min_delta: epoch 2 does not improve, and patience is used up at the last epoch
    run = ws.path("patience")
    code, out = train(*opts, "--out", run, "--set", "early_stop.patience=1", "--set", "early_stop.min_delta=1000")
    t.check(code == 0, f"patience at the last epoch: exit {code}:\n{out[-800:]}")
    t.check([r["improved"] for r in t.metrics(run)[1]] == ["1", "0"], "epoch 2 should not improve")
    t.check("early stopping" not in out and "has not improved" not in out,
            f"early stopping reported after the last epoch:\n{out[-800:]}")
    resume_finished(run, "patience used up at the last epoch")

    # checkpoint saves: 1 the start, 2 epoch 1, 3 epoch 2 (the last)
    run = ws.path("sigint_last")
    code, out = train(*opts, "--out", run, sigint_at_save=EPOCHS + 1)
    t.check(code == 0 and "done: 2 epochs" in out and "interrupted" not in out,
            f"SIGINT after the last epoch: exit {code}, expected 0 and the done line:\n{out[-800:]}")
    t.check(len(t.metrics(run)[1]) == EPOCHS, "SIGINT after the last epoch: epoch rows")
    resume_finished(run, "SIGINT after the last epoch")

    run = ws.path("sigint_first")
    code, out = train(*opts, "--out", run, sigint_at_save=2)
    t.check(code == 3 and f"kao train --resume {run}" in out,
            f"SIGINT after epoch 1 of 2: exit {code}, expected 3 with the resume command:\n{out[-800:]}")
    t.check(len(t.metrics(run)[1]) == 1, "SIGINT after epoch 1 of 2: epoch rows")
    code, out = train("--resume", run)
    t.check(code == 0 and "done: 2 epochs" in out and "images/s" in out,
            f"resuming after epoch 1: exit {code}, expected the second epoch trained and timed:\n{out[-800:]}")
    resume_finished(run, "resumed to the end")
finally:
    ws.cleanup()
t.finish("test_train_finish")
