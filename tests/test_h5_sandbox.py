"""Every HDF5 file is read by libhdf5 in a child process first (src/h5sandbox.c).

libhdf5 1.10 crashes on some damaged files (bad frees, heap overflows, overlapping copies); files
from h5py, Keras and other tools carry no seal, and a seal proves nothing about intent (anyone can
seal a file: tools/kao_seal.py). Seeded mutations of a weights file's HDF5 metadata (bytes
flipped, runs overwritten, the file cut), half of them sealed afresh after the damage, go through
`kao info` and `kao embed`: each either reads (exit 0) or is refused with exactly one
"kao: error:" line naming the file (exit 1); none takes kao down with a signal, and a crash inside
libhdf5 is reported as such. Also: the copy reads exactly as the file does (kao info on a good
unsealed file equals its output on the sealed original); a dataset compressed with a filter kao
does not allow (HDF5's scale-offset) is refused by name; a file whose datasets are linked
thousands of times (its copy would be thousands of times larger) is refused; so is a dataset that
declares far more data than the file stores (an embeddings file of 2 × 2^28 floats with no data, a
checkpoint's arcface/W of 2^30 rows): before anything is allocated by that size.
Prints "N passed, N failed"; exit status 1 on any failure.
"""
import os
import random
import shutil
import sys
import tempfile

import h5py
import numpy as np
import timm
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kaotest import ORL, SOURCE_DIR, check, finish, kao  # noqa: E402
from convert_timm import randomise_bn, write_h5  # noqa: E402
import kao_seal  # noqa: E402

TMP = tempfile.mkdtemp(prefix="kao_test_sandbox_")
MUTANTS = 120

torch.manual_seed(0)
model = randomise_bn(timm.create_model("tf_efficientnetv2_b0", channel_multiplier=0.25, depth_multiplier=0.5,
                                       num_classes=8), 1)
sealed = os.path.join(TMP, "sealed.h5")
write_h5(sealed, model, "tf_efficientnetv2_b0", 0.25, 0.5)
data = bytearray(open(sealed, "rb").read())
data[:kao_seal.BLOCK] = bytes(kao_seal.BLOCK)  # a blank user block: no seal, as h5py's files
unsealed = os.path.join(TMP, "unsealed.h5")
open(unsealed, "wb").write(data)

def described(p, path):
    """kao info's lines but those about the file itself (its name, format and seal)."""
    return [line for line in p.stdout.splitlines() if line.split(":")[0] not in ("file", "format", "seal")]


a, b = kao("info", sealed), kao("info", unsealed)
check(a.returncode == 0 and b.returncode == 0 and described(a, sealed) == described(b, unsealed),
      f"the sandboxed copy reads as the sealed file: {a.stdout!r} / {b.stdout!r} {b.stderr!r}")

# The metadata: everything before the first tensor's data, where mutations reach libhdf5's parsers.
first_data = data.find(model.state_dict()["conv_stem.weight"].numpy().tobytes()[:64])
metadata_end = first_data if first_data > kao_seal.BLOCK else len(data) // 4
rng = random.Random(7)
image = os.path.join(ORL, "s1", "1.png")
outcomes = {"read": 0, "refused": 0, "libhdf5 crashed": 0}
for i in range(MUTANTS):
    m = bytearray(data)
    kind = i % 3
    if kind == 0:
        for _ in range(rng.randint(1, 8)):
            m[rng.randrange(kao_seal.BLOCK, metadata_end)] ^= 1 << rng.randrange(8)
    elif kind == 1:
        at = rng.randrange(kao_seal.BLOCK, metadata_end)
        m[at:at + 16] = bytes(rng.randrange(256) for _ in range(16))
    else:
        m = m[:rng.randrange(kao_seal.BLOCK, len(m))]
    path = os.path.join(TMP, "mutant.h5")
    open(path, "wb").write(m)
    if i % 4 >= 2:
        kao_seal.seal(path)  # the block is blank: the mutant becomes a "good" sealed file
    command = ("info", path) if i % 2 else ("embed", "--weights", path, "--size", "32", "--quiet", image, "--out",
                                            os.path.join(TMP, "e.h5"))
    p = kao(*command)
    lines = p.stderr.strip().splitlines()
    if p.returncode == 0:
        outcomes["read"] += 1
        continue
    ok = p.returncode == 1 and len(lines) == 1 and lines[0].startswith("kao: error: ") and path in lines[0]
    check(ok, f"mutant {i} (kao {command[0]}): exit {p.returncode}, stderr {p.stderr[-400:]!r}")
    outcomes["libhdf5 crashed" if "libhdf5 crashed" in p.stderr else "refused"] += 1
print(f"{MUTANTS} mutants of a weights file, half of them sealed: {outcomes}")
check(outcomes["refused"] + outcomes["libhdf5 crashed"] > MUTANTS // 2, f"most mutants are refused: {outcomes}")

# A filter whose decoder kao does not trust, and a copy that would explode.
filtered = os.path.join(TMP, "scaleoffset.h5")
with h5py.File(filtered, "w") as f:
    f.create_dataset("x", data=np.arange(64, dtype=np.float32), chunks=(64,), scaleoffset=2)
p = kao("info", filtered)
check(p.returncode == 1 and "uses HDF5 filter 6" in p.stderr and filtered in p.stderr,
      f"a scale-offset dataset is refused by name: {p.returncode} {p.stderr!r}")
links = os.path.join(TMP, "links.h5")
with h5py.File(links, "w") as f:
    d = f.create_dataset("x", data=np.zeros(1 << 18, np.float32))  # 1 MB
    for k in range(200):
        f[f"g{k}"] = d  # 200 hard links: a copy of 200 MB, for a 1 MB file
p = kao("info", links)
check(p.returncode == 1 and "contents come to more than" in p.stderr and links in p.stderr,
      f"a file whose copy would explode is refused: {p.returncode} {p.stderr!r}")

# Declared sizes that the file does not back: refused before anything is allocated by them.
hollow = os.path.join(TMP, "hollow_embeddings.h5")
with h5py.File(hollow, "w") as f:
    f.create_dataset("embeddings", shape=(2, 1 << 28), dtype=np.float32)  # 2 GiB declared, nothing stored
    f.create_dataset("paths", data=[b"s1/1.png", b"s1/2.png"], dtype=h5py.string_dtype())
p = kao("verify", "--embeddings", hollow)
check(p.returncode == 1 and "'embeddings' declares 2147483648 bytes but the file stores 0" in p.stderr,
      f"a hollow embeddings file is refused by its stored size: {p.returncode} {p.stderr!r}")
hollow_w = os.path.join(TMP, "hollow_arcface.h5")
shutil.copy(sealed, hollow_w)
with h5py.File(hollow_w, "r+") as f:
    f.create_dataset("arcface/W", shape=(1 << 30, 2), dtype=np.float32)
    f.create_dataset("arcface/classes", data=[b"a", b"b"], dtype=h5py.string_dtype())
kao_seal.seal(hollow_w)
p = kao("train", "--config", os.path.join(SOURCE_DIR, "configs", "demo.ini"), "--data", ORL, "--init", hollow_w,
        "--out", os.path.join(TMP, "run"), "--set", "train.epochs=2")
check(p.returncode == 1 and "'arcface/W' declares 8589934592 bytes but the file stores 0" in p.stderr,
      f"a hollow arcface/W is refused by its stored size: {p.returncode} {p.stderr!r}")

shutil.rmtree(TMP, ignore_errors=True)
finish("test_h5_sandbox")
