"""`kao verify` end to end, on hand-made embeddings (HDF5 in `kao embed`'s layout: embeddings (N, E)
float32, paths (N) strings), so nothing depends on a trained model:
  - the summary (pairs, accuracy at the threshold, TP/FP/TN/FN, AUC, EER and its threshold, TAR at
    FAR 1e-2 / 1e-3, the threshold at FAR 1e-3, the threshold of best balanced accuracy) against scikit-learn and the independent NumPy
    definitions of tools/gen_metrics_reference.py, to the printed 6 decimals;
  - the per-pair lines (every pair once, the original's fields: names, True/False at the threshold,
    the percentage formula; then cosine and truth), --sort score|name, --pairs-out TSV;
  - the three inputs: <identity>_<n>.png names, one folder per identity, an LFW-style pairs file;
  - --max-pairs sampling (all same pairs kept, seeded, no repeats), --same-per-identity and
    --diff-per-same (the balanced sample of kao train's validation);
  - --roc / --hist are valid 640x480 PNGs with something drawn (the plots and --roc-csv in detail:
    test_verify_plots.py);
  - the forward pass path (--weights + a folder of PNGs, a tiny random timm model) gives the same
    scores as `kao embed` + `kao verify --embeddings`, and works with a pairs file and ROOT;
  - every bad input: exit status and a one-line message; nothing written to a missing folder.

Run by ctest with KAO_SOURCE_DIR / KAO_BINARY_DIR set; prints "N passed, N failed".
"""
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import h5py
import numpy as np
from PIL import Image
from sklearn.metrics import roc_auc_score

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kaotest import TOOLS, check, finish, kao  # noqa: E402
from gen_metrics_reference import reference  # noqa: E402  (the definitions, computed with NumPy/sklearn)


def verify(*args):
    return kao("verify", *args)


def write_embeddings(path, paths, emb):
    with h5py.File(path, "w") as f:
        f.create_dataset("embeddings", data=np.asarray(emb, dtype=np.float32))
        f.create_dataset("paths", data=np.array(paths, dtype=object), dtype=h5py.string_dtype())


def clustered(rng, identities, per_identity, dim, noise):
    """Embeddings around one random centre per identity."""
    emb, who = [], []
    for k, _ in enumerate(identities):
        centre = rng.normal(size=dim)
        for _ in range(per_identity):
            emb.append(centre + noise * rng.normal(size=dim))
            who.append(k)
    return np.asarray(emb, dtype=np.float32), who


def cosine(emb, a, b):
    x, y = emb[a].astype(np.float64), emb[b].astype(np.float64)
    return np.float32(x @ y / np.sqrt((x @ x) * (y @ y)))


def split_output(stdout):
    """(pair lines as field lists, summary dict)."""
    lines = stdout.split("\n")
    summary_start = next(i for i, l in enumerate(lines) if l.startswith("pairs: "))
    pair_lines = [l.split(", ") for l in lines[:summary_start] if l]
    summary = dict(l.split(": ", 1) for l in lines[summary_start:] if l)
    return pair_lines, summary


