"""The verification thresholds of kao train, end to end (trained_info.h, metrics.h), on 10 ORL
identities with every validation pair (verify.diff_pairs_per_same = 0; 3 validation images each,
under the same-pair cap), so that the pairs can be rebuilt here:
 - the end of training prints best.h5's EER threshold and threshold at FAR 1e-3, and warns that
   its 405 different pairs cannot measure a FAR of 1e-3;
 - best.h5 records them (threshold_eer, threshold_far1e-3, threshold_diff_pairs) equal to what
   was printed and to metrics.csv's row of the best epoch, and they are the EER threshold and the
   FAR 1e-3 threshold of tools/gen_metrics_reference.py (NumPy) on kao embed's embeddings of the
   validation images with best.h5;
 - kao export writes them exactly into kao.threshold_eer / kao.threshold_far1e-3, which
   kao export --check accepts; kao info shows them;
 - kao verify --threshold eer (and far1e-3) decides with exactly that value.
"""
import csv
import os
import re
import sys

import h5py
import numpy as np
import onnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_common as t  # noqa: E402

sys.path.insert(0, os.path.join(t.SOURCE, "tools"))
from gen_metrics_reference import reference  # noqa: E402  (the definitions, in NumPy)

ws = t.Workspace()
try:
    root = ws.data("orl10", [f"s{i}" for i in range(1, 11)])
    cfg = ws.config("c.ini", root, threads=2)
    run = ws.path("run")
    code, out = t.kao("train", "--config", cfg, "--out", run, "--set", "train.epochs=2", "--set",
                      "verify.diff_pairs_per_same=0", check_exit=0)
    said = re.search(r"best.h5 thresholds \(validation pairs of epoch (\d+)\): EER threshold (\S+), "
                     r"FAR 1e-3 threshold (\S+) \((\d+) different pairs\)", out)
    t.check(said is not None, f"the end of training names best.h5's thresholds:\n{out[-1500:]}")
    t.check("warning: 405 different-identity validation pairs cannot measure a FAR of 1e-3" in out,
            "a warning that 405 different pairs cannot measure FAR 1e-3")
    best = os.path.join(run, "best.h5")
    with h5py.File(best, "r") as f:
        eer, far, diff = (f.attrs.get(k) for k in ("threshold_eer", "threshold_far1e-3", "threshold_diff_pairs"))
    t.check(eer is not None and far is not None and diff == 405, f"best.h5 records {eer}, {far}, {diff}")
    with h5py.File(os.path.join(run, "last.h5"), "r") as f:
        t.check("threshold_eer" in f.attrs and "threshold_far1e-3" in f.attrs, "last.h5 records thresholds")
    if said and eer is not None:
        epoch = int(said.group(1))
        t.check(abs(float(said.group(2)) - eer) <= 5e-7 and abs(float(said.group(3)) - far) <= 5e-7 and
                int(said.group(4)) == diff, f"printed {said.groups()} vs best.h5 {eer!r} {far!r} {diff}")
        with open(os.path.join(run, "metrics.csv")) as f:
            row = [r for r in csv.DictReader(f) if r["kind"] == "epoch" and int(r["epoch"]) == epoch][0]
        t.check(abs(float(row["eer_threshold"]) - eer) <= 1e-5 * max(1, abs(eer)) and
                abs(float(row["threshold_far_1e3"]) - far) <= 1e-5 * max(1, abs(far)),
                f"metrics.csv epoch {epoch}: {row['eer_threshold']} {row['threshold_far_1e3']} vs {eer} {far}")

        # The definitions, on the validation pairs rebuilt from kao embed's embeddings.
        val = [line.split("\t")[2].strip() for line in open(os.path.join(run, "split.tsv")) if line.startswith("val\t")]
        emb_file = ws.path("val.h5")
        t.kao("embed", "--weights", best, "--quiet", *[os.path.join(root, p) for p in val], "--out", emb_file,
              check_exit=0)
        with h5py.File(emb_file, "r") as f:
            e = f["embeddings"][()].astype(np.float64)
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        ids = np.array([p.split("/")[0] for p in val])
        iu = np.triu_indices(len(val), 1)
        scores, same = (e @ e.T)[iu].astype(np.float32), (ids[:, None] == ids[None, :])[iu]
        r = reference(scores, same.astype(np.int32), 0.4)
        t.check(r["diff_pairs"] == 405 and abs(r["eer_threshold"] - eer) <= 1e-5 and
                abs(r["far_1e3_threshold"] - far) <= 1e-5,
                f"NumPy on kao embed's embeddings: EER threshold {r['eer_threshold']}, FAR 1e-3 threshold "
                f"{r['far_1e3_threshold']} vs best.h5 {eer}, {far}")

        # export: the exact values; --check accepts them
        model = ws.path("face.onnx")
        t.kao("export", "--weights", best, "--out", model, check_exit=0)
        md = {p.key: p.value for p in onnx.load(model).metadata_props}
        t.check(float(md.get("kao.threshold_eer", "nan")) == eer and
                float(md.get("kao.threshold_far1e-3", "nan")) == far,
                f"ONNX metadata {md.get('kao.threshold_eer')} {md.get('kao.threshold_far1e-3')} vs {eer!r} {far!r}")
        code, text = t.kao("export", "--check", model)
        t.check(code == 0, f"kao export --check: {text[-500:]}")
        code, text = t.kao("info", best)
        t.check(code == 0 and f"thresholds:    EER {eer:.6f}, FAR 1e-3 {far:.6f} (validation, 405 different pairs;"
                in text, f"kao info: {text[-600:]}")

        # kao verify --threshold eer|far1e-3 on the validation images: decides with exactly that value
        vdir = ws.path("val")
        for p in val:
            os.makedirs(os.path.join(vdir, os.path.dirname(p)), exist_ok=True)
            os.symlink(os.path.join(root, p), os.path.join(vdir, p))
        for name, value in (("eer", eer), ("far1e-3", far)):
            code, text = t.kao("verify", "--weights", best, "--quiet", "--no-pairs", "--follow-symlinks",
                               "--threshold", name, vdir)
            summary = dict(l.split(": ", 1) for l in text.splitlines() if ": " in l)
            tp, fp = int(np.sum(same & (scores >= value))), int(np.sum(~same & (scores >= value)))
            t.check(code == 0 and summary.get("threshold") == f"{value:.6f}" and int(summary.get("TP", -1)) == tp
                    and int(summary.get("FP", -1)) == fp,
                    f"verify --threshold {name}: exit {code}, threshold {summary.get('threshold')} TP "
                    f"{summary.get('TP')} FP {summary.get('FP')} vs {value:.6f} {tp} {fp}\n{text[-500:]}")
finally:
    ws.cleanup()
t.finish("test_train_thresholds")
