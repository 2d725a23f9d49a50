"""New identities (train_loop.h): a run on s1..s8 is continued as a new run on s3..s10 with --init
its best.h5 (and, separately, with --init one of its checkpoints). The new run's starting point (its
step-0 checkpoint) must hold the previous model bit for bit and, for s3..s8, the previous ArcFace
columns bit for bit; s9 and s10 get fresh columns; the report names what was kept, added and
dropped. Also: timm weights with a 1000-class ImageNet head (converted by tools/convert_timm.py) load
with a fresh embedding head, and a head-only warm-up epoch leaves the backbone untouched."""
import os
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_common as t  # noqa: E402

ws = t.Workspace()
try:
    old_root = ws.data("old", [f"s{i}" for i in range(1, 9)])
    new_root = ws.data("new", [f"s{i}" for i in range(3, 11)])
    cfg = ws.config("c.ini", old_root, extra="\n[checkpoint]\nkeep = 100\n")
    old = ws.path("old_run")
    t.kao("train", "--config", cfg, "--out", old, "--set", "train.epochs=2", check_exit=0)

    def start_of(run):
        """The model and W of a run's step-0 checkpoint."""
        d = t.datasets(os.path.join(run, "checkpoints", "ckpt-000000000.h5"))
        return {k[len("model/"):]: v for k, v in d.items() if k.startswith("model/")}, d["arcface/W"], d["arcface/classes"]

    for source in ["best.h5", os.path.join("checkpoints", "ckpt-000000004.h5")]:
        init = os.path.join(old, source)
        new = ws.path("new_run_" + os.path.basename(source))
        code, out = t.kao("train", "--config", cfg, "--data", new_root, "--init", init, "--out", new,
                          "--set", "train.epochs=1", "--set", "train.warmup_epochs=0", check_exit=0)
        t.check("identities: kept 6 from" in out and "added 2 (s10, s9)" in out and "dropped 2 (s1, s2)" in out,
                f"--init {source}: report:\n{out}")
        model, W, classes = start_of(new)
        ref = t.datasets(init)
        prefix = "model/" if "ckpt" in source else ""
        ref_model = {k[len(prefix):]: v for k, v in ref.items() if k.startswith(prefix) and "/" not in k[len(prefix):]}
        t.check(not t.same_arrays(model, ref_model), f"--init {source}: the model was not loaded bit for bit")
        ref_W, ref_classes = ref["arcface/W"], ref["arcface/classes"]
        t.check(classes == sorted(f"s{i}" for i in range(3, 11)), f"classes {classes}")
        for c, name in enumerate(classes):
            if name in ref_classes:
                col = ref_W[:, ref_classes.index(name)]
                t.check(W[:, c].tobytes() == col.tobytes(), f"--init {source}: column of {name} not carried over")
            else:
                t.check(all(W[:, c].tobytes() != ref_W[:, k].tobytes() for k in range(ref_W.shape[1])),
                        f"--init {source}: new identity {name} copied a column")
        # the new run trains on from there
        t.check(os.path.isfile(os.path.join(new, "best.h5")), f"--init {source}: no best.h5")

    # timm weights with a 1000-class ImageNet head (tools/convert_timm.py, timm's own initialisation
    # standing in for the pretrained weights): the backbone is loaded bit for bit, the head is
    # initialised afresh; with a head-only warm-up epoch the backbone's parameters do not move in
    # epoch 1 (BatchNorm statistics do, as in PyTorch's train mode) and do in epoch 2
    timm_w = ws.path("timm_b0.h5")
    import subprocess
    subprocess.run([sys.executable, os.path.join(t.SOURCE, "tools", "convert_timm.py"), "to-h5", "--model",
                    "tf_efficientnetv2_b0", "--channel-multiplier", "0.25", "--depth-multiplier", "0.5", "--random",
                    "--num-classes", "1000", "--out", timm_w], check=True)
    warm = ws.path("warm")
    code, out = t.kao("train", "--config", cfg, "--out", warm, "--init", timm_w, "--set", "train.epochs=2",
                      "--set", "train.freeze_backbone_epochs=1", check_exit=0)
    t.check("classifier [1000, " in out and "fresh" in out, f"ImageNet head not reported:\n{out}")
    ref = t.datasets(timm_w)
    start, _, _ = start_of(warm)
    backbone = [k for k in ref if not k.startswith("classifier.") and not k.endswith(("running_mean", "running_var",
                                                                                       "num_batches_tracked"))]
    t.check(all(start[k].tobytes() == ref[k].tobytes() for k in backbone), "timm backbone not loaded bit for bit")
    t.check(start["classifier.weight"].shape == (32, ref["classifier.weight"].shape[1]), "fresh 32-d head")
    steps_per_epoch = 56 // 16 + 1
    after1 = t.datasets(os.path.join(warm, "checkpoints", f"ckpt-{steps_per_epoch:09d}.h5"))
    after2 = t.datasets(os.path.join(warm, "checkpoints", f"ckpt-{2 * steps_per_epoch:09d}.h5"))
    moved1 = [k for k in backbone if after1["model/" + k].tobytes() != ref[k].tobytes()]
    moved2 = [k for k in backbone if after2["model/" + k].tobytes() != ref[k].tobytes()]
    t.check(not moved1, f"frozen backbone moved in the warm-up epoch: {moved1[:5]}")
    t.check(len(moved2) == len(backbone), f"epoch 2 left {len(backbone) - len(moved2)} backbone tensors unchanged")
    t.check(after1["model/classifier.weight"].tobytes() != start["classifier.weight"].tobytes(),
            "the head did not train in the warm-up epoch")

    # weights with another head size (as timm's ImageNet weights): the head is initialised afresh
    other = ws.path("other_head")
    code, out = t.kao("train", "--config", cfg, "--out", other, "--set", "model.embedding_dim=16",
                      "--set", "train.epochs=1", "--set", "train.warmup_epochs=0", "--init", os.path.join(old, "best.h5"), check_exit=0)
    t.check("classifier" in out and "has 32-d ArcFace centres, this run 16-d" in out,
            f"head mismatch not reported:\n{out}")
    model, W, _ = start_of(other)
    ref = t.datasets(os.path.join(old, "best.h5"))
    t.check(model["conv_stem.weight"].tobytes() == ref["conv_stem.weight"].tobytes(), "backbone not loaded")
    t.check(model["classifier.weight"].shape == (16, ref["classifier.weight"].shape[1]), "head shape")
finally:
    ws.cleanup()
t.finish("test_train_identities")
