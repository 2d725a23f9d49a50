"""What kao's Python tests (tests/test_*.py) share: where things are, the pass/fail counter, a
runner for the kao program.

ctest runs each test with cwd = the repository root and KAO_SOURCE_DIR / KAO_BINARY_DIR set
(tests/CMakeLists.txt); by hand the defaults are the current folder and ./build. A test imports
this module from its own folder, which also puts tools/ on sys.path (tools/convert_timm.py:
build_timm, write_h5, randomise_bn; tools/gen_metrics_reference.py) — tools never import tests:

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from kaotest import check, finish, kao  # noqa: E402

Every check counts as passed or failed; a failed one prints "FAIL: <what>" on stderr. finish()
prints "<test>: N passed, N failed" and exits with status 1 when any check failed, else 0.
"""
import os
import subprocess
import sys
import tempfile

SOURCE_DIR = os.path.abspath(os.environ.get("KAO_SOURCE_DIR", "."))
BINARY_DIR = os.path.abspath(os.environ.get("KAO_BINARY_DIR", "build"))
KAO = os.path.join(BINARY_DIR, "kao")
ORL = os.path.join(SOURCE_DIR, "data", "orl")
TOOLS = os.path.join(SOURCE_DIR, "tools")
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)

passed = failed = 0


def check(cond, what):
    """Counts one check; returns whether it held."""
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL: {what}", file=sys.stderr)
    return bool(cond)


def finish(name):
    """Prints the counts and exits: status 1 when any check failed."""
    print(f"{name}: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


def kao(*args, **kwargs):
    """Runs the kao program with args (each str()-ed); the subprocess.CompletedProcess, with stdout
    and stderr captured as text. kwargs go to subprocess.run (env=...)."""
    return subprocess.run([KAO, *map(str, args)], capture_output=True, text=True, **kwargs)


def embed(weights, images, *args):
    """kao embed of images with weights (args: more options); the (N, E) embeddings, or None after a
    failed check that shows kao's message."""
    import h5py
    with tempfile.TemporaryDirectory(prefix="kao_embed_") as tmp:
        out = os.path.join(tmp, "e.h5")
        p = kao("embed", "--weights", weights, "--quiet", *args, *images, "--out", out)
        if not check(p.returncode == 0, f"kao embed {weights}: {p.stderr}"):
            return None
        with h5py.File(out, "r") as f:
            return f["embeddings"][...]


def compare(name, got, want, peer, tolerance=1e-4):
    """Checks max|got - want| <= tolerance * max|want| (both embeddings, float32; summation orders
    differ) and prints the ratio; got None (kao failed) was counted already. Returns whether it held."""
    import numpy as np
    if got is None:
        return False
    scale = float(np.abs(want).max())
    err = float(np.abs(got - want).max()) if got.shape == want.shape else float("inf")
    print(f"{name}: max |kao - {peer}| / scale = {err / scale:.2e}")
    return check(err <= tolerance * scale, f"{name}: max |kao - {peer}| {err:.3g}, scale {scale:.3g}")
