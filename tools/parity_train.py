#!/usr/bin/env python3
"""parity_train.py — kao train against a PyTorch twin, from the same initial state (issue 17).

NOT part of the default test run (minutes of CPU per seed). It trains, for each seed, kao and a
PyTorch twin (timm tf_efficientnetv2 + pytorch-metric-learning ArcFaceLoss + torch.optim +
torchvision augmentation) on the demo's protocol and compares what training reaches: the held-out
verification AUC and the final validation loss, averaged over seeds.

Usage (from the repository root, with the tools environment):

    PY=$(bash scripts/setup_python.sh)      # or ~/.cache/kao/venv/bin/python
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build --target kao
    $PY tools/parity_train.py [--kao build/kao] [--config configs/demo.ini] [--seeds 0 1 2]
                              [--epochs N] [--threads 1] [--work DIR] [--auc-tol 0.01]

Output: one JSON line per (engine, seed) on stdout, then a summary table (mean, sample standard
deviation and range over the seeds) and the verdict. Exit status 0 when both targets hold, 1 when
one fails, 2 on an error. Targets:
  - held-out AUC: |mean(kao) - mean(torch)| <= --auc-tol (default 0.01: one point of AUC);
  - final validation loss: |mean(kao) - mean(torch)| <= the seed spread, the larger of the two
    engines' standard deviations over seeds (ddof 1).

Protocol (identical for both engines):
  - Data: --data (data/orl), the demo's protocol (scripts/demo.sh): identities s1..s30 train (the
    config's stratified train/val split, data.seed from the config), s31..s40 held out.
  - kao: `kao train --config CONFIG --set train.seed=S --set train.epochs=N
    --set early_stop.patience=0 --set checkpoint.keep=100000 --set train.threads=T`: no early
    stopping, so both engines train all N epochs and the final (last.h5) model is compared;
    checkpoint.keep keeps ckpt-000000000.h5, the run's step-0 state (kao writes it before the
    first step: the initial network from kao's seeded init and the ArcFace W).
  - Same initial state: the twin loads the network from ckpt-000000000.h5 (group "model", timm's
    state_dict names, load_state_dict strict) and W from its arcface/W (E x C, the same layout as
    ArcFaceLoss.W), the class order from the run's classes.txt (= arcface/classes).
  - Same split: the twin reads the run's split.tsv (train/val lists) and classes.txt.
  - Twin hyperparameters are read from the run's config.ini (the resolved config): AdamW (or SGD)
    with three groups as kao's trainer: backbone tensors of more than one dimension with
    train.weight_decay, 1-D tensors (BN affine, biases, the classifier's bias too) with none, the
    classifier weight at train.head_lr; W by its own optimizer (arcface.optimizer, .lr,
    .weight_decay, .momentum; AdamW's eps = train.eps); LambdaLR with kao's per-step factor
    (linear warm-up from 1/W over W = warmup_epochs x batches steps, then cosine to 0 at
    epochs x batches), stepped after every batch; batch_size, shuffle sampler without drop_last
    (kao's last batch of an epoch is partial); gradient clipping when train.grad_clip > 0.
  - Augmentation: torchvision Compose([RandomResizedCrop((H, H), scale, ratio, BILINEAR,
    antialias=True), RandomHorizontalFlip, ColorJitter, RandomGrayscale, ToTensor, Normalize]) on
    the PIL RGB image (docs/augmentation.md's mapping of the augment.* keys), in the main process
    (num_workers 0); torch.manual_seed(S) seeds the twin's shuffling and augmentation (kao's own
    draws come from its generator: same distributions, different draws).
  - Threads: torch.set_num_threads(T), kao's train.threads = T.
  - Evaluation, by kao for both engines: the twin's final state is written as a kao weights file
    (convert_timm.write_h5, recording the input size and normalisation), and for each engine's
    final weights `kao embed --size H` embeds the held-out images and the validation images.
    Held-out AUC: `kao verify --embeddings` on every pair of the 10 held-out identities
    (scikit-learn's roc_auc_score on the same pairs as a cross-check). Validation loss:
    pytorch-metric-learning's ArcFaceLoss (the config's margin and scale) on the validation
    embeddings with the engine's final W. Cross-checks also printed: kao's own last val_loss of
    metrics.csv, and the twin's validation loss computed in PyTorch on its own preprocessing
    (PIL bilinear resize, no augmentation, eval mode).
"""
import argparse
import configparser
import json
import math
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(cmd, logfile=None):
    t0 = time.time()
    with open(logfile, "w") if logfile else open(os.devnull, "w") as out:
        p = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT if logfile else subprocess.PIPE, text=True)
    if p.returncode != 0:
        tail = open(logfile).read()[-3000:] if logfile else (p.stderr or "")
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{tail}")
    return time.time() - t0


