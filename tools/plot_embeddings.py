#!/usr/bin/env python3
"""A 2-D map of `kao embed` output, one colour per identity, as the original work's UMAP plots.

Reads the embeddings in any format kao embed writes (embeddings.h): FILE.h5 / .hdf5 (datasets
"embeddings" and "paths"), FILE.npy with FILE.npy.paths.txt, or FILE.csv (path,e0,...). Each
image's identity is the folder it is in (ROOT/<identity>/<image>, as kao train reads a data set).
The embeddings are L2-normalised first (ArcFace compares them by cosine), then projected to 2-D
with UMAP (umap-learn, seeded with --seed) when it is installed and there are at least 10 of them,
else with PCA (--method picks one); the plot's title names the projection used. The plot's own
words are lower case; identities are named as their folders are.

Writes the scatter plot as PNG (--out), as SVG too with --svg (same name, .svg), and with
--coords FILE.csv the 2-D points (path,identity,x,y) for other tools. Bad input gives one
"plot_embeddings: error:" line naming the file and exit status 1.

Usage: python tools/plot_embeddings.py EMBEDDINGS --out MAP.png [--svg] [--coords XY.csv]
       [--method auto|umap|pca] [--seed 0] [--title TEXT]
"""
import argparse
import csv
import os
import sys

import numpy as np

UMAP_MIN_POINTS = 10  # UMAP's neighbourhood graph means little on fewer points


class InputError(Exception):
    pass


