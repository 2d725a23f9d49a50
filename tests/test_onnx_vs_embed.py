"""The exported ONNX model in onnxruntime gives the embeddings `kao embed` gives.

For a tiny tf_efficientnetv2_b0 (width 0.25, depth 0.5, random BN statistics) at an even (64×64)
and an odd (67×59) input size, and for the full-size tf_efficientnetv2_b0 at 224×224: kao embed
on ORL PNGs, kao export, then onnxruntime on the same images preprocessed the way kao embed does
(torchvision Resize((H, W)) on the PIL image + ToTensor + Normalize — bit-identical to kao's
preprocessing, see tests/test_image.c), at batch 1 and batch 7. The exported graph folds BN into
the convolutions, so the two differ by float32 rounding only: |ort − kao| <= 1e-4 · max|kao|.
Also onnx.checker.check_model(full_check=True) on each file.
Prints "N passed, N failed"; exit status 1 on any failure.
"""
import os
import shutil
import sys
import tempfile

import h5py
import numpy as np
import onnx
import onnxruntime as ort
import timm
import torch
from PIL import Image
from torchvision import transforms

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kaotest import ORL, check, finish, kao  # noqa: E402
from convert_timm import randomise_bn, write_h5  # noqa: E402

TMP = tempfile.mkdtemp(prefix="kao_test_onnx_embed_")


def kao_ok(*args):
    r = kao(*args)
    check(r.returncode == 0, f"kao {' '.join(map(str, args[:2]))}: {r.stderr}")
    return r.returncode == 0


def preprocess(paths, h, w):
    tf = transforms.Compose([transforms.Resize((h, w)), transforms.ToTensor(),
                             transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    return torch.stack([tf(Image.open(p).convert("RGB")) for p in paths]).numpy()


images = [os.path.join(ORL, f"s{i}", f"{j}.png") for i, j in [(1, 1), (1, 2), (2, 1), (3, 4), (5, 5), (8, 3), (13, 9)]]
cases = [("tiny", 0.25, 0.5, 32, 64, 64), ("tiny", 0.25, 0.5, 32, 67, 59), ("b0", 1.0, 1.0, 512, 224, 224)]
for name, wm, dm, emb, h, w in cases:
    torch.manual_seed(0)
    model = randomise_bn(timm.create_model("tf_efficientnetv2_b0", channel_multiplier=wm, depth_multiplier=dm,
                                         num_classes=emb), 1)
    weights = os.path.join(TMP, f"{name}.h5")
    write_h5(weights, model, "tf_efficientnetv2_b0", wm, dm)
    out = os.path.join(TMP, f"{name}_{h}x{w}.h5")
    onnx_path = os.path.join(TMP, f"{name}_{h}x{w}.onnx")
    if not (kao_ok("embed", "--weights", weights, "--size", f"{h}x{w}", "--quiet", *images, "--out", out) and
            kao_ok("export", "--weights", weights, "--size", f"{h}x{w}", "--out", onnx_path)):
        continue
    with h5py.File(out, "r") as f:
        want = f["embeddings"][...]
    onnx.checker.check_model(onnx.load(onnx_path), full_check=True)
    check(True, "onnx.checker full_check")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])
    x = preprocess(images, h, w)
    scale = float(np.abs(want).max())
    for batch in (1, 7):
        got = np.concatenate([sess.run(None, {"input": x[i:i + batch]})[0] for i in range(0, len(images), batch)])
        err = float(np.abs(got - want).max())
        print(f"{name} {h}x{w} batch {batch}: max |onnxruntime - kao embed| = {err:.3g} (scale {scale:.3g})")
        check(err <= 1e-4 * scale, f"{name} {h}x{w} batch {batch}: {err:.3g} > 1e-4 x {scale:.3g}")

shutil.rmtree(TMP)
finish("test_onnx_vs_embed")
