"""kao verify's plots and roc.csv, on integer embeddings (30 identities x 8, 28,680 pairs) whose
cosines NumPy computes bit for bit as kao does (exact integer dot products, then the same three
IEEE operations):
1. --roc-csv: a header far,tar,threshold and exactly scikit-learn's roc_curve(drop_intermediate=
   False) points (tolerance 0: both divide the same integers in double; the thresholds are the
   float32 scores, printed to 17 digits, the first "inf").
2. The PNG's FAR axis is logarithmic: its major ticks (found by their pixels under the x axis) sit
   at the decades 10^lowest..1 and its minor ticks at log10(2..9) of a decade (1 px), and the blue
   curve passes through ROC points read from the CSV at their log-FAR positions (2 px).
3. The SVG parses (xml.etree); its <polyline id="roc"> has one vertex per CSV line, each at the
   log-FAR position of its point (0.5 px, the raster's rounding).
4. Layout: the text boxes the code gives every SVG <text> (position, textLength, rotation; the PNG
   draws the same boxes) are pairwise disjoint by at least 2 px and inside the image, in the ROC and
   the histogram, and the y axis's name is 8 px or more from the tick labels; in the histogram PNG
   the pixels show that gap too. The axis names are lower case, and the PNG's lower-case glyphs
   leave the top two font rows of "cosine similarity" almost empty (capitals fill them).
5. SVG and PNG are chosen by the extension; --roc-csv is an output: never an input.
"""
import csv
import os
import re
import sys
import tempfile
import xml.etree.ElementTree as ET

import h5py
import numpy as np
from PIL import Image
from sklearn.metrics import roc_curve

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kaotest import check, finish, kao  # noqa: E402

TMP = tempfile.mkdtemp(prefix="kao_test_plots_")
W, H = 640, 480
SVG = "{http://www.w3.org/2000/svg}"


def path(name):
    return os.path.join(TMP, name)


