"""kao's training augmentation (augment.h) against the torchvision pipeline it stands for,
Compose([RandomResizedCrop, RandomHorizontalFlip, ColorJitter, RandomGrayscale, ToTensor]):

1. the draws, in distribution: N = 20,000 samples of kao's parameters (tests/augment_draw_tool,
   through the [augment] config keys and kao_augment_rng) against N of torchvision's own
   (RandomResizedCrop.get_params, torch.rand for the flip and grayscale, ColorJitter.get_params;
   torch.manual_seed), compared statistic by statistic with two-sample tests: Kolmogorov-Smirnov on
   the crop's area fraction, log aspect ratio, position (top and left over their ranges) and on
   every jitter factor; chi-square on the flip and grayscale rates, on the 24 jitter orders and on
   the rate of RandomResizedCrop's fallback (parameters that force it about half the time). Each
   must keep p >= ALPHA. The same comparisons must REJECT (p < ALPHA) kao run with one parameter
   deliberately wrong (crop area 0.75 for 0.7, crop ratio 5% off, flip 0.45 for 0.5, brightness
   0.25 for 0.2, hue 0.11 for 0.1, grayscale 0.15 for 0.1) and a biased shuffle's orders, so the
   test cannot pass vacuously. Seeds are fixed: the outcome is deterministic; ALPHA = 1e-4 keeps
   it far from chance either way (the true p-values are printed).
2. the operations, pixel for pixel: kao_augment_apply for 60 of kao's draws (every operation on,
   hue and grayscale included) on a colour face must equal torchvision's functional ops
   (resized_crop, hflip, adjust_brightness/contrast/saturation/hue, rgb_to_grayscale, to_tensor)
   applied with the same parameters, exactly (tolerance 0: kao follows Pillow's uint8 arithmetic).
3. the whole pipeline, in distribution: per-image channel means and stds of 300 augmented images
   from kao and 300 from torchvision's Compose (KS, p >= ALPHA), and a kao run with brightness 0.4
   for 0.2 rejected.
"""
import io
import os
import subprocess
import sys
import tempfile
from itertools import permutations

import numpy as np
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as F
from PIL import Image
from scipy import stats

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kaotest import BINARY_DIR, ORL, check, finish  # noqa: E402

TOOL = os.path.join(BINARY_DIR, "tests", "augment_draw_tool")
N = 20000
ALPHA = 1e-4
HEIGHT, WIDTH = 112, 92  # an ORL face
SQUARE = 160
# torchvision's arguments; the kao keys are augment.<name> (docs/augmentation.md).
BASE = dict(crop_scale_min=0.7, crop_scale_max=1.0, crop_ratio_min=0.8, crop_ratio_max=1.25, hflip=0.5,
            brightness=0.2, contrast=0.3, saturation=0.4, hue=0.1, grayscale=0.1)
FALLBACK = dict(BASE, crop_scale_min=0.5, crop_ratio_min=1.3, crop_ratio_max=2.0)
JITTER = ["brightness", "contrast", "saturation", "hue"]
PERMS = {p: i for i, p in enumerate(permutations(range(4)))}


def kao_draws(cfg, n=N, height=HEIGHT, width=WIDTH, seed=1):
    """kao's n draws as a dict of arrays (augment_draw_tool sample)."""
    args = [f"augment.{k}={v!r}" for k, v in cfg.items()]
    p = subprocess.run([TOOL, "sample", str(n), str(height), str(width), str(seed), *args], capture_output=True,
                       text=True, check=True)
    a = np.loadtxt(io.StringIO(p.stdout), ndmin=2)
    return dict(top=a[:, 0], left=a[:, 1], h=a[:, 2], w=a[:, 3], flip=a[:, 4], order=a[:, 5:9].astype(int),
                factor=a[:, 13:17], gray=a[:, 17], lines=p.stdout.splitlines())


