"""Keras's EfficientNetV2 weights read by kao as they are (src/weights_keras.c), against Keras.

Fixtures are made here: keras.applications.EfficientNetV2B0 / S (weights=None, logits out) with
random weights, biases and BatchNorm statistics, saved in the legacy HDF5 layout of the official
efficientnetv2-*.h5 files, in two spellings: Keras 3's save_weights_to_hdf5_group (the root
carries layer_names; ".../kernel") and Keras 2's (what the downloads are: under "model_weights" as
model.save writes it, fixed-length names, ".../kernel:0", "depthwise_kernel:0", layer_names split
into layer_names0, layer_names1 as Keras does for long lists).

1. B0 and S with their tops: `kao embed` (the logits) equals Keras's output on the same images,
   resized as kao resizes them (PIL bilinear) and fed to Keras as 0..255 floats, within 1e-4 of
   the output's scale: the layouts, the block mapping, and the preprocessing kao records (ImageNet
   mean/std for b0, x/128 - 1 for s) all hold.
2. A _notop B0: `kao info` describes a backbone; `kao embed` refuses it in one line; `kao convert`
   keeps it a backbone (no classifier, embedding_dim 0) with Keras's preprocessing recorded; `kao
   train --init` starts from it with a fresh head and a note.
3. `kao convert` of S: sealed, Keras's normalisation (128/255) and size recorded, the same
   embeddings exactly.
4. Bad files: an unknown weight, an unknown layer with weights, a kernel of the wrong rank, a
   missing dataset, a truncated file: one "kao: error:" line naming the file each.
Prints "N passed, N failed"; exit status 1 on any failure.
"""
import os
import shutil
import sys
import tempfile

os.environ["KERAS_BACKEND"] = "torch"
# libgomp's spin-waiting stalls kao for seconds when other processes share the two cores.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")
import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kaotest import ORL, check, compare, embed, finish, kao  # noqa: E402
import keras_h5  # noqa: E402  (tools/, on the path through kaotest)
from train_common import TINY  # noqa: E402

TMP = tempfile.mkdtemp(prefix="kao_test_keras_")
SIZE = 64
IMAGES = [os.path.join(ORL, "s1", "1.png"), os.path.join(ORL, "s2", "1.png"), os.path.join(ORL, "s3", "4.png")]


def path(name):
    return os.path.join(TMP, name)


def build(ctor, include_top, seed):
    """A Keras model with random weights, biases and BN statistics (Keras's initial ones are 1, 0,
    0, 1, under which a wrong BN mapping passes)."""
    keras.utils.set_random_seed(seed)
    model = ctor(weights=None, include_top=include_top, classifier_activation=None, input_shape=(SIZE, SIZE, 3))
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        w = layer.get_weights()
        if isinstance(layer, keras.layers.BatchNormalization):
            g, b, m, v = (x.shape for x in w)
            layer.set_weights([1 + 0.2 * rng.standard_normal(g), 0.1 * rng.standard_normal(b),
                               0.1 * rng.standard_normal(m), 1 + 0.5 * rng.random(v)])
        elif len(w) == 2:  # conv and dense biases
            layer.set_weights([w[0], 0.1 * rng.standard_normal(w[1].shape)])
    return model


def save_keras3(model, file):
    with h5py.File(file, "w") as f:
        keras_h5.write_keras3(f, model)


def save_keras2(model, file):
    """The layout of Keras 2's model.save (the official downloads)."""
    with h5py.File(file, "w") as f:
        keras_h5.write_keras2(f, model)


def keras_images():
    return np.stack([np.asarray(Image.open(p).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR), dtype=np.float32)
                     for p in IMAGES])




def info(file):
    p = kao("info", file)
    check(p.returncode == 0, f"kao info {file}: {p.stdout}{p.stderr}")
    return p.stdout


def expect_error(what, args, needle):
    p = kao(*args)
    lines = [line for line in p.stderr.strip().split("\n") if line]
    check(p.returncode == 1 and len(lines) == 1 and lines[0].startswith("kao: error: ") and needle in lines[0],
          f"{what}: exit {p.returncode}, expected one error with '{needle}': {p.stderr!r}")


# ---- 1. B0 and S with their tops -----------------------------------------------------------------
x = keras_images()
b0 = build(keras.applications.EfficientNetV2B0, True, 1)
save_keras3(b0, path("efficientnetv2-b0.h5"))
compare("B0, Keras 3 layout", embed(path("efficientnetv2-b0.h5"), IMAGES, "--size", SIZE),
        np.asarray(b0.predict(x, verbose=0)), "Keras")
check("format:        Keras HDF5 (efficientnetv2-b0)\n" in info(path("efficientnetv2-b0.h5")), "kao info names B0")

s = build(keras.applications.EfficientNetV2S, True, 2)
save_keras2(s, path("efficientnetv2-s.h5"))
s_out = np.asarray(s.predict(x, verbose=0))
s_kao = embed(path("efficientnetv2-s.h5"), IMAGES, "--size", SIZE)
compare("S, Keras 2 layout", s_kao, s_out, "Keras")
out = info(path("efficientnetv2-s.h5"))
check("format:        Keras HDF5 (efficientnetv2-s)\n" in out and "tf_efficientnetv2_s (width 1, depth 1)" in out and
      "embedding:     1000" in out, f"kao info S: {out}")

