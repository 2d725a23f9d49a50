"""Shared helpers of the kao train end-to-end tests (tests/test_train_*.py).

The runs are tiny on purpose: a few ORL identities (data/orl, or $KAO_ORL), 48x48
inputs, tf_efficientnetv2_b0 at width 0.25 and depth 0.5, 32-d embeddings; a run takes seconds on
two cores.
"""
import csv
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile

import h5py
import numpy as np

SOURCE = os.environ.get("KAO_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("KAO_BINARY_DIR", os.path.join(SOURCE, "build"))
KAO = os.path.join(BINARY, "kao")
# The ORL faces: $KAO_ORL, else the repository's data/orl.
ORL = os.environ.get("KAO_ORL") or os.path.join(SOURCE, "data", "orl")

TINY = """
[model]
name = tf_efficientnetv2_b0
width_mult = 0.25
depth_mult = 0.5
embedding_dim = 32
input_size = 48

[data]
root = {root}
val_fraction = 0.3
follow_symlinks = true

[train]
epochs = 4
batch_size = 16
lr = 0.005
head_lr = 0.005
warmup_epochs = 1
drop_path_rate = 0.1
threads = {threads}
workers = 2

[arcface]
scale = 30
margin = 10
optimizer = adamw
lr = 0.05

[early_stop]
patience = 0

[verify]
diff_pairs_per_same = 2
"""

failures = 0


def check(cond, message):
    global failures
    if cond:
        return True
    failures += 1
    print("FAIL:", message, file=sys.stderr)
    return False


def finish(name):
    print(f"{name}: {'FAILED' if failures else 'ok'} ({failures} failures)")
    sys.exit(1 if failures else 0)


def env():
    e = dict(os.environ)
    # libgomp's default spin-waiting turns into long stalls when the loader threads and other
    # processes share two cores; passive waiting keeps these tests quick.
    e.setdefault("OMP_WAIT_POLICY", "passive")
    return e


class Workspace:
    """A temporary folder with a data tree of symlinked ORL identities (links out of the data root,
    which TINY's data.follow_symlinks lets kao train follow) and config files."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="kao_train_test_")

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def data(self, name, identities):
        root = self.path(name)
        os.makedirs(root, exist_ok=True)
        for ident in identities:
            os.symlink(os.path.join(ORL, ident), os.path.join(root, ident))
        return root

    def config(self, name, root, threads=1, extra=""):
        path = self.path(name)
        with open(path, "w") as f:
            f.write(TINY.format(root=root, threads=threads) + extra)
        return path

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def file_size_limit(max_bytes):
    """A preexec_fn under which no file grows past max_bytes: a write beyond fails with EFBIG, as
    on a full disk (SIGXFSZ, which would kill the process instead, is ignored)."""
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))
    return limit


def kao(*args, check_exit=None, extra_env=None, timeout=300, max_file_bytes=None):
    """Runs kao; returns (exit status, stdout + stderr). max_file_bytes: see file_size_limit."""
    e = env()
    if extra_env:
        e.update(extra_env)
    p = subprocess.run([KAO, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=e,
                       timeout=timeout, preexec_fn=file_size_limit(max_file_bytes) if max_file_bytes else None)
    if check_exit is not None and p.returncode != check_exit:
        print(p.stdout, file=sys.stderr)
        check(False, f"kao {' '.join(args)}: exit {p.returncode}, expected {check_exit}")
    return p.returncode, p.stdout


def start(*args, extra_env=None):
    e = env()
    if extra_env:
        e.update(extra_env)
    return subprocess.Popen([KAO, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=e)


def metrics(run):
    with open(os.path.join(run, "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    return [r for r in rows if r["kind"] == "step"], [r for r in rows if r["kind"] == "epoch"]


def datasets(path):
    """Every dataset of an HDF5 file: name -> numpy value (strings decoded)."""
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                v = obj[()]
                if obj.dtype.kind == "O":
                    v = [x.decode() if isinstance(x, bytes) else x for x in np.atleast_1d(v)]
                out[name] = v
        f.visititems(visit)
    return out


def same_arrays(a, b):
    """Names whose values differ bit for bit (or exist on one side only)."""
    bad = sorted(set(a) ^ set(b))
    for k in set(a) & set(b):
        x, y = a[k], b[k]
        if isinstance(x, list) or isinstance(y, list):
            if x != y:
                bad.append(k)
        elif np.asarray(x).dtype != np.asarray(y).dtype or np.asarray(x).tobytes() != np.asarray(y).tobytes():
            bad.append(k)
    return bad


# Columns of metrics.csv that must repeat exactly in a resumed run (the others are timings).
DETERMINISTIC = ["kind", "epoch", "step", "batch", "images", "loss", "accuracy", "lr", "grad_norm", "val_loss",
                 "val_accuracy", "verify_accuracy", "best_threshold", "best_balanced_accuracy", "auc", "eer",
                 "eer_threshold", "tar_far_1e3", "threshold_far_1e3", "improved"]


def metric_rows(run):
    with open(os.path.join(run, "metrics.csv")) as f:
        return [tuple(r[c] for c in DETERMINISTIC) for r in csv.DictReader(f)]


def crc32c(data):
    """CRC-32C, bit by bit (independent of kao's table-driven one)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def _masked(crc):
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _fields(buf):
    """Protocol buffer fields of buf: list of (number, wire type, value)."""
    import struct
    out, i = [], 0

    def varint():
        nonlocal i
        v = shift = 0
        while True:
            b = buf[i]
            i += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return v

    while i < len(buf):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            out.append((number, wire, varint()))
        elif wire == 1:
            out.append((number, wire, struct.unpack("<d", buf[i:i + 8])[0]))
            i += 8
        elif wire == 5:
            out.append((number, wire, struct.unpack("<f", buf[i:i + 4])[0]))
            i += 4
        elif wire == 2:
            n = varint()
            out.append((number, wire, buf[i:i + n]))
            i += n
        else:
            raise ValueError(f"wire type {wire}")
    return out


def tb_events(path):
    """The records of a TensorBoard event file, CRCs checked: a list of dicts with wall_time, step,
    and file_version, or tag + value (a scalar), or session_start."""
    import struct
    data = open(path, "rb").read()
    events, i = [], 0
    while i < len(data):
        (n,) = struct.unpack("<Q", data[i:i + 8])
        (len_crc,) = struct.unpack("<I", data[i + 8:i + 12])
        body = data[i + 12:i + 12 + n]
        (body_crc,) = struct.unpack("<I", data[i + 12 + n:i + 16 + n])
        if _masked(crc32c(data[i:i + 8])) != len_crc or _masked(crc32c(body)) != body_crc:
            raise ValueError(f"{path}: bad CRC in the record at byte {i}")
        i += 16 + n
        e = {"step": 0}
        for number, _, v in _fields(body):
            if number == 1:
                e["wall_time"] = v
            elif number == 2:
                e["step"] = v
            elif number == 3:
                e["file_version"] = v.decode()
            elif number == 5:
                (value,) = [f[2] for f in _fields(v) if f[0] == 1]
                parts = dict((f[0], f[2]) for f in _fields(value))
                e["tag"], e["value"] = parts[1].decode(), parts[2]
            elif number == 6:
                e["session_start"] = dict((f[0], f[2]) for f in _fields(v)).get(1) == 1
        events.append(e)
    return events