def check_summary(summary, scores, same, threshold, what):
    r = reference(np.asarray(scores, np.float32), np.asarray(same, np.int32), threshold)
    check(abs(r["auc"] - roc_auc_score(same, scores)) < 1e-12, f"{what}: reference AUC is sklearn's")
    check(int(summary["pairs"]) == len(scores), f"{what}: pairs {summary['pairs']} vs {len(scores)}")
    check(int(summary["same pairs"]) == r["same_pairs"] and int(summary["different pairs"]) == r["diff_pairs"],
          f"{what}: same/different pairs")
    for key, ref in (("TP", "tp"), ("FP", "fp"), ("TN", "tn"), ("FN", "fn")):
        check(int(summary[key]) == r[ref], f"{what}: {key} {summary[key]} vs {r[ref]}")
    for key, ref in (("accuracy", "accuracy"), ("AUC", "auc"), ("EER", "eer"), ("EER threshold", "eer_threshold"),
                     ("TAR@FAR=1e-2", "tar_at_far_1e2"), ("TAR@FAR=1e-3", "tar_at_far_1e3"),
                     ("best threshold (balanced accuracy)", "best_threshold"),
                     ("best balanced accuracy", "best_balanced_accuracy")):
        check(abs(float(summary[key]) - r[ref]) <= 1e-6, f"{what}: {key} {summary[key]} vs {r[ref]:.9f}")
    far, _, note = summary["threshold at FAR=1e-3"].partition(" ")
    check(abs(float(far) - r["far_1e3_threshold"]) <= 1e-6, f"{what}: threshold at FAR=1e-3 {far} vs {r['far_1e3_threshold']}")
    check((note == "(no false accept: fewer than 1000 different pairs)") == (r["diff_pairs"] < 1000) and
          (note == "" or r["diff_pairs"] < 1000), f"{what}: FAR note '{note}' with {r['diff_pairs']} different pairs")
    check(abs(float(summary["threshold"]) - threshold) < 1e-9, f"{what}: threshold")


def check_pair_line(fields, expect_a, expect_b, score, same, threshold, what):
    ok = (len(fields) == 6 and fields[0] == expect_a and fields[1] == expect_b
          and fields[2] == ("True" if score >= threshold else "False")
          and fields[3].endswith("%")
          and abs(float(fields[3][:-1]) - (-23.71 * score ** 2 + 49.98 * score + 73.69)) <= 0.005 + 1e-6
          and abs(float(fields[4]) - score) <= 1e-6
          and fields[5] == ("same" if same else "different"))
    check(ok, f"{what}: line {fields} for {expect_a} {expect_b} score {score:.6f} same {same}")


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


def check_plot(path, what):
    check(png_size(path) == (640, 480), f"{what}: {path} is a 640x480 PNG ({png_size(path)})")
    try:
        px = np.asarray(Image.open(path).convert("RGB"))
        check(px.shape == (480, 640, 3) and (px < 200).any() and (px == 255).all(axis=2).mean() > 0.3,
              f"{what}: decodes, has a white background and something drawn")
    except Exception as e:  # noqa: BLE001
        check(False, f"{what}: PIL cannot open {path}: {e}")


def test_names_layout(tmp, rng):
    # Identity = the name up to the last underscore: names with underscores and in Japanese.
    identities = ["taro_yamada", "山田花子", "s_k", "jiro", "ann"]
    emb, who = clustered(rng, identities, 4, 16, 0.9)
    paths = [f"faces/{identities[k]}_{i % 4 + 1}.png" for i, k in enumerate(who)]
    order = sorted(range(len(paths)), key=lambda i: paths[i].encode())
    paths = [paths[i] for i in order]
    emb = emb[order]
    who = [who[i] for i in order]
    e5 = os.path.join(tmp, "names.h5")
    write_embeddings(e5, paths, emb)
    p = verify("--embeddings", e5, "--roc", os.path.join(tmp, "roc.png"), "--hist", os.path.join(tmp, "hist.png"))
    check(p.returncode == 0, f"names layout: exit {p.returncode}: {p.stderr}")
    if p.returncode:
        return
    lines, summary = split_output(p.stdout)
    n = len(paths)
    pairs = [(a, b) for a in range(n) for b in range(a + 1, n)]
    check(len(lines) == len(pairs) == 190, f"names layout: {len(lines)} pair lines")
    scores = [cosine(emb, a, b) for a, b in pairs]
    same = [int(who[a] == who[b]) for a, b in pairs]
    for fields, (a, b), s, y in zip(lines, pairs, scores, same):
        check_pair_line(fields, paths[a], paths[b], float(s), y, 0.4, "names layout")
    check(sum(same) == 30, "names layout: 5 identities x 6 same pairs")
    check_summary(summary, scores, same, 0.4, "names layout")
    check(0 < int(summary["FP"]) + int(summary["FN"]), "names layout: the data has mistakes to count")
    check_plot(os.path.join(tmp, "roc.png"), "roc")
    check_plot(os.path.join(tmp, "hist.png"), "hist")

    # Another threshold; --sort score (ascending, as the write-up lists them); --pairs-out TSV.
    tsv = os.path.join(tmp, "pairs.tsv")
    p = verify("--embeddings", e5, "--threshold", "0.25", "--sort", "score", "--pairs-out", tsv)
    check(p.returncode == 0, f"sort score: exit {p.returncode}: {p.stderr}")
    if p.returncode:
        return
    out_lines, summary = split_output(p.stdout)
    check(out_lines == [], "--pairs-out: no pair lines on stdout")
    check_summary(summary, scores, same, 0.25, "threshold 0.25")
    rows = [l.split("\t") for l in open(tsv, encoding="utf-8").read().splitlines()]
    check(rows[0] == ["image1", "image2", "decision", "percentage", "cosine", "identity"], f"tsv header {rows[0]}")
    got_scores = [float(r[4]) for r in rows[1:]]
    check(len(rows) == 191 and got_scores == sorted(got_scores), "tsv: every pair, by score ascending")
    by_names = {(paths[a], paths[b]): (float(s), y) for (a, b), s, y in zip(pairs, scores, same)}
    for r in rows[1:]:
        s, y = by_names[(r[0], r[1])]
        check_pair_line([r[0], r[1], r[2], r[3] + "%", r[4], r[5]], r[0], r[1], s, y, 0.25, "tsv")
    p2 = verify("--embeddings", e5, "--sort", "name")
    lines2, _ = split_output(p2.stdout)
    keys = [(l[0].encode(), l[1].encode()) for l in lines2]
    check(p2.returncode == 0 and keys == sorted(keys), "--sort name: by first then second path")