# ---- 2. a _notop backbone ---------------------------------------------------------------------------
save_keras3(build(keras.applications.EfficientNetV2B0, False, 3), path("efficientnetv2-b0_notop.h5"))
notop = path("efficientnetv2-b0_notop.h5")
out = info(notop)
check("format:        Keras HDF5 (efficientnetv2-b0, no top)" in out and "embedding:     none: a backbone" in out,
      f"kao info on a _notop file: {out}")
expect_error("embed with a backbone", ["embed", "--weights", notop, "--size", SIZE, IMAGES[0], "--out", path("x.h5")],
             "no classifier: a backbone without an embedding head")
p = kao("convert", notop, path("notop.h5"))
check(p.returncode == 0 and "a backbone without a classifier" in p.stdout, f"convert _notop: {p.stdout}{p.stderr}")
with h5py.File(path("notop.h5"), "r") as f:
    check("classifier.weight" not in f and f.attrs["embedding_dim"] == 0 and f.attrs["input_height"] == 224 and
          np.allclose(f.attrs["input_mean"], [0.485, 0.456, 0.406]) and "bn2.running_var" in f,
          f"converted backbone: {sorted(f.attrs)} {len(f)} datasets")
out = info(path("notop.h5"))
check("format:        kao weights (sealed)" in out and "embedding:     none: a backbone" in out, f"info: {out}")
data = path("faces")
os.makedirs(data)
for ident in ["s1", "s2", "s3", "s4"]:
    os.symlink(os.path.join(ORL, ident), os.path.join(data, ident))
with open(path("train.ini"), "w") as f:
    f.write(TINY.format(root=data, threads=2))
p = kao("train", "--config", path("train.ini"), "--init", notop, "--out", path("run"), "--set", "model.width_mult=1",
        "--set", "model.depth_mult=1", "--set", "train.epochs=1", "--set", "train.warmup_epochs=0",
        "--set", "train.batch_size=8", "--set", "model.input_size=32")
log = p.stdout + p.stderr
check(p.returncode == 0 and "(Keras HDF5 (efficientnetv2-b0, no top))" in log and
      "no classifier in the file: a fresh 32-d embedding head is initialised" in log, f"train --init _notop: {log}")

# ---- 3. kao convert of S ----------------------------------------------------------------------------
p = kao("convert", path("efficientnetv2-s.h5"), path("s.h5"))
check(p.returncode == 0 and "Keras HDF5 (efficientnetv2-s)" in p.stdout, f"convert S: {p.stdout}{p.stderr}")
with h5py.File(path("s.h5"), "r") as f:
    check(f.attrs["embedding_dim"] == 1000 and f.attrs["input_height"] == 384 and
          np.allclose(f.attrs["input_mean"], [128 / 255] * 3) and np.allclose(f.attrs["input_std"], [128 / 255] * 3),
          f"converted S: {dict(f.attrs)}")
check("CRC-32 match" in info(path("s.h5")), "the converted file is sealed")
converted = embed(path("s.h5"), IMAGES, "--size", SIZE)
check(converted is not None and s_kao is not None and np.array_equal(converted, s_kao),
      "the converted S embeds as its source, exactly")

# ---- 4. bad files ---------------------------------------------------------------------------------------
def damaged(name, edit):
    shutil.copy(path("efficientnetv2-b0.h5"), path(name))
    with h5py.File(path(name), "r+") as f:
        edit(f)
    return path(name)


def extra_weight(f):
    f["stem_conv"].attrs["weight_names"] = [b"stem_conv/kernel", b"stem_conv/scale"]
    f["stem_conv/stem_conv/scale"] = np.zeros(3, np.float32)


def unknown_layer(f):
    names = [n for n in f.attrs["layer_names"]]
    f.attrs["layer_names"] = names + ["mystery"]
    g = f.create_group("mystery")
    g.attrs["weight_names"] = [b"mystery/kernel"]
    g["mystery/kernel"] = np.zeros((1, 1, 3, 3), np.float32)


def flat_kernel(f):
    del f["top_conv/top_conv/kernel"]
    f["top_conv/top_conv/kernel"] = np.zeros((192, 1280), np.float32)


embed = ["embed", "--size", SIZE, IMAGES[0], "--out", path("x.h5"), "--weights"]
expect_error("unknown weight", embed + [damaged("extra.h5", extra_weight)], "'stem_conv/stem_conv/scale' is none")
expect_error("unknown layer", embed + [damaged("layer.h5", unknown_layer)], "layer 'mystery' has weights")
expect_error("kernel of the wrong rank", embed + [damaged("rank.h5", flat_kernel)],
             "'top_conv/top_conv/kernel' has shape [192, 1280], expected 4 dimensions")
expect_error("missing dataset", embed + [damaged("gone.h5", lambda f: f["stem_bn/stem_bn"].pop("gamma"))],
             "missing dataset 'stem_bn/stem_bn/gamma'")
raw = open(path("efficientnetv2-b0.h5"), "rb").read()
open(path("cut.h5"), "wb").write(raw[: len(raw) // 2])
expect_error("truncated file", embed + [path("cut.h5")], "cut.h5")

shutil.rmtree(TMP, ignore_errors=True)
finish("test_weights_keras")