def embeddings():
    """(HDF5 path, scores, same) for every pair of 240 integer embeddings."""
    rng = np.random.default_rng(7)
    emb, names = [], []
    for k in range(30):
        centre = rng.integers(-3, 4, 24)
        for i in range(8):
            emb.append(centre + rng.integers(-2, 3, 24))
            names.append(f"f/p{k}_{i}.png")
    emb = np.asarray(emb, np.int64)
    with h5py.File(path("e.h5"), "w") as f:
        f.create_dataset("embeddings", data=emb.astype(np.float32))
        f.create_dataset("paths", data=np.array(names, dtype=object), dtype=h5py.string_dtype())
    norm = [float(np.sqrt(float(e @ e))) for e in emb]
    scores, same = [], []
    for a in range(len(emb)):
        for b in range(a + 1, len(emb)):  # kao: (float)(dot / (norm_a * norm_b)), dot exact here
            scores.append(np.float32(float(emb[a] @ emb[b]) / (norm[a] * norm[b])))
            same.append(a // 8 == b // 8)
    return path("e.h5"), np.asarray(scores, np.float32), np.asarray(same)


def read_csv(name):
    with open(name) as f:
        rows = list(csv.reader(f))
    return rows[0], np.array([[float(v) for v in r] for r in rows[1:]])


def check_csv(header, rows, scores, same):
    fpr, tpr, thr = roc_curve(same, scores, drop_intermediate=False)
    check(header == ["far", "tar", "threshold"], f"csv header {header}")
    check(rows.shape == (len(fpr), 3), f"csv: {rows.shape[0]} points, scikit-learn {len(fpr)}")
    if rows.shape == (len(fpr), 3):
        check((rows[:, 0] == fpr).all() and (rows[:, 1] == tpr).all(), "csv far, tar = scikit-learn's, exactly")
        check((rows[:, 2] == thr.astype(np.float64)).all() and rows[0, 2] == np.inf,
              "csv thresholds = scikit-learn's, exactly (the first inf)")


def log_position(far, lowest, left, right):
    """The x pixel of far on a log axis 10^lowest..1 over [left, right] (far 0 at left)."""
    share = (np.log10(np.maximum(far, 10.0 ** lowest)) - lowest) / -lowest
    return left + share * (right - left)


def png_frame(px):
    """The plot area: the y axis is the blackest column, the x axis the blackest row up to its last
    black pixel; top: the highest y tick (6 black pixels left of the axis)."""
    black = (px.sum(axis=2) == 0)
    bottom, left = int(np.argmax(black.sum(axis=1))), int(np.argmax(black.sum(axis=0)))
    right = int(np.flatnonzero(black[bottom])[-1])
    top = int(np.flatnonzero(black[:, left - 6:left].all(axis=1))[0])
    return left, right, bottom, top, black


def check_log_axis_png(png, rows, lowest):
    px = np.asarray(Image.open(png).convert("RGB")).astype(int)
    left, right, bottom, top, black = png_frame(px)
    major = np.flatnonzero(black[bottom + 5, left:right + 1]) + left  # long ticks: 6 px
    minor = sorted(set(np.flatnonzero(black[bottom + 2, left:right + 1]) + left) - set(major))
    want_major = [log_position(10.0 ** e, lowest, left, right) for e in range(lowest, 1)]
    want_minor = [log_position(k * 10.0 ** e, lowest, left, right) for e in range(lowest, 0) for k in range(2, 10)]
    check(len(major) == len(want_major) and np.abs(major - want_major).max() <= 1,
          f"png: major ticks at {list(major)}, decades want {np.round(want_major, 1)}")
    check(len(minor) == len(want_minor) and np.abs(np.array(minor) - want_minor).max() <= 1,
          f"png: {len(minor)} minor ticks at log10(2..9) of each decade, want {len(want_minor)}")
    blue = (np.abs(px - [31, 90, 180]).sum(axis=2) < 30)  # the curve, or a mark on it (orange, red)
    blue |= (np.abs(px - [230, 130, 0]).sum(axis=2) < 30) | (np.abs(px - [200, 40, 40]).sum(axis=2) < 30)
    picks = rows[(rows[:, 0] >= 1e-3) & (rows[:, 0] <= 0.3)][::40]
    misses = []
    for far, tar, _ in picks:
        x = int(round(log_position(far, lowest, left, right)))
        y = int(round(bottom - tar * (bottom - top)))
        if not blue[y - 2:y + 3, x - 2:x + 3].any():
            misses.append((far, tar, x, y))
    check(len(picks) >= 10 and not misses, f"png: the curve through {len(picks)} CSV points, missed {misses[:3]}")


def svg_lines(root):
    return [{k: float(e.get(k)) for k in ("x1", "y1", "x2", "y2")} | {"stroke": e.get("stroke")}
            for e in root.iter(SVG + "line")]


def check_svg_curve(svg, rows, lowest):
    root = ET.parse(svg).getroot()
    axes = [ln for ln in svg_lines(root) if ln["stroke"] == "#000000" and ln["y1"] == ln["y2"]]
    x_axis = max(axes, key=lambda ln: ln["x2"] - ln["x1"])
    left, right = x_axis["x1"] - 0.5, x_axis["x2"] - 0.5  # a 1 px line's centre
    curve = [e for e in root.iter(SVG + "polyline") if e.get("id") == "roc"]
    check(len(curve) == 1, f"svg: one polyline id=roc, found {len(curve)}")
    if not curve:
        return
    pts = np.array([[float(v) for v in p.split(",")] for p in curve[0].get("points").split()])
    check(len(pts) == len(rows), f"svg: {len(pts)} curve vertices, csv {len(rows)} points")
    if len(pts) == len(rows):
        want = log_position(rows[:, 0], lowest, left, right) + 0.5  # the 3 px stroke's centre
        err = np.abs(pts[:, 0] - want).max()
        check(err <= 0.5 + 1e-9, f"svg: vertices at the points' log-FAR positions (max error {err:.3f} px)")


def text_boxes(svg):
    """(text, (x0, y0, x1, y1)) of every <text>: the bitmap text's box, LINE_HEIGHT 14 tall."""
    boxes = []
    for e in ET.parse(svg).getroot().iter(SVG + "text"):
        x, y, length = float(e.get("x")), float(e.get("y")) - 14, float(e.get("textLength"))
        turn = e.get("transform")
        if turn:
            check(re.fullmatch(r"rotate\(-90 [-\d.]+ [-\d.]+\)", turn), f"svg: only quarter turns, got {turn}")
            boxes.append((e.text, (x, y - length, x + 14, y)))
        else:
            boxes.append((e.text, (x, y, x + length, y + 14)))
    return boxes


def gap(a, b):
    """The distance between two boxes along the axis that separates them most (< 0: overlap)."""
    return max(b[0] - a[2], a[0] - b[2], b[1] - a[3], a[1] - b[3])


def check_layout(svg, what, y_name):
    boxes = text_boxes(svg)
    inside = all(0 <= b[0] and b[2] <= W and 0 <= b[1] and b[3] <= H for _, b in boxes)
    check(inside, f"{what}: every text inside the image")
    worst = min((gap(a[1], b[1]), a[0], b[0]) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    check(worst[0] >= 2, f"{what}: {len(boxes)} text boxes pairwise 2 px apart, closest {worst}")
    name = [b for t, b in boxes if t == y_name]
    ticks = [b for t, b in boxes if re.fullmatch(r"-?\d\.\d+", t or "") and b[2] < 100]
    check(len(name) == 1 and ticks and min(t[0] for t in ticks) - name[0][2] >= 8,
          f"{what}: the y name '{y_name}' 8 px or more left of the y tick labels")


def check_hist_png(png):
    px = np.asarray(Image.open(png).convert("RGB")).astype(int)
    left, right, bottom, top, black = png_frame(px)
    dark = (px.sum(axis=2) < 300)[top - 8:bottom + 8, :left - 6].any(axis=0)  # left of the y ticks
    cols = np.flatnonzero(dark)  # the name's 14 columns, then the tick labels'
    apart = int(cols[14] - cols[13] - 1) if len(cols) > 14 and cols[13] - cols[0] == 13 else None
    check(apart is not None and apart >= 8, f"histogram png: name and tick labels {apart} px apart")
    rows = np.flatnonzero((px[bottom + 26:, left:right].sum(axis=2) < 300).any(axis=1)) + bottom + 26
    name = (px[rows[0]:rows[-1] + 1, left:right].sum(axis=2) < 300)  # "cosine similarity"
    share = name[:4].sum() / name.sum()
    check(share < 0.15, f"histogram png: lower-case axis name, {share:.0%} of its ink in the top two font rows")


def main():
    e5, scores, same = embeddings()
    p = kao("verify", "--embeddings", e5, "--no-pairs", "--roc-csv", path("roc.csv"), "--roc", path("roc.png"),
            "--hist", path("hist.png"))
    q = kao("verify", "--embeddings", e5, "--no-pairs", "--roc", path("roc.svg"), "--hist", path("hist.svg"))
    if not check(p.returncode == 0 and q.returncode == 0, f"kao verify: {p.stderr} {q.stderr}"):
        return
    header, rows = read_csv(path("roc.csv"))
    check_csv(header, rows, scores, same)
    lowest = int(min(-4, np.floor(np.log10(rows[rows[:, 0] > 0, 0].min()))))
    check(lowest == -5, f"28,680 pairs, 27,840 different: the FAR axis starts at 1e-5, got 1e{lowest}")
    check_log_axis_png(path("roc.png"), rows, lowest)
    check_svg_curve(path("roc.svg"), rows, lowest)
    for name in ("roc.png", "hist.png"):
        with open(path(name), "rb") as f:
            check(f.read(8) == b"\x89PNG\r\n\x1a\n", f"{name} is a PNG")
    check_layout(path("roc.svg"), "roc", "true accept rate (TAR)")
    check_layout(path("hist.svg"), "histogram", "share of pairs")
    texts = {t for t, _ in text_boxes(path("roc.svg")) + text_boxes(path("hist.svg"))}
    check({"false accept rate (FAR, log scale)", "cosine similarity"} <= texts, f"lower-case axis names: {texts}")
    check_hist_png(path("hist.png"))
    p = kao("verify", "--embeddings", e5, "--no-pairs", "--roc-csv", e5)
    check(p.returncode == 1 and f"{e5}: is the same file as the input {e5}" in p.stderr,
          f"--roc-csv onto the embeddings: {p.stderr}")


main()
finish("test_verify_plots")
