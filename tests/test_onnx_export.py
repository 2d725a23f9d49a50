"""ONNX export against timm and onnxruntime.

Builds timm models with non-trivial BatchNorm statistics, writes their weights in kao's HDF5
layout (tools/convert_timm.py's write_h5), exports them with kao's `export` command (driven through
tests/onnx_export_tool, which runs the same kao_cmd_export as `kao export`), and checks:
  - onnx.checker.check_model(full_check=True) accepts the file (opset 13 and 17);
  - onnxruntime's output equals timm's eval output: |ort - timm| <= 1e-4 · max|timm| for every
    element, at batch 1 and 7, for odd/non-square (65×71) and even (64×64) input sizes, with and
    without L2 normalisation, and for a full-size tf_efficientnetv2_b0 at 224;
  - the metadata is present and right;
  - `--check` accepts the good file and rejects (non-zero exit) a truncated copy, garbage and an
    empty file; an output path in a missing folder is an error and writes nothing.

Run by ctest with KAO_SOURCE_DIR / KAO_BINARY_DIR set; prints "N passed, N failed".
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
import timm
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kaotest import BINARY_DIR, check, finish  # noqa: E402
from convert_timm import randomise_bn, write_h5  # noqa: E402

TOOL = os.path.join(BINARY_DIR, "tests", "onnx_export_tool")
REL_TOL = 1e-4


def build_timm(variant, width, depth, emb, seed):
    torch.manual_seed(seed)
    model = timm.create_model(variant, channel_multiplier=width, depth_multiplier=depth, num_classes=emb)
    # Non-trivial BN statistics and affine parameters, so that a wrong BN fold cannot pass.
    randomise_bn(model, seed + 1, mean_std=0.2, var_min=0.5, var_range=1.0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.num_batches_tracked.fill_(7)
    return model.eval()


def run_tool(*args):
    return subprocess.run([TOOL, *args], capture_output=True, text=True)


def export(weights, out, *args):
    t0 = time.time()
    r = run_tool("--weights", weights, "--out", out, *args)
    seconds = time.time() - t0
    check(r.returncode == 0, f"export {out} {args}: exit {r.returncode}: {r.stderr.strip()}")
    return seconds


def compare(onnx_path, model, h, w, batches, normalize, what):
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(h * 1000 + w)
    for batch in batches:
        x = rng.standard_normal((batch, 3, h, w), dtype=np.float32)
        with torch.no_grad():
            want = model(torch.from_numpy(x))
            if normalize:
                want = F.normalize(want, dim=1)
        want = want.numpy()
        got = session.run(["embedding"], {"input": x})[0]
        scale = float(np.abs(want).max())
        err = float(np.abs(got - want).max()) if got.shape == want.shape else float("inf")
        print(f"  {what} batch {batch}: max|ort - timm| = {err:.3g}, max|timm| = {scale:.3g}")
        check(got.shape == want.shape, f"{what} batch {batch}: shape {got.shape}, expected {want.shape}")
        check(err <= REL_TOL * scale, f"{what} batch {batch}: max error {err:.3g} > {REL_TOL} * {scale:.3g}")


def onnx_valid(path, what):
    try:
        onnx.checker.check_model(onnx.load(path), full_check=True)
        check(True, what)
    except Exception as e:  # the checker raises its own ValidationError / InferenceError types
        check(False, f"{what}: onnx.checker: {e}")


def metadata(path):
    return {p.key: p.value for p in onnx.load(path).metadata_props}


def main():
    tmp = tempfile.mkdtemp(prefix="kao_onnx_")
    try:
        tiny = build_timm("tf_efficientnetv2_b0", 0.25, 0.5, 32, seed=5)
        weights = os.path.join(tmp, "tiny.h5")
        write_h5(weights, tiny, "tf_efficientnetv2_b0", 0.25, 0.5)

        # Odd and non-square input, opset 13, raw embeddings.
        odd = os.path.join(tmp, "odd.onnx")
        export(weights, odd, "--size", "65x71", "--num-identities", "40", "--split-hash", "abc123")
        onnx_valid(odd, "odd opset 13 checker")
        m = onnx.load(odd)
        check(m.ir_version == 7 and [(o.domain, o.version) for o in m.opset_import] == [("", 13)],
              f"odd: ir_version {m.ir_version}, opsets {m.opset_import}")
        check(m.producer_name == "kao", f"producer {m.producer_name}")
        check(not any(n.op_type == "BatchNormalization" for n in m.graph.node), "BN folded")
        dims = [d.dim_param or d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
        check(m.graph.input[0].name == "input" and dims == ["batch", 3, 65, 71], f"input {dims}")
        dims = [d.dim_param or d.dim_value for d in m.graph.output[0].type.tensor_type.shape.dim]
        check(m.graph.output[0].name == "embedding" and dims == ["batch", 32], f"output {dims}")
        compare(odd, tiny, 65, 71, [1, 7], False, "tiny 65x71")

        md = metadata(odd)
        want = {
            "kao.architecture": "tf_efficientnetv2_b0", "kao.width_mult": "0.25", "kao.depth_mult": "0.5",
            "kao.input_size": "65x71", "kao.mean": "0.485,0.456,0.406", "kao.std": "0.229,0.224,0.225",
            "kao.color_order": "RGB", "kao.layout": "NCHW", "kao.embedding_dim": "32",
            "kao.normalized": "false", "kao.threshold": "0.4",
            "kao.threshold_eer": "unknown", "kao.threshold_far1e-3": "unknown",  # not from kao train
            "kao.score_formula": "-23.71*x^2 + 49.98*x + 73.69", "kao.num_identities": "40",
            "kao.split_hash": "abc123",
        }
        for k, v in want.items():
            check(md.get(k) == v, f"metadata {k} = {md.get(k)!r}, expected {v!r}")
        check(md.get("signature", "").startswith("tf_efficientnetv2_b0 face embedding, exported by kao "),
              f"signature {md.get('signature')!r}")
        version = md.get("kao.version", "")
        check(version != "" and md["signature"].endswith(version) and m.producer_version == version,
              f"version {version!r}")
        stamp = md.get("kao.export_time", "")
        try:
            t = time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
            check(abs(t - time.time()) < 600, f"export_time {stamp} is not now")
        except ValueError:
            check(False, f"export_time {stamp!r} is not UTC ISO-8601")

        # Even input: stride-2 convs pad only after (TF same), opset 13.
        even = os.path.join(tmp, "even.onnx")
        export(weights, even, "--size", "64")
        onnx_valid(even, "even opset 13 checker")
        compare(even, tiny, 64, 64, [1, 7], False, "tiny 64x64")
        md = metadata(even)
        check(md.get("kao.num_identities") == "unknown" and md.get("kao.split_hash") == "unknown",
              "unknown num_identities / split_hash")

        # Opset 17, L2-normalised, own signature.
        norm = os.path.join(tmp, "norm17.onnx")
        export(weights, norm, "--size", "67", "--opset", "17", "--normalize", "--signature", "ORL test model")
        onnx_valid(norm, "opset 17 checker")
        m = onnx.load(norm)
        check(m.ir_version == 8 and m.opset_import[0].version == 17, f"opset 17: ir {m.ir_version}")
        check(m.graph.node[-1].op_type == "LpNormalization", "LpNormalization last")
        md = metadata(norm)
        check(md.get("signature") == "ORL test model" and md.get("kao.normalized") == "true",
              f"signature {md.get('signature')!r}, normalized {md.get('kao.normalized')!r}")
        compare(norm, tiny, 67, 67, [1, 7], True, "tiny 67x67 normalized")

        # The architecture named on the command line instead of read from the file.
        named = os.path.join(tmp, "named.onnx")
        export(weights, named, "--size", "64", "--model", "tf_efficientnetv2_b0", "--width-mult", "0.25",
               "--depth-mult", "0.5")
        compare(named, tiny, 64, 64, [2], False, "tiny 64x64 --model")
        r = run_tool("--weights", weights, "--out", named + "2", "--model", "tf_efficientnetv2_b0")
        check(r.returncode != 0 and "conv_stem.weight" in r.stderr and not os.path.exists(named + "2"),
              f"wrong multipliers: {r.returncode} {r.stderr!r}")

        # --check: the good file passes and prints; broken files fail with a message.
        r = run_tool("--check", odd)
        check(r.returncode == 0 and "input input: float32 [batch, 3, 65, 71]" in r.stdout
              and "output embedding: float32 [batch, 32]" in r.stdout
              and "kao.split_hash = abc123" in r.stdout, f"--check good: {r.returncode} {r.stdout} {r.stderr}")
        data = open(odd, "rb").read()
        broken = {
            "truncated": data[: len(data) // 2],
            "cut in the metadata": data[: data.rfind(b"kao.export_time") - 4],
            "garbage": np.random.default_rng(3).integers(0, 256, 5000, dtype=np.uint8).tobytes(),
            "empty": b"",
            "a name that is not UTF-8": data.replace(b"conv_stem", b"conv\xffstem", 1),
        }
        for what, content in broken.items():
            path = os.path.join(tmp, "broken.onnx")
            open(path, "wb").write(content)
            r = run_tool("--check", path)
            print(f"  --check {what}: exit {r.returncode}: {r.stderr.strip()}")
            check(r.returncode != 0 and "not a valid" in r.stderr and "broken.onnx" in r.stderr,
                  f"--check {what}: exit {r.returncode}, stderr {r.stderr!r}")
            if "UTF-8" in what:
                check("is not UTF-8 text" in r.stderr, f"--check of a name that is not UTF-8: {r.stderr!r}")

        # Output folder missing: an error naming it, nothing written.
        missing = os.path.join(tmp, "no_such_dir", "x.onnx")
        r = run_tool("--weights", weights, "--out", missing)
        check(r.returncode != 0 and "no_such_dir" in r.stderr, f"missing folder: {r.returncode} {r.stderr!r}")
        check(not os.path.exists(os.path.dirname(missing)), "missing folder created")
        check(not any(".tmp." in f for f in os.listdir(tmp)), f"temp files left: {os.listdir(tmp)}")

        # Full-size tf_efficientnetv2_b0 (random weights) at 224.
        b0 = build_timm("tf_efficientnetv2_b0", 1.0, 1.0, 512, seed=11)
        weights = os.path.join(tmp, "b0.h5")
        write_h5(weights, b0, "tf_efficientnetv2_b0", 1.0, 1.0)
        path = os.path.join(tmp, "b0.onnx")
        seconds = export(weights, path)
        print(f"  b0 224: export {seconds:.2f} s (with loading), {os.path.getsize(path) / 1e6:.1f} MB")
        onnx_valid(path, "b0 checker")
        compare(path, b0, 224, 224, [1], False, "b0 224x224")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    finish("test_onnx_export")


if __name__ == "__main__":
    main()