def test_folders_layout(tmp, rng):
    identities = ["s1", "s2", "s3"]
    emb, who = clustered(rng, identities, 3, 8, 0.5)
    paths = [f"root/{identities[k]}/{i % 3 + 1}.png" for i, k in enumerate(who)]  # no underscores
    e5 = os.path.join(tmp, "folders.h5")
    write_embeddings(e5, paths, emb)
    p = verify("--embeddings", e5, "--no-pairs")
    check(p.returncode == 0, f"folders layout: exit {p.returncode}: {p.stderr}")
    if p.returncode:
        return
    lines, summary = split_output(p.stdout)
    check(lines == [], "--no-pairs prints only the summary")
    pairs = [(a, b) for a in range(9) for b in range(a + 1, 9)]
    check_summary(summary, [cosine(emb, a, b) for a, b in pairs], [int(who[a] == who[b]) for a, b in pairs], 0.4,
                  "folders layout")
    p = verify("--embeddings", e5, "--layout", "names")
    check(p.returncode == 1 and "cannot tell the identity of '1.png'" in p.stderr, f"--layout names: {p.stderr}")


def test_pairs_file(tmp, rng):
    names = ["Aaron_Peirsol", "Abel_Pacheco", "Akhmed_Zakayev"]
    emb, who = clustered(rng, names, 4, 8, 0.8)
    paths = [f"lfw/{names[k]}/{names[k]}_{i % 4 + 1:04d}.png" for i, k in enumerate(who)]
    e5 = os.path.join(tmp, "lfw.h5")
    write_embeddings(e5, paths, emb)
    index = {p: i for i, p in enumerate(paths)}
    entries = [("Aaron_Peirsol", 1, "Aaron_Peirsol", 2), ("Abel_Pacheco", 3, "Aaron_Peirsol", 4),
               ("Akhmed_Zakayev", 1, "Akhmed_Zakayev", 4), ("Aaron_Peirsol", 1, "Akhmed_Zakayev", 2),
               ("Abel_Pacheco", 2, "Abel_Pacheco", 3)]
    text = "1\t5\n# a comment\n\n"
    for a, n1, b, n2 in entries:
        text += f"{a}\t{n1}\t{n2}\n" if a == b else f"{a}\t{n1}\t{b}\t{n2}\n"
    pairs_txt = os.path.join(tmp, "pairs.txt")
    open(pairs_txt, "w").write(text)
    p = verify("--embeddings", e5, "--pairs", pairs_txt)
    check(p.returncode == 0, f"pairs file: exit {p.returncode}: {p.stderr}")
    if p.returncode:
        return
    lines, summary = split_output(p.stdout)
    ab = [(index[f"lfw/{a}/{a}_{n1:04d}.png"], index[f"lfw/{b}/{b}_{n2:04d}.png"]) for a, n1, b, n2 in entries]
    scores = [cosine(emb, a, b) for a, b in ab]
    same = [int(a == b) for a, _, b, _ in entries]
    check(len(lines) == 5, "pairs file: one line per pair")
    for fields, (a, b), s, y in zip(lines, ab, scores, same):  # file order
        check_pair_line(fields, paths[a], paths[b], float(s), y, 0.4, "pairs file")
    check_summary(summary, scores, same, 0.4, "pairs file")

    bad = os.path.join(tmp, "bad_pairs.txt")
    open(bad, "w").write("Aaron_Peirsol 1 2\nAaron_Peirsol 1 Nobody 7\n")
    p = verify("--embeddings", e5, "--pairs", bad)
    check(p.returncode == 1 and "bad_pairs.txt:2: no embedding for Nobody/Nobody_0007.png" in p.stderr,
          f"missing pairs entry (embeddings): {p.stderr}")
    open(bad, "w").write("Aaron_Peirsol 1 2 3 4 5\n")
    p = verify("--embeddings", e5, "--pairs", bad)
    check(p.returncode == 1 and "bad_pairs.txt:1: expected 'name n1 n2' or 'name1 n1 name2 n2'" in p.stderr,
          f"malformed pairs line: {p.stderr}")
    open(bad, "w").write("Aaron_Peirsol 1 2\nAbel_Pacheco 1 2\n")
    p = verify("--embeddings", e5, "--pairs", bad)
    check(p.returncode == 1 and "no different-identity pairs" in p.stderr, f"pairs file of one kind: {p.stderr}")