def torch_draws(cfg, n=N, height=HEIGHT, width=WIDTH, seed=1):
    """torchvision's n draws, in the same form."""
    torch.manual_seed(seed)
    img = torch.empty(3, height, width)  # get_params reads only the size
    scale, ratio = (cfg["crop_scale_min"], cfg["crop_scale_max"]), (cfg["crop_ratio_min"], cfg["crop_ratio_max"])
    cj = T.ColorJitter(cfg["brightness"], cfg["contrast"], cfg["saturation"], cfg["hue"])
    rows = []
    for _ in range(n):
        top, left, h, w = T.RandomResizedCrop.get_params(img, scale, ratio)
        flip = float(torch.rand(1) < cfg["hflip"])
        order, *factors = T.ColorJitter.get_params(cj.brightness, cj.contrast, cj.saturation, cj.hue)
        factors = [(0.0 if k == 3 else 1.0) if f is None else f for k, f in enumerate(factors)]
        gray = float(torch.rand(1) < cfg["grayscale"])
        rows.append([top, left, h, w, flip, *order.tolist(), *factors, gray])
    a = np.array(rows, dtype=float)
    return dict(top=a[:, 0], left=a[:, 1], h=a[:, 2], w=a[:, 3], flip=a[:, 4], order=a[:, 5:9].astype(int),
                factor=a[:, 9:13], gray=a[:, 13])


def chi2(a, b, categories):
    """p of the chi-square test that two samples of category indices come from one distribution."""
    table = np.array([np.bincount(a, minlength=categories), np.bincount(b, minlength=categories)])
    table = table[:, table.sum(0) > 0]
    return 1.0 if table.shape[1] < 2 else stats.chi2_contingency(table)[1]


def ks(a, b):
    return stats.ks_2samp(a, b, method="asymp").pvalue


def compare(k, t, height=HEIGHT, width=WIDTH, fallback_box=None):
    """{statistic: p} for kao's draws k against torchvision's t."""
    p = {
        "crop area": ks(k["h"] * k["w"] / (height * width), t["h"] * t["w"] / (height * width)),
        "crop log ratio": ks(np.log(k["w"] / k["h"]), np.log(t["w"] / t["h"])),
        "crop top": ks((k["top"] + 0.5) / (height - k["h"] + 1), (t["top"] + 0.5) / (height - t["h"] + 1)),
        "crop left": ks((k["left"] + 0.5) / (width - k["w"] + 1), (t["left"] + 0.5) / (width - t["w"] + 1)),
        "flip": chi2(k["flip"].astype(int), t["flip"].astype(int), 2),
        "grayscale": chi2(k["gray"].astype(int), t["gray"].astype(int), 2),
        "jitter order": chi2(np.array([PERMS[tuple(o)] for o in k["order"]]),
                             np.array([PERMS[tuple(o)] for o in t["order"]]), 24),
    }
    for j, name in enumerate(JITTER):
        p[f"{name} factor"] = ks(k["factor"][:, j], t["factor"][:, j])
    if fallback_box:
        def is_fallback(d):
            return ((d["top"] == fallback_box[0]) & (d["left"] == fallback_box[1]) & (d["h"] == fallback_box[2]) &
                    (d["w"] == fallback_box[3])).astype(int)
        p["crop fallback"] = chi2(is_fallback(k), is_fallback(t), 2)
    return p


def check_equal(name, k, t, **kw):
    for stat, p in compare(k, t, **kw).items():
        print(f"{name}: {stat}: p = {p:.3g}")
        check(p >= ALPHA, f"{name}: kao's {stat} differs from torchvision's (p = {p:.3g} < {ALPHA})")


