"""docs/deploy.md's examples against kao: tools/onnx_embed_example.py (and .c where onnxruntime's C
headers are installed) on a fresh export give kao's own numbers.

A tiny run (tests/train_common.py: 8 ORL identities, 48x48, 6 epochs) makes best.h5 with recorded
thresholds; kao export writes model.onnx. Then:
 - the example's preprocessing equals torchvision's Resize((H, W)) + ToTensor + Normalize(mean, std)
   on the PIL image bit for bit, for the metadata's size, mean and std and for others (64x56,
   mean = std = 0.5, BGR reversed);
 - its embeddings equal kao embed's within 1e-4 of their scale (BatchNorm is folded in the export;
   measured: about 1e-6);
 - the cosines of those embeddings differ from those of kao embed's by at most 2e-6 (measured:
   about 6e-8), and its printed per-pair cosines equal kao verify's (--threshold eer, the same
   pairs) within 2e-6 (both print 6 decimals; measured: one unit of the last digit at most), its decisions agree wherever the cosine
   is not within 2e-6 of the threshold, and its percentages equal kao verify's within 0.01;
 - the threshold it uses is the metadata's (kao.threshold, kao.threshold_eer, kao.threshold_far1e-3
   as the exact doubles written), and the percentage follows kao.score_formula: a copy of the
   model with other values there changes its output accordingly; "unknown" thresholds are refused;
 - kao export --size other than the trained size is refused without --force (docs/deploy.md's
   first trap);
 - tools/onnx_embed_example.c, compiled against onnxruntime_c_api.h ($KAO_ORT_INCLUDE, else
   /usr/include/onnxruntime, /usr/local/include/onnxruntime, /usr/include, /usr/local/include) and
   the Python wheel's libonnxruntime, prints the same pair lines as the Python example; skipped,
   and said so, where no header is installed (the onnxruntime wheel ships none).
Prints "N passed, N failed".
"""
import glob
import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
import torch
from PIL import Image
from torchvision import transforms

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kaotest import ORL, SOURCE_DIR, check, finish  # noqa: E402
import train_common as t  # noqa: E402
import onnx_embed_example as ex  # noqa: E402  (tools/, put on sys.path by kaotest)

EXAMPLE = os.path.join(SOURCE_DIR, "tools", "onnx_embed_example.py")
COS_TOL = 2e-6


def run_example(model, images, *args):
    p = subprocess.run([sys.executable, EXAMPLE, model, *images, *args], capture_output=True, text=True,
                       env=t.env())
    return p.returncode, p.stdout, p.stderr


def pair_lines(text, key=os.path.basename):
    """'a, b, True, 12.34%, 0.123456[, same]' lines -> {(key(a), key(b)): (decision, percentage, cosine)}."""
    out = {}
    for line in text.splitlines():
        f = line.split(", ")
        if len(f) >= 5 and f[2] in ("True", "False") and f[3].endswith("%"):
            out[tuple(sorted((key(f[0]), key(f[1]))))] = (f[2] == "True", float(f[3][:-1]), float(f[4]))
    return out


def header_field(text, name):
    for line in text.splitlines():
        if line.startswith(name + ": "):
            return line[len(name) + 2:]
    return None


def torchvision_input(path, h, w, mean, std):
    tf = transforms.Compose([transforms.Resize((h, w)), transforms.ToTensor(), transforms.Normalize(mean, std)])
    return tf(Image.open(path).convert("RGB")).numpy()


def with_metadata(src, dst, changes):
    m = onnx.load(src)
    for p in m.metadata_props:
        if p.key in changes:
            p.value = changes[p.key]
    onnx.save(m, dst)


def find_ort_header():
    dirs = [os.environ.get("KAO_ORT_INCLUDE", ""), "/usr/include/onnxruntime", "/usr/local/include/onnxruntime",
            "/usr/include", "/usr/local/include"]
    for d in dirs:
        if d and os.path.isfile(os.path.join(d, "onnxruntime_c_api.h")):
            return d
    return None


