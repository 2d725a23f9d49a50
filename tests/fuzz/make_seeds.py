"""make_seeds.py — the seed corpus of the fuzz harnesses (tests/fuzz/fuzz_*.c), made at fuzz time.

    make_seeds.py OUT KAO     (OUT/<target>/<seed>; KAO: the kao program, for an ONNX export)

Every seed is small (a few KB; the weights files of a model at width and depth 0.1, about 100 KB):
libFuzzer mutates them, so the smaller, the more executions. scripts/fuzz.sh runs it with the
tools' Python (scripts/setup_python.sh).
"""
import io
import json
import os
import struct
import subprocess
import sys
import tempfile

os.environ.setdefault("KERAS_BACKEND", "torch")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import h5py  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import convert_timm  # noqa: E402
import kao_seal  # noqa: E402

VARIANT, WIDTH, DEPTH = "tf_efficientnetv2_b0", 0.1, 0.1


def save(out, target, name, data):
    os.makedirs(os.path.join(out, target), exist_ok=True)
    with open(os.path.join(out, target, name), "wb") as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


# ---- images -------------------------------------------------------------------------------------

def jpeg(image, **options):
    buf = io.BytesIO()
    image.save(buf, "JPEG", **options)
    return buf.getvalue()


def image_seeds(out):
    folder = os.path.join(ROOT, "tests", "data", "images")
    for name in sorted(os.listdir(folder)):
        if name.endswith(".png") and os.path.getsize(os.path.join(folder, name)) <= 4096:
            save(out, "image", name, read(os.path.join(folder, name)))
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (7, 9, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90
    seeds = {"baseline.jpg": jpeg(rgb, quality=75), "progressive.jpg": jpeg(rgb, progressive=True),
             "444.jpg": jpeg(rgb, subsampling=0), "422.jpg": jpeg(rgb, subsampling=1),
             "grey.jpg": jpeg(rgb.convert("L")), "cmyk.jpg": jpeg(rgb.convert("CMYK")),
             "exif6.jpg": jpeg(rgb, exif=exif.tobytes()), "optimised.jpg": jpeg(rgb, optimize=True)}
    for name, data in seeds.items():
        save(out, "image", name, data)


# ---- text formats ---------------------------------------------------------------------------------

def config_seeds(out):
    for name in sorted(os.listdir(os.path.join(ROOT, "configs"))):
        save(out, "config", name, read(os.path.join(ROOT, "configs", name)))
    save(out, "config", "small.ini", b"[model]\nname = tf_efficientnetv2_s\nwidth_mult = 0.5\n"
         b"input_mean = 0.5,0.5,0.5\n[train]\nepochs = 2\nlr = 1e-3\nschedule = step\n"
         b"[data]\nroot = \xe9\xa1\x94/faces\n  ; comment\n[augment]\nhflip = 0.5\n")


def pairs_seeds(out):
    # The names fuzz_pairs.c knows.
    save(out, "pairs", "lfw.txt", b"2 3\nAaron 1 2\nBea 2 1\nAaron 1 Bea 1\n")
    save(out, "pairs", "utf8.txt", "# comment\n太郎 1 12\nBea\t2\t太郎\t1\n".encode())


def fnv1a64(data, h=0xCBF29CE484222325):
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def manifest(sides):
    """A kao-split v1 manifest of fuzz_split.c's data set; sides: image -> 'train' or 'val'."""
    lines = [f"{side}\t{image.split('/')[0]}\t{image}\n" for image, side in sides.items()]
    h = 0xCBF29CE484222325
    for line in sorted(line.encode() for line in lines):
        h = fnv1a64(line, h)
    val = sum(side == "val" for side in sides.values())
    header = (f"# kao-split v1 seed=42 val_fraction=0.1 val_count=0 train={len(sides) - val} val={val} "
              f"hash={h:016x}\n")
    return (header + "".join(lines)).encode()


def split_seeds(out):
    images = ["a/1.png", "a/2.jpg", "a/3.PNG", "b/1.png", "b/2.png", "名前/1.png", "名前/2.jpeg"]
    sides = {image: "train" for image in images}
    sides.update({"a/2.jpg": "val", "b/1.png": "val", "名前/2.jpeg": "val"})
    save(out, "split", "split.tsv", manifest(sides))
    save(out, "split", "all_train.tsv", manifest({image: "train" for image in images}))


# ---- weights ------------------------------------------------------------------------------------

def tiny_timm():
    model = convert_timm.build_timm(VARIANT, WIDTH, DEPTH, num_classes=4)
    return convert_timm.randomise_bn(model, 0)


def h5_bytes(write, userblock=0):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "f.h5")
        with h5py.File(path, "w", track_order=True, libver=("earliest", "v110"), userblock_size=userblock) as f:
            write(f)
        if userblock:
            kao_seal.seal(path)
        return read(path)