def check_draws():
    t = torch_draws(BASE)
    check_equal("defaults of this test", kao_draws(BASE), t)
    # The fallback: its central box, from torchvision's own get_params with an impossible area.
    box = T.RandomResizedCrop.get_params(torch.empty(3, HEIGHT, WIDTH), (4.0, 4.0),
                                         (FALLBACK["crop_ratio_min"], FALLBACK["crop_ratio_max"]))
    kf, tf = kao_draws(FALLBACK), torch_draws(FALLBACK)
    rate = np.mean((kf["h"] == box[2]) & (kf["w"] == box[3]) & (kf["top"] == box[0]))
    print(f"fallback box {box}: kao's rate {rate:.3f}")
    check(0.2 < rate < 0.8, f"the fallback parameters give a fallback rate of {rate:.3f}")
    check_equal("fallback often", kf, tf, fallback_box=box)
    # Also a square image, where the crop ratio range is centred on the image's.
    ts = torch_draws(BASE, height=SQUARE, width=SQUARE)
    check_equal("square", kao_draws(BASE, height=SQUARE, width=SQUARE), ts, height=SQUARE, width=SQUARE)

    # Each deliberately wrong parameter must be rejected by its statistic. The ratio's upper end on
    # the square image: on the 92 x 112 face, crops wider than about 1.17 never fit at 70% of the
    # area, so torchvision's own draws hardly depend on it there.
    wrong = [("crop_scale_min", 0.75, "crop area", t, HEIGHT, WIDTH),
             ("crop_ratio_min", BASE["crop_ratio_min"] * 1.05, "crop log ratio", t, HEIGHT, WIDTH),
             ("crop_ratio_max", BASE["crop_ratio_max"] * 1.05, "crop log ratio", ts, SQUARE, SQUARE),
             ("hflip", 0.45, "flip", t, HEIGHT, WIDTH), ("brightness", 0.25, "brightness factor", t, HEIGHT, WIDTH),
             ("hue", 0.11, "hue factor", t, HEIGHT, WIDTH), ("grayscale", 0.15, "grayscale", t, HEIGHT, WIDTH)]
    for key, value, stat, want, height, width in wrong:
        k = kao_draws(dict(BASE, **{key: value}), height=height, width=width)
        p = compare(k, want, height=height, width=width)[stat]
        print(f"kao with {key} = {value:.4g} for {BASE[key]} ({height} x {width}): {stat}: p = {p:.3g}")
        check(p < ALPHA, f"kao with {key} = {value} (torchvision {BASE[key]}) is not detected: {stat} p = {p:.3g}")
    # A biased shuffle (swap with any position, not only the ones not yet placed): 4^4 equally likely
    # swap sequences cannot cover 24 orders evenly.
    rng = np.random.default_rng(1)
    biased = np.tile(np.arange(4), (N, 1))
    for i in range(4):
        j = rng.integers(0, 4, N)
        rows = np.arange(N)
        biased[rows, i], biased[rows, j] = biased[rows, j], biased[rows, i].copy()
    p = chi2(np.array([PERMS[tuple(o)] for o in biased]), np.array([PERMS[tuple(o)] for o in t["order"]]), 24)
    print(f"biased shuffle: jitter order: p = {p:.3g}")
    check(p < ALPHA, f"a biased shuffle's orders are not detected: p = {p:.3g}")


def colour_face(path):
    """An ORL face made colour (the faces are grey): its three channels differ."""
    g = np.asarray(Image.open(os.path.join(ORL, "s1", "1.png")).convert("L"), dtype=float)
    y, x = np.mgrid[0:g.shape[0], 0:g.shape[1]]
    rgb = np.stack([g * 0.9 + 25, g * 0.7 + 40 * x / g.shape[1], 255 - g * 0.6 - 50 * y / g.shape[0]], -1)
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB").save(path)


