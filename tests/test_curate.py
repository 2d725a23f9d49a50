"""kao curate on a tree with known truth (issue 15).

A tiny network is trained on ORL faces (train_common.py's settings, longer); then a tree is built
from other ORL copies with known flaws: images of another person put into an identity (from
another identity of the tree, and from people outside it), exact and resized copies, noise and
flat images, a one-image identity, one person split under two names, Japanese identity names, PNG
and JPEG mixed. kao curate's verdicts are scored (precision and recall per flag, against stated
floors); a dry run must leave the tree as it was; the cache must embed 0 images on a rerun and 1
after one image is added; --apply then --undo must give the tree back, and --apply with the journal
of a finished apply changes nothing. test_curate_paths.py runs the same tree with a network trained
for two epochs, without the scores (the sanitizer pass leaves this test out: labelled slow).
"""
import csv
import hashlib
import os
import shutil
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_common as t  # noqa: E402

CONFIG = t.TINY.replace("epochs = 4", "epochs = 40").replace("embedding_dim = 32", "embedding_dim = 64") \
    .replace("input_size = 48", "input_size = 64").replace("val_fraction = 0.3", "val_fraction = 0.2")
# Floors (precision, recall): measured values (printed) sit above them with room for another
# machine's rounding. "flagged" is not_me or no_face: this tiny network (64-d, 40 epochs on 40
# people) cannot tell a noise image from a stranger by embedding (measured: best similarity to any
# identity 0.65-0.81 for noise and flat images, 0.57-0.83 for strangers; raw norms overlap too),
# so both come out as one or the other; each flag's own precision and recall are printed.
FLOORS = {"flagged": (0.9, 0.9), "same_face": (0.5, 1.0)}
# Its same-person pairs reach 0.998 (ORL's photos of one session are nearly alike), resized copies
# 0.998-1.0: near-duplicates need a threshold above kao curate's default 0.95, which suits a real
# face network. Even at 0.997 six pairs of different ORL photos of one person count as near-duplicates
# (measured precision 8/14): the same_face floor allows for them.
SAME_FACE = "0.997"
JA = {"s1": "山田太郎", "s2": "佐藤花子", "s3": "鈴木一郎"}


def orl(ident, n):
    return os.path.join(t.ORL, ident, f"{n}.png")


def put(src, dst, fmt=None, scale=None):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if fmt is None and scale is None:
        shutil.copyfile(src, dst)
        return
    img = Image.open(src).convert("RGB")
    if scale:
        img = img.resize((int(img.width * scale), int(img.height * scale)), Image.BILINEAR)
    img.save(dst, quality=95) if fmt == "JPEG" else img.save(dst)


def build_tree(root):
    """The tree and its truth: rel path -> expected verdict, plus the too-small and alias identities."""
    truth = {}
    rng = np.random.default_rng(0)
    for k in range(1, 25):
        ident = f"s{k}"
        name = JA.get(ident, ident)
        for n in range(1, 11):
            rel = f"{name}/{n}.{'jpg' if (k + n) % 3 == 0 else 'png'}"
            put(orl(ident, n), os.path.join(root, rel), "JPEG" if rel.endswith(".jpg") else None)
            truth[rel] = "keep"
    # another person: from an identity of the tree (k+12) and from people outside it (s33..s40)
    for k in range(1, 7):
        rel = f"{JA.get(f's{k}', f's{k}')}/x_other.png"
        put(orl(f"s{k + 12}", 3), os.path.join(root, rel))
        truth[rel] = "not_me"
    for k in range(7, 13):
        rel = f"s{k}/x_stranger.png"
        put(orl(f"s{k + 26}", 1), os.path.join(root, rel))
        truth[rel] = "not_me"
    # near-duplicates: exact copies and resized copies (PNG and JPEG)
    for k in range(13, 19):
        rel = f"s{k}/y_copy.png"
        put(orl(f"s{k}", 2), os.path.join(root, rel), None if k < 15 else "PNG", None if k < 15 else 0.8)
        truth[rel] = "same_face"
    for k in range(19, 21):
        rel = f"s{k}/y_copy.jpg"
        put(orl(f"s{k}", 2), os.path.join(root, rel), "JPEG", 1.25)
        truth[rel] = "same_face"
    # not faces: noise and flat images
    for k in range(21, 25):
        rel = f"s{k}/z_noface.png"
        pixels = rng.integers(0, 256, (112, 92, 3), dtype=np.uint8) if k % 2 else \
            np.full((112, 92, 3), 40 * k % 256, np.uint8)
        Image.fromarray(pixels).save(os.path.join(root, rel))
        truth[rel] = "no_face"
    put(orl("s25", 1), os.path.join(root, "s25/1.png"))  # a one-image identity: too small
    truth["s25/1.png"] = "keep"
    for n in range(1, 11):  # s26 under two names
        rel = f"{'s26' if n <= 5 else 's26_alias'}/{n}.png"
        put(orl("s26", n), os.path.join(root, rel))
        truth[rel] = "keep"
    return truth