def test_max_pairs(tmp, rng):
    identities = [f"id{k}" for k in range(6)]
    emb, who = clustered(rng, identities, 5, 8, 1.0)
    paths = [f"x/{identities[k]}_{i % 5}.png" for i, k in enumerate(who)]
    e5 = os.path.join(tmp, "many.h5")
    write_embeddings(e5, paths, emb)
    runs = {}
    for seed in ("1", "2"):
        p = verify("--embeddings", e5, "--max-pairs", "200", "--seed", seed)
        check(p.returncode == 0, f"--max-pairs: exit {p.returncode}: {p.stderr}")
        lines, summary = split_output(p.stdout)
        runs[seed] = [tuple(l[:2]) for l in lines]
        check(int(summary["pairs"]) == 200 and int(summary["same pairs"]) == 60, f"--max-pairs 200: {summary}")
        check(len(set(runs[seed])) == 200 and all(a < b for a, b in runs[seed]), "sampled pairs are distinct, a < b")
        check(sum(l[5] == "same" for l in lines) == 60, "all 6 x 10 same pairs kept")
    again = split_output(verify("--embeddings", e5, "--max-pairs", "200", "--seed", "1").stdout)[0]
    check([tuple(l[:2]) for l in again] == runs["1"], "same seed, same sample")
    check(runs["1"] != runs["2"], "another seed, another sample")
    p = verify("--embeddings", e5, "--max-pairs", "50")
    check(p.returncode == 1 and "60 same-identity pairs leave no room" in p.stderr, f"--max-pairs too small: {p.stderr}")
    p = verify("--embeddings", e5, "--max-pairs", "0", "--no-pairs")
    check(p.returncode == 0 and "pairs: 435" in p.stdout, "--max-pairs 0: all 30*29/2 pairs")
    # Balanced: at most 4 of each identity's 10 same pairs, 2.5 different pairs per same pair.
    p = verify("--embeddings", e5, "--same-per-identity", "4", "--diff-per-same", "2.5", "--seed", "3")
    lines, summary = split_output(p.stdout)
    per = {}
    for l in lines:
        if l[5] == "same":
            per[l[0].split("/")[1].rsplit("_", 1)[0]] = per.get(l[0].split("/")[1].rsplit("_", 1)[0], 0) + 1
    check(p.returncode == 0 and per == {i: 4 for i in identities} and int(summary["different pairs"]) == 60,
          f"--same-per-identity 4 --diff-per-same 2.5: {per}, {summary.get('different pairs')} different pairs")