def read_config(path):
    cp = configparser.ConfigParser(interpolation=None)
    cp.read(path)
    return cp


def floats(s):
    return [float(x) for x in s.split(",")]


def read_split(run_dir):
    train, val = [], []
    with open(os.path.join(run_dir, "split.tsv")) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            kind, ident, rel = line.rstrip("\n").split("\t")
            (train if kind == "train" else val).append((ident, rel))
    with open(os.path.join(run_dir, "classes.txt")) as f:
        classes = [c.strip() for c in f if c.strip()]
    return train, val, classes


def kao_factor(t, warmup, total, kind):
    """kao's schedule factor at step t (src/schedule.c; train_setup.c: start factor 1/warmup, min 0)."""
    if kind == "constant":
        return 1.0
    if t < warmup:
        start = 1.0 / warmup
        return start + (1.0 - start) * t / warmup
    if t >= total:
        return 0.0
    return 0.5 * (1.0 + math.cos(math.pi * (t - warmup) / (total - warmup)))


# ---- the PyTorch twin ---------------------------------------------------------------------------


def train_twin(run_dir, data_root, seed, threads, out_dir):
    import h5py
    import numpy as np
    import torch
    import torchvision.transforms as T
    from PIL import Image
    from pytorch_metric_learning.losses import ArcFaceLoss

    from convert_timm import build_timm, write_h5

    cfg = read_config(os.path.join(run_dir, "config.ini"))
    m, tr, af, au = cfg["model"], cfg["train"], cfg["arcface"], cfg["augment"]
    for key, want in (("schedule", ("cosine", "constant")), ("sampler", ("shuffle",))):
        if tr[key] not in want:
            raise RuntimeError(f"twin: train.{key} = {tr[key]} is not replicated (supported: {want})")
    if tr.getfloat("drop_path_rate") != 0 or tr.getboolean("freeze_bn") or tr.getint("freeze_backbone_epochs"):
        raise RuntimeError("twin: drop_path_rate, freeze_bn and freeze_backbone_epochs must be off")
    torch.set_num_threads(threads)
    torch.manual_seed(seed)

    size = m.getint("input_size")
    mean, std = floats(m["input_mean"]), floats(m["input_std"])
    variant, cm, dm, emb_dim = m["name"], m.getfloat("width_mult"), m.getfloat("depth_mult"), m.getint("embedding_dim")
    train, val, classes = read_split(run_dir)
    index = {c: i for i, c in enumerate(classes)}

    # Same initial state: kao's step-0 checkpoint.
    ckpt = os.path.join(run_dir, "checkpoints", "ckpt-000000000.h5")
    model = build_timm(variant, cm, dm, emb_dim)
    with h5py.File(ckpt, "r") as f:
        sd = {k: torch.from_numpy(np.array(v[()])) for k, v in f["model"].items()}
        W0 = np.array(f["arcface/W"])
        names = [c.decode() if isinstance(c, bytes) else str(c) for c in f["arcface/classes"][()]]
    if names != classes:
        raise RuntimeError(f"{ckpt}: arcface/classes differ from classes.txt")
    model.load_state_dict(sd, strict=True)
    loss_fn = ArcFaceLoss(num_classes=len(classes), embedding_size=emb_dim, margin=af.getfloat("margin"),
                          scale=af.getfloat("scale"))
    with torch.no_grad():
        loss_fn.W.copy_(torch.from_numpy(W0))

    # Optimizers as kao's trainer (train_setup.c trainer_cfg).
    lr, head_lr, wd, eps = tr.getfloat("lr"), tr.getfloat("head_lr"), tr.getfloat("weight_decay"), tr.getfloat("eps")
    decay, no_decay, head, head_nd = [], [], [], []
    for name, p in model.named_parameters():
        if name.startswith("classifier."):
            (head_nd if p.ndim <= 1 else head).append(p)
        else:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [dict(params=decay, lr=lr, weight_decay=wd), dict(params=no_decay, lr=lr, weight_decay=0.0),
              dict(params=head, lr=head_lr, weight_decay=wd), dict(params=head_nd, lr=head_lr, weight_decay=0.0)]
    if tr["optimizer"] == "adamw":
        opt = torch.optim.AdamW(groups, eps=eps)
    else:
        opt = torch.optim.SGD(groups, momentum=tr.getfloat("momentum"), nesterov=tr.getboolean("nesterov"))
    if af["optimizer"] == "adamw":
        w_opt = torch.optim.AdamW(loss_fn.parameters(), lr=af.getfloat("lr"), weight_decay=af.getfloat("weight_decay"),
                                  eps=eps)
    else:
        w_opt = torch.optim.SGD(loss_fn.parameters(), lr=af.getfloat("lr"), weight_decay=af.getfloat("weight_decay"),
                                momentum=af.getfloat("momentum"))
    bs, epochs = tr.getint("batch_size"), tr.getint("epochs")
    per_epoch = (len(train) + bs - 1) // bs
    warmup, total = tr.getint("warmup_epochs") * per_epoch, epochs * per_epoch
    lam = lambda t: kao_factor(t, warmup, total, tr["schedule"])  # noqa: E731
    scheds = [torch.optim.lr_scheduler.LambdaLR(o, lam) for o in (opt, w_opt)]
    clip = tr.getfloat("grad_clip")

    aug = T.Compose([
        T.RandomResizedCrop((size, size), scale=(au.getfloat("crop_scale_min"), au.getfloat("crop_scale_max")),
                            ratio=(au.getfloat("crop_ratio_min"), au.getfloat("crop_ratio_max")),
                            interpolation=T.InterpolationMode.BILINEAR, antialias=True),
        T.RandomHorizontalFlip(au.getfloat("hflip")),
        # an amplitude of 0 is torchvision's "off" (None), as kao's
        T.ColorJitter(brightness=au.getfloat("brightness"), contrast=au.getfloat("contrast"),
                      saturation=au.getfloat("saturation"), hue=au.getfloat("hue")),
        T.RandomGrayscale(au.getfloat("grayscale")),
        T.ToTensor(),
        T.Normalize(mean, std),
    ])
    plain = T.Compose([T.Resize((size, size), interpolation=T.InterpolationMode.BILINEAR, antialias=True),
                       T.ToTensor(), T.Normalize(mean, std)])

    def load(items):
        imgs = [Image.open(os.path.join(data_root, rel)).convert("RGB") for _, rel in items]
        return imgs, torch.tensor([index[c] for c, _ in items])

    train_imgs, train_labels = load(train)
    val_imgs, val_labels = load(val)

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return len(train_imgs)

        def __getitem__(self, i):
            return aug(train_imgs[i]), train_labels[i]

    loader = torch.utils.data.DataLoader(DS(), batch_size=bs, shuffle=True, drop_last=False, num_workers=0,
                                         generator=torch.Generator().manual_seed(seed))
    t0 = time.time()
    for epoch in range(epochs):
        model.train()
        loss_sum, n = 0.0, 0
        for x, y in loader:
            opt.zero_grad(set_to_none=True)
            w_opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            w_opt.step()
            for s in scheds:
                s.step()
            loss_sum += loss.item() * len(y)
            n += len(y)
        if (epoch + 1) % 10 == 0 or epoch + 1 == epochs:
            log(f"  twin seed {seed} epoch {epoch + 1}/{epochs}: train loss {loss_sum / n:.4f} ({time.time() - t0:.0f} s)")
    model.eval()
    with torch.no_grad():
        xv = torch.stack([plain(im) for im in val_imgs])
        val_loss_torch = loss_fn(model(xv), val_labels).item()

    os.makedirs(out_dir, exist_ok=True)
    weights = os.path.join(out_dir, "last.h5")
    write_h5(weights, model, variant, cm, dm,
             pretrained_cfg=dict(input_size=(3, size, size), mean=tuple(mean), std=tuple(std)))
    np.save(os.path.join(out_dir, "W.npy"), loss_fn.W.detach().numpy())
    return weights, loss_fn.W.detach().numpy(), val_loss_torch, time.time() - t0


