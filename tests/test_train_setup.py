"""What kao train decides before its first step (src/train_setup.c):
 - the architecture comes from the --init file where the config leaves it at its defaults: a config
   without model.* keys fine-tunes a tf_efficientnetv2_s file of width 0.25, depth 0.25 and a 24-d
   embedding head as that network (config.ini and best.h5 record it; no head is re-initialised);
   from an ImageNet file (1000 classes) the embedding size stays the config's;
 - a config that names another architecture than the file's is refused with one message naming the
   file once: "model.name: expected X (config), found Y (file)"; a file that does not tell its
   architecture is refused unless the config names model, width and depth, and then loads;
 - a data filter that drops more than half of the identities (data.min_images) is warned about,
   with how many of how many and the key to change, on the terminal and in train.log."""
import os
import subprocess
import sys

import h5py

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_common as t  # noqa: E402

# No model.name, width_mult, depth_mult or embedding_dim: those come from --init.
CONFIG = """
[model]
input_size = 48

[data]
root = {root}
val_fraction = 0.3
follow_symlinks = true

[train]
epochs = 1
batch_size = 8
warmup_epochs = 0
threads = 2
workers = 1

[arcface]
scale = 30
margin = 10

[early_stop]
patience = 0
"""

ws = t.Workspace()


def timm_file(name, classes):
    path = ws.path(name)
    subprocess.run([sys.executable, os.path.join(t.SOURCE, "tools", "convert_timm.py"), "to-h5", "--model",
                    "tf_efficientnetv2_s", "--channel-multiplier", "0.25", "--depth-multiplier", "0.25", "--random",
                    "--num-classes", str(classes), "--out", path], check=True, stdout=subprocess.DEVNULL)
    return path


def config_value(run, key):
    section = ""
    for line in open(os.path.join(run, "config.ini")):
        line = line.strip()
        if line.startswith("["):
            section = line[1:-1]
        elif "=" in line and f"{section}.{line.split('=')[0].strip()}" == key:
            return line.split("=", 1)[1].strip()
    return None


try:
    # Two identities of 10 images, three of 4 (links to single ORL images).
    root = ws.data("faces", ["s1", "s2"])
    for ident in ["s3", "s4", "s5"]:
        os.makedirs(os.path.join(root, ident))
        for k in range(1, 5):
            os.symlink(os.path.join(t.ORL, ident, f"{k}.png"), os.path.join(root, ident, f"{k}.png"))
    cfg = ws.path("setup.ini")
    with open(cfg, "w") as f:
        f.write(CONFIG.format(root=root))

    # ---- the architecture of the --init file, and the filter warning --------------------------------
    face = timm_file("s_face.h5", 24)
    run = ws.path("run")
    code, out = t.kao("train", "--config", cfg, "--init", face, "--out", run, "--set", "data.min_images=5")
    if t.check(code == 0, f"--init of another architecture: exit {code}:\n{out}"):
        got = {k: config_value(run, k) for k in ["model.name", "model.width_mult", "model.depth_mult",
                                                 "model.embedding_dim"]}
        t.check(got == {"model.name": "tf_efficientnetv2_s", "model.width_mult": "0.25", "model.depth_mult": "0.25",
                        "model.embedding_dim": "24"}, f"config.ini does not record the file's architecture: {got}")
        with h5py.File(os.path.join(run, "best.h5"), "r") as f:
            t.check(f.attrs["architecture"] == "tf_efficientnetv2_s" and f.attrs["width_mult"] == 0.25 and
                    f.attrs["embedding_dim"] == 24, f"best.h5: {dict(f.attrs)}")
        t.check("tf_efficientnetv2_s, width 0.25, depth 0.25, 24-d embedding" in out and "classifier [" not in out,
                f"the start is not reported as the file's network with its head:\n{out}")
        warning = "warning: data.min_images = 5 dropped 3 of 5 identities (those with fewer images); lower " \
                  "data.min_images to train on more of them"
        log = open(os.path.join(run, "train.log")).read()
        t.check(warning in out and warning in log, f"no filter warning:\n{out}")

    # half or fewer dropped: no warning (min_images 4 drops none)
    run = ws.path("run_all")
    code, out = t.kao("train", "--config", cfg, "--init", face, "--out", run, "--set", "data.min_images=4")
    t.check(code == 0 and "warning: data.min_images" not in out, f"min_images 4: exit {code}:\n{out}")

    # ---- ImageNet weights: the embedding size stays the config's ------------------------------------
    imagenet = timm_file("s_imagenet.h5", 1000)
    run = ws.path("run_imagenet")
    code, out = t.kao("train", "--config", cfg, "--init", imagenet, "--out", run)
    if t.check(code == 0, f"--init ImageNet: exit {code}:\n{out}"):
        t.check(config_value(run, "model.name") == "tf_efficientnetv2_s" and
                config_value(run, "model.embedding_dim") == "512" and "ImageNet head" in out,
                f"ImageNet start: {config_value(run, 'model.embedding_dim')}:\n{out}")

    # ---- a file that does not tell its architecture (no attributes, multipliers no variant has) ----
    bare = ws.path("s_bare.h5")
    with h5py.File(face, "r") as src, h5py.File(bare, "w") as dst:
        for name in src:
            src.copy(src[name], dst, name=name)
    code, out = t.kao("train", "--config", cfg, "--init", bare, "--out", ws.path("run_bare"))
    t.check(code == 1 and "match no variant at its default multipliers; name the model and its multipliers" in out,
            f"--init without attributes, config silent: exit {code}:\n{out}")
    named = ["--set", "model.name=tf_efficientnetv2_s", "--set", "model.width_mult=0.25", "--set",
             "model.depth_mult=0.25"]
    code, out = t.kao("train", "--config", cfg, "--init", bare, "--out", ws.path("run_bare"), *named)
    t.check(code == 0 and "tf_efficientnetv2_s, width 0.25, depth 0.25" in out,
            f"--init without attributes, config naming it: exit {code}:\n{out}")

    # ---- a config that insists on another architecture --------------------------------------------
    for sets, wording in [(["model.name=tf_efficientnetv2_b0"],
                           "model.name: expected tf_efficientnetv2_b0 (config), found tf_efficientnetv2_s (file)"),
                          (["model.name=tf_efficientnetv2_s", "model.width_mult=0.5", "model.depth_mult=0"],
                           "model.width_mult: expected 0.5 (config), found 0.25 (file); model.depth_mult: expected 1 "
                           "(config), found 0.25 (file)")]:
        args = [a for s in sets for a in ("--set", s)]
        code, out = t.kao("train", "--config", cfg, "--init", face, "--out", ws.path("refused"), *args)
        t.check(code == 1 and f"{face}: the start weights do not fit the config's architecture: {wording}; remove "
                "these keys from the config to take the file's" in out and out.count(face) == 1,
                f"{sets}: exit {code}:\n{out}")
        t.check(not os.path.exists(ws.path("refused")), f"{sets}: the refused run left its folder")
finally:
    ws.cleanup()
t.finish("test_train_setup")
