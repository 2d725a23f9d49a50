#!/usr/bin/env python3
"""Using a `kao export` ONNX model the way an application does: onnxruntime, Pillow and NumPy only.

Reads the model's metadata (`signature`, `kao.input_size`, `kao.mean`, `kao.std`,
`kao.color_order`, the thresholds and `kao.score_formula`), preprocesses each image as kao does
(PIL's convert('RGB'), PIL's bilinear resize to kao.input_size — what torchvision's
Resize((H, W)) does to a PIL image —, x/255, then (x - mean)/std in float32), runs the model,
and prints, for every pair of the images given, the cosine similarity, the same/different
decision at the chosen threshold and the percentage score, in the order of `kao verify`'s lines:

    image1, image2, True|False, <percentage>%, <cosine>

docs/deploy.md walks through it. Usage:

    python tools/onnx_embed_example.py face.onnx a.jpg b.jpg [c.jpg ...] [--threshold T]

--threshold: `default` (metadata kao.threshold, the original work's 0.4), `eer`
(kao.threshold_eer), `far1e-3` (kao.threshold_far1e-3) or a number. --save-npy F.npy writes the
raw embeddings (N, D), float32, in the order of the images; --save-input F.f32 the preprocessed
images (raw float32, N x 3 x H x W) for tools/onnx_embed_example.c. Exit status 1 with one
"onnx_embed_example: error:" line on bad input.
"""
import argparse
import re
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image


class InputError(Exception):
    pass


def load_metadata(session):
    """The model's metadata_props as a dict (onnxruntime's view of them)."""
    return dict(session.get_modelmeta().custom_metadata_map)


def floats(meta, key, n):
    """A comma-separated metadata value as n float32 numbers (kao writes numbers that float32 reads
    back exactly)."""
    try:
        v = np.array([np.float32(s) for s in meta[key].split(",")], dtype=np.float32)
    except (KeyError, ValueError):
        raise InputError(f"metadata {key} is {meta.get(key)!r}, expected {n} comma-separated numbers")
    if v.shape != (n,):
        raise InputError(f"metadata {key} is {meta[key]!r}, expected {n} numbers")
    return v


def input_size(meta):
    """kao.input_size 'HxW' as (H, W)."""
    m = re.fullmatch(r"(\d+)x(\d+)", meta.get("kao.input_size", ""))
    if not m:
        raise InputError(f"metadata kao.input_size is {meta.get('kao.input_size')!r}, expected HxW")
    return int(m.group(1)), int(m.group(2))


def score_formula(meta):
    """kao.score_formula 'a*x^2 + b*x + c' as a function of the cosine x."""
    text = meta.get("kao.score_formula", "")
    num = r"([-+]?\s*\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"
    m = re.fullmatch(rf"\s*{num}\s*\*\s*x\^2\s*{num}\s*\*\s*x\s*{num}\s*", text)
    if not m:
        raise InputError(f"metadata kao.score_formula is {text!r}, expected 'a*x^2 + b*x + c'")
    a, b, c = (float(g.replace(" ", "")) for g in m.groups())
    return lambda x: a * x * x + b * x + c


def threshold(meta, choice):
    """The cosine threshold: a number, or the one the metadata names."""
    key = {"default": "kao.threshold", "eer": "kao.threshold_eer", "far1e-3": "kao.threshold_far1e-3"}.get(choice)
    if key is None:
        try:
            return float(choice), "--threshold"
        except ValueError:
            raise InputError(f"--threshold {choice!r}: expected default, eer, far1e-3 or a number")
    try:
        return float(meta[key]), key
    except (KeyError, ValueError):
        raise InputError(f"metadata {key} is {meta.get(key)!r}: this model records no such threshold "
                         "(exported from weights that kao train did not make?)")


def preprocess(path, meta):
    """One image as the model's input (3, H, W) float32, exactly as kao embed prepares it."""
    h, w = input_size(meta)
    mean, std = floats(meta, "kao.mean", 3), floats(meta, "kao.std", 3)
    order = meta.get("kao.color_order", "RGB")
    if order not in ("RGB", "BGR"):
        raise InputError(f"metadata kao.color_order is {order!r}")
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
    except OSError as e:
        raise InputError(f"{path}: {e}")
    if im.size != (w, h):
        im = im.resize((w, h), Image.BILINEAR)  # PIL size is (width, height)
    x = np.asarray(im, dtype=np.float32) / np.float32(255)  # (H, W, 3), as ToTensor
    x = (x - mean) / std  # as Normalize, in float32
    if order == "BGR":
        x = x[:, :, ::-1]
    return np.ascontiguousarray(x.transpose(2, 0, 1))  # (3, H, W)


def cosine(a, b):
    """kao verify's cosine: in double, from the float32 embeddings, then rounded to float32."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(np.float32(a @ b / (np.sqrt(a @ a) * np.sqrt(b @ b))))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="ONNX file written by kao export")
    ap.add_argument("images", nargs="+", help="PNG or JPEG face crops (at least two)")
    ap.add_argument("--threshold", default="default", help="default | eer | far1e-3 | a number")
    ap.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: its default)")
    ap.add_argument("--save-npy", metavar="F.npy", help="write the raw embeddings (N, D) float32")
    ap.add_argument("--save-input", metavar="F.f32",
                    help="write the preprocessed images, raw float32 N x 3 x H x W (tools/onnx_embed_example.c)")
    args = ap.parse_args(argv)
    try:
        if len(args.images) < 2:
            raise InputError("give at least two images")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = args.threads
        try:
            session = ort.InferenceSession(args.model, opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise InputError(f"{args.model}: {e}")
        meta = load_metadata(session)
        h, w = input_size(meta)
        inp = session.get_inputs()[0]
        if list(inp.shape[1:]) != [3, h, w]:
            raise InputError(f"{args.model}: input {inp.name} is {inp.shape}, metadata says 3x{h}x{w}")
        thr, thr_key = threshold(meta, args.threshold)
        percent = score_formula(meta)
        print(f"signature: {meta.get('signature', '(none)')}")
        print(f"input: {inp.name} 1x3x{h}x{w} {meta.get('kao.color_order', 'RGB')}, "
              f"mean {meta.get('kao.mean')}, std {meta.get('kao.std')}")
        print(f"threshold: {thr!r} ({thr_key})")
        print(f"score formula: {meta.get('kao.score_formula')}")

        x = np.stack([preprocess(p, meta) for p in args.images])
        if args.save_input:
            x.astype(np.float32).tofile(args.save_input)
        out = session.get_outputs()[0].name
        emb = np.concatenate([session.run([out], {inp.name: x[i:i + 1]})[0] for i in range(len(x))])
        if args.save_npy:
            np.save(args.save_npy, emb.astype(np.float32))
        for i in range(len(args.images)):
            for j in range(i + 1, len(args.images)):
                s = cosine(emb[i], emb[j])
                print(f"{args.images[i]}, {args.images[j]}, {s >= thr}, {percent(s):.2f}%, {s:.6f}")
    except InputError as e:
        print(f"onnx_embed_example: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