# ---- evaluation (the same for both engines) -----------------------------------------------------


def embed(kao, weights, inputs, out, size, threads):
    import h5py
    import numpy as np
    run([kao, "embed", "--weights", weights, "--size", str(size), "--threads", str(threads), "--quiet",
         "--follow-symlinks", *inputs, "--out", out])
    with h5py.File(out, "r") as f:
        paths = [p.decode() if isinstance(p, bytes) else str(p) for p in f["paths"][()]]
        return np.array(f["embeddings"]), paths


def evaluate(kao, weights, W, run_dir, data_root, heldout_dirs, size, threads, margin, scale, work):
    import numpy as np
    import torch
    from pytorch_metric_learning.losses import ArcFaceLoss
    from sklearn.metrics import roc_auc_score

    # Held-out AUC by kao verify on every pair, scikit-learn as a cross-check.
    e_path = os.path.join(work, "heldout.h5")
    E, paths = embed(kao, weights, heldout_dirs, e_path, size, threads)
    p = subprocess.run([kao, "verify", "--embeddings", e_path, "--layout", "folders", "--max-pairs", "0"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"kao verify failed: {p.stderr[-2000:]}")
    auc = float(re.search(r"^AUC: ([0-9.eE+-]+)", p.stdout, re.M).group(1))
    ids = [os.path.basename(os.path.dirname(q)) for q in paths]
    En = E / np.linalg.norm(E, axis=1, keepdims=True)
    S = En @ En.T
    iu = np.triu_indices(len(ids), 1)
    same = (np.array(ids)[:, None] == np.array(ids)[None, :])[iu]
    auc_sk = float(roc_auc_score(same, S[iu]))

    # Validation loss: ArcFaceLoss on kao's embeddings of the validation images with the engine's W.
    _, val, classes = read_split(run_dir)
    index = {c: i for i, c in enumerate(classes)}
    Ev, vpaths = embed(kao, weights, [os.path.join(data_root, rel) for _, rel in val],
                       os.path.join(work, "val.h5"), size, threads)
    labels = torch.tensor([index[os.path.basename(os.path.dirname(q))] for q in vpaths])
    lf = ArcFaceLoss(num_classes=len(classes), embedding_size=Ev.shape[1], margin=margin, scale=scale)
    with torch.no_grad():
        lf.W.copy_(torch.from_numpy(np.asarray(W, dtype=np.float32)))
        val_loss = lf(torch.from_numpy(Ev), labels).item()
    return dict(auc=auc, auc_sklearn=auc_sk, pairs=int(len(same)), val_loss=val_loss)


def last_val_loss(run_dir):
    import csv
    rows = [r for r in csv.DictReader(open(os.path.join(run_dir, "metrics.csv"))) if r["kind"] == "epoch"]
    return float(rows[-1]["val_loss"]), int(rows[-1]["epoch"])


# ---- main ----------------------------------------------------------------------------------------


def stats(xs):
    import numpy as np
    a = np.array(xs, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0, float(a.max() - a.min())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kao", default=os.path.join(ROOT, "build", "kao"))
    ap.add_argument("--config", default=os.path.join(ROOT, "configs", "demo.ini"))
    ap.add_argument("--data", default=os.path.join(ROOT, "data", "orl"))
    ap.add_argument("--train-ids", type=int, default=30, help="s1..sN train, the rest held out (demo: 30)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, help="train.epochs for both (default: the config's)")
    ap.add_argument("--threads", type=int, default=1,
                    help="kao train.threads and torch.set_num_threads (default 1: on a shared 2-core machine two "
                         "OpenMP threads made PyTorch 50x slower)")
    ap.add_argument("--work", default=os.path.join(ROOT, "runs", "parity"))
    ap.add_argument("--auc-tol", type=float, default=0.01)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="more kao --set for both")
    args = ap.parse_args()

    import numpy as np
    kao = os.path.abspath(args.kao)
    data = os.path.abspath(args.data)
    if not os.access(kao, os.X_OK):
        log(f"parity_train: {kao} is not an executable kao; build it first")
        return 2
    ids = sorted((d for d in os.listdir(data) if re.fullmatch(r"s\d+", d) and os.path.isdir(os.path.join(data, d))),
                 key=lambda d: int(d[1:]))
    train_ids = [d for d in ids if int(d[1:]) <= args.train_ids]
    heldout = [os.path.join(data, d) for d in ids if int(d[1:]) > args.train_ids]
    work = os.path.abspath(args.work)
    tdir = os.path.join(work, "data", "train")
    os.makedirs(tdir, exist_ok=True)
    for d in train_ids:
        link = os.path.join(tdir, d)
        if not os.path.islink(link):
            os.symlink(os.path.join(data, d), link)

    results = {"kao": [], "torch": []}
    for seed in args.seeds:
        run_dir = os.path.join(work, f"kao-seed{seed}")
        if os.path.exists(run_dir):
            subprocess.run(["rm", "-rf", "--", run_dir], check=True)
        sets = [f"train.seed={seed}", "early_stop.patience=0", "checkpoint.keep=100000",
                f"train.threads={args.threads}", *args.set]
        if args.epochs:
            sets.append(f"train.epochs={args.epochs}")
        cmd = [kao, "train", "--config", os.path.abspath(args.config), "--data", tdir, "--follow-symlinks",
               "--out", run_dir]
        for s in sets:
            cmd += ["--set", s]
        log(f"== seed {seed}: kao train")
        t_kao = run(cmd, os.path.join(work, f"kao-seed{seed}.log"))
        cfg = read_config(os.path.join(run_dir, "config.ini"))
        size = cfg["model"].getint("input_size")
        margin, scale = cfg["arcface"].getfloat("margin"), cfg["arcface"].getfloat("scale")
        epochs = cfg["train"].getint("epochs")
        import h5py
        with h5py.File(os.path.join(run_dir, "last.h5"), "r") as f:
            W_kao = np.array(f["arcface/W"])
        ev_dir = os.path.join(work, f"eval-kao-seed{seed}")
        os.makedirs(ev_dir, exist_ok=True)
        r = evaluate(kao, os.path.join(run_dir, "last.h5"), W_kao, run_dir, tdir, heldout, size, args.threads,
                     margin, scale, ev_dir)
        csv_loss, csv_epoch = last_val_loss(run_dir)
        r.update(engine="kao", seed=seed, epochs=csv_epoch, val_loss_metrics_csv=csv_loss, train_seconds=round(t_kao, 1))
        print(json.dumps(r), flush=True)
        results["kao"].append(r)

        log(f"== seed {seed}: PyTorch twin from {run_dir}/checkpoints/ckpt-000000000.h5")
        twin_dir = os.path.join(work, f"torch-seed{seed}")
        weights, W_t, vl_torch, t_twin = train_twin(run_dir, tdir, seed, args.threads, twin_dir)
        r = evaluate(kao, weights, W_t, run_dir, tdir, heldout, size, args.threads, margin, scale, twin_dir)
        r.update(engine="torch", seed=seed, epochs=epochs, val_loss_torch_preprocessing=vl_torch,
                 train_seconds=round(t_twin, 1))
        print(json.dumps(r), flush=True)
        results["torch"].append(r)

    # Summary.
    print(f"\nparity over seeds {args.seeds} ({results['kao'][0]['epochs']} epochs, {args.config}):")
    print(f"{'metric':<28}{'kao mean':>10}{'sd':>8}{'range':>8}{'torch mean':>12}{'sd':>8}{'range':>8}{'diff':>9}")
    summary = {}
    for key in ("auc", "auc_sklearn", "val_loss"):
        k, t = stats([r[key] for r in results["kao"]]), stats([r[key] for r in results["torch"]])
        summary[key] = (k, t)
        print(f"{key:<28}{k[0]:>10.4f}{k[1]:>8.4f}{k[2]:>8.4f}{t[0]:>12.4f}{t[1]:>8.4f}{t[2]:>8.4f}{k[0] - t[0]:>+9.4f}")
    k = stats([r["val_loss_metrics_csv"] for r in results["kao"]])
    t = stats([r["val_loss_torch_preprocessing"] for r in results["torch"]])
    print(f"{'val_loss (own pipeline)':<28}{k[0]:>10.4f}{k[1]:>8.4f}{k[2]:>8.4f}{t[0]:>12.4f}{t[1]:>8.4f}{t[2]:>8.4f}"
          f"{k[0] - t[0]:>+9.4f}")
    (ka, ta) = summary["auc"]
    (kv, tv) = summary["val_loss"]
    auc_ok = abs(ka[0] - ta[0]) <= args.auc_tol
    spread = max(kv[1], tv[1])
    loss_ok = abs(kv[0] - tv[0]) <= spread
    print(f"held-out AUC: |{ka[0]:.4f} - {ta[0]:.4f}| = {abs(ka[0] - ta[0]):.4f} <= {args.auc_tol}: "
          f"{'PASS' if auc_ok else 'FAIL'}")
    print(f"final val loss: |{kv[0]:.4f} - {tv[0]:.4f}| = {abs(kv[0] - tv[0]):.4f} <= seed spread (max sd) "
          f"{spread:.4f}: {'PASS' if loss_ok else 'FAIL'}")
    return 0 if auc_ok and loss_ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RuntimeError, OSError) as e:
        log(f"parity_train: error: {e}")
        sys.exit(2)
