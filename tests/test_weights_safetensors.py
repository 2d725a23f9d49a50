"""timm's safetensors files read by kao as they are (src/weights_safetensors.c), against timm.

1. Full-size tf_efficientnetv2_b0 (random weights, random BN statistics, a 32-d head) saved with
   safetensors.torch.save_file in F32, F16 and BF16: `kao embed --weights X.safetensors` equals
   timm's eval forward on the same (for F16/BF16: the same rounded) weights within 1e-4 of the
   embedding's scale. `kao info` names the format; the variant's pretrained_cfg (input size,
   normalisation) is recorded, so embed's defaults are timm's.
2. A tiny b0 (width 0.25, depth 0.5, a 512-d head), whose shapes tell no variant: loads with
   --model and the multipliers.
3. `kao convert`: the converted file is sealed, `kao info` names its format, it records the
   pretrained_cfg, and its embeddings equal the safetensors file's exactly.
4. Bad files: a damaged header (length, JSON, offsets), a wrong dtype, a missing key, an extra
   key, a duplicate key, overlapping data, a truncated file: each one "kao: error:" line naming
   the file, a non-zero exit, no crash; and 60 seeded random damages of the header never crash.
Prints "N passed, N failed"; exit status 1 on any failure.
"""
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile

# libgomp's spin-waiting stalls kao for seconds when other processes share the two cores.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")
import h5py  # noqa: E402
import numpy as np  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from torchvision import transforms  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kaotest import KAO, ORL, check, compare, embed, finish, kao  # noqa: E402
from convert_timm import randomise_bn  # noqa: E402

TMP = tempfile.mkdtemp(prefix="kao_test_safetensors_")
IMAGES = [os.path.join(ORL, "s1", "1.png"), os.path.join(ORL, "s2", "1.png"), os.path.join(ORL, "s3", "4.png")]
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def path(name):
    return os.path.join(TMP, name)


def timm_embed(model, size, norm=IMAGENET):
    tf = transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor(), transforms.Normalize(*norm)])
    x = torch.stack([tf(Image.open(p).convert("RGB")) for p in IMAGES])
    with torch.no_grad():
        return model(x).numpy()




def rounded(model, dtype):
    """A copy of model whose float tensors went through dtype (what a dtype file holds)."""
    sd = {k: v.to(dtype) if v.is_floating_point() else v for k, v in model.state_dict().items()}
    copy = timm.create_model("tf_efficientnetv2_b0", num_classes=32).eval()
    copy.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()})
    return sd, copy


# ---- 1. full-size b0 in three dtypes ---------------------------------------------------------
torch.manual_seed(0)
b0 = randomise_bn(timm.create_model("tf_efficientnetv2_b0", num_classes=32), 1).eval()
for label, dtype in [("F32", torch.float32), ("F16", torch.float16), ("BF16", torch.bfloat16)]:
    sd, model = rounded(b0, dtype)
    file = path(f"b0_{label}.safetensors")
    save_file(sd, file)
    compare(f"b0 {label} at 64x64", embed(file, IMAGES, "--size", "64"), timm_embed(model, 64), "timm")
    p = kao("info", file)
    check(p.returncode == 0 and f"format:        timm safetensors ({label})" in p.stdout and
          "tf_efficientnetv2_b0 (width 1, depth 1)" in p.stdout and "embedding:     32" in p.stdout,
          f"kao info {label}: {p.stdout}{p.stderr}")
# Without --size: timm's pretrained_cfg for b0 (224x224, ImageNet mean/std) as recorded.
compare("b0 F32 at the recorded 224x224", embed(path("b0_F32.safetensors"), IMAGES), timm_embed(b0, 224), "timm")

# ---- 2. tiny b0: the shapes tell no variant, --model does -------------------------------------
torch.manual_seed(1)
tiny = randomise_bn(timm.create_model("tf_efficientnetv2_b0", channel_multiplier=0.25, depth_multiplier=0.5,
                                      num_classes=512), 2).eval()
save_file(tiny.state_dict(), path("tiny.safetensors"))
compare("tiny b0 F32 at 64x64", embed(path("tiny.safetensors"), IMAGES, "--size", "64", "--model", "tf_efficientnetv2_b0",
                                      "--width-mult", "0.25", "--depth-mult", "0.5"), timm_embed(tiny, 64), "timm")

# ---- 3. kao convert ------------------------------------------------------------------------------
p = kao("convert", path("b0_F16.safetensors"), path("converted.h5"))
check(p.returncode == 0 and "timm safetensors (F16)" in p.stdout, f"kao convert: {p.stdout}{p.stderr}")
check(open(path("converted.h5"), "rb").read(11) == b"kao-seal 1\n", "the converted file is sealed")
p = kao("info", path("converted.h5"))
check(p.returncode == 0 and "format:        kao weights (sealed)" in p.stdout and "CRC-32 match" in p.stdout,
      f"kao info on the converted file: {p.stdout}{p.stderr}")
with h5py.File(path("converted.h5"), "r") as f:
    check(f.attrs["format"] == "kao-weights" and f.attrs["embedding_dim"] == 32 and f.attrs["input_height"] == 224 and
          np.allclose(f.attrs["input_mean"], IMAGENET[0]) and np.allclose(f.attrs["input_std"], IMAGENET[1]) and
          f["conv_stem.weight"].dtype == np.float32, f"converted attributes: {dict(f.attrs)}")
