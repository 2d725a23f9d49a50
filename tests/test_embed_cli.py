"""`kao embed` and `kao info` end to end, against timm.

1. A tiny tf_efficientnetv2_b0 (width 0.25, depth 0.5) with random BN statistics: kao embed on
   ORL PNGs (92×112 grey, resized to 64×64 and to an odd 67×59) equals timm's eval forward on
   torchvision's Resize((H, W)) + ToTensor + Normalize of the same files, within 1e-4 of the
   embedding's scale (both float32; summation orders differ). Output as HDF5, .npy and .csv.
2. Full-size tf_efficientnetv2_b0 at 224×224 (timm's random init with random BN statistics, a
   512-d embedding head), the same comparison.
3. kao info names the architecture and counts the parameters; against another architecture it
   lists every mismatching tensor.
4. Bad input: each gives one "kao: error:" line naming the file (or the device), a non-zero exit and no output
   file: a missing, empty, truncated or neither-PNG-nor-JPEG image; a missing, empty or corrupt weights file;
   a weights file for another variant; an unknown model name. A Japanese (UTF-8) file and folder
   name simply works.
Prints "N passed, N failed"; exit status 1 on any failure.
"""
import os
import shutil
import sys
import tempfile

import h5py
import numpy as np
import timm
import torch
from PIL import Image
from torchvision import transforms

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kaotest import ORL, check, finish, kao  # noqa: E402
from convert_timm import randomise_bn, write_h5  # noqa: E402

TMP = tempfile.mkdtemp(prefix="kao_test_embed_")


