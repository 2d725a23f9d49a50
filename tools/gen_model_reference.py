#!/usr/bin/env python3
"""Reference data for kao's whole-network tests, computed by timm and PyTorch.

Writes, for each case, tests/data/model_<case>.weights.h5 (the model in kao's weights layout) and
tests/data/model_<case>.h5 holding:
  forward/input            (N, 3, H, W) float32, NCHW as PyTorch takes it
  forward/embedding        (N, E) eval-mode output
  forward/act/<name>       (N, C, h, w) eval-mode activations: stem, stage0..stageK, head; pooled (N, nf)
  train/...                (cases with training data) one training step and 3 optimizer steps:
     input (N,3,H,W), labels (N,) int64, arcface_W (E, C) initial, loss (), grad/<key>, grad/input,
     grad/arcface_W, running/<bn>.running_mean|running_var after one training forward,
     frozen_bn/loss, frozen_bn/grad/<key>, frozen_bn/grad/input: the same step with BN in eval mode,
     <opt>/input (3,N,3,H,W), <opt>/labels (3,N), <opt>/loss (3,), <opt>/params/<key> after 3 steps
     (BN running statistics included), <opt>/arcface_W after 3 steps; hyperparameters as attributes.
Root attributes: architecture, width_mult, depth_mult, embedding_dim, num_classes (ArcFace).

The pipeline is the one kao replaces: timm's tf_efficientnetv2 with a Linear embedding head,
pytorch-metric-learning's ArcFaceLoss (margin 28.6 degrees, scale 64), torch.optim.AdamW / SGD
for the network and an optimizer of its own for the ArcFace weight (pytorch-metric-learning's
documented setup; SGD with momentum and decay beside the AdamW network, AdamW beside the SGD one),
and torch.nn.utils.clip_grad_norm_ on the network's gradients.

Usage: python tools/gen_model_reference.py [--out tests/data]
"""
import argparse
import os

import h5py
import numpy as np
import timm
import torch
from pytorch_metric_learning.losses import ArcFaceLoss

from convert_timm import randomise_bn, write_h5

CASES = {
    # name: variant, width, depth, embedding, forward input sizes (N, H, W), train (N, H, W, classes)
    "b0_tiny": ("tf_efficientnetv2_b0", 0.25, 0.5, 32, [(2, 64, 64), (3, 37, 45)], (6, 35, 33, 5)),
    "s_tiny": ("tf_efficientnetv2_s", 0.25, 0.5, 16, [(2, 41, 35)], None),
}

# AdamW's eps is 1e-4, not torch's 1e-8: some gradients are exactly zero in exact arithmetic (the
# bias of every BN whose output reaches, linearly, another batch-statistics BN) and hold only float
# rounding noise; Adam's m/sqrt(v) turns noise into steps of ±lr by its sign, which no two
# implementations reproduce. With eps 1e-4 such steps are negligible while real gradients still
# get Adam's normalised step. (tests/test_optim.c covers the default eps on its own.)
# The ArcFace W has its own optimizer (kao's arcface.optimizer, .lr, .weight_decay, .momentum; AdamW's
# eps is the network's train.eps): each case trains W with the other kind, so both are covered.
OPTIMIZERS = {
    "adamw": dict(kind="adamw", lr=2e-3, head_lr=1e-2, weight_decay=0.05, betas=(0.9, 0.999), eps=1e-4,
                  arcface_kind="sgd", arcface_lr=0.05, arcface_weight_decay=1e-3, arcface_momentum=0.9,
                  clip=5.0),
    "sgd": dict(kind="sgd", lr=0.05, head_lr=0.1, weight_decay=1e-3, momentum=0.9, nesterov=True,
                arcface_kind="adamw", arcface_lr=0.01, arcface_weight_decay=1e-2, arcface_eps=1e-8, clip=1.0),
}


def build(variant, width, depth, emb):
    model = timm.create_model(variant, channel_multiplier=width, depth_multiplier=depth, num_classes=emb)
    # Non-trivial BN affine parameters and running statistics, so that a wrong BN cannot pass.
    return randomise_bn(model, 1234)


def forward_case(f, model, sizes, seed):
    model.eval()
    acts = {}
    hooks = [model.bn1.register_forward_hook(lambda m, i, o: acts.__setitem__("stem", o)),
             model.bn2.register_forward_hook(lambda m, i, o: acts.__setitem__("head", o)),
             model.global_pool.register_forward_hook(lambda m, i, o: acts.__setitem__("pooled", o))]
    for s, stage in enumerate(model.blocks):
        hooks.append(stage.register_forward_hook(lambda m, i, o, s=s: acts.__setitem__(f"stage{s}", o)))
    for k, (n, h, w) in enumerate(sizes):
        g = torch.Generator().manual_seed(seed + k)
        x = torch.randn(n, 3, h, w, generator=g)
        with torch.no_grad():
            y = model(x)
        grp = f.create_group(f"forward{k}")
        grp.create_dataset("input", data=x.numpy())
        grp.create_dataset("embedding", data=y.numpy())
        for name, value in acts.items():
            grp.create_dataset(f"act/{name}", data=value.numpy())
    for hk in hooks:
        hk.remove()


def param_groups(model, cfg):
    decay, no_decay, head = [], [], []
    for name, p in model.named_parameters():
        if name.startswith("classifier."):
            head.append(p)
        elif p.ndim <= 1:
            no_decay.append(p)
        else:
            decay.append(p)
    return [dict(params=decay, lr=cfg["lr"], weight_decay=cfg["weight_decay"]),
            dict(params=no_decay, lr=cfg["lr"], weight_decay=0.0),
            dict(params=head, lr=cfg["head_lr"], weight_decay=cfg["weight_decay"])]


