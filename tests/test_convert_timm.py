"""timm -> HDF5 (tools/convert_timm.py) -> kao (tests/weights_copy_tool: probe, strict load, save)
-> HDF5 -> timm: the state_dict comes back bit-identical, including BatchNorm statistics and
num_batches_tracked that two training-mode forward passes changed. Also checks that the two HDF5
files match dataset by dataset (names, order, types, values, attributes), that `to-h5 --random`
is timm's seeded initialisation, that `check` loads a file, that `to-h5 --pretrained` with an
empty cache fails with a clear message instead of downloading, and that `--state-dict` reads
safetensors and wrapped or DDP-prefixed checkpoints (a truncated one: one line naming it). The seal (src/h5seal.c,
tools/kao_seal.py): each side's files carry one the other accepts, and each side refuses a copy
with one damaged byte.

Run by ctest with KAO_SOURCE_DIR / KAO_BINARY_DIR set; prints "N passed, N failed".
"""
import os
import shutil
import tempfile

TMP = tempfile.mkdtemp(prefix="kao_test_convert_timm_")
# An empty cache and no network access: --pretrained must fail cleanly. Set before any import
# of huggingface_hub, which reads them once.
os.environ["HF_HOME"] = os.path.join(TMP, "hf")
os.environ["TORCH_HOME"] = os.path.join(TMP, "torch")
os.environ["HF_HUB_OFFLINE"] = "1"

import contextlib  # noqa: E402
import io  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kaotest import BINARY_DIR, check, finish  # noqa: E402
import convert_timm as convert  # noqa: E402  (tools/, on the path through kaotest)
import kao_seal  # noqa: E402

TOOL = os.path.join(BINARY_DIR, "tests", "weights_copy_tool")


def run_convert(*argv):
    """convert_timm.main in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = convert.main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def path(name):
    return os.path.join(TMP, name)


def same_state_dicts(a, b, what):
    check(list(a) == list(b), f"{what}: keys differ")
    for key in a:
        if key not in b:
            continue
        x, y = a[key], b[key]
        check(x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y),
              f"{what}: {key} differs ({x.dtype} {tuple(x.shape)} vs {y.dtype} {tuple(y.shape)})")


def same_h5(p, q):
    with h5py.File(p, "r") as f, h5py.File(q, "r") as g:
        check(list(f.keys()) == list(g.keys()), "h5 files list different datasets or orders")
        for key in f:
            if key in g:
                check(f[key].dtype == g[key].dtype and f[key].shape == g[key].shape and
                      np.array_equal(f[key][()], g[key][()]), f"h5 dataset {key} differs")
        for name in ("format", "format_version", "architecture", "width_mult", "depth_mult", "embedding_dim"):
            check(name in f.attrs and name in g.attrs and f.attrs[name] == g.attrs[name],
                  f"attribute {name}: {f.attrs.get(name)!r} vs {g.attrs.get(name)!r}")


def copy_with_kao(src, dst):
    r = subprocess.run([TOOL, src, dst], capture_output=True, text=True)
    check(r.returncode == 0, f"weights_copy_tool {src}: {r.stderr.strip()}")
    return r.stdout


def damaged_copy(src, dst):
    """dst: src with one byte of its last dataset's data changed."""
    data = bytearray(open(src, "rb").read())
    with h5py.File(src, "r") as f:
        last = list(f.keys())[-2]  # the classifier's weight (the last key is its bias)
        offset = f[last].id.get_offset()
    data[offset + 2] ^= 0x10
    open(dst, "wb").write(bytes(data))