def tree_hash(root):
    h = hashlib.sha256()
    for d, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for f in sorted(files):
            if f == ".kao_curate_cache.h5":
                continue
            p = os.path.join(d, f)
            h.update(os.path.relpath(p, root).encode())
            h.update(open(p, "rb").read())
    return h.hexdigest()


def read_tsv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def score(rows, truth):
    got = {r["path"]: r["verdict"] for r in rows}
    t.check(set(got) == set(truth), f"images.tsv lists {len(got)} images, the tree has {len(truth)}")
    def kind(v, flag):
        return v in ("not_me", "no_face") if flag == "flagged" else v == flag
    for flag in ("not_me", "no_face", "flagged", "same_face"):
        tp = sum(1 for p, v in got.items() if kind(v, flag) and kind(truth.get(p), flag))
        flagged = sum(1 for v in got.values() if kind(v, flag))
        actual = sum(1 for v in truth.values() if kind(v, flag))
        precision = tp / flagged if flagged else 0.0
        recall = tp / actual
        floors = FLOORS.get(flag)
        print(f"{flag}: precision {precision:.3f} ({tp}/{flagged}), recall {recall:.3f} ({tp}/{actual})"
              + (f"; floors {floors[0]}, {floors[1]}" if floors else " (no floor)"))
        if floors:
            t.check(precision >= floors[0] and recall >= floors[1],
                    f"{flag}: precision {precision:.3f}, recall {recall:.3f}")
    wrong = [(p, truth.get(p), v) for p, v in got.items() if v != truth.get(p)]
    print("disagreements:", wrong)