def make_optimizer(model, cfg):
    groups = param_groups(model, cfg)
    if cfg["kind"] == "adamw":
        return torch.optim.AdamW(groups, betas=cfg["betas"], eps=cfg["eps"], foreach=False)
    return torch.optim.SGD(groups, momentum=cfg["momentum"], nesterov=cfg["nesterov"], foreach=False)


def make_arcface_optimizer(loss_fn, cfg):
    if cfg["arcface_kind"] == "adamw":
        return torch.optim.AdamW(loss_fn.parameters(), lr=cfg["arcface_lr"], weight_decay=cfg["arcface_weight_decay"],
                                 eps=cfg["arcface_eps"], foreach=False)
    return torch.optim.SGD(loss_fn.parameters(), lr=cfg["arcface_lr"], weight_decay=cfg["arcface_weight_decay"],
                           momentum=cfg["arcface_momentum"], foreach=False)


def train_case(f, model, n, h, w, classes, emb, seed):
    torch.manual_seed(seed)
    loss_fn = ArcFaceLoss(num_classes=classes, embedding_size=emb, margin=28.6, scale=64)
    initial_model = {k: v.clone() for k, v in model.state_dict().items()}
    initial_W = loss_fn.W.detach().clone()
    g = torch.Generator().manual_seed(seed + 7)
    labels = torch.tensor([0, 1, 1, 3, 4, 0][:n])  # class 2 absent from the batch
    x = torch.randn(n, 3, h, w, generator=g).requires_grad_(True)

    grp = f.create_group("train")
    grp.attrs["num_classes"] = classes
    grp.attrs["margin_degrees"] = 28.6
    grp.attrs["scale"] = 64.0
    grp.create_dataset("input", data=x.detach().numpy())
    grp.create_dataset("labels", data=labels.numpy())
    grp.create_dataset("arcface_W", data=initial_W.numpy())

    model.train()
    loss = loss_fn(model(x), labels)
    loss.backward()
    grp.create_dataset("loss", data=np.float32(loss.item()))
    for name, p in model.named_parameters():
        grp.create_dataset(f"grad/{name}", data=p.grad.numpy())
    grp.create_dataset("grad/input", data=x.grad.numpy())
    grp.create_dataset("grad/arcface_W", data=loss_fn.W.grad.numpy())
    for name, b in model.named_buffers():
        if not name.endswith("num_batches_tracked"):
            grp.create_dataset(f"running/{name}", data=b.numpy())

    # Frozen BN statistics: BN layers in eval mode (running statistics, no update) inside a
    # training step; the rest trains.
    model.load_state_dict(initial_model)
    model.zero_grad(set_to_none=True)
    loss_fn.zero_grad(set_to_none=True)
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()
    xf = x.detach().clone().requires_grad_(True)
    loss = loss_fn(model(xf), labels)
    loss.backward()
    fg = grp.create_group("frozen_bn")
    fg.create_dataset("loss", data=np.float32(loss.item()))
    for name, p in model.named_parameters():
        fg.create_dataset(f"grad/{name}", data=p.grad.numpy())
    fg.create_dataset("grad/input", data=xf.grad.numpy())
    model.train()

    for opt_name, cfg in OPTIMIZERS.items():
        model.load_state_dict(initial_model)
        with torch.no_grad():
            loss_fn.W.copy_(initial_W)
        model.zero_grad(set_to_none=True)
        loss_fn.zero_grad(set_to_none=True)
        opt = make_optimizer(model, cfg)
        loss_opt = make_arcface_optimizer(loss_fn, cfg)
        og = grp.create_group(opt_name)
        for key, value in cfg.items():
            # bools as int64: HDF5 has no boolean type (h5py would write an enum)
            og.attrs[key] = np.int64(value) if isinstance(value, bool) else np.array(value) if isinstance(value, tuple) else value
        gen = torch.Generator().manual_seed(seed + 100)
        inputs = torch.randn(3, n, 3, h, w, generator=gen)
        step_labels = torch.randint(0, classes, (3, n), generator=gen)
        losses = []
        for step in range(3):
            opt.zero_grad()
            loss_opt.zero_grad()
            loss = loss_fn(model(inputs[step]), step_labels[step])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["clip"])
            opt.step()
            loss_opt.step()
            losses.append(loss.item())
        og.create_dataset("input", data=inputs.numpy())
        og.create_dataset("labels", data=step_labels.numpy())
        og.create_dataset("loss", data=np.array(losses, dtype=np.float32))
        for name, value in model.state_dict().items():
            if not name.endswith("num_batches_tracked"):
                og.create_dataset(f"params/{name}", data=value.numpy())
        og.create_dataset("arcface_W", data=loss_fn.W.detach().numpy())
    model.load_state_dict(initial_model)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(2)
    for case, (variant, width, depth, emb, sizes, train) in CASES.items():
        torch.manual_seed(0)
        model = build(variant, width, depth, emb)
        write_h5(os.path.join(args.out, f"model_{case}.weights.h5"), model, variant, width, depth)
        path = os.path.join(args.out, f"model_{case}.h5")
        # libver: readable by the HDF5 1.10 that kao links (Debian), whatever h5py bundles.
        with h5py.File(path, "w", libver=("earliest", "v110")) as f:
            f.attrs["architecture"] = variant
            f.attrs["width_mult"] = width
            f.attrs["depth_mult"] = depth
            f.attrs["embedding_dim"] = emb
            forward_case(f, model, sizes, seed=10)
            if train:
                n, h, w, classes = train
                train_case(f, model, n, h, w, classes, emb, seed=20)
        print(f"wrote {path} ({os.path.getsize(path) / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