def test_forward_pass(tmp, rng):
    """The image path: a tiny random timm model; kao verify on PNGs = kao embed + verify --embeddings."""
    weights = os.path.join(tmp, "tiny.h5")
    p = subprocess.run([sys.executable, os.path.join(TOOLS, "convert_timm.py"), "to-h5", "--model",
                        "tf_efficientnetv2_b0", "--channel-multiplier", "0.25", "--depth-multiplier", "0.5",
                        "--random", "--num-classes", "16", "--out", weights], capture_output=True, text=True)
    check(p.returncode == 0, f"convert_timm --random: {p.stderr}")
    if p.returncode:
        return
    faces = os.path.join(tmp, "faces")
    os.makedirs(faces)
    for name in ("a_1", "a_2", "b_1", "b_2", "c_1"):
        Image.fromarray(rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)).save(os.path.join(faces, name + ".png"))
    p = verify("--weights", weights, "--size", "40x36", "--quiet", faces)
    check(p.returncode == 0, f"images: exit {p.returncode}: {p.stderr}")
    e5 = os.path.join(tmp, "faces_emb.h5")
    q = kao("embed", "--weights", weights, "--size", "40x36", "--quiet", faces, "--out", e5)
    r = verify("--embeddings", e5)
    check(q.returncode == 0 and r.returncode == 0, f"embed + verify: {q.stderr} {r.stderr}")
    if p.returncode or q.returncode or r.returncode:
        return
    direct, _ = split_output(p.stdout)
    via_file, _ = split_output(r.stdout)
    check(len(direct) == 10 and [l[:2] for l in direct] == [l[:2] for l in via_file]
          and all(abs(float(x[4]) - float(y[4])) <= 1e-6 for x, y in zip(direct, via_file)),
          "kao verify on images = kao embed + kao verify --embeddings")

    # A pairs file with ROOT: <root>/<name>/<name>_NNNN.png.
    lfw = os.path.join(tmp, "lfw")
    for name, n in (("Ann", 1), ("Ann", 2), ("Bob", 1)):
        os.makedirs(os.path.join(lfw, name), exist_ok=True)
        shutil.copy(os.path.join(faces, "a_1.png"), os.path.join(lfw, name, f"{name}_{n:04d}.png"))
    pairs_txt = os.path.join(tmp, "root_pairs.txt")
    open(pairs_txt, "w").write("Ann 1 2\nAnn 2 Bob 1\n")
    p = verify("--weights", weights, "--size", "40x36", "--quiet", "--pairs", pairs_txt, lfw)
    lines, summary = split_output(p.stdout) if p.returncode == 0 else ([], {})
    check(p.returncode == 0 and len(lines) == 2 and lines[0][0] == f"{lfw}/Ann/Ann_0001.png"
          and lines[1][5] == "different", f"pairs file + ROOT: {p.returncode} {p.stderr} {lines}")
    open(pairs_txt, "w").write("Ann 1 2\nAnn 2 Bob 3\n")
    p = verify("--weights", weights, "--quiet", "--pairs", pairs_txt, lfw)
    check(p.returncode == 1 and f"root_pairs.txt:2: {lfw}/Bob/Bob_0003.png: No such file" in p.stderr,
          f"missing pairs entry (root): {p.stderr}")
    # Weights that kao train did not write record no thresholds: --threshold eer names the file.
    p = verify("--weights", weights, "--quiet", "--threshold", "far1e-3", faces)
    check(p.returncode == 1 and f"{weights} records no verification thresholds" in p.stderr and
          len(p.stderr.strip().splitlines()) == 1, f"--threshold far1e-3 without recorded thresholds: {p.stderr}")