def exercise(weights, ws, scored):
    """kao curate on the planted tree. scored: the verdicts are scored against their floors (a
    network trained long enough); else only what holds for any weights is checked (every image
    judged, exact copies are near-duplicates, dry run, cache, apply, undo)."""
    root = ws.path("tree")
    truth = build_tree(root)
    report = ws.path("report")
    before = tree_hash(root)
    code, out = t.kao("curate", "--weights", weights, root, "--report", report, "--quiet", "--same-face", SAME_FACE, check_exit=0)
    print(out)
    t.check("time: embedding " in out and "judging and search " in out, f"no time split: {out[-300:]}")
    t.check(tree_hash(root) == before, "a dry run changed the tree")
    t.check(sorted(os.listdir(root)) == sorted(set(p.split("/")[0] for p in truth) | {".kao_curate_cache.h5"}),
            "the dry run wrote something into the tree other than the cache")
    rows = read_tsv(os.path.join(report, "images.tsv"))
    t.check({r["path"] for r in rows} == set(truth), f"images.tsv lists {len(rows)} images, the tree has {len(truth)}")
    sheets = os.listdir(os.path.join(report, "sheets"))
    if scored:
        score(rows, truth)
        ids = {r["identity"]: r for r in read_tsv(os.path.join(report, "identities.tsv"))}
        t.check(ids["s25"]["too_small"] == "yes", "s25 (one image) is not too small")
        t.check(sum(r["too_small"] == "yes" for r in ids.values()) == 1, "more than one identity too small")
        pairs = read_tsv(os.path.join(report, "identity_pairs.tsv"))
        t.check(pairs and {pairs[0]["identity_a"], pairs[0]["identity_b"]} == {"s26", "s26_alias"},
                f"s26 under two names not the first identity pair: {pairs[:3]}")
        print(f"identity pairs: {[(p['identity_a'], p['identity_b'], p['similarity']) for p in pairs]}")
        dups = read_tsv(os.path.join(report, "duplicates.tsv"))
        copied = {(f"{JA.get(f's{k}', f's{k}')}/x_other.png", f"s{k + 12}/3.{'jpg' if (k + 12 + 3) % 3 == 0 else 'png'}")
                  for k in range(1, 7)}
        found = {(d["path_a"], d["path_b"]) for d in dups} | {(d["path_b"], d["path_a"]) for d in dups}
        print(f"cross-identity duplicates: {len(dups)}, of the {len(copied)} planted: {len(copied & found)}")
        t.check(len(copied & found) >= 5, "planted cross-identity copies not found")
        t.check("山田太郎.png" in sheets, f"no contact sheet for 山田太郎: {sheets}")
    verdicts = {r["path"]: r["verdict"] for r in rows}
    t.check(verdicts.get("s13/y_copy.png") == "same_face" or verdicts.get("s13/2.png") == "same_face",
            "an exact copy (s13) is not a near-duplicate")
    # cache: a rerun embeds nothing; one image more, one embedding
    code, out = t.kao("curate", "--weights", weights, root, "--report", report, "--quiet", "--same-face", SAME_FACE, check_exit=0)
    t.check("embedded: 0 images" in out, f"rerun embedded again: {out[:300]}")
    put(orl("s1", 4), os.path.join(root, "s24", "new.png"))
    code, out = t.kao("curate", "--weights", weights, root, "--report", report, "--quiet", "--same-face", SAME_FACE, check_exit=0)
    t.check("embedded: 1 images" in out, f"one new image: {out[:300]}")
    os.remove(os.path.join(root, "s24", "new.png"))
    # apply and undo
    before = tree_hash(root)
    journal = ws.path("journal.txt")
    code, out = t.kao("curate", "--weights", weights, root, "--report", report, "--quiet", "--same-face", SAME_FACE, "--apply", journal)
    t.check(code == 0, f"--apply: {out[-500:]}")
    if code == 0:
        t.check(tree_hash(root) != before, "--apply moved nothing")
        if scored:
            t.check(os.path.exists(os.path.join(root, "s13", "same_face")), "no s13/same_face after --apply")
        # --apply with an existing journal finishes it (here: nothing left) without a new analysis
        applied = tree_hash(root)
        code, out = t.kao("curate", "--weights", weights, root, "--apply", journal)
        t.check(code == 0 and "finished the moves" in out and tree_hash(root) == applied,
                f"--apply of a finished journal: {out[-500:]}")
        code, out = t.kao("curate", "--undo", journal)
        t.check(code == 0 and tree_hash(root) == before, f"--undo did not restore the tree: {out[-500:]}")


def run(config, scored, name):
    ws = t.Workspace()
    try:
        train_root = ws.data("train", [f"s{k}" for k in range(1, 41)])
        run_dir = ws.path("run")
        cfg = ws.path("tiny.ini")
        with open(cfg, "w") as f:
            f.write(config.format(root=train_root, threads=2))
        t.kao("train", "--config", cfg, "--out", run_dir, check_exit=0, timeout=900)
        exercise(os.path.join(run_dir, "best.h5"), ws, scored)
    finally:
        ws.cleanup()
    t.finish(name)


if __name__ == "__main__":
    run(CONFIG, True, "test_curate")
