"""kao train on bad input: each case ends with one clear "kao: error: ..." line naming the problem
and a non-zero exit, or, where the config says so, with a warning and a count and a finished run:
an empty root, an identity folder with no images (strict, and dropped with data.strict = false),
zero-byte / corrupt PNGs and a truncated JPEG named .png (skipped and counted, or fatal with
data.stop_on_bad_image), a file that is not an image (ignored and counted), an unreadable file
(unless running as root, who reads everything), an unknown config key, a negative learning rate, a
batch larger than the data set, a resume folder from another configuration, a split manifest of
other data (and one of the same data, used as it is), a missing --init file, a taken run folder, bad
options."""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_common as t  # noqa: E402

ws = t.Workspace()


def errors(out):
    return [line for line in out.splitlines() if line.startswith("kao: error:")]


def fails(what, args, *needles, code=1):
    status, out = t.kao(*args)
    errs = errors(out)
    ok = t.check(status == code, f"{what}: exit {status}, expected {code}")
    if code == 1:
        ok &= t.check(len(errs) == 1, f"{what}: expected one error line, got {errs}")
    for n in needles:
        ok &= t.check(any(n in e for e in errs) or (code == 2 and n in out), f"{what}: error lacks '{n}': {errs or out}")
    if not ok:
        print(out, file=sys.stderr)
    else:
        print(f"{what}: {(errs or out.splitlines())[-1]}")


def copy_identities(name, identities):
    root = ws.path(name)
    os.makedirs(root)
    for ident in identities:
        shutil.copytree(os.path.join(t.ORL, ident), os.path.join(root, ident))
    return root