def checkpoint_info(f):
    """The root attributes, config and class list of a checkpoint (checkpoint.h), no arrays."""
    for key, value in {"format": "kao-checkpoint", "config_hash": "0123456789abcdef", "split_hash": "fedcba9876543210",
                       "early_stop_metric": "eer", "kao_version": "0.1.0"}.items():
        f.attrs[key] = value
    for key in ("format_version", "step", "epoch", "batch_in_epoch", "early_stop_best_epoch",
                "early_stop_bad_epochs", "epoch_correct", "epoch_images"):
        f.attrs[key] = np.int64(1)
    f.attrs["early_stop_best"] = f.attrs["epoch_loss_sum"] = np.float64(0.5)
    f.create_dataset("config", data=[b"[train]\nepochs = 1\n"], dtype=h5py.string_dtype())
    f.create_dataset("arcface/classes", data=[b"a", "太郎".encode()], dtype=h5py.string_dtype())
    f.create_dataset("arcface/W", data=np.ones((4, 2), np.float32))


def declared_classes(f):
    """A checkpoint whose class list is declared, 3e9 names, but never written (test_h5_declared_strings.c)."""
    checkpoint_info(f)
    del f["arcface/classes"]
    f.create_dataset("arcface/classes", shape=(3_000_000_000,), dtype=h5py.string_dtype())


def big_claim(f):
    """Attributes that claim a model of tens of GB, over no tensors (test_weights_attributes.c)."""
    f.attrs["format"], f.attrs["architecture"] = "kao-weights", "tf_efficientnetv2_l"
    f.attrs["format_version"], f.attrs["embedding_dim"] = np.int64(1), np.int64(65536)
    f.attrs["width_mult"], f.attrs["depth_mult"] = np.float64(8), np.float64(1.5)


def weights_seeds(out, tmp):
    tiny = os.path.join(tmp, "tiny.h5")
    convert_timm.write_h5(tiny, tiny_timm(), VARIANT, WIDTH, DEPTH,
                          {"input_size": (3, 32, 32), "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)})
    sealed = read(tiny)
    save(out, "weights", "sealed.h5", sealed)
    save(out, "weights", "unsealed.h5", bytes(kao_seal.BLOCK) + sealed[kao_seal.BLOCK:])  # a zero user block
    save(out, "weights", "checkpoint_sealed.h5", h5_bytes(checkpoint_info, kao_seal.BLOCK))
    save(out, "weights", "checkpoint.h5", h5_bytes(checkpoint_info))
    save(out, "weights", "model.safetensors", read(safetensors_file(tmp, "F32")))
    save(out, "weights", "declared_classes.h5", h5_bytes(declared_classes))
    save(out, "weights", "big_claim.h5", h5_bytes(big_claim))
    save(out, "weights", "hdf5_loop.h5", read(os.path.join(ROOT, "tests", "data", "hdf5_loop.h5")))  # test_h5_sandbox_cpu.c
    return tiny


def safetensors_file(tmp, dtype):
    import torch
    from safetensors.torch import save_file
    torch_dtype = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}[dtype]
    sd = {k: (v if k.endswith("num_batches_tracked") else v.to(torch_dtype)).contiguous()
          for k, v in tiny_timm().state_dict().items()}
    path = os.path.join(tmp, f"{dtype}.safetensors")
    save_file(sd, path, metadata={"format": "pt"})
    return path


def raw_safetensors(header):
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text


def safetensors_seeds(out, tmp):
    for dtype in ("F32", "F16", "BF16"):
        save(out, "safetensors", f"tiny_{dtype}.safetensors", read(safetensors_file(tmp, dtype)))
    save(out, "safetensors", "header.safetensors",
         raw_safetensors({"__metadata__": {"format": "pt"}, "conv_stem.weight": {
             "dtype": "F32", "shape": [1, 1, 1, 2], "data_offsets": [0, 8]}}) + bytes(8))


def keras_model(include_top):
    from keras.src.applications import efficientnet_v2
    return efficientnet_v2.EfficientNetV2(WIDTH, DEPTH, 32, name="efficientnetv2-b0", include_top=include_top,
                                          weights=None, input_shape=(32, 32, 3), classes=4)


def keras3_layout(model):
    import keras_h5
    return lambda f: keras_h5.write_keras3(f, model)


def keras2_layout(model):
    """Keras 2's model.save: under model_weights, ':0' names, layer_names split in two."""
    import keras_h5
    return lambda f: keras_h5.write_keras2(f, model)


def keras_seeds(out):
    save(out, "keras", "keras3_top.h5", h5_bytes(keras3_layout(keras_model(True))))
    save(out, "keras", "keras2_notop.h5", h5_bytes(keras2_layout(keras_model(False))))


# ---- ONNX -----------------------------------------------------------------------------------------

def onnx_seeds(out, kao, tiny):
    with tempfile.TemporaryDirectory() as tmp:
        for opset in (13, 17):
            path = os.path.join(tmp, f"tiny{opset}.onnx")
            subprocess.run([kao, "export", "--weights", tiny, "--out", path, "--opset", str(opset)], check=True,
                           stdout=subprocess.DEVNULL)
            save(out, "onnx_check", f"tiny{opset}.onnx", read(path))


def main(argv):
    if len(argv) != 3:
        sys.exit(__doc__)
    out, kao = argv[1], argv[2]
    image_seeds(out)
    config_seeds(out)
    pairs_seeds(out)
    split_seeds(out)
    with tempfile.TemporaryDirectory() as tmp:
        tiny = weights_seeds(out, tmp)
        safetensors_seeds(out, tmp)
        onnx_seeds(out, kao, tiny)
    keras_seeds(out)


if __name__ == "__main__":
    main(sys.argv)
