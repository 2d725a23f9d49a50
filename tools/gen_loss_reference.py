"""Reference data for kao's ArcFace loss, optimizers and schedules, computed by PyTorch.

Run from the repository root with the tools' python:
    $(bash scripts/setup_python.sh) tools/gen_loss_reference.py
It rewrites tests/data/loss_reference.h5 and tests/data/optim_reference.h5 (a few tens of KB);
tests/test_arcface.c and tests/test_optim.c read them. Everything is seeded, so a rerun gives
the same inputs; torch 2.5.1 and pytorch-metric-learning 2.8.1 (tools/requirements.txt).

loss_reference.h5 — one group per case, pytorch_metric_learning.losses.ArcFaceLoss:
    attrs  margin_deg (f64), scale (f64), B, E, C (int),
           torch_float32_grads_finite (int 0/1): whether the same case run in float32 by
           PyTorch gives finite gradients (documents where kao departs from it: cos = ±1)
    emb     (B, E) f32   the input embeddings (kao's input, exactly)
    W       (E, C) f32   the loss's weight (transposed relative to nn.Linear)
    labels  (B)    i32
    loss    ()     f64   the mean loss, PyTorch in float64 from the float32 inputs
    d_emb   (B, E) f64   d loss / d emb (float64)
    dW      (E, C) f64   d loss / d W (float64)
    cosine  (B, C) f64   ê·Ŵ before the margin
    probs   (B, C) f64   softmax of the scaled logits (margin applied), as fed to CrossEntropyLoss
  Cases: default (28.6°, 64), margin0 (normalised softmax), absent_class (classes without
  samples in the batch), edge_scale64 / edge_scale1 (row 0 is exactly its class weight column:
  cos = 1; row 1 is exactly −½ × its column: cos = −1; row 3 has cos ≈ −0.98, past π − m),
  huge_scale (scale 1e4), larger.

optim_reference.h5 — a small tensor table and torch.optim runs over it:
  root: tensor_numel (T) i64, tensor_no_decay (T) i32 (1-D tensors), tensor_is_head (T) i32;
        tensors are laid out in table order in one flat block of N floats;
        params0 (N) f32 initial parameters; grads (S, N) f32 the gradient of each step (before
        clipping), S = 3 steps.
  /<case> attrs: type ("adamw" | "sgd"), momentum, nesterov (int), max_norm (0: no clipping),
        step_size, gamma (StepLR; step_size 0: constant lr),
        lr0, wd0, exclude0: backbone group (tensors not is_head); exclude: no_decay tensors
        get weight_decay 0 (a third torch group with the same lr),
        lr1, wd1, exclude1: head group (is_head tensors).
     params (S, N) f32 after each step; grad_norm (S) f32 clip_grad_norm_'s return (when
     clipping); exp_avg, exp_avg_sq (N) f32 (AdamW) or momentum_buffer (N) f32 (SGD with momentum) after S steps.
  /schedules: torch's schedulers with base lr 1, so lr = kao's factor:
     cosine_warmup (40) f64: SequentialLR([LinearLR(0.1, 1, 5), CosineAnnealingLR(35, 0.01)], [5])
     cosine_nowarm (30) f64: CosineAnnealingLR(30, eta_min=0.05)
     step (12) f64: StepLR(step_size=3, gamma=0.1)
     each with attrs warmup_steps, warmup_start_factor, total_steps, min_factor / step_size, gamma.
"""
import argparse
import os
import warnings

import h5py
import numpy as np
import torch
from pytorch_metric_learning.losses import ArcFaceLoss


def arcface_case(emb, W, labels, margin, scale, dtype):
    B, E = emb.shape
    C = W.shape[1]
    loss_fn = ArcFaceLoss(C, E, margin=margin, scale=scale)
    loss_fn.W.data = torch.from_numpy(W).to(dtype)
    captured = []
    loss_fn.cross_entropy.register_forward_hook(lambda m, inp, out: captured.append(inp[0].detach()))
    e = torch.from_numpy(emb).to(dtype).requires_grad_()
    loss = loss_fn(e, torch.from_numpy(labels).long())
    loss.backward()
    with torch.no_grad():
        cosine = loss_fn.get_cosine(e)
    probs = torch.softmax(captured[0], dim=1)
    return (loss.item(), e.grad.numpy(), loss_fn.W.grad.numpy(), cosine.numpy(), probs.numpy())


