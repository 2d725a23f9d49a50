"""The input normalisation and input size come with the weights (include/kao/trained_info.h).

timm's pretrained configs normalise tf_efficientnetv2_b0-b2 with the ImageNet mean/std and b3, _s,
_m, _l with mean = std = 0.5; a network fed the other one gives poor embeddings without a word.
1. A tiny tf_efficientnetv2_s (random weights and BN statistics) written by
   tools/convert_timm.py with timm's pretrained_cfg for tf_efficientnetv2_s: kao embed equals
   timm + torchvision with Normalize(0.5, 0.5) within 1e-4 of the embedding's scale, unasked; the
   same weights without a record give the ImageNet-normalised result (and a note about the size).
2. kao export: without --size it exports for the recorded size with kao.mean / kao.std from the
   weights; a --size other than the recorded one is refused (naming the file and --force) and
   written with --force.
3. kao train --init: the run takes the start weights' normalisation into its config.ini, uses it
   (its best.h5 embeds as timm does with 0.5), records it in best.h5 and the checkpoints, and
   model.input_mean / input_std override it; bad values are refused.
Prints "N passed, N failed"; exit status 1 on any failure.
"""
import os
import shutil
import sys
import tempfile

import h5py
import numpy as np
import onnx
import timm
import torch
from PIL import Image
from torchvision import transforms

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kaotest import ORL, check, compare, embed, finish, kao  # noqa: E402
from convert_timm import randomise_bn, write_h5  # noqa: E402

TMP = tempfile.mkdtemp(prefix="kao_test_norm_")
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
SIZE = 48


def timm_embed(model, paths, norm):
    tf = transforms.Compose([transforms.Resize((SIZE, SIZE)), transforms.ToTensor(), transforms.Normalize(*norm)])
    x = torch.stack([tf(Image.open(p).convert("RGB")) for p in paths])
    with torch.no_grad():
        return model(x).numpy()


images = [os.path.join(ORL, "s1", f) for f in sorted(os.listdir(os.path.join(ORL, "s1")))[:3]]
torch.manual_seed(3)
model = randomise_bn(timm.create_model("tf_efficientnetv2_s", channel_multiplier=0.25, depth_multiplier=0.25,
                                       num_classes=16), 4).eval()
cfg = timm.models.get_pretrained_cfg("tf_efficientnetv2_s").to_dict()
recorded = os.path.join(TMP, "s_recorded.h5")
bare = os.path.join(TMP, "s_bare.h5")
write_h5(recorded, model, "tf_efficientnetv2_s", 0.25, 0.25, cfg)
write_h5(bare, model, "tf_efficientnetv2_s", 0.25, 0.25)
with h5py.File(recorded, "r") as f:
    check(list(f.attrs["input_mean"]) == [0.5] * 3 and int(f.attrs["input_height"]) == 384,
          f"convert_timm records timm's pretrained_cfg: {dict(f.attrs)}")

# ---- 1. kao embed -----------------------------------------------------------------------------
want_half, want_imagenet = timm_embed(model, images, HALF), timm_embed(model, images, IMAGENET)
apart = float(np.abs(want_imagenet - want_half).max()) / float(np.abs(want_half).max())
print(f"timm: ImageNet vs 0.5 normalisation differ by {apart:.2e} of the scale")
check(apart > 10 * 1e-4, "the two normalisations must give embeddings further apart than the tolerance, or this test "
      "proves nothing")
compare("recorded 0.5/0.5, unasked", embed(recorded, images, "--size", SIZE), want_half, "timm")
compare("nothing recorded: ImageNet's", embed(bare, images, "--size", SIZE), want_imagenet, "timm")
p = kao("embed", "--weights", bare, "--quiet", images[0], "--out", os.path.join(TMP, "e.h5"))
check(p.returncode == 0 and "records no input size; using 224x224" in p.stderr,
      f"no recorded size: the size used is said: {p.stderr!r}")

# ---- 2. kao export ----------------------------------------------------------------------------
onnx_path = os.path.join(TMP, "s.onnx")
p = kao("export", "--weights", recorded, "--out", onnx_path)
meta = {m.key: m.value for m in onnx.load(onnx_path).metadata_props} if p.returncode == 0 else {}
check(meta.get("kao.mean") == "0.5,0.5,0.5" and meta.get("kao.std") == "0.5,0.5,0.5" and
      meta.get("kao.input_size") == "384x384", f"export metadata from the weights: {p.stderr} {meta}")