def check_seals(python_written, kao_written):
    """Both writers seal; both readers check; both refuse one damaged byte that HDF5 would load."""
    check(open(python_written, "rb").read(11) == b"kao-seal 1\n", "convert_timm.py's file has no seal")
    check(kao_seal.check(kao_written) is None, f"kao's seal, as Python reads it: {kao_seal.check(kao_written)}")
    r = subprocess.run([os.path.join(BINARY_DIR, "kao"), "info", python_written], capture_output=True, text=True)
    check(r.returncode == 0 and "seal:          length and CRC-32 match" in r.stdout,
          f"kao info on convert_timm.py's file: {r.stdout[-300:]} {r.stderr.strip()}")
    for name, src in (("py_damaged.h5", python_written), ("kao_damaged.h5", kao_written)):
        damaged_copy(src, path(name))
        with h5py.File(path(name), "r"):  # HDF5 itself opens it without complaint
            pass
        problem = kao_seal.check(path(name))
        check(problem is not None and problem.startswith("damaged: CRC-32"), f"{name}: kao_seal.check says {problem}")
        rc, _, err = run_convert("to-timm", path(name), "--out", path("x.pth"))
        check(rc == 1 and f"{name}: damaged: CRC-32" in err, f"to-timm {name}: rc {rc}, {err.strip()}")
        r = subprocess.run([TOOL, path(name), path("y.h5")], capture_output=True, text=True)
        check(r.returncode != 0 and f"{name}: damaged: CRC-32" in r.stderr, f"kao on {name}: {r.stderr.strip()}")
    # a change made on purpose is accepted once resealed, by kao and by Python
    kao = os.path.join(BINARY_DIR, "kao")
    r = subprocess.run([kao, "info", "--reseal", path("py_damaged.h5")], capture_output=True, text=True)
    check(r.returncode == 0 and "sealed for its present contents" in r.stdout, f"kao info --reseal: {r.stderr.strip()}")
    r = subprocess.run([kao, "info", path("kao_damaged.h5"), "--reseal", path("py_damaged.h5")], capture_output=True,
                       text=True)
    check(r.returncode == 2 and "--reseal takes one file and nothing else" in r.stderr,
          f"--reseal after another argument: {r.returncode} {r.stderr.strip()}")
    r = subprocess.run([kao, "info", path("py_damaged.h5")], capture_output=True, text=True)
    check(r.returncode == 0 and "seal:          length and CRC-32 match" in r.stdout,
          f"kao info after --reseal: {r.stdout[-200:]} {r.stderr.strip()}")
    check(kao_seal.check(path("py_damaged.h5")) is None, "the resealed file, as Python reads it")