def write_loss(path):
    rng = np.random.default_rng(1234)
    cases = []

    def random_case(name, B, E, C, margin=28.6, scale=64.0, labels=None):
        emb = rng.standard_normal((B, E)).astype(np.float32)
        W = rng.standard_normal((E, C)).astype(np.float32)
        if labels is None:
            labels = rng.integers(0, C, B).astype(np.int32)
        cases.append((name, emb, W, labels, margin, scale))

    random_case("default", 6, 16, 10)
    random_case("margin0", 6, 16, 10, margin=0.0)
    random_case("absent_class", 8, 12, 12, labels=np.array([0, 1, 2, 3, 0, 1, 2, 3], np.int32))
    for name, scale in (("edge_scale64", 64.0), ("edge_scale1", 1.0)):
        emb = rng.standard_normal((5, 8)).astype(np.float32)
        W = rng.standard_normal((8, 7)).astype(np.float32)
        labels = np.array([2, 4, 0, 4, 6], np.int32)
        emb[0] = W[:, labels[0]]          # cos = 1
        emb[1] = -0.5 * W[:, labels[1]]   # cos = -1 (a power of two: exact in float32)
        emb[3] = -W[:, labels[3]] + 0.2 * emb[3]  # cos near -0.98: the branch θ > π - m
        cases.append((name, emb, W, labels, 28.6, scale))
    random_case("huge_scale", 6, 16, 10, scale=1e4)
    random_case("larger", 16, 64, 40)

    with h5py.File(path, "w") as f:
        for name, emb, W, labels, margin, scale in cases:
            loss, d_emb, dW, cosine, probs = arcface_case(emb, W, labels, margin, scale, torch.float64)
            _, d_emb32, dW32, _, _ = arcface_case(emb, W, labels, margin, scale, torch.float32)
            g = f.create_group(name)
            g.attrs["margin_deg"] = float(margin)
            g.attrs["scale"] = float(scale)
            g.attrs["B"], g.attrs["E"] = emb.shape
            g.attrs["C"] = W.shape[1]
            finite32 = bool(np.isfinite(d_emb32).all() and np.isfinite(dW32).all())
            g.attrs["torch_float32_grads_finite"] = int(finite32)
            g["emb"], g["W"], g["labels"] = emb, W, labels
            g["loss"] = np.float64(loss)
            g["d_emb"], g["dW"] = d_emb.astype(np.float64), dW.astype(np.float64)
            g["cosine"], g["probs"] = cosine.astype(np.float64), probs.astype(np.float64)
            print(f"loss {name}: {loss:.6f}, float64 grads finite {np.isfinite(d_emb).all() and np.isfinite(dW).all()}, "
                  f"float32 grads finite {finite32}")


# ---- optimizers ------------------------------------------------------------------------------

TABLE = [  # name, shape, is_head; no_decay = 1-D
    ("conv.weight", (4, 3, 2, 2), False),
    ("bn.weight", (4,), False),
    ("bn.bias", (4,), False),
    ("tiny.weight", (3, 5), False),  # gradients ~1e-6: AdamW's eps matters
    ("classifier.weight", (6, 4), True),
    ("classifier.bias", (6,), True),
]
STEPS = 3


def optim_run(case, params0, grads):
    params = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in params0]
    backbone_decay, backbone_nodecay, head = [], [], []
    for (name, shape, is_head), p in zip(TABLE, params):
        if is_head:
            head.append(p)
        elif len(shape) == 1 and case["exclude0"]:
            backbone_nodecay.append(p)
        else:
            backbone_decay.append(p)
    assert not case["exclude1"]
    groups = [{"params": backbone_decay, "lr": case["lr0"], "weight_decay": case["wd0"]},
              {"params": head, "lr": case["lr1"], "weight_decay": case["wd1"]}]
    if backbone_nodecay:
        groups.append({"params": backbone_nodecay, "lr": case["lr0"], "weight_decay": 0.0})
    if case["type"] == "adamw":
        opt = torch.optim.AdamW(groups, foreach=False)
    else:
        opt = torch.optim.SGD(groups, lr=case["lr0"], momentum=case["momentum"],
                              nesterov=bool(case["nesterov"]), foreach=False)
    sched = torch.optim.lr_scheduler.StepLR(opt, case["step_size"], case["gamma"]) if case["step_size"] else None
    out_params, norms = [], []
    for s in range(STEPS):
        for p, g in zip(params, grads[s]):
            p.grad = torch.from_numpy(g.copy())
        if case["max_norm"]:
            norms.append(torch.nn.utils.clip_grad_norm_(params, case["max_norm"]).item())
        opt.step()
        if sched:
            sched.step()
        out_params.append(np.concatenate([p.detach().numpy().ravel() for p in params]))
    state = {}
    keys = {"adamw": ["exp_avg", "exp_avg_sq"], "sgd": ["momentum_buffer"] if case["momentum"] else []}[case["type"]]
    for k in keys:
        state[k] = np.concatenate([opt.state[p][k].numpy().ravel() for p in params])
    return np.stack(out_params), np.array(norms, np.float32), state


