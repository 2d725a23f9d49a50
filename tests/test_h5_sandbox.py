"""HDF5 files without kao's seal are read by libhdf5 in a child process (src/h5sandbox.c).

libhdf5 1.10 crashes on some damaged files (bad frees, heap overflows, overlapping copies), and
files from h5py, Keras and other tools carry no seal. Seeded mutations of an unsealed weights
file's HDF5 metadata (bytes flipped, runs overwritten, the file cut) go through `kao info` and
`kao embed`: each either reads (exit 0) or is refused with exactly one "kao: error:" line naming
the file (exit 1); none takes kao down with a signal, and a crash inside libhdf5 is reported as
such. Also: the sandboxed copy reads exactly as the file does (kao info on a good unsealed file
equals its output on the sealed original).
Prints "N passed, N failed"; exit status 1 on any failure.
"""
import os
import random
import shutil
import sys
import tempfile

import timm
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kaotest import ORL, check, finish, kao  # noqa: E402
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
print(f"{MUTANTS} mutants of an unsealed weights file: {outcomes}")
check(outcomes["refused"] + outcomes["libhdf5 crashed"] > MUTANTS // 2, f"most mutants are refused: {outcomes}")

shutil.rmtree(TMP, ignore_errors=True)
finish("test_h5_sandbox")
