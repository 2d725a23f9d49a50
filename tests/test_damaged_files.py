"""Damaged copies of files kao wrote, read by kao: a seeded sweep of truncations, bit flips, runs of
random or zero bytes and appended bytes, over a weights file (read by `kao embed`) and an
embeddings file (read by `kao verify --embeddings`). Every copy must end in exit status 1 with
exactly one "kao: error:" line that names the copy and says what is wrong (truncated, damaged or
changed), in clean UTF-8. Without the seal (src/h5seal.c) about a third of these copies loaded
silently with wrong numbers, and one in a hundred crashed libhdf5.

The first line of the user block ("kao-seal 1") is left alone: a copy without it counts as
unsealed and is HDF5's to judge (test_h5seal.c covers that case).
"""
import os
import random
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kaotest import BINARY_DIR, KAO, SOURCE_DIR, check, finish  # noqa: E402

TMP = tempfile.mkdtemp(prefix="kao_test_damaged_")
IMAGE = os.path.join(SOURCE_DIR, "tests", "data", "images", "face_like.png")
ORL = os.path.join(SOURCE_DIR, "data", "orl")
SEAL_BLOCK = 512
MAGIC_LINE = len(b"kao-seal 1\n")
COPIES_PER_FILE = 40


def path(name):
    return os.path.join(TMP, name)


def damage(data, rnd):
    """(description, damaged copy of data): one of the kinds of damage, at a random place."""
    b = bytearray(data)
    kind = rnd.choice(["truncate", "flip", "random8", "zero512", "append", "seal"])
    if kind == "truncate":
        at = rnd.randrange(len(b))
        return f"cut at {at}", bytes(b[:at])
    if kind == "flip":
        at = rnd.randrange(SEAL_BLOCK, len(b))
        b[at] ^= 1 << rnd.randrange(8)
        return f"bit flipped at {at}", bytes(b)
    if kind == "random8":
        places = sorted(rnd.randrange(SEAL_BLOCK, len(b)) for _ in range(8))
        for at in places:
            b[at] = (b[at] + rnd.randrange(1, 256)) % 256  # always a different byte
        return f"8 bytes changed at {places}", bytes(b)
    if kind == "zero512":
        at = rnd.randrange(SEAL_BLOCK, len(b) - 1)
        was = b[at:at + 512]
        if not any(was):
            b[at] = 1  # a run that is zero already would change nothing
        else:
            b[at:at + 512] = bytes(len(was))
        return f"zeroed from {at}", bytes(b)
    if kind == "append":
        return "bytes appended", bytes(b) + b"\0" * rnd.randrange(1, 4096)
    at = rnd.randrange(MAGIC_LINE, SEAL_BLOCK)  # the seal's own numbers and padding
    b[at] ^= 1 << rnd.randrange(8)
    return f"seal bit flipped at {at}", bytes(b)


def sweep(what, good, command, rnd):
    r = subprocess.run(command(good), capture_output=True, text=True)
    check(r.returncode == 0, f"{what}: the undamaged file is refused: {r.stderr.strip()}")
    data = open(good, "rb").read()
    refused = 0
    for i in range(COPIES_PER_FILE):
        how, bad = damage(data, rnd)
        copy = path(f"{what}_{i}.h5")
        with open(copy, "wb") as f:
            f.write(bad)
        r = subprocess.run(command(copy), capture_output=True)
        try:
            err = r.stderr.decode("utf-8")
        except UnicodeDecodeError:
            check(False, f"{what} ({how}): stderr is not UTF-8: {r.stderr[-300:]!r}")
            continue
        errors = [line for line in err.splitlines() if line.startswith("kao: error:")]
        name = os.path.basename(copy)
        ok = check(r.returncode == 1, f"{what} ({how}): exit status {r.returncode}: {err[-300:]}")
        ok &= check(len(errors) == 1, f"{what} ({how}): {len(errors)} error lines: {err[-300:]}")
        ok &= check(bool(errors) and f"{name}: " in errors[0] and
                    any(k in errors[0] for k in (": truncated:", ": damaged:", ": changed:")),
                    f"{what} ({how}): message does not name the copy and the damage: {errors}")
        refused += ok
        os.remove(copy)
    print(f"{what}: {refused} of {COPIES_PER_FILE} damaged copies refused with one clear error")


try:
    weights = path("weights.h5")
    r = subprocess.run([os.path.join(BINARY_DIR, "tests", "weights_copy_tool"),
                        os.path.join(SOURCE_DIR, "tests", "data", "model_b0_tiny.weights.h5"), weights],
                       capture_output=True, text=True)
    check(r.returncode == 0, f"weights_copy_tool: {r.stderr.strip()}")
    embeddings = path("embeddings.h5")
    faces = [os.path.join(ORL, person, f"{n}.png") for person in ("s1", "s2") for n in (1, 2)]
    r = subprocess.run([KAO, "embed", "--weights", weights, *faces, "--out", embeddings], capture_output=True, text=True)
    check(r.returncode == 0, f"kao embed: {r.stderr.strip()}")

    rnd = random.Random(20261128)
    sweep("weights", weights, lambda w: [KAO, "embed", "--weights", w, IMAGE, "--out", path("out.csv")], rnd)
    sweep("embeddings", embeddings, lambda e: [KAO, "verify", "--embeddings", e], rnd)
finally:
    shutil.rmtree(TMP, ignore_errors=True)
finish("test_damaged_files")
