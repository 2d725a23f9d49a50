"""kao against hostile or mistaken file-system input (issue 16, findings 6-10), on a tiny run's
weights (a second of training):
  6. writes that clobber: a symbolic link planted at the old, predictable temporary name
     (<out>.tmp.<pid>) is never written through (embed .h5 and .csv, export, verify's plots); an
     output that is an input (also through symbolic and hard links) is refused naming both (embed,
     export, verify --roc/--hist/--pairs-out, convert); train --out into a folder that holds other
     files is refused; an output extension that picks no format is refused (.CSV is CSV);
  7. paths: a pairs file's '..' and a split manifest's '../' are refused naming the file and line;
     symbolic links out of a data root, a pairs root or a searched folder are followed only with
     --follow-symlinks (data.follow_symlinks), and the train summary says which it did;
  8. a FIFO or a device where a file is named (image, pairs, config, weights, embeddings, split,
     ONNX) is refused at once instead of hanging; overlong lines in pairs files and manifests;
  9. --resume removes the temporary files a killed run left (only names kao makes); a failed start
     removes what it made (only that);
 10. bench --threads 100000, a batch that cannot fit in memory, an empty folder, a file name with a
     line break for .npy, and an image header claiming 16384x16384 pixels.

Run by ctest with KAO_SOURCE_DIR / KAO_BINARY_DIR set; prints "N passed, N failed".
"""
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kaotest import KAO, ORL, check, finish, kao  # noqa: E402
from train_common import TINY  # noqa: E402

TMP = tempfile.mkdtemp(prefix="kao_test_hardening_")


def path(*parts):
    return os.path.join(TMP, *parts)


def digest(p):
    return hashlib.sha256(open(p, "rb").read()).hexdigest()