def read_paths_txt(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().splitlines()
    except OSError as e:
        raise InputError(f"{path}: cannot read the path list: {e.strerror}")


def read_embeddings(path):
    """(N, E) float64 embeddings and their N image paths, from a kao embed output file."""
    ext = os.path.splitext(path)[1].lower()
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    try:
        if ext in (".h5", ".hdf5"):
            import h5py
            with h5py.File(path, "r") as f:
                if "embeddings" not in f or "paths" not in f:
                    raise InputError(f"{path}: not kao embed output (needs datasets 'embeddings' and 'paths')")
                emb = f["embeddings"][...]
                paths = [p.decode("utf-8") if isinstance(p, bytes) else str(p) for p in f["paths"][...]]
        elif ext == ".npy":
            emb = np.load(path, allow_pickle=False)
            paths = read_paths_txt(path + ".paths.txt")
        elif ext == ".csv":
            with open(path, newline="", encoding="utf-8") as f:
                rows = list(csv.reader(f))
            if not rows or rows[0] != ["path"] + [f"e{i}" for i in range(len(rows[0]) - 1)]:
                raise InputError(f"{path}: not kao embed output (its header is path,e0,e1,...)")
            paths = [r[0] for r in rows[1:]]
            if any(len(r) != len(rows[0]) for r in rows[1:]):
                raise InputError(f"{path}: rows of different lengths")
            emb = np.array([[float(v) for v in r[1:]] for r in rows[1:]]).reshape(len(paths), len(rows[0]) - 1)
        else:
            raise InputError(f"{path}: unknown format '{ext}' (kao embed writes .h5, .hdf5, .npy or .csv)")
    except InputError:
        raise
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read it: {e}")
    emb = np.asarray(emb, dtype=np.float64)
    if emb.ndim != 2 or emb.shape[1] < 2:
        raise InputError(f"{path}: embeddings of shape {emb.shape}, expected (images, dimensions >= 2)")
    if emb.shape[0] != len(paths):
        raise InputError(f"{path}: {emb.shape[0]} embeddings but {len(paths)} paths")
    if emb.shape[0] < 2:
        raise InputError(f"{path}: {emb.shape[0]} embedding(s); a map needs at least 2")
    if not np.isfinite(emb).all():
        raise InputError(f"{path}: embeddings that are not finite")
    return emb, paths


def identity_of(path):
    """The identity folder of an image path: its parent folder's name."""
    return os.path.basename(os.path.dirname(path.replace("\\", "/"))) or "(none)"


def normalise(emb):
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    return emb / np.where(norms > 0, norms, 1)


def pca_2d(x):
    """The first two principal components; each axis's sign fixed (its largest loading positive) so
    the map does not flip between runs or machines."""
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    axes = vt[:2]
    if axes.shape[0] < 2:  # one dimension of spread at most: a flat second axis
        axes = np.vstack([axes, np.zeros_like(axes[:1])])
    signs = np.sign(axes[np.arange(2), np.abs(axes).argmax(axis=1)])
    return centred @ (axes * np.where(signs == 0, 1, signs)[:, None]).T


def umap_available():
    try:
        import umap  # noqa: F401
        return True
    except ImportError:
        return False


def project(x, method, seed):
    """(N, 2) points and the projection's name ("umap" or "pca")."""
    if method == "auto":
        method = "umap" if umap_available() and len(x) >= UMAP_MIN_POINTS else "pca"
    if method == "pca":
        return pca_2d(x), "pca"
    import umap
    reducer = umap.UMAP(n_components=2, n_neighbors=min(15, len(x) - 1), random_state=seed)
    return reducer.fit_transform(x), "umap"


def plot(points, identities, title, out, svg):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = sorted(set(identities))
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    markers = "os^Dv<>pPX*h"  # a colour map's colours repeat past 20 identities: markers tell them apart
    fig, ax = plt.subplots(figsize=(7, 6), dpi=120)
    labels = np.array(identities)
    for i, name in enumerate(names):
        sel = labels == name
        ax.scatter(points[sel, 0], points[sel, 1], s=18, color=cmap(i % cmap.N),
                   marker=markers[(i // cmap.N) % len(markers)], label=name)
    ax.set_title(title)
    ax.set_xlabel("dimension 1")
    ax.set_ylabel("dimension 2")
    if len(names) <= 40:
        ax.legend(title="identity", fontsize=7, title_fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5),
                  ncol=1 if len(names) <= 20 else 2)
    fig.tight_layout()
    fig.savefig(out)
    if svg:
        fig.savefig(os.path.splitext(out)[0] + ".svg")
    plt.close(fig)


def write_coords(path, paths, identities, points):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path", "identity", "x", "y"])
        for p, ident, (x, y) in zip(paths, identities, points):
            w.writerow([p, ident, f"{x:.9g}", f"{y:.9g}"])


def main(argv=None):
    ap = argparse.ArgumentParser(description="2-D map of kao embed output, one colour per identity.")
    ap.add_argument("embeddings", help="kao embed output: .h5, .hdf5, .npy (+ .npy.paths.txt) or .csv")
    ap.add_argument("--out", required=True, help="the plot, a .png file")
    ap.add_argument("--svg", action="store_true", help="also write the plot as SVG (the --out name, .svg)")
    ap.add_argument("--coords", help="also write the 2-D points as CSV: path,identity,x,y")
    ap.add_argument("--method", choices=["auto", "umap", "pca"], default="auto",
                    help=f"projection: auto (default) is umap when umap-learn is installed and there are at least "
                         f"{UMAP_MIN_POINTS} embeddings, else pca")
    ap.add_argument("--seed", type=int, default=0, help="UMAP's random seed (PCA has none)")
    ap.add_argument("--title", help="the plot's title (default: the input's name, the projection and the counts)")
    a = ap.parse_args(argv)
    try:
        if not a.out.lower().endswith(".png"):
            raise InputError(f"{a.out}: the plot is written as PNG: name it .png")
        if a.method == "umap" and not umap_available():
            raise InputError("--method umap needs umap-learn (pip install umap-learn)")
        emb, paths = read_embeddings(a.embeddings)
        identities = [identity_of(p) for p in paths]
        points, used = project(normalise(emb), a.method, a.seed)
        n_ids = len(set(identities))
        title = a.title or (f"{used} of {len(paths)} embeddings, {n_ids} identit{'y' if n_ids == 1 else 'ies'} "
                            f"({os.path.basename(a.embeddings)})")
        plot(points, identities, title, a.out, a.svg)
        if a.coords:
            write_coords(a.coords, paths, identities, points)
    except InputError as e:
        print(f"plot_embeddings: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"plot_embeddings: error: {e.filename}: {e.strerror}", file=sys.stderr)
        return 1
    print(f"{a.out}: {used} of {len(paths)} embeddings, {n_ids} identities")
    return 0


if __name__ == "__main__":
    sys.exit(main())
