"""kao's main job on its built-in default (scripts/demo.sh) runs to the end and learns.

Runs the demo into a temporary folder with the tested build and checks: exit status 0; the run
folder (config, split, metrics, checkpoints, best.h5), the ONNX file, the pair list and both plots
exist; the ONNX file passes `kao export --check`; and verification on the 10 identities held out
from training beats chance by a wide margin (ROC AUC > 0.8; chance is 0.5 — the demo reaches
about 0.93, see README). Labelled slow: the sanitizer pass skips it (it trains for ~1 minute).
Prints "N passed, N failed"; exit status 1 on any failure.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kaotest import BINARY_DIR, SOURCE_DIR, check, finish  # noqa: E402

TMP = tempfile.mkdtemp(prefix="kao_test_demo_")

env = dict(os.environ, KAO_DEMO_DIR=TMP, KAO_BUILD_DIR=BINARY_DIR)
r = subprocess.run(["bash", os.path.join(SOURCE_DIR, "scripts", "demo.sh")], env=env, capture_output=True, text=True)
print(r.stdout[-1500:])
check(r.returncode == 0, f"demo exit status {r.returncode}: {r.stderr[-2000:]}")
for name in ["run/config.ini", "run/split.tsv", "run/metrics.csv", "run/best.h5", "model.onnx", "pairs.tsv",
             "roc.png", "hist.png"]:
    check(os.path.isfile(os.path.join(TMP, name)), f"{name} written")
check(os.path.isdir(os.path.join(TMP, "run", "checkpoints")) and os.listdir(os.path.join(TMP, "run", "checkpoints")),
      "checkpoints written")
auc = re.search(r"^AUC: ([0-9.]+)$", r.stdout, re.M)
check(auc is not None and float(auc.group(1)) > 0.8, f"held-out ROC AUC > 0.8: {auc and auc.group(1)}")
pairs = re.search(r"^pairs: (\d+)$", r.stdout, re.M)
check(pairs is not None and int(pairs.group(1)) == 4950, "all 4,950 pairs of the 100 held-out images")

shutil.rmtree(TMP)
finish("test_demo")