def run(*args, timeout=20, preexec_fn=None):
    """kao with a time limit: a CompletedProcess, or None when it hung (and was killed)."""
    try:
        return subprocess.run([KAO, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                              preexec_fn=preexec_fn)
    except subprocess.TimeoutExpired:
        return None


def refused(p, *needles, status=1):
    """The run ended with status and one error message holding every needle."""
    return p is not None and p.returncode == status and all(n in p.stderr for n in needles)


def show(p):
    return "hung (killed after the time limit)" if p is None else f"exit {p.returncode}: {p.stderr.strip()[-400:]}"


def text(p):
    """The file's text ('' when it is missing; bytes that are not UTF-8 replaced)."""
    return open(p, errors="replace").read() if os.path.exists(p) else ""


def write(p, content):
    with open(p, "w") as f:
        f.write(content)
    return p


# ---- a tiny run: its weights for embed, verify and export ------------------------------------------
data = path("data")
os.makedirs(data)
for ident in ("s1", "s2", "s3"):
    shutil.copytree(os.path.join(ORL, ident), os.path.join(data, ident))
os.symlink(os.path.join(ORL, "s4"), os.path.join(data, "s4"))  # leads out of the data root
config = write(path("tiny.ini"), TINY.format(root=data, threads=2).replace("epochs = 4", "epochs = 1")
               .replace("warmup_epochs = 1", "warmup_epochs = 0").replace("follow_symlinks = true\n", ""))
RUN = path("run")
p = run("train", "--config", config, "--out", RUN, timeout=120)
check(p is not None and p.returncode == 0, f"the tiny run: {show(p)}")
W = os.path.join(RUN, "best.h5")
weights_digest = digest(W)
faces = path("faces")
os.makedirs(faces)
for name, src in (("a_1", "s1/1"), ("a_2", "s1/2"), ("b_1", "s2/1"), ("b_2", "s2/2")):
    shutil.copy(os.path.join(ORL, src + ".png"), os.path.join(faces, name + ".png"))
face = os.path.join(faces, "a_1.png")

# ---- 6. writes that clobber ------------------------------------------------------------------------
victim = write(path("victim.txt"), "precious\n")


def plant_link(out):
    """In the child, before exec: a link to the victim at the temporary name kao once used."""
    return lambda: os.symlink(victim, f"{out}.tmp.{os.getpid()}")


for what, out, args in [
        ("embed .h5", path("planted.h5"), ["embed", "--weights", W, "--quiet", faces, "--out"]),
        ("embed .csv", path("planted.csv"), ["embed", "--weights", W, "--quiet", faces, "--out"]),
        ("export", path("planted.onnx"), ["export", "--weights", W, "--out"]),
        ("verify --hist", path("planted.png"), ["verify", "--weights", W, "--quiet", "--no-pairs", faces, "--hist"])]:
    p = run(*args, out, preexec_fn=plant_link(out))
    check(p is not None and p.returncode == 0 and text(victim) == "precious\n" and
          os.path.isfile(out) and not os.path.islink(out),
          f"{what}: a link planted at the temporary name was written through: {show(p)}")

# an output that is an input
os.symlink(W, path("weights_link.onnx"))
os.link(face, path("face_link.h5"))
pairs = write(path("pairs.txt"), "a 1 2\na 1 b 1\n")
lfw = path("lfw")
for ident in ("a", "b"):
    os.makedirs(os.path.join(lfw, ident))
    for n in (1, 2):
        shutil.copy(os.path.join(faces, f"{ident}_{n}.png"), os.path.join(lfw, ident, f"{ident}_{n:04d}.png"))
cases = [  # (what, arguments, output, input[, exit status: convert's is a usage error])
    ("embed --out WEIGHTS", ["embed", "--weights", W, "--quiet", faces, "--out", W], W, W),
    ("export --out WEIGHTS", ["export", "--weights", W, "--out", W], W, W),
    ("export --out a link to the weights", ["export", "--weights", W, "--out", path("weights_link.onnx")],
     path("weights_link.onnx"), W),
    ("verify --roc WEIGHTS", ["verify", "--weights", W, "--quiet", faces, "--roc", W], W, W),
    ("verify --pairs-out WEIGHTS", ["verify", "--weights", W, "--quiet", faces, "--pairs-out", W], W, W),
    ("verify --pairs-out PAIRS", ["verify", "--weights", W, "--quiet", "--pairs", pairs, lfw, "--pairs-out", pairs],
     pairs, pairs),
    ("verify --hist INPUT.png", ["verify", "--weights", W, "--quiet", faces, "--hist", face], face, face),
    ("embed IMG --out a hard link to IMG", ["embed", "--weights", W, "--quiet", face, "--out", path("face_link.h5")],
     path("face_link.h5"), face),
    ("convert IN OUT, OUT a link to IN", ["convert", W, path("weights_link.onnx")], path("weights_link.onnx"), W, 2),
]
for what, args, out, inp, *status in cases:
    before = digest(inp)
    p = run(*args)
    check(refused(p, f"{out}: is the same file as the input {inp}", status=status[0] if status else 1) and
          digest(inp) == before, f"{what}: {show(p)}")
check(digest(W) == weights_digest, "the weights changed")

# train --out into a folder that is not a run folder
mine = path("mine")
os.makedirs(mine)
write(os.path.join(mine, "best.h5"), "my own best.h5\n")
write(os.path.join(mine, "notes.txt"), "notes\n")
p = run("train", "--config", config, "--out", mine)
check(refused(p, "not empty and not a kao run folder") and sorted(os.listdir(mine)) == ["best.h5", "notes.txt"] and
      text(os.path.join(mine, "best.h5")) == "my own best.h5\n", f"train --out a user's folder: {show(p)}")

# the output's extension picks the format, in any letter case; any other is refused
p = run("embed", "--weights", W, "--quiet", faces, "--out", path("upper.CSV"))
check(p is not None and p.returncode == 0 and text(path("upper.CSV")).startswith("path,e0,"),
      f"--out x.CSV writes CSV: {show(p)}")
for name in ("x.txt", "x.png"):
    p = run("embed", "--weights", W, "--quiet", faces, "--out", path(name))
    check(refused(p, "unknown output format", ".h5 or .hdf5 (HDF5), .npy or .csv", status=2) and
          not os.path.exists(path(name)), f"--out {name}: {show(p)}")

# ---- 7. paths stay inside their root ------------------------------------------------------------
outside = path("outside")  # an identity folder outside the roots
os.makedirs(outside)
for n in (1, 2):
    shutil.copy(face, os.path.join(outside, f"c_{n:04d}.png"))
p = run("verify", "--weights", W, "--quiet", "--pairs", write(path("dotdot.txt"), "a 1 2\n../outside 1 2\n"), lfw)
check(refused(p, "dotdot.txt:2: '../outside' is not an identity name"), f"pairs '..': {show(p)}")
os.symlink(outside, os.path.join(lfw, "c"))
linked = write(path("linked.txt"), "a 1 2\na 1 b 1\nc 1 2\n")
p = run("verify", "--weights", W, "--quiet", "--no-pairs", "--pairs", linked, lfw)
check(refused(p, "linked.txt:3:", "leads out of", "--follow-symlinks"), f"pairs through a link out of ROOT: {show(p)}")
p = run("verify", "--weights", W, "--quiet", "--no-pairs", "--follow-symlinks", "--pairs", linked, lfw)
check(p is not None and p.returncode == 0 and "pairs: 3" in p.stdout, f"--follow-symlinks follows it: {show(p)}")
p = run("embed", "--weights", W, "--quiet", lfw, "--out", path("linked.h5"))
check(refused(p, os.path.join(lfw, "c"), "leads out of the folder searched"), f"embed DIR, a link out: {show(p)}")
p = run("verify", "--weights", W, "--quiet", "--no-pairs", lfw)
check(refused(p, os.path.join(lfw, "c"), "leads out of the folder searched"), f"verify DIR, a link out: {show(p)}")
log = text(os.path.join(RUN, "train.log"))
check("outside:    1 symbolic link leads out of the data root (e.g. s4), not followed" in log and
      "s4" not in text(os.path.join(RUN, "classes.txt")).split(), f"train: s4 followed:\n{log[:600]}")
bad_split = write(path("bad_split.tsv"), "# kao-split v1 seed=0 val_fraction=0.3 val_count=0 train=1 val=1 "
                  "hash=0000000000000000\ntrain\ts1\t../../etc/passwd\n")
p = run("train", "--config", config, "--split", bad_split, "--out", path("split_run"))
check(refused(p, "bad_split.tsv:2: '../../etc/passwd' leads out of the data root"), f"manifest '../': {show(p)}")

# ---- 8. only regular files; bounded lines ------------------------------------------------------
os.mkfifo(path("fifo.png"))
os.mkfifo(path("fifo"))
for what, args, name in [
        ("image", ["embed", "--weights", W, "--quiet", path("fifo.png"), "--out", path("f.h5")], path("fifo.png")),
        ("pairs file", ["verify", "--weights", W, "--quiet", "--pairs", path("fifo"), lfw], path("fifo")),
        ("pairs file /dev/zero", ["verify", "--weights", W, "--quiet", "--pairs", "/dev/zero", lfw], "/dev/zero"),
        ("config", ["train", "--config", path("fifo"), "--out", path("f_run")], path("fifo")),
        ("weights", ["embed", "--weights", path("fifo"), "--quiet", face, "--out", path("f.h5")], path("fifo")),
        ("info --reseal", ["info", "--reseal", path("fifo")], path("fifo")),
        ("embeddings", ["verify", "--embeddings", path("fifo")], path("fifo")),
        ("split manifest", ["train", "--config", config, "--split", path("fifo"), "--out", path("f_run")], path("fifo")),
        ("ONNX model", ["export", "--check", path("fifo")], path("fifo"))]:
    p = run(*args, timeout=10)
    check(refused(p, name, "not a regular file"), f"a {what} that is not a regular file: {show(p)}")
check(not os.path.exists(path("f_run")), "a run folder was left by a refused start")
p = run("verify", "--weights", W, "--quiet", "--pairs", write(path("long.txt"), "a " * 5000 + "\n"), lfw)
check(refused(p, "long.txt:1: line longer than 8192 bytes"), f"a long pairs line: {show(p)}")
long_split = write(path("long_split.tsv"), "x" * 10000 + "\n")
p = run("train", "--config", config, "--split", long_split, "--out", path("split_run"))
check(refused(p, "long_split.tsv:1: line longer than 8192 bytes"), f"a long manifest line: {show(p)}")

# ---- 9. leftovers ------------------------------------------------------------------------------
stale = ["best.h5.tmp.Ab12Cd", "last.h5.tmp.x9Y8z7", "config.ini.tmp.QQQQQQ", "checkpoints/ckpt-000000002.h5.tmp.aB3xYz"]
kept = ["notes.txt.tmp.abcdef", "best.h5.tmp.abc", "best.h5.tmp.1234567"]
for name in stale + kept:
    write(os.path.join(RUN, name), "left\n")
p = run("train", "--resume", RUN, timeout=120)
check(p is not None and p.returncode == 0 and not any(os.path.exists(os.path.join(RUN, n)) for n in stale) and
      all(os.path.exists(os.path.join(RUN, n)) for n in kept), f"--resume cleans stale temporary files: {show(p)} "
      f"{sorted(os.listdir(RUN))}")
empty_root = path("empty_root")
os.makedirs(empty_root)
p = run("train", "--config", config, "--data", empty_root, "--out", path("new", "a", "b"))
check(refused(p, "no identity folders") and not os.path.exists(path("new")), f"a failed start in a new folder: {show(p)}")
os.makedirs(path("empty_out"))
p = run("train", "--config", config, "--data", empty_root, "--out", path("empty_out"))
check(refused(p, "no identity folders") and os.listdir(path("empty_out")) == [],
      f"a failed start in an empty folder: {show(p)} {os.listdir(path('empty_out'))}")
# and the summary of --follow-symlinks, in a start that fails after it (no verification pairs)
p = run("train", "--config", config, "--follow-symlinks", "--set", "early_stop.metric=eer", "--set",
        "data.val_fraction=0.05", "--out", path("followed", "run"))
check(refused(p, "verification pairs") and "outside:    1 symbolic link leads out of the data root (e.g. s4), followed"
      in p.stderr and not os.path.exists(path("followed")), f"--follow-symlinks in the summary: {show(p)}")

# ---- 10. smaller ---------------------------------------------------------------------------------
p = run("bench", "--threads", "100000")
check(refused(p, "--threads wants an integer from 1 to 4096", status=2), f"bench --threads 100000: {show(p)}")
p = run("bench", "--batch", "65536", "--size", "1024", "--steps", "1", "--warmup", "0")
check(refused(p, "a batch of 65536 images at 1024x1024: needs", "GiB of memory", "lower --batch or --size"),
      f"bench --batch 65536 --size 1024: {show(p)}")
os.makedirs(path("no_images"))
for cmd, args in (("embed", ["--out", path("none.h5")]), ("verify", [])):
    p = run(cmd, "--weights", W, "--quiet", path("no_images"), *args)
    check(refused(p, "no PNG or JPEG images found in " + path("no_images")) and "runtime error" not in p.stderr,
          f"{cmd} on an empty folder: {show(p)}")
newline = path("newline")
os.makedirs(newline)
shutil.copy(face, os.path.join(newline, "a\nb_1.png"))
p = run("embed", "--weights", W, "--quiet", newline, "--out", path("nl.npy"))
check(refused(p, "line break", "nl.npy.paths.txt") and not os.path.exists(path("nl.npy")),
      f"a line break in a name for .npy: {show(p)}")


def png_header(width, height):
    """A PNG that claims width x height RGB pixels, with a few bytes of image data."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


with open(path("bomb.png"), "wb") as f:
    f.write(png_header(16384, 16384))
p = run("embed", "--weights", W, "--quiet", path("bomb.png"), "--out", path("bomb.h5"))
check(refused(p, "bomb.png", "16384 x 16384 pixels, more than kao accepts"), f"16384x16384 PNG: {show(p)}")

shutil.rmtree(TMP, ignore_errors=True)
finish("test_hardening")