try:
    good = ws.data("good", [f"s{i}" for i in range(1, 7)])
    cfg = ws.config("c.ini", good, extra="")
    quick = ["--set", "train.epochs=1", "--set", "train.warmup_epochs=0"]

    # devices: an unknown one, and a GPU mode on the CPU, each named with its config key
    fails("unknown device", ["train", "--config", cfg, "--device", "gpu0", "--out", ws.path("d1")],
          "train.device = gpu0", "unknown device 'gpu0'")
    fails("tf32 on the CPU", ["train", "--config", cfg, "--set", "train.precision=tf32", "--out", ws.path("d2")],
          "train.precision = tf32", "tf32 is a GPU mode")
    fails("unknown precision", ["train", "--config", cfg, "--set", "train.precision=bf17", "--out", ws.path("d3")],
          "train.precision = 'bf17' is not accepted")

    empty = ws.path("empty")
    os.makedirs(empty)
    fails("empty root", ["train", "--config", cfg, "--data", empty, "--out", ws.path("r1")], "no identity folders")

    noimg = copy_identities("noimg", ["s1", "s2", "s3"])
    os.makedirs(os.path.join(noimg, "s4_empty"))
    fails("identity without images", ["train", "--config", cfg, "--data", noimg, "--out", ws.path("r2")],
          "s4_empty: identity folder has no PNG or JPEG images")
    status, out = t.kao("train", "--config", cfg, "--data", noimg, "--out", ws.path("r2b"), "--set", "data.strict=false",
                        "--set", "train.batch_size=8", *quick)
    t.check(status == 0 and "dropped:    1 empty identity folder: s4_empty" in out, f"data.strict=false: exit {status}:\n{out}")

    bad = copy_identities("bad", ["s1", "s2", "s3", "s4"])
    open(os.path.join(bad, "s2", "zero.png"), "wb").close()
    with open(os.path.join(bad, "s3", "corrupt.png"), "wb") as f:
        f.write(open(os.path.join(t.ORL, "s3", "1.png"), "rb").read()[:300])  # a truncated PNG
    with open(os.path.join(bad, "s4", "photo.png"), "wb") as f:
        f.write(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(100))  # a truncated JPEG named .png
    with open(os.path.join(bad, "s1", "notes.txt"), "w") as f:
        f.write("not an image\n")
    status, out = t.kao("train", "--config", cfg, "--data", bad, "--out", ws.path("r3"), "--set", "train.batch_size=8",
                        "--set", "data.val_count=2", *quick)
    t.check(status == 0, f"bad images skipped: exit {status}:\n{out}")
    for name in ["zero.png", "corrupt.png", "photo.png"]:
        t.check(sum(1 for line in out.splitlines() if line.startswith("warning: skipping") and name in line) == 1,
                f"no single warning for {name}:\n{out}")
    t.check("skipped 3 images that failed to decode" in out, f"skipped count missing:\n{out}")
    t.check("ignored:    1 entry is neither an identity folder nor a PNG or JPEG image (e.g. s1/notes.txt)" in out,
            f"a file that is not an image not counted:\n{out}")
    fails("bad image with data.stop_on_bad_image", ["train", "--config", cfg, "--data", bad, "--out", ws.path("r4"),
                                                   "--set", "data.stop_on_bad_image=true", "--set", "train.batch_size=8",
                                                   *quick], ".png", "stop_on_bad_image")

    # one validation image per identity: no verification pairs, a warning (an error when early stopping
    # watches EER or AUC)
    status, out = t.kao("train", "--config", cfg, "--out", ws.path("r3b"), "--set", "data.val_count=1", *quick)
    t.check(status == 0 and "verification metrics (AUC, EER, ...) are not computed" in out, f"val_count=1:\n{out}")
    fails("EER without verification pairs", ["train", "--config", cfg, "--out", ws.path("r3c"), "--set",
                                             "data.val_count=1", "--set", "early_stop.metric=eer", *quick],
          "early_stop.metric = eer needs verification pairs")

    if os.geteuid() != 0:
        locked = copy_identities("locked", ["s1", "s2", "s3"])
        os.chmod(os.path.join(locked, "s2", "1.png"), 0)
        fails("unreadable file", ["train", "--config", cfg, "--data", locked, "--out", ws.path("r5"),
                                  "--set", "data.stop_on_bad_image=true", "--set", "train.batch_size=8", *quick],
              "1.png")
    else:
        print("unreadable file: skipped (root can read a file without permissions)")

    with open(ws.path("unknown.ini"), "w") as f:
        f.write("[train]\nlearning_rate = 0.1\n")
    fails("unknown config key", ["train", "--config", ws.path("unknown.ini"), "--data", good, "--out", ws.path("r6")],
          "unknown.ini:2", "learning_rate")
    fails("negative learning rate", ["train", "--config", cfg, "--set", "train.lr=-0.001", "--out", ws.path("r7")],
          "train.lr = '-0.001' is not accepted")
    fails("batch larger than the data", ["train", "--config", cfg, "--set", "train.batch_size=100",
                                         "--out", ws.path("r8")], "train.batch_size (100) is larger than the training set")

    run = ws.path("run")
    t.kao("train", "--config", cfg, "--out", run, *quick, check_exit=0)
    other = ws.path("other.ini")
    with open(other, "w") as f:
        f.write(open(cfg).read().replace("margin = 10", "margin = 20"))
    fails("resume with another configuration", ["train", "--config", other, "--resume", run, *quick],
          "the config differs from the run's", "arcface.margin = 20 (the run has 10)")
    # --split: a manifest of the same data is used as it is; one of other data is refused
    reuse = ws.path("reuse")
    t.kao("train", "--config", cfg, "--out", reuse, "--split", os.path.join(run, "split.tsv"), "--set",
          "data.seed=7", *quick, check_exit=0)
    t.check(open(os.path.join(reuse, "split.tsv")).read() == open(os.path.join(run, "split.tsv")).read(),
            "--split: the run's split.tsv differs from the given manifest")
    fails("--split of another data set", ["train", "--config", cfg, "--data", bad, "--out", ws.path("r11"), "--split",
                                         os.path.join(run, "split.tsv"), *quick], "split.tsv")
    fails("missing --init file", ["train", "--config", cfg, "--init", ws.path("nope.h5"), "--out", ws.path("r9")],
          "nope.h5: No such file")
    fails("run folder taken", ["train", "--config", cfg, "--out", run], "already holds a run")
    fails("resume of a non-run", ["train", "--resume", empty], "not a kao run folder")
    fails("no config", ["train", "--out", ws.path("r10")], "needs --config", code=2)
    fails("unknown option", ["train", "--config", cfg, "--frobnicate", "1"], "unknown option '--frobnicate'", code=2)
finally:
    ws.cleanup()
t.finish("test_train_bad_input")