def write_optim(path):
    rng = np.random.default_rng(99)
    params0 = [rng.standard_normal(shape).astype(np.float32) for _, shape, _ in TABLE]
    grads = []
    for s in range(STEPS):
        step = []
        for name, shape, _ in TABLE:
            g = rng.standard_normal(shape).astype(np.float32)
            if name == "tiny.weight":
                g *= np.float32(1e-6)
            step.append(g)
        grads.append(step)
    base = dict(momentum=0.0, nesterov=0, max_norm=0.0, step_size=0, gamma=1.0,
                exclude0=0, exclude1=0)
    cases = {
        "adamw_groups_clip": dict(base, type="adamw", max_norm=1.0, step_size=2, gamma=0.5,
                                  lr0=1e-3, wd0=1e-2, exclude0=1, lr1=1e-2, wd1=5e-2),
        "adamw_plain": dict(base, type="adamw", lr0=1e-3, wd0=1e-2, lr1=1e-3, wd1=1e-2),
        "sgd_momentum_clip": dict(base, type="sgd", momentum=0.9, max_norm=5.0, lr0=0.01,
                                  wd0=5e-4, exclude0=1, lr1=0.1, wd1=5e-4),
        "sgd_nesterov": dict(base, type="sgd", momentum=0.9, nesterov=1, max_norm=100.0,
                             step_size=1, gamma=0.9, lr0=0.05, wd0=1e-4, lr1=0.05, wd1=1e-4),
        "sgd_plain": dict(base, type="sgd", lr0=0.1, wd0=0.0, lr1=0.2, wd1=1e-3),
    }
    with h5py.File(path, "w") as f:
        f["tensor_numel"] = np.array([int(np.prod(s)) for _, s, _ in TABLE], np.int64)
        f["tensor_no_decay"] = np.array([len(s) == 1 for _, s, _ in TABLE], np.int32)
        f["tensor_is_head"] = np.array([h for _, _, h in TABLE], np.int32)
        f["params0"] = np.concatenate([p.ravel() for p in params0])
        f["grads"] = np.stack([np.concatenate([g.ravel() for g in step]) for step in grads])
        for name, case in cases.items():
            params, norms, state = optim_run(case, params0, grads)
            g = f.create_group(name)
            for k, v in case.items():
                g.attrs[k] = v
            g["params"] = params
            if case["max_norm"]:
                g["grad_norm"] = norms
            for k, v in state.items():
                g[k] = v
            print(f"optim {name}: grad norms {norms}")
        write_schedules(f.create_group("schedules"))


def lrs(sched, opt, n):
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return np.array(out, np.float64)


def write_schedules(g):
    def opt():
        return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)

    o = opt()
    s = torch.optim.lr_scheduler.SequentialLR(
        o, [torch.optim.lr_scheduler.LinearLR(o, 0.1, 1.0, 5),
            torch.optim.lr_scheduler.CosineAnnealingLR(o, 35, eta_min=0.01)], milestones=[5])
    d = g.create_dataset("cosine_warmup", data=lrs(s, o, 40))
    d.attrs.update(dict(warmup_steps=5, warmup_start_factor=0.1, total_steps=40, min_factor=0.01))
    o = opt()
    d = g.create_dataset("cosine_nowarm", data=lrs(torch.optim.lr_scheduler.CosineAnnealingLR(o, 30, eta_min=0.05), o, 30))
    d.attrs.update(dict(warmup_steps=0, warmup_start_factor=1.0, total_steps=30, min_factor=0.05))
    o = opt()
    d = g.create_dataset("step", data=lrs(torch.optim.lr_scheduler.StepLR(o, 3, 0.1), o, 12))
    d.attrs.update(dict(step_size=3, gamma=0.1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", default="tests/data")
    args = ap.parse_args()
    torch.set_num_threads(1)
    # SequentialLR steps its second scheduler with an epoch argument itself; not ours to fix.
    warnings.filterwarnings("ignore", message="The epoch parameter")
    write_loss(os.path.join(args.out_dir, "loss_reference.h5"))
    write_optim(os.path.join(args.out_dir, "optim_reference.h5"))


if __name__ == "__main__":
    main()
