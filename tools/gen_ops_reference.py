"""Reference data for kao's CPU ops (src/ops_*.c), computed by PyTorch and timm's own layers.

Run from the repository root with the tools' python:
    $(bash scripts/setup_python.sh) tools/gen_ops_reference.py
It rewrites tests/data/ops_reference.h5 (about 160 KB); tests/test_ops_forward.c checks the
outputs and running statistics, tests/test_ops_backward.c the gradients. Seeded; torch 2.5.1,
timm 1.0.31 (tools/requirements.txt).

Every module runs in float64 on float32 inputs (the stored inputs are exactly kao's); results are
stored rounded to float32 (relative error 6e-8, far below the tests' 1e-5 tolerances, and half
the file). Layouts are kao's: activations NHWC, weights as PyTorch stores them (OIHW, Linear
[out, in]).

One group per case; attrs give the sizes. Every case has
    inp (B, H, W, C) f32, out (B, Ho, Wo, Co) f32, R (like out) f32: the upstream gradient,
    d_inp (like inp) f32: d sum(out·R) / d inp; parameters and their gradients d_<name> f32.
Cases:
  conv_s2_odd    timm create_conv2d(3, 5, 3, stride=2, padding='same') → Conv2dSame, 9×11 input
                 (odd: one pixel of padding on each side). weight.
  conv_s2_even   the same with 4 → 6 channels on 8×6 (even: 0 before, 1 after).
  conv_s1_bias   create_conv2d(4, 6, 3, padding='same', bias=True) → nn.Conv2d(padding=1). weight, bias.
  conv_pw        create_conv2d(7, 5, 1): 1×1. weight.
  dw_s2_even     create_conv2d(12, 12, 3, stride=2, padding='same', depthwise=True), 10×10. weight.
  dw_s1_k5       depthwise 5×5 stride 1 (static padding 2), 9 channels, 7×6. weight.
  bn_train       timm BatchNormAct2d(6, eps=1e-3, momentum=0.1, apply_act=False) in train mode;
                 running_mean0/var0 before, running_mean/var after. weight, bias.
  bn_train_silu  the same with act_layer=nn.SiLU.
  bn_eval_silu   BatchNormAct2d + SiLU in eval mode (running statistics).
  se             timm SqueezeExcite(16, rd_channels=4, act_layer=nn.SiLU) on 5×5:
                 conv_reduce.weight/.bias, conv_expand.weight/.bias.
  linear         nn.Linear(9, 4): inp (B, I), weight, bias.
"""
import argparse
import os

import h5py
import numpy as np
import timm
import torch
import torch.nn as nn
from timm.layers import BatchNormAct2d, create_conv2d
from timm.models._efficientnet_blocks import SqueezeExcite


def nhwc(t):
    return t.permute(0, 2, 3, 1).contiguous() if t.dim() == 4 else t


def run_case(g, module, x32, rng, params, offsets=None):
    """Runs module (float64) on x32, stores inp, out, R, d_inp and each named parameter + grad."""
    module = module.double()
    x = torch.from_numpy(x32).double().requires_grad_(True)
    out = module(x)
    R = rng.uniform(-1, 1, size=tuple(out.shape)).astype(np.float32)
    (out * torch.from_numpy(R).double()).sum().backward()
    g["inp"] = nhwc(torch.from_numpy(x32)).numpy()
    g["out"] = nhwc(out.detach()).float().numpy()
    g["R"] = nhwc(torch.from_numpy(R)).numpy()
    g["d_inp"] = nhwc(x.grad).float().numpy()
    named = dict(module.named_parameters())
    for name in params:
        p = named[name]
        g[name] = p.detach().float().numpy()
        g["d_" + name] = p.grad.float().numpy()


def set_params(module, rng, scale=0.5):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.from_numpy(rng.uniform(-scale, scale, size=tuple(p.shape)).astype(np.float32)))