ws = t.Workspace()
try:
    root = ws.data("orl8", [f"s{i}" for i in range(1, 9)])
    cfg = ws.config("c.ini", root, threads=2)
    run = ws.path("run")
    t.kao("train", "--config", cfg, "--out", run, "--set", "train.epochs=6", check_exit=0)
    best = os.path.join(run, "best.h5")
    model = ws.path("model.onnx")
    code, out = t.kao("export", "--weights", best, "--out", model)
    check(code == 0, f"kao export: {out}")
    code, out = t.kao("export", "--weights", best, "--size", "64", "--out", ws.path("m64.onnx"))
    check(code != 0 and "trained at 48x48" in out and not os.path.exists(ws.path("m64.onnx")),
          f"kao export --size 64 of 48x48 weights without --force: exit {code}: {out}")
    md = {p.key: p.value for p in onnx.load(model).metadata_props}
    check(md.get("kao.input_size") == "48x48" and md.get("kao.threshold_eer", "unknown") != "unknown",
          f"metadata {md}")

    # Six face crops named <identity>_<n>.png in one folder (kao verify --layout names).
    pics = ws.path("pics")
    os.makedirs(pics)
    for ident, n in [(1, 1), (1, 2), (2, 1), (2, 5), (7, 3), (8, 4)]:
        shutil.copy(os.path.join(ORL, f"s{ident}", f"{n}.png"), os.path.join(pics, f"s{ident}_{n}.png"))
    images = sorted(glob.glob(os.path.join(pics, "*.png")))

    # Preprocessing: bit for bit torchvision's, for the metadata and for other values.
    for meta in (md, {"kao.input_size": "64x56", "kao.mean": "0.5,0.5,0.5", "kao.std": "0.5,0.5,0.5"},
                 {"kao.input_size": "112x112", "kao.mean": md["kao.mean"], "kao.std": md["kao.std"],
                  "kao.color_order": "BGR"}):
        h, w = ex.input_size(meta)
        mean = [float(v) for v in meta["kao.mean"].split(",")]
        std = [float(v) for v in meta["kao.std"].split(",")]
        for p in images[:3]:
            got = ex.preprocess(p, meta)
            want = torchvision_input(p, h, w, mean, std)
            if meta.get("kao.color_order") == "BGR":
                want = want[::-1]
            check(got.dtype == np.float32 and np.array_equal(got, want),
                  f"preprocess {os.path.basename(p)} {meta['kao.input_size']} {meta.get('kao.color_order', 'RGB')}: "
                  f"max diff {np.abs(got - want).max() if got.shape == want.shape else got.shape}")

    # The example against kao embed and kao verify.
    npy, raw = ws.path("e.npy"), ws.path("x.f32")
    code, ex_out, err = run_example(model, images, "--threshold", "eer", "--threads", "1", "--save-npy", npy,
                                    "--save-input", raw)
    check(code == 0, f"example: exit {code}: {err}")
    print(ex_out, end="")
    emb_file = ws.path("kao.h5")
    t.kao("embed", "--weights", best, "--quiet", *images, "--out", emb_file, check_exit=0)
    import h5py
    with h5py.File(emb_file, "r") as f:
        want = f["embeddings"][...]
    if os.path.exists(npy):
        got = np.load(npy)
        scale = float(np.abs(want).max())
        err = float(np.abs(got - want).max()) if got.shape == want.shape else float("inf")
        print(f"max |example - kao embed| / scale = {err / scale:.2e}")
        check(err <= 1e-4 * scale, f"embeddings: {err:.3g} > 1e-4 x {scale:.3g}")
        if got.shape == want.shape:
            d = max(abs(ex.cosine(got[i], got[j]) - ex.cosine(want[i], want[j]))
                    for i in range(len(got)) for j in range(i + 1, len(got)))
            print(f"max |cosine of example's - of kao embed's embeddings| = {d:.2g}")
            check(d <= COS_TOL, f"cosines of the embeddings differ by {d:.3g}")

    code, v_out = t.kao("verify", "--weights", best, "--threshold", "eer", "--layout", "names", "--quiet", pics)
    check(code == 0, f"kao verify: {v_out}")
    theirs, ours = pair_lines(v_out), pair_lines(ex_out)
    check(len(ours) == 15 and set(ours) == set(theirs), f"pairs: example {sorted(ours)}, kao verify {sorted(theirs)}")
    thr = float(md["kao.threshold_eer"])
    check(header_field(ex_out, "threshold") == f"{thr!r} (kao.threshold_eer)",
          f"threshold line {header_field(ex_out, 'threshold')!r}, metadata {md['kao.threshold_eer']!r}")
    worst = 0.0
    for k in set(ours) & set(theirs):
        (d1, p1, c1), (d2, p2, c2) = ours[k], theirs[k]
        worst = max(worst, abs(c1 - c2))
        check(abs(c1 - c2) <= COS_TOL, f"{k}: cosine {c1} (example) vs {c2} (kao verify)")
        check(d1 == d2 or abs(c1 - thr) <= COS_TOL, f"{k}: decision {d1} vs {d2} at {thr} (cosine {c1})")
        check(abs(p1 - p2) <= 0.01 + 1e-9, f"{k}: percentage {p1} vs {p2}")
    print(f"max |cosine example - kao verify| = {worst:.2g} over {len(ours)} pairs (6 decimals printed)")
    decisions = {d for d, _, _ in ours.values()}
    print(f"decisions at the EER threshold {thr}: {sorted(decisions)}")

    # Thresholds and formula come from the metadata.
    for choice, key in (("default", "kao.threshold"), ("far1e-3", "kao.threshold_far1e-3")):
        code, o, err = run_example(model, images[:2], "--threshold", choice)
        check(code == 0 and header_field(o, "threshold") == f"{float(md[key])!r} ({key})",
              f"--threshold {choice}: {header_field(o, 'threshold')!r}, metadata {md[key]!r}: {err}")
    odd = ws.path("odd.onnx")
    with_metadata(model, odd, {"kao.threshold": "0.25", "kao.score_formula": "-1*x^2 + 2*x + 3",
                               "signature": "changed signature"})
    code, o, err = run_example(odd, images)
    check(code == 0 and header_field(o, "signature") == "changed signature" and
          header_field(o, "threshold") == "0.25 (kao.threshold)", f"changed metadata: {o} {err}")
    for k, (d, p, c) in pair_lines(o).items():
        check(d == (c >= 0.25) and abs(p - round(-c * c + 2 * c + 3, 2)) <= 0.0051,
              f"{k}: decision {d} / percentage {p} do not follow the changed metadata (cosine {c})")
    unknown = ws.path("unknown.onnx")
    with_metadata(model, unknown, {"kao.threshold_eer": "unknown"})
    code, o, err = run_example(unknown, images[:2], "--threshold", "eer")
    check(code == 1 and "onnx_embed_example: error: metadata kao.threshold_eer is 'unknown'" in err,
          f"unknown threshold: exit {code}: {err}")

    # The C example, where onnxruntime's C header is installed.
    include = find_ort_header()
    if include is None:
        print("C example: skipped (no onnxruntime_c_api.h; set KAO_ORT_INCLUDE to its folder)")
    else:
        import onnxruntime
        capi = os.path.join(os.path.dirname(onnxruntime.__file__), "capi")
        libs = sorted(glob.glob(os.path.join(capi, "libonnxruntime.so.*")))
        libdir = ws.path("ortlib")
        os.makedirs(libdir)
        for name in ("libonnxruntime.so", "libonnxruntime.so.1"):
            os.symlink(libs[-1], os.path.join(libdir, name))
        exe = ws.path("onnx_embed_example")
        cc = subprocess.run(["cc", "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror",
                             os.path.join(SOURCE_DIR, "tools", "onnx_embed_example.c"), "-I", include,
                             "-L", libdir, "-lonnxruntime", "-lm", f"-Wl,-rpath,{libdir}", "-o", exe],
                            capture_output=True, text=True)
        check(cc.returncode == 0, f"cc onnx_embed_example.c: {cc.stderr}")
        if cc.returncode == 0:
            p = subprocess.run([exe, model, raw], capture_output=True, text=True)
            check(p.returncode == 0, f"C example: exit {p.returncode}: {p.stderr}")
            code, py_out, err = run_example(model, images, "--threads", "1")
            index = {os.path.basename(path): str(i) for i, path in enumerate(images)}
            c_lines, py_lines = pair_lines(p.stdout, key=str), pair_lines(py_out, key=lambda s: index[os.path.basename(s)])
            check(len(c_lines) == 15 and c_lines == py_lines, f"C example {c_lines} vs Python {py_lines}")
            check(header_field(p.stdout, "signature") == md["signature"], f"C signature: {p.stdout}")
            print(f"C example (header in {include}): {len(c_lines)} pair lines equal to the Python example's")
finally:
    ws.cleanup()
check(t.failures == 0, f"{t.failures} failed kao runs (messages above)")
finish("test_deploy_example")