def test_bad_input(tmp):
    def folder(name, files):
        d = os.path.join(tmp, name)
        os.makedirs(d)
        for f in files:
            open(os.path.join(d, f), "wb").close()  # never decoded: the error comes first
        return d

    w = os.path.join(tmp, "unused_weights.h5")
    cases = [
        (folder("one", ["a_1.png"]), "needs at least two images"),
        (folder("noid", ["foo.png", "bar_1.png"]), "cannot tell the identity of 'foo.png': expected <identity>_<n>.png"),
        (folder("oneid", ["taro_1.png", "taro_2.png", "taro_3.png"]), "only one identity"),
        (folder("nosame", ["a_1.png", "b_1.png", "c_1.png"]), "no same-identity pairs"),
    ]
    for d, message in cases:
        p = verify("--weights", w, d)
        ok = p.returncode == 1 and message in p.stderr and len(p.stderr.strip().splitlines()) == 1
        check(ok, f"{os.path.basename(d)}: exit {p.returncode}, stderr {p.stderr!r}, wanted {message!r}")

    e5 = os.path.join(tmp, "small.h5")
    write_embeddings(e5, ["p/a_1.png", "p/a_2.png", "p/b_1.png"], [[1, 0], [1, 1], [0, 1]])
    for opt in ("--pairs-out", "--roc", "--roc-csv", "--hist"):
        target = os.path.join(tmp, "missing_folder", "out.x")
        p = verify("--embeddings", e5, opt, target)
        check(p.returncode == 1 and "does not exist" in p.stderr and p.stdout == ""
              and not os.path.exists(os.path.dirname(target)), f"{opt} in a missing folder: {p.stderr}")
    zero = os.path.join(tmp, "zero.h5")
    write_embeddings(zero, ["p/a_1.png", "p/a_2.png", "p/b_1.png"], [[1, 0], [0, 0], [0, 1]])
    p = verify("--embeddings", zero)
    check(p.returncode == 1 and "p/a_2.png: its embedding is all zeros" in p.stderr, f"zero embedding: {p.stderr}")
    one = os.path.join(tmp, "one.h5")
    write_embeddings(one, ["p/a_1.png"], [[1, 0]])
    p = verify("--embeddings", one)
    check(p.returncode == 1 and "needs at least two images" in p.stderr, f"one embedding: {p.stderr}")
    p = verify("--embeddings", os.path.join(tmp, "nothing.h5"))
    check(p.returncode == 1 and "No such file" in p.stderr, f"missing embeddings file: {p.stderr}")
    for args in ([], ["--threshold", "2", "--embeddings", e5], ["--threshold", "eer", "--embeddings", e5],
                 ["--diff-per-same", "-1", "--embeddings", e5], ["--sort", "size", "--embeddings", e5],
                 ["--embeddings", e5, "--weights", w], ["--bogus", "1"]):
        p = verify(*args)
        check(p.returncode == 2 and "see kao verify --help" in p.stderr, f"usage error {args}: {p.returncode} {p.stderr}")
    p = verify("--help")
    options = ["--weights", "--model", "--width-mult", "--depth-mult", "--size", "--batch", "--threads",
               "--embeddings", "--layout", "--max-pairs", "--same-per-identity", "--diff-per-same", "--seed",
               "--threshold", "--sort", "--pairs-out",
               "--no-pairs", "--roc", "--roc-csv", "--hist", "--quiet", "--pairs"]
    check(p.returncode == 0 and all(o in p.stdout for o in options), "--help lists every option")


def main():
    rng = np.random.default_rng(11)
    tmp = tempfile.mkdtemp(prefix="kao_verify_")
    try:
        test_names_layout(tmp, rng)
        test_folders_layout(tmp, rng)
        test_pairs_file(tmp, rng)
        test_max_pairs(tmp, rng)
        test_bad_input(tmp)
        test_forward_pass(tmp, rng)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    finish("test_verify")


if __name__ == "__main__":
    main()
