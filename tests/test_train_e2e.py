"""kao train end to end on 10 ORL identities (48x48, a tiny network, 2 threads):
 - the training loss falls and validation verification beats chance by a wide margin (balanced
   pairs: chance accuracy 0.5, AUC 0.5);
 - the run folder holds what train_loop.h lists, metrics.csv has one row per step and per epoch,
   a checkpoint carries the layout of checkpoint.h;
 - best.h5 loads in kao embed, and records what kao train knows (trained_info.h): kao embed and
   kao export default to the input size it was trained at, and the export's metadata names its
   identities and split;
 - early stopping triggers with a small patience, and best.h5 is the best epoch's model.
"""
import os
import sys

import h5py
import numpy as np
import onnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_common as t  # noqa: E402

ws = t.Workspace()
try:
    root = ws.data("orl10", [f"s{i}" for i in range(1, 11)])
    cfg = ws.config("e2e.ini", root, threads=2, extra="""
[checkpoint]
keep = 2
""".replace("diff_pairs_per_same = 2", ""))
    run = ws.path("run")
    code, out = t.kao("train", "--config", cfg, "--out", run, "--set", "train.epochs=24", "--set",
                      "train.drop_path_rate=0", "--set", "verify.diff_pairs_per_same=0", "--log-every", "5", check_exit=0)
    print(out.splitlines()[-1])

    # the run folder
    for name in ["config.ini", "split.tsv", "classes.txt", "metrics.csv", "train.log", "best.h5", "last.h5"]:
        t.check(os.path.isfile(os.path.join(run, name)), f"run folder lacks {name}")
    ckpts = sorted(os.listdir(os.path.join(run, "checkpoints")))
    t.check(ckpts == ["ckpt-000000115.h5", "ckpt-000000120.h5"], f"checkpoints kept: {ckpts}")
    with open(os.path.join(run, "classes.txt")) as f:
        t.check(f.read().split() == sorted(f"s{i}" for i in range(1, 11)), "classes.txt")

    # metrics.csv: 24 epochs of 70 training images in 5 batches (the last holds 6)
    steps, epochs = t.metrics(run)
    t.check(len(steps) == 120 and len(epochs) == 24, f"{len(steps)} step rows, {len(epochs)} epoch rows")
    t.check([int(r["step"]) for r in steps] == list(range(1, 121)), "step numbers")
    t.check([int(r["images"]) for r in steps[:5]] == [16, 16, 16, 16, 6], "batch sizes")
    first, last = epochs[0], epochs[-1]
    loss0, loss1 = float(first["loss"]), float(last["loss"])
    t.check(loss1 < 0.5 * loss0, f"training loss fell only from {loss0} to {loss1}")
    auc, eer, best_acc = float(last["auc"]), float(last["eer"]), float(last["best_balanced_accuracy"])
    print(f"epoch 1: loss {loss0:.3f} AUC {float(first['auc']):.3f}; epoch 24: loss {loss1:.3f} AUC {auc:.3f} "
          f"EER {eer:.3f} best balanced accuracy {best_acc:.3f}, val accuracy {float(last['val_accuracy']):.3f}")
    t.check(auc >= 0.8, f"validation AUC {auc} (chance 0.5)")
    t.check(eer <= 0.25, f"validation EER {eer} (chance 0.5)")
    t.check(float(last["val_accuracy"]) >= 0.6, f"validation class accuracy {last['val_accuracy']} (chance 0.1)")
    waits = [float(r["wait_seconds"]) / float(r["seconds"]) for r in epochs]
    print(f"images/s per epoch: {[round(float(r['images_per_second'])) for r in epochs]}; "
          f"data wait fraction: median {np.median(waits):.3f}")

    # the TensorBoard event file: one per process, the same values as metrics.csv
    tb = os.listdir(os.path.join(run, "tb"))
    t.check(len(tb) == 1 and tb[0].startswith("events.out.tfevents."), f"tb/: {tb}")
    events = t.tb_events(os.path.join(run, "tb", tb[0]))
    t.check(events[0].get("file_version") == "brain.Event:2", f"first event {events[0]}")
    tb_loss = [(e["step"], e["value"]) for e in events if e.get("tag") == "train/loss"]
    t.check([s for s, _ in tb_loss] == list(range(1, 121)), "train/loss steps")
    t.check(all(abs(v - float(r["loss"])) <= 1e-5 * abs(v) for (_, v), r in zip(tb_loss, steps)), "train/loss values")
    tb_auc = [(e["step"], e["value"]) for e in events if e.get("tag") == "val/auc"]
    t.check([s for s, _ in tb_auc] == [int(r["step"]) for r in epochs] and
            all(abs(v - float(r["auc"])) <= 1e-5 for (_, v), r in zip(tb_auc, epochs)),
            "val/auc events differ from metrics.csv")

    # a checkpoint, read with h5py alone
    with h5py.File(os.path.join(run, "checkpoints", ckpts[-1]), "r") as f:
        a = f.attrs
        t.check(a["format"] == "kao-checkpoint" and a["step"] == 120 and a["epoch"] == 24 and a["batch_in_epoch"] == 0,
                f"checkpoint attributes {dict(a)}")
        for name in ["config", "model/conv_stem.weight", "model/bn1.num_batches_tracked", "arcface/W",
                     "arcface/classes", "optimizer/model/conv_stem.weight.exp_avg",
                     "optimizer/model/conv_stem.weight.exp_avg_sq", "optimizer/model/steps",
                     "optimizer/arcface/W.exp_avg", "optimizer/arcface/steps", "rng/drop_path"]:
            t.check(name in f, f"checkpoint lacks {name}")
        t.check(f["arcface/W"].shape == (32, 10), f"W shape {f['arcface/W'].shape}")
        t.check(b"lr = 0.005" in f["config"][0], "config text")
    # last.h5 is the final model: the same tensors as the final checkpoint's model group
    last_w, ck = t.datasets(os.path.join(run, "last.h5")), t.datasets(os.path.join(run, "checkpoints", ckpts[-1]))
    model = {k[len("model/"):]: v for k, v in ck.items() if k.startswith("model/")}
    model.update({k: v for k, v in ck.items() if k.startswith("arcface/")})
    t.check(not t.same_arrays(last_w, model), "last.h5 differs from the final checkpoint's model")

    # best.h5 in kao embed, on the validation images: same-person pairs must be told from the
    # others far better than chance (balanced accuracy at the best threshold; chance 0.5)
    val = [line.split("\t")[2].strip() for line in open(os.path.join(run, "split.tsv")) if line.startswith("val\t")]
    images = [os.path.join(root, p) for p in val]
    emb = ws.path("emb.h5")
    t.kao("embed", "--weights", os.path.join(run, "best.h5"), "--quiet", *images, "--out", emb, check_exit=0)
    with h5py.File(emb, "r") as f:
        e = f["embeddings"][()]
        t.check(f.attrs["input_height"] == 48 and f.attrs["input_width"] == 48,
                f"kao embed without --size: {f.attrs['input_height']}x{f.attrs['input_width']}, trained at 48x48")
    t.check(e.shape == (30, 32), f"embeddings {e.shape}")
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    ids = np.array([p.split("/")[0] for p in val])
    iu = np.triu_indices(len(val), 1)
    scores, same = (e @ e.T)[iu], (ids[:, None] == ids[None, :])[iu]
    balanced = max(((scores >= s) & same).sum() / same.sum() / 2 + ((scores < s) & ~same).sum() / (~same).sum() / 2
                   for s in np.unique(scores))
    print(f"kao embed with best.h5: balanced verification accuracy {balanced:.3f} over {same.sum()} same and "
          f"{(~same).sum()} different pairs")
    t.check(balanced >= 0.75, f"balanced verification accuracy {balanced} (chance 0.5)")

    # what best.h5 records, and kao export's defaults from it
    split_hash = open(os.path.join(run, "split.tsv")).readline().split("hash=")[1].strip()
    with h5py.File(os.path.join(run, "best.h5"), "r") as f:
        recorded = (f.attrs["input_height"], f.attrs["input_width"], f.attrs["split_hash"], len(f["arcface/classes"]))
    t.check(recorded == (48, 48, split_hash, 10), f"best.h5 records {recorded}, expected 48x48, {split_hash}, 10")
    code, out = t.kao("export", "--weights", os.path.join(run, "best.h5"), "--out", ws.path("m.onnx"), check_exit=0)
    meta = {m.key: m.value for m in onnx.load(ws.path("m.onnx")).metadata_props}
    dims = [d.dim_value for d in onnx.load(ws.path("m.onnx")).graph.input[0].type.tensor_type.shape.dim[2:]]
    t.check(dims == [48, 48] and meta["kao.num_identities"] == "10" and meta["kao.split_hash"] == split_hash,
            f"kao export defaults: input {dims}, identities {meta['kao.num_identities']}, split {meta['kao.split_hash']}")

    # early stopping: nothing counts as an improvement after epoch 1 (min_delta is huge), patience 2
    es = ws.path("es")
    code, out = t.kao("train", "--config", cfg, "--out", es, "--set", "train.epochs=10", "--set",
                      "early_stop.patience=2", "--set", "early_stop.min_delta=1000", "--set", "checkpoint.keep=10",
                      check_exit=0)
    t.check("early stopping: val_loss has not improved" in out, "no early-stopping message")
    steps, epochs = t.metrics(es)
    t.check(len(epochs) == 3, f"early stopping after {len(epochs)} epochs, expected 3")
    t.check([r["improved"] for r in epochs] == ["1", "0", "0"], "improved flags")
    # best.h5 is epoch 1's model (the checkpoint after its 5 steps), not the last one
    best = t.datasets(os.path.join(es, "best.h5"))
    ck1 = t.datasets(os.path.join(es, "checkpoints", "ckpt-000000005.h5"))
    epoch1 = {k[len("model/"):]: v for k, v in ck1.items() if k.startswith("model/")}
    epoch1.update({k: v for k, v in ck1.items() if k.startswith("arcface/")})
    t.check(not t.same_arrays(best, epoch1), "best.h5 is not epoch 1's model")
    t.check(len(t.same_arrays(best, t.datasets(os.path.join(es, "last.h5")))) > 10, "best.h5 equals last.h5")
    with open(os.path.join(es, "train.log")) as f:
        t.check("early stopping" in f.read(), "train.log lacks the early-stopping line")
finally:
    ws.cleanup()
t.finish("test_train_e2e")