def main():
    variant, cm, dm, classes = "tf_efficientnetv2_b0", 0.25, 0.5, 16
    # A tiny model whose BN statistics and counters have moved away from their initial values.
    torch.manual_seed(0)
    model = convert.build_timm(variant, cm, dm, classes)
    model.train()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
        for _ in range(2):
            model(torch.randn(2, 3, 32, 32))
    original = model.state_dict()
    check(original["bn2.num_batches_tracked"].item() == 2, "training forwards counted")
    torch.save(original, path("original.pth"))

    rc, out, err = run_convert("to-h5", "--model", variant, "--channel-multiplier", cm, "--depth-multiplier", dm,
                               "--state-dict", path("original.pth"), "--out", path("a.h5"))
    check(rc == 0, f"to-h5 --state-dict: {err.strip()}")
    print(out.strip())
    print(copy_with_kao(path("a.h5"), path("b.h5")).strip())
    rc, out, err = run_convert("to-timm", path("b.h5"), "--out", path("b.pth"))
    check(rc == 0, f"to-timm: {err.strip()}")
    same_state_dicts(original, torch.load(path("b.pth"), weights_only=True), "timm -> kao -> timm")
    same_h5(path("a.h5"), path("b.h5"))
    with h5py.File(path("b.h5"), "r") as f:
        check(f.attrs["format"] == "kao-weights" and f.attrs["architecture"] == variant and
              f.attrs["width_mult"] == cm and f.attrs["depth_mult"] == dm and f.attrs["embedding_dim"] == classes,
              f"kao's attributes: {dict(f.attrs)}")
        check(f["bn1.num_batches_tracked"].shape == () and f["bn1.num_batches_tracked"].dtype == np.int64,
              "counters are int64 scalars")

    check_seals(path("a.h5"), path("b.h5"))

    rc, out, err = run_convert("check", path("b.h5"))
    check(rc == 0 and "strict=True) ok" in out, f"check: {out.strip()} {err.strip()}")
    print(out.strip())

    # --random is timm's initialisation under torch.manual_seed(seed); variant's own multipliers
    # are used when none are given (b1: depth 1.1), and kao reads the file from its attributes.
    rc, out, err = run_convert("to-h5", "--model", variant, "--channel-multiplier", cm, "--depth-multiplier", dm,
                               "--random", "--seed", 5, "--num-classes", classes, "--out", path("r.h5"))
    check(rc == 0, f"to-h5 --random: {err.strip()}")
    torch.manual_seed(5)
    expected = convert.build_timm(variant, cm, dm, classes).state_dict()
    copy_with_kao(path("r.h5"), path("r2.h5"))
    rc, _, err = run_convert("to-timm", path("r2.h5"), "--out", path("r.pth"))
    check(rc == 0, f"to-timm r2.h5: {err.strip()}")
    same_state_dicts(expected, torch.load(path("r.pth"), weights_only=True), "--random --seed 5")

    # Nothing cached, nothing downloaded: a clear error.
    rc, out, err = run_convert("to-h5", "--model", variant, "--pretrained", "--out", path("p.h5"))
    check(rc == 1 and "not in the local cache" in err and not os.path.exists(path("p.h5")),
          f"--pretrained without a cache: rc {rc}, {err.strip()}")
    # A state_dict of another shape is rejected before anything is written.
    rc, out, err = run_convert("to-h5", "--model", variant, "--state-dict", path("original.pth"), "--out", path("x.h5"))
    check(rc == 1 and "does not fit" in err and not os.path.exists(path("x.h5")),
          f"wrong state_dict: rc {rc}, {err.strip()[:200]}")
    check_checkpoint_layouts(original, variant, cm, dm)


def check_checkpoint_layouts(original, variant, cm, dm):
    """--state-dict reads what timm's load_state_dict reads (safetensors; "state_dict", "model" and
    "model_state_dict" wrappers; DDP's "module." prefix), and refuses a damaged file in one line."""
    from safetensors.torch import save_file
    save_file(original, path("sd.safetensors"))
    torch.save({"state_dict": original, "epoch": 3}, path("wrapped.pth"))
    torch.save({"model_state_dict": {f"module.{k}": v for k, v in original.items()}, "optimizer_state_dict": {}},
               path("tutorial.pth"))
    torch.save({"model": {f"module.{k}": v for k, v in original.items()}}, path("ddp.pth"))
    for name in ("sd.safetensors", "wrapped.pth", "tutorial.pth", "ddp.pth"):
        rc, out, err = run_convert("to-h5", "--model", variant, "--channel-multiplier", cm, "--depth-multiplier", dm,
                                   "--state-dict", path(name), "--out", path(name + ".h5"))
        if check(rc == 0, f"to-h5 --state-dict {name}: {err.strip()[:300]}"):
            run_convert("to-timm", path(name + ".h5"), "--out", path(name + ".back.pth"))
            same_state_dicts(original, torch.load(path(name + ".back.pth"), weights_only=True), f"{name} -> kao")
    data = open(path("sd.safetensors"), "rb").read()
    with open(path("cut.safetensors"), "wb") as f:
        f.write(data[: len(data) // 2])
    rc, out, err = run_convert("to-h5", "--model", variant, "--state-dict", path("cut.safetensors"), "--out",
                               path("cut.h5"))
    check(rc == 1 and err.startswith("convert_timm: error: ") and "cut.safetensors" in err and
          err.count("\n") == 1 and not os.path.exists(path("cut.h5")),
          f"truncated safetensors: one line naming it: rc {rc}, {err!r}")


try:
    main()
finally:
    shutil.rmtree(TMP, ignore_errors=True)
finish("test_convert_timm")
