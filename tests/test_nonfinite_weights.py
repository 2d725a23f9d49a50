"""Weights holding a NaN or an infinity are refused on load, naming the tensor (src/weights.c).

Such weights make every embedding NaN; before, kao info, embed and export accepted them (an ONNX
with NaN initializers, exit 0). For a NaN in a conv kernel and an infinity in a BN statistic,
sealed (kao's own layout) and unsealed: kao info, kao embed and kao export each exit 1 with one
"kao: error:" line naming the file and the tensor, and write nothing.
Prints "N passed, N failed"; exit status 1 on any failure.
"""
import math
import os
import shutil
import sys
import tempfile

import timm
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kaotest import ORL, check, finish, kao  # noqa: E402
from convert_timm import write_h5  # noqa: E402

TMP = tempfile.mkdtemp(prefix="kao_test_nonfinite_")
image = os.path.join(ORL, "s1", "1.png")

for tensor, value in (("blocks.1.0.conv_exp.weight", math.nan), ("bn2.running_var", math.inf)):
    torch.manual_seed(0)
    model = timm.create_model("tf_efficientnetv2_b0", channel_multiplier=0.25, depth_multiplier=0.5, num_classes=8)
    with torch.no_grad():
        model.state_dict()[tensor].view(-1)[3] = value
    weights = os.path.join(TMP, "bad.h5")
    write_h5(weights, model, "tf_efficientnetv2_b0", 0.25, 0.5)
    outputs = {"embed": os.path.join(TMP, "e.h5"), "export": os.path.join(TMP, "m.onnx")}
    runs = {
        "info": kao("info", weights),
        "embed": kao("embed", "--weights", weights, "--size", "32", "--quiet", image, "--out", outputs["embed"]),
        "export": kao("export", "--weights", weights, "--size", "32", "--out", outputs["export"]),
    }
    for command, p in runs.items():
        lines = p.stderr.strip().splitlines()
        check(p.returncode == 1 and len(lines) == 1 and weights in lines[0] and f"'{tensor}'" in lines[0],
              f"kao {command} with {value} in {tensor}: exit {p.returncode}, {p.stderr!r}")
        check(command not in outputs or not os.path.exists(outputs[command]), f"kao {command} wrote its output")

shutil.rmtree(TMP, ignore_errors=True)
finish("test_nonfinite_weights")
