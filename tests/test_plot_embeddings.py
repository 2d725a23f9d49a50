"""tools/plot_embeddings.py, the 2-D map of kao embed output:
1. kao embed's three formats (.h5, .npy + .npy.paths.txt, .csv) of two ORL identities (the tiny b0
   of tests/data): each gives a PNG (an SVG only when asked) and the same 2-D points (.csv's to
   its 9 printed digits), labelled with each image's identity folder.
2. Two obvious synthetic clusters (64-d, written as kao writes .npy): in the 2-D points the tool
   writes, every point lies nearer its own cluster's centre than the other's, with the projection
   auto picks (UMAP when umap-learn is installed, else PCA) named in its output.
3. Bad input (a missing file, an unknown extension, a .npy without its path list, counts that do
   not match, a plot not named .png): exit 1, one error line naming the file, no plot.
"""
import csv
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kaotest import ORL, SOURCE_DIR, TOOLS, check, finish, kao  # noqa: E402

TOOL = os.path.join(TOOLS, "plot_embeddings.py")
WEIGHTS = os.path.join(SOURCE_DIR, "tests", "data", "model_b0_tiny.weights.h5")
TMP = tempfile.mkdtemp(prefix="kao_test_plot_")


def plot(*args):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True)


def coords(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r["path"] for r in rows], [r["identity"] for r in rows], np.array([[float(r["x"]), float(r["y"])]
                                                                               for r in rows])


def is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


# ---- 1. kao embed's formats --------------------------------------------------------------
points = {}
for fmt in ["h5", "npy", "csv"]:
    emb = os.path.join(TMP, f"orl.{fmt}")
    p = kao("embed", "--weights", WEIGHTS, "--size", 32, "--quiet", os.path.join(ORL, "s1"), os.path.join(ORL, "s2"),
            "--out", emb)
    check(p.returncode == 0, f"kao embed .{fmt}: {p.stderr}")
    png, xy = os.path.join(TMP, f"orl_{fmt}.png"), os.path.join(TMP, f"orl_{fmt}.csv")
    extra = ["--svg"] if fmt == "h5" else []
    p = plot(emb, "--out", png, "--coords", xy, *extra)
    if not check(p.returncode == 0, f".{fmt}: exit {p.returncode}: {p.stderr}"):
        continue
    check(os.path.isfile(png) and is_png(png), f".{fmt}: no PNG at {png}")
    check(os.path.isfile(png[:-4] + ".svg") == (fmt == "h5"), f".{fmt}: an SVG only with --svg")
    paths, ids, points[fmt] = coords(xy)
    want = [os.path.basename(os.path.dirname(q)) for q in paths]
    check(ids == want and sorted(set(ids)) == ["s1", "s2"] and len(ids) == 20, f".{fmt}: identities {ids}")
if len(points) == 3:
    spread = float(np.abs(points["h5"]).max())
    check(np.array_equal(points["h5"], points["npy"]), ".h5 and .npy give different points")
    err = float(np.abs(points["h5"] - points["csv"]).max())
    check(err <= 1e-4 * spread, f".csv's points differ from .h5's by {err:.3g} (spread {spread:.3g})")
    print(f"kao embed formats: the same map from .h5 and .npy; .csv within {err:.2g} of a spread of {spread:.2g}")

# ---- 2. two obvious clusters ------------------------------------------------------------
rng = np.random.default_rng(0)
centres = rng.normal(size=(2, 64))
emb = np.concatenate([c + 0.3 * rng.normal(size=(15, 64)) for c in centres]).astype(np.float32)
names = [f"/data/{who}/{i}.png" for who in ["alice", "bob"] for i in range(15)]
npy = os.path.join(TMP, "two.npy")
np.save(npy, emb)
with open(npy + ".paths.txt", "w") as f:
    f.write("\n".join(names) + "\n")
xy = os.path.join(TMP, "two.csv")
p = plot(npy, "--out", os.path.join(TMP, "two.png"), "--coords", xy)
if check(p.returncode == 0, f"two clusters: exit {p.returncode}: {p.stderr}"):
    try:
        import umap  # noqa: F401
        method = "umap"
    except ImportError:
        method = "pca"
    check(p.stdout.split(": ")[1].startswith(f"{method} of 30 embeddings, 2 identities"),
          f"two clusters: expected {method}, printed {p.stdout!r}")
    _, ids, pts = coords(xy)
    ids = np.array(ids)
    mid = {who: pts[ids == who].mean(axis=0) for who in ["alice", "bob"]}
    other = {"alice": "bob", "bob": "alice"}
    wrong = [i for i, who in enumerate(ids)
             if np.linalg.norm(pts[i] - mid[who]) >= np.linalg.norm(pts[i] - mid[other[who]])]
    check(not wrong, f"two clusters ({method}): points {wrong} lie nearer the other cluster")
    gap = np.linalg.norm(mid["alice"] - mid["bob"])
    within = max(np.linalg.norm(pts[ids == w] - mid[w], axis=1).max() for w in mid)
    print(f"two clusters ({method}): centres {gap:.3g} apart, every point within {within:.3g} of its own")

# ---- 3. bad input -----------------------------------------------------------------------
bad_paths = os.path.join(TMP, "short.npy")
np.save(bad_paths, emb)
with open(bad_paths + ".paths.txt", "w") as f:
    f.write("\n".join(names[:5]) + "\n")
lonely = os.path.join(TMP, "lonely.npy")
np.save(lonely, emb)
for what, args, name, message in [
        ("missing", [os.path.join(TMP, "none.h5")], "none.h5", "no such file"),
        ("another CSV", [xy], "two.csv", "not kao embed output"),
        ("unknown extension", [TOOL], "plot_embeddings.py", "unknown format '.py'"),
        ("no path list", [lonely], "lonely.npy.paths.txt", "cannot read the path list"),
        ("counts", [bad_paths], "short.npy", "30 embeddings but 5 paths")]:
    out = os.path.join(TMP, "bad.png")
    p = plot(*args, "--out", out)
    lines = p.stderr.strip().splitlines()
    check(p.returncode == 1 and len(lines) == 1 and lines[0].startswith("plot_embeddings: error: ") and name in lines[0]
          and message in lines[0], f"{what}: exit {p.returncode}: {p.stderr!r}")
    check(not os.path.exists(out), f"{what}: a plot was written")
p = plot(npy, "--out", os.path.join(TMP, "map.jpg"))
check(p.returncode == 1 and "map.jpg" in p.stderr and ".png" in p.stderr, f"--out map.jpg: {p.stderr!r}")
shutil.rmtree(TMP, ignore_errors=True)
finish("test_plot_embeddings")