a = embed(path("converted.h5"), IMAGES, "--size", "64")
b = embed(path("b0_F16.safetensors"), IMAGES, "--size", "64")
check(a is not None and b is not None and np.array_equal(a, b), "converted file embeds as its source, exactly")
p = kao("convert", path("converted.h5"), path("converted.h5"))
check(p.returncode == 2 and "OUT is IN" in p.stderr, f"convert onto itself: {p.returncode} {p.stderr}")

# ---- 4. bad files ---------------------------------------------------------------------------------
tiny_sd = {k: v.contiguous() for k, v in tiny.state_dict().items()}


def write_raw(name, header, data, length=None):
    """A safetensors file from a header (dict or bytes) and the data bytes."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    with open(path(name), "wb") as f:
        f.write(struct.pack("<Q", len(text) if length is None else length) + text + data)
    return path(name)


def parts(sd):
    """(header, data) as safetensors lays them out, for editing."""
    save_file(sd, path("parts.safetensors"))
    raw = open(path("parts.safetensors"), "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def expect_error(what, file, needle, *args):
    p = kao("embed", "--weights", file, "--size", "64", "--quiet", "--model", "tf_efficientnetv2_b0", "--width-mult",
            "0.25", "--depth-mult", "0.5", *args, IMAGES[0], "--out", path("never.h5"))
    lines = [line for line in p.stderr.strip().split("\n") if line]
    check(p.returncode == 1 and len(lines) == 1 and lines[0].startswith("kao: error: ") and
          os.path.basename(file) in lines[0] and needle in lines[0],
          f"{what}: exit {p.returncode}, expected one error naming {os.path.basename(file)} and '{needle}': "
          f"{p.stderr!r}")
    return lines[0] if lines else ""


header, data = parts(tiny_sd)
meta = {k: v for k, v in header.items() if k != "__metadata__"}
first = sorted(meta, key=lambda k: meta[k]["data_offsets"][0])

expect_error("header length past the end", write_raw("long.safetensors", header, data, length=10 ** 9),
             "header length 1000000000 does not fit")
expect_error("header not JSON", write_raw("json.safetensors", json.dumps(header).encode()[:-40] + b" " * 40, data),
             "not valid JSON")
expect_error("truncated data", write_raw("cut.safetensors", header, data[: len(data) // 2]), "data_offsets")
bad = json.loads(json.dumps(header))
bad["conv_stem.weight"]["dtype"] = "F64"
expect_error("wrong dtype", write_raw("f64.safetensors", bad, data), "tensor 'conv_stem.weight' has dtype F64")
bad = json.loads(json.dumps(header))
bad["conv_stem.weight"]["shape"] = [8, 3, 3, 4]
expect_error("shape against offsets", write_raw("shape.safetensors", bad, data), "its data_offsets span")
bad = json.loads(json.dumps(header))
bad[first[1]]["data_offsets"] = [0, bad[first[1]]["data_offsets"][1] - bad[first[1]]["data_offsets"][0]]
expect_error("overlapping tensors", write_raw("overlap.safetensors", bad, data), "share bytes")
bad = json.loads(json.dumps(header))
bad["conv_stem.weight"]["shape"] = [2 ** 40, 2 ** 40, 1, 1]
expect_error("overflowing shape", write_raw("huge.safetensors", bad, data), "more than")
dup = json.dumps(header).encode()
entry = json.dumps({"conv_stem.weight": header["conv_stem.weight"]})[1:-1].encode()
expect_error("duplicate key", write_raw("dup.safetensors", dup[:-1] + b", " + entry + b"}", data), "appears twice")
missing = dict(tiny_sd)
del missing["bn2.running_var"]
save_file(missing, path("missing.safetensors"))
expect_error("missing key", path("missing.safetensors"), "missing tensor 'bn2.running_var'")
extra = dict(tiny_sd)
extra["head.fc.weight"] = torch.zeros(3, 3)
save_file(extra, path("extra.safetensors"))
expect_error("extra key", path("extra.safetensors"), "unexpected tensor 'head.fc.weight'")
int_weight = dict(tiny_sd)
int_weight["conv_stem.weight"] = torch.zeros(8, 3, 3, 3, dtype=torch.int32)
save_file(int_weight, path("i32.safetensors"))
expect_error("integer weights", path("i32.safetensors"), "has dtype I32")

# Random damage to the length and the header never crashes kao: it loads or says why, in one line.
original = open(path("tiny.safetensors"), "rb").read()
header_end = 8 + struct.unpack("<Q", original[:8])[0]
rng = random.Random(7)
crashes = []
for i in range(60):
    damaged = bytearray(original)
    for _ in range(rng.randint(1, 4)):
        damaged[rng.randrange(header_end)] = rng.randrange(256)
    open(path("fuzz.safetensors"), "wb").write(bytes(damaged))
    p = subprocess.run([KAO, "info", path("fuzz.safetensors"), "--model", "tf_efficientnetv2_b0", "--width-mult",
                        "0.25", "--depth-mult", "0.5"], capture_output=True)
    stderr = p.stderr.decode("utf-8", "replace")
    errors = [line for line in stderr.split("\n") if line.startswith("kao: error:")]
    if p.returncode not in (0, 1) or (p.returncode == 1 and len(errors) != 1) or "\ufffd" in stderr:
        crashes.append((i, p.returncode, stderr[-300:]))
check(not crashes, f"damaged headers: {crashes[:3]}")

shutil.rmtree(TMP, ignore_errors=True)
finish("test_weights_safetensors")