def timm_embed(model, paths, h, w):
    tf = transforms.Compose([transforms.Resize((h, w)), transforms.ToTensor(),
                             transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    x = torch.stack([tf(Image.open(p).convert("RGB")) for p in paths])
    with torch.no_grad():
        return model(x).numpy()


def compare(name, got, want):
    scale = float(np.abs(want).max())
    err = float(np.abs(got - want).max())
    check(got.shape == want.shape and err <= 1e-4 * scale, f"{name}: max |kao - timm| {err:.3g} vs scale {scale:.3g}")
    print(f"{name}: max |kao - timm| = {err:.3g} (embedding scale {scale:.3g})")


def read_h5(path):
    with h5py.File(path, "r") as f:
        return f["embeddings"][...], [p.decode() if isinstance(p, bytes) else p for p in f["paths"][...]]


# ---- 1. tiny model, three output formats, even and odd sizes --------------------------------
torch.manual_seed(0)
tiny = randomise_bn(timm.create_model("tf_efficientnetv2_b0", channel_multiplier=0.25, depth_multiplier=0.5,
                                      num_classes=32), 1).eval()
tiny_h5 = os.path.join(TMP, "tiny.h5")
write_h5(tiny_h5, tiny, "tf_efficientnetv2_b0", 0.25, 0.5)
images = [os.path.join(ORL, "s1", "1.png"), os.path.join(ORL, "s1", "2.png"), os.path.join(ORL, "s2", "1.png")]
for h, w in [(64, 64), (67, 59)]:
    out = os.path.join(TMP, f"tiny_{h}x{w}.h5")
    p = kao("embed", "--weights", tiny_h5, "--size", f"{h}x{w}", "--quiet", *images, "--out", out)
    check(p.returncode == 0, f"kao embed tiny {h}x{w}: {p.stderr}")
    emb, paths = read_h5(out)
    check(paths == images, f"paths recorded in order: {paths}")
    compare(f"tiny b0 at {h}x{w}", emb, timm_embed(tiny, images, h, w))

p = kao("embed", "--weights", tiny_h5, "--size", "64", "--quiet", os.path.join(ORL, "s1"), "--out",
                 os.path.join(TMP, "s1.npy"))
emb_npy = np.load(os.path.join(TMP, "s1.npy"))
listed = open(os.path.join(TMP, "s1.npy.paths.txt")).read().split("\n")[:-1]
check(p.returncode == 0 and emb_npy.shape == (10, 32) and len(listed) == 10, f"folder input to .npy: {p.stderr}")
check(listed == sorted(listed), "folder images in byte order")
# --device: the device path (images decoded ahead on the loader's worker threads, weights and
# batches copied over, embeddings back; a short last batch) with the CPU's ops through the stand-in
# device gives the CPU's embeddings exactly (at the same batch size: the CPU kernels' blocking,
# hence rounding, depends on it).
by_device = {}
for device in ["cpu", "cpu-detached"]:
    path = os.path.join(TMP, f"s1_{device}.npy")
    p = kao("embed", "--weights", tiny_h5, "--size", "64", "--quiet", "--batch", "4", "--device", device,
            os.path.join(ORL, "s1"), "--out", path)
    check(p.returncode == 0, f"--device {device}: {p.stderr}")
    by_device[device] = np.load(path) if p.returncode == 0 else None
check(by_device["cpu-detached"] is not None and np.array_equal(by_device["cpu-detached"], by_device["cpu"]),
      "--device cpu-detached gives the CPU's embeddings")
# --precision bf16 (the stand-in device emulates a GPU's bf16): bf16 activations move each embedding
# by bf16's rounding through ~20 layers; within 3e-2 of the largest value, as tests/backend_parity.h
# states for the network (measured there up to 1.3e-2).
path = os.path.join(TMP, "s1_bf16.npy")
p = kao("embed", "--weights", tiny_h5, "--size", "64", "--quiet", "--batch", "4", "--device", "cpu-detached",
        "--precision", "bf16", os.path.join(ORL, "s1"), "--out", path)
check(p.returncode == 0, f"--precision bf16: {p.stderr}")
if p.returncode == 0 and by_device["cpu"] is not None:
    got, want = np.load(path), by_device["cpu"]
    err = np.abs(got - want).max() / np.abs(want).max()
    print(f"--precision bf16: max |bf16 - fp32| = {err:.2e} of the largest value")
    check(0 < err <= 3e-2, f"--precision bf16: {err:.3g} of the largest value from fp32 (0 would mean fp32 ran)")
p = kao("embed", "--weights", tiny_h5, "--size", "64", "--quiet", *images, "--out", os.path.join(TMP, "e.csv"))
rows = open(os.path.join(TMP, "e.csv")).read().strip().split("\n")
check(p.returncode == 0 and len(rows) == 4 and rows[0].startswith("path,e0,") and len(rows[1].split(",")) == 33, "csv output")
emb64, _ = read_h5(os.path.join(TMP, "tiny_64x64.h5"))
csv_vals = np.array([[float(v) for v in r.split(",")[1:]] for r in rows[1:]], dtype=np.float32)
check(np.array_equal(csv_vals, emb64), "csv holds the exact float32 values (9 significant digits)")

# ---- 2. full-size tf_efficientnetv2_b0 at 224 -----------------------------------------------
torch.manual_seed(1)
b0 = randomise_bn(timm.create_model("tf_efficientnetv2_b0", num_classes=512), 2).eval()
b0_h5 = os.path.join(TMP, "b0.h5")
write_h5(b0_h5, b0, "tf_efficientnetv2_b0", 1.0, 1.0)
p = kao("embed", "--weights", b0_h5, "--quiet", *images, "--out", os.path.join(TMP, "b0_emb.h5"))
check(p.returncode == 0, f"kao embed b0: {p.stderr}")
if p.returncode == 0:
    compare("full tf_efficientnetv2_b0 at 224x224", read_h5(os.path.join(TMP, "b0_emb.h5"))[0],
            timm_embed(b0, images, 224, 224))

# ---- 3. kao info ----------------------------------------------------------------------------
p = kao("info", b0_h5)
check(p.returncode == 0 and "tf_efficientnetv2_b0" in p.stdout and "6514576" in p.stdout, f"kao info b0: {p.stdout}{p.stderr}")
n_timm = sum(p.numel() for p in b0.parameters())
check(str(n_timm) in p.stdout, f"kao info counts timm's {n_timm} parameters")
# Checked against another architecture, every mismatch is listed (not only the first).
p = kao("info", tiny_h5, "--model", "tf_efficientnetv2_b1")
listed = [l for l in p.stdout.split("\n") if l.startswith("  ")]
errors = [l for l in p.stderr.strip().split("\n") if l]
check(p.returncode == 1 and len(listed) > 100, f"kao info lists every mismatch: {len(listed)} lines, {p.stderr}")
check("  tensor 'conv_stem.weight' has shape [8, 3, 3, 3], expected [32, 3, 3, 3]" in listed and
      any(l.startswith("  missing tensor 'blocks.0.1.conv.weight'") for l in listed),
      "the list names wrong shapes and missing tensors")
check(len(errors) == 1 and errors[0].startswith("kao: error:") and f"{len(listed)} tensors do not match" in errors[0],
      f"one error line with the count: {p.stderr}")

# ---- 4. bad input ---------------------------------------------------------------------------
def expect_error(what, args, needle, out_path):
    p = kao(*args)
    lines = [l for l in p.stderr.strip().split("\n") if l]
    check(p.returncode != 0, f"{what}: exit status {p.returncode}")
    check(len(lines) == 1 and lines[0].startswith("kao: error:") and needle in lines[0],
          f"{what}: expected one error line naming '{needle}', got {p.stderr!r}")
    check(not os.path.exists(out_path) and not any(n.startswith(os.path.basename(out_path)) for n in os.listdir(TMP)),
          f"{what}: no output file left")


good = images[0]
out = os.path.join(TMP, "never.h5")
empty_png = os.path.join(TMP, "empty.png")
open(empty_png, "wb").close()
truncated_png = os.path.join(TMP, "truncated.png")
data = open(good, "rb").read()
open(truncated_png, "wb").write(data[: len(data) // 2])
text_png = os.path.join(TMP, "text.png")
open(text_png, "w").write("not an image\n")
embed = ["embed", "--weights", tiny_h5, "--size", "64", "--quiet", "--out", out]
expect_error("missing image", embed + [os.path.join(TMP, "missing.png")], "missing.png", out)
expect_error("empty image", embed + [good, empty_png], "empty.png", out)
expect_error("truncated image", embed + [truncated_png], "truncated.png", out)
expect_error("truncated image, decoded ahead (a device's path)",
             embed + ["--device", "cpu-detached", "--batch", "2", good, good, good, truncated_png, good],
             "truncated.png", out)
expect_error("neither PNG nor JPEG inside", embed + [text_png], "text.png: not a PNG or JPEG file", out)
expect_error("image that is not *.png", embed + [os.path.join(ORL, "README_ORL.txt")], "README_ORL.txt", out)
looped = os.path.join(TMP, "looped", "a")  # a/up links back to looped: searched without end before
os.makedirs(looped)
shutil.copy(good, looped)
os.symlink("..", os.path.join(looped, "up"))
latin1 = os.path.join(TMP, "latin1").encode() + b"/caf\xe9"  # a folder name that is not UTF-8
os.makedirs(latin1)
shutil.copy(good, latin1 + b"/1.png")
expect_error("image path that is not UTF-8", embed + [os.path.join(TMP, "latin1")],
             "latin1/caf\\xe9/1.png: the path is not UTF-8 text; rename it", out)
expect_error("folder that links back to its ancestor", embed + [os.path.dirname(looped)],
             "looped/a/up: leads back to " + os.path.dirname(looped) + " (a symbolic link loop)", out)

empty_h5 = os.path.join(TMP, "empty_weights.h5")
open(empty_h5, "wb").close()
corrupt_h5 = os.path.join(TMP, "corrupt_weights.h5")
open(corrupt_h5, "wb").write(open(tiny_h5, "rb").read()[:5000])
weights_args = ["embed", "--size", "64", "--quiet", "--out", out, good, "--weights"]
expect_error("missing weights", weights_args + [os.path.join(TMP, "nothing.h5")], "nothing.h5", out)
expect_error("missing weights, no --size (the size is read from the weights)",
             ["embed", "--quiet", "--out", out, good, "--weights", os.path.join(TMP, "nothing.h5")], "nothing.h5", out)
expect_error("empty weights", weights_args + [empty_h5], "empty_weights.h5", out)
expect_error("corrupt weights", weights_args + [corrupt_h5], "corrupt_weights.h5", out)
expect_error("weights for another variant", weights_args + [tiny_h5, "--model", "tf_efficientnetv2_s"],
             "conv_stem.weight", out)
expect_error("unknown model", weights_args + [tiny_h5, "--model", "resnet50"], "resnet50", out)
expect_error("unknown device", embed + [good, "--device", "tpu"], "tpu", out)
expect_error("bf16 on the CPU", embed + [good, "--precision", "bf16"], "cpu-detached emulates it", out)
if shutil.which("nvidia-smi") is None:  # no GPU here: a CUDA request must say why it cannot be met
    expect_error("a GPU where there is none", embed + [good, "--device", "cuda"], "device cuda", out)
expect_error("output folder missing", ["embed", "--weights", tiny_h5, "--size", "64", "--quiet", good, "--out",
                                       os.path.join(TMP, "no_such_folder", "e.h5")], "no_such_folder", out)

jp_dir = os.path.join(TMP, "顔写真", "山田太郎")
os.makedirs(jp_dir)
shutil.copy(good, os.path.join(jp_dir, "正面.png"))
jp_out = os.path.join(TMP, "顔写真", "埋め込み.h5")
p = kao("embed", "--weights", tiny_h5, "--size", "64", "--quiet", os.path.join(TMP, "顔写真"), "--out", jp_out)
check(p.returncode == 0 and os.path.exists(jp_out), f"Japanese folder and file names: {p.stderr}")
if p.returncode == 0:
    emb, paths = read_h5(jp_out)
    check(paths == [os.path.join(jp_dir, "正面.png")], f"Japanese path recorded as UTF-8: {paths}")
    # Another batch size: GEMM blocking may round differently, so not bit for bit.
    check(np.allclose(emb[0], emb64[0], rtol=0, atol=1e-5), "same image, same embedding under a Japanese name")

shutil.rmtree(TMP)
finish("test_embed_cli")
