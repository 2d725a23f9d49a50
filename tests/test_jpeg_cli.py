"""JPEG through the kao program, beside PNG:

1. kao embed on JPEG files (greyscale, 4:2:0 baseline, 4:4:4 progressive, CMYK, EXIF-rotated, a .jpg
   that holds a PNG, and a folder with .jpg, .JPEG and .png names) equals timm's eval forward on
   torchvision's Resize((H, W)) + ToTensor + Normalize of PIL's Image.open(p).convert('RGB'), within
   1e-4 of the embedding's scale; with --exif-transpose, of ImageOps.exif_transpose's image.
2. Bad JPEGs in kao embed (truncated, empty, junk after SOI, claiming 60000 x 60000 pixels, one over
   --max-image-pixels): one "kao: error:" line naming the file and exit status 1.
3. kao verify: an LFW-style pairs file whose images are .jpg, .jpeg or .png (whichever exists), and a
   folder of <identity>_<n>.jpg names; --max-image-pixels applies there too.
4. kao train on a mixed tree (4 ORL identities, half of each one's images re-saved as JPEG): the scan
   report counts both kinds and training finishes; with data.max_image_pixels below one image's size
   that image is skipped with a warning naming it, and data.exif_transpose is recorded in the run's
   config.ini. kao bench --mode load reads the same tree.
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
from PIL import Image, ImageOps
from torchvision import transforms

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_common  # noqa: E402
from kaotest import ORL, check, finish, kao  # noqa: E402
from convert_timm import randomise_bn, write_h5  # noqa: E402

TMP = tempfile.mkdtemp(prefix="kao_test_jpeg_cli_")
rng = np.random.default_rng(3)


def path(*parts):
    return os.path.join(TMP, *parts)


def face(size=(92, 112)):
    """A colour picture with structure (an ORL face tinted, plus noise)."""
    grey = np.asarray(Image.open(os.path.join(ORL, "s5", "3.png")).convert("L").resize(size), dtype=int)
    tint = np.stack([grey, grey * 3 // 4 + 40, 255 - grey], -1) + rng.integers(-20, 20, (size[1], size[0], 3))
    return Image.fromarray(np.clip(tint, 0, 255).astype(np.uint8), "RGB")


def timm_embed(model, images, h, w):
    tf = transforms.Compose([transforms.Resize((h, w)), transforms.ToTensor(),
                             transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    with torch.no_grad():
        return model(torch.stack([tf(im) for im in images])).numpy()


def embed(*args):
    out = path("e.h5")
    p = kao("embed", "--weights", tiny_h5, "--size", "64", "--quiet", *args, "--out", out)
    if p.returncode:
        return p, None, None
    with h5py.File(out, "r") as f:
        return p, f["embeddings"][...], [x.decode() if isinstance(x, bytes) else x for x in f["paths"][...]]


def compare(name, got, want):
    scale = float(np.abs(want).max())
    err = float(np.abs(got - want).max()) if got is not None and got.shape == want.shape else float("inf")
    print(f"{name}: max |kao - timm| = {err:.3g} (embedding scale {scale:.3g})")
    check(err <= 1e-4 * scale, f"{name}: max |kao - timm| {err:.3g} vs scale {scale:.3g}")


def one_error(what, p, needle):
    lines = [l for l in p.stderr.strip().split("\n") if l]
    check(p.returncode == 1 and len(lines) == 1 and lines[0].startswith("kao: error:") and needle in lines[0],
          f"{what}: expected exit 1 and one error line with '{needle}', got {p.returncode} {p.stderr!r}")


# ---- 1. kao embed against timm -----------------------------------------------------------------
torch.manual_seed(0)
tiny = randomise_bn(timm.create_model("tf_efficientnetv2_b0", channel_multiplier=0.25, depth_multiplier=0.5,
                                      num_classes=32), 1).eval()
tiny_h5 = path("tiny.h5")
write_h5(tiny_h5, tiny, "tf_efficientnetv2_b0", 0.25, 0.5)

Image.open(os.path.join(ORL, "s1", "1.png")).save(path("grey.jpg"), quality=90)
face().save(path("baseline_420.jpg"), quality=75, subsampling=2)
face((77, 101)).save(path("progressive_444.jpeg"), quality=95, subsampling=0, progressive=True)
face().convert("CMYK").save(path("cmyk.jpg"), quality=90)
face().save(path("png_inside.jpg"), format="PNG")
exif = Image.Exif()
exif[0x0112] = 6
face((60, 90)).save(path("rotated.jpg"), quality=90, exif=exif)
files = [path(n) for n in ["grey.jpg", "baseline_420.jpg", "progressive_444.jpeg", "cmyk.jpg", "png_inside.jpg",
                           "rotated.jpg"]]
p, emb, paths = embed(*files)
check(p.returncode == 0 and paths == files, f"kao embed on JPEGs: {p.stderr}")
compare("JPEG files, tiny b0 at 64x64", emb, timm_embed(tiny, [Image.open(f).convert("RGB") for f in files], 64, 64))
p, emb, _ = embed("--exif-transpose", *files)
check(p.returncode == 0, f"kao embed --exif-transpose: {p.stderr}")
compare("JPEG files with --exif-transpose", emb,
        timm_embed(tiny, [ImageOps.exif_transpose(Image.open(f)).convert("RGB") for f in files], 64, 64))

folder = path("folder")
os.makedirs(os.path.join(folder, "sub"))
shutil.copy(path("baseline_420.jpg"), os.path.join(folder, "a.jpg"))
shutil.copy(path("progressive_444.jpeg"), os.path.join(folder, "b.JPEG"))
shutil.copy(os.path.join(ORL, "s2", "1.png"), os.path.join(folder, "sub", "c.png"))
open(os.path.join(folder, "notes.txt"), "w").write("not an image\n")
p, emb, paths = embed(folder)
want_paths = [os.path.join(folder, n) for n in ["a.jpg", "b.JPEG", "sub/c.png"]]
check(p.returncode == 0 and paths == want_paths, f"folder scan takes .jpg, .JPEG and .png: {paths} {p.stderr}")
if p.returncode == 0:
    compare("folder of JPEG and PNG files", emb,
            timm_embed(tiny, [Image.open(f).convert("RGB") for f in want_paths], 64, 64))

# ---- 2. bad JPEGs in kao embed -----------------------------------------------------------------
good = open(path("baseline_420.jpg"), "rb").read()
bad = {"truncated.jpg": (good[:len(good) // 2], "truncated or corrupt JPEG (libjpeg-turbo: "),
       "empty.jpg": (b"", "empty file"),
       "junk.jpg": (b"\xff\xd8\xff" + bytes(range(256)), "truncated or corrupt JPEG (")}
sof = good.index(b"\xff\xc0")
bad["huge.jpg"] = (good[:sof + 5] + (60000).to_bytes(2, "big") * 2 + good[sof + 9:], "JPEG claims 60000 x 60000 pixels")
for name, (data, needle) in bad.items():
    open(path(name), "wb").write(data)
    p, _, _ = embed(files[0], path(name))
    one_error(f"kao embed {name}", p, f"{path(name)}: {needle}")
p, _, _ = embed("--max-image-pixels", "10000", files[0], path("baseline_420.jpg"))
one_error("--max-image-pixels 10000", p, f"{files[0]}: JPEG claims 92 x 112 pixels, more than kao accepts")
p = kao("embed", "--weights", tiny_h5, "--max-image-pixels", "0", files[0], "--out", path("e.h5"))
check(p.returncode == 2 and "--max-image-pixels wants a positive integer" in p.stderr,
      f"--max-image-pixels 0: {p.stderr}")
p = kao("embed", "--weights", tiny_h5, path("folder", "notes.txt"), "--out", path("e.h5"))
one_error("a file named neither .png nor .jpg", p, "not a PNG or JPEG file name")
for command in ["embed", "verify"]:
    text = kao(command, "--help").stdout
    check("--max-image-pixels N" in text and "178956970" in text and "--exif-transpose" in text,
          f"kao {command} --help names the image options")

# ---- 3. kao verify -----------------------------------------------------------------------------
lfw = path("lfw")
for rel, src in [("Ann/Ann_0001.jpg", "baseline_420.jpg"), ("Ann/Ann_0002.png", "png_inside.jpg"),
                 ("Bob/Bob_0001.jpeg", "grey.jpg"), ("Bob/Bob_0002.jpg", "cmyk.jpg")]:
    os.makedirs(os.path.dirname(os.path.join(lfw, rel)), exist_ok=True)
    shutil.copy(path(src), os.path.join(lfw, rel))
open(path("pairs.txt"), "w").write("Ann 1 2\nBob 1 2\nAnn 1 Bob 1\nAnn 2 Bob 2\n")
verify = ["verify", "--weights", tiny_h5, "--size", "64", "--quiet"]
p = kao(*verify, "--pairs", path("pairs.txt"), lfw)
named = [line.split(", ")[:2] for line in p.stdout.splitlines() if line.count(", ") >= 5]
check(p.returncode == 0 and named[2] == [f"{lfw}/Ann/Ann_0001.jpg", f"{lfw}/Bob/Bob_0001.jpeg"] and
      named[3] == [f"{lfw}/Ann/Ann_0002.png", f"{lfw}/Bob/Bob_0002.jpg"], f"pairs file with JPEGs: {p.stderr} {named}")
p = kao(*verify, "--max-image-pixels", "5000", "--pairs", path("pairs.txt"), lfw)
one_error("kao verify --max-image-pixels", p, f"{lfw}/Ann/Ann_0001.jpg: JPEG claims 92 x 112 pixels")
names = path("names")
os.makedirs(names)
for name, src in [("ann_1.jpg", "baseline_420.jpg"), ("ann_2.png", "png_inside.jpg"), ("bob_1.JPG", "grey.jpg"),
                  ("bob_2.jpeg", "cmyk.jpg")]:
    shutil.copy(path(src), os.path.join(names, name))
p = kao(*verify, names)
check(p.returncode == 0 and "pairs: 6" in p.stdout and "same pairs: 2" in p.stdout, f"<identity>_<n>.jpg: {p.stderr}")

# ---- 4. kao train and kao bench on a mixed tree -----------------------------------------------
root = path("mixed")
for ident in ["s1", "s2", "s3", "s4"]:
    os.makedirs(os.path.join(root, ident))
    for n in range(1, 11):
        src = os.path.join(ORL, ident, f"{n}.png")
        if n % 2:
            shutil.copy(src, os.path.join(root, ident, f"{n}.png"))
        else:  # .jpg, .jpeg and .JPG, one progressive
            ext = [".jpg", ".jpeg", ".JPG"][n % 3]
            Image.open(src).save(os.path.join(root, ident, f"{n}{ext}"), format="JPEG", quality=92,
                                 progressive=n == 4)
ws = train_common.Workspace()
cfg = ws.config("mixed.ini", root, threads=2)
quick = ["--set", "train.epochs=1", "--set", "train.warmup_epochs=0", "--set", "train.batch_size=8",
         "--set", "data.val_count=2"]
status, out = train_common.kao("train", "--config", cfg, "--out", ws.path("run1"), *quick)
check(status == 0, f"kao train on a mixed tree: exit {status}:\n{out}")
check("images:     40 (20 .png, 20 .jpg or .jpeg)" in out and "skipped:    0 images" in out,
      f"the scan report counts PNG and JPEG:\n{out}")
big = os.path.join(root, "s2", "big.jpg")
face((130, 130)).save(big, quality=90)
status, out = train_common.kao("train", "--config", cfg, "--out", ws.path("run2"), *quick, "--set",
                               "data.max_image_pixels=12000", "--set", "data.exif_transpose=true")
warnings = [l for l in out.splitlines() if l.startswith("warning: skipping") and "big.jpg" in l]
check(status == 0 and len(warnings) == 1 and "130 x 130 pixels" in warnings[0] and "12000 pixels" in warnings[0],
      f"data.max_image_pixels: one warning naming big.jpg:\n{out}")
config_ini = open(ws.path("run2", "config.ini")).read() if status == 0 else ""
check("max_image_pixels = 12000" in config_ini and "exif_transpose = true" in config_ini,
      "the run's config.ini records the image keys")
status, out = train_common.kao("bench", "--mode", "load", "--data", root, "--size", "48", "--batch", "8", "--steps",
                               "2", "--warmup", "1", "--workers", "1")
check(status == 0 and '"mode": "load"' in out, f"kao bench --mode load on the mixed tree: {out}")
ws.cleanup()

shutil.rmtree(TMP)
finish("test_jpeg_cli")