p = kao("export", "--weights", recorded, "--size", "64", "--out", onnx_path + "2")
check(p.returncode == 1 and recorded in p.stderr and "384x384" in p.stderr and "--force" in p.stderr and
      not os.path.exists(onnx_path + "2"), f"export at another size is refused: {p.returncode} {p.stderr!r}")
p = kao("export", "--weights", recorded, "--size", "64", "--force", "--out", onnx_path + "2")
check(p.returncode == 0 and os.path.exists(onnx_path + "2"), f"--force exports anyway: {p.stderr}")
p = kao("export", "--weights", bare, "--out", onnx_path + "3")
meta = {m.key: m.value for m in onnx.load(onnx_path + "3").metadata_props} if p.returncode == 0 else {}
check(meta.get("kao.mean") == "0.485,0.456,0.406" and "records no input size" in p.stderr,
      f"export without a record: ImageNet and a note: {p.stderr} {meta}")

# ---- 3. kao train --init ----------------------------------------------------------------------
data = os.path.join(TMP, "faces")
os.makedirs(data)
for ident in ("s1", "s2", "s3"):
    os.symlink(os.path.join(ORL, ident), os.path.join(data, ident))


CONFIG = os.path.join(TMP, "tiny_s.ini")
with open(CONFIG, "w") as f:
    f.write(f"""[model]
name = tf_efficientnetv2_s
width_mult = 0.25
depth_mult = 0.25
embedding_dim = 16
input_size = {SIZE}
[data]
val_fraction = 0.2
follow_symlinks = true
[train]
epochs = 1
batch_size = 8
warmup_epochs = 0
threads = 2
workers = 0
""")


def train(out, *sets):
    args = ["train", "--config", CONFIG, "--data", data, "--out", out, "--init", recorded]
    for s in sets:
        args += ["--set", s]
    return kao(*args)


def config_value(run, key):
    for line in open(os.path.join(run, "config.ini")):
        if line.split("=")[0].strip() == key:
            return line.split("=", 1)[1].strip()
    return None


run = os.path.join(TMP, "run")
p = train(run, "train.lr=1e-12", "train.head_lr=1e-12", "arcface.lr=1e-12", "train.freeze_bn=true")
if check(p.returncode == 0, f"kao train --init: {p.stderr}"):
    check(config_value(run, "input_mean") == "0.5,0.5,0.5" and config_value(run, "input_std") == "0.5,0.5,0.5",
          "config.ini holds the start weights' normalisation")
    best = os.path.join(run, "best.h5")
    with h5py.File(best, "r") as f:
        check(list(f.attrs["input_mean"]) == [0.5] * 3, "best.h5 records the normalisation")
    ckpts = sorted(os.listdir(os.path.join(run, "checkpoints")))
    with h5py.File(os.path.join(run, "checkpoints", ckpts[-1]), "r") as f:
        check(list(f.attrs.get("input_std", [])) == [0.5] * 3 and int(f.attrs["input_height"]) == SIZE,
              "checkpoints record the normalisation and size")
    # lr ~ 0 and frozen BN: the backbone is the start's, so its features (not the fresh head's
    # output) are unchanged; compare through a file that holds the trained backbone and timm's head.
    with h5py.File(best, "r") as f:
        trained = {k: torch.from_numpy(np.array(f[k])) for k in f if not k.startswith("arcface")}
    m2 = timm.create_model("tf_efficientnetv2_s", channel_multiplier=0.25, depth_multiplier=0.25,
                           num_classes=16).eval()
    m2.load_state_dict(trained)
    compare("trained run's best.h5, 0.5/0.5 unasked", embed(best, images), timm_embed(m2, images, HALF), "timm")
run2 = os.path.join(TMP, "run2")
p = train(run2, "model.input_mean=0.485,0.456,0.406", "model.input_std=0.229,0.224,0.225")
check(p.returncode == 0 and config_value(run2, "input_mean") == "0.485,0.456,0.406",
      f"model.input_mean overrides the weights: {p.stderr}")
for bad in ("model.input_mean=1,2", "model.input_mean=a,b,c", "model.input_mean=nan,0,0", "model.input_std=0,1,1"):
    p = train(os.path.join(TMP, "bad"), bad)
    check(p.returncode != 0 and bad.split("=")[0] in p.stderr and p.stderr.count("\n") == 1,
          f"{bad} refused with one line: {p.stderr!r}")

shutil.rmtree(TMP, ignore_errors=True)
finish("test_normalisation")