def torchvision_apply(img, line, size):
    """torchvision's functional ops with one line of kao's draws."""
    v = line.split()
    top, left, h, w, flip = map(int, v[:5])
    order, on, factor, gray = list(map(int, v[5:9])), list(map(int, v[9:13])), list(map(float, v[13:17])), int(v[17])
    img = F.resized_crop(img, top, left, h, w, [size, size], T.InterpolationMode.BILINEAR, antialias=True)
    if flip:
        img = F.hflip(img)
    ops = [F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue]
    for k in order:
        if on[k]:
            img = ops[k](img, factor[k])
    if gray:
        img = F.rgb_to_grayscale(img, 3)
    return F.to_tensor(img).permute(1, 2, 0).numpy()


def check_operations(tmp):
    path, size = os.path.join(tmp, "face.png"), 64
    colour_face(path)
    cfg = dict(BASE, hue=0.3, grayscale=0.3)
    lines = kao_draws(cfg, n=60)["lines"]
    lines.append(f"0 0 {HEIGHT} {WIDTH} 0 0 1 2 3 0 0 0 0 1 1 1 0 0")  # everything off
    p = subprocess.run([TOOL, "apply", path, str(size), str(size)], input="\n".join(lines).encode(),
                       capture_output=True, check=True)
    got = np.frombuffer(p.stdout, np.float32).reshape(len(lines), size, size, 3)
    img = Image.open(path).convert("RGB")
    worst = 0.0
    for i, line in enumerate(lines):
        worst = max(worst, float(np.abs(got[i] - torchvision_apply(img, line, size)).max()))
    print(f"{len(lines)} draws applied: max |kao - torchvision| = {worst:.3g}")
    check(worst == 0.0, f"kao's augmented pixels differ from torchvision's functional ops by up to {worst:.3g}")
    n_gray = sum(int(line.split()[17]) for line in lines)
    check(0 < n_gray < len(lines) - 1, f"{n_gray} of {len(lines)} draws grey: the check covers both")
    return path, img


def channel_stats(images):
    """Per image and channel: the mean and the std, (n, 6)."""
    return np.concatenate([images.mean((1, 2)), images.std((1, 2))], 1)


def check_pipeline(path, img, n=300, size=64):
    def kao_images(cfg):
        lines = kao_draws(cfg, n=n, seed=7)["lines"]
        p = subprocess.run([TOOL, "apply", path, str(size), str(size)], input="\n".join(lines).encode(),
                           capture_output=True, check=True)
        return np.frombuffer(p.stdout, np.float32).reshape(n, size, size, 3)
    c = BASE
    pipeline = T.Compose([T.RandomResizedCrop(size, (c["crop_scale_min"], c["crop_scale_max"]),
                                              (c["crop_ratio_min"], c["crop_ratio_max"])),
                          T.RandomHorizontalFlip(c["hflip"]),
                          T.ColorJitter(c["brightness"], c["contrast"], c["saturation"], c["hue"]),
                          T.RandomGrayscale(c["grayscale"]), T.ToTensor()])
    torch.manual_seed(7)
    want = channel_stats(np.stack([pipeline(img).permute(1, 2, 0).numpy() for _ in range(n)]))
    names = [f"{s} {ch}" for s in ("mean", "std") for ch in "RGB"]

    def pvalues(got):
        return [ks(got[:, j], want[:, j]) for j in range(6)]
    for name, p in zip(names, pvalues(channel_stats(kao_images(BASE)))):
        print(f"pipeline: per-image {name}: p = {p:.3g}")
        check(p >= ALPHA, f"pipeline: kao's per-image {name} differs from torchvision's (p = {p:.3g})")
    p = min(pvalues(channel_stats(kao_images(dict(BASE, brightness=0.4)))))
    print(f"pipeline with brightness 0.4 for 0.2: smallest p = {p:.3g}")
    check(p < ALPHA, f"pipeline: kao with brightness 0.4 (torchvision 0.2) is not detected: p = {p:.3g}")


def main():
    check_draws()
    with tempfile.TemporaryDirectory(prefix="kao_augment_") as tmp:
        path, img = check_operations(tmp)
        check_pipeline(path, img)
    finish("test_augment_distribution")


if __name__ == "__main__":
    main()