def conv_case(f, name, rng, B, Ci, Co, H, W, k, stride, bias=False, depthwise=False):
    m = create_conv2d(Ci, Co, k, stride=stride, padding="same", bias=bias, depthwise=depthwise)
    set_params(m, rng)
    g = f.create_group(name)
    g.attrs.update(dict(B=B, H=H, W=W, Ci=Ci, Co=Co, k=k, stride=stride, bias=int(bias),
                        depthwise=int(depthwise), module=type(m).__name__))
    x = rng.uniform(-1, 1, size=(B, Ci, H, W)).astype(np.float32)
    run_case(g, m, x, rng, ["weight"] + (["bias"] if bias else []))


def bn_case(f, name, rng, train, act):
    B, C, H, W = 3, 6, 4, 5
    m = BatchNormAct2d(C, eps=1e-3, momentum=0.1, apply_act=act, act_layer=nn.SiLU)
    set_params(m, rng, scale=1.0)
    with torch.no_grad():
        m.running_mean.copy_(torch.from_numpy(rng.uniform(-0.5, 0.5, C).astype(np.float32)))
        m.running_var.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, C).astype(np.float32)))
    g = f.create_group(name)
    g.attrs.update(dict(B=B, H=H, W=W, C=C, eps=1e-3, momentum=0.1, train=int(train), silu=int(act)))
    g["running_mean0"] = m.running_mean.numpy().copy()
    g["running_var0"] = m.running_var.numpy().copy()
    m.train(train)
    # per-channel offsets and scales so that the statistics are not those of U(-1, 1)
    x = (rng.uniform(-1, 1, size=(B, C, H, W)) * rng.uniform(0.5, 3, size=(1, C, 1, 1))
         + rng.uniform(-2, 2, size=(1, C, 1, 1))).astype(np.float32)
    run_case(g, m, x, rng, ["weight", "bias"])
    g["running_mean"] = m.running_mean.float().numpy()
    g["running_var"] = m.running_var.float().numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/data/ops_reference.h5")
    args = ap.parse_args()
    torch.manual_seed(0)
    rng = np.random.default_rng(20240607)
    tmp = args.out + ".tmp"
    with h5py.File(tmp, "w") as f:
        f.attrs["torch"] = str(torch.__version__)
        f.attrs["timm"] = timm.__version__
        conv_case(f, "conv_s2_odd", rng, B=2, Ci=3, Co=5, H=9, W=11, k=3, stride=2)
        conv_case(f, "conv_s2_even", rng, B=2, Ci=4, Co=6, H=8, W=6, k=3, stride=2)
        conv_case(f, "conv_s1_bias", rng, B=2, Ci=4, Co=6, H=6, W=8, k=3, stride=1, bias=True)
        conv_case(f, "conv_pw", rng, B=2, Ci=7, Co=5, H=5, W=3, k=1, stride=1)
        conv_case(f, "dw_s2_even", rng, B=2, Ci=12, Co=12, H=10, W=10, k=3, stride=2, depthwise=True)
        conv_case(f, "dw_s1_k5", rng, B=2, Ci=9, Co=9, H=7, W=6, k=5, stride=1, depthwise=True)
        bn_case(f, "bn_train", rng, train=True, act=False)
        bn_case(f, "bn_train_silu", rng, train=True, act=True)
        bn_case(f, "bn_eval_silu", rng, train=False, act=True)

        B, C, R, H, W = 3, 16, 4, 5, 5
        se = SqueezeExcite(C, rd_channels=R, act_layer=nn.SiLU)
        set_params(se, rng)
        g = f.create_group("se")
        g.attrs.update(dict(B=B, H=H, W=W, C=C, R=R))
        x = rng.uniform(-1, 1, size=(B, C, H, W)).astype(np.float32)
        run_case(g, se, x, rng, ["conv_reduce.weight", "conv_reduce.bias", "conv_expand.weight",
                                 "conv_expand.bias"])

        lin = nn.Linear(9, 4)
        set_params(lin, rng)
        g = f.create_group("linear")
        g.attrs.update(dict(B=5, I=9, O=4))
        run_case(g, lin, rng.uniform(-1, 1, size=(5, 9)).astype(np.float32), rng, ["weight", "bias"])
    os.replace(tmp, args.out)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)")


if __name__ == "__main__":
    main()
